# Fleuve — the commands a newcomer needs. Everything they need is installed on first use.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test broker tools build lint fmt bench clean-data help

help:
	@echo "make run      the whole platform on this machine (broker, registry, ingest, processors, query API)"
	@echo "make test     the full test suite (unit tests, MockCluster tests, end-to-end tests on Tansu)"
	@echo "make broker   the local Kafka-protocol broker alone (Tansu, data in var/)"
	@echo "make lint     rustfmt and clippy, warnings as errors"
	@echo "make bench    benchmarks, figures in target/bench/"

tools:
	@scripts/install-tansu.sh >/dev/null

build:
	$(CARGO) build -p fleuve

run: tools build
	@scripts/run.sh

broker: tools
	@scripts/broker.sh

test: tools
	$(CARGO) build -p fleuve
	FLEUVE_TANSU="$$(scripts/install-tansu.sh)" $(CARGO) test --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) run -p fleuve-bench --release --bin store-engines

clean-data:
	rm -rf var/
