/* notify: Alertmanager v2 client, direct webhooks, durable outbox, retries.
 * See notify.h for the contract.
 *
 * Locking: one mutex (n->mu) guards everything in the notifier: the
 * destinations, their webhook groups, the sequence counters and every store
 * write. A delivery thread holds it except while it waits and while its
 * HTTP request runs; before a request it copies what it needs and keeps a
 * reference on the config its settings live in.
 *
 * Outbox: namespace NS_OUTBOX, key = destination id, a NUL byte and the
 * 8-byte big-endian sequence number (so the entries of one destination list
 * in order), value = "<created_ms> <attempts> <next_attempt_ms> <alerts>\n"
 * followed by the body. A destination's entries always hold the sequence
 * numbers [head_seq, next_seq): new ones are added at the tail and only the
 * head is ever removed (delivered, rejected, too old, or pushed out when the
 * queue is full).
 *
 * Webhook notification log: namespace NS_NFLOG, key = receiver name, NUL,
 * group key; value = "<ms>\n<firing fingerprints>\n<resolved fingerprints>"
 * (hex, comma-separated), what Alertmanager's nflog keeps per group. */
#include "notify.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "httpc.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "relabel.h"
#include "strutil.h"

#define NS_OUTBOX "notify/outbox"
#define NS_NFLOG "notify/nflog"
/* Prometheus's maxBatchSize: alerts per POST to an Alertmanager. */
#define NOTIFY_MAX_BATCH 256
/* Alertmanager's default resolve_timeout, for alerts without endsAt. */
#define NOTIFY_RESOLVE_TIMEOUT_MS (5 * 60 * 1000)
/* Alertmanager's default notification log retention. */
#define NOTIFY_NFLOG_RETENTION_MS (120LL * 3600 * 1000)
#define NOTIFY_DEFAULT_MAX_AGE_MS (24LL * 3600 * 1000)
#define NOTIFY_DEFAULT_CAPACITY 10000
#define NOTIFY_DEFAULT_BACKOFF_MS 1000
#define NOTIFY_DEFAULT_BACKOFF_MAX_MS (5 * 60 * 1000)
/* Response bodies are only logged: keep a little. */
#define NOTIFY_RESPONSE_LIMIT (64 * 1024)
/* How often threads re-read a fake clock. */
#define NOTIFY_FAKE_CLOCK_POLL_MS 20
#define COMPONENT "notify"
/* How often notify_send looks for entries of removed destinations. */
#define NOTIFY_SWEEP_INTERVAL_MS (60 * 60 * 1000)

/* ---- payload helpers ---------------------------------------------------------------- */

uint64_t notify_fingerprint(const labels *ls)
{
    uint64_t h = 14695981039346656037ULL;
    for (uint32_t i = 0; i < ls->n; i++) {
        const label *l = &ls->v[i];
        for (uint32_t k = 0; k < l->name_len; k++) {
            h ^= (unsigned char)l->name[k];
            h *= 1099511628211ULL;
        }
        h ^= 0xff;
        h *= 1099511628211ULL;
        for (uint32_t k = 0; k < l->value_len; k++) {
            h ^= (unsigned char)l->value[k];
            h *= 1099511628211ULL;
        }
        h ^= 0xff;
        h *= 1099511628211ULL;
    }
    return h;
}

size_t notify_format_time(int64_t unix_ns, char out[NOTIFY_TIME_MAX])
{
    if (unix_ns == NOTIFY_ZERO_TIME)
        return (size_t)snprintf(out, NOTIFY_TIME_MAX, "0001-01-01T00:00:00Z");
    int64_t sec = unix_ns / 1000000000, frac = unix_ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        sec--;
    }
    return strutil_format_rfc3339(sec, (int32_t)frac, out);
}

void notify_group_key(const labels *group_labels, buf *out)
{
    buf_puts(out, "{}:");
    labels_format(group_labels, out);
}

static void write_time(json_writer *w, int64_t ns)
{
    char t[NOTIFY_TIME_MAX];
    notify_format_time(ns, t);
    json_write_string(w, t);
}

static void write_labels(json_writer *w, const labels *ls)
{
    json_write_object_begin(w);
    for (uint32_t i = 0; ls && i < ls->n; i++) {
        json_write_key_n(w, ls->v[i].name, ls->v[i].name_len);
        json_write_string_n(w, ls->v[i].value, ls->v[i].value_len);
    }
    json_write_object_end(w);
}

static int str_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

/* model.LabelSet.Before. */
static bool labelset_before(const labels *a, const labels *b)
{
    if (a->n != b->n) return a->n < b->n;
    /* Walk the union of the names in order. */
    uint32_t i = 0, j = 0;
    while (i < a->n || j < b->n) {
        int c;
        if (i == a->n)
            c = 1;
        else if (j == b->n)
            c = -1;
        else
            c = str_cmp(a->v[i].name, a->v[i].name_len, b->v[j].name, b->v[j].name_len);
        if (c < 0) return false; /* name only in a: b lacks it */
        if (c > 0) return true;  /* name only in b: a lacks it */
        int v = str_cmp(a->v[i].value, a->v[i].value_len, b->v[j].value, b->v[j].value_len);
        if (v) return v < 0;
        i++;
        j++;
    }
    return false;
}

/* types.AlertSlice.Less: job, then instance, then the label sets. */
static bool alert_less(const notify_webhook_alert *a, const notify_webhook_alert *b)
{
    static const char *const keys[] = {"job", "instance"};
    for (int k = 0; k < 2; k++) {
        size_t al, bl;
        const char *av = labels_get(a->labels, keys[k], strlen(keys[k]), &al);
        const char *bv = labels_get(b->labels, keys[k], strlen(keys[k]), &bl);
        if (!av && !bv) continue;
        if (!av) return false;
        if (!bv) return true;
        int c = str_cmp(av, al, bv, bl);
        if (c) return c < 0;
    }
    return labelset_before(a->labels, b->labels);
}

/* Labels (or annotations) every alert has with the same value. */
static void write_common(json_writer *w, const notify_webhook_alert *const *v, size_t n,
                         bool annotations)
{
    json_write_object_begin(w);
    const labels *first = n ? (annotations ? v[0]->annotations : v[0]->labels) : NULL;
    for (uint32_t i = 0; first && i < first->n; i++) {
        const label *l = &first->v[i];
        bool common = true;
        for (size_t k = 1; k < n && common; k++) {
            const labels *o = annotations ? v[k]->annotations : v[k]->labels;
            size_t len;
            const char *val = o ? labels_get(o, l->name, l->name_len, &len) : NULL;
            common = val && len == l->value_len && memcmp(val, l->value, len) == 0;
        }
        if (!common) continue;
        json_write_key_n(w, l->name, l->name_len);
        json_write_string_n(w, l->value, l->value_len);
    }
    json_write_object_end(w);
}

static bool wa_resolved(const notify_webhook_alert *a, int64_t now_ns)
{
    return a->ends_at_ns != 0 && a->ends_at_ns <= now_ns;
}

