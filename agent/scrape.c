#include "scrape.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "buf.h"
#include "discovery.h"
#include "expfmt.h"
#include "hmap.h"
#include "httpc.h"
#include "log.h"
#include "mem.h"
#include "nhcb.h"
#include "nhist.h"
#include "protoparse.h"
#include "relabel.h"
#include "strutil.h"
#include "textparse.h"

/* A cached series that was not seen for this many scrapes is forgotten. */
#define SCRAPE_CACHE_EVICT_ITERATIONS 10
/* Scrape timestamps within this of the schedule are aligned to it. */
#define SCRAPE_TIMESTAMP_TOLERANCE_MS 2
/* Upper bound on the loop's sleep, so discovery refreshes stay timely. */
#define SCRAPE_MAX_POLL_MS 1000
/* Scratch memory for building one series' labels. */
#define SCRAPE_SCRATCH_LIMIT (64 * 1024 * 1024)

enum report_series {
    REPORT_UP,
    REPORT_DURATION,
    REPORT_SAMPLES,
    REPORT_POST_RELABEL,
    REPORT_SERIES_ADDED,
    REPORT_COUNT
};

static const char *const report_names[REPORT_COUNT] = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
};

/* One exposed series of a target, keyed by its bytes in the exposition. */
typedef struct series_entry {
    char *key;
    size_t key_len;
    uint64_t ref;       /* store reference; 0 when metric relabeling dropped it */
    uint64_t seen_iter; /* the scrape that last contained it (successful or not) */
    bool live;          /* in the last successful scrape and not marked stale */
    bool explicit_ts;   /* came with its own timestamp (no staleness then) */
    int format;         /* enum textparse_format, or SCRAPE_FMT_PROTOBUF */
} series_entry;

/* The protobuf format's series keys live next to the text formats' ones,
 * and so do those of histograms converted to NHCB (their key is the
 * labels_encode() of their exposed labels). */
#define SCRAPE_FMT_PROTOBUF 2
#define SCRAPE_FMT_NHCB 3

/* Metadata last written for a metric family of a target. */
typedef struct meta_entry {
    char *name;
    uint64_t hash; /* of type, help and unit */
} meta_entry;

typedef struct target {
    uint64_t id; /* identity: labels + URL */
    size_t job;  /* index into cfg->scrape_configs */
    const config_scrape *sc;
    labels *labels;     /* public labels */
    labels *discovered; /* before relabeling */
    char *url;
    char *error_reason; /* set when the target itself is invalid (target_limit) */
    int64_t interval_ms, timeout_ms;
    int64_t next_ms;
    bool seen; /* marks targets of the current target set during a rebuild */

    httpc_transfer *inflight;
    int64_t scrape_start_ms;

    hmap cache; /* series_entry by key */
    hmap meta;  /* meta_entry by name */
    uint64_t iter;
    uint64_t report_refs[REPORT_COUNT];
    bool report_live;

    int health;
    char *last_error;
    int64_t last_scrape_ms;
    double last_duration;

    registry_metric *m_up, *m_duration, *m_samples, *m_scrapes, *m_failures;
} target;

struct scrape_manager {
    store *st;
    registry *reg;
    pthread_t thread;
    bool running;
    atomic_bool stop;

    /* Guards pending, and every target field the API reads (the list,
     * labels, health, last error and times): the scrape thread, the only
     * writer, changes them under mu; it reads them without. */
    pthread_mutex_t mu;
    config *pending; /* next config to apply */
    httpc *http;

    /* owned by the scrape thread (readers take mu) */
    config *cfg;
    discovery *disc;
    target **targets;
    size_t n_targets, cap_targets;
    scrape_dropped dropped; /* targets relabeling dropped, for the API (under mu) */

    registry_family *f_up, *f_duration, *f_samples, *f_scrapes, *f_failures, *f_targets;
    registry_metric *m_sample_limit, *m_body_limit, *m_duplicates, *m_label_limit;
    registry_metric *m_bucket_limit, *m_target_limit;
    size_t max_body_bytes; /* hard cap on a decoded body (--scrape.max-body-bytes) */
    bool legacy_names; /* legacy_name_validation of the config targets were last built with */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Accept header ------------------------------------------------------ */

void scrape_accept_header(const enum config_scrape_protocol *p, size_t n, buf *out)
{
    /* Prometheus: weights count down from (number of known protocols + 1)
     * = 6; the 1.0.0 text formats carry the escaping scheme. */
    int weight = 6;
    for (size_t i = 0; i < n; i++) {
        const char *v = NULL;
        bool escaping = false;
        switch (p[i]) {
        case CONFIG_PROTO_OPENMETRICS_1_0_0:
            v = "application/openmetrics-text;version=1.0.0";
            escaping = true;
            break;
        case CONFIG_PROTO_OPENMETRICS_0_0_1:
            v = "application/openmetrics-text;version=0.0.1";
            break;
        case CONFIG_PROTO_PROMETHEUS_TEXT_1_0_0:
            v = "text/plain;version=1.0.0";
            escaping = true;
            break;
        case CONFIG_PROTO_PROMETHEUS_TEXT_0_0_4:
            v = "text/plain;version=0.0.4";
            break;
        case CONFIG_PROTO_PROMETHEUS_PROTO:
            v = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                "encoding=delimited";
            break;
        }
        buf_printf(out, "%s%s%s;q=0.%d", out->len ? "," : "", v,
                   escaping ? ";escaping=allow-utf-8" : "", weight);
        weight--;
    }
    buf_printf(out, "%s*/*;q=0.%d", out->len ? "," : "", weight);
}

/* ---- series cache ---------------------------------------------------------- */

typedef struct key_view {
    const char *p;
    size_t len;
    int format;
} key_view;

static bool entry_eq(const void *val, const void *key)
{
    const series_entry *e = val;
    const key_view *k = key;
    return e->key_len == k->len && e->format == k->format && memcmp(e->key, k->p, k->len) == 0;
}

static bool meta_eq(const void *val, const void *key)
{
    return strcmp(((const meta_entry *)val)->name, key) == 0;
}

static void cache_clear(target *t)
{
    size_t it = 0;
    void *v;
    while (hmap_next(&t->cache, &it, &v)) {
        series_entry *e = v;
        mem_free(e->key);
        mem_free(e);
    }
    hmap_cleanup(&t->cache);
    it = 0;
    while (hmap_next(&t->meta, &it, &v)) {
        meta_entry *e = v;
        mem_free(e->name);
        mem_free(e);
    }
    hmap_cleanup(&t->meta);
}

/* ---- target labels ------------------------------------------------------------ */

/* Go's url.QueryEscape. */
static void query_escape(buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            buf_putc(out, (char)c);
        } else if (c == ' ') {
            buf_putc(out, '+');
        } else {
            buf_putc(out, '%');
            buf_putc(out, hex[c >> 4]);
            buf_putc(out, hex[c & 15]);
        }
    }
}

typedef struct url_param {
    const char *key;
    const char *const *values;
    size_t n;
    const char *override; /* from a __param_<key> label */
} url_param;

static int cmp_param(const void *a, const void *b)
{
    return strcmp(((const url_param *)a)->key, ((const url_param *)b)->key);
}

/* Builds the scrape URL from __scheme__, __address__, __metrics_path__, the
 * job's params and __param_* labels (url.Values.Encode: keys sorted). */
static char *target_url(const config_scrape *sc, const labels *all)
{
    buf u;
    buf_init(&u, BUF_UNLIMITED);
    size_t len;
    const char *v = labels_get(all, "__scheme__", 10, &len);
    buf_append(&u, v ? v : "http", v ? len : 4);
    buf_puts(&u, "://");
    v = labels_get(all, "__address__", 11, &len);
    if (v) buf_append(&u, v, len);
    v = labels_get(all, "__metrics_path__", 16, &len);
    if (v && len && v[0] != '/') buf_putc(&u, '/');
    if (v) buf_append(&u, v, len);

    size_t cap = sc->n_params + all->n + 1, n = 0;
    url_param *ps = mem_calloc(cap, sizeof *ps);
    for (size_t i = 0; i < sc->n_params; i++) {
        ps[n++] = (url_param){sc->params[i].name, (const char *const *)sc->params[i].values,
                              sc->params[i].n_values, NULL};
    }
    for (uint32_t i = 0; i < all->n; i++) {
        const label *l = &all->v[i];
        if (!strutil_has_prefix(l->name, l->name_len, "__param_")) continue;
        const char *key = l->name + 8;
        size_t j = 0;
        while (j < n && strcmp(ps[j].key, key) != 0)
            j++;
        if (j == n) ps[n++] = (url_param){key, NULL, 0, NULL};
        ps[j].override = l->value;
    }
    qsort(ps, n, sizeof *ps, cmp_param);
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        size_t count = ps[i].n ? ps[i].n : 1;
        for (size_t j = 0; j < count; j++) {
            const char *val = (j == 0 && ps[i].override) ? ps[i].override
                              : ps[i].n                  ? ps[i].values[j]
                                                         : "";
            buf_putc(&u, first ? '?' : '&');
            first = false;
            query_escape(&u, ps[i].key);
            buf_putc(&u, '=');
            query_escape(&u, val);
        }
    }
    mem_free(ps);
    return buf_detach(&u, NULL);
}

static char *format_ms(int64_t ms, char *out)
{
    strutil_format_duration(ms, out);
    return out;
}

/* Prometheus's PopulateLabels for one address of a group. Returns 0 and the
 * final labels (*all, including __ labels) and the discovered labels, 1 when
 * relabeling dropped the target (*discovered is still set: the caller frees
 * it), or -EINVAL with a reason in err. */
