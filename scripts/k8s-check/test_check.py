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
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import check  # noqa: E402
import promql  # noqa: E402
import yaml  # noqa: E402

K8S = check.REPO / "k8s"


def subprocess_render(overlay: Path) -> str:
    """What `kubectl kustomize` renders for an overlay."""
    return subprocess.run([check.find_kubectl(), "kustomize", str(overlay)],
                          capture_output=True, text=True, check=True).stdout


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

    # -- containers against the binary

    def test_args_that_are_not_a_subcommand(self) -> None:
        self.edit("base/apps/ingest.yaml", 'args: ["ingest"]', 'args: ["ingset"]')
        self.assert_fails("Deployment/fleuve-ingest [k8s/base/apps/ingest.yaml]",
                          "args[0] `ingset` is not a subcommand of fleuve (fleuve/src/main.rs, enum Command:")

    def test_process_with_an_unknown_processor(self) -> None:
        self.edit("base/processors/orders.yaml", 'args: ["process", "orders"]', 'args: ["process", "order"]')
        self.assert_fails("Deployment/fleuve-processor-orders [k8s/base/processors/orders.yaml]",
                          "`process order`: fleuve has no processor order")

    def test_probes_on_paths_fleuve_does_not_serve(self) -> None:
        self.edit("base/apps/ingest.yaml", "path: /readyz", "path: /ready")
        self.edit("base/apps/query.yaml", "path: /healthz", "path: /livez")  # the startup probe
        self.assert_fails(
            "Deployment/fleuve-ingest [k8s/base/apps/ingest.yaml]: container fleuve: readinessProbe path /ready",
            "Deployment/fleuve-query [k8s/base/apps/query.yaml]: container fleuve: startupProbe path /livez",
        )

    def test_a_probe_on_a_port_the_container_does_not_declare(self) -> None:
        self.edit("base/apps/registry.yaml", "port: http\n            periodSeconds: 10",
                  "port: 8080\n            periodSeconds: 10")
        self.assert_fails("Deployment/fleuve-registry [k8s/base/apps/registry.yaml]",
                          "livenessProbe port 8080 is not a port container fleuve declares (container fleuve declares http=8081)")

    def test_a_scrape_path_other_than_metrics(self) -> None:
        self.edit("base/monitoring/service-monitor.yaml", "path: /metrics", "path: /prometheus")
        self.assert_fails("ServiceMonitor/fleuve [k8s/base/monitoring/service-monitor.yaml]",
                          "endpoint path /prometheus: Fleuve serves its metrics on /metrics")

    def test_a_scraped_port_the_container_does_not_declare(self) -> None:
        self.edit("base/processors/catalog.yaml", "      port: 8083\n      targetPort: http",
                  "      port: 8083\n      targetPort: 9090")
        self.assert_fails("Service/fleuve-processor-catalog [k8s/base/processors/catalog.yaml]",
                          "port http: targetPort 9090 is not a port of Deployment fleuve-processor-catalog")

    def test_a_variable_the_binary_does_not_read(self) -> None:
        self.edit("base/apps/ingest.yaml", "            - name: FLEUVE_LOG_FORMAT\n",
                  "            - name: FLEUVE_BROKER\n              value: kafka:9092\n"
                  "            - name: FLEUVE_LOG_FORMAT\n")
        self.assert_fails("Deployment/fleuve-ingest [k8s/base/apps/ingest.yaml]",
                          "env FLEUVE_BROKER: the fleuve binary reads no such variable (did you mean FLEUVE_BROKERS?)")

    def test_an_image_that_is_not_fleuve(self) -> None:
        self.edit("overlays/prod/kustomization.yaml", "newName: registry.example.com/fleuve/fleuve",
                  "newName: registry.example.com/fleuve/fleuve-server")
        out = self.assert_fails(
            "overlays/prod: Deployment/fleuve-ingest [k8s/base/apps/ingest.yaml]: container fleuve: "
            "image registry.example.com/fleuve/fleuve-server:0.1.0 is not the fleuve image",
        )
        self.assertNotIn("overlays/dev: Deployment", out)

    def test_a_scaler_reading_another_kafka(self) -> None:
        self.edit("base/processors/orders.yaml", "bootstrapServers: fleuve-kafka-bootstrap.fleuve.svc:9092",
                  "bootstrapServers: kafka.fleuve.svc:9092")
        self.edit("overlays/dev/kustomization.yaml", "value: fleuve-kafka-bootstrap.fleuve-dev.svc:9092",
                  "value: fleuve-kafka-bootstrap.fleuve.svc:9093")
        self.assert_fails(
            "overlays/prod: ScaledObject/fleuve-processor-orders [k8s/base/processors/orders.yaml]: bootstrapServers "
            "kafka.fleuve.svc:9092 is not the bootstrap Service of a Kafka of this render "
            "(expected fleuve-kafka-bootstrap.fleuve.svc:9092)",
            "overlays/dev: ScaledObject/fleuve-processor-inventory [k8s/base/processors/inventory.yaml]: "
            "bootstrapServers fleuve-kafka-bootstrap.fleuve.svc:9093: KEDA runs in its own namespace and needs the "
            "Service's full name in this namespace, fleuve-kafka-bootstrap.fleuve-dev.svc",
            "port 9093 is no listener of Kafka fleuve (listeners: 9092)",
        )

    def test_a_container_that_may_run_as_root(self) -> None:
        self.edit("base/apps/ingest.yaml", "runAsNonRoot: true", "runAsNonRoot: false")
        self.edit("base/apps/query.yaml", "        runAsUser: 65532\n", "")
        self.edit("base/processors/exports.yaml", "drop: [\"ALL\"]", "drop: [\"ALL\"]\n            runAsUser: 0")
        self.assert_fails(
            "Deployment/fleuve-ingest [k8s/base/apps/ingest.yaml]: container fleuve: runAsNonRoot is false",
            "Deployment/fleuve-query [k8s/base/apps/query.yaml]: container fleuve: runAsUser is not set",
            "Deployment/fleuve-processor-exports [k8s/base/processors/exports.yaml]: container fleuve: runAsUser is 0",
        )

    def test_the_ops_port_open_to_a_whole_namespace(self) -> None:
        self.edit("base/network/network-policies.yaml",
                  "              kubernetes.io/metadata.name: monitoring\n          podSelector:\n"
                  "            matchLabels:\n              app.kubernetes.io/name: prometheus\n      ports:\n"
                  "        - protocol: TCP\n          port: http\n---\n# What Fleuve's pods",
                  "              kubernetes.io/metadata.name: monitoring\n      ports:\n"
                  "        - protocol: TCP\n          port: http\n---\n# What Fleuve's pods")
        self.assert_fails("NetworkPolicy/fleuve-processors [k8s/base/network/network-policies.yaml]: lets every pod "
                          "of namespace monitoring reach port 8083 of fleuve-processor-bookmarks",
                          "whose /admin/* endpoints (start a rebuild, drop a projection version) have no authentication")

    # -- labels of the alerts and the dashboard

    def test_an_alert_on_a_label_the_metric_does_not_have(self) -> None:
        self.edit("base/monitoring/prometheus-rule.yaml", 'rate(fleuve_query_requests_total{status=~"5.."}[5m])',
                  'rate(fleuve_query_requests_total{code=~"5.."}[5m])')
        self.edit("base/monitoring/prometheus-rule.yaml",
                  "sum by (namespace, processor, operation) (rate(fleuve_processor_retries_total[5m])) > 0.2",
                  "sum by (namespace, processor) (rate(fleuve_processor_retries_total[5m])) > 0.2")
        self.assert_fails(
            "PrometheusRule/fleuve [k8s/base/monitoring/prometheus-rule.yaml]: rule FleuveQueryErrorRate: "
            '`fleuve_query_requests_total{code=~"5.."}`: label `code` is not on the series it applies to '
            "(fleuve_query_requests_total has route, status, besides the scrape's target labels)",
            "rule FleuveProcessorRetrying: uses label `operation`, which the series of",
        )

    def test_a_dashboard_grouping_by_a_label_the_metric_does_not_have(self) -> None:
        self.edit("base/monitoring/grafana-dashboard.json",
                  "sum by (processor, reason) (rate(fleuve_processor_events_dead_lettered_total",
                  "sum by (processor, cause) (rate(fleuve_processor_events_dead_lettered_total")
        self.edit("base/monitoring/grafana-dashboard.json",
                  "histogram_quantile(0.99, sum by (processor, le) (rate(fleuve_processor_batch_duration_seconds_bucket",
                  "histogram_quantile(0.99, sum by (processor) (rate(fleuve_processor_batch_duration_seconds_bucket")
        self.assert_fails(
            "ConfigMap/fleuve-grafana-dashboard [generated (ConfigMap fleuve-grafana-dashboard of a kustomization.yaml)]: "
            'fleuve.json panel "Dead letters per second, by reason": `sum by (processor, cause)`: label `cause` is not '
            "on the series it applies to (fleuve_processor_events_dead_lettered_total has processor, reason",
            "uses label `reason`, which the series of",
            'panel "Batch duration p99": `histogram_quantile`: label `le` is not on the series it applies to '
            "(sum by (processor) keeps processor)",
        )


