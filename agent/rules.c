/* rules: rule groups, recording rules, the alert state machine and alert
 * templates (see rules.h), after Prometheus's rules package. */
#include "rules.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hmap.h"
#include "log.h"
#include "mem.h"
#include "promql/parse.h"
#include "querier.h"
#include "rulefmt.h"
#include "strutil.h"
#include "template.h"


#define COMPONENT "rules"
#define PERSIST_MAGIC "rules-alerts v1"

/* ---- small helpers -------------------------------------------------------------- */

static int64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static bool labels_eq_cb(const void *val, const void *key)
{
    return labels_equal((const labels *)val, (const labels *)key);
}

static void labels_array_free(labels **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        labels_free(v[i]);
    mem_free(v);
}

/* Prometheus's Labels.Hash() for the stringlabels build (the default):
 * XXH64 of each name and value preceded by its length (one byte below 255,
 * else 255 and three little-endian bytes). */
static void put_go_string(buf *b, const char *s)
{
    size_t n = strlen(s);
    if (n < 255) {
        buf_putc(b, (char)n);
    } else {
        unsigned char h[4] = {255, (unsigned char)n, (unsigned char)(n >> 8),
                              (unsigned char)(n >> 16)};
        buf_append(b, h, 4);
    }
    buf_append(b, s, n);
}

int64_t rules_eval_timestamp(const char *file, const char *group, int64_t interval_ms,
                             int64_t now_ms)
{
    if (interval_ms <= 0) return now_ms;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    put_go_string(&b, "file");
    put_go_string(&b, file ? file : "");
    put_go_string(&b, "name");
    put_go_string(&b, group ? group : "");
    uint64_t h = strutil_hash64(b.data, b.len, 0);
    buf_cleanup(&b);
    /* Prometheus works in nanoseconds; its sample timestamps are the
     * evaluation time truncated to milliseconds, which is (intervals being
     * whole milliseconds) the aligned base plus the offset truncated. */
    int64_t offset = (int64_t)((h % ((uint64_t)interval_ms * 1000000)) / 1000000);
    int64_t adj = now_ms - offset;
    int64_t base = adj - (((adj % interval_ms) + interval_ms) % interval_ms);
    return base + offset;
}

/* Go's url.QueryEscape. */
static void query_escape(const char *s, buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            buf_putc(out, (char)c);
        } else if (c == ' ') {
            buf_putc(out, '+');
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_append(out, e, 3);
        }
    }
}

void rules_generator_url(const char *external_url, const char *expr, buf *out)
{
    if (external_url) buf_puts(out, external_url);
    buf_puts(out, "/graph?g0.expr=");
    query_escape(expr, out);
    buf_puts(out, "&g0.tab=1");
}

const char *rules_state_name(enum rules_alert_state s)
{
    switch (s) {
    case RULES_STATE_INACTIVE:
        return "inactive";
    case RULES_STATE_PENDING:
        return "pending";
    case RULES_STATE_FIRING:
        return "firing";
    default:
        return "unknown";
    }
}

const char *rules_health_name(enum rules_health h)
{
    switch (h) {
    case RULES_HEALTH_OK:
        return "ok";
    case RULES_HEALTH_ERR:
        return "err";
    default:
        return "unknown";
    }
}

/* ---- data structures ------------------------------------------------------------- */

typedef struct rule {
    bool alerting;
    char *name;
    char *expr;     /* as written */
    char *expr_fmt; /* as Prometheus prints it */
    promql_ast *ast;
    labels *labels; /* group labels overridden by rule labels */
    labels *annotations;
    int64_t for_ms, kff_ms;
    char *match; /* name + labels: Prometheus's nameAndLabels */
    char *key;   /* persistence key */
    size_t key_len;

    /* state, under the group's mutex */
    enum rules_health health;
    char *last_error;
    int64_t last_eval_ms;
    double eval_time_s;
    rules_alert *active; /* Prometheus's r.active (incl. resolved kept for resending) */
    size_t n_active, cap_active;
    labels **prev; /* series written by the last successful evaluation */
    size_t n_prev;
    char *saved; /* last value persisted (or loaded); NULL = nothing stored */
    bool evaluated;
} rule;

typedef struct group {
    rules_manager *m;
    char *name, *file, *gkey;
    int64_t interval_ms, query_offset_ms, limit;
    labels *labels;
    labels *ext_labels;
    char *ext_url;
    int64_t global_interval_ms;
    char *def; /* definition, for equality */
    rule *rules;
    size_t n_rules;

    pthread_mutex_t mu; /* state (evaluation, snapshot) */
    int64_t last_eval_ms;
    double eval_time_s;
    labels **stale; /* from copy_state: to mark stale at the next evaluation */
    size_t n_stale;

    /* thread */
    pthread_mutex_t tmu;
    pthread_cond_t cv;
    pthread_t th;
    bool th_running;
    bool stop;
    atomic_bool cancel;

    /* metrics (NULL without a registry) */
    registry_metric *m_evals, *m_fail, *m_missed, *m_iters, *m_interval, *m_last_dur, *m_last_ts,
        *m_samples, *m_rules, *m_rule_sum, *m_restore;
} group;

struct rules_manager {
    rules_options o;
    pthread_mutex_t mu;
    group **groups;
    size_t n_groups;
    bool started;
    registry_family *f_evals, *f_fail, *f_missed, *f_iters, *f_interval, *f_last_dur, *f_last_ts,
        *f_samples, *f_rules, *f_rule_sum, *f_restore;
    registry_metric *m_eval_dur, *m_group_dur;
};

/* ---- alerts ---------------------------------------------------------------------- */

static void alert_cleanup(rules_alert *a)
{
    labels_free(a->labels);
    labels_free(a->annotations);
    a->labels = a->annotations = NULL;
}

static void alert_copy(rules_alert *dst, const rules_alert *src)
{
    *dst = *src;
    dst->labels = labels_dup(src->labels);
    dst->annotations = labels_dup(src->annotations);
}

static rules_alert *rule_find_alert(rule *r, const labels *ls)
{
    for (size_t i = 0; i < r->n_active; i++)
        if (labels_equal(r->active[i].labels, ls)) return &r->active[i];
    return NULL;
}

static void rule_clear_alerts(rule *r)
{
    for (size_t i = 0; i < r->n_active; i++)
        alert_cleanup(&r->active[i]);
    r->n_active = 0;
}

static int cmp_alert(const void *a, const void *b)
{
    return labels_compare(((const rules_alert *)a)->labels, ((const rules_alert *)b)->labels);
}

/* ---- persistence format ------------------------------------------------------------- */

static void put_ts(buf *b, int64_t t)
{
    if (t == RULES_TS_NONE)
        buf_puts(b, " -");
    else
        buf_printf(b, " %" PRId64, t);
}

static void put_hex_labels(buf *b, const labels *ls)
{
    buf_putc(b, ' ');
    if (!ls || ls->n == 0) {
        buf_putc(b, '-');
        return;
    }
    buf enc;
    buf_init(&enc, BUF_UNLIMITED);
    labels_encode(ls, &enc);
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < enc.len; i++) {
        unsigned char c = (unsigned char)enc.data[i];
        char h[2] = {hex[c >> 4], hex[c & 15]};
        buf_append(b, h, 2);
    }
    buf_cleanup(&enc);
}

static void serialize_alerts(const rule *r, buf *out)
{
    buf_puts(out, PERSIST_MAGIC "\n");
    for (size_t i = 0; i < r->n_active; i++) {
        const rules_alert *a = &r->active[i];
        buf_puts(out, rules_state_name(a->state));
        put_ts(out, a->active_at_ms);
        put_ts(out, a->fired_at_ms);
        put_ts(out, a->resolved_at_ms);
        put_ts(out, a->last_sent_at_ms);
        put_ts(out, a->valid_until_ms);
        put_ts(out, a->keep_firing_since_ms);
        buf_printf(out, " %a", a->value);
        put_hex_labels(out, a->labels);
        put_hex_labels(out, a->annotations);
        buf_putc(out, '\n');
    }
}

static int parse_ts(const char *s, int64_t *out)
{
    if (strcmp(s, "-") == 0) {
        *out = RULES_TS_NONE;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s) return -EINVAL;
    *out = v;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int parse_hex_labels(const char *s, labels **out)
{
    if (strcmp(s, "-") == 0) {
        *out = labels_dup(labels_empty());
        return 0;
    }
    size_t n = strlen(s);
    if (n % 2) return -EINVAL;
    unsigned char *bytes = mem_malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            mem_free(bytes);
            return -EINVAL;
        }
        bytes[i] = (unsigned char)(hi << 4 | lo);
    }
    int rc = labels_decode(bytes, n / 2, out);
    mem_free(bytes);
    return rc;
}

