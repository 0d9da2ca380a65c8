/* promql/eval: the PromQL evaluator, with Prometheus 3.x's semantics
 * (promql/engine.go).
 *
 * A query is evaluated over a range of steps [start, end] (an instant query
 * is a range with one step). Every node evaluates to a matrix holding, for
 * each output series, at most one point per step; functions and operators
 * gather the instant vector of each step from their inputs' matrices, as
 * Prometheus's rangeEval does, so range queries, subqueries and the @
 * modifier share one code path.
 *
 * The syntax tree is never modified: each query first builds a "plan", a
 * mutable copy of the tree that holds what Prometheus computes by rewriting
 * its tree (durations of duration expressions, folded start()/end()/range()/
 * step(), step-invariant subtrees, @ start()/end(), offsets adjusted for @).
 *
 * Errors propagate as negative return codes; the first error's kind and
 * message go to the query's promql_error. Intermediate matrices are freed as
 * soon as their parent has consumed them. */
#include "promql/eval.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "expfmt.h"
#include "mem.h"
#include "promql/anno.h"
#include "promql/func.h"
#include "promql/sort.h"
#include "promql/parse.h"
#include "regex.h"
#include "strutil.h"

#define DEFAULT_LOOKBACK_MS (5 * 60 * 1000LL)
#define DEFAULT_MAX_SAMPLES 50000000LL
#define DEFAULT_TIMEOUT_MS (2 * 60 * 1000LL)
#define DEFAULT_SUBQUERY_STEP_MS (60 * 1000LL)

/* Prometheus's limits for converting a float parameter to int64. */
#define MAX_INT64_F 9223372036854774784.0
#define MIN_INT64_F (-9223372036854775808.0)

/* ---- values ------------------------------------------------------------------ */

void promql_series_free_hists(promql_series *s)
{
    for (size_t k = 0; k < s->nh; k++)
        promql_fh_free(s->hpts[k].h);
    mem_free(s->hpts);
    s->hpts = NULL;
    s->nh = s->hcap = 0;
}

void promql_series_add_hist(promql_series *s, int64_t t, promql_fh *h)
{
    if (s->nh == s->hcap) s->hpts = mem_grow(s->hpts, sizeof *s->hpts, s->nh + 1, &s->hcap);
    s->hpts[s->nh].t = t;
    s->hpts[s->nh].h = h;
    s->nh++;
}

void promql_matrix_cleanup(promql_matrix *m)
{
    for (size_t i = 0; i < m->n; i++) {
        labels_free(m->v[i].metric);
        mem_free(m->v[i].pts);
        mem_free(m->v[i].st);
        promql_series_free_hists(&m->v[i]);
    }
    mem_free(m->v);
    m->v = NULL;
    m->n = m->cap = 0;
}

void promql_vector_cleanup(promql_vector *v)
{
    for (size_t i = 0; i < v->n; i++) {
        labels_free(v->v[i].metric);
        promql_fh_free(v->v[i].h);
    }
    mem_free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

void promql_value_cleanup(promql_value *v)
{
    promql_matrix_cleanup(&v->matrix);
    promql_vector_cleanup(&v->vector);
    mem_free(v->string);
    memset(v, 0, sizeof *v);
}

void promql_error_init(promql_error *e)
{
    e->kind = PROMQL_ERR_NONE;
    buf_init(&e->msg, 64 * 1024);
}

void promql_error_cleanup(promql_error *e)
{
    buf_cleanup(&e->msg);
    e->kind = PROMQL_ERR_NONE;
}

void promql_annotations_cleanup(promql_annotations *a)
{
    for (size_t i = 0; i < a->n_warnings; i++)
        mem_free(a->warnings[i]);
    for (size_t i = 0; i < a->n_infos; i++)
        mem_free(a->infos[i]);
    mem_free(a->warnings);
    mem_free(a->infos);
    memset(a, 0, sizeof *a);
}

static promql_series *mat_add(promql_matrix *m, labels *metric, bool drop_name)
{
    m->v = mem_grow(m->v, sizeof *m->v, m->n + 1, &m->cap);
    promql_series *s = &m->v[m->n++];
    memset(s, 0, sizeof *s);
    s->metric = metric;
    s->drop_name = drop_name;
    return s;
}

static void series_add(promql_series *s, int64_t t, double v)
{
    if (s->n == s->cap) s->pts = mem_grow(s->pts, sizeof *s->pts, s->n + 1, &s->cap);
    s->pts[s->n].t = t;
    s->pts[s->n].v = v;
    s->n++;
}

static int64_t mat_total(const promql_matrix *m)
{
    int64_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        n += (int64_t)(m->v[i].n + m->v[i].nh);
    return n;
}

static void series_free(promql_series *s)
{
    labels_free(s->metric);
    mem_free(s->pts);
    mem_free(s->st);
    promql_series_free_hists(s);
    s->metric = NULL;
    s->pts = NULL;
    s->st = NULL;
    s->n = s->cap = 0;
}

/* Drops the empty series and compacts the array. */
static void mat_drop_empty(promql_matrix *m)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (m->v[i].n == 0 && m->v[i].nh == 0)
            series_free(&m->v[i]);
        else m->v[k++] = m->v[i];
    }
    m->n = k;
}

/* ---- a map from label sets to indexes --------------------------------------------- */

/* Open addressing over (hash, index); equality through a callback that
 * compares the stored index with the probe. */
typedef struct imap {
    uint64_t *h;
    uint32_t *idx; /* index + 1; 0 = empty */
    size_t cap, len;
} imap;

typedef bool (*imap_eq)(void *ctx, uint32_t idx);

static void imap_init(imap *m)
{
    memset(m, 0, sizeof *m);
}

static void imap_free(imap *m)
{
    mem_free(m->h);
    mem_free(m->idx);
    imap_init(m);
}

static void imap_clear(imap *m)
{
    if (m->cap) memset(m->idx, 0, m->cap * sizeof *m->idx);
    m->len = 0;
}

static void imap_grow(imap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    uint64_t *nh = mem_calloc(ncap, sizeof *nh);
    uint32_t *ni = mem_calloc(ncap, sizeof *ni);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->idx[i]) continue;
        size_t j = m->h[i] & (ncap - 1);
        while (ni[j])
            j = (j + 1) & (ncap - 1);
        nh[j] = m->h[i];
        ni[j] = m->idx[i];
    }
    mem_free(m->h);
    mem_free(m->idx);
    m->h = nh;
    m->idx = ni;
    m->cap = ncap;
}

