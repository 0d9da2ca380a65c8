#include "promql/memstore.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "mem.h"

typedef struct ms_point {
    int64_t t;
    double v;
    int64_t st; /* start timestamp; 0 = unknown */
    promql_fh *h; /* a native histogram sample (owned), or NULL */
} ms_point;

typedef struct ms_series {
    labels *ls;    /* owned */
    ms_point *pts; /* sorted by t, unique t */
    size_t n, cap;
} ms_series;

struct memstore {
    hmap index; /* labels hash -> ms_series */
    ms_series **series;
    size_t n, cap;
    size_t points, max_points;
    uint64_t hist_selected;
};

memstore *memstore_new(size_t max_points)
{
    memstore *ms = mem_calloc(1, sizeof *ms);
    hmap_init(&ms->index);
    ms->max_points = max_points ? max_points : MEMSTORE_DEFAULT_MAX_POINTS;
    return ms;
}

void memstore_clear(memstore *ms)
{
    for (size_t i = 0; i < ms->n; i++) {
        for (size_t k = 0; k < ms->series[i]->n; k++)
            promql_fh_free(ms->series[i]->pts[k].h);
        labels_free(ms->series[i]->ls);
        mem_free(ms->series[i]->pts);
        mem_free(ms->series[i]);
    }
    mem_free(ms->series);
    ms->series = NULL;
    ms->n = ms->cap = 0;
    ms->points = 0;
    hmap_cleanup(&ms->index);
    hmap_init(&ms->index);
}

void memstore_free(memstore *ms)
{
    if (!ms) return;
    memstore_clear(ms);
    mem_free(ms);
}

static bool series_eq(const void *val, const void *key)
{
    return labels_equal(((const ms_series *)val)->ls, key);
}

/* The series `ls`, created if needed; NULL (message in err) for {}. */
static ms_series *series_get(memstore *ms, const labels *ls, buf *err)
{
    if (ls->n == 0) {
        buf_puts(err, "empty label set: a series needs at least one label");
        return NULL;
    }
    uint64_t h = labels_hash(ls);
    ms_series *s = hmap_get(&ms->index, h, series_eq, ls);
    if (s) return s;
    s = mem_calloc(1, sizeof *s);
    s->ls = labels_dup(ls);
    ms->series = mem_grow(ms->series, sizeof *ms->series, ms->n + 1, &ms->cap);
    ms->series[ms->n++] = s;
    hmap_put(&ms->index, h, s);
    return s;
}

