#include "promql/histogram.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "promql/func.h"

promql_fh *promql_fh_new(void)
{
    return mem_calloc(1, sizeof(promql_fh));
}

void promql_fh_free(promql_fh *h)
{
    if (!h) return;
    mem_free(h->pos);
    mem_free(h->neg);
    mem_free(h->custom);
    mem_free(h);
}

static promql_fh_bucket *dup_buckets(const promql_fh_bucket *b, size_t n)
{
    if (!n) return NULL;
    promql_fh_bucket *r = mem_malloc(n * sizeof *r);
    memcpy(r, b, n * sizeof *r);
    return r;
}

promql_fh *promql_fh_copy(const promql_fh *h)
{
    promql_fh *r = promql_fh_new();
    *r = *h;
    r->pos = dup_buckets(h->pos, h->n_pos);
    r->neg = dup_buckets(h->neg, h->n_neg);
    r->cap_pos = h->n_pos;
    r->cap_neg = h->n_neg;
    r->custom = NULL;
    if (h->n_custom) {
        r->custom = mem_malloc(h->n_custom * sizeof *r->custom);
        memcpy(r->custom, h->custom, h->n_custom * sizeof *r->custom);
    }
    return r;
}

bool promql_fh_custom(const promql_fh *h)
{
    return h->schema == PROMQL_FH_CUSTOM_SCHEMA;
}

static void from_spans(promql_fh *h, bool pos, const nhist_span *spans, size_t n_spans,
                       const double *counts, size_t n_counts)
{
    int64_t idx = 0;
    size_t k = 0;
    for (size_t s = 0; s < n_spans; s++) {
        idx += spans[s].offset;
        for (uint32_t j = 0; j < spans[s].length && k < n_counts; j++, k++, idx++) {
            if (counts[k] != 0) promql_fh_set_bucket(h, pos, (int32_t)idx, counts[k]);
        }
    }
}

promql_fh *promql_fh_from_nhist(const nhist *n)
{
    promql_fh *h = promql_fh_new();
    switch (n->hint) {
    case NHIST_HINT_RESET: h->hint = PROMQL_FH_RESET; break;
    case NHIST_HINT_NOT_RESET: h->hint = PROMQL_FH_NOT_RESET; break;
    case NHIST_HINT_GAUGE: h->hint = PROMQL_FH_GAUGE; break;
    default: h->hint = PROMQL_FH_UNKNOWN; break;
    }
    h->schema = n->schema;
    h->zero_threshold = n->zero_threshold;
    h->zero_count = n->zero_count;
    h->count = n->count;
    h->sum = n->sum;
    from_spans(h, true, n->pos_spans, n->n_pos_spans, n->pos, n->n_pos);
    from_spans(h, false, n->neg_spans, n->n_neg_spans, n->neg, n->n_neg);
    if (n->n_custom_values) {
        h->custom = mem_malloc(n->n_custom_values * sizeof *h->custom);
        memcpy(h->custom, n->custom_values, n->n_custom_values * sizeof *h->custom);
        h->n_custom = n->n_custom_values;
    }
    return h;
}

/* Spans for the sorted buckets b[0..n): consecutive indexes share a span. */
static int to_spans(const promql_fh_bucket *b, size_t n, nhist_span **spans, size_t *n_spans,
                    double **counts, size_t *n_counts)
{
    *spans = NULL;
    *counts = NULL;
    *n_spans = *n_counts = 0;
    if (n == 0) return 0;
    *spans = malloc(n * sizeof **spans);
    *counts = malloc(n * sizeof **counts);
    if (!*spans || !*counts) {
        free(*spans);
        free(*counts);
        *spans = NULL;
        *counts = NULL;
        return -ENOMEM;
    }
    int64_t next = 0; /* index after the previous span */
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && b[i].idx == b[i - 1].idx + 1) {
            (*spans)[*n_spans - 1].length++;
        } else {
            (*spans)[*n_spans].offset = (int32_t)((int64_t)b[i].idx - next);
            (*spans)[*n_spans].length = 1;
            (*n_spans)++;
        }
        next = (int64_t)b[i].idx + 1;
        (*counts)[(*n_counts)++] = b[i].count;
    }
    return 0;
}

