/* rulestest: promtool's rule unit-test runner (see rulestest.h). Written
 * from cmd/promtool/unittest.go's documented behaviour. */
#include "rulestest.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "buf.h"
#include "labels.h"
#include "log.h"
#include "mem.h"
#include "promql/eval.h"
#include "promql/func.h"
#include "promql/memstore.h"
#include "promql/parse.h"
#include "promql/promqltest.h"
#include "regex.h"
#include "rulefmt.h"
#include "rules.h"
#include "strutil.h"
#include "yamlconf.h"

/* Caps: a test file is read whole; messages are bounded. */
#define RT_MAX_FILE_BYTES ((size_t)YAMLCONF_MAX_INPUT)
#define RT_MAX_MSG_BYTES ((size_t)16 << 20)
/* Most values one test group's input_series may expand to (as many as
 * one promqltest file may hold). */
#define RT_MAX_INPUT_ITEMS PROMQLTEST_MAX_FILE_ITEMS
#define RT_LOOKBACK_MS ((int64_t)5 * 60 * 1000)

/* ---- the test file ------------------------------------------------------------ */

typedef struct rt_input {
    const char *series, *values;
} rt_input;

typedef struct rt_exp_alert {
    labels *labels; /* alertname added */
    labels *annotations;
} rt_exp_alert;

typedef struct rt_alert_test {
    int64_t eval_time;
    const char *alertname; /* "" when missing */
    rt_exp_alert *exp;
    size_t n_exp;
} rt_alert_test;

typedef struct rt_exp_sample {
    const char *labels; /* "" when omitted */
    double value;
    const char *histogram; /* "" when omitted */
} rt_exp_sample;

typedef struct rt_expr_test {
    const char *expr;
    int64_t eval_time;
    rt_exp_sample *exp;
    size_t n_exp;
} rt_expr_test;

typedef struct rt_group {
    const char *name; /* "" when unnamed */
    int64_t interval;
    rt_input *inputs;
    size_t n_inputs;
    rt_alert_test *alerts;
    size_t n_alerts;
    rt_expr_test *exprs;
    size_t n_exprs;
    labels *external_labels;
    const char *external_url;
    bool has_start;
    int64_t start_ms;
} rt_group;

typedef struct rt_file {
    char **rule_files; /* patterns as written */
    size_t n_rule_files;
    int64_t eval_interval;
    const char **order;
    size_t n_order;
    bool fuzzy;
    rt_group *groups;
    size_t n_groups;
} rt_file;

/* Everything a parsed file owns: strings point into the YAML document
 * (kept alive) and labels are tracked for freeing. */
typedef struct rt_parsed {
    yamlconf_doc *doc;
    rt_file f;
    arena mem;
    labels **owned;
    size_t n_owned, cap_owned;
} rt_parsed;

static labels *rt_own(rt_parsed *p, labels *ls)
{
    p->owned = mem_grow(p->owned, sizeof *p->owned, p->n_owned + 1, &p->cap_owned);
    p->owned[p->n_owned++] = ls;
    return ls;
}

static void rt_parsed_cleanup(rt_parsed *p)
{
    for (size_t i = 0; i < p->n_owned; i++)
        labels_free(p->owned[i]);
    mem_free(p->owned);
    arena_cleanup(&p->mem);
    yamlconf_free(p->doc);
    memset(p, 0, sizeof *p);
}

/* yaml.v2's UnmarshalStrict collects type errors and unknown fields as
 * "line N: ..." lines; a custom unmarshaler's error (durations, start
 * timestamps) stops decoding with its own message. */
typedef struct rt_dec_err {
    uint32_t line, col;
    size_t seq; /* order of detection, for a stable sort */
    char *text; /* "\n  line N: ..." */
} rt_dec_err;

typedef struct rt_dec {
    rt_parsed *p;
    rt_dec_err *errs; /* yaml.v2 reports them in document order */
    size_t n_errs, cap_errs;
    buf fatal; /* non-empty: decoding stopped with this message */
} rt_dec;

static void rt_dec_add(rt_dec *d, const yamlconf_node *at, buf *text)
{
    d->errs = mem_grow(d->errs, sizeof *d->errs, d->n_errs + 1, &d->cap_errs);
    d->errs[d->n_errs] =
        (rt_dec_err){at->line, at->col, d->n_errs, mem_strndup(buf_cstr(text), text->len)};
    d->n_errs++;
    buf_cleanup(text);
}

