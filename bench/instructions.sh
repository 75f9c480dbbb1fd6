#!/usr/bin/env bash
# Server instructions per operation: runs RippleKV under valgrind's callgrind (pinned to
# core 0; the load generator runs natively on core 1) through a fixed workload and
# prints the instructions the server executed per GET, per durable SET and per
# delivered notification.
#
#   bash bench/instructions.sh                                  (under a minute)
#   RIPPLEKV_BIN=/path/to/ripplekv bash bench/instructions.sh   # measure another build
#   bash bench/instructions.sh --json   (or JSON=1): also one JSON object, the last line:
#     {"get": N, "get_pipelined": N, "durable_set": N, "notification": N,
#      "sets_per_commit": X, "binary": "..."}
#
# The figures are instruction counts (callgrind's Ir: the server's user space, all its
# threads), not times: for the same binary and workload they repeat within a percent
# or two, where wall-clock figures on a shared machine do not, so they suit before /
# after comparisons of a change. Kernel work (syscalls, fsync) is not counted, and
# waiting for fsync costs no instructions: a durable SET's figure is its CPU cost, not
# its latency. It includes its share of its commit, and how many SETs share one
# depends on how fast fsync is next to the server under valgrind (the table prints
# SETs per commit): compare durable figures from the same machine and disk. A
# notification's figure includes its share (1/subscribers) of the write behind it.
#
# Each figure is the difference of a measured run and the same run with no duration
# (connections opened, one request each, closed), so connection setup and teardown
# cancel out. Callgrind counts nothing during start-up, populating and warm-up; its
# counters are zeroed before each run and dumped after it, once the server has closed
# every connection of the run.
#
# The load generator is the measured binary's `ripplekv bench` unless
# RIPPLEKV_BENCH_BIN names another (keep it fixed when comparing two builds whose
# load generators differ). Without RIPPLEKV_BIN the release build is built with cargo
# first. Needs valgrind (callgrind_control), taskset and curl. Everything listens on
# 127.0.0.1 only. (`perf stat -e instructions` would count kernel work too, but needs
# hardware counters, which many virtual machines do not expose.)
set -euo pipefail

JSON=${JSON:-0}
[ "${1:-}" = "--json" ] && JSON=1

if [ -n "${RIPPLEKV_BIN:-}" ]; then
  RK=$(realpath "$RIPPLEKV_BIN")
fi
if [ -n "${RIPPLEKV_BENCH_BIN:-}" ]; then
  LOAD=$(realpath "$RIPPLEKV_BENCH_BIN")
fi
cd "$(dirname "$0")/.."
if [ -z "${RK:-}" ]; then
  cargo build --release --locked --bin ripplekv >&2
  RK=$PWD/target/release/ripplekv
fi
LOAD=${LOAD:-$RK}

# The workload. Change it and the figures are no longer comparable with earlier ones.
GET_CONNECTIONS=8      # connections, one request in flight each
PIPELINE=32            # requests in flight per connection for the pipelined GETs
SET_CONNECTIONS=8      # likewise for durable SETs (1: every SET commits alone)
KEYSPACE=10000         # keys written before the GETs and SETs (GETs hit, SETs replace)
GET_SECONDS=5          # some 20000 GETs (the server runs ~50x slower under callgrind)
SET_SECONDS=5          # some 3500 SETs
FANOUT_SUBSCRIBERS=200 # subscribers on one key
FANOUT_RATE=20         # writes per second to it: each is one notification per subscriber
FANOUT_SECONDS=5       # about 20000 notifications
WARMUP_SECONDS=1       # each workload runs this long uninstrumented first
KEY=bench-key
PORT=3395
SERVER_CORE=0 LOAD_CORE=1

for tool in valgrind callgrind_control taskset curl; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done
[ -x "$RK" ] || { echo "error: $RK is not an executable" >&2; exit 1; }
ulimit -n 4096 2>/dev/null || true

OUT=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$OUT"
}
trap cleanup EXIT