/* Returns the stored index, or -1. */
static int64_t imap_get(const imap *m, uint64_t h, imap_eq eq, void *ctx)
{
    if (!m->cap) return -1;
    size_t i = h & (m->cap - 1);
    while (m->idx[i]) {
        if (m->h[i] == h && eq(ctx, m->idx[i] - 1)) return m->idx[i] - 1;
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

static void imap_put(imap *m, uint64_t h, uint32_t idx)
{
    if ((m->len + 1) * 4 >= m->cap * 3) imap_grow(m);
    size_t i = h & (m->cap - 1);
    while (m->idx[i])
        i = (i + 1) & (m->cap - 1);
    m->h[i] = h;
    m->idx[i] = idx + 1;
    m->len++;
}

/* Label sets of a matrix by content. */
typedef struct mat_key {
    const promql_matrix *m;
    const labels *ls;
} mat_key;

static bool mat_key_eq(void *ctx, uint32_t idx)
{
    const mat_key *k = ctx;
    return labels_equal(k->m->v[idx].metric, k->ls);
}

/* Interned byte strings (matching and grouping signatures) -> ordinals. */
typedef struct sigtab {
    imap m;
    char **s;
    size_t *len;
    size_t n, cap;
} sigtab;

typedef struct sig_key {
    const sigtab *t;
    const char *p;
    size_t len;
} sig_key;

static bool sig_eq(void *ctx, uint32_t idx)
{
    const sig_key *k = ctx;
    return k->t->len[idx] == k->len && memcmp(k->t->s[idx], k->p, k->len) == 0;
}

static void sigtab_init(sigtab *t)
{
    memset(t, 0, sizeof *t);
}

static void sigtab_free(sigtab *t)
{
    for (size_t i = 0; i < t->n; i++)
        mem_free(t->s[i]);
    mem_free(t->s);
    mem_free(t->len);
    imap_free(&t->m);
    sigtab_init(t);
}

static uint32_t sigtab_intern(sigtab *t, const char *p, size_t len, bool *added)
{
    uint64_t h = strutil_hash64(p, len, 0);
    sig_key k = {t, p, len};
    int64_t i = imap_get(&t->m, h, sig_eq, &k);
    if (added) *added = i < 0;
    if (i >= 0) return (uint32_t)i;
    if (t->n == t->cap) {
        size_t cap = t->cap;
        t->s = mem_grow(t->s, sizeof *t->s, t->n + 1, &cap);
        t->len = mem_realloc(t->len, cap * sizeof *t->len);
        t->cap = cap;
    }
    t->s[t->n] = mem_strndup(p, len);
    t->len[t->n] = len;
    imap_put(&t->m, h, (uint32_t)t->n);
    return (uint32_t)t->n++;
}

/* ---- the query context -------------------------------------------------------------- */

typedef struct pnode pnode;

typedef struct qctx {
    const promql_queryable *src;
    const char *query;
    size_t query_len;
    int64_t qstart, qend, qstep;
    int64_t lookback, max_samples, default_step;
    bool delayed;
    bool use_st; /* use_start_timestamps */
    /* Selectors below histogram_count/sum/avg (nearest histogram_* call):
     * Prometheus reads them with its HistogramStatsIterator, which marks
     * detected counter resets as such. */
    bool hist_stats;
    struct timespec deadline;
    const atomic_bool *cancel;
    int64_t cur; /* Prometheus's currentSamples */
    promql_anno_set anno;
    promql_error *err;
    arena mem; /* the plan */
} qctx;

typedef struct evaluator {
    qctx *q;
    int64_t start, end, interval;
} evaluator;

static int qfailv(qctx *q, enum promql_error_kind kind, int rc, const char *fmt, va_list ap)
{
    if (q->err && q->err->kind == PROMQL_ERR_NONE) {
        q->err->kind = kind;
        buf_reset(&q->err->msg);
        buf_vprintf(&q->err->msg, fmt, ap);
    }
    return rc;
}

static int qfail(qctx *q, enum promql_error_kind kind, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int qfail(qctx *q, enum promql_error_kind kind, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qfailv(q, kind, rc, fmt, ap);
    va_end(ap);
    return rc;
}

/* An evaluation error (Prometheus panics with these inside the evaluator). */
static int exec_fail(qctx *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int exec_fail(qctx *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qfailv(q, PROMQL_ERR_EXECUTION, -EINVAL, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int too_many_samples(qctx *q)
{
    return qfail(q, PROMQL_ERR_EXECUTION, -E2BIG,
                 "query processing would load too many samples into memory in query execution");
}

static int same_labelset_error(qctx *q)
{
    return exec_fail(q, "vector cannot contain metrics with the same labelset");
}

/* Timeout and cancellation, checked once per step and per series. */
static int qcheck(qctx *q)
{
    if (q->cancel && atomic_load(q->cancel))
        return qfail(q, PROMQL_ERR_CANCELED, -ECANCELED,
                     "query was canceled in expression evaluation");
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > q->deadline.tv_sec ||
        (now.tv_sec == q->deadline.tv_sec && now.tv_nsec > q->deadline.tv_nsec))
        return qfail(q, PROMQL_ERR_TIMEOUT, -ETIMEDOUT, "query timed out in expression evaluation");
    return 0;
}

/* qcheck() once every 4096 calls, for inner loops over steps. */
static inline int qcheck_every(qctx *q, uint32_t *it)
{
    return ((++*it) & 4095) == 0 ? qcheck(q) : 0;
}

static inline int add_samples(qctx *q, int64_t n)
{
    q->cur += n;
    if (q->cur > q->max_samples) return too_many_samples(q);
    return 0;
}

static int64_t num_steps(const evaluator *ev)
{
    return (ev->end - ev->start) / ev->interval + 1;
}

static void anno_str_g(buf *b, double f)
{
    promql_format_float_g(f, b);
}

/* ---- the plan ------------------------------------------------------------------------ */

enum pkind {
    PK_AGG,
    PK_BIN,
    PK_CALL,
    PK_MSEL, /* matrix selector; a = its vector selector */
    PK_SUBQ,
    PK_NUM,
    PK_STR,
    PK_UNARY,
    PK_VSEL,
    PK_STEPINV, /* Prometheus's StepInvariantExpr */
};

struct pnode {
    enum pkind kind;
    enum promql_type type;
    const promql_node *ast; /* positions, operators, matchers, strings */
    pnode *a, *b;           /* children: expr/param, lhs/rhs, ... */
    pnode **args;
    size_t nargs;
    const promql_fdef *fdef;
    double num;
    enum promql_op op;
    /* selectors and subqueries */
    int64_t orig_offset, offset;
    bool has_at;
    int64_t at;
    int64_t range; /* matrix selector, subquery */
    int64_t step;  /* subquery (0 = default) */
    bool anchored, smoothed;
    int64_t sel_mint, sel_maxt; /* what a vector selector fetches */
};

static pnode *pnew(qctx *q, enum pkind kind, const promql_node *ast)
{
    pnode *p = arena_calloc(&q->mem, sizeof *p);
    if (!p) return NULL;
    p->kind = kind;
    p->ast = ast;
    return p;
}

static const promql_node *unparen(const promql_node *n)
{
    return promql_unparen(n);
}

static double go_fmax(double x, double y)
{
    if (isinf(x) && x > 0) return x;
    if (isinf(y) && y > 0) return y;
    if (isnan(x) || isnan(y)) return NAN;
    if (x == 0 && x == y) return signbit(x) ? y : x;
    return x > y ? x : y;
}

static double go_fmin(double x, double y)
{
    if (isinf(x) && x < 0) return x;
    if (isinf(y) && y < 0) return y;
    if (isnan(x) || isnan(y)) return NAN;
    if (x == 0 && x == y) return signbit(x) ? x : y;
    return x < y ? x : y;
}

/* Evaluates a duration expression to seconds (durations.go). */
static int dur_eval(qctx *q, const promql_node *n, double *out)
{
    if (!n) {
        *out = 0;
        return 0;
    }
    switch (n->kind) {
    case PROMQL_NODE_NUMBER: *out = n->number.val; return 0;
    case PROMQL_NODE_PAREN: return dur_eval(q, n->paren.expr, out);
    case PROMQL_NODE_UNARY: {
        double v;
        int rc = dur_eval(q, n->unary.expr, &v);
        if (rc) return rc;
        *out = n->unary.op == PROMQL_OP_SUB ? -v : v;
        return 0;
    }
    case PROMQL_NODE_DURATION: break;
    default:
        return qfail(q, PROMQL_ERR_BAD_DATA, -EINVAL, "unexpected duration expression type");
    }
    enum promql_op op = n->duration.op;
    if (op == PROMQL_OP_STEP) {
        *out = (double)q->qstep / 1000.0;
        return 0;
    }
    if (op == PROMQL_OP_RANGE) {
        *out = (double)(q->qend - q->qstart) / 1000.0;
        return 0;
    }
    const promql_node *l = n->duration.lhs, *r = n->duration.rhs;
    double lv = 0, rv = 0;
    int rc;
    if (l && (rc = dur_eval(q, l, &lv))) return rc;
    if (r && (rc = dur_eval(q, r, &rv))) return rc;
    bool unary = !l || !r;
    double x = l ? lv : rv; /* the operand of a unary operator */
    switch (op) {
    case PROMQL_OP_NONE: *out = x; return 0;
    case PROMQL_OP_MIN_OF: *out = go_fmin(lv, rv); return 0;
    case PROMQL_OP_MAX_OF: *out = go_fmax(lv, rv); return 0;
    case PROMQL_OP_ADD: *out = unary ? x : lv + rv; return 0;
    case PROMQL_OP_SUB: *out = unary ? -x : lv - rv; return 0;
    case PROMQL_OP_MUL: *out = lv * rv; return 0;
    case PROMQL_OP_DIV:
        if (rv == 0)
            return qfail(q, PROMQL_ERR_BAD_DATA, -EINVAL, "%u:%u: division by zero", n->pos.start,
                         n->pos.end);
        *out = lv / rv;
        return 0;
    case PROMQL_OP_MOD:
        if (rv == 0)
            return qfail(q, PROMQL_ERR_BAD_DATA, -EINVAL, "%u:%u: modulo by zero", n->pos.start,
                         n->pos.end);
        *out = fmod(lv, rv);
        return 0;
    case PROMQL_OP_POW: *out = promql_pow(lv, rv); return 0;
    default:
        return qfail(q, PROMQL_ERR_BAD_DATA, -EINVAL,
                     "unexpected duration expression operator \"%s\"", promql_op_name(op));
    }
}

static int calc_duration(qctx *q, const promql_node *n, bool allow_neg, int64_t *ms)
{
    double d;
    int rc = dur_eval(q, n, &d);
    if (rc) return rc;
    if (isnan(d) || isinf(d))
        return qfail(q, PROMQL_ERR_BAD_DATA, -EINVAL, "%u:%u: duration is NaN or infinite",
                     n->pos.start, n->pos.end);
    if (d <= 0 && !allow_neg)
        return qfail(q, PROMQL_ERR_BAD_DATA, -EINVAL, "%u:%u: duration must be greater than 0",
                     n->pos.start, n->pos.end);
    if (d > 9223372036.854775807 || d < -9223372036.854775808)
        return qfail(q, PROMQL_ERR_BAD_DATA, -EINVAL, "%u:%u: duration is out of range",
                     n->pos.start, n->pos.end);
    *ms = (int64_t)(d * 1000);
    return 0;
}

static int plan_offset(qctx *q, const promql_offset *o, int64_t *ms)
{
    if (o->expr) return calc_duration(q, o->expr, true, ms);
    *ms = o->original_ms;
    return 0;
}

static void plan_at(qctx *q, const promql_at *at, pnode *p)
{
    if (!at->set) return;
    p->has_at = true;
    if (at->start_or_end == PROMQL_OP_START) p->at = q->qstart;
    else if (at->start_or_end == PROMQL_OP_END) p->at = q->qend;
    else p->at = at->ts_ms;
}

static int plan_build(qctx *q, const promql_node *n, pnode **out, int depth);

/* The parser guarantees argument counts and types; a tree that breaks them
 * is refused rather than read out of bounds. */
static int check_call(qctx *q, const promql_node *n)
{
    const promql_function *f = n->call.func;
    size_t na = n->call.nargs, want = f->n_args;
    bool ok;
    if (f->variadic == 0) ok = na == want;
    else if (f->variadic < 0) ok = want == 0 || na + 1 >= want;
    else ok = (want == 0 || na + 1 >= want) && na + 1 <= want + (size_t)f->variadic;
    for (size_t i = 0; ok && i < na; i++) {
        const promql_node *a = promql_unparen(n->call.args[i]);
        if (!a || !want) {
            ok = false;
            break;
        }
        enum promql_type t = f->arg_types[i < want ? i : want - 1];
        if (promql_node_type(a) != t) ok = false;
        if (t == PROMQL_TYPE_STRING && a->kind != PROMQL_NODE_STRING) ok = false;
    }
    if (!ok)
        return qfail(q, PROMQL_ERR_BAD_DATA, -EINVAL, "invalid arguments in call to function \"%s\"",
                     f->name);
    return 0;
}

/* Offsets, ranges and steps beyond +-10^15 ms (31,000 years; Go's
 * durations end at 292 years) and times beyond +-2 * 10^18 ms are refused,
 * so that no sum of them can overflow: a time plus one offset, range, step
 * and lookback per nesting level (PROMQL_MAX_DEPTH) stays below 2^63 ms.
 * Times as far out as the API accepts (time=1e15 seconds) still evaluate, as
 * in Prometheus, to an empty result. */
#define DURATION_LIMIT_MS 1000000000000000LL
#define TIME_LIMIT_MS 2000000000000000000LL

static int out_of_range(qctx *q)
{
    return qfail(q, PROMQL_ERR_BAD_DATA, -EINVAL, "time or duration out of range");
}

static int check_time(qctx *q, int64_t v)
{
    return v > TIME_LIMIT_MS || v < -TIME_LIMIT_MS ? out_of_range(q) : 0;
}

static int check_dur(qctx *q, int64_t v)
{
    return v > DURATION_LIMIT_MS || v < -DURATION_LIMIT_MS ? out_of_range(q) : 0;
}

#define NOMEM(q) qfail((q), PROMQL_ERR_INTERNAL, -ENOMEM, "out of memory")

static int plan_build(qctx *q, const promql_node *n, pnode **out, int depth)
{
    int rc;
    n = unparen(n);
    if (!n) return qfail(q, PROMQL_ERR_INTERNAL, -EINVAL, "missing expression");
    if (depth > 4 * PROMQL_MAX_DEPTH)
        return qfail(q, PROMQL_ERR_BAD_DATA, -EINVAL, "expression nested too deeply");
    pnode *p = NULL;
    switch (n->kind) {
    case PROMQL_NODE_AGGREGATE:
        if (!(p = pnew(q, PK_AGG, n))) return NOMEM(q);
        p->op = n->aggregate.op;
        if ((rc = plan_build(q, n->aggregate.expr, &p->a, depth + 1))) return rc;
        if (n->aggregate.param && (rc = plan_build(q, n->aggregate.param, &p->b, depth + 1)))
            return rc;
        p->type = PROMQL_TYPE_VECTOR;
        break;
    case PROMQL_NODE_BINARY:
        if (!(p = pnew(q, PK_BIN, n))) return NOMEM(q);
        p->op = n->binary.op;
        if ((rc = plan_build(q, n->binary.lhs, &p->a, depth + 1))) return rc;
        if ((rc = plan_build(q, n->binary.rhs, &p->b, depth + 1))) return rc;
        p->type = p->a->type == PROMQL_TYPE_SCALAR && p->b->type == PROMQL_TYPE_SCALAR
                      ? PROMQL_TYPE_SCALAR
                      : PROMQL_TYPE_VECTOR;
        break;
    case PROMQL_NODE_CALL: {
        const char *name = n->call.func->name;
        const promql_fdef *fd = promql_func_find(name);
        if (!fd)
            return qfail(q, PROMQL_ERR_BAD_DATA, -EINVAL, "function \"%s\" is not implemented",
                         name);
        if (fd->flags & PROMQL_F_QUERY_CONST) {
            if (!(p = pnew(q, PK_NUM, n))) return NOMEM(q);
            p->type = PROMQL_TYPE_SCALAR;
            if (!strcmp(name, "start")) p->num = (double)q->qstart / 1000;
            else if (!strcmp(name, "end")) p->num = (double)q->qend / 1000;
            else if (!strcmp(name, "range")) p->num = (double)(q->qend - q->qstart) / 1000;
            else p->num = q->qstart != q->qend ? (double)q->qstep / 1000 : 0;
            break;
        }
        if ((rc = check_call(q, n))) return rc;
        if (!(p = pnew(q, PK_CALL, n))) return NOMEM(q);
        p->fdef = fd;
        p->type = n->call.func->return_type;
        p->nargs = n->call.nargs;
        if (p->nargs) {
            p->args = arena_calloc(&q->mem, p->nargs * sizeof *p->args);
            if (!p->args) return NOMEM(q);
        }
        for (size_t i = 0; i < p->nargs; i++) {
            if ((rc = plan_build(q, n->call.args[i], &p->args[i], depth + 1))) return rc;
        }
        break;
    }
    case PROMQL_NODE_MATRIX_SELECTOR:
        if (!(p = pnew(q, PK_MSEL, n))) return NOMEM(q);
        p->type = PROMQL_TYPE_MATRIX;
        if ((rc = plan_build(q, n->matrix.vs, &p->a, depth + 1))) return rc;
        if (p->a->kind != PK_VSEL)
            return qfail(q, PROMQL_ERR_BAD_DATA, -EINVAL, "matrix selector without a selector");
        if (n->matrix.range_expr) {
            if ((rc = calc_duration(q, n->matrix.range_expr, false, &p->range))) return rc;
        } else {
            p->range = n->matrix.range_ms;
        }
        if ((rc = check_dur(q, p->range))) return rc;
        p->anchored = p->a->anchored;
        p->smoothed = p->a->smoothed;
        break;
    case PROMQL_NODE_SUBQUERY:
        if (!(p = pnew(q, PK_SUBQ, n))) return NOMEM(q);
        p->type = PROMQL_TYPE_MATRIX;
        if ((rc = plan_build(q, n->subquery.expr, &p->a, depth + 1))) return rc;
        if ((rc = plan_offset(q, &n->subquery.offset, &p->orig_offset))) return rc;
        p->offset = p->orig_offset;
        if (n->subquery.step_expr) {
            if ((rc = calc_duration(q, n->subquery.step_expr, false, &p->step))) return rc;
        } else {
            p->step = n->subquery.step_ms;
        }
        if (n->subquery.range_expr) {
            if ((rc = calc_duration(q, n->subquery.range_expr, false, &p->range))) return rc;
        } else {
            p->range = n->subquery.range_ms;
        }
        plan_at(q, &n->subquery.at, p);
        if ((rc = check_dur(q, p->orig_offset)) || (rc = check_dur(q, p->step)) ||
            (rc = check_dur(q, p->range)) || (rc = check_time(q, p->at)))
            return rc;
        if (p->step == 0 && n->subquery.step_ns != 0)
            return exec_fail(q, "unexpected error: runtime error: integer divide by zero");
        break;
    case PROMQL_NODE_NUMBER:
        if (!(p = pnew(q, PK_NUM, n))) return NOMEM(q);
        p->type = PROMQL_TYPE_SCALAR;
        p->num = n->number.val;
        break;
    case PROMQL_NODE_DURATION: {
        double v;
        if ((rc = dur_eval(q, n, &v))) return rc;
        if (!(p = pnew(q, PK_NUM, n))) return NOMEM(q);
        p->type = PROMQL_TYPE_SCALAR;
        p->num = v;
        break;
    }
    case PROMQL_NODE_STRING:
        if (!(p = pnew(q, PK_STR, n))) return NOMEM(q);
        p->type = PROMQL_TYPE_STRING;
        break;
    case PROMQL_NODE_UNARY:
        if (!(p = pnew(q, PK_UNARY, n))) return NOMEM(q);
        p->op = n->unary.op;
        if ((rc = plan_build(q, n->unary.expr, &p->a, depth + 1))) return rc;
        p->type = p->a->type;
        break;
    case PROMQL_NODE_VECTOR_SELECTOR:
        if (!(p = pnew(q, PK_VSEL, n))) return NOMEM(q);
        p->type = PROMQL_TYPE_VECTOR;
        if ((rc = plan_offset(q, &n->vector.offset, &p->orig_offset))) return rc;
        p->offset = p->orig_offset;
        plan_at(q, &n->vector.at, p);
        if ((rc = check_dur(q, p->orig_offset)) || (rc = check_time(q, p->at))) return rc;
        p->anchored = n->vector.anchored;
        p->smoothed = n->vector.smoothed;
        break;
    case PROMQL_NODE_PAREN: /* unreachable: unparen() */
        return plan_build(q, n->paren.expr, out, depth + 1);
    }
    *out = p;
    return 0;
}

static pnode *wrap_stepinv(qctx *q, pnode *c)
{
    pnode *p = pnew(q, PK_STEPINV, c->ast);
    if (!p) return NULL;
    p->type = c->type;
    p->a = c;
    return p;
}

/* Prometheus's preprocessExprHelper: wraps the highest step-invariant
 * subtrees in PK_STEPINV. Returns -ENOMEM, else 0 with the two flags. */
static int plan_stepinv(qctx *q, pnode *n, bool *inv, bool *wrap)
{
    bool li, lw, ri, rw;
    int rc;
    switch (n->kind) {
    case PK_VSEL:
        *inv = *wrap = n->has_at;
        return 0;
    case PK_AGG: return plan_stepinv(q, n->a, inv, wrap);
    case PK_BIN:
        if ((rc = plan_stepinv(q, n->a, &li, &lw)) || (rc = plan_stepinv(q, n->b, &ri, &rw)))
            return rc;
        if (li && ri) {
            *inv = *wrap = true;
            return 0;
        }
        if (lw && !(n->a = wrap_stepinv(q, n->a))) return NOMEM(q);
        if (rw && !(n->b = wrap_stepinv(q, n->b))) return NOMEM(q);
        *inv = *wrap = false;
        return 0;
    case PK_CALL: {
        bool all_inv = !(n->fdef->flags & PROMQL_F_AT_UNSAFE);
        bool ts_special = !strcmp(n->fdef->name, "timestamp");
        bool wraps[64];
        bool *w = n->nargs <= 64 ? wraps : mem_calloc(n->nargs, sizeof *w);
        for (size_t i = 0; i < n->nargs; i++) {
            bool ai;
            if ((rc = plan_stepinv(q, n->args[i], &ai, &w[i]))) {
                if (w != wraps) mem_free(w);
                return rc;
            }
            all_inv = all_inv && ai;
            if (!ai || n->args[i]->kind != PK_VSEL) ts_special = false;
        }
        if (all_inv || ts_special) {
            if (w != wraps) mem_free(w);
            *inv = *wrap = true;
            return 0;
        }
        for (size_t i = 0; i < n->nargs; i++) {
            if (w[i] && !(n->args[i] = wrap_stepinv(q, n->args[i]))) {
                if (w != wraps) mem_free(w);
                return NOMEM(q);
            }
        }
        if (w != wraps) mem_free(w);
        *inv = *wrap = false;
        return 0;
    }
    case PK_MSEL:
        if ((rc = plan_stepinv(q, n->a, &li, &lw))) return rc;
        *inv = li;
        *wrap = false;
        return 0;
    case PK_SUBQ:
        if ((rc = plan_stepinv(q, n->a, &li, &lw))) return rc;
        if (li && !(n->a = wrap_stepinv(q, n->a))) return NOMEM(q);
        *inv = n->has_at;
        *wrap = false;
        return 0;
    case PK_UNARY: return plan_stepinv(q, n->a, inv, wrap);
    case PK_STR:
    case PK_NUM:
        *inv = true;
        *wrap = false;
        return 0;
    case PK_STEPINV: return plan_stepinv(q, n->a, inv, wrap);
    }
    *inv = *wrap = false;
    return 0;
}

/* The children of a plan node, for the tree walks below. */
static size_t pchildren(pnode *n, pnode ***kids, pnode **tmp)
{
    switch (n->kind) {
    case PK_CALL: *kids = n->args; return n->nargs;
    default: break;
    }
    size_t k = 0;
    if (n->a) tmp[k++] = n->a;
    if (n->b) tmp[k++] = n->b;
    *kids = tmp;
    return k;
}

/* The stack of ancestors of the node being visited. */
typedef struct ppath {
    pnode **v;
    size_t n, cap;
} ppath;

/* Prometheus's subqueryTimes: the summed offsets and ranges of the
 * subqueries on the path, reset by a subquery with @. */
static void subquery_times(const ppath *path, int64_t *off, int64_t *rng, bool *has_ts, int64_t *ts)
{
    *off = *rng = 0;
    *has_ts = false;
    for (size_t i = 0; i < path->n; i++) {
        const pnode *p = path->v[i];
        if (p->kind != PK_SUBQ) continue;
        *off += p->orig_offset;
        *rng += p->range;
        if (p->has_at) {
            *off = p->orig_offset;
            *rng = p->range;
            *has_ts = true;
            *ts = p->at;
        }
    }
}

/* getTimeRangesForSelector: the time range a vector selector reads. */
static void plan_window(qctx *q, pnode *n, const ppath *path, int64_t eval_range)
{
    int64_t start = q->qstart, end = q->qend;
    int64_t soff, srng, sts = 0;
    bool has_ts;
    subquery_times(path, &soff, &srng, &has_ts, &sts);
    if (has_ts) start = end = sts;
    if (n->has_at) {
        start = end = n->at;
    } else {
        start = start - soff - srng;
        end -= soff;
    }
    if (eval_range == 0) {
        start -= q->lookback - 1;
        if (n->smoothed) end += q->lookback;
    } else if (n->anchored) {
        start -= q->lookback + eval_range - 1;
    } else if (n->smoothed) {
        start -= q->lookback + eval_range - 1;
        end += q->lookback;
    } else {
        start -= eval_range - 1;
    }
    start -= n->orig_offset;
    end -= n->orig_offset;
    n->sel_mint = start;
    n->sel_maxt = end;
}

static void path_push(ppath *p, pnode *n)
{
    p->v = mem_grow(p->v, sizeof *p->v, p->n + 1, &p->cap);
    p->v[p->n++] = n;
}

static void plan_windows(qctx *q, pnode *n, ppath *path, int64_t eval_range)
{
    if (n->kind == PK_VSEL) {
        plan_window(q, n, path, eval_range);
        return;
    }
    int64_t child_range = n->kind == PK_MSEL ? n->range : 0;
    pnode *tmp[2], **kids;
    size_t k = pchildren(n, &kids, tmp);
    path_push(path, n);
    for (size_t i = 0; i < k; i++)
        plan_windows(q, kids[i], path, child_range);
    path->n--;
}

/* setOffsetForAtModifier: offsets of selectors and subqueries with @,
 * relative to the evaluation start time `t`. The path starts at the node
 * the walk began from. */
static int64_t at_offset(int64_t t, const pnode *n, const ppath *path)
{
    if (!n->has_at) return n->orig_offset;
    int64_t soff, srng, sts = 0;
    bool has_ts;
    subquery_times(path, &soff, &srng, &has_ts, &sts);
    if (has_ts) soff += t - sts;
    return n->orig_offset + (t - n->at) - soff;
}

static void set_offsets(int64_t t, pnode *n, ppath *path)
{
    if (n->kind == PK_VSEL || n->kind == PK_SUBQ) n->offset = at_offset(t, n, path);
    pnode *tmp[2], **kids;
    size_t k = pchildren(n, &kids, tmp);
    path_push(path, n);
    for (size_t i = 0; i < k; i++)
        set_offsets(t, kids[i], path);
    path->n--;
}

static void set_offsets_for_at(int64_t t, pnode *n)
{
    ppath path = {0};
    set_offsets(t, n, &path);
    mem_free(path.v);
}

/* ---- reading series ------------------------------------------------------------------- */

/* Selects the series of `vs` in [mint, maxt]. Their start timestamps are
 * kept only if `want_st` and the query uses them; otherwise each series'
 * st is NULL. */
static int fetch(qctx *q, const pnode *vs, int64_t mint, int64_t maxt, bool want_st, bool want_h,
                 promql_matrix *out)
{
    buf e;
    buf_init(&e, 4096);
    memset(out, 0, sizeof *out);
    const promql_node *a = vs->ast;
    int rc = q->src && q->src->select
                 ? q->src->select(q->src->ctx, a->vector.matchers, a->vector.n_matchers, mint,
                                  maxt, out, &e)
                 : 0;
    if (rc < 0) {
        promql_matrix_cleanup(out);
        qfail(q, PROMQL_ERR_INTERNAL, -EIO, "expanding series: %s",
              e.len ? buf_cstr(&e) : strerror(-rc));
        buf_cleanup(&e);
        return -EIO;
    }
    buf_cleanup(&e);
    if (want_h && q->hist_stats) {
        for (size_t i = 0; i < out->n; i++) {
            promql_series *se = &out->v[i];
            for (size_t k = 1; k < se->nh; k++) {
                promql_fh *h = se->hpts[k].h;
                if (h->hint != PROMQL_FH_UNKNOWN || se->hpts[k - 1].h->hint == PROMQL_FH_GAUGE)
                    continue;
                if (promql_fh_detect_reset(h, se->hpts[k - 1].h)) h->hint = PROMQL_FH_RESET;
            }
        }
    }
    if (!want_h) {
        size_t k = 0;
        for (size_t i = 0; i < out->n; i++) {
            promql_series_free_hists(&out->v[i]);
            if (out->v[i].n)
                out->v[k++] = out->v[i];
            else
                series_free(&out->v[i]);
        }
        out->n = k;
    }
    if (!want_st || !q->use_st) {
        for (size_t i = 0; i < out->n; i++) {
            if (!out->v[i].st) continue;
            mem_free(out->v[i].st);
            out->v[i].st = NULL;
        }
    }
    return 0;
}

/* window_advance for histogram points. */
static void hwindow_advance(const promql_hpoint *p, size_t n, int64_t mint, int64_t maxt,
                            size_t *lo, size_t *hi)
{
    size_t l = *lo, h = *hi;
    if (l > n || (l > 0 && p[l - 1].t > mint)) l = h = 0; /* moved backwards */
    while (l < n && p[l].t <= mint)
        l++;
    if (h < l) h = l;
    while (h < n && p[h].t <= maxt)
        h++;
    while (h > l && p[h - 1].t > maxt)
        h--;
    *lo = l;
    *hi = h;
}

/* Removes staleness markers from a series' points (range selections never
 * see them). */
static void drop_stale(promql_series *s)
{
    size_t k = 0;
    if (s->st) {
        for (size_t i = 0; i < s->n; i++) {
            if (strutil_is_stale_nan(s->pts[i].v)) continue;
            s->st[k] = s->st[i];
            s->pts[k++] = s->pts[i];
        }
    } else {
        for (size_t i = 0; i < s->n; i++) {
            if (strutil_is_stale_nan(s->pts[i].v)) continue;
            s->pts[k++] = s->pts[i];
        }
    }
    s->n = k;
}

/* [lo, hi): the points of pts with mint < t <= maxt. lo/hi are moved
 * forward from their previous values (windows only move forward). */
static void window_advance(const promql_fpoint *pts, size_t n, int64_t mint, int64_t maxt,
                           size_t *lo, size_t *hi)
{
    if (*hi < *lo) *hi = *lo;
    /* Windows may move backwards with negative steps never; but a fresh
     * window (e.g. @) starts at 0. */
    while (*lo < n && pts[*lo].t <= mint)
        (*lo)++;
    if (*hi < *lo) *hi = *lo;
    while (*hi < n && pts[*hi].t <= maxt)
        (*hi)++;
}

static int eval_node(evaluator *ev, pnode *n, promql_matrix *out);

/* ---- rangeEval: per-step evaluation over gathered instant vectors ------------------------ */

typedef struct step_env {
    evaluator *ev;
    int64_t ts;
    size_t nin;
    promql_evec *in;   /* the input vectors of this step */
    uint32_t **sig;    /* per input: matching-signature ordinals aligned with in[i] */
    uint32_t nsigs;
    promql_evec *out;
    promql_lcache *lc; /* labels created by the step function */
} step_env;

typedef int (*step_fn)(step_env *e, void *ctx);

/* Matching signatures (rangeEval with a VectorMatching): on(...) uses the
 * listed labels, ignoring(...) everything but them and __name__. */
static void match_sig(const labels *ls, const promql_vector_matching *vm, buf *out)
{
    buf_reset(out);
    for (uint32_t i = 0; i < ls->n; i++) {
        const label *l = &ls->v[i];
        bool listed = false;
        for (size_t k = 0; k < vm->n_matching && !listed; k++)
            listed = vm->matching_labels[k].len == l->name_len &&
                     memcmp(vm->matching_labels[k].p, l->name, l->name_len) == 0;
        bool take;
        if (vm->on) take = listed;
        else take = !listed && !(l->name_len == 8 && memcmp(l->name, "__name__", 8) == 0);
        if (!take) continue;
        buf_append(out, l->name, l->name_len + 1);
        buf_append(out, l->value, l->value_len + 1);
    }
}

/* Output matrix assembly for range evaluations. */
typedef struct out_acc {
    promql_matrix *m;
    int64_t *last_ts;
    size_t last_cap;
    imap idx;
    bool no_dupe_check; /* topk & co. append without Prometheus's check */
} out_acc;

/* The histogram of an output sample for a result series: moved out when
 * the vector owns it, else copied. */
static promql_fh *take_hist(promql_esample *s)
{
    promql_fh *h = s->h_owned ? s->h : promql_fh_copy(s->h);
    s->h = NULL;
    s->h_owned = false;
    return h;
}

static int out_acc_add(qctx *q, out_acc *a, const promql_esample *s, int64_t ts)
{
    mat_key k = {a->m, s->metric};
    uint64_t h = labels_hash(s->metric);
    int64_t i = imap_get(&a->idx, h, mat_key_eq, &k);
    if (i >= 0) {
        if (a->last_ts[i] == ts && !a->no_dupe_check) return same_labelset_error(q);
    } else {
        i = (int64_t)a->m->n;
        mat_add(a->m, labels_dup(s->metric), s->drop_name);
        a->last_ts = mem_grow(a->last_ts, sizeof *a->last_ts, a->m->n, &a->last_cap);
        imap_put(&a->idx, h, (uint32_t)i);
    }
    a->last_ts[i] = ts;
    if (s->h)
        promql_series_add_hist(&a->m->v[i], ts, take_hist((promql_esample *)s));
    else
        series_add(&a->m->v[i], ts, s->f);
    return 0;
}

static void out_acc_free(out_acc *a)
{
    mem_free(a->last_ts);
    imap_free(&a->idx);
}

typedef struct evec_key {
    const promql_evec *v;
    const labels *ls;
} evec_key;

static bool evec_key_eq(void *ctx, uint32_t idx)
{
    const evec_key *k = ctx;
    return labels_equal(k->v->v[idx].metric, k->ls);
}

/* Vector.ContainsSameLabelset */
static bool evec_has_dupes(const promql_evec *v)
{
    if (v->n < 2) return false;
    if (v->n == 2) return labels_equal(v->v[0].metric, v->v[1].metric);
    imap m;
    imap_init(&m);
    bool dup = false;
    for (size_t i = 0; i < v->n && !dup; i++) {
        evec_key k = {v, v->v[i].metric};
        uint64_t h = labels_hash(v->v[i].metric);
        if (imap_get(&m, h, evec_key_eq, &k) >= 0) dup = true;
        else imap_put(&m, h, (uint32_t)i);
    }
    imap_free(&m);
    return dup;
}

static bool step_takes_hists(step_fn fn, void *ctx);
static int step_count_values(step_env *e, void *ctx);

static int range_eval(evaluator *ev, pnode **exprs, size_t nexprs,
                      const promql_vector_matching *matching, step_fn fn, void *ctx,
                      promql_matrix *out)
{
    qctx *q = ev->q;
    int rc = 0;
    int64_t orig = q->cur;
    promql_matrix *mats = mem_calloc(nexprs ? nexprs : 1, sizeof *mats);
    size_t **cursor = mem_calloc(nexprs ? nexprs : 1, sizeof *cursor);
    size_t **hcursor = mem_calloc(nexprs ? nexprs : 1, sizeof *hcursor);
    uint32_t **ssig = mem_calloc(nexprs ? nexprs : 1, sizeof *ssig); /* per series */
    uint32_t **vsig = mem_calloc(nexprs ? nexprs : 1, sizeof *vsig); /* per gathered sample */
    promql_evec *vecs = mem_calloc(nexprs ? nexprs : 1, sizeof *vecs);
    promql_evec res = {0};
    promql_lcache lc;
    promql_lcache_init(&lc);
    out_acc acc = {out, NULL, 0, {0}, false};
    imap_init(&acc.idx);
    sigtab sigs;
    sigtab_init(&sigs);
    memset(out, 0, sizeof *out);

    for (size_t i = 0; i < nexprs; i++) {
        if (!exprs[i] || exprs[i]->type == PROMQL_TYPE_STRING) continue;
        if ((rc = eval_node(ev, exprs[i], &mats[i]))) goto done;
    }
    if (matching) {
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        for (size_t i = 0; i < nexprs; i++) {
            ssig[i] = mem_calloc(mats[i].n ? mats[i].n : 1, sizeof **ssig);
            vsig[i] = mem_calloc(mats[i].n ? mats[i].n : 1, sizeof **vsig);
            for (size_t s = 0; s < mats[i].n; s++) {
                match_sig(mats[i].v[s].metric, matching, &b);
                ssig[i][s] = sigtab_intern(&sigs, b.data ? b.data : "", b.len, NULL);
            }
        }
        buf_cleanup(&b);
    }
    for (size_t i = 0; i < nexprs; i++) {
        cursor[i] = mem_calloc(mats[i].n ? mats[i].n : 1, sizeof **cursor);
        hcursor[i] = mem_calloc(mats[i].n ? mats[i].n : 1, sizeof **hcursor);
    }
    bool hists = step_takes_hists(fn, ctx);

    int64_t temp = q->cur;
    step_env env = {ev, 0, nexprs, vecs, matching ? vsig : NULL, (uint32_t)sigs.n, &res, &lc};
    for (int64_t ts = ev->start; ts <= ev->end; ts += ev->interval) {
        if ((rc = qcheck(q))) goto done;
        q->cur = temp;
        for (size_t i = 0; i < nexprs; i++) {
            promql_evec *v = &vecs[i];
            v->n = 0;
            for (size_t s = 0; s < mats[i].n; s++) {
                promql_series *se = &mats[i].v[s];
                size_t c = cursor[i][s];
                if (c < se->n && se->pts[c].t == ts) {
                    if (matching) vsig[i][v->n] = ssig[i][s];
                    promql_evec_push(v, se->metric, se->pts[c].v, ts, se->drop_name);
                    cursor[i][s] = c + 1;
                    if ((rc = add_samples(q, 1))) goto done;
                    continue;
                }
                size_t hc = hcursor[i][s];
                if (hc < se->nh && se->hpts[hc].t == ts) {
                    hcursor[i][s] = hc + 1;
                    if (!hists) continue;
                    if (matching) vsig[i][v->n] = ssig[i][s];
                    promql_evec_push_h(v, se->metric, se->hpts[hc].h, false, ts, se->drop_name);
                    if ((rc = add_samples(q, 1))) goto done;
                }
            }
        }
        promql_evec_reset(&res);
        env.ts = ts;
        if ((rc = fn(&env, ctx))) goto done;
        q->cur += (int64_t)res.n;
        temp += (int64_t)res.n;
        if (q->cur > q->max_samples) {
            rc = too_many_samples(q);
            goto done;
        }
        if (ev->start == ev->end) {
            if (!q->delayed && evec_has_dupes(&res)) {
                rc = same_labelset_error(q);
                goto done;
            }
            for (size_t k = 0; k < res.n; k++) {
                promql_series *se = mat_add(out, labels_dup(res.v[k].metric), res.v[k].drop_name);
                if (res.v[k].h)
                    promql_series_add_hist(se, ts, take_hist(&res.v[k]));
                else
                    series_add(se, ts, res.v[k].f);
            }
            break;
        }
        for (size_t k = 0; k < res.n; k++)
            if ((rc = out_acc_add(q, &acc, &res.v[k], ts))) goto done;
    }
done:
    for (size_t i = 0; i < nexprs; i++) {
        promql_matrix_cleanup(&mats[i]);
        mem_free(cursor[i]);
        mem_free(hcursor[i]);
        mem_free(ssig[i]);
        mem_free(vsig[i]);
        promql_evec_free(&vecs[i]);
    }
    mem_free(mats);
    mem_free(cursor);
    mem_free(hcursor);
    mem_free(ssig);
    mem_free(vsig);
    mem_free(vecs);
    promql_evec_free(&res);
    promql_lcache_cleanup(&lc);
    out_acc_free(&acc);
    sigtab_free(&sigs);
    if (rc) {
        promql_matrix_cleanup(out);
        return rc;
    }
    q->cur = orig + mat_total(out);
    return 0;
}

/* ---- selectors -------------------------------------------------------------------------- */

/* The last sample at or before ref, if it is newer than ref - lookback and
 * not a staleness marker (vectorSelectorSingle). *idx is a cursor: the
 * number of points with t <= the previous ref. */
static bool sample_at(const promql_series *s, size_t *idx, int64_t ref, int64_t lookback,
                      promql_fpoint *p)
{
    size_t i = *idx;
    if (i > 0 && i <= s->n && s->pts[i - 1].t > ref) i = 0; /* moved backwards */
    while (i < s->n && s->pts[i].t <= ref)
        i++;
    *idx = i;
    if (i == 0) return false;
    *p = s->pts[i - 1];
    if (p->t <= ref - lookback) return false;
    if (strutil_is_stale_nan(p->v)) return false;
    return true;
}

/* The last histogram point at or before ref if newer than ref - lookback
 * (the float cursor of sample_at, for hpts). */
static const promql_hpoint *hist_at(const promql_series *s, size_t *idx, int64_t ref,
                                    int64_t lookback)
{
    size_t i = *idx;
    if (i > 0 && i <= s->nh && s->hpts[i - 1].t > ref) i = 0;
    while (i < s->nh && s->hpts[i].t <= ref)
        i++;
    *idx = i;
    if (i == 0 || s->hpts[i - 1].t <= ref - lookback) return NULL;
    return &s->hpts[i - 1];
}

/* smoothSeries: a smoothed vector selector takes the sample at the step's
 * time or interpolates linearly between its neighbours (the previous
 * value once no later sample is there). Samples count as Prometheus counts
 * them: the window of each step is held, the output is not counted. */
static int smooth_series(evaluator *ev, pnode *n, promql_matrix *raw, promql_matrix *out)
{
    qctx *q = ev->q;
    int rc = 0;
    int64_t lb = q->lookback;
    for (size_t i = 0; i < raw->n; i++) {
        promql_series *s = &raw->v[i];
        drop_stale(s);
        promql_series ss = {s->metric, NULL, 0, 0, false};
        s->metric = NULL;
        size_t lo = 0, hi = 0;
        int64_t win = 0;
        uint32_t it = 0;
        for (int64_t ts = ev->start; ts <= ev->end; ts += ev->interval) {
            if ((rc = qcheck_every(q, &it))) break;
            int64_t data_ts = ts - n->offset;
            window_advance(s->pts, s->n, data_ts - lb, data_ts + lb, &lo, &hi);
            q->cur += (int64_t)(hi - lo) - win;
            win = (int64_t)(hi - lo);
            if (q->cur > q->max_samples) {
                rc = too_many_samples(q);
                break;
            }
            if (hi == lo) continue;
            const promql_fpoint *w = s->pts + lo;
            size_t wn = hi - lo, a = 0, b = wn;
            while (a < b) { /* first point with t >= data_ts */
                size_t mid = a + (b - a) / 2;
                if (w[mid].t >= data_ts) b = mid;
                else a = mid + 1;
            }
            size_t k = a;
            double v;
            if (k < wn && w[k].t == data_ts) {
                v = w[k].v;
            } else if (k > 0 && k < wn) {
                promql_fpoint p1 = w[k - 1], p2 = w[k];
                v = p1.v + (p2.v - p1.v) * (double)(data_ts - p1.t) / (double)(p2.t - p1.t);
            } else if (k > 0) {
                v = w[k - 1].v;
            } else {
                continue;
            }
            series_add(&ss, ts, v);
        }
        if (ss.n) {
            promql_series *d = mat_add(out, ss.metric, false);
            *d = ss;
        } else {
            series_free(&ss);
        }
        series_free(s);
        if (rc) break;
    }
    return rc;
}

/* evalSeries: one point per step from the latest sample within lookback.
 * `lookup_at` (>= 0 flag) evaluates every step at that fixed time; with
 * `orig_t` the value is the sample's timestamp (info metrics). Takes raw. */
static int eval_series(evaluator *ev, promql_matrix *raw, int64_t offset, bool has_lookup,
                       int64_t lookup, bool orig_t, promql_matrix *out)
{
    qctx *q = ev->q;
    int rc = 0;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < raw->n; i++) {
        promql_series *s = &raw->v[i];
        if ((rc = qcheck(q))) break;
        promql_series ss = {s->metric, NULL, 0, 0, false};
        s->metric = NULL;
        size_t idx = 0, hidx = 0;
        uint32_t it = 0;
        for (int64_t ts = ev->start; ts <= ev->end; ts += ev->interval) {
            if ((rc = qcheck_every(q, &it))) break;
            int64_t look = has_lookup ? lookup : ts;
            promql_fpoint p;
            const promql_hpoint *hp = NULL;
            bool fok = sample_at(s, &idx, look - offset, q->lookback, &p);
            if (s->nh) {
                hp = hist_at(s, &hidx, look - offset, q->lookback);
                /* the newer of the two, a float staleness marker included */
                int64_t ft = idx ? s->pts[idx - 1].t : INT64_MIN;
                if (hp && ft > hp->t) hp = NULL;
                if (hp) fok = false;
            }
            if (!fok && !hp) continue;
            if ((rc = add_samples(q, 1))) break;
            if (hp && !orig_t)
                promql_series_add_hist(&ss, ts, promql_fh_copy(hp->h));
            else
                series_add(&ss, ts, orig_t ? (double)(hp ? hp->t : p.t) : p.v);
        }
        mem_free(s->pts);
        s->pts = NULL;
        s->n = 0;
        promql_series_free_hists(s);
        if (ss.n || ss.nh) {
            promql_series *d = mat_add(out, ss.metric, false);
            *d = ss;
        } else {
            series_free(&ss);
        }
        if (rc) break;
    }
    promql_matrix_cleanup(raw);
    if (rc) promql_matrix_cleanup(out);
    return rc;
}

static int eval_vsel(evaluator *ev, pnode *n, promql_matrix *out)
{
    promql_matrix raw;
    int rc = fetch(ev->q, n, n->sel_mint, n->sel_maxt, false, !n->smoothed, &raw);
    if (rc) return rc;
    if (n->smoothed) {
        memset(out, 0, sizeof *out);
        rc = smooth_series(ev, n, &raw, out);
        promql_matrix_cleanup(&raw);
        if (rc) promql_matrix_cleanup(out);
        return rc;
    }
    return eval_series(ev, &raw, n->offset, false, 0, false, out);
}

/* extendFloats: the window of an anchored or smoothed range selector with
 * points at its two boundaries. Returns the new point count. */
static size_t extend_floats(promql_fpoint *f, size_t n, int64_t mint, int64_t maxt, bool smoothed,
                            promql_fpoint **outp)
{
    *outp = NULL;
    if (n == 0) return 0;
    ptrdiff_t last = (ptrdiff_t)n - 1;
    ptrdiff_t lo = 0, hi = last;
    while (lo < hi) {
        ptrdiff_t mid = lo + (hi - lo) / 2;
        if (f[mid].t > mint) hi = mid;
        else lo = mid + 1;
    }
    ptrdiff_t first = lo - 1 > 0 ? lo - 1 : 0;
    if (smoothed) {
        lo = 0;
        hi = last;
        while (lo < hi) {
            ptrdiff_t mid = lo + (hi - lo) / 2;
            if (f[mid].t >= maxt) hi = mid;
            else lo = mid + 1;
        }
        last = lo;
    }
    if (f[last].t <= mint) return 0;
    double left = f[first].v, right = f[last].v;
    if (smoothed && f[first].t < mint && first + 1 < (ptrdiff_t)n) {
        promql_fpoint a = f[first], b = f[first + 1];
        left = a.v + (b.v - a.v) * (double)(mint - a.t) / (double)(b.t - a.t);
    }
    if (smoothed && last > 0 && f[last].t > maxt) {
        promql_fpoint a = f[last - 1], b = f[last];
        right = a.v + (b.v - a.v) * (double)(maxt - a.t) / (double)(b.t - a.t);
    }
    if (f[first].t <= mint) first++;
    if (f[last].t >= maxt) last--;
    ptrdiff_t cnt = last - first + 1;
    if (cnt < 0) cnt = 0;
    promql_fpoint *o = mem_malloc(((size_t)cnt + 2) * sizeof *o);
    o[0].t = mint;
    o[0].v = left;
    if (cnt) memcpy(o + 1, f + first, (size_t)cnt * sizeof *o);
    o[cnt + 1].t = maxt;
    o[cnt + 1].v = right;
    *outp = o;
    return (size_t)cnt + 2;
}

/* A range selector evaluated on its own (instant queries only). */
static int eval_msel(evaluator *ev, pnode *n, promql_matrix *out)
{
    qctx *q = ev->q;
    memset(out, 0, sizeof *out);
    if (ev->start != ev->end)
        return qfail(q, PROMQL_ERR_INTERNAL, -EINVAL, "cannot do range evaluation of matrix selector");
    pnode *vs = n->a;
    int64_t maxt = ev->start - vs->offset, mint = maxt - n->range;
    int64_t mmint = mint, mmaxt = maxt;
    if (vs->anchored) {
        mint -= q->lookback;
    } else if (vs->smoothed) {
        mint -= q->lookback;
        maxt += q->lookback;
    }
    promql_matrix raw;
    bool plain = !vs->anchored && !vs->smoothed; /* histograms: plain ranges only so far */
    int rc = fetch(q, vs, vs->sel_mint, vs->sel_maxt, false, plain, &raw);
    if (rc) return rc;
    for (size_t i = 0; i < raw.n; i++) {
        promql_series *s = &raw.v[i];
        if ((rc = qcheck(q))) break;
        drop_stale(s);
        size_t lo = 0, hi = 0, hlo = 0, hhi = 0;
        if (mint != maxt) window_advance(s->pts, s->n, mint, maxt, &lo, &hi);
        if (mint != maxt && s->nh) hwindow_advance(s->hpts, s->nh, mint, maxt, &hlo, &hhi);
        if ((rc = add_samples(q, (int64_t)(hi - lo + hhi - hlo)))) break;
        promql_fpoint *pts = NULL;
        size_t np = hi - lo;
        if (!s->pts) {
            np = 0;
        } else if (vs->anchored || vs->smoothed) {
            np = extend_floats(s->pts + lo, hi - lo, mmint, mmaxt, vs->smoothed, &pts);
        } else if (np) {
            pts = mem_malloc(np * sizeof *pts);
            memcpy(pts, s->pts + lo, np * sizeof *pts);
        }
        if (np || hhi > hlo) {
            promql_series *d = mat_add(out, s->metric, false);
            s->metric = NULL;
            d->pts = pts;
            d->n = d->cap = np;
            for (size_t k = hlo; k < hhi; k++) {
                promql_series_add_hist(d, s->hpts[k].t, s->hpts[k].h);
                s->hpts[k].h = NULL;
            }
        } else {
            mem_free(pts);
        }
    }
    promql_matrix_cleanup(&raw);
    if (rc) promql_matrix_cleanup(out);
    return rc;
}

/* ---- subqueries and step-invariant subtrees --------------------------------------------- */

static int run_subquery(evaluator *ev, pnode *n, promql_matrix *out)
{
    qctx *q = ev->q;
    int64_t offset = n->offset, range = n->range;
    int64_t parent_end = ev->end;
    if (ev->interval > 0) parent_end = ev->start + ((ev->end - ev->start) / ev->interval) * ev->interval;
    int64_t interval = n->step ? n->step : q->default_step;
    if (interval <= 0) return exec_fail(q, "subquery step must be positive");
    int64_t base = ev->start - offset - range;
    int64_t start = interval * (base / interval);
    if (start <= base) start += interval;
    evaluator child = {q, start, parent_end - offset, interval};
    if (start != ev->start) set_offsets_for_at(start, n->a);
    return eval_node(&child, n->a, out);
}

static int eval_stepinv(evaluator *ev, pnode *n, promql_matrix *out)
{
    qctx *q = ev->q;
    evaluator child = {q, ev->start, ev->start, ev->interval};
    int rc = eval_node(&child, n->a, out);
    if (rc) return rc;
    if (n->a->kind == PK_MSEL || n->a->kind == PK_SUBQ) return 0;
    for (size_t i = 0; i < out->n; i++) {
        promql_series *s = &out->v[i];
        if (s->n + s->nh != 1) {
            promql_matrix_cleanup(out);
            return qfail(q, PROMQL_ERR_INTERNAL, -EINVAL, "unexpected number of samples");
        }
        if (s->nh) {
            for (int64_t ts = ev->start + ev->interval; ts <= ev->end; ts += ev->interval) {
                promql_series_add_hist(s, ts, promql_fh_copy(s->hpts[0].h));
                if ((rc = add_samples(q, 1))) {
                    promql_matrix_cleanup(out);
                    return rc;
                }
            }
            continue;
        }
        double v = s->pts[0].v;
        for (int64_t ts = ev->start + ev->interval; ts <= ev->end; ts += ev->interval) {
            series_add(s, ts, v);
            if ((rc = add_samples(q, 1))) {
                promql_matrix_cleanup(out);
                return rc;
            }
        }
    }
    return 0;
}

/* ---- delayed name removal and collisions --------------------------------------------- */

static int cmp_point_t(const void *a, const void *b)
{
    int64_t x = ((const promql_fpoint *)a)->t, y = ((const promql_fpoint *)b)->t;
    return x < y ? -1 : x > y;
}

/* mergeSeriesWithSameLabelset: series whose label sets became equal are
 * merged if their timestamps do not collide. */
static int cmp_hpoint_t(const void *a, const void *b)
{
    int64_t x = ((const promql_hpoint *)a)->t, y = ((const promql_hpoint *)b)->t;
    return x < y ? -1 : x > y;
}

static int merge_same_labelsets(qctx *q, promql_matrix *m)
{
    if (m->n <= 1) return 0;
    imap idx;
    imap_init(&idx);
    size_t *target = mem_malloc(m->n * sizeof *target);
    bool any = false;
    for (size_t i = 0; i < m->n; i++) {
        mat_key k = {m, m->v[i].metric};
        int64_t j = imap_get(&idx, labels_hash(m->v[i].metric), mat_key_eq, &k);
        if (j >= 0) {
            target[i] = (size_t)j;
            any = true;
        } else {
            target[i] = i;
            imap_put(&idx, labels_hash(m->v[i].metric), (uint32_t)i);
        }
    }
    imap_free(&idx);
    int rc = 0;
    if (any) {
        for (size_t i = 0; i < m->n; i++) {
            if (target[i] == i) continue;
            promql_series *d = &m->v[target[i]], *s = &m->v[i];
            for (size_t k = 0; k < s->n; k++)
                series_add(d, s->pts[k].t, s->pts[k].v);
            for (size_t k = 0; k < s->nh; k++) {
                promql_series_add_hist(d, s->hpts[k].t, s->hpts[k].h);
                s->hpts[k].h = NULL;
            }
            series_free(s);
        }
        size_t k = 0;
        for (size_t i = 0; i < m->n; i++) {
            if (target[i] != i) continue;
            promql_series *s = &m->v[i];
            qsort(s->pts, s->n, sizeof *s->pts, cmp_point_t);
            for (size_t j = 1; j < s->n; j++)
                if (s->pts[j].t == s->pts[j - 1].t) rc = -1;
            if (s->nh) {
                qsort(s->hpts, s->nh, sizeof *s->hpts, cmp_hpoint_t);
                for (size_t j = 1; j < s->nh; j++)
                    if (s->hpts[j].t == s->hpts[j - 1].t) rc = -1;
                for (size_t j = 0, f = 0; j < s->nh && s->n;
                     j++) { /* float and histogram at one t */
                    while (f < s->n && s->pts[f].t < s->hpts[j].t)
                        f++;
                    if (f < s->n && s->pts[f].t == s->hpts[j].t) rc = -1;
                }
            }
            m->v[k++] = *s;
        }
        m->n = k;
    }
    mem_free(target);
    if (rc) return same_labelset_error(q);
    return 0;
}

/* Drops __name__ (and __type__, __unit__) from the series marked for it. */
static void drop_marked_names(promql_matrix *m)
{
    promql_lcache lc;
    promql_lcache_init(&lc);
    for (size_t i = 0; i < m->n; i++) {
        if (!m->v[i].drop_name) continue;
        const labels *d = promql_drop_metric_name(&lc, m->v[i].metric);
        if (d != m->v[i].metric) {
            labels *c = labels_dup(d);
            labels_free(m->v[i].metric);
            m->v[i].metric = c;
        }
    }
    promql_lcache_cleanup(&lc);
}

/* Without delayed name removal: drops the names now (series labels). */
static void drop_names_now(promql_series *s)
{
    promql_lcache lc;
    promql_lcache_init(&lc);
    const labels *d = promql_drop_metric_name(&lc, s->metric);
    if (d != s->metric) {
        labels *c = labels_dup(d);
        labels_free(s->metric);
        s->metric = c;
    }
    promql_lcache_cleanup(&lc);
}

/* ---- unary and binary operators ---------------------------------------------------------- */

static int eval_unary(evaluator *ev, pnode *n, promql_matrix *out)
{
    int rc = eval_node(ev, n->a, out);
    if (rc || n->op != PROMQL_OP_SUB) return rc;
    for (size_t i = 0; i < out->n; i++) {
        promql_series *s = &out->v[i];
        if (!ev->q->delayed) drop_names_now(s);
        s->drop_name = true;
        for (size_t k = 0; k < s->n; k++)
            s->pts[k].v = -s->pts[k].v;
        for (size_t k = 0; k < s->nh; k++) {
            promql_fh_scale(s->hpts[k].h, -1, false);
            s->hpts[k].h->hint = PROMQL_FH_GAUGE;
        }
    }
    if (!ev->q->delayed && (rc = merge_same_labelsets(ev->q, out))) promql_matrix_cleanup(out);
    return rc;
}

static double btos(bool b)
{
    return b ? 1 : 0;
}

static double scalar_binop(enum promql_op op, double l, double r)
{
    switch (op) {
    case PROMQL_OP_ADD: return l + r;
    case PROMQL_OP_SUB: return l - r;
    case PROMQL_OP_MUL: return l * r;
    case PROMQL_OP_DIV: return l / r;
    case PROMQL_OP_POW: return promql_pow(l, r);
    case PROMQL_OP_MOD: return fmod(l, r);
    case PROMQL_OP_EQLC: return btos(l == r);
    case PROMQL_OP_NEQ: return btos(l != r);
    case PROMQL_OP_GTR: return btos(l > r);
    case PROMQL_OP_LSS: return btos(l < r);
    case PROMQL_OP_GTE: return btos(l >= r);
    case PROMQL_OP_LTE: return btos(l <= r);
    case PROMQL_OP_ATAN2: return atan2(l, r);
    default: return NAN;
    }
}

/* vectorElemBinop for two floats: the value and whether to keep it; the
 * trim operators are not defined on floats (*incompatible). */
static double elem_binop(enum promql_op op, double l, double r, bool *keep, bool *incompatible)
{
    *keep = true;
    *incompatible = false;
    switch (op) {
    case PROMQL_OP_EQLC: *keep = l == r; return l;
    case PROMQL_OP_NEQ: *keep = l != r; return l;
    case PROMQL_OP_GTR: *keep = l > r; return l;
    case PROMQL_OP_LSS: *keep = l < r; return l;
    case PROMQL_OP_GTE: *keep = l >= r; return l;
    case PROMQL_OP_LTE: *keep = l <= r; return l;
    case PROMQL_OP_TRIM_UPPER:
    case PROMQL_OP_TRIM_LOWER:
        *keep = false;
        *incompatible = true;
        return 0;
    default: return scalar_binop(op, l, r);
    }
}

static bool changes_metric_schema(enum promql_op op)
{
    switch (op) {
    case PROMQL_OP_ADD:
    case PROMQL_OP_SUB:
    case PROMQL_OP_DIV:
    case PROMQL_OP_MUL:
    case PROMQL_OP_POW:
    case PROMQL_OP_MOD:
    case PROMQL_OP_ATAN2: return true;
    default: return false;
    }
}

static void incompatible_info(qctx *q, const pnode *n)
{
    const char *op = promql_op_name(n->op);
    promql_anno_add(&q->anno, PROMQL_ANNO_INFO, n->ast->pos.start,
                    "incompatible sample types encountered for binary operator \"%s\": float %s float",
                    op, op);
}

/* Pushes an input sample as it is (a histogram borrowed from the input). */
static void push_same(promql_evec *out, const promql_esample *x, int64_t ts)
{
    if (x->h)
        promql_evec_push_h(out, x->metric, x->h, false, ts, x->drop_name);
    else
        promql_evec_push(out, x->metric, x->f, ts, x->drop_name);
}

static void binop_types_info(qctx *q, const pnode *n, bool lh, bool rh)
{
    const char *op = promql_op_name(n->op);
    promql_anno_add(&q->anno, PROMQL_ANNO_INFO, n->ast->pos.start,
                    "incompatible sample types encountered for binary operator \"%s\": %s %s %s",
                    op, lh ? "histogram" : "float", op, rh ? "histogram" : "float");
}

/* vectorElemBinop when a histogram is involved (hl or hr set). Returns
 * keep; the result is *v or *hout (owned when *owned). */
static bool hist_binop(qctx *q, const pnode *n, double fl, double fr, const promql_fh *hl,
                       const promql_fh *hr, double *v, promql_fh **hout, bool *owned)
{
    enum promql_op op = n->op;
    uint32_t pos = n->ast->pos.start;
    *v = 0;
    *hout = NULL;
    *owned = true;
    if (!hl) {
        if (op == PROMQL_OP_MUL) {
            *hout = promql_fh_copy(hr);
            promql_fh_scale(*hout, fl, false);
            promql_fh_compact(*hout);
            return true;
        }
        binop_types_info(q, n, false, true);
        return false;
    }
    if (!hr) {
        if (op == PROMQL_OP_TRIM_UPPER || op == PROMQL_OP_TRIM_LOWER) {
            *hout = promql_fh_copy(hl);
            promql_fh_trim(*hout, fr, op == PROMQL_OP_TRIM_UPPER);
            return true;
        }
        if (op == PROMQL_OP_MUL || op == PROMQL_OP_DIV) {
            *hout = promql_fh_copy(hl);
            promql_fh_scale(*hout, fr, op == PROMQL_OP_DIV);
            promql_fh_compact(*hout);
            return true;
        }
        binop_types_info(q, n, true, false);
        return false;
    }
    switch (op) {
    case PROMQL_OP_ADD:
    case PROMQL_OP_SUB: {
        promql_fh *r = promql_fh_copy(hl);
        bool coll = false, rec = false;
        if (promql_fh_add(r, hr, op == PROMQL_OP_SUB, &coll, &rec) < 0) {
            promql_fh_free(r);
            promql_anno_add(&q->anno, PROMQL_ANNO_WARNING, pos,
                            "incompatible bucket layout encountered for binary operator %s",
                            promql_op_name(op));
            return false;
        }
        const char *what = op == PROMQL_OP_ADD ? "addition" : "subtraction";
        if (op == PROMQL_OP_SUB) r->hint = PROMQL_FH_GAUGE;
        if (coll)
            promql_anno_add(&q->anno, PROMQL_ANNO_WARNING, pos,
                            "conflicting counter resets during histogram %s", what);
        if (rec)
            promql_anno_add(&q->anno, PROMQL_ANNO_INFO, pos,
                            "mismatched custom buckets were reconciled during %s", what);
        promql_fh_compact(r);
        *hout = r;
        return true;
    }
    case PROMQL_OP_EQLC:
    case PROMQL_OP_NEQ:
        *hout = (promql_fh *)hl;
        *owned = false;
        return promql_fh_equal(hl, hr) == (op == PROMQL_OP_EQLC);
    default:
        binop_types_info(q, n, true, true);
        return false;
    }
}

typedef struct bin_ctx {
    pnode *n;
    bool swap; /* scalar on the left */
    /* vector matching state */
    const promql_vector_matching *vm;
    const promql_esample **right; /* by signature */
    uint64_t *right_stamp, *matched_stamp;
    uint32_t *matched_count;
    size_t nsig;
    uint64_t stamp;
    imap result_cache; /* (lhs, rhs) -> labels */
    const labels **rc_l, **rc_r, **rc_v;
    size_t rc_n, rc_cap;
    imap inserted; /* many-to-one: (sig, metric) inserted this step */
    uint32_t *ins_sig;
    const labels **ins_metric;
    size_t ins_n, ins_cap;
    labels_builder lb;
} bin_ctx;

static int step_scalar_scalar(step_env *e, void *ctx)
{
    bin_ctx *b = ctx;
    double l = e->in[0].n ? e->in[0].v[0].f : NAN, r = e->in[1].n ? e->in[1].v[0].f : NAN;
    promql_evec_push(e->out, promql_empty_labels(), scalar_binop(b->n->op, l, r), e->ts, false);
    return 0;
}

static int step_vector_scalar(step_env *e, void *ctx)
{
    bin_ctx *b = ctx;
    qctx *q = e->ev->q;
    const pnode *n = b->n;
    const promql_evec *vec = b->swap ? &e->in[1] : &e->in[0];
    const promql_evec *sc = b->swap ? &e->in[0] : &e->in[1];
    double s = sc->n ? sc->v[0].f : NAN;
    bool ret_bool = n->ast->binary.return_bool;
    bool incompatible_seen = false;
    for (size_t i = 0; i < vec->n; i++) {
        const promql_esample *x = &vec->v[i];
        double lf = x->f, rf = s;
        if (b->swap) {
            lf = s;
            rf = x->f;
        }
        if (x->h) {
            double v;
            promql_fh *h;
            bool owned;
            bool keep = hist_binop(q, n, lf, rf, b->swap ? NULL : x->h, b->swap ? x->h : NULL, &v,
                                   &h, &owned);
            if (!keep) continue; /* incompatible: no result, even with bool */
            const labels *m = x->metric;
            bool drop = x->drop_name;
            if (changes_metric_schema(n->op) || ret_bool) {
                if (!q->delayed) m = promql_drop_metric_name(e->lc, m);
                drop = true;
            }
            promql_evec_push_h(e->out, m, h, owned, e->ts, drop);
            continue;
        }
        bool keep, inc;
        double v = elem_binop(n->op, lf, rf, &keep, &inc);
        if (inc) {
            incompatible_seen = true;
            continue;
        }
        if (promql_op_is_comparison(n->op) && b->swap) v = rf;
        if (ret_bool) {
            v = keep ? 1 : 0;
            keep = true;
        }
        if (!keep) continue;
        const labels *m = x->metric;
        bool drop = x->drop_name;
        if (changes_metric_schema(n->op) || ret_bool) {
            if (!q->delayed) m = promql_drop_metric_name(e->lc, m);
            drop = true;
        }
        promql_evec_push(e->out, m, v, e->ts, drop);
    }
    if (incompatible_seen) incompatible_info(q, n);
    return 0;
}

static int step_and(step_env *e, void *ctx)
{
    bin_ctx *b = ctx;
    const promql_evec *l = &e->in[0], *r = &e->in[1];
    if (!l->n || !r->n) return 0;
    b->stamp++;
    for (size_t j = 0; j < r->n; j++)
        b->right_stamp[e->sig[1][j]] = b->stamp;
    for (size_t i = 0; i < l->n; i++)
        if (b->right_stamp[e->sig[0][i]] == b->stamp) push_same(e->out, &l->v[i], e->ts);
    return 0;
}

static int step_or(step_env *e, void *ctx)
{
    bin_ctx *b = ctx;
    const promql_evec *l = &e->in[0], *r = &e->in[1];
    b->stamp++;
    for (size_t i = 0; i < l->n; i++) {
        b->right_stamp[e->sig[0][i]] = b->stamp;
        push_same(e->out, &l->v[i], e->ts);
    }
    for (size_t j = 0; j < r->n; j++)
        if (b->right_stamp[e->sig[1][j]] != b->stamp) push_same(e->out, &r->v[j], e->ts);
    return 0;
}

static int step_unless(step_env *e, void *ctx)
{
    bin_ctx *b = ctx;
    const promql_evec *l = &e->in[0], *r = &e->in[1];
    b->stamp++;
    for (size_t j = 0; j < r->n; j++)
        b->right_stamp[e->sig[1][j]] = b->stamp;
    for (size_t i = 0; i < l->n; i++)
        if (!r->n || b->right_stamp[e->sig[0][i]] != b->stamp) push_same(e->out, &l->v[i], e->ts);
    return 0;
}

static bool name_listed(const promql_str *names, size_t n, const char *name, size_t len)
{
    for (size_t k = 0; k < n; k++)
        if (names[k].len == len && memcmp(names[k].p, name, len) == 0) return true;
    return false;
}

/* labels.MatchLabels(on, names...) */
static labels *match_labels(const labels *ls, const promql_vector_matching *vm)
{
    labels_builder b;
    labels_builder_init(&b);
    for (uint32_t i = 0; i < ls->n; i++) {
        const label *l = &ls->v[i];
        bool listed = name_listed(vm->matching_labels, vm->n_matching, l->name, l->name_len);
        bool take = vm->on ? listed
                           : !listed && !(l->name_len == 8 && !memcmp(l->name, "__name__", 8));
        if (take) labels_builder_add(&b, l->name, l->name_len, l->value, l->value_len);
    }
    labels *r = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return r;
}

typedef struct pair_key {
    const bin_ctx *b;
    const labels *l, *r;
} pair_key;

static bool pair_eq(void *ctx, uint32_t idx)
{
    const pair_key *k = ctx;
    return k->b->rc_l[idx] == k->l && k->b->rc_r[idx] == k->r;
}

static bool is_meta_name(const label *l)
{
    return l->name_len == 8 &&
           (!memcmp(l->name, "__name__", 8) || !memcmp(l->name, "__type__", 8) ||
            !memcmp(l->name, "__unit__", 8));
}

/* resultMetric: the labels of a vector-vector binary operation's result. */
static const labels *result_metric(bin_ctx *b, step_env *e, const labels *lhs, const labels *rhs,
                                   bool drop_name)
{
    pair_key k = {b, lhs, rhs};
    uint64_t h = (uint64_t)(uintptr_t)lhs * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)rhs;
    int64_t i = imap_get(&b->result_cache, h, pair_eq, &k);
    if (i >= 0) return b->rc_v[i];
    const promql_vector_matching *vm = b->vm;
    labels_builder *lb = &b->lb;
    labels_builder_reset(lb);
    bool del_meta = drop_name || changes_metric_schema(b->n->op);
    for (uint32_t j = 0; j < lhs->n; j++) {
        const label *l = &lhs->v[j];
        if (del_meta && is_meta_name(l)) continue;
        if (vm->card == PROMQL_CARD_ONE_TO_ONE) {
            bool listed = name_listed(vm->matching_labels, vm->n_matching, l->name, l->name_len);
            if (vm->on ? !listed : listed) continue;
        }
        labels_builder_add(lb, l->name, l->name_len, l->value, l->value_len);
    }
    for (size_t j = 0; j < vm->n_include; j++) {
        size_t vl;
        const char *v = labels_get(rhs, vm->include[j].p, vm->include[j].len, &vl);
        if (v && vl) labels_builder_set(lb, vm->include[j].p, vm->include[j].len, v, vl);
        else labels_builder_del(lb, vm->include[j].p, vm->include[j].len);
    }
    const labels *r = promql_lcache_put(e->lc, labels_builder_finish(lb, NULL));
    if (b->rc_n == b->rc_cap) {
        size_t cap = b->rc_cap;
        b->rc_l = mem_grow(b->rc_l, sizeof *b->rc_l, b->rc_n + 1, &cap);
        b->rc_r = mem_realloc(b->rc_r, cap * sizeof *b->rc_r);
        b->rc_v = mem_realloc(b->rc_v, cap * sizeof *b->rc_v);
        b->rc_cap = cap;
    }
    b->rc_l[b->rc_n] = lhs;
    b->rc_r[b->rc_n] = rhs;
    b->rc_v[b->rc_n] = r;
    imap_put(&b->result_cache, h, (uint32_t)b->rc_n);
    b->rc_n++;
    return r;
}

typedef struct ins_key {
    const bin_ctx *b;
    uint32_t sig;
    const labels *m;
} ins_key;

static bool ins_eq(void *ctx, uint32_t idx)
{
    const ins_key *k = ctx;
    return k->b->ins_sig[idx] == k->sig && labels_equal(k->b->ins_metric[idx], k->m);
}

static int do_binop(bin_ctx *b, step_env *e, const promql_esample *ls, const promql_esample *rs,
                    uint32_t sig, bool *incompatible)
{
    qctx *q = e->ev->q;
    const promql_vector_matching *vm = b->vm;
    bool ret_bool = b->n->ast->binary.return_bool;
    double fl = ls->f, fr = rs->f;
    if (vm->card == PROMQL_CARD_ONE_TO_MANY) {
        fl = rs->f;
        fr = ls->f;
    }
    const promql_fh *hl = ls->h, *hr = rs->h;
    if (vm->card == PROMQL_CARD_ONE_TO_MANY) {
        hl = rs->h;
        hr = ls->h;
    }
    bool keep, inc = false;
    double v;
    promql_fh *hv = NULL;
    bool howned = false;
    if (hl || hr) {
        keep = hist_binop(q, b->n, fl, fr, hl, hr, &v, &hv, &howned);
        /* an error (only == and != between histograms give a result
         * pointer when not kept): nothing, before matching is recorded */
        if (!keep && !hv) return 0;
    } else {
        v = elem_binop(b->n->op, fl, fr, &keep, &inc);
    }
    if (inc) *incompatible = true;
    if (ret_bool) {
        v = keep ? 1 : 0;
        if (howned) promql_fh_free(hv);
        hv = NULL;
    }
    const labels *metric = result_metric(b, e, ls->metric, rs->metric, !q->delayed && ret_bool);
    if (vm->card == PROMQL_CARD_ONE_TO_ONE) {
        if (b->matched_stamp[sig] == b->stamp)
            return exec_fail(q, "multiple matches for labels: many-to-one matching must be "
                                "explicit (group_left/group_right)");
        b->matched_stamp[sig] = b->stamp;
    } else {
        ins_key k = {b, sig, metric};
        uint64_t h = labels_hash(metric) ^ ((uint64_t)sig * 0x9E3779B97F4A7C15ULL);
        if (imap_get(&b->inserted, h, ins_eq, &k) >= 0)
            return exec_fail(q, "multiple matches for labels: grouping labels must ensure unique "
                                "matches");
        if (b->ins_n == b->ins_cap) {
            size_t cap = b->ins_cap;
            b->ins_sig = mem_grow(b->ins_sig, sizeof *b->ins_sig, b->ins_n + 1, &cap);
            b->ins_metric = mem_realloc(b->ins_metric, cap * sizeof *b->ins_metric);
            b->ins_cap = cap;
        }
        b->ins_sig[b->ins_n] = sig;
        b->ins_metric[b->ins_n] = metric;
        imap_put(&b->inserted, h, (uint32_t)b->ins_n);
        b->ins_n++;
        if (b->matched_stamp[sig] != b->stamp) {
            b->matched_stamp[sig] = b->stamp;
            b->matched_count[sig] = 0;
        }
        b->matched_count[sig]++;
    }
    if (!keep && !ret_bool) {
        if (hv && howned) promql_fh_free(hv);
        return 0;
    }
    if (hv)
        promql_evec_push_h(e->out, metric, hv, howned, e->ts, ret_bool);
    else
        promql_evec_push(e->out, metric, v, e->ts, ret_bool);
    return 0;
}

static int step_vector_vector(step_env *e, void *ctx)
{
    bin_ctx *b = ctx;
    qctx *q = e->ev->q;
    const promql_vector_matching *vm = b->vm;
    const promql_evec *lhs = &e->in[0], *rhs = &e->in[1];
    const uint32_t *lsig = e->sig[0], *rsig = e->sig[1];
    if ((!lhs->n && !rhs->n) || ((!lhs->n || !rhs->n) && !vm->has_fill_lhs && !vm->has_fill_rhs))
        return 0;
    if (vm->card == PROMQL_CARD_ONE_TO_MANY) {
        const promql_evec *t = lhs;
        lhs = rhs;
        rhs = t;
        const uint32_t *ts = lsig;
        lsig = rsig;
        rsig = ts;
    }
    b->stamp++;
    imap_clear(&b->inserted);
    b->ins_n = 0;
    for (size_t j = 0; j < rhs->n; j++) {
        uint32_t s = rsig[j];
        if (b->right_stamp[s] == b->stamp) {
            const promql_esample *dup = b->right[s];
            const promql_esample *rs = &rhs->v[j];
            labels *ml = match_labels(rs->metric, vm);
            buf d1, d2, g;
            buf_init(&d1, BUF_UNLIMITED);
            buf_init(&d2, BUF_UNLIMITED);
            buf_init(&g, BUF_UNLIMITED);
            labels_format(rs->metric, &d1);
            labels_format(dup->metric, &d2);
            labels_format(ml, &g);
            labels_free(ml);
            if (strcmp(buf_cstr(&d1), buf_cstr(&d2)) > 0) {
                buf t = d1;
                d1 = d2;
                d2 = t;
            }
            exec_fail(q,
                      "found duplicate series for the match group %s on the %s hand-side of the "
                      "operation: [%s, %s];many-to-many matching not allowed: matching labels "
                      "must be unique on one side",
                      buf_cstr(&g), vm->card == PROMQL_CARD_ONE_TO_MANY ? "left" : "right",
                      buf_cstr(&d1), buf_cstr(&d2));
            buf_cleanup(&d1);
            buf_cleanup(&d2);
            buf_cleanup(&g);
            return -EINVAL;
        }
        b->right[s] = &rhs->v[j];
        b->right_stamp[s] = b->stamp;
    }
    bool incompatible = false;
    int rc;
    for (size_t i = 0; i < lhs->n; i++) {
        uint32_t s = lsig[i];
        promql_esample fill;
        memset(&fill, 0, sizeof fill);
        const promql_esample *rs;
        if (b->right_stamp[s] == b->stamp) {
            rs = b->right[s];
        } else {
            if (!vm->has_fill_rhs) continue;
            fill.metric = promql_lcache_put(e->lc, match_labels(lhs->v[i].metric, vm));
            fill.f = vm->fill_rhs;
            fill.t = e->ts;
            fill.drop_name = false;
            rs = &fill;
        }
        if ((rc = do_binop(b, e, &lhs->v[i], rs, s, &incompatible))) return rc;
    }
    if (vm->has_fill_lhs) {
        for (size_t j = 0; j < rhs->n; j++) {
            uint32_t s = rsig[j];
            bool matched = vm->card == PROMQL_CARD_ONE_TO_ONE
                               ? b->matched_stamp[s] == b->stamp
                               : b->matched_stamp[s] == b->stamp && b->matched_count[s] > 0;
            if (matched) continue;
            promql_esample fill;
            memset(&fill, 0, sizeof fill);
            fill.metric = promql_lcache_put(e->lc, match_labels(rhs->v[j].metric, vm));
            fill.f = vm->fill_lhs;
            fill.t = e->ts;
            fill.drop_name = false;
            if ((rc = do_binop(b, e, &fill, &rhs->v[j], s, &incompatible))) return rc;
        }
    }
    if (incompatible) incompatible_info(q, b->n);
    return 0;
}

static void bin_ctx_free(bin_ctx *b)
{
    mem_free(b->right);
    mem_free(b->right_stamp);
    mem_free(b->matched_stamp);
    mem_free(b->matched_count);
    imap_free(&b->result_cache);
    mem_free(b->rc_l);
    mem_free(b->rc_r);
    mem_free(b->rc_v);
    imap_free(&b->inserted);
    mem_free(b->ins_sig);
    mem_free(b->ins_metric);
    labels_builder_cleanup(&b->lb);
}

/* Sized on the first step, once the number of signatures is known. */
static int step_vv_dispatch(step_env *e, void *ctx)
{
    bin_ctx *b = ctx;
    if (!b->right_stamp) {
        size_t n = e->nsigs ? e->nsigs : 1;
        b->nsig = n;
        b->right = mem_calloc(n, sizeof *b->right);
        b->right_stamp = mem_calloc(n, sizeof *b->right_stamp);
        b->matched_stamp = mem_calloc(n, sizeof *b->matched_stamp);
        b->matched_count = mem_calloc(n, sizeof *b->matched_count);
    }
    switch (b->n->op) {
    case PROMQL_OP_LAND: return step_and(e, ctx);
    case PROMQL_OP_LOR: return step_or(e, ctx);
    case PROMQL_OP_LUNLESS: return step_unless(e, ctx);
    default: return step_vector_vector(e, ctx);
    }
}

static int eval_binary(evaluator *ev, pnode *n, promql_matrix *out)
{
    bin_ctx b;
    memset(&b, 0, sizeof b);
    b.n = n;
    imap_init(&b.result_cache);
    imap_init(&b.inserted);
    labels_builder_init(&b.lb);
    pnode *exprs[2] = {n->a, n->b};
    enum promql_type lt = n->a->type, rt = n->b->type;
    int rc;
    if (lt == PROMQL_TYPE_SCALAR && rt == PROMQL_TYPE_SCALAR) {
        rc = range_eval(ev, exprs, 2, NULL, step_scalar_scalar, &b, out);
    } else if (lt == PROMQL_TYPE_VECTOR && rt == PROMQL_TYPE_VECTOR) {
        static const promql_vector_matching none = {PROMQL_CARD_ONE_TO_ONE};
        static const promql_vector_matching many = {PROMQL_CARD_MANY_TO_MANY};
        b.vm = n->ast->binary.matching ? n->ast->binary.matching
               : promql_op_is_set(n->op) ? &many
                                         : &none;
        rc = range_eval(ev, exprs, 2, b.vm, step_vv_dispatch, &b, out);
    } else {
        b.swap = lt == PROMQL_TYPE_SCALAR;
        rc = range_eval(ev, exprs, 2, NULL, step_vector_scalar, &b, out);
    }
    bin_ctx_free(&b);
    return rc;
}

/* ---- aggregations ------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    const promql_str *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static bool is_name_label(const label *l)
{
    return l->name_len == 8 && !memcmp(l->name, "__name__", 8);
}

static void group_sig(const labels *ls, const promql_str *g, size_t ng, bool without, buf *out)
{
    buf_reset(out);
    if (!without && ng == 0) return;
    for (uint32_t i = 0; i < ls->n; i++) {
        const label *l = &ls->v[i];
        bool listed = name_listed(g, ng, l->name, l->name_len);
        bool take = without ? !listed && !is_name_label(l) : listed;
        if (!take) continue;
        buf_append(out, l->name, l->name_len + 1);
        buf_append(out, l->value, l->value_len + 1);
    }
}

static labels *group_labels(const labels *ls, const promql_str *g, size_t ng, bool without)
{
    if (!without && ng == 0) return labels_dup(promql_empty_labels());
    labels_builder b;
    labels_builder_init(&b);
    for (uint32_t i = 0; i < ls->n; i++) {
        const label *l = &ls->v[i];
        bool listed = name_listed(g, ng, l->name, l->name_len);
        bool take = without ? !listed && !is_name_label(l) : listed;
        if (take) labels_builder_add(&b, l->name, l->name_len, l->value, l->value_len);
    }
    labels *r = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return r;
}

/* Prometheus's labels.Hash() (xxhash of the stringlabels encoding), used by
 * limit_ratio to pick series deterministically. */
static uint64_t prom_labels_hash(const labels *ls)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    for (uint32_t i = 0; i < ls->n; i++) {
        const label *l = &ls->v[i];
        const char *s[2] = {l->name, l->value};
        size_t n[2] = {l->name_len, l->value_len};
        for (int k = 0; k < 2; k++) {
            if (n[k] < 255) {
                buf_putc(&b, (char)n[k]);
            } else {
                unsigned char sz[4] = {255, (unsigned char)n[k], (unsigned char)(n[k] >> 8),
                                       (unsigned char)(n[k] >> 16)};
                buf_append(&b, sz, 4);
            }
            buf_append(&b, s[k], n[k]);
        }
    }
    uint64_t h = strutil_hash64(b.data ? b.data : "", b.len, 0);
    buf_cleanup(&b);
    return h;
}

static bool add_ratio_sample(double ratio, const labels *ls)
{
    double off = (double)prom_labels_hash(ls) / 18446744073709551615.0;
    return (ratio >= 0 && off < ratio) || (ratio < 0 && off >= 1.0 + ratio);
}

/* A sample in a topk/bottomk/limitk heap. */
typedef struct hsample {
    const labels *metric;
    double f;
    bool drop_name;
    const promql_fh *h; /* limitk, limit_ratio: a histogram sample (borrowed), or NULL */
} hsample;

/* container/heap over vectorByValueHeap (rev = false: smallest on top, NaN
 * first) or vectorByReverseValueHeap (rev = true). */
static bool heap_less(const hsample *h, size_t i, size_t j, bool rev)
{
    double vi = h[i].f, vj = h[j].f;
    if (isnan(vi)) return true;
    return rev ? vi > vj : vi < vj;
}

static void heap_swap(hsample *h, size_t i, size_t j)
{
    hsample t = h[i];
    h[i] = h[j];
    h[j] = t;
}

static void heap_up(hsample *h, size_t j, bool rev)
{
    while (j > 0) {
        size_t i = (j - 1) / 2;
        if (!heap_less(h, j, i, rev)) break;
        heap_swap(h, i, j);
        j = i;
    }
}

static bool heap_down(hsample *h, size_t i0, size_t n, bool rev)
{
    size_t i = i0;
    for (;;) {
        size_t j1 = 2 * i + 1;
        if (j1 >= n) break;
        size_t j = j1;
        if (j1 + 1 < n && heap_less(h, j1 + 1, j1, rev)) j = j1 + 1;
        if (!heap_less(h, j, i, rev)) break;
        heap_swap(h, i, j);
        i = j;
    }
    return i > i0;
}

/* The running state of sum, avg, count, min, max, group, stddev and
 * stdvar for one group at one step. */
typedef struct acell {
    double value, mean, kahan, count;
    bool seen, has_incremental, drop_name;
} acell;

typedef struct hgroup {
    bool seen, complete, has_incremental, drop_name;
    double value, mean, kahan, count;
    hsample *heap;
    size_t hn, hcap;
    double *vals; /* quantile */
    size_t vn, vcap;
} hgroup;

static void heap_push(hgroup *g, hsample s, bool rev)
{
    g->heap = mem_grow(g->heap, sizeof *g->heap, g->hn + 1, &g->hcap);
    g->heap[g->hn++] = s;
    heap_up(g->heap, g->hn - 1, rev);
}

/* The final topk/bottomk order, as Prometheus sorts its heap in reverse
 * (Reverse(h).Less(i, j) = h.Less(j, i)); stable, see promql/sort.h. */
typedef struct hsort {
    hsample *h;
    bool rev;
} hsort;

static bool hsort_less(void *ctx, size_t i, size_t j)
{
    const hsort *x = ctx;
    return heap_less(x->h, j, i, x->rev);
}

static void hsort_swap(void *ctx, size_t i, size_t j)
{
    hsort *x = ctx;
    heap_swap(x->h, i, j);
}

static void sort_heap_output(hsample *h, size_t n, bool rev)
{
    hsort x = {h, rev};
    promql_sort_iface d = {&x, hsort_less, hsort_swap};
    promql_sort_stable(&d, n);
}

typedef struct fparams {
    bool constant, any_nan;
    double const_value, minv, maxv;
    promql_matrix m;
    size_t next;
} fparams;

static int fparams_init(evaluator *ev, pnode *param, fparams *fp)
{
    memset(fp, 0, sizeof *fp);
    if (!param || param->type == PROMQL_TYPE_STRING) return 0;
    int rc = eval_node(ev, param, &fp->m);
    if (rc) return rc;
    if (fp->m.n == 0) return 0;
    fp->minv = 1.7976931348623157e308;
    fp->maxv = -1.7976931348623157e308;
    promql_series *s = &fp->m.v[0];
    if (param->kind == PK_NUM && param->ast->kind == PROMQL_NODE_NUMBER) {
        fp->constant = true;
        fp->const_value = s->n ? s->pts[0].v : 0;
        fp->minv = fp->maxv = fp->const_value;
        fp->any_nan = isnan(fp->const_value);
        return 0;
    }
    for (size_t i = 0; i < s->n; i++) {
        fp->maxv = go_fmax(fp->maxv, s->pts[i].v);
        fp->minv = go_fmin(fp->minv, s->pts[i].v);
        if (isnan(s->pts[i].v)) fp->any_nan = true;
    }
    return 0;
}

static double fparams_next(fparams *fp)
{
    if (fp->constant) return fp->const_value;
    if (fp->m.n && fp->next < fp->m.v[0].n) return fp->m.v[0].pts[fp->next++].v;
    return 0;
}

/* nextValues: the point of series si at ts, consuming it. */
static bool next_value(const promql_series *s, size_t *cur, int64_t ts, double *f)
{
    size_t c = *cur;
    while (c < s->n && s->pts[c].t < ts)
        c++;
    if (c < s->n && s->pts[c].t == ts) {
        *f = s->pts[c].v;
        *cur = c + 1;
        return true;
    }
    *cur = c;
    return false;
}

static void warn_quantile_param(qctx *q, double v, uint32_t pos)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    anno_str_g(&b, v);
    promql_anno_add(&q->anno, PROMQL_ANNO_WARNING, pos,
                    "quantile value should be between 0 and 1, got %s", buf_cstr(&b));
    buf_cleanup(&b);
}

static void warn_ratio(qctx *q, double v, double to, uint32_t pos)
{
    buf b, c;
    buf_init(&b, BUF_UNLIMITED);
    buf_init(&c, BUF_UNLIMITED);
    anno_str_g(&b, v);
    anno_str_g(&c, to);
    promql_anno_add(&q->anno, PROMQL_ANNO_WARNING, pos,
                    "ratio value should be between -1 and 1, got %s, capping to %s",
                    buf_cstr(&b), buf_cstr(&c));
    buf_cleanup(&b);
    buf_cleanup(&c);
}

typedef struct agg_state {
    evaluator *ev;
    pnode *n;
    enum promql_op op;
    promql_matrix *in;
    size_t *cursor;
    size_t *hcursor;    /* limitk, limit_ratio: histogram points */
    uint32_t *group_of; /* input series -> group */
    size_t ngroups;
    hgroup *groups;
    promql_matrix *res; /* non-K: one series per group */
    /* K ops in range queries: output series by labels */
    out_acc acc;
} agg_state;

/* The first sample of a group at a step. */
static void acell_first(acell *g, enum promql_op op, double f, bool drop)
{
    g->seen = true;
    g->value = f;
    g->mean = f;
    g->kahan = 0;
    g->count = 1;
    g->has_incremental = false;
    g->drop_name = drop;
    if (op == PROMQL_OP_STDVAR || op == PROMQL_OP_STDDEV) g->value = (isnan(f) || isinf(f)) ? NAN : 0;
    else if (op == PROMQL_OP_GROUP) g->value = 1;
}

/* Every further sample (not for quantile). */
static void acell_next(acell *g, enum promql_op op, double f, bool drop)
{
    if (drop) g->drop_name = true;
    switch (op) {
    case PROMQL_OP_SUM: promql_kahan_inc(f, &g->value, &g->kahan); break;
    case PROMQL_OP_AVG:
        g->count++;
        if (!g->has_incremental) {
            double nv = g->value, nc = g->kahan;
            promql_kahan_inc(f, &nv, &nc);
            if (!isinf(nv)) {
                g->value = nv;
                g->kahan = nc;
                break;
            }
            g->has_incremental = true;
            g->mean = g->value / (g->count - 1);
            g->kahan /= g->count - 1;
        }
        {
            double qq = (g->count - 1) / g->count;
            double m = qq * g->mean, c = qq * g->kahan;
            promql_kahan_inc(f / g->count, &m, &c);
            g->mean = m;
            g->kahan = c;
        }
        break;
    case PROMQL_OP_MAX:
        if (g->value < f || isnan(g->value)) g->value = f;
        break;
    case PROMQL_OP_MIN:
        if (g->value > f || isnan(g->value)) g->value = f;
        break;
    case PROMQL_OP_COUNT: g->count++; break;
    case PROMQL_OP_STDVAR:
    case PROMQL_OP_STDDEV: {
        g->count++;
        double delta = f - g->mean;
        g->mean += delta / g->count;
        g->value += delta * (f - g->mean);
        break;
    }
    default: break;
    }
}

static double acell_value(const acell *g, enum promql_op op)
{
    switch (op) {
    case PROMQL_OP_AVG:
        return g->has_incremental ? g->mean + g->kahan : g->value / g->count + g->kahan / g->count;
    case PROMQL_OP_COUNT: return g->count;
    case PROMQL_OP_STDVAR: return g->value / g->count;
    case PROMQL_OP_STDDEV: return sqrt(g->value / g->count);
    case PROMQL_OP_SUM: return g->value + g->kahan;
    default: return g->value;
    }
}

/* aggregation at one step (Prometheus's order: series by series). */
static void agg_step(agg_state *st, double param, int64_t ts)
{
    enum promql_op op = st->op;
    for (size_t i = 0; i < st->ngroups; i++)
        st->groups[i].seen = false;
    for (size_t si = 0; si < st->in->n; si++) {
        double f;
        if (!next_value(&st->in->v[si], &st->cursor[si], ts, &f)) continue;
        hgroup *g = &st->groups[st->group_of[si]];
        bool drop = st->in->v[si].drop_name;
        if (op == PROMQL_OP_QUANTILE) {
            if (!g->seen) {
                g->seen = true;
                g->drop_name = drop;
                g->vn = 0;
            } else if (drop) {
                g->drop_name = true;
            }
            g->vals = mem_grow(g->vals, sizeof *g->vals, g->vn + 1, &g->vcap);
            g->vals[g->vn++] = f;
            continue;
        }
        acell c = {g->value, g->mean, g->kahan, g->count, g->seen, g->has_incremental, g->drop_name};
        if (!c.seen) acell_first(&c, op, f, drop);
        else acell_next(&c, op, f, drop);
        g->value = c.value;
        g->mean = c.mean;
        g->kahan = c.kahan;
        g->count = c.count;
        g->seen = c.seen;
        g->has_incremental = c.has_incremental;
        g->drop_name = c.drop_name;
    }
    for (size_t gi = 0; gi < st->ngroups; gi++) {
        hgroup *g = &st->groups[gi];
        if (!g->seen) continue;
        double v;
        if (op == PROMQL_OP_QUANTILE) {
            v = promql_quantile(param, g->vals, g->vn);
        } else {
            acell c = {g->value, g->mean, g->kahan, g->count, true, g->has_incremental, g->drop_name};
            v = acell_value(&c, op);
        }
        promql_series *s = &st->res->v[gi];
        series_add(s, ts, v);
        s->drop_name = g->drop_name;
    }
}

/* The same over all steps at once, series by series: each (group, step)
 * cell still sees the series in Prometheus's order, but every input series
 * is read once from start to end instead of once per step. */
#define AGG_MAX_CELLS (1 << 18)

static int agg_all_steps(agg_state *st, promql_matrix *res)
{
    evaluator *ev = st->ev;
    enum promql_op op = st->op;
    size_t nsteps = (size_t)num_steps(ev);
    acell *cells = mem_calloc(st->ngroups * nsteps, sizeof *cells);
    int rc = 0;
    uint32_t it = 0;
    for (size_t si = 0; si < st->in->n && !rc; si++) {
        const promql_series *s = &st->in->v[si];
        acell *row = cells + (size_t)st->group_of[si] * nsteps;
        for (size_t k = 0; k < s->n; k++) {
            if ((rc = qcheck_every(ev->q, &it))) break;
            int64_t d = s->pts[k].t - ev->start;
            if (d < 0 || d % ev->interval) continue;
            size_t step = (size_t)(d / ev->interval);
            if (step >= nsteps) continue;
            acell *c = &row[step];
            if (!c->seen) acell_first(c, op, s->pts[k].v, s->drop_name);
            else acell_next(c, op, s->pts[k].v, s->drop_name);
        }
    }
    for (size_t gi = 0; gi < st->ngroups && !rc; gi++) {
        acell *row = cells + gi * nsteps;
        promql_series *out = &res->v[gi];
        for (size_t k = 0; k < nsteps; k++) {
            if (!row[k].seen) continue;
            series_add(out, ev->start + (int64_t)k * ev->interval, acell_value(&row[k], op));
            out->drop_name = row[k].drop_name;
        }
    }
    mem_free(cells);
    return rc;
}

/* aggregationK: topk, bottomk, limitk, limit_ratio at one step. In an
 * instant query the result goes to `inst` in group/heap order. */
static int aggk_step(agg_state *st, double param, int64_t ts, promql_matrix *inst)
{
    qctx *q = st->ev->q;
    enum promql_op op = st->op;
    size_t remaining = st->ngroups;
    for (size_t i = 0; i < st->ngroups; i++) {
        st->groups[i].seen = false;
        st->groups[i].complete = false;
        st->groups[i].hn = 0;
    }
    int64_t k = 0;
    double r = 0;
    for (size_t si = 0; si < st->in->n; si++) {
        double f = 0;
        const promql_fh *hv = NULL;
        if (!next_value(&st->in->v[si], &st->cursor[si], ts, &f)) {
            const promql_series *se = &st->in->v[si];
            size_t c = st->hcursor ? st->hcursor[si] : 0;
            while (c < se->nh && se->hpts[c].t < ts)
                c++;
            if (st->hcursor) st->hcursor[si] = c;
            if (c >= se->nh || se->hpts[c].t != ts) continue;
            hv = se->hpts[c].h;
        }
        hsample s = {st->in->v[si].metric, f, st->in->v[si].drop_name, hv};
        if (op == PROMQL_OP_LIMIT_RATIO) {
            if (param == 0) return 0;
            r = param < -1.0 ? -1.0 : param > 1.0 ? 1.0 : param;
        } else {
            k = (int64_t)param;
            if ((int64_t)st->in->n < k) k = (int64_t)st->in->n;
            if (k < 1) return 0;
        }
        hgroup *g = &st->groups[st->group_of[si]];
        if (!g->seen) {
            g->seen = true;
            g->hn = 0;
            switch (op) {
            case PROMQL_OP_LIMIT_RATIO:
                if (add_ratio_sample(r, s.metric)) heap_push(g, s, false);
                break;
            case PROMQL_OP_LIMITK:
                g->heap = mem_grow(g->heap, sizeof *g->heap, 1, &g->hcap);
                g->heap[g->hn++] = s;
                break;
            case PROMQL_OP_TOPK: heap_push(g, s, false); break;
            default: heap_push(g, s, true); break;
            }
            continue;
        }
        switch (op) {
        case PROMQL_OP_TOPK:
            if ((int64_t)g->hn < k) {
                heap_push(g, s, false);
            } else if (g->heap[0].f < s.f || (isnan(g->heap[0].f) && !isnan(s.f))) {
                g->heap[0] = s;
                if (k > 1 && !heap_down(g->heap, 0, g->hn, false)) heap_up(g->heap, 0, false);
            }
            break;
        case PROMQL_OP_BOTTOMK:
            if ((int64_t)g->hn < k) {
                heap_push(g, s, true);
            } else if (g->heap[0].f > s.f || (isnan(g->heap[0].f) && !isnan(s.f))) {
                g->heap[0] = s;
                if (k > 1 && !heap_down(g->heap, 0, g->hn, true)) heap_up(g->heap, 0, true);
            }
            break;
        case PROMQL_OP_LIMITK:
            if ((int64_t)g->hn < k) heap_push(g, s, false);
            if (!g->complete && (int64_t)g->hn == k) {
                g->complete = true;
                remaining--;
                if (remaining == 0) goto assemble;
            }
            break;
        default:
            if (add_ratio_sample(r, s.metric)) heap_push(g, s, false);
            break;
        }
    }
assemble:
    for (size_t gi = 0; gi < st->ngroups; gi++) {
        hgroup *g = &st->groups[gi];
        if (!g->seen) continue;
        if (op == PROMQL_OP_TOPK) sort_heap_output(g->heap, g->hn, false);
        else if (op == PROMQL_OP_BOTTOMK) sort_heap_output(g->heap, g->hn, true);
        for (size_t i = 0; i < g->hn; i++) {
            hsample *h = &g->heap[i];
            if (inst) {
                promql_series *s = mat_add(inst, labels_dup(h->metric), h->drop_name);
                if (h->h)
                    promql_series_add_hist(s, ts, promql_fh_copy(h->h));
                else
                    series_add(s, ts, h->f);
            } else {
                promql_esample es = {h->metric, h->f, ts, h->drop_name};
                es.h = (promql_fh *)h->h; /* borrowed: out_acc_add copies it */
                int rc = out_acc_add(q, &st->acc, &es, ts);
                if (rc) return rc;
            }
        }
    }
    return 0;
}

/* ---- native histograms in aggregations ---- */

static void anno_metric_quoted(buf *b, const labels *m)
{
    size_t nl;
    const char *name = labels_metric_name(m, &nl);
    expfmt_quote_go(buf_sink, b, nl ? name : "", nl);
}

/* Turns each histogram point into a float point (value 0) in time order:
 * count and group count histograms as samples. */
static void hists_as_floats(promql_series *s)
{
    if (!s->nh) return;
    promql_fpoint *m = mem_malloc((s->n + s->nh) * sizeof *m);
    size_t i = 0, j = 0, k = 0;
    while (i < s->n || j < s->nh) {
        if (j >= s->nh || (i < s->n && s->pts[i].t < s->hpts[j].t))
            m[k++] = s->pts[i++];
        else
            m[k++] = (promql_fpoint){s->hpts[j++].t, 0};
    }
    mem_free(s->pts);
    s->pts = m;
    s->n = s->cap = k;
    mem_free(s->st);
    s->st = NULL;
    promql_series_free_hists(s);
}

/* sum and avg over the histogram samples, step by step: hres gets one
 * series per group (histogram points only); a (group, step) with floats
 * too, or histograms that cannot be added, gets no result and is
 * recorded in *drop (group * nsteps + step) so that the float result
 * goes as well. */
static bool fh_overflow(const promql_fh *h)
{
    bool o = isinf(h->count) || isinf(h->sum) || isinf(h->zero_count);
    for (size_t k = 0; k < h->n_pos && !o; k++)
        o = isinf(h->pos[k].count);
    for (size_t k = 0; k < h->n_neg && !o; k++)
        o = isinf(h->neg[k].count);
    return o;
}

typedef struct hagg {
    promql_fh *acc, *comp, *mean; /* sum, Kahan compensation, incremental mean */
    double cnt;
    bool has_f, bad, coll, rec;
} hagg;

static void hagg_reset(hagg *a)
{
    promql_fh_free(a->acc);
    promql_fh_free(a->comp);
    promql_fh_free(a->mean);
    memset(a, 0, sizeof *a);
}

/* One histogram into a group's sum (Kahan) or mean (incremental once the
 * sum overflows, as Prometheus's avg). Returns false on incompatible
 * schemas. */
static bool hagg_add(hagg *a, const promql_fh *h, bool avg)
{
    bool c = false, rec = false;
    a->cnt++;
    if (!a->mean) {
        promql_fh *s2 = promql_fh_copy(a->acc), *c2 = promql_fh_copy(a->comp);
        if (promql_fh_kahan_add(s2, h, c2, &c, &rec) < 0) {
            promql_fh_free(s2);
            promql_fh_free(c2);
            return false;
        }
        a->coll = a->coll || c;
        a->rec = a->rec || rec;
        if (!avg || !fh_overflow(s2)) {
            promql_fh_free(a->acc);
            promql_fh_free(a->comp);
            a->acc = s2;
            a->comp = c2;
            return true;
        }
        promql_fh_free(s2);
        promql_fh_free(c2);
        a->mean = promql_fh_copy(a->acc);
        promql_fh_scale(a->mean, a->cnt - 1, true);
        promql_fh_scale(a->comp, a->cnt - 1, true);
    }
    double q = (a->cnt - 1) / a->cnt;
    promql_fh_scale(a->comp, q, false);
    promql_fh_scale(a->mean, q, false);
    promql_fh *add = promql_fh_copy(h);
    promql_fh_scale(add, a->cnt, true);
    int rc = promql_fh_kahan_add(a->mean, add, a->comp, &c, &rec);
    promql_fh_free(add);
    a->coll = a->coll || c;
    a->rec = a->rec || rec;
    return rc == 0;
}

/* The group's result (new), or NULL. */
static promql_fh *hagg_result(hagg *a, bool avg)
{
    promql_fh *r;
    if (a->mean) {
        promql_fh_kahan_finish(a->mean, a->comp);
        r = a->mean;
        a->mean = NULL;
    } else {
        if (avg) {
            promql_fh_scale(a->acc, a->cnt, true);
            promql_fh_scale(a->comp, a->cnt, true);
        }
        promql_fh_kahan_finish(a->acc, a->comp);
        r = a->acc;
        a->acc = NULL;
    }
    promql_fh_compact(r);
    return r;
}

/* sum and avg over the histogram samples, step by step: hres gets one
 * series per group (histogram points only); a (group, step) with floats
 * too, or histograms that cannot be added, gets no result and is
 * recorded in *drop (group * nsteps + step) so that the float result
 * goes as well. */
static void agg_hists(agg_state *st, promql_matrix *hres, bool *drop)
{
    evaluator *ev = st->ev;
    qctx *q = ev->q;
    promql_matrix *in = st->in;
    bool avg = st->op == PROMQL_OP_AVG;
    uint32_t pos = unparen(st->n->ast->aggregate.expr)->pos.start;
    size_t ng = st->ngroups;
    hagg *ga = mem_calloc(ng ? ng : 1, sizeof *ga);
    size_t *fc = mem_calloc(in->n ? in->n : 1, sizeof *fc),
           *hc = mem_calloc(in->n ? in->n : 1, sizeof *hc);
    size_t step = 0;
    for (int64_t ts = ev->start; ts <= ev->end; ts += ev->interval, step++) {
        for (size_t si = 0; si < in->n; si++) {
            const promql_series *s = &in->v[si];
            hagg *a = &ga[st->group_of[si]];
            while (fc[si] < s->n && s->pts[fc[si]].t < ts)
                fc[si]++;
            if (fc[si] < s->n && s->pts[fc[si]].t == ts) a->has_f = true;
            while (hc[si] < s->nh && s->hpts[hc[si]].t < ts)
                hc[si]++;
            if (hc[si] >= s->nh || s->hpts[hc[si]].t != ts) continue;
            const promql_fh *h = s->hpts[hc[si]].h;
            if (!a->acc && !a->mean) {
                a->acc = promql_fh_copy(h);
                a->comp = promql_fh_kahan_new(a->acc);
                a->cnt = 1;
                continue;
            }
            if (a->bad) continue;
            if (!hagg_add(a, h, avg)) {
                a->bad = true;
                buf b;
                buf_init(&b, BUF_UNLIMITED);
                anno_metric_quoted(&b, s->metric);
                promql_anno_add(&q->anno, PROMQL_ANNO_WARNING, pos,
                                "vector contains a mix of histograms with exponential and custom "
                                "buckets schemas for metric name %s",
                                buf_cstr(&b));
                buf_cleanup(&b);
            }
        }
        for (size_t g = 0; g < ng; g++) {
            hagg *a = &ga[g];
            if (a->acc || a->mean) {
                if (a->coll)
                    promql_anno_add(&q->anno, PROMQL_ANNO_WARNING, pos,
                                    "conflicting counter resets during histogram aggregation");
                if (a->rec)
                    promql_anno_add(&q->anno, PROMQL_ANNO_INFO, pos,
                                    "mismatched custom buckets were reconciled during aggregation");
                if (a->has_f) {
                    promql_anno_add(&q->anno, PROMQL_ANNO_WARNING, pos,
                                    "encountered a mix of histograms and floats for aggregation");
                    drop[g * (size_t)num_steps(ev) + step] = true;
                } else if (a->bad) {
                    drop[g * (size_t)num_steps(ev) + step] = true;
                } else {
                    promql_series_add_hist(&hres->v[g], ts, hagg_result(a, avg));
                }
            }
            hagg_reset(a);
        }
    }
    mem_free(ga);
    mem_free(fc);
    mem_free(hc);
}

static int eval_agg_main(evaluator *ev, pnode *n, const promql_str *grouping, size_t ng,
                         promql_matrix *out)
{
    qctx *q = ev->q;
    enum promql_op op = n->op;
    bool without = n->ast->aggregate.without;
    bool kop = op == PROMQL_OP_TOPK || op == PROMQL_OP_BOTTOMK || op == PROMQL_OP_LIMITK ||
               op == PROMQL_OP_LIMIT_RATIO;
    int64_t orig = q->cur;
    int rc;
    fparams fp;
    promql_matrix in = {0};
    memset(out, 0, sizeof *out);
    if ((rc = fparams_init(ev, n->b, &fp))) return rc;
    if ((rc = eval_node(ev, n->a, &in))) {
        promql_matrix_cleanup(&fp.m);
        return rc;
    }
    agg_state st;
    memset(&st, 0, sizeof st);
    st.ev = ev;
    st.n = n;
    st.op = op;
    st.in = &in;
    st.cursor = mem_calloc(in.n ? in.n : 1, sizeof *st.cursor);
    st.group_of = mem_calloc(in.n ? in.n : 1, sizeof *st.group_of);
    st.acc.m = out;
    st.acc.no_dupe_check = true;
    imap_init(&st.acc.idx);
    promql_matrix res = {0};
    st.res = &res;
    sigtab groups;
    sigtab_init(&groups);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    for (size_t si = 0; si < in.n; si++) {
        group_sig(in.v[si].metric, grouping, ng, without, &b);
        bool added;
        st.group_of[si] = sigtab_intern(&groups, b.data ? b.data : "", b.len, &added);
        if (added && !kop) mat_add(&res, group_labels(in.v[si].metric, grouping, ng, without), false);
    }
    buf_cleanup(&b);
    st.ngroups = groups.n;
    sigtab_free(&groups);
    st.groups = mem_calloc(st.ngroups ? st.ngroups : 1, sizeof *st.groups);
    uint32_t ppos = n->b ? unparen(n->ast->aggregate.param)->pos.start : 0;

    /* Native histograms: count and group take them as samples, sum and
     * avg aggregate them apart, every other aggregation ignores them. */
    promql_matrix hres = {0};
    bool *hdrop = NULL;
    {
        bool any_h = false;
        for (size_t si = 0; si < in.n && !any_h; si++)
            any_h = in.v[si].nh > 0;
        if (any_h && (op == PROMQL_OP_COUNT || op == PROMQL_OP_GROUP)) {
            for (size_t si = 0; si < in.n; si++)
                hists_as_floats(&in.v[si]);
        } else if (any_h && (op == PROMQL_OP_SUM || op == PROMQL_OP_AVG)) {
            for (size_t g = 0; g < st.ngroups; g++)
                mat_add(&hres, NULL, false);
            hdrop = mem_calloc(st.ngroups * (size_t)num_steps(ev) + 1, sizeof *hdrop);
            agg_hists(&st, &hres, hdrop);
        } else if (any_h && (op == PROMQL_OP_LIMITK || op == PROMQL_OP_LIMIT_RATIO)) {
            st.hcursor = mem_calloc(in.n ? in.n : 1, sizeof *st.hcursor);
        } else if (any_h) {
            promql_anno_add(&q->anno, PROMQL_ANNO_INFO, unparen(n->ast->aggregate.expr)->pos.start,
                            "ignored histogram in %s aggregation", promql_op_name(op));
        }
        if (!st.hcursor)
            for (size_t si = 0; si < in.n; si++)
                promql_series_free_hists(&in.v[si]);
    }

    bool empty = false;
    if (op == PROMQL_OP_TOPK || op == PROMQL_OP_BOTTOMK || op == PROMQL_OP_LIMITK) {
        if (fp.maxv < 1) {
            empty = true;
        } else if (fp.any_nan) {
            rc = exec_fail(q, "Parameter value is NaN");
        } else if (fp.minv <= MIN_INT64_F) {
            buf t;
            buf_init(&t, 64);
            anno_str_g(&t, fp.minv);
            rc = exec_fail(q, "Scalar value %s underflows int64", buf_cstr(&t));
            buf_cleanup(&t);
        } else if (fp.maxv >= MAX_INT64_F) {
            buf t;
            buf_init(&t, 64);
            anno_str_g(&t, fp.maxv);
            rc = exec_fail(q, "Scalar value %s overflows int64", buf_cstr(&t));
            buf_cleanup(&t);
        }
    } else if (op == PROMQL_OP_LIMIT_RATIO) {
        if (fp.maxv == 0 && fp.minv == 0) {
            empty = true;
        } else if (fp.any_nan) {
            rc = exec_fail(q, "Ratio value is NaN");
        } else {
            if (fp.maxv > 1.0) warn_ratio(q, fp.maxv, 1.0, ppos);
            if (fp.minv < -1.0) warn_ratio(q, fp.minv, -1.0, ppos);
        }
    } else if (op == PROMQL_OP_QUANTILE) {
        if (fp.any_nan) warn_quantile_param(q, NAN, ppos);
        if (fp.maxv > 1) warn_quantile_param(q, fp.maxv, ppos);
        if (fp.minv < 0) warn_quantile_param(q, fp.minv, ppos);
    }

    int64_t temp = q->cur;
    bool all_steps = !kop && op != PROMQL_OP_QUANTILE && ev->start != ev->end &&
                     st.ngroups * (uint64_t)num_steps(ev) <= AGG_MAX_CELLS;
    if (!rc && !empty && all_steps) {
        rc = agg_all_steps(&st, &res);
    } else if (!rc && !empty) {
        for (int64_t ts = ev->start; ts <= ev->end; ts += ev->interval) {
            double param = fparams_next(&fp);
            if ((rc = qcheck(q))) break;
            q->cur = temp;
            if (kop) {
                if (ev->start == ev->end) {
                    rc = aggk_step(&st, param, ts, out);
                    break;
                }
                if ((rc = aggk_step(&st, param, ts, NULL))) break;
            } else {
                agg_step(&st, param, ts);
            }
            if (q->cur > q->max_samples) {
                rc = too_many_samples(q);
                break;
            }
        }
    }
    if (!rc && !kop && hdrop) {
        for (size_t g = 0; g < res.n && g < hres.n; g++) {
            promql_series *s = &res.v[g];
            size_t k = 0;
            for (size_t i = 0; i < s->n; i++) {
                size_t stepi = (size_t)((s->pts[i].t - ev->start) / ev->interval);
                if (!hdrop[g * (size_t)num_steps(ev) + stepi]) s->pts[k++] = s->pts[i];
            }
            s->n = k;
            s->hpts = hres.v[g].hpts;
            s->nh = hres.v[g].nh;
            s->hcap = hres.v[g].hcap;
            hres.v[g].hpts = NULL;
            hres.v[g].nh = hres.v[g].hcap = 0;
        }
    }
    promql_matrix_cleanup(&hres);
    mem_free(hdrop);
    if (!rc && !kop) {
        *out = res;
        memset(&res, 0, sizeof res);
        mat_drop_empty(out);
    }
    for (size_t i = 0; i < st.ngroups; i++) {
        mem_free(st.groups[i].heap);
        mem_free(st.groups[i].vals);
    }
    mem_free(st.groups);
    mem_free(st.cursor);
    mem_free(st.hcursor);
    mem_free(st.group_of);
    out_acc_free(&st.acc);
    promql_matrix_cleanup(&res);
    promql_matrix_cleanup(&in);
    promql_matrix_cleanup(&fp.m);
    if (rc) {
        promql_matrix_cleanup(out);
        return rc;
    }
    q->cur = orig + mat_total(out);
    return 0;
}

typedef struct cv_ctx {
    const promql_str *grouping;
    size_t ng;
    bool without;
    promql_str vlabel;
    sigtab groups;
    const labels **glabels;
    int64_t *counts;
    size_t cap;
    labels_builder lb;
    buf sig, val;
} cv_ctx;

static int step_count_values(step_env *e, void *ctx)
{
    cv_ctx *c = ctx;
    sigtab_free(&c->groups);
    const promql_evec *in = &e->in[0];
    for (size_t i = 0; i < in->n; i++) {
        buf_reset(&c->val);
        if (in->v[i].h)
            promql_fh_string(in->v[i].h, &c->val);
        else
            promql_format_float_f(in->v[i].f, &c->val);
        promql_builder_from(&c->lb, in->v[i].metric);
        labels_builder_set(&c->lb, c->vlabel.p, c->vlabel.len, buf_cstr(&c->val), c->val.len);
        labels *m = labels_builder_finish(&c->lb, NULL);
        group_sig(m, c->grouping, c->ng, c->without, &c->sig);
        bool added;
        uint32_t g = sigtab_intern(&c->groups, c->sig.data ? c->sig.data : "", c->sig.len, &added);
        if (added) {
            if (g >= c->cap) {
                size_t cap = c->cap;
                c->glabels = mem_grow(c->glabels, sizeof *c->glabels, g + 1, &cap);
                c->counts = mem_realloc(c->counts, cap * sizeof *c->counts);
                c->cap = cap;
            }
            c->glabels[g] =
                promql_lcache_put(e->lc, group_labels(m, c->grouping, c->ng, c->without));
            c->counts[g] = 0;
        }
        c->counts[g]++;
        labels_free(m);
    }
    for (size_t g = 0; g < c->groups.n; g++)
        promql_evec_push(e->out, c->glabels[g], (double)c->counts[g], e->ts, false);
    return 0;
}

static int eval_agg(evaluator *ev, pnode *n, promql_matrix *out)
{
    qctx *q = ev->q;
    const promql_node *a = n->ast;
    size_t ng = a->aggregate.n_grouping;
    promql_str *g = mem_calloc(ng + 2, sizeof *g);
    for (size_t i = 0; i < ng; i++)
        g[i] = a->aggregate.grouping[i];
    int rc;
    if (n->op == PROMQL_OP_COUNT_VALUES) {
        const promql_node *p = unparen(a->aggregate.param);
        promql_str vl = p && p->kind == PROMQL_NODE_STRING ? p->string.val : (promql_str){"", 0};
        if (vl.len == 0 || !expfmt_utf8_valid(vl.p, vl.len)) {
            buf t;
            buf_init(&t, BUF_UNLIMITED);
            expfmt_quote_go(buf_sink, &t, vl.p, vl.len);
            rc = exec_fail(q, "invalid label name %s", buf_cstr(&t));
            buf_cleanup(&t);
            mem_free(g);
            return rc;
        }
        if (!a->aggregate.without) g[ng++] = vl;
        cv_ctx c;
        memset(&c, 0, sizeof c);
        c.grouping = g;
        c.ng = ng;
        c.without = a->aggregate.without;
        c.vlabel = vl;
        sigtab_init(&c.groups);
        labels_builder_init(&c.lb);
        buf_init(&c.sig, BUF_UNLIMITED);
        buf_init(&c.val, BUF_UNLIMITED);
        pnode *exprs[1] = {n->a};
        rc = range_eval(ev, exprs, 1, NULL, step_count_values, &c, out);
        sigtab_free(&c.groups);
        mem_free(c.glabels);
        mem_free(c.counts);
        labels_builder_cleanup(&c.lb);
        buf_cleanup(&c.sig);
        buf_cleanup(&c.val);
        mem_free(g);
        return rc;
    }
    qsort(g, ng, sizeof *g, cmp_str);
    rc = eval_agg_main(ev, n, g, ng, out);
    mem_free(g);
    return rc;
}

/* ---- function calls ---------------------------------------------------------------------- */

typedef struct call_ctx {
    pnode *n;
    buf err;
} call_ctx;

static int step_vec_call(step_env *e, void *ctx)
{
    call_ctx *c = ctx;
    qctx *q = e->ev->q;
    promql_fcall fc;
    memset(&fc, 0, sizeof fc);
    fc.call = c->n->ast;
    fc.ts = e->ts;
    fc.delayed_name = q->delayed;
    fc.anno = &q->anno;
    fc.lcache = e->lc;
    fc.err = &c->err;
    fc.in = e->in;
    fc.nin = e->nin;
    fc.out = e->out;
    int rc = c->n->fdef->vec(&fc);
    if (rc) return exec_fail(q, "%s", buf_cstr(&c->err));
    return 0;
}

/* Whether a step function handles histogram samples in its input vectors
 * (the others get float samples only). */
static bool step_takes_hists(step_fn fn, void *ctx)
{
    if (fn == step_vec_call) return (((call_ctx *)ctx)->n->fdef->flags & PROMQL_F_HIST) != 0;
    return fn == step_vv_dispatch || fn == step_vector_scalar || fn == step_count_values;
}

/* timestamp(selector): the timestamps of the samples themselves;
 * start_timestamp(selector): their start timestamps (0 when unknown). */
typedef struct ts_ctx {
    pnode *vs;
    promql_matrix raw;
    size_t *cursor;
    size_t *hcursor; /* histogram points */
    pnode *call;
    bool start; /* start_timestamp */
} ts_ctx;

static int step_timestamp(step_env *e, void *ctx)
{
    ts_ctx *c = ctx;
    qctx *q = e->ev->q;
    int64_t offset = c->vs->has_at ? e->ts - c->vs->at : c->vs->offset;
    promql_evec in = {0};
    int rc = 0;
    for (size_t i = 0; i < c->raw.n; i++) {
        const promql_series *s = &c->raw.v[i];
        promql_fpoint p;
        bool fok = sample_at(s, &c->cursor[i], e->ts - offset, q->lookback, &p);
        const promql_hpoint *hp =
            s->nh ? hist_at(s, &c->hcursor[i], e->ts - offset, q->lookback) : NULL;
        if (hp) { /* the newer of the two, a float staleness marker included */
            int64_t ft = c->cursor[i] ? s->pts[c->cursor[i] - 1].t : INT64_MIN;
            if (ft > hp->t) hp = NULL;
        }
        if (!fok && !hp) continue;
        /* sample_at leaves the cursor just past the point it returns */
        int64_t t = hp         ? (c->start ? 0 : hp->t)
                    : c->start ? (s->st ? s->st[c->cursor[i] - 1] : 0)
                               : p.t;
        promql_evec_push(&in, s->metric, 0, t, false);
        if ((rc = add_samples(q, 1))) break;
    }
    /* Without use-start-timestamps, start_timestamp() reads the samples
     * (they count) but returns nothing, as in Prometheus. */
    if (!rc && !(c->start && !q->use_st)) {
        for (size_t i = 0; i < in.n; i++) {
            const labels *m = q->delayed ? in.v[i].metric : promql_drop_metric_name(e->lc, in.v[i].metric);
            promql_evec_push(e->out, m, (double)in.v[i].t / 1000, e->ts, true);
        }
    }
    promql_evec_free(&in);
    return rc;
}

static int eval_timestamp_vsel(evaluator *ev, pnode *n, pnode *vs, promql_matrix *out)
{
    ts_ctx c;
    memset(&c, 0, sizeof c);
    c.vs = vs;
    c.call = n;
    c.start = !strcmp(n->fdef->name, "start_timestamp");
    int rc = fetch(ev->q, vs, vs->sel_mint, vs->sel_maxt, c.start, true, &c.raw);
    if (rc) return rc;
    c.cursor = mem_calloc(c.raw.n ? c.raw.n : 1, sizeof *c.cursor);
    c.hcursor = mem_calloc(c.raw.n ? c.raw.n : 1, sizeof *c.hcursor);
    rc = range_eval(ev, NULL, 0, NULL, step_timestamp, &c, out);
    mem_free(c.cursor);
    mem_free(c.hcursor);
    promql_matrix_cleanup(&c.raw);
    return rc;
}

static bool has_suffix(const char *s, size_t len, const char *suf)
{
    return strutil_has_suffix(s, len, suf);
}

static int eval_label_replace(evaluator *ev, pnode *n, promql_matrix *out)
{
    qctx *q = ev->q;
    const promql_node *a = n->ast;
    promql_str dst = unparen(a->call.args[1])->string.val;
    promql_str repl = unparen(a->call.args[2])->string.val;
    promql_str src = unparen(a->call.args[3])->string.val;
    promql_str re_s = unparen(a->call.args[4])->string.val;
    regex *re = NULL;
    if (regex_compile(&re, re_s.p, re_s.len, NULL) != 0)
        return exec_fail(q, "invalid regular expression in label_replace(): %s", re_s.p);
    if (dst.len == 0 || !expfmt_utf8_valid(dst.p, dst.len)) {
        regex_free(re);
        return exec_fail(q, "invalid destination label name in label_replace(): %s", dst.p);
    }
    int rc = eval_node(ev, n->args[0], out);
    if (rc) {
        regex_free(re);
        return rc;
    }
    buf res;
    buf_init(&res, BUF_UNLIMITED);
    labels_builder lb;
    labels_builder_init(&lb);
    bool dst_is_name = dst.len == 8 && !memcmp(dst.p, "__name__", 8);
    for (size_t i = 0; i < out->n; i++) {
        promql_series *s = &out->v[i];
        size_t vl;
        const char *v = labels_get(s->metric, src.p, src.len, &vl);
        if (!v) v = "";
        buf_reset(&res);
        if (regex_expand(re, v, vl, repl.p, repl.len, &res) != 1) continue;
        promql_builder_from(&lb, s->metric);
        labels_builder_set(&lb, dst.p, dst.len, buf_cstr(&res), res.len);
        labels *m = labels_builder_finish(&lb, NULL);
        labels_free(s->metric);
        s->metric = m;
        if (dst_is_name) s->drop_name = false;
    }
    labels_builder_cleanup(&lb);
    buf_cleanup(&res);
    regex_free(re);
    if ((rc = merge_same_labelsets(q, out))) promql_matrix_cleanup(out);
    return rc;
}

static int eval_label_join(evaluator *ev, pnode *n, promql_matrix *out)
{
    qctx *q = ev->q;
    const promql_node *a = n->ast;
    promql_str dst = unparen(a->call.args[1])->string.val;
    promql_str sep = unparen(a->call.args[2])->string.val;
    size_t nsrc = a->call.nargs > 3 ? a->call.nargs - 3 : 0;
    for (size_t i = 0; i < nsrc; i++) {
        promql_str s = unparen(a->call.args[3 + i])->string.val;
        if (s.len == 0 || !expfmt_utf8_valid(s.p, s.len))
            return exec_fail(q, "invalid source label name in label_join(): %s", s.p);
    }
    if (dst.len == 0 || !expfmt_utf8_valid(dst.p, dst.len))
        return exec_fail(q, "invalid destination label name in label_join(): %s", dst.p);
    int rc = eval_node(ev, n->args[0], out);
    if (rc) return rc;
    buf v;
    buf_init(&v, BUF_UNLIMITED);
    labels_builder lb;
    labels_builder_init(&lb);
    bool dst_is_name = dst.len == 8 && !memcmp(dst.p, "__name__", 8);
    for (size_t i = 0; i < out->n; i++) {
        promql_series *s = &out->v[i];
        buf_reset(&v);
        for (size_t k = 0; k < nsrc; k++) {
            promql_str sl = unparen(a->call.args[3 + k])->string.val;
            if (k) buf_append(&v, sep.p, sep.len);
            size_t vl;
            const char *x = labels_get(s->metric, sl.p, sl.len, &vl);
            if (x) buf_append(&v, x, vl);
        }
        promql_builder_from(&lb, s->metric);
        labels_builder_set(&lb, dst.p, dst.len, buf_cstr(&v), v.len);
        labels *m = labels_builder_finish(&lb, NULL);
        labels_free(s->metric);
        s->metric = m;
        if (dst_is_name) s->drop_name = false;
    }
    labels_builder_cleanup(&lb);
    buf_cleanup(&v);
    if ((rc = merge_same_labelsets(q, out))) promql_matrix_cleanup(out);
    return rc;
}

static int eval_info(evaluator *ev, pnode *n, promql_matrix *out);

static bool matrix_has_dupes(const promql_matrix *m)
{
    if (m->n < 2) return false;
    imap idx;
    imap_init(&idx);
    bool dup = false;
    for (size_t i = 0; i < m->n && !dup; i++) {
        mat_key k = {m, m->v[i].metric};
        uint64_t h = labels_hash(m->v[i].metric);
        if (imap_get(&idx, h, mat_key_eq, &k) >= 0) dup = true;
        else imap_put(&idx, h, (uint32_t)i);
    }
    imap_free(&idx);
    return dup;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* absent_over_time: one series with 1 at every step where no series of m
 * had a value (nothing if some step is covered by all). */
static int absent_steps(evaluator *ev, const promql_matrix *m, const promql_node *arg,
                        promql_matrix *out)
{
    qctx *q = ev->q;
    int64_t steps = num_steps(ev);
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < m->n; i++)
        if ((int64_t)m->v[i].n == steps) return 0;
    size_t total = 0;
    for (size_t i = 0; i < m->n; i++)
        total += m->v[i].n;
    int64_t *ts = mem_malloc((total ? total : 1) * sizeof *ts);
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++)
        for (size_t j = 0; j < m->v[i].n; j++)
            ts[k++] = m->v[i].pts[j].t;
    qsort(ts, total, sizeof *ts, cmp_i64);
    size_t distinct = 0;
    for (size_t i = 0; i < total; i++)
        if (i == 0 || ts[i] != ts[i - 1]) distinct++;
    int rc = 0;
    if ((int64_t)distinct < steps) {
        promql_series *s = mat_add(out, promql_absent_labels(arg), true);
        size_t j = 0;
        uint32_t it = 0;
        for (int64_t t = ev->start; t <= ev->end; t += ev->interval) {
            if ((rc = qcheck_every(q, &it))) break;
            while (j < total && ts[j] < t)
                j++;
            if (j < total && ts[j] == t) continue;
            series_add(s, t, 1); /* not counted, as in Prometheus */
        }
    }
    mem_free(ts);
    if (rc) promql_matrix_cleanup(out);
    return rc;
}

