/* Unit tests for the store's exemplar storage (Prometheus's
 * CircularExemplarStorage semantics): query by matchers and time, the
 * duplicate and out-of-order rules, the label length limit, the bound and
 * eviction of the oldest, restart and SIGKILL, exemplar storage off and
 * resized, and the write-ahead rows that carry exemplars to remote write.
 * Each test works in its own temporary directory under /tmp. */
#include "testutil.h"
#include "teststore.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "labels.h"
#include "mem.h"
#include "store.h"

/* ---- helpers --------------------------------------------------------------- */

static store *open_ex(const char *dir, int64_t max_exemplars)
{
    store_options o = {.path = dir, .max_exemplars = max_exemplars};
    return tu_store_open(&o);
}

static uint64_t series(store *s, const char *metric, const char *job)
{
    labels *ls = tu_labels("__name__", metric, "job", job, NULL);
    uint64_t ref = 0;
    assert_int_equal(store_series_ref(s, ls, &ref, NULL), 0);
    labels_free(ls);
    return ref;
}

/* Commits one sample and one exemplar {trace_id=<trace>} of series ref. */
static void add1(store *s, uint64_t ref, int64_t t, double v, const char *trace)
{
    store_batch *b = store_batch_new(s);
    store_batch_add(b, ref, t, v);
    labels *el = tu_labels("trace_id", trace, NULL);
    store_batch_add_exemplar(b, ref, t, v, el);
    labels_free(el);
    assert_int_equal(store_batch_commit(b), 0);
}

/* The result of a query as text: one line per series,
 * "<labels>: trace@t=v trace@t=v". */
static char *query(store *s, const char *const *selectors, size_t nsel, int64_t start, int64_t end)
{
    label_matcher *ms[8];
    size_t lens[8];
    assert_true(nsel <= 8);
    for (size_t i = 0; i < nsel; i++) {
        buf err;
        buf_init(&err, 1024);
        assert_int_equal(
            labels_parse_selector(selectors[i], strlen(selectors[i]), &ms[i], &lens[i], &err), 0);
        buf_cleanup(&err);
    }
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_exemplar_series *res;
    size_t n;
    assert_int_equal(store_exemplars_select(r, (const label_matcher *const *)ms, lens, nsel, start,
                                            end, &res, &n),
                     0);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    for (size_t i = 0; i < n; i++) {
        labels_format(res[i].labels, &out);
        buf_puts(&out, ":");
        assert_true(res[i].n > 0);
        for (size_t k = 0; k < res[i].n; k++) {
            size_t tl;
            const char *tr = labels_get(res[i].ex[k].labels, "trace_id", 8, &tl);
            buf_printf(&out, " %.*s@%lld=%g", tr ? (int)tl : 1, tr ? tr : "-",
                       (long long)res[i].ex[k].t, res[i].ex[k].v);
        }
        buf_puts(&out, "\n");
    }
    store_exemplar_series_free(res, n);
    store_reader_close(r);
    for (size_t i = 0; i < nsel; i++)
        labels_matchers_free(ms[i], lens[i]);
    char *text = mem_strdup(buf_cstr(&out));
    buf_cleanup(&out);
    return text;
}

static void assert_query(store *s, const char *selector, int64_t start, int64_t end,
                         const char *expect)
{
    const char *sel[1] = {selector};
    char *got = query(s, sel, 1, start, end);
    assert_string_equal(got, expect);
    mem_free(got);
}

static store_stats stats(store *s)
{
    store_stats st;
    store_get_stats(s, &st);
    return st;
}

/* ---- tests ----------------------------------------------------------------- */

/* Exemplars come back per series (sorted by labels), in time order, within
 * [start, end] inclusive; several selectors are a union; series without
 * exemplars in range are left out. */
