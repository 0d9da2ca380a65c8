/* promql/lex: the PromQL lexer. See lex.h.
 *
 * The lexer reads runes (UTF-8, invalid bytes as U+FFFD) and has four
 * modes: statements (the normal one; inside braces while brace_open is set),
 * duration expressions (right after '[' and after each operator, parenthesis
 * or colon inside brackets), and the continuation of a string after an error
 * inside it. The exact rules (what a number may look like, which characters
 * end a duration, where errors are reported) follow Prometheus's lexer, so
 * that the same queries are accepted and the same messages come out. */
#include "promql/lex.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { MODE_STATEMENTS, MODE_DURATION, MODE_STRING, MODE_RAW, MODE_DONE };

#define EOF_RUNE (-1)
#define RUNE_ERROR 0xFFFDu

void promql_lex_init(promql_lexer *l, const char *in, size_t len)
{
    memset(l, 0, sizeof *l);
    l->in = in;
    l->len = (uint32_t)len;
    l->mode = MODE_STATEMENTS;
    buf_init(&l->err, 4096);
}

void promql_lex_cleanup(promql_lexer *l)
{
    buf_cleanup(&l->err);
}

/* ---- runes -------------------------------------------------------------------- */

uint32_t promql_lex_rune(const char *s, size_t len, uint32_t *width)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned c = p[0];
    *width = 1;
    if (c < 0x80) return c;
    size_t need;
    uint32_t r, min;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        r = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        r = c & 0x0F;
        min = 0x800;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        r = c & 0x07;
        min = 0x10000;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return RUNE_ERROR;
    }
    if (len < need) return RUNE_ERROR;
    if (p[1] < lo || p[1] > hi) return RUNE_ERROR;
    r = (r << 6) | (p[1] & 0x3F);
    for (size_t i = 2; i < need; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) return RUNE_ERROR;
        r = (r << 6) | (p[i] & 0x3F);
    }
    (void)min;
    *width = (uint32_t)need;
    return r;
}

bool promql_lex_rune_printable(uint32_t r)
{
    /* Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols
     * and the ASCII space. Outside ASCII this treats controls, separators
     * other than U+0020, format characters, surrogates, private use and
     * noncharacters as not printable (unassigned code points are not known
     * here). */
    if (r < 0x20 || r == 0x7f) return false;
    if (r < 0x7f) return true;
    if (r <= 0xA0 || r == 0xAD) return false;
    if (r == 0x1680 || (r >= 0x2000 && r <= 0x200F) || (r >= 0x2028 && r <= 0x202F) ||
        (r >= 0x205F && r <= 0x206F) || r == 0x3000 || r == 0xFEFF ||
        (r >= 0xFFF9 && r <= 0xFFFB) || (r >= 0xD800 && r <= 0xF8FF) ||
        r == 0x061C || r == 0x180E || (r >= 0x0600 && r <= 0x0605) || r == 0x06DD ||
        r == 0x070F || r == 0x08E2 || r == 0x110BD || r == 0x110CD ||
        (r >= 0x13430 && r <= 0x1343F) || (r >= 0x1BCA0 && r <= 0x1BCA3) ||
        (r >= 0x1D173 && r <= 0x1D17A) || r == 0xE0001 || (r >= 0xE0020 && r <= 0xE007F) ||
        (r & 0xFFFE) == 0xFFFE || (r >= 0xFDD0 && r <= 0xFDEF) || r >= 0xF0000 || r > 0x10FFFF)
        return false;
    return true;
}

