/* cstats: one container's resource statistics, whatever their source (the
 * Docker Engine stats API, parsed here, or the cgroup filesystem, read by
 * cgroup.c), plus the docker CLI's derived numbers.
 *
 * A cstats is a plain value (fixed-size arrays, no pointers): callers keep
 * one per container and overwrite it every cycle; copying it is memcpy.
 * Every field group has a bit in `known`; a field whose bit is clear was
 * absent (missing key, null, cgroup file not present on this kernel) and
 * must not be exported as 0.
 *
 * The parser reads JSON with the json module's reader (nothing here depends
 * on a JSON library). It reads the body of GET
 * /containers/{id}/stats?stream=false (with or without one-shot=true) from
 * API 1.41 and newer, cgroup v1 and v2 shapes, and Podman 4.3's compatible
 * API (name without '/', "Id" instead of "id", no memory_stats.stats,
 * networks keyed "network", an empty body for an exited container). Numbers
 * are uint64: integers beyond int64 (pids_stats.limit = 2^64-1 means "no
 * limit") are accepted. */
#ifndef SIDEWATCH_CSTATS_H
#define SIDEWATCH_CSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Caps. Input beyond them is dropped and reported in cstats.truncated, except
 * the body size, which is an error. */
#define CSTATS_MAX_BODY (1024 * 1024) /* bytes of one stats JSON body */
#define CSTATS_MAX_CPUS 256           /* per-CPU usage entries kept */
#define CSTATS_MAX_IFACES 32          /* network interfaces kept */
#define CSTATS_MAX_BLKDEV 32          /* block devices kept */
#define CSTATS_IFNAME_MAX 32          /* interface name bytes, with the NUL */
#define CSTATS_ID_MAX 129             /* container id bytes, with the NUL */
#define CSTATS_NAME_MAX 256           /* container name bytes, with the NUL */

/* Bits of cstats.known: which field groups hold data. */
enum {
    CSTATS_CPU_USAGE = 1ull << 0,       /* cpu.total_ns */
    CSTATS_CPU_USER_SYSTEM = 1ull << 1, /* cpu.user_ns, cpu.system_ns */
    CSTATS_CPU_PERCPU = 1ull << 2,      /* cpu.percpu_ns[0..n_percpu) */
    CSTATS_CPU_CFS = 1ull << 3,         /* cpu.periods, throttled_periods, throttled_ns */
    CSTATS_CPU_QUOTA = 1ull << 4,       /* cpu.quota_us (0 = none), cpu.period_us */
    CSTATS_CPU_SHARES = 1ull << 5,      /* cpu.shares */
    CSTATS_CPU_HOST = 1ull << 6,        /* cpu.host_ns (system_cpu_usage) */
    CSTATS_CPU_ONLINE = 1ull << 7,      /* cpu.online_cpus */
    CSTATS_PRECPU = 1ull << 8,          /* cpu.pre_total_ns, cpu.pre_host_ns */
    CSTATS_MEM_USAGE = 1ull << 9,       /* mem.usage */
    CSTATS_MEM_LIMIT = 1ull << 10,      /* mem.limit */
    CSTATS_MEM_MAX_USAGE = 1ull << 11,  /* mem.max_usage */
    CSTATS_MEM_FAILCNT = 1ull << 12,    /* mem.failcnt */
    CSTATS_MEM_RSS = 1ull << 13,        /* mem.rss */
    CSTATS_MEM_CACHE = 1ull << 14,      /* mem.cache */
    CSTATS_MEM_SWAP = 1ull << 15,       /* mem.swap */
    CSTATS_MEM_MAPPED_FILE = 1ull << 16,
    CSTATS_MEM_FAULTS = 1ull << 17,   /* mem.pgfault, mem.pgmajfault (container scope) */
    CSTATS_MEM_FAULTS_H = 1ull << 18, /* mem.h_pgfault, mem.h_pgmajfault (hierarchy) */
    /* Raw memory.stat keys, for the working set and the CLI's mem_used. */
    CSTATS_MEM_INACTIVE_FILE = 1ull << 19,       /* "inactive_file" */
    CSTATS_MEM_TOTAL_INACTIVE_FILE = 1ull << 20, /* "total_inactive_file" (v1) */
    CSTATS_MEM_ACTIVE_FILE = 1ull << 21,         /* "active_file" */
    CSTATS_MEM_TOTAL_ACTIVE_FILE = 1ull << 22,   /* "total_active_file" (v1) */
    CSTATS_NET = 1ull << 23,                     /* ifaces[0..n_ifaces) (may be 0 interfaces) */
    CSTATS_BLKIO = 1ull << 24,                   /* blkdev[0..n_blkdev) (may be 0 devices) */
    CSTATS_PIDS_CURRENT = 1ull << 25,            /* pids.current (tasks: threads) */
    CSTATS_PIDS_LIMIT = 1ull << 26,              /* pids.limit (0 = unlimited) */
    CSTATS_PROCESSES = 1ull << 27,               /* processes (entries of cgroup.procs) */
    CSTATS_OOM = 1ull << 28,                     /* oom_events */
    CSTATS_READ_TIME = 1ull << 29,               /* read_ns */
    CSTATS_PREREAD_TIME = 1ull << 30,            /* preread_ns */
};

