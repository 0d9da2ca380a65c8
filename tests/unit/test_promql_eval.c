/* Unit tests for the PromQL evaluator (promql/eval.h, func.h, anno.h).
 *
 * The main test runs every .test file in tests/data/promql-eval: float cases
 * ported from Prometheus's promqltest corpus, in a subset of its DSL
 *
 *   load <step> [from <t>] series lines: <series> <values> (1+2x3, _, stale, ...);
 *                          "from" (an extension) puts the first value at t
 *                          instead of 0; a line <series>@st <offsets>
 *                          before one gives its start timestamps (offsets
 *                          from each sample's time: _, _xN, 1m, -1mxN,
 *                          -30s-1mxN)
 *   clear
 *   eval[_fail|_ordered|_warn|_info] instant at <t> <expr>
 *   eval[_fail|_warn|_info] range from <t0> to <t1> step <s> <expr>
 *     expect fail|warn|info [msg:<text>|regex:<re>], expect no_warn|no_info,
 *     expect ordered, expect string "<s>", expect range vector from a to b step s
 *     (evaluated at the eval line's time, which promqltest sets to b),
 *     a scalar, or <labels> <values> lines
 *
 * parsed by promql_parse() with every option on and evaluated against an
 * array-backed promql_queryable with the corpus's
 * engine settings (lookback 5m, max samples 10000 unless `# max_samples: N`,
 * default subquery step 1m, delayed __name__ removal unless
 * `# delayed_name_removal: false`, start timestamps used unless
 * `# start_timestamps: false`). A comment line
 * `# xfail: <reason>` before an eval marks a known difference: it is run,
 * printed and counted as "known failure" but does not fail the test (and
 * is reported if it unexpectedly passes). Every other failing case is
 * printed with its file and line and fails the test. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>

#include "buf.h"
#include "labels.h"
#include "mem.h"
#include "promql/anno.h"
#include "promql/ast.h"
#include "promql/eval.h"
#include "promql/func.h"
#include "promql/sort.h"
#include "promql/parse.h"
#include "regex.h"
#include "strutil.h"

/* Parses with every option the promqltest corpus assumes turned on. */
static int parse_expr(const char *q, size_t len, promql_ast **out, buf *err)
{
    promql_parse_options po = {true, true, true, true};
    return promql_parse(q, len, &po, out, err);
}

/* ---- an in-memory data source ------------------------------------------------- */

typedef struct mseries {
    labels *ls;
    promql_fpoint *pts;
    int64_t *st; /* start timestamps, parallel to pts (0 = none) */
    size_t n, cap;
} mseries;

typedef struct memstore {
    mseries *v;
    size_t n, cap;
    int selects; /* calls, for tests */
} memstore;

static void memstore_clear(memstore *m)
{
    for (size_t i = 0; i < m->n; i++) {
        labels_free(m->v[i].ls);
        mem_free(m->v[i].pts);
        mem_free(m->v[i].st);
    }
    mem_free(m->v);
    memset(m, 0, sizeof *m);
}

/* Adds a sample with start timestamp st (0 = none); a sample at an
 * existing timestamp replaces it. */
static void memstore_add_st(memstore *m, const labels *ls, int64_t t, double v, int64_t st)
{
    mseries *s = NULL;
    for (size_t i = 0; i < m->n; i++)
        if (labels_equal(m->v[i].ls, ls)) s = &m->v[i];
    if (!s) {
        m->v = mem_grow(m->v, sizeof *m->v, m->n + 1, &m->cap);
        size_t at = m->n;
        while (at > 0 && labels_compare(m->v[at - 1].ls, ls) > 0)
            at--;
        memmove(&m->v[at + 1], &m->v[at], (m->n - at) * sizeof *m->v);
        m->n++;
        s = &m->v[at];
        memset(s, 0, sizeof *s);
        s->ls = labels_dup(ls);
    }
    size_t at = s->n;
    while (at > 0 && s->pts[at - 1].t > t)
        at--;
    if (at > 0 && s->pts[at - 1].t == t) {
        s->pts[at - 1].v = v;
        s->st[at - 1] = st;
        return;
    }
    size_t cap = s->cap;
    s->pts = mem_grow(s->pts, sizeof *s->pts, s->n + 1, &s->cap);
    if (s->cap != cap) s->st = mem_realloc(s->st, s->cap * sizeof *s->st);
    memmove(&s->pts[at + 1], &s->pts[at], (s->n - at) * sizeof *s->pts);
    memmove(&s->st[at + 1], &s->st[at], (s->n - at) * sizeof *s->st);
    s->pts[at].t = t;
    s->pts[at].v = v;
    s->st[at] = st;
    s->n++;
}

static void memstore_add(memstore *m, const labels *ls, int64_t t, double v)
{
    memstore_add_st(m, ls, t, v, 0);
}

static int memstore_select(void *ctx, const label_matcher *ms, size_t n, int64_t mint, int64_t maxt,
                           promql_matrix *out, buf *err)
{
    (void)err;
    memstore *m = ctx;
    m->selects++;
    for (size_t i = 0; i < m->n; i++) {
        mseries *s = &m->v[i];
        if (!labels_match_all(s->ls, ms, n)) continue;
        size_t lo = 0;
        while (lo < s->n && s->pts[lo].t < mint)
            lo++;
        size_t hi = lo;
        while (hi < s->n && s->pts[hi].t <= maxt)
            hi++;
        if (hi == lo) continue;
        out->v = mem_grow(out->v, sizeof *out->v, out->n + 1, &out->cap);
        promql_series *d = &out->v[out->n++];
        memset(d, 0, sizeof *d);
        d->metric = labels_dup(s->ls);
        d->n = d->cap = hi - lo;
        d->pts = mem_malloc(d->n * sizeof *d->pts);
        memcpy(d->pts, s->pts + lo, d->n * sizeof *d->pts);
        for (size_t k = lo; k < hi; k++) {
            if (!s->st[k]) continue;
            d->st = mem_malloc(d->n * sizeof *d->st);
            memcpy(d->st, s->st + lo, d->n * sizeof *d->st);
            break;
        }
    }
    return 0;
}

/* ---- the test DSL --------------------------------------------------------------- */

typedef struct texpect {
    labels *ls;
    double *vals; /* per step; NaN payload for "_" is marked by have[] */
    bool *have;
    size_t n;
    int line;
} texpect;

typedef struct tcase {
    const char *file;
    int line;
    char *expr;
    bool range;
    int64_t start, end, step;
    bool expect_fail, ordered, no_warn, no_info, any_warn, any_info;
    char *fail_msg, *fail_re;
    char **warn_msgs, **info_msgs; /* "msg:" or "re:" prefixed */
    size_t n_warn, n_info;
    bool has_scalar;
    double scalar;
    bool has_string;
    char *string;
    bool range_vector;
    int64_t rv_from, rv_to, rv_step;
    texpect *exp;
    size_t n_exp;
    char *xfail;
    char *bad; /* an expected line this runner cannot read */
    int64_t max_samples;
    bool no_delayed; /* `# delayed_name_removal: false` */
    bool no_st;      /* `# start_timestamps: false` */
} tcase;

