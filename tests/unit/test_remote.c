/* remote: the remote write sender against a fake receiver (fakesrv.h) that
 * decodes every request with rwproto_decode and records what arrived. */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>

#include "testutil.h"
#include "teststore.h"

#include "fakesrv.h"

#include "buf.h"
#include "config.h"
#include "labels.h"
#include "mem.h"
#include "registry.h"
#include "remote.h"
#include "rwproto.h"
#include "store.h"
#include "strutil.h"

/* ---- helpers ------------------------------------------------------------------ */

static store *open_store(const char *dir)
{
    store_options o = {.path = dir, .max_exemplars = 100000};
    return tu_store_open(&o);
}

static config *load_cfg(const char *fmt, ...)
{
    char yaml[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(yaml, sizeof yaml, fmt, ap);
    va_end(ap);
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    config *c = NULL;
    if (config_load_string(yaml, strlen(yaml), "test.yml", &c, &err) != 0)
        fail_msg("config: %s\n%s", buf_cstr(&err), yaml);
    buf_cleanup(&err);
    return c;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the receiver ---------------------------------------------------------------- */

#define MAX_SERIES 256
#define MAX_SCRIPT 16

typedef struct rseries_rec {
    char *key; /* labels_format */
    int64_t *t;
    double *v;
    size_t n, cap;
} rseries_rec;

typedef struct receiver {
    pthread_mutex_t mu;
    rseries_rec series[MAX_SERIES];
    size_t n_series;
    size_t total;           /* samples accepted */
    int script[MAX_SCRIPT]; /* statuses to answer next (0 = end); -1 = hang; -2 = apply,
                               then hang */
    size_t n_script, pos;
    char retry_after[16]; /* sent with 429/5xx answers when set */
    unsigned long requests, bad_requests;
    char content_encoding[64], content_type[64], version[32], user_agent[64], custom[64];
    char auth[128];
    size_t metadata;
    char reject[32]; /* answer 503 to requests holding a series of this name */
    /* Exemplars: one line each, "<series> <exemplar labels> <t>=<v> <samples in its
     * TimeSeries>\n", in arrival order. */
    char *exlog;
    size_t exlog_len, n_ex;
    bool reject_exemplars; /* answer 503 to requests holding an exemplar */
    /* As a Prometheus receiver: a request holding a sample older than its
     * series' newest is refused whole (400, nothing applied); one equal to
     * the newest (same value) is ignored. */
    bool prometheus;
    unsigned long out_of_order; /* requests refused so */
} receiver;

static void receiver_init(receiver *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
}

static void receiver_cleanup(receiver *r)
{
    for (size_t i = 0; i < r->n_series; i++) {
        free(r->series[i].key);
        free(r->series[i].t);
        free(r->series[i].v);
    }
    free(r->exlog);
    pthread_mutex_destroy(&r->mu);
}

static void receiver_script(receiver *r, const int *statuses, size_t n)
{
    pthread_mutex_lock(&r->mu);
    memcpy(r->script, statuses, n * sizeof *statuses);
    r->n_script = n;
    r->pos = 0;
    pthread_mutex_unlock(&r->mu);
}

static rseries_rec *rec_series(receiver *r, const char *key)
{
    for (size_t i = 0; i < r->n_series; i++)
        if (strcmp(r->series[i].key, key) == 0) return &r->series[i];
    assert_true(r->n_series < MAX_SERIES);
    rseries_rec *s = &r->series[r->n_series++];
    memset(s, 0, sizeof *s);
    s->key = strdup(key);
    return s;
}

static rseries_rec *find(receiver *r, const char *key);

static bool handle(fsrv *srv, int fd, const fsrv_req *rq, void *ctx)
{
    receiver *r = ctx;
    pthread_mutex_lock(&r->mu);
    r->requests++;
    int status = r->pos < r->n_script ? r->script[r->pos++] : 200;
    fsrv_header(rq, "Content-Encoding", r->content_encoding, sizeof r->content_encoding);
    fsrv_header(rq, "Content-Type", r->content_type, sizeof r->content_type);
    fsrv_header(rq, "X-Prometheus-Remote-Write-Version", r->version, sizeof r->version);
    fsrv_header(rq, "User-Agent", r->user_agent, sizeof r->user_agent);
    fsrv_header(rq, "X-Custom", r->custom, sizeof r->custom);
    fsrv_header(rq, "Authorization", r->auth, sizeof r->auth);
    char ra[16];
    snprintf(ra, sizeof ra, "%s", r->retry_after);
    pthread_mutex_unlock(&r->mu);
    if (status == -1) { /* hang until the client gives up or the server stops */
        fsrv_sleep(srv, 5000);
        return false;
    }
    if (status != 200 && status != -2) {
        char extra[64] = "";
        if (ra[0]) snprintf(extra, sizeof extra, "Retry-After: %s\r\n", ra);
        const char *msg = "refused by the test\n";
        fsrv_printf(fd,
                    "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
                    status, fsrv_reason(status), extra, strlen(msg), msg);
        return true;
    }
    rwproto_request req;
    buf err;
    buf_init(&err, 4096);
    if (rwproto_decode(rq->body, rq->body_len, 0, &req, &err) != 0) {
        pthread_mutex_lock(&r->mu);
        r->bad_requests++;
        pthread_mutex_unlock(&r->mu);
        fsrv_respond(fd, 400, "text/plain", buf_cstr(&err), err.len);
        buf_cleanup(&err);
        return true;
    }
    buf_cleanup(&err);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; r->reject_exemplars && i < req.n_series; i++) {
        if (req.series[i].n_exemplars) {
            pthread_mutex_unlock(&r->mu);
            rwproto_request_cleanup(&req);
            fsrv_respond(fd, 503, "text/plain", "busy\n", 5);
            return true;
        }
    }
    for (size_t i = 0; r->reject[0] && i < req.n_series; i++) {
        size_t nl;
        const char *n = labels_metric_name(req.series[i].ls, &nl);
        if (nl == strlen(r->reject) && memcmp(n, r->reject, nl) == 0) {
            pthread_mutex_unlock(&r->mu);
            rwproto_request_cleanup(&req);
            fsrv_respond(fd, 503, "text/plain", "busy\n", 5);
            return true;
        }
    }
    buf key;
    buf_init(&key, BUF_UNLIMITED);
    for (size_t i = 0; r->prometheus && i < req.n_series; i++) {
        buf_reset(&key);
        labels_format(req.series[i].ls, &key);
        rseries_rec *s = find(r, buf_cstr(&key));
        for (size_t k = 0; s && s->n && k < req.series[i].n_samples; k++) {
            if (req.series[i].samples[k].t < s->t[s->n - 1]) {
                r->out_of_order++;
                pthread_mutex_unlock(&r->mu);
                buf_cleanup(&key);
                rwproto_request_cleanup(&req);
                fsrv_respond(fd, 400, "text/plain", "out of order sample\n", 20);
                return true;
            }
        }
    }
    for (size_t i = 0; i < req.n_series; i++) {
        buf_reset(&key);
        labels_format(req.series[i].ls, &key);
        rseries_rec *s = rec_series(r, buf_cstr(&key));
        for (size_t k = 0; k < req.series[i].n_samples; k++) {
            if (r->prometheus && s->n && req.series[i].samples[k].t == s->t[s->n - 1])
                continue; /* a duplicate */
            if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 64;
                s->t = realloc(s->t, s->cap * sizeof *s->t);
                s->v = realloc(s->v, s->cap * sizeof *s->v);
            }
            s->t[s->n] = req.series[i].samples[k].t;
            s->v[s->n] = req.series[i].samples[k].v;
            s->n++;
            r->total++;
        }
        for (size_t k = 0; k < req.series[i].n_exemplars; k++) {
            const rwproto_exemplar *x = &req.series[i].exemplars[k];
            buf line;
            buf_init(&line, BUF_UNLIMITED);
            buf_printf(&line, "%s ", buf_cstr(&key));
            labels_format(x->ls, &line);
            buf_printf(&line, " %lld=%g %zu\n", (long long)x->t, x->v,
                       req.series[i].n_samples + req.series[i].n_hists);
            r->exlog = realloc(r->exlog, r->exlog_len + line.len + 1);
            memcpy(r->exlog + r->exlog_len, line.data, line.len + 1);
            r->exlog_len += line.len;
            r->n_ex++;
            buf_cleanup(&line);
        }
    }
    r->metadata += req.n_metadata;
    buf_cleanup(&key);
    pthread_mutex_unlock(&r->mu);
    rwproto_request_cleanup(&req);
    if (status == -2) { /* applied, but the answer never comes */
        fsrv_sleep(srv, 5000);
        return false;
    }
    fsrv_respond(fd, 204, "text/plain", "", 0);
    return true;
}

