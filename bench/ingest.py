#!/usr/bin/python3
"""Ingest through the head, side by side: build/release/bench/ingest_bench
(1M samples: 10 targets x 1,000 series x 100 scrapes, one commit per target
scrape, write-ahead table included) and `promtool tsdb bench write` on the
same 10,000 label sets and the same number of samples. Each runs RUNS times
alternately; the medians and their ratio are printed (this machine's
timings vary from run to run).

Usage: bench/ingest.py [RUNS]"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("BUILD", "build/release")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5


def main():
    tmp = tempfile.mkdtemp(prefix="sidewatch-ingest-")
    sw, prom = [], []
    try:
        for _ in range(RUNS):
            out = subprocess.run([os.path.join(REPO, BUILD, "bench", "ingest_bench"), "100", f"{tmp}/sw"],
                                 capture_output=True, text=True, check=True).stdout
            sw.append(float(re.search(r"([0-9.]+) million samples/s \(wall\)", out).group(1)) * 1e6)
            shutil.copy(f"{tmp}/sw/series.json", f"{tmp}/series.json")
            shutil.rmtree(f"{tmp}/prom", ignore_errors=True)
            out = subprocess.run(["promtool", "tsdb", "bench", "write", f"--out={tmp}/prom", "--metrics=10000",
                                  "--scrapes=100", f"{tmp}/series.json"],
                                 capture_output=True, text=True, check=True).stdout
            prom.append(float(re.search(r"samples/sec: ([0-9.e+]+)", out).group(1)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    s, p = statistics.median(sw), statistics.median(prom)
    print(f"ingest: 1,000,000 samples, median of {RUNS} runs (samples/s)")
    print(f"{'':26}{'sidewatch':>14}{'promtool':>14}{'ratio':>8}")
    print(f"{'median':26}{s:14.0f}{p:14.0f}{s / p:8.2f}")
    print(f"{'best':26}{max(sw):14.0f}{max(prom):14.0f}{max(sw) / max(prom):8.2f}")
    print(f"{'runs (sidewatch)':26}" + " ".join(f"{x / 1e6:.2f}M" for x in sw))
    print(f"{'runs (promtool)':26}" + " ".join(f"{x / 1e6:.2f}M" for x in prom))


if __name__ == "__main__":
    main()
