/* Unit tests for promql/promqltest: the series notation, the DSL parser
 * (commands, eval headers, expect lines, errors with line numbers) and the
 * result comparison rules (tolerance, NaN and StaleNaN, ordering, vectors,
 * matrices, scalars, strings, annotations, expected failures). */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "labels.h"
#include "mem.h"
#include "promql/promqltest.h"
#include "strutil.h"

/* ---- the series notation ------------------------------------------------ */

/* Items as text: numbers as %g, "_" omitted, "stale", histograms as
 * "H(k)" (k = multiplier of the increment). */
static void items_text(const promqltest_series *s, buf *out)
{
    for (size_t i = 0; i < s->n; i++) {
        const promqltest_item *it = &s->items[i];
        if (i) buf_putc(out, ' ');
        if (it->kind == PROMQLTEST_ITEM_OMITTED)
            buf_putc(out, '_');
        else if (it->kind == PROMQLTEST_ITEM_HISTOGRAM)
            buf_printf(out, "H(%" PRId64 ")", it->k);
        else if (strutil_is_stale_nan(it->v))
            buf_puts(out, "stale");
        else
            buf_printf(out, "%g", it->v);
    }
}

static const struct series_case {
    const char *in;
    const char *labels; /* labels_format, or NULL when an error is expected */
    const char *items;  /* items_text, or the error substring */
} series_cases[] = {
    {"a 1 2 3", "{__name__=\"a\"}", "1 2 3"},
    {"a 0+10x3", "{__name__=\"a\"}", "0 10 20 30"},
    {"a 1-2x4", "{__name__=\"a\"}", "1 -1 -3 -5 -7"},
    {"a -1+1x2", "{__name__=\"a\"}", "-1 0 1"},
    {"a 5x2", "{__name__=\"a\"}", "5 5 5"},
    {"a 5x0", "{__name__=\"a\"}", "5"},
    {"a _x3", "{__name__=\"a\"}", "_ _ _"},
    {"a _x0 1", "{__name__=\"a\"}", "1"},
    {"a _ 1 _x2 2", "{__name__=\"a\"}", "_ 1 _ _ 2"},
    {"a -2.5 1e3 +Inf -Inf NaN inf .5 5.", "{__name__=\"a\"}", "-2.5 1000 inf -inf nan inf 0.5 5"},
    {"a stale 1 stale", "{__name__=\"a\"}", "stale 1 stale"},
    {"a 1_000 010 08 1e-3", "{__name__=\"a\"}", "1000 8 8 0.001"},
    /* Hexadecimal is ambiguous with the repetition: 0x10 is 0 repeated. */
    {"a 0x2", "{__name__=\"a\"}", "0 0 0"},
    {"a 0x1f", NULL, "5: bad number syntax: \"1f\""},
    {"a", "{__name__=\"a\"}", ""},
    {"a   1 \t 2 ", "{__name__=\"a\"}", "1 2"},
    {"{} 1", "{}", "1"},
    {"{ } 1", "{}", "1"},
    {"a{} 1", "{__name__=\"a\"}", "1"},
    {"a{b=\"c\",} 1", "{__name__=\"a\", b=\"c\"}", "1"},
    {"{__name__=\"a\", b='c'} 1", "{__name__=\"a\", b=\"c\"}", "1"},
    {"{\"a.b\", \"c.d\"=\"x\"} 1", "{__name__=\"a.b\", \"c.d\"=\"x\"}", "1"},
    {"a{b=\"x\\\"y\\n}\"} 1", "{__name__=\"a\", b=\"x\\\"y\\n}\"}", "1"},
    {"a:b:c{d=`e`} 1", "{__name__=\"a:b:c\", d=\"e\"}", "1"},
    {"sum 1", "{__name__=\"sum\"}", "1"},
    {"a {{schema:1 sum:2.5 count:3 z_bucket:1 z_bucket_w:0.5 buckets:[1 2] offset:-1 "
     "n_buckets:[3] n_offset:2 counter_reset_hint:gauge}}",
     "{__name__=\"a\"}", "H(0)"},
    {"a {{}} {{ }}x1", "{__name__=\"a\"}", "H(0) H(0) H(0)"},
    {"a {{count:1}}+{{count:2}}x2", "{__name__=\"a\"}", "H(0) H(1) H(2)"},
    {"a {{count:9}}-{{count:2}}x1 _", "{__name__=\"a\"}", "H(0) H(-1) _"},
    {"a {{schema:-53 custom_values:[1 2 Inf] buckets:[1 2 3]}}", "{__name__=\"a\"}", "H(0)"},
    /* errors */
    {"a{b!=\"c\"} 1", NULL, "only = is allowed"},
    {"a{b=~\"c\"} 1", NULL, "only = is allowed"},
    {"a{b=\"c\" 1", NULL, "unexpected end of input inside braces"},
    {"a{b=\"c\"}1", NULL, "unexpected number \"1\" in series values"},
    {"a {b=\"c\"} 1", NULL, "unexpected character in series sequence: '{'"},
    {"a 1+2", NULL, "unexpected end of input in series values, expected \"x\""},
    {"a 1x", NULL, "unexpected end of input in series values, expected repetition count"},
    {"a 1 x3", NULL, "unexpected \"x\" in series values"},
    {"a foo", NULL, "unexpected identifier \"foo\" in series values, expected number or \"stale\""},
    {"a Stale", NULL, "unexpected identifier \"Stale\""},
    {"a 1x2.5", NULL, "invalid repetition in series values: \"2.5\""},
    {"a 1e400", NULL, "error parsing number: \"1e400\""},
    {"a 1.2.3", NULL, "bad number syntax"},
    {"a 1 ; 2", NULL, "unexpected character in series sequence: ';'"},
    {"1 2", NULL, "a series starts with a metric name or '{'"},
    {"inf 1", NULL, "unexpected keyword \"inf\""},
    {"a{b=\"c\", b=\"d\"} 1", NULL, "label name \"b\" is set twice"},
    {"a{b=\"\\q\"} 1", NULL, "unknown escape sequence"},
    {"a {{foo:1}}", NULL, "bad histogram descriptor found: \"foo\""},
    {"a {{schema 1}}", NULL, "missing `:` for histogram descriptor"},
    {"a {{schema:1", NULL, "unterminated histogram description"},
    {"a {{ schema:1}}", NULL, "unexpected space after \"{{\""},
    {"a {{schema:1.5}}", NULL, "expected an integer"},
    {"a {{buckets:[1 x]}}", NULL, "expected a number"},
    {"a {{counter_reset_hint:maybe}}", NULL, "bad counter_reset_hint"},
    {"a {{count:1}}+1x2", NULL, "expected \"{{\" after '+'"},
    {"a {{count:1}}+{{count:1}}", NULL, "expected \"x<count>\""},
    {"a 1x2000000", NULL, "too many values in one line"},
};

