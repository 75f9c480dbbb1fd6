"""Turns the raw results of bench/compare.sh into docs/benchmarks.md (on stdout) and
docs/benchmarks.svg. Every ratio compares figures measured in the same run."""
import csv
import datetime
import json
import os
import platform
import sys

out, duration, idle_n, fanout_n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fanout_writers, fanout_rate = sys.argv[5], sys.argv[6]


def load(name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)


def redis(name):
    with open(os.path.join(out, name + ".csv")) as f:
        row = list(csv.reader(f))[-1]
    with open(os.path.join(out, name + ".cpu")) as f:
        cpu = float(f.read().strip())
    return {"rps": float(row[1]), "p50_ms": float(row[4]), "p99_ms": float(row[6]), "client_cpu": cpu}


rk_p1, rk_p32, rk_lat = load("rk_get_p1.json"), load("rk_get_p32.json"), load("rk_lat.json")
rk_fanout, rk_durable, rk_idle = load("rk_fanout.json"), load("rk_durable.json"), load("rk_idle.json")
floor_fanout = load("floor_fanout.json")
idle_rss = load("rk_idle_rss.json")
echo_lat, echo_p1 = load("echo_lat.json"), load("echo_p1.json")
rd_p1, rd_p32, rd_lat, rd_durable = (redis(n) for n in ("redis_get_p1", "redis_get_p32", "redis_lat", "redis_durable"))

held = max(rk_idle["operations"], 1)
kib_per_conn = (idle_rss["holding_kib"] - idle_rss["before_kib"]) / held


def cpu(report):
    """The load generator's CPU use in the run, as a share of its one core."""
    return report.get("client_cpu") or 0.0


# (what, ripplekv, its client CPU, (baseline, value, its client CPU), ratio, must, aim, met, aim met)
higher = lambda ratio, must, aim: (ratio >= must, ratio >= aim)
lower = lambda ratio, must, aim: (ratio <= must, ratio <= aim)
rows = []


def row(what, ours, ours_cpu, base_name, base, base_cpu, ratio, must, aim, better):
    met, aimed = better(ratio, must, aim)
    sign = ">=" if better is higher else "<="
    rows.append((what, ours, ours_cpu, (base_name, base, base_cpu), ratio, f"{sign} {must}x", f"{sign} {aim}x", met, aimed))


row("GET, 50 conns, 32 in flight (req/s)", rk_p32["per_second"], cpu(rk_p32), "Redis GET -c 50 -P 32", rd_p32["rps"],
    rd_p32["client_cpu"], rk_p32["per_second"] / rd_p32["rps"], 0.5, 1.0, higher)
row("GET, 50 conns, 1 in flight (req/s)", rk_p1["per_second"], cpu(rk_p1), "Redis GET -c 50 -P 1", rd_p1["rps"],
    rd_p1["client_cpu"], rk_p1["per_second"] / rd_p1["rps"], 1.0, 1.2, higher)
row("Durable SET, fsync before ack, 50 conns (req/s)", rk_durable["per_second"], cpu(rk_durable),
    "Redis SET, appendfsync always", rd_durable["rps"], rd_durable["client_cpu"],
    rk_durable["per_second"] / rd_durable["rps"], 1.0, 1.5, higher)
row(f"Fan-out, one key to {fanout_n} subscribers (notifications/s)", rk_fanout["per_second"], cpu(rk_fanout),
    "bare broadcast server", floor_fanout["per_second"], cpu(floor_fanout),
    rk_fanout["per_second"] / max(floor_fanout["per_second"], 1), 0.7, 0.9, higher)
row("p99 latency, 1 conn, 1 in flight (ms)", rk_lat["latency"]["p99_us"] / 1000, cpu(rk_lat), "echo server p99",
    echo_lat["latency"]["p99_us"] / 1000, cpu(echo_lat),
    rk_lat["latency"]["p99_us"] / max(echo_lat["latency"]["p99_us"], 1), 1.5, 1.2, lower)
rows.append((f"RSS per idle connection (KiB), {held:,} held", kib_per_conn, cpu(rk_idle), ("target", 6.5, None),
             kib_per_conn / 6.5, "<= 6.5 KiB", "<= 4 KiB", kib_per_conn <= 6.5, kib_per_conn <= 4.0))


def fmt(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.3f}"


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
print("# Benchmarks\n")
print("All figures come from one run of `bench/compare.sh`, which starts every server itself,")
print("pins it to core 0 and its load generator to core 1 with `taskset` (so they never")
print("share a core), and compares RippleKV with Redis, with a bare WebSocket echo server")
print("(`ripplekv-echo`, the same axum/tungstenite stack answering every frame with itself)")
print("and with a bare broadcast server (`ripplekv-broadcast`, the same stack sending every")
print("frame it gets to every connection as one shared message), all measured in the same")
print("run. Reproduce with:\n")
print("```sh\nbash bench/compare.sh\n```\n")
print(f"Machine: {cpu}, {os.cpu_count()} cores visible (shared, noisy), {platform.system()} {platform.release()};")
print(f"run on {datetime.date.today().isoformat()}, {duration} s per measurement.\n")
print("| measurement | RippleKV | baseline in the same run | ratio | must reach | met | aim | aim met | load generator CPU (ours / baseline's) |")
print("|---|---:|---|---:|---|---|---|---|---|")


def load_cpu(ours_cpu, base_cpu):
    shown = lambda c: "—" if c is None else f"{c * 100:.0f}%" + (" (saturated)" if c >= 0.9 else "")
    return f"{shown(ours_cpu)} / {shown(base_cpu)}"