static void tcase_free(tcase *c)
{
    mem_free(c->expr);
    mem_free(c->fail_msg);
    mem_free(c->fail_re);
    for (size_t i = 0; i < c->n_warn; i++)
        mem_free(c->warn_msgs[i]);
    for (size_t i = 0; i < c->n_info; i++)
        mem_free(c->info_msgs[i]);
    mem_free(c->warn_msgs);
    mem_free(c->info_msgs);
    mem_free(c->string);
    for (size_t i = 0; i < c->n_exp; i++) {
        labels_free(c->exp[i].ls);
        mem_free(c->exp[i].vals);
        mem_free(c->exp[i].have);
    }
    mem_free(c->exp);
    mem_free(c->xfail);
    mem_free(c->bad);
    memset(c, 0, sizeof *c);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

static bool parse_dur(const char *s, size_t n, int64_t *ms)
{
    bool neg = false;
    if (n && s[0] == '-') {
        neg = true;
        s++;
        n--;
    }
    if (strutil_parse_duration(s, n, ms, NULL) != 0) return false;
    if (neg) *ms = -*ms;
    return true;
}

static bool parse_num(const char *s, size_t n, double *v)
{
    char tmp[128];
    if (n >= sizeof tmp) return false;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (!strcasecmp(tmp, "nan")) {
        *v = NAN;
        return true;
    }
    if (!strcasecmp(tmp, "stale")) {
        *v = strutil_stale_nan();
        return true;
    }
    if (!strcasecmp(tmp, "inf") || !strcasecmp(tmp, "+inf")) {
        *v = INFINITY;
        return true;
    }
    if (!strcasecmp(tmp, "-inf")) {
        *v = -INFINITY;
        return true;
    }
    char *end;
    if (n > 2 && tmp[0] == '0' && (tmp[1] == 'x' || tmp[1] == 'X')) {
        *v = (double)strtoull(tmp, &end, 16);
        return *end == 0;
    }
    *v = strtod(tmp, &end);
    return end != tmp && *end == 0;
}

/* Expands one value item ("1", "_", "1+2x3", "_x4", "stale", "NaNx2") into
 * vals/have; returns false if malformed. */
static bool expand_item(const char *it, double **vals, bool **have, size_t *n, size_t *cap)
{
    size_t len = strlen(it);
    const char *x = NULL;
    for (size_t i = len; i-- > 1;)
        if (it[i] == 'x') {
            x = it + i;
            break;
        }
    long count = 0;
    size_t base_len = len;
    if (x) {
        char *end;
        count = strtol(x + 1, &end, 10);
        if (*end || end == x + 1) x = NULL, count = 0;
        else base_len = (size_t)(x - it);
    }
    if (base_len == 1 && it[0] == '_') {
        long k = x ? count : 1;
        for (long i = 0; i < k; i++) {
            *vals = mem_grow(*vals, sizeof **vals, *n + 1, cap);
            *have = mem_realloc(*have, *cap * sizeof **have);
            (*vals)[*n] = 0;
            (*have)[(*n)++] = false;
        }
        return true;
    }
    double a, d = 0;
    bool ok = parse_num(it, base_len, &a);
    if (!ok && x) {
        /* a+bxN or a-bxN */
        for (size_t i = 1; i < base_len; i++) {
            if ((it[i] == '+' || it[i] == '-') && it[i - 1] != 'e' && it[i - 1] != 'E') {
                if (parse_num(it, i, &a) && parse_num(it + i + 1, base_len - i - 1, &d)) {
                    if (it[i] == '-') d = -d;
                    ok = true;
                    break;
                }
            }
        }
    }
    if (!ok) return false;
    long k = x ? count + 1 : 1;
    for (long i = 0; i < k; i++) {
        *vals = mem_grow(*vals, sizeof **vals, *n + 1, cap);
        *have = mem_realloc(*have, *cap * sizeof **have);
        (*vals)[*n] = d == 0 ? a : a + d * (double)i;
        (*have)[(*n)++] = true;
    }
    return true;
}

/* Splits "<series> <values>" at the end of the series part. */
static size_t series_end(const char *s)
{
    size_t i = 0;
    int depth = 0;
    char q = 0;
    for (; s[i]; i++) {
        if (q) {
            if (s[i] == '\\') i++;
            else if (s[i] == q) q = 0;
            continue;
        }
        if (s[i] == '"' || s[i] == '\'' || s[i] == '`') q = s[i];
        else if (s[i] == '{') depth++;
        else if (s[i] == '}') {
            depth--;
            if (depth == 0) return i + 1;
        } else if ((s[i] == ' ' || s[i] == '\t') && depth == 0) {
            return i;
        }
    }
    return i;
}

static labels *parse_series_labels(const char *s, size_t n)
{
    label_matcher *ms = NULL;
    size_t nm = 0;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    if (n == 2 && !memcmp(s, "{}", 2)) {
        buf_cleanup(&err);
        labels_builder b;
        labels_builder_init(&b);
        labels *ls = labels_builder_finish(&b, NULL);
        labels_builder_cleanup(&b);
        return ls;
    }
    int rc = labels_parse_selector(s, n, &ms, &nm, &err);
    buf_cleanup(&err);
    if (rc) return NULL;
    labels_builder b;
    labels_builder_init(&b);
    for (size_t i = 0; i < nm; i++)
        labels_builder_set(&b, ms[i].name, ms[i].name_len, ms[i].value, ms[i].value_len);
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    labels_matchers_free(ms, nm);
    return ls;
}

/* A duration with an optional sign. */
static bool st_dur(const char *s, size_t n, int64_t *ms)
{
    if (n && s[0] == '+') return n > 1 && s[1] != '-' && parse_dur(s + 1, n - 1, ms);
    return parse_dur(s, n, ms);
}

/* Expands one @st item (`_`, `_xN`, `<d>`, `<d>xN`, `<d>+<d>xN`,
 * `<d>-<d>xN`, durations signed) into offsets/have; false if malformed. */
static bool expand_st_item(const char *it, int64_t **offs, bool **have, size_t *n, size_t *cap)
{
    size_t len = strlen(it);
    const char *x = strrchr(it, 'x');
    long count = 0;
    size_t base_len = len;
    if (x) {
        char *end;
        count = strtol(x + 1, &end, 10);
        if (*end || end == x + 1 || count < 0) return false;
        base_len = (size_t)(x - it);
    }
    int64_t a = 0, d = 0;
    bool omitted = base_len == 1 && it[0] == '_';
    if (omitted) {
        if (x && count == 0) return false;
        count = x ? count - 1 : 0;
    } else if (!st_dur(it, base_len, &a)) {
        size_t i = 1;
        while (i < base_len && it[i] != '+' && it[i] != '-')
            i++;
        if (!x || i >= base_len || !st_dur(it, i, &a) ||
            !parse_dur(it + i + 1, base_len - i - 1, &d))
            return false;
        if (it[i] == '-') d = -d;
    }
    for (long k = 0; k <= count; k++) {
        *offs = mem_grow(*offs, sizeof **offs, *n + 1, cap);
        *have = mem_realloc(*have, *cap * sizeof **have);
        (*offs)[*n] = a + d * k;
        (*have)[(*n)++] = !omitted;
    }
    return true;
}

/* The length of the series part of a `<series>@st <offsets>` line (without
 * the @st), or 0 if the line is not one. */
static size_t st_line_series(const char *sl)
{
    size_t se = series_end(sl);
    if (!strncmp(sl + se, "@st", 3) && (sl[se + 3] == ' ' || sl[se + 3] == '\t')) return se;
    if (se > 3 && !strncmp(sl + se - 3, "@st", 3)) return se - 3;
    return 0;
}

static bool parse_values(char *s, double **vals, bool **have, size_t *n)
{
    size_t cap = 0;
    *vals = NULL;
    *have = NULL;
    *n = 0;
    for (char *tok = strtok(s, " \t"); tok; tok = strtok(NULL, " \t"))
        if (!expand_item(tok, vals, have, n, &cap)) return false;
    return true;
}

/* ---- running a case ------------------------------------------------------------------ */

static bool float_eq(double a, double b)
{
    if (strutil_is_stale_nan(a) || strutil_is_stale_nan(b))
        return strutil_is_stale_nan(a) && strutil_is_stale_nan(b);
    if (isnan(a) && isnan(b)) return true;
    if (a == b) return true;
    const double min_normal = 2.2250738585072014e-308, eps = 1e-6;
    double abs_sum = fabs(a) + fabs(b), diff = fabs(a - b);
    if (a == 0 || b == 0 || abs_sum < min_normal) return diff < eps * min_normal;
    return diff / fmin(abs_sum, 1.7976931348623157e308) < eps;
}

static bool re_search(const char *pattern, const char *s)
{
    buf p;
    buf_init(&p, BUF_UNLIMITED);
    buf_printf(&p, ".*(?:%s).*", pattern);
    regex *re = NULL;
    bool m = false;
    if (regex_compile(&re, buf_cstr(&p), p.len, NULL) == 0) {
        m = regex_match(re, s, strlen(s));
        regex_free(re);
    }
    buf_cleanup(&p);
    return m;
}

static bool anno_matches(const char *spec, const char *msg)
{
    if (!strncmp(spec, "msg:", 4)) return !strcmp(spec + 4, msg);
    if (!strncmp(spec, "re:", 3)) return re_search(spec + 3, msg);
    return true;
}

static bool check_annos(buf *why, const char *kind, char **specs, size_t nspec, char **got,
                        size_t ngot, bool any, bool none)
{
    if (none && ngot) {
        buf_printf(why, "unexpected %s: %s", kind, got[0]);
        return false;
    }
    if (any && !ngot) {
        buf_printf(why, "expected a %s, got none", kind);
        return false;
    }
    for (size_t i = 0; i < nspec; i++) {
        bool found = false;
        for (size_t k = 0; k < ngot && !found; k++)
            found = anno_matches(specs[i], got[k]);
        if (!found) {
            buf_printf(why, "expected %s %s not found; got:", kind, specs[i]);
            for (size_t k = 0; k < ngot; k++)
                buf_printf(why, " [%s]", got[k]);
            return false;
        }
    }
    if (nspec) {
        for (size_t k = 0; k < ngot; k++) {
            bool found = false;
            for (size_t i = 0; i < nspec && !found; i++)
                found = anno_matches(specs[i], got[k]);
            if (!found) {
                buf_printf(why, "unexpected %s: %s", kind, got[k]);
                return false;
            }
        }
    }
    return true;
}

static void fmt_labels(buf *b, const labels *ls)
{
    labels_format_metric(ls, b);
    if (ls->n == 0) buf_puts(b, "{}");
}

static bool compare_result(const tcase *c, const promql_value *v, buf *why)
{
    if (c->has_string) {
        if (v->type != PROMQL_TYPE_STRING || strcmp(v->string, c->string)) {
            buf_printf(why, "expected string \"%s\"", c->string);
            return false;
        }
        return true;
    }
    if (c->has_scalar) {
        if (v->type != PROMQL_TYPE_SCALAR) {
            buf_printf(why, "expected scalar, got %s", promql_type_name(v->type));
            return false;
        }
        if (!float_eq(v->scalar, c->scalar)) {
            buf_printf(why, "expected scalar %.17g, got %.17g", c->scalar, v->scalar);
            return false;
        }
        return true;
    }
    if (!c->range && !c->range_vector) {
        if (v->type != PROMQL_TYPE_VECTOR) {
            buf_printf(why, "expected vector, got %s", promql_type_name(v->type));
            return false;
        }
        if (v->vector.n != c->n_exp) {
            buf_printf(why, "expected %zu samples, got %zu:", c->n_exp, v->vector.n);
            for (size_t i = 0; i < v->vector.n; i++) {
                buf_puts(why, "\n      ");
                fmt_labels(why, v->vector.v[i].metric);
                buf_printf(why, " %.17g", v->vector.v[i].v);
            }
            return false;
        }
        for (size_t i = 0; i < c->n_exp; i++) {
            const texpect *e = &c->exp[i];
            size_t k;
            for (k = 0; k < v->vector.n; k++)
                if (labels_equal(v->vector.v[k].metric, e->ls)) break;
            if (k == v->vector.n) {
                buf_puts(why, "missing ");
                fmt_labels(why, e->ls);
                buf_puts(why, "; got:");
                for (size_t j = 0; j < v->vector.n; j++) {
                    buf_puts(why, "\n      ");
                    fmt_labels(why, v->vector.v[j].metric);
                    buf_printf(why, " %.17g", v->vector.v[j].v);
                }
                return false;
            }
            if (c->ordered && k != i) {
                buf_printf(why, "order: expected line %d at position %zu, found at %zu", e->line, i, k);
                return false;
            }
            if (e->n != 1 || !float_eq(v->vector.v[k].v, e->vals[0])) {
                buf_puts(why, "value of ");
                fmt_labels(why, e->ls);
                buf_printf(why, ": expected %.17g, got %.17g", e->n ? e->vals[0] : NAN,
                           v->vector.v[k].v);
                return false;
            }
        }
        return true;
    }
    /* matrices */
    if (v->type != PROMQL_TYPE_MATRIX) {
        buf_printf(why, "expected matrix, got %s", promql_type_name(v->type));
        return false;
    }
    int64_t from = c->range_vector ? c->rv_from : c->start;
    int64_t step = c->range_vector ? c->rv_step : c->step;
    size_t nonempty = 0;
    for (size_t i = 0; i < c->n_exp; i++) {
        bool any = false;
        for (size_t k = 0; k < c->exp[i].n; k++)
            any = any || c->exp[i].have[k];
        if (any) nonempty++;
    }
    for (size_t i = 1; i < v->matrix.n; i++)
        if (labels_compare(v->matrix.v[i - 1].metric, v->matrix.v[i].metric) >= 0) {
            buf_puts(why, "matrix not sorted by labels");
            return false;
        }
    if (v->matrix.n != nonempty) {
        buf_printf(why, "expected %zu series, got %zu:", nonempty, v->matrix.n);
        for (size_t i = 0; i < v->matrix.n; i++) {
            buf_puts(why, "\n      ");
            fmt_labels(why, v->matrix.v[i].metric);
            for (size_t k = 0; k < v->matrix.v[i].n; k++)
                buf_printf(why, " %.6g@%lld", v->matrix.v[i].pts[k].v,
                           (long long)v->matrix.v[i].pts[k].t / 1000);
        }
        return false;
    }
    for (size_t i = 0; i < c->n_exp; i++) {
        const texpect *e = &c->exp[i];
        size_t nh = 0;
        for (size_t k = 0; k < e->n; k++)
            nh += e->have[k];
        if (!nh) continue;
        const promql_series *s = NULL;
        for (size_t k = 0; k < v->matrix.n; k++)
            if (labels_equal(v->matrix.v[k].metric, e->ls)) s = &v->matrix.v[k];
        if (!s) {
            buf_puts(why, "missing series ");
            fmt_labels(why, e->ls);
            return false;
        }
        bool ok = s->n == nh;
        size_t j = 0;
        for (size_t k = 0; k < e->n && ok; k++) {
            if (!e->have[k]) continue;
            int64_t t = from + (int64_t)k * step;
            if (j >= s->n || s->pts[j].t != t || !float_eq(s->pts[j].v, e->vals[k])) ok = false;
            j++;
        }
        if (!ok) {
            buf_puts(why, "series ");
            fmt_labels(why, e->ls);
            buf_puts(why, ": expected");
            for (size_t k = 0; k < e->n; k++) {
                if (e->have[k]) buf_printf(why, " %.6g@%lld", e->vals[k], (long long)(from + (int64_t)k * step) / 1000);
                else buf_puts(why, " _");
            }
            buf_puts(why, "; got");
            for (size_t k = 0; k < s->n; k++)
                buf_printf(why, " %.6g@%lld", s->pts[k].v, (long long)s->pts[k].t / 1000);
            return false;
        }
    }
    return true;
}

typedef struct tstats {
    int passed, failed, xfailed, xpassed;
} tstats;

/* Sets @ t on every selector and subquery without one, except under a
 * subquery that has one (promqltest's atModifierTestCases). Returns false
 * if the expression uses a function whose result depends on the time. */
static bool add_at(promql_node *n, int64_t t, bool under_at)
{
    if (!n) return true;
    bool ok = true;
    switch (n->kind) {
    case PROMQL_NODE_AGGREGATE:
        ok = add_at(n->aggregate.expr, t, under_at) & add_at(n->aggregate.param, t, under_at);
        break;
    case PROMQL_NODE_BINARY:
        ok = add_at(n->binary.lhs, t, under_at) & add_at(n->binary.rhs, t, under_at);
        break;
    case PROMQL_NODE_CALL: {
        static const char *const unsafe[] = {"days_in_month", "day_of_month", "day_of_week",
                                             "day_of_year", "end", "hour", "minute", "month",
                                             "year", "predict_linear", "range", "start", "step",
                                             "time", "timestamp"};
        for (size_t i = 0; i < sizeof unsafe / sizeof unsafe[0]; i++)
            if (!strcmp(n->call.func->name, unsafe[i])) ok = false;
        for (size_t i = 0; i < n->call.nargs; i++)
            ok = add_at(n->call.args[i], t, under_at) && ok;
        break;
    }
    case PROMQL_NODE_MATRIX_SELECTOR: ok = add_at(n->matrix.vs, t, under_at); break;
    case PROMQL_NODE_SUBQUERY: {
        if (!under_at && !n->subquery.at.set) {
            n->subquery.at.set = true;
            n->subquery.at.ts_ms = t;
            n->subquery.at.start_or_end = PROMQL_OP_NONE;
        }
        ok = add_at(n->subquery.expr, t, under_at || n->subquery.at.set);
        break;
    }
    case PROMQL_NODE_PAREN: ok = add_at(n->paren.expr, t, under_at); break;
    case PROMQL_NODE_UNARY: ok = add_at(n->unary.expr, t, under_at); break;
    case PROMQL_NODE_VECTOR_SELECTOR:
        if (!under_at && !n->vector.at.set) {
            n->vector.at.set = true;
            n->vector.at.ts_ms = t;
            n->vector.at.start_or_end = PROMQL_OP_NONE;
        }
        break;
    default: break;
    }
    return ok;
}

static promql_engine_options test_opts(const tcase *c)
{
    promql_engine_options o = {0};
    o.lookback_delta_ms = 5 * 60 * 1000;
    o.max_samples = c->max_samples ? c->max_samples : 10000;
    o.default_subquery_step_ms = 60 * 1000;
    o.delayed_name_removal = !c->no_delayed && !getenv("PROMQL_EVAL_NO_DELAYED");
    o.use_start_timestamps = !c->no_st;
    return o;
}

/* One evaluation of the case's expression; false with a reason in why. */
static bool run_query(memstore *m, const tcase *c, const promql_ast *ast, int64_t t, buf *why,
                      bool *rerun_range)
{
    promql_value v;
    memset(&v, 0, sizeof v);
    promql_annotations ann;
    memset(&ann, 0, sizeof ann);
    promql_error err;
    promql_error_init(&err);
    promql_engine_options o = test_opts(c);
    promql_queryable src = {m, memstore_select};
    promql_query q = {ast, ast->root, t, c->range ? c->end : t, c->range ? c->step : 0};
    int rc = promql_eval(&o, &src, &q, &v, &ann, &err);
    bool ok = true;
    *rerun_range = false;
    if (c->expect_fail) {
        if (rc == 0) {
            buf_puts(why, "expected failure, got success");
            ok = false;
        } else if (c->fail_msg && strcmp(buf_cstr(&err.msg), c->fail_msg)) {
            buf_printf(why, "expected error \"%s\", got \"%s\"", c->fail_msg, buf_cstr(&err.msg));
            ok = false;
        } else if (c->fail_re && !re_search(c->fail_re, buf_cstr(&err.msg))) {
            buf_printf(why, "error \"%s\" does not match /%s/", buf_cstr(&err.msg), c->fail_re);
            ok = false;
        }
    } else if (rc != 0) {
        buf_printf(why, "unexpected error: %s", buf_cstr(&err.msg));
        ok = false;
    } else {
        ok = compare_result(c, &v, why);
        *rerun_range = ok && !c->range;
    }
    if (ok)
        ok = check_annos(why, "warning", c->warn_msgs, c->n_warn, ann.warnings, ann.n_warnings,
                         c->any_warn, c->no_warn) &&
             check_annos(why, "info", c->info_msgs, c->n_info, ann.infos, ann.n_infos, c->any_info,
                         c->no_info);
    promql_value_cleanup(&v);
    promql_annotations_cleanup(&ann);
    promql_error_cleanup(&err);
    return ok;
}

/* The instant query re-run as a range query from t-1m to t+1m, step 1m;
 * the point at t must match. */
static bool run_as_range(memstore *m, const tcase *c, const promql_ast *ast, int64_t t, buf *why)
{
    promql_value v;
    memset(&v, 0, sizeof v);
    promql_error err;
    promql_error_init(&err);
    promql_engine_options o = test_opts(c);
    promql_queryable src = {m, memstore_select};
    promql_query q = {ast, ast->root, t - 60000, t + 60000, 60000};
    int rc = promql_eval(&o, &src, &q, &v, NULL, &err);
    bool ok = true;
    if (rc) {
        buf_printf(why, "range mode: unexpected error: %s", buf_cstr(&err.msg));
        ok = false;
    } else if (!c->ordered) {
        promql_value iv;
        memset(&iv, 0, sizeof iv);
        iv.type = c->has_scalar ? PROMQL_TYPE_SCALAR : PROMQL_TYPE_VECTOR;
        for (size_t i = 0; i < v.matrix.n; i++) {
            const promql_series *s = &v.matrix.v[i];
            for (size_t k = 0; k < s->n; k++) {
                if (s->pts[k].t != t) continue;
                if (iv.type == PROMQL_TYPE_SCALAR) {
                    iv.scalar = s->pts[k].v;
                } else {
                    iv.vector.v = mem_realloc(iv.vector.v, (iv.vector.n + 1) * sizeof *iv.vector.v);
                    promql_sample *x = &iv.vector.v[iv.vector.n++];
                    x->metric = labels_dup(s->metric);
                    x->t = t;
                    x->v = s->pts[k].v;
                    x->drop_name = false;
                    x->h = NULL;
                }
            }
        }
        buf w;
        buf_init(&w, BUF_UNLIMITED);
        if (!compare_result(c, &iv, &w)) {
            buf_printf(why, "range mode: %s", buf_cstr(&w));
            ok = false;
        }
        buf_cleanup(&w);
        promql_value_cleanup(&iv);
    }
    promql_value_cleanup(&v);
    promql_error_cleanup(&err);
    return ok;
}

static bool uses_query_context_funcs(const char *e)
{
    static const char *const f[] = {"start()", "end()", "range()", "step()"};
    for (size_t i = 0; i < 4; i++)
        if (strstr(e, f[i])) return true;
    return false;
}

static bool run_variant(memstore *m, const tcase *c, const promql_ast *ast, int64_t t, buf *why)
{
    bool rerun;
    if (!run_query(m, c, ast, t, why, &rerun)) return false;
    if (rerun && !c->range_vector && !c->has_string && !uses_query_context_funcs(c->expr))
        return run_as_range(m, c, ast, t, why);
    return true;
}

static void run_case(memstore *m, tcase *c, tstats *st)
{
    buf why, perr;
    buf_init(&why, BUF_UNLIMITED);
    buf_init(&perr, BUF_UNLIMITED);
    promql_ast *ast = NULL;
    bool ok = true;
    if (c->bad) {
        buf_printf(&why, "unsupported expected line: %s", c->bad);
        ok = false;
    } else if (parse_expr(c->expr, strlen(c->expr), &ast, &perr) != 0) {
        buf_printf(&why, "parse error: %s", buf_cstr(&perr));
        ok = false;
    }
    if (ok) ok = run_variant(m, c, ast, c->start, &why);
    if (ok && !c->range && !c->range_vector) {
        /* the @ variants at other evaluation times */
        int64_t t = c->start;
        int64_t times[5] = {-10 * t, 0, t / 5, t, 10 * t};
        size_t nt = 5;
        if (t == 0) {
            times[0] = -1000;
            times[1] = 0;
            times[2] = 1000;
            nt = 3;
        }
        for (size_t i = 0; i < nt && ok; i++) {
            promql_ast *a2 = NULL;
            if (parse_expr(c->expr, strlen(c->expr), &a2, &perr) != 0) break;
            if (add_at(a2->root, t, false)) {
                ok = run_variant(m, c, a2, times[i], &why);
                if (!ok) buf_printf(&why, " [with @ %lld, evaluated at %lld ms]", (long long)t,
                                    (long long)times[i]);
            } else {
                nt = 0;
            }
            promql_ast_free(a2);
        }
    }
    if (c->xfail) {
        if (ok) {
            st->xpassed++;
            printf("  XPASS %s:%d: %s (marked xfail: %s)\n", c->file, c->line, c->expr, c->xfail);
        } else {
            st->xfailed++;
            printf("  known failure %s:%d: %s\n    (%s) %s\n", c->file, c->line, c->expr, c->xfail,
                   buf_cstr(&why));
        }
    } else if (ok) {
        st->passed++;
    } else {
        st->failed++;
        printf("  FAIL %s:%d: %s\n    %s\n", c->file, c->line, c->expr, buf_cstr(&why));
    }
    promql_ast_free(ast);
    buf_cleanup(&why);
    buf_cleanup(&perr);
}

/* Smoke mode: every expression evaluated at odd times and as range queries
 * with odd steps; only crashes, leaks and sanitizer reports count. */
static bool smoke_mode;

static void run_smoke(memstore *m, tcase *c, tstats *st)
{
    buf perr;
    buf_init(&perr, BUF_UNLIMITED);
    promql_ast *ast = NULL;
    if (parse_expr(c->expr, strlen(c->expr), &ast, &perr) != 0) {
        buf_cleanup(&perr);
        return;
    }
    buf_cleanup(&perr);
    int64_t t = c->start;
    const int64_t q[][3] = {
        {t, t, 0},           {-t - 1234, -t - 1234, 0}, {t + 1, t + 1, 0},
        {t - 300000, t + 300000, 17000}, {0, t, 60000}, {t, t + 1000, 1},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        promql_engine_options o = test_opts(c);
        o.delayed_name_removal = i % 2 == 0;
        promql_queryable src = {m, memstore_select};
        promql_query qq = {ast, ast->root, q[i][0], q[i][1], q[i][2]};
        promql_value v;
        promql_annotations ann;
        memset(&ann, 0, sizeof ann);
        promql_error err;
        promql_error_init(&err);
        int rc = promql_eval(&o, &src, &qq, &v, &ann, &err);
        if (rc == 0 && err.kind != PROMQL_ERR_NONE) st->failed++;
        if (rc != 0 && err.kind == PROMQL_ERR_NONE) {
            printf("  %s:%d: %s: error without a kind (rc %d)\n", c->file, c->line, c->expr, rc);
            st->failed++;
        }
        promql_value_cleanup(&v);
        promql_annotations_cleanup(&ann);
        promql_error_cleanup(&err);
    }
    st->passed++;
    promql_ast_free(ast);
}

/* Splits the file into lines (in place). */
static size_t split_lines(char *d, char ***lines)
{
    size_t n = 0, cap = 0;
    *lines = NULL;
    char *s = d;
    for (;;) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = 0;
        *lines = mem_grow(*lines, sizeof **lines, n + 1, &cap);
        (*lines)[n++] = s;
        if (!nl) break;
        s = nl + 1;
    }
    return n;
}