int promql_fh_to_nhist(const promql_fh *h, nhist *out)
{
    nhist_cleanup(out);
    out->is_float = true;
    switch (h->hint) {
    case PROMQL_FH_RESET: out->hint = NHIST_HINT_RESET; break;
    case PROMQL_FH_NOT_RESET: out->hint = NHIST_HINT_NOT_RESET; break;
    case PROMQL_FH_GAUGE: out->hint = NHIST_HINT_GAUGE; break;
    default: out->hint = NHIST_HINT_UNKNOWN; break;
    }
    out->schema = h->schema;
    out->zero_threshold = h->zero_threshold;
    out->zero_count = h->zero_count;
    out->count = h->count;
    out->sum = h->sum;
    if (to_spans(h->pos, h->n_pos, &out->pos_spans, &out->n_pos_spans, &out->pos, &out->n_pos) <
            0 ||
        to_spans(h->neg, h->n_neg, &out->neg_spans, &out->n_neg_spans, &out->neg, &out->n_neg) <
            0)
        goto oom;
    if (h->n_custom) {
        out->custom_values = malloc(h->n_custom * sizeof *out->custom_values);
        if (!out->custom_values) goto oom;
        memcpy(out->custom_values, h->custom, h->n_custom * sizeof *out->custom_values);
        out->n_custom_values = h->n_custom;
    }
    return 0;
oom:
    nhist_cleanup(out);
    return -ENOMEM;
}

void promql_fh_set_bucket(promql_fh *h, bool pos, int32_t idx, double count)
{
    promql_fh_bucket **b = pos ? &h->pos : &h->neg;
    size_t *n = pos ? &h->n_pos : &h->n_neg, *cap = pos ? &h->cap_pos : &h->cap_neg;
    size_t lo = 0, hi = *n;
    if (*n && (*b)[*n - 1].idx < idx) {
        lo = *n;
    } else {
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if ((*b)[mid].idx < idx)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < *n && (*b)[lo].idx == idx) {
            (*b)[lo].count = count;
            return;
        }
    }
    *b = mem_grow(*b, sizeof **b, *n + 1, cap);
    memmove(*b + lo + 1, *b + lo, (*n - lo) * sizeof **b);
    (*b)[lo] = (promql_fh_bucket){idx, count};
    (*n)++;
}

static void compact_side(promql_fh_bucket *b, size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if (b[i].count != 0) b[k++] = b[i];
    *n = k;
}

void promql_fh_compact(promql_fh *h)
{
    compact_side(h->pos, &h->n_pos);
    compact_side(h->neg, &h->n_neg);
}

/* Upper bound of exponential bucket idx (positive side). */
static double exp_bound(int32_t idx, int32_t schema)
{
    if (schema < -30) schema = -30; /* outside Prometheus's -4..8: keep the shifts defined */
    if (schema > 30) schema = 30;
    if (schema <= 0) {
        int64_t e = (int64_t)idx * ((int64_t)1 << -schema);
        if (e > 4096) e = 4096; /* ldexp saturates long before */
        if (e < -4096) e = -4096;
        return ldexp(1.0, (int)e);
    }
    int64_t div = (int64_t)1 << schema;
    int64_t q = idx >= 0 ? idx / div : -((-(int64_t)idx + div - 1) / div);
    int64_t r = idx - q * div;
    if (r == 0) return ldexp(1.0, (int)q);
    return ldexp(exp2((double)r / (double)div), (int)q);
}

void promql_fh_bounds(const promql_fh *h, bool pos, int32_t idx, double *lower, double *upper)
{
    if (promql_fh_custom(h)) {
        *lower = idx <= 0 ? -INFINITY
                          : ((size_t)(idx - 1) < h->n_custom ? h->custom[idx - 1] : INFINITY);
        *upper = idx >= 0 && (size_t)idx < h->n_custom ? h->custom[idx] : INFINITY;
        return;
    }
    double lo = exp_bound(idx - 1, h->schema), up = exp_bound(idx, h->schema);
    if (pos) {
        *lower = lo;
        *upper = up;
    } else {
        *lower = -up;
        *upper = -lo;
    }
}

static int32_t target_idx(int32_t idx, int32_t from, int32_t to)
{
    int32_t d = from - to;
    if (d > 31) d = 31;
    return ((idx - 1) >> d) + 1; /* arithmetic shift: floor division by 2^d */
}

static void reduce_side(promql_fh_bucket *b, size_t *n, int32_t from, int32_t to)
{
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        int32_t t = target_idx(b[i].idx, from, to);
        if (k && b[k - 1].idx == t)
            b[k - 1].count += b[i].count;
        else
            b[k++] = (promql_fh_bucket){t, b[i].count};
    }
    *n = k;
}

void promql_fh_reduce_resolution(promql_fh *h, int32_t schema)
{
    if (promql_fh_custom(h) || schema >= h->schema) return;
    reduce_side(h->pos, &h->n_pos, h->schema, schema);
    reduce_side(h->neg, &h->n_neg, h->schema, schema);
    h->schema = schema;
}

