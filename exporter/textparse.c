/* textparse: pull parser for the Prometheus text format 0.0.4 and
 * OpenMetrics 1.0, bug-compatible with Prometheus 3.14's model/textparse.
 *
 * Prometheus lexes with golex-generated DFAs (promlex.l, openmetricslex.l).
 * Those DFAs never backtrack: each transition consumes one byte, a state
 * with no transition for the current byte either accepts (the token ends
 * before that byte) or aborts (INVALID, with the lexer position left on the
 * offending byte). Error messages quote input[token start .. position+1],
 * so the lexers below mirror each start condition's DFA transition by
 * transition; prom_lex() and om_lex() are hand-written equivalents of the
 * generated tables, and the parsers above them follow promparse.go and
 * openmetricsparse.go.
 *
 * The text format appends a '\n' to the input; here that byte is virtual:
 * position `len` reads as '\n' and `blen` is len + 1. */
#include "textparse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest error message kept (Prometheus quotes whole lines, which can be
 * arbitrarily long); longer messages are truncated. */
#define TEXTPARSE_ERROR_LONG_MAX (64 * 1024)

#define NONE ((size_t)-1)

/* Lexer start conditions (promlex.l / openmetricslex.l). */
enum {
    S_INIT,
    S_COMMENT,
    S_META1,
    S_META2,
    S_LABELS,
    S_LVALUE,
    S_VALUE,
    S_TIMESTAMP,
    S_EXEMPLAR,
    S_EVALUE,
    S_ETIMESTAMP,
};

/* Tokens, with Prometheus's names for messages. */
enum {
    T_INVALID = -1,
    T_EOF = 0,
    T_LINEBREAK,
    T_WHITESPACE,
    T_HELP,
    T_TYPE,
    T_UNIT,
    T_EOFWORD,
    T_TEXT,
    T_COMMENT,
    T_BLANK,
    T_MNAME,
    T_QSTRING,
    T_BOPEN,
    T_BCLOSE,
    T_LNAME,
    T_LVALUE,
    T_COMMA,
    T_EQUAL,
    T_TIMESTAMP,
    T_VALUE,
};

static const char *tok_name(int t)
{
    static const char *const names[] = {
        "INVALID", "EOF",   "LINEBREAK", "WHITESPACE", "HELP",  "TYPE",      "UNIT",
        "EOFWORD", "TEXT",  "COMMENT",   "BLANK",      "MNAME", "QSTRING",   "BOPEN",
        "BCLOSE",  "LNAME", "LVALUE",    "COMMA",      "EQUAL", "TIMESTAMP", "VALUE",
    };
    if (t < T_INVALID || t > T_VALUE) return "<invalid>";
    return names[t + 1];
}

/* ---- character classes -------------------------------------------------- */

static inline bool is_ws(int c)
{
    return c == ' ' || c == '\t';
}

