/* Unit tests for store: append/select/read round trips, matcher semantics,
 * ordering, out-of-order and duplicate handling, bit-exact values,
 * metadata, retention, reopening, concurrency and crash safety (a child
 * process SIGKILLed while committing). Each test works in its own temporary
 * directory under /tmp, removed afterwards. */
#include "testutil.h"
#include "teststore.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "labels.h"
#include "mem.h"
#include "store.h"
#include "strutil.h"

/* ---- helpers --------------------------------------------------------------- */

static store *open_store(const char *dir, int64_t retention_ms)
{
    store_options o = {.path = dir, .retention_ms = retention_ms};
    return tu_store_open(&o);
}

static uint64_t ref_of(store *s, labels *ls, bool *created)
{
    uint64_t ref = 0;
    assert_int_equal(store_series_ref(s, ls, &ref, created), 0);
    assert_true(ref != 0);
    return ref;
}

/* ref for the labels given as pairs; frees them. */
static uint64_t ref_pairs(store *s, labels *ls)
{
    uint64_t r = ref_of(s, ls, NULL);
    labels_free(ls);
    return r;
}

typedef struct msel {
    enum matcher_type type;
    const char *name, *value;
} msel;

/* Runs a select with the matchers; returns the rc and fills res. */
static int sel(store_reader *r, const msel *m, size_t n, int64_t mint, int64_t maxt,
               store_select_result *res)
{
    label_matcher ms[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(labels_matcher_init(&ms[i], m[i].type, m[i].name, strlen(m[i].name),
                                             m[i].value, strlen(m[i].value), NULL),
                         0);
    }
    int rc = store_select(r, ms, n, mint, maxt, res);
    for (size_t i = 0; i < n; i++)
        labels_matcher_cleanup(&ms[i]);
    return rc;
}

/* The selected series formatted, joined with " ". */
static char *sel_str(store_reader *r, const msel *m, size_t n, int64_t mint, int64_t maxt)
{
    store_select_result res;
    int rc = sel(r, m, n, mint, maxt, &res);
    if (rc != 0) fail_msg("store_select: %d", rc);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    for (size_t i = 0; i < res.n; i++) {
        if (i) buf_putc(&out, ' ');
        labels_format_metric(res.series[i].labels, &out);
    }
    store_select_result_free(&res);
    return buf_detach(&out, NULL);
}

#define ASSERT_SEL(r, mint, maxt, expect, ...)                                                     \
    do {                                                                                           \
        const msel m_[] = {__VA_ARGS__};                                                           \
        char *got_ = sel_str(r, m_, sizeof m_ / sizeof m_[0], mint, maxt);                         \
        assert_string_equal(got_, expect);                                                         \
        mem_free(got_);                                                                            \
    } while (0)

static size_t count_samples(store_reader *r, uint64_t ref, int64_t mint, int64_t maxt)
{
    store_sample *v;
    size_t n;
    assert_int_equal(store_read_samples(r, ref, mint, maxt, &v, &n), 0);
    mem_free(v);
    return n;
}

static uint64_t bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double from_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* ---- tests --------------------------------------------------------------------- */

static void test_roundtrip(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    bool created;
    labels *l1 = tu_labels("__name__", "up", "job", "a", NULL);
    uint64_t r1 = ref_of(s, l1, &created);
    assert_true(created);
    assert_int_equal(ref_of(s, l1, &created), r1);
    assert_false(created);
    uint64_t r2 = ref_pairs(s, tu_labels("__name__", "up", "job", "b", NULL));
    assert_true(r2 != r1);

    store_batch *b = store_batch_new(s);
    for (int i = 0; i < 10; i++) {
        store_batch_add(b, r1, 1000 + i * 1000, i * 1.5);
        store_batch_add(b, r2, 1000 + i * 1000, -i);
    }
    assert_int_equal(store_batch_len(b), 20);
    assert_int_equal(store_batch_commit(b), 0);

    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    ASSERT_SEL(r, 0, 100000, "up{job=\"a\"} up{job=\"b\"}", {MATCH_EQ, "__name__", "up"});
    store_select_result res;
    msel m = {MATCH_EQ, "job", "a"};
    assert_int_equal(sel(r, &m, 1, 0, 100000, &res), 0);
    assert_int_equal(res.n, 1);
    assert_int_equal(res.series[0].ref, r1);
    assert_true(labels_equal(res.series[0].labels, l1));
    store_select_result_free(&res);

    store_sample *v;
    size_t n;
    assert_int_equal(store_read_samples(r, r1, 3000, 6000, &v, &n), 0);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i].t, 3000 + (int64_t)i * 1000);
        assert_true(v[i].v == (2 + i) * 1.5);
    }
    mem_free(v);
    assert_int_equal(count_samples(r, r2, INT64_MIN, INT64_MAX), 10);
    assert_int_equal(count_samples(r, 12345, INT64_MIN, INT64_MAX), 0);
    /* The time range is inclusive and limits selection too. */
    ASSERT_SEL(r, 10000, 10000, "up{job=\"a\"} up{job=\"b\"}", {MATCH_EQ, "__name__", "up"});
    ASSERT_SEL(r, 10001, 20000, "", {MATCH_EQ, "__name__", "up"});
    ASSERT_SEL(r, 0, 999, "", {MATCH_EQ, "__name__", "up"});

    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.series, 2);
    assert_int_equal(st.samples_appended, 20);
    assert_int_equal(st.batches_committed, 1);
    assert_int_equal(st.min_time_ms, 1000);
    assert_int_equal(st.max_time_ms, 10000);
    assert_true(st.size_bytes > 0);

    store_reader_close(r);
    store_close(s);
    labels_free(l1);
    tu_tmpdir_free(dir);
}

static void test_reader_snapshot(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    uint64_t ra = ref_pairs(s, tu_labels("__name__", "a", NULL));
    store_batch *b = store_batch_new(s);
    store_batch_add(b, ra, 1, 1);
    assert_int_equal(store_batch_commit(b), 0);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_reader_end(r); /* no-op without a snapshot */
    assert_int_equal(store_reader_begin(r), 0);
    assert_int_equal(store_reader_begin(r), -EINVAL);
    ASSERT_SEL(r, 0, 10, "a", {MATCH_RE, "__name__", "a|b"});
    /* Commits after the snapshot started are not visible in it... */
    uint64_t rb = ref_pairs(s, tu_labels("__name__", "b", NULL));
    b = store_batch_new(s);
    store_batch_add(b, ra, 2, 2);
    store_batch_add(b, rb, 2, 2);
    assert_int_equal(store_batch_commit(b), 0);
    ASSERT_SEL(r, 0, 10, "a", {MATCH_RE, "__name__", "a|b"});
    assert_int_equal(count_samples(r, ra, 0, 10), 1);
    store_reader_end(r);
    /* ...and are after it ended. */
    ASSERT_SEL(r, 0, 10, "a b", {MATCH_RE, "__name__", "a|b"});
    assert_int_equal(count_samples(r, ra, 0, 10), 2);
    /* A snapshot left open is released by closing the reader. */
    assert_int_equal(store_reader_begin(r), 0);
    assert_int_equal(count_samples(r, rb, 0, 10), 1);
    store_reader_close(r);
    store_reader_close(NULL);
    store_close(s);
    tu_tmpdir_free(dir);
}

static void test_matchers(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    uint64_t refs[] = {
        ref_pairs(s, tu_labels("__name__", "a", "job", "x", "inst", "1", NULL)),
        ref_pairs(s, tu_labels("__name__", "a", "job", "y", "inst", "2", NULL)),
        ref_pairs(s, tu_labels("__name__", "a", "inst", "3", NULL)),
        ref_pairs(s, tu_labels("__name__", "b", "job", "x", NULL)),
        ref_pairs(s,
                  tu_labels("__name__", "old", "job", "x", NULL)), /* samples outside the range */
    };
    /* A value with a NUL byte and one with non-ASCII bytes. */
    labels_builder lb;
    labels_builder_init(&lb);
    labels_builder_set(&lb, "__name__", 8, "c", 1);
    labels_builder_set(&lb, "v", 1, "a\0b", 3);
    labels *nul = labels_builder_finish(&lb, NULL);
    labels_builder_cleanup(&lb);
    uint64_t rnul = ref_pairs(s, nul);
    uint64_t rutf = ref_pairs(s, tu_labels("__name__", "c", "v", "\xc3\xa9t\xc3\xa9", NULL));
    /* A series without samples at all. */
    ref_pairs(s, tu_labels("__name__", "a", "job", "z", NULL));

    store_batch *b = store_batch_new(s);
    for (size_t i = 0; i < 4; i++)
        store_batch_add(b, refs[i], 100, (double)i);
    store_batch_add(b, refs[4], -5, 1);
    store_batch_add(b, rnul, 100, 1);
    store_batch_add(b, rutf, 100, 1);
    assert_int_equal(store_batch_commit(b), 0);

    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    const char *A1 = "a{inst=\"1\",job=\"x\"}", *A2 = "a{inst=\"2\",job=\"y\"}",
               *A3 = "a{inst=\"3\"}";
    char all_a[256];
    snprintf(all_a, sizeof all_a, "%s %s %s", A1, A2, A3);
    ASSERT_SEL(r, 0, 1000, all_a, {MATCH_EQ, "__name__", "a"});
    ASSERT_SEL(r, 0, 1000, A1, {MATCH_EQ, "__name__", "a"}, {MATCH_EQ, "job", "x"});
    /* != and !~ also match series without the label. */
    char a2a3[128];
    snprintf(a2a3, sizeof a2a3, "%s %s", A2, A3);
    ASSERT_SEL(r, 0, 1000, a2a3, {MATCH_EQ, "__name__", "a"}, {MATCH_NEQ, "job", "x"});
    ASSERT_SEL(r, 0, 1000, A3, {MATCH_EQ, "__name__", "a"}, {MATCH_NRE, "job", "x|y"});
    /* ="" selects series lacking the label; !="" those having it. */
    ASSERT_SEL(r, 0, 1000, A3, {MATCH_EQ, "__name__", "a"}, {MATCH_EQ, "job", ""});
    char a1a2[128];
    snprintf(a1a2, sizeof a1a2, "%s %s", A1, A2);
    ASSERT_SEL(r, 0, 1000, a1a2, {MATCH_EQ, "__name__", "a"}, {MATCH_NEQ, "job", ""});
    /* A regex that matches "" includes series without the label. */
    char a1a3[128];
    snprintf(a1a3, sizeof a1a3, "%s %s", A1, A3);
    ASSERT_SEL(r, 0, 1000, a1a3, {MATCH_EQ, "__name__", "a"}, {MATCH_RE, "job", "x|"});
    ASSERT_SEL(r, 0, 1000, a1a3, {MATCH_RE, "__name__", "a"}, {MATCH_RE, "job", "x?"});
    /* Regexes are anchored. */
    ASSERT_SEL(r, 0, 1000, "", {MATCH_RE, "__name__", "."}, {MATCH_EQ, "job", "xx"});
    ASSERT_SEL(r, 0, 1000, "", {MATCH_RE, "job", "x."});
    char ax_bx[128];
    snprintf(ax_bx, sizeof ax_bx, "%s b{job=\"x\"}", A1);
    ASSERT_SEL(r, 0, 1000, ax_bx, {MATCH_RE, "__name__", "a|b"}, {MATCH_RE, "job", "x"});
    /* Matchers that do not match "" alone: regex, != "", !~ "". */
    char withjob[256];
    snprintf(withjob, sizeof withjob, "%s %s b{job=\"x\"}", A1, A2);
    ASSERT_SEL(r, 0, 1000, withjob, {MATCH_RE, "job", ".+"});
    ASSERT_SEL(r, 0, 1000, withjob, {MATCH_NEQ, "job", ""});
    ASSERT_SEL(r, 0, 1000, withjob, {MATCH_NRE, "job", ""});
    ASSERT_SEL(r, 0, 1000, "b{job=\"x\"}", {MATCH_NRE, "__name__", "a|c|"}, {MATCH_EQ, "job", "x"});
    /* Several non-empty matchers: all apply. */
    ASSERT_SEL(r, 0, 1000, A2, {MATCH_RE, "inst", "[12]"}, {MATCH_NEQ, "job", "x"},
               {MATCH_RE, "__name__", ".*"});
    /* Unknown names and values. */
    ASSERT_SEL(r, 0, 1000, "", {MATCH_EQ, "__name__", "nope"});
    ASSERT_SEL(r, 0, 1000, "", {MATCH_EQ, "nolabel", "x"});
    ASSERT_SEL(r, 0, 1000, "", {MATCH_RE, "nolabel", "x.*"});
    ASSERT_SEL(r, 0, 1000, all_a, {MATCH_EQ, "__name__", "a"}, {MATCH_EQ, "nolabel", ""});
    ASSERT_SEL(r, 0, 1000, "", {MATCH_EQ, "__name__", "a"}, {MATCH_NEQ, "nolabel", ""});
    /* Time range: "old" has only a sample at t=-5; "a{job=z}" has none. */
    ASSERT_SEL(r, INT64_MIN, INT64_MAX, "", {MATCH_EQ, "job", "z"});
    ASSERT_SEL(r, -4, 1000, "b{job=\"x\"}", {MATCH_RE, "__name__", "b|old"});
    ASSERT_SEL(r, -5, 100, "b{job=\"x\"} old{job=\"x\"}", {MATCH_RE, "__name__", "b|old"});
    ASSERT_SEL(r, -5, 99, "old{job=\"x\"}", {MATCH_RE, "__name__", "b|old"});
    ASSERT_SEL(r, 100, -5, "", {MATCH_RE, "__name__", "b|old"});
    /* Values with NUL and UTF-8 bytes. */
    {
        label_matcher m[2];
        labels_matcher_init(&m[0], MATCH_EQ, "__name__", 8, "c", 1, NULL);
        labels_matcher_init(&m[1], MATCH_EQ, "v", 1, "a\0b", 3, NULL);
        store_select_result res;
        assert_int_equal(store_select(r, m, 2, 0, 1000, &res), 0);
        assert_int_equal(res.n, 1);
        assert_int_equal(res.series[0].ref, rnul);
        store_select_result_free(&res);
        labels_matcher_cleanup(&m[1]);
        labels_matcher_init(&m[1], MATCH_RE, "v", 1, "\xc3\xa9.*", 4, NULL);
        assert_int_equal(store_select(r, m, 2, 0, 1000, &res), 0);
        assert_int_equal(res.n, 1);
        assert_int_equal(res.series[0].ref, rutf);
        store_select_result_free(&res);
        labels_matcher_cleanup(&m[0]);
        labels_matcher_cleanup(&m[1]);
    }
    /* Every matcher matching "" (or none at all) is refused. */
    store_select_result res;
    const msel empty1[] = {{MATCH_EQ, "job", ""}};
    const msel empty2[] = {{MATCH_NEQ, "job", "x"}, {MATCH_RE, "__name__", ".*"}};
    const msel empty3[] = {{MATCH_NRE, "job", ".+"}};
    assert_int_equal(sel(r, empty1, 1, 0, 1000, &res), -EINVAL);
    assert_int_equal(sel(r, empty2, 2, 0, 1000, &res), -EINVAL);
    assert_int_equal(sel(r, empty3, 1, 0, 1000, &res), -EINVAL);
    assert_int_equal(store_select(r, NULL, 0, 0, 1000, &res), -EINVAL);
    assert_int_equal(res.n, 0);

    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Regex matchers with a literal prefix search a key range of label values;
 * values around the range's ends must be handled exactly. */
static void test_regex_prefix_ranges(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    static const char *const pods[] = {"pod", "pod-", "pod-0", "pod-00", "pod-009", "pod-01", "pod-0/",
                                       "pod-00\xff", "pocket", "q"};
    store_batch *b = store_batch_new(s);
    for (size_t i = 0; i < sizeof pods / sizeof pods[0]; i++)
        store_batch_add(b, ref_pairs(s, tu_labels("__name__", "m", "pod", pods[i], NULL)), 1, 1);
    assert_int_equal(store_batch_commit(b), 0);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    ASSERT_SEL(r, 0, 10, "m{pod=\"pod-00\"} m{pod=\"pod-009\"} m{pod=\"pod-00\xff\"}",
               {MATCH_RE, "pod", "pod-00.*"});
    ASSERT_SEL(r, 0, 10, "m{pod=\"pod-009\"}", {MATCH_RE, "pod", "pod-00[0-9]+"});
    ASSERT_SEL(r, 0, 10, "m{pod=\"pocket\"} m{pod=\"pod\"}", {MATCH_RE, "pod", "po(d|cket)"});
    ASSERT_SEL(r, 0, 10, "m{pod=\"pod\"} m{pod=\"pod-\"}", {MATCH_RE, "pod", "pod-?"});
    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

static void test_sort_order(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    /* Added in scrambled order; expected order is labels.Compare's. */
    labels *sets[] = {
        tu_labels("__name__", "m", "x", "2", NULL),
        tu_labels("__name__", "m", "x", "10", NULL),
        tu_labels("__name__", "m", NULL),
        tu_labels("__name__", "m", "a", "z", NULL),
        tu_labels("__name__", "m", "x", "1", "y", "1", NULL),
        tu_labels("__name__", "m", "x", "1", NULL),
        tu_labels("__name__", "m", "x", "1", "z", "0", NULL),
        tu_labels("__name__", "m", "A", "1", NULL),
    };
    const size_t n = sizeof sets / sizeof sets[0];
    store_batch *b = store_batch_new(s);
    for (size_t i = 0; i < n; i++)
        store_batch_add(b, ref_of(s, sets[i], NULL), 1, 1);
    assert_int_equal(store_batch_commit(b), 0);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_select_result res;
    msel m = {MATCH_EQ, "__name__", "m"};
    assert_int_equal(sel(r, &m, 1, 0, 10, &res), 0);
    assert_int_equal(res.n, n);
    for (size_t i = 1; i < res.n; i++)
        assert_true(labels_compare(res.series[i - 1].labels, res.series[i].labels) < 0);
    store_select_result_free(&res);
    char *got = sel_str(r, &m, 1, 0, 10);
    assert_string_equal(got, "m{A=\"1\"} m m{a=\"z\"} m{x=\"1\"} m{x=\"1\",y=\"1\"} "
                             "m{x=\"1\",z=\"0\"} m{x=\"10\"} m{x=\"2\"}");
    mem_free(got);

    /* Label names and values. */
    store_strings ss;
    assert_int_equal(store_label_names(r, NULL, 0, 0, 0, &ss), 0);
    char *names[16];
    for (size_t i = 0; i < ss.n; i++)
        names[i] = ss.v[i].p;
    assert_int_equal(ss.n, 6);
    const char *want_names[] = {"A", "__name__", "a", "x", "y", "z"};
    for (size_t i = 0; i < ss.n; i++)
        assert_string_equal(names[i], want_names[i]);
    (void)cmp_str;
    store_strings_free(&ss);
    assert_int_equal(store_label_values(r, "x", 1, NULL, 0, 0, 0, &ss), 0);
    assert_int_equal(ss.n, 3);
    assert_string_equal(ss.v[0].p, "1");
    assert_string_equal(ss.v[1].p, "10");
    assert_string_equal(ss.v[2].p, "2");
    store_strings_free(&ss);
    label_matcher lm;
    labels_matcher_init(&lm, MATCH_EQ, "x", 1, "1", 1, NULL);
    assert_int_equal(store_label_names(r, &lm, 1, 0, 10, &ss), 0);
    assert_int_equal(ss.n, 4); /* __name__ x y z */
    assert_string_equal(ss.v[0].p, "__name__");
    assert_string_equal(ss.v[3].p, "z");
    store_strings_free(&ss);
    assert_int_equal(store_label_values(r, "z", 1, &lm, 1, 0, 10, &ss), 0);
    assert_int_equal(ss.n, 1);
    assert_string_equal(ss.v[0].p, "0");
    store_strings_free(&ss);
    assert_int_equal(store_label_names(r, &lm, 1, 20, 30, &ss), 0);
    assert_int_equal(ss.n, 0);
    store_strings_free(&ss);
    labels_matcher_cleanup(&lm);
    labels_matcher_init(&lm, MATCH_EQ, "x", 1, "", 0, NULL);
    assert_int_equal(store_label_names(r, &lm, 1, 0, 10, &ss), -EINVAL);
    labels_matcher_cleanup(&lm);

    store_reader_close(r);
    store_close(s);
    for (size_t i = 0; i < n; i++)
        labels_free(sets[i]);
    tu_tmpdir_free(dir);
}

static void test_out_of_order_and_duplicates(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    uint64_t ref = ref_pairs(s, tu_labels("__name__", "m", NULL));
    store_batch *b = store_batch_new(s);
    store_batch_add(b, ref, 100, 1);
    store_batch_add(b, ref, 200, 2);
    assert_int_equal(store_batch_commit(b), 0);

    b = store_batch_new(s);
    store_batch_add(b, ref, 150, 9); /* older than 200: out of order */
    store_batch_add(b, ref, 200, 2); /* same timestamp and value: duplicate */
    store_batch_add(b, ref, 200, 3); /* same timestamp, new value: out of order */
    store_batch_add(b, ref, 300, 3); /* fine */
    store_batch_add(b, ref, 250, 3); /* older than 300 added before in this batch */
    store_batch_add(b, ref, 300, 3); /* duplicate of the sample just added */
    store_batch_add(b, ref, 400, 4);
    assert_int_equal(store_batch_commit(b), 0);

    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.samples_appended, 4);
    assert_int_equal(st.out_of_order_samples, 3);
    assert_int_equal(st.duplicate_samples, 2);

    /* NaN duplicates compare bitwise: the same NaN is a duplicate, the
     * staleness marker after a NaN at the same timestamp is not. */
    b = store_batch_new(s);
    store_batch_add(b, ref, 500, NAN);
    store_batch_add(b, ref, 500, NAN);
    store_batch_add(b, ref, 500, strutil_stale_nan());
    assert_int_equal(store_batch_commit(b), 0);
    store_get_stats(s, &st);
    assert_int_equal(st.samples_appended, 5);
    assert_int_equal(st.duplicate_samples, 3);
    assert_int_equal(st.out_of_order_samples, 4);

    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_sample *v;
    size_t n;
    assert_int_equal(store_read_samples(r, ref, 0, 1000, &v, &n), 0);
    assert_int_equal(n, 5);
    const int64_t ts[] = {100, 200, 300, 400, 500};
    const double vs[] = {1, 2, 3, 4};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i].t, ts[i]);
        if (i < 4) assert_true(v[i].v == vs[i]);
    }
    assert_true(isnan(v[4].v) && !strutil_is_stale_nan(v[4].v));
    mem_free(v);
    store_reader_close(r);

    /* The newest timestamp survives reopening. */
    store_close(s);
    s = open_store(dir, 0);
    b = store_batch_new(s);
    store_batch_add(b, ref, 450, 1);
    store_batch_add(b, ref, 500, NAN);
    store_batch_add(b, ref, 600, 6);
    assert_int_equal(store_batch_commit(b), 0);
    store_get_stats(s, &st);
    assert_int_equal(st.samples_appended, 1);
    assert_int_equal(st.out_of_order_samples, 1);
    assert_int_equal(st.duplicate_samples, 1);
    /* Unknown references are dropped, not errors; empty batches commit. */
    b = store_batch_new(s);
    store_batch_add(b, 987654, 700, 1);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(store_batch_commit(store_batch_new(s)), 0);
    store_batch_free(NULL);
    b = store_batch_new(s);
    store_batch_add(b, ref, 800, 1);
    store_batch_free(b);
    store_get_stats(s, &st);
    assert_int_equal(st.samples_appended, 1);
    assert_int_equal(st.batches_committed, 3);
    store_close(s);
    tu_tmpdir_free(dir);
}

