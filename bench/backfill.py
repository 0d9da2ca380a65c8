#!/usr/bin/python3
"""Backfill benchmark: the same OpenMetrics file loaded by
`sidewatch import openmetrics` and by `promtool tsdb create-blocks-from
openmetrics` (Debian's Prometheus 2.42). Prints time, samples/s and bytes per
sample on disk for both, with ratios (sidewatch / promtool).

Input (generated once, cached in build/bench/): 10,000 series x 720 samples at
a 15 s step: 4,000 counters, 4,000 gauges (random walks) and 167 histograms of
10 buckets (+ _sum, _count), grouped by series as promtool expects.

Usage: bench/backfill.py [SERIES] [SAMPLES_PER_SERIES]"""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("SIDEWATCH_BIN", os.path.join(REPO, "sidewatch"))
SERIES = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 720
START = 1_700_000_000  # seconds
STEP = 15


def generate(path):
    rnd = random.Random(1)
    n_counters = SERIES * 4 // 10
    n_gauges = SERIES * 4 // 10
    n_hist = (SERIES - n_counters - n_gauges) // 12
    bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
    with open(path + ".tmp", "w") as f:
        w = f.write
        w("# HELP bench_requests Requests served.\n# TYPE bench_requests counter\n")
        for i in range(n_counters):
            lab = f'{{instance="host-{i % 100}:9100",path="/api/{i // 100}"}}'
            v = rnd.randint(0, 1000)
            lines = []
            for k in range(STEPS):
                v += rnd.randint(0, 20)
                lines.append(f"bench_requests_total{lab} {v} {START + k * STEP}\n")
            w("".join(lines))
        w("# HELP bench_temperature A gauge.\n# TYPE bench_temperature gauge\n")
        for i in range(n_gauges):
            lab = f'{{instance="host-{i % 100}:9100",sensor="s{i // 100}"}}'
            v = rnd.uniform(10, 30)
            lines = []
            for k in range(STEPS):
                v += rnd.uniform(-0.5, 0.5)
                lines.append(f"bench_temperature{lab} {v:.3f} {START + k * STEP}\n")
            w("".join(lines))
        w("# HELP bench_latency_seconds Request latency.\n# TYPE bench_latency_seconds histogram\n")
        for i in range(n_hist):
            lab = f'instance="host-{i % 100}:9100",handler="h{i // 100}"'
            counts = [0] * (len(bounds) + 1)
            total = 0.0
            rows = {b: [] for b in range(len(bounds) + 1)}
            sums, cnts = [], []
            for k in range(STEPS):
                for _ in range(rnd.randint(0, 30)):
                    x = rnd.expovariate(8)
                    total += x
                    for b, ub in enumerate(bounds + [float("inf")]):
                        if x <= ub:
                            counts[b] += 1
                cum = 0
                for b in range(len(bounds) + 1):
                    cum += counts[b]
                    rows[b].append(cum)
                sums.append(total)
                cnts.append(cum)
            for b, ub in enumerate(bounds + ["+Inf"]):
                le = ub if isinstance(ub, str) else repr(float(ub))
                w("".join(f'bench_latency_seconds_bucket{{{lab},le="{le}"}} {c} {START + k * STEP}\n'
                          for k, c in enumerate(rows[b])))
            w("".join(f"bench_latency_seconds_sum{{{lab}}} {s:.6f} {START + k * STEP}\n" for k, s in enumerate(sums)))
            w("".join(f"bench_latency_seconds_count{{{lab}}} {c} {START + k * STEP}\n" for k, c in enumerate(cnts)))
        w("# EOF\n")
    os.rename(path + ".tmp", path)


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def timed(args):
    t0 = time.time()
    p = subprocess.run(args, capture_output=True, text=True)
    dt = time.time() - t0
    if p.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{p.stdout}\n{p.stderr}")
    return dt, p.stdout


def main():
    cache = os.path.join(REPO, "build", "bench")
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, f"backfill-{SERIES}x{STEPS}.om")
    if not os.path.exists(path):
        print(f"generating {path} ...", flush=True)
        generate(path)
    samples = None
    tmp = tempfile.mkdtemp(prefix="sidewatch-backfill-")
    try:
        sw_dir = os.path.join(tmp, "sw")
        dt_sw, out = timed([BIN, "import", "openmetrics", path, f"--storage.path={sw_dir}"])
        samples = int(out.split("imported ")[1].split(" ")[0])
        # The database after import, without free pages or SQLite's WAL.
        sw_bytes = dir_bytes(sw_dir)
        prom_dir = os.path.join(tmp, "prom")
        dt_p, _ = timed(["promtool", "tsdb", "create-blocks-from", "openmetrics", path, prom_dir])
        prom_bytes = dir_bytes(prom_dir)
        size_mb = os.path.getsize(path) / 2**20
        print(f"backfill: {SERIES} series x {STEPS} samples = {samples} samples ({size_mb:.0f} MiB OpenMetrics)")
        print(f"{'':26}{'sidewatch':>14}{'promtool':>14}{'ratio':>8}")
        print(f"{'time (s)':26}{dt_sw:14.2f}{dt_p:14.2f}{dt_sw / dt_p:8.2f}")
        print(f"{'samples/s':26}{samples / dt_sw:14.0f}{samples / dt_p:14.0f}{(samples / dt_sw) / (samples / dt_p):8.2f}")
        print(f"{'bytes/sample on disk':26}{sw_bytes / samples:14.3f}{prom_bytes / samples:14.3f}{sw_bytes / prom_bytes:8.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
