/* template: Go text/template (the subset alert rules use) with Prometheus's
 * template functions. See template.h.
 *
 * Structure: a lexer that turns the whole text into an item array (Go's
 * text/template/parse lex.go rules, trim markers, comments), a recursive
 * descent parser into an arena-allocated tree (parse.go), and a tree walker
 * (exec.go). Parse and execution errors longjmp to the entry point; every
 * allocation made while expanding lives in the state's arena or in its
 * cleanup lists, so a jump leaks nothing. */
#include "template.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "expfmt.h"
#include "arena.h"
#include "mem.h"
#include "regex.h"
#include "strutil.h"

/* ---- limits ------------------------------------------------------------- */

#define TMPL_MAX_OUTPUT (1024 * 1024)     /* bytes of output */
#define TMPL_MAX_RANGE 100000             /* range iterations per expansion */
#define TMPL_MAX_STRING (1024 * 1024)     /* bytes in one string value */
#define TMPL_MAX_ARENA (64 * 1024 * 1024) /* parse tree and values */
#define TMPL_MAX_PARSE_DEPTH 200          /* nested control/paren structures */
#define TMPL_MAX_EXEC_DEPTH 200           /* nested {{template}} calls */
#define TMPL_MAX_EXEC_NEST 500  /* nested blocks, calls and parens while executing (C stack) */
#define TMPL_MAX_STEPS 10000000 /* evaluated nodes (stops exponential templates) */
#define TMPL_MAX_SCRATCH                                                                           \
    TMPL_MAX_ARENA /* a function's working buffer; results over TMPL_MAX_STRING fail */

/* Prometheus's prefix for alert templates. */
static const char ALERT_PREFIX[] = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}"
                                   "{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/* ---- lexer -------------------------------------------------------------- */

enum item_type {
    I_ERROR,
    I_EOF,
    I_TEXT,
    I_LEFT_DELIM,
    I_RIGHT_DELIM,
    I_SPACE,
    I_BOOL,
    I_CHAR,          /* printable ASCII character inside an action (',' etc.) */
    I_CHAR_CONSTANT, /* 'a' */
    I_NUMBER,
    I_STRING,
    I_RAW_STRING,
    I_IDENTIFIER,
    I_FIELD,
    I_VARIABLE,
    I_DOT,
    I_PIPE,
    I_LEFT_PAREN,
    I_RIGHT_PAREN,
    I_DECLARE,
    I_ASSIGN,
    I_NIL,
    /* keywords */
    I_BLOCK,
    I_BREAK,
    I_CONTINUE,
    I_DEFINE,
    I_ELSE,
    I_END,
    I_IF,
    I_RANGE,
    I_TEMPLATE,
    I_WITH,
};

typedef struct item {
    enum item_type typ;
    size_t pos; /* byte offset in the text */
    const char *val;
    size_t len;
    int line; /* line the item starts on */
} item;

typedef struct lexer {
    const char *in;
    size_t n;
    size_t pos, start;
    int line, start_line;
    int paren_depth;
    bool inside; /* in an action */
    item *items;
    size_t nitems, cap;
    bool done;
} lexer;

static bool is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static uint32_t decode_rune(const char *s, size_t n, size_t *len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = u[0] < 0x80 ? 1 : u[0] < 0xe0 ? 2 : u[0] < 0xf0 ? 3 : 4;
    if (k > n || (u[0] < 0xc0 && u[0] >= 0x80)) {
        *len = 1;
        return 0xfffd;
    }
    uint32_t r = k == 1 ? u[0] : (uint32_t)(u[0] & (0x7f >> k));
    for (size_t i = 1; i < k; i++) {
        if ((u[i] & 0xc0) != 0x80) {
            *len = 1;
            return 0xfffd;
        }
        r = (r << 6) | (u[i] & 0x3f);
    }
    *len = k;
    return r;
}

/* An approximation of unicode.IsLetter || unicode.IsDigit for non-ASCII
 * runes: everything but the Latin-1 and general punctuation, symbol and
 * space blocks. */
static bool rune_is_alnum(uint32_t r)
{
    if (r < 0x80)
        return r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') ||
               (r >= '0' && r <= '9');
    if (r < 0xc0) return r == 0xaa || r == 0xb5 || r == 0xba;
    if (r == 0xd7 || r == 0xf7 || r == 0xfffd || r == 0xfeff) return false;
    if (r >= 0x2000 && r <= 0x2bff) return false; /* punctuation, symbols, arrows */
    if (r >= 0x3000 && r <= 0x303f) return false;
    if (r >= 0xe000 && r <= 0xf8ff) return false;
    return true;
}

/* Length of the identifier character at s (0 if there is none). */
static size_t alnum_len(const char *s, size_t n)
{
    if (n == 0) return 0;
    size_t k;
    uint32_t r = decode_rune(s, n, &k);
    return rune_is_alnum(r) ? k : 0;
}

static void lex_emit(lexer *l, enum item_type t)
{
    if (l->nitems == l->cap) l->items = mem_grow(l->items, sizeof(item), l->nitems + 1, &l->cap);
    item *it = &l->items[l->nitems++];
    it->typ = t;
    it->pos = l->start;
    it->val = l->in + l->start;
    it->len = l->pos - l->start;
    it->line = l->start_line;
    for (size_t i = l->start; i < l->pos; i++)
        if (l->in[i] == '\n') l->line++;
    l->start = l->pos;
    l->start_line = l->line;
}

static void lex_ignore(lexer *l)
{
    for (size_t i = l->start; i < l->pos; i++)
        if (l->in[i] == '\n') l->line++;
    l->start = l->pos;
    l->start_line = l->line;
}

/* Ends the item array with an error item; the message goes to store. */
static void lex_error(lexer *l, const char *msg, buf *store)
{
    if (l->nitems == l->cap) l->items = mem_grow(l->items, sizeof(item), l->nitems + 1, &l->cap);
    item *it = &l->items[l->nitems++];
    it->typ = I_ERROR;
    it->pos = l->start;
    it->val = NULL; /* message in store */
    it->len = 0;
    it->line = l->start_line;
    buf_puts(store, msg);
    l->done = true;
}

static bool has_left_trim(const char *s, size_t n)
{
    return n >= 2 && s[0] == '-' && is_space((unsigned char)s[1]);
}

static bool has_right_trim(const char *s, size_t n)
{
    return n >= 2 && is_space((unsigned char)s[0]) && s[1] == '-';
}

static bool at_right_delim(lexer *l, bool *trim)
{
    const char *s = l->in + l->pos;
    size_t n = l->n - l->pos;
    if (has_right_trim(s, n) && n >= 4 && s[2] == '}' && s[3] == '}') {
        *trim = true;
        return true;
    }
    if (n >= 2 && s[0] == '}' && s[1] == '}') {
        *trim = false;
        return true;
    }
    return false;
}

static bool at_terminator(lexer *l)
{
    if (l->pos >= l->n) return true;
    unsigned char c = (unsigned char)l->in[l->pos];
    if (is_space(c)) return true;
    switch (c) {
    case '.':
    case ',':
    case '|':
    case ':':
    case ')':
    case '(':
        return true;
    }
    return l->n - l->pos >= 2 && c == '}' && l->in[l->pos + 1] == '}';
}

/* Go's %#U for a rune starting at s. */
static void fmt_rune_u(buf *b, const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[0];
    uint32_t r = c;
    size_t k = 1;
    if (c >= 0xc0 && c < 0xe0 && n >= 2)
        r = c & 0x1f, k = 2;
    else if (c >= 0xe0 && c < 0xf0 && n >= 3)
        r = c & 0x0f, k = 3;
    else if (c >= 0xf0 && n >= 4)
        r = c & 0x07, k = 4;
    else if (c >= 0x80)
        r = 0xfffd, k = 0;
    for (size_t i = 1; i < k; i++)
        r = (r << 6) | ((unsigned char)s[i] & 0x3f);
    buf_printf(b, "U+%04" PRIX32, r);
    /* printable runes are shown: ASCII graphic characters and letters */
    if ((r > 0x20 && r < 0x7f) || (r >= 0xa1 && r != 0xad && r < 0x2000)) {
        buf_puts(b, " '");
        if (k) buf_append(b, s, k);
        buf_putc(b, '\'');
    }
}

static size_t rune_len(const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[0];
    size_t k = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    return k > n ? n : k;
}

/* Start of the UTF-8 character before offset p (p > 0). */
static size_t prev_rune_start(const char *s, size_t p)
{
    size_t k = p - 1;
    while (k > 0 && p - k < 4 && ((unsigned char)s[k] & 0xc0) == 0x80)
        k--;
    return k;
}

/* Scans a Go number (lex.go scanNumber); false on bad syntax. */
static bool scan_number(lexer *l)
{
    const char *s = l->in;
    size_t n = l->n;
    if (l->pos < n && (s[l->pos] == '+' || s[l->pos] == '-')) l->pos++;
    const char *digits = "0123456789_";
    int base = 10;
    if (l->pos + 1 < n && s[l->pos] == '0') {
        char c = s[l->pos + 1];
        if (c == 'x' || c == 'X')
            l->pos += 2, digits = "0123456789abcdefABCDEF_", base = 16;
        else if (c == 'o' || c == 'O')
            l->pos += 2, digits = "01234567_", base = 8;
        else if (c == 'b' || c == 'B')
            l->pos += 2, digits = "01_", base = 2;
    }
    while (l->pos < n && strchr(digits, s[l->pos]) && s[l->pos])
        l->pos++;
    if (l->pos < n && s[l->pos] == '.') {
        l->pos++;
        while (l->pos < n && strchr(digits, s[l->pos]) && s[l->pos])
            l->pos++;
    }
    if (base == 10 && l->pos < n && (s[l->pos] == 'e' || s[l->pos] == 'E')) {
        l->pos++;
        if (l->pos < n && (s[l->pos] == '+' || s[l->pos] == '-')) l->pos++;
        while (l->pos < n && s[l->pos] >= '0' && s[l->pos] <= '9')
            l->pos++;
    }
    if (base == 16 && l->pos < n && (s[l->pos] == 'p' || s[l->pos] == 'P')) {
        l->pos++;
        if (l->pos < n && (s[l->pos] == '+' || s[l->pos] == '-')) l->pos++;
        while (l->pos < n && s[l->pos] >= '0' && s[l->pos] <= '9')
            l->pos++;
    }
    if (l->pos < n && s[l->pos] == 'i') l->pos++;
    if (alnum_len(s + l->pos, n - l->pos) > 0) {
        l->pos += alnum_len(s + l->pos, n - l->pos);
        return false;
    }
    return true;
}

static const struct {
    const char *w;
    enum item_type t;
} keywords[] = {
    {"block", I_BLOCK},
    {"break", I_BREAK},
    {"continue", I_CONTINUE},
    {"define", I_DEFINE},
    {"else", I_ELSE},
    {"end", I_END},
    {"if", I_IF},
    {"range", I_RANGE},
    {"nil", I_NIL},
    {"template", I_TEMPLATE},
    {"with", I_WITH},
};

/* Lexes the whole input; an I_ERROR item (message appended to errmsg) or
 * I_EOF ends the array. */
static void lex_all(lexer *l, buf *errmsg)
{
    char tmp[256];
    while (!l->done) {
        if (!l->inside) {
            /* text up to the next "{{" */
            const char *p = NULL;
            for (size_t i = l->pos; i + 1 < l->n; i++)
                if (l->in[i] == '{' && l->in[i + 1] == '{') {
                    p = l->in + i;
                    break;
                }
            if (!p) {
                l->pos = l->n;
                if (l->pos > l->start) lex_emit(l, I_TEXT);
                lex_emit(l, I_EOF);
                l->done = true;
                break;
            }
            size_t delim = (size_t)(p - l->in);
            bool trim = has_left_trim(l->in + delim + 2, l->n - delim - 2);
            size_t text_end = delim;
            if (trim)
                while (text_end > l->start && is_space((unsigned char)l->in[text_end - 1]))
                    text_end--;
            l->pos = text_end;
            if (l->pos > l->start) lex_emit(l, I_TEXT);
            l->pos = delim;
            lex_ignore(l);
            /* comment? */
            size_t after = delim + 2 + (trim ? 2 : 0);
            if (after + 1 < l->n && l->in[after] == '/' && l->in[after + 1] == '*') {
                l->pos = after;
                size_t i;
                const char *end = NULL;
                for (i = after + 2; i + 1 < l->n; i++)
                    if (l->in[i] == '*' && l->in[i + 1] == '/') {
                        end = l->in + i;
                        break;
                    }
                if (!end) {
                    lex_error(l, "unclosed comment", errmsg);
                    break;
                }
                l->pos = i + 2;
                bool rtrim = false;
                if (has_right_trim(l->in + l->pos, l->n - l->pos) && l->n - l->pos >= 4 &&
                    l->in[l->pos + 2] == '}' && l->in[l->pos + 3] == '}') {
                    rtrim = true;
                    l->pos += 4;
                } else if (l->n - l->pos >= 2 && l->in[l->pos] == '}' && l->in[l->pos + 1] == '}') {
                    l->pos += 2;
                } else {
                    lex_error(l, "comment ends before closing delimiter", errmsg);
                    break;
                }
                if (rtrim)
                    while (l->pos < l->n && is_space((unsigned char)l->in[l->pos]))
                        l->pos++;
                lex_ignore(l);
                continue;
            }
            l->pos = delim + 2;
            lex_emit(l, I_LEFT_DELIM);
            if (trim) {
                l->pos += 2; /* the '-' and the space after it */
                lex_ignore(l);
            }
            l->paren_depth = 0;
            l->inside = true;
            continue;
        }
        /* inside an action */
        bool trim;
        if (at_right_delim(l, &trim)) {
            if (l->paren_depth > 0) {
                lex_error(l, "unclosed left paren", errmsg);
                break;
            }
            if (trim) {
                l->pos += 2;
                lex_ignore(l);
            }
            l->pos += 2;
            lex_emit(l, I_RIGHT_DELIM);
            if (trim) {
                while (l->pos < l->n && is_space((unsigned char)l->in[l->pos]))
                    l->pos++;
                lex_ignore(l);
            }
            l->inside = false;
            continue;
        }
        if (l->pos >= l->n) {
            lex_error(l, "unclosed action", errmsg);
            break;
        }
        unsigned char c = (unsigned char)l->in[l->pos];
        if (is_space(c)) {
            size_t nsp = 0;
            while (l->pos < l->n && is_space((unsigned char)l->in[l->pos]))
                l->pos++, nsp++;
            /* a trim-marked closing delimiter: " -}}" */
            if (has_right_trim(l->in + l->pos - 1, l->n - l->pos + 1) && l->n - l->pos >= 3 &&
                l->in[l->pos + 1] == '}' && l->in[l->pos + 2] == '}') {
                l->pos--;
                if (nsp == 1) continue;
            }
            lex_emit(l, I_SPACE);
            continue;
        }
        l->pos++;
        switch (c) {
        case '=':
            lex_emit(l, I_ASSIGN);
            continue;
        case ':':
            if (l->pos >= l->n || l->in[l->pos] != '=') {
                lex_error(l, "expected :=", errmsg);
                continue;
            }
            l->pos++;
            lex_emit(l, I_DECLARE);
            continue;
        case '|':
            lex_emit(l, I_PIPE);
            continue;
        case '"':
        case '`': {
            bool raw = c == '`';
            for (;;) {
                if (l->pos >= l->n) {
                    lex_error(l,
                              raw ? "unterminated raw quoted string" : "unterminated quoted string",
                              errmsg);
                    break;
                }
                char d = l->in[l->pos++];
                if (!raw && d == '\\' && l->pos < l->n && l->in[l->pos] != '\n') {
                    l->pos++;
                    continue;
                }
                if (!raw && (d == '\n' || d == '\\')) {
                    lex_error(l, "unterminated quoted string", errmsg);
                    break;
                }
                if (d == (char)c) break;
            }
            if (!l->done) lex_emit(l, raw ? I_RAW_STRING : I_STRING);
            continue;
        }
        case '\'':
            for (;;) {
                if (l->pos >= l->n || l->in[l->pos] == '\n') {
                    lex_error(l, "unterminated character constant", errmsg);
                    break;
                }
                char d = l->in[l->pos++];
                if (d == '\\' && l->pos < l->n && l->in[l->pos] != '\n') {
                    l->pos++;
                    continue;
                }
                if (d == '\'') break;
            }
            if (!l->done) lex_emit(l, I_CHAR_CONSTANT);
            continue;
        case '$':
        case '.': {
            if (c == '.' && l->pos < l->n && l->in[l->pos] >= '0' && l->in[l->pos] <= '9') {
                l->pos--;
                goto number;
            }
            if (at_terminator(l)) {
                lex_emit(l, c == '.' ? I_DOT : I_VARIABLE);
                continue;
            }
            for (size_t k; (k = alnum_len(l->in + l->pos, l->n - l->pos)) > 0;)
                l->pos += k;
            if (!at_terminator(l)) {
                buf b;
                buf_init(&b, 256);
                buf_puts(&b, "bad character ");
                fmt_rune_u(&b, l->in + l->pos, l->n - l->pos);
                snprintf(tmp, sizeof tmp, "%s", buf_cstr(&b));
                buf_cleanup(&b);
                lex_error(l, tmp, errmsg);
                continue;
            }
            lex_emit(l, c == '.' ? I_FIELD : I_VARIABLE);
            continue;
        }
        case '(':
            lex_emit(l, I_LEFT_PAREN);
            l->paren_depth++;
            continue;
        case ')':
            /* Go emits the paren before the error, so the parser reports it */
            lex_emit(l, I_RIGHT_PAREN);
            l->paren_depth--;
            if (l->paren_depth < 0) lex_error(l, "unexpected right paren", errmsg);
            continue;
        default:
            break;
        }
        if (c == '+' || c == '-' || (c >= '0' && c <= '9')) {
            l->pos--;
        number:
            if (!scan_number(l)) {
                buf b;
                buf_init(&b, 256);
                buf_puts(&b, "bad number syntax: ");
                expfmt_quote_go(buf_sink, &b, l->in + l->start, l->pos - l->start);
                snprintf(tmp, sizeof tmp, "%s", buf_cstr(&b));
                buf_cleanup(&b);
                lex_error(l, tmp, errmsg);
                continue;
            }
            lex_emit(l, I_NUMBER);
            continue;
        }
        if (alnum_len(l->in + l->pos - 1, l->n - l->pos + 1) > 0) {
            l->pos--;
            for (size_t k; (k = alnum_len(l->in + l->pos, l->n - l->pos)) > 0;)
                l->pos += k;
            if (!at_terminator(l)) {
                buf b;
                buf_init(&b, 256);
                buf_puts(&b, "bad character ");
                fmt_rune_u(&b, l->in + l->pos, l->n - l->pos);
                snprintf(tmp, sizeof tmp, "%s", buf_cstr(&b));
                buf_cleanup(&b);
                lex_error(l, tmp, errmsg);
                continue;
            }
            const char *w = l->in + l->start;
            size_t wl = l->pos - l->start;
            enum item_type t = I_IDENTIFIER;
            for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++)
                if (strlen(keywords[k].w) == wl && memcmp(keywords[k].w, w, wl) == 0)
                    t = keywords[k].t;
            if ((wl == 4 && memcmp(w, "true", 4) == 0) || (wl == 5 && memcmp(w, "false", 5) == 0))
                t = I_BOOL;
            lex_emit(l, t);
            continue;
        }
        if (c < 0x80 && c > 0x20 && c < 0x7f) {
            lex_emit(l, I_CHAR);
            continue;
        }
        l->pos--;
        buf b;
        buf_init(&b, 256);
        buf_puts(&b, "unrecognized character in action: ");
        fmt_rune_u(&b, l->in + l->pos, l->n - l->pos);
        snprintf(tmp, sizeof tmp, "%s", buf_cstr(&b));
        buf_cleanup(&b);
        l->pos += rune_len(l->in + l->pos, l->n - l->pos);
        lex_error(l, tmp, errmsg);
    }
}