/* Bits of cstats.truncated: caps that dropped input. */
enum {
    CSTATS_TRUNC_PERCPU = 1u << 0, /* more CPUs than CSTATS_MAX_CPUS: percpu unknown */
    CSTATS_TRUNC_IFACES = 1u << 1, /* first CSTATS_MAX_IFACES interfaces kept */
    CSTATS_TRUNC_BLKDEV = 1u << 2, /* first CSTATS_MAX_BLKDEV devices kept */
};

typedef struct cstats_iface {
    char name[CSTATS_IFNAME_MAX];
    uint64_t rx_bytes, rx_packets, rx_errors, rx_dropped;
    uint64_t tx_bytes, tx_packets, tx_errors, tx_dropped;
} cstats_iface;

/* Bits of cstats_blkdev.known. */
enum {
    CSTATS_BLK_BYTES = 1u << 0, /* read_bytes, write_bytes */
    CSTATS_BLK_OPS = 1u << 1,   /* reads, writes */
};

typedef struct cstats_blkdev {
    uint32_t major, minor;
    uint32_t known; /* CSTATS_BLK_* */
    uint64_t read_bytes, write_bytes;
    uint64_t reads, writes; /* completed operations */
} cstats_blkdev;

typedef struct cstats {
    uint64_t known;             /* CSTATS_* bits */
    uint32_t truncated;         /* CSTATS_TRUNC_* bits */
    int cgroup_version;         /* 1 or 2 when it can be told from the data, else 0 */
    int64_t read_ns;            /* when the sample was taken (unix ns) */
    int64_t preread_ns;         /* when precpu was taken */
    char id[CSTATS_ID_MAX];     /* "" when unknown */
    char name[CSTATS_NAME_MAX]; /* without a leading '/'; "" when unknown */

    struct {
        uint64_t total_ns, user_ns, system_ns;
        uint32_t n_percpu;       /* entries in percpu_ns */
        uint32_t n_percpu_input; /* entries in the input (may exceed the cap) */
        uint64_t percpu_ns[CSTATS_MAX_CPUS];
        uint64_t periods, throttled_periods, throttled_ns;
        uint64_t quota_us; /* 0 = no quota */
        uint64_t period_us;
        uint64_t shares;
        uint64_t host_ns; /* the host's cumulative CPU time (system_cpu_usage) */
        uint32_t online_cpus;
        uint64_t pre_total_ns, pre_host_ns; /* precpu_stats */
    } cpu;

    struct {
        uint64_t usage, limit; /* limit: UINT64_MAX for cgroup v2 "max" */
        uint64_t max_usage, failcnt;
        uint64_t rss, cache, swap, mapped_file;
        uint64_t pgfault, pgmajfault;     /* container scope */
        uint64_t h_pgfault, h_pgmajfault; /* hierarchy scope */
        uint64_t inactive_file, total_inactive_file;
        uint64_t active_file, total_active_file;
    } mem;

    uint32_t n_ifaces;
    cstats_iface ifaces[CSTATS_MAX_IFACES];
    uint32_t n_blkdev;
    cstats_blkdev blkdev[CSTATS_MAX_BLKDEV];

    struct {
        uint64_t current; /* tasks (threads) in the cgroup */
        uint64_t limit;   /* 0 = unlimited */
    } pids;
    uint64_t processes;
    uint64_t oom_events;
} cstats;