static void quote_rune_body(buf *out, uint32_t r, uint32_t quote)
{
    static const char hex[] = "0123456789abcdef";
    char e[16];
    if (r == quote || r == '\\') {
        e[0] = '\\';
        e[1] = (char)r;
        buf_append(out, e, 2);
        return;
    }
    if (promql_lex_rune_printable(r)) {
        /* encode */
        if (r < 0x80) {
            buf_putc(out, (char)r);
        } else if (r < 0x800) {
            e[0] = (char)(0xC0 | (r >> 6));
            e[1] = (char)(0x80 | (r & 0x3F));
            buf_append(out, e, 2);
        } else if (r < 0x10000) {
            e[0] = (char)(0xE0 | (r >> 12));
            e[1] = (char)(0x80 | ((r >> 6) & 0x3F));
            e[2] = (char)(0x80 | (r & 0x3F));
            buf_append(out, e, 3);
        } else {
            e[0] = (char)(0xF0 | (r >> 18));
            e[1] = (char)(0x80 | ((r >> 12) & 0x3F));
            e[2] = (char)(0x80 | ((r >> 6) & 0x3F));
            e[3] = (char)(0x80 | (r & 0x3F));
            buf_append(out, e, 4);
        }
        return;
    }
    switch (r) {
    case '\a': buf_puts(out, "\\a"); return;
    case '\b': buf_puts(out, "\\b"); return;
    case '\f': buf_puts(out, "\\f"); return;
    case '\n': buf_puts(out, "\\n"); return;
    case '\r': buf_puts(out, "\\r"); return;
    case '\t': buf_puts(out, "\\t"); return;
    case '\v': buf_puts(out, "\\v"); return;
    default: break;
    }
    if (r < ' ' || r == 0x7f) {
        e[0] = '\\';
        e[1] = 'x';
        e[2] = hex[r >> 4];
        e[3] = hex[r & 15];
        buf_append(out, e, 4);
    } else if (r < 0x10000) {
        buf_printf(out, "\\u%04x", (unsigned)r);
    } else {
        buf_printf(out, "\\U%08x", (unsigned)r);
    }
}

void promql_lex_quote_rune(buf *out, int32_t r)
{
    uint32_t u = (uint32_t)r;
    if (r < 0 || u > 0x10FFFF || (u >= 0xD800 && u < 0xE000)) u = RUNE_ERROR;
    buf_putc(out, '\'');
    quote_rune_body(out, u, '\'');
    buf_putc(out, '\'');
}

void promql_lex_quote(buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    buf_putc(out, '"');
    size_t i = 0;
    while (i < len) {
        uint32_t w;
        uint32_t r = promql_lex_rune(s + i, len - i, &w);
        if (r == RUNE_ERROR && w == 1) {
            char e[4] = {'\\', 'x', hex[(unsigned char)s[i] >> 4], hex[(unsigned char)s[i] & 15]};
            buf_append(out, e, 4);
            i++;
            continue;
        }
        quote_rune_body(out, r, '"');
        i += w;
    }
    buf_putc(out, '"');
}

/* ---- keywords ----------------------------------------------------------------- */

static const struct {
    const char *word;
    enum promql_tok tok;
} keywords[] = {
    {"and", PROMQL_TOK_LAND},
    {"or", PROMQL_TOK_LOR},
    {"unless", PROMQL_TOK_LUNLESS},
    {"atan2", PROMQL_TOK_ATAN2},
    {"sum", PROMQL_TOK_SUM},
    {"avg", PROMQL_TOK_AVG},
    {"count", PROMQL_TOK_COUNT},
    {"min", PROMQL_TOK_MIN},
    {"max", PROMQL_TOK_MAX},
    {"group", PROMQL_TOK_GROUP},
    {"stddev", PROMQL_TOK_STDDEV},
    {"stdvar", PROMQL_TOK_STDVAR},
    {"topk", PROMQL_TOK_TOPK},
    {"bottomk", PROMQL_TOK_BOTTOMK},
    {"count_values", PROMQL_TOK_COUNT_VALUES},
    {"quantile", PROMQL_TOK_QUANTILE},
    {"limitk", PROMQL_TOK_LIMITK},
    {"limit_ratio", PROMQL_TOK_LIMIT_RATIO},
    {"offset", PROMQL_TOK_OFFSET},
    {"smoothed", PROMQL_TOK_SMOOTHED},
    {"anchored", PROMQL_TOK_ANCHORED},
    {"by", PROMQL_TOK_BY},
    {"without", PROMQL_TOK_WITHOUT},
    {"on", PROMQL_TOK_ON},
    {"ignoring", PROMQL_TOK_IGNORING},
    {"group_left", PROMQL_TOK_GROUP_LEFT},
    {"group_right", PROMQL_TOK_GROUP_RIGHT},
    {"fill", PROMQL_TOK_FILL},
    {"fill_left", PROMQL_TOK_FILL_LEFT},
    {"fill_right", PROMQL_TOK_FILL_RIGHT},
    {"bool", PROMQL_TOK_BOOL},
    {"start", PROMQL_TOK_START},
    {"end", PROMQL_TOK_END},
    {"step", PROMQL_TOK_STEP},
    {"range", PROMQL_TOK_RANGE},
    {"max_of", PROMQL_TOK_MAX_OF},
    {"min_of", PROMQL_TOK_MIN_OF},
    {"inf", PROMQL_TOK_NUMBER},
    {"nan", PROMQL_TOK_NUMBER},
};

