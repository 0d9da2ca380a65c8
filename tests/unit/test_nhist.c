/* Unit tests for exporter/nhist: ownership, staleness, Prometheus's
 * Histogram/FloatHistogram.Validate messages (model/histogram), resolution
 * reduction and compaction. Expected values are worked out by hand from the
 * bucket layout described in nhist.h. */
#include "testutil.h"

#include <errno.h>
#include <math.h>

#include "nhist.h"

/* Sets h from literal arrays (copied to the heap so cleanup frees them). */
static void set(nhist *h, const nhist_span *ps, size_t nps, const double *p, size_t np,
                const nhist_span *ns, size_t nns, const double *n, size_t nn)
{
    nhist t;
    nhist_init(&t);
    t.pos_spans = (nhist_span *)ps, t.n_pos_spans = nps, t.pos = (double *)p, t.n_pos = np;
    t.neg_spans = (nhist_span *)ns, t.n_neg_spans = nns, t.neg = (double *)n, t.n_neg = nn;
    t.schema = h->schema, t.is_float = h->is_float, t.count = h->count, t.sum = h->sum;
    t.zero_count = h->zero_count, t.zero_threshold = h->zero_threshold, t.hint = h->hint;
    t.custom_values = h->custom_values, t.n_custom_values = h->n_custom_values;
    nhist_init(h);
    assert_int_equal(nhist_copy(h, &t), 0);
}

static void test_init_copy(void **state)
{
    (void)state;
    nhist a, b;
    nhist_init(&a);
    assert_int_equal(a.schema, 0);
    assert_int_equal(nhist_bucket_count(&a), 0);
    a.count = 6, a.sum = 3.5, a.zero_count = 1, a.hint = NHIST_HINT_GAUGE;
    static const nhist_span ps[] = {{0, 2}};
    static const double p[] = {2, 3};
    static const nhist_span ns[] = {{1, 0}};
    set(&a, ps, 1, p, 2, ns, 1, NULL, 0);
    nhist_init(&b);
    assert_int_equal(nhist_copy(&b, &a), 0);
    assert_ptr_not_equal(b.pos, a.pos);
    b.pos[0] = 99;
    assert_true(a.pos[0] == 2);
    assert_int_equal(b.n_pos, 2);
    assert_int_equal(b.n_neg_spans, 1);
    assert_int_equal(b.hint, NHIST_HINT_GAUGE);
    assert_int_equal(nhist_bucket_count(&b), 2);
    /* Copying into a non-empty histogram frees its arrays first (ASan checks). */
    assert_int_equal(nhist_copy(&b, &a), 0);
    assert_true(b.pos[0] == 2);
    nhist_cleanup(&a);
    nhist_cleanup(&b);
    nhist_cleanup(&b);
    nhist_cleanup(NULL);
}

static void test_stale(void **state)
{
    (void)state;
    nhist h;
    nhist_init(&h);
    assert_false(nhist_is_stale(&h));
    uint64_t bits = UINT64_C(0x7ff0000000000002);
    memcpy(&h.sum, &bits, sizeof bits);
    assert_true(nhist_is_stale(&h));
    h.sum = NAN;
    assert_false(nhist_is_stale(&h));
    memcpy(&h.sum, &bits, sizeof bits);
    static const nhist_span ps[] = {{0, 1}};
    static const double p[] = {1};
    set(&h, ps, 1, p, 1, NULL, 0, NULL, 0);
    assert_false(nhist_is_stale(&h));
    nhist_cleanup(&h);
}

/* ---- validation table ---- */

typedef struct vcase {
    const char *name;
    bool is_float;
    int32_t schema;
    double count, sum, zero_count, zero_threshold;
    nhist_span ps[3];
    size_t nps;
    double p[4];
    size_t np;
    nhist_span ns[2];
    size_t nns;
    double n[3];
    size_t nn;
    double cv[4];
    size_t ncv;
    const char *want; /* NULL: valid */
} vcase;