/* ---- parse tree ---------------------------------------------------------- */

enum node_type {
    N_TEXT,
    N_ACTION,
    N_IF,
    N_RANGE,
    N_WITH,
    N_TEMPLATE,
    N_BREAK,
    N_CONTINUE,
    N_LIST,
    N_PIPE,
    N_COMMAND,
    N_FIELD,      /* .a.b */
    N_VARIABLE,   /* $x.a.b */
    N_CHAIN,      /* (pipe).a.b */
    N_IDENTIFIER, /* function name */
    N_DOT,
    N_NIL,
    N_BOOL,
    N_NUMBER,
    N_STRING,
    /* parse-only markers */
    N_END,
    N_ELSE,
};

typedef struct node node;

typedef struct node_list {
    node **v;
    size_t n, cap;
} node_list;

typedef struct str {
    const char *p;
    size_t n;
} str;

struct node {
    enum node_type t;
    size_t pos;
    int line;
    union {
        str text;   /* N_TEXT */
        node *pipe; /* N_ACTION */
        struct {    /* N_IF, N_RANGE, N_WITH */
            node *pipe;
            node_list *list, *else_list;
        } branch;
        struct { /* N_TEMPLATE */
            str name;
            node *pipe; /* may be NULL */
        } tmpl;
        node_list list; /* N_LIST */
        struct {        /* N_PIPE */
            bool is_assign;
            node_list decl; /* N_VARIABLE */
            node_list cmds; /* N_COMMAND */
        } p;
        node_list args; /* N_COMMAND */
        struct {        /* N_FIELD, N_VARIABLE, N_CHAIN: idents (a variable's first is $x) */
            str *ident;
            size_t nident;
            node *chained; /* N_CHAIN: the operand */
        } f;
        str ident; /* N_IDENTIFIER */
        bool b;    /* N_BOOL */
        struct {   /* N_NUMBER */
            str text;
            bool is_int, is_float;
            int64_t i;
            double f;
        } num;
        struct { /* N_STRING */
            str quoted, text;
        } s;
    } u;
};

typedef struct tdef {
    str name;
    node_list *list;
} tdef;

typedef struct tmpl_state tmpl_state;

typedef struct parser {
    tmpl_state *st;
    const char *name;
    item *items;
    size_t nitems, i;
    str *vars;
    size_t nvars, vcap;
    int range_depth;
    int depth;
} parser;

/* ---- values --------------------------------------------------------------- */

enum vkind {
    V_INVALID, /* no value (missing key of an interface map, nil data) */
    V_NIL,     /* untyped nil */
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STRING,
    V_LABELS,   /* map[string]string */
    V_QUERY,    /* template.queryResult */
    V_SAMPLE,   /* *template.sample */
    V_MAP,      /* map[string]interface {} (args) */
    V_TIME,     /* *time.Time, ns since the epoch, UTC */
    V_DURATION, /* *time.Duration, ns */
    V_DATA,     /* the alert data struct */
};

typedef struct tsample {
    const labels *ls;
    double value;
} tsample;

typedef struct qres {
    tsample **v;
    size_t n;
} qres;

typedef struct val val;

typedef struct amap {
    size_t n;
    val *v; /* values of arg0 .. arg<n-1> */
} amap;

struct val {
    enum vkind k;
    union {
        bool b;
        int64_t i;
        double f;
        str s;
        const labels *ls;
        qres *q;
        tsample *smp;
        amap *m;
    } u;
};

typedef struct var {
    str name;
    val v;
} var;

enum walk_ctl { WALK_OK, WALK_BREAK, WALK_CONTINUE };

struct tmpl_state {
    const char *name;
    const char *text;
    size_t len;
    arena a;
    jmp_buf jb;
    buf *err;
    buf lexmsg; /* the lexer's error message */
    /* parse results */
    node_list *root;
    tdef *defs;
    size_t ndefs, dcap;
    /* execution */
    const template_data *d;
    buf out;
    var *vars;
    size_t nvars, vcap;
    node *at;
    const char *cur_name; /* the template being executed */
    size_t vbase;         /* first variable visible in the current template */
    buf fnerr;            /* a function's error message */
    size_t range_iters;
    size_t steps;
    int exec_depth;
    int nest;                   /* recursion depth of the executor */
    template_query_result *qrs; /* to clean up */
    size_t nqrs, qcap;
    regex **res;
    size_t nres, rcap;
};

static _Noreturn void fail(tmpl_state *st)
{
    longjmp(st->jb, 1);
}

static void *st_alloc(tmpl_state *st, size_t n);

static _Noreturn void st_oom(tmpl_state *st)
{
    buf_printf(st->err, "template: %s: memory limit exceeded", st->name);
    fail(st);
}

static void *st_alloc(tmpl_state *st, size_t n)
{
    void *p = arena_calloc(&st->a, n ? n : 1);
    if (!p) st_oom(st);
    return p;
}

static str st_strdup(tmpl_state *st, const char *p, size_t n)
{
    char *d = arena_strndup(&st->a, p, n);
    if (!d) st_oom(st);
    return (str){d, n};
}

static void list_add(tmpl_state *st, node_list *l, node *n)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        node **v = st_alloc(st, nc * sizeof *v);
        if (l->n) memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = nc;
    }
    l->v[l->n++] = n;
}

static bool str_eq(str a, const char *b)
{
    return a.n == strlen(b) && memcmp(a.p, b, a.n) == 0;
}

/* ---- parser ---------------------------------------------------------------- */

static _Noreturn void perr(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static _Noreturn void perr(parser *p, const char *fmt, ...)
{
    item *it = &p->items[p->i ? p->i - 1 : 0];
    buf_printf(p->st->err, "template: %s:%d: ", p->name, it->line);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(p->st->err, fmt, ap);
    va_end(ap);
    fail(p->st);
}

static item *p_next(parser *p)
{
    item *it = &p->items[p->i];
    if (it->typ != I_EOF && it->typ != I_ERROR)
        p->i++;
    else
        p->i++; /* stays at the terminator through backup */
    if (it->typ == I_ERROR) {
        buf_printf(p->st->err, "template: %s:%d: %s", p->name, it->line, buf_cstr(&p->st->lexmsg));
        fail(p->st);
    }
    return it;
}

static void p_backup(parser *p)
{
    p->i--;
}

static item *p_peek(parser *p)
{
    item *it = p_next(p);
    p_backup(p);
    return it;
}

static item *p_next_nonspace(parser *p)
{
    item *it;
    do
        it = p_next(p);
    while (it->typ == I_SPACE);
    return it;
}

static item *p_peek_nonspace(parser *p)
{
    item *it = p_next_nonspace(p);
    p_backup(p);
    return it;
}

/* Go's item.String() for messages. */
static void item_desc(buf *b, const item *it)
{
    if (it->typ == I_EOF) {
        buf_puts(b, "EOF");
        return;
    }
    if (it->typ >= I_BLOCK) {
        buf_putc(b, '<');
        buf_append(b, it->val, it->len);
        buf_putc(b, '>');
        return;
    }
    if (it->len > 10) {
        /* %.10q: quote the first 10 runes */
        size_t k = 0, runes = 0;
        while (k < it->len && runes < 10)
            k += rune_len(it->val + k, it->len - k), runes++;
        expfmt_quote_go(buf_sink, b, it->val, k);
        buf_puts(b, "...");
        return;
    }
    expfmt_quote_go(buf_sink, b, it->val, it->len);
}

static _Noreturn void p_unexpected(parser *p, const item *it, const char *context)
{
    buf d;
    buf_init(&d, 256);
    item_desc(&d, it);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s", buf_cstr(&d));
    buf_cleanup(&d);
    perr(p, "unexpected %s in %s", tmp, context);
}

static item *p_expect(parser *p, enum item_type t, const char *context)
{
    item *it = p_next_nonspace(p);
    if (it->typ != t) p_unexpected(p, it, context);
    return it;
}

static node *new_node(parser *p, enum node_type t, size_t pos, int line)
{
    node *n = st_alloc(p->st, sizeof *n);
    n->t = t;
    n->pos = pos;
    n->line = line;
    return n;
}

static node *p_pipeline(parser *p, const char *context, enum item_type end);
static node_list *p_item_list(parser *p, node **end);

static void p_use_var(parser *p, const item *it)
{
    /* the variable's name is up to the first '.' (lexed separately anyway) */
    for (size_t k = p->nvars; k-- > 0;)
        if (p->vars[k].n == it->len && memcmp(p->vars[k].p, it->val, it->len) == 0) return;
    char tmp[300];
    buf q;
    buf_init(&q, 256);
    expfmt_quote_go(buf_sink, &q, it->val, it->len);
    snprintf(tmp, sizeof tmp, "%s", buf_cstr(&q));
    buf_cleanup(&q);
    perr(p, "undefined variable %s", tmp);
}

static void p_push_var(parser *p, const char *s, size_t n)
{
    if (p->nvars == p->vcap) {
        size_t nc = p->vcap ? p->vcap * 2 : 8;
        str *v = st_alloc(p->st, nc * sizeof *v);
        if (p->nvars) memcpy(v, p->vars, p->nvars * sizeof *v);
        p->vars = v;
        p->vcap = nc;
    }
    p->vars[p->nvars++] = (str){s, n};
}

static bool has_function(const char *name, size_t n);

/* Parses a Go number literal (the text the lexer accepted) into node fields.
 * Returns false for illegal syntax. */
static bool parse_number(node *nd, const char *s, size_t n, bool is_char)
{
    char tmp[128];
    nd->u.num.text = (str){s, n};
    if (is_char) {
        buf out;
        buf_init(&out, 64);
        size_t end = 0;
        int rc = strutil_go_unquote(s, n, STRUTIL_UNQUOTE_GO, &out, &end, NULL);
        if (rc != 0 || end != n || out.len == 0) {
            buf_cleanup(&out);
            return false;
        }
        const unsigned char *u = (const unsigned char *)out.data;
        uint32_t r = u[0];
        size_t k = rune_len(out.data, out.len);
        if (k > 1) {
            r = u[0] & (0xff >> (k + 1));
            for (size_t i = 1; i < k; i++)
                r = (r << 6) | (u[i] & 0x3f);
        }
        buf_cleanup(&out);
        nd->u.num.is_int = true;
        nd->u.num.i = r;
        nd->u.num.is_float = true;
        nd->u.num.f = r;
        return true;
    }
    if (n == 0 || n >= sizeof tmp) return false;
    if (s[n - 1] == 'i') return false; /* complex numbers are not supported */
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '_')
            tmp[k++] = s[i];
        else if (i == 0 || i + 1 == n)
            return false;
    tmp[k] = 0;
    const char *t = tmp;
    bool neg = false;
    if (*t == '+' || *t == '-') neg = *t == '-', t++;
    int base = 10;
    const char *digits = t;
    if (t[0] == '0' && (t[1] == 'x' || t[1] == 'X'))
        base = 16, digits = t + 2;
    else if (t[0] == '0' && (t[1] == 'o' || t[1] == 'O'))
        base = 8, digits = t + 2;
    else if (t[0] == '0' && (t[1] == 'b' || t[1] == 'B'))
        base = 2, digits = t + 2;
    else if (t[0] == '0' && t[1] >= '0' && t[1] <= '9')
        base = 8, digits = t + 1;
    bool floaty = base == 16 ? strpbrk(digits, ".pP") != NULL : strpbrk(digits, ".eE") != NULL;
    if (!floaty && *digits) {
        errno = 0;
        char *e;
        unsigned long long u = strtoull(digits, &e, base);
        if (*e == 0 && errno == 0) {
            if ((!neg && u <= INT64_MAX) || (neg && u <= (unsigned long long)INT64_MAX + 1)) {
                nd->u.num.is_int = true;
                nd->u.num.i = neg ? (int64_t)(0 - u) : (int64_t)u;
            }
            nd->u.num.is_float = true;
            nd->u.num.f = neg ? -(double)u : (double)u;
            return true;
        }
        if (*e != 0 && base != 8) return false;
        if (*e != 0) return false;
    }
    if (base == 8 || base == 2) return false;
    double f;
    if (base == 16) {
        /* hexadecimal floats need a 'p' exponent (Go's syntax) */
        if (!strpbrk(digits, "pP")) return false;
        char *e;
        f = strtod(tmp, &e);
        if (*e != 0) return false;
    } else if (expfmt_parse_float(tmp, k, &f) != 0) {
        return false;
    }
    nd->u.num.is_float = true;
    nd->u.num.f = f;
    if (f == trunc(f) && fabs(f) < 9.2e18) {
        nd->u.num.is_int = true;
        nd->u.num.i = (int64_t)f;
    }
    return true;
}

static node *p_term(parser *p)
{
    item *it = p_next_nonspace(p);
    node *n;
    switch (it->typ) {
    case I_IDENTIFIER:
        if (!has_function(it->val, it->len)) {
            char tmp[300];
            buf q;
            buf_init(&q, 256);
            expfmt_quote_go(buf_sink, &q, it->val, it->len);
            snprintf(tmp, sizeof tmp, "%s", buf_cstr(&q));
            buf_cleanup(&q);
            perr(p, "function %s not defined", tmp);
        }
        n = new_node(p, N_IDENTIFIER, it->pos, it->line);
        n->u.ident = (str){it->val, it->len};
        return n;
    case I_DOT:
        return new_node(p, N_DOT, it->pos, it->line);
    case I_NIL:
        return new_node(p, N_NIL, it->pos, it->line);
    case I_VARIABLE:
        p_use_var(p, it);
        n = new_node(p, N_VARIABLE, it->pos, it->line);
        n->u.f.ident = st_alloc(p->st, sizeof(str));
        n->u.f.ident[0] = (str){it->val, it->len};
        n->u.f.nident = 1;
        return n;
    case I_FIELD:
        n = new_node(p, N_FIELD, it->pos, it->line);
        n->u.f.ident = st_alloc(p->st, sizeof(str));
        n->u.f.ident[0] = (str){it->val + 1, it->len - 1};
        n->u.f.nident = 1;
        return n;
    case I_BOOL:
        n = new_node(p, N_BOOL, it->pos, it->line);
        n->u.b = it->val[0] == 't';
        return n;
    case I_CHAR_CONSTANT:
    case I_NUMBER:
        n = new_node(p, N_NUMBER, it->pos, it->line);
        if (it->typ == I_CHAR_CONSTANT && !parse_number(n, it->val, it->len, true))
            perr(p, "malformed character constant: %.*s", (int)it->len, it->val);
        if (!parse_number(n, it->val, it->len, it->typ == I_CHAR_CONSTANT)) {
            char tmp[300];
            buf q;
            buf_init(&q, 256);
            expfmt_quote_go(buf_sink, &q, it->val, it->len);
            snprintf(tmp, sizeof tmp, "%s", buf_cstr(&q));
            buf_cleanup(&q);
            perr(p, "illegal number syntax: %s", tmp);
        }
        return n;
    case I_LEFT_PAREN:
        if (++p->depth > TMPL_MAX_PARSE_DEPTH) perr(p, "max nesting depth exceeded");
        n = p_pipeline(p, "parenthesized pipeline", I_RIGHT_PAREN);
        p->depth--;
        return n;
    case I_STRING:
    case I_RAW_STRING: {
        n = new_node(p, N_STRING, it->pos, it->line);
        n->u.s.quoted = (str){it->val, it->len};
        buf out;
        buf_init(&out, BUF_UNLIMITED);
        size_t end = 0;
        int rc = strutil_go_unquote(it->val, it->len, STRUTIL_UNQUOTE_GO, &out, &end, NULL);
        if (rc != 0 || end != it->len) {
            buf_cleanup(&out);
            perr(p, "invalid syntax");
        }
        n->u.s.text = st_strdup(p->st, buf_cstr(&out), out.len);
        buf_cleanup(&out);
        return n;
    }
    default:
        p_backup(p);
        return NULL;
    }
}

static node *p_operand(parser *p)
{
    node *n = p_term(p);
    if (!n) return NULL;
    if (p_peek(p)->typ != I_FIELD) return n;
    /* a chain of fields after the term */
    size_t cap = 4, cnt = 0;
    str *ids = st_alloc(p->st, cap * sizeof *ids);
    while (p_peek(p)->typ == I_FIELD) {
        item *f = p_next(p);
        if (cnt == cap) {
            str *v = st_alloc(p->st, cap * 2 * sizeof *v);
            memcpy(v, ids, cnt * sizeof *v);
            ids = v;
            cap *= 2;
        }
        ids[cnt++] = (str){f->val + 1, f->len - 1};
    }
    switch (n->t) {
    case N_FIELD:
    case N_VARIABLE: {
        str *v = st_alloc(p->st, (n->u.f.nident + cnt) * sizeof *v);
        memcpy(v, n->u.f.ident, n->u.f.nident * sizeof *v);
        memcpy(v + n->u.f.nident, ids, cnt * sizeof *v);
        n->u.f.ident = v;
        n->u.f.nident += cnt;
        return n;
    }
    case N_BOOL:
    case N_STRING:
    case N_NUMBER:
    case N_NIL:
    case N_DOT: {
        const char *what = n->t == N_BOOL  ? (n->u.b ? "true" : "false")
                           : n->t == N_NIL ? "nil"
                           : n->t == N_DOT ? "."
                                           : NULL;
        char tmp[300];
        buf q;
        buf_init(&q, 256);
        if (what)
            expfmt_quote_go(buf_sink, &q, what, strlen(what));
        else if (n->t == N_STRING)
            expfmt_quote_go(buf_sink, &q, n->u.s.quoted.p, n->u.s.quoted.n);
        else
            expfmt_quote_go(buf_sink, &q, n->u.num.text.p, n->u.num.text.n);
        snprintf(tmp, sizeof tmp, "%s", buf_cstr(&q));
        buf_cleanup(&q);
        perr(p, "unexpected . after term %s", tmp);
    }
    default: {
        node *c = new_node(p, N_CHAIN, n->pos, n->line);
        c->u.f.chained = n;
        c->u.f.ident = ids;
        c->u.f.nident = cnt;
        return c;
    }
    }
}

static node *p_command(parser *p)
{
    item *first = p_peek_nonspace(p);
    node *cmd = new_node(p, N_COMMAND, first->pos, first->line);
    for (;;) {
        p_peek_nonspace(p);
        node *op = p_operand(p);
        if (op) list_add(p->st, &cmd->u.args, op);
        item *it = p_next(p);
        if (it->typ == I_SPACE) continue;
        if (it->typ == I_RIGHT_DELIM || it->typ == I_RIGHT_PAREN)
            p_backup(p);
        else if (it->typ != I_PIPE)
            p_unexpected(p, it, "operand");
        break;
    }
    if (cmd->u.args.n == 0) perr(p, "empty command");
    return cmd;
}