static void test_series_notation(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof series_cases / sizeof *series_cases; i++) {
        const struct series_case *c = &series_cases[i];
        arena a;
        arena_init(&a, 0);
        buf err, got;
        buf_init(&err, BUF_UNLIMITED);
        buf_init(&got, BUF_UNLIMITED);
        size_t budget = PROMQLTEST_MAX_FILE_ITEMS;
        promqltest_series s;
        int rc = promqltest_parse_series(&a, c->in, strlen(c->in), &budget, &s, &err);
        if (c->labels) {
            if (rc != 0) fail_msg("case %zu %s: unexpected error: %s", i, c->in, buf_cstr(&err));
            labels_format(s.ls, &got);
            if (strcmp(buf_cstr(&got), c->labels) != 0)
                fail_msg("case %zu %s: labels %s, want %s", i, c->in, buf_cstr(&got), c->labels);
            buf_reset(&got);
            items_text(&s, &got);
            if (strcmp(buf_cstr(&got), c->items) != 0)
                fail_msg("case %zu %s: items \"%s\", want \"%s\"", i, c->in, buf_cstr(&got),
                         c->items);
            assert_int_equal(budget, PROMQLTEST_MAX_FILE_ITEMS - s.n);
            labels_free(s.ls);
        } else {
            if (rc == 0) fail_msg("case %zu %s: no error, want %s", i, c->in, c->items);
            if (!strstr(buf_cstr(&err), c->items))
                fail_msg("case %zu %s: error \"%s\", want \"%s\"", i, c->in, buf_cstr(&err),
                         c->items);
        }
        buf_cleanup(&err);
        buf_cleanup(&got);
        arena_cleanup(&a);
    }
}

static void test_histogram_fields(void **state)
{
    (void)state;
    const char *in = "a {{schema:-2 sum:-2.5 count:3 z_bucket:1 z_bucket_w:0.5 buckets:[1 2] "
                     "offset:-1 n_buckets:[3 -4 ] n_offset:2 custom_values:[0.1] "
                     "counter_reset_hint:not_reset}}x1";
    arena a;
    arena_init(&a, 0);
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    size_t budget = 100;
    promqltest_series s;
    assert_int_equal(promqltest_parse_series(&a, in, strlen(in), &budget, &s, &err), 0);
    assert_int_equal(s.n, 2);
    assert_true(s.histograms);
    const promqltest_histogram *h = s.items[1].h;
    assert_ptr_equal(h, s.items[0].h);
    assert_int_equal(h->schema, -2);
    assert_true(h->sum == -2.5 && h->count == 3 && h->zero_count == 1 && h->zero_threshold == 0.5);
    assert_int_equal(h->n_pos, 2);
    assert_true(h->pos[0] == 1 && h->pos[1] == 2);
    assert_int_equal(h->offset, -1);
    assert_int_equal(h->n_neg, 2);
    assert_true(h->neg[0] == 3 && h->neg[1] == -4);
    assert_int_equal(h->n_offset, 2);
    assert_int_equal(h->n_custom, 1);
    assert_true(h->hint_set && h->hint == PROMQLTEST_HINT_NOT_RESET);
    labels_free(s.ls);
    buf_cleanup(&err);
    arena_cleanup(&a);
}

static void test_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        double want; /* NAN: error expected */
    } cases[] = {
        {"1", 1},           {"-2.5", -2.5},      {"0x1f", 31},     {"0X1F", 31},    {"0o17", 15},
        {"0b101", 5},       {"010", 8},          {"08", 8},        {"1_000", 1000}, {"1e3", 1000},
        {"+Inf", INFINITY}, {"-inf", -INFINITY}, {"0x1p-2", 0.25}, {"-0x10", -16},  {"1_", NAN},
        {"_1", NAN},        {"1e400", NAN},      {"", NAN},        {"1 2", NAN},    {"abc", NAN},
        {"0x", NAN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double v = 0;
        int rc = promqltest_parse_number(cases[i].in, strlen(cases[i].in), &v);
        if (isnan(cases[i].want)) {
            if (rc == 0) fail_msg("%s: parsed as %g, want an error", cases[i].in, v);
        } else {
            if (rc != 0 || v != cases[i].want)
                fail_msg("%s: rc %d value %g, want %g", cases[i].in, rc, v, cases[i].want);
        }
    }
    double v;
    assert_int_equal(promqltest_parse_number("NaN", 3, &v), 0);
    assert_true(isnan(v));
}

/* ---- scripts ---------------------------------------------------------------- */

static promqltest_script *parse_ok(const char *text)
{
    promqltest_script *s = NULL;
    uint32_t line = 0;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    int rc = promqltest_parse(text, strlen(text), &s, &line, &err);
    if (rc != 0) fail_msg("unexpected error at line %u: %s\n%s", line, buf_cstr(&err), text);
    buf_cleanup(&err);
    return s;
}