static const vcase vcases[] = {
    {"valid int", false, 0, 9, 10, 2, 0.001, {{-1, 2}, {1, 1}}, 2, {1, 2, 3}, 3, {{0, 1}}, 1, {1}, 1,
     {0}, 0, NULL},
    {"count mismatch", false, 0, 10, 10, 2, 0.001, {{0, 1}}, 1, {3}, 1, {{0}}, 0, {0}, 0, {0}, 0,
     "5 observations found in buckets, but the Count field is 10: histogram's observation count "
     "should equal the number of observations found in the buckets (in absence of NaN)"},
    {"nan sum allows more", false, 0, 10, NAN, 2, 0, {{0, 1}}, 1, {3}, 1, {{0}}, 0, {0}, 0, {0}, 0,
     NULL},
    {"nan sum too few", false, 0, 4, NAN, 2, 0, {{0, 1}}, 1, {3}, 1, {{0}}, 0, {0}, 0, {0}, 0,
     "5 observations found in buckets, but the Count field is 4: histogram's observation count "
     "should be at least the number of observations found in the buckets"},
    {"negative bucket int", false, 0, 0, 0, 0, 0, {{0, 2}}, 1, {1, -2}, 2, {{0}}, 0, {0}, 0, {0},
     0,
     "positive side: bucket number 2 has observation count of -2: histogram has a bucket whose "
     "observation count is negative"},
    {"negative bucket float neg side", true, 0, 1, 0, 0, 0, {{0}}, 0, {0}, 0, {{0, 1}}, 1, {-1.5},
     1, {0}, 0,
     "negative side: bucket number 1 has observation count of -1.5: histogram has a bucket whose "
     "observation count is negative"},
    {"spans need more", false, 0, 1, 1, 0, 0, {{0, 3}}, 1, {1}, 1, {{0}}, 0, {0}, 0, {0}, 0,
     "positive side: spans need 3 buckets, have 1 buckets: histogram spans specify different "
     "number of buckets than provided"},
    {"negative offset", false, 0, 2, 1, 0, 0, {{0, 1}, {-2, 1}}, 2, {1, 0}, 2, {{0}}, 0, {0}, 0,
     {0}, 0,
     "positive side: span number 2 with offset -2: histogram has a span whose offset is "
     "negative"},
    {"neg side spans", false, 0, 0, 0, 0, 0, {{0}}, 0, {0}, 0, {{0, 2}}, 1, {0}, 0, {0}, 0,
     "negative side: spans need 2 buckets, have 0 buckets: histogram spans specify different "
     "number of buckets than provided"},
    {"schema too big", false, 9, 0, 0, 0, 0, {{0}}, 0, {0}, 0, {{0}}, 0, {0}, 0, {0}, 0,
     "histogram has an invalid schema, which must be between -4 and 8 for exponential buckets, "
     "or -53 for custom buckets, got schema 9"},
    {"schema too small", true, -5, 0, 0, 0, 0, {{0}}, 0, {0}, 0, {{0}}, 0, {0}, 0, {0}, 0,
     "histogram has an invalid schema, which must be between -4 and 8 for exponential buckets, "
     "or -53 for custom buckets, got schema -5"},
    {"float negative count", true, 0, -1, 0, 0, 0, {{0}}, 0, {0}, 0, {{0}}, 0, {0}, 0, {0}, 0,
     "observation count is  -1: histogram's observation count is negative"},
    {"float negative zero bucket", true, 1, 1, 0, -0.5, 0, {{0}}, 0, {0}, 0, {{0}}, 0, {0}, 0, {0},
     0,
     "zero bucket has observation count of -0.5: histogram has a bucket whose observation count "
     "is negative"},
    {"float count free", true, 2, 1, 5, 0, 0, {{0, 2}}, 1, {7, 8.5}, 2, {{0}}, 0, {0}, 0, {0}, 0,
     NULL},
    {"exp with custom values", false, 0, 0, 0, 0, 0, {{0}}, 0, {0}, 0, {{0}}, 0, {0}, 0, {1, 2}, 2,
     "histogram with exponential schema must not have custom bounds"},
    {"nhcb valid", false, -53, 6, 3, 0, 0, {{0, 2}, {1, 1}}, 2, {1, 2, 3}, 3, {{0}}, 0, {0}, 0,
     {1, 2, 5}, 3, NULL},
    {"nhcb too few bounds", false, -53, 6, 3, 0, 0, {{0, 2}, {2, 1}}, 2, {1, 2, 3}, 3, {{0}}, 0,
     {0}, 0, {1, 2}, 2,
     "custom buckets: only 2 custom bounds defined which is insufficient to cover total span "
     "length of 5: histogram custom bounds are too few"},
    {"nhcb not increasing", false, -53, 0, 0, 0, 0, {{0}}, 0, {0}, 0, {{0}}, 0, {0}, 0, {1, 1}, 2,
     "custom buckets: previous bound is 1.000000 and current is 1.000000: histogram custom "
     "bounds must be in strictly increasing order"},
    {"nhcb inf", false, -53, 0, 0, 0, 0, {{0}}, 0, {0}, 0, {{0}}, 0, {0}, 0, {1, INFINITY}, 2,
     "custom buckets: last +Inf bound must not be explicitly defined: histogram custom bounds "
     "must be finite"},
    {"nhcb nan", false, -53, 0, 0, 0, 0, {{0}}, 0, {0}, 0, {{0}}, 0, {0}, 0, {NAN}, 1,
     "custom buckets: histogram custom bounds must not be NaN"},
    {"nhcb negative offset", false, -53, 1, 0, 0, 0, {{-1, 1}}, 1, {1}, 1, {{0}}, 0, {0}, 0, {1}, 1,
     "custom buckets: span number 1 with offset -1: histogram has a span whose offset is "
     "negative"},
    {"nhcb zero count", false, -53, 1, 0, 1, 0, {{0}}, 0, {0}, 0, {{0}}, 0, {0}, 0, {1}, 1,
     "custom buckets: must have zero count of 0"},
    {"nhcb zero threshold", false, -53, 0, 0, 0, 0.5, {{0}}, 0, {0}, 0, {{0}}, 0, {0}, 0, {1}, 1,
     "custom buckets: must have zero threshold of 0"},
    {"nhcb negative spans", false, -53, 0, 0, 0, 0, {{0}}, 0, {0}, 0, {{0, 0}}, 1, {0}, 0, {1}, 1,
     "custom buckets: must not have negative spans"},
};