static void test_query(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-exemplars-test");
    store *s = open_ex(dir, 1000);
    uint64_t a = series(s, "req_total", "b");
    uint64_t b = series(s, "req_total", "a");
    uint64_t c = series(s, "other", "a");
    for (int i = 0; i < 5; i++) {
        char tr[32];
        snprintf(tr, sizeof tr, "a%d", i);
        add1(s, a, 1000 * (i + 1), i + 0.5, tr);
        snprintf(tr, sizeof tr, "b%d", i);
        add1(s, b, 1000 * (i + 1) + 1, i, tr);
    }
    /* c: samples, no exemplars. */
    store_batch *bt = store_batch_new(s);
    store_batch_add(bt, c, 1000, 1);
    assert_int_equal(store_batch_commit(bt), 0);

    assert_query(
        s, "req_total", 0, 10000,
        "{__name__=\"req_total\", job=\"a\"}: b0@1001=0 b1@2001=1 b2@3001=2 b3@4001=3 b4@5001=4\n"
        "{__name__=\"req_total\", job=\"b\"}: a0@1000=0.5 a1@2000=1.5 a2@3000=2.5 a3@4000=3.5 "
        "a4@5000=4.5\n");
    /* Inclusive bounds. */
    assert_query(s, "{job=\"b\"}", 2000, 3000,
                 "{__name__=\"req_total\", job=\"b\"}: a1@2000=1.5 a2@3000=2.5\n");
    assert_query(s, "req_total", 5001, 9000, "{__name__=\"req_total\", job=\"a\"}: b4@5001=4\n");
    assert_query(s, "req_total", 6000, 9000, "");
    assert_query(s, "other", 0, 10000, "");
    assert_query(s, "{job=~\"a|b\", __name__!=\"other\"}", 4500, 4600, "");
    /* A union of selectors, each series once. */
    const char *two[] = {"{job=\"a\"}", "req_total{job=~\".+\"}"};
    char *got = query(s, two, 2, 4001, 5000);
    assert_string_equal(got, "{__name__=\"req_total\", job=\"a\"}: b3@4001=3\n"
                             "{__name__=\"req_total\", job=\"b\"}: a4@5000=4.5\n");
    mem_free(got);
    /* A selector that matches everything is refused, as store_select. */
    label_matcher m;
    assert_int_equal(labels_matcher_init(&m, MATCH_RE, "job", 3, ".*", 2, NULL), 0);
    size_t nm = 1;
    const label_matcher *ms = &m;
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_exemplar_series *res;
    size_t n;
    assert_int_equal(store_exemplars_select(r, &ms, &nm, 1, 0, 10000, &res, &n), -EINVAL);
    store_reader_close(r);
    labels_matcher_cleanup(&m);

    store_stats st = stats(s);
    assert_int_equal(st.exemplars_appended, 10);
    assert_int_equal(st.exemplars_in_storage, 10);
    assert_int_equal(st.series_with_exemplars, 2);
    assert_int_equal(st.max_exemplars, 1000);
    assert_int_equal(st.exemplars_out_of_order, 0);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* As Prometheus's validateExemplar: equal to the newest = silent
 * duplicate; older, or same time with a smaller value = out of order;
 * same time with another value or labels is accepted. Checked against the
 * exemplars before it in the same batch too. */
static void test_duplicate_and_out_of_order(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-exemplars-test");
    store *s = open_ex(dir, 1000);
    uint64_t a = series(s, "req_total", "a");
    add1(s, a, 2000, 5, "x");
    add1(s, a, 2000, 5, "x"); /* duplicate (the sample too) */
    store_stats st = stats(s);
    assert_int_equal(st.exemplars_appended, 1);
    assert_int_equal(st.exemplars_out_of_order, 0);

    store_batch *b = store_batch_new(s);
    labels *lx = tu_labels("trace_id", "x", NULL), *ly = tu_labels("trace_id", "y", NULL);
    store_batch_add_exemplar(b, a, 1999, 9, lx); /* older: out of order */
    store_batch_add_exemplar(b, a, 2000, 4, lx); /* same time, smaller value */
    store_batch_add_exemplar(b, a, 2000, 6, ly); /* same time, larger value: ok */
    store_batch_add_exemplar(b, a, 2000, 6, ly); /* now a duplicate of that one */
    store_batch_add_exemplar(b, a, 2500, 1, lx); /* newer: ok */
    store_batch_add_exemplar(b, a, 2400, 1, lx); /* older than the one before */
    assert_int_equal(store_batch_commit(b), 0);
    st = stats(s);
    assert_int_equal(st.exemplars_appended, 3);
    assert_int_equal(st.exemplars_out_of_order, 3);
    assert_int_equal(st.exemplars_in_storage, 3);
    assert_query(s, "req_total", 0, 10000,
                 "{__name__=\"req_total\", job=\"a\"}: x@2000=5 y@2000=6 x@2500=1\n");
    /* A failed check leaves nothing behind: the next batch is checked
     * against what was stored. */
    b = store_batch_new(s);
    store_batch_add_exemplar(b, a, 2500, 1, lx);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(stats(s).exemplars_appended, 3);
    /* Unknown series: dropped. */
    b = store_batch_new(s);
    store_batch_add_exemplar(b, 987654, 3000, 1, lx);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(stats(s).exemplars_in_storage, 3);
    labels_free(lx);
    labels_free(ly);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* Label names and values: at most 128 runes in all (not bytes). */
static void test_label_length(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-exemplars-test");
    store *s = open_ex(dir, 1000);
    uint64_t a = series(s, "req_total", "a");
    char v[512];
    /* "trace_id" (8) + 120 runes of 'é' (2 bytes each) = 128 runes. */
    size_t k = 0;
    for (int i = 0; i < 120; i++) {
        v[k++] = (char)0xc3;
        v[k++] = (char)0xa9;
    }
    v[k] = 0;
    labels *ok = tu_labels("trace_id", v, NULL);
    v[k++] = 'z';
    v[k] = 0;
    labels *over = tu_labels("trace_id", v, NULL);
    store_batch *b = store_batch_new(s);
    store_batch_add_exemplar(b, a, 1000, 1, ok);
    store_batch_add_exemplar(b, a, 2000, 2, over);
    assert_int_equal(store_batch_commit(b), 0);
    store_stats st = stats(s);
    assert_int_equal(st.exemplars_appended, 1);
    assert_int_equal(st.exemplars_in_storage, 1);
    assert_int_equal(st.exemplars_out_of_order, 0);
    /* No labels at all is fine. */
    b = store_batch_new(s);
    store_batch_add_exemplar(b, a, 3000, 3, NULL);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(stats(s).exemplars_appended, 2);
    assert_query(s, "req_total", 2500, 4000, "{__name__=\"req_total\", job=\"a\"}: -@3000=3\n");
    labels_free(ok);
    labels_free(over);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* The total is bounded: the oldest exemplars (in append order, whatever
 * their series) go first; a series that lost all of them no longer counts
 * and its next exemplar is not compared with the evicted newest one. */
static void test_eviction(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-exemplars-test");
    store *s = open_ex(dir, 4);
    uint64_t a = series(s, "req_total", "a");
    uint64_t b = series(s, "req_total", "b");
    add1(s, a, 1000, 1, "a1");
    add1(s, a, 2000, 2, "a2");
    add1(s, b, 1500, 1, "b1");
    add1(s, b, 2500, 2, "b2");
    store_stats st = stats(s);
    assert_int_equal(st.exemplars_in_storage, 4);
    assert_int_equal(st.series_with_exemplars, 2);
    add1(s, b, 3500, 3, "b3");
    add1(s, b, 4500, 4, "b4");
    st = stats(s);
    assert_int_equal(st.exemplars_in_storage, 4);
    assert_int_equal(st.series_with_exemplars, 1);
    assert_int_equal(st.exemplars_appended, 6);
    assert_query(s, "req_total", 0, 10000,
                 "{__name__=\"req_total\", job=\"b\"}: b1@1500=1 b2@2500=2 b3@3500=3 b4@4500=4\n");
    /* a's newest was evicted: an older exemplar for a is accepted. */
    store_batch *bt = store_batch_new(s);
    labels *el = tu_labels("trace_id", "a0", NULL);
    store_batch_add_exemplar(bt, a, 500, 0.5, el);
    /* More in one batch than the bound: only the newest 4 stay. */
    for (int i = 0; i < 5; i++)
        store_batch_add_exemplar(bt, b, 5000 + i, i, el);
    labels_free(el);
    assert_int_equal(store_batch_commit(bt), 0);
    st = stats(s);
    assert_int_equal(st.exemplars_in_storage, 4);
    assert_int_equal(st.series_with_exemplars, 1);
    assert_int_equal(st.exemplars_out_of_order, 0);
    assert_query(s, "req_total", 0, 10000,
                 "{__name__=\"req_total\", job=\"b\"}: a0@5001=1 a0@5002=2 a0@5003=3 a0@5004=4\n");
    store_close(s);
    tu_tmpdir_free(dir);
}

/* Exemplars survive a restart, with each series' newest one (duplicates
 * and out-of-order ones are still recognised) and the counts. */
static void test_restart(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-exemplars-test");
    store *s = open_ex(dir, 100);
    uint64_t a = series(s, "req_total", "a");
    uint64_t b = series(s, "req_total", "b");
    add1(s, a, 1000, 1, "a1");
    add1(s, a, 2000, 2, "a2");
    add1(s, b, 1500, 1, "b1");
    store_close(s);
    s = open_ex(dir, 100);
    store_stats st = stats(s);
    assert_int_equal(st.exemplars_in_storage, 3);
    assert_int_equal(st.series_with_exemplars, 2);
    assert_int_equal(st.exemplars_appended, 0);
    assert_query(s, "req_total", 0, 10000,
                 "{__name__=\"req_total\", job=\"a\"}: a1@1000=1 a2@2000=2\n"
                 "{__name__=\"req_total\", job=\"b\"}: b1@1500=1\n");
    store_batch *bt = store_batch_new(s);
    labels *a2 = tu_labels("trace_id", "a2", NULL);
    store_batch_add_exemplar(bt, a, 2000, 2, a2); /* duplicate of the newest */
    store_batch_add_exemplar(bt, a, 1800, 2, a2); /* out of order */
    labels_free(a2);
    assert_int_equal(store_batch_commit(bt), 0);
    st = stats(s);
    assert_int_equal(st.exemplars_appended, 0);
    assert_int_equal(st.exemplars_out_of_order, 1);
    /* A smaller bound after a restart deletes the oldest at maintenance. */
    store_close(s);
    s = open_ex(dir, 2);
    assert_int_equal(stats(s).exemplars_in_storage, 3);
    assert_int_equal(store_maintain(s, 0), 0);
    st = stats(s);
    assert_int_equal(st.exemplars_in_storage, 2);
    assert_query(s, "req_total", 0, 10000,
                 "{__name__=\"req_total\", job=\"a\"}: a2@2000=2\n"
                 "{__name__=\"req_total\", job=\"b\"}: b1@1500=1\n");
    store_close(s);
    tu_tmpdir_free(dir);
}

/* max_exemplars 0: nothing is kept or returned; store_set_max_exemplars
 * turns it on and off (off deletes what is stored at maintenance). */
static void test_off_and_resize(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-exemplars-test");
    store *s = open_ex(dir, 0);
    assert_false(store_exemplars_enabled(s));
    uint64_t a = series(s, "req_total", "a");
    add1(s, a, 1000, 1, "a1");
    store_stats st = stats(s);
    assert_int_equal(st.exemplars_appended, 0);
    assert_int_equal(st.max_exemplars, 0);
    assert_query(s, "req_total", 0, 10000, "");
    store_set_max_exemplars(s, 3);
    assert_true(store_exemplars_enabled(s));
    for (int i = 0; i < 5; i++)
        add1(s, a, 2000 + i, i, "a");
    st = stats(s);
    assert_int_equal(st.exemplars_in_storage, 3);
    assert_int_equal(st.max_exemplars, 3);
    store_set_max_exemplars(s, 1);
    assert_int_equal(store_maintain(s, 0), 0);
    assert_int_equal(stats(s).exemplars_in_storage, 1);
    assert_query(s, "req_total", 0, 10000, "{__name__=\"req_total\", job=\"a\"}: a@2004=4\n");
    store_set_max_exemplars(s, 0);
    assert_int_equal(store_maintain(s, 0), 0);
    st = stats(s);
    assert_int_equal(st.exemplars_in_storage, 0);
    assert_int_equal(st.series_with_exemplars, 0);
    store_close(s);
    tu_tmpdir_free(dir);
}

/* The write-ahead row of a batch carries its accepted exemplars (and only
 * those), so store_wal_read gives them to remote write; a batch whose only
 * accepted data is an exemplar still writes a row; rows with exemplars
 * replay after a restart like the others. */
static void test_write_ahead_rows(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-exemplars-test");
    store *s = open_ex(dir, 100);
    uint64_t a = series(s, "req_total", "a");
    uint64_t h = series(s, "lat_bucket", "a");
    assert_int_equal(store_wal_consumer_set(s, "rw", store_wal_next_seq(s), 3600000, NULL), 0);
    uint64_t from = store_wal_next_seq(s);
    add1(s, a, 1000, 1, "a1");
    store_batch *b = store_batch_new(s);
    store_batch_add(b, a, 1000, 1); /* a duplicate sample */
    store_batch_add(b, h, 1000, 7); /* a new sample */
    labels *el = tu_labels("trace_id", "t2", "span_id", "s", NULL);
    store_batch_add_exemplar(b, a, 1000, 1, el);   /* duplicate exemplar: not in the row */
    store_batch_add_exemplar(b, h, 990, 0.25, el); /* accepted */
    assert_int_equal(store_batch_commit(b), 0);
    b = store_batch_new(s);
    store_batch_add(b, a, 1000, 1); /* duplicate: no sample accepted */
    store_batch_add_exemplar(b, a, 1100, NAN, el);
    assert_int_equal(store_batch_commit(b), 0);
    labels_free(el);
    /* A plain batch: no exemplars. */
    b = store_batch_new(s);
    store_batch_add(b, a, 2000, 2);
    assert_int_equal(store_batch_commit(b), 0);

    for (int round = 0; round < 2; round++) {
        store_wal_batch *rows;
        size_t n;
        uint64_t first;
        assert_int_equal(store_wal_read(s, from, 10, &rows, &n, &first), 0);
        assert_int_equal(first, from);
        assert_int_equal(n, 4);
        assert_int_equal(rows[0].n, 1);
        assert_int_equal(rows[0].n_exemplars, 1);
        assert_int_equal(rows[0].exemplars[0].ref, a);
        assert_int_equal(rows[0].exemplars[0].t, 1000);
        assert_true(rows[0].exemplars[0].v == 1);
        assert_int_equal(rows[1].n, 1);
        assert_int_equal(rows[1].samples[0].ref, h);
        assert_int_equal(rows[1].n_exemplars, 1);
        assert_int_equal(rows[1].exemplars[0].ref, h);
        assert_int_equal(rows[1].exemplars[0].t, 990);
        assert_true(rows[1].exemplars[0].v == 0.25);
        buf lb;
        buf_init(&lb, BUF_UNLIMITED);
        labels_format(rows[1].exemplars[0].labels, &lb);
        assert_string_equal(buf_cstr(&lb), "{span_id=\"s\", trace_id=\"t2\"}");
        buf_cleanup(&lb);
        assert_int_equal(rows[2].n, 0);
        assert_int_equal(rows[2].n_exemplars, 1);
        assert_true(isnan(rows[2].exemplars[0].v));
        assert_int_equal(rows[3].n, 1);
        assert_int_equal(rows[3].n_exemplars, 0);
        store_wal_batches_free(rows, n);
        if (round == 0) {
            /* Rows kept for the consumer read the same after a restart. */
            store_close(s);
            s = open_ex(dir, 100);
        }
    }
    store_reader *r;
    assert_int_equal(store_reader_open(s, &r), 0);
    store_sample *v;
    size_t n;
    assert_int_equal(store_read_samples(r, a, 0, 10000, &v, &n), 0);
    assert_int_equal(n, 2);
    mem_free(v);
    store_reader_close(r);
    buf rep;
    buf_init(&rep, BUF_UNLIMITED);
    store_close(s);
    assert_int_equal(store_check(dir, &rep), 0);
    buf_cleanup(&rep);
    tu_tmpdir_free(dir);
}

/* SIGKILL while committing batches with exemplars: every batch the child
 * reported committed has its exemplars after reopening. */
static void test_sigkill(void **state)
{
    (void)state;
    char *dir = tu_tmpdir_new("wip-exemplars-test");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        store_options o = {.path = dir, .max_exemplars = 1000000};
        store *s;
        if (store_open(&s, &o, NULL) != 0) _exit(2);
        labels *ls = tu_labels("__name__", "req_total", "job", "k", NULL);
        uint64_t ref;
        if (store_series_ref(s, ls, &ref, NULL) != 0) _exit(3);
        labels_free(ls);
        for (int64_t i = 0;; i++) {
            char tr[32];
            snprintf(tr, sizeof tr, "t%lld", (long long)i);
            store_batch *b = store_batch_new(s);
            store_batch_add(b, ref, i * 10, (double)i);
            labels *el = tu_labels("trace_id", tr, NULL);
            store_batch_add_exemplar(b, ref, i * 10, (double)i, el);
            labels_free(el);
            if (store_batch_commit(b) != 0) _exit(4);
            if (write(fds[1], &i, sizeof i) != sizeof i) _exit(5);
        }
    }
    close(fds[1]);
    int64_t last = -1, x;
    while (last < 300 && read(fds[0], &x, sizeof x) == sizeof x)
        last = x;
    kill(pid, SIGKILL);
    while (read(fds[0], &x, sizeof x) == sizeof x)
        last = x;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    store *s = open_ex(dir, 1000000);
    store_stats st = stats(s);
    assert_true(st.exemplars_in_storage >= (uint64_t)last + 1);
    const char *sel[1] = {"req_total"};
    char *got = query(s, sel, 1, 0, last * 10);
    /* Every committed one, in order. */
    size_t count = 0;
    for (const char *p = strchr(got, '@'); p; p = strchr(p + 1, '@'))
        count++;
    assert_int_equal(count, (size_t)last + 1);
    char want[64];
    snprintf(want, sizeof want, " t%lld@%lld=%lld\n", (long long)last, (long long)last * 10,
             (long long)last);
    assert_non_null(strstr(got, want));
    mem_free(got);
    store_close(s);
    tu_tmpdir_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_duplicate_and_out_of_order),
        cmocka_unit_test(test_label_length),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_off_and_resize),
        cmocka_unit_test(test_write_ahead_rows),
        cmocka_unit_test(test_sigkill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
