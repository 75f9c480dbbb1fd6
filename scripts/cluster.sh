#!/usr/bin/env bash
# Starts a local RippleKV cluster: N nodes (3 by default) sharing one PostgreSQL
# database, on ports 3001, 3002, …; prints their URLs and the shared API key, and stops
# them all on Ctrl-C.
#
#   bash scripts/cluster.sh [--nodes N] [--bus redis://HOST:PORT]
#
# With --bus, the nodes learn of each other's commits through Redis pub/sub instead of
# PostgreSQL LISTEN/NOTIFY.
# The database is RIPPLEKV_STORE (default postgres://postgres@127.0.0.1:5432/ripplekv_cluster,
# created when missing). Needs cargo and psql. Open the demo page of two different nodes
# (http://127.0.0.1:3001/ and http://127.0.0.1:3002/) to see changes cross nodes.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=3
BUS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) NODES=$2; shift 2 ;;
    --bus) BUS=(--bus "$2"); shift 2 ;;
    *) echo "usage: bash scripts/cluster.sh [--nodes N] [--bus redis://HOST:PORT]" >&2; exit 2 ;;
  esac
done
STORE=${RIPPLEKV_STORE:-postgres://postgres@127.0.0.1:5432/ripplekv_cluster}
FIRST_PORT=${FIRST_PORT:-3001}

# Create the database when missing (connecting to the server's `postgres` database).
database=${STORE##*/}
database=${database%%\?*}
admin=${STORE%/*}/postgres
if ! psql -d "$admin" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1; then
  psql -d "$admin" -qc "CREATE DATABASE \"$database\""
  echo "created database $database"
fi

cargo build --release --locked --bin ripplekv >&2
logs=$(mktemp -d)
pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping ${#pids[@]} nodes"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  rm -rf "$logs"
}
trap stop INT TERM EXIT

for i in $(seq 1 "$NODES"); do
  port=$((FIRST_PORT + i - 1))
  target/release/ripplekv serve --listen "127.0.0.1:$port" --store "$STORE" "${BUS[@]}" \
    --data-dir "$logs/node$i" 2>"$logs/node$i.log" &
  pids+=($!)
done
for i in $(seq 1 "$NODES"); do
  until grep -q "listening on" "$logs/node$i.log"; do
    if ! kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then
      cat "$logs/node$i.log" >&2
      exit 1
    fi
    sleep 0.1
  done
done
key=$(psql -d "$STORE" -Atqc "SELECT value FROM ripplekv.secrets WHERE name = 'api_key'")
echo "RippleKV cluster of $NODES nodes on $STORE${BUS:+ with a Redis bus at ${BUS[1]}}"
for i in $(seq 1 "$NODES"); do
  echo "  node $i: http://127.0.0.1:$((FIRST_PORT + i - 1))/  (ws://127.0.0.1:$((FIRST_PORT + i - 1))/ws)"
done
echo "API key (shared by every node): ${RIPPLEKV_API_KEYS:-$key}"
echo "logs: $logs; Ctrl-C stops the cluster"
wait