int notify_webhook_body(const char *receiver, const labels *group_labels,
                        const notify_webhook_alert *alerts, size_t n, uint64_t max_alerts,
                        const char *external_url, int64_t now_ns, buf *out)
{
    /* Stable insertion sort of pointers (groups are small). */
    const notify_webhook_alert **v = mem_calloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        size_t k = i;
        while (k > 0 && alert_less(&alerts[i], v[k - 1])) {
            v[k] = v[k - 1];
            k--;
        }
        v[k] = &alerts[i];
    }
    size_t shown = n;
    if (max_alerts > 0 && n > max_alerts) shown = (size_t)max_alerts;
    bool firing = false;
    for (size_t i = 0; i < shown; i++)
        firing |= !wa_resolved(v[i], now_ns);

    json_writer w;
    json_writer_init(&w, out);
    json_write_object_begin(&w);
    json_write_key(&w, "receiver");
    json_write_string(&w, receiver);
    json_write_key(&w, "status");
    json_write_string(&w, firing ? "firing" : "resolved");
    json_write_key(&w, "alerts");
    json_write_array_begin(&w);
    for (size_t i = 0; i < shown; i++) {
        const notify_webhook_alert *a = v[i];
        bool resolved = wa_resolved(a, now_ns);
        char fp[17];
        snprintf(fp, sizeof fp, "%016" PRIx64, notify_fingerprint(a->labels));
        json_write_object_begin(&w);
        json_write_key(&w, "status");
        json_write_string(&w, resolved ? "resolved" : "firing");
        json_write_key(&w, "labels");
        write_labels(&w, a->labels);
        json_write_key(&w, "annotations");
        write_labels(&w, a->annotations);
        json_write_key(&w, "startsAt");
        write_time(&w, a->starts_at_ns);
        json_write_key(&w, "endsAt");
        write_time(&w, resolved ? a->ends_at_ns : NOTIFY_ZERO_TIME);
        json_write_key(&w, "generatorURL");
        json_write_string(&w, a->generator_url ? a->generator_url : "");
        json_write_key(&w, "fingerprint");
        json_write_string(&w, fp);
        json_write_object_end(&w);
    }
    json_write_array_end(&w);
    json_write_key(&w, "groupLabels");
    write_labels(&w, group_labels);
    json_write_key(&w, "commonLabels");
    write_common(&w, v, shown, false);
    json_write_key(&w, "commonAnnotations");
    write_common(&w, v, shown, true);
    json_write_key(&w, "externalURL");
    json_write_string(&w, external_url ? external_url : "");
    json_write_key(&w, "version");
    json_write_string(&w, "4");
    json_write_key(&w, "groupKey");
    buf gk;
    buf_init(&gk, BUF_UNLIMITED);
    notify_group_key(group_labels, &gk);
    json_write_string_n(&w, buf_cstr(&gk), gk.len);
    buf_cleanup(&gk);
    json_write_key(&w, "truncatedAlerts");
    json_write_uint(&w, (uint64_t)(n - shown));
    json_write_object_end(&w);
    mem_free(v);
    return json_writer_error(&w);
}

/* ---- the notifier ------------------------------------------------------------------ */

/* An alert in a webhook aggregation group. */
typedef struct galert {
    labels *labels;
    labels *annotations; /* never NULL */
    int64_t starts_ms, ends_ms;
    char *generator_url;
    uint64_t fp;
} galert;

typedef struct group {
    labels *group_labels;
    char *key; /* notify_group_key() */
    galert *alerts;
    size_t n, cap;
    int64_t next_flush_ms;
    bool has_flushed;
} group;

typedef struct dest {
    notify *n;
    char *id;    /* "am:<url>" or "webhook:<name>": the outbox key prefix (with a NUL after it) */
    char *label; /* the destination label: the URL or the receiver name */
    bool webhook;
    /* settings, swapped by notify_apply_config (under n->mu) */
    config *cfg; /* reference */
    const config_alertmanager *am;
    size_t am_index;
    const config_webhook *wh;
    char *url;
    /* queue: entries [head_seq, next_seq) */
    uint64_t head_seq, next_seq;
    /* Backoff belongs to the destination: after a retryable failure no
     * entry (not even a new head) is sent before retry_at_ms. */
    int64_t retry_at_ms;
    int64_t failures; /* consecutive retryable failures */
    /* thread */
    pthread_t thread;
    bool started, stop;
    pthread_cond_t cv;
    httpc *http;
    unsigned int seed;
    /* webhook groups */
    group *groups;
    size_t n_groups, cap_groups;
    bool keep; /* scratch mark for notify_apply_config */
    /* metrics */
    registry_metric *m_sent, *m_errors, *m_retries, *m_qlen, *m_qcap, *m_latency;
    registry_metric *m_drop_age, *m_drop_rejected, *m_drop_full, *m_drop_relabeled;
} dest;

struct notify {
    pthread_mutex_t mu;
    notify_options o;
    char *external_url;
    config *cfg; /* reference; NULL before the first apply */
    dest **dests;
    size_t n_dests, cap_dests;
    registry_family *f_sent, *f_errors, *f_retries, *f_dropped, *f_qlen, *f_qcap, *f_latency,
        *f_discovered;
    registry_metric *m_discovered;
    int64_t last_sweep_ms; /* of sweep_orphans */
};