static node *p_pipeline(parser *p, const char *context, enum item_type end)
{
    item *tok = p_peek_nonspace(p);
    node *pipe = new_node(p, N_PIPE, tok->pos, tok->line);
    /* declarations */
    for (;;) {
        item *v = p_peek_nonspace(p);
        if (v->typ != I_VARIABLE) break;
        size_t save = p->i;
        p_next_nonspace(p);
        item *after = p_peek(p);
        item *next = p_peek_nonspace(p);
        if (next->typ == I_ASSIGN || next->typ == I_DECLARE) {
            pipe->u.p.is_assign = next->typ == I_ASSIGN;
            p_next_nonspace(p);
            node *vn = new_node(p, N_VARIABLE, v->pos, v->line);
            vn->u.f.ident = st_alloc(p->st, sizeof(str));
            vn->u.f.ident[0] = (str){v->val, v->len};
            vn->u.f.nident = 1;
            list_add(p->st, &pipe->u.p.decl, vn);
            p_push_var(p, v->val, v->len);
            break;
        } else if (next->typ == I_CHAR && next->len == 1 && next->val[0] == ',') {
            p_next_nonspace(p);
            node *vn = new_node(p, N_VARIABLE, v->pos, v->line);
            vn->u.f.ident = st_alloc(p->st, sizeof(str));
            vn->u.f.ident[0] = (str){v->val, v->len};
            vn->u.f.nident = 1;
            list_add(p->st, &pipe->u.p.decl, vn);
            p_push_var(p, v->val, v->len);
            if (strcmp(context, "range") == 0 && pipe->u.p.decl.n < 2) {
                item *pk = p_peek_nonspace(p);
                if (pk->typ == I_VARIABLE || pk->typ == I_RIGHT_DELIM || pk->typ == I_RIGHT_PAREN)
                    continue;
                perr(p, "range can only initialize variables");
            }
            perr(p, "too many declarations in %s", context);
        }
        (void)after;
        p->i = save;
        break;
    }
    for (;;) {
        item *t = p_next_nonspace(p);
        if (t->typ == end) {
            if (pipe->u.p.cmds.n == 0) perr(p, "missing value for %s", context);
            for (size_t k = 1; k < pipe->u.p.cmds.n; k++) {
                enum node_type a = pipe->u.p.cmds.v[k]->u.args.v[0]->t;
                if (a == N_BOOL || a == N_DOT || a == N_NIL || a == N_NUMBER || a == N_STRING)
                    perr(p, "non executable command in pipeline stage %zu", k + 1);
            }
            return pipe;
        }
        switch (t->typ) {
        case I_BOOL:
        case I_CHAR_CONSTANT:
        case I_DOT:
        case I_FIELD:
        case I_IDENTIFIER:
        case I_NUMBER:
        case I_NIL:
        case I_RAW_STRING:
        case I_STRING:
        case I_VARIABLE:
        case I_LEFT_PAREN:
            p_backup(p);
            list_add(p->st, &pipe->u.p.cmds, p_command(p));
            break;
        default:
            p_unexpected(p, t, context);
        }
    }
}

static node *p_control(parser *p, enum node_type t, const char *context);

static node *p_else_control(parser *p, item *tok)
{
    item *pk = p_peek_nonspace(p);
    if (pk->typ == I_IF || pk->typ == I_WITH) return new_node(p, N_ELSE, pk->pos, pk->line);
    p_expect(p, I_RIGHT_DELIM, "else");
    return new_node(p, N_ELSE, tok->pos, tok->line);
}

static node *p_control(parser *p, enum node_type t, const char *context)
{
    size_t vmark = p->nvars;
    if (++p->depth > TMPL_MAX_PARSE_DEPTH) perr(p, "max nesting depth exceeded");
    item *at = &p->items[p->i - 1];
    node *n = new_node(p, t, at->pos, at->line);
    n->u.branch.pipe = p_pipeline(p, context, I_RIGHT_DELIM);
    if (t == N_RANGE) p->range_depth++;
    node *next = NULL;
    n->u.branch.list = p_item_list(p, &next);
    if (t == N_RANGE) p->range_depth--;
    if (next->t == N_ELSE) {
        item *pk = p_peek(p);
        if ((t == N_IF && pk->typ == I_IF) || (t == N_WITH && pk->typ == I_WITH)) {
            p_next(p);
            node_list *el = st_alloc(p->st, sizeof *el);
            list_add(p->st, el, p_control(p, t, context));
            n->u.branch.else_list = el;
        } else {
            n->u.branch.else_list = p_item_list(p, &next);
            if (next->t != N_END) perr(p, "expected end; found {{else}}");
        }
    }
    p->depth--;
    p->nvars = vmark;
    return n;
}

static str p_template_name(parser *p, item *tok, const char *context)
{
    if (tok->typ != I_STRING && tok->typ != I_RAW_STRING) p_unexpected(p, tok, context);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    size_t end = 0;
    if (strutil_go_unquote(tok->val, tok->len, STRUTIL_UNQUOTE_GO, &out, &end, NULL) != 0 ||
        end != tok->len) {
        buf_cleanup(&out);
        perr(p, "invalid syntax");
    }
    str s = st_strdup(p->st, buf_cstr(&out), out.len);
    buf_cleanup(&out);
    return s;
}

static void add_def(parser *p, str name, node_list *list)
{
    tmpl_state *st = p->st;
    for (size_t k = 0; k < st->ndefs; k++)
        if (st->defs[k].name.n == name.n && memcmp(st->defs[k].name.p, name.p, name.n) == 0) {
            if (st->defs[k].list->n == 0)
                st->defs[k].list = list;
            else if (list->n != 0) {
                buf_printf(st->err, "template: multiple definition of template \"%.*s\"",
                           (int)name.n, name.p);
                fail(st);
            }
            return;
        }
    if (st->ndefs == st->dcap) {
        size_t nc = st->dcap ? st->dcap * 2 : 4;
        tdef *v = st_alloc(st, nc * sizeof *v);
        if (st->ndefs) memcpy(v, st->defs, st->ndefs * sizeof *v);
        st->defs = v;
        st->dcap = nc;
    }
    st->defs[st->ndefs++] = (tdef){name, list};
}

/* {{define "name"}} ... {{end}}, after "define". */
static void p_definition(parser *p)
{
    item *tok = p_next_nonspace(p);
    str name = p_template_name(p, tok, "define clause");
    p_expect(p, I_RIGHT_DELIM, "define clause");
    size_t vmark = p->nvars;
    int rdepth = p->range_depth;
    str *saved = p->vars;
    size_t saved_cap = p->vcap;
    p->vars = NULL;
    p->nvars = p->vcap = 0;
    p->range_depth = 0;
    p_push_var(p, "$", 1);
    node *end = NULL;
    node_list *list = p_item_list(p, &end);
    if (end->t != N_END) perr(p, "unexpected {{else}} in define clause");
    p->vars = saved;
    p->vcap = saved_cap;
    p->nvars = vmark;
    p->range_depth = rdepth;
    add_def(p, name, list);
}

static node *p_action(parser *p)
{
    item *tok = p_next_nonspace(p);
    switch (tok->typ) {
    case I_BLOCK: {
        item *nt = p_next_nonspace(p);
        str name = p_template_name(p, nt, "block clause");
        node *pipe = p_pipeline(p, "block clause", I_RIGHT_DELIM);
        size_t vmark = p->nvars;
        str *saved = p->vars;
        size_t saved_cap = p->vcap;
        int rdepth = p->range_depth;
        p->vars = NULL;
        p->nvars = p->vcap = 0;
        p->range_depth = 0;
        p_push_var(p, "$", 1);
        node *end = NULL;
        node_list *list = p_item_list(p, &end);
        if (end->t != N_END) perr(p, "unexpected {{else}} in block clause");
        p->vars = saved;
        p->vcap = saved_cap;
        p->nvars = vmark;
        p->range_depth = rdepth;
        add_def(p, name, list);
        node *n = new_node(p, N_TEMPLATE, tok->pos, tok->line);
        n->u.tmpl.name = name;
        n->u.tmpl.pipe = pipe;
        return n;
    }
    case I_BREAK:
    case I_CONTINUE: {
        const char *w = tok->typ == I_BREAK ? "break" : "continue";
        item *nt = p_next_nonspace(p);
        if (nt->typ != I_RIGHT_DELIM)
            p_unexpected(p, nt, tok->typ == I_BREAK ? "{{break}}" : "{{continue}}");
        if (p->range_depth == 0) perr(p, "{{%s}} outside {{range}}", w);
        return new_node(p, tok->typ == I_BREAK ? N_BREAK : N_CONTINUE, tok->pos, tok->line);
    }
    case I_ELSE:
        return p_else_control(p, tok);
    case I_END:
        p_expect(p, I_RIGHT_DELIM, "end");
        return new_node(p, N_END, tok->pos, tok->line);
    case I_IF:
        return p_control(p, N_IF, "if");
    case I_RANGE:
        return p_control(p, N_RANGE, "range");
    case I_WITH:
        return p_control(p, N_WITH, "with");
    case I_TEMPLATE: {
        item *nt = p_next_nonspace(p);
        str name = p_template_name(p, nt, "template clause");
        node *pipe = NULL;
        if (p_next_nonspace(p)->typ != I_RIGHT_DELIM) {
            p_backup(p);
            pipe = p_pipeline(p, "template clause", I_RIGHT_DELIM);
        }
        node *n = new_node(p, N_TEMPLATE, nt->pos, nt->line); /* Go: the name's position */
        n->u.tmpl.name = name;
        n->u.tmpl.pipe = pipe;
        return n;
    }
    default:
        break;
    }
    p_backup(p);
    node *n = new_node(p, N_ACTION, tok->pos, tok->line);
    n->u.pipe = p_pipeline(p, "command", I_RIGHT_DELIM);
    return n;
}

static node *p_text_or_action(parser *p)
{
    item *tok = p_next_nonspace(p);
    if (tok->typ == I_TEXT) {
        node *n = new_node(p, N_TEXT, tok->pos, tok->line);
        n->u.text = (str){tok->val, tok->len};
        return n;
    }
    if (tok->typ == I_LEFT_DELIM) return p_action(p);
    p_unexpected(p, tok, "input");
}

static node_list *p_item_list(parser *p, node **end)
{
    node_list *l = st_alloc(p->st, sizeof *l);
    while (p_peek_nonspace(p)->typ != I_EOF) {
        node *n = p_text_or_action(p);
        if (n->t == N_END || n->t == N_ELSE) {
            *end = n;
            return l;
        }
        list_add(p->st, l, n);
    }
    perr(p, "unexpected EOF");
}

/* The top level: text, actions and {{define}}s. */
static node_list *p_parse(parser *p)
{
    node_list *l = st_alloc(p->st, sizeof *l);
    while (p_peek(p)->typ != I_EOF) {
        if (p_peek(p)->typ == I_LEFT_DELIM) {
            p_next(p);
            if (p_next_nonspace(p)->typ == I_DEFINE) {
                p_definition(p);
                continue;
            }
            p->i -= 1;
            while (p->items[p->i].typ != I_LEFT_DELIM)
                p->i--;
        }
        node *n = p_text_or_action(p);
        if (n->t == N_END) perr(p, "unexpected {{end}}");
        if (n->t == N_ELSE) perr(p, "unexpected {{else}}");
        list_add(p->st, l, n);
    }
    return l;
}

/* ---- node strings (Go's Node.String(), for error contexts) ----------------- */

static void node_string(buf *b, const node *n);

static void pipe_string(buf *b, const node *n)
{
    for (size_t k = 0; k < n->u.p.decl.n; k++) {
        if (k) buf_puts(b, ", ");
        node_string(b, n->u.p.decl.v[k]);
    }
    if (n->u.p.decl.n) buf_puts(b, n->u.p.is_assign ? " = " : " := ");
    for (size_t k = 0; k < n->u.p.cmds.n; k++) {
        if (k) buf_puts(b, " | ");
        node_string(b, n->u.p.cmds.v[k]);
    }
}

static void node_string(buf *b, const node *n)
{
    switch (n->t) {
    case N_FIELD:
        for (size_t k = 0; k < n->u.f.nident; k++) {
            buf_putc(b, '.');
            buf_append(b, n->u.f.ident[k].p, n->u.f.ident[k].n);
        }
        break;
    case N_VARIABLE:
        for (size_t k = 0; k < n->u.f.nident; k++) {
            if (k) buf_putc(b, '.');
            buf_append(b, n->u.f.ident[k].p, n->u.f.ident[k].n);
        }
        break;
    case N_CHAIN:
        if (n->u.f.chained->t == N_PIPE) {
            buf_putc(b, '(');
            node_string(b, n->u.f.chained);
            buf_putc(b, ')');
        } else {
            node_string(b, n->u.f.chained);
        }
        for (size_t k = 0; k < n->u.f.nident; k++) {
            buf_putc(b, '.');
            buf_append(b, n->u.f.ident[k].p, n->u.f.ident[k].n);
        }
        break;
    case N_IDENTIFIER:
        buf_append(b, n->u.ident.p, n->u.ident.n);
        break;
    case N_DOT:
        buf_putc(b, '.');
        break;
    case N_NIL:
        buf_puts(b, "nil");
        break;
    case N_BOOL:
        buf_puts(b, n->u.b ? "true" : "false");
        break;
    case N_NUMBER:
        buf_append(b, n->u.num.text.p, n->u.num.text.n);
        break;
    case N_STRING:
        buf_append(b, n->u.s.quoted.p, n->u.s.quoted.n);
        break;
    case N_PIPE:
        pipe_string(b, n);
        break;
    case N_COMMAND:
        for (size_t k = 0; k < n->u.args.n; k++) {
            if (k) buf_putc(b, ' ');
            const node *a = n->u.args.v[k];
            if (a->t == N_PIPE) {
                buf_putc(b, '(');
                node_string(b, a);
                buf_putc(b, ')');
            } else {
                node_string(b, a);
            }
        }
        break;
    case N_ACTION:
        buf_puts(b, "{{");
        pipe_string(b, n->u.pipe);
        buf_puts(b, "}}");
        break;
    case N_IF:
    case N_RANGE:
    case N_WITH:
        buf_puts(b, n->t == N_IF ? "{{if " : n->t == N_RANGE ? "{{range " : "{{with ");
        pipe_string(b, n->u.branch.pipe);
        buf_puts(b, "}}");
        break;
    case N_TEMPLATE:
        buf_puts(b, "{{template ");
        expfmt_quote_go(buf_sink, b, n->u.tmpl.name.p, n->u.tmpl.name.n);
        if (n->u.tmpl.pipe) {
            buf_putc(b, ' ');
            pipe_string(b, n->u.tmpl.pipe);
        }
        buf_puts(b, "}}");
        break;
    default:
        break;
    }
}

/* ---- execution errors ------------------------------------------------------- */

