#include "nhcb.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expfmt.h"

void nhcb_init(nhcb *c)
{
    memset(c, 0, sizeof *c);
}

void nhcb_cleanup(nhcb *c)
{
    free(c->b);
    nhcb_init(c);
}

void nhcb_reset(nhcb *c)
{
    c->n = 0;
    c->count = c->sum = 0;
    c->has_count = false;
    c->err = 0;
    c->msg[0] = '\0';
}

/* %g of Go's fmt for the messages. */
static const char *g(double v, char *out)
{
    expfmt_format_float(v, out);
    return out;
}

static void fail(nhcb *c, int err, const char *fmt, double a, double b)
{
    char x[EXPFMT_FLOAT_MAX], y[EXPFMT_FLOAT_MAX];
    c->err = err;
    snprintf(c->msg, sizeof c->msg, fmt, g(a, x), g(b, y));
}

void nhcb_set_bucket(nhcb *c, double le, double count)
{
    if (c->err) return;
    if (isnan(le)) {
        c->err = -EINVAL;
        snprintf(c->msg, sizeof c->msg, "bucket boundary must not be NaN");
        return;
    }
    if (count < 0) {
        fail(c, -EINVAL, "bucket count must be non-negative: le=%s, count=%s", le, count);
        return;
    }
    size_t i = c->n;
    if (c->n > 0 && c->b[c->n - 1].le >= le) {
        /* the first bucket with a bound >= le */
        size_t lo = 0, hi = c->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (c->b[mid].le < le)
                lo = mid + 1;
            else
                hi = mid;
        }
        i = lo;
        if (c->b[i].le == le) return; /* a duplicate */
        if (count > c->b[i].count) {
            fail(c, -EINVAL, "count is not cumulative: %s > %s", count, c->b[i].count);
            return;
        }
    }
    if (i > 0 && count < c->b[i - 1].count) {
        fail(c, -EINVAL, "count is not cumulative: %s < %s", count, c->b[i - 1].count);
        return;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        nhcb_bucket *nb = realloc(c->b, cap * sizeof *nb);
        if (!nb) {
            c->err = -ENOMEM;
            snprintf(c->msg, sizeof c->msg, "out of memory");
            return;
        }
        c->b = nb;
        c->cap = cap;
    }
    memmove(c->b + i + 1, c->b + i, (c->n - i) * sizeof *c->b);
    c->b[i] = (nhcb_bucket){le, count};
    c->n++;
}

void nhcb_set_count(nhcb *c, double count)
{
    if (c->err) return;
    if (count < 0) {
        char x[EXPFMT_FLOAT_MAX];
        c->err = -EINVAL;
        snprintf(c->msg, sizeof c->msg, "count must be non-negative: count=%s", g(count, x));
        return;
    }
    c->count = count;
    c->has_count = true;
}

void nhcb_set_sum(nhcb *c, double sum)
{
    if (c->err) return;
    c->sum = sum;
}

int nhcb_convert(nhcb *c, nhist *out)
{
    nhist_cleanup(out);
    if (c->err) return c->err;
    double count = c->count;
    if (!c->has_count && c->n > 0) count = c->b[c->n - 1].count;
    bool add_inf = c->n == 0 || c->b[c->n - 1].le != INFINITY;
    size_t nb = c->n + (add_inf ? 1 : 0);
    double last = add_inf ? count : c->b[c->n - 1].count;
    bool integer = count == round(count);
    for (size_t i = 0; i < c->n && integer; i++) integer = c->b[i].count == round(c->b[i].count);
    if (count != last) {
        char x[EXPFMT_FLOAT_MAX], y[EXPFMT_FLOAT_MAX], z[EXPFMT_FLOAT_MAX];
        snprintf(c->msg, sizeof c->msg, "count mismatch: count=%s != le=%s count=%s", g(count, x),
                 g(add_inf ? INFINITY : c->b[c->n - 1].le, y), g(last, z));
        return -EINVAL;
    }
    out->is_float = !integer;
    out->schema = NHIST_CUSTOM_SCHEMA;
    out->count = count;
    out->sum = c->sum;
    out->pos_spans = malloc(sizeof *out->pos_spans);
    out->pos = malloc(nb * sizeof *out->pos);
    out->custom_values = nb > 1 ? malloc((nb - 1) * sizeof *out->custom_values) : NULL;
    if (!out->pos_spans || !out->pos || (nb > 1 && !out->custom_values)) {
        nhist_cleanup(out);
        snprintf(c->msg, sizeof c->msg, "out of memory");
        return -ENOMEM;
    }
    out->pos_spans[0] = (nhist_span){0, (uint32_t)nb};
    out->n_pos_spans = 1;
    out->n_pos = nb;
    double prev = 0;
    for (size_t i = 0; i < nb; i++) {
        double cum = i < c->n ? c->b[i].count : count;
        out->pos[i] = cum - prev;
        prev = cum;
        if (i + 1 < nb) out->custom_values[i] = c->b[i].le;
    }
    out->n_custom_values = nb - 1;
    char err[160];
    if (nhist_validate(out, err, sizeof err) < 0) {
        snprintf(c->msg, sizeof c->msg, "%s", err);
        nhist_cleanup(out);
        return -EINVAL;
    }
    return 0;
}