static int64_t now_ms(const notify *n)
{
    if (n->o.now_ms) return n->o.now_ms(n->o.clock_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t dest_max_age(const dest *d)
{
    if (d->webhook && d->wh && d->wh->max_age_ms > 0) return d->wh->max_age_ms;
    return d->n->o.max_age_ms;
}

/* ---- outbox entries ---- */

static void outbox_key(const dest *d, uint64_t seq, buf *k)
{
    buf_reset(k);
    buf_append(k, d->id, strlen(d->id) + 1);
    unsigned char be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (unsigned char)(seq >> (56 - 8 * i));
    buf_append(k, be, 8);
}

static uint64_t key_seq(const void *key, size_t len)
{
    const unsigned char *p = (const unsigned char *)key + len - 8;
    uint64_t s = 0;
    for (int i = 0; i < 8; i++)
        s = s << 8 | p[i];
    return s;
}

typedef struct entry {
    int64_t created_ms, attempts, next_ms, n_alerts;
    const char *body; /* into the listed value */
    size_t body_len;
} entry;

static int entry_parse(const store_kv_entry *e, entry *out)
{
    const char *v = e->value;
    const char *nl = memchr(v, '\n', e->value_len);
    if (!nl || sscanf(v, "%" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNd64, &out->created_ms,
                      &out->attempts, &out->next_ms, &out->n_alerts) != 4)
        return -EINVAL;
    out->body = nl + 1;
    out->body_len = e->value_len - (size_t)(nl + 1 - v);
    return 0;
}

static void entry_value(buf *v, const entry *e, const char *body, size_t len)
{
    buf_reset(v);
    buf_printf(v, "%" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n", e->created_ms, e->attempts,
               e->next_ms, e->n_alerts);
    buf_append(v, body, len);
}

static void update_qlen(dest *d)
{
    registry_set(d->m_qlen, (double)(d->next_seq - d->head_seq));
}

/* Adds one entry at the tail of d's queue, pushing the oldest out when the
 * queue is full. Called with n->mu held. Returns 0 or a negative errno. */
static int enqueue(dest *d, const char *body, size_t len, int64_t n_alerts, int64_t now)
{
    notify *n = d->n;
    store_kv_op ops[2];
    size_t nops = 0;
    buf k, drop_k, v;
    buf_init(&k, BUF_UNLIMITED);
    buf_init(&drop_k, BUF_UNLIMITED);
    buf_init(&v, BUF_UNLIMITED);
    bool full = (int64_t)(d->next_seq - d->head_seq) >= n->o.queue_capacity;
    if (full) {
        outbox_key(d, d->head_seq, &drop_k);
        ops[nops++] = (store_kv_op){.ns = NS_OUTBOX, .key = drop_k.data, .key_len = drop_k.len};
    }
    entry e = {.created_ms = now, .attempts = 0, .next_ms = now, .n_alerts = n_alerts};
    entry_value(&v, &e, body, len);
    outbox_key(d, d->next_seq, &k);
    ops[nops++] = (store_kv_op){
        .ns = NS_OUTBOX, .key = k.data, .key_len = k.len, .value = v.data, .value_len = v.len};
    buf err;
    buf_init(&err, 1024);
    int rc = store_kv_apply(n->o.st, ops, nops, &err);
    if (rc < 0) {
        log_error(COMPONENT, "cannot queue a notification for %s: %s", d->label, buf_cstr(&err));
    } else {
        if (full) {
            d->head_seq++;
            registry_inc(d->m_drop_full);
        }
        d->next_seq++;
        update_qlen(d);
        pthread_cond_signal(&d->cv);
    }
    buf_cleanup(&err);
    buf_cleanup(&k);
    buf_cleanup(&drop_k);
    buf_cleanup(&v);
    return rc;
}

/* Removes the entry seq (if still queued). Called with n->mu held. */
static void dequeue(dest *d, uint64_t seq)
{
    if (seq < d->head_seq) return;
    buf k;
    buf_init(&k, BUF_UNLIMITED);
    outbox_key(d, seq, &k);
    store_kv_op op = {.ns = NS_OUTBOX, .key = k.data, .key_len = k.len};
    buf err;
    buf_init(&err, 1024);
    if (store_kv_apply(d->n->o.st, &op, 1, &err) < 0)
        log_error(COMPONENT, "cannot remove a notification of %s: %s", d->label, buf_cstr(&err));
    buf_cleanup(&err);
    buf_cleanup(&k);
    if (seq >= d->head_seq) d->head_seq = seq + 1;
    update_qlen(d);
}

/* Reads d's queue bounds from the store. */
static void load_queue(dest *d)
{
    store_kv_entry *e = NULL;
    size_t ne = 0;
    d->head_seq = d->next_seq = 0;
    if (store_kv_list(d->n->o.st, NS_OUTBOX, d->id, strlen(d->id) + 1, 0, &e, &ne, NULL) < 0)
        return;
    size_t kept = 0;
    for (size_t i = 0; i < ne; i++) {
        if (e[i].key_len != strlen(d->id) + 1 + 8) continue;
        uint64_t s = key_seq(e[i].key, e[i].key_len);
        if (kept == 0) d->head_seq = s;
        d->next_seq = s + 1;
        kept++;
    }
    store_kv_entries_free(e, ne);
}

/* ---- webhook groups ---- */

static void galert_free(galert *a)
{
    labels_free(a->labels);
    labels_free(a->annotations);
    mem_free(a->generator_url);
}

static void group_free(group *g)
{
    for (size_t i = 0; i < g->n; i++)
        galert_free(&g->alerts[i]);
    mem_free(g->alerts);
    labels_free(g->group_labels);
    mem_free(g->key);
}

static void dest_free(dest *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n_groups; i++)
        group_free(&d->groups[i]);
    mem_free(d->groups);
    httpc_free(d->http);
    pthread_cond_destroy(&d->cv);
    config_unref(d->cfg);
    mem_free(d->id);
    mem_free(d->label);
    mem_free(d->url);
    mem_free(d);
}

typedef struct nflog_entry {
    int64_t ts_ms;
    uint64_t *firing, *resolved;
    size_t n_firing, n_resolved;
} nflog_entry;

static void nflog_entry_free(nflog_entry *e)
{
    mem_free(e->firing);
    mem_free(e->resolved);
}

static void nflog_key(const dest *d, const group *g, buf *k)
{
    buf_reset(k);
    buf_append(k, d->wh->name, strlen(d->wh->name) + 1);
    buf_puts(k, g->key);
}

static void parse_fps(const char *p, const char *end, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    while (p < end) {
        char *stop;
        uint64_t v = strtoull(p, &stop, 16);
        if (stop == p) break;
        *out = mem_grow(*out, sizeof **out, *n + 1, &cap);
        (*out)[(*n)++] = v;
        p = stop;
        if (p < end && *p == ',') p++;
    }
}

/* Returns 1 and *e when the group has an entry, 0 when not, <0 on error. */
static int nflog_get(dest *d, const group *g, nflog_entry *e)
{
    memset(e, 0, sizeof *e);
    buf k;
    buf_init(&k, BUF_UNLIMITED);
    nflog_key(d, g, &k);
    store_kv_entry *l = NULL;
    size_t nl = 0;
    int rc = store_kv_list(d->n->o.st, NS_NFLOG, k.data, k.len, 0, &l, &nl, NULL);
    int found = 0;
    for (size_t i = 0; rc >= 0 && i < nl; i++) {
        if (l[i].key_len != k.len) continue;
        const char *v = l[i].value, *end = v + l[i].value_len;
        const char *nl1 = memchr(v, '\n', l[i].value_len);
        const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
        if (!nl2) break;
        e->ts_ms = strtoll(v, NULL, 10);
        parse_fps(nl1 + 1, nl2, &e->firing, &e->n_firing);
        parse_fps(nl2 + 1, end, &e->resolved, &e->n_resolved);
        found = 1;
    }
    store_kv_entries_free(l, nl);
    buf_cleanup(&k);
    return rc < 0 ? rc : found;
}

static void put_fps(buf *v, const uint64_t *fps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf_printf(v, "%s%016" PRIx64, i ? "," : "", fps[i]);
}

/* Every element of subset is in set (nflogpb's isSubset). */
static bool is_subset(const uint64_t *set, size_t n_set, const uint64_t *subset, size_t n_sub)
{
    for (size_t i = 0; i < n_sub; i++) {
        bool found = false;
        for (size_t k = 0; k < n_set && !found; k++)
            found = set[k] == subset[i];
        if (!found) return false;
    }
    return true;
}

/* notify.DedupStage.needsUpdate. */
static bool needs_update(const nflog_entry *e, bool have_entry, const uint64_t *firing,
                         size_t n_firing, const uint64_t *resolved, size_t n_resolved,
                         bool send_resolved, int64_t repeat_ms, int64_t now)
{
    if (!have_entry) return n_firing > 0;
    if (!is_subset(e->firing, e->n_firing, firing, n_firing)) return true;
    if (n_firing == 0) return e->n_firing > 0;
    if (send_resolved && !is_subset(e->resolved, e->n_resolved, resolved, n_resolved)) return true;
    return e->ts_ms < now - repeat_ms;
}

static bool galert_resolved(const galert *a, int64_t now)
{
    return a->ends_ms != 0 && a->ends_ms <= now;
}

/* aggrGroup.flush and the notification pipeline's dedup stage: queues the
 * group's payload when the notification log says it is needed, then drops
 * the resolved alerts. Called with n->mu held. */
static void group_flush(dest *d, group *g, int64_t now)
{
    if (g->n == 0) return;
    const config_webhook *wh = d->wh;
    uint64_t *firing = mem_calloc(g->n, sizeof *firing),
             *resolved = mem_calloc(g->n, sizeof *resolved);
    size_t nf = 0, nr = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (galert_resolved(&g->alerts[i], now))
            resolved[nr++] = g->alerts[i].fp;
        else
            firing[nf++] = g->alerts[i].fp;
    }
    nflog_entry e;
    int have = nflog_get(d, g, &e);
    bool ok = true;
    if (have >= 0 && needs_update(&e, have == 1, firing, nf, resolved, nr, wh->send_resolved,
                                  wh->repeat_interval_ms, now)) {
        notify_webhook_alert *wa = mem_calloc(g->n, sizeof *wa);
        size_t nw = 0;
        for (size_t i = 0; i < g->n; i++) {
            const galert *a = &g->alerts[i];
            if (!wh->send_resolved && galert_resolved(a, now)) continue;
            wa[nw++] = (notify_webhook_alert){
                .labels = a->labels,
                .annotations = a->annotations,
                .starts_at_ns = a->starts_ms * 1000000,
                .ends_at_ns = a->ends_ms * 1000000,
                .generator_url = a->generator_url,
            };
        }
        if (nw > 0) {
            buf body;
            buf_init(&body, BUF_UNLIMITED);
            notify_webhook_body(wh->name, g->group_labels, wa, nw, wh->max_alerts,
                                d->n->external_url, now * 1000000, &body);
            ok = enqueue(d, body.data, body.len, (int64_t)nw, now) == 0;
            buf_cleanup(&body);
        }
        mem_free(wa);
        if (ok) {
            buf k, v;
            buf_init(&k, BUF_UNLIMITED);
            buf_init(&v, BUF_UNLIMITED);
            nflog_key(d, g, &k);
            buf_printf(&v, "%" PRId64 "\n", now);
            put_fps(&v, firing, nf);
            buf_putc(&v, '\n');
            put_fps(&v, resolved, nr);
            store_kv_op op = {.ns = NS_NFLOG,
                              .key = k.data,
                              .key_len = k.len,
                              .value = v.data,
                              .value_len = v.len};
            if (store_kv_apply(d->n->o.st, &op, 1, NULL) < 0) {
                log_error(COMPONENT, "cannot record the notification of %s for %s", g->key,
                          d->label);
            }
            buf_cleanup(&k);
            buf_cleanup(&v);
        }
    } else if (have < 0) {
        ok = false;
    }
    if (have == 1) nflog_entry_free(&e);
    mem_free(firing);
    mem_free(resolved);
    if (!ok) return; /* keep the resolved alerts for the next flush */
    size_t k = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (galert_resolved(&g->alerts[i], now))
            galert_free(&g->alerts[i]);
        else
            g->alerts[k++] = g->alerts[i];
    }
    g->n = k;
}

