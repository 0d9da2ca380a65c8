/* textwrite: writes the Prometheus text format 0.0.4 and OpenMetrics 1.0.
 *
 * The writer escapes and formats; callers decide names and order. For
 * OpenMetrics, counters are announced under the family name without
 * "_total" (textwrite_type strips it) while samples keep their full name,
 * as OpenMetrics requires. Output goes to an expfmt_sink; the first sink
 * error is kept and returned by textwrite_error(). */
#ifndef SIDEWATCH_TEXTWRITE_H
#define SIDEWATCH_TEXTWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "expfmt.h"
#include "textparse.h"

typedef struct textwrite_label {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} textwrite_label;

typedef struct textwrite {
    enum textparse_format format;
    expfmt_sink sink;
    void *ctx;
    int err;
} textwrite;

/* Content-Type values of what the writer produces. */
#define TEXTWRITE_CONTENT_TYPE_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"
#define TEXTWRITE_CONTENT_TYPE_OPENMETRICS                                                         \
    "application/openmetrics-text; version=1.0.0; charset=utf-8"

void textwrite_init(textwrite *w, enum textparse_format format, expfmt_sink sink, void *ctx);
int textwrite_error(const textwrite *w);

/* "# HELP name text" with the format's escaping. */
void textwrite_help(textwrite *w, const char *name, size_t name_len, const char *help,
                    size_t help_len);
/* "# TYPE name type". Text 0.0.4 knows counter, gauge, histogram, summary and
 * untyped; other types are written as untyped there. For OpenMetrics a
 * counter family name loses a trailing "_total". */
void textwrite_type(textwrite *w, const char *name, size_t name_len, enum expfmt_type type);
/* "# UNIT name unit" (OpenMetrics only; nothing for text 0.0.4). */
void textwrite_unit(textwrite *w, const char *name, size_t name_len, const char *unit,
                    size_t unit_len);
/* One sample line. ts_ms may be NULL. Names that are not legacy-valid are
 * written in the quoted form {"name",...}. */
void textwrite_sample(textwrite *w, const char *name, size_t name_len,
                      const textwrite_label *labels, size_t n_labels, double value,
                      const int64_t *ts_ms);
/* "# EOF" (OpenMetrics only). */
void textwrite_eof(textwrite *w);

/* Picks the output format from an HTTP Accept header: OpenMetrics when the
 * client accepts application/openmetrics-text with a higher or equal q than
 * text/plain, else the text format. */
enum textparse_format textwrite_negotiate(const char *accept);

#endif
