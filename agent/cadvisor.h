/* cadvisor: container statistics as cAdvisor's metric families, with
 * cAdvisor's names, types, HELP texts and labels (google/cadvisor
 * lib/metrics/prometheus.go and prometheus_machine.go), so dashboards built
 * on cAdvisor work unchanged.
 *
 * Every container series carries `id` (the cgroup path, "/docker/<id>"),
 * `name` (no leading '/'), `image`, and container_label_<key> for the engine
 * labels selected by the options, the key sanitized as cAdvisor does
 * ([^a-zA-Z0-9_] -> '_'; when two keys sanitize to the same name, the
 * bytewise smaller key wins; labels with empty values are absent, as in
 * Prometheus). Families and their extra labels:
 *
 *   container_blkio_device_usage_total          device, major, minor, operation
 *   container_cpu_cfs_{periods,throttled_periods}_total, _cfs_throttled_seconds_total
 *   container_cpu_{system,user}_seconds_total
 *   container_cpu_usage_seconds_total           cpu ("total", or "cpu00".. per CPU)
 *   container_fs_{reads,writes}{_bytes,}_total  device
 *   container_health_state
 *   container_last_seen
 *   container_memory_{cache,mapped_file,max_usage_bytes,rss,swap,usage_bytes,
 *                     working_set_bytes,total_active_file_bytes,
 *                     total_inactive_file_bytes}, container_memory_failcnt
 *   container_memory_failures_total             failure_type, scope
 *   container_network_{receive,transmit}_{bytes,packets,packets_dropped,errors}_total
 *                                               interface
 *   container_oom_events_total
 *   container_processes, container_threads, container_threads_max
 *   container_spec_cpu_{period,quota,shares}, container_spec_memory_limit_bytes
 *   container_start_time_seconds
 *   machine_cpu_cores, machine_memory_bytes     boot_id, machine_id (when known)
 *
 * A series is produced only when its cstats bit is known: absent data is
 * absent, not 0. As in cAdvisor, CFS series need a CPU quota (or, when the
 * quota is unknown, a non-zero period count), container_spec_cpu_quota a
 * non-zero quota, and memory limits above 2^62 are exported as 0.
 *
 * Output goes through a sink called once per sample with the complete label
 * set (a `labels` with __name__, in canonical order): the same call serves
 * appending to the store (store_series_ref + store_batch_add) and writing
 * the exposition (cadvisor_text_* below) without building label sets twice.
 * Samples come family by family (families sorted by name), each family's
 * samples container by container in the caller's order. */
#ifndef SIDEWATCH_CADVISOR_H
#define SIDEWATCH_CADVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cstats.h"
#include "expfmt.h"
#include "labels.h"
#include "textwrite.h"

typedef struct cadvisor_family {
    const char *name;
    const char *help;
    enum expfmt_type type; /* EXPFMT_COUNTER or EXPFMT_GAUGE */
} cadvisor_family;

/* One container: metadata from the engine (all borrowed) and its stats. */
typedef struct cadvisor_container {
    const char *id;    /* the cgroup path, the `id` label ("/docker/<id>"); may be NULL */
    const char *name;  /* container name; a leading '/' is dropped; may be NULL */
    const char *image; /* image as the container was created with it; may be NULL */
    size_t n_labels;   /* engine labels (Config.Labels) */
    const char *const *label_keys;
    const char *const *label_values;
    const char *health;  /* State.Health.Status ("healthy", ...); NULL without a health check */
    double start_time;   /* unix seconds (State.StartedAt); <= 0: unknown */
    double last_seen;    /* unix seconds of this collection; <= 0: unknown */
    const cstats *stats; /* NULL: only start time and last seen */
    int64_t t_ms;        /* passed to the sink with each sample (0: none) */
} cadvisor_container;

typedef struct cadvisor_options {
    /* Engine labels exported as container_label_*: every label when
     * all_labels, else the n_label_keys keys listed (exact keys). */
    bool all_labels;
    const char *const *label_keys;
    size_t n_label_keys;
    /* Per-CPU container_cpu_usage_seconds_total (cpu="cpu00", ...; cAdvisor's
     * optional "percpu" metrics) instead of one cpu="total" series. */
    bool percpu;
    /* Names block devices for the `device` label ("/dev/vda"): writes a
     * NUL-terminated name into out and returns 0, or returns < 0 when
     * unknown; then "<major>:<minor>" is used. May be NULL. */
    int (*device_name)(void *ctx, uint32_t major, uint32_t minor, char *out, size_t n);
    void *device_ctx;
} cadvisor_options;

typedef struct cadvisor_sink {
    /* Called before the first sample of each family that has samples; may
     * be NULL. A negative return stops the collection. */
    int (*family)(void *ctx, const cadvisor_family *f);
    /* One sample. `ls` (with __name__) is borrowed for the call: copy it
     * (labels_dup, store_series_ref) to keep it. A negative return stops
     * the collection. */
    int (*sample)(void *ctx, const cadvisor_family *f, const labels *ls, double v, int64_t t_ms);
    void *ctx;
} cadvisor_sink;

/* Emits the families for n containers and, when m is non-NULL, the machine
 * families. o may be NULL (no container labels, cpu="total"). Returns 0 or
 * the sink's first negative return. */
int cadvisor_collect(const cadvisor_container *cs, size_t n, const cstats_machine *m,
                     const cadvisor_options *o, const cadvisor_sink *sink);

/* cAdvisor's label name sanitizing (Go regexp [^a-zA-Z0-9_] -> "_"): every
 * character outside [a-zA-Z0-9_] becomes one '_' (a UTF-8 sequence is one
 * character, an invalid byte is one). Appends to out; returns 0 or buf's
 * -E2BIG. */
int cadvisor_sanitize_label(const char *key, size_t len, buf *out);

/* ---- a sink that writes the exposition ------------------------------------------ */

typedef struct cadvisor_text {
    textwrite *w;    /* borrowed; its format decides text 0.0.4 or OpenMetrics */
    bool timestamps; /* write t_ms when non-zero (cAdvisor does) */
} cadvisor_text;

/* The sink functions; ctx is a cadvisor_text. They return the writer's
 * error (textwrite_error) so a failing sink stops the collection. */
int cadvisor_text_family(void *ctx, const cadvisor_family *f);
int cadvisor_text_sample(void *ctx, const cadvisor_family *f, const labels *ls, double v,
                         int64_t t_ms);

#endif