static inline bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* {L} [a-zA-Z_] */
static inline bool is_l(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* {M} [a-zA-Z_:] */
static inline bool is_m(int c)
{
    return is_l(c) || c == ':';
}

/* ---- lexer primitives ---------------------------------------------------- */

/* The byte at i (< blen); the text format's virtual '\n' sits at len. */
static inline int at(const textparse *p, size_t i)
{
    return i < p->len ? (unsigned char)p->b[i] : '\n';
}

static inline bool skips_nul(int state)
{
    return state == S_LVALUE || state == S_META2 || state == S_COMMENT;
}

/* The second half of golex's next(): the byte at the (just advanced)
 * position, or 0 past the end. In label values, metadata text and comments
 * NUL bytes are skipped. */
static inline int settle(textparse *p)
{
    if (p->i >= p->blen) return 0;
    if (p->i < p->len && p->b[p->i] == 0 && skips_nul(p->state)) {
        while (p->i < p->len && p->b[p->i] == 0)
            p->i++;
        if (p->i >= p->blen) return 0;
    }
    return at(p, p->i);
}

/* golex's next(): advance one byte and return it. */
static inline int adv(textparse *p)
{
    p->i++;
    return settle(p);
}

/* Byte classes for the scanning loops. None contains NUL or '\n'. */
enum {
    C_NAME = 1,  /* {M}|{D} */
    C_LNAME = 2, /* {L}|{D} */
    C_DIGIT = 4,
    C_PVAL = 8,  /* text-format value: [^{ \t\n] */
    C_OVAL = 16, /* OpenMetrics value/timestamp: [^ \n] */
};

/* cls[byte]: the classes the byte belongs to (generated; one row per 16 bytes). */
// clang-format off
static const unsigned char cls[256] = {
     0, 24, 24, 24, 24, 24, 24, 24, 24, 16,  0, 24, 24, 24, 24, 24, /* 0x00 */
    24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, /* 0x10 */
     0, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, /* 0x20 */
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 25, 24, 24, 24, 24, 24, /* 0x30 */
    24, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, /* 0x40 */
    27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 24, 24, 24, 24, 27, /* 0x50 */
    24, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, /* 0x60 */
    27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 16, 24, 24, 24, 24, /* 0x70 */
    24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, /* 0x80 */
    24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, /* 0x90 */
    24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, /* 0xa0 */
    24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, /* 0xb0 */
    24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, /* 0xc0 */
    24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, /* 0xd0 */
    24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, /* 0xe0 */
    24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, /* 0xf0 */
};
// clang-format on

/* Repeated adv() over bytes of class `mask`, from the byte after p->i.
 * Exact only in states that do not skip NULs (mask never matches NUL or
 * '\n', so neither the end nor the virtual '\n' can be passed). */
static inline int scan(textparse *p, unsigned mask)
{
    const unsigned char *b = (const unsigned char *)p->b;
    size_t i = p->i + 1, len = p->len;
    while (i < len && (cls[b[i]] & mask))
        i++;
    p->i = i;
    return settle(p);
}

/* Scans the rest of a quoted string; p->i is on the opening quote. Returns
 * true with the closing quote consumed, false (abort) on a byte the DFA has
 * no transition for. `newline` says whether a raw '\n' may appear between
 * the quotes. Sets tok_ascii when every byte of the token is ASCII. */
static bool lex_quoted(textparse *p, bool newline)
{
    const unsigned char *b = (const unsigned char *)p->b;
    size_t i = p->i + 1, len = p->len;
    unsigned hi = 0;
    p->tok_ascii = false;
    for (;;) {
        /* Plain bytes need no DFA bookkeeping. */
        while (i < len) {
            unsigned c = b[i];
            if (c == '"' || c == '\\' || c == 0 || c == '\n') break;
            hi |= c;
            i++;
        }
        p->i = i;
        int c = settle(p);
        if (c == '"') {
            p->tok_ascii = hi < 0x80;
            adv(p);
            return true;
        }
        if (c == '\\') {
            c = adv(p);
            if (c == 0 || c == '\n') return false;
            hi |= (unsigned)c;
            adv(p);
        } else if (c == 0 || (c == '\n' && !newline)) {
            return false;
        } else if (c == '\n') {
            adv(p);
        }
        /* Else NULs were skipped and c is a plain byte: rescan from it. */
        i = p->i;
    }
}

/* [ \t]+ with c the first blank. */
static int lex_ws(textparse *p)
{
    int c;
    do
        c = adv(p);
    while (is_ws(c));
    return T_WHITESPACE;
}

/* promlexer.consumeComment: everything up to (not including) the '\n'. */
static int prom_consume_comment(textparse *p)
{
    if (p->i >= p->blen) return T_EOF;
    int c = at(p, p->i); /* the current byte: no NUL skipping */
    if (c != 0 && c != '\n') {
        /* After it, NULs are skipped in sComment but end the input in the
         * initial state ("#" followed by a non-blank). */
        const unsigned char *b = (const unsigned char *)p->b;
        size_t i = p->i + 1;
        if (skips_nul(p->state)) {
            const char *nl = memchr(p->b + i, '\n', p->len - i);
            i = nl ? (size_t)(nl - p->b) : p->len;
        } else {
            while (i < p->len && b[i] != '\n' && b[i] != 0)
                i++;
        }
        p->i = i;
        c = settle(p);
    }
    if (c == 0) return T_EOF;
    p->state = S_INIT;
    return T_COMMENT;
}

/* Matches the rest of a keyword: each byte of `rest` must follow. */
static bool lex_word(textparse *p, const char *rest, int *c)
{
    for (; *rest; rest++) {
        *c = adv(p);
        if (*c != *rest) return false;
    }
    return true;
}

/* ---- the text-format lexer (promlex.l) --------------------------------- */

static int prom_lex(textparse *p)
{
    if (p->i >= p->blen) return T_EOF;
    int c = at(p, p->i);
    p->start = p->i;

dispatch:
    switch (p->state) {
    case S_INIT:
        if (c == '#') {
            c = adv(p);
            if (is_ws(c)) {
                do
                    c = adv(p);
                while (is_ws(c));
                /* #[ \t]+ switches to sComment and keeps scanning with the
                 * same token start. */
                p->state = S_COMMENT;
                goto dispatch;
            }
            return prom_consume_comment(p);
        }
        if (is_m(c)) {
            scan(p, C_NAME);
            p->state = S_VALUE;
            return T_MNAME;
        }
        if (c == '\n') {
            adv(p);
            p->state = S_INIT;
            return T_LINEBREAK;
        }
        if (is_ws(c)) return lex_ws(p);
        if (c == 0) {
            adv(p);
            return T_EOF;
        }
        if (c == '{') {
            adv(p);
            p->state = S_LABELS;
            return T_BOPEN;
        }
        break;

    case S_COMMENT:
        if (c == 'H' || c == 'T') {
            int tok = c == 'H' ? T_HELP : T_TYPE;
            if (!lex_word(p, c == 'H' ? "ELP" : "YPE", &c)) break;
            c = adv(p);
            if (!is_ws(c)) break;
            do
                c = adv(p);
            while (is_ws(c));
            p->state = S_META1;
            return tok;
        }
        if (is_ws(c)) return lex_ws(p);
        break;

    case S_META1:
        if (c == '"') {
            if (!lex_quoted(p, true)) break;
            p->state = S_META2;
            return T_MNAME;
        }
        if (is_m(c)) {
            scan(p, C_NAME);
            p->state = S_META2;
            return T_MNAME;
        }
        if (is_ws(c)) return lex_ws(p);
        break;

    case S_META2:
        /* {C}* competes with [ \t]+: blanks followed by the end of line
         * are WHITESPACE, blanks followed by text are TEXT. */
        if (is_ws(c)) {
            do
                c = adv(p);
            while (is_ws(c));
            if (c == 0 || c == '\n') return T_WHITESPACE;
        }
        if (c != 0 && c != '\n') {
            /* NULs are skipped here, so the text runs to the line end. */
            const char *nl = memchr(p->b + p->i + 1, '\n', p->len - p->i - 1);
            p->i = nl ? (size_t)(nl - p->b) : p->len;
            settle(p);
        }
        p->state = S_INIT;
        return T_TEXT;

    case S_LABELS:
        if (c == '"') {
            if (!lex_quoted(p, true)) break;
            p->state = S_LABELS;
            return T_QSTRING;
        }
        if (c == ',') {
            adv(p);
            return T_COMMA;
        }
        if (c == '=') {
            adv(p);
            p->state = S_LVALUE;
            return T_EQUAL;
        }
        if (is_ws(c)) return lex_ws(p);
        if (c == '}') {
            adv(p);
            p->state = S_VALUE;
            return T_BCLOSE;
        }
        if (is_l(c)) {
            scan(p, C_LNAME);
            return T_LNAME;
        }
        break;

    case S_LVALUE:
        if (c == '"') {
            if (!lex_quoted(p, true)) break;
            p->state = S_LABELS;
            return T_LVALUE;
        }
        if (is_ws(c)) return lex_ws(p);
        break;

    case S_VALUE:
        if (is_ws(c)) return lex_ws(p);
        if (c == '{') {
            adv(p);
            p->state = S_LABELS;
            return T_BOPEN;
        }
        if (c != 0 && c != '\n' && c != '{') {
            scan(p, C_PVAL);
            p->state = S_TIMESTAMP;
            return T_VALUE;
        }
        break;

    case S_TIMESTAMP:
        if (c == '\n') {
            adv(p);
            p->state = S_INIT;
            return T_LINEBREAK;
        }
        if (is_ws(c)) return lex_ws(p);
        if (is_digit(c)) {
            scan(p, C_DIGIT);
            return T_TIMESTAMP;
        }
        break;
    }
    /* No token: HELP/TYPE look-alikes are comments after all. */
    if (p->state == S_COMMENT) return prom_consume_comment(p);
    return T_INVALID;
}

/* ---- the OpenMetrics lexer (openmetricslex.l) -------------------------- */

/* [^ \n] minus NUL, as the generated tables have it. */
static inline bool om_vchar(int c)
{
    return c != 0 && c != '\n' && c != ' ';
}

static int om_lex(textparse *p)
{
    if (p->i >= p->blen) return T_EOF;
    int c = at(p, p->i);
    p->start = p->i;

dispatch:
    switch (p->state) {
    case S_INIT:
        if (c == '#') {
            c = adv(p);
            if (c != ' ') break;
            c = adv(p);
            p->state = S_COMMENT;
            goto dispatch;
        }
        if (is_m(c)) {
            scan(p, C_NAME);
            p->state = S_VALUE;
            return T_MNAME;
        }
        if (c == '{') {
            adv(p);
            p->state = S_LABELS;
            return T_BOPEN;
        }
        break;

    case S_COMMENT: {
        int tok;
        const char *rest;
        switch (c) {
        case 'E':
            if (!lex_word(p, "OF", &c)) goto abort;
            c = adv(p);
            if (c == '\n') adv(p);
            p->state = S_INIT;
            return T_EOFWORD;
        case 'H':
            tok = T_HELP, rest = "ELP ";
            break;
        case 'T':
            tok = T_TYPE, rest = "YPE ";
            break;
        case 'U':
            tok = T_UNIT, rest = "NIT ";
            break;
        default:
            goto abort;
        }
        if (!lex_word(p, rest, &c)) break;
        adv(p);
        p->state = S_META1;
        return tok;
    }

    case S_META1:
        if (c == '"') {
            if (!lex_quoted(p, true)) break;
            p->state = S_META2;
            return T_MNAME;
        }
        if (is_m(c)) {
            scan(p, C_NAME);
            p->state = S_META2;
            return T_MNAME;
        }
        break;

    case S_META2: {
        if (c != ' ') break;
        /* NULs are skipped, so the text runs to the line end; without one
         * the input ends inside it. */
        const char *nl = memchr(p->b + p->i + 1, '\n', p->len - p->i - 1);
        if (!nl) {
            p->i = p->len;
            goto abort;
        }
        p->i = (size_t)(nl - p->b);
        adv(p);
        p->state = S_INIT;
        return T_TEXT;
    }

    case S_LABELS:
    case S_EXEMPLAR:
        if (c == '"') {
            /* Label names may span lines in series, not in exemplars. */
            if (!lex_quoted(p, p->state == S_LABELS)) break;
            return T_QSTRING;
        }
        if (c == ',') {
            adv(p);
            return T_COMMA;
        }
        if (c == '=') {
            adv(p);
            p->state = p->state == S_LABELS ? S_LVALUE : S_EVALUE;
            return T_EQUAL;
        }
        if (c == '}') {
            adv(p);
            p->state = p->state == S_LABELS ? S_VALUE : S_EVALUE;
            return T_BCLOSE;
        }
        if (is_l(c)) {
            scan(p, C_LNAME);
            return T_LNAME;
        }
        break;

    case S_LVALUE:
        if (c == '"') {
            if (!lex_quoted(p, false)) break;
            p->state = S_LABELS;
            return T_LVALUE;
        }
        break;

    case S_VALUE:
        if (c == ' ') {
            c = adv(p);
            if (!om_vchar(c)) break;
            scan(p, C_OVAL);
            p->state = S_TIMESTAMP;
            return T_VALUE;
        }
        if (c == '{') {
            adv(p);
            p->state = S_LABELS;
            return T_BOPEN;
        }
        break;

    case S_TIMESTAMP:
        if (c == ' ') {
            c = adv(p);
            if (c == '#') {
                /* " # {" starts an exemplar; " #x" is a timestamp. */
                c = adv(p);
                if (c == ' ') {
                    c = adv(p);
                    if (c != '{') break;
                    adv(p);
                    p->state = S_EXEMPLAR;
                    return T_COMMENT;
                }
                if (om_vchar(c)) scan(p, C_OVAL);
                return T_TIMESTAMP;
            }
            if (!om_vchar(c)) break;
            scan(p, C_OVAL);
            return T_TIMESTAMP;
        }
        if (c == '\n') {
            adv(p);
            p->state = S_INIT;
            return T_LINEBREAK;
        }
        break;

    case S_EVALUE:
        if (c == ' ') {
            c = adv(p);
            if (!om_vchar(c)) break;
            scan(p, C_OVAL);
            p->state = S_ETIMESTAMP;
            return T_VALUE;
        }
        if (c == '"') {
            if (!lex_quoted(p, false)) break;
            p->state = S_EXEMPLAR;
            return T_LVALUE;
        }
        break;

    case S_ETIMESTAMP:
        if (c == ' ') {
            c = adv(p);
            if (!om_vchar(c)) break;
            scan(p, C_OVAL);
            return T_TIMESTAMP;
        }
        if (c == '\n') {
            adv(p);
            p->state = S_INIT;
            return T_LINEBREAK;
        }
        break;
    }
abort:
    return T_INVALID;
}

/* The text format's parser skips whitespace tokens; OpenMetrics has none. */
static int next_token(textparse *p)
{
    if (p->format == TEXTPARSE_OPENMETRICS) return om_lex(p);
    int t;
    do
        t = prom_lex(p);
    while (t == T_WHITESPACE);
    return t;
}

/* ---- errors ---------------------------------------------------------------- */

static char *err_buf(textparse *p)
{
    return p->err_long ? p->err_long : p->err;
}

static int err_sink(void *ctx, const char *s, size_t n)
{
    textparse *p = ctx;
    if (p->err_len + n >= TEXTPARSE_ERROR_MAX && !p->err_long) {
        p->err_long = malloc(TEXTPARSE_ERROR_LONG_MAX);
        if (p->err_long) memcpy(p->err_long, p->err, p->err_len + 1);
    }
    size_t cap = p->err_long ? TEXTPARSE_ERROR_LONG_MAX : TEXTPARSE_ERROR_MAX;
    if (n > cap - 1 - p->err_len) n = cap - 1 - p->err_len;
    char *d = err_buf(p);
    memcpy(d + p->err_len, s, n);
    p->err_len += n;
    d[p->err_len] = '\0';
    return 0;
}

static void err_str(textparse *p, const char *s)
{
    err_sink(p, s, strlen(s));
}

/* Go's %q of b[from:to], where `to` may include the virtual '\n'. */
static void err_quote(textparse *p, size_t from, size_t to)
{
    size_t real = to > p->len ? p->len : to;
    if (from > real) from = real;
    expfmt_quote_go(err_sink, p, p->b + from, real - from);
    if (to > p->len) {
        char *d = err_buf(p);
        if (p->err_len > 0 && d[p->err_len - 1] == '"') {
            p->err_len--;
            err_str(p, "\\n\"");
        }
    }
}

static void err_quote_str(textparse *p, const char *s, size_t n)
{
    expfmt_quote_go(err_sink, p, s, n);
}

/* Starts a message: clears any previous one. */
static void err_begin(textparse *p)
{
    p->err_len = 0;
    p->err[0] = '\0';
    if (p->err_long) p->err_long[0] = '\0';
}

/* Ends the parse with the message built so far; records where it stopped. */
static enum textparse_entry err_end(textparse *p)
{
    size_t pos = p->i > p->len ? p->len : p->i;
    size_t line = 1, line_start = 0;
    for (size_t k = 0; k < pos; k++) {
        if (p->b[k] == '\n') {
            line++;
            line_start = k + 1;
        }
    }
    p->err_offset = pos;
    p->err_line = line;
    p->err_col = pos - line_start + 1;
    p->finished = true;
    p->final = TEXTPARSE_ERROR;
    return TEXTPARSE_ERROR;
}

static enum textparse_entry fail_msg(textparse *p, const char *msg)
{
    err_begin(p);
    err_str(p, msg);
    return err_end(p);
}

/* parseError: "<exp>, got <token bytes> (<token>) while parsing: <entry>". */
static enum textparse_entry fail_parse(textparse *p, const char *exp, const char *exp2, int tok)
{
    size_t e = p->i + 1 < p->blen ? p->i + 1 : p->blen;
    err_begin(p);
    err_str(p, exp);
    if (exp2) err_str(p, exp2);
    err_str(p, ", got ");
    err_quote(p, p->start, e);
    err_str(p, " (\"");
    err_str(p, tok_name(tok));
    err_str(p, "\") while parsing: ");
    err_quote(p, p->entry_start, e);
    return err_end(p);
}

/* "<what> while parsing: <entry up to the lexer position>". */
static enum textparse_entry fail_while(textparse *p, const char *what)
{
    err_begin(p);
    err_str(p, what);
    err_str(p, " while parsing: ");
    err_quote(p, p->entry_start, p->i);
    return err_end(p);
}

static enum textparse_entry fail_float(textparse *p, const char *s, size_t n, int rc)
{
    err_begin(p);
    if (rc == -ENOMEM) {
        err_str(p, "out of memory");
        return err_end(p);
    }
    expfmt_float_error(err_sink, p, s, n, rc);
    err_str(p, " while parsing: ");
    err_quote(p, p->entry_start, p->i);
    return err_end(p);
}

static enum textparse_entry fail_oom(textparse *p)
{
    return fail_msg(p, "out of memory");
}

/* ---- shared helpers ---------------------------------------------------- */

static const uint64_t normal_nan_bits = 0x7ff8000000000001ULL; /* value.NormalNaN */

static double normal_nan(void)
{
    double d;
    memcpy(&d, &normal_nan_bits, sizeof d);
    return d;
}

static bool push_offsets(size_t **arr, size_t *n, size_t *cap, size_t a, size_t b)
{
    if (*n + 2 > *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        size_t *na = realloc(*arr, nc * sizeof *na);
        if (!na) return false;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = a;
    (*arr)[(*n)++] = b;
    return true;
}

/* Clinger's fast path (as Go's atof64exact): a decimal with at most 19
 * significant digits, a mantissa below 2^53 and a power of ten up to 22 is
 * converted exactly by one correctly rounded multiplication or division.
 * Returns false for anything else (the caller then uses the full parser). */
static bool fast_float(const char *s, size_t n, double *out)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    bool neg = false, dot = false, digits = false;
    if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    uint64_t mant = 0;
    int nd = 0, exp10 = 0;
    for (; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            digits = true;
            if (mant || c != '0') {
                if (++nd > 19) return false;
                mant = mant * 10 + (uint64_t)(c - '0');
            }
            if (dot) exp10--;
        } else if (c == '.' && !dot) {
            dot = true;
        } else {
            break;
        }
    }
    if (!digits) return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (s[i] == '-' || s[i] == '+')) eneg = s[i++] == '-';
        if (i >= n) return false;
        int e = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (e > 1000) return false;
            e = e * 10 + (s[i] - '0');
        }
        exp10 += eneg ? -e : e;
    }
    if (i != n || mant >= (UINT64_C(1) << 53)) return false;
    double f = (double)mant;
    if (exp10 > 0) {
        if (exp10 > 22) return false;
        f *= pow10[exp10];
    } else if (exp10 < 0) {
        if (exp10 < -22) return false;
        f /= pow10[-exp10];
    }
    *out = neg ? -f : f;
    return true;
}

