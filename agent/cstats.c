/* cstats: the container statistics record, the Docker stats API parser and
 * the docker CLI's derived numbers. */
#include "cstats.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "strutil.h"

void cstats_reset(cstats *s)
{
    memset(s, 0, sizeof *s);
}

/* ---- memory.stat keys ----------------------------------------------------- */

enum {
    MS_CACHE,
    MS_RSS,
    MS_SWAP,
    MS_MAPPED_FILE,
    MS_PGFAULT,
    MS_PGMAJFAULT,
    MS_INACTIVE_FILE,
    MS_ACTIVE_FILE,
    MS_TOTAL_CACHE,
    MS_TOTAL_RSS,
    MS_TOTAL_SWAP,
    MS_TOTAL_MAPPED_FILE,
    MS_TOTAL_PGFAULT,
    MS_TOTAL_PGMAJFAULT,
    MS_TOTAL_INACTIVE_FILE,
    MS_TOTAL_ACTIVE_FILE,
    MS_ANON,
    MS_FILE,
    MS_FILE_MAPPED,
};

static const char *const memstat_keys[CSTATS_MEMSTAT_KEYS] = {
    [MS_CACHE] = "cache",
    [MS_RSS] = "rss",
    [MS_SWAP] = "swap",
    [MS_MAPPED_FILE] = "mapped_file",
    [MS_PGFAULT] = "pgfault",
    [MS_PGMAJFAULT] = "pgmajfault",
    [MS_INACTIVE_FILE] = "inactive_file",
    [MS_ACTIVE_FILE] = "active_file",
    [MS_TOTAL_CACHE] = "total_cache",
    [MS_TOTAL_RSS] = "total_rss",
    [MS_TOTAL_SWAP] = "total_swap",
    [MS_TOTAL_MAPPED_FILE] = "total_mapped_file",
    [MS_TOTAL_PGFAULT] = "total_pgfault",
    [MS_TOTAL_PGMAJFAULT] = "total_pgmajfault",
    [MS_TOTAL_INACTIVE_FILE] = "total_inactive_file",
    [MS_TOTAL_ACTIVE_FILE] = "total_active_file",
    [MS_ANON] = "anon",
    [MS_FILE] = "file",
    [MS_FILE_MAPPED] = "file_mapped",
};

void cstats_memstat_init(cstats_memstat *m)
{
    m->have = 0;
}

void cstats_memstat_add(cstats_memstat *m, const char *key, size_t key_len, uint64_t v)
{
    /* memory.stat has 30-60 lines; the keys we want are short and distinct
     * in length and first letter often enough that this is cheap. */
    for (int i = 0; i < CSTATS_MEMSTAT_KEYS; i++) {
        const char *k = memstat_keys[i];
        if (k[0] == key[0] && strlen(k) == key_len && memcmp(k, key, key_len) == 0) {
            m->have |= 1u << i;
            m->v[i] = v;
            return;
        }
    }
}

static bool ms_get(const cstats_memstat *m, int k, uint64_t *v)
{
    if (!(m->have & (1u << k))) return false;
    *v = m->v[k];
    return true;
}

/* Sets *dst from the first key present among a and b. */
static bool ms_pick(const cstats_memstat *m, int a, int b, uint64_t *dst)
{
    return ms_get(m, a, dst) || (b >= 0 && ms_get(m, b, dst));
}