/* zeroCountForLargerThreshold: the zero count h would have with a zero
 * threshold of at least thr, and the threshold actually needed (widened to
 * the upper bound of a populated bucket that straddles it). */
static double zero_count_for(const promql_fh *h, double thr, double *out_thr)
{
    if (thr == h->zero_threshold) {
        *out_thr = thr;
        return h->zero_count;
    }
    for (;;) {
        double zc = h->zero_count;
        bool again = false;
        for (size_t i = 0; i < h->n_pos; i++) {
            double lo, up;
            promql_fh_bounds(h, true, h->pos[i].idx, &lo, &up);
            if (lo >= thr) break;
            zc += h->pos[i].count;
            if (up > thr) {
                if (h->pos[i].count != 0) thr = up;
                break;
            }
        }
        for (size_t i = 0; i < h->n_neg; i++) {
            double lo, up;
            promql_fh_bounds(h, false, h->neg[i].idx, &lo, &up);
            if (up <= -thr) break;
            zc += h->neg[i].count;
            if (lo < -thr) {
                if (h->neg[i].count != 0) {
                    thr = -lo;
                    again = true;
                }
                break;
            }
        }
        if (!again) {
            *out_thr = thr;
            return zc;
        }
    }
}

/* Drops the buckets that now lie inside the zero bucket. */
static void trim_in_zero(promql_fh *h)
{
    size_t k = 0;
    for (size_t i = 0; i < h->n_pos; i++) {
        double lo, up;
        promql_fh_bounds(h, true, h->pos[i].idx, &lo, &up);
        if (lo >= h->zero_threshold) h->pos[k++] = h->pos[i];
    }
    h->n_pos = k;
    k = 0;
    for (size_t i = 0; i < h->n_neg; i++) {
        double lo, up;
        promql_fh_bounds(h, false, h->neg[i].idx, &lo, &up);
        if (up <= -h->zero_threshold) h->neg[k++] = h->neg[i];
    }
    h->n_neg = k;
}

/* reconcileZeroBuckets: widens h's zero bucket to cover o's, returns o's
 * zero count at the common threshold. */
static double reconcile_zero(promql_fh *h, const promql_fh *o)
{
    double ozc = o->zero_count, othr = o->zero_threshold;
    while (othr != h->zero_threshold) {
        if (h->zero_threshold > othr) ozc = zero_count_for(o, h->zero_threshold, &othr);
        if (othr > h->zero_threshold) {
            double thr;
            h->zero_count = zero_count_for(h, othr, &thr);
            h->zero_threshold = thr;
            trim_in_zero(h);
        }
    }
    return ozc;
}

static bool adjust_hint(promql_fh *h, const promql_fh *o)
{
    if (o->hint == h->hint || h->hint == PROMQL_FH_GAUGE) return false;
    if (o->hint == PROMQL_FH_GAUGE) {
        h->hint = PROMQL_FH_GAUGE;
        return false;
    }
    if (h->hint == PROMQL_FH_UNKNOWN) return false;
    if (o->hint == PROMQL_FH_UNKNOWN) {
        h->hint = PROMQL_FH_UNKNOWN;
        return false;
    }
    h->hint = PROMQL_FH_UNKNOWN;
    return true;
}

static bool bounds_match(const double *a, size_t na, const double *b, size_t nb)
{
    if (na != nb) return false;
    for (size_t i = 0; i < na; i++)
        if (a[i] != b[i]) return false;
    return true;
}

/* Index in the bounds `to` (n_to of them) of the bucket that holds custom
 * bucket idx of the bounds `from`: the first bound >= its upper bound. */
static int32_t map_custom(const double *from, size_t n_from, int32_t idx, const double *to,
                          size_t n_to)
{
    double up = idx >= 0 && (size_t)idx < n_from ? from[idx] : INFINITY;
    size_t k = 0;
    while (k < n_to && to[k] < up)
        k++;
    return (int32_t)k;
}

static void add_side(promql_fh *h, bool pos, const promql_fh_bucket *b, size_t n, int32_t from,
                     double sign, bool skip_zero)
{
    const promql_fh_bucket *cur = pos ? h->pos : h->neg;
    (void)cur;
    for (size_t i = 0; i < n; i++) {
        int32_t idx = from > h->schema && !promql_fh_custom(h)
                          ? target_idx(b[i].idx, from, h->schema)
                          : b[i].idx;
        if (skip_zero && exp_bound(idx, h->schema) <= h->zero_threshold) continue;
        promql_fh_bucket *arr = pos ? h->pos : h->neg;
        size_t na = pos ? h->n_pos : h->n_neg;
        double have = 0;
        for (size_t k = 0; k < na; k++) /* small lists: a scan is fine */
            if (arr[k].idx == idx) {
                have = arr[k].count;
                break;
            }
        promql_fh_set_bucket(h, pos, idx, have + sign * b[i].count);
    }
}