static void test_script_commands(void **state)
{
    (void)state;
    const char *text =
        "# a comment\n"
        "load 5m\n"
        "  a{x=\"1\"} 0+10x2\n"
        "  a{x=\"1\"} 7\n" /* repeated in one load: replaces */
        "  b 1\n"
        "\n"
        "load_with_nhcb 1m\n"
        "  c_bucket{le=\"1\"} 1\n"
        "\n"
        "clear\n"
        "eval instant at 1m30s sum by (x) (a)\n"
        "  {x=\"1\"} 1\n"
        "  expect no_warn\n"
        "  {x=\"2\"} _\n"
        "  {x=\"1\"} 2\n"
        "\n"
        "eval range from 0 to 10m step 5m a\n"
        "  expect warn msg: some  text \n"
        "  expect info regex: ^PromQL info: .* \\(1:1\\)$\n"
        "  a{x=\"1\"} 1 _ 3\n"
        "\n"
        "eval range from 0 to 1m step 30s label_replace(a, \"b\", \" to \", \"c\", \"d\")\n"
        "\n"
        "eval_fail instant at 0 foo(\n"
        "  expected_fail_message some message\n"
        "eval_ordered instant at 1s   topk(2, a)\n"
        "  expect string `x`\n"
        "\n"
        "eval instant at 0 1\n"
        "  -Inf\n"
        "eval instant at 1m x[1m]\n"
        "  expect range vector from 10s to 1m step 10s\n"
        "  expect fail\n"
        "  x 1 2 3 4 5 6\n";
    promqltest_script *s = parse_ok(text);
    assert_int_equal(s->n_cmds, 10);
    assert_int_equal(s->n_evals, 7);
    assert_int_equal(s->cmds[0].kind, PROMQLTEST_CMD_LOAD);
    const promqltest_load *ld = s->cmds[0].load;
    assert_int_equal(ld->line, 2);
    assert_int_equal(ld->step_ms, 300000);
    assert_false(ld->with_nhcb);
    assert_int_equal(ld->n_series, 2);
    assert_int_equal(ld->series[0].n, 1);
    assert_true(ld->series[0].items[0].v == 7);
    assert_int_equal(ld->series[0].line, 4);
    assert_true(s->cmds[1].load->with_nhcb && s->cmds[1].load->step_ms == 60000);
    assert_int_equal(s->cmds[2].kind, PROMQLTEST_CMD_CLEAR);

    const promqltest_eval *e = s->cmds[3].eval;
    assert_int_equal(e->line, 11);
    assert_int_equal(e->end_line, 15);
    assert_string_equal(e->expr, "sum by (x) (a)");
    assert_int_equal(e->expr_col, 22);
    assert_false(e->range);
    assert_int_equal(e->eval_ms, 90000);
    assert_int_equal(e->n_expected, 2); /* {x="1"} twice: the later line wins */
    assert_true(e->expected[0].s.items[0].v == 2);
    assert_int_equal(e->expected[0].pos, 3);
    assert_int_equal(e->expected[1].pos, 2);
    assert_int_equal(e->n_expects, 1);
    assert_int_equal(e->expects[0].type, PROMQLTEST_EXPECT_NO_WARN);

    e = s->cmds[4].eval;
    assert_true(e->range);
    assert_true(e->start_ms == 0 && e->end_ms == 600000 && e->step_ms == 300000);
    assert_int_equal(e->n_expects, 2);
    assert_string_equal(e->expects[0].message, "some  text");
    assert_non_null(e->expects[1].re);
    assert_int_equal(e->expected[0].s.n, 3);

    e = s->cmds[5].eval;
    assert_true(e->range && e->end_ms == 60000 && e->step_ms == 30000);
    assert_string_equal(e->expr, "label_replace(a, \"b\", \" to \", \"c\", \"d\")");

    e = s->cmds[6].eval;
    assert_true(e->fail);
    assert_string_equal(e->expr, "foo(");
    assert_string_equal(e->fail_message, "some message");
    /* expected_fail_message ends the block: the next line is a command. */
    e = s->cmds[7].eval;
    assert_true(e->ordered);
    assert_string_equal(e->expr, "topk(2, a)");
    assert_int_equal(e->eval_ms, 1000);
    assert_true(e->has_string && e->string_len == 1 && e->string[0] == 'x');

    e = s->cmds[8].eval;
    assert_true(e->expect_scalar && e->scalar == -INFINITY);
    /* A scalar line ends the block too. */
    e = s->cmds[9].eval;
    assert_true(e->has_range_vector);
    assert_true(e->start_ms == 10000 && e->end_ms == 60000 && e->step_ms == 10000);
    assert_int_equal(e->eval_ms, 60000);
    assert_int_equal(e->expected[0].s.n, 6);
    promqltest_script_free(s);
    promqltest_script_free(NULL);
}

static const struct script_error_case {
    const char *text;
    uint32_t line;
    const char *err;
} script_errors[] = {
    {"foo bar\n", 1, "invalid command \"foo bar\""},
    {"load 5m\n  a 1\n# a comment ends the block\n  b 2\n", 4, "invalid command \"b 2\""},
    {"\n\nload\n", 3, "invalid load command"},
    {"loadx 5m\n", 1, "invalid load command"},
    {"load 5x\n a 1\n", 1, "invalid step definition \"5x\": "},
    {"EVAL instant at 0 y\n", 1, "invalid evaluation command"},
    {"eval instant at 0 x\n  a 1\nEVAL instant at 0 y\n", 3,
     "3:6: unexpected identifier \"instant\""},
    {"load 5m\n  a 1\n  b{c!=\"d\"} 1\n", 3,
     "3:2: unexpected matcher c!=\"d\" in a series: only = is allowed"},
    {"load 5m\n  a 1 1+\n", 2, "2:"},
    {"eval instant at 1m\n", 1, "invalid evaluation command"},
    {"eval instant foo\n", 1, "invalid evaluation command"},
    {"eval_ordered range from 0 to 1m step 1m foo\n", 1, "invalid evaluation command"},
    {"eval instant at 1x foo\n", 1,
     "error in eval foo (line 1): invalid timestamp definition \"1x\""},
    {"eval range from 10m to 1m step 1m foo\n", 1,
     "end timestamp (1m) is before start timestamp (10m)"},
    {"eval range from 0 to 1m step 1q foo\n", 1, "invalid step definition \"1q\""},
    {"eval range from x to 1m step 1m foo\n", 1, "invalid start timestamp definition \"x\""},
    /* As test.go's regular expression, "to" and the step's "step" are the
     * rightmost ones that still leave a match. */
    {"eval range from 0 to 1m step 1m foo step 2m bar\n", 1,
     "invalid end timestamp definition \"1m step 1m foo\""},
    {"eval instant at 0 foo\n  foo 1 2\n", 2, "expecting multiple values in instant evaluation"},
    {"eval instant at 0 foo\n  expect foo\n", 2, "invalid expect statement"},
    {"eval instant at 0 foo\n  expect fail msg:\n", 2, "invalid expect statement"},
    {"eval instant at 0 foo\n  expect info\n  expect no_info\n", 3,
     "info and no_info cannot be used together"},
    {"eval instant at 0 foo\n  expect warn\n  expect no_warn\n", 3,
     "warn and no_warn cannot be used together"},
    {"eval instant at 0 foo\n  expect fail\n  expect fail\n", 3,
     "multiple expect fail lines are not allowed"},
    {"eval instant at 0 foo\n  expect warn regex: (\n", 2, "invalid regex ( for warn"},
    {"eval instant at 0 foo\n  expect string foo\n", 2,
     "check that the string is correctly quoted"},
    {"eval instant at 0 foo\n  expect string\n", 2, "a quoted string literal is required"},
    {"eval instant at 0 foo\n  expect string \"a\"b\"\n", 2, "correctly quoted"},
    {"eval instant at 0 foo\n  expect range vector from 1m to 0 step 1s\n", 2,
     "end timestamp (0) is before start timestamp (1m)"},
    {"eval instant at 0 foo\n  expect range vector 1m\n", 2, "invalid range vector definition"},
    {"eval instant at 0 1\n  1\n  2\n", 3, "invalid command \"2\""},
    {"load 1m\n  a@st 1s\n", 2, "@st line has no following sample line"},
    {"load 1m\n  a@st 1s 2s\n  a 1\n", 2, "@st line has 2 values but sample line has 1"},
    {"load 1m\n  a@st 1s\n  b 1\n", 2, "@st metric does not match"},
    {"load 1m\n  a@st 1q\n  a 1\n", 2, "invalid ST item \"1q\""},
    {"load 1m\n  a@st 1s\n  a@st 1s\n  a 1\n", 2, "@st line has no following sample line"},
    {"load 1m\n  a 1\n  b@st 1s\n", 3, "@st line has no following sample line"},
    {"load 1m\n  a@st _x0\n  a 1\n", 2, "invalid ST item \"_x0\""},
    {"load 1m\n  a@st _x\n  a 1\n", 2, "invalid ST item \"_x\""},
    {"load 1m\n  a@st 1sx\n  a 1\n", 2, "invalid ST item \"1sx\""},
    {"load 1m\n  a@st 1sxa\n  a 1\n", 2, "invalid ST item \"1sxa\""},
    {"load 1m\n  a@st 1s+1s\n  a 1\n", 2, "invalid ST item \"1s+1s\""},
    {"load 1m\n  a@st 1s+x2\n  a 1 1 1\n", 2, "invalid ST item \"1s+x2\""},
    {"load 1m\n  a@st 1s*2\n  a 1\n", 2, "invalid ST item \"1s*2\""},
    {"load 1m\n  a@st --1s\n  a 1\n", 2, "invalid ST item \"--1s\""},
    {"load 1m\n  a@st 1.5s\n  a 1\n", 2, "invalid ST item \"1.5s\""},
    {"load 1m\n  a@st s\n  a 1\n", 2, "invalid ST item \"s\""},
    {"load 1m\n  a@st 1m30s\n  a 1\n", 2, "invalid ST item \"1m30s\""},
    {"load 1m\n  a@st {{}}\n  a 1\n", 2, "invalid ST item \"{{}}\""},
    {"load 1m\n  a{b=\"c\"@st 1s\n  a 1\n", 2, "invalid @st line metric"},
    {"load 1m\n  a@st 1s _x3\n  a 1 2 3\n", 2, "@st line has 4 values but sample line has 3"},
    {"load 1m\n  a@st 1sx2000000\n  a 1\n", 2, "too many values in one line"},
    {"load 1m\n  a@st 293y\n  a 1\n", 2, "invalid ST item \"293y\""},
};

