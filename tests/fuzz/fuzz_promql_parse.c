/* libFuzzer target for agent/promql (lex, parse, print): parses the input
 * as a PromQL query (the first byte picks the parser options, the rest is
 * the query); a failure must come with a "line:col: parse error: " message
 * and no tree. A parsed query is printed with promql_format (String()) and
 * promql_pretty, and the String() must parse again to the same String(),
 * except where Prometheus's own String() loses information (see
 * prometheus_lossy()): printing those exactly as Prometheus does matters
 * more than a round trip Prometheus does not have.
 *
 * Built and run by `make fuzz` (with every other tests/fuzz/fuzz_*.c), or:
 *   make fuzz-promql_parse FUZZ_SECONDS=60
 * (clang -fsanitize=fuzzer,address,undefined, linked with agent/ and
 * exporter/; seeded with the queries of tests/data/promql-parse/ and of
 * ../shared/conformance/promql/, each after an option byte 0x0f).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "promql/parse.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

/* Trees whose String() Prometheus itself cannot read back the same:
 *  - ranges, subquery steps and offsets below 1ms print as "0s" (a range or
 *    step of 0s does not parse, an offset of 0s is dropped);
 *  - an offset duration expression that begins with a number literal (made
 *    by two signs, `offset - -5m + 1`) prints without parentheses, and reads
 *    back as a binary operation on the offset `offset 5m`;
 *  - `offset +(5)`, allowed without duration expressions, prints as
 *    `offset (5)`, which needs them;
 *  - `offset +(5)` with duration expressions prints as `offset (5)` too
 *    (applyUnaryOpToDurationExpr drops a unary plus), and `x offset +(5) + y`
 *    then reads back with `+ y` inside the duration expression; likewise
 *    `x offset +-1^1` (the offset -(1^1)) prints as `x offset -1 ^ 1`,
 *    which reads back as `(x offset -1s) ^ 1`;
 *  - `info(x, {})` prints as `info(x, )` (an empty selector prints as
 *    nothing), which reads back as `info(x)` (a trailing comma is allowed). */
static bool durations_off;
static const char *query_text; /* the query being parsed, for positions */

/* Whether an offset expression was written with a unary plus (`offset
 * +(5)`, `offset +-1^1`): its node starts after the `+` (and inside the
 * parentheses, after `+(`). */
static bool unary_plus_before(const promql_node *d)
{
    uint32_t i = d->pos.start;
    while (i > 0 && (query_text[i - 1] == ' ' || query_text[i - 1] == '(' || query_text[i - 1] == '\t' ||
                     query_text[i - 1] == '\n' || query_text[i - 1] == '\r'))
        i--;
    return i > 0 && query_text[i - 1] == '+';
}

static bool leftmost_number(const promql_node *d)
{
    while (d->kind == PROMQL_NODE_DURATION && !d->duration.wrapped && d->duration.lhs &&
           d->duration.op != PROMQL_OP_MIN_OF && d->duration.op != PROMQL_OP_MAX_OF)
        d = d->duration.lhs;
    return d->kind == PROMQL_NODE_NUMBER;
}

static bool offset_lossy(const promql_offset *o)
{
    if (o->ns != 0 && o->original_ms == 0) return true;
    if (durations_off && o->expr && o->expr->duration.op == PROMQL_OP_ADD && !o->expr->duration.rhs)
        return true;
    if (o->expr && unary_plus_before(o->expr)) return true;
    return o->expr && !o->expr->duration.wrapped && o->expr->duration.rhs &&
           o->expr->duration.op != PROMQL_OP_MIN_OF && o->expr->duration.op != PROMQL_OP_MAX_OF &&
           leftmost_number(o->expr);
}

static bool prometheus_lossy(const promql_node *n)
{
    if (!n) return false;
    switch (n->kind) {
    case PROMQL_NODE_AGGREGATE:
        return prometheus_lossy(n->aggregate.expr) || prometheus_lossy(n->aggregate.param);
    case PROMQL_NODE_BINARY:
        return prometheus_lossy(n->binary.lhs) || prometheus_lossy(n->binary.rhs);
    case PROMQL_NODE_CALL:
        if (n->call.nargs > 1 && n->call.args[1]->kind == PROMQL_NODE_VECTOR_SELECTOR &&
            n->call.args[1]->vector.name.len == 0 && n->call.args[1]->vector.n_matchers == 0)
            return true;
        for (size_t i = 0; i < n->call.nargs; i++)
            if (prometheus_lossy(n->call.args[i])) return true;
        return false;
    case PROMQL_NODE_MATRIX_SELECTOR:
        return (n->matrix.range_ms == 0 && !n->matrix.range_expr) || prometheus_lossy(n->matrix.vs);
    case PROMQL_NODE_SUBQUERY:
        return (n->subquery.range_ms == 0 && !n->subquery.range_expr) ||
               (n->subquery.step_ns != 0 && n->subquery.step_ms == 0) ||
               offset_lossy(&n->subquery.offset) || prometheus_lossy(n->subquery.expr);
    case PROMQL_NODE_PAREN:
        return prometheus_lossy(n->paren.expr);
    case PROMQL_NODE_UNARY:
        return prometheus_lossy(n->unary.expr);
    case PROMQL_NODE_VECTOR_SELECTOR:
        return offset_lossy(&n->vector.offset);
    default:
        return false;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    promql_parse_options o = {
        .experimental_functions = data[0] & 1,
        .duration_expressions = data[0] & 2,
        .extended_range_selectors = data[0] & 4,
        .fill_modifiers = data[0] & 8,
    };
    durations_off = !o.duration_expressions;
    /* An exact-size copy, so the sanitizer sees any overread. */
    size_t n = size - 1;
    char *q = malloc(n ? n : 1);
    CHECK(q);
    if (n) memcpy(q, data + 1, n);
    query_text = q;

    promql_ast *ast = NULL;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    int rc = promql_parse(q, n, &o, &ast, &err);
    if (rc != 0) {
        CHECK(ast == NULL);
        CHECK(strstr(buf_cstr(&err), ": parse error: ") != NULL);
    } else {
        CHECK(ast && ast->root && err.len == 0);
        buf s1, s2, pretty;
        buf_init(&s1, BUF_UNLIMITED);
        buf_init(&s2, BUF_UNLIMITED);
        buf_init(&pretty, BUF_UNLIMITED);
        promql_format(ast->root, &s1);
        promql_pretty(ast->root, &pretty);
        promql_type_name(promql_node_type(ast->root));

        promql_ast *again = NULL;
        buf err2;
        buf_init(&err2, BUF_UNLIMITED);
        rc = promql_parse(s1.data ? s1.data : "", s1.len, &o, &again, &err2);
        bool lossy = prometheus_lossy(ast->root);
        /* The printed form of a valid query must be valid, and the same. */
        CHECK(rc == 0 || lossy);
        if (rc == 0) {
            promql_format(again->root, &s2);
            CHECK(lossy || (s1.len == s2.len && memcmp(buf_cstr(&s1), buf_cstr(&s2), s1.len) == 0));
        }
        promql_ast_free(again);
        buf_cleanup(&err2);
        buf_cleanup(&s1);
        buf_cleanup(&s2);
        buf_cleanup(&pretty);
    }
    promql_ast_free(ast);
    buf_cleanup(&err);
    free(q);
    return 0;
}
