/* promql/ast: the syntax tree of a PromQL expression, as produced by
 * promql_parse() (promql/parse.h) and read by the evaluator (promql/eval.h).
 *
 * It mirrors Prometheus 3.x's promql/parser/ast.go node for node, so that the
 * evaluator can follow Prometheus's semantics line by line. Every node, every
 * string and every array of a tree lives in its promql_ast's arena and is
 * freed with it; label matchers own their regexes and are released by
 * promql_ast_free(). A tree is immutable once parsed: evaluation never
 * changes it, so one parsed rule is evaluated many times, from any thread. */
#ifndef SIDEWATCH_PROMQL_AST_H
#define SIDEWATCH_PROMQL_AST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "labels.h"

/* A byte range [start, end) in the query text (Prometheus's
 * posrange.PositionRange). Errors and annotations report the start as
 * line:column (1-based, columns count bytes) via promql_pos_format(). */
typedef struct promql_pos {
    uint32_t start, end;
} promql_pos;

/* A string with its length (label names and values may hold any UTF-8,
 * string literals any bytes after unescaping); p is NUL-terminated too. */
typedef struct promql_str {
    const char *p;
    size_t len;
} promql_str;

enum promql_type {
    PROMQL_TYPE_NONE,
    PROMQL_TYPE_SCALAR,
    PROMQL_TYPE_VECTOR, /* instant vector */
    PROMQL_TYPE_MATRIX, /* range vector */
    PROMQL_TYPE_STRING,
};

/* Operators, aggregations and the keywords that act like operators. */
enum promql_op {
    PROMQL_OP_NONE,
    /* arithmetic (binary; ADD and SUB also unary) */
    PROMQL_OP_ADD, /* + */
    PROMQL_OP_SUB, /* - */
    PROMQL_OP_MUL, /* * */
    PROMQL_OP_DIV, /* / */
    PROMQL_OP_MOD, /* % */
    PROMQL_OP_POW, /* ^ */
    PROMQL_OP_ATAN2,
    /* comparison */
    PROMQL_OP_EQLC, /* == */
    PROMQL_OP_NEQ,  /* != */
    PROMQL_OP_GTR,  /* > */
    PROMQL_OP_LSS,  /* < */
    PROMQL_OP_GTE,  /* >= */
    PROMQL_OP_LTE,  /* <= */
    /* native-histogram trims */
    PROMQL_OP_TRIM_UPPER, /* </ */
    PROMQL_OP_TRIM_LOWER, /* >/ */
    /* set operators */
    PROMQL_OP_LAND,    /* and */
    PROMQL_OP_LOR,     /* or */
    PROMQL_OP_LUNLESS, /* unless */
    /* aggregations */
    PROMQL_OP_SUM,
    PROMQL_OP_AVG,
    PROMQL_OP_COUNT,
    PROMQL_OP_MIN,
    PROMQL_OP_MAX,
    PROMQL_OP_GROUP,
    PROMQL_OP_STDDEV,
    PROMQL_OP_STDVAR,
    PROMQL_OP_TOPK,
    PROMQL_OP_BOTTOMK,
    PROMQL_OP_COUNT_VALUES,
    PROMQL_OP_QUANTILE,
    PROMQL_OP_LIMITK,
    PROMQL_OP_LIMIT_RATIO,
    /* duration expressions only: step(), range(), min_of(a, b), max_of(a, b) */
    PROMQL_OP_STEP,
    PROMQL_OP_RANGE,
    PROMQL_OP_MIN_OF,
    PROMQL_OP_MAX_OF,
    /* @ start() / @ end() */
    PROMQL_OP_START,
    PROMQL_OP_END,
};

/* The operator as PromQL writes it: "+", "==", "and", "sum", "count_values",
 * "step", ... */
const char *promql_op_name(enum promql_op op);
/* Prometheus's ValueType strings: "scalar", "vector", "matrix", "string"
 * ("none" for PROMQL_TYPE_NONE). Used in API "resultType". */
const char *promql_type_name(enum promql_type t);
/* The names used in parse errors ("instant vector", "range vector",
 * "scalar", "string"), as Prometheus's DocumentedType. */
const char *promql_type_doc_name(enum promql_type t);
/* True for == != > < >= <=. */
bool promql_op_is_comparison(enum promql_op op);
/* True for and, or, unless. */
bool promql_op_is_set(enum promql_op op);

enum promql_node_kind {
    PROMQL_NODE_AGGREGATE,       /* sum by (a) (x) */
    PROMQL_NODE_BINARY,          /* a + on(b) group_left(c) fill(0) d */
    PROMQL_NODE_CALL,            /* rate(x[5m]) */
    PROMQL_NODE_MATRIX_SELECTOR, /* x[5m] */
    PROMQL_NODE_SUBQUERY,        /* expr[1h:1m] */
    PROMQL_NODE_NUMBER,          /* 1, 0x1f, Inf, 5m (a duration used as a number) */
    PROMQL_NODE_PAREN,           /* (expr) */
    PROMQL_NODE_STRING,          /* "text" */
    PROMQL_NODE_UNARY,           /* -expr */
    PROMQL_NODE_VECTOR_SELECTOR, /* x{a="b"} offset 5m @ 100 */
    PROMQL_NODE_DURATION,        /* an arithmetic duration expression: 5m + step() */
};

