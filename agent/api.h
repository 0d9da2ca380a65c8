/* api: every HTTP endpoint, the only user of <microhttpd.h>.
 *
 *   GET  /metrics        the agent's own metrics (text 0.0.4 or OpenMetrics by
 *                        Accept; gzip when accepted)
 *   GET  /federate       latest sample of each series matching match[] (text
 *                        0.0.4, external labels attached), like Prometheus
 *   GET  /-/healthy      200 while the process runs
 *   GET  /-/ready        200 once serving, 503 while starting or stopping
 *   POST /-/reload       reload the configuration (needs --web.enable-lifecycle)
 *   POST /-/quit         shut down cleanly (needs --web.enable-lifecycle)
 *   POST /api/v1/write   remote write 1.0 receiver (needs
 *                        --web.enable-remote-write-receiver; 404 otherwise)
 *   /api/v1/...          the Prometheus HTTP API (apiv1.h); large matrices are
 *                        streamed (chunked, gzip-compressed on the fly when
 *                        accepted)
 *
 * The api only reads state; changes (reload, quit) go through callbacks
 * that main.c provides.
 *
 * Threads: one libmicrohttpd event loop (epoll) holds every connection, so
 * an idle one costs a socket and a few KB, not a thread. The loop reads
 * requests and answers the cheap ones itself (/-/healthy, /-/ready,
 * /-/quit, 404, 405, 413, a 401 whose password is in the cache). Everything
 * else (/api/v1, /metrics, /federate, /-/reload, remote write, a bcrypt
 * check) runs on a pool of at most API_EXTRA_WORKERS more threads than
 * --query.max-concurrency (workq.h) while its connection is suspended
 * (MHD_suspend_connection); the worker's answer is queued by the loop once
 * it resumes the connection. The callbacks in api_options are therefore
 * called from worker threads, several at once (quit from the loop).
 * Streamed /api/v1 bodies are produced part by part on the loop. */
#ifndef SIDEWATCH_API_H
#define SIDEWATCH_API_H

#include <stdbool.h>
#include <stdint.h>

#include "apiv1.h"
#include "buf.h"
#include "config.h"
#include "registry.h"
#include "store.h"
#include "webconfig.h"

/* Cap on a request body; larger bodies get 413. */
#define API_MAX_REQUEST_BODY (1024 * 1024)
/* Cap on a remote write body (compressed), as client_golang's receiver:
 * larger bodies get 413. Decompressed, RWPROTO_MAX_DECODED applies. */
#define API_MAX_REMOTE_WRITE_BODY ((size_t)32 << 20)
/* Connections held at once (--web.max-connections); more are closed
 * unanswered. Prometheus's default is 512, which a few hundred idle or
 * slow-loris clients fill; here an idle connection costs a socket and a
 * few KB in the event loop (no thread), so the default holds thousands and
 * queries keep being served under such a flood. */
#define API_MAX_CONNECTIONS 4096
/* Idle connections are closed after this many seconds (--web.read-timeout,
 * Prometheus's default 5m): libmicrohttpd's timeout, counted from the last
 * byte received. */
#define API_CONNECTION_TIMEOUT_S 300
/* A connection that has not sent its first request's line and headers
 * this many seconds after it connected is closed, however slowly it keeps
 * sending (a slow-loris bound; at most --web.read-timeout). Prometheus has
 * no such deadline (its ReadTimeout covers it). Counted as
 * sidewatch_http_requests_refused_total{reason="header_timeout"}. */
#define API_HEADER_TIMEOUT_S 60
/* Worker threads beyond --query.max-concurrency, so that /metrics, remote
 * write and the rest are served while every query slot is taken. */
#define API_EXTRA_WORKERS 8
/* Memory for one connection's request line and headers (libmicrohttpd's
 * pool, mapped lazily: unused parts cost nothing): Go's
 * DefaultMaxHeaderBytes, so GET queries as long as Prometheus accepts fit.
 * Longer requests get 414. */
#define API_MAX_HEADER_BYTES (1024 * 1024)

typedef struct api api;

typedef struct api_options {
    const char *listen_address; /* "host:port", "[v6]:port" or ":port" */
    registry *reg;              /* borrowed */
    store *st;                  /* borrowed */
    bool enable_lifecycle;      /* allow /-/reload and /-/quit */
    int64_t lookback_ms;        /* federation lookback (5m) */
    /* Reloads the config; returns 0 or -errno with the reason in err. */
    int (*reload)(void *ctx, buf *err);
    /* Asks the process to shut down. */
    void (*quit)(void *ctx);
    /* Returns a reference to the running config (caller unrefs). */
    config *(*current_config)(void *ctx);
    void *ctx;
    /* Appends more families to /metrics (the container collector's) in
     * `format`, without "# EOF"; may be NULL. Returns 0 or -errno. */
    int (*extra_metrics)(void *ctx, enum textparse_format format, buf *out);
    /* POST /api/v1/write: stores one remote write body (borrowed). Returns
     * 0 (204), -EINVAL with the reason in err (400), or another -errno
     * (500). NULL: the receiver is off (404, as Prometheus). */
    int (*remote_write)(void *ctx, const void *body, size_t len, buf *err);
    /* /api/v1: everything but the store and its readers, which the api
     * provides (st, reader_get, reader_put and reader_ctx are set by
     * api_start; listen_address defaults to the one above). */
    apiv1_options v1;
    /* --web.config.file, taken by api_start (also when it fails): TLS is
     * set up from it once; its users and headers apply until replaced by
     * api_set_webconfig. NULL: plain HTTP, no authentication. */
    webconfig *web;
    /* /-/healthy and /-/ready answer without basic auth
     * (--web.healthy-unauthenticated). */
    bool healthy_unauthenticated;
    unsigned max_connections;  /* 0: API_MAX_CONNECTIONS */
    unsigned read_timeout_s;   /* 0: API_CONNECTION_TIMEOUT_S */
    unsigned header_timeout_s; /* 0: API_HEADER_TIMEOUT_S (capped at read_timeout_s) */
    unsigned max_workers;      /* 0: v1.max_concurrency + API_EXTRA_WORKERS */
    size_t max_request_bytes;  /* body cap outside remote write; 0: API_MAX_REQUEST_BODY for
                                  non-API paths and APIV1_MAX_BODY under /api/v1 */
} api_options;

/* Binds and starts serving. Returns 0 and *out, or -errno with the reason
 * ("listen tcp 0.0.0.0:9277: bind: Address already in use") in err. */
int api_start(api **out, const api_options *o, buf *err);
/* Replaces the basic_auth_users and response headers in force (reload of
 * --web.config.file; TLS settings are only read by api_start). Takes wc
 * (NULL: no authentication, no extra headers); older ones are kept until
 * api_stop, so requests under way never see freed memory. */
void api_set_webconfig(api *a, webconfig *wc);
/* Marks the server ready (or not): /-/ready answers accordingly. */
void api_set_ready(api *a, bool ready);
/* Waits for the requests workers are running (requests arriving meanwhile
 * get 503), stops the server, closes every connection and frees. NULL is a
 * no-op. */
void api_stop(api *a);

#endif