/* Prometheus's parseFloat: Go's strconv.ParseFloat without the post-1.13
 * syntax (hex floats, underscores). Returns 0 or the expfmt error code,
 * -EDOM for the "unsupported character" rejection. */
static int prom_parse_float(const char *s, size_t n, double *out)
{
    if (memchr(s, 'p', n) || memchr(s, 'P', n) || memchr(s, '_', n)) return -EDOM;
    if (fast_float(s, n, out)) return 0;
    return expfmt_parse_float(s, n, out);
}

/* Reports a prom_parse_float failure on s[0..n). */
static enum textparse_entry fail_value(textparse *p, const char *s, size_t n, int rc)
{
    if (rc == -EDOM) return fail_while(p, "unsupported character in float");
    return fail_float(p, s, n, rc);
}

/* Go's int64(f) on amd64: out-of-range values become INT64_MIN. */
static int64_t go_int64(double f)
{
    if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0)) return INT64_MIN;
    return (int64_t)f;
}

static bool bytes_eq(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n == m && memcmp(s, lit, n) == 0;
}

/* ---- the text-format parser (promparse.go) ----------------------------- */

static enum textparse_entry prom_labels(textparse *p)
{
    int t = next_token(p);
    for (;;) {
        size_t ts = p->start, ti = p->i;
        bool quoted = false;
        switch (t) {
        case T_BCLOSE:
            return TEXTPARSE_SERIES;
        case T_LNAME:
            break;
        case T_QSTRING:
            quoted = true;
            break;
        default:
            return fail_parse(p, "expected label name", NULL, t);
        }
        t = next_token(p);
        /* A quoted string followed by ',' or '}' is the metric name. */
        if (quoted && (t == T_COMMA || t == T_BCLOSE)) {
            if (p->name_start != NONE || p->name_end != NONE)
                return fail_while(p, "metric name already set");
            p->name_start = ts + 1;
            p->name_end = ti - 1;
            if (t == T_BCLOSE) return TEXTPARSE_SERIES;
            t = next_token(p);
            continue;
        }
        if (p->b[ts] == '"') {
            ts++;
            ti--;
        }
        if (!push_offsets(&p->offsets, &p->n_offsets, &p->cap_offsets, ts, ti)) return fail_oom(p);
        if (t != T_EQUAL) return fail_parse(p, "expected equal", NULL, t);
        t = next_token(p);
        if (t != T_LVALUE) return fail_parse(p, "expected label value", NULL, t);
        if (!p->tok_ascii && !expfmt_utf8_valid(p->b + p->start, p->i - p->start)) {
            err_begin(p);
            err_str(p, "invalid UTF-8 label value: ");
            err_quote(p, p->start, p->i);
            return err_end(p);
        }
        if (!push_offsets(&p->offsets, &p->n_offsets, &p->cap_offsets, p->start + 1, p->i - 1))
            return fail_oom(p);
        /* A trailing comma is allowed, and so (unlike OpenMetrics) is a
         * missing comma between labels. */
        t = next_token(p);
        if (t == T_COMMA) t = next_token(p);
    }
}