static void test_script_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof script_errors / sizeof *script_errors; i++) {
        const struct script_error_case *c = &script_errors[i];
        promqltest_script *s = (promqltest_script *)1;
        uint32_t line = 0;
        buf err;
        buf_init(&err, BUF_UNLIMITED);
        int rc = promqltest_parse(c->text, strlen(c->text), &s, &line, &err);
        if (rc == 0) fail_msg("case %zu: no error, want line %u: %s", i, c->line, c->err);
        assert_null(s);
        if (line != c->line || !strstr(buf_cstr(&err), c->err))
            fail_msg("case %zu: line %u: %s\nwant line %u: %s", i, line, buf_cstr(&err), c->line,
                     c->err);
        buf_cleanup(&err);
    }
}

static void test_script_st_lines(void **state)
{
    (void)state;
    promqltest_script *s = parse_ok("load 1m\n"
                                    "  a{t=\"x\"}@st _ _ -30s-1mx2 -1m-1mx1 -1msx1 _x2\n"
                                    "  a{t=\"x\"} 1+1x10\n"
                                    "  b 1 2\n"
                                    "  c@st\t+1m 0+59999msx1 -0ms 1d\n"
                                    "  c 1 2 3 4 5\n");
    const promqltest_load *ld = s->cmds[0].load;
    assert_int_equal(ld->n_series, 3);
    assert_int_equal(ld->series[0].n, 11);
    const int64_t N = PROMQLTEST_ST_NONE;
    const int64_t want_a[] = {N, N, -30000, -90000, -150000, -60000, -120000, -1, -1, N, N};
    for (size_t i = 0; i < 11; i++)
        assert_int_equal(ld->series[0].st[i], want_a[i]);
    assert_null(ld->series[1].st);
    const int64_t want_c[] = {60000, 0, 59999, 0, 86400000};
    assert_int_equal(ld->series[2].n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(ld->series[2].st[i], want_c[i]);
    promqltest_script_free(s);
}

/* Malformed input of every kind: never a crash, always a line number. */
static void test_script_garbage(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "eval",
        "eval instant",
        "eval range from 0 to 1 step",
        "load 1m\n {",
        "load 1m\n a{\"",
        "load 1m\n a{b=\"\\",
        "load 1m\n a {{",
        "load 1m\n a {{buckets:[",
        "load 1m\n a {{buckets:[1",
        "load 1m\n a 1x99999999999999999999999",
        "eval instant at 0 x\n expect string '",
        "load 1m\n a{b=\"\xff\"} 1",
        "load 1m\n a 1e",
        "load 1m\n a .",
        "\x01",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        promqltest_script *s = NULL;
        uint32_t line = 0;
        buf err;
        buf_init(&err, BUF_UNLIMITED);
        int rc = promqltest_parse(inputs[i], strlen(inputs[i]), &s, &line, &err);
        if (rc == 0) fail_msg("input %zu parsed: %s", i, inputs[i]);
        assert_true(line >= 1);
        assert_true(err.len > 0);
        buf_cleanup(&err);
    }
}

/* ---- comparison ---------------------------------------------------------------- */

static void test_float_equal(void **state)
{
    (void)state;
    double stale = strutil_stale_nan();
    assert_true(promqltest_float_equal(1, 1));
    assert_true(promqltest_float_equal(1, 1 + 1e-7));
    assert_true(promqltest_float_equal(-1e20, -1.0000005e20));
    assert_false(promqltest_float_equal(1, 1.00001));
    assert_false(promqltest_float_equal(1, -1));
    assert_true(promqltest_float_equal(NAN, NAN));
    assert_true(promqltest_float_equal(stale, stale));
    assert_false(promqltest_float_equal(stale, NAN));
    assert_false(promqltest_float_equal(NAN, stale));
    assert_false(promqltest_float_equal(NAN, 1));
    assert_true(promqltest_float_equal(INFINITY, INFINITY));
    assert_false(promqltest_float_equal(INFINITY, -INFINITY));
    assert_false(promqltest_float_equal(INFINITY, 1e308));
    /* Near zero the tolerance is absolute and tiny. */
    assert_true(promqltest_float_equal(0, 1e-320));
    assert_false(promqltest_float_equal(0, 1e-300));
    assert_true(promqltest_float_equal(0, -0.0));
}

