#include "protoparse.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "metrics.pb-c.h"
#include "textparse.h"

typedef Io__Prometheus__Client__MetricFamily pb_family;
typedef Io__Prometheus__Client__Metric pb_metric;
typedef Io__Prometheus__Client__Histogram pb_histogram;
typedef Io__Prometheus__Client__Exemplar pb_exemplar;
typedef Io__Prometheus__Client__Timestamp pb_timestamp;

#define T_COUNTER IO__PROMETHEUS__CLIENT__METRIC_TYPE__COUNTER
#define T_GAUGE IO__PROMETHEUS__CLIENT__METRIC_TYPE__GAUGE
#define T_SUMMARY IO__PROMETHEUS__CLIENT__METRIC_TYPE__SUMMARY
#define T_UNTYPED IO__PROMETHEUS__CLIENT__METRIC_TYPE__UNTYPED
#define T_HISTOGRAM IO__PROMETHEUS__CLIENT__METRIC_TYPE__HISTOGRAM
#define T_GAUGE_HISTOGRAM IO__PROMETHEUS__CLIENT__METRIC_TYPE__GAUGE_HISTOGRAM

/* Unpacking may allocate far more than the message's bytes (an empty
 * Metric is 2 bytes on the wire and ~100 in memory): the allocator caps
 * the total at ALLOC_FACTOR times the message size plus ALLOC_SLACK.
 * protobuf-c allocates every submessage and string on its own; all of a
 * family's memory is released at once, so it comes from a bump arena of
 * ARENA_BLOCK-byte blocks (the first kept from family to family) instead
 * of malloc: that was a third of the parse time. */
#define ALLOC_FACTOR 32
#define ALLOC_SLACK ((size_t)1 << 20)
#define ARENA_BLOCK ((size_t)64 << 10)

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[];
} arena_block;

typedef struct label_view {
    const char *n, *v;
    size_t nl, vl;
} label_view;

typedef struct exemplar_view {
    double value;
    bool has_ts;
    int64_t ts;
    size_t first, n; /* in ex_labels */
} exemplar_view;

/* Where the current metric is in its sequence of entries. */
enum phase {
    PH_START,   /* nothing returned for this metric yet */
    PH_NATIVE,  /* the native histogram was returned */
    PH_CLASSIC, /* classic series; field_pos says which */
    PH_NHCB,    /* the classic histogram converted was returned */
    PH_DONE,
};

struct protoparse {
    const uint8_t *data;
    size_t len, pos;
    protoparse_options o;

    ProtobufCAllocator alloc;
    size_t alloc_live, alloc_cap;
    bool alloc_refused;  /* the cap stopped the last unpack */
    arena_block *blocks; /* newest first; the last one is kept */

    pb_family *mf;
    size_t mi;          /* current metric index */
    bool in_family;     /* mf has a current metric */
    bool sticky_classic; /* a classic histogram was read in this family */
    enum phase phase;
    int field_pos; /* -2 count, -1 sum, >= 0 bucket or quantile */
    bool fields_done;

    bool finished;
    enum protoparse_entry final;

    /* current entry */
    enum protoparse_entry entry;
    char *name; /* metric name (+ suffix) */
    size_t name_len, name_cap;
    char *key;
    size_t key_len, key_cap;
    label_view *labels;
    size_t n_labels, cap_labels;
    char magic[EXPFMT_FLOAT_MAX];
    double value;
    nhist h;
    exemplar_view *ex;
    size_t n_ex, cap_ex;
    label_view *ex_labels;
    size_t n_ex_labels, cap_ex_labels;

    char *err;
};

/* ---- allocation ------------------------------------------------------------ */

static void *grow(void *p, size_t elem, size_t need, size_t *cap)
{
    if (need == 0) need = 1;
    if (need <= *cap && p) return p;
    size_t nc = *cap ? *cap : 8;
    while (nc < need)
        nc *= 2;
    void *q = realloc(p, nc * elem);
    if (!q) return NULL;
    *cap = nc;
    return q;
}

static void *pb_alloc(void *data, size_t size)
{
    protoparse *p = data;
    size_t a = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (a < size || a > p->alloc_cap || p->alloc_live > p->alloc_cap - a) {
        p->alloc_refused = true;
        return NULL;
    }
    arena_block *b = p->blocks;
    if (!b || b->cap - b->used < a) {
        size_t cap = a > ARENA_BLOCK ? a : ARENA_BLOCK;
        arena_block *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->used = 0;
        nb->cap = cap;
        nb->next = b;
        p->blocks = b = nb;
    }
    void *r = (char *)b->data + b->used;
    b->used += a;
    p->alloc_live += a;
    return r;
}

/* Memory goes back all at once (arena_reset). */
static void pb_free(void *data, void *ptr)
{
    (void)data, (void)ptr;
}

