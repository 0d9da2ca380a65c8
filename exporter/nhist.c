#include "nhist.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expfmt.h"

void nhist_init(nhist *h)
{
    memset(h, 0, sizeof *h);
    h->hint = NHIST_HINT_UNKNOWN;
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

/* A malloc'ed copy of n elements of size sz, or NULL when n is 0. Sets
 * *fail when memory runs out. */
static void *dup_array(const void *src, size_t n, size_t sz, bool *fail)
{
    if (n == 0 || !src) return NULL;
    void *p = malloc(n * sz);
    if (!p) {
        *fail = true;
        return NULL;
    }
    memcpy(p, src, n * sz);
    return p;
}

int nhist_copy(nhist *dst, const nhist *src)
{
    if (dst == src) return 0;
    nhist_cleanup(dst);
    nhist t = *src;
    bool fail = false;
    t.pos_spans = dup_array(src->pos_spans, src->n_pos_spans, sizeof *t.pos_spans, &fail);
    t.neg_spans = dup_array(src->neg_spans, src->n_neg_spans, sizeof *t.neg_spans, &fail);
    t.pos = dup_array(src->pos, src->n_pos, sizeof *t.pos, &fail);
    t.neg = dup_array(src->neg, src->n_neg, sizeof *t.neg, &fail);
    t.custom_values =
        dup_array(src->custom_values, src->n_custom_values, sizeof *t.custom_values, &fail);
    if (fail) {
        nhist_cleanup(&t);
        return -ENOMEM;
    }
    *dst = t;
    return 0;
}

bool nhist_is_stale(const nhist *h)
{
    uint64_t bits;
    memcpy(&bits, &h->sum, sizeof bits);
    return bits == UINT64_C(0x7ff0000000000002) && h->n_pos == 0 && h->n_neg == 0;
}

size_t nhist_bucket_count(const nhist *h)
{
    return h->n_pos + h->n_neg;
}

/* ---- validation ----------------------------------------------------------- */

static const char ERR_COUNT_NOT_BIG_ENOUGH[] =
    "histogram's observation count should be at least the number of observations found in the "
    "buckets";
static const char ERR_COUNT_MISMATCH[] = "histogram's observation count should equal the number of "
                                         "observations found in the buckets (in absence of NaN)";
static const char ERR_NEGATIVE_COUNT[] = "histogram's observation count is negative";
static const char ERR_NEGATIVE_BUCKET[] =
    "histogram has a bucket whose observation count is negative";
static const char ERR_SPAN_NEGATIVE_OFFSET[] = "histogram has a span whose offset is negative";
static const char ERR_SPANS_BUCKETS[] =
    "histogram spans specify different number of buckets than provided";
static const char ERR_CUSTOM_TOO_FEW[] = "histogram custom bounds are too few";
static const char ERR_CUSTOM_ORDER[] = "histogram custom bounds must be in strictly increasing order";
static const char ERR_CUSTOM_INF[] = "histogram custom bounds must be finite";
static const char ERR_CUSTOM_NAN[] = "histogram custom bounds must not be NaN";

static int fail(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t err_size, const char *fmt, ...)
{
    if (err && err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Go's %v of a float64 (strconv 'g', shortest; +Inf, -Inf, NaN). */
static const char *go_v(double v, char *buf)
{
    expfmt_format_float(v, buf);
    return buf;
}

/* Go's %f of a float64. */
static const char *go_f(double v, char *buf)
{
    if (isnan(v))
        strcpy(buf, "NaN");
    else if (isinf(v))
        strcpy(buf, v > 0 ? "+Inf" : "-Inf");
    else
        snprintf(buf, 400, "%f", v);
    return buf;
}

/* A count as Go's uint64 would hold it (saturating instead of undefined). */
static uint64_t to_u64(double v)
{
    if (!(v > 0)) return 0;
    if (v >= 18446744073709551615.0) return UINT64_MAX;
    return (uint64_t)v;
}

/* checkHistogramSpans: no negative offset after the first span, lengths
 * adding up to n. */
static int check_spans(const nhist_span *s, size_t ns, size_t n, const char *side, char *err,
                       size_t es)
{
    uint64_t total = 0;
    for (size_t k = 0; k < ns; k++) {
        if (k > 0 && s[k].offset < 0)
            return fail(err, es, "%sspan number %zu with offset %d: %s", side, k + 1,
                        (int)s[k].offset, ERR_SPAN_NEGATIVE_OFFSET);
        total += s[k].length;
    }
    if (total != n)
        return fail(err, es, "%sspans need %llu buckets, have %zu buckets: %s", side,
                    (unsigned long long)total, n, ERR_SPANS_BUCKETS);
    return 0;
}

/* checkHistogramBuckets over absolute counts; adds them to *sum (integer
 * histograms) or *fsum. */
static int check_buckets(const double *b, size_t n, bool is_float, uint64_t *sum, double *fsum,
                         const char *side, char *err, size_t es)
{
    char num[EXPFMT_FLOAT_MAX];
    for (size_t i = 0; i < n; i++) {
        if (b[i] < 0) {
            if (is_float)
                return fail(err, es, "%sbucket number %zu has observation count of %s: %s", side,
                            i + 1, go_v(b[i], num), ERR_NEGATIVE_BUCKET);
            return fail(err, es, "%sbucket number %zu has observation count of %lld: %s", side,
                        i + 1, (long long)b[i], ERR_NEGATIVE_BUCKET);
        }
        *sum += to_u64(b[i]);
        *fsum += b[i];
    }
    return 0;
}

/* checkHistogramCustomBounds. */
static int check_custom(const nhist *h, char *err, size_t es)
{
    static const char pre[] = "custom buckets: ";
    char a[400], b[400];
    double prev = -INFINITY;
    for (size_t i = 0; i < h->n_custom_values; i++) {
        double cur = h->custom_values[i];
        if (isnan(cur)) return fail(err, es, "%s%s", pre, ERR_CUSTOM_NAN);
        if (i > 0 && cur <= prev)
            return fail(err, es, "%sprevious bound is %s and current is %s: %s", pre,
                        go_f(prev, a), go_f(cur, b), ERR_CUSTOM_ORDER);
        prev = cur;
    }
    if (prev == INFINITY)
        return fail(err, es, "%slast +Inf bound must not be explicitly defined: %s", pre,
                    ERR_CUSTOM_INF);
    uint64_t buckets = 0;
    int64_t total_len = 0;
    for (size_t k = 0; k < h->n_pos_spans; k++) {
        const nhist_span *s = &h->pos_spans[k];
        if (s->offset < 0)
            return fail(err, es, "%sspan number %zu with offset %d: %s", pre, k + 1,
                        (int)s->offset, ERR_SPAN_NEGATIVE_OFFSET);
        buckets += s->length;
        total_len += (int64_t)s->length + s->offset;
    }
    if (buckets != h->n_pos)
        return fail(err, es, "%sspans need %llu buckets, have %zu buckets: %s", pre,
                    (unsigned long long)buckets, h->n_pos, ERR_SPANS_BUCKETS);
    if ((int64_t)h->n_custom_values + 1 < total_len)
        return fail(err, es,
                    "%sonly %zu custom bounds defined which is insufficient to cover total span "
                    "length of %lld: %s",
                    pre, h->n_custom_values, (long long)total_len, ERR_CUSTOM_TOO_FEW);
    return 0;
}

int nhist_validate(const nhist *h, char *err, size_t err_size)
{
    uint64_t ncount = 0, pcount = 0;
    double fn = 0, fp = 0;
    char num[EXPFMT_FLOAT_MAX];
    int rc;
    if (err && err_size) err[0] = '\0';
    if (h->schema == NHIST_CUSTOM_SCHEMA) {
        if ((rc = check_custom(h, err, err_size)) < 0) return rc;
        if (h->zero_count != 0)
            return fail(err, err_size, "custom buckets: must have zero count of 0");
        if (h->zero_threshold != 0)
            return fail(err, err_size, "custom buckets: must have zero threshold of 0");
        if (h->n_neg_spans > 0)
            return fail(err, err_size, "custom buckets: must not have negative spans");
        if (h->n_neg > 0) return fail(err, err_size, "custom buckets: must not have negative buckets");
    } else if (h->schema >= NHIST_MIN_SCHEMA && h->schema <= NHIST_MAX_SCHEMA) {
        if ((rc = check_spans(h->pos_spans, h->n_pos_spans, h->n_pos, "positive side: ", err,
                              err_size)) < 0)
            return rc;
        if ((rc = check_spans(h->neg_spans, h->n_neg_spans, h->n_neg, "negative side: ", err,
                              err_size)) < 0)
            return rc;
        if ((rc = check_buckets(h->neg, h->n_neg, h->is_float, &ncount, &fn, "negative side: ",
                                err, err_size)) < 0)
            return rc;
        if (h->is_float && h->zero_count < 0)
            return fail(err, err_size, "zero bucket has observation count of %s: %s",
                        go_v(h->zero_count, num), ERR_NEGATIVE_BUCKET);
        if (h->n_custom_values > 0)
            return fail(err, err_size,
                        "histogram with exponential schema must not have custom bounds");
    } else {
        return fail(err, err_size,
                    "histogram has an invalid schema, which must be between %d and %d for "
                    "exponential buckets, or %d for custom buckets, got schema %d",
                    NHIST_MIN_SCHEMA, NHIST_MAX_SCHEMA, NHIST_CUSTOM_SCHEMA, (int)h->schema);
    }
    if (h->is_float || h->count < 0) {
        if (h->count < 0)
            return fail(err, err_size, "observation count is  %s: %s", go_v(h->count, num),
                        ERR_NEGATIVE_COUNT);
    }
    if ((rc = check_buckets(h->pos, h->n_pos, h->is_float, &pcount, &fp, "positive side: ", err,
                            err_size)) < 0)
        return rc;
    if (h->is_float) return 0;
    if (h->zero_count < 0)
        return fail(err, err_size, "zero bucket has observation count of %lld: %s",
                    (long long)h->zero_count, ERR_NEGATIVE_BUCKET);
    uint64_t in_buckets = ncount + pcount + to_u64(h->zero_count), count = to_u64(h->count);
    if (isnan(h->sum)) {
        if (in_buckets > count)
            return fail(err, err_size, "%llu observations found in buckets, but the Count field is %llu: %s",
                        (unsigned long long)in_buckets, (unsigned long long)count,
                        ERR_COUNT_NOT_BIG_ENOUGH);
    } else if (in_buckets != count) {
        return fail(err, err_size, "%llu observations found in buckets, but the Count field is %llu: %s",
                    (unsigned long long)in_buckets, (unsigned long long)count, ERR_COUNT_MISMATCH);
    }
    return 0;
}

/* ---- resolution and compaction ---------------------------------------------- */

/* The index of bucket idx of schema `from` in schema `to` (< from):
 * ((idx-1) >> (from-to)) + 1 with an arithmetic (flooring) shift. */
static int32_t target_idx(int32_t idx, int32_t from, int32_t to)
{
    int64_t x = (int64_t)idx - 1;
    int64_t d = (int64_t)1 << (from - to);
    int64_t q = x >= 0 ? x / d : -((-x + d - 1) / d);
    return (int32_t)(q + 1);
}

/* Rebuilds one side from (index, count) pairs in increasing index order:
 * buckets with the same index add up (merge); consecutive indices share a
 * span, and so do indices at most max_gap apart, the gap filled with empty
 * buckets. */
typedef struct side_out {
    nhist_span *spans;
    size_t n_spans;
    double *b;
    size_t n;
} side_out;

static void side_push(side_out *o, int32_t idx, double c, int32_t *last, bool merge, size_t max_gap)
{
    if (o->n > 0 && merge && idx == *last) {
        o->b[o->n - 1] += c;
        return;
    }
    int64_t gap = o->n > 0 ? (int64_t)idx - *last - 1 : 0;
    if (o->n > 0 && gap >= 0 && (uint64_t)gap <= max_gap) {
        for (int64_t k = 0; k < gap; k++)
            o->b[o->n++] = 0;
        o->spans[o->n_spans - 1].length += (uint32_t)gap + 1;
    } else {
        int32_t off = o->n == 0 ? idx : (int32_t)gap;
        o->spans[o->n_spans++] = (nhist_span){off, 1};
    }
    o->b[o->n++] = c;
    *last = idx;
}

/* Maps one side through target_idx (when from != to), dropping empty
 * buckets when compacting (max_gap as above). The spans must describe
 * exactly n buckets. */
static int side_rebuild(const nhist_span *spans, size_t n_spans, const double *b, size_t n,
                        int32_t from, int32_t to, bool compact, size_t max_gap, side_out *o)
{
    memset(o, 0, sizeof *o);
    if (n == 0) return 0;
    /* Filling gaps may add up to max_gap buckets between two kept ones. */
    size_t cap = n;
    if (compact && max_gap > 0) {
        if (max_gap > (SIZE_MAX / sizeof(double) - n) / n) return -ENOMEM;
        cap = n + n * max_gap;
    }
    o->spans = malloc(n * sizeof *o->spans);
    o->b = malloc(cap * sizeof *o->b);
    if (!o->spans || !o->b) {
        free(o->spans);
        free(o->b);
        memset(o, 0, sizeof *o);
        return -ENOMEM;
    }
    int64_t idx = 0;
    size_t k = 0;
    int32_t last = 0;
    for (size_t s = 0; s < n_spans; s++) {
        idx += spans[s].offset;
        for (uint32_t j = 0; j < spans[s].length && k < n; j++, k++, idx++) {
            if (compact && b[k] == 0) continue;
            int32_t t = from == to ? (int32_t)idx : target_idx((int32_t)idx, from, to);
            side_push(o, t, b[k], &last, from != to, compact ? max_gap : 0);
        }
    }
    return 0;
}

static bool spans_match(const nhist_span *s, size_t ns, size_t n)
{
    uint64_t total = 0;
    for (size_t k = 0; k < ns; k++) {
        if (k > 0 && s[k].offset < 0) return false;
        total += s[k].length;
    }
    return total == n;
}

static int rebuild(nhist *h, int32_t to, bool compact, size_t max_gap)
{
    if (!spans_match(h->pos_spans, h->n_pos_spans, h->n_pos) ||
        !spans_match(h->neg_spans, h->n_neg_spans, h->n_neg))
        return -EINVAL;
    side_out p, n;
    if (side_rebuild(h->pos_spans, h->n_pos_spans, h->pos, h->n_pos, h->schema, to, compact,
                     max_gap, &p) < 0)
        return -ENOMEM;
    if (side_rebuild(h->neg_spans, h->n_neg_spans, h->neg, h->n_neg, h->schema, to, compact,
                     max_gap, &n) < 0) {
        free(p.spans);
        free(p.b);
        return -ENOMEM;
    }
    free(h->pos_spans);
    free(h->pos);
    free(h->neg_spans);
    free(h->neg);
    h->pos_spans = p.spans, h->n_pos_spans = p.n_spans, h->pos = p.b, h->n_pos = p.n;
    h->neg_spans = n.spans, h->n_neg_spans = n.n_spans, h->neg = n.b, h->n_neg = n.n;
    h->schema = to;
    return 0;
}

int nhist_reduce_resolution(nhist *h, int32_t schema)
{
    if (h->schema == NHIST_CUSTOM_SCHEMA || schema >= h->schema || schema < NHIST_MIN_SCHEMA ||
        h->schema > NHIST_MAX_SCHEMA)
        return -EINVAL;
    return rebuild(h, schema, false, 0);
}

int nhist_compact(nhist *h)
{
    return rebuild(h, h->schema, true, 0);
}

int nhist_compact_max_empty(nhist *h, size_t max_empty)
{
    if (max_empty > 1024) return -EINVAL;
    return rebuild(h, h->schema, true, max_empty);
}
