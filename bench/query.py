#!/usr/bin/python3
"""Query benchmark: the same generated data (10,000 series, 3 h at 15 s)
backfilled into sidewatch (`sidewatch import openmetrics`) and into a real
Prometheus (`promtool tsdb create-blocks-from openmetrics`, then
`prometheus` on those blocks); then the same dashboard queries over HTTP
against both, alternately, RUNS times each. Prints the median end-to-end
time per query and the ratio, the peak resident memory (VmHWM) of both
servers after the queries, and whether both returned the same result.

Data: http_requests_total{job, instance, handler, code}: 8,020 counters;
http_request_duration_seconds_bucket{job, instance, le}: 180 histograms of
11 buckets (1,980 series). Timestamps end at the start of the current
minute, so Prometheus's retention keeps them.

Usage: bench/query.py [RUNS]"""
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("SIDEWATCH_BIN", os.path.join(REPO, "sidewatch"))
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
STEP = 15
HOURS = 3
# and 5.5 minutes before, so that even the first (shifted, see EVAL_SHIFT)
# rate window is full: over a partly empty window 2.42 extrapolates
# differently (it clamps at the counter's zero point before choosing the
# extrapolation, 3.x after).
STEPS = HOURS * 3600 // STEP + 22
END = int(time.time()) // 60 * 60
START = END - (STEPS - 1) * STEP
BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

QUERIES = [
    ("sum by (job) (rate(http_requests_total[5m])), 3 h at 15 s",
     "query_range", "sum by (job) (rate(http_requests_total[5m]))"),
    ("histogram_quantile(0.99, sum by (le) (rate(..._bucket[5m]))), 3 h at 15 s",
     "query_range", "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"),
    ("topk(10, rate(http_requests_total[5m])), instant",
     "query", "topk(10, rate(http_requests_total[5m]))"),
]


