/* rwproto: Prometheus remote write 1.0 bodies (see rwproto.h).
 *
 * Encoding builds the protobuf-c message with pointers into the caller's
 * data (label strings are NUL-terminated in a `labels`), packs it and
 * snappy-compresses it (block format, as Prometheus's sender).
 *
 * Decoding follows Prometheus's receiver (client_golang's
 * exp/api/remote SnappyDecodeMiddleware, then storage/remote's
 * writeHandler for prompb.WriteRequest), but rejects the whole request
 * where Prometheus 3.x silently skips a series (see rwproto_decode). */
#include "rwproto.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "remote.pb-c.h"

/* ---- encoding ------------------------------------------------------------ */

/* Everything one encode allocates besides the protobuf-c structs of the
 * caller's series: freed at once by enc_cleanup. */
typedef struct enc_pool {
    void **v;
    size_t n, cap;
} enc_pool;

static void *enc_alloc(enc_pool *p, size_t count, size_t size)
{
    void *m = mem_calloc(count ? count : 1, size);
    p->v = mem_grow(p->v, sizeof *p->v, p->n + 1, &p->cap);
    p->v[p->n++] = m;
    return m;
}

static void enc_cleanup(enc_pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        mem_free(p->v[i]);
    mem_free(p->v);
}

static Prometheus__Label **enc_labels(enc_pool *p, const labels *ls, size_t *n)
{
    size_t k = ls ? ls->n : 0;
    Prometheus__Label *ls_pb = enc_alloc(p, k, sizeof *ls_pb);
    Prometheus__Label **ptrs = enc_alloc(p, k, sizeof *ptrs);
    for (size_t i = 0; i < k; i++) {
        prometheus__label__init(&ls_pb[i]);
        ls_pb[i].name = (char *)ls->v[i].name;
        ls_pb[i].value = (char *)ls->v[i].value;
        ptrs[i] = &ls_pb[i];
    }
    *n = k;
    return ptrs;
}

static Prometheus__BucketSpan **enc_spans(enc_pool *p, const nhist_span *s, size_t n)
{
    Prometheus__BucketSpan *v = enc_alloc(p, n, sizeof *v);
    Prometheus__BucketSpan **ptrs = enc_alloc(p, n, sizeof *ptrs);
    for (size_t i = 0; i < n; i++) {
        prometheus__bucket_span__init(&v[i]);
        v[i].offset = s[i].offset;
        v[i].length = s[i].length;
        ptrs[i] = &v[i];
    }
    return ptrs;
}

/* Absolute integer counts -> the deltas prompb carries (first bucket
 * against 0). Counts are whole numbers below 2^63 in a valid histogram. */
static int64_t *enc_deltas(enc_pool *p, const double *c, size_t n)
{
    int64_t *d = enc_alloc(p, n, sizeof *d);
    int64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t cur = (int64_t)c[i];
        d[i] = (int64_t)((uint64_t)cur - (uint64_t)prev);
        prev = cur;
    }
    return d;
}

