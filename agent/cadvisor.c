/* cadvisor: cAdvisor's metric families from container statistics. Names,
 * types and HELP texts are cAdvisor's (lib/metrics/prometheus.go,
 * prometheus_machine.go). */
#include "cadvisor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* ---- emitting ---------------------------------------------------------------- */

typedef struct emitter {
    const cadvisor_sink *sink;
    const cadvisor_options *o;
    const cadvisor_family *fam;
    bool announced;
    labels_builder lb;
    int rc;
    /* the container being emitted */
    const labels *base;
    int64_t t_ms;
} emitter;

/* One sample of the current family: the container's base labels, __name__
 * and n extra (name, value) pairs. */
static void emit(emitter *e, double v, size_t n, const char *const *extra)
{
    if (e->rc < 0) return;
    if (!e->announced) {
        e->announced = true;
        if (e->sink->family && (e->rc = e->sink->family(e->sink->ctx, e->fam)) < 0) return;
    }
    /* (labels_builder_from with an empty set passes NULL to memcpy.) */
    if (e->base->n > 0)
        labels_builder_from(&e->lb, e->base);
    else
        labels_builder_reset(&e->lb);
    labels_builder_add(&e->lb, LABELS_METRIC_NAME, 8, e->fam->name, strlen(e->fam->name));
    /* Extra names never collide with id, name, image or container_label_*. */
    for (size_t i = 0; i < n; i++)
        labels_builder_add(&e->lb, extra[2 * i], strlen(extra[2 * i]), extra[2 * i + 1],
                           strlen(extra[2 * i + 1]));
    labels *ls = labels_builder_finish(&e->lb, NULL);
    int rc = e->sink->sample(e->sink->ctx, e->fam, ls, v, e->t_ms);
    labels_free(ls);
    if (rc < 0) e->rc = rc;
}

static void emit0(emitter *e, double v)
{
    emit(e, v, 0, NULL);
}

static void emit1(emitter *e, double v, const char *name, const char *value)
{
    const char *x[2] = {name, value};
    emit(e, v, 1, x);
}

/* ---- families ---------------------------------------------------------------- */

typedef void (*family_fn)(emitter *e, const cadvisor_container *c, const cstats *s);

typedef struct family_def {
    cadvisor_family f;
    family_fn fn; /* s is never NULL unless `meta` */
    bool meta;    /* needs no stats (start time, last seen) */
} family_def;

static bool has(const cstats *s, uint64_t bits)
{
    return (s->known & bits) == bits;
}

static double ns_to_s(uint64_t ns)
{
    /* float64(v) / float64(time.Second), as cAdvisor. */
    return (double)ns / 1e9;
}

static void device_label(emitter *e, const cstats_blkdev *d, char *out, size_t n)
{
    if (e->o->device_name && e->o->device_name(e->o->device_ctx, d->major, d->minor, out, n) == 0 &&
        out[0])
        return;
    snprintf(out, n, "%u:%u", d->major, d->minor);
}

static void f_blkio_device_usage(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    if (!has(s, CSTATS_BLKIO)) return;
    for (uint32_t i = 0; i < s->n_blkdev; i++) {
        const cstats_blkdev *d = &s->blkdev[i];
        if (!(d->known & CSTATS_BLK_BYTES)) continue;
        char dev[64], major[16], minor[16];
        device_label(e, d, dev, sizeof dev);
        snprintf(major, sizeof major, "%u", d->major);
        snprintf(minor, sizeof minor, "%u", d->minor);
        const char *r[8] = {"device", dev, "major", major, "minor", minor, "operation", "Read"};
        emit(e, (double)d->read_bytes, 4, r);
        r[7] = "Write";
        emit(e, (double)d->write_bytes, 4, r);
    }
}

/* cAdvisor exports CFS counters only for containers with a quota. Without
 * the quota (the stats API does not report it), periods only advance under
 * a quota. */
static bool cfs_wanted(const cstats *s)
{
    if (!has(s, CSTATS_CPU_CFS)) return false;
    if (has(s, CSTATS_CPU_QUOTA)) return s->cpu.quota_us != 0;
    return s->cpu.periods > 0;
}

