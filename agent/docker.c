/* docker: Docker Engine API client and container cache (see docker.h).
 *
 * Inside, everything happens on the loop thread: httpc callbacks record
 * results and mutate the cache; docker_step() starts what is due next and
 * publishes an immutable snapshot for readers on other threads. The events
 * stream's data callback runs inside libcurl, so it only parses and updates
 * the cache, never starts or cancels transfers.
 *
 * Ordering: the events stream is opened before the list is requested, so
 * no event between the list and the subscription is lost (the list is
 * requested once the stream's headers arrived, which dockerd sends as it
 * subscribes, or after DOCKER_EVENTS_SUBSCRIBE_WAIT_MS for engines that
 * hold them back). Events that arrive while the list is in flight are
 * newer than it: containers they touched survive the list merge even when
 * unlisted, and containers they destroyed are not re-added by it. An
 * event that arrives while the container's inspect is in flight makes it
 * inspect again afterwards, so the last word is always an inspect newer
 * than the last event. */
#include "docker.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "hmap.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "strutil.h"

#define COMP "docker"
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_BACKOFF_INITIAL_MS 500
#define DEFAULT_BACKOFF_MAX_MS 30000
#define DEFAULT_MAX_CONCURRENT 16
/* dockerd answers one-shot stats on its collector's next 1 s tick, shared
 * by every waiting request (measured on 20.10: ~1 s each, alone or not),
 * so a cycle costs about a second only if all containers ask at once. */
#define DEFAULT_MAX_CONCURRENT_STATS 128
#define STEP_MAX_WAIT_MS 1000
#define INSPECT_RETRY_MS 1000
#define BAD_EVENT_LOG_INTERVAL_MS 10000

static const char *const error_names[DOCKER_ERR_COUNT] = {
    "connect",   "timeout",   "http_status", "not_found",     "bad_json",
    "bad_event", "too_large", "transfer",    "stream_closed", "unsupported_api",
};

const char *docker_error_name(enum docker_error e)
{
    return (unsigned)e < DOCKER_ERR_COUNT ? error_names[e] : "unknown";
}

/* ---- types ------------------------------------------------------------------------ */

typedef struct entry {
    char *id, *name, *image, *image_id, *state, *health, *network_mode, *cgroup_parent;
    docker_label *labels; /* owned keys and values, sorted by key */
    size_t n_labels;
    int64_t pid, exit_code, restart_count;
    bool oom_killed;
    uint64_t oom_events;
    double created, started_at, finished_at;
    int64_t memory_limit, nano_cpus, cpu_quota, cpu_period, cpu_shares, pids_limit;
    bool inspected;
    /* sync state */
    uint64_t hash;
    bool need_inspect; /* an inspect is due (at not_before) */
    bool inflight;     /* an inspect is running */
    bool stale;        /* an event arrived while it ran: inspect again */
    int64_t not_before;
    int failures;
    uint64_t event_seq; /* d->event_seq of the last event that touched it */
    uint64_t list_mark; /* d->list_mark of the last list that had it */
} entry;

enum state {
    ST_IDLE,         /* waiting for next_attempt */
    ST_VERSION_WAIT, /* GET /version running */
    ST_INFO_START,   /* /version done, start GET /info */
    ST_INFO_WAIT,
    ST_EVENTS_START, /* /info done, start GET /events */
    ST_EVENTS_WAIT,  /* events requested, waiting for its headers */
    ST_LIST_WAIT,    /* events flowing, GET /containers/json running */
    ST_SYNCED,       /* list merged; events keep the cache current */
};

enum kind { R_VERSION, R_INFO, R_EVENTS, R_LIST, R_INSPECT, R_STATS };

typedef struct req {
    docker *d;
    enum kind kind;
    httpc_transfer *t; /* NULL while a stats request waits in the queue */
    char *id;          /* inspect, stats */
    docker_stats_fn fn;
    void *ctx;
    int64_t timeout_ms;
    struct req *prev, *next; /* d->reqs (running) */
    struct req *qnext;       /* d->squeue (waiting) */
} req;

struct docker {
    httpc *http;
    bool own_http;
    /* where */
    char *host, *base_url, *unix_socket;
    bool tls, tls_insecure;
    char *ca, *cert, *key;
    /* limits */
    int64_t timeout_ms, backoff_initial, backoff_max;
    size_t body_limit, line_limit;
    unsigned max_concurrent, max_concurrent_stats;

    /* session */
    enum state state;
    int64_t next_attempt, backoff, state_since, synced_at;
    bool disconnect_pending;
    char api[16];
    req *reqs;       /* running transfers */
    req *events_req; /* the events stream while it runs */
    req *squeue, *squeue_tail;
    unsigned inspects_inflight, stats_inflight;
    bool quiet_connect; /* connect failures already logged at warn */
    int64_t bad_event_logged_ms;
    bool closing;

    /* cache */
    hmap ents;
    uint64_t event_seq, list_seq, list_mark;
    char **tombs; /* destroyed while a list is in flight */
    size_t n_tombs, cap_tombs;
    buf line;
    bool line_overflow;

    /* engine facts */
    char *version, *os, *arch, *kernel, *cgroup_driver, *last_error;
    int cgroup_version;
    bool podman, connected, synced;
    bool events_unfiltered; /* the engine refused the events filter */
    int64_t ncpu, mem_total;

    /* publishing */
    bool changed;
    uint64_t seq;
    pthread_mutex_t mu;
    docker_snapshot *snap;