static enum textparse_entry prom_suffix(textparse *p, int t)
{
    if (p->name_start == NONE) return fail_while(p, "metric name not set");
    if (t != T_VALUE) return fail_parse(p, "expected value after metric", NULL, t);
    const char *s = p->b + p->start;
    size_t n = p->i - p->start;
    int rc = prom_parse_float(s, n, &p->value);
    if (rc) return fail_value(p, s, n, rc);
    if (isnan(p->value)) p->value = normal_nan();
    p->has_ts = false;
    t = next_token(p);
    if (t == T_TIMESTAMP) {
        p->has_ts = true;
        s = p->b + p->start;
        n = p->i - p->start;
        uint64_t v = 0;
        for (size_t k = 0; k < n; k++) {
            unsigned d = (unsigned)(s[k] - '0');
            if (v > (UINT64_C(9223372036854775807) - d) / 10) {
                err_begin(p);
                err_str(p, "strconv.ParseInt: parsing ");
                err_quote_str(p, s, n);
                err_str(p, ": value out of range while parsing: ");
                err_quote(p, p->entry_start, p->i);
                return err_end(p);
            }
            v = v * 10 + d;
        }
        p->ts = (int64_t)v;
        t = next_token(p);
        if (t != T_LINEBREAK) return fail_parse(p, "expected next entry after timestamp", NULL, t);
    } else if (t != T_LINEBREAK) {
        return fail_parse(p, "expected timestamp or new record", NULL, t);
    }
    return TEXTPARSE_SERIES;
}