static int populate_labels(const config *cfg, const config_scrape *sc, const config_target_group *g,
                           const char *address, labels **all, labels **discovered,
                           int64_t *interval_ms, int64_t *timeout_ms, buf *err)
{
    labels_builder lb;
    labels_builder_init(&lb);
    arena scratch;
    arena_init(&scratch, SCRAPE_SCRATCH_LIMIT);
    char iv[32], tv[32];
    int rc = 0;

    labels_builder_set(&lb, "__address__", 11, address, strlen(address));
    for (uint32_t i = 0; i < g->labels->n; i++) {
        const label *l = &g->labels->v[i];
        if (l->name_len == 11 && memcmp(l->name, "__address__", 11) == 0) continue;
        labels_builder_set(&lb, l->name, l->name_len, l->value, l->value_len);
    }
    const char *defaults[][2] = {
        {"job", sc->job_name},
        {"__scrape_interval__", format_ms(sc->scrape_interval_ms, iv)},
        {"__scrape_timeout__", format_ms(sc->scrape_timeout_ms, tv)},
        {"__metrics_path__", sc->metrics_path},
        {"__scheme__", sc->scheme},
    };
    for (size_t i = 0; i < 5; i++) {
        size_t len;
        if (!labels_builder_get(&lb, defaults[i][0], strlen(defaults[i][0]), &len))
            labels_builder_set(&lb, defaults[i][0], strlen(defaults[i][0]), defaults[i][1],
                               strlen(defaults[i][1]));
    }
    buf pname;
    buf_init(&pname, BUF_UNLIMITED);
    for (size_t i = 0; i < sc->n_params; i++) {
        buf_reset(&pname);
        buf_printf(&pname, "__param_%s", sc->params[i].name);
        char *n = arena_strndup(&scratch, pname.data, pname.len);
        size_t len;
        if (sc->params[i].n_values > 0 && n && !labels_builder_get(&lb, n, pname.len, &len))
            labels_builder_set(&lb, n, pname.len, sc->params[i].values[0],
                               strlen(sc->params[i].values[0]));
    }
    buf_cleanup(&pname);
    *discovered = labels_builder_finish(&lb, NULL);
    labels_builder_from(&lb, *discovered);

    if (!relabel_apply(sc->relabel_configs, sc->n_relabel_configs, &lb, &scratch,
                       cfg->global.legacy_name_validation)) {
        rc = 1;
        goto out;
    }
    size_t alen;
    const char *addr = labels_builder_get(&lb, "__address__", 11, &alen);
    if (!addr || alen == 0) {
        buf_puts(err, "no address");
        rc = -EINVAL;
        goto out;
    }
    if (memchr(addr, '/', alen)) {
        buf_puts(err, "\"");
        buf_append(err, addr, alen);
        buf_puts(err, "\" is not a valid hostname");
        rc = -EINVAL;
        goto out;
    }
    const char *names[2] = {"__scrape_interval__", "__scrape_timeout__"};
    int64_t d[2];
    for (int i = 0; i < 2; i++) {
        size_t len;
        const char *v = labels_builder_get(&lb, names[i], strlen(names[i]), &len);
        if (strutil_parse_duration(v ? v : "", v ? len : 0, &d[i], NULL) < 0) {
            buf_printf(err, "error parsing scrape %s: not a valid duration string: \"%.*s\"",
                       i ? "timeout" : "interval", (int)len, v ? v : "");
            rc = -EINVAL;
            goto out;
        }
    }
    if (d[0] == 0) {
        buf_puts(err, "scrape interval cannot be 0");
        rc = -EINVAL;
        goto out;
    }
    if (d[1] == 0) {
        buf_puts(err, "scrape timeout cannot be 0");
        rc = -EINVAL;
        goto out;
    }
    if (d[1] > d[0]) {
        buf_puts(err, "scrape timeout cannot be greater than scrape interval");
        rc = -EINVAL;
        goto out;
    }
    *interval_ms = d[0];
    *timeout_ms = d[1];
    /* Meta labels go after relabeling; instance defaults to the address. */
    for (size_t i = 0; i < lb.n;) {
        if (strutil_has_prefix(lb.v[i].name, lb.v[i].name_len, "__meta_"))
            labels_builder_del(&lb, lb.v[i].name, lb.v[i].name_len);
        else
            i++;
    }
    size_t ilen;
    if (!labels_builder_get(&lb, "instance", 8, &ilen))
        labels_builder_set(&lb, "instance", 8, addr, alen);
    *all = labels_builder_finish(&lb, NULL);
    for (uint32_t i = 0; i < (*all)->n; i++) {
        if (!expfmt_utf8_valid((*all)->v[i].value, (*all)->v[i].value_len)) {
            buf_printf(err, "invalid label value for \"%s\"", (*all)->v[i].name);
            labels_free(*all);
            *all = NULL;
            rc = -EINVAL;
            goto out;
        }
    }
out:
    if (rc < 0) {
        labels_free(*discovered);
        *discovered = NULL;
    }
    labels_builder_cleanup(&lb);
    arena_cleanup(&scratch);
    return rc;
}

/* The public labels: those not starting with "__". */
static labels *public_labels(const labels *all)
{
    labels_builder lb;
    labels_builder_init(&lb);
    for (uint32_t i = 0; i < all->n; i++) {
        if (!strutil_has_prefix(all->v[i].name, all->v[i].name_len, "__"))
            labels_builder_add(&lb, all->v[i].name, all->v[i].name_len, all->v[i].value,
                               all->v[i].value_len);
    }
    labels *ls = labels_builder_finish(&lb, NULL);
    labels_builder_cleanup(&lb);
    return ls;
}

/* ---- targets ------------------------------------------------------------------ */

static void target_metrics(scrape_manager *m, target *t)
{
    size_t jl, il;
    const char *job = labels_get(t->labels, "job", 3, &jl);
    const char *inst = labels_get(t->labels, "instance", 8, &il);
    const char *vals[2] = {job ? job : "", inst ? inst : ""};
    t->m_up = registry_acquire(m->f_up, vals);
    t->m_duration = registry_acquire(m->f_duration, vals);
    t->m_samples = registry_acquire(m->f_samples, vals);
    t->m_scrapes = registry_acquire(m->f_scrapes, vals);
    t->m_failures = registry_acquire(m->f_failures, vals);
}

/* Targets may share job and instance (differing in other labels), so the
 * per-target children are reference counted. */
static void target_metrics_remove(scrape_manager *m, target *t)
{
    (void)m;
    registry_release(t->m_up);
    registry_release(t->m_duration);
    registry_release(t->m_samples);
    registry_release(t->m_scrapes);
    registry_release(t->m_failures);
}

static void target_free(target *t)
{
    cache_clear(t);
    labels_free(t->labels);
    labels_free(t->discovered);
    mem_free(t->url);
    mem_free(t->error_reason);
    mem_free(t->last_error);
    mem_free(t);
}

/* The first scrape time: the next multiple of the interval plus the target's
 * stable offset (as Prometheus's scrape loop computes it). */
static int64_t first_scrape_time(const target *t, int64_t now)
{
    int64_t iv = t->interval_ms;
    int64_t base = iv - now % iv;
    int64_t next = base + (int64_t)(t->id % (uint64_t)iv);
    if (next > iv) next -= iv;
    return now + next;
}

/* Report series labels: target labels win, clashing names become
 * exported_<name> (mutateReportSampleLabels). */
static labels *report_labels(const target *t, const char *name)
{
    labels_builder lb;
    labels_builder_init(&lb);
    labels_builder_set(&lb, LABELS_METRIC_NAME, 8, name, strlen(name));
    for (uint32_t i = 0; i < t->labels->n; i++) {
        const label *l = &t->labels->v[i];
        labels_builder_set(&lb, l->name, l->name_len, l->value, l->value_len);
    }
    labels *ls = labels_builder_finish(&lb, NULL);
    labels_builder_cleanup(&lb);
    return ls;
}

static void cancel_inflight(scrape_manager *m, target *t)
{
    if (t->inflight) httpc_cancel(m->http, t->inflight);
}

/* Appends staleness markers for every live series of t (and its report
 * series when `report`) to b. */
static void stale_all(target *t, store_batch *b, int64_t ts, bool report)
{
    double stale = strutil_stale_nan();
    size_t it = 0;
    void *v;
    while (hmap_next(&t->cache, &it, &v)) {
        series_entry *e = v;
        if (e->live && e->ref && !e->explicit_ts) store_batch_add(b, e->ref, ts, stale);
        e->live = false;
    }
    if (report && t->report_live) {
        for (int i = 0; i < REPORT_COUNT; i++)
            store_batch_add(b, t->report_refs[i], ts, stale);
        t->report_live = false;
    }
}

static void target_remove(scrape_manager *m, target *t, bool write_staleness)
{
    cancel_inflight(m, t);
    if (write_staleness) {
        store_batch *b = store_batch_new(m->st);
        stale_all(t, b, now_ms(), true);
        if (store_batch_len(b) == 0)
            store_batch_free(b);
        else if (store_batch_commit(b) < 0)
            log_warn("scrape", "could not store staleness markers for removed target %s", t->url);
    }
    target_metrics_remove(m, t);
    target_free(t);
}

static target *find_target(target **ts, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (ts[i]->id == id) return ts[i];
    }
    return NULL;
}

static int cmp_target(const void *a, const void *b)
{
    const target *x = *(target *const *)a, *y = *(target *const *)b;
    if (x->job != y->job) return x->job < y->job ? -1 : 1;
    return labels_compare(x->labels, y->labels);
}

static bool relabel_equal(const config_relabel *a, const config_relabel *b)
{
    if (a->action != b->action || a->modulus != b->modulus ||
        a->n_source_labels != b->n_source_labels || strcmp(a->separator, b->separator) != 0 ||
        strcmp(a->replacement, b->replacement) != 0 ||
        strcmp(regex_pattern(a->regex), regex_pattern(b->regex)) != 0 ||
        (a->target_label == NULL) != (b->target_label == NULL) ||
        (a->target_label && strcmp(a->target_label, b->target_label) != 0))
        return false;
    for (size_t i = 0; i < a->n_source_labels; i++) {
        if (strcmp(a->source_labels[i], b->source_labels[i]) != 0) return false;
    }
    return true;
}

/* True if a new scrape config turns scraped series into the same stored
 * series as the old one, so the target's series cache stays valid. */
static bool same_sample_rules(const config_scrape *a, const config_scrape *b, bool legacy_b,
                              bool legacy_a)
{
    if (a == b) return true;
    if (a->honor_labels != b->honor_labels || a->honor_timestamps != b->honor_timestamps ||
        a->track_timestamps_staleness != b->track_timestamps_staleness || legacy_a != legacy_b ||
        a->n_metric_relabel_configs != b->n_metric_relabel_configs)
        return false;
    for (size_t i = 0; i < a->n_metric_relabel_configs; i++) {
        if (!relabel_equal(&a->metric_relabel_configs[i], &b->metric_relabel_configs[i]))
            return false;
    }
    return true;
}

/* The sample rules of a target changed: its series so far go stale (their
 * label sets may not come again) and the cache starts over. */