static size_t received(receiver *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->total;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Waits up to ms for at least n samples. */
static bool wait_received(receiver *r, size_t n, int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        if (received(r) >= n) return true;
        usleep(10 * 1000);
    }
    return received(r) >= n;
}

/* The samples of one series (by its labels_format text); NULL if none. */
static rseries_rec *find(receiver *r, const char *key)
{
    for (size_t i = 0; i < r->n_series; i++)
        if (strcmp(r->series[i].key, key) == 0) return &r->series[i];
    return NULL;
}

/* ---- environment ------------------------------------------------------------------- */

typedef struct env {
    char *dir;
    store *st;
    registry *reg;
    receiver rcv;
    fsrv *srv;
    int port;
} env;

static void env_init(env *e)
{
    memset(e, 0, sizeof *e);
    e->dir = tu_tmpdir_new("sidewatch-remote-test");
    e->st = open_store(e->dir);
    e->reg = registry_new();
    receiver_init(&e->rcv);
    e->srv = fsrv_start_tcp(handle, &e->rcv, &e->port);
    assert_non_null(e->srv);
}

static void env_cleanup(env *e)
{
    fsrv_stop(e->srv);
    receiver_cleanup(&e->rcv);
    registry_free(e->reg);
    store_close(e->st);
    tu_tmpdir_free(e->dir);
}

static remote *start(env *e, config *cfg)
{
    remote_options o = {.st = e->st, .reg = e->reg};
    remote *r = NULL;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    if (remote_start(&r, &o, cfg, &err) != 0) fail_msg("remote_start: %s", buf_cstr(&err));
    buf_cleanup(&err);
    return r;
}

/* The value of a queue metric (labels remote_name, url [, reason]). */
static double metric(env *e, const char *name, const char *rname, const char *reason)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/write", e->port);
    const char *ql[] = {"remote_name", "url", NULL};
    const char *qr[] = {"remote_name", "url", "reason", NULL};
    registry_family *f;
    if (strstr(name, "_total"))
        f = registry_counter(e->reg, name, "", reason ? qr : ql);
    else
        f = registry_gauge(e->reg, name, "", ql);
    assert_non_null(f);
    const char *v[] = {rname, url, reason};
    return registry_value(registry_child(f, v));
}

/* Waits up to ms for a queue metric to reach want (the sender counts
 * after the receiver has answered). */
static double wait_metric(env *e, const char *name, double want, int ms)
{
    int64_t end = now_ms() + ms;
    double v;
    while ((v = metric(e, name, "rw1", NULL)) < want && now_ms() < end)
        usleep(10 * 1000);
    return v;
}

