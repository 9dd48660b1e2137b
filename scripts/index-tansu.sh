#!/usr/bin/env bash
# Indexes the record headers in a Tansu SQLite file (argument: the file). Tansu 0.6.0's
# schema has no index on `header (topition, offset_id)` and a fetch reads each record's
# headers with one query, so without it reading a topic takes time quadratic in its size
# (24,000 records: minutes instead of a second). Waits up to 30 s for the broker to create
# its schema. Idempotent. Needs python3 (its sqlite3 module); warns and succeeds without it.
set -euo pipefail
db="$1"
if ! command -v python3 >/dev/null 2>&1; then
  echo "warning: python3 not found: Tansu's header table is not indexed; reads slow down as topics grow" >&2
  exit 0
fi
for _ in $(seq 1 150); do
  if python3 - "$db" 2>/dev/null <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=30)
c.execute("create index if not exists header_topition_offset_id on header (topition, offset_id)")
c.commit()
PY
  then
    exit 0
  fi
  sleep 0.2
done
echo "warning: could not index the header table of $db (Tansu reads will slow down as topics grow)" >&2
