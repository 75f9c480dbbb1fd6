#!/usr/bin/env bash
# The socket.io face next to the HPKV face, in one run against one server (embedded
# store, relaxed durability: reads are measured): acknowledged GETs per second and
# latency from 50 connections (1 and 32 in flight), and RSS per idle connection.
# Server pinned to core 0, load generator to core 1. Writes docs/benchmarks-socketio.md.
#
#   bash bench/socketio.sh           (about 1 minute; DURATION=10 for longer runs)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
IDLE=${IDLE:-5000}
PORT=${PORT:-3497}
KEY=bench-key
OUT=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$OUT"; }
trap cleanup EXIT
cargo build --release --locked --bin ripplekv >&2
RK=target/release/ripplekv
start() {
  rm -rf "$OUT/data"
  taskset -c 0 "$RK" serve --listen 127.0.0.1:$PORT --data-dir "$OUT/data" --api-key $KEY \
    --durability relaxed 2>"$OUT/server.log" &
  pid=$!
  until grep -q "listening on" "$OUT/server.log"; do sleep 0.1; done
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
bench() { taskset -c 1 "$RK" bench --url http://127.0.0.1:$PORT --api-key $KEY --json --quiet "$@"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
idle_rss() { # bench idle flags... -> "before after held"
  start
  local before
  before=$(rss_kib)
  bench idle -n "$IDLE" --hold 4 "$@" >"$OUT/idle.json" 2>"$OUT/idle.log" &
  local load=$!
  until grep -q "^holding" "$OUT/idle.log" 2>/dev/null; do sleep 0.2; done
  sleep 1
  local after
  after=$(rss_kib)
  wait $load
  echo "$before $after $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["operations"])' "$OUT/idle.json")"
  stop
}

start
for inflight in 1 32; do
  bench rpc -c 50 -P $inflight -d "$DURATION" --keyspace 1000 >"$OUT/hpkv-$inflight.json"
  bench socketio -c 50 -P $inflight -d "$DURATION" --keyspace 1000 >"$OUT/socketio-$inflight.json"
done
stop
read -r hb ha hn <<<"$(idle_rss)"
read -r sb sa sn <<<"$(idle_rss --socketio)"

python3 - "$OUT" "$DURATION" "$hb" "$ha" "$hn" "$sb" "$sa" "$sn" >docs/benchmarks-socketio.md <<'PY'
import json, sys, datetime, platform
out, duration = sys.argv[1], sys.argv[2]
hb, ha, hn, sb, sa, sn = map(int, sys.argv[3:9])
load = lambda n: json.load(open(f"{out}/{n}.json"))
print("# socket.io face benchmarks\n")
print("The socket.io face next to the HPKV WebSocket face, against one server in one run of:\n")
print("```sh\nbash bench/socketio.sh\n```\n")
print(f"Run on {datetime.date.today()}, {duration} s per measurement, server pinned to core 0 and")
print(f"the load generator to core 1 ({platform.machine()}, Linux {platform.release()}), embedded")
print("store with relaxed durability (reads are what is measured).\n")
print("| acknowledged GETs, 50 connections | HPKV `/ws` (req/s) | socket.io verb face (req/s) | ratio | HPKV p99 (ms) | socket.io p99 (ms) |")
print("|---|---:|---:|---:|---:|---:|")
for inflight in (1, 32):
    h, s = load(f"hpkv-{inflight}"), load(f"socketio-{inflight}")
    print(f"| {inflight} in flight | {h['per_second']:,.0f} | {s['per_second']:,.0f} | {s['per_second']/h['per_second']:.2f} | {h['latency']['p99_us']/1000:.2f} | {s['latency']['p99_us']/1000:.2f} |")
per = lambda before, after, n: (after - before) / max(n, 1)
print(f"\n| idle connections | held | RSS per connection (KiB) |\n|---|---:|---:|")
print(f"| HPKV `/ws` | {hn:,} | {per(hb, ha, hn):.1f} |")
print(f"| socket.io (WebSocket transport) | {sn:,} | {per(sb, sa, sn):.1f} |")
print("\n## Commands behind each figure\n\n```sh")
print("ripplekv bench rpc -c 50 -P 1|32 -d N --keyspace 1000       # HPKV GETs")
print("ripplekv bench socketio -c 50 -P 1|32 -d N --keyspace 1000  # socket.io verb-face GETs")
print(f"ripplekv bench idle -n {hn} --hold 4 [--socketio]            # RSS read from /proc while held")
print("```")
PY
echo "wrote docs/benchmarks-socketio.md" >&2
cat docs/benchmarks-socketio.md