/* Flushes the groups that are due; returns the next due time. */
static int64_t flush_groups(dest *d, int64_t now)
{
    int64_t next = INT64_MAX;
    size_t k = 0;
    for (size_t i = 0; i < d->n_groups; i++) {
        group *g = &d->groups[i];
        if (now >= g->next_flush_ms) {
            g->next_flush_ms = now + d->wh->group_interval_ms;
            g->has_flushed = true;
            group_flush(d, g, now);
        }
        if (g->n == 0) {
            /* Alertmanager drops empty groups; a new alert starts a new one
             * (with group_wait). */
            group_free(g);
            continue;
        }
        if (g->next_flush_ms < next) next = g->next_flush_ms;
        d->groups[k++] = *g;
    }
    d->n_groups = k;
    return next;
}

/* Adds an alert (labels with external labels and relabeling applied) to
 * its group of webhook destination d. Called with n->mu held. */
static void group_insert(dest *d, const labels *ls, const notify_alert *a, int64_t now)
{
    const config_webhook *wh = d->wh;
    labels_builder b;
    labels_builder_init(&b);
    if (wh->group_by_all) {
        labels_builder_from(&b, ls);
    } else {
        for (size_t i = 0; i < wh->n_group_by; i++) {
            size_t len;
            const char *v = labels_get(ls, wh->group_by[i], strlen(wh->group_by[i]), &len);
            if (v) labels_builder_set(&b, wh->group_by[i], strlen(wh->group_by[i]), v, len);
        }
    }
    labels *gl = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    group *g = NULL;
    for (size_t i = 0; i < d->n_groups && !g; i++) {
        if (labels_equal(d->groups[i].group_labels, gl)) g = &d->groups[i];
    }
    if (!g) {
        d->groups = mem_grow(d->groups, sizeof *d->groups, d->n_groups + 1, &d->cap_groups);
        g = &d->groups[d->n_groups++];
        memset(g, 0, sizeof *g);
        g->group_labels = gl;
        buf k;
        buf_init(&k, BUF_UNLIMITED);
        notify_group_key(gl, &k);
        g->key = buf_detach(&k, NULL);
        buf_cleanup(&k);
        g->next_flush_ms = now + wh->group_wait_ms;
        gl = NULL;
    }
    labels_free(gl);
    galert na = {
        .labels = labels_dup(ls),
        .annotations = labels_dup(a->annotations ? a->annotations : labels_empty()),
        .starts_ms = a->starts_at_ms,
        .ends_ms = a->ends_at_ms ? a->ends_at_ms : now + NOTIFY_RESOLVE_TIMEOUT_MS,
        .generator_url = a->generator_url ? mem_strdup(a->generator_url) : NULL,
    };
    na.fp = notify_fingerprint(na.labels);
    galert *old = NULL;
    for (size_t i = 0; i < g->n && !old; i++) {
        if (g->alerts[i].fp == na.fp && labels_equal(g->alerts[i].labels, na.labels))
            old = &g->alerts[i];
    }
    if (old) {
        /* As Alertmanager merges an update that overlaps the old alert:
         * the earliest start wins. */
        if (old->starts_ms < na.starts_ms && na.starts_ms <= old->ends_ms)
            na.starts_ms = old->starts_ms;
        galert_free(old);
        *old = na;
    } else {
        g->alerts = mem_grow(g->alerts, sizeof *g->alerts, g->n + 1, &g->cap);
        g->alerts[g->n++] = na;
    }
    /* aggrGroup.insert: flush at once if this alert's wait is already over. */
    if (!g->has_flushed && na.starts_ms + wh->group_wait_ms < now && g->next_flush_ms > now)
        g->next_flush_ms = now;
    pthread_cond_signal(&d->cv);
}

/* ---- delivery ---- */

typedef struct send_result {
    bool done;
    enum httpc_result result;
    long status;
    double seconds;
    char error[256];
} send_result;

static void on_sent(void *ctx, const httpc_response *r)
{
    send_result *s = ctx;
    s->done = true;
    s->result = r->result;
    s->status = r->status;
    s->seconds = r->seconds;
    if (r->result != HTTPC_OK) {
        snprintf(s->error, sizeof s->error, "%s", r->error ? r->error : "transfer failed");
    } else {
        size_t n = r->body_len < 200 ? r->body_len : 200;
        snprintf(s->error, sizeof s->error, "HTTP status %ld: %.*s", r->status, (int)n, r->body);
    }
}

static bool stopping(dest *d)
{
    pthread_mutex_lock(&d->n->mu);
    bool s = d->stop;
    pthread_mutex_unlock(&d->n->mu);
    return s;
}