    _Atomic uint64_t errors[DOCKER_ERR_COUNT];
    _Atomic uint64_t n_sessions, n_syncs, n_inspects, n_events, n_events_ignored, n_stats;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_str(char **dst, const char *src)
{
    if (!src) src = "";
    if (*dst && strcmp(*dst, src) == 0) return;
    mem_free(*dst);
    *dst = mem_strdup(src);
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

/* A plausible container id, safe to put into a URL path. */
static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > DOCKER_ID_MAX || s[0] == '.' || s[0] == '-') return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* ---- logging and errors ------------------------------------------------------------ */

static void kv_quoted(buf *b, const char *key, const char *v)
{
    buf_printf(b, "%s%s=\"", b->len ? " " : "", key);
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if (c == '"' || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            buf_printf(b, "\\x%02x", c);
        else
            buf_putc(b, (char)c);
    }
    buf_putc(b, '"');
}

/* Logs one line with host, container (or NULL) and reason (or -1). */
static void dlog(docker *d, enum log_level lvl, const char *id, int reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void dlog(docker *d, enum log_level lvl, const char *id, int reason, const char *fmt, ...)
{
    if (!log_enabled(lvl)) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    buf kv;
    buf_init(&kv, 4096);
    kv_quoted(&kv, "host", d->host);
    if (id) kv_quoted(&kv, "container", id);
    if (reason >= 0) buf_printf(&kv, " reason=%s", docker_error_name((enum docker_error)reason));
    log_write(lvl, COMP, buf_cstr(&kv), "%s", msg);
    buf_cleanup(&kv);
}

static void count(docker *d, enum docker_error e)
{
    atomic_fetch_add(&d->errors[e], 1);
}

static enum docker_error classify(const httpc_response *r)
{
    switch (r->result) {
    case HTTPC_OK:
        return r->status == 404 ? DOCKER_ERR_NOT_FOUND : DOCKER_ERR_HTTP_STATUS;
    case HTTPC_ERR_TIMEOUT:
        return DOCKER_ERR_TIMEOUT;
    case HTTPC_ERR_TOO_LARGE:
        return DOCKER_ERR_TOO_LARGE;
    case HTTPC_ERR_CONNECT:
        return DOCKER_ERR_CONNECT;
    default:
        return DOCKER_ERR_TRANSFER;
    }
}

/* A readable reason: the transport error, or the status with the engine's
 * {"message": ...} when it sent one. */
static void describe(const httpc_response *r, char *out, size_t n)
{
    if (r->result != HTTPC_OK) {
        snprintf(out, n, "%s", r->error ? r->error : "request failed");
        return;
    }
    const char *m = NULL;
    json_doc *j =
        r->body_len ? json_doc_parse(r->body, r->body_len, DOCKER_BODY_LIMIT, 0, NULL) : NULL;
    m = json_val_string(json_val_get(json_doc_root(j), "message"), NULL);
    if (m)
        snprintf(out, n, "HTTP status %ld: %s", r->status, m);
    else
        snprintf(out, n, "HTTP status %ld", r->status);
    json_doc_free(j);
}

/* ---- JSON helpers ------------------------------------------------------------------ */

static const char *jstr(const json_val *o, const char *k)
{
    return json_val_string(json_val_get(o, k), NULL);
}

static const json_val *jobj(const json_val *o, const char *k)
{
    const json_val *v = json_val_get(o, k);
    return json_val_is_object(v) ? v : NULL;
}

/* An integer (or an integral real within int64) into *out. */
static bool jint(const json_val *o, const char *k, int64_t *out)
{
    const json_val *v = json_val_get(o, k);
    if (json_val_is_int(v)) return json_val_int64(v, out) == 0;
    double f;
    if (json_val_is_real(v) && json_val_double(v, &f) == 0) {
        if (f >= -9.2e18 && f <= 9.2e18) {
            *out = (int64_t)f;
            return true;
        }
    }
    return false;
}

static int64_t jint_or(const json_val *o, const char *k, int64_t def)
{
    int64_t v;
    return jint(o, k, &v) ? v : def;
}

/* RFC 3339 (Go's time.Time JSON) to unix seconds; 0 for Go's zero time
 * ("0001-01-01T00:00:00Z"), anything before 1970 and anything unparsable. */
static double parse_time(const char *s)
{
    int64_t sec;
    int32_t nsec;
    if (!s || strutil_parse_rfc3339(s, strlen(s), &sec, &nsec) != 0 || memcmp(s, "1970", 4) < 0)
        return 0;
    return sec > 0 ? (double)sec + nsec / 1e9 : 0;
}

/* "1.41" -> 1041; -1 when not <digits>.<digits>. */
static int parse_api(const char *s)
{
    if (!s) return -1;
    char *end;
    long ma = strtol(s, &end, 10);
    if (end == s || *end != '.' || ma < 0 || ma > 99 || s[0] < '0' || s[0] > '9') return -1;
    const char *m = end + 1;
    if (*m < '0' || *m > '9') return -1;
    long mi = strtol(m, &end, 10);
    if (*end != '\0' || mi < 0 || mi > 999) return -1;
    return (int)(ma * 1000 + mi);
}

/* ---- the cache --------------------------------------------------------------------- */

static bool entry_eq(const void *val, const void *key)
{
    return strcmp(((const entry *)val)->id, key) == 0;
}

static uint64_t id_hash(const char *id)
{
    return strutil_hash64(id, strlen(id), 0x646f636b6572ULL);
}

static entry *find(docker *d, const char *id)
{
    return hmap_get(&d->ents, id_hash(id), entry_eq, id);
}

static void free_labels(entry *e)
{
    for (size_t i = 0; i < e->n_labels; i++) {
        mem_free((char *)e->labels[i].key);
        mem_free((char *)e->labels[i].value);
    }
    mem_free(e->labels);
    e->labels = NULL;
    e->n_labels = 0;
}

static void entry_free(entry *e)
{
    if (!e) return;
    mem_free(e->id);
    mem_free(e->name);
    mem_free(e->image);
    mem_free(e->image_id);
    mem_free(e->state);
    mem_free(e->health);
    mem_free(e->network_mode);
    mem_free(e->cgroup_parent);
    free_labels(e);
    mem_free(e);
}

static entry *add(docker *d, const char *id)
{
    entry *e = mem_calloc(1, sizeof *e);
    e->id = mem_strdup(id);
    e->hash = id_hash(id);
    hmap_put(&d->ents, e->hash, e);
    d->changed = true;
    return e;
}

static void remove_entry(docker *d, entry *e)
{
    hmap_del(&d->ents, e->hash, entry_eq, e->id);
    entry_free(e);
    d->changed = true;
}

static bool tombstoned(docker *d, const char *id)
{
    for (size_t i = 0; i < d->n_tombs; i++)
        if (strcmp(d->tombs[i], id) == 0) return true;
    return false;
}

static void clear_tombs(docker *d)
{
    for (size_t i = 0; i < d->n_tombs; i++)
        mem_free(d->tombs[i]);
    d->n_tombs = 0;
}

static void want_inspect(entry *e)
{
    if (e->inflight) {
        e->stale = true;
    } else {
        e->need_inspect = true;
        e->not_before = 0;
    }
}

/* Strips the one leading '/' of a Docker name. */
static const char *bare_name(const char *n)
{
    return n && n[0] == '/' ? n + 1 : nz(n);
}

static int label_cmp(const void *a, const void *b)
{
    return strcmp(((const docker_label *)a)->key, ((const docker_label *)b)->key);
}

static void set_labels(docker *d, entry *e, const json_val *obj)
{
    free_labels(e);
    size_t n = json_val_len(obj);
    if (n) e->labels = mem_calloc(n, sizeof *e->labels);
    json_iter it = {0};
    const char *k;
    const json_val *v;
    while (json_val_next(obj, &it, &k, &v)) {
        if (!json_val_is_string(v)) continue;
        e->labels[e->n_labels].key = mem_strdup(k);
        e->labels[e->n_labels].value = mem_strdup(json_val_string(v, NULL));
        e->n_labels++;
    }
    if (e->n_labels > 1) qsort(e->labels, e->n_labels, sizeof *e->labels, label_cmp);
    d->changed = true;
}

/* The container's own name among Names (link aliases look like
 * "/other/alias"); the first one otherwise. */
static const char *pick_name(const json_val *names)
{
    const char *first = NULL;
    const json_val *v;
    for (size_t i = 0; (v = json_val_at(names, i)); i++) {
        const char *s = json_val_string(v, NULL);
        if (!s) continue;
        if (!first) first = s;
        if (!strchr(bare_name(s), '/')) return s;
    }
    return first;
}

/* ---- applying engine JSON ---------------------------------------------------------- */

int docker_feed_inspect(docker *d, const char *id, const char *body, size_t len)
{
    json_doc *doc = json_doc_parse(body, len, d->body_limit, 0, NULL);
    const json_val *root = json_doc_root(doc);
    if (!json_val_is_object(root)) {
        json_doc_free(doc);
        return -EINVAL;
    }
    const char *rid = jstr(root, "Id");
    if (!rid || strcmp(rid, id) != 0) {
        json_doc_free(doc);
        return -EINVAL;
    }
    entry *e = find(d, id);
    if (!e) { /* destroyed meanwhile */
        json_doc_free(doc);
        return 0;
    }
    const json_val *cfg = jobj(root, "Config"), *st = jobj(root, "State"),
                   *hc = jobj(root, "HostConfig");
    if (jstr(root, "Name")) set_str(&e->name, bare_name(jstr(root, "Name")));
    if (cfg && jstr(cfg, "Image")) set_str(&e->image, jstr(cfg, "Image"));
    if (jstr(root, "Image")) set_str(&e->image_id, jstr(root, "Image"));
    const json_val *labels = cfg ? jobj(cfg, "Labels") : NULL;
    if (labels)
        set_labels(d, e, labels);
    else if (cfg)
        free_labels(e); /* "Labels": null */
    if (jstr(root, "Created")) e->created = parse_time(jstr(root, "Created"));
    e->restart_count = jint_or(root, "RestartCount", 0);
    if (st) {
        if (jstr(st, "Status")) set_str(&e->state, jstr(st, "Status"));
        e->pid = jint_or(st, "Pid", 0);
        e->exit_code = jint_or(st, "ExitCode", 0);
        e->oom_killed = json_val_is_true(json_val_get(st, "OOMKilled"));
        e->started_at = parse_time(jstr(st, "StartedAt"));
        e->finished_at = parse_time(jstr(st, "FinishedAt"));
        const json_val *h = jobj(st, "Health");
        set_str(&e->health, h ? jstr(h, "Status") : "");
    }
    if (hc) {
        set_str(&e->network_mode, jstr(hc, "NetworkMode"));
        set_str(&e->cgroup_parent, jstr(hc, "CgroupParent"));
        e->memory_limit = jint_or(hc, "Memory", 0);
        e->nano_cpus = jint_or(hc, "NanoCpus", 0);
        e->cpu_quota = jint_or(hc, "CpuQuota", 0);
        e->cpu_period = jint_or(hc, "CpuPeriod", 0);
        e->cpu_shares = jint_or(hc, "CpuShares", 0);
        e->pids_limit = jint_or(hc, "PidsLimit", 0);
    }
    e->inspected = true;
    d->changed = true;
    atomic_fetch_add(&d->n_inspects, 1);
    json_doc_free(doc);
    return 0;
}

/* Merges a list; containers not in it are removed unless an event newer
 * than the list request (list_seq) touched them. */
static int merge_list(docker *d, const char *body, size_t len, uint64_t list_seq)
{
    json_doc *doc = json_doc_parse(body, len, d->body_limit, 0, NULL);
    const json_val *root = json_doc_root(doc);
    if (!json_val_is_array(root)) {
        json_doc_free(doc);
        return -EINVAL;
    }
    uint64_t mark = ++d->list_mark;
    size_t bad = 0;
    const json_val *c;
    for (size_t i = 0; (c = json_val_at(root, i)); i++) {
        const char *id = jstr(c, "Id");
        if (!id || !valid_id(id)) {
            bad++;
            continue;
        }
        if (tombstoned(d, id)) continue;
        entry *e = find(d, id);
        if (!e) e = add(d, id);
        e->list_mark = mark;
        const json_val *names = json_val_get(c, "Names");
        const char *name = json_val_is_array(names) ? pick_name(names) : NULL;
        if (name) set_str(&e->name, bare_name(name));
        if (!e->inspected && jstr(c, "Image")) set_str(&e->image, jstr(c, "Image"));
        if (jstr(c, "ImageID")) set_str(&e->image_id, jstr(c, "ImageID"));
        const json_val *labels = jobj(c, "Labels");
        if (labels) set_labels(d, e, labels);
        if (jstr(c, "State")) set_str(&e->state, jstr(c, "State"));
        int64_t created;
        if (jint(c, "Created", &created) && created > 0) e->created = (double)created;
        const json_val *hc = jobj(c, "HostConfig");
        if (hc && jstr(hc, "NetworkMode")) set_str(&e->network_mode, jstr(hc, "NetworkMode"));
        want_inspect(e);
    }
    size_t it = 0;
    void *v;
    while (hmap_next(&d->ents, &it, &v)) {
        entry *e = v;
        if (e->list_mark != mark && e->event_seq <= list_seq) remove_entry(d, e);
    }
    clear_tombs(d);
    d->changed = true;
    json_doc_free(doc);
    if (bad) {
        count(d, DOCKER_ERR_BAD_JSON);
        dlog(d, LOG_WARN, NULL, DOCKER_ERR_BAD_JSON,
             "container list: skipped %zu entries without a usable Id", bad);
    }
    atomic_fetch_add(&d->n_syncs, 1);
    return 0;
}

int docker_feed_list(docker *d, const char *body, size_t len)
{
    return merge_list(d, body, len, d->event_seq);
}

int docker_feed_info(docker *d, const char *body, size_t len)
{
    json_doc *doc = json_doc_parse(body, len, d->body_limit, 0, NULL);
    const json_val *root = json_doc_root(doc);
    if (!json_val_is_object(root)) {
        json_doc_free(doc);
        return -EINVAL;
    }
    set_str(&d->cgroup_driver, jstr(root, "CgroupDriver"));
    const char *cv = jstr(root, "CgroupVersion");
    int64_t cvi = 0;
    if (cv)
        d->cgroup_version = strcmp(cv, "1") == 0 ? 1 : strcmp(cv, "2") == 0 ? 2 : 0;
    else
        d->cgroup_version =
            jint(root, "CgroupVersion", &cvi) && (cvi == 1 || cvi == 2) ? (int)cvi : 0;
    d->ncpu = jint_or(root, "NCPU", 0);
    d->mem_total = jint_or(root, "MemTotal", 0);
    if (jstr(root, "KernelVersion")) set_str(&d->kernel, jstr(root, "KernelVersion"));
    d->changed = true;
    json_doc_free(doc);
    return 0;
}

int docker_negotiate_version(const char *body, size_t len, char out[16], buf *err)
{
    json_doc *doc = json_doc_parse(body, len, DOCKER_BODY_LIMIT, 0, NULL);
    const json_val *root = json_doc_root(doc);
    const char *av = jstr(root, "ApiVersion");
    int v = parse_api(av);
    if (v < 0) {
        buf_puts(err, "the engine's /version has no usable ApiVersion");
        json_doc_free(doc);
        return -EINVAL;
    }
    int newest = parse_api(DOCKER_API_NEWEST), oldest = parse_api(DOCKER_API_OLDEST);
    int min = parse_api(jstr(root, "MinAPIVersion"));
    int use = v < newest ? v : newest;
    int rc = 0;
    if (v < oldest) {
        buf_printf(err,
                   "the engine speaks Docker API %s, older than %s, the oldest sidewatch "
                   "supports (Docker 20.10 or Podman 4 and newer)",
                   av, DOCKER_API_OLDEST);
        rc = -ENOTSUP;
    } else if (min > use) {
        buf_printf(err, "the engine requires Docker API %s or newer; sidewatch speaks %s to %s",
                   jstr(root, "MinAPIVersion"), DOCKER_API_OLDEST, DOCKER_API_NEWEST);
        rc = -ENOTSUP;
    } else {
        snprintf(out, 16, "%d.%d", use / 1000, use % 1000);
    }
    json_doc_free(doc);
    return rc;
}

static void apply_version_facts(docker *d, const char *body, size_t len)
{
    json_doc *doc = json_doc_parse(body, len, d->body_limit, 0, NULL);
    const json_val *root = json_doc_root(doc);
    if (!json_val_is_object(root)) {
        json_doc_free(doc);
        return;
    }
    set_str(&d->version, jstr(root, "Version"));
    set_str(&d->os, jstr(root, "Os"));
    set_str(&d->arch, jstr(root, "Arch"));
    set_str(&d->kernel, jstr(root, "KernelVersion"));
    d->podman = false;
    const json_val *comps = json_val_get(root, "Components"), *c;
    for (size_t i = 0; (c = json_val_at(comps, i)); i++) {
        const char *n = jstr(c, "Name");
        if (n && strstr(n, "Podman")) d->podman = true;
    }
    d->changed = true;
    json_doc_free(doc);
}

/* ---- events ------------------------------------------------------------------------ */

static void bad_event(docker *d, enum docker_error reason, const char *why, const char *line,
                      size_t len)
{
    count(d, reason);
    int64_t now = mono_ms();
    bool loud =
        d->bad_event_logged_ms == 0 || now - d->bad_event_logged_ms >= BAD_EVENT_LOG_INTERVAL_MS;
    if (loud) d->bad_event_logged_ms = now;
    /* log_write escapes the message; only its length needs a cap here. */
    int shown = len < 120 ? (int)len : 120;
    dlog(d, loud ? LOG_WARN : LOG_DEBUG, NULL, reason, "skipped an events line (%s)%s%.*s%s", why,
         len ? ": " : "", shown, line, (int)len > shown ? "..." : "");
}

static void set_state(docker *d, entry *e, const char *state)
{
    set_str(&e->state, state);
    d->changed = true;
}

/* Applies one decoded event. Returns false for a malformed one. */
static bool apply_event(docker *d, const json_val *ev)
{
    const char *type = jstr(ev, "Type");
    if (json_val_get(ev, "Type") && !type) return false;
    const json_val *actor = jobj(ev, "Actor");
    const char *id = actor ? jstr(actor, "ID") : NULL;
    if (!id) id = jstr(ev, "id");
    const char *action = jstr(ev, "Action");
    if (!action) action = jstr(ev, "status");
    if (type && strcmp(type, "container") != 0) {
        atomic_fetch_add(&d->n_events_ignored, 1);
        return true;
    }
    if (!action || !id || !valid_id(id)) return false;
    const json_val *attrs = actor ? jobj(actor, "Attributes") : NULL;

    /* "health_status: healthy", "exec_create: /bin/sh -c ..." */
    char base[32];
    size_t bl = strcspn(action, ":");
    if (bl >= sizeof base) bl = sizeof base - 1;
    memcpy(base, action, bl);
    base[bl] = '\0';
    const char *detail =
        action[strcspn(action, ":")] == ':' ? action + strcspn(action, ":") + 1 : NULL;
    while (detail && *detail == ' ')
        detail++;

    static const char *const ignored[] = {
        "exec_create", "exec_start", "exec_die",     "exec_detach",    "attach",  "detach",
        "commit",      "copy",       "archive-path", "extract-to-dir", "export",  "top",
        "resize",      "init",       "cleanup",      "mount",          "unmount", "prune",
        "checkpoint",  "sync",       "kill",         "import",         "exec",
    };
    for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++) {
        if (strcmp(base, ignored[i]) == 0) {
            atomic_fetch_add(&d->n_events_ignored, 1);
            return true;
        }
    }

    entry *e = find(d, id);
    if (strcmp(base, "destroy") == 0 || strcmp(base, "remove") == 0) {
        if (e) remove_entry(d, e);
        if (d->state == ST_LIST_WAIT && !tombstoned(d, id)) {
            d->tombs = mem_grow(d->tombs, sizeof *d->tombs, d->n_tombs + 1, &d->cap_tombs);
            d->tombs[d->n_tombs++] = mem_strdup(id);
        }
        atomic_fetch_add(&d->n_events, 1);
        return true;
    }
    if (!e) {
        /* Not cached yet (created while we were syncing, or missed):
         * start from what the event says, inspect for the rest. */
        e = add(d, id);
        const char *name = attrs ? jstr(attrs, "name") : NULL;
        const char *image = attrs ? jstr(attrs, "image") : NULL;
        set_str(&e->name, bare_name(name));
        set_str(&e->image, image);
        want_inspect(e);
    }
    e->event_seq = ++d->event_seq;
    if (e->inflight) e->stale = true;
    atomic_fetch_add(&d->n_events, 1);

    if (strcmp(base, "create") == 0) {
        set_state(d, e, "created");
        want_inspect(e);
    } else if (strcmp(base, "start") == 0 || strcmp(base, "restart") == 0) {
        set_state(d, e, "running");
        want_inspect(e);
    } else if (strcmp(base, "die") == 0) {
        set_state(d, e, "exited");
        e->pid = 0;
        const char *code = attrs ? jstr(attrs, "exitCode") : NULL;
        if (code) {
            char *end;
            long long c = strtoll(code, &end, 10);
            if (end != code && *end == '\0') e->exit_code = c;
        }
        want_inspect(e);
    } else if (strcmp(base, "stop") == 0 || strcmp(base, "update") == 0) {
        want_inspect(e);
    } else if (strcmp(base, "pause") == 0) {
        set_state(d, e, "paused");
    } else if (strcmp(base, "unpause") == 0) {
        set_state(d, e, "running");
    } else if (strcmp(base, "oom") == 0) {
        e->oom_events++;
        d->changed = true;
    } else if (strcmp(base, "rename") == 0) {
        const char *name = attrs ? jstr(attrs, "name") : NULL;
        if (name) set_str(&e->name, bare_name(name));
        d->changed = true;
        want_inspect(e);
    } else if (strcmp(base, "health_status") == 0) {
        /* Docker: "health_status: healthy"; Podman: Attributes.health_status. */
        const char *h = detail && *detail ? detail : attrs ? jstr(attrs, "health_status") : NULL;
        if (h && (strcmp(h, "healthy") == 0 || strcmp(h, "unhealthy") == 0 ||
                  strcmp(h, "starting") == 0)) {
            set_str(&e->health, h);
            d->changed = true;
        } else {
            want_inspect(e);
        }
    } else {
        /* An action this client does not know: the inspect will tell. */
        want_inspect(e);
    }
    return true;
}

static void handle_line(docker *d, const char *line, size_t len)
{
    size_t a = 0, b = len;
    while (a < b && (line[a] == ' ' || line[a] == '\t' || line[a] == '\r'))
        a++;
    while (b > a && (line[b - 1] == ' ' || line[b - 1] == '\t' || line[b - 1] == '\r'))
        b--;
    if (a == b) return;
    json_read_error jerr;
    json_doc *doc = json_doc_parse(line + a, b - a, d->line_limit, 0, &jerr);
    const json_val *ev = json_doc_root(doc);
    if (!json_val_is_object(ev)) {
        bad_event(d, DOCKER_ERR_BAD_EVENT, doc ? "not a JSON object" : jerr.text, line + a, b - a);
    } else if (!apply_event(d, ev)) {
        bad_event(d, DOCKER_ERR_BAD_EVENT, "not a usable event", line + a, b - a);
    }
    json_doc_free(doc);
}

void docker_feed_events(docker *d, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (!d->line_overflow && buf_append(&d->line, p, take) < 0) {
            d->line_overflow = true;
            buf_reset(&d->line);
        }
        if (nl) {
            if (d->line_overflow)
                bad_event(d, DOCKER_ERR_TOO_LARGE, "longer than the events line limit", "", 0);
            else
                handle_line(d, buf_cstr(&d->line), d->line.len);
            buf_reset(&d->line);
            d->line_overflow = false;
            take++;
        }
        p += take;
        n -= take;
    }
}

