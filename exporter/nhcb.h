/* nhcb: turns the series of one classic histogram (the cumulative _bucket
 * counts with their le bounds, _count and _sum) into a native histogram
 * with custom buckets (schema -53), as Prometheus's convertnhcb.TempHistogram
 * does for convert_classic_histograms_to_nhcb.
 *
 * Bucket counts may arrive in any order (duplicates of a bound are
 * ignored); a count that is not cumulative, a negative count or a NaN bound
 * makes the conversion fail. A missing _count takes the highest bucket's
 * count; a missing +Inf bucket is added with the total count. Whole-number
 * counts give an integer histogram, others a float one.
 *
 * Memory: the caller owns the struct (nhcb_init/nhcb_cleanup); its bucket
 * array is malloc'd. Allocation failure is reported as -ENOMEM. */
#ifndef SIDEWATCH_NHCB_H
#define SIDEWATCH_NHCB_H

#include <stdbool.h>
#include <stddef.h>

#include "nhist.h"

typedef struct nhcb_bucket {
    double le, count;
} nhcb_bucket;

typedef struct nhcb {
    nhcb_bucket *b; /* sorted by le */
    size_t n, cap;
    double count, sum;
    bool has_count;
    int err; /* the first error (negative errno), 0 when none */
    char msg[160];
} nhcb;

void nhcb_init(nhcb *c);
void nhcb_cleanup(nhcb *c);
/* Forgets everything collected (keeps the memory). */
void nhcb_reset(nhcb *c);

/* Collect one series' value; after the first error they do nothing. */
void nhcb_set_bucket(nhcb *c, double le, double cumulative_count);
void nhcb_set_count(nhcb *c, double count);
void nhcb_set_sum(nhcb *c, double sum);

/* Builds the histogram into *out (cleaned up first; caller cleans up).
 * Returns 0, or -EINVAL with Prometheus's reason in c->msg ("count is not
 * cumulative: 3 < 5", "count mismatch: ...", "bucket count must be
 * non-negative: ...") or -ENOMEM; *out is then empty. Does not reset c. */
int nhcb_convert(nhcb *c, nhist *out);

#endif
