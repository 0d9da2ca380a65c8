#include "promql/promqltest.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "expfmt.h"
#include "hmap.h"
#include "mem.h"
#include "promql/memstore.h"
#include "promql/parse.h"
#include "strutil.h"

/* ============================================================================
 * Small helpers
 * ========================================================================== */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Go's regexp \s: [\t\n\f\r ]. */
static bool is_re_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c)
{
    return is_alpha(c) || is_digit(c);
}

static bool eq_nocase(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word);
    if (len != n) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != word[i]) return false;
    }
    return true;
}

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

/* Memory that cannot fail: the arenas used here have no limit. */
static void *xalloc(arena *a, size_t n)
{
    void *p = arena_alloc(a, n ? n : 1);
    if (!p) abort();
    return p;
}

static char *xstrndup(arena *a, const char *s, size_t n)
{
    char *p = arena_strndup(a, s, n);
    if (!p) abort();
    return p;
}

/* Appends s quoted as Go's %q does. */
static void put_quoted(buf *out, const char *s, size_t len)
{
    expfmt_quote_go(buf_sink, out, s, len);
}

static void put_float(buf *out, double v)
{
    char f[EXPFMT_FLOAT_MAX];
    size_t n = expfmt_format_float(v, f);
    if (strutil_is_stale_nan(v)) {
        buf_puts(out, "StaleNaN");
        return;
    }
    buf_append(out, f, n);
}

static void put_duration(buf *out, int64_t ms)
{
    char d[32];
    strutil_format_duration(ms, d);
    buf_puts(out, d);
}

/* ============================================================================
 * Numbers (Go's strconv.ParseInt(s, 0, 64) and ParseFloat)
 * ========================================================================== */

static int hex_digit(char c);

/* Go's underscoreOK: underscores only between digits or after a base
 * prefix. */
static bool underscore_ok(const char *s, size_t len)
{
    char saw = '^';
    size_t i = 0;
    if (len >= 1 && (s[0] == '-' || s[0] == '+')) {
        s++;
        len--;
    }
    bool hex = false;
    if (len >= 2 && s[0] == '0' &&
        ((s[1] | 0x20) == 'b' || (s[1] | 0x20) == 'o' || (s[1] | 0x20) == 'x')) {
        i = 2;
        saw = '0';
        hex = (s[1] | 0x20) == 'x';
    }
    for (; i < len; i++) {
        char c = s[i];
        if (is_digit(c) || (hex && (c | 0x20) >= 'a' && (c | 0x20) <= 'f')) {
            saw = '0';
            continue;
        }
        if (c == '_') {
            if (saw != '0') return false;
            saw = '_';
            continue;
        }
        if (saw == '_') return false;
        saw = '!';
    }
    return saw != '_';
}

static bool go_parse_int0(const char *s0, size_t len0, int64_t *out)
{
    const char *s = s0;
    size_t len = len0;
    bool neg = false;
    if (len && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        s++;
        len--;
    }
    if (!len) return false;
    unsigned base = 10;
    if (s[0] == '0') {
        if (len >= 3 && (s[1] | 0x20) == 'b') {
            base = 2;
            s += 2;
            len -= 2;
        } else if (len >= 3 && (s[1] | 0x20) == 'o') {
            base = 8;
            s += 2;
            len -= 2;
        } else if (len >= 3 && (s[1] | 0x20) == 'x') {
            base = 16;
            s += 2;
            len -= 2;
        } else {
            base = 8;
            s++;
            len--;
        }
    }
    uint64_t n = 0;
    bool underscores = false, overflow = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        unsigned d;
        if (c == '_') {
            underscores = true;
            continue;
        } else if (is_digit(c)) {
            d = (unsigned)(c - '0');
        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
            d = (unsigned)((c | 0x20) - 'a' + 10);
        } else {
            return false;
        }
        if (d >= base) return false;
        if (n > (UINT64_MAX - d) / base) overflow = true;
        n = n * base + d;
    }
    if (underscores && !underscore_ok(s0, len0)) return false;
    if (overflow) return false;
    if (!neg && n > (uint64_t)INT64_MAX) return false;
    if (neg && n > (uint64_t)INT64_MAX + 1) return false;
    *out = neg ? (int64_t)(0 - n) : (int64_t)n;
    return true;
}

/* Go's hexadecimal floats: [+-]0x<hex mantissa, one '.' at most>p[+-]<decimal
 * exponent>, underscores as in integers. */
static bool go_parse_hex_float(const char *s, size_t len, double *out)
{
    size_t i = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) i++;
    if (!(i + 1 < len && s[i] == '0' && (s[i + 1] | 0x20) == 'x')) return false;
    i += 2;
    bool digits = false, dot = false, underscores = false;
    for (; i < len && (s[i] | 0x20) != 'p'; i++) {
        if (s[i] == '_') {
            underscores = true;
        } else if (s[i] == '.') {
            if (dot) return false;
            dot = true;
        } else if (hex_digit(s[i]) >= 0) {
            digits = true;
        } else {
            return false;
        }
    }
    if (!digits || i >= len) return false;
    i++;
    if (i < len && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= len) return false;
    for (; i < len; i++) {
        if (s[i] == '_')
            underscores = true;
        else if (!is_digit(s[i]))
            return false;
    }
    if (underscores && !underscore_ok(s, len)) return false;
    char tmp[128];
    size_t k = 0;
    for (i = 0; i < len && k + 1 < sizeof tmp; i++) {
        if (s[i] != '_') tmp[k++] = s[i];
    }
    if (i < len) return false;
    tmp[k] = '\0';
    errno = 0;
    char *end;
    double v = strtod(tmp, &end);
    if (*end || (errno == ERANGE && isinf(v))) return false;
    *out = v;
    return true;
}

int promqltest_parse_number(const char *s, size_t len, double *out)
{
    int64_t n;
    if (go_parse_int0(s, len, &n)) {
        *out = (double)n;
        return 0;
    }
    double v;
    if (expfmt_parse_float(s, len, &v) == 0 || go_parse_hex_float(s, len, &v)) {
        *out = v;
        return 0;
    }
    return -EINVAL;
}

/* Go's strconv.ParseUint(s, 10, 64) (the repetition count of `x`). */
static bool parse_uint10(const char *s, size_t len, uint64_t *out)
{
    if (!len) return false;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i])) return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (n > (UINT64_MAX - d) / 10) return false;
        n = n * 10 + d;
    }
    *out = n;
    return true;
}

/* ============================================================================
 * Go string unquoting (strconv.Unquote), for `expect string`
 * ========================================================================== */

static int hex_digit(char c)
{
    if (is_digit(c)) return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
    return -1;
}

/* The whole of s[0..len) as one Go quoted string: 0 or -EINVAL. */
static int go_unquote(const char *s, size_t len, buf *out)
{
    size_t end;
    int rc = strutil_go_unquote(s, len, STRUTIL_UNQUOTE_GO, out, &end, NULL);
    return rc == 0 && end != len ? -EINVAL : rc;
}

/* ============================================================================
 * The series notation (Prometheus's ParseSeriesDesc)
 * ========================================================================== */

typedef struct sp {
    const char *s;
    size_t len, i;
    arena *a;
    size_t *budget;
    buf *err;
    /* expanded items, grown on the heap, copied into the arena at the end */
    promqltest_item *items;
    size_t n, cap;
    bool histograms;
} sp;