/* POSTs body to url with hc's credentials and TLS. Runs without n->mu. */
static void post(dest *d, const char *url, const config_http_client *hc, const config_secret *hmac,
                 int64_t timeout_ms, const char *body, size_t len, send_result *res)
{
    char auth_h[4096], sig_h[128];
    const char *headers[5] = {"Content-Type: application/json",
                              "User-Agent: Sidewatch/" SIDEWATCH_VERSION, NULL, NULL, NULL};
    size_t nh = 2;
    char *cred = NULL, *user = NULL, *pass = NULL;
    if (hc->has_authorization) {
        cred = config_read_secret(&hc->authorization_credentials);
        snprintf(auth_h, sizeof auth_h, "Authorization: %s %s",
                 hc->authorization_type ? hc->authorization_type : "Bearer", cred ? cred : "");
        headers[nh++] = auth_h;
    }
    if (hc->has_basic_auth) {
        user = hc->basic_auth_username_file
                   ? config_read_secret(&(config_secret){NULL, hc->basic_auth_username_file})
                   : mem_strdup(hc->basic_auth_username ? hc->basic_auth_username : "");
        pass = config_read_secret(&hc->basic_auth_password);
    }
    if (hmac && (hmac->value || hmac->file)) {
        char *secret = config_read_secret(hmac);
        unsigned char mac[32];
        int n = snprintf(sig_h, sizeof sig_h, "X-Sidewatch-Signature: sha256=");
        strutil_hmac_sha256(secret ? secret : "", secret ? strlen(secret) : 0, body, len, mac);
        for (int i = 0; i < 32; i++)
            n += snprintf(sig_h + n, sizeof sig_h - (size_t)n, "%02x", mac[i]);
        headers[nh++] = sig_h;
        if (secret) {
            memset(secret, 0, strlen(secret));
            mem_free(secret);
        }
    }
    httpc_request req = {
        .url = url,
        .method = "POST",
        .headers = headers,
        .body = body,
        .body_len = len,
        .timeout_ms = timeout_ms,
        .body_limit = NOTIFY_RESPONSE_LIMIT,
        .basic_user = user,
        .basic_password = pass,
        .tls_ca_file = hc->tls_ca_file,
        .tls_cert_file = hc->tls_cert_file,
        .tls_key_file = hc->tls_key_file,
        .tls_server_name = hc->tls_server_name,
        .tls_insecure_skip_verify = hc->tls_insecure_skip_verify,
        .follow_redirects = hc->follow_redirects,
    };
    memset(res, 0, sizeof *res);
    httpc_transfer *t = NULL;
    if (httpc_start(d->http, &req, on_sent, res, &t) < 0) {
        res->done = true;
        res->result = HTTPC_ERR_TRANSFER;
        snprintf(res->error, sizeof res->error, "cannot start the request");
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
    while (!res->done) {
        if (stopping(d)) {
            httpc_cancel(d->http, t);
            break;
        }
        httpc_poll(d->http, 1000, -1);
    }
}

/* Waits on d->cv until deadline_ms on n's clock (INT64_MAX: until woken).
 * Called with n->mu held. */
static void wait_until(dest *d, int64_t deadline_ms, int64_t now)
{
    notify *n = d->n;
    int64_t delay = deadline_ms == INT64_MAX ? -1 : deadline_ms - now;
    if (n->o.now_ms && (delay < 0 || delay > NOTIFY_FAKE_CLOCK_POLL_MS))
        delay = NOTIFY_FAKE_CLOCK_POLL_MS;
    if (delay == 0) return;
    if (delay < 0) {
        pthread_cond_wait(&d->cv, &n->mu);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += delay / 1000;
    ts.tv_nsec += (delay % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&d->cv, &n->mu, &ts);
}

static int64_t backoff_ms(dest *d, int64_t attempts)
{
    const notify_options *o = &d->n->o;
    int64_t b = o->backoff_initial_ms;
    for (int64_t i = 1; i < attempts && b < o->backoff_max_ms; i++)
        b *= 2;
    if (b > o->backoff_max_ms) b = o->backoff_max_ms;
    /* jitter: between half and all of it */
    int64_t half = b / 2;
    return b - (half > 0 ? (int64_t)(rand_r(&d->seed) % (half + 1)) : 0);
}

static void *dest_main(void *arg)
{
    dest *d = arg;
    notify *n = d->n;
    buf k, v;
    buf_init(&k, BUF_UNLIMITED);
    buf_init(&v, BUF_UNLIMITED);
    pthread_mutex_lock(&n->mu);
    while (!d->stop) {
        int64_t now = now_ms(n);
        int64_t wake = d->webhook ? flush_groups(d, now) : INT64_MAX;
        if (d->head_seq >= d->next_seq) {
            wait_until(d, wake, now);
            continue;
        }
        uint64_t seq = d->head_seq;
        outbox_key(d, seq, &k);
        store_kv_entry *l = NULL;
        size_t nl = 0;
        int rc = store_kv_list(n->o.st, NS_OUTBOX, k.data, k.len, 1, &l, &nl, NULL);
        entry e;
        if (rc < 0) {
            store_kv_entries_free(l, nl);
            wait_until(d, now + 1000 < wake ? now + 1000 : wake, now);
            continue;
        }
        if (nl == 0 || l[0].key_len != k.len || entry_parse(&l[0], &e) < 0) {
            /* gone or unreadable: skip it */
            store_kv_entries_free(l, nl);
            if (nl)
                dequeue(d, seq);
            else if (seq == d->head_seq) {
                d->head_seq++;
                update_qlen(d);
            }
            continue;
        }
        if (now - e.created_ms >= dest_max_age(d)) {
            store_kv_entries_free(l, nl);
            dequeue(d, seq);
            registry_inc(d->m_drop_age);
            log_warn(COMPONENT, "dropped a notification for %s older than its max age", d->label);
            continue;
        }
        int64_t due = e.next_ms > d->retry_at_ms ? e.next_ms : d->retry_at_ms;
        if (due > now) {
            store_kv_entries_free(l, nl);
            wait_until(d, due < wake ? due : wake, now);
            continue;
        }
        /* Send without the lock, on a reference to the settings. */
        config *cfg = config_ref(d->cfg);
        const config_http_client *hc = d->webhook ? &d->wh->http : &d->am->http;
        const config_secret *hmac = d->webhook ? &d->wh->hmac_secret : NULL;
        int64_t timeout = d->webhook ? d->wh->timeout_ms : d->am->timeout_ms;
        char *url = mem_strdup(d->url);
        char *body = mem_strndup(e.body, e.body_len);
        size_t body_len = e.body_len;
        store_kv_entries_free(l, nl);
        pthread_mutex_unlock(&n->mu);
        send_result res;
        post(d, url, hc, hmac, timeout, body, body_len, &res);
        pthread_mutex_lock(&n->mu);
        config_unref(cfg);
        mem_free(url);
        now = now_ms(n);
        if (res.result == HTTPC_ERR_CANCELLED || !res.done) {
            mem_free(body);
            continue; /* stopping: the entry stays */
        }
        registry_observe(d->m_latency, res.seconds);
        /* An entry pushed out (queue_full) while it was being sent is
         * already counted as dropped: each entry counts once. */
        bool counted = seq < d->head_seq;
        if (res.result == HTTPC_OK && res.status >= 200 && res.status < 300) {
            d->failures = 0;
            d->retry_at_ms = 0;
            if (!counted) registry_inc(d->m_sent);
            dequeue(d, seq);
        } else if (res.result == HTTPC_OK && res.status >= 400 && res.status < 500 &&
                   res.status != 429) {
            d->failures = 0;
            d->retry_at_ms = 0;
            registry_inc(d->m_errors);
            if (!counted) registry_inc(d->m_drop_rejected);
            log_error(COMPONENT, "%s rejected a notification, dropped: %s", d->label, res.error);
            dequeue(d, seq);
        } else {
            registry_inc(d->m_errors);
            registry_inc(d->m_retries);
            d->failures++;
            d->retry_at_ms = now + backoff_ms(d, d->failures);
            if (seq >= d->head_seq) {
                e.attempts++;
                e.next_ms = d->retry_at_ms;
                entry_value(&v, &e, body, body_len);
                store_kv_op op = {.ns = NS_OUTBOX,
                                  .key = k.data,
                                  .key_len = k.len,
                                  .value = v.data,
                                  .value_len = v.len};
                if (store_kv_apply(n->o.st, &op, 1, NULL) < 0) {
                    log_error(COMPONENT, "cannot record a retry for %s", d->label);
                }
                log_warn(COMPONENT, "notification to %s failed (attempt %" PRId64 "), retrying: %s",
                         d->label, e.attempts, res.error);
            }
        }
        mem_free(body);
    }
    pthread_mutex_unlock(&n->mu);
    buf_cleanup(&k);
    buf_cleanup(&v);
    return NULL;
}

/* ---- lifetime and config ---- */

static dest *dest_new(notify *n, const char *id, const char *label, bool webhook)
{
    dest *d = mem_calloc(1, sizeof *d);
    d->n = n;
    d->id = mem_strdup(id);
    d->label = mem_strdup(label);
    d->webhook = webhook;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    d->http = httpc_new();
    d->seed =
        (unsigned int)(notify_fingerprint(labels_empty()) ^ (uintptr_t)d ^ (unsigned)time(NULL));
    const char *lv[] = {label};
    d->m_sent = registry_child(n->f_sent, lv);
    d->m_errors = registry_child(n->f_errors, lv);
    d->m_retries = registry_child(n->f_retries, lv);
    d->m_qlen = registry_child(n->f_qlen, lv);
    d->m_qcap = registry_child(n->f_qcap, lv);
    d->m_latency = registry_child(n->f_latency, lv);
    const char *r1[] = {label, "max_age"}, *r2[] = {label, "rejected"},
               *r3[] = {label, "queue_full"}, *r4[] = {label, "relabeled"};
    d->m_drop_age = registry_child(n->f_dropped, r1);
    d->m_drop_rejected = registry_child(n->f_dropped, r2);
    d->m_drop_full = registry_child(n->f_dropped, r3);
    d->m_drop_relabeled = registry_child(n->f_dropped, r4);
    registry_set(d->m_qcap, (double)n->o.queue_capacity);
    load_queue(d);
    update_qlen(d);
    return d;
}

static void nflog_gc(notify *n)
{
    store_kv_entry *e = NULL;
    size_t ne = 0;
    if (store_kv_list(n->o.st, NS_NFLOG, NULL, 0, 0, &e, &ne, NULL) < 0) return;
    int64_t cutoff = now_ms(n) - NOTIFY_NFLOG_RETENTION_MS;
    store_kv_op *ops = mem_calloc(ne ? ne : 1, sizeof *ops);
    size_t nops = 0;
    for (size_t i = 0; i < ne; i++) {
        if (strtoll(e[i].value, NULL, 10) < cutoff)
            ops[nops++] = (store_kv_op){.ns = NS_NFLOG, .key = e[i].key, .key_len = e[i].key_len};
    }
    if (nops) store_kv_apply(n->o.st, ops, nops, NULL);
    mem_free(ops);
    store_kv_entries_free(e, ne);
}

int notify_new(const notify_options *o, notify **out, buf *err)
{
    *out = NULL;
    if (!o || !o->st || !o->reg) {
        if (err) buf_puts(err, "notify: a store and a registry are required");
        return -EINVAL;
    }
    int64_t pending = store_kv_count(o->st, NS_OUTBOX);
    if (pending < 0) {
        if (err) buf_printf(err, "notify: cannot read the outbox: %s", strerror((int)-pending));
        return (int)pending;
    }
    notify *n = mem_calloc(1, sizeof *n);
    n->o = *o;
    if (n->o.max_age_ms <= 0) n->o.max_age_ms = NOTIFY_DEFAULT_MAX_AGE_MS;
    if (n->o.queue_capacity <= 0) n->o.queue_capacity = NOTIFY_DEFAULT_CAPACITY;
    if (n->o.backoff_initial_ms <= 0) n->o.backoff_initial_ms = NOTIFY_DEFAULT_BACKOFF_MS;
    if (n->o.backoff_max_ms <= 0) n->o.backoff_max_ms = NOTIFY_DEFAULT_BACKOFF_MAX_MS;
    if (n->o.backoff_max_ms < n->o.backoff_initial_ms)
        n->o.backoff_max_ms = n->o.backoff_initial_ms;
    n->external_url = mem_strdup(o->external_url ? o->external_url : "");
    n->o.external_url = n->external_url;
    pthread_mutex_init(&n->mu, NULL);
    const char *dl[] = {"destination", NULL}, *dr[] = {"destination", "reason", NULL};
    n->f_sent = registry_counter(o->reg, "sidewatch_notifications_sent_total",
                                 "Notifications (outbox entries) delivered.", dl);
    n->f_errors = registry_counter(o->reg, "sidewatch_notifications_errors_total",
                                   "Failed delivery attempts.", dl);
    n->f_retries = registry_counter(o->reg, "sidewatch_notifications_retries_total",
                                    "Delivery attempts scheduled for a retry.", dl);
    n->f_dropped =
        registry_counter(o->reg, "sidewatch_notifications_dropped_total",
                         "Notifications (or, with reason relabeled, alerts) dropped.", dr);
    n->f_qlen = registry_gauge(o->reg, "sidewatch_notifications_queue_length",
                               "Outbox entries waiting for delivery.", dl);
    n->f_qcap = registry_gauge(o->reg, "sidewatch_notifications_queue_capacity",
                               "Outbox capacity per destination.", dl);
    static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    n->f_latency = registry_histogram(o->reg, "sidewatch_notifications_latency_seconds",
                                      "Duration of delivery attempts.", dl, bounds,
                                      sizeof bounds / sizeof bounds[0]);
    n->f_discovered = registry_gauge(o->reg, "sidewatch_notifications_alertmanagers_discovered",
                                     "Alertmanagers notifications are sent to.", NULL);
    if (!n->f_sent || !n->f_errors || !n->f_retries || !n->f_dropped || !n->f_qlen || !n->f_qcap ||
        !n->f_latency || !n->f_discovered) {
        if (err) buf_puts(err, "notify: a metric is already registered with another type");
        pthread_mutex_destroy(&n->mu);
        mem_free(n->external_url);
        mem_free(n);
        return -EEXIST;
    }
    n->m_discovered = registry_child(n->f_discovered, NULL);
    nflog_gc(n);
    if (pending > 0) log_info(COMPONENT, "%" PRId64 " notifications wait in the outbox", pending);
    *out = n;
    return 0;
}

/* path.Join("/", prefix, "/api/v2/alerts") for the usual prefixes. */
static void alerts_path(const char *prefix, buf *out)
{
    buf raw;
    buf_init(&raw, BUF_UNLIMITED);
    buf_printf(&raw, "/%s/api/v2/alerts", prefix ? prefix : "");
    const char *p = buf_cstr(&raw);
    buf_reset(out);
    for (size_t i = 0; p[i]; i++) {
        if (p[i] == '/' && out->len > 0 && buf_cstr(out)[out->len - 1] == '/') continue;
        buf_putc(out, p[i]);
    }
    buf_cleanup(&raw);
}

typedef struct want {
    char *id, *label, *url;
    bool webhook;
    const config_alertmanager *am;
    size_t am_index;
    const config_webhook *wh;
} want;

static void add_want(want **v, size_t *n, size_t *cap, want w)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*v)[i].id, w.id) == 0) {
            mem_free(w.id);
            mem_free(w.label);
            mem_free(w.url);
            return;
        }
    }
    *v = mem_grow(*v, sizeof **v, *n + 1, cap);
    (*v)[(*n)++] = w;
}