int cstats_memstat_apply(const cstats_memstat *m, cstats *s)
{
    const uint32_t v1_keys = (1u << MS_CACHE) | (1u << MS_RSS) | (1u << MS_MAPPED_FILE) |
                             (1u << MS_TOTAL_CACHE) | (1u << MS_TOTAL_RSS) |
                             (1u << MS_TOTAL_INACTIVE_FILE) | (1u << MS_TOTAL_PGFAULT);
    const uint32_t v2_keys = (1u << MS_ANON) | (1u << MS_FILE) | (1u << MS_FILE_MAPPED);
    int version = (m->have & v1_keys) ? 1 : (m->have & v2_keys) ? 2 : 0;
    struct cstats_mem_fields {
        int bit;
        uint64_t *dst;
        int v1a, v1b, v2;
    } map[] = {
        {CSTATS_MEM_RSS, &s->mem.rss, MS_TOTAL_RSS, MS_RSS, MS_ANON},
        {CSTATS_MEM_CACHE, &s->mem.cache, MS_TOTAL_CACHE, MS_CACHE, MS_FILE},
        {CSTATS_MEM_SWAP, &s->mem.swap, MS_TOTAL_SWAP, MS_SWAP, -1},
        {CSTATS_MEM_MAPPED_FILE, &s->mem.mapped_file, MS_TOTAL_MAPPED_FILE, MS_MAPPED_FILE,
         MS_FILE_MAPPED},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        bool ok = version == 1   ? ms_pick(m, map[i].v1a, map[i].v1b, map[i].dst)
                  : version == 2 ? map[i].v2 >= 0 && ms_get(m, map[i].v2, map[i].dst)
                                 : false;
        if (ok) s->known |= (uint64_t)map[i].bit;
    }
    if (ms_get(m, MS_PGFAULT, &s->mem.pgfault) && ms_get(m, MS_PGMAJFAULT, &s->mem.pgmajfault))
        s->known |= CSTATS_MEM_FAULTS;
    if (version == 1) {
        if (ms_get(m, MS_TOTAL_PGFAULT, &s->mem.h_pgfault) &&
            ms_get(m, MS_TOTAL_PGMAJFAULT, &s->mem.h_pgmajfault))
            s->known |= CSTATS_MEM_FAULTS_H;
    } else if (version == 2 && (s->known & CSTATS_MEM_FAULTS)) {
        /* v2's memory.stat is hierarchical: both scopes are the same. */
        s->mem.h_pgfault = s->mem.pgfault;
        s->mem.h_pgmajfault = s->mem.pgmajfault;
        s->known |= CSTATS_MEM_FAULTS_H;
    }
    if (ms_get(m, MS_INACTIVE_FILE, &s->mem.inactive_file)) s->known |= CSTATS_MEM_INACTIVE_FILE;
    if (ms_get(m, MS_TOTAL_INACTIVE_FILE, &s->mem.total_inactive_file))
        s->known |= CSTATS_MEM_TOTAL_INACTIVE_FILE;
    if (ms_get(m, MS_ACTIVE_FILE, &s->mem.active_file)) s->known |= CSTATS_MEM_ACTIVE_FILE;
    if (ms_get(m, MS_TOTAL_ACTIVE_FILE, &s->mem.total_active_file))
        s->known |= CSTATS_MEM_TOTAL_ACTIVE_FILE;
    return version;
}

/* ---- derived numbers --------------------------------------------------- */

/* The hierarchical key cAdvisor uses: v1 total_*, v2 the plain key. With an
 * unknown version, whichever is there (total_* first). */
static bool total_file_key(const cstats *s, uint64_t total_bit, uint64_t total, uint64_t plain_bit,
                           uint64_t plain, uint64_t *v)
{
    if (s->cgroup_version != 2 && (s->known & total_bit)) {
        *v = total;
        return true;
    }
    if (s->cgroup_version != 1 && (s->known & plain_bit)) {
        *v = plain;
        return true;
    }
    return false;
}

bool cstats_total_inactive_file(const cstats *s, uint64_t *v)
{
    return total_file_key(s, CSTATS_MEM_TOTAL_INACTIVE_FILE, s->mem.total_inactive_file,
                          CSTATS_MEM_INACTIVE_FILE, s->mem.inactive_file, v);
}

bool cstats_total_active_file(const cstats *s, uint64_t *v)
{
    return total_file_key(s, CSTATS_MEM_TOTAL_ACTIVE_FILE, s->mem.total_active_file,
                          CSTATS_MEM_ACTIVE_FILE, s->mem.active_file, v);
}

uint64_t cstats_working_set(const cstats *s)
{
    uint64_t usage = s->mem.usage, inactive;
    if (!cstats_total_inactive_file(s, &inactive)) return usage;
    return inactive > usage ? 0 : usage - inactive;
}

