# Fleuve — the commands a newcomer needs. Everything they need is installed on first use.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test broker tools venv build lint fmt bench clean-data help

help:
	@echo "make run      the whole platform on this machine (broker, registry, ingest, processors, query API)"
	@echo "make test     the full test suite (unit tests, MockCluster tests, end-to-end tests on Tansu)"
	@echo "make broker   the local Kafka-protocol broker alone (Tansu, data in var/)"
	@echo "make lint     rustfmt and clippy, warnings as errors"
	@echo "make bench    benchmarks, figures in target/bench/"

tools:
	@scripts/install-tansu.sh >/dev/null

# The Python client of the interop tests, in .venv/ (git-ignored), rebuilt when the
# requirements change.
VENV := .venv
$(VENV)/.installed: tests/python/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

venv: $(VENV)/.installed

build:
	$(CARGO) build -p fleuve

run: tools build
	@scripts/run.sh

broker: tools
	@scripts/broker.sh

test: tools venv
	$(CARGO) build -p fleuve
	FLEUVE_TANSU="$$(scripts/install-tansu.sh)" FLEUVE_PYTHON="$(CURDIR)/$(VENV)/bin/python" \
		$(CARGO) test --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) run -p fleuve-bench --release --bin store-engines

clean-data:
	rm -rf var/