static int rt_dec_err_cmp(const void *a, const void *b)
{
    const rt_dec_err *x = a, *y = b;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    if (x->col != y->col) return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool rt_dec_failed(const rt_dec *d)
{
    return d->fatal.len > 0;
}

static void rt_type_err(rt_dec *d, const yamlconf_node *n, const char *go_type)
{
    buf t;
    buf_init(&t, RT_MAX_MSG_BYTES);
    buf_printf(&t, "\n  line %u: ", (unsigned)n->line);
    yamlconf_type_error(&t, n, go_type);
    rt_dec_add(d, n, &t);
}

/* Checks that every key of map is in `known` (NULL-terminated); unknown
 * ones are errors naming the Go type, as UnmarshalStrict reports them. */
static bool rt_check_map(rt_dec *d, const yamlconf_node *n, const char *type,
                         const char *const *known)
{
    if (yamlconf_is_null(n)) return false;
    if (n->kind != YAMLCONF_MAP) {
        rt_type_err(d, n, type);
        return false;
    }
    for (size_t i = 0; i < n->n; i++) {
        const yamlconf_node *k = n->pairs[i].key;
        bool ok = false;
        for (size_t j = 0; known[j]; j++)
            if (yamlconf_str_eq(k, known[j])) ok = true;
        buf t;
        buf_init(&t, RT_MAX_MSG_BYTES);
        if (!ok) {
            buf_printf(&t, "\n  line %u: field %s not found in type %s", (unsigned)k->line,
                       k->kind == YAMLCONF_SCALAR ? k->str : "?", type);
            rt_dec_add(d, k, &t);
            continue;
        }
        /* A field given twice: yaml.v2's strict mode refuses it (the
         * first value is the one read here). */
        for (size_t j = 0; j < i; j++)
            if (yamlconf_str_eq(n->pairs[j].key, k->str) && t.len == 0)
                buf_printf(&t, "\n  line %u: field %s already set in type %s", (unsigned)k->line,
                           k->str, type);
        if (t.len)
            rt_dec_add(d, k, &t);
        else
            buf_cleanup(&t);
    }
    return true;
}

/* A Go string field: any scalar's text; null is "". */
static const char *rt_str(rt_dec *d, const yamlconf_node *n)
{
    if (yamlconf_is_null(n)) return "";
    if (n->kind != YAMLCONF_SCALAR) {
        rt_type_err(d, n, "string");
        return "";
    }
    return n->str;
}

/* A model.Duration: decoded from a string (any scalar), then parsed. */
static int64_t rt_duration(rt_dec *d, const yamlconf_node *n)
{
    if (yamlconf_is_null(n) || rt_dec_failed(d)) return 0;
    if (n->kind != YAMLCONF_SCALAR) {
        rt_type_err(d, n, "string");
        return 0;
    }
    int64_t ms = 0;
    if (strutil_parse_duration(n->str, n->len, &ms, &d->fatal) != 0 && d->fatal.len == 0)
        buf_printf(&d->fatal, "not a valid duration string: \"%s\"", n->str);
    return ms;
}

/* time.Parse(time.RFC3339Nano, s) to ms since the epoch (truncated); as
 * before, lower-case 't' and 'z' are accepted too. */
static bool rt_parse_rfc3339(const char *s, size_t len, int64_t *ms)
{
    int64_t sec;
    int32_t nsec;
    if (strutil_parse_rfc3339_ci(s, len, &sec, &nsec) != 0) return false;
    *ms = sec * 1000 + nsec / 1000000;
    return true;
}

/* promtool's parseTime: a float of unix seconds, else RFC3339Nano. */
static void rt_start_timestamp(rt_dec *d, const yamlconf_node *n, rt_group *g)
{
    if (yamlconf_is_null(n) || rt_dec_failed(d)) return;
    if (n->kind != YAMLCONF_SCALAR) {
        rt_type_err(d, n, "string");
        return;
    }
    const char *s = n->str;
    char *end = NULL;
    errno = 0;
    double v = n->len ? strtod(s, &end) : 0;
    bool hex = strchr(s, 'x') || strchr(s, 'X');
    if (n->len && end == s + n->len && errno == 0 && isfinite(v) &&
        (!hex || strchr(s, 'p') || strchr(s, 'P')) && fabs(v) < 9.2e15) {
        double ip;
        double frac = modf(v, &ip);
        g->start_ms = (int64_t)ip * 1000 + (int64_t)(frac * 1e9) / 1000000;
        g->has_start = true;
        return;
    }
    if (rt_parse_rfc3339(s, n->len, &g->start_ms)) {
        g->has_start = true;
        return;
    }
    buf_printf(&d->fatal, "cannot parse \"%s\" to a valid timestamp", s);
}

/* map[string]string into a label set; caller (the parse) owns it. */
static labels *rt_str_map(rt_dec *d, const yamlconf_node *n, const char *extra_name,
                          const char *extra_value)
{
    labels_builder b;
    labels_builder_init(&b);
    if (!yamlconf_is_null(n)) {
        if (n->kind != YAMLCONF_MAP) {
            rt_type_err(d, n, "map[string]string");
        } else {
            for (size_t i = 0; i < n->n; i++) {
                const char *k = rt_str(d, n->pairs[i].key);
                const char *v = rt_str(d, n->pairs[i].value);
                labels_builder_set(&b, k, strlen(k), v, strlen(v));
            }
        }
    }
    if (extra_name)
        labels_builder_set(&b, extra_name, strlen(extra_name), extra_value, strlen(extra_value));
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return rt_own(d->p, ls);
}

/* A sequence field; null is empty. Returns the item count (0 on error). */
static size_t rt_seq(rt_dec *d, const yamlconf_node *n, const char *go_type)
{
    if (yamlconf_is_null(n)) return 0;
    if (n->kind != YAMLCONF_SEQ) {
        rt_type_err(d, n, go_type);
        return 0;
    }
    return n->n;
}

static void *rt_alloc(rt_dec *d, size_t n, size_t size)
{
    return n ? arena_calloc(&d->p->mem, n * size) : NULL;
}

static void rt_decode_alert_test(rt_dec *d, const yamlconf_node *n, rt_alert_test *t)
{
    static const char *const keys[] = {"eval_time", "alertname", "exp_alerts", NULL};
    t->alertname = "";
    if (!rt_check_map(d, n, "main.alertTestCase", keys)) return;
    t->eval_time = rt_duration(d, yamlconf_map_get(n, "eval_time", NULL));
    t->alertname = rt_str(d, yamlconf_map_get(n, "alertname", NULL));
    const yamlconf_node *ea = yamlconf_map_get(n, "exp_alerts", NULL);
    size_t ne = rt_seq(d, ea, "[]main.alert");
    t->exp = rt_alloc(d, ne, sizeof *t->exp);
    for (size_t i = 0; i < ne; i++) {
        static const char *const akeys[] = {"exp_labels", "exp_annotations", NULL};
        const yamlconf_node *a = ea->items[i];
        const yamlconf_node *el = NULL, *ean = NULL;
        if (rt_check_map(d, a, "main.alert", akeys)) {
            el = yamlconf_map_get(a, "exp_labels", NULL);
            ean = yamlconf_map_get(a, "exp_annotations", NULL);
        }
        t->exp[i].labels = rt_str_map(d, el, "alertname", t->alertname);
        t->exp[i].annotations = rt_str_map(d, ean, NULL, NULL);
    }
    t->n_exp = ne;
}

static void rt_decode_expr_test(rt_dec *d, const yamlconf_node *n, rt_expr_test *t)
{
    static const char *const keys[] = {"expr", "eval_time", "exp_samples", NULL};
    t->expr = "";
    if (!rt_check_map(d, n, "main.promqlTestCase", keys)) return;
    t->expr = rt_str(d, yamlconf_map_get(n, "expr", NULL));
    t->eval_time = rt_duration(d, yamlconf_map_get(n, "eval_time", NULL));
    const yamlconf_node *es = yamlconf_map_get(n, "exp_samples", NULL);
    size_t ne = rt_seq(d, es, "[]main.sample");
    t->exp = rt_alloc(d, ne, sizeof *t->exp);
    for (size_t i = 0; i < ne; i++) {
        static const char *const skeys[] = {"labels", "value", "histogram", NULL};
        const yamlconf_node *s = es->items[i];
        rt_exp_sample *e = &t->exp[i];
        e->labels = e->histogram = "";
        if (!rt_check_map(d, s, "main.sample", skeys)) continue;
        e->labels = rt_str(d, yamlconf_map_get(s, "labels", NULL));
        e->histogram = rt_str(d, yamlconf_map_get(s, "histogram", NULL));
        const yamlconf_node *v = yamlconf_map_get(s, "value", NULL);
        if (!yamlconf_is_null(v) && yamlconf_float(v, &e->value) != 0) rt_type_err(d, v, "float64");
    }
    t->n_exp = ne;
}

static void rt_decode_group(rt_dec *d, const yamlconf_node *n, rt_group *g)
{
    static const char *const keys[] = {"interval",
                                       "input_series",
                                       "alert_rule_test",
                                       "promql_expr_test",
                                       "external_labels",
                                       "external_url",
                                       "name",
                                       "start_timestamp",
                                       NULL};
    g->name = g->external_url = "";
    if (!rt_check_map(d, n, "main.testGroup", keys)) {
        g->external_labels = rt_str_map(d, NULL, NULL, NULL);
        return;
    }
    g->interval = rt_duration(d, yamlconf_map_get(n, "interval", NULL));
    const yamlconf_node *is = yamlconf_map_get(n, "input_series", NULL);
    g->n_inputs = rt_seq(d, is, "[]main.series");
    g->inputs = rt_alloc(d, g->n_inputs, sizeof *g->inputs);
    for (size_t i = 0; i < g->n_inputs; i++) {
        static const char *const skeys[] = {"series", "values", NULL};
        rt_input *in = &g->inputs[i];
        in->series = in->values = "";
        if (!rt_check_map(d, is->items[i], "main.series", skeys)) continue;
        in->series = rt_str(d, yamlconf_map_get(is->items[i], "series", NULL));
        in->values = rt_str(d, yamlconf_map_get(is->items[i], "values", NULL));
    }
    const yamlconf_node *at = yamlconf_map_get(n, "alert_rule_test", NULL);
    g->n_alerts = rt_seq(d, at, "[]main.alertTestCase");
    g->alerts = rt_alloc(d, g->n_alerts, sizeof *g->alerts);
    for (size_t i = 0; i < g->n_alerts; i++)
        rt_decode_alert_test(d, at->items[i], &g->alerts[i]);
    const yamlconf_node *pt = yamlconf_map_get(n, "promql_expr_test", NULL);
    g->n_exprs = rt_seq(d, pt, "[]main.promqlTestCase");
    g->exprs = rt_alloc(d, g->n_exprs, sizeof *g->exprs);
    for (size_t i = 0; i < g->n_exprs; i++)
        rt_decode_expr_test(d, pt->items[i], &g->exprs[i]);
    g->external_labels = rt_str_map(d, yamlconf_map_get(n, "external_labels", NULL), NULL, NULL);
    g->external_url = rt_str(d, yamlconf_map_get(n, "external_url", NULL));
    g->name = rt_str(d, yamlconf_map_get(n, "name", NULL));
    rt_start_timestamp(d, yamlconf_map_get(n, "start_timestamp", NULL), g);
}

static const char **rt_str_list(rt_dec *d, const yamlconf_node *n, size_t *count)
{
    *count = rt_seq(d, n, "[]string");
    const char **v = rt_alloc(d, *count, sizeof *v);
    for (size_t i = 0; i < *count; i++)
        v[i] = rt_str(d, n->items[i]);
    return v;
}

/* Parses the test file text strictly. Returns 0, or -EINVAL with the
 * message (promtool's) in err. */
static int rt_parse(const char *text, size_t len, const char *source, rt_parsed *p, buf *err)
{
    memset(p, 0, sizeof *p);
    arena_init(&p->mem, 0);
    buf yerr;
    buf_init(&yerr, RT_MAX_MSG_BYTES);
    int rc = yamlconf_parse(text, len, source, &p->doc, &yerr);
    if (rc != 0) {
        /* yamlconf says "<source>:<line>:<col>: <problem>"; yaml.v2 says
         * "yaml: line N: <problem>": keep ours, it has the position. */
        buf_printf(err, "yaml: %s", buf_cstr(&yerr));
        buf_cleanup(&yerr);
        return -EINVAL;
    }
    buf_cleanup(&yerr);
    rt_dec d = {.p = p};
    buf_init(&d.fatal, RT_MAX_MSG_BYTES);
    const yamlconf_node *root = yamlconf_root(p->doc);
    rt_file *f = &p->f;
    static const char *const keys[] = {"rule_files", "evaluation_interval", "group_eval_order",
                                       "tests",      "fuzzy_compare",       NULL};
    if (rt_check_map(&d, root, "main.unitTestFile", keys)) {
        size_t nr;
        const char **rf = rt_str_list(&d, yamlconf_map_get(root, "rule_files", NULL), &nr);
        f->rule_files = rt_alloc(&d, nr, sizeof *f->rule_files);
        for (size_t i = 0; i < nr; i++)
            f->rule_files[i] = (char *)rf[i];
        f->n_rule_files = nr;
        f->eval_interval = rt_duration(&d, yamlconf_map_get(root, "evaluation_interval", NULL));
        f->order = rt_str_list(&d, yamlconf_map_get(root, "group_eval_order", NULL), &f->n_order);
        const yamlconf_node *fz = yamlconf_map_get(root, "fuzzy_compare", NULL);
        if (!yamlconf_is_null(fz) && yamlconf_bool(fz, &f->fuzzy) != 0) rt_type_err(&d, fz, "bool");
        const yamlconf_node *tests = yamlconf_map_get(root, "tests", NULL);
        f->n_groups = rt_seq(&d, tests, "[]main.testGroup");
        f->groups = rt_alloc(&d, f->n_groups, sizeof *f->groups);
        for (size_t i = 0; i < f->n_groups && !rt_dec_failed(&d); i++)
            rt_decode_group(&d, tests->items[i], &f->groups[i]);
    }
    rc = 0;
    if (rt_dec_failed(&d)) {
        buf_append(err, d.fatal.data, d.fatal.len);
        rc = -EINVAL;
    } else if (d.n_errs) {
        qsort(d.errs, d.n_errs, sizeof *d.errs, rt_dec_err_cmp);
        buf_puts(err, "yaml: unmarshal errors:");
        for (size_t i = 0; i < d.n_errs; i++)
            buf_puts(err, d.errs[i].text);
        rc = -EINVAL;
    }
    for (size_t i = 0; i < d.n_errs; i++)
        mem_free(d.errs[i].text);
    mem_free(d.errs);
    buf_cleanup(&d.fatal);
    if (f->eval_interval == 0) f->eval_interval = 60 * 1000;
    return rc;
}

/* ---- formatting ------------------------------------------------------------------ */

/* Go's time.Duration.String() for a whole number of milliseconds. */
static void rt_go_duration(int64_t ms, buf *out)
{
    if (ms == 0) {
        buf_puts(out, "0s");
        return;
    }
    uint64_t u = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    if (ms < 0) buf_putc(out, '-');
    if (u < 1000) {
        buf_printf(out, "%" PRIu64 "ms", u);
        return;
    }
    uint64_t h = u / 3600000, m = u / 60000 % 60, s = u / 1000 % 60, frac = u % 1000;
    if (h) buf_printf(out, "%" PRIu64 "h", h);
    if (h || m) buf_printf(out, "%" PRIu64 "m", m);
    buf_printf(out, "%" PRIu64, s);
    if (frac) {
        char f[8];
        snprintf(f, sizeof f, "%03u", (unsigned)frac);
        size_t n = strlen(f);
        while (n > 0 && f[n - 1] == '0')
            f[--n] = '\0';
        buf_printf(out, ".%s", f);
    }
    buf_putc(out, 's');
}

/* model.Duration.String(). */
static void rt_model_duration(int64_t ms, buf *out)
{
    char s[32];
    strutil_format_duration(ms, s);
    buf_puts(out, s);
}

/* strconv.FormatFloat(v, 'E', -1, 64). */
static void rt_format_float_E(double v, buf *out)
{
    if (isnan(v)) {
        buf_puts(out, "NaN");
        return;
    }
    if (isinf(v)) {
        buf_puts(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char s[64];
    for (int prec = 0; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*E", prec, v);
        if (strtod(s, NULL) == v) break;
    }
    buf_puts(out, s);
}

/* Go's %q for a string (strconv.Quote): printable UTF-8 kept. */
static void rt_go_quote(const char *s, buf *out)
{
    buf_putc(out, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            buf_puts(out, "\\\"");
            break;
        case '\\':
            buf_puts(out, "\\\\");
            break;
        case '\n':
            buf_puts(out, "\\n");
            break;
        case '\t':
            buf_puts(out, "\\t");
            break;
        case '\r':
            buf_puts(out, "\\r");
            break;
        case '\a':
            buf_puts(out, "\\a");
            break;
        case '\b':
            buf_puts(out, "\\b");
            break;
        case '\f':
            buf_puts(out, "\\f");
            break;
        case '\v':
            buf_puts(out, "\\v");
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                buf_printf(out, "\\x%02x", *p);
            else
                buf_putc(out, (char)*p);
        }
    }
    buf_putc(out, '"');
}

/* Appends s with every line after the first prefixed by indent
 * (promtool's indentLines). */
static void rt_indent(const char *s, size_t len, const char *indent, buf *out)
{
    for (size_t i = 0; i < len; i++) {
        buf_putc(out, s[i]);
        if (s[i] == '\n') buf_puts(out, indent);
    }
}

/* ---- alerts: expected vs got -------------------------------------------------------- */

typedef struct rt_la {
    labels *labels, *annotations; /* borrowed (expected) or owned (got) */
} rt_la;

static int rt_la_cmp(const void *a, const void *b)
{
    const rt_la *x = a, *y = b;
    int c = labels_compare(x->labels, y->labels);
    return c ? c : labels_compare(x->annotations, y->annotations);
}

/* labelsAndAnnotations.String(). */
static void rt_la_string(const rt_la *v, size_t n, buf *out)
{
    if (n == 0) {
        buf_puts(out, "[]");
        return;
    }
    buf_puts(out, "[");
    for (size_t i = 0; i < n; i++) {
        buf one;
        buf_init(&one, RT_MAX_MSG_BYTES);
        buf_puts(&one, "\nLabels:");
        labels_format(v[i].labels, &one);
        buf_puts(&one, "\nAnnotations:");
        labels_format(v[i].annotations, &one);
        buf_printf(out, "%s\n%zu:", i ? "," : "", i);
        rt_indent(one.data, one.len, "  ", out);
        buf_cleanup(&one);
    }
    buf_puts(out, "\n]");
}

/* ---- expected samples ------------------------------------------------------------------ */

typedef struct rt_sample {
    labels *labels; /* owned */
    double value;
    char *histogram; /* owned canonical {{...}} form (TestExpression); NULL for floats */
} rt_sample;

static int rt_sample_cmp(const void *a, const void *b)
{
    return labels_compare(((const rt_sample *)a)->labels, ((const rt_sample *)b)->labels);
}

static void rt_samples_free(rt_sample *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        labels_free(v[i].labels);
        mem_free(v[i].histogram);
    }
    mem_free(v);
}

/* The canonical string of a histogram (caller frees). */
static char *rt_hist_string(const promql_fh *h)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    promql_fh_format(h, &b);
    char *r = mem_strdup(buf_cstr(&b));
    buf_cleanup(&b);
    return r;
}

