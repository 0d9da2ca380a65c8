/* containers: the container stats collector (sidewatch's cAdvisor).
 *
 * One thread per collector drives a docker client (docker_poll) and, every
 * interval, takes a container snapshot and collects each running container
 * that the config's include/exclude rules select:
 *   - from its cgroup (cgroup_find_container + cgroup_read) when the cgroup
 *     filesystem under cgroup_root is reachable and holds the container;
 *   - else from the engine's stats API, requested for all those containers
 *     at once (docker_stats_fetch + cstats_parse).
 * OOM counts come from the engine's "oom" events (the snapshot) or the
 * cgroup's own count, whichever is larger. The samples (cAdvisor's families,
 * cadvisor_collect, plus machine_*) go to the store in one batch per cycle,
 * as a scrape does: series references are cached per label set, and a
 * series that was in the previous cycle but not in this one (its container
 * stopped or vanished) gets a staleness marker. The cycle's exposition
 * (text 0.0.4 and OpenMetrics) is kept for sidewatch's /metrics, followed
 * by the collector's own metrics (sidewatch_containers_*,
 * sidewatch_docker_errors_total{reason}).
 *
 * Errors of one container (its cgroup vanished, a stats request failed, a
 * body that does not parse) are logged, counted under
 * sidewatch_docker_errors_total{reason="stats_read"} (besides the docker
 * client's own reasons) and skip only that container. An engine that goes
 * away is reconnected by the docker client; the collector keeps cycling.
 *
 * Threading: containers_new starts the thread, containers_free stops it;
 * containers_metrics and containers_status are safe from any thread. */
#ifndef SIDEWATCH_CONTAINERS_H
#define SIDEWATCH_CONTAINERS_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "docker.h"
#include "store.h"
#include "textparse.h"

/* Series a collector keeps references for; beyond it new series are not
 * stored (counted as errors, reason "series_limit"). */
#define CONTAINERS_MAX_SERIES 1000000
/* Cycles a series that is gone stays in the reference cache. */
#define CONTAINERS_CACHE_EVICT_CYCLES 10
/* Cap of one cycle's exposition (each format). */
#define CONTAINERS_MAX_EXPOSITION (64u << 20)

typedef struct containers containers;

typedef struct containers_options {
    config *cfg; /* borrowed; the collector keeps its own reference; uses cfg->containers */
    store *st;   /* borrowed; must outlive the collector */
    /* For tests: procfs and sysfs roots (NULL: /proc, /sys), docker client
     * timeouts and backoff (0: the client's defaults). */
    const char *proc_root, *sys_root;
    int64_t request_timeout_ms, backoff_initial_ms, backoff_max_ms;
} containers_options;

/* What the collector did so far (for tests and the self metrics). */
typedef struct containers_status {
    uint64_t cycles;            /* completed collection cycles */
    double last_cycle_seconds;  /* duration of the last cycle */
    uint64_t containers_seen;   /* selected running containers in the last cycle */
    uint64_t containers_cgroup; /* ... of them read from cgroups */
    uint64_t containers_api;    /* ... of them read from the stats API */
    uint64_t samples_appended;  /* in the last cycle (staleness markers included) */
    uint64_t stats_read_errors; /* per-container read failures so far */
    uint64_t store_errors;      /* failed batch commits so far */
    bool engine_connected;      /* in the last cycle's snapshot */
    const char *cgroup_mode;    /* "none", "v1", "hybrid", "v2" (static string) */
} containers_status;

/* Creates a collector for o->cfg->containers (which must be enabled) and
 * starts its thread; the first cycle runs at once. Returns 0 and *out, or
 * -EINVAL with a message in err (an unusable docker_host), or -errno. */
int containers_new(const containers_options *o, containers **out, buf *err);
/* Stops the thread, writes staleness markers for every series the last
 * cycle had (the collector's series end here, as a removed target's do),
 * and frees. NULL is a no-op. */
void containers_free(containers *c);

/* Appends the last cycle's exposition in `format` (text 0.0.4 or
 * OpenMetrics, without "# EOF") and the collector's own metrics to out.
 * Returns 0 or buf's -E2BIG. Any thread. */
int containers_metrics(containers *c, enum textparse_format format, buf *out);

/* Copies the status; any thread. */
void containers_status_get(containers *c, containers_status *out);

#endif
