/* json: a small streaming JSON writer into a buf.
 *
 * Commas and nesting are tracked by the writer, so callers emit values in
 * order. Strings are escaped as Go's encoding/json does (including <, >, &
 * as \u003c, \u003e, \u0026 and invalid UTF-8 as \ufffd), because clients
 * compare our bodies with Prometheus's and Alertmanager's byte for byte.
 * Errors from the buffer (its limit) are sticky: json_error() reports them. */
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

void json_init(json_writer *w, buf *out);
int json_error(const json_writer *w);

void json_object_begin(json_writer *w);
void json_object_end(json_writer *w);
void json_array_begin(json_writer *w);
void json_array_end(json_writer *w);
/* An object key; the next call writes its value. */
void json_key(json_writer *w, const char *key);
void json_string(json_writer *w, const char *s);
void json_string_n(json_writer *w, const char *s, size_t len);
void json_int(json_writer *w, int64_t v);
void json_uint(json_writer *w, uint64_t v);
/* A JSON number; NaN/Inf (not representable) become null. */
void json_double(json_writer *w, double v);
/* A float formatted as Prometheus's API does: a string ("1.5", "NaN"). */
void json_float_string(json_writer *w, double v);
void json_bool(json_writer *w, bool v);
void json_null(json_writer *w);
/* Pre-encoded JSON text, inserted as one value. */
void json_raw(json_writer *w, const char *text, size_t len);

/* Appends s escaped (without quotes) as Go's encoding/json would; returns 0
 * or -E2BIG when the buffer's limit is reached. */
int json_escape(buf *out, const char *s, size_t len);

#endif
