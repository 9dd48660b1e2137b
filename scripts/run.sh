#!/usr/bin/env bash
# `make run`: the whole platform on this machine. Starts the broker (unless one already
# listens on the port), then `fleuve run` (registry, ingest, processors, query API) in the
# foreground. Ctrl-C stops Fleuve cleanly, then the broker. Data lives in var/.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${FLEUVE_BROKER_PORT:-9092}"
fleuve="${FLEUVE_BIN:-target/debug/fleuve}"
mkdir -p var

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

broker_pid=""
stop_broker() {
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    echo "stopping the broker (pid $broker_pid)"
    kill -TERM "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
}
trap stop_broker EXIT

if listening "$port"; then
  echo "a broker already listens on 127.0.0.1:$port; using it"
else
  tansu="$(scripts/install-tansu.sh)"
  # setsid: Ctrl-C reaches Fleuve first; the broker is stopped after Fleuve has committed.
  setsid "$tansu" broker \
    --listener-url "tcp://127.0.0.1:${port}" \
    --advertised-listener-url "tcp://127.0.0.1:${port}" \
    --storage-engine "sqlite://var/tansu.db" >var/broker.log 2>&1 &
  broker_pid=$!
  for _ in $(seq 1 100); do
    listening "$port" && break
    kill -0 "$broker_pid" 2>/dev/null || { echo "the broker failed to start; see var/broker.log" >&2; exit 1; }
    sleep 0.1
  done
  listening "$port" || { echo "the broker did not listen on $port within 10 s; see var/broker.log" >&2; exit 1; }
  scripts/index-tansu.sh var/tansu.db
  echo "broker started on 127.0.0.1:$port (log: var/broker.log)"
fi

export FLEUVE_BROKERS="${FLEUVE_BROKERS:-127.0.0.1:$port}"
# Development signing key for the bearer tokens (HS256); `fleuve run` prints a token made
# with it. Never use this value outside a laptop.
export FLEUVE_JWT_HS256_SECRET="${FLEUVE_JWT_HS256_SECRET:-fleuve-dev-secret-do-not-use-in-production}"
set +e
"$fleuve" run &
fleuve_pid=$!
trap 'kill -INT "$fleuve_pid" 2>/dev/null' INT TERM
wait "$fleuve_pid"; status=$?
# `wait` returns early when a trapped signal arrives: wait for Fleuve to finish stopping.
while kill -0 "$fleuve_pid" 2>/dev/null; do wait "$fleuve_pid"; status=$?; done
exit "$status"
