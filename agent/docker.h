/* docker: Docker Engine API client and container cache.
 *
 * Talks to a Docker engine (dockerd 20.10+ / API 1.41+, or Podman 4's
 * Docker-compatible API) over a unix socket or tcp:// (optionally TLS),
 * negotiates the API version from GET /version, and keeps a cache of every
 * container (GET /containers/json?all=true, then GET /containers/{id}/json
 * for each) current from the GET /events stream. It also fetches raw stats
 * bodies (GET /containers/{id}/stats?stream=false&one-shot=true) for many
 * containers concurrently; parsing them is agent/cstats's job.
 *
 * Connection life cycle, all non-blocking on httpc's multi interface:
 *   /version (negotiate) -> /info (cgroup driver/version) -> /events
 *   (subscribe, then) -> /containers/json (list) -> inspect each container.
 * When the events stream ends (engine restart, socket removed), any
 * session request fails, or the engine is unreachable, the session is torn
 * down and retried after an exponential backoff (opts.backoff_initial_ms,
 * doubling up to opts.backoff_max_ms; reset once a session stayed synced
 * for DOCKER_STABLE_MS). Every (re)connect re-lists, so events missed while
 * away are made up for; the cache keeps its last contents while the engine
 * is away (the snapshot says so: engine.connected is false). Events are
 * applied at once from their attributes (state, health, name, OOM count)
 * and the container is then re-inspected for the rest.
 *
 * Errors (unreachable engine, timeouts, HTTP statuses, bad JSON, garbage
 * event lines, a container gone between list and inspect, ...) are logged
 * as logfmt with component=docker and counted per reason (docker_errors(),
 * for sidewatch_docker_errors_total{reason}); one container's failure never
 * touches the others, and no engine input can crash the cache.
 *
 * Threading and ownership:
 * - A docker object belongs to one "loop thread": the thread that calls
 *   httpc_poll() on its httpc. docker_new, docker_free, docker_step,
 *   docker_poll, docker_stats_fetch and the docker_feed_* functions are
 *   called only there; the httpc callbacks that update the cache run inside
 *   that thread's httpc_poll().
 * - Readers on any thread (the stats collector, /metrics) call
 *   docker_snapshot_get(): an immutable, reference-counted copy of the
 *   cache published by docker_step() after each change. Taking one is O(1)
 *   (a mutex-guarded pointer and an atomic reference); the reader drops it
 *   with docker_snapshot_unref() and may keep it as long as it likes.
 * - docker_errors(), docker_counters() and docker_wakeup() are safe from
 *   any thread.
 *
 * Driving it:
 * - In its own thread (docker_new with http == NULL, so it owns an httpc):
 *       while (!stop) docker_poll(d, 1000);
 *   and docker_wakeup(d) from another thread to interrupt a poll (stop).
 * - From an existing httpc loop (docker_new with that loop's httpc):
 *       int64_t wait = docker_step(d);       // starts due work
 *       httpc_poll(http, min(wait, mine), fd);
 *       docker_step(d);                      // reacts to what completed
 *   docker_step must run after every httpc_poll of that client (callbacks
 *   only record what happened; docker_step starts the follow-up requests
 *   and publishes the snapshot). */
#ifndef SIDEWATCH_DOCKER_H
#define SIDEWATCH_DOCKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "httpc.h"

#define DOCKER_DEFAULT_HOST "unix:///var/run/docker.sock"
/* The API versions this client speaks: it uses min(engine's ApiVersion,
 * DOCKER_API_NEWEST) and refuses engines below DOCKER_API_OLDEST. */
#define DOCKER_API_OLDEST "1.41"
#define DOCKER_API_NEWEST "1.45"
/* Caps on what the engine can make us hold. */
#define DOCKER_BODY_LIMIT (64u << 20)        /* one list/inspect/stats body */
#define DOCKER_EVENT_LINE_LIMIT (1u << 20)   /* one events line */
#define DOCKER_ID_MAX 128                    /* container ids we accept */
#define DOCKER_STABLE_MS 10000               /* a session this long resets the backoff */
#define DOCKER_EVENTS_SUBSCRIBE_WAIT_MS 1000 /* see docker_step */

typedef struct docker docker;

typedef struct docker_opts {
    /* "unix:///path", "tcp://host[:port]", "http://..." or "https://...".
     * NULL: the environment as the docker CLI reads it: DOCKER_HOST (else
     * DOCKER_DEFAULT_HOST), and for tcp:// DOCKER_CERT_PATH (ca.pem,
     * cert.pem, key.pem) and DOCKER_TLS_VERIFY. With an explicit host the
     * tls fields below apply and the environment is not read. */
    const char *host;
    bool tls; /* TLS on tcp:// (https:// implies it) */
    bool tls_insecure_skip_verify;
    const char *tls_ca_file, *tls_cert_file, *tls_key_file; /* NULL: none */
    int64_t request_timeout_ms;    /* each list/inspect/version/info request; 0: 10 s */
    int64_t backoff_initial_ms;    /* 0: 500 ms */
    int64_t backoff_max_ms;        /* 0: 30 s */
    size_t body_limit;             /* 0: DOCKER_BODY_LIMIT */
    size_t event_line_limit;       /* 0: DOCKER_EVENT_LINE_LIMIT */
    unsigned max_concurrent;       /* inspects in flight; 0: 16 */
    unsigned max_concurrent_stats; /* stats requests in flight (one connection each); 0: 128 */
} docker_opts;

