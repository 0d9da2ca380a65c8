#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "expfmt.h"

void json_init(json_writer *w, buf *out)
{
    memset(w, 0, sizeof *w);
    w->out = out;
    w->first[0] = true;
}

int json_error(const json_writer *w)
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

void json_object_begin(json_writer *w)
{
    open(w, '{');
}

void json_object_end(json_writer *w)
{
    close_(w, '}');
}

void json_array_begin(json_writer *w)
{
    open(w, '[');
}

void json_array_end(json_writer *w)
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

void json_key(json_writer *w, const char *key)
{
    value_prefix(w);
    put(w, "\"", 1);
    if (!w->err) w->err = json_escape(w->out, key, strlen(key));
    put(w, "\":", 2);
    w->after_key = true;
}

void json_string_n(json_writer *w, const char *s, size_t len)
{
    value_prefix(w);
    put(w, "\"", 1);
    if (!w->err) w->err = json_escape(w->out, s, len);
    put(w, "\"", 1);
}

void json_string(json_writer *w, const char *s)
{
    json_string_n(w, s, strlen(s));
}

void json_int(json_writer *w, int64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
    value_prefix(w);
    put(w, tmp, (size_t)n);
}

void json_uint(json_writer *w, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    value_prefix(w);
    put(w, tmp, (size_t)n);
}

void json_double(json_writer *w, double v)
{
    if (isnan(v) || isinf(v)) {
        json_null(w);
        return;
    }
    char tmp[EXPFMT_FLOAT_MAX];
    size_t n = expfmt_format_float(v, tmp);
    value_prefix(w);
    put(w, tmp, n);
}

void json_float_string(json_writer *w, double v)
{
    char tmp[EXPFMT_FLOAT_MAX];
    size_t n = expfmt_format_float(v, tmp);
    json_string_n(w, tmp, n);
}

void json_bool(json_writer *w, bool v)
{
    value_prefix(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void json_null(json_writer *w)
{
    value_prefix(w);
    put(w, "null", 4);
}

void json_raw(json_writer *w, const char *text, size_t len)
{
    value_prefix(w);
    put(w, text, len);
}
