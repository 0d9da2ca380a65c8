/* promql/eval: evaluates a parsed PromQL expression (promql/ast.h) over a
 * data source, with Prometheus 3.x's semantics: lookback delta, staleness
 * markers, offset and @, subqueries, vector matching, aggregations, every
 * stable function (promql/func.h), annotations (warnings and infos),
 * --query.max-samples and --query.timeout with Prometheus's messages.
 *
 * Values are floats, and native histograms (promql/histogram.h) where the
 * data has them: a sample carries a histogram pointer, a series a second,
 * parallel array of histogram points, so the float path stays as it was.
 * Histograms go through selectors (lookback, staleness), binary operators,
 * aggregations and the functions as in Prometheus 3.x, with its
 * annotations; what does not take them (e.g. abs(), topk) ignores them as
 * Prometheus does.
 *
 * Memory: every value handed to the caller is owned by the caller and freed
 * with promql_value_cleanup(); label sets in values are heap labels
 * (labels.h), owned by the value. */
#ifndef SIDEWATCH_PROMQL_EVAL_H
#define SIDEWATCH_PROMQL_EVAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "labels.h"
#include "promql/ast.h"
#include "promql/histogram.h"

/* ---- values ----------------------------------------------------------------- */

/* One float point of a series (same layout as store_sample). */
typedef struct promql_fpoint {
    int64_t t; /* ms since the epoch */
    double v;
} promql_fpoint;

/* One native histogram point of a series. */
typedef struct promql_hpoint {
    int64_t t;
    promql_fh *h; /* owned by the series; a staleness marker is not stored */
} promql_hpoint;

/* An element of an instant vector. */
typedef struct promql_sample {
    labels *metric; /* owned */
    int64_t t;
    double v; /* unused when h is set */
    /* Delayed __name__ removal (Prometheus's DropName): the name is still in
     * `metric` but goes at the end of evaluation. */
    bool drop_name;
    promql_fh *h; /* a native histogram sample (owned), or NULL for a float */
} promql_sample;

typedef struct promql_vector {
    promql_sample *v;
    size_t n, cap;
} promql_vector;

typedef struct promql_series {
    labels *metric; /* owned */
    promql_fpoint *pts; /* in time order */
    size_t n, cap;
    bool drop_name;
    /* Start timestamps (ms; 0 = unknown), one per point of pts, or NULL
     * when the series has none. Owned. Only a data source that records
     * them sets this (the store does not); results never carry them. */
    int64_t *st;
    /* Native histogram points, in time order (none at a time of pts);
     * owned, each histogram too. NULL/0 for float-only series. */
    promql_hpoint *hpts;
    size_t nh, hcap;
} promql_series;

typedef struct promql_matrix {
    promql_series *v; /* a query result is sorted by labels */
    size_t n, cap;
} promql_matrix;

typedef struct promql_value {
    enum promql_type type; /* SCALAR, STRING, VECTOR or MATRIX; NONE when empty */
    int64_t t;             /* SCALAR and STRING: evaluation time */
    double scalar;
    char *string;          /* owned, NUL-terminated; string_len bytes */
    size_t string_len;
    promql_vector vector;
    promql_matrix matrix;
} promql_value;

/* Frees what the value owns and empties it; safe on a zeroed value. */
void promql_value_cleanup(promql_value *v);
/* Frees the series' label sets and points (histograms too), and the array. */
void promql_matrix_cleanup(promql_matrix *m);
/* Frees a series' histogram points (and the histograms) and empties them. */
void promql_series_free_hists(promql_series *s);
/* Appends the histogram point (t, h) to s, which takes h. */
void promql_series_add_hist(promql_series *s, int64_t t, promql_fh *h);
void promql_vector_cleanup(promql_vector *v);

/* ---- the data source ---------------------------------------------------------- */

/* Where selectors read from: the store (api, rules) or an in-memory set
 * (the promqltest runner, rule unit tests). */