static void test_values_bit_exact(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    const uint64_t patterns[] = {
        STRUTIL_STALE_NAN_BITS, 0x7ff8000000000001ULL, /* Prometheus's NormalNaN */
        0x7ff8000000000000ULL,                         /* quiet NaN */
        0xfff8000000000000ULL,                         /* negative NaN */
        0x7ff0000000000001ULL,                         /* signalling NaN */
        0x7fffffffffffffffULL,  0x7ff0000000000000ULL, /* +Inf */
        0xfff0000000000000ULL,                         /* -Inf */
        0x8000000000000000ULL,                         /* -0 */
        0x0000000000000000ULL,                         /* +0 */
        0x0000000000000001ULL,                         /* smallest denormal */
        0x7fefffffffffffffULL,                         /* DBL_MAX */
        0x3ff0000000000000ULL,                         /* 1 */
        0xbff0000000000000ULL,                         /* -1 */
        0x4059000000000000ULL,                         /* 100 */
        0x3fb999999999999aULL,                         /* 0.1 */
        0xffffffffffffffffULL,  0x00000000000000ffULL,
    };
    const size_t np = sizeof patterns / sizeof patterns[0];
    uint64_t ref = ref_pairs(s, tu_labels("__name__", "bits", NULL));
    store_batch *b = store_batch_new(s);
    for (size_t i = 0; i < np; i++)
        store_batch_add(b, ref, (int64_t)i, from_bits(patterns[i]));
    assert_int_equal(store_batch_commit(b), 0);
    for (int pass = 0; pass < 2; pass++) {
        store_reader *r;
        assert_int_equal(store_reader_open(s, &r), 0);
        store_sample *v;
        size_t n;
        assert_int_equal(store_read_samples(r, ref, INT64_MIN, INT64_MAX, &v, &n), 0);
        assert_int_equal(n, np);
        for (size_t i = 0; i < np; i++) {
            assert_int_equal(v[i].t, (int64_t)i);
            if (bits(v[i].v) != patterns[i])
                fail_msg("pattern %zu: got %016llx want %016llx", i,
                         (unsigned long long)bits(v[i].v), (unsigned long long)patterns[i]);
        }
        assert_true(strutil_is_stale_nan(v[0].v));
        mem_free(v);
        store_reader_close(r);
        store_close(s);
        s = open_store(dir, 0);
    }
    /* Extreme timestamps. */
    uint64_t r2 = ref_pairs(s, tu_labels("__name__", "times", NULL));
    b = store_batch_new(s);
    store_batch_add(b, r2, INT64_MIN, 1);
    store_batch_add(b, r2, -1, 2);
    store_batch_add(b, r2, INT64_MAX, 3);
    assert_int_equal(store_batch_commit(b), 0);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(count_samples(r, r2, INT64_MIN, INT64_MAX), 3);
    assert_int_equal(count_samples(r, r2, INT64_MIN, -1), 2);
    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

static void test_metadata(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    store_batch *b = store_batch_new(s);
    store_batch_metadata(b, "http_requests_total", EXPFMT_COUNTER, "Requests \"served\".\n", "");
    store_batch_metadata(b, "temp_celsius", EXPFMT_GAUGE, "Temperature.", "celsius");
    store_batch_metadata(b, "temp_celsius", EXPFMT_GAUGE, "Temperature now.", "celsius");
    for (int t = EXPFMT_UNKNOWN; t <= EXPFMT_STATESET; t++) {
        char name[32];
        snprintf(name, sizeof name, "type_%d", t);
        store_batch_metadata(b, name, (enum expfmt_type)t, "", NULL);
    }
    assert_int_equal(store_batch_commit(b), 0);

    for (int pass = 0; pass < 2; pass++) {
        store_reader *r;
        assert_int_equal(store_reader_open(s, &r), 0);
        enum expfmt_type type;
        char *help, *unit;
        assert_int_equal(store_get_metadata(r, "http_requests_total", &type, &help, &unit), 0);
        assert_int_equal(type, EXPFMT_COUNTER);
        assert_string_equal(help, "Requests \"served\".\n");
        assert_string_equal(unit, "");
        mem_free(help);
        mem_free(unit);
        assert_int_equal(store_get_metadata(r, "temp_celsius", &type, &help, &unit), 0);
        assert_int_equal(type, EXPFMT_GAUGE);
        assert_string_equal(help, pass ? "Temperature in C." : "Temperature now.");
        assert_string_equal(unit, "celsius");
        mem_free(help);
        mem_free(unit);
        for (int t = EXPFMT_UNKNOWN; t <= EXPFMT_STATESET; t++) {
            char name[32];
            snprintf(name, sizeof name, "type_%d", t);
            assert_int_equal(store_get_metadata(r, name, &type, NULL, NULL), 0);
            assert_int_equal(type, t);
        }
        assert_int_equal(store_get_metadata(r, "missing", &type, &help, &unit), -ENOENT);
        store_reader_close(r);
        if (pass == 0) {
            /* Latest wins, also across batches; unchanged entries are fine. */
            b = store_batch_new(s);
            store_batch_metadata(b, "temp_celsius", EXPFMT_GAUGE, "Temperature in C.", "celsius");
            store_batch_metadata(b, "http_requests_total", EXPFMT_COUNTER, "Requests \"served\".\n",
                                 "");
            assert_int_equal(store_batch_commit(b), 0);
            store_close(s);
            s = open_store(dir, 0);
        }
    }
    store_close(s);
    tu_tmpdir_free(dir);
}

/* store_metadata_list: every family, sorted by name, latest values. */
static void test_metadata_list(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_metadata *md;
    size_t n;
    assert_int_equal(store_metadata_list(r, &md, &n), 0);
    assert_int_equal(n, 0);
    store_metadata_free(md, n);
    store_batch *b = store_batch_new(s);
    store_batch_metadata(b, "zeta", EXPFMT_GAUGE, "Last.", "");
    store_batch_metadata(b, "alpha_seconds", EXPFMT_HISTOGRAM, "First.", "seconds");
    store_batch_metadata(b, "mid", EXPFMT_UNKNOWN, "", "");
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(store_metadata_list(r, &md, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(md[0].metric, "alpha_seconds");
    assert_int_equal(md[0].type, EXPFMT_HISTOGRAM);
    assert_string_equal(md[0].help, "First.");
    assert_string_equal(md[0].unit, "seconds");
    assert_string_equal(md[1].metric, "mid");
    assert_int_equal(md[1].type, EXPFMT_UNKNOWN);
    assert_string_equal(md[2].metric, "zeta");
    store_metadata_free(md, n);
    /* Inside a snapshot too. */
    assert_int_equal(store_reader_begin(r), 0);
    assert_int_equal(store_metadata_list(r, &md, &n), 0);
    assert_int_equal(n, 3);
    store_metadata_free(md, n);
    store_reader_end(r);
    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

static void assert_stats(const store_stat *v, size_t n, const char *expect)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "%s%s:%llu", i ? " " : "", v[i].name, (unsigned long long)v[i].count);
    assert_string_equal(buf_cstr(&b), expect);
    buf_cleanup(&b);
}

/* store_index_stats_get: Prometheus's head cardinality lists. */
static void test_index_stats(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_index_stats st;
    assert_int_equal(store_index_stats_get(r, 10, &st), 0);
    assert_int_equal(st.num_label_pairs, 0);
    assert_int_equal(st.n_series_by_metric, 0);
    store_index_stats_free(&st);

    store_batch *b = store_batch_new(s);
    /* up: 3 series (jobs a, b, c), http_total: 2 (job a, codes 200/500),
     * one series with a long value. */
    const char *jobs[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        store_batch_add(b, ref_pairs(s, tu_labels("__name__", "up", "job", jobs[i], NULL)), 1000,
                        1);
    store_batch_add(
        b, ref_pairs(s, tu_labels("__name__", "http_total", "job", "a", "code", "200", NULL)), 1000,
        1);
    store_batch_add(
        b, ref_pairs(s, tu_labels("__name__", "http_total", "job", "a", "code", "500", NULL)), 1000,
        1);
    store_batch_add(b, ref_pairs(s, tu_labels("__name__", "x", "path", "/a/very/long/path", NULL)),
                    1000, 1);
    assert_int_equal(store_batch_commit(b), 0);

    assert_int_equal(store_index_stats_get(r, 10, &st), 0);
    /* pairs: __name__ x3, job x3, code x2, path x1 */
    assert_int_equal(st.num_label_pairs, 9);
    assert_stats(st.series_by_metric, st.n_series_by_metric, "up:3 http_total:2 x:1");
    assert_stats(st.values_by_label, st.n_values_by_label, "__name__:3 job:3 code:2 path:1");
    assert_stats(st.series_by_pair, st.n_series_by_pair,
                 "__name__=up:3 job=a:3 __name__=http_total:2 __name__=x:1 code=200:1 "
                 "code=500:1 job=b:1 job=c:1 path=/a/very/long/path:1");
    /* bytes: (1+len(name)) + (1+len(value)) per series:
     * __name__: up 3x(9+3) + http_total 2x(9+11) + x 1x(9+2) = 36+40+11 = 87;
     * job: a 3x(4+2) + b 6 + c 6 = 30; code: 2x(5+4) = 18; path: 5+18 = 23 */
    assert_stats(st.bytes_by_label, st.n_bytes_by_label, "__name__:87 job:30 path:23 code:18");
    store_index_stats_free(&st);

    /* A smaller limit keeps the largest entries. */
    assert_int_equal(store_index_stats_get(r, 2, &st), 0);
    assert_stats(st.series_by_metric, st.n_series_by_metric, "up:3 http_total:2");
    assert_stats(st.series_by_pair, st.n_series_by_pair, "__name__=up:3 job=a:3");
    assert_stats(st.values_by_label, st.n_values_by_label, "__name__:3 job:3");
    store_index_stats_free(&st);
    assert_int_equal(store_index_stats_get(r, 0, &st), 0);
    assert_int_equal(st.n_series_by_pair, 0);
    assert_int_equal(st.num_label_pairs, 9);
    store_index_stats_free(&st);
    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* Appends n samples t = t0, t0+step, ... with value = t to one series, in
 * batches of `per_batch`. */
static void append_run(store *s, uint64_t ref, int64_t t0, int64_t step, int n, int per_batch)
{
    store_batch *b = NULL;
    for (int i = 0; i < n; i++) {
        if (!b) b = store_batch_new(s);
        store_batch_add(b, ref, t0 + i * step, (double)(t0 + i * step));
        if ((i + 1) % per_batch == 0 || i == n - 1) {
            assert_int_equal(store_batch_commit(b), 0);
            b = NULL;
        }
    }
}

/* Retention drops whole chunks: those that end before the cutoff. */
static void test_retention(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 100000);
    uint64_t ra = ref_pairs(s, tu_labels("__name__", "a", NULL));
    uint64_t rb = ref_pairs(s, tu_labels("__name__", "b", NULL));
    /* a: 300 samples at t = 0..299000: chunks [0,119000], [120000,239000]
     * and 60 samples in the head. b: 10 samples, all in the head. */
    append_run(s, ra, 0, 1000, 300, 7);
    append_run(s, rb, 0, 1000, 10, 10);
    assert_int_equal(store_maintain(s, 0), 0); /* writes the closed chunks */
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.chunks_persisted, 2);
    assert_int_equal(st.min_time_ms, 0);
    assert_int_equal(st.max_time_ms, 299000);

    /* Cutoff 130000: only the first chunk ends before it. */
    assert_int_equal(store_apply_retention(s, 230000), 0);
    store_get_stats(s, &st);
    assert_int_equal(st.retention_deleted_chunks, 1);
    assert_int_equal(st.retention_deleted_samples, 120);
    assert_int_equal(st.min_time_ms, 0); /* b's head still starts at 0 */
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_sample *v;
    size_t n;
    assert_int_equal(store_read_samples(r, ra, INT64_MIN, INT64_MAX, &v, &n), 0);
    assert_int_equal(n, 180);
    assert_int_equal(v[0].t, 120000);
    mem_free(v);
    assert_int_equal(count_samples(r, rb, INT64_MIN, INT64_MAX), 10); /* heads are kept */
    ASSERT_SEL(r, 0, 119999, "b", {MATCH_RE, "__name__", "a|b"});
    ASSERT_SEL(r, 0, 120000, "a b", {MATCH_RE, "__name__", "a|b"});
    store_reader_close(r);

    /* Everything written expires; the heads stay until written. */
    assert_int_equal(store_apply_retention(s, 10000000), 0);
    store_get_stats(s, &st);
    assert_int_equal(st.retention_deleted_chunks, 2);
    assert_int_equal(st.retention_deleted_samples, 240);
    assert_int_equal(st.series, 2); /* series are kept */
    /* New samples of "a" must still be newer than its newest. */
    store_batch *b = store_batch_new(s);
    store_batch_add(b, ra, 1000, 1);
    assert_int_equal(store_batch_commit(b), 0);
    store_get_stats(s, &st);
    assert_int_equal(st.out_of_order_samples, 1);
    store_close(s);

    /* Retention 0 keeps everything. */
    s = open_store(dir, 0);
    assert_int_equal(store_apply_retention(s, INT64_MAX), 0);
    store_get_stats(s, &st);
    assert_int_equal(st.retention_deleted_samples, 0);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* --storage.retention.size: the oldest chunks go until the data fits, and
 * under steady load with retention the file stops growing (free pages are
 * reused, and given back by incremental vacuum). */
static void test_size_retention_and_file_growth(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store_options o = {.path = dir, .retention_bytes = 2 * 1024 * 1024};
    buf err;
    buf_init(&err, 4096);
    store *s = NULL;
    assert_int_equal(store_open(&s, &o, &err), 0);
    enum { NS = 200 };
    uint64_t refs[NS];
    for (int i = 0; i < NS; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        refs[i] = ref_pairs(s, tu_labels("__name__", "g", "i", v, NULL));
    }
    int64_t sizes[8];
    uint64_t rnd = 42;
    int64_t t = 0;
    for (int round = 0; round < 8; round++) {
        for (int k = 0; k < 240; k++, t += 15000) {
            store_batch *b = store_batch_new(s);
            for (int i = 0; i < NS; i++) {
                rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
                store_batch_add(b, refs[i], t, (double)(rnd >> 11) / 9007199254740992.0);
            }
            assert_int_equal(store_batch_commit(b), 0);
        }
        assert_int_equal(store_maintain(s, t), 0);
        store_stats st;
        store_get_stats(s, &st);
        sizes[round] = st.size_bytes;
    }
    store_stats st;
    store_get_stats(s, &st);
    assert_true(st.retention_deleted_chunks > 0);
    print_message("file size per round (KiB):");
    for (int i = 0; i < 8; i++) print_message(" %lld", (long long)(sizes[i] / 1024));
    print_message("\n");
    /* Bounded: after the limit is reached the size stays near it (the
     * limit counts pages in use; free pages and SQLite's own WAL come on
     * top, the WAL truncated at each store_maintain). */
    for (int i = 4; i < 8; i++) assert_true(sizes[i] < 4 * 1024 * 1024);
    assert_true(sizes[7] <= sizes[4] + 512 * 1024);
    /* The newest data is all there. */
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(count_samples(r, refs[0], t - 240 * 15000, t), 240);
    store_reader_close(r);
    store_close(s);
    buf_cleanup(&err);
    tu_tmpdir_free(dir);
}

/* The write-ahead table is truncated while samples move into chunks, is
 * replayed after a crash, and is empty after a clean close. */
static void test_write_ahead_table(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    labels *la = tu_labels("__name__", "a", NULL), *lb = tu_labels("__name__", "b", NULL);
    /* A child process does the work and dies without closing (as after
     * SIGKILL); it reports through its exit status. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store_options o = {.path = dir};
        store *s = NULL;
        if (store_open(&s, &o, NULL) < 0) _exit(10);
        uint64_t ra, rb;
        store_series_ref(s, la, &ra, NULL);
        store_series_ref(s, lb, &rb, NULL);
        /* 250 commits: 2 chunks + 10 samples in a's head; b: 3 in its head. */
        for (int i = 0; i < 250; i++) {
            store_batch *b = store_batch_new(s);
            store_batch_add(b, ra, i * 1000, i);
            if (store_batch_commit(b) < 0) _exit(11);
        }
        for (int i = 0; i < 3; i++) {
            store_batch *b = store_batch_new(s);
            store_batch_add(b, rb, i * 1000, i);
            if (store_batch_commit(b) < 0) _exit(11);
        }
        store_stats st;
        store_get_stats(s, &st);
        if (st.wal_rows != 253 || st.head_chunks != 2) _exit(12);
        if (store_maintain(s, 0) < 0) _exit(13);
        store_get_stats(s, &st);
        /* Rows before a's head chunk (its first sample came in row 241) go;
         * the heads pin rows 241..253. */
        if (st.chunks_persisted != 2 || st.wal_rows != 13) _exit(14);
        for (int i = 250; i < 255; i++) {
            store_batch *b = store_batch_new(s);
            store_batch_add(b, ra, i * 1000, i);
            if (store_batch_commit(b) < 0) _exit(11);
        }
        _exit(0); /* no store_close */
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    store *s = open_store(dir, 0);
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.replayed_samples, 10 + 3 + 5);
    assert_int_equal(st.wal_rows, 18);
    uint64_t ra = ref_of(s, la, NULL), rb = ref_of(s, lb, NULL);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(count_samples(r, ra, INT64_MIN, INT64_MAX), 255);
    assert_int_equal(count_samples(r, rb, INT64_MIN, INT64_MAX), 3);
    store_reader_close(r);
    store_close(s);
    /* A clean close wrote everything: nothing to replay. */
    s = open_store(dir, 0);
    store_get_stats(s, &st);
    assert_int_equal(st.replayed_samples, 0);
    assert_int_equal(st.wal_rows, 0);
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(count_samples(r, ra, INT64_MIN, INT64_MAX), 255);
    store_reader_close(r);
    store_close(s);
    labels_free(la);
    labels_free(lb);
    tu_tmpdir_free(dir);
}

/* An integer from the sqlite3 shell (-1 if it fails). */
static long long db_int(const char *dir, const char *sql)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "sqlite3 -cmd '.timeout 5000' %s/sidewatch.db \"%s\"", dir, sql);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    long long v = -1;
    if (fscanf(f, "%lld", &v) != 1) v = -1;
    pclose(f);
    return v;
}

