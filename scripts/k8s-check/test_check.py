#!/usr/bin/env python3
"""The check must fail, naming the file and the resource, on a deliberately broken manifest,
and pass on the real ones. Each case copies k8s/ to a temporary folder, breaks one thing
and runs the check there.

    .venv/bin/python scripts/k8s-check/test_check.py      (make k8s-check runs it)
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import check  # noqa: E402

K8S = check.REPO / "k8s"


def run_check(k8s: Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = check.main(["--k8s", str(k8s), "--quiet"])
    return code, out.getvalue()


class BrokenManifests(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="k8s-check-"))
        self.k8s = self.tmp / "k8s"
        shutil.copytree(K8S, self.k8s)

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def edit(self, relative: str, old: str, new: str) -> None:
        """Replaces `old` (which must be there) in k8s/<relative>."""
        path = self.k8s / relative
        text = path.read_text(encoding="utf-8")
        self.assertIn(old, text, f"the test's mutation no longer applies to {relative}")
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    def assert_fails(self, *expected: str) -> str:
        code, out = run_check(self.k8s)
        self.assertEqual(code, 1, f"the check passed a broken manifest:\n{out}")
        for text in expected:
            self.assertIn(text, out)
        return out

    # -- Kubernetes kinds (kubernetes-validate's schemas, strict)

    def test_a_field_of_the_wrong_type(self) -> None:
        self.edit("base/apps/ingest.yaml", "containerPort: 8082", 'containerPort: "8082"')
        self.assert_fails(
            "Deployment/fleuve-ingest [k8s/base/apps/ingest.yaml]",
            "spec.template.spec.containers.0.ports.0.containerPort: '8082' is not of type 'integer'",
        )

    def test_an_unknown_field(self) -> None:
        self.edit("base/apps/query.yaml", "  maxUnavailable: 1", "  maxUnavailabl: 1")
        self.assert_fails(
            "PodDisruptionBudget/fleuve-query [k8s/base/apps/query.yaml]",
            "'maxUnavailabl' was unexpected",
        )

    def test_a_missing_required_field(self) -> None:
        self.edit("base/apps/registry.yaml", "    - name: http\n      port: 8081\n", "    - name: http\n")
        self.assert_fails("Service/fleuve-registry [k8s/base/apps/registry.yaml]", "'port' is a required property")

    def test_a_broken_overlay_patch(self) -> None:
        self.edit("overlays/prod/patches/kafka-rack.yaml", "topologyKey: topology.kubernetes.io/zone", "topologyKey: [zone]")
        self.assert_fails("overlays/prod: Kafka/fleuve", "k8s/overlays/prod/patches/kafka-rack.yaml", "is not of type 'string'")

    # -- custom resources (scripts/k8s-check/custom-resources.yaml)

    def test_kafka_without_listeners(self) -> None:
        self.edit(
            "base/kafka/kafka.yaml",
            "    listeners:\n      - name: plain\n        port: 9092\n        type: internal\n        tls: false\n",
            "    listenrs:\n      - name: plain\n        port: 9092\n        type: internal\n        tls: false\n",
        )
        self.assert_fails(
            "Kafka/fleuve [k8s/base/kafka/kafka.yaml",
            "'listeners' is a required property",
            "'listenrs' was unexpected",
        )

    def test_scylla_rack_without_storage(self) -> None:
        self.edit("base/scylla/scylla-cluster.yaml", "        storage:\n          capacity: 200Gi\n", "")
        self.assert_fails("ScyllaCluster/scylla [k8s/base/scylla/scylla-cluster.yaml", "'storage' is a required property")

    def test_scaled_object_without_triggers_and_with_a_number_for_a_string(self) -> None:
        self.edit("base/processors/orders.yaml", '        lagThreshold: "50000"', "        lagThreshold: 50000")
        self.edit("base/processors/inventory.yaml", "  triggers:\n", "  trigers:\n")
        self.assert_fails(
            "ScaledObject/fleuve-processor-orders [k8s/base/processors/orders.yaml]",
            "spec.triggers.0.metadata.lagThreshold: 50000 is not of type 'string'",
            "ScaledObject/fleuve-processor-inventory [k8s/base/processors/inventory.yaml]",
            "'triggers' is a required property",
        )

    def test_a_kafka_topic_without_its_cluster(self) -> None:
        self.edit("base/kafka/topics.yaml", "  name: orders\n  labels:\n    strimzi.io/cluster: fleuve\n", "  name: orders\n  labels:\n")
        self.assert_fails("KafkaTopic/orders [k8s/base/kafka/topics.yaml]", "'strimzi.io/cluster' is a required property")

    def test_a_kind_nobody_knows(self) -> None:
        (self.k8s / "base/extra.yaml").write_text(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec: {}\n", encoding="utf-8"
        )
        self.edit("base/kustomization.yaml", "resources:\n", "resources:\n  - extra.yaml\n")
        self.assert_fails("Widget/w [k8s/base/extra.yaml]: no schema for example.com/v1 Widget")

    # -- rendering, references, and the code

    def test_yaml_kustomize_cannot_read(self) -> None:
        self.edit("base/apps/ingest.yaml", "kind: Deployment\n", "kind: Deployment\n  oops: [\n")
        self.assert_fails("overlays/dev: kustomize cannot render it", "overlays/prod: kustomize cannot render it")

    def test_a_processor_without_deployment(self) -> None:
        self.edit("base/kustomization.yaml", "  - processors/inventory.yaml\n", "")
        self.assert_fails("processor inventory (processors/src/handlers/inventory/) has no Deployment")

    def test_a_scaled_object_on_the_wrong_consumer_group(self) -> None:
        self.edit("base/processors/bookmarks.yaml", "consumerGroup: fleuve-bookmarks", "consumerGroup: fleuve-bookmark")
        self.assert_fails("consumerGroup fleuve-bookmark: processor bookmarks consumes as fleuve-bookmarks")

    def test_an_alert_on_a_metric_that_does_not_exist(self) -> None:
        self.edit("base/monitoring/prometheus-rule.yaml", "sum by (namespace, processor) (fleuve_processor_lag_events) > 100000",
                  "sum by (namespace, processor) (fleuve_processor_lagg_events) > 100000")
        self.assert_fails("PrometheusRule/fleuve [k8s/base/monitoring/prometheus-rule.yaml]",
                          "metric fleuve_processor_lagg_events is defined nowhere in the code")

    def test_a_setting_the_binary_does_not_know(self) -> None:
        self.edit("overlays/prod/fleuve.toml", "partitions = 12", "partition = 12")
        self.assert_fails("overlays/prod: ConfigMap/fleuve-config", "unknown key `partition`")

    def test_a_service_listening_on_loopback(self) -> None:
        self.edit("overlays/dev/fleuve.toml", 'ingest_addr = "0.0.0.0:8082"', 'ingest_addr = "127.0.0.1:8082"')
        self.assert_fails("overlays/dev: ConfigMap/fleuve-config", "listens on loopback")

    def test_a_selector_that_selects_nothing(self) -> None:
        self.edit("base/apps/query.yaml", "  selector:\n    app.kubernetes.io/name: fleuve-query\n",
                  "  selector:\n    app.kubernetes.io/name: fleuve-queries\n")
        self.assert_fails("Service/fleuve-query [k8s/base/apps/query.yaml]", "selects no Deployment's pods")

    def test_a_component_no_network_policy_covers(self) -> None:
        self.edit("base/network/network-policies.yaml", "values: [registry, ingest, query, processor]",
                  "values: [registry, ingest, query]")
        self.assert_fails("Deployment/fleuve-processor-orders [k8s/base/processors/orders.yaml]",
                          "no NetworkPolicy of type Egress selects its pods")

    def test_a_partner_without_its_export_topic(self) -> None:
        self.edit("overlays/prod/exports-partners.toml", 'id = "salto"', 'id = "isp-a"')
        self.assert_fails("overlays/prod: ConfigMap/fleuve-exports-partners",
                          "partner isp-a has no KafkaTopic export.isp-a.catalog")


class RealManifests(unittest.TestCase):
    def test_every_overlay_passes(self) -> None:
        code, out = run_check(K8S)
        self.assertEqual(code, 0, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