/* Frees every block but the oldest, which is emptied for reuse (all when
 * `all`). */
static void arena_reset(protoparse *p, bool all)
{
    while (p->blocks && (all || p->blocks->next)) {
        arena_block *n = p->blocks->next;
        free(p->blocks);
        p->blocks = n;
    }
    if (p->blocks) p->blocks->used = 0;
    p->alloc_live = 0;
}

/* ---- errors -------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static int sbuf_sink(void *ctx, const char *s, size_t n)
{
    sbuf *b = ctx;
    if (b->oom) return -ENOMEM;
    char *q = grow(b->p, 1, b->len + n + 1, &b->cap);
    if (!q) {
        b->oom = true;
        return -ENOMEM;
    }
    b->p = q;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static void sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sbuf_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sbuf_sink(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Ends the parse with the message in b (or "out of memory"). */
static enum protoparse_entry fail_with(protoparse *p, sbuf *b)
{
    free(p->err);
    if (b->oom || !b->p) {
        free(b->p);
        p->err = NULL; /* protoparse_error falls back to "out of memory" */
    } else {
        p->err = b->p;
    }
    p->finished = true;
    p->final = PROTOPARSE_ERROR;
    return PROTOPARSE_ERROR;
}

static enum protoparse_entry failf(protoparse *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum protoparse_entry failf(protoparse *p, const char *fmt, ...)
{
    sbuf b = {0};
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sbuf_sink(&b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
    return fail_with(p, &b);
}

static enum protoparse_entry fail_oom(protoparse *p)
{
    sbuf b = {.oom = true};
    return fail_with(p, &b);
}

/* The family name quoted as Go's %q. */
static void put_quoted_name(protoparse *p, sbuf *b)
{
    expfmt_quote_go(sbuf_sink, b, (const char *)p->mf->name.data, p->mf->name.len);
}

/* ---- life cycle ---------------------------------------------------------------- */

int protoparse_new(protoparse **out, const uint8_t *data, size_t len, const protoparse_options *o)
{
    protoparse *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->data = data;
    p->len = data ? len : 0;
    if (o) p->o = *o;
    if (p->o.max_message_bytes == 0) p->o.max_message_bytes = PROTOPARSE_DEFAULT_MAX_MESSAGE;
    p->alloc.alloc = pb_alloc;
    p->alloc.free = pb_free;
    p->alloc.allocator_data = p;
    nhist_init(&p->h);
    *out = p;
    return 0;
}

static void drop_family(protoparse *p)
{
    p->mf = NULL; /* its memory is the arena's */
    arena_reset(p, false);
    p->in_family = false;
}

void protoparse_free(protoparse *p)
{
    if (!p) return;
    drop_family(p);
    arena_reset(p, true);
    free(p->name);
    free(p->key);
    free(p->labels);
    free(p->ex);
    free(p->ex_labels);
    nhist_cleanup(&p->h);
    free(p->err);
    free(p);
}

/* ---- reading families ------------------------------------------------------------ */

static bool utf8_ok(const ProtobufCBinaryData *d)
{
    return expfmt_utf8_valid((const char *)d->data, d->len);
}

/* Reads the next MetricFamily message. Returns 1 (p->mf set), 0 at the end
 * of the body, or -1 after recording an error. */
static int read_family(protoparse *p)
{
    drop_family(p);
    if (p->pos >= p->len) return 0;
    const uint8_t *b = p->data + p->pos;
    size_t left = p->len - p->pos, vlen = 0;
    uint64_t mlen = 0;
    /* Go's proto.DecodeVarint, then at most binary.MaxVarintLen32 bytes. */
    for (size_t i = 0; i < left && i < 10; i++) {
        mlen |= (uint64_t)(b[i] & 0x7f) << (7 * i);
        if (b[i] < 0x80) {
            vlen = i + 1;
            break;
        }
    }
    if (vlen == 0 || vlen > 5) {
        failf(p, "clientpb: invalid varint encountered");
        return -1;
    }
    if (mlen > left - vlen) {
        failf(p, "clientpb: insufficient length of buffer, expected at least %llu bytes, got %zu bytes",
              (unsigned long long)(vlen + mlen), left);
        return -1;
    }
    if (mlen > p->o.max_message_bytes) {
        failf(p, "protobuf message of %llu bytes at offset %zu exceeds the limit of %zu bytes",
              (unsigned long long)mlen, p->pos, p->o.max_message_bytes);
        return -1;
    }
    size_t at = p->pos;
    p->pos += vlen + (size_t)mlen;
    arena_reset(p, false);
    p->alloc_refused = false;
    p->alloc_cap = ALLOC_FACTOR * (size_t)mlen + ALLOC_SLACK;
    p->mf = io__prometheus__client__metric_family__unpack(&p->alloc, (size_t)mlen, b + vlen);
    if (!p->mf) {
        if (p->alloc_refused)
            failf(p, "protobuf message of %llu bytes at offset %zu needs too much memory to decode",
                  (unsigned long long)mlen, at);
        else
            failf(p, "protobuf: cannot decode the MetricFamily message of %llu bytes at offset %zu",
                  (unsigned long long)mlen, at);
        return -1;
    }
    return 1;
}

static bool is_native(const pb_histogram *h)
{
    return h && (h->n_positive_span > 0 || h->n_negative_span > 0 || h->zero_threshold > 0 ||
                 h->zero_count > 0);
}

static const pb_metric *cur(const protoparse *p)
{
    return p->mf->metric[p->mi];
}

static bool is_hist_type(int t)
{
    return t == T_HISTOGRAM || t == T_GAUGE_HISTOGRAM;
}

/* ---- building an entry -------------------------------------------------------------- */

static bool set_name(protoparse *p, const char *suffix)
{
    size_t nl = p->mf->name.len, sl = strlen(suffix);
    char *q = grow(p->name, 1, nl + sl + 1, &p->name_cap);
    if (!q) return false;
    p->name = q;
    if (nl) memcpy(p->name, p->mf->name.data, nl);
    memcpy(p->name + nl, suffix, sl + 1);
    p->name_len = nl + sl;
    return true;
}

/* Go's string order. */
static int cmp_bytes(const char *a, size_t al, const char *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return al < bl ? -1 : al > bl;
}

/* Stable insertion sort by name (label sets are small). */
static void sort_labels(label_view *l, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        label_view x = l[i];
        size_t j = i;
        while (j > 0 && cmp_bytes(l[j - 1].n, l[j - 1].nl, x.n, x.nl) > 0) {
            l[j] = l[j - 1];
            j--;
        }
        l[j] = x;
    }
}

static bool key_put(protoparse *p, const char *s, size_t n)
{
    char *q = grow(p->key, 1, p->key_len + n + 1, &p->key_cap);
    if (!q) return false;
    p->key = q;
    if (n) memcpy(p->key + p->key_len, s, n);
    p->key_len += n;
    return true;
}

/* Labels (validated), the magic label if any, the series key. Returns an
 * entry on failure, PROTOPARSE_END (meaning "fine") otherwise. */
static enum protoparse_entry build_labels(protoparse *p, const char *magic_name)
{
    const pb_metric *m = cur(p);
    size_t n = m->n_label + (magic_name ? 1 : 0);
    label_view *l = grow(p->labels, sizeof *l, n, &p->cap_labels);
    if (!l) return fail_oom(p);
    p->labels = l;
    p->n_labels = 0;
    for (size_t i = 0; i < m->n_label; i++) {
        const Io__Prometheus__Client__LabelPair *lp = m->label[i];
        if (lp->name.len == 0 || !utf8_ok(&lp->name))
            return failf(p, "invalid label name: %.*s", (int)lp->name.len,
                         lp->name.len ? (const char *)lp->name.data : "");
        if (!utf8_ok(&lp->value))
            return failf(p, "invalid label value: %.*s", (int)lp->value.len,
                         (const char *)lp->value.data);
        l[p->n_labels++] = (label_view){(const char *)lp->name.data, (const char *)lp->value.data,
                                        lp->name.len, lp->value.len};
    }
    if (magic_name)
        l[p->n_labels++] = (label_view){magic_name, p->magic, strlen(magic_name), strlen(p->magic)};
    sort_labels(l, p->n_labels);
    /* The key: __name__ at its sorted place, as its value alone. */
    static const char nn[] = "__name__";
    p->key_len = 0;
    bool name_done = false;
    for (size_t i = 0; i <= p->n_labels; i++) {
        if (!name_done && (i == p->n_labels || cmp_bytes(nn, 8, l[i].n, l[i].nl) < 0)) {
            if (!key_put(p, p->name, p->name_len)) return fail_oom(p);
            name_done = true;
        }
        if (i == p->n_labels) break;
        if (!key_put(p, "\xff", 1) || !key_put(p, l[i].n, l[i].nl) || !key_put(p, "\xff", 1) ||
            !key_put(p, l[i].v, l[i].vl))
            return fail_oom(p);
    }
    return PROTOPARSE_END;
}

static int64_t ts_ms(const pb_timestamp *t)
{
    /* seconds*1000 + nanos/10^6 with Go's wrapping arithmetic. */
    return (int64_t)((uint64_t)t->seconds * 1000u + (uint64_t)(int64_t)(t->nanos / 1000000));
}

static bool add_exemplar(protoparse *p, const pb_exemplar *e)
{
    exemplar_view *x = grow(p->ex, sizeof *x, p->n_ex + 1, &p->cap_ex);
    if (!x) return false;
    p->ex = x;
    label_view *l = grow(p->ex_labels, sizeof *l, p->n_ex_labels + e->n_label + 1, &p->cap_ex_labels);
    if (!l) return false;
    p->ex_labels = l;
    exemplar_view *v = &p->ex[p->n_ex++];
    v->value = e->value;
    v->has_ts = e->timestamp != NULL;
    v->ts = e->timestamp ? ts_ms(e->timestamp) : 0;
    v->first = p->n_ex_labels;
    v->n = e->n_label;
    for (size_t i = 0; i < e->n_label; i++)
        l[p->n_ex_labels++] = (label_view){(const char *)e->label[i]->name.data,
                                           (const char *)e->label[i]->value.data,
                                           e->label[i]->name.len, e->label[i]->value.len};
    sort_labels(l + v->first, v->n);
    return true;
}

/* Checks spans against a bucket count as checkProtoSpanBucketConsistency. */
static bool spans_ok(protoparse *p, const char *side, Io__Prometheus__Client__BucketSpan **s,
                     size_t ns, size_t nb)
{
    uint64_t total = 0;
    for (size_t i = 0; i < ns; i++)
        total += s[i]->length;
    if (total == nb) return true;
    sbuf b = {0};
    sbuf_printf(&b, "histogram ");
    put_quoted_name(p, &b);
    sbuf_printf(&b, ": %s side: spans require %llu buckets, have %zu", side,
                (unsigned long long)total, nb);
    fail_with(p, &b);
    return false;
}

static int copy_side(nhist_span **spans, size_t *n_spans, double **b, size_t *n,
                     Io__Prometheus__Client__BucketSpan **ps, size_t nps, const int64_t *deltas,
                     const double *counts, size_t nb)
{
    if (nps) {
        *spans = malloc(nps * sizeof **spans);
        if (!*spans) return -ENOMEM;
        for (size_t i = 0; i < nps; i++)
            (*spans)[i] = (nhist_span){ps[i]->offset, ps[i]->length};
        *n_spans = nps;
    }
    if (nb) {
        *b = malloc(nb * sizeof **b);
        if (!*b) return -ENOMEM;
        int64_t acc = 0;
        for (size_t i = 0; i < nb; i++) {
            if (counts) {
                (*b)[i] = counts[i];
            } else {
                if (__builtin_add_overflow(acc, deltas[i], &acc)) return -ERANGE;
                (*b)[i] = (double)acc;
            }
        }
        *n = nb;
    }
    return 0;
}

/* The native histogram of the current metric into p->h. */
static enum protoparse_entry build_native(protoparse *p)
{
    const pb_histogram *ph = cur(p)->histogram;
    bool is_float = ph->sample_count_float > 0 || ph->zero_count_float > 0;
    size_t np = is_float ? ph->n_positive_count : ph->n_positive_delta;
    size_t nn = is_float ? ph->n_negative_count : ph->n_negative_delta;
    if (!spans_ok(p, "positive", ph->positive_span, ph->n_positive_span, np) ||
        !spans_ok(p, "negative", ph->negative_span, ph->n_negative_span, nn))
        return PROTOPARSE_ERROR;
    nhist *h = &p->h;
    nhist_cleanup(h);
    h->is_float = is_float;
    h->hint = p->mf->type == T_GAUGE_HISTOGRAM ? NHIST_HINT_GAUGE : NHIST_HINT_UNKNOWN;
    h->schema = ph->schema;
    h->zero_threshold = ph->zero_threshold;
    h->zero_count = is_float ? ph->zero_count_float : (double)ph->zero_count;
    h->count = is_float ? ph->sample_count_float : (double)ph->sample_count;
    h->sum = ph->sample_sum;
    int rc = copy_side(&h->pos_spans, &h->n_pos_spans, &h->pos, &h->n_pos, ph->positive_span,
                       ph->n_positive_span, ph->positive_delta,
                       is_float ? ph->positive_count : NULL, np);
    if (rc == 0)
        rc = copy_side(&h->neg_spans, &h->n_neg_spans, &h->neg, &h->n_neg, ph->negative_span,
                       ph->n_negative_span, ph->negative_delta,
                       is_float ? ph->negative_count : NULL, nn);
    if (rc == -ENOMEM) return fail_oom(p);
    sbuf b = {0};
    if (rc == -ERANGE) {
        sbuf_printf(&b, "histogram ");
        put_quoted_name(p, &b);
        sbuf_printf(&b, ": bucket counts overflow int64");
        return fail_with(p, &b);
    }
    char err[512];
    if (nhist_validate(h, err, sizeof err) < 0) {
        sbuf_printf(&b, "histogram ");
        put_quoted_name(p, &b);
        sbuf_printf(&b, ": %s", err);
        return fail_with(p, &b);
    }
    if (nhist_compact(h) < 0) return fail_oom(p); /* validated: only -ENOMEM is left */
    return PROTOPARSE_END;
}

/* ---- classic -> NHCB (Prometheus's util/convertnhcb) ---- */

typedef struct tbucket {
    double le, count;
} tbucket;

/* Go's %g (shortest). */
static const char *gofmt_g(double v, char *buf)
{
    expfmt_format_float(v, buf);
    return buf;
}

/* The current classic histogram as an NHCB into p->h. */
static enum protoparse_entry build_nhcb(protoparse *p)
{
    const pb_histogram *ph = cur(p)->histogram;
    size_t nb = ph ? ph->n_bucket : 0;
    tbucket *t = malloc((nb + 1) * sizeof *t);
    if (!t) return fail_oom(p);
    size_t n = 0;
    char a[EXPFMT_FLOAT_MAX], b[EXPFMT_FLOAT_MAX];
    double count = 0, sum = ph ? ph->sample_sum : 0;
    if (ph) count = ph->sample_count_float != 0 ? ph->sample_count_float : (double)ph->sample_count;
    enum protoparse_entry e = PROTOPARSE_END;
    if (count < 0) {
        e = failf(p, "count must be non-negative: count=%s", gofmt_g(count, a));
        goto out;
    }
    for (size_t i = 0; i < nb; i++) {
        const Io__Prometheus__Client__Bucket *bk = ph->bucket[i];
        double le = bk->upper_bound;
        double c = bk->cumulative_count_float != 0 ? bk->cumulative_count_float
                                                   : (double)bk->cumulative_count;
        if (isnan(le)) {
            e = failf(p, "bucket boundary must not be NaN");
            goto out;
        }
        if (c < 0) {
            e = failf(p, "bucket count must be non-negative: le=%s, count=%s", gofmt_g(le, a),
                      gofmt_g(c, b));
            goto out;
        }
        if (n == 0 || t[n - 1].le < le) {
            if (n > 0 && c < t[n - 1].count) {
                e = failf(p, "count is not cumulative: %s < %s", gofmt_g(c, a),
                          gofmt_g(t[n - 1].count, b));
                goto out;
            }
            t[n++] = (tbucket){le, c};
        } else if (t[n - 1].le != le) {
            /* Out of order: insert at its place (an equal bound is ignored). */
            size_t k = 0;
            while (k < n && t[k].le < le)
                k++;
            if (t[k].le == le) continue;
            if (k > 0 && c < t[k - 1].count) {
                e = failf(p, "count is not cumulative: %s < %s", gofmt_g(c, a),
                          gofmt_g(t[k - 1].count, b));
                goto out;
            }
            if (c > t[k].count) {
                e = failf(p, "count is not cumulative: %s > %s", gofmt_g(c, a),
                          gofmt_g(t[k].count, b));
                goto out;
            }
            memmove(&t[k + 1], &t[k], (n - k) * sizeof *t);
            t[k] = (tbucket){le, c};
            n++;
        }
    }
    if (n == 0 || !(isinf(t[n - 1].le) && t[n - 1].le > 0)) t[n++] = (tbucket){INFINITY, count};
    bool is_int = count == round(count) && count < 18446744073709551616.0;
    for (size_t i = 0; i < n && is_int; i++)
        is_int = t[i].count == round(t[i].count) && fabs(t[i].count) < 9223372036854775808.0;
    if (is_int ? (uint64_t)count != (uint64_t)t[n - 1].count : count != t[n - 1].count) {
        if (is_int)
            e = failf(p, "count mismatch: count=%llu != le=%s count=%s",
                      (unsigned long long)count, gofmt_g(t[n - 1].le, a), gofmt_g(t[n - 1].count, b));
        else
            e = failf(p, "count mismatch: count=%s != le=%s count=%s", gofmt_g(count, a),
                      gofmt_g(t[n - 1].le, b), gofmt_g(t[n - 1].count, (char[EXPFMT_FLOAT_MAX]){0}));
        goto out;
    }
    nhist *h = &p->h;
    nhist_cleanup(h);
    h->is_float = !is_int;
    h->hint = p->mf->type == T_GAUGE_HISTOGRAM ? NHIST_HINT_GAUGE : NHIST_HINT_UNKNOWN;
    h->schema = NHIST_CUSTOM_SCHEMA;
    h->count = count;
    h->sum = sum;
    h->pos_spans = malloc(sizeof *h->pos_spans);
    h->pos = malloc(n * sizeof *h->pos);
    h->custom_values = n > 1 ? malloc((n - 1) * sizeof *h->custom_values) : NULL;
    if (!h->pos_spans || !h->pos || (n > 1 && !h->custom_values)) {
        e = fail_oom(p);
        goto out;
    }
    h->pos_spans[0] = (nhist_span){0, (uint32_t)n};
    h->n_pos_spans = 1;
    double prev = 0;
    for (size_t i = 0; i < n; i++) {
        h->pos[i] = t[i].count - prev;
        prev = t[i].count;
        if (i + 1 < n) h->custom_values[i] = t[i].le;
    }
    h->n_pos = n;
    h->n_custom_values = n - 1;
    char err[512];
    if (nhist_validate(h, err, sizeof err) < 0) {
        sbuf sb = {0};
        sbuf_printf(&sb, "histogram ");
        put_quoted_name(p, &sb);
        sbuf_printf(&sb, ": %s", err);
        e = fail_with(p, &sb);
        goto out;
    }
    if (nhist_compact_max_empty(h, is_int ? 2 : 0) < 0) e = fail_oom(p);
out:
    free(t);
    return e;
}

/* The exemplars of a native or NHCB histogram entry: those with a
 * timestamp, from the histogram's own list, else from its buckets. */
static bool histogram_exemplars(protoparse *p)
{
    const pb_histogram *h = cur(p)->histogram;
    if (!h) return true;
    if (h->n_exemplars > 0) {
        for (size_t i = 0; i < h->n_exemplars; i++)
            if (h->exemplars[i]->timestamp && !add_exemplar(p, h->exemplars[i])) return false;
    } else {
        for (size_t i = 0; i < h->n_bucket; i++) {
            const pb_exemplar *x = h->bucket[i]->exemplar;
            if (x && x->timestamp && !add_exemplar(p, x)) return false;
        }
    }
    return true;
}

/* Returns the NHCB entry of the current classic histogram. */
static enum protoparse_entry nhcb_entry(protoparse *p)
{
    enum protoparse_entry e;
    p->n_ex = p->n_ex_labels = 0;
    if (!set_name(p, "")) return fail_oom(p);
    if ((e = build_nhcb(p)) != PROTOPARSE_END) return e;
    if (!histogram_exemplars(p)) return fail_oom(p);
    if ((e = build_labels(p, NULL)) != PROTOPARSE_END) return e;
    p->phase = PH_NHCB;
    p->entry = PROTOPARSE_HISTOGRAM;
    return PROTOPARSE_HISTOGRAM;
}

/* Sets up the current classic field (p->field_pos) of a summary or
 * histogram: name, magic label, value, exemplar. */
static enum protoparse_entry build_classic(protoparse *p)
{
    const pb_metric *m = cur(p);
    const char *magic = NULL;
    p->n_ex = p->n_ex_labels = 0;
    if (p->mf->type == T_SUMMARY) {
        const Io__Prometheus__Client__Summary *s = m->summary;
        size_t nq = s ? s->n_quantile : 0;
        if (p->field_pos == -2) {
            if (!set_name(p, "_count")) return fail_oom(p);
            p->value = s ? (double)s->sample_count : 0;
        } else if (p->field_pos == -1) {
            if (!set_name(p, "_sum")) return fail_oom(p);
            p->value = s ? s->sample_sum : 0;
            if (nq == 0) p->fields_done = true;
        } else {
            if (!set_name(p, "")) return fail_oom(p);
            const Io__Prometheus__Client__Quantile *q = s->quantile[p->field_pos];
            expfmt_format_om_float(q->quantile, p->magic);
            magic = "quantile";
            p->value = q->value;
            p->fields_done = (size_t)p->field_pos == nq - 1;
        }
    } else {
        const pb_histogram *h = m->histogram;
        size_t nb = h ? h->n_bucket : 0;
        double count = 0;
        if (h) count = h->sample_count_float != 0 ? h->sample_count_float : (double)h->sample_count;
        if (p->field_pos == -2) {
            if (!set_name(p, "_count")) return fail_oom(p);
            p->value = count;
        } else if (p->field_pos == -1) {
            if (!set_name(p, "_sum")) return fail_oom(p);
            p->value = h ? h->sample_sum : 0;
        } else {
            if (!set_name(p, "_bucket")) return fail_oom(p);
            magic = "le";
            if ((size_t)p->field_pos >= nb) {
                strcpy(p->magic, "+Inf");
                p->value = count;
                p->fields_done = true;
            } else {
                const Io__Prometheus__Client__Bucket *bk = h->bucket[p->field_pos];
                expfmt_format_om_float(bk->upper_bound, p->magic);
                p->value = bk->cumulative_count_float != 0 ? bk->cumulative_count_float
                                                           : (double)bk->cumulative_count;
                p->fields_done = isinf(bk->upper_bound) && bk->upper_bound > 0;
                if (bk->exemplar && !add_exemplar(p, bk->exemplar)) return fail_oom(p);
            }
        }
    }
    enum protoparse_entry e = build_labels(p, magic);
    if (e != PROTOPARSE_END) return e;
    p->entry = PROTOPARSE_SERIES;
    return PROTOPARSE_SERIES;
}

/* The next entry of the current metric, or PROTOPARSE_END when it has no
 * more. */
static enum protoparse_entry metric_next(protoparse *p)
{
    const pb_metric *m = cur(p);
    int t = p->mf->type;
    enum protoparse_entry e;
    switch (p->phase) {
    case PH_START:
        p->n_ex = p->n_ex_labels = 0;
        if (t == T_SUMMARY || (is_hist_type(t) && (p->sticky_classic || p->o.ignore_native_histograms ||
                                                   !is_native(m->histogram)))) {
            if (is_hist_type(t) && p->o.convert_classic_to_nhcb) {
                if (!p->o.keep_classic_histograms) return nhcb_entry(p);
            } else if (is_hist_type(t)) {
                p->sticky_classic = true;
            }
            p->phase = PH_CLASSIC;
            p->field_pos = -2;
            p->fields_done = false;
            return build_classic(p);
        }
        if (!set_name(p, "")) return fail_oom(p);
        if (is_hist_type(t)) {
            if ((e = build_native(p)) != PROTOPARSE_END) return e;
            if (!histogram_exemplars(p)) return fail_oom(p);
            if ((e = build_labels(p, NULL)) != PROTOPARSE_END) return e;
            p->phase = PH_NATIVE;
            p->entry = PROTOPARSE_HISTOGRAM;
            return PROTOPARSE_HISTOGRAM;
        }
        if (t == T_COUNTER) {
            p->value = m->counter ? m->counter->value : 0;
            if (m->counter && m->counter->exemplar && !add_exemplar(p, m->counter->exemplar))
                return fail_oom(p);
        } else if (t == T_GAUGE) {
            p->value = m->gauge ? m->gauge->value : 0;
        } else {
            p->value = m->untyped ? m->untyped->value : 0;
        }
        if ((e = build_labels(p, NULL)) != PROTOPARSE_END) return e;
        p->phase = PH_DONE;
        p->entry = PROTOPARSE_SERIES;
        return PROTOPARSE_SERIES;
    case PH_NATIVE:
        if (p->o.keep_classic_histograms && m->histogram->n_bucket > 0) {
            p->phase = PH_CLASSIC;
            p->field_pos = -2;
            p->fields_done = false;
            return build_classic(p);
        }
        p->phase = PH_DONE;
        return PROTOPARSE_END;
    case PH_CLASSIC:
        if (p->fields_done) {
            /* A classic histogram (not the classic side of a native one)
             * is followed by its NHCB when converting. */
            if (p->o.convert_classic_to_nhcb && is_hist_type(t) &&
                (p->o.ignore_native_histograms || !is_native(m->histogram)))
                return nhcb_entry(p);
            p->phase = PH_DONE;
            return PROTOPARSE_END;
        }
        p->field_pos++;
        return build_classic(p);
    case PH_NHCB:
    case PH_DONE:
        break;
    }
    return PROTOPARSE_END;
}

enum protoparse_entry protoparse_next(protoparse *p)
{
    if (p->finished) return p->final;
    p->entry = PROTOPARSE_END;
    for (;;) {
        if (p->in_family) {
            enum protoparse_entry e = metric_next(p);
            if (e != PROTOPARSE_END) return e;
            if (++p->mi < p->mf->n_metric) {
                p->phase = PH_START;
                continue;
            }
            p->in_family = false;
        }
        int rc = read_family(p);
        if (rc < 0) return PROTOPARSE_ERROR;
        if (rc == 0) {
            p->finished = true;
            p->final = PROTOPARSE_END;
            return PROTOPARSE_END;
        }
        pb_family *mf = p->mf;
        if (mf->n_metric == 0) continue; /* empty families are skipped */
        if (mf->name.len == 0 || !utf8_ok(&mf->name))
            return failf(p, "invalid metric name: %.*s", (int)mf->name.len,
                         mf->name.len ? (const char *)mf->name.data : "");
        if (!utf8_ok(&mf->help)) {
            sbuf b = {0};
            sbuf_printf(&b, "invalid help for metric ");
            put_quoted_name(p, &b);
            sbuf_printf(&b, ": %.*s", (int)mf->help.len, (const char *)mf->help.data);
            return fail_with(p, &b);
        }
        if ((int)mf->type < T_COUNTER || (int)mf->type > T_GAUGE_HISTOGRAM) {
            sbuf b = {0};
            sbuf_printf(&b, "unknown metric type for metric ");
            put_quoted_name(p, &b);
            sbuf_printf(&b, ": %d", (int)mf->type);
            return fail_with(p, &b);
        }
        p->in_family = true;
        p->sticky_classic = false;
        p->mi = 0;
        p->phase = PH_START;
        p->entry = PROTOPARSE_FAMILY;
        return PROTOPARSE_FAMILY;
    }
}

/* ---- accessors ---------------------------------------------------------------------- */

void protoparse_family(const protoparse *p, const char **name, size_t *name_len, const char **help,
                       size_t *help_len, const char **unit, size_t *unit_len,
                       enum expfmt_type *type)
{
    const pb_family *mf = p->mf;
    if (name) *name = mf ? (const char *)mf->name.data : "";
    if (name_len) *name_len = mf ? mf->name.len : 0;
    if (help) *help = mf && mf->help.data ? (const char *)mf->help.data : "";
    if (help_len) *help_len = mf ? mf->help.len : 0;
    if (unit) *unit = mf && mf->unit.data ? (const char *)mf->unit.data : "";
    if (unit_len) *unit_len = mf ? mf->unit.len : 0;
    if (type) {
        enum expfmt_type t = EXPFMT_UNKNOWN;
        if (mf) switch ((int)mf->type) {
            case T_COUNTER: t = EXPFMT_COUNTER; break;
            case T_GAUGE: t = EXPFMT_GAUGE; break;
            case T_SUMMARY: t = EXPFMT_SUMMARY; break;
            case T_HISTOGRAM: t = EXPFMT_HISTOGRAM; break;
            case T_GAUGE_HISTOGRAM: t = EXPFMT_GAUGEHISTOGRAM; break;
            default: break;
            }
        *type = t;
    }
}

const char *protoparse_series_key(const protoparse *p, size_t *len)
{
    *len = p->key_len;
    return p->key ? p->key : "";
}

const char *protoparse_metric_name(const protoparse *p, size_t *len)
{
    *len = p->name_len;
    return p->name ? p->name : "";
}

size_t protoparse_label_count(const protoparse *p)
{
    return p->n_labels;
}

void protoparse_label(const protoparse *p, size_t i, const char **name, size_t *nl,
                      const char **value, size_t *vl)
{
    const label_view *l = &p->labels[i];
    if (name) *name = l->nl ? l->n : "";
    if (nl) *nl = l->nl;
    if (value) *value = l->vl ? l->v : "";
    if (vl) *vl = l->vl;
}

double protoparse_value(const protoparse *p)
{
    return p->value;
}

const nhist *protoparse_histogram(const protoparse *p)
{
    return &p->h;
}

bool protoparse_timestamp(const protoparse *p, int64_t *ms)
{
    if (!p->in_family || p->entry <= PROTOPARSE_FAMILY) return false;
    int64_t t = cur(p)->timestamp_ms;
    if (t == 0) return false;
    *ms = t;
    return true;
}

bool protoparse_created_timestamp(const protoparse *p, int64_t *ms)
{
    if (!p->in_family || p->entry <= PROTOPARSE_FAMILY) return false;
    const pb_metric *m = cur(p);
    const pb_timestamp *t = NULL;
    switch ((int)p->mf->type) {
    case T_COUNTER: t = m->counter ? m->counter->created_timestamp : NULL; break;
    case T_SUMMARY: t = m->summary ? m->summary->created_timestamp : NULL; break;
    case T_HISTOGRAM:
    case T_GAUGE_HISTOGRAM: t = m->histogram ? m->histogram->created_timestamp : NULL; break;
    default: break;
    }
    if (!t) return false;
    int64_t v = ts_ms(t);
    if (v == 0) return false;
    *ms = v;
    return true;
}

size_t protoparse_exemplar_count(const protoparse *p)
{
    return p->entry > PROTOPARSE_FAMILY ? p->n_ex : 0;
}

void protoparse_exemplar(const protoparse *p, size_t i, double *value, bool *has_ts, int64_t *ts)
{
    const exemplar_view *x = &p->ex[i];
    if (value) *value = x->value;
    if (has_ts) *has_ts = x->has_ts;
    if (ts) *ts = x->ts;
}

size_t protoparse_exemplar_label_count(const protoparse *p, size_t i)
{
    return p->ex[i].n;
}

void protoparse_exemplar_label(const protoparse *p, size_t i, size_t j, const char **name,
                               size_t *nl, const char **value, size_t *vl)
{
    const label_view *l = &p->ex_labels[p->ex[i].first + j];
    if (name) *name = l->nl ? l->n : "";
    if (nl) *nl = l->nl;
    if (value) *value = l->vl ? l->v : "";
    if (vl) *vl = l->vl;
}

const char *protoparse_error(const protoparse *p)
{
    if (!p->finished || p->final != PROTOPARSE_ERROR) return "";
    return p->err ? p->err : "out of memory";
}

bool protoparse_is_content_type(const char *ct)
{
    const char *type;
    size_t n;
    if (!ct || textparse_media_type(ct, &type, &n) < 0) return false;
    static const char want[] = "application/vnd.google.protobuf";
    if (n != sizeof want - 1) return false;
    for (size_t i = 0; i < n; i++) {
        char c = type[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != want[i]) return false;
    }
    return true;
}
