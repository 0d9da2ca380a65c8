/* Unit tests for promql/histogram: the canonical {{...}} form, addition and
 * subtraction across schemas and zero thresholds, custom-bucket
 * compatibility and bound reconciliation, counter-reset hints and
 * detection, scaling, equality, the bucket iterator and trimming. Values
 * are written in the promqltest notation and parsed with it. */
#include "testutil.h"

#include <errno.h>
#include <math.h>

#include "arena.h"
#include "mem.h"
#include "promql/histogram.h"
#include "promql/promqltest.h"

/* A histogram from its {{...}} notation (caller frees). */
static promql_fh *H(const char *desc)
{
    buf t, err;
    buf_init(&t, BUF_UNLIMITED);
    buf_init(&err, BUF_UNLIMITED);
    buf_printf(&t, "x %s", desc);
    arena a;
    arena_init(&a, 0);
    size_t budget = 4;
    promqltest_series ps;
    if (promqltest_parse_series(&a, t.data, t.len, &budget, &ps, &err) != 0)
        fail_msg("bad histogram %s: %s", desc, buf_cstr(&err));
    assert_int_equal(ps.n, 1);
    assert_int_equal(ps.items[0].kind, PROMQLTEST_ITEM_HISTOGRAM);
    promql_fh *h = promqltest_item_histogram(&ps.items[0]);
    labels_free(ps.ls);
    arena_cleanup(&a);
    buf_cleanup(&t);
    buf_cleanup(&err);
    return h;
}

static void assert_fh(const promql_fh *h, const char *want)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    promql_fh_format(h, &b);
    if (strcmp(buf_cstr(&b), want) != 0) fail_msg("got  %s\nwant %s", buf_cstr(&b), want);
    buf_cleanup(&b);
}

/* a + b (or a - b), checked to give want; returns nothing, frees all. */
static void assert_add(const char *a, const char *b, bool sub, const char *want)
{
    promql_fh *x = H(a), *y = H(b);
    assert_int_equal(promql_fh_add(x, y, sub, NULL, NULL), 0);
    promql_fh_compact(x);
    assert_fh(x, want);
    promql_fh_free(x);
    promql_fh_free(y);
}

static void test_format(void **state)
{
    (void)state;
    promql_fh *h = promql_fh_new();
    assert_fh(h, "{{}}");
    promql_fh_free(h);
    /* The key order of TestExpression; zero fields and n_offset:0 left
     * out; empty buckets at the ends cut (the offset moves), inner ones
     * kept. */
    h = H("{{schema:1 sum:10 count:5 z_bucket:1 z_bucket_w:0.001 buckets:[0 1 0 2 0] offset:-2 "
          "n_buckets:[1] counter_reset_hint:gauge}}");
    assert_fh(h, "{{schema:1 count:5 sum:10 z_bucket:1 z_bucket_w:0.001 "
                 "counter_reset_hint:gauge offset:-1 buckets:[1 0 2] n_buckets:[1]}}");
    promql_fh_free(h);
    h = H("{{schema:-53 count:3 custom_values:[0.5 2] buckets:[1 0 2]}}");
    assert_fh(h, "{{schema:-53 count:3 custom_values:[0.5 2] buckets:[1 0 2]}}");
    promql_fh_free(h);
    /* FloatHistogram.String(), count_values' label value: non-empty
     * buckets only, with their interval brackets. */
    h = H("{{count:20 sum:10 z_bucket:2 z_bucket_w:0.001 buckets:[1 0 2] n_buckets:[1 2]}}");
    buf s;
    buf_init(&s, BUF_UNLIMITED);
    promql_fh_string(h, &s);
    assert_string_equal(
        buf_cstr(&s),
        "{count:20, sum:10, [-2,-1):2, [-1,-0.5):1, [-0.001,0.001]:2, (0.5,1]:1, (2,4]:2}");
    buf_cleanup(&s);
    promql_fh_free(h);
    /* Go's %g: exponents from 1e21, small values in e-notation. */
    h = H("{{count:1e21 sum:0.00001 buckets:[123456789]}}");
    assert_fh(h, "{{count:1e+21 sum:1e-05 buckets:[1.23456789e+08]}}");
    promql_fh_free(h);
}