static bool is_blank(const char *l)
{
    while (*l == ' ' || *l == '\t' || *l == '\r')
        l++;
    return !*l || *l == '#';
}

static char *after_prefix(char *s, const char *p)
{
    size_t n = strlen(p);
    return strncmp(s, p, n) ? NULL : s + n;
}

static void add_spec(char ***v, size_t *n, const char *rest)
{
    *v = mem_realloc(*v, (*n + 1) * sizeof **v);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    char *r;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", rest);
    if ((r = after_prefix(tmp, "msg:"))) buf_printf(&b, "msg:%s", trim(r));
    else if ((r = after_prefix(tmp, "regex:"))) buf_printf(&b, "re:%s", trim(r));
    else buf_puts(&b, "");
    (*v)[(*n)++] = buf_detach(&b, NULL);
}

/* Runs one file; returns false on a malformed file. */
static bool run_file(const char *path, const char *name, tstats *st)
{
    size_t len;
    char *d = tu_read_file(path, &len);
    if (!d) {
        printf("  cannot read %s\n", path);
        return false;
    }
    char **lines;
    size_t nl = split_lines(d, &lines);
    memstore m = {0};
    char *xfail = NULL;
    int64_t max_samples = 0;
    bool no_delayed = false, no_st = false;
    bool good = true;
    for (size_t i = 0; i < nl; i++) {
        char *l = trim(lines[i]);
        if (!*l) continue;
        if (*l == '#') {
            char *x = after_prefix(l, "# xfail:");
            if (x) {
                mem_free(xfail);
                xfail = mem_strdup(trim(x));
            }
            if ((x = after_prefix(l, "# max_samples:"))) max_samples = atoll(x);
            if ((x = after_prefix(l, "# delayed_name_removal:"))) no_delayed = !strcmp(trim(x), "false");
            if ((x = after_prefix(l, "# start_timestamps:"))) no_st = !strcmp(trim(x), "false");
            continue;
        }
        if (!strcmp(l, "clear")) {
            memstore_clear(&m);
            continue;
        }
        char *rest;
        if ((rest = after_prefix(l, "load ")) || (rest = after_prefix(l, "load_with_nhcb "))) {
            int64_t step, from = 0;
            char *sp = trim(rest);
            char *fr = strstr(sp, " from ");
            if (fr) {
                *fr = 0;
                char *ft = trim(fr + 6);
                if (!parse_dur(ft, strlen(ft), &from)) {
                    printf("  %s:%zu: bad load start\n", name, i + 1);
                    good = false;
                    break;
                }
            }
            if (!parse_dur(sp, strlen(sp), &step)) {
                printf("  %s:%zu: bad load step\n", name, i + 1);
                good = false;
                break;
            }
            int64_t *st = NULL; /* offsets of the preceding @st line */
            bool *st_have = NULL;
            size_t n_st = 0;
            for (i++; i < nl && !is_blank(lines[i]); i++) {
                char *sl = trim(lines[i]);
                size_t se = st_line_series(sl);
                if (se) {
                    size_t cap = 0;
                    mem_free(st);
                    mem_free(st_have);
                    st = NULL;
                    st_have = NULL;
                    n_st = 0;
                    char *os = mem_strdup(sl + se + 3);
                    for (char *tok = strtok(os, " \t"); tok; tok = strtok(NULL, " \t")) {
                        if (!expand_st_item(tok, &st, &st_have, &n_st, &cap)) {
                            printf("  %s:%zu: bad @st item: %s\n", name, i + 1, tok);
                            good = false;
                        }
                    }
                    mem_free(os);
                    continue;
                }
                se = series_end(sl);
                labels *ls = parse_series_labels(sl, se);
                double *vals = NULL;
                bool *have = NULL;
                size_t nv = 0;
                char *vs = mem_strdup(sl + se);
                if (!ls || !parse_values(vs, &vals, &have, &nv) || (st && n_st != nv)) {
                    if (!getenv("PROMQL_EVAL_LENIENT")) {
                        printf("  %s:%zu: bad load line: %s\n", name, i + 1, sl);
                        good = false;
                    }
                } else {
                    for (size_t k = 0; k < nv; k++) {
                        if (!have[k]) continue;
                        int64_t t = from + (int64_t)k * step;
                        memstore_add_st(&m, ls, t, vals[k], st && st_have[k] ? t + st[k] : 0);
                    }
                }
                mem_free(st);
                mem_free(st_have);
                st = NULL;
                st_have = NULL;
                n_st = 0;
                mem_free(vs);
                mem_free(vals);
                mem_free(have);
                labels_free(ls);
            }
            mem_free(st);
            mem_free(st_have);
            i--;
            continue;
        }
        if (!strncmp(l, "eval", 4)) {
            tcase c;
            memset(&c, 0, sizeof c);
            c.file = name;
            c.line = (int)i + 1;
            c.xfail = xfail;
            c.max_samples = max_samples;
            c.no_delayed = no_delayed;
            c.no_st = no_st;
            xfail = NULL;
            char *sp = strchr(l, ' ');
            if (!sp) {
                good = false;
                tcase_free(&c);
                break;
            }
            *sp = 0;
            const char *kind = l;
            char *hdr = sp + 1;
            if (!strcmp(kind, "eval_fail")) c.expect_fail = true;
            else if (!strcmp(kind, "eval_ordered")) c.ordered = true;
            else if (!strcmp(kind, "eval_warn")) c.any_warn = true;
            else if (!strcmp(kind, "eval_info")) c.any_info = true;
            if ((rest = after_prefix(hdr, "instant at "))) {
                char *e = strchr(rest, ' ');
                if (!e || !parse_dur(rest, (size_t)(e - rest), &c.start)) good = false;
                c.end = c.start;
                if (e) c.expr = mem_strdup(trim(e));
            } else if ((rest = after_prefix(hdr, "range from "))) {
                char t0[64], t1[64], s[64];
                int off = 0;
                if (sscanf(rest, "%63s to %63s step %63s %n", t0, t1, s, &off) != 3 ||
                    !parse_dur(t0, strlen(t0), &c.start) || !parse_dur(t1, strlen(t1), &c.end) ||
                    !parse_dur(s, strlen(s), &c.step))
                    good = false;
                c.range = true;
                c.expr = mem_strdup(trim(rest + off));
            } else {
                good = false;
            }
            if (!good) {
                printf("  %s:%zu: bad eval header\n", name, i + 1);
                tcase_free(&c);
                break;
            }
            for (i++; i < nl && !is_blank(lines[i]); i++) {
                char *b = trim(lines[i]);
                if ((rest = after_prefix(b, "expect "))) {
                    if (!strcmp(rest, "ordered")) c.ordered = true;
                    else if (!strcmp(rest, "no_warn")) c.no_warn = true;
                    else if (!strcmp(rest, "no_info")) c.no_info = true;
                    else if (!strncmp(rest, "fail", 4)) {
                        c.expect_fail = true;
                        char *r = trim(rest + 4);
                        char *x;
                        if ((x = after_prefix(r, "msg:"))) c.fail_msg = mem_strdup(trim(x));
                        else if ((x = after_prefix(r, "regex:"))) c.fail_re = mem_strdup(trim(x));
                    } else if (!strncmp(rest, "warn", 4)) {
                        c.any_warn = true;
                        char *r = trim(rest + 4);
                        if (*r) add_spec(&c.warn_msgs, &c.n_warn, r);
                    } else if (!strncmp(rest, "info", 4)) {
                        c.any_info = true;
                        char *r = trim(rest + 4);
                        if (*r) add_spec(&c.info_msgs, &c.n_info, r);
                    } else if (after_prefix(rest, "string ")) {
                        char *r = trim(rest + 7);
                        size_t rl = strlen(r);
                        c.has_string = true;
                        c.string = mem_strndup(r + 1, rl >= 2 ? rl - 2 : 0);
                    } else if (after_prefix(rest, "range vector from ")) {
                        char t0[64], t1[64], s[64];
                        if (sscanf(rest + 18, "%63s to %63s step %63s", t0, t1, s) != 3 ||
                            !parse_dur(t0, strlen(t0), &c.rv_from) ||
                            !parse_dur(t1, strlen(t1), &c.rv_to) ||
                            !parse_dur(s, strlen(s), &c.rv_step))
                            good = false;
                        c.range_vector = true;
                    } else {
                        printf("  %s:%zu: unknown expect line\n", name, i + 1);
                        good = false;
                    }
                    continue;
                }
                double sv;
                if (parse_num(b, strlen(b), &sv)) {
                    c.has_scalar = true;
                    c.scalar = sv;
                    continue;
                }
                size_t se = series_end(b);
                labels *ls = parse_series_labels(b, se);
                texpect e;
                memset(&e, 0, sizeof e);
                char *vs = mem_strdup(b + se);
                if (!ls || !parse_values(vs, &e.vals, &e.have, &e.n)) {
                    if (!c.bad) c.bad = mem_strdup(b);
                    if (!getenv("PROMQL_EVAL_LENIENT")) {
                        printf("  %s:%zu: bad expected line: %s\n", name, i + 1, b);
                        good = false;
                    }
                    labels_free(ls);
                    mem_free(e.vals);
                    mem_free(e.have);
                } else {
                    e.ls = ls;
                    e.line = (int)i + 1;
                    c.exp = mem_realloc(c.exp, (c.n_exp + 1) * sizeof *c.exp);
                    c.exp[c.n_exp++] = e;
                }
                mem_free(vs);
            }
            i--;
            if (smoke_mode) run_smoke(&m, &c, st);
            else run_case(&m, &c, st);
            tcase_free(&c);
            continue;
        }
        printf("  %s:%zu: unknown command: %s\n", name, i + 1, l);
        good = false;
        break;
    }
    mem_free(xfail);
    memstore_clear(&m);
    mem_free(lines);
    free(d);
    return good;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_corpus_files(void **state)
{
    (void)state;
    const char *dir = getenv("PROMQL_EVAL_DIR") ? getenv("PROMQL_EVAL_DIR") : "tests/data/promql-eval";
    DIR *dh = opendir(dir);
    assert_non_null(dh);
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dh))) {
        size_t l = strlen(de->d_name);
        if (l > 5 && !strcmp(de->d_name + l - 5, ".test")) {
            names = mem_realloc(names, (n + 1) * sizeof *names);
            names[n++] = mem_strdup(de->d_name);
        }
    }
    closedir(dh);
    qsort(names, n, sizeof *names, cmp_names);
    tstats total = {0};
    bool good = true;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        tstats st = {0};
        if (!run_file(path, names[i], &st)) good = false;
        printf("%-32s %4d passed, %3d failed, %3d known failures%s\n", names[i], st.passed, st.failed,
               st.xfailed, st.xpassed ? " (some known failures passed)" : "");
        total.passed += st.passed;
        total.failed += st.failed;
        total.xfailed += st.xfailed;
        total.xpassed += st.xpassed;
        mem_free(names[i]);
    }
    mem_free(names);
    printf("promql-eval cases: %d passed, %d failed, %d known failures, %d known failures passed\n",
           total.passed, total.failed, total.xfailed, total.xpassed);
    assert_true(good);
    assert_int_equal(total.failed, 0);
    assert_int_equal(total.xpassed, 0);
}

