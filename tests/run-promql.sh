#!/bin/sh
# PromQL tests in Prometheus's promqltest format (make check-promql).
#
# 1. tests/data/promql/*.test, the project's own cases: every eval must pass.
# 2. The conformance corpus ($SIDEWATCH_SHARED/conformance/promql/*.test):
#    until the engine passes all of it, each file's passing float evals, and
#    its passing native-histogram evals, are compared with the floors
#    committed in tests/data/promql-conformance-floor.txt (`<file> <min float
#    passed> [<min histogram passed>]` per line); falling below a floor is a
#    regression and fails. The full output goes to
#    $BUILD/promql-conformance.log.
#
# Without the corpus the second part is skipped and says why; with CI set a
# missing corpus fails. Environment: SIDEWATCH_BIN, SIDEWATCH_SHARED, BUILD,
# PROMQL_TIMEOUT (seconds per run, default 900).
set -u
bin=${SIDEWATCH_BIN:-./sidewatch}
shared=${SIDEWATCH_SHARED:-../shared}
build=${BUILD:-build/release}
floor=${PROMQL_FLOOR:-tests/data/promql-conformance-floor.txt}
limit=${PROMQL_TIMEOUT:-900}
status=0

echo "== sidewatch promql test tests/data/promql/*.test"
timeout "$limit" "$bin" promql test tests/data/promql/*.test
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "!! the project's own PromQL cases failed (exit status $rc)"
    status=1
fi

corpus=$shared/conformance/promql
if [ ! -d "$corpus" ]; then
    if [ -n "${CI:-}" ]; then
        echo "!! PromQL conformance corpus missing: $corpus (CI is set)"
        exit 1
    fi
    echo "SKIPPED: PromQL conformance corpus not found at $corpus (clone next to ../shared)"
    exit $status
fi

mkdir -p "$build"
log=$build/promql-conformance.log
echo "== sidewatch promql test $corpus/*.test (full output: $log)"
timeout "$limit" "$bin" promql test "$corpus"/*.test >"$log" 2>&1
rc=$?
if [ "$rc" -gt 1 ]; then
    # 0: all passed, 1: some evals failed; anything else is a crash, a
    # timeout (124) or an unreadable file.
    tail -n 20 "$log"
    echo "!! sidewatch promql test over the corpus exited with status $rc"
    exit 1
fi

# Per-file lines: "<path>: N passed, N failed (float: a/b, histogram: c/d)".
grep -E '^[^ ].*: [0-9]+ passed, [0-9]+ failed \(float: [0-9]+/[0-9]+, histogram: [0-9]+/[0-9]+\)$' "$log" |
awk -v floorfile="$floor" '
BEGIN {
    while ((getline line < floorfile) > 0) {
        sub(/#.*/, "", line)
        nf = split(line, f)
        if (nf >= 2) floor[f[1]] = f[2] + 0
        if (nf >= 3) hfloor[f[1]] = f[3] + 0
    }
    printf "%-28s %15s %7s %17s\n", "file", "float passed", "floor", "histogram passed"
}
{
    path = $0; sub(/: [0-9]+ passed.*$/, "", path)
    n = split(path, parts, "/"); file = parts[n]
    match($0, /float: [0-9]+\/[0-9]+/); fl = substr($0, RSTART + 7, RLENGTH - 7)
    match($0, /histogram: [0-9]+\/[0-9]+/); hi = substr($0, RSTART + 11, RLENGTH - 11)
    split(fl, a, "/"); split(hi, b, "/")
    fp += a[1]; ft += a[2]; hp += b[1]; ht += b[2]
    seen[file] = 1
    fv = (file in floor) ? floor[file] : 0
    note = ""
    hv = (file in hfloor) ? hfloor[file] : 0
    if (a[1] < fv) { note = "  BELOW FLOOR (regression)"; bad++ }
    else if (a[1] > fv) note = "  above floor: raise it to " a[1]
    if (b[1] < hv) { note = note "  BELOW HISTOGRAM FLOOR " hv " (regression)"; bad++ }
    else if (b[1] > hv) note = note "  histogram floor: raise it to " b[1]
    if (!(file in floor)) note = note "  (no floor entry)"
    printf "%-28s %8d/%-6d %7d %10d/%d%s\n", file, a[1], a[2], fv, b[1], b[2], note
}
END {
    for (k in floor) if (!(k in seen)) { printf "%-28s no result (has a floor of %d)\n", k, floor[k]; bad++ }
    pct = ft ? 100 * fp / ft : 100
    printf "corpus float evals: %d/%d passed (%.1f%%; %d to go for 100%%)\n", fp, ft, pct, ft - fp
    printf "corpus histogram evals: %d/%d passed\n", hp, ht
    printf "corpus, all evals: %d/%d passed\n", fp + hp, ft + ht
    if (bad) { printf "!! %d file(s) below their floor in %s\n", bad, floorfile; exit 1 }
}'
[ $? -eq 0 ] || status=1
exit $status
