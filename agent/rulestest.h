/* rulestest: promtool's rule unit tests (`promtool test rules`, Prometheus's
 * cmd/promtool/unittest.go) as `sidewatch test rules [--run REGEX]...
 * [--ignore-unknown-fields] [--debug] TESTFILE...`.
 *
 * A test file (strict YAML: unknown keys are errors) names rule files,
 * an evaluation_interval (default 1m), an optional group_eval_order and
 * fuzzy_compare, and test groups; each test group loads its input_series
 * (promqltest `load` notation, spaced by `interval`, default the
 * evaluation_interval) lazily into an in-memory store, evaluates every rule
 * group at start, start + evaluation_interval, ... up to its largest
 * eval_time, checks alert_rule_test against the FIRING alerts of the
 * evaluation at the largest step <= eval_time, and then runs each
 * promql_expr_test as an instant query (lookback 5m, default subquery step
 * = evaluation_interval). See ../shared/conformance/README.md, section
 * "`promtool test rules` file format".
 *
 * Output follows promtool: "Unit Testing:  FILE", then "  SUCCESS" or
 * "  FAILED:" and every mismatch in promtool's words, each followed by a
 * blank line; the command ends with "N passed, N failed" (test groups).
 *
 * Native histograms: input series written with `{{...}}` are loaded as
 * histogram samples, and a promql_expr_test's `histogram:` expectation is
 * compared with the result as promtool does, both sides in the canonical
 * TestExpression form ({{count:2 sum:3 counter_reset_hint:not_reset
 * buckets:[2]}}).
 *
 * Thread-safe (no global state). */
#ifndef SIDEWATCH_RULESTEST_H
#define SIDEWATCH_RULESTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "promql/parse.h"

typedef struct rulestest_options {
    /* --run: only test groups whose name matches one of these regexes
     * (Go RE2 syntax, unanchored, joined with `|` as promtool does).
     * NULL/0: every group. Borrowed. */
    const char *const *run;
    size_t n_run;
    bool ignore_unknown_fields; /* relaxes the rule files only */
    bool debug;                 /* DEBUG lines and a data dump on err */
    /* promtool's --enable-feature: parser options for rule expressions and
     * promql_expr_test (duration expressions are always on, as in promtool
     * 3.x), and promql-delayed-name-removal. */
    promql_parse_options parse;
    bool delayed_name_removal;
    FILE *out; /* "Unit Testing", SUCCESS; NULL = stdout */
    FILE *err; /* FAILED and the failures; NULL = stderr */
} rulestest_options;

typedef struct rulestest_counts {
    size_t passed, failed; /* test groups run (a file-level error: one failed) */
    size_t skipped;        /* test groups left out by --run */
} rulestest_counts;

/* Runs one test file and prints its result as promtool does. Counts are
 * added to *c (may be NULL). Returns 0 if every selected test group passed,
 * 1 otherwise (also when the file cannot be read or parsed, or --run holds
 * a bad regex: then the reason is printed as the failure). */
int rulestest_run_file(const char *path, const rulestest_options *o, rulestest_counts *c);

/* `sidewatch test rules [--run REGEX]... [--ignore-unknown-fields] [--debug]
 * [--enable-feature=F,...] TESTFILE...`: argv holds only the arguments
 * after "test rules". Features: promql-experimental-functions,
 * promql-delayed-name-removal, promql-extended-range-selectors,
 * promql-binop-fill-modifiers, promql-duration-expr (a no-op); unknown ones
 * get a warning, as in promtool. Returns the process exit code: 0 if every test passed,
 * 1 if some failed, 2 on usage errors. */
int rulestest_main(int argc, char **argv);

#endif
