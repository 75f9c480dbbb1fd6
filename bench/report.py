"""Turns the raw results of bench/compare.sh into docs/benchmarks.md (on stdout) and
docs/benchmarks.svg. Every ratio compares figures measured in the same run."""
import csv
import datetime
import json
import os
import platform
import sys

out, duration, idle_n, fanout_n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


def load(name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)


def redis(name):
    with open(os.path.join(out, name)) as f:
        row = list(csv.reader(f))[-1]
    return {"rps": float(row[1]), "p50_ms": float(row[4]), "p99_ms": float(row[6])}


rk_p1, rk_p32, rk_lat = load("rk_get_p1.json"), load("rk_get_p32.json"), load("rk_lat.json")
rk_fanout, rk_durable, rk_idle = load("rk_fanout.json"), load("rk_durable.json"), load("rk_idle.json")
idle_rss = load("rk_idle_rss.json")
echo_lat, echo_p1 = load("echo_lat.json"), load("echo_p1.json")
rd_p1, rd_p32, rd_lat, rd_durable = (redis(n) for n in ("redis_get_p1.csv", "redis_get_p32.csv", "redis_lat.csv", "redis_durable.csv"))

held = max(rk_idle["operations"], 1)
kib_per_conn = (idle_rss["holding_kib"] - idle_rss["before_kib"]) / held
rows = [
    # (what, ripplekv, baseline, ratio, target, met)
    ("RPC GET, 50 conns, 1 in flight (req/s)", rk_p1["per_second"], ("Redis GET -c 50 -P 1", rd_p1["rps"]),
     rk_p1["per_second"] / rd_p1["rps"], ">= 1.0x Redis", rk_p1["per_second"] / rd_p1["rps"] >= 1.0),
    ("RPC GET, 50 conns, 32 in flight (req/s)", rk_p32["per_second"], ("Redis GET -c 50 -P 32", rd_p32["rps"]),
     rk_p32["per_second"] / rd_p32["rps"], ">= 0.5x Redis", rk_p32["per_second"] / rd_p32["rps"] >= 0.5),
    ("Durable SET, 50 conns, sync (req/s)", rk_durable["per_second"], ("Redis SET, appendfsync always", rd_durable["rps"]),
     rk_durable["per_second"] / rd_durable["rps"], ">= 1.0x Redis", rk_durable["per_second"] / rd_durable["rps"] >= 1.0),
    ("p99 latency, 1 conn, 1 in flight (ms)", rk_lat["latency"]["p99_us"] / 1000, ("echo server p99", echo_lat["latency"]["p99_us"] / 1000),
     rk_lat["latency"]["p99_us"] / max(echo_lat["latency"]["p99_us"], 1), "<= 1.5x echo",
     rk_lat["latency"]["p99_us"] <= 1.5 * echo_lat["latency"]["p99_us"]),
    (f"Idle connections: server RSS per connection (KiB), {held} held", kib_per_conn, ("target", 8.0),
     kib_per_conn / 8.0, "<= 8 KiB", kib_per_conn <= 8.0),
    (f"Fan-out, one key, {fanout_n} subscribers (notifications/s, 1 server core)", rk_fanout["per_second"], ("target", 500_000.0),
     rk_fanout["per_second"] / 500_000, ">= 500k/s per core", rk_fanout["per_second"] >= 500_000),
]


def fmt(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.3f}"


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
print("# Benchmarks\n")
print("All figures come from one run of `bench/compare.sh`, which starts every server itself,")
print("pins it to core 0 and its load generator to core 1 with `taskset` (so they never")
print("share a core), and compares RippleKV with Redis and with a bare WebSocket echo server")
print("(`ripplekv-echo`, the same axum/tungstenite stack answering every frame with itself)")
print("measured in the same run. Reproduce with:\n")
print("```sh\nbash bench/compare.sh\n```\n")
print(f"Machine: {cpu}, {os.cpu_count()} cores visible (shared, noisy), {platform.system()} {platform.release()};")
print(f"run on {datetime.date.today().isoformat()}, {duration} s per measurement.\n")
print("| measurement | RippleKV | baseline | ratio | target | met |")
print("|---|---:|---|---:|---|---|")
for what, ours, (base_name, base), ratio, target, met in rows:
    print(f"| {what} | {fmt(ours)} | {base_name}: {fmt(base)} | {ratio:.2f}x | {target} | {'yes' if met else '**no**'} |")