static const char *const anchored_safe = "changes, delta, increase, rate, resets";
static const char *const smoothed_safe = "delta, increase, rate";

/* A function with a range-vector argument: one series at a time, one
 * window per step. */
static int eval_range_call(evaluator *ev, pnode *n, size_t mi, promql_matrix *out)
{
    qctx *q = ev->q;
    const promql_fdef *fd = n->fdef;
    const char *fname = fd->name;
    pnode *marg = n->args[mi];
    promql_matrix raw = {0};
    promql_matrix *vals = mem_calloc(n->nargs, sizeof *vals);
    double *sargs = mem_calloc(n->nargs, sizeof *sargs);
    int64_t subq_total = 0;
    int64_t offset, range;
    bool has_at, anchored = false, smoothed = false, from_subq = marg->kind == PK_SUBQ;
    int rc = 0;
    memset(out, 0, sizeof *out);
    buf ferr;
    buf_init(&ferr, 4096);

    if (from_subq) {
        if ((rc = run_subquery(ev, marg, &raw))) goto done;
        subq_total = mat_total(&raw);
        /* evalSubquery: reset and not_reset hints become unknown (the
         * subquery samples the series; resets are detected afresh). */
        for (size_t i = 0; i < raw.n; i++)
            for (size_t k = 0; k < raw.v[i].nh; k++)
                if (raw.v[i].hpts[k].h->hint == PROMQL_FH_RESET ||
                    raw.v[i].hpts[k].h->hint == PROMQL_FH_NOT_RESET)
                    raw.v[i].hpts[k].h->hint = PROMQL_FH_UNKNOWN;
        offset = marg->orig_offset + (marg->has_at ? ev->start - marg->at : 0);
        range = marg->range;
        has_at = marg->has_at;
    } else {
        pnode *vs = marg->a;
        offset = vs->offset;
        range = marg->range;
        has_at = vs->has_at;
        anchored = vs->anchored;
        smoothed = vs->smoothed;
    }
    for (size_t j = 0; j < n->nargs; j++) {
        if (j == mi || n->args[j]->type == PROMQL_TYPE_STRING) continue;
        if ((rc = eval_node(ev, n->args[j], &vals[j]))) goto done;
    }
    if (anchored && !(fd->flags & PROMQL_F_ANCHORED_SAFE)) {
        rc = exec_fail(q, "anchored modifier can only be used with: %s - not with %s", anchored_safe,
                       fname);
        goto done;
    }
    if (smoothed && !(fd->flags & PROMQL_F_SMOOTHED_SAFE)) {
        rc = exec_fail(q, "smoothed modifier can only be used with: %s - not with %s", smoothed_safe,
                       fname);
        goto done;
    }
    /* Start timestamps reach a function only from a range selector:
     * subqueries (like every expression) have none. */
    bool want_st = fd->flags & PROMQL_F_ST;
    if (!from_subq &&
        (rc = fetch(q, marg->a, marg->a->sel_mint, marg->a->sel_maxt, want_st, true, &raw)))
        goto done;

    bool keep_name = fd->flags & PROMQL_F_KEEP_NAME;
    bool is_rate = !strcmp(fname, "rate") || !strcmp(fname, "increase");
    uint32_t arg0_pos = unparen(n->ast->call.args[0])->pos.start;
    int64_t win = 0; /* samples of the current window, counted in q->cur */
    promql_fcall fc;
    memset(&fc, 0, sizeof fc);
    fc.call = n->ast;
    fc.delayed_name = q->delayed;
    fc.anno = &q->anno;
    fc.err = &ferr;
    fc.sargs = sargs;
    fc.range_ms = range;
    fc.offset_ms = offset;
    fc.anchored = anchored;
    fc.smoothed = smoothed;
    promql_lcache lc;
    promql_lcache_init(&lc);
    fc.lcache = &lc;
    uint32_t *resets = NULL;
    size_t nresets = 0, resets_cap = 0;

    for (size_t i = 0; i < raw.n && !rc; i++) {
        promql_series *s = &raw.v[i];
        if ((rc = qcheck(q))) break;
        q->cur -= win;
        win = 0;
        drop_stale(s);
        bool drop = !keep_name || s->drop_name;
        promql_series ss = {NULL, NULL, 0, 0, drop};
        fc.metric = s->metric;
        fc.resets = NULL;
        if ((fd->flags & PROMQL_F_RESETS) && s->n <= UINT32_MAX) {
            nresets = 0;
            const promql_fpoint *p = s->pts;
            const int64_t *st = s->st;
            if (st) {
                for (size_t k = 1; k < s->n; k++) {
                    if (p[k].v < p[k - 1].v ||
                        promql_st_reset(st[k - 1], p[k - 1].t, st[k], p[k].t)) {
                        resets = mem_grow(resets, sizeof *resets, nresets + 1, &resets_cap);
                        resets[nresets++] = (uint32_t)k;
                    }
                }
            } else {
                for (size_t k = 1; k < s->n; k++) {
                    if (p[k].v < p[k - 1].v) {
                        resets = mem_grow(resets, sizeof *resets, nresets + 1, &resets_cap);
                        resets[nresets++] = (uint32_t)k;
                    }
                }
            }
            static const uint32_t no_resets[1];
            fc.resets = resets ? resets : no_resets;
            fc.nresets = nresets;
        }
        size_t lo = 0, hi = 0, hlo = 0, hhi = 0;
        int64_t step = -1;
        uint32_t it = 0;
        for (int64_t ts = ev->start; ts <= ev->end; ts += ev->interval) {
            if ((rc = qcheck_every(q, &it))) break;
            step++;
            for (size_t j = 0; j < n->nargs; j++) {
                if (j == mi || !vals[j].n) continue;
                const promql_series *vs = &vals[j].v[0];
                sargs[j] = (size_t)step < vs->n ? vs->pts[step].v : NAN;
            }
            if (ts == ev->start || !has_at) {
                int64_t maxt = ts - offset, mint = maxt - range;
                if (anchored) {
                    mint -= q->lookback;
                } else if (smoothed) {
                    mint -= q->lookback;
                    maxt += q->lookback;
                }
                if (mint == maxt) {
                    lo = hi = hlo = hhi = 0;
                } else {
                    window_advance(s->pts, s->n, mint, maxt, &lo, &hi);
                    if (s->nh) hwindow_advance(s->hpts, s->nh, mint, maxt, &hlo, &hhi);
                }
                int64_t nw = (int64_t)(hi - lo + hhi - hlo);
                q->cur += nw - win;
                win = nw;
                if (q->cur > q->max_samples) {
                    rc = too_many_samples(q);
                    break;
                }
            }
            if (hi == lo && hhi == hlo) continue;
            fc.ts = ts;
            /* (A series may have no float or no histogram array: no
             * pointer arithmetic on NULL.) */
            fc.pts = s->pts ? s->pts + lo : NULL;
            fc.st = s->st ? s->st + lo : NULL;
            fc.n = hi - lo;
            fc.base = lo;
            fc.hpts = s->hpts ? s->hpts + hlo : NULL;
            fc.nh = hhi - hlo;
            double v;
            int r = -2;
            promql_fh *hv = NULL;
            if (fc.nh) r = promql_range_hist(&fc, &v, &hv);
            if (r == -2) {
                if (hi == lo) continue;
                fc.nh = 0;
                r = fd->range(&fc, &v);
            }
            if (r < 0) {
                rc = exec_fail(q, "%s", buf_cstr(&ferr));
                break;
            }
            if (r > 0 && hv)
                promql_series_add_hist(&ss, ts, hv);
            else if (r > 0)
                series_add(&ss, ts, v);
        }
        if (rc) {
            mem_free(ss.pts);
            promql_series_free_hists(&ss);
            break;
        }
        if (ss.n || ss.nh) {
            if (q->cur + (int64_t)(ss.n + ss.nh) > q->max_samples) {
                mem_free(ss.pts);
                promql_series_free_hists(&ss);
                rc = too_many_samples(q);
                break;
            }
            q->cur += (int64_t)(ss.n + ss.nh);
            if (is_rate) {
                size_t nl;
                const char *name = labels_metric_name(s->metric, &nl);
                if (nl && !has_suffix(name, nl, "_total") && !has_suffix(name, nl, "_sum") &&
                    !has_suffix(name, nl, "_count") && !has_suffix(name, nl, "_bucket")) {
                    buf t;
                    buf_init(&t, BUF_UNLIMITED);
                    expfmt_quote_go(buf_sink, &t, name, nl);
                    promql_anno_add(&q->anno, PROMQL_ANNO_INFO, arg0_pos,
                                    "metric might not be a counter, name does not end in "
                                    "_total/_sum/_count/_bucket: %s",
                                    buf_cstr(&t));
                    buf_cleanup(&t);
                }
            }
            ss.metric = s->metric;
            s->metric = NULL;
            if (!q->delayed && drop) drop_names_now(&ss);
            promql_series *d = mat_add(out, ss.metric, drop);
            *d = ss;
        }
        mem_free(s->pts);
        s->pts = NULL;
        s->n = 0;
    }
    q->cur -= win;
    promql_lcache_cleanup(&lc);
    mem_free(resets);
    if (rc) goto done;

    if (!strcmp(fname, "absent_over_time")) {
        promql_matrix res = {0};
        rc = absent_steps(ev, out, n->ast->call.args[0], &res);
        promql_matrix_cleanup(out);
        *out = res;
        goto done;
    }
    if (!q->delayed && matrix_has_dupes(out)) rc = same_labelset_error(q);

done:
    q->cur -= subq_total;
    for (size_t j = 0; j < n->nargs; j++)
        promql_matrix_cleanup(&vals[j]);
    mem_free(vals);
    mem_free(sargs);
    promql_matrix_cleanup(&raw);
    buf_cleanup(&ferr);
    if (rc) promql_matrix_cleanup(out);
    return rc;
}

