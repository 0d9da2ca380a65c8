/* Unit tests for the store's eviction of idle series from memory (store.c,
 * "Eviction"): an evicted series answers every read exactly as before,
 * comes back with the same reference and its order and duplicate checks,
 * is read safely by a reader open across the eviction, is deleted by
 * retention, is not loaded at open, passes store_check, and its memory is
 * given back. Each test works in its own temporary directory under /tmp. */
#include "testutil.h"
#include "teststore.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "labels.h"
#include "mem.h"
#include "nhist.h"
#include "store.h"
#include "strutil.h"

/* Eviction delays of these tests: a stale series goes 1 s after its last
 * append, any idle one after 60 s; maintenance runs "later" by passing a
 * now_ms ahead of the wall clock. */
#define STALE_MS 1000
#define IDLE_MS 60000

/* ---- helpers --------------------------------------------------------------- */

static int64_t wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static store *open_evicting(const char *dir, int64_t retention_ms, int64_t max_exemplars)
{
    store_options o = {.path = dir,
                       .retention_ms = retention_ms,
                       .max_exemplars = max_exemplars,
                       .evict_stale_ms = STALE_MS,
                       .evict_idle_ms = IDLE_MS};
    return tu_store_open(&o);
}

/* The reference of the labels given as pairs (freed); *created if new. */
static uint64_t ref_new(store *s, labels *ls, bool *created)
{
    uint64_t ref = 0;
    assert_int_equal(store_series_ref(s, ls, &ref, created), 0);
    assert_true(ref != 0);
    labels_free(ls);
    return ref;
}

static uint64_t ref_pairs(store *s, labels *ls)
{
    return ref_new(s, ls, NULL);
}

/* n float samples t0, t0 + step, ... (value = t / 1000), per_batch a batch. */
static void append_run(store *s, uint64_t ref, int64_t t0, int64_t step, int n, int per_batch)
{
    store_batch *b = NULL;
    for (int i = 0; i < n; i++) {
        if (!b) b = store_batch_new(s);
        int64_t t = t0 + i * step;
        store_batch_add(b, ref, t, (double)t / 1000.0);
        if ((i + 1) % per_batch == 0 || i == n - 1) {
            assert_int_equal(store_batch_commit(b), 0);
            b = NULL;
        }
    }
}

static void add_one(store *s, uint64_t ref, int64_t t, double v)
{
    store_batch *b = store_batch_new(s);
    store_batch_add(b, ref, t, v);
    assert_int_equal(store_batch_commit(b), 0);
}

static void mk_hist(nhist *h, int64_t k)
{
    nhist_init(h);
    h->schema = 3;
    h->zero_threshold = 1e-128;
    h->pos_spans = calloc(1, sizeof *h->pos_spans);
    h->n_pos_spans = 1;
    h->pos_spans[0] = (nhist_span){0, 4};
    h->n_pos = 4;
    h->pos = calloc(4, sizeof(double));
    double total = 0;
    for (int i = 0; i < 4; i++) total += h->pos[i] = (double)(k + i);
    h->zero_count = (double)k;
    h->count = total + (double)k;
    h->sum = (double)k * 1.5;
}

static store_stats stats(store *s)
{
    store_stats st;
    store_get_stats(s, &st);
    return st;
}

static label_matcher matcher(enum matcher_type type, const char *name, const char *value)
{
    label_matcher m;
    assert_int_equal(
        labels_matcher_init(&m, type, name, strlen(name), value, strlen(value), NULL), 0);
    return m;
}

static void dump_float(buf *out, double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    buf_printf(out, "%" PRIx64, b); /* bit-exact, staleness markers too */
}

/* Everything a reader sees of the series matching `__name__=~"m.*"`, as
 * text: selects over several windows (one in a gap between chunks), every
 * sample and histogram in several windows, label names and values with and
 * without matchers, store_series_labels, exemplars. Equal dumps = equal
 * answers. Caller frees. */