static void am_targets(const config *cfg, size_t ai, want **v, size_t *n, size_t *cap)
{
    const config_alertmanager *am = &cfg->alertmanagers[ai];
    buf path, u;
    buf_init(&path, BUF_UNLIMITED);
    buf_init(&u, BUF_UNLIMITED);
    alerts_path(am->path_prefix, &path);
    if (am->n_file_sd_configs || am->n_docker_sd_configs) {
        log_warn(COMPONENT,
                 "alertmanager %zu: only static_configs are used for Alertmanager "
                 "discovery; file_sd_configs and docker_sd_configs are ignored",
                 ai);
    }
    for (size_t g = 0; g < am->n_static_configs; g++) {
        const config_target_group *tg = &am->static_configs[g];
        for (size_t t = 0; t < tg->n_targets; t++) {
            labels_builder lb;
            labels_builder_init(&lb);
            arena scratch;
            arena_init(&scratch, BUF_UNLIMITED);
            labels_builder_set(&lb, "__address__", 11, tg->targets[t], strlen(tg->targets[t]));
            labels_builder_set(&lb, "__scheme__", 10, am->scheme, strlen(am->scheme));
            labels_builder_set(&lb, "__alerts_path__", 15, path.data, path.len);
            for (uint32_t i = 0; i < tg->labels->n; i++) {
                const label *l = &tg->labels->v[i];
                if (!labels_builder_get(&lb, l->name, l->name_len, NULL))
                    labels_builder_set(&lb, l->name, l->name_len, l->value, l->value_len);
            }
            if (relabel_apply(am->relabel_configs, am->n_relabel_configs, &lb, &scratch,
                              cfg->global.legacy_name_validation)) {
                size_t al, sl, pl;
                const char *addr = labels_builder_get(&lb, "__address__", 11, &al);
                const char *scheme = labels_builder_get(&lb, "__scheme__", 10, &sl);
                const char *p = labels_builder_get(&lb, "__alerts_path__", 15, &pl);
                if (addr && al > 0) {
                    buf_reset(&u);
                    buf_printf(&u, "%.*s://%.*s%.*s", (int)(scheme ? sl : 0), scheme ? scheme : "",
                               (int)al, addr, (int)(p ? pl : 0), p ? p : "");
                    buf id;
                    buf_init(&id, BUF_UNLIMITED);
                    buf_printf(&id, "am:%s", buf_cstr(&u));
                    add_want(v, n, cap,
                             (want){.id = buf_detach(&id, NULL),
                                    .label = mem_strdup(buf_cstr(&u)),
                                    .url = mem_strdup(buf_cstr(&u)),
                                    .am = am,
                                    .am_index = ai});
                    buf_cleanup(&id);
                }
            }
            arena_cleanup(&scratch);
            labels_builder_cleanup(&lb);
        }
    }
    buf_cleanup(&path);
    buf_cleanup(&u);
}

