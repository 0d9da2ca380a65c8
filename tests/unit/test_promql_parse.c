/* Unit and conformance tests for promql/lex and promql/parse: the lexer,
 * parser, checks and printers must match Prometheus 3.14.0's
 * promql/parser token for token, tree for tree (node positions included),
 * error message for error message, and String()/Pretty() byte for byte.
 *
 * Data (tests/data/promql-parse/), cases separated by blank lines, `#`
 * starts a comment line. Strings are written as Go quoted strings
 * ("a\tb\xff\u00e4"). Lines of a case:
 *   opts [exp] [dur] [ext] [fill]  (a case of its own) parser options for the
 *                                  following cases: experimental functions,
 *                                  duration expressions, extended range
 *                                  selectors, fill modifiers
 *   in "QUERY"                     the input
 *   tree DUMP                      the expected tree, in this file's dump
 *                                  format (see dump()), with every node's
 *                                  byte range [start:end]
 *   out "TEXT"                     the expected String() (promql_format)
 *   err TEXT                       the expected error (first error only)
 *   width N / pretty "TEXT"        the expected Pretty(0) at line width N
 *   lex "INPUT" / tok TYPE POS "TEXT" ... / fail
 *                                  lexer tokens (ERROR tokens carry the
 *                                  message as TEXT), or that lexing fails
 *   func NAME (ARGS) variadic N returns TYPE [experimental]
 *                                  the function table (functions.txt)
 *
 * Every case that parses is also printed and re-parsed: the String() of the
 * re-parsed text must be the same. Failing cases are all printed and
 * counted; any failure fails the test.
 *
 * The conformance part parses every eval expression of
 * ../shared/conformance/promql/ *.test with all options on (as Prometheus's
 * promqltest runner does); without ../shared it is skipped (a failure when
 * CI is set). */
#include "testutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>

#include "buf.h"
#include "promql/ast.h"
#include "promql/lex.h"
#include "promql/parse.h"
#include "strutil.h"

#define DATA_DIR "tests/data/promql-parse"

/* ---- Go quoted strings ---------------------------------------------------- */

/* Reads a Go "..." literal at s; appends its bytes to out. Returns the
 * position after it, or NULL if malformed. */
static const char *go_unquote(const char *s, buf *out)
{
    size_t end;
    if (*s != '"' || strutil_go_unquote(s, strlen(s), STRUTIL_UNQUOTE_GO, out, &end, NULL) < 0)
        return NULL;
    return s + end;
}

/* ---- the tree dump ------------------------------------------------------------ */

static void dump(const promql_node *n, buf *out);

static void dump_pos(const promql_node *n, buf *out)
{
    buf_printf(out, " [%u:%u])", n->pos.start, n->pos.end);
}

static void dump_num(double v, buf *out)
{
    if (isnan(v))
        buf_puts(out, "nan");
    else
        buf_printf(out, "%.17g", v);
}

static void dump_labels(const promql_str *ls, size_t n, buf *out)
{
    buf_putc(out, '(');
    for (size_t i = 0; i < n; i++) {
        if (i) buf_putc(out, ',');
        promql_lex_quote(out, ls[i].p, ls[i].len);
    }
    buf_putc(out, ')');
}

static void dump_mods(const promql_offset *o, const promql_at *a, buf *out)
{
    if (o->expr) {
        buf_puts(out, " off=");
        dump(o->expr, out);
    } else if (o->ns != 0) {
        buf_printf(out, " off=%lld", (long long)o->original_ms);
    }
    if (a->set) {
        if (a->start_or_end != PROMQL_OP_NONE)
            buf_printf(out, " at=%s()", promql_op_name(a->start_or_end));
        else
            buf_printf(out, " at=%lld", (long long)a->ts_ms);
    }
}

static const char *card_name(enum promql_card c)
{
    switch (c) {
    case PROMQL_CARD_ONE_TO_ONE:
        return "one-to-one";
    case PROMQL_CARD_MANY_TO_ONE:
        return "many-to-one";
    case PROMQL_CARD_ONE_TO_MANY:
        return "one-to-many";
    case PROMQL_CARD_MANY_TO_MANY:
        return "many-to-many";
    }
    return "?";
}

