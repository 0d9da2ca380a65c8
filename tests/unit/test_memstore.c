/* Unit tests for promql/memstore: appends in any order, replacement at the
 * same timestamp, selection by matchers and time range, sorting, staleness
 * markers, start timestamps, native histogram points, clear and the point
 * cap. */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>

#include "labels.h"
#include "mem.h"
#include "promql/memstore.h"
#include "strutil.h"

static labels *L(const char *sel)
{
    label_matcher *ms;
    size_t n;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(labels_parse_selector(sel, strlen(sel), &ms, &n, &err), 0);
    labels_builder b;
    labels_builder_init(&b);
    for (size_t i = 0; i < n; i++)
        labels_builder_add(&b, ms[i].name, ms[i].name_len, ms[i].value, ms[i].value_len);
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    labels_matchers_free(ms, n);
    buf_cleanup(&err);
    return ls;
}

static void append(memstore *ms, const char *sel, int64_t t, double v)
{
    labels *ls = L(sel);
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(memstore_append(ms, ls, t, v, &err), 0);
    buf_cleanup(&err);
    labels_free(ls);
}

static void append_st(memstore *ms, const char *sel, int64_t t, double v, int64_t st)
{
    labels *ls = L(sel);
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(memstore_append_st(ms, ls, t, v, st, &err), 0);
    buf_cleanup(&err);
    labels_free(ls);
}

/* The matrix as text: one "labels t=v,t=v" line per series ("t=v/st"
 * when the series has start timestamps). */
static void select_text(memstore *ms, const char *sel, int64_t mint, int64_t maxt, buf *out)
{
    label_matcher *m;
    size_t n;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(labels_parse_selector(sel, strlen(sel), &m, &n, &err), 0);
    promql_matrix mx = {0};
    promql_queryable q = memstore_queryable(ms);
    assert_int_equal(q.select(q.ctx, m, n, mint, maxt, &mx, &err), 0);
    for (size_t i = 0; i < mx.n; i++) {
        labels_format(mx.v[i].metric, out);
        for (size_t k = 0; k < mx.v[i].n; k++) {
            double v = mx.v[i].pts[k].v;
            if (strutil_is_stale_nan(v))
                buf_printf(out, "%s%" PRId64 "=stale", k ? "," : " ", mx.v[i].pts[k].t);
            else
                buf_printf(out, "%s%" PRId64 "=%g", k ? "," : " ", mx.v[i].pts[k].t, v);
            if (mx.v[i].st) buf_printf(out, "/%" PRId64, mx.v[i].st[k]);
        }
        for (size_t k = 0; k < mx.v[i].nh; k++) {
            buf_printf(out, " h%" PRId64 "=", mx.v[i].hpts[k].t);
            promql_fh_format(mx.v[i].hpts[k].h, out);
        }
        buf_putc(out, '\n');
    }
    promql_matrix_cleanup(&mx);
    labels_matchers_free(m, n);
    buf_cleanup(&err);
}

static void assert_select(memstore *ms, const char *sel, int64_t mint, int64_t maxt,
                          const char *want)
{
    buf got;
    buf_init(&got, BUF_UNLIMITED);
    select_text(ms, sel, mint, maxt, &got);
    if (strcmp(buf_cstr(&got), want) != 0)
        fail_msg("select %s [%" PRId64 ",%" PRId64 "]:\n got: %s\nwant: %s", sel, mint, maxt,
                 buf_cstr(&got), want);
    buf_cleanup(&got);
}

static void test_append_orders_and_replaces(void **state)
{
    (void)state;
    memstore *ms = memstore_new(0);
    append(ms, "a{x=\"1\"}", 20, 2);
    append(ms, "a{x=\"1\"}", 0, 0);
    append(ms, "a{x=\"1\"}", 10, 1);
    append(ms, "a{x=\"1\"}", 30, 3);
    append(ms, "a{x=\"1\"}", 10, 11); /* replaces */
    assert_int_equal(memstore_series_count(ms), 1);
    assert_int_equal(memstore_point_count(ms), 4);
    assert_select(ms, "a", 0, 100, "{__name__=\"a\", x=\"1\"} 0=0,10=11,20=2,30=3\n");
    /* The range is inclusive at both ends. */
    assert_select(ms, "a", 10, 20, "{__name__=\"a\", x=\"1\"} 10=11,20=2\n");
    assert_select(ms, "a", 31, 100, "");
    memstore_free(ms);
    memstore_free(NULL);
}

