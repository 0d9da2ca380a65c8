/* promql/lex: the PromQL lexer (internal to promql/parse).
 *
 * Splits a query into tokens exactly as Prometheus 3.x's lexer does
 * (promql/parser/lex.go): numbers (decimal, octal, hex, Inf, NaN), durations,
 * strings in "", '' and `` (kept raw, unescaped by the parser), identifiers,
 * metric identifiers with colons, keywords, operators, comments, the inside of
 * braces and of brackets (duration expressions), and Prometheus's lexer errors
 * with their texts. Tokens are produced on demand, one at a time, because the
 * parser's error positions depend on how far the lexer has read. */
#ifndef SIDEWATCH_PROMQL_LEX_H
#define SIDEWATCH_PROMQL_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum promql_tok {
    PROMQL_TOK_EOF,
    PROMQL_TOK_ERROR, /* message in promql_lexer.err */
    PROMQL_TOK_COMMENT,
    PROMQL_TOK_IDENTIFIER,
    PROMQL_TOK_METRIC_IDENTIFIER,
    PROMQL_TOK_NUMBER,
    PROMQL_TOK_DURATION,
    PROMQL_TOK_STRING, /* raw text, quotes included */
    PROMQL_TOK_LEFT_PAREN,
    PROMQL_TOK_RIGHT_PAREN,
    PROMQL_TOK_LEFT_BRACE,
    PROMQL_TOK_RIGHT_BRACE,
    PROMQL_TOK_LEFT_BRACKET,
    PROMQL_TOK_RIGHT_BRACKET,
    PROMQL_TOK_COMMA,
    PROMQL_TOK_EQL, /* = */
    PROMQL_TOK_COLON,
    /* operators (Prometheus's IsOperator range) */
    PROMQL_TOK_ADD,
    PROMQL_TOK_DIV,
    PROMQL_TOK_EQLC,
    PROMQL_TOK_EQL_REGEX,
    PROMQL_TOK_GTE,
    PROMQL_TOK_GTR,
    PROMQL_TOK_TRIM_UPPER,
    PROMQL_TOK_TRIM_LOWER,
    PROMQL_TOK_LAND,
    PROMQL_TOK_LOR,
    PROMQL_TOK_LSS,
    PROMQL_TOK_LTE,
    PROMQL_TOK_LUNLESS,
    PROMQL_TOK_MOD,
    PROMQL_TOK_MUL,
    PROMQL_TOK_NEQ,
    PROMQL_TOK_NEQ_REGEX,
    PROMQL_TOK_POW,
    PROMQL_TOK_SUB,
    PROMQL_TOK_AT,
    PROMQL_TOK_ATAN2,
    /* aggregators */
    PROMQL_TOK_AVG,
    PROMQL_TOK_BOTTOMK,
    PROMQL_TOK_COUNT,
    PROMQL_TOK_COUNT_VALUES,
    PROMQL_TOK_GROUP,
    PROMQL_TOK_MAX,
    PROMQL_TOK_MIN,
    PROMQL_TOK_QUANTILE,
    PROMQL_TOK_STDDEV,
    PROMQL_TOK_STDVAR,
    PROMQL_TOK_SUM,
    PROMQL_TOK_TOPK,
    PROMQL_TOK_LIMITK,
    PROMQL_TOK_LIMIT_RATIO,
    /* keywords */
    PROMQL_TOK_BOOL,
    PROMQL_TOK_BY,
    PROMQL_TOK_GROUP_LEFT,
    PROMQL_TOK_GROUP_RIGHT,
    PROMQL_TOK_FILL,
    PROMQL_TOK_FILL_LEFT,
    PROMQL_TOK_FILL_RIGHT,
    PROMQL_TOK_IGNORING,
    PROMQL_TOK_OFFSET,
    PROMQL_TOK_SMOOTHED,
    PROMQL_TOK_ANCHORED,
    PROMQL_TOK_ON,
    PROMQL_TOK_WITHOUT,
    /* preprocessors */
    PROMQL_TOK_START,
    PROMQL_TOK_END,
    PROMQL_TOK_STEP,
    PROMQL_TOK_RANGE,
    PROMQL_TOK_MAX_OF,
    PROMQL_TOK_MIN_OF,
    PROMQL_TOK__COUNT
};

typedef struct promql_token {
    enum promql_tok type;
    uint32_t pos; /* byte offset of the first byte */
    uint32_t len; /* bytes of the token text (0 for EOF and ERROR) */
} promql_token;

typedef struct promql_lexer {
    const char *in;
    uint32_t len;
    uint32_t pos;   /* next byte to read */
    uint32_t start; /* start of the token being scanned */
    int mode;       /* internal state */
    int paren_depth;
    bool brace_open, bracket_open, got_colon, got_duration;
    uint32_t quote; /* the quote rune of the string being read */
    buf err;        /* message of the last PROMQL_TOK_ERROR */
} promql_lexer;

/* Starts lexing in[0..len) (borrowed; len < 2^32). Release with
 * promql_lex_cleanup(). */
void promql_lex_init(promql_lexer *l, const char *in, size_t len);
void promql_lex_cleanup(promql_lexer *l);

/* Scans the next token into *t. After EOF it keeps returning EOF. An error
 * returns PROMQL_TOK_ERROR at the offset Prometheus reports (t->pos), with
 * its text in l->err; errors inside a string let lexing go on with the rest
 * of the string, as Prometheus's lexer does, other errors end the input. */
void promql_lex_next(promql_lexer *l, promql_token *t);

/* True once the input has ended (EOF or an error that ends lexing). */
bool promql_lex_done(const promql_lexer *l);

/* Prometheus's name of a token type for "unexpected ..." messages: the
 * fixed text of punctuation, operators and keywords ("(", "+", "by"), or
 * NULL for the types whose text varies (identifiers, numbers, ...). */
const char *promql_tok_text(enum promql_tok t);

/* The keyword type of an identifier-like word (case-insensitive), including
 * "inf" and "nan" as PROMQL_TOK_NUMBER; PROMQL_TOK_IDENTIFIER if none. */
enum promql_tok promql_lex_keyword(const char *s, size_t len);

/* Decodes one UTF-8 rune as Go's utf8.DecodeRune: invalid input gives
 * U+FFFD with width 1. s[0..len) must hold at least one byte. */
uint32_t promql_lex_rune(const char *s, size_t len, uint32_t *width);

/* Appends the rune quoted as Go's %q ('x', '\n', '\u00a0'). */
void promql_lex_quote_rune(buf *out, int32_t r);
/* Appends s quoted as Go's %q / strconv.Quote. */
void promql_lex_quote(buf *out, const char *s, size_t len);
/* Go's strconv.IsPrint (approximated for code points outside ASCII). */
bool promql_lex_rune_printable(uint32_t r);

#endif