/* Appends one row: for each series i of n, sample (t, base_v[i] + t). */
static void append_row(store *st, const uint64_t *refs, size_t n, int64_t t)
{
    store_batch *b = store_batch_new(st);
    for (size_t i = 0; i < n; i++)
        store_batch_add(b, refs[i], t, (double)(i * 1000) + (double)t);
    assert_int_equal(store_batch_commit(b), 0);
}

static uint64_t ref_of(store *st, labels *ls)
{
    uint64_t ref;
    bool created;
    assert_int_equal(store_series_ref(st, ls, &ref, &created), 0);
    labels_free(ls);
    return ref;
}

/* Every series key in keys got exactly the samples t0..t0+n-1 (value
 * i*1000 + t), in order. */
static void check_series(receiver *r, const char *key, size_t i, int64_t t0, size_t n)
{
    pthread_mutex_lock(&r->mu);
    rseries_rec *s = find(r, key);
    if (!s) fail_msg("series %s never arrived", key);
    if (s->n != n) fail_msg("series %s: %zu samples arrived, want %zu", key, s->n, n);
    for (size_t k = 0; k < n; k++) {
        if (s->t[k] != t0 + (int64_t)k)
            fail_msg("series %s: sample %zu has t=%lld, want %lld", key, k, (long long)s->t[k],
                     (long long)(t0 + (int64_t)k));
        assert_true(s->v[k] == (double)(i * 1000) + (double)s->t[k]);
    }
    pthread_mutex_unlock(&r->mu);
}

static const char *QC = "      queue_config: {batch_send_deadline: 20ms, min_backoff: 10ms, "
                        "max_backoff: 50ms, max_samples_per_send: %d, min_shards: %d, "
                        "max_shards: %d, capacity: %d}\n";

static config *cfg_simple(env *e, const char *extra_top, const char *extra_rw, int per_send,
                          int min_shards, int max_shards)
{
    char qc[512];
    snprintf(qc, sizeof qc, QC, per_send, min_shards, max_shards, 1000);
    return load_cfg("%s"
                    "remote_write:\n"
                    "    - url: http://127.0.0.1:%d/api/v1/write\n"
                    "      name: rw1\n"
                    "      remote_timeout: 300ms\n"
                    "      metadata_config: {send: false}\n"
                    "%s%s",
                    extra_top ? extra_top : "", e->port, qc, extra_rw ? extra_rw : "");
}

/* ---- tests ---------------------------------------------------------------------------- */

/* Samples arrive once each and in order per series, with the remote write
 * headers; external labels are added (the series' own label wins);
 * write_relabel_configs drop series and change labels. */
static void test_order_labels_headers(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = cfg_simple(&e, "global:\n  external_labels: {cluster: c1, job: ext}\n",
                             "      headers: {X-Custom: hello}\n"
                             "      authorization: {credentials: s3cret}\n"
                             "      write_relabel_configs:\n"
                             "        - {source_labels: [__name__], regex: drop_me, action: drop}\n"
                             "        - {target_label: env, replacement: prod}\n",
                             7, 1, 1);
    remote *r = start(&e, cfg);
    uint64_t refs[3] = {
        ref_of(e.st, tu_labels("__name__", "a", "job", "app", NULL)),
        ref_of(e.st, tu_labels("__name__", "b", "instance", "x", NULL)),
        ref_of(e.st, tu_labels("__name__", "drop_me", "job", "app", NULL)),
    };
    int64_t t0 = 1700000000000;
    for (int64_t t = 0; t < 40; t++)
        append_row(e.st, refs, 3, t0 + t);
    assert_true(wait_received(&e.rcv, 80, 10000));
    usleep(200 * 1000); /* nothing more may come */
    assert_int_equal(received(&e.rcv), 80);
    check_series(&e.rcv, "{__name__=\"a\", cluster=\"c1\", env=\"prod\", job=\"app\"}", 0, t0, 40);
    check_series(&e.rcv,
                 "{__name__=\"b\", cluster=\"c1\", env=\"prod\", instance=\"x\", job=\"ext\"}", 1,
                 t0, 40);
    assert_int_equal(e.rcv.n_series, 2);
    assert_string_equal(e.rcv.content_encoding, "snappy");
    assert_string_equal(e.rcv.content_type, "application/x-protobuf");
    assert_string_equal(e.rcv.version, "0.1.0");
    assert_true(strncmp(e.rcv.user_agent, "sidewatch/", 10) == 0);
    assert_string_equal(e.rcv.custom, "hello");
    assert_string_equal(e.rcv.auth, "Bearer s3cret");
    /* Batches of at most 7 samples: at least 80/7 requests. */
    assert_true(e.rcv.requests >= 12);
    assert_true(wait_metric(&e, "prometheus_remote_storage_samples_total", 80, 5000) == 80);
    assert_true(metric(&e, "prometheus_remote_storage_samples_dropped_total", "rw1",
                       "dropped_series") == 40);
    assert_true(metric(&e, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds", "rw1",
                       NULL) == (double)(t0 + 39) / 1000.0);
    assert_true(metric(&e, "prometheus_remote_storage_shards", "rw1", NULL) == 1);
    remote_stop(r);
    config_unref(cfg);
    env_cleanup(&e);
}

/* 500 twice, then success: retried, nothing lost or duplicated. Then 429
 * (with Retry-After: 0) is retried as well. */
