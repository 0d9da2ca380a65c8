#include "expfmt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {
    "unknown", "counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset",
};

const char *expfmt_type_name(enum expfmt_type t)
{
    if ((unsigned)t >= sizeof type_names / sizeof type_names[0]) return "unknown";
    return type_names[t];
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---- floats ------------------------------------------------------------ */

/* Case-insensitive: how many leading bytes of s match word. */
static size_t prefix_nocase(const char *s, size_t len, const char *word)
{
    size_t i = 0;
    while (i < len && word[i]) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != word[i]) break;
        i++;
    }
    return i;
}

int expfmt_parse_float(const char *s, size_t len, double *out)
{
    /* Special values, as Go's strconv.special(): [+-]inf, [+-]infinity,
     * nan (unsigned only), case-insensitive, and nothing may follow. */
    if (len > 0) {
        size_t j = (s[0] == '+' || s[0] == '-') ? 1 : 0;
        if (j < len && (s[j] == 'i' || s[j] == 'I')) {
            size_t m = prefix_nocase(s + j, len - j, "infinity");
            if ((m == 8 && j + 8 == len) || (m >= 3 && j + 3 == len)) {
                *out = s[0] == '-' ? -INFINITY : INFINITY;
                return 0;
            }
            return -EINVAL;
        }
        if (j == 0 && (s[0] == 'n' || s[0] == 'N')) {
            if (len == 3 && prefix_nocase(s, len, "nan") == 3) {
                *out = NAN;
                return 0;
            }
            return -EINVAL;
        }
    }
    /* Decimal: [+-]? (d+ (. d*)? | . d+) ([eE] [+-]? d+)? */
    size_t i = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) i++;
    size_t mant = i;
    while (i < len && is_digit(s[i]))
        i++;
    bool digits = i > mant;
    if (i < len && s[i] == '.') {
        i++;
        size_t f = i;
        while (i < len && is_digit(s[i]))
            i++;
        digits = digits || i > f;
    }
    if (!digits) return -EINVAL;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-')) i++;
        size_t e = i;
        while (i < len && is_digit(s[i]))
            i++;
        if (i == e) return -EINVAL;
    }
    if (i != len) return -EINVAL;
    char small[64];
    char *tmp = len < sizeof small ? small : malloc(len + 1);
    if (!tmp) return -ENOMEM;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    double v = strtod(tmp, NULL);
    if (tmp != small) free(tmp);
    *out = v;
    return isinf(v) ? -ERANGE : 0;
}

int expfmt_float_error(expfmt_sink sink, void *ctx, const char *s, size_t len, int rc)
{
    int r = sink(ctx, "strconv.ParseFloat: parsing ", 28);
    if (!r) r = expfmt_quote_go(sink, ctx, s, len);
    const char *why = rc == -ERANGE ? ": value out of range" : ": invalid syntax";
    if (!r) r = sink(ctx, why, strlen(why));
    return r;
}

/* Shortest digits that round-trip: digits[] without trailing zeros and the
 * decimal point position dp (value = 0.d1d2... x 10^dp). */
static int shortest_digits(double a, char digits[24], int *dp)
{
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, a);
        if (prec == 17 || strtod(tmp, NULL) == a) break;
    }
    int nd = 0;
    const char *p = tmp;
    for (; *p && *p != 'e'; p++) {
        if (is_digit(*p)) digits[nd++] = *p;
    }
    int exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    *dp = exp10 + 1;
    return nd;
}

/* Exact digits of an integral value below 2^53 (no round-trip search). */
static int integer_digits(double a, char digits[24], int *dp)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%.0f", a);
    *dp = n;
    while (n > 1 && tmp[n - 1] == '0')
        n--;
    memcpy(digits, tmp, (size_t)n);
    digits[n] = '\0';
    return n;
}