def generate(path):
    rnd = random.Random(3)
    with open(path, "w") as f:
        w = f.write
        w("# HELP http_requests Requests.\n# TYPE http_requests counter\n")
        n = 0
        for job in range(10):
            for inst in range(20):
                for handler in range(10):
                    for code in ("200", "500", "404", "302"):
                        if n >= 8020:
                            break
                        n += 1
                        lab = (f'{{job="job-{job}",instance="10.0.{job}.{inst}:8080",'
                               f'handler="/h{handler}",code="{code}"}}')
                        v = rnd.randint(0, 1000)
                        rate = rnd.uniform(0, 40)
                        lines = []
                        for k in range(STEPS):
                            v += int(rnd.uniform(0, 2 * rate))
                            lines.append(f"http_requests_total{lab} {v} {START + k * STEP}\n")
                        w("".join(lines))
        w("# HELP http_request_duration_seconds Latency.\n# TYPE http_request_duration_seconds histogram\n")
        for job in range(10):
            for inst in range(18):
                lab = f'job="job-{job}",instance="10.0.{job}.{inst}:8080"'
                counts = [0] * (len(BOUNDS) + 1)
                total = 0.0
                rows = [[] for _ in range(len(BOUNDS) + 1)]
                sums, cnts = [], []
                for k in range(STEPS):
                    for _ in range(rnd.randint(0, 20)):
                        x = rnd.expovariate(6)
                        total += x
                        for b, ub in enumerate(BOUNDS + [float("inf")]):
                            if x <= ub:
                                counts[b] += 1
                                break
                    cum = 0
                    for b in range(len(BOUNDS) + 1):
                        cum += counts[b]
                        rows[b].append(cum)
                    sums.append(total)
                    cnts.append(cum)
                for b, ub in enumerate(BOUNDS + ["+Inf"]):
                    le = ub if isinstance(ub, str) else repr(float(ub))
                    w("".join(f'http_request_duration_seconds_bucket{{{lab},le="{le}"}} {c} {START + k * STEP}\n'
                              for k, c in enumerate(rows[b])))
                w("".join(f"http_request_duration_seconds_sum{{{lab}}} {s:.6f} {START + k * STEP}\n"
                          for k, s in enumerate(sums)))
                w("".join(f"http_request_duration_seconds_count{{{lab}}} {c} {START + k * STEP}\n"
                          for k, c in enumerate(cnts)))
        w("# EOF\n")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(url, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


# Evaluation times sit 7 s off the sample grid. Prometheus 3.x (and
# sidewatch) select range windows left-open, (t - 5m, t]; the 2.42 here
# selects [t - 5m, t]. With a sample exactly at t - 5m the two windows hold
# different samples and the answers differ by design; off the grid they
# hold the same samples, so the results must match.
EVAL_SHIFT = 7


def run_query(base, kind, q):
    params = {"query": q}
    if kind == "query_range":
        params.update(start=END - HOURS * 3600 - EVAL_SHIFT, end=END - EVAL_SHIFT, step=STEP)
    else:
        params["time"] = END - EVAL_SHIFT
    body = urllib.parse.urlencode(params).encode()
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(f"{base}/api/v1/{kind}", data=body, timeout=300) as r:
            data = r.read()
    except urllib.error.HTTPError as e:
        data = e.read()
    dt = time.perf_counter() - t0
    try:
        return dt, json.loads(data)
    except ValueError:
        return dt, {"status": "error", "error": data[:200].decode(errors="replace")}


def difference(a, b):
    """None when both results are equal (values within 1e-9 relative: float
    summation order may differ), else the first difference."""
    if a.get("status") != "success" or b.get("status") != "success":
        return f"status {a.get('status')} vs {b.get('status')}"
    ra, rb = a["data"]["result"], b["data"]["result"]
    key = lambda s: json.dumps(s["metric"], sort_keys=True)
    ra, rb = sorted(ra, key=key), sorted(rb, key=key)
    if len(ra) != len(rb):
        return f"{len(ra)} vs {len(rb)} series"
    for x, y in zip(ra, rb):
        if x["metric"] != y["metric"]:
            return f"series {x['metric']} vs {y['metric']}"
        px = x.get("values") or [x.get("value")]
        py = y.get("values") or [y.get("value")]
        if len(px) != len(py):
            return f"{x['metric']}: {len(px)} vs {len(py)} points"
        for (tx, vx), (ty, vy) in zip(px, py):
            if tx != ty:
                return f"{x['metric']}: point at {tx} vs {ty}"
            fx, fy = float(vx), float(vy)
            if fx != fy and not (abs(fx - fy) <= 1e-9 * max(abs(fx), abs(fy))) and not (fx != fx and fy != fy):
                return f"{x['metric']} at {tx}: {vx} vs {vy}"
    return None


def main():
    tmp = tempfile.mkdtemp(prefix="sidewatch-query-bench-")
    procs = []
    try:
        om = os.path.join(tmp, "data.om")
        generate(om)
        subprocess.run([BIN, "import", "openmetrics", om, f"--storage.path={tmp}/sw"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, f"{tmp}/prom"], check=True,
                       stdout=subprocess.DEVNULL)
        os.remove(om)
        cfg = os.path.join(tmp, "empty.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
        sw_port, prom_port = free_port(), free_port()
        sw = subprocess.Popen([BIN, f"--config.file={cfg}", f"--storage.path={tmp}/sw",
                               f"--web.listen-address=127.0.0.1:{sw_port}", "--log.level=warn"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sw)
        prom = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/prom",
                                 f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(prom)
        bases = {"sidewatch": f"http://127.0.0.1:{sw_port}", "prometheus": f"http://127.0.0.1:{prom_port}"}
        for b in bases.values():
            wait_http(b + "/-/ready")
        print(f"query: 10,000 series, {HOURS} h at {STEP} s, backfilled into both; {RUNS} runs each, alternately,"
              " medians (end to end over HTTP)")
        print(f"{'':66}{'sidewatch':>11}{'prometheus':>11}{'ratio':>7}  same result")
        for name, kind, q in QUERIES:
            times = {"sidewatch": [], "prometheus": []}
            results = {}
            for _ in range(RUNS):
                for who, base in bases.items():
                    dt, res = run_query(base, kind, q)
                    times[who].append(dt)
                    results[who] = res
            s, p = statistics.median(times["sidewatch"]), statistics.median(times["prometheus"])
            diff = difference(results["sidewatch"], results["prometheus"])
            err = ""
            if results["sidewatch"].get("status") != "success":
                err = f" (sidewatch: {str(results['sidewatch'].get('error')).strip()})"
            elif diff:
                err = f" ({diff})"
            print(f"{name:66}{s * 1000:9.1f}ms{p * 1000:9.1f}ms{s / p:7.2f}  {'NO' if diff else 'yes'}{err}")
        m = {who: hwm(pr.pid) for who, pr in (("sidewatch", sw), ("prometheus", prom))}
        print(f"{'peak resident memory (VmHWM) after the queries':66}{m['sidewatch'] / 2**20:9.1f}MB"
              f"{m['prometheus'] / 2**20:9.1f}MB{m['sidewatch'] / m['prometheus']:7.2f}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
