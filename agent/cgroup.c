/* cgroup: container statistics from the cgroup filesystem (v1, hybrid, v2)
 * and host facts. See cgroup.h. File formats: the kernel's
 * Documentation/admin-guide/cgroup-v1/ and cgroup-v2.rst. */
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem.h"

enum { C_CPU, C_CPUACCT, C_MEMORY, C_PIDS, C_BLKIO, C_N };

/* v1 controller directories, in order of preference. */
static const char *const ctrl_dirs[C_N][2] = {
    [C_CPU] = {"cpu", "cpu,cpuacct"}, [C_CPUACCT] = {"cpuacct", "cpu,cpuacct"},
    [C_MEMORY] = {"memory", NULL},    [C_PIDS] = {"pids", NULL},
    [C_BLKIO] = {"blkio", NULL},
};

struct cgroup_fs {
    enum cgroup_mode mode;
    int root_fd;      /* the root directory (O_PATH) */
    int ctrl_fd[C_N]; /* v1/hybrid: controller directories, -1 when absent */
    uint64_t ns_per_tick;
    char proc_root[CGROUP_PATH_MAX / 2];
    char sys_root[CGROUP_PATH_MAX / 2];
    char buf[CGROUP_READ_BUF + 1];
};

const char *cgroup_mode_name(enum cgroup_mode m)
{
    switch (m) {
    case CGROUP_MODE_V1:
        return "v1";
    case CGROUP_MODE_HYBRID:
        return "hybrid";
    case CGROUP_MODE_V2:
        return "v2";
    default:
        return "none";
    }
}

enum cgroup_mode cgroup_get_mode(const cgroup_fs *fs)
{
    return fs->mode;
}

static bool is_dir_at(int dfd, const char *name)
{
    struct stat st;
    return fstatat(dfd, name, &st, 0) == 0 && S_ISDIR(st.st_mode);
}

static bool exists_at(int dfd, const char *name)
{
    return faccessat(dfd, name, F_OK, 0) == 0;
}

static int set_root(char *dst, size_t n, const char *src, const char *def)
{
    const char *s = src && *src ? src : def;
    size_t len = strlen(s);
    while (len > 1 && s[len - 1] == '/')
        len--;
    if (len >= n) return -ENAMETOOLONG;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

int cgroup_open(cgroup_fs **out, const cgroup_options *o, buf *err)
{
    *out = NULL;
    cgroup_fs *fs = mem_calloc(1, sizeof *fs);
    fs->root_fd = -1;
    for (int i = 0; i < C_N; i++)
        fs->ctrl_fd[i] = -1;
    const char *root = o && o->root && *o->root ? o->root : "/sys/fs/cgroup";
    int rc = set_root(fs->proc_root, sizeof fs->proc_root, o ? o->proc_root : NULL, "/proc");
    if (rc == 0) rc = set_root(fs->sys_root, sizeof fs->sys_root, o ? o->sys_root : NULL, "/sys");
    if (rc < 0) {
        if (err) buf_puts(err, "cgroup: proc or sys root path too long");
        goto fail;
    }
    long hz = sysconf(_SC_CLK_TCK);
    fs->ns_per_tick = hz > 0 ? 1000000000ull / (uint64_t)hz : 10000000ull;
    fs->root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fs->root_fd < 0) {
        rc = -errno;
        if (err) buf_printf(err, "cgroup: %s: %s", root, strerror(errno));
        goto fail;
    }
    if (exists_at(fs->root_fd, "cgroup.controllers")) {
        fs->mode = CGROUP_MODE_V2;
    } else {
        bool any = false;
        for (int i = 0; i < C_N; i++) {
            for (int j = 0; j < 2 && ctrl_dirs[i][j] && fs->ctrl_fd[i] < 0; j++)
                fs->ctrl_fd[i] =
                    openat(fs->root_fd, ctrl_dirs[i][j], O_PATH | O_DIRECTORY | O_CLOEXEC);
            any |= fs->ctrl_fd[i] >= 0;
        }
        if (!any) {
            rc = -ENOENT;
            if (err)
                buf_printf(err,
                           "cgroup: %s: no cgroup filesystem (neither cgroup.controllers nor "
                           "v1 controller directories)",
                           root);
            goto fail;
        }
        fs->mode =
            exists_at(fs->root_fd, "unified/cgroup.procs") ? CGROUP_MODE_HYBRID : CGROUP_MODE_V1;
    }
    *out = fs;
    return 0;
fail:
    cgroup_free(fs);
    return rc;
}

