/* apiv1: the Prometheus HTTP API under /api/v1/, independent of the HTTP
 * server (api.c feeds it requests and sends its responses), so that it is
 * unit-testable without sockets.
 *
 * Endpoints (as Prometheus 3.x; GET and POST where Prometheus takes both):
 *   query, query_range          PromQL (promql/parse.h, promql/eval.h) over
 *                               the store through a querier
 *   series, labels,             the series index (store.h)
 *   label/<name>/values
 *   metadata                    HELP/TYPE/UNIT the store recorded
 *   targets                     the scrape manager's targets
 *   status/buildinfo, config,   about the process
 *   flags, runtimeinfo, tsdb
 *   format_query, parse_query   the parser's Pretty() and syntax tree
 *   query_exemplars             the stored exemplars (store_exemplars_select) of
 *                               the series any vector selector of the query
 *                               matches, between start and end; 204 when the
 *                               query has no selector
 *   rules, alerts               the rule engine's groups, rules and active
 *                               alerts (rules.h), with rules' type,
 *                               rule_name[], rule_group[], file[], match[]
 *                               and exclude_alerts filters
 *   alertmanagers               the Alertmanagers alerts are sent to
 * Anything else under /api/v1/ is 404 with Go's "404 page not found", a
 * known path with another method is 405, an OPTIONS request is 204 (CORS
 * preflight), and a known path with a trailing '/' redirects (301 for GET
 * and HEAD, 308 otherwise), as Prometheus's router does.
 *
 * Parameters are read as Go's r.FormValue does: from an
 * application/x-www-form-urlencoded body (POST, PUT and PATCH; Grafana
 * POSTs forms) first, then from the query string; repeated keys (match[])
 * keep their order. Errors use Prometheus's envelope, error types and
 * messages:
 *   {"status":"error","errorType":"bad_data","error":"invalid parameter ..."}
 * with the HTTP status Prometheus 3.x gives each type (bad_data 400,
 * execution 422, canceled 499, timeout 503, internal 500, unavailable 500,
 * not_found 404).
 *
 * Large matrices are not built as one string: a response whose matrix has
 * more than APIV1_STREAM_MIN_POINTS points carries an apiv1_stream that
 * produces the body part by part (one series at a time, about
 * APIV1_STREAM_CHUNK bytes), freeing each series once written.
 *
 * Threads: apiv1_handle may run on many threads at once; the apiv1 object is
 * immutable after apiv1_new. At most APIV1 max_concurrency queries evaluate
 * at once (--query.max-concurrency); the others wait for a slot, and a wait
 * longer than the query's timeout fails with "query timed out in query
 * queue". */
#ifndef SIDEWATCH_APIV1_H
#define SIDEWATCH_APIV1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "json.h"
#include "config.h"
#include "promql/eval.h"
#include "promql/parse.h"
#include "registry.h"
#include "rules.h"
#include "scrape.h"
#include "store.h"

/* Largest request body read (as Go's ParseForm: 10 MB). */
#define APIV1_MAX_BODY (10 * 1024 * 1024)
/* Most key=value pairs read from a query string and a body together. */
#define APIV1_MAX_PARAMS 100000
/* Cap on a response built in memory (labels, series, small results). */
#define APIV1_MAX_RESPONSE ((size_t)1 << 30)
/* Points per series a range query may return (Prometheus's 11,000). */
#define APIV1_MAX_POINTS_PER_SERIES 11000
/* Annotations listed per kind; the rest are counted in one more line. */
#define APIV1_MAX_WARNINGS 10
#define APIV1_MAX_INFOS 10
/* Matrices with more points than this are streamed. */
#define APIV1_STREAM_MIN_POINTS 20000
/* Size a stream part aims for. */
#define APIV1_STREAM_CHUNK (64 * 1024)
/* /api/v1/status/tsdb: default and largest `limit` (Prometheus's). */
#define APIV1_TSDB_LIMIT 10
#define APIV1_TSDB_MAX_LIMIT 10000
/* Default --query.max-concurrency (Prometheus's). */
#define APIV1_DEFAULT_MAX_CONCURRENCY 20

/* ---- parameters -------------------------------------------------------------- */

typedef struct apiv1_param {
    char *key, *value; /* decoded, owned, NUL-terminated (may contain NUL) */
    size_t key_len, value_len;
} apiv1_param;