static void reset_series(scrape_manager *m, target *t)
{
    cancel_inflight(m, t);
    store_batch *b = store_batch_new(m->st);
    stale_all(t, b, now_ms(), false);
    if (store_batch_len(b) == 0)
        store_batch_free(b);
    else if (store_batch_commit(b) < 0)
        log_warn("scrape", "could not store staleness markers for %s", t->url);
    cache_clear(t);
    hmap_init(&t->cache);
    hmap_init(&t->meta);
}

/* Recomputes the target set from the config and discovery. Existing targets
 * with the same identity keep their cache, health and phase. */
static void rebuild_targets(scrape_manager *m)
{
    const config *cfg = m->cfg;
    target **next = NULL;
    size_t n_next = 0, cap_next = 0;
    buf err;
    buf_init(&err, 4096);
    int64_t now = now_ms();
    scrape_dropped dropped = {0};
    size_t cap_dropped = 0;
    dropped.jobs = mem_calloc(cfg->n_scrape_configs + 1, sizeof *dropped.jobs);
    dropped.n_jobs = cfg->n_scrape_configs;

    for (size_t j = 0; j < cfg->n_scrape_configs; j++) {
        const config_scrape *sc = &cfg->scrape_configs[j];
        const config_target_group *const *groups;
        size_t ng = discovery_groups(m->disc, j, &groups);
        size_t job_start = n_next;
        uint64_t kept_dropped = 0;
        dropped.jobs[j].job = mem_strdup(sc->job_name);
        for (size_t g = 0; g < ng; g++) {
            for (size_t a = 0; a < groups[g]->n_targets; a++) {
                labels *all = NULL, *disc = NULL;
                int64_t iv = 0, to = 0;
                buf_reset(&err);
                int rc = populate_labels(cfg, sc, groups[g], groups[g]->targets[a], &all, &disc,
                                         &iv, &to, &err);
                if (rc == 1) {
                    /* As Prometheus: every dropped target is counted, at
                     * most keep_dropped_targets of them (0: all) are kept. */
                    dropped.jobs[j].count++;
                    if (sc->keep_dropped_targets == 0 || kept_dropped < sc->keep_dropped_targets) {
                        dropped.targets = mem_grow(dropped.targets, sizeof *dropped.targets,
                                                   dropped.n_targets + 1, &cap_dropped);
                        dropped.targets[dropped.n_targets].job = mem_strdup(sc->job_name);
                        dropped.targets[dropped.n_targets].discovered = disc;
                        dropped.n_targets++;
                        kept_dropped++;
                    } else {
                        labels_free(disc);
                    }
                    continue;
                }
                if (rc < 0) {
                    log_warn("scrape", "job %s: dropping target %s: %s", sc->job_name,
                             groups[g]->targets[a], buf_cstr(&err));
                    continue;
                }
                char *url = target_url(sc, all);
                labels *pub = public_labels(all);
                uint64_t id = labels_hash(pub) ^ strutil_hash64(url, strlen(url), 0x5ca1ab1e);
                labels_free(all);
                bool dup = false;
                for (size_t k = job_start; k < n_next; k++) {
                    if (next[k]->id == id) dup = true;
                }
                if (dup) {
                    labels_free(pub);
                    labels_free(disc);
                    mem_free(url);
                    continue;
                }
                target *t = find_target(m->targets, m->n_targets, id);
                if (t && t->job == j && !t->seen) {
                    labels_free(pub);
                    pthread_mutex_lock(&m->mu);
                    labels *old_disc = t->discovered;
                    t->discovered = disc;
                    pthread_mutex_unlock(&m->mu);
                    labels_free(old_disc);
                    mem_free(url);
                    if (t->sc && !same_sample_rules(t->sc, sc, cfg->global.legacy_name_validation,
                                                    m->legacy_names))
                        reset_series(m, t);
                } else {
                    t = mem_calloc(1, sizeof *t);
                    t->id = id;
                    t->labels = pub;
                    t->discovered = disc;
                    t->url = url;
                    t->health = -1;
                    t->last_error = mem_strdup("");
                    hmap_init(&t->cache);
                    hmap_init(&t->meta);
                    target_metrics(m, t);
                }
                t->seen = true;
                pthread_mutex_lock(&m->mu);
                t->job = j;
                t->sc = sc;
                if (t->interval_ms != iv || t->timeout_ms != to || t->next_ms == 0) {
                    t->interval_ms = iv;
                    t->timeout_ms = to;
                    t->next_ms = first_scrape_time(t, now);
                }
                pthread_mutex_unlock(&m->mu);
                mem_free(t->error_reason);
                t->error_reason = NULL;
                next = mem_grow(next, sizeof *next, n_next + 1, &cap_next);
                next[n_next++] = t;
            }
        }
        if (sc->target_limit && n_next - job_start > sc->target_limit) {
            char msg[128];
            snprintf(msg, sizeof msg,
                     "target_limit exceeded (number of targets: %zu, limit: %" PRIu64 ")",
                     n_next - job_start, sc->target_limit);
            for (size_t k = job_start; k < n_next; k++) {
                mem_free(next[k]->error_reason);
                next[k]->error_reason = mem_strdup(msg);
            }
            log_warn("scrape", "job %s: %s", sc->job_name, msg);
            registry_inc(m->m_target_limit);
        }
        const char *jv[1] = {sc->job_name};
        registry_set(registry_child(m->f_targets, jv), (double)(n_next - job_start));
    }
    m->legacy_names = cfg->global.legacy_name_validation;
    /* Targets no longer present go after the new list is published (the
     * API may be reading the old one until then). */
    target **gone = NULL;
    size_t n_gone = 0, cap_gone = 0;
    for (size_t i = 0; i < m->n_targets; i++) {
        if (!m->targets[i]->seen) {
            gone = mem_grow(gone, sizeof *gone, n_gone + 1, &cap_gone);
            gone[n_gone++] = m->targets[i];
        }
    }
    for (size_t i = 0; i < n_next; i++)
        next[i]->seen = false;
    if (n_next > 1) qsort(next, n_next, sizeof *next, cmp_target);
    pthread_mutex_lock(&m->mu);
    mem_free(m->targets);
    m->targets = next;
    m->n_targets = n_next;
    m->cap_targets = cap_next;
    scrape_dropped old_dropped = m->dropped;
    m->dropped = dropped;
    pthread_mutex_unlock(&m->mu);
    scrape_dropped_cleanup(&old_dropped);
    /* Staleness for all the series of targets no longer present. */
    for (size_t i = 0; i < n_gone; i++) {
        log_info("scrape", "target %s removed", gone[i]->url);
        target_remove(m, gone[i], true);
    }
    mem_free(gone);
    buf_cleanup(&err);
}

/* ---- one scrape ------------------------------------------------------------------ */

typedef struct scrape_result {
    uint64_t scraped;      /* samples in the exposition */
    uint64_t post_relabel; /* samples kept after metric relabeling */
    uint64_t added;        /* new series */
    uint64_t duplicates;
} scrape_result;

/* Unescaped copy of a parser view, owned by the arena. */
static const char *view_str(arena *a, textparse_str s, size_t *len)
{
    if (!s.escaped) {
        *len = s.len;
        return s.p;
    }
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    textparse_unescape(s, false, buf_sink, &b);
    char *r = arena_strndup(a, buf_cstr(&b), b.len);
    *len = b.len;
    buf_cleanup(&b);
    return r ? r : "";
}

/* Checks Prometheus's label limits; appends the error text on violation. */
static int check_label_limits(const config_scrape *sc, const labels *ls, buf *err)
{
    size_t nlen;
    const char *name = labels_metric_name(ls, &nlen);
    int show = nlen > 50 ? 50 : (int)nlen;
    if (sc->label_limit && ls->n > sc->label_limit) {
        buf_printf(err,
                   "label_limit exceeded (metric: %.*s, number of labels: %u, limit: %" PRIu64 ")",
                   show, name, ls->n, sc->label_limit);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < ls->n; i++) {
        const label *l = &ls->v[i];
        if (sc->label_name_length_limit && l->name_len > sc->label_name_length_limit) {
            buf_printf(
                err,
                "label_name_length_limit exceeded (metric: %.*s, label name: %.*s, length: %u, "
                "limit: %" PRIu64 ")",
                show, name, (int)(l->name_len > 50 ? 50 : l->name_len), l->name, l->name_len,
                sc->label_name_length_limit);
            return -EINVAL;
        }
        if (sc->label_value_length_limit && l->value_len > sc->label_value_length_limit) {
            buf_printf(err,
                       "label_value_length_limit exceeded (metric: %.*s, label name: %.*s, value: ",
                       show, name, (int)(l->name_len > 50 ? 50 : l->name_len), l->name);
            expfmt_quote_go(buf_sink, err, l->value, l->value_len > 50 ? 50 : l->value_len);
            buf_printf(err, ", length: %u, limit: %" PRIu64 ")", l->value_len,
                       sc->label_value_length_limit);
            return -EINVAL;
        }
    }
    return 0;
}

/* The exposed name and labels of the text parser's current series, into
 * lb (strings owned by the input or the arena). */
static void text_series_labels(textparse *p, arena *a, labels_builder *lb)
{
    size_t len;
    const char *name = view_str(a, textparse_metric_name(p), &len);
    labels_builder_add(lb, LABELS_METRIC_NAME, 8, name, len);
    size_t n = textparse_label_count(p);
    for (size_t i = 0; i < n; i++) {
        textparse_str ln, lv;
        textparse_label(p, i, &ln, &lv);
        size_t nl, vl;
        const char *nm = view_str(a, ln, &nl);
        char norm[EXPFMT_FLOAT_MAX];
        size_t norm_len;
        const char *v;
        if (textparse_label_normalized(p, i, norm, &norm_len)) {
            v = arena_strndup(a, norm, norm_len);
            vl = norm_len;
        } else {
            v = view_str(a, lv, &vl);
        }
        labels_builder_add(lb, nm, nl, v ? v : "", vl);
    }
}

/* The same for the protobuf parser's current series. */
static void proto_series_labels(protoparse *p, labels_builder *lb)
{
    size_t len;
    const char *name = protoparse_metric_name(p, &len);
    labels_builder_add(lb, LABELS_METRIC_NAME, 8, name, len);
    size_t n = protoparse_label_count(p);
    for (size_t i = 0; i < n; i++) {
        const char *nm, *v;
        size_t nl, vl;
        protoparse_label(p, i, &nm, &nl, &v, &vl);
        labels_builder_add(lb, nm, nl, v, vl);
    }
}

