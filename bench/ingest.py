#!/usr/bin/python3
"""Ingest through the head, side by side: build/release/bench/ingest_bench
(10 targets x 1,000 series, one commit per target scrape, write-ahead table
included; a cold phase of 100 scrapes = 1M samples from an empty store, and
a steady phase of 120 scrapes = 1.2M samples, one chunk closed and written
per series, after an hour of scrapes) and `promtool tsdb bench write` on the
same 10,000 label sets: 100 scrapes (1M samples, no chunk cut: compared
with the cold phase) and 360 scrapes (3.6M samples reported as 4M by
promtool, three chunks cut and written per series: compared with the steady
phase). Each runs RUNS times alternately; the medians and their ratios are
printed (this machine's timings vary from run to run by up to 2x).

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
    cold, steady, prom, prom_long = [], [], [], []
    try:
        for _ in range(RUNS):
            out = subprocess.run([os.path.join(REPO, BUILD, "bench", "ingest_bench"), "100", f"{tmp}/sw"],
                                 capture_output=True, text=True, check=True).stdout
            cold.append(float(re.search(r"cold: ([0-9.]+) million samples/s \(wall\)", out).group(1)) * 1e6)
            steady.append(float(re.search(r"steady: ([0-9.]+) million samples/s \(wall\)", out).group(1)) * 1e6)
            shutil.copy(f"{tmp}/sw/series.json", f"{tmp}/series.json")
            for scrapes, into in ((100, prom), (360, prom_long)):
                shutil.rmtree(f"{tmp}/prom", ignore_errors=True)
                out = subprocess.run(["promtool", "tsdb", "bench", "write", f"--out={tmp}/prom",
                                      "--metrics=10000", f"--scrapes={scrapes}", f"{tmp}/series.json"],
                                     capture_output=True, text=True, check=True).stdout
                into.append(float(re.search(r"samples/sec: ([0-9.e+]+)", out).group(1)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"ingest: samples/s, {RUNS} runs each, alternately")
    print(f"{'':40}{'sidewatch':>12}{'promtool':>12}{'ratio':>8}")
    for name, sw, pt in (("no chunk cut (sw cold, promtool 100)", cold, prom),
                         ("chunks cut (sw steady, promtool 360)", steady, prom_long)):
        s, p = statistics.median(sw), statistics.median(pt)
        print(f"{name:40}")
        print(f"{'  median':40}{s:12.0f}{p:12.0f}{s / p:8.2f}")
        print(f"{'  best':40}{max(sw):12.0f}{max(pt):12.0f}{max(sw) / max(pt):8.2f}")
    for name, v in (("sidewatch cold", cold), ("sidewatch steady", steady), ("promtool 100 scrapes", prom),
                    ("promtool 360 scrapes", prom_long)):
        print(f"runs, {name + ':':22}" + " ".join(f"{x / 1e6:.2f}M" for x in v))


if __name__ == "__main__":
    main()
