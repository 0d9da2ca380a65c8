/* protoparse: a pull parser for the Prometheus protobuf exposition format
 * (media type application/vnd.google.protobuf;
 * proto=io.prometheus.client.MetricFamily; encoding=delimited): a body of
 * MetricFamily messages (exporter/metrics.proto), each after its length as
 * a varint.
 *
 * It presents the body as Prometheus 3.x's textparse.ProtobufParser does
 * (model/textparse/protobufparse.go), one entry per sample:
 *   - PROTOPARSE_FAMILY once per MetricFamily that has metrics (empty
 *     families are skipped, as Prometheus does), before its samples;
 *   - counters, gauges, untyped: one SERIES `name` each (no _created
 *     series; the created timestamp comes with protoparse_created_timestamp);
 *   - summaries: name_count, name_sum, then name{quantile="q"} per quantile;
 *   - classic histograms and gauge histograms: name_count, name_sum, then
 *     name_bucket{le="b"} per bucket and a final le="+Inf" bucket (valued
 *     the count) unless the last one written is +Inf; le and quantile
 *     values formatted as Prometheus's FormatOpenMetricsFloat ("1.0");
 *   - native histograms (a Histogram with any span, a zero threshold or a
 *     zero count): one PROTOPARSE_HISTOGRAM `name` with an nhist (integer
 *     counts from the deltas, float counts when sample_count_float or
 *     zero_count_float is > 0; hint GAUGE for a GAUGE_HISTOGRAM; compacted as
 *     Prometheus's Compact(0); validated with nhist_validate), followed by
 *     its classic series as above when keep_classic_histograms is set and
 *     it has classic buckets.
 * With ignore_native_histograms every histogram is read as a classic one.
 * With convert_classic_to_nhcb (Prometheus's ConvertClassicHistogramsToNHCB)
 * a classic histogram becomes one HISTOGRAM with custom buckets (schema
 * -53, custom_values the finite upper bounds), after its classic series
 * only when keep_classic_histograms is set; conversion errors are
 * Prometheus's (convertnhcb: "count is not cumulative: ...").
 * Prometheus's scrape sets ignore_native_histograms = !scrape_native_histograms,
 * keep_classic_histograms = always_scrape_classic_histograms and
 * convert_classic_to_nhcb = convert_classic_histograms_to_nhcb.
 * In a family, once a histogram was read as classic (without NHCB
 * conversion) the following ones are read as classic too, as Prometheus's
 * parser does.
 *
 * Errors: every problem ends the parse with PROTOPARSE_ERROR and a message
 * (Prometheus's where it has one): a bad or truncated length prefix, a
 * message longer than the bytes left or than max_message_bytes, a message
 * protobuf cannot decode, an empty or non-UTF-8 metric name, non-UTF-8 help,
 * an unknown metric type, an empty or non-UTF-8 label name, a non-UTF-8
 * label value, spans that do not match the bucket count, bucket deltas that
 * overflow, or a native histogram nhist_validate rejects (the message names
 * the metric). The parser never reads outside data[0..len).
 *
 * Usage:
 *   protoparse *p;
 *   if (protoparse_new(&p, body, len, &opts) < 0) fail();
 *   for (enum protoparse_entry e; (e = protoparse_next(p)) != PROTOPARSE_END;) {
 *       if (e == PROTOPARSE_ERROR) { report(protoparse_error(p)); break; }
 *       ...
 *   }
 *   protoparse_free(p);
 */
#ifndef SIDEWATCH_PROTOPARSE_H
#define SIDEWATCH_PROTOPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "expfmt.h"
#include "nhist.h"

/* The media type of the format as Prometheus asks for it and client_golang
 * answers with it. */
#define PROTOPARSE_CONTENT_TYPE                                                                    \
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"

/* The default cap on one MetricFamily message (16 MiB). */
#define PROTOPARSE_DEFAULT_MAX_MESSAGE ((size_t)16 << 20)

typedef struct protoparse_options {
    bool ignore_native_histograms; /* read every histogram as a classic one */
    bool keep_classic_histograms;  /* also the classic series of a native histogram */
    size_t max_message_bytes;      /* cap on one message; 0 = PROTOPARSE_DEFAULT_MAX_MESSAGE */
    bool convert_classic_to_nhcb;  /* classic histograms as NHCB (see above) */
} protoparse_options;