class DocumentedChanges(unittest.TestCase):
    """Changes docs/OPERATIONS.md tells operators to make keep the check passing."""

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="k8s-check-"))
        self.k8s = self.tmp / "k8s"
        shutil.copytree(K8S, self.k8s)

    def tearDown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_another_schema_registry_instead_of_ours(self) -> None:
        # "Use Confluent Schema Registry or Karapace instead of ours": our registry's
        # Deployment and NetworkPolicy go, the `schemas` KafkaTopic stays.
        overlay = self.k8s / "overlays/prod/kustomization.yaml"
        text = overlay.read_text(encoding="utf-8")
        deletes = "".join(
            f"  - patch: |-\n      $patch: delete\n      apiVersion: {api}\n      kind: {kind}\n"
            f"      metadata:\n        name: {name}\n"
            for api, kind, name in [
                ("apps/v1", "Deployment", "fleuve-registry"), ("v1", "Service", "fleuve-registry"),
                ("policy/v1", "PodDisruptionBudget", "fleuve-registry"),
                ("autoscaling/v2", "HorizontalPodAutoscaler", "fleuve-registry"),
                ("networking.k8s.io/v1", "NetworkPolicy", "fleuve-registry"),
            ]
        )
        overlay.write_text(text.replace("patches:\n", "patches:\n" + deletes, 1), encoding="utf-8")
        config = self.k8s / "overlays/prod/fleuve.toml"
        config.write_text(
            config.read_text(encoding="utf-8").replace("http://fleuve-registry:8081", "http://schema-registry.kafka:8081"),
            encoding="utf-8",
        )
        code, out = run_check(self.k8s)
        self.assertEqual(code, 0, out)
        rendered = [d for d in yaml.safe_load_all(subprocess_render(self.k8s / "overlays/prod")) if d]
        self.assertEqual([d["kind"] for d in rendered if d["metadata"]["name"] == "fleuve-registry"], [])
        self.assertIn("_schemas", [d["spec"].get("topicName") for d in rendered if d["kind"] == "KafkaTopic"])