static void f_cfs_periods(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    if (cfs_wanted(s)) emit0(e, (double)s->cpu.periods);
}

static void f_cfs_throttled_periods(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    if (cfs_wanted(s)) emit0(e, (double)s->cpu.throttled_periods);
}

static void f_cfs_throttled_seconds(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    if (cfs_wanted(s)) emit0(e, ns_to_s(s->cpu.throttled_ns));
}

static void f_cpu_system(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    if (has(s, CSTATS_CPU_USER_SYSTEM)) emit0(e, ns_to_s(s->cpu.system_ns));
}

static void f_cpu_user(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    if (has(s, CSTATS_CPU_USER_SYSTEM)) emit0(e, ns_to_s(s->cpu.user_ns));
}

/* As cAdvisor: per-CPU series for CPUs with usage when per-CPU data is
 * collected, else one cpu="total" series when the total is non-zero. */
static void f_cpu_usage(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    if (e->o->percpu && has(s, CSTATS_CPU_PERCPU) && s->cpu.n_percpu > 0) {
        for (uint32_t i = 0; i < s->cpu.n_percpu; i++) {
            if (s->cpu.percpu_ns[i] == 0) continue;
            char cpu[16];
            snprintf(cpu, sizeof cpu, "cpu%02u", i);
            emit1(e, ns_to_s(s->cpu.percpu_ns[i]), "cpu", cpu);
        }
        return;
    }
    if (has(s, CSTATS_CPU_USAGE) && s->cpu.total_ns > 0)
        emit1(e, ns_to_s(s->cpu.total_ns), "cpu", "total");
}

enum fs_field { FS_READ_BYTES, FS_READS, FS_WRITE_BYTES, FS_WRITES };

static void fs_family(emitter *e, const cstats *s, enum fs_field f)
{
    if (!has(s, CSTATS_BLKIO)) return;
    uint32_t need = (f == FS_READ_BYTES || f == FS_WRITE_BYTES) ? CSTATS_BLK_BYTES : CSTATS_BLK_OPS;
    for (uint32_t i = 0; i < s->n_blkdev; i++) {
        const cstats_blkdev *d = &s->blkdev[i];
        if (!(d->known & need)) continue;
        char dev[64];
        device_label(e, d, dev, sizeof dev);
        uint64_t v = f == FS_READ_BYTES    ? d->read_bytes
                     : f == FS_READS       ? d->reads
                     : f == FS_WRITE_BYTES ? d->write_bytes
                                           : d->writes;
        emit1(e, (double)v, "device", dev);
    }
}

static void f_fs_reads_bytes(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    fs_family(e, s, FS_READ_BYTES);
}

static void f_fs_reads(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    fs_family(e, s, FS_READS);
}

static void f_fs_writes_bytes(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    fs_family(e, s, FS_WRITE_BYTES);
}

static void f_fs_writes(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    fs_family(e, s, FS_WRITES);
}

/* cAdvisor's getContainerHealthState: 1 healthy, -1 without a health check,
 * 0 otherwise (starting, unhealthy). */
static void f_health_state(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)s;
    double v = !c->health || !c->health[0] ? -1 : strcmp(c->health, "healthy") == 0 ? 1 : 0;
    emit0(e, v);
}

static void f_last_seen(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)s;
    if (c->last_seen > 0) emit0(e, c->last_seen);
}

/* A family with one sample per container, when `bit` is known. */
#define ONE_VALUE(fn, bit, expr)                                                                   \
    static void fn(emitter *e, const cadvisor_container *c, const cstats *s)                       \
    {                                                                                              \
        (void)c;                                                                                   \
        if (has(s, bit)) emit0(e, (double)(expr));                                                 \
    }

