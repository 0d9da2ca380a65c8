/* notify: webhook payload bytes against Alertmanager's captures, the
 * fingerprint, group key and Go time format, Alertmanager's grouping timing
 * on a fake clock, and the outbox's delivery rules against an in-process
 * HTTP server (backoff on 500/429, drop on 400, max age, capacity, restart,
 * one dead destination not delaying another). */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fakesrv.h"
#include "testutil.h"
#include "teststore.h"

#include "config.h"
#include "json.h"
#include "labels.h"
#include "notify.h"
#include "registry.h"
#include "store.h"
#include "strutil.h"

/* ---- helpers ---------------------------------------------------------------------- */

/* Labels from a JSON object of strings. */
static labels *from_json(const json_val *obj)
{
    labels_builder b;
    labels_builder_init(&b);
    json_iter it = {0};
    const char *k;
    const json_val *v;
    while (json_val_next(obj, &it, &k, &v)) {
        size_t len;
        const char *s = json_val_string(v, &len);
        assert_non_null(s);
        labels_builder_set(&b, k, strlen(k), s, len);
    }
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return ls;
}

static int64_t utc_ns(int y, int mo, int d, int h, int mi, int s, int64_t ns)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm) * 1000000000 + ns;
}

static store *open_store(const char *dir)
{
    store_options o = {.path = dir};
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

static double metric(registry *reg, const char *name, const char *dest, const char *reason)
{
    const char *dl[] = {"destination", NULL}, *dr[] = {"destination", "reason", NULL};
    registry_family *f;
    if (strstr(name, "queue_"))
        f = registry_gauge(reg, name, "", dl);
    else
        f = registry_counter(reg, name, "", reason ? dr : dl);
    assert_non_null(f);
    const char *v1[] = {dest}, *v2[] = {dest, reason};
    return registry_value(registry_child(f, reason ? v2 : v1));
}

/* A fake clock (ms). */
static int64_t fake_now;
static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return __atomic_load_n(&fake_now, __ATOMIC_SEQ_CST);
}
static void set_clock(int64_t ms)
{
    __atomic_store_n(&fake_now, ms, __ATOMIC_SEQ_CST);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- the fake receiver ---------------------------------------------------------------- */

#define MAX_REQS 64
typedef struct rec {
    char path[4096];
    char *body;
    char ua[128], ctype[128], sig[128], auth[256];
} rec;

typedef struct receiver {
    pthread_mutex_t mu;
    rec reqs[MAX_REQS];
    int n;
    int status_ok;   /* for paths not under /dead */
    int status_dead; /* for paths under /dead */
} receiver;

static bool handle(fsrv *s, int fd, const fsrv_req *rq, void *ctx)
{
    (void)s;
    receiver *r = ctx;
    pthread_mutex_lock(&r->mu);
    int status = strncmp(rq->path, "/dead", 5) == 0 ? r->status_dead : r->status_ok;
    if (r->n < MAX_REQS) {
        rec *q = &r->reqs[r->n++];
        snprintf(q->path, sizeof q->path, "%s", rq->path);
        q->body = strdup(rq->body ? rq->body : "");
        fsrv_header(rq, "User-Agent", q->ua, sizeof q->ua);
        fsrv_header(rq, "Content-Type", q->ctype, sizeof q->ctype);
        fsrv_header(rq, "X-Sidewatch-Signature", q->sig, sizeof q->sig);
        fsrv_header(rq, "Authorization", q->auth, sizeof q->auth);
    }
    pthread_mutex_unlock(&r->mu);
    fsrv_respond(fd, status, "text/plain", "", 0);
    return true;
}

static void receiver_init(receiver *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->status_ok = 200;
    r->status_dead = 500;
}

static void receiver_cleanup(receiver *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->reqs[i].body);
    pthread_mutex_destroy(&r->mu);
}

/* Requests whose path starts with prefix. */
static int count(receiver *r, const char *prefix)
{
    pthread_mutex_lock(&r->mu);
    int c = 0;
    for (int i = 0; i < r->n; i++)
        c += strncmp(r->reqs[i].path, prefix, strlen(prefix)) == 0;
    pthread_mutex_unlock(&r->mu);
    return c;
}

/* The i-th request under prefix (a copy of its body; caller frees). */
static char *body_of(receiver *r, const char *prefix, int i)
{
    pthread_mutex_lock(&r->mu);
    char *b = NULL;
    for (int k = 0; k < r->n && !b; k++) {
        if (strncmp(r->reqs[k].path, prefix, strlen(prefix)) == 0 && i-- == 0)
            b = strdup(r->reqs[k].body);
    }
    pthread_mutex_unlock(&r->mu);
    assert_non_null(b);
    return b;
}