/* Parses an expected `histogram:` ({{...}} in the series notation) into its
 * canonical string; NULL with the reason in err. */
static char *rt_parse_histogram(const char *s, buf *err)
{
    buf t;
    buf_init(&t, BUF_UNLIMITED);
    buf_puts(&t, "{} ");
    buf_puts(&t, s);
    arena a;
    arena_init(&a, 0);
    size_t budget = 2;
    promqltest_series ps;
    char *r = NULL;
    if (promqltest_parse_series(&a, t.data, t.len, &budget, &ps, err) == 0) {
        if (ps.n == 1 && ps.items[0].kind == PROMQLTEST_ITEM_HISTOGRAM) {
            promql_fh *h = promqltest_item_histogram(&ps.items[0]);
            r = rt_hist_string(h);
            promql_fh_free(h);
        } else {
            buf_puts(err, "not a single native histogram");
        }
        labels_free(ps.ls);
    }
    arena_cleanup(&a);
    buf_cleanup(&t);
    return r;
}

/* parsedSamplesString(). */
static void rt_samples_string(const rt_sample *v, size_t n, buf *out)
{
    if (n == 0) {
        buf_puts(out, "nil");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (i) buf_puts(out, ", ");
        labels_format(v[i].labels, out);
        buf_putc(out, ' ');
        if (v[i].histogram)
            buf_puts(out, v[i].histogram);
        else
            rt_format_float_E(v[i].value, out);
    }
}

