/* promql/promqltest: Prometheus's PromQL test scripts (the `.test` files of
 * promql/promqltest/testdata) and the runner behind `sidewatch promql test
 * FILE...`.
 *
 * The DSL is line-oriented (see ../shared/conformance/README.md and
 * Prometheus's promql/promqltest/test.go, which this follows): `load
 * <step>` / `load_with_nhcb <step>` blocks of `<series> <values>` lines,
 * `clear`, and `eval instant at <t> <expr>` / `eval range from <t0> to <t1>
 * step <s> <expr>` blocks with their expectations. Values use the series
 * notation of Prometheus's ParseSeriesDesc: `1 _ stale 0+10x3 1-2x4 _x2
 * 5x2 {{schema:0 sum:1 count:1 buckets:[1]}}`.
 *
 * The runner loads the data into a memstore (promql/memstore.h), parses and
 * evaluates every eval with promql_parse/promql_eval (lookback 5m, max
 * samples 10000, default subquery step 1m, delayed __name__ removal, start
 * timestamps used, every parser option on) and compares results as
 * test.go does. It does not run test.go's extra checks (the re-runs of
 * each instant eval with `@` and as a range query), and says so in its
 * first output line. `name{...}@st <offsets>` lines give the start
 * timestamps of the float samples of the line that follows (a histogram
 * sample's start timestamp is dropped).
 *
 * Histogram items are loaded as engine histograms (promql/histogram.h)
 * and `{{...}}` expectations compared as test.go's compareNativeHistogram
 * does. load_with_nhcb also loads each classic histogram family as a
 * custom-bucket native histogram (convertnhcb's rules). An eval whose expectations contain
 * `{{...}}` or whose selectors read histogram samples is counted as a "histogram eval"
 * (promqltest_counts). In a rejected file (see
 * promqltest_run_file) nothing runs, so an eval counts as a histogram eval
 * when `{{` appears in its block or in a load since the last `clear`, or
 * load_with_nhcb was used since. */
#ifndef SIDEWATCH_PROMQL_PROMQLTEST_H
#define SIDEWATCH_PROMQL_PROMQLTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "buf.h"
#include "labels.h"
#include "promql/eval.h"
#include "regex.h"

/* Caps on what a test file can make the runner allocate. */
#define PROMQLTEST_MAX_FILE_BYTES ((size_t)64 << 20) /* bytes of one test file */
#define PROMQLTEST_MAX_LINE_ITEMS ((size_t)1 << 20)  /* expanded values of one line */
#define PROMQLTEST_MAX_FILE_ITEMS ((size_t)8 << 20)  /* expanded values of one file */
#define PROMQLTEST_MAX_BUCKETS 4096                  /* entries of one bucket list */

/* ---- the series notation ------------------------------------------------- */

enum promqltest_hint {
    PROMQLTEST_HINT_UNKNOWN,
    PROMQLTEST_HINT_RESET,
    PROMQLTEST_HINT_NOT_RESET,
    PROMQLTEST_HINT_GAUGE,
};

/* A native histogram as written: {{schema:0 sum:5 count:4 z_bucket:1
 * z_bucket_w:0.001 buckets:[1 2] offset:1 n_buckets:[1] n_offset:0
 * custom_values:[1 2] counter_reset_hint:gauge}}. Unset keys are 0/empty.
 * Each bucket list is one span starting at its offset. */
typedef struct promqltest_histogram {
    int64_t schema;
    double sum, count, zero_count, zero_threshold;
    int64_t offset, n_offset;
    double *pos, *neg, *custom; /* buckets:[...], n_buckets:[...], custom_values:[...] */
    size_t n_pos, n_neg, n_custom;
    enum promqltest_hint hint;
    bool hint_set; /* counter_reset_hint was written: it is compared */
} promqltest_histogram;

enum promqltest_item_kind {
    PROMQLTEST_ITEM_OMITTED,   /* `_`: no sample at this step */
    PROMQLTEST_ITEM_FLOAT,     /* a number or `stale` (StaleNaN) */
    PROMQLTEST_ITEM_HISTOGRAM, /* h + k * delta ({{A}}+{{B}}xN gives k = 0..N) */
};

/* One step of an expanded value list. */
typedef struct promqltest_item {
    enum promqltest_item_kind kind;
    double v;
    const promqltest_histogram *h, *delta; /* HISTOGRAM; delta NULL when k = 0 */
    int64_t k;                             /* negative for {{A}}-{{B}}xN */
} promqltest_item;

/* An omitted position (`_`) of an `@st` line. */
#define PROMQLTEST_ST_NONE INT64_MIN

