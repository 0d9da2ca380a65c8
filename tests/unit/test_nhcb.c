/* Unit tests for exporter/nhcb: classic histogram series into a native
 * histogram with custom buckets, as Prometheus's convertnhcb: bucket order,
 * missing +Inf and _count, duplicates, float counts, and every error. */
#include "testutil.h"

#include <errno.h>
#include <math.h>

#include "nhcb.h"

typedef struct step {
    char kind; /* 'b' bucket, 'c' count, 's' sum, 0 end */
    double le, v;
} step;

static const struct nhcb_case {
    const char *name;
    step steps[8];
    int want_rc;
    const char *want_msg; /* error text, or NULL */
    bool is_float;
    double count, sum;
    double custom[6];
    size_t n_custom;
    double pos[6];
    size_t n_pos;
} cases[] = {
    {"in order",
     {{'b', 0.1, 1}, {'b', 0.5, 3}, {'b', 1, 6}, {'b', INFINITY, 10}, {'c', 0, 10}, {'s', 0, 5}},
     0, NULL, false, 10, 5, {0.1, 0.5, 1}, 3, {1, 2, 3, 4}, 4},
    {"no +Inf bucket", {{'b', 1, 2}, {'b', 2, 5}, {'c', 0, 7}, {'s', 0, 1}},
     0, NULL, false, 7, 1, {1, 2}, 2, {2, 3, 2}, 3},
    {"no count", {{'b', 1, 2}, {'b', 2, 5}}, 0, NULL, false, 5, 0, {1, 2}, 2, {2, 3, 0}, 3},
    {"out of order", {{'b', 2, 5}, {'b', 1, 2}, {'b', INFINITY, 6}, {'c', 0, 6}},
     0, NULL, false, 6, 0, {1, 2}, 2, {2, 3, 1}, 3},
    {"duplicate bound", {{'b', 1, 2}, {'b', 1, 9}, {'b', INFINITY, 3}, {'c', 0, 3}},
     0, NULL, false, 3, 0, {1}, 1, {2, 1}, 2},
    {"only a count", {{'c', 0, 4}, {'s', 0, 2}}, 0, NULL, false, 4, 2, {0}, 0, {4}, 1},
    {"float counts", {{'b', 0.5, 1.5}, {'b', INFINITY, 2.5}, {'c', 0, 2.5}},
     0, NULL, true, 2.5, 0, {0.5}, 1, {1.5, 1}, 2},
    {"not cumulative", {{'b', 1, 5}, {'b', 2, 3}}, -EINVAL, "count is not cumulative: 3 < 5"},
    {"not cumulative when inserted", {{'b', 1, 2}, {'b', 3, 5}, {'b', 2, 6}},
     -EINVAL, "count is not cumulative: 6 > 5"},
    {"count mismatch", {{'b', INFINITY, 5}, {'c', 0, 6}},
     -EINVAL, "count mismatch: count=6 != le=+Inf count=5"},
    {"negative bucket", {{'b', 1, -1}}, -EINVAL, "bucket count must be non-negative: le=1, count=-1"},
    {"negative count", {{'c', 0, -2}}, -EINVAL, "count must be non-negative: count=-2"},
    {"NaN bound", {{'b', NAN, 1}}, -EINVAL, "bucket boundary must not be NaN"},
};

static void test_cases(void **state)
{
    (void)state;
    int failed = 0;
    nhcb c;
    nhcb_init(&c);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct nhcb_case *k = &cases[i];
        nhcb_reset(&c);
        for (const step *s = k->steps; s->kind; s++) {
            if (s->kind == 'b') nhcb_set_bucket(&c, s->le, s->v);
            if (s->kind == 'c') nhcb_set_count(&c, s->v);
            if (s->kind == 's') nhcb_set_sum(&c, s->v);
        }
        nhist h;
        nhist_init(&h);
        int rc = nhcb_convert(&c, &h);
        bool ok = rc == k->want_rc;
        if (ok && rc < 0) ok = strcmp(c.msg, k->want_msg) == 0;
        if (ok && rc == 0) {
            ok = h.schema == NHIST_CUSTOM_SCHEMA && h.is_float == k->is_float &&
                 h.count == k->count && h.sum == k->sum && h.n_custom_values == k->n_custom &&
                 h.n_pos == k->n_pos && h.n_neg == 0 && h.n_pos_spans == 1 &&
                 h.pos_spans[0].offset == 0 && h.pos_spans[0].length == k->n_pos;
            for (size_t j = 0; ok && j < k->n_custom; j++) ok = h.custom_values[j] == k->custom[j];
            for (size_t j = 0; ok && j < k->n_pos; j++) ok = h.pos[j] == k->pos[j];
        }
        if (!ok) {
            failed++;
            print_message("FAIL %s: rc %d msg \"%s\" count %g sum %g n_pos %zu n_custom %zu\n",
                          k->name, rc, c.msg, h.count, h.sum, h.n_pos, h.n_custom_values);
        }
        nhist_cleanup(&h);
    }
    nhcb_cleanup(&c);
    print_message("%zu passed, %d failed\n", sizeof cases / sizeof cases[0] - failed, failed);
    assert_int_equal(failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_cases)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