static void dump(const promql_node *n, buf *out)
{
    if (!n) {
        buf_puts(out, "nil");
        return;
    }
    switch (n->kind) {
    case PROMQL_NODE_NUMBER:
        buf_puts(out, "(num ");
        dump_num(n->number.val, out);
        if (n->number.duration) buf_puts(out, " dur");
        break;
    case PROMQL_NODE_STRING:
        buf_puts(out, "(str ");
        promql_lex_quote(out, n->string.val.p, n->string.val.len);
        break;
    case PROMQL_NODE_VECTOR_SELECTOR:
        buf_puts(out, "(vs ");
        promql_lex_quote(out, n->vector.name.p, n->vector.name.len);
        buf_puts(out, " {");
        for (size_t i = 0; i < n->vector.n_matchers; i++) {
            static const char *const ops[] = {"=", "!=", "=~", "!~"};
            const label_matcher *m = &n->vector.matchers[i];
            if (i) buf_putc(out, ' ');
            promql_lex_quote(out, m->name, m->name_len);
            buf_puts(out, ops[m->type]);
            promql_lex_quote(out, m->value, m->value_len);
        }
        buf_putc(out, '}');
        dump_mods(&n->vector.offset, &n->vector.at, out);
        if (n->vector.anchored) buf_puts(out, " anchored");
        if (n->vector.smoothed) buf_puts(out, " smoothed");
        break;
    case PROMQL_NODE_MATRIX_SELECTOR:
        buf_puts(out, "(matrix ");
        dump(n->matrix.vs, out);
        buf_puts(out, " range=");
        if (n->matrix.range_expr)
            dump(n->matrix.range_expr, out);
        else
            buf_printf(out, "%lld", (long long)n->matrix.range_ms);
        break;
    case PROMQL_NODE_SUBQUERY:
        buf_puts(out, "(subq ");
        dump(n->subquery.expr, out);
        buf_puts(out, " range=");
        if (n->subquery.range_expr)
            dump(n->subquery.range_expr, out);
        else
            buf_printf(out, "%lld", (long long)n->subquery.range_ms);
        if (n->subquery.step_expr) {
            buf_puts(out, " step=");
            dump(n->subquery.step_expr, out);
        } else if (n->subquery.step_ns != 0) {
            buf_printf(out, " step=%lld", (long long)n->subquery.step_ms);
        }
        dump_mods(&n->subquery.offset, &n->subquery.at, out);
        break;
    case PROMQL_NODE_AGGREGATE:
        buf_printf(out, "(agg %s", promql_op_name(n->aggregate.op));
        if (n->aggregate.without) {
            buf_puts(out, " without");
            dump_labels(n->aggregate.grouping, n->aggregate.n_grouping, out);
        } else if (n->aggregate.n_grouping) {
            buf_puts(out, " by");
            dump_labels(n->aggregate.grouping, n->aggregate.n_grouping, out);
        }
        if (n->aggregate.param) {
            buf_putc(out, ' ');
            dump(n->aggregate.param, out);
        }
        buf_putc(out, ' ');
        dump(n->aggregate.expr, out);
        break;
    case PROMQL_NODE_BINARY: {
        buf_printf(out, "(bin %s", promql_op_name(n->binary.op));
        if (n->binary.return_bool) buf_puts(out, " bool");
        const promql_vector_matching *vm = n->binary.matching;
        if (vm) {
            buf_printf(out, " match=(%s", card_name(vm->card));
            if (vm->on) {
                buf_puts(out, " on");
                dump_labels(vm->matching_labels, vm->n_matching, out);
            } else if (vm->n_matching) {
                buf_puts(out, " ignoring");
                dump_labels(vm->matching_labels, vm->n_matching, out);
            }
            if (vm->n_include) {
                buf_puts(out, " include");
                dump_labels(vm->include, vm->n_include, out);
            }
            if (vm->has_fill_lhs) {
                buf_puts(out, " fill_left=");
                dump_num(vm->fill_lhs, out);
            }
            if (vm->has_fill_rhs) {
                buf_puts(out, " fill_right=");
                dump_num(vm->fill_rhs, out);
            }
            buf_putc(out, ')');
        }
        buf_putc(out, ' ');
        dump(n->binary.lhs, out);
        buf_putc(out, ' ');
        dump(n->binary.rhs, out);
        break;
    }
    case PROMQL_NODE_CALL:
        buf_printf(out, "(call %s", n->call.func->name);
        for (size_t i = 0; i < n->call.nargs; i++) {
            buf_putc(out, ' ');
            dump(n->call.args[i], out);
        }
        break;
    case PROMQL_NODE_PAREN:
        buf_puts(out, "(paren ");
        dump(n->paren.expr, out);
        break;
    case PROMQL_NODE_UNARY:
        buf_printf(out, "(unary %s ", promql_op_name(n->unary.op));
        dump(n->unary.expr, out);
        break;
    case PROMQL_NODE_DURATION:
        buf_printf(out, "(dur %s", promql_op_name(n->duration.op));
        if (n->duration.wrapped) buf_puts(out, " wrapped");
        if (n->duration.lhs) {
            buf_putc(out, ' ');
            dump(n->duration.lhs, out);
        }
        if (n->duration.rhs) {
            buf_putc(out, ' ');
            dump(n->duration.rhs, out);
        }
        break;
    }
    dump_pos(n, out);
}

