/* Unit tests for rulestest (`sidewatch test rules`): every test file of
 * promtool's testdata (../shared/conformance/rules-unittest) with the
 * outcomes of unittest_test.go, and small test files of our own for each
 * semantic point of the format (lazy loading, evaluation steps,
 * group_eval_order, firing-only alert checks, templates, scalar results,
 * fuzzy_compare, start_timestamp, --run, strict YAML, output format). */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "mem.h"
#include "rulestest.h"

/* ---- helpers ------------------------------------------------------------------ */

typedef struct run_result {
    int rc;
    char *out; /* stdout and stderr of the run, interleaved; caller frees */
    rulestest_counts c;
} run_result;

static run_result run_file(const char *path, const char *const *run, size_t n_run, bool ignore)
{
    run_result r = {0};
    size_t len = 0;
    FILE *f = open_memstream(&r.out, &len);
    assert_non_null(f);
    rulestest_options o = {
        .run = run, .n_run = n_run, .ignore_unknown_fields = ignore, .out = f, .err = f};
    r.rc = rulestest_run_file(path, &o, &r.c);
    fclose(f);
    return r;
}

static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    /* As promtool (a no-op logger): rule failures are reported as test
     * failures, not logged. */
    log_set_level(LOG_ERROR);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/wip-rulestest-unit-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    if (!d) return 0;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tmpdir);
    return 0;
}

/* Writes text to <tmpdir>/name; returns the path (static buffer per call
 * site is not enough: caller copies). */
static void write_tmp(const char *name, const char *text, char *path, size_t n)
{
    snprintf(path, n, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs a test file given as text (named name) with the given rule file
 * (may be NULL) written next to it as rules.yml. */
static run_result run_text(const char *name, const char *test, const char *rules,
                           const char *const *run, size_t n_run)
{
    char p[512];
    if (rules) write_tmp("rules.yml", rules, p, sizeof p);
    write_tmp(name, test, p, sizeof p);
    run_result r = run_file(p, run, n_run, false);
    print_message("---- %s: rc %d\n%s", name, r.rc, r.out);
    return r;
}

static void expect_pass(run_result r)
{
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "  SUCCESS\n"));
    assert_null(strstr(r.out, "FAILED"));
    free(r.out);
}

static void expect_fail(run_result r, const char *substr)
{
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "  FAILED:\n"));
    if (substr && !strstr(r.out, substr)) fail_msg("expected \"%s\" in:\n%s", substr, r.out);
    free(r.out);
}

/* ---- promtool's testdata with unittest_test.go's expected outcomes ----------------- */

static const struct conf_case {
    const char *file;
    const char *run[2];
    size_t n_run;
    bool ignore_unknown;
    int want;
} conf_cases[] = {
    {"unittest.yml", {0}, 0, false, 0},
    {"long-period.yml", {0}, 0, false, 0},
    {"bad-input-series.yml", {0}, 0, false, 1},
    {"bad-promql.yml", {0}, 0, false, 1},
    {"bad-rules-syntax-test.yml", {0}, 0, false, 1},
    {"bad-rules-error-test.yml", {0}, 0, false, 1},
    {"failing.yml", {0}, 0, false, 1},
    /* promtool enables @ and negative offsets; so does sidewatch. */
    {"at-modifier-test.yml", {0}, 0, false, 0},
    {"negative-offset-test.yml", {0}, 0, false, 0},
    {"no-test-group-interval.yml", {0}, 0, false, 0},
    {"start-time-test.yml", {0}, 0, false, 0},
    {"rules_run.yml", {0}, 0, false, 1},
    {"rules_run.yml", {"correct", "wrong"}, 2, false, 1},
    {"rules_run.yml", {"correct"}, 1, false, 0},
    {"rules_run.yml", {"wrong"}, 1, false, 1},
    {"rules_run_extrafields.yml", {0}, 0, true, 0},
    {"rules_run_extrafields.yml", {0}, 0, false, 1},
    {"rules_run_no_fuzzy.yml", {0}, 0, false, 1},
    {"rules_run_fuzzy.yml", {"correct"}, 1, false, 0},
    {"rules_run_fuzzy.yml", {"wrong"}, 1, false, 1},
};

/* True if the file is a unit-test file (has a top-level `tests:` key). */
static bool is_test_file(const char *path)
{
    char *t = tu_read_file(path, NULL);
    if (!t) return false;
    bool yes = strncmp(t, "tests:", 6) == 0 || strstr(t, "\ntests:") != NULL;
    free(t);
    return yes;
}

