/* promql/parse: PromQL text to a syntax tree (promql/ast.h), as Prometheus
 * 3.x's promql/parser does, with its error messages and positions; and the
 * tree back to text (Prometheus's String() and Pretty()).
 *
 * The lexer (promql/lex.h) is internal to this module's parser. */
#ifndef SIDEWATCH_PROMQL_PARSE_H
#define SIDEWATCH_PROMQL_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "promql/ast.h"

/* A function of the language (Prometheus's parser.Function). */
struct promql_function {
    const char *name;
    enum promql_type arg_types[6];
    size_t n_args;       /* entries of arg_types */
    int variadic;        /* 0: exactly n_args; > 0: up to that many extra
                          * arguments of the last type; -1: unlimited extra */
    enum promql_type return_type;
    bool experimental;   /* needs promql_parse_options.experimental_functions */
};

/* The function called `name`, or NULL. Borrowed from a static table. */
const promql_function *promql_function_lookup(const char *name, size_t len);
/* Every function, in name order; *n receives the count. */
const promql_function *promql_functions(size_t *n);

/* Prometheus 3.x keeps some syntax behind feature flags
 * (--enable-feature=promql-experimental-functions,
 * promql-duration-expr, promql-extended-range-selectors, ...). Off by default
 * as in Prometheus; the promqltest runner turns them all on. */
typedef struct promql_parse_options {
    bool experimental_functions;   /* functions with experimental = true, limitk, limit_ratio */
    bool duration_expressions;     /* step(), range(), min_of/max_of, arithmetic in [] and offset */
    bool extended_range_selectors; /* anchored, smoothed */
    bool fill_modifiers;           /* fill(), fill_left(), fill_right() */
    /* Longest regex a query may carry, in bytes (=~ and !~ matchers,
     * label_replace's regex; --query.max-regex-bytes); 0 = only regex.h's
     * REGEX_MAX_PATTERN. Checked before the regex is compiled. */
    size_t max_regex_bytes;
} promql_parse_options;

/* Parses a PromQL expression. On success returns 0 and a new tree in *out
 * (caller frees with promql_ast_free). On failure returns -EINVAL and
 * appends Prometheus's message to err, e.g.
 *   1:14: parse error: unexpected right parenthesis ')'
 * Like Prometheus (ParseErrors.Error() prints its first error only), the
 * message is the first error Prometheus's parser would report. -ENOMEM
 * is never returned (memory wrappers abort). A NULL `opts` means all
 * options off.
 * Limits: queries longer than PROMQL_MAX_QUERY_BYTES ("1:1: parse error:
 * query is longer than ... bytes") and trees deeper than PROMQL_MAX_DEPTH
 * nodes, long operator chains included ("... parse error: expression nested
 * too deeply (more than 1000 levels)") are refused, never a stack overflow;
 * Prometheus has neither limit. A regex longer than opts->max_regex_bytes
 * fails with -E2BIG (not -EINVAL) and "<pos>: parse error: regular
 * expression is too large (N bytes, the limit is M bytes)", so callers can
 * count that refusal apart. */
#define PROMQL_MAX_QUERY_BYTES (1 << 20)
#define PROMQL_MAX_DEPTH 1000
int promql_parse(const char *query, size_t len, const promql_parse_options *opts, promql_ast **out,
                 buf *err);

/* Appends the expression as Prometheus's String() prints it (canonical
 * form: `sum by (a) (rate(x{b="c"}[5m] offset 1m))`). */
void promql_format(const promql_node *n, buf *out);
/* Appends Prometheus's Pretty(0) form (used by /api/v1/format_query). */
void promql_pretty(const promql_node *n, buf *out);
/* The same with another line width than Prometheus's 100 characters
 * (maxCharactersPerLine; its tests use 10). */
void promql_pretty_width(const promql_node *n, size_t width, buf *out);

#endif