/* Write-ahead slots: rows are rewritten in place, so steady ingestion does
 * not grow the table; batches of any size fit (larger slots are made when
 * needed); free slots beyond the spare count are deleted; replay after a
 * crash reads exactly the rows still needed, whatever stale rows the free
 * slots hold; a damaged slot header is reported, not fatal. */
static void test_write_ahead_slots(void **state)
{
    (void)state;
    if (system("sqlite3 -version >/dev/null 2>&1") != 0) {
        print_message("SKIPPED: the sqlite3 shell is not installed\n");
        skip();
    }
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    enum { WIDE = 3000 };
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store *s = open_store(dir, 0);
        uint64_t ra = ref_pairs(s, tu_labels("__name__", "a", NULL));
        uint64_t *wide = malloc(WIDE * sizeof *wide);
        for (int i = 0; i < WIDE; i++) {
            char v[16];
            snprintf(v, sizeof v, "%d", i);
            wide[i] = ref_pairs(s, tu_labels("__name__", "w", "i", v, NULL));
        }
        /* 20 rounds of 120 one-sample commits (a chunk each) and a
         * store_maintain. Within a round all 120 rows are needed; the spare
         * slots left by the previous maintain are reused before new ones
         * are made, so the table never holds more than 120 rows; maintain
         * then frees them all and keeps STORE_WAL_SPARE_SLOTS (64). */
        long long most = 0, after = 0;
        for (int round = 0; round < 20; round++) {
            append_run(s, ra, round * 120000, 1000, 120, 1);
            long long rows = db_int(dir, "SELECT count(*) FROM wal");
            if (rows > most) most = rows;
            if (store_maintain(s, 0) < 0) _exit(10);
            after = db_int(dir, "SELECT count(*) FROM wal");
        }
        store_stats st;
        store_get_stats(s, &st);
        if (most != 120 || after != 64) {
            fprintf(stderr, "wal rows: at most %lld, after maintain %lld\n", most, after);
            _exit(11);
        }
        if (st.wal_rows != 0) _exit(12);
        /* A wide batch (non-integer values: 3000 x ~10 bytes, several pages),
         * then small ones that reuse its slot or others. */
        store_batch *b = store_batch_new(s);
        for (int i = 0; i < WIDE; i++) store_batch_add(b, wide[i], 5000000, i + 0.25);
        if (store_batch_commit(b) < 0) _exit(13);
        append_run(s, ra, 5000000, 1000, 30, 1);
        b = store_batch_new(s);
        for (int i = 0; i < WIDE; i++) store_batch_add(b, wide[i], 5001000, i + 0.5);
        if (store_batch_commit(b) < 0) _exit(13);
        if (db_int(dir, "SELECT count(*) FROM wal WHERE length(data) > 20000") < 1) _exit(14);
        store_get_stats(s, &st);
        if (st.wal_rows != 32) _exit(15);
        _exit(0); /* killed: no store_close */
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* Stale rows (in free slots) are not replayed: exactly the head's
     * samples are. */
    store *s = open_store(dir, 0);
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.replayed_samples, 2 * WIDE + 30);
    assert_int_equal(st.wal_rows, 32);
    uint64_t ra = ref_pairs(s, tu_labels("__name__", "a", NULL));
    uint64_t w7 = ref_pairs(s, tu_labels("__name__", "w", "i", "7", NULL));
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(count_samples(r, ra, INT64_MIN, INT64_MAX), 20 * 120 + 30);
    store_sample *v;
    size_t n;
    assert_int_equal(store_read_samples(r, w7, INT64_MIN, INT64_MAX, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_true(v[0].v == 7.25 && v[1].v == 7.5);
    mem_free(v);
    store_reader_close(r);
    /* A crash again, now with a damaged header on the slot of the newest
     * row: check reports it; open logs it and replays the others. */
    char cmd[9000];
    store_close(s);
    assert_int_equal(db_int(dir, "SELECT count(*) FROM wal"), 0); /* a clean close empties it */
    s = open_store(dir, 0);
    append_run(s, ra, 6000000, 1000, 5, 1);
    store_get_stats(s, &st);
    assert_int_equal(st.wal_rows, 5);
    /* Simulate a crash by copying the files while open (the store keeps
     * its rows; SQLite's own WAL has the last commits). */
    char copy[4200];
    snprintf(copy, sizeof copy, "%s/copy", dir);
    snprintf(cmd, sizeof cmd, "mkdir %s && cp %s/sidewatch.db %s/sidewatch.db-wal %s/", copy, dir, dir,
             copy);
    assert_int_equal(system(cmd), 0);
    store_close(s);
    assert_true(db_int(copy, "SELECT count(*) FROM wal") == 5);
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s/sidewatch.db \"UPDATE wal SET data = x'0500000000000000ffffff7f'"
             " WHERE slot = (SELECT max(slot) FROM wal)\" >/dev/null",
             copy);
    assert_int_equal(system(cmd), 0);
    buf report;
    buf_init(&report, 1 << 16);
    assert_int_equal(store_check(copy, &report), -EIO);
    assert_non_null(strstr(buf_cstr(&report), "damaged header"));
    buf_cleanup(&report);
    s = open_store(copy, 0);
    store_get_stats(s, &st);
    assert_int_equal(st.replayed_samples, 4);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* store_maintain closes head chunks that stay open too long, so a series
 * that stopped receiving samples does not pin the write-ahead table. */
static void test_head_age(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store_options o = {.path = dir, .head_max_age_ms = 1};
    buf err;
    buf_init(&err, 4096);
    store *s = NULL;
    assert_int_equal(store_open(&s, &o, &err), 0);
    uint64_t ra = ref_pairs(s, tu_labels("__name__", "a", NULL));
    append_run(s, ra, 0, 1000, 5, 1);
    usleep(5000);
    assert_int_equal(store_maintain(s, 0), 0);
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.head_chunks, 0);
    assert_int_equal(st.chunks_persisted, 1);
    assert_int_equal(st.wal_rows, 0);
    append_run(s, ra, 5000, 1000, 5, 1); /* a new chunk starts */
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(count_samples(r, ra, INT64_MIN, INT64_MAX), 10);
    store_reader_close(r);
    store_close(s);
    buf_cleanup(&err);
    tu_tmpdir_free(dir);
}

/* Backfill writes chunks directly; overlapping data merges on read. */
static void test_import(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    uint64_t ra = ref_pairs(s, tu_labels("__name__", "a", NULL));
    append_run(s, ra, 100000, 1000, 10, 10); /* live samples at 100..109 s */
    store_import *im;
    assert_int_equal(store_import_begin(s, &im), 0);
    store_sample old[300], bad[2] = {{5, 1}, {5, 2}};
    for (int i = 0; i < 300; i++) old[i] = (store_sample){i * 500, i}; /* 0..149.5 s */
    labels *la = tu_labels("__name__", "a", NULL), *lnew = tu_labels("__name__", "imported", NULL);
    assert_int_equal(store_import_series(im, la, old, 300), 0);
    assert_int_equal(store_import_series(im, lnew, old, 300), 0);
    assert_int_equal(store_import_series(im, lnew, bad, 2), -EINVAL);
    assert_int_equal(store_import_finish(im), 0);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_sample *v;
    size_t n;
    assert_int_equal(store_read_samples(r, ra, INT64_MIN, INT64_MAX, &v, &n), 0);
    /* 300 imported; the 10 live ones share timestamps 100..109 s with
     * imported ones (one sample per timestamp survives). */
    assert_int_equal(n, 300);
    for (size_t i = 1; i < n; i++) assert_true(v[i].t > v[i - 1].t);
    mem_free(v);
    ASSERT_SEL(r, 0, 1, "a imported", {MATCH_RE, "__name__", "a|imported"});
    store_reader_close(r);
    store_close(s);
    s = open_store(dir, 0);
    assert_int_equal(store_reader_open(s, &r), 0);
    uint64_t ri = ref_pairs(s, lnew);
    assert_int_equal(count_samples(r, ri, INT64_MIN, INT64_MAX), 300);
    store_reader_close(r);
    store_close(s);
    labels_free(la);
    tu_tmpdir_free(dir);
}