double cstats_cli_cpu_percent(const cstats *s)
{
    if (!(s->known & CSTATS_PRECPU) || !(s->known & CSTATS_CPU_HOST)) return 0;
    double cpu_delta = (double)s->cpu.total_ns - (double)s->cpu.pre_total_ns;
    double host_delta = (double)s->cpu.host_ns - (double)s->cpu.pre_host_ns;
    double ncpu = (s->known & CSTATS_CPU_ONLINE) ? (double)s->cpu.online_cpus : 0.0;
    if (ncpu == 0.0) ncpu = (double)s->cpu.n_percpu_input;
    if (host_delta > 0.0 && cpu_delta > 0.0) return (cpu_delta / host_delta) * ncpu * 100.0;
    return 0;
}

uint64_t cstats_cli_mem_used(const cstats *s)
{
    uint64_t usage = s->mem.usage;
    if ((s->known & CSTATS_MEM_TOTAL_INACTIVE_FILE) && s->mem.total_inactive_file < usage)
        return usage - s->mem.total_inactive_file;
    uint64_t inactive = (s->known & CSTATS_MEM_INACTIVE_FILE) ? s->mem.inactive_file : 0;
    if (inactive < usage) return usage - inactive;
    return usage;
}

double cstats_cli_mem_percent(const cstats *s)
{
    double limit = (s->known & CSTATS_MEM_LIMIT) ? (double)s->mem.limit : 0.0;
    if (limit != 0) return (double)cstats_cli_mem_used(s) / limit * 100.0;
    return 0;
}

void cstats_cli_net_io(const cstats *s, uint64_t *rx, uint64_t *tx)
{
    *rx = *tx = 0;
    for (uint32_t i = 0; i < s->n_ifaces; i++) {
        *rx += s->ifaces[i].rx_bytes;
        *tx += s->ifaces[i].tx_bytes;
    }
}

void cstats_cli_block_io(const cstats *s, uint64_t *read, uint64_t *write)
{
    *read = *write = 0;
    for (uint32_t i = 0; i < s->n_blkdev; i++) {
        *read += s->blkdev[i].read_bytes;
        *write += s->blkdev[i].write_bytes;
    }
}

/* ---- parsing --------------------------------------------------------------- */

typedef struct pctx {
    cstats *s;
    buf *err;
    int rc; /* first error */
} pctx;

static int fail(pctx *c, const char *path, const char *what)
{
    if (c->rc == 0) {
        c->rc = -EBADMSG;
        if (c->err) buf_printf(c->err, "stats: %s: %s", path, what);
    }
    return c->rc;
}

/* A non-negative integer value. Returns 1 and *v, 0 for null, or the error.
 * Reals are accepted when integral (integers beyond int64 arrive as reals,
 * see widen_big_integers); >= 2^64 saturates. */
static int u64_of(pctx *c, const json_val *j, const char *path, uint64_t *v)
{
    if (json_val_is_null(j)) return 0;
    if (json_val_uint64(j, v) < 0) return fail(c, path, "expected a non-negative integer");
    return 1;
}

/* Reads member `key` as u64_of() does; absent is 0. */
static int get_u64(pctx *c, const json_val *obj, const char *key, const char *path, uint64_t *v)
{
    const json_val *j = obj ? json_val_get(obj, key) : NULL;
    return j ? u64_of(c, j, path, v) : 0;
}

/* An object member that must be an object when present. Returns it, or NULL
 * when absent/null (or on a type error, recorded). */
static const json_val *get_obj(pctx *c, const json_val *obj, const char *key, const char *path)
{
    const json_val *j = obj ? json_val_get(obj, key) : NULL;
    if (!j || json_val_is_null(j)) return NULL;
    if (!json_val_is_object(j)) {
        fail(c, path, "expected an object");
        return NULL;
    }
    return j;
}

static const json_val *get_array(pctx *c, const json_val *obj, const char *key, const char *path)
{
    const json_val *j = obj ? json_val_get(obj, key) : NULL;
    if (!j || json_val_is_null(j)) return NULL;
    if (!json_val_is_array(j)) {
        fail(c, path, "expected an array");
        return NULL;
    }
    return j;
}