typedef struct apiv1_params {
    apiv1_param *v;
    size_t n, cap;
    char *error; /* the first decoding error, in Go's words, or NULL; owned */
} apiv1_params;

void apiv1_params_init(apiv1_params *p);
void apiv1_params_cleanup(apiv1_params *p);
/* Decodes an application/x-www-form-urlencoded string (a query string or a
 * form body) as Go's url.ParseQuery does and appends its pairs in order:
 * '&' separates pairs, '+' is a space, %XX escapes; empty pairs are
 * skipped; a key without '=' has the value "". A pair with a bad escape or
 * a ';' is skipped and the first such error is kept in p->error
 * ("invalid URL escape \"%zz\"", "invalid semicolon separator in query").
 * Returns 0, or -E2BIG past APIV1_MAX_PARAMS pairs. */
int apiv1_params_parse(apiv1_params *p, const char *s, size_t len);
/* The first pair with this key, or NULL. Borrowed. */
const apiv1_param *apiv1_params_get(const apiv1_params *p, const char *key);

/* Time as Prometheus's API parses it: unix seconds with a fraction (rounded
 * to milliseconds) or RFC 3339 (with nanoseconds, truncated to ms), or the
 * strings of Prometheus's MinTime and MaxTime. Returns 0 and *ms, or
 * -EINVAL with `cannot parse "<s>" to a valid timestamp` appended to err. */
int apiv1_parse_time(const char *s, size_t len, int64_t *ms, buf *err);
/* A duration as Prometheus's API parses it: float seconds or a Prometheus
 * duration ("5m", "1h30m"). Returns 0 and *ns (nanoseconds, Go's
 * time.Duration), or -EINVAL with `cannot parse "<s>" to a valid duration`
 * (or "... It overflows int64") appended to err. */
int apiv1_parse_duration(const char *s, size_t len, int64_t *ns, buf *err);
/* Formats a millisecond timestamp as Go's time.Time JSON (RFC 3339 with
 * the fraction's trailing zeros dropped, UTC): "2024-05-01T10:00:00.25Z".
 * out needs 40 bytes; returns the length. */
size_t apiv1_format_time(int64_t ms, char out[40]);

/* ---- requests and responses ------------------------------------------------------ */

typedef struct apiv1_request {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* the path after "/api/v1" ("/query", "/label/job/values") */
    const char *query;        /* the raw query string (after '?'), or NULL */
    size_t query_len;
    const char *content_type; /* the request's Content-Type, or NULL */
    const char *body;         /* the raw body, or NULL */
    size_t body_len;
    bool body_too_large;      /* the body exceeded APIV1_MAX_BODY (it is not read) */
    bool has_origin;          /* an Origin header was sent: add CORS headers */
} apiv1_request;

typedef struct apiv1_stream apiv1_stream;

typedef struct apiv1_response {
    unsigned status;          /* HTTP status */
    const char *content_type; /* static; NULL for none (204) */
    const char *allow;        /* 405: the Allow header; else NULL (static) */
    char *location;           /* redirects: the Location header; else NULL (owned) */
    bool cors;                /* add Prometheus's CORS headers */
    buf body;                 /* the body, unless stream is set */
    apiv1_stream *stream;     /* the body in parts (apiv1_stream_next), or NULL */
} apiv1_response;

/* Frees the body, location and stream. */
void apiv1_response_cleanup(apiv1_response *r);

/* Appends the next part of a streamed body to out. Returns 1 when more
 * follows, 0 when the body is complete (this call may still have appended
 * its end), or -ENOMEM/-E2BIG if out could not take a part. */
int apiv1_stream_next(apiv1_stream *s, buf *out);
/* Frees the stream and the result it holds; NULL is a no-op. */
void apiv1_stream_free(apiv1_stream *s);

/* ---- the API ------------------------------------------------------------------ */

/* What /api/v1/status/runtimeinfo reports about the process. */
typedef struct apiv1_runtime {
    int64_t start_time_ms;
    bool reload_config_success;
    int64_t last_config_time_ms;
    char storage_retention[64]; /* "15d", "15d or 512MiB", "" */
    int64_t corruption_count;
} apiv1_runtime;

/* One command-line flag for /api/v1/status/flags. */
typedef struct apiv1_flag {
    const char *name, *value;
} apiv1_flag;