/* The key-value state: puts, deletes and listing in key order, in one
 * transaction, kept across a reopen. */
static void test_kv(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    store_kv_op ops[] = {
        {"outbox", "0002", 4, "second", 6},
        {"outbox", "0001", 4, "first", 5},
        {"outbox", "0003", 4, "third", 5},
        {"alerts", "a\0b", 3, "\0\1", 2},
        {"outbox", "0003", 4, NULL, 0},
    };
    assert_int_equal(store_kv_apply(s, ops, 5, NULL), 0);
    store_kv_entry *e;
    size_t n;
    assert_int_equal(store_kv_list(s, "outbox", NULL, 0, 0, &e, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_string_equal(e[0].key, "0001");
    assert_string_equal(e[0].value, "first");
    assert_string_equal(e[1].value, "second");
    store_kv_entries_free(e, n);
    assert_int_equal(store_kv_count(s, "outbox"), 2);
    store_close(s);

    s = open_store(dir, 0);
    assert_int_equal(store_kv_list(s, "outbox", "0002", 4, 0, &e, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].value, "second");
    store_kv_entries_free(e, n);
    assert_int_equal(store_kv_list(s, "outbox", NULL, 0, 1, &e, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].key, "0001");
    store_kv_entries_free(e, n);
    assert_int_equal(store_kv_list(s, "alerts", NULL, 0, 0, &e, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_int_equal(e[0].key_len, 3);
    assert_memory_equal(e[0].key, "a\0b", 3);
    assert_int_equal(e[0].value_len, 2);
    store_kv_entries_free(e, n);
    assert_int_equal(store_kv_list(s, "none", NULL, 0, 0, &e, &n, NULL), 0);
    assert_int_equal(n, 0);
    assert_null(e);
    store_close(s);
    tu_tmpdir_free(dir);
}

static void test_reopen(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    uint64_t refs[50];
    labels *ls[50];
    store_batch *b = store_batch_new(s);
    for (int i = 0; i < 50; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        ls[i] = tu_labels("__name__", "m", "i", v, NULL);
        refs[i] = ref_of(s, ls[i], NULL);
        store_batch_add(b, refs[i], 1000, i);
    }
    store_batch_metadata(b, "m", EXPFMT_GAUGE, "help", "");
    assert_int_equal(store_batch_commit(b), 0);
    /* A series created but never committed: its id may be handed out again,
     * but never one that is in the database. */
    uint64_t uncommitted = ref_pairs(s, tu_labels("__name__", "never", NULL));
    store_close(s);

    s = open_store(dir, 0);
    store_stats st;
    store_get_stats(s, &st);
    /* Open loads no series (they come back on demand), but the time range
     * covers them. */
    assert_int_equal(st.series, 0);
    assert_int_equal(st.min_time_ms, 1000);
    assert_int_equal(st.max_time_ms, 1000);
    for (int i = 0; i < 50; i++) {
        bool created;
        assert_int_equal(ref_of(s, ls[i], &created), refs[i]);
        assert_false(created);
    }
    bool created;
    uint64_t fresh = ref_pairs(s, tu_labels("__name__", "new", NULL));
    for (int i = 0; i < 50; i++)
        assert_true(fresh != refs[i]);
    assert_true(fresh >= uncommitted);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    ASSERT_SEL(r, 0, 2000, "m{i=\"7\"}", {MATCH_EQ, "i", "7"});
    store_select_result res;
    msel m = {MATCH_EQ, "__name__", "m"};
    assert_int_equal(sel(r, &m, 1, 0, 2000, &res), 0);
    assert_int_equal(res.n, 50);
    store_select_result_free(&res);
    enum expfmt_type type;
    assert_int_equal(store_get_metadata(r, "m", &type, NULL, NULL), 0);
    assert_int_equal(type, EXPFMT_GAUGE);
    store_reader_close(r);
    /* Commit the new series, close, reopen: its id stays. */
    b = store_batch_new(s);
    store_batch_add(b, fresh, 5, 5);
    assert_int_equal(store_batch_commit(b), 0);
    store_close(s);
    s = open_store(dir, 0);
    labels *nl = tu_labels("__name__", "new", NULL);
    assert_int_equal(ref_of(s, nl, &created), fresh);
    assert_false(created);
    labels_free(nl);
    store_close(s);
    for (int i = 0; i < 50; i++)
        labels_free(ls[i]);
    tu_tmpdir_free(dir);
}

static void test_open_errors(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    /* A second open of the same directory is refused while the first holds
     * it. */
    store_options o = {.path = dir};
    buf err;
    buf_init(&err, 4096);
    store *s2;
    assert_int_equal(store_open(&s2, &o, &err), -EBUSY);
    assert_non_null(strstr(buf_cstr(&err), "in use"));
    assert_non_null(strstr(buf_cstr(&err), dir));
    assert_int_equal(store_batch_commit(store_batch_new(s)), 0);
    store_close(s);
    store_close(NULL);

    /* A newer schema version is refused with a clear error. The version is
     * PRAGMA user_version: 4 bytes, big-endian, at offset 60 of the
     * database header (the WAL was checkpointed and removed at close). */
    char path[4096];
    snprintf(path, sizeof path, "%s/sidewatch.db", dir);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    const unsigned char v99[4] = {0, 0, 0, 99};
    assert_int_equal(pwrite(fd, v99, 4, 60), 4);
    close(fd);
    buf_reset(&err);
    assert_true(store_open(&s2, &o, &err) < 0);
    assert_non_null(strstr(buf_cstr(&err), "schema version 99 is newer"));
    /* Not a database at all. */
    fd = open(path, O_WRONLY | O_TRUNC);
    char junk[512];
    memset(junk, 'x', sizeof junk);
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    buf_reset(&err);
    assert_true(store_open(&s2, &o, &err) < 0);
    assert_true(strncmp(buf_cstr(&err), "storage: ", 9) == 0);
    /* A path that is a file. */
    buf_reset(&err);
    o.path = path;
    assert_int_equal(store_open(&s2, &o, &err), -ENOTDIR);
    buf_reset(&err);
    o.path = NULL;
    assert_int_equal(store_open(&s2, &o, &err), -EINVAL);
    buf_cleanup(&err);
    /* A nested directory is created. */
    char nested[4200];
    snprintf(nested, sizeof nested, "%s/x/y/z/", dir);
    unlink(path);
    s = open_store(nested, 0);
    labels *empty = tu_labels(NULL);
    uint64_t ref;
    assert_int_equal(store_series_ref(s, empty, &ref, NULL), -EINVAL);
    labels_free(empty);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* A commit that fails (here: a trigger added behind the store's back with
 * the sqlite3 shell makes writing the write-ahead row fail) stores nothing
 * of the batch, keeps the append state and keeps the new series queued for
 * the next commit. */
static void test_commit_failure(void **state)
{
    (void)state;
    if (system("sqlite3 -version >/dev/null 2>&1") != 0) {
        print_message("SKIPPED: the sqlite3 shell is not installed\n");
        skip();
    }
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    uint64_t ra = ref_pairs(s, tu_labels("__name__", "a", NULL));
    store_batch *b = store_batch_new(s);
    store_batch_add(b, ra, 1, 1);
    assert_int_equal(store_batch_commit(b), 0);

    char cmd[4200];
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s/sidewatch.db 'PRAGMA busy_timeout=5000; CREATE TRIGGER fail BEFORE "
             "INSERT ON wal BEGIN SELECT RAISE(ABORT, \"injected\"); END;' >/dev/null",
             dir);
    assert_int_equal(system(cmd), 0);

    bool created;
    labels *lb = tu_labels("__name__", "b", NULL);
    uint64_t rb = ref_of(s, lb, &created);
    assert_true(created);
    b = store_batch_new(s);
    store_batch_add(b, rb, 5, 5);
    store_batch_add(b, ra, 3, 3);
    store_batch_metadata(b, "b", EXPFMT_GAUGE, "B.", "");
    assert_int_equal(store_batch_commit(b), -EEXIST);
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.commit_errors, 1);
    assert_int_equal(st.samples_appended, 1);

    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(count_samples(r, ra, 0, 100), 1);
    ASSERT_SEL(r, 0, 100, "a", {MATCH_RE, "__name__", "a|b"});
    enum expfmt_type type;
    assert_int_equal(store_get_metadata(r, "b", &type, NULL, NULL), -ENOENT);

    snprintf(cmd, sizeof cmd,
             "sqlite3 %s/sidewatch.db 'PRAGMA busy_timeout=5000; DROP TRIGGER fail' >/dev/null", dir);
    assert_int_equal(system(cmd), 0);
    /* Nothing of the failed batch was applied (t=3 is not out of order) and
     * "b" is written by the next commit. */
    b = store_batch_new(s);
    store_batch_add(b, ra, 3, 3);
    store_batch_add(b, rb, 6, 6);
    store_batch_metadata(b, "b", EXPFMT_GAUGE, "B.", "");
    assert_int_equal(store_batch_commit(b), 0);
    store_get_stats(s, &st);
    assert_int_equal(st.samples_appended, 3);
    assert_int_equal(st.out_of_order_samples, 0);
    ASSERT_SEL(r, 0, 100, "a b", {MATCH_RE, "__name__", "a|b"});
    assert_int_equal(count_samples(r, ra, 0, 100), 2);
    assert_int_equal(store_get_metadata(r, "b", &type, NULL, NULL), 0);
    store_reader_close(r);
    store_close(s);

    s = open_store(dir, 0);
    assert_int_equal(ref_of(s, lb, &created), rb);
    assert_false(created);
    store_close(s);
    labels_free(lb);
    tu_tmpdir_free(dir);
}

/* A damaged database gives a clear error, never a crash: a file that is not
 * SQLite, a truncated file, and a corrupt chunk (skipped and counted when
 * read; reported by store_check). */
static void test_corruption(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    char path[4200];
    snprintf(path, sizeof path, "%s/sidewatch.db", dir);
    /* Garbage instead of a database. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 4096; i++) fputc((i * 7) & 0xff, f);
    fclose(f);
    store_options o = {.path = dir};
    buf err;
    buf_init(&err, 4096);
    store *s = NULL;
    assert_true(store_open(&s, &o, &err) < 0);
    assert_null(s);
    assert_non_null(strstr(buf_cstr(&err), "file is not a database"));
    unlink(path);

    /* A real store, then truncated in the middle. */
    s = open_store(dir, 0);
    uint64_t refs[100];
    for (int i = 0; i < 100; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        refs[i] = ref_pairs(s, tu_labels("__name__", "m", "i", v, NULL));
        append_run(s, refs[i], 0, 1000, 130, 130);
    }
    store_close(s);
    buf report;
    buf_init(&report, 1 << 20);
    assert_int_equal(store_check(dir, &report), 0);
    assert_non_null(strstr(buf_cstr(&report), "100 series, 200 chunks with 13000 samples"));
    buf_reset(&report);

    if (system("sqlite3 -version >/dev/null 2>&1") == 0) {
        char cmd[4400];
        snprintf(cmd, sizeof cmd,
                 "sqlite3 %s \"UPDATE chunks SET data = x'0078ffffffffff' WHERE series_id = %llu\"",
                 path, (unsigned long long)refs[3]);
        assert_int_equal(system(cmd), 0);
        s = open_store(dir, 0);
        store_reader *r;
        assert_int_equal(store_reader_open(s, &r), 0);
        store_sample *v;
        size_t n;
        assert_int_equal(store_read_samples(r, refs[3], INT64_MIN, INT64_MAX, &v, &n), 0);
        mem_free(v);
        store_stats st;
        store_get_stats(s, &st);
        assert_true(st.corrupt_chunks >= 1);
        assert_int_equal(count_samples(r, refs[4], INT64_MIN, INT64_MAX), 130);
        store_reader_close(r);
        store_close(s);
        assert_int_equal(store_check(dir, &report), -EIO);
        assert_non_null(strstr(buf_cstr(&report), "does not decode"));
        buf_reset(&report);
    }
    struct stat stt;
    assert_int_equal(stat(path, &stt), 0);
    assert_int_equal(truncate(path, stt.st_size / 2), 0);
    int rc = store_open(&s, &o, &err);
    if (rc == 0) {
        /* SQLite may open a truncated file and fail on first use; the check
         * must then report it. */
        store_close(s);
        assert_int_equal(store_check(dir, &report), -EIO);
    } else {
        assert_null(s);
        assert_true(err.len > 0);
    }
    buf_cleanup(&report);
    buf_cleanup(&err);
    tu_tmpdir_free(dir);
}

/* A full disk (here: the file size limit, RLIMIT_FSIZE) makes commits fail
 * with an error; what was committed before stays readable. */
static void test_disk_full(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        store *s = open_store(dir, 0);
        uint64_t ref = ref_pairs(s, tu_labels("__name__", "a", NULL));
        append_run(s, ref, 0, 1000, 10, 10);
        struct stat st;
        char path[4200];
        snprintf(path, sizeof path, "%s/sidewatch.db-wal", dir);
        stat(path, &st);
        struct rlimit rl = {(rlim_t)st.st_size, (rlim_t)st.st_size};
        setrlimit(RLIMIT_FSIZE, &rl);
        int failures = 0;
        for (int i = 0; i < 2000 && failures == 0; i++) {
            store_batch *b = store_batch_new(s);
            for (int k = 0; k < 100; k++) store_batch_add(b, ref, 10000 + i * 100 + k, k);
            if (store_batch_commit(b) < 0) failures++;
        }
        _exit(failures ? 0 : 3);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* the commit failed, nothing crashed */
    store *s = open_store(dir, 0);
    uint64_t ref = ref_pairs(s, tu_labels("__name__", "a", NULL));
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_true(count_samples(r, ref, 0, 9000) == 10);
    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* A database written by schema version 1 (one row per sample) is migrated
 * to chunks at open. */
static void test_migration_from_v1(void **state)
{
    (void)state;
    if (system("sqlite3 -version >/dev/null 2>&1") != 0) {
        print_message("SKIPPED: the sqlite3 shell is not installed\n");
        skip();
    }
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    char cmd[8192];
    /* Labels {__name__="up"} encoded: n=1, len 8 "__name__", len 2 "up";
     * values are the float64 bits byte-swapped (1.0 -> 0x000000000000f03f). */
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s/sidewatch.db \"PRAGMA journal_mode=WAL;"
             "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
             "CREATE TABLE series(id INTEGER PRIMARY KEY, labels BLOB NOT NULL UNIQUE, metric BLOB NOT NULL);"
             "CREATE TABLE label_values(id INTEGER PRIMARY KEY, name BLOB NOT NULL, value BLOB NOT NULL,"
             " series INTEGER NOT NULL, UNIQUE(name, value));"
             "CREATE TABLE postings(lv_id INTEGER NOT NULL, series_id INTEGER NOT NULL,"
             " PRIMARY KEY(lv_id, series_id)) WITHOUT ROWID;"
             "CREATE TABLE samples(series_id INTEGER NOT NULL, t INTEGER NOT NULL, v INTEGER NOT NULL,"
             " PRIMARY KEY(series_id, t)) WITHOUT ROWID;"
             "CREATE TABLE metadata(metric TEXT PRIMARY KEY, type TEXT NOT NULL, help TEXT NOT NULL,"
             " unit TEXT NOT NULL) WITHOUT ROWID;"
             "INSERT INTO series VALUES(1, x'01085f5f6e616d655f5f027570', x'7570');"
             "INSERT INTO label_values VALUES(1, x'5f5f6e616d655f5f', x'7570', 1);"
             "INSERT INTO postings VALUES(1, 1);"
             "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM c WHERE i < 249)"
             " INSERT INTO samples SELECT 1, i*1000, 0x000000000000f03f FROM c;"
             "PRAGMA application_id=1396987732; PRAGMA user_version=1;\" >/dev/null",
             dir);
    assert_int_equal(system(cmd), 0);
    store *s = open_store(dir, 0);
    uint64_t ref = ref_pairs(s, tu_labels("__name__", "up", NULL));
    assert_int_equal(ref, 1);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_sample *v;
    size_t n;
    assert_int_equal(store_read_samples(r, ref, INT64_MIN, INT64_MAX, &v, &n), 0);
    assert_int_equal(n, 250);
    assert_true(v[249].t == 249000 && v[249].v == 1.0);
    mem_free(v);
    store_reader_close(r);
    /* New samples continue after the migrated ones. */
    append_run(s, ref, 250000, 1000, 1, 1);
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.samples_appended, 1);
    store_close(s);
    buf report;
    buf_init(&report, 1 << 16);
    assert_int_equal(store_check(dir, &report), 0);
    buf_cleanup(&report);
    tu_tmpdir_free(dir);
}

/* A version 2 database (chunk index without min_t) gets the version 3
 * index at open; reads of a window in the middle of a series return exactly
 * its samples (the min_t term skips the newer chunks). */
static void test_migration_from_v2(void **state)
{
    (void)state;
    if (system("sqlite3 -version >/dev/null 2>&1") != 0) {
        print_message("SKIPPED: the sqlite3 shell is not installed\n");
        skip();
    }
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    uint64_t ref = ref_pairs(s, tu_labels("__name__", "up", NULL));
    append_run(s, ref, 0, 1000, 1200, 100); /* ten chunks of 120 */
    store_close(s);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s/sidewatch.db \"DROP INDEX chunks_series;"
             "CREATE INDEX chunks_series ON chunks(series_id, max_t); PRAGMA user_version=2;\"",
             dir);
    assert_int_equal(system(cmd), 0);
    s = open_store(dir, 0);
    store_close(s);
    snprintf(cmd, sizeof cmd,
             "test \"$(sqlite3 %s/sidewatch.db 'PRAGMA user_version; "
             "SELECT group_concat(name) FROM pragma_index_info(\"chunks_series\")')\" = "
             "\"$(printf '8\\nseries_id,max_t,min_t')\"",
             dir);
    assert_int_equal(system(cmd), 0);
    s = open_store(dir, 0);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    static const int64_t windows[][2] = {
        {300000, 400000}, {119000, 120000}, {0, 0}, {1199000, 1300000}, {-5000, -1}, {500500, 500900}};
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        store_sample *v;
        size_t n;
        assert_int_equal(store_read_samples(r, ref, windows[w][0], windows[w][1], &v, &n), 0);
        int64_t lo = windows[w][0] < 0 ? 0 : (windows[w][0] + 999) / 1000 * 1000;
        int64_t hi = windows[w][1] > 1199000 ? 1199000
                     : windows[w][1] < 0   ? -1
                                           : windows[w][1] / 1000 * 1000;
        size_t want = hi >= lo ? (size_t)((hi - lo) / 1000 + 1) : 0;
        assert_int_equal(n, want);
        for (size_t i = 0; i < n; i++)
            assert_true(v[i].t == lo + (int64_t)i * 1000 && v[i].v == (double)v[i].t);
        mem_free(v);
    }
    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* ---- concurrency ------------------------------------------------------------------- */

#define CONC_BATCHES 200
#define CONC_OWN 50
#define CONC_SHARED 10

typedef struct conc_ctx {
    store *s;
    int id;
    atomic_int *done;
    atomic_int errors;
    uint64_t added;
    uint64_t own_refs[CONC_OWN];
} conc_ctx;

static void *conc_writer(void *arg)
{
    conc_ctx *c = arg;
    char w[16];
    snprintf(w, sizeof w, "%d", c->id);
    for (int bi = 0; bi < CONC_BATCHES; bi++) {
        /* Series k appears at batch k, so series creation interleaves with
         * the other writer's commits. */
        if (bi < CONC_OWN) {
            char k[16];
            snprintf(k, sizeof k, "%d", bi);
            labels *ls = tu_labels("__name__", "conc", "w", w, "k", k, NULL);
            if (store_series_ref(c->s, ls, &c->own_refs[bi], NULL) != 0) c->errors++;
            labels_free(ls);
        }
        store_batch *b = store_batch_new(c->s);
        for (int k = 0; k < CONC_OWN && k <= bi; k++) {
            store_batch_add(b, c->own_refs[k], bi, bi);
            c->added++;
        }
        for (int k = 0; k < CONC_SHARED; k++) {
            char kk[16];
            snprintf(kk, sizeof kk, "%d", k);
            labels *ls = tu_labels("__name__", "shared", "k", kk, NULL);
            uint64_t ref;
            if (store_series_ref(c->s, ls, &ref, NULL) != 0) c->errors++;
            labels_free(ls);
            store_batch_add(b, ref, bi, bi);
            c->added++;
        }
        if (store_batch_commit(b) != 0) c->errors++;
    }
    atomic_fetch_add(c->done, 1);
    return NULL;
}

typedef struct reader_ctx {
    store *s;
    atomic_int *done;
    atomic_int errors;
    int rounds;
} reader_ctx;

static void *conc_reader(void *arg)
{
    reader_ctx *c = arg;
    store_reader *r;
    if (store_reader_open(c->s, &r) != 0) {
        c->errors++;
        return NULL;
    }
    size_t last_series = 0;
    label_matcher m;
    labels_matcher_init(&m, MATCH_RE, "__name__", 8, "conc|shared", 11, NULL);
    for (;;) {
        bool finished = atomic_load(c->done) == 2;
        store_select_result res;
        if (store_select(r, &m, 1, INT64_MIN, INT64_MAX, &res) != 0) {
            c->errors++;
            break;
        }
        if (res.n < last_series) c->errors++;
        last_series = res.n;
        for (size_t i = 0; i < res.n; i++) {
            if (i && labels_compare(res.series[i - 1].labels, res.series[i].labels) >= 0)
                c->errors++;
            store_sample *v;
            size_t n;
            if (store_read_samples(r, res.series[i].ref, INT64_MIN, INT64_MAX, &v, &n) != 0) {
                c->errors++;
                continue;
            }
            for (size_t j = 0; j < n; j++) {
                if (v[j].v != (double)v[j].t) c->errors++;
                if (j && v[j].t <= v[j - 1].t) c->errors++;
            }
            mem_free(v);
        }
        store_select_result_free(&res);
        c->rounds++;
        if (finished) break;
    }
    labels_matcher_cleanup(&m);
    store_reader_close(r);
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    atomic_int done;
    atomic_init(&done, 0);
    conc_ctx w[2] = {{.s = s, .id = 0, .done = &done}, {.s = s, .id = 1, .done = &done}};
    reader_ctx rc = {.s = s, .done = &done};
    pthread_t th[3];
    pthread_create(&th[0], NULL, conc_reader, &rc);
    pthread_create(&th[1], NULL, conc_writer, &w[0]);
    pthread_create(&th[2], NULL, conc_writer, &w[1]);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&w[0].errors), 0);
    assert_int_equal(atomic_load(&w[1].errors), 0);
    assert_int_equal(atomic_load(&rc.errors), 0);
    assert_true(rc.rounds >= 1);

    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.series, 2 * CONC_OWN + CONC_SHARED);
    assert_int_equal(st.batches_committed, 2 * CONC_BATCHES);
    assert_int_equal(st.commit_errors, 0);
    assert_int_equal(st.samples_appended + st.out_of_order_samples + st.duplicate_samples,
                     w[0].added + w[1].added);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    for (int wi = 0; wi < 2; wi++) {
        for (int k = 0; k < CONC_OWN; k++)
            assert_int_equal(count_samples(r, w[wi].own_refs[k], INT64_MIN, INT64_MAX),
                             CONC_BATCHES - k);
    }
    /* Each shared series got every timestamp at most once; the last one
     * always (both writers wrote it, the later one counts a duplicate). */
    uint64_t shared_total = 0;
    for (int k = 0; k < CONC_SHARED; k++) {
        char kk[16];
        snprintf(kk, sizeof kk, "%d", k);
        uint64_t ref = ref_pairs(s, tu_labels("__name__", "shared", "k", kk, NULL));
        size_t n = count_samples(r, ref, INT64_MIN, INT64_MAX);
        assert_true(n <= CONC_BATCHES);
        assert_int_equal(count_samples(r, ref, CONC_BATCHES - 1, CONC_BATCHES - 1), 1);
        shared_total += n;
    }
    assert_int_equal(st.samples_appended,
                     shared_total +
                         2 * (uint64_t)(CONC_OWN * CONC_BATCHES - CONC_OWN * (CONC_OWN - 1) / 2));
    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* ---- crash safety -------------------------------------------------------------------- */

