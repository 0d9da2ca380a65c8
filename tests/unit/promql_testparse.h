/* A small PromQL parser for the evaluator's unit tests only.
 *
 * The real parser (promql/parse.c) is written in parallel; until it is
 * merged, this one turns the test expressions into promql/ast.h trees. It
 * accepts the PromQL the test data uses (selectors, offset, @, ranges,
 * subqueries, duration expressions, calls, aggregations, binary operators
 * with bool/on/ignoring/group_*, fill modifiers, anchored/smoothed) and
 * records node positions as Prometheus does, without Prometheus's
 * type checks or error messages. */
#ifndef SIDEWATCH_PROMQL_TESTPARSE_H
#define SIDEWATCH_PROMQL_TESTPARSE_H

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "expfmt.h"
#include "labels.h"
#include "mem.h"
#include "promql/ast.h"
#include "promql/parse.h"
#include "strutil.h"

#define V PROMQL_TYPE_VECTOR
#define M PROMQL_TYPE_MATRIX
#define S PROMQL_TYPE_SCALAR
#define T PROMQL_TYPE_STRING

static const promql_function tp_functions[] = {
    {"abs", {V}, 1, 0, V, false},
    {"absent", {V}, 1, 0, V, false},
    {"absent_over_time", {M}, 1, 0, V, false},
    {"acos", {V}, 1, 0, V, false},
    {"acosh", {V}, 1, 0, V, false},
    {"asin", {V}, 1, 0, V, false},
    {"asinh", {V}, 1, 0, V, false},
    {"atan", {V}, 1, 0, V, false},
    {"atanh", {V}, 1, 0, V, false},
    {"avg_over_time", {M}, 1, 0, V, false},
    {"ceil", {V}, 1, 0, V, false},
    {"changes", {M}, 1, 0, V, false},
    {"clamp", {V, S, S}, 3, 0, V, false},
    {"clamp_max", {V, S}, 2, 0, V, false},
    {"clamp_min", {V, S}, 2, 0, V, false},
    {"cos", {V}, 1, 0, V, false},
    {"cosh", {V}, 1, 0, V, false},
    {"count_over_time", {M}, 1, 0, V, false},
    {"day_of_month", {V}, 1, 1, V, false},
    {"day_of_week", {V}, 1, 1, V, false},
    {"day_of_year", {V}, 1, 1, V, false},
    {"days_in_month", {V}, 1, 1, V, false},
    {"deg", {V}, 1, 0, V, false},
    {"delta", {M}, 1, 0, V, false},
    {"deriv", {M}, 1, 0, V, false},
    {"double_exponential_smoothing", {M, S, S}, 3, 0, V, true},
    {"end", {0}, 0, 0, S, true},
    {"exp", {V}, 1, 0, V, false},
    {"first_over_time", {M}, 1, 0, V, false},
    {"floor", {V}, 1, 0, V, false},
    {"histogram_avg", {V}, 1, 0, V, false},
    {"histogram_count", {V}, 1, 0, V, false},
    {"histogram_fraction", {S, S, V}, 3, 0, V, false},
    {"histogram_quantile", {S, V}, 2, 0, V, false},
    {"histogram_quantiles", {V, T, S, S}, 4, 9, V, true},
    {"histogram_stddev", {V}, 1, 0, V, false},
    {"histogram_stdvar", {V}, 1, 0, V, false},
    {"histogram_sum", {V}, 1, 0, V, false},
    {"hour", {V}, 1, 1, V, false},
    {"idelta", {M}, 1, 0, V, false},
    {"increase", {M}, 1, 0, V, false},
    {"info", {V, V}, 2, 1, V, true},
    {"irate", {M}, 1, 0, V, false},
    {"label_join", {V, T, T, T}, 4, -1, V, false},
    {"label_replace", {V, T, T, T, T}, 5, 0, V, false},
    {"last_over_time", {M}, 1, 0, V, false},
    {"ln", {V}, 1, 0, V, false},
    {"log10", {V}, 1, 0, V, false},
    {"log2", {V}, 1, 0, V, false},
    {"mad_over_time", {M}, 1, 0, V, true},
    {"max_of", {S, S}, 2, 0, S, true},
    {"max_over_time", {M}, 1, 0, V, false},
    {"min_of", {S, S}, 2, 0, S, true},
    {"min_over_time", {M}, 1, 0, V, false},
    {"minute", {V}, 1, 1, V, false},
    {"month", {V}, 1, 1, V, false},
    {"pi", {0}, 0, 0, S, false},
    {"predict_linear", {M, S}, 2, 0, V, false},
    {"present_over_time", {M}, 1, 0, V, false},
    {"quantile_over_time", {S, M}, 2, 0, V, false},
    {"rad", {V}, 1, 0, V, false},
    {"range", {0}, 0, 0, S, true},
    {"rate", {M}, 1, 0, V, false},
    {"resets", {M}, 1, 0, V, false},
    {"round", {V, S}, 2, 1, V, false},
    {"scalar", {V}, 1, 0, S, false},
    {"sgn", {V}, 1, 0, V, false},
    {"sin", {V}, 1, 0, V, false},
    {"sinh", {V}, 1, 0, V, false},
    {"sort", {V}, 1, 0, V, false},
    {"sort_by_label", {V, T}, 2, -1, V, true},
    {"sort_by_label_desc", {V, T}, 2, -1, V, true},
    {"sort_desc", {V}, 1, 0, V, false},
    {"sqrt", {V}, 1, 0, V, false},
    {"start", {0}, 0, 0, S, true},
    {"start_timestamp", {V}, 1, 0, V, true},
    {"stddev_over_time", {M}, 1, 0, V, false},
    {"stdvar_over_time", {M}, 1, 0, V, false},
    {"step", {0}, 0, 0, S, true},
    {"sum_over_time", {M}, 1, 0, V, false},
    {"tan", {V}, 1, 0, V, false},
    {"tanh", {V}, 1, 0, V, false},
    {"time", {0}, 0, 0, S, false},
    {"timestamp", {V}, 1, 0, V, false},
    {"ts_of_first_over_time", {M}, 1, 0, V, true},
    {"ts_of_last_over_time", {M}, 1, 0, V, true},
    {"ts_of_max_over_time", {M}, 1, 0, V, true},
    {"ts_of_min_over_time", {M}, 1, 0, V, true},
    {"vector", {S}, 1, 0, V, false},
    {"year", {V}, 1, 1, V, false},
};
#undef V
#undef M
#undef S
#undef T