/* Every expression of Prometheus's whole corpus (histogram data skipped)
 * evaluated at odd times: nothing may crash, leak or trip a sanitizer. */
static void test_corpus_never_crashes(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("conformance/promql");
    char dir[4096];
    tu_shared_path(dir, sizeof dir, "conformance/promql");
    DIR *dh = opendir(dir);
    assert_non_null(dh);
    struct dirent *de;
    tstats st = {0};
    smoke_mode = true;
    setenv("PROMQL_EVAL_LENIENT", "1", 1);
    while ((de = readdir(dh))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".test")) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        run_file(path, de->d_name, &st);
    }
    closedir(dh);
    unsetenv("PROMQL_EVAL_LENIENT");
    smoke_mode = false;
    printf("smoke: %d expressions evaluated 6 ways, %d bad error reports\n", st.passed, st.failed);
    assert_int_equal(st.failed, 0);
    assert_true(st.passed > 1500);
}

/* ---- pieces ------------------------------------------------------------------------- */

static void test_format_float_f(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"},           {1, "1"},       {-2.5, "-2.5"},   {0.1, "0.1"},
        {1e21, "1000000000000000000000"}, {1e-7, "0.0000001"}, {123.456, "123.456"},
        {NAN, "NaN"},       {INFINITY, "+Inf"}, {-INFINITY, "-Inf"}, {100, "100"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        promql_format_float_f(cases[i].v, &b);
        assert_string_equal(buf_cstr(&b), cases[i].want);
        buf_cleanup(&b);
    }
}