void cgroup_free(cgroup_fs *fs)
{
    if (!fs) return;
    if (fs->root_fd >= 0) close(fs->root_fd);
    for (int i = 0; i < C_N; i++)
        if (fs->ctrl_fd[i] >= 0) close(fs->ctrl_fd[i]);
    mem_free(fs);
}

/* ---- reading files ----------------------------------------------------------- */

/* Reads up to CGROUP_READ_BUF bytes of a file into fs->buf (NUL-terminated).
 * Returns the length or -errno. */
static ssize_t read_file(cgroup_fs *fs, int dfd, const char *name)
{
    int fd = dfd >= 0 ? openat(dfd, name, O_RDONLY | O_CLOEXEC) : open(name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    size_t n = 0;
    while (n < CGROUP_READ_BUF) {
        ssize_t r = read(fd, fs->buf + n, CGROUP_READ_BUF - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = -errno;
            close(fd);
            return e;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    fs->buf[n] = '\0';
    return (ssize_t)n;
}

/* One cgroup_read() call. */
typedef struct reader {
    cgroup_fs *fs;
    cstats *s;
    bool vanished;
    int err; /* first error other than a missing file */
} reader;

/* True if the cgroup directory dfd was removed: every cgroup directory has
 * cgroup.procs. */
static bool dir_gone(int dfd)
{
    return faccessat(dfd, "cgroup.procs", F_OK, 0) != 0 && (errno == ENOENT || errno == ENODEV);
}

/* Reads a file of the cgroup; returns false (and records why) when it
 * cannot be read. */
static bool rd(reader *r, int dfd, const char *name)
{
    ssize_t n = read_file(r->fs, dfd, name);
    if (n >= 0) return true;
    if (n == -ENOENT || n == -ENODEV || n == -ESTALE) {
        if (dir_gone(dfd)) r->vanished = true;
    } else if (r->err == 0) {
        r->err = (int)n;
    }
    return false;
}

static const char *skip_blank(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* An unsigned decimal at p; returns its end, or NULL. */
static const char *parse_u64(const char *p, uint64_t *v)
{
    if (*p < '0' || *p > '9') return NULL;
    uint64_t x = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10) return NULL;
        x = x * 10 + d;
    }
    *v = x;
    return p;
}

static bool at_line_end(const char *p)
{
    p = skip_blank(p);
    return *p == '\n' || *p == '\0';
}

/* A file holding one number. `max` (may be NULL) is set for "max". */
static bool read_u64(reader *r, int dfd, const char *name, uint64_t *v, bool *max)
{
    if (!rd(r, dfd, name)) return false;
    const char *p = skip_blank(r->fs->buf);
    if (max) {
        *max = strncmp(p, "max", 3) == 0 && at_line_end(p + 3);
        if (*max) {
            *v = UINT64_MAX;
            return true;
        }
    }
    const char *e = parse_u64(p, v);
    return e && at_line_end(e);
}

/* Iterates "key value" lines of fs->buf from *p. Lines that do not have
 * this shape are skipped. Returns false at the end. */
static bool kv_next(const char **p, const char **key, size_t *klen, uint64_t *v)
{
    while (**p) {
        const char *s = *p, *nl = strchr(s, '\n');
        const char *end = nl ? nl : s + strlen(s);
        *p = nl ? nl + 1 : end;
        const char *sp = memchr(s, ' ', (size_t)(end - s));
        if (!sp || sp == s) continue;
        const char *e = parse_u64(skip_blank(sp), v);
        if (!e || e != end) continue;
        *key = s;
        *klen = (size_t)(sp - s);
        return true;
    }
    return false;
}

static bool key_is(const char *key, size_t klen, const char *lit)
{
    return strlen(lit) == klen && memcmp(key, lit, klen) == 0;
}

/* Reads "key value" file `name` and stores the values of the n keys given
 * (key, destination). Returns a bit mask of the keys found. */
typedef struct kv_field {
    const char *key;
    uint64_t *dst;
} kv_field;

static unsigned read_kv(reader *r, int dfd, const char *name, const kv_field *f, size_t n)
{
    if (!rd(r, dfd, name)) return 0;
    unsigned found = 0;
    const char *p = r->fs->buf, *key;
    size_t klen;
    uint64_t v;
    while (kv_next(&p, &key, &klen, &v))
        for (size_t i = 0; i < n; i++)
            if (key_is(key, klen, f[i].key)) {
                *f[i].dst = v;
                found |= 1u << i;
            }
    return found;
}

static void read_memory_stat(reader *r, int dfd)
{
    if (!rd(r, dfd, "memory.stat")) return;
    cstats_memstat ms;
    cstats_memstat_init(&ms);
    const char *p = r->fs->buf, *key;
    size_t klen;
    uint64_t v;
    while (kv_next(&p, &key, &klen, &v))
        cstats_memstat_add(&ms, key, klen, v);
    cstats_memstat_apply(&ms, r->s);
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

/* "major:minor" at p; returns the end or NULL. */
static const char *parse_dev(const char *p, uint32_t *major, uint32_t *minor)
{
    uint64_t a, b;
    p = parse_u64(p, &a);
    if (!p || *p != ':') return NULL;
    p = parse_u64(p + 1, &b);
    if (!p || a > UINT32_MAX || b > UINT32_MAX) return NULL;
    *major = (uint32_t)a;
    *minor = (uint32_t)b;
    return p;
}

/* v1 blkio.throttle.io_service_bytes_recursive / io_serviced_recursive:
 * "<major>:<minor> <Op> <value>" lines and a final "Total <value>". */
static bool read_blkio_v1(reader *r, int dfd, const char *name, bool bytes)
{
    if (!rd(r, dfd, name)) return false;
    cstats *s = r->s;
    for (const char *p = r->fs->buf; *p;) {
        const char *nl = strchr(p, '\n'), *line = p;
        p = nl ? nl + 1 : p + strlen(p);
        uint32_t major, minor;
        const char *e = parse_dev(line, &major, &minor);
        if (!e || *e != ' ') continue;
        const char *op = e + 1, *sp = strchr(op, ' ');
        uint64_t v;
        if (!sp || !parse_u64(sp + 1, &v)) continue;
        bool rdop = strncmp(op, "Read ", 5) == 0, wrop = strncmp(op, "Write ", 6) == 0;
        if (!rdop && !wrop) continue;
        cstats_blkdev *d = blkdev_get(s, major, minor);
        if (!d) continue;
        d->known |= bytes ? CSTATS_BLK_BYTES : CSTATS_BLK_OPS;
        if (bytes)
            *(rdop ? &d->read_bytes : &d->write_bytes) = v;
        else
            *(rdop ? &d->reads : &d->writes) = v;
    }
    return true;
}

/* v2 io.stat: "<major>:<minor> rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N". */
static bool read_io_stat(reader *r, int dfd)
{
    if (!rd(r, dfd, "io.stat")) return false;
    cstats *s = r->s;
    for (const char *p = r->fs->buf; *p;) {
        const char *nl = strchr(p, '\n'), *line = p;
        const char *end = nl ? nl : p + strlen(p);
        p = nl ? nl + 1 : end;
        uint32_t major, minor;
        const char *q = parse_dev(line, &major, &minor);
        if (!q) continue;
        cstats_blkdev *d = blkdev_get(s, major, minor);
        if (!d) continue;
        while (q < end) {
            q = skip_blank(q);
            const char *eq = memchr(q, '=', (size_t)(end - q));
            if (!eq) break;
            uint64_t v;
            const char *ve = parse_u64(eq + 1, &v);
            if (!ve) break;
            size_t klen = (size_t)(eq - q);
            if (key_is(q, klen, "rbytes"))
                d->read_bytes = v, d->known |= CSTATS_BLK_BYTES;
            else if (key_is(q, klen, "wbytes"))
                d->write_bytes = v, d->known |= CSTATS_BLK_BYTES;
            else if (key_is(q, klen, "rios"))
                d->reads = v, d->known |= CSTATS_BLK_OPS;
            else if (key_is(q, klen, "wios"))
                d->writes = v, d->known |= CSTATS_BLK_OPS;
            q = ve;
        }
    }
    return true;
}

/* cgroup.procs: counts the processes and returns the first pid (0 if none).
 * Read in pieces: a busy container may list thousands. */
static bool read_procs(reader *r, int dfd, uint64_t *count, uint64_t *first)
{
    int fd = openat(dfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if ((errno == ENOENT || errno == ENODEV) && dir_gone(dfd)) r->vanished = true;
        return false;
    }
    uint64_t n = 0, pid = 0;
    bool in_first = true;
    for (;;) {
        ssize_t got = read(fd, r->fs->buf, CGROUP_READ_BUF);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            if (errno == ENODEV) r->vanished = true;
            close(fd);
            return false;
        }
        if (got == 0) break;
        for (ssize_t i = 0; i < got; i++) {
            char ch = r->fs->buf[i];
            if (ch == '\n') {
                n++;
                in_first = false;
            } else if (in_first && ch >= '0' && ch <= '9' && pid < UINT64_MAX / 10) {
                pid = pid * 10 + (uint64_t)(ch - '0');
            }
        }
    }
    close(fd);
    *count = n;
    *first = pid;
    return true;
}

/* Network interfaces cAdvisor leaves out (libcontainer handler's
 * ignoredDevicePrefixes). */
static bool ignored_iface(const char *name, size_t len)
{
    static const char *const prefixes[] = {"lo", "veth", "docker", "nerdctl"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i]);
        if (len >= n && memcmp(name, prefixes[i], n) == 0) return true;
    }
    return false;
}