/* Error reasons, the label values of sidewatch_docker_errors_total. */
enum docker_error {
    DOCKER_ERR_CONNECT = 0,     /* socket missing, connection refused, TLS */
    DOCKER_ERR_TIMEOUT,         /* a request took longer than its timeout */
    DOCKER_ERR_HTTP_STATUS,     /* an unexpected HTTP status (not 404 of a container) */
    DOCKER_ERR_NOT_FOUND,       /* 404: the container vanished */
    DOCKER_ERR_BAD_JSON,        /* a list/inspect/version/info body we cannot use */
    DOCKER_ERR_BAD_EVENT,       /* an events line that is not a usable JSON event */
    DOCKER_ERR_TOO_LARGE,       /* a body or events line beyond its cap */
    DOCKER_ERR_TRANSFER,        /* connection broken mid-response, other transport errors */
    DOCKER_ERR_STREAM_CLOSED,   /* the events stream ended (engine restart or shutdown) */
    DOCKER_ERR_UNSUPPORTED_API, /* engine API older than DOCKER_API_OLDEST, or too new */
    DOCKER_ERR_COUNT
};

/* "connect", "timeout", "http_status", "not_found", "bad_json", "bad_event",
 * "too_large", "transfer", "stream_closed", "unsupported_api". */
const char *docker_error_name(enum docker_error e);

typedef struct docker_label {
    const char *key, *value;
} docker_label;

/* One container as the snapshot holds it. Strings are never NULL ("" when
 * unknown). */
typedef struct docker_container {
    const char *id;             /* full id as the engine gives it */
    const char *name;           /* without the leading '/' */
    const char *image;          /* Config.Image: the name the user gave ("nginx:alpine") */
    const char *image_id;       /* "sha256:..." */
    const docker_label *labels; /* sorted by key */
    size_t n_labels;
    const char *state;         /* created running paused restarting removing exited dead */
    const char *health;        /* "" (no healthcheck), starting, healthy, unhealthy */
    const char *network_mode;  /* HostConfig.NetworkMode: host, none, bridge, <network> */
    const char *cgroup_parent; /* HostConfig.CgroupParent; "" = the engine's default */
    int64_t pid;               /* 0 when not running */
    int64_t exit_code;
    int64_t restart_count;
    bool oom_killed;     /* State.OOMKilled */
    uint64_t oom_events; /* "oom" events seen by this process (container_oom_events_total) */
    double created, started_at, finished_at; /* unix seconds; 0 = never / unknown */
    /* HostConfig limits; 0 = none */
    int64_t memory_limit, nano_cpus, cpu_quota, cpu_period, cpu_shares, pids_limit;
    bool inspected; /* false: only list/event data so far (inspect pending or failed) */
} docker_container;

typedef struct docker_engine {
    const char *host;        /* as configured, e.g. "unix:///var/run/docker.sock" */
    bool connected;          /* version and info answered and the events stream is up */
    bool synced;             /* ... and the container list of this session is merged */
    const char *api_version; /* negotiated, e.g. "1.41"; "" before the first connect */
    const char *version;     /* engine version, "20.10.24+dfsg1" or "4.3.1" */
    bool podman;             /* Podman's compatible API */
    const char *os, *arch, *kernel_version;
    const char *cgroup_driver; /* "cgroupfs", "systemd", "" unknown */
    int cgroup_version;        /* 1, 2, 0 unknown */
    int64_t ncpu, mem_total;   /* /info NCPU and MemTotal (bytes); 0 unknown */
    const char *last_error;    /* "" when the last session step succeeded */
} docker_engine;

typedef struct docker_snapshot {
    uint64_t seq; /* grows with every published change */
    docker_engine engine;
    const docker_container *containers; /* sorted by id */
    size_t n_containers;
    /* private */
    int refs;
    void *mem;
} docker_snapshot;

/* Counters of activity, for the agent's own metrics and tests. */
typedef struct docker_counters {
    uint64_t sessions;       /* connection attempts started */
    uint64_t syncs;          /* container lists merged */
    uint64_t inspects;       /* inspect responses applied */
    uint64_t events;         /* container events applied */
    uint64_t events_ignored; /* other types/actions (exec_*, network, init, ...) */
    uint64_t stats_requests; /* stats transfers started */
} docker_counters;