static void dest_stop_join(dest *d)
{
    if (!d->started) return;
    httpc_wakeup(d->http);
    pthread_join(d->thread, NULL);
    d->started = false;
}

/* Drops outbox entries of destinations no longer configured once they are
 * older than the outbox's max age (counted as max_age drops of their
 * destination). Called with n->mu held. */
static void sweep_orphans(notify *n, int64_t now)
{
    n->last_sweep_ms = now;
    store_kv_entry *e = NULL;
    size_t ne = 0;
    if (store_kv_list(n->o.st, NS_OUTBOX, NULL, 0, 0, &e, &ne, NULL) < 0) return;
    store_kv_op *ops = mem_calloc(ne ? ne : 1, sizeof *ops);
    size_t nops = 0;
    for (size_t i = 0; i < ne; i++) {
        const char *id = e[i].key;
        size_t idlen = strnlen(id, e[i].key_len);
        bool live = false;
        for (size_t k = 0; k < n->n_dests && !live; k++)
            live = strlen(n->dests[k]->id) == idlen && memcmp(n->dests[k]->id, id, idlen) == 0;
        entry en;
        if (live || entry_parse(&e[i], &en) < 0 || now - en.created_ms < n->o.max_age_ms) continue;
        ops[nops++] = (store_kv_op){.ns = NS_OUTBOX, .key = e[i].key, .key_len = e[i].key_len};
        const char *colon = memchr(id, ':', idlen);
        char *label = colon ? mem_strndup(colon + 1, idlen - (size_t)(colon + 1 - id))
                            : mem_strndup(id, idlen);
        const char *lv[] = {label, "max_age"};
        registry_inc(registry_child(n->f_dropped, lv));
        mem_free(label);
    }
    if (nops > 0 && store_kv_apply(n->o.st, ops, nops, NULL) == 0)
        log_warn(COMPONENT,
                 "dropped %zu notifications of removed destinations older than their "
                 "max age",
                 nops);
    mem_free(ops);
    store_kv_entries_free(e, ne);
}

int notify_apply_config(notify *n, const config *cfg, buf *err)
{
    (void)err;
    want *w = NULL;
    size_t nw = 0, cw = 0;
    for (size_t i = 0; i < cfg->n_alertmanagers; i++)
        am_targets(cfg, i, &w, &nw, &cw);
    for (size_t i = 0; i < cfg->n_webhooks; i++) {
        const config_webhook *wh = &cfg->webhooks[i];
        buf id;
        buf_init(&id, BUF_UNLIMITED);
        buf_printf(&id, "webhook:%s", wh->name);
        add_want(&w, &nw, &cw,
                 (want){.id = buf_detach(&id, NULL),
                        .label = mem_strdup(wh->name),
                        .url = mem_strdup(wh->url),
                        .webhook = true,
                        .wh = wh});
        buf_cleanup(&id);
    }

    config *c = config_ref((config *)cfg);
    dest **gone = NULL, **fresh = NULL;
    size_t n_gone = 0, n_fresh = 0, cap_gone = 0, cap_fresh = 0;
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n->n_dests; i++)
        n->dests[i]->keep = false;
    dest **next = mem_calloc(nw ? nw : 1, sizeof *next);
    for (size_t i = 0; i < nw; i++) {
        dest *d = NULL;
        for (size_t k = 0; k < n->n_dests && !d; k++) {
            if (!n->dests[k]->keep && strcmp(n->dests[k]->id, w[i].id) == 0) d = n->dests[k];
        }
        if (!d) {
            d = dest_new(n, w[i].id, w[i].label, w[i].webhook);
            fresh = mem_grow(fresh, sizeof *fresh, n_fresh + 1, &cap_fresh);
            fresh[n_fresh++] = d;
        }
        d->keep = true;
        config_unref(d->cfg);
        d->cfg = config_ref(c);
        d->am = w[i].am;
        d->am_index = w[i].am_index;
        d->wh = w[i].wh;
        mem_free(d->url);
        d->url = w[i].url;
        w[i].url = NULL;
        if (d->webhook) {
            /* New timing applies from the next flush on. */
            for (size_t g = 0; g < d->n_groups; g++) {
                int64_t cap = now_ms(n) + d->wh->group_interval_ms;
                if (d->groups[g].has_flushed && d->groups[g].next_flush_ms > cap)
                    d->groups[g].next_flush_ms = cap;
            }
        }
        pthread_cond_signal(&d->cv);
        next[i] = d;
    }
    for (size_t i = 0; i < n->n_dests; i++) {
        dest *d = n->dests[i];
        if (d->keep) continue;
        d->stop = true;
        pthread_cond_signal(&d->cv);
        gone = mem_grow(gone, sizeof *gone, n_gone + 1, &cap_gone);
        gone[n_gone++] = d;
    }
    mem_free(n->dests);
    n->dests = next;
    n->n_dests = nw;
    n->cap_dests = nw;
    size_t n_am = 0;
    for (size_t i = 0; i < nw; i++)
        n_am += !next[i]->webhook;
    registry_set(n->m_discovered, (double)n_am);
    config_unref(n->cfg);
    n->cfg = c;
    sweep_orphans(n, now_ms(n));
    for (size_t i = 0; i < n_fresh; i++) {
        if (pthread_create(&fresh[i]->thread, NULL, dest_main, fresh[i]) == 0)
            fresh[i]->started = true;
        else
            log_error(COMPONENT, "cannot start the delivery thread of %s", fresh[i]->label);
    }
    pthread_mutex_unlock(&n->mu);
    for (size_t i = 0; i < n_gone; i++) {
        dest_stop_join(gone[i]);
        dest_free(gone[i]);
    }
    mem_free(gone);
    mem_free(fresh);
    for (size_t i = 0; i < nw; i++) {
        mem_free(w[i].id);
        mem_free(w[i].label);
        mem_free(w[i].url);
    }
    mem_free(w);
    return 0;
}

