#!/usr/bin/env bash
# Soak: 10 minutes of mixed load (RPC, subscriptions, reconnect churn) against a
# release build of the server with durable storage, sampling its resident memory and
# open descriptors every 5 s. `ripplekv bench soak` fails if either grows past its
# bound after the 60 s warm-up (memory: warm-up peak + 16 MiB + 20%; descriptors:
# warm-up peak + 64).
#
#   bash bench/soak.sh [SECONDS]      # default 600
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-600}"
cargo build --release --bin ripplekv
data=$(mktemp -d)
key="soak-key"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
./target/release/ripplekv serve --listen "127.0.0.1:$port" --data-dir "$data" \
  --api-key "$key" --durability sync >"$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do
  grep -q "listening on" "$data/server.log" && break
  sleep 0.1
done
./target/release/ripplekv bench soak --pid "$server" --duration "$duration" \
  --url "http://127.0.0.1:$port" --api-key "$key" --quiet
kill -0 "$server" # the server is still up after the soak
echo "server still running; database file: $(du -h "$data/ripplekv.redb" | cut -f1)"