static char *dump(store *s)
{
    static const int64_t windows[][2] = {{INT64_MIN / 2, INT64_MAX / 2}, {0, 10000},
                                         {130000, 140000},           {300000, 300000},
                                         {245000, 400000},           {1000000, 2000000}};
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    label_matcher all = matcher(MATCH_RE, "__name__", "m.*");
    label_matcher job = matcher(MATCH_EQ, "job", "j");
    label_matcher sel2[2] = {all, job};
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        int64_t mint = windows[w][0], maxt = windows[w][1];
        buf_printf(&out, "window %" PRId64 " %" PRId64 "\n", mint, maxt);
        for (int k = 0; k < 2; k++) {
            store_select_result res;
            assert_int_equal(store_select(r, k ? sel2 : &all, k ? 2 : 1, mint, maxt, &res), 0);
            for (size_t i = 0; i < res.n; i++) {
                buf_printf(&out, " series %" PRIu64 " ", res.series[i].ref);
                labels_format(res.series[i].labels, &out);
                buf_putc(&out, '\n');
                if (k) continue;
                store_sample *v;
                size_t n;
                assert_int_equal(store_read_samples(r, res.series[i].ref, mint, maxt, &v, &n), 0);
                for (size_t j = 0; j < n; j++) {
                    buf_printf(&out, "  %" PRId64 " ", v[j].t);
                    dump_float(&out, v[j].v);
                    buf_putc(&out, '\n');
                }
                mem_free(v);
                store_hsample *hv;
                assert_int_equal(
                    store_read_histograms(r, res.series[i].ref, mint, maxt, &hv, &n), 0);
                for (size_t j = 0; j < n; j++) {
                    buf_printf(&out, "  h %" PRId64 " %s count ", hv[j].t,
                               nhist_is_stale(&hv[j].h) ? "stale" : "");
                    dump_float(&out, hv[j].h.count);
                    buf_putc(&out, '\n');
                }
                store_hsamples_free(hv, n);
                labels *ls = store_series_labels(s, res.series[i].ref);
                assert_non_null(ls);
                assert_true(labels_equal(ls, res.series[i].labels));
                labels_free(ls);
            }
            store_select_result_free(&res);
        }
        store_strings ss;
        assert_int_equal(store_label_names(r, &all, 1, mint, maxt, &ss), 0);
        for (size_t i = 0; i < ss.n; i++) buf_printf(&out, " name %s\n", ss.v[i].p);
        store_strings_free(&ss);
        assert_int_equal(store_label_values(r, "pod", 3, &all, 1, mint, maxt, &ss), 0);
        for (size_t i = 0; i < ss.n; i++) buf_printf(&out, " pod %s\n", ss.v[i].p);
        store_strings_free(&ss);
        const label_matcher *sets[1] = {&all};
        size_t lens[1] = {1};
        store_exemplar_series *ex;
        size_t nex;
        assert_int_equal(store_exemplars_select(r, sets, lens, 1, mint, maxt, &ex, &nex), 0);
        for (size_t i = 0; i < nex; i++) {
            buf_puts(&out, " exemplars ");
            labels_format(ex[i].labels, &out);
            for (size_t j = 0; j < ex[i].n; j++) buf_printf(&out, " %" PRId64, ex[i].ex[j].t);
            buf_putc(&out, '\n');
        }
        store_exemplar_series_free(ex, nex);
    }
    store_strings ss;
    assert_int_equal(store_label_values(r, "pod", 3, NULL, 0, 0, 0, &ss), 0);
    for (size_t i = 0; i < ss.n; i++) buf_printf(&out, "all pods %s\n", ss.v[i].p);
    store_strings_free(&ss);
    labels_matcher_cleanup(&all);
    labels_matcher_cleanup(&job);
    store_reader_close(r);
    return buf_detach(&out, NULL);
}

/* Checks the store with store_check (closes it first) and returns the
 * report's summary line's series count; reopens it in *s. */
static long check_store(const char *dir, store **s)
{
    store_close(*s);
    buf report;
    buf_init(&report, 1 << 20);
    int rc = store_check(dir, &report);
    if (rc != 0) fail_msg("store_check: %d\n%s", rc, buf_cstr(&report));
    long n = strtol(buf_cstr(&report), NULL, 10);
    buf_cleanup(&report);
    *s = open_evicting(dir, 0, 10);
    return n;
}

/* ---- tests --------------------------------------------------------------------- */

/* Series in several states; the stale ones are evicted, and every read
 * answers as before. */
