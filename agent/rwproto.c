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
    for (size_t i = 0; i < p->n; i++) mem_free(p->v[i]);
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
    case NHIST_HINT_RESET: pb->reset_hint = PROMETHEUS__HISTOGRAM__RESET_HINT__YES; break;
    case NHIST_HINT_NOT_RESET: pb->reset_hint = PROMETHEUS__HISTOGRAM__RESET_HINT__NO; break;
    case NHIST_HINT_GAUGE: pb->reset_hint = PROMETHEUS__HISTOGRAM__RESET_HINT__GAUGE; break;
    default: pb->reset_hint = PROMETHEUS__HISTOGRAM__RESET_HINT__UNKNOWN; break;
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
    case EXPFMT_COUNTER: return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__COUNTER;
    case EXPFMT_GAUGE: return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGE;
    case EXPFMT_HISTOGRAM: return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__HISTOGRAM;
    case EXPFMT_GAUGEHISTOGRAM: return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGEHISTOGRAM;
    case EXPFMT_SUMMARY: return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__SUMMARY;
    case EXPFMT_INFO: return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__INFO;
    case EXPFMT_STATESET: return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__STATESET;
    default: return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__UNKNOWN;
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
        for (size_t j = 0; j < s->n_hists; j++) nhist_cleanup(&s->hists[j].h);
        mem_free(s->hists);
        for (size_t j = 0; j < s->n_exemplars; j++) labels_free(s->exemplars[j].ls);
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

int rwproto_decode(const void *body, size_t len, size_t max_decoded, rwproto_request *out,
                   buf *err)
{
    (void)body, (void)len, (void)max_decoded;
    memset(out, 0, sizeof *out);
    buf_puts(err, "remote write decoding is not implemented yet");
    return -ENOSYS;
}