static void test_quantile_and_kahan(void **state)
{
    (void)state;
    double v[] = {4, 1, 3, 2};
    assert_true(promql_quantile(0.5, v, 4) == 2.5);
    double w[] = {1, NAN, 2};
    assert_true(isnan(promql_quantile(0, w, 3)));
    double x[] = {1};
    assert_true(isinf(promql_quantile(2, x, 1)) && promql_quantile(2, x, 1) > 0);
    assert_true(isnan(promql_quantile(0.5, x, 0)));
    double sum = 0, c = 0;
    promql_kahan_inc(1e100, &sum, &c);
    promql_kahan_inc(1, &sum, &c);
    promql_kahan_inc(-1e100, &sum, &c);
    assert_true(sum + c == 1);
}

static void test_annotations_dedup_and_render(void **state)
{
    (void)state;
    promql_anno_set s;
    promql_anno_init(&s);
    promql_anno_add(&s, PROMQL_ANNO_INFO, 0, "metric might not be a counter: %s", "\"a\"");
    promql_anno_add(&s, PROMQL_ANNO_WARNING, 2, "w");
    promql_anno_add(&s, PROMQL_ANNO_INFO, 5, "metric might not be a counter: %s", "\"a\"");
    promql_annotations a;
    memset(&a, 0, sizeof a);
    promql_anno_render(&s, "ab\ncdefg", 8, &a);
    assert_int_equal(a.n_infos, 1);
    assert_int_equal(a.n_warnings, 1);
    assert_string_equal(a.infos[0], "PromQL info: metric might not be a counter: \"a\" (2:3)");
    assert_string_equal(a.warnings[0], "PromQL warning: w (1:3)");
    promql_annotations_cleanup(&a);
    promql_anno_cleanup(&s);
}