/* Parses a persisted value into alerts (appended to r->active). */
static int deserialize_alerts(rule *r, const char *text, size_t len)
{
    char *copy = mem_strndup(text, len);
    char *save = NULL;
    char *line = strtok_r(copy, "\n", &save);
    int rc = 0;
    if (!line || strcmp(line, PERSIST_MAGIC) != 0) {
        rc = -EINVAL;
        goto out;
    }
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *f[10];
        size_t nf = 0;
        char *s2 = NULL;
        for (char *tok = strtok_r(line, " ", &s2); tok && nf < 10; tok = strtok_r(NULL, " ", &s2))
            f[nf++] = tok;
        if (nf != 10) {
            rc = -EINVAL;
            goto out;
        }
        rules_alert a = {0};
        if (strcmp(f[0], "pending") == 0)
            a.state = RULES_STATE_PENDING;
        else if (strcmp(f[0], "firing") == 0)
            a.state = RULES_STATE_FIRING;
        else if (strcmp(f[0], "inactive") == 0)
            a.state = RULES_STATE_INACTIVE;
        else {
            rc = -EINVAL;
            goto out;
        }
        int64_t *ts[6] = {&a.active_at_ms,    &a.fired_at_ms,    &a.resolved_at_ms,
                          &a.last_sent_at_ms, &a.valid_until_ms, &a.keep_firing_since_ms};
        for (int i = 0; i < 6; i++)
            if (parse_ts(f[1 + i], ts[i]) < 0) {
                rc = -EINVAL;
                goto out;
            }
        char *end;
        a.value = strtod(f[7], &end);
        if (*end) {
            rc = -EINVAL;
            goto out;
        }
        if (parse_hex_labels(f[8], &a.labels) < 0) {
            rc = -EINVAL;
            goto out;
        }
        if (parse_hex_labels(f[9], &a.annotations) < 0) {
            labels_free(a.labels);
            rc = -EINVAL;
            goto out;
        }
        if (rule_find_alert(r, a.labels)) { /* duplicate: keep the first */
            alert_cleanup(&a);
            continue;
        }
        r->active = mem_grow(r->active, sizeof *r->active, r->n_active + 1, &r->cap_active);
        r->active[r->n_active++] = a;
    }
out:
    mem_free(copy);
    return rc;
}

static void rule_restore(group *g, rule *r)
{
    const rules_persist *p = &g->m->o.persist;
    if (!p->load || !r->alerting) return;
    void *val = NULL;
    size_t len = 0;
    buf err;
    buf_init(&err, 4096);
    int rc = p->load(p->ctx, r->key, r->key_len, &val, &len, &err);
    if (rc == 0) {
        if (deserialize_alerts(r, val, len) < 0) {
            rule_clear_alerts(r);
            log_warn(COMPONENT, "ignoring unreadable saved alert state of %s in group %s", r->name,
                     g->gkey);
        } else {
            r->saved = mem_strndup(val, len);
        }
        mem_free(val);
    } else if (rc != -ENOENT) {
        log_warn(COMPONENT, "loading alert state of %s in group %s: %s", r->name, g->gkey,
                 buf_cstr(&err));
    }
    buf_cleanup(&err);
}

/* Saves the rule's alert state when it differs from what was saved. */
static void rule_persist(group *g, rule *r)
{
    const rules_persist *p = &g->m->o.persist;
    if (!p->save || !r->alerting) return;
    buf v;
    buf_init(&v, BUF_UNLIMITED);
    if (r->n_active > 0) serialize_alerts(r, &v);
    const char *cur = r->n_active > 0 ? buf_cstr(&v) : NULL;
    if ((cur == NULL && r->saved == NULL) || (cur && r->saved && strcmp(cur, r->saved) == 0)) {
        buf_cleanup(&v);
        return;
    }
    buf err;
    buf_init(&err, 4096);
    int rc = p->save(p->ctx, r->key, r->key_len, cur, cur ? v.len : 0, &err);
    if (rc < 0) {
        log_warn(COMPONENT, "saving alert state of %s in group %s: %s", r->name, g->gkey,
                 buf_cstr(&err));
    } else {
        mem_free(r->saved);
        r->saved = cur ? mem_strdup(cur) : NULL;
    }
    buf_cleanup(&err);
    buf_cleanup(&v);
}

/* ---- queries --------------------------------------------------------------------- */

typedef struct qctx {
    group *g;
    promql_queryable q;
} qctx;

static void engine_opts(group *g, promql_engine_options *eo)
{
    *eo = g->m->o.engine;
    eo->cancel = &g->cancel;
    if (eo->default_subquery_step_ms == 0) eo->default_subquery_step_ms = g->global_interval_ms;
}

/* Runs ast at t; a vector or scalar result becomes *out (samples owned).
 * Returns 0 or a negative errno with the message in err. */
static int run_query(qctx *qc, const promql_ast *ast, int64_t t, promql_vector *out, buf *err)
{
    promql_engine_options eo;
    engine_opts(qc->g, &eo);
    promql_query q = {.ast = ast, .expr = ast->root, .start_ms = t, .end_ms = t, .step_ms = 0};
    promql_value v = {0};
    promql_error pe;
    promql_error_init(&pe);
    int rc = promql_eval(&eo, &qc->q, &q, &v, NULL, &pe);
    if (rc < 0) {
        buf_puts(err, pe.msg.len ? buf_cstr(&pe.msg) : strerror(-rc));
        promql_error_cleanup(&pe);
        return rc;
    }
    promql_error_cleanup(&pe);
    memset(out, 0, sizeof *out);
    if (v.type == PROMQL_TYPE_VECTOR) {
        *out = v.vector;
        memset(&v.vector, 0, sizeof v.vector);
    } else if (v.type == PROMQL_TYPE_SCALAR) {
        out->v = mem_malloc(sizeof *out->v);
        out->cap = out->n = 1;
        out->v[0] = (promql_sample){.metric = labels_dup(labels_empty()), .t = t, .v = v.scalar};
    } else {
        promql_value_cleanup(&v);
        buf_puts(err, "rule result is not a vector or scalar");
        return -EINVAL;
    }
    promql_value_cleanup(&v);
    return 0;
}

/* template_query_fn */
static int template_query(void *ctx, const char *expr, int64_t t_ms, template_query_result *out,
                          buf *err)
{
    qctx *qc = ctx;
    promql_ast *ast = NULL;
    int rc = promql_parse(expr, strlen(expr), &qc->g->m->o.parse, &ast, err);
    if (rc < 0) return rc;
    promql_vector v;
    rc = run_query(qc, ast, t_ms, &v, err);
    promql_ast_free(ast);
    if (rc < 0) return rc;
    out->v = mem_calloc(v.n ? v.n : 1, sizeof *out->v);
    out->n = v.n;
    for (size_t i = 0; i < v.n; i++) {
        out->v[i].metric = v.v[i].metric;
        out->v[i].value = v.v[i].v;
        v.v[i].metric = NULL;
    }
    promql_vector_cleanup(&v);
    return 0;
}

/* ---- rule evaluation ----------------------------------------------------------- */

typedef struct outvec {
    labels **ls;
    double *v;
    promql_fh **h; /* NULL, or one per sample: a histogram result (owned) or NULL */
    size_t n, cap, capv, caph;
} outvec;

static void outvec_push(outvec *o, labels *ls, double v)
{
    o->ls = mem_grow(o->ls, sizeof *o->ls, o->n + 1, &o->cap);
    o->v = mem_grow(o->v, sizeof *o->v, o->n + 1, &o->capv);
    o->ls[o->n] = ls;
    o->v[o->n++] = v;
}

/* Makes the last pushed sample a histogram (o takes h). */
static void outvec_set_hist(outvec *o, promql_fh *h)
{
    if (!o->h) {
        o->caph = 0;
        o->h = mem_grow(NULL, sizeof *o->h, o->cap, &o->caph);
        memset(o->h, 0, o->caph * sizeof *o->h);
    } else if (o->caph < o->cap) {
        size_t old = o->caph;
        o->h = mem_grow(o->h, sizeof *o->h, o->cap, &o->caph);
        memset(o->h + old, 0, (o->caph - old) * sizeof *o->h);
    }
    o->h[o->n - 1] = h;
}