static void test_select_matchers_and_sorting(void **state)
{
    (void)state;
    memstore *ms = memstore_new(0);
    append(ms, "b{job=\"z\"}", 0, 1);
    append(ms, "a{job=\"y\", i=\"2\"}", 0, 2);
    append(ms, "a{job=\"y\", i=\"1\"}", 0, 3);
    append(ms, "a{job=\"x\"}", 0, 4);
    append(ms, "a{job=\"x\"}", 5, strutil_stale_nan());
    assert_select(ms, "a", 0, 10,
                  "{__name__=\"a\", i=\"1\", job=\"y\"} 0=3\n"
                  "{__name__=\"a\", i=\"2\", job=\"y\"} 0=2\n"
                  "{__name__=\"a\", job=\"x\"} 0=4,5=stale\n");
    assert_select(ms, "{job=~\"x|z\"}", 0, 10,
                  "{__name__=\"a\", job=\"x\"} 0=4,5=stale\n"
                  "{__name__=\"b\", job=\"z\"} 0=1\n");
    assert_select(ms, "a{i!=\"1\"}", 0, 10,
                  "{__name__=\"a\", i=\"2\", job=\"y\"} 0=2\n"
                  "{__name__=\"a\", job=\"x\"} 0=4,5=stale\n");
    assert_select(ms, "a{i=\"\"}", 0, 10, "{__name__=\"a\", job=\"x\"} 0=4,5=stale\n");
    assert_select(ms, "nothing", 0, 10, "");
    memstore_free(ms);
}

static promql_fh *fh(double count, double sum)
{
    promql_fh *h = promql_fh_new();
    h->count = count;
    h->sum = sum;
    promql_fh_set_bucket(h, true, 1, count);
    return h;
}

static void test_histograms_are_returned_and_counted(void **state)
{
    (void)state;
    memstore *ms = memstore_new(0);
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    labels *h = L("h{a=\"1\"}");
    promql_fh *h1 = fh(1, 2), *h2 = fh(3, 4);
    assert_int_equal(memstore_append_histogram(ms, h, 0, h1, &err), 0);
    assert_int_equal(memstore_append_histogram(ms, h, 10, h2, &err), 0);
    /* The store copied them: changing ours changes nothing. */
    h2->count = 99;
    append(ms, "h{a=\"1\"}", 20, 5);
    append(ms, "f", 0, 1);
    assert_select(ms, "f", 0, 100, "{__name__=\"f\"} 0=1\n");
    assert_int_equal(memstore_histograms_selected(ms), 0);
    /* Only histograms in range: a series with histogram points only. */
    assert_select(ms, "h", 0, 10,
                  "{__name__=\"h\", a=\"1\"} h0={{count:1 sum:2 offset:1 buckets:[1]}}"
                  " h10={{count:3 sum:4 counter_reset_hint:not_reset offset:1 buckets:[3]}}\n");
    assert_int_equal(memstore_histograms_selected(ms), 2);
    assert_select(ms, "h", 5, 20,
                  "{__name__=\"h\", a=\"1\"} 20=5"
                  " h10={{count:3 sum:4 counter_reset_hint:not_reset offset:1 buckets:[3]}}\n");
    assert_int_equal(memstore_histograms_selected(ms), 3);
    memstore_reset_histograms_selected(ms);
    /* A float at the same timestamp replaces the histogram, and back. */
    append(ms, "h{a=\"1\"}", 10, 7);
    assert_select(
        ms, "h", 0, 20,
        "{__name__=\"h\", a=\"1\"} 10=7,20=5 h0={{count:1 sum:2 offset:1 buckets:[1]}}\n");
    assert_int_equal(memstore_histograms_selected(ms), 1);
    assert_int_equal(memstore_append_histogram(ms, h, 20, h1, &err), 0);
    assert_select(ms, "h", 5, 20,
                  "{__name__=\"h\", a=\"1\"} 10=7 h20={{count:1 sum:2 offset:1 buckets:[1]}}\n");
    assert_int_equal(memstore_point_count(ms), 4);
    /* Hints as Prometheus's head chunks give them back: a drop in the
     * count starts a new chunk (unknown), a gauge histogram stays a gauge,
     * and the one after a reset is not_reset again. */
    labels *r = L("r");
    h2->count = 3;
    assert_int_equal(memstore_append_histogram(ms, r, 0, h2, &err), 0);
    assert_int_equal(memstore_append_histogram(ms, r, 10, h1, &err), 0);
    assert_int_equal(memstore_append_histogram(ms, r, 15, h1, &err), 0);
    h1->hint = PROMQL_FH_GAUGE;
    assert_int_equal(memstore_append_histogram(ms, r, 20, h1, &err), 0);
    assert_select(ms, "r", 0, 20,
                  "{__name__=\"r\"} h0={{count:3 sum:4 offset:1 buckets:[3]}}"
                  " h10={{count:1 sum:2 offset:1 buckets:[1]}}"
                  " h15={{count:1 sum:2 counter_reset_hint:not_reset offset:1 buckets:[1]}}"
                  " h20={{count:1 sum:2 counter_reset_hint:gauge offset:1 buckets:[1]}}\n");
    labels_free(r);
    promql_fh_free(h1);
    promql_fh_free(h2);
    labels_free(h);
    buf_cleanup(&err);
    memstore_free(ms);
}