/* Host facts for machine_cpu_cores and machine_memory_bytes (filled by
 * cgroup_machine_read). Strings are "" when unknown. */
typedef struct cstats_machine {
    uint32_t cpu_cores;    /* online logical CPUs; 0 = unknown */
    uint64_t memory_bytes; /* MemTotal; 0 = unknown */
    char boot_id[40];
    char machine_id[40];
} cstats_machine;

/* Empties a record: nothing known. */
void cstats_reset(cstats *s);

/* ---- memory.stat keys ----------------------------------------------------- */

/* The memory.stat keys that matter, collected from the stats API's
 * memory_stats.stats map or from the cgroup file, then mapped to cstats.mem
 * in one place so both sources agree. */
#define CSTATS_MEMSTAT_KEYS 19
typedef struct cstats_memstat {
    uint32_t have; /* bit i: key i seen */
    uint64_t v[CSTATS_MEMSTAT_KEYS];
} cstats_memstat;

void cstats_memstat_init(cstats_memstat *m);
/* Records one key (not NUL-terminated) and value; other keys are ignored. */
void cstats_memstat_add(cstats_memstat *m, const char *key, size_t key_len, uint64_t v);
/* Sets s->mem's rss, cache, swap, mapped_file, page faults and the raw
 * (total_)(in)active_file from the recorded keys, with their bits: cgroup v1
 * prefers the hierarchical total_* keys (as cAdvisor with use_hierarchy), v2
 * uses anon, file and file_mapped. Returns the cgroup version the keys show
 * (1, 2, or 0 when none were seen). */
int cstats_memstat_apply(const cstats_memstat *m, cstats *s);

/* Parses a stats body of `len` bytes (need not be NUL-terminated).
 * Returns 0 and fills *out; otherwise *out is reset (but id and name are
 * kept when the body had them) and a message is appended to err (may be
 * NULL):
 *   -ENODATA   the container is not running: an empty body (Podman) or a
 *              zeroed object whose "read" is 0001-01-01T00:00:00Z (Docker);
 *   -ENOENT    an engine error body {"message": "...no such container..."}
 *              (the 404 body of Docker and Podman);
 *   -EREMOTEIO any other engine error body {"message": "..."};
 *   -E2BIG     len > CSTATS_MAX_BODY;
 *   -EBADMSG   not JSON, truncated JSON, not an object, or a field of the
 *              wrong type ("memory_stats.usage: expected a non-negative
 *              integer"); JSON syntax errors carry "line:column".
 * Missing and null fields are not errors: their bits stay clear. */
int cstats_parse(cstats *out, const char *body, size_t len, buf *err);

/* ---- derived numbers --------------------------------------------------- */

/* cAdvisor's container_memory_working_set_bytes: usage minus the
 * hierarchical inactive file pages (v1 total_inactive_file, v2
 * inactive_file), clamped at 0; usage when that key is unknown. */
uint64_t cstats_working_set(const cstats *s);
/* The hierarchical inactive/active file bytes cAdvisor exports as
 * container_memory_total_{inactive,active}_file_bytes; false if unknown. */
bool cstats_total_inactive_file(const cstats *s, uint64_t *v);
bool cstats_total_active_file(const cstats *s, uint64_t *v);

/* The docker CLI's numbers (cli/command/container/stats_helpers.go), in the
 * CLI's float64 arithmetic so results match it to the last bit.
 *
 * CPU%: (cpu_delta / host_delta) * ncpu * 100 when both deltas are > 0,
 * ncpu = online_cpus or the number of per-CPU entries; 0 when precpu has no
 * host time (one-shot samples, the first streamed line): no interval. */
double cstats_cli_cpu_percent(const cstats *s);
/* mem_used: usage - total_inactive_file if that key exists and is smaller
 * (v1), else usage - inactive_file if smaller (v2; a missing key counts as
 * 0), else usage. */
uint64_t cstats_cli_mem_used(const cstats *s);
/* MEM%: mem_used / limit * 100, or 0 when the limit is 0 or unknown. */
double cstats_cli_mem_percent(const cstats *s);
/* NET I/O: rx and tx bytes summed over the interfaces. */
void cstats_cli_net_io(const cstats *s, uint64_t *rx, uint64_t *tx);
/* BLOCK I/O: read and written bytes summed over the devices. */
void cstats_cli_block_io(const cstats *s, uint64_t *read, uint64_t *write);

#endif