int promql_fh_add(promql_fh *h, const promql_fh *o, bool sub, bool *collision, bool *reconciled)
{
    if (promql_fh_custom(h) != promql_fh_custom(o)) return -EINVAL;
    bool coll = adjust_hint(h, o);
    if (collision) *collision = coll;
    if (reconciled) *reconciled = false;
    double sign = sub ? -1 : 1;
    h->count += sign * o->count;
    h->sum += sign * o->sum;
    if (promql_fh_custom(h)) {
        if (bounds_match(h->custom, h->n_custom, o->custom, o->n_custom)) {
            add_side(h, true, o->pos, o->n_pos, h->schema, sign, false);
            return 0;
        }
        if (reconciled) *reconciled = true;
        double *inter = mem_malloc((h->n_custom + 1) * sizeof *inter);
        size_t ni = 0;
        for (size_t i = 0, j = 0; i < h->n_custom && j < o->n_custom;) {
            if (h->custom[i] == o->custom[j]) {
                inter[ni++] = h->custom[i];
                i++;
                j++;
            } else if (h->custom[i] < o->custom[j]) {
                i++;
            } else {
                j++;
            }
        }
        promql_fh *r = promql_fh_new();
        for (size_t i = 0; i < h->n_pos; i++) {
            int32_t t = map_custom(h->custom, h->n_custom, h->pos[i].idx, inter, ni);
            promql_fh_bucket one = {t, h->pos[i].count};
            add_side(r, true, &one, 1, h->schema, 1, false);
        }
        for (size_t i = 0; i < o->n_pos; i++) {
            int32_t t = map_custom(o->custom, o->n_custom, o->pos[i].idx, inter, ni);
            promql_fh_bucket one = {t, o->pos[i].count};
            add_side(r, true, &one, 1, h->schema, sign, false);
        }
        mem_free(h->pos);
        mem_free(h->custom);
        h->pos = r->pos;
        h->n_pos = r->n_pos;
        h->cap_pos = r->cap_pos;
        h->custom = inter;
        h->n_custom = ni;
        r->pos = NULL;
        promql_fh_free(r);
        return 0;
    }
    double ozc = reconcile_zero(h, o);
    h->zero_count += sign * ozc;
    int32_t from = o->schema;
    if (o->schema < h->schema) promql_fh_reduce_resolution(h, o->schema);
    add_side(h, true, o->pos, o->n_pos, from, sign, true);
    add_side(h, false, o->neg, o->n_neg, from, sign, true);
    return 0;
}

void promql_fh_scale(promql_fh *h, double f, bool div)
{
    if (div && f == 0) { /* FloatHistogram.Div: division by zero drops the buckets */
        h->count /= f;
        h->sum /= f;
        h->zero_count /= f;
        h->n_pos = h->n_neg = 0;
        return;
    }
#define SC(x) ((x) = div ? (x) / f : (x)*f)
    SC(h->count);
    SC(h->sum);
    SC(h->zero_count);
    for (size_t i = 0; i < h->n_pos; i++)
        SC(h->pos[i].count);
    for (size_t i = 0; i < h->n_neg; i++)
        SC(h->neg[i].count);
#undef SC
}

static bool same_float(double a, double b)
{
    return a == b || (isnan(a) && isnan(b));
}

static bool side_equal(const promql_fh_bucket *a, size_t na, const promql_fh_bucket *b, size_t nb)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < na && a[i].count == 0)
            i++;
        while (j < nb && b[j].count == 0)
            j++;
        if (i == na || j == nb) return i == na && j == nb;
        if (a[i].idx != b[j].idx || !same_float(a[i].count, b[j].count)) return false;
        i++;
        j++;
    }
}

bool promql_fh_equal(const promql_fh *a, const promql_fh *b)
{
    if (a->schema != b->schema || !same_float(a->count, b->count) || !same_float(a->sum, b->sum))
        return false;
    if (promql_fh_custom(a) && !bounds_match(a->custom, a->n_custom, b->custom, b->n_custom))
        return false;
    if (a->zero_threshold != b->zero_threshold || !same_float(a->zero_count, b->zero_count))
        return false;
    return side_equal(a->pos, a->n_pos, b->pos, b->n_pos) &&
           side_equal(a->neg, a->n_neg, b->neg, b->n_neg);
}