static void test_validate(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vcases / sizeof vcases[0]; i++) {
        const vcase *c = &vcases[i];
        nhist h;
        nhist_init(&h);
        h.is_float = c->is_float, h.schema = c->schema, h.count = c->count, h.sum = c->sum;
        h.zero_count = c->zero_count, h.zero_threshold = c->zero_threshold;
        h.custom_values = (double *)c->cv, h.n_custom_values = c->ncv;
        set(&h, c->ps, c->nps, c->p, c->np, c->ns, c->nns, c->n, c->nn);
        char err[512];
        int rc = nhist_validate(&h, err, sizeof err);
        if (!c->want) {
            if (rc != 0) fail_msg("%s: unexpected error: %s", c->name, err);
        } else {
            if (rc != -EINVAL) fail_msg("%s: want error, got %d", c->name, rc);
            if (strcmp(err, c->want) != 0)
                fail_msg("%s:\n got: %s\nwant: %s", c->name, err, c->want);
        }
        /* A short buffer truncates, NULL is allowed. */
        char small[8];
        assert_int_equal(nhist_validate(&h, small, sizeof small), rc);
        assert_true(strlen(small) < sizeof small);
        assert_int_equal(nhist_validate(&h, NULL, 0), rc);
        nhist_cleanup(&h);
    }
}

static void test_reduce_resolution(void **state)
{
    (void)state;
    nhist h;
    nhist_init(&h);
    h.schema = 1;
    /* Indices 0,1,3,4 and -2,-1 (negative side). To schema 0 the index
     * maps to ((i-1) >> 1) + 1: 0->0, 1->1, 3->2, 4->2, -2->-1, -1->0. */
    static const nhist_span ps[] = {{0, 2}, {1, 2}};
    static const double p[] = {1, 2, 3, 4};
    static const nhist_span ns[] = {{-2, 2}};
    static const double n[] = {5, 6};
    set(&h, ps, 2, p, 4, ns, 1, n, 2);
    assert_int_equal(nhist_reduce_resolution(&h, 0), 0);
    assert_int_equal(h.schema, 0);
    assert_int_equal(h.n_pos_spans, 1);
    assert_int_equal(h.pos_spans[0].offset, 0);
    assert_int_equal(h.pos_spans[0].length, 3);
    assert_int_equal(h.n_pos, 3);
    assert_true(h.pos[0] == 1 && h.pos[1] == 2 && h.pos[2] == 7);
    assert_int_equal(h.n_neg_spans, 1);
    assert_int_equal(h.neg_spans[0].offset, -1);
    assert_int_equal(h.neg_spans[0].length, 2);
    assert_true(h.neg[0] == 5 && h.neg[1] == 6);
    /* Two more steps: schema -2 merges 4 schema-0 buckets: 0->0, 1->1, 2->1. */
    assert_int_equal(nhist_reduce_resolution(&h, -2), 0);
    assert_int_equal(h.n_pos, 2);
    assert_true(h.pos[0] == 1 && h.pos[1] == 9);
    /* Gaps stay gaps: a span far away keeps its own span. */
    nhist g;
    nhist_init(&g);
    g.schema = 2;
    static const nhist_span gs[] = {{1, 1}, {20, 1}};
    static const double gp[] = {4, 5};
    set(&g, gs, 2, gp, 2, NULL, 0, NULL, 0);
    assert_int_equal(nhist_reduce_resolution(&g, 1), 0);
    /* index 1 -> 1, index 22 -> ((21)>>1)+1 = 11 */
    assert_int_equal(g.n_pos_spans, 2);
    assert_int_equal(g.pos_spans[0].offset, 1);
    assert_int_equal(g.pos_spans[1].offset, 9);
    assert_true(g.pos[0] == 4 && g.pos[1] == 5);
    /* Refusals leave h unchanged. */
    assert_int_equal(nhist_reduce_resolution(&g, 1), -EINVAL);
    assert_int_equal(nhist_reduce_resolution(&g, 3), -EINVAL);
    assert_int_equal(nhist_reduce_resolution(&g, -5), -EINVAL);
    g.schema = NHIST_CUSTOM_SCHEMA;
    assert_int_equal(nhist_reduce_resolution(&g, 0), -EINVAL);
    g.schema = 1;
    assert_int_equal(g.n_pos, 2);
    nhist_cleanup(&g);
    nhist_cleanup(&h);
}