/* Creates a client; it does not connect until docker_step/docker_poll.
 * `http` is borrowed (the caller's loop polls it), or NULL for a private
 * one. Returns 0 and *out, or -EINVAL with a message in err (an unusable
 * host such as "ssh://", "npipe://" or a malformed URL). */
int docker_new(const docker_opts *opts, httpc *http, docker **out, buf *err);
/* Cancels every request of d (a pending stats callback runs with
 * ok=false, "cancelled"), frees the cache and, if owned, the httpc.
 * Snapshots already handed out stay valid. NULL is a no-op. Loop thread. */
void docker_free(docker *d);

/* Does what is due: (re)connects after the backoff, starts follow-up
 * requests (info, events, list, inspects, queued stats), publishes a new
 * snapshot when the cache changed. Returns the milliseconds until it next
 * has something to do (at most 1000), for the caller's poll timeout. Loop
 * thread; never blocks. */
int64_t docker_step(docker *d);
/* For a dedicated thread: docker_step, then httpc_poll on d's httpc for up
 * to max_wait_ms (less when work is due or docker_wakeup is called), then
 * docker_step again. Returns 0 or -errno from httpc_poll. */
int docker_poll(docker *d, int max_wait_ms);
/* Interrupts docker_poll; any thread. */
void docker_wakeup(docker *d);

/* The current snapshot with a reference the caller drops with
 * docker_snapshot_unref. Never NULL (before the first sync it is empty).
 * Any thread. */
docker_snapshot *docker_snapshot_get(docker *d);
void docker_snapshot_unref(docker_snapshot *s);
/* The container with exactly this id, or NULL; borrowed from s. */
const docker_container *docker_snapshot_find(const docker_snapshot *s, const char *id);

/* Errors counted so far for one reason; any thread. */
uint64_t docker_errors(const docker *d, enum docker_error reason);
void docker_counters_get(const docker *d, docker_counters *out);

/* ---- stats API fallback ------------------------------------------------------------- */

typedef struct docker_stats_result {
    const char *id;
    bool ok;                 /* a 2xx response arrived (body may be empty: Podman, exited) */
    enum docker_error error; /* why not, when !ok */
    const char *message;     /* human-readable reason when !ok */
    long status;             /* HTTP status, 0 without a response */
    const char *body;        /* the raw body (the engine's error JSON when !ok) */
    size_t body_len;
    double seconds; /* time the request took */
} docker_stats_result;

/* Called once per requested id, in completion order, from inside the loop
 * thread's httpc_poll (or docker_free, cancelled). Everything in r is valid
 * only during the call. */
typedef void (*docker_stats_fn)(void *ctx, const docker_stats_result *r);

/* Requests GET /containers/{id}/stats?stream=false&one-shot=true for every
 * id (copied), at most opts.max_concurrent_stats at a time (dockerd answers
 * them together on its next 1 s collection tick), each with timeout_ms
 * (0: opts.request_timeout_ms). Failures are counted and logged like any
 * other, and each id's result goes to fn. Returns 0, -EINVAL if an id is
 * not a plausible container id (nothing is started then), or -ENOTCONN if
 * no API version has been negotiated yet (nothing is started). Loop
 * thread. */
int docker_stats_fetch(docker *d, const char *const *ids, size_t n, int64_t timeout_ms,
                       docker_stats_fn fn, void *ctx);

/* ---- the parsers and cache updates the transfers use; exposed for tests and fuzzing ---- */

/* Negotiates from a /version body: min(ApiVersion, DOCKER_API_NEWEST) into
 * out ("1.41"). Returns 0, -EINVAL for a body without a usable ApiVersion,
 * or -ENOTSUP for an engine we refuse; err gets the reason. */
int docker_negotiate_version(const char *body, size_t len, char out[16], buf *err);
/* Feeds bytes of the /events NDJSON stream: lines may be split anywhere;
 * garbage lines are skipped and counted. Loop thread. */
void docker_feed_events(docker *d, const char *p, size_t n);
/* Merges a /containers/json body as a fresh list: adds and updates listed
 * containers, marks them for inspection, removes the unlisted ones. Returns
 * 0 or -EINVAL (not a JSON array; the cache is unchanged). Loop thread. */
int docker_feed_list(docker *d, const char *body, size_t len);
/* Applies a /containers/{id}/json body to the cached container `id` (if it
 * is still cached). Returns 0 or -EINVAL (unusable body; the entry keeps
 * what it had). Loop thread. */
int docker_feed_inspect(docker *d, const char *id, const char *body, size_t len);
/* Applies an /info body (cgroup driver and version, NCPU, MemTotal).
 * Returns 0 or -EINVAL. Loop thread. */
int docker_feed_info(docker *d, const char *body, size_t len);

#endif