/* detectReset over one side: cur's buckets (at schema cs) against prev's
 * buckets mapped to cs, ignoring buckets inside the zero threshold. */
static bool side_reset(const promql_fh *cur, const promql_fh *prev, bool pos)
{
    const promql_fh_bucket *pb = pos ? prev->pos : prev->neg;
    size_t pn = pos ? prev->n_pos : prev->n_neg;
    /* prev mapped to cur's schema, skipping buckets within the threshold */
    promql_fh *m = promql_fh_new();
    m->schema = cur->schema;
    m->n_custom = 0;
    for (size_t i = 0; i < pn; i++) {
        int32_t idx =
            promql_fh_custom(cur) ? pb[i].idx : target_idx(pb[i].idx, prev->schema, cur->schema);
        if (!promql_fh_custom(cur) && exp_bound(idx, cur->schema) <= cur->zero_threshold) continue;
        double have = 0;
        for (size_t k = 0; k < m->n_pos; k++)
            if (m->pos[k].idx == idx) have = m->pos[k].count;
        promql_fh_set_bucket(m, true, idx, have + pb[i].count);
    }
    const promql_fh_bucket *cb = pos ? cur->pos : cur->neg;
    size_t cn = pos ? cur->n_pos : cur->n_neg;
    bool reset = false;
    size_t j = 0;
    for (size_t i = 0; i < m->n_pos && !reset; i++) {
        while (j < cn && cb[j].idx < m->pos[i].idx)
            j++;
        if (!promql_fh_custom(cur) && j < cn &&
            exp_bound(cb[j].idx, cur->schema) <= cur->zero_threshold) {
            /* cur buckets inside its zero bucket are not iterated */
        }
        if (j == cn || cb[j].idx > m->pos[i].idx) {
            if (m->pos[i].count != 0) reset = true;
        } else if (cb[j].count < m->pos[i].count) {
            reset = true;
        }
    }
    promql_fh_free(m);
    return reset;
}

/* detectResetWithMismatchedCustomBounds: both mapped to the common bounds. */
static bool custom_mismatch_reset(const promql_fh *h, const promql_fh *prev)
{
    promql_fh *a = promql_fh_copy(h), *b = promql_fh_copy(prev);
    promql_fh_scale(b, 0, false);
    promql_fh_add(b, prev, false, NULL, NULL); /* b: prev at the intersection of b with itself */
    promql_fh *zero = promql_fh_copy(prev);
    promql_fh_scale(zero, 0, false);
    promql_fh_add(a, zero, false, NULL, NULL); /* a: h at the intersection of both bounds */
    promql_fh *z2 = promql_fh_copy(h);
    promql_fh_scale(z2, 0, false);
    promql_fh_add(b, z2, false, NULL, NULL); /* b: prev at the same intersection */
    a->hint = b->hint = PROMQL_FH_UNKNOWN;
    bool r = side_reset(a, b, true);
    promql_fh_free(a);
    promql_fh_free(b);
    promql_fh_free(zero);
    promql_fh_free(z2);
    return r;
}

bool promql_fh_detect_reset(const promql_fh *h, const promql_fh *prev)
{
    if (h->hint == PROMQL_FH_RESET) return true;
    if (h->hint == PROMQL_FH_NOT_RESET) return false;
    if (h->count < prev->count) return true;
    if (promql_fh_custom(h) || promql_fh_custom(prev)) {
        if (!promql_fh_custom(h) || !promql_fh_custom(prev)) return true;
        if (!bounds_match(h->custom, h->n_custom, prev->custom, prev->n_custom))
            return custom_mismatch_reset(h, prev);
        return side_reset(h, prev, true);
    }
    if (h->schema > prev->schema) return true;
    if (h->zero_threshold < prev->zero_threshold) return true;
    double thr;
    double pzc = zero_count_for(prev, h->zero_threshold, &thr);
    if (thr != h->zero_threshold) return true;
    if (h->zero_count < pzc) return true;
    return side_reset(h, prev, true) || side_reset(h, prev, false);
}