static const char *get_str(pctx *c, const json_val *obj, const char *key, const char *path,
                           size_t *len)
{
    const json_val *j = obj ? json_val_get(obj, key) : NULL;
    if (!j || json_val_is_null(j)) return NULL;
    if (!json_val_is_string(j)) {
        fail(c, path, "expected a string");
        return NULL;
    }
    return json_val_string(j, len);
}

/* RFC 3339 (Go's RFC3339Nano, and as before lower-case 't' and 'z'):
 * returns 1 and unix ns, 0 for a time outside int64 ns (Go's zero time
 * 0001-01-01T00:00:00Z among them), -1 when malformed. */
static int parse_time(const char *s, size_t len, int64_t *ns)
{
    int64_t secs;
    int32_t nsec;
    if (strutil_parse_rfc3339_ci(s, len, &secs, &nsec) != 0) return -1;
    /* int64 ns covers 1678..2262. */
    if (secs < -9223372036LL || secs > 9223372035LL) return 0;
    *ns = secs * 1000000000LL + nsec;
    return 1;
}

static void parse_cpu(pctx *c, const json_val *cpu)
{
    cstats *s = c->s;
    const json_val *u = get_obj(c, cpu, "cpu_usage", "cpu_stats.cpu_usage");
    if (get_u64(c, u, "total_usage", "cpu_stats.cpu_usage.total_usage", &s->cpu.total_ns) > 0)
        s->known |= CSTATS_CPU_USAGE;
    if (get_u64(c, u, "usage_in_kernelmode", "cpu_stats.cpu_usage.usage_in_kernelmode",
                &s->cpu.system_ns) > 0 &&
        get_u64(c, u, "usage_in_usermode", "cpu_stats.cpu_usage.usage_in_usermode",
                &s->cpu.user_ns) > 0)
        s->known |= CSTATS_CPU_USER_SYSTEM;
    const json_val *pc = get_array(c, u, "percpu_usage", "cpu_stats.cpu_usage.percpu_usage");
    if (pc && json_val_len(pc) > 0) {
        size_t n = json_val_len(pc);
        s->cpu.n_percpu_input = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
        for (size_t i = 0; i < n; i++) {
            uint64_t v = 0;
            if (u64_of(c, json_val_at(pc, i), "cpu_stats.cpu_usage.percpu_usage[]", &v) <= 0) {
                fail(c, "cpu_stats.cpu_usage.percpu_usage[]", "expected a non-negative integer");
                return;
            }
            if (i < CSTATS_MAX_CPUS) s->cpu.percpu_ns[i] = v;
        }
        if (n <= CSTATS_MAX_CPUS) {
            s->cpu.n_percpu = (uint32_t)n;
            s->known |= CSTATS_CPU_PERCPU;
        } else {
            s->truncated |= CSTATS_TRUNC_PERCPU;
        }
    }
    if (get_u64(c, cpu, "system_cpu_usage", "cpu_stats.system_cpu_usage", &s->cpu.host_ns) > 0)
        s->known |= CSTATS_CPU_HOST;
    uint64_t online;
    if (get_u64(c, cpu, "online_cpus", "cpu_stats.online_cpus", &online) > 0) {
        s->cpu.online_cpus = online > UINT32_MAX ? UINT32_MAX : (uint32_t)online;
        s->known |= CSTATS_CPU_ONLINE;
    }
    const json_val *t = get_obj(c, cpu, "throttling_data", "cpu_stats.throttling_data");
    if (get_u64(c, t, "periods", "cpu_stats.throttling_data.periods", &s->cpu.periods) > 0 &&
        get_u64(c, t, "throttled_periods", "cpu_stats.throttling_data.throttled_periods",
                &s->cpu.throttled_periods) > 0 &&
        get_u64(c, t, "throttled_time", "cpu_stats.throttling_data.throttled_time",
                &s->cpu.throttled_ns) > 0)
        s->known |= CSTATS_CPU_CFS;
}

static void parse_precpu(pctx *c, const json_val *pre)
{
    cstats *s = c->s;
    const json_val *u = get_obj(c, pre, "cpu_usage", "precpu_stats.cpu_usage");
    if (get_u64(c, u, "total_usage", "precpu_stats.cpu_usage.total_usage", &s->cpu.pre_total_ns) >
            0 &&
        get_u64(c, pre, "system_cpu_usage", "precpu_stats.system_cpu_usage", &s->cpu.pre_host_ns) >
            0)
        s->known |= CSTATS_PRECPU;
}