static _Noreturn void xerr(tmpl_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static _Noreturn void xerr(tmpl_state *st, const char *fmt, ...)
{
    buf *e = st->err;
    if (!st->at) {
        buf_printf(e, "template: %s: ", st->name);
    } else {
        size_t pos = st->at->pos;
        int line = 1;
        size_t last_nl = (size_t)-1;
        for (size_t i = 0; i < pos && i < st->len; i++)
            if (st->text[i] == '\n') line++, last_nl = i;
        size_t col = last_nl == (size_t)-1 ? pos : pos - (last_nl + 1);
        buf ctx;
        buf_init(&ctx, BUF_UNLIMITED);
        node_string(&ctx, st->at);
        buf_printf(e, "template: %s:%d:%zu: executing ", st->name, line, col);
        expfmt_quote_go(buf_sink, e, st->cur_name, strlen(st->cur_name));
        buf_puts(e, " at <");
        buf_append(e, buf_cstr(&ctx), ctx.len);
        buf_puts(e, ">: ");
        buf_cleanup(&ctx);
    }
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(e, fmt, ap);
    va_end(ap);
    fail(st);
}

/* ---- value helpers ------------------------------------------------------------ */

static val v_str(str s)
{
    return (val){.k = V_STRING, .u.s = s};
}

/* Moves a local buf's contents into the arena; the buf is freed first
 * thing, so an error (which longjmps) leaks nothing. */
static val v_take(tmpl_state *st, buf *b)
{
    char *d = b->len <= TMPL_MAX_STRING ? arena_strndup(&st->a, buf_cstr(b), b->len) : NULL;
    size_t n = b->len;
    buf_cleanup(b);
    if (n > TMPL_MAX_STRING) xerr(st, "string value exceeds %d bytes", TMPL_MAX_STRING);
    if (!d) st_oom(st);
    return v_str((str){d, n});
}

static val v_float(double f)
{
    return (val){.k = V_FLOAT, .u.f = f};
}

static val v_int(int64_t i)
{
    return (val){.k = V_INT, .u.i = i};
}

static val v_bool(bool b)
{
    return (val){.k = V_BOOL, .u.b = b};
}

static const char DATA_TYPE[] =
    "struct { Labels map[string]string; ExternalLabels map[string]string; "
    "ExternalURL string; Value interface {} }";

static const char *type_name(const val *v)
{
    switch (v->k) {
    case V_INVALID:
    case V_NIL:
        return "<nil>";
    case V_BOOL:
        return "bool";
    case V_INT:
        return "int";
    case V_FLOAT:
        return "float64";
    case V_STRING:
        return "string";
    case V_LABELS:
        return "map[string]string";
    case V_QUERY:
        return "template.queryResult";
    case V_SAMPLE:
        return "*template.sample";
    case V_MAP:
        return "map[string]interface {}";
    case V_TIME:
        return "*time.Time";
    case V_DURATION:
        return "*time.Duration";
    case V_DATA:
        return DATA_TYPE;
    }
    return "?";
}

static bool truth(const val *v)
{
    switch (v->k) {
    case V_INVALID:
    case V_NIL:
        return false;
    case V_BOOL:
        return v->u.b;
    case V_INT:
        return v->u.i != 0;
    case V_FLOAT:
        return v->u.f != 0;
    case V_STRING:
        return v->u.s.n != 0;
    case V_LABELS:
        return v->u.ls && v->u.ls->n != 0;
    case V_QUERY:
        return v->u.q && v->u.q->n != 0;
    case V_SAMPLE:
        return v->u.smp != NULL;
    case V_MAP:
        return v->u.m && v->u.m->n != 0;
    default:
        return true;
    }
}

static void fmt_float_v(buf *b, double f)
{
    char tmp[EXPFMT_FLOAT_MAX];
    size_t n = expfmt_format_float(f, tmp);
    buf_append(b, tmp, n);
}

/* Go's time.Duration.String(). */
static void fmt_go_duration(buf *b, int64_t d)
{
    uint64_t u = d < 0 ? (uint64_t)0 - (uint64_t)d : (uint64_t)d;
    if (d < 0) buf_putc(b, '-');
    if (u == 0) {
        buf_puts(b, "0s");
        return;
    }
    if (u < 1000000000ULL) {
        const char *unit;
        int prec;
        if (u < 1000)
            unit = "ns", prec = 0;
        else if (u < 1000000)
            unit = "\xc2\xb5s", prec = 3;
        else
            unit = "ms", prec = 6;
        uint64_t div = 1;
        for (int i = 0; i < prec; i++)
            div *= 10;
        buf_printf(b, "%" PRIu64, u / div);
        uint64_t frac = u % div;
        if (frac) {
            char fd[16];
            snprintf(fd, sizeof fd, "%0*" PRIu64, prec, frac);
            size_t fl = strlen(fd);
            while (fl > 0 && fd[fl - 1] == '0')
                fl--;
            buf_putc(b, '.');
            buf_append(b, fd, fl);
        }
        buf_puts(b, unit);
        return;
    }
    uint64_t secs = u / 1000000000ULL, frac = u % 1000000000ULL;
    uint64_t h = secs / 3600, m = secs / 60 % 60, s = secs % 60;
    if (h) buf_printf(b, "%" PRIu64 "h", h);
    if (h || m) buf_printf(b, "%" PRIu64 "m", m);
    buf_printf(b, "%" PRIu64, s);
    if (frac) {
        char fd[16];
        snprintf(fd, sizeof fd, "%09" PRIu64, frac);
        size_t fl = strlen(fd);
        while (fl > 0 && fd[fl - 1] == '0')
            fl--;
        buf_putc(b, '.');
        buf_append(b, fd, fl);
    }
    buf_putc(b, 's');
}

static void split_time(int64_t ns, struct tm *tm, int64_t *nsec)
{
    int64_t sec = ns / 1000000000LL, rem = ns % 1000000000LL;
    if (rem < 0) rem += 1000000000LL, sec--;
    time_t t = (time_t)sec;
    gmtime_r(&t, tm);
    *nsec = rem;
}

static const char *const MONTHS[] = {"January",   "February", "March",    "April",
                                     "May",       "June",     "July",     "August",
                                     "September", "October",  "November", "December"};
static const char *const DAYS[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                   "Thursday", "Friday", "Saturday"};

/* Go's Time.Format for a UTC time, with the layout elements alert templates
 * use. */
static void fmt_go_time(buf *b, int64_t ns, const char *l, size_t n)
{
    struct tm tm;
    int64_t nsec;
    split_time(ns, &tm, &nsec);
    int year = tm.tm_year + 1900, hour12 = tm.tm_hour % 12 ? tm.tm_hour % 12 : 12;
#define LP(s)                                                                                      \
    (n - i >= sizeof(s) - 1 && memcmp(l + i, s, sizeof(s) - 1) == 0 && (i += sizeof(s) - 1, 1))
    for (size_t i = 0; i < n;) {
        if (LP("January"))
            buf_puts(b, MONTHS[tm.tm_mon]);
        else if (LP("Jan"))
            buf_printf(b, "%.3s", MONTHS[tm.tm_mon]);
        else if (LP("Monday"))
            buf_puts(b, DAYS[tm.tm_wday]);
        else if (LP("Mon"))
            buf_printf(b, "%.3s", DAYS[tm.tm_wday]);
        else if (LP("MST"))
            buf_puts(b, "UTC");
        else if (LP("2006"))
            buf_printf(b, "%04d", year);
        else if (LP("2"))
            buf_printf(b, "%d", tm.tm_mday);
        else if (LP("_2"))
            buf_printf(b, "%2d", tm.tm_mday);
        else if (LP("002"))
            buf_printf(b, "%03d", tm.tm_yday + 1);
        else if (LP("01"))
            buf_printf(b, "%02d", tm.tm_mon + 1);
        else if (LP("02"))
            buf_printf(b, "%02d", tm.tm_mday);
        else if (LP("03"))
            buf_printf(b, "%02d", hour12);
        else if (LP("04"))
            buf_printf(b, "%02d", tm.tm_min);
        else if (LP("05"))
            buf_printf(b, "%02d", tm.tm_sec);
        else if (LP("06"))
            buf_printf(b, "%02d", year % 100);
        else if (LP("15"))
            buf_printf(b, "%02d", tm.tm_hour);
        else if (LP("1"))
            buf_printf(b, "%d", tm.tm_mon + 1);
        else if (LP("3"))
            buf_printf(b, "%d", hour12);
        else if (LP("4"))
            buf_printf(b, "%d", tm.tm_min);
        else if (LP("5"))
            buf_printf(b, "%d", tm.tm_sec);
        else if (LP("PM"))
            buf_puts(b, tm.tm_hour >= 12 ? "PM" : "AM");
        else if (LP("pm"))
            buf_puts(b, tm.tm_hour >= 12 ? "pm" : "am");
        else if (LP("-07:00:00"))
            buf_puts(b, "+00:00:00");
        else if (LP("-0700"))
            buf_puts(b, "+0000");
        else if (LP("-07:00"))
            buf_puts(b, "+00:00");
        else if (LP("-07"))
            buf_puts(b, "+00");
        else if (LP("Z07:00:00") || LP("Z0700") || LP("Z07:00") || LP("Z07"))
            buf_putc(b, 'Z');
        else if ((l[i] == '.' || l[i] == ',') && i + 1 < n &&
                 (l[i + 1] == '0' || l[i + 1] == '9')) {
            char c = l[i + 1];
            size_t j = i + 1;
            while (j < n && l[j] == c)
                j++;
            if (j < n && l[j] >= '0' && l[j] <= '9') {
                buf_putc(b, l[i++]);
                continue;
            }
            size_t digits = j - i - 1;
            if (digits > 9) digits = 9;
            char fd[16];
            snprintf(fd, sizeof fd, "%09" PRId64, nsec);
            size_t fl = digits;
            if (c == '9') {
                while (fl > 0 && fd[fl - 1] == '0')
                    fl--;
                if (fl) {
                    buf_putc(b, l[i]);
                    buf_append(b, fd, fl);
                }
            } else {
                buf_putc(b, l[i]);
                buf_append(b, fd, fl);
            }
            i = j;
        } else {
            buf_putc(b, l[i++]);
        }
    }
#undef LP
}

static void fmt_time_string(buf *b, int64_t ns)
{
    static const char layout[] = "2006-01-02 15:04:05.999999999 -0700 MST";
    fmt_go_time(b, ns, layout, sizeof layout - 1);
}

static void print_labels_map(buf *b, const labels *ls)
{
    buf_puts(b, "map[");
    for (uint32_t k = 0; ls && k < ls->n; k++) {
        if (k) buf_putc(b, ' ');
        buf_append(b, ls->v[k].name, ls->v[k].name_len);
        buf_putc(b, ':');
        buf_append(b, ls->v[k].value, ls->v[k].value_len);
    }
    buf_putc(b, ']');
}

static void print_val(tmpl_state *st, buf *b, const val *v);

static void print_sample(tmpl_state *st, buf *b, const tsample *s)
{
    if (!s) {
        buf_puts(b, "<nil>");
        return;
    }
    buf_puts(b, "&{");
    print_labels_map(b, s->ls);
    buf_putc(b, ' ');
    fmt_float_v(b, s->value);
    buf_putc(b, '}');
    (void)st;
}

/* fmt.Fprint of one value. */
static void print_val(tmpl_state *st, buf *b, const val *v)
{
    switch (v->k) {
    case V_INVALID:
        buf_puts(b, "<no value>");
        break;
    case V_NIL:
        buf_puts(b, "<nil>");
        break;
    case V_BOOL:
        buf_puts(b, v->u.b ? "true" : "false");
        break;
    case V_INT:
        buf_printf(b, "%" PRId64, v->u.i);
        break;
    case V_FLOAT:
        fmt_float_v(b, v->u.f);
        break;
    case V_STRING:
        buf_append(b, v->u.s.p, v->u.s.n);
        break;
    case V_LABELS:
        print_labels_map(b, v->u.ls);
        break;
    case V_QUERY:
        buf_putc(b, '[');
        for (size_t k = 0; v->u.q && k < v->u.q->n; k++) {
            if (k) buf_putc(b, ' ');
            print_sample(st, b, v->u.q->v[k]);
        }
        buf_putc(b, ']');
        break;
    case V_SAMPLE:
        print_sample(st, b, v->u.smp);
        break;
    case V_MAP: {
        /* keys in Go's sorted order: arg0 arg1 arg10 arg11 ... arg2 */
        buf_puts(b, "map[");
        size_t n = v->u.m ? v->u.m->n : 0;
        char(*keys)[24] = n ? mem_malloc(n * sizeof *keys) : NULL;
        size_t *ord = n ? mem_malloc(n * sizeof *ord) : NULL;
        for (size_t k = 0; k < n; k++)
            snprintf(keys[k], sizeof keys[k], "arg%zu", k), ord[k] = k;
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0 && strcmp(keys[ord[j - 1]], keys[ord[j]]) > 0; j--) {
                size_t t = ord[j];
                ord[j] = ord[j - 1];
                ord[j - 1] = t;
            }
        for (size_t k = 0; k < n; k++) {
            if (k) buf_putc(b, ' ');
            buf_puts(b, keys[ord[k]]);
            buf_putc(b, ':');
            const val *e = &v->u.m->v[ord[k]];
            if (e->k == V_INVALID)
                buf_puts(b, "<nil>");
            else
                print_val(st, b, e);
        }
        mem_free(keys);
        mem_free(ord);
        buf_putc(b, ']');
        break;
    }
    case V_TIME:
        fmt_time_string(b, v->u.i);
        break;
    case V_DURATION:
        fmt_go_duration(b, v->u.i);
        break;
    case V_DATA: {
        const template_data *d = st->d;
        buf_putc(b, '{');
        print_labels_map(b, d->labels);
        buf_putc(b, ' ');
        print_labels_map(b, d->external_labels);
        buf_putc(b, ' ');
        buf_puts(b, d->external_url ? d->external_url : "");
        buf_putc(b, ' ');
        fmt_float_v(b, d->value);
        buf_putc(b, '}');
        break;
    }
    }
}

/* ---- printf (Go's fmt verbs for the value kinds templates have) ---------------- */

typedef struct fspec {
    bool minus, plus, sharp, space, zero;
    int width, prec; /* -1: absent */
    char verb;
} fspec;

static size_t utf8_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80) c++;
    return c;
}

/* Pads s to the width (in runes); zero padding goes after a sign. */
static void fmt_pad(buf *b, const fspec *f, const char *s, size_t n, bool zero_ok)
{
    size_t w = utf8_count(s, n);
    size_t pad = f->width > 0 && (size_t)f->width > w ? (size_t)f->width - w : 0;
    if (f->minus) {
        buf_append(b, s, n);
        for (size_t i = 0; i < pad; i++)
            buf_putc(b, ' ');
        return;
    }
    if (f->zero && zero_ok) {
        size_t sign = n > 0 && (s[0] == '-' || s[0] == '+' || s[0] == ' ') ? 1 : 0;
        buf_append(b, s, sign);
        for (size_t i = 0; i < pad; i++)
            buf_putc(b, '0');
        buf_append(b, s + sign, n - sign);
        return;
    }
    for (size_t i = 0; i < pad; i++)
        buf_putc(b, ' ');
    buf_append(b, s, n);
}

static void fmt_int(buf *b, const fspec *f, int64_t v)
{
    char digits[80];
    int base = 10;
    bool upper = false;
    switch (f->verb) {
    case 'x':
        base = 16;
        break;
    case 'X':
        base = 16, upper = true;
        break;
    case 'o':
    case 'O':
        base = 8;
        break;
    case 'b':
        base = 2;
        break;
    }
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t nd = 0;
    char rev[80];
    do {
        unsigned dgt = (unsigned)(u % (unsigned)base);
        rev[nd++] = (char)(dgt < 10 ? '0' + dgt : (upper ? 'A' : 'a') + dgt - 10);
        u /= (unsigned)base;
    } while (u);
    if (f->prec == 0 && v == 0) nd = 0;
    size_t k = 0;
    if (v < 0)
        digits[k++] = '-';
    else if (f->plus)
        digits[k++] = '+';
    else if (f->space)
        digits[k++] = ' ';
    if (f->sharp && base == 16) digits[k++] = '0', digits[k++] = upper ? 'X' : 'x';
    if (f->verb == 'O') digits[k++] = '0', digits[k++] = 'o';
    if (f->sharp && base == 8 && f->verb == 'o') digits[k++] = '0';
    for (int i = (int)nd; f->prec > 0 && i < f->prec && k < 70; i++)
        digits[k++] = '0';
    while (nd > 0 && k < sizeof digits)
        digits[k++] = rev[--nd];
    fmt_pad(b, f, digits, k, f->prec < 0);
}

static void fmt_float(buf *b, const fspec *f, double v)
{
    char tmp[400];
    size_t n;
    if (isinf(v) || isnan(v)) {
        const char *s = isnan(v) ? (f->plus    ? "+NaN"
                                    : f->space ? " NaN"
                                               : "NaN")
                        : v > 0  ? (f->plus    ? "+Inf"
                                    : f->space ? " Inf"
                                               : "+Inf")
                                 : "-Inf";
        fspec g = *f;
        g.zero = false;
        fmt_pad(b, &g, s, strlen(s), false);
        return;
    }
    char verb = f->verb == 'v' ? 'g' : f->verb;
    if ((verb == 'g' || verb == 'G') && f->prec < 0) {
        n = expfmt_format_float(v, tmp);
        if (verb == 'G')
            for (size_t i = 0; i < n; i++)
                if (tmp[i] == 'e') tmp[i] = 'E';
    } else {
        int prec = f->prec < 0 ? 6 : f->prec;
        if (prec > 300) prec = 300;
        char cf[8];
        snprintf(cf, sizeof cf, "%%%s.*%c", f->sharp ? "#" : "", verb == 'F' ? 'f' : verb);
        n = (size_t)snprintf(tmp, sizeof tmp, cf, prec, v);
        if (n >= sizeof tmp) n = sizeof tmp - 1;
    }
    char out[420];
    size_t k = 0;
    if (tmp[0] != '-') {
        if (f->plus)
            out[k++] = '+';
        else if (f->space)
            out[k++] = ' ';
    }
    memcpy(out + k, tmp, n);
    k += n;
    fmt_pad(b, f, out, k, true);
}

static void fmt_bad(tmpl_state *st, buf *b, char verb, const val *v)
{
    buf_printf(b, "%%!%c(", verb);
    if (v->k == V_INVALID || v->k == V_NIL) {
        buf_puts(b, "<nil>)");
        return;
    }
    buf_puts(b, type_name(v));
    buf_putc(b, '=');
    print_val(st, b, v);
    buf_putc(b, ')');
}

static void fmt_one(tmpl_state *st, buf *b, const fspec *f, const val *v)
{
    char verb = f->verb;
    if (verb == 'T') {
        const char *t = type_name(v);
        fmt_pad(b, f, t, strlen(t), false);
        return;
    }
    if (v->k == V_MAP && verb != 'v') {
        /* fmt applies the verb to each key and value, in key order */
        fspec g = *f;
        g.width = -1;
        size_t n = v->u.m ? v->u.m->n : 0;
        buf_puts(b, "map[");
        /* arg0 arg1 arg10 arg11 ... arg2: decimal keys in string order */
        char(*keys)[24] = n ? mem_malloc(n * sizeof *keys) : NULL;
        size_t *ord = n ? mem_malloc(n * sizeof *ord) : NULL;
        for (size_t k = 0; k < n; k++)
            snprintf(keys[k], sizeof keys[k], "arg%zu", k), ord[k] = k;
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0 && strcmp(keys[ord[j - 1]], keys[ord[j]]) > 0; j--) {
                size_t t = ord[j];
                ord[j] = ord[j - 1];
                ord[j - 1] = t;
            }
        for (size_t k = 0; k < n; k++) {
            val kv = v_str((str){keys[ord[k]], strlen(keys[ord[k]])});
            if (k) buf_putc(b, ' ');
            fmt_one(st, b, &g, &kv);
            buf_putc(b, ':');
            fmt_one(st, b, &g, &v->u.m->v[ord[k]]);
        }
        mem_free(keys);
        mem_free(ord);
        buf_putc(b, ']');
        return;
    }
    if (v->k == V_LABELS && verb != 'v' && verb != 's') {
        /* fmt applies the verb to each key and value */
        fspec g = *f;
        g.width = -1;
        buf_puts(b, "map[");
        for (uint32_t k = 0; v->u.ls && k < v->u.ls->n; k++) {
            const label *l = &v->u.ls->v[k];
            val kv = v_str((str){l->name, l->name_len}), vv = v_str((str){l->value, l->value_len});
            if (k) buf_putc(b, ' ');
            fmt_one(st, b, &g, &kv);
            buf_putc(b, ':');
            fmt_one(st, b, &g, &vv);
        }
        buf_putc(b, ']');
        return;
    }
    switch (v->k) {
    case V_BOOL:
        if (verb == 'v' || verb == 't') {
            const char *s = v->u.b ? "true" : "false";
            fmt_pad(b, f, s, strlen(s), false);
        } else {
            fmt_bad(st, b, verb, v);
        }
        return;
    case V_INT:
        if (strchr("vdxXobO", verb)) {
            fspec g = *f;
            if (verb == 'v') g.verb = 'd';
            fmt_int(b, &g, v->u.i);
        } else if (verb == 'c' || verb == 'q') {
            buf r;
            buf_init(&r, 64);
            strutil_append_rune(&r, v->u.i < 0 || v->u.i > 0x10ffff ? 0xfffd : (uint32_t)v->u.i);
            if (verb == 'c') {
                fmt_pad(b, f, buf_cstr(&r), r.len, false);
            } else {
                buf q;
                buf_init(&q, 64);
                buf_putc(&q, '\'');
                if (r.len == 1 && r.data[0] == '\'')
                    buf_puts(&q, "\\'");
                else if (r.len == 1 && r.data[0] == '"')
                    buf_putc(&q, '"');
                else {
                    buf t;
                    buf_init(&t, 64);
                    expfmt_quote_go(buf_sink, &t, r.data, r.len);
                    buf_append(&q, t.data + 1, t.len - 2);
                    buf_cleanup(&t);
                }
                buf_putc(&q, '\'');
                fmt_pad(b, f, buf_cstr(&q), q.len, false);
                buf_cleanup(&q);
            }
            buf_cleanup(&r);
        } else if (strchr("eEfFgG", verb)) {
            fmt_bad(st, b, verb, v);
        } else {
            fmt_bad(st, b, verb, v);
        }
        return;
    case V_FLOAT:
        if (strchr("veEfFgG", verb))
            fmt_float(b, f, v->u.f);
        else
            fmt_bad(st, b, verb, v);
        return;
    case V_STRING: {
        const char *s = v->u.s.p;
        size_t n = v->u.s.n;
        if (verb == 'v' || verb == 's') {
            if (f->prec >= 0) {
                size_t k = 0;
                for (int r = 0; r < f->prec && k < n; r++)
                    k += rune_len(s + k, n - k);
                n = k;
            }
            fmt_pad(b, f, s, n, true);
        } else if (verb == 'q') {
            buf q;
            buf_init(&q, BUF_UNLIMITED);
            if (f->prec >= 0) {
                size_t k = 0;
                for (int r = 0; r < f->prec && k < n; r++)
                    k += rune_len(s + k, n - k);
                n = k;
            }
            expfmt_quote_go(buf_sink, &q, s, n);
            fmt_pad(b, f, buf_cstr(&q), q.len, false);
            buf_cleanup(&q);
        } else if (verb == 'x' || verb == 'X') {
            buf q;
            buf_init(&q, BUF_UNLIMITED);
            for (size_t i = 0; i < n; i++) {
                if (f->space && i) buf_putc(&q, ' ');
                buf_printf(&q, verb == 'x' ? "%02x" : "%02X", (unsigned char)s[i]);
            }
            fmt_pad(b, f, buf_cstr(&q), q.len, false);
            buf_cleanup(&q);
        } else {
            fmt_bad(st, b, verb, v);
        }
        return;
    }
    case V_INVALID:
    case V_NIL:
        if (verb == 'v')
            fmt_pad(b, f, "<nil>", 5, false);
        else
            fmt_bad(st, b, verb, v);
        return;
    default:
        if (verb == 'v' || verb == 's') {
            buf q;
            buf_init(&q, BUF_UNLIMITED);
            print_val(st, &q, v);
            fmt_pad(b, f, buf_cstr(&q), q.len, false);
            buf_cleanup(&q);
        } else {
            fmt_bad(st, b, verb, v);
        }
        return;
    }
}

