/* promql/print: a syntax tree back to text, as Prometheus 3.x's String()
 * (printer.go) and Pretty() (prettier.go) write it. Part of the parse
 * module (declared in promql/parse.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expfmt.h"
#include "mem.h"
#include "promql/lex.h"
#include "promql/parse.h"
#include "strutil.h"

/* Prometheus's maxCharactersPerLine. */
#define PRETTY_WIDTH 100

static void fmt_node(const promql_node *n, buf *out);

/* strconv.FormatFloat(v, 'f', -1, 64): the shortest digits that read back
 * as v, without an exponent. */
static void put_float_f(buf *out, double v)
{
    if (isnan(v)) {
        buf_puts(out, "NaN");
        return;
    }
    if (isinf(v)) {
        buf_puts(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char e[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v) break;
    }
    /* e = [-]d.ddde[+-]xx */
    char digits[24];
    size_t nd = 0;
    const char *s = e;
    bool neg = *s == '-';
    if (neg) s++;
    for (; *s && *s != 'e'; s++)
        if (*s != '.') digits[nd++] = *s;
    int exp = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (neg) buf_putc(out, '-');
    int point = exp + 1; /* digits before the decimal point */
    if (point <= 0) {
        buf_puts(out, "0.");
        for (int i = 0; i < -point; i++)
            buf_putc(out, '0');
        buf_append(out, digits, nd);
    } else if ((size_t)point >= nd) {
        buf_append(out, digits, nd);
        for (size_t i = nd; i < (size_t)point; i++)
            buf_putc(out, '0');
    } else {
        buf_append(out, digits, (size_t)point);
        buf_putc(out, '.');
        buf_append(out, digits + point, nd - (size_t)point);
    }
}

/* Go's %v of a float64. */
static void put_float_v(buf *out, double v)
{
    char tmp[EXPFMT_FLOAT_MAX];
    size_t n = expfmt_format_float(v, tmp);
    buf_append(out, tmp, n);
}

static void put_duration_ns(buf *out, int64_t ns)
{
    char tmp[32];
    size_t n = strutil_format_duration(ns / 1000000, tmp);
    buf_append(out, tmp, n);
}

static void put_duration_ms(buf *out, int64_t ms)
{
    char tmp[32];
    size_t n = strutil_format_duration(ms, tmp);
    buf_append(out, tmp, n);
}

static bool legacy_label(const char *s, size_t n)
{
    return expfmt_legacy_label_name(s, n);
}

static void put_labels(buf *out, const promql_str *ls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0) buf_puts(out, ", ");
        if (legacy_label(ls[i].p, ls[i].len))
            buf_append(out, ls[i].p, ls[i].len);
        else
            promql_lex_quote(out, ls[i].p, ls[i].len);
    }
}

/* labels.Matcher.String(). */
static void put_matcher(buf *out, const label_matcher *m)
{
    static const char *const ops[] = {"=", "!=", "=~", "!~"};
    bool quote = m->name_len == 0;
    for (size_t i = 0; i < m->name_len && !quote;) {
        uint32_t w;
        uint32_t c = promql_lex_rune(m->name + i, m->name_len - i, &w);
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (i > 0 && c >= '0' && c <= '9')))
            quote = true;
        i += w;
    }
    if (quote)
        promql_lex_quote(out, m->name, m->name_len);
    else
        buf_append(out, m->name, m->name_len);
    buf_puts(out, ops[m->type]);
    promql_lex_quote(out, m->value, m->value_len);
}

typedef struct strv {
    char *p;
    size_t len;
} strv;