static void outvec_cleanup(outvec *o)
{
    labels_array_free(o->ls, o->n);
    if (o->h)
        for (size_t i = 0; i < o->n && i < o->caph; i++) promql_fh_free(o->h[i]);
    mem_free(o->h);
    mem_free(o->v);
    memset(o, 0, sizeof *o);
}

/* Turns the query result v (consumed) into the rule's samples. */
static int eval_recording(group *g, rule *r, promql_vector *vp, outvec *out, buf *err)
{
    promql_vector v = *vp;
    int rc = 0;
    labels_builder b;
    labels_builder_init(&b);
    hmap seen;
    hmap_init(&seen);
    for (size_t i = 0; i < v.n; i++) {
        labels_builder_from(&b, v.v[i].metric);
        labels_builder_set(&b, LABELS_METRIC_NAME, strlen(LABELS_METRIC_NAME), r->name,
                           strlen(r->name));
        for (uint32_t j = 0; j < r->labels->n; j++)
            labels_builder_set(&b, r->labels->v[j].name, r->labels->v[j].name_len,
                               r->labels->v[j].value, r->labels->v[j].value_len);
        labels *ls = labels_builder_finish(&b, NULL);
        if (hmap_get(&seen, labels_hash(ls), labels_eq_cb, ls)) {
            labels_free(ls);
            buf_puts(err, "vector contains metrics with the same labelset after applying rule "
                          "labels");
            rc = -EINVAL;
            break;
        }
        outvec_push(out, ls, v.v[i].v);
        if (v.v[i].h) {
            outvec_set_hist(out, v.v[i].h);
            v.v[i].h = NULL;
        }
        hmap_put(&seen, labels_hash(ls), ls);
    }
    hmap_cleanup(&seen);
    labels_builder_cleanup(&b);
    promql_vector_cleanup(&v);
    if (rc == 0 && g->limit > 0 && (int64_t)out->n > g->limit) {
        buf_printf(err, "exceeded limit of %" PRId64 " with %zu series", g->limit, out->n);
        rc = -EINVAL;
    }
    if (rc < 0) outvec_cleanup(out);
    return rc;
}

/* Expands one template for an alert; on error the text says so. */
static char *expand(group *g, rule *r, const char *text, size_t len, const template_data *d)
{
    buf out, err, name;
    buf_init(&out, BUF_UNLIMITED);
    buf_init(&err, 64 * 1024);
    buf_init(&name, BUF_UNLIMITED);
    buf_printf(&name, "__alert_%s", r->name);
    int rc = template_expand(buf_cstr(&name), text, len, d, &out, &err);
    if (rc < 0) {
        buf_reset(&out);
        buf_printf(&out, "<error expanding template: %s>", buf_cstr(&err));
        log_warn(COMPONENT, "Expanding alert template failed: %s (group %s, rule %s)",
                 buf_cstr(&err), g->gkey, r->name);
    }
    buf_cleanup(&err);
    buf_cleanup(&name);
    return buf_detach(&out, NULL);
}

static labels *alert_series(const rule *r, const rules_alert *a, const char *metric,
                            bool with_state)
{
    labels_builder b;
    labels_builder_init(&b);
    labels_builder_from(&b, r->labels);
    for (uint32_t j = 0; j < a->labels->n; j++)
        labels_builder_set(&b, a->labels->v[j].name, a->labels->v[j].name_len,
                           a->labels->v[j].value, a->labels->v[j].value_len);
    labels_builder_set(&b, LABELS_METRIC_NAME, strlen(LABELS_METRIC_NAME), metric, strlen(metric));
    labels_builder_set(&b, "alertname", 9, r->name, strlen(r->name));
    if (with_state) {
        const char *st = rules_state_name(a->state);
        labels_builder_set(&b, "alertstate", 10, st, strlen(st));
    }
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return ls;
}

/* Runs the alert state machine on the query result v (consumed). */
static int eval_alerting(group *g, rule *r, qctx *qc, int64_t t, promql_vector *vp, outvec *out,
                         buf *err)
{
    promql_vector v = *vp;
    int rc = 0;

    /* Build the alerts of this evaluation. */
    rules_alert *cur = mem_calloc(v.n ? v.n : 1, sizeof *cur);
    size_t n_cur = 0;
    hmap seen;
    hmap_init(&seen);
    labels_builder b, ab;
    labels_builder_init(&b);
    labels_builder_init(&ab);
    char **exp_l = mem_calloc(r->labels->n + 1, sizeof *exp_l);
    char **exp_a = mem_calloc(r->annotations->n + 1, sizeof *exp_a);
    for (size_t i = 0; i < v.n && rc == 0; i++) {
        template_data d = {.labels = v.v[i].metric,
                           .value = v.v[i].v,
                           .external_labels = g->ext_labels,
                           .external_url = g->ext_url,
                           .time_ms = t,
                           .query = template_query,
                           .query_ctx = qc};
        labels_builder_from(&b, v.v[i].metric);
        labels_builder_del(&b, LABELS_METRIC_NAME, strlen(LABELS_METRIC_NAME));
        for (uint32_t j = 0; j < r->labels->n; j++) {
            exp_l[j] = expand(g, r, r->labels->v[j].value, r->labels->v[j].value_len, &d);
            labels_builder_set(&b, r->labels->v[j].name, r->labels->v[j].name_len, exp_l[j],
                               strlen(exp_l[j]));
        }
        labels_builder_set(&b, "alertname", 9, r->name, strlen(r->name));
        labels_builder_reset(&ab);
        for (uint32_t j = 0; j < r->annotations->n; j++) {
            exp_a[j] = expand(g, r, r->annotations->v[j].value, r->annotations->v[j].value_len, &d);
            labels_builder_add(&ab, r->annotations->v[j].name, r->annotations->v[j].name_len,
                               exp_a[j], strlen(exp_a[j]));
        }
        labels *ls = labels_builder_finish(&b, NULL);
        labels *an = labels_builder_finish(&ab, NULL);
        if (!an) an = labels_dup(labels_empty());
        for (uint32_t j = 0; j < r->labels->n; j++)
            mem_free(exp_l[j]);
        for (uint32_t j = 0; j < r->annotations->n; j++)
            mem_free(exp_a[j]);
        if (hmap_get(&seen, labels_hash(ls), labels_eq_cb, ls)) {
            labels_free(ls);
            labels_free(an);
            buf_puts(err, "vector contains metrics with the same labelset after applying alert "
                          "labels");
            rc = -EINVAL;
            break;
        }
        cur[n_cur] = (rules_alert){.labels = ls,
                                   .annotations = an,
                                   .value = v.v[i].v,
                                   .state = RULES_STATE_PENDING,
                                   .active_at_ms = t,
                                   .fired_at_ms = RULES_TS_NONE,
                                   .resolved_at_ms = RULES_TS_NONE,
                                   .last_sent_at_ms = RULES_TS_NONE,
                                   .valid_until_ms = RULES_TS_NONE,
                                   .keep_firing_since_ms = RULES_TS_NONE};
        hmap_put(&seen, labels_hash(ls), cur[n_cur].labels);
        n_cur++;
    }
    mem_free(exp_l);
    mem_free(exp_a);
    labels_builder_cleanup(&b);
    labels_builder_cleanup(&ab);
    promql_vector_cleanup(&v);
    if (rc < 0) {
        for (size_t i = 0; i < n_cur; i++)
            alert_cleanup(&cur[i]);
        mem_free(cur);
        hmap_cleanup(&seen);
        return rc;
    }

    /* Merge into the active set. */
    for (size_t i = 0; i < n_cur; i++) {
        uint64_t h = labels_hash(cur[i].labels);
        rules_alert *a = rule_find_alert(r, cur[i].labels);
        if (a && a->state != RULES_STATE_INACTIVE) {
            a->value = cur[i].value;
            labels_free(a->annotations);
            a->annotations = cur[i].annotations;
            cur[i].annotations = NULL;
            /* seen must point at a set that stays alive */
            hmap_del(&seen, h, labels_eq_cb, cur[i].labels);
            hmap_put(&seen, h, a->labels);
            alert_cleanup(&cur[i]);
            continue;
        }
        if (a) {
            alert_cleanup(a);
            *a = cur[i];
        } else {
            r->active = mem_grow(r->active, sizeof *r->active, r->n_active + 1, &r->cap_active);
            r->active[r->n_active++] = cur[i];
        }
    }
    mem_free(cur);

    /* The state machine. */
    int64_t num_active = 0;
    size_t w = 0;
    for (size_t i = 0; i < r->n_active; i++) {
        rules_alert *a = &r->active[i];
        bool in_result = hmap_get(&seen, labels_hash(a->labels), labels_eq_cb, a->labels) != NULL;
        bool keep = true; /* stays in r->active */
        bool counted = true;
        if (!in_result) {
            bool keep_firing = false;
            if (a->state == RULES_STATE_FIRING && r->kff_ms > 0) {
                if (a->keep_firing_since_ms == RULES_TS_NONE) a->keep_firing_since_ms = t;
                if (t - a->keep_firing_since_ms < r->kff_ms) keep_firing = true;
            }
            if (a->state == RULES_STATE_PENDING ||
                (a->resolved_at_ms != RULES_TS_NONE &&
                 t - a->resolved_at_ms > RULES_RESOLVED_RETENTION_MS))
                keep = false;
            if (a->state != RULES_STATE_INACTIVE && !keep_firing) {
                a->state = RULES_STATE_INACTIVE;
                a->resolved_at_ms = t;
            }
            if (!keep_firing) counted = false;
        } else {
            a->keep_firing_since_ms = RULES_TS_NONE;
        }
        if (counted) {
            num_active++;
            if (a->state == RULES_STATE_PENDING && t - a->active_at_ms >= r->for_ms) {
                a->state = RULES_STATE_FIRING;
                a->fired_at_ms = t;
            }
            if (a->state == RULES_STATE_FIRING && t - a->active_at_ms < r->for_ms) {
                a->state = RULES_STATE_PENDING;
                a->fired_at_ms = RULES_TS_NONE;
                a->last_sent_at_ms = RULES_TS_NONE;
                a->keep_firing_since_ms = RULES_TS_NONE;
            }
            if (keep) {
                outvec_push(out, alert_series(r, a, "ALERTS", true), 1);
                outvec_push(out, alert_series(r, a, "ALERTS_FOR_STATE", false),
                            (double)floor_div(a->active_at_ms, 1000));
            }
        }
        if (keep) {
            if (w != i) r->active[w] = *a;
            w++;
        } else {
            alert_cleanup(a);
        }
    }
    r->n_active = w;
    hmap_cleanup(&seen);

    if (g->limit > 0 && num_active > g->limit) {
        rule_clear_alerts(r);
        outvec_cleanup(out);
        buf_printf(err, "exceeded limit of %" PRId64 " with %" PRId64 " alerts", g->limit,
                   num_active);
        return -EINVAL;
    }
    return 0;
}

