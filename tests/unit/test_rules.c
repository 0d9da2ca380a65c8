/* Unit tests for rules: recording rules (labels, duplicates, scalars,
 * staleness), the alert state machine step by step (for, keep_firing_for,
 * resolve, resolved retention, ValidUntil, resend), templates in labels
 * and annotations, limits, query_offset, persisted state and restore,
 * reload keeping state, metrics, the group threads, EvalTimestamp and the
 * generator URL. The data source is a memstore; rule files are parsed with
 * rulefmt_parse. */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#include "labels.h"
#include "mem.h"
#include "promql/parse.h"
#include "querier.h"
#include "store.h"
#include "promql/memstore.h"
#include "registry.h"
#include "rulefmt.h"
#include "rules.h"
#include "strutil.h"
#include "template.h"

#define MIN (60 * 1000LL)

/* ---- fixture -------------------------------------------------------------------- */

typedef struct sample_rec {
    char *series; /* labels_format_metric */
    int64_t t;
    double v;
} sample_rec;

typedef struct sent_rec {
    char *labels; /* labels_format */
    char *annotations;
    int64_t starts_at, ends_at;
    char *url;
    int64_t at; /* fixture time when sent */
} sent_rec;

typedef struct kv_ent {
    void *key;
    size_t key_len;
    char *value;
    size_t len;
} kv_ent;

typedef struct fx {
    memstore *ms;
    promql_queryable q;
    sample_rec *s;
    size_t n_s, cap_s;
    sent_rec *sent;
    size_t n_sent, cap_sent;
    kv_ent *kv;
    size_t n_kv, cap_kv;
    size_t saves;
    registry *reg;
    rules_manager *m;
    int64_t now; /* the time of the current eval, for sent_rec.at */
    bool fail_commit;
    long commit_sleep_ms; /* slow appender */
} fx;

static void *app_begin(void *ctx)
{
    return ctx;
}

static int app_append(void *batch, const labels *ls, int64_t t, double v, buf *err)
{
    fx *f = batch;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    labels_format_metric(ls, &b);
    f->s = mem_grow(f->s, sizeof *f->s, f->n_s + 1, &f->cap_s);
    f->s[f->n_s++] = (sample_rec){.series = buf_detach(&b, NULL), .t = t, .v = v};
    return memstore_append(f->ms, ls, t, v, err);
}

