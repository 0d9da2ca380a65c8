#include "containers.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cadvisor.h"
#include "cgroup.h"
#include "cstats.h"
#include "hmap.h"
#include "labels.h"
#include "log.h"
#include "mem.h"
#include "strutil.h"
#include "textwrite.h"

/* Stats API requests of one cycle wait at most this long. */
#define STATS_TIMEOUT_MS 10000
/* Before the engine's first sync, the first cycle waits at most this long. */
#define FIRST_SYNC_WAIT_MS 2000

/* One stored series: its label set (the key) and store reference. */
typedef struct series {
    labels *ls;
    uint64_t ref; /* 0: not stored (store error or series limit) */
    uint64_t seen_cycle;
    bool live; /* had a sample in the last cycle, no staleness marker since */
} series;

/* One selected container of a cycle. */
typedef struct item {
    const docker_container *dc; /* borrowed from the cycle's snapshot */
    char id_label[512];         /* cgroup path: the `id` label */
    bool have;                  /* stats read */
    bool want_api;              /* waiting for / read from the stats API */
    cstats st;
} item;

struct containers {
    config *cfg; /* own reference */
    const config_containers *cc;
    store *st;
    docker *d;
    cgroup_fs *cg;
    char *proc_root, *sys_root;
    bool cgroup_tried;
    pthread_t thread;
    atomic_bool stop;

    /* collector thread only */
    hmap cache; /* labels hash -> series */
    hmap families_noted;
    uint64_t cycle;
    item *items;
    size_t cap_items;
    size_t n_items; /* of this cycle, sorted by id */
    size_t api_pending;

