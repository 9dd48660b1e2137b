#!/usr/bin/env bash
# Installs the pinned Tansu broker into the per-user tools folder when it is absent.
# The folder lives outside the repository so every clone on this machine reuses it.
set -euo pipefail
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
TOOLS_DIR="${FLEUVE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fleuve/tools}"
bin="$TOOLS_DIR/bin/tansu"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  echo "$bin"
  exit 0
fi
echo "installing tansu $TANSU_VERSION into $TOOLS_DIR (first time only, about 10 minutes)" >&2
mkdir -p "$TOOLS_DIR"
cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore,libsql \
  --root "$TOOLS_DIR" >&2
echo "$bin"