static void test_retry_5xx_and_429(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = cfg_simple(&e, NULL, NULL, 100, 1, 1);
    receiver_script(&e.rcv, (int[]){500, 503, 200}, 3);
    remote *r = start(&e, cfg);
    uint64_t refs[2] = {ref_of(e.st, tu_labels("__name__", "a", NULL)),
                        ref_of(e.st, tu_labels("__name__", "b", NULL))};
    int64_t t0 = 1000;
    for (int64_t t = 0; t < 10; t++)
        append_row(e.st, refs, 2, t0 + t);
    assert_true(wait_received(&e.rcv, 20, 10000));
    assert_true(metric(&e, "prometheus_remote_storage_samples_retried_total", "rw1", NULL) > 0);
    assert_true(e.rcv.requests >= 3);

    snprintf(e.rcv.retry_after, sizeof e.rcv.retry_after, "0");
    receiver_script(&e.rcv, (int[]){429, 429, 200}, 3);
    double retried = metric(&e, "prometheus_remote_storage_samples_retried_total", "rw1", NULL);
    for (int64_t t = 10; t < 20; t++)
        append_row(e.st, refs, 2, t0 + t);
    assert_true(wait_received(&e.rcv, 40, 10000));
    usleep(200 * 1000);
    assert_int_equal(received(&e.rcv), 40);
    check_series(&e.rcv, "{__name__=\"a\"}", 0, t0, 20);
    check_series(&e.rcv, "{__name__=\"b\"}", 1, t0, 20);
    assert_true(metric(&e, "prometheus_remote_storage_samples_retried_total", "rw1", NULL) >
                retried);
    assert_true(metric(&e, "prometheus_remote_storage_samples_failed_total", "rw1", NULL) == 0);
    assert_true(wait_metric(&e, "prometheus_remote_storage_samples_total", 40, 5000) == 40);
    remote_stop(r);
    config_unref(cfg);
    env_cleanup(&e);
}

/* 400: the batch is dropped and counted as failed; later ones arrive. */
static void test_400_dropped(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = cfg_simple(&e, NULL, NULL, 5, 1, 1);
    receiver_script(&e.rcv, (int[]){400}, 1);
    remote *r = start(&e, cfg);
    uint64_t refs[5];
    for (int i = 0; i < 5; i++) {
        char n[16];
        snprintf(n, sizeof n, "m%d", i);
        refs[i] = ref_of(e.st, tu_labels("__name__", n, NULL));
    }
    append_row(e.st, refs, 5, 100); /* one row of 5: exactly the first batch */
    int64_t end = now_ms() + 10000;
    while (metric(&e, "prometheus_remote_storage_samples_failed_total", "rw1", NULL) < 5 &&
           now_ms() < end)
        usleep(10 * 1000);
    assert_true(metric(&e, "prometheus_remote_storage_samples_failed_total", "rw1", NULL) == 5);
    assert_int_equal(received(&e.rcv), 0);
    append_row(e.st, refs, 5, 101);
    assert_true(wait_received(&e.rcv, 5, 10000));
    assert_true(wait_metric(&e, "prometheus_remote_storage_samples_total", 5, 5000) == 5);
    assert_true(metric(&e, "prometheus_remote_storage_samples_retried_total", "rw1", NULL) == 0);
    pthread_mutex_lock(&e.rcv.mu);
    assert_int_equal(find(&e.rcv, "{__name__=\"m0\"}")->t[0], 101);
    pthread_mutex_unlock(&e.rcv.mu);
    remote_stop(r);
    config_unref(cfg);
    env_cleanup(&e);
}

/* A receiver that hangs is cut off by remote_timeout (300 ms) and the batch
 * is retried; stopping does not wait for the hanging request. */
static void test_hanging_receiver(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = cfg_simple(&e, NULL, NULL, 100, 1, 1);
    receiver_script(&e.rcv, (int[]){-1, 200}, 2);
    remote *r = start(&e, cfg);
    uint64_t ref = ref_of(e.st, tu_labels("__name__", "a", NULL));
    int64_t t_start = now_ms();
    append_row(e.st, &ref, 1, 5);
    assert_true(wait_received(&e.rcv, 1, 10000));
    int64_t took = now_ms() - t_start;
    assert_true(took >= 250); /* the hang lasted until the timeout */
    assert_true(took < 4000); /* and not until the server gave up (5 s) */
    assert_true(metric(&e, "prometheus_remote_storage_samples_retried_total", "rw1", NULL) == 1);
    /* Stopping while a request hangs returns promptly. */
    receiver_script(&e.rcv, (int[]){-1}, 1);
    append_row(e.st, &ref, 1, 6);
    usleep(100 * 1000);
    int64_t s0 = now_ms();
    remote_stop(r);
    assert_true(now_ms() - s0 < 1500);
    config_unref(cfg);
    env_cleanup(&e);
}

/* A queue stopped and started again (store closed and reopened in
 * between) resumes at its cursor: rows appended while it was stopped
 * arrive, nothing twice. */
static void test_restart_resumes(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = cfg_simple(&e, NULL, NULL, 50, 1, 1);
    remote *r = start(&e, cfg);
    uint64_t refs[2] = {ref_of(e.st, tu_labels("__name__", "a", NULL)),
                        ref_of(e.st, tu_labels("__name__", "b", NULL))};
    for (int64_t t = 0; t < 10; t++)
        append_row(e.st, refs, 2, 1000 + t);
    assert_true(wait_received(&e.rcv, 20, 10000));
    remote_stop(r);
    /* While stopped: more rows; the store closes and opens again. */
    for (int64_t t = 10; t < 25; t++)
        append_row(e.st, refs, 2, 1000 + t);
    store_close(e.st);
    e.st = open_store(e.dir);
    assert_int_equal(received(&e.rcv), 20);
    /* A fresh registry, as after a process restart. */
    registry_free(e.reg);
    e.reg = registry_new();
    r = start(&e, cfg);
    for (int64_t t = 25; t < 30; t++)
        append_row(e.st, refs, 2, 1000 + t);
    assert_true(wait_received(&e.rcv, 60, 10000));
    usleep(300 * 1000);
    assert_int_equal(received(&e.rcv), 60);
    check_series(&e.rcv, "{__name__=\"a\"}", 0, 1000, 30);
    check_series(&e.rcv, "{__name__=\"b\"}", 1, 1000, 30);
    assert_true(wait_metric(&e, "prometheus_remote_storage_samples_total", 40, 5000) == 40);
    remote_stop(r);
    config_unref(cfg);
    env_cleanup(&e);
}