/* ---- token names for the lexer cases ---------------------------------------------- */

static const char *tok_name(enum promql_tok t)
{
    static const char *const names[PROMQL_TOK__COUNT] = {
        "EOF",
        "ERROR",
        "COMMENT",
        "IDENTIFIER",
        "METRIC_IDENTIFIER",
        "NUMBER",
        "DURATION",
        "STRING",
        "LEFT_PAREN",
        "RIGHT_PAREN",
        "LEFT_BRACE",
        "RIGHT_BRACE",
        "LEFT_BRACKET",
        "RIGHT_BRACKET",
        "COMMA",
        "EQL",
        "COLON",
        "ADD",
        "DIV",
        "EQLC",
        "EQL_REGEX",
        "GTE",
        "GTR",
        "TRIM_UPPER",
        "TRIM_LOWER",
        "LAND",
        "LOR",
        "LSS",
        "LTE",
        "LUNLESS",
        "MOD",
        "MUL",
        "NEQ",
        "NEQ_REGEX",
        "POW",
        "SUB",
        "AT",
        "ATAN2",
        "AVG",
        "BOTTOMK",
        "COUNT",
        "COUNT_VALUES",
        "GROUP",
        "MAX",
        "MIN",
        "QUANTILE",
        "STDDEV",
        "STDVAR",
        "SUM",
        "TOPK",
        "LIMITK",
        "LIMIT_RATIO",
        "BOOL",
        "BY",
        "GROUP_LEFT",
        "GROUP_RIGHT",
        "FILL",
        "FILL_LEFT",
        "FILL_RIGHT",
        "IGNORING",
        "OFFSET",
        "SMOOTHED",
        "ANCHORED",
        "ON",
        "WITHOUT",
        "START",
        "END",
        "STEP",
        "RANGE",
        "MAX_OF",
        "MIN_OF",
    };
    return t < PROMQL_TOK__COUNT ? names[t] : "?";
}

/* ---- running the data files -------------------------------------------------------- */

typedef struct counts {
    int passed, failed;
} counts;

static void report(counts *c, const char *where, const char *input, const char *what,
                   const char *want, const char *got)
{
    c->failed++;
    print_message("FAIL %s: %s\n  input: %s\n  want: %s\n  got:  %s\n", where, what, input, want,
                  got);
}

/* Formats, re-parses and compares the String()s. */
static bool round_trip(const promql_parse_options *o, const promql_ast *ast, buf *why)
{
    buf s1, s2, err;
    buf_init(&s1, BUF_UNLIMITED);
    buf_init(&s2, BUF_UNLIMITED);
    buf_init(&err, BUF_UNLIMITED);
    promql_format(ast->root, &s1);
    promql_ast *again = NULL;
    bool ok = true;
    if (promql_parse(s1.data ? s1.data : "", s1.len, o, &again, &err) != 0) {
        buf_printf(why, "String() %s does not parse: %s", buf_cstr(&s1), buf_cstr(&err));
        ok = false;
    } else {
        promql_format(again->root, &s2);
        if (s1.len != s2.len || memcmp(buf_cstr(&s1), buf_cstr(&s2), s1.len) != 0) {
            buf_printf(why, "String() %s re-parses to %s", buf_cstr(&s1), buf_cstr(&s2));
            ok = false;
        }
    }
    promql_ast_free(again);
    buf_cleanup(&s1);
    buf_cleanup(&s2);
    buf_cleanup(&err);
    return ok;
}