/* Prometheus's sendAlerts. */
static void send_alerts(group *g, rule *r, int64_t t)
{
    rules_manager *m = g->m;
    int64_t resend =
        m->o.resend_delay_ms > 0 ? m->o.resend_delay_ms : RULES_DEFAULT_RESEND_DELAY_MS;
    int64_t delta = g->interval_ms > resend ? g->interval_ms : resend;
    rules_sent_alert *sa = mem_calloc(r->n_active ? r->n_active : 1, sizeof *sa);
    size_t n = 0;
    buf url;
    buf_init(&url, BUF_UNLIMITED);
    rules_generator_url(g->ext_url, r->expr_fmt, &url);
    for (size_t i = 0; i < r->n_active; i++) {
        rules_alert *a = &r->active[i];
        if (a->state == RULES_STATE_PENDING) continue;
        bool need;
        if (a->resolved_at_ms != RULES_TS_NONE &&
            (a->last_sent_at_ms == RULES_TS_NONE || a->resolved_at_ms > a->last_sent_at_ms))
            need = true;
        else
            need = a->last_sent_at_ms == RULES_TS_NONE || a->last_sent_at_ms + resend < t;
        if (!need) continue;
        a->last_sent_at_ms = t;
        a->valid_until_ms = t + 4 * delta;
        sa[n++] =
            (rules_sent_alert){.labels = a->labels,
                               .annotations = a->annotations,
                               .starts_at_ms = a->fired_at_ms,
                               .ends_at_ms = a->resolved_at_ms != RULES_TS_NONE ? a->resolved_at_ms
                                                                                : a->valid_until_ms,
                               .generator_url = buf_cstr(&url)};
    }
    if (n > 0 && m->o.notify) m->o.notify(m->o.notify_ctx, r->expr_fmt, sa, n);
    buf_cleanup(&url);
    mem_free(sa);
}

static void set_error(rule *r, const char *msg)
{
    r->health = RULES_HEALTH_ERR;
    mem_free(r->last_error);
    r->last_error = mem_strdup(msg);
}

static void write_stale(group *g, labels **ls, size_t n, int64_t t)
{
    if (n == 0) return;
    const rules_appender *ap = &g->m->o.appender;
    void *batch = ap->begin(ap->ctx);
    if (!batch) {
        log_warn(COMPONENT, "cannot start appender for staleness markers of group %s", g->gkey);
        return;
    }
    buf err;
    buf_init(&err, 4096);
    for (size_t i = 0; i < n; i++) {
        buf_reset(&err);
        if (ap->append(batch, ls[i], t, strutil_stale_nan(), &err) < 0)
            log_warn(COMPONENT, "Adding stale sample failed: %s", buf_cstr(&err));
    }
    buf_reset(&err);
    if (ap->commit(batch, &err) < 0)
        log_warn(COMPONENT, "committing staleness markers of group %s: %s", g->gkey,
                 buf_cstr(&err));
    buf_cleanup(&err);
}

/* Evaluates rule i at t; returns the samples written. The query runs
 * without the group's mutex (a snapshot need not wait for it); the state
 * update, templates and appends run with it. */
static size_t eval_rule(group *g, size_t i, int64_t t)
{
    rules_manager *m = g->m;
    rule *r = &g->rules[i];
    double start = mono_s();
    int64_t wall = realtime_ms();
    int64_t q = t - g->query_offset_ms;
    size_t n_samples = 0;
    if (g->m_evals) registry_inc(g->m_evals);

    buf err;
    buf_init(&err, 64 * 1024);
    outvec out = {0};
    qctx qc = {.g = g};
    void *h;
    if (m->o.source.begin) {
        h = m->o.source.begin(m->o.source.ctx, &qc.q, &err);
    } else {
        qc.q = m->o.source.fixed;
        h = &qc;
    }
    int rc;
    promql_vector v = {0};
    if (!h) {
        if (err.len == 0) buf_puts(&err, "cannot start query");
        rc = -EIO;
    } else {
        rc = run_query(&qc, r->ast, q, &v, &err);
    }
    pthread_mutex_lock(&g->mu);
    if (rc == 0)
        rc = r->alerting ? eval_alerting(g, r, &qc, t, &v, &out, &err)
                         : eval_recording(g, r, &v, &out, &err);
    if (h && m->o.source.begin) m->o.source.end(m->o.source.ctx, h);
    if (rc < 0) {
        set_error(r, buf_cstr(&err));
        if (g->m_fail) registry_inc(g->m_fail);
        if (rc != -ECANCELED)
            log_warn(COMPONENT, "Evaluating rule failed: group %s, rule %s: %s", g->gkey, r->name,
                     buf_cstr(&err));
        goto done;
    }
    r->health = RULES_HEALTH_OK;
    mem_free(r->last_error);
    r->last_error = NULL;
    n_samples = out.n;
    if (r->alerting) send_alerts(g, r, t);

    const rules_appender *ap = &m->o.appender;
    void *batch = ap->begin(ap->ctx);
    if (!batch) {
        set_error(r, "cannot start appender");
        if (g->m_fail) registry_inc(g->m_fail);
        goto done;
    }
    labels **returned = mem_calloc(out.n ? out.n : 1, sizeof *returned);
    size_t n_ret = 0;
    hmap rmap;
    hmap_init(&rmap);
    for (size_t k = 0; k < out.n; k++) {
        buf_reset(&err);
        promql_fh *oh = out.h && k < out.caph ? out.h[k] : NULL;
        int arc;
        if (oh && !ap->append_histogram) {
            buf_puts(&err, "native histogram results cannot be stored here");
            arc = -ENOTSUP;
        } else if (oh) {
            arc = ap->append_histogram(batch, out.ls[k], q, oh, &err);
        } else {
            arc = ap->append(batch, out.ls[k], q, out.v[k], &err);
        }
        if (arc < 0) {
            set_error(r, buf_cstr(&err));
            log_warn(COMPONENT, "Rule evaluation result discarded: group %s, rule %s: %s", g->gkey,
                     r->name, buf_cstr(&err));
            continue;
        }
        if (hmap_get(&rmap, labels_hash(out.ls[k]), labels_eq_cb, out.ls[k])) continue;
        returned[n_ret] = out.ls[k];
        out.ls[k] = NULL;
        hmap_put(&rmap, labels_hash(returned[n_ret]), returned[n_ret]);
        n_ret++;
    }
    for (size_t k = 0; k < r->n_prev; k++) {
        if (hmap_get(&rmap, labels_hash(r->prev[k]), labels_eq_cb, r->prev[k])) continue;
        buf_reset(&err);
        if (ap->append(batch, r->prev[k], q, strutil_stale_nan(), &err) < 0)
            log_warn(COMPONENT, "Adding stale sample failed: %s", buf_cstr(&err));
    }
    hmap_cleanup(&rmap);
    buf_reset(&err);
    if (ap->commit(batch, &err) < 0) {
        set_error(r, buf_cstr(&err));
        if (g->m_fail) registry_inc(g->m_fail);
        log_warn(COMPONENT, "Rule sample appending failed: group %s, rule %s: %s", g->gkey, r->name,
                 buf_cstr(&err));
        labels_array_free(returned, n_ret);
    } else {
        labels_array_free(r->prev, r->n_prev);
        r->prev = returned;
        r->n_prev = n_ret;
    }
done:
    if (r->alerting) rule_persist(g, r);
    outvec_cleanup(&out);
    buf_cleanup(&err);
    double dur = mono_s() - start;
    if (m->m_eval_dur) registry_observe(m->m_eval_dur, dur);
    r->eval_time_s = dur;
    r->last_eval_ms = wall;
    r->evaluated = true;
    pthread_mutex_unlock(&g->mu);
    return n_samples;
}