static int sp_error(sp *p, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sp_error(sp *p, size_t at, const char *fmt, ...)
{
    buf_printf(p->err, "%zu: ", at + 1);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(p->err, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

enum tok_kind {
    TOK_EOF,
    TOK_SPACE,
    TOK_ADD,
    TOK_SUB,
    TOK_TIMES,
    TOK_BLANK,
    TOK_NUMBER,
    TOK_IDENT,
    TOK_OPEN_HIST,
};

typedef struct tok {
    enum tok_kind kind;
    size_t start, len;
} tok;

/* The lexer's scanNumber in series mode: no hexadecimal, and an `x` may
 * follow (the repetition). */
static bool scan_number(sp *p)
{
    const char *s = p->s;
    size_t len = p->len, start = p->i;
#define PEEK() (p->i < len ? s[p->i] : '\0')
#define IN(c, set) ((c) != '\0' && strchr(set, (c)) != NULL)
    if (PEEK() == '.') p->i++;
    if (is_digit(PEEK())) p->i++;
    bool dot = false, exp = false;
    while (IN(PEEK(), "0123456789._eE")) {
        char c = PEEK();
        if (c == '.') {
            if (dot) {
                p->i++;
                return false;
            }
            p->i++;
            dot = true;
            if (IN(PEEK(), "_.")) {
                p->i++;
                return false;
            }
            continue;
        }
        if (c == 'e' || c == 'E') {
            if (exp) {
                p->i++;
                return false;
            }
            p->i++;
            exp = true;
            if (IN(PEEK(), "+-")) p->i++;
            if (IN(PEEK(), "._eE") || p->i >= len) {
                if (p->i < len) p->i++;
                return false;
            }
            continue;
        }
        if (c == '_') {
            p->i++;
            if (IN(PEEK(), "._eE") || p->i >= len) {
                if (p->i < len) p->i++;
                return false;
            }
            continue;
        }
        while (is_digit(PEEK()))
            p->i++;
    }
    if (p->i == start) return false;
    char next = PEEK();
    return next == 'x' || !is_alnum(next);
#undef PEEK
#undef IN
}

static int next_tok(sp *p, tok *t)
{
    const char *s = p->s;
    t->start = p->i;
    t->len = 0;
    if (p->i >= p->len) {
        t->kind = TOK_EOF;
        return 0;
    }
    char c = s[p->i];
    if (c == '{' && p->i + 1 < p->len && s[p->i + 1] == '{') {
        p->i += 2;
        t->kind = TOK_OPEN_HIST;
    } else if (is_space(c)) {
        while (p->i < p->len && is_space(s[p->i]))
            p->i++;
        t->kind = TOK_SPACE;
    } else if (c == '+') {
        p->i++;
        t->kind = TOK_ADD;
    } else if (c == '-') {
        p->i++;
        t->kind = TOK_SUB;
    } else if (c == 'x') {
        p->i++;
        t->kind = TOK_TIMES;
    } else if (c == '_') {
        p->i++;
        t->kind = TOK_BLANK;
    } else if (is_digit(c) || (c == '.' && p->i + 1 < p->len && is_digit(s[p->i + 1]))) {
        if (!scan_number(p)) {
            size_t e = p->i;
            while (e < p->len && !is_space(s[e]))
                e++;
            buf tmp;
            buf_init(&tmp, BUF_UNLIMITED);
            put_quoted(&tmp, s + t->start, e - t->start);
            sp_error(p, t->start, "bad number syntax: %s", buf_cstr(&tmp));
            buf_cleanup(&tmp);
            return -EINVAL;
        }
        t->kind = TOK_NUMBER;
    } else if (is_alpha(c)) {
        while (p->i < p->len && (is_alnum(s[p->i]) || s[p->i] == ':'))
            p->i++;
        bool num = eq_nocase(s + t->start, p->i - t->start, "inf") ||
                   eq_nocase(s + t->start, p->i - t->start, "nan");
        t->kind = num ? TOK_NUMBER : TOK_IDENT;
    } else {
        return sp_error(p, p->i, "unexpected character in series sequence: '%c'", c);
    }
    t->len = p->i - t->start;
    return 0;
}

static void describe_tok(const sp *p, const tok *t, buf *out)
{
    switch (t->kind) {
    case TOK_EOF:
        buf_puts(out, "end of input");
        break;
    case TOK_SPACE:
        buf_puts(out, "<space>");
        break;
    case TOK_ADD:
        buf_puts(out, "\"+\"");
        break;
    case TOK_SUB:
        buf_puts(out, "\"-\"");
        break;
    case TOK_TIMES:
        buf_puts(out, "\"x\"");
        break;
    case TOK_BLANK:
        buf_puts(out, "\"_\"");
        break;
    case TOK_OPEN_HIST:
        buf_puts(out, "\"{{\"");
        break;
    case TOK_NUMBER:
        buf_puts(out, "number ");
        put_quoted(out, p->s + t->start, t->len);
        break;
    case TOK_IDENT:
        buf_puts(out, "identifier ");
        put_quoted(out, p->s + t->start, t->len);
        break;
    }
}

static int unexpected(sp *p, const tok *t, const char *expected)
{
    buf d;
    buf_init(&d, BUF_UNLIMITED);
    describe_tok(p, t, &d);
    sp_error(p, t->start, "unexpected %s in series values%s%s", buf_cstr(&d),
             expected ? ", expected " : "", expected ? expected : "");
    buf_cleanup(&d);
    return -EINVAL;
}

static int tok_number(sp *p, const tok *t, double *v)
{
    if (promqltest_parse_number(p->s + t->start, t->len, v) == 0) return 0;
    buf tmp;
    buf_init(&tmp, BUF_UNLIMITED);
    put_quoted(&tmp, p->s + t->start, t->len);
    sp_error(p, t->start, "error parsing number: %s", buf_cstr(&tmp));
    buf_cleanup(&tmp);
    return -EINVAL;
}

/* `x<uint>` after an item: the repetition count. */
static int tok_times(sp *p, uint64_t *k)
{
    tok t;
    int rc = next_tok(p, &t);
    if (rc < 0) return rc;
    if (t.kind != TOK_NUMBER) return unexpected(p, &t, "repetition count");
    if (!parse_uint10(p->s + t.start, t.len, k)) {
        buf tmp;
        buf_init(&tmp, BUF_UNLIMITED);
        put_quoted(&tmp, p->s + t.start, t.len);
        sp_error(p, t.start, "invalid repetition in series values: %s", buf_cstr(&tmp));
        buf_cleanup(&tmp);
        return -EINVAL;
    }
    return 0;
}

static int push_items(sp *p, size_t at, uint64_t count, promqltest_item it, double step,
                      int64_t kstep)
{
    if (count > PROMQLTEST_MAX_LINE_ITEMS || p->n + count > PROMQLTEST_MAX_LINE_ITEMS) {
        sp_error(p, at, "too many values in one line (at most %zu)", PROMQLTEST_MAX_LINE_ITEMS);
        return -E2BIG;
    }
    if (count > *p->budget) {
        sp_error(p, at, "too many values in the file (at most %zu)", PROMQLTEST_MAX_FILE_ITEMS);
        return -E2BIG;
    }
    *p->budget -= count;
    p->items = mem_grow(p->items, sizeof *p->items, p->n + count, &p->cap);
    for (uint64_t i = 0; i < count; i++) {
        p->items[p->n++] = it;
        it.v += step;
        it.k += kstep;
    }
    return 0;
}

/* ---- histograms {{...}} ---- */

static void hskip_spaces(sp *p)
{
    while (p->i < p->len && is_space(p->s[p->i]))
        p->i++;
}

/* A number inside a histogram: [-]digits... or [-]Inf/NaN. */
static int hnumber(sp *p, bool allow_sign, double *v)
{
    size_t at = p->i;
    bool neg = false;
    if (allow_sign && p->i < p->len && p->s[p->i] == '-') {
        neg = true;
        p->i++;
    }
    size_t st = p->i;
    if (p->i < p->len && is_alpha(p->s[p->i])) {
        while (p->i < p->len && is_alpha(p->s[p->i]))
            p->i++;
        if (!eq_nocase(p->s + st, p->i - st, "inf") && !eq_nocase(p->s + st, p->i - st, "nan"))
            return sp_error(p, at, "expected a number in histogram description");
    } else if (p->i < p->len && (is_digit(p->s[p->i]) || (p->s[p->i] == '.' && p->i + 1 < p->len &&
                                                          is_digit(p->s[p->i + 1])))) {
        if (!scan_number(p) || (p->i < p->len && p->s[p->i] == 'x'))
            return sp_error(p, at, "bad number syntax in histogram description");
    } else {
        return sp_error(p, at, "expected a number in histogram description");
    }
    tok t = {TOK_NUMBER, st, p->i - st};
    int rc = tok_number(p, &t, v);
    if (rc < 0) return rc;
    if (neg) *v = -*v;
    return 0;
}

static int hint(sp *p, int64_t *v)
{
    size_t at = p->i;
    bool neg = false;
    if (p->i < p->len && p->s[p->i] == '-') {
        neg = true;
        p->i++;
    }
    size_t st = p->i;
    while (p->i < p->len && (is_alnum(p->s[p->i]) || p->s[p->i] == '.'))
        p->i++;
    uint64_t u;
    if (!parse_uint10(p->s + st, p->i - st, &u) || u > (uint64_t)INT32_MAX)
        return sp_error(p, at, "expected an integer in histogram description");
    *v = neg ? -(int64_t)u : (int64_t)u;
    return 0;
}

static int hbuckets(sp *p, double **out, size_t *n)
{
    size_t at = p->i;
    if (p->i >= p->len || p->s[p->i] != '[')
        return sp_error(p, at, "expected '[' to start a bucket list");
    p->i++;
    double tmp[PROMQLTEST_MAX_BUCKETS];
    size_t k = 0;
    for (;;) {
        if (k == PROMQLTEST_MAX_BUCKETS)
            return sp_error(p, p->i, "too many buckets (at most %d)", PROMQLTEST_MAX_BUCKETS);
        int rc = hnumber(p, true, &tmp[k]);
        if (rc < 0) return rc;
        k++;
        bool sp_ = p->i < p->len && is_space(p->s[p->i]);
        hskip_spaces(p);
        if (p->i < p->len && p->s[p->i] == ']') {
            p->i++;
            break;
        }
        if (!sp_) return sp_error(p, p->i, "invalid character in buckets description");
    }
    *out = xalloc(p->a, k * sizeof **out);
    memcpy(*out, tmp, k * sizeof **out);
    *n = k;
    return 0;
}

static const char *const hist_keys[] = {
    "schema", "sum",       "count",    "z_bucket",      "z_bucket_w",         "buckets",
    "offset", "n_buckets", "n_offset", "custom_values", "counter_reset_hint",
};

/* Parses {{...}} (the "{{" already consumed, at p->i). */
static int parse_histogram(sp *p, size_t open_at, promqltest_histogram **out)
{
    promqltest_histogram *h = xalloc(p->a, sizeof *h);
    memset(h, 0, sizeof *h);
    bool first = true;
    for (;;) {
        bool spaced = p->i < p->len && is_space(p->s[p->i]);
        hskip_spaces(p);
        if (p->i + 1 < p->len && p->s[p->i] == '}' && p->s[p->i + 1] == '}') {
            p->i += 2;
            break;
        }
        if (p->i >= p->len) return sp_error(p, open_at, "unterminated histogram description");
        if (!first && !spaced)
            return sp_error(p, p->i, "histogram description items must be separated by spaces");
        if (first && spaced)
            return sp_error(p, p->i, "unexpected space after \"{{\" in histogram description");
        first = false;
        size_t at = p->i;
        while (p->i < p->len && is_alpha(p->s[p->i]))
            p->i++;
        size_t wl = p->i - at;
        int key = -1;
        for (size_t k = 0; k < sizeof hist_keys / sizeof *hist_keys; k++) {
            if (eq_nocase(p->s + at, wl, hist_keys[k])) key = (int)k;
        }
        if (key < 0) {
            buf tmp;
            buf_init(&tmp, BUF_UNLIMITED);
            put_quoted(&tmp, p->s + at, wl ? wl : (p->i < p->len ? 1 : 0));
            sp_error(p, at, "bad histogram descriptor found: %s", buf_cstr(&tmp));
            buf_cleanup(&tmp);
            return -EINVAL;
        }
        if (p->i >= p->len || p->s[p->i] != ':')
            return sp_error(p, p->i, "missing `:` for histogram descriptor");
        p->i++;
        int rc = 0;
        switch (key) {
        case 0:
            rc = hint(p, &h->schema);
            break;
        case 1:
            rc = hnumber(p, true, &h->sum);
            break;
        case 2:
            rc = hnumber(p, true, &h->count);
            break;
        case 3:
            rc = hnumber(p, true, &h->zero_count);
            break;
        case 4:
            rc = hnumber(p, false, &h->zero_threshold);
            break;
        case 5:
            rc = hbuckets(p, &h->pos, &h->n_pos);
            break;
        case 6:
            rc = hint(p, &h->offset);
            break;
        case 7:
            rc = hbuckets(p, &h->neg, &h->n_neg);
            break;
        case 8:
            rc = hint(p, &h->n_offset);
            break;
        case 9:
            rc = hbuckets(p, &h->custom, &h->n_custom);
            break;
        case 10: {
            size_t ws = p->i;
            while (p->i < p->len && is_alpha(p->s[p->i]))
                p->i++;
            const char *w = p->s + ws;
            size_t n = p->i - ws;
            if (eq_nocase(w, n, "unknown"))
                h->hint = PROMQLTEST_HINT_UNKNOWN;
            else if (eq_nocase(w, n, "reset"))
                h->hint = PROMQLTEST_HINT_RESET;
            else if (eq_nocase(w, n, "not_reset"))
                h->hint = PROMQLTEST_HINT_NOT_RESET;
            else if (eq_nocase(w, n, "gauge"))
                h->hint = PROMQLTEST_HINT_GAUGE;
            else
                rc = sp_error(p, ws, "bad counter_reset_hint (unknown, reset, not_reset, gauge)");
            h->hint_set = true;
            break;
        }
        }
        if (rc < 0) return rc;
    }
    *out = h;
    return 0;
}

/* After a histogram item: x<uint>, +{{B}}x<uint>, -{{B}}x<uint> directly
 * after the "}}", or nothing. */
static int histogram_item(sp *p, size_t at)
{
    promqltest_histogram *a;
    int rc = parse_histogram(p, at, &a);
    if (rc < 0) return rc;
    p->histograms = true;
    promqltest_item it = {PROMQLTEST_ITEM_HISTOGRAM, 0, a, NULL, 0};
    char c = p->i < p->len ? p->s[p->i] : '\0';
    if (c == 'x') {
        p->i++;
        uint64_t k;
        if ((rc = tok_times(p, &k)) < 0) return rc;
        return push_items(p, at, k + 1, it, 0, 0);
    }
    if (c == '+' || c == '-') {
        p->i++;
        size_t bat = p->i;
        if (!(p->i + 1 < p->len && p->s[p->i] == '{' && p->s[p->i + 1] == '{'))
            return sp_error(p, bat, "expected \"{{\" after '%c' in a histogram series", c);
        p->i += 2;
        promqltest_histogram *b;
        if ((rc = parse_histogram(p, bat, &b)) < 0) return rc;
        if (!(p->i < p->len && p->s[p->i] == 'x'))
            return sp_error(p, p->i, "expected \"x<count>\" after a histogram increment");
        p->i++;
        uint64_t k;
        if ((rc = tok_times(p, &k)) < 0) return rc;
        it.delta = b;
        return push_items(p, at, k + 1, it, 0, c == '+' ? 1 : -1);
    }
    return push_items(p, at, 1, it, 0, 0);
}

/* One item starting with token t. */
static int series_item(sp *p, const tok *t)
{
    int rc;
    tok nt;
    if (t->kind == TOK_OPEN_HIST) return histogram_item(p, t->start);
    if (t->kind == TOK_BLANK) {
        promqltest_item it = {PROMQLTEST_ITEM_OMITTED, 0, NULL, NULL, 0};
        size_t save = p->i;
        if ((rc = next_tok(p, &nt)) < 0) return rc;
        if (nt.kind != TOK_TIMES) {
            p->i = save;
            return push_items(p, t->start, 1, it, 0, 0);
        }
        uint64_t k;
        if ((rc = tok_times(p, &k)) < 0) return rc;
        return push_items(p, t->start, k, it, 0, 0);
    }
    /* series_value: stale | number | +number | -number */
    double v;
    if (t->kind == TOK_IDENT) {
        if (!(t->len == 5 && memcmp(p->s + t->start, "stale", 5) == 0))
            return unexpected(p, t, "number or \"stale\"");
        v = strutil_stale_nan();
    } else if (t->kind == TOK_NUMBER) {
        if ((rc = tok_number(p, t, &v)) < 0) return rc;
    } else if (t->kind == TOK_ADD || t->kind == TOK_SUB) {
        if ((rc = next_tok(p, &nt)) < 0) return rc;
        if (nt.kind != TOK_NUMBER) return unexpected(p, &nt, "number");
        if ((rc = tok_number(p, &nt, &v)) < 0) return rc;
        if (t->kind == TOK_SUB) v = -v;
    } else {
        return unexpected(p, t, "number or \"stale\"");
    }
    promqltest_item it = {PROMQLTEST_ITEM_FLOAT, v, NULL, NULL, 0};
    size_t save = p->i;
    if ((rc = next_tok(p, &nt)) < 0) return rc;
    if (nt.kind == TOK_TIMES) {
        uint64_t k;
        if ((rc = tok_times(p, &k)) < 0) return rc;
        if (k == UINT64_MAX) return push_items(p, t->start, k, it, 0, 0); /* fails: too many */
        return push_items(p, t->start, k + 1, it, 0, 0);
    }
    if (nt.kind == TOK_ADD || nt.kind == TOK_SUB) {
        tok num;
        if ((rc = next_tok(p, &num)) < 0) return rc;
        if (num.kind != TOK_NUMBER) return unexpected(p, &num, "number");
        double step;
        if ((rc = tok_number(p, &num, &step)) < 0) return rc;
        if (nt.kind == TOK_SUB) step = -step;
        tok x;
        if ((rc = next_tok(p, &x)) < 0) return rc;
        if (x.kind != TOK_TIMES) return unexpected(p, &x, "\"x\"");
        uint64_t k;
        if ((rc = tok_times(p, &k)) < 0) return rc;
        if (k == UINT64_MAX) return push_items(p, t->start, k, it, step, 0);
        return push_items(p, t->start, k + 1, it, step, 0);
    }
    p->i = save;
    return push_items(p, t->start, 1, it, 0, 0);
}

static bool metric_keyword_rejected(const char *s, size_t n)
{
    /* Keywords that the grammar's metric_identifier does not accept. */
    static const char *const kw[] = {"atan2",       "on",   "ignoring", "group_left",
                                     "group_right", "bool", "inf",      "nan"};
    for (size_t i = 0; i < sizeof kw / sizeof *kw; i++) {
        if (eq_nocase(s, n, kw[i])) return true;
    }
    return false;
}

/* The metric part: name, name{...}, {...}. Sets *end past it. */
static int parse_metric(sp *p, labels **out)
{
    const char *s = p->s;
    size_t i = 0, len = p->len;
    bool has_name = false;
    if (i < len && (is_alpha(s[i]) || s[i] == ':')) {
        while (i < len && (is_alnum(s[i]) || s[i] == ':'))
            i++;
        if (metric_keyword_rejected(s, i)) {
            buf tmp;
            buf_init(&tmp, BUF_UNLIMITED);
            put_quoted(&tmp, s, i);
            sp_error(p, 0, "unexpected keyword %s: not a metric name", buf_cstr(&tmp));
            buf_cleanup(&tmp);
            return -EINVAL;
        }
        has_name = true;
    }
    size_t brace = i;
    if (i < len && s[i] == '{') {
        /* Find the closing brace, skipping quoted strings. */
        i++;
        char q = 0;
        for (; i < len; i++) {
            char c = s[i];
            if (q) {
                if (c == '\\' && q != '`')
                    i++;
                else if (c == q)
                    q = 0;
                continue;
            }
            if (c == '"' || c == '\'' || c == '`')
                q = c;
            else if (c == '}')
                break;
            else if (c == '{')
                return sp_error(p, i, "unexpected left brace '{'");
        }
        if (i >= len) return sp_error(p, brace, "unexpected end of input inside braces");
        i++;
    } else if (!has_name) {
        if (i < len)
            return sp_error(p, i,
                            "unexpected character '%c': a series starts with a metric name "
                            "or '{'",
                            s[i]);
        return sp_error(p, i, "unexpected end of input");
    }
    p->i = i;
    bool empty_set = !has_name;
    if (empty_set) {
        for (size_t k = brace + 1; k + 1 < i; k++) {
            if (!is_space(s[k])) empty_set = false;
        }
    }
    if (empty_set) {
        /* Built, not labels_dup(labels_empty()): the static empty set does
         * not carry the hash that built empty sets (results) have. */
        labels_builder b;
        labels_builder_init(&b);
        *out = labels_builder_finish(&b, NULL);
        labels_builder_cleanup(&b);
        return 0;
    }
    /* labels_parse_selector reads the same syntax (with Go's string
     * escapes); only `=` is allowed in a series. */
    label_matcher *ms = NULL;
    size_t n = 0;
    buf e;
    buf_init(&e, BUF_UNLIMITED);
    if (labels_parse_selector(s, i, &ms, &n, &e) < 0) {
        /* e is "<line>:<col>: parse error: <reason>"; keep col and reason. */
        const char *m = buf_cstr(&e);
        const char *c1 = strchr(m, ':');
        if (c1 && m[0] == '1' && c1 == m + 1) m = c1 + 1;
        buf_puts(p->err, m);
        buf_cleanup(&e);
        return -EINVAL;
    }
    buf_cleanup(&e);
    labels_builder b;
    labels_builder_init(&b);
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        if (ms[k].type != MATCH_EQ) {
            buf tmp;
            buf_init(&tmp, BUF_UNLIMITED);
            labels_matcher_format(&ms[k], &tmp);
            rc = sp_error(p, brace, "unexpected matcher %s in a series: only = is allowed",
                          buf_cstr(&tmp));
            buf_cleanup(&tmp);
            break;
        }
        labels_builder_add(&b, ms[k].name, ms[k].name_len, ms[k].value, ms[k].value_len);
    }
    if (rc == 0) {
        const char *dup = NULL;
        *out = labels_builder_finish(&b, &dup);
        if (!*out) rc = sp_error(p, brace, "label name \"%s\" is set twice", dup ? dup : "");
    }
    labels_builder_cleanup(&b);
    labels_matchers_free(ms, n);
    return rc;
}

int promqltest_parse_series(arena *a, const char *s, size_t len, size_t *items_left,
                            promqltest_series *out, buf *err)
{
    sp p = {.s = s, .len = len, .a = a, .budget = items_left, .err = err};
    memset(out, 0, sizeof *out);
    labels *ls = NULL;
    int rc = parse_metric(&p, &ls);
    if (rc < 0) return rc;
    for (;;) {
        tok t;
        if ((rc = next_tok(&p, &t)) < 0) goto fail;
        if (t.kind == TOK_EOF) break;
        if (t.kind != TOK_SPACE) {
            rc = unexpected(&p, &t, NULL);
            goto fail;
        }
        if ((rc = next_tok(&p, &t)) < 0) goto fail;
        if (t.kind == TOK_EOF) break;
        if ((rc = series_item(&p, &t)) < 0) goto fail;
    }
    out->ls = ls;
    out->n = p.n;
    out->items = xalloc(a, p.n * sizeof *out->items);
    if (p.n) memcpy(out->items, p.items, p.n * sizeof *p.items);
    out->histograms = p.histograms;
    mem_free(p.items);
    return 0;
fail:
    labels_free(ls);
    mem_free(p.items);
    return rc;
}

/* ============================================================================
 * Scripts
 * ========================================================================== */

typedef struct span {
    size_t start, len;
} span;

typedef struct pctx {
    promqltest_script *s;
    size_t budget; /* items left for the file */
    uint32_t err_line;
    buf *err;
    promqltest_cmd *cmds;
    size_t n_cmds, cap_cmds;
} pctx;

static const char *line_at(const pctx *c, size_t i, size_t *len)
{
    *len = c->s->line_lens[i];
    return c->s->lines[i];
}

static int perr(pctx *c, size_t line_idx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int perr(pctx *c, size_t line_idx, const char *fmt, ...)
{
    c->err_line = (uint32_t)(line_idx + 1);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(c->err, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static void own_labels(promqltest_script *s, labels *ls)
{
    s->owned_labels = mem_grow(s->owned_labels, sizeof *s->owned_labels, s->n_owned_labels + 1,
                               &s->cap_owned_labels);
    s->owned_labels[s->n_owned_labels++] = ls;
}

static void own_regex(promqltest_script *s, regex *re)
{
    s->owned_regexes = mem_grow(s->owned_regexes, sizeof *s->owned_regexes, s->n_owned_regexes + 1,
                                &s->cap_owned_regexes);
    s->owned_regexes[s->n_owned_regexes++] = re;
}

static void add_cmd(pctx *c, promqltest_cmd cmd)
{
    c->cmds = mem_grow(c->cmds, sizeof *c->cmds, c->n_cmds + 1, &c->cap_cmds);
    c->cmds[c->n_cmds++] = cmd;
}

static size_t skip_ws(const char *s, size_t len, size_t i)
{
    while (i < len && is_re_space(s[i]))
        i++;
    return i;
}

/* Parses a series line; the error gets "<line>:<col>" context. */
static int parse_series_line(pctx *c, size_t idx, const char *s, size_t len, promqltest_series *out)
{
    buf e;
    buf_init(&e, BUF_UNLIMITED);
    int rc = promqltest_parse_series(&c->s->mem, s, len, &c->budget, out, &e);
    if (rc < 0) {
        perr(c, idx, "%zu:%s", idx + 1, buf_cstr(&e));
        buf_cleanup(&e);
        return rc;
    }
    buf_cleanup(&e);
    own_labels(c->s, out->ls);
    out->line = (uint32_t)(idx + 1);
    return 0;
}

static int parse_duration_span(const char *s, span sp_, int64_t *ms, buf *err)
{
    return strutil_parse_duration(s + sp_.start, sp_.len, ms, err);
}

/* ---- @st lines (start timestamps) ---- */

static bool is_st_line(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && s[i] != ' ' && s[i] != '\t')
        i++;
    if (i == len) return false;
    return i >= 3 && memcmp(s + i - 3, "@st", 3) == 0;
}

/* A signed duration at the start of s (test.go's parseDurationPrefix);
 * returns the length consumed or 0. */
static size_t st_duration(const char *s, size_t len, int64_t *ms)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    size_t st = i;
    while (i < len && is_digit(s[i]))
        i++;
    if (i == st) return 0;
    while (i < len && s[i] != 'x' && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
        i++;
    if (strutil_parse_duration(s + st, i - st, ms, NULL) < 0) return 0;
    if (neg) *ms = -*ms;
    return i;
}

/* One item of an @st line: `count` offsets starting at `base` and
 * stepping by `delta`, or `count` omitted positions. */
typedef struct st_run {
    bool omitted;
    int64_t base, delta;
    uint64_t count;
} st_run;

/* Parses an @st item (`_`, `_xN`, `<d>`, `<d>xN`, `<d>±<d>xN`); returns
 * false if malformed. */
static bool st_item(const char *s, size_t len, st_run *r)
{
    memset(r, 0, sizeof *r);
    if (len == 1 && s[0] == '_') {
        r->omitted = true;
        r->count = 1;
        return true;
    }
    if (len >= 2 && s[0] == '_' && s[1] == 'x') {
        r->omitted = true;
        return parse_uint10(s + 2, len - 2, &r->count) && r->count > 0;
    }
    size_t n = st_duration(s, len, &r->base);
    if (!n) return false;
    if (n == len) {
        r->count = 1;
        return true;
    }
    if (s[n] == 'x') {
        if (!parse_uint10(s + n + 1, len - n - 1, &r->count) || r->count == UINT64_MAX)
            return false;
        r->count++;
        return true;
    }
    if (s[n] != '+' && s[n] != '-') return false;
    size_t m = st_duration(s + n + 1, len - n - 1, &r->delta);
    if (!m || n + 1 + m >= len || s[n + 1 + m] != 'x') return false;
    if (s[n] == '-') r->delta = -r->delta;
    size_t k = n + 1 + m + 1;
    if (!parse_uint10(s + k, len - k, &r->count) || r->count == UINT64_MAX) return false;
    r->count++;
    return true;
}

/* A parsed @st line waiting for its sample line. */
typedef struct st_line {
    labels *ls; /* owned */
    st_run *runs;
    size_t n_runs, cap_runs;
    uint64_t count; /* positions of all runs */
    size_t idx;     /* line index */
} st_line;

static void st_line_cleanup(st_line *l)
{
    labels_free(l->ls);
    mem_free(l->runs);
    memset(l, 0, sizeof *l);
}

/* Parses `metric@st <items>` into *out (empty on entry; cleaned up on
 * failure). */
static int parse_st_line(pctx *c, size_t idx, const char *s, size_t len, st_line *out)
{
    size_t sp_ = 0;
    while (sp_ < len && s[sp_] != ' ' && s[sp_] != '\t')
        sp_++;
    size_t mlen = sp_ - 3;
    buf m;
    buf_init(&m, BUF_UNLIMITED);
    buf_append(&m, s, mlen);
    buf_puts(&m, " _");
    promqltest_series ser;
    buf e;
    buf_init(&e, BUF_UNLIMITED);
    size_t budget = 1;
    int rc = promqltest_parse_series(&c->s->mem, m.data, m.len, &budget, &ser, &e);
    if (rc < 0) {
        perr(c, idx, "invalid @st line metric \"%.*s\": %s", (int)mlen, s, buf_cstr(&e));
        buf_cleanup(&e);
        buf_cleanup(&m);
        return rc;
    }
    buf_cleanup(&e);
    buf_cleanup(&m);
    out->ls = ser.ls;
    out->idx = idx;
    size_t i = sp_;
    for (;;) {
        i = skip_ws(s, len, i);
        if (i >= len) break;
        size_t st = i;
        while (i < len && !is_re_space(s[i]))
            i++;
        st_run r;
        if (!st_item(s + st, i - st, &r)) {
            st_line_cleanup(out);
            return perr(c, idx, "invalid @st sequence: invalid ST item \"%.*s\"", (int)(i - st),
                        s + st);
        }
        if (r.count > PROMQLTEST_MAX_LINE_ITEMS - out->count) {
            st_line_cleanup(out);
            perr(c, idx, "too many values in one line (at most %zu)", PROMQLTEST_MAX_LINE_ITEMS);
            return -E2BIG;
        }
        out->runs = mem_grow(out->runs, sizeof *out->runs, out->n_runs + 1, &out->cap_runs);
        out->runs[out->n_runs++] = r;
        out->count += r.count;
    }
    return 0;
}

/* The offsets of an @st line, one per position (PROMQLTEST_ST_NONE for
 * `_`), in the script's arena. Fails (-EINVAL) if one overflows. */
static int st_expand(pctx *c, const st_line *l, int64_t **out)
{
    int64_t *v = xalloc(&c->s->mem, l->count * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < l->n_runs; i++) {
        const st_run *r = &l->runs[i];
        int64_t off = r->base;
        for (uint64_t j = 0; j < r->count; j++) {
            if (r->omitted) {
                v[k++] = PROMQLTEST_ST_NONE;
                continue;
            }
            if (off == PROMQLTEST_ST_NONE || (j > 0 && __builtin_add_overflow(off, r->delta, &off)))
                return perr(c, l->idx, "invalid @st sequence: offset out of range");
            v[k++] = off;
        }
    }
    *out = v;
    return 0;
}

/* ---- load ---- */

/* Finding a label set among growing arrays: the table holds index + 1. */
typedef struct idx_key {
    const promqltest_series *base;
    size_t stride; /* bytes between elements */
    const labels *ls;
} idx_key;

static bool idx_eq(const void *val, const void *key)
{
    const idx_key *k = key;
    size_t idx = (size_t)(uintptr_t)val - 1;
    const promqltest_series *s =
        (const promqltest_series *)((const char *)k->base + idx * k->stride);
    return labels_equal(s->ls, k->ls);
}

static int parse_load(pctx *c, size_t *pi)
{
    size_t i = *pi, len;
    const char *l = line_at(c, i, &len);
    bool nhcb = false;
    size_t p;
    if (has_prefix(l, len, "load_with_nhcb") && len > 14 && is_re_space(l[14])) {
        nhcb = true;
        p = 14;
    } else if (has_prefix(l, len, "load") && len > 4 && is_re_space(l[4])) {
        p = 4;
    } else {
        return perr(c, i, "invalid load command. (load[_with_nhcb] <step:duration>)");
    }
    p = skip_ws(l, len, p);
    promqltest_load *ld = xalloc(&c->s->mem, sizeof *ld);
    memset(ld, 0, sizeof *ld);
    ld->line = (uint32_t)(i + 1);
    ld->with_nhcb = nhcb;
    buf e;
    buf_init(&e, BUF_UNLIMITED);
    if (strutil_parse_duration(l + p, len - p, &ld->step_ms, &e) < 0) {
        perr(c, i, "invalid step definition \"%.*s\": %s", (int)(len - p), l + p, buf_cstr(&e));
        buf_cleanup(&e);
        return -EINVAL;
    }
    buf_cleanup(&e);

    promqltest_series *v = NULL;
    size_t n = 0, cap = 0;
    hmap seen;
    hmap_init(&seen);
    st_line stl = {0};
    int rc = 0;
    while (i + 1 < c->s->n_lines) {
        size_t dl;
        const char *d = line_at(c, i + 1, &dl);
        if (dl == 0) break;
        i++;
        if (is_st_line(d, dl)) {
            if (stl.ls) {
                rc = perr(c, stl.idx, "@st line has no following sample line");
                break;
            }
            if ((rc = parse_st_line(c, i, d, dl, &stl)) < 0) break;
            continue;
        }
        promqltest_series ser;
        if ((rc = parse_series_line(c, i, d, dl, &ser)) < 0) break;
        if (stl.ls) {
            if (!labels_equal(stl.ls, ser.ls)) {
                rc = perr(c, stl.idx, "@st metric does not match the following sample line metric");
                break;
            }
            if (stl.count != ser.n) {
                rc = perr(c, stl.idx, "@st line has %" PRIu64 " values but sample line has %zu",
                          stl.count, ser.n);
                break;
            }
            if ((rc = st_expand(c, &stl, &ser.st)) < 0) break;
            st_line_cleanup(&stl);
        }
        /* As test.go's map: a repeated series replaces the earlier line. */
        idx_key key = {v, sizeof *v, ser.ls};
        void *old = hmap_get(&seen, labels_hash(ser.ls), idx_eq, &key);
        if (old) {
            v[(size_t)(uintptr_t)old - 1] = ser;
            continue;
        }
        v = mem_grow(v, sizeof *v, n + 1, &cap);
        v[n++] = ser;
        hmap_put(&seen, labels_hash(ser.ls), (void *)(uintptr_t)n);
    }
    if (rc == 0 && stl.ls) rc = perr(c, stl.idx, "@st line has no following sample line");
    st_line_cleanup(&stl);
    hmap_cleanup(&seen);
    if (rc < 0) {
        mem_free(v);
        return rc;
    }
    ld->series = xalloc(&c->s->mem, n * sizeof *v);
    if (n) memcpy(ld->series, v, n * sizeof *v);
    ld->n_series = n;
    mem_free(v);
    add_cmd(c, (promqltest_cmd){PROMQLTEST_CMD_LOAD, ld->line, ld, NULL});
    *pi = i;
    return 0;
}

/* ---- eval headers ---- */

/* Matches `\s+from\s+(F)\s+to\s+(T)\s+step\s+(S)` from position p, with
 * the semantics of test.go's regular expressions: F and T greedy; S either
 * lazy and followed by `\s+(E)` (with_expr) or greedy to the end. */
static bool match_from_to_step(const char *s, size_t len, size_t p, bool with_expr, span *f,
                               span *t, span *st, span *ex)
{
    if (p >= len || !is_re_space(s[p])) return false;
    p = skip_ws(s, len, p);
    if (!has_prefix(s + p, len - p, "from") || p + 4 >= len || !is_re_space(s[p + 4])) return false;
    size_t fs = skip_ws(s, len, p + 4);
    /* T is greedy: the rightmost "step" that is followed by S (and E)
     * wins, whichever "to" comes before it. Finding it first keeps this
     * linear in the line length. */
    size_t k = len, ss = 0, se = 0, es = 0;
    bool found = false;
    while (k-- > fs + 2) {
        if (!(is_re_space(s[k - 1]) && k + 4 < len && memcmp(s + k, "step", 4) == 0 &&
              is_re_space(s[k + 4])))
            continue;
        ss = skip_ws(s, len, k + 4);
        if (ss >= len) continue;
        if (!with_expr) {
            found = true;
            break;
        }
        se = ss + 1;
        while (se < len && !is_re_space(s[se]))
            se++;
        if (se >= len) continue;
        es = skip_ws(s, len, se);
        if (es >= len) continue;
        found = true;
        break;
    }
    if (!found) return false;
    /* "to" candidates, rightmost first (F is greedy), before that step. */
    for (size_t g = k; g-- > fs + 2;) {
        if (!(is_re_space(s[g - 1]) && g + 2 < len && s[g] == 't' && s[g + 1] == 'o' &&
              is_re_space(s[g + 2])))
            continue;
        size_t fe = g - 1;
        if (fe <= fs) continue;
        size_t ts = skip_ws(s, len, g + 2);
        size_t te = k - 1;
        if (te <= ts) continue;
        *f = (span){fs, fe - fs};
        *t = (span){ts, te - ts};
        if (with_expr) {
            *st = (span){ss, se - ss};
            *ex = (span){es, len - es};
        } else {
            *st = (span){ss, len - ss};
        }
        return true;
    }
    return false;
}

/* Matches `^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$`
 * (instant) or `^eval(?:_(fail|warn|info))?\s+range\s+from ... step (.+?)\s+(.+)$`. */
static bool match_eval(const char *s, size_t len, bool *range, span *mod, span *at, span *f,
                       span *t, span *st, span *ex)
{
    if (!has_prefix(s, len, "eval")) return false;
    static const char *const mods[] = {"fail", "warn", "ordered", "info"};
    for (int want_range = 0; want_range < 2; want_range++) {
        /* Either with one of the suffixes or without. */
        for (int m = -1; m < 4; m++) {
            size_t p = 4;
            *mod = (span){0, 0};
            if (m >= 0) {
                if (want_range && m == 2) continue; /* no eval_ordered range */
                size_t ml = strlen(mods[m]);
                if (!(p < len && s[p] == '_' && has_prefix(s + p + 1, len - p - 1, mods[m])))
                    continue;
                *mod = (span){p + 1, ml};
                p += 1 + ml;
            }
            if (p >= len || !is_re_space(s[p])) continue;
            size_t w = skip_ws(s, len, p);
            const char *kw = want_range ? "range" : "instant";
            size_t kl = strlen(kw);
            if (!has_prefix(s + w, len - w, kw)) continue;
            p = w + kl;
            if (want_range) {
                if (match_from_to_step(s, len, p, true, f, t, st, ex)) {
                    *range = true;
                    return true;
                }
                continue;
            }
            if (p >= len || !is_re_space(s[p])) continue;
            size_t q = skip_ws(s, len, p);
            /* With `at <time>`: the time is the shortest word followed by
             * whitespace and a non-empty rest. */
            if (has_prefix(s + q, len - q, "at") && q + 2 < len && is_re_space(s[q + 2])) {
                size_t ts = skip_ws(s, len, q + 2);
                size_t te = ts + 1;
                while (te < len && !is_re_space(s[te]))
                    te++;
                if (ts < len && te < len) {
                    *at = (span){ts, te - ts};
                    *ex = (span){skip_ws(s, len, te), 0};
                    ex->len = len - ex->start;
                    *range = false;
                    return true;
                }
            }
            /* Without: two whitespace characters at least. */
            if (q - p >= 2 && q < len) {
                *at = (span){q, 0};
                *ex = (span){q, len - q};
                *range = false;
                return true;
            }
        }
    }
    return false;
}

static promqltest_expect *add_expect(promqltest_eval *ev, size_t *cap)
{
    ev->expects = mem_grow(ev->expects, sizeof *ev->expects, ev->n_expects + 1, cap);
    promqltest_expect *e = &ev->expects[ev->n_expects++];
    memset(e, 0, sizeof *e);
    return e;
}

static size_t count_expects(const promqltest_eval *ev, enum promqltest_expect_type t)
{
    size_t n = 0;
    for (size_t i = 0; i < ev->n_expects; i++)
        n += ev->expects[i].type == t;
    return n;
}

/* Compiles an unanchored (searching) regex like Go's regexp.Compile. */
static int compile_search_regex(const char *pat, size_t len, regex **out, buf *err)
{
    regex *re;
    if (regex_compile(&re, pat, len, err) < 0) return -EINVAL;
    regex_free(re);
    buf w;
    buf_init(&w, BUF_UNLIMITED);
    buf_puts(&w, "(?s:.*?)(?-s:");
    buf_append(&w, pat, len);
    buf_puts(&w, ")(?s:.*)");
    int rc = regex_compile(out, w.data, w.len, err);
    buf_cleanup(&w);
    return rc;
}

/* `expect <type> [msg:<text>|regex:<re>]`. */
static int parse_expect(pctx *c, promqltest_eval *ev, size_t *cap, const char *l, size_t len,
                        buf *why)
{
    static const struct {
        const char *word;
        enum promqltest_expect_type type;
    } types[] = {
        {"ordered", PROMQLTEST_EXPECT_ORDERED}, {"fail", PROMQLTEST_EXPECT_FAIL},
        {"warn", PROMQLTEST_EXPECT_WARN},       {"no_warn", PROMQLTEST_EXPECT_NO_WARN},
        {"info", PROMQLTEST_EXPECT_INFO},       {"no_info", PROMQLTEST_EXPECT_NO_INFO},
    };
    size_t p = 6;
    if (p >= len || !is_re_space(l[p])) goto invalid;
    p = skip_ws(l, len, p);
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        size_t wl = strlen(types[k].word);
        if (!has_prefix(l + p, len - p, types[k].word)) continue;
        size_t q = p + wl;
        if (q == len) {
            add_expect(ev, cap)->type = types[k].type;
            return 0;
        }
        if (!is_re_space(l[q])) continue;
        q = skip_ws(l, len, q);
        bool is_re = has_prefix(l + q, len - q, "regex:");
        bool is_msg = has_prefix(l + q, len - q, "msg:");
        if (!is_re && !is_msg) continue;
        q += is_re ? 6 : 4;
        if (q >= len) continue;
        /* The text after the colon, trimmed. */
        size_t ts = skip_ws(l, len, q), te = len;
        while (te > ts && is_re_space(l[te - 1]))
            te--;
        promqltest_expect *e = add_expect(ev, cap);
        e->type = types[k].type;
        if (is_msg) {
            e->message = xstrndup(&c->s->mem, l + ts, te - ts);
            return 0;
        }
        buf re_err;
        buf_init(&re_err, BUF_UNLIMITED);
        if (compile_search_regex(l + ts, te - ts, &e->re, &re_err) < 0) {
            buf_cleanup(&re_err);
            ev->n_expects--;
            buf_printf(why, "invalid regex %.*s for %s", (int)(te - ts), l + ts, types[k].word);
            return -EINVAL;
        }
        buf_cleanup(&re_err);
        own_regex(c->s, e->re);
        return 0;
    }
invalid:
    buf_puts(why, "invalid expect statement, must match `expect <type> <match_type>: <string>` "
                  "format");
    return -EINVAL;
}

static int eval_error(pctx *c, size_t idx, const promqltest_eval *ev, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int eval_error(pctx *c, size_t idx, const promqltest_eval *ev, const char *fmt, ...)
{
    c->err_line = (uint32_t)(idx + 1);
    buf_printf(c->err, "error in eval %.*s (line %" PRIu32 "): ", (int)ev->expr_len, ev->expr,
               ev->line);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(c->err, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int parse_eval(pctx *c, size_t *pi)
{
    size_t i = *pi, len;
    const char *l = line_at(c, i, &len);
    bool range = false;
    span mod = {0}, at = {0}, f = {0}, t = {0}, st = {0}, ex = {0};
    if (!match_eval(l, len, &range, &mod, &at, &f, &t, &st, &ex))
        return perr(c, i,
                    "invalid evaluation command. Must be either 'eval[_fail|_warn|_ordered] "
                    "instant [at <offset:duration>] <query>' or 'eval[_fail|_warn] range from "
                    "<from> to <to> step <step> <query>'");
    promqltest_eval *ev = xalloc(&c->s->mem, sizeof *ev);
    memset(ev, 0, sizeof *ev);
    ev->line = (uint32_t)(i + 1);
    ev->expr = xstrndup(&c->s->mem, l + ex.start, ex.len);
    ev->expr_len = ex.len;
    ev->expr_col = ex.start;
    ev->range = range;
    if (mod.len) {
        const char *m = l + mod.start;
        if (mod.len == 4 && memcmp(m, "fail", 4) == 0) ev->fail = true;
        if (mod.len == 4 && memcmp(m, "warn", 4) == 0) ev->warn = true;
        if (mod.len == 4 && memcmp(m, "info", 4) == 0) ev->info = true;
        if (mod.len == 7) ev->ordered = true;
    }
    buf e;
    buf_init(&e, BUF_UNLIMITED);
    int rc = 0;
    if (!range) {
        if (at.len == 0) {
            buf_puts(&e, "empty duration string");
            rc = -EINVAL;
        } else {
            rc = parse_duration_span(l, at, &ev->eval_ms, &e);
        }
        if (rc < 0) {
            eval_error(c, i, ev, "invalid timestamp definition \"%.*s\": %s", (int)at.len,
                       l + at.start, buf_cstr(&e));
            buf_cleanup(&e);
            return rc;
        }
        ev->start_ms = ev->end_ms = ev->eval_ms;
    } else {
        const char *what = NULL;
        span bad = {0};
        if (parse_duration_span(l, f, &ev->start_ms, &e) < 0) {
            what = "invalid start timestamp definition";
            bad = f;
        } else if (parse_duration_span(l, t, &ev->end_ms, &e) < 0) {
            what = "invalid end timestamp definition";
            bad = t;
        } else if (ev->end_ms < ev->start_ms) {
            eval_error(c, i, ev,
                       "invalid test definition, end timestamp (%.*s) is before start timestamp "
                       "(%.*s)",
                       (int)t.len, l + t.start, (int)f.len, l + f.start);
            buf_cleanup(&e);
            return -EINVAL;
        } else if (parse_duration_span(l, st, &ev->step_ms, &e) < 0) {
            what = "invalid step definition";
            bad = st;
        }
        if (what) {
            eval_error(c, i, ev, "%s \"%.*s\": %s", what, (int)bad.len, l + bad.start,
                       buf_cstr(&e));
            buf_cleanup(&e);
            return -EINVAL;
        }
        ev->eval_ms = ev->start_ms;
    }
    buf_reset(&e);

    size_t cap_expects = 0, cap_expected = 0;
    hmap seen;
    hmap_init(&seen);
    int j = 1;
    while (i + 1 < c->s->n_lines) {
        size_t dl;
        const char *d = line_at(c, i + 1, &dl);
        if (dl == 0) break;
        i++;
        if (ev->fail && has_prefix(d, dl, "expected_fail_message")) {
            size_t s0 = skip_ws(d, dl, 21);
            ev->fail_message = xstrndup(&c->s->mem, d + s0, dl - s0);
            break;
        }
        if (ev->fail && has_prefix(d, dl, "expected_fail_regexp")) {
            size_t s0 = skip_ws(d, dl, 20);
            if (compile_search_regex(d + s0, dl - s0, &ev->fail_regexp, &e) < 0) {
                rc = eval_error(c, i, ev, "invalid regexp '%.*s' for expected_fail_regexp: %s",
                                (int)(dl - s0), d + s0, buf_cstr(&e));
                break;
            }
            own_regex(c->s, ev->fail_regexp);
            break;
        }
        if (has_prefix(d, dl, "expect range vector")) {
            span rf, rt, rs, unused;
            if (!match_from_to_step(d, dl, 19, false, &rf, &rt, &rs, &unused)) {
                rc = eval_error(c, i, ev, "invalid range vector definition \"%.*s\"", (int)dl, d);
                break;
            }
            int64_t a, b, s_;
            const char *what = NULL;
            span bad = {0};
            if (parse_duration_span(d, rf, &a, &e) < 0) {
                what = "invalid start timestamp definition";
                bad = rf;
            } else if (parse_duration_span(d, rt, &b, &e) < 0) {
                what = "invalid end timestamp definition";
                bad = rt;
            } else if (b < a) {
                rc = eval_error(c, i, ev,
                                "invalid test definition, end timestamp (%.*s) is before start "
                                "timestamp (%.*s)",
                                (int)rt.len, d + rt.start, (int)rf.len, d + rf.start);
                break;
            } else if (parse_duration_span(d, rs, &s_, &e) < 0) {
                what = "invalid step definition";
                bad = rs;
            }
            if (what) {
                rc = eval_error(c, i, ev, "%s \"%.*s\": %s", what, (int)bad.len, d + bad.start,
                                buf_cstr(&e));
                break;
            }
            ev->has_range_vector = true;
            ev->start_ms = a;
            ev->end_ms = b;
            ev->step_ms = s_;
            ev->eval_ms = b;
            j++;
            continue;
        }
        if (has_prefix(d, dl, "expect string")) {
            buf str;
            buf_init(&str, BUF_UNLIMITED);
            if (dl == 13) {
                rc = eval_error(c, i, ev,
                                "expected string literal not valid - a quoted string literal is "
                                "required");
            } else {
                const char *q = d;
                size_t ql = dl;
                if (has_prefix(d, dl, "expect string ")) {
                    q += 14;
                    ql -= 14;
                }
                if (ql == 0)
                    rc = eval_error(c, i, ev,
                                    "expected string literal not valid - a quoted string literal "
                                    "is required");
                else if (go_unquote(q, ql, &str) < 0)
                    rc = eval_error(c, i, ev,
                                    "expected string literal not valid - check that the string is "
                                    "correctly quoted");
            }
            if (rc == 0) {
                ev->has_string = true;
                ev->string_len = str.len;
                ev->string = xstrndup(&c->s->mem, buf_cstr(&str), str.len);
            }
            buf_cleanup(&str);
            if (rc < 0) break;
            j++;
            continue;
        }
        /* The first space-separated word (test.go splits on " " only). */
        size_t w = 0;
        while (w < dl && d[w] != ' ')
            w++;
        if (w == 6 && memcmp(d, "expect", 6) == 0) {
            buf why;
            buf_init(&why, BUF_UNLIMITED);
            if (parse_expect(c, ev, &cap_expects, d, dl, &why) < 0) {
                rc = eval_error(c, i, ev, "%s", buf_cstr(&why));
                buf_cleanup(&why);
                break;
            }
            buf_cleanup(&why);
            if (count_expects(ev, PROMQLTEST_EXPECT_INFO) &&
                count_expects(ev, PROMQLTEST_EXPECT_NO_INFO)) {
                rc = eval_error(c, i, ev,
                                "invalid expect lines, info and no_info cannot be used together");
                break;
            }
            if (count_expects(ev, PROMQLTEST_EXPECT_WARN) &&
                count_expects(ev, PROMQLTEST_EXPECT_NO_WARN)) {
                rc = eval_error(c, i, ev,
                                "invalid expect lines, warn and no_warn cannot be used together");
                break;
            }
            if (count_expects(ev, PROMQLTEST_EXPECT_FAIL) > 1) {
                rc = eval_error(c, i, ev,
                                "invalid expect lines, multiple expect fail lines are not allowed");
                break;
            }
            continue;
        }
        double num;
        if (promqltest_parse_number(d, dl, &num) == 0) {
            ev->expect_scalar = true;
            ev->scalar = num;
            break; /* a scalar ends the block */
        }
        promqltest_series ser;
        if ((rc = parse_series_line(c, i, d, dl, &ser)) < 0) break;
        if (ser.n > 1 && !range && !ev->has_range_vector) {
            rc = eval_error(c, i, ev,
                            "expecting multiple values in instant evaluation not allowed. "
                            "consider using 'expect range vector' directive to enable a range "
                            "vector result for an instant query");
            break;
        }
        if (ser.histograms) ev->histograms = true;
        ev->expect_scalar = false;
        void *old = NULL;
        if (ev->n_expected) {
            idx_key key = {&ev->expected[0].s, sizeof *ev->expected, ser.ls};
            old = hmap_get(&seen, labels_hash(ser.ls), idx_eq, &key);
        }
        if (old) {
            promqltest_expected *x = &ev->expected[(size_t)(uintptr_t)old - 1];
            x->s = ser;
            x->pos = j;
        } else {
            ev->expected =
                mem_grow(ev->expected, sizeof *ev->expected, ev->n_expected + 1, &cap_expected);
            ev->expected[ev->n_expected++] = (promqltest_expected){ser, j};
            hmap_put(&seen, labels_hash(ser.ls), (void *)(uintptr_t)ev->n_expected);
        }
        j++;
    }
    hmap_cleanup(&seen);
    buf_cleanup(&e);
    ev->end_line = (uint32_t)(i + 1);
    /* Registered even on error, so that script_free releases its arrays. */
    add_cmd(c, (promqltest_cmd){PROMQLTEST_CMD_EVAL, ev->line, NULL, ev});
    if (rc < 0) return rc;
    c->s->n_evals++;
    *pi = i;
    return 0;
}

/* ---- the file ---- */

static void split_lines(promqltest_script *s, const char *text, size_t len)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    s->lines = xalloc(&s->mem, n * sizeof *s->lines);
    s->line_lens = xalloc(&s->mem, n * sizeof *s->line_lens);
    char *copy = xstrndup(&s->mem, text, len);
    size_t k = 0, st = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && copy[i] != '\n') continue;
        size_t a = st, b = i;
        /* strings.TrimSpace: ASCII white space (and \v, \f). */
        while (a < b && (is_re_space(copy[a]) || copy[a] == '\v'))
            a++;
        while (b > a && (is_re_space(copy[b - 1]) || copy[b - 1] == '\v'))
            b--;
        if (b > a && copy[a] == '#') b = a; /* a comment is an empty line */
        copy[b] = '\0';
        s->lines[k] = copy + a;
        s->line_lens[k] = b - a;
        k++;
        st = i + 1;
    }
    s->n_lines = k;
}

void promqltest_script_free(promqltest_script *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_cmds; i++) {
        if (s->cmds[i].eval) {
            mem_free(s->cmds[i].eval->expects);
            mem_free(s->cmds[i].eval->expected);
        }
    }
    mem_free(s->cmds);
    for (size_t i = 0; i < s->n_owned_labels; i++)
        labels_free(s->owned_labels[i]);
    mem_free(s->owned_labels);
    for (size_t i = 0; i < s->n_owned_regexes; i++)
        regex_free(s->owned_regexes[i]);
    mem_free(s->owned_regexes);
    arena_cleanup(&s->mem);
    mem_free(s);
}

/* Splits the file and parses its commands; the script is kept (with the
 * commands parsed so far) even on error, for the caller to count. */
static int parse_script(const char *text, size_t len, promqltest_script **out, uint32_t *err_line,
                        buf *err)
{
    promqltest_script *s = mem_calloc(1, sizeof *s);
    arena_init(&s->mem, 0);
    split_lines(s, text, len);
    pctx c = {.s = s, .budget = PROMQLTEST_MAX_FILE_ITEMS, .err = err};
    int rc = 0;
    for (size_t i = 0; i < s->n_lines && rc == 0; i++) {
        size_t ll;
        const char *l = line_at(&c, i, &ll);
        if (ll == 0) continue;
        size_t w = 0;
        while (w < ll && l[w] != ' ' && l[w] != '\t')
            w++;
        if (eq_nocase(l, w, "clear")) {
            add_cmd(&c, (promqltest_cmd){PROMQLTEST_CMD_CLEAR, (uint32_t)(i + 1), NULL, NULL});
        } else if (w >= 4 && eq_nocase(l, 4, "load")) {
            rc = parse_load(&c, &i);
        } else if (w >= 4 && eq_nocase(l, 4, "eval")) {
            rc = parse_eval(&c, &i);
        } else {
            buf q;
            buf_init(&q, BUF_UNLIMITED);
            put_quoted(&q, l, ll);
            rc = perr(&c, i, "invalid command %s", buf_cstr(&q));
            buf_cleanup(&q);
        }
    }
    s->cmds = c.cmds;
    s->n_cmds = c.n_cmds;
    if (rc < 0 && err_line) *err_line = c.err_line;
    *out = s;
    return rc;
}

int promqltest_parse(const char *text, size_t len, promqltest_script **out, uint32_t *err_line,
                     buf *err)
{
    promqltest_script *s;
    int rc = parse_script(text, len, &s, err_line, err);
    if (rc < 0) {
        promqltest_script_free(s);
        *out = NULL;
        return rc;
    }
    *out = s;
    return 0;
}

/* ============================================================================
 * Comparison (test.go's compareResult, checkAnnotations, checkExpectedFailure)
 * ========================================================================== */

bool promqltest_float_equal(double a, double b)
{
    const double eps = 1e-6, min_normal = 2.2250738585072014e-308;
    if (strutil_is_stale_nan(a) || strutil_is_stale_nan(b))
        return strutil_is_stale_nan(a) && strutil_is_stale_nan(b);
    if (isnan(a) && isnan(b)) return true;
    if (a == b) return true;
    double abs_sum = fabs(a) + fabs(b), diff = fabs(a - b);
    if (a == 0 || b == 0 || abs_sum < min_normal) return diff < eps * min_normal;
    return diff / fmin(abs_sum, 1.7976931348623157e308) < eps;
}

static bool eval_is_ordered(const promqltest_eval *ev)
{
    return ev->ordered || count_expects(ev, PROMQLTEST_EXPECT_ORDERED) > 0;
}

static bool eval_is_fail(const promqltest_eval *ev)
{
    return ev->fail || count_expects(ev, PROMQLTEST_EXPECT_FAIL) > 0;
}

static void put_labels(buf *out, const labels *ls)
{
    labels_format(ls, out);
}

/* ---- histograms as engine values ---- */

static promql_fh *fh_from_test(const promqltest_histogram *t)
{
    promql_fh *h = promql_fh_new();
    h->schema = (int32_t)t->schema;
    h->sum = t->sum;
    h->count = t->count;
    h->zero_count = t->zero_count;
    h->zero_threshold = t->zero_threshold;
    static const enum promql_fh_hint hints[] = {PROMQL_FH_UNKNOWN, PROMQL_FH_RESET,
                                                PROMQL_FH_NOT_RESET, PROMQL_FH_GAUGE};
    h->hint = hints[t->hint];
    for (size_t i = 0; i < t->n_pos; i++)
        promql_fh_set_bucket(h, true, (int32_t)(t->offset + (int64_t)i), t->pos[i]);
    for (size_t i = 0; i < t->n_neg; i++)
        promql_fh_set_bucket(h, false, (int32_t)(t->n_offset + (int64_t)i), t->neg[i]);
    if (t->n_custom) {
        h->custom = mem_malloc(t->n_custom * sizeof *h->custom);
        memcpy(h->custom, t->custom, t->n_custom * sizeof *h->custom);
        h->n_custom = t->n_custom;
    }
    return h;
}

promql_fh *promqltest_item_histogram(const promqltest_item *it)
{
    promql_fh *h = fh_from_test(it->h);
    if (it->delta && it->k != 0) {
        promql_fh *d = fh_from_test(it->delta);
        promql_fh_scale(d, (double)(it->k < 0 ? -it->k : it->k), false);
        promql_fh_add(h, d, it->k < 0, NULL, NULL);
        promql_fh_free(d);
    }
    return h;
}

/* test.go's compareNativeHistogram over compacted histograms. */
static bool fh_test_equal(const promql_fh *exp, const promql_fh *cur, bool hint_set)
{
    if (exp->schema != cur->schema || !promqltest_float_equal(exp->count, cur->count) ||
        !promqltest_float_equal(exp->sum, cur->sum))
        return false;
    if (promql_fh_custom(exp)) {
        if (exp->n_custom != cur->n_custom) return false;
        for (size_t i = 0; i < exp->n_custom; i++)
            if (exp->custom[i] != cur->custom[i]) return false;
    }
    if (exp->zero_threshold != cur->zero_threshold ||
        !promqltest_float_equal(exp->zero_count, cur->zero_count))
        return false;
    for (int side = 0; side < 2; side++) {
        const promql_fh_bucket *a = side ? exp->pos : exp->neg, *b = side ? cur->pos : cur->neg;
        size_t na = side ? exp->n_pos : exp->n_neg, nb = side ? cur->n_pos : cur->n_neg;
        size_t i = 0, j = 0;
        for (;;) {
            while (i < na && a[i].count == 0)
                i++;
            while (j < nb && b[j].count == 0)
                j++;
            if (i == na || j == nb) {
                if (i != na || j != nb) return false;
                break;
            }
            if (a[i].idx != b[j].idx || !promqltest_float_equal(a[i].count, b[j].count))
                return false;
            i++;
            j++;
        }
    }
    if (hint_set && exp->hint != cur->hint) return false;
    return true;
}

/* Compares a histogram item with a result histogram. */
static bool item_fh_equal(const promqltest_item *it, const promql_fh *cur)
{
    promql_fh *e = promqltest_item_histogram(it);
    bool ok = fh_test_equal(e, cur, it->h->hint_set);
    promql_fh_free(e);
    return ok;
}

static void put_item_fh(buf *out, const promqltest_item *it)
{
    promql_fh *e = promqltest_item_histogram(it);
    promql_fh_format(e, out);
    promql_fh_free(e);
}

static const promqltest_expected *find_expected(const promqltest_eval *ev, const labels *ls)
{
    /* Expectations are few; results may be many: a linear scan per result
     * is fine for test data. */
    for (size_t i = 0; i < ev->n_expected; i++) {
        if (labels_equal(ev->expected[i].s.ls, ls)) return &ev->expected[i];
    }
    return NULL;
}

/* "N float points [v @[t] ...] and 0 histogram points []" (formatSeriesResult). */
static void put_series_result(buf *out, const promql_series *s)
{
    buf_printf(out, "%zu float point%s [", s->n, s->n == 1 ? "" : "s");
    for (size_t i = 0; i < s->n; i++) {
        if (i) buf_putc(out, ' ');
        if (i == 16 && s->n > 20) {
            buf_printf(out, "... (%zu more)", s->n - 16);
            break;
        }
        put_float(out, s->pts[i].v);
        buf_printf(out, " @[%" PRId64 "]", s->pts[i].t);
    }
    buf_printf(out, "] and %zu histogram point%s [", s->nh, s->nh == 1 ? "" : "s");
    for (size_t i = 0; i < s->nh; i++) {
        if (i) buf_putc(out, ' ');
        promql_fh_format(s->hpts[i].h, out);
        buf_printf(out, " @[%" PRId64 "]", s->hpts[i].t);
    }
    buf_putc(out, ']');
}

static void put_items(buf *out, const promqltest_series *s)
{
    buf_putc(out, '[');
    for (size_t i = 0; i < s->n; i++) {
        if (i) buf_putc(out, ' ');
        const promqltest_item *it = &s->items[i];
        if (it->kind == PROMQLTEST_ITEM_OMITTED)
            buf_putc(out, '_');
        else if (it->kind == PROMQLTEST_ITEM_HISTOGRAM)
            put_item_fh(out, it);
        else
            put_float(out, it->v);
    }
    buf_putc(out, ']');
}

static bool compare_matrix(const promqltest_eval *ev, const promql_matrix *m, buf *why)
{
    if (eval_is_ordered(ev)) {
        buf_puts(why, "expected ordered result, but query returned a matrix");
        return false;
    }
    if (ev->expect_scalar) {
        buf_puts(why, "expected scalar result, but got matrix");
        return false;
    }
    for (size_t i = 0; i + 1 < m->n; i++) {
        if (labels_compare(m->v[i].metric, m->v[i + 1].metric) > 0) {
            buf_printf(why,
                       "matrix results should always be sorted by labels, but matrix is not "
                       "sorted: series at index %zu with labels ",
                       i + 1);
            put_labels(why, m->v[i + 1].metric);
            buf_printf(why, " sorts before series at index %zu with labels ", i);
            put_labels(why, m->v[i].metric);
            return false;
        }
    }
    bool *seen = mem_calloc(ev->n_expected + 1, sizeof *seen);
    bool ok = true;
    bool has_end = ev->range || ev->has_range_vector;
    for (size_t si = 0; si < m->n && ok; si++) {
        const promql_series *s = &m->v[si];
        const promqltest_expected *x = find_expected(ev, s->metric);
        if (!x) {
            buf_puts(why, "unexpected metric ");
            put_labels(why, s->metric);
            buf_puts(why, " in result, has ");
            put_series_result(why, s);
            ok = false;
            break;
        }
        seen[x - ev->expected] = true;
        size_t nf = 0, nh = 0;
        for (size_t i = 0; i < x->s.n; i++) {
            int64_t ts = ev->start_ms + (int64_t)i * ev->step_ms;
            if (!has_end || ts > ev->end_ms) {
                buf_printf(why, "expected %zu points for ", x->s.n);
                put_labels(why, x->s.ls);
                buf_puts(why, ", but query time range cannot return this many points");
                ok = false;
                break;
            }
            if (x->s.items[i].kind == PROMQLTEST_ITEM_HISTOGRAM)
                nh++;
            else if (x->s.items[i].kind == PROMQLTEST_ITEM_FLOAT)
                nf++;
        }
        if (!ok) break;
        if (nf != s->n || nh != s->nh) {
            buf_printf(why, "expected %zu float points and %zu histogram points for ", nf, nh);
            put_labels(why, x->s.ls);
            buf_puts(why, ", but got ");
            put_series_result(why, s);
            ok = false;
            break;
        }
        size_t k = 0, kh = 0;
        for (size_t i = 0; i < x->s.n && ok; i++) {
            const promqltest_item *it = &x->s.items[i];
            int64_t t = ev->start_ms + (int64_t)i * ev->step_ms;
            if (it->kind == PROMQLTEST_ITEM_HISTOGRAM) {
                const promql_hpoint *a = &s->hpts[kh];
                if (a->t != t) {
                    buf_printf(why, "expected histogram value at index %zu for ", kh);
                    put_labels(why, x->s.ls);
                    buf_printf(why,
                               " to have timestamp %" PRId64 ", but it had timestamp %" PRId64
                               " (result has ",
                               t, a->t);
                    put_series_result(why, s);
                    buf_putc(why, ')');
                    ok = false;
                } else if (!item_fh_equal(it, a->h)) {
                    buf_printf(why, "expected histogram value at index %zu (t=%" PRId64 ") for ",
                               kh, a->t);
                    put_labels(why, x->s.ls);
                    buf_puts(why, " to be ");
                    put_item_fh(why, it);
                    buf_puts(why, ", but got ");
                    promql_fh_format(a->h, why);
                    buf_puts(why, " (result has ");
                    put_series_result(why, s);
                    buf_putc(why, ')');
                    ok = false;
                }
                kh++;
                continue;
            }
            if (it->kind != PROMQLTEST_ITEM_FLOAT) continue;
            const promql_fpoint *a = &s->pts[k];
            if (a->t != t) {
                buf_printf(why, "expected float value at index %zu for ", k);
                put_labels(why, x->s.ls);
                buf_printf(why,
                           " to have timestamp %" PRId64 ", but it had timestamp %" PRId64
                           " (result has ",
                           t, a->t);
                put_series_result(why, s);
                buf_putc(why, ')');
                ok = false;
            } else if (!promqltest_float_equal(a->v, it->v)) {
                buf_printf(why, "expected float value at index %zu (t=%" PRId64 ") for ", k, a->t);
                put_labels(why, x->s.ls);
                buf_puts(why, " to be ");
                put_float(why, it->v);
                buf_puts(why, ", but got ");
                put_float(why, a->v);
                buf_puts(why, " (result has ");
                put_series_result(why, s);
                buf_putc(why, ')');
                ok = false;
            }
            k++;
        }
    }
    for (size_t i = 0; i < ev->n_expected && ok; i++) {
        if (!seen[i]) {
            buf_puts(why, "expected metric ");
            put_labels(why, ev->expected[i].s.ls);
            buf_puts(why, " not found");
            ok = false;
        }
    }
    mem_free(seen);
    return ok;
}

static bool compare_vector(const promqltest_eval *ev, const promql_vector *v, buf *why)
{
    if (ev->expect_scalar) {
        buf_printf(why, "expected scalar result, but got vector of %zu sample%s", v->n,
                   v->n == 1 ? "" : "s");
        return false;
    }
    bool *seen = mem_calloc(ev->n_expected + 1, sizeof *seen);
    bool ok = true, ordered = eval_is_ordered(ev);
    for (size_t pos = 0; pos < v->n && ok; pos++) {
        const promql_sample *smp = &v->v[pos];
        const promqltest_expected *x = find_expected(ev, smp->metric);
        if (!x) {
            buf_puts(why, "unexpected metric ");
            put_labels(why, smp->metric);
            buf_puts(why, " in result, has value ");
            if (smp->h)
                promql_fh_format(smp->h, why);
            else
                put_float(why, smp->v);
            ok = false;
            break;
        }
        if (ordered && x->pos != (int)pos + 1) {
            buf_puts(why, "expected metric ");
            put_labels(why, smp->metric);
            buf_puts(why, " with ");
            put_items(why, &x->s);
            buf_printf(why, " at position %d but was at %zu", x->pos, pos + 1);
            ok = false;
            break;
        }
        if (x->s.n == 0) {
            buf_puts(why, "expected metric ");
            put_labels(why, smp->metric);
            buf_puts(why, " has no value in the test file");
            ok = false;
            break;
        }
        const promqltest_item *it = &x->s.items[0];
        if (it->kind == PROMQLTEST_ITEM_HISTOGRAM || smp->h) {
            if (it->kind != PROMQLTEST_ITEM_HISTOGRAM) {
                buf_puts(why, "expected float value ");
                put_float(why, it->v);
                buf_puts(why, " for ");
                put_labels(why, smp->metric);
                buf_puts(why, " but got histogram ");
                promql_fh_format(smp->h, why);
                ok = false;
                break;
            }
            if (!smp->h) {
                buf_puts(why, "expected histogram ");
                put_item_fh(why, it);
                buf_puts(why, " for ");
                put_labels(why, smp->metric);
                buf_puts(why, " but got float value ");
                put_float(why, smp->v);
                ok = false;
                break;
            }
            if (!item_fh_equal(it, smp->h)) {
                buf_puts(why, "expected ");
                put_item_fh(why, it);
                buf_puts(why, " for ");
                put_labels(why, smp->metric);
                buf_puts(why, " but got ");
                promql_fh_format(smp->h, why);
                ok = false;
                break;
            }
            seen[x - ev->expected] = true;
            continue;
        }
        double want = it->kind == PROMQLTEST_ITEM_FLOAT ? it->v : 0;
        if (!promqltest_float_equal(want, smp->v)) {
            buf_puts(why, "expected ");
            put_float(why, want);
            buf_puts(why, " for ");
            put_labels(why, smp->metric);
            buf_puts(why, " but got ");
            put_float(why, smp->v);
            ok = false;
            break;
        }
        seen[x - ev->expected] = true;
    }
    for (size_t i = 0; i < ev->n_expected && ok; i++) {
        if (!seen[i]) {
            buf_puts(why, "expected metric ");
            put_labels(why, ev->expected[i].s.ls);
            buf_puts(why, " with ");
            put_items(why, &ev->expected[i].s);
            buf_puts(why, " not found");
            ok = false;
        }
    }
    mem_free(seen);
    return ok;
}

bool promqltest_compare(const promqltest_eval *ev, const promql_value *got, buf *why)
{
    switch (got->type) {
    case PROMQL_TYPE_MATRIX:
        return compare_matrix(ev, &got->matrix, why);
    case PROMQL_TYPE_VECTOR:
        return compare_vector(ev, &got->vector, why);
    case PROMQL_TYPE_SCALAR:
        if (!ev->expect_scalar) {
            buf_puts(why, "expected vector or matrix result, but got scalar: ");
            put_float(why, got->scalar);
            return false;
        }
        if (!promqltest_float_equal(ev->scalar, got->scalar)) {
            buf_puts(why, "expected scalar ");
            put_float(why, ev->scalar);
            buf_puts(why, " but got ");
            put_float(why, got->scalar);
            return false;
        }
        return true;
    case PROMQL_TYPE_STRING: {
        const char *want = ev->has_string ? ev->string : "";
        size_t wl = ev->has_string ? ev->string_len : 0;
        const char *g = got->string ? got->string : "";
        if (wl == got->string_len && memcmp(want, g, wl) == 0) return true;
        buf_puts(why, "expected string ");
        put_quoted(why, want, wl);
        buf_puts(why, " but got ");
        put_quoted(why, g, got->string_len);
        return false;
    }
    case PROMQL_TYPE_NONE:
        break;
    }
    buf_puts(why, "the query returned no value");
    return false;
}

static bool expect_matches(const promqltest_expect *e, const char *s)
{
    if (e->message) return strcmp(e->message, s) == 0;
    if (e->re) return regex_match(e->re, s, strlen(s));
    return true;
}

static void put_expect(buf *out, const promqltest_expect *e)
{
    if (e->message) {
        buf_puts(out, "message ");
        put_quoted(out, e->message, strlen(e->message));
    } else {
        buf_puts(out, "pattern ");
        const char *p = e->re ? regex_pattern(e->re) : "^.*$";
        /* Show the pattern as written, without the search wrapper. */
        size_t pl = strlen(p);
        if (e->re && pl >= 22 && has_prefix(p, pl, "(?s:.*?)(?-s:")) {
            p += 13;
            pl -= 21;
        }
        put_quoted(out, p, pl);
    }
}

static void put_strings(buf *out, char *const *v, size_t n)
{
    buf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) buf_putc(out, ' ');
        buf_puts(out, v[i]);
    }
    buf_putc(out, ']');
}

