#include "json.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "expfmt.h"

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