static void test_conformance_files(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("conformance/rules-unittest");
    char dir[4096];
    tu_shared_path(dir, sizeof dir, "conformance/rules-unittest");
    size_t n = sizeof conf_cases / sizeof conf_cases[0];
    size_t pass = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        const struct conf_case *cc = &conf_cases[i];
        char path[4608];
        snprintf(path, sizeof path, "%s/%s", dir, cc->file);
        run_result r = run_file(path, cc->run, cc->n_run, cc->ignore_unknown);
        char args[128] = "";
        for (size_t j = 0; j < cc->n_run; j++)
            snprintf(args + strlen(args), sizeof args - strlen(args), " --run %s", cc->run[j]);
        if (cc->ignore_unknown) strcat(args, " --ignore-unknown-fields");
        const char *verdict = "ok";
        if (r.rc == cc->want) {
            pass++;
        } else {
            verdict = "FAILED";
            failed++;
        }
        print_message("[%s] %s%s: exit %d (want %d), groups %zu passed, %zu failed\n", verdict,
                      cc->file, args, r.rc, cc->want, r.c.passed, r.c.failed);
        if (strcmp(verdict, "ok") != 0) print_message("%s", r.out);
        free(r.out);
    }
    print_message("conformance: %zu cases: %zu as expected, %zu failed\n", n, pass, failed);
    /* Every case must match, native histograms (unittest.yml) included. */
    assert_int_equal(failed, 0);

    /* Every test file in the directory is one of the cases above. */
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    size_t files = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".yml") != 0) continue;
        char path[4608];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!is_test_file(path)) continue;
        files++;
        bool found = false;
        for (size_t i = 0; i < n; i++)
            if (strcmp(conf_cases[i].file, e->d_name) == 0) found = true;
        if (!found) fail_msg("test file %s has no expected outcome", e->d_name);
    }
    closedir(d);
    assert_int_equal(files, 15);
}

/* The failure texts of promtool's format, for the files whose failures
 * do not depend on the rule engine's messages. */
static void test_conformance_messages(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("conformance/rules-unittest");
    char path[4096];
    tu_shared_path(path, sizeof path, "conformance/rules-unittest/rules_run_no_fuzzy.yml");
    run_result r = run_file(path, NULL, 0, false);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "  FAILED:\n    expr: \"test_low\", time: 0s,\n"
                                  "        exp: {__name__=\"test_low\"} 3E+00\n"
                                  "        got: {__name__=\"test_low\"} 2.9999999999999996E+00\n"));
    assert_non_null(strstr(r.out, "got: {__name__=\"test_high\"} 3.0000000000000004E+00\n"));
    free(r.out);

    tu_shared_path(path, sizeof path, "conformance/rules-unittest/bad-promql.yml");
    r = run_file(path, NULL, 0, false);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "    expr: \"join_1 + on(a) join_2\", time: 0s, err: found "
                                  "duplicate series for the match group {a=\"1\"}"));
    free(r.out);

    tu_shared_path(path, sizeof path, "conformance/rules-unittest/bad-rules-error.yml");
    r = run_file(path, NULL, 0, false);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "yaml: unmarshal errors:\n  line 3: field groups not found in "
                                  "type main.unitTestFile\n"));
    free(r.out);

    tu_shared_path(path, sizeof path, "conformance/rules-unittest/bad-input-series.yml");
    r = run_file(path, NULL, 0, false);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "parse error:"));
    free(r.out);
}

/* ---- semantic points -------------------------------------------------------------- */

/* Input series are spaced by `interval` (default evaluation_interval) and
 * appended lazily; lookback is 5 minutes; stale markers end a series. */