static bool rt_float_eq(double x, double y, bool fuzzy)
{
    if (x == y) return true;
    return fuzzy && (nextafter(x, -INFINITY) == y || nextafter(x, INFINITY) == y);
}

/* Parses exp_samples' labels as parser.ParseMetric does (empty: no
 * labels). Returns 0 and *out, or -EINVAL with the reason in err. */
static int rt_parse_metric(const char *s, labels **out, buf *err)
{
    size_t len = strlen(s);
    if (len == 0) {
        *out = labels_dup(labels_empty());
        return 0;
    }
    arena a;
    arena_init(&a, 0);
    size_t budget = 1;
    promqltest_series ps;
    buf why;
    buf_init(&why, RT_MAX_MSG_BYTES);
    int rc = promqltest_parse_series(&a, s, len, &budget, &ps, &why);
    if (rc == 0 && ps.n != 0) {
        labels_free(ps.ls);
        rc = -EINVAL;
        buf_puts(&why, "unexpected values after the metric");
    }
    if (rc == 0) {
        *out = ps.ls;
    } else {
        buf_printf(err, "1:%s", buf_cstr(&why));
    }
    buf_cleanup(&why);
    arena_cleanup(&a);
    return rc == 0 ? 0 : -EINVAL;
}

/* ---- input series, loaded lazily ------------------------------------------------------- */

typedef struct rt_load {
    labels *ls; /* owned */
    promqltest_item *items;
    size_t n, next; /* next: the first item not yet appended */
} rt_load;

typedef struct rt_loader {
    arena mem;
    rt_load *v;
    size_t n;
    int64_t start_ms, step_ms;
} rt_loader;

static void rt_loader_cleanup(rt_loader *l)
{
    for (size_t i = 0; i < l->n; i++)
        labels_free(l->v[i].ls);
    mem_free(l->v);
    arena_cleanup(&l->mem);
}

/* Parses the input series as `load <interval>` lines. Returns 0, or
 * -EINVAL with promqltest's reason in err. */
static int rt_loader_init(rt_loader *l, const rt_group *g, int64_t start_ms, buf *err)
{
    memset(l, 0, sizeof *l);
    arena_init(&l->mem, 0);
    l->start_ms = start_ms;
    l->step_ms = g->interval;
    l->v = mem_calloc(g->n_inputs ? g->n_inputs : 1, sizeof *l->v);
    size_t budget = RT_MAX_INPUT_ITEMS;
    buf line;
    buf_init(&line, RT_MAX_MSG_BYTES);
    int rc = 0;
    for (size_t i = 0; i < g->n_inputs; i++) {
        buf_reset(&line);
        buf_printf(&line, "%s %s", g->inputs[i].series, g->inputs[i].values);
        promqltest_series ps;
        buf why;
        buf_init(&why, RT_MAX_MSG_BYTES);
        rc = promqltest_parse_series(&l->mem, line.data, line.len, &budget, &ps, &why);
        if (rc != 0) {
            /* As promqltest reports it: "<line>:<col>: parse error: ...",
             * the line counting the input series from 1 (as promtool
             * prints it). */
            const char *w = buf_cstr(&why);
            size_t nd = strspn(w, "0123456789");
            if (nd > 0 && strncmp(w + nd, ": ", 2) == 0)
                buf_printf(err, "%zu:%.*s: parse error: %s", i + 1, (int)nd, w, w + nd + 2);
            else
                buf_printf(err, "%zu:1: parse error: %s", i + 1, w);
            buf_cleanup(&why);
            rc = -EINVAL;
            break;
        }
        buf_cleanup(&why);
        /* A repeated series: the last definition wins (promqltest keeps
         * its definitions in a map). */
        size_t j;
        for (j = 0; j < l->n; j++)
            if (labels_equal(l->v[j].ls, ps.ls)) break;
        if (j < l->n)
            labels_free(l->v[j].ls);
        else
            l->n++;
        l->v[j] = (rt_load){.ls = ps.ls, .items = ps.items, .n = ps.n};
    }
    buf_cleanup(&line);
    return rc;
}

/* Appends every sample at or before ts (promqltest's appendTill). */
static int rt_loader_till(rt_loader *l, memstore *ms, int64_t ts, buf *err)
{
    for (size_t i = 0; i < l->n; i++) {
        rt_load *s = &l->v[i];
        while (s->next < s->n) {
            int64_t t = l->start_ms + (int64_t)s->next * l->step_ms;
            if (t > ts) break;
            const promqltest_item *it = &s->items[s->next++];
            int rc = 0;
            size_t err0 = err->len;
            if (it->kind == PROMQLTEST_ITEM_FLOAT)
                rc = memstore_append(ms, s->ls, t, it->v, err);
            else if (it->kind == PROMQLTEST_ITEM_HISTOGRAM) {
                promql_fh *h = promqltest_item_histogram(it);
                rc = memstore_append_histogram(ms, s->ls, t, h, err);
                promql_fh_free(h);
            }
            if (rc != 0) {
                if (err->len == err0)
                    buf_printf(err, "loading input series: %s",
                               rc == -E2BIG ? "too many samples" : strerror(-rc));
                return rc;
            }
        }
    }
    return 0;
}

/* ---- one test group ---------------------------------------------------------------- */