static int eval_call_args(evaluator *ev, pnode *n, size_t mi, promql_matrix *out);

static int eval_call(evaluator *ev, pnode *n, promql_matrix *out)
{
    qctx *q = ev->q;
    const char *name = n->fdef->name;
    memset(out, 0, sizeof *out);
    if ((!strcmp(name, "timestamp") || !strcmp(name, "start_timestamp")) && n->nargs == 1 &&
        n->args[0]->kind == PK_VSEL)
        return eval_timestamp_vsel(ev, n, n->args[0], out);
    size_t mi = SIZE_MAX;
    for (size_t i = 0; i < n->nargs; i++) {
        if (n->args[i]->kind == PK_MSEL || n->args[i]->kind == PK_SUBQ) {
            mi = i;
            break;
        }
    }
    if (!strcmp(name, "label_replace")) return eval_label_replace(ev, n, out);
    if (!strcmp(name, "label_join")) return eval_label_join(ev, n, out);
    if (!strcmp(name, "info")) return eval_info(ev, n, out);
    if ((n->fdef->flags & PROMQL_F_SORT) && ev->start != ev->end)
        promql_anno_add(&q->anno, PROMQL_ANNO_WARNING, n->ast->pos.start,
                        "sort is ineffective for range queries since results are always ordered "
                        "by labels");
    bool saved_stats = q->hist_stats;
    if (!strcmp(name, "histogram_count") || !strcmp(name, "histogram_sum") ||
        !strcmp(name, "histogram_avg"))
        q->hist_stats = true;
    else if (!strcmp(name, "histogram_quantile") || !strcmp(name, "histogram_fraction"))
        q->hist_stats = false;
    int rc = eval_call_args(ev, n, mi, out);
    q->hist_stats = saved_stats;
    return rc;
}