static void fmt_side(const promql_fh_bucket *b, size_t n, const char *bkey, const char *okey,
                     bool *first, buf *out)
{
    size_t lo = 0, hi = n;
    while (lo < hi && b[lo].count == 0)
        lo++;
    while (hi > lo && b[hi - 1].count == 0)
        hi--;
    if (lo == hi) return;
    if (b[lo].idx != 0) {
        buf_printf(out, "%s%s:%d", *first ? "" : " ", okey, (int)b[lo].idx);
        *first = false;
    }
    buf_printf(out, "%s%s:[", *first ? "" : " ", bkey);
    *first = false;
    for (size_t i = lo; i < hi; i++) {
        if (i > lo) {
            for (int32_t k = b[i - 1].idx + 1; k < b[i].idx; k++)
                buf_puts(out, " 0");
            buf_putc(out, ' ');
        }
        promql_format_float_g(b[i].count, out);
    }
    buf_putc(out, ']');
}

static void fmt_field(const char *key, double v, bool *first, buf *out)
{
    if (v == 0) return;
    buf_printf(out, "%s%s:", *first ? "" : " ", key);
    promql_format_float_g(v, out);
    *first = false;
}

void promql_fh_format(const promql_fh *h, buf *out)
{
    bool first = true;
    buf_puts(out, "{{");
    if (h->schema != 0) {
        buf_printf(out, "schema:%d", (int)h->schema);
        first = false;
    }
    fmt_field("count", h->count, &first, out);
    fmt_field("sum", h->sum, &first, out);
    fmt_field("z_bucket", h->zero_count, &first, out);
    fmt_field("z_bucket_w", h->zero_threshold, &first, out);
    if (promql_fh_custom(h)) {
        buf_printf(out, "%scustom_values:[", first ? "" : " ");
        first = false;
        for (size_t i = 0; i < h->n_custom; i++) {
            if (i) buf_putc(out, ' ');
            promql_format_float_g(h->custom[i], out);
        }
        buf_putc(out, ']');
    }
    static const char *const hints[] = {NULL, "reset", "not_reset", "gauge"};
    if (h->hint != PROMQL_FH_UNKNOWN) {
        buf_printf(out, "%scounter_reset_hint:%s", first ? "" : " ", hints[h->hint]);
        first = false;
    }
    fmt_side(h->pos, h->n_pos, "buckets", "offset", &first, out);
    fmt_side(h->neg, h->n_neg, "n_buckets", "n_offset", &first, out);
    buf_puts(out, "}}");
}

void promql_fh_iter_init(promql_fh_iter *it, const promql_fh *h)
{
    memset(it, 0, sizeof *it);
    it->h = h;
    it->i = h->n_neg;
}

bool promql_fh_iter_next(promql_fh_iter *it)
{
    const promql_fh *h = it->h;
    for (;;) {
        switch (it->stage) {
        case 0:
            if (it->i > 0) {
                it->i--;
                promql_fh_bounds(h, false, h->neg[it->i].idx, &it->lower, &it->upper);
                it->count = h->neg[it->i].count;
                it->kind = -1;
                return true;
            }
            it->stage = 1;
            break;
        case 1:
            it->stage = 2;
            it->i = 0;
            if (!promql_fh_custom(h) && (h->zero_count != 0 || h->zero_threshold != 0)) {
                it->lower = -h->zero_threshold;
                it->upper = h->zero_threshold;
                it->count = h->zero_count;
                it->kind = 0;
                return true;
            }
            break;
        case 2:
            if (it->i < h->n_pos) {
                promql_fh_bounds(h, true, h->pos[it->i].idx, &it->lower, &it->upper);
                it->count = h->pos[it->i].count;
                it->kind = 1;
                it->i++;
                return true;
            }
            it->stage = 3;
            break;
        default:
            return false;
        }
    }
}

/* ---- TrimBuckets (the </ and >/ operators) ---- */

static double zero_if_inf(double x)
{
    return isinf(x) ? 0 : x;
}

static double trim_midpoint(double lo, double up, bool positive, bool linear)
{
    if (isinf(lo)) {
        if (isinf(up)) return 0;
        return up > 0 ? up / 2 : up;
    }
    if (isinf(up)) return lo;
    if (linear) return (lo + up) / 2;
    double g = sqrt(fabs(lo * up));
    return positive ? g : -g;
}

static double fraction_below(double lo, double up, double v, bool linear)
{
    if (linear) return (v - lo) / (up - lo);
    double ll = log2(fabs(lo)), lu = log2(fabs(up)), lv = log2(fabs(v));
    if (v > 0) return (lv - ll) / (lu - ll);
    return 1 - ((lv - lu) / (ll - lu));
}

/* handleInfinityBuckets / computeBucketTrim: the count kept of a bucket cut
 * at rhs and the midpoint of what is kept. */