typedef struct rt_errs {
    char **v;
    size_t n, cap;
} rt_errs;

static void rt_errs_add(rt_errs *e, buf *msg)
{
    e->v = mem_grow(e->v, sizeof *e->v, e->n + 1, &e->cap);
    e->v[e->n++] = mem_strndup(msg->data ? msg->data : "", msg->len);
    buf_reset(msg);
}

static void rt_errs_cleanup(rt_errs *e)
{
    for (size_t i = 0; i < e->n; i++)
        mem_free(e->v[i]);
    mem_free(e->v);
    memset(e, 0, sizeof *e);
}

/* What a test group's run shares with the rule-engine adapter below. */
typedef struct rt_run {
    const rt_file *file;
    const rt_group *g;
    const rulestest_options *o;
    memstore *ms;
    promql_engine_options eopts;
    promql_parse_options popts;
    const char *base_dir; /* the test file's directory */
    /* the rule engine */
    rules_manager *m;
    size_t *order; /* group indexes in evaluation order */
    size_t n_order;
} rt_run;

static int rt_rules_new(rt_run *r, buf *err);
static void rt_rules_eval(rt_run *r, int64_t ts, rt_errs *errs);
static void rt_rules_firing(rt_run *r, const char *alertname, rt_la **v, size_t *n, size_t *cap);
static void rt_rules_free(rt_run *r);

static int rt_i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t rt_max_eval_time(const rt_group *g)
{
    int64_t m = 0;
    for (size_t i = 0; i < g->n_alerts; i++)
        if (g->alerts[i].eval_time > m) m = g->alerts[i].eval_time;
    for (size_t i = 0; i < g->n_exprs; i++)
        if (g->exprs[i].eval_time > m) m = g->exprs[i].eval_time;
    return m;
}

/* Compares the firing alerts named t->alertname with t's expectations. */
static void rt_check_alerts(rt_run *r, const rt_alert_test *t, rt_errs *errs, buf *msg)
{
    rt_la *got = NULL;
    size_t n_got = 0, cap_got = 0;
    rt_rules_firing(r, t->alertname, &got, &n_got, &cap_got);
    rt_la *exp = mem_calloc(t->n_exp ? t->n_exp : 1, sizeof *exp);
    for (size_t i = 0; i < t->n_exp; i++)
        exp[i] = (rt_la){t->exp[i].labels, t->exp[i].annotations};
    if (n_got) qsort(got, n_got, sizeof *got, rt_la_cmp);
    if (t->n_exp) qsort(exp, t->n_exp, sizeof *exp, rt_la_cmp);
    bool same = n_got == t->n_exp;
    for (size_t i = 0; same && i < n_got; i++)
        same = labels_equal(got[i].labels, exp[i].labels) &&
               labels_equal(got[i].annotations, exp[i].annotations);
    if (!same) {
        if (r->g->name[0]) buf_printf(msg, "    name: %s,\n", r->g->name);
        buf_printf(msg, "    alertname: %s, time: ", t->alertname);
        rt_model_duration(t->eval_time, msg);
        buf_puts(msg, ", \n        exp:");
        buf s;
        buf_init(&s, RT_MAX_MSG_BYTES);
        rt_la_string(exp, t->n_exp, &s);
        rt_indent(s.data, s.len, "            ", msg);
        buf_puts(msg, ", \n        got:");
        buf_reset(&s);
        rt_la_string(got, n_got, &s);
        rt_indent(s.data, s.len, "            ", msg);
        buf_cleanup(&s);
        rt_errs_add(errs, msg);
    }
    for (size_t i = 0; i < n_got; i++) {
        labels_free(got[i].labels);
        labels_free(got[i].annotations);
    }
    mem_free(got);
    mem_free(exp);
}

/* Runs an instant query at t; fills *out with its samples (a scalar as
 * one sample without labels). Returns 0, or -1 with the message in err. */
static int rt_query(rt_run *r, const char *expr, int64_t t, rt_sample **out, size_t *n, buf *err)
{
    *out = NULL;
    *n = 0;
    promql_ast *ast = NULL;
    if (promql_parse(expr, strlen(expr), &r->popts, &ast, err) != 0) return -1;
    promql_queryable src = memstore_queryable(r->ms);
    promql_query q = {.ast = ast, .expr = ast->root, .start_ms = t, .end_ms = t, .step_ms = 0};
    promql_value v;
    memset(&v, 0, sizeof v);
    promql_error pe;
    promql_error_init(&pe);
    int rc = promql_eval(&r->eopts, &src, &q, &v, NULL, &pe);
    if (rc != 0) {
        buf_puts(err, buf_cstr(&pe.msg));
        rc = -1;
    } else if (v.type == PROMQL_TYPE_SCALAR) {
        *out = mem_calloc(1, sizeof **out);
        (*out)[0] = (rt_sample){labels_dup(labels_empty()), v.scalar, NULL};
        *n = 1;
    } else if (v.type == PROMQL_TYPE_VECTOR) {
        *out = mem_calloc(v.vector.n ? v.vector.n : 1, sizeof **out);
        for (size_t i = 0; i < v.vector.n; i++)
            (*out)[i] =
                (rt_sample){labels_dup(v.vector.v[i].metric), v.vector.v[i].h ? 0 : v.vector.v[i].v,
                            v.vector.v[i].h ? rt_hist_string(v.vector.v[i].h) : NULL};
        *n = v.vector.n;
    } else {
        buf_puts(err, "rule result is not a vector or scalar");
        rc = -1;
    }
    promql_value_cleanup(&v);
    promql_error_cleanup(&pe);
    promql_ast_free(ast);
    return rc;
}

static void rt_expr_prefix(const rt_expr_test *t, buf *msg)
{
    buf_puts(msg, "    expr: ");
    rt_go_quote(t->expr, msg);
    buf_puts(msg, ", time: ");
    rt_model_duration(t->eval_time, msg);
}

static void rt_check_expr(rt_run *r, const rt_expr_test *t, int64_t mint, bool fuzzy, rt_errs *errs,
                          buf *msg)
{
    rt_sample *got = NULL, *exp = NULL;
    size_t n_got = 0;
    buf why;
    buf_init(&why, RT_MAX_MSG_BYTES);
    if (rt_query(r, t->expr, mint + t->eval_time, &got, &n_got, &why) != 0) {
        rt_expr_prefix(t, msg);
        buf_printf(msg, ", err: %s", buf_cstr(&why));
        rt_errs_add(errs, msg);
        goto out;
    }
    exp = mem_calloc(t->n_exp ? t->n_exp : 1, sizeof *exp);
    for (size_t i = 0; i < t->n_exp; i++) {
        const rt_exp_sample *e = &t->exp[i];
        if (rt_parse_metric(e->labels, &exp[i].labels, &why) != 0) {
            rt_expr_prefix(t, msg);
            buf_puts(msg, ", err: labels ");
            rt_go_quote(e->labels, msg);
            buf_printf(msg, ": %s", buf_cstr(&why));
            rt_errs_add(errs, msg);
            rt_samples_free(exp, i);
            exp = NULL;
            goto out;
        }
        exp[i].value = e->value;
        if (e->histogram[0]) {
            exp[i].value = 0;
            exp[i].histogram = rt_parse_histogram(e->histogram, &why);
            if (!exp[i].histogram) {
                rt_expr_prefix(t, msg);
                buf_puts(msg, ", err: histogram ");
                rt_go_quote(e->histogram, msg);
                buf_printf(msg, ": %s", buf_cstr(&why));
                rt_errs_add(errs, msg);
                rt_samples_free(exp, i + 1);
                exp = NULL;
                goto out;
            }
        }
    }
    if (t->n_exp) qsort(exp, t->n_exp, sizeof *exp, rt_sample_cmp);
    if (n_got) qsort(got, n_got, sizeof *got, rt_sample_cmp);
    bool same = n_got == t->n_exp;
    for (size_t i = 0; same && i < n_got; i++)
        same = labels_equal(got[i].labels, exp[i].labels) &&
               rt_float_eq(exp[i].value, got[i].value, fuzzy) &&
               !exp[i].histogram == !got[i].histogram &&
               (!exp[i].histogram || strcmp(exp[i].histogram, got[i].histogram) == 0);
    if (!same) {
        rt_expr_prefix(t, msg);
        buf_puts(msg, ",\n        exp: ");
        rt_samples_string(exp, t->n_exp, msg);
        buf_puts(msg, "\n        got: ");
        rt_samples_string(got, n_got, msg);
        rt_errs_add(errs, msg);
    }
    rt_samples_free(exp, t->n_exp);
    exp = NULL;
out:
    rt_samples_free(got, n_got);
    buf_cleanup(&why);
}