/* Builds the stored labels of a scraped series (mutateSampleLabels and
 * metric relabeling) from the exposed ones in lb (which it cleans up).
 * Returns the new set, NULL when relabeling dropped it, or NULL with err
 * set on an invalid series. */
static labels *sample_labels(scrape_manager *m, target *t, labels_builder *exposed, arena *a,
                             buf *err)
{
    labels_builder lb = *exposed;
    const char *dup = NULL;
    labels *scraped = labels_builder_finish(&lb, &dup);
    if (!scraped) {
        buf_printf(err, "duplicate label name \"%s\" in series", dup);
        labels_builder_cleanup(&lb);
        return NULL;
    }
    labels_builder_from(&lb, scraped);
    const labels *tl = t->labels;
    if (t->sc->honor_labels) {
        for (uint32_t i = 0; i < tl->n; i++) {
            size_t l;
            if (!labels_get(scraped, tl->v[i].name, tl->v[i].name_len, &l))
                labels_builder_set(&lb, tl->v[i].name, tl->v[i].name_len, tl->v[i].value,
                                   tl->v[i].value_len);
        }
    } else {
        /* Clashing exposed labels become exported_<name>, shortest names
         * first (resolveConflictingExposedLabels). */
        const label *conflicts[64];
        size_t nc = 0;
        for (uint32_t i = 0; i < tl->n; i++) {
            size_t l;
            const char *ev = labels_get(scraped, tl->v[i].name, tl->v[i].name_len, &l);
            if (ev && nc < 64) {
                for (uint32_t k = 0; k < scraped->n; k++) {
                    if (scraped->v[k].value == ev) conflicts[nc++] = &scraped->v[k];
                }
            }
            labels_builder_set(&lb, tl->v[i].name, tl->v[i].name_len, tl->v[i].value,
                               tl->v[i].value_len);
        }
        for (size_t i = 1; i < nc; i++) { /* stable sort by name length */
            const label *x = conflicts[i];
            size_t j = i;
            while (j > 0 && conflicts[j - 1]->name_len > x->name_len) {
                conflicts[j] = conflicts[j - 1];
                j--;
            }
            conflicts[j] = x;
        }
        for (size_t i = 0; i < nc; i++) {
            buf nn;
            buf_init(&nn, BUF_UNLIMITED);
            buf_append(&nn, conflicts[i]->name, conflicts[i]->name_len);
            for (;;) {
                char *prefixed = mem_malloc(nn.len + 10);
                memcpy(prefixed, "exported_", 9);
                memcpy(prefixed + 9, buf_cstr(&nn), nn.len + 1);
                buf_reset(&nn);
                buf_puts(&nn, prefixed);
                mem_free(prefixed);
                size_t l;
                if (!labels_builder_get(&lb, nn.data, nn.len, &l)) {
                    char *s = arena_strndup(a, nn.data, nn.len);
                    if (s)
                        labels_builder_set(&lb, s, nn.len, conflicts[i]->value,
                                           conflicts[i]->value_len);
                    break;
                }
            }
            buf_cleanup(&nn);
        }
    }
    bool keep = relabel_apply(t->sc->metric_relabel_configs, t->sc->n_metric_relabel_configs, &lb,
                              a, m->cfg->global.legacy_name_validation);
    labels *res = keep ? labels_builder_finish(&lb, NULL) : NULL;
    labels_builder_cleanup(&lb);
    labels_free(scraped);
    if (res) {
        size_t nl;
        labels_metric_name(res, &nl);
        if (nl == 0) {
            buf_puts(err, "metric name is empty after relabeling");
            labels_free(res);
            return NULL;
        }
        if (check_label_limits(t->sc, res, err) < 0) {
            registry_inc(m->m_label_limit);
            labels_free(res);
            return NULL;
        }
    }
    return res;
}

/* Records HELP/TYPE/UNIT for the store when they changed. */
static void note_metadata(target *t, store_batch *b, textparse_str name, enum expfmt_type type,
                          textparse_str help, textparse_str unit, arena *a)
{
    size_t nl, hl, ul;
    const char *n = view_str(a, name, &nl);
    const char *h = help.p ? view_str(a, help, &hl) : "";
    const char *u = unit.p ? view_str(a, unit, &ul) : "";
    if (!help.p) hl = 0;
    if (!unit.p) ul = 0;
    char *key = mem_strndup(n, nl);
    buf hb;
    buf_init(&hb, BUF_UNLIMITED);
    buf_printf(&hb, "%d|", (int)type);
    buf_append(&hb, h, hl);
    buf_putc(&hb, '|');
    buf_append(&hb, u, ul);
    uint64_t hash = strutil_hash64(hb.data, hb.len, 0);
    uint64_t kh = strutil_hash64(key, nl, 0);
    meta_entry *e = hmap_get(&t->meta, kh, meta_eq, key);
    if (!e || e->hash != hash) {
        if (!e) {
            e = mem_calloc(1, sizeof *e);
            e->name = key;
            key = NULL;
            hmap_put(&t->meta, kh, e);
        }
        e->hash = hash;
        char *hs = mem_strndup(h, hl), *us = mem_strndup(u, ul);
        store_batch_metadata(b, e->name, type, hs, us);
        mem_free(hs);
        mem_free(us);
    }
    mem_free(key);
    buf_cleanup(&hb);
}

/* An exposed exemplar (labels owned by whoever holds the array). */
typedef struct scraped_exemplar {
    labels *ls;
    double v;
    int64_t t;
    bool has_ts;
} scraped_exemplar;

/* One exposed sample of either parser, for append_sample. */
typedef struct exposed_sample {
    const char *key; /* series bytes: equal bytes, same series (per format) */
    size_t key_len;
    int format;
    textparse *tp; /* the parser positioned on it (one of the two) */
    protoparse *pp;
    bool has_ts;
    int64_t ts;
    double v;
    const nhist *h;   /* a native histogram sample, or NULL */
    const labels *ls; /* exposed labels given directly (an NHCB), or NULL */
    bool ex_given;              /* exemplars given directly (an NHCB's): ex, n_ex */
    const scraped_exemplar *ex; /* (else the parser's are read) */
    size_t n_ex;
} exposed_sample;

/* Prometheus's pickSchema: the largest exponential schema whose bucket
 * growth factor is at least f (schema 8 when f is 0 or <= 1). */
static int32_t max_schema_for_factor(double f)
{
    if (f <= 1) f = 1.00271;
    double fl = floor(-log2(log2(f)));
    if (fl >= NHIST_MAX_SCHEMA) return NHIST_MAX_SCHEMA;
    if (fl <= NHIST_MIN_SCHEMA) return NHIST_MIN_SCHEMA;
    return (int32_t)fl;
}

/* Applies native_histogram_min_bucket_factor and native_histogram_bucket_limit
 * to h as Prometheus's maxSchemaAppender and bucketLimitAppender do: lower
 * the resolution down to the schema the factor allows, then while the
 * histogram has more buckets than the limit. Returns 0 with *out set to h or
 * to the reduced copy in *tmp, or -E2BIG ("histogram bucket limit
 * exceeded": a custom-bucket histogram, or schema -4 still over the
 * limit). */
static int limit_histogram(const config_scrape *sc, const nhist *h, nhist *tmp, const nhist **out)
{
    *out = h;
    int32_t max_schema = max_schema_for_factor(sc->native_histogram_min_bucket_factor);
    bool exp = h->schema != NHIST_CUSTOM_SCHEMA;
    bool over_factor = exp && h->schema > max_schema;
    bool over_limit =
        sc->native_histogram_bucket_limit && nhist_bucket_count(h) > sc->native_histogram_bucket_limit;
    if (!over_factor && !over_limit) return 0;
    if (over_limit && !exp) return -E2BIG;
    if (nhist_copy(tmp, h) < 0) return -ENOMEM;
    if (over_factor && nhist_reduce_resolution(tmp, max_schema) < 0) return -EINVAL;
    while (sc->native_histogram_bucket_limit &&
           nhist_bucket_count(tmp) > sc->native_histogram_bucket_limit) {
        if (tmp->schema <= NHIST_MIN_SCHEMA) return -E2BIG;
        if (nhist_reduce_resolution(tmp, tmp->schema - 1) < 0) return -EINVAL;
    }
    *out = tmp;
    return 0;
}

/* Prometheus's exemplar.Compare: by timestamp, value, then labels. */
static int cmp_scraped_exemplar(const void *x, const void *y)
{
    const scraped_exemplar *a = x, *b = y;
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    if (a->v != b->v) return a->v < b->v ? -1 : 1;
    return labels_compare(a->ls, b->ls);
}

/* Appends the exemplars the parser holds for the sample x to *v (labels
 * owned by the array). Exemplars with invalid labels (a repeated name) are
 * left out. */
static void read_exemplars(const exposed_sample *x, arena *a, scraped_exemplar **v, size_t *n,
                           size_t *cap)
{
    size_t total = 0;
    if (x->tp)
        total = textparse_has_exemplar(x->tp) ? 1 : 0;
    else if (x->pp)
        total = protoparse_exemplar_count(x->pp);
    if (total == 0) return;
    labels_builder lb;
    labels_builder_init(&lb);
    for (size_t i = 0; i < total; i++) {
        labels_builder_reset(&lb);
        scraped_exemplar e = {0};
        if (x->tp) {
            size_t nl = textparse_exemplar_label_count(x->tp);
            for (size_t j = 0; j < nl; j++) {
                textparse_str ln, lv;
                textparse_exemplar_label(x->tp, j, &ln, &lv);
                size_t l1, l2;
                const char *n1 = view_str(a, ln, &l1), *v1 = view_str(a, lv, &l2);
                labels_builder_add(&lb, n1, l1, v1, l2);
            }
            e.v = textparse_exemplar_value(x->tp);
            e.has_ts = textparse_exemplar_timestamp(x->tp, &e.t);
        } else {
            size_t nl = protoparse_exemplar_label_count(x->pp, i);
            for (size_t j = 0; j < nl; j++) {
                const char *n1, *v1;
                size_t l1, l2;
                protoparse_exemplar_label(x->pp, i, j, &n1, &l1, &v1, &l2);
                labels_builder_add(&lb, n1, l1, v1, l2);
            }
            protoparse_exemplar(x->pp, i, &e.v, &e.has_ts, &e.t);
        }
        const char *dup = NULL;
        e.ls = labels_builder_finish(&lb, &dup);
        if (!e.ls) continue;
        if (*n == *cap) *v = mem_grow(*v, sizeof **v, *n + 1, cap);
        (*v)[(*n)++] = e;
    }
    labels_builder_cleanup(&lb);
}