start_server() { # durability
  rm -rf "$OUT/data"
  CG_OUT=$OUT/callgrind-$1.out LOG=$OUT/server-$1.log
  DUMPS=0
  taskset -c $SERVER_CORE valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$CG_OUT" \
    "$RK" --listen 127.0.0.1:$PORT --data-dir "$OUT/data" --api-key $KEY \
    --durability "$1" 2>"$LOG" &
  SERVER_PID=$!
  local waited=0
  until grep -q "listening on" "$LOG" 2>/dev/null; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null || [ $waited -ge 600 ]; then
      echo "error: the server did not start:" >&2
      cat "$LOG" >&2
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  IDLE_SOCKETS=$(sockets)
}
stop_server() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }
sockets() { find "/proc/$SERVER_PID/fd" -lname 'socket:*' 2>/dev/null | wc -l; }
quiet() { # waits until the server has closed every connection (lingering ones too)
  local waited=0
  until [ "$(sockets)" -le "$IDLE_SOCKETS" ]; do
    if [ $waited -ge 300 ]; then
      echo "error: the server still holds connections after 30 s" >&2
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  sleep 0.3
}
callgrind() { # callgrind_control flags
  callgrind_control "$@" "$SERVER_PID" >"$OUT/callgrind_control.log" 2>&1 || {
    cat "$OUT/callgrind_control.log" >&2
    exit 1
  }
}
bench() { # name, then bench mode and flags; the JSON report goes to $OUT/name.json
  local name=$1
  shift
  taskset -c $LOAD_CORE "$LOAD" bench --url "http://127.0.0.1:$PORT" --api-key $KEY \
    --json --quiet "$@" >"$OUT/$name.json" 2>"$OUT/$name.log" || {
    echo "error: ripplekv bench $* failed:" >&2
    cat "$OUT/$name.log" >&2
    exit 1
  }
}
field() { grep -o "\"$2\":[0-9]*" "$OUT/$1.json" | head -n 1 | cut -d: -f2; }
measure() { # name, then bench mode and flags: sets IR and OPS of that run
  quiet
  callgrind -z
  bench "$@"
  quiet
  callgrind -d
  DUMPS=$((DUMPS + 1))
  local part="$CG_OUT.$DUMPS"
  [ -s "$part" ] || { echo "error: callgrind wrote no $part" >&2; exit 1; }
  IR=$(awk '/^summary:/ {print $2}' "$part")
  OPS=$(field "$1" operations)
}
per_op() { # name, seconds, then bench mode and flags: sets PER_OP, the instructions per
  # operation of a run that long less those of the same run with no duration
  measure "$1-0" "${@:3}" -d 0
  local ir0=$IR ops0=$OPS
  measure "$1" "${@:3}" -d "$2"
  local ir=$((IR - ir0)) ops=$((OPS - ops0))
  [ "$ops" -gt 0 ] || { echo "error: $1 completed no operations" >&2; exit 1; }
  echo "   $1: $ir instructions, $ops operations" >&2
  PER_OP=$(awk -v ir="$ir" -v ops="$ops" 'BEGIN { printf "%.0f", ir / ops }')
}
metric() { # Prometheus sample name: its value
  curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'
}

echo "== GET and fan-out, relaxed durability (callgrind, core $SERVER_CORE)" >&2
start_server relaxed
RPC=(rpc -c $GET_CONNECTIONS -P 1 --keyspace $KEYSPACE)
FANOUT=(fanout -s $FANOUT_SUBSCRIBERS -r $FANOUT_RATE)
bench populate "${RPC[@]}" -d $WARMUP_SECONDS
bench warmup "${FANOUT[@]}" -d $WARMUP_SECONDS
callgrind -i on
per_op get $GET_SECONDS "${RPC[@]}" --no-populate
GET=$PER_OP
per_op get_pipelined $GET_SECONDS rpc -c $GET_CONNECTIONS -P $PIPELINE --keyspace $KEYSPACE --no-populate
GET_PIPELINED=$PER_OP
per_op fanout $FANOUT_SECONDS "${FANOUT[@]}"
NOTIFICATION=$PER_OP
LOST=$(field fanout lost)
[ "$LOST" = 0 ] || echo "warning: $LOST notifications were not delivered" >&2
stop_server

echo "== durable SET, sync durability (callgrind, core $SERVER_CORE)" >&2
start_server sync
DURABLE=(durable -c $SET_CONNECTIONS -P 1 --keyspace $KEYSPACE)
bench populate "${RPC[@]}" -d 0
bench warmup "${DURABLE[@]}" -d $WARMUP_SECONDS
callgrind -i on
WRITES_BEFORE=$(metric ripplekv_store_commit_batch_size_sum)
COMMITS_BEFORE=$(metric ripplekv_store_commit_batch_size_count)
per_op durable_set $SET_SECONDS "${DURABLE[@]}"
SET=$PER_OP
WRITES=$(($(metric ripplekv_store_commit_batch_size_sum) - WRITES_BEFORE))
COMMITS=$(($(metric ripplekv_store_commit_batch_size_count) - COMMITS_BEFORE))
PER_COMMIT=$(awk -v w="$WRITES" -v c="$COMMITS" 'BEGIN { printf "%.1f", c ? w / c : 0 }')
stop_server

echo "Server instructions per operation (callgrind Ir, user space), $RK"
row() { printf '%-13s %12s  %s\n' "$@"; }
row operation instructions workload
row GET "$GET" "$GET_CONNECTIONS connections, 1 in flight, $KEYSPACE keys"
row "GET, P$PIPELINE" "$GET_PIPELINED" "$GET_CONNECTIONS connections, $PIPELINE in flight each"
row "durable SET" "$SET" "$SET_CONNECTIONS connections, 1 in flight, sync; $PER_COMMIT SETs per commit"
row notification "$NOTIFICATION" "$FANOUT_SUBSCRIBERS subscribers, $FANOUT_RATE writes/s"
echo "(waiting for fsync costs no instructions; a notification includes 1/$FANOUT_SUBSCRIBERS of its write)"
if [ "$JSON" = 1 ]; then
  printf '{"get": %s, "get_pipelined": %s, "durable_set": %s, "notification": %s, "sets_per_commit": %s, "binary": "%s"}\n' \
    "$GET" "$GET_PIPELINED" "$SET" "$NOTIFICATION" "$PER_COMMIT" "$RK"
fi