static size_t received_exemplars(receiver *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->n_ex;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* One row: samples (t, i*1000 + t) of each series and, for series a
 * (refs[0]), an exemplar {trace_id="a<t>"} at t; for b (refs[1]) at even
 * t an exemplar older than its sample (t - 500). */
static void append_row_ex(store *st, const uint64_t *refs, int64_t t)
{
    store_batch *b = store_batch_new(st);
    char tr[32];
    for (size_t i = 0; i < 2; i++)
        store_batch_add(b, refs[i], t, (double)(i * 1000) + (double)t);
    snprintf(tr, sizeof tr, "a%lld", (long long)t);
    labels *el = tu_labels("trace_id", tr, NULL);
    store_batch_add_exemplar(b, refs[0], t, (double)t + 0.5, el);
    labels_free(el);
    if (t % 2 == 0) {
        snprintf(tr, sizeof tr, "b%lld", (long long)t);
        el = tu_labels("trace_id", tr, NULL);
        store_batch_add_exemplar(b, refs[1], t - 500, 1, el);
        labels_free(el);
    }
    assert_int_equal(store_batch_commit(b), 0);
}

/* The receiver's exemplar log must hold, for each t in [from, to), the
 * exemplars append_row_ex wrote, each in a TimeSeries of its own (no
 * samples), a's in order; at most `dup` of them twice. */
static void check_exemplars(receiver *r, const char *ext, int64_t from, int64_t to, size_t dup)
{
    pthread_mutex_lock(&r->mu);
    const char *log = r->exlog ? r->exlog : "";
    const char *prev_a = log;
    size_t total = 0;
    for (int64_t t = from; t < to; t++) {
        char line[256];
        snprintf(line, sizeof line, "{__name__=\"a\"%s} {trace_id=\"a%lld\"} %lld=%g 0\n", ext,
                 (long long)t, (long long)t, (double)t + 0.5);
        const char *at = strstr(log, line);
        if (!at) fail_msg("exemplar missing: %s\nlog:\n%s", line, log);
        if (at < prev_a && !dup) fail_msg("exemplar out of order: %s", line);
        prev_a = at;
        total++;
        if (t % 2 == 0) {
            snprintf(line, sizeof line, "{__name__=\"b\"%s} {trace_id=\"b%lld\"} %lld=1 0\n", ext,
                     (long long)t, (long long)(t - 500));
            if (!strstr(log, line)) fail_msg("exemplar missing: %s\nlog:\n%s", line, log);
            total++;
        }
    }
    if (r->n_ex < total || r->n_ex > total + dup)
        fail_msg("%zu exemplars arrived, want %zu (+%zu)", r->n_ex, total, dup);
    pthread_mutex_unlock(&r->mu);
}

/* send_exemplars: true: the exemplars of each row arrive, each in its own
 * TimeSeries with the series' (external-labelled) labels, after the
 * samples; exemplars older than their samples are not taken for resends;
 * counted in prometheus_remote_storage_exemplars_total; after a restart
 * the rows past the cursor bring every exemplar (some maybe twice), and
 * the samples exactly once. */
static void test_exemplars(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = cfg_simple(&e, "global:\n  external_labels: {cluster: c1}\n",
                             "      send_exemplars: true\n", 7, 1, 1);
    remote *r = start(&e, cfg);
    uint64_t refs[2] = {ref_of(e.st, tu_labels("__name__", "a", NULL)),
                        ref_of(e.st, tu_labels("__name__", "b", NULL))};
    for (int64_t t = 1000; t < 1020; t++)
        append_row_ex(e.st, refs, t);
    assert_true(wait_received(&e.rcv, 40, 10000));
    int64_t end = now_ms() + 10000;
    while (received_exemplars(&e.rcv) < 30 && now_ms() < end)
        usleep(10 * 1000);
    usleep(200 * 1000);
    assert_int_equal(received(&e.rcv), 40);
    check_exemplars(&e.rcv, ", cluster=\"c1\"", 1000, 1020, 0);
    assert_true(wait_metric(&e, "prometheus_remote_storage_exemplars_total", 30, 5000) == 30);
    assert_true(metric(&e, "prometheus_remote_storage_exemplars_pending", "rw1", NULL) == 0);
    assert_true(metric(&e, "prometheus_remote_storage_exemplars_failed_total", "rw1", NULL) == 0);
    remote_stop(r);
    /* While stopped: more rows; then a restart. */
    for (int64_t t = 1020; t < 1030; t++)
        append_row_ex(e.st, refs, t);
    store_close(e.st);
    e.st = open_store(e.dir);
    registry_free(e.reg);
    e.reg = registry_new();
    r = start(&e, cfg);
    assert_true(wait_received(&e.rcv, 60, 10000));
    end = now_ms() + 10000;
    while (received_exemplars(&e.rcv) < 45 && now_ms() < end)
        usleep(10 * 1000);
    usleep(300 * 1000);
    assert_int_equal(received(&e.rcv), 60);
    check_series(&e.rcv, "{__name__=\"a\", cluster=\"c1\"}", 0, 1000, 30);
    check_series(&e.rcv, "{__name__=\"b\", cluster=\"c1\"}", 1, 1000, 30);
    check_exemplars(&e.rcv, ", cluster=\"c1\"", 1000, 1030, 3);
    remote_stop(r);
    config_unref(cfg);
    env_cleanup(&e);
}

/* The resend guard (newest sent sample per series) does not drop an
 * exemplar that was never sent: each request holds one entry; a's samples
 * go through, its exemplars (older than the samples) get 503s; after a
 * restart the samples are not resent and every exemplar arrives once. */
static void test_exemplars_not_dropped_by_resend_guard(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = cfg_simple(&e, NULL, "      send_exemplars: true\n", 1, 1, 1);
    uint64_t ref = ref_of(e.st, tu_labels("__name__", "a", NULL));
    e.rcv.reject_exemplars = true;
    remote *r = start(&e, cfg);
    for (int64_t t = 500; t < 504; t++) {
        store_batch *b = store_batch_new(e.st);
        store_batch_add(b, ref, t, (double)t);
        char tr[32];
        snprintf(tr, sizeof tr, "a%lld", (long long)t);
        labels *el = tu_labels("trace_id", tr, NULL);
        store_batch_add_exemplar(b, ref, t - 100, 1, el);
        labels_free(el);
        assert_int_equal(store_batch_commit(b), 0);
    }
    assert_true(wait_received(&e.rcv, 1, 10000)); /* the first sample; then a 503 loop */
    usleep(200 * 1000);
    remote_stop(r);
    assert_int_equal(received(&e.rcv), 1);
    assert_int_equal(received_exemplars(&e.rcv), 0);
    pthread_mutex_lock(&e.rcv.mu);
    e.rcv.reject_exemplars = false;
    pthread_mutex_unlock(&e.rcv.mu);
    registry_free(e.reg);
    e.reg = registry_new();
    r = start(&e, cfg);
    assert_true(wait_received(&e.rcv, 4, 10000));
    int64_t end = now_ms() + 10000;
    while (received_exemplars(&e.rcv) < 4 && now_ms() < end)
        usleep(10 * 1000);
    usleep(300 * 1000);
    assert_int_equal(received(&e.rcv), 4);
    check_series(&e.rcv, "{__name__=\"a\"}", 0, 500, 4);
    pthread_mutex_lock(&e.rcv.mu);
    assert_int_equal(e.rcv.n_ex, 4);
    for (int64_t t = 500; t < 504; t++) {
        char line[128];
        snprintf(line, sizeof line, "{__name__=\"a\"} {trace_id=\"a%lld\"} %lld=1 0\n",
                 (long long)t, (long long)(t - 100));
        assert_non_null(strstr(e.rcv.exlog, line));
    }
    pthread_mutex_unlock(&e.rcv.mu);
    remote_stop(r);
    config_unref(cfg);
    env_cleanup(&e);
}

/* send_exemplars false (the default): samples only. A 5xx is retried for
 * the exemplars too (counted as retried). */
static void test_exemplars_off_and_retried(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = cfg_simple(&e, NULL, NULL, 50, 1, 1);
    remote *r = start(&e, cfg);
    uint64_t refs[2] = {ref_of(e.st, tu_labels("__name__", "a", NULL)),
                        ref_of(e.st, tu_labels("__name__", "b", NULL))};
    for (int64_t t = 1000; t < 1010; t++)
        append_row_ex(e.st, refs, t);
    assert_true(wait_received(&e.rcv, 20, 10000));
    usleep(200 * 1000);
    assert_int_equal(received_exemplars(&e.rcv), 0);
    remote_stop(r);
    config_unref(cfg);
    env_cleanup(&e);

    env_init(&e);
    cfg = cfg_simple(&e, NULL, "      send_exemplars: true\n", 100, 1, 1);
    int script[] = {503};
    receiver_script(&e.rcv, script, 1);
    r = start(&e, cfg);
    refs[0] = ref_of(e.st, tu_labels("__name__", "a", NULL));
    refs[1] = ref_of(e.st, tu_labels("__name__", "b", NULL));
    append_row_ex(e.st, refs, 1000); /* 2 samples, 2 exemplars in one request */
    assert_true(wait_received(&e.rcv, 2, 10000));
    assert_true(wait_metric(&e, "prometheus_remote_storage_exemplars_total", 2, 5000) == 2);
    assert_true(metric(&e, "prometheus_remote_storage_exemplars_retried_total", "rw1", NULL) == 2);
    assert_true(metric(&e, "prometheus_remote_storage_samples_retried_total", "rw1", NULL) == 2);
    check_exemplars(&e.rcv, "", 1000, 1001, 0);
    remote_stop(r);
    config_unref(cfg);
    env_cleanup(&e);
}

/* A new queue starts at the store's end: rows from before it existed are
 * not sent. */
static void test_new_queue_starts_at_end(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    uint64_t ref = ref_of(e.st, tu_labels("__name__", "old", NULL));
    for (int64_t t = 0; t < 5; t++)
        append_row(e.st, &ref, 1, t);
    config *cfg = cfg_simple(&e, NULL, NULL, 50, 1, 1);
    remote *r = start(&e, cfg);
    append_row(e.st, &ref, 1, 5);
    assert_true(wait_received(&e.rcv, 1, 10000));
    usleep(200 * 1000);
    assert_int_equal(received(&e.rcv), 1);
    pthread_mutex_lock(&e.rcv.mu);
    assert_int_equal(find(&e.rcv, "{__name__=\"old\"}")->t[0], 5);
    pthread_mutex_unlock(&e.rcv.mu);
    remote_stop(r);
    config_unref(cfg);
    env_cleanup(&e);
}

/* Several shards: every series' samples arrive complete and in order. */
static void test_shards_keep_order(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = cfg_simple(&e, NULL, NULL, 9, 4, 4);
    remote *r = start(&e, cfg);
    enum { NS = 40, NT = 50 };
    uint64_t refs[NS];
    for (int i = 0; i < NS; i++) {
        char n[16];
        snprintf(n, sizeof n, "s%02d", i);
        refs[i] = ref_of(e.st, tu_labels("__name__", n, NULL));
    }
    for (int64_t t = 0; t < NT; t++)
        append_row(e.st, refs, NS, 10000 + t);
    assert_true(wait_received(&e.rcv, NS * NT, 20000));
    usleep(200 * 1000);
    assert_int_equal(received(&e.rcv), NS * NT);
    for (int i = 0; i < NS; i++) {
        char key[64];
        snprintf(key, sizeof key, "{__name__=\"s%02d\"}", i);
        check_series(&e.rcv, key, (size_t)i, 10000, NT);
    }
    assert_true(metric(&e, "prometheus_remote_storage_shards", "rw1", NULL) == 4);
    assert_true(metric(&e, "prometheus_remote_storage_samples_pending", "rw1", NULL) == 0);
    remote_stop(r);
    config_unref(cfg);
    env_cleanup(&e);
}

/* Staleness markers are sent bit for bit; metadata goes too. */
static void test_stale_markers_and_metadata(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = load_cfg("remote_write:\n"
                           "    - url: http://127.0.0.1:%d/api/v1/write\n"
                           "      name: rw1\n"
                           "      queue_config: {batch_send_deadline: 20ms}\n"
                           "      metadata_config: {send_interval: 100ms}\n",
                           e.port);
    store_batch *b = store_batch_new(e.st);
    store_batch_metadata(b, "a", EXPFMT_COUNTER, "help of a", "");
    assert_int_equal(store_batch_commit(b), 0);
    remote *r = start(&e, cfg);
    uint64_t ref = ref_of(e.st, tu_labels("__name__", "a", NULL));
    b = store_batch_new(e.st);
    store_batch_add(b, ref, 1, 1.0);
    assert_int_equal(store_batch_commit(b), 0);
    b = store_batch_new(e.st);
    store_batch_add(b, ref, 2, strutil_stale_nan());
    assert_int_equal(store_batch_commit(b), 0);
    assert_true(wait_received(&e.rcv, 2, 10000));
    pthread_mutex_lock(&e.rcv.mu);
    rseries_rec *s = find(&e.rcv, "{__name__=\"a\"}");
    assert_non_null(s);
    assert_true(strutil_is_stale_nan(s->v[1]));
    pthread_mutex_unlock(&e.rcv.mu);
    int64_t end = now_ms() + 5000;
    while (now_ms() < end) {
        pthread_mutex_lock(&e.rcv.mu);
        size_t md = e.rcv.metadata;
        pthread_mutex_unlock(&e.rcv.mu);
        if (md > 0) break;
        usleep(10 * 1000);
    }
    assert_true(e.rcv.metadata > 0);
    assert_true(wait_metric(&e, "prometheus_remote_storage_metadata_total", 1, 5000) > 0);
    remote_stop(r);
    config_unref(cfg);
    env_cleanup(&e);
}

/* Two shards, one of them stuck on 503s while the other sends rows past
 * the cursor; the queue stops and starts again: what the free shard sent is
 * not sent a second time (a Prometheus receiver would refuse it as out of
 * order), what the stuck one held arrives. */
static void test_restart_after_partial_rows(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = cfg_simple(&e, NULL, NULL, 4, 2, 2);
    labels *la = tu_labels("__name__", "a", NULL);
    uint64_t pa = labels_hash(la) % 2;
    char stuck[16] = "";
    for (int i = 0; i < 20 && !stuck[0]; i++) {
        char n[16];
        snprintf(n, sizeof n, "b%d", i);
        labels *lb = tu_labels("__name__", n, NULL);
        if (labels_hash(lb) % 2 != pa) snprintf(stuck, sizeof stuck, "%s", n);
        labels_free(lb);
    }
    assert_true(stuck[0] != '\0');
    uint64_t refs[2] = {ref_of(e.st, la), ref_of(e.st, tu_labels("__name__", stuck, NULL))};
    snprintf(e.rcv.reject, sizeof e.rcv.reject, "%s", stuck);
    remote *r = start(&e, cfg);
    for (int64_t t = 0; t < 12; t++)
        append_row(e.st, refs, 2, 500 + t);
    assert_true(wait_received(&e.rcv, 12, 10000)); /* all of a */
    usleep(100 * 1000);
    remote_stop(r);
    assert_int_equal(received(&e.rcv), 12);
    store_close(e.st);
    e.st = open_store(e.dir);
    pthread_mutex_lock(&e.rcv.mu);
    e.rcv.reject[0] = '\0';
    pthread_mutex_unlock(&e.rcv.mu);
    registry_free(e.reg);
    e.reg = registry_new();
    r = start(&e, cfg);
    append_row(e.st, refs, 2, 512);
    assert_true(wait_received(&e.rcv, 26, 10000));
    usleep(300 * 1000);
    assert_int_equal(received(&e.rcv), 26);
    check_series(&e.rcv, "{__name__=\"a\"}", 0, 500, 13);
    char key[32];
    snprintf(key, sizeof key, "{__name__=\"%s\"}", stuck);
    check_series(&e.rcv, key, 1, 500, 13);
    remote_stop(r);
    config_unref(cfg);
    env_cleanup(&e);
}

/* A request the receiver applied but never answered (the sender stopped
 * meanwhile, as at a kill -9) is sent again after the restart as a request
 * of its own: a Prometheus receiver refuses it as out of order (it holds
 * it), and the newer samples, sent apart, all arrive. (Sent together with
 * the old ones, the refusal lost them.) Sent requests are forgotten once
 * the cursor is past them. */
static void test_restart_after_unanswered_request(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    e.rcv.prometheus = true;
    config *cfg = load_cfg("remote_write:\n"
                           "    - url: http://127.0.0.1:%d/api/v1/write\n"
                           "      name: rw1\n"
                           "      remote_timeout: 20s\n"
                           "      metadata_config: {send: false}\n"
                           "      queue_config: {batch_send_deadline: 50ms, min_backoff: 10ms, "
                           "max_backoff: 50ms, max_samples_per_send: 100, min_shards: 1, "
                           "max_shards: 1, capacity: 1000}\n",
                           e.port);
    uint64_t refs[2] = {ref_of(e.st, tu_labels("__name__", "a", NULL)),
                        ref_of(e.st, tu_labels("__name__", "b", NULL))};
    remote *r = start(&e, cfg); /* registers its cursor at the end */
    remote_stop(r);
    for (int64_t t = 0; t < 10; t++)
        append_row(e.st, refs, 2, 1000 + t);
    receiver_script(&e.rcv, (int[]){-2}, 1);
    r = start(&e, cfg);
    assert_true(wait_received(&e.rcv, 20, 10000)); /* applied, unanswered */
    remote_stop(r);
    assert_true(metric(&e, "prometheus_remote_storage_samples_total", "rw1", NULL) == 0);

    store_close(e.st);
    e.st = open_store(e.dir);
    registry_free(e.reg);
    e.reg = registry_new();
    for (int64_t t = 10; t < 15; t++)
        append_row(e.st, refs, 2, 1000 + t);
    r = start(&e, cfg);
    assert_true(wait_received(&e.rcv, 30, 10000));
    assert_true(wait_metric(&e, "prometheus_remote_storage_samples_total", 10, 5000) == 10);
    usleep(300 * 1000);
    assert_int_equal(received(&e.rcv), 30);
    check_series(&e.rcv, "{__name__=\"a\"}", 0, 1000, 15);
    check_series(&e.rcv, "{__name__=\"b\"}", 1, 1000, 15);
    pthread_mutex_lock(&e.rcv.mu);
    assert_int_equal(e.rcv.out_of_order, 1); /* the old request, refused alone */
    pthread_mutex_unlock(&e.rcv.mu);
    assert_true(metric(&e, "prometheus_remote_storage_samples_failed_total", "rw1", NULL) == 0);
    remote_stop(r);
    /* What is left in the queue's state: at most its resend guard. */
    assert_true(store_kv_count(e.st, "remote_write") <= 1);
    config_unref(cfg);
    env_cleanup(&e);
}

/* remote_apply: an unchanged queue keeps running; a removed one stops and
 * its consumer is forgotten; a new one starts at the store's end. */
static void test_apply(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = cfg_simple(&e, NULL, NULL, 50, 1, 1);
    remote *r = start(&e, cfg);
    store_wal_consumer c;
    assert_int_equal(store_wal_consumer_get(e.st, "remote_write/rw1", &c), 0);
    uint64_t ref = ref_of(e.st, tu_labels("__name__", "a", NULL));
    append_row(e.st, &ref, 1, 1);
    assert_true(wait_received(&e.rcv, 1, 10000));
    /* Same settings: nothing restarts (no second "starting" sample loss). */
    config *same = cfg_simple(&e, NULL, NULL, 50, 1, 1);
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(remote_apply(r, same, &err), 0);
    append_row(e.st, &ref, 1, 2);
    assert_true(wait_received(&e.rcv, 2, 10000));
    /* Renamed: rw1 is forgotten, rw2 starts at the end. */
    config *other = load_cfg("remote_write:\n"
                             "    - url: http://127.0.0.1:%d/api/v1/write\n"
                             "      name: rw2\n"
                             "      queue_config: {batch_send_deadline: 20ms}\n",
                             e.port);
    assert_int_equal(remote_apply(r, other, &err), 0);
    assert_int_equal(store_wal_consumer_get(e.st, "remote_write/rw1", &c), -ENOENT);
    assert_int_equal(store_wal_consumer_get(e.st, "remote_write/rw2", &c), 0);
    append_row(e.st, &ref, 1, 3);
    assert_true(wait_received(&e.rcv, 3, 10000));
    usleep(200 * 1000);
    assert_int_equal(received(&e.rcv), 3);
    check_series(&e.rcv, "{__name__=\"a\"}", 0, 1, 3);
    /* A config the sender cannot serve is refused and changes nothing. */
    config *bad = load_cfg("remote_write:\n"
                           "    - url: http://127.0.0.1:%d/api/v1/write\n"
                           "      protobuf_message: io.prometheus.write.v2.Request\n",
                           e.port);
    buf_reset(&err);
    assert_int_equal(remote_apply(r, bad, &err), -EINVAL);
    assert_non_null(strstr(buf_cstr(&err), "not supported"));
    assert_int_equal(store_wal_consumer_get(e.st, "remote_write/rw2", &c), 0);
    buf_cleanup(&err);
    remote_stop(r);
    config_unref(bad);
    config_unref(other);
    config_unref(same);
    config_unref(cfg);
    env_cleanup(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_labels_headers),
        cmocka_unit_test(test_retry_5xx_and_429),
        cmocka_unit_test(test_400_dropped),
        cmocka_unit_test(test_hanging_receiver),
        cmocka_unit_test(test_restart_resumes),
        cmocka_unit_test(test_new_queue_starts_at_end),
        cmocka_unit_test(test_shards_keep_order),
        cmocka_unit_test(test_stale_markers_and_metadata),
        cmocka_unit_test(test_restart_after_partial_rows),
        cmocka_unit_test(test_restart_after_unanswered_request),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_exemplars),
        cmocka_unit_test(test_exemplars_off_and_retried),
        cmocka_unit_test(test_exemplars_not_dropped_by_resend_guard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
