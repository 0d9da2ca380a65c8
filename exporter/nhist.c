/* TEMPORARY minimal nhist implementation for the store's histogram work
 * (branch wip-hstore). The real exporter/nhist.c comes from another branch;
 * the lead drops this file at merge. Only what the store and its tests use:
 * init, cleanup, copy, is_stale, validate (the checks nhist.h lists, less
 * Prometheus's exact messages) and bucket_count. */
#include "nhist.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STALE_BITS 0x7ff0000000000002ULL

void nhist_init(nhist *h)
{
    memset(h, 0, sizeof *h);
}

void nhist_cleanup(nhist *h)
{
    if (!h) return;
    free(h->pos_spans);
    free(h->neg_spans);
    free(h->pos);
    free(h->neg);
    free(h->custom_values);
    nhist_init(h);
}

static int dup_array(void **dst, const void *src, size_t n, size_t elem)
{
    *dst = NULL;
    if (!n) return 0;
    *dst = malloc(n * elem);
    if (!*dst) return -ENOMEM;
    memcpy(*dst, src, n * elem);
    return 0;
}

int nhist_copy(nhist *dst, const nhist *src)
{
    nhist_cleanup(dst);
    nhist t = *src;
    int rc = 0;
    rc |= dup_array((void **)&t.pos_spans, src->pos_spans, src->n_pos_spans, sizeof(nhist_span));
    rc |= dup_array((void **)&t.neg_spans, src->neg_spans, src->n_neg_spans, sizeof(nhist_span));
    rc |= dup_array((void **)&t.pos, src->pos, src->n_pos, sizeof(double));
    rc |= dup_array((void **)&t.neg, src->neg, src->n_neg, sizeof(double));
    rc |= dup_array((void **)&t.custom_values, src->custom_values, src->n_custom_values,
                    sizeof(double));
    if (rc) {
        nhist_cleanup(&t);
        return -ENOMEM;
    }
    *dst = t;
    return 0;
}

bool nhist_is_stale(const nhist *h)
{
    uint64_t b;
    memcpy(&b, &h->sum, sizeof b);
    return b == STALE_BITS && h->n_pos == 0 && h->n_neg == 0;
}

static int fail(char *err, size_t n, const char *msg)
{
    if (err && n) snprintf(err, n, "%s", msg);
    return -EINVAL;
}

static int check_spans(const nhist_span *sp, size_t n, size_t nb)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && sp[i].offset < 0) return -1;
        total += sp[i].length;
    }
    return total == nb ? 0 : -1;
}

int nhist_validate(const nhist *h, char *err, size_t err_size)
{
    bool custom = h->schema == NHIST_CUSTOM_SCHEMA;
    if (!custom && (h->schema < NHIST_MIN_SCHEMA || h->schema > NHIST_MAX_SCHEMA))
        return fail(err, err_size, "histogram has an invalid schema");
    if (check_spans(h->pos_spans, h->n_pos_spans, h->n_pos) < 0)
        return fail(err, err_size, "positive side: spans need the bucket count");
    if (check_spans(h->neg_spans, h->n_neg_spans, h->n_neg) < 0)
        return fail(err, err_size, "negative side: spans need the bucket count");
    if (custom) {
        if (h->n_custom_values == 0 && !nhist_is_stale(h))
            return fail(err, err_size, "custom buckets: no custom values");
        if (h->n_neg || h->zero_count != 0 || h->zero_threshold != 0)
            return fail(err, err_size, "custom buckets: negative or zero bucket");
        for (size_t i = 1; i < h->n_custom_values; i++)
            if (!(h->custom_values[i] > h->custom_values[i - 1]))
                return fail(err, err_size, "custom buckets: not strictly increasing");
    } else if (h->n_custom_values) {
        return fail(err, err_size, "histogram with exponential schema must not have custom bounds");
    }
    double total = h->zero_count;
    if (h->zero_count < 0 || h->count < 0) return fail(err, err_size, "negative count");
    for (size_t i = 0; i < h->n_pos; i++) {
        if (h->pos[i] < 0) return fail(err, err_size, "negative bucket count");
        total += h->pos[i];
    }
    for (size_t i = 0; i < h->n_neg; i++) {
        if (h->neg[i] < 0) return fail(err, err_size, "negative bucket count");
        total += h->neg[i];
    }
    if (!h->is_float && !isnan(h->sum) && h->count < total)
        return fail(err, err_size, "count is less than the observations in buckets");
    return 0;
}

int nhist_reduce_resolution(nhist *h, int32_t schema)
{
    (void)h;
    (void)schema;
    return -EINVAL;
}

size_t nhist_bucket_count(const nhist *h)
{
    return h->n_pos + h->n_neg;
}