static int parse_memory(pctx *c, const json_val *m)
{
    cstats *s = c->s;
    if (get_u64(c, m, "usage", "memory_stats.usage", &s->mem.usage) > 0)
        s->known |= CSTATS_MEM_USAGE;
    if (get_u64(c, m, "limit", "memory_stats.limit", &s->mem.limit) > 0)
        s->known |= CSTATS_MEM_LIMIT;
    if (get_u64(c, m, "max_usage", "memory_stats.max_usage", &s->mem.max_usage) > 0)
        s->known |= CSTATS_MEM_MAX_USAGE;
    if (get_u64(c, m, "failcnt", "memory_stats.failcnt", &s->mem.failcnt) > 0)
        s->known |= CSTATS_MEM_FAILCNT;
    const json_val *st = get_obj(c, m, "stats", "memory_stats.stats");
    if (!st) return 0;
    cstats_memstat ms;
    cstats_memstat_init(&ms);
    json_iter it = {0};
    const char *key;
    const json_val *v;
    while (json_val_next(st, &it, &key, &v)) {
        uint64_t x;
        char path[96];
        snprintf(path, sizeof path, "memory_stats.stats.%.64s", key);
        int r = u64_of(c, v, path, &x);
        if (r < 0) return 0;
        if (r > 0) cstats_memstat_add(&ms, key, strlen(key), x);
    }
    return cstats_memstat_apply(&ms, s);
}

static void parse_networks(pctx *c, const json_val *nets)
{
    cstats *s = c->s;
    s->known |= CSTATS_NET;
    json_iter it = {0};
    const char *name;
    const json_val *n;
    while (json_val_next(nets, &it, &name, &n)) {
        size_t len = strlen(name);
        if (len == 0 || len >= CSTATS_IFNAME_MAX) {
            fail(c, "networks", "interface name empty or too long");
            return;
        }
        if (!json_val_is_object(n)) {
            char path[64];
            snprintf(path, sizeof path, "networks.%s", name);
            fail(c, path, "expected an object");
            return;
        }
        if (s->n_ifaces == CSTATS_MAX_IFACES) {
            s->truncated |= CSTATS_TRUNC_IFACES;
            continue;
        }
        cstats_iface *f = &s->ifaces[s->n_ifaces];
        memset(f, 0, sizeof *f);
        memcpy(f->name, name, len + 1);
        static const struct {
            const char *key;
            size_t off;
        } fields[] = {
            {"rx_bytes", offsetof(cstats_iface, rx_bytes)},
            {"rx_packets", offsetof(cstats_iface, rx_packets)},
            {"rx_errors", offsetof(cstats_iface, rx_errors)},
            {"rx_dropped", offsetof(cstats_iface, rx_dropped)},
            {"tx_bytes", offsetof(cstats_iface, tx_bytes)},
            {"tx_packets", offsetof(cstats_iface, tx_packets)},
            {"tx_errors", offsetof(cstats_iface, tx_errors)},
            {"tx_dropped", offsetof(cstats_iface, tx_dropped)},
        };
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            char path[96];
            snprintf(path, sizeof path, "networks.%s.%s", f->name, fields[i].key);
            if (get_u64(c, n, fields[i].key, path, (uint64_t *)((char *)f + fields[i].off)) < 0)
                return;
        }
        s->n_ifaces++;
    }
}

static cstats_blkdev *blkdev_get(cstats *s, uint32_t major, uint32_t minor)
{
    for (uint32_t i = 0; i < s->n_blkdev; i++)
        if (s->blkdev[i].major == major && s->blkdev[i].minor == minor) return &s->blkdev[i];
    if (s->n_blkdev == CSTATS_MAX_BLKDEV) {
        s->truncated |= CSTATS_TRUNC_BLKDEV;
        return NULL;
    }
    cstats_blkdev *d = &s->blkdev[s->n_blkdev++];
    memset(d, 0, sizeof *d);
    d->major = major;
    d->minor = minor;
    return d;
}