/* <proc>/<pid>/net/dev: two header lines, then
 * "  name: rx_bytes rx_packets rx_errs rx_drop fifo frame compressed multicast
 *          tx_bytes tx_packets tx_errs tx_drop fifo colls carrier compressed". */
static void read_net_dev(reader *r, uint64_t pid)
{
    char path[CGROUP_PATH_MAX];
    int n =
        snprintf(path, sizeof path, "%s/%llu/net/dev", r->fs->proc_root, (unsigned long long)pid);
    if (n < 0 || (size_t)n >= sizeof path) return;
    if (read_file(r->fs, -1, path) < 0) return; /* the process exited: no network data */
    cstats *s = r->s;
    s->known |= CSTATS_NET;
    for (const char *p = r->fs->buf; *p;) {
        const char *nl = strchr(p, '\n'), *line = skip_blank(p);
        p = nl ? nl + 1 : p + strlen(p);
        const char *colon = strchr(line, ':');
        if (!colon || (nl && colon > nl)) continue;
        size_t len = (size_t)(colon - line);
        if (len == 0 || len >= CSTATS_IFNAME_MAX || ignored_iface(line, len)) continue;
        uint64_t f[16];
        const char *q = colon + 1;
        int k = 0;
        for (; k < 16; k++) {
            q = parse_u64(skip_blank(q), &f[k]);
            if (!q) break;
        }
        if (k < 16) continue;
        if (s->n_ifaces == CSTATS_MAX_IFACES) {
            s->truncated |= CSTATS_TRUNC_IFACES;
            continue;
        }
        cstats_iface *i = &s->ifaces[s->n_ifaces++];
        memset(i, 0, sizeof *i);
        memcpy(i->name, line, len);
        i->rx_bytes = f[0], i->rx_packets = f[1], i->rx_errors = f[2], i->rx_dropped = f[3];
        i->tx_bytes = f[8], i->tx_packets = f[9], i->tx_errors = f[10], i->tx_dropped = f[11];
    }
}