/* A `<series> <values>` line. */
typedef struct promqltest_series {
    labels *ls;             /* owned by the script (or by the caller of promqltest_parse_series) */
    promqltest_item *items; /* in the arena */
    size_t n;
    /* The `@st` line before it in a load: n start-timestamp offsets from
     * each item's time in ms (PROMQLTEST_ST_NONE for `_`), in the arena;
     * NULL without one (and from promqltest_parse_series). */
    int64_t *st;
    uint32_t line;   /* 1-based line in the file (0 when parsed alone) */
    bool histograms; /* some item is a histogram */
} promqltest_series;

/* Parses a series line as Prometheus's ParseSeriesDesc does: a metric
 * (`name`, `name{a="b",}`, `{__name__="n"}`, `{"utf8.name", "a.b"="x"}`,
 * `{}`) and, after whitespace, the value items: `N` (Go's number syntax:
 * 1, -2.5, 1e3, 1_000, 010 (octal), Inf, NaN), `stale`, `_`, `_xN` (N
 * omitted), `NxK` (K+1 copies), `A+BxK` / `A-BxK` (K+1 values stepping by
 * B), histograms `{{...}}`, `{{H}}xK`, `{{A}}+{{B}}xK`, `{{A}}-{{B}}xK`.
 * Hexadecimal values are not allowed (`0x1f` reads as 0 repeated and fails,
 * as in Prometheus). Items and histograms are allocated in `a` (unlimited
 * arena); *items_left is decremented by the number of items made (the
 * caller's budget). On success returns 0 and fills *out (out->ls: caller
 * frees with labels_free). On failure returns -EINVAL (or -E2BIG for the
 * budget) with "<col>: <reason>" appended to err (1-based byte column). */
int promqltest_parse_series(arena *a, const char *s, size_t len, size_t *items_left,
                            promqltest_series *out, buf *err);

/* The value of a HISTOGRAM item, h + k * delta (h - |k| * delta for a
 * negative k), as an engine histogram; the caller frees it with
 * promql_fh_free. */
promql_fh *promqltest_item_histogram(const promqltest_item *it);

/* A number as test.go's parseNumber reads an expected scalar: Go's
 * strconv.ParseInt(s, 0, 64) (0x1f, 0o17, 0b1, 010, 1_000), else
 * strconv.ParseFloat (1.5, 1e3, Inf, +Inf, NaN, 0x1p-2). Returns 0 or
 * -EINVAL (also for out-of-range floats). */
int promqltest_parse_number(const char *s, size_t len, double *out);

/* ---- scripts --------------------------------------------------------------- */

enum promqltest_expect_type {
    PROMQLTEST_EXPECT_ORDERED,
    PROMQLTEST_EXPECT_FAIL,
    PROMQLTEST_EXPECT_WARN,
    PROMQLTEST_EXPECT_NO_WARN,
    PROMQLTEST_EXPECT_INFO,
    PROMQLTEST_EXPECT_NO_INFO,
};

/* An `expect <type> [msg:<text>|regex:<re>]` line. */
typedef struct promqltest_expect {
    enum promqltest_expect_type type;
    const char *message; /* msg:, NULL otherwise */
    regex *re;           /* regex: (searched, not anchored); NULL otherwise */
    /* neither: matches anything */
} promqltest_expect;

/* An expected result line. */
typedef struct promqltest_expected {
    promqltest_series s;
    int pos; /* 1-based position among the result lines, for `ordered` */
} promqltest_expected;

typedef struct promqltest_eval {
    uint32_t line;     /* of the eval header */
    uint32_t end_line; /* last line of its block */
    const char *expr;  /* NUL-terminated, in the script */
    size_t expr_len;
    size_t expr_col;                   /* 0-based byte offset of expr in the trimmed header line */
    bool range;                        /* eval range */
    int64_t start_ms, end_ms, step_ms; /* range, or `expect range vector` */
    int64_t eval_ms;                   /* instant: the evaluation time */
    bool has_range_vector;             /* `expect range vector from .. to .. step ..` */
    /* Legacy suffixes: eval_fail, eval_warn, eval_info, eval_ordered. */
    bool fail, warn, info, ordered;
    const char *fail_message; /* expected_fail_message (after eval_fail) */
    regex *fail_regexp;       /* expected_fail_regexp */
    promqltest_expect *expects;
    size_t n_expects;
    /* Expectations of the result. */
    bool expect_scalar;
    double scalar;
    promqltest_expected *expected; /* unique label sets (a repeated one replaces) */
    size_t n_expected;
    bool has_string;
    const char *string; /* expect string, unquoted */
    size_t string_len;
    bool histograms; /* an expected value is a native histogram */
} promqltest_eval;