/* ---- requests ---------------------------------------------------------------------- */

static void on_done(void *ctx, const httpc_response *resp);

static int events_data(void *ctx, const char *p, size_t n)
{
    docker_feed_events(ctx, p, n);
    return 0;
}

static void link_req(docker *d, req *r)
{
    r->prev = NULL;
    r->next = d->reqs;
    if (d->reqs) d->reqs->prev = r;
    d->reqs = r;
}

static void unlink_req(docker *d, req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        d->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void req_free(req *r)
{
    mem_free(r->id);
    mem_free(r);
}

/* Starts r (kind and id set) on path, versioned unless it is /version.
 * Returns 0 or -errno (r is not linked then). */
static int start(docker *d, req *r, const char *path)
{
    buf url;
    buf_init(&url, 8192);
    buf_puts(&url, d->base_url);
    if (r->kind != R_VERSION) buf_printf(&url, "/v%s", d->api);
    buf_puts(&url, path);
    httpc_request hr = {
        .url = buf_cstr(&url),
        .unix_socket = d->unix_socket,
        .timeout_ms = r->timeout_ms ? r->timeout_ms : d->timeout_ms,
        .connect_timeout_ms = d->timeout_ms,
        .body_limit = d->body_limit,
        .tls_ca_file = d->ca,
        .tls_cert_file = d->cert,
        .tls_key_file = d->key,
        .tls_insecure_skip_verify = d->tls_insecure,
    };
    if (r->kind == R_EVENTS) {
        hr.timeout_ms = 0; /* lives as long as the engine keeps it open */
        hr.on_data = events_data;
        hr.data_ctx = d;
    }
    r->d = d;
    int rc = httpc_start(d->http, &hr, on_done, r, &r->t);
    buf_cleanup(&url);
    if (rc < 0) return rc;
    link_req(d, r);
    return 0;
}

static req *new_req(enum kind kind, const char *id)
{
    req *r = mem_calloc(1, sizeof *r);
    r->kind = kind;
    if (id) r->id = mem_strdup(id);
    return r;
}

/* Records a session failure: counts, logs, and asks step to reconnect. */
static void session_fail(docker *d, enum docker_error reason, const char *what, const char *why)
{
    count(d, reason);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: %s", what, why);
    set_str(&d->last_error, msg);
    d->changed = true;
    /* A session that stayed synced a while earns a quick first retry. */
    if (d->state == ST_SYNCED && mono_ms() - d->synced_at >= DOCKER_STABLE_MS)
        d->backoff = d->backoff_initial;
    enum log_level lvl = LOG_WARN;
    if (reason == DOCKER_ERR_CONNECT) {
        if (d->quiet_connect) lvl = LOG_DEBUG;
        d->quiet_connect = true;
    } else if (reason == DOCKER_ERR_UNSUPPORTED_API) {
        lvl = LOG_ERROR;
    }
    char in[32];
    strutil_format_duration(d->backoff, in);
    dlog(d, lvl, NULL, (int)reason, "%s; reconnecting in %s", msg, in);
    d->disconnect_pending = true;
}

/* describe(), with a clearer word for a unix socket that is not there. */
static void describe_for(docker *d, const httpc_response *r, char *out, size_t n)
{
    if (r->result == HTTPC_ERR_CONNECT && d->unix_socket) {
        if (access(d->unix_socket, F_OK) != 0)
            snprintf(out, n, "socket %s: %s", d->unix_socket, strerror(errno));
        else
            snprintf(out, n, "cannot connect to socket %s: %s", d->unix_socket,
                     r->error ? r->error : "connect failed");
        return;
    }
    describe(r, out, n);
}

static void done_session(docker *d, req *r, const httpc_response *resp)
{
    static const char *const what[] = {
        [R_VERSION] = "GET /version",
        [R_INFO] = "GET /info",
        [R_EVENTS] = "the events stream",
        [R_LIST] = "GET /containers/json",
    };
    if (d->disconnect_pending) return;
    bool ok = resp->result == HTTPC_OK && resp->status >= 200 && resp->status < 300;
    if (r->kind == R_EVENTS) {
        /* Any end of a stream that had been accepted is the engine going away. */
        char why[512];
        if (resp->status >= 200 && resp->status < 300) {
            snprintf(why, sizeof why, "%s",
                     resp->result == HTTPC_OK ? "closed by the engine" : nz(resp->error));
            session_fail(d,
                         resp->result == HTTPC_OK || resp->result == HTTPC_ERR_TRANSFER
                             ? DOCKER_ERR_STREAM_CLOSED
                             : classify(resp),
                         what[r->kind], why);
        } else {
            describe_for(d, resp, why, sizeof why);
            enum docker_error e = classify(resp);
            session_fail(d, e == DOCKER_ERR_NOT_FOUND ? DOCKER_ERR_HTTP_STATUS : e, what[r->kind],
                         why);
            /* An engine that rejects the type filter gets the unfiltered
             * stream next time (other types are ignored anyway). */
            if (resp->result == HTTPC_OK && resp->status >= 400 && !d->events_unfiltered) {
                d->events_unfiltered = true;
                dlog(d, LOG_WARN, NULL, -1, "the events stream will be requested without filters");
            }
        }
        return;
    }
    if (!ok) {
        char why[512];
        describe_for(d, resp, why, sizeof why);
        enum docker_error e = classify(resp);
        session_fail(d, e == DOCKER_ERR_NOT_FOUND ? DOCKER_ERR_HTTP_STATUS : e, what[r->kind], why);
        return;
    }
    switch (r->kind) {
    case R_VERSION: {
        buf err;
        buf_init(&err, 1024);
        char api[16];
        int rc = docker_negotiate_version(resp->body, resp->body_len, api, &err);
        if (rc < 0) {
            session_fail(d, rc == -ENOTSUP ? DOCKER_ERR_UNSUPPORTED_API : DOCKER_ERR_BAD_JSON,
                         what[r->kind], buf_cstr(&err));
        } else {
            memcpy(d->api, api, sizeof d->api);
            apply_version_facts(d, resp->body, resp->body_len);
            d->state = ST_INFO_START;
        }
        buf_cleanup(&err);
        break;
    }
    case R_INFO:
        if (docker_feed_info(d, resp->body, resp->body_len) < 0) {
            session_fail(d, DOCKER_ERR_BAD_JSON, what[r->kind], "not a JSON object");
        } else {
            d->state = ST_EVENTS_START;
        }
        break;
    case R_LIST:
        if (merge_list(d, resp->body, resp->body_len, d->list_seq) < 0) {
            session_fail(d, DOCKER_ERR_BAD_JSON, what[r->kind], "not a JSON array");
        } else {
            d->state = ST_SYNCED;
            d->synced = true;
            d->synced_at = mono_ms();
            d->quiet_connect = false;
            set_str(&d->last_error, "");
            d->changed = true;
            dlog(d, LOG_INFO, NULL, -1, "synced with %s %s (API %s): %zu containers",
                 d->podman ? "Podman" : "Docker", nz(d->version), d->api, hmap_len(&d->ents));
        }
        break;
    default:
        break;
    }
}

static void done_inspect(docker *d, req *r, const httpc_response *resp)
{
    entry *e = find(d, r->id);
    if (d->inspects_inflight) d->inspects_inflight--;
    if (e) e->inflight = false;
    if (resp->result == HTTPC_ERR_CANCELLED) {
        if (e) want_inspect(e);
        return;
    }
    bool ok = resp->result == HTTPC_OK && resp->status == 200;
    enum docker_error reason = DOCKER_ERR_BAD_JSON;
    char why[512] = "the body is not a container's JSON";
    if (ok && docker_feed_inspect(d, r->id, resp->body, resp->body_len) == 0) {
        if (e) {
            e->failures = 0;
            if (e->stale) {
                e->stale = false;
                want_inspect(e);
            }
        }
        return;
    }
    if (!ok) {
        reason = classify(resp);
        describe_for(d, resp, why, sizeof why);
    }
    if (reason == DOCKER_ERR_NOT_FOUND && !e) {
        /* Its destroy event came first: a short-lived container, no error. */
        dlog(d, LOG_DEBUG, r->id, -1, "container destroyed before its inspect returned");
        return;
    }
    count(d, reason);
    if (reason == DOCKER_ERR_NOT_FOUND) {
        /* Gone between the list (or event) and the inspect. */
        dlog(d, LOG_INFO, r->id, (int)reason,
             "container vanished before it could be inspected (%s)", why);
        if (e) remove_entry(d, e);
        return;
    }
    dlog(d, LOG_WARN, r->id, (int)reason, "inspect failed: %s", why);
    if (e) {
        /* Keep what we have and try again later. */
        e->stale = false;
        e->need_inspect = true;
        int64_t delay = INSPECT_RETRY_MS << (e->failures < 8 ? e->failures : 8);
        if (delay > d->backoff_max) delay = d->backoff_max;
        e->not_before = mono_ms() + delay;
        e->failures++;
    }
}

static void start_queued_stats(docker *d);

static void done_stats(docker *d, req *r, const httpc_response *resp)
{
    if (d->stats_inflight) d->stats_inflight--;
    docker_stats_result res = {
        .id = r->id,
        .ok = resp->result == HTTPC_OK && resp->status >= 200 && resp->status < 300,
        .status = resp->status,
        .body = resp->body ? resp->body : "",
        .body_len = resp->body_len,
        .seconds = resp->seconds,
    };
    char why[512];
    if (!res.ok) {
        describe_for(d, resp, why, sizeof why);
        res.error = classify(resp);
        res.message = why;
        if (resp->result != HTTPC_ERR_CANCELLED) {
            count(d, res.error);
            dlog(d, res.error == DOCKER_ERR_NOT_FOUND ? LOG_INFO : LOG_WARN, r->id, (int)res.error,
                 "stats request failed: %s", why);
        } else {
            res.message = "cancelled";
        }
    }
    r->fn(r->ctx, &res);
    if (!d->closing) start_queued_stats(d);
}

static void on_done(void *ctx, const httpc_response *resp)
{
    req *r = ctx;
    docker *d = r->d;
    unlink_req(d, r);
    r->t = NULL;
    if (r == d->events_req) d->events_req = NULL;
    switch (r->kind) {
    case R_INSPECT:
        done_inspect(d, r, resp);
        break;
    case R_STATS:
        done_stats(d, r, resp);
        break;
    default:
        if (resp->result != HTTPC_ERR_CANCELLED && !d->closing) done_session(d, r, resp);
        break;
    }
    req_free(r);
}

/* ---- stats ------------------------------------------------------------------------- */

static void start_queued_stats(docker *d)
{
    while (d->squeue && d->stats_inflight < d->max_concurrent_stats) {
        req *r = d->squeue;
        d->squeue = r->qnext;
        if (!d->squeue) d->squeue_tail = NULL;
        char path[DOCKER_ID_MAX + 64];
        snprintf(path, sizeof path, "/containers/%s/stats?stream=false&one-shot=true", r->id);
        if (start(d, r, path) < 0) {
            count(d, DOCKER_ERR_TRANSFER);
            docker_stats_result res = {.id = r->id,
                                       .error = DOCKER_ERR_TRANSFER,
                                       .message = "could not start the request",
                                       .body = ""};
            r->fn(r->ctx, &res);
            req_free(r);
            continue;
        }
        d->stats_inflight++;
        atomic_fetch_add(&d->n_stats, 1);
    }
}

int docker_stats_fetch(docker *d, const char *const *ids, size_t n, int64_t timeout_ms,
                       docker_stats_fn fn, void *ctx)
{
    if (!d->api[0]) return -ENOTCONN;
    for (size_t i = 0; i < n; i++)
        if (!ids[i] || !valid_id(ids[i])) return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        req *r = new_req(R_STATS, ids[i]);
        r->d = d;
        r->fn = fn;
        r->ctx = ctx;
        r->timeout_ms = timeout_ms;
        if (d->squeue_tail)
            d->squeue_tail->qnext = r;
        else
            d->squeue = r;
        d->squeue_tail = r;
    }
    start_queued_stats(d);
    return 0;
}