/* ---- cgroup v1 ------------------------------------------------------------------ */

static void read_v1_cpuacct(reader *r, int d, unsigned flags)
{
    cstats *s = r->s;
    uint64_t user = 0, sys = 0;
    if (read_u64(r, d, "cpuacct.usage", &s->cpu.total_ns, NULL)) s->known |= CSTATS_CPU_USAGE;
    /* cpuacct.stat is in USER_HZ ticks, as runc (and so Docker) reads it. */
    kv_field f[] = {{"user", &user}, {"system", &sys}};
    if (read_kv(r, d, "cpuacct.stat", f, 2) == 3) {
        s->cpu.user_ns = user * r->fs->ns_per_tick;
        s->cpu.system_ns = sys * r->fs->ns_per_tick;
        s->known |= CSTATS_CPU_USER_SYSTEM;
    }
    if ((flags & CGROUP_READ_PERCPU) && rd(r, d, "cpuacct.usage_percpu")) {
        uint32_t n = 0;
        bool ok = true;
        for (const char *p = skip_blank(r->fs->buf); *p && *p != '\n'; p = skip_blank(p)) {
            uint64_t v;
            const char *e = parse_u64(p, &v);
            if (!e) {
                ok = false;
                break;
            }
            if (n < CSTATS_MAX_CPUS) s->cpu.percpu_ns[n] = v;
            n++;
            p = e;
        }
        s->cpu.n_percpu_input = n;
        if (ok && n > 0 && n <= CSTATS_MAX_CPUS) {
            s->cpu.n_percpu = n;
            s->known |= CSTATS_CPU_PERCPU;
        } else if (n > CSTATS_MAX_CPUS) {
            s->truncated |= CSTATS_TRUNC_PERCPU;
        }
    }
}