static enum textparse_entry prom_meta(textparse *p, int kind)
{
    int t = next_token(p);
    if (t != T_MNAME) return fail_parse(p, "expected metric name after ", tok_name(kind), t);
    size_t ms = p->start, me = p->i;
    if (p->b[ms] == '"' && p->b[me - 1] == '"') {
        ms++;
        me--;
    }
    p->name_start = ms;
    p->name_end = me;
    t = next_token(p);
    if (t != T_TEXT) {
        err_begin(p);
        err_str(p, "expected text in ");
        err_str(p, tok_name(kind));
        err_str(p, ", got ");
        err_str(p, tok_name(t));
        return err_end(p);
    }
    if (p->i - p->start > 1) {
        p->text_start = p->start + 1;
        p->text_end = p->i;
    } else {
        p->text_start = p->text_end = p->i;
    }
    p->text_is_help = kind == T_HELP;
    const char *txt = p->b + p->text_start;
    size_t tn = p->text_end - p->text_start;
    if (kind == T_TYPE) {
        if (bytes_eq(txt, tn, "counter"))
            p->mtype = EXPFMT_COUNTER;
        else if (bytes_eq(txt, tn, "gauge"))
            p->mtype = EXPFMT_GAUGE;
        else if (bytes_eq(txt, tn, "histogram"))
            p->mtype = EXPFMT_HISTOGRAM;
        else if (bytes_eq(txt, tn, "summary"))
            p->mtype = EXPFMT_SUMMARY;
        else if (bytes_eq(txt, tn, "untyped"))
            p->mtype = EXPFMT_UNKNOWN;
        else {
            err_begin(p);
            err_str(p, "invalid metric type ");
            err_quote_str(p, txt, tn);
            return err_end(p);
        }
    } else if (!expfmt_utf8_valid(txt, tn)) {
        err_begin(p);
        err_str(p, "help text ");
        err_quote_str(p, txt, tn);
        err_str(p, " is not a valid utf8 string");
        return err_end(p);
    }
    t = next_token(p);
    if (t != T_LINEBREAK) return fail_parse(p, "linebreak expected after metadata", NULL, t);
    return kind == T_HELP ? TEXTPARSE_HELP : TEXTPARSE_TYPE;
}

static enum textparse_entry prom_next(textparse *p)
{
    for (;;) {
        p->entry_start = p->i;
        p->n_offsets = 0;
        p->name_start = p->name_end = NONE;
        int t = next_token(p);
        switch (t) {
        case T_EOF:
            p->finished = true;
            p->final = TEXTPARSE_END;
            return TEXTPARSE_END;
        case T_LINEBREAK:
            continue; /* blank line */
        case T_HELP:
        case T_TYPE:
            return prom_meta(p, t);
        case T_COMMENT:
            p->text_start = p->start;
            p->text_end = p->i;
            p->text_is_help = false;
            t = next_token(p);
            if (t != T_LINEBREAK) return fail_parse(p, "linebreak expected after comment", NULL, t);
            return TEXTPARSE_COMMENT;
        case T_BOPEN: {
            enum textparse_entry e = prom_labels(p);
            if (e == TEXTPARSE_ERROR) return e;
            p->series_end = p->i;
            return prom_suffix(p, next_token(p));
        }
        case T_MNAME: {
            /* The name starts where the entry does, so leading blanks are
             * part of it (as in Prometheus). */
            p->name_start = p->entry_start;
            p->name_end = p->i;
            p->series_end = p->i;
            int t2 = next_token(p);
            if (t2 == T_BOPEN) {
                enum textparse_entry e = prom_labels(p);
                if (e == TEXTPARSE_ERROR) return e;
                p->series_end = p->i;
                t2 = next_token(p);
            }
            return prom_suffix(p, t2);
        }
        default:
            return fail_parse(p, "expected a valid start token", NULL, t);
        }
    }
}

/* ---- the OpenMetrics parser (openmetricsparse.go) ---------------------- */

static enum textparse_entry om_labels(textparse *p, bool exemplar)
{
    size_t **arr = exemplar ? &p->eoffsets : &p->offsets;
    size_t *n = exemplar ? &p->n_eoffsets : &p->n_offsets;
    size_t *cap = exemplar ? &p->cap_eoffsets : &p->cap_offsets;
    int t = next_token(p);
    for (;;) {
        size_t ts = p->start, ti = p->i;
        bool quoted = false;
        switch (t) {
        case T_BCLOSE:
            return TEXTPARSE_SERIES;
        case T_LNAME:
            break;
        case T_QSTRING:
            quoted = true;
            break;
        default:
            return fail_parse(p, "expected label name", NULL, t);
        }
        t = next_token(p);
        if (quoted && (t == T_COMMA || t == T_BCLOSE)) {
            if (exemplar) return fail_parse(p, "expected label name", NULL, t);
            if (p->name_start != NONE || p->name_end != NONE)
                return fail_while(p, "metric name already set");
            p->name_start = ts + 1;
            p->name_end = ti - 1;
            if (t == T_BCLOSE) return TEXTPARSE_SERIES;
            t = next_token(p);
            continue;
        }
        if (p->b[ts] == '"') {
            ts++;
            ti--;
        }
        if (!push_offsets(arr, n, cap, ts, ti)) return fail_oom(p);
        if (t != T_EQUAL) return fail_parse(p, "expected equal", NULL, t);
        t = next_token(p);
        if (t != T_LVALUE) return fail_parse(p, "expected label value", NULL, t);
        if (!p->tok_ascii && !expfmt_utf8_valid(p->b + p->start, p->i - p->start)) {
            err_begin(p);
            err_str(p, "invalid UTF-8 label value: ");
            err_quote(p, p->start, p->i);
            return err_end(p);
        }
        if (!push_offsets(arr, n, cap, p->start + 1, p->i - 1)) return fail_oom(p);
        t = next_token(p);
        if (t == T_COMMA)
            t = next_token(p);
        else if (t != T_BCLOSE)
            return fail_parse(p, "expected comma or brace close", NULL, t);
    }
}

/* getFloatValue: a VALUE token (" 1.5") as a float. */
static enum textparse_entry om_float_value(textparse *p, int t, const char *after, double *out)
{
    if (t != T_VALUE) return fail_parse(p, "expected value after ", after, t);
    const char *s = p->b + p->start + 1;
    size_t n = p->i - p->start - 1;
    int rc = prom_parse_float(s, n, out);
    if (rc) return fail_value(p, s, n, rc);
    if (isnan(*out)) *out = normal_nan();
    return TEXTPARSE_SERIES;
}

