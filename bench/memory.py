#!/usr/bin/python3
"""Memory per active series: sidewatch and the real Prometheus (Debian's
2.42) scrape the same 100,000 series (10 targets x 10,000 series served from
this process) every 5 s. After the series exist and a few scrapes have been
ingested, both processes' resident memory is read from /proc and divided by
the series count (also reported above each process's idle baseline).

Usage: bench/memory.py [SERIES_PER_TARGET] [TARGETS] [SECONDS]"""
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("SIDEWATCH_BIN", os.path.join(REPO, "sidewatch"))
PER = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
TARGETS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
SECONDS = int(sys.argv[3]) if len(sys.argv) > 3 else 40
PAGE = os.sysconf("SC_PAGESIZE")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def wait_http(url, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {url}")


def metric(url, name):
    with urllib.request.urlopen(url, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def main():
    # Bodies change every scrape (values advance), labels stay: active series.
    tick = {"n": 0}

    def body(target):
        n = tick["n"]
        return "".join(
            f'bench_metric{{target="{target}",series="{i}",kind="{"counter" if i % 2 else "gauge"}"}} {n + i}\n'
            for i in range(PER)).encode()

    cache = {}

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            t = int(self.path.strip("/").split("/")[-1])
            key = (t, tick["n"])
            if key not in cache:
                cache.clear() if len(cache) > 4 * TARGETS else None
                cache[key] = body(t)
            b = cache[key]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    def ticker():
        while True:
            time.sleep(5)
            tick["n"] += 1
    threading.Thread(target=ticker, daemon=True).start()

    addr = f"127.0.0.1:{srv.server_address[1]}"
    tmp = tempfile.mkdtemp(prefix="sidewatch-mem-")
    procs = []
    try:
        sw_port, prom_port = free_port(), free_port()
        jobs = "".join(f"""
  - job_name: t{t}
    metrics_path: /metrics/{t}
    static_configs: [{{targets: ['{addr}']}}]
""" for t in range(TARGETS))
        cfg = os.path.join(tmp, "p.yml")
        with open(cfg, "w") as f:
            f.write(f"global:\n  scrape_interval: 5s\n  scrape_timeout: 5s\nscrape_configs:{jobs}")
        sw = subprocess.Popen([BIN, f"--config.file={cfg}", f"--storage.path={tmp}/sw",
                               f"--web.listen-address=127.0.0.1:{sw_port}", "--log.level=warn"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sw)
        prom = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/prom",
                                 f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(prom)
        wait_http(f"http://127.0.0.1:{sw_port}/-/ready")
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready")
        base = {"sidewatch": rss(sw.pid), "prometheus": rss(prom.pid)}
        time.sleep(SECONDS)
        now = {"sidewatch": rss(sw.pid), "prometheus": rss(prom.pid)}
        series = {
            "sidewatch": metric(f"http://127.0.0.1:{sw_port}/metrics", "sidewatch_store_series"),
            "prometheus": metric(f"http://127.0.0.1:{prom_port}/metrics", "prometheus_tsdb_head_series"),
        }
        total = PER * TARGETS
        print(f"memory: {TARGETS} targets x {PER} series scraped every 5 s for {SECONDS} s")
        print(f"{'':30}{'sidewatch':>14}{'prometheus':>14}{'ratio':>8}")
        print(f"{'series in the head':30}{series['sidewatch']:14.0f}{series['prometheus']:14.0f}")
        print(f"{'resident memory (MiB)':30}{now['sidewatch'] / 2**20:14.1f}{now['prometheus'] / 2**20:14.1f}"
              f"{now['sidewatch'] / now['prometheus']:8.2f}")
        per_s = now["sidewatch"] / total
        per_p = now["prometheus"] / total
        print(f"{'RSS per series (bytes)':30}{per_s:14.0f}{per_p:14.0f}{per_s / per_p:8.2f}")
        inc_s = (now["sidewatch"] - base["sidewatch"]) / total
        inc_p = (now["prometheus"] - base["prometheus"]) / total
        print(f"{'above idle, per series (bytes)':30}{inc_s:14.0f}{inc_p:14.0f}{inc_s / inc_p:8.2f}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        srv.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