static int eval_call_args(evaluator *ev, pnode *n, size_t mi, promql_matrix *out)
{
    qctx *q = ev->q;
    const char *name = n->fdef->name;
    if (mi == SIZE_MAX) {
        if (!n->fdef->vec)
            return qfail(q, PROMQL_ERR_INTERNAL, -EINVAL, "unexpected nil implementation for "
                                                          "function \"%s\"",
                         name);
        call_ctx c;
        c.n = n;
        buf_init(&c.err, 4096);
        int rc = range_eval(ev, n->args, n->nargs, NULL, step_vec_call, &c, out);
        buf_cleanup(&c.err);
        return rc;
    }
    if (!n->fdef->range)
        return qfail(q, PROMQL_ERR_INTERNAL, -EINVAL, "function \"%s\" takes no range vector", name);
    return eval_range_call(ev, n, mi, out);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static int step_number(step_env *e, void *ctx)
{
    const pnode *n = ctx;
    promql_evec_push(e->out, promql_empty_labels(), n->num, e->ts, false);
    return 0;
}

static int eval_node(evaluator *ev, pnode *n, promql_matrix *out)
{
    qctx *q = ev->q;
    memset(out, 0, sizeof *out);
    int rc = qcheck(q);
    if (rc) return rc;
    if (ev->end < ev->start) return 0;
    switch (n->kind) {
    case PK_AGG: return eval_agg(ev, n, out);
    case PK_CALL: return eval_call(ev, n, out);
    case PK_UNARY: return eval_unary(ev, n, out);
    case PK_BIN: return eval_binary(ev, n, out);
    case PK_NUM: return range_eval(ev, NULL, 0, NULL, step_number, n, out);
    case PK_STR: return qfail(q, PROMQL_ERR_INTERNAL, -EINVAL, "unexpected string expression");
    case PK_VSEL: return eval_vsel(ev, n, out);
    case PK_MSEL: return eval_msel(ev, n, out);
    case PK_SUBQ: return run_subquery(ev, n, out);
    case PK_STEPINV: return eval_stepinv(ev, n, out);
    }
    return qfail(q, PROMQL_ERR_INTERNAL, -EINVAL, "unhandled expression");
}

/* ---- info() -------------------------------------------------------------------------------- */

/* The first vector selector of expr (depth first) and, walking up through
 * enclosing subqueries until an @ is found, its @ time and summed offset. */
static bool info_ts_offset(pnode *n, ppath *path, bool *has_ts, int64_t *ts, int64_t *off)
{
    if (n->kind == PK_VSEL) {
        *has_ts = n->has_at;
        *ts = n->at;
        *off = n->orig_offset;
        for (size_t i = path->n; !*has_ts && i-- > 0;) {
            pnode *p = path->v[i];
            if (p->kind == PK_SUBQ) {
                *off += p->orig_offset;
                *has_ts = p->has_at;
                *ts = p->at;
            }
        }
        return true;
    }
    pnode *tmp[2], **kids;
    size_t k = pchildren(n, &kids, tmp);
    path_push(path, n);
    for (size_t i = 0; i < k; i++) {
        if (info_ts_offset(kids[i], path, has_ts, ts, off)) {
            path->n--;
            return true;
        }
    }
    path->n--;
    return false;
}

static bool is_name_matcher(const label_matcher *m)
{
    return m->name_len == 8 && !memcmp(m->name, "__name__", 8);
}

/* The matchers an info metric's name must satisfy (effectiveInfoNameMatchers):
 * the given ones if one of them is = or =~, else `=~".+_info"` plus them;
 * `="target_info"` when none are given. Appends owned matchers to *v. */
static void effective_name_matchers(const label_matcher **given, size_t n, label_matcher **v,
                                    size_t *nv, size_t *cap, bool *owned_extra)
{
    bool positive = false;
    for (size_t i = 0; i < n; i++)
        if (given[i]->type == MATCH_EQ || given[i]->type == MATCH_RE) positive = true;
    *owned_extra = false;
    if (!positive) {
        *v = mem_grow(*v, sizeof **v, *nv + 1, cap);
        if (n > 0) labels_matcher_init(&(*v)[*nv], MATCH_RE, "__name__", 8, ".+_info", 7, NULL);
        else labels_matcher_init(&(*v)[*nv], MATCH_EQ, "__name__", 8, "target_info", 11, NULL);
        (*nv)++;
        *owned_extra = true;
    }
    for (size_t i = 0; i < n; i++) {
        *v = mem_grow(*v, sizeof **v, *nv + 1, cap);
        const label_matcher *m = given[i];
        labels_matcher_init(&(*v)[*nv], m->type, m->name, m->name_len, m->value, m->value_len, NULL);
        (*nv)++;
    }
}

static void quote_meta(buf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (strchr("\\.+*?()|[]{}^$", s[i]) && s[i]) buf_putc(out, '\\');
        buf_putc(out, s[i]);
    }
}