static void test_start_timestamps(void **state)
{
    (void)state;
    memstore *ms = memstore_new(0);
    append(ms, "a", 0, 1);
    append_st(ms, "a", 10, 2, 5);
    append_st(ms, "a", 20, 3, 0);
    append_st(ms, "b", 10, 1, 0);
    /* Only a series with a start timestamp in the selected range has
     * them; points without one read 0. */
    assert_select(ms, "a", 0, 20, "{__name__=\"a\"} 0=1/0,10=2/5,20=3/0\n");
    assert_select(ms, "a", 11, 20, "{__name__=\"a\"} 20=3\n");
    assert_select(ms, "b", 0, 20, "{__name__=\"b\"} 10=1\n");
    /* Replacing a point replaces its start timestamp; negative ones are
     * times like any other. */
    append(ms, "a", 10, 7);
    append_st(ms, "a", 20, 8, -3);
    assert_select(ms, "a", 0, 20, "{__name__=\"a\"} 0=1/0,10=7/0,20=8/-3\n");
    /* Histogram points have no start timestamps: the float points keep
     * theirs. */
    labels *h = L("a");
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    promql_fh *h1 = fh(1, 1);
    assert_int_equal(memstore_append_histogram(ms, h, 10, h1, &err), 0);
    promql_fh_free(h1);
    append_st(ms, "a", 30, 9, 25);
    assert_select(
        ms, "a", 0, 30,
        "{__name__=\"a\"} 0=1/0,20=8/-3,30=9/25 h10={{count:1 sum:1 offset:1 buckets:[1]}}\n");
    assert_int_equal(memstore_point_count(ms), 5);
    labels_free(h);
    buf_cleanup(&err);
    memstore_free(ms);
}

static void test_clear_errors_and_cap(void **state)
{
    (void)state;
    memstore *ms = memstore_new(3);
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(memstore_append(ms, labels_empty(), 0, 1, &err), -EINVAL);
    assert_non_null(strstr(buf_cstr(&err), "empty label set"));
    append(ms, "a", 0, 1);
    append(ms, "a", 1, 1);
    append(ms, "b", 0, 1);
    labels *a = L("a");
    buf_reset(&err);
    assert_int_equal(memstore_append(ms, a, 2, 1, &err), -E2BIG);
    assert_non_null(strstr(buf_cstr(&err), "at most 3"));
    /* Replacing needs no room. */
    assert_int_equal(memstore_append(ms, a, 1, 9, &err), 0);
    assert_int_equal(memstore_point_count(ms), 3);
    memstore_clear(ms);
    assert_int_equal(memstore_series_count(ms), 0);
    assert_int_equal(memstore_point_count(ms), 0);
    assert_select(ms, "a", 0, 10, "");
    append(ms, "a", 5, 2);
    assert_select(ms, "a", 0, 10, "{__name__=\"a\"} 5=2\n");
    labels_free(a);
    buf_cleanup(&err);
    memstore_free(ms);
}

static void test_many_series_random_order(void **state)
{
    (void)state;
    memstore *ms = memstore_new(0);
    /* 200 series x 50 points appended in a scrambled order. */
    for (int k = 0; k < 10000; k++) {
        int i = (k * 7919) % 10000;
        char sel[64];
        snprintf(sel, sizeof sel, "m{s=\"%03d\"}", i % 200);
        append(ms, sel, (int64_t)(i / 200) * 1000, i / 200);
    }
    assert_int_equal(memstore_series_count(ms), 200);
    assert_int_equal(memstore_point_count(ms), 10000);
    label_matcher *m;
    size_t n;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(labels_parse_selector("m", 1, &m, &n, &err), 0);
    promql_matrix mx = {0};
    assert_int_equal(memstore_select(ms, m, n, 10000, 19000, &mx, &err), 0);
    assert_int_equal(mx.n, 200);
    for (size_t i = 0; i < mx.n; i++) {
        if (i) assert_true(labels_compare(mx.v[i - 1].metric, mx.v[i].metric) < 0);
        assert_int_equal(mx.v[i].n, 10);
        for (size_t k = 0; k < mx.v[i].n; k++)
            assert_true(mx.v[i].pts[k].t == (int64_t)(10 + k) * 1000 &&
                        mx.v[i].pts[k].v == (double)(10 + k));
    }
    for (size_t i = 0; i < mx.n; i++) {
        labels_free(mx.v[i].metric);
        mem_free(mx.v[i].pts);
    }
    mem_free(mx.v);
    labels_matchers_free(m, n);
    buf_cleanup(&err);
    memstore_free(ms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_orders_and_replaces),
        cmocka_unit_test(test_select_matchers_and_sorting),
        cmocka_unit_test(test_histograms_are_returned_and_counted),
        cmocka_unit_test(test_start_timestamps),
        cmocka_unit_test(test_clear_errors_and_cap),
        cmocka_unit_test(test_many_series_random_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