/* ---- session ----------------------------------------------------------------------- */

static void disconnect(docker *d, int64_t now)
{
    d->disconnect_pending = false;
    for (req *r = d->reqs, *next; r; r = next) {
        next = r->next;
        if (r->kind != R_STATS) httpc_cancel(d->http, r->t);
    }
    buf_reset(&d->line);
    d->line_overflow = false;
    clear_tombs(d);
    d->next_attempt = now + d->backoff;
    d->backoff = d->backoff * 2 > d->backoff_max ? d->backoff_max : d->backoff * 2;
    d->state = ST_IDLE;
    d->connected = d->synced = false;
    d->changed = true;
}

static void session_start(docker *d, enum kind kind, const char *path, enum state next_state,
                          int64_t now)
{
    req *r = new_req(kind, NULL);
    int rc = start(d, r, path);
    if (rc < 0) {
        req_free(r);
        session_fail(d, DOCKER_ERR_TRANSFER, path, "could not start the request");
        return;
    }
    if (kind == R_EVENTS) d->events_req = r;
    d->state = next_state;
    d->state_since = now;
}

static void start_inspects(docker *d, int64_t now, int64_t *wait)
{
    size_t it = 0;
    void *v;
    while (d->inspects_inflight < d->max_concurrent && hmap_next(&d->ents, &it, &v)) {
        entry *e = v;
        if (!e->need_inspect || e->inflight) continue;
        if (e->not_before > now) {
            if (e->not_before - now < *wait) *wait = e->not_before - now;
            continue;
        }
        char path[DOCKER_ID_MAX + 32];
        snprintf(path, sizeof path, "/containers/%s/json", e->id);
        req *r = new_req(R_INSPECT, e->id);
        if (start(d, r, path) < 0) {
            req_free(r);
            e->not_before = now + INSPECT_RETRY_MS;
            continue;
        }
        e->need_inspect = false;
        e->inflight = true;
        e->stale = false;
        d->inspects_inflight++;
    }
}