/* One iteration of a group at t (Prometheus's DefaultEvalIterationFunc). */
static void group_iterate(group *g, int64_t t)
{
    rules_manager *m = g->m;
    if (g->m_iters) registry_inc(g->m_iters);
    double start = mono_s();
    int64_t wall = realtime_ms();
    size_t samples = 0;
    for (size_t i = 0; i < g->n_rules; i++) {
        if (atomic_load(&g->cancel)) break;
        samples += eval_rule(g, i, t);
    }
    pthread_mutex_lock(&g->mu);
    if (g->n_stale > 0) {
        write_stale(g, g->stale, g->n_stale, t - g->query_offset_ms);
        labels_array_free(g->stale, g->n_stale);
        g->stale = NULL;
        g->n_stale = 0;
    }
    double dur = mono_s() - start;
    double sum = 0;
    for (size_t i = 0; i < g->n_rules; i++)
        sum += g->rules[i].eval_time_s;
    g->eval_time_s = dur;
    g->last_eval_ms = wall;
    pthread_mutex_unlock(&g->mu);
    if (g->m_samples) registry_set(g->m_samples, (double)samples);
    if (m->m_group_dur) registry_observe(m->m_group_dur, dur);
    if (g->m_rule_sum) registry_set(g->m_rule_sum, sum);
    if (g->m_last_dur) registry_set(g->m_last_dur, dur);
    if (g->m_last_ts) registry_set(g->m_last_ts, (double)t / 1000.0);
}

/* ---- groups --------------------------------------------------------------------- */

static void rule_cleanup(rule *r)
{
    mem_free(r->name);
    mem_free(r->expr);
    mem_free(r->expr_fmt);
    promql_ast_free(r->ast);
    labels_free(r->labels);
    labels_free(r->annotations);
    mem_free(r->match);
    mem_free(r->key);
    mem_free(r->last_error);
    rule_clear_alerts(r);
    mem_free(r->active);
    labels_array_free(r->prev, r->n_prev);
    mem_free(r->saved);
}

static void group_release_metrics(group *g)
{
    registry_metric **ms[] = {&g->m_evals,    &g->m_fail,     &g->m_missed,  &g->m_iters,
                              &g->m_interval, &g->m_last_dur, &g->m_last_ts, &g->m_samples,
                              &g->m_rules,    &g->m_rule_sum, &g->m_restore};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (*ms[i]) {
            registry_release(*ms[i]);
            *ms[i] = NULL;
        }
}

static void group_free(group *g)
{
    if (!g) return;
    group_release_metrics(g);
    for (size_t i = 0; i < g->n_rules; i++)
        rule_cleanup(&g->rules[i]);
    mem_free(g->rules);
    mem_free(g->name);
    mem_free(g->file);
    mem_free(g->gkey);
    labels_free(g->labels);
    labels_free(g->ext_labels);
    mem_free(g->ext_url);
    mem_free(g->def);
    labels_array_free(g->stale, g->n_stale);
    pthread_mutex_destroy(&g->mu);
    pthread_mutex_destroy(&g->tmu);
    pthread_cond_destroy(&g->cv);
    mem_free(g);
}

static void group_acquire_metrics(group *g)
{
    rules_manager *m = g->m;
    if (!m->o.reg) return;
    const char *lv[] = {g->gkey, NULL};
    g->m_evals = registry_acquire(m->f_evals, lv);
    g->m_fail = registry_acquire(m->f_fail, lv);
    g->m_missed = registry_acquire(m->f_missed, lv);
    g->m_iters = registry_acquire(m->f_iters, lv);
    g->m_interval = registry_acquire(m->f_interval, lv);
    g->m_last_dur = registry_acquire(m->f_last_dur, lv);
    g->m_last_ts = registry_acquire(m->f_last_ts, lv);
    g->m_samples = registry_acquire(m->f_samples, lv);
    g->m_rules = registry_acquire(m->f_rules, lv);
    g->m_rule_sum = registry_acquire(m->f_rule_sum, lv);
    g->m_restore = registry_acquire(m->f_restore, lv);
    registry_set(g->m_interval, (double)g->interval_ms / 1000.0);
    registry_set(g->m_rules, (double)g->n_rules);
}

static labels *merge_labels(const labels *base, const labels *over)
{
    labels_builder b;
    labels_builder_init(&b);
    labels_builder_from(&b, base);
    for (uint32_t j = 0; j < over->n; j++)
        labels_builder_set(&b, over->v[j].name, over->v[j].name_len, over->v[j].value,
                           over->v[j].value_len);
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return ls;
}

/* Builds a group from its definition; on error returns NULL with a
 * message in err. */