static void test_add_sub_schemas(void **state)
{
    (void)state;
    /* Same schema: buckets add where they meet, the others are kept. */
    assert_add("{{count:3 sum:4 buckets:[1 2]}}", "{{count:2 sum:1 offset:1 buckets:[1 1]}}", false,
               "{{count:5 sum:5 buckets:[1 3 1]}}");
    /* Schema 1 goes down to 0: buckets 0 and 1 of schema 1 fall into
     * buckets 0 ((0.5, 1]) and 1 ((1, 2]) of schema 0. */
    assert_add("{{schema:1 count:2 sum:2 buckets:[1 1]}}", "{{count:1 sum:1 buckets:[1]}}", false,
               "{{count:3 sum:3 buckets:[2 1]}}");
    assert_add("{{count:1 sum:1 buckets:[1]}}", "{{schema:1 count:2 sum:2 buckets:[1 1]}}", false,
               "{{count:3 sum:3 buckets:[2 1]}}");
    /* Schema 2 to 0 merges four buckets into one. */
    assert_add("{{schema:2 count:4 sum:4 offset:1 buckets:[1 1 1 1]}}", "{{count:0}}", false,
               "{{count:4 sum:4 offset:1 buckets:[4]}}");
    /* Subtraction, negative buckets included; zero results vanish. */
    assert_add("{{count:5 sum:5 buckets:[2 3] n_buckets:[1]}}",
               "{{count:2 sum:1 buckets:[2] n_buckets:[1]}}", true,
               "{{count:3 sum:4 offset:1 buckets:[3]}}");
}

static void test_zero_threshold(void **state)
{
    (void)state;
    /* The wider zero bucket swallows the buckets below it: (0.25, 0.5]
     * joins the zero bucket of width 0.5; (0.5, 1] stays. Both orders. */
    assert_add("{{count:1 z_bucket:1 z_bucket_w:0.5}}",
               "{{count:3 sum:2 z_bucket_w:0.001 offset:-1 buckets:[1 2]}}", false,
               "{{count:4 sum:2 z_bucket:2 z_bucket_w:0.5 buckets:[2]}}");
    assert_add("{{count:3 sum:2 z_bucket_w:0.001 offset:-1 buckets:[1 2]}}",
               "{{count:1 z_bucket:1 z_bucket_w:0.5}}", false,
               "{{count:4 sum:2 z_bucket:2 z_bucket_w:0.5 buckets:[2]}}");
    /* A threshold inside a populated bucket grows to its upper bound. */
    assert_add("{{count:1 z_bucket:1 z_bucket_w:0.7}}",
               "{{count:3 sum:2 z_bucket_w:0.001 offset:-1 buckets:[1 2]}}", false,
               "{{count:4 sum:2 z_bucket:4 z_bucket_w:1}}");
}

static void test_custom_buckets(void **state)
{
    (void)state;
    /* Exponential and custom buckets do not mix: -EINVAL, unchanged. */
    promql_fh *e = H("{{count:1 buckets:[1]}}"),
              *c = H("{{schema:-53 count:1 custom_values:[1] buckets:[1]}}");
    assert_int_equal(promql_fh_add(e, c, false, NULL, NULL), -EINVAL);
    assert_fh(e, "{{count:1 buckets:[1]}}");
    assert_int_equal(promql_fh_add(c, e, true, NULL, NULL), -EINVAL);
    promql_fh_free(e);
    promql_fh_free(c);
    /* Same bounds: bucket by bucket. */
    assert_add("{{schema:-53 count:3 custom_values:[1 2] buckets:[1 2]}}",
               "{{schema:-53 count:2 custom_values:[1 2] offset:1 buckets:[1 1]}}", false,
               "{{schema:-53 count:5 custom_values:[1 2] buckets:[1 3 1]}}");
    /* Different bounds go to their intersection [2 3]: each bucket lands
     * in the one holding its upper bound. */
    promql_fh *a = H("{{schema:-53 count:4 custom_values:[1 2 3] buckets:[1 1 1 1]}}");
    promql_fh *b = H("{{schema:-53 count:4 custom_values:[2 3 4] buckets:[1 1 1 1]}}");
    bool rec = false;
    assert_int_equal(promql_fh_add(a, b, false, NULL, &rec), 0);
    assert_true(rec);
    assert_fh(a, "{{schema:-53 count:8 custom_values:[2 3] buckets:[3 2 3]}}");
    promql_fh_free(a);
    promql_fh_free(b);
}