static const promql_function *tp_function(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof tp_functions / sizeof tp_functions[0]; i++)
        if (strlen(tp_functions[i].name) == len && !memcmp(tp_functions[i].name, name, len))
            return &tp_functions[i];
    return NULL;
}

typedef struct tp {
    const char *s;
    size_t len, pos;
    promql_ast *ast;
    buf *err;
    int failed;
} tp;

static void *tp_alloc(tp *p, size_t n)
{
    void *r = arena_calloc(&p->ast->mem, n);
    if (!r) abort();
    return r;
}

static int tp_fail(tp *p, const char *msg)
{
    if (!p->failed) buf_printf(p->err, "%zu: parse error: %s", p->pos, msg);
    p->failed = 1;
    return -EINVAL;
}

static void tp_ws(tp *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            p->pos++;
        } else if (c == '#') {
            while (p->pos < p->len && p->s[p->pos] != '\n')
                p->pos++;
        } else {
            break;
        }
    }
}

static bool tp_ident_start(char c)
{
    return isalpha((unsigned char)c) || c == '_' || c == ':';
}

static bool tp_ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == ':';
}

/* The identifier at the current position (without consuming), or 0. */
static size_t tp_peek_ident(tp *p, const char **id)
{
    tp_ws(p);
    size_t i = p->pos;
    if (i >= p->len || !tp_ident_start(p->s[i])) return 0;
    while (i < p->len && tp_ident_char(p->s[i]))
        i++;
    *id = p->s + p->pos;
    return i - p->pos;
}

static bool tp_is_kw(tp *p, const char *kw)
{
    const char *id;
    size_t n = tp_peek_ident(p, &id);
    return n == strlen(kw) && strncasecmp(id, kw, n) == 0;
}

static bool tp_accept(tp *p, const char *tok)
{
    tp_ws(p);
    size_t n = strlen(tok);
    if (p->pos + n <= p->len && !memcmp(p->s + p->pos, tok, n)) {
        p->pos += n;
        return true;
    }
    return false;
}

static promql_node *tp_node(tp *p, enum promql_node_kind k, uint32_t start)
{
    promql_node *n = tp_alloc(p, sizeof *n);
    n->kind = k;
    n->pos.start = start;
    n->pos.end = (uint32_t)p->pos;
    return n;
}