static void bucket_trim(double lo, double up, double count, double rhs, bool upper_trim,
                        bool positive, bool custom, double *keep, double *mid)
{
    if (isinf(lo) && lo < 0) {
        if (upper_trim) {
            if (rhs >= up) {
                *keep = count;
                *mid = 0;
            } else if (rhs > 0 && up > 0 && !isinf(up)) {
                *keep = count * rhs / up;
                *mid = rhs / 2;
            } else if (up <= 0) {
                *keep = count;
                *mid = rhs;
            } else {
                *keep = 0;
                *mid = zero_if_inf(up);
            }
            return;
        }
        if (rhs <= lo) {
            *keep = count;
            *mid = 0;
        } else if (rhs >= 0 && up > rhs && !isinf(up)) {
            *keep = count * (1 - rhs / up);
            *mid = (rhs + up) / 2;
        } else {
            *keep = 0;
            *mid = zero_if_inf(up);
        }
        return;
    }
    if (isinf(up) && up > 0) {
        if (upper_trim) {
            *keep = 0;
            *mid = zero_if_inf(lo);
        } else if (rhs >= lo) {
            *keep = count;
            *mid = rhs;
        } else {
            *keep = 0;
            *mid = zero_if_inf(lo);
        }
        return;
    }
    double under = rhs <= lo ? 0 : rhs >= up ? count : count * fraction_below(lo, up, rhs, custom);
    if (upper_trim) {
        *keep = under;
        *mid = trim_midpoint(lo, rhs, positive, custom);
    } else {
        *keep = count - under;
        *mid = trim_midpoint(rhs, up, positive, custom);
    }
}

static void trim_side(promql_fh *h, bool pos, double rhs, bool upper_trim, double *cnt, double *sum,
                      bool *trimmed, bool *has)
{
    promql_fh_bucket *b = pos ? h->pos : h->neg;
    size_t n = pos ? h->n_pos : h->n_neg;
    bool custom = promql_fh_custom(h);
    for (size_t i = 0; i < n; i++) {
        if (b[i].count == 0) continue;
        *has = true;
        double lo, up;
        promql_fh_bounds(h, pos, b[i].idx, &lo, &up);
        bool whole = upper_trim ? up <= rhs : lo >= rhs;
        bool part = upper_trim ? lo < rhs : up > rhs;
        if (whole) {
            *cnt += b[i].count;
            *sum += trim_midpoint(lo, up, pos, custom) * b[i].count;
        } else if (part) {
            double keep, mid;
            bucket_trim(lo, up, b[i].count, rhs, upper_trim, pos, custom, &keep, &mid);
            *cnt += keep;
            *sum += mid * keep;
            if (b[i].count != keep) {
                b[i].count = keep;
                *trimmed = true;
            }
        } else {
            b[i].count = 0;
            *trimmed = true;
        }
    }
}

void promql_fh_trim(promql_fh *h, double rhs, bool upper_trim)
{
    double cnt = 0, sum = 0;
    bool trimmed = false, has_pos = false, has_neg = false;
    trim_side(h, true, rhs, upper_trim, &cnt, &sum, &trimmed, &has_pos);
    trim_side(h, false, rhs, upper_trim, &cnt, &sum, &trimmed, &has_neg);
    if (h->zero_count > 0) {
        double lo = -h->zero_threshold, up = h->zero_threshold, keep, mid;
        if (has_neg && !has_pos) up = 0;
        if (has_pos && !has_neg) lo = 0;
        if (upper_trim) {
            if (rhs <= lo) {
                keep = 0;
                mid = 0;
            } else if (rhs >= up) {
                keep = h->zero_count;
                mid = (lo + up) / 2;
            } else {
                keep = h->zero_count * (rhs - lo) / (up - lo);
                mid = (lo + rhs) / 2;
            }
        } else {
            if (rhs <= lo) {
                keep = h->zero_count;
                mid = (lo + up) / 2;
            } else if (rhs >= up) {
                keep = 0;
                mid = 0;
            } else {
                keep = h->zero_count * (up - rhs) / (up - lo);
                mid = (rhs + up) / 2;
            }
        }
        if (h->zero_count != keep) {
            h->zero_count = keep;
            trimmed = true;
        }
        sum += mid * keep;
        cnt += keep;
    }
    if (trimmed) {
        h->count = cnt;
        h->sum = sum;
        promql_fh_compact(h);
    }
}

/* ---- Kahan summation ---- */

static void kahan_inc(double inc, double *sum, double *c)
{
    double t = *sum + inc;
    if (isinf(t))
        *c = 0;
    else if (fabs(*sum) >= fabs(inc))
        *c += (*sum - t) + inc;
    else
        *c += (inc - t) + *sum;
    *sum = t;
}