/* The --debug dump: every series over the whole test range. */
static void rt_debug_dump(rt_run *r, int64_t mint, FILE *errf)
{
    int64_t ts = rt_max_eval_time(r->g);
    ts = (ts + 1000) / 1000 * 1000;
    buf expr;
    buf_init(&expr, RT_MAX_MSG_BYTES);
    buf_printf(&expr, "{__name__=~\".+\"}[%" PRId64 "s]", ts / 1000);
    promql_ast *ast = NULL;
    buf err;
    buf_init(&err, RT_MAX_MSG_BYTES);
    promql_value v;
    memset(&v, 0, sizeof v);
    promql_error pe;
    promql_error_init(&pe);
    if (promql_parse(expr.data, expr.len, NULL, &ast, &err) != 0) {
        fprintf(errf, "DEBUG: Failed querying, expr: \"%s\", err: %s\n", expr.data, buf_cstr(&err));
        goto out;
    }
    promql_queryable src = memstore_queryable(r->ms);
    promql_query q = {.ast = ast, .expr = ast->root, .start_ms = mint + ts, .end_ms = mint + ts};
    if (promql_eval(&r->eopts, &src, &q, &v, NULL, &pe) != 0) {
        fprintf(errf, "DEBUG: Failed query exec, expr: \"%s\", err: %s\n", expr.data,
                buf_cstr(&pe.msg));
        goto out;
    }
    buf d;
    buf_init(&d, BUF_UNLIMITED);
    buf_puts(&d, "DEBUG: Dump of all data (input_series and rules) at ");
    rt_go_duration(ts, &d);
    buf_puts(&d, ":\n");
    for (size_t i = 0; i < v.matrix.n; i++) {
        const promql_series *s = &v.matrix.v[i];
        if (i) buf_putc(&d, '\n');
        labels_format(s->metric, &d);
        buf_puts(&d, " =>");
        for (size_t j = 0; j < s->n; j++) {
            buf_putc(&d, '\n');
            promql_format_float_f(s->pts[j].v, &d);
            buf_printf(&d, " @[%" PRId64 "]", s->pts[j].t);
        }
    }
    fprintf(errf, "%s\n", buf_cstr(&d));
    buf_cleanup(&d);
out:
    promql_value_cleanup(&v);
    promql_error_cleanup(&pe);
    promql_ast_free(ast);
    buf_cleanup(&err);
    buf_cleanup(&expr);
}

/* testGroup.test(): appends every failure to errs. */
static void rt_run_group(rt_run *r, const char *testname, rt_errs *errs)
{
    const rt_group *g = r->g;
    const rulestest_options *o = r->o;
    FILE *errf = o->err ? o->err : stderr;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (o->debug) fprintf(errf, "DEBUG: Starting test %s\n", testname);
    buf msg;
    buf_init(&msg, RT_MAX_MSG_BYTES);
    int64_t mint = g->has_start ? g->start_ms : 0;
    int64_t maxt = mint + rt_max_eval_time(g);
    int64_t step = r->file->eval_interval;
    rt_loader ld;
    int64_t *times = NULL;
    r->ms = memstore_new(0);
    r->eopts = (promql_engine_options){.lookback_delta_ms = RT_LOOKBACK_MS,
                                       .default_subquery_step_ms = step,
                                       .delayed_name_removal = o->delayed_name_removal};
    r->popts = o->parse;
    r->popts.duration_expressions = true; /* always on in promtool 3.x */
    if (rt_loader_init(&ld, g, mint, &msg) != 0) {
        rt_errs_add(errs, &msg);
        goto out;
    }
    if (rt_rules_new(r, &msg) != 0) {
        rt_errs_add(errs, &msg);
        goto out;
    }
    for (size_t i = 0; i < g->n_alerts; i++) {
        if (g->alerts[i].alertname[0]) continue;
        buf_puts(&msg, "an item under alert_rule_test misses required attribute alertname at "
                       "eval_time ");
        rt_model_duration(g->alerts[i].eval_time, &msg);
        if (g->name[0]) buf_printf(&msg, " (in TestGroup %s)", g->name);
        rt_errs_add(errs, &msg);
        goto out;
    }
    /* The distinct alert eval times, sorted. */
    size_t n_times = 0;
    times = mem_calloc(g->n_alerts ? g->n_alerts : 1, sizeof *times);
    for (size_t i = 0; i < g->n_alerts; i++)
        times[n_times++] = g->alerts[i].eval_time;
    if (n_times) qsort(times, n_times, sizeof *times, rt_i64_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n_times; i++)
        if (i == 0 || times[i] != times[k - 1]) times[k++] = times[i];
    n_times = k;
    size_t curr = 0;
    for (int64_t ts = mint; ts <= maxt; ts += step) {
        if (rt_loader_till(&ld, r->ms, ts, &msg) != 0) {
            rt_errs_add(errs, &msg);
            goto out;
        }
        size_t before = errs->n;
        rt_rules_eval(r, ts, errs);
        if (errs->n > before) goto out;
        while (curr < n_times && ts - mint <= times[curr] && times[curr] < ts + step - mint) {
            for (size_t i = 0; i < g->n_alerts; i++)
                if (g->alerts[i].eval_time == times[curr])
                    rt_check_alerts(r, &g->alerts[i], errs, &msg);
            curr++;
        }
        if (step <= 0) break;
    }
    for (size_t i = 0; i < g->n_exprs; i++)
        rt_check_expr(r, &g->exprs[i], mint, r->file->fuzzy, errs, &msg);
    if (o->debug) rt_debug_dump(r, mint, errf);
out:
    mem_free(times);
    rt_rules_free(r);
    rt_loader_cleanup(&ld);
    memstore_free(r->ms);
    r->ms = NULL;
    buf_cleanup(&msg);
    if (o->debug) {
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        fprintf(errf, "DEBUG: Test %s finished, took %.6fs\n", testname, s);
    }
}

/* ---- the rule engine: rules.h over the test's memstore ----------------------------- */

static void *rt_app_begin(void *ctx)
{
    return ctx;
}

static int rt_app_append_histogram(void *batch, const labels *ls, int64_t t, const promql_fh *h,
                                   buf *err)
{
    return memstore_append_histogram(batch, ls, t, h, err);
}

static int rt_app_append(void *batch, const labels *ls, int64_t t, double v, buf *err)
{
    return memstore_append(batch, ls, t, v, err);
}

static int rt_app_commit(void *batch, buf *err)
{
    (void)batch;
    (void)err;
    return 0;
}

typedef struct rt_named {
    const char *name;
    size_t index;
    size_t pos; /* group_eval_order position; 0 when unlisted */
} rt_named;

static int rt_named_cmp(const void *a, const void *b)
{
    const rt_named *x = a, *y = b;
    if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index; /* stable */
}

