#!/usr/bin/python3
"""Soak (issue 10): a bounded run of sidewatch scraping 50 targets whose
series churn constantly and evaluating 100 rules, checking that resident
memory and open file descriptors stay flat after a warm-up and that nothing
fails.

  make soak                       (SOAK_SECONDS=600, SOAK_WARMUP=120)
  SOAK_SECONDS=180 SOAK_WARMUP=60 /usr/bin/python3 bench/soak.py

What runs, all on 127.0.0.1 with free ports, each process stopped by PID:
  - one target process (this script with --serve) serving 50 ports; each
    target exposes about 340 series (counters, gauges, a classic histogram
    of 9 buckets) of 6 `pod`s, and every 30 s (staggered over the targets)
    its oldest pod is replaced by a new one: 54 series go stale and 54 new
    ones appear, on every target, for the whole run;
  - sidewatch (./sidewatch, or $SIDEWATCH_BIN) scraping them every 5 s and
    evaluating 100 rules (recording and alerting: rate, sum by,
    histogram_quantile, ratios; some alerts fire, some per pod) every 5 s,
    its store on disk;
  - unless SOAK_PROMETHEUS=0, Debian's prometheus (2.42) with the same
    configuration and rules, for its resident memory alongside.

Every SOAK_SAMPLE seconds (10) it records sidewatch's VmRSS, open fds,
threads, CPU seconds, the store's bytes on disk and counters from its
/metrics. It exits 1, saying why, when after the warm-up: the largest RSS of
the last third exceeds the median of the first third by more than
RSS_GROWTH_FRACTION + RSS_GROWTH_BYTES; open sockets exceed TARGETS +
FD_SLACK (one kept-alive connection per target at most), or the other open
fds' highest count in the last third exceeds the first third's by more than
FD_SLACK; any scrape, rule evaluation, store commit
or notification failed (over the whole run); any `level=error` line was
logged; sidewatch died; or at the end not every target is up or no alert
fires. The table of samples and a summary (for bench/README.md) are
printed either way."""
import http.server
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("SIDEWATCH_BIN", os.path.join(REPO, "sidewatch"))
SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
WARMUP = int(os.environ.get("SOAK_WARMUP", "120"))
SAMPLE = int(os.environ.get("SOAK_SAMPLE", "10"))
WITH_PROMETHEUS = os.environ.get("SOAK_PROMETHEUS", "1") != "0"
TARGETS = 50
JOBS = ("api", "web", "worker", "cache", "auth")  # 10 targets each
INTERVAL = 5      # scrape and evaluation interval, seconds
CHURN = 30        # each target replaces its oldest pod this often
PODS = 6          # pods per target at any time (each lives PODS * CHURN s)
HANDLERS = ("/", "/api/items", "/api/orders", "/search")
ERROR_RATIO = (0.05, 0.004, 0.004, 0.002)   # of requests answered 500, per handler
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# Cumulative share of requests at or below each bound, per handler
# (/search is slow: its p99 is above 1 s, so its latency alert fires).
LATENCY = (
    (0.30, 0.55, 0.80, 0.92, 0.97, 0.99, 0.996, 0.999),
    (0.20, 0.40, 0.70, 0.90, 0.96, 0.985, 0.995, 0.999),
    (0.10, 0.25, 0.50, 0.75, 0.90, 0.97, 0.99, 0.998),
    (0.01, 0.03, 0.08, 0.20, 0.40, 0.70, 0.85, 0.95),
)
QUEUES = 10

# Bounds of the verdict (see the docstring).
RSS_GROWTH_FRACTION = 0.10
RSS_GROWTH_BYTES = 8 * 2**20
FD_SLACK = 5

PAGE = os.sysconf("SC_PAGESIZE")
TICK = os.sysconf("SC_CLK_TCK")


# ---- the targets (run as a child process: bench/soak.py --serve) ---------------