enum protoparse_entry {
    PROTOPARSE_ERROR = -1,
    PROTOPARSE_END = 0,
    PROTOPARSE_FAMILY,
    PROTOPARSE_SERIES,
    PROTOPARSE_HISTOGRAM,
};

typedef struct protoparse protoparse;

/* A parser over data[0..len), which is borrowed and must outlive the
 * parser. o may be NULL (all options off). Returns 0 and *out (free with
 * protoparse_free), or -ENOMEM. */
int protoparse_new(protoparse **out, const uint8_t *data, size_t len, const protoparse_options *o);
/* Frees the parser and everything it returned. NULL is a no-op. */
void protoparse_free(protoparse *p);

/* Advances to the next entry. After PROTOPARSE_END or PROTOPARSE_ERROR
 * every further call returns the same value. Out of memory is an ERROR
 * ("out of memory"). Views returned for the previous entry become invalid. */
enum protoparse_entry protoparse_next(protoparse *p);

/* ---- after PROTOPARSE_FAMILY (views valid until the next call) ---- */

/* The family's name, help and unit (not NUL-terminated; help and unit may
 * be empty) and its type: COUNTER, GAUGE, SUMMARY, HISTOGRAM,
 * GAUGEHISTOGRAM, or EXPFMT_UNKNOWN for UNTYPED. Any pointer may be NULL. */
void protoparse_family(const protoparse *p, const char **name, size_t *name_len, const char **help,
                       size_t *help_len, const char **unit, size_t *unit_len,
                       enum expfmt_type *type);

/* ---- after PROTOPARSE_SERIES or PROTOPARSE_HISTOGRAM (views valid until
 * the next call) ---- */

/* Bytes that identify the series within one body, as Prometheus's
 * entryBytes: the labels including __name__ sorted by name, __name__
 * written as its value alone, every other label as 0xff name 0xff value.
 * Equal bytes <=> same series. */
const char *protoparse_series_key(const protoparse *p, size_t *len);
/* The sample's metric name, with _count, _sum or _bucket for the classic
 * parts of summaries and histograms. */
const char *protoparse_metric_name(const protoparse *p, size_t *len);
/* The labels other than the metric name, sorted by name, including le or
 * quantile where the entry has one. i < protoparse_label_count(). */
size_t protoparse_label_count(const protoparse *p);
void protoparse_label(const protoparse *p, size_t i, const char **name, size_t *nl,
                      const char **value, size_t *vl);
/* The value of a SERIES. */
double protoparse_value(const protoparse *p);
/* The native histogram of a HISTOGRAM; borrowed (copy it with nhist_copy
 * to keep it). */
const nhist *protoparse_histogram(const protoparse *p);
/* True and *ms set when the metric has a timestamp_ms other than 0 (the
 * format cannot tell 0 from absent; Prometheus reads 0 as absent). */
bool protoparse_timestamp(const protoparse *p, int64_t *ms);
/* True and *ms set when a counter, summary or histogram carries a created
 * (start) timestamp that is not 0 in milliseconds (seconds * 1000 +
 * nanos / 10^6, as Prometheus's StartTimestamp). */
bool protoparse_created_timestamp(const protoparse *p, int64_t *ms);

/* The exemplars of the entry, as Prometheus's Exemplar() returns them: a
 * counter's exemplar; a classic bucket's exemplar (not on _count, _sum or
 * a synthesized +Inf bucket); for a native histogram the histogram's
 * exemplars, or when it has none its buckets', keeping only those with a
 * timestamp. Labels are sorted by name. */
size_t protoparse_exemplar_count(const protoparse *p);
/* Exemplar i's value and timestamp (has_ts false when it has none; ts
 * then 0). Pointers may be NULL. */
void protoparse_exemplar(const protoparse *p, size_t i, double *value, bool *has_ts, int64_t *ts);
size_t protoparse_exemplar_label_count(const protoparse *p, size_t i);
void protoparse_exemplar_label(const protoparse *p, size_t i, size_t j, const char **name,
                               size_t *nl, const char **value, size_t *vl);

/* ---- after PROTOPARSE_ERROR ---- */

/* The message (NUL-terminated, borrowed, valid until protoparse_free). */
const char *protoparse_error(const protoparse *p);

/* Whether a Content-Type header value selects this format, as Prometheus's
 * textparse.New decides: a valid media type (mime.ParseMediaType syntax)
 * "application/vnd.google.protobuf", any case; Prometheus checks no
 * parameters, so neither does this. NULL or empty is false. */
bool protoparse_is_content_type(const char *ct);

#endif
