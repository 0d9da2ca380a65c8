/* promql/anno: collecting, deduplicating and rendering query annotations. */
#include "promql/anno.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "expfmt.h"
#include "mem.h"
#include "strutil.h"

void promql_anno_init(promql_anno_set *s)
{
    s->v = NULL;
    s->n = s->cap = 0;
    hmap_init(&s->idx);
}

void promql_anno_cleanup(promql_anno_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        mem_free(s->v[i].msg);
    mem_free(s->v);
    hmap_cleanup(&s->idx);
    promql_anno_init(s);
}

/* hmap values are entry indexes + 1; the lookup key is the message. */
typedef struct anno_key {
    const promql_anno_set *set;
    const char *msg;
    size_t len;
} anno_key;

static bool anno_eq(const void *val, const void *key)
{
    const anno_key *k = key;
    const promql_anno *a = &k->set->v[(uintptr_t)val - 1];
    return a->msg_len == k->len && memcmp(a->msg, k->msg, k->len) == 0;
}

/* Finds the entry for msg, or appends a new one (taking msg). */
static promql_anno *anno_find_or_add(promql_anno_set *s, enum promql_anno_kind kind, char *msg,
                                     size_t len, bool *added)
{
    uint64_t h = strutil_hash64(msg, len, 0);
    anno_key k = {s, msg, len};
    void *v = hmap_get(&s->idx, h, anno_eq, &k);
    if (v) {
        mem_free(msg);
        *added = false;
        return &s->v[(uintptr_t)v - 1];
    }
    s->v = mem_grow(s->v, sizeof *s->v, s->n + 1, &s->cap);
    promql_anno *a = &s->v[s->n++];
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->msg = msg;
    a->msg_len = len;
    a->hash = h;
    hmap_put(&s->idx, h, (void *)(uintptr_t)s->n);
    *added = true;
    return a;
}

void promql_anno_add(promql_anno_set *s, enum promql_anno_kind kind, uint32_t pos, const char *fmt,
                     ...)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_puts(&b, kind == PROMQL_ANNO_INFO ? "PromQL info: " : "PromQL warning: ");
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    size_t len;
    char *msg = buf_detach(&b, &len);
    bool added;
    promql_anno *a = anno_find_or_add(s, kind, msg, len, &added);
    a->pos = pos;
}

void promql_anno_add_monotonicity(promql_anno_set *s, const char *metric, size_t metric_len,
                                  uint32_t pos, int64_t ts, double min_bucket, double max_bucket,
                                  double max_diff)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_puts(&b, "PromQL info: input to histogram_quantile needed to be fixed for monotonicity "
                 "(see https://prometheus.io/docs/prometheus/latest/querying/functions/"
                 "#histogram_quantile)");
    if (metric_len) {
        buf_puts(&b, " for metric name ");
        expfmt_quote_go(buf_sink, &b, metric, metric_len);
    }
    size_t len;
    char *msg = buf_detach(&b, &len);
    bool added;
    promql_anno *a = anno_find_or_add(s, PROMQL_ANNO_INFO, msg, len, &added);
    if (added) {
        a->monotonicity = true;
        a->pos = pos;
        a->min_ts = a->max_ts = ts;
        a->min_bucket = min_bucket;
        a->max_bucket = max_bucket;
        a->max_diff = max_diff;
        a->count = 0;
        return;
    }
    if (ts < a->min_ts) a->min_ts = ts;
    if (ts > a->max_ts) a->max_ts = ts;
    if (min_bucket < a->min_bucket) a->min_bucket = min_bucket;
    if (max_bucket > a->max_bucket) a->max_bucket = max_bucket;
    if (max_diff > a->max_diff) a->max_diff = max_diff;
    a->count++;
}

/* Go's time.Unix(ms/1000, 0).UTC().Format(time.RFC3339). */
static void format_rfc3339(buf *out, int64_t ms)
{
    char t[40];
    buf_append(out, t, strutil_format_rfc3339(ms / 1000, 0, t));
}

/* Go's %.2g. */
static void format_g2(buf *out, double f)
{
    char tmp[EXPFMT_FLOAT_MAX];
    if (f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308) {
        expfmt_format_float(f, tmp);
        buf_puts(out, tmp);
        return;
    }
    buf_printf(out, "%.2g", f);
}

void promql_anno_render(const promql_anno_set *s, const char *query, size_t query_len,
                        promql_annotations *out)
{
    for (size_t i = 0; i < s->n; i++) {
        const promql_anno *a = &s->v[i];
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        buf_append(&b, a->msg, a->msg_len);
        if (a->monotonicity) {
            char tmp[EXPFMT_FLOAT_MAX];
            expfmt_format_float(a->min_bucket, tmp);
            buf_printf(&b, ", from buckets %s", tmp);
            expfmt_format_float(a->max_bucket, tmp);
            buf_printf(&b, " to %s, with a max diff of ", tmp);
            format_g2(&b, a->max_diff);
            buf_printf(&b, ", over %lld samples from ", (long long)(a->count + 1));
            format_rfc3339(&b, a->min_ts);
            buf_puts(&b, " to ");
            format_rfc3339(&b, a->max_ts);
        }
        buf_puts(&b, " (");
        promql_pos_format(query, query_len, a->pos, &b);
        buf_putc(&b, ')');
        char *msg = buf_detach(&b, NULL);
        if (a->kind == PROMQL_ANNO_INFO) {
            out->infos = mem_realloc(out->infos, (out->n_infos + 1) * sizeof *out->infos);
            out->infos[out->n_infos++] = msg;
        } else {
            out->warnings = mem_realloc(out->warnings, (out->n_warnings + 1) * sizeof *out->warnings);
            out->warnings[out->n_warnings++] = msg;
        }
    }
}