typedef struct promqltest_load {
    uint32_t line;
    int64_t step_ms;
    bool with_nhcb;
    promqltest_series *series; /* in file order (a repeated series: the last wins) */
    size_t n_series;
} promqltest_load;

enum promqltest_cmd_kind { PROMQLTEST_CMD_CLEAR, PROMQLTEST_CMD_LOAD, PROMQLTEST_CMD_EVAL };

typedef struct promqltest_cmd {
    enum promqltest_cmd_kind kind;
    uint32_t line;
    promqltest_load *load;
    promqltest_eval *eval;
} promqltest_cmd;

typedef struct promqltest_script {
    promqltest_cmd *cmds;
    size_t n_cmds;
    size_t n_evals;
    /* The trimmed lines of the file (comments blanked), for printing. */
    const char **lines;
    size_t *line_lens;
    size_t n_lines;
    arena mem; /* everything above but labels and regexes */
    labels **owned_labels;
    size_t n_owned_labels, cap_owned_labels;
    regex **owned_regexes;
    size_t n_owned_regexes, cap_owned_regexes;
} promqltest_script;

/* Parses a test file's text (the DSL only; eval expressions are kept as
 * text). On success returns 0 and a new script in *out (caller frees with
 * promqltest_script_free). On failure returns -EINVAL (-E2BIG past the
 * caps), sets *err_line to the 1-based line and appends the reason to err
 * ("invalid command \"foo\"", "3: unexpected ... in series values", ...);
 * *out is then NULL. Like test.go, parsing stops at the first error. */
int promqltest_parse(const char *text, size_t len, promqltest_script **out, uint32_t *err_line,
                     buf *err);
void promqltest_script_free(promqltest_script *s);

/* ---- result comparison ------------------------------------------------------ */

/* Prometheus's almost.Equal(a, b, 1e-6): relative tolerance 1e-6, a tiny
 * absolute one near zero; NaN equals NaN, but StaleNaN only equals
 * StaleNaN. */
bool promqltest_float_equal(double a, double b);

/* Compares a query result with an eval's expectations (test.go's
 * compareResult; annotations and errors are checked by the runner).
 * Returns true if they agree; otherwise false with the reason appended to
 * why. */
bool promqltest_compare(const promqltest_eval *ev, const promql_value *got, buf *why);

/* Checks annotations against the eval's expect warn/info/no_warn/no_info
 * lines and legacy eval_warn/eval_info (test.go's checkAnnotations).
 * Returns true, or false with the reason appended to why. */
bool promqltest_check_annotations(const promqltest_eval *ev, const promql_annotations *ann,
                                  buf *why);

/* Checks a query error against `expect fail` / expected_fail_message /
 * expected_fail_regexp. Returns true if the error is the expected one. */
bool promqltest_check_failure(const promqltest_eval *ev, const char *msg, buf *why);

/* ---- the runner --------------------------------------------------------------- */

typedef struct promqltest_counts {
    size_t passed, failed;
    size_t float_passed, float_total; /* evals without native histograms */
    size_t hist_passed, hist_total;   /* evals with native histograms */
} promqltest_counts;

typedef struct promqltest_options {
    FILE *out;               /* failures and per-file lines; NULL = stdout */
    size_t max_points;       /* memstore cap; 0 = MEMSTORE_DEFAULT_MAX_POINTS */
    size_t max_result_lines; /* lines of a result printed with a failure; 0 = 20 */
} promqltest_options;

/* Runs one test file and adds its evals to *total (and to *file if
 * non-NULL). Prints each failure as it happens ("<path>:<line>: FAILED
 * <expr>" and indented reason, expected and got) and then the file's
 * line "<path>: N passed, N failed (float: a/b, histogram: c/d)". A file
 * that cannot be read or parsed, or whose eval expressions do not parse
 * (test.go rejects the whole file), has every eval counted as failed.
 * Returns 0 if every eval passed, 1 if some failed, 2 if the file could
 * not be read. */
int promqltest_run_file(const char *path, const promqltest_options *o, promqltest_counts *total,
                        promqltest_counts *file);

/* `sidewatch promql test FILE...`: runs each file, prints the header line,
 * failures, one line per file and the totals "N passed, N failed". Returns
 * the process exit code: 0 if every eval passed, 1 otherwise, 2 on usage
 * errors or unreadable files. */
int promqltest_main(int argc, char **argv);

#endif