static labels *L(const char *sel)
{
    arena a;
    arena_init(&a, 0);
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    size_t budget = 10;
    promqltest_series s;
    buf line;
    buf_init(&line, BUF_UNLIMITED);
    buf_printf(&line, "%s", sel);
    assert_int_equal(promqltest_parse_series(&a, line.data, line.len, &budget, &s, &err), 0);
    buf_cleanup(&line);
    buf_cleanup(&err);
    arena_cleanup(&a);
    return s.ls;
}

static void value_free(promql_value *v)
{
    for (size_t i = 0; i < v->vector.n; i++)
        labels_free(v->vector.v[i].metric);
    mem_free(v->vector.v);
    for (size_t i = 0; i < v->matrix.n; i++) {
        labels_free(v->matrix.v[i].metric);
        mem_free(v->matrix.v[i].pts);
    }
    mem_free(v->matrix.v);
    mem_free(v->string);
}

static void vec_add(promql_value *v, const char *sel, double x)
{
    v->type = PROMQL_TYPE_VECTOR;
    v->vector.v = mem_grow(v->vector.v, sizeof *v->vector.v, v->vector.n + 1, &v->vector.cap);
    v->vector.v[v->vector.n++] = (promql_sample){L(sel), 0, x, false};
}

/* Adds a series "sel" with points "t=v" (t in seconds). */
static void mat_add(promql_value *v, const char *sel, const int64_t *ts, const double *vs, size_t n)
{
    v->type = PROMQL_TYPE_MATRIX;
    v->matrix.v = mem_grow(v->matrix.v, sizeof *v->matrix.v, v->matrix.n + 1, &v->matrix.cap);
    promql_series *s = &v->matrix.v[v->matrix.n++];
    memset(s, 0, sizeof *s);
    s->metric = L(sel);
    s->pts = mem_malloc((n ? n : 1) * sizeof *s->pts);
    for (size_t i = 0; i < n; i++)
        s->pts[i] = (promql_fpoint){ts[i] * 1000, vs[i]};
    s->n = s->cap = n;
}

/* The eval of a one-eval script compared with v: NULL = must pass,
 * otherwise the reason must contain it. */
static void check(const char *script, promql_value *v, const char *want)
{
    promqltest_script *s = parse_ok(script);
    const promqltest_eval *ev = NULL;
    for (size_t i = 0; i < s->n_cmds; i++) {
        if (s->cmds[i].eval) ev = s->cmds[i].eval;
    }
    assert_non_null(ev);
    buf why;
    buf_init(&why, BUF_UNLIMITED);
    bool ok = promqltest_compare(ev, v, &why);
    if (!want && !ok) fail_msg("%s\nfailed: %s", script, buf_cstr(&why));
    if (want && ok) fail_msg("%s\npassed, want failure: %s", script, want);
    if (want && !strstr(buf_cstr(&why), want))
        fail_msg("%s\nreason: %s\nwant: %s", script, buf_cstr(&why), want);
    buf_cleanup(&why);
    promqltest_script_free(s);
    value_free(v);
    memset(v, 0, sizeof *v);
}

static void test_compare_vectors(void **state)
{
    (void)state;
    promql_value v = {0};
    const char *unordered = "eval instant at 0 x\n  a{i=\"1\"} 1\n  a{i=\"2\"} 2\n";
    const char *ordered = "eval instant at 0 x\n  expect ordered\n  a{i=\"1\"} 1\n  a{i=\"2\"} 2\n";
    const char *legacy = "eval_ordered instant at 0 x\n  a{i=\"1\"} 1\n  a{i=\"2\"} 2\n";

    vec_add(&v, "a{i=\"2\"}", 2);
    vec_add(&v, "a{i=\"1\"}", 1.0000001);
    check(unordered, &v, NULL);
    vec_add(&v, "a{i=\"2\"}", 2);
    vec_add(&v, "a{i=\"1\"}", 1);
    check(ordered, &v,
          "expected metric {__name__=\"a\", i=\"2\"} with [2] at position 2 but was at 1");
    vec_add(&v, "a{i=\"2\"}", 2);
    vec_add(&v, "a{i=\"1\"}", 1);
    check(legacy, &v, "at position 2 but was at 1");
    vec_add(&v, "a{i=\"1\"}", 1);
    vec_add(&v, "a{i=\"2\"}", 2);
    check(ordered, &v, NULL);
    vec_add(&v, "a{i=\"1\"}", 1.001);
    vec_add(&v, "a{i=\"2\"}", 2);
    check(unordered, &v, "expected 1 for {__name__=\"a\", i=\"1\"} but got 1.001");
    vec_add(&v, "a{i=\"1\"}", 1);
    check(unordered, &v, "expected metric {__name__=\"a\", i=\"2\"} with [2] not found");
    vec_add(&v, "a{i=\"1\"}", 1);
    vec_add(&v, "a{i=\"2\"}", 2);
    vec_add(&v, "a{i=\"3\"}", 3);
    check(unordered, &v, "unexpected metric {__name__=\"a\", i=\"3\"} in result, has value 3");
    /* Labels must match exactly: the name counts. */
    vec_add(&v, "{i=\"1\"}", 1);
    vec_add(&v, "a{i=\"2\"}", 2);
    check(unordered, &v, "unexpected metric {i=\"1\"}");
    /* NaN and StaleNaN. */
    vec_add(&v, "a", NAN);
    check("eval instant at 0 x\n  a NaN\n", &v, NULL);
    vec_add(&v, "a", strutil_stale_nan());
    check("eval instant at 0 x\n  a NaN\n", &v,
          "expected NaN for {__name__=\"a\"} but got StaleNaN");
    vec_add(&v, "a", strutil_stale_nan());
    check("eval instant at 0 x\n  a stale\n", &v, NULL);
    /* An empty result matches no expectations. */
    v.type = PROMQL_TYPE_VECTOR;
    check("eval instant at 0 x\n", &v, NULL);
    v.type = PROMQL_TYPE_VECTOR;
    check("eval instant at 0 x\n  1\n", &v, "expected scalar result, but got vector");
    vec_add(&v, "{}", 3);
    check("eval instant at 0 x\n  {} 3\n", &v, NULL);
    /* A histogram expectation with a float result. */
    vec_add(&v, "a", 3);
    check("eval instant at 0 x\n  a {{count:3}}\n", &v, "expected histogram");
}