static int cmp_entry_ptr(const void *a, const void *b)
{
    return strcmp((*(entry *const *)a)->id, (*(entry *const *)b)->id);
}

static char *adup(arena *a, const char *s)
{
    s = nz(s);
    return arena_strndup(a, s, strlen(s));
}

static void snapshot_free(docker_snapshot *s)
{
    if (!s) return;
    arena *a = s->mem;
    arena_cleanup(a);
    mem_free(a);
}

/* Builds and publishes a snapshot of the cache. */
static void publish(docker *d)
{
    arena *a = mem_malloc(sizeof *a);
    arena_init(a, 0);
    docker_snapshot *s = arena_calloc(a, sizeof *s);
    s->mem = a;
    s->refs = 1;
    s->seq = ++d->seq;
    docker_engine *en = &s->engine;
    en->host = adup(a, d->host);
    en->connected = d->connected;
    en->synced = d->synced;
    en->api_version = adup(a, d->api);
    en->version = adup(a, d->version);
    en->podman = d->podman;
    en->os = adup(a, d->os);
    en->arch = adup(a, d->arch);
    en->kernel_version = adup(a, d->kernel);
    en->cgroup_driver = adup(a, d->cgroup_driver);
    en->cgroup_version = d->cgroup_version;
    en->ncpu = d->ncpu;
    en->mem_total = d->mem_total;
    en->last_error = adup(a, d->last_error);

    size_t n = hmap_len(&d->ents), k = 0;
    entry **sorted = mem_calloc(n ? n : 1, sizeof *sorted);
    size_t it = 0;
    void *v;
    while (hmap_next(&d->ents, &it, &v))
        sorted[k++] = v;
    qsort(sorted, k, sizeof *sorted, cmp_entry_ptr);
    docker_container *cs = arena_calloc(a, (k ? k : 1) * sizeof *cs);
    for (size_t i = 0; i < k; i++) {
        const entry *e = sorted[i];
        docker_container *c = &cs[i];
        c->id = adup(a, e->id);
        c->name = adup(a, e->name);
        c->image = adup(a, e->image);
        c->image_id = adup(a, e->image_id);
        c->state = adup(a, e->state);
        c->health = adup(a, e->health);
        c->network_mode = adup(a, e->network_mode);
        c->cgroup_parent = adup(a, e->cgroup_parent);
        docker_label *ls = arena_calloc(a, (e->n_labels ? e->n_labels : 1) * sizeof *ls);
        for (size_t j = 0; j < e->n_labels; j++) {
            ls[j].key = adup(a, e->labels[j].key);
            ls[j].value = adup(a, e->labels[j].value);
        }
        c->labels = ls;
        c->n_labels = e->n_labels;
        c->pid = e->pid;
        c->exit_code = e->exit_code;
        c->restart_count = e->restart_count;
        c->oom_killed = e->oom_killed;
        c->oom_events = e->oom_events;
        c->created = e->created;
        c->started_at = e->started_at;
        c->finished_at = e->finished_at;
        c->memory_limit = e->memory_limit;
        c->nano_cpus = e->nano_cpus;
        c->cpu_quota = e->cpu_quota;
        c->cpu_period = e->cpu_period;
        c->cpu_shares = e->cpu_shares;
        c->pids_limit = e->pids_limit;
        c->inspected = e->inspected;
    }
    mem_free(sorted);
    s->containers = cs;
    s->n_containers = k;

    pthread_mutex_lock(&d->mu);
    docker_snapshot *old = d->snap;
    d->snap = s;
    pthread_mutex_unlock(&d->mu);
    docker_snapshot_unref(old);
    d->changed = false;
}