typedef struct tcase {
    int line;
    bool has_in, has_lex;
    buf in;
    char *tree, *err;
    bool has_out, has_pretty, fail;
    buf out, pretty;
    size_t width;
    buf toks; /* expected tokens, one "TYPE POS TEXT" per line */
} tcase;

static void case_reset(tcase *c)
{
    c->has_in = c->has_lex = c->has_out = c->has_pretty = c->fail = false;
    buf_reset(&c->in);
    buf_reset(&c->out);
    buf_reset(&c->pretty);
    buf_reset(&c->toks);
    free(c->tree);
    free(c->err);
    c->tree = c->err = NULL;
    c->width = 100;
}

static void run_parse_case(const char *file, tcase *c, const promql_parse_options *o, counts *cnt)
{
    char where[512];
    snprintf(where, sizeof where, "%s:%d", file, c->line);
    buf quoted;
    buf_init(&quoted, BUF_UNLIMITED);
    promql_lex_quote(&quoted, c->in.data ? c->in.data : "", c->in.len);
    if (quoted.len > 300) {
        buf_truncate(&quoted, 300);
        buf_puts(&quoted, "...");
    }
    const char *qin = buf_cstr(&quoted);
    promql_ast *ast = NULL;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    int rc = promql_parse(c->in.data ? c->in.data : "", c->in.len, o, &ast, &err);
    bool ok = true;
    if (c->err) {
        if (rc == 0) {
            buf got;
            buf_init(&got, BUF_UNLIMITED);
            promql_format(ast->root, &got);
            report(cnt, where, qin, "error", c->err, buf_cstr(&got));
            buf_cleanup(&got);
            ok = false;
        } else if (strcmp(buf_cstr(&err), c->err) != 0) {
            report(cnt, where, qin, "error", c->err, buf_cstr(&err));
            ok = false;
        }
    } else if (rc != 0) {
        report(cnt, where, qin, "parse", c->tree ? c->tree : "success", buf_cstr(&err));
        ok = false;
    } else {
        buf got;
        buf_init(&got, BUF_UNLIMITED);
        if (c->tree) {
            dump(ast->root, &got);
            if (strcmp(buf_cstr(&got), c->tree) != 0) {
                report(cnt, where, qin, "tree", c->tree, buf_cstr(&got));
                ok = false;
            }
        }
        if (ok && c->has_out) {
            buf_reset(&got);
            promql_format(ast->root, &got);
            if (got.len != c->out.len || memcmp(buf_cstr(&got), buf_cstr(&c->out), got.len) != 0) {
                report(cnt, where, qin, "String()", buf_cstr(&c->out), buf_cstr(&got));
                ok = false;
            }
        }
        if (ok && c->has_pretty) {
            buf_reset(&got);
            promql_pretty_width(ast->root, c->width, &got);
            if (got.len != c->pretty.len ||
                memcmp(buf_cstr(&got), buf_cstr(&c->pretty), got.len) != 0) {
                report(cnt, where, qin, "Pretty()", buf_cstr(&c->pretty), buf_cstr(&got));
                ok = false;
            }
        }
        if (ok) {
            buf why;
            buf_init(&why, BUF_UNLIMITED);
            if (!round_trip(o, ast, &why)) {
                report(cnt, where, qin, "round trip", "same String()", buf_cstr(&why));
                ok = false;
            }
            buf_cleanup(&why);
        }
        buf_cleanup(&got);
    }
    if (ok) cnt->passed++;
    promql_ast_free(ast);
    buf_cleanup(&err);
    buf_cleanup(&quoted);
}

static void run_lex_case(const char *file, tcase *c, counts *cnt)
{
    char where[512];
    snprintf(where, sizeof where, "%s:%d", file, c->line);
    promql_lexer l;
    promql_lex_init(&l, c->in.data ? c->in.data : "", c->in.len);
    buf got;
    buf_init(&got, BUF_UNLIMITED);
    bool failed = false;
    for (int guard = 0; guard < 100000; guard++) {
        promql_token t;
        promql_lex_next(&l, &t);
        if (t.type == PROMQL_TOK_EOF) {
            if (t.pos != c->in.len) buf_printf(&got, "EOF at %u\n", t.pos);
            break;
        }
        buf_printf(&got, "%s %u ", tok_name(t.type), t.pos);
        if (t.type == PROMQL_TOK_ERROR) {
            failed = true;
            promql_lex_quote(&got, buf_cstr(&l.err), l.err.len);
        } else {
            promql_lex_quote(&got, l.in + t.pos, t.len);
        }
        buf_putc(&got, '\n');
        if (t.type == PROMQL_TOK_ERROR && promql_lex_done(&l)) break;
    }
    buf quoted;
    buf_init(&quoted, BUF_UNLIMITED);
    promql_lex_quote(&quoted, c->in.data ? c->in.data : "", c->in.len);
    if (c->fail) {
        if (!failed)
            report(cnt, where, buf_cstr(&quoted), "lexing", "an error", buf_cstr(&got));
        else
            cnt->passed++;
    } else if (strcmp(buf_cstr(&got), buf_cstr(&c->toks)) != 0) {
        report(cnt, where, buf_cstr(&quoted), "tokens", buf_cstr(&c->toks), buf_cstr(&got));
    } else {
        cnt->passed++;
    }
    buf_cleanup(&quoted);
    buf_cleanup(&got);
    promql_lex_cleanup(&l);
}