typedef struct promql_queryable {
    void *ctx;
    /* Fills *out with the series that match every matcher and have samples
     * in [mint, maxt], each with its samples in [mint, maxt] in time order
     * (staleness markers included), sorted by labels. A source that records
     * sample start timestamps may set each series' `st`; one that does not
     * leaves it NULL. *out is empty on entry; the engine takes what is put
     * in it. Returns 0, or a negative errno with a message appended to
     * err. */
    int (*select)(void *ctx, const label_matcher *ms, size_t n, int64_t mint, int64_t maxt,
                  promql_matrix *out, buf *err);
} promql_queryable;

/* ---- the engine ------------------------------------------------------------------- */

typedef struct promql_engine_options {
    int64_t lookback_delta_ms;        /* 0 = 5 minutes */
    int64_t max_samples;              /* 0 = 50,000,000 (--query.max-samples) */
    int64_t timeout_ms;               /* 0 = 2 minutes (--query.timeout) */
    int64_t default_subquery_step_ms; /* 0 = 1 minute (the rule evaluation interval for rules) */
    /* Prometheus 3.x feature flags that change results. */
    bool delayed_name_removal; /* promql-delayed-name-removal */
    /* use-start-timestamps: rate, increase, irate and resets read the start
     * timestamps of the samples a range selector gives them (a start
     * timestamp after the previous sample is a counter reset, and rate and
     * increase assume a zero at a start timestamp inside the range instead
     * of extrapolating to the left); start_timestamp(selector) returns
     * them. Off: start timestamps are ignored and start_timestamp() returns
     * nothing, as in Prometheus. */
    bool use_start_timestamps;
    /* Set to true from another thread to cancel (client went away). */
    const atomic_bool *cancel;
} promql_engine_options;

enum promql_error_kind {
    PROMQL_ERR_NONE,
    PROMQL_ERR_BAD_DATA,  /* the query cannot be evaluated as given (API: bad_data, 400) */
    PROMQL_ERR_EXECUTION, /* an evaluation error (API: execution, 422) */
    PROMQL_ERR_TIMEOUT,   /* --query.timeout (API: timeout, 503) */
    PROMQL_ERR_CANCELED,  /* canceled (API: canceled, 503) */
    PROMQL_ERR_INTERNAL,  /* the data source failed (API: internal, 500) */
};

typedef struct promql_error {
    enum promql_error_kind kind;
    buf msg; /* Prometheus's message, e.g. "query timed out in expression evaluation" */
} promql_error;

void promql_error_init(promql_error *e);
void promql_error_cleanup(promql_error *e);

/* Annotations, rendered as Prometheus renders them in the API's "warnings"
 * and "infos" arrays: "PromQL info: metric might not be a counter, name does
 * not end in _total/_sum/_count/_bucket: \"foo\" (1:6)". Deduplicated, in the
 * order first raised. */
typedef struct promql_annotations {
    char **warnings;
    size_t n_warnings;
    char **infos;
    size_t n_infos;
} promql_annotations;

void promql_annotations_cleanup(promql_annotations *a);

/* A query: an expression and when to evaluate it. An instant query has
 * start == end and step 0; a range query evaluates at start, start + step,
 * ..., <= end. */
typedef struct promql_query {
    const promql_ast *ast; /* borrowed; its text gives annotation positions */
    const promql_node *expr; /* borrowed; usually ast->root */
    int64_t start_ms, end_ms, step_ms;
} promql_query;

/* Evaluates a query. On success returns 0 and fills *out (caller cleans
 * up): an instant query gives the expression's type (scalar, string, vector
 * or matrix); a range query gives a matrix (a scalar expression becomes one
 * series with no labels), or fails for string expressions as Prometheus does.
 * Annotations go to *ann (may be NULL). On failure returns a negative errno
 * (-EINVAL, -ETIMEDOUT, -ECANCELED, -E2BIG for max samples, -EIO for the
 * data source, -ENOMEM) and fills *err with the kind and Prometheus's
 * message; *out is then empty. */
int promql_eval(const promql_engine_options *opts, const promql_queryable *src,
                const promql_query *q, promql_value *out, promql_annotations *ann,
                promql_error *err);

#endif