/* fmt.Sprintf(format, args...). */
static void go_sprintf(tmpl_state *st, buf *b, const char *fmt, size_t n, const val *args,
                       size_t nargs)
{
    size_t ai = 0;
    for (size_t i = 0; i < n;) {
        if (fmt[i] != '%') {
            size_t j = i;
            while (j < n && fmt[j] != '%')
                j++;
            buf_append(b, fmt + i, j - i);
            i = j;
            continue;
        }
        i++;
        fspec f = {.width = -1, .prec = -1};
        for (; i < n; i++) {
            char c = fmt[i];
            if (c == '-')
                f.minus = true, f.zero = false;
            else if (c == '+')
                f.plus = true;
            else if (c == '#')
                f.sharp = true;
            else if (c == ' ')
                f.space = true;
            else if (c == '0')
                f.zero = !f.minus;
            else
                break;
        }
        if (i < n && fmt[i] == '*') {
            i++;
            if (ai < nargs && args[ai].k == V_INT) {
                int64_t w = args[ai++].u.i;
                if (w < 0) f.minus = true, w = -w;
                f.width = w > 1000000 ? 1000000 : (int)w;
            } else {
                buf_puts(b, "%!(BADWIDTH)");
                if (ai < nargs) ai++;
            }
        } else {
            int w = -1;
            while (i < n && fmt[i] >= '0' && fmt[i] <= '9') {
                w = (w < 0 ? 0 : w) * 10 + (fmt[i++] - '0');
                if (w > 1000000) w = 1000000;
            }
            f.width = w;
        }
        if (i < n && fmt[i] == '.') {
            i++;
            if (i < n && fmt[i] == '*') {
                i++;
                if (ai < nargs && args[ai].k == V_INT && args[ai].u.i >= 0) {
                    int64_t p = args[ai++].u.i;
                    f.prec = p > 1000000 ? 1000000 : (int)p;
                } else {
                    buf_puts(b, "%!(BADPREC)");
                    if (ai < nargs) ai++;
                }
            } else {
                int p = 0;
                while (i < n && fmt[i] >= '0' && fmt[i] <= '9') {
                    p = p * 10 + (fmt[i++] - '0');
                    if (p > 1000000) p = 1000000;
                }
                f.prec = p;
            }
        }
        if (i >= n) {
            buf_puts(b, "%!(NOVERB)");
            break;
        }
        size_t vl = rune_len(fmt + i, n - i);
        char verb = fmt[i];
        if (verb == '%') {
            buf_putc(b, '%');
            i++;
            continue;
        }
        if (vl > 1 || !((verb >= 'a' && verb <= 'z') || (verb >= 'A' && verb <= 'Z'))) {
            buf_puts(b, "%!");
            buf_append(b, fmt + i, vl);
            i += vl;
            if (ai < nargs) {
                buf_putc(b, '(');
                buf_puts(b, type_name(&args[ai]));
                buf_putc(b, '=');
                print_val(st, b, &args[ai]);
                buf_putc(b, ')');
                ai++;
            } else {
                buf_puts(b, "(MISSING)");
            }
            continue;
        }
        i++;
        f.verb = verb;
        if (ai >= nargs) {
            buf_printf(b, "%%!%c(MISSING)", verb);
            continue;
        }
        fmt_one(st, b, &f, &args[ai++]);
    }
    if (ai < nargs) {
        buf_puts(b, "%!(EXTRA ");
        for (size_t k = ai; k < nargs; k++) {
            if (k > ai) buf_puts(b, ", ");
            if (args[k].k == V_INVALID || args[k].k == V_NIL) {
                buf_puts(b, "<nil>");
                continue;
            }
            buf_puts(b, type_name(&args[k]));
            buf_putc(b, '=');
            print_val(st, b, &args[k]);
        }
        buf_putc(b, ')');
    }
}

/* fmt.Sprint / Sprintln. */
static void go_sprint(tmpl_state *st, buf *b, const val *args, size_t n, bool ln)
{
    for (size_t k = 0; k < n; k++) {
        bool is_str = args[k].k == V_STRING;
        if (k > 0 && (ln || (!is_str && args[k - 1].k != V_STRING))) buf_putc(b, ' ');
        if (args[k].k == V_INVALID)
            buf_puts(b, "<nil>");
        else
            print_val(st, b, &args[k]);
    }
    if (ln) buf_putc(b, '\n');
}

/* ---- Prometheus's humanize functions ------------------------------------------ */

/* fmt.Sprintf("%.4g", v) */
static void go_g4(buf *out, double v)
{
    if (isnan(v))
        buf_puts(out, "NaN");
    else if (isinf(v))
        buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    else
        buf_printf(out, "%.4g", v);
}

void template_humanize(double v, buf *out)
{
    if (v == 0 || isnan(v) || isinf(v)) {
        go_g4(out, v);
        return;
    }
    const char *prefix = "";
    if (fabs(v) >= 1) {
        static const char *const big[] = {"k", "M", "G", "T", "P", "E", "Z", "Y"};
        for (size_t i = 0; i < 8; i++) {
            if (fabs(v) < 1000) break;
            prefix = big[i];
            v /= 1000;
        }
    } else {
        static const char *const small[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
        for (size_t i = 0; i < 8; i++) {
            if (fabs(v) >= 1) break;
            prefix = small[i];
            v *= 1000;
        }
    }
    go_g4(out, v);
    buf_puts(out, prefix);
}

void template_humanize1024(double v, buf *out)
{
    if (fabs(v) <= 1 || isnan(v) || isinf(v)) {
        go_g4(out, v);
        return;
    }
    static const char *const p[] = {"ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"};
    const char *prefix = "";
    for (size_t i = 0; i < 8; i++) {
        if (fabs(v) < 1024) break;
        prefix = p[i];
        v /= 1024;
    }
    go_g4(out, v);
    buf_puts(out, prefix);
}

void template_humanize_duration(double v, buf *out)
{
    if (isnan(v) || isinf(v)) {
        go_g4(out, v);
        return;
    }
    if (v == 0) {
        go_g4(out, v);
        buf_putc(out, 's');
        return;
    }
    if (fabs(v) >= 1) {
        const char *sign = "";
        if (v < 0) sign = "-", v = -v;
        int64_t d = v >= 9.2e18 ? INT64_MAX : (int64_t)v;
        int64_t seconds = d % 60, minutes = d / 60 % 60, hours = d / 60 / 60 % 24,
                days = d / 60 / 60 / 24;
        if (days)
            buf_printf(out, "%s%" PRId64 "d %" PRId64 "h %" PRId64 "m %" PRId64 "s", sign, days,
                       hours, minutes, seconds);
        else if (hours)
            buf_printf(out, "%s%" PRId64 "h %" PRId64 "m %" PRId64 "s", sign, hours, minutes,
                       seconds);
        else if (minutes)
            buf_printf(out, "%s%" PRId64 "m %" PRId64 "s", sign, minutes, seconds);
        else {
            buf_puts(out, sign);
            go_g4(out, v);
            buf_putc(out, 's');
        }
        return;
    }
    static const char *const small[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
    const char *prefix = "";
    for (size_t i = 0; i < 8; i++) {
        if (fabs(v) >= 1) break;
        prefix = small[i];
        v *= 1000;
    }
    go_g4(out, v);
    buf_puts(out, prefix);
    buf_putc(out, 's');
}

void template_humanize_percentage(double v, buf *out)
{
    go_g4(out, v * 100);
    buf_putc(out, '%');
}

/* Prometheus's floatToTime: seconds to a UTC time in ns, truncated to ms.
 * Returns -ERANGE when v * 1e9 overflows int64, -EDOM for NaN and Inf. */
static int float_to_time(double v, int64_t *ns)
{
    if (isnan(v) || isinf(v)) return -EDOM;
    double ts = v * 1e9;
    if (ts > 9223372036854775807.0 || ts < -9223372036854775808.0) return -ERANGE;
    int64_t n = ts >= 9223372036854775807.0 ? INT64_MIN : (int64_t)ts;
    int64_t ms = n / 1000000;
    *ns = ms * 1000000;
    return 0;
}

static void overflow_msg(buf *out, double v)
{
    fmt_float_v(out, v);
    buf_puts(out, " cannot be represented as a nanoseconds timestamp since it overflows int64");
}

void template_humanize_timestamp(double v, buf *out)
{
    int64_t ns;
    int rc = float_to_time(v, &ns);
    if (rc == -EDOM)
        go_g4(out, v);
    else if (rc != 0)
        overflow_msg(out, v);
    else
        fmt_time_string(out, ns);
}

/* ---- functions ---------------------------------------------------------------- */

/* Parameter kinds: 'a' any, 's' string, 'q' queryResult, 'p' *sample. */
typedef struct fn_ctx {
    tmpl_state *st;
    buf *err; /* message for "error calling NAME: ..." */
} fn_ctx;

typedef int (*fn_impl)(fn_ctx *c, val *argv, size_t argc, val *out);

typedef struct func_def {
    const char *name;
    const char *params; /* kinds of fixed parameters */
    char variadic;      /* kind of the variadic rest, or 0 */
    fn_impl impl;
} func_def;

static int to_float(fn_ctx *c, const val *v, double *out)
{
    switch (v->k) {
    case V_FLOAT:
        *out = v->u.f;
        return 0;
    case V_INT:
        *out = (double)v->u.i;
        return 0;
    case V_STRING: {
        int rc = expfmt_parse_float(v->u.s.p, v->u.s.n, out);
        if (rc == 0) return 0;
        expfmt_float_error(buf_sink, c->err, v->u.s.p, v->u.s.n, rc);
        return -1;
    }
    default:
        buf_printf(c->err, "can't convert %s to float", type_name(v));
        return -1;
    }
}

#define HUMANIZE_FN(fname, call)                                                                   \
    static int fname(fn_ctx *c, val *a, size_t n, val *out)                                        \
    {                                                                                              \
        (void)n;                                                                                   \
        double v;                                                                                  \
        if (to_float(c, &a[0], &v) != 0) return -1;                                                \
        buf b;                                                                                     \
        buf_init(&b, 4096);                                                                        \
        call(v, &b);                                                                               \
        *out = v_take(c->st, &b);                                                                  \
        return 0;                                                                                  \
    }

HUMANIZE_FN(f_humanize, template_humanize)
HUMANIZE_FN(f_humanize1024, template_humanize1024)
HUMANIZE_FN(f_humanize_duration, template_humanize_duration)
HUMANIZE_FN(f_humanize_percentage, template_humanize_percentage)

static int f_humanize_timestamp(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    double v;
    if (to_float(c, &a[0], &v) != 0) return -1;
    int64_t ns;
    int rc = float_to_time(v, &ns);
    if (rc == -ERANGE) {
        overflow_msg(c->err, v);
        return -1;
    }
    buf b;
    buf_init(&b, 4096);
    if (rc == -EDOM)
        go_g4(&b, v);
    else
        fmt_time_string(&b, ns);
    *out = v_take(c->st, &b);
    return 0;
}

static int f_to_time(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    double v;
    if (to_float(c, &a[0], &v) != 0) return -1;
    int64_t ns;
    int rc = float_to_time(v, &ns);
    if (rc == -EDOM) {
        buf_puts(c->err, "value is NaN or Inf");
        return -1;
    }
    if (rc != 0) {
        overflow_msg(c->err, v);
        return -1;
    }
    *out = (val){.k = V_TIME, .u.i = ns};
    return 0;
}

static int f_to_duration(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    double v;
    if (to_float(c, &a[0], &v) != 0) return -1;
    double ns = v * 1e9;
    int64_t d = isnan(ns)                     ? INT64_MIN
                : ns >= 9223372036854775807.0 ? INT64_MIN
                : ns < -9223372036854775808.0 ? INT64_MIN
                                              : (int64_t)ns;
    *out = (val){.k = V_DURATION, .u.i = d};
    return 0;
}

static int f_query(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    tmpl_state *st = c->st;
    if (!st->d->query) {
        buf_puts(c->err, "queries are not supported here");
        return -1;
    }
    if (st->nqrs == st->qcap) st->qrs = mem_grow(st->qrs, sizeof *st->qrs, st->nqrs + 1, &st->qcap);
    template_query_result *r = &st->qrs[st->nqrs];
    memset(r, 0, sizeof *r);
    /* the expression as a C string */
    str e = st_strdup(st, a[0].u.s.p, a[0].u.s.n);
    int rc = st->d->query(st->d->query_ctx, e.p, st->d->time_ms, r, c->err);
    st->nqrs++; /* cleaned up at the end either way */
    if (rc != 0) {
        if (c->err->len == 0) buf_printf(c->err, "%s", strerror(-rc));
        return -1;
    }
    qres *q = st_alloc(st, sizeof *q);
    q->n = r->n;
    q->v = st_alloc(st, (r->n ? r->n : 1) * sizeof *q->v);
    for (size_t k = 0; k < r->n; k++) {
        tsample *s = st_alloc(st, sizeof *s);
        s->ls = r->v[k].metric ? r->v[k].metric : labels_empty();
        s->value = r->v[k].value;
        q->v[k] = s;
    }
    *out = (val){.k = V_QUERY, .u.q = q};
    return 0;
}

static int f_first(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    if (!a[0].u.q || a[0].u.q->n == 0) {
        buf_puts(c->err, "first() called on vector with no elements");
        return -1;
    }
    *out = (val){.k = V_SAMPLE, .u.smp = a[0].u.q->v[0]};
    return 0;
}

static int nil_sample(fn_ctx *c)
{
    buf_puts(c->err, "runtime error: invalid memory address or nil pointer dereference");
    return -1;
}

static val label_value(tmpl_state *st, const labels *ls, const char *name, size_t nl)
{
    size_t vl = 0;
    const char *v = ls ? labels_get(ls, name, nl, &vl) : NULL;
    (void)st;
    return v_str(v ? (str){v, vl} : (str){"", 0});
}

static int f_label(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    if (!a[1].u.smp) return nil_sample(c);
    *out = label_value(c->st, a[1].u.smp->ls, a[0].u.s.p, a[0].u.s.n);
    return 0;
}

static int f_value(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    if (!a[0].u.smp) return nil_sample(c);
    *out = v_float(a[0].u.smp->value);
    return 0;
}

static int f_strvalue(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    if (!a[0].u.smp) return nil_sample(c);
    *out = label_value(c->st, a[0].u.smp->ls, "__value__", 9);
    return 0;
}

static int f_args(fn_ctx *c, val *a, size_t n, val *out)
{
    amap *m = st_alloc(c->st, sizeof *m);
    m->n = n;
    m->v = st_alloc(c->st, (n ? n : 1) * sizeof *m->v);
    for (size_t k = 0; k < n; k++)
        m->v[k] = a[k].k == V_INVALID ? (val){.k = V_NIL} : a[k];
    *out = (val){.k = V_MAP, .u.m = m};
    return 0;
}

/* Compiles a Go regexp for an unanchored search: `(?s:.*?)(?-s:re)(?s:.*)`
 * decides whether re matches anywhere; `(?-s:re)(?P<sw__tail>(?s:.*))`
 * whether it matches at the start of a suffix, and where that match ends
 * (the tail group is the last, so the pattern's own groups keep their
 * numbers). */
static int check_regex(fn_ctx *c, const val *pat, bool must)
{
    regex *re = NULL;
    buf e;
    buf_init(&e, BUF_UNLIMITED);
    int rc = regex_compile(&re, pat->u.s.p, pat->u.s.n, &e);
    if (rc == 0) {
        regex_free(re);
        buf_cleanup(&e);
        return 0;
    }
    if (must) {
        buf_puts(c->err, "regexp: Compile(");
        bool bq = true;
        for (size_t i = 0; i < pat->u.s.n; i++) {
            unsigned char ch = (unsigned char)pat->u.s.p[i];
            if (ch == '`' || (ch < 0x20 && ch != '\t') || ch == 0x7f) bq = false;
        }
        if (bq) {
            buf_putc(c->err, '`');
            buf_append(c->err, pat->u.s.p, pat->u.s.n);
            buf_putc(c->err, '`');
        } else {
            expfmt_quote_go(buf_sink, c->err, pat->u.s.p, pat->u.s.n);
        }
        buf_puts(c->err, "): ");
    }
    buf_append(c->err, buf_cstr(&e), e.len);
    buf_cleanup(&e);
    return -1;
}

#define TMPL_MAX_REGEXES 256 /* distinct compiled regexes per expansion */

/* The regex pfx + pattern + sfx, compiled once per expansion (loops reuse
 * it). On a miss the pattern alone is checked first, so errors quote the
 * user's pattern as Go does. NULL with the message in c->err on failure. */
static regex *st_regex(fn_ctx *c, const char *pfx, const val *pat, const char *sfx, bool must)
{
    tmpl_state *st = c->st;
    buf w;
    buf_init(&w, BUF_UNLIMITED);
    buf_puts(&w, pfx);
    buf_append(&w, pat->u.s.p, pat->u.s.n);
    buf_puts(&w, sfx);
    for (size_t k = 0; k < st->nres; k++)
        if (strlen(regex_pattern(st->res[k])) == w.len &&
            memcmp(regex_pattern(st->res[k]), buf_cstr(&w), w.len) == 0) {
            buf_cleanup(&w);
            return st->res[k];
        }
    regex *re = NULL;
    if (st->nres >= TMPL_MAX_REGEXES) {
        buf_printf(c->err, "more than %d distinct regular expressions", TMPL_MAX_REGEXES);
    } else if (check_regex(c, pat, must) == 0 && regex_compile(&re, w.data, w.len, c->err) == 0) {
        if (st->nres == st->rcap)
            st->res = mem_grow(st->res, sizeof *st->res, st->nres + 1, &st->rcap);
        st->res[st->nres++] = re;
    }
    buf_cleanup(&w);
    return re;
}

static void charge(tmpl_state *st, size_t work);
static bool charge_ok(tmpl_state *st, size_t work);

static int f_match(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    regex *re = st_regex(c, "(?s:.*?)(?-s:", &a[0], ")(?s:.*)", false);
    if (!re) return -1;
    charge(c->st, a[1].u.s.n);
    *out = v_bool(regex_match(re, a[1].u.s.p, a[1].u.s.n));
    return 0;
}

/* Appends tmpl with Go's $0 / ${0} replaced by the match m (its '$'
 * doubled), so that regex_expand, which sees the wider match of the search
 * regex, expands the other references only. */
static void replace_group0(buf *out, const char *t, size_t n, const char *m, size_t mlen)
{
    for (size_t i = 0; i < n;) {
        if (t[i] != '$' || i + 1 >= n) {
            buf_putc(out, t[i++]);
            continue;
        }
        if (t[i + 1] == '$') {
            buf_puts(out, "$$");
            i += 2;
            continue;
        }
        size_t ns, ne, next;
        if (t[i + 1] == '{') {
            ns = i + 2;
            ne = ns;
            while (ne < n && t[ne] != '}')
                ne++;
            if (ne >= n) {
                buf_putc(out, t[i++]);
                continue;
            }
            next = ne + 1;
        } else {
            ns = ne = i + 1;
            while (ne < n && (t[ne] == '_' || (t[ne] >= '0' && t[ne] <= '9') ||
                              (t[ne] >= 'a' && t[ne] <= 'z') || (t[ne] >= 'A' && t[ne] <= 'Z')))
                ne++;
            next = ne;
        }
        if (ne - ns == 1 && t[ns] == '0') {
            for (size_t k = 0; k < mlen; k++) {
                if (m[k] == '$') buf_putc(out, '$');
                buf_putc(out, m[k]);
            }
        } else {
            buf_append(out, t + i, next - i);
        }
        i = next;
    }
}

/* regexp.MustCompile(pattern).ReplaceAllString(text, repl). The search
 * runs on PCRE2 full matches: at a position p > 0 the subject starts one
 * character earlier and the pattern with `(?s:.)` in front, so that ^, \b
 * and \B see the same left context as in the whole text. */
static int f_re_replace_all(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    tmpl_state *st = c->st;
    const val *pat = &a[0];
    regex *any0 = st_regex(c, "(?s:.*?)(?-s:", pat, ")(?s:.*)", true);
    regex *anyn = any0 ? st_regex(c, "(?s:.)(?s:.*?)(?-s:", pat, ")(?s:.*)", true) : NULL;
    regex *at0 = anyn ? st_regex(c, "(?-s:", pat, ")(?P<sw__tail>(?s:.*))", true) : NULL;
    regex *atn = at0 ? st_regex(c, "(?s:.)(?-s:", pat, ")(?P<sw__tail>(?s:.*))", true) : NULL;
    if (!atn) return -1;
    const char *s = a[2].u.s.p;
    size_t len = a[2].u.s.n;
    buf res, tail, tmpl;
    buf_init(&res, TMPL_MAX_STRING);
    buf_init(&tail, BUF_UNLIMITED);
    buf_init(&tmpl, BUF_UNLIMITED);
    size_t pos = 0, copied = 0;
    size_t last_end = (size_t)-1;
    int rc = 0;
#define CTX(p) ((p) == 0 ? 0 : prev_rune_start(s, (p)))
    while (pos <= len) {
        if (!charge_ok(st, len - pos)) {
            rc = -2;
            break;
        }
        size_t cp = CTX(pos);
        if (!regex_match(pos ? anyn : any0, s + cp, len - cp)) break;
        /* the leftmost start at or after pos */
        size_t start = pos;
        bool found = false;
        for (;;) {
            if (!charge_ok(st, len - start)) break;
            buf_reset(&tail);
            size_t cs = CTX(start);
            if (regex_expand(start ? atn : at0, s + cs, len - cs, "${sw__tail}", 11, &tail) == 1) {
                found = true;
                break;
            }
            if (start >= len) break;
            start += rune_len(s + start, len - start);
        }
        if (st->steps > TMPL_MAX_STEPS) {
            rc = -2;
            break;
        }
        if (!found) break;
        size_t end = len - tail.len;
        bool accept = !(end == start && start == last_end);
        if (accept) {
            size_t cs = CTX(start);
            buf_reset(&tmpl);
            replace_group0(&tmpl, a[1].u.s.p, a[1].u.s.n, s + start, end - start);
            if (buf_append(&res, s + copied, start - copied) != 0 ||
                regex_expand(start ? atn : at0, s + cs, len - cs, buf_cstr(&tmpl), tmpl.len, &res) <
                    0) {
                rc = -1;
                break;
            }
            copied = end;
            last_end = end;
        }
        if (end > start)
            pos = end;
        else if (start < len)
            pos = start + rune_len(s + start, len - start);
        else
            break;
    }
#undef CTX
    if (rc == 0 && buf_append(&res, s + copied, len - copied) != 0) rc = -1;
    buf_cleanup(&tail);
    buf_cleanup(&tmpl);
    if (rc != 0 || !charge_ok(st, 0)) {
        buf_cleanup(&res);
        if (rc == -1)
            buf_printf(c->err, "result exceeds %d bytes", TMPL_MAX_STRING);
        else
            buf_printf(c->err, "template execution exceeds %d steps", TMPL_MAX_STEPS);
        return -1;
    }
    *out = v_take(st, &res);
    return 0;
}

static int f_safe_html(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)c, (void)n;
    *out = a[0];
    return 0;
}

static int f_title(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    const char *s = a[0].u.s.p;
    size_t len = a[0].u.s.n;
    /* Word boundaries as in Unicode text segmentation (UAX #29), enough for
     * cases.Title: letters, digits and '_' form words, and ' . : between
     * two word characters do not break them ("don't", "a.b"). */
    bool in_word = false;
    for (size_t i = 0; i < len;) {
        size_t k = alnum_len(s + i, len - i);
        if (k == 0) k = rune_len(s + i, len - i);
        unsigned char ch = (unsigned char)s[i];
        bool letter = alnum_len(s + i, len - i) > 0;
        if (!letter && in_word && (ch == '\'' || ch == '.' || ch == ':') && i + 1 < len &&
            alnum_len(s + i + 1, len - i - 1) > 0)
            letter = true;
        if (letter && !in_word)
            strutil_upper(s + i, k, &b);
        else
            buf_append(&b, s + i, k);
        in_word = letter;
        i += k;
    }
    *out = v_take(c->st, &b);
    return 0;
}

static int f_to_upper(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    strutil_upper(a[0].u.s.p, a[0].u.s.n, &b);
    *out = v_take(c->st, &b);
    return 0;
}

static int f_to_lower(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    strutil_lower(a[0].u.s.p, a[0].u.s.n, &b);
    *out = v_take(c->st, &b);
    return 0;
}

/* url.QueryEscape */
static void query_escape(buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~')
            buf_putc(b, (char)ch);
        else if (ch == ' ')
            buf_putc(b, '+');
        else
            buf_printf(b, "%%%02X", ch);
    }
}