/* Writes one Alertmanager v2 alert. */
static void write_am_alert(json_writer *jw, const labels *ls, const notify_alert *a)
{
    json_write_object_begin(jw);
    json_write_key(jw, "labels");
    write_labels(jw, ls);
    json_write_key(jw, "annotations");
    write_labels(jw, a->annotations);
    if (a->starts_at_ms) {
        json_write_key(jw, "startsAt");
        write_time(jw, a->starts_at_ms * 1000000);
    }
    if (a->ends_at_ms) {
        json_write_key(jw, "endsAt");
        write_time(jw, a->ends_at_ms * 1000000);
    }
    if (a->generator_url && *a->generator_url) {
        json_write_key(jw, "generatorURL");
        json_write_string(jw, a->generator_url);
    }
    json_write_object_end(jw);
}

void notify_send(notify *n, const notify_alert *alerts, size_t n_alerts)
{
    if (!n || n_alerts == 0) return;
    pthread_mutex_lock(&n->mu);
    const config *cfg = n->cfg;
    if (!cfg || n->n_dests == 0) {
        pthread_mutex_unlock(&n->mu);
        return;
    }
    int64_t now = now_ms(n);
    if (now - n->last_sweep_ms >= NOTIFY_SWEEP_INTERVAL_MS) sweep_orphans(n, now);
    /* External labels, then the global alert_relabel_configs. */
    labels **ls = mem_calloc(n_alerts, sizeof *ls);
    for (size_t i = 0; i < n_alerts; i++) {
        labels_builder lb;
        labels_builder_init(&lb);
        labels_builder_from(&lb, alerts[i].labels);
        const labels *ext = cfg->global.external_labels;
        for (uint32_t k = 0; ext && k < ext->n; k++) {
            if (!labels_get(alerts[i].labels, ext->v[k].name, ext->v[k].name_len, NULL))
                labels_builder_set(&lb, ext->v[k].name, ext->v[k].name_len, ext->v[k].value,
                                   ext->v[k].value_len);
        }
        arena scratch;
        arena_init(&scratch, BUF_UNLIMITED);
        if (relabel_apply(cfg->alert_relabel_configs, cfg->n_alert_relabel_configs, &lb, &scratch,
                          cfg->global.legacy_name_validation))
            ls[i] = labels_builder_finish(&lb, NULL);
        arena_cleanup(&scratch);
        labels_builder_cleanup(&lb);
        if (!ls[i]) {
            for (size_t d = 0; d < n->n_dests; d++)
                registry_inc(n->dests[d]->m_drop_relabeled);
        }
    }
    /* Alertmanagers: per config, its own relabeling and batches. */
    for (size_t ai = 0; ai < cfg->n_alertmanagers; ai++) {
        const config_alertmanager *am = &cfg->alertmanagers[ai];
        dest **targets = mem_calloc(n->n_dests, sizeof *targets);
        size_t nt = 0;
        for (size_t d = 0; d < n->n_dests; d++) {
            if (!n->dests[d]->webhook && n->dests[d]->am == am) targets[nt++] = n->dests[d];
        }
        if (nt == 0) {
            mem_free(targets);
            continue;
        }
        buf body;
        buf_init(&body, BUF_UNLIMITED);
        json_writer jw;
        size_t in_batch = 0;
        for (size_t i = 0; i <= n_alerts; i++) {
            bool last = i == n_alerts;
            labels *fin = NULL;
            if (!last && ls[i]) {
                labels_builder lb;
                labels_builder_init(&lb);
                labels_builder_from(&lb, ls[i]);
                arena scratch;
                arena_init(&scratch, BUF_UNLIMITED);
                if (relabel_apply(am->alert_relabel_configs, am->n_alert_relabel_configs, &lb,
                                  &scratch, cfg->global.legacy_name_validation))
                    fin = labels_builder_finish(&lb, NULL);
                arena_cleanup(&scratch);
                labels_builder_cleanup(&lb);
                if (!fin) {
                    for (size_t t = 0; t < nt; t++)
                        registry_inc(targets[t]->m_drop_relabeled);
                }
            }
            if (fin) {
                if (in_batch == 0) {
                    buf_reset(&body);
                    json_writer_init(&jw, &body);
                    json_write_array_begin(&jw);
                }
                write_am_alert(&jw, fin, &alerts[i]);
                in_batch++;
                labels_free(fin);
            }
            if (in_batch > 0 && (in_batch == NOTIFY_MAX_BATCH || last)) {
                json_write_array_end(&jw);
                for (size_t t = 0; t < nt; t++)
                    enqueue(targets[t], body.data, body.len, (int64_t)in_batch, now);
                in_batch = 0;
            }
        }
        buf_cleanup(&body);
        mem_free(targets);
    }
    /* Webhooks: the aggregation groups. */
    for (size_t d = 0; d < n->n_dests; d++) {
        dest *de = n->dests[d];
        if (!de->webhook) continue;
        for (size_t i = 0; i < n_alerts; i++) {
            if (ls[i]) group_insert(de, ls[i], &alerts[i], now);
        }
    }
    for (size_t i = 0; i < n_alerts; i++)
        labels_free(ls[i]);
    mem_free(ls);
    pthread_mutex_unlock(&n->mu);
}

int64_t notify_pending(notify *n)
{
    int64_t c = store_kv_count(n->o.st, NS_OUTBOX);
    return c < 0 ? 0 : c;
}

void notify_alertmanager_urls(notify *n, char ***urls, size_t *count)
{
    pthread_mutex_lock(&n->mu);
    *urls = mem_calloc(n->n_dests ? n->n_dests : 1, sizeof **urls);
    *count = 0;
    for (size_t i = 0; i < n->n_dests; i++) {
        if (!n->dests[i]->webhook) (*urls)[(*count)++] = mem_strdup(n->dests[i]->url);
    }
    pthread_mutex_unlock(&n->mu);
}

void notify_kick(notify *n)
{
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n->n_dests; i++)
        pthread_cond_signal(&n->dests[i]->cv);
    pthread_mutex_unlock(&n->mu);
}

void notify_free(notify *n)
{
    if (!n) return;
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n->n_dests; i++) {
        n->dests[i]->stop = true;
        pthread_cond_signal(&n->dests[i]->cv);
    }
    pthread_mutex_unlock(&n->mu);
    for (size_t i = 0; i < n->n_dests; i++) {
        dest_stop_join(n->dests[i]);
        dest_free(n->dests[i]);
    }
    mem_free(n->dests);
    config_unref(n->cfg);
    pthread_mutex_destroy(&n->mu);
    mem_free(n->external_url);
    mem_free(n);
}