typedef struct apiv1_options {
    store *st; /* borrowed */
    /* A store reader for one request (NULL on failure) and its return;
     * called with reader_ctx. */
    store_reader *(*reader_get)(void *reader_ctx);
    void (*reader_put)(void *reader_ctx, store_reader *r);
    void *reader_ctx;
    scrape_manager *scrape; /* borrowed; NULL: no targets */
    /* The running config (a reference the caller unrefs); NULL: none. */
    config *(*current_config)(void *ctx);
    /* Fills the runtime information; NULL: zeros. */
    void (*runtime_info)(void *ctx, apiv1_runtime *out);
    /* Wall-clock milliseconds; NULL: CLOCK_REALTIME. For tests. */
    int64_t (*now_ms)(void *ctx);
    void *ctx; /* for current_config, runtime_info and now_ms */
    const apiv1_flag *flags; /* copied */
    size_t n_flags;
    promql_engine_options engine; /* lookback, max samples, timeout, features */
    promql_parse_options parse;
    int max_concurrency;        /* queries evaluated at once; 0 = APIV1_DEFAULT_MAX_CONCURRENCY */
    const char *listen_address; /* for the targets' globalUrl; copied */
    /* The rule engine's state for /rules and /alerts (called with ctx; the
     * handler cleans the snapshot up); NULL: no rules. */
    void (*rules_snapshot)(void *ctx, rules_snapshot *out);
    /* The Alertmanager URLs alerts go to, for /alertmanagers (caller-owned
     * strings and array, freed by the handler); NULL: none. */
    void (*alertmanagers)(void *ctx, char ***urls, size_t *n);
    /* Where sidewatch_queries_refused_total{reason} is registered (borrowed,
     * must outlive the apiv1); NULL: refusals are not counted. */
    registry *reg;
} apiv1_options;

/* Why a query was refused by a limit: the `reason` label of
 * sidewatch_queries_refused_total. Every reason's child exists from
 * apiv1_new on (at 0). Counted for /query and /query_range (max_samples:
 * --query.max-samples, in the querier or the engine; timeout: --query.timeout
 * or the timeout parameter, in the queue, while loading or evaluating;
 * too_many_points: a range query over APIV1_MAX_POINTS_PER_SERIES points per
 * series), and regex_too_large (parse.max_regex_bytes, --query.max-regex-bytes)
 * also for the match[] of /series, /labels, /label/<name>/values, /rules and
 * /federate and for /format_query and /parse_query. Rule evaluations are not API
 * queries: their failures, limits included, are counted by the rule engine
 * (sidewatch_rule_evaluation_failures_total). */
enum apiv1_refused {
    APIV1_REFUSED_MAX_SAMPLES,
    APIV1_REFUSED_TIMEOUT,
    APIV1_REFUSED_TOO_MANY_POINTS,
    APIV1_REFUSED_REGEX_TOO_LARGE,
    APIV1_REFUSED_COUNT
};
/* The label value for r ("max_samples", ...). Static. */
const char *apiv1_refused_reason(enum apiv1_refused r);

typedef struct apiv1 apiv1;

/* Never fails. Copies the options. */
apiv1 *apiv1_new(const apiv1_options *o);
/* NULL is a no-op. No apiv1_handle may be running. */
void apiv1_free(apiv1 *a);

/* Counts one refusal for a request served outside apiv1 (/federate's
 * match[] over --query.max-regex-bytes). Thread-safe. */
void apiv1_count_refused(apiv1 *a, enum apiv1_refused why);

/* Answers one request. *out is initialised by the call and cleaned up by
 * the caller (apiv1_response_cleanup). Never fails: errors become error
 * responses. */
void apiv1_handle(apiv1 *a, const apiv1_request *rq, apiv1_response *out);

/* Writes a native histogram value as Prometheus's API does (the "histogram"
 * of an instant vector sample, each entry of a series' "histograms"):
 * {"count":"5","sum":"10","buckets":[[rule,"lower","upper","count"],...]}
 * with only the non-empty buckets, lowest first; rule 0 is (lower, upper]
 * (positive and custom buckets), 1 [lower, upper) (negative), 3 [lower,
 * upper] (the zero bucket). */
void apiv1_write_histogram(json_writer *w, const promql_fh *h);

#endif
