#include "json.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "expfmt.h"
#include "mem.h"

void json_writer_init(json_writer *w, buf *out)
{
    memset(w, 0, sizeof *w);
    w->out = out;
    w->first[0] = true;
}

int json_writer_error(const json_writer *w)
{
    return w->err;
}

static void put(json_writer *w, const char *s, size_t n)
{
    if (w->err) return;
    int rc = buf_append(w->out, s, n);
    if (rc < 0) w->err = rc;
}

/* Writes the separator a new value needs at the current position. */
static void value_prefix(json_writer *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (!w->first[w->depth]) put(w, ",", 1);
    w->first[w->depth] = false;
}

static void open(json_writer *w, char c)
{
    value_prefix(w);
    put(w, &c, 1);
    if (w->depth + 1 >= JSON_MAX_DEPTH) {
        if (!w->err) w->err = -E2BIG;
        return;
    }
    w->depth++;
    w->first[w->depth] = true;
}

static void close_(json_writer *w, char c)
{
    if (w->depth > 0) w->depth--;
    put(w, &c, 1);
}

void json_write_object_begin(json_writer *w)
{
    open(w, '{');
}

void json_write_object_end(json_writer *w)
{
    close_(w, '}');
}

void json_write_array_begin(json_writer *w)
{
    open(w, '[');
}

void json_write_array_end(json_writer *w)
{
    close_(w, ']');
}

int json_escape(buf *out, const char *s, size_t len)
{
    int rc = 0;
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < len) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char tmp[8];
        size_t n = 1;
        if (c >= 0x80) {
            /* Validate one UTF-8 sequence; invalid bytes become U+FFFD. */
            size_t want = (c & 0xE0) == 0xC0   ? 2
                          : (c & 0xF0) == 0xE0 ? 3
                          : (c & 0xF8) == 0xF0 ? 4
                                               : 0;
            if (want && i + want <= len && expfmt_utf8_valid(s + i, want)) {
                /* U+2028 and U+2029 are escaped by Go. */
                if (want == 3 && c == 0xE2 && p[i + 1] == 0x80 &&
                    (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
                    esc = p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
                    n = 3;
                } else {
                    i += want;
                    run += want;
                    continue;
                }
            } else {
                esc = "\\ufffd";
            }
        } else if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\r') {
            esc = "\\r";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            tmp[0] = '\\';
            tmp[1] = 'u';
            tmp[2] = '0';
            tmp[3] = '0';
            tmp[4] = hex[c >> 4];
            tmp[5] = hex[c & 15];
            tmp[6] = '\0';
            esc = tmp;
        } else {
            i++;
            run++;
            continue;
        }
        if (buf_append(out, s + i - run, run) < 0 || buf_puts(out, esc) < 0) rc = -E2BIG;
        run = 0;
        i += n;
    }
    if (buf_append(out, s + i - run, run) < 0) rc = -E2BIG;
    return rc;
}

void json_write_key(json_writer *w, const char *key)
{
    json_write_key_n(w, key, strlen(key));
}

void json_write_key_n(json_writer *w, const char *key, size_t len)
{
    value_prefix(w);
    put(w, "\"", 1);
    if (!w->err) w->err = json_escape(w->out, key, len);
    put(w, "\":", 2);
    w->after_key = true;
}

void json_write_string_n(json_writer *w, const char *s, size_t len)
{
    value_prefix(w);
    put(w, "\"", 1);
    if (!w->err) w->err = json_escape(w->out, s, len);
    put(w, "\"", 1);
}

void json_write_string(json_writer *w, const char *s)
{
    json_write_string_n(w, s, strlen(s));
}

void json_write_int(json_writer *w, int64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    value_prefix(w);
    put(w, tmp, (size_t)n);
}

void json_write_uint(json_writer *w, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    value_prefix(w);
    put(w, tmp, (size_t)n);
}

/* Shortest decimal digits of a > 0 that read back as a (Go's shortest
 * formatting): digits[] without trailing zeros and the decimal point
 * position *dp (a = 0.d1d2... x 10^dp). Integral values below 2^53 are
 * exact; otherwise the correctly rounded 15-, 16- and 17-digit forms are
 * tried in turn: the first that reads back is the shortest (a shorter one
 * would make the 15-digit form read back), and being correctly rounded it
 * is the closest of its length, as Go picks. Subnormals (whose relative
 * precision is lower) search from one digit up. */