int64_t docker_step(docker *d)
{
    int64_t now = mono_ms();
    int64_t wait = STEP_MAX_WAIT_MS;
    if (d->disconnect_pending) disconnect(d, now);
    switch (d->state) {
    case ST_IDLE:
        if (now >= d->next_attempt) {
            atomic_fetch_add(&d->n_sessions, 1);
            session_start(d, R_VERSION, "/version", ST_VERSION_WAIT, now);
        } else if (d->next_attempt - now < wait) {
            wait = d->next_attempt - now;
        }
        break;
    case ST_INFO_START:
        session_start(d, R_INFO, "/info", ST_INFO_WAIT, now);
        break;
    case ST_EVENTS_START:
        session_start(d, R_EVENTS,
                      d->events_unfiltered
                          ? "/events"
                          : "/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D",
                      ST_EVENTS_WAIT, now);
        if (d->state == ST_EVENTS_WAIT) wait = 10;
        break;
    case ST_EVENTS_WAIT: {
        long status = d->events_req ? httpc_transfer_status(d->events_req->t) : 0;
        if (status == 200 || now - d->state_since >= DOCKER_EVENTS_SUBSCRIBE_WAIT_MS) {
            d->connected = true;
            d->changed = true;
            d->list_seq = d->event_seq;
            session_start(d, R_LIST, "/containers/json?all=true", ST_LIST_WAIT, now);
        } else {
            /* Headers usually arrive at once; look again soon. */
            wait = 10;
        }
        break;
    }
    default:
        break;
    }
    if (d->disconnect_pending) {
        disconnect(d, now);
        if (d->next_attempt - now < wait) wait = d->next_attempt - now;
    }
    if (d->state == ST_LIST_WAIT || d->state == ST_SYNCED) start_inspects(d, now, &wait);
    start_queued_stats(d);
    if (d->changed) publish(d);
    return wait < 0 ? 0 : wait;
}