static bool check_annos_of(const promqltest_eval *ev, enum promqltest_expect_type t,
                           char *const *actual, size_t n, const char *what, buf *why)
{
    if (!count_expects(ev, t)) return true;
    if (!n) {
        buf_printf(why, "expected %s annotations but none were found for query ", what);
        put_quoted(why, ev->expr, ev->expr_len);
        buf_printf(why, " (line %" PRIu32 ")", ev->line);
        return false;
    }
    for (size_t i = 0; i < ev->n_expects; i++) {
        const promqltest_expect *e = &ev->expects[i];
        if (e->type != t) continue;
        bool found = false;
        for (size_t k = 0; k < n && !found; k++)
            found = expect_matches(e, actual[k]);
        if (!found) {
            buf_printf(why, "expected %s annotation matching ", what);
            put_expect(why, e);
            buf_puts(why, " but no matching annotation was found for query ");
            put_quoted(why, ev->expr, ev->expr_len);
            buf_printf(why, " (line %" PRIu32 "), found: ", ev->line);
            put_strings(why, actual, n);
            return false;
        }
    }
    for (size_t k = 0; k < n; k++) {
        bool found = false;
        for (size_t i = 0; i < ev->n_expects && !found; i++)
            found = ev->expects[i].type == t && expect_matches(&ev->expects[i], actual[k]);
        if (!found) {
            buf_printf(why, "unexpected %s annotation ", what);
            put_quoted(why, actual[k], strlen(actual[k]));
            buf_printf(why, " found for query %s (line %" PRIu32 ")", ev->expr, ev->line);
            return false;
        }
    }
    return true;
}