static void scraped_exemplars_free(scraped_exemplar *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        labels_free(v[i].ls);
    mem_free(v);
}

/* Adds the exemplars of the sample x (stored as series ref at sts) to the
 * batch, as Prometheus 3.x's scrape loop does: an exemplar without a
 * timestamp gets the sample's timestamp, except on a histogram (native, or
 * an NHCB), where it is dropped; they are sorted (exemplar.Compare) and
 * appended in that order. */
static void append_exemplars(scrape_manager *m, const exposed_sample *x, uint64_t ref, int64_t sts,
                             store_batch *b, arena *a)
{
    if (!store_exemplars_enabled(m->st)) return;
    scraped_exemplar *own = NULL;
    size_t n = 0, cap = 0;
    const scraped_exemplar *src = x->ex;
    if (x->ex_given) {
        n = x->n_ex;
    } else {
        read_exemplars(x, a, &own, &n, &cap);
        src = own;
    }
    if (n == 0) return;
    scraped_exemplar *use = mem_malloc(n * sizeof *use);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!src[i].has_ts && x->h) continue;
        use[k] = src[i];
        if (!src[i].has_ts) use[k].t = sts;
        k++;
    }
    if (k > 1) qsort(use, k, sizeof *use, cmp_scraped_exemplar);
    for (size_t i = 0; i < k; i++)
        store_batch_add_exemplar(b, ref, use[i].t, use[i].v, use[i].ls);
    mem_free(use);
    if (own) scraped_exemplars_free(own, n);
}

/* Looks a sample's series up (creating its entry and store series when
 * new) and adds the sample to the batch. Returns 0, or -EINVAL with the
 * reason in err (the scrape then fails). */
static int append_sample(scrape_manager *m, target *t, const exposed_sample *x, int64_t ts,
                         store_batch *b, scrape_result *res, arena *a, buf *err)
{
    res->scraped++;
    key_view k = {x->key, x->key_len, x->format};
    uint64_t h = strutil_hash64(x->key, x->key_len, (uint64_t)x->format);
    series_entry *se = hmap_get(&t->cache, h, entry_eq, &k);
    if (se && se->seen_iter == t->iter) {
        res->duplicates++;
        return 0;
    }
    if (!se) {
        labels_builder lb;
        labels_builder_init(&lb);
        if (x->ls)
            labels_builder_from(&lb, x->ls);
        else if (x->tp)
            text_series_labels(x->tp, a, &lb);
        else
            proto_series_labels(x->pp, &lb);
        labels *ls = sample_labels(m, t, &lb, a, err);
        if (!ls && err->len) return -EINVAL;
        se = mem_calloc(1, sizeof *se);
        se->key = mem_strndup(x->key, x->key_len);
        se->key_len = x->key_len;
        se->format = x->format;
        if (ls) {
            bool created = false;
            if (store_series_ref(m->st, ls, &se->ref, &created) < 0) se->ref = 0;
            (void)created;
            res->added++;
            labels_free(ls);
        }
        hmap_put(&t->cache, h, se);
    }
    se->seen_iter = t->iter;
    if (!se->ref) return 0;
    res->post_relabel++;
    if (t->sc->sample_limit && res->post_relabel > t->sc->sample_limit) {
        buf_puts(err, "sample limit exceeded");
        registry_inc(m->m_sample_limit);
        return -EINVAL;
    }
    int64_t sts = ts;
    se->explicit_ts = false;
    if (x->has_ts && t->sc->honor_timestamps) {
        sts = x->ts;
        se->explicit_ts = !t->sc->track_timestamps_staleness;
    }
    if (!x->h) {
        store_batch_add(b, se->ref, sts, x->v);
        append_exemplars(m, x, se->ref, sts, b, a);
        return 0;
    }
    nhist tmp;
    nhist_init(&tmp);
    const nhist *hh;
    int rc = limit_histogram(t->sc, x->h, &tmp, &hh);
    if (rc == 0) {
        store_batch_add_histogram(b, se->ref, sts, hh);
        append_exemplars(m, x, se->ref, sts, b, a);
    } else if (rc == -E2BIG) {
        buf_puts(err, "histogram bucket limit exceeded");
        registry_inc(m->m_bucket_limit);
        rc = -EINVAL;
    } else {
        buf_puts(err, "could not lower the resolution of a native histogram");
        rc = -EINVAL;
    }
    nhist_cleanup(&tmp);
    return rc;
}

/* ---- convert_classic_histograms_to_nhcb --------------------------------------------
 *
 * As Prometheus's NHCBParser wraps a parser: the series of a classic
 * histogram (a family of type histogram: name_bucket{le}, name_count,
 * name_sum with the same other labels, one after the other) are collected
 * and, when the next entry belongs to something else, turned into one
 * native histogram with custom buckets named after the family (nhcb.h).
 * The classic series are only stored too with
 * always_scrape_classic_histograms. A classic histogram that follows a
 * native one of the same name and labels is not converted. One whose
 * counts do not convert (not cumulative, count mismatch) keeps its classic
 * series, which are held until then: Prometheus drops them, sidewatch
 * loses nothing (logged at debug level). */

enum { NHCB_START, NHCB_COLLECTING, NHCB_INHIBITING };

/* A classic series held back while its histogram is collected. */
typedef struct nhcb_held {
    char *key;
    size_t key_len;
    int format;
    labels *ls;
    double v;
    bool has_ts;
    int64_t ts;
} nhcb_held;

typedef struct nhcb_state {
    bool on, keep_classic;
    enum expfmt_type typ; /* of the family in force */
    buf fam;              /* its name */
    int state;
    buf last_name;      /* base name being collected or inhibited */
    uint64_t last_hash; /* hash of its labels without __name__ and le */
    labels *base;       /* collected: exposed labels, __name__ = base, no le */
    bool has_ts;
    int64_t ts;
    nhcb c;
    nhcb_held *held; /* when classic series are not kept */
    size_t n_held, cap_held;
    scraped_exemplar *ex; /* the buckets' exemplars, for the NHCB (as Prometheus's
                           * NHCBParser collects them) */
    size_t n_ex, cap_ex;
} nhcb_state;

static void nhcb_drop_held(nhcb_state *st)
{
    for (size_t i = 0; i < st->n_held; i++) {
        mem_free(st->held[i].key);
        labels_free(st->held[i].ls);
    }
    st->n_held = 0;
}

static void nhcb_state_init(nhcb_state *st, const config_scrape *sc)
{
    memset(st, 0, sizeof *st);
    st->on = sc->convert_classic_histograms_to_nhcb;
    st->keep_classic = sc->always_scrape_classic_histograms;
    buf_init(&st->fam, BUF_UNLIMITED);
    buf_init(&st->last_name, BUF_UNLIMITED);
    nhcb_init(&st->c);
}

static void nhcb_state_cleanup(nhcb_state *st)
{
    buf_cleanup(&st->fam);
    buf_cleanup(&st->last_name);
    labels_free(st->base);
    nhcb_cleanup(&st->c);
    nhcb_drop_held(st);
    mem_free(st->held);
    scraped_exemplars_free(st->ex, st->n_ex);
}

/* Hash of a label set without __name__ and le (HashWithoutLabels). */
static uint64_t hash_without_le(const labels *ls)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (uint32_t i = 0; i < ls->n; i++) {
        const label *l = &ls->v[i];
        if ((l->name_len == 8 && memcmp(l->name, LABELS_METRIC_NAME, 8) == 0) ||
            (l->name_len == 2 && memcmp(l->name, "le", 2) == 0))
            continue;
        h = strutil_hash64(l->name, l->name_len, h);
        h = strutil_hash64("\xff", 1, h);
        h = strutil_hash64(l->value, l->value_len, h);
        h = strutil_hash64("\xff", 1, h);
    }
    return h;
}

/* The exposed labels of the sample (NULL if they repeat a name). */
static labels *exposed_labels(const exposed_sample *x, arena *a)
{
    labels_builder lb;
    labels_builder_init(&lb);
    if (x->tp)
        text_series_labels(x->tp, a, &lb);
    else
        proto_series_labels(x->pp, &lb);
    labels *ls = labels_builder_finish(&lb, NULL);
    labels_builder_cleanup(&lb);
    return ls;
}

/* Base name and suffix kind (1 _bucket, 2 _sum, 3 _count, 0 none). */
static int hist_suffix(const char *name, size_t len, size_t *base_len)
{
    static const struct {
        const char *s;
        size_t n;
        int kind;
    } sfx[] = {{"_bucket", 7, 1}, {"_sum", 4, 2}, {"_count", 6, 3}};
    for (size_t i = 0; i < 3; i++) {
        if (len >= sfx[i].n && memcmp(name + len - sfx[i].n, sfx[i].s, sfx[i].n) == 0) {
            *base_len = len - sfx[i].n;
            return sfx[i].kind;
        }
    }
    *base_len = len;
    return 0;
}

static bool nhcb_different(nhcb_state *st, const labels *ls)
{
    if (st->typ != EXPFMT_HISTOGRAM || !ls) return true;
    size_t nl, bl;
    const char *name = labels_metric_name(ls, &nl);
    hist_suffix(name, nl, &bl);
    if (bl != st->last_name.len || memcmp(name, buf_cstr(&st->last_name), bl) != 0) return true;
    return hash_without_le(ls) != st->last_hash;
}

/* Emits what was collected, if it converts. Returns 0 or the append's
 * error. */