static size_t wal_read_all(store *s, uint64_t *cursor, size_t max_rows, store_wal_batch **all,
                           size_t *nall);
static void free_all_batches(store_wal_batch *all, size_t n);

#define CRASH_FIXED 100
#define CRASH_ROUNDS 3
#define CRASH_ROUND_T 10000000LL

static labels *crash_fixed_labels(int j)
{
    char v[16];
    snprintf(v, sizeof v, "%d", j);
    return tu_labels("__name__", "crash", "j", v, NULL);
}

static double crash_value(int64_t i, int j)
{
    /* Include NaN payloads and staleness markers among ordinary values. */
    if ((i + j) % 7 == 0) return strutil_stale_nan();
    return (double)i * 1000 + j + 0.25;
}

/* The child: appends batch after batch and reports each committed count. */
static void crash_child(const char *dir, int round, int fd)
{
    store_options o = {.path = dir};
    buf err;
    buf_init(&err, 4096);
    store *s;
    if (store_open(&s, &o, &err) != 0) {
        fprintf(stderr, "child: %s\n", buf_cstr(&err));
        _exit(2);
    }
    uint64_t refs[CRASH_FIXED];
    for (int j = 0; j < CRASH_FIXED; j++) {
        labels *ls = crash_fixed_labels(j);
        if (store_series_ref(s, ls, &refs[j], NULL) != 0) _exit(3);
        labels_free(ls);
    }
    /* A remote-write consumer that reads nothing: this round's rows stay
     * (and must not be replayed twice). */
    if (store_wal_consumer_set(s, "crash", store_wal_next_seq(s), 3600000, NULL) != 0) _exit(6);
    for (int64_t i = 0;; i++) {
        int64_t t = round * CRASH_ROUND_T + i;
        char v[32];
        snprintf(v, sizeof v, "%d_%lld", round, (long long)i);
        labels *nl = tu_labels("__name__", "crash_new", "i", v, NULL);
        uint64_t nref;
        if (store_series_ref(s, nl, &nref, NULL) != 0) _exit(3);
        labels_free(nl);
        store_batch *b = store_batch_new(s);
        for (int j = 0; j < CRASH_FIXED; j++)
            store_batch_add(b, refs[j], t, crash_value(i, j));
        store_batch_add(b, nref, t, (double)i);
        if (i % 3 == 0) store_batch_metadata(b, "crash", EXPFMT_GAUGE, v, "");
        if (store_batch_commit(b) != 0) _exit(4);
        int64_t committed = i + 1;
        if (write(fd, &committed, sizeof committed) != sizeof committed) _exit(5);
    }
}

static void test_crash_safety(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    uint64_t fixed_refs[CRASH_FIXED] = {0};
    for (int round = 0; round < CRASH_ROUNDS; round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(dir, round, fds[1]);
            _exit(0);
        }
        close(fds[1]);
        /* Wait for the first commit, then kill at a random moment. */
        int64_t committed = 0, c;
        ssize_t got = read(fds[0], &c, sizeof c);
        if (got == (ssize_t)sizeof c) committed = c;
        int delay_ms = 20 + rand() % 300;
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        while ((got = read(fds[0], &c, sizeof c)) == (ssize_t)sizeof c)
            committed = c;
        close(fds[0]);
        if (!WIFSIGNALED(status))
            fail_msg("child exited with %d before being killed", WEXITSTATUS(status));
        print_message("crash round %d (seed %u): killed after %d ms, %lld batches reported "
                      "committed\n",
                      round, seed, delay_ms, (long long)committed);
        assert_true(committed >= 1);

        /* Reopen: every batch reported committed is there, whole. */
        store *s = open_store(dir, 0);
        store_reader *r;
        assert_int_equal(store_reader_open(s, &r), 0);
        int64_t t0 = round * CRASH_ROUND_T;
        size_t present = 0;
        for (int j = 0; j < CRASH_FIXED; j++) {
            labels *ls = crash_fixed_labels(j);
            bool created;
            uint64_t ref = ref_of(s, ls, &created);
            labels_free(ls);
            assert_false(created);
            if (round > 0) assert_int_equal(ref, fixed_refs[j]);
            fixed_refs[j] = ref;
            store_sample *v;
            size_t n;
            assert_int_equal(store_read_samples(r, ref, t0, t0 + CRASH_ROUND_T - 1, &v, &n), 0);
            /* A batch that committed after the last report may be there too,
             * but only whole: the same count for every series. */
            if (j == 0) present = n;
            assert_int_equal(n, present);
            assert_true(n == (size_t)committed || n == (size_t)committed + 1);
            for (size_t i = 0; i < n; i++) {
                assert_int_equal(v[i].t, t0 + (int64_t)i);
                assert_true(bits(v[i].v) == bits(crash_value((int64_t)i, j)));
            }
            mem_free(v);
        }
        /* The series created in each batch exist, each with its sample, and
         * every id is distinct. */
        store_select_result res;
        msel m = {MATCH_EQ, "__name__", "crash_new"};
        assert_int_equal(sel(r, &m, 1, t0, t0 + CRASH_ROUND_T - 1, &res), 0);
        assert_int_equal(res.n, present);
        for (size_t i = 0; i < res.n; i++) {
            assert_int_equal(count_samples(r, res.series[i].ref, t0, t0 + CRASH_ROUND_T - 1), 1);
            for (int j = 0; j < CRASH_FIXED; j++)
                assert_true(res.series[i].ref != fixed_refs[j]);
        }
        store_select_result_free(&res);
        msel all = {MATCH_RE, "__name__", "crash.*"};
        assert_int_equal(sel(r, &all, 1, INT64_MIN, INT64_MAX, &res), 0);
        for (size_t i = 1; i < res.n; i++) {
            for (size_t k = 0; k < i; k++)
                assert_true(res.series[i].ref != res.series[k].ref);
        }
        store_select_result_free(&res);
        store_reader_close(r);
        /* The consumer's rows: exactly this round's batches, whole. */
        store_wal_consumer wc;
        assert_int_equal(store_wal_consumer_get(s, "crash", &wc), 0);
        uint64_t cursor = wc.next_seq;
        store_wal_batch *rows;
        size_t nall;
        assert_int_equal(wal_read_all(s, &cursor, 500, &rows, &nall), present * (CRASH_FIXED + 1));
        assert_int_equal(nall, present);
        for (size_t i = 0; i < nall; i++) {
            assert_int_equal(rows[i].n, CRASH_FIXED + 1);
            assert_int_equal(rows[i].samples[0].t, t0 + (int64_t)i);
            assert_true(bits(rows[i].samples[1].v) == bits(crash_value((int64_t)i, 1)));
        }
        free_all_batches(rows, nall);
        store_close(s);
    }
    tu_tmpdir_free(dir);
}

/* ---- native histograms --------------------------------------------------------------- */

/* An integer histogram: nb positive buckets in two spans, counts growing
 * with k (a counter), the layout shifted by `shift`. */
static void mk_hist(nhist *h, int nb, int64_t k, int32_t shift)
{
    nhist_init(h);
    h->schema = 3;
    h->zero_threshold = 1e-128;
    h->pos_spans = calloc(2, sizeof *h->pos_spans);
    h->n_pos_spans = 2;
    h->pos_spans[0] = (nhist_span){shift, (uint32_t)(nb / 2)};
    h->pos_spans[1] = (nhist_span){2, (uint32_t)(nb - nb / 2)};
    h->n_pos = (size_t)nb;
    h->pos = calloc((size_t)nb, sizeof(double));
    double total = 0;
    for (int i = 0; i < nb; i++) total += h->pos[i] = (double)(k * (i % 5 + 1) + i);
    h->zero_count = (double)k;
    h->count = total + (double)k; /* = the buckets: Validate wants that while sum is not NaN */
    h->sum = (double)k * 1.5;
}

static bool hist_same(const nhist *a, const nhist *b)
{
    if (a->is_float != b->is_float || a->schema != b->schema || a->n_pos != b->n_pos ||
        a->n_neg != b->n_neg || a->n_pos_spans != b->n_pos_spans || bits(a->count) != bits(b->count) ||
        bits(a->sum) != bits(b->sum) || bits(a->zero_count) != bits(b->zero_count) ||
        bits(a->zero_threshold) != bits(b->zero_threshold))
        return false;
    for (size_t i = 0; i < a->n_pos_spans; i++)
        if (a->pos_spans[i].offset != b->pos_spans[i].offset ||
            a->pos_spans[i].length != b->pos_spans[i].length)
            return false;
    for (size_t i = 0; i < a->n_pos; i++)
        if (bits(a->pos[i]) != bits(b->pos[i])) return false;
    return true;
}