static int cmp_strv(const void *a, const void *b)
{
    const strv *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static void put_offset(buf *out, const promql_offset *o)
{
    if (o->expr) {
        buf_puts(out, " offset ");
        fmt_node(o->expr, out);
    } else if (o->ns > 0) {
        buf_puts(out, " offset ");
        put_duration_ns(out, o->ns);
    } else if (o->ns < 0) {
        buf_puts(out, " offset -");
        put_duration_ns(out, -o->ns);
    }
}

static void put_at(buf *out, const promql_at *a)
{
    if (!a->set) return;
    if (a->start_or_end == PROMQL_OP_START)
        buf_puts(out, " @ start()");
    else if (a->start_or_end == PROMQL_OP_END)
        buf_puts(out, " @ end()");
    else
        buf_printf(out, " @ %.3f", (double)a->ts_ms / 1000.0);
}

/* The selector without its modifiers. */
static void put_selector(buf *out, const promql_node *n)
{
    size_t cnt = n->vector.n_matchers;
    strv *v = mem_calloc(cnt ? cnt : 1, sizeof *v);
    size_t k = 0;
    buf tmp;
    buf_init(&tmp, BUF_UNLIMITED);
    for (size_t i = 0; i < cnt; i++) {
        const label_matcher *m = &n->vector.matchers[i];
        if (strcmp(m->name, LABELS_METRIC_NAME) == 0 && m->type == MATCH_EQ &&
            m->value_len == n->vector.name.len && m->value_len > 0 &&
            memcmp(m->value, n->vector.name.p, m->value_len) == 0)
            continue;
        buf_reset(&tmp);
        put_matcher(&tmp, m);
        v[k].p = buf_detach(&tmp, &v[k].len);
        k++;
    }
    buf_cleanup(&tmp);
    buf_append(out, n->vector.name.p, n->vector.name.len);
    if (k) {
        qsort(v, k, sizeof *v, cmp_strv);
        buf_putc(out, '{');
        for (size_t i = 0; i < k; i++) {
            if (i) buf_putc(out, ',');
            buf_append(out, v[i].p, v[i].len);
        }
        buf_putc(out, '}');
    }
    for (size_t i = 0; i < k; i++)
        mem_free(v[i].p);
    mem_free(v);
}

static void put_agg_op(buf *out, const promql_node *n)
{
    buf_puts(out, promql_op_name(n->aggregate.op));
    if (n->aggregate.without) {
        buf_puts(out, " without (");
        put_labels(out, n->aggregate.grouping, n->aggregate.n_grouping);
        buf_puts(out, ") ");
    } else if (n->aggregate.n_grouping > 0) {
        buf_puts(out, " by (");
        put_labels(out, n->aggregate.grouping, n->aggregate.n_grouping);
        buf_puts(out, ") ");
    }
}

static void put_matching(buf *out, const promql_node *n)
{
    const promql_vector_matching *vm = n->binary.matching;
    if (!vm) return;
    bool grouped = vm->card == PROMQL_CARD_MANY_TO_ONE || vm->card == PROMQL_CARD_ONE_TO_MANY;
    if (vm->n_matching > 0 || vm->on || grouped) {
        buf_puts(out, vm->on ? " on (" : " ignoring (");
        put_labels(out, vm->matching_labels, vm->n_matching);
        buf_putc(out, ')');
    }
    if (grouped) {
        buf_puts(out, vm->card == PROMQL_CARD_MANY_TO_ONE ? " group_left (" : " group_right (");
        put_labels(out, vm->include, vm->n_include);
        buf_putc(out, ')');
    }
    if (vm->has_fill_lhs || vm->has_fill_rhs) {
        if (vm->has_fill_lhs && vm->has_fill_rhs && vm->fill_lhs == vm->fill_rhs) {
            buf_puts(out, " fill (");
            put_float_v(out, vm->fill_lhs);
            buf_putc(out, ')');
        } else {
            if (vm->has_fill_lhs) {
                buf_puts(out, " fill_left (");
                put_float_v(out, vm->fill_lhs);
                buf_putc(out, ')');
            }
            if (vm->has_fill_rhs) {
                buf_puts(out, " fill_right (");
                put_float_v(out, vm->fill_rhs);
                buf_putc(out, ')');
            }
        }
    }
}

static void put_subquery_suffix(buf *out, const promql_node *n)
{
    buf_putc(out, '[');
    if (n->subquery.range_expr)
        fmt_node(n->subquery.range_expr, out);
    else
        put_duration_ms(out, n->subquery.range_ms);
    buf_putc(out, ':');
    if (n->subquery.step_ns != 0)
        put_duration_ns(out, n->subquery.step_ns);
    else if (n->subquery.step_expr)
        fmt_node(n->subquery.step_expr, out);
    buf_putc(out, ']');
    put_at(out, &n->subquery.at);
    put_offset(out, &n->subquery.offset);
}

static void fmt_node(const promql_node *n, buf *out)
{
    switch (n->kind) {
    case PROMQL_NODE_AGGREGATE:
        put_agg_op(out, n);
        buf_putc(out, '(');
        if (n->aggregate.param) {
            fmt_node(n->aggregate.param, out);
            buf_puts(out, ", ");
        }
        fmt_node(n->aggregate.expr, out);
        buf_putc(out, ')');
        return;
    case PROMQL_NODE_BINARY:
        fmt_node(n->binary.lhs, out);
        buf_putc(out, ' ');
        buf_puts(out, promql_op_name(n->binary.op));
        if (n->binary.return_bool) buf_puts(out, " bool");
        put_matching(out, n);
        buf_putc(out, ' ');
        fmt_node(n->binary.rhs, out);
        return;
    case PROMQL_NODE_CALL:
        buf_puts(out, n->call.func->name);
        buf_putc(out, '(');
        for (size_t i = 0; i < n->call.nargs; i++) {
            if (i) buf_puts(out, ", ");
            fmt_node(n->call.args[i], out);
        }
        buf_putc(out, ')');
        return;
    case PROMQL_NODE_MATRIX_SELECTOR: {
        const promql_node *vs = n->matrix.vs;
        put_selector(out, vs);
        buf_putc(out, '[');
        if (n->matrix.range_expr)
            fmt_node(n->matrix.range_expr, out);
        else
            put_duration_ms(out, n->matrix.range_ms);
        buf_putc(out, ']');
        if (vs->vector.anchored)
            buf_puts(out, " anchored");
        else if (vs->vector.smoothed)
            buf_puts(out, " smoothed");
        put_at(out, &vs->vector.at);
        put_offset(out, &vs->vector.offset);
        return;
    }
    case PROMQL_NODE_SUBQUERY:
        fmt_node(n->subquery.expr, out);
        put_subquery_suffix(out, n);
        return;
    case PROMQL_NODE_NUMBER: {
        double v = n->number.val;
        if (n->number.duration) {
            /* model.Duration(v * 1e9): a float to int64 conversion */
            double x = v < 0 ? -v * 1e9 : v * 1e9;
            int64_t ns = (isnan(x) || x >= 9223372036854775807.0 || x < -9223372036854775808.0)
                             ? INT64_MIN
                             : (int64_t)x;
            if (v < 0) buf_putc(out, '-');
            put_duration_ns(out, ns);
        } else {
            put_float_f(out, v);
        }
        return;
    }
    case PROMQL_NODE_PAREN:
        buf_putc(out, '(');
        fmt_node(n->paren.expr, out);
        buf_putc(out, ')');
        return;
    case PROMQL_NODE_STRING:
        promql_lex_quote(out, n->string.val.p, n->string.val.len);
        return;
    case PROMQL_NODE_UNARY:
        buf_puts(out, promql_op_name(n->unary.op));
        fmt_node(n->unary.expr, out);
        return;
    case PROMQL_NODE_VECTOR_SELECTOR:
        put_selector(out, n);
        put_at(out, &n->vector.at);
        if (n->vector.anchored)
            buf_puts(out, " anchored");
        else if (n->vector.smoothed)
            buf_puts(out, " smoothed");
        put_offset(out, &n->vector.offset);
        return;
    case PROMQL_NODE_DURATION:
        if (n->duration.wrapped) buf_putc(out, '(');
        switch (n->duration.op) {
        case PROMQL_OP_STEP: buf_puts(out, "step()"); break;
        case PROMQL_OP_RANGE: buf_puts(out, "range()"); break;
        case PROMQL_OP_MIN_OF:
        case PROMQL_OP_MAX_OF:
            buf_puts(out, promql_op_name(n->duration.op));
            buf_putc(out, '(');
            fmt_node(n->duration.lhs, out);
            buf_puts(out, ", ");
            fmt_node(n->duration.rhs, out);
            buf_putc(out, ')');
            break;
        default:
            if (!n->duration.rhs) { /* unary */
                if (n->duration.op == PROMQL_OP_SUB) buf_putc(out, '-');
                fmt_node(n->duration.lhs, out);
            } else {
                fmt_node(n->duration.lhs, out);
                buf_putc(out, ' ');
                buf_puts(out, promql_op_name(n->duration.op));
                buf_putc(out, ' ');
                fmt_node(n->duration.rhs, out);
            }
            break;
        }
        if (n->duration.wrapped) buf_putc(out, ')');
        return;
    }
}

void promql_format(const promql_node *n, buf *out)
{
    fmt_node(n, out);
}

/* ---- Pretty ------------------------------------------------------------------- */

static size_t str_len(const promql_node *n)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    fmt_node(n, &b);
    size_t len = b.len;
    buf_cleanup(&b);
    return len;
}