bool promqltest_check_annotations(const promqltest_eval *ev, const promql_annotations *ann,
                                  buf *why)
{
    static char *const none[1] = {NULL};
    char *const *w = ann && ann->n_warnings ? ann->warnings : none;
    char *const *in = ann && ann->n_infos ? ann->infos : none;
    size_t nw = ann ? ann->n_warnings : 0, ni = ann ? ann->n_infos : 0;
    if (ev->warn && nw == 0) {
        buf_puts(why, "expected warnings evaluating query ");
        put_quoted(why, ev->expr, ev->expr_len);
        buf_printf(why, " (line %" PRIu32 ") but got none", ev->line);
        return false;
    }
    if (ev->info && ni == 0) {
        buf_puts(why, "expected info annotations evaluating query ");
        put_quoted(why, ev->expr, ev->expr_len);
        buf_printf(why, " (line %" PRIu32 ") but got none", ev->line);
        return false;
    }
    if (!check_annos_of(ev, PROMQLTEST_EXPECT_WARN, w, nw, "warn", why)) return false;
    if (!check_annos_of(ev, PROMQLTEST_EXPECT_INFO, in, ni, "info", why)) return false;
    if (count_expects(ev, PROMQLTEST_EXPECT_NO_WARN) && nw) {
        buf_puts(why, "unexpected warning annotations evaluating query ");
        put_quoted(why, ev->expr, ev->expr_len);
        buf_printf(why, " (line %" PRIu32 "): ", ev->line);
        put_strings(why, w, nw);
        return false;
    }
    if (count_expects(ev, PROMQLTEST_EXPECT_NO_INFO) && ni) {
        buf_puts(why, "unexpected info annotations evaluating query ");
        put_quoted(why, ev->expr, ev->expr_len);
        buf_printf(why, " (line %" PRIu32 "): ", ev->line);
        put_strings(why, in, ni);
        return false;
    }
    return true;
}