static void test_compare_scalars_strings(void **state)
{
    (void)state;
    promql_value v = {0};
    v.type = PROMQL_TYPE_SCALAR;
    v.scalar = 31;
    check("eval instant at 0 x\n  0x1f\n", &v, NULL);
    v.type = PROMQL_TYPE_SCALAR;
    v.scalar = 3;
    check("eval instant at 0 x\n  4\n", &v, "expected scalar 4 but got 3");
    v.type = PROMQL_TYPE_SCALAR;
    v.scalar = 3;
    check("eval instant at 0 x\n  {} 3\n", &v, "expected vector or matrix result, but got scalar");
    v.type = PROMQL_TYPE_STRING;
    v.string = mem_strdup(" Foo ");
    v.string_len = 5;
    check("eval instant at 0 x\n  expect string \" Foo \"\n", &v, NULL);
    v.type = PROMQL_TYPE_STRING;
    v.string = mem_strdup("a\nb");
    v.string_len = 3;
    check("eval instant at 0 x\n  expect string \"a\\nb\"\n", &v, NULL);
    v.type = PROMQL_TYPE_STRING;
    v.string = mem_strdup("Foo");
    v.string_len = 3;
    check("eval instant at 0 x\n  expect string `Bar`\n", &v,
          "expected string \"Bar\" but got \"Foo\"");
}

static void test_compare_matrices(void **state)
{
    (void)state;
    promql_value v = {0};
    const char *range = "eval range from 0 to 2m step 1m x\n  a 1 _ 3\n  b 1 2 3\n";
    int64_t t3[] = {0, 60, 120}, t2[] = {0, 120}, t2b[] = {0, 60};
    double v3[] = {1, 2, 3}, v2[] = {1, 3};
    mat_add(&v, "a", t2, v2, 2);
    mat_add(&v, "b", t3, v3, 3);
    check(range, &v, NULL);
    mat_add(&v, "a", t2b, v2, 2);
    mat_add(&v, "b", t3, v3, 3);
    check(range, &v,
          "expected float value at index 1 for {__name__=\"a\"} to have timestamp 120000, but it "
          "had timestamp 60000");
    mat_add(&v, "a", t3, v3, 3);
    mat_add(&v, "b", t3, v3, 3);
    check(range, &v,
          "expected 2 float points and 0 histogram points for {__name__=\"a\"}, but got 3");
    mat_add(&v, "b", t3, v3, 3);
    mat_add(&v, "a", t2, v2, 2);
    check(range, &v, "matrix results should always be sorted by labels");
    mat_add(&v, "a", t2, v2, 2);
    check(range, &v, "expected metric {__name__=\"b\"} not found");
    double w3[] = {1, 2, 3.5};
    mat_add(&v, "a", t2, v2, 2);
    mat_add(&v, "b", t3, w3, 3);
    check(range, &v,
          "expected float value at index 2 (t=120000) for {__name__=\"b\"} to be 3, but got 3.5");
    /* Too many expected points for the range. */
    mat_add(&v, "a", t3, v3, 3);
    check("eval range from 0 to 1m step 1m x\n  a 1 2 3\n", &v,
          "expected 3 points for {__name__=\"a\"}, but query time range cannot return this many");
    /* An instant query returning a matrix needs `expect range vector`. */
    mat_add(&v, "a", t3, v3, 3);
    check("eval instant at 2m x[3m]\n  a 1\n", &v, "query time range cannot return this many");
    mat_add(&v, "a", t3, v3, 3);
    check("eval instant at 2m x[3m]\n  expect range vector from 0 to 2m step 1m\n  a 1 2 3\n", &v,
          NULL);
    mat_add(&v, "a", t3, v3, 3);
    check("eval instant at 2m x[3m]\n  expect ordered\n  expect range vector from 0 to 2m step 1m\n"
          "  a 1 2 3\n",
          &v, "expected ordered result, but query returned a matrix");
    mat_add(&v, "a", t3, v3, 3);
    check("eval range from 0 to 2m step 1m x\n  1\n", &v, "expected scalar result, but got matrix");
    /* A scalar range query is one series with no labels. */
    mat_add(&v, "{}", t3, v3, 3);
    check("eval range from 0 to 2m step 1m 1\n  {} 1 2 3\n", &v, NULL);
    /* Histogram points expected, floats got. */
    mat_add(&v, "a", t3, v3, 3);
    check("eval range from 0 to 2m step 1m x\n  a {{count:1}}x2\n", &v,
          "expected 0 float points and 3 histogram points");
}