/* Start timestamps: the reset and overlap rules (Prometheus's
 * isStartTimestampReset and checkStartTimeOverlap). */
static void test_st_reset_and_overlap_rules(void **state)
{
    (void)state;
    static const struct {
        int64_t prev_st, prev_t, cur_st, cur_t;
        bool reset, overlap;
    } cases[] = {
        {0, 1000, 0, 2000, false, false},       /* no start timestamps */
        {500, 1000, 0, 2000, false, false},     /* current one unknown */
        {0, 1000, 2000, 2000, false, false},    /* ST == T: OTel's unknown start */
        {0, 1000, 2001, 2000, false, false},    /* ST > T: invalid */
        {500, 1000, 500, 2000, false, false},   /* cumulative, same start */
        {500, 1000, 400, 2000, false, true},    /* reaches back over prev, other start */
        {0, 1000, 400, 2000, false, true},      /* the same after an unknown start */
        {500, 1000, 1500, 2000, true, false},   /* started after the previous sample */
        {500, 1000, 1000, 2000, true, false},   /* delta: ST == prev T, prev ST known */
        {0, 1000, 1000, 2000, false, false},    /* cumulative with unknown start */
        {1000, 1000, 1000, 2000, false, false}, /* prev ST == prev T: unknown start */
        {1500, 1000, 1000, 2000, false, false}, /* prev ST > prev T: invalid, unknown */
        {-500, 1000, 1000, 2000, true, false},  /* negative times are times */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool r =
            promql_st_reset(cases[i].prev_st, cases[i].prev_t, cases[i].cur_st, cases[i].cur_t);
        bool o = promql_st_overlap(cases[i].prev_st, cases[i].prev_t, cases[i].cur_st);
        if (r != cases[i].reset || o != cases[i].overlap)
            fail_msg("case %zu: reset %d overlap %d", i, r, o);
    }
}