static group *group_new(rules_manager *m, const rulefmt_file *f, const rulefmt_group *rg,
                        const rules_config *c, buf *err)
{
    group *g = mem_calloc(1, sizeof *g);
    g->m = m;
    pthread_mutex_init(&g->mu, NULL);
    pthread_mutex_init(&g->tmu, NULL);
    pthread_cond_init(&g->cv, NULL);
    atomic_init(&g->cancel, false);
    g->name = mem_strdup(rg->name);
    g->file = mem_strdup(f->path ? f->path : "");
    buf k;
    buf_init(&k, BUF_UNLIMITED);
    buf_printf(&k, "%s;%s", g->file, g->name);
    g->gkey = buf_detach(&k, NULL);
    g->global_interval_ms =
        c->evaluation_interval_ms > 0 ? c->evaluation_interval_ms : RULES_DEFAULT_INTERVAL_MS;
    g->interval_ms = rg->interval_ms > 0 ? rg->interval_ms : g->global_interval_ms;
    g->query_offset_ms = rg->has_query_offset ? rg->query_offset_ms : c->query_offset_ms;
    g->limit = rg->limit;
    g->labels = labels_dup(rg->labels ? rg->labels : labels_empty());
    g->ext_labels = labels_dup(c->external_labels ? c->external_labels : labels_empty());
    g->ext_url = mem_strdup(c->external_url ? c->external_url : "");
    g->last_eval_ms = RULES_TS_NONE;
    g->rules = mem_calloc(rg->n_rules ? rg->n_rules : 1, sizeof *g->rules);

    buf def;
    buf_init(&def, BUF_UNLIMITED);
    buf_printf(&def, "%s\n%" PRId64 "\n%" PRId64 "\n%" PRId64 "\n%" PRId64 "\n%s\n", g->gkey,
               g->interval_ms, g->query_offset_ms, g->limit, g->global_interval_ms, g->ext_url);
    labels_format(g->labels, &def);
    labels_format(g->ext_labels, &def);
    for (size_t i = 0; i < rg->n_rules; i++) {
        const rulefmt_rule *rr = &rg->rules[i];
        rule *r = &g->rules[g->n_rules];
        r->alerting = rr->alert != NULL;
        r->name = mem_strdup(r->alerting ? rr->alert : (rr->record ? rr->record : ""));
        r->expr = mem_strdup(rr->expr ? rr->expr : "");
        r->for_ms = rr->for_ms;
        r->kff_ms = rr->keep_firing_for_ms;
        r->labels = merge_labels(g->labels, rr->labels ? rr->labels : labels_empty());
        r->annotations =
            labels_dup(rr->annotations && r->alerting ? rr->annotations : labels_empty());
        r->health = RULES_HEALTH_UNKNOWN;
        r->last_eval_ms = RULES_TS_NONE;
        g->n_rules++;
        buf perr;
        buf_init(&perr, 64 * 1024);
        if (promql_parse(r->expr, strlen(r->expr), &m->o.parse, &r->ast, &perr) < 0) {
            buf_printf(err, "%s: group \"%s\", rule \"%s\": %s\n", g->file, g->name, r->name,
                       buf_cstr(&perr));
            buf_cleanup(&perr);
            buf_cleanup(&def);
            group_free(g);
            return NULL;
        }
        buf_cleanup(&perr);
        buf fmt;
        buf_init(&fmt, BUF_UNLIMITED);
        promql_format(r->ast->root, &fmt);
        r->expr_fmt = buf_detach(&fmt, NULL);
        buf mt;
        buf_init(&mt, BUF_UNLIMITED);
        buf_puts(&mt, r->name);
        labels_format(r->labels, &mt);
        r->match = buf_detach(&mt, NULL);
        /* n: earlier rules with the same name and labels */
        size_t nth = 0;
        for (size_t j = 0; j + 1 < g->n_rules; j++)
            if (strcmp(g->rules[j].match, r->match) == 0) nth++;
        buf key;
        buf_init(&key, BUF_UNLIMITED);
        buf_puts(&key, g->file);
        buf_putc(&key, (char)0xff);
        buf_puts(&key, g->name);
        buf_putc(&key, (char)0xff);
        buf_puts(&key, r->name);
        buf_putc(&key, (char)0xff);
        labels_format(r->labels, &key);
        buf_putc(&key, (char)0xff);
        buf_printf(&key, "%zu", nth);
        r->key = buf_detach(&key, &r->key_len);
        buf_printf(&def, "\n%d\n%s\n%s\n%" PRId64 "\n%" PRId64 "\n", r->alerting, r->name, r->expr,
                   r->for_ms, r->kff_ms);
        labels_format(r->labels, &def);
        labels_format(r->annotations, &def);
    }
    g->def = buf_detach(&def, NULL);
    return g;
}

/* Prometheus's CopyState: takes series and alert state of rules with the
 * same name and labels from old (whose thread is stopped). */
static void copy_state(group *g, group *old)
{
    pthread_mutex_lock(&old->mu);
    g->last_eval_ms = old->last_eval_ms;
    g->eval_time_s = old->eval_time_s;
    bool *used = mem_calloc(old->n_rules + 1, sizeof *used);
    for (size_t i = 0; i < g->n_rules; i++) {
        rule *r = &g->rules[i];
        for (size_t j = 0; j < old->n_rules; j++) {
            rule *o = &old->rules[j];
            if (used[j] || strcmp(o->match, r->match) != 0) continue;
            used[j] = true;
            r->prev = o->prev;
            r->n_prev = o->n_prev;
            o->prev = NULL;
            o->n_prev = 0;
            if (r->alerting && o->alerting) {
                r->active = o->active;
                r->n_active = o->n_active;
                r->cap_active = o->cap_active;
                o->active = NULL;
                o->n_active = o->cap_active = 0;
                if (strcmp(r->key, o->key) == 0) {
                    r->saved = o->saved;
                    o->saved = NULL;
                }
            }
            break;
        }
    }
    /* staleSeries: old ones still pending plus the series of unmatched rules */
    g->stale = old->stale;
    g->n_stale = old->n_stale;
    old->stale = NULL;
    old->n_stale = 0;
    for (size_t j = 0; j < old->n_rules; j++) {
        rule *o = &old->rules[j];
        if (used[j] || o->n_prev == 0) continue;
        g->stale = mem_realloc(g->stale, (g->n_stale + o->n_prev) * sizeof *g->stale);
        memcpy(g->stale + g->n_stale, o->prev, o->n_prev * sizeof *o->prev);
        g->n_stale += o->n_prev;
        mem_free(o->prev);
        o->prev = NULL;
        o->n_prev = 0;
    }
    mem_free(used);
    pthread_mutex_unlock(&old->mu);
}

/* ---- threads ------------------------------------------------------------------- */

/* Waits until wall time target_ms; false when asked to stop. */
static bool wait_until(group *g, int64_t target_ms)
{
    pthread_mutex_lock(&g->tmu);
    while (!g->stop) {
        int64_t now = realtime_ms();
        if (now >= target_ms) break;
        struct timespec ts = {.tv_sec = target_ms / 1000, .tv_nsec = (target_ms % 1000) * 1000000};
        pthread_cond_timedwait(&g->cv, &g->tmu, &ts);
    }
    bool ok = !g->stop;
    pthread_mutex_unlock(&g->tmu);
    return ok;
}

static void *group_thread(void *arg)
{
    group *g = arg;
    int64_t iv = g->interval_ms;
    int64_t next = rules_eval_timestamp(g->file, g->name, iv, realtime_ms()) + iv;
    if (!wait_until(g, next)) return NULL;
    group_iterate(g, next);
    for (;;) {
        if (!wait_until(g, next + iv)) break;
        int64_t missed = (realtime_ms() - next) / iv - 1;
        if (missed > 0) {
            if (g->m_missed) registry_add(g->m_missed, (double)missed);
            if (g->m_iters) registry_add(g->m_iters, (double)missed);
        } else {
            missed = 0;
        }
        next += (missed + 1) * iv;
        group_iterate(g, next);
    }
    return NULL;
}

static int group_start(group *g)
{
    if (g->th_running) return 0;
    g->stop = false;
    atomic_store(&g->cancel, false);
    int rc = pthread_create(&g->th, NULL, group_thread, g);
    if (rc != 0) {
        log_error(COMPONENT, "cannot start the thread of group %s: %s", g->gkey, strerror(rc));
        return -rc;
    }
    g->th_running = true;
    return 0;
}

static void group_stop(group *g)
{
    if (!g->th_running) return;
    pthread_mutex_lock(&g->tmu);
    g->stop = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->tmu);
    atomic_store(&g->cancel, true);
    pthread_join(g->th, NULL);
    g->th_running = false;
    atomic_store(&g->cancel, false);
}

/* ---- the manager --------------------------------------------------------------- */

static const double duration_buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60};