/* Index of the first point with time >= t. */
static size_t lower_bound(const ms_point *p, size_t n, int64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p[mid].t < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int put_point(memstore *ms, const labels *ls, int64_t t, double v, int64_t st,
                     const promql_fh *hist, buf *err)
{
    ms_series *s = series_get(ms, ls, err);
    if (!s) return -EINVAL;
    size_t i = s->n && s->pts[s->n - 1].t < t ? s->n : lower_bound(s->pts, s->n, t);
    if (i < s->n && s->pts[i].t == t) {
        s->pts[i].v = v;
        s->pts[i].st = st;
        promql_fh_free(s->pts[i].h);
        s->pts[i].h = hist ? promql_fh_copy(hist) : NULL;
        return 0;
    }
    if (ms->points >= ms->max_points) {
        buf_printf(err, "too many samples: the in-memory store holds at most %zu", ms->max_points);
        return -E2BIG;
    }
    s->pts = mem_grow(s->pts, sizeof *s->pts, s->n + 1, &s->cap);
    memmove(s->pts + i + 1, s->pts + i, (s->n - i) * sizeof *s->pts);
    s->pts[i] = (ms_point){t, v, st, hist ? promql_fh_copy(hist) : NULL};
    s->n++;
    ms->points++;
    return 0;
}

int memstore_append(memstore *ms, const labels *ls, int64_t t, double v, buf *err)
{
    return put_point(ms, ls, t, v, 0, NULL, err);
}

int memstore_append_st(memstore *ms, const labels *ls, int64_t t, double v, int64_t st, buf *err)
{
    return put_point(ms, ls, t, v, st, NULL, err);
}

int memstore_append_histogram(memstore *ms, const labels *ls, int64_t t, const promql_fh *h,
                              buf *err)
{
    return put_point(ms, ls, t, 0, 0, h, err);
}

size_t memstore_series_count(const memstore *ms)
{
    return ms->n;
}

size_t memstore_point_count(const memstore *ms)
{
    return ms->points;
}

static int cmp_series(const void *a, const void *b)
{
    return labels_compare(((const promql_series *)a)->metric, ((const promql_series *)b)->metric);
}

/* The counter reset hint a histogram sample reads back with from
 * Prometheus's head chunks: gauge histograms keep theirs; the first of a
 * run of histograms (after a float, a gauge or nothing) is unknown unless
 * written as a reset; a later one that is a detected reset starts a new
 * chunk and reads back as unknown (prometheus/prometheus#15346), the
 * others as not_reset. */
static enum promql_fh_hint stored_hint(const promql_fh *h, const promql_fh *prev)
{
    if (h->hint == PROMQL_FH_GAUGE) return PROMQL_FH_GAUGE;
    if (h->hint == PROMQL_FH_RESET) return PROMQL_FH_RESET;
    if (!prev || prev->hint == PROMQL_FH_GAUGE) return PROMQL_FH_UNKNOWN;
    promql_fh tmp = *h;
    tmp.hint = PROMQL_FH_UNKNOWN;
    return promql_fh_detect_reset(&tmp, prev) ? PROMQL_FH_UNKNOWN : PROMQL_FH_NOT_RESET;
}

int memstore_select(void *ctx, const label_matcher *m, size_t n, int64_t mint, int64_t maxt,
                    promql_matrix *out, buf *err)
{
    (void)err;
    memstore *ms = ctx;
    for (size_t i = 0; i < ms->n; i++) {
        const ms_series *s = ms->series[i];
        if (!labels_match_all(s->ls, m, n)) continue;
        size_t lo = lower_bound(s->pts, s->n, mint), hi = lo, floats = 0, sts = 0, hists = 0;
        for (; hi < s->n && s->pts[hi].t <= maxt; hi++) {
            if (s->pts[hi].h) {
                ms->hist_selected++;
                hists++;
            } else {
                floats++;
                sts += s->pts[hi].st != 0;
            }
        }
        if (!floats && !hists) continue;
        out->v = mem_grow(out->v, sizeof *out->v, out->n + 1, &out->cap);
        promql_series *ps = &out->v[out->n++];
        memset(ps, 0, sizeof *ps);
        ps->metric = labels_dup(s->ls);
        if (floats) ps->pts = mem_malloc(floats * sizeof *ps->pts);
        ps->cap = floats;
        if (sts) ps->st = mem_malloc(floats * sizeof *ps->st);
        const promql_fh *prev = NULL; /* the histogram before point k, if point k-1 is one */
        size_t k0 = lo;
        if (hists) { /* hints depend on the history: start where the run of histograms starts */
            while (k0 > 0 && s->pts[k0 - 1].h)
                k0--;
        }
        for (size_t k = k0; k < lo; k++)
            prev = s->pts[k].h;
        for (size_t k = lo; k < hi; k++) {
            if (s->pts[k].h) {
                promql_fh *h = promql_fh_copy(s->pts[k].h);
                h->hint = stored_hint(s->pts[k].h, prev);
                promql_series_add_hist(ps, s->pts[k].t, h);
                prev = s->pts[k].h;
                continue;
            }
            prev = NULL;
            if (ps->st) ps->st[ps->n] = s->pts[k].st;
            ps->pts[ps->n++] = (promql_fpoint){s->pts[k].t, s->pts[k].v};
        }
    }
    if (out->n > 1) qsort(out->v, out->n, sizeof *out->v, cmp_series);
    return 0;
}

promql_queryable memstore_queryable(memstore *ms)
{
    return (promql_queryable){.ctx = ms, .select = memstore_select};
}

uint64_t memstore_histograms_selected(const memstore *ms)
{
    return ms->hist_selected;
}

void memstore_reset_histograms_selected(memstore *ms)
{
    ms->hist_selected = 0;
}