static int link_fn(fn_ctx *c, val *a, int tab, val *out)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_puts(&b, "/graph?g0.expr=");
    query_escape(&b, a[0].u.s.p, a[0].u.s.n);
    buf_printf(&b, "&g0.tab=%d", tab);
    *out = v_take(c->st, &b);
    return 0;
}

static int f_graph_link(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    return link_fn(c, a, 0, out);
}

static int f_table_link(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    return link_fn(c, a, 1, out);
}

static int f_url_query_escape(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    query_escape(&b, a[0].u.s.p, a[0].u.s.n);
    *out = v_take(c->st, &b);
    return 0;
}

static int f_sort_by_label(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    qres *q = a[1].u.q;
    if (q) {
        /* stable insertion sort by the label's value (Go's sort.Stable) */
        for (size_t i = 1; i < q->n; i++) {
            for (size_t j = i; j > 0; j--) {
                size_t l1 = 0, l2 = 0;
                const char *v1 = labels_get(q->v[j - 1]->ls, a[0].u.s.p, a[0].u.s.n, &l1);
                const char *v2 = labels_get(q->v[j]->ls, a[0].u.s.p, a[0].u.s.n, &l2);
                size_t m = l1 < l2 ? l1 : l2;
                int cmp = m ? memcmp(v1, v2, m) : 0;
                if (cmp == 0) cmp = l1 < l2 ? -1 : l1 > l2 ? 1 : 0;
                if (cmp <= 0) break;
                tsample *t = q->v[j];
                q->v[j] = q->v[j - 1];
                q->v[j - 1] = t;
                charge(c->st, 1);
            }
        }
    }
    *out = a[1];
    return 0;
}

/* net.SplitHostPort; false on error. */
static bool split_host_port(const char *s, size_t n, str *host, str *port)
{
    size_t last = n;
    for (size_t i = n; i-- > 0;)
        if (s[i] == ':') {
            last = i;
            break;
        }
    if (last == n) return false; /* missing port */
    if (n > 0 && s[0] == '[') {
        size_t end = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ']') {
                end = i;
                break;
            }
        if (!end) return false;
        if (end + 1 == n) return false;
        if (end + 1 != last) return false;
        *host = (str){s + 1, end - 1};
        for (size_t i = 1; i < end; i++)
            if (s[i] == '[') return false;
    } else {
        *host = (str){s, last};
        for (size_t i = 0; i < last; i++)
            if (s[i] == ':') return false; /* too many colons */
        for (size_t i = 0; i < last; i++)
            if (s[i] == '[' || s[i] == ']') return false;
    }
    for (size_t i = last + 1; i < n; i++)
        if (s[i] == '[' || s[i] == ']') return false;
    *port = (str){s + last + 1, n - last - 1};
    return true;
}

static bool is_ip(str h)
{
    char tmp[64];
    if (h.n == 0 || h.n >= sizeof tmp) return false;
    memcpy(tmp, h.p, h.n);
    tmp[h.n] = 0;
    /* IPv4 dotted decimal, or anything with a colon that parses as IPv6 */
    unsigned char b16[16];
    return inet_pton(AF_INET, tmp, b16) == 1 || inet_pton(AF_INET6, tmp, b16) == 1;
}

static int f_strip_port(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n, (void)c;
    str host, port;
    if (!split_host_port(a[0].u.s.p, a[0].u.s.n, &host, &port))
        *out = a[0];
    else
        *out = v_str(host);
    return 0;
}

static int f_strip_domain(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    str host, port = {"", 0};
    if (!split_host_port(a[0].u.s.p, a[0].u.s.n, &host, &port))
        host = a[0].u.s, port = (str){"", 0};
    if (is_ip(host)) {
        *out = a[0];
        return 0;
    }
    size_t k = 0;
    while (k < host.n && host.p[k] != '.')
        k++;
    host.n = k;
    if (port.n == 0) {
        *out = v_str(host);
        return 0;
    }
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    bool colon = memchr(host.p, ':', host.n) != NULL;
    if (colon) buf_putc(&b, '[');
    buf_append(&b, host.p, host.n);
    if (colon) buf_putc(&b, ']');
    buf_putc(&b, ':');
    buf_append(&b, port.p, port.n);
    *out = v_take(c->st, &b);
    return 0;
}

static int f_now(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)a, (void)n;
    *out = v_float((double)c->st->d->time_ms / 1000.0);
    return 0;
}

static str ext_url(tmpl_state *st)
{
    const char *u = st->d->external_url ? st->d->external_url : "";
    return (str){u, strlen(u)};
}

static int f_external_url(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)a, (void)n;
    *out = v_str(ext_url(c->st));
    return 0;
}

static int f_path_prefix(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)a, (void)n;
    str u = ext_url(c->st);
    /* url.Path: after scheme://host, up to ? or # */
    const char *p = u.p, *e = u.p + u.n;
    const char *sch = strstr(u.p, "://");
    if (sch) {
        p = sch + 3;
        while (p < e && *p != '/' && *p != '?' && *p != '#')
            p++;
    }
    const char *q = p;
    while (q < e && *q != '?' && *q != '#')
        q++;
    *out = v_str((str){p, (size_t)(q - p)});
    return 0;
}

static int f_parse_duration(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    const char *s = a[0].u.s.p;
    size_t len = a[0].u.s.n;
    bool neg = len > 0 && s[0] == '-';
    int64_t ms = 0;
    buf e;
    buf_init(&e, BUF_UNLIMITED);
    int rc = strutil_parse_duration(s + neg, len - neg, &ms, &e);
    buf_cleanup(&e);
    if (rc != 0) {
        buf_puts(c->err, "not a valid duration string: ");
        expfmt_quote_go(buf_sink, c->err, s, len);
        return -1;
    }
    *out = v_float((neg ? -(double)ms : (double)ms) / 1000.0);
    return 0;
}

/* -- Go's builtins -- */

static int f_not(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)c, (void)n;
    *out = v_bool(!truth(&a[0]));
    return 0;
}

static int f_len(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    switch (a[0].k) {
    case V_STRING:
        *out = v_int((int64_t)a[0].u.s.n);
        return 0;
    case V_LABELS:
        *out = v_int(a[0].u.ls ? a[0].u.ls->n : 0);
        return 0;
    case V_QUERY:
        *out = v_int(a[0].u.q ? (int64_t)a[0].u.q->n : 0);
        return 0;
    case V_MAP:
        *out = v_int(a[0].u.m ? (int64_t)a[0].u.m->n : 0);
        return 0;
    case V_INVALID:
    case V_NIL:
        buf_puts(c->err, "len of untyped nil");
        return -1;
    case V_SAMPLE:
    case V_TIME:
    case V_DURATION:
        if (a[0].k == V_SAMPLE && !a[0].u.smp) {
            buf_puts(c->err, "len of nil pointer");
            return -1;
        }
        /* fallthrough */
    default:
        buf_printf(c->err, "len of type %s", type_name(&a[0]));
        return -1;
    }
}

static int f_index(fn_ctx *c, val *a, size_t n, val *out)
{
    val item = a[0];
    if (item.k == V_INVALID || item.k == V_NIL) {
        buf_puts(c->err, "index of untyped nil");
        return -1;
    }
    for (size_t k = 1; k < n; k++) {
        val ix = a[k];
        switch (item.k) {
        case V_LABELS:
        case V_MAP:
            if (ix.k != V_STRING) {
                buf_printf(c->err, "value has type %s; should be string", type_name(&ix));
                return -1;
            }
            if (item.k == V_LABELS) {
                item = label_value(c->st, item.u.ls, ix.u.s.p, ix.u.s.n);
            } else {
                val r = {.k = V_INVALID};
                if (ix.u.s.n > 3 && memcmp(ix.u.s.p, "arg", 3) == 0) {
                    size_t num = 0;
                    bool ok = ix.u.s.n < 12 && !(ix.u.s.p[3] == '0' && ix.u.s.n > 4);
                    for (size_t i = 3; ok && i < ix.u.s.n; i++) {
                        if (ix.u.s.p[i] < '0' || ix.u.s.p[i] > '9')
                            ok = false;
                        else
                            num = num * 10 + (size_t)(ix.u.s.p[i] - '0');
                    }
                    if (ok && item.u.m && num < item.u.m->n) r = item.u.m->v[num];
                }
                item = r.k == V_INVALID ? (val){.k = V_NIL} : r;
            }
            break;
        case V_QUERY:
        case V_STRING: {
            if (ix.k != V_INT) {
                buf_printf(c->err, "cannot index slice/array with type %s", type_name(&ix));
                return -1;
            }
            size_t len = item.k == V_QUERY ? (item.u.q ? item.u.q->n : 0) : item.u.s.n;
            if (ix.u.i < 0 || (uint64_t)ix.u.i >= len) {
                buf_printf(c->err, "index out of range: %" PRId64, ix.u.i);
                return -1;
            }
            if (item.k == V_QUERY)
                item = (val){.k = V_SAMPLE, .u.smp = item.u.q->v[ix.u.i]};
            else
                item = v_int((unsigned char)item.u.s.p[ix.u.i]);
            break;
        }
        default:
            buf_printf(c->err, "can't index item of type %s", type_name(&item));
            return -1;
        }
    }
    *out = item;
    return 0;
}

static int f_slice(fn_ctx *c, val *a, size_t n, val *out)
{
    val item = a[0];
    if (item.k == V_INVALID || item.k == V_NIL) {
        buf_puts(c->err, "slice of untyped nil");
        return -1;
    }
    if (n > 4) {
        buf_printf(c->err, "too many slice indexes: %zu", n - 1);
        return -1;
    }
    size_t cap;
    if (item.k == V_STRING) {
        if (n == 4) {
            buf_puts(c->err, "cannot 3-index slice a string");
            return -1;
        }
        cap = item.u.s.n;
    } else if (item.k == V_QUERY) {
        cap = item.u.q ? item.u.q->n : 0;
    } else {
        buf_printf(c->err, "can't slice item of type %s", type_name(&item));
        return -1;
    }
    size_t idx[3] = {0, cap, cap};
    for (size_t k = 1; k < n; k++) {
        if (a[k].k != V_INT) {
            buf_printf(c->err, "cannot index slice/array with type %s", type_name(&a[k]));
            return -1;
        }
        if (a[k].u.i < 0 || (uint64_t)a[k].u.i > cap) {
            buf_printf(c->err, "index out of range: %" PRId64, a[k].u.i);
            return -1;
        }
        idx[k - 1] = (size_t)a[k].u.i;
    }
    if (idx[0] > idx[1]) {
        buf_printf(c->err, "invalid slice index: %zu > %zu", idx[0], idx[1]);
        return -1;
    }
    if (item.k == V_STRING) {
        *out = v_str((str){item.u.s.p + idx[0], idx[1] - idx[0]});
        return 0;
    }
    qres *q = st_alloc(c->st, sizeof *q);
    q->n = idx[1] - idx[0];
    q->v = item.u.q ? item.u.q->v + idx[0] : NULL;
    *out = (val){.k = V_QUERY, .u.q = q};
    return 0;
}

static int f_print(fn_ctx *c, val *a, size_t n, val *out)
{
    buf b;
    buf_init(&b, TMPL_MAX_SCRATCH);
    go_sprint(c->st, &b, a, n, false);
    *out = v_take(c->st, &b);
    return 0;
}

static int f_println(fn_ctx *c, val *a, size_t n, val *out)
{
    buf b;
    buf_init(&b, TMPL_MAX_SCRATCH);
    go_sprint(c->st, &b, a, n, true);
    *out = v_take(c->st, &b);
    return 0;
}

static int f_printf(fn_ctx *c, val *a, size_t n, val *out)
{
    buf b;
    buf_init(&b, TMPL_MAX_SCRATCH);
    go_sprintf(c->st, &b, a[0].u.s.p, a[0].u.s.n, a + 1, n - 1);
    *out = v_take(c->st, &b);
    return 0;
}

enum bkind { K_INVALID, K_BOOL, K_INT, K_FLOAT, K_STRING, K_OTHER };

static enum bkind basic_kind(const val *v)
{
    switch (v->k) {
    case V_INVALID:
    case V_NIL:
        return K_INVALID;
    case V_BOOL:
        return K_BOOL;
    case V_INT:
        return K_INT;
    case V_FLOAT:
        return K_FLOAT;
    case V_STRING:
        return K_STRING;
    default:
        return K_OTHER;
    }
}

static int f_eq(fn_ctx *c, val *a, size_t n, val *out)
{
    if (n < 2) {
        buf_puts(c->err, "missing argument for comparison");
        return -1;
    }
    enum bkind k1 = basic_kind(&a[0]);
    for (size_t k = 1; k < n; k++) {
        enum bkind k2 = basic_kind(&a[k]);
        bool t = false;
        if (k1 != k2) {
            if (k1 != K_INVALID && k2 != K_INVALID) {
                buf_puts(c->err, "incompatible types for comparison");
                return -1;
            }
        } else {
            switch (k1) {
            case K_BOOL:
                t = a[0].u.b == a[k].u.b;
                break;
            case K_INT:
                t = a[0].u.i == a[k].u.i;
                break;
            case K_FLOAT:
                t = a[0].u.f == a[k].u.f;
                break;
            case K_STRING:
                t = a[0].u.s.n == a[k].u.s.n && memcmp(a[0].u.s.p, a[k].u.s.p, a[0].u.s.n) == 0;
                break;
            case K_INVALID:
                t = true;
                break;
            default:
                if (a[0].k != a[k].k) {
                    buf_printf(c->err, "incompatible types for comparison");
                    return -1;
                }
                if (a[0].k == V_SAMPLE)
                    t = a[0].u.smp == a[k].u.smp;
                else if (a[0].k == V_TIME || a[0].k == V_DURATION)
                    t = a[0].u.i == a[k].u.i;
                else {
                    buf_printf(c->err, "non-comparable type %s", type_name(&a[k]));
                    return -1;
                }
            }
        }
        if (t) {
            *out = v_bool(true);
            return 0;
        }
    }
    *out = v_bool(false);
    return 0;
}

static int f_ne(fn_ctx *c, val *a, size_t n, val *out)
{
    if (f_eq(c, a, n, out) != 0) return -1;
    out->u.b = !out->u.b;
    return 0;
}