int rules_manager_new(const rules_options *o, rules_manager **out, buf *err)
{
    *out = NULL;
    if (!o || (o->source.begin ? !o->source.end : !o->source.fixed.select) || !o->appender.begin ||
        !o->appender.append || !o->appender.commit) {
        buf_puts(err, "rules: the source and appender callbacks are required");
        return -EINVAL;
    }
    if ((o->persist.save == NULL) != (o->persist.load == NULL)) {
        buf_puts(err, "rules: persistence needs both save and load");
        return -EINVAL;
    }
    rules_manager *m = mem_calloc(1, sizeof *m);
    m->o = *o;
    m->o.engine.cancel = NULL;
    pthread_mutex_init(&m->mu, NULL);
    registry *reg = o->reg;
    if (reg) {
        const char *ln[] = {"rule_group", NULL};
        m->f_evals = registry_counter(reg, "sidewatch_rule_evaluations_total",
                                      "The total number of rule evaluations.", ln);
        m->f_fail = registry_counter(reg, "sidewatch_rule_evaluation_failures_total",
                                     "The total number of rule evaluation failures.", ln);
        m->f_missed = registry_counter(reg, "sidewatch_rule_group_iterations_missed_total",
                                       "The total number of rule group evaluations missed due to "
                                       "slow rule group evaluation.",
                                       ln);
        m->f_iters = registry_counter(reg, "sidewatch_rule_group_iterations_total",
                                      "The total number of scheduled rule group evaluations, "
                                      "whether executed or missed.",
                                      ln);
        m->f_interval = registry_gauge(reg, "sidewatch_rule_group_interval_seconds",
                                       "The interval of a rule group.", ln);
        m->f_last_dur = registry_gauge(reg, "sidewatch_rule_group_last_duration_seconds",
                                       "The duration of the last rule group evaluation.", ln);
        m->f_last_ts =
            registry_gauge(reg, "sidewatch_rule_group_last_evaluation_timestamp_seconds",
                           "The timestamp of the last rule group evaluation in seconds.", ln);
        m->f_samples = registry_gauge(reg, "sidewatch_rule_group_last_evaluation_samples",
                                      "The number of samples returned during the last rule group "
                                      "evaluation.",
                                      ln);
        m->f_rules = registry_gauge(reg, "sidewatch_rule_group_rules", "The number of rules.", ln);
        m->f_rule_sum = registry_gauge(reg, "sidewatch_rule_group_last_rule_duration_sum_seconds",
                                       "The sum of time in seconds it took to evaluate each rule "
                                       "in the group regardless of concurrency.",
                                       ln);
        m->f_restore = registry_gauge(reg, "sidewatch_rule_group_last_restore_duration_seconds",
                                      "The duration of the last alert rules alerts restoration "
                                      "using the persisted alert state.",
                                      ln);
        m->m_eval_dur = registry_child(
            registry_histogram(reg, "sidewatch_rule_evaluation_duration_seconds",
                               "The duration for a rule to execute.", NULL, duration_buckets,
                               sizeof duration_buckets / sizeof duration_buckets[0]),
            NULL);
        m->m_group_dur = registry_child(
            registry_histogram(reg, "sidewatch_rule_group_duration_seconds",
                               "The duration of rule group evaluations.", NULL, duration_buckets,
                               sizeof duration_buckets / sizeof duration_buckets[0]),
            NULL);
        if (!m->f_evals || !m->f_fail || !m->f_missed || !m->f_iters || !m->f_interval ||
            !m->f_last_dur || !m->f_last_ts || !m->f_samples || !m->f_rules || !m->f_rule_sum ||
            !m->f_restore) {
            buf_puts(err, "rules: a metric name is registered with another type");
            pthread_mutex_destroy(&m->mu);
            mem_free(m);
            return -EINVAL;
        }
    }
    *out = m;
    return 0;
}

void rules_manager_free(rules_manager *m)
{
    if (!m) return;
    rules_manager_stop(m);
    for (size_t i = 0; i < m->n_groups; i++)
        group_free(m->groups[i]);
    mem_free(m->groups);
    pthread_mutex_destroy(&m->mu);
    mem_free(m);
}

static void delete_persisted(rules_manager *m, const rule *r)
{
    const rules_persist *p = &m->o.persist;
    if (!p->save || !r->alerting) return;
    buf err;
    buf_init(&err, 4096);
    if (p->save(p->ctx, r->key, r->key_len, NULL, 0, &err) < 0)
        log_warn(COMPONENT, "deleting alert state of %s: %s", r->name, buf_cstr(&err));
    buf_cleanup(&err);
}

int rules_manager_update_files(rules_manager *m, const rulefmt_file *const *files, size_t n_files,
                               const rules_config *c, buf *err)
{
    /* Build the new groups. */
    group **ng = NULL;
    size_t n_ng = 0, cap = 0;
    int rc = 0;
    for (size_t i = 0; i < n_files; i++)
        for (size_t j = 0; j < files[i]->n_groups; j++) {
            group *g = group_new(m, files[i], &files[i]->groups[j], c, err);
            if (!g) {
                rc = -EINVAL;
                continue;
            }
            ng = mem_grow(ng, sizeof *ng, n_ng + 1, &cap);
            ng[n_ng++] = g;
        }
    if (rc < 0) {
        for (size_t i = 0; i < n_ng; i++)
            group_free(ng[i]);
        mem_free(ng);
        return rc;
    }

    pthread_mutex_lock(&m->mu);
    bool *old_used = mem_calloc(m->n_groups + 1, sizeof *old_used);
    bool *fresh = mem_calloc(n_ng + 1, sizeof *fresh); /* needs restore/start */
    for (size_t i = 0; i < n_ng; i++) {
        group *g = ng[i];
        group *old = NULL;
        size_t oi = 0;
        for (size_t j = 0; j < m->n_groups; j++)
            if (!old_used[j] && strcmp(m->groups[j]->gkey, g->gkey) == 0) {
                old = m->groups[j];
                oi = j;
                break;
            }
        if (old && strcmp(old->def, g->def) == 0) { /* unchanged: keep the old one */
            old_used[oi] = true;
            group_free(g);
            ng[i] = old;
            continue;
        }
        fresh[i] = true;
        group_acquire_metrics(g);
        if (old) {
            old_used[oi] = true;
            group_stop(old);
            copy_state(g, old);
        }
        double t0 = mono_s();
        for (size_t k = 0; k < g->n_rules; k++)
            if (g->rules[k].alerting && g->rules[k].n_active == 0 && !g->rules[k].saved)
                rule_restore(g, &g->rules[k]);
        if (g->m_restore) registry_set(g->m_restore, mono_s() - t0);
    }
    /* Persisted keys no new rule uses are deleted; removed groups go stale. */
    for (size_t j = 0; j < m->n_groups; j++) {
        group *old = m->groups[j];
        bool kept = false;
        for (size_t i = 0; i < n_ng; i++)
            if (ng[i] == old) kept = true;
        if (kept) continue;
        group_stop(old);
        for (size_t k = 0; k < old->n_rules; k++) {
            rule *r = &old->rules[k];
            bool reused = false;
            for (size_t i = 0; i < n_ng && !reused; i++)
                for (size_t l = 0; l < ng[i]->n_rules; l++)
                    if (ng[i]->rules[l].key_len == r->key_len &&
                        memcmp(ng[i]->rules[l].key, r->key, r->key_len) == 0) {
                        reused = true;
                        break;
                    }
            if (!reused && (r->saved || r->n_active)) delete_persisted(m, r);
        }
        if (!old_used[j]) { /* gone: mark everything it wrote stale */
            int64_t now = realtime_ms();
            for (size_t k = 0; k < old->n_rules; k++)
                write_stale(old, old->rules[k].prev, old->rules[k].n_prev, now);
            write_stale(old, old->stale, old->n_stale, now);
        }
        group_free(old);
    }
    mem_free(m->groups);
    m->groups = ng;
    m->n_groups = n_ng;
    if (m->started)
        for (size_t i = 0; i < n_ng; i++)
            if (fresh[i]) group_start(ng[i]);
    pthread_mutex_unlock(&m->mu);
    mem_free(old_used);
    mem_free(fresh);
    return 0;
}

int rules_manager_update(rules_manager *m, const rules_config *c, buf *err)
{
    char **paths = NULL;
    size_t n_paths = 0;
    int rc = rulefmt_glob(c->files, c->n_files, c->base_dir, &paths, &n_paths, err);
    if (rc < 0) return rc;
    rulefmt_file **files = mem_calloc(n_paths ? n_paths : 1, sizeof *files);
    size_t n_files = 0;
    for (size_t i = 0; i < n_paths; i++) {
        rulefmt_file *f = NULL;
        int r = rulefmt_load(paths[i], c->fmt, &f, err);
        if (r < 0) {
            rc = r;
            continue;
        }
        files[n_files++] = f;
    }
    if (rc == 0)
        rc = rules_manager_update_files(m, (const rulefmt_file *const *)files, n_files, c, err);
    for (size_t i = 0; i < n_files; i++)
        rulefmt_file_free(files[i]);
    mem_free(files);
    for (size_t i = 0; i < n_paths; i++)
        mem_free(paths[i]);
    mem_free(paths);
    return rc;
}