static int shortest_digits(double a, char d[24], int *dp)
{
    char tmp[40];
    int nd = 0;
    if (a < 9007199254740992.0 && a == floor(a)) {
        int n = snprintf(tmp, sizeof tmp, "%.0f", a);
        *dp = n;
        while (n > 1 && tmp[n - 1] == '0')
            n--;
        memcpy(d, tmp, (size_t)n);
        d[n] = '\0';
        return n;
    }
    for (int prec = a < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, a);
        if (prec == 17 || strtod(tmp, NULL) == a) break;
    }
    const char *p = tmp;
    for (; *p && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9') d[nd++] = *p;
    }
    int exp10 = atoi(p + 1);
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    d[nd] = '\0';
    *dp = exp10 + 1;
    return nd;
}

size_t json_format_float(double v, enum json_float_style style, char out[JSON_FLOAT_MAX])
{
    if (isnan(v)) return (size_t)snprintf(out, JSON_FLOAT_MAX, "NaN");
    if (isinf(v)) return (size_t)snprintf(out, JSON_FLOAT_MAX, v > 0 ? "+Inf" : "-Inf");
    size_t n = 0;
    if (signbit(v)) out[n++] = '-';
    double a = fabs(v);
    if (a == 0) {
        out[n++] = '0';
        out[n] = '\0';
        return n;
    }
    char d[24];
    int dp;
    int nd = shortest_digits(a, d, &dp);
    bool exp_form = style != JSON_FLOAT_FIXED && (a < 1e-6 || a >= 1e21);
    if (exp_form) {
        int exp = dp - 1;
        out[n++] = d[0];
        if (nd > 1) {
            out[n++] = '.';
            memcpy(out + n, d + 1, (size_t)nd - 1);
            n += (size_t)nd - 1;
        }
        out[n++] = 'e';
        out[n++] = exp < 0 ? '-' : '+';
        int e = exp < 0 ? -exp : exp;
        /* Go writes at least two exponent digits; encoding/json then drops
         * the leading zero of a negative one ("1e-07" -> "1e-7"). */
        if (e < 10 && !(style == JSON_FLOAT_GO_JSON && exp < 0)) out[n++] = '0';
        n += (size_t)snprintf(out + n, JSON_FLOAT_MAX - n, "%d", e);
        return n;
    }
    if (dp <= 0) {
        out[n++] = '0';
        out[n++] = '.';
        for (int i = 0; i < -dp; i++)
            out[n++] = '0';
        memcpy(out + n, d, (size_t)nd);
        n += (size_t)nd;
    } else if (dp >= nd) {
        memcpy(out + n, d, (size_t)nd);
        n += (size_t)nd;
        for (int i = nd; i < dp; i++)
            out[n++] = '0';
    } else {
        memcpy(out + n, d, (size_t)dp);
        n += (size_t)dp;
        out[n++] = '.';
        memcpy(out + n, d + dp, (size_t)(nd - dp));
        n += (size_t)(nd - dp);
    }
    out[n] = '\0';
    return n;
}

void json_write_double(json_writer *w, double v)
{
    if (isnan(v) || isinf(v)) {
        json_write_null(w);
        return;
    }
    char tmp[JSON_FLOAT_MAX];
    size_t n = json_format_float(v, JSON_FLOAT_GO_JSON, tmp);
    value_prefix(w);
    put(w, tmp, n);
}

void json_write_float_string(json_writer *w, double v)
{
    char tmp[JSON_FLOAT_MAX];
    size_t n = json_format_float(v, JSON_FLOAT_PROMETHEUS, tmp);
    json_write_string_n(w, tmp, n);
}

void json_write_timestamp(json_writer *w, int64_t ms)
{
    char tmp[32];
    size_t n = 0;
    uint64_t u = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    if (ms < 0) tmp[n++] = '-';
    n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%" PRIu64, u / 1000);
    unsigned frac = (unsigned)(u % 1000);
    if (frac) n += (size_t)snprintf(tmp + n, sizeof tmp - n, ".%03u", frac);
    value_prefix(w);
    put(w, tmp, n);
}