static int app_commit(void *batch, buf *err)
{
    fx *f = batch;
    if (f->commit_sleep_ms) {
        struct timespec ts = {0, f->commit_sleep_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (f->fail_commit) {
        buf_puts(err, "commit failed on purpose");
        return -EIO;
    }
    return 0;
}

static void on_notify(void *ctx, const char *expr, const rules_sent_alert *a, size_t n)
{
    fx *f = ctx;
    assert_non_null(expr);
    for (size_t i = 0; i < n; i++) {
        buf l, an;
        buf_init(&l, BUF_UNLIMITED);
        buf_init(&an, BUF_UNLIMITED);
        labels_format(a[i].labels, &l);
        labels_format(a[i].annotations, &an);
        f->sent = mem_grow(f->sent, sizeof *f->sent, f->n_sent + 1, &f->cap_sent);
        f->sent[f->n_sent++] = (sent_rec){.labels = buf_detach(&l, NULL),
                                          .annotations = buf_detach(&an, NULL),
                                          .starts_at = a[i].starts_at_ms,
                                          .ends_at = a[i].ends_at_ms,
                                          .url = mem_strdup(a[i].generator_url),
                                          .at = f->now};
    }
}

static kv_ent *kv_find(fx *f, const void *key, size_t len)
{
    for (size_t i = 0; i < f->n_kv; i++)
        if (f->kv[i].key_len == len && memcmp(f->kv[i].key, key, len) == 0) return &f->kv[i];
    return NULL;
}

static int kv_save(void *ctx, const void *key, size_t key_len, const void *value, size_t len,
                   buf *err)
{
    (void)err;
    fx *f = ctx;
    f->saves++;
    kv_ent *e = kv_find(f, key, key_len);
    if (!value) {
        if (e) {
            mem_free(e->key);
            mem_free(e->value);
            *e = f->kv[--f->n_kv];
        }
        return 0;
    }
    if (!e) {
        f->kv = mem_grow(f->kv, sizeof *f->kv, f->n_kv + 1, &f->cap_kv);
        e = &f->kv[f->n_kv++];
        e->key = mem_malloc(key_len);
        memcpy(e->key, key, key_len);
        e->key_len = key_len;
    } else {
        mem_free(e->value);
    }
    e->value = mem_strndup(value, len);
    e->len = len;
    return 0;
}

static int kv_load(void *ctx, const void *key, size_t key_len, void **value, size_t *len, buf *err)
{
    (void)err;
    kv_ent *e = kv_find(ctx, key, key_len);
    if (!e) return -ENOENT;
    *value = mem_strndup(e->value, e->len);
    *len = e->len;
    return 0;
}

static void fx_manager(fx *f)
{
    rules_options o;
    memset(&o, 0, sizeof o);
    rules_source_queryable(&f->q, &o.source);
    o.appender =
        (rules_appender){.ctx = f, .begin = app_begin, .append = app_append, .commit = app_commit};
    o.notify = on_notify;
    o.notify_ctx = f;
    o.persist = (rules_persist){.ctx = f, .save = kv_save, .load = kv_load};
    o.reg = f->reg;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(rules_manager_new(&o, &f->m, &err), 0);
    buf_cleanup(&err);
}

static fx *fx_new(void)
{
    fx *f = mem_calloc(1, sizeof *f);
    f->ms = memstore_new(0);
    f->q = memstore_queryable(f->ms);
    f->reg = registry_new();
    fx_manager(f);
    return f;
}

static void fx_clear_records(fx *f)
{
    for (size_t i = 0; i < f->n_s; i++)
        mem_free(f->s[i].series);
    f->n_s = 0;
    for (size_t i = 0; i < f->n_sent; i++) {
        mem_free(f->sent[i].labels);
        mem_free(f->sent[i].annotations);
        mem_free(f->sent[i].url);
    }
    f->n_sent = 0;
}

static void fx_free(fx *f)
{
    rules_manager_free(f->m);
    fx_clear_records(f);
    mem_free(f->s);
    mem_free(f->sent);
    for (size_t i = 0; i < f->n_kv; i++) {
        mem_free(f->kv[i].key);
        mem_free(f->kv[i].value);
    }
    mem_free(f->kv);
    registry_free(f->reg);
    memstore_free(f->ms);
    mem_free(f);
}

static labels *L(const char *sel)
{
    label_matcher *ms;
    size_t n;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(labels_parse_metric_selector(sel, strlen(sel), &ms, &n, &err), 0);
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

static void put(fx *f, const char *sel, int64_t t, double v)
{
    labels *ls = L(sel);
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(memstore_append(f->ms, ls, t, v, &err), 0);
    buf_cleanup(&err);
    labels_free(ls);
}

/* put() at t = from, from+step, ..., <= to. */
static void put_range(fx *f, const char *sel, int64_t from, int64_t to, int64_t step, double v)
{
    for (int64_t t = from; t <= to; t += step)
        put(f, sel, t, v);
}

static void load_yaml(fx *f, const char *path, const char *yaml, const rules_config *cfg)
{
    rulefmt_file *rf = NULL;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    int rc = rulefmt_parse(yaml, strlen(yaml), path, NULL, &rf, &err);
    if (rc != 0) fail_msg("rulefmt: %s", buf_cstr(&err));
    rules_config c = {.evaluation_interval_ms = MIN};
    if (!cfg) cfg = &c;
    const rulefmt_file *files[] = {rf};
    rc = rules_manager_update_files(f->m, files, 1, cfg, &err);
    if (rc != 0) fail_msg("update: %s", buf_cstr(&err));
    rulefmt_file_free(rf);
    buf_cleanup(&err);
}

static void eval(fx *f, int64_t t)
{
    f->now = t;
    assert_int_equal(rules_manager_eval(f->m, t, NULL, 0), 0);
}

/* The value recorded for series at t, or NAN (not found); *found set. */
static bool recorded(fx *f, const char *series, int64_t t, double *v)
{
    bool found = false;
    for (size_t i = 0; i < f->n_s; i++)
        if (f->s[i].t == t && strcmp(f->s[i].series, series) == 0) {
            *v = f->s[i].v;
            found = true;
        }
    return found;
}

static size_t sent_at(fx *f, int64_t t, const sent_rec **first)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_sent; i++)
        if (f->sent[i].at == t) {
            if (n == 0 && first) *first = &f->sent[i];
            n++;
        }
    return n;
}

static const rules_rule_snap *snap_rule(const rules_snapshot *s, size_t g, size_t r)
{
    assert_true(g < s->n_groups);
    assert_true(r < s->groups[g].n_rules);
    return &s->groups[g].rules[r];
}

/* ---- recording rules --------------------------------------------------------------- */

static void test_recording_labels_and_staleness(void **state)
{
    (void)state;
    fx *f = fx_new();
    put_range(f, "m{a=\"1\"}", 0, 5 * MIN, MIN, 3);
    put_range(f, "m{a=\"2\"}", 0, 1 * MIN, MIN, 5);
    put(f, "m{a=\"2\"}", 90 * 1000, strutil_stale_nan());
    load_yaml(f, "r.yml",
              "groups:\n- name: g\n  labels: {team: x, over: group}\n  rules:\n"
              "  - record: job:m:x2\n    expr: m * 2\n    labels: {over: rule}\n"
              "  - record: job:m:sum\n    expr: sum(job:m:x2)\n",
              NULL);
    eval(f, 1 * MIN);
    double v = 0;
    assert_true(recorded(f, "job:m:x2{a=\"1\",over=\"rule\",team=\"x\"}", MIN, &v));
    assert_true(v == 6);
    assert_true(recorded(f, "job:m:x2{a=\"2\",over=\"rule\",team=\"x\"}", MIN, &v));
    assert_true(v == 10);
    /* the second rule saw the first rule's output of the same evaluation */
    assert_true(recorded(f, "job:m:sum{over=\"group\",team=\"x\"}", MIN, &v));
    assert_true(v == 16);

    /* m{a="2"} went stale: its recorded series gets a staleness marker */
    eval(f, 2 * MIN);
    assert_true(recorded(f, "job:m:x2{a=\"1\",over=\"rule\",team=\"x\"}", 2 * MIN, &v));
    assert_true(recorded(f, "job:m:x2{a=\"2\",over=\"rule\",team=\"x\"}", 2 * MIN, &v));
    assert_true(strutil_is_stale_nan(v));
    assert_true(recorded(f, "job:m:sum{over=\"group\",team=\"x\"}", 2 * MIN, &v));
    assert_true(v == 6);
    /* only once */
    eval(f, 3 * MIN);
    assert_false(recorded(f, "job:m:x2{a=\"2\",over=\"rule\",team=\"x\"}", 3 * MIN, &v));

    rules_snapshot s;
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(s.n_groups, 1);
    assert_string_equal(s.groups[0].name, "g");
    assert_string_equal(s.groups[0].file, "r.yml");
    assert_int_equal(s.groups[0].interval_ms, MIN);
    const rules_rule_snap *r = snap_rule(&s, 0, 0);
    assert_false(r->alerting);
    assert_string_equal(r->name, "job:m:x2");
    assert_string_equal(r->query, "m * 2");
    assert_int_equal(r->health, RULES_HEALTH_OK);
    assert_null(r->last_error);
    assert_int_not_equal(r->last_evaluation_ms, RULES_TS_NONE);
    rules_snapshot_cleanup(&s);
    fx_free(f);
}

static void test_recording_duplicate_and_scalar(void **state)
{
    (void)state;
    fx *f = fx_new();
    put_range(f, "m{a=\"1\"}", 0, 2 * MIN, MIN, 1);
    put_range(f, "m{a=\"2\"}", 0, 2 * MIN, MIN, 2);
    load_yaml(f, "r.yml",
              "groups:\n- name: g\n  rules:\n"
              "  - record: dup\n    expr: m\n    labels: {a: same}\n"
              "  - record: sc\n    expr: scalar(m{a=\"2\"}) * 3\n",
              NULL);
    eval(f, MIN);
    rules_snapshot s;
    rules_manager_snapshot(f->m, &s);
    const rules_rule_snap *r = snap_rule(&s, 0, 0);
    assert_int_equal(r->health, RULES_HEALTH_ERR);
    assert_string_equal(r->last_error,
                        "vector contains metrics with the same labelset after applying rule "
                        "labels");
    assert_int_equal(snap_rule(&s, 0, 1)->health, RULES_HEALTH_OK);
    rules_snapshot_cleanup(&s);
    double v = 0;
    assert_false(recorded(f, "dup{a=\"same\"}", MIN, &v));
    assert_true(recorded(f, "sc", MIN, &v));
    assert_true(v == 6);
    /* failures are counted */
    const char *lv[] = {"r.yml;g", NULL};
    assert_true(registry_value(registry_child(
                    registry_counter(f->reg, "sidewatch_rule_evaluation_failures_total", "",
                                     (const char *const[]){"rule_group", NULL}),
                    lv)) == 1);
    fx_free(f);
}

/* ---- alerting rules ------------------------------------------------------------------ */

static void test_alert_state_machine(void **state)
{
    (void)state;
    fx *f = fx_new();
    put_range(f, "up{job=\"a\"}", 0, 4 * MIN, MIN, 0);
    put_range(f, "up{job=\"a\"}", 5 * MIN, 30 * MIN, MIN, 1);
    load_yaml(f, "a.yml",
              "groups:\n- name: g\n  rules:\n"
              "  - alert: Down\n    expr: up == 0\n    for: 2m\n"
              "    labels: {severity: page}\n    annotations: {summary: down}\n",
              NULL);
    rules_snapshot s;
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(snap_rule(&s, 0, 0)->state, RULES_STATE_UNKNOWN);
    rules_snapshot_cleanup(&s);

    const char *ser = "ALERTS{alertname=\"Down\",alertstate=\"pending\",job=\"a\","
                      "severity=\"page\"}";
    const char *fser = "ALERTS{alertname=\"Down\",alertstate=\"firing\",job=\"a\","
                       "severity=\"page\"}";
    const char *fs = "ALERTS_FOR_STATE{alertname=\"Down\",job=\"a\",severity=\"page\"}";
    double v = 0;
    for (int64_t t = 0; t <= 30 * MIN; t += MIN) {
        eval(f, t);
        rules_manager_snapshot(f->m, &s);
        const rules_rule_snap *r = snap_rule(&s, 0, 0);
        if (t < 2 * MIN) { /* pending */
            assert_int_equal(r->state, RULES_STATE_PENDING);
            assert_int_equal(r->n_alerts, 1);
            assert_int_equal(r->alerts[0].active_at_ms, 0);
            assert_true(recorded(f, ser, t, &v) && v == 1);
            assert_true(recorded(f, fs, t, &v) && v == 0);
            assert_int_equal(sent_at(f, t, NULL), 0);
        } else if (t < 5 * MIN) { /* firing */
            assert_int_equal(r->state, RULES_STATE_FIRING);
            assert_int_equal(r->alerts[0].fired_at_ms, 2 * MIN);
            assert_true(recorded(f, fser, t, &v) && v == 1);
            assert_true(recorded(f, fs, t, &v) && v == 0);
            if (t == 2 * MIN) assert_true(recorded(f, ser, t, &v) && strutil_is_stale_nan(v));
            /* resend only when lastSentAt + 1m < t: at 2m and 4m */
            const sent_rec *sr = NULL;
            size_t n = sent_at(f, t, &sr);
            assert_int_equal(n, t == 3 * MIN ? 0 : 1);
            if (n) {
                assert_string_equal(sr->labels,
                                    "{alertname=\"Down\", job=\"a\", severity=\"page\"}");
                assert_string_equal(sr->annotations, "{summary=\"down\"}");
                assert_int_equal(sr->starts_at, 2 * MIN);
                /* ValidUntil = t + 4 * max(resend 1m, interval 1m) */
                assert_int_equal(sr->ends_at, t + 4 * MIN);
                assert_string_equal(sr->url, "/graph?g0.expr=up+%3D%3D+0&g0.tab=1");
            }
        } else {                              /* resolved at 5m */
            assert_int_equal(r->n_alerts, 0); /* resolved alerts are not active */
            assert_false(recorded(f, fser, t, &v) && !strutil_is_stale_nan(v));
            if (t == 5 * MIN) assert_true(recorded(f, fser, t, &v) && strutil_is_stale_nan(v));
            const sent_rec *sr = NULL;
            size_t n = sent_at(f, t, &sr);
            /* resolved: sent at 5m, then every time lastSentAt + 1m < t, until it is
             * dropped when t - resolvedAt > 15m */
            bool expect = t <= 20 * MIN && ((t - 5 * MIN) / MIN) % 2 == 0;
            assert_int_equal(n, expect ? 1 : 0);
            if (n) {
                assert_int_equal(sr->ends_at, 5 * MIN);
                assert_int_equal(sr->starts_at, 2 * MIN);
            }
            assert_int_equal(r->state, t <= 20 * MIN ? RULES_STATE_INACTIVE : RULES_STATE_INACTIVE);
        }
        rules_snapshot_cleanup(&s);
    }
    /* the resolved alert left the state after 15 minutes: nothing persisted */
    assert_int_equal(f->n_kv, 0);
    assert_true(f->saves > 0);
    fx_free(f);
}

static void test_alert_keep_firing_for_and_reactivation(void **state)
{
    (void)state;
    fx *f = fx_new();
    put_range(f, "x", 0, 2 * MIN, MIN, 1);
    put_range(f, "x", 3 * MIN, 20 * MIN, MIN, 0);
    load_yaml(f, "a.yml",
              "groups:\n- name: g\n  rules:\n"
              "  - alert: X\n    expr: x > 0\n    keep_firing_for: 3m\n",
              NULL);
    rules_snapshot s;
    for (int64_t t = 0; t <= 8 * MIN; t += MIN) {
        eval(f, t);
        rules_manager_snapshot(f->m, &s);
        const rules_rule_snap *r = snap_rule(&s, 0, 0);
        if (t < 6 * MIN) {
            /* for 0: fires at once; kept firing from 3m while t - 3m < 3m */
            assert_int_equal(r->state, RULES_STATE_FIRING);
            assert_int_equal(r->n_alerts, 1);
            assert_int_equal(r->alerts[0].keep_firing_since_ms,
                             t >= 3 * MIN ? 3 * MIN : RULES_TS_NONE);
        } else {
            assert_int_equal(r->state, RULES_STATE_INACTIVE);
            assert_int_equal(r->n_alerts, 0);
        }
        rules_snapshot_cleanup(&s);
    }
    const sent_rec *sr = NULL;
    assert_int_equal(sent_at(f, 6 * MIN, &sr), 1);
    assert_int_equal(sr->ends_at, 6 * MIN);
    /* comes back: a new alert, activeAt the new time */
    put(f, "x", 9 * MIN, 1);
    eval(f, 9 * MIN);
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(snap_rule(&s, 0, 0)->n_alerts, 1);
    assert_int_equal(snap_rule(&s, 0, 0)->alerts[0].active_at_ms, 9 * MIN);
    assert_int_equal(snap_rule(&s, 0, 0)->alerts[0].fired_at_ms, 9 * MIN);
    rules_snapshot_cleanup(&s);
    fx_free(f);
}

static void test_alert_duplicate_and_limit(void **state)
{
    (void)state;
    fx *f = fx_new();
    put_range(f, "y{i=\"1\"}", 0, 2 * MIN, MIN, 1);
    put_range(f, "y{i=\"2\"}", 0, 2 * MIN, MIN, 1);
    load_yaml(f, "a.yml",
              "groups:\n- name: g\n  limit: 1\n  rules:\n"
              "  - alert: Lim\n    expr: y > 0\n"
              "  - alert: Dup\n    expr: y > 0\n    labels: {i: same}\n"
              "  - record: rec\n    expr: y\n",
              NULL);
    eval(f, 0);
    rules_snapshot s;
    rules_manager_snapshot(f->m, &s);
    assert_string_equal(snap_rule(&s, 0, 0)->last_error, "exceeded limit of 1 with 2 alerts");
    assert_int_equal(snap_rule(&s, 0, 0)->n_alerts, 0);
    assert_string_equal(snap_rule(&s, 0, 1)->last_error,
                        "vector contains metrics with the same labelset after applying alert "
                        "labels");
    assert_string_equal(snap_rule(&s, 0, 2)->last_error, "exceeded limit of 1 with 2 series");
    assert_int_equal(s.groups[0].limit, 1);
    rules_snapshot_cleanup(&s);
    /* A rule over the group's limit is a failed evaluation, and counted as
     * one (with the duplicate): three failures. */
    const char *lv[] = {"a.yml;g", NULL};
    assert_true(registry_value(registry_child(
                    registry_counter(f->reg, "sidewatch_rule_evaluation_failures_total", "",
                                     (const char *const[]){"rule_group", NULL}),
                    lv)) == 3);
    fx_free(f);
}

static void test_alert_templates(void **state)
{
    (void)state;
    fx *f = fx_new();
    put_range(f, "temp{room=\"k\"}", 0, 2 * MIN, MIN, 31.5);
    const char *lab = "{{ $labels.room }}-hot";
    const char *ann = "Room {{ $labels.room }} is {{ $value }} ({{ $externalLabels.site }})";
    const char *bad = "{{ $labels.room | humanize }}";
    labels *ext = L("{site=\"s1\"}");
    rules_config c = {
        .evaluation_interval_ms = MIN, .external_labels = ext, .external_url = "http://x:9090"};
    load_yaml(f, "t.yml",
              "groups:\n- name: g\n  rules:\n"
              "  - alert: Hot\n    expr: temp > 30\n"
              "    labels: {where: '{{ $labels.room }}-hot'}\n"
              "    annotations: {summary: 'Room {{ $labels.room }} is {{ $value }} "
              "({{ $externalLabels.site }})', "
              "q: '{{ with query \"sum(temp) * 2\" }}{{ . | first | value }}{{ end }}'}\n",
              &c);
    eval(f, MIN);
    /* what the template engine gives for the same data */
    labels *metric = L("temp{room=\"k\"}");
    template_data d = {.labels = metric,
                       .value = 31.5,
                       .external_labels = ext,
                       .external_url = "http://x:9090",
                       .time_ms = MIN};
    buf want_l, want_a, err;
    buf_init(&want_l, BUF_UNLIMITED);
    buf_init(&want_a, BUF_UNLIMITED);
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(template_expand("__alert_Hot", lab, strlen(lab), &d, &want_l, &err), 0);
    assert_int_equal(template_expand("__alert_Hot", ann, strlen(ann), &d, &want_a, &err), 0);
    rules_snapshot s;
    rules_manager_snapshot(f->m, &s);
    const rules_rule_snap *r = snap_rule(&s, 0, 0);
    assert_int_equal(r->n_alerts, 1);
    size_t len;
    const char *got = labels_get(r->alerts[0].labels, "where", 5, &len);
    assert_non_null(got);
    assert_string_equal(got, buf_cstr(&want_l));
    got = labels_get(r->alerts[0].annotations, "summary", 7, &len);
    assert_non_null(got);
    assert_string_equal(got, buf_cstr(&want_a));
    /* what Prometheus gives */
    assert_string_equal(labels_get(r->alerts[0].labels, "where", 5, &len), "k-hot");
    assert_string_equal(labels_get(r->alerts[0].annotations, "summary", 7, &len),
                        "Room k is 31.5 (s1)");
    /* `query` runs through the rule engine's source at the evaluation time */
    got = labels_get(r->alerts[0].annotations, "q", 1, &len);
    assert_non_null(got);
    assert_string_equal(got, "63");
    /* the rule's labels in the snapshot are the templates as written */
    assert_string_equal(labels_get(r->labels, "where", 5, &len), lab);
    assert_true(r->alerts[0].value == 31.5);
    rules_snapshot_cleanup(&s);
    const sent_rec *sr = NULL;
    assert_int_equal(sent_at(f, MIN, &sr), 1);
    assert_string_equal(sr->url, "http://x:9090/graph?g0.expr=temp+%3E+30&g0.tab=1");

    /* a template error becomes the text, not a failure */
    buf_reset(&err);
    buf junk;
    buf_init(&junk, BUF_UNLIMITED);
    assert_true(template_expand("__alert_Bad", bad, strlen(bad), &d, &junk, &err) < 0);
    {
        fx *g = fx_new();
        put_range(g, "temp{room=\"k\"}", 0, 2 * MIN, MIN, 31.5);
        load_yaml(g, "t.yml",
                  "groups:\n- name: g\n  rules:\n  - alert: Bad\n    expr: temp > 30\n"
                  "    annotations: {summary: '{{ $labels.room | humanize }}'}\n",
                  NULL);
        eval(g, MIN);
        rules_manager_snapshot(g->m, &s);
        r = snap_rule(&s, 0, 0);
        assert_int_equal(r->health, RULES_HEALTH_OK);
        got = labels_get(r->alerts[0].annotations, "summary", 7, &len);
        assert_non_null(got);
        buf want;
        buf_init(&want, BUF_UNLIMITED);
        buf_printf(&want, "<error expanding template: %s>", buf_cstr(&err));
        assert_string_equal(got, buf_cstr(&want));
        buf_cleanup(&want);
        rules_snapshot_cleanup(&s);
        fx_free(g);
    }
    buf_cleanup(&junk);
    buf_cleanup(&want_l);
    buf_cleanup(&want_a);
    buf_cleanup(&err);
    labels_free(metric);
    labels_free(ext);
    fx_free(f);
}

static void test_query_offset(void **state)
{
    (void)state;
    fx *f = fx_new();
    put(f, "c", 0, 1);
    put(f, "c", MIN, 2);
    put(f, "c", 2 * MIN, 3);
    rules_config c = {.evaluation_interval_ms = MIN, .query_offset_ms = 30 * 1000};
    load_yaml(f, "o.yml",
              "groups:\n- name: global\n  rules:\n  - record: r1\n    expr: c\n"
              "- name: own\n  query_offset: 1m\n  rules:\n  - record: r2\n    expr: c\n",
              &c);
    eval(f, 2 * MIN);
    double v = 0;
    /* global offset 30s: queried at 1m30s, written at 1m30s */
    assert_true(recorded(f, "r1", 2 * MIN - 30 * 1000, &v));
    assert_true(v == 2);
    /* the group's own offset wins */
    assert_true(recorded(f, "r2", MIN, &v));
    assert_true(v == 2);
    assert_false(recorded(f, "r2", 2 * MIN, &v));
    rules_snapshot s;
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(s.groups[0].query_offset_ms, 30 * 1000);
    assert_int_equal(s.groups[1].query_offset_ms, MIN);
    rules_snapshot_cleanup(&s);
    fx_free(f);
}

/* ---- persistence and reload ---------------------------------------------------------- */

static const char *persist_yaml = "groups:\n- name: g\n  rules:\n"
                                  "  - alert: P\n    expr: p > 0\n    for: 5m\n"
                                  "  - alert: K\n    expr: k > 0\n    keep_firing_for: 10m\n";

static void test_restore_from_persisted_state(void **state)
{
    (void)state;
    fx *f = fx_new();
    put_range(f, "p", 0, 30 * MIN, MIN, 1);
    put_range(f, "k", 0, 2 * MIN, MIN, 1);
    put_range(f, "k", 3 * MIN, 30 * MIN, MIN, 0);
    load_yaml(f, "p.yml", persist_yaml, NULL);
    for (int64_t t = 0; t <= 4 * MIN; t += MIN)
        eval(f, t);
    /* P pending since 0; K firing, kept since 3m */
    assert_int_equal(f->n_kv, 2);
    for (size_t i = 0; i < f->n_kv; i++)
        assert_true(strncmp(f->kv[i].value, "rules-alerts v1\n", 16) == 0);

    /* "restart": a new manager over the same persistence */
    rules_manager_free(f->m);
    f->m = NULL;
    registry_free(f->reg);
    f->reg = registry_new();
    fx_manager(f);
    load_yaml(f, "p.yml", persist_yaml, NULL);
    rules_snapshot s;
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(snap_rule(&s, 0, 0)->n_alerts, 1);
    assert_int_equal(snap_rule(&s, 0, 0)->alerts[0].state, RULES_STATE_PENDING);
    assert_int_equal(snap_rule(&s, 0, 0)->alerts[0].active_at_ms, 0);
    assert_int_equal(snap_rule(&s, 0, 1)->alerts[0].state, RULES_STATE_FIRING);
    assert_int_equal(snap_rule(&s, 0, 1)->alerts[0].keep_firing_since_ms, 3 * MIN);
    assert_int_equal(snap_rule(&s, 0, 1)->alerts[0].fired_at_ms, 0);
    assert_int_equal(snap_rule(&s, 0, 1)->alerts[0].last_sent_at_ms, 4 * MIN);
    rules_snapshot_cleanup(&s);

    eval(f, 5 * MIN);
    rules_manager_snapshot(f->m, &s);
    /* the `for` progress survived: firing at 5m */
    assert_int_equal(snap_rule(&s, 0, 0)->state, RULES_STATE_FIRING);
    assert_int_equal(snap_rule(&s, 0, 0)->alerts[0].fired_at_ms, 5 * MIN);
    /* keep_firing_for counts from before the restart */
    assert_int_equal(snap_rule(&s, 0, 1)->state, RULES_STATE_FIRING);
    rules_snapshot_cleanup(&s);
    /* K was last sent at 4m: not again at 5m */
    for (size_t i = 0; i < f->n_sent; i++)
        if (f->sent[i].at == 5 * MIN) assert_null(strstr(f->sent[i].labels, "\"K\""));
    for (int64_t t = 6 * MIN; t <= 13 * MIN; t += MIN)
        eval(f, t);
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(snap_rule(&s, 0, 1)->state, RULES_STATE_INACTIVE); /* 13m - 3m >= 10m */
    rules_snapshot_cleanup(&s);

    /* unreadable saved state is ignored */
    for (size_t i = 0; i < f->n_kv; i++) {
        mem_free(f->kv[i].value);
        f->kv[i].value = mem_strdup("garbage");
        f->kv[i].len = 7;
    }
    rules_manager_free(f->m);
    registry_free(f->reg);
    f->reg = registry_new();
    fx_manager(f);
    load_yaml(f, "p.yml", persist_yaml, NULL);
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(snap_rule(&s, 0, 0)->n_alerts, 0);
    rules_snapshot_cleanup(&s);
    fx_free(f);
}

static void test_reload_keeps_state(void **state)
{
    (void)state;
    fx *f = fx_new();
    put_range(f, "p", 0, 30 * MIN, MIN, 1);
    put_range(f, "q", 0, 30 * MIN, MIN, 1);
    load_yaml(f, "p.yml",
              "groups:\n- name: g\n  rules:\n  - alert: P\n    expr: p > 0\n    for: 5m\n"
              "  - record: rq\n    expr: q\n"
              "- name: gone\n  rules:\n  - record: rg\n    expr: q\n"
              "  - alert: G\n    expr: q > 0\n",
              NULL);
    eval(f, 0);
    eval(f, MIN);
    assert_int_equal(f->n_kv, 2); /* P and G */
    /* same definition: the group is kept as it is */
    load_yaml(f, "p.yml",
              "groups:\n- name: g\n  rules:\n  - alert: P\n    expr: p > 0\n    for: 5m\n"
              "  - record: rq\n    expr: q\n"
              "- name: gone\n  rules:\n  - record: rg\n    expr: q\n"
              "  - alert: G\n    expr: q > 0\n",
              NULL);
    rules_snapshot s;
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(snap_rule(&s, 0, 0)->alerts[0].active_at_ms, 0);
    assert_int_not_equal(s.groups[0].last_evaluation_ms, RULES_TS_NONE);
    rules_snapshot_cleanup(&s);

    /* changed group (a rule added before), removed group: state copied by name and
     * labels; the removed group's series go stale and its saved state is deleted */
    fx_clear_records(f);
    load_yaml(f, "p.yml",
              "groups:\n- name: g\n  rules:\n  - record: new\n    expr: p\n"
              "  - alert: P\n    expr: p > 0\n    for: 5m\n",
              NULL);
    double v = 0;
    bool stale_rg = false, stale_alerts = false;
    for (size_t i = 0; i < f->n_s; i++) {
        if (strcmp(f->s[i].series, "rg") == 0 && strutil_is_stale_nan(f->s[i].v)) stale_rg = true;
        if (strstr(f->s[i].series, "alertname=\"G\"") && strutil_is_stale_nan(f->s[i].v))
            stale_alerts = true;
    }
    assert_true(stale_rg);
    assert_true(stale_alerts);
    assert_int_equal(f->n_kv, 1); /* G's state deleted */
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(s.n_groups, 1);
    assert_int_equal(snap_rule(&s, 0, 1)->n_alerts, 1);
    assert_int_equal(snap_rule(&s, 0, 1)->alerts[0].active_at_ms, 0);
    rules_snapshot_cleanup(&s);
    /* rq was dropped from the changed group: stale at the next evaluation */
    eval(f, 5 * MIN);
    assert_true(recorded(f, "rq", 5 * MIN, &v) && strutil_is_stale_nan(v));
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(snap_rule(&s, 0, 1)->state, RULES_STATE_FIRING);
    rules_snapshot_cleanup(&s);
    fx_free(f);
}

/* ---- errors, metrics, threads, helpers ------------------------------------------------ */

static void test_update_errors_keep_old_groups(void **state)
{
    (void)state;
    fx *f = fx_new();
    load_yaml(f, "a.yml", "groups:\n- name: g\n  rules:\n  - record: r\n    expr: vector(1)\n",
              NULL);
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    char *files[] = {"/nonexistent/sidewatch-wip-rules.yml"};
    rules_config c = {.files = files, .n_files = 1};
    /* a pattern matching nothing is fine; a file that is missing by name too (glob) */
    int rc = rules_manager_update(f->m, &c, &err);
    rules_snapshot s;
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(s.n_groups, rc == 0 ? 0 : 1);
    rules_snapshot_cleanup(&s);
    /* a file that does not parse keeps the old groups */
    load_yaml(f, "a.yml", "groups:\n- name: g\n  rules:\n  - record: r\n    expr: vector(1)\n",
              NULL);
    const char *path = "/tmp/wip-rules-test-bad.yml";
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("groups:\n- name: x\n  rules:\n  - record: r\n    expr: sum(\n", fp);
    fclose(fp);
    char *bad[] = {(char *)path};
    rules_config cb = {.files = bad, .n_files = 1};
    buf_reset(&err);
    assert_true(rules_manager_update(f->m, &cb, &err) < 0);
    assert_true(err.len > 0);
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(s.n_groups, 1);
    assert_string_equal(s.groups[0].name, "g");
    rules_snapshot_cleanup(&s);
    unlink(path);
    /* a good file loads */
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("groups:\n- name: fromfile\n  interval: 2m\n  rules:\n  - record: r\n"
          "    expr: vector(1)\n",
          fp);
    fclose(fp);
    buf_reset(&err);
    assert_int_equal(rules_manager_update(f->m, &cb, &err), 0);
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(s.n_groups, 1);
    assert_string_equal(s.groups[0].name, "fromfile");
    assert_int_equal(s.groups[0].interval_ms, 2 * MIN);
    rules_snapshot_cleanup(&s);
    unlink(path);
    assert_int_equal(rules_manager_eval(f->m, 0, (const size_t[]){5}, 1), -EINVAL);
    buf_cleanup(&err);
    fx_free(f);
}

static double metric(fx *f, const char *name, bool counter, const char *group)
{
    const char *ln[] = {"rule_group", NULL};
    registry_family *fam =
        counter ? registry_counter(f->reg, name, "", ln) : registry_gauge(f->reg, name, "", ln);
    assert_non_null(fam);
    const char *lv[] = {group, NULL};
    return registry_value(registry_child(fam, lv));
}

static void test_metrics_values(void **state)
{
    (void)state;
    fx *f = fx_new();
    put_range(f, "m", 0, 5 * MIN, MIN, 1);
    load_yaml(f, "m.yml",
              "groups:\n- name: g\n  interval: 30s\n  rules:\n"
              "  - record: a\n    expr: m\n  - alert: B\n    expr: m > 0\n"
              "  - record: c\n    expr: m\n    labels: {x: y}\n  - record: d\n"
              "    expr: label_replace(m, \"z\", \"1\", \"\", \"\") or "
              "label_replace(m, \"z\", \"2\", \"\", \"\")\n    labels: {z: same}\n",
              NULL);
    eval(f, MIN);
    eval(f, 2 * MIN);
    const char *g = "m.yml;g";
    assert_true(metric(f, "sidewatch_rule_evaluations_total", true, g) == 8);
    assert_true(metric(f, "sidewatch_rule_evaluation_failures_total", true, g) == 2);
    assert_true(metric(f, "sidewatch_rule_group_iterations_total", true, g) == 2);
    assert_true(metric(f, "sidewatch_rule_group_iterations_missed_total", true, g) == 0);
    assert_true(metric(f, "sidewatch_rule_group_interval_seconds", false, g) == 30);
    assert_true(metric(f, "sidewatch_rule_group_rules", false, g) == 4);
    /* samples: a (1) + B (ALERTS and ALERTS_FOR_STATE) + c (1) */
    assert_true(metric(f, "sidewatch_rule_group_last_evaluation_samples", false, g) == 4);
    assert_true(metric(f, "sidewatch_rule_group_last_evaluation_timestamp_seconds", false, g) ==
                120);
    assert_true(metric(f, "sidewatch_rule_group_last_duration_seconds", false, g) >= 0);
    assert_true(metric(f, "sidewatch_rule_group_last_rule_duration_sum_seconds", false, g) >= 0);
    assert_true(metric(f, "sidewatch_rule_group_last_restore_duration_seconds", false, g) >= 0);
    registry_family *h = registry_histogram(f->reg, "sidewatch_rule_evaluation_duration_seconds",
                                            "", NULL, (const double[]){1}, 1);
    assert_true(registry_value(registry_child(h, NULL)) == 8);
    h = registry_histogram(f->reg, "sidewatch_rule_group_duration_seconds", "", NULL,
                           (const double[]){1}, 1);
    assert_true(registry_value(registry_child(h, NULL)) == 2);
    /* the exposition has them */
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    assert_int_equal(registry_write(f->reg, TEXTPARSE_PROMETHEUS, buf_sink, &out), 0);
    assert_non_null(strstr(buf_cstr(&out), "sidewatch_rule_group_rules{rule_group=\"m.yml;g\"} 4"));
    buf_cleanup(&out);
    fx_free(f);
}

static void test_threads(void **state)
{
    (void)state;
    fx *f = fx_new();
    load_yaml(f, "th.yml",
              "groups:\n- name: fast\n  interval: 100ms\n  rules:\n"
              "  - record: one\n    expr: vector(1)\n",
              NULL);
    assert_int_equal(rules_manager_start(f->m), 0);
    assert_int_equal(rules_manager_start(f->m), 0);
    struct timespec ts = {0, 450 * 1000000L};
    nanosleep(&ts, NULL);
    rules_manager_stop(f->m);
    double it = metric(f, "sidewatch_rule_group_iterations_total", true, "th.yml;fast");
    assert_true(it >= 2 && it <= 6);
    rules_snapshot s;
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(snap_rule(&s, 0, 0)->health, RULES_HEALTH_OK);
    rules_snapshot_cleanup(&s);
    /* evaluation times are the group's aligned timestamps */
    bool seen = false;
    for (size_t i = 0; i < f->n_s; i++) {
        int64_t t = f->s[i].t;
        assert_int_equal(rules_eval_timestamp("th.yml", "fast", 100, t), t);
        seen = true;
    }
    assert_true(seen);
    fx_free(f);
}

/* A group slower than its interval: the iterations it could not run are
 * counted as missed (and as scheduled), and the next one runs on the grid. */
static void test_missed_iterations(void **state)
{
    (void)state;
    fx *f = fx_new();
    load_yaml(f, "slow.yml",
              "groups:\n- name: slow\n  interval: 100ms\n  rules:\n"
              "  - record: one\n    expr: vector(1)\n",
              NULL);
    f->commit_sleep_ms = 250;
    assert_int_equal(rules_manager_start(f->m), 0);
    struct timespec ts = {0, 900 * 1000000L};
    nanosleep(&ts, NULL);
    rules_manager_stop(f->m);
    double missed =
        metric(f, "sidewatch_rule_group_iterations_missed_total", true, "slow.yml;slow");
    double iters = metric(f, "sidewatch_rule_group_iterations_total", true, "slow.yml;slow");
    size_t executed = f->n_s; /* one sample per evaluation */
    assert_true(executed >= 2);
    assert_true(missed >= 1);
    assert_true(iters == (double)executed + missed);
    for (size_t i = 0; i < f->n_s; i++)
        assert_int_equal(rules_eval_timestamp("slow.yml", "slow", 100, f->s[i].t), f->s[i].t);
    fx_free(f);
}

static void test_eval_timestamp_and_url(void **state)
{
    (void)state;
    int64_t iv = MIN;
    int64_t now = 1764000000123LL;
    int64_t t = rules_eval_timestamp("rules/a.yml", "grp", iv, now);
    assert_true(t <= now);
    assert_true(t > now - iv);
    /* stable within an interval, steps by exactly one interval */
    assert_int_equal(rules_eval_timestamp("rules/a.yml", "grp", iv, t), t);
    assert_int_equal(rules_eval_timestamp("rules/a.yml", "grp", iv, t + iv), t + iv);
    assert_int_equal(rules_eval_timestamp("rules/a.yml", "grp", iv, t - 1), t - iv);
    /* depends on the group */
    int diff = 0;
    for (int i = 0; i < 8; i++) {
        char name[16];
        snprintf(name, sizeof name, "g%d", i);
        if (rules_eval_timestamp("rules/a.yml", name, iv, now) != t) diff++;
    }
    assert_true(diff > 0);

    buf b;
    buf_init(&b, BUF_UNLIMITED);
    rules_generator_url("http://h:9090", "sum(rate(x{a=\"b c\"}[5m])) / 2 ~ +&", &b);
    assert_string_equal(buf_cstr(&b), "http://h:9090/graph?g0.expr=sum%28rate%28x%7Ba%3D%22b+c%22"
                                      "%7D%5B5m%5D%29%29+%2F+2+~+%2B%26&g0.tab=1");
    buf_cleanup(&b);
    assert_string_equal(rules_state_name(RULES_STATE_FIRING), "firing");
    assert_string_equal(rules_state_name(RULES_STATE_PENDING), "pending");
    assert_string_equal(rules_health_name(RULES_HEALTH_ERR), "err");
}

static void test_commit_failure_and_bad_options(void **state)
{
    (void)state;
    fx *f = fx_new();
    load_yaml(f, "a.yml", "groups:\n- name: g\n  rules:\n  - record: r\n    expr: vector(1)\n",
              NULL);
    f->fail_commit = true;
    eval(f, 0);
    rules_snapshot s;
    rules_manager_snapshot(f->m, &s);
    assert_int_equal(snap_rule(&s, 0, 0)->health, RULES_HEALTH_ERR);
    assert_string_equal(snap_rule(&s, 0, 0)->last_error, "commit failed on purpose");
    rules_snapshot_cleanup(&s);
    fx_free(f);

    rules_options o;
    memset(&o, 0, sizeof o);
    rules_manager *m = NULL;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(rules_manager_new(&o, &m, &err), -EINVAL);
    assert_null(m);
    assert_true(err.len > 0);
    buf_cleanup(&err);
    rules_manager_free(NULL);
}

/* The ready-made store callbacks: rule results land in the store and are
 * queryable by the next rule, alert state round-trips through store_kv. */
static void test_store_callbacks(void **state)
{
    (void)state;
    char dir[] = "/tmp/wip-rules-store-XXXXXX";
    assert_non_null(mkdtemp(dir));
    store *st = NULL;
    store_options so = {.path = dir};
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    if (store_open(&st, &so, &err) != 0) fail_msg("store_open: %s", buf_cstr(&err));
    labels *ls = L("in{a=\"1\"}");
    uint64_t ref;
    bool created;
    assert_int_equal(store_series_ref(st, ls, &ref, &created), 0);
    store_batch *b = store_batch_new(st);
    for (int64_t t = 0; t <= 3 * MIN; t += MIN)
        store_batch_add(b, ref, t, 4);
    assert_int_equal(store_batch_commit(b), 0);
    labels_free(ls);

    const char *yaml = "groups:\n- name: s\n  rules:\n  - record: out\n    expr: in * 2\n"
                       "  - record: out2\n    expr: out + 1\n"
                       "  - alert: A\n    expr: in > 1\n    for: 10m\n";
    for (int round = 0; round < 2; round++) {
        rules_options o;
        memset(&o, 0, sizeof o);
        rules_source_store(st, &o.source);
        rules_appender_store(st, &o.appender);
        rules_persist_store(st, &o.persist);
        rules_manager *m = NULL;
        assert_int_equal(rules_manager_new(&o, &m, &err), 0);
        rulefmt_file *rf = NULL;
        assert_int_equal(rulefmt_parse(yaml, strlen(yaml), "s.yml", NULL, &rf, &err), 0);
        const rulefmt_file *files[] = {rf};
        rules_config c = {.evaluation_interval_ms = MIN};
        assert_int_equal(rules_manager_update_files(m, files, 1, &c, &err), 0);
        rulefmt_file_free(rf);
        rules_snapshot s;
        if (round == 1) { /* restored from the store */
            rules_manager_snapshot(m, &s);
            assert_int_equal(snap_rule(&s, 0, 2)->n_alerts, 1);
            assert_int_equal(snap_rule(&s, 0, 2)->alerts[0].active_at_ms, MIN);
            assert_int_equal(snap_rule(&s, 0, 2)->alerts[0].state, RULES_STATE_PENDING);
            rules_snapshot_cleanup(&s);
        }
        assert_int_equal(rules_manager_eval(m, (round + 1) * MIN, NULL, 0), 0);
        rules_manager_snapshot(m, &s);
        for (size_t i = 0; i < 3; i++) {
            if (snap_rule(&s, 0, i)->last_error)
                fail_msg("rule %zu: %s", i, snap_rule(&s, 0, i)->last_error);
        }
        assert_int_equal(snap_rule(&s, 0, 2)->alerts[0].active_at_ms, MIN);
        rules_snapshot_cleanup(&s);
        rules_manager_free(m);
    }
    assert_int_equal(store_kv_count(st, RULES_KV_NAMESPACE), 1);
    /* out and out2 were written and read back within the same evaluation */
    store_reader *r = NULL;
    assert_int_equal(store_reader_open(st, &r), 0);
    querier q;
    assert_int_equal(querier_begin(&q, r, NULL), 0);
    promql_queryable pq;
    querier_queryable(&q, &pq);
    promql_ast *ast = NULL;
    assert_int_equal(promql_parse("out2", 4, NULL, &ast, &err), 0);
    promql_query qq = {.ast = ast, .expr = ast->root, .start_ms = 2 * MIN, .end_ms = 2 * MIN};
    promql_value v = {0};
    promql_error pe;
    promql_error_init(&pe);
    promql_engine_options eo = {0};
    assert_int_equal(promql_eval(&eo, &pq, &qq, &v, NULL, &pe), 0);
    assert_int_equal(v.type, PROMQL_TYPE_VECTOR);
    assert_int_equal(v.vector.n, 1);
    assert_true(v.vector.v[0].v == 9);
    promql_value_cleanup(&v);
    promql_error_cleanup(&pe);
    promql_ast_free(ast);
    querier_end(&q);
    store_reader_close(r);
    store_close(st);
    buf_cleanup(&err);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recording_labels_and_staleness),
        cmocka_unit_test(test_recording_duplicate_and_scalar),
        cmocka_unit_test(test_alert_state_machine),
        cmocka_unit_test(test_alert_keep_firing_for_and_reactivation),
        cmocka_unit_test(test_alert_duplicate_and_limit),
        cmocka_unit_test(test_alert_templates),
        cmocka_unit_test(test_query_offset),
        cmocka_unit_test(test_restore_from_persisted_state),
        cmocka_unit_test(test_reload_keeps_state),
        cmocka_unit_test(test_update_errors_keep_old_groups),
        cmocka_unit_test(test_metrics_values),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_missed_iterations),
        cmocka_unit_test(test_eval_timestamp_and_url),
        cmocka_unit_test(test_commit_failure_and_bad_options),
        cmocka_unit_test(test_store_callbacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