enum promql_card {
    PROMQL_CARD_ONE_TO_ONE,
    PROMQL_CARD_MANY_TO_ONE, /* group_left */
    PROMQL_CARD_ONE_TO_MANY, /* group_right */
    PROMQL_CARD_MANY_TO_MANY, /* set operators */
};

/* Vector matching of a binary operation between two instant vectors
 * (Prometheus's VectorMatching). Present on every binary node whose operands
 * are both vectors, as in Prometheus (default: one-to-one, ignoring no labels;
 * set operators: many-to-many). */
typedef struct promql_vector_matching {
    enum promql_card card;
    promql_str *matching_labels; /* on(...) or ignoring(...) labels */
    size_t n_matching;
    bool on;                     /* on() rather than ignoring() */
    promql_str *include;         /* group_left(...)/group_right(...) labels */
    size_t n_include;
    /* fill(v) / fill_left(v) / fill_right(v) modifiers (Prometheus 3.x,
     * experimental): the value used for a missing sample on that side. */
    bool has_fill_lhs, has_fill_rhs;
    double fill_lhs, fill_rhs;
} promql_vector_matching;

typedef struct promql_function promql_function; /* promql/parse.h */
typedef struct promql_node promql_node;

/* An offset modifier. `original_ms` is the offset as written (negative
 * offsets allowed), or 0 with `expr` set when it is a duration expression
 * (offset step()*2) to be evaluated per query. */
typedef struct promql_offset {
    int64_t original_ms;
    promql_node *expr; /* PROMQL_NODE_DURATION or NULL */
    /* The offset in nanoseconds, as Prometheus keeps it (original_ms is this
     * divided by 10^6, truncated): only differs for offsets written as
     * fractions of a millisecond, which Prometheus still prints ("0s") and
     * counts as set. */
    int64_t ns;
} promql_offset;

/* An @ modifier: none, a fixed timestamp (ms), or @ start() / @ end(). */
typedef struct promql_at {
    bool set;
    int64_t ts_ms;             /* when set and start_or_end == NONE */
    enum promql_op start_or_end; /* PROMQL_OP_START, PROMQL_OP_END or NONE */
} promql_at;

struct promql_node {
    enum promql_node_kind kind;
    /* The node's range in the query text, as Prometheus's PositionRange()
     * of the same node (used for annotations and errors). */
    promql_pos pos;
    union {
        struct {
            enum promql_op op;
            promql_node *expr;
            promql_node *param; /* topk's k, quantile's q, count_values' label, ...; or NULL */
            promql_str *grouping;
            size_t n_grouping;
            bool without;
        } aggregate;
        struct {
            enum promql_op op;
            promql_node *lhs, *rhs;
            promql_vector_matching *matching; /* NULL unless both sides are vectors */
            bool return_bool;
        } binary;
        struct {
            const promql_function *func;
            promql_node **args;
            size_t nargs;
        } call;
        struct {
            promql_node *vs;        /* PROMQL_NODE_VECTOR_SELECTOR */
            int64_t range_ms;       /* > 0, or 0 with range_expr set */
            promql_node *range_expr; /* PROMQL_NODE_DURATION or NULL */
        } matrix;
        struct {
            promql_node *expr;
            int64_t range_ms;        /* > 0, or 0 with range_expr set */
            promql_node *range_expr;  /* or NULL */
            int64_t step_ms;         /* 0 = the default step (not written) */
            promql_node *step_expr;   /* or NULL */
            int64_t step_ns;         /* the step in ns as Prometheus keeps it (non-zero
                                      * with step_ms 0 only below 1ms) */
            promql_offset offset;
            promql_at at;
        } subquery;
        struct {
            double val;
            bool duration; /* written as a duration: printed as one */
        } number;
        struct {
            promql_node *expr;
        } paren;
        struct {
            promql_str val; /* unescaped */
        } string;
        struct {
            enum promql_op op; /* ADD or SUB */
            promql_node *expr;
        } unary;
        struct {
            promql_str name;          /* the metric name as written, or empty */
            label_matcher *matchers;  /* all of them, __name__ included */
            size_t n_matchers;
            promql_offset offset;
            promql_at at;
            bool anchored, smoothed;  /* Prometheus 3.x extended range selectors */
        } vector;
        struct {
            enum promql_op op; /* ADD SUB MUL DIV MOD POW (binary; SUB/ADD unary with
                                * rhs NULL), STEP, RANGE (no operands), MIN_OF,
                                * MAX_OF (two operands), or NONE for a literal */
            promql_node *lhs, *rhs; /* PROMQL_NODE_DURATION or PROMQL_NODE_NUMBER */
            bool wrapped;           /* written in parentheses */
        } duration;
    };
};

/* The value type of an expression, as Prometheus's Expr.Type(). */
enum promql_type promql_node_type(const promql_node *n);

/* A parsed expression: the tree and the memory it lives in. */
typedef struct promql_ast {
    promql_node *root;
    arena mem;
    char *query; /* a copy of the text, for positions */
    size_t query_len;
    label_matcher **matcher_arrays; /* to release (regexes) */
    size_t *matcher_counts;
    size_t n_matcher_arrays, cap_matcher_arrays;
} promql_ast;

/* Frees the tree; NULL is a no-op. */
void promql_ast_free(promql_ast *ast);

/* Appends "line:col" of byte offset `pos` in `query` (1-based), as
 * Prometheus's PositionRange.StartPosInput. */
void promql_pos_format(const char *query, size_t query_len, uint32_t pos, buf *out);

#endif