/* An OpenMetrics timestamp token (" 1520879607.789") in milliseconds. */
static enum textparse_entry om_timestamp(textparse *p, const char *what, int64_t *ms)
{
    const char *s = p->b + p->start + 1;
    size_t n = p->i - p->start - 1;
    double f;
    int rc = prom_parse_float(s, n, &f);
    if (rc) return fail_value(p, s, n, rc);
    if (isnan(f) || isinf(f)) {
        err_begin(p);
        err_str(p, what);
        err_str(p, isnan(f) ? "NaN" : f > 0 ? "+Inf" : "-Inf");
        return err_end(p);
    }
    *ms = go_int64(f * 1000);
    return TEXTPARSE_SERIES;
}

/* parseComment: the exemplar after " # {". */
static enum textparse_entry om_exemplar(textparse *p)
{
    if (om_labels(p, true) == TEXTPARSE_ERROR) return TEXTPARSE_ERROR;
    p->has_exemplar = true;
    if (om_float_value(p, next_token(p), "exemplar labels", &p->exemplar_value) == TEXTPARSE_ERROR)
        return TEXTPARSE_ERROR;
    p->exemplar_has_ts = false;
    int t = next_token(p);
    switch (t) {
    case T_EOF:
        return fail_msg(p, "data does not end with # EOF");
    case T_LINEBREAK:
        break;
    case T_TIMESTAMP:
        p->exemplar_has_ts = true;
        if (om_timestamp(p, "invalid exemplar timestamp ", &p->exemplar_ts) == TEXTPARSE_ERROR)
            return TEXTPARSE_ERROR;
        t = next_token(p);
        if (t != T_LINEBREAK)
            return fail_parse(p, "expected next entry after exemplar timestamp", NULL, t);
        break;
    default:
        return fail_parse(p, "expected timestamp or comment", NULL, t);
    }
    return TEXTPARSE_SERIES;
}

/* parseSeriesEndOfLine. Like Prometheus, a token other than EOF, a line
 * break, a timestamp or an exemplar after the value ends the entry without
 * an error; the next call then fails on what follows. */
static enum textparse_entry om_series_end(textparse *p, int t)
{
    if (p->name_start == NONE) return fail_while(p, "metric name not set");
    if (om_float_value(p, t, "metric", &p->value) == TEXTPARSE_ERROR) return TEXTPARSE_ERROR;
    p->has_ts = false;
    t = next_token(p);
    switch (t) {
    case T_EOF:
        return fail_msg(p, "data does not end with # EOF");
    case T_LINEBREAK:
        break;
    case T_COMMENT:
        return om_exemplar(p);
    case T_TIMESTAMP:
        p->has_ts = true;
        if (om_timestamp(p, "invalid timestamp ", &p->ts) == TEXTPARSE_ERROR)
            return TEXTPARSE_ERROR;
        t = next_token(p);
        if (t == T_COMMENT) return om_exemplar(p);
        if (t != T_LINEBREAK) return fail_parse(p, "expected next entry after timestamp", NULL, t);
        break;
    default:
        break;
    }
    return TEXTPARSE_SERIES;
}

static enum textparse_entry om_meta(textparse *p, int kind)
{
    int t = next_token(p);
    if (t != T_MNAME) return fail_parse(p, "expected metric name after ", tok_name(kind), t);
    size_t ms = p->start, me = p->i;
    if (p->b[ms] == '"' && p->b[me - 1] == '"') {
        ms++;
        me--;
    }
    p->name_start = ms;
    p->name_end = me;
    t = next_token(p);
    if (t != T_TEXT) {
        err_begin(p);
        err_str(p, "expected text in ");
        err_str(p, tok_name(kind));
        return err_end(p);
    }
    /* TEXT is " <text>\n". */
    p->text_start = p->start + 1;
    p->text_end = p->i - 1;
    p->text_is_help = kind == T_HELP;
    const char *txt = p->b + p->text_start;
    size_t tn = p->text_end - p->text_start;
    switch (kind) {
    case T_TYPE:
        if (bytes_eq(txt, tn, "counter"))
            p->mtype = EXPFMT_COUNTER;
        else if (bytes_eq(txt, tn, "gauge"))
            p->mtype = EXPFMT_GAUGE;
        else if (bytes_eq(txt, tn, "histogram"))
            p->mtype = EXPFMT_HISTOGRAM;
        else if (bytes_eq(txt, tn, "gaugehistogram"))
            p->mtype = EXPFMT_GAUGEHISTOGRAM;
        else if (bytes_eq(txt, tn, "summary"))
            p->mtype = EXPFMT_SUMMARY;
        else if (bytes_eq(txt, tn, "info"))
            p->mtype = EXPFMT_INFO;
        else if (bytes_eq(txt, tn, "stateset"))
            p->mtype = EXPFMT_STATESET;
        else if (bytes_eq(txt, tn, "unknown"))
            p->mtype = EXPFMT_UNKNOWN;
        else {
            err_begin(p);
            err_str(p, "invalid metric type ");
            err_quote_str(p, txt, tn);
            return err_end(p);
        }
        return TEXTPARSE_TYPE;
    case T_HELP:
        if (!expfmt_utf8_valid(txt, tn)) {
            err_begin(p);
            err_str(p, "help text ");
            err_quote_str(p, txt, tn);
            err_str(p, " is not a valid utf8 string");
            return err_end(p);
        }
        return TEXTPARSE_HELP;
    default: {
        /* The unit must be a "_<unit>" suffix of the family name. */
        const char *m = p->b + ms;
        size_t mn = me - ms;
        if (tn > 0 && (mn < tn + 1 || memcmp(m + mn - tn, txt, tn) != 0 || m[mn - tn - 1] != '_')) {
            err_begin(p);
            err_str(p, "unit ");
            err_quote_str(p, txt, tn);
            err_str(p, " not a suffix of metric ");
            err_quote_str(p, m, mn);
            return err_end(p);
        }
        return TEXTPARSE_UNIT;
    }
    }
}

static enum textparse_entry om_next(textparse *p)
{
    p->entry_start = p->i;
    p->n_offsets = 0;
    p->n_eoffsets = 0;
    p->has_exemplar = false;
    p->exemplar_value = 0;
    p->exemplar_has_ts = false;
    p->name_start = p->name_end = NONE;
    int t = next_token(p);
    switch (t) {
    case T_EOFWORD:
        if (next_token(p) != T_EOF) return fail_msg(p, "unexpected data after # EOF");
        p->finished = true;
        p->final = TEXTPARSE_END;
        return TEXTPARSE_END;
    case T_EOF:
        return fail_msg(p, "data does not end with # EOF");
    case T_HELP:
    case T_TYPE:
    case T_UNIT:
        return om_meta(p, t);
    case T_BOPEN: {
        if (om_labels(p, false) == TEXTPARSE_ERROR) return TEXTPARSE_ERROR;
        p->series_end = p->i;
        return om_series_end(p, next_token(p));
    }
    case T_MNAME: {
        p->name_start = p->entry_start;
        p->name_end = p->i;
        p->series_end = p->i;
        int t2 = next_token(p);
        if (t2 == T_BOPEN) {
            if (om_labels(p, false) == TEXTPARSE_ERROR) return TEXTPARSE_ERROR;
            p->series_end = p->i;
            t2 = next_token(p);
        }
        return om_series_end(p, t2);
    }
    default:
        return fail_parse(p, "expected a valid start token", NULL, t);
    }
}