int docker_poll(docker *d, int max_wait_ms)
{
    int64_t wait = docker_step(d);
    if (wait > max_wait_ms) wait = max_wait_ms;
    int rc = httpc_poll(d->http, (int)wait, -1);
    docker_step(d);
    return rc < 0 ? rc : 0;
}

void docker_wakeup(docker *d)
{
    httpc_wakeup(d->http);
}

/* ---- snapshots and counters -------------------------------------------------------- */

docker_snapshot *docker_snapshot_get(docker *d)
{
    pthread_mutex_lock(&d->mu);
    docker_snapshot *s = d->snap;
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&d->mu);
    return s;
}

void docker_snapshot_unref(docker_snapshot *s)
{
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) snapshot_free(s);
}

const docker_container *docker_snapshot_find(const docker_snapshot *s, const char *id)
{
    size_t lo = 0, hi = s->n_containers;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->containers[mid].id, id);
        if (c == 0) return &s->containers[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

uint64_t docker_errors(const docker *d, enum docker_error reason)
{
    if ((unsigned)reason >= DOCKER_ERR_COUNT) return 0;
    return atomic_load(&((docker *)d)->errors[reason]);
}

void docker_counters_get(const docker *d, docker_counters *out)
{
    docker *m = (docker *)d;
    out->sessions = atomic_load(&m->n_sessions);
    out->syncs = atomic_load(&m->n_syncs);
    out->inspects = atomic_load(&m->n_inspects);
    out->events = atomic_load(&m->n_events);
    out->events_ignored = atomic_load(&m->n_events_ignored);
    out->stats_requests = atomic_load(&m->n_stats);
}

/* ---- construction ------------------------------------------------------------------ */

static char *path_join(const char *dir, const char *file)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_printf(&b, "%s/%s", dir, file);
    size_t n;
    return buf_detach(&b, &n);
}