static const char *type_word(enum promql_type t)
{
    return promql_type_name(t);
}

static void run_func_line(const char *file, int line, const char *s, counts *cnt)
{
    char where[512];
    snprintf(where, sizeof where, "%s:%d", file, line);
    char name[64], args[256], ret[32], exp[32] = "";
    int variadic;
    if (sscanf(s, "func %63s (%255[^)]) variadic %d returns %31s %31s", name, args, &variadic, ret,
               exp) < 4 &&
        sscanf(s, "func %63s () variadic %d returns %31s %31s", name, &variadic, ret, exp) < 3) {
        report(cnt, where, s, "line", "func NAME (ARGS) variadic N returns TYPE", s);
        return;
    }
    if (strstr(s, " () ")) args[0] = '\0';
    const promql_function *f = promql_function_lookup(name, strlen(name));
    buf got;
    buf_init(&got, BUF_UNLIMITED);
    if (!f) {
        report(cnt, where, name, "function", s, "not found");
        buf_cleanup(&got);
        return;
    }
    buf_printf(&got, "func %s (", f->name);
    for (size_t i = 0; i < f->n_args; i++)
        buf_printf(&got, "%s%s", i ? "," : "", type_word(f->arg_types[i]));
    buf_printf(&got, ") variadic %d returns %s%s", f->variadic, type_word(f->return_type),
               f->experimental ? " experimental" : "");
    if (strcmp(buf_cstr(&got), s) != 0)
        report(cnt, where, name, "function", s, buf_cstr(&got));
    else
        cnt->passed++;
    buf_cleanup(&got);
}

static void run_case(const char *file, tcase *c, const promql_parse_options *o, counts *cnt)
{
    if (c->has_lex)
        run_lex_case(file, c, cnt);
    else if (c->has_in)
        run_parse_case(file, c, o, cnt);
}

static void parse_opts(const char *s, promql_parse_options *o)
{
    memset(o, 0, sizeof *o);
    o->experimental_functions = strstr(s, " exp") != NULL;
    o->duration_expressions = strstr(s, " dur") != NULL;
    o->extended_range_selectors = strstr(s, " ext") != NULL;
    o->fill_modifiers = strstr(s, " fill") != NULL;
}