static void test_hints(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        bool collision;
        const char *hint; /* of the result, "" for unknown */
    } cases[] = {
        {"not_reset", "not_reset", false, " counter_reset_hint:not_reset"},
        {"not_reset", "reset", true, ""},
        {"reset", "not_reset", true, ""},
        {"gauge", "reset", false, " counter_reset_hint:gauge"},
        {"reset", "gauge", false, " counter_reset_hint:gauge"},
        {"unknown", "reset", false, ""},
        {"not_reset", "unknown", false, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char da[96], db[96], want[96];
        snprintf(da, sizeof da, "{{count:1 counter_reset_hint:%s}}", cases[i].a);
        snprintf(db, sizeof db, "{{count:1 counter_reset_hint:%s}}", cases[i].b);
        snprintf(want, sizeof want, "{{count:2%s}}", cases[i].hint);
        promql_fh *x = H(da), *y = H(db);
        bool coll = !cases[i].collision;
        assert_int_equal(promql_fh_add(x, y, false, &coll, NULL), 0);
        assert_int_equal(coll, cases[i].collision);
        assert_fh(x, want);
        promql_fh_free(x);
        promql_fh_free(y);
    }
}

static bool reset(const char *cur, const char *prev)
{
    promql_fh *c = H(cur), *p = H(prev);
    bool r = promql_fh_detect_reset(c, p);
    promql_fh_free(c);
    promql_fh_free(p);
    return r;
}

static void test_detect_reset(void **state)
{
    (void)state;
    const char *base = "{{count:5 sum:5 z_bucket:1 z_bucket_w:0.001 buckets:[1 3]}}";
    assert_false(reset(base, base));
    assert_false(reset("{{count:6 sum:5 z_bucket:1 z_bucket_w:0.001 buckets:[1 4]}}", base));
    /* A lower count, zero count or bucket; a populated bucket gone. */
    assert_true(reset("{{count:4 sum:5 z_bucket:1 z_bucket_w:0.001 buckets:[1 3]}}", base));
    assert_true(reset("{{count:5 sum:5 z_bucket:0 z_bucket_w:0.001 buckets:[2 3]}}", base));
    assert_true(reset("{{count:6 sum:5 z_bucket:1 z_bucket_w:0.001 buckets:[3 2]}}", base));
    assert_true(reset("{{count:6 sum:5 z_bucket:1 z_bucket_w:0.001 offset:1 buckets:[5]}}", base));
    /* An empty bucket may go; new ones may come. */
    assert_false(reset("{{count:5 offset:1 buckets:[5]}}", "{{count:5 buckets:[0 5]}}"));
    assert_false(reset("{{count:6 n_buckets:[1] buckets:[0 5]}}", "{{count:5 buckets:[0 5]}}"));
    /* A higher schema or a narrower zero bucket is a reset; a lower
     * schema is compared after reduction. */
    assert_true(reset("{{schema:1 count:5 buckets:[5]}}", "{{count:5 buckets:[5]}}"));
    assert_false(reset("{{count:5 buckets:[1 4]}}", "{{schema:1 count:5 buckets:[1 0 4]}}"));
    assert_true(reset("{{count:5 z_bucket_w:0.001 buckets:[5]}}",
                      "{{count:5 z_bucket_w:0.01 buckets:[5]}}"));
    /* The hint decides when set. */
    assert_false(reset("{{count:1 counter_reset_hint:not_reset}}", "{{count:5}}"));
    assert_true(reset("{{count:9 counter_reset_hint:reset}}", "{{count:5}}"));
    /* Custom buckets: exponential before is a reset; the same bounds are
     * compared bucket by bucket. */
    assert_true(
        reset("{{schema:-53 count:5 custom_values:[1] buckets:[5]}}", "{{count:5 buckets:[5]}}"));
    assert_true(reset("{{schema:-53 count:5 custom_values:[1] buckets:[2 3]}}",
                      "{{schema:-53 count:5 custom_values:[1] buckets:[3 2]}}"));
    assert_false(reset("{{schema:-53 count:6 custom_values:[1] buckets:[3 3]}}",
                       "{{schema:-53 count:5 custom_values:[1] buckets:[3 2]}}"));
}