static void read_v1_cpu(reader *r, int d)
{
    cstats *s = r->s;
    kv_field f[] = {{"nr_periods", &s->cpu.periods},
                    {"nr_throttled", &s->cpu.throttled_periods},
                    {"throttled_time", &s->cpu.throttled_ns}};
    if (read_kv(r, d, "cpu.stat", f, 3) == 7) s->known |= CSTATS_CPU_CFS;
    /* cpu.cfs_quota_us is -1 without a quota. */
    uint64_t period;
    if (rd(r, d, "cpu.cfs_quota_us")) {
        const char *p = skip_blank(r->fs->buf);
        uint64_t q = 0;
        bool ok = (p[0] == '-' && p[1] == '1' && at_line_end(p + 2)) ||
                  ((p = parse_u64(p, &q)) && at_line_end(p));
        if (ok && read_u64(r, d, "cpu.cfs_period_us", &period, NULL)) {
            s->cpu.quota_us = q;
            s->cpu.period_us = period;
            s->known |= CSTATS_CPU_QUOTA;
        }
    }
    if (read_u64(r, d, "cpu.shares", &s->cpu.shares, NULL)) s->known |= CSTATS_CPU_SHARES;
}

static void read_v1_memory(reader *r, int d)
{
    cstats *s = r->s;
    if (read_u64(r, d, "memory.usage_in_bytes", &s->mem.usage, NULL)) s->known |= CSTATS_MEM_USAGE;
    if (read_u64(r, d, "memory.limit_in_bytes", &s->mem.limit, NULL)) s->known |= CSTATS_MEM_LIMIT;
    if (read_u64(r, d, "memory.max_usage_in_bytes", &s->mem.max_usage, NULL))
        s->known |= CSTATS_MEM_MAX_USAGE;
    if (read_u64(r, d, "memory.failcnt", &s->mem.failcnt, NULL)) s->known |= CSTATS_MEM_FAILCNT;
    read_memory_stat(r, d);
    /* oom_kill is in memory.oom_control since Linux 4.13. */
    kv_field f[] = {{"oom_kill", &s->oom_events}};
    if (read_kv(r, d, "memory.oom_control", f, 1)) s->known |= CSTATS_OOM;
}

static void read_pids(reader *r, int d)
{
    cstats *s = r->s;
    if (read_u64(r, d, "pids.current", &s->pids.current, NULL)) s->known |= CSTATS_PIDS_CURRENT;
    bool max;
    if (read_u64(r, d, "pids.max", &s->pids.limit, &max)) {
        if (max) s->pids.limit = 0;
        s->known |= CSTATS_PIDS_LIMIT;
    }
}

/* Opens <ctrl>/<rel> of each mounted v1 controller; a controller whose
 * directory is missing is skipped (-1). Returns false if no controller has
 * the cgroup. */
static bool open_v1(reader *r, const char *rel, int fds[C_N])
{
    bool any = false;
    for (int i = 0; i < C_N; i++) {
        fds[i] = -1;
        if (r->fs->ctrl_fd[i] < 0) continue;
        /* cpu and cpuacct may be the same directory. */
        if (i == C_CPUACCT && fds[C_CPU] >= 0 && r->fs->ctrl_fd[C_CPU] >= 0) {
            struct stat a, b;
            if (fstat(r->fs->ctrl_fd[C_CPU], &a) == 0 &&
                fstat(r->fs->ctrl_fd[C_CPUACCT], &b) == 0 && a.st_dev == b.st_dev &&
                a.st_ino == b.st_ino) {
                fds[i] = dup(fds[C_CPU]);
                any |= fds[i] >= 0;
                continue;
            }
        }
        fds[i] = openat(r->fs->ctrl_fd[i], rel, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fds[i] < 0 && errno != ENOENT && errno != ENOTDIR && r->err == 0) r->err = -errno;
        any |= fds[i] >= 0;
    }
    return any;
}