static void enc_histogram(enc_pool *p, Prometheus__Histogram *pb, const rwproto_hsample *hs)
{
    const nhist *h = &hs->h;
    prometheus__histogram__init(pb);
    pb->timestamp = hs->t;
    pb->sum = h->sum;
    pb->schema = h->schema;
    pb->zero_threshold = h->zero_threshold;
    switch (h->hint) {
    case NHIST_HINT_RESET:
        pb->reset_hint = PROMETHEUS__HISTOGRAM__RESET_HINT__YES;
        break;
    case NHIST_HINT_NOT_RESET:
        pb->reset_hint = PROMETHEUS__HISTOGRAM__RESET_HINT__NO;
        break;
    case NHIST_HINT_GAUGE:
        pb->reset_hint = PROMETHEUS__HISTOGRAM__RESET_HINT__GAUGE;
        break;
    default:
        pb->reset_hint = PROMETHEUS__HISTOGRAM__RESET_HINT__UNKNOWN;
        break;
    }
    pb->n_positive_spans = h->n_pos_spans;
    pb->positive_spans = enc_spans(p, h->pos_spans, h->n_pos_spans);
    pb->n_negative_spans = h->n_neg_spans;
    pb->negative_spans = enc_spans(p, h->neg_spans, h->n_neg_spans);
    if (h->is_float) {
        pb->count_case = PROMETHEUS__HISTOGRAM__COUNT_COUNT_FLOAT;
        pb->count_float = h->count;
        pb->zero_count_case = PROMETHEUS__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_FLOAT;
        pb->zero_count_float = h->zero_count;
        pb->n_positive_counts = h->n_pos;
        pb->positive_counts = h->pos;
        pb->n_negative_counts = h->n_neg;
        pb->negative_counts = h->neg;
    } else {
        pb->count_case = PROMETHEUS__HISTOGRAM__COUNT_COUNT_INT;
        pb->count_int = h->count > 0 ? (uint64_t)h->count : 0;
        pb->zero_count_case = PROMETHEUS__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_INT;
        pb->zero_count_int = h->zero_count > 0 ? (uint64_t)h->zero_count : 0;
        pb->n_positive_deltas = h->n_pos;
        pb->positive_deltas = enc_deltas(p, h->pos, h->n_pos);
        pb->n_negative_deltas = h->n_neg;
        pb->negative_deltas = enc_deltas(p, h->neg, h->n_neg);
    }
    pb->n_custom_values = h->n_custom_values;
    pb->custom_values = h->custom_values;
}

static Prometheus__MetricMetadata__MetricType enc_type(enum expfmt_type t)
{
    switch (t) {
    case EXPFMT_COUNTER:
        return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__COUNTER;
    case EXPFMT_GAUGE:
        return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGE;
    case EXPFMT_HISTOGRAM:
        return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__HISTOGRAM;
    case EXPFMT_GAUGEHISTOGRAM:
        return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGEHISTOGRAM;
    case EXPFMT_SUMMARY:
        return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__SUMMARY;
    case EXPFMT_INFO:
        return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__INFO;
    case EXPFMT_STATESET:
        return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__STATESET;
    default:
        return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__UNKNOWN;
    }
}

static char *enc_str(const char *s)
{
    return (char *)(s ? s : "");
}

int rwproto_encode(const rwproto_request *r, buf *out, buf *err)
{
    enc_pool p = {0};
    Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;

    req.n_timeseries = r->n_series;
    Prometheus__TimeSeries *ts = enc_alloc(&p, r->n_series, sizeof *ts);
    req.timeseries = enc_alloc(&p, r->n_series, sizeof *req.timeseries);
    for (size_t i = 0; i < r->n_series; i++) {
        const rwproto_series *s = &r->series[i];
        Prometheus__TimeSeries *t = &ts[i];
        prometheus__time_series__init(t);
        req.timeseries[i] = t;
        t->labels = enc_labels(&p, s->ls, &t->n_labels);

        Prometheus__Sample *sm = enc_alloc(&p, s->n_samples, sizeof *sm);
        t->samples = enc_alloc(&p, s->n_samples, sizeof *t->samples);
        t->n_samples = s->n_samples;
        for (size_t j = 0; j < s->n_samples; j++) {
            prometheus__sample__init(&sm[j]);
            sm[j].timestamp = s->samples[j].t;
            sm[j].value = s->samples[j].v;
            t->samples[j] = &sm[j];
        }

        Prometheus__Histogram *hp = enc_alloc(&p, s->n_hists, sizeof *hp);
        t->histograms = enc_alloc(&p, s->n_hists, sizeof *t->histograms);
        t->n_histograms = s->n_hists;
        for (size_t j = 0; j < s->n_hists; j++) {
            enc_histogram(&p, &hp[j], &s->hists[j]);
            t->histograms[j] = &hp[j];
        }

        Prometheus__Exemplar *ex = enc_alloc(&p, s->n_exemplars, sizeof *ex);
        t->exemplars = enc_alloc(&p, s->n_exemplars, sizeof *t->exemplars);
        t->n_exemplars = s->n_exemplars;
        for (size_t j = 0; j < s->n_exemplars; j++) {
            prometheus__exemplar__init(&ex[j]);
            ex[j].labels = enc_labels(&p, s->exemplars[j].ls, &ex[j].n_labels);
            ex[j].timestamp = s->exemplars[j].t;
            ex[j].value = s->exemplars[j].v;
            t->exemplars[j] = &ex[j];
        }
    }

    Prometheus__MetricMetadata *md = enc_alloc(&p, r->n_metadata, sizeof *md);
    req.metadata = enc_alloc(&p, r->n_metadata, sizeof *req.metadata);
    req.n_metadata = r->n_metadata;
    for (size_t i = 0; i < r->n_metadata; i++) {
        prometheus__metric_metadata__init(&md[i]);
        md[i].type = enc_type(r->metadata[i].type);
        md[i].metric_family_name = enc_str(r->metadata[i].metric);
        md[i].help = enc_str(r->metadata[i].help);
        md[i].unit = enc_str(r->metadata[i].unit);
        req.metadata[i] = &md[i];
    }

    size_t raw_len = prometheus__write_request__get_packed_size(&req);
    uint8_t *raw = mem_malloc(raw_len);
    prometheus__write_request__pack(&req, raw);
    enc_cleanup(&p);

    size_t clen = snappy_max_compressed_length(raw_len);
    char *comp = mem_malloc(clen);
    int rc = 0;
    if (snappy_compress((const char *)raw, raw_len, comp, &clen) != SNAPPY_OK) {
        buf_printf(err, "snappy: cannot compress %zu bytes", raw_len);
        rc = -ENOMEM;
    } else {
        buf_reset(out);
        if (buf_append(out, comp, clen) != 0) {
            buf_printf(err, "encoded request of %zu bytes exceeds the limit of %zu bytes", clen,
                       out->limit);
            rc = -E2BIG;
        }
    }
    mem_free(comp);
    mem_free(raw);
    return rc;
}