bool promqltest_check_failure(const promqltest_eval *ev, const char *msg, buf *why)
{
    if (ev->fail_message && strcmp(ev->fail_message, msg) != 0) {
        buf_puts(why, "expected error ");
        put_quoted(why, ev->fail_message, strlen(ev->fail_message));
        buf_puts(why, " evaluating query ");
        put_quoted(why, ev->expr, ev->expr_len);
        buf_printf(why, " (line %" PRIu32 "), but got: %s", ev->line, msg);
        return false;
    }
    if (ev->fail_regexp && !regex_match(ev->fail_regexp, msg, strlen(msg))) {
        buf_puts(why, "expected error matching pattern ");
        promqltest_expect e = {PROMQLTEST_EXPECT_FAIL, NULL, ev->fail_regexp};
        put_expect(why, &e);
        buf_puts(why, " evaluating query ");
        put_quoted(why, ev->expr, ev->expr_len);
        buf_printf(why, " (line %" PRIu32 "), but got: %s", ev->line, msg);
        return false;
    }
    for (size_t i = 0; i < ev->n_expects; i++) {
        const promqltest_expect *e = &ev->expects[i];
        if (e->type != PROMQLTEST_EXPECT_FAIL) continue;
        if (!expect_matches(e, msg)) {
            buf_puts(why, "expected error matching ");
            put_expect(why, e);
            buf_puts(why, " evaluating query ");
            put_quoted(why, ev->expr, ev->expr_len);
            buf_printf(why, " (line %" PRIu32 "), but got: %s", ev->line, msg);
            return false;
        }
        break; /* only the first (there is at most one) */
    }
    return true;
}