static bool word_eq_ci(const char *s, size_t len, const char *kw)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (kw[i] == '\0' || kw[i] != c) return false;
    }
    return kw[len] == '\0';
}

enum promql_tok promql_lex_keyword(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
        if (word_eq_ci(s, len, keywords[i].word)) return keywords[i].tok;
    }
    return PROMQL_TOK_IDENTIFIER;
}

const char *promql_tok_text(enum promql_tok t)
{
    switch (t) {
    case PROMQL_TOK_LEFT_PAREN: return "(";
    case PROMQL_TOK_RIGHT_PAREN: return ")";
    case PROMQL_TOK_LEFT_BRACE: return "{";
    case PROMQL_TOK_RIGHT_BRACE: return "}";
    case PROMQL_TOK_LEFT_BRACKET: return "[";
    case PROMQL_TOK_RIGHT_BRACKET: return "]";
    case PROMQL_TOK_COMMA: return ",";
    case PROMQL_TOK_EQL: return "=";
    case PROMQL_TOK_COLON: return ":";
    case PROMQL_TOK_ADD: return "+";
    case PROMQL_TOK_DIV: return "/";
    case PROMQL_TOK_EQLC: return "==";
    case PROMQL_TOK_EQL_REGEX: return "=~";
    case PROMQL_TOK_GTE: return ">=";
    case PROMQL_TOK_GTR: return ">";
    case PROMQL_TOK_TRIM_UPPER: return "</";
    case PROMQL_TOK_TRIM_LOWER: return ">/";
    case PROMQL_TOK_LSS: return "<";
    case PROMQL_TOK_LTE: return "<=";
    case PROMQL_TOK_MOD: return "%";
    case PROMQL_TOK_MUL: return "*";
    case PROMQL_TOK_NEQ: return "!=";
    case PROMQL_TOK_NEQ_REGEX: return "!~";
    case PROMQL_TOK_POW: return "^";
    case PROMQL_TOK_SUB: return "-";
    case PROMQL_TOK_AT: return "@";
    default: break;
    }
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
        if (keywords[i].tok == t && t != PROMQL_TOK_NUMBER) return keywords[i].word;
    }
    return NULL;
}

/* ---- scanning helpers ---------------------------------------------------------------- */

static int32_t next_rune(promql_lexer *l, uint32_t *width)
{
    if (l->pos >= l->len) {
        *width = 0;
        return EOF_RUNE;
    }
    uint32_t r = promql_lex_rune(l->in + l->pos, l->len - l->pos, width);
    l->pos += *width;
    return (int32_t)r;
}

/* One-rune reader with a single step of backup, as the scanner needs. */
typedef struct reader {
    promql_lexer *l;
    uint32_t width;
} reader;

static int32_t rd_next(reader *r)
{
    return next_rune(r->l, &r->width);
}

static void rd_backup(reader *r)
{
    r->l->pos -= r->width;
}

static int32_t rd_peek(reader *r)
{
    int32_t c = rd_next(r);
    rd_backup(r);
    return c;
}

static bool in_set(int32_t c, const char *set)
{
    return c > 0 && c < 0x80 && strchr(set, (int)c) != NULL;
}

static bool rd_accept(reader *r, const char *set)
{
    if (in_set(rd_next(r), set)) return true;
    rd_backup(r);
    return false;
}

static bool rd_is(reader *r, const char *set)
{
    return in_set(rd_peek(r), set);
}

