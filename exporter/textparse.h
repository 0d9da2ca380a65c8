/* textparse: a pull parser for the Prometheus text format 0.0.4 and
 * OpenMetrics 1.0 text.
 *
 * The parser never copies the input: every string it returns is a view into
 * the caller's buffer, which must outlive the parser. Views may still hold
 * escape sequences (textparse_str.escaped); textparse_unescape() writes the
 * decoded bytes. Errors carry Prometheus's exact message (model/textparse)
 * plus the 1-based line and column where parsing stopped.
 *
 * Usage:
 *   textparse p;
 *   textparse_init(&p, TEXTPARSE_OPENMETRICS, body, len);
 *   for (;;) {
 *       enum textparse_entry e = textparse_next(&p);
 *       if (e == TEXTPARSE_END) break;
 *       if (e == TEXTPARSE_ERROR) { report(textparse_error(&p)); break; }
 *       if (e == TEXTPARSE_SERIES) use(textparse_series(&p), textparse_value(&p));
 *   }
 *   textparse_cleanup(&p);
 */
#ifndef SIDEWATCH_TEXTPARSE_H
#define SIDEWATCH_TEXTPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "expfmt.h"

enum textparse_format {
    TEXTPARSE_PROMETHEUS,  /* text/plain; version=0.0.4 */
    TEXTPARSE_OPENMETRICS, /* application/openmetrics-text; version=1.0.0 */
};

enum textparse_entry {
    TEXTPARSE_ERROR = -1,
    TEXTPARSE_END = 0, /* end of input (OpenMetrics: after "# EOF") */
    TEXTPARSE_SERIES,
    TEXTPARSE_HELP,
    TEXTPARSE_TYPE,
    TEXTPARSE_UNIT,
    TEXTPARSE_COMMENT,
};

/* A view into the input. `escaped` is true when p..p+len contains a
 * backslash escape that textparse_unescape() must decode. */
typedef struct textparse_str {
    const char *p;
    size_t len;
    bool escaped;
} textparse_str;

#define TEXTPARSE_ERROR_MAX 512

typedef struct textparse {
    /* All fields are private; the struct is public so that callers can keep
     * the parser on the stack. */
    enum textparse_format format;
    const char *b; /* input */
    size_t len;
    size_t blen;        /* len, plus the virtual '\n' the text format appends */
    size_t i, start;    /* lexer position and token start */
    bool tok_ascii;     /* the last quoted token was all ASCII */
    int state;          /* lexer start condition */
    size_t entry_start; /* offset where the current entry began */
    bool finished;      /* END or ERROR was returned; `final` repeats */
    enum textparse_entry final;

    /* current entry */
    enum expfmt_type mtype;      /* type from the last TYPE line */
    size_t name_start, name_end; /* metric name, or the family name of metadata */
    size_t series_end;           /* series bytes are b[entry_start, series_end) */
    size_t text_start, text_end; /* HELP/TYPE/UNIT text or comment */
    bool text_is_help;           /* the text is HELP text (may hold escapes) */
    double value;
    bool has_ts;
    int64_t ts;
    size_t *offsets; /* label name/value view bounds, 4 per label */
    size_t n_offsets, cap_offsets;

    bool has_exemplar;
    size_t *eoffsets;
    size_t n_eoffsets, cap_eoffsets;
    double exemplar_value;
    bool exemplar_has_ts;
    int64_t exemplar_ts;

    char err[TEXTPARSE_ERROR_MAX];
    char *err_long; /* heap copy when the message outgrows err[] */
    size_t err_len;
    size_t err_line, err_col, err_offset;
} textparse;

/* Prepares to parse data[0..len), which is borrowed. Never fails. */
void textparse_init(textparse *p, enum textparse_format format, const char *data, size_t len);
/* Frees the parser's own scratch arrays (not the input). */
void textparse_cleanup(textparse *p);

/* Advances to the next entry. After TEXTPARSE_ERROR or TEXTPARSE_END every
 * further call returns the same value. For OpenMetrics, input that ends
 * without "# EOF" is an error ("data does not end with # EOF"). */
enum textparse_entry textparse_next(textparse *p);

/* ---- after TEXTPARSE_SERIES ---- */

/* The metric name and labels exactly as written (the "series bytes"):
 * equal bytes mean an equal series within one format, so scrape caches key
 * on it. */
textparse_str textparse_series(const textparse *p);
textparse_str textparse_metric_name(const textparse *p);
size_t textparse_label_count(const textparse *p);
void textparse_label(const textparse *p, size_t i, textparse_str *name, textparse_str *value);
/* For le= of histograms and quantile= of summaries Prometheus 3.x normalises
 * the value ("1" -> "1.0"). Returns true and the normalised text in out
 * (EXPFMT_FLOAT_MAX bytes) when label i needs that, else false. */
bool textparse_label_normalized(const textparse *p, size_t i, char *out, size_t *out_len);
double textparse_value(const textparse *p);
/* True and *ms set when the sample carries a timestamp (milliseconds). */
bool textparse_timestamp(const textparse *p, int64_t *ms);
/* The type in force for the current series (last TYPE line). */
enum expfmt_type textparse_current_type(const textparse *p);

/* OpenMetrics exemplar of the current sample, if any. */
bool textparse_has_exemplar(const textparse *p);
size_t textparse_exemplar_label_count(const textparse *p);
void textparse_exemplar_label(const textparse *p, size_t i, textparse_str *name, textparse_str *value);
double textparse_exemplar_value(const textparse *p);
bool textparse_exemplar_timestamp(const textparse *p, int64_t *ms);

/* ---- after TEXTPARSE_HELP, TEXTPARSE_TYPE, TEXTPARSE_UNIT, TEXTPARSE_COMMENT ---- */

/* The metric family name of a HELP/TYPE/UNIT line. */
textparse_str textparse_meta_name(const textparse *p);
/* HELP text, UNIT text, or the comment's text. */
textparse_str textparse_meta_text(const textparse *p);
/* The type of a TYPE line. */
enum expfmt_type textparse_meta_type(const textparse *p);

/* ---- after TEXTPARSE_ERROR ---- */

/* Prometheus's message, e.g. `expected label value, got "'" ("INVALID")
 * while parsing: "a{b='"`. Borrowed; valid until cleanup. */
const char *textparse_error(const textparse *p);
/* 1-based line and column (in bytes) where the parser stopped. */
size_t textparse_error_line(const textparse *p);
size_t textparse_error_column(const textparse *p);

/* Writes the decoded bytes of s (label values: \\ \" \n; HELP text in the
 * text format: \\ \n). Returns the sink's first error or 0. */
int textparse_unescape(textparse_str s, bool help_text_prometheus, expfmt_sink sink, void *ctx);

/* Picks the format from a Content-Type header value. Returns 0 and sets
 * *format for text/plain (any version; also an empty version) and
 * application/openmetrics-text; returns -EINVAL for anything else (other
 * media types, the protobuf format, an empty header). */
int textparse_format_from_content_type(const char *content_type, enum textparse_format *format);

#endif
