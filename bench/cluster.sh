#!/usr/bin/env bash
# Cluster figures: 3 RippleKV nodes on one PostgreSQL database, measured with the
# project's load generator, next to one node on the embedded store in the same run.
#   - durable SET, 50 connections spread over the 3 nodes (and over 1 embedded node);
#   - cross-node notification latency: writes on node 1 at a fixed rate, 100
#     subscribers on node 2, once with LISTEN/NOTIFY and once with a Redis bus.
# Writes docs/benchmarks-cluster.md.
#
#   bash bench/cluster.sh            (about 1 minute; DURATION=10 for longer runs)
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
cleanup() {
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  redis-cli -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || true
  psql -q -d "$ADMIN" -c "DROP DATABASE IF EXISTS ripplekv_bench WITH (FORCE)" 2>/dev/null || true
  rm -rf "$OUT"
}
trap cleanup EXIT

cargo build --release --locked --bin ripplekv >&2
RK=target/release/ripplekv
redis-server --port $REDIS_PORT --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null

wait_listening() { until grep -q "listening on" "$1"; do sleep 0.1; done; }
start_cluster() { # extra serve flags...
  psql -q -d "$ADMIN" -c "DROP DATABASE IF EXISTS ripplekv_bench WITH (FORCE)" -c "CREATE DATABASE ripplekv_bench"
  local store=${ADMIN%/*}/ripplekv_bench
  pids=()
  for i in 1 2 3; do
    "$RK" serve --listen 127.0.0.1:$((3410 + i)) --store "$store" --api-key $KEY "$@" \
      2>"$OUT/node$i.log" &
    pids+=($!)
  done
  for i in 1 2 3; do wait_listening "$OUT/node$i.log"; done
}
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
bench --url "$NODES" durable -c 50 -d "$DURATION" >"$OUT/cluster-durable.json"
bench --url http://127.0.0.1:3412 fanout -s "$SUBSCRIBERS" -r "$RATE" -w "$WRITERS" -d "$DURATION" \
  --write-url http://127.0.0.1:3411 >"$OUT/notify.json"
stop_cluster

echo "== 3 nodes, Redis bus: cross-node fan-out" >&2
start_cluster --bus redis://127.0.0.1:$REDIS_PORT
bench --url http://127.0.0.1:3412 fanout -s "$SUBSCRIBERS" -r "$RATE" -w "$WRITERS" -d "$DURATION" \
  --write-url http://127.0.0.1:3411 >"$OUT/redis.json"
stop_cluster

python3 - "$OUT" "$DURATION" "$RATE" "$SUBSCRIBERS" "$WRITERS" >docs/benchmarks-cluster.md <<'PY'
import json, platform, sys, datetime
out, duration, rate, subscribers, writers = sys.argv[1:6]
load = lambda name: json.load(open(f"{out}/{name}.json"))
embedded, durable, notify, redis = (load(n) for n in ("embedded", "cluster-durable", "notify", "redis"))
ms = lambda report, p: report["latency"][p] / 1000
print("# Cluster benchmarks\n")
print("Three nodes on one PostgreSQL database, next to one node on the embedded store,")
print("measured in one run of:\n\n```sh\nbash bench/cluster.sh\n```\n")
print(f"Run on {datetime.date.today()}, {duration} s per measurement, on one machine: PostgreSQL,")
print("Redis, the three nodes and the load generator share its cores, so these are this")
print(f"machine's figures ({platform.machine()}, Linux {platform.release()}), not a ceiling.\n")
print("| measurement | result | target | met |\n|---|---:|---|---|")
d = durable["per_second"]
print(f"| durable SET, 50 connections over 3 nodes (req/s) | {d:,.0f} | >= 15,000 | {'yes' if d >= 15000 else '**no**'} |")
print(f"| durable SET, 50 connections, 1 embedded node (req/s), same run | {embedded['per_second']:,.0f} | (baseline) | |")
for name, report in (("LISTEN/NOTIFY", notify), ("Redis bus", redis)):
    p99 = ms(report, "p99_us")
    achieved = report["extra"]["writes_per_second"]
    held = achieved >= 0.95 * float(rate)
    met = "yes" if p99 < 20 and held else "**no**"
    print(f"| cross-node notification p99, {name}, {achieved:,.0f} writes/s achieved of {rate} asked (ms) | {p99:.2f} | < 20 at 1,000 writes/s | {met} |")
print("\n| cross-node delivery (ms) | p50 | p99 | p99.9 | max | delivered |\n|---|---:|---:|---:|---:|---:|")
for name, report in (("LISTEN/NOTIFY", notify), ("Redis bus", redis)):
    extra = report["extra"]
    print(f"| {name}, {subscribers} subscribers on node 2, {writers} writers on node 1 | {ms(report,'p50_us'):.2f} | {ms(report,'p99_us'):.2f} | {ms(report,'p999_us'):.2f} | {ms(report,'max_us'):.2f} | {report['operations']:,} of {extra['expected_deliveries']:,} |")
print("\n## Commands behind each figure\n\n```sh")
print("ripplekv bench durable -c 50 -d N --url http://node1,http://node2,http://node3")
print("ripplekv bench durable -c 50 -d N --url http://embedded-node")
print(f"ripplekv bench fanout -s {subscribers} -r {rate} -w {writers} -d N --url http://node2 --write-url http://node1")
print("```")
PY
echo "wrote docs/benchmarks-cluster.md" >&2
cat docs/benchmarks-cluster.md
