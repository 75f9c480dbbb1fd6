#!/usr/bin/env bash
# Cluster figures: 3 RippleKV nodes on one PostgreSQL database, measured with the
# project's load generator, next to one node on the embedded store in the same run.
#   - durable SET, 50 connections spread over the 3 nodes (and over 1 embedded node,
#     and 1 node on PostgreSQL), with where the machine's CPU went in the 3-node run;
#     the same with synchronous_commit off, a diagnostic showing what the WAL flush
#     costs (not a durable figure);
#   - cross-node notification latency: writes on node 1 at a fixed rate, 100
#     subscribers on node 2, once with LISTEN/NOTIFY and once with a Redis bus.
# Writes docs/benchmarks-cluster.md (or $REPORT).
#
#   bash bench/cluster.sh            (about 1 minute; DURATION=10 for longer runs)
#
#   DB_DELAY_MS=0.25 bash bench/cluster.sh     the nodes reach PostgreSQL through
#       bench/delay-proxy.py, which delays each direction by that much (here a 0.5 ms
#       round trip, as to a database on another machine in the same data centre)
#   RIPPLEKV_BIN=path bash bench/cluster.sh    measure another build (an older commit's)
#
# Needs: cargo, psql and a PostgreSQL server (RIPPLEKV_STORE's, default
# postgres://postgres@127.0.0.1:5432/…; a fresh database is made and dropped), and
# redis-server. Everything runs on this machine: the database, Redis, the nodes and the
# load generator share its cores, so read the figures as this machine's, not a
# server's ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
RATE=${RATE:-1000}
SUBSCRIBERS=${SUBSCRIBERS:-100}
# Writing connections for the fan-out runs: enough that the rate holds although each
# write waits for its durable commit.
WRITERS=${WRITERS:-16}
ADMIN=${RIPPLEKV_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
KEY=bench-key
OUT=$(mktemp -d)
REDIS_PORT=6393
pids=()
pids_proxy=
cleanup() {
  kill -TERM "${pids[@]}" $pids_proxy 2>/dev/null || true
  wait 2>/dev/null || true
  redis-cli -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || true
  psql -q -d "$ADMIN" -c "DROP DATABASE IF EXISTS ripplekv_bench WITH (FORCE)" 2>/dev/null || true
  rm -rf "$OUT"
}
trap cleanup EXIT

if [ -z "${RIPPLEKV_BIN:-}" ]; then
  cargo build --release --locked --bin ripplekv >&2
fi
RK=${RIPPLEKV_BIN:-target/release/ripplekv}
REPORT=${REPORT:-docs/benchmarks-cluster.md}
DB_DELAY_MS=${DB_DELAY_MS:-}
STORE_BASE=${ADMIN%/*}
if [ -n "$DB_DELAY_MS" ]; then
  # host:port of the database, reached through the proxy on port 5499 instead.
  DATABASE_ADDRESS=$(sed -E 's|^[a-z]+://([^@/]*@)?([^/]+)/.*$|\2|' <<<"$ADMIN")
  python3 bench/delay-proxy.py 5499 "$DATABASE_ADDRESS" "$DB_DELAY_MS" >"$OUT/proxy.log" &
  pids_proxy=$!
  until grep -q listening "$OUT/proxy.log"; do sleep 0.1; done
  STORE_BASE=${STORE_BASE/$DATABASE_ADDRESS/127.0.0.1:5499}
fi
redis-server --port $REDIS_PORT --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null

wait_listening() { until grep -q "listening on" "$1"; do sleep 0.1; done; }
start_cluster() { # extra serve flags...
  psql -q -d "$ADMIN" -c "DROP DATABASE IF EXISTS ripplekv_bench WITH (FORCE)" -c "CREATE DATABASE ripplekv_bench"
  if [ -n "${DATABASE_SETTING:-}" ]; then
    psql -q -d "$ADMIN" -c "ALTER DATABASE ripplekv_bench SET $DATABASE_SETTING"
  fi
  local store=$STORE_BASE/ripplekv_bench
  pids=()
  for i in $(seq "${NODE_COUNT:-3}"); do
    "$RK" serve --listen 127.0.0.1:$((3410 + i)) --store "$store" --api-key $KEY "$@" \
      2>"$OUT/node$i.log" &
    pids+=($!)
  done
  for i in $(seq "${NODE_COUNT:-3}"); do wait_listening "$OUT/node$i.log"; done
}
# CPU clock ticks (100 per second per core) used so far: by this shell's finished
# children (the load generator, once it has run), by processes, by PostgreSQL's, idle.
children_ticks() { awk '{print $16 + $17}' /proc/$$/stat; }
process_ticks() { local total=0 pid; for pid in "$@"; do
  total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done; echo $total; }
postgres_ticks() { process_ticks $(pgrep -u postgres postgres || true); }
idle_ticks() { awk '/^cpu /{print $5}' /proc/stat; }
stop_cluster() { kill -TERM "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; pids=(); }
bench() { "$RK" bench --api-key $KEY --json --quiet "$@"; }
NODES=http://127.0.0.1:3411,http://127.0.0.1:3412,http://127.0.0.1:3413

echo "== embedded store, one node: durable SET -c 50" >&2
"$RK" serve --listen 127.0.0.1:3410 --data-dir "$OUT/embedded" --api-key $KEY 2>"$OUT/embedded.log" &
pids=($!)
wait_listening "$OUT/embedded.log"
bench --url http://127.0.0.1:3410 durable -c 50 -d "$DURATION" >"$OUT/embedded.json"
stop_cluster

echo "== 3 nodes, LISTEN/NOTIFY: durable SET -c 50, cross-node fan-out" >&2
start_cluster
before=("$(children_ticks)" "$(process_ticks "${pids[@]}")" "$(postgres_ticks)" "$(idle_ticks)" "$(date +%s%N)")
bench --url "$NODES" durable -c 50 -d "$DURATION" >"$OUT/cluster-durable.json"
after=("$(children_ticks)" "$(process_ticks "${pids[@]}")" "$(postgres_ticks)" "$(idle_ticks)" "$(date +%s%N)")
python3 - "${before[@]}" "${after[@]}" >"$OUT/cpu.json" <<'PY'
import json, os, sys
b, a = [int(x) for x in sys.argv[1:6]], [int(x) for x in sys.argv[6:11]]
seconds = (a[4] - b[4]) / 1e9
share = lambda i: (a[i] - b[i]) / 100 / seconds  # cores busy on average
print(json.dumps({"load": share(0), "nodes": share(1), "postgres": share(2),
                  "idle": share(3), "cores": os.cpu_count()}))
PY
bench --url http://127.0.0.1:3412 fanout -s "$SUBSCRIBERS" -r "$RATE" -w "$WRITERS" -d "$DURATION" \
  --write-url http://127.0.0.1:3411 >"$OUT/notify.json"
stop_cluster

echo "== 1 node on PostgreSQL: durable SET -c 50" >&2
NODE_COUNT=1 start_cluster
bench --url http://127.0.0.1:3411 durable -c 50 -d "$DURATION" >"$OUT/single-postgres.json"
stop_cluster

echo "== 3 nodes, synchronous_commit off (diagnostic): durable SET -c 50" >&2
DATABASE_SETTING="synchronous_commit = off" start_cluster
bench --url "$NODES" durable -c 50 -d "$DURATION" >"$OUT/cluster-async.json"
stop_cluster

echo "== 3 nodes, Redis bus: cross-node fan-out" >&2
start_cluster --bus redis://127.0.0.1:$REDIS_PORT
bench --url http://127.0.0.1:3412 fanout -s "$SUBSCRIBERS" -r "$RATE" -w "$WRITERS" -d "$DURATION" \
  --write-url http://127.0.0.1:3411 >"$OUT/redis.json"
stop_cluster

python3 - "$OUT" "$DURATION" "$RATE" "$SUBSCRIBERS" "$WRITERS" "$DB_DELAY_MS" >"$REPORT" <<'PY'
import json, platform, sys, datetime
out, duration, rate, subscribers, writers, delay = sys.argv[1:7]
load = lambda name: json.load(open(f"{out}/{name}.json"))
embedded, durable, notify, redis, single, unflushed, cpu = (load(n) for n in (
    "embedded", "cluster-durable", "notify", "redis", "single-postgres", "cluster-async", "cpu"))
ms = lambda report, p: report["latency"][p] / 1000
print("# Cluster benchmarks\n")
print("Three nodes on one PostgreSQL database, next to one node on the embedded store,")
print("measured in one run of:\n\n```sh\nbash bench/cluster.sh\n```\n")
print(f"Run on {datetime.date.today()}, {duration} s per measurement, on one machine: PostgreSQL,")
print("Redis, the three nodes and the load generator share its cores, so these are this")
print(f"machine's figures ({platform.machine()}, Linux {platform.release()}), not a ceiling.\n")
if delay:
    print(f"The nodes reached PostgreSQL through `bench/delay-proxy.py`, {delay} ms each way")
    print(f"(`DB_DELAY_MS={delay} bash bench/cluster.sh`).\n")
print("| measurement | result | target | met |\n|---|---:|---|---|")
d = durable["per_second"]
print(f"| durable SET, 50 connections over 3 nodes (req/s) | {d:,.0f} | >= 15,000 | {'yes' if d >= 15000 else '**no**'} |")
print(f"| durable SET, 50 connections, 1 embedded node (req/s), same run | {embedded['per_second']:,.0f} | (baseline) | |")
print(f"| durable SET, 50 connections, 1 node on PostgreSQL (req/s), same run | {single['per_second']:,.0f} | | |")
print(f"| SET, 50 connections over 3 nodes, `synchronous_commit` off (req/s; a diagnostic, not durable) | {unflushed['per_second']:,.0f} | | |")
for name, report in (("LISTEN/NOTIFY", notify), ("Redis bus", redis)):
    p99 = ms(report, "p99_us")
    achieved = report["extra"]["writes_per_second"]
    held = achieved >= 0.95 * float(rate)
    met = "yes" if p99 < 20 and held else "**no**"
    print(f"| cross-node notification p99, {name}, {achieved:,.0f} writes/s achieved of {rate} asked (ms) | {p99:.2f} | < 20 at 1,000 writes/s | {met} |")
pct = lambda cores: f"{100 * cores:.0f}%"
print(f"\nDuring the 3-node durable run ({cpu['cores']} cores, in cores' worth of CPU): "
      f"load generator {pct(cpu['load'])}, the three nodes {pct(cpu['nodes'])}, "
      f"PostgreSQL {pct(cpu['postgres'])}, idle {pct(cpu['idle'])}.")
print("\n| cross-node delivery (ms) | p50 | p99 | p99.9 | max | delivered |\n|---|---:|---:|---:|---:|---:|")
for name, report in (("LISTEN/NOTIFY", notify), ("Redis bus", redis)):
    extra = report["extra"]
    print(f"| {name}, {subscribers} subscribers on node 2, {writers} writers on node 1 | {ms(report,'p50_us'):.2f} | {ms(report,'p99_us'):.2f} | {ms(report,'p999_us'):.2f} | {ms(report,'max_us'):.2f} | {report['operations']:,} of {extra['expected_deliveries']:,} |")
print("\n## Commands behind each figure\n\n```sh")
print("ripplekv bench durable -c 50 -d N --url http://node1,http://node2,http://node3")
print("ripplekv bench durable -c 50 -d N --url http://embedded-node   # and --url http://one-postgres-node")
print(f"ripplekv bench fanout -s {subscribers} -r {rate} -w {writers} -d N --url http://node2 --write-url http://node1")
print("```")
PY
echo "wrote $REPORT" >&2
cat "$REPORT"
