/* expfmt: the pieces of the Prometheus exposition formats that parsers,
 * writers and the agent share: metric types, float syntax (Go's
 * strconv.ParseFloat / FormatFloat, which define the formats' numbers), name
 * validity, UTF-8 checks and Go-style quoting for error messages.
 *
 * exporter/ depends on nothing but libc: output goes through an
 * expfmt_sink callback, so the embedding program chooses its buffers. */
#ifndef SIDEWATCH_EXPFMT_H
#define SIDEWATCH_EXPFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Receives output bytes; returns 0, or a negative error that the writer
 * keeps and reports (for example a size limit being reached). */
typedef int (*expfmt_sink)(void *ctx, const char *p, size_t n);

enum expfmt_type {
    EXPFMT_UNKNOWN = 0, /* "untyped" in text 0.0.4, "unknown" in OpenMetrics */
    EXPFMT_COUNTER,
    EXPFMT_GAUGE,
    EXPFMT_HISTOGRAM,
    EXPFMT_GAUGEHISTOGRAM,
    EXPFMT_SUMMARY,
    EXPFMT_INFO,
    EXPFMT_STATESET,
};

/* "counter", "gauge", ...; EXPFMT_UNKNOWN is "unknown". */
const char *expfmt_type_name(enum expfmt_type t);

/* Parses like Go's strconv.ParseFloat(s, 64). Returns 0, -EINVAL (invalid
 * syntax) or -ERANGE (overflow; *out is +-Inf). */
int expfmt_parse_float(const char *s, size_t len, double *out);
/* Writes Go's message for a parse failure returned by expfmt_parse_float:
 * strconv.ParseFloat: parsing "<s>": invalid syntax | value out of range. */
int expfmt_float_error(expfmt_sink sink, void *ctx, const char *s, size_t len, int rc);

/* Formats like strconv.FormatFloat(f, 'g', -1, 64) with the spellings
 * "NaN", "+Inf", "-Inf". out needs EXPFMT_FLOAT_MAX bytes; returns length. */
#define EXPFMT_FLOAT_MAX 32
size_t expfmt_format_float(double f, char *out);
/* Prometheus's FormatOpenMetricsFloat: like expfmt_format_float, but an
 * integral value gets ".0" ("1.0"), as OpenMetrics and Prometheus 3.x
 * normalise le/quantile label values. */
size_t expfmt_format_om_float(double f, char *out);

/* UTF-8 validity: no overlongs, no surrogates, at most U+10FFFF. */
bool expfmt_utf8_valid(const char *s, size_t len);
/* Legacy names: [a-zA-Z_][a-zA-Z0-9_]* and [a-zA-Z_:][a-zA-Z0-9_:]*. */
bool expfmt_legacy_label_name(const char *s, size_t len);
bool expfmt_legacy_metric_name(const char *s, size_t len);

/* Writes s quoted like Go's strconv.Quote / %q: printable UTF-8 kept,
 * control characters escaped, invalid bytes as \xNN. */
int expfmt_quote_go(expfmt_sink sink, void *ctx, const char *s, size_t len);

/* A sink into a fixed char array (always NUL-terminated, truncating).
 * Use with expfmt_fixed_sink. */
typedef struct expfmt_fixed {
    char *p;
    size_t len, cap;
} expfmt_fixed;
int expfmt_fixed_sink(void *ctx, const char *p, size_t n);

#endif