/* ---- decoding ------------------------------------------------------------ */

void rwproto_request_cleanup(rwproto_request *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_series; i++) {
        rwproto_series *s = &r->series[i];
        labels_free(s->ls);
        mem_free(s->samples);
        for (size_t j = 0; j < s->n_hists; j++)
            nhist_cleanup(&s->hists[j].h);
        mem_free(s->hists);
        for (size_t j = 0; j < s->n_exemplars; j++)
            labels_free(s->exemplars[j].ls);
        mem_free(s->exemplars);
    }
    mem_free(r->series);
    for (size_t i = 0; i < r->n_metadata; i++) {
        mem_free(r->metadata[i].metric);
        mem_free(r->metadata[i].help);
        mem_free(r->metadata[i].unit);
    }
    mem_free(r->metadata);
    memset(r, 0, sizeof *r);
}

static void fmt_size(char *out, size_t n, size_t v)
{
    const size_t mib = (size_t)1 << 20;
    if (v >= mib && v % mib == 0)
        snprintf(out, n, "%zu MiB", v / mib);
    else if (v >= mib)
        snprintf(out, n, "%.1f MiB", (double)v / (double)mib);
    else
        snprintf(out, n, "%zu bytes", v);
}

/* Checks one label pair as Prometheus's Labels.IsValid(UTF8Validation)
 * does: a non-empty name and valid UTF-8 in name and value. */
static int dec_check_label(const Prometheus__Label *l, const char *what, size_t idx, buf *err)
{
    const char *name = l->name ? l->name : "";
    const char *value = l->value ? l->value : "";
    if (!*name) {
        buf_printf(err, "%s %zu: label name \"\" is empty", what, idx);
        return -EINVAL;
    }
    if (!expfmt_utf8_valid(name, strlen(name))) {
        buf_printf(err, "%s %zu: label name is not valid UTF-8", what, idx);
        return -EINVAL;
    }
    if (!expfmt_utf8_valid(value, strlen(value))) {
        buf_printf(err, "%s %zu: value of label \"%s\" is not valid UTF-8", what, idx, name);
        return -EINVAL;
    }
    return 0;
}

/* Series labels: each valid, names strictly increasing (the remote write
 * 1.0 spec: sorted, no repeated names), __name__ present with a value.
 * Labels with an empty value are dropped (an empty value is an absent
 * label, as everywhere in sidewatch and Prometheus). */