size_t expfmt_format_float(double f, char *out)
{
    if (isnan(f)) return (size_t)snprintf(out, EXPFMT_FLOAT_MAX, "NaN");
    if (isinf(f)) return (size_t)snprintf(out, EXPFMT_FLOAT_MAX, f > 0 ? "+Inf" : "-Inf");
    if (f == 0) return (size_t)snprintf(out, EXPFMT_FLOAT_MAX, signbit(f) ? "-0" : "0");
    size_t n = 0;
    double a = f;
    if (a < 0) {
        out[n++] = '-';
        a = -a;
    }
    char d[24];
    int dp;
    int nd = (a < 9007199254740992.0 && a == floor(a)) ? integer_digits(a, d, &dp)
                                                       : shortest_digits(a, d, &dp);
    int exp = dp - 1;
    /* Go: %e when exp < -4 || exp >= eprec, and eprec is 6 for the shortest
     * representation. */
    if (exp < -4 || exp >= 6) {
        out[n++] = d[0];
        if (nd > 1) {
            out[n++] = '.';
            memcpy(out + n, d + 1, (size_t)nd - 1);
            n += (size_t)nd - 1;
        }
        n += (size_t)snprintf(out + n, EXPFMT_FLOAT_MAX - n, "e%c%02d", exp < 0 ? '-' : '+',
                              exp < 0 ? -exp : exp);
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

size_t expfmt_format_om_float(double f, char *out)
{
    if (f == 0) { /* -0 too, as Prometheus's FormatOpenMetricsFloat */
        memcpy(out, "0.0", 4);
        return 3;
    }
    size_t n = expfmt_format_float(f, out);
    if (isnan(f) || isinf(f)) return n;
    if (!memchr(out, 'e', n) && !memchr(out, '.', n)) {
        out[n++] = '.';
        out[n++] = '0';
        out[n] = '\0';
    }
    return n;
}

/* ---- UTF-8 and names ---------------------------------------------------- */

/* Decodes one rune; returns its length, or 0 for an invalid sequence. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *r)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *r = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) {
        n = 2;
        v = c & 0x1F;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        v = c & 0x0F;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n > len) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *r = v;
    return n;
}

bool expfmt_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t r;
        size_t n = utf8_decode(p + i, len - i, &r);
        if (!n) return false;
        i += n;
    }
    return true;
}

static bool name_char(char c, bool first, bool colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
    if (colon && c == ':') return true;
    return !first && is_digit(c);
}

bool expfmt_legacy_label_name(const char *s, size_t len)
{
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++) {
        if (!name_char(s[i], i == 0, false)) return false;
    }
    return true;
}

bool expfmt_legacy_metric_name(const char *s, size_t len)
{
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++) {
        if (!name_char(s[i], i == 0, true)) return false;
    }
    return true;
}

/* Go's unicode.IsPrint, approximated for the ranges that matter: controls,
 * separators other than ASCII space, format characters, private use. */
static bool rune_printable(uint32_t r)
{
    if (r < 0x20 || r == 0x7f) return false;
    if (r < 0x7f) return true;
    if (r <= 0xA0 || r == 0xAD) return false;
    if ((r >= 0x2000 && r <= 0x200F) || (r >= 0x2028 && r <= 0x202F) ||
        (r >= 0x205F && r <= 0x206F) || r == 0x3000 || r == 0xFEFF ||
        (r >= 0xFFF9 && r <= 0xFFFB) || (r >= 0xE000 && r <= 0xF8FF) || r >= 0xF0000)
        return false;
    return true;
}

int expfmt_quote_go(expfmt_sink sink, void *ctx, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    int rc = sink(ctx, "\"", 1);
    size_t i = 0;
    while (i < len && !rc) {
        uint32_t r;
        size_t n = utf8_decode(p + i, len - i, &r);
        char e[12];
        if (n == 0) {
            e[0] = '\\';
            e[1] = 'x';
            e[2] = hex[p[i] >> 4];
            e[3] = hex[p[i] & 15];
            rc = sink(ctx, e, 4);
            i++;
            continue;
        }
        if (r == '"' || r == '\\') {
            e[0] = '\\';
            e[1] = (char)r;
            rc = sink(ctx, e, 2);
        } else if (rune_printable(r)) {
            rc = sink(ctx, s + i, n);
        } else {
            const char *esc = NULL;
            switch (r) {
            case '\a':
                esc = "\\a";
                break;
            case '\b':
                esc = "\\b";
                break;
            case '\f':
                esc = "\\f";
                break;
            case '\n':
                esc = "\\n";
                break;
            case '\r':
                esc = "\\r";
                break;
            case '\t':
                esc = "\\t";
                break;
            case '\v':
                esc = "\\v";
                break;
            default:
                break;
            }
            if (esc) {
                rc = sink(ctx, esc, 2);
            } else {
                int m;
                if (r < ' ' || r == 0x7f)
                    m = snprintf(e, sizeof e, "\\x%c%c", hex[r >> 4], hex[r & 15]);
                else if (r < 0x10000)
                    m = snprintf(e, sizeof e, "\\u%04x", (unsigned)r);
                else
                    m = snprintf(e, sizeof e, "\\U%08x", (unsigned)r);
                rc = sink(ctx, e, (size_t)m);
            }
        }
        i += n;
    }
    if (!rc) rc = sink(ctx, "\"", 1);
    return rc;
}

int expfmt_fixed_sink(void *ctx, const char *p, size_t n)
{
    expfmt_fixed *f = ctx;
    if (f->cap == 0) return 0;
    size_t room = f->cap - 1 - f->len;
    if (n > room) n = room;
    memcpy(f->p + f->len, p, n);
    f->len += n;
    f->p[f->len] = '\0';
    return 0;
}
