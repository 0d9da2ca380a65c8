/* scrape: scrapes every target of every scrape job concurrently from one
 * thread driving libcurl's multi interface (no thread per target).
 *
 * Each target is scraped on its own interval at a stable offset derived
 * from its identity, so load spreads evenly and restarts keep the phase.
 * A scrape appends, in one store batch: the samples (after honor_labels,
 * honor_timestamps and metric_relabel_configs), the synthetic series up,
 * scrape_duration_seconds, scrape_samples_scraped,
 * scrape_samples_post_metric_relabeling and scrape_series_added, and
 * staleness markers for series that disappeared. A failed scrape (transport
 * error, HTTP status, unsupported Content-Type, parse error, body or sample
 * or label limits) stores up=0, marks every series of the previous scrape
 * stale, logs the reason, and affects nothing else. Targets that go away
 * (reload, file_sd change) get staleness markers for all their series. */
#ifndef SIDEWATCH_SCRAPE_H
#define SIDEWATCH_SCRAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "registry.h"
#include "store.h"

typedef struct scrape_manager scrape_manager;

/* Hard cap on a scrape's body after decompression when body_size_limit is 0
 * or larger (--scrape.max-body-bytes): a target with no configured limit
 * still cannot make sidewatch hold more than this. Over it the scrape fails
 * as over body_size_limit and is counted the same way. */
#define SCRAPE_DEFAULT_MAX_BODY_BYTES ((size_t)256 << 20)

/* Limits and what counts their refusals (all counters in the registry):
 *   body_size_limit, --scrape.max-body-bytes
 *       sidewatch_scrapes_exceeded_body_size_limit_total
 *   sample_limit       sidewatch_scrapes_exceeded_sample_limit_total
 *   label_limit, label_name_length_limit, label_value_length_limit
 *       sidewatch_scrapes_exceeded_label_limits_total
 *   native_histogram_bucket_limit
 *       sidewatch_scrapes_exceeded_bucket_limit_total
 *   target_limit       sidewatch_scrape_pool_exceeded_target_limit_total
 *       (once per target set update over the limit) */

/* Borrows the store and the registry (both must outlive the manager).
 * The counters above are registered here, at 0. */
scrape_manager *scrape_manager_new(store *st, registry *reg);
/* Sets the hard body cap (0: SCRAPE_DEFAULT_MAX_BODY_BYTES). Call before
 * scrape_manager_start. Never fails. */
void scrape_manager_set_max_body_bytes(scrape_manager *m, size_t bytes);
/* The httpc body_limit for a scrape: body_size_limit - 1 (a body of exactly
 * body_size_limit bytes fails, as in Prometheus) when that is set and below
 * max_body_bytes, else max_body_bytes. Never 0 (never unlimited) when
 * max_body_bytes is not. */
size_t scrape_body_limit(int64_t body_size_limit, size_t max_body_bytes);
/* Starts the scrape thread serving cfg (a reference is taken). Returns 0 or
 * -errno. */
int scrape_manager_start(scrape_manager *m, config *cfg);
/* Switches to a new config (a reference is taken); safe from any thread.
 * Targets whose identity is unchanged keep their state and phase. */
void scrape_manager_reload(scrape_manager *m, config *cfg);
/* Stops the thread: in-flight scrapes are cancelled, finished ones are
 * committed. No staleness markers are written (a restart continues the
 * series). */
void scrape_manager_stop(scrape_manager *m);
/* Frees a stopped manager. NULL is a no-op. */
void scrape_manager_free(scrape_manager *m);

/* One target's state, for the API and tests. */
typedef struct scrape_target_status {
    char *job;
    char *url;
    labels *labels;     /* public target labels */
    labels *discovered; /* labels before relabeling */
    int health;         /* 1 up, 0 down, -1 unknown (not scraped yet) */
    char *last_error;   /* "" when none */
    int64_t last_scrape_ms;
    double last_duration_seconds;
    int64_t interval_ms, timeout_ms;
} scrape_target_status;

/* A snapshot of all targets sorted by job, then labels. Returns 0 and a
 * malloc'd array the caller frees with scrape_target_status_free. */
int scrape_manager_targets(scrape_manager *m, scrape_target_status **out, size_t *n);
void scrape_target_status_free(scrape_target_status *s, size_t n);

/* Targets that relabel_configs dropped (Prometheus's droppedTargets): per
 * job the first keep_dropped_targets of them (0: all), in discovery order,
 * and for every configured job how many were dropped in all. */
typedef struct scrape_dropped {
    struct scrape_dropped_target {
        char *job;
        labels *discovered; /* labels before relabeling */
    } * targets;
    size_t n_targets;
    struct scrape_dropped_job {
        char *job;
        uint64_t count;
    } * jobs; /* in config order */
    size_t n_jobs;
} scrape_dropped;

/* A snapshot of the dropped targets; fills *out (free with
 * scrape_dropped_cleanup). Returns 0. */
int scrape_manager_dropped(scrape_manager *m, scrape_dropped *out);
/* Frees and empties; NULL is a no-op. */
void scrape_dropped_cleanup(scrape_dropped *d);

/* Builds the Accept header Prometheus 3.x sends for a list of protocols
 * (protocols sidewatch cannot parse are left out). Appends to out. */
void scrape_accept_header(const enum config_scrape_protocol *p, size_t n, buf *out);

#endif