static void test_loading_and_lookback(void **state)
{
    (void)state;
    expect_pass(run_text("load.yml",
                         "evaluation_interval: 2m\n"
                         "tests:\n"
                         "  - input_series:\n"
                         "      - series: a\n"
                         "        values: 1 2 stale\n"
                         "      - series: 'b{x=\"y\"}'\n"
                         "        values: 5 _ _ _ _\n"
                         "    promql_expr_test:\n"
                         "      - expr: a\n"
                         "        eval_time: 3m59s\n"
                         "        exp_samples: [{labels: a, value: 2}]\n"
                         "      - expr: a\n"
                         "        eval_time: 4m\n"
                         "        exp_samples: []\n"
                         "      - expr: timestamp(b)\n"
                         "        eval_time: 4m59s\n"
                         "        exp_samples: [{labels: '{x=\"y\"}', value: 0}]\n"
                         "      - expr: b\n"
                         "        eval_time: 5m\n"
                         "        exp_samples: []\n",
                         NULL, NULL, 0));
    /* interval overrides the spacing. */
    expect_pass(run_text("load2.yml",
                         "tests:\n"
                         "  - interval: 10s\n"
                         "    input_series: [{series: a, values: '0+1x12'}]\n"
                         "    promql_expr_test:\n"
                         "      - {expr: a, eval_time: 1m, exp_samples: [{labels: a, value: 6}]}\n"
                         "      - {expr: 'count_over_time(a[1m])', eval_time: 2m,"
                         " exp_samples: [{value: 6}]}\n",
                         NULL, NULL, 0));
    /* A wrong expectation fails with promtool's text. */
    expect_fail(run_text("load3.yml",
                         "tests:\n"
                         "  - input_series: [{series: 'a{b=\"c\"}', values: '1 2'}]\n"
                         "    promql_expr_test:\n"
                         "      - {expr: a, eval_time: 1m, exp_samples: [{labels: 'a{b=\"c\"}', "
                         "value: 1}]}\n",
                         NULL, NULL, 0),
                "    expr: \"a\", time: 1m,\n"
                "        exp: {__name__=\"a\", b=\"c\"} 1E+00\n"
                "        got: {__name__=\"a\", b=\"c\"} 2E+00\n");
}

/* A series given twice: the last definition wins (promqltest keeps
 * definitions in a map). */
static void test_repeated_series(void **state)
{
    (void)state;
    expect_pass(run_text("rep.yml",
                         "tests:\n"
                         "  - input_series:\n"
                         "      - {series: 'a{x=\"1\"}', values: '1 1 1'}\n"
                         "      - {series: 'a{x=\"1\"}', values: '_ 7'}\n"
                         "    promql_expr_test:\n"
                         "      - {expr: 'count_over_time(a[10m])', eval_time: 2m, "
                         "exp_samples: [{labels: '{x=\"1\"}', value: 1}]}\n",
                         NULL, NULL, 0));
}

/* A subquery without a step uses the evaluation_interval. */
static void test_subquery_step(void **state)
{
    (void)state;
    static const char *fmt = "evaluation_interval: %s\n"
                             "tests:\n"
                             "  - interval: 1m\n"
                             "    input_series: [{series: a, values: '0+1x10'}]\n"
                             "    promql_expr_test:\n"
                             "      - {expr: 'count_over_time(a[4m:])', eval_time: 4m, "
                             "exp_samples: [{value: %d}]}\n";
    char t[512];
    snprintf(t, sizeof t, fmt, "1m", 4);
    expect_pass(run_text("sq1.yml", t, NULL, NULL, 0));
    snprintf(t, sizeof t, fmt, "2m", 2);
    expect_pass(run_text("sq2.yml", t, NULL, NULL, 0));
    snprintf(t, sizeof t, fmt, "2m", 4);
    expect_fail(run_text("sq3.yml", t, NULL, NULL, 0), "got: {} 2E+00");
}

/* Scalars are one sample without labels; strings are an error; result
 * order does not matter; an empty result prints as nil. */
static void test_expr_results(void **state)
{
    (void)state;
    expect_pass(run_text("scalar.yml",
                         "tests:\n"
                         "  - input_series:\n"
                         "      - {series: 'm{i=\"1\"}', values: '1'}\n"
                         "      - {series: 'm{i=\"2\"}', values: '2'}\n"
                         "    promql_expr_test:\n"
                         "      - {expr: '1 + 2', eval_time: 0, exp_samples: [{value: 3}]}\n"
                         "      - expr: m\n"
                         "        eval_time: 0\n"
                         "        exp_samples:\n"
                         "          - {labels: 'm{i=\"2\"}', value: 2}\n"
                         "          - {labels: 'm{i=\"1\"}', value: 1}\n",
                         NULL, NULL, 0));
    expect_fail(run_text("string.yml",
                         "tests:\n"
                         "  - promql_expr_test:\n"
                         "      - {expr: '\"x\"', eval_time: 0, exp_samples: []}\n",
                         NULL, NULL, 0),
                "    expr: \"\\\"x\\\"\", time: 0s, err: rule result is not a vector or scalar");
    expect_fail(run_text("nil.yml",
                         "tests:\n"
                         "  - promql_expr_test:\n"
                         "      - {expr: 'nothing', eval_time: 0, exp_samples: [{labels: "
                         "nothing, value: 0}]}\n",
                         NULL, NULL, 0),
                "        got: nil");
    expect_fail(run_text("badlabels.yml",
                         "tests:\n"
                         "  - promql_expr_test:\n"
                         "      - {expr: '1', eval_time: 0, exp_samples: [{labels: 'a{', "
                         "value: 1}]}\n",
                         NULL, NULL, 0),
                "    expr: \"1\", time: 0s, err: labels \"a{\": ");
    expect_fail(run_text("badexpr.yml",
                         "tests:\n"
                         "  - promql_expr_test:\n"
                         "      - {expr: 'sum(', eval_time: 2m, exp_samples: []}\n",
                         NULL, NULL, 0),
                "    expr: \"sum(\", time: 2m, err: 1:5: parse error:");
}