static void set_status(receiver *r, int ok, int dead)
{
    pthread_mutex_lock(&r->mu);
    r->status_ok = ok;
    r->status_dead = dead;
    pthread_mutex_unlock(&r->mu);
}

/* Waits (real time) until count(prefix) >= want; returns the count. */
static int wait_count(receiver *r, const char *prefix, int want, int timeout_ms)
{
    int c = 0;
    for (int t = 0; t < timeout_ms; t += 10) {
        c = count(r, prefix);
        if (c >= want) return c;
        sleep_ms(10);
    }
    return c;
}

/* ---- payload pieces ---------------------------------------------------------------- */

static void test_fingerprint(void **state)
{
    (void)state;
    labels *ls = tu_labels("alertname", "HighRequestLatency", "instance", "127.0.0.1:19101", "job",
                           "app", "severity", "page", NULL);
    char fp[17];
    snprintf(fp, sizeof fp, "%016" PRIx64, notify_fingerprint(ls));
    assert_string_equal(fp, "95180991a2d053c3");
    labels *other = tu_labels("alertname", "HighRequestLatency", "instance", "127.0.0.1:19102",
                              "job", "app", "severity", "page", NULL);
    assert_true(notify_fingerprint(other) != notify_fingerprint(ls));
    /* An empty set hashes to FNV-1a's offset basis, as model's emptyLabelSignature. */
    assert_true(notify_fingerprint(labels_empty()) == 14695981039346656037ULL);
    labels_free(ls);
    labels_free(other);
}

