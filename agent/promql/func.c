/* promql/func: PromQL functions over float samples, with Prometheus 3.x's
 * semantics (functions.go, quantile.go), and the numeric helpers they share
 * with the engine. */
#include "promql/func.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "expfmt.h"
#include "mem.h"
#include "promql/sort.h"
#include "strutil.h"

/* ---- numeric helpers ------------------------------------------------------ */

/* Go's math.Max / math.Min: infinities win over NaN, NaN wins over numbers,
 * and signed zeros are ordered. */
static double go_max(double x, double y)
{
    if (isinf(x) && x > 0) return x;
    if (isinf(y) && y > 0) return y;
    if (isnan(x) || isnan(y)) return NAN;
    if (x == 0 && x == y) return signbit(x) ? y : x;
    return x > y ? x : y;
}

static double go_min(double x, double y)
{
    if (isinf(x) && x < 0) return x;
    if (isinf(y) && y < 0) return y;
    if (isnan(x) || isnan(y)) return NAN;
    if (x == 0 && x == y) return signbit(x) ? x : y;
    return x < y ? x : y;
}

/* Go's math.Pow: integral exponents by repeated squaring of the mantissa
 * (so x^3 rounds as in Go, not as a correctly rounded pow()), the
 * fractional part through exp(yf * log(x)). */
double promql_pow(double x, double y)
{
    if (y == 0 || x == 1) return 1;
    if (y == 1) return x;
    if (isnan(x) || isnan(y)) return NAN;
    if (x == 0) {
        /* isOddInt */
        bool odd = false;
        if (fabs(y) < 9007199254740992.0) {
            double yi0, yf0 = modf(y, &yi0);
            odd = yf0 == 0 && ((int64_t)yi0 & 1) == 1;
        }
        if (y < 0) return signbit(x) && odd ? -INFINITY : INFINITY;
        if (y > 0) return signbit(x) && odd ? x : 0;
    }
    if (isinf(y)) {
        if (x == -1) return 1;
        if ((fabs(x) < 1) == (y > 0)) return 0;
        return INFINITY;
    }
    if (isinf(x)) {
        if (x < 0) return promql_pow(1 / x, -y); /* Pow(-0, -y) */
        return y < 0 ? 0 : INFINITY;
    }
    if (y == 0.5) return sqrt(x);
    if (y == -0.5) return 1 / sqrt(x);
    double yi, yf = modf(fabs(y), &yi);
    if (yf != 0 && x < 0) return NAN;
    if (yi >= 9223372036854775808.0) {
        /* a large even integer: overflow or underflow except for -1 */
        if (x == -1) return 1;
        if ((fabs(x) < 1) == (y > 0)) return 0;
        return INFINITY;
    }
    double a1 = 1.0;
    int64_t ae = 0;
    if (yf != 0) {
        if (yf > 0.5) {
            yf--;
            yi++;
        }
        a1 = exp(yf * log(x));
    }
    int xe;
    double x1 = frexp(x, &xe);
    int64_t xe64 = xe;
    for (int64_t i = (int64_t)yi; i != 0; i >>= 1) {
        if (xe64 < -(1 << 12) || (1 << 12) < xe64) {
            ae += xe64;
            break;
        }
        if (i & 1) {
            a1 *= x1;
            ae += xe64;
        }
        x1 *= x1;
        xe64 *= 2;
        if (x1 < .5) {
            x1 += x1;
            xe64--;
        }
    }
    if (y < 0) {
        a1 = 1 / a1;
        ae = -ae;
    }
    if (ae > 1 << 20) ae = 1 << 20;
    if (ae < -(1 << 20)) ae = -(1 << 20);
    return ldexp(a1, (int)ae);
}

/* Sorting of plain values: NaN is smaller than everything (Prometheus's
 * vectorByValueHeap order). Any correct sort gives the same array. */
static int cmp_nan_first(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    bool na = isnan(a), nb = isnan(b);
    if (na || nb) return na && nb ? 0 : na ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
}

double promql_quantile(double q, double *vals, size_t n)
{
    if (n == 0 || isnan(q)) return NAN;
    if (q < 0) return -INFINITY;
    if (q > 1) return INFINITY;
    qsort(vals, n, sizeof *vals, cmp_nan_first);
    double fn = (double)n;
    double rank = q * (fn - 1);
    double lower = fmax(0, floor(rank));
    double upper = fmin(fn - 1, lower + 1);
    double weight = rank - floor(rank);
    return vals[(size_t)lower] * (1 - weight) + vals[(size_t)upper] * weight;
}

/* Shortest decimal digits of f that round-trip: digits[] (no dot), the
 * count, and the decimal exponent `dp` (value = 0.digits * 10^dp). */
static int shortest_digits(double f, char *digits, int *dp)
{
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f || prec == 17) break;
    }
    /* tmp: d.ddde[+-]xx */
    int nd = 0;
    const char *p = tmp;
    if (*p == '-') p++;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    int e = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    *dp = e + 1;
    return nd;
}