/* Go string literal at pos (", ' or `); returns the unescaped value. */
static int tp_string(tp *p, promql_str *out)
{
    tp_ws(p);
    char q = p->s[p->pos];
    size_t i = p->pos + 1;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    while (i < p->len && p->s[i] != q) {
        char c = p->s[i];
        if (c == '\\' && q != '`' && i + 1 < p->len) {
            char e = p->s[i + 1];
            i += 2;
            switch (e) {
            case 'n': buf_putc(&b, '\n'); break;
            case 't': buf_putc(&b, '\t'); break;
            case 'r': buf_putc(&b, '\r'); break;
            case 'a': buf_putc(&b, '\a'); break;
            case 'b': buf_putc(&b, '\b'); break;
            case 'f': buf_putc(&b, '\f'); break;
            case 'v': buf_putc(&b, '\v'); break;
            case 'x': {
                char h[3] = {p->s[i], p->s[i + 1], 0};
                buf_putc(&b, (char)strtol(h, NULL, 16));
                i += 2;
                break;
            }
            case 'u':
            case 'U': {
                int nd = e == 'u' ? 4 : 8;
                char h[9] = {0};
                memcpy(h, p->s + i, (size_t)nd);
                unsigned long cp = strtoul(h, NULL, 16);
                i += (size_t)nd;
                char u[4];
                int un = 0;
                if (cp < 0x80) u[un++] = (char)cp;
                else if (cp < 0x800) {
                    u[un++] = (char)(0xC0 | (cp >> 6));
                    u[un++] = (char)(0x80 | (cp & 0x3F));
                } else if (cp < 0x10000) {
                    u[un++] = (char)(0xE0 | (cp >> 12));
                    u[un++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    u[un++] = (char)(0x80 | (cp & 0x3F));
                } else {
                    u[un++] = (char)(0xF0 | (cp >> 18));
                    u[un++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                    u[un++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    u[un++] = (char)(0x80 | (cp & 0x3F));
                }
                buf_append(&b, u, (size_t)un);
                break;
            }
            default:
                if (e >= '0' && e <= '7') {
                    char o[4] = {e, p->s[i], p->s[i + 1], 0};
                    buf_putc(&b, (char)strtol(o, NULL, 8));
                    i += 2;
                } else {
                    buf_putc(&b, e);
                }
            }
            continue;
        }
        buf_putc(&b, c);
        i++;
    }
    if (i >= p->len) {
        buf_cleanup(&b);
        return tp_fail(p, "unterminated string");
    }
    p->pos = i + 1;
    out->len = b.len;
    char *s = tp_alloc(p, b.len + 1);
    memcpy(s, buf_cstr(&b), b.len);
    out->p = s;
    buf_cleanup(&b);
    return 0;
}

/* A number or duration literal: value in seconds for durations. */
static int tp_number(tp *p, double *v, bool *is_dur)
{
    tp_ws(p);
    size_t i = p->pos;
    *is_dur = false;
    const char *s = p->s;
    /* duration: digits+unit repeated */
    size_t j = i;
    while (j < p->len && isdigit((unsigned char)s[j]))
        j++;
    if (j > i && j < p->len && strchr("smhdwy", s[j]) && s[j]) {
        size_t k = j;
        while (k < p->len && (isalnum((unsigned char)s[k])))
            k++;
        int64_t ms;
        if (strutil_parse_duration(s + i, k - i, &ms, NULL) == 0) {
            *v = (double)ms / 1000.0;
            *is_dur = true;
            p->pos = k;
            return 0;
        }
    }
    size_t k = i;
    if (k + 1 < p->len && s[k] == '0' && (s[k + 1] == 'x' || s[k + 1] == 'X')) {
        k += 2;
        while (k < p->len && isxdigit((unsigned char)s[k]))
            k++;
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(k - i), s + i);
        *v = (double)strtoull(tmp, NULL, 16);
        p->pos = k;
        return 0;
    }
    while (k < p->len && (isdigit((unsigned char)s[k]) || s[k] == '.' || s[k] == '_' ||
                          ((s[k] == 'e' || s[k] == 'E') && k > i) ||
                          ((s[k] == '+' || s[k] == '-') && k > i && (s[k - 1] == 'e' || s[k - 1] == 'E'))))
        k++;
    if (k == i) return tp_fail(p, "expected number");
    char tmp[128];
    size_t n = 0;
    for (size_t x = i; x < k && n < sizeof tmp - 1; x++)
        if (s[x] != '_') tmp[n++] = s[x];
    tmp[n] = 0;
    *v = strtod(tmp, NULL);
    p->pos = k;
    return 0;
}

static int tp_expr(tp *p, int min_prec, promql_node **out);

/* Duration expressions in [] and after offset: numbers, durations, step(),
 * range(), min_of/max_of, + - * / % ^ and parentheses. */
static int tp_dur_expr(tp *p, int min_prec, promql_node **out);

static promql_node *tp_dur_num(tp *p, double v, uint32_t start)
{
    promql_node *n = tp_node(p, PROMQL_NODE_NUMBER, start);
    n->number.val = v;
    n->number.duration = true;
    return n;
}

static int tp_dur_primary(tp *p, promql_node **out)
{
    tp_ws(p);
    uint32_t start = (uint32_t)p->pos;
    int rc;
    if (tp_accept(p, "(")) {
        promql_node *in;
        if ((rc = tp_dur_expr(p, 0, &in))) return rc;
        if (!tp_accept(p, ")")) return tp_fail(p, "expected )");
        promql_node *n = tp_node(p, PROMQL_NODE_DURATION, start);
        n->duration.op = PROMQL_OP_NONE;
        n->duration.lhs = in;
        n->duration.wrapped = true;
        *out = n;
        return 0;
    }
    if (tp_accept(p, "-") || tp_accept(p, "+")) {
        bool neg = p->s[p->pos - 1] == '-';
        promql_node *in;
        if ((rc = tp_dur_expr(p, 3, &in))) return rc;
        promql_node *n = tp_node(p, PROMQL_NODE_DURATION, start);
        n->duration.op = neg ? PROMQL_OP_SUB : PROMQL_OP_ADD;
        n->duration.lhs = in;
        *out = n;
        return 0;
    }
    const char *id;
    size_t il = tp_peek_ident(p, &id);
    if (il) {
        enum promql_op op = PROMQL_OP_NONE;
        if (il == 4 && !strncasecmp(id, "step", 4)) op = PROMQL_OP_STEP;
        else if (il == 5 && !strncasecmp(id, "range", 5)) op = PROMQL_OP_RANGE;
        else if (il == 6 && !strncasecmp(id, "min_of", 6)) op = PROMQL_OP_MIN_OF;
        else if (il == 6 && !strncasecmp(id, "max_of", 6)) op = PROMQL_OP_MAX_OF;
        else if (il == 3 && !strncasecmp(id, "Inf", 3)) {
            p->pos += 3;
            *out = tp_dur_num(p, INFINITY, start);
            return 0;
        } else if (il == 3 && !strncasecmp(id, "NaN", 3)) {
            p->pos += 3;
            *out = tp_dur_num(p, NAN, start);
            return 0;
        }
        if (op == PROMQL_OP_NONE) return tp_fail(p, "unexpected identifier in duration");
        p->pos += il;
        if (!tp_accept(p, "(")) return tp_fail(p, "expected (");
        promql_node *n = tp_node(p, PROMQL_NODE_DURATION, start);
        n->duration.op = op;
        if (op == PROMQL_OP_MIN_OF || op == PROMQL_OP_MAX_OF) {
            if ((rc = tp_dur_expr(p, 0, &n->duration.lhs))) return rc;
            if (!tp_accept(p, ",")) return tp_fail(p, "expected ,");
            if ((rc = tp_dur_expr(p, 0, &n->duration.rhs))) return rc;
        }
        if (!tp_accept(p, ")")) return tp_fail(p, "expected )");
        n->pos.end = (uint32_t)p->pos;
        *out = n;
        return 0;
    }
    double v;
    bool d;
    if ((rc = tp_number(p, &v, &d))) return rc;
    *out = tp_dur_num(p, v, start);
    return 0;
}

static int tp_dur_binop(tp *p, enum promql_op *op, int *prec)
{
    tp_ws(p);
    if (p->pos >= p->len) return 0;
    switch (p->s[p->pos]) {
    case '+': *op = PROMQL_OP_ADD; *prec = 1; return 1;
    case '-': *op = PROMQL_OP_SUB; *prec = 1; return 1;
    case '*': *op = PROMQL_OP_MUL; *prec = 2; return 1;
    case '/': *op = PROMQL_OP_DIV; *prec = 2; return 1;
    case '%': *op = PROMQL_OP_MOD; *prec = 2; return 1;
    case '^': *op = PROMQL_OP_POW; *prec = 3; return 1;
    }
    return 0;
}

static int tp_dur_expr(tp *p, int min_prec, promql_node **out)
{
    tp_ws(p);
    uint32_t start = (uint32_t)p->pos;
    promql_node *lhs = NULL;
    int rc = tp_dur_primary(p, &lhs);
    if (rc) return rc;
    for (;;) {
        enum promql_op op;
        int prec;
        if (!tp_dur_binop(p, &op, &prec) || prec < min_prec) break;
        p->pos++;
        promql_node *rhs;
        if ((rc = tp_dur_expr(p, op == PROMQL_OP_POW ? prec : prec + 1, &rhs))) return rc;
        promql_node *n = tp_node(p, PROMQL_NODE_DURATION, start);
        n->duration.op = op;
        n->duration.lhs = lhs;
        n->duration.rhs = rhs;
        lhs = n;
    }
    *out = lhs;
    return 0;
}

/* A duration in [] or after offset: a plain literal becomes ms directly,
 * anything else a duration expression. */
static int tp_duration(tp *p, bool offset, int64_t *ms, promql_node **expr)
{
    tp_ws(p);
    size_t save = p->pos;
    *expr = NULL;
    if (offset) {
        /* offset takes one (optionally signed) literal, function form or
         * parenthesised expression; operators after it apply to the
         * selector. */
        bool neg = false;
        uint32_t start = (uint32_t)p->pos;
        if (tp_accept(p, "-")) neg = true;
        else tp_accept(p, "+");
        tp_ws(p);
        if (p->pos < p->len && (isdigit((unsigned char)p->s[p->pos]) || p->s[p->pos] == '.')) {
            double v;
            bool d;
            int rc = tp_number(p, &v, &d);
            if (rc) return rc;
            *ms = (int64_t)llround(v * 1000) * (neg ? -1 : 1);
            return 0;
        }
        promql_node *in;
        int rc = tp_dur_primary(p, &in);
        if (rc) return rc;
        if (neg) {
            promql_node *n = tp_node(p, PROMQL_NODE_DURATION, start);
            n->duration.op = PROMQL_OP_SUB;
            n->duration.lhs = in;
            in = n;
        }
        (void)save;
        *expr = in;
        return 0;
    }
    int rc = tp_dur_expr(p, 0, expr);
    if (rc) return rc;
    if ((*expr)->kind == PROMQL_NODE_NUMBER) {
        *ms = (int64_t)llround((*expr)->number.val * 1000);
        *expr = NULL;
    }
    return 0;
}

static void tp_register_matchers(tp *p, label_matcher *ms, size_t n)
{
    promql_ast *a = p->ast;
    if (a->n_matcher_arrays == a->cap_matcher_arrays) {
        a->cap_matcher_arrays = a->cap_matcher_arrays ? a->cap_matcher_arrays * 2 : 8;
        a->matcher_arrays = mem_realloc(a->matcher_arrays, a->cap_matcher_arrays * sizeof *a->matcher_arrays);
        a->matcher_counts = mem_realloc(a->matcher_counts, a->cap_matcher_arrays * sizeof *a->matcher_counts);
    }
    a->matcher_arrays[a->n_matcher_arrays] = ms;
    a->matcher_counts[a->n_matcher_arrays] = n;
    a->n_matcher_arrays++;
}

/* name, name{...}, {...}: delegated to labels_parse_selector. */
static int tp_selector(tp *p, uint32_t start, promql_node **out)
{
    size_t i = p->pos;
    const char *s = p->s;
    while (i < p->len && tp_ident_char(s[i]))
        i++;
    size_t name_end = i;
    size_t j = i;
    while (j < p->len && (s[j] == ' ' || s[j] == '\t'))
        j++;
    if (j < p->len && s[j] == '{') {
        char q = 0;
        for (i = j + 1; i < p->len; i++) {
            if (q) {
                if (s[i] == '\\' && q != '`') i++;
                else if (s[i] == q) q = 0;
            } else if (s[i] == '"' || s[i] == '\'' || s[i] == '`') {
                q = s[i];
            } else if (s[i] == '}') {
                break;
            }
        }
        if (i >= p->len) return tp_fail(p, "unterminated selector");
        i++;
    } else {
        i = name_end;
    }
    buf text, err;
    buf_init(&text, BUF_UNLIMITED);
    buf_init(&err, BUF_UNLIMITED);
    buf_append(&text, s + start, name_end - start);
    if (i > name_end) buf_append(&text, s + j, i - j);
    label_matcher *ms = NULL;
    size_t n = 0;
    int rc = labels_parse_selector(buf_cstr(&text), text.len, &ms, &n, &err);
    if (rc && strstr(buf_cstr(&err), "at least one non-empty matcher") && i > name_end) {
        /* info()'s data-label selector may match the empty string: parse
         * it with a placeholder matcher and drop that again. */
        buf t2;
        buf_init(&t2, BUF_UNLIMITED);
        buf_append(&t2, text.data, text.len - 1);
        buf_puts(&t2, text.len > 2 ? ", __tp__=\"x\"}" : "__tp__=\"x\"}");
        buf_reset(&err);
        rc = labels_parse_selector(buf_cstr(&t2), t2.len, &ms, &n, &err);
        buf_cleanup(&t2);
        if (!rc) {
            for (size_t k = 0; k < n; k++) {
                if (!strcmp(ms[k].name, "__tp__")) {
                    labels_matcher_cleanup(&ms[k]);
                    memmove(&ms[k], &ms[k + 1], (n - k - 1) * sizeof *ms);
                    n--;
                    break;
                }
            }
        }
    }
    if (rc) {
        buf_printf(p->err, "selector %s: %s", buf_cstr(&text), buf_cstr(&err));
        p->failed = 1;
        buf_cleanup(&text);
        buf_cleanup(&err);
        return -EINVAL;
    }
    buf_cleanup(&text);
    buf_cleanup(&err);
    /* copy into the arena so that promql_ast_free releases them */
    label_matcher *am = tp_alloc(p, (n ? n : 1) * sizeof *am);
    memcpy(am, ms, n * sizeof *am);
    mem_free(ms);
    tp_register_matchers(p, am, n);
    p->pos = i;
    promql_node *v = tp_node(p, PROMQL_NODE_VECTOR_SELECTOR, start);
    v->vector.matchers = am;
    v->vector.n_matchers = n;
    if (name_end > start) {
        char *nm = tp_alloc(p, name_end - start + 1);
        memcpy(nm, s + start, name_end - start);
        v->vector.name.p = nm;
        v->vector.name.len = name_end - start;
    } else {
        v->vector.name.p = "";
    }
    *out = v;
    return 0;
}

static const struct {
    const char *name;
    enum promql_op op;
} tp_aggs[] = {
    {"sum", PROMQL_OP_SUM},       {"avg", PROMQL_OP_AVG},
    {"count", PROMQL_OP_COUNT},   {"min", PROMQL_OP_MIN},
    {"max", PROMQL_OP_MAX},       {"group", PROMQL_OP_GROUP},
    {"stddev", PROMQL_OP_STDDEV}, {"stdvar", PROMQL_OP_STDVAR},
    {"topk", PROMQL_OP_TOPK},     {"bottomk", PROMQL_OP_BOTTOMK},
    {"count_values", PROMQL_OP_COUNT_VALUES}, {"quantile", PROMQL_OP_QUANTILE},
    {"limitk", PROMQL_OP_LIMITK}, {"limit_ratio", PROMQL_OP_LIMIT_RATIO},
};

static int tp_label_list(tp *p, promql_str **out, size_t *n)
{
    if (!tp_accept(p, "(")) return tp_fail(p, "expected (");
    size_t cap = 8;
    promql_str *v = tp_alloc(p, cap * sizeof *v);
    *n = 0;
    for (;;) {
        tp_ws(p);
        if (tp_accept(p, ")")) break;
        if (*n == cap) {
            promql_str *nv = tp_alloc(p, cap * 2 * sizeof *v);
            memcpy(nv, v, cap * sizeof *v);
            v = nv;
            cap *= 2;
        }
        const char *id;
        size_t il = tp_peek_ident(p, &id);
        if (il) {
            char *c = tp_alloc(p, il + 1);
            memcpy(c, id, il);
            v[*n].p = c;
            v[*n].len = il;
            p->pos += il;
        } else if (p->s[p->pos] == '"' || p->s[p->pos] == '\'' || p->s[p->pos] == '`') {
            int rc = tp_string(p, &v[*n]);
            if (rc) return rc;
        } else {
            return tp_fail(p, "expected label");
        }
        (*n)++;
        tp_accept(p, ",");
    }
    *out = v;
    return 0;
}

static int tp_modifiers(tp *p, promql_node **np);

static int tp_primary(tp *p, promql_node **out)
{
    tp_ws(p);
    uint32_t start = (uint32_t)p->pos;
    if (p->pos >= p->len) return tp_fail(p, "unexpected end of input");
    char c = p->s[p->pos];
    int rc;
    promql_node *n = NULL;
    if (c == '(') {
        p->pos++;
        promql_node *in;
        if ((rc = tp_expr(p, 0, &in))) return rc;
        if (!tp_accept(p, ")")) return tp_fail(p, "expected )");
        n = tp_node(p, PROMQL_NODE_PAREN, start);
        n->paren.expr = in;
    } else if (c == '"' || c == '\'' || c == '`') {
        n = tp_node(p, PROMQL_NODE_STRING, start);
        if ((rc = tp_string(p, &n->string.val))) return rc;
        n->pos.end = (uint32_t)p->pos;
    } else if (isdigit((unsigned char)c) || c == '.') {
        double v;
        bool d;
        if ((rc = tp_number(p, &v, &d))) return rc;
        n = tp_node(p, PROMQL_NODE_NUMBER, start);
        n->number.val = v;
        n->number.duration = d;
    } else if (c == '{') {
        if ((rc = tp_selector(p, start, &n))) return rc;
    } else if (tp_ident_start(c)) {
        const char *id;
        size_t il = tp_peek_ident(p, &id);
        size_t after = p->pos + il;
        while (after < p->len && (p->s[after] == ' ' || p->s[after] == '\t'))
            after++;
        bool paren = after < p->len && p->s[after] == '(';
        bool by = false;
        if (!paren) {
            size_t save = p->pos;
            p->pos = after;
            by = tp_is_kw(p, "by") || tp_is_kw(p, "without");
            p->pos = save;
        }
        enum promql_op agg = PROMQL_OP_NONE;
        for (size_t i = 0; i < sizeof tp_aggs / sizeof tp_aggs[0]; i++)
            if (strlen(tp_aggs[i].name) == il && !strncasecmp(tp_aggs[i].name, id, il))
                agg = tp_aggs[i].op;
        if (agg != PROMQL_OP_NONE && (paren || by)) {
            p->pos += il;
            n = tp_node(p, PROMQL_NODE_AGGREGATE, start);
            n->aggregate.op = agg;
            if (tp_is_kw(p, "by") || tp_is_kw(p, "without")) {
                n->aggregate.without = tp_is_kw(p, "without");
                const char *kw;
                p->pos += tp_peek_ident(p, &kw);
                if ((rc = tp_label_list(p, &n->aggregate.grouping, &n->aggregate.n_grouping)))
                    return rc;
            }
            if (!tp_accept(p, "(")) return tp_fail(p, "expected ( after aggregation");
            promql_node *first;
            if ((rc = tp_expr(p, 0, &first))) return rc;
            if (tp_accept(p, ",")) {
                n->aggregate.param = first;
                if ((rc = tp_expr(p, 0, &n->aggregate.expr))) return rc;
            } else {
                n->aggregate.expr = first;
            }
            if (!tp_accept(p, ")")) return tp_fail(p, "expected ) after aggregation");
            if (tp_is_kw(p, "by") || tp_is_kw(p, "without")) {
                n->aggregate.without = tp_is_kw(p, "without");
                const char *kw;
                p->pos += tp_peek_ident(p, &kw);
                if ((rc = tp_label_list(p, &n->aggregate.grouping, &n->aggregate.n_grouping)))
                    return rc;
            }
            n->pos.end = (uint32_t)p->pos;
        } else if (paren && tp_function(id, il)) {
            const promql_function *f = tp_function(id, il);
            p->pos = after + 1;
            n = tp_node(p, PROMQL_NODE_CALL, start);
            n->call.func = f;
            size_t cap = 8;
            n->call.args = tp_alloc(p, cap * sizeof *n->call.args);
            while (!tp_accept(p, ")")) {
                if (n->call.nargs == cap) {
                    promql_node **na = tp_alloc(p, cap * 2 * sizeof *na);
                    memcpy(na, n->call.args, cap * sizeof *na);
                    n->call.args = na;
                    cap *= 2;
                }
                if ((rc = tp_expr(p, 0, &n->call.args[n->call.nargs]))) return rc;
                n->call.nargs++;
                if (!tp_accept(p, ",")) {
                    if (!tp_accept(p, ")")) return tp_fail(p, "expected ) after arguments");
                    break;
                }
            }
            n->pos.end = (uint32_t)p->pos;
        } else if (il == 3 && !strncasecmp(id, "Inf", 3)) {
            p->pos += 3;
            n = tp_node(p, PROMQL_NODE_NUMBER, start);
            n->number.val = INFINITY;
        } else if (il == 3 && !strncasecmp(id, "NaN", 3)) {
            p->pos += 3;
            n = tp_node(p, PROMQL_NODE_NUMBER, start);
            n->number.val = NAN;
        } else {
            if ((rc = tp_selector(p, start, &n))) return rc;
        }
    } else {
        return tp_fail(p, "unexpected character");
    }
    if ((rc = tp_modifiers(p, &n))) return rc;
    *out = n;
    return 0;
}

/* Postfix: [range], [range:step], offset, @, anchored, smoothed. */
static int tp_modifiers(tp *p, promql_node **np)
{
    int rc;
    promql_node *cur = *np;
    for (;;) {
        tp_ws(p);
        uint32_t start = cur->pos.start;
        if (tp_accept(p, "[")) {
            int64_t r = 0, st = 0;
            promql_node *re = NULL, *se = NULL;
            if ((rc = tp_duration(p, false, &r, &re))) return rc;
            if (tp_accept(p, ":")) {
                tp_ws(p);
                if (p->s[p->pos] != ']' && (rc = tp_duration(p, false, &st, &se))) return rc;
                if (!tp_accept(p, "]")) return tp_fail(p, "expected ]");
                promql_node *sq = tp_node(p, PROMQL_NODE_SUBQUERY, start);
                sq->subquery.expr = cur;
                sq->subquery.range_ms = r;
                sq->subquery.range_expr = re;
                sq->subquery.step_ms = st;
                sq->subquery.step_expr = se;
                cur = sq;
            } else {
                if (!tp_accept(p, "]")) return tp_fail(p, "expected ]");
                if (cur->kind != PROMQL_NODE_VECTOR_SELECTOR) return tp_fail(p, "range on non-selector");
                promql_node *ms = tp_node(p, PROMQL_NODE_MATRIX_SELECTOR, start);
                ms->matrix.vs = cur;
                ms->matrix.range_ms = r;
                ms->matrix.range_expr = re;
                cur = ms;
            }
            continue;
        }
        promql_offset *off = NULL;
        promql_at *at = NULL;
        promql_node *target = cur->kind == PROMQL_NODE_MATRIX_SELECTOR ? cur->matrix.vs : cur;
        if (target->kind == PROMQL_NODE_VECTOR_SELECTOR) {
            off = &target->vector.offset;
            at = &target->vector.at;
        } else if (target->kind == PROMQL_NODE_SUBQUERY) {
            off = &target->subquery.offset;
            at = &target->subquery.at;
        }
        if (off && tp_is_kw(p, "offset")) {
            p->pos += 6;
            if ((rc = tp_duration(p, true, &off->original_ms, &off->expr))) return rc;
            cur->pos.end = (uint32_t)p->pos;
            continue;
        }
        if (at && tp_accept(p, "@")) {
            at->set = true;
            if (tp_is_kw(p, "start") || tp_is_kw(p, "end")) {
                at->start_or_end = tp_is_kw(p, "start") ? PROMQL_OP_START : PROMQL_OP_END;
                const char *kw;
                p->pos += tp_peek_ident(p, &kw);
                if (!tp_accept(p, "(") || !tp_accept(p, ")")) return tp_fail(p, "expected ()");
            } else {
                bool neg = tp_accept(p, "-");
                double v;
                bool d;
                if ((rc = tp_number(p, &v, &d))) return rc;
                at->ts_ms = (int64_t)llround(v * 1000) * (neg ? -1 : 1);
            }
            cur->pos.end = (uint32_t)p->pos;
            continue;
        }
        if (cur->kind == PROMQL_NODE_MATRIX_SELECTOR && (tp_is_kw(p, "anchored") || tp_is_kw(p, "smoothed"))) {
            if (tp_is_kw(p, "anchored")) cur->matrix.vs->vector.anchored = true;
            else cur->matrix.vs->vector.smoothed = true;
            const char *kw;
            p->pos += tp_peek_ident(p, &kw);
            continue;
        }
        if (cur->kind == PROMQL_NODE_VECTOR_SELECTOR && (tp_is_kw(p, "anchored") || tp_is_kw(p, "smoothed"))) {
            if (tp_is_kw(p, "anchored")) cur->vector.anchored = true;
            else cur->vector.smoothed = true;
            const char *kw;
            p->pos += tp_peek_ident(p, &kw);
            continue;
        }
        break;
    }
    *np = cur;
    return 0;
}

/* binary operator at the current position: returns precedence or 0. */
static int tp_binop(tp *p, enum promql_op *op, size_t *len)
{
    tp_ws(p);
    const char *s = p->s + p->pos;
    size_t rem = p->len - p->pos;
    struct {
        const char *t;
        enum promql_op op;
        int prec;
    } ops[] = {
        {"==", PROMQL_OP_EQLC, 3}, {"!=", PROMQL_OP_NEQ, 3}, {">=", PROMQL_OP_GTE, 3},
        {"<=", PROMQL_OP_LTE, 3},  {"</", PROMQL_OP_TRIM_UPPER, 4}, {">/", PROMQL_OP_TRIM_LOWER, 4},
        {">", PROMQL_OP_GTR, 3},   {"<", PROMQL_OP_LSS, 3},
        {"+", PROMQL_OP_ADD, 4},   {"-", PROMQL_OP_SUB, 4},   {"*", PROMQL_OP_MUL, 5},
        {"/", PROMQL_OP_DIV, 5},   {"%", PROMQL_OP_MOD, 5},   {"^", PROMQL_OP_POW, 6},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        size_t l = strlen(ops[i].t);
        if (rem >= l && !memcmp(s, ops[i].t, l)) {
            *op = ops[i].op;
            *len = l;
            return ops[i].prec;
        }
    }
    const char *id;
    size_t il = tp_peek_ident(p, &id);
    if (il == 2 && !strncasecmp(id, "or", 2)) { *op = PROMQL_OP_LOR; *len = 2; return 1; }
    if (il == 3 && !strncasecmp(id, "and", 3)) { *op = PROMQL_OP_LAND; *len = 3; return 2; }
    if (il == 6 && !strncasecmp(id, "unless", 6)) { *op = PROMQL_OP_LUNLESS; *len = 6; return 2; }
    if (il == 5 && !strncasecmp(id, "atan2", 5)) { *op = PROMQL_OP_ATAN2; *len = 5; return 5; }
    return 0;
}

static int tp_unary(tp *p, promql_node **out)
{
    tp_ws(p);
    uint32_t start = (uint32_t)p->pos;
    if (p->pos < p->len && (p->s[p->pos] == '-' || p->s[p->pos] == '+')) {
        bool neg = p->s[p->pos] == '-';
        p->pos++;
        promql_node *in;
        int rc = tp_expr(p, 6, &in); /* %prec MUL: only ^ binds tighter */
        if (rc) return rc;
        if (in->kind == PROMQL_NODE_NUMBER) {
            if (neg) in->number.val = -in->number.val;
            in->pos.start = start;
            *out = in;
            return 0;
        }
        promql_node *n = tp_node(p, PROMQL_NODE_UNARY, start);
        n->unary.op = neg ? PROMQL_OP_SUB : PROMQL_OP_ADD;
        n->unary.expr = in;
        *out = n;
        return 0;
    }
    return tp_primary(p, out);
}

static int tp_expr(tp *p, int min_prec, promql_node **out)
{
    tp_ws(p);
    uint32_t start = (uint32_t)p->pos;
    promql_node *lhs = NULL;
    int rc = tp_unary(p, &lhs);
    if (rc) return rc;
    for (;;) {
        enum promql_op op;
        size_t len;
        int prec = tp_binop(p, &op, &len);
        if (!prec || prec < min_prec) break;
        p->pos += len;
        promql_node *n = tp_node(p, PROMQL_NODE_BINARY, start);
        n->binary.op = op;
        promql_vector_matching *vm = tp_alloc(p, sizeof *vm);
        vm->card = promql_op_is_set(op) ? PROMQL_CARD_MANY_TO_MANY : PROMQL_CARD_ONE_TO_ONE;
        bool any_mod = false;
        if (tp_is_kw(p, "bool")) {
            p->pos += 4;
            n->binary.return_bool = true;
        }
        if (tp_is_kw(p, "on") || tp_is_kw(p, "ignoring")) {
            vm->on = tp_is_kw(p, "on");
            const char *kw;
            p->pos += tp_peek_ident(p, &kw);
            if ((rc = tp_label_list(p, &vm->matching_labels, &vm->n_matching))) return rc;
            any_mod = true;
        }
        if (tp_is_kw(p, "group_left") || tp_is_kw(p, "group_right")) {
            vm->card = tp_is_kw(p, "group_left") ? PROMQL_CARD_MANY_TO_ONE : PROMQL_CARD_ONE_TO_MANY;
            const char *kw;
            p->pos += tp_peek_ident(p, &kw);
            tp_ws(p);
            if (p->pos < p->len && p->s[p->pos] == '(' &&
                (rc = tp_label_list(p, &vm->include, &vm->n_include)))
                return rc;
        }
        for (;;) {
            bool l = false, r = false;
            const char *fid;
            size_t fl = tp_peek_ident(p, &fid);
            size_t after = p->pos + fl;
            while (after < p->len && (p->s[after] == ' ' || p->s[after] == '\t'))
                after++;
            if (!fl || after >= p->len || p->s[after] != '(') break;
            if (tp_is_kw(p, "fill")) l = r = true, p->pos += 4;
            else if (tp_is_kw(p, "fill_left")) l = true, p->pos += 9;
            else if (tp_is_kw(p, "fill_right")) r = true, p->pos += 10;
            else break;
            if (!tp_accept(p, "(")) return tp_fail(p, "expected (");
            bool neg = tp_accept(p, "-");
            tp_accept(p, "+");
            double v;
            const char *id;
            size_t il = tp_peek_ident(p, &id);
            if (il == 3 && !strncasecmp(id, "inf", 3)) {
                v = INFINITY;
                p->pos += 3;
            } else if (il == 3 && !strncasecmp(id, "nan", 3)) {
                v = NAN;
                p->pos += 3;
            } else {
                bool d;
                if ((rc = tp_number(p, &v, &d))) return rc;
            }
            if (neg) v = -v;
            if (!tp_accept(p, ")")) return tp_fail(p, "expected )");
            if (l) vm->has_fill_lhs = true, vm->fill_lhs = v;
            if (r) vm->has_fill_rhs = true, vm->fill_rhs = v;
        }
        (void)any_mod;
        promql_node *rhs;
        if ((rc = tp_expr(p, op == PROMQL_OP_POW ? prec : prec + 1, &rhs))) return rc;
        n->binary.lhs = lhs;
        n->binary.rhs = rhs;
        n->pos.end = (uint32_t)p->pos;
        if (promql_node_type(lhs) == PROMQL_TYPE_VECTOR && promql_node_type(rhs) == PROMQL_TYPE_VECTOR)
            n->binary.matching = vm;
        lhs = n;
    }
    *out = lhs;
    return 0;
}

/* Parses query into a new tree (caller frees with promql_ast_free);
 * returns 0 or -EINVAL with a message in err. */
static int tp_parse(const char *query, size_t len, promql_ast **out, buf *err)
{
    promql_ast *a = mem_calloc(1, sizeof *a);
    arena_init(&a->mem, 0);
    a->query = mem_strndup(query, len);
    a->query_len = len;
    tp p = {a->query, len, 0, a, err, 0};
    promql_node *root = NULL;
    int rc = tp_expr(&p, 0, &root);
    if (!rc) {
        tp_ws(&p);
        if (p.pos != p.len) rc = tp_fail(&p, "unexpected trailing input");
    }
    if (rc) {
        promql_ast_free(a);
        return -EINVAL;
    }
    a->root = root;
    *out = a;
    return 0;
}

#endif
