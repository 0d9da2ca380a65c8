/* json: a small streaming JSON writer into a buf.
 *
 * Commas and nesting are tracked by the writer, so callers emit values in
 * order. Strings are escaped as Go's encoding/json does (including <, >, &
 * as \u003c, \u003e, \u0026 and invalid UTF-8 as \ufffd), because clients
 * compare our bodies with Prometheus's and Alertmanager's byte for byte.
 * Errors from the buffer (its limit) are sticky: json_writer_error() reports them. */
#ifndef SIDEWATCH_JSON_H
#define SIDEWATCH_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define JSON_MAX_DEPTH 64

typedef struct json_writer {
    buf *out; /* borrowed */
    int depth;
    bool first[JSON_MAX_DEPTH];
    bool after_key;
    int err; /* first error (negative), 0 if none */
} json_writer;

void json_writer_init(json_writer *w, buf *out);
int json_writer_error(const json_writer *w);

void json_write_object_begin(json_writer *w);
void json_write_object_end(json_writer *w);
void json_write_array_begin(json_writer *w);
void json_write_array_end(json_writer *w);
/* An object key; the next call writes its value. */
void json_write_key(json_writer *w, const char *key);
/* A key of len bytes (may contain NUL). */
void json_write_key_n(json_writer *w, const char *key, size_t len);
void json_write_string(json_writer *w, const char *s);
void json_write_string_n(json_writer *w, const char *s, size_t len);
void json_write_int(json_writer *w, int64_t v);
void json_write_uint(json_writer *w, uint64_t v);
/* A JSON number as Go's encoding/json writes a float64 ("1.5", "1000000",
 * "1e-7", "1e+21"); NaN/Inf (not representable) become null. */
void json_write_double(json_writer *w, double v);
/* A sample value as Prometheus's API writes it (jsonutil.MarshalFloat): a
 * string, fixed notation for 1e-6 <= |v| < 1e21 and exponent notation
 * otherwise ("1000000", "0.25", "1e-07", "NaN", "+Inf", "-Inf"). */
void json_write_float_string(json_writer *w, double v);
/* A timestamp in milliseconds as Prometheus's API writes it
 * (jsonutil.MarshalTimestamp): seconds, and when not whole a '.' and
 * exactly three digits of milliseconds ("1.500", "-0.001", "1700000000"). */
void json_write_timestamp(json_writer *w, int64_t ms);

/* Go's shortest float formatting in three styles. */
enum json_float_style {
    JSON_FLOAT_GO_JSON,    /* encoding/json: 'f', or 'e' for |v| < 1e-6 or >= 1e21, "e-7" */
    JSON_FLOAT_PROMETHEUS, /* jsonutil.MarshalFloat: the same thresholds, "e-07" */
    JSON_FLOAT_FIXED,      /* strconv.FormatFloat(v, 'f', -1, 64): never an exponent */
};
/* Longest output: a fixed-notation 1e308 or a 5e-324 with its digits. */
#define JSON_FLOAT_MAX 400
/* Formats v (NaN, +Inf, -Inf spelled so) into out, NUL-terminated; returns
 * the length. */
size_t json_format_float(double v, enum json_float_style style, char out[JSON_FLOAT_MAX]);
void json_write_bool(json_writer *w, bool v);
void json_write_null(json_writer *w);
/* Pre-encoded JSON text, inserted as one value. */
void json_write_raw(json_writer *w, const char *text, size_t len);

/* Appends s escaped (without quotes) as Go's encoding/json would; returns 0
 * or -E2BIG when the buffer's limit is reached. */
int json_escape(buf *out, const char *s, size_t len);

#endif