static int dec_series_labels(const Prometheus__TimeSeries *t, size_t idx, labels **out, buf *err)
{
    labels_builder b;
    labels_builder_init(&b);
    int rc = 0;
    for (size_t i = 0; i < t->n_labels && rc == 0; i++) {
        const Prometheus__Label *l = t->labels[i];
        rc = dec_check_label(l, "series", idx, err);
        if (rc == 0 && i > 0) {
            int c = strcmp(t->labels[i - 1]->name, l->name);
            if (c == 0) {
                buf_printf(err, "series %zu: duplicate label name \"%s\"", idx, l->name);
                rc = -EINVAL;
            } else if (c > 0) {
                buf_printf(err, "series %zu: labels not sorted (\"%s\" after \"%s\")", idx, l->name,
                           t->labels[i - 1]->name);
                rc = -EINVAL;
            }
        }
        if (rc == 0) labels_builder_add(&b, l->name, strlen(l->name), l->value, strlen(l->value));
    }
    labels *ls = NULL;
    if (rc == 0) {
        ls = labels_builder_finish(&b, NULL);
        size_t nlen = 0;
        if (!labels_metric_name(ls, &nlen) || nlen == 0) {
            buf_printf(err, "series %zu: no metric name (label __name__)", idx);
            labels_free(ls);
            ls = NULL;
            rc = -EINVAL;
        }
    }
    labels_builder_cleanup(&b);
    *out = ls;
    return rc;
}

/* Exemplar labels: each valid and no repeated names (any order). */
static int dec_exemplar_labels(const Prometheus__Exemplar *e, size_t sidx, size_t eidx,
                               labels **out, buf *err)
{
    labels_builder b;
    labels_builder_init(&b);
    int rc = 0;
    for (size_t i = 0; i < e->n_labels && rc == 0; i++) {
        const Prometheus__Label *l = e->labels[i];
        rc = dec_check_label(l, "series", sidx, err);
        if (rc == 0) labels_builder_add(&b, l->name, strlen(l->name), l->value, strlen(l->value));
    }
    const char *dup = NULL;
    labels *ls = rc == 0 ? labels_builder_finish(&b, &dup) : NULL;
    if (rc == 0 && !ls) {
        buf_printf(err, "series %zu: exemplar %zu: duplicate label name \"%s\"", sidx, eidx,
                   dup ? dup : "");
        rc = -EINVAL;
    }
    labels_builder_cleanup(&b);
    *out = ls;
    return rc;
}

static nhist_span *dec_spans(Prometheus__BucketSpan **v, size_t n)
{
    if (n == 0) return NULL;
    nhist_span *s = mem_malloc(n * sizeof *s);
    for (size_t i = 0; i < n; i++) {
        s[i].offset = v[i]->offset;
        s[i].length = v[i]->length;
    }
    return s;
}

static double *dec_doubles(const double *v, size_t n)
{
    if (n == 0) return NULL;
    double *d = mem_malloc(n * sizeof *d);
    memcpy(d, v, n * sizeof *d);
    return d;
}

/* Integer deltas -> absolute counts, summed in int64 as Prometheus does
 * (wrapping, so that a bogus body cannot overflow; a negative result is
 * then a negative count nhist_validate rejects). */
static double *dec_deltas(const int64_t *v, size_t n)
{
    if (n == 0) return NULL;
    double *d = mem_malloc(n * sizeof *d);
    uint64_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        cur += (uint64_t)v[i];
        d[i] = (double)(int64_t)cur;
    }
    return d;
}

/* prompb.Histogram -> nhist, as Prometheus's ToIntHistogram /
 * ToFloatHistogram: float iff the count is count_float; integer histograms
 * read only the deltas, float ones only the absolute counts. */