static bool is_space(int32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_alpha(int32_t c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(int32_t c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(int32_t c)
{
    return is_alpha(c) || is_digit(c);
}

static void emit(promql_lexer *l, promql_token *t, enum promql_tok type)
{
    t->type = type;
    t->pos = l->start;
    t->len = l->pos - l->start;
    l->start = l->pos;
}

/* Reports an error token at the start of the current token; `fatal` ends
 * the input (Prometheus's lexer stops there). */
static void lex_error(promql_lexer *l, promql_token *t, bool fatal, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void lex_error(promql_lexer *l, promql_token *t, bool fatal, const char *fmt, ...)
{
    buf_reset(&l->err);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&l->err, fmt, ap);
    va_end(ap);
    t->type = PROMQL_TOK_ERROR;
    t->pos = l->start;
    t->len = 0;
    if (fatal) l->mode = MODE_DONE;
}

/* Error texts with Go-quoted runes and strings are built piecewise. */
static void err_begin(promql_lexer *l)
{
    buf_reset(&l->err);
}

static void err_end(promql_lexer *l, promql_token *t, bool fatal)
{
    t->type = PROMQL_TOK_ERROR;
    t->pos = l->start;
    t->len = 0;
    if (fatal) l->mode = MODE_DONE;
}

static void err_rune(promql_lexer *l, promql_token *t, const char *prefix, int32_t r,
                     const char *suffix)
{
    err_begin(l);
    buf_puts(&l->err, prefix);
    promql_lex_quote_rune(&l->err, r);
    if (suffix) buf_puts(&l->err, suffix);
    err_end(l, t, true);
}

/* Go's %#U: U+0041 'A' (the character only when printable). */
static void put_unicode(buf *out, uint32_t r)
{
    buf_printf(out, "U+%04X", (unsigned)r);
    if (r <= 0x10FFFF && promql_lex_rune_printable(r)) {
        buf_puts(out, " '");
        uint32_t w;
        char e[4];
        (void)w;
        if (r < 0x80) {
            buf_putc(out, (char)r);
        } else if (r < 0x800) {
            e[0] = (char)(0xC0 | (r >> 6));
            e[1] = (char)(0x80 | (r & 0x3F));
            buf_append(out, e, 2);
        } else if (r < 0x10000) {
            e[0] = (char)(0xE0 | (r >> 12));
            e[1] = (char)(0x80 | ((r >> 6) & 0x3F));
            e[2] = (char)(0x80 | (r & 0x3F));
            buf_append(out, e, 3);
        } else {
            e[0] = (char)(0xF0 | (r >> 18));
            e[1] = (char)(0x80 | ((r >> 12) & 0x3F));
            e[2] = (char)(0x80 | ((r >> 6) & 0x3F));
            e[3] = (char)(0x80 | (r & 0x3F));
            buf_append(out, e, 4);
        }
        buf_putc(out, '\'');
    }
}

/* ---- numbers and durations ------------------------------------------------------------ */

/* Scans a number of any form Prometheus's lexer accepts; returns false if
 * what follows cannot be a number (the text read so far is then reported or
 * retried as a duration). */
static bool scan_number(reader *r)
{
    promql_lexer *l = r->l;
    uint32_t initial = l->pos;
    const char *digits = "0123456789";
    if (rd_accept(r, "0") && rd_accept(r, "xX")) {
        rd_accept(r, "_");
        digits = "0123456789abcdefABCDEF";
    }
    bool hex = digits[10] != '\0';
    char cont[32];
    snprintf(cont, sizeof cont, "%s._eE", digits);
    rd_accept(r, ".");
    rd_accept(r, digits);
    bool dot = false, exp = false;
    while (rd_is(r, cont)) {
        if (rd_is(r, ".") && dot) {
            rd_accept(r, ".");
            return false;
        }
        if (rd_is(r, "eE") && exp) {
            rd_accept(r, "eE");
            return false;
        }
        if (rd_accept(r, ".")) {
            dot = true;
            if (rd_accept(r, "_.")) return false;
            if (hex) return false;
            continue;
        }
        if (rd_accept(r, "eE")) {
            exp = true;
            rd_accept(r, "+-");
            if (rd_accept(r, "._eE") || rd_peek(r) == EOF_RUNE) return false;
            continue;
        }
        if (rd_accept(r, "_")) {
            if (rd_accept(r, "._eE") || rd_peek(r) == EOF_RUNE) return false;
            continue;
        }
        while (rd_accept(r, digits)) {
        }
    }
    if (l->pos == initial) return false;
    return !is_alnum(rd_peek(r));
}

/* After the digits of a duration: unit, then more number+unit pairs, and
 * nothing alphanumeric after. Bad unit combinations are caught later by the
 * duration parser. */
static bool accept_duration_rest(reader *r)
{
    if (!rd_accept(r, "smhdwy")) return false;
    rd_accept(r, "s");
    while (rd_accept(r, "0123456789")) {
        while (rd_accept(r, "0123456789")) {
        }
        if (!rd_accept(r, "smhdw")) return false;
        rd_accept(r, "s");
    }
    return !is_alnum(rd_next(r));
}

static void lex_number_or_duration(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    if (scan_number(&r)) {
        emit(l, t, PROMQL_TOK_NUMBER);
        l->mode = MODE_STATEMENTS;
        return;
    }
    if (accept_duration_rest(&r)) {
        rd_backup(&r);
        emit(l, t, PROMQL_TOK_DURATION);
        l->mode = MODE_STATEMENTS;
        return;
    }
    err_begin(l);
    buf_puts(&l->err, "bad number or duration syntax: ");
    promql_lex_quote(&l->err, l->in + l->start, l->pos - l->start);
    err_end(l, t, true);
}

/* step, range, max_of, min_of inside brackets (case-insensitive). */
static bool duration_keyword_start(int32_t c)
{
    if (c >= 'A' && c <= 'Z') c = c - 'A' + 'a';
    return c == 's' || c == 'r' || c == 'm';
}

static bool scan_duration_keyword(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    while (is_alpha(rd_next(&r))) {
    }
    rd_backup(&r);
    const char *w = l->in + l->start;
    size_t n = l->pos - l->start;
    enum promql_tok k = PROMQL_TOK_IDENTIFIER;
    if (word_eq_ci(w, n, "step"))
        k = PROMQL_TOK_STEP;
    else if (word_eq_ci(w, n, "range"))
        k = PROMQL_TOK_RANGE;
    else if (word_eq_ci(w, n, "max_of"))
        k = PROMQL_TOK_MAX_OF;
    else if (word_eq_ci(w, n, "min_of"))
        k = PROMQL_TOK_MIN_OF;
    if (k == PROMQL_TOK_IDENTIFIER) return false;
    emit(l, t, k);
    return true;
}

/* ---- strings ------------------------------------------------------------------------------ */

static int digit_val(int32_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return 16;
}

/* Checks one escape sequence after the backslash; returns false with an
 * error token if it is invalid (the string goes on afterwards). */
static bool lex_escape(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    int32_t c = rd_next(&r);
    int n;
    uint32_t base, max;
    switch (c) {
    case 'a': case 'b': case 'f': case 'n': case 'r': case 't': case 'v': case '\\':
        return true;
    case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
        n = 3;
        base = 8;
        max = 255;
        break;
    case 'x':
        c = rd_next(&r);
        n = 2;
        base = 16;
        max = 255;
        break;
    case 'u':
        c = rd_next(&r);
        n = 4;
        base = 16;
        max = 0x10FFFF;
        break;
    case 'U':
        c = rd_next(&r);
        n = 8;
        base = 16;
        max = 0x10FFFF;
        break;
    case EOF_RUNE:
        lex_error(l, t, false, "escape sequence not terminated");
        return false;
    default:
        if ((uint32_t)c == l->quote) return true;
        err_begin(l);
        buf_puts(&l->err, "unknown escape sequence ");
        put_unicode(&l->err, (uint32_t)c);
        err_end(l, t, false);
        return false;
    }
    uint32_t x = 0;
    while (n > 0) {
        uint32_t d = (uint32_t)digit_val(c);
        if (d >= base) {
            if (c == EOF_RUNE) {
                lex_error(l, t, false, "escape sequence not terminated");
                return false;
            }
            err_begin(l);
            buf_puts(&l->err, "illegal character ");
            put_unicode(&l->err, (uint32_t)c);
            buf_puts(&l->err, " in escape sequence");
            err_end(l, t, false);
            return false;
        }
        x = x * base + d;
        n--;
        if (n > 0) c = rd_next(&r);
    }
    if (x > max || (x >= 0xD800 && x < 0xE000)) {
        lex_error(l, t, false, "escape sequence is an invalid Unicode code point");
        return false;
    }
    return true;
}

/* Scans the rest of a "" or '' string; false when an error token was
 * produced (lexing resumes inside the string unless it ended). */
static bool lex_string(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    for (;;) {
        int32_t c = rd_next(&r);
        if (c == '\\') {
            if (!lex_escape(l, t)) {
                l->mode = MODE_STRING;
                return false;
            }
            continue;
        }
        if (c == (int32_t)RUNE_ERROR) {
            lex_error(l, t, false, "invalid UTF-8 rune");
            l->mode = MODE_STRING;
            return false;
        }
        if (c == EOF_RUNE || c == '\n') {
            lex_error(l, t, true, "unterminated quoted string");
            return false;
        }
        if ((uint32_t)c == l->quote) break;
    }
    emit(l, t, PROMQL_TOK_STRING);
    l->mode = MODE_STATEMENTS;
    return true;
}

static bool lex_raw_string(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    for (;;) {
        int32_t c = rd_next(&r);
        if (c == (int32_t)RUNE_ERROR) {
            lex_error(l, t, false, "invalid UTF-8 rune");
            l->mode = MODE_RAW;
            return false;
        }
        if (c == EOF_RUNE) {
            /* Prometheus's lexer reports this again on every later call;
             * one report ends the input here. */
            lex_error(l, t, true, "unterminated raw string");
            return false;
        }
        if ((uint32_t)c == l->quote) break;
    }
    emit(l, t, PROMQL_TOK_STRING);
    l->mode = MODE_STATEMENTS;
    return true;
}

/* ---- identifiers, comments, spaces ----------------------------------------------------------- */

static bool followed_by_left_paren(const promql_lexer *l)
{
    for (uint32_t p = l->pos; p < l->len; p++) {
        char c = l->in[p];
        if (!is_space((unsigned char)c)) return c == '(';
    }
    return false;
}

static void lex_keyword_or_identifier(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    int32_t c;
    while ((c = rd_next(&r)), is_alnum(c) || c == ':') {
    }
    rd_backup(&r);
    const char *w = l->in + l->start;
    size_t n = l->pos - l->start;
    enum promql_tok k = promql_lex_keyword(w, n);
    if (k != PROMQL_TOK_IDENTIFIER) {
        if ((k == PROMQL_TOK_FILL || k == PROMQL_TOK_FILL_LEFT || k == PROMQL_TOK_FILL_RIGHT) &&
            !followed_by_left_paren(l))
            k = PROMQL_TOK_IDENTIFIER;
        emit(l, t, k);
    } else if (memchr(w, ':', n) == NULL) {
        emit(l, t, PROMQL_TOK_IDENTIFIER);
    } else {
        emit(l, t, PROMQL_TOK_METRIC_IDENTIFIER);
    }
}

static void lex_comment(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    l->pos++; /* '#' */
    int32_t c = rd_next(&r);
    while (c != '\r' && c != '\n' && c != EOF_RUNE)
        c = rd_next(&r);
    rd_backup(&r);
    emit(l, t, PROMQL_TOK_COMMENT);
}

static void skip_spaces(promql_lexer *l)
{
    reader r = {l, 0};
    while (is_space(rd_peek(&r)))
        rd_next(&r);
    l->start = l->pos;
}

/* ---- modes --------------------------------------------------------------------------------- */

/* Inside braces: label names, strings, matchers, commas. Returns true when
 * a token was produced. */
static bool lex_inside_braces(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    if (l->pos < l->len && l->in[l->pos] == '#') {
        lex_comment(l, t);
        return true;
    }
    int32_t c = rd_next(&r);
    if (c == EOF_RUNE) {
        lex_error(l, t, true, "unexpected end of input inside braces");
        return true;
    }
    if (is_space(c)) {
        skip_spaces(l);
        return false;
    }
    if (is_alpha(c)) {
        while (is_alnum(rd_next(&r))) {
        }
        rd_backup(&r);
        emit(l, t, PROMQL_TOK_IDENTIFIER);
        return true;
    }
    switch (c) {
    case ',':
        emit(l, t, PROMQL_TOK_COMMA);
        return true;
    case '"':
    case '\'':
        l->quote = (uint32_t)c;
        lex_string(l, t);
        return true;
    case '`':
        l->quote = (uint32_t)c;
        lex_raw_string(l, t);
        return true;
    case '=':
        if (rd_next(&r) == '~') {
            emit(l, t, PROMQL_TOK_EQL_REGEX);
        } else {
            rd_backup(&r);
            emit(l, t, PROMQL_TOK_EQL);
        }
        return true;
    case '!': {
        int32_t n = rd_next(&r);
        if (n == '~') {
            emit(l, t, PROMQL_TOK_NEQ_REGEX);
        } else if (n == '=') {
            emit(l, t, PROMQL_TOK_NEQ);
        } else {
            err_rune(l, t, "unexpected character after '!' inside braces: ", n, NULL);
        }
        return true;
    }
    case '{':
        err_rune(l, t, "unexpected left brace ", c, NULL);
        return true;
    case '}':
        emit(l, t, PROMQL_TOK_RIGHT_BRACE);
        l->brace_open = false;
        return true;
    default:
        err_rune(l, t, "unexpected character inside braces: ", c, NULL);
        return true;
    }
}

/* Right after '[' and after operators inside brackets. */
static bool lex_duration_expr(promql_lexer *l, promql_token *t)
{
    reader r = {l, 0};
    int32_t c = rd_next(&r);
    switch (c) {
    case EOF_RUNE:
        lex_error(l, t, true, "unexpected end of input in duration expression");
        return true;
    case ']':
        emit(l, t, PROMQL_TOK_RIGHT_BRACKET);
        l->bracket_open = false;
        l->got_colon = false;
        l->mode = MODE_STATEMENTS;
        return true;
    case ':':
        emit(l, t, PROMQL_TOK_COLON);
        if (!l->got_duration) {
            lex_error(l, t, true, "unexpected colon before duration in duration expression");
            return true;
        }
        if (l->got_colon) {
            lex_error(l, t, true, "unexpected repeated colon in duration expression");
            return true;
        }
        l->got_colon = true;
        return true;
    case '(':
        emit(l, t, PROMQL_TOK_LEFT_PAREN);
        l->paren_depth++;
        return true;
    case ')':
        emit(l, t, PROMQL_TOK_RIGHT_PAREN);
        l->paren_depth--;
        if (l->paren_depth < 0) err_rune(l, t, "unexpected right parenthesis ", c, NULL);
        return true;
    case '+': emit(l, t, PROMQL_TOK_ADD); return true;
    case '-': emit(l, t, PROMQL_TOK_SUB); return true;
    case '*': emit(l, t, PROMQL_TOK_MUL); return true;
    case '/': emit(l, t, PROMQL_TOK_DIV); return true;
    case '%': emit(l, t, PROMQL_TOK_MOD); return true;
    case '^': emit(l, t, PROMQL_TOK_POW); return true;
    case ',': emit(l, t, PROMQL_TOK_COMMA); return true;
    default: break;
    }
    if (is_space(c)) {
        skip_spaces(l);
        return false;
    }
    if (c >= 0 && c < 0x80 && duration_keyword_start(c)) {
        if (scan_duration_keyword(l, t)) return true;
        err_rune(l, t, "unexpected character in duration expression: ", c, NULL);
        return true;
    }
    if (is_digit(c) || (c == '.' && is_digit(rd_peek(&r)))) {
        rd_backup(&r);
        l->got_duration = true;
        lex_number_or_duration(l, t);
        return true;
    }
    err_rune(l, t, "unexpected character in duration expression: ", c, NULL);
    return true;
}

static bool lex_statements(promql_lexer *l, promql_token *t)
{
    if (l->brace_open) return lex_inside_braces(l, t);
    if (l->pos < l->len && l->in[l->pos] == '#') {
        lex_comment(l, t);
        return true;
    }
    reader r = {l, 0};
    int32_t c = rd_next(&r);
    if (c == EOF_RUNE) {
        if (l->paren_depth != 0) {
            lex_error(l, t, true, "unclosed left parenthesis");
        } else if (l->bracket_open) {
            lex_error(l, t, true, "unclosed left bracket");
        } else {
            emit(l, t, PROMQL_TOK_EOF);
            l->mode = MODE_DONE;
        }
        return true;
    }
    if (is_space(c)) {
        skip_spaces(l);
        return false;
    }
    switch (c) {
    case ',': emit(l, t, PROMQL_TOK_COMMA); return true;
    case '*': emit(l, t, PROMQL_TOK_MUL); return true;
    case '/': emit(l, t, PROMQL_TOK_DIV); return true;
    case '%': emit(l, t, PROMQL_TOK_MOD); return true;
    case '+': emit(l, t, PROMQL_TOK_ADD); return true;
    case '-': emit(l, t, PROMQL_TOK_SUB); return true;
    case '^': emit(l, t, PROMQL_TOK_POW); return true;
    case '@': emit(l, t, PROMQL_TOK_AT); return true;
    case '=': {
        int32_t n = rd_peek(&r);
        if (n == '=') {
            rd_next(&r);
            emit(l, t, PROMQL_TOK_EQLC);
        } else if (n == '~') {
            err_rune(l, t, "unexpected character after '=': ", n, NULL);
        } else {
            emit(l, t, PROMQL_TOK_EQL);
        }
        return true;
    }
    case '!': {
        int32_t n = rd_next(&r);
        if (n != '=')
            err_rune(l, t, "unexpected character after '!': ", n, NULL);
        else
            emit(l, t, PROMQL_TOK_NEQ);
        return true;
    }
    case '<':
    case '>': {
        int32_t n = rd_peek(&r);
        if (n == '=') {
            rd_next(&r);
            emit(l, t, c == '<' ? PROMQL_TOK_LTE : PROMQL_TOK_GTE);
        } else if (n == '/') {
            rd_next(&r);
            emit(l, t, c == '<' ? PROMQL_TOK_TRIM_UPPER : PROMQL_TOK_TRIM_LOWER);
        } else {
            emit(l, t, c == '<' ? PROMQL_TOK_LSS : PROMQL_TOK_GTR);
        }
        return true;
    }
    case '"':
    case '\'':
        l->quote = (uint32_t)c;
        lex_string(l, t);
        return true;
    case '`':
        l->quote = (uint32_t)c;
        lex_raw_string(l, t);
        return true;
    case '(':
        emit(l, t, PROMQL_TOK_LEFT_PAREN);
        l->paren_depth++;
        return true;
    case ')':
        emit(l, t, PROMQL_TOK_RIGHT_PAREN);
        l->paren_depth--;
        if (l->paren_depth < 0) err_rune(l, t, "unexpected right parenthesis ", c, NULL);
        return true;
    case '{':
        emit(l, t, PROMQL_TOK_LEFT_BRACE);
        l->brace_open = true;
        return true;
    case '[':
        if (l->bracket_open) {
            err_rune(l, t, "unexpected left bracket ", c, NULL);
            return true;
        }
        l->got_colon = false;
        emit(l, t, PROMQL_TOK_LEFT_BRACKET);
        if (is_space(rd_peek(&r))) skip_spaces(l);
        l->bracket_open = true;
        l->mode = MODE_DURATION;
        return true;
    case ']':
        if (!l->bracket_open) {
            err_rune(l, t, "unexpected right bracket ", c, NULL);
            return true;
        }
        emit(l, t, PROMQL_TOK_RIGHT_BRACKET);
        l->bracket_open = false;
        return true;
    default: break;
    }
    if (is_digit(c) || (c == '.' && is_digit(rd_peek(&r)))) {
        rd_backup(&r);
        lex_number_or_duration(l, t);
        return true;
    }
    if (is_alpha(c) || c == ':') {
        if (!l->bracket_open) {
            rd_backup(&r);
            lex_keyword_or_identifier(l, t);
            return true;
        }
        if (c == ':') {
            if (l->got_colon) {
                err_rune(l, t, "unexpected colon ", c, NULL);
                return true;
            }
            emit(l, t, PROMQL_TOK_COLON);
            l->got_colon = true;
            return true;
        }
        if (duration_keyword_start(c) && scan_duration_keyword(l, t)) return true;
        err_begin(l);
        buf_puts(&l->err, "unexpected character: ");
        promql_lex_quote_rune(&l->err, c);
        buf_puts(&l->err, ", expected ");
        promql_lex_quote_rune(&l->err, ':');
        err_end(l, t, true);
        return true;
    }
    err_rune(l, t, "unexpected character: ", c, NULL);
    return true;
}

bool promql_lex_done(const promql_lexer *l)
{
    return l->mode == MODE_DONE;
}

void promql_lex_next(promql_lexer *l, promql_token *t)
{
    for (;;) {
        bool got;
        switch (l->mode) {
        case MODE_DONE:
            t->type = PROMQL_TOK_EOF;
            t->pos = l->pos;
            t->len = 0;
            return;
        case MODE_STRING: got = (lex_string(l, t), true); break;
        case MODE_RAW: got = (lex_raw_string(l, t), true); break;
        case MODE_DURATION: got = lex_duration_expr(l, t); break;
        default: got = lex_statements(l, t); break;
        }
        if (got) return;
    }
}
