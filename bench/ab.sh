#!/usr/bin/env bash
# Paired A/B of two ripplekv binaries on the same machine in the same run: for each
# figure, alternates A and B for ROUNDS rounds (server pinned to core 0, load to core 1)
# and prints every round and the median of each side. Use it to show a change does not
# regress a figure when the machine's absolute speed differs from the last full run.
#
#   bash bench/ab.sh OLD_BINARY NEW_BINARY        (ROUNDS=3, DURATION=3 by default)
#
# Build the old binary from a worktree, for example:
#   git worktree add /tmp/old <commit> && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target \
#     cargo build --release --bin ripplekv)
set -euo pipefail
A=$1 B=$2
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-3} PORT=${PORT:-3399}
LOAD=$B # the newer binary's bench client drives both sides

one() { # binary durability bench-args... -> "per_second p99_us"
  local bin=$1 durability=$2 dir
  shift 2
  dir=$(mktemp -d)
  taskset -c 0 "$bin" --listen 127.0.0.1:$PORT --data-dir "$dir" --api-key k \
    --durability "$durability" 2>"$dir/log" &
  local pid=$!
  until grep -q "listening on" "$dir/log" 2>/dev/null; do sleep 0.1; done
  taskset -c 1 "$LOAD" bench --url http://127.0.0.1:$PORT --api-key k --json --quiet "$@" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["per_second"]), d["latency"]["p99_us"])'
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

figure() { # name durability bench-args...
  local name=$1 durability=$2 a=() b=()
  shift 2
  for _ in $(seq "$ROUNDS"); do
    a+=("$(one "$A" "$durability" "$@" --duration "$DURATION")")
    b+=("$(one "$B" "$durability" "$@" --duration "$DURATION")")
  done
  python3 - "$name" "${#a[@]}" "${a[@]}" "${b[@]}" <<'PY'
import statistics, sys
name, n = sys.argv[1], int(sys.argv[2])
rows = [tuple(map(int, r.split())) for r in sys.argv[3:]]
a, b = rows[:n], rows[n:]
med = lambda xs, i: statistics.median(x[i] for x in xs)
print(f"{name:<28} A {[x[0] for x in a]} B {[x[0] for x in b]} req/s; "
      f"median B/A {med(b, 0) / med(a, 0):.2f}x; p99 us A {med(a, 1):.0f} B {med(b, 1):.0f}")
PY
}

figure "GET -c 50 -P 1" relaxed rpc -c 50 -P 1
figure "GET -c 50 -P 32" relaxed rpc -c 50 -P 32
figure "durable SET -c 50 (sync)" sync durable -c 50
figure "GET -c 1 -P 1" relaxed rpc -c 1 -P 1
