/* discovery_docker: docker_sd_configs, Prometheus's Docker service
 * discovery (discovery/moby/docker.go).
 *
 * Two parts:
 * - discovery_docker_build() turns the bodies of the Engine API's
 *   GET /containers/json and GET /networks into targets exactly as
 *   Prometheus does: one per container, network and TCP port (or one per
 *   network with the configured port, or host_networking_host for host
 *   networking), with every __meta_docker_* label. Pure; used by tests.
 * - a discoverer (discovery_docker_new) that runs its own thread: it asks
 *   the engine for its API version once (GET /version), then every
 *   refresh_interval lists containers (with the configured filters,
 *   JSON-encoded as Prometheus's Docker client does) and networks through
 *   httpc, and publishes the target groups when they changed. A failed
 *   refresh (engine down, HTTP error, bad JSON) is logged and counted, and
 *   the previous groups stay, as in Prometheus.
 *
 * Where sidewatch differs: the API version comes from /version's ApiVersion
 * (Prometheus's client reads /_ping's Api-Version header, which httpc does
 * not expose); both negotiate min(engine, 1.55) the same way. */
#ifndef SIDEWATCH_DISCOVERY_DOCKER_H
#define SIDEWATCH_DISCOVERY_DOCKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "registry.h"

/* Largest Engine API response read (containers or networks list). */
#define DISCOVERY_DOCKER_MAX_BODY (64 * 1024 * 1024)
/* The newest API version asked for, and the oldest negotiated down to (as
 * Prometheus's moby client v0.5: MaxAPIVersion and MinAPIVersion). */
#define DISCOVERY_DOCKER_MAX_API "1.55"
#define DISCOVERY_DOCKER_MIN_API "1.40"

/* One label of a discovered target. */
typedef struct discovery_docker_label {
    char *name, *value;
} discovery_docker_label;

/* One discovered target: its labels sorted by name, empty values kept (as
 * Prometheus's label sets do; sidewatch's label sets drop them later, which
 * relabeling cannot tell apart). `__address__` is among them. */
typedef struct discovery_docker_target {
    discovery_docker_label *labels;
    size_t n;
} discovery_docker_target;

/* Builds the targets of one refresh from the two response bodies. Returns
 * 0 with *out (caller frees with discovery_docker_targets_free) and *n, or
 * -EINVAL with the reason in err, worded as Prometheus's ("error while
 * listing containers: ...", "error while computing network labels: ...");
 * nothing is returned then. */
int discovery_docker_build(const config_docker_sd *sd, const char *containers,
                           size_t containers_len, const char *networks, size_t networks_len,
                           discovery_docker_target **out, size_t *n, buf *err);
void discovery_docker_targets_free(discovery_docker_target *t, size_t n);

/* The target groups scrape uses: one group per target, its address the
 * group's only target and every other non-empty label a group label,
 * source "Docker". Returns a new array (caller frees with
 * discovery_docker_groups_free). */
config_target_group *discovery_docker_groups(const discovery_docker_target *t, size_t n);
void discovery_docker_groups_free(config_target_group *g, size_t n);

/* Appends the query string of GET /containers/json for sd's filters, as
 * Prometheus's client encodes it ("filters=" and the URL-escaped JSON
 * object of name -> {value: true}, keys sorted), or nothing when no filter
 * has a value. */
void discovery_docker_filters_query(const config_docker_sd *sd, buf *out);

/* Where requests go for a docker_sd host: fills `base` with the URL prefix
 * ("http://api.moby.localhost" for unix sockets) and `socket` with the
 * socket path (or nothing), and tells whether the HTTP client settings
 * apply (http:// and https:// hosts, as in Prometheus). Returns 0, or
 * -EINVAL with Prometheus's or sidewatch's reason in err (no "://",
 * unsupported protocol). */
int discovery_docker_endpoint(const char *host, buf *base, buf *socket, bool *use_http_config,
                              buf *err);

typedef struct discovery_docker discovery_docker;

/* Starts discovering for `sd`, which belongs to `cfg` (a reference is
 * taken, so sd stays valid). `job` names the job in logs (copied). `reg`
 * (may be NULL) receives sidewatch_sd_* metrics. `notify_fd` (an eventfd,
 * or -1) is written to whenever new groups can be taken; it must stay open
 * until discovery_docker_free. The first refresh starts at once. Returns
 * NULL when the host cannot be used (logged, as Prometheus logs a
 * discoverer it cannot create) or the thread cannot start. */
discovery_docker *discovery_docker_new(config *cfg, const config_docker_sd *sd, const char *job,
                                       registry *reg, int notify_fd);
/* Stops the thread (an in-flight request is cancelled) and frees
 * everything, untaken groups included. NULL is a no-op. */
void discovery_docker_free(discovery_docker *d);

/* If a refresh produced groups that were not taken yet, moves them to the
 * caller (who frees them with discovery_docker_groups_free) and returns
 * true; else returns false and leaves *out untouched. Thread-safe. */
bool discovery_docker_take(discovery_docker *d, config_target_group **out, size_t *n);

/* Whether d runs for job `job` with a config equal to sd (so a reload can
 * keep it and its targets). */
bool discovery_docker_same(const discovery_docker *d, const config_docker_sd *sd, const char *job);

/* Refreshes done and failed so far (for tests). */
uint64_t discovery_docker_refreshes(const discovery_docker *d);
uint64_t discovery_docker_failures(const discovery_docker *d);

#endif