/* One of blkio_stats' arrays: entries {major, minor, op, value}. Ops that
 * start with r/R count as reads and w/W as writes (the docker CLI's rule);
 * Sync, Async, Discard and Total are left out. */
static bool parse_blkio_array(pctx *c, const json_val *arr, const char *path, bool bytes)
{
    for (size_t i = 0; i < json_val_len(arr); i++) {
        const json_val *e = json_val_at(arr, i);
        if (!json_val_is_object(e)) {
            fail(c, path, "expected objects");
            return false;
        }
        uint64_t major, minor, value;
        size_t oplen = 0;
        const char *op = get_str(c, e, "op", path, &oplen);
        if (get_u64(c, e, "major", path, &major) <= 0 ||
            get_u64(c, e, "minor", path, &minor) <= 0 ||
            get_u64(c, e, "value", path, &value) <= 0 || !op) {
            fail(c, path, "entries need major, minor, op and value");
            return false;
        }
        if (major > UINT32_MAX || minor > UINT32_MAX) {
            fail(c, path, "device number out of range");
            return false;
        }
        bool rd = op[0] == 'r' || op[0] == 'R', wr = op[0] == 'w' || op[0] == 'W';
        cstats_blkdev *d = blkdev_get(c->s, (uint32_t)major, (uint32_t)minor);
        if (!d) continue;
        d->known |= bytes ? CSTATS_BLK_BYTES : CSTATS_BLK_OPS;
        uint64_t *rdst = bytes ? &d->read_bytes : &d->reads;
        uint64_t *wdst = bytes ? &d->write_bytes : &d->writes;
        if (rd) *rdst += value;
        if (wr) *wdst += value;
    }
    return true;
}

static int parse_blkio(pctx *c, const json_val *b)
{
    const json_val *bytes =
        get_array(c, b, "io_service_bytes_recursive", "blkio_stats.io_service_bytes_recursive");
    const json_val *ops =
        get_array(c, b, "io_serviced_recursive", "blkio_stats.io_serviced_recursive");
    if (!bytes && !ops) return 0;
    c->s->known |= CSTATS_BLKIO;
    if (bytes && !parse_blkio_array(c, bytes, "blkio_stats.io_service_bytes_recursive", true))
        return 0;
    if (ops && !parse_blkio_array(c, ops, "blkio_stats.io_serviced_recursive", false)) return 0;
    /* The op's case tells the cgroup version: v1 "Read", v2 "read". */
    const json_val *e = bytes && json_val_len(bytes) ? json_val_at(bytes, 0) : NULL;
    const char *o = json_val_string(json_val_get(e, "op"), NULL);
    if (!o) o = "";
    return (o[0] >= 'A' && o[0] <= 'Z') ? 1 : (o[0] >= 'a' && o[0] <= 'z') ? 2 : 0;
}

static void parse_pids(pctx *c, const json_val *p)
{
    cstats *s = c->s;
    if (get_u64(c, p, "current", "pids_stats.current", &s->pids.current) > 0)
        s->known |= CSTATS_PIDS_CURRENT;
    uint64_t lim;
    if (get_u64(c, p, "limit", "pids_stats.limit", &lim) > 0) {
        /* 0 and 2^64-1 both mean "no limit" (swagger). */
        s->pids.limit = lim == UINT64_MAX ? 0 : lim;
        s->known |= CSTATS_PIDS_LIMIT;
    }
}

/* Copies id and name (without leading '/'s); both are optional. */
static void parse_identity(pctx *c, const json_val *root)
{
    cstats *s = c->s;
    size_t len = 0;
    const char *id = get_str(c, root, "id", "id", &len);
    if (!id && c->rc == 0) id = get_str(c, root, "Id", "Id", &len);
    if (id) {
        if (len >= CSTATS_ID_MAX || memchr(id, '\0', len)) {
            fail(c, "id", "too long or contains NUL");
            return;
        }
        memcpy(s->id, id, len + 1);
    }
    const char *name = get_str(c, root, "name", "name", &len);
    if (name) {
        while (len > 0 && name[0] == '/') name++, len--;
        if (len >= CSTATS_NAME_MAX || memchr(name, '\0', len)) {
            fail(c, "name", "too long or contains NUL");
            return;
        }
        memcpy(s->name, name, len + 1);
    }
}