/* ============================================================================
 * The runner
 * ========================================================================== */

typedef struct runner {
    const char *path;
    FILE *out;
    size_t max_lines;
    size_t max_points;
    const promqltest_script *s;
    promqltest_counts fc;
} runner;

static void count(runner *r, bool hist, bool pass)
{
    if (pass)
        r->fc.passed++;
    else
        r->fc.failed++;
    if (hist) {
        r->fc.hist_total++;
        r->fc.hist_passed += pass;
    } else {
        r->fc.float_total++;
        r->fc.float_passed += pass;
    }
}

static void put_value(buf *out, const promql_value *v, size_t max_lines)
{
    size_t shown = 0;
    switch (v->type) {
    case PROMQL_TYPE_SCALAR:
        buf_puts(out, "      scalar ");
        put_float(out, v->scalar);
        buf_putc(out, '\n');
        return;
    case PROMQL_TYPE_STRING:
        buf_puts(out, "      string ");
        put_quoted(out, v->string ? v->string : "", v->string_len);
        buf_putc(out, '\n');
        return;
    case PROMQL_TYPE_VECTOR:
        if (!v->vector.n) buf_puts(out, "      (empty vector)\n");
        for (size_t i = 0; i < v->vector.n; i++, shown++) {
            if (shown == max_lines) {
                buf_printf(out, "      ... %zu more\n", v->vector.n - i);
                break;
            }
            buf_puts(out, "      ");
            labels_format_metric(v->vector.v[i].metric, out);
            buf_putc(out, ' ');
            put_float(out, v->vector.v[i].v);
            buf_putc(out, '\n');
        }
        return;
    case PROMQL_TYPE_MATRIX:
        if (!v->matrix.n) buf_puts(out, "      (empty matrix)\n");
        for (size_t i = 0; i < v->matrix.n; i++, shown++) {
            if (shown == max_lines) {
                buf_printf(out, "      ... %zu more series\n", v->matrix.n - i);
                break;
            }
            const promql_series *s = &v->matrix.v[i];
            buf_puts(out, "      ");
            labels_format_metric(s->metric, out);
            for (size_t k = 0; k < s->n; k++) {
                if (k == 30 && s->n > 32) {
                    buf_printf(out, " ... (%zu more points)", s->n - k);
                    break;
                }
                buf_putc(out, ' ');
                put_float(out, s->pts[k].v);
                buf_putc(out, '@');
                put_duration(out, s->pts[k].t);
            }
            buf_putc(out, '\n');
        }
        return;
    case PROMQL_TYPE_NONE:
        buf_puts(out, "      (no value)\n");
        return;
    }
}