def pod_name(target, gen):
    return f"{JOBS[target % len(JOBS)]}-{target:02d}-{gen:05d}"


def target_body(target, now, t0):
    """The exposition of one target at time now (seconds): deterministic in
    (target, now), so sidewatch and Prometheus see the same series."""
    off = target * CHURN / TARGETS  # stagger the churn over the targets
    epoch = int((now - t0 + off) // CHURN)
    rnd = random.Random(target)
    base_rate = 5 + rnd.random() * 20  # requests/s of one pod
    out = []
    w = out.append
    w("# HELP http_requests_total Requests served.\n# TYPE http_requests_total counter\n")
    pods = []
    for j in range(PODS):
        gen = epoch + PODS - 1 - j + 1000  # the newest pod has the highest number
        born = t0 - off + (epoch - j) * CHURN
        pods.append((pod_name(target, gen), max(0.0, now - born), gen))
    for pod, age, _ in pods:
        for h, handler in enumerate(HANDLERS):
            n = base_rate * (1 + h) * age
            err = math.floor(n * ERROR_RATIO[h])
            w(f'http_requests_total{{pod="{pod}",handler="{handler}",code="200"}} {math.floor(n) - err}\n')
            w(f'http_requests_total{{pod="{pod}",handler="{handler}",code="500"}} {err}\n')
    w("# HELP http_request_duration_seconds Request latency.\n"
      "# TYPE http_request_duration_seconds histogram\n")
    for pod, age, _ in pods:
        for h, handler in enumerate(HANDLERS):
            n = math.floor(base_rate * (1 + h) * age)
            for le, share in zip(BUCKETS, LATENCY[h]):
                w(f'http_request_duration_seconds_bucket{{pod="{pod}",handler="{handler}",le="{le}"}} '
                  f'{math.floor(n * share)}\n')
            w(f'http_request_duration_seconds_bucket{{pod="{pod}",handler="{handler}",le="+Inf"}} {n}\n')
            w(f'http_request_duration_seconds_sum{{pod="{pod}",handler="{handler}"}} '
              f'{n * (0.02 + 0.2 * (h == 3)):.3f}\n')
            w(f'http_request_duration_seconds_count{{pod="{pod}",handler="{handler}"}} {n}\n')
    w("# HELP app_memory_bytes Memory of a pod.\n# TYPE app_memory_bytes gauge\n")
    for pod, age, gen in pods:
        # Some pods are large (their memory alert fires while they live).
        big = 5e8 if gen % 7 == 0 else 0
        w(f'app_memory_bytes{{pod="{pod}"}} {int(1e8 + big + 1e6 * (age % 60))}\n')
    w("# HELP app_inflight_requests Requests in flight.\n# TYPE app_inflight_requests gauge\n")
    for pod, age, gen in pods:
        w(f'app_inflight_requests{{pod="{pod}"}} {int(age * 7 + gen) % 40}\n')
    w("# HELP app_queue_depth Items queued.\n# TYPE app_queue_depth gauge\n")
    for q in range(QUEUES):
        w(f'app_queue_depth{{queue="q{q}"}} {int(now * (q + 1) + target) % (95 + q)}\n')
    w("# HELP process_cpu_seconds_total CPU time.\n# TYPE process_cpu_seconds_total counter\n")
    w(f"process_cpu_seconds_total {(now - t0) * 0.03 * (1 + target % 3):.2f}\n")
    w("# HELP process_resident_memory_bytes Resident memory.\n# TYPE process_resident_memory_bytes gauge\n")
    w(f"process_resident_memory_bytes {int(2e8 + 1e5 * (int(now) % 100))}\n")
    return "".join(out).encode()


def serve():
    """Serves TARGETS ports; prints their numbers as one JSON line."""
    t0 = float(sys.argv[2])
    cache = {}
    lock = threading.Lock()

    def handler_for(target):
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                now = int(time.time())
                with lock:
                    b = cache.get((target, now))
                    if b is None:
                        b = target_body(target, now, t0)
                        for k in [k for k in cache if k[1] < now - 2]:
                            del cache[k]
                        cache[(target, now)] = b
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def log_message(self, *a):
                pass
        return H

    ports = []
    for t in range(TARGETS):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_for(t))
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        ports.append(srv.server_address[1])
    print(json.dumps(ports), flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


# ---- configuration ---------------------------------------------------------------

def config(ports, rules_file):
    jobs = []
    for j, job in enumerate(JOBS):
        targets = ", ".join(f"'127.0.0.1:{p}'" for t, p in enumerate(ports) if t % len(JOBS) == j)
        jobs.append(f"  - job_name: {job}\n    static_configs: [{{targets: [{targets}]}}]\n")
    return (f"global:\n  scrape_interval: {INTERVAL}s\n  scrape_timeout: {INTERVAL - 1}s\n"
            f"  evaluation_interval: {INTERVAL}s\nrule_files: ['{rules_file}']\n"
            "scrape_configs:\n" + "".join(jobs))


def rules():
    """100 rules in 5 groups; returns (yaml text, count)."""
    rec, alerts = [], []
    for h, handler in enumerate(HANDLERS):
        sel = f'handler="{handler}"'
        n = f"h{h}"
        rec += [
            (f"job:http_requests_{n}:rate1m", f"sum by (job) (rate(http_requests_total{{{sel}}}[1m]))"),
            (f"job_code:http_requests_{n}:rate1m",
             f"sum by (job, code) (rate(http_requests_total{{{sel}}}[1m]))"),
            (f"job:http_errors_{n}:ratio1m",
             f'sum by (job) (rate(http_requests_total{{{sel},code="500"}}[1m])) / '
             f"sum by (job) (rate(http_requests_total{{{sel}}}[1m]))"),
            (f"job:http_latency_{n}:p99",
             f"histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket{{{sel}}}[1m])))"),
            (f"job:http_latency_{n}:p90",
             f"histogram_quantile(0.9, sum by (job, le) (rate(http_request_duration_seconds_bucket{{{sel}}}[1m])))"),
            (f"job:http_latency_{n}:p50",
             f"histogram_quantile(0.5, sum by (job, le) (rate(http_request_duration_seconds_bucket{{{sel}}}[1m])))"),
            (f"job:http_latency_{n}:mean1m",
             f"sum by (job) (rate(http_request_duration_seconds_sum{{{sel}}}[1m])) / "
             f"sum by (job) (rate(http_request_duration_seconds_count{{{sel}}}[1m]))"),
            (f"instance:http_requests_{n}:rate1m",
             f"sum by (job, instance) (rate(http_requests_total{{{sel}}}[1m]))"),
            (f"pod:http_requests_{n}:rate1m",
             f"sum by (job, instance, pod) (rate(http_requests_total{{{sel}}}[1m]))"),
            (f"instance:http_latency_{n}:p95",
             f"histogram_quantile(0.95, sum by (instance, le) (rate(http_request_duration_seconds_bucket{{{sel}}}[1m])))"),
            (f"job:http_requests_{n}:increase2m", f"sum by (job) (increase(http_requests_total{{{sel}}}[2m]))"),
            (f"job:http_fast_{n}:ratio1m",
             f'sum by (job) (rate(http_request_duration_seconds_bucket{{{sel},le="0.1"}}[1m])) / '
             f"sum by (job) (rate(http_request_duration_seconds_count{{{sel}}}[1m]))"),
        ]
        alerts += [
            (f"HighErrorRatio_{n}", f"job:http_errors_{n}:ratio1m > 0.02", "30s"),
            (f"HighLatency_{n}", f"job:http_latency_{n}:p99 > 1", "30s"),
            (f"PodErrors_{n}",
             f'sum by (job, instance, pod) (rate(http_requests_total{{{sel},code="500"}}[1m])) > 5', "0s"),
            (f"LowTraffic_{n}", f"job:http_requests_{n}:rate1m < 1", "1m"),
            (f"SlowRequests_{n}", f"job:http_fast_{n}:ratio1m < 0.5", "30s"),
        ]
    rec += [
        ("job:http_requests:rate1m", "sum by (job) (rate(http_requests_total[1m]))"),
        ("job:http_errors:ratio1m",
         'sum by (job) (rate(http_requests_total{code="500"}[1m])) / sum by (job) (rate(http_requests_total[1m]))'),
        ("job:http_latency:p99",
         "histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[1m])))"),
        ("job:app_memory_bytes:sum", "sum by (job) (app_memory_bytes)"),
        ("job:app_memory_bytes:max", "max by (job) (app_memory_bytes)"),
        ("job:app_inflight_requests:avg", "avg by (job) (app_inflight_requests)"),
        ("instance:app_queue_depth:max", "max by (job, instance) (app_queue_depth)"),
        ("job:app_queue_depth:sum", "sum by (job) (app_queue_depth)"),
        ("job:process_cpu:rate1m", "sum by (job) (rate(process_cpu_seconds_total[1m]))"),
        ("job:pods:count", "count by (job) (app_memory_bytes)"),
        ("job:up:ratio", "avg by (job) (up)"),
        ("job:scrape_samples:sum", "sum by (job) (scrape_samples_scraped)"),
        ("job:http_requests:topk3", "topk(3, sum by (job, instance) (rate(http_requests_total[1m])))"),
        ("job:http_requests:rate5m", "sum by (job) (rate(http_requests_total[5m]))"),
        ("job:app_memory_bytes:avg_over_time1m", "avg by (job) (avg_over_time(app_memory_bytes[1m]))"),
        ("job:app_queue_depth:quantile90", "quantile by (job) (0.9, app_queue_depth)"),
        ("job:http_request_duration:count_rate1m", "sum by (job) (rate(http_request_duration_seconds_count[1m]))"),
        ("job:http_requests_500:rate1m", 'sum by (job) (rate(http_requests_total{code="500"}[1m]))'),
        ("instance:app_memory_bytes:sum", "sum by (job, instance) (app_memory_bytes)"),
        ("job_handler:http_latency:p99",
         "histogram_quantile(0.99, sum by (job, handler, le) (rate(http_request_duration_seconds_bucket[1m])))"),
    ]
    alerts += [
        ("TargetDown", "up == 0", "30s"),
        ("PodMemoryHigh", "app_memory_bytes > 4e8", "10s"),
        ("QueueDeep", "app_queue_depth > 90", "0s"),
        ("TooFewPods", "job:pods:count < 50", "1m"),
        ("ScrapeSlow", "scrape_duration_seconds > 2", "1m"),
        ("InflightHigh", "app_inflight_requests > 38", "0s"),
        ("NoQueues", "absent(app_queue_depth)", "1m"),
        ("CpuBusy", "job:process_cpu:rate1m > 100", "1m"),
        ("JobErrorRatio", "job:http_errors:ratio1m > 0.01", "30s"),
        ("JobLatency", "job:http_latency:p99 > 0.5", "30s"),
        ("MemoryTotal", "job:app_memory_bytes:sum > 1e10", "1m"),
        ("SamplesDropped", "sum by (job) (scrape_samples_post_metric_relabeling) < 100", "1m"),
    ]
    items = [f"      - record: {name}\n        expr: {json.dumps(expr)}\n" for name, expr in rec]
    items += [f"      - alert: {name}\n        expr: {json.dumps(expr)}\n        for: {dur}\n"
              f"        labels: {{severity: warning}}\n"
              f"        annotations: {{summary: \"{{{{ $labels.job }}}} {name}: {{{{ $value }}}}\"}}\n"
              for name, expr, dur in alerts]
    assert len(items) == 100, len(items)
    groups = 5
    per = math.ceil(len(items) / groups)
    text = "groups:\n"
    for g in range(groups):
        text += f"  - name: soak{g}\n    interval: {INTERVAL}s\n    rules:\n" + "".join(items[g * per:(g + 1) * per])
    return text, len(items)


# ---- measuring -----------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {url}")


def proc_sample(pid):
    st = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            st[k] = v.split()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    fds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return {
        "rss": int(st["VmRSS"][0]) * 1024,
        "anon": int(st["RssAnon"][0]) * 1024,
        "file": int(st["RssFile"][0]) * 1024,
        "fdmap": fds,
        "hwm": int(st["VmHWM"][0]) * 1024,
        "threads": int(st["Threads"][0]),
        "fds": len(fds),
        "sockets": sum(1 for x in fds.values() if x.startswith("socket:")),
        "cpu": (int(fields[11]) + int(fields[12])) / TICK,
    }


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def scrape_metrics(url):
    """Sums every sample of each metric name on url's /metrics."""
    sums = {}
    with urllib.request.urlopen(url, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if not line or line[0] == "#":
                continue
            name = line.split("{", 1)[0].split(" ", 1)[0]
            try:
                v = float(line.rsplit(" ", 1)[1])
            except ValueError:
                continue
            sums[name] = sums.get(name, 0.0) + v
    return sums


def query(port, q):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=30) as r:
        res = json.load(r)["data"]["result"]
    return float(res[0]["value"][1]) if res else 0.0


def count_lines(path, word):
    n = 0
    with open(path, errors="replace") as f:
        for line in f:
            if word in line:
                n += 1
    return n


FAILURE_COUNTERS = (
    "sidewatch_scrape_target_failures_total",
    "sidewatch_rule_evaluation_failures_total",
    "sidewatch_store_commit_errors_total",
    "sidewatch_notifications_errors_total",
    "sidewatch_notifications_dropped_total",
    "sidewatch_store_corrupt_chunks_total",
)


def mib(x):
    return x / 2**20


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve()
        return
    if WARMUP * 2 > SECONDS:
        raise SystemExit(f"SOAK_SECONDS ({SECONDS}) must be at least twice SOAK_WARMUP ({WARMUP})")
    tmp = tempfile.mkdtemp(prefix="wip-soak-")
    sw_log = None
    procs = []
    fails = []
    samples = []
    try:
        t0 = time.time()
        tp = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", str(t0)],
                              stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        procs.append(tp)
        ports = json.loads(tp.stdout.readline())
        rules_text, nrules = rules()
        rules_file = os.path.join(tmp, "rules.yml")
        with open(rules_file, "w") as f:
            f.write(rules_text)
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(config(ports, rules_file))
        sw_port = free_port()
        sw_log = os.path.join(tmp, "sidewatch.log")
        log_f = open(sw_log, "w")
        sw = subprocess.Popen([BIN, f"--config.file={cfg}", f"--storage.path={tmp}/sw",
                               f"--web.listen-address=127.0.0.1:{sw_port}", "--log.level=info"],
                              stdout=log_f, stderr=subprocess.STDOUT)
        procs.append(sw)
        prom = None
        if WITH_PROMETHEUS and shutil.which("prometheus"):
            prom_port = free_port()
            prom = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/prom",
                                     f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(prom)
        wait_http(f"http://127.0.0.1:{sw_port}/-/ready", sw)
        if prom:
            wait_http(f"http://127.0.0.1:{prom_port}/-/ready", prom)
        start = time.time()
        print(f"soak: {TARGETS} targets ({len(JOBS)} jobs), {nrules} rules, every {INTERVAL} s; pods churn "
              f"every {CHURN} s per target; {SECONDS} s, warm-up {WARMUP} s; sidewatch pid {sw.pid}"
              + (f", prometheus pid {prom.pid}" if prom else "") + f"; files in {tmp}", flush=True)
        hdr = (f"{'t(s)':>5} {'RSS MiB':>8} {'anon':>6} {'file':>6} {'fds':>4} {'sock':>4} {'thr':>4} {'CPU s':>7} {'disk MiB':>8} {'series':>8} {'evicted':>8} "
               f"{'head ch':>8} {'head MiB':>8} {'samples/s':>9} {'fail':>4} {'err':>4}"
               + (f" {'prom MiB':>8}" if prom else ""))
        print(hdr, flush=True)
        prev = None
        next_t = start
        while True:
            next_t += SAMPLE
            time.sleep(max(0.0, next_t - time.time()))
            now = time.time() - start
            if sw.poll() is not None:
                fails.append(f"sidewatch died (exit status {sw.returncode}) at {now:.0f} s")
                break
            s = proc_sample(sw.pid)
            s["t"] = now
            s["disk"] = dir_bytes(f"{tmp}/sw")
            m = scrape_metrics(f"http://127.0.0.1:{sw_port}/metrics")
            s["series"] = m.get("sidewatch_store_series", 0)  # in memory
            s["evicted"] = m.get("sidewatch_store_series_evicted_total", 0)
            s["loaded"] = m.get("sidewatch_store_series_loaded_total", 0)
            # Created since start: in memory + evicted - loaded from disk.
            s["created"] = s["series"] + s["evicted"] - s["loaded"]
            s["head_chunks"] = m.get("sidewatch_store_head_chunks", 0)
            s["head_bytes"] = m.get("sidewatch_store_head_memory_bytes", 0)
            s["appended"] = m.get("sidewatch_store_samples_appended_total", 0)
            s["missed"] = m.get("sidewatch_rule_group_iterations_missed_total", 0)
            s["fail"] = {k: m.get(k, 0) for k in FAILURE_COUNTERS}
            s["errors"] = count_lines(sw_log, "level=error")
            s["prom_rss"] = proc_sample(prom.pid)["rss"] if prom and prom.poll() is None else 0
            rate = (s["appended"] - prev["appended"]) / (now - prev["t"]) if prev else 0
            samples.append(s)
            print(f"{now:5.0f} {mib(s['rss']):8.1f} {mib(s['anon']):6.1f} {mib(s['file']):6.1f} {s['fds']:4d} {s['sockets']:4d} {s['threads']:4d} {s['cpu']:7.1f} "
                  f"{mib(s['disk']):8.1f} {s['series']:8.0f} {s['evicted']:8.0f} {s['head_chunks']:8.0f} {mib(s['head_bytes']):8.1f} "
                  f"{rate:9.0f} {sum(s['fail'].values()):4.0f} {s['errors']:4d}"
                  + (f" {mib(s['prom_rss']):8.1f}" if prom else ""), flush=True)
            prev = s
            if now >= SECONDS:
                break
        if sw.poll() is None:
            up = query(sw_port, "count(up == 1)")
            firing = query(sw_port, 'count(ALERTS{alertstate="firing"})')
            if up != TARGETS:
                fails.append(f"{up:.0f} of {TARGETS} targets up at the end")
            if firing == 0:
                fails.append("no alert firing at the end (the rules are not doing their job)")
        else:
            up = firing = float("nan")
        report(samples, fails, sw_log, up, firing, nrules, bool(prom))
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if sw_log and os.path.exists(sw_log) and fails:
            print(f"--- last lines of sidewatch's log ({sw_log}):")
            with open(sw_log, errors="replace") as f:
                print("".join(f.readlines()[-20:]), end="")
        if not os.environ.get("SOAK_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    if fails:
        print("soak: FAILED:\n  - " + "\n  - ".join(fails))
        sys.exit(1)
    print("soak: passed")


def report(samples, fails, log, up, firing, nrules, with_prom):
    if not samples:
        fails.append("no samples taken")
        return
    post = [s for s in samples if s["t"] >= WARMUP]
    first, last = samples[0], samples[-1]
    for k in FAILURE_COUNTERS:
        if last["fail"][k] > 0:
            fails.append(f"{k} = {last['fail'][k]:.0f}")
    if last["errors"]:
        fails.append(f"{last['errors']} level=error lines logged")
    if len(post) >= 6:
        third = len(post) // 3
        rss_base = statistics.median(s["rss"] for s in post[:third])
        rss_end = max(s["rss"] for s in post[-third:])
        bound = rss_base * (1 + RSS_GROWTH_FRACTION) + RSS_GROWTH_BYTES
        # Sockets: libcurl keeps at most one connection per target alive
        # (how many depends on how the scrapes overlap, so the count wanders
        # up to TARGETS); more than TARGETS + FD_SLACK is a leak. Other fds
        # (database, WAL and log files, event fds): each SQLite connection
        # opens the WAL file when it first needs it, so the level is a range
        # too; a leak shows as the last third's highest count above the
        # first third's highest.
        fd_base = max(s["fds"] - s["sockets"] for s in post[:third])
        fd_max = max(s["fds"] - s["sockets"] for s in post[-third:])
        sock_max = max(s["sockets"] for s in post)
        if sock_max > TARGETS + FD_SLACK:
            fails.append(f"sockets not bounded: {sock_max} open after warm-up, more than the {TARGETS} targets "
                         f"+ {FD_SLACK}")
        span = post[-1]["t"] - post[0]["t"]
        growth = (post[-1]["rss"] - post[0]["rss"]) / span * 60 if span else 0
        churned = post[-1]["created"] - post[0]["created"]
        # In memory: a sawtooth (evicted once a minute), so the thirds' peaks.
        resident_growth = (max(s["series"] for s in post[-third:])
                           - max(s["series"] for s in post[:third]))
        anon_growth = (post[-1]["anon"] - post[0]["anon"]) / span * 60 if span else 0
        file_growth = (post[-1]["file"] - post[0]["file"]) / span * 60 if span else 0
        if rss_end > bound:
            per = (post[-1]["rss"] - post[0]["rss"]) / churned if churned > 0 else float("nan")
            fails.append(f"RSS not flat: max of the last third {mib(rss_end):.1f} MiB > bound {mib(bound):.1f} MiB "
                         f"(median of the first third after warm-up {mib(rss_base):.1f} MiB + "
                         f"{RSS_GROWTH_FRACTION:.0%} + {mib(RSS_GROWTH_BYTES):.0f} MiB); it grew "
                         f"{mib(growth):.2f} MiB/min ({mib(anon_growth):.2f} anonymous, {mib(file_growth):.2f} file-backed), "
                         f"{per:.0f} bytes per series created after warm-up")
            heads = post[-1]["head_chunks"] - post[0]["head_chunks"]
            if resident_growth > 0.05 * max(s["series"] for s in post[:third]):
                fails.append(f"the store's in-memory series index grew by {resident_growth:,.0f} series after warm-up "
                             f"(sidewatch_store_series peaks {max(s['series'] for s in post[:third]):,.0f} in the first "
                             f"third -> {max(s['series'] for s in post[-third:]):,.0f} in the last) "
                             f"while open head chunks changed by {heads:+,.0f} and {churned:,.0f} series were "
                             "created: stale series are not released from memory fast enough")
        if fd_max > fd_base + FD_SLACK:
            top = max(post[-third:], key=lambda x: x["fds"] - x["sockets"])
            kinds = {}
            for target in top["fdmap"].values():
                kind = target.split(":", 1)[0] if ":" in target else target
                kinds[kind] = kinds.get(kind, 0) + 1
            fails.append(f"open fds (sockets aside) not flat: up to {fd_max} in the last third, at most {fd_base} "
                         f"in the first "
                         f"third after warm-up (+{FD_SLACK} allowed); "
                         f"at {top['t']:.0f} s: " + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())))
    else:
        fails.append(f"too few samples after the warm-up ({len(post)}; raise SOAK_SECONDS)")
        rss_base = rss_end = fd_base = fd_max = sock_max = growth = churned = float("nan")
    dur = last["t"] - first["t"]
    rates = (last["appended"] - first["appended"]) / dur if dur else 0
    print()
    print(f"summary ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"{SECONDS} s, warm-up {WARMUP} s):")
    print(f"  targets up at the end            {up:.0f} of {TARGETS}; rules {nrules}; alerts firing {firing:.0f}")
    print(f"  ingest                           {rates:,.0f} samples/s "
          f"({last['appended'] - first['appended']:,.0f} samples in {dur:.0f} s)")
    print(f"  series created                   {first['created']:,.0f} at {first['t']:.0f} s -> "
          f"{last['created']:,.0f} at the end ({churned:,.0f} after warm-up)")
    res = [s["series"] for s in post] or [0]
    print(f"  series in memory                 {first['series']:,.0f} at {first['t']:.0f} s, "
          f"{min(res):,.0f}-{max(res):,.0f} after warm-up, {last['series']:,.0f} at the end; "
          f"evicted {last['evicted']:,.0f}, loaded again {last['loaded']:,.0f}")
    print(f"  RSS (MiB)                        at warm-up end {mib(post[0]['rss']) if post else 0:.1f}, "
          f"end {mib(last['rss']):.1f}, max {mib(max(s['rss'] for s in samples)):.1f}, "
          f"VmHWM {mib(last['hwm']):.1f}")
    print(f"  RSS after warm-up                median of first third {mib(rss_base):.1f}, "
          f"max of last third {mib(rss_end):.1f}, slope {mib(growth):+.2f} MiB/min")
    if post and len(post) >= 3:
        t3 = len(post) // 3
        for kind in ("anon", "file"):
            print(f"  {kind + ' after warm-up':<33}median of first third "
                  f"{mib(statistics.median(s[kind] for s in post[:t3])):.1f}, "
                  f"max of last third {mib(max(s[kind] for s in post[-t3:])):.1f}")
    print(f"  open fds                         {min(s['fds'] for s in samples)}-{max(s['fds'] for s in samples)}, "
          f"of them sockets {min(s['sockets'] for s in samples)}-{max(s['sockets'] for s in samples)}; "
          f"others after warm-up: first third up to {fd_base}, last third up to {fd_max}; threads "
          f"{min(s['threads'] for s in samples)}-{max(s['threads'] for s in samples)}")
    print(f"  head chunks, head bytes at end   {last['head_chunks']:,.0f}, {mib(last['head_bytes']):.1f} MiB")
    print(f"  store on disk                    {mib(first['disk']):.1f} -> {mib(last['disk']):.1f} MiB")
    cpu = last["cpu"] - first["cpu"]
    print(f"  CPU                              {last['cpu']:.1f} s in all, {cpu / dur * 100 if dur else 0:.1f}% "
          f"of one core while sampled")
    print(f"  failures                         " + ", ".join(f"{k.replace('sidewatch_', '')} {v:.0f}"
                                                          for k, v in last["fail"].items()))
    print(f"  rule group iterations missed     {last['missed']:.0f}; level=error lines {last['errors']}, "
          f"level=warn lines {count_lines(log, 'level=warn')}")
    if with_prom:
        pr = [s["prom_rss"] for s in samples if s["prom_rss"]]
        if pr:
            print(f"  Prometheus 2.42 RSS (MiB)        at warm-up end "
                  f"{mib(post[0]['prom_rss']) if post else 0:.1f}, end {mib(pr[-1]):.1f}, max {mib(max(pr)):.1f}")


if __name__ == "__main__":
    main()