/* Duration expressions are always on (promtool 3.x); experimental
 * functions need --enable-feature=promql-experimental-functions. */
static void test_features(void **state)
{
    (void)state;
    static const char *t = "tests:\n"
                           "  - input_series: [{series: 'a{x=\"1\"}', values: '1 2 3 4 5'}]\n"
                           "    promql_expr_test:\n"
                           "      - expr: 'a offset (1m + 1m)'\n"
                           "        eval_time: 4m\n"
                           "        exp_samples: [{labels: 'a{x=\"1\"}', value: 3}]\n"
                           "      - expr: 'sort_by_label(a, \"x\")'\n"
                           "        eval_time: 2m\n"
                           "        exp_samples: [{labels: 'a{x=\"1\"}', value: 3}]\n";
    expect_fail(run_text("feat.yml", t, NULL, NULL, 0),
                "err: 1:1: parse error: function \"sort_by_label\" is not enabled");
    char p[512];
    snprintf(p, sizeof p, "%s/feat.yml", tmpdir);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    rulestest_options o = {.out = f, .err = f};
    o.parse.experimental_functions = true;
    rulestest_counts c = {0};
    int rc = rulestest_run_file(p, &o, &c);
    fclose(f);
    print_message("%s", out);
    assert_int_equal(rc, 0);
    assert_int_equal(c.passed, 1);
    free(out);
}

