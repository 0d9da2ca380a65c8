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

/* Prepares to parse data[0..len), which is borrowed and must outlive the
 * parser and every view it returns. Never fails; allocates nothing. */
void textparse_init(textparse *p, enum textparse_format format, const char *data, size_t len);
/* Frees the parser's own scratch arrays and error text (not the input).
 * textparse_cleanup(NULL) and repeated calls are no-ops. */
void textparse_cleanup(textparse *p);

/* Advances to the next entry; views of the previous entry stay valid (they
 * point into the input) but the label/exemplar accessors then describe the
 * new entry. After TEXTPARSE_ERROR or TEXTPARSE_END every further call
 * returns the same value. For OpenMetrics, input that ends without "# EOF"
 * is an error ("data does not end with # EOF"). Allocates only when a line
 * has more labels than any line before it; if that fails the entry is
 * TEXTPARSE_ERROR with "out of memory".
 *
 * Like Prometheus, an OpenMetrics sample followed by something that is
 * neither a timestamp, an exemplar nor the line end ("a 1 \n") is still
 * returned; the error comes with the next call. */
enum textparse_entry textparse_next(textparse *p);

/* ---- after TEXTPARSE_SERIES ---- */

/* The metric name and labels exactly as written (the "series bytes"):
 * equal bytes mean an equal series within one format, so scrape caches key
 * on it. In the text format blanks before the name are part of it. */
textparse_str textparse_series(const textparse *p);
/* The metric name (quotes removed); decode escapes with
 * textparse_unescape(.., false, ..). In the text format blanks before an
 * unbraced name belong to it (" a 1" is the metric " a"), as in
 * Prometheus. */
textparse_str textparse_metric_name(const textparse *p);
size_t textparse_label_count(const textparse *p);
/* Label i in written order (Prometheus sorts later); quotes removed, decode
 * escapes with textparse_unescape(.., false, ..). Either pointer may be
 * NULL. i must be below textparse_label_count(). */
void textparse_label(const textparse *p, size_t i, textparse_str *name, textparse_str *value);
/* For le= of histograms and quantile= of summaries (by the type in force)
 * Prometheus 3.x rewrites the value with FormatOpenMetricsFloat when Go's
 * strconv.ParseFloat accepts it ("1" -> "1.0", "1e3" -> "1000.0",
 * "0x1p3" -> "8.0"). Returns true and the new text in out (EXPFMT_FLOAT_MAX
 * bytes, NUL-terminated, length in *out_len) when it differs from the
 * written value; false when the written value stands. */
bool textparse_label_normalized(const textparse *p, size_t i, char *out, size_t *out_len);
/* The sample value; every NaN is Prometheus's normal NaN
 * (0x7ff8000000000001). */
double textparse_value(const textparse *p);
/* True and *ms set when the sample carries a timestamp (milliseconds). The
 * text format has integer milliseconds; OpenMetrics has float seconds,
 * converted as Go's int64(seconds*1000) on amd64 (truncated toward zero;
 * out of range gives INT64_MIN). */
bool textparse_timestamp(const textparse *p, int64_t *ms);
/* The type in force for the current series (last TYPE line, whatever
 * family it named; EXPFMT_UNKNOWN before any). */
enum expfmt_type textparse_current_type(const textparse *p);

/* OpenMetrics exemplar of the current sample, if any ("# {} 1" is an
 * exemplar with no labels). Exemplar labels come as written: Prometheus
 * does not decode their escapes, so `escaped` is always false. */
bool textparse_has_exemplar(const textparse *p);
size_t textparse_exemplar_label_count(const textparse *p);
void textparse_exemplar_label(const textparse *p, size_t i, textparse_str *name,
                              textparse_str *value);
double textparse_exemplar_value(const textparse *p);
bool textparse_exemplar_timestamp(const textparse *p, int64_t *ms);

/* ---- after TEXTPARSE_HELP, TEXTPARSE_TYPE, TEXTPARSE_UNIT, TEXTPARSE_COMMENT ---- */

/* The metric family name of a HELP/TYPE/UNIT line, quotes removed but
 * escapes kept (as Prometheus keeps them); `escaped` is always false. */
textparse_str textparse_meta_name(const textparse *p);
/* HELP text (escaped set when it holds a backslash: decode with
 * help_text_prometheus = format is TEXTPARSE_PROMETHEUS), the TYPE or UNIT
 * word, or a text-format comment line from its '#' on (as written). */
textparse_str textparse_meta_text(const textparse *p);
/* The type of a TYPE line. */
enum expfmt_type textparse_meta_type(const textparse *p);

/* ---- after TEXTPARSE_ERROR ---- */

/* Prometheus's message, e.g. `expected label value, got "'" ("INVALID")
 * while parsing: "a{b='"`. Borrowed; valid until cleanup. Messages longer
 * than TEXTPARSE_ERROR_MAX - 1 bytes are kept on the heap, up to 64 KiB. */
const char *textparse_error(const textparse *p);
/* 1-based line and column (in bytes) where the parser stopped. */
size_t textparse_error_line(const textparse *p);
size_t textparse_error_column(const textparse *p);

/* Writes the decoded bytes of s as Go's strings.Replacer does, left to
 * right: label values, names and OpenMetrics HELP decode \\ \" \n; HELP
 * text in the text format (help_text_prometheus) decodes \\ \n only. Other
 * backslashes stay. Returns the sink's first error or 0. */
int textparse_unescape(textparse_str s, bool help_text_prometheus, expfmt_sink sink, void *ctx);

/* Picks the format from a Content-Type header value, as Prometheus's
 * scrape does with mime.ParseMediaType. Returns 0 and sets *format for
 * text/plain (any parameters, any version) and application/openmetrics-text;
 * returns -EINVAL for anything else: other media types, the protobuf
 * format, an empty or NULL header, malformed or repeated parameters. */
int textparse_format_from_content_type(const char *content_type, enum textparse_format *format);

/* Checks a Content-Type header value as Go's mime.ParseMediaType does
 * (type/subtype tokens, well-formed and unrepeated parameters). Returns 0
 * and the media type as written (borrowed from content_type, not
 * lowercased) in *type and *type_len, or -EINVAL (NULL or empty too). */
int textparse_media_type(const char *content_type, const char **type, size_t *type_len);

#endif