static void test_compact(void **state)
{
    (void)state;
    nhist h;
    nhist_init(&h);
    /* Indices -1,0,1 and 4 with counts 0,5,0,7; a zero-length span. */
    static const nhist_span ps[] = {{-1, 3}, {2, 1}, {3, 0}};
    static const double p[] = {0, 5, 0, 7};
    static const nhist_span ns[] = {{0, 2}};
    static const double n[] = {0, 0};
    set(&h, ps, 3, p, 4, ns, 1, n, 2);
    assert_int_equal(nhist_compact(&h), 0);
    assert_int_equal(h.n_pos_spans, 2);
    assert_int_equal(h.pos_spans[0].offset, 0);
    assert_int_equal(h.pos_spans[0].length, 1);
    assert_int_equal(h.pos_spans[1].offset, 3);
    assert_int_equal(h.pos_spans[1].length, 1);
    assert_int_equal(h.n_pos, 2);
    assert_true(h.pos[0] == 5 && h.pos[1] == 7);
    assert_int_equal(h.n_neg_spans, 0);
    assert_int_equal(h.n_neg, 0);
    /* Adjacent spans merge. */
    static const nhist_span as[] = {{0, 1}, {0, 1}};
    static const double ap[] = {1, 2};
    nhist_cleanup(&h);
    set(&h, as, 2, ap, 2, NULL, 0, NULL, 0);
    assert_int_equal(nhist_compact(&h), 0);
    assert_int_equal(h.n_pos_spans, 1);
    assert_int_equal(h.pos_spans[0].length, 2);
    /* Compact(2): runs of up to 2 empty buckets stay, longer ones split;
     * gaps between spans are filled the same way. Indices 0..7 with counts
     * 1,0,0,2,0,0,0,3 and index 10 (gap of 2) with 4. */
    static const nhist_span cs[] = {{0, 8}, {2, 1}};
    static const double cp[] = {1, 0, 0, 2, 0, 0, 0, 3, 4};
    nhist_cleanup(&h);
    set(&h, cs, 2, cp, 9, NULL, 0, NULL, 0);
    assert_int_equal(nhist_compact_max_empty(&h, 2), 0);
    assert_int_equal(h.n_pos_spans, 2);
    assert_int_equal(h.pos_spans[0].offset, 0);
    assert_int_equal(h.pos_spans[0].length, 4);
    assert_int_equal(h.pos_spans[1].offset, 3);
    assert_int_equal(h.pos_spans[1].length, 4);
    assert_int_equal(h.n_pos, 8);
    static const double want[] = {1, 0, 0, 2, 3, 0, 0, 4};
    for (size_t i = 0; i < 8; i++)
        assert_true(h.pos[i] == want[i]);
    assert_int_equal(nhist_compact_max_empty(&h, 2000), -EINVAL);
    /* Mismatched spans are refused. */
    static const nhist_span bs[] = {{0, 3}};
    nhist_cleanup(&h);
    set(&h, bs, 1, ap, 2, NULL, 0, NULL, 0);
    assert_int_equal(nhist_compact(&h), -EINVAL);
    assert_int_equal(h.n_pos_spans, 1);
    nhist_cleanup(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_copy),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_reduce_resolution),
        cmocka_unit_test(test_compact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