static void dec_histogram(const Prometheus__Histogram *pb, rwproto_hsample *out)
{
    nhist *h = &out->h;
    nhist_init(h);
    out->t = pb->timestamp;
    h->is_float = pb->count_case == PROMETHEUS__HISTOGRAM__COUNT_COUNT_FLOAT;
    switch (pb->reset_hint) {
    case PROMETHEUS__HISTOGRAM__RESET_HINT__YES:
        h->hint = NHIST_HINT_RESET;
        break;
    case PROMETHEUS__HISTOGRAM__RESET_HINT__NO:
        h->hint = NHIST_HINT_NOT_RESET;
        break;
    case PROMETHEUS__HISTOGRAM__RESET_HINT__GAUGE:
        h->hint = NHIST_HINT_GAUGE;
        break;
    default:
        h->hint = NHIST_HINT_UNKNOWN;
        break;
    }
    h->schema = pb->schema;
    h->zero_threshold = pb->zero_threshold;
    h->sum = pb->sum;
    if (h->is_float) {
        h->count = pb->count_float;
        h->zero_count = pb->zero_count_case == PROMETHEUS__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_FLOAT
                            ? pb->zero_count_float
                            : 0;
        h->pos = dec_doubles(pb->positive_counts, pb->n_positive_counts);
        h->n_pos = pb->n_positive_counts;
        h->neg = dec_doubles(pb->negative_counts, pb->n_negative_counts);
        h->n_neg = pb->n_negative_counts;
    } else {
        h->count =
            pb->count_case == PROMETHEUS__HISTOGRAM__COUNT_COUNT_INT ? (double)pb->count_int : 0;
        h->zero_count = pb->zero_count_case == PROMETHEUS__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_INT
                            ? (double)pb->zero_count_int
                            : 0;
        h->pos = dec_deltas(pb->positive_deltas, pb->n_positive_deltas);
        h->n_pos = pb->n_positive_deltas;
        h->neg = dec_deltas(pb->negative_deltas, pb->n_negative_deltas);
        h->n_neg = pb->n_negative_deltas;
    }
    h->pos_spans = dec_spans(pb->positive_spans, pb->n_positive_spans);
    h->n_pos_spans = pb->n_positive_spans;
    h->neg_spans = dec_spans(pb->negative_spans, pb->n_negative_spans);
    h->n_neg_spans = pb->n_negative_spans;
    h->custom_values = dec_doubles(pb->custom_values, pb->n_custom_values);
    h->n_custom_values = pb->n_custom_values;
}

static enum expfmt_type dec_type(Prometheus__MetricMetadata__MetricType t)
{
    switch (t) {
    case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__COUNTER:
        return EXPFMT_COUNTER;
    case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGE:
        return EXPFMT_GAUGE;
    case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__HISTOGRAM:
        return EXPFMT_HISTOGRAM;
    case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGEHISTOGRAM:
        return EXPFMT_GAUGEHISTOGRAM;
    case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__SUMMARY:
        return EXPFMT_SUMMARY;
    case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__INFO:
        return EXPFMT_INFO;
    case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__STATESET:
        return EXPFMT_STATESET;
    default:
        return EXPFMT_UNKNOWN;
    }
}

static int dec_series(const Prometheus__TimeSeries *t, size_t idx, rwproto_series *s, buf *err)
{
    int rc = dec_series_labels(t, idx, &s->ls, err);
    if (rc != 0) return rc;

    s->n_samples = t->n_samples;
    s->samples = t->n_samples ? mem_malloc(t->n_samples * sizeof *s->samples) : NULL;
    for (size_t j = 0; j < t->n_samples; j++) {
        s->samples[j].t = t->samples[j]->timestamp;
        s->samples[j].v = t->samples[j]->value;
        if (j > 0 && s->samples[j].t < s->samples[j - 1].t) {
            buf_printf(err,
                       "series %zu: sample timestamps out of order (%" PRId64 " after %" PRId64 ")",
                       idx, s->samples[j].t, s->samples[j - 1].t);
            return -EINVAL;
        }
    }

    s->hists = t->n_histograms ? mem_calloc(t->n_histograms, sizeof *s->hists) : NULL;
    for (size_t j = 0; j < t->n_histograms; j++) {
        dec_histogram(t->histograms[j], &s->hists[j]);
        s->n_hists = j + 1;
        char msg[256];
        if (nhist_validate(&s->hists[j].h, msg, sizeof msg) != 0) {
            buf_printf(err, "series %zu: histogram %zu: %s", idx, j, msg);
            return -EINVAL;
        }
        if (j > 0 && s->hists[j].t < s->hists[j - 1].t) {
            buf_printf(err,
                       "series %zu: histogram timestamps out of order (%" PRId64 " after %" PRId64
                       ")",
                       idx, s->hists[j].t, s->hists[j - 1].t);
            return -EINVAL;
        }
    }

    s->exemplars = t->n_exemplars ? mem_calloc(t->n_exemplars, sizeof *s->exemplars) : NULL;
    for (size_t j = 0; j < t->n_exemplars; j++) {
        const Prometheus__Exemplar *e = t->exemplars[j];
        rc = dec_exemplar_labels(e, idx, j, &s->exemplars[j].ls, err);
        s->n_exemplars = j + 1;
        if (rc != 0) return rc;
        s->exemplars[j].t = e->timestamp;
        s->exemplars[j].v = e->value;
    }
    return 0;
}