void promql_format_float_f(double f, buf *out)
{
    if (isnan(f)) {
        buf_puts(out, "NaN");
        return;
    }
    if (isinf(f)) {
        buf_puts(out, f > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (f == 0) {
        buf_puts(out, signbit(f) ? "-0" : "0");
        return;
    }
    char d[32];
    int dp;
    int nd = shortest_digits(f, d, &dp);
    if (f < 0) buf_putc(out, '-');
    if (dp <= 0) {
        buf_puts(out, "0.");
        for (int i = 0; i < -dp; i++)
            buf_putc(out, '0');
        buf_append(out, d, (size_t)nd);
    } else if (dp >= nd) {
        buf_append(out, d, (size_t)nd);
        for (int i = nd; i < dp; i++)
            buf_putc(out, '0');
    } else {
        buf_append(out, d, (size_t)dp);
        buf_putc(out, '.');
        buf_append(out, d + dp, (size_t)(nd - dp));
    }
}

void promql_format_float_g(double f, buf *out)
{
    char tmp[EXPFMT_FLOAT_MAX];
    expfmt_format_float(f, tmp);
    buf_puts(out, tmp);
}

const promql_node *promql_unparen(const promql_node *n)
{
    while (n && n->kind == PROMQL_NODE_PAREN)
        n = n->paren.expr;
    return n;
}

/* ---- vectors and label caches ---------------------------------------------- */

/* XXH64 of no bytes: the hash labels.c gives a built empty set. */
static const labels empty_set = {0, sizeof(labels), 0xef46db3751d8e999ULL};

const labels *promql_empty_labels(void)
{
    return &empty_set;
}

void promql_evec_push(promql_evec *v, const labels *metric, double f, int64_t t, bool drop_name)
{
    if (v->n == v->cap) v->v = mem_grow(v->v, sizeof *v->v, v->n + 1, &v->cap);
    promql_esample *s = &v->v[v->n++];
    s->metric = metric;
    s->f = f;
    s->t = t;
    s->drop_name = drop_name;
    s->h = NULL;
    s->h_owned = false;
}

void promql_evec_push_h(promql_evec *v, const labels *metric, promql_fh *h, bool owned, int64_t t,
                        bool drop_name)
{
    promql_evec_push(v, metric, 0, t, drop_name);
    v->v[v->n - 1].h = h;
    v->v[v->n - 1].h_owned = owned;
}

void promql_evec_reset(promql_evec *v)
{
    for (size_t i = 0; i < v->n; i++) {
        if (v->v[i].h_owned) promql_fh_free(v->v[i].h);
        v->v[i].h = NULL;
        v->v[i].h_owned = false;
    }
    v->n = 0;
}

void promql_evec_free(promql_evec *v)
{
    promql_evec_reset(v);
    mem_free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

void promql_lcache_init(promql_lcache *c)
{
    hmap_init(&c->m);
    c->all = NULL;
    c->n = c->cap = 0;
}

void promql_lcache_cleanup(promql_lcache *c)
{
    for (size_t i = 0; i < c->n; i++)
        labels_free(c->all[i]);
    mem_free(c->all);
    hmap_cleanup(&c->m);
    promql_lcache_init(c);
}

static bool lcache_eq(const void *val, const void *key)
{
    return labels_equal(val, key);
}

const labels *promql_lcache_put(promql_lcache *c, labels *owned)
{
    uint64_t h = labels_hash(owned);
    labels *have = hmap_get(&c->m, h, lcache_eq, owned);
    if (have) {
        labels_free(owned);
        return have;
    }
    hmap_put(&c->m, h, owned);
    c->all = mem_grow(c->all, sizeof *c->all, c->n + 1, &c->cap);
    c->all[c->n++] = owned;
    return owned;
}

static bool is_metadata_label(const label *l)
{
    if (l->name_len == 8 && memcmp(l->name, "__name__", 8) == 0) return true;
    if (l->name_len == 8 && memcmp(l->name, "__type__", 8) == 0) return true;
    if (l->name_len == 8 && memcmp(l->name, "__unit__", 8) == 0) return true;
    return false;
}

const labels *promql_drop_metric_name(promql_lcache *c, const labels *ls)
{
    bool any = false;
    for (uint32_t i = 0; i < ls->n && !any; i++)
        any = is_metadata_label(&ls->v[i]);
    if (!any) return ls;
    labels_builder b;
    labels_builder_init(&b);
    for (uint32_t i = 0; i < ls->n; i++) {
        const label *l = &ls->v[i];
        if (!is_metadata_label(l)) labels_builder_add(&b, l->name, l->name_len, l->value, l->value_len);
    }
    labels *r = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return promql_lcache_put(c, r);
}

static const labels *out_metric(promql_fcall *c, const labels *ls)
{
    return c->delayed_name ? ls : promql_drop_metric_name(c->lcache, ls);
}

static size_t metric_name(const labels *ls, const char **name)
{
    size_t len;
    *name = labels_metric_name(ls, &len);
    return len;
}

/* ---- range functions ---------------------------------------------------------- */

static uint32_t arg_pos(const promql_fcall *c, size_t i)
{
    if (i >= c->call->call.nargs) return c->call->pos.start;
    return promql_unparen(c->call->call.args[i])->pos.start;
}

static double range_secs(const promql_fcall *c)
{
    return (double)c->range_ms / 1000.0;
}

/* Linear interpolation between two points (counter resets start at 0). */
static double interpolate(promql_fpoint p1, promql_fpoint p2, int64_t t, bool counter)
{
    double y1 = p1.v, y2 = p2.v;
    if (counter && y2 < y1) y1 = 0;
    return y1 + (y2 - y1) * (double)(t - p1.t) / (double)(p2.t - p1.t);
}

/* Index of the first point with t > x among pts[0..n) (sort.Search). */
static size_t search_gt(const promql_fpoint *pts, size_t n, int64_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pts[mid].t > x) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

static size_t search_ge(const promql_fpoint *pts, size_t n, int64_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pts[mid].t >= x) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* rate/increase/delta over anchored or smoothed range selectors: the
 * values at the range boundaries are taken (anchored) or interpolated
 * (smoothed) instead of extrapolated. */
static int extended_rate(const promql_fcall *c, double *out, bool counter, bool is_rate)
{
    const promql_fpoint *f = c->pts;
    size_t last = c->n - 1;
    int64_t range_start = c->ts - (c->range_ms + c->offset_ms);
    int64_t range_end = c->ts - c->offset_ms;
    bool smoothed = c->smoothed;
    size_t idx = search_gt(f, last, range_start);
    size_t first = idx > 0 ? idx - 1 : 0;
    if (smoothed) last = search_ge(f, last, range_end);
    if (f[last].t <= range_start) return 0;
    if (smoothed && f[first].t > range_end) return 0;

    double left = (smoothed && f[first].t < range_start)
                      ? interpolate(f[first], f[first + 1], range_start, counter)
                      : f[first].v;
    double right = (smoothed && last > 0 && f[last].t > range_end)
                       ? interpolate(f[last - 1], f[last], range_end, counter)
                       : f[last].v;
    double result = right - left;
    if (counter) {
        size_t a = first, b = last; /* inclusive; b may become a - 1 */
        if (f[a].t <= range_start) a++;
        bool empty = false;
        if (f[b].t >= range_end) {
            if (b == 0) empty = true;
            else b--;
        }
        double corr = 0, prev = left;
        if (!empty) {
            for (size_t i = a; i <= b && i < c->n; i++) {
                if (f[i].v < prev) corr += prev;
                prev = f[i].v;
            }
        }
        if (right < prev) corr += prev;
        result += corr;
    }
    if (is_rate) result /= range_secs(c);
    *out = result;
    return 1;
}

/* Warns (once per window) if a start timestamp of the window overlaps
 * the previous sample. */
static void warn_st_overlap(const promql_fcall *c)
{
    for (size_t i = 1; i < c->n; i++) {
        if (!promql_st_overlap(c->st[i - 1], c->pts[i - 1].t, c->st[i])) continue;
        const char *name;
        size_t nl = metric_name(c->metric, &name);
        buf q;
        buf_init(&q, BUF_UNLIMITED);
        expfmt_quote_go(buf_sink, &q, name, nl);
        promql_anno_add(c->anno, PROMQL_ANNO_WARNING, arg_pos(c, 0),
                        "sample has start time that overlaps with previous sample timestamp for "
                        "metric %s",
                        buf_cstr(&q));
        buf_cleanup(&q);
        return;
    }
}

static int extrapolated_rate(const promql_fcall *c, double *out, bool counter, bool is_rate)
{
    if (c->anchored || c->smoothed) return extended_rate(c, out, counter, is_rate);
    const promql_fpoint *p = c->pts;
    size_t n = c->n;
    int64_t range_start = c->ts - (c->range_ms + c->offset_ms);
    int64_t range_end = c->ts - c->offset_ms;
    /* Start timestamps matter for counters only. One of the first sample
     * that lies inside the range (which is left-open) says that the
     * counter was 0 then: the increase is measured from there instead of
     * being extrapolated to the left, even from a single sample. */
    const int64_t *st = counter ? c->st : NULL;
    bool from_st = st && st[0] != 0 && st[0] > range_start && st[0] < p[0].t;
    if (n < 2 && !from_st) return 0;
    double result = p[n - 1].v - p[0].v;
    if (st) warn_st_overlap(c);
    if (counter && c->resets) {
        /* the same additions in the same order, found without a scan */
        size_t lo = 0, hi = c->nresets, first = c->base + 1, last = c->base + n - 1;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (c->resets[mid] < first) lo = mid + 1;
            else hi = mid;
        }
        for (size_t r = lo; r < c->nresets && c->resets[r] <= last; r++)
            result += p[c->resets[r] - c->base - 1].v;
    } else if (st) {
        for (size_t i = 1; i < n; i++)
            if (p[i].v < p[i - 1].v || promql_st_reset(st[i - 1], p[i - 1].t, st[i], p[i].t))
                result += p[i - 1].v;
    } else if (counter) {
        for (size_t i = 1; i < n; i++)
            if (p[i].v < p[i - 1].v) result += p[i - 1].v;
    }
    int64_t first_t = p[0].t, last_t = p[n - 1].t;
    double to_start = (double)(first_t - range_start) / 1000;
    double to_end = (double)(range_end - last_t) / 1000;
    double sampled = (double)(last_t - first_t) / 1000;
    double avg = n > 1 ? sampled / (double)(n - 1) : 0;
    double threshold = avg * 1.1;
    if (from_st) {
        /* With a single sample avg is 0: no extrapolation to the right. */
        to_start = 0;
        sampled = (double)(last_t - st[0]) / 1000;
        result += p[0].v;
    } else {
        if (to_start >= threshold) to_start = avg / 2;
        if (counter) {
            double to_zero = to_start;
            if (result > 0 && p[0].v >= 0) to_zero = sampled * (p[0].v / result);
            if (to_zero < to_start) to_start = to_zero;
        }
    }
    if (to_end >= threshold) to_end = avg / 2;
    double factor = 1.0;
    if (sampled != 0) factor = (sampled + to_start + to_end) / sampled;
    if (is_rate) factor /= range_secs(c);
    *out = result * factor;
    return 1;
}

static int f_rate(const promql_fcall *c, double *out)
{
    return extrapolated_rate(c, out, true, true);
}

static int f_increase(const promql_fcall *c, double *out)
{
    return extrapolated_rate(c, out, true, false);
}

static int f_delta(const promql_fcall *c, double *out)
{
    return extrapolated_rate(c, out, false, false);
}

static int instant_value(const promql_fcall *c, double *out, bool is_rate)
{
    if (c->n < 2) return 0;
    promql_fpoint a = c->pts[c->n - 2], b = c->pts[c->n - 1];
    int64_t interval = b.t - a.t;
    if (interval == 0) return 0;
    double r = b.v;
    bool reset = b.v < a.v;
    if (is_rate && !reset && c->st)
        reset = promql_st_reset(c->st[c->n - 2], a.t, c->st[c->n - 1], b.t);
    if (!is_rate || !reset) r = b.v - a.v;
    if (is_rate) r /= (double)interval / 1000;
    *out = r;
    return 1;
}

static int f_irate(const promql_fcall *c, double *out)
{
    return instant_value(c, out, true);
}

static int f_idelta(const promql_fcall *c, double *out)
{
    return instant_value(c, out, false);
}

static void linear_regression(const promql_fpoint *s, size_t n, int64_t intercept_t, double *slope,
                              double *intercept)
{
    double cnt = 0, sx = 0, cx = 0, sy = 0, cy = 0, sxy = 0, cxy = 0, sx2 = 0, cx2 = 0;
    double init_y = s[0].v;
    bool const_y = true;
    for (size_t i = 0; i < n; i++) {
        if (const_y && i > 0 && s[i].v != init_y) const_y = false;
        cnt += 1.0;
        double x = (double)(s[i].t - intercept_t) / 1e3;
        promql_kahan_inc(x, &sx, &cx);
        promql_kahan_inc(s[i].v, &sy, &cy);
        promql_kahan_inc(x * s[i].v, &sxy, &cxy);
        promql_kahan_inc(x * x, &sx2, &cx2);
    }
    if (const_y) {
        if (isinf(init_y)) {
            *slope = *intercept = NAN;
        } else {
            *slope = 0;
            *intercept = init_y;
        }
        return;
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    double cov = sxy - sx * sy / cnt;
    double var = sx2 - sx * sx / cnt;
    *slope = cov / var;
    *intercept = sy / cnt - *slope * sx / cnt;
}

static int f_deriv(const promql_fcall *c, double *out)
{
    if (c->n < 2) return 0;
    double slope, icpt;
    linear_regression(c->pts, c->n, c->pts[0].t, &slope, &icpt);
    *out = slope;
    return 1;
}

static int f_predict_linear(const promql_fcall *c, double *out)
{
    if (c->n < 2) return 0;
    double duration = c->sargs[1];
    double slope, icpt;
    linear_regression(c->pts, c->n, c->ts, &slope, &icpt);
    *out = slope * duration + icpt;
    return 1;
}

/* Index of the first point to look at for anchored resets()/changes(): the
 * last one at or before the range start. Returns false if no point is
 * inside the range. */
static bool first_index(const promql_fcall *c, size_t *first)
{
    *first = 0;
    if (!c->anchored) return true;
    int64_t range_start = c->ts - (c->range_ms + c->offset_ms);
    size_t gt = search_gt(c->pts, c->n, range_start);
    if (gt >= c->n) return false;
    if (gt > 0) *first = gt - 1;
    return true;
}

static int f_resets(const promql_fcall *c, double *out)
{
    size_t first;
    if (!first_index(c, &first)) return 0;
    int resets = 0;
    const promql_fpoint *p = c->pts;
    if (c->st) {
        for (size_t i = first + 1; i < c->n; i++)
            if (p[i].v < p[i - 1].v || promql_st_reset(c->st[i - 1], p[i - 1].t, c->st[i], p[i].t))
                resets++;
    } else {
        for (size_t i = first + 1; i < c->n; i++)
            if (p[i].v < p[i - 1].v) resets++;
    }
    *out = resets;
    return 1;
}

static int f_changes(const promql_fcall *c, double *out)
{
    size_t first;
    if (!first_index(c, &first)) return 0;
    int changes = 0;
    for (size_t i = first + 1; i < c->n; i++) {
        double a = c->pts[i - 1].v, b = c->pts[i].v;
        if (a != b && !(isnan(a) && isnan(b))) changes++;
    }
    *out = changes;
    return 1;
}

static int f_avg_over_time(const promql_fcall *c, double *out)
{
    const promql_fpoint *p = c->pts;
    double sum = p[0].v, count = 1, mean = 0, kc = 0;
    bool incremental = false;
    for (size_t i = 1; i < c->n; i++) {
        double f = p[i].v;
        count = (double)(i + 1);
        if (!incremental) {
            double ns = sum, nc = kc;
            promql_kahan_inc(f, &ns, &nc);
            if (!isinf(ns)) {
                sum = ns;
                kc = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1);
            kc /= (count - 1);
        }
        double q = (count - 1) / count;
        double m = q * mean, cc = q * kc;
        promql_kahan_inc(f / count, &m, &cc);
        mean = m;
        kc = cc;
    }
    *out = incremental ? mean + kc : sum / count + kc / count;
    return 1;
}

static int f_sum_over_time(const promql_fcall *c, double *out)
{
    double sum = 0, kc = 0;
    for (size_t i = 0; i < c->n; i++)
        promql_kahan_inc(c->pts[i].v, &sum, &kc);
    *out = isinf(sum) ? sum : sum + kc;
    return 1;
}

static int f_count_over_time(const promql_fcall *c, double *out)
{
    *out = (double)c->n;
    return 1;
}

static int f_present_over_time(const promql_fcall *c, double *out)
{
    (void)c;
    *out = 1;
    return 1;
}

static int f_last_over_time(const promql_fcall *c, double *out)
{
    *out = c->pts[c->n - 1].v;
    return 1;
}

static int f_first_over_time(const promql_fcall *c, double *out)
{
    *out = c->pts[0].v;
    return 1;
}

static int f_ts_of_first_over_time(const promql_fcall *c, double *out)
{
    *out = (double)c->pts[0].t / 1000;
    return 1;
}

static int f_ts_of_last_over_time(const promql_fcall *c, double *out)
{
    *out = (double)c->pts[c->n - 1].t / 1000;
    return 1;
}

enum cmp_kind { CMP_MAX, CMP_MIN, CMP_TS_MAX, CMP_TS_MIN };

static int compare_over_time(const promql_fcall *c, double *out, enum cmp_kind k)
{
    double best = c->pts[0].v;
    int64_t best_t = c->pts[0].t;
    for (size_t i = 0; i < c->n; i++) {
        double cur = c->pts[i].v;
        bool take;
        switch (k) {
        case CMP_MAX: take = cur > best || isnan(best); break;
        case CMP_MIN: take = cur < best || isnan(best); break;
        case CMP_TS_MAX: take = cur >= best || isnan(best); break;
        default: take = cur <= best || isnan(best); break;
        }
        if (take) {
            best = cur;
            best_t = c->pts[i].t;
        }
    }
    *out = (k == CMP_TS_MAX || k == CMP_TS_MIN) ? (double)best_t / 1000 : best;
    return 1;
}

static int f_max_over_time(const promql_fcall *c, double *out)
{
    return compare_over_time(c, out, CMP_MAX);
}

static int f_min_over_time(const promql_fcall *c, double *out)
{
    return compare_over_time(c, out, CMP_MIN);
}

static int f_ts_of_max_over_time(const promql_fcall *c, double *out)
{
    return compare_over_time(c, out, CMP_TS_MAX);
}

static int f_ts_of_min_over_time(const promql_fcall *c, double *out)
{
    return compare_over_time(c, out, CMP_TS_MIN);
}

static int f_quantile_over_time(const promql_fcall *c, double *out)
{
    double q = c->sargs[0];
    if (isnan(q) || q < 0 || q > 1) {
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        promql_format_float_g(q, &b);
        promql_anno_add(c->anno, PROMQL_ANNO_WARNING, arg_pos(c, 0),
                        "quantile value should be between 0 and 1, got %s", buf_cstr(&b));
        buf_cleanup(&b);
    }
    double stackv[64];
    double *v = c->n <= 64 ? stackv : mem_malloc(c->n * sizeof *v);
    for (size_t i = 0; i < c->n; i++)
        v[i] = c->pts[i].v;
    *out = promql_quantile(q, v, c->n);
    if (v != stackv) mem_free(v);
    return 1;
}

static double variance_over_time(const promql_fcall *c)
{
    double count = 0, mean = 0, cmean = 0, aux = 0, caux = 0;
    for (size_t i = 0; i < c->n; i++) {
        double f = c->pts[i].v;
        count++;
        double delta = f - (mean + cmean);
        promql_kahan_inc(delta / count, &mean, &cmean);
        promql_kahan_inc(delta * (f - (mean + cmean)), &aux, &caux);
    }
    return (aux + caux) / count;
}

static int f_stddev_over_time(const promql_fcall *c, double *out)
{
    *out = sqrt(variance_over_time(c));
    return 1;
}

static int f_stdvar_over_time(const promql_fcall *c, double *out)
{
    *out = variance_over_time(c);
    return 1;
}

static int f_mad_over_time(const promql_fcall *c, double *out)
{
    double *v = mem_malloc(c->n * sizeof *v);
    for (size_t i = 0; i < c->n; i++) {
        if (isnan(c->pts[i].v)) {
            mem_free(v);
            *out = NAN;
            return 1;
        }
        v[i] = c->pts[i].v;
    }
    double median = promql_quantile(0.5, v, c->n);
    for (size_t i = 0; i < c->n; i++)
        v[i] = fabs(v[i] - median);
    *out = promql_quantile(0.5, v, c->n);
    mem_free(v);
    return 1;
}

/* Go's %f: like C's, with Go's spellings of NaN and the infinities. */
static void format_go_f(double f, buf *out)
{
    if (isnan(f)) buf_puts(out, "NaN");
    else if (isinf(f)) buf_puts(out, f > 0 ? "+Inf" : "-Inf");
    else buf_printf(out, "%f", f);
}

static int f_double_exponential_smoothing(const promql_fcall *c, double *out)
{
    double sf = c->sargs[1], tf = c->sargs[2];
    if (sf <= 0 || sf >= 1) {
        buf_puts(c->err, "invalid smoothing factor. Expected: 0 < sf < 1, got: ");
        format_go_f(sf, c->err);
        return -EINVAL;
    }
    if (tf <= 0 || tf >= 1) {
        buf_puts(c->err, "invalid trend factor. Expected: 0 < tf < 1, got: ");
        format_go_f(tf, c->err);
        return -EINVAL;
    }
    size_t l = c->n;
    if (l < 2) return 0;
    const promql_fpoint *p = c->pts;
    double s0 = 0, s1 = p[0].v, b = p[1].v - p[0].v;
    for (size_t i = 1; i < l; i++) {
        double x = sf * p[i].v;
        if (i - 1 != 0) b = tf * (s1 - s0) + (1 - tf) * b;
        double y = (1 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    *out = s1;
    return 1;
}

/* absent_over_time: 1 wherever the window has samples; eval.c turns this
 * into the steps where no series had any. */
static int f_absent_over_time(const promql_fcall *c, double *out)
{
    (void)c;
    *out = 1;
    return 1;
}

/* ---- vector functions ---------------------------------------------------------- */

typedef double (*float_fn)(double);

static int simple_float(promql_fcall *c, float_fn fn)
{
    const promql_evec *in = &c->in[0];
    for (size_t i = 0; i < in->n; i++)
        promql_evec_push(c->out, out_metric(c, in->v[i].metric), fn(in->v[i].f), 0, true);
    return 0;
}

static double fn_sgn(double v)
{
    return v < 0 ? -1 : v > 0 ? 1 : v;
}
static double fn_rad(double v)
{
    return v * M_PI / 180;
}
static double fn_deg(double v)
{
    return v * 180 / M_PI;
}

#define SIMPLE(name, expr)                                                                         \
    static int f_##name(promql_fcall *c)                                                           \
    {                                                                                              \
        return simple_float(c, expr);                                                              \
    }
SIMPLE(abs, fabs)
SIMPLE(ceil, ceil)
SIMPLE(floor, floor)
SIMPLE(exp, exp)
SIMPLE(sqrt, sqrt)
SIMPLE(ln, log)
SIMPLE(log2, log2)
SIMPLE(log10, log10)
SIMPLE(sin, sin)
SIMPLE(cos, cos)
SIMPLE(tan, tan)
SIMPLE(asin, asin)
SIMPLE(acos, acos)
SIMPLE(atan, atan)
SIMPLE(sinh, sinh)
SIMPLE(cosh, cosh)
SIMPLE(tanh, tanh)
SIMPLE(asinh, asinh)
SIMPLE(acosh, acosh)
SIMPLE(atanh, atanh)
SIMPLE(sgn, fn_sgn)
SIMPLE(rad, fn_rad)
SIMPLE(deg, fn_deg)

static double scalar_arg(const promql_fcall *c, size_t i)
{
    return i < c->nin && c->in[i].n ? c->in[i].v[0].f : NAN;
}

static int f_round(promql_fcall *c)
{
    double to_nearest = c->nin >= 2 ? scalar_arg(c, 1) : 1;
    double inv = 1.0 / to_nearest;
    const promql_evec *in = &c->in[0];
    for (size_t i = 0; i < in->n; i++) {
        double r = floor(in->v[i].f * inv + 0.5) / inv;
        promql_evec_push(c->out, out_metric(c, in->v[i].metric), r, 0, true);
    }
    return 0;
}

static int clamp(promql_fcall *c, double lo, double hi)
{
    if (hi < lo) return 0;
    const promql_evec *in = &c->in[0];
    for (size_t i = 0; i < in->n; i++) {
        double r = go_max(lo, go_min(hi, in->v[i].f));
        promql_evec_push(c->out, out_metric(c, in->v[i].metric), r, 0, true);
    }
    return 0;
}

static int f_clamp(promql_fcall *c)
{
    return clamp(c, scalar_arg(c, 1), scalar_arg(c, 2));
}

static int f_clamp_max(promql_fcall *c)
{
    return clamp(c, -INFINITY, scalar_arg(c, 1));
}

static int f_clamp_min(promql_fcall *c)
{
    return clamp(c, scalar_arg(c, 1), INFINITY);
}

static int f_max_of(promql_fcall *c)
{
    promql_evec_push(c->out, promql_empty_labels(), go_max(scalar_arg(c, 0), scalar_arg(c, 1)), 0, false);
    return 0;
}

static int f_min_of(promql_fcall *c)
{
    promql_evec_push(c->out, promql_empty_labels(), go_min(scalar_arg(c, 0), scalar_arg(c, 1)), 0, false);
    return 0;
}

static int f_time(promql_fcall *c)
{
    promql_evec_push(c->out, promql_empty_labels(), (double)c->ts / 1000, 0, false);
    return 0;
}

static int f_pi(promql_fcall *c)
{
    promql_evec_push(c->out, promql_empty_labels(), M_PI, 0, false);
    return 0;
}

static int f_vector(promql_fcall *c)
{
    promql_evec_push(c->out, promql_empty_labels(), scalar_arg(c, 0), 0, false);
    return 0;
}

static int f_scalar(promql_fcall *c)
{
    const promql_evec *in = &c->in[0];
    double v = in->n == 1 ? in->v[0].f : NAN;
    promql_evec_push(c->out, promql_empty_labels(), v, 0, false);
    return 0;
}

static int f_timestamp(promql_fcall *c)
{
    const promql_evec *in = &c->in[0];
    for (size_t i = 0; i < in->n; i++)
        promql_evec_push(c->out, out_metric(c, in->v[i].metric), (double)in->v[i].t / 1000, 0,
                         true);
    return 0;
}

static int f_nothing(promql_fcall *c)
{
    (void)c;
    return 0;
}

/* Calendar fields of a Unix time in UTC (proleptic Gregorian), valid for
 * the whole int64 range of days. */
typedef struct civil {
    int64_t year;
    int month, day, hour, minute, wday, yday;
} civil;

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static void civil_from_unix(int64_t secs, civil *c)
{
    int64_t days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    c->hour = (int)(rem / 3600);
    c->minute = (int)(rem % 3600 / 60);
    int64_t wd = (days + 4) % 7; /* 1970-01-01 was a Thursday */
    c->wday = (int)(wd < 0 ? wd + 7 : wd);
    /* Howard Hinnant's days_from_civil inverse. */
    int64_t z = days + 719468;
    int64_t era = floordiv(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) y++;
    c->year = y;
    c->month = (int)m;
    c->day = (int)d;
    static const int cum[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    c->yday = cum[m - 1] + (int)d + (m > 2 && is_leap(y) ? 1 : 0);
}

/* Go's int64(f) on amd64: out-of-range values and NaN give INT64_MIN. */
static int64_t go_int64(double f)
{
    if (isnan(f) || f >= 9223372036854775808.0 || f < -9223372036854775808.0) return INT64_MIN;
    return (int64_t)f;
}

enum date_field { D_DAYS_IN_MONTH, D_DAY_OF_MONTH, D_DAY_OF_WEEK, D_DAY_OF_YEAR, D_HOUR, D_MINUTE, D_MONTH, D_YEAR };

static double date_value(int64_t secs, enum date_field f)
{
    civil c;
    civil_from_unix(secs, &c);
    switch (f) {
    case D_DAYS_IN_MONTH: {
        static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int d = dim[c.month - 1];
        if (c.month == 2 && is_leap(c.year)) d = 29;
        return d;
    }
    case D_DAY_OF_MONTH: return c.day;
    case D_DAY_OF_WEEK: return c.wday;
    case D_DAY_OF_YEAR: return c.yday;
    case D_HOUR: return c.hour;
    case D_MINUTE: return c.minute;
    case D_MONTH: return c.month;
    case D_YEAR: return (double)c.year;
    }
    return NAN;
}

static int date_fn(promql_fcall *c, enum date_field f)
{
    if (c->nin == 0) {
        promql_evec_push(c->out, promql_empty_labels(), date_value(c->ts / 1000, f), 0, false);
        return 0;
    }
    const promql_evec *in = &c->in[0];
    for (size_t i = 0; i < in->n; i++)
        promql_evec_push(c->out, out_metric(c, in->v[i].metric),
                         date_value(go_int64(in->v[i].f), f), 0, true);
    return 0;
}

#define DATE(name, field)                                                                          \
    static int f_##name(promql_fcall *c)                                                           \
    {                                                                                              \
        return date_fn(c, field);                                                                  \
    }
DATE(days_in_month, D_DAYS_IN_MONTH)
DATE(day_of_month, D_DAY_OF_MONTH)
DATE(day_of_week, D_DAY_OF_WEEK)
DATE(day_of_year, D_DAY_OF_YEAR)
DATE(hour, D_HOUR)
DATE(minute, D_MINUTE)
DATE(month, D_MONTH)
DATE(year, D_YEAR)

/* ---- sorting --------------------------------------------------------------------- */

/* Stable sort of samples with a "less" on two samples (promql/sort.h). */
typedef bool (*less_fn)(const promql_esample *a, const promql_esample *b, void *ctx);

typedef struct vsort {
    promql_esample *v;
    less_fn less;
    void *ctx;
} vsort;

static bool vsort_less(void *ctx, size_t i, size_t j)
{
    vsort *x = ctx;
    return x->less(&x->v[i], &x->v[j], x->ctx);
}

static void vsort_swap(void *ctx, size_t i, size_t j)
{
    vsort *x = ctx;
    promql_esample t = x->v[i];
    x->v[i] = x->v[j];
    x->v[j] = t;
}

static void sort_vec(promql_esample *v, size_t n, less_fn less, void *ctx)
{
    vsort x = {v, less, ctx};
    promql_sort_iface d = {&x, vsort_less, vsort_swap};
    promql_sort_stable(&d, n);
}

/* sort(): sort.Reverse(vectorByReverseValueHeap): i before j when j is NaN
 * or i < j. */
static bool less_sort(const promql_esample *a, const promql_esample *b, void *ctx)
{
    (void)ctx;
    return isnan(b->f) || b->f > a->f;
}

/* sort_desc(): sort.Reverse(vectorByValueHeap). */
static bool less_sort_desc(const promql_esample *a, const promql_esample *b, void *ctx)
{
    (void)ctx;
    return isnan(b->f) || b->f < a->f;
}

static int sort_by_value(promql_fcall *c, less_fn less)
{
    const promql_evec *in = &c->in[0];
    if (!in->n) return 0;
    size_t start = c->out->n;
    for (size_t i = 0; i < in->n; i++)
        promql_evec_push(c->out, in->v[i].metric, in->v[i].f, in->v[i].t, in->v[i].drop_name);
    sort_vec(c->out->v + start, c->out->n - start, less, NULL);
    return 0;
}

static int f_sort(promql_fcall *c)
{
    return sort_by_value(c, less_sort);
}

static int f_sort_desc(promql_fcall *c)
{
    return sort_by_value(c, less_sort_desc);
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Splits s into maximal runs of ASCII digits and of other bytes. */
static size_t chunk_end(const char *s, size_t len, size_t i)
{
    bool d = is_digit(s[i]);
    while (i < len && is_digit(s[i]) == d)
        i++;
    return i;
}

/* strconv.Atoi on a run of digits: fails past int64. */
static bool atoi64(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static int cmp_bytes(const char *a, size_t al, const char *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = memcmp(a, b, n);
    if (c) return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

/* facette/natsort's Compare (the version Prometheus pins): a precedes b. */
static bool natsort_less(const char *a, size_t al, const char *b, size_t bl)
{
    size_t ia = 0, ib = 0;
    while (ia < al) {
        if (ib >= bl) return false;
        size_t ea = chunk_end(a, al, ia), eb = chunk_end(b, bl, ib);
        bool a_last = ea >= al, b_last = eb >= bl;
        int64_t x = 0, y = 0;
        bool an = is_digit(a[ia]) && atoi64(a + ia, ea - ia, &x);
        bool bn = is_digit(b[ib]) && atoi64(b + ib, eb - ib, &y);
        if (an && bn) {
            if (x == y) {
                if (a_last) return true;
                if (b_last) return false;
                ia = ea;
                ib = eb;
                continue;
            }
            return x < y;
        }
        int c = cmp_bytes(a + ia, ea - ia, b + ib, eb - ib);
        if (c == 0) {
            if (a_last) return true;
            if (b_last) return false;
            ia = ea;
            ib = eb;
            continue;
        }
        return c < 0;
    }
    return false;
}

typedef struct sbl_ctx {
    const promql_str *names;
    size_t n;
    bool desc;
} sbl_ctx;

static int cmp_by_label(const promql_esample *a, const promql_esample *b, const sbl_ctx *x)
{
    for (size_t i = 0; i < x->n; i++) {
        size_t la, lb;
        const char *va = labels_get(a->metric, x->names[i].p, x->names[i].len, &la);
        const char *vb = labels_get(b->metric, x->names[i].p, x->names[i].len, &lb);
        if (!va) va = "";
        if (!vb) vb = "";
        if (la == lb && memcmp(va, vb, la) == 0) continue;
        if (natsort_less(va, la, vb, lb)) return x->desc ? 1 : -1;
        return x->desc ? -1 : 1;
    }
    int c = labels_compare(a->metric, b->metric);
    return x->desc ? -c : c;
}

static bool less_by_label(const promql_esample *a, const promql_esample *b, void *ctx)
{
    return cmp_by_label(a, b, ctx) < 0;
}

static int sort_by_label(promql_fcall *c, bool desc)
{
    size_t nargs = c->call->call.nargs;
    promql_str *names = mem_calloc(nargs ? nargs : 1, sizeof *names);
    size_t nn = 0;
    for (size_t i = 1; i < nargs; i++) {
        const promql_node *a = promql_unparen(c->call->call.args[i]);
        if (a->kind == PROMQL_NODE_STRING) names[nn++] = a->string.val;
    }
    sbl_ctx x = {names, nn, desc};
    const promql_evec *in = &c->in[0];
    if (!in->n) {
        mem_free(names);
        return 0;
    }
    size_t start = c->out->n;
    for (size_t i = 0; i < in->n; i++)
        promql_evec_push(c->out, in->v[i].metric, in->v[i].f, in->v[i].t, in->v[i].drop_name);
    sort_vec(c->out->v + start, c->out->n - start, less_by_label, &x);
    mem_free(names);
    return 0;
}

static int f_sort_by_label(promql_fcall *c)
{
    return sort_by_label(c, false);
}

static int f_sort_by_label_desc(promql_fcall *c)
{
    return sort_by_label(c, true);
}

/* ---- absent ------------------------------------------------------------------------ */

labels *promql_absent_labels(const promql_node *arg)
{
    arg = promql_unparen(arg);
    if (arg && arg->kind == PROMQL_NODE_MATRIX_SELECTOR) arg = arg->matrix.vs;
    if (!arg || arg->kind != PROMQL_NODE_VECTOR_SELECTOR) return labels_dup(promql_empty_labels());
    labels_builder b;
    labels_builder_init(&b);
    const label_matcher *ms = arg->vector.matchers;
    size_t n = arg->vector.n_matchers;
    bool *has = mem_calloc(n ? n : 1, sizeof *has);
    for (size_t i = 0; i < n; i++) {
        const label_matcher *m = &ms[i];
        if (m->name_len == 8 && memcmp(m->name, "__name__", 8) == 0) continue;
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            if (has[j] && ms[j].name_len == m->name_len && memcmp(ms[j].name, m->name, m->name_len) == 0)
                seen = true;
        if (m->type == MATCH_EQ && !seen) {
            labels_builder_set(&b, m->name, m->name_len, m->value, m->value_len);
            has[i] = true;
        } else {
            labels_builder_del(&b, m->name, m->name_len);
        }
    }
    mem_free(has);
    labels *r = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return r;
}

static int f_absent(promql_fcall *c)
{
    if (c->in[0].n > 0) return 0;
    labels *ls = promql_absent_labels(c->call->call.args[0]);
    promql_evec_push(c->out, promql_lcache_put(c->lcache, ls), 1, 0, false);
    return 0;
}

/* ---- classic histograms --------------------------------------------------------------- */

typedef struct bucket {
    double upper, count;
} bucket;

typedef struct bgroup {
    const labels *metric; /* without le; interned */
    bucket *b;
    size_t n, cap;
} bgroup;

typedef struct bgroups {
    bgroup *g;
    size_t n, cap;
    hmap idx; /* signature hash -> group index + 1 */
    buf sig;
    const char *key; /* lookup key */
    size_t key_len;
    char **sigs; /* per group */
    size_t *sig_lens;
} bgroups;

static bool bg_eq(const void *val, const void *key)
{
    const bgroups *g = key;
    size_t i = (uintptr_t)val - 1;
    return g->sig_lens[i] == g->key_len && memcmp(g->sigs[i], g->key, g->key_len) == 0;
}

static void bgroups_free(bgroups *g)
{
    for (size_t i = 0; i < g->n; i++) {
        mem_free(g->g[i].b);
        mem_free(g->sigs[i]);
    }
    mem_free(g->g);
    mem_free(g->sigs);
    mem_free(g->sig_lens);
    hmap_cleanup(&g->idx);
    buf_cleanup(&g->sig);
}

/* Groups the float samples of `in` by their labels without `le`, parsing
 * le as the upper bound; warns about malformed le values. */
static void group_buckets(promql_fcall *c, const promql_evec *in, uint32_t pos, bgroups *g)
{
    memset(g, 0, sizeof *g);
    hmap_init(&g->idx);
    buf_init(&g->sig, BUF_UNLIMITED);
    labels_builder lb;
    labels_builder_init(&lb);
    for (size_t i = 0; i < in->n; i++) {
        if (in->v[i].h) continue; /* native histograms are handled apart */
        const labels *m = in->v[i].metric;
        size_t lelen;
        const char *le = labels_get(m, "le", 2, &lelen);
        double upper;
        if (!le || expfmt_parse_float(le, lelen, &upper) != 0) {
            buf q;
            buf_init(&q, BUF_UNLIMITED);
            expfmt_quote_go(buf_sink, &q, le ? le : "", lelen);
            const char *name;
            size_t nl = metric_name(m, &name);
            if (c->delayed_name && nl) {
                buf_puts(&q, " for metric name ");
                expfmt_quote_go(buf_sink, &q, name, nl);
            }
            promql_anno_add(c->anno, PROMQL_ANNO_WARNING, pos,
                            "bucket label \"le\" is missing or has a malformed value of %s",
                            buf_cstr(&q));
            buf_cleanup(&q);
            continue;
        }
        buf_reset(&g->sig);
        for (uint32_t k = 0; k < m->n; k++) {
            const label *l = &m->v[k];
            if (l->name_len == 2 && memcmp(l->name, "le", 2) == 0) continue;
            buf_append(&g->sig, l->name, l->name_len + 1);
            buf_append(&g->sig, l->value, l->value_len + 1);
        }
        g->key = g->sig.data ? g->sig.data : "";
        g->key_len = g->sig.len;
        uint64_t h = strutil_hash64(g->key, g->key_len, 0);
        void *v = hmap_get(&g->idx, h, bg_eq, g);
        size_t gi;
        if (v) {
            gi = (uintptr_t)v - 1;
        } else {
            g->g = mem_grow(g->g, sizeof *g->g, g->n + 1, &g->cap);
            size_t cap2 = g->cap;
            g->sigs = mem_realloc(g->sigs, cap2 * sizeof *g->sigs);
            g->sig_lens = mem_realloc(g->sig_lens, cap2 * sizeof *g->sig_lens);
            gi = g->n++;
            promql_builder_from(&lb, m);
            labels_builder_del(&lb, "le", 2);
            g->g[gi].metric = promql_lcache_put(c->lcache, labels_builder_finish(&lb, NULL));
            g->g[gi].b = NULL;
            g->g[gi].n = g->g[gi].cap = 0;
            g->sigs[gi] = mem_strndup(g->key, g->key_len);
            g->sig_lens[gi] = g->key_len;
            hmap_put(&g->idx, h, (void *)(uintptr_t)(gi + 1));
        }
        bgroup *bg = &g->g[gi];
        bg->b = mem_grow(bg->b, sizeof *bg->b, bg->n + 1, &bg->cap);
        bg->b[bg->n].upper = upper;
        bg->b[bg->n].count = in->v[i].f;
        bg->n++;
    }
    labels_builder_cleanup(&lb);
}

static int cmp_bucket(const void *pa, const void *pb)
{
    const bucket *a = pa, *b = pb;
    if (a->upper < b->upper) return -1;
    if (a->upper > b->upper) return 1;
    return 0;
}

/* Sorts by upper bound and merges buckets with the same bound; returns
 * the new count. */
static bool bucket_less(void *ctx, size_t i, size_t j)
{
    const bucket *b = ctx;
    return cmp_bucket(&b[i], &b[j]) < 0;
}

static void bucket_swap(void *ctx, size_t i, size_t j)
{
    bucket *b = ctx;
    bucket t = b[i];
    b[i] = b[j];
    b[j] = t;
}

/* Buckets by upper bound (Prometheus: slices.SortFunc; stable here). */
static void sort_buckets(bucket *b, size_t n)
{
    promql_sort_iface d = {b, bucket_less, bucket_swap};
    promql_sort_stable(&d, n);
}

static size_t merge_equal_bounds(bucket *b, size_t n)
{
    bucket last = b[0];
    size_t i = 0;
    for (size_t k = 1; k < n; k++) {
        if (b[k].upper == last.upper) {
            last.count += b[k].count;
        } else {
            b[i++] = last;
            last = b[k];
        }
    }
    b[i] = last;
    return i + 1;
}

/* util/almost.Equal */
static bool almost_equal(double a, double b, double eps)
{
    if (strutil_is_stale_nan(a) || strutil_is_stale_nan(b))
        return strutil_is_stale_nan(a) && strutil_is_stale_nan(b);
    if (isnan(a) && isnan(b)) return true;
    if (a == b) return true;
    const double min_normal = 2.2250738585072014e-308;
    double abs_sum = fabs(a) + fabs(b);
    double diff = fabs(a - b);
    if (a == 0 || b == 0 || abs_sum < min_normal) return diff < eps * min_normal;
    return diff / fmin(abs_sum, 1.7976931348623157e308) < eps;
}

typedef struct mono {
    bool forced;
    double min_bucket, max_bucket, max_diff;
} mono;

static void ensure_monotonic(bucket *b, size_t n, mono *m)
{
    m->forced = false;
    m->min_bucket = INFINITY;
    m->max_bucket = -INFINITY;
    m->max_diff = 0;
    double prev = b[0].count;
    for (size_t i = 1; i < n; i++) {
        double curr = b[i].count;
        if (curr == prev) continue;
        if (almost_equal(prev, curr, 1e-12)) {
            b[i].count = prev;
            continue;
        }
        if (curr < prev) {
            b[i].count = prev;
            m->forced = true;
            if (b[i].upper < m->min_bucket) m->min_bucket = b[i].upper;
            if (b[i].upper > m->max_bucket) m->max_bucket = b[i].upper;
            if (prev - curr > m->max_diff) m->max_diff = prev - curr;
            continue;
        }
        prev = curr;
    }
}

static double bucket_quantile(double q, bucket *b, size_t n, mono *m)
{
    m->forced = false;
    if (isnan(q)) return NAN;
    if (q < 0) return -INFINITY;
    if (q > 1) return INFINITY;
    sort_buckets(b, n);
    if (!(isinf(b[n - 1].upper) && b[n - 1].upper > 0)) return NAN;
    n = merge_equal_bounds(b, n);
    ensure_monotonic(b, n, m);
    if (n < 2) return NAN;
    double obs = b[n - 1].count;
    if (obs == 0) return NAN;
    double rank = q * obs;
    /* sort.Search over n-1 buckets for count >= rank */
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b[mid].count >= rank) hi = mid;
        else lo = mid + 1;
    }
    size_t k = lo;
    if (k == n - 1) return b[n - 2].upper;
    if (k == 0 && b[0].upper <= 0) return b[0].upper;
    double start = 0, end = b[k].upper, count = b[k].count;
    if (k > 0) {
        start = b[k - 1].upper;
        count -= b[k - 1].count;
        rank -= b[k - 1].count;
    }
    return start + (end - start) * (rank / count);
}

static double bucket_fraction(double lower, double upper, bucket *b, size_t n)
{
    sort_buckets(b, n);
    if (!(isinf(b[n - 1].upper) && b[n - 1].upper > 0)) return NAN;
    n = merge_equal_bounds(b, n);
    double count = b[n - 1].count;
    if (count == 0 || isnan(lower) || isnan(upper)) return NAN;
    if (lower >= upper) return 0;
    double rank = 0, lower_rank = 0, upper_rank = 0;
    bool lower_set = false, upper_set = false;
    double lower_bound = b[0].upper <= 0 ? -INFINITY : 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0) lower_bound = b[i - 1].upper;
        double upper_bound = b[i].upper;
#define INTERP(v)                                                                                  \
    (isinf(lower_bound) && lower_bound < 0                                                         \
         ? b[i].count                                                                              \
         : rank + (b[i].count - rank) * ((v)-lower_bound) / (upper_bound - lower_bound))
        if (!lower_set && lower_bound >= lower) {
            lower_rank = rank;
            lower_set = true;
        }
        if (!upper_set && lower_bound >= upper) {
            upper_rank = rank;
            upper_set = true;
        }
        if (lower_set && upper_set) break;
        if (!lower_set && lower_bound < lower && upper_bound > lower) {
            lower_rank = INTERP(lower);
            lower_set = true;
        }
        if (!upper_set && lower_bound < upper && upper_bound > upper) {
            upper_rank = INTERP(upper);
            upper_set = true;
        }
#undef INTERP
        if (lower_set && upper_set) break;
        rank = b[i].count;
    }
    if (!lower_set || lower_rank > count) lower_rank = count;
    if (!upper_set || upper_rank > count) upper_rank = count;
    return (upper_rank - lower_rank) / count;
}

static void warn_quantile(promql_fcall *c, double q, uint32_t pos)
{
    if (isnan(q) || q < 0 || q > 1) {
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        promql_format_float_g(q, &b);
        promql_anno_add(c->anno, PROMQL_ANNO_WARNING, pos,
                        "quantile value should be between 0 and 1, got %s", buf_cstr(&b));
        buf_cleanup(&b);
    }
}

static void report_mono(promql_fcall *c, const bgroup *g, const mono *m, uint32_t pos)
{
    if (!m->forced) return;
    const char *name = "";
    size_t nl = 0;
    if (c->delayed_name) nl = metric_name(g->metric, &name);
    promql_anno_add_monotonicity(c->anno, name, nl, pos, c->ts, m->min_bucket, m->max_bucket,
                                 m->max_diff);
}

/* ---- native histograms ------------------------------------------------------------------- */

/* The metric name for an annotation: " for metric name \"x\"" or nothing. */
static void anno_metric_suffix(const labels *m, buf *out)
{
    const char *name;
    size_t nl = metric_name(m, &name);
    if (!nl) return;
    buf_puts(out, " for metric name ");
    expfmt_quote_go(buf_sink, out, name, nl);
}

static void hist_info(promql_fcall *c, const labels *m, uint32_t pos, const char *msg)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_puts(&b, msg);
    anno_metric_suffix(m, &b);
    promql_anno_add(c->anno, PROMQL_ANNO_INFO, pos, "%s", buf_cstr(&b));
    buf_cleanup(&b);
}

typedef struct hbucket {
    double lower, upper, count;
} hbucket;

/* Every bucket of h from the lowest (AllBucketIterator); caller frees. */
static hbucket *all_buckets(const promql_fh *h, size_t *n)
{
    hbucket *b = mem_malloc((h->n_pos + h->n_neg + 1) * sizeof *b);
    promql_fh_iter it;
    promql_fh_iter_init(&it, h);
    *n = 0;
    while (promql_fh_iter_next(&it))
        b[(*n)++] = (hbucket){it.lower, it.upper, it.count};
    return b;
}

/* quantile.go's HistogramQuantile. */
static double native_quantile(promql_fcall *c, double q, const promql_fh *h, const labels *m,
                              uint32_t pos)
{
    if (q < 0) return -INFINITY;
    if (q > 1) return INFINITY;
    if (h->count == 0 || isnan(q)) return NAN;
    size_t n;
    hbucket *all = all_buckets(h, &n);
    bool fwd = isnan(h->sum) || q < 0.5;
    double rank = fwd ? q * h->count : (1 - q) * h->count, count = 0;
    hbucket b = {0, 0, 0};
    size_t i = 0;
    for (; i < n; i++) {
        hbucket x = all[fwd ? i : n - 1 - i];
        b = x;
        if (x.count == 0) continue;
        count += x.count;
        if (count >= rank) break;
    }
    if (i < n) i++; /* the iterator is past the bucket found */
    double r;
    if (!promql_fh_custom(h) && b.lower < 0 && b.upper > 0) {
        if (h->n_neg == 0 && h->n_pos > 0)
            b.lower = 0;
        else if (h->n_pos == 0 && h->n_neg > 0)
            b.upper = 0;
    } else if (promql_fh_custom(h)) {
        if (b.lower == -INFINITY) {
            if (b.upper <= 0) {
                r = b.upper;
                goto out;
            }
            b.lower = 0;
        } else if (b.upper == INFINITY) {
            r = b.lower;
            goto out;
        }
    }
    if (count > h->count) count = h->count;
    if (count < rank) {
        if (isnan(h->sum)) {
            hist_info(c, m, pos, "input to histogram_quantile has NaN observations, result is NaN");
            r = NAN;
        } else {
            r = b.upper;
        }
        goto out;
    }
    if (fwd)
        rank -= count - b.count;
    else
        rank = count - rank;
    if (isnan(h->sum)) {
        for (; i < n; i++)
            count += all[fwd ? i : n - 1 - i].count;
        if (count < h->count)
            hist_info(c, m, pos,
                      "input to histogram_quantile has NaN observations, result is skewed higher");
    }
    double frac = rank / b.count;
    if (promql_fh_custom(h) || (b.lower <= 0 && b.upper >= 0)) {
        r = b.lower + (b.upper - b.lower) * frac;
    } else {
        double ll = log2(fabs(b.lower)), lu = log2(fabs(b.upper));
        if (b.lower > 0)
            r = exp2(ll + (lu - ll) * frac);
        else
            r = -exp2(lu + (ll - lu) * (1 - frac));
    }
out:
    mem_free(all);
    return r;
}

static double fraction_below(const hbucket *b, double v, bool linear)
{
    if (linear) return (v - b->lower) / (b->upper - b->lower);
    double ll = log2(fabs(b->lower)), lu = log2(fabs(b->upper)), lv = log2(fabs(v));
    if (v > 0) return (lv - ll) / (lu - ll);
    return 1 - ((lv - lu) / (ll - lu));
}

/* quantile.go's HistogramFraction. */
static double native_fraction(promql_fcall *c, double lower, double upper, const promql_fh *h,
                              const labels *m, uint32_t pos)
{
    if (h->count == 0 || isnan(lower) || isnan(upper)) return NAN;
    if (lower >= upper) return 0;
    size_t n;
    hbucket *all = all_buckets(h, &n);
    double count = 0, rank = 0, lrank = 0, urank = 0;
    bool lset = false, uset = false;
    size_t i = 0;
    for (; i < n; i++) {
        hbucket b = all[i];
        count += b.count;
        bool zero = false;
        if (b.lower <= 0 && b.upper >= 0) {
            zero = true;
            if (h->n_neg == 0 && h->n_pos > 0)
                b.lower = 0;
            else if (h->n_pos == 0 && h->n_neg > 0)
                b.upper = 0;
        }
        bool lin = promql_fh_custom(h) || zero;
#define INTERP(v)                                                                                  \
    (lin && b.lower == -INFINITY ? b.count : rank + b.count * fraction_below(&b, (v), lin))
        if (!lset && b.lower >= lower) {
            lrank = rank;
            lset = true;
        }
        if (!uset && b.lower >= upper) {
            urank = rank;
            uset = true;
        }
        if (lset && uset) break;
        if (!lset && b.lower < lower && b.upper > lower) {
            lrank = INTERP(lower);
            lset = true;
        }
        if (!uset && b.lower < upper && b.upper > upper) {
            urank = INTERP(upper);
            uset = true;
        }
#undef INTERP
        if (lset && uset) break;
        rank += b.count;
    }
    if (isnan(h->sum)) {
        for (i++; i < n; i++)
            count += all[i].count;
        if (count < h->count)
            hist_info(c, m, pos,
                      "input to histogram_fraction has NaN observations, which are excluded from "
                      "all fractions");
    } else {
        count = h->count;
    }
    mem_free(all);
    if (!lset || lrank > count) lrank = count;
    if (!uset || urank > count) urank = count;
    return (urank - lrank) / h->count;
}

enum hstat { HS_COUNT, HS_SUM, HS_AVG, HS_STDDEV, HS_STDVAR };

static double hist_stat(const promql_fh *h, enum hstat k)
{
    switch (k) {
    case HS_COUNT:
        return h->count;
    case HS_SUM:
        return h->sum;
    case HS_AVG:
        return h->sum / h->count;
    default:
        break;
    }
    double mean = h->sum / h->count, var = 0, cv = 0;
    promql_fh_iter it;
    promql_fh_iter_init(&it, h);
    while (promql_fh_iter_next(&it)) {
        if (it.count == 0) continue;
        double val;
        if (promql_fh_custom(h)) {
            val = (it.upper + it.lower) / 2.0;
        } else if (it.lower <= 0 && it.upper >= 0) {
            val = 0;
        } else {
            val = sqrt(it.upper * it.lower);
            if (it.upper < 0) val = -val;
        }
        double d = val - mean, x = it.count * d * d;
        /* kahansum.Inc */
        double t = var + x;
        if (isinf(t))
            cv = 0;
        else if (fabs(var) >= fabs(x))
            cv += (var - t) + x;
        else
            cv += (x - t) + var;
        var = t;
    }
    var += cv;
    var /= h->count;
    return k == HS_STDDEV ? sqrt(var) : var;
}

static int hist_simple(promql_fcall *c, enum hstat k)
{
    if (c->nin < 1) return 0;
    const promql_evec *in = &c->in[0];
    for (size_t i = 0; i < in->n; i++) {
        if (!in->v[i].h) continue;
        const labels *m =
            c->delayed_name ? in->v[i].metric : promql_drop_metric_name(c->lcache, in->v[i].metric);
        promql_evec_push(c->out, m, hist_stat(in->v[i].h, k), 0, true);
    }
    return 0;
}

static int f_histogram_count(promql_fcall *c)
{
    return hist_simple(c, HS_COUNT);
}
static int f_histogram_sum(promql_fcall *c)
{
    return hist_simple(c, HS_SUM);
}
static int f_histogram_avg(promql_fcall *c)
{
    return hist_simple(c, HS_AVG);
}
static int f_histogram_stddev(promql_fcall *c)
{
    return hist_simple(c, HS_STDDEV);
}
static int f_histogram_stdvar(promql_fcall *c)
{
    return hist_simple(c, HS_STDVAR);
}

/* resetHistograms: a native histogram sample whose labels are those of a
 * classic bucket group (without le) at this step conflicts with it:
 * neither is evaluated, with a warning. Returns true on a conflict (the
 * group is emptied). */
static bool native_conflicts(promql_fcall *c, bgroups *g, const labels *m, uint32_t pos)
{
    if (!g->n) return false;
    buf_reset(&g->sig);
    for (uint32_t k = 0; k < m->n; k++) {
        const label *l = &m->v[k];
        buf_append(&g->sig, l->name, l->name_len + 1);
        buf_append(&g->sig, l->value, l->value_len + 1);
    }
    g->key = g->sig.data ? g->sig.data : "";
    g->key_len = g->sig.len;
    void *v = hmap_get(&g->idx, strutil_hash64(g->key, g->key_len, 0), bg_eq, g);
    if (!v || g->g[(uintptr_t)v - 1].n == 0) return false;
    g->g[(uintptr_t)v - 1].n = 0;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_puts(&b, "vector contains a mix of classic and native histograms");
    if (c->delayed_name) anno_metric_suffix(m, &b);
    promql_anno_add(c->anno, PROMQL_ANNO_WARNING, pos, "%s", buf_cstr(&b));
    buf_cleanup(&b);
    return true;
}

static int f_histogram_quantile(promql_fcall *c)
{
    if (c->nin < 2 || c->in[0].n == 0) return 0;
    double q = c->in[0].v[0].f;
    warn_quantile(c, q, arg_pos(c, 0));
    bgroups g;
    group_buckets(c, &c->in[1], arg_pos(c, 1), &g);
    for (size_t i = 0; i < c->in[1].n; i++) {
        const promql_esample *e = &c->in[1].v[i];
        if (!e->h || native_conflicts(c, &g, e->metric, arg_pos(c, 1))) continue;
        double r = native_quantile(c, q, e->h, e->metric, arg_pos(c, 1));
        promql_evec_push(c->out, out_metric(c, e->metric), r, 0, true);
    }
    for (size_t i = 0; i < g.n; i++) {
        bgroup *bg = &g.g[i];
        if (!bg->n) continue;
        mono m;
        double r = bucket_quantile(q, bg->b, bg->n, &m);
        report_mono(c, bg, &m, arg_pos(c, 1));
        promql_evec_push(c->out, out_metric(c, bg->metric), r, 0, true);
    }
    bgroups_free(&g);
    return 0;
}

static int f_histogram_fraction(promql_fcall *c)
{
    if (c->nin < 3 || c->in[0].n == 0 || c->in[1].n == 0) return 0;
    double lower = c->in[0].v[0].f, upper = c->in[1].v[0].f;
    bgroups g;
    group_buckets(c, &c->in[2], arg_pos(c, 2), &g);
    for (size_t i = 0; i < c->in[2].n; i++) {
        const promql_esample *e = &c->in[2].v[i];
        if (!e->h || native_conflicts(c, &g, e->metric, arg_pos(c, 2))) continue;
        double r = native_fraction(c, lower, upper, e->h, e->metric, arg_pos(c, 2));
        promql_evec_push(c->out, out_metric(c, e->metric), r, 0, true);
    }
    for (size_t i = 0; i < g.n; i++) {
        bgroup *bg = &g.g[i];
        if (!bg->n) continue;
        double r = bucket_fraction(lower, upper, bg->b, bg->n);
        promql_evec_push(c->out, out_metric(c, bg->metric), r, 0, true);
    }
    bgroups_free(&g);
    return 0;
}

static int f_histogram_quantiles(promql_fcall *c)
{
    const promql_node *lbl = promql_unparen(c->call->call.args[1]);
    if (lbl->kind != PROMQL_NODE_STRING) return 0;
    size_t nq = c->nin > 2 ? c->nin - 2 : 0;
    double *qs = mem_calloc(nq ? nq : 1, sizeof *qs);
    for (size_t i = 0; i < nq; i++) {
        qs[i] = scalar_arg(c, i + 2);
        warn_quantile(c, qs[i], arg_pos(c, i + 2));
    }
    bgroups g;
    group_buckets(c, &c->in[0], arg_pos(c, 0), &g);
    bool *skip = mem_calloc(c->in[0].n + 1, sizeof *skip);
    for (size_t i = 0; i < c->in[0].n; i++)
        skip[i] = c->in[0].v[i].h && native_conflicts(c, &g, c->in[0].v[i].metric, arg_pos(c, 0));
    labels_builder lb;
    labels_builder_init(&lb);
    for (size_t k = 0; k < nq; k++) {
        char qstr[EXPFMT_FLOAT_MAX];
        if (isnan(qs[k])) strcpy(qstr, "NaN");
        else expfmt_format_om_float(qs[k], qstr);
        for (size_t i = 0; i < c->in[0].n; i++) {
            const promql_esample *e = &c->in[0].v[i];
            if (!e->h || skip[i]) continue;
            double r = native_quantile(c, qs[k], e->h, e->metric, arg_pos(c, 0));
            promql_builder_from(&lb, out_metric(c, e->metric));
            labels_builder_set(&lb, lbl->string.val.p, lbl->string.val.len, qstr, strlen(qstr));
            promql_evec_push(c->out, promql_lcache_put(c->lcache, labels_builder_finish(&lb, NULL)),
                             r, 0, true);
        }
        for (size_t i = 0; i < g.n; i++) {
            bgroup *bg = &g.g[i];
            if (!bg->n) continue;
            /* BucketQuantile sorts, merges and fixes the buckets in place,
             * and later quantiles see that, as in Prometheus. */
            mono m;
            double r = bucket_quantile(qs[k], bg->b, bg->n, &m);
            report_mono(c, bg, &m, arg_pos(c, 0));
            const labels *base = out_metric(c, bg->metric);
            promql_builder_from(&lb, base);
            labels_builder_set(&lb, lbl->string.val.p, lbl->string.val.len, qstr, strlen(qstr));
            const labels *ls = promql_lcache_put(c->lcache, labels_builder_finish(&lb, NULL));
            promql_evec_push(c->out, ls, r, 0, true);
        }
    }
    labels_builder_cleanup(&lb);
    bgroups_free(&g);
    mem_free(skip);
    mem_free(qs);
    return 0;
}

/* ---- range functions over native histograms ------------------------------------------ */

/* "<msg> \"<name>\"" warnings naming the series' metric. */
static void hist_warn_named(const promql_fcall *c, uint32_t pos, const char *msg)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    const char *name;
    size_t nl = metric_name(c->metric, &name);
    buf_puts(&b, msg);
    buf_putc(&b, ' ');
    expfmt_quote_go(buf_sink, &b, nl ? name : "", nl);
    promql_anno_add(c->anno, PROMQL_ANNO_WARNING, pos, "%s", buf_cstr(&b));
    buf_cleanup(&b);
}

#define MIXED_MSG "encountered a mix of histograms and floats for metric name"
#define NOT_COUNTER_MSG "this native histogram metric is not a counter:"
#define NOT_GAUGE_MSG "this native histogram metric is not a gauge:"
#define MIXED_SCHEMA_MSG                                                                           \
    "vector contains a mix of histograms with exponential and custom buckets schemas for metric "  \
    "name"

static void reconciled_info(const promql_fcall *c, uint32_t pos, const char *op)
{
    promql_anno_add(c->anno, PROMQL_ANNO_INFO, pos,
                    "mismatched custom buckets were reconciled during %s", op);
}

/* functions.go's histogramRate; NULL when there is no result. */
static promql_fh *hist_rate(const promql_fcall *c, bool counter, uint32_t pos)
{
    const promql_hpoint *p = c->hpts;
    size_t n = c->nh;
    const promql_fh *prev = p[0].h, *last = p[n - 1].h;
    promql_fh *empty = NULL;
    bool custom = promql_fh_custom(prev);
    if (counter && (prev->hint == PROMQL_FH_GAUGE || last->hint == PROMQL_FH_GAUGE))
        hist_warn_named(c, pos, NOT_COUNTER_MSG);
    if (counter && promql_fh_detect_reset(p[1].h, prev)) {
        empty = promql_fh_new();
        empty->schema = p[1].h->schema;
        if (p[1].h->n_custom) {
            empty->custom = mem_malloc(p[1].h->n_custom * sizeof *empty->custom);
            memcpy(empty->custom, p[1].h->custom, p[1].h->n_custom * sizeof *empty->custom);
            empty->n_custom = p[1].h->n_custom;
        }
        prev = empty;
        custom = promql_fh_custom(p[1].h);
    }
    promql_fh *h = NULL;
    if (promql_fh_custom(last) != custom) {
        hist_warn_named(c, pos, MIXED_SCHEMA_MSG);
        goto out;
    }
    int32_t min_schema = last->schema < prev->schema ? last->schema : prev->schema;
    for (size_t i = 1; i + 1 < n; i++) {
        const promql_fh *cur = p[i].h;
        if (!counter) continue;
        if (cur->hint == PROMQL_FH_GAUGE) hist_warn_named(c, pos, NOT_COUNTER_MSG);
        if (cur->schema < min_schema) min_schema = cur->schema;
        if (promql_fh_custom(cur) != custom) {
            hist_warn_named(c, pos, MIXED_SCHEMA_MSG);
            goto out;
        }
    }
    h = promql_fh_copy(last);
    promql_fh_reduce_resolution(h, min_schema);
    bool rec = false;
    if (promql_fh_add(h, prev, true, NULL, &rec) < 0) {
        hist_warn_named(c, pos, MIXED_SCHEMA_MSG);
        promql_fh_free(h);
        h = NULL;
        goto out;
    }
    if (rec) reconciled_info(c, pos, "subtraction");
    if (counter) {
        for (size_t i = 1; i < n; i++) {
            const promql_fh *cur = p[i].h;
            if (promql_fh_detect_reset(cur, prev)) {
                if (promql_fh_add(h, prev, false, NULL, &rec) < 0) {
                    hist_warn_named(c, pos, MIXED_SCHEMA_MSG);
                    promql_fh_free(h);
                    h = NULL;
                    goto out;
                }
                if (rec) reconciled_info(c, pos, "addition");
            }
            prev = cur;
        }
    } else if (p[0].h->hint != PROMQL_FH_GAUGE || p[n - 1].h->hint != PROMQL_FH_GAUGE) {
        hist_warn_named(c, pos, NOT_GAUGE_MSG);
    }
    h->hint = PROMQL_FH_GAUGE;
    promql_fh_compact(h);
out:
    promql_fh_free(empty);
    return h;
}

/* extrapolatedRate over histograms only (not anchored or smoothed). */
static int hist_extrapolated(const promql_fcall *c, bool counter, bool rate, uint32_t pos,
                             promql_fh **out)
{
    if (c->nh < 2) return 0;
    promql_fh *h = hist_rate(c, counter, pos);
    if (!h) return 0;
    int64_t range_start = c->ts - (c->range_ms + c->offset_ms), range_end = c->ts - c->offset_ms;
    int64_t first_t = c->hpts[0].t, last_t = c->hpts[c->nh - 1].t;
    double to_start = (double)(first_t - range_start) / 1000,
           to_end = (double)(range_end - last_t) / 1000;
    double sampled = (double)(last_t - first_t) / 1000;
    double avg = sampled / (double)(c->nh - 1), thr = avg * 1.1;
    if (to_start >= thr) to_start = avg / 2;
    if (counter) {
        double to_zero = to_start;
        if (h->count > 0 && c->hpts[0].h->count >= 0)
            to_zero = sampled * (c->hpts[0].h->count / h->count);
        if (to_zero < to_start) to_start = to_zero;
    }
    if (to_end >= thr) to_end = avg / 2;
    double factor = 1;
    if (sampled != 0) factor = (sampled + to_start + to_end) / sampled;
    if (rate) factor /= (double)c->range_ms / 1000.0;
    promql_fh_scale(h, factor, false);
    *out = h;
    return 1;
}

/* instantValue (irate, idelta) over the last two samples. */
static int hist_instant(const promql_fcall *c, bool rate, uint32_t pos, double *v, promql_fh **out)
{
    if (c->n + c->nh < 2) return 0;
    /* the last two samples of floats and histograms together */
    struct {
        int64_t t;
        double f;
        const promql_fh *h;
    } ss[4];
    size_t k = 0;
    for (size_t i = c->n >= 2 ? c->n - 2 : 0; i < c->n; i++)
        ss[k++] = (typeof(ss[0])){c->pts[i].t, c->pts[i].v, NULL};
    for (size_t i = c->nh >= 2 ? c->nh - 2 : 0; i < c->nh; i++)
        ss[k++] = (typeof(ss[0])){c->hpts[i].t, 0, c->hpts[i].h};
    for (size_t i = 1; i < k; i++) /* insertion sort by t */
        for (size_t j = i; j > 0 && ss[j].t < ss[j - 1].t; j--) {
            typeof(ss[0]) t = ss[j];
            ss[j] = ss[j - 1];
            ss[j - 1] = t;
        }
    typeof(ss[0]) a = ss[k - 2], b = ss[k - 1];
    int64_t dt = b.t - a.t;
    if (dt == 0) return 0;
    if (!a.h && !b.h) {
        double r = b.f;
        if (!rate || !(b.f < a.f)) r = b.f - a.f;
        if (rate) r /= (double)dt / 1000;
        *v = r;
        return 1;
    }
    if (!a.h || !b.h) {
        hist_warn_named(c, pos, MIXED_MSG);
        return 0;
    }
    promql_fh *h = promql_fh_copy(b.h);
    if (rate && (b.h->hint == PROMQL_FH_GAUGE || a.h->hint == PROMQL_FH_GAUGE))
        hist_warn_named(c, pos, NOT_COUNTER_MSG);
    if (!rate && (b.h->hint != PROMQL_FH_GAUGE || a.h->hint != PROMQL_FH_GAUGE))
        hist_warn_named(c, pos, NOT_GAUGE_MSG);
    if (!rate || !promql_fh_detect_reset(b.h, a.h)) {
        bool rec = false;
        if (promql_fh_add(h, a.h, true, NULL, &rec) < 0) {
            promql_fh_free(h);
            hist_warn_named(c, pos, MIXED_SCHEMA_MSG);
            return 0;
        }
        if (rec) reconciled_info(c, pos, "subtraction");
    }
    h->hint = PROMQL_FH_GAUGE;
    promql_fh_compact(h);
    if (rate) promql_fh_scale(h, (double)dt / 1000, true);
    *out = h;
    return 1;
}

/* sum_over_time / avg_over_time over histograms only: Kahan summation;
 * avg switches to an incremental mean once the sum overflows. */
static int hist_sum_avg(const promql_fcall *c, bool avg, uint32_t pos, promql_fh **out)
{
    bool reset_seen = false, not_reset_seen = false, rec_seen = false, incremental = false;
    promql_fh *sum = promql_fh_copy(c->hpts[0].h), *comp = promql_fh_kahan_new(sum), *mean = NULL;
    int rc = 1;
    for (size_t i = 0; i < c->nh; i++) {
        const promql_fh *h = c->hpts[i].h;
        if (h->hint == PROMQL_FH_RESET) reset_seen = true;
        if (h->hint == PROMQL_FH_NOT_RESET) not_reset_seen = true;
        if (i == 0) continue;
        bool rec = false;
        double count = (double)(i + 1);
        if (!incremental) {
            promql_fh *s2 = promql_fh_copy(sum), *c2 = promql_fh_copy(comp);
            if (promql_fh_kahan_add(s2, h, c2, NULL, &rec) < 0) {
                promql_fh_free(s2);
                promql_fh_free(c2);
                rc = -1;
                break;
            }
            rec_seen = rec_seen || rec;
            bool overflow = isinf(s2->count) || isinf(s2->sum) || isinf(s2->zero_count);
            for (size_t k = 0; k < s2->n_pos && !overflow; k++)
                overflow = isinf(s2->pos[k].count);
            for (size_t k = 0; k < s2->n_neg && !overflow; k++)
                overflow = isinf(s2->neg[k].count);
            if (!avg || !overflow) {
                promql_fh_free(sum);
                promql_fh_free(comp);
                sum = s2;
                comp = c2;
                continue;
            }
            promql_fh_free(s2);
            promql_fh_free(c2);
            incremental = true;
            mean = promql_fh_copy(sum);
            promql_fh_scale(mean, count - 1, true);
            promql_fh_scale(comp, count - 1, true);
        }
        double q = (count - 1) / count;
        promql_fh_scale(comp, q, false);
        promql_fh_scale(mean, q, false);
        promql_fh *add = promql_fh_copy(h);
        promql_fh_scale(add, count, true);
        if (promql_fh_kahan_add(mean, add, comp, NULL, &rec) < 0) rc = -1;
        rec_seen = rec_seen || rec;
        promql_fh_free(add);
        if (rc < 0) break;
    }
    if (rc < 0) {
        promql_fh_free(sum);
        promql_fh_free(comp);
        promql_fh_free(mean);
        hist_warn_named(c, pos, MIXED_SCHEMA_MSG);
        return 0;
    }
    if (reset_seen && not_reset_seen)
        promql_anno_add(c->anno, PROMQL_ANNO_WARNING, pos,
                        "conflicting counter resets during histogram aggregation");
    if (rec_seen) reconciled_info(c, pos, "aggregation");
    if (incremental) {
        promql_fh_kahan_finish(mean, comp);
        promql_fh_free(sum);
        sum = mean;
    } else if (avg) {
        promql_fh_scale(sum, (double)c->nh, true);
        promql_fh_scale(comp, (double)c->nh, true);
        promql_fh_kahan_finish(sum, comp);
    } else {
        promql_fh_kahan_finish(sum, comp);
    }
    promql_fh_free(comp);
    promql_fh_compact(sum);
    *out = sum;
    return 1;
}

/* interpolateHistograms: the value at t between (t1, h1) and (t2, h2);
 * NULL on incompatible schemas. */
static promql_fh *hist_interpolate(const promql_fcall *c, const promql_fh *h1, int64_t t1,
                                   const promql_fh *h2, int64_t t2, int64_t t, bool counter,
                                   uint32_t pos)
{
    if (t == t1) return promql_fh_copy(h1);
    if (t == t2) return promql_fh_copy(h2);
    double frac = (double)(t - t1) / (double)(t2 - t1);
    promql_fh *r = promql_fh_copy(h2);
    if (counter && promql_fh_detect_reset(h2, h1)) {
        promql_fh_scale(r, frac, false);
        return r;
    }
    bool rec = false;
    if (promql_fh_add(r, h1, true, NULL, &rec) < 0) {
        promql_fh_free(r);
        return NULL;
    }
    if (rec) reconciled_info(c, pos, "subtraction");
    promql_fh_scale(r, frac, false);
    if (promql_fh_add(r, h1, false, NULL, &rec) < 0) {
        promql_fh_free(r);
        return NULL;
    }
    if (rec) reconciled_info(c, pos, "addition");
    return r;
}

/* h += o with Prometheus's annotations; false (warned) on incompatible
 * schemas. */
static bool hist_add_anno(const promql_fcall *c, promql_fh *h, const promql_fh *o, bool sub,
                          uint32_t pos)
{
    bool rec = false;
    if (promql_fh_add(h, o, sub, NULL, &rec) < 0) {
        hist_warn_named(c, pos, MIXED_SCHEMA_MSG);
        return false;
    }
    if (rec) reconciled_info(c, pos, sub ? "subtraction" : "addition");
    return true;
}

/* extendedHistogramRate: rate, increase, delta over anchored or smoothed
 * range selectors. */
static int hist_extended(const promql_fcall *c, bool counter, bool rate, uint32_t pos,
                         promql_fh **out)
{
    const promql_hpoint *h = c->hpts;
    size_t last = c->nh - 1;
    int64_t range_start = c->ts - (c->range_ms + c->offset_ms), range_end = c->ts - c->offset_ms;
    size_t first = 0;
    while (first < last && !(h[first].t > range_start))
        first++;
    first = first > 0 ? first - 1 : 0;
    if (c->smoothed) {
        size_t l = 0;
        while (l < last && !(h[l].t >= range_end))
            l++;
        last = l;
    }
    if (h[last].t <= range_start) return 0;
    if (c->smoothed && h[first].t > range_end) return 0;
    bool custom = promql_fh_custom(h[first].h);
    for (size_t i = first; i <= last; i++) {
        if (promql_fh_custom(h[i].h) != custom) {
            hist_warn_named(c, pos, MIXED_SCHEMA_MSG);
            return 0;
        }
        if (counter && h[i].h->hint == PROMQL_FH_GAUGE) hist_warn_named(c, pos, NOT_COUNTER_MSG);
    }
    promql_fh *left, *right;
    if (c->smoothed && h[first].t < range_start)
        left = hist_interpolate(c, h[first].h, h[first].t, h[first + 1].h, h[first + 1].t,
                                range_start, counter, pos);
    else
        left = promql_fh_copy(h[first].h);
    if (c->smoothed && last > 0 && h[last].t > range_end)
        right = hist_interpolate(c, h[last - 1].h, h[last - 1].t, h[last].h, h[last].t, range_end,
                                 counter, pos);
    else
        right = promql_fh_copy(h[last].h);
    promql_fh *res = NULL, *corr = NULL;
    if (!left || !right) {
        hist_warn_named(c, pos, MIXED_SCHEMA_MSG);
        goto out;
    }
    if (!counter && (left->hint != PROMQL_FH_GAUGE || right->hint != PROMQL_FH_GAUGE))
        hist_warn_named(c, pos, NOT_GAUGE_MSG);
    res = promql_fh_copy(right);
    if (!hist_add_anno(c, res, left, true, pos)) goto fail;
    if (counter) {
        size_t f = first + 1;
        const promql_fh *prev = left;
        if (c->smoothed && h[first].t < range_start &&
            promql_fh_detect_reset(h[first + 1].h, h[first].h)) {
            prev = h[first + 1].h;
            f++;
        }
        for (size_t i = f; i + 1 <= last; i++) { /* h[f .. last-1] */
            if (promql_fh_detect_reset(h[i].h, prev)) {
                if (!corr)
                    corr = promql_fh_copy(prev);
                else if (!hist_add_anno(c, corr, prev, false, pos))
                    goto fail;
            }
            prev = h[i].h;
        }
        if (f <= last && promql_fh_detect_reset(right, prev)) {
            if (!corr)
                corr = promql_fh_copy(prev);
            else if (!hist_add_anno(c, corr, prev, false, pos))
                goto fail;
        }
        if (corr && !hist_add_anno(c, res, corr, false, pos)) goto fail;
    }
    if (rate) promql_fh_scale(res, (double)c->range_ms / 1000.0, true);
    res->hint = PROMQL_FH_GAUGE;
    promql_fh_compact(res);
    *out = res;
    res = NULL;
    promql_fh_free(left);
    promql_fh_free(right);
    promql_fh_free(corr);
    return 1;
fail:
    promql_fh_free(res);
out:
    promql_fh_free(left);
    promql_fh_free(right);
    promql_fh_free(corr);
    return 0;
}

int promql_range_hist(const promql_fcall *c, double *v, promql_fh **out)
{
    const char *f = c->call->call.func->name;
    size_t fl = strlen(f);
#define IS(s) (fl == sizeof(s) - 1 && memcmp(f, s, fl) == 0)
    uint32_t pos = arg_pos(c, 0);
    *out = NULL;
    if (IS("count_over_time")) {
        *v = (double)(c->n + c->nh);
        return 1;
    }
    if (IS("present_over_time") || IS("absent_over_time")) {
        *v = 1;
        return 1;
    }
    if (IS("ts_of_last_over_time") || IS("ts_of_first_over_time")) {
        bool last = IS("ts_of_last_over_time");
        int64_t t = last ? c->hpts[c->nh - 1].t : c->hpts[0].t;
        if (c->n) {
            int64_t ft = last ? c->pts[c->n - 1].t : c->pts[0].t;
            if (last ? ft > t : ft < t) t = ft;
        }
        *v = (double)t / 1000;
        return 1;
    }
    if (c->n && (IS("min_over_time") || IS("max_over_time") || IS("stddev_over_time") ||
                 IS("stdvar_over_time") || IS("mad_over_time") || IS("quantile_over_time") ||
                 IS("deriv") || IS("predict_linear") || IS("double_exponential_smoothing"))) {
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        const char *name;
        size_t nl = metric_name(c->metric, &name);
        expfmt_quote_go(buf_sink, &b, nl ? name : "", nl);
        promql_anno_add(c->anno, PROMQL_ANNO_INFO, pos,
                        "ignored histograms in a range containing both floats and histograms for "
                        "metric name %s",
                        buf_cstr(&b));
        buf_cleanup(&b);
        return -2;
    }
    if (IS("last_over_time") || IS("first_over_time")) {
        bool last = IS("last_over_time");
        bool use_h = c->n == 0 || (last ? c->hpts[c->nh - 1].t > c->pts[c->n - 1].t
                                        : c->hpts[0].t < c->pts[0].t);
        if (!use_h) return -2;
        *out = promql_fh_copy(c->hpts[last ? c->nh - 1 : 0].h);
        return 1;
    }
    if (IS("resets") || IS("changes")) {
        bool resets = IS("resets");
        size_t i = 0, j = 0, cnt = 0;
        if (c->anchored) { /* pickFirstSampleIndices */
            int64_t rs = c->ts - (c->range_ms + c->offset_ms);
            size_t fle = 0, hle = 0; /* counts of points at or before the range start */
            while (fle < c->n && c->pts[fle].t <= rs)
                fle++;
            while (hle < c->nh && c->hpts[hle].t <= rs)
                hle++;
            if (fle >= c->n && hle >= c->nh) return 0;
            if (fle == 0 && hle == 0) {
                /* from the start */
            } else if (hle == 0 || (fle > 0 && c->pts[fle - 1].t >= c->hpts[hle - 1].t)) {
                i = fle - 1;
                j = hle;
            } else {
                i = fle;
                j = hle - 1;
            }
        }
        const promql_fh *ph = NULL;
        double pf = 0;
        bool first = true;
        while (i < c->n || j < c->nh) {
            const promql_fh *ch = NULL;
            double cf = 0;
            if (j >= c->nh || (i < c->n && c->pts[i].t < c->hpts[j].t)) {
                cf = c->pts[i++].v;
            } else {
                ch = c->hpts[j++].h;
            }
            if (!first) {
                if (!ph && !ch) {
                    if (resets ? cf < pf : (cf != pf && !(isnan(cf) && isnan(pf)))) cnt++;
                } else if (!ph || !ch) {
                    cnt++;
                } else if (resets ? promql_fh_detect_reset(ch, ph) : !promql_fh_equal(ch, ph)) {
                    cnt++;
                }
            }
            first = false;
            ph = ch;
            pf = cf;
        }
        *v = (double)cnt;
        return 1;
    }
    bool anch = c->anchored || c->smoothed;
    if (IS("rate") || IS("increase") || IS("delta")) {
        if (c->n) {
            hist_warn_named(c, pos, MIXED_MSG);
            return 0;
        }
        if (anch) return hist_extended(c, !IS("delta"), IS("rate"), pos, out);
        return hist_extrapolated(c, !IS("delta"), IS("rate"), pos, out);
    }
    if (IS("irate") || IS("idelta")) return hist_instant(c, IS("irate"), pos, v, out);
    if (IS("sum_over_time") || IS("avg_over_time")) {
        if (c->n) {
            hist_warn_named(c, pos, MIXED_MSG);
            return 0;
        }
        return hist_sum_avg(c, IS("avg_over_time"), pos, out);
    }
#undef IS
    return -2;
}

/* ---- the table ----------------------------------------------------------------------------- */

#define AT_UNSAFE PROMQL_F_AT_UNSAFE
#define ANCH PROMQL_F_ANCHORED_SAFE
#define SMOOTH PROMQL_F_SMOOTHED_SAFE

static const promql_fdef fdefs[] = {
    {"abs", NULL, f_abs, 0},
    {"absent", NULL, f_absent, PROMQL_F_HIST},
    {"absent_over_time", f_absent_over_time, NULL, 0},
    {"acos", NULL, f_acos, 0},
    {"acosh", NULL, f_acosh, 0},
    {"asin", NULL, f_asin, 0},
    {"asinh", NULL, f_asinh, 0},
    {"atan", NULL, f_atan, 0},
    {"atanh", NULL, f_atanh, 0},
    {"avg_over_time", f_avg_over_time, NULL, 0},
    {"ceil", NULL, f_ceil, 0},
    {"changes", f_changes, NULL, ANCH},
    {"clamp", NULL, f_clamp, 0},
    {"clamp_max", NULL, f_clamp_max, 0},
    {"clamp_min", NULL, f_clamp_min, 0},
    {"cos", NULL, f_cos, 0},
    {"cosh", NULL, f_cosh, 0},
    {"count_over_time", f_count_over_time, NULL, 0},
    {"day_of_month", NULL, f_day_of_month, AT_UNSAFE},
    {"day_of_week", NULL, f_day_of_week, AT_UNSAFE},
    {"day_of_year", NULL, f_day_of_year, AT_UNSAFE},
    {"days_in_month", NULL, f_days_in_month, AT_UNSAFE},
    {"deg", NULL, f_deg, 0},
    {"delta", f_delta, NULL, ANCH | SMOOTH},
    {"deriv", f_deriv, NULL, 0},
    {"double_exponential_smoothing", f_double_exponential_smoothing, NULL, 0},
    {"end", NULL, NULL, AT_UNSAFE | PROMQL_F_QUERY_CONST},
    {"exp", NULL, f_exp, 0},
    {"first_over_time", f_first_over_time, NULL, PROMQL_F_KEEP_NAME},
    {"floor", NULL, f_floor, 0},
    {"histogram_avg", NULL, f_histogram_avg, PROMQL_F_HIST},
    {"histogram_count", NULL, f_histogram_count, PROMQL_F_HIST},
    {"histogram_fraction", NULL, f_histogram_fraction, PROMQL_F_HIST},
    {"histogram_quantile", NULL, f_histogram_quantile, PROMQL_F_HIST},
    {"histogram_quantiles", NULL, f_histogram_quantiles, PROMQL_F_HIST},
    {"histogram_stddev", NULL, f_histogram_stddev, PROMQL_F_HIST},
    {"histogram_stdvar", NULL, f_histogram_stdvar, PROMQL_F_HIST},
    {"histogram_sum", NULL, f_histogram_sum, PROMQL_F_HIST},
    {"hour", NULL, f_hour, AT_UNSAFE},
    {"idelta", f_idelta, NULL, 0},
    {"increase", f_increase, NULL, ANCH | SMOOTH | PROMQL_F_RESETS | PROMQL_F_ST},
    {"info", NULL, NULL, PROMQL_F_SPECIAL},
    {"irate", f_irate, NULL, PROMQL_F_ST},
    {"label_join", NULL, NULL, PROMQL_F_SPECIAL},
    {"label_replace", NULL, NULL, PROMQL_F_SPECIAL},
    {"last_over_time", f_last_over_time, NULL, PROMQL_F_KEEP_NAME},
    {"ln", NULL, f_ln, 0},
    {"log10", NULL, f_log10, 0},
    {"log2", NULL, f_log2, 0},
    {"mad_over_time", f_mad_over_time, NULL, 0},
    {"max_of", NULL, f_max_of, 0},
    {"max_over_time", f_max_over_time, NULL, 0},
    {"min_of", NULL, f_min_of, 0},
    {"min_over_time", f_min_over_time, NULL, 0},
    {"minute", NULL, f_minute, AT_UNSAFE},
    {"month", NULL, f_month, AT_UNSAFE},
    {"pi", NULL, f_pi, 0},
    {"predict_linear", f_predict_linear, NULL, AT_UNSAFE},
    {"present_over_time", f_present_over_time, NULL, 0},
    {"quantile_over_time", f_quantile_over_time, NULL, 0},
    {"rad", NULL, f_rad, 0},
    {"range", NULL, NULL, AT_UNSAFE | PROMQL_F_QUERY_CONST},
    {"rate", f_rate, NULL, ANCH | SMOOTH | PROMQL_F_RESETS | PROMQL_F_ST},
    {"resets", f_resets, NULL, ANCH | PROMQL_F_ST},
    {"round", NULL, f_round, 0},
    {"scalar", NULL, f_scalar, 0},
    {"sgn", NULL, f_sgn, 0},
    {"sin", NULL, f_sin, 0},
    {"sinh", NULL, f_sinh, 0},
    {"sort", NULL, f_sort, PROMQL_F_SORT},
    {"sort_by_label", NULL, f_sort_by_label, PROMQL_F_SORT},
    {"sort_by_label_desc", NULL, f_sort_by_label_desc, PROMQL_F_SORT},
    {"sort_desc", NULL, f_sort_desc, PROMQL_F_SORT},
    {"sqrt", NULL, f_sqrt, 0},
    {"start", NULL, NULL, AT_UNSAFE | PROMQL_F_QUERY_CONST},
    {"start_timestamp", NULL, f_nothing, 0},
    {"stddev_over_time", f_stddev_over_time, NULL, 0},
    {"stdvar_over_time", f_stdvar_over_time, NULL, 0},
    {"step", NULL, NULL, AT_UNSAFE | PROMQL_F_QUERY_CONST},
    {"sum_over_time", f_sum_over_time, NULL, 0},
    {"tan", NULL, f_tan, 0},
    {"tanh", NULL, f_tanh, 0},
    {"time", NULL, f_time, AT_UNSAFE},
    {"timestamp", NULL, f_timestamp, AT_UNSAFE},
    {"ts_of_first_over_time", f_ts_of_first_over_time, NULL, 0},
    {"ts_of_last_over_time", f_ts_of_last_over_time, NULL, 0},
    {"ts_of_max_over_time", f_ts_of_max_over_time, NULL, 0},
    {"ts_of_min_over_time", f_ts_of_min_over_time, NULL, 0},
    {"vector", NULL, f_vector, 0},
    {"year", NULL, f_year, AT_UNSAFE},
};

const promql_fdef *promql_func_find(const char *name)
{
    size_t lo = 0, hi = sizeof fdefs / sizeof fdefs[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(fdefs[mid].name, name);
        if (c == 0) return &fdefs[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}