/* Prints a failed eval: header, reason, expected (the block as written)
 * and got. */
static void report(runner *r, const promqltest_eval *ev, const char *reason, bool details,
                   const promql_value *got, const char *got_error, const promql_annotations *ann)
{
    buf o;
    buf_init(&o, BUF_UNLIMITED);
    const promqltest_script *s = r->s;
    buf_printf(&o, "%s:%" PRIu32 ": FAILED: %s\n", r->path, ev->line, s->lines[ev->line - 1]);
    buf_printf(&o, "    %s\n", reason);
    if (details) {
        buf_puts(&o, "    expected:\n");
        if (ev->end_line == ev->line) buf_puts(&o, "      (nothing)\n");
        for (uint32_t l = ev->line; l < ev->end_line; l++)
            buf_printf(&o, "      %s\n", s->lines[l]);
        buf_puts(&o, "    got:\n");
        if (got_error)
            buf_printf(&o, "      error: %s\n", got_error);
        else if (got)
            put_value(&o, got, r->max_lines);
        for (size_t i = 0; ann && i < ann->n_warnings; i++)
            buf_printf(&o, "      warning: %s\n", ann->warnings[i]);
        for (size_t i = 0; ann && i < ann->n_infos; i++)
            buf_printf(&o, "      info: %s\n", ann->infos[i]);
    }
    fwrite(o.data, 1, o.len, r->out);
    buf_cleanup(&o);
}

/* Classic-histogram families become native histograms with custom
 * buckets under load_with_nhcb (test.go's appendCustomHistogram and
 * util/convertnhcb): X_bucket{le=...}, X_count and X_sum with otherwise
 * equal labels give series X (no le) with one histogram per timestamp. */
typedef struct nhcb_temp {
    double *le, *cnt; /* buckets sorted by le, cumulative counts */
    size_t n, cap;
    double count, sum;
    bool has_count, used, err;
} nhcb_temp;

typedef struct nhcb_group {
    labels *ls;
    nhcb_temp *at; /* per step index */
    size_t n;
} nhcb_group;

static void nhcb_set_bucket(nhcb_temp *t, double le, double c)
{
    if (t->err) return;
    if (c < 0) {
        t->err = true;
        return;
    }
    size_t i = 0;
    while (i < t->n && t->le[i] < le)
        i++;
    if (i < t->n && t->le[i] == le) return;
    if ((i > 0 && c < t->cnt[i - 1]) || (i < t->n && c > t->cnt[i])) {
        t->err = true;
        return;
    }
    size_t cap = t->cap;
    t->le = mem_grow(t->le, sizeof *t->le, t->n + 1, &cap);
    t->cnt = mem_grow(t->cnt, sizeof *t->cnt, t->n + 1, &t->cap);
    memmove(t->le + i + 1, t->le + i, (t->n - i) * sizeof *t->le);
    memmove(t->cnt + i + 1, t->cnt + i, (t->n - i) * sizeof *t->cnt);
    t->le[i] = le;
    t->cnt[i] = c;
    t->n++;
}

/* TempHistogram.Convert; NULL with a message on an inconsistent family. */
static promql_fh *nhcb_convert(nhcb_temp *t, buf *err)
{
    if (t->err) {
        buf_puts(err, "invalid classic histogram for load_with_nhcb");
        return NULL;
    }
    if (!t->has_count && t->n) {
        t->count = t->cnt[t->n - 1];
        t->has_count = true;
    }
    if (!t->n || t->le[t->n - 1] != INFINITY) nhcb_set_bucket(t, INFINITY, t->count);
    if (t->err || t->count != t->cnt[t->n - 1]) {
        buf_printf(err, "count mismatch: count=%g != le=+Inf count=%g", t->count,
                   t->n ? t->cnt[t->n - 1] : 0.0);
        return NULL;
    }
    promql_fh *h = promql_fh_new();
    h->schema = PROMQL_FH_CUSTOM_SCHEMA;
    h->count = t->count;
    h->sum = t->sum;
    if (t->n > 1) {
        h->custom = mem_malloc((t->n - 1) * sizeof *h->custom);
        h->n_custom = t->n - 1;
    }
    double prev = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->cnt[i] - prev != 0) promql_fh_set_bucket(h, true, (int32_t)i, t->cnt[i] - prev);
        prev = t->cnt[i];
        if (i + 1 < t->n) h->custom[i] = t->le[i];
    }
    return h;
}

static int load_nhcb(memstore *ms, const promqltest_load *ld, buf *err)
{
    nhcb_group *g = NULL;
    size_t ng = 0, gcap = 0;
    int rc = 0;
    for (size_t i = 0; i < ld->n_series && rc == 0; i++) {
        const promqltest_series *s = &ld->series[i];
        size_t nl;
        const char *name = labels_metric_name(s->ls, &nl);
        size_t base;
        int kind;
        double le = 0;
        if (strutil_has_suffix(name, nl, "_bucket")) {
            base = nl - 7;
            kind = 0;
            size_t vl;
            const char *lv = labels_get(s->ls, "le", 2, &vl);
            if (!lv) {
                buf_puts(err, "expected bucket label in metric ");
                labels_format(s->ls, err);
                rc = -EINVAL;
                break;
            }
            if (expfmt_parse_float(lv, vl, &le) != 0 || isnan(le)) continue;
        } else if (strutil_has_suffix(name, nl, "_sum")) {
            base = nl - 4;
            kind = 2;
        } else if (strutil_has_suffix(name, nl, "_count")) {
            base = nl - 6;
            kind = 1;
        } else {
            continue;
        }
        labels_builder b;
        labels_builder_init(&b);
        labels_builder_from(&b, s->ls);
        labels_builder_set(&b, LABELS_METRIC_NAME, 8, name, base);
        labels_builder_del(&b, "le", 2);
        labels *h = labels_builder_finish(&b, NULL);
        labels_builder_cleanup(&b);
        size_t gi = 0;
        while (gi < ng && !labels_equal(g[gi].ls, h))
            gi++;
        if (gi == ng) {
            g = mem_grow(g, sizeof *g, ng + 1, &gcap);
            g[ng++] = (nhcb_group){h, NULL, 0};
        } else {
            labels_free(h);
        }
        nhcb_group *gr = &g[gi];
        if (gr->n < s->n) {
            gr->at = mem_realloc(gr->at, s->n * sizeof *gr->at);
            memset(gr->at + gr->n, 0, (s->n - gr->n) * sizeof *gr->at);
            gr->n = s->n;
        }
        for (size_t k = 0; k < s->n; k++) {
            if (s->items[k].kind != PROMQLTEST_ITEM_FLOAT) continue;
            nhcb_temp *t = &gr->at[k];
            t->used = true;
            double f = s->items[k].v;
            if (kind == 0) {
                nhcb_set_bucket(t, le, f);
            } else if (kind == 1 && !t->err) {
                if (f < 0) t->err = true;
                t->count = f;
                t->has_count = true;
            } else if (!t->err) {
                t->sum = f;
            }
        }
    }
    for (size_t gi = 0; gi < ng; gi++) {
        for (size_t k = 0; k < g[gi].n; k++) {
            nhcb_temp *t = &g[gi].at[k];
            if (rc == 0 && t->used) {
                promql_fh *h = nhcb_convert(t, err);
                if (!h)
                    rc = -EINVAL;
                else
                    rc = memstore_append_histogram(ms, g[gi].ls, (int64_t)k * ld->step_ms, h, err);
                promql_fh_free(h);
            }
            mem_free(t->le);
            mem_free(t->cnt);
        }
        mem_free(g[gi].at);
        labels_free(g[gi].ls);
    }
    mem_free(g);
    return rc;
}