static void test_format_time(void **state)
{
    (void)state;
    char t[NOTIFY_TIME_MAX];
    struct {
        int64_t ns;
        const char *want;
    } cases[] = {
        {utc_ns(2026, 11, 25, 13, 51, 26, 717926348), "2026-11-25T13:51:26.717926348Z"},
        {utc_ns(2026, 11, 25, 13, 51, 27, 0), "2026-11-25T13:51:27Z"},
        {utc_ns(2026, 11, 25, 13, 51, 27, 500000000), "2026-11-25T13:51:27.5Z"},
        {utc_ns(2026, 1, 2, 3, 4, 5, 1000), "2026-01-02T03:04:05.000001Z"},
        {0, "1970-01-01T00:00:00Z"},
        {-1, "1969-12-31T23:59:59.999999999Z"},
        {NOTIFY_ZERO_TIME, "0001-01-01T00:00:00Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = notify_format_time(cases[i].ns, t);
        assert_string_equal(t, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
    }
}

static void test_group_key(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    labels *ls = tu_labels("alertname", "HighRequestLatency", NULL);
    notify_group_key(ls, &b);
    assert_string_equal(buf_cstr(&b), "{}:{alertname=\"HighRequestLatency\"}");
    labels_free(ls);
    buf_reset(&b);
    ls = tu_labels("job", "a\"b", "alertname", "X", NULL);
    notify_group_key(ls, &b);
    assert_string_equal(buf_cstr(&b), "{}:{alertname=\"X\", job=\"a\\\"b\"}");
    labels_free(ls);
    buf_reset(&b);
    notify_group_key(labels_empty(), &b);
    assert_string_equal(buf_cstr(&b), "{}:{}");
    buf_cleanup(&b);
}

static void test_hmac(void **state)
{
    (void)state;
    /* RFC 4231 test case 2. */
    unsigned char mac[32];
    const char *data = "what do ya want for nothing?";
    assert_int_equal(strutil_hmac_sha256("Jefe", 4, data, strlen(data), mac), 0);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

/* Builds the captured alert from the capture's own fields and compares the
 * payload with the capture, field by field, then byte for byte. */
static void check_capture(const char *file, int64_t now_ns, int64_t ends_ns)
{
    char path[4096];
    size_t len = 0;
    char *want = tu_read_file(tu_shared_path(path, sizeof path, file), &len);
    assert_non_null(want);
    while (len > 0 && (want[len - 1] == '\n' || want[len - 1] == '\r'))
        want[--len] = '\0';
    json_read_error je;
    json_doc *doc = json_doc_parse(want, len, len + 1, 0, &je);
    assert_non_null(doc);
    const json_val *root = json_doc_root(doc);
    const json_val *a0 = json_val_at(json_val_get(root, "alerts"), 0);
    labels *ls = from_json(json_val_get(a0, "labels"));
    labels *an = from_json(json_val_get(a0, "annotations"));
    labels *gl = from_json(json_val_get(root, "groupLabels"));
    notify_webhook_alert a = {
        .labels = ls,
        .annotations = an,
        .starts_at_ns = utc_ns(2026, 11, 25, 13, 51, 26, 717926348),
        .ends_at_ns = ends_ns,
        .generator_url = json_val_string(json_val_get(a0, "generatorURL"), NULL),
    };
    buf got;
    buf_init(&got, BUF_UNLIMITED);
    assert_int_equal(
        notify_webhook_body(json_val_string(json_val_get(root, "receiver"), NULL), gl, &a, 1, 0,
                            json_val_string(json_val_get(root, "externalURL"), NULL), now_ns, &got),
        0);
    json_doc *gdoc = json_doc_parse(got.data, got.len, got.len + 1, 0, &je);
    assert_non_null(gdoc);
    /* Field by field, in order. */
    json_iter wi = {0}, gi = {0};
    const char *wk, *gk;
    const json_val *wv, *gv;
    while (json_val_next(root, &wi, &wk, &wv)) {
        assert_true(json_val_next(json_doc_root(gdoc), &gi, &gk, &gv));
        assert_string_equal(gk, wk);
        assert_int_equal(json_val_kind(gv), json_val_kind(wv));
        if (json_val_is_string(wv))
            assert_string_equal(json_val_string(gv, NULL), json_val_string(wv, NULL));
    }
    assert_false(json_val_next(json_doc_root(gdoc), &gi, &gk, &gv));
    /* Byte for byte. */
    if (got.len != len || memcmp(got.data, want, len) != 0)
        fail_msg("payload differs from %s:\n got: %s\nwant: %s", file, buf_cstr(&got), want);
    json_doc_free(gdoc);
    json_doc_free(doc);
    buf_cleanup(&got);
    labels_free(ls);
    labels_free(an);
    labels_free(gl);
    free(want);
}

static void test_webhook_payload_captures(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("alertmanager/webhook-firing.json");
    int64_t start = utc_ns(2026, 11, 25, 13, 51, 26, 717926348);
    /* Firing: endsAt in the future (Prometheus's valid-until) shows Go's zero time. */
    check_capture("alertmanager/webhook-firing.json", start + 1000000000LL,
                  start + 240LL * 1000000000);
    int64_t resolved = utc_ns(2026, 11, 25, 13, 51, 27, 0);
    check_capture("alertmanager/webhook-resolved.json", resolved + 5000000000LL, resolved);
}

static void test_webhook_order_common_truncation(void **state)
{
    (void)state;
    labels *l1 = tu_labels("alertname", "A", "job", "b", "instance", "2", "env", "prod", NULL);
    labels *l2 = tu_labels("alertname", "A", "job", "a", "instance", "9", "env", "prod", NULL);
    labels *l3 = tu_labels("alertname", "A", "job", "b", "instance", "1", "env", "prod", NULL);
    labels *l4 = tu_labels("alertname", "A", "env", "prod", NULL); /* no job: last */
    labels *ann = tu_labels("summary", "s", NULL);
    labels *gl = tu_labels("alertname", "A", NULL);
    notify_webhook_alert v[] = {
        {.labels = l4, .starts_at_ns = 1},
        {.labels = l1, .annotations = ann, .starts_at_ns = 1},
        {.labels = l2, .annotations = ann, .starts_at_ns = 1, .ends_at_ns = 5},
        {.labels = l3, .annotations = ann, .starts_at_ns = 1},
    };
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(notify_webhook_body("r", gl, v, 4, 3, "http://x", 10, &b), 0);
    json_doc *d = json_doc_parse(b.data, b.len, b.len + 1, 0, NULL);
    assert_non_null(d);
    const json_val *r = json_doc_root(d);
    const json_val *al = json_val_get(r, "alerts");
    assert_int_equal(json_val_len(al), 3);
    const char *order[][2] = {{"a", "9"}, {"b", "1"}, {"b", "2"}};
    for (size_t i = 0; i < 3; i++) {
        const json_val *ls = json_val_get(json_val_at(al, i), "labels");
        assert_string_equal(json_val_string(json_val_get(ls, "job"), NULL), order[i][0]);
        assert_string_equal(json_val_string(json_val_get(ls, "instance"), NULL), order[i][1]);
    }
    /* the first (job a) ended at 5 <= now 10: resolved; the rest firing */
    assert_string_equal(json_val_string(json_val_get(json_val_at(al, 0), "status"), NULL),
                        "resolved");
    assert_string_equal(json_val_string(json_val_get(json_val_at(al, 1), "status"), NULL),
                        "firing");
    assert_string_equal(json_val_string(json_val_get(r, "status"), NULL), "firing");
    int64_t trunc = -1;
    assert_int_equal(json_val_int64(json_val_get(r, "truncatedAlerts"), &trunc), 0);
    assert_int_equal(trunc, 1);
    const json_val *cl = json_val_get(r, "commonLabels");
    assert_int_equal(json_val_len(cl), 2); /* alertname, env; job and instance differ */
    assert_non_null(json_val_get(cl, "env"));
    assert_null(json_val_get(cl, "job"));
    assert_string_equal(
        json_val_string(json_val_get(json_val_get(r, "commonAnnotations"), "summary"), NULL), "s");
    json_doc_free(d);
    /* All resolved: the group is resolved. */
    buf_reset(&b);
    assert_int_equal(notify_webhook_body("r", gl, &v[2], 1, 0, "", 10, &b), 0);
    assert_non_null(strstr(buf_cstr(&b), "\"status\":\"resolved\",\"alerts\""));
    buf_cleanup(&b);
    labels_free(l1);
    labels_free(l2);
    labels_free(l3);
    labels_free(l4);
    labels_free(ann);
    labels_free(gl);
}

/* ---- delivery ------------------------------------------------------------------- */

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
    e->dir = tu_tmpdir_new("sidewatch-notify-test");
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

static notify *start(env *e, notify_options o, config *cfg)
{
    o.st = e->st;
    o.reg = e->reg;
    notify *n = NULL;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    if (notify_new(&o, &n, &err) != 0) fail_msg("notify_new: %s", buf_cstr(&err));
    assert_int_equal(notify_apply_config(n, cfg, &err), 0);
    buf_cleanup(&err);
    return n;
}

static void send_one(notify *n, const char *name, int64_t starts, int64_t ends)
{
    labels *ls = tu_labels("alertname", name, "job", "app", NULL);
    notify_alert a = {.labels = ls, .starts_at_ms = starts, .ends_at_ms = ends};
    notify_send(n, &a, 1);
    labels_free(ls);
}

static void test_alertmanager_body_and_batches(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = load_cfg("global:\n  external_labels: {cluster: c1, job: ext}\n"
                           "alerting:\n"
                           "  alert_relabel_configs:\n"
                           "    - {source_labels: [alertname], regex: Drop.*, action: drop}\n"
                           "  alertmanagers:\n"
                           "    - static_configs: [{targets: ['127.0.0.1:%d']}]\n"
                           "      path_prefix: /am/\n",
                           e.port);
    notify *n = start(&e, (notify_options){.external_url = "http://sw"}, cfg);
    char **urls;
    size_t nu;
    notify_alertmanager_urls(n, &urls, &nu);
    assert_int_equal(nu, 1);
    char want_url[128];
    snprintf(want_url, sizeof want_url, "http://127.0.0.1:%d/am/api/v2/alerts", e.port);
    assert_string_equal(urls[0], want_url);
    free(urls[0]);
    free(urls);

    /* 300 alerts (one dropped by relabeling): batches of 256 and 43. */
    notify_alert al[300];
    labels *ls[300];
    labels *ann = tu_labels("summary", "a < b & c > d", NULL);
    for (int i = 0; i < 300; i++) {
        char name[32];
        snprintf(name, sizeof name, i == 7 ? "Drop%d" : "A%d", i);
        ls[i] = tu_labels("alertname", name, "job", "app", NULL);
        al[i] = (notify_alert){.labels = ls[i],
                               .annotations = ann,
                               .starts_at_ms = 1764078686717,
                               .ends_at_ms = 1764078686717 + 240000,
                               .generator_url = "http://g/?a=1&b=2"};
    }
    notify_send(n, al, 300);
    assert_int_equal(wait_count(&e.rcv, "/am/api/v2/alerts", 2, 5000), 2);
    char *b0 = body_of(&e.rcv, "/am/", 0), *b1 = body_of(&e.rcv, "/am/", 1);
    json_doc *d0 = json_doc_parse(b0, strlen(b0), 1 << 24, 0, NULL);
    json_doc *d1 = json_doc_parse(b1, strlen(b1), 1 << 24, 0, NULL);
    assert_int_equal(json_val_len(json_doc_root(d0)), 256);
    assert_int_equal(json_val_len(json_doc_root(d1)), 43);
    const json_val *first = json_val_at(json_doc_root(d0), 0);
    const json_val *fl = json_val_get(first, "labels");
    assert_string_equal(json_val_string(json_val_get(fl, "cluster"), NULL), "c1");
    /* the alert's own job wins over the external label */
    assert_string_equal(json_val_string(json_val_get(fl, "job"), NULL), "app");
    assert_string_equal(json_val_string(json_val_get(first, "startsAt"), NULL),
                        "2025-11-25T13:51:26.717Z");
    assert_string_equal(json_val_string(json_val_get(first, "endsAt"), NULL),
                        "2025-11-25T13:55:26.717Z");
    /* Go's escaping of <, >, & */
    assert_non_null(strstr(b0, "a \\u003c b \\u0026 c \\u003e d"));
    assert_non_null(strstr(b0, "http://g/?a=1\\u0026b=2"));
    assert_null(strstr(b0, "Drop7"));
    assert_null(strstr(b1, "Drop7"));
    pthread_mutex_lock(&e.rcv.mu);
    assert_string_equal(e.rcv.reqs[0].ctype, "application/json");
    assert_string_equal(e.rcv.reqs[0].ua, "Sidewatch/" SIDEWATCH_VERSION);
    pthread_mutex_unlock(&e.rcv.mu);
    assert_true(metric(e.reg, "sidewatch_notifications_dropped_total", want_url, "relabeled") == 1);
    for (int i = 0;
         i < 20 && metric(e.reg, "sidewatch_notifications_sent_total", want_url, NULL) < 2; i++)
        sleep_ms(10);
    assert_true(metric(e.reg, "sidewatch_notifications_sent_total", want_url, NULL) == 2);
    assert_int_equal(notify_pending(n), 0);
    json_doc_free(d0);
    json_doc_free(d1);
    free(b0);
    free(b1);
    for (int i = 0; i < 300; i++)
        labels_free(ls[i]);
    labels_free(ann);
    notify_free(n);
    config_unref(cfg);
    env_cleanup(&e);
}

static const char *two_am_yaml = "alerting:\n"
                                 "  alertmanagers:\n"
                                 "    - static_configs: [{targets: ['127.0.0.1:%d']}]\n"
                                 "      path_prefix: /dead\n"
                                 "    - static_configs: [{targets: ['127.0.0.1:%d']}]\n"
                                 "      path_prefix: /ok\n";

/* 500 and 429 retry with backoff, in order, without delaying the other
 * destination; a 400 drops the head entry and the next one follows. */
static void test_backoff_order_isolation(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = load_cfg(two_am_yaml, e.port, e.port);
    notify *n = start(&e, (notify_options){.backoff_initial_ms = 40, .backoff_max_ms = 80}, cfg);
    char dead[128], ok[128];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d/dead/api/v2/alerts", e.port);
    snprintf(ok, sizeof ok, "http://127.0.0.1:%d/ok/api/v2/alerts", e.port);
    send_one(n, "First", 1000, 0);
    send_one(n, "Second", 1000, 0);
    send_one(n, "Third", 1000, 0);
    /* The healthy destination gets all three at once, in order. */
    assert_int_equal(wait_count(&e.rcv, "/ok/", 3, 3000), 3);
    const char *names[] = {"First", "Second", "Third"};
    for (int i = 0; i < 3; i++) {
        char *b = body_of(&e.rcv, "/ok/", i);
        assert_non_null(strstr(b, names[i]));
        free(b);
    }
    /* The dead one retries its head entry only. */
    assert_true(wait_count(&e.rcv, "/dead/", 3, 3000) >= 3);
    int c = count(&e.rcv, "/dead/");
    for (int i = 0; i < c; i++) {
        char *b = body_of(&e.rcv, "/dead/", i);
        assert_non_null(strstr(b, "First"));
        free(b);
    }
    assert_true(metric(e.reg, "sidewatch_notifications_retries_total", dead, NULL) >= 2);
    assert_true(metric(e.reg, "sidewatch_notifications_errors_total", dead, NULL) >= 2);
    assert_true(metric(e.reg, "sidewatch_notifications_queue_length", dead, NULL) == 3);
    assert_true(metric(e.reg, "sidewatch_notifications_queue_length", ok, NULL) == 0);
    assert_true(metric(e.reg, "sidewatch_notifications_errors_total", ok, NULL) == 0);
    /* Backoff: retries are spaced (>= 20 ms each with a 40 ms base), not a busy loop. */
    int before = count(&e.rcv, "/dead/");
    sleep_ms(200);
    int after = count(&e.rcv, "/dead/");
    assert_true(after - before <= 10);
    assert_true(after - before >= 1);

    /* 429 retries too. */
    set_status(&e.rcv, 200, 429);
    before = count(&e.rcv, "/dead/");
    assert_true(wait_count(&e.rcv, "/dead/", before + 2, 3000) >= before + 2);
    assert_true(metric(e.reg, "sidewatch_notifications_queue_length", dead, NULL) == 3);
    /* 400: the head is dropped, then the rest are delivered in order. */
    set_status(&e.rcv, 200, 400);
    for (int i = 0;
         i < 300 && metric(e.reg, "sidewatch_notifications_dropped_total", dead, "rejected") < 1;
         i++)
        sleep_ms(10);
    set_status(&e.rcv, 200, 200);
    for (int i = 0; i < 300 && notify_pending(n) > 0; i++)
        sleep_ms(10);
    assert_int_equal(notify_pending(n), 0);
    assert_true(metric(e.reg, "sidewatch_notifications_dropped_total", dead, "rejected") >= 1);
    double sent = metric(e.reg, "sidewatch_notifications_sent_total", dead, NULL);
    double rejected = metric(e.reg, "sidewatch_notifications_dropped_total", dead, "rejected");
    assert_true(sent + rejected == 3);
    c = count(&e.rcv, "/dead/");
    char *last = body_of(&e.rcv, "/dead/", c - 1);
    assert_non_null(strstr(last, "Third"));
    free(last);
    notify_free(n);
    config_unref(cfg);
    env_cleanup(&e);
}

/* Undelivered entries survive notify_free/notify_new on the same store and
 * are delivered unchanged afterwards. */
static void test_outbox_restart(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = load_cfg(two_am_yaml, e.port, e.port);
    notify_options o = {.backoff_initial_ms = 50, .backoff_max_ms = 100};
    notify *n = start(&e, o, cfg);
    send_one(n, "Persist1", 1000, 0);
    send_one(n, "Persist2", 1000, 0);
    assert_true(wait_count(&e.rcv, "/dead/", 1, 3000) >= 1);
    char *orig = body_of(&e.rcv, "/dead/", 0);
    /* The healthy destination's two entries leave the outbox once
     * delivered; on a loaded machine that can come after the dead one's
     * first attempt. */
    for (int i = 0; i < 300 && store_kv_count(e.st, "notify/outbox") > 2; i++)
        sleep_ms(10);
    notify_free(n);
    assert_int_equal(store_kv_count(e.st, "notify/outbox"), 2);

    set_status(&e.rcv, 200, 200);
    int before = count(&e.rcv, "/dead/");
    n = start(&e, o, cfg);
    assert_int_equal(notify_pending(n), 2);
    assert_int_equal(wait_count(&e.rcv, "/dead/", before + 2, 3000), before + 2);
    char *again = body_of(&e.rcv, "/dead/", before);
    assert_string_equal(again, orig);
    char *second = body_of(&e.rcv, "/dead/", before + 1);
    assert_non_null(strstr(second, "Persist2"));
    for (int i = 0; i < 100 && notify_pending(n) > 0; i++)
        sleep_ms(10);
    assert_int_equal(notify_pending(n), 0);
    /* Nothing delivered twice to the healthy one either. */
    assert_int_equal(count(&e.rcv, "/ok/"), 2);
    free(orig);
    free(again);
    free(second);
    notify_free(n);
    config_unref(cfg);
    env_cleanup(&e);
}

/* Entries older than max_age are dropped (fake clock); a full queue drops
 * its oldest. */
static void test_max_age_and_capacity(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *cfg = load_cfg(two_am_yaml, e.port, e.port);
    set_clock(1000000);
    notify_options o = {.max_age_ms = 60000,
                        .queue_capacity = 2,
                        .backoff_initial_ms = 10000,
                        .backoff_max_ms = 10000,
                        .now_ms = fake_clock};
    notify *n = start(&e, o, cfg);
    char dead[128];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d/dead/api/v2/alerts", e.port);
    send_one(n, "Q1", 1000, 0);
    assert_true(wait_count(&e.rcv, "/dead/", 1, 3000) >= 1);
    send_one(n, "Q2", 1000, 0);
    send_one(n, "Q3", 1000, 0);
    send_one(n, "Q4", 1000, 0);
    assert_true(metric(e.reg, "sidewatch_notifications_dropped_total", dead, "queue_full") == 2);
    assert_true(metric(e.reg, "sidewatch_notifications_queue_length", dead, NULL) == 2);
    assert_true(metric(e.reg, "sidewatch_notifications_queue_capacity", dead, NULL) == 2);
    /* The clock has not moved: no retry before the backoff. */
    sleep_ms(100);
    assert_int_equal(count(&e.rcv, "/dead/"), 1);
    /* Past max_age: both dropped without another attempt. */
    set_clock(1000000 + 61000);
    notify_kick(n);
    for (int i = 0;
         i < 300 && metric(e.reg, "sidewatch_notifications_queue_length", dead, NULL) > 0; i++)
        sleep_ms(10);
    assert_true(metric(e.reg, "sidewatch_notifications_dropped_total", dead, "max_age") == 2);
    assert_int_equal(count(&e.rcv, "/dead/"), 1);
    /* The healthy destination (capacity 2 as well) delivered or pushed out
     * each of the four; the newest is always delivered. */
    char ok[128];
    snprintf(ok, sizeof ok, "http://127.0.0.1:%d/ok/api/v2/alerts", e.port);
    for (int i = 0; i < 300 && notify_pending(n) > 0; i++)
        sleep_ms(10);
    double full = metric(e.reg, "sidewatch_notifications_dropped_total", ok, "queue_full");
    double sent = metric(e.reg, "sidewatch_notifications_sent_total", ok, NULL);
    assert_true(sent + full == 4);
    assert_true(count(&e.rcv, "/ok/") >= sent);
    char *b = body_of(&e.rcv, "/ok/", count(&e.rcv, "/ok/") - 1);
    assert_non_null(strstr(b, "Q4"));
    free(b);
    notify_free(n);
    config_unref(cfg);
    env_cleanup(&e);
}

/* A removed destination stops; its entries stay until they are older than
 * max_age, then are dropped (and counted); a destination that comes back
 * before that resumes them. */
static void test_removed_destination(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    config *both = load_cfg(two_am_yaml, e.port, e.port);
    config *only_ok = load_cfg("alerting:\n"
                               "  alertmanagers:\n"
                               "    - static_configs: [{targets: ['127.0.0.1:%d']}]\n"
                               "      path_prefix: /ok\n",
                               e.port);
    set_clock(5000000);
    notify_options o = {.max_age_ms = 60000,
                        .backoff_initial_ms = 100000,
                        .backoff_max_ms = 100000,
                        .now_ms = fake_clock};
    notify *n = start(&e, o, both);
    char dead[128];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d/dead/api/v2/alerts", e.port);
    send_one(n, "Gone1", 1000, 0);
    send_one(n, "Gone2", 1000, 0);
    assert_true(wait_count(&e.rcv, "/dead/", 1, 3000) >= 1);
    assert_int_equal(wait_count(&e.rcv, "/ok/", 2, 3000), 2);
    for (int i = 0; i < 300 && notify_pending(n) > 2; i++)
        sleep_ms(10);
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(notify_apply_config(n, only_ok, &err), 0);
    char **urls;
    size_t nu;
    notify_alertmanager_urls(n, &urls, &nu);
    assert_int_equal(nu, 1);
    assert_non_null(strstr(urls[0], "/ok/"));
    free(urls[0]);
    free(urls);
    /* Still young: kept. */
    assert_int_equal(notify_pending(n), 2);
    /* Back again before max_age: resumed (its backoff state is gone, the
     * entry's own retry time still holds). */
    assert_int_equal(notify_apply_config(n, both, &err), 0);
    assert_true(metric(e.reg, "sidewatch_notifications_queue_length", dead, NULL) == 2);
    assert_int_equal(notify_apply_config(n, only_ok, &err), 0);
    set_clock(5000000 + 61000);
    assert_int_equal(notify_apply_config(n, only_ok, &err), 0);
    assert_int_equal(notify_pending(n), 0);
    assert_true(metric(e.reg, "sidewatch_notifications_dropped_total", dead, "max_age") == 2);
    buf_cleanup(&err);
    notify_free(n);
    config_unref(both);
    config_unref(only_ok);
    env_cleanup(&e);
}

/* Alertmanager's grouping and dedup on a fake clock, and the notification
 * log surviving a restart. */
static void test_webhook_grouping_timing(void **state)
{
    /* As Prometheus does, alerts are re-sent (with a later endsAt) before
     * the clock passes their endsAt, so each step sends first and then
     * moves the clock. */
    (void)state;
    env e;
    env_init(&e);
    config *cfg = load_cfg("webhooks:\n"
                           "  - name: hook\n"
                           "    url: http://127.0.0.1:%d/hook\n"
                           "    group_by: [alertname]\n"
                           "    group_wait: 30s\n"
                           "    group_interval: 5m\n"
                           "    repeat_interval: 1h\n"
                           "    hmac_secret: k3y\n"
                           "    bearer_token: tok\n",
                           e.port);
    const int64_t T0 = 1764078686000;
    set_clock(T0);
    notify_options o = {.now_ms = fake_clock, .external_url = "http://sw:9277"};
    notify *n = start(&e, o, cfg);
#define AT(sec) (T0 + (int64_t)(sec)*1000)
#define STEP(sec)                                                                                  \
    do {                                                                                           \
        set_clock(AT(sec));                                                                        \
        notify_kick(n);                                                                            \
    } while (0)
#define FIRE(name, sec) send_one(n, name, AT(0), AT(sec) + 240000)
    FIRE("X", 0);
    FIRE("X", 29);
    STEP(29);
    sleep_ms(150);
    assert_int_equal(count(&e.rcv, "/hook"), 0); /* group_wait not over */
    STEP(30);
    assert_int_equal(wait_count(&e.rcv, "/hook", 1, 3000), 1);
    char *b = body_of(&e.rcv, "/hook", 0);
    assert_non_null(strstr(b, "\"receiver\":\"hook\",\"status\":\"firing\""));
    assert_non_null(strstr(b, "\"groupKey\":\"{}:{alertname=\\\"X\\\"}\""));
    assert_non_null(strstr(b, "\"externalURL\":\"http://sw:9277\""));
    /* signature and auth */
    unsigned char mac[32];
    strutil_hmac_sha256("k3y", 3, b, strlen(b), mac);
    char sig[80] = "sha256=";
    for (int i = 0; i < 32; i++)
        snprintf(sig + 7 + 2 * i, 3, "%02x", mac[i]);
    pthread_mutex_lock(&e.rcv.mu);
    assert_string_equal(e.rcv.reqs[0].sig, sig);
    assert_string_equal(e.rcv.reqs[0].auth, "Bearer tok");
    assert_string_equal(e.rcv.reqs[0].ctype, "application/json");
    pthread_mutex_unlock(&e.rcv.mu);
    free(b);

    /* A second alert of the same group: sent at the next group_interval. */
    FIRE("X", 60);
    STEP(60);
    labels *y = tu_labels("alertname", "X", "job", "other", NULL);
    notify_alert ya = {.labels = y, .starts_at_ms = AT(60), .ends_at_ms = AT(60) + 240000};
    notify_send(n, &ya, 1);
    FIRE("X", 329);
    ya.ends_at_ms = AT(329) + 240000;
    notify_send(n, &ya, 1);
    STEP(329);
    sleep_ms(150);
    assert_int_equal(count(&e.rcv, "/hook"), 1);
    STEP(330);
    assert_int_equal(wait_count(&e.rcv, "/hook", 2, 3000), 2);
    b = body_of(&e.rcv, "/hook", 1);
    json_doc *d = json_doc_parse(b, strlen(b), 1 << 20, 0, NULL);
    assert_int_equal(json_val_len(json_val_get(json_doc_root(d), "alerts")), 2);
    json_doc_free(d);
    free(b);

    /* Nothing changed: no notification at the next interval. */
    FIRE("X", 600);
    ya.ends_at_ms = AT(600) + 240000;
    notify_send(n, &ya, 1);
    STEP(600);
    STEP(630);
    sleep_ms(150);
    assert_int_equal(count(&e.rcv, "/hook"), 2);

    /* X resolves: notified at the next interval (send_resolved). */
    send_one(n, "X", AT(0), AT(690));
    ya.ends_at_ms = AT(700) + 240000;
    notify_send(n, &ya, 1);
    STEP(700);
    ya.ends_at_ms = AT(929) + 240000;
    notify_send(n, &ya, 1);
    STEP(929);
    sleep_ms(150);
    assert_int_equal(count(&e.rcv, "/hook"), 2);
    STEP(930);
    assert_int_equal(wait_count(&e.rcv, "/hook", 3, 3000), 3);
    b = body_of(&e.rcv, "/hook", 2);
    assert_non_null(strstr(b, "\"status\":\"resolved\""));
    assert_non_null(strstr(b, "\"endsAt\":\"2025-11-25T14:02:56Z\""));
    free(b);

    /* Resolved X is gone; Y unchanged: nothing at 1230. */
    ya.ends_at_ms = AT(1200) + 240000;
    notify_send(n, &ya, 1);
    STEP(1200);
    STEP(1230);
    sleep_ms(150);
    assert_int_equal(count(&e.rcv, "/hook"), 3);

    /* repeat_interval (1h after the last notification at 930). */
    ya.ends_at_ms = AT(4000) + 240000;
    notify_send(n, &ya, 1);
    STEP(4000);
    sleep_ms(150);
    assert_int_equal(count(&e.rcv, "/hook"), 3);
    ya.ends_at_ms = AT(4600) + 240000;
    notify_send(n, &ya, 1);
    STEP(4600);
    assert_int_equal(wait_count(&e.rcv, "/hook", 4, 3000), 4);

    /* Restart: the notification log is in the store, so the re-formed
     * group is not notified again. */
    notify_free(n);
    n = start(&e, o, cfg);
    ya.ends_at_ms = AT(4700) + 240000;
    notify_send(n, &ya, 1);
    STEP(4700);
    ya.ends_at_ms = AT(4731) + 240000;
    notify_send(n, &ya, 1);
    STEP(4731);
    sleep_ms(200);
    assert_int_equal(count(&e.rcv, "/hook"), 4);
    /* But a new alert is. */
    FIRE("X", 4800);
    STEP(4800);
    STEP(5031);
    assert_int_equal(wait_count(&e.rcv, "/hook", 5, 3000), 5);
#undef AT
#undef STEP
#undef FIRE
    labels_free(y);
    notify_free(n);
    config_unref(cfg);
    env_cleanup(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_format_time),
        cmocka_unit_test(test_group_key),
        cmocka_unit_test(test_hmac),
        cmocka_unit_test(test_webhook_payload_captures),
        cmocka_unit_test(test_webhook_order_common_truncation),
        cmocka_unit_test(test_alertmanager_body_and_batches),
        cmocka_unit_test(test_backoff_order_isolation),
        cmocka_unit_test(test_outbox_restart),
        cmocka_unit_test(test_max_age_and_capacity),
        cmocka_unit_test(test_removed_destination),
        cmocka_unit_test(test_webhook_grouping_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
