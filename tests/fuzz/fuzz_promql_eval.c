/* libFuzzer target for the PromQL evaluator (agent/promql/eval.c, func.c):
 * the input is a query in the parser fuzz target's format (an option byte,
 * then the query); when it parses, it is evaluated over a small fixed data
 * set as an instant query and as a range query, with and without delayed
 * name removal, under a low sample limit and a short timeout. Nothing may
 * crash, leak or trip a sanitizer, and every failure must carry an error
 * kind and a message.
 *
 *   make fuzz-promql_eval FUZZ_SECONDS=60
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "labels.h"
#include "mem.h"
#include "promql/eval.h"
#include "promql/parse.h"
#include "strutil.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

typedef struct fseries {
    labels *ls;
    promql_fpoint pts[64];
    size_t n;
} fseries;

static fseries data[8];
static size_t ndata;

static labels *mk(const char *name, const char *k1, const char *v1, const char *k2, const char *v2)
{
    labels_builder b;
    labels_builder_init(&b);
    labels_builder_set(&b, "__name__", 8, name, strlen(name));
    if (k1) labels_builder_set(&b, k1, strlen(k1), v1, strlen(v1));
    if (k2) labels_builder_set(&b, k2, strlen(k2), v2, strlen(v2));
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return ls;
}

static void setup(void)
{
    if (ndata) return;
    const char *les[] = {"0.1", "1", "+Inf"};
    for (int i = 0; i < 3; i++)
        data[ndata++].ls = mk("x_bucket", "le", les[i], "job", "a");
    data[ndata++].ls = mk("x", "job", "a", NULL, NULL);
    data[ndata++].ls = mk("x", "job", "b", "instance", "1");
    data[ndata++].ls = mk("y_total", "job", "a", NULL, NULL);
    data[ndata++].ls = mk("y_total", "job", "b", "le", "oops");
    data[ndata++].ls = mk("target_info", "job", "a", "version", "1");
    for (size_t s = 0; s < ndata; s++) {
        for (size_t k = 0; k < 64; k++) {
            double v = (double)(k * (s + 1));
            if (s == 5 && k % 9 == 8) v = 0;               /* counter resets */
            if (s == 4 && k == 20) v = NAN;
            if (s == 3 && k == 30) v = strutil_stale_nan(); /* staleness marker */
            data[s].pts[k].t = (int64_t)k * 15000 - 120000;
            data[s].pts[k].v = v;
        }
        data[s].n = 64;
    }
}

static int sel(void *ctx, const label_matcher *ms, size_t n, int64_t mint, int64_t maxt,
               promql_matrix *out, buf *err)
{
    (void)ctx;
    (void)err;
    for (size_t i = 0; i < ndata; i++) {
        if (!labels_match_all(data[i].ls, ms, n)) continue;
        size_t lo = 0;
        while (lo < data[i].n && data[i].pts[lo].t < mint)
            lo++;
        size_t hi = lo;
        while (hi < data[i].n && data[i].pts[hi].t <= maxt)
            hi++;
        if (hi == lo) continue;
        out->v = mem_grow(out->v, sizeof *out->v, out->n + 1, &out->cap);
        promql_series *d = &out->v[out->n++];
        memset(d, 0, sizeof *d);
        d->metric = labels_dup(data[i].ls);
        d->n = d->cap = hi - lo;
        d->pts = mem_malloc(d->n * sizeof *d->pts);
        memcpy(d->pts, data[i].pts + lo, d->n * sizeof *d->pts);
    }
    return 0;
}

static void run(const promql_ast *ast, int64_t start, int64_t end, int64_t step, bool delayed)
{
    promql_engine_options o = {0};
    o.max_samples = 20000;
    o.timeout_ms = 2000;
    o.delayed_name_removal = delayed;
    promql_queryable src = {NULL, sel};
    promql_query q = {ast, ast->root, start, end, step};
    promql_value v;
    promql_annotations ann;
    memset(&ann, 0, sizeof ann);
    promql_error err;
    promql_error_init(&err);
    int rc = promql_eval(&o, &src, &q, &v, &ann, &err);
    if (rc == 0) {
        CHECK(err.kind == PROMQL_ERR_NONE);
        if (v.type == PROMQL_TYPE_MATRIX)
            for (size_t i = 1; i < v.matrix.n; i++)
                CHECK(labels_compare(v.matrix.v[i - 1].metric, v.matrix.v[i].metric) < 0);
        if (step) CHECK(v.type == PROMQL_TYPE_MATRIX);
    } else {
        CHECK(err.kind != PROMQL_ERR_NONE && err.msg.len > 0);
        CHECK(v.type == PROMQL_TYPE_NONE);
    }
    promql_value_cleanup(&v);
    promql_annotations_cleanup(&ann);
    promql_error_cleanup(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    setup();
    if (n < 1) return 0;
    uint8_t opt = d[0];
    promql_parse_options po = {opt & 1, (opt >> 1) & 1, (opt >> 2) & 1, (opt >> 3) & 1};
    promql_ast *ast = NULL;
    buf err;
    buf_init(&err, 1 << 16);
    if (promql_parse((const char *)d + 1, n - 1, &po, &ast, &err) == 0) {
        int64_t t = ((int64_t)(opt >> 4) - 4) * 97000;
        run(ast, t, t, 0, opt & 0x10);
        run(ast, t - 300000, t + 300000, 37000, !(opt & 0x10));
    }
    promql_ast_free(ast);
    buf_cleanup(&err);
    return 0;
}