static int run_load(memstore *ms, const promqltest_load *ld, buf *err)
{
    for (size_t i = 0; i < ld->n_series; i++) {
        const promqltest_series *s = &ld->series[i];
        for (size_t k = 0; k < s->n; k++) {
            const promqltest_item *it = &s->items[k];
            int64_t t = (int64_t)k * ld->step_ms;
            int rc = 0;
            int64_t st = 0; /* Prometheus: a start timestamp of 0 is none */
            if (s->st && s->st[k] != PROMQLTEST_ST_NONE &&
                __builtin_add_overflow(t, s->st[k], &st)) {
                buf_puts(err, "start timestamp out of range");
                rc = -EINVAL;
            } else if (it->kind == PROMQLTEST_ITEM_FLOAT) {
                rc = memstore_append_st(ms, s->ls, t, it->v, st, err);
            } else if (it->kind == PROMQLTEST_ITEM_HISTOGRAM) {
                promql_fh *h = promqltest_item_histogram(it);
                rc = memstore_append_histogram(ms, s->ls, t, h, err);
                promql_fh_free(h);
            }
            if (rc < 0) {
                buf_printf(err, " (series at line %" PRIu32 ")", s->line);
                return rc;
            }
        }
    }
    if (ld->with_nhcb) return load_nhcb(ms, ld, err);
    return 0;
}

static void run_eval(runner *r, memstore *ms, const promqltest_eval *ev, const promql_ast *ast)
{
    promql_engine_options eo = {
        .lookback_delta_ms = 5 * STRUTIL_MS_PER_MINUTE,
        .max_samples = 10000,
        .timeout_ms = 100 * STRUTIL_MS_PER_SECOND,
        .default_subquery_step_ms = STRUTIL_MS_PER_MINUTE,
        .delayed_name_removal = true,
        .use_start_timestamps = true,
    };
    promql_queryable src = memstore_queryable(ms);
    promql_query q = {.ast = ast, .expr = ast->root};
    if (ev->range) {
        q.start_ms = ev->start_ms;
        q.end_ms = ev->end_ms;
        q.step_ms = ev->step_ms;
    } else {
        q.start_ms = q.end_ms = ev->eval_ms;
        q.step_ms = 0;
    }
    promql_value v;
    memset(&v, 0, sizeof v);
    promql_annotations ann;
    memset(&ann, 0, sizeof ann);
    promql_error err;
    promql_error_init(&err);
    memstore_reset_histograms_selected(ms);
    int rc;
    if (ev->range && ev->step_ms <= 0) {
        /* Prometheus's API refuses these before the engine sees them. */
        buf_puts(&err.msg,
                 "zero or negative query resolution step widths are not accepted. Try a positive "
                 "integer");
        err.kind = PROMQL_ERR_BAD_DATA;
        rc = -EINVAL;
    } else {
        rc = promql_eval(&eo, &src, &q, &v, &ann, &err);
    }
    bool hist = ev->histograms || memstore_histograms_selected(ms) > 0;
    buf why;
    buf_init(&why, BUF_UNLIMITED);
    bool pass;
    const char *err_text = rc < 0 ? buf_cstr(&err.msg) : NULL;
    if (rc < 0) {
        if (eval_is_fail(ev)) {
            pass = promqltest_check_failure(ev, err_text, &why);
        } else {
            pass = false;
            buf_puts(&why, "error evaluating query ");
            put_quoted(&why, ev->expr, ev->expr_len);
            buf_printf(&why, " (line %" PRIu32 "): %s", ev->line, err_text);
        }
    } else if (eval_is_fail(ev)) {
        pass = false;
        buf_puts(&why, "expected error evaluating query ");
        put_quoted(&why, ev->expr, ev->expr_len);
        buf_printf(&why, " (line %" PRIu32 ") but got none", ev->line);
    } else {
        pass = promqltest_check_annotations(ev, &ann, &why) && promqltest_compare(ev, &v, &why);
    }
    count(r, hist, pass);
    if (!pass) report(r, ev, buf_cstr(&why), !hist, rc < 0 ? NULL : &v, err_text, &ann);
    buf_cleanup(&why);
    promql_value_cleanup(&v);
    promql_annotations_cleanup(&ann);
    promql_error_cleanup(&err);
}

/* Counting for a rejected file: every `eval` line is a failed eval; it is
 * a histogram eval if `{{` appears in its block or in a load since the
 * last `clear` (or load_with_nhcb was used since). Works on the raw text,
 * so it also serves files whose DSL does not parse. */
static void count_rejected(runner *r, const char *text, size_t len)
{
    bool hist_loaded = false, in_load = false, in_eval = false, cur_hist = false;
    size_t i = 0;
    for (;;) {
        bool eof = i >= len;
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        size_t a = i, b = e;
        while (a < b && (is_re_space(text[a]) || text[a] == '\v'))
            a++;
        while (b > a && (is_re_space(text[b - 1]) || text[b - 1] == '\v'))
            b--;
        bool empty = eof || a == b || text[a] == '#';
        size_t w = a;
        while (w < b && text[w] != ' ' && text[w] != '\t')
            w++;
        bool is_eval = !empty && w - a >= 4 && eq_nocase(text + a, 4, "eval");
        bool is_load = !empty && w - a >= 4 && eq_nocase(text + a, 4, "load");
        bool is_clear = !empty && eq_nocase(text + a, w - a, "clear");
        if ((empty || is_eval || is_load || is_clear) && in_eval) {
            count(r, cur_hist, false);
            in_eval = false;
        }
        if (empty) {
            in_load = false;
        } else if (is_clear) {
            hist_loaded = in_load = false;
        } else if (is_load) {
            in_load = true;
            if (eq_nocase(text + a, w - a, "load_with_nhcb")) hist_loaded = true;
        } else if (is_eval) {
            in_load = false;
            in_eval = true;
            cur_hist = hist_loaded;
        } else if (memmem(text + a, b - a, "{{", 2)) {
            if (in_load) hist_loaded = true;
            if (in_eval) cur_hist = true;
        }
        if (eof) break;
        i = e + 1;
    }
}

/* The same for a file whose DSL parsed but whose expressions did not: the
 * commands give the evals exactly. */
static void count_rejected_script(runner *r, const promqltest_script *s)
{
    bool hist_loaded = false;
    for (size_t i = 0; i < s->n_cmds; i++) {
        const promqltest_cmd *c = &s->cmds[i];
        if (c->kind == PROMQLTEST_CMD_CLEAR) {
            hist_loaded = false;
        } else if (c->kind == PROMQLTEST_CMD_LOAD) {
            if (c->load->with_nhcb) hist_loaded = true;
            for (size_t k = 0; k < c->load->n_series; k++)
                hist_loaded = hist_loaded || c->load->series[k].histograms;
        } else {
            count(r, hist_loaded || c->eval->histograms, false);
        }
    }
}

/* "1:14: parse error: ..." relative to the expression, made relative to
 * the file: "<line>:<col>: parse error: ...". */
static void put_parse_error(buf *out, const runner *r, const promqltest_eval *ev, const char *m)
{
    char *end;
    unsigned long l = strtoul(m, &end, 10);
    if (l == 1 && *end == ':') {
        unsigned long col = strtoul(end + 1, &end, 10);
        if (*end == ':') {
            buf_printf(out, "%s:%" PRIu32 ":%lu:%s", r->path, ev->line, col + ev->expr_col,
                       end + 1);
            return;
        }
    }
    buf_printf(out, "%s:%" PRIu32 ": %s", r->path, ev->line, m);
}

static void print_file_line(runner *r)
{
    fprintf(r->out, "%s: %zu passed, %zu failed (float: %zu/%zu, histogram: %zu/%zu)\n", r->path,
            r->fc.passed, r->fc.failed, r->fc.float_passed, r->fc.float_total, r->fc.hist_passed,
            r->fc.hist_total);
}

static void add_counts(promqltest_counts *to, const promqltest_counts *c)
{
    to->passed += c->passed;
    to->failed += c->failed;
    to->float_passed += c->float_passed;
    to->float_total += c->float_total;
    to->hist_passed += c->hist_passed;
    to->hist_total += c->hist_total;
}

static char *read_file(const char *path, size_t *len, buf *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        buf_printf(err, "cannot open: %s", strerror(errno));
        return NULL;
    }
    buf b;
    buf_init(&b, PROMQLTEST_MAX_FILE_BYTES);
    char tmp[65536];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(tmp, 1, sizeof tmp, f)) > 0)
        rc = buf_append(&b, tmp, n);
    bool bad = ferror(f);
    fclose(f);
    if (rc < 0) {
        buf_printf(err, "file is larger than %zu bytes", PROMQLTEST_MAX_FILE_BYTES);
        buf_cleanup(&b);
        return NULL;
    }
    if (bad) {
        buf_printf(err, "read error");
        buf_cleanup(&b);
        return NULL;
    }
    return buf_detach(&b, len);
}

int promqltest_run_file(const char *path, const promqltest_options *o, promqltest_counts *total,
                        promqltest_counts *file)
{
    runner r = {.path = path};
    r.out = o && o->out ? o->out : stdout;
    r.max_lines = o && o->max_result_lines ? o->max_result_lines : 20;
    r.max_points = o ? o->max_points : 0;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    size_t len;
    char *text = read_file(path, &len, &err);
    if (!text) {
        fprintf(r.out, "%s: error: %s\n", path, buf_cstr(&err));
        buf_cleanup(&err);
        if (file) memset(file, 0, sizeof *file);
        return 2;
    }

    promqltest_script *s = NULL;
    uint32_t err_line = 0;
    int prc = parse_script(text, len, &s, &err_line, &err);
    r.s = s;
    promql_ast **asts = mem_calloc(s->n_cmds + 1, sizeof *asts);
    bool rejected = prc < 0;
    /* test.go parses each eval expression as it reads the file and stops at
     * the first error. Every expression before a DSL error is parsed here,
     * so that all parse errors are shown at once. */
    uint32_t first_bad = rejected ? err_line : UINT32_MAX, dsl_bad = first_bad;
    buf msgs;
    buf_init(&msgs, BUF_UNLIMITED);
    promql_parse_options popts = {
        .experimental_functions = true,
        .duration_expressions = true,
        .extended_range_selectors = true,
        .fill_modifiers = true,
    };
    for (size_t i = 0; i < s->n_cmds; i++) {
        const promqltest_eval *ev = s->cmds[i].eval;
        if (!ev || ev->line > dsl_bad) continue;
        buf pe;
        buf_init(&pe, BUF_UNLIMITED);
        if (promql_parse(ev->expr, ev->expr_len, &popts, &asts[i], &pe) < 0) {
            asts[i] = NULL;
            buf_printf(&msgs, "%s:%" PRIu32 ": FAILED: %s\n    ", path, ev->line,
                       s->lines[ev->line - 1]);
            put_parse_error(&msgs, &r, ev, buf_cstr(&pe));
            buf_putc(&msgs, '\n');
            if (ev->line < first_bad) first_bad = ev->line;
            rejected = true;
        }
        buf_cleanup(&pe);
    }
    if (prc < 0) {
        buf_printf(&msgs, "%s:%" PRIu32 ": error: %s\n", path, err_line, buf_cstr(&err));
    }
    int ret;
    if (rejected) {
        fwrite(msgs.data ? msgs.data : "", 1, msgs.len, r.out);
        if (prc < 0)
            count_rejected(&r, text, len);
        else
            count_rejected_script(&r, s);
        fprintf(r.out,
                "%s: rejected: the file does not parse (first error at line %" PRIu32
                "); as test.go does, none of its %zu evals run and all count as failed\n",
                path, first_bad, r.fc.failed);
        ret = 1;
    } else {
        memstore *ms = memstore_new(r.max_points);
        size_t i = 0;
        for (; i < s->n_cmds; i++) {
            const promqltest_cmd *c = &s->cmds[i];
            if (c->kind == PROMQLTEST_CMD_CLEAR) {
                memstore_clear(ms);
            } else if (c->kind == PROMQLTEST_CMD_LOAD) {
                buf le;
                buf_init(&le, BUF_UNLIMITED);
                if (run_load(ms, c->load, &le) < 0) {
                    fprintf(r.out, "%s:%" PRIu32 ": error: load failed: %s\n", path, c->line,
                            buf_cstr(&le));
                    buf_cleanup(&le);
                    break;
                }
                buf_cleanup(&le);
            } else {
                run_eval(&r, ms, c->eval, asts[i]);
            }
        }
        if (i < s->n_cmds) {
            /* A failed load ends the file, as in test.go. */
            size_t skipped = 0;
            for (; i < s->n_cmds; i++) {
                const promqltest_eval *ev = s->cmds[i].eval;
                if (!ev) continue;
                count(&r, ev->histograms, false);
                skipped++;
            }
            fprintf(r.out, "%s: %zu evals after the failed load were not run and count as failed\n",
                    path, skipped);
        }
        memstore_free(ms);
        ret = r.fc.failed ? 1 : 0;
    }
    print_file_line(&r);
    buf_cleanup(&msgs);
    for (size_t i = 0; i < s->n_cmds; i++)
        promql_ast_free(asts[i]);
    mem_free(asts);
    promqltest_script_free(s);
    mem_free(text);
    buf_cleanup(&err);
    if (total) add_counts(total, &r.fc);
    if (file) *file = r.fc;
    return ret;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sidewatch promql test FILE...\n"
               "Runs Prometheus promqltest scripts (.test files) against sidewatch's PromQL "
               "engine.\n"
               "Prints each failure, one line per file, then \"N passed, N failed\"; exits 0 only\n"
               "if every eval passed.\n");
}

int promqltest_main(int argc, char **argv)
{
    int first = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--") == 0) {
            first = i + 1;
            break;
        }
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "sidewatch: error: unknown flag '%s' for promql test\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (first >= argc) {
        usage(stderr);
        return 2;
    }
    printf("sidewatch promql test: %d file%s; lookback 5m, max samples 10000, subquery step 1m, "
           "delayed __name__ removal, start timestamps used; test.go's extra checks (re-runs "
           "with @ and as range queries) are not run\n",
           argc - first, argc - first == 1 ? "" : "s");
    fflush(stdout);
    promqltest_counts total = {0};
    int worst = 0;
    promqltest_options o = {.out = stdout};
    for (int i = first; i < argc; i++) {
        int rc = promqltest_run_file(argv[i], &o, &total, NULL);
        if (rc > worst) worst = rc;
        fflush(stdout);
    }
    if (argc - first > 1)
        printf("total: float: %zu/%zu, histogram: %zu/%zu\n", total.float_passed, total.float_total,
               total.hist_passed, total.hist_total);
    printf("%zu passed, %zu failed\n", total.passed, total.failed);
    return worst;
}