/* ---- public API ---------------------------------------------------------- */

void textparse_init(textparse *p, enum textparse_format format, const char *data, size_t len)
{
    memset(p, 0, sizeof *p);
    p->format = format;
    p->b = data ? data : "";
    p->len = data ? len : 0;
    p->blen = format == TEXTPARSE_PROMETHEUS ? p->len + 1 : p->len;
    p->state = S_INIT;
    p->mtype = EXPFMT_UNKNOWN;
    p->name_start = p->name_end = NONE;
}

void textparse_cleanup(textparse *p)
{
    if (!p) return;
    free(p->offsets);
    free(p->eoffsets);
    free(p->err_long);
    p->offsets = p->eoffsets = NULL;
    p->err_long = NULL;
    p->n_offsets = p->cap_offsets = p->n_eoffsets = p->cap_eoffsets = 0;
}

enum textparse_entry textparse_next(textparse *p)
{
    if (p->finished) return p->final;
    enum textparse_entry e = p->format == TEXTPARSE_OPENMETRICS ? om_next(p) : prom_next(p);
    return e;
}

static textparse_str view(const textparse *p, size_t a, size_t b, bool may_escape)
{
    if (a == NONE || b == NONE || a > b) return (textparse_str){p->b, 0, false};
    textparse_str s = {p->b + a, b - a, false};
    if (may_escape && s.len) s.escaped = memchr(s.p, '\\', s.len) != NULL;
    return s;
}

textparse_str textparse_series(const textparse *p)
{
    return view(p, p->entry_start, p->series_end, false);
}

textparse_str textparse_metric_name(const textparse *p)
{
    return view(p, p->name_start, p->name_end, true);
}

size_t textparse_label_count(const textparse *p)
{
    return p->n_offsets / 4;
}

void textparse_label(const textparse *p, size_t i, textparse_str *name, textparse_str *value)
{
    const size_t *o = p->offsets + 4 * i;
    if (name) *name = view(p, o[0], o[1], true);
    if (value) *value = view(p, o[2], o[3], true);
}

/* Go's strconv.ParseFloat in full (hex floats and digit-separating
 * underscores included), as normalizeFloatsInLabelValues calls it. */
static int go_parse_float_full(const char *s, size_t n, double *out)
{
    size_t i = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    bool hex = i + 2 < n && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X');
    if (!hex && !memchr(s, '_', n)) return expfmt_parse_float(s, n, out);

    /* readFloat's grammar, collecting the number without underscores. */
    char small[128];
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf) return -ENOMEM;
    size_t k = 0;
    int rc = -EINVAL;
    size_t j = 0;
    for (; j < i; j++)
        buf[k++] = s[j];
    if (hex) {
        buf[k++] = '0';
        buf[k++] = 'x';
        j += 2;
    }
    bool dot = false, digits = false;
    for (; j < n; j++) {
        char c = s[j];
        if (c == '_') continue;
        if (c == '.') {
            if (dot) break;
            dot = true;
        } else if (is_digit(c) || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))) {
            digits = true;
        } else {
            break;
        }
        buf[k++] = c;
    }
    if (!digits) goto out;
    char expc = hex ? 'p' : 'e';
    if (j < n && (s[j] == expc || s[j] == expc - 32)) {
        buf[k++] = s[j++];
        if (j < n && (s[j] == '+' || s[j] == '-')) buf[k++] = s[j++];
        if (j >= n || !is_digit(s[j])) goto out;
        for (; j < n && (is_digit(s[j]) || s[j] == '_'); j++) {
            if (s[j] != '_') buf[k++] = s[j];
        }
    } else if (hex) {
        goto out;
    }
    if (j != n) goto out;
    /* underscoreOK: each '_' sits between digits (or after the base
     * prefix and before a digit). */
    {
        char saw = '^';
        size_t q = i;
        if (n - i >= 2 && s[i] == '0' &&
            (s[i + 1] == 'x' || s[i + 1] == 'X' || s[i + 1] == 'b' || s[i + 1] == 'B' ||
             s[i + 1] == 'o' || s[i + 1] == 'O')) {
            q = i + 2;
            saw = '0';
        }
        for (; q < n; q++) {
            char c = s[q];
            if (is_digit(c) || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))) {
                saw = '0';
                continue;
            }
            if (c == '_') {
                if (saw != '0') goto out;
                saw = '_';
                continue;
            }
            if (saw == '_') goto out;
            saw = '!';
        }
        if (saw == '_') goto out;
    }
    buf[k] = '\0';
    double v = strtod(buf, NULL);
    *out = v;
    rc = isinf(v) ? -ERANGE : 0;
out:
    if (buf != small) free(buf);
    return rc;
}

bool textparse_label_normalized(const textparse *p, size_t i, char *out, size_t *out_len)
{
    const size_t *o = p->offsets + 4 * i;
    const char *name = p->b + o[0];
    size_t nn = o[1] - o[0];
    if (!((p->mtype == EXPFMT_SUMMARY && bytes_eq(name, nn, "quantile")) ||
          (p->mtype == EXPFMT_HISTOGRAM && bytes_eq(name, nn, "le"))))
        return false;
    const char *v = p->b + o[2];
    size_t vn = o[3] - o[2];
    /* Any escape decodes to '"', '\\' or '\n', which no float contains. */
    if (memchr(v, '\\', vn)) return false;
    double f;
    if (go_parse_float_full(v, vn, &f) != 0) return false;
    size_t n = expfmt_format_om_float(f, out);
    if (n == vn && memcmp(out, v, n) == 0) return false;
    if (out_len) *out_len = n;
    return true;
}

double textparse_value(const textparse *p)
{
    return p->value;
}

bool textparse_timestamp(const textparse *p, int64_t *ms)
{
    if (p->has_ts && ms) *ms = p->ts;
    return p->has_ts;
}

enum expfmt_type textparse_current_type(const textparse *p)
{
    return p->mtype;
}

bool textparse_has_exemplar(const textparse *p)
{
    return p->has_exemplar;
}

size_t textparse_exemplar_label_count(const textparse *p)
{
    return p->has_exemplar ? p->n_eoffsets / 4 : 0;
}

void textparse_exemplar_label(const textparse *p, size_t i, textparse_str *name,
                              textparse_str *value)
{
    const size_t *o = p->eoffsets + 4 * i;
    if (name) *name = view(p, o[0], o[1], false);
    if (value) *value = view(p, o[2], o[3], false);
}

double textparse_exemplar_value(const textparse *p)
{
    return p->exemplar_value;
}

bool textparse_exemplar_timestamp(const textparse *p, int64_t *ms)
{
    if (p->exemplar_has_ts && ms) *ms = p->exemplar_ts;
    return p->has_exemplar && p->exemplar_has_ts;
}

textparse_str textparse_meta_name(const textparse *p)
{
    return view(p, p->name_start, p->name_end, false);
}

