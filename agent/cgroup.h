/* cgroup: reads a container's statistics straight from the cgroup
 * filesystem into a cstats, and the host facts cAdvisor exports as
 * machine_*. This is the cheap path that replaces cAdvisor and the Docker
 * stats API: a few small files per controller, each opened (relative to a
 * directory descriptor kept open), read into one buffer and closed; no
 * allocation per file or per container.
 *
 * Layouts:
 *   cgroup v1:     <root>/<controller>/<path>/  for cpu, cpuacct, memory,
 *                  pids, blkio (also "cpu,cpuacct" when that is the mount)
 *   hybrid:        v1 controllers plus <root>/unified (systemd's hybrid
 *                  mode); read as v1
 *   cgroup v2:     <root>/<path>/  (unified: cpu.stat, memory.current, ...)
 * The root is configurable (e.g. /host/sys/fs/cgroup inside a container),
 * as are /proc (network counters of a container's first process, meminfo)
 * and /sys (online CPUs, block device names), so tests can use fixtures.
 *
 * A cgroup_fs is used by one thread at a time (it owns the read buffer). */
#ifndef SIDEWATCH_CGROUP_H
#define SIDEWATCH_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cstats.h"

/* Largest cgroup file read in one piece (memory.stat, cpu.stat, io.stat,
 * cpuacct.usage_percpu); longer files are read up to this size (the lines
 * that fit count). cgroup.procs is read in pieces of this size. */
#define CGROUP_READ_BUF (32 * 1024)
/* Longest path built under a root. */
#define CGROUP_PATH_MAX 4096

typedef struct cgroup_fs cgroup_fs;

enum cgroup_mode {
    CGROUP_MODE_NONE,   /* no cgroup filesystem under the root */
    CGROUP_MODE_V1,     /* legacy: every controller mounted separately */
    CGROUP_MODE_HYBRID, /* v1 controllers, plus a v2 hierarchy at unified/ */
    CGROUP_MODE_V2,     /* unified */
};

/* How the engine names its cgroups (docker info's CgroupDriver). */
enum cgroup_driver {
    CGROUP_DRIVER_ANY,      /* try every known layout */
    CGROUP_DRIVER_CGROUPFS, /* docker/<id>, libpod_parent/libpod-<id> */
    CGROUP_DRIVER_SYSTEMD,  /* system.slice/docker-<id>.scope, machine.slice/libpod-<id>.scope */
};

typedef struct cgroup_options {
    const char *root;      /* cgroup mount root; NULL: "/sys/fs/cgroup" */
    const char *proc_root; /* procfs; NULL: "/proc" */
    const char *sys_root;  /* sysfs; NULL: "/sys" */
} cgroup_options;

/* Flags of cgroup_read(): optional, costlier reads. */
enum {
    CGROUP_READ_PERCPU = 1u << 0,  /* cpuacct.usage_percpu (v1 only) */
    CGROUP_READ_PROCS = 1u << 1,   /* count cgroup.procs (container_processes) */
    CGROUP_READ_NETWORK = 1u << 2, /* <proc>/<first pid>/net/dev (implies PROCS) */
};

/* Opens the hierarchy under o->root (o may be NULL for the defaults) and
 * detects its mode. Returns 0 and *out (free with cgroup_free), or -ENOENT
 * when the root holds no cgroup filesystem, or another -errno; a message is
 * appended to err (may be NULL). */
int cgroup_open(cgroup_fs **out, const cgroup_options *o, buf *err);
/* Closes the descriptors and frees. NULL is a no-op. */
void cgroup_free(cgroup_fs *fs);

enum cgroup_mode cgroup_get_mode(const cgroup_fs *fs);
/* "none", "v1", "hybrid" or "v2". */
const char *cgroup_mode_name(enum cgroup_mode m);

/* Finds the cgroup of container `id` (a Docker or Podman id: letters,
 * digits, '_', '.', '-'). `parent` is the engine's or container's cgroup
 * parent if known (HostConfig.CgroupParent, dockerd --cgroup-parent), else
 * NULL or "": "/" is the root, a name ending in ".slice" a systemd slice (expanded as systemd
 * does: "a-b.slice" is a.slice/a-b.slice), anything else a cgroupfs
 * directory. Tried in order: the parent's layouts, then the defaults of
 * `driver`: docker/<id>, libpod_parent/libpod-<id> (cgroupfs),
 * system.slice/docker-<id>.scope, machine.slice/libpod-<id>.scope (systemd).
 * Writes the path relative to the root, with a leading '/', into out (the
 * cAdvisor `id` label, e.g. "/docker/<id>"). Returns 0, -ENOENT when no
 * candidate exists, -EINVAL for an invalid id or parent, -ENAMETOOLONG when
 * out (n bytes) is too small. */
int cgroup_find_container(cgroup_fs *fs, const char *id, const char *parent,
                          enum cgroup_driver driver, char *out, size_t n);

/* Reads the cgroup at `path` (relative to the root; "/" or "" is the root
 * cgroup itself) into *out, which is reset first. Fills CPU (usage, user and
 * system, CFS periods and throttling, quota, period, shares), memory (usage,
 * limit, max usage, failcnt, memory.stat fields, swap), block I/O per
 * device, pids current and limit, OOM kills, and with `flags` per-CPU usage,
 * the process count and the network counters of the first process. A file
 * this kernel does not have leaves its field's bit clear.
 * Returns 0, -ENOENT when the cgroup does not exist or vanished while being
 * read (container removed; *out is then reset), -EINVAL for a path with
 * "..", or another -errno. Working set: cstats_working_set(). */
int cgroup_read(cgroup_fs *fs, const char *path, unsigned flags, cstats *out);

/* Host facts: online CPUs (<sys>/devices/system/cpu/online, else the
 * processors of <proc>/cpuinfo), MemTotal (<proc>/meminfo) and the boot id
 * (<proc>/sys/kernel/random/boot_id). Returns 0 when CPUs and memory were
 * read, else -errno with the rest filled as far as possible. */
int cgroup_machine_read(cgroup_fs *fs, cstats_machine *m);

/* The device name of a block device ("/dev/vda") from
 * <sys>/dev/block/<major>:<minor>/uevent. Returns 0, -ENOENT if unknown,
 * -ENAMETOOLONG if out (n bytes) is too small. */
int cgroup_block_device_name(cgroup_fs *fs, uint32_t major, uint32_t minor, char *out, size_t n);

#endif
