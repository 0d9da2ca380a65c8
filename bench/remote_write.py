#!/usr/bin/python3
"""Remote write to a real Prometheus 2.42 receiver on loopback
(--web.enable-remote-write-receiver): build/release/bench/remote_bench
appends the backlog of an outage (SERIES series scraped every second, i.e.
SERIES samples/s, for OUTAGE_S seconds) through the store API while the
queue is stopped, then starts the queue and times the catch-up. Prints
samples/s sent, sidewatch's CPU per million samples sent, the receiver's
CPU over the same time, and checks the receiver's sample count.

Usage: bench/remote_write.py [SERIES [OUTAGE_S [MAX_SHARDS]]]
(default 10000 series x 600 s: a 10-minute outage at 10,000 samples/s; the
issue's 1 h is 3600, which takes six times as long)."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import json

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("BUILD", "build/release")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def query(base, q):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return json.load(r)["data"]["result"]
    except urllib.error.HTTPError as e:
        raise SystemExit(f"query {q}: {e.code} {e.read().decode()}")


def main():
    series = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    outage = int(sys.argv[2]) if len(sys.argv) > 2 else 600
    max_shards = sys.argv[3] if len(sys.argv) > 3 else "50"
    tmp = tempfile.mkdtemp(prefix="sidewatch-remote-bench-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(f"{tmp}/prom.yml", "w") as f:
        f.write("global: {}\n")
    log = open(f"{tmp}/prom.log", "wb")
    prom = subprocess.Popen(["prometheus", f"--config.file={tmp}/prom.yml",
                             f"--web.listen-address=127.0.0.1:{port}",
                             f"--storage.tsdb.path={tmp}/prom-data",
                             "--web.enable-remote-write-receiver"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/-/ready", timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        pc0 = cpu_seconds(prom.pid)
        out = subprocess.run([os.path.join(REPO, BUILD, "bench", "remote_bench"), base + "/api/v1/write",
                              f"{tmp}/sw", str(series), str(outage), max_shards],
                             capture_output=True, text=True)
        print(out.stdout, end="")
        if out.returncode != 0:
            print(out.stderr)
            sys.exit(1)
        pc = cpu_seconds(prom.pid) - pc0
        n = series * outage
        print(f"receiver (Prometheus) cpu over the run: {pc:.1f} s "
              f"({pc / n * 1e6:.3f} cpu-seconds per million samples received)")
        total = 0.0
        for i in range(min(series, 100)):  # remote_bench names 100 metrics
            got = query(base, f'sum(count_over_time(bench_metric_{i}[{outage + 3600}s]))')
            total += sum(float(r["value"][1]) for r in got)
        print(f"receiver holds {total:.0f} of {n} samples")
    finally:
        prom.terminate()
        try:
            prom.wait(30)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
