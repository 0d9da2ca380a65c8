#!/usr/bin/python3
"""Side-by-side footprint of sidewatch and the real Prometheus (Debian's
2.42) doing the same job: scrape the same node_exporter and themselves
every second for DURATION seconds. Prints resident memory, CPU time, disk
used and samples stored, with ratios (sidewatch / Prometheus).

Usage: bench/footprint.py [DURATION_SECONDS]   (run by `make bench`)
Everything listens on 127.0.0.1; every process is stopped by PID."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("SIDEWATCH_BIN", os.path.join(REPO, "sidewatch"))
DURATION = int(sys.argv[1]) if len(sys.argv) > 1 else 60
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGESIZE")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {url}")


def proc_stats(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    rss = int(fields[21]) * PAGE
    return cpu, rss


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def metric(url, name):
    with urllib.request.urlopen(url, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return float("nan")


def main():
    tmp = tempfile.mkdtemp(prefix="sidewatch-bench-")
    procs = []
    try:
        node_port, sw_port, prom_port = free_port(), free_port(), free_port()
        node = subprocess.Popen(["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{node_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(node)
        wait_http(f"http://127.0.0.1:{node_port}/metrics")
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:{node_port}']
  - job_name: self
    static_configs:
      - targets: ['127.0.0.1:{sw_port}', '127.0.0.1:{prom_port}']
""")
        sw_data, prom_data = os.path.join(tmp, "sw"), os.path.join(tmp, "prom")
        sw = subprocess.Popen([BIN, f"--config.file={cfg}", f"--storage.path={sw_data}",
                               f"--web.listen-address=127.0.0.1:{sw_port}", "--log.level=warn"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sw)
        prom = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={prom_data}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(prom)
        wait_http(f"http://127.0.0.1:{sw_port}/-/ready")
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready")
        time.sleep(5)  # warm up: first scrapes create the series
        cpu0 = {n: proc_stats(p.pid)[0] for n, p in (("sw", sw), ("prom", prom))}
        time.sleep(DURATION)
        rows = {}
        for name, p, data in (("sidewatch", sw, sw_data), ("prometheus", prom, prom_data)):
            cpu1, rss = proc_stats(p.pid)
            rows[name] = {"cpu": cpu1 - cpu0["sw" if name == "sidewatch" else "prom"], "rss": rss}
        series_sw = metric(f"http://127.0.0.1:{sw_port}/metrics", "sidewatch_store_series")
        series_prom = metric(f"http://127.0.0.1:{prom_port}/metrics", "prometheus_tsdb_head_series")
        for p in (sw, prom):
            p.send_signal(signal.SIGTERM)
            p.wait(60)
        rows["sidewatch"]["disk"] = dir_bytes(sw_data)
        rows["prometheus"]["disk"] = dir_bytes(prom_data)
        rows["sidewatch"]["series"] = series_sw
        rows["prometheus"]["series"] = series_prom
        s, p = rows["sidewatch"], rows["prometheus"]
        print(f"footprint: scraping node_exporter + both servers every 1s for {DURATION}s")
        print(f"{'':24}{'sidewatch':>14}{'prometheus':>14}{'ratio':>8}")
        print(f"{'resident memory (MiB)':24}{s['rss']/2**20:14.1f}{p['rss']/2**20:14.1f}{s['rss']/p['rss']:8.2f}")
        cpu_s, cpu_p = s['cpu'] / DURATION * 100, p['cpu'] / DURATION * 100
        print(f"{'CPU (% of one core)':24}{cpu_s:14.2f}{cpu_p:14.2f}{(s['cpu']/p['cpu'] if p['cpu'] else float('nan')):8.2f}")
        print(f"{'disk after stop (KiB)':24}{s['disk']/1024:14.0f}{p['disk']/1024:14.0f}{s['disk']/p['disk']:8.2f}")
        print(f"{'active series':24}{s['series']:14.0f}{p['series']:14.0f}")
        print(f"{'RSS per series (bytes)':24}{s['rss']/s['series']:14.0f}{p['rss']/p['series']:14.0f}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