static counts run_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", DATA_DIR, name);
    size_t len;
    char *data = tu_read_file(path, &len);
    if (!data) fail_msg("cannot read %s", path);
    counts cnt = {0, 0};
    promql_parse_options o;
    memset(&o, 0, sizeof o);
    tcase c;
    memset(&c, 0, sizeof c);
    buf_init(&c.in, BUF_UNLIMITED);
    buf_init(&c.out, BUF_UNLIMITED);
    buf_init(&c.pretty, BUF_UNLIMITED);
    buf_init(&c.toks, BUF_UNLIMITED);
    case_reset(&c);
    int lineno = 0;
    char *p = data;
    while (p && *p) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        lineno++;
        const char *s = p;
        p = nl ? nl + 1 : NULL;
        if (*s == '#') continue;
        if (*s == '\0') {
            run_case(name, &c, &o, &cnt);
            case_reset(&c);
            continue;
        }
        bool bad = false;
        if (strncmp(s, "opts", 4) == 0 && (s[4] == '\0' || s[4] == ' ')) {
            parse_opts(s + 4, &o);
        } else if (strncmp(s, "in ", 3) == 0) {
            c.has_in = true;
            c.line = lineno;
            bad = !go_unquote(s + 3, &c.in);
        } else if (strncmp(s, "lex ", 4) == 0) {
            c.has_lex = true;
            c.line = lineno;
            bad = !go_unquote(s + 4, &c.in);
        } else if (strncmp(s, "tree ", 5) == 0) {
            c.tree = strdup(s + 5);
        } else if (strncmp(s, "err ", 4) == 0) {
            c.err = strdup(s + 4);
        } else if (strncmp(s, "out ", 4) == 0) {
            c.has_out = true;
            bad = !go_unquote(s + 4, &c.out);
        } else if (strncmp(s, "pretty ", 7) == 0) {
            c.has_pretty = true;
            bad = !go_unquote(s + 7, &c.pretty);
        } else if (strncmp(s, "width ", 6) == 0) {
            c.width = (size_t)atoi(s + 6);
        } else if (strcmp(s, "fail") == 0) {
            c.fail = true;
        } else if (strncmp(s, "tok ", 4) == 0) {
            buf_puts(&c.toks, s + 4);
            buf_putc(&c.toks, '\n');
        } else if (strncmp(s, "func ", 5) == 0) {
            run_func_line(name, lineno, s, &cnt);
        } else {
            bad = true;
        }
        if (bad) fail_msg("%s:%d: cannot read line: %s", name, lineno, s);
    }
    run_case(name, &c, &o, &cnt);
    case_reset(&c);
    buf_cleanup(&c.in);
    buf_cleanup(&c.out);
    buf_cleanup(&c.pretty);
    buf_cleanup(&c.toks);
    free(data);
    print_message("%s: %d passed, %d failed\n", name, cnt.passed, cnt.failed);
    return cnt;
}

static void check_file(const char *name, int min_cases)
{
    counts c = run_file(name);
    if (c.failed) fail_msg("%s: %d of %d cases failed", name, c.failed, c.passed + c.failed);
    if (c.passed < min_cases) fail_msg("%s: only %d cases found", name, c.passed);
}

static void test_lexer(void **state)
{
    (void)state;
    check_file("lex.txt", 100);
}

static void test_parse(void **state)
{
    (void)state;
    check_file("parse.txt", 350);
}

static void test_printer(void **state)
{
    (void)state;
    check_file("printer.txt", 90);
}

static void test_pretty(void **state)
{
    (void)state;
    check_file("pretty.txt", 60);
}

static void test_functions(void **state)
{
    (void)state;
    check_file("functions.txt", 90);
    size_t n;
    const promql_function *f = promql_functions(&n);
    assert_int_equal(n, 90);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(f[i - 1].name, f[i].name) < 0);
    assert_null(promql_function_lookup("nope", 4));
    assert_null(promql_function_lookup("rat", 3));
    assert_non_null(promql_function_lookup("rate", 4));
}

static void test_extra(void **state)
{
    (void)state;
    check_file("extra.txt", 1);
}

/* ---- limits -------------------------------------------------------------------------- */

static void expect_error(const char *q, size_t len, const char *prefix)
{
    promql_parse_options all = {true, true, true, true};
    promql_ast *ast = NULL;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    int rc = promql_parse(q, len, &all, &ast, &err);
    assert_int_equal(rc, -EINVAL);
    assert_null(ast);
    if (strncmp(buf_cstr(&err), prefix, strlen(prefix)) != 0)
        fail_msg("error %s does not start with %s", buf_cstr(&err), prefix);
    buf_cleanup(&err);
}

