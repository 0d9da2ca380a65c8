/* Unit tests for agent/rwrecv: a remote write body goes into a real store
 * (in a temporary directory) in one batch, floats, histograms and metadata;
 * bad bodies and samples too far ahead are -EINVAL and store nothing;
 * resent and out-of-order samples are dropped and counted by the store. */
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <time.h>
#include <unistd.h>

#include "mem.h"
#include "rwproto.h"
#include "rwrecv.h"
#include "store.h"

typedef struct fixture {
    char dir[64];
    store *st;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/wip-rwproto-rwrecv-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    store_options o = {.path = f->dir, .max_exemplars = 1000};
    buf err;
    buf_init(&err, 4096);
    int rc = store_open(&f->st, &o, &err);
    if (rc != 0) fail_msg("store_open: %s", buf_cstr(&err));
    buf_cleanup(&err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_close(f->st);
    tu_rm_tree(f->dir);
    free(f);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static labels *name_only(const char *name)
{
    labels_builder b;
    labels_builder_init(&b);
    labels_builder_set(&b, "__name__", 8, name, strlen(name));
    labels_builder_set(&b, "job", 3, "rw", 2);
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return ls;
}

static void encode(const rwproto_request *r, buf *out)
{
    buf err;
    buf_init(&err, 4096);
    buf_init(out, BUF_UNLIMITED);
    assert_int_equal(rwproto_encode(r, out, &err), 0);
    buf_cleanup(&err);
}

static int append(store *st, const buf *body, buf *err)
{
    buf_reset(err);
    return rwrecv_append(st, body->data, body->len, err);
}

/* The series named `name`: its float samples and histograms. Returns the
 * number of series found (0 or 1). */
static size_t read_series(store *st, const char *name, store_sample **s, size_t *ns,
                          store_hsample **h, size_t *nh)
{
    store_reader *r = NULL;
    assert_int_equal(store_reader_open(st, &r), 0);
    label_matcher m;
    buf err;
    buf_init(&err, 256);
    assert_int_equal(labels_matcher_init(&m, MATCH_EQ, "__name__", 8, name, strlen(name), &err), 0);
    store_select_result res = {0};
    assert_int_equal(store_select(r, &m, 1, INT64_MIN, INT64_MAX, &res), 0);
    size_t found = res.n;
    *s = NULL, *ns = 0, *h = NULL, *nh = 0;
    if (found == 1) {
        assert_int_equal(store_read_samples(r, res.series[0].ref, INT64_MIN, INT64_MAX, s, ns), 0);
        assert_int_equal(store_read_histograms(r, res.series[0].ref, INT64_MIN, INT64_MAX, h, nh),
                         0);
    }
    store_select_result_free(&res);
    labels_matcher_cleanup(&m);
    buf_cleanup(&err);
    store_reader_close(r);
    return found;
}

static void test_append_and_read_back(void **state)
{
    fixture *f = *state;
    int64_t t0 = now_ms() - 60000;
    labels *lf = name_only("rw_float"), *lh = name_only("rw_hist");
    rwproto_sample s[] = {{t0, 1}, {t0 + 1000, 2}, {t0 + 2000, 4}};
    nhist_span sp[] = {{0, 2}};
    double c[] = {1, 3};
    nhist h = {.count = 4, .sum = 2.5, .pos_spans = sp, .n_pos_spans = 1, .pos = c, .n_pos = 2};
    rwproto_hsample hs[] = {{t0, h}};
    rwproto_series ser[] = {{.ls = lf, .samples = s, .n_samples = 3},
                            {.ls = lh, .hists = hs, .n_hists = 1}};
    rwproto_metadata md = {"rw_float", "A float.", "", EXPFMT_GAUGE};
    rwproto_request r = {.series = ser, .n_series = 2, .metadata = &md, .n_metadata = 1};
    buf body, err;
    encode(&r, &body);
    buf_init(&err, 4096);
    assert_int_equal(append(f->st, &body, &err), 0);

    store_sample *gs;
    store_hsample *gh;
    size_t ns, nh;
    assert_int_equal(read_series(f->st, "rw_float", &gs, &ns, &gh, &nh), 1);
    assert_int_equal(ns, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(gs[i].t, s[i].t);
        assert_true(gs[i].v == s[i].v);
    }
    mem_free(gs), store_hsamples_free(gh, nh);
    assert_int_equal(read_series(f->st, "rw_hist", &gs, &ns, &gh, &nh), 1);
    assert_int_equal(ns, 0);
    assert_int_equal(nh, 1);
    assert_int_equal(gh[0].t, t0);
    assert_true(gh[0].h.count == 4);
    assert_int_equal(gh[0].h.n_pos, 2);
    mem_free(gs), store_hsamples_free(gh, nh);

    store_reader *rd;
    assert_int_equal(store_reader_open(f->st, &rd), 0);
    enum expfmt_type type;
    char *help = NULL, *unit = NULL;
    assert_int_equal(store_get_metadata(rd, "rw_float", &type, &help, &unit), 0);
    assert_int_equal(type, EXPFMT_GAUGE);
    assert_string_equal(help, "A float.");
    mem_free(help), mem_free(unit);
    store_reader_close(rd);

    /* The same body again: stored once, the resent samples counted. */
    store_stats before, after;
    store_get_stats(f->st, &before);
    assert_int_equal(append(f->st, &body, &err), 0);
    store_get_stats(f->st, &after);
    assert_true(after.duplicate_samples + after.out_of_order_samples >
                before.duplicate_samples + before.out_of_order_samples);
    assert_int_equal(read_series(f->st, "rw_float", &gs, &ns, &gh, &nh), 1);
    assert_int_equal(ns, 3);
    mem_free(gs), store_hsamples_free(gh, nh);

    /* An older sample: dropped and counted, the request still succeeds. */
    rwproto_sample old[] = {{t0 - 5000, 9}, {t0 + 3000, 8}};
    rwproto_series so = {.ls = lf, .samples = old, .n_samples = 2};
    rwproto_request ro = {.series = &so, .n_series = 1};
    buf b2;
    encode(&ro, &b2);
    store_get_stats(f->st, &before);
    assert_int_equal(append(f->st, &b2, &err), 0);
    store_get_stats(f->st, &after);
    assert_int_equal(after.out_of_order_samples, before.out_of_order_samples + 1);
    assert_int_equal(read_series(f->st, "rw_float", &gs, &ns, &gh, &nh), 1);
    assert_int_equal(ns, 4);
    assert_int_equal(gs[3].t, t0 + 3000);
    mem_free(gs), store_hsamples_free(gh, nh);

    buf_cleanup(&b2), buf_cleanup(&body), buf_cleanup(&err);
    labels_free(lf), labels_free(lh);
}

static void test_refused_requests_store_nothing(void **state)
{
    fixture *f = *state;
    buf err;
    buf_init(&err, 4096);
    store_stats before, after;
    store_get_stats(f->st, &before);

    /* Not snappy. */
    assert_int_equal(rwrecv_append(f->st, "garbage", 7, &err), -EINVAL);
    assert_non_null(strstr(buf_cstr(&err), "snappy"));

    /* A good series next to one too far in the future. */
    int64_t now = now_ms();
    labels *lg = name_only("rw_ok_but_refused"), *lf = name_only("rw_future");
    rwproto_sample sg[] = {{now, 1}}, sf[] = {{now + 11 * 60 * 1000, 1}};
    rwproto_series ser[] = {{.ls = lg, .samples = sg, .n_samples = 1},
                            {.ls = lf, .samples = sf, .n_samples = 1}};
    rwproto_request r = {.series = ser, .n_series = 2};
    buf body;
    encode(&r, &body);
    assert_int_equal(append(f->st, &body, &err), -EINVAL);
    assert_non_null(strstr(buf_cstr(&err), "series 1: out of bounds"));

    /* Nine minutes ahead is fine (Prometheus allows ten). */
    sf[0].t = now + 9 * 60 * 1000;
    buf b2;
    encode(&r, &b2);
    store_stats mid;
    store_get_stats(f->st, &mid);
    assert_int_equal(mid.series, before.series);
    assert_int_equal(mid.samples_appended, before.samples_appended);
    assert_int_equal(append(f->st, &b2, &err), 0);
    store_get_stats(f->st, &after);
    assert_int_equal(after.series, before.series + 2);

    buf_cleanup(&b2), buf_cleanup(&body), buf_cleanup(&err);
    labels_free(lg), labels_free(lf);
}

/* Exemplars are stored: with samples in their TimeSeries or in a
 * TimeSeries of their own (as Prometheus sends them); a resent one is a
 * silent duplicate, an older one is dropped (counted) without failing the
 * request. */
static void test_exemplars_stored(void **state)
{
    fixture *f = *state;
    int64_t t0 = now_ms() - 60000;
    labels *ls = name_only("rw_ex");
    labels_builder b;
    labels_builder_init(&b);
    labels_builder_set(&b, "trace_id", 8, "abc", 3);
    labels *el = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    rwproto_sample sm = {t0, 2};
    rwproto_exemplar ex[3] = {{el, t0 - 10, 1.5}, {el, t0, 2}, {el, t0 - 20, 9}};
    rwproto_series ser[2] = {{.ls = ls, .samples = &sm, .n_samples = 1},
                             {.ls = ls, .exemplars = ex, .n_exemplars = 2}};
    rwproto_request req = {.series = ser, .n_series = 2};
    buf body, err;
    buf_init(&err, 4096);
    encode(&req, &body);
    assert_int_equal(append(f->st, &body, &err), 0);
    buf_cleanup(&body);
    /* Resent, plus an older one. */
    ser[1].n_exemplars = 3;
    encode(&req, &body);
    assert_int_equal(append(f->st, &body, &err), 0);
    buf_cleanup(&body);
    store_stats st;
    store_get_stats(f->st, &st);
    assert_int_equal(st.exemplars_appended, 2);
    assert_int_equal(st.exemplars_in_storage, 2);
    assert_int_equal(st.exemplars_out_of_order, 2); /* t0-10 after t0, and t0-20 */

    store_reader *r;
    assert_int_equal(store_reader_open(f->st, &r), 0);
    label_matcher m;
    assert_int_equal(labels_matcher_init(&m, MATCH_EQ, "__name__", 8, "rw_ex", 5, NULL), 0);
    const label_matcher *sets[1] = {&m};
    size_t lens[1] = {1};
    store_exemplar_series *res;
    size_t n;
    assert_int_equal(store_exemplars_select(r, sets, lens, 1, INT64_MIN, INT64_MAX, &res, &n), 0);
    assert_int_equal(n, 1);
    assert_true(labels_equal(res[0].labels, ls));
    assert_int_equal(res[0].n, 2);
    assert_int_equal(res[0].ex[0].t, t0 - 10);
    assert_true(res[0].ex[0].v == 1.5);
    assert_true(labels_equal(res[0].ex[0].labels, el));
    assert_int_equal(res[0].ex[1].t, t0);
    store_exemplar_series_free(res, n);
    labels_matcher_cleanup(&m);
    store_reader_close(r);
    buf_cleanup(&err);
    labels_free(ls);
    labels_free(el);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_and_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_requests_store_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exemplars_stored, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