static void read_v1(reader *r, const char *rel, unsigned flags)
{
    int d[C_N];
    if (!open_v1(r, rel, d)) {
        r->vanished = r->err == 0;
        return;
    }
    cstats *s = r->s;
    s->cgroup_version = 1;
    if (d[C_CPUACCT] >= 0) read_v1_cpuacct(r, d[C_CPUACCT], flags);
    if (d[C_CPU] >= 0) read_v1_cpu(r, d[C_CPU]);
    if (d[C_MEMORY] >= 0) read_v1_memory(r, d[C_MEMORY]);
    if (d[C_PIDS] >= 0) read_pids(r, d[C_PIDS]);
    if (d[C_BLKIO] >= 0) {
        bool a = read_blkio_v1(r, d[C_BLKIO], "blkio.throttle.io_service_bytes_recursive", true);
        bool b = read_blkio_v1(r, d[C_BLKIO], "blkio.throttle.io_serviced_recursive", false);
        if (a || b) s->known |= CSTATS_BLKIO;
    }
    if (flags & (CGROUP_READ_PROCS | CGROUP_READ_NETWORK)) {
        int pd = d[C_PIDS] >= 0 ? d[C_PIDS] : d[C_MEMORY] >= 0 ? d[C_MEMORY] : d[C_CPU];
        for (int i = 0; pd < 0 && i < C_N; i++)
            pd = d[i];
        uint64_t first = 0;
        if (read_procs(r, pd, &s->processes, &first)) {
            s->known |= CSTATS_PROCESSES;
            if ((flags & CGROUP_READ_NETWORK) && first > 0) read_net_dev(r, first);
        }
    }
    for (int i = 0; i < C_N; i++)
        if (d[i] >= 0) close(d[i]);
}

/* ---- cgroup v2 ------------------------------------------------------------------ */

static void read_v2(reader *r, const char *rel, unsigned flags)
{
    int d = openat(r->fs->root_fd, rel, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            r->vanished = true;
        else
            r->err = -errno;
        return;
    }
    cstats *s = r->s;
    s->cgroup_version = 2;
    uint64_t usage_us = 0, user_us = 0, system_us = 0, throttled_us = 0;
    kv_field f[] = {{"usage_usec", &usage_us},
                    {"user_usec", &user_us},
                    {"system_usec", &system_us},
                    {"nr_periods", &s->cpu.periods},
                    {"nr_throttled", &s->cpu.throttled_periods},
                    {"throttled_usec", &throttled_us}};
    unsigned got = read_kv(r, d, "cpu.stat", f, 6);
    if (got & 1) {
        s->cpu.total_ns = usage_us * 1000;
        s->known |= CSTATS_CPU_USAGE;
    }
    if ((got & 6) == 6) {
        s->cpu.user_ns = user_us * 1000;
        s->cpu.system_ns = system_us * 1000;
        s->known |= CSTATS_CPU_USER_SYSTEM;
    }
    if ((got & 56) == 56) {
        s->cpu.throttled_ns = throttled_us * 1000;
        s->known |= CSTATS_CPU_CFS;
    }
    /* cpu.max: "$MAX $PERIOD", $MAX "max" for no quota. */
    if (rd(r, d, "cpu.max")) {
        const char *p = skip_blank(r->fs->buf), *e;
        uint64_t q = 0, period;
        if (strncmp(p, "max ", 4) == 0)
            e = p + 3;
        else
            e = parse_u64(p, &q);
        if (e && *e == ' ' && (e = parse_u64(e + 1, &period)) && at_line_end(e)) {
            s->cpu.quota_us = q;
            s->cpu.period_us = period;
            s->known |= CSTATS_CPU_QUOTA;
        }
    }
    /* cpu.weight (1..10000) as cgroup v1 shares, cAdvisor's conversion. */
    uint64_t w;
    if (read_u64(r, d, "cpu.weight", &w, NULL) && w >= 1 && w <= 10000) {
        s->cpu.shares = 2 + ((w - 1) * 262142) / 9999;
        s->known |= CSTATS_CPU_SHARES;
    }
    if (read_u64(r, d, "memory.current", &s->mem.usage, NULL)) s->known |= CSTATS_MEM_USAGE;
    bool max;
    if (read_u64(r, d, "memory.max", &s->mem.limit, &max)) s->known |= CSTATS_MEM_LIMIT;
    /* memory.peak: Linux 5.19 and newer. */
    if (read_u64(r, d, "memory.peak", &s->mem.max_usage, NULL)) s->known |= CSTATS_MEM_MAX_USAGE;
    read_memory_stat(r, d);
    if (read_u64(r, d, "memory.swap.current", &s->mem.swap, NULL)) s->known |= CSTATS_MEM_SWAP;
    kv_field ev[] = {{"oom_kill", &s->oom_events}};
    if (read_kv(r, d, "memory.events", ev, 1)) s->known |= CSTATS_OOM;
    if (read_io_stat(r, d)) s->known |= CSTATS_BLKIO;
    read_pids(r, d);
    if (flags & (CGROUP_READ_PROCS | CGROUP_READ_NETWORK)) {
        uint64_t first = 0;
        if (read_procs(r, d, &s->processes, &first)) {
            s->known |= CSTATS_PROCESSES;
            if ((flags & CGROUP_READ_NETWORK) && first > 0) read_net_dev(r, first);
        }
    }
    close(d);
}