static int nhcb_emit(scrape_manager *m, target *t, nhcb_state *st, int64_t ts, store_batch *b,
                     scrape_result *res, arena *a, buf *err)
{
    if (st->state != NHCB_COLLECTING) return 0;
    st->state = NHCB_START;
    nhist h;
    nhist_init(&h);
    int rc = 0;
    if (nhcb_convert(&st->c, &h) == 0) {
        buf key;
        buf_init(&key, BUF_UNLIMITED);
        labels_encode(st->base, &key);
        exposed_sample x = {.key = buf_cstr(&key), .key_len = key.len, .format = SCRAPE_FMT_NHCB,
                            .has_ts = st->has_ts, .ts = st->ts, .h = &h, .ls = st->base,
                            .ex_given = true, .ex = st->ex, .n_ex = st->n_ex};
        rc = append_sample(m, t, &x, ts, b, res, a, err);
        buf_cleanup(&key);
        nhcb_drop_held(st);
    } else {
        log_debug("scrape", "%s: classic histogram not converted to NHCB: %s", t->url, st->c.msg);
        for (size_t i = 0; i < st->n_held && rc == 0; i++) {
            nhcb_held *hd = &st->held[i];
            exposed_sample x = {.key = hd->key, .key_len = hd->key_len, .format = hd->format,
                                .has_ts = hd->has_ts, .ts = hd->ts, .v = hd->v, .ls = hd->ls};
            rc = append_sample(m, t, &x, ts, b, res, a, err);
        }
        nhcb_drop_held(st);
    }
    nhist_cleanup(&h);
    nhcb_reset(&st->c);
    labels_free(st->base);
    st->base = NULL;
    for (size_t i = 0; i < st->n_ex; i++)
        labels_free(st->ex[i].ls);
    st->n_ex = 0;
    return rc;
}

/* A metadata entry (TYPE, HELP, UNIT, a protobuf family): ends a
 * collection; type is the new type when the entry sets one (name its
 * family), else NULL. */
static int nhcb_meta(scrape_manager *m, target *t, nhcb_state *st, const enum expfmt_type *type,
                     const char *name, size_t name_len, int64_t ts, store_batch *b,
                     scrape_result *res, arena *a, buf *err)
{
    if (type) {
        st->typ = *type;
        buf_reset(&st->fam);
        buf_append(&st->fam, name, name_len);
    }
    return nhcb_emit(m, t, st, ts, b, res, a, err);
}

/* A float sample: collects it when it belongs to a classic histogram.
 * Returns 1 when the sample must not be stored itself (converted, and
 * classic series not kept), 0 to store it, or a negative error. */
static int nhcb_series(scrape_manager *m, target *t, nhcb_state *st, const exposed_sample *x,
                       int64_t ts, store_batch *b, scrape_result *res, arena *a, buf *err)
{
    labels *ls = st->typ == EXPFMT_HISTOGRAM ? exposed_labels(x, a) : NULL;
    int rc = 0;
    if (st->state == NHCB_COLLECTING && nhcb_different(st, ls))
        rc = nhcb_emit(m, t, st, ts, b, res, a, err);
    if (rc < 0) goto out;
    if (st->state == NHCB_INHIBITING) {
        if (!nhcb_different(st, ls)) goto out;
        st->state = NHCB_START;
    }
    if (st->typ != EXPFMT_HISTOGRAM || !ls) goto out;
    size_t nl, bl;
    const char *name = labels_metric_name(ls, &nl);
    int kind = hist_suffix(name, nl, &bl);
    if (kind == 0 || bl != st->fam.len || memcmp(name, buf_cstr(&st->fam), bl) != 0) goto out;
    double le = 0;
    if (kind == 1) {
        size_t vl;
        const char *v = labels_get(ls, "le", 2, &vl);
        if (!v || expfmt_parse_float(v, vl, &le) < 0 || isnan(le)) goto out;
    }
    if (st->state != NHCB_COLLECTING) {
        buf_reset(&st->last_name);
        buf_append(&st->last_name, name, bl);
        st->last_hash = hash_without_le(ls);
        labels_builder lb;
        labels_builder_init(&lb);
        labels_builder_from(&lb, ls);
        labels_builder_set(&lb, LABELS_METRIC_NAME, 8, name, bl);
        labels_builder_del(&lb, "le", 2);
        labels_free(st->base);
        st->base = labels_builder_finish(&lb, NULL);
        labels_builder_cleanup(&lb);
        st->has_ts = x->has_ts;
        st->ts = x->ts;
        st->state = NHCB_COLLECTING;
    }
    if (kind == 1 && store_exemplars_enabled(m->st))
        read_exemplars(x, a, &st->ex, &st->n_ex, &st->cap_ex);
    if (kind == 1)
        nhcb_set_bucket(&st->c, le, x->v);
    else if (kind == 2)
        nhcb_set_sum(&st->c, x->v);
    else
        nhcb_set_count(&st->c, x->v);
    rc = st->keep_classic ? 0 : 1;
    if (rc == 1) {
        st->held = mem_grow(st->held, sizeof *st->held, st->n_held + 1, &st->cap_held);
        st->held[st->n_held++] = (nhcb_held){mem_strndup(x->key, x->key_len), x->key_len,
                                             x->format, ls, x->v, x->has_ts, x->ts};
        ls = NULL;
    }
out:
    labels_free(ls);
    return rc;
}

/* A native histogram: classic series of the same name and labels that
 * follow it are not converted. */
static int nhcb_native(scrape_manager *m, target *t, nhcb_state *st, const exposed_sample *x,
                       int64_t ts, store_batch *b, scrape_result *res, arena *a, buf *err)
{
    int rc = nhcb_emit(m, t, st, ts, b, res, a, err);
    labels *ls = exposed_labels(x, a);
    if (ls) {
        size_t nl;
        const char *name = labels_metric_name(ls, &nl);
        buf_reset(&st->last_name);
        buf_append(&st->last_name, name, nl);
        st->last_hash = hash_without_le(ls);
        st->state = NHCB_INHIBITING;
        labels_free(ls);
    }
    return rc;
}

/* Parses a text or OpenMetrics body and appends its samples. Returns 0, or
 * -EINVAL with the reason in err (the caller then discards the batch). */
static int append_text_body(scrape_manager *m, target *t, const char *body, size_t len,
                            enum textparse_format fmt, int64_t ts, store_batch *b,
                            scrape_result *res, buf *err)
{
    textparse p;
    textparse_init(&p, fmt, body, len);
    arena a;
    arena_init(&a, SCRAPE_SCRATCH_LIMIT);
    int rc = 0;
    /* Metadata of the family being read (HELP/TYPE/UNIT lines). */
    textparse_str mname = {0}, mhelp = {0}, munit = {0};
    enum expfmt_type mtype = EXPFMT_UNKNOWN;
    bool mpending = false;
    nhcb_state nst;
    nhcb_state_init(&nst, t->sc);

    for (;;) {
        enum textparse_entry e = textparse_next(&p);
        if (e == TEXTPARSE_END) break;
        if (e == TEXTPARSE_ERROR) {
            buf_printf(err, "%s (line %zu, column %zu)", textparse_error(&p),
                       textparse_error_line(&p), textparse_error_column(&p));
            rc = -EINVAL;
            break;
        }
        if (e == TEXTPARSE_HELP || e == TEXTPARSE_TYPE || e == TEXTPARSE_UNIT) {
            textparse_str name = textparse_meta_name(&p);
            if (mpending && (name.len != mname.len || memcmp(name.p, mname.p, name.len) != 0)) {
                note_metadata(t, b, mname, mtype, mhelp, munit, &a);
                mhelp = munit = (textparse_str){0};
                mtype = EXPFMT_UNKNOWN;
            }
            mname = name;
            mpending = true;
            if (e == TEXTPARSE_HELP) mhelp = textparse_meta_text(&p);
            if (e == TEXTPARSE_UNIT) munit = textparse_meta_text(&p);
            if (e == TEXTPARSE_TYPE) mtype = textparse_meta_type(&p);
            if (nst.on) {
                size_t nl;
                const char *n = view_str(&a, name, &nl);
                enum expfmt_type ty = mtype;
                rc = nhcb_meta(m, t, &nst, e == TEXTPARSE_TYPE ? &ty : NULL, n, nl, ts, b, res,
                               &a, err);
                if (rc < 0) break;
            }
            continue;
        }
        if (e != TEXTPARSE_SERIES) continue;
        textparse_str s = textparse_series(&p);
        exposed_sample x = {.key = s.p, .key_len = s.len, .format = (int)fmt, .tp = &p};
        x.has_ts = textparse_timestamp(&p, &x.ts);
        x.v = textparse_value(&p);
        if (nst.on) {
            rc = nhcb_series(m, t, &nst, &x, ts, b, res, &a, err);
            if (rc < 0) break;
            if (rc == 1) {
                rc = 0;
                continue;
            }
        }
        rc = append_sample(m, t, &x, ts, b, res, &a, err);
        if (rc < 0) break;
        if (a.used > 1024 * 1024) { /* scratch of finished series */
            arena_cleanup(&a);
            arena_init(&a, SCRAPE_SCRATCH_LIMIT);
        }
    }
    if (rc == 0 && nst.on) rc = nhcb_emit(m, t, &nst, ts, b, res, &a, err);
    if (rc == 0 && mpending) note_metadata(t, b, mname, mtype, mhelp, munit, &a);
    nhcb_state_cleanup(&nst);
    textparse_cleanup(&p);
    arena_cleanup(&a);
    return rc;
}

/* Parses a protobuf body (delimited MetricFamily messages) and appends its
 * samples, native histograms included when the job scrapes them. */