/* Validation, and how it compares with Prometheus 3.x's receiver:
 * - Snappy: a declared decompressed size over max_decoded, or a corrupt
 *   block, is rejected before anything is allocated for it (as
 *   client_golang's SnappyDecodeMiddleware, whose limit is also 32 MiB,
 *   but that one allocates before it finds the block corrupt).
 * - Labels: Prometheus requires __name__, non-empty valid UTF-8 names,
 *   valid UTF-8 values and no repeated names, but for a 1.0 request it
 *   only logs and skips a series that fails (its own TODO says it should
 *   be a 400). sidewatch rejects the request instead (400, nothing
 *   stored), and also rejects names that are not sorted, which the 1.0
 *   spec requires of senders (Prometheus's duplicate check assumes it).
 * - Timestamps: a sample or histogram older than the one before it in the
 *   same series is rejected: Prometheus's appender returns
 *   ErrOutOfOrderSample for it, which its handler turns into a 400.
 * - Histograms: nhist_validate (Prometheus's Validate, a 400 there too). */
int rwproto_decode(const void *body, size_t len, size_t max_decoded, rwproto_request *out, buf *err)
{
    memset(out, 0, sizeof *out);
    if (max_decoded == 0) max_decoded = RWPROTO_MAX_DECODED;

    size_t raw_len = 0;
    if (snappy_uncompressed_length(body, len, &raw_len) != SNAPPY_OK) {
        buf_puts(err, "snappy: corrupt input");
        return -EINVAL;
    }
    if (raw_len > max_decoded) {
        char a[32], b[32];
        fmt_size(a, sizeof a, raw_len);
        fmt_size(b, sizeof b, max_decoded);
        buf_printf(err, "decompressed size %s exceeds the limit of %s", a, b);
        return -EINVAL;
    }
    /* A pass over the block before allocating for it: a few bytes that
     * claim 32 MiB get no 32 MiB buffer. */
    if (snappy_validate_compressed_buffer(body, len) != SNAPPY_OK) {
        buf_puts(err, "snappy: corrupt input");
        return -EINVAL;
    }
    char *raw = mem_malloc(raw_len);
    size_t got = raw_len;
    if (snappy_uncompress(body, len, raw, &got) != SNAPPY_OK || got != raw_len) {
        mem_free(raw);
        buf_puts(err, "snappy: corrupt input");
        return -EINVAL;
    }
    Prometheus__WriteRequest *req =
        prometheus__write_request__unpack(NULL, raw_len, (const uint8_t *)raw);
    mem_free(raw);
    if (!req) {
        buf_puts(err, "protobuf: cannot decode the WriteRequest");
        return -EINVAL;
    }

    int rc = 0;
    out->series = req->n_timeseries ? mem_calloc(req->n_timeseries, sizeof *out->series) : NULL;
    for (size_t i = 0; i < req->n_timeseries && rc == 0; i++) {
        out->n_series = i + 1;
        rc = dec_series(req->timeseries[i], i, &out->series[i], err);
    }
    if (rc == 0 && req->n_metadata) {
        out->metadata = mem_calloc(req->n_metadata, sizeof *out->metadata);
        for (size_t i = 0; i < req->n_metadata; i++) {
            const Prometheus__MetricMetadata *m = req->metadata[i];
            out->n_metadata = i + 1;
            out->metadata[i].type = dec_type(m->type);
            out->metadata[i].metric =
                mem_strdup(m->metric_family_name ? m->metric_family_name : "");
            out->metadata[i].help = mem_strdup(m->help ? m->help : "");
            out->metadata[i].unit = mem_strdup(m->unit ? m->unit : "");
        }
    }
    prometheus__write_request__free_unpacked(req, NULL);
    if (rc != 0) rwproto_request_cleanup(out);
    return rc;
}