/* "/docker/x" -> "docker/x", "" or "/" -> "."; NULL if a component is "..". */
static const char *relative(const char *path)
{
    while (*path == '/')
        path++;
    for (const char *p = path; *p;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return NULL;
        p += len;
        while (*p == '/')
            p++;
    }
    return *path ? path : ".";
}

int cgroup_read(cgroup_fs *fs, const char *path, unsigned flags, cstats *out)
{
    cstats_reset(out);
    const char *rel = relative(path ? path : "");
    if (!rel) return -EINVAL;
    if (strlen(rel) >= CGROUP_PATH_MAX) return -ENAMETOOLONG;
    reader r = {.fs = fs, .s = out};
    if (fs->mode == CGROUP_MODE_V2)
        read_v2(&r, rel, flags);
    else
        read_v1(&r, rel, flags);
    if (r.vanished) {
        cstats_reset(out);
        return -ENOENT;
    }
    if (out->known == 0 && r.err) {
        cstats_reset(out);
        return r.err;
    }
    return 0;
}

/* ---- locating a container -------------------------------------------------------- */

static bool valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= CSTATS_ID_MAX || !strcmp(id, ".") || !strcmp(id, "..")) return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-'))
            return false;
    return true;
}

static bool valid_parent(const char *p)
{
    if (strlen(p) >= CGROUP_PATH_MAX / 2 || !relative(p)) return false;
    for (; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("_.-/:@=+\\", *p)))
            return false;
    return true;
}

/* systemd's slice expansion: "a-b-c.slice" -> "a.slice/a-b.slice/a-b-c.slice",
 * "-.slice" -> "" (the root). Returns false for an invalid slice name. */
static bool expand_slice(const char *slice, char *out, size_t n)
{
    size_t len = strlen(slice);
    if (len < 6 || strcmp(slice + len - 6, ".slice") != 0 || strchr(slice, '/')) return false;
    size_t base = len - 6, o = 0;
    out[0] = '\0';
    if (base == 1 && slice[0] == '-') return true;
    if (base == 0 || slice[0] == '-' || slice[base - 1] == '-') return false;
    for (size_t i = 0; i <= base; i++) {
        if (i < base && slice[i] != '-') continue;
        if (i < base && slice[i + 1] == '-') return false; /* "a--b" */
        int w = snprintf(out + o, n - o, "%s%.*s.slice", o ? "/" : "", (int)i, slice);
        if (w < 0 || (size_t)w >= n - o) return false;
        o += (size_t)w;
    }
    return true;
}

/* Formats a candidate path; if that cgroup exists, copies it with a leading
 * '/' into out. Returns 1 when found, 0 when not, or -ENAMETOOLONG. */