int rules_manager_start(rules_manager *m)
{
    pthread_mutex_lock(&m->mu);
    int rc = 0;
    m->started = true;
    for (size_t i = 0; i < m->n_groups; i++) {
        int r = group_start(m->groups[i]);
        if (r < 0) rc = r;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

void rules_manager_stop(rules_manager *m)
{
    pthread_mutex_lock(&m->mu);
    m->started = false;
    for (size_t i = 0; i < m->n_groups; i++)
        group_stop(m->groups[i]);
    pthread_mutex_unlock(&m->mu);
}

int rules_manager_eval(rules_manager *m, int64_t t_ms, const size_t *order, size_t n_order)
{
    pthread_mutex_lock(&m->mu);
    size_t n = order ? n_order : m->n_groups;
    for (size_t i = 0; order && i < n; i++)
        if (order[i] >= m->n_groups) {
            pthread_mutex_unlock(&m->mu);
            return -EINVAL;
        }
    for (size_t i = 0; i < n; i++)
        group_iterate(m->groups[order ? order[i] : i], t_ms);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

int rules_manager_eval_group(rules_manager *m, size_t group_index, int64_t t_ms)
{
    return rules_manager_eval(m, t_ms, &group_index, 1);
}

/* ---- snapshot ------------------------------------------------------------------- */

void rules_manager_snapshot(rules_manager *m, rules_snapshot *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&m->mu);
    out->groups = mem_calloc(m->n_groups ? m->n_groups : 1, sizeof *out->groups);
    out->n_groups = m->n_groups;
    for (size_t i = 0; i < m->n_groups; i++) {
        group *g = m->groups[i];
        rules_group_snap *gs = &out->groups[i];
        pthread_mutex_lock(&g->mu);
        gs->name = mem_strdup(g->name);
        gs->file = mem_strdup(g->file);
        gs->interval_ms = g->interval_ms;
        gs->query_offset_ms = g->query_offset_ms;
        gs->limit = g->limit;
        gs->labels = labels_dup(g->labels);
        gs->last_evaluation_ms = g->last_eval_ms;
        gs->evaluation_time_s = g->eval_time_s;
        gs->rules = mem_calloc(g->n_rules ? g->n_rules : 1, sizeof *gs->rules);
        gs->n_rules = g->n_rules;
        for (size_t k = 0; k < g->n_rules; k++) {
            rule *r = &g->rules[k];
            rules_rule_snap *rs = &gs->rules[k];
            rs->alerting = r->alerting;
            rs->name = mem_strdup(r->name);
            rs->query = mem_strdup(r->expr);
            rs->labels = labels_dup(r->labels);
            rs->annotations = labels_dup(r->annotations);
            rs->for_ms = r->for_ms;
            rs->keep_firing_for_ms = r->kff_ms;
            rs->health = r->health;
            rs->last_error = r->last_error ? mem_strdup(r->last_error) : NULL;
            rs->last_evaluation_ms = r->last_eval_ms;
            rs->evaluation_time_s = r->eval_time_s;
            rs->state = RULES_STATE_UNKNOWN;
            if (!r->alerting) continue;
            if (r->evaluated) rs->state = RULES_STATE_INACTIVE;
            rs->alerts = mem_calloc(r->n_active ? r->n_active : 1, sizeof *rs->alerts);
            for (size_t a = 0; a < r->n_active; a++) {
                if (r->evaluated && r->active[a].state > rs->state) rs->state = r->active[a].state;
                if (r->active[a].resolved_at_ms != RULES_TS_NONE) continue;
                alert_copy(&rs->alerts[rs->n_alerts++], &r->active[a]);
            }
            qsort(rs->alerts, rs->n_alerts, sizeof *rs->alerts, cmp_alert);
        }
        pthread_mutex_unlock(&g->mu);
    }
    pthread_mutex_unlock(&m->mu);
}

void rules_snapshot_cleanup(rules_snapshot *s)
{
    for (size_t i = 0; i < s->n_groups; i++) {
        rules_group_snap *gs = &s->groups[i];
        mem_free(gs->name);
        mem_free(gs->file);
        labels_free(gs->labels);
        for (size_t k = 0; k < gs->n_rules; k++) {
            rules_rule_snap *rs = &gs->rules[k];
            mem_free(rs->name);
            mem_free(rs->query);
            labels_free(rs->labels);
            labels_free(rs->annotations);
            mem_free(rs->last_error);
            for (size_t a = 0; a < rs->n_alerts; a++)
                alert_cleanup(&rs->alerts[a]);
            mem_free(rs->alerts);
        }
        mem_free(gs->rules);
    }
    mem_free(s->groups);
    memset(s, 0, sizeof *s);
}

/* ---- ready-made callbacks ------------------------------------------------------- */

static int store_save(void *ctx, const void *key, size_t key_len, const void *value, size_t len,
                      buf *err)
{
    store_kv_op op = {
        .ns = RULES_KV_NAMESPACE, .key = key, .key_len = key_len, .value = value, .value_len = len};
    return store_kv_apply(ctx, &op, 1, err);
}

static int store_load(void *ctx, const void *key, size_t key_len, void **value, size_t *len,
                      buf *err)
{
    store_kv_entry *e = NULL;
    size_t n = 0;
    int rc = store_kv_list(ctx, RULES_KV_NAMESPACE, key, key_len, 0, &e, &n, err);
    if (rc < 0) return rc;
    rc = -ENOENT;
    for (size_t i = 0; i < n; i++)
        if (e[i].key_len == key_len && memcmp(e[i].key, key, key_len) == 0) {
            *value = mem_malloc(e[i].value_len + 1);
            memcpy(*value, e[i].value, e[i].value_len);
            ((char *)*value)[e[i].value_len] = 0;
            *len = e[i].value_len;
            rc = 0;
            break;
        }
    store_kv_entries_free(e, n);
    return rc;
}

void rules_persist_store(store *s, rules_persist *out)
{
    *out = (rules_persist){.ctx = s, .save = store_save, .load = store_load};
}

typedef struct store_qh {
    store_reader *r;
    querier q;
} store_qh;

static void *store_src_begin(void *ctx, promql_queryable *q, buf *err)
{
    store_qh *h = mem_calloc(1, sizeof *h);
    int rc = store_reader_open(ctx, &h->r);
    if (rc < 0) {
        buf_printf(err, "opening a store reader: %s", strerror(-rc));
        mem_free(h);
        return NULL;
    }
    rc = querier_begin(&h->q, h->r, NULL);
    if (rc < 0) {
        buf_printf(err, "starting a query: %s", strerror(-rc));
        store_reader_close(h->r);
        mem_free(h);
        return NULL;
    }
    querier_queryable(&h->q, q);
    return h;
}

static void store_src_end(void *ctx, void *handle)
{
    (void)ctx;
    store_qh *h = handle;
    querier_end(&h->q);
    store_reader_close(h->r);
    mem_free(h);
}

void rules_source_store(store *s, rules_source *out)
{
    *out = (rules_source){.ctx = s, .begin = store_src_begin, .end = store_src_end};
}

typedef struct store_app {
    store *s;
    store_batch *b;
} store_app;

static void *store_app_begin(void *ctx)
{
    store_app *a = mem_malloc(sizeof *a);
    a->s = ctx;
    a->b = store_batch_new(ctx);
    return a;
}

static int store_app_append(void *batch, const labels *ls, int64_t t, double v, buf *err)
{
    store_app *a = batch;
    uint64_t ref;
    bool created;
    int rc = store_series_ref(a->s, ls, &ref, &created);
    if (rc < 0) {
        buf_printf(err, "storing series: %s", strerror(-rc));
        return rc;
    }
    store_batch_add(a->b, ref, t, v);
    return 0;
}

static int store_app_append_histogram(void *batch, const labels *ls, int64_t t,
                                      const promql_fh *h, buf *err)
{
    store_app *a = batch;
    uint64_t ref;
    bool created;
    int rc = store_series_ref(a->s, ls, &ref, &created);
    if (rc < 0) {
        buf_printf(err, "storing series: %s", strerror(-rc));
        return rc;
    }
    nhist nh;
    nhist_init(&nh);
    rc = promql_fh_to_nhist(h, &nh);
    if (rc < 0) {
        buf_printf(err, "storing a histogram: %s", strerror(-rc));
        return rc;
    }
    store_batch_add_histogram(a->b, ref, t, &nh);
    nhist_cleanup(&nh);
    return 0;
}

static int store_app_commit(void *batch, buf *err)
{
    store_app *a = batch;
    int rc = store_batch_commit(a->b);
    mem_free(a);
    if (rc < 0) buf_printf(err, "committing rule results: %s", strerror(-rc));
    return rc;
}

void rules_appender_store(store *s, rules_appender *out)
{
    *out = (rules_appender){
        .ctx = s,
        .begin = store_app_begin,
        .append = store_app_append,
        .append_histogram = store_app_append_histogram,
        .commit = store_app_commit};
}

void rules_source_queryable(const promql_queryable *q, rules_source *out)
{
    *out = (rules_source){.fixed = *q};
}