/* Returns 1 and the time, 2 for Go's zero time, 0 when absent or null (or
 * outside int64 ns), or the error. */
static int get_time(pctx *c, const json_val *root, const char *key, int64_t *ns)
{
    size_t len = 0;
    const char *t = get_str(c, root, key, key, &len);
    if (!t) return c->rc;
    if (len == 20 && memcmp(t, "0001-01-01T00:00:00Z", 20) == 0) return 2;
    int r = parse_time(t, len, ns);
    if (r < 0) return fail(c, key, "not an RFC 3339 time");
    return r;
}

static bool contains_ci(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; *s; s++)
        if (strncasecmp(s, needle, n) == 0) return true;
    return false;
}

int cstats_parse(cstats *out, const char *body, size_t len, buf *err)
{
    cstats_reset(out);
    if (len > CSTATS_MAX_BODY) {
        if (err) buf_printf(err, "stats: body of %zu bytes exceeds %d", len, CSTATS_MAX_BODY);
        return -E2BIG;
    }
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i == len) {
        if (err) buf_puts(err, "stats: empty body: the container is not running");
        return -ENODATA;
    }
    json_read_error je;
    json_doc *doc = json_doc_parse(body, len, CSTATS_MAX_BODY, JSON_READ_BIG_INTEGERS, &je);
    if (!doc) {
        if (err) buf_printf(err, "stats: %s", je.msg);
        return -EBADMSG;
    }
    const json_val *root = json_doc_root(doc);
    pctx c = {.s = out, .err = err};
    int rc = 0;
    if (!json_val_is_object(root)) {
        rc = fail(&c, "body", "expected an object");
        goto done;
    }
    const char *m = json_val_string(json_val_get(root, "message"), NULL);
    if (m && !json_val_get(root, "read") && !json_val_get(root, "cpu_stats")) {
        if (err) buf_printf(err, "engine: %s", m);
        rc = contains_ci(m, "no such container") ? -ENOENT : -EREMOTEIO;
        goto done;
    }
    parse_identity(&c, root);
    if (c.rc) goto fail;
    int r = get_time(&c, root, "read", &out->read_ns);
    if (r < 0) goto fail;
    if (r == 2) {
        if (err) buf_puts(err, "stats: zero read time: the container is not running");
        rc = -ENODATA;
        goto fail;
    }
    if (r == 1) out->known |= CSTATS_READ_TIME;
    r = get_time(&c, root, "preread", &out->preread_ns);
    if (r < 0) goto fail;
    if (r == 1) out->known |= CSTATS_PREREAD_TIME;

    const json_val *o;
    if ((o = get_obj(&c, root, "cpu_stats", "cpu_stats"))) parse_cpu(&c, o);
    if ((o = get_obj(&c, root, "precpu_stats", "precpu_stats"))) parse_precpu(&c, o);
    int mv = 0, bv = 0;
    if ((o = get_obj(&c, root, "memory_stats", "memory_stats"))) mv = parse_memory(&c, o);
    if ((o = get_obj(&c, root, "networks", "networks"))) parse_networks(&c, o);
    if ((o = get_obj(&c, root, "blkio_stats", "blkio_stats"))) bv = parse_blkio(&c, o);
    if ((o = get_obj(&c, root, "pids_stats", "pids_stats"))) parse_pids(&c, o);
    if (c.rc) goto fail;
    out->cgroup_version = mv ? mv : (out->known & CSTATS_CPU_PERCPU) ? 1 : bv;
    goto done;

fail:
    if (rc == 0) rc = c.rc;
    {
        /* No half-filled record: only the identity survives. */
        char id[CSTATS_ID_MAX], name[CSTATS_NAME_MAX];
        memcpy(id, out->id, sizeof id);
        memcpy(name, out->name, sizeof name);
        cstats_reset(out);
        memcpy(out->id, id, sizeof id);
        memcpy(out->name, name, sizeof name);
    }
done:
    json_doc_free(doc);
    return rc;
}