static void indent(buf *out, int level)
{
    for (int i = 0; i < level; i++)
        buf_puts(out, "  ");
}

static void pretty(const promql_node *n, int level, size_t width, buf *out);

static void pretty_duration(const promql_node *n, size_t width, buf *out)
{
    /* DurationExpr.Pretty: operands at level 0, unary plus not written. */
    if (n->duration.wrapped) buf_putc(out, '(');
    switch (n->duration.op) {
    case PROMQL_OP_STEP:
    case PROMQL_OP_RANGE:
        /* Prometheus's Pretty would dereference a missing operand here;
         * String() is what can be printed. */
        buf_puts(out, n->duration.op == PROMQL_OP_STEP ? "step()" : "range()");
        break;
    default:
        if (!n->duration.rhs && n->duration.op != PROMQL_OP_MIN_OF &&
            n->duration.op != PROMQL_OP_MAX_OF) {
            if (n->duration.op != PROMQL_OP_ADD) buf_puts(out, promql_op_name(n->duration.op));
            pretty(n->duration.lhs, 0, width, out);
        } else {
            pretty(n->duration.lhs, 0, width, out);
            buf_putc(out, ' ');
            buf_puts(out, promql_op_name(n->duration.op));
            buf_putc(out, ' ');
            pretty(n->duration.rhs, 0, width, out);
        }
        break;
    }
    if (n->duration.wrapped) buf_putc(out, ')');
}