static double bucket_get(const promql_fh *h, bool pos, int32_t idx)
{
    const promql_fh_bucket *b = pos ? h->pos : h->neg;
    size_t n = pos ? h->n_pos : h->n_neg;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b[mid].idx < idx)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && b[lo].idx == idx ? b[lo].count : 0;
}

int promql_fh_kahan_add(promql_fh *h, const promql_fh *o, promql_fh *c, bool *collision,
                        bool *reconciled)
{
    if (promql_fh_custom(h) != promql_fh_custom(o)) return -EINVAL;
    bool same_layout =
        h->zero_threshold == o->zero_threshold && c->zero_threshold == h->zero_threshold &&
        (!promql_fh_custom(h) || bounds_match(h->custom, h->n_custom, o->custom, o->n_custom));
    if (!same_layout) return promql_fh_add(h, o, false, collision, reconciled);
    if (reconciled) *reconciled = false;
    bool coll = adjust_hint(h, o);
    if (collision) *collision = coll;
    kahan_inc(o->count, &h->count, &c->count);
    kahan_inc(o->sum, &h->sum, &c->sum);
    kahan_inc(o->zero_count, &h->zero_count, &c->zero_count);
    if (!promql_fh_custom(h) && o->schema < h->schema) {
        promql_fh_reduce_resolution(h, o->schema);
        promql_fh_reduce_resolution(c, o->schema);
    }
    for (int side = 0; side < 2; side++) {
        bool pos = side == 0;
        const promql_fh_bucket *b = pos ? o->pos : o->neg;
        size_t n = pos ? o->n_pos : o->n_neg;
        for (size_t i = 0; i < n; i++) {
            int32_t idx = !promql_fh_custom(h) && o->schema > h->schema
                              ? target_idx(b[i].idx, o->schema, h->schema)
                              : b[i].idx;
            double sum = bucket_get(h, pos, idx), comp = bucket_get(c, pos, idx);
            kahan_inc(b[i].count, &sum, &comp);
            promql_fh_set_bucket(h, pos, idx, sum);
            promql_fh_set_bucket(c, pos, idx, comp);
        }
    }
    return 0;
}

promql_fh *promql_fh_kahan_new(const promql_fh *h)
{
    promql_fh *c = promql_fh_new();
    c->schema = h->schema;
    c->zero_threshold = h->zero_threshold;
    return c;
}

void promql_fh_kahan_finish(promql_fh *h, const promql_fh *c)
{
#define FIN(x, y) ((x) = isinf(x) ? (x) : (x) + (y))
    FIN(h->count, c->count);
    FIN(h->sum, c->sum);
    FIN(h->zero_count, c->zero_count);
    for (int side = 0; side < 2; side++) {
        bool pos = side == 0;
        const promql_fh_bucket *b = pos ? c->pos : c->neg;
        size_t n = pos ? c->n_pos : c->n_neg;
        for (size_t i = 0; i < n; i++) {
            if (b[i].count == 0) continue;
            double v = bucket_get(h, pos, b[i].idx);
            promql_fh_set_bucket(h, pos, b[i].idx, FIN(v, b[i].count));
        }
    }
#undef FIN
}

static void fmt_bucket(buf *out, bool lower_incl, double lo, double up, bool upper_incl,
                       double count)
{
    buf_puts(out, ", ");
    buf_putc(out, lower_incl ? '[' : '(');
    promql_format_float_g(lo, out);
    buf_putc(out, ',');
    promql_format_float_g(up, out);
    buf_putc(out, upper_incl ? ']' : ')');
    buf_putc(out, ':');
    promql_format_float_g(count, out);
}

void promql_fh_string(const promql_fh *h, buf *out)
{
    buf_puts(out, "{count:");
    promql_format_float_g(h->count, out);
    buf_puts(out, ", sum:");
    promql_format_float_g(h->sum, out);
    for (size_t i = h->n_neg; i-- > 0;) {
        if (h->neg[i].count == 0) continue;
        double lo, up;
        promql_fh_bounds(h, false, h->neg[i].idx, &lo, &up);
        fmt_bucket(out, true, lo, up, false, h->neg[i].count);
    }
    if (h->zero_count != 0)
        fmt_bucket(out, true, -h->zero_threshold, h->zero_threshold, true, h->zero_count);
    for (size_t i = 0; i < h->n_pos; i++) {
        if (h->pos[i].count == 0) continue;
        double lo, up;
        promql_fh_bounds(h, true, h->pos[i].idx, &lo, &up);
        fmt_bucket(out, false, lo, up, true, h->pos[i].count);
    }
    buf_putc(out, '}');
}