static int append_proto_body(scrape_manager *m, target *t, const char *body, size_t len,
                             int64_t ts, store_batch *b, scrape_result *res, buf *err)
{
    protoparse_options o = {
        .ignore_native_histograms = !t->sc->scrape_native_histograms,
        .keep_classic_histograms = t->sc->always_scrape_classic_histograms,
    };
    protoparse *p = NULL;
    if (protoparse_new(&p, (const uint8_t *)body, len, &o) < 0) {
        buf_puts(err, "out of memory");
        return -EINVAL;
    }
    arena a;
    arena_init(&a, SCRAPE_SCRATCH_LIMIT);
    int rc = 0;
    nhcb_state nst;
    nhcb_state_init(&nst, t->sc);
    for (;;) {
        enum protoparse_entry e = protoparse_next(p);
        if (e == PROTOPARSE_END) break;
        if (e == PROTOPARSE_ERROR) {
            buf_puts(err, protoparse_error(p));
            rc = -EINVAL;
            break;
        }
        if (e == PROTOPARSE_FAMILY) {
            const char *n, *h, *u;
            size_t nl, hl, ul;
            enum expfmt_type type;
            protoparse_family(p, &n, &nl, &h, &hl, &u, &ul, &type);
            note_metadata(t, b, (textparse_str){n, nl, false}, type,
                          (textparse_str){h ? h : "", h ? hl : 0, false},
                          (textparse_str){u ? u : "", u ? ul : 0, false}, &a);
            if (nst.on) {
                rc = nhcb_meta(m, t, &nst, &type, n, nl, ts, b, res, &a, err);
                if (rc < 0) break;
            }
            continue;
        }
        exposed_sample x = {.format = SCRAPE_FMT_PROTOBUF, .pp = p};
        x.key = protoparse_series_key(p, &x.key_len);
        x.has_ts = protoparse_timestamp(p, &x.ts);
        if (e == PROTOPARSE_HISTOGRAM)
            x.h = protoparse_histogram(p);
        else
            x.v = protoparse_value(p);
        if (nst.on) {
            rc = x.h ? nhcb_native(m, t, &nst, &x, ts, b, res, &a, err)
                     : nhcb_series(m, t, &nst, &x, ts, b, res, &a, err);
            if (rc < 0) break;
            if (rc == 1) {
                rc = 0;
                continue;
            }
        }
        rc = append_sample(m, t, &x, ts, b, res, &a, err);
        if (rc < 0) break;
        if (a.used > 1024 * 1024) {
            arena_cleanup(&a);
            arena_init(&a, SCRAPE_SCRATCH_LIMIT);
        }
    }
    if (rc == 0 && nst.on) rc = nhcb_emit(m, t, &nst, ts, b, res, &a, err);
    nhcb_state_cleanup(&nst);
    protoparse_free(p);
    arena_cleanup(&a);
    return rc;
}

/* After a successful parse: mark series seen in this scrape live, write
 * staleness markers for live series that are gone, forget old ones. */
static void finish_series(target *t, store_batch *b, int64_t ts)
{
    double stale = strutil_stale_nan();
    size_t it = 0;
    void *v;
    while (hmap_next(&t->cache, &it, &v)) {
        series_entry *e = v;
        if (e->seen_iter == t->iter) {
            e->live = true;
            continue;
        }
        if (e->live) {
            if (e->ref && !e->explicit_ts) store_batch_add(b, e->ref, ts, stale);
            e->live = false;
        }
        if (t->iter - e->seen_iter > SCRAPE_CACHE_EVICT_ITERATIONS) {
            key_view k = {e->key, e->key_len, e->format};
            hmap_del(&t->cache, strutil_hash64(e->key, e->key_len, (uint64_t)e->format), entry_eq,
                     &k);
            mem_free(e->key);
            mem_free(e);
        }
    }
}

static void append_report(scrape_manager *m, target *t, store_batch *b, int64_t ts, bool up,
                          double duration, const scrape_result *r)
{
    for (int i = 0; i < REPORT_COUNT; i++) {
        if (!t->report_refs[i]) {
            labels *ls = report_labels(t, report_names[i]);
            bool created;
            if (store_series_ref(m->st, ls, &t->report_refs[i], &created) < 0)
                t->report_refs[i] = 0;
            labels_free(ls);
        }
    }
    double vals[REPORT_COUNT] = {up ? 1 : 0, duration, (double)r->scraped, (double)r->post_relabel,
                                 (double)r->added};
    for (int i = 0; i < REPORT_COUNT; i++) {
        if (t->report_refs[i]) store_batch_add(b, t->report_refs[i], ts, vals[i]);
    }
    t->report_live = true;
}

/* Records a scrape's outcome (under mu: the API reads these). */
static void set_result(scrape_manager *m, target *t, bool up, const char *error, int64_t ts,
                       double duration)
{
    if (!up && strcmp(t->last_error, error) != 0)
        log_warn("scrape", "scrape of %s failed: %s", t->url, error);
    else if (up && t->health == 0)
        log_info("scrape", "scrape of %s recovered", t->url);
    char *next = mem_strdup(up ? "" : error);
    pthread_mutex_lock(&m->mu);
    char *old = t->last_error;
    t->health = up ? 1 : 0;
    t->last_error = next;
    t->last_scrape_ms = ts;
    t->last_duration = duration;
    pthread_mutex_unlock(&m->mu);
    mem_free(old);
}

typedef struct scrape_ctx {
    scrape_manager *m;
    target *t;
} scrape_ctx;

static void on_scrape_done(void *ctx, const httpc_response *r)
{
    scrape_ctx *sc_ctx = ctx;
    scrape_manager *m = sc_ctx->m;
    target *t = sc_ctx->t;
    mem_free(sc_ctx);
    t->inflight = NULL;
    if (r->result == HTTPC_ERR_CANCELLED) return;

    int64_t ts = t->scrape_start_ms;
    double duration = r->seconds;
    buf err;
    buf_init(&err, 4096);
    scrape_result res = {0};
    t->iter++;
    store_batch *b = store_batch_new(m->st);
    int rc = -EINVAL;

    if (r->result == HTTPC_ERR_TOO_LARGE) {
        /* Prometheus's message for body_size_limit; the hard cap says so. */
        if (t->sc->body_size_limit > 0 && (uint64_t)t->sc->body_size_limit <= m->max_body_bytes)
            buf_puts(&err, "body size limit exceeded");
        else
            buf_printf(&err, "body size limit exceeded (--scrape.max-body-bytes=%zu)",
                       m->max_body_bytes);
        registry_inc(m->m_body_limit);
    } else if (r->result == HTTPC_ERR_TIMEOUT) {
        buf_printf(&err, "Get \"%s\": context deadline exceeded", t->url);
    } else if (r->result != HTTPC_OK) {
        buf_printf(&err, "Get \"%s\": %s", t->url, r->error ? r->error : "transfer failed");
    } else if (r->status != 200) {
        buf_printf(&err, "server returned HTTP status %ld", r->status);
    } else {
        enum textparse_format fmt = TEXTPARSE_PROMETHEUS;
        bool proto = false;
        const config_scrape *sc = t->sc;
        if (r->content_type && protoparse_is_content_type(r->content_type)) {
            proto = true;
            rc = 0;
        } else if (textparse_format_from_content_type(r->content_type, &fmt) < 0) {
            if (sc->has_fallback_protocol) {
                proto = sc->fallback_scrape_protocol == CONFIG_PROTO_PROMETHEUS_PROTO;
                fmt = (sc->fallback_scrape_protocol == CONFIG_PROTO_OPENMETRICS_1_0_0 ||
                       sc->fallback_scrape_protocol == CONFIG_PROTO_OPENMETRICS_0_0_1)
                          ? TEXTPARSE_OPENMETRICS
                          : TEXTPARSE_PROMETHEUS;
                rc = 0;
            } else {
                buf_printf(&err,
                           "received unsupported Content-Type \"%s\" and no "
                           "fallback_scrape_protocol specified for target",
                           r->content_type);
            }
        } else {
            rc = 0;
        }
        if (rc == 0) {
            rc = proto ? append_proto_body(m, t, r->body, r->body_len, ts, b, &res, &err)
                       : append_text_body(m, t, r->body, r->body_len, fmt, ts, b, &res, &err);
            if (res.duplicates) registry_add(m->m_duplicates, (double)res.duplicates);
        }
    }
    if (rc == 0 && t->error_reason) {
        rc = -EINVAL;
        buf_reset(&err);
        buf_puts(&err, t->error_reason);
    }
    if (rc == 0) {
        finish_series(t, b, ts);
        append_report(m, t, b, ts, true, duration, &res);
    } else {
        /* Nothing of a failed scrape is kept but its report and the
         * staleness of what the previous scrape had. */
        store_batch_free(b);
        b = store_batch_new(m->st);
        stale_all(t, b, ts, false);
        scrape_result none = {0};
        append_report(m, t, b, ts, false, duration, &none);
    }
    if (store_batch_commit(b) < 0) {
        log_error("scrape", "could not store the scrape of %s", t->url);
    }
    set_result(m, t, rc == 0, buf_cstr(&err), ts, duration);
    registry_set(t->m_up, rc == 0 ? 1 : 0);
    registry_set(t->m_duration, duration);
    registry_set(t->m_samples, (double)res.scraped);
    registry_inc(t->m_scrapes);
    if (rc != 0) registry_inc(t->m_failures);
    buf_cleanup(&err);
}

size_t scrape_body_limit(int64_t body_size_limit, size_t max_body_bytes)
{
    /* As Prometheus, a body of body_size_limit bytes is already too large
     * (httpc cannot express "nothing": a limit of 1 allows one byte). */
    if (body_size_limit > 0 && (uint64_t)body_size_limit - 1 < max_body_bytes)
        return body_size_limit > 1 ? (size_t)body_size_limit - 1 : 1;
    return max_body_bytes;
}

static void start_scrape(scrape_manager *m, target *t, int64_t now)
{
    const config_scrape *sc = t->sc;
    buf accept;
    buf_init(&accept, BUF_UNLIMITED);
    scrape_accept_header(sc->scrape_protocols, sc->n_scrape_protocols, &accept);
    char accept_h[1024], timeout_h[96], auth_h[4096];
    snprintf(accept_h, sizeof accept_h, "Accept: %s", buf_cstr(&accept));
    buf_cleanup(&accept);
    double tsec = (double)t->timeout_ms / 1000.0;
    char num[EXPFMT_FLOAT_MAX];
    expfmt_format_float(tsec, num);
    snprintf(timeout_h, sizeof timeout_h, "X-Prometheus-Scrape-Timeout-Seconds: %s", num);
    const char *headers[4] = {accept_h, timeout_h, NULL, NULL};

    const config_http_client *hc = &sc->http;
    char *cred = NULL, *user = NULL, *pass = NULL;
    if (hc->has_authorization) {
        cred = config_read_secret(&hc->authorization_credentials);
        snprintf(auth_h, sizeof auth_h, "Authorization: %s %s",
                 hc->authorization_type ? hc->authorization_type : "Bearer", cred ? cred : "");
        headers[2] = auth_h;
    }
    if (hc->has_basic_auth) {
        user = hc->basic_auth_username_file
                   ? config_read_secret(&(config_secret){NULL, hc->basic_auth_username_file})
                   : mem_strdup(hc->basic_auth_username ? hc->basic_auth_username : "");
        pass = config_read_secret(&hc->basic_auth_password);
    }
    httpc_request req = {
        .url = t->url,
        .headers = headers,
        .gzip = sc->enable_compression,
        .timeout_ms = t->timeout_ms,
        .body_limit = scrape_body_limit(sc->body_size_limit, m->max_body_bytes),
        .basic_user = user,
        .basic_password = pass,
        .tls_ca_file = hc->tls_ca_file,
        .tls_cert_file = hc->tls_cert_file,
        .tls_key_file = hc->tls_key_file,
        .tls_server_name = hc->tls_server_name,
        .tls_insecure_skip_verify = hc->tls_insecure_skip_verify,
        .follow_redirects = hc->follow_redirects,
    };
    scrape_ctx *ctx = mem_malloc(sizeof *ctx);
    ctx->m = m;
    ctx->t = t;
    t->scrape_start_ms = now;
    if (httpc_start(m->http, &req, on_scrape_done, ctx, &t->inflight) < 0) {
        mem_free(ctx);
        t->inflight = NULL;
        log_error("scrape", "could not start the scrape of %s", t->url);
    }
    if (cred) {
        memset(cred, 0, strlen(cred));
        mem_free(cred);
    }
    if (pass) {
        memset(pass, 0, strlen(pass));
        mem_free(pass);
    }
    mem_free(user);
    memset(auth_h, 0, sizeof auth_h);
}

