/* nhist: a native histogram sample as the exposition formats carry it and
 * the store keeps it: Prometheus's histogram.Histogram (integer counts) and
 * histogram.FloatHistogram (float counts) in their spans + buckets layout.
 *
 * Layout (as Prometheus's model/histogram): schema -4..8 (exponential
 * buckets, bucket i of schema s is (2^((i-1)/2^s), 2^(i/2^s)]) or
 * NHIST_CUSTOM_SCHEMA (-53, custom buckets whose upper bounds are
 * custom_values, the last bucket going to +Inf); a zero bucket
 * [-zero_threshold, zero_threshold]; positive and negative buckets
 * described by spans: span k starts `offset` buckets after the end of span
 * k-1 (the first span's offset is the index of its first bucket) and
 * covers `length` consecutive buckets. The bucket counts are ABSOLUTE here
 * (not the delta encoding the protobuf format and Prometheus's integer
 * Histogram use), one per bucket that the spans cover, in index order.
 *
 * Integer histograms (is_float false) hold whole numbers in every count
 * field (exact in a double up to 2^53); float histograms any non-negative
 * value. count is the total number of observations and sum their sum; as
 * Prometheus validates them, count equals zero_count + the bucket counts,
 * except that with a NaN sum (NaN observations) it may exceed them.
 *
 * A histogram whose sum is the staleness marker (strutil_stale_nan's bit
 * pattern 0x7ff0000000000002) and that has no buckets is a staleness
 * marker, as Prometheus stores one in a histogram series.
 *
 * Memory: an nhist owns its five arrays (allocated with malloc); make with
 * nhist_init, free with nhist_cleanup. exporter/ depends only on libc, so
 * functions that allocate report -ENOMEM instead of aborting. */
#ifndef SIDEWATCH_NHIST_H
#define SIDEWATCH_NHIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NHIST_CUSTOM_SCHEMA (-53)
#define NHIST_MIN_SCHEMA (-4)
#define NHIST_MAX_SCHEMA 8

/* Counter reset hints (Prometheus's CounterResetHint). */
enum nhist_hint {
    NHIST_HINT_UNKNOWN = 0,
    NHIST_HINT_RESET = 1,
    NHIST_HINT_NOT_RESET = 2,
    NHIST_HINT_GAUGE = 3,
};

typedef struct nhist_span {
    int32_t offset;
    uint32_t length;
} nhist_span;

typedef struct nhist {
    bool is_float;
    enum nhist_hint hint;
    int32_t schema;
    double zero_threshold;
    double zero_count;
    double count;
    double sum;
    nhist_span *pos_spans, *neg_spans;
    size_t n_pos_spans, n_neg_spans;
    double *pos, *neg; /* absolute counts, one per bucket the spans cover */
    size_t n_pos, n_neg;
    double *custom_values; /* upper bounds, strictly increasing (schema -53 only) */
    size_t n_custom_values;
} nhist;

/* An empty integer histogram (schema 0, no buckets). Never fails. */
void nhist_init(nhist *h);
/* Frees the arrays and leaves h as nhist_init does. NULL is a no-op. */
void nhist_cleanup(nhist *h);
/* Makes dst a deep copy of src (dst is cleaned up first). Returns 0 or
 * -ENOMEM (dst then empty). */
int nhist_copy(nhist *dst, const nhist *src);

/* Whether h is a staleness marker (see above). */
bool nhist_is_stale(const nhist *h);

/* Checks h as Prometheus's Histogram.Validate / FloatHistogram.Validate
 * does: schema in range, spans (negative offsets only on the first span,
 * lengths adding up to the bucket counts), no negative counts, for
 * integer histograms count >= zero_count + the bucket counts (or sum is
 * NaN), custom_values only and always for the custom schema, strictly
 * increasing, and no negative buckets or zero bucket with it. Returns 0,
 * or -EINVAL with Prometheus's message written to err (NUL-terminated,
 * truncated to err_size; err may be NULL). */
int nhist_validate(const nhist *h, char *err, size_t err_size);

/* Lowers the resolution of an exponential histogram to `schema` (smaller
 * than h->schema), merging buckets as Prometheus's ReduceResolution does.
 * Returns 0, -EINVAL (custom schema, or schema not smaller / below
 * NHIST_MIN_SCHEMA), or -ENOMEM (h unchanged). */
int nhist_reduce_resolution(nhist *h, int32_t schema);

/* Prometheus's Compact(0): drops every bucket whose count is 0 and
 * rebuilds the spans so that each covers a run of consecutive non-empty
 * buckets (no zero-length spans, no zero gaps between spans). Returns 0,
 * -EINVAL (spans that do not describe the buckets, or a negative offset
 * after the first span; h unchanged) or -ENOMEM (h unchanged). */
int nhist_compact(nhist *h);
/* Compact(max_empty): as nhist_compact, but runs of at most max_empty
 * empty buckets between kept ones stay inside one span (filled with
 * zeros). Same returns; max_empty above 1024 is -EINVAL. */
int nhist_compact_max_empty(nhist *h, size_t max_empty);

/* Number of buckets (positive + negative). */
size_t nhist_bucket_count(const nhist *h);

#endif