static void pretty(const promql_node *n, int level, size_t width, buf *out)
{
    bool split = str_len(n) > width;
    switch (n->kind) {
    case PROMQL_NODE_AGGREGATE:
        indent(out, level);
        if (!split) {
            fmt_node(n, out);
            return;
        }
        put_agg_op(out, n);
        buf_puts(out, "(\n");
        if (n->aggregate.param) {
            pretty(n->aggregate.param, level + 1, width, out);
            buf_puts(out, ",\n");
        }
        pretty(n->aggregate.expr, level + 1, width, out);
        buf_putc(out, '\n');
        indent(out, level);
        buf_putc(out, ')');
        return;
    case PROMQL_NODE_BINARY:
        if (!split) {
            indent(out, level);
            fmt_node(n, out);
            return;
        }
        pretty(n->binary.lhs, level + 1, width, out);
        buf_putc(out, '\n');
        indent(out, level);
        buf_puts(out, promql_op_name(n->binary.op));
        if (n->binary.return_bool) buf_puts(out, " bool");
        put_matching(out, n);
        buf_putc(out, '\n');
        pretty(n->binary.rhs, level + 1, width, out);
        return;
    case PROMQL_NODE_CALL:
        indent(out, level);
        if (!split) {
            fmt_node(n, out);
            return;
        }
        buf_puts(out, n->call.func->name);
        buf_puts(out, "(\n");
        for (size_t i = 0; i < n->call.nargs; i++) {
            if (i) buf_puts(out, ",\n");
            pretty(n->call.args[i], level + 1, width, out);
        }
        buf_putc(out, '\n');
        indent(out, level);
        buf_putc(out, ')');
        return;
    case PROMQL_NODE_PAREN:
        indent(out, level);
        if (!split) {
            fmt_node(n, out);
            return;
        }
        buf_puts(out, "(\n");
        pretty(n->paren.expr, level + 1, width, out);
        buf_putc(out, '\n');
        indent(out, level);
        buf_putc(out, ')');
        return;
    case PROMQL_NODE_SUBQUERY:
        if (!split) {
            fmt_node(n, out);
            return;
        }
        pretty(n->subquery.expr, level, width, out);
        put_subquery_suffix(out, n);
        return;
    case PROMQL_NODE_UNARY: {
        buf child;
        buf_init(&child, BUF_UNLIMITED);
        pretty(n->unary.expr, level, width, &child);
        const char *s = buf_cstr(&child);
        size_t a = 0, b = child.len;
        while (a < b && strchr(" \t\n\r\v\f", s[a]))
            a++;
        while (b > a && strchr(" \t\n\r\v\f", s[b - 1]))
            b--;
        indent(out, level);
        buf_puts(out, promql_op_name(n->unary.op));
        buf_append(out, s + a, b - a);
        buf_cleanup(&child);
        return;
    }
    case PROMQL_NODE_DURATION:
        pretty_duration(n, width, out);
        return;
    default:
        indent(out, level);
        fmt_node(n, out);
        return;
    }
}

void promql_pretty_width(const promql_node *n, size_t width, buf *out)
{
    pretty(n, 0, width, out);
}

void promql_pretty(const promql_node *n, buf *out)
{
    pretty(n, 0, PRETTY_WIDTH, out);
}