class CodeReading(unittest.TestCase):
    """What check.py reads from Rust sources, on small sources written here."""

    def rust(self, text: str, name: str = "main.rs") -> check.RustSource:
        tmp = Path(tempfile.mkdtemp(prefix="k8s-check-rs-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        (tmp / name).write_text(text, encoding="utf-8")
        return check.read_rust(tmp / name)

    def test_subcommands_honour_names_aliases_flatten_and_skip(self) -> None:
        source = self.rust('''
#[derive(Subcommand)]
enum Command {
    /// Serve "things" {with braces} in a doc comment.
    Run { #[arg(long, default_value = "a,b")] x: String },
    #[command(name = "proc", alias = "p")]
    Process(ProcessArgs),
    SchemaCheck,
    #[command(flatten)]
    More(More),
    #[command(skip)]
    Hidden,
}
#[derive(Subcommand)]
enum More { ExportAll { n: u32 } }
''')
        self.assertEqual(check.clap_subcommands(source, "Command"),
                         {"help", "run", "proc", "p", "schema-check", "export-all"})

    def test_subcommands_honour_rename_all_and_only_clap_attributes(self) -> None:
        source = self.rust('''
#[serde(rename_all = "camelCase")]
struct Listen { a: u32 }
#[derive(Subcommand)]
#[command(rename_all = "snake_case", disable_help_subcommand = true)]
enum Command { RunAll, #[serde(alias = "zz")] #[command(aliases = ["x", "y"])] Other }
''')
        self.assertEqual(check.clap_subcommands(source, "Command"), {"run_all", "other", "x", "y"})

    def test_test_code_is_left_out(self) -> None:
        source = self.rust('''
const A: &str = "FLEUVE_REAL";
#[cfg(test)]
mod tests {
    const B: &str = "FLEUVE_ONLY_IN_TESTS"; // "}"
}
#[cfg(test)]
mod testing;
fn f() -> &'static str { "FLEUVE_ALSO_REAL" }
''', "lib.rs")
        self.assertEqual([v for _, _, v in source.strings], ["FLEUVE_REAL", "FLEUVE_ALSO_REAL"])
        self.assertEqual([p.name for p in source.test_modules], ["testing.rs", "mod.rs"])

    def test_metric_labels_are_read_from_their_registration(self) -> None:
        code = check.read_code(check.REPO)
        self.assertEqual(code.series_labels("fleuve_processor_lag_events"),
                         frozenset({"processor", "topic", "partition"}) | check.SCRAPE_LABELS)
        self.assertIn("le", code.series_labels("fleuve_processor_freshness_seconds_bucket"))
        self.assertNotIn("le", code.series_labels("fleuve_processor_freshness_seconds_count"))
        self.assertEqual(code.series_labels("fleuve_registry_schemas"), check.SCRAPE_LABELS)
        self.assertIsNone(code.series_labels("up"))


class PromQLLabels(unittest.TestCase):
    """scripts/k8s-check/promql.py on expressions written here."""

    LABELS = {"m_total": frozenset({"processor", "reason"}), "h_bucket": frozenset({"processor", "le"})}

    def check(self, expr: str) -> tuple[list[str], frozenset[str] | None]:
        return promql.label_check(expr, self.LABELS.get)

    def test_labels_are_followed_through_aggregations(self) -> None:
        self.assertEqual(self.check("sum by (processor) (rate(m_total[5m])) > 0"), ([], frozenset({"processor"})))
        problems, _ = self.check("max by (reason) (sum by (processor) (m_total))")
        self.assertEqual(problems, ["`max by (reason)`: label `reason` is not on the series it applies to "
                                    "(sum by (processor) keeps processor)"])
        self.assertEqual(self.check("sum without (reason) (m_total)"), ([], frozenset({"processor"})))

    def test_matchers_quantiles_and_vector_matching(self) -> None:
        self.assertIn("label `status`", self.check('m_total{status="5.."}')[0][0])
        self.assertEqual(self.check("histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))"), ([], frozenset()))
        self.assertIn("label `le`", self.check("histogram_quantile(0.9, sum(rate(h_bucket[5m])))")[0][0])
        self.assertIn("label `reason`", self.check("h_bucket * on (reason) group_left m_total")[0][0])
        self.assertEqual(self.check("up == 0"), ([], None))  # a metric whose labels are unknown

    def test_grafana_variables_are_not_labels(self) -> None:
        self.assertEqual(self.check("sum by ($group) (rate(m_total[$__rate_interval]))"), ([], None))

    def test_what_is_not_promql(self) -> None:
        with self.assertRaises(promql.PromQLError):
            self.check("sum by (processor (m_total)")


class RealManifests(unittest.TestCase):
    def test_every_overlay_passes(self) -> None:
        code, out = run_check(K8S)
        self.assertEqual(code, 0, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