/* --debug: start and end lines per test group and a dump of all data. */
static void test_debug(void **state)
{
    (void)state;
    char p[512];
    write_tmp(
        "debug.yml",
        "tests:\n"
        "  - input_series: [{series: 'a{x=\"1\"}', values: '1 2.5'}]\n"
        "    promql_expr_test:\n"
        "      - {expr: a, eval_time: 1m, exp_samples: [{labels: 'a{x=\"1\"}', value: 2.5}]}\n",
        p, sizeof p);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    rulestest_options o = {.out = f, .err = f, .debug = true};
    int rc = rulestest_run_file(p, &o, NULL);
    fclose(f);
    print_message("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "DEBUG: Starting test unnamed#0\n"));
    assert_non_null(strstr(out, "DEBUG: Dump of all data (input_series and rules) at 1m1s:\n"
                                "{__name__=\"a\", x=\"1\"} =>\n2.5 @[60000]\n"));
    assert_non_null(strstr(out, "DEBUG: Test unnamed#0 finished, took "));
    free(out);
}

/* fuzzy_compare allows exactly one ULP. */
static void test_fuzzy(void **state)
{
    (void)state;
    static const char *fmt = "fuzzy_compare: %s\n"
                             "tests:\n"
                             "  - input_series: [{series: a, values: '%s'}]\n"
                             "    promql_expr_test:\n"
                             "      - {expr: a, eval_time: 0, exp_samples: [{labels: a, value: "
                             "0.3}]}\n";
    char t[512];
    /* 0.1 + 0.2 = 0.30000000000000004, one ULP above 0.3. */
    snprintf(t, sizeof t, fmt, "true", "0.30000000000000004");
    expect_pass(run_text("f1.yml", t, NULL, NULL, 0));
    snprintf(t, sizeof t, fmt, "false", "0.30000000000000004");
    expect_fail(run_text("f2.yml", t, NULL, NULL, 0),
                "got: {__name__=\"a\"} 3.0000000000000004E-01");
    snprintf(t, sizeof t, fmt, "true", "0.3000000000000001");
    expect_fail(run_text("f3.yml", t, NULL, NULL, 0), "exp: {__name__=\"a\"} 3E-01");
}

/* start_timestamp (RFC3339 or unix seconds) moves t = 0 and the input. */
static void test_start_timestamp(void **state)
{
    (void)state;
    expect_pass(
        run_text("st.yml",
                 "tests:\n"
                 "  - start_timestamp: '2000-01-01T00:00:00+01:00'\n"
                 "    input_series: [{series: a, values: '1 2'}]\n"
                 "    promql_expr_test:\n"
                 "      - {expr: time(), eval_time: 1m, exp_samples: [{value: 946681260}]}\n"
                 "      - {expr: timestamp(a), eval_time: 1m, exp_samples: [{value: "
                 "946681260}]}\n"
                 "  - start_timestamp: '2000-01-01t00:00:00.25z'\n"
                 "    promql_expr_test:\n"
                 "      - {expr: time(), eval_time: 0, exp_samples: [{value: 946684800.25}]}\n"
                 "  - start_timestamp: 1000.5\n"
                 "    promql_expr_test:\n"
                 "      - {expr: time(), eval_time: 0, exp_samples: [{value: 1000.5}]}\n",
                 NULL, NULL, 0));
    expect_fail(run_text("st2.yml",
                         "tests:\n"
                         "  - start_timestamp: yesterday\n"
                         "    promql_expr_test: []\n",
                         NULL, NULL, 0),
                "cannot parse \"yesterday\" to a valid timestamp");
}

/* --run selects test groups by name (unanchored, several joined). */
static void test_run_filter(void **state)
{
    (void)state;
    static const char *t = "tests:\n"
                           "  - name: good one\n"
                           "    promql_expr_test: [{expr: '1', eval_time: 0, exp_samples: "
                           "[{value: 1}]}]\n"
                           "  - name: bad one\n"
                           "    promql_expr_test: [{expr: '1', eval_time: 0, exp_samples: "
                           "[{value: 2}]}]\n"
                           "  - promql_expr_test: [{expr: '1', eval_time: 0, exp_samples: "
                           "[{value: 3}]}]\n";
    run_result r = run_text("run.yml", t, NULL, NULL, 0);
    assert_int_equal(r.c.passed, 1);
    assert_int_equal(r.c.failed, 2);
    expect_fail(r, NULL);
    const char *good[] = {"ood"};
    r = run_text("run.yml", t, NULL, good, 1);
    assert_int_equal(r.c.passed, 1);
    assert_int_equal(r.c.skipped, 2);
    expect_pass(r);
    const char *both[] = {"^good", "bad"};
    r = run_text("run.yml", t, NULL, both, 2);
    assert_int_equal(r.c.passed + r.c.failed, 2);
    expect_fail(r, "exp: {} 2E+00");
    const char *bad[] = {"("};
    r = run_text("run.yml", t, NULL, bad, 1);
    expect_fail(r, "error parsing regexp");
}

/* The test file is strict YAML; errors are yaml.v2's. */
static void test_strict_yaml(void **state)
{
    (void)state;
    expect_fail(run_text("strict.yml",
                         "evaluation_interval: 1m\n"
                         "extra: 1\n"
                         "tests:\n"
                         "  - name: x\n"
                         "    bogus: 2\n"
                         "    promql_expr_test:\n"
                         "      - {expr: '1', eval_time: 0, exp_samples: [{value: 1, lbls: x}]}\n",
                         NULL, NULL, 0),
                "yaml: unmarshal errors:\n"
                "  line 2: field extra not found in type main.unitTestFile\n"
                "  line 5: field bogus not found in type main.testGroup\n"
                "  line 7: field lbls not found in type main.sample\n");
    expect_fail(run_text("strict2.yml",
                         "tests:\n  - promql_expr_test:\n      - {expr: '1', "
                         "eval_time: 0, exp_samples: [{value: abc}]}\n",
                         NULL, NULL, 0),
                "line 3: cannot unmarshal !!str `abc` into float64");
    expect_fail(run_text("strict3.yml", "evaluation_interval: 5x\ntests: []\n", NULL, NULL, 0),
                "\"5x\"");
    expect_fail(run_text("order.yml", "group_eval_order: [a, b, a]\ntests: []\n", NULL, NULL, 0),
                "group name repeated in evaluation order: a");
    /* Errors come in document order, as yaml.v2 finds them. */
    expect_fail(run_text("order2.yml",
                         "tests:\n"
                         "  - promql_expr_test:\n"
                         "      - {expr: '1', eval_time: 0, exp_samples: [{value: x}]}\n"
                         "    bogus: 1\n"
                         "fuzzy_compare: maybe\n",
                         NULL, NULL, 0),
                "yaml: unmarshal errors:\n"
                "  line 3: cannot unmarshal !!str `x` into float64\n"
                "  line 4: field bogus not found in type main.testGroup\n"
                "  line 5: cannot unmarshal !!str `maybe` into bool\n");
    expect_fail(
        run_text("dup.yml", "tests: []\nevaluation_interval: 1m\ntests: []\n", NULL, NULL, 0),
        "  line 3: field tests already set in type main.unitTestFile");
    /* No tests at all is a success. */
    expect_pass(run_text("empty.yml", "tests: []\n", NULL, NULL, 0));
    /* A file that cannot be read fails. */
    char p[512];
    snprintf(p, sizeof p, "%s/does-not-exist.yml", tmpdir);
    run_result r = run_file(p, NULL, 0, false);
    expect_fail(r, "does-not-exist.yml");
}

/* ---- with rules ------------------------------------------------------------------- */

static const char *rules_yml = "groups:\n"
                               "  - name: first\n"
                               "    rules:\n"
                               "      - record: job:up:sum\n"
                               "        expr: sum by (job) (up)\n"
                               "      - record: chained\n"
                               "        expr: job:up:sum * 10\n"
                               "  - name: second\n"
                               "    rules:\n"
                               "      - record: reads_first\n"
                               "        expr: chained + 1\n"
                               "      - alert: Down\n"
                               "        expr: up == 0\n"
                               "        for: 3m\n"
                               "        labels: {severity: page}\n"
                               "        annotations: {summary: instance down}\n"
                               "      - alert: Always\n"
                               "        expr: vector(1)\n"
                               "  - name: third\n"
                               "    rules:\n"
                               "      - alert: Down\n"
                               "        expr: up == 0\n"
                               "        labels: {severity: info}\n";

/* Recording rules run at each evaluation_interval step, later rules of a
 * group see earlier ones' output, and their results can be queried. */
static void test_recording_rules(void **state)
{
    (void)state;
    expect_pass(run_text("rec.yml",
                         "rule_files: [rules.yml]\n"
                         "evaluation_interval: 1m\n"
                         "tests:\n"
                         "  - interval: 15s\n"
                         "    input_series:\n"
                         "      - {series: 'up{job=\"a\", i=\"1\"}', values: '1x20'}\n"
                         "      - {series: 'up{job=\"a\", i=\"2\"}', values: '0+1x20'}\n"
                         "    promql_expr_test:\n"
                         "      - expr: chained\n"
                         "        eval_time: 2m\n"
                         "        exp_samples: [{labels: 'chained{job=\"a\"}', value: 90}]\n"
                         "      - expr: timestamp(job:up:sum)\n"
                         "        eval_time: 2m50s\n"
                         "        exp_samples: [{labels: '{job=\"a\"}', value: 120}]\n"
                         "      - expr: count_over_time(job:up:sum[3m])\n"
                         "        eval_time: 3m\n"
                         "        exp_samples: [{labels: '{job=\"a\"}', value: 3}]\n",
                         rules_yml, NULL, 0));
}

/* A recording rule whose result is a native histogram records it as one
 * (the appender's histogram path), and later rules and queries read it. */
static void test_recording_histograms(void **state)
{
    (void)state;
    expect_pass(run_text("rech.yml",
                         "rule_files: [rules.yml]\n"
                         "evaluation_interval: 1m\n"
                         "tests:\n"
                         "  - interval: 1m\n"
                         "    input_series:\n"
                         "      - {series: 'h{i=\"1\"}', values: "
                         "'{{schema:0 sum:5 count:4 buckets:[1 2 1]}}x10'}\n"
                         "      - {series: 'h{i=\"2\"}', values: "
                         "'{{schema:0 sum:3 count:2 z_bucket:1 z_bucket_w:0.001 buckets:[1]}}x10'}\n"
                         "    promql_expr_test:\n"
                         "      - expr: h:sum\n"
                         "        eval_time: 2m\n"
                         "        exp_samples: [{labels: 'h:sum', histogram: "
                         "'{{schema:0 count:6 sum:8 z_bucket:1 z_bucket_w:0.001 counter_reset_hint:not_reset buckets:[2 2 1]}}'}]\n"
                         "      - expr: h:sum:count\n"
                         "        eval_time: 3m\n"
                         "        exp_samples: [{labels: 'h:sum:count', value: 6}]\n",
                         "groups:\n"
                         "  - name: g\n"
                         "    rules:\n"
                         "      - {record: 'h:sum', expr: 'sum(h)'}\n"
                         "      - {record: 'h:sum:count', expr: 'histogram_count(h:sum)'}\n",
                         NULL, 0));
}

/* group_eval_order decides whether `second` sees `first`'s output of the
 * same step (unlisted groups count as position 0). */
static void test_group_eval_order(void **state)
{
    (void)state;
    static const char *fmt =
        "rule_files: [rules.yml]\n"
        "%s"
        "tests:\n"
        "  - input_series:\n"
        "      - {series: 'up{job=\"a\"}', values: '1 2 3'}\n"
        "    promql_expr_test:\n"
        "      - expr: reads_first\n"
        "        eval_time: 2m\n"
        "        exp_samples: [{labels: 'reads_first{job=\"a\"}', value: %d}]\n";
    char t[1024];
    snprintf(t, sizeof t, fmt, "group_eval_order: [first, second]\n", 31);
    expect_pass(run_text("order1.yml", t, rules_yml, NULL, 0));
    /* second first: it reads `chained` from the previous step (20). */
    snprintf(t, sizeof t, fmt, "group_eval_order: [third, second, first]\n", 21);
    expect_pass(run_text("order2.yml", t, rules_yml, NULL, 0));
    snprintf(t, sizeof t, fmt, "group_eval_order: [third, second, first]\n", 31);
    expect_fail(run_text("order3.yml", t, rules_yml, NULL, 0), "exp: {__name__=\"reads_first\"");
}

/* alert_rule_test: only firing alerts count, alertname is added, the
 * evaluation at the largest step <= eval_time is used, the same alert
 * name in several groups is collected, and ALERTS can be queried. */
static void test_alerts(void **state)
{
    (void)state;
    expect_pass(
        run_text("alerts.yml",
                 "rule_files: [rules.yml]\n"
                 "evaluation_interval: 1m\n"
                 "group_eval_order: [first, second, third]\n"
                 "tests:\n"
                 "  - input_series:\n"
                 "      - {series: 'up{job=\"a\"}', values: '0x10'}\n"
                 "    alert_rule_test:\n"
                 "      - eval_time: 0\n"
                 "        alertname: Down\n"
                 "        exp_alerts:\n"
                 "          - exp_labels: {job: a, severity: info}\n"
                 "      # pending in `second` (for: 3m) is not counted\n"
                 "      - eval_time: 2m59s\n"
                 "        alertname: Down\n"
                 "        exp_alerts:\n"
                 "          - exp_labels: {job: a, severity: info}\n"
                 "      - eval_time: 3m\n"
                 "        alertname: Down\n"
                 "        exp_alerts:\n"
                 "          - exp_labels: {job: a, severity: page}\n"
                 "            exp_annotations: {summary: instance down}\n"
                 "          - exp_labels: {job: a, severity: info}\n"
                 "      - eval_time: 5m\n"
                 "        alertname: Always\n"
                 "        exp_alerts: [{}]\n"
                 "      - eval_time: 5m\n"
                 "        alertname: NoSuchAlert\n"
                 "    promql_expr_test:\n"
                 "      - expr: ALERTS{alertname=\"Down\"}\n"
                 "        eval_time: 1m\n"
                 "        exp_samples:\n"
                 "          - labels: "
                 "'ALERTS{alertname=\"Down\",alertstate=\"pending\",job=\"a\",severity=\"page\"}'\n"
                 "            value: 1\n"
                 "          - labels: "
                 "'ALERTS{alertname=\"Down\",alertstate=\"firing\",job=\"a\",severity=\"info\"}'\n"
                 "            value: 1\n",
                 rules_yml, NULL, 0));
    /* A mismatch prints both sides sorted, in promtool's layout. */
    expect_fail(run_text("alerts2.yml",
                         "rule_files: [rules.yml]\n"
                         "tests:\n"
                         "  - name: grp\n"
                         "    input_series:\n"
                         "      - {series: 'up{job=\"a\"}', values: '0x10'}\n"
                         "    alert_rule_test:\n"
                         "      - eval_time: 10m\n"
                         "        alertname: Down\n"
                         "        exp_alerts: []\n",
                         rules_yml, NULL, 0),
                "    name: grp,\n"
                "    alertname: Down, time: 10m, \n"
                "        exp:[], \n"
                "        got:[\n"
                "            0:\n"
                "              Labels:{alertname=\"Down\", job=\"a\", severity=\"info\"}\n"
                "              Annotations:{},\n"
                "            1:\n"
                "              Labels:{alertname=\"Down\", job=\"a\", severity=\"page\"}\n"
                "              Annotations:{summary=\"instance down\"}\n"
                "            ]\n");
    expect_fail(run_text("alerts3.yml",
                         "rule_files: [rules.yml]\n"
                         "tests:\n"
                         "  - name: grp\n"
                         "    alert_rule_test:\n"
                         "      - eval_time: 1m\n"
                         "        exp_alerts: []\n",
                         rules_yml, NULL, 0),
                "an item under alert_rule_test misses required attribute alertname at eval_time "
                "1m (in TestGroup grp)");
}

/* Alert labels and annotations are compared after template expansion,
 * with $labels, $value, $externalLabels and $externalURL from the test
 * group. */
static void test_templates(void **state)
{
    (void)state;
    static const char *rules =
        "groups:\n"
        "  - name: t\n"
        "    rules:\n"
        "      - alert: High\n"
        "        expr: m > 10\n"
        "        labels: {team: '{{ $labels.job }}-ops'}\n"
        "        annotations:\n"
        "          summary: '{{ $labels.job }} at {{ $value }}'\n"
        "          where: '{{ $externalLabels.cluster }} {{ $externalURL }}'\n";
    static const char *fmt = "rule_files: [rules.yml]\n"
                             "tests:\n"
                             "  - external_labels: {cluster: %s}\n"
                             "    external_url: http://sw.example:9277\n"
                             "    input_series: [{series: 'm{job=\"api\"}', values: '5 20'}]\n"
                             "    alert_rule_test:\n"
                             "      - eval_time: 0\n"
                             "        alertname: High\n"
                             "      - eval_time: 1m\n"
                             "        alertname: High\n"
                             "        exp_alerts:\n"
                             "          - exp_labels: {job: api, team: api-ops}\n"
                             "            exp_annotations:\n"
                             "              summary: api at 20\n"
                             "              where: eu-1 http://sw.example:9277\n";
    char t[1024];
    snprintf(t, sizeof t, fmt, "eu-1");
    expect_pass(run_text("tmpl.yml", t, rules, NULL, 0));
    snprintf(t, sizeof t, fmt, "us-2");
    expect_fail(run_text("tmpl2.yml", t, rules, NULL, 0),
                "Annotations:{summary=\"api at 20\", where=\"us-2 http://sw.example:9277\"}");
}

/* A rule evaluation error fails the group and stops its evaluation loop. */
static void test_rule_errors(void **state)
{
    (void)state;
    expect_fail(run_text("ruleerr.yml",
                         "rule_files: [rules.yml]\n"
                         "tests:\n"
                         "  - input_series:\n"
                         "      - {series: 'x{a=\"1\",b=\"1\"}', values: '1'}\n"
                         "      - {series: 'y{a=\"1\",b=\"2\"}', values: '1'}\n"
                         "      - {series: 'y{a=\"1\",b=\"3\"}', values: '1'}\n"
                         "    promql_expr_test:\n"
                         "      - {expr: '1', eval_time: 5m, exp_samples: [{value: 2}]}\n",
                         "groups:\n"
                         "  - name: g\n"
                         "    rules:\n"
                         "      - record: joined\n"
                         "        expr: x + on(a) y\n",
                         NULL, 0),
                "    rule: joined, time: 0s, err: found duplicate series");
    /* Stopped at the first error: the promql_expr_test never ran. */
    char p[512];
    snprintf(p, sizeof p, "%s/ruleerr.yml", tmpdir);
    run_result r = run_file(p, NULL, 0, false);
    assert_null(strstr(r.out, "expr: \"1\""));
    expect_fail(r, NULL);
    /* A rule file that does not load fails the test group. */
    expect_fail(run_text("rulesyntax.yml",
                         "rule_files: [rules.yml]\n"
                         "tests:\n"
                         "  - promql_expr_test: []\n",
                         "groups:\n"
                         "  - name: g\n"
                         "    rules:\n"
                         "      - record: x\n"
                         "        expr: sum(\n",
                         NULL, 0),
                "could not parse expression");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conformance_files),
        cmocka_unit_test(test_conformance_messages),
        cmocka_unit_test(test_loading_and_lookback),
        cmocka_unit_test(test_repeated_series),
        cmocka_unit_test(test_subquery_step),
        cmocka_unit_test(test_expr_results),
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_debug),
        cmocka_unit_test(test_fuzzy),
        cmocka_unit_test(test_start_timestamp),
        cmocka_unit_test(test_run_filter),
        cmocka_unit_test(test_strict_yaml),
        cmocka_unit_test(test_recording_rules),
        cmocka_unit_test(test_recording_histograms),
        cmocka_unit_test(test_group_eval_order),
        cmocka_unit_test(test_alerts),
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_rule_errors),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
