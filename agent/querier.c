#include "querier.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "mem.h"
#include "strutil.h"

/* The engine's points and the store's samples are the same pair; the
 * querier hands the store's arrays over without copying. */
_Static_assert(sizeof(promql_fpoint) == sizeof(store_sample) &&
                   offsetof(promql_fpoint, t) == offsetof(store_sample, t) &&
                   offsetof(promql_fpoint, v) == offsetof(store_sample, v),
               "promql_fpoint and store_sample must have the same layout");

/* The deadline is checked every this many series (reading a series costs
 * microseconds; a clock read is cheaper still, but not free). */
#define QUERIER_DEADLINE_EVERY 16

int64_t querier_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int querier_begin(querier *q, store_reader *r, const querier_options *o)
{
    memset(q, 0, sizeof *q);
    q->r = r;
    if (o) q->o = *o;
    int rc = store_reader_begin(r);
    if (rc < 0) return rc;
    q->snapshot = true;
    return 0;
}

void querier_end(querier *q)
{
    if (q->snapshot) store_reader_end(q->r);
    q->snapshot = false;
}

/* Frees what a failed select put into out and empties it. */
static void discard(promql_matrix *out)
{
    for (size_t i = 0; i < out->n; i++) {
        labels_free(out->v[i].metric);
        mem_free(out->v[i].pts);
        promql_series_free_hists(&out->v[i]);
    }
    mem_free(out->v);
    memset(out, 0, sizeof *out);
}

static int select_series(void *ctx, const label_matcher *ms, size_t n, int64_t mint, int64_t maxt,
                         promql_matrix *out, buf *err)
{
    querier *q = ctx;
    store_select_result res;
    int rc = store_select(q->r, ms, n, mint, maxt, &res);
    if (rc < 0) {
        buf_printf(err, "selecting series: %s", strerror(-rc));
        return rc;
    }
    for (size_t i = 0; i < res.n; i++) {
        if (q->o.deadline_ms && i % QUERIER_DEADLINE_EVERY == 0 &&
            querier_now_ms() >= q->o.deadline_ms) {
            q->limit = QUERIER_LIMIT_DEADLINE;
            buf_puts(err, "query timed out in expression evaluation");
            rc = -ETIMEDOUT;
            break;
        }
        store_sample *ss;
        size_t ns;
        rc = store_read_samples(q->r, res.series[i].ref, mint, maxt, &ss, &ns);
        if (rc < 0) {
            buf_printf(err, "reading samples: %s", strerror(-rc));
            break;
        }
        store_hsample *hs = NULL;
        size_t nh = 0;
        rc = store_read_histograms(q->r, res.series[i].ref, mint, maxt, &hs, &nh);
        if (rc < 0) {
            mem_free(ss);
            buf_printf(err, "reading histogram samples: %s", strerror(-rc));
            break;
        }
        if (ns == 0 && nh == 0) {
            mem_free(ss);
            continue;
        }
        /* Histogram staleness markers become float ones (the engine's
         * form), merged into the float points by time. */
        size_t nstale = 0;
        for (size_t k = 0; k < nh; k++) nstale += nhist_is_stale(&hs[k].h);
        if (nstale) {
            store_sample *m = mem_malloc((ns + nstale) * sizeof *m);
            size_t a = 0, o = 0;
            for (size_t k = 0; k < nh; k++) {
                if (!nhist_is_stale(&hs[k].h)) continue;
                while (a < ns && ss[a].t < hs[k].t) m[o++] = ss[a++];
                m[o++] = (store_sample){hs[k].t, strutil_stale_nan()};
            }
            while (a < ns) m[o++] = ss[a++];
            mem_free(ss);
            ss = m;
            ns = o;
        }
        q->samples += (int64_t)(ns + nh - nstale);
        if (q->o.max_samples > 0 && q->samples > q->o.max_samples) {
            mem_free(ss);
            store_hsamples_free(hs, nh);
            q->limit = QUERIER_LIMIT_SAMPLES;
            buf_puts(err, "query processing would load too many samples into memory in query "
                          "execution");
            rc = -E2BIG;
            break;
        }
        out->v = mem_grow(out->v, sizeof *out->v, out->n + 1, &out->cap);
        promql_series *s = &out->v[out->n++];
        memset(s, 0, sizeof *s);
        s->metric = res.series[i].labels;
        res.series[i].labels = NULL;
        s->pts = (promql_fpoint *)ss;
        s->n = s->cap = ns;
        for (size_t k = 0; k < nh; k++)
            if (!nhist_is_stale(&hs[k].h))
                promql_series_add_hist(s, hs[k].t, promql_fh_from_nhist(&hs[k].h));
        store_hsamples_free(hs, nh);
        q->series++;
    }
    store_select_result_free(&res);
    if (rc < 0) {
        discard(out);
        return rc;
    }
    return 0;
}

void querier_queryable(querier *q, promql_queryable *out)
{
    out->ctx = q;
    out->select = select_series;
}