/* rate/increase/irate/resets over start timestamps called directly: with
 * and without eval.c's reset index (the scan and the index must agree),
 * and with no start timestamps at all. */
static void test_st_range_functions(void **state)
{
    (void)state;
    /* 0@60s (start 30s), 5@120s (start 90s: reset), 3@180s (start 90s:
     * a value reset only), 3@240s (start 180s: delta reset), 1@300s (start
     * 240s: delta reset and value reset) */
    static const promql_fpoint pts[] = {
        {60000, 0}, {120000, 5}, {180000, 3}, {240000, 3}, {300000, 1}};
    static const int64_t st[] = {30000, 90000, 90000, 180000, 240000};
    static const uint32_t idx[] = {1, 2, 3, 4}; /* every pair is a reset */
    const size_t n = sizeof pts / sizeof pts[0];
    const char *q = "increase(x[5m])";
    promql_ast *ast;
    buf pe;
    buf_init(&pe, BUF_UNLIMITED);
    assert_int_equal(parse_expr(q, strlen(q), &ast, &pe), 0);
    buf_cleanup(&pe);
    promql_anno_set anno;
    promql_anno_init(&anno);
    promql_lcache lc;
    promql_lcache_init(&lc);
    buf ferr;
    buf_init(&ferr, BUF_UNLIMITED);
    labels *metric = parse_series_labels("x", 1);
    promql_fcall fc;
    memset(&fc, 0, sizeof fc);
    fc.call = ast->root;
    fc.anno = &anno;
    fc.lcache = &lc;
    fc.err = &ferr;
    fc.metric = metric;
    fc.pts = pts;
    fc.n = n;
    fc.range_ms = 300000;
    fc.ts = 300000;
    double v;
    /* Range (0, 300s]: from 0 at 30s: +0, reset, +5, reset, +3, reset, +3,
     * reset, +1. */
    const promql_fdef *inc = promql_func_find("increase");
    assert_true(inc->flags & PROMQL_F_ST);
    fc.st = st;
    assert_int_equal(inc->range(&fc, &v), 1);
    assert_true(v == 12);
    fc.resets = idx;
    fc.nresets = 4;
    assert_int_equal(inc->range(&fc, &v), 1);
    assert_true(v == 12);
    /* rate divides by the range */
    fc.resets = NULL;
    assert_int_equal(promql_func_find("rate")->range(&fc, &v), 1);
    assert_true(fabs(v - 12.0 / 300) < 1e-15);
    /* Without start timestamps only the value resets count (1 - 0 + 5 + 3),
     * and the start is extrapolated to the zero point, the first sample. */
    fc.st = NULL;
    assert_int_equal(inc->range(&fc, &v), 1);
    assert_true(v == 9);
    /* irate: the last pair is a reset either way; one with an ST reset only */
    const promql_fdef *irate = promql_func_find("irate");
    fc.st = st;
    fc.n = 4;
    assert_int_equal(irate->range(&fc, &v), 1);
    assert_true(v == 3.0 / 60);
    fc.st = NULL;
    assert_int_equal(irate->range(&fc, &v), 1);
    assert_true(v == 0);
    /* resets: all four pairs with start timestamps, two without */
    const promql_fdef *resets = promql_func_find("resets");
    fc.n = n;
    fc.st = st;
    assert_int_equal(resets->range(&fc, &v), 1);
    assert_true(v == 4);
    fc.st = NULL;
    assert_int_equal(resets->range(&fc, &v), 1);
    assert_true(v == 2);
    /* delta and idelta never take start timestamps */
    assert_false(promql_func_find("delta")->flags & PROMQL_F_ST);
    assert_false(promql_func_find("idelta")->flags & PROMQL_F_ST);
    assert_int_equal(anno.n, 0);
    /* An overlap warns once, at the argument */
    static const int64_t st_overlap[] = {30000, 90000, 60000, 180000, 240000};
    fc.st = st_overlap;
    assert_int_equal(inc->range(&fc, &v), 1);
    assert_int_equal(anno.n, 1);
    promql_annotations a;
    memset(&a, 0, sizeof a);
    promql_anno_render(&anno, q, strlen(q), &a);
    assert_int_equal(a.n_warnings, 1);
    assert_string_equal(a.warnings[0], "PromQL warning: sample has start time that overlaps with "
                                       "previous sample timestamp for metric \"x\" (1:10)");
    promql_annotations_cleanup(&a);
    labels_free(metric);
    buf_cleanup(&ferr);
    promql_lcache_cleanup(&lc);
    promql_anno_cleanup(&anno);
    promql_ast_free(ast);
}

/* promql_sort_stable sorts any input and keeps equal keys in input order;
 * elements carry their input position to check that. */
typedef struct ints {
    int *v;
    size_t *orig;
    size_t swaps;
} ints;

static bool ints_less(void *ctx, size_t i, size_t j)
{
    ints *x = ctx;
    return x->v[i] < x->v[j];
}

static void ints_swap(void *ctx, size_t i, size_t j)
{
    ints *x = ctx;
    int t = x->v[i];
    x->v[i] = x->v[j];
    x->v[j] = t;
    size_t o = x->orig[i];
    x->orig[i] = x->orig[j];
    x->orig[j] = o;
    x->swaps++;
}

static void test_sort_stable(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 12, 15, 16, 17, 31, 33, 100, 1000, 5000};
    unsigned seed = 1;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        for (int pattern = 0; pattern < 6; pattern++) {
            int *v = mem_calloc(n ? n : 1, sizeof *v);
            size_t *orig = mem_calloc(n ? n : 1, sizeof *orig);
            long sum = 0;
            for (size_t i = 0; i < n; i++) {
                switch (pattern) {
                case 0: v[i] = (int)i; break;                  /* sorted */
                case 1: v[i] = (int)(n - i); break;            /* reversed */
                case 2: v[i] = 7; break;                       /* all equal */
                case 3: v[i] = (int)(rand_r(&seed) % 5); break; /* many duplicates */
                case 4: v[i] = (int)rand_r(&seed); break;       /* random */
                default: v[i] = (int)(i % 2 ? n - i : i); break; /* saw */
                }
                orig[i] = i;
                sum += v[i];
            }
            ints x = {v, orig, 0};
            promql_sort_iface d = {&x, ints_less, ints_swap};
            promql_sort_stable(&d, n);
            long sum2 = 0;
            for (size_t i = 0; i < n; i++) {
                sum2 += v[i];
                if (i) assert_true(v[i - 1] <= v[i]);
                if (i && v[i - 1] == v[i]) assert_true(orig[i - 1] < orig[i]);
            }
            assert_true(sum == sum2);
            assert_true(x.swaps < (n ? n : 1));
            if (pattern == 0 || pattern == 2) assert_int_equal(x.swaps, 0);
            mem_free(v);
            mem_free(orig);
        }
    }
}