for what, ours, ours_cpu, (base_name, base, base_cpu), ratio, must, aim, met, aimed in rows:
    print(f"| {what} | {fmt(ours)} | {base_name}: {fmt(base)} | {ratio:.2f}x | {must} | {'yes' if met else '**no**'} | {aim} | {'yes' if aimed else 'no'} | {load_cpu(ours_cpu, base_cpu)} |")
print("\nThe load generator runs alone on core 1; its CPU is over its whole run (connecting and")
print("populating included). Where it is marked saturated, that figure may be the load")
print("generator's limit rather than the server's.")
print("\n![Throughput and latency, RippleKV against the baselines](benchmarks.svg)\n")
print("## Latency percentiles (ms)\n")
print("| run | p50 | p90 | p99 | p99.9 | max |")
print("|---|---:|---:|---:|---:|---:|")
for name, r in [("RippleKV GET -c 50 -P 1", rk_p1), ("RippleKV GET -c 50 -P 32", rk_p32), ("RippleKV GET -c 1 -P 1", rk_lat),
                ("RippleKV durable SET -c 50", rk_durable), ("echo -c 1 -P 1", echo_lat), ("echo -c 50 -P 1", echo_p1),
                (f"RippleKV fan-out delivery, {fanout_n} subscribers", rk_fanout),
                (f"broadcast floor delivery, {fanout_n} subscribers", floor_fanout)]:
    l = r["latency"]
    print(f"| {name} | {l['p50_us']/1000:.3f} | {l['p90_us']/1000:.3f} | {l['p99_us']/1000:.3f} | {l['p999_us']/1000:.3f} | {l['max_us']/1000:.3f} |")
print(f"\nRedis p50/p99 (ms): GET -P 1 {rd_p1['p50_ms']}/{rd_p1['p99_ms']}, GET -c 1 {rd_lat['p50_ms']}/{rd_lat['p99_ms']}, durable SET {rd_durable['p50_ms']}/{rd_durable['p99_ms']}.")
print(f"Echo server at 50 connections: {echo_p1['per_second']:,.0f} req/s (the WebSocket floor for the 50-connection runs).")
print(f"Fan-out ({fanout_writers} writers, one write in flight each, at most {fanout_rate} writes/s in all): RippleKV {rk_fanout['extra']['writes']} writes, {rk_fanout['operations']:,} of {rk_fanout['extra']['expected_deliveries']:,} notifications delivered; floor {floor_fanout['extra']['writes']} writes, {floor_fanout['operations']:,} of {floor_fanout['extra']['expected_deliveries']:,} (the floor skips what a lagging socket missed; RippleKV loses nothing).")
cap_note = " (capped by this machine's file descriptor limit; the target is stated at 50,000)" if idle_n < 50000 else ""
print(f"Idle: {held} of {idle_n} connections held{cap_note} (failed: {rk_idle['extra']['failed']}); server RSS {idle_rss['before_kib']/1024:.1f} MiB before, {idle_rss['holding_kib']/1024:.1f} MiB holding.")
print(f"At this figure, 1,000,000 idle connections would take about {kib_per_conn * 1e6 / 1024 / 1024:.1f} GiB of server memory on one machine (plus the kernel's socket buffers, which RSS does not show), and need a file descriptor limit above 1M.")
print("\n## Commands behind each figure\n")
print("```sh")
print("taskset -c 0 ripplekv --durability relaxed|sync …          # the server under test")
print("taskset -c 1 ripplekv bench rpc -c 50 -P 1|32 -d N        # RPC GET")
print("taskset -c 1 ripplekv bench rpc -c 1 -P 1 -d N            # latency (also against ripplekv-echo)")
print("taskset -c 1 ripplekv bench durable -c 50 -P 1 -d N       # against --durability sync")
print(f"taskset -c 1 ripplekv bench fanout -s {fanout_n} -r {fanout_rate} -w {fanout_writers} -d N            # and with --broadcast against ripplekv-broadcast")
print(f"taskset -c 1 ripplekv bench idle -n {idle_n} --hold 3       # RSS read from /proc while held")
print("taskset -c 1 redis-benchmark -c 50 -P 1|32 -t get; -c 1 -t get; -c 50 -t set (appendonly yes, appendfsync always)")
print("```")
print("\nWhere a target is missed the table says so; the measurement is not bent to meet it.")
print("\nAbsolute figures move with the machine (the echo floor above shows how fast its")
print("WebSocket path is in this run). To tell whether a change moved a figure, compare two")
print("builds side by side in one run with `bash bench/ab.sh OLD_BINARY NEW_BINARY`.")
print("\nInstruction counts per GET, per durable SET and per delivered notification, which do")
print("not move with the machine's load, and how each optimisation changed them, are in")
print("[performance.md](performance.md), from `bash bench/instructions.sh`, with what bounds each figure.")
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
for i, (what, ours, ours_cpu, (base_name, base, base_cpu), ratio, target, aim, met, aimed) in enumerate(rows):
    y = 44 + i * (bar_h + gap)
    lower_is_better = target.startswith("<=")
    good = "#12a150" if met else "#e5484d"
    w = min(ratio, 2.0) * scale
    svg.append(f'<text x="20" y="{y + 17}">{what.split(" (")[0][:52]}</text>')
    svg.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="4" fill="{good}"/>')
    target_ratio = 1.0 if "KiB" in target else float(target.split()[1].rstrip("x"))
    tx = left + target_ratio * scale
    svg.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{y - 3}" y2="{y + bar_h + 3}" stroke="#1c2030" stroke-width="2" stroke-dasharray="3 2"/>')
    svg.append(f'<text x="{left + w + 6:.1f}" y="{y + 17}">{ratio:.2f}x{" (lower is better)" if lower_is_better else ""}</text>')
svg.append("</svg>")
with open(os.path.join("docs", "benchmarks.svg"), "w") as f:
    f.write("\n".join(svg))