static int less(fn_ctx *c, val *a, bool *res)
{
    enum bkind k1 = basic_kind(&a[0]), k2 = basic_kind(&a[1]);
    if (k1 == K_OTHER || k1 == K_INVALID || k2 == K_OTHER || k2 == K_INVALID) {
        buf_puts(c->err, "invalid type for comparison");
        return -1;
    }
    if (k1 != k2) {
        buf_puts(c->err, "incompatible types for comparison");
        return -1;
    }
    switch (k1) {
    case K_INT:
        *res = a[0].u.i < a[1].u.i;
        return 0;
    case K_FLOAT:
        *res = a[0].u.f < a[1].u.f;
        return 0;
    case K_STRING: {
        size_t m = a[0].u.s.n < a[1].u.s.n ? a[0].u.s.n : a[1].u.s.n;
        int cmp = m ? memcmp(a[0].u.s.p, a[1].u.s.p, m) : 0;
        *res = cmp < 0 || (cmp == 0 && a[0].u.s.n < a[1].u.s.n);
        return 0;
    }
    default:
        buf_puts(c->err, "invalid type for comparison");
        return -1;
    }
}

static int f_lt(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)n;
    bool r;
    if (less(c, a, &r) != 0) return -1;
    *out = v_bool(r);
    return 0;
}

static int f_le(fn_ctx *c, val *a, size_t n, val *out)
{
    bool r;
    if (less(c, a, &r) != 0) return -1;
    if (!r && f_eq(c, a, n, out) != 0) return -1;
    if (r) *out = v_bool(true);
    return 0;
}

static int f_gt(fn_ctx *c, val *a, size_t n, val *out)
{
    if (f_le(c, a, n, out) != 0) return -1;
    out->u.b = !out->u.b;
    return 0;
}

static int f_ge(fn_ctx *c, val *a, size_t n, val *out)
{
    if (f_lt(c, a, n, out) != 0) return -1;
    out->u.b = !out->u.b;
    return 0;
}

/* evalArgs of html/js/urlquery: one string as is, else fmt.Sprint. */
static void esc_args(fn_ctx *c, val *a, size_t n, buf *b)
{
    if (n == 1 && a[0].k == V_STRING)
        buf_append(b, a[0].u.s.p, a[0].u.s.n);
    else
        go_sprint(c->st, b, a, n, false);
}

static int f_html(fn_ctx *c, val *a, size_t n, val *out)
{
    buf s, b;
    buf_init(&s, TMPL_MAX_SCRATCH);
    buf_init(&b, TMPL_MAX_SCRATCH);
    esc_args(c, a, n, &s);
    for (size_t i = 0; i < s.len; i++) {
        char ch = s.data[i];
        switch (ch) {
        case '"':
            buf_puts(&b, "&#34;");
            break;
        case '\'':
            buf_puts(&b, "&#39;");
            break;
        case '&':
            buf_puts(&b, "&amp;");
            break;
        case '<':
            buf_puts(&b, "&lt;");
            break;
        case '>':
            buf_puts(&b, "&gt;");
            break;
        case 0:
            buf_puts(&b, "\xef\xbf\xbd");
            break;
        default:
            buf_putc(&b, ch);
        }
    }
    buf_cleanup(&s);
    *out = v_take(c->st, &b);
    return 0;
}

static int f_js(fn_ctx *c, val *a, size_t n, val *out)
{
    buf s, b;
    buf_init(&s, TMPL_MAX_SCRATCH);
    buf_init(&b, TMPL_MAX_SCRATCH);
    esc_args(c, a, n, &s);
    for (size_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.data[i];
        switch (ch) {
        case '\\':
            buf_puts(&b, "\\\\");
            break;
        case '\'':
            buf_puts(&b, "\\'");
            break;
        case '"':
            buf_puts(&b, "\\\"");
            break;
        case '<':
            buf_puts(&b, "\\u003C");
            break;
        case '>':
            buf_puts(&b, "\\u003E");
            break;
        case '&':
            buf_puts(&b, "\\u0026");
            break;
        case '=':
            buf_puts(&b, "\\u003D");
            break;
        default:
            if (ch < ' ')
                buf_printf(&b, "\\u%04X", ch);
            else
                buf_putc(&b, (char)ch);
        }
    }
    buf_cleanup(&s);
    *out = v_take(c->st, &b);
    return 0;
}

static int f_urlquery(fn_ctx *c, val *a, size_t n, val *out)
{
    buf s, b;
    buf_init(&s, TMPL_MAX_SCRATCH);
    buf_init(&b, TMPL_MAX_SCRATCH);
    esc_args(c, a, n, &s);
    query_escape(&b, s.data ? s.data : "", s.len);
    buf_cleanup(&s);
    *out = v_take(c->st, &b);
    return 0;
}

/* and/or are evaluated lazily by the executor; these never run. */
static int f_andor(fn_ctx *c, val *a, size_t n, val *out)
{
    (void)c, (void)a, (void)n, (void)out;
    return 0;
}

static const func_def FUNCS[] = {
    /* Go's builtins */
    {"and", "a", 'a', f_andor},
    {"or", "a", 'a', f_andor},
    {"not", "a", 0, f_not},
    {"len", "a", 0, f_len},
    {"index", "a", 'a', f_index},
    {"slice", "a", 'a', f_slice},
    {"print", "", 'a', f_print},
    {"printf", "s", 'a', f_printf},
    {"println", "", 'a', f_println},
    {"eq", "a", 'a', f_eq},
    {"ne", "aa", 0, f_ne},
    {"lt", "aa", 0, f_lt},
    {"le", "aa", 0, f_le},
    {"gt", "aa", 0, f_gt},
    {"ge", "aa", 0, f_ge},
    {"html", "", 'a', f_html},
    {"js", "", 'a', f_js},
    {"urlquery", "", 'a', f_urlquery},
    /* Prometheus's */
    {"query", "s", 0, f_query},
    {"first", "q", 0, f_first},
    {"label", "sp", 0, f_label},
    {"value", "p", 0, f_value},
    {"strvalue", "p", 0, f_strvalue},
    {"args", "", 'a', f_args},
    {"reReplaceAll", "sss", 0, f_re_replace_all},
    {"safeHtml", "s", 0, f_safe_html},
    {"match", "ss", 0, f_match},
    {"title", "s", 0, f_title},
    {"toUpper", "s", 0, f_to_upper},
    {"toLower", "s", 0, f_to_lower},
    {"graphLink", "s", 0, f_graph_link},
    {"tableLink", "s", 0, f_table_link},
    {"sortByLabel", "sq", 0, f_sort_by_label},
    {"stripPort", "s", 0, f_strip_port},
    {"stripDomain", "s", 0, f_strip_domain},
    {"humanize", "a", 0, f_humanize},
    {"humanize1024", "a", 0, f_humanize1024},
    {"humanizeDuration", "a", 0, f_humanize_duration},
    {"humanizePercentage", "a", 0, f_humanize_percentage},
    {"humanizeTimestamp", "a", 0, f_humanize_timestamp},
    {"toTime", "a", 0, f_to_time},
    {"toDuration", "a", 0, f_to_duration},
    {"now", "", 0, f_now},
    {"pathPrefix", "", 0, f_path_prefix},
    {"externalURL", "", 0, f_external_url},
    {"parseDuration", "s", 0, f_parse_duration},
    {"urlQueryEscape", "s", 0, f_url_query_escape},
};

static const func_def *find_func(const char *name, size_t n)
{
    for (size_t k = 0; k < sizeof FUNCS / sizeof FUNCS[0]; k++)
        if (strlen(FUNCS[k].name) == n && memcmp(FUNCS[k].name, name, n) == 0) return &FUNCS[k];
    return NULL;
}

static bool has_function(const char *name, size_t n)
{
    return find_func(name, n) != NULL;
}

/* ---- execution --------------------------------------------------------------- */

static bool charge_ok(tmpl_state *st, size_t work)
{
    st->steps += 1 + work / 64;
    return st->steps <= TMPL_MAX_STEPS;
}

static void charge(tmpl_state *st, size_t work)
{
    if (!charge_ok(st, work)) xerr(st, "template execution exceeds %d steps", TMPL_MAX_STEPS);
}

static val eval_pipeline(tmpl_state *st, val dot, node *pipe);

static const char *kind_type(char kind)
{
    switch (kind) {
    case 's':
        return "string";
    case 'q':
        return "template.queryResult";
    case 'p':
        return "*template.sample";
    case 'd':
        return "time.Duration";
    default:
        return "interface {}";
    }
}

static bool kind_ok(const val *v, char kind)
{
    switch (kind) {
    case 's':
        return v->k == V_STRING;
    case 'q':
        return v->k == V_QUERY;
    case 'p':
        return v->k == V_SAMPLE;
    case 'd':
        return v->k == V_DURATION;
    default:
        return true;
    }
}

static val validate(tmpl_state *st, val v, char kind)
{
    if (v.k == V_INVALID || v.k == V_NIL) {
        switch (kind) {
        case 'a':
            return (val){.k = V_NIL};
        case 'q':
            return (val){.k = V_QUERY, .u.q = NULL};
        case 'p':
            return (val){.k = V_SAMPLE, .u.smp = NULL};
        default:
            xerr(st, "invalid value; expected %s", kind_type(kind));
        }
    }
    if (!kind_ok(&v, kind))
        xerr(st, "wrong type for value; expected %s; got %s", kind_type(kind), type_name(&v));
    return v;
}

static val ideal_constant(tmpl_state *st, node *n)
{
    st->at = n;
    str t = n->u.num.text;
    bool hex_int = t.n > 2 && t.p[0] == '0' && (t.p[1] == 'x' || t.p[1] == 'X') &&
                   !memchr(t.p, 'p', t.n) && !memchr(t.p, 'P', t.n);
    bool rune_int = t.n > 0 && t.p[0] == '\'';
    bool floaty = false;
    for (size_t i = 0; i < t.n; i++)
        if (strchr(".eEpP", t.p[i])) floaty = true;
    if (n->u.num.is_float && !hex_int && !rune_int && floaty) return v_float(n->u.num.f);
    if (n->u.num.is_int) return v_int(n->u.num.i);
    buf s;
    buf_init(&s, 256);
    node_string(&s, n);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s", buf_cstr(&s));
    buf_cleanup(&s);
    xerr(st, "%s overflows int", tmp);
}

static _Noreturn void xerr_node(tmpl_state *st, const char *fmt, const node *n, const char *extra)
{
    buf s;
    buf_init(&s, 256);
    node_string(&s, n);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s", buf_cstr(&s));
    buf_cleanup(&s);
    xerr(st, fmt, tmp, extra);
}

static val eval_field_node(tmpl_state *st, val dot, node *f, node **args, size_t nargs, val final,
                           bool has_final);
static val eval_chain_node(tmpl_state *st, val dot, node *c, node **args, size_t nargs, val final,
                           bool has_final);
static val eval_variable_node(tmpl_state *st, val dot, node *v, node **args, size_t nargs,
                              val final, bool has_final);
static val eval_function(tmpl_state *st, val dot, node *ident, node *cmd, node **args, size_t nargs,
                         val final, bool has_final);

static val eval_arg_in(tmpl_state *st, val dot, node *n, char kind);

static val eval_arg(tmpl_state *st, val dot, node *n, char kind)
{
    if (++st->nest > TMPL_MAX_EXEC_NEST) {
        st->at = n;
        xerr(st, "exceeded maximum nesting depth (%d)", TMPL_MAX_EXEC_NEST);
    }
    val v = eval_arg_in(st, dot, n, kind);
    st->nest--;
    return v;
}

static val eval_arg_in(tmpl_state *st, val dot, node *n, char kind)
{
    st->at = n;
    charge(st, 0);
    switch (n->t) {
    case N_DOT:
        return validate(st, dot, kind);
    case N_NIL:
        if (kind == 's' || kind == 'd') xerr(st, "cannot assign nil to %s", kind_type(kind));
        return validate(st, (val){.k = V_NIL}, kind);
    case N_FIELD:
        return validate(st, eval_field_node(st, dot, n, &n, 1, (val){0}, false), kind);
    case N_VARIABLE:
        return validate(st, eval_variable_node(st, dot, n, NULL, 0, (val){0}, false), kind);
    case N_PIPE:
        return validate(st, eval_pipeline(st, dot, n), kind);
    case N_IDENTIFIER:
        return validate(st, eval_function(st, dot, n, n, NULL, 0, (val){0}, false), kind);
    case N_CHAIN:
        return validate(st, eval_chain_node(st, dot, n, NULL, 0, (val){0}, false), kind);
    default:
        break;
    }
    switch (kind) {
    case 's':
        if (n->t == N_STRING) return v_str(n->u.s.text);
        xerr_node(st, "expected string; found %s%s", n, "");
    case 'd':
        if (n->t == N_NUMBER && n->u.num.is_int) return (val){.k = V_DURATION, .u.i = n->u.num.i};
        xerr_node(st, "expected integer; found %s%s", n, "");
    case 'a':
        switch (n->t) {
        case N_BOOL:
            return v_bool(n->u.b);
        case N_NUMBER:
            return ideal_constant(st, n);
        case N_STRING:
            return v_str(n->u.s.text);
        default:
            break;
        }
        /* fallthrough */
    default:
        xerr_node(st, "can't handle %s for arg of type %s", n, kind_type(kind));
    }
}

static void not_a_function(tmpl_state *st, node **args, size_t nargs, bool has_final)
{
    if (nargs > 1 || has_final)
        xerr_node(st, "can't give argument to non-function %s%s", args[0], "");
}

/* Time and duration methods. */
typedef struct method_def {
    enum vkind recv;
    const char *name;
    const char *params;
} method_def;

static const method_def METHODS[] = {
    {V_TIME, "Format", "s"},
    {V_TIME, "String", ""},
    {V_TIME, "Unix", ""},
    {V_TIME, "UnixMilli", ""},
    {V_TIME, "UnixMicro", ""},
    {V_TIME, "UnixNano", ""},
    {V_TIME, "Add", "d"},
    {V_TIME, "UTC", ""},
    {V_TIME, "Year", ""},
    {V_TIME, "YearDay", ""},
    {V_TIME, "Day", ""},
    {V_TIME, "Hour", ""},
    {V_TIME, "Minute", ""},
    {V_TIME, "Second", ""},
    {V_TIME, "Nanosecond", ""},
    {V_DURATION, "String", ""},
    {V_DURATION, "Seconds", ""},
    {V_DURATION, "Minutes", ""},
    {V_DURATION, "Hours", ""},
    {V_DURATION, "Milliseconds", ""},
    {V_DURATION, "Microseconds", ""},
    {V_DURATION, "Nanoseconds", ""},
};

static val call_method(tmpl_state *st, val dot, const method_def *m, val recv, node *at,
                       node **args, size_t nargs, val final, bool has_final)
{
    size_t fixed = strlen(m->params);
    size_t num_in = (nargs ? nargs - 1 : 0) + (has_final ? 1 : 0);
    if (num_in != fixed)
        xerr(st, "wrong number of args for %s: want %zu got %zu", m->name, fixed, num_in);
    val argv[2] = {{0}, {0}};
    size_t i = 0;
    for (; i < fixed && i + 1 < nargs; i++)
        argv[i] = eval_arg(st, dot, args[i + 1], m->params[i]);
    if (has_final) argv[i] = validate(st, final, m->params[i]);
    (void)at;
    int64_t t = recv.u.i;
    struct tm tm;
    int64_t nsec;
    split_time(t, &tm, &nsec);
    const char *nm = m->name;
    buf b;
    if (recv.k == V_TIME) {
        if (!strcmp(nm, "Format") || !strcmp(nm, "String")) {
            buf_init(&b, TMPL_MAX_SCRATCH);
            if (nm[0] == 'F')
                fmt_go_time(&b, t, argv[0].u.s.p, argv[0].u.s.n);
            else
                fmt_time_string(&b, t);
            return v_take(st, &b);
        }
        int64_t fl = t / 1000000000LL - (t % 1000000000LL < 0);
        if (!strcmp(nm, "Unix")) return v_int(fl);
        if (!strcmp(nm, "UnixMilli")) return v_int(t / 1000000 - (t % 1000000 < 0));
        if (!strcmp(nm, "UnixMicro")) return v_int(t / 1000 - (t % 1000 < 0));
        if (!strcmp(nm, "UnixNano")) return v_int(t);
        if (!strcmp(nm, "Add"))
            return (val){.k = V_TIME, .u.i = (int64_t)((uint64_t)t + (uint64_t)argv[0].u.i)};
        if (!strcmp(nm, "UTC")) return recv;
        if (!strcmp(nm, "Year")) return v_int(tm.tm_year + 1900);
        if (!strcmp(nm, "YearDay")) return v_int(tm.tm_yday + 1);
        if (!strcmp(nm, "Day")) return v_int(tm.tm_mday);
        if (!strcmp(nm, "Hour")) return v_int(tm.tm_hour);
        if (!strcmp(nm, "Minute")) return v_int(tm.tm_min);
        if (!strcmp(nm, "Second")) return v_int(tm.tm_sec);
        return v_int(nsec);
    }
    if (!strcmp(nm, "String")) {
        buf_init(&b, 64);
        fmt_go_duration(&b, t);
        return v_take(st, &b);
    }
    if (!strcmp(nm, "Seconds"))
        return v_float((double)(t / 1000000000LL) + (double)(t % 1000000000LL) / 1e9);
    if (!strcmp(nm, "Minutes"))
        return v_float((double)(t / 60000000000LL) + (double)(t % 60000000000LL) / 60e9);
    if (!strcmp(nm, "Hours"))
        return v_float((double)(t / 3600000000000LL) + (double)(t % 3600000000000LL) / 3600e9);
    if (!strcmp(nm, "Milliseconds")) return v_int(t / 1000000);
    if (!strcmp(nm, "Microseconds")) return v_int(t / 1000);
    return v_int(t);
}

static val eval_field(tmpl_state *st, val dot, str name, node *at, node **args, size_t nargs,
                      val final, bool has_final, val recv)
{
    charge(st, 0);
    char nm[128];
    snprintf(nm, sizeof nm, "%.*s", (int)(name.n > 100 ? 100 : name.n), name.p);
    if (recv.k == V_INVALID || recv.k == V_NIL) return (val){.k = V_INVALID};
    for (size_t k = 0; k < sizeof METHODS / sizeof METHODS[0]; k++)
        if (METHODS[k].recv == recv.k && str_eq(name, METHODS[k].name))
            return call_method(st, dot, &METHODS[k], recv, at, args, nargs, final, has_final);
    bool has_args = nargs > 1 || has_final;
    switch (recv.k) {
    case V_DATA: {
        const template_data *d = st->d;
        val r;
        if (str_eq(name, "Labels"))
            r = (val){.k = V_LABELS, .u.ls = d->labels ? d->labels : labels_empty()};
        else if (str_eq(name, "ExternalLabels"))
            r = (val){.k = V_LABELS,
                      .u.ls = d->external_labels ? d->external_labels : labels_empty()};
        else if (str_eq(name, "ExternalURL"))
            r = v_str(ext_url(st));
        else if (str_eq(name, "Value"))
            r = v_float(d->value);
        else
            break;
        if (has_args) xerr(st, "%s has arguments but cannot be invoked as function", nm);
        return r;
    }
    case V_SAMPLE:
        if (!str_eq(name, "Labels") && !str_eq(name, "Value")) break;
        if (!recv.u.smp) xerr(st, "nil pointer evaluating *template.sample.%s", nm);
        if (has_args) xerr(st, "%s has arguments but cannot be invoked as function", nm);
        if (name.p[0] == 'L') return (val){.k = V_LABELS, .u.ls = recv.u.smp->ls};
        return v_float(recv.u.smp->value);
    case V_LABELS:
        if (has_args) xerr(st, "%s is not a method but has arguments", nm);
        return label_value(st, recv.u.ls, name.p, name.n);
    case V_MAP: {
        if (has_args) xerr(st, "%s is not a method but has arguments", nm);
        val key = v_str(name), out;
        val a2[2] = {recv, key};
        fn_ctx c = {st, &st->fnerr};
        if (f_index(&c, a2, 2, &out) != 0) return (val){.k = V_INVALID};
        return out.k == V_NIL ? (val){.k = V_INVALID} : out;
    }
    default:
        break;
    }
    xerr(st, "can't evaluate field %s in type %s", nm, type_name(&recv));
}