ONE_VALUE(f_mem_cache, CSTATS_MEM_CACHE, s->mem.cache)
ONE_VALUE(f_mem_failcnt, CSTATS_MEM_FAILCNT, s->mem.failcnt)
ONE_VALUE(f_mem_mapped_file, CSTATS_MEM_MAPPED_FILE, s->mem.mapped_file)
ONE_VALUE(f_mem_max_usage, CSTATS_MEM_MAX_USAGE, s->mem.max_usage)
ONE_VALUE(f_mem_rss, CSTATS_MEM_RSS, s->mem.rss)
ONE_VALUE(f_mem_swap, CSTATS_MEM_SWAP, s->mem.swap)
ONE_VALUE(f_mem_usage, CSTATS_MEM_USAGE, s->mem.usage)
ONE_VALUE(f_mem_working_set, CSTATS_MEM_USAGE, cstats_working_set(s))
ONE_VALUE(f_oom_events, CSTATS_OOM, s->oom_events)
ONE_VALUE(f_processes, CSTATS_PROCESSES, s->processes)
ONE_VALUE(f_threads, CSTATS_PIDS_CURRENT, s->pids.current)
ONE_VALUE(f_threads_max, CSTATS_PIDS_LIMIT, s->pids.limit)
ONE_VALUE(f_spec_cpu_shares, CSTATS_CPU_SHARES, s->cpu.shares)
ONE_VALUE(f_spec_cpu_period, CSTATS_CPU_QUOTA, s->cpu.period_us)

static void f_mem_failures(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    const char *x[4] = {"failure_type", "pgfault", "scope", "container"};
    if (has(s, CSTATS_MEM_FAULTS)) {
        emit(e, (double)s->mem.pgfault, 2, x);
        x[1] = "pgmajfault";
        emit(e, (double)s->mem.pgmajfault, 2, x);
    }
    if (has(s, CSTATS_MEM_FAULTS_H)) {
        x[1] = "pgfault";
        x[3] = "hierarchy";
        emit(e, (double)s->mem.h_pgfault, 2, x);
        x[1] = "pgmajfault";
        emit(e, (double)s->mem.h_pgmajfault, 2, x);
    }
}

static void f_mem_total_active_file(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    uint64_t v;
    if (cstats_total_active_file(s, &v)) emit0(e, (double)v);
}

static void f_mem_total_inactive_file(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    uint64_t v;
    if (cstats_total_inactive_file(s, &v)) emit0(e, (double)v);
}

#define NET_COUNTER(fn, field)                                                                     \
    static void fn(emitter *e, const cadvisor_container *c, const cstats *s)                       \
    {                                                                                              \
        (void)c;                                                                                   \
        if (!has(s, CSTATS_NET)) return;                                                           \
        for (uint32_t i = 0; i < s->n_ifaces; i++)                                                 \
            emit1(e, (double)s->ifaces[i].field, "interface", s->ifaces[i].name);                  \
    }

NET_COUNTER(f_net_rx_bytes, rx_bytes)
NET_COUNTER(f_net_rx_errors, rx_errors)
NET_COUNTER(f_net_rx_dropped, rx_dropped)
NET_COUNTER(f_net_rx_packets, rx_packets)
NET_COUNTER(f_net_tx_bytes, tx_bytes)
NET_COUNTER(f_net_tx_errors, tx_errors)
NET_COUNTER(f_net_tx_dropped, tx_dropped)
NET_COUNTER(f_net_tx_packets, tx_packets)

static void f_spec_cpu_quota(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    if (has(s, CSTATS_CPU_QUOTA) && s->cpu.quota_us != 0) emit0(e, (double)s->cpu.quota_us);
}

/* cAdvisor's specMemoryValue: above 2^62 means unlimited, exported as 0. */
static void f_spec_memory_limit(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)c;
    if (!has(s, CSTATS_MEM_LIMIT)) return;
    emit0(e, s->mem.limit > (1ull << 62) ? 0.0 : (double)s->mem.limit);
}

static void f_start_time(emitter *e, const cadvisor_container *c, const cstats *s)
{
    (void)s;
    if (c->start_time > 0) emit0(e, c->start_time);
}

