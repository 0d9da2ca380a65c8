/* promql/ast: names of operators and types, positions, freeing a tree. */
#include "promql/ast.h"

#include <stdio.h>

#include "mem.h"
#include "promql/parse.h"

const char *promql_op_name(enum promql_op op)
{
    switch (op) {
    case PROMQL_OP_NONE: return "";
    case PROMQL_OP_ADD: return "+";
    case PROMQL_OP_SUB: return "-";
    case PROMQL_OP_MUL: return "*";
    case PROMQL_OP_DIV: return "/";
    case PROMQL_OP_MOD: return "%";
    case PROMQL_OP_POW: return "^";
    case PROMQL_OP_ATAN2: return "atan2";
    case PROMQL_OP_EQLC: return "==";
    case PROMQL_OP_NEQ: return "!=";
    case PROMQL_OP_GTR: return ">";
    case PROMQL_OP_LSS: return "<";
    case PROMQL_OP_GTE: return ">=";
    case PROMQL_OP_LTE: return "<=";
    case PROMQL_OP_TRIM_UPPER: return "</";
    case PROMQL_OP_TRIM_LOWER: return ">/";
    case PROMQL_OP_LAND: return "and";
    case PROMQL_OP_LOR: return "or";
    case PROMQL_OP_LUNLESS: return "unless";
    case PROMQL_OP_SUM: return "sum";
    case PROMQL_OP_AVG: return "avg";
    case PROMQL_OP_COUNT: return "count";
    case PROMQL_OP_MIN: return "min";
    case PROMQL_OP_MAX: return "max";
    case PROMQL_OP_GROUP: return "group";
    case PROMQL_OP_STDDEV: return "stddev";
    case PROMQL_OP_STDVAR: return "stdvar";
    case PROMQL_OP_TOPK: return "topk";
    case PROMQL_OP_BOTTOMK: return "bottomk";
    case PROMQL_OP_COUNT_VALUES: return "count_values";
    case PROMQL_OP_QUANTILE: return "quantile";
    case PROMQL_OP_LIMITK: return "limitk";
    case PROMQL_OP_LIMIT_RATIO: return "limit_ratio";
    case PROMQL_OP_STEP: return "step";
    case PROMQL_OP_RANGE: return "range";
    case PROMQL_OP_MIN_OF: return "min_of";
    case PROMQL_OP_MAX_OF: return "max_of";
    case PROMQL_OP_START: return "start";
    case PROMQL_OP_END: return "end";
    }
    return "?";
}

const char *promql_type_name(enum promql_type t)
{
    switch (t) {
    case PROMQL_TYPE_NONE: return "none";
    case PROMQL_TYPE_SCALAR: return "scalar";
    case PROMQL_TYPE_VECTOR: return "vector";
    case PROMQL_TYPE_MATRIX: return "matrix";
    case PROMQL_TYPE_STRING: return "string";
    }
    return "none";
}

const char *promql_type_doc_name(enum promql_type t)
{
    switch (t) {
    case PROMQL_TYPE_NONE: return "none";
    case PROMQL_TYPE_SCALAR: return "scalar";
    case PROMQL_TYPE_VECTOR: return "instant vector";
    case PROMQL_TYPE_MATRIX: return "range vector";
    case PROMQL_TYPE_STRING: return "string";
    }
    return "none";
}

bool promql_op_is_comparison(enum promql_op op)
{
    return op == PROMQL_OP_EQLC || op == PROMQL_OP_NEQ || op == PROMQL_OP_GTR ||
           op == PROMQL_OP_LSS || op == PROMQL_OP_GTE || op == PROMQL_OP_LTE;
}

bool promql_op_is_set(enum promql_op op)
{
    return op == PROMQL_OP_LAND || op == PROMQL_OP_LOR || op == PROMQL_OP_LUNLESS;
}

enum promql_type promql_node_type(const promql_node *n)
{
    switch (n->kind) {
    case PROMQL_NODE_AGGREGATE: return PROMQL_TYPE_VECTOR;
    case PROMQL_NODE_BINARY:
        return promql_node_type(n->binary.lhs) == PROMQL_TYPE_SCALAR &&
                       promql_node_type(n->binary.rhs) == PROMQL_TYPE_SCALAR
                   ? PROMQL_TYPE_SCALAR
                   : PROMQL_TYPE_VECTOR;
    case PROMQL_NODE_CALL: return n->call.func->return_type;
    case PROMQL_NODE_MATRIX_SELECTOR: return PROMQL_TYPE_MATRIX;
    case PROMQL_NODE_SUBQUERY: return PROMQL_TYPE_MATRIX;
    case PROMQL_NODE_NUMBER: return PROMQL_TYPE_SCALAR;
    case PROMQL_NODE_PAREN: return promql_node_type(n->paren.expr);
    case PROMQL_NODE_STRING: return PROMQL_TYPE_STRING;
    case PROMQL_NODE_UNARY: return promql_node_type(n->unary.expr);
    case PROMQL_NODE_VECTOR_SELECTOR: return PROMQL_TYPE_VECTOR;
    case PROMQL_NODE_DURATION: return PROMQL_TYPE_SCALAR;
    }
    return PROMQL_TYPE_NONE;
}

void promql_ast_free(promql_ast *ast)
{
    if (!ast) return;
    for (size_t i = 0; i < ast->n_matcher_arrays; i++) {
        for (size_t k = 0; k < ast->matcher_counts[i]; k++)
            labels_matcher_cleanup(&ast->matcher_arrays[i][k]);
    }
    mem_free(ast->matcher_arrays);
    mem_free(ast->matcher_counts);
    mem_free(ast->query);
    arena_cleanup(&ast->mem);
    mem_free(ast);
}

void promql_pos_format(const char *query, size_t query_len, uint32_t pos, buf *out)
{
    /* Prometheus: line = 1 + newlines before pos; column = 1 + bytes since
     * the last newline before pos. */
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos && i < query_len; i++) {
        if (query[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    buf_printf(out, "%zu:%zu", line, col);
}