/* Sets base_url / unix_socket from host; returns 0 or -EINVAL. */
static int parse_host(docker *d, const char *host, buf *err)
{
    if (strncmp(host, "unix://", 7) == 0) {
        if (host[7] == '\0') {
            buf_printf(err, "docker host %s: no socket path", host);
            return -EINVAL;
        }
        d->unix_socket = mem_strdup(host + 7);
        d->base_url = mem_strdup("http://docker");
        return 0;
    }
    const char *rest;
    bool https = d->tls;
    if (strncmp(host, "tcp://", 6) == 0) {
        rest = host + 6;
    } else if (strncmp(host, "http://", 7) == 0) {
        rest = host + 7;
        https = false;
    } else if (strncmp(host, "https://", 8) == 0) {
        rest = host + 8;
        https = true;
    } else {
        buf_printf(err,
                   "docker host %s: unsupported scheme (use unix://, tcp://, http:// or https://)",
                   host);
        return -EINVAL;
    }
    size_t hl = strcspn(rest, "/");
    if (hl == 0) {
        buf_printf(err, "docker host %s: no host name", host);
        return -EINVAL;
    }
    for (size_t i = 0; rest[i]; i++) {
        unsigned char c = (unsigned char)rest[i];
        if (c <= 0x20 || c == 0x7f || c == '?' || c == '#' || c == '@') {
            buf_printf(err, "docker host %s: malformed address", host);
            return -EINVAL;
        }
    }
    /* A port is there unless the authority ends in a name or "]". */
    const char *colon = memrchr(rest, ':', hl);
    const char *bracket = memrchr(rest, ']', hl);
    bool has_port = colon && (!bracket || colon > bracket);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_printf(&b, "%s://%.*s", https ? "https" : "http", (int)hl, rest);
    if (!has_port) buf_printf(&b, ":%d", https ? 2376 : 2375);
    const char *path = rest + hl;
    size_t pl = strlen(path);
    while (pl > 0 && path[pl - 1] == '/')
        pl--;
    buf_printf(&b, "%.*s", (int)pl, path);
    size_t n;
    d->base_url = buf_detach(&b, &n);
    d->tls = https;
    return 0;
}

int docker_new(const docker_opts *opts, httpc *http, docker **out, buf *err)
{
    static const docker_opts none;
    if (!opts) opts = &none;
    *out = NULL;
    docker *d = mem_calloc(1, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    hmap_init(&d->ents);
    d->timeout_ms = opts->request_timeout_ms > 0 ? opts->request_timeout_ms : DEFAULT_TIMEOUT_MS;
    d->backoff_initial =
        opts->backoff_initial_ms > 0 ? opts->backoff_initial_ms : DEFAULT_BACKOFF_INITIAL_MS;
    d->backoff_max = opts->backoff_max_ms > 0 ? opts->backoff_max_ms : DEFAULT_BACKOFF_MAX_MS;
    if (d->backoff_max < d->backoff_initial) d->backoff_max = d->backoff_initial;
    d->backoff = d->backoff_initial;
    d->body_limit = opts->body_limit ? opts->body_limit : DOCKER_BODY_LIMIT;
    d->line_limit = opts->event_line_limit ? opts->event_line_limit : DOCKER_EVENT_LINE_LIMIT;
    d->max_concurrent = opts->max_concurrent ? opts->max_concurrent : DEFAULT_MAX_CONCURRENT;
    d->max_concurrent_stats =
        opts->max_concurrent_stats ? opts->max_concurrent_stats : DEFAULT_MAX_CONCURRENT_STATS;
    buf_init(&d->line, d->line_limit);

    const char *host = opts->host;
    if (host) {
        d->tls = opts->tls;
        d->tls_insecure = opts->tls_insecure_skip_verify;
        if (opts->tls_ca_file) d->ca = mem_strdup(opts->tls_ca_file);
        if (opts->tls_cert_file) d->cert = mem_strdup(opts->tls_cert_file);
        if (opts->tls_key_file) d->key = mem_strdup(opts->tls_key_file);
    } else {
        /* As the docker CLI and Go client (client.FromEnv): DOCKER_CERT_PATH
         * turns TLS on with its ca/cert/key; DOCKER_TLS_VERIFY turns on
         * verification (and TLS, from ~/.docker without a cert path). */
        host = getenv("DOCKER_HOST");
        if (!host || !*host) host = DOCKER_DEFAULT_HOST;
        const char *cert_path = getenv("DOCKER_CERT_PATH");
        const char *verify = getenv("DOCKER_TLS_VERIFY");
        bool want_verify = verify && *verify;
        if ((cert_path && *cert_path) || want_verify) {
            char home_docker[4096];
            if (!cert_path || !*cert_path) {
                const char *home = getenv("HOME");
                snprintf(home_docker, sizeof home_docker, "%s/.docker", home ? home : "");
                cert_path = home_docker;
            }
            d->tls = true;
            d->tls_insecure = !want_verify;
            d->ca = path_join(cert_path, "ca.pem");
            d->cert = path_join(cert_path, "cert.pem");
            d->key = path_join(cert_path, "key.pem");
            if (access(d->ca, R_OK) != 0) {
                mem_free(d->ca);
                d->ca = NULL;
            }
        }
    }
    d->host = mem_strdup(host);
    if (parse_host(d, host, err) < 0) {
        docker_free(d);
        return -EINVAL;
    }
    if (d->unix_socket) {
        /* TLS settings mean nothing on a unix socket. */
        mem_free(d->ca);
        mem_free(d->cert);
        mem_free(d->key);
        d->ca = d->cert = d->key = NULL;
        d->tls = d->tls_insecure = false;
    }
    if (http) {
        d->http = http;
    } else {
        d->http = httpc_new();
        d->own_http = true;
        if (!d->http) {
            buf_puts(err, "cannot create the HTTP client");
            docker_free(d);
            return -ENOMEM;
        }
    }
    d->state = ST_IDLE;
    d->next_attempt = 0;
    publish(d);
    *out = d;
    return 0;
}

void docker_free(docker *d)
{
    if (!d) return;
    d->closing = true;
    while (d->squeue) {
        req *r = d->squeue;
        d->squeue = r->qnext;
        docker_stats_result res = {
            .id = r->id, .error = DOCKER_ERR_TRANSFER, .message = "cancelled", .body = ""};
        r->fn(r->ctx, &res);
        req_free(r);
    }
    d->squeue_tail = NULL;
    while (d->reqs)
        httpc_cancel(d->http, d->reqs->t);
    if (d->own_http) httpc_free(d->http);
    size_t it = 0;
    void *v;
    while (hmap_next(&d->ents, &it, &v))
        entry_free(v);
    hmap_cleanup(&d->ents);
    clear_tombs(d);
    mem_free(d->tombs);
    buf_cleanup(&d->line);
    mem_free(d->host);
    mem_free(d->base_url);
    mem_free(d->unix_socket);
    mem_free(d->ca);
    mem_free(d->cert);
    mem_free(d->key);
    mem_free(d->version);
    mem_free(d->os);
    mem_free(d->arch);
    mem_free(d->kernel);
    mem_free(d->cgroup_driver);
    mem_free(d->last_error);
    docker_snapshot_unref(d->snap);
    pthread_mutex_destroy(&d->mu);
    mem_free(d);
}