/* Sorted by name. */
static const family_def families[] = {
    {{"container_blkio_device_usage_total", "Blkio Device bytes usage", EXPFMT_COUNTER},
     f_blkio_device_usage},
    {{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.",
      EXPFMT_COUNTER},
     f_cfs_periods},
    {{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.",
      EXPFMT_COUNTER},
     f_cfs_throttled_periods},
    {{"container_cpu_cfs_throttled_seconds_total",
      "Total time duration the container has been throttled.", EXPFMT_COUNTER},
     f_cfs_throttled_seconds},
    {{"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.",
      EXPFMT_COUNTER},
     f_cpu_system},
    {{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.",
      EXPFMT_COUNTER},
     f_cpu_usage},
    {{"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.",
      EXPFMT_COUNTER},
     f_cpu_user},
    {{"container_fs_reads_bytes_total", "Cumulative count of bytes read", EXPFMT_COUNTER},
     f_fs_reads_bytes},
    {{"container_fs_reads_total", "Cumulative count of reads completed", EXPFMT_COUNTER},
     f_fs_reads},
    {{"container_fs_writes_bytes_total", "Cumulative count of bytes written", EXPFMT_COUNTER},
     f_fs_writes_bytes},
    {{"container_fs_writes_total", "Cumulative count of writes completed", EXPFMT_COUNTER},
     f_fs_writes},
    {{"container_health_state", "The result of the container's health check", EXPFMT_GAUGE},
     f_health_state},
    {{"container_last_seen", "Last time a container was seen by the exporter", EXPFMT_GAUGE},
     f_last_seen,
     true},
    {{"container_memory_cache", "Number of bytes of page cache memory.", EXPFMT_GAUGE},
     f_mem_cache},
    {{"container_memory_failcnt", "Number of memory usage hits limits", EXPFMT_COUNTER},
     f_mem_failcnt},
    {{"container_memory_failures_total", "Cumulative count of memory allocation failures.",
      EXPFMT_COUNTER},
     f_mem_failures},
    {{"container_memory_mapped_file", "Size of memory mapped files in bytes.", EXPFMT_GAUGE},
     f_mem_mapped_file},
    {{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", EXPFMT_GAUGE},
     f_mem_max_usage},
    {{"container_memory_rss", "Size of RSS in bytes.", EXPFMT_GAUGE}, f_mem_rss},
    {{"container_memory_swap", "Container swap usage in bytes.", EXPFMT_GAUGE}, f_mem_swap},
    {{"container_memory_total_active_file_bytes", "Current total active file in bytes.",
      EXPFMT_GAUGE},
     f_mem_total_active_file},
    {{"container_memory_total_inactive_file_bytes", "Current total inactive file in bytes.",
      EXPFMT_GAUGE},
     f_mem_total_inactive_file},
    {{"container_memory_usage_bytes",
      "Current memory usage in bytes, including all memory regardless of when it was accessed",
      EXPFMT_GAUGE},
     f_mem_usage},
    {{"container_memory_working_set_bytes", "Current working set in bytes.", EXPFMT_GAUGE},
     f_mem_working_set},
    {{"container_network_receive_bytes_total", "Cumulative count of bytes received",
      EXPFMT_COUNTER},
     f_net_rx_bytes},
    {{"container_network_receive_errors_total",
      "Cumulative count of errors encountered while receiving", EXPFMT_COUNTER},
     f_net_rx_errors},
    {{"container_network_receive_packets_dropped_total",
      "Cumulative count of packets dropped while receiving", EXPFMT_COUNTER},
     f_net_rx_dropped},
    {{"container_network_receive_packets_total", "Cumulative count of packets received",
      EXPFMT_COUNTER},
     f_net_rx_packets},
    {{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted",
      EXPFMT_COUNTER},
     f_net_tx_bytes},
    {{"container_network_transmit_errors_total",
      "Cumulative count of errors encountered while transmitting", EXPFMT_COUNTER},
     f_net_tx_errors},
    {{"container_network_transmit_packets_dropped_total",
      "Cumulative count of packets dropped while transmitting", EXPFMT_COUNTER},
     f_net_tx_dropped},
    {{"container_network_transmit_packets_total", "Cumulative count of packets transmitted",
      EXPFMT_COUNTER},
     f_net_tx_packets},
    {{"container_oom_events_total", "Count of out of memory events observed for the container",
      EXPFMT_COUNTER},
     f_oom_events},
    {{"container_processes", "Number of processes running inside the container.", EXPFMT_GAUGE},
     f_processes},
    {{"container_spec_cpu_period", "CPU period of the container.", EXPFMT_GAUGE},
     f_spec_cpu_period},
    {{"container_spec_cpu_quota", "CPU quota of the container.", EXPFMT_GAUGE}, f_spec_cpu_quota},
    {{"container_spec_cpu_shares", "CPU share of the container.", EXPFMT_GAUGE}, f_spec_cpu_shares},
    {{"container_spec_memory_limit_bytes", "Memory limit for the container.", EXPFMT_GAUGE},
     f_spec_memory_limit},
    {{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.",
      EXPFMT_GAUGE},
     f_start_time,
     true},
    {{"container_threads", "Number of threads running inside the container", EXPFMT_GAUGE},
     f_threads},
    {{"container_threads_max",
      "Maximum number of threads allowed inside the container, infinity if value is zero",
      EXPFMT_GAUGE},
     f_threads_max},
};

static const cadvisor_family machine_cpu_cores = {"machine_cpu_cores",
                                                  "Number of logical CPU cores.", EXPFMT_GAUGE};
static const cadvisor_family machine_memory_bytes = {
    "machine_memory_bytes", "Amount of memory installed on the machine.", EXPFMT_GAUGE};

/* ---- labels -------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
    if (len == 0 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    /* overlong 3/4-byte forms, surrogates, beyond U+10FFFF */
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
        return 0;
    return len;
}

