#!/bin/sh
# `make bench`: every benchmark, sidewatch side by side with the real
# Prometheus tools (Debian's prometheus 2.42 package) where one exists.
# Record new figures in bench/README.md with the command that produced them.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
PROM=$(prometheus --version 2>&1 | head -1 | awk '{print $3}')
TMP=$(mktemp -d /tmp/sidewatch-bench-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

echo "== backfill: sidewatch import openmetrics vs promtool tsdb create-blocks-from openmetrics ($PROM)"
/usr/bin/python3 bench/backfill.py
echo

echo "== ingest through the head (store API, write-ahead table included) vs promtool tsdb bench write"
BUILD="$BUILD" /usr/bin/python3 bench/ingest.py 7
echo

echo "== memory per active series: 100,000 series scraped by sidewatch and Prometheus $PROM"
/usr/bin/python3 bench/memory.py 10000 10 "${BENCH_SECONDS:-40}"
echo

echo "== dashboard queries over HTTP: sidewatch vs Prometheus $PROM on the same backfilled data"
/usr/bin/python3 bench/query.py 5
echo

echo "== select"
"$BUILD/bench/select_bench" "$TMP/select"
echo

echo "== store: append/select on the row-per-series workload of the first store (sidewatch only)"
"$BUILD/bench/store_bench" 100
echo

echo "== scrape parse cost: the same 10,000 series as text, OpenMetrics and protobuf"
BUILD="$BUILD" /usr/bin/python3 bench/parse.py
echo

echo "== native histograms on disk: bytes per histogram sample (and the same histogram as classic series)"
"$BUILD/bench/hist_bench" "$TMP/hist"
echo

echo "== chunk codec"
"$BUILD/bench/chunkenc_bench"
echo

echo "== container stats: one cycle over a generated cgroup tree of 100 containers, and a real dockerd with 20 containers vs the Docker stats API"
BENCH_SECONDS="${BENCH_SECONDS:-60}" /usr/bin/python3 bench/containers.py 100
echo

echo "== remote write: catch-up after an outage (10,000 samples/s for 10 min) to a real Prometheus $PROM receiver"
BUILD="$BUILD" /usr/bin/python3 bench/remote_write.py 10000 600
echo

echo "== footprint: scraping node_exporter next to Prometheus $PROM"
/usr/bin/python3 bench/footprint.py "${BENCH_SECONDS:-60}"
