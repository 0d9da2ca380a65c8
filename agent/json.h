/* json: a small streaming JSON writer into a buf, and a JSON reader.
 *
 * Writer: commas and nesting are tracked by the writer, so callers emit
 * values in order. Strings are escaped as Go's encoding/json does (including
 * <, >, & as \u003c, \u003e, \u0026 and invalid UTF-8 as \ufffd), because
 * clients compare our bodies with Prometheus's and Alertmanager's byte for
 * byte. Errors from the buffer (its limit) are sticky: json_writer_error()
 * reports them.
 *
 * Reader: json_doc_parse() reads a buffer into a document of values
 * (json_val), read with the NULL-safe json_val_* accessors. This module is
 * the only user of the jansson library; no jansson type or name appears
 * here. Names: the writer's functions are json_write_*, the reader's
 * json_doc_* and json_val_*, none in jansson's json_object_*, json_array_*,
 * json_string*, json_is_*, json_load* or json_null/true/false namespace, so
 * a binary can link both. */
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

/* ---- reader ------------------------------------------------------------------------ */

/* A parsed document; owns every json_val in it. */
typedef struct json_doc json_doc;
/* A value inside a json_doc, borrowed from it: valid until json_doc_free(). */
typedef struct json_val json_val;

/* json_doc_parse() flags. */
enum {
    JSON_READ_ANY = 1 << 0,       /* any value at the top, not only an object or array */
    JSON_READ_ALLOW_NUL = 1 << 1, /* strings may contain \u0000 (else an error) */
    /* Integer literals beyond int64 (a Docker engine sends 2^64-1 for "no
     * limit") are read as reals, the same JSON number, instead of failing
     * with "too big integer"; json_val_uint64() reads them (saturating). The
     * input is copied with ".0" appended to each such literal, so a later
     * error's column on that line is 2 further per literal. */
    JSON_READ_BIG_INTEGERS = 1 << 2,
};

#define JSON_READ_TEXT_MAX 160 /* a message's bytes with its NUL */
#define JSON_READ_MSG_MAX 200  /* "line:column: message" with its NUL */

/* Why json_doc_parse() failed. */
typedef struct json_read_error {
    int code;      /* -E2BIG: len > max_len (nothing read); -EBADMSG: not valid JSON */
    int line;      /* 1-based position of the error; 0 and 0 for -E2BIG */
    int column;    /* in code points (as jansson counts) */
    size_t offset; /* bytes into the input */
    char text[JSON_READ_TEXT_MAX]; /* the message alone, e.g. "'[' or '{' expected near 'x'" */
    char msg[JSON_READ_MSG_MAX];   /* "line:column: text" */
} json_read_error;

/* Parses len bytes of data (NUL bytes allowed; data may be NULL when len is
 * 0) as one JSON text with nothing but whitespace after it. Input beyond
 * max_len bytes is refused unread. Strings must be valid UTF-8 (invalid UTF-8
 * is an error, not replaced); keys may not contain \u0000; a repeated key
 * keeps its first position and its last value; nesting deeper than 2048 is
 * an error. Returns a new document (caller frees with json_doc_free()), or
 * NULL with *err (when err is non-NULL) filled. */
json_doc *json_doc_parse(const char *data, size_t len, size_t max_len, unsigned flags,
                         json_read_error *err);
/* Frees doc and every value in it; json_doc_free(NULL) is a no-op. */
void json_doc_free(json_doc *doc);
/* The top value (borrowed; NULL when doc is NULL). */
const json_val *json_doc_root(const json_doc *doc);

/* Every accessor below accepts v == NULL (an absent value) and then answers
 * as for a value of the wrong kind: NULL, 0, false or -EINVAL. */
enum json_kind {
    JSON_KIND_NONE, /* v is NULL */
    JSON_KIND_NULL,
    JSON_KIND_BOOL,
    JSON_KIND_INT,  /* a literal without fraction or exponent, within int64 */
    JSON_KIND_REAL, /* any other number */
    JSON_KIND_STRING,
    JSON_KIND_ARRAY,
    JSON_KIND_OBJECT,
};
enum json_kind json_val_kind(const json_val *v);
bool json_val_is_null(const json_val *v); /* JSON null (not an absent value) */
bool json_val_is_bool(const json_val *v);
bool json_val_is_true(const json_val *v); /* JSON true */
bool json_val_is_int(const json_val *v);
bool json_val_is_real(const json_val *v);
bool json_val_is_number(const json_val *v); /* int or real */
bool json_val_is_string(const json_val *v);
bool json_val_is_array(const json_val *v);
bool json_val_is_object(const json_val *v);

/* Member key of object obj (borrowed), or NULL when absent or obj is not an
 * object. Keys compare byte for byte. */
const json_val *json_val_get(const json_val *obj, const char *key);
/* Elements of an array or members of an object; 0 for anything else. */
size_t json_val_len(const json_val *v);
/* Element i of array arr (borrowed), or NULL when out of range or arr is not
 * an array. */
const json_val *json_val_at(const json_val *arr, size_t i);

/* Iterates an object's members in document order. Start with
 * json_iter it = {0}; each call returns true with *key (NUL-terminated,
 * borrowed) and *val (borrowed) of the next member (either may be NULL when
 * not wanted), false at the end or when obj is not an object. */
typedef struct json_iter {
    void *pos;
    bool started;
} json_iter;
bool json_val_next(const json_val *obj, json_iter *it, const char **key, const json_val **val);

/* A string's bytes (borrowed, NUL-terminated; with JSON_READ_ALLOW_NUL it
 * may also contain NULs, so use *len) and, when len is non-NULL, its length
 * in *len. NULL when v is not a string. */
const char *json_val_string(const json_val *v, size_t *len);
/* The numeric getters return 0 and set *out, or leave *out alone and return
 * -EINVAL (not a number) or -ERANGE (a number *out cannot hold). */
/* An int, or a real with no fractional part in [-2^63, 2^63). */
int json_val_int64(const json_val *v, int64_t *out);
/* A non-negative int, or a non-negative real with no fractional part; a
 * real >= 2^64 saturates to UINT64_MAX (2^64-1 itself, read as a real with
 * JSON_READ_BIG_INTEGERS, rounds to 2^64). Negative numbers are -ERANGE. */
int json_val_uint64(const json_val *v, uint64_t *out);
/* Any number (an int converted). */
int json_val_double(const json_val *v, double *out);
/* true or false: 0 and *out, else -EINVAL. */
int json_val_bool(const json_val *v, bool *out);

#endif