    /* under mu */
    pthread_mutex_t mu;
    buf text, om; /* last cycle's exposition */
    containers_status status;
    uint64_t series_limit_errors;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool series_eq(const void *val, const void *key)
{
    return labels_equal(((const series *)val)->ls, key);
}

static bool ptr_eq(const void *val, const void *key)
{
    return val == key;
}

static void count_read_error(containers *c)
{
    pthread_mutex_lock(&c->mu);
    c->status.stats_read_errors++;
    pthread_mutex_unlock(&c->mu);
}

/* ---- the sink: store + both expositions ---------------------------------------------- */

typedef struct cycle_ctx {
    containers *c;
    store_batch *b;
    textwrite tw_text, tw_om;
    cadvisor_text ct_text, ct_om;
    int64_t t_ms; /* the cycle's time, for samples that come without one (machine_*) */
    uint64_t samples;
} cycle_ctx;

static int sink_family(void *ctx, const cadvisor_family *f)
{
    cycle_ctx *x = ctx;
    containers *c = x->c;
    uint64_t h = (uint64_t)(uintptr_t)f * 0x9e3779b97f4a7c15ull;
    if (!hmap_get(&c->families_noted, h, ptr_eq, f)) {
        hmap_put(&c->families_noted, h, (void *)f);
        store_batch_metadata(x->b, f->name, f->type, f->help, "");
    }
    cadvisor_text_family(&x->ct_text, f);
    cadvisor_text_family(&x->ct_om, f);
    return 0; /* a full exposition buffer must not stop storing */
}

static int sink_sample(void *ctx, const cadvisor_family *f, const labels *ls, double v,
                       int64_t t_ms)
{
    cycle_ctx *x = ctx;
    containers *c = x->c;
    uint64_t h = labels_hash(ls);
    series *s = hmap_get(&c->cache, h, series_eq, ls);
    if (!s) {
        s = mem_calloc(1, sizeof *s);
        s->ls = labels_dup(ls);
        if (hmap_len(&c->cache) >= CONTAINERS_MAX_SERIES) {
            pthread_mutex_lock(&c->mu);
            c->series_limit_errors++;
            pthread_mutex_unlock(&c->mu);
        } else {
            bool created;
            if (store_series_ref(c->st, ls, &s->ref, &created) < 0) s->ref = 0;
        }
        hmap_put(&c->cache, h, s);
    }
    s->seen_cycle = c->cycle;
    s->live = true;
    if (s->ref) {
        store_batch_add(x->b, s->ref, t_ms ? t_ms : x->t_ms, v);
        x->samples++;
    }
    cadvisor_text_sample(&x->ct_text, f, ls, v, 0);
    cadvisor_text_sample(&x->ct_om, f, ls, v, 0);
    return 0;
}

/* Staleness markers for live series not in this cycle; forgets old ones.
 * all: every live series (the collector stops). */
static uint64_t mark_stale(containers *c, store_batch *b, int64_t t_ms, bool all)
{
    double stale = strutil_stale_nan();
    uint64_t n = 0;
    size_t it = 0;
    void *v;
    while (hmap_next(&c->cache, &it, &v)) {
        series *s = v;
        if (!all && s->seen_cycle == c->cycle) continue;
        if (s->live) {
            if (s->ref) {
                store_batch_add(b, s->ref, t_ms, stale);
                n++;
            }
            s->live = false;
        }
        if (all || c->cycle - s->seen_cycle > CONTAINERS_CACHE_EVICT_CYCLES) {
            hmap_del(&c->cache, labels_hash(s->ls), series_eq, s->ls);
            labels_free(s->ls);
            mem_free(s);
        }
    }
    return n;
}

/* ---- reading stats ---------------------------------------------------------------------- */

static int device_name(void *ctx, uint32_t major, uint32_t minor, char *out, size_t n)
{
    return cgroup_block_device_name(ctx, major, minor, out, n);
}

static int item_cmp_id(const void *key, const void *elem)
{
    return strcmp(key, ((const item *)elem)->dc->id);
}

/* One docker_stats_fetch: freed after its last callback (a late one, after
 * its cycle gave up waiting, only counts down). */
typedef struct fetch {
    containers *c;
    uint64_t cycle;
    size_t left;
} fetch;

static void on_stats(void *ctx, const docker_stats_result *r)
{
    fetch *f = ctx;
    containers *c = f->c;
    bool current = f->cycle == c->cycle;
    if (--f->left == 0) mem_free(f);
    if (!current) return;
    if (c->api_pending > 0) c->api_pending--;
    /* items are sorted by id (the snapshot's order) */
    item *it = bsearch(r->id, c->items, c->n_items, sizeof *c->items, item_cmp_id);
    if (!it || !it->want_api) return;
    if (!r->ok) {
        /* the docker client logged and counted it under its reason */
        return;
    }
    buf err;
    buf_init(&err, 1024);
    int rc = cstats_parse(&it->st, r->body, r->body_len, &err);
    if (rc == 0) {
        it->have = true;
    } else if (rc != -ENODATA) {
        count_read_error(c);
        log_warn("containers", "stats of container %s (%.12s): %s", it->dc->name, it->dc->id,
                 buf_cstr(&err));
    }
    buf_cleanup(&err);
}

static enum cgroup_driver driver_of(const docker_snapshot *s)
{
    if (strcmp(s->engine.cgroup_driver, "systemd") == 0) return CGROUP_DRIVER_SYSTEMD;
    if (strcmp(s->engine.cgroup_driver, "cgroupfs") == 0) return CGROUP_DRIVER_CGROUPFS;
    return CGROUP_DRIVER_ANY;
}

static void open_cgroups(containers *c)
{
    if (c->cg || !*c->cc->cgroup_root) return;
    cgroup_options o = {
        .root = c->cc->cgroup_root, .proc_root = c->proc_root, .sys_root = c->sys_root};
    buf err;
    buf_init(&err, 1024);
    int rc = cgroup_open(&c->cg, &o, &err);
    if (rc < 0) {
        c->cg = NULL;
        if (!c->cgroup_tried)
            log_info("containers", "no cgroup filesystem at %s (%s): using the stats API",
                     c->cc->cgroup_root, buf_cstr(&err));
    } else if (!c->cgroup_tried) {
        log_info("containers", "reading container stats from %s (cgroup %s)", c->cc->cgroup_root,
                 cgroup_mode_name(cgroup_get_mode(c->cg)));
    }
    c->cgroup_tried = true;
    buf_cleanup(&err);
}

static bool selected(containers *c, const docker_container *dc)
{
    if (strcmp(dc->state, "running") != 0 && strcmp(dc->state, "paused") != 0) return false;
    if (dc->pid <= 0 && dc->inspected) return false;
    if (c->cc->n_include == 0 && c->cc->n_exclude == 0) return true;
    const char *stack_k[32], *stack_v[32];
    const char **k = stack_k, **v = stack_v;
    if (dc->n_labels > 32) {
        k = mem_malloc(dc->n_labels * sizeof *k);
        v = mem_malloc(dc->n_labels * sizeof *v);
    }
    for (size_t i = 0; i < dc->n_labels; i++) {
        k[i] = dc->labels[i].key;
        v[i] = dc->labels[i].value;
    }
    bool ok = config_containers_selected(c->cc, dc->name, k, v, dc->n_labels);
    if (k != stack_k) {
        mem_free(k);
        mem_free(v);
    }
    return ok;
}

/* One collection cycle. */
static void run_cycle(containers *c)
{
    double t0 = mono_s();
    int64_t t_ms = wall_ms();
    c->cycle++;
    docker_snapshot *snap = docker_snapshot_get(c->d);
    open_cgroups(c);

    size_t n = 0;
    if (snap->n_containers > c->cap_items) {
        mem_free(c->items);
        c->cap_items = snap->n_containers;
        c->items = mem_calloc(c->cap_items, sizeof *c->items);
    }
    for (size_t i = 0; i < c->cap_items; i++)
        c->items[i].dc = NULL;
    enum cgroup_driver drv = driver_of(snap);
    size_t n_api = 0, n_cg = 0;
    for (size_t i = 0; i < snap->n_containers; i++) {
        const docker_container *dc = &snap->containers[i];
        if (!selected(c, dc)) continue;
        item *it = &c->items[n++];
        it->dc = dc;
        it->have = false;
        it->want_api = true;
        snprintf(it->id_label, sizeof it->id_label, "/docker/%s", dc->id);
        if (!c->cg) continue;
        char path[sizeof it->id_label];
        int rc = cgroup_find_container(c->cg, dc->id, dc->cgroup_parent, drv, path, sizeof path);
        if (rc < 0) continue; /* not in this cgroup tree: ask the engine */
        it->want_api = false;
        snprintf(it->id_label, sizeof it->id_label, "%s", path);
        rc = cgroup_read(c->cg, path, CGROUP_READ_PROCS | CGROUP_READ_NETWORK, &it->st);
        if (rc == 0) {
            it->have = true;
            n_cg++;
        } else {
            count_read_error(c);
            log_warn("containers", "cannot read the cgroup of container %s (%.12s) at %s: %s",
                     dc->name, dc->id, path, rc == -ENOENT ? "vanished" : strerror(-rc));
        }
    }

    c->n_items = n;

    /* The rest from the stats API, all at once. */
    const char **ids = NULL;
    size_t n_ids = 0;
    for (size_t i = 0; i < n; i++)
        if (c->items[i].want_api) n_ids++;
    /* A disconnected engine cannot answer: those containers are skipped
     * (their series go stale) until it is back. */
    if (n_ids > 0 && !snap->engine.connected) n_ids = 0;
    if (n_ids > 0) {
        ids = mem_malloc(n_ids * sizeof *ids);
        n_ids = 0;
        for (size_t i = 0; i < n; i++)
            if (c->items[i].want_api) ids[n_ids++] = c->items[i].dc->id;
        int64_t tmo = c->cc->interval_ms < STATS_TIMEOUT_MS ? c->cc->interval_ms : STATS_TIMEOUT_MS;
        if (tmo < 1000) tmo = 1000;
        c->api_pending = n_ids;
        fetch *f = mem_calloc(1, sizeof *f);
        *f = (fetch){c, c->cycle, n_ids};
        int rc = docker_stats_fetch(c->d, ids, n_ids, tmo, on_stats, f);
        if (rc < 0) {
            mem_free(f);
            c->api_pending = 0;
            if (snap->engine.connected)
                log_warn("containers", "stats API requests for %zu containers failed: %s", n_ids,
                         strerror(-rc));
        }
        int64_t deadline = mono_ms() + tmo + 1000;
        while (c->api_pending > 0 && !atomic_load(&c->stop) && mono_ms() < deadline)
            docker_poll(c->d, 100);
        mem_free(ids);
        for (size_t i = 0; i < n; i++)
            if (c->items[i].want_api && c->items[i].have) n_api++;
    }

    /* cAdvisor families for every container read. */
    cadvisor_container *cs = mem_calloc(n ? n : 1, sizeof *cs);
    size_t total_labels = 0;
    for (size_t i = 0; i < n; i++)
        total_labels += c->items[i].dc->n_labels;
    const char **lk = mem_calloc(total_labels ? total_labels : 1, sizeof *lk);
    const char **lv = mem_calloc(total_labels ? total_labels : 1, sizeof *lv);
    size_t nc = 0, li = 0;
    for (size_t i = 0; i < n; i++) {
        item *it = &c->items[i];
        if (!it->have) continue;
        const docker_container *dc = it->dc;
        /* OOM kills: the engine's oom events or the cgroup's own count. */
        uint64_t ooms = dc->oom_events;
        if ((it->st.known & CSTATS_OOM) && it->st.oom_events > ooms) ooms = it->st.oom_events;
        it->st.oom_events = ooms;
        it->st.known |= CSTATS_OOM;
        cadvisor_container *cc = &cs[nc++];
        cc->id = it->id_label;
        cc->name = dc->name;
        cc->image = dc->image;
        cc->n_labels = dc->n_labels;
        cc->label_keys = lk + li;
        cc->label_values = lv + li;
        for (size_t k = 0; k < dc->n_labels; k++) {
            lk[li] = dc->labels[k].key;
            lv[li] = dc->labels[k].value;
            li++;
        }
        cc->health = *dc->health ? dc->health : NULL;
        cc->start_time = dc->started_at;
        cc->last_seen = (double)t_ms / 1000.0;
        cc->stats = &it->st;
        cc->t_ms = t_ms;
        /* The stats API's samples are taken on the engine's own tick: their
         * time is when it read them, not when we asked. */
        if (it->want_api && (it->st.known & CSTATS_READ_TIME) && it->st.read_ns > 0 &&
            it->st.read_ns / 1000000 <= t_ms + 60000)
            cc->t_ms = it->st.read_ns / 1000000;
    }
    cstats_machine m;
    memset(&m, 0, sizeof m);
    bool have_machine = false;
    if (c->cg && cgroup_machine_read(c->cg, &m) == 0) {
        have_machine = true;
    } else if (snap->engine.ncpu > 0 && snap->engine.mem_total > 0) {
        memset(&m, 0, sizeof m);
        m.cpu_cores = (uint32_t)snap->engine.ncpu;
        m.memory_bytes = (uint64_t)snap->engine.mem_total;
        have_machine = true;
    }
    cadvisor_options o = {
        .all_labels = c->cc->all_labels,
        .label_keys = (const char *const *)c->cc->label_keys,
        .n_label_keys = c->cc->n_label_keys,
        .device_name = c->cg ? device_name : NULL,
        .device_ctx = c->cg,
    };

    cycle_ctx x;
    memset(&x, 0, sizeof x);
    x.c = c;
    x.b = store_batch_new(c->st);
    x.t_ms = t_ms;
    buf text, om;
    buf_init(&text, CONTAINERS_MAX_EXPOSITION);
    buf_init(&om, CONTAINERS_MAX_EXPOSITION);
    textwrite_init(&x.tw_text, TEXTPARSE_PROMETHEUS, buf_sink, &text);
    textwrite_init(&x.tw_om, TEXTPARSE_OPENMETRICS, buf_sink, &om);
    x.ct_text = (cadvisor_text){.w = &x.tw_text, .timestamps = false};
    x.ct_om = (cadvisor_text){.w = &x.tw_om, .timestamps = false};
    cadvisor_sink sink = {.family = sink_family, .sample = sink_sample, .ctx = &x};
    cadvisor_collect(cs, nc, have_machine ? &m : NULL, &o, &sink);
    x.samples += mark_stale(c, x.b, t_ms, false);
    bool store_failed = false;
    if (store_batch_len(x.b) == 0)
        store_batch_free(x.b);
    else if (store_batch_commit(x.b) < 0)
        store_failed = true;
    if (textwrite_error(&x.tw_text) || textwrite_error(&x.tw_om)) {
        log_warn("containers", "exposition larger than %u bytes: /metrics omits it",
                 CONTAINERS_MAX_EXPOSITION);
        buf_reset(&text);
        buf_reset(&om);
    }
    mem_free(cs);
    mem_free(lk);
    mem_free(lv);

    pthread_mutex_lock(&c->mu);
    buf tmp = c->text;
    c->text = text;
    text = tmp;
    tmp = c->om;
    c->om = om;
    om = tmp;
    c->status.cycles++;
    c->status.last_cycle_seconds = mono_s() - t0;
    c->status.containers_seen = n;
    c->status.containers_cgroup = n_cg;
    c->status.containers_api = n_api;
    c->status.samples_appended = x.samples;
    c->status.engine_connected = snap->engine.connected;
    c->status.cgroup_mode = cgroup_mode_name(c->cg ? cgroup_get_mode(c->cg) : CGROUP_MODE_NONE);
    if (store_failed) c->status.store_errors++;
    pthread_mutex_unlock(&c->mu);
    buf_cleanup(&text);
    buf_cleanup(&om);
    /* Late stats answers must not touch items of this snapshot. */
    c->n_items = 0;
    docker_snapshot_unref(snap);
}

static void *run(void *arg)
{
    containers *c = arg;
    int64_t start = mono_ms(), next = start;
    bool first = true;
    while (!atomic_load(&c->stop)) {
        int64_t now = mono_ms();
        if (now >= next) {
            bool wait_sync = false;
            if (first && now < start + FIRST_SYNC_WAIT_MS) {
                docker_snapshot *s = docker_snapshot_get(c->d);
                wait_sync = !s->engine.synced;
                docker_snapshot_unref(s);
            }
            if (!wait_sync) {
                first = false;
                run_cycle(c);
                next += c->cc->interval_ms;
                now = mono_ms();
                if (next <= now) next = now + c->cc->interval_ms;
            }
        }
        int64_t wait = next - mono_ms();
        if (first) wait = 50;
        if (wait > 1000) wait = 1000;
        if (wait < 0) wait = 0;
        docker_poll(c->d, (int)wait);
    }
    return NULL;
}

/* ---- life cycle ---------------------------------------------------------------------------- */

int containers_new(const containers_options *o, containers **out, buf *err)
{
    *out = NULL;
    if (!o->cfg || !o->cfg->containers.enabled || !o->st) {
        buf_puts(err, "containers: not enabled");
        return -EINVAL;
    }
    containers *c = mem_calloc(1, sizeof *c);
    c->cfg = config_ref(o->cfg);
    c->cc = &c->cfg->containers;
    c->st = o->st;
    c->proc_root = o->proc_root ? mem_strdup(o->proc_root) : NULL;
    c->sys_root = o->sys_root ? mem_strdup(o->sys_root) : NULL;
    hmap_init(&c->cache);
    hmap_init(&c->families_noted);
    pthread_mutex_init(&c->mu, NULL);
    buf_init(&c->text, CONTAINERS_MAX_EXPOSITION);
    buf_init(&c->om, CONTAINERS_MAX_EXPOSITION);
    c->status.cgroup_mode = "none";
    atomic_init(&c->stop, false);
    const config_http_client *tc = &c->cc->tls_client;
    docker_opts dopts = {
        .host = c->cc->docker_host,
        .tls = c->cc->tls,
        .tls_insecure_skip_verify = tc->tls_insecure_skip_verify,
        .tls_ca_file = tc->tls_ca_file,
        .tls_cert_file = tc->tls_cert_file,
        .tls_key_file = tc->tls_key_file,
        .request_timeout_ms = o->request_timeout_ms,
        .backoff_initial_ms = o->backoff_initial_ms,
        .backoff_max_ms = o->backoff_max_ms,
    };
    int rc = docker_new(&dopts, NULL, &c->d, err);
    if (rc < 0) {
        containers_free(c);
        return rc;
    }
    rc = pthread_create(&c->thread, NULL, run, c);
    if (rc != 0) {
        buf_printf(err, "containers: cannot start the collector thread: %s", strerror(rc));
        docker_free(c->d);
        c->d = NULL;
        containers_free(c);
        return -rc;
    }
    log_info("containers", "collecting container stats from %s every %" PRId64 "ms",
             c->cc->docker_host, c->cc->interval_ms);
    *out = c;
    return 0;
}

void containers_free(containers *c)
{
    if (!c) return;
    if (c->d) {
        atomic_store(&c->stop, true);
        docker_wakeup(c->d);
        pthread_join(c->thread, NULL);
        c->cycle++;
        store_batch *b = store_batch_new(c->st);
        mark_stale(c, b, wall_ms(), true);
        if (store_batch_len(b) == 0)
            store_batch_free(b);
        else if (store_batch_commit(b) < 0)
            log_warn("containers", "could not store staleness markers of the container series");
        docker_free(c->d);
    }
    size_t it = 0;
    void *v;
    while (hmap_next(&c->cache, &it, &v)) {
        series *s = v;
        labels_free(s->ls);
        mem_free(s);
    }
    hmap_cleanup(&c->cache);
    hmap_cleanup(&c->families_noted);
    cgroup_free(c->cg);
    mem_free(c->items);
    mem_free(c->proc_root);
    mem_free(c->sys_root);
    buf_cleanup(&c->text);
    buf_cleanup(&c->om);
    pthread_mutex_destroy(&c->mu);
    config_unref(c->cfg);
    mem_free(c);
}

/* ---- reading ------------------------------------------------------------------------------- */

void containers_status_get(containers *c, containers_status *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->status;
    pthread_mutex_unlock(&c->mu);
}

static void self_family(textwrite *w, const char *name, const char *help, enum expfmt_type type)
{
    textwrite_help(w, name, strlen(name), help, strlen(help));
    textwrite_type(w, name, strlen(name), type);
}

static void self_sample(textwrite *w, const char *name, const char *lname, const char *lvalue,
                        double v)
{
    textwrite_label l = {lname, lname ? strlen(lname) : 0, lvalue, lvalue ? strlen(lvalue) : 0};
    textwrite_sample(w, name, strlen(name), lname ? &l : NULL, lname ? 1 : 0, v, NULL);
}

int containers_metrics(containers *c, enum textparse_format format, buf *out)
{
    pthread_mutex_lock(&c->mu);
    const buf *b = format == TEXTPARSE_OPENMETRICS ? &c->om : &c->text;
    int rc = b->len ? buf_append(out, b->data, b->len) : 0;
    containers_status s = c->status;
    uint64_t series_limit = c->series_limit_errors;
    pthread_mutex_unlock(&c->mu);
    if (rc < 0) return rc;

    textwrite w;
    textwrite_init(&w,
                   format == TEXTPARSE_OPENMETRICS ? TEXTPARSE_OPENMETRICS : TEXTPARSE_PROMETHEUS,
                   buf_sink, out);
    self_family(&w, "sidewatch_containers_cycles_total", "Container stats collection cycles.",
                EXPFMT_COUNTER);
    self_sample(&w, "sidewatch_containers_cycles_total", NULL, NULL, (double)s.cycles);
    self_family(&w, "sidewatch_containers_cycle_duration_seconds",
                "Duration of the last container stats collection cycle.", EXPFMT_GAUGE);
    self_sample(&w, "sidewatch_containers_cycle_duration_seconds", NULL, NULL,
                s.last_cycle_seconds);
    self_family(&w, "sidewatch_containers_seen",
                "Running containers selected in the last cycle, by where their stats were read.",
                EXPFMT_GAUGE);
    self_sample(&w, "sidewatch_containers_seen", "source", "cgroup", (double)s.containers_cgroup);
    self_sample(&w, "sidewatch_containers_seen", "source", "api", (double)s.containers_api);
    self_sample(&w, "sidewatch_containers_seen", "source", "none",
                (double)(s.containers_seen - s.containers_cgroup - s.containers_api));
    self_family(&w, "sidewatch_containers_engine_up",
                "Whether the Docker engine was connected in the last cycle.", EXPFMT_GAUGE);
    self_sample(&w, "sidewatch_containers_engine_up", NULL, NULL, s.engine_connected ? 1 : 0);
    self_family(&w, "sidewatch_docker_errors_total",
                "Errors talking to the Docker engine or reading container stats, by reason.",
                EXPFMT_COUNTER);
    for (int r = 0; r < DOCKER_ERR_COUNT; r++)
        self_sample(&w, "sidewatch_docker_errors_total", "reason", docker_error_name(r),
                    (double)docker_errors(c->d, r));
    self_sample(&w, "sidewatch_docker_errors_total", "reason", "stats_read",
                (double)s.stats_read_errors);
    self_sample(&w, "sidewatch_docker_errors_total", "reason", "series_limit",
                (double)series_limit);
    self_sample(&w, "sidewatch_docker_errors_total", "reason", "store", (double)s.store_errors);
    return textwrite_error(&w);
}