/* Adds one histogram sample as its own batch. */
static void add_hist(store *s, uint64_t ref, int64_t t, const nhist *h)
{
    store_batch *b = store_batch_new(s);
    store_batch_add_histogram(b, ref, t, h);
    assert_int_equal(store_batch_commit(b), 0);
}

/* The histogram the series of test_hist_append_read holds at sample i. */
static void expected_hist(nhist *h, int i)
{
    /* A layout change at 150, a counter reset at 200. */
    mk_hist(h, 20, i < 200 ? i : i - 200, i < 150 ? -3 : -2);
}

static void check_hist_series(store_reader *r, uint64_t ref, int n, int64_t mint, int64_t maxt)
{
    store_hsample *v;
    size_t got;
    assert_int_equal(store_read_histograms(r, ref, mint, maxt, &v, &got), 0);
    int lo = mint <= 0 ? 0 : (int)((mint + 14999) / 15000);
    int hi = maxt / 15000 >= n ? n - 1 : (int)(maxt / 15000);
    assert_int_equal(got, (size_t)(hi - lo + 1));
    for (size_t i = 0; i < got; i++) {
        nhist want;
        expected_hist(&want, lo + (int)i);
        assert_int_equal(v[i].t, (int64_t)(lo + (int)i) * 15000);
        assert_true(hist_same(&v[i].h, &want));
        /* A detected reset is recorded, as Prometheus's chunk header. */
        if (lo + (int)i == 200) assert_int_equal(v[i].h.hint, NHIST_HINT_RESET);
        nhist_cleanup(&want);
    }
    store_hsamples_free(v, got);
}

/* A series whose newest sample is a staleness marker (a churned pod, a
 * target gone) has its head chunks closed, written and freed by the next
 * store_maintain, long before head_max_age_ms: series churn must not grow
 * the head (the soak, bench/soak.py, found it growing by each churned
 * series' open chunk for an hour). Live series keep their open chunks, and
 * a stale series that comes back starts a new chunk. */
static void test_stale_head(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    uint64_t live = ref_pairs(s, tu_labels("__name__", "live", NULL));
    uint64_t gone = ref_pairs(s, tu_labels("__name__", "gone", NULL));
    uint64_t hgone = ref_pairs(s, tu_labels("__name__", "hgone", NULL));
    append_run(s, live, 0, 1000, 20, 1);
    append_run(s, gone, 0, 1000, 20, 1);
    for (int i = 0; i < 20; i++) {
        nhist h;
        mk_hist(&h, 8, i + 1, 0);
        add_hist(s, hgone, i * 1000, &h);
        nhist_cleanup(&h);
    }
    store_stats before;
    store_get_stats(s, &before);
    assert_int_equal(before.head_chunks, 3);

    /* Maintenance without staleness closes nothing (head age is an hour). */
    assert_int_equal(store_maintain(s, 0), 0);
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.head_chunks, 3);
    assert_int_equal(st.chunks_persisted, 0);

    store_batch *b = store_batch_new(s);
    store_batch_add(b, gone, 20000, strutil_stale_nan());
    store_batch_add(b, hgone, 20000, strutil_stale_nan()); /* becomes the histogram marker */
    store_batch_add(b, live, 20000, 20000);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(store_maintain(s, 0), 0);
    store_get_stats(s, &st);
    assert_int_equal(st.head_chunks, 1); /* only the live series' */
    assert_int_equal(st.chunks_persisted, 2);
    assert_true(st.head_memory_bytes < before.head_memory_bytes / 2);

    /* Everything is still read, the markers included. */
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(count_samples(r, gone, INT64_MIN, INT64_MAX), 21);
    assert_int_equal(count_samples(r, live, INT64_MIN, INT64_MAX), 21);
    store_hsample *hv;
    size_t hn;
    assert_int_equal(store_read_histograms(r, hgone, INT64_MIN, INT64_MAX, &hv, &hn), 0);
    assert_int_equal(hn, 21);
    assert_true(nhist_is_stale(&hv[20].h));
    store_hsamples_free(hv, hn);
    store_reader_close(r);

    /* The series comes back: a new chunk, nothing lost. */
    append_run(s, gone, 30000, 1000, 5, 1);
    store_get_stats(s, &st);
    assert_int_equal(st.head_chunks, 2);
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(count_samples(r, gone, INT64_MIN, INT64_MAX), 26);
    store_reader_close(r);
    store_close(s);

    /* And after a restart. */
    s = open_store(dir, 0);
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(count_samples(r, gone, INT64_MIN, INT64_MAX), 26);
    assert_int_equal(count_samples(r, live, INT64_MIN, INT64_MAX), 21);
    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

static void test_hist_append_read(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    uint64_t ref = ref_pairs(s, tu_labels("__name__", "lat", NULL));
    uint64_t fref = ref_pairs(s, tu_labels("__name__", "up", NULL));
    enum { N = 300 };
    for (int i = 0; i < N; i++) {
        nhist h;
        expected_hist(&h, i);
        store_batch *b = store_batch_new(s);
        store_batch_add_histogram(b, ref, (int64_t)i * 15000, &h);
        store_batch_add(b, fref, (int64_t)i * 15000, 1);
        assert_int_equal(store_batch_commit(b), 0);
        nhist_cleanup(&h);
    }
    /* An invalid histogram is counted and dropped. */
    nhist bad;
    mk_hist(&bad, 4, 1, 0);
    bad.pos_spans[1].length = 9;
    add_hist(s, ref, (int64_t)N * 15000, &bad);
    nhist_cleanup(&bad);
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.histogram_samples_appended, N);
    assert_int_equal(st.samples_appended, 2 * N);
    assert_int_equal(st.invalid_histograms, 1);
    assert_true(st.chunks_persisted >= 4); /* 2 float chunks, >= 2 histogram chunks written */
    assert_int_equal(st.head_chunks, 2);   /* one float, one histogram */
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    /* Chunk rows and the head. */
    check_hist_series(r, ref, N, INT64_MIN, INT64_MAX);
    check_hist_series(r, ref, N, 100 * 15000 + 1, 250 * 15000);
    /* Histograms are not float samples, and the float series has no
     * histograms. */
    assert_int_equal(count_samples(r, ref, INT64_MIN, INT64_MAX), 0);
    assert_int_equal(count_samples(r, fref, INT64_MIN, INT64_MAX), N);
    store_hsample *hv;
    size_t hn;
    assert_int_equal(store_read_histograms(r, fref, INT64_MIN, INT64_MAX, &hv, &hn), 0);
    assert_int_equal(hn, 0);
    assert_null(hv);
    /* Selected by its histogram samples' range. */
    ASSERT_SEL(r, 299 * 15000, 400 * 15000, "lat up", {MATCH_RE, "__name__", "lat|up"});
    ASSERT_SEL(r, 300 * 15000, 400 * 15000, "", {MATCH_RE, "__name__", "lat|up"});
    store_reader_close(r);
    store_close(s);
    /* After a clean close everything comes from chunk rows. */
    s = open_store(dir, 0);
    store_get_stats(s, &st);
    assert_int_equal(st.replayed_samples, 0);
    assert_int_equal(store_reader_open(s, &r), 0);
    check_hist_series(r, ref, N, INT64_MIN, INT64_MAX);
    store_reader_close(r);
    /* Out of order and duplicate after the restart. */
    nhist h;
    expected_hist(&h, N - 1);
    add_hist(s, ref, (int64_t)(N - 1) * 15000, &h);
    add_hist(s, ref, (int64_t)(N - 2) * 15000, &h);
    store_get_stats(s, &st);
    assert_int_equal(st.duplicate_samples, 1);
    assert_int_equal(st.out_of_order_samples, 1);
    nhist_cleanup(&h);
    store_close(s);
    buf report;
    buf_init(&report, BUF_UNLIMITED);
    assert_int_equal(store_check(dir, &report), 0);
    assert_non_null(strstr(buf_cstr(&report), "0 problem(s)"));
    buf_cleanup(&report);
    tu_tmpdir_free(dir);
}

/* Floats and histograms in one series: one newest timestamp for both
 * kinds, and a float staleness marker after a histogram is stored as a
 * histogram staleness marker. */
static void test_hist_mixed(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    uint64_t ref = ref_pairs(s, tu_labels("__name__", "mixed", NULL));
    for (int i = 1; i <= 30; i++) {
        store_batch *b = store_batch_new(s);
        if (i > 10 && i <= 20) {
            nhist h;
            mk_hist(&h, 6, i, 0);
            store_batch_add_histogram(b, ref, i * 1000, &h);
            nhist_cleanup(&h);
        } else {
            store_batch_add(b, ref, i * 1000, i);
        }
        assert_int_equal(store_batch_commit(b), 0);
    }
    store_stats st;
    /* A histogram older than the newest float: out of order; a float at a
     * histogram's timestamp: out of order too. */
    nhist h;
    mk_hist(&h, 6, 5, 0);
    add_hist(s, ref, 25 * 1000, &h);
    nhist_cleanup(&h);
    store_batch *b = store_batch_new(s);
    store_batch_add(b, ref, 30 * 1000, 30); /* duplicate */
    store_batch_add(b, ref, 30 * 1000, 31); /* out of order */
    assert_int_equal(store_batch_commit(b), 0);
    store_get_stats(s, &st);
    assert_int_equal(st.out_of_order_samples, 2);
    assert_int_equal(st.duplicate_samples, 1);
    /* Float staleness after a float: a float marker. */
    b = store_batch_new(s);
    store_batch_add(b, ref, 31 * 1000, strutil_stale_nan());
    assert_int_equal(store_batch_commit(b), 0);
    /* Histogram at 40, then a float staleness marker at 41 (and the same
     * marker again: a duplicate). */
    mk_hist(&h, 6, 40, 0);
    add_hist(s, ref, 40 * 1000, &h);
    /* A float at a histogram's timestamp: out of order, not duplicate. */
    b = store_batch_new(s);
    store_batch_add(b, ref, 40 * 1000, 40);
    store_batch_add(b, ref, 41 * 1000, strutil_stale_nan());
    store_batch_add(b, ref, 41 * 1000, strutil_stale_nan());
    assert_int_equal(store_batch_commit(b), 0);
    store_get_stats(s, &st);
    assert_int_equal(st.out_of_order_samples, 3);
    assert_int_equal(st.duplicate_samples, 2);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_sample *v;
    size_t n;
    assert_int_equal(store_read_samples(r, ref, INT64_MIN, INT64_MAX, &v, &n), 0);
    assert_int_equal(n, 21);
    for (size_t i = 0; i < 20; i++) {
        int64_t want = i < 10 ? (int64_t)i + 1 : (int64_t)i + 11;
        assert_int_equal(v[i].t, want * 1000);
        assert_true(v[i].v == (double)want);
    }
    assert_int_equal(v[20].t, 31000);
    assert_true(strutil_is_stale_nan(v[20].v));
    mem_free(v);
    store_hsample *hv;
    assert_int_equal(store_read_histograms(r, ref, INT64_MIN, INT64_MAX, &hv, &n), 0);
    assert_int_equal(n, 12);
    for (size_t i = 0; i < 10; i++) {
        nhist want;
        mk_hist(&want, 6, (int64_t)i + 11, 0);
        assert_int_equal(hv[i].t, ((int64_t)i + 11) * 1000);
        assert_true(hist_same(&hv[i].h, &want));
        nhist_cleanup(&want);
    }
    assert_int_equal(hv[10].t, 40000);
    assert_true(hist_same(&hv[10].h, &h));
    assert_int_equal(hv[11].t, 41000);
    assert_true(nhist_is_stale(&hv[11].h));
    store_hsamples_free(hv, n);
    nhist_cleanup(&h);
    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* SIGKILL-style reopen: histogram samples come back from the write-ahead
 * table, including one older than a float chunk written meanwhile (replay
 * keeps a watermark per kind). */
static void test_hist_replay(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    labels *lm = tu_labels("__name__", "m", NULL), *lh = tu_labels("__name__", "h", NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store_options o = {.path = dir};
        store *s = NULL;
        if (store_open(&s, &o, NULL) < 0) _exit(10);
        uint64_t rm, rh;
        store_series_ref(s, lm, &rm, NULL);
        store_series_ref(s, lh, &rh, NULL);
        nhist h;
        mk_hist(&h, 8, 1, 0);
        store_batch *b = store_batch_new(s);
        store_batch_add_histogram(b, rm, 5, &h);
        if (store_batch_commit(b) < 0) _exit(11);
        nhist_cleanup(&h);
        /* A float chunk of m closes and is written. */
        for (int i = 0; i < 130; i++) {
            b = store_batch_new(s);
            store_batch_add(b, rm, 10 + i, i);
            if (i < 50) {
                mk_hist(&h, 8, i, 0);
                store_batch_add_histogram(b, rh, (int64_t)i * 1000, &h);
                nhist_cleanup(&h);
            }
            if (store_batch_commit(b) < 0) _exit(11);
        }
        if (store_maintain(s, 0) < 0) _exit(13);
        store_stats st;
        store_get_stats(s, &st);
        if (st.chunks_persisted != 1) _exit(14);
        /* A float staleness marker on h: a histogram marker. */
        b = store_batch_new(s);
        store_batch_add(b, rh, 50000, strutil_stale_nan());
        if (store_batch_commit(b) < 0) _exit(11);
        _exit(0); /* no store_close */
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    for (int pass = 0; pass < 2; pass++) {
        store *s = open_store(dir, 0);
        store_stats st;
        store_get_stats(s, &st);
        /* m: the histogram and 10 floats; h: 50 histograms and the marker. */
        assert_int_equal(st.replayed_samples, pass == 0 ? 1 + 10 + 51 : 0);
        uint64_t rm = ref_of(s, lm, NULL), rh = ref_of(s, lh, NULL);
        store_reader *r;
        assert_int_equal(store_reader_open(s, &r), 0);
        assert_int_equal(count_samples(r, rm, INT64_MIN, INT64_MAX), 130);
        store_hsample *hv;
        size_t n;
        assert_int_equal(store_read_histograms(r, rm, INT64_MIN, INT64_MAX, &hv, &n), 0);
        assert_int_equal(n, 1 + (size_t)pass); /* pass 1: also the one added at 140 */
        assert_int_equal(hv[0].t, 5);
        nhist want;
        mk_hist(&want, 8, 1, 0);
        assert_true(hist_same(&hv[0].h, &want));
        nhist_cleanup(&want);
        store_hsamples_free(hv, n);
        assert_int_equal(store_read_histograms(r, rh, INT64_MIN, INT64_MAX, &hv, &n), 0);
        assert_int_equal(n, 51);
        for (size_t i = 0; i < 50; i++) {
            mk_hist(&want, 8, (int64_t)i, 0);
            assert_int_equal(hv[i].t, (int64_t)i * 1000);
            assert_true(hist_same(&hv[i].h, &want));
            nhist_cleanup(&want);
        }
        assert_true(nhist_is_stale(&hv[50].h));
        store_hsamples_free(hv, n);
        assert_int_equal(count_samples(r, rh, INT64_MIN, INT64_MAX), 0);
        store_reader_close(r);
        /* The newest timestamp survived the replay: m's is the float at 139. */
        nhist h;
        mk_hist(&h, 8, 2, 0);
        add_hist(s, rm, 139, &h);
        add_hist(s, rm, 140 + pass, &h);
        nhist_cleanup(&h);
        store_get_stats(s, &st);
        if (st.out_of_order_samples != 1) fail_msg("pass %d: %d out of order", pass, (int)st.out_of_order_samples);
        store_close(s);
    }
    buf report;
    buf_init(&report, BUF_UNLIMITED);
    assert_int_equal(store_check(dir, &report), 0);
    buf_cleanup(&report);
    labels_free(lm);
    labels_free(lh);
    tu_tmpdir_free(dir);
}

/* Backfill of histograms, then retention dropping their oldest chunks;
 * store_check decodes histogram chunks and finds a damaged one. */
static void test_hist_import_retention(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 1000);
    enum { N = 500 };
    store_hsample *in = calloc(N, sizeof *in);
    for (int i = 0; i < N; i++) {
        in[i].t = (int64_t)i * 60000;
        mk_hist(&in[i].h, 10, i, 0);
    }
    labels *ls = tu_labels("__name__", "imported", NULL);
    store_import *im;
    assert_int_equal(store_import_begin(s, &im), 0);
    /* Unsorted or invalid: refused whole. */
    int64_t t1 = in[1].t;
    in[1].t = in[0].t;
    assert_int_equal(store_import_histograms(im, ls, in, N), -EINVAL);
    in[1].t = t1;
    in[7].h.pos[0] = -1;
    assert_int_equal(store_import_histograms(im, ls, in, N), -EINVAL);
    in[7].h.pos[0] = 7;
    assert_int_equal(store_import_histograms(im, ls, in, N), 0);
    assert_int_equal(store_import_finish(im), 0);
    uint64_t ref = ref_of(s, ls, NULL);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_hsample *v;
    size_t n;
    assert_int_equal(store_read_histograms(r, ref, INT64_MIN, INT64_MAX, &v, &n), 0);
    assert_int_equal(n, N);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i].t, in[i].t);
        assert_true(hist_same(&v[i].h, &in[i].h));
    }
    store_hsamples_free(v, n);
    store_reader_close(r);
    /* Live samples must be newer than what was imported. */
    add_hist(s, ref, in[N - 1].t, &in[N - 1].h);
    add_hist(s, ref, in[N - 1].t + 60000, &in[N - 1].h);
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.duplicate_samples + st.out_of_order_samples, 1);
    /* Retention: everything older than sample 300's time goes (whole
     * chunks: the chunk holding 300 stays). */
    assert_int_equal(store_apply_retention(s, 300 * 60000 + 1000), 0); /* retention 1 s */
    store_get_stats(s, &st);
    assert_true(st.retention_deleted_chunks > 0);
    assert_true(st.retention_deleted_samples > 0 && st.retention_deleted_samples <= 300);
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(store_read_histograms(r, ref, INT64_MIN, INT64_MAX, &v, &n), 0);
    assert_int_equal(n, N + 1 - st.retention_deleted_samples);
    assert_true(v[0].t <= 300 * 60000);
    assert_int_equal(v[n - 1].t, in[N - 1].t + 60000);
    store_hsamples_free(v, n);
    store_reader_close(r);
    store_close(s);
    buf report;
    buf_init(&report, BUF_UNLIMITED);
    assert_int_equal(store_check(dir, &report), 0);
    buf_reset(&report);
    /* Damage one histogram chunk's bytes: store_check reports it. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s/sidewatch.db \"UPDATE chunks SET data = substr(data, 1, length(data) - 3)"
             " WHERE id = (SELECT min(id) FROM chunks WHERE enc >= 2)\"",
             dir);
    if (system("sqlite3 -version >/dev/null 2>&1") == 0) {
        assert_int_equal(system(cmd), 0);
        assert_int_equal(store_check(dir, &report), -EIO);
        assert_non_null(strstr(buf_cstr(&report), "does not decode"));
    }
    buf_cleanup(&report);
    for (int i = 0; i < N; i++) nhist_cleanup(&in[i].h);
    free(in);
    labels_free(ls);
    tu_tmpdir_free(dir);
}

/* ---- the write-ahead log for remote write --------------------------------------------- */