static int eval_info(evaluator *ev, pnode *n, promql_matrix *out)
{
    qctx *q = ev->q;
    int rc;
    bool has_ts = false;
    int64_t ts_at = 0, off = 0;
    ppath path = {0};
    info_ts_offset(n->args[0], &path, &has_ts, &ts_at, &off);
    mem_free(path.v);

    promql_matrix base;
    if ((rc = eval_node(ev, n->args[0], &base))) return rc;

    /* data label matchers (args[1]) */
    const label_matcher *dm = NULL;
    size_t ndm = 0;
    if (n->nargs > 1) {
        const promql_node *sel = unparen(n->ast->call.args[1]);
        if (sel->kind == PROMQL_NODE_VECTOR_SELECTOR) {
            dm = sel->vector.matchers;
            ndm = sel->vector.n_matchers;
        }
    }
    const label_matcher **name_ms = mem_calloc(ndm + 1, sizeof *name_ms);
    size_t nname = 0;
    for (size_t i = 0; i < ndm; i++)
        if (is_name_matcher(&dm[i])) name_ms[nname++] = &dm[i];
    label_matcher *eff = NULL;
    size_t neff = 0, effcap = 0;
    bool extra;
    label_matcher target;
    if (n->nargs > 1) {
        effective_name_matchers(name_ms, nname, &eff, &neff, &effcap, &extra);
    } else {
        labels_matcher_init(&target, MATCH_EQ, "__name__", 8, "target_info", 11, NULL);
        const label_matcher *t = &target;
        effective_name_matchers(&t, 1, &eff, &neff, &effcap, &extra);
        labels_matcher_cleanup(&target);
    }
    /* series that are info metrics themselves pass through unchanged */
    bool *ignore = mem_calloc(base.n ? base.n : 1, sizeof *ignore);
    for (size_t i = 0; i < base.n; i++) {
        size_t nl;
        const char *name = labels_metric_name(base.v[i].metric, &nl);
        bool all = true;
        for (size_t k = 0; k < neff && all; k++)
            all = labels_matcher_matches(&eff[k], name, nl);
        ignore[i] = all;
    }
    /* identifying label values of the other series */
    static const char *const idl[2] = {"instance", "job"};
    buf idre[2];
    bool idset[2] = {false, false};
    sigtab seen[2];
    for (int k = 0; k < 2; k++) {
        buf_init(&idre[k], BUF_UNLIMITED);
        sigtab_init(&seen[k]);
    }
    for (size_t i = 0; i < base.n; i++) {
        if (ignore[i]) continue;
        for (int k = 0; k < 2; k++) {
            size_t vl;
            const char *v = labels_get(base.v[i].metric, idl[k], strlen(idl[k]), &vl);
            if (!v || !vl) continue;
            bool added;
            sigtab_intern(&seen[k], v, vl, &added);
            if (!added) continue;
            if (idset[k]) buf_putc(&idre[k], '|');
            quote_meta(&idre[k], v, vl);
            idset[k] = true;
        }
    }
    promql_matrix infom = {0};
    if (idset[0] || idset[1]) {
        label_matcher *ms = NULL;
        size_t nms = 0, cap = 0;
        for (int k = 0; k < 2; k++) {
            if (!idset[k]) continue;
            ms = mem_grow(ms, sizeof *ms, nms + 1, &cap);
            labels_matcher_init(&ms[nms++], MATCH_RE, idl[k], strlen(idl[k]), buf_cstr(&idre[k]),
                                idre[k].len, NULL);
        }
        for (size_t i = 0; i < ndm; i++) {
            if (is_name_matcher(&dm[i])) continue;
            ms = mem_grow(ms, sizeof *ms, nms + 1, &cap);
            labels_matcher_init(&ms[nms++], dm[i].type, dm[i].name, dm[i].name_len, dm[i].value,
                                dm[i].value_len, NULL);
        }
        bool x;
        effective_name_matchers(name_ms, nname, &ms, &nms, &cap, &x);
        int64_t start = has_ts ? ts_at : ev->start, end = has_ts ? ts_at : ev->end;
        start -= q->lookback - 1;
        start -= off;
        end -= off;
        buf e;
        buf_init(&e, 4096);
        promql_matrix raw = {0};
        rc = q->src && q->src->select ? q->src->select(q->src->ctx, ms, nms, start, end, &raw, &e) : 0;
        if (rc < 0) {
            promql_matrix_cleanup(&raw);
            rc = qfail(q, PROMQL_ERR_INTERNAL, -EIO, "%s", e.len ? buf_cstr(&e) : strerror(-rc));
        } else {
            rc = eval_series(ev, &raw, off, has_ts, ts_at, true, &infom);
        }
        buf_cleanup(&e);
        labels_matchers_free(ms, nms);
    }
    for (int k = 0; k < 2; k++) {
        buf_cleanup(&idre[k]);
        sigtab_free(&seen[k]);
    }
    /* the data label names info labels are restricted to (without __name__) */
    bool have_data = false;
    for (size_t i = 0; i < ndm; i++)
        if (!is_name_matcher(&dm[i])) have_data = true;

    size_t *bcur = mem_calloc(base.n ? base.n : 1, sizeof *bcur);
    size_t *icur = mem_calloc(infom.n ? infom.n : 1, sizeof *icur);
    /* info signature: name + instance + job of the info series itself */
    buf sig;
    buf_init(&sig, BUF_UNLIMITED);
    sigtab isig;
    sigtab_init(&isig);
    uint32_t *info_sig = mem_calloc(infom.n ? infom.n : 1, sizeof *info_sig);
    for (size_t i = 0; i < infom.n && !rc; i++) {
        buf_reset(&sig);
        size_t nl;
        const char *name = labels_metric_name(infom.v[i].metric, &nl);
        buf_append(&sig, name, nl + 1);
        for (int k = 0; k < 2; k++) {
            size_t vl;
            const char *v = labels_get(infom.v[i].metric, idl[k], strlen(idl[k]), &vl);
            buf_puts(&sig, "\x01");
            if (v) buf_append(&sig, v, vl);
        }
        info_sig[i] = sigtab_intern(&isig, sig.data, sig.len, NULL);
    }
    size_t nsig = isig.n;
    int64_t *best = mem_calloc(nsig ? nsig : 1, sizeof *best);
    int32_t *best_i = mem_calloc(nsig ? nsig : 1, sizeof *best_i);
    uint64_t *best_stamp = mem_calloc(nsig ? nsig : 1, sizeof *best_stamp);
    uint64_t stamp = 0;
    /* info metric names present */
    sigtab inames;
    sigtab_init(&inames);
    for (size_t i = 0; i < infom.n; i++) {
        size_t nl;
        const char *name = labels_metric_name(infom.v[i].metric, &nl);
        sigtab_intern(&inames, name, nl, NULL);
    }
    out_acc acc = {out, NULL, 0, {0}, false};
    imap_init(&acc.idx);
    labels_builder lb, ib;
    labels_builder_init(&lb);
    labels_builder_init(&ib);
    promql_lcache lc;
    promql_lcache_init(&lc);
    int64_t orig = q->cur, temp = q->cur;
    memset(out, 0, sizeof *out);
    for (int64_t ts = ev->start; ts <= ev->end && !rc; ts += ev->interval) {
        if ((rc = qcheck(q))) break;
        q->cur = temp;
        stamp++;
        /* newest info sample per signature */
        for (size_t i = 0; i < infom.n && !rc; i++) {
            double f;
            if (!next_value(&infom.v[i], &icur[i], ts, &f)) continue;
            int64_t ot = (int64_t)f;
            uint32_t s = info_sig[i];
            if (best_stamp[s] == stamp) {
                if (best[s] < ot) {
                    best[s] = ot;
                    best_i[s] = (int32_t)i;
                } else if (best[s] == ot) {
                    buf a, b;
                    buf_init(&a, BUF_UNLIMITED);
                    buf_init(&b, BUF_UNLIMITED);
                    labels_format(infom.v[best_i[s]].metric, &a);
                    labels_format(infom.v[i].metric, &b);
                    rc = exec_fail(q, "found duplicate series for info metric: existing %s @ %lld, new %s @ %lld",
                                   buf_cstr(&a), (long long)best[s], buf_cstr(&b), (long long)ot);
                    buf_cleanup(&a);
                    buf_cleanup(&b);
                }
            } else {
                best_stamp[s] = stamp;
                best[s] = ot;
                best_i[s] = (int32_t)i;
            }
        }
        if (rc) break;
        int64_t nout = 0;
        for (size_t bi = 0; bi < base.n && !rc; bi++) {
            double f;
            if (!next_value(&base.v[bi], &bcur[bi], ts, &f)) continue;
            if ((rc = add_samples(q, 1))) break;
            const labels *bm = base.v[bi].metric;
            promql_esample es = {bm, f, ts, base.v[bi].drop_name};
            if (ignore[bi]) {
                if ((rc = out_acc_add(q, &acc, &es, ts))) break;
                nout++;
                continue;
            }
            labels_builder_reset(&ib);
            bool any_info = false;
            for (size_t k = 0; k < inames.n && !rc; k++) {
                buf_reset(&sig);
                buf_append(&sig, inames.s[k], inames.len[k] + 1);
                for (int j = 0; j < 2; j++) {
                    size_t vl;
                    const char *v = labels_get(bm, idl[j], strlen(idl[j]), &vl);
                    buf_puts(&sig, "\x01");
                    if (v) buf_append(&sig, v, vl);
                }
                sig_key key = {&isig, sig.data, sig.len};
                int64_t s = imap_get(&isig.m, strutil_hash64(sig.data, sig.len, 0), sig_eq, &key);
                if (s < 0 || best_stamp[s] != stamp) continue;
                const labels *im = infom.v[best_i[s]].metric;
                for (uint32_t li = 0; li < im->n; li++) {
                    const label *l = &im->v[li];
                    if (is_name_label(l)) continue;
                    if (have_data) {
                        bool listed = false;
                        for (size_t d = 0; d < ndm && !listed; d++)
                            listed = !is_name_matcher(&dm[d]) && dm[d].name_len == l->name_len &&
                                     !memcmp(dm[d].name, l->name, l->name_len);
                        if (!listed) continue;
                    }
                    size_t vl;
                    const char *v = labels_builder_get(&ib, l->name, l->name_len, &vl);
                    if (v && vl && (vl != l->value_len || memcmp(v, l->value, vl))) {
                        rc = exec_fail(q, "conflicting label: %.*s", (int)l->name_len, l->name);
                        break;
                    }
                    if (labels_get(bm, l->name, l->name_len, NULL)) continue;
                    labels_builder_set(&ib, l->name, l->name_len, l->value, l->value_len);
                }
                any_info = true;
            }
            if (rc) break;
            if (!any_info) {
                bool all_empty = true;
                for (size_t d = 0; d < ndm && all_empty; d++)
                    if (!is_name_matcher(&dm[d])) all_empty = labels_matcher_matches_empty(&dm[d]);
                if (!all_empty) continue;
            }
            promql_builder_from(&lb, bm);
            for (size_t k = 0; k < ib.n; k++)
                labels_builder_set(&lb, ib.v[k].name, ib.v[k].name_len, ib.v[k].value,
                                   ib.v[k].value_len);
            es.metric = promql_lcache_put(&lc, labels_builder_finish(&lb, NULL));
            if ((rc = out_acc_add(q, &acc, &es, ts))) break;
            nout++;
        }
        q->cur += nout;
        temp += nout;
        if (!rc && q->cur > q->max_samples) rc = too_many_samples(q);
    }
    if (!rc) q->cur = orig + mat_total(out);
    labels_builder_cleanup(&lb);
    labels_builder_cleanup(&ib);
    promql_lcache_cleanup(&lc);
    out_acc_free(&acc);
    sigtab_free(&inames);
    sigtab_free(&isig);
    buf_cleanup(&sig);
    mem_free(info_sig);
    mem_free(best);
    mem_free(best_i);
    mem_free(best_stamp);
    mem_free(bcur);
    mem_free(icur);
    mem_free(ignore);
    mem_free(name_ms);
    labels_matchers_free(eff, neff);
    promql_matrix_cleanup(&infom);
    promql_matrix_cleanup(&base);
    if (rc) promql_matrix_cleanup(out);
    return rc;
}