textparse_str textparse_meta_text(const textparse *p)
{
    return view(p, p->text_start, p->text_end, p->text_is_help);
}

enum expfmt_type textparse_meta_type(const textparse *p)
{
    return p->mtype;
}

const char *textparse_error(const textparse *p)
{
    return p->err_long ? p->err_long : p->err;
}

size_t textparse_error_line(const textparse *p)
{
    return p->err_line;
}

size_t textparse_error_column(const textparse *p)
{
    return p->err_col;
}

int textparse_unescape(textparse_str s, bool help_text_prometheus, expfmt_sink sink, void *ctx)
{
    /* Go's strings.Replacer: left to right, non-overlapping. */
    size_t run = 0, i = 0;
    while (i + 1 < s.len) {
        if (s.p[i] != '\\') {
            i++;
            continue;
        }
        char c = s.p[i + 1];
        const char *rep = c == '\\'                             ? "\\"
                          : c == 'n'                            ? "\n"
                          : (c == '"' && !help_text_prometheus) ? "\""
                                                                : NULL;
        if (!rep) {
            i++;
            continue;
        }
        int rc = 0;
        if (i > run) rc = sink(ctx, s.p + run, i - run);
        if (!rc) rc = sink(ctx, rep, 1);
        if (rc) return rc;
        i += 2;
        run = i;
    }
    if (s.len > run) return sink(ctx, s.p + run, s.len - run);
    return 0;
}

/* ---- Content-Type ---------------------------------------------------------- */

/* Length of the Unicode white-space rune at s (Go's unicode.IsSpace), or 0. */
static size_t space_at(const unsigned char *s, size_t n)
{
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c == ' ' || (c >= '\t' && c <= '\r')) return 1;
    if (c == 0xC2 && n >= 2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2;
    if (n >= 3) {
        if (c == 0xE1 && s[1] == 0x9A && s[2] == 0x80) return 3; /* U+1680 */
        if (c == 0xE2 && s[1] == 0x80 &&
            ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
            return 3; /* U+2000-200A, U+2028, U+2029, U+202F */
        if (c == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) return 3; /* U+205F */
        if (c == 0xE3 && s[1] == 0x80 && s[2] == 0x80) return 3; /* U+3000 */
    }
    return 0;
}

/* Length of a white-space rune ending at s[n-1], or 0. */
static size_t space_before(const unsigned char *s, size_t n)
{
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        if ((s[n - k] & 0xC0) == 0x80) continue;
        size_t m = space_at(s + n - k, k);
        return m == k ? k : 0;
    }
    return 0;
}

static const unsigned char *skip_space(const unsigned char *s, const unsigned char *e)
{
    size_t m;
    while ((m = space_at(s, (size_t)(e - s))) > 0)
        s += m;
    return s;
}

/* RFC 2045 token characters, as Go's mime.isTokenChar. */
static bool token_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

static const unsigned char *skip_token(const unsigned char *s, const unsigned char *e)
{
    while (s < e && token_char(*s))
        s++;
    return s;
}

/* One "; key=value" parameter, as Go's consumeMediaParam. Returns false
 * when there is none; else sets the key and the rest. */
static bool media_param(const unsigned char *v, const unsigned char *e, const unsigned char **key,
                        size_t *keylen, const unsigned char **rest)
{
    const unsigned char *r = skip_space(v, e);
    if (r == e || *r != ';') return false;
    r = skip_space(r + 1, e);
    const unsigned char *k = r;
    r = skip_token(r, e);
    if (r == k) return false;
    *key = k;
    *keylen = (size_t)(r - k);
    r = skip_space(r, e);
    if (r == e || *r != '=') return false;
    r = skip_space(r + 1, e);
    if (r == e) return false;
    if (*r != '"') {
        const unsigned char *t = skip_token(r, e);
        if (t == r) return false;
        *rest = t;
        return true;
    }
    for (const unsigned char *q = r + 1; q < e; q++) {
        if (*q == '"') {
            *rest = q + 1;
            return true;
        }
        if (*q == '\\' && q + 1 < e && !token_char(q[1])) {
            q++;
            continue;
        }
        if (*q == '\r' || *q == '\n') return false;
    }
    return false;
}

static bool eq_nocase(const unsigned char *s, size_t n, const char *lit)
{
    if (n != strlen(lit)) return false;
    for (size_t k = 0; k < n; k++) {
        unsigned char c = s[k];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)lit[k]) return false;
    }
    return true;
}

int textparse_media_type(const char *content_type, const char **type, size_t *type_len)
{
    if (!content_type || !*content_type) return -EINVAL;
    const unsigned char *s = (const unsigned char *)content_type;
    const unsigned char *e = s + strlen(content_type);
    const unsigned char *semi = memchr(s, ';', (size_t)(e - s));
    if (!semi) semi = e;

    /* The media type, trimmed. */
    const unsigned char *a = skip_space(s, semi), *b = semi;
    size_t m;
    while (b > a && (m = space_before(a, (size_t)(b - a))) > 0)
        b -= m;
    /* type "/" subtype, both tokens (mime.ParseMediaType's checkMediaTypeDisposition). */
    const unsigned char *t = skip_token(a, b);
    if (t == a) return -EINVAL;
    if (t < b) {
        if (*t != '/') return -EINVAL;
        const unsigned char *u = skip_token(t + 1, b);
        if (u == t + 1 || u != b) return -EINVAL;
    }

    /* Parameters must parse (mime.ParseMediaType fails otherwise), and no
     * name may repeat. */
    const unsigned char *v = semi;
    while (v < e) {
        v = skip_space(v, e);
        if (v == e) break;
        const unsigned char *key, *rest;
        size_t keylen;
        if (!media_param(v, e, &key, &keylen, &rest)) {
            /* A trailing ";" is fine. */
            const unsigned char *t2 = skip_space(v, e);
            if (t2 < e && *t2 == ';' && skip_space(t2 + 1, e) == e) break;
            return -EINVAL;
        }
        const unsigned char *w = semi;
        while (w < v) {
            const unsigned char *k2, *r2;
            size_t k2len;
            w = skip_space(w, e);
            if (w >= v || !media_param(w, e, &k2, &k2len, &r2)) break;
            if (k2len == keylen) {
                bool same = true;
                for (size_t q = 0; q < keylen && same; q++) {
                    unsigned char x = key[q], y = k2[q];
                    if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
                    if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
                    same = x == y;
                }
                if (same) return -EINVAL;
            }
            w = r2;
        }
        v = rest;
    }
    *type = (const char *)a;
    *type_len = (size_t)(b - a);
    return 0;
}

int textparse_format_from_content_type(const char *content_type, enum textparse_format *format)
{
    const char *t;
    size_t n;
    if (textparse_media_type(content_type, &t, &n) < 0) return -EINVAL;
    const unsigned char *a = (const unsigned char *)t;
    if (eq_nocase(a, n, "text/plain"))
        *format = TEXTPARSE_PROMETHEUS;
    else if (eq_nocase(a, n, "application/openmetrics-text"))
        *format = TEXTPARSE_OPENMETRICS;
    else
        return -EINVAL;
    return 0;
}
