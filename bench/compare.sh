#!/usr/bin/env bash
# Runs RippleKV, a bare WebSocket echo server, a bare WebSocket broadcast server and
# Redis side by side, pinned with taskset so the server (core 0) and the load
# generator (core 1) never share a core, prints every figure and ratio with the load
# generator's own CPU use, and writes docs/benchmarks.md with an SVG chart.
#
#   bash bench/compare.sh            (about 3 minutes; DURATION=10 for longer runs)
#
# Needs: cargo, redis-server and redis-benchmark (Debian's redis-server and
# redis-tools), taskset, python3. Every process it starts listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-50000}
FANOUT_SUBSCRIBERS=${FANOUT_SUBSCRIBERS:-10000}
# Fan-out load: writers each keeping one write in flight, at most this many a second
# in all (enough that both RippleKV and the floor run at their limit).
FANOUT_WRITERS=${FANOUT_WRITERS:-16} FANOUT_RATE=${FANOUT_RATE:-2000}
KEY=bench-key
RK_PORT=3390 ECHO_PORT=3391 BROADCAST_PORT=3392 REDIS_PORT=6391
SERVER_CORE=0 LOAD_CORE=1
OUT=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; redis-cli -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || true; rm -rf "$OUT"' EXIT
ulimit -n 262144 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# Server and load generator each hold one descriptor per idle connection.
FD_LIMIT=$(ulimit -n)
if [ "$IDLE_CONNECTIONS" -gt $((FD_LIMIT - 1000)) ]; then
  echo "note: file descriptor limit $FD_LIMIT; idle test capped at $((FD_LIMIT - 1000)) connections" >&2
  IDLE_CONNECTIONS=$((FD_LIMIT - 1000))
fi

cargo build --release --locked --bin ripplekv --bin ripplekv-echo --bin ripplekv-broadcast >&2
RK=target/release/ripplekv

start_ripplekv() { # durability
  rm -rf "$OUT/data"
  taskset -c $SERVER_CORE "$RK" --listen 127.0.0.1:$RK_PORT --data-dir "$OUT/data" --api-key $KEY \
    --durability "$1" 2>"$OUT/server.log" &
  RK_PID=$!
  until grep -q "listening on" "$OUT/server.log"; do sleep 0.1; done
}
stop_ripplekv() { kill -TERM "$RK_PID"; wait "$RK_PID" 2>/dev/null || true; }
bench() { taskset -c $LOAD_CORE "$RK" bench --url "http://127.0.0.1:$1" --api-key $KEY --json "${@:2}"; }
start_redis() { # extra args
  taskset -c $SERVER_CORE redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --dir "$OUT" \
    --daemonize yes --logfile "$OUT/redis.log" "$@"
  until redis-cli -p $REDIS_PORT ping >/dev/null 2>&1; do sleep 0.1; done
}
stop_redis() { redis-cli -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || true; sleep 0.3; }
redis_bench() { # output name, requests, then redis-benchmark args: the CSV line in
  # NAME.csv, and redis-benchmark's own CPU use (cores) in NAME.cpu
  local TIMEFORMAT='%U %S %R'
  { time taskset -c $LOAD_CORE redis-benchmark -p $REDIS_PORT -n "$2" --csv "${@:3}" \
      | tail -n 1 >"$OUT/$1.csv"; } 2>"$OUT/$1.time"
  awk '{ printf "%.3f\n", ($1 + $2) / $3 }' "$OUT/$1.time" >"$OUT/$1.cpu"
}

echo "== RPC GET, 50 connections, 1 and 32 in flight" >&2
start_ripplekv relaxed
bench $RK_PORT rpc -c 50 -P 1 -d "$DURATION" >"$OUT/rk_get_p1.json"
bench $RK_PORT rpc -c 50 -P 32 -d "$DURATION" --no-populate >"$OUT/rk_get_p32.json"
echo "== latency at 1 connection, 1 in flight" >&2
bench $RK_PORT rpc -c 1 -P 1 -d "$DURATION" --no-populate >"$OUT/rk_lat.json"
echo "== fan-out: one key, $FANOUT_SUBSCRIBERS subscribers" >&2
bench $RK_PORT fanout -s "$FANOUT_SUBSCRIBERS" -r "$FANOUT_RATE" -w "$FANOUT_WRITERS" -d "$DURATION" >"$OUT/rk_fanout.json"
stop_ripplekv

echo "== fan-out floor: the bare broadcast server" >&2
taskset -c $SERVER_CORE target/release/ripplekv-broadcast 127.0.0.1:$BROADCAST_PORT 2>"$OUT/broadcast.log" &
BROADCAST_PID=$!
until grep -q "listening on" "$OUT/broadcast.log"; do sleep 0.1; done
bench $BROADCAST_PORT fanout --broadcast -s "$FANOUT_SUBSCRIBERS" -r "$FANOUT_RATE" -w "$FANOUT_WRITERS" \
  -d "$DURATION" >"$OUT/floor_fanout.json"
kill $BROADCAST_PID; wait $BROADCAST_PID 2>/dev/null || true

echo "== idle connections: $IDLE_CONNECTIONS" >&2
start_ripplekv relaxed
RSS_BEFORE=$(awk '/VmRSS/ {print $2}' /proc/$RK_PID/status)
taskset -c $LOAD_CORE "$RK" bench --url "http://127.0.0.1:$RK_PORT" --api-key $KEY --json idle \
  -n "$IDLE_CONNECTIONS" --hold 3 >"$OUT/rk_idle.json" 2>"$OUT/idle.log" &
IDLE_PID=$!
until grep -q "holding" "$OUT/idle.log" 2>/dev/null || ! kill -0 $IDLE_PID 2>/dev/null; do sleep 0.2; done
sleep 1
RSS_HOLDING=$(awk '/VmRSS/ {print $2}' /proc/$RK_PID/status)
wait $IDLE_PID
stop_ripplekv
echo "{\"before_kib\": $RSS_BEFORE, \"holding_kib\": $RSS_HOLDING}" >"$OUT/rk_idle_rss.json"

echo "== durable SET, 50 connections (sync)" >&2
start_ripplekv sync
bench $RK_PORT durable -c 50 -P 1 -d "$DURATION" >"$OUT/rk_durable.json"
stop_ripplekv

echo "== echo server floor" >&2
taskset -c $SERVER_CORE target/release/ripplekv-echo 127.0.0.1:$ECHO_PORT 2>"$OUT/echo.log" &
ECHO_PID=$!
until grep -q "listening on" "$OUT/echo.log"; do sleep 0.1; done
bench $ECHO_PORT rpc -c 1 -P 1 -d "$DURATION" --no-populate >"$OUT/echo_lat.json"
bench $ECHO_PORT rpc -c 50 -P 1 -d "$DURATION" --no-populate >"$OUT/echo_p1.json"
kill $ECHO_PID; wait $ECHO_PID 2>/dev/null || true

echo "== Redis" >&2
start_redis
redis_bench redis_get_p1 500000 -c 50 -P 1 -t get
redis_bench redis_get_p32 10000000 -c 50 -P 32 -t get
redis_bench redis_lat 100000 -c 1 -P 1 -t get
stop_redis
start_redis --appendonly yes --appendfsync always
redis_bench redis_durable 200000 -c 50 -P 1 -t set
stop_redis

python3 bench/report.py "$OUT" "$DURATION" "$IDLE_CONNECTIONS" "$FANOUT_SUBSCRIBERS" \
  "$FANOUT_WRITERS" "$FANOUT_RATE" >docs/benchmarks.md
echo "wrote docs/benchmarks.md and docs/benchmarks.svg" >&2
