#!/usr/bin/env bash
# The REST contract test: starts the real binary on a free port with a fresh data
# directory and runs schemathesis against the /openapi.json it serves, with every check
# and a bounded number of examples per operation. It fails on any 500, any status,
# header, content type or body the document does not allow, and any valid request the
# server refuses or invalid one it accepts.
# Usage: bash scripts/contract.sh [SCHEMATHESIS]   (needs target/debug/ripplekv)
set -euo pipefail
cd "$(dirname "$0")/.."
schemathesis="${1:-target/python/bin/schemathesis}"
binary="${RIPPLEKV_BIN:-$PWD/target/debug/ripplekv}"
examples="${CONTRACT_EXAMPLES:-40}"
[ -x "$binary" ] || { echo "error: no ripplekv binary at $binary: run cargo build --bin ripplekv" >&2; exit 1; }
[ -x "$schemathesis" ] || { echo "error: schemathesis not found at $schemathesis: run bash scripts/test.sh, which installs it" >&2; exit 1; }

work=$(mktemp -d)
key="contract-test-key"
"$binary" serve --listen 127.0.0.1:0 --data-dir "$work/data" --api-key "$key" 2>"$work/log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
address=""
for _ in $(seq 300); do
  address=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$work/log" | head -n 1)
  [ -n "$address" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/log" >&2; echo "error: ripplekv exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$address" ] || { echo "error: ripplekv did not start" >&2; exit 1; }

# /ws is a WebSocket upgrade: plain HTTP requests to it only test the refusals, which
# the Rust tests cover exactly; everything else is in scope.
"$schemathesis" --config-file scripts/schemathesis.toml run "http://$address/openapi.json" \
  --checks all \
  --max-examples "$examples" \
  --seed 1 \
  --workers 1 \
  --header "x-api-key: $key" \
  --exclude-path /ws \
  --no-color \
  --generation-database none \
  --report junit --report-dir "$work/report"