/* LoadGroups + orderedGroups: the rule files with the test group's
 * interval as the default group interval. Returns 0, or -EINVAL with the
 * load errors in err. */
static int rt_rules_new(rt_run *r, buf *err)
{
    /* No rule files: no groups to evaluate (promtool's manager would be
     * empty), so no engine is needed. */
    if (r->file->n_rule_files == 0) return 0;
    rules_options ro;
    memset(&ro, 0, sizeof ro);
    promql_queryable q = memstore_queryable(r->ms);
    rules_source_queryable(&q, &ro.source);
    ro.appender = (rules_appender){
        .ctx = r->ms,
        .begin = rt_app_begin,
        .append = rt_app_append,
        .append_histogram = rt_app_append_histogram,
        .commit = rt_app_commit};
    ro.engine = r->eopts;
    ro.parse = r->popts;
    size_t err0 = err->len;
    int rc0 = rules_manager_new(&ro, &r->m, err);
    if (rc0 != 0) {
        if (err->len == err0) buf_printf(err, "rule engine: %s", strerror(-rc0));
        return -EINVAL;
    }
    rulefmt_options fo = {.ignore_unknown_fields = r->o->ignore_unknown_fields};
    rules_config rc = {.files = r->file->rule_files,
                       .n_files = r->file->n_rule_files,
                       .base_dir = r->base_dir,
                       .fmt = &fo,
                       .evaluation_interval_ms = r->g->interval,
                       .external_labels = r->g->external_labels,
                       .external_url = r->g->external_url};
    buf lerr;
    buf_init(&lerr, RT_MAX_MSG_BYTES);
    int rc2 = rules_manager_update(r->m, &rc, &lerr);
    if (rc2 != 0) {
        /* One message per line, as promtool prints each load error. */
        size_t n = lerr.len;
        while (n > 0 && lerr.data[n - 1] == '\n')
            n--;
        if (n)
            buf_append(err, lerr.data, n);
        else
            buf_printf(err, "loading rule files: %s", strerror(-rc2));
        buf_cleanup(&lerr);
        return -EINVAL;
    }
    buf_cleanup(&lerr);
    rules_snapshot snap;
    rules_manager_snapshot(r->m, &snap);
    rt_named *nv = mem_calloc(snap.n_groups ? snap.n_groups : 1, sizeof *nv);
    for (size_t i = 0; i < snap.n_groups; i++) {
        nv[i] = (rt_named){.name = snap.groups[i].name, .index = i};
        for (size_t j = 0; j < r->file->n_order; j++)
            if (strcmp(r->file->order[j], snap.groups[i].name) == 0) nv[i].pos = j;
    }
    if (snap.n_groups) qsort(nv, snap.n_groups, sizeof *nv, rt_named_cmp);
    r->order = mem_calloc(snap.n_groups ? snap.n_groups : 1, sizeof *r->order);
    for (size_t i = 0; i < snap.n_groups; i++)
        r->order[i] = nv[i].index;
    r->n_order = snap.n_groups;
    mem_free(nv);
    rules_snapshot_cleanup(&snap);
    return 0;
}

/* Evaluates every group at ts in order and adds one error per failed
 * rule ("    rule: NAME, time: T, err: ..."; T is Go's Duration since the
 * epoch, as promtool prints it). */
static void rt_rules_eval(rt_run *r, int64_t ts, rt_errs *errs)
{
    if (!r->m) return;
    rules_manager_eval(r->m, ts, r->order, r->n_order);
    rules_snapshot snap;
    rules_manager_snapshot(r->m, &snap);
    buf msg;
    buf_init(&msg, RT_MAX_MSG_BYTES);
    for (size_t k = 0; k < r->n_order; k++) {
        const rules_group_snap *g = &snap.groups[r->order[k]];
        for (size_t i = 0; i < g->n_rules; i++) {
            const rules_rule_snap *ru = &g->rules[i];
            if (ru->health != RULES_HEALTH_ERR || !ru->last_error) continue;
            buf_printf(&msg, "    rule: %s, time: ", ru->name);
            rt_go_duration(ts, &msg);
            buf_printf(&msg, ", err: %s", ru->last_error);
            rt_errs_add(errs, &msg);
        }
    }
    buf_cleanup(&msg);
    rules_snapshot_cleanup(&snap);
}

/* Appends copies of the firing alerts of every alerting rule called
 * alertname, in any group. */
static void rt_rules_firing(rt_run *r, const char *alertname, rt_la **v, size_t *n, size_t *cap)
{
    if (!r->m) return;
    rules_snapshot snap;
    rules_manager_snapshot(r->m, &snap);
    for (size_t k = 0; k < snap.n_groups; k++) {
        const rules_group_snap *g = &snap.groups[k];
        for (size_t i = 0; i < g->n_rules; i++) {
            const rules_rule_snap *ru = &g->rules[i];
            if (!ru->alerting || strcmp(ru->name, alertname) != 0) continue;
            for (size_t j = 0; j < ru->n_alerts; j++) {
                if (ru->alerts[j].state != RULES_STATE_FIRING) continue;
                *v = mem_grow(*v, sizeof **v, *n + 1, cap);
                (*v)[(*n)++] = (rt_la){labels_dup(ru->alerts[j].labels),
                                       labels_dup(ru->alerts[j].annotations)};
            }
        }
    }
    rules_snapshot_cleanup(&snap);
}

static void rt_rules_free(rt_run *r)
{
    rules_manager_free(r->m);
    r->m = NULL;
    mem_free(r->order);
    r->order = NULL;
    r->n_order = 0;
}

/* ---- files and the command --------------------------------------------------------- */

/* Compiles --run as promtool does (the regexes joined with `|`, matched
 * anywhere in the name). Returns 0 and *out (NULL when there are none), or
 * -EINVAL with the reason in err. */
static int rt_compile_run(const rulestest_options *o, regex **out, buf *err)
{
    *out = NULL;
    if (!o->run || o->n_run == 0) return 0;
    buf p;
    buf_init(&p, RT_MAX_MSG_BYTES);
    buf_puts(&p, ".*(?:");
    for (size_t i = 0; i < o->n_run; i++) {
        if (i) buf_putc(&p, '|');
        buf_puts(&p, o->run[i]);
    }
    buf_puts(&p, ").*");
    int rc = regex_compile(out, p.data, p.len, err);
    buf_cleanup(&p);
    return rc == 0 ? 0 : -EINVAL;
}

static char *rt_dirname(const char *path)
{
    char *d = mem_strdup(path);
    char *r = mem_strdup(dirname(d));
    mem_free(d);
    return r;
}