static void test_annotations_and_failures(void **state)
{
    (void)state;
    static char w1[] = "PromQL warning: something odd (1:1)";
    static char i1[] = "PromQL info: metric might not be a counter (1:6)";
    char *warnings[] = {w1};
    char *infos[] = {i1};
    promql_annotations none = {0}, both = {warnings, 1, infos, 1};
    static const struct {
        const char *script;
        bool with_annotations;
        const char *want; /* NULL: pass */
    } cases[] = {
        {"eval instant at 0 x\n", true, NULL}, /* not checked without expect lines */
        {"eval instant at 0 x\n  expect no_warn\n", false, NULL},
        {"eval instant at 0 x\n  expect no_warn\n", true, "unexpected warning annotations"},
        {"eval instant at 0 x\n  expect no_info\n", true, "unexpected info annotations"},
        {"eval instant at 0 x\n  expect warn\n", false, "expected warn annotations but none"},
        {"eval instant at 0 x\n  expect warn\n  expect info\n", true, NULL},
        {"eval instant at 0 x\n  expect warn msg: PromQL warning: something odd (1:1)\n  expect "
         "info\n",
         true, NULL},
        {"eval instant at 0 x\n  expect warn msg: PromQL warning: something odd\n", true,
         "expected warn annotation matching message"},
        {"eval instant at 0 x\n  expect info regex: might not be a counter\n", true, NULL},
        {"eval instant at 0 x\n  expect info regex: ^metric\n", true,
         "expected info annotation matching pattern \"^metric\""},
        {"eval instant at 0 x\n  expect info regex: \\(1:6\\)$\n", true, NULL},
        /* Every expect line must match an annotation, and every annotation
         * of a checked type must be expected. */
        {"eval instant at 0 x\n  expect info msg: other\n  expect info regex: counter\n", true,
         "expected info annotation matching message \"other\""},
        {"eval instant at 0 x\n  expect info regex: counter\n  expect info regex: PromQL\n", true,
         NULL},
        {"eval instant at 0 x\n  expect warn regex: odd\n", true, NULL},
        {"eval instant at 0 x\n  expect warn regex: odd\n  expect no_info\n", true,
         "unexpected info annotations"},
        {"eval_warn instant at 0 x\n", false, "expected warnings evaluating query"},
        {"eval_info instant at 0 x\n", true, NULL},
        {"eval_info instant at 0 x\n", false, "expected info annotations evaluating query"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        promqltest_script *s = parse_ok(cases[i].script);
        const promqltest_eval *ev = s->cmds[0].eval;
        buf why;
        buf_init(&why, BUF_UNLIMITED);
        bool ok = promqltest_check_annotations(ev, cases[i].with_annotations ? &both : &none, &why);
        if (!cases[i].want && !ok) fail_msg("case %zu failed: %s", i, buf_cstr(&why));
        if (cases[i].want && (ok || !strstr(buf_cstr(&why), cases[i].want)))
            fail_msg("case %zu: %s, want %s", i, ok ? "passed" : buf_cstr(&why), cases[i].want);
        buf_cleanup(&why);
        promqltest_script_free(s);
    }

    static const struct {
        const char *script;
        const char *error;
        bool pass;
    } fails[] = {
        {"eval instant at 0 x\n  expect fail\n", "anything", true},
        {"eval instant at 0 x\n  expect fail msg: bad thing\n", "bad thing", true},
        {"eval instant at 0 x\n  expect fail msg: bad thing\n", "bad thing!", false},
        {"eval instant at 0 x\n  expect fail regex: conflicting label\n",
         "vector cannot contain metrics with the same labelset", false},
        {"eval instant at 0 x\n  expect fail regex: conflicting label\n",
         "found conflicting labels", true},
        {"eval_fail instant at 0 x\n", "whatever", true},
        {"eval_fail instant at 0 x\n  expected_fail_message exact text\n", "exact text", true},
        {"eval_fail instant at 0 x\n  expected_fail_message exact text\n", "exact text 2", false},
        {"eval_fail instant at 0 x\n  expected_fail_regexp ^exa.t\n", "exact text", true},
        {"eval_fail instant at 0 x\n  expected_fail_regexp ^xact\n", "exact text", false},
    };
    for (size_t i = 0; i < sizeof fails / sizeof *fails; i++) {
        promqltest_script *s = parse_ok(fails[i].script);
        buf why;
        buf_init(&why, BUF_UNLIMITED);
        bool ok = promqltest_check_failure(s->cmds[0].eval, fails[i].error, &why);
        if (ok != fails[i].pass) fail_msg("failure case %zu: got %d (%s)", i, ok, buf_cstr(&why));
        buf_cleanup(&why);
        promqltest_script_free(s);
    }
}

/* ---- the runner (with the real parser and evaluator) ---------------------- */

/* Runs `text` as a test file; the output goes to *out (caller frees). */
static int run_text(const char *text, size_t max_points, promqltest_counts *c, char **out)
{
    char path[] = "/tmp/promqltest-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    size_t len;
    FILE *f = open_memstream(out, &len);
    promqltest_options o = {.out = f, .max_points = max_points};
    promqltest_counts total = {0};
    memset(c, 0, sizeof *c);
    int rc = promqltest_run_file(path, &o, &total, c);
    fclose(f);
    unlink(path);
    assert_int_equal(total.passed, c->passed);
    assert_int_equal(total.failed, c->failed);
    /* Every output line names the file. */
    char *base = strrchr(path, '/') + 1;
    assert_non_null(strstr(*out, base));
    return rc;
}

#define ASSERT_COUNTS(c, p, f, fp, ft, hp, ht)                                                     \
    do {                                                                                           \
        assert_int_equal((c).passed, p);                                                           \
        assert_int_equal((c).failed, f);                                                           \
        assert_int_equal((c).float_passed, fp);                                                    \
        assert_int_equal((c).float_total, ft);                                                     \
        assert_int_equal((c).hist_passed, hp);                                                     \
        assert_int_equal((c).hist_total, ht);                                                      \
    } while (0)

static void assert_has(const char *out, const char *want)
{
    if (!strstr(out, want)) fail_msg("output lacks \"%s\":\n%s", want, out);
}

static void test_runner_pass_and_fail(void **state)
{
    (void)state;
    promqltest_counts c;
    char *out;
    int rc = run_text("load 1m\n"
                      "  a{x=\"1\"} 1+1x5\n"
                      "  a{x=\"2\"} 5\n"
                      "\n"
                      "eval instant at 2m a\n"
                      "  a{x=\"1\"} 3\n"
                      "  a{x=\"2\"} 5\n"
                      "\n"
                      "eval instant at 2m a{x=\"1\"} * 2\n"
                      "  {x=\"1\"} 7\n"
                      "\n"
                      "eval range from 0 to 2m step 1m sum(a)\n"
                      "  {} 6 7 8\n"
                      "\n"
                      "eval instant at 0 nosuchfunction(a)\n"
                      "  expect fail\n"
                      "\n"
                      "eval instant at 0 1 + 1\n"
                      "  2\n"
                      "eval instant at 0 \"s\"\n"
                      "  expect string \"s\"\n",
                      0, &c, &out);
    /* nosuchfunction does not parse: the whole file is rejected. */
    assert_int_equal(rc, 1);
    ASSERT_COUNTS(c, 0, 6, 0, 6, 0, 0);
    assert_has(out, ":15: FAILED: eval instant at 0 nosuchfunction(a)");
    assert_has(out, ":15:19: parse error");
    assert_has(out, "rejected");
    assert_has(out, ": 0 passed, 6 failed (float: 0/6, histogram: 0/0)\n");
    free(out);

    rc = run_text("load 1m\n"
                  "  a{x=\"1\"} 1+1x5\n"
                  "  a{x=\"2\"} 5\n"
                  "\n"
                  "eval instant at 2m a\n"
                  "  a{x=\"1\"} 3\n"
                  "  a{x=\"2\"} 5\n"
                  "\n"
                  "eval instant at 2m a{x=\"1\"} * 2\n"
                  "  {x=\"1\"} 7\n"
                  "\n"
                  "eval range from 0 to 2m step 1m sum(a)\n"
                  "  {} 6 7 8\n"
                  "\n"
                  "eval instant at 0 1 + 1\n"
                  "  2\n"
                  "eval instant at 0 \"s\"\n"
                  "  expect string \"s\"\n"
                  "\n"
                  "eval instant at 0 a + on() a\n"
                  "  expect fail\n",
                  0, &c, &out);
    assert_int_equal(rc, 1);
    ASSERT_COUNTS(c, 5, 1, 5, 6, 0, 0);
    assert_has(out, ":9: FAILED: eval instant at 2m a{x=\"1\"} * 2\n"
                    "    expected 7 for {x=\"1\"} but got 6\n"
                    "    expected:\n"
                    "      {x=\"1\"} 7\n"
                    "    got:\n"
                    "      {x=\"1\"} 6\n");
    assert_has(out, ": 5 passed, 1 failed (float: 5/6, histogram: 0/0)\n");
    free(out);

    rc = run_text("load 1m\n  a 1\n\neval instant at 0 a\n  a 1\n", 0, &c, &out);
    assert_int_equal(rc, 0);
    ASSERT_COUNTS(c, 1, 0, 1, 1, 0, 0);
    free(out);
}

static void test_runner_histograms(void **state)
{
    (void)state;
    promqltest_counts c;
    char *out;
    /* Evals reading histogram samples, or expecting histograms, are
     * histogram evals; the others are float evals even in the same file. */
    int rc = run_text("load 1m\n"
                      "  h {{schema:0 sum:1 count:1 buckets:[1]}}x3\n"
                      "  f 1x3\n"
                      "\n"
                      "eval instant at 1m f\n"
                      "  f 1\n"
                      "\n"
                      "eval instant at 1m h\n"
                      "  h {{schema:0 sum:1 count:1 buckets:[1]}}\n"
                      "\n"
                      "eval instant at 1m count({__name__=~\".+\"})\n"
                      "  {} 2\n"
                      "\n"
                      "eval instant at 1m f\n"
                      "  f {{count:1}}\n"
                      "\n"
                      "clear\n"
                      "load_with_nhcb 1m\n"
                      "  m_bucket{le=\"1\"} 1x3\n"
                      "  m_bucket{le=\"+Inf\"} 2x3\n"
                      "\n"
                      "eval instant at 1m m_bucket\n"
                      "  m_bucket{le=\"1\"} 1\n"
                      "  m_bucket{le=\"+Inf\"} 2\n"
                      "\n"
                      "eval instant at 1m m\n",
                      0, &c, &out);
    assert_int_equal(rc, 1);
    /* The histogram selector and count() over a histogram and a float
     * pass; a float is not the histogram expected, and the load_with_nhcb
     * histogram m is a result the eval does not expect. */
    ASSERT_COUNTS(c, 4, 2, 2, 2, 2, 4);
    assert_true(strstr(out, ":8: FAILED") == NULL);
    assert_true(strstr(out, ":11: FAILED") == NULL);
    assert_has(out,
               ":14: FAILED: eval instant at 1m f\n"
               "    expected histogram {{count:1}} for {__name__=\"f\"} but got float value 1\n");
    assert_has(out, ":26: FAILED: eval instant at 1m m\n");
    free(out);
}

/* @st lines reach the engine, which runs with start timestamps used. */
static void test_runner_start_timestamps(void **state)
{
    (void)state;
    promqltest_counts c;
    char *out;
    int rc = run_text("load 1m\n"
                      "  d_total@st _ -1mx3\n"
                      "  d_total    _ 60x3\n"
                      "  o_total@st _ -2mx2\n"
                      "  o_total    _ 60 120 180\n"
                      "  h@st       _ -1m\n"
                      "  h          _ {{schema:0 sum:1 count:1}}\n"
                      "\n"
                      "eval instant at 4m increase(d_total[3m])\n"
                      "  {} 180\n"
                      "  expect no_warn\n"
                      "\n"
                      "eval instant at 4m resets(d_total[3m])\n"
                      "  {} 2\n"
                      "\n"
                      "eval instant at 4m irate(d_total[3m])\n"
                      "  {} 1\n"
                      "\n"
                      "eval instant at 4m start_timestamp(d_total)\n"
                      "  {} 180\n"
                      "\n"
                      "eval instant at 4m increase(d_total[3m:1m])\n"
                      "  {} 0\n"
                      "\n"
                      "eval instant at 4m rate(o_total[3m])\n"
                      "  {} 1\n"
                      "  expect warn msg: PromQL warning: sample has start time that overlaps with "
                      "previous sample timestamp for metric \"o_total\" (1:6)\n"
                      "\n"
                      "eval instant at 1m rate(h[5m])\n"
                      "  {} {{count:0.2 sum:0.2}}\n",
                      0, &c, &out);
    assert_int_equal(rc, 1);
    ASSERT_COUNTS(c, 6, 1, 6, 6, 0, 1);
    assert_has(out, ":29: FAILED: eval instant at 1m rate(h[5m])\n"
                    "    expected metric {} with [{{count:0.2 sum:0.2}}] not found\n");
    free(out);
}

static void test_runner_bad_files(void **state)
{
    (void)state;
    promqltest_counts c;
    char *out;
    /* A DSL error: every eval line counts as a failed eval. */
    int rc = run_text("load 1m\n  a{b!=\"c\"} 1\n\neval instant at 0 a\n  a 1\n"
                      "eval instant at 0 a\n  a 1\n",
                      0, &c, &out);
    assert_int_equal(rc, 1);
    ASSERT_COUNTS(c, 0, 2, 0, 2, 0, 0);
    assert_has(out, ":2: error: 2:2: unexpected matcher b!=\"c\"");
    free(out);

    /* A load that does not fit ends the file. */
    rc = run_text("eval instant at 0 vector(1)\n  {} 1\n\nload 1m\n  a 1x10\n\n"
                  "eval instant at 0 a\n  a 1\n",
                  5, &c, &out);
    assert_int_equal(rc, 1);
    ASSERT_COUNTS(c, 1, 1, 1, 2, 0, 0);
    assert_has(out, ":4: error: load failed: too many samples");
    free(out);

    /* An empty label set cannot be loaded. */
    rc = run_text("load 1m\n  {} 1\n\neval instant at 0 vector(1)\n  {} 1\n", 0, &c, &out);
    assert_int_equal(rc, 1);
    assert_has(out, "empty label set");
    free(out);

    promqltest_options o = {0};
    char *buf_ = NULL;
    size_t len;
    o.out = open_memstream(&buf_, &len);
    promqltest_counts t = {0};
    assert_int_equal(promqltest_run_file("/nonexistent/x.test", &o, &t, NULL), 2);
    fclose(o.out);
    assert_non_null(strstr(buf_, "/nonexistent/x.test: error: cannot open"));
    free(buf_);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_series_notation),
        cmocka_unit_test(test_histogram_fields),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_script_commands),
        cmocka_unit_test(test_script_errors),
        cmocka_unit_test(test_script_st_lines),
        cmocka_unit_test(test_script_garbage),
        cmocka_unit_test(test_float_equal),
        cmocka_unit_test(test_compare_vectors),
        cmocka_unit_test(test_compare_scalars_strings),
        cmocka_unit_test(test_compare_matrices),
        cmocka_unit_test(test_annotations_and_failures),
        cmocka_unit_test(test_runner_pass_and_fail),
        cmocka_unit_test(test_runner_histograms),
        cmocka_unit_test(test_runner_start_timestamps),
        cmocka_unit_test(test_runner_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
