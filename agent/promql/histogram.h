/* promql/histogram: the float native histogram of the PromQL engine, with
 * the semantics of Prometheus's histogram.FloatHistogram
 * (model/histogram/float_histogram.go): exponential schemas -4..8 and the
 * custom-bucket schema -53 (NHCB), a zero bucket, and positive/negative
 * buckets with absolute counts.
 *
 * Representation: instead of Prometheus's spans + bucket arrays, each side
 * holds a sparse list of (index, count) pairs sorted by index. A histogram
 * compacted with Prometheus's Compact(0) (every empty bucket dropped) and
 * one compacted here (promql_fh_compact) describe the same buckets, so the
 * canonical `{{...}}` form, the comparisons of promqltest and the API's
 * bucket lists agree with Prometheus. Spans are only made for output.
 *
 * Memory: a promql_fh is one heap object owning its arrays; make with
 * promql_fh_new/promql_fh_copy, free with promql_fh_free. Allocation goes
 * through mem.h (aborts on OOM), so nothing here fails for memory. */
#ifndef SIDEWATCH_PROMQL_HISTOGRAM_H
#define SIDEWATCH_PROMQL_HISTOGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "nhist.h"

#define PROMQL_FH_CUSTOM_SCHEMA (-53)

enum promql_fh_hint {
    PROMQL_FH_UNKNOWN = 0, /* UnknownCounterReset */
    PROMQL_FH_RESET,       /* CounterReset */
    PROMQL_FH_NOT_RESET,   /* NotCounterReset */
    PROMQL_FH_GAUGE,       /* GaugeType */
};

typedef struct promql_fh_bucket {
    int32_t idx;
    double count;
} promql_fh_bucket;

typedef struct promql_fh {
    enum promql_fh_hint hint;
    int32_t schema;
    double zero_threshold, zero_count, count, sum;
    promql_fh_bucket *pos, *neg; /* sorted by idx, unique idx; owned */
    size_t n_pos, n_neg, cap_pos, cap_neg;
    double *custom; /* custom bucket upper bounds (schema -53); owned */
    size_t n_custom;
} promql_fh;

/* A new zeroed histogram (schema 0). Caller frees with promql_fh_free. */
promql_fh *promql_fh_new(void);
/* Frees h and its arrays; NULL is a no-op. */
void promql_fh_free(promql_fh *h);
/* A deep copy (caller frees). */
promql_fh *promql_fh_copy(const promql_fh *h);
bool promql_fh_custom(const promql_fh *h);

/* Conversions between the stored/exposed form (nhist.h: spans and
 * absolute counts) and this one. promql_fh_from_nhist returns a new
 * histogram (caller frees) with the empty buckets left out (as Prometheus's
 * API and comparisons ignore them). promql_fh_to_nhist fills *out (which
 * must be nhist_init'ed or cleaned up; caller cleans up) as a float
 * histogram whose spans cover exactly the buckets of h; returns 0 or
 * -ENOMEM. */
promql_fh *promql_fh_from_nhist(const nhist *h);
int promql_fh_to_nhist(const promql_fh *h, nhist *out);

/* Sets bucket idx of one side (positive if pos) to count, keeping order. */
void promql_fh_set_bucket(promql_fh *h, bool pos, int32_t idx, double count);
/* Drops empty buckets (Prometheus's Compact(0) as far as values go). */
void promql_fh_compact(promql_fh *h);

/* Bounds of bucket idx of one side: exponential buckets are
 * (2^((idx-1)/2^schema), 2^(idx/2^schema)] (negated for the negative side,
 * lower < upper); custom bucket i is (custom[i-1], custom[i]] with -Inf
 * before the first and +Inf after the last bound. */
void promql_fh_bounds(const promql_fh *h, bool pos, int32_t idx, double *lower, double *upper);

/* h += o (or h -= o when sub), as FloatHistogram.Add/Sub: exponential
 * histograms go to the smaller schema and the larger zero threshold;
 * custom-bucket histograms with different bounds go to the intersection of
 * the bounds (*reconciled set). The counter reset hint is combined as
 * Prometheus does (*collision set on a reset/not-reset clash). Returns 0,
 * or -EINVAL (h unchanged) when one uses custom buckets and the other does
 * not (ErrHistogramsIncompatibleSchema). collision/reconciled may be NULL. */
int promql_fh_add(promql_fh *h, const promql_fh *o, bool sub, bool *collision, bool *reconciled);
/* Kahan summation of histograms (FloatHistogram.KahanAdd): h += o with
 * the compensation kept in c (made with promql_fh_kahan_new(h), same
 * schema and zero threshold); promql_fh_kahan_finish(h, c) adds it in at
 * the end. When the layouts differ (zero thresholds, custom bounds) it
 * falls back to promql_fh_add. Errors as promql_fh_add. */
int promql_fh_kahan_add(promql_fh *h, const promql_fh *o, promql_fh *c, bool *collision,
                        bool *reconciled);
promql_fh *promql_fh_kahan_new(const promql_fh *h);
void promql_fh_kahan_finish(promql_fh *h, const promql_fh *c);

/* Multiplies (div false) or divides every count and the sum by f; a
 * division by zero drops the buckets (as FloatHistogram.Div). */
void promql_fh_scale(promql_fh *h, double f, bool div);
/* Exact equality after compaction (Equals); the hint is not compared. */
bool promql_fh_equal(const promql_fh *a, const promql_fh *b);
/* FloatHistogram.DetectReset: whether h is a counter reset after prev. */
bool promql_fh_detect_reset(const promql_fh *h, const promql_fh *prev);
/* Reduces h to a smaller (exponential) schema. */
void promql_fh_reduce_resolution(promql_fh *h, int32_t schema);

/* FloatHistogram.TrimBuckets: keeps the observations below rhs (upper_trim,
 * the </ operator) or above it (>/), splitting the bucket rhs falls in
 * (linearly for custom and zero buckets, exponentially otherwise); when
 * something was cut, count and sum are re-estimated from bucket
 * midpoints. */
void promql_fh_trim(promql_fh *h, double rhs, bool upper_trim);

/* Appends the canonical form FloatHistogram.TestExpression() writes:
 * {{schema:1 count:5 sum:10 z_bucket:1 z_bucket_w:0.001
 * custom_values:[1 2] counter_reset_hint:gauge offset:1 buckets:[1 0 2]
 * n_offset:0 n_buckets:[1]}} (zero fields left out). */
void promql_fh_format(const promql_fh *h, buf *out);

/* Appends FloatHistogram.String(): {count:20, sum:10, [-2,-1):2,
 * [-0.001,0.001]:2, (0.5,1]:1} with the non-empty buckets, lowest first
 * (count_values uses it as a label value). */
void promql_fh_string(const promql_fh *h, buf *out);

/* Iterates every bucket from the lowest to the highest: the negative
 * buckets, the zero bucket (only for exponential histograms, and only when
 * its count or threshold is non-zero), the positive buckets. Set it up with
 * promql_fh_iter_init; each promql_fh_iter_next fills lower, upper, count
 * and returns false at the end. Empty buckets are included. */
typedef struct promql_fh_iter {
    const promql_fh *h;
    int stage; /* 0 negative, 1 zero, 2 positive, 3 done */
    size_t i;
    double lower, upper, count;
    int kind; /* of the current bucket: -1 negative, 0 zero bucket, 1 positive or custom */
} promql_fh_iter;

void promql_fh_iter_init(promql_fh_iter *it, const promql_fh *h);
bool promql_fh_iter_next(promql_fh_iter *it);

#endif