static int64_t test_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads every row from *cursor on (in calls of max_rows), checks there is
 * no gap, and returns the samples in *out (caller frees with
 * store_wal_batches_free) and their count; *cursor moves past them. */
static size_t wal_read_all(store *s, uint64_t *cursor, size_t max_rows, store_wal_batch **all,
                           size_t *nall)
{
    size_t samples = 0, cap = 0;
    *all = NULL;
    *nall = 0;
    for (;;) {
        store_wal_batch *b;
        size_t n;
        uint64_t first;
        assert_int_equal(store_wal_read(s, *cursor, max_rows, &b, &n, &first), 0);
        if (n == 0) {
            assert_null(b);
            assert_int_equal(first, *cursor);
            break;
        }
        assert_true(n <= max_rows);
        assert_int_equal(first, *cursor);
        if (*nall + n > cap) {
            cap = (*nall + n) * 2;
            *all = realloc(*all, cap * sizeof **all);
        }
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(b[i].seq, *cursor + i);
            samples += b[i].n;
            (*all)[(*nall)++] = b[i];
        }
        *cursor += n;
        mem_free(b); /* the samples moved to *all */
    }
    return samples;
}

static void free_all_batches(store_wal_batch *all, size_t n)
{
    if (!all) return;
    store_wal_batch *copy = mem_malloc((n ? n : 1) * sizeof *copy);
    memcpy(copy, all, n * sizeof *copy);
    store_wal_batches_free(copy, n);
    free(all);
}

/* Rows read back in order from a cursor: sequence numbers, commit times,
 * references, timestamps and bit-exact values (integers, fractions, the
 * staleness marker); max_rows limits a read; a gap after released rows is
 * reported by first_seq; series labels by reference. */
static void test_wal_read(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    labels *la = tu_labels("__name__", "a", "job", "x", NULL),
           *lb = tu_labels("__name__", "b", NULL);
    uint64_t ra = ref_of(s, la, NULL), rb = ref_of(s, lb, NULL);
    uint64_t start = store_wal_next_seq(s);
    assert_true(start >= 1);
    store_wal_batch *b;
    size_t n;
    uint64_t first;
    assert_int_equal(store_wal_read(s, start, 10, &b, &n, &first), 0);
    assert_int_equal(n, 0);
    assert_int_equal(first, start);
    assert_int_equal(store_wal_consumer_set(s, "r", start, 3600000, NULL), 0);
    int64_t before = test_wall_ms();
    const double vals[] = {1, 0.25, -7, 1e300};
    for (int i = 0; i < 20; i++) {
        store_batch *bt = store_batch_new(s);
        store_batch_add(bt, ra, i * 1000, i == 5 ? strutil_stale_nan() : vals[i % 4] + i);
        if (i % 2) store_batch_add(bt, rb, i * 1000 + 1, -vals[i % 4]);
        store_batch_add(bt, ra, i * 1000, 99); /* a duplicate timestamp: not in the row */
        assert_int_equal(store_batch_commit(bt), 0);
    }
    /* A batch with nothing accepted writes no row. */
    store_batch *bt = store_batch_new(s);
    store_batch_add(bt, ra, 0, 1);
    assert_int_equal(store_batch_commit(bt), 0);
    int64_t after = test_wall_ms();
    assert_int_equal(store_wal_next_seq(s), start + 20);

    uint64_t cursor = start;
    store_wal_batch *all;
    size_t nall;
    assert_int_equal(wal_read_all(s, &cursor, 3, &all, &nall), 20 + 10);
    assert_int_equal(nall, 20);
    for (int i = 0; i < 20; i++) {
        const store_wal_batch *x = &all[i];
        assert_true(x->commit_ms >= before && x->commit_ms <= after);
        if (i) assert_true(x->commit_ms >= all[i - 1].commit_ms);
        assert_int_equal(x->n, i % 2 ? 2 : 1);
        assert_int_equal(x->samples[0].ref, ra);
        assert_int_equal(x->samples[0].t, i * 1000);
        assert_null(x->samples[0].h);
        double want = i == 5 ? strutil_stale_nan() : vals[i % 4] + i;
        assert_true(bits(x->samples[0].v) == bits(want));
        if (i % 2) {
            assert_int_equal(x->samples[1].ref, rb);
            assert_int_equal(x->samples[1].t, i * 1000 + 1);
            assert_true(bits(x->samples[1].v) == bits(-vals[i % 4]));
        }
    }
    free_all_batches(all, nall);
    /* From the middle, and past the end. */
    assert_int_equal(store_wal_read(s, start + 18, 10, &b, &n, &first), 0);
    assert_int_equal(n, 2);
    assert_int_equal(first, start + 18);
    assert_int_equal(b[1].seq, start + 19);
    store_wal_batches_free(b, n);
    assert_int_equal(store_wal_read(s, start + 25, 10, &b, &n, &first), 0);
    assert_int_equal(n, 0);
    assert_int_equal(first, start + 25);

    /* Labels by reference. */
    labels *got = store_series_labels(s, rb);
    assert_non_null(got);
    assert_int_equal(labels_compare(got, lb), 0);
    labels_free(got);
    got = store_series_labels(s, ra);
    assert_int_equal(labels_compare(got, la), 0);
    labels_free(got);
    assert_null(store_series_labels(s, 0));
    assert_null(store_series_labels(s, rb + 1000));

    /* Without the consumer, a clean close releases every row: reading from
     * the old cursor reports the gap up to the next row. */
    assert_int_equal(store_wal_consumer_remove(s, "r"), 0);
    assert_int_equal(store_wal_consumer_remove(s, "r"), 0); /* unknown: not an error */
    store_close(s);
    s = open_store(dir, 0);
    assert_int_equal(store_wal_next_seq(s), start + 20);
    assert_int_equal(store_wal_read(s, start, 10, &b, &n, &first), 0);
    assert_int_equal(n, 0);
    assert_int_equal(first, start + 20);
    append_run(s, ra, 100000, 1000, 2, 1);
    assert_int_equal(store_wal_read(s, start, 10, &b, &n, &first), 0);
    assert_int_equal(n, 2);
    assert_int_equal(first, start + 20);
    assert_int_equal(b[0].seq, start + 20);
    assert_int_equal(b[0].samples[0].t, 100000);
    store_wal_batches_free(b, n);
    store_wal_consumer c;
    assert_int_equal(store_wal_consumer_get(s, "r", &c), -ENOENT);
    assert_int_equal(store_wal_consumer_set(s, "", 1, 1000, NULL), -EINVAL);
    assert_int_equal(store_wal_consumer_set(s, "x", 1, 0, NULL), -EINVAL);
    store_close(s);
    labels_free(la);
    labels_free(lb);
    tu_tmpdir_free(dir);
}

static store_wal_consumer consumer(store *s, const char *name)
{
    store_wal_consumer c;
    assert_int_equal(store_wal_consumer_get(s, name, &c), 0);
    return c;
}

static uint64_t wal_rows(store *s)
{
    store_stats st;
    store_get_stats(s, &st);
    return st.wal_rows;
}

/* Rows stay while a consumer has not read them, although their samples
 * are in chunk rows; moving its cursor releases them at the next
 * maintenance; the release point is the lowest cursor of all consumers;
 * removing a consumer releases its rows; reads see the kept rows and the
 * store's samples are not doubled. */
static void test_wal_consumers_hold(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    uint64_t ra = ref_pairs(s, tu_labels("__name__", "a", NULL));
    uint64_t start = store_wal_next_seq(s);
    assert_int_equal(store_wal_consumer_set(s, "c1", start, 3600000, NULL), 0);
    append_run(s, ra, 0, 1000, 250, 1);
    assert_int_equal(wal_rows(s), 250);
    assert_int_equal(store_maintain(s, test_wall_ms()), 0);
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.chunks_persisted, 2); /* rows start..start+239 are in chunks */
    assert_int_equal(st.wal_rows, 250);       /* but c1 has not read them */
    store_wal_batch *b;
    size_t n;
    uint64_t first;
    assert_int_equal(store_wal_read(s, start, 1000, &b, &n, &first), 0);
    assert_int_equal(n, 250);
    assert_int_equal(first, start);
    for (size_t i = 0; i < n; i++) assert_int_equal(b[i].samples[0].t, (int64_t)i * 1000);
    store_wal_batches_free(b, n);

    assert_int_equal(store_wal_consumer_set(s, "c1", start + 100, 3600000, NULL), 0);
    assert_int_equal(consumer(s, "c1").next_seq, start + 100);
    assert_int_equal(wal_rows(s), 250); /* released at the next maintenance */
    assert_int_equal(store_maintain(s, test_wall_ms()), 0);
    assert_int_equal(wal_rows(s), 150);
    /* A second consumer behind the release point sees a gap. */
    assert_int_equal(store_wal_consumer_set(s, "c2", start + 50, 3600000, NULL), 0);
    assert_int_equal(store_wal_read(s, start + 50, 10, &b, &n, &first), 0);
    assert_int_equal(first, start + 100);
    assert_int_equal(n, 10);
    assert_int_equal(b[0].seq, start + 100);
    assert_int_equal(b[0].samples[0].t, 100000);
    store_wal_batches_free(b, n);
    /* The lowest cursor holds: c2 at +200, c1 at +245 (past the head's pin
     * at +240). */
    assert_int_equal(store_wal_consumer_set(s, "c2", start + 200, 3600000, NULL), 0);
    assert_int_equal(store_wal_consumer_set(s, "c1", start + 245, 3600000, NULL), 0);
    assert_int_equal(store_maintain(s, test_wall_ms()), 0);
    assert_int_equal(wal_rows(s), 50);
    assert_int_equal(store_wal_consumer_remove(s, "c2"), 0);
    assert_int_equal(store_wal_consumer_get(s, "c2", &(store_wal_consumer){0}), -ENOENT);
    assert_int_equal(wal_rows(s), 50);
    assert_int_equal(store_maintain(s, test_wall_ms()), 0);
    assert_int_equal(wal_rows(s), 10); /* the head's own rows */
    /* Slots of released rows are reused: appending more makes no new rows
     * in the table beyond what is needed (the spare slots cover them). */
    long long slots = db_int(dir, "SELECT count(*) FROM wal");
    append_run(s, ra, 250000, 1000, 20, 1);
    assert_int_equal(wal_rows(s), 30);
    if (slots >= 0) assert_true(db_int(dir, "SELECT count(*) FROM wal") == slots);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(count_samples(r, ra, INT64_MIN, INT64_MAX), 270);
    store_reader_close(r);
    /* The truncation a commit does every 512 commits respects consumers
     * too: 600 more rows, all kept (the 30 the head needed before are in
     * chunk rows by then). */
    assert_int_equal(store_wal_consumer_set(s, "c1", store_wal_next_seq(s), 3600000, NULL), 0);
    append_run(s, ra, 270000, 1000, 600, 1);
    assert_int_equal(wal_rows(s), 600);
    assert_int_equal(store_wal_consumer_remove(s, "c1"), 0);
    append_run(s, ra, 870000, 1000, 512, 1);
    assert_true(wal_rows(s) < 600); /* without it, the next truncation releases them */
    store_close(s);
    tu_tmpdir_free(dir);
}

/* A consumer that lags more than its max_lag_ms: store_maintain moves its
 * cursor past the rows committed before now - max_lag, counts their
 * samples as dropped and releases them; newer rows stay. */
static void test_wal_max_lag(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    uint64_t refs[10];
    for (int i = 0; i < 10; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        refs[i] = ref_pairs(s, tu_labels("__name__", "s", "i", v, NULL));
    }
    uint64_t start = store_wal_next_seq(s);
    assert_int_equal(store_wal_consumer_set(s, "slow", start, 1000, NULL), 0);
    assert_int_equal(store_wal_consumer_set(s, "fast", start + 10, 1000, NULL), 0);
    /* Ten rows of 120 samples (each closes its series' chunk), the second
     * five 30 ms after the first. */
    for (int i = 0; i < 10; i++) {
        if (i == 5) nanosleep(&(struct timespec){0, 30000000}, NULL);
        append_run(s, refs[i], 0, 1000, 120, 120);
    }
    assert_int_equal(store_wal_next_seq(s), start + 10);
    store_wal_batch *b;
    size_t n;
    uint64_t first;
    assert_int_equal(store_wal_read(s, start, 10, &b, &n, &first), 0);
    assert_int_equal(n, 10);
    assert_true(b[4].commit_ms < b[5].commit_ms);
    int64_t second = b[5].commit_ms;
    store_wal_batches_free(b, n);
    /* Within the lag: nothing moves. */
    assert_int_equal(store_maintain(s, second), 0);
    assert_int_equal(consumer(s, "slow").next_seq, start);
    assert_int_equal(wal_rows(s), 10);
    /* The first five rows are older than the lag. */
    assert_int_equal(store_maintain(s, second + 1000), 0);
    store_wal_consumer c = consumer(s, "slow");
    assert_int_equal(c.next_seq, start + 5);
    assert_int_equal(c.dropped_samples, 5 * 120);
    assert_int_equal(c.max_lag_ms, 1000);
    assert_int_equal(consumer(s, "fast").dropped_samples, 0);
    assert_int_equal(wal_rows(s), 5);
    assert_int_equal(store_wal_read(s, start, 10, &b, &n, &first), 0);
    assert_int_equal(first, start + 5);
    assert_int_equal(n, 5);
    store_wal_batches_free(b, n);
    /* Much later: everything. */
    assert_int_equal(store_maintain(s, second + 3600000), 0);
    c = consumer(s, "slow");
    assert_int_equal(c.next_seq, start + 10);
    assert_int_equal(c.dropped_samples, 10 * 120);
    assert_int_equal(wal_rows(s), 0);
    /* The counts are durable. */
    store_close(s);
    s = open_store(dir, 0);
    c = consumer(s, "slow");
    assert_int_equal(c.next_seq, start + 10);
    assert_int_equal(c.dropped_samples, 10 * 120);
    /* Setting the cursor keeps the dropped count. */
    assert_int_equal(store_wal_consumer_set(s, "slow", start + 10, 5000, NULL), 0);
    c = consumer(s, "slow");
    assert_int_equal(c.dropped_samples, 10 * 120);
    assert_int_equal(c.max_lag_ms, 5000);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* Consumers and their rows survive a clean close and a process that dies
 * without closing; replay at open appends only the head's rows again (the
 * rows kept for consumers are in chunk rows: no sample twice). */