/* ruleUnitTest(): every failure of the file into errs. */
static void rt_file_errors(const char *path, const rulestest_options *o, rulestest_counts *c,
                           rt_errs *errs)
{
    FILE *errf = o->err ? o->err : stderr;
    buf msg;
    buf_init(&msg, RT_MAX_MSG_BYTES);
    rt_parsed p;
    memset(&p, 0, sizeof p);
    regex *run = NULL;
    char *base = rt_dirname(path);
    size_t len = 0;
    char *text = NULL;
    FILE *fp = fopen(path, "rb");
    if (fp) {
        buf t;
        buf_init(&t, RT_MAX_FILE_BYTES);
        char chunk[65536];
        size_t r;
        int rc = 0;
        while (rc == 0 && (r = fread(chunk, 1, sizeof chunk, fp)) > 0)
            rc = buf_append(&t, chunk, r);
        bool bad = ferror(fp) || rc != 0;
        fclose(fp);
        if (bad) {
            buf_printf(&msg, "read %s: %s", path, rc ? "file too large" : strerror(EIO));
            buf_cleanup(&t);
            goto fail;
        }
        text = buf_detach(&t, &len);
    } else {
        buf_printf(&msg, "open %s: %s", path, strerror(errno));
        goto fail;
    }
    if (rt_parse(text ? text : "", len, path, &p, &msg) != 0) goto fail;
    /* Rule files resolve against the test file's directory; "." stays
     * implicit so that paths print as promtool's filepath.Join gives them. */
    const char *rel_base = strcmp(base, ".") == 0 ? NULL : base;
    /* The rule file patterns: a pattern matching nothing is a warning. */
    for (size_t i = 0; i < p.f.n_rule_files; i++) {
        char **paths = NULL;
        size_t n = 0;
        if (rulefmt_glob(&p.f.rule_files[i], 1, rel_base, &paths, &n, &msg) != 0) goto fail;
        if (n == 0) {
            if (p.f.rule_files[i][0] == '/' || !p.f.rule_files[i][0] || strcmp(base, ".") == 0)
                fprintf(errf, "  WARNING: no file match pattern %s\n", p.f.rule_files[i]);
            else
                fprintf(errf, "  WARNING: no file match pattern %s/%s\n", base, p.f.rule_files[i]);
        }
        for (size_t j = 0; j < n; j++)
            mem_free(paths[j]);
        mem_free(paths);
    }
    for (size_t i = 0; i < p.f.n_order; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(p.f.order[i], p.f.order[j]) == 0) {
                buf_printf(&msg, "group name repeated in evaluation order: %s", p.f.order[i]);
                goto fail;
            }
    if (rt_compile_run(o, &run, &msg) != 0) goto fail;
    for (size_t i = 0; i < p.f.n_groups; i++) {
        rt_group *g = &p.f.groups[i];
        if (run && !regex_match(run, g->name, strlen(g->name))) {
            if (c) c->skipped++;
            continue;
        }
        char unnamed[48];
        snprintf(unnamed, sizeof unnamed, "unnamed#%zu", i);
        if (g->interval == 0) g->interval = p.f.eval_interval;
        rt_run r = {.file = &p.f, .g = g, .o = o, .base_dir = rel_base};
        size_t before = errs->n;
        rt_run_group(&r, g->name[0] ? g->name : unnamed, errs);
        if (c) {
            if (errs->n > before)
                c->failed++;
            else
                c->passed++;
        }
    }
    goto out;
fail:
    rt_errs_add(errs, &msg);
    if (c) c->failed++;
out:
    regex_free(run);
    rt_parsed_cleanup(&p);
    mem_free(text);
    mem_free(base);
    buf_cleanup(&msg);
}

int rulestest_run_file(const char *path, const rulestest_options *o, rulestest_counts *c)
{
    rulestest_options def = {0};
    if (!o) o = &def;
    FILE *out = o->out ? o->out : stdout;
    FILE *errf = o->err ? o->err : stderr;
    fprintf(out, "Unit Testing:  %s\n", path);
    fflush(out);
    rt_errs errs = {0};
    rt_file_errors(path, o, c, &errs);
    int rc = 0;
    if (errs.n) {
        fprintf(errf, "  FAILED:\n");
        for (size_t i = 0; i < errs.n; i++) {
            fprintf(errf, "%s\n", errs.v[i]);
            fflush(errf);
            fprintf(out, "\n");
            fflush(out);
        }
        rc = 1;
    } else {
        fprintf(out, "  SUCCESS\n");
    }
    fprintf(out, "\n");
    fflush(out);
    fflush(errf);
    rt_errs_cleanup(&errs);
    return rc;
}

/* promtool's --enable-feature values (comma-separated). */
static void rt_enable_features(rulestest_options *o, const char *list)
{
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 29 && strncmp(p, "promql-experimental-functions", n) == 0)
            o->parse.experimental_functions = true;
        else if (n == 27 && strncmp(p, "promql-delayed-name-removal", n) == 0)
            o->delayed_name_removal = true;
        else if (n == 31 && strncmp(p, "promql-extended-range-selectors", n) == 0)
            o->parse.extended_range_selectors = true;
        else if (n == 27 && strncmp(p, "promql-binop-fill-modifiers", n) == 0)
            o->parse.fill_modifiers = true;
        else if (n == 20 && strncmp(p, "promql-duration-expr", n) == 0)
            ; /* always on */
        else if (n > 0)
            printf("  WARNING: Unknown feature passed to --enable-feature: %.*s\n", (int)n, p);
        p += n;
        if (*p == ',') p++;
    }
}

static void rt_usage(FILE *f)
{
    fputs(
        "usage: sidewatch test rules [--run REGEX]... [--ignore-unknown-fields] [--debug]\n"
        "                            [--enable-feature=F,...] TESTFILE...\n"
        "  --run REGEX               only run test groups whose name matches (repeatable)\n"
        "  --ignore-unknown-fields   ignore unknown fields in the rule files\n"
        "  --debug                   print timings and a dump of all data per test group\n"
        "  --enable-feature=F,...    promql-experimental-functions, promql-delayed-name-removal,\n"
        "                            promql-extended-range-selectors, "
        "promql-binop-fill-modifiers\n",
        f);
}

int rulestest_main(int argc, char **argv)
{
    rulestest_options o = {0};
    const char **run = mem_calloc((size_t)argc + 1, sizeof *run);
    const char **files = mem_calloc((size_t)argc + 1, sizeof *files);
    size_t n_files = 0;
    int rc = 0;
    bool flags_done = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (flags_done || a[0] != '-' || strcmp(a, "-") == 0) {
            files[n_files++] = a;
        } else if (strcmp(a, "--") == 0) {
            flags_done = true;
        } else if (strcmp(a, "--run") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sidewatch: error: expected argument for flag '--run'\n");
                rc = 2;
                goto out;
            }
            run[o.n_run++] = argv[++i];
        } else if (strncmp(a, "--run=", 6) == 0) {
            run[o.n_run++] = a + 6;
        } else if (strcmp(a, "--ignore-unknown-fields") == 0) {
            o.ignore_unknown_fields = true;
        } else if (strcmp(a, "--debug") == 0) {
            o.debug = true;
        } else if (strncmp(a, "--enable-feature", 16) == 0 && (a[16] == '=' || a[16] == '\0')) {
            const char *v = a[16] == '=' ? a + 17 : NULL;
            if (!v) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "sidewatch: error: expected argument for flag "
                                    "'--enable-feature'\n");
                    rc = 2;
                    goto out;
                }
                v = argv[++i];
            }
            rt_enable_features(&o, v);
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            rt_usage(stdout);
            goto out;
        } else {
            fprintf(stderr, "sidewatch: error: unknown flag '%s'\n", a);
            rt_usage(stderr);
            rc = 2;
            goto out;
        }
    }
    if (n_files == 0) {
        fprintf(stderr, "sidewatch: error: required argument 'test-rule-file' not provided\n");
        rt_usage(stderr);
        rc = 2;
        goto out;
    }
    o.run = run;
    regex *re = NULL;
    buf err;
    buf_init(&err, RT_MAX_MSG_BYTES);
    if (rt_compile_run(&o, &re, &err) != 0) {
        fprintf(stderr, "sidewatch: error: --run: %s\n", buf_cstr(&err));
        buf_cleanup(&err);
        rc = 2;
        goto out;
    }
    regex_free(re);
    buf_cleanup(&err);
    /* promtool runs the rule manager with a no-op logger: rule failures
     * are test failures, printed as such, not warnings. */
    if (!o.debug) log_set_level(LOG_ERROR);
    rulestest_counts c = {0};
    for (size_t i = 0; i < n_files; i++)
        if (rulestest_run_file(files[i], &o, &c) != 0) rc = 1;
    printf("%zu passed, %zu failed\n", c.passed, c.failed);
out:
    mem_free(run);
    mem_free(files);
    return rc;
}