static int try_candidate(int ref, char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int try_candidate(int ref, char *out, size_t n, const char *fmt, ...)
{
    char cand[CGROUP_PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(cand, sizeof cand, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof cand || !is_dir_at(ref, cand)) return 0;
    if ((size_t)len + 2 > n) return -ENAMETOOLONG;
    out[0] = '/';
    memcpy(out + 1, cand, (size_t)len + 1);
    return 1;
}

int cgroup_find_container(cgroup_fs *fs, const char *id, const char *parent,
                          enum cgroup_driver driver, char *out, size_t n)
{
    if (!id || !valid_id(id)) return -EINVAL;
    if (parent && *parent && !valid_parent(parent)) return -EINVAL;
    /* The hierarchy that tells whether a cgroup exists. */
    int ref = fs->root_fd;
    if (fs->mode != CGROUP_MODE_V2) {
        static const int order[] = {C_MEMORY, C_CPU, C_CPUACCT, C_PIDS, C_BLKIO};
        ref = -1;
        for (size_t i = 0; ref < 0 && i < C_N; i++)
            ref = fs->ctrl_fd[order[i]];
        if (ref < 0) return -ENOENT;
    }
    int r = 0;
    if (parent && *parent) {
        const char *p = parent;
        while (*p == '/')
            p++;
        int plen = (int)strlen(p);
        while (plen > 0 && p[plen - 1] == '/')
            plen--;
        char slice[CGROUP_PATH_MAX / 2];
        if (plen > 6 && !memcmp(p + plen - 6, ".slice", 6) && !memchr(p, '/', (size_t)plen)) {
            char name[CGROUP_PATH_MAX / 2];
            memcpy(name, p, (size_t)plen);
            name[plen] = '\0';
            if (!expand_slice(name, slice, sizeof slice)) return -EINVAL;
            const char *sep = *slice ? "/" : "";
            if (!r) r = try_candidate(ref, out, n, "%s%sdocker-%s.scope", slice, sep, id);
            if (!r) r = try_candidate(ref, out, n, "%s%slibpod-%s.scope", slice, sep, id);
        } else {
            /* "/" is the root itself. */
            const char *sep = plen ? "/" : "";
            if (!r) r = try_candidate(ref, out, n, "%.*s%s%s", plen, p, sep, id);
            if (!r) r = try_candidate(ref, out, n, "%.*s%slibpod-%s", plen, p, sep, id);
        }
    }
    if (driver != CGROUP_DRIVER_SYSTEMD) {
        if (!r) r = try_candidate(ref, out, n, "docker/%s", id);
        if (!r) r = try_candidate(ref, out, n, "libpod_parent/libpod-%s", id);
    }
    if (driver != CGROUP_DRIVER_CGROUPFS) {
        if (!r) r = try_candidate(ref, out, n, "system.slice/docker-%s.scope", id);
        if (!r) r = try_candidate(ref, out, n, "machine.slice/libpod-%s.scope", id);
    }
    return r > 0 ? 0 : r < 0 ? r : -ENOENT;
}

/* ---- host facts ------------------------------------------------------------------ */

static ssize_t read_under(cgroup_fs *fs, const char *root, const char *rel)
{
    char path[CGROUP_PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", root, rel);
    if (n < 0 || (size_t)n >= sizeof path) return -ENAMETOOLONG;
    return read_file(fs, -1, path);
}

/* "0-3,5,7-8\n" -> 7. Returns 0 for a malformed list. */
static uint32_t count_cpu_list(const char *p)
{
    uint64_t total = 0;
    for (;;) {
        uint64_t a, b;
        p = parse_u64(skip_blank(p), &a);
        if (!p) return 0;
        b = a;
        if (*p == '-' && !(p = parse_u64(p + 1, &b))) return 0;
        if (b < a || b - a > 65536) return 0;
        total += b - a + 1;
        if (*p != ',') break;
        p++;
    }
    return at_line_end(p) && total <= UINT32_MAX ? (uint32_t)total : 0;
}

int cgroup_machine_read(cgroup_fs *fs, cstats_machine *m)
{
    memset(m, 0, sizeof *m);
    int rc = 0;
    if (read_under(fs, fs->sys_root, "devices/system/cpu/online") > 0)
        m->cpu_cores = count_cpu_list(fs->buf);
    if (m->cpu_cores == 0) {
        ssize_t n = read_under(fs, fs->proc_root, "cpuinfo");
        if (n < 0) rc = (int)n;
        /* Only the first CGROUP_READ_BUF bytes fit: count what is there only
         * if the file was read whole. */
        if (n > 0 && n < CGROUP_READ_BUF)
            for (const char *p = fs->buf; (p = strstr(p, "processor")); p += 9)
                if (p == fs->buf || p[-1] == '\n') m->cpu_cores++;
    }
    ssize_t n = read_under(fs, fs->proc_root, "meminfo");
    if (n < 0) {
        rc = (int)n;
    } else {
        const char *p = strstr(fs->buf, "MemTotal:");
        uint64_t kb;
        const char *e = p ? parse_u64(skip_blank(p + 9), &kb) : NULL;
        if (e && strncmp(skip_blank(e), "kB", 2) == 0 && kb <= UINT64_MAX / 1024)
            m->memory_bytes = kb * 1024;
    }
    if (read_under(fs, fs->proc_root, "sys/kernel/random/boot_id") > 0) {
        size_t len = strcspn(fs->buf, "\n");
        if (len < sizeof m->boot_id) memcpy(m->boot_id, fs->buf, len);
    }
    if (m->cpu_cores == 0 || m->memory_bytes == 0) return rc ? rc : -ENODATA;
    return 0;
}

int cgroup_block_device_name(cgroup_fs *fs, uint32_t major, uint32_t minor, char *out, size_t n)
{
    char rel[64];
    snprintf(rel, sizeof rel, "dev/block/%u:%u/uevent", major, minor);
    if (read_under(fs, fs->sys_root, rel) < 0) return -ENOENT;
    for (const char *p = fs->buf; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 8 && memcmp(p, "DEVNAME=", 8) == 0) {
            if (len - 8 + 6 > n) return -ENAMETOOLONG;
            memcpy(out, "/dev/", 5);
            memcpy(out + 5, p + 8, len - 8);
            out[len - 8 + 5] = '\0';
            return 0;
        }
        p += len + (nl ? 1 : 0);
    }
    return -ENOENT;
}
