#!/usr/bin/env bash
# Runs the local Kafka-protocol broker (Tansu) in the foreground, with its SQLite storage
# in var/tansu.db (kept across restarts). FLEUVE_BROKER_PORT changes the port (9092).
set -euo pipefail
cd "$(dirname "$0")/.."
tansu="$(scripts/install-tansu.sh)"
port="${FLEUVE_BROKER_PORT:-9092}"
mkdir -p var
# Once the broker has created its schema, index it (see scripts/index-tansu.sh).
scripts/index-tansu.sh var/tansu.db &
exec "$tansu" broker \
  --listener-url "tcp://127.0.0.1:${port}" \
  --advertised-listener-url "tcp://127.0.0.1:${port}" \
  --storage-engine "sqlite://var/tansu.db"