/* ---- the entry point ---------------------------------------------------------------------- */

static int cmp_series(const void *a, const void *b)
{
    return labels_compare(((const promql_series *)a)->metric, ((const promql_series *)b)->metric);
}

int promql_eval(const promql_engine_options *opts, const promql_queryable *src,
                const promql_query *query, promql_value *out, promql_annotations *ann,
                promql_error *err)
{
    static const promql_engine_options defaults = {0};
    if (!opts) opts = &defaults;
    memset(out, 0, sizeof *out);
    qctx q;
    memset(&q, 0, sizeof q);
    q.src = src;
    q.err = err;
    if (err) {
        err->kind = PROMQL_ERR_NONE;
        buf_reset(&err->msg);
    }
    q.lookback = opts->lookback_delta_ms > 0 ? opts->lookback_delta_ms : DEFAULT_LOOKBACK_MS;
    q.max_samples = opts->max_samples > 0 ? opts->max_samples : DEFAULT_MAX_SAMPLES;
    q.default_step =
        opts->default_subquery_step_ms > 0 ? opts->default_subquery_step_ms : DEFAULT_SUBQUERY_STEP_MS;
    q.delayed = opts->delayed_name_removal;
    q.use_st = opts->use_start_timestamps;
    q.cancel = opts->cancel;
    int64_t timeout = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    clock_gettime(CLOCK_MONOTONIC, &q.deadline);
    q.deadline.tv_sec += timeout / 1000;
    q.deadline.tv_nsec += (timeout % 1000) * 1000000L;
    if (q.deadline.tv_nsec >= 1000000000L) {
        q.deadline.tv_sec++;
        q.deadline.tv_nsec -= 1000000000L;
    }
    promql_anno_init(&q.anno);
    arena_init(&q.mem, 0);

    int rc = 0;
    const promql_node *root = query ? query->expr : NULL;
    if (!root && query && query->ast) root = query->ast->root;
    if (!root) {
        rc = qfail(&q, PROMQL_ERR_BAD_DATA, -EINVAL, "no expression to evaluate");
        goto done;
    }
    if (query->ast) {
        q.query = query->ast->query;
        q.query_len = query->ast->query_len;
    }
    q.qstart = query->start_ms;
    q.qend = query->end_ms;
    q.qstep = query->step_ms;
    bool instant = query->start_ms == query->end_ms && query->step_ms == 0;
    if ((rc = check_time(&q, q.qstart)) || (rc = check_time(&q, q.qend)) ||
        (rc = check_dur(&q, q.qstep)) || (rc = check_dur(&q, q.lookback)))
        goto done;
    enum promql_type rtype = promql_node_type(root);
    if (!instant) {
        if (query->step_ms <= 0) {
            rc = qfail(&q, PROMQL_ERR_BAD_DATA, -EINVAL,
                       "zero or negative query resolution step widths are not accepted. Try a "
                       "positive integer");
            goto done;
        }
        if (query->end_ms < query->start_ms) {
            rc = qfail(&q, PROMQL_ERR_BAD_DATA, -EINVAL, "end timestamp must not be before start time");
            goto done;
        }
        if (rtype != PROMQL_TYPE_VECTOR && rtype != PROMQL_TYPE_SCALAR) {
            rc = qfail(&q, PROMQL_ERR_BAD_DATA, -EINVAL,
                       "invalid expression type \"%s\" for range query, must be Scalar or instant "
                       "Vector",
                       promql_type_doc_name(rtype));
            goto done;
        }
    }
    pnode *plan;
    if ((rc = plan_build(&q, root, &plan, 0))) goto done;
    bool inv, wrap;
    if ((rc = plan_stepinv(&q, plan, &inv, &wrap))) goto done;
    if (wrap && !(plan = wrap_stepinv(&q, plan))) {
        rc = NOMEM(&q);
        goto done;
    }
    {
        ppath path = {0};
        plan_windows(&q, plan, &path, 0);
        mem_free(path.v);
    }
    set_offsets_for_at(q.qstart, plan);

    if (plan->kind == PK_STR) {
        out->type = PROMQL_TYPE_STRING;
        out->t = q.qstart;
        out->string = mem_strndup(plan->ast->string.val.p, plan->ast->string.val.len);
        out->string_len = plan->ast->string.val.len;
        goto done;
    }
    evaluator ev = {&q, q.qstart, instant ? q.qstart : q.qend, instant ? 1 : q.qstep};
    promql_matrix m;
    if ((rc = eval_node(&ev, plan, &m))) goto done;
    if (q.delayed) {
        drop_marked_names(&m);
        if ((rc = merge_same_labelsets(&q, &m))) {
            promql_matrix_cleanup(&m);
            goto done;
        }
    }
    if (!instant && (rc = qcheck(&q))) {
        promql_matrix_cleanup(&m);
        goto done;
    }
    if (instant && rtype == PROMQL_TYPE_VECTOR) {
        out->type = PROMQL_TYPE_VECTOR;
        out->t = q.qstart;
        out->vector.v = mem_calloc(m.n ? m.n : 1, sizeof *out->vector.v);
        out->vector.cap = m.n ? m.n : 1;
        for (size_t i = 0; i < m.n; i++) {
            promql_sample *s = &out->vector.v[out->vector.n++];
            s->metric = m.v[i].metric;
            m.v[i].metric = NULL;
            s->t = q.qstart;
            s->v = m.v[i].n ? m.v[i].pts[0].v : NAN;
            if (!m.v[i].n && m.v[i].nh) {
                s->h = m.v[i].hpts[0].h;
                m.v[i].hpts[0].h = NULL;
            }
            s->drop_name = m.v[i].drop_name;
        }
        promql_matrix_cleanup(&m);
    } else if (instant && rtype == PROMQL_TYPE_SCALAR) {
        out->type = PROMQL_TYPE_SCALAR;
        out->t = q.qstart;
        out->scalar = m.n && m.v[0].n ? m.v[0].pts[0].v : NAN;
        promql_matrix_cleanup(&m);
    } else {
        out->type = PROMQL_TYPE_MATRIX;
        if (m.n > 1) qsort(m.v, m.n, sizeof *m.v, cmp_series);
        out->matrix = m;
    }
done:
    if (ann) promql_anno_render(&q.anno, q.query ? q.query : "", q.query_len, ann);
    promql_anno_cleanup(&q.anno);
    arena_cleanup(&q.mem);
    if (rc) promql_value_cleanup(out);
    return rc;
}