/* Limits: max samples, timeout, cancellation, and never crashing on
 * unusual but valid trees. */
static int eval_text(memstore *m, const char *q, int64_t t, const promql_engine_options *o,
                     promql_value *v, promql_error *err)
{
    promql_ast *ast;
    buf pe;
    buf_init(&pe, BUF_UNLIMITED);
    assert_int_equal(parse_expr(q, strlen(q), &ast, &pe), 0);
    buf_cleanup(&pe);
    promql_queryable src = {m, memstore_select};
    promql_query qq = {ast, ast->root, t, t, 0};
    int rc = promql_eval(o, &src, &qq, v, NULL, err);
    promql_ast_free(ast);
    return rc;
}

static void test_limits(void **state)
{
    (void)state;
    memstore m = {0};
    labels_builder b;
    labels_builder_init(&b);
    for (int s = 0; s < 20; s++) {
        char val[16];
        snprintf(val, sizeof val, "%d", s);
        labels_builder_reset(&b);
        labels_builder_set(&b, "__name__", 8, "x", 1);
        labels_builder_set(&b, "i", 1, val, strlen(val));
        labels *ls = labels_builder_finish(&b, NULL);
        for (int k = 0; k < 100; k++)
            memstore_add(&m, ls, k * 15000, k);
        labels_free(ls);
    }
    labels_builder_cleanup(&b);
    promql_engine_options o = {0};
    o.max_samples = 100;
    promql_value v;
    promql_error err;
    promql_error_init(&err);
    int rc0 = eval_text(&m, "sum(x)", 1000000, &o, &v, &err);
    assert_int_equal(rc0, 0);
    promql_value_cleanup(&v);
    assert_int_equal(eval_text(&m, "x[10m]", 1000000, &o, &v, &err), -E2BIG);
    assert_int_equal(err.kind, PROMQL_ERR_EXECUTION);
    assert_string_equal(buf_cstr(&err.msg),
                        "query processing would load too many samples into memory in query execution");
    o.max_samples = 0;
    o.timeout_ms = 50;
    assert_int_equal(eval_text(&m, "count_over_time(x[1h:1ms])", 1000000, &o, &v, &err), -ETIMEDOUT);
    assert_int_equal(err.kind, PROMQL_ERR_TIMEOUT);
    assert_string_equal(buf_cstr(&err.msg), "query timed out in expression evaluation");
    o.timeout_ms = 0;
    atomic_bool cancel = true;
    o.max_samples = 0;
    o.cancel = &cancel;
    assert_int_equal(eval_text(&m, "sum(x)", 1000000, &o, &v, &err), -ECANCELED);
    assert_string_equal(buf_cstr(&err.msg), "query was canceled in expression evaluation");
    o.cancel = NULL;
    /* Far times evaluate (time=1e15 seconds is a valid API time); times and
     * durations that could overflow a sum are refused. */
    assert_int_equal(eval_text(&m, "x", 1000000000000000000LL, &o, &v, &err), 0);
    assert_int_equal(v.type, PROMQL_TYPE_VECTOR);
    assert_int_equal(v.vector.n, 0);
    promql_value_cleanup(&v);
    assert_int_equal(eval_text(&m, "x", 3000000000000000000LL, &o, &v, &err), -EINVAL);
    assert_string_equal(buf_cstr(&err.msg), "time or duration out of range");
    assert_int_equal(err.kind, PROMQL_ERR_BAD_DATA);
    assert_int_equal(eval_text(&m, "x", -3000000000000000000LL, &o, &v, &err), -EINVAL);
    promql_error_cleanup(&err);
    memstore_clear(&m);
}

/* Peak samples at the limit (Prometheus's TestMaxQuerySamples, float
 * cases): each query succeeds with max_samples = peak and fails with
 * peak - 1. */
static void test_max_samples_exact(void **state)
{
    (void)state;
    static const struct {
        const char *q;
        int64_t max, start, end, step; /* ms; step 0 = instant */
    } cases[] = {
        {"1", 1, 1000, 1000, 0},
        {"metric", 1, 1000, 1000, 0},
        {"metric[20s]", 2, 10000, 10000, 0},
        {"rate(metric[20s])", 3, 10000, 10000, 0},
        {"metric[20s:5s]", 3, 10000, 10000, 0},
        {"metric[20s] @ 10", 2, 0, 0, 0},
        {"1", 3, 0, 2000, 1000},
        {"metric", 3, 0, 2000, 1000},
        {"metric", 3, 0, 10000, 5000},
        {"rate(bigmetric[1s])", 1, 0, 10000, 5000},
        {"metric @ 10", 3, 0, 10000, 5000},
        {"rate(bigmetric[10s:1s] @ 10)", 32, 0, 10000, 5000},
        {"rate(bigmetric[10s:1s] @ 10) + rate(bigmetric[10s:1s] @ 30)", 34, 0, 10000, 5000},
        {"rate(bigmetric[10s:1s]) + rate(bigmetric[10s:1s] @ 30)", 56, 10000, 20000, 5000},
        {"rate(rate(bigmetric[10:1s] @ 10)[100s:25s] @ 1000)[100s:20s] @ 2000", 32, 10000, 10000, 0},
        {"rate(rate(bigmetric[10s:1s] @ 10)[100s:25s] @ 1000)[17s:1s] @ 2000", 34, 10000, 10000, 0},
    };
    memstore m = {0};
    const char *names[3][3] = {{"__name__", "metric", NULL}, {"__name__", "bigmetric", "1"},
                               {"__name__", "bigmetric", "2"}};
    for (int s = 0; s < 3; s++) {
        labels_builder b;
        labels_builder_init(&b);
        labels_builder_set(&b, names[s][0], 8, names[s][1], strlen(names[s][1]));
        if (names[s][2]) labels_builder_set(&b, "a", 1, names[s][2], 1);
        labels *ls = labels_builder_finish(&b, NULL);
        labels_builder_cleanup(&b);
        for (int k = 0; k <= 100; k++)
            memstore_add(&m, ls, k * 10000, 1 + k);
        labels_free(ls);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int over = 0; over < 2; over++) {
            if (over && cases[i].max == 1) continue; /* 0 means the default limit */
            promql_ast *ast;
            buf pe;
            buf_init(&pe, BUF_UNLIMITED);
            assert_int_equal(parse_expr(cases[i].q, strlen(cases[i].q), &ast, &pe), 0);
            buf_cleanup(&pe);
            promql_engine_options o = {0};
            o.max_samples = cases[i].max - over;
            o.delayed_name_removal = true;
            promql_queryable src = {&m, memstore_select};
            promql_query q = {ast, ast->root, cases[i].start, cases[i].end, cases[i].step};
            promql_value v;
            promql_error err;
            promql_error_init(&err);
            int rc = promql_eval(&o, &src, &q, &v, NULL, &err);
            if (rc != (over ? -E2BIG : 0))
                fail_msg("%s with max_samples %lld: rc %d (%s)", cases[i].q,
                         (long long)o.max_samples, rc, buf_cstr(&err.msg));
            promql_value_cleanup(&v);
            promql_error_cleanup(&err);
            promql_ast_free(ast);
        }
    }
    memstore_clear(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_float_f),
        cmocka_unit_test(test_quantile_and_kahan),
        cmocka_unit_test(test_annotations_dedup_and_render),
        cmocka_unit_test(test_st_reset_and_overlap_rules),
        cmocka_unit_test(test_st_range_functions),
        cmocka_unit_test(test_sort_stable),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_max_samples_exact),
        cmocka_unit_test(test_corpus_files),
        cmocka_unit_test(test_corpus_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