static void test_evict_reads_identical(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-evict-test");
    store *s = open_evicting(dir, 0, 10);
    uint64_t live = ref_pairs(s, tu_labels("__name__", "m_live", "job", "j", "pod", "p0", NULL));
    uint64_t gone = ref_pairs(s, tu_labels("__name__", "m_gone", "job", "j", "pod", "p1", NULL));
    uint64_t gap = ref_pairs(s, tu_labels("__name__", "m_gap", "job", "k", "pod", "p2", NULL));
    uint64_t hgone = ref_pairs(s, tu_labels("__name__", "m_hist", "job", "j", "pod", "p3", NULL));
    uint64_t exs = ref_pairs(s, tu_labels("__name__", "m_ex", "job", "j", "pod", "p4", NULL));
    /* 250 samples: two closed chunks and an open one, then the marker. */
    append_run(s, live, 0, 1000, 250, 10);
    append_run(s, gone, 0, 1000, 250, 10);
    add_one(s, gone, 250000, strutil_stale_nan());
    /* A gap: chunks at [0, 119 s] and [300 s, ...]. */
    append_run(s, gap, 0, 1000, 120, 120);
    append_run(s, gap, 300000, 1000, 10, 10);
    add_one(s, gap, 310000, strutil_stale_nan());
    for (int i = 0; i < 30; i++) {
        nhist h;
        mk_hist(&h, i + 1);
        store_batch *b = store_batch_new(s);
        store_batch_add_histogram(b, hgone, i * 1000, &h);
        assert_int_equal(store_batch_commit(b), 0);
        nhist_cleanup(&h);
    }
    add_one(s, hgone, 30000, strutil_stale_nan());
    /* A stale series with exemplars stays in memory (their counts). */
    append_run(s, exs, 0, 1000, 5, 5);
    store_batch *b = store_batch_new(s);
    labels *el = tu_labels("trace_id", "abc", NULL);
    store_batch_add_exemplar(b, exs, 4000, 1.0, el);
    store_batch_add(b, exs, 5000, strutil_stale_nan());
    labels_free(el);
    assert_int_equal(store_batch_commit(b), 0);

    assert_int_equal(stats(s).series, 5);
    char *before = dump(s);
    assert_non_null(strstr(before, "m_gone"));
    assert_non_null(strstr(before, "exemplars"));

    /* Not yet: the markers are not STALE_MS old. */
    int64_t now = wall_now();
    assert_int_equal(store_maintain(s, now), 0);
    assert_int_equal(stats(s).series, 5);
    assert_int_equal(stats(s).series_evicted, 0);
    char *mid = dump(s);
    assert_string_equal(mid, before);
    mem_free(mid);

    assert_int_equal(store_maintain(s, now + 2 * STALE_MS), 0);
    store_stats st = stats(s);
    assert_int_equal(st.series_evicted, 3); /* gone, gap, hgone */
    assert_int_equal(st.series, 2);         /* live, exs */
    assert_int_equal(st.head_chunks, 1);    /* live's */
    char *after = dump(s);
    assert_string_equal(after, before);
    assert_int_equal(stats(s).series, 2); /* reads load nothing */
    mem_free(after);

    /* store_check: sound, no label set twice. */
    assert_int_equal(check_store(dir, &s), 5);
    after = dump(s);
    assert_string_equal(after, before);
    mem_free(after);
    mem_free(before);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* A returning series: same reference from its labels and from a cached
 * reference, its order and duplicate checks against the last sample on
 * disk, samples continue without duplicates. */
static void test_evict_return(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-evict-test");
    store *s = open_evicting(dir, 0, 0);
    uint64_t a = ref_pairs(s, tu_labels("__name__", "m_a", "pod", "1", NULL));
    uint64_t c = ref_pairs(s, tu_labels("__name__", "m_c", "pod", "2", NULL)); /* cached ref */
    append_run(s, a, 0, 1000, 130, 10);
    append_run(s, c, 0, 1000, 130, 10);
    add_one(s, a, 130000, strutil_stale_nan());
    add_one(s, c, 130000, strutil_stale_nan());
    assert_int_equal(store_maintain(s, wall_now() + 2 * STALE_MS), 0);
    store_stats st = stats(s);
    assert_int_equal(st.series, 0);
    assert_int_equal(st.series_evicted, 2);

    /* By labels: the same id, not created, not loaded yet. */
    bool created = true;
    assert_int_equal(ref_new(s, tu_labels("__name__", "m_a", "pod", "1", NULL), &created), a);
    assert_false(created);
    assert_int_equal(stats(s).series, 0);
    /* A new label set still gets a new id. */
    uint64_t n = ref_new(s, tu_labels("__name__", "m_new", NULL), &created);
    assert_true(created);
    assert_true(n != a && n != c);

    /* Out of order and duplicates against the last sample on disk. */
    uint64_t ooo0 = st.out_of_order_samples, dup0 = st.duplicate_samples;
    add_one(s, a, 129000, 1);                       /* older */
    add_one(s, a, 130000, 7);                       /* same time, other value */
    add_one(s, a, 130000, strutil_stale_nan());     /* the marker again */
    add_one(s, c, 5000, 1);                         /* via the cached ref */
    st = stats(s);
    assert_int_equal(st.out_of_order_samples - ooo0, 3);
    assert_int_equal(st.duplicate_samples - dup0, 1);
    assert_int_equal(st.series_loaded, 2);
    assert_int_equal(st.series, 3); /* and m_new, without samples */
    /* New samples continue both series (c through its cached ref). */
    uint64_t app0 = st.samples_appended;
    append_run(s, a, 200000, 1000, 5, 5);
    append_run(s, c, 200000, 1000, 5, 5);
    st = stats(s);
    assert_int_equal(st.samples_appended - app0, 10);
    assert_int_equal(st.series_loaded, 2);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_sample *v;
    size_t nv;
    assert_int_equal(store_read_samples(r, a, INT64_MIN, INT64_MAX, &v, &nv), 0);
    assert_int_equal(nv, 130 + 1 + 5);
    for (size_t i = 1; i < nv; i++) assert_true(v[i].t > v[i - 1].t);
    assert_true(strutil_is_stale_nan(v[130].v));
    assert_int_equal(v[131].t, 200000);
    mem_free(v);
    /* One series per label set in a select. */
    label_matcher m = matcher(MATCH_RE, "__name__", "m_.*");
    store_select_result res;
    assert_int_equal(store_select(r, &m, 1, INT64_MIN / 2, INT64_MAX / 2, &res), 0);
    assert_int_equal(res.n, 2);
    assert_int_equal(res.series[0].ref, a);
    assert_int_equal(res.series[1].ref, c);
    store_select_result_free(&res);
    labels_matcher_cleanup(&m);
    store_reader_close(r);

    /* Evicted again and imported into: still the same id. */
    add_one(s, a, 205000, strutil_stale_nan());
    assert_int_equal(store_maintain(s, wall_now() + 2 * STALE_MS), 0);
    assert_true(stats(s).series_evicted >= 3);
    store_import *im;
    assert_int_equal(store_import_begin(s, &im), 0);
    store_sample old[3] = {{-3000, 1}, {-2000, 2}, {-1000, 3}};
    labels *la = tu_labels("__name__", "m_a", "pod", "1", NULL);
    assert_int_equal(store_import_series(im, la, old, 3), 0);
    assert_int_equal(store_import_finish(im), 0);
    uint64_t again = 0;
    assert_int_equal(store_series_ref(s, la, &again, &created), 0);
    assert_int_equal(again, a);
    labels_free(la);
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(store_read_samples(r, a, INT64_MIN, INT64_MAX, &v, &nv), 0);
    assert_int_equal(nv, 3 + 130 + 1 + 5 + 1);
    mem_free(v);
    store_reader_close(r);
    assert_int_equal(check_store(dir, &s), 3);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* A reader whose snapshot started before an eviction keeps reading valid
 * data (ASan checks nothing freed is read), and a series whose chunks were
 * written after a reader started is not evicted until that reader ends. */
static void test_evict_reader_across(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-evict-test");
    store *s = open_evicting(dir, 0, 0);
    uint64_t a = ref_pairs(s, tu_labels("__name__", "m_a", NULL));
    uint64_t b = ref_pairs(s, tu_labels("__name__", "m_b", NULL));
    append_run(s, a, 0, 1000, 200, 20);
    append_run(s, b, 0, 1000, 200, 20);
    add_one(s, a, 200000, strutil_stale_nan());
    /* a's head is closed and written before the reader starts. */
    assert_int_equal(store_maintain(s, 0), 0);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(store_reader_begin(r), 0);
    store_sample *v0;
    size_t n0;
    assert_int_equal(store_read_samples(r, a, INT64_MIN, INT64_MAX, &v0, &n0), 0);
    assert_int_equal(n0, 201);
    /* b goes stale now: its chunk is written while the reader holds its
     * snapshot, so it stays in memory (the reader may need it). */
    add_one(s, b, 200000, strutil_stale_nan());
    assert_int_equal(store_maintain(s, wall_now() + 2 * STALE_MS), 0);
    store_stats st = stats(s);
    assert_int_equal(st.series_evicted, 1); /* a */
    assert_int_equal(st.series, 1);         /* b */
    /* The reader reads both, as before. */
    store_sample *v1;
    size_t n1;
    assert_int_equal(store_read_samples(r, a, INT64_MIN, INT64_MAX, &v1, &n1), 0);
    assert_int_equal(n1, n0);
    assert_memory_equal(v1, v0, n0 * sizeof *v0);
    mem_free(v1);
    assert_int_equal(store_read_samples(r, b, INT64_MIN, INT64_MAX, &v1, &n1), 0);
    assert_int_equal(n1, 200); /* the marker came after the snapshot */
    mem_free(v1);
    label_matcher m = matcher(MATCH_RE, "__name__", "m_.*");
    store_select_result res;
    assert_int_equal(store_select(r, &m, 1, 0, 300000, &res), 0);
    assert_int_equal(res.n, 2);
    store_select_result_free(&res);
    store_reader_end(r);
    /* Now b goes too. */
    assert_int_equal(store_maintain(s, wall_now() + 2 * STALE_MS), 0);
    assert_int_equal(stats(s).series, 0);
    assert_int_equal(store_read_samples(r, b, INT64_MIN, INT64_MAX, &v1, &n1), 0);
    assert_int_equal(n1, 201);
    mem_free(v1);
    mem_free(v0);
    labels_matcher_cleanup(&m);
    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* Readers on their own thread while the writer evicts and loads the same
 * series again and again: every read sees a growing, ordered series. */
typedef struct race {
    store *s;
    uint64_t ref;
    atomic_bool stop;
    atomic_int reads, errors;
} race;

static void *race_reader(void *arg)
{
    race *x = arg;
    store_reader *r;
    if (store_reader_open(x->s, &r) != 0) {
        atomic_fetch_add(&x->errors, 1);
        return NULL;
    }
    label_matcher m = matcher(MATCH_EQ, "__name__", "m_race");
    size_t last = 0;
    while (!atomic_load(&x->stop)) {
        store_sample *v;
        size_t n;
        store_select_result res;
        if (store_select(r, &m, 1, INT64_MIN / 2, INT64_MAX / 2, &res) != 0 || res.n != 1)
            atomic_fetch_add(&x->errors, 1);
        store_select_result_free(&res);
        labels *ls = store_series_labels(x->s, x->ref);
        if (!ls) atomic_fetch_add(&x->errors, 1);
        labels_free(ls);
        if (store_read_samples(r, x->ref, INT64_MIN, INT64_MAX, &v, &n) != 0 || n < last) {
            atomic_fetch_add(&x->errors, 1);
        }
        for (size_t i = 1; i < n; i++)
            if (v[i].t <= v[i - 1].t) atomic_fetch_add(&x->errors, 1);
        last = n;
        mem_free(v);
        atomic_fetch_add(&x->reads, 1);
        usleep(1000);
    }
    labels_matcher_cleanup(&m);
    store_reader_close(r);
    return NULL;
}

static void test_evict_concurrent_readers(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-evict-test");
    store *s = open_evicting(dir, 0, 0);
    race x = {.s = s};
    x.ref = ref_pairs(s, tu_labels("__name__", "m_race", NULL));
    append_run(s, x.ref, 0, 1000, 10, 10);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, race_reader, &x), 0);
    int64_t t = 10000;
    uint64_t evicted = 0;
    for (int round = 0; round < 60; round++) {
        append_run(s, x.ref, t, 1000, 3, 3);
        t += 3000;
        add_one(s, x.ref, t, strutil_stale_nan());
        t += 1000;
        assert_int_equal(store_maintain(s, wall_now() + 2 * STALE_MS), 0);
        /* Again: chunks kept for a reader then are released now. */
        assert_int_equal(store_maintain(s, wall_now() + 2 * STALE_MS), 0);
        evicted = stats(s).series_evicted;
    }
    atomic_store(&x.stop, true);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&x.errors), 0);
    assert_true(atomic_load(&x.reads) > 0);
    assert_true(evicted > 0); /* at least some rounds had no reader in the way */
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_sample *v;
    size_t n;
    assert_int_equal(store_read_samples(r, x.ref, INT64_MIN, INT64_MAX, &v, &n), 0);
    assert_int_equal(n, 10 + 60 * 4);
    mem_free(v);
    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* Time retention deletes the chunks of evicted series too, and the store's
 * time range follows; size retention as well. */
