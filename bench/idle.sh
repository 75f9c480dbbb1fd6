#!/usr/bin/env bash
# Memory per idle WebSocket connection: starts a release server, opens N connections
# with `ripplekv bench idle` (default 10000), and divides the server's RSS growth by N.
#
#   bash bench/idle.sh [N]
#   RIPPLEKV_BIN=/path/to/ripplekv bash bench/idle.sh [N]   # measure another build
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"
ulimit -n "$(ulimit -Hn)"
if [ -z "${RIPPLEKV_BIN:-}" ]; then
  cargo build --release --locked --bin ripplekv >&2
fi
bin="${RIPPLEKV_BIN:-target/release/ripplekv}"
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" --listen "127.0.0.1:$port" --data-dir "$data" --api-key idle-key \
  --durability relaxed 2>"$data/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
until grep -q "listening on" "$data/server.log"; do sleep 0.1; done
before=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
target/release/ripplekv bench --url "http://127.0.0.1:$port" --api-key idle-key --json idle \
  -n "$n" --hold 3 >/dev/null 2>"$data/idle.log" &
load=$!
until grep -q "holding" "$data/idle.log" 2>/dev/null || ! kill -0 $load 2>/dev/null; do sleep 0.2; done
sleep 1
holding=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
wait $load
python3 -c "print(f'{$n} idle connections: RSS {$before} KiB -> {$holding} KiB, {($holding-$before)/$n:.2f} KiB per connection')"