void json_write_bool(json_writer *w, bool v)
{
    value_prefix(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void json_write_null(json_writer *w)
{
    value_prefix(w);
    put(w, "null", 4);
}

void json_write_raw(json_writer *w, const char *text, size_t len)
{
    value_prefix(w);
    put(w, text, len);
}

/* ---- reader ------------------------------------------------------------------------ */

/* A json_doc and a json_val are jansson values: json_doc is the root (which
 * owns the rest), json_val any value. The structs are never defined. */
static json_t *jv(const json_val *v)
{
    return (json_t *)v;
}

/* Copies p with ".0" appended to each integer literal beyond int64 (outside
 * strings), so jansson reads it as a real. Returns NULL when none needs it
 * (parse the input as it is), else a new buffer (caller frees) of *out_len
 * bytes. */
static char *widen_big_integers(const char *p, size_t len, size_t *out_len)
{
    static const char maxpos[] = "9223372036854775807", maxneg[] = "9223372036854775808";
    char *out = NULL;
    size_t o = 0, copied = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t need = 0;
        bool in_str = false;
        for (size_t i = 0; i < len; i++) {
            char ch = p[i];
            if (in_str) {
                if (ch == '\\')
                    i++;
                else if (ch == '"')
                    in_str = false;
                continue;
            }
            if (ch == '"') {
                in_str = true;
                continue;
            }
            if (ch != '-' && (ch < '0' || ch > '9')) continue;
            size_t nd = 0;
            bool neg = ch == '-', only_digits = true;
            if (neg) i++;
            size_t dstart = i;
            for (; i < len; i++) {
                char d = p[i];
                if (d >= '0' && d <= '9')
                    nd++;
                else if (d == '.' || d == 'e' || d == 'E' || d == '+' || d == '-')
                    only_digits = false;
                else
                    break;
            }
            size_t end = i;
            i--; /* the loop's i++ moves to the character after the token */
            if (!only_digits || nd < 19 || nd != end - dstart) continue;
            const char *lim = neg ? maxneg : maxpos;
            if (nd == 19 && memcmp(p + dstart, lim, 19) <= 0) continue;
            if (pass == 0) {
                need++;
            } else {
                memcpy(out + o, p + copied, end - copied);
                o += end - copied;
                memcpy(out + o, ".0", 2);
                o += 2;
                copied = end;
            }
        }
        if (pass == 0) {
            if (need == 0) return NULL;
            out = mem_malloc(len + 2 * need);
        }
    }
    memcpy(out + o, p + copied, len - copied);
    *out_len = o + len - copied;
    return out;
}

static void read_error(json_read_error *err, int code, int line, int column, size_t offset,
                       const char *text)
{
    if (!err) return;
    err->code = code;
    err->line = line;
    err->column = column;
    err->offset = offset;
    snprintf(err->text, sizeof err->text, "%s", text);
    snprintf(err->msg, sizeof err->msg, "%d:%d: %s", line, column, err->text);
}

json_doc *json_doc_parse(const char *data, size_t len, size_t max_len, unsigned flags,
                         json_read_error *err)
{
    if (len > max_len) {
        char text[JSON_READ_TEXT_MAX];
        snprintf(text, sizeof text, "input of %zu bytes exceeds the limit of %zu", len, max_len);
        read_error(err, -E2BIG, 0, 0, 0, text);
        return NULL;
    }
    if (!data) data = "";
    size_t jflags = ((flags & JSON_READ_ANY) ? JSON_DECODE_ANY : 0) |
                    ((flags & JSON_READ_ALLOW_NUL) ? JSON_ALLOW_NUL : 0);
    size_t wlen = 0;
    char *wide = (flags & JSON_READ_BIG_INTEGERS) ? widen_big_integers(data, len, &wlen) : NULL;
    json_error_t je;
    json_t *root = wide ? json_loadb(wide, wlen, jflags, &je) : json_loadb(data, len, jflags, &je);
    mem_free(wide);
    if (!root) {
        read_error(err, -EBADMSG, je.line, je.column, (size_t)je.position, je.text);
        return NULL;
    }
    return (json_doc *)root;
}

void json_doc_free(json_doc *doc)
{
    if (doc) json_decref((json_t *)doc);
}

const json_val *json_doc_root(const json_doc *doc)
{
    return (const json_val *)doc;
}

enum json_kind json_val_kind(const json_val *v)
{
    if (!v) return JSON_KIND_NONE;
    switch (json_typeof(jv(v))) {
    case JSON_OBJECT:
        return JSON_KIND_OBJECT;
    case JSON_ARRAY:
        return JSON_KIND_ARRAY;
    case JSON_STRING:
        return JSON_KIND_STRING;
    case JSON_INTEGER:
        return JSON_KIND_INT;
    case JSON_REAL:
        return JSON_KIND_REAL;
    case JSON_TRUE:
    case JSON_FALSE:
        return JSON_KIND_BOOL;
    case JSON_NULL:
        return JSON_KIND_NULL;
    }
    return JSON_KIND_NONE;
}

bool json_val_is_null(const json_val *v)
{
    return json_is_null(jv(v));
}

bool json_val_is_bool(const json_val *v)
{
    return json_is_boolean(jv(v));
}

bool json_val_is_true(const json_val *v)
{
    return json_is_true(jv(v));
}

bool json_val_is_int(const json_val *v)
{
    return json_is_integer(jv(v));
}

bool json_val_is_real(const json_val *v)
{
    return json_is_real(jv(v));
}

bool json_val_is_number(const json_val *v)
{
    return json_is_number(jv(v));
}

bool json_val_is_string(const json_val *v)
{
    return json_is_string(jv(v));
}

bool json_val_is_array(const json_val *v)
{
    return json_is_array(jv(v));
}

bool json_val_is_object(const json_val *v)
{
    return json_is_object(jv(v));
}

const json_val *json_val_get(const json_val *obj, const char *key)
{
    if (!json_is_object(jv(obj)) || !key) return NULL;
    return (const json_val *)json_object_get(jv(obj), key);
}

size_t json_val_len(const json_val *v)
{
    if (json_is_array(jv(v))) return json_array_size(jv(v));
    if (json_is_object(jv(v))) return json_object_size(jv(v));
    return 0;
}

const json_val *json_val_at(const json_val *arr, size_t i)
{
    if (!json_is_array(jv(arr))) return NULL;
    return (const json_val *)json_array_get(jv(arr), i);
}

bool json_val_next(const json_val *obj, json_iter *it, const char **key, const json_val **val)
{
    if (!json_is_object(jv(obj))) return false;
    if (!it->started) {
        it->started = true;
        it->pos = json_object_iter(jv(obj));
    } else if (it->pos) {
        it->pos = json_object_iter_next(jv(obj), it->pos);
    }
    if (!it->pos) return false;
    if (key) *key = json_object_iter_key(it->pos);
    if (val) *val = (const json_val *)json_object_iter_value(it->pos);
    return true;
}

const char *json_val_string(const json_val *v, size_t *len)
{
    if (!json_is_string(jv(v))) return NULL;
    if (len) *len = json_string_length(jv(v));
    return json_string_value(jv(v));
}

int json_val_int64(const json_val *v, int64_t *out)
{
    if (json_is_integer(jv(v))) {
        *out = (int64_t)json_integer_value(jv(v));
        return 0;
    }
    if (!json_is_real(jv(v))) return -EINVAL;
    double d = json_real_value(jv(v));
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d))
        return -ERANGE;
    *out = (int64_t)d;
    return 0;
}

int json_val_uint64(const json_val *v, uint64_t *out)
{
    if (json_is_integer(jv(v))) {
        json_int_t i = json_integer_value(jv(v));
        if (i < 0) return -ERANGE;
        *out = (uint64_t)i;
        return 0;
    }
    if (!json_is_real(jv(v))) return -EINVAL;
    double d = json_real_value(jv(v));
    if (!(d >= 0) || d != floor(d)) return -ERANGE;
    *out = d >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)d;
    return 0;
}

int json_val_double(const json_val *v, double *out)
{
    if (!json_is_number(jv(v))) return -EINVAL;
    *out = json_number_value(jv(v));
    return 0;
}

int json_val_bool(const json_val *v, bool *out)
{
    if (!json_is_boolean(jv(v))) return -EINVAL;
    *out = json_is_true(jv(v));
    return 0;
}
