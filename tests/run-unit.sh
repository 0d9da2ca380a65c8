#!/bin/sh
# Runs every unit/conformance test binary given as arguments, even after a
# failure, and prints one summary line: "N passed, N failed, N skipped".
# Exits non-zero if any test failed or any binary crashed.
set -u
passed=0; failed=0; skipped=0; crashed=0
out=$(mktemp)
for t in "$@"; do
    echo "== $t"
    "$t" >"$out" 2>&1
    rc=$?
    cat "$out"
    p=$(grep -c '^\[       OK \]' "$out")
    f=$(grep '^\[  FAILED  \] [a-z_]' "$out" | sort -u | wc -l)
    s=$(grep '^\[  SKIPPED \] [a-z_]' "$out" | sort -u | wc -l)
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "!! $t exited with status $rc without a failed test (crash?)"
        crashed=$((crashed + 1))
    fi
done
rm -f "$out"
extra=""; [ "$crashed" -gt 0 ] && extra=", $crashed binaries crashed"
echo "unit and conformance tests: $passed passed, $failed failed, $skipped skipped$extra"
[ "$failed" -eq 0 ] && [ "$crashed" -eq 0 ]