/* ---- the thread -------------------------------------------------------------------- */

static void apply_config(scrape_manager *m, config *cfg)
{
    config *old = m->cfg;
    m->cfg = cfg;
    discovery_apply(m->disc, cfg);
    rebuild_targets(m);
    config_unref(old);
}

static void *scrape_thread(void *arg)
{
    scrape_manager *m = arg;
    while (!atomic_load(&m->stop)) {
        pthread_mutex_lock(&m->mu);
        config *pending = m->pending;
        m->pending = NULL;
        pthread_mutex_unlock(&m->mu);
        if (pending) apply_config(m, pending);

        int64_t now = now_ms();
        if (discovery_refresh(m->disc, now)) rebuild_targets(m);

        int64_t wait = SCRAPE_MAX_POLL_MS;
        for (size_t i = 0; i < m->n_targets; i++) {
            target *t = m->targets[i];
            if (t->next_ms <= now) {
                /* As Prometheus: a scrape that starts within the tolerance
                 * (2 ms, at most 1% of the interval) of its schedule is
                 * stamped with the scheduled time, so timestamps stay
                 * regular and compress to one bit each. */
                int64_t tol = t->interval_ms / 100 < SCRAPE_TIMESTAMP_TOLERANCE_MS
                                  ? t->interval_ms / 100
                                  : SCRAPE_TIMESTAMP_TOLERANCE_MS;
                int64_t stamp = now - t->next_ms <= tol ? t->next_ms : now;
                if (!t->inflight) start_scrape(m, t, stamp);
                /* Keep the phase; skip intervals that were missed. */
                while (t->next_ms <= now)
                    t->next_ms += t->interval_ms;
            }
            if (t->next_ms - now < wait) wait = t->next_ms - now;
        }
        if (wait < 0) wait = 0;
        httpc_poll(m->http, (int)wait, discovery_fd(m->disc));
    }
    /* Cancel what is running; finished scrapes were committed already. */
    for (size_t i = 0; i < m->n_targets; i++)
        cancel_inflight(m, m->targets[i]);
    return NULL;
}

scrape_manager *scrape_manager_new(store *st, registry *reg)
{
    scrape_manager *m = mem_calloc(1, sizeof *m);
    m->st = st;
    m->reg = reg;
    m->max_body_bytes = SCRAPE_DEFAULT_MAX_BODY_BYTES;
    pthread_mutex_init(&m->mu, NULL);
    m->http = httpc_new();
    m->disc = discovery_new(reg);
    if (!m->http || !m->disc) {
        scrape_manager_free(m);
        return NULL;
    }
    static const char *const tl[] = {"job", "instance", NULL};
    static const char *const jl[] = {"job", NULL};
    m->f_up =
        registry_gauge(reg, "sidewatch_scrape_target_up",
                       "Whether the last scrape of the target succeeded (1) or failed (0).", tl);
    m->f_duration = registry_gauge(reg, "sidewatch_scrape_target_duration_seconds",
                                   "Duration of the last scrape of the target.", tl);
    m->f_samples = registry_gauge(reg, "sidewatch_scrape_target_samples",
                                  "Samples exposed by the target in its last scrape.", tl);
    m->f_scrapes = registry_counter(reg, "sidewatch_scrape_target_scrapes_total",
                                    "Scrapes of the target.", tl);
    m->f_failures = registry_counter(reg, "sidewatch_scrape_target_failures_total",
                                     "Failed scrapes of the target.", tl);
    m->f_targets = registry_gauge(reg, "sidewatch_scrape_pool_targets",
                                  "Current number of targets in the scrape pool.", jl);
    m->m_sample_limit = registry_child(
        registry_counter(reg, "sidewatch_scrapes_exceeded_sample_limit_total",
                         "Scrapes that failed because sample_limit was exceeded.", NULL),
        NULL);
    m->m_body_limit = registry_child(
        registry_counter(reg, "sidewatch_scrapes_exceeded_body_size_limit_total",
                         "Scrapes that failed because body_size_limit was exceeded.", NULL),
        NULL);
    m->m_duplicates = registry_child(
        registry_counter(reg, "sidewatch_scrapes_sample_duplicate_total",
                         "Samples dropped because a series appeared twice in one scrape.", NULL),
        NULL);
    m->m_label_limit = registry_child(
        registry_counter(reg, "sidewatch_scrapes_exceeded_label_limits_total",
                         "Scrapes that failed because label_limit, label_name_length_limit or "
                         "label_value_length_limit was exceeded.",
                         NULL),
        NULL);
    m->m_target_limit = registry_child(
        registry_counter(reg, "sidewatch_scrape_pool_exceeded_target_limit_total",
                         "Target set updates where a scrape pool had more targets than its "
                         "target_limit (all its targets then fail).",
                         NULL),
        NULL);
    m->m_bucket_limit = registry_child(
        registry_counter(reg, "sidewatch_scrapes_exceeded_bucket_limit_total",
                         "Scrapes that failed because native_histogram_bucket_limit was exceeded.",
                         NULL),
        NULL);
    return m;
}

void scrape_manager_set_max_body_bytes(scrape_manager *m, size_t bytes)
{
    m->max_body_bytes = bytes ? bytes : SCRAPE_DEFAULT_MAX_BODY_BYTES;
}

int scrape_manager_start(scrape_manager *m, config *cfg)
{
    m->cfg = config_ref(cfg);
    discovery_apply(m->disc, cfg);
    rebuild_targets(m);
    atomic_store(&m->stop, false);
    if (pthread_create(&m->thread, NULL, scrape_thread, m) != 0) return -errno;
    m->running = true;
    return 0;
}

void scrape_manager_reload(scrape_manager *m, config *cfg)
{
    pthread_mutex_lock(&m->mu);
    config_unref(m->pending);
    m->pending = config_ref(cfg);
    pthread_mutex_unlock(&m->mu);
    httpc_wakeup(m->http);
}

void scrape_manager_stop(scrape_manager *m)
{
    if (!m->running) return;
    atomic_store(&m->stop, true);
    httpc_wakeup(m->http);
    pthread_join(m->thread, NULL);
    m->running = false;
}

void scrape_manager_free(scrape_manager *m)
{
    if (!m) return;
    scrape_manager_stop(m);
    for (size_t i = 0; i < m->n_targets; i++) {
        target_metrics_remove(m, m->targets[i]);
        target_free(m->targets[i]);
    }
    mem_free(m->targets);
    scrape_dropped_cleanup(&m->dropped);
    httpc_free(m->http);
    discovery_free(m->disc);
    config_unref(m->cfg);
    config_unref(m->pending);
    pthread_mutex_destroy(&m->mu);
    mem_free(m);
}

int scrape_manager_targets(scrape_manager *m, scrape_target_status **out, size_t *n)
{
    pthread_mutex_lock(&m->mu);
    scrape_target_status *s = mem_calloc(m->n_targets + 1, sizeof *s);
    for (size_t i = 0; i < m->n_targets; i++) {
        target *t = m->targets[i];
        s[i].job = mem_strdup(t->sc->job_name);
        s[i].url = mem_strdup(t->url);
        s[i].labels = labels_dup(t->labels);
        s[i].discovered = labels_dup(t->discovered);
        s[i].health = t->health;
        s[i].last_error = mem_strdup(t->last_error);
        s[i].last_scrape_ms = t->last_scrape_ms;
        s[i].last_duration_seconds = t->last_duration;
        s[i].interval_ms = t->interval_ms;
        s[i].timeout_ms = t->timeout_ms;
    }
    *n = m->n_targets;
    pthread_mutex_unlock(&m->mu);
    *out = s;
    return 0;
}

int scrape_manager_dropped(scrape_manager *m, scrape_dropped *out)
{
    pthread_mutex_lock(&m->mu);
    const scrape_dropped *d = &m->dropped;
    out->targets = mem_calloc(d->n_targets + 1, sizeof *out->targets);
    out->n_targets = d->n_targets;
    for (size_t i = 0; i < d->n_targets; i++) {
        out->targets[i].job = mem_strdup(d->targets[i].job);
        out->targets[i].discovered = labels_dup(d->targets[i].discovered);
    }
    out->jobs = mem_calloc(d->n_jobs + 1, sizeof *out->jobs);
    out->n_jobs = d->n_jobs;
    for (size_t i = 0; i < d->n_jobs; i++) {
        out->jobs[i].job = mem_strdup(d->jobs[i].job);
        out->jobs[i].count = d->jobs[i].count;
    }
    pthread_mutex_unlock(&m->mu);
    return 0;
}

void scrape_dropped_cleanup(scrape_dropped *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n_targets; i++) {
        mem_free(d->targets[i].job);
        labels_free(d->targets[i].discovered);
    }
    for (size_t i = 0; i < d->n_jobs; i++)
        mem_free(d->jobs[i].job);
    mem_free(d->targets);
    mem_free(d->jobs);
    memset(d, 0, sizeof *d);
}

void scrape_target_status_free(scrape_target_status *s, size_t n)
{
    if (!s) return;
    for (size_t i = 0; i < n; i++) {
        mem_free(s[i].job);
        mem_free(s[i].url);
        labels_free(s[i].labels);
        labels_free(s[i].discovered);
        mem_free(s[i].last_error);
    }
    mem_free(s);
}