int cadvisor_sanitize_label(const char *key, size_t len, buf *out)
{
    /* Reserve first so a too-small buffer is left unchanged (and nothing is
     * reserved for "": buf_reserve on an empty buf leaves no terminator). */
    if (len == 0) return 0;
    int rc = buf_reserve(out, len);
    if (rc < 0) return rc;
    const unsigned char *p = (const unsigned char *)key;
    for (size_t i = 0; i < len;) {
        unsigned char ch = p[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_';
        buf_putc(out, ok ? (char)ch : '_');
        /* Go's regexp replaces per character: one '_' for a UTF-8 sequence,
         * one per invalid byte. */
        size_t n = ch >= 0x80 ? utf8_len(p + i, len - i) : 1;
        i += n ? n : 1;
    }
    return 0;
}

static bool label_selected(const cadvisor_options *o, const char *key)
{
    if (o->all_labels) return true;
    for (size_t i = 0; i < o->n_label_keys; i++)
        if (strcmp(o->label_keys[i], key) == 0) return true;
    return false;
}

typedef struct key_ref {
    const char *key;
    const char *value;
} key_ref;

static int cmp_key_ref(const void *a, const void *b)
{
    return strcmp(((const key_ref *)a)->key, ((const key_ref *)b)->key);
}

/* id, name, image and the selected container_label_* of one container.
 * Caller frees. */
static labels *base_labels(const cadvisor_container *c, const cadvisor_options *o)
{
    labels_builder lb;
    labels_builder_init(&lb);
    if (c->id) labels_builder_add(&lb, "id", 2, c->id, strlen(c->id));
    if (c->name) {
        const char *n = c->name[0] == '/' ? c->name + 1 : c->name;
        labels_builder_add(&lb, "name", 4, n, strlen(n));
    }
    if (c->image) labels_builder_add(&lb, "image", 5, c->image, strlen(c->image));
    key_ref *refs = NULL;
    size_t nr = 0;
    if (c->n_labels > 0) refs = mem_malloc(c->n_labels * sizeof *refs);
    for (size_t i = 0; i < c->n_labels; i++) {
        if (!c->label_keys[i] || !c->label_values[i] || !label_selected(o, c->label_keys[i]))
            continue;
        refs[nr].key = c->label_keys[i];
        refs[nr].value = c->label_values[i];
        nr++;
    }
    /* Sanitized names point into one buffer, filled before any is added. */
    if (nr > 1) qsort(refs, nr, sizeof *refs, cmp_key_ref);
    buf names;
    buf_init(&names, BUF_UNLIMITED);
    size_t *off = nr ? mem_malloc(nr * sizeof *off) : NULL;
    for (size_t i = 0; i < nr; i++) {
        off[i] = names.len;
        buf_puts(&names, "container_label_");
        cadvisor_sanitize_label(refs[i].key, strlen(refs[i].key), &names);
        buf_putc(&names, '\0');
    }
    for (size_t i = 0; i < nr; i++) {
        const char *name = names.data + off[i];
        size_t len = strlen(name);
        /* First (bytewise smallest original key) wins. */
        size_t vl;
        if (labels_builder_get(&lb, name, len, &vl)) continue;
        labels_builder_add(&lb, name, len, refs[i].value, strlen(refs[i].value));
    }
    labels *ls = labels_builder_finish(&lb, NULL);
    labels_builder_cleanup(&lb);
    buf_cleanup(&names);
    mem_free(off);
    mem_free(refs);
    return ls;
}

/* ---- collecting ------------------------------------------------------------------ */

static void machine_family(emitter *e, const cadvisor_family *f, const labels *base, double v)
{
    e->fam = f;
    e->announced = false;
    e->base = base;
    e->t_ms = 0;
    emit0(e, v);
}

int cadvisor_collect(const cadvisor_container *cs, size_t n, const cstats_machine *m,
                     const cadvisor_options *o, const cadvisor_sink *sink)
{
    static const cadvisor_options defaults = {0};
    emitter e = {.sink = sink, .o = o ? o : &defaults};
    labels_builder_init(&e.lb);
    labels **base = n ? mem_calloc(n, sizeof *base) : NULL;
    for (size_t i = 0; i < n; i++)
        base[i] = base_labels(&cs[i], e.o);
    for (size_t f = 0; f < sizeof families / sizeof families[0] && e.rc >= 0; f++) {
        e.fam = &families[f].f;
        e.announced = false;
        for (size_t i = 0; i < n && e.rc >= 0; i++) {
            if (!cs[i].stats && !families[f].meta) continue;
            e.base = base[i];
            e.t_ms = cs[i].t_ms;
            families[f].fn(&e, &cs[i], cs[i].stats);
        }
    }
    if (m && e.rc >= 0) {
        labels_builder lb;
        labels_builder_init(&lb);
        labels_builder_add(&lb, "boot_id", 7, m->boot_id, strlen(m->boot_id));
        labels_builder_add(&lb, "machine_id", 10, m->machine_id, strlen(m->machine_id));
        labels *mb = labels_builder_finish(&lb, NULL);
        labels_builder_cleanup(&lb);
        if (m->cpu_cores > 0) machine_family(&e, &machine_cpu_cores, mb, (double)m->cpu_cores);
        if (m->memory_bytes > 0)
            machine_family(&e, &machine_memory_bytes, mb, (double)m->memory_bytes);
        labels_free(mb);
    }
    for (size_t i = 0; i < n; i++)
        labels_free(base[i]);
    mem_free(base);
    labels_builder_cleanup(&e.lb);
    return e.rc < 0 ? e.rc : 0;
}

/* ---- text exposition sink -------------------------------------------------------- */

int cadvisor_text_family(void *ctx, const cadvisor_family *f)
{
    cadvisor_text *t = ctx;
    size_t len = strlen(f->name);
    textwrite_help(t->w, f->name, len, f->help, strlen(f->help));
    textwrite_type(t->w, f->name, len, f->type);
    return textwrite_error(t->w);
}

int cadvisor_text_sample(void *ctx, const cadvisor_family *f, const labels *ls, double v,
                         int64_t t_ms)
{
    cadvisor_text *t = ctx;
    textwrite_label stack[32], *tl = stack;
    if (ls->n > sizeof stack / sizeof stack[0]) tl = mem_malloc(ls->n * sizeof *tl);
    size_t k = 0;
    for (uint32_t i = 0; i < ls->n; i++) {
        const label *l = &ls->v[i];
        if (l->name_len == 8 && memcmp(l->name, LABELS_METRIC_NAME, 8) == 0) continue;
        tl[k++] = (textwrite_label){l->name, l->name_len, l->value, l->value_len};
    }
    textwrite_sample(t->w, f->name, strlen(f->name), tl, k, v,
                     t->timestamps && t_ms != 0 ? &t_ms : NULL);
    if (tl != stack) mem_free(tl);
    return textwrite_error(t->w);
}