static val eval_field_chain(tmpl_state *st, val dot, val recv, node *n, str *ident, size_t nident,
                            node **args, size_t nargs, val final, bool has_final)
{
    for (size_t i = 0; i + 1 < nident; i++)
        recv = eval_field(st, dot, ident[i], n, NULL, 0, (val){0}, false, recv);
    return eval_field(st, dot, ident[nident - 1], n, args, nargs, final, has_final, recv);
}

static val eval_field_node(tmpl_state *st, val dot, node *f, node **args, size_t nargs, val final,
                           bool has_final)
{
    st->at = f;
    return eval_field_chain(st, dot, dot, f, f->u.f.ident, f->u.f.nident, args, nargs, final,
                            has_final);
}

static val eval_chain_node(tmpl_state *st, val dot, node *c, node **args, size_t nargs, val final,
                           bool has_final)
{
    st->at = c;
    if (c->u.f.chained->t == N_NIL)
        xerr_node(st, "indirection through explicit nil in %s%s", c, "");
    val pipe = eval_arg(st, dot, c->u.f.chained, 'a');
    if (pipe.k == V_NIL) pipe.k = V_INVALID;
    return eval_field_chain(st, dot, pipe, c, c->u.f.ident, c->u.f.nident, args, nargs, final,
                            has_final);
}

static val var_value(tmpl_state *st, str name)
{
    for (size_t k = st->nvars; k-- > st->vbase;)
        if (st->vars[k].name.n == name.n && memcmp(st->vars[k].name.p, name.p, name.n) == 0)
            return st->vars[k].v;
    xerr(st, "undefined variable: %.*s", (int)name.n, name.p);
}

static void set_var(tmpl_state *st, str name, val v)
{
    for (size_t k = st->nvars; k-- > st->vbase;)
        if (st->vars[k].name.n == name.n && memcmp(st->vars[k].name.p, name.p, name.n) == 0) {
            st->vars[k].v = v;
            return;
        }
    xerr(st, "undefined variable: %.*s", (int)name.n, name.p);
}

static void push_var(tmpl_state *st, str name, val v)
{
    if (st->nvars == st->vcap)
        st->vars = mem_grow(st->vars, sizeof *st->vars, st->nvars + 1, &st->vcap);
    st->vars[st->nvars++] = (var){name, v};
}

static val eval_variable_node(tmpl_state *st, val dot, node *v, node **args, size_t nargs,
                              val final, bool has_final)
{
    st->at = v;
    val value = var_value(st, v->u.f.ident[0]);
    if (v->u.f.nident == 1) {
        not_a_function(st, args, nargs, has_final);
        return value;
    }
    return eval_field_chain(st, dot, value, v, v->u.f.ident + 1, v->u.f.nident - 1, args, nargs,
                            final, has_final);
}

static val eval_call(tmpl_state *st, val dot, const func_def *f, node *at, node **args,
                     size_t nargs, val final, bool has_final)
{
    /* args[0] is the function itself */
    node **a = nargs ? args + 1 : NULL;
    size_t na = nargs ? nargs - 1 : 0;
    size_t num_in = na + (has_final ? 1 : 0);
    size_t fixed = strlen(f->params);
    if (f->variadic) {
        if (num_in < fixed)
            xerr(st, "wrong number of args for %s: want at least %zu got %zu", f->name, fixed, na);
    } else if (num_in != fixed) {
        xerr(st, "wrong number of args for %s: want %zu got %zu", f->name, fixed, num_in);
    }
    if (f->impl == f_andor) {
        bool is_or = f->name[0] == 'o';
        val v = {.k = V_INVALID};
        for (size_t i = 0; i < na; i++) {
            v = eval_arg(st, dot, a[i], 'a');
            if (truth(&v) == is_or) return v;
        }
        if (has_final) v = validate(st, final, 'a');
        return v;
    }
    val small[8];
    val *argv = num_in <= 8 ? small : st_alloc(st, num_in * sizeof *argv);
    size_t i = 0;
    for (; i < fixed && i < na; i++)
        argv[i] = eval_arg(st, dot, a[i], f->params[i]);
    if (f->variadic)
        for (; i < na; i++)
            argv[i] = eval_arg(st, dot, a[i], f->variadic);
    if (has_final) {
        char kind = f->variadic && num_in - 1 >= fixed ? f->variadic : f->params[num_in - 1];
        argv[i] = validate(st, final, kind);
    }
    buf_reset(&st->fnerr);
    fn_ctx c = {st, &st->fnerr};
    val out = {.k = V_INVALID};
    if (f->impl(&c, argv, num_in, &out) != 0) {
        st->at = at;
        xerr(st, "error calling %s: %s", f->name, buf_cstr(&st->fnerr));
    }
    return out;
}

static val eval_function(tmpl_state *st, val dot, node *ident, node *cmd, node **args, size_t nargs,
                         val final, bool has_final)
{
    st->at = ident;
    const func_def *f = find_func(ident->u.ident.p, ident->u.ident.n);
    if (!f) xerr(st, "\"%.*s\" is not a defined function", (int)ident->u.ident.n, ident->u.ident.p);
    return eval_call(st, dot, f, cmd, args, nargs, final, has_final);
}

static val eval_command(tmpl_state *st, val dot, node *cmd, val final, bool has_final)
{
    node **args = cmd->u.args.v;
    size_t nargs = cmd->u.args.n;
    node *first = args[0];
    charge(st, 0);
    switch (first->t) {
    case N_FIELD:
        return eval_field_node(st, dot, first, args, nargs, final, has_final);
    case N_CHAIN:
        return eval_chain_node(st, dot, first, args, nargs, final, has_final);
    case N_IDENTIFIER:
        return eval_function(st, dot, first, cmd, args, nargs, final, has_final);
    case N_PIPE:
        not_a_function(st, args, nargs, has_final);
        return eval_pipeline(st, dot, first);
    case N_VARIABLE:
        return eval_variable_node(st, dot, first, args, nargs, final, has_final);
    default:
        break;
    }
    st->at = first;
    not_a_function(st, args, nargs, has_final);
    switch (first->t) {
    case N_BOOL:
        return v_bool(first->u.b);
    case N_DOT:
        return dot;
    case N_NIL:
        xerr(st, "nil is not a command");
    case N_NUMBER:
        return ideal_constant(st, first);
    case N_STRING:
        return v_str(first->u.s.text);
    default:
        xerr(st, "can't evaluate command");
    }
}

static val eval_pipeline(tmpl_state *st, val dot, node *pipe)
{
    st->at = pipe;
    val v = {.k = V_INVALID};
    bool has = false;
    for (size_t k = 0; k < pipe->u.p.cmds.n; k++) {
        v = eval_command(st, dot, pipe->u.p.cmds.v[k], v, has);
        has = true;
        if (v.k == V_NIL) v.k = V_INVALID;
    }
    for (size_t k = 0; k < pipe->u.p.decl.n; k++) {
        str name = pipe->u.p.decl.v[k]->u.f.ident[0];
        if (pipe->u.p.is_assign)
            set_var(st, name, v);
        else
            push_var(st, name, v);
    }
    return v;
}

static void emit(tmpl_state *st, const char *p, size_t n)
{
    if (buf_append(&st->out, p, n) != 0)
        xerr(st, "template output exceeds %d bytes", TMPL_MAX_OUTPUT);
}

static void print_value(tmpl_state *st, node *n, val v)
{
    st->at = n;
    buf tmp;
    buf_init(&tmp, TMPL_MAX_OUTPUT + 1);
    if (v.k == V_SAMPLE && v.u.smp) {
        /* text/template prints what a pointer points to: {map[...] 1} */
        print_sample(st, &tmp, v.u.smp);
        memmove(tmp.data, tmp.data + 1, tmp.len - 1);
        buf_truncate(&tmp, tmp.len - 1);
    } else {
        print_val(st, &tmp, &v);
    }
    if (buf_append(&st->out, buf_cstr(&tmp), tmp.len) != 0) {
        buf_cleanup(&tmp);
        xerr(st, "template output exceeds %d bytes", TMPL_MAX_OUTPUT);
    }
    buf_cleanup(&tmp);
}

static enum walk_ctl walk_list(tmpl_state *st, val dot, node_list *l);

static enum walk_ctl range_iter(tmpl_state *st, node *r, size_t mark, val index, val elem)
{
    node *pipe = r->u.branch.pipe;
    if (++st->range_iters > TMPL_MAX_RANGE) xerr(st, "range exceeds %d iterations", TMPL_MAX_RANGE);
    size_t nd = pipe->u.p.decl.n;
    if (nd > 0) {
        if (pipe->u.p.is_assign)
            set_var(st, pipe->u.p.decl.v[0]->u.f.ident[0], nd > 1 ? index : elem);
        else
            st->vars[st->nvars - 1].v = elem;
    }
    if (nd > 1) {
        if (pipe->u.p.is_assign)
            set_var(st, pipe->u.p.decl.v[1]->u.f.ident[0], elem);
        else
            st->vars[st->nvars - 2].v = index;
    }
    enum walk_ctl c = walk_list(st, elem, r->u.branch.list);
    st->nvars = mark;
    return c;
}

static enum walk_ctl walk_range(tmpl_state *st, val dot, node *r)
{
    st->at = r;
    size_t outer = st->nvars;
    val v = eval_pipeline(st, dot, r->u.branch.pipe);
    size_t mark = st->nvars;
    size_t count = 0;
    switch (v.k) {
    case V_INVALID:
    case V_NIL:
        break;
    case V_QUERY:
        for (size_t k = 0; v.u.q && k < v.u.q->n; k++, count++)
            if (range_iter(st, r, mark, v_int((int64_t)k),
                           (val){.k = V_SAMPLE, .u.smp = v.u.q->v[k]}) == WALK_BREAK) {
                count++;
                break;
            }
        break;
    case V_LABELS:
        for (uint32_t k = 0; v.u.ls && k < v.u.ls->n; k++, count++) {
            const label *l = &v.u.ls->v[k];
            if (range_iter(st, r, mark, v_str((str){l->name, l->name_len}),
                           v_str((str){l->value, l->value_len})) == WALK_BREAK) {
                count++;
                break;
            }
        }
        break;
    case V_MAP: {
        size_t n = v.u.m ? v.u.m->n : 0;
        /* keys in sorted order: arg0 arg1 arg10 ... */
        char key[24];
        size_t *ord = st_alloc(st, (n ? n : 1) * sizeof *ord);
        char(*keys)[24] = st_alloc(st, (n ? n : 1) * sizeof *keys);
        for (size_t k = 0; k < n; k++)
            snprintf(keys[k], sizeof keys[k], "arg%zu", k), ord[k] = k;
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0 && strcmp(keys[ord[j - 1]], keys[ord[j]]) > 0; j--) {
                size_t t = ord[j];
                ord[j] = ord[j - 1];
                ord[j - 1] = t;
            }
        (void)key;
        for (size_t k = 0; k < n; k++, count++) {
            val e = v.u.m->v[ord[k]];
            if (range_iter(st, r, mark, v_str((str){keys[ord[k]], strlen(keys[ord[k]])}), e) ==
                WALK_BREAK) {
                count++;
                break;
            }
        }
        break;
    }
    case V_INT:
        if (r->u.branch.pipe->u.p.decl.n > 1)
            xerr(st, "can't use %" PRId64 " to iterate over more than one variable", v.u.i);
        for (int64_t k = 0; k < v.u.i; k++, count++)
            if (range_iter(st, r, mark, v_int(k), v_int(k)) == WALK_BREAK) {
                count++;
                break;
            }
        break;
    default: {
        buf s;
        buf_init(&s, 256);
        print_val(st, &s, &v);
        char tmp[300];
        snprintf(tmp, sizeof tmp, "%s", buf_cstr(&s));
        buf_cleanup(&s);
        xerr(st, "range can't iterate over %s", tmp);
    }
    }
    enum walk_ctl c = WALK_OK;
    if (count == 0 && r->u.branch.else_list) c = walk_list(st, dot, r->u.branch.else_list);
    st->nvars = outer;
    return c;
}

static enum walk_ctl walk_node_in(tmpl_state *st, val dot, node *n);

/* Bounds the executor's recursion (blocks inside templates inside blocks):
 * the C stack, not only the template depth, must stay small. */
static enum walk_ctl walk_node(tmpl_state *st, val dot, node *n)
{
    if (n->t == N_TEXT || n->t == N_ACTION) return walk_node_in(st, dot, n);
    if (++st->nest > TMPL_MAX_EXEC_NEST) {
        st->at = n;
        xerr(st, "exceeded maximum nesting depth (%d)", TMPL_MAX_EXEC_NEST);
    }
    enum walk_ctl c = walk_node_in(st, dot, n);
    st->nest--;
    return c;
}

static enum walk_ctl walk_node_in(tmpl_state *st, val dot, node *n)
{
    charge(st, 0);
    switch (n->t) {
    case N_TEXT:
        emit(st, n->u.text.p, n->u.text.n);
        charge(st, n->u.text.n);
        return WALK_OK;
    case N_ACTION: {
        val v = eval_pipeline(st, dot, n->u.pipe);
        if (n->u.pipe->u.p.decl.n == 0) print_value(st, n, v);
        return WALK_OK;
    }
    case N_IF:
    case N_WITH: {
        size_t mark = st->nvars;
        val v = eval_pipeline(st, dot, n->u.branch.pipe);
        enum walk_ctl c = WALK_OK;
        if (truth(&v))
            c = walk_list(st, n->t == N_WITH ? v : dot, n->u.branch.list);
        else if (n->u.branch.else_list)
            c = walk_list(st, dot, n->u.branch.else_list);
        st->nvars = mark;
        return c;
    }
    case N_RANGE:
        return walk_range(st, dot, n);
    case N_BREAK:
        return WALK_BREAK;
    case N_CONTINUE:
        return WALK_CONTINUE;
    case N_TEMPLATE: {
        st->at = n;
        tdef *def = NULL;
        for (size_t k = 0; k < st->ndefs; k++)
            if (st->defs[k].name.n == n->u.tmpl.name.n &&
                memcmp(st->defs[k].name.p, n->u.tmpl.name.p, n->u.tmpl.name.n) == 0)
                def = &st->defs[k];
        if (!def)
            xerr(st, "template \"%.*s\" not defined", (int)n->u.tmpl.name.n, n->u.tmpl.name.p);
        if (st->exec_depth >= TMPL_MAX_EXEC_DEPTH)
            xerr(st, "exceeded maximum template depth (%d)", TMPL_MAX_EXEC_DEPTH);
        val nd = {.k = V_INVALID};
        if (n->u.tmpl.pipe) nd = eval_pipeline(st, dot, n->u.tmpl.pipe);
        size_t mark = st->nvars, base = st->vbase;
        const char *name = st->cur_name;
        st->vbase = st->nvars;
        push_var(st, (str){"$", 1}, nd);
        st->exec_depth++;
        st->cur_name = def->name.p; /* NUL-terminated arena copy */
        walk_list(st, nd, def->list);
        st->exec_depth--;
        st->cur_name = name;
        st->nvars = mark;
        st->vbase = base;
        return WALK_OK;
    }
    default:
        return WALK_OK;
    }
}

static enum walk_ctl walk_list(tmpl_state *st, val dot, node_list *l)
{
    for (size_t k = 0; k < l->n; k++) {
        enum walk_ctl c = walk_node(st, dot, l->v[k]);
        if (c != WALK_OK) return c;
    }
    return WALK_OK;
}

/* ---- entry points ----------------------------------------------------------- */

void template_query_result_cleanup(template_query_result *r)
{
    if (!r) return;
    for (size_t k = 0; k < r->n; k++)
        labels_free(r->v[k].metric);
    mem_free(r->v);
    r->v = NULL;
    r->n = 0;
}

static void st_cleanup(tmpl_state *st)
{
    for (size_t k = 0; k < st->nqrs; k++)
        template_query_result_cleanup(&st->qrs[k]);
    mem_free(st->qrs);
    for (size_t k = 0; k < st->nres; k++)
        regex_free(st->res[k]);
    mem_free(st->res);
    mem_free(st->vars);
    buf_cleanup(&st->out);
    buf_cleanup(&st->lexmsg);
    buf_cleanup(&st->fnerr);
    arena_cleanup(&st->a);
}

/* Lexes and parses prefix+text into st. Returns 0 or -EINVAL (message in err). */
static int st_parse(tmpl_state *st, item **items_out)
{
    lexer l = {.in = st->text, .n = st->len, .line = 1, .start_line = 1};
    lex_all(&l, &st->lexmsg);
    *items_out = l.items;
    parser p = {.st = st, .name = st->name, .items = l.items, .nitems = l.nitems};
    p_push_var(&p, "$", 1);
    st->root = p_parse(&p);
    return 0;
}

static void st_init(tmpl_state *st, const char *name, const char *text, size_t len, buf *err,
                    char **joined)
{
    memset(st, 0, sizeof *st);
    st->name = name ? name : "";
    st->cur_name = st->name;
    st->err = err;
    arena_init(&st->a, TMPL_MAX_ARENA);
    buf_init(&st->out, TMPL_MAX_OUTPUT);
    buf_init(&st->lexmsg, BUF_UNLIMITED);
    buf_init(&st->fnerr, BUF_UNLIMITED);
    size_t pl = sizeof ALERT_PREFIX - 1;
    char *t = mem_malloc(pl + len + 1);
    memcpy(t, ALERT_PREFIX, pl);
    if (len) memcpy(t + pl, text, len);
    t[pl + len] = 0;
    st->text = t;
    st->len = pl + len;
    *joined = t;
}

int template_check(const char *name, const char *text, size_t len, buf *err)
{
    tmpl_state *st = mem_malloc(sizeof *st);
    char *joined;
    buf e;
    buf_init(&e, BUF_UNLIMITED);
    st_init(st, name, text, len, &e, &joined);
    item *items = NULL;
    volatile int rc = 0;
    if (setjmp(st->jb) == 0)
        st_parse(st, &items);
    else
        rc = -EINVAL;
    if (rc != 0 && err) buf_append(err, buf_cstr(&e), e.len);
    buf_cleanup(&e);
    mem_free(items);
    mem_free(joined);
    st_cleanup(st);
    mem_free(st);
    return rc;
}

int template_expand(const char *name, const char *text, size_t len, const template_data *d,
                    buf *out, buf *err)
{
    static const template_data empty;
    tmpl_state *st = mem_malloc(sizeof *st);
    char *joined;
    buf e;
    buf_init(&e, BUF_UNLIMITED);
    st_init(st, name, text, len, &e, &joined);
    st->d = d ? d : &empty;
    item *items = NULL;
    volatile int rc = 0;
    if (setjmp(st->jb) == 0) {
        st_parse(st, &items);
        val data = {.k = V_DATA};
        push_var(st, (str){"$", 1}, data);
        walk_list(st, data, st->root);
    } else {
        rc = -EINVAL;
    }
    if (out && buf_append(out, buf_cstr(&st->out), st->out.len) != 0 && rc == 0) {
        rc = -E2BIG;
        buf_printf(&e, "template: %s: output exceeds the caller's buffer", st->name);
    }
    if (rc != 0 && err) buf_append(err, buf_cstr(&e), e.len);
    buf_cleanup(&e);
    mem_free(items);
    mem_free(joined);
    st_cleanup(st);
    mem_free(st);
    return rc;
}