static void test_wal_consumers_durable(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    labels *la = tu_labels("__name__", "a", NULL);
    uint64_t start;
    {
        store *s = open_store(dir, 0);
        start = store_wal_next_seq(s);
        store_close(s);
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store_options o = {.path = dir};
        store *s = NULL;
        if (store_open(&s, &o, NULL) < 0) _exit(10);
        uint64_t ra;
        store_series_ref(s, la, &ra, NULL);
        if (store_wal_consumer_set(s, "k", start, 3600000, NULL) < 0) _exit(11);
        if (store_wal_consumer_set(s, "k2", start + 150, 3600000, NULL) < 0) _exit(11);
        if (store_wal_consumer_set(s, "lag", start + 240, 1, NULL) < 0) _exit(11);
        for (int i = 0; i < 250; i++) {
            store_batch *b = store_batch_new(s);
            store_batch_add(b, ra, i * 1000, i);
            if (store_batch_commit(b) < 0) _exit(12);
        }
        if (store_maintain(s, 0) < 0) _exit(13);
        if (store_wal_consumer_set(s, "k", start + 100, 3600000, NULL) < 0) _exit(11);
        if (store_maintain(s, 0) < 0) _exit(13);
        for (int i = 250; i < 255; i++) {
            store_batch *b = store_batch_new(s);
            store_batch_add(b, ra, i * 1000, i);
            if (store_batch_commit(b) < 0) _exit(12);
        }
        /* "lag" (1 ms) loses rows +240..+254 (15 samples); the others keep. */
        if (store_maintain(s, test_wall_ms() + 60000) < 0) _exit(13);
        store_stats st;
        store_get_stats(s, &st);
        if (st.wal_rows != 155) _exit(14);
        _exit(0); /* no store_close */
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    for (int pass = 0; pass < 2; pass++) {
        store *s = open_store(dir, 0);
        store_stats st;
        store_get_stats(s, &st);
        /* pass 0: the open chunk's 10 + 5 rows replayed, not the 140 kept
         * ones; pass 1: after a clean close, nothing. */
        assert_int_equal(st.replayed_samples, pass == 0 ? 15 : 0);
        assert_int_equal(st.wal_rows, 155);
        assert_int_equal(store_wal_next_seq(s), start + 255);
        store_wal_consumer c = consumer(s, "k");
        assert_int_equal(c.next_seq, start + 100);
        assert_int_equal(c.max_lag_ms, 3600000);
        assert_int_equal(c.dropped_samples, 0);
        assert_int_equal(consumer(s, "k2").next_seq, start + 150);
        c = consumer(s, "lag");
        assert_int_equal(c.next_seq, start + 255);
        assert_int_equal(c.dropped_samples, 15);
        uint64_t ra = ref_of(s, la, NULL);
        store_reader *r;
        assert_int_equal(store_reader_open(s, &r), 0);
        assert_int_equal(count_samples(r, ra, INT64_MIN, INT64_MAX), 255);
        store_reader_close(r);
        uint64_t cursor = start + 100;
        store_wal_batch *all;
        size_t nall;
        assert_int_equal(wal_read_all(s, &cursor, 64, &all, &nall), 155);
        for (size_t i = 0; i < nall; i++) {
            assert_int_equal(all[i].samples[0].ref, ra);
            assert_int_equal(all[i].samples[0].t, (int64_t)(100 + i) * 1000);
            assert_true(all[i].samples[0].v == (double)(100 + i));
            assert_true(all[i].commit_ms > 0);
        }
        free_all_batches(all, nall);
        store_close(s);
    }
    buf report;
    buf_init(&report, BUF_UNLIMITED);
    assert_int_equal(store_check(dir, &report), 0);
    assert_non_null(strstr(buf_cstr(&report), "155 write-ahead rows"));
    buf_cleanup(&report);
    labels_free(la);
    tu_tmpdir_free(dir);
}

/* Rows kept for a consumer after retention deleted the chunks that held
 * their samples: a process that dies without closing must not bring those
 * samples back at replay. */
static void test_wal_kept_rows_after_retention(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    labels *la = tu_labels("__name__", "a", NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store_options o = {.path = dir, .retention_ms = 10000};
        store *s = NULL;
        if (store_open(&s, &o, NULL) < 0) _exit(10);
        uint64_t ra;
        store_series_ref(s, la, &ra, NULL);
        if (store_wal_consumer_set(s, "k", store_wal_next_seq(s), 3600000, NULL) < 0) _exit(11);
        for (int i = 0; i < 250; i++) {
            store_batch *b = store_batch_new(s);
            store_batch_add(b, ra, i * 1000, i);
            if (store_batch_commit(b) < 0) _exit(12);
        }
        /* Writes both closed chunks, then retention deletes them (their
         * samples are decades old). */
        if (store_maintain(s, test_wall_ms()) < 0) _exit(13);
        store_stats st;
        store_get_stats(s, &st);
        if (st.retention_deleted_samples != 240 || st.wal_rows != 250) _exit(14);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    store *s = open_store(dir, 10000);
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.replayed_samples, 10);
    assert_int_equal(st.wal_rows, 250);
    uint64_t ra = ref_of(s, la, NULL);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(count_samples(r, ra, INT64_MIN, INT64_MAX), 10);
    store_reader_close(r);
    store_close(s);
    labels_free(la);
    tu_tmpdir_free(dir);
}

/* Rows written by schema version 5 (12-byte slot header, no commit time)
 * after the upgrade: replayed as before, readable with commit_ms 0, and
 * counted as committed at open for max_lag. */
static void test_wal_old_rows(void **state)
{
    (void)state;
    if (system("sqlite3 -version >/dev/null 2>&1") != 0) {
        print_message("SKIPPED: the sqlite3 shell is not installed\n");
        skip();
    }
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    labels *la = tu_labels("__name__", "a", NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        store_options o = {.path = dir};
        store *s = NULL;
        if (store_open(&s, &o, NULL) < 0) _exit(10);
        uint64_t ra;
        store_series_ref(s, la, &ra, NULL);
        for (int i = 0; i < 5; i++) {
            store_batch *b = store_batch_new(s);
            store_batch_add(b, ra, i * 1000, i + 0.5);
            if (store_batch_commit(b) < 0) _exit(12);
        }
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* Back to version 5: 12-byte headers (same row, same blob length), no
     * consumers table. */
    char cmd[4600];
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s/sidewatch.db \"UPDATE wal SET data = CAST(substr(data, 1, 11) || x'00' ||"
             " substr(data, 21) || zeroblob(8) AS BLOB) WHERE substr(data, 12, 1) = x'80';"
             " DROP TABLE wal_consumers; DROP TABLE exemplars; PRAGMA user_version=5;\"",
             dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(db_int(dir, "SELECT count(*) FROM wal WHERE substr(data, 12, 1) = x'00'"), 5);
    int64_t opened = test_wall_ms();
    store *s = open_store(dir, 0);
    store_stats st;
    store_get_stats(s, &st);
    assert_int_equal(st.replayed_samples, 5);
    assert_int_equal(st.wal_rows, 5);
    uint64_t ra = ref_of(s, la, NULL);
    uint64_t start = store_wal_next_seq(s) - 5;
    assert_int_equal(store_wal_consumer_set(s, "old", start, 1000, NULL), 0);
    store_wal_batch *b;
    size_t n;
    uint64_t first;
    assert_int_equal(store_wal_read(s, start, 10, &b, &n, &first), 0);
    assert_int_equal(n, 5);
    assert_int_equal(first, start);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(b[i].commit_ms, 0);
        assert_int_equal(b[i].samples[0].ref, ra);
        assert_int_equal(b[i].samples[0].t, (int64_t)i * 1000);
        assert_true(b[i].samples[0].v == i + 0.5);
    }
    store_wal_batches_free(b, n);
    /* A new row beside them has its time. */
    append_run(s, ra, 5000, 1000, 1, 1);
    assert_int_equal(store_wal_read(s, start + 5, 10, &b, &n, &first), 0);
    assert_int_equal(n, 1);
    assert_true(b[0].commit_ms >= opened);
    store_wal_batches_free(b, n);
    /* max_lag: the old rows count as committed at open. */
    assert_int_equal(store_maintain(s, opened), 0);
    assert_int_equal(consumer(s, "old").dropped_samples, 0);
    assert_int_equal(store_maintain(s, test_wall_ms() + 3600000), 0);
    assert_int_equal(consumer(s, "old").dropped_samples, 6);
    assert_int_equal(consumer(s, "old").next_seq, start + 6);
    store_close(s);
    assert_int_equal(db_int(dir, "PRAGMA user_version"), 8);
    assert_int_equal(db_int(dir, "SELECT count(*) FROM exemplars"), 0); /* added by the upgrade */
    labels_free(la);
    tu_tmpdir_free(dir);
}

/* Histogram rows (kind 1) decode: histograms, floats beside them, and the
 * histogram staleness marker. */
static void test_wal_histograms(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    uint64_t rh = ref_pairs(s, tu_labels("__name__", "h", NULL));
    uint64_t rf = ref_pairs(s, tu_labels("__name__", "f", NULL));
    uint64_t start = store_wal_next_seq(s);
    assert_int_equal(store_wal_consumer_set(s, "h", start, 3600000, NULL), 0);
    for (int i = 0; i < 5; i++) {
        nhist h;
        mk_hist(&h, 8, i, 0);
        store_batch *b = store_batch_new(s);
        store_batch_add(b, rf, i * 1000, i + 0.5);
        store_batch_add_histogram(b, rh, i * 1000, &h);
        store_batch_add(b, rf, i * 1000 + 1, (double)i);
        assert_int_equal(store_batch_commit(b), 0);
        nhist_cleanup(&h);
    }
    store_batch *b = store_batch_new(s);
    store_batch_add(b, rh, 5000, strutil_stale_nan());
    assert_int_equal(store_batch_commit(b), 0);
    for (int pass = 0; pass < 2; pass++) {
        store_wal_batch *v;
        size_t n;
        uint64_t first;
        assert_int_equal(store_wal_read(s, start, 100, &v, &n, &first), 0);
        assert_int_equal(n, 6);
        for (int i = 0; i < 5; i++) {
            assert_int_equal(v[i].n, 3);
            assert_int_equal(v[i].samples[0].ref, rf);
            assert_null(v[i].samples[0].h);
            assert_true(v[i].samples[0].v == i + 0.5);
            assert_int_equal(v[i].samples[1].ref, rh);
            assert_int_equal(v[i].samples[1].t, i * 1000);
            assert_non_null(v[i].samples[1].h);
            nhist want;
            mk_hist(&want, 8, i, 0);
            assert_true(hist_same(v[i].samples[1].h, &want));
            nhist_cleanup(&want);
            assert_int_equal(v[i].samples[2].t, i * 1000 + 1);
            assert_true(v[i].samples[2].v == (double)i);
        }
        assert_int_equal(v[5].n, 1);
        assert_non_null(v[5].samples[0].h);
        assert_true(nhist_is_stale(v[5].samples[0].h));
        store_wal_batches_free(v, n);
        store_close(s);
        s = open_store(dir, 0); /* pass 1: the rows after a clean close */
    }
    store_close(s);
    tu_tmpdir_free(dir);
}

/* A consumer reading while another thread appends and maintains: every
 * sample arrives once, in order, with no gap. */
#define WALC_BATCHES 1500
#define WALC_SERIES 3

typedef struct walc_ctx {
    store *s;
    uint64_t refs[WALC_SERIES];
    atomic_int done;
    int errors;
    uint64_t start;
} walc_ctx;

static void *walc_writer(void *arg)
{
    walc_ctx *c = arg;
    for (int i = 0; i < WALC_BATCHES; i++) {
        store_batch *b = store_batch_new(c->s);
        for (int k = 0; k < WALC_SERIES; k++) store_batch_add(b, c->refs[k], i, i * 10 + k);
        if (store_batch_commit(b) != 0) c->errors++;
        if (i % 100 == 99 && store_maintain(c->s, test_wall_ms()) != 0) c->errors++;
    }
    atomic_store(&c->done, 1);
    return NULL;
}

static void test_wal_read_concurrent(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("sidewatch-store-test");
    store *s = open_store(dir, 0);
    walc_ctx c = {.s = s};
    atomic_init(&c.done, 0);
    for (int k = 0; k < WALC_SERIES; k++) {
        char v[16];
        snprintf(v, sizeof v, "%d", k);
        c.refs[k] = ref_pairs(s, tu_labels("__name__", "c", "k", v, NULL));
    }
    c.start = store_wal_next_seq(s);
    assert_int_equal(store_wal_consumer_set(s, "reader", c.start, 3600000, NULL), 0);
    pthread_t th;
    pthread_create(&th, NULL, walc_writer, &c);
    uint64_t cursor = c.start;
    int64_t next_t[WALC_SERIES] = {0};
    uint64_t samples = 0, reads = 0;
    int errors = 0;
    for (;;) {
        bool finished = atomic_load(&c.done);
        store_wal_batch *b;
        size_t n;
        uint64_t first;
        if (store_wal_read(s, cursor, 7, &b, &n, &first) != 0 || first != cursor) {
            errors++;
            break;
        }
        reads++;
        for (size_t i = 0; i < n; i++) {
            if (b[i].seq != cursor + i || b[i].n != WALC_SERIES) errors++;
            for (size_t j = 0; j < b[i].n; j++) {
                const store_wal_sample *x = &b[i].samples[j];
                int k = (int)j;
                if (x->ref != c.refs[k] || x->t != next_t[k] || x->v != (double)(x->t * 10 + k))
                    errors++;
                next_t[k] = x->t + 1;
                samples++;
            }
        }
        cursor += n;
        store_wal_batches_free(b, n);
        if (n && reads % 5 == 0 &&
            store_wal_consumer_set(s, "reader", cursor, 3600000, NULL) != 0)
            errors++;
        if (finished && n == 0) break;
    }
    pthread_join(th, NULL);
    assert_int_equal(errors, 0);
    assert_int_equal(c.errors, 0);
    assert_int_equal(samples, (uint64_t)WALC_BATCHES * WALC_SERIES);
    assert_int_equal(cursor, c.start + WALC_BATCHES);
    assert_int_equal(store_wal_next_seq(s), cursor);
    /* Once the cursor is at the end, maintenance keeps only the head's rows. */
    assert_int_equal(store_wal_consumer_set(s, "reader", cursor, 3600000, NULL), 0);
    assert_int_equal(store_maintain(s, test_wall_ms()), 0);
    assert_int_equal(wal_rows(s), WALC_BATCHES % 120); /* the open chunks' rows */
    store_close(s);
    tu_tmpdir_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_append_read),
        cmocka_unit_test(test_stale_head),
        cmocka_unit_test(test_hist_mixed),
        cmocka_unit_test(test_hist_replay),
        cmocka_unit_test(test_hist_import_retention),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_reader_snapshot),
        cmocka_unit_test(test_matchers),
        cmocka_unit_test(test_regex_prefix_ranges),
        cmocka_unit_test(test_sort_order),
        cmocka_unit_test(test_out_of_order_and_duplicates),
        cmocka_unit_test(test_values_bit_exact),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_metadata_list),
        cmocka_unit_test(test_index_stats),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_size_retention_and_file_growth),
        cmocka_unit_test(test_write_ahead_table),
        cmocka_unit_test(test_write_ahead_slots),
        cmocka_unit_test(test_head_age),
        cmocka_unit_test(test_import),
        cmocka_unit_test(test_corruption),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_migration_from_v1),
        cmocka_unit_test(test_migration_from_v2),
        cmocka_unit_test(test_reopen),
        cmocka_unit_test(test_kv),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_commit_failure),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_crash_safety),
        cmocka_unit_test(test_wal_read),
        cmocka_unit_test(test_wal_consumers_hold),
        cmocka_unit_test(test_wal_max_lag),
        cmocka_unit_test(test_wal_consumers_durable),
        cmocka_unit_test(test_wal_kept_rows_after_retention),
        cmocka_unit_test(test_wal_old_rows),
        cmocka_unit_test(test_wal_histograms),
        cmocka_unit_test(test_wal_read_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