static void test_limits(void **state)
{
    (void)state;
    /* Deep nesting of every kind is refused cleanly, not by overflowing the
     * stack. */
    const char *units[][2] = {{"(", ")"},          {"-", ""},   {"sum(", ")"}, {"abs(", ")"},
                              {"x[1m:][1m:]", ""}, {"1+", "1"}, {"2^", "2"}};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        buf q;
        buf_init(&q, BUF_UNLIMITED);
        for (int i = 0; i < 5000; i++)
            buf_puts(&q, units[u][0]);
        buf_puts(&q, "x");
        for (int i = 0; i < 5000; i++)
            buf_puts(&q, units[u][1]);
        promql_parse_options all = {true, true, true, true};
        promql_ast *ast = NULL;
        buf err;
        buf_init(&err, BUF_UNLIMITED);
        int rc = promql_parse(q.data, q.len, &all, &ast, &err);
        assert_int_equal(rc, -EINVAL);
        if (!strstr(buf_cstr(&err), "nested too deeply") && !strstr(buf_cstr(&err), "parse error"))
            fail_msg("%s", buf_cstr(&err));
        buf_cleanup(&err);
        buf_cleanup(&q);
    }
    /* A long flat chain is a deep tree too. */
    buf q;
    buf_init(&q, BUF_UNLIMITED);
    buf_puts(&q, "x");
    for (int i = 0; i < 3000; i++)
        buf_puts(&q, " + x");
    expect_error(q.data, q.len, "1:");
    buf_reset(&q);
    /* Just under the limit works. */
    buf_puts(&q, "x");
    for (int i = 0; i < 400; i++)
        buf_puts(&q, " + x");
    promql_ast *ast = NULL;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(promql_parse(q.data, q.len, NULL, &ast, &err), 0);
    promql_ast_free(ast);
    /* The size cap. */
    buf_reset(&q);
    for (int i = 0; i < PROMQL_MAX_QUERY_BYTES; i++)
        buf_putc(&q, ' ');
    buf_putc(&q, '1');
    expect_error(q.data, q.len, "1:1: parse error: query is longer than");
    buf_cleanup(&q);
    buf_cleanup(&err);
    promql_ast_free(NULL);
}

/* ---- conformance: every eval expression of the promqltest files parses ----------------- */

/* The expression of an eval header line, or NULL. */
static const char *eval_expr(const char *line)
{
    if (strncmp(line, "eval", 4) != 0) return NULL;
    const char *s = line + 4;
    while (*s && *s != ' ')
        s++;
    while (*s == ' ')
        s++;
    if (strncmp(s, "instant at ", 11) == 0) {
        s += 11;
        while (*s && *s != ' ')
            s++;
    } else if (strncmp(s, "range from ", 11) == 0) {
        s += 11;
        for (int i = 0; i < 5 && *s; i++) { /* t0 "to" t1 "step" step */
            while (*s && *s != ' ')
                s++;
            while (*s == ' ')
                s++;
        }
    } else {
        return NULL;
    }
    while (*s == ' ')
        s++;
    return s;
}

static void test_conformance_evals(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("conformance/promql");
    char dir[4096];
    tu_shared_path(dir, sizeof dir, "conformance/promql");
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int total = 0, failed = 0, files = 0;
    promql_parse_options all = {true, true, true, true};
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl < 5 || strcmp(e->d_name + nl - 5, ".test") != 0) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *data = tu_read_file(path, NULL);
        assert_non_null(data);
        files++;
        int lineno = 0;
        for (char *p = data; p && *p;) {
            char *end = strchr(p, '\n');
            if (end) *end = '\0';
            lineno++;
            char *s = p;
            p = end ? end + 1 : NULL;
            while (*s == ' ' || *s == '\t')
                s++;
            size_t sl = strlen(s);
            while (sl && (s[sl - 1] == ' ' || s[sl - 1] == '\t' || s[sl - 1] == '\r'))
                s[--sl] = '\0';
            const char *expr = eval_expr(s);
            if (!expr) continue;
            total++;
            promql_ast *ast = NULL;
            buf err;
            buf_init(&err, BUF_UNLIMITED);
            if (promql_parse(expr, strlen(expr), &all, &ast, &err) != 0) {
                failed++;
                print_message("FAIL %s:%d: %s\n  %s\n", e->d_name, lineno, expr, buf_cstr(&err));
            } else {
                buf why;
                buf_init(&why, BUF_UNLIMITED);
                if (!round_trip(&all, ast, &why)) {
                    failed++;
                    print_message("FAIL %s:%d: round trip: %s\n", e->d_name, lineno,
                                  buf_cstr(&why));
                }
                buf_cleanup(&why);
            }
            promql_ast_free(ast);
            buf_cleanup(&err);
        }
        free(data);
    }
    closedir(d);
    print_message("conformance evals: %d files, %d expressions, %d passed, %d failed\n", files,
                  total, total - failed, failed);
    assert_true(files > 0);
    assert_true(total > 1000);
    assert_int_equal(failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lexer),     cmocka_unit_test(test_parse),
        cmocka_unit_test(test_printer),   cmocka_unit_test(test_pretty),
        cmocka_unit_test(test_functions), cmocka_unit_test(test_extra),
        cmocka_unit_test(test_limits),    cmocka_unit_test(test_conformance_evals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