print("\n![Throughput and latency, RippleKV against the baselines](benchmarks.svg)\n")
print("## Latency percentiles (ms)\n")
print("| run | p50 | p90 | p99 | p99.9 | max |")
print("|---|---:|---:|---:|---:|---:|")
for name, r in [("RippleKV GET -c 50 -P 1", rk_p1), ("RippleKV GET -c 50 -P 32", rk_p32), ("RippleKV GET -c 1 -P 1", rk_lat),
                ("RippleKV durable SET -c 50", rk_durable), ("echo -c 1 -P 1", echo_lat), ("echo -c 50 -P 1", echo_p1),
                (f"RippleKV fan-out delivery, {fanout_n} subscribers", rk_fanout)]:
    l = r["latency"]
    print(f"| {name} | {l['p50_us']/1000:.3f} | {l['p90_us']/1000:.3f} | {l['p99_us']/1000:.3f} | {l['p999_us']/1000:.3f} | {l['max_us']/1000:.3f} |")
print(f"\nRedis p50/p99 (ms): GET -P 1 {rd_p1['p50_ms']}/{rd_p1['p99_ms']}, GET -c 1 {rd_lat['p50_ms']}/{rd_lat['p99_ms']}, durable SET {rd_durable['p50_ms']}/{rd_durable['p99_ms']}.")
print(f"Echo server at 50 connections: {echo_p1['per_second']:,.0f} req/s (the WebSocket floor for the 50-connection runs).")
print(f"Fan-out: {rk_fanout['extra']['writes']} writes, {rk_fanout['operations']:,} of {rk_fanout['extra']['expected_deliveries']:,} notifications delivered.")
cap_note = " (capped by this machine's file descriptor limit; the target is stated at 50,000)" if idle_n < 50000 else ""
print(f"Idle: {held} of {idle_n} connections held{cap_note} (failed: {rk_idle['extra']['failed']}); server RSS {idle_rss['before_kib']/1024:.1f} MiB before, {idle_rss['holding_kib']/1024:.1f} MiB holding.")
print("\n## Commands behind each figure\n")
print("```sh")
print("taskset -c 0 ripplekv --durability relaxed|sync …          # the server under test")
print("taskset -c 1 ripplekv bench rpc -c 50 -P 1|32 -d N        # RPC GET")
print("taskset -c 1 ripplekv bench rpc -c 1 -P 1 -d N            # latency (also against ripplekv-echo)")
print("taskset -c 1 ripplekv bench durable -c 50 -P 1 -d N       # against --durability sync")
print(f"taskset -c 1 ripplekv bench fanout -s {fanout_n} -r 100 -d N")
print(f"taskset -c 1 ripplekv bench idle -n {idle_n} --hold 3       # RSS read from /proc while held")
print("taskset -c 1 redis-benchmark -c 50 -P 1|32 -t get; -c 1 -t get; -c 50 -t set (appendfsync always)")
print("```")
print("\nWhere a target is missed the table says so; the measurement is not bent to meet it.")
print("\nAbsolute figures move with the machine (the echo floor above shows how fast its")
print("WebSocket path is in this run). To tell whether a change moved a figure, compare two")
print("builds side by side in one run with `bash bench/ab.sh OLD_BINARY NEW_BINARY`.")
print("\nFigures for the socket.io face next to the HPKV face are in")
print("[benchmarks-socketio.md](benchmarks-socketio.md), from `bash bench/socketio.sh`.")
print("\nFigures for several nodes on PostgreSQL (durable writes through 3 nodes, cross-node")
print("notification latency with LISTEN/NOTIFY and with a Redis bus) are in")
print("[benchmarks-cluster.md](benchmarks-cluster.md), from `bash bench/cluster.sh`.")

# The chart: each measurement's ratio to its baseline, with the target marked.
width, bar_h, gap, left = 860, 26, 14, 360
height = 60 + len(rows) * (bar_h + gap)
scale = (width - left - 60) / 2.0  # the axis runs from 0x to 2x
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="system-ui, sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="#ffffff"/>',
       '<text x="20" y="24" font-size="15" font-weight="600">RippleKV against its baselines (ratio; target marked)</text>']
for i, (what, ours, (base_name, base), ratio, target, met) in enumerate(rows):
    y = 44 + i * (bar_h + gap)
    lower_is_better = target.startswith("<=")
    good = "#12a150" if met else "#e5484d"
    w = min(ratio, 2.0) * scale
    svg.append(f'<text x="20" y="{y + 17}">{what.split(" (")[0][:52]}</text>')
    svg.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="4" fill="{good}"/>')
    target_ratio = 1.5 if "1.5x" in target else 0.5 if "0.5x" in target else 1.0
    tx = left + target_ratio * scale
    svg.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{y - 3}" y2="{y + bar_h + 3}" stroke="#1c2030" stroke-width="2" stroke-dasharray="3 2"/>')
    svg.append(f'<text x="{left + w + 6:.1f}" y="{y + 17}">{ratio:.2f}x{" (lower is better)" if lower_is_better else ""}</text>')
svg.append("</svg>")
with open(os.path.join("docs", "benchmarks.svg"), "w") as f:
    f.write("\n".join(svg))