static void test_scale_equal_iter(void **state)
{
    (void)state;
    promql_fh *h = H("{{count:4 sum:6 z_bucket:1 z_bucket_w:0.5 buckets:[1 2] n_buckets:[0 0 1]}}");
    promql_fh *c = promql_fh_copy(h);
    assert_true(promql_fh_equal(h, c));
    promql_fh_scale(c, 2, false);
    assert_false(promql_fh_equal(h, c));
    assert_fh(
        c, "{{count:8 sum:12 z_bucket:2 z_bucket_w:0.5 buckets:[2 4] n_offset:2 n_buckets:[2]}}");
    promql_fh_scale(c, 2, true);
    assert_true(promql_fh_equal(h, c));
    /* Equality ignores empty buckets and the hint, not NaN-ness. */
    promql_fh_set_bucket(c, true, 7, 0);
    c->hint = PROMQL_FH_GAUGE;
    assert_true(promql_fh_equal(h, c));
    c->sum = NAN;
    assert_false(promql_fh_equal(h, c));
    /* Lowest first: negative buckets from the largest magnitude, the zero
     * bucket, positive buckets; empty ones included. */
    static const double want[][3] = {
        {-4, -2, 1}, {-2, -1, 0}, {-1, -0.5, 0}, {-0.5, 0.5, 1}, {0.5, 1, 1}, {1, 2, 2},
    };
    promql_fh_iter it;
    promql_fh_iter_init(&it, h);
    size_t n = 0;
    while (promql_fh_iter_next(&it)) {
        assert_true(n < 6);
        assert_true(it.lower == want[n][0] && it.upper == want[n][1] && it.count == want[n][2]);
        assert_int_equal(it.kind, n < 3 ? -1 : n == 3 ? 0 : 1);
        n++;
    }
    assert_int_equal(n, 6);
    promql_fh_free(h);
    promql_fh_free(c);
}

static void test_trim(void **state)
{
    (void)state;
    /* Upper trim at a bucket boundary: (1, 2] goes; what is left is
     * re-estimated from the geometric midpoint of (0.5, 1]. */
    promql_fh *h = H("{{count:4 sum:6 buckets:[2 2]}}");
    promql_fh_trim(h, 1, true);
    assert_true(h->count == 2);
    assert_true(fabs(h->sum - 2 * sqrt(0.5)) < 1e-12);
    assert_int_equal(h->n_pos, 1);
    promql_fh_free(h);
    /* Lower trim inside (1, 2] at 1.5: exponential interpolation keeps
     * 2 * (1 - log2(1.5)) of it. */
    h = H("{{count:4 sum:6 buckets:[2 2]}}");
    promql_fh_trim(h, 1.5, false);
    double keep = 2 * (1 - log2(1.5));
    assert_true(fabs(h->count - keep) < 1e-12);
    assert_true(fabs(h->sum - keep * sqrt(1.5 * 2)) < 1e-12);
    promql_fh_free(h);
    /* Nothing cut: unchanged, sum included. */
    h = H("{{count:4 sum:6 buckets:[2 2]}}");
    promql_fh_trim(h, 10, true);
    assert_fh(h, "{{count:4 sum:6 buckets:[2 2]}}");
    promql_fh_free(h);
    /* Custom buckets split linearly; the +Inf bucket is dropped by an
     * upper trim. */
    h = H("{{schema:-53 count:4 sum:6 custom_values:[2 4] offset:1 buckets:[2 2]}}");
    promql_fh_trim(h, 3, true);
    assert_true(h->count == 1);
    assert_true(h->sum == 2.5);
    promql_fh_free(h);
}

/* Kahan summation keeps what plain addition loses: 1 + 1e100 + 1 - 1e100
 * is 2 in the sum and in a bucket. */
static void test_kahan(void **state)
{
    (void)state;
    const char *in[] = {"{{count:1 sum:1 buckets:[1]}}", "{{count:1 sum:1e100 buckets:[1e100]}}",
                        "{{count:1 sum:1 buckets:[1]}}", "{{count:1 sum:-1e100 buckets:[-1e100]}}"};
    promql_fh *plain = H(in[0]), *k = H(in[0]);
    promql_fh *c = promql_fh_kahan_new(k);
    for (size_t i = 1; i < 4; i++) {
        promql_fh *x = H(in[i]);
        assert_int_equal(promql_fh_add(plain, x, false, NULL, NULL), 0);
        assert_int_equal(promql_fh_kahan_add(k, x, c, NULL, NULL), 0);
        promql_fh_free(x);
    }
    promql_fh_kahan_finish(k, c);
    assert_true(plain->sum != 2); /* the point of the test */
    assert_fh(k, "{{count:4 sum:2 buckets:[2]}}");
    promql_fh_free(plain);
    promql_fh_free(k);
    promql_fh_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_add_sub_schemas),
        cmocka_unit_test(test_zero_threshold),
        cmocka_unit_test(test_custom_buckets),
        cmocka_unit_test(test_hints),
        cmocka_unit_test(test_detect_reset),
        cmocka_unit_test(test_scale_equal_iter),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_kahan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
