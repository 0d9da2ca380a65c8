#!/bin/sh
# `make bench`: benchmarks, sidewatch side by side with the real Prometheus
# tools where a real counterpart exists. Results go to stdout; record new
# figures in bench/README.md with the command that produced them.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
echo "== store: append throughput, bytes per sample, select+read latency (sidewatch only)"
"$BUILD/bench/store_bench" 100
echo
echo "== footprint: sidewatch vs Prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}')"
/usr/bin/python3 bench/footprint.py "${BENCH_SECONDS:-60}"