static void test_evict_retention(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-evict-test");
    int64_t now = wall_now();
    int64_t hour = 3600 * 1000;
    store *s = open_evicting(dir, 2 * hour, 0);
    uint64_t a = ref_pairs(s, tu_labels("__name__", "m_old", NULL));
    uint64_t b = ref_pairs(s, tu_labels("__name__", "m_new", NULL));
    /* a: 240 samples a minute apart ending 3 h ago (two chunks), then
     * stale; b: recent. */
    int64_t t0 = now - 7 * hour;
    append_run(s, a, t0, 60000, 240, 60);
    add_one(s, a, t0 + 240 * 60000, strutil_stale_nan());
    append_run(s, b, now - 60000, 1000, 10, 10);
    assert_int_equal(store_maintain(s, now + 2 * STALE_MS), 0);
    store_stats st = stats(s);
    /* The maintenance wrote a's head, evicted it, then applied retention
     * (cutoff now - 2 h): both of a's chunks end before it. */
    assert_int_equal(st.series_evicted, 1);
    assert_int_equal(st.retention_deleted_chunks, 3);
    assert_int_equal(st.min_time_ms, now - 60000);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_sample *v;
    size_t n;
    assert_int_equal(store_read_samples(r, a, INT64_MIN, INT64_MAX, &v, &n), 0);
    assert_int_equal(n, 0);
    mem_free(v);
    label_matcher m = matcher(MATCH_EQ, "__name__", "m_old");
    store_select_result res;
    assert_int_equal(store_select(r, &m, 1, INT64_MIN / 2, INT64_MAX / 2, &res), 0);
    assert_int_equal(res.n, 0); /* no samples left */
    store_select_result_free(&res);
    labels_matcher_cleanup(&m);
    store_reader_close(r);
    store_close(s);

    tu_tmpdir_free(dir);

    /* Size retention: the chunks of a series not in memory go too. */
    dir = tu_tmpdir_new("wip-evict-test");
    s = open_evicting(dir, 0, 0);
    uint64_t c = ref_pairs(s, tu_labels("__name__", "m_c", NULL));
    append_run(s, c, 0, 1000, 600, 120);
    add_one(s, c, 600000, strutil_stale_nan());
    assert_int_equal(store_maintain(s, wall_now() + 2 * STALE_MS), 0);
    assert_int_equal(stats(s).series, 0);
    store_close(s);
    store_options o = {.path = dir, .retention_bytes = 1, .evict_stale_ms = STALE_MS,
                       .evict_idle_ms = IDLE_MS};
    s = tu_store_open(&o);
    assert_int_equal(stats(s).series, 0);
    assert_int_equal(store_maintain(s, wall_now()), 0);
    st = stats(s);
    assert_int_equal(st.retention_deleted_chunks, 6);
    assert_int_equal(st.retention_deleted_samples, 601);
    assert_int_equal(st.series, 0); /* retention loads nothing */
    assert_int_equal(store_reader_open(s, &r), 0);
    assert_int_equal(store_read_samples(r, c, INT64_MIN, INT64_MAX, &v, &n), 0);
    assert_int_equal(n, 0);
    mem_free(v);
    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* A restart loads no idle series; they stay queryable and come back when
 * appended to. */
static void test_evict_restart(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-evict-test");
    store *s = open_evicting(dir, 0, 0);
    uint64_t refs[40];
    for (int i = 0; i < 40; i++) {
        char pod[16];
        snprintf(pod, sizeof pod, "p%02d", i);
        refs[i] = ref_pairs(s, tu_labels("__name__", "m_r", "job", "j", "pod", pod, NULL));
        append_run(s, refs[i], 0, 1000, 50 + i, 25);
        if (i % 2) add_one(s, refs[i], 100000, strutil_stale_nan());
    }
    char *before = dump(s);
    store_close(s);
    s = open_evicting(dir, 0, 0);
    assert_int_equal(stats(s).series, 0);
    char *after = dump(s);
    assert_string_equal(after, before);
    mem_free(after);
    mem_free(before);
    assert_int_equal(stats(s).series, 0);
    /* The live half comes back with its old references. */
    for (int i = 0; i < 40; i += 2) add_one(s, refs[i], 200000, i);
    assert_int_equal(stats(s).series, 20);
    assert_int_equal(stats(s).series_loaded, 20);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* Write-ahead rows of evicted series: remote write gets their labels. */
static void test_evict_wal_labels(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-evict-test");
    store *s = open_evicting(dir, 0, 0);
    uint64_t start = store_wal_next_seq(s);
    assert_int_equal(store_wal_consumer_set(s, "rw", start, 3600000, NULL), 0);
    uint64_t a = ref_pairs(s, tu_labels("__name__", "m_w", "k", "v", NULL));
    append_run(s, a, 0, 1000, 3, 3);
    add_one(s, a, 3000, strutil_stale_nan());
    assert_int_equal(store_maintain(s, wall_now() + 2 * STALE_MS), 0);
    assert_int_equal(stats(s).series, 0);
    store_wal_batch *rows;
    size_t n;
    uint64_t first;
    assert_int_equal(store_wal_read(s, start, 100, &rows, &n, &first), 0);
    assert_int_equal(n, 2);
    labels *ls = store_series_labels(s, rows[0].samples[0].ref);
    assert_non_null(ls);
    buf f;
    buf_init(&f, 256);
    labels_format(ls, &f);
    assert_string_equal(buf_cstr(&f), "{__name__=\"m_w\", k=\"v\"}");
    buf_cleanup(&f);
    labels_free(ls);
    store_wal_batches_free(rows, n);
    assert_null(store_series_labels(s, a + 1000));
    store_close(s);
    tu_tmpdir_free(dir);
}

/* Memory: N stale series, evicted, give back what they held (the soak's
 * growth: about 380 bytes a series before eviction existed). */
static void test_evict_memory(void **state)
{
    (void)state;
    enum { N = 4000 };
    char *dir = tu_tmpdir_new("wip-evict-test");
    store *s = open_evicting(dir, 0, 0);
#if !defined(__SANITIZE_ADDRESS__)
    struct mallinfo2 m0 = mallinfo2();
#endif
    store_batch *b = store_batch_new(s);
    for (int i = 0; i < N; i++) {
        char pod[16], h[16];
        snprintf(pod, sizeof pod, "pod-%05d", i);
        snprintf(h, sizeof h, "/h%d", i % 7);
        uint64_t ref = ref_pairs(s, tu_labels("__name__", "m_churn", "job", "api", "instance",
                                              "10.0.0.1:9000", "pod", pod, "handler", h, "code",
                                              "200", NULL));
        store_batch_add(b, ref, 1000, i);
        store_batch_add(b, ref, 2000, strutil_stale_nan());
        if (i % 500 == 499) {
            assert_int_equal(store_batch_commit(b), 0);
            b = store_batch_new(s);
        }
    }
    store_batch_free(b);
    assert_int_equal(stats(s).series, N);
#if !defined(__SANITIZE_ADDRESS__)
    struct mallinfo2 m1 = mallinfo2();
#endif
    assert_int_equal(store_maintain(s, wall_now() + 2 * STALE_MS), 0);
    store_stats st = stats(s);
    assert_int_equal(st.series, 0);
    assert_int_equal(st.series_evicted, N);
    assert_int_equal(st.head_chunks, 0);
#if !defined(__SANITIZE_ADDRESS__)
    struct mallinfo2 m2 = mallinfo2();
    /* Heap in use, SQLite's page cache included (it grows with the file
     * the maintenance writes to, so the release is measured net of it). */
    size_t grown = m1.uordblks - m0.uordblks;
    size_t freed = m1.uordblks > m2.uordblks ? m1.uordblks - m2.uordblks : 0;
    print_message("memory: %zu bytes per series created, %zu given back per series evicted\n",
                  grown / N, freed / N);
    assert_true(freed / N > 200);
#endif
    /* All still there. */
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    label_matcher m = matcher(MATCH_EQ, "job", "api");
    store_select_result res;
    assert_int_equal(store_select(r, &m, 1, 0, 5000, &res), 0);
    assert_int_equal(res.n, N);
    store_select_result_free(&res);
    labels_matcher_cleanup(&m);
    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* Idle series without a staleness marker: their head chunk is closed and
 * they are evicted after evict_idle_ms. */
static void test_evict_idle(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-evict-test");
    store *s = open_evicting(dir, 0, 0);
    uint64_t a = ref_pairs(s, tu_labels("__name__", "m_idle", NULL));
    uint64_t none = ref_pairs(s, tu_labels("__name__", "m_none", NULL)); /* never a sample */
    append_run(s, a, 0, 1000, 30, 30); /* writes m_none's row too */
    int64_t now = wall_now();
    assert_int_equal(store_maintain(s, now + IDLE_MS / 2), 0);
    store_stats st = stats(s);
    assert_int_equal(st.series, 2);
    assert_int_equal(st.head_chunks, 1);
    assert_int_equal(store_maintain(s, now + IDLE_MS + 1000), 0);
    st = stats(s);
    assert_int_equal(st.series, 0);
    assert_int_equal(st.head_chunks, 0);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_sample *v;
    size_t n;
    assert_int_equal(store_read_samples(r, a, INT64_MIN, INT64_MAX, &v, &n), 0);
    assert_int_equal(n, 30);
    mem_free(v);
    store_reader_close(r);
    bool created = true;
    assert_int_equal(ref_new(s, tu_labels("__name__", "m_none", NULL), &created), none);
    assert_false(created);
    /* Back: not a duplicate of its last sample, which is known again. */
    add_one(s, a, 29000, 29.0);
    assert_int_equal(stats(s).duplicate_samples, 1);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* store_check reports what would make an evicted series unfindable, give
 * a label set a second id or hide its chunks from retention: a label hash
 * that does not match, the same labels twice, a wrong first_end. */
static void test_evict_check_problems(void **state)
{
    (void)state;
    if (system("sqlite3 -version >/dev/null 2>&1") != 0) {
        print_message("SKIPPED: the sqlite3 shell is not installed\n");
        skip();
    }
    char *dir = tu_tmpdir_new("wip-evict-test");
    store *s = open_evicting(dir, 0, 0);
    uint64_t a = ref_pairs(s, tu_labels("__name__", "m_a", NULL));
    append_run(s, a, 0, 1000, 3, 3);
    store_close(s);
    buf report;
    buf_init(&report, 1 << 16);
    assert_int_equal(store_check(dir, &report), 0);
    char cmd[4400];
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s/sidewatch.db \"INSERT INTO series(id, labels, metric, lhash)"
             " SELECT 99, labels, metric, lhash FROM series WHERE id = %llu;"
             " UPDATE series SET lhash = lhash + 1 WHERE id = %llu\"",
             dir, (unsigned long long)a, (unsigned long long)a);
    assert_int_equal(system(cmd), 0);
    buf_reset(&report);
    assert_int_equal(store_check(dir, &report), -EIO);
    assert_non_null(strstr(buf_cstr(&report), "label hash does not match"));
    snprintf(cmd, sizeof cmd, "sqlite3 %s/sidewatch.db \"UPDATE series SET lhash = lhash - 1 WHERE id = %llu\"",
             dir, (unsigned long long)a);
    assert_int_equal(system(cmd), 0);
    buf_reset(&report);
    assert_int_equal(store_check(dir, &report), -EIO);
    assert_non_null(strstr(buf_cstr(&report), "have the same labels"));
    assert_null(strstr(buf_cstr(&report), "label hash does not match"));
    assert_null(strstr(buf_cstr(&report), "first_end"));
    /* Retention finds a series by series.first_end: it must match. */
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s/sidewatch.db \"DELETE FROM series WHERE id = 99;"
             " UPDATE series SET first_end = 5 WHERE id = %llu\"",
             dir, (unsigned long long)a);
    assert_int_equal(system(cmd), 0);
    buf_reset(&report);
    assert_int_equal(store_check(dir, &report), -EIO);
    assert_non_null(strstr(buf_cstr(&report), "first_end 5 does not match its chunks"));
    buf_cleanup(&report);
    tu_tmpdir_free(dir);
}

/* A version-7 database (no lhash, no first_end): the upgrade computes
 * them, so its series are found by labels (same ids) and by retention. */
static void test_evict_migration_v7(void **state)
{
    (void)state;
    if (system("sqlite3 -version >/dev/null 2>&1") != 0) {
        print_message("SKIPPED: the sqlite3 shell is not installed\n");
        skip();
    }
    char *dir = tu_tmpdir_new("wip-evict-test");
    int64_t now = wall_now(), hour = 3600 * 1000;
    store *s = open_evicting(dir, 0, 0);
    uint64_t refs[5];
    for (int i = 0; i < 5; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        refs[i] = ref_pairs(s, tu_labels("__name__", "m_v7", "i", v, NULL));
        append_run(s, refs[i], now - 5 * hour + i * hour, 60000, 130, 130);
    }
    store_close(s);
    char cmd[4400];
    snprintf(cmd, sizeof cmd,
             "sqlite3 %s/sidewatch.db \"DROP INDEX series_lhash; DROP INDEX series_first_end;"
             " ALTER TABLE series DROP COLUMN lhash; ALTER TABLE series DROP COLUMN first_end;"
             " PRAGMA user_version=7;\"",
             dir);
    assert_int_equal(system(cmd), 0);
    s = open_evicting(dir, 2 * hour, 0);
    for (int i = 0; i < 5; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        bool created = true;
        assert_int_equal(ref_new(s, tu_labels("__name__", "m_v7", "i", v, NULL), &created), refs[i]);
        assert_false(created);
    }
    assert_int_equal(stats(s).series, 0);
    /* Retention (2 h) finds the chunks of the first two series (chunks of
     * 120 and 10 samples ending 181 and 171 min ago; 121 and 111) without
     * loading them. */
    assert_int_equal(store_maintain(s, now), 0);
    store_stats st = stats(s);
    assert_int_equal(st.retention_deleted_chunks, 3);
    assert_int_equal(st.series, 0);
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_sample *v;
    size_t n;
    assert_int_equal(store_read_samples(r, refs[0], INT64_MIN, INT64_MAX, &v, &n), 0);
    assert_int_equal(n, 0);
    mem_free(v);
    assert_int_equal(store_read_samples(r, refs[1], INT64_MIN, INT64_MAX, &v, &n), 0);
    assert_int_equal(n, 10);
    mem_free(v);
    assert_int_equal(store_read_samples(r, refs[4], INT64_MIN, INT64_MAX, &v, &n), 0);
    assert_int_equal(n, 130);
    mem_free(v);
    store_reader_close(r);
    assert_int_equal(check_store(dir, &s), 5);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* kB the process has resident of its mappings of files whose path ends in
 * suffix (/proc/self/smaps). */
static long rss_of_file_kb(const char *suffix)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[4096];
    long total = 0, kb;
    bool in = false;
    size_t sl = strlen(suffix);
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\n");
        line[len] = '\0';
        if (strchr(line, '-') && strchr(line, '-') < strchr(line, ' ') && isxdigit((unsigned char)line[0])) {
            in = len >= sl && strcmp(line + len - sl, suffix) == 0;
        } else if (in && sscanf(line, "Rss: %ld kB", &kb) == 1) {
            total += kb;
        }
    }
    fclose(f);
    return total;
}

/* Readers do not map the database file: a mapping keeps every page it
 * touched resident for its life, so file-backed memory would grow with the
 * database (store.c, store_reader_open). After reading everything, nothing
 * of the file is mapped. */
static void test_reader_maps_nothing(void **state)
{
    (void)state;
    enum { SERIES = 400, SAMPLES = 4000 };
    char *dir = tu_tmpdir_new("wip-remap-test");
    store_options o = {.path = dir};
    store *s = tu_store_open(&o);
    store_import *im;
    assert_int_equal(store_import_begin(s, &im), 0);
    store_sample *smp = mem_malloc(SAMPLES * sizeof *smp);
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < SERIES; i++) {
        char n[16];
        snprintf(n, sizeof n, "s%04d", i);
        for (int k = 0; k < SAMPLES; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            smp[k] = (store_sample){.t = 1000 + (int64_t)k * 15000, .v = (double)x / 3.0};
        }
        labels *ls = tu_labels("__name__", "remap", "i", n, NULL);
        assert_int_equal(store_import_series(im, ls, smp, SAMPLES), 0);
        labels_free(ls);
    }
    assert_int_equal(store_import_finish(im), 0);
    mem_free(smp);
    store_close(s); /* checkpointed: the pages are in the database file, which readers map */
    s = tu_store_open(&o);

    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    label_matcher m = matcher(MATCH_EQ, "__name__", "remap");
    long before = rss_of_file_kb("/sidewatch.db");
    store_select_result res;
    assert_int_equal(store_select(r, &m, 1, INT64_MIN / 2, INT64_MAX / 2, &res), 0);
    assert_int_equal(res.n, SERIES);
    size_t total = 0;
    for (size_t i = 0; i < res.n; i++) {
        store_sample *out;
        size_t n;
        assert_int_equal(store_read_samples(r, res.series[i].ref, INT64_MIN / 2, INT64_MAX / 2,
                                            &out, &n), 0);
        total += n;
        mem_free(out);
    }
    assert_int_equal(total, (size_t)SERIES * SAMPLES);
    long read_all = rss_of_file_kb("/sidewatch.db");
    print_message("database mapped and resident: %ld kB before, %ld kB after reading all %zu "
                  "samples\n", before, read_all, total);
    assert_int_equal(read_all, 0);
    store_select_result_free(&res);
    labels_matcher_cleanup(&m);
    store_reader_close(r);
    store_close(s);
    tu_tmpdir_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evict_reads_identical),
        cmocka_unit_test(test_evict_return),
        cmocka_unit_test(test_evict_reader_across),
        cmocka_unit_test(test_evict_concurrent_readers),
        cmocka_unit_test(test_evict_retention),
        cmocka_unit_test(test_evict_restart),
        cmocka_unit_test(test_evict_wal_labels),
        cmocka_unit_test(test_evict_memory),
        cmocka_unit_test(test_evict_idle),
        cmocka_unit_test(test_evict_check_problems),
        cmocka_unit_test(test_evict_migration_v7),
        cmocka_unit_test(test_reader_maps_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
