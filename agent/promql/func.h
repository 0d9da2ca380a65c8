/* promql/func: the PromQL functions and the numeric helpers the engine
 * shares with them (Kahan summation, quantiles, Go-compatible sorting and
 * number formatting). Internal to the engine: eval.c decides when and over
 * what a function runs, func.c computes one step of it.
 *
 * Two kinds of functions:
 *  - range functions (rate, *_over_time, ...) see the points of one series in
 *    one window and produce at most one value (promql_range_fn);
 *  - vector functions (abs, clamp, histogram_quantile, sort, ...) see the
 *    instant vectors of their arguments at one step and append samples to an
 *    output vector (promql_vec_fn).
 * label_replace, label_join, info and timestamp-over-a-selector are handled by
 * eval.c itself because they work on whole series or on raw samples.
 *
 * Labels in vectors are borrowed; labels a function creates are interned in
 * the call's promql_lcache, which lives as long as the node's evaluation. */
#ifndef SIDEWATCH_PROMQL_FUNC_H
#define SIDEWATCH_PROMQL_FUNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "hmap.h"
#include "labels.h"
#include "promql/anno.h"
#include "promql/histogram.h"
#include "promql/ast.h"
#include "promql/eval.h"
#include "promql/parse.h"

/* ---- numeric helpers ------------------------------------------------------ */

/* Kahan-Babuska summation step, as Prometheus's kahansum.Inc: adds inc to
 * *sum keeping the compensation in *c (reset when the sum overflows). */
static inline void promql_kahan_inc(double inc, double *sum, double *c)
{
    double s = *sum, t = s + inc;
    if (t > 1.7976931348623157e308 || t < -1.7976931348623157e308) {
        *c = 0;
    } else if ((s < 0 ? -s : s) >= (inc < 0 ? -inc : inc)) {
        *c += (s - t) + inc;
    } else {
        *c += (inc - t) + s;
    }
    *sum = t;
}

/* Go's math.Pow (which differs from pow() in the last bit for some
 * integral exponents). */
double promql_pow(double x, double y);

/* The q-quantile of vals (sorted in place, NaN first), as Prometheus's
 * quantile(): NaN for an empty set or NaN q, -Inf for q < 0, +Inf for q > 1,
 * otherwise linear interpolation between the closest ranks. */
double promql_quantile(double q, double *vals, size_t n);

/* Appends f as Go's strconv.FormatFloat(f, 'f', -1, 64) (shortest digits
 * that round-trip, never an exponent; "NaN", "+Inf", "-Inf"). */
void promql_format_float_f(double f, buf *out);
/* Appends f as Go's %g (strconv 'g', shortest; "NaN", "+Inf", "-Inf"). */
void promql_format_float_g(double f, buf *out);

/* The expression inside any number of parentheses. */
const promql_node *promql_unparen(const promql_node *n);

/* The empty label set, with the hash labels_builder_finish() gives an empty
 * set (labels_empty()'s differs, so the two would not compare equal).
 * Borrowed; never free it (labels_dup() it for an owned copy). */
const labels *promql_empty_labels(void);

/* labels_builder_from() that also accepts an empty set with an empty
 * builder (labels.c would memcpy from NULL). */
static inline void promql_builder_from(labels_builder *b, const labels *ls)
{
    labels_builder_reset(b);
    if (ls->n) labels_builder_from(b, ls);
}

/* ---- instant vectors with borrowed labels --------------------------------- */

typedef struct promql_esample {
    const labels *metric; /* borrowed */
    double f;
    int64_t t;
    bool drop_name;
    /* A native histogram sample (f unused), or NULL. In an input vector it
     * is borrowed from the input matrix; in an output vector it is owned
     * by the vector when h_owned (freed or moved by the engine), borrowed
     * from an input otherwise. */
    promql_fh *h;
    bool h_owned;
} promql_esample;

typedef struct promql_evec {
    promql_esample *v;
    size_t n, cap;
} promql_evec;

void promql_evec_push(promql_evec *v, const labels *metric, double f, int64_t t, bool drop_name);
/* Pushes a histogram sample; the vector owns h if owned. */
void promql_evec_push_h(promql_evec *v, const labels *metric, promql_fh *h, bool owned, int64_t t,
                        bool drop_name);
/* Frees the owned histograms of v's samples and empties it (keeps the array). */
void promql_evec_reset(promql_evec *v);
void promql_evec_free(promql_evec *v);

/* A set of label sets created during one node's evaluation. put() takes an
 * owned set and returns the canonical pointer (the argument is freed when an
 * equal set is already there). Everything is freed by cleanup. */
typedef struct promql_lcache {
    hmap m;
    labels **all;
    size_t n, cap;
} promql_lcache;

void promql_lcache_init(promql_lcache *c);
void promql_lcache_cleanup(promql_lcache *c);
const labels *promql_lcache_put(promql_lcache *c, labels *owned);

/* The label set without __name__, __type__ and __unit__ (Prometheus's
 * DropReserved(schema.IsMetadataLabel)), interned in c; `ls` itself when it
 * has none of them. */
const labels *promql_drop_metric_name(promql_lcache *c, const labels *ls);

/* ---- function calls ---------------------------------------------------------- */

typedef struct promql_fcall {
    const promql_node *call; /* the CALL node (for string arguments and positions) */
    int64_t ts;              /* evaluation timestamp of this step */
    bool delayed_name;       /* delayed __name__ removal */
    promql_anno_set *anno;
    promql_lcache *lcache;
    buf *err; /* message of a failing call (return < 0) */

    /* vector functions: one vector per argument (a scalar argument is a
     * vector with one sample; string arguments are empty) */
    promql_evec *in;
    size_t nin;
    promql_evec *out;

    /* range functions: the points of the window (staleness markers removed) */
    const labels *metric;
    const promql_fpoint *pts;
    size_t n;
    const double *sargs; /* scalar arguments by argument index (the matrix one unused) */
    int64_t range_ms, offset_ms;
    bool anchored, smoothed;
    /* optional, for PROMQL_F_RESETS functions: the indexes i of the whole
     * series where a counter reset lies between pts[i - 1] and pts[i]
     * (pts[i] < pts[i - 1], or promql_st_reset() of their start
     * timestamps), ascending, and the index of this window's first point
     * in the series */
    const uint32_t *resets;
    size_t nresets, base;
    /* optional, for PROMQL_F_ST functions: the start timestamps of pts (0 =
     * unknown), NULL when the series has none */
    const int64_t *st;
    /* range functions: the native histogram points of the window (borrowed) */
    const promql_hpoint *hpts;
    size_t nh;
} promql_fcall;

/* Returns 1 and sets *out if the window yields a value, 0 if not, or a
 * negative errno with c->err filled. */
typedef int (*promql_range_fn)(const promql_fcall *c, double *out);
/* Appends to c->out; returns 0 or a negative errno with c->err filled. */
typedef int (*promql_vec_fn)(promql_fcall *c);

enum {
    PROMQL_F_KEEP_NAME = 1 << 0,     /* last_over_time, first_over_time: output keeps __name__ */
    PROMQL_F_AT_UNSAFE = 1 << 1,     /* AtModifierUnsafeFunctions */
    PROMQL_F_ANCHORED_SAFE = 1 << 2, /* may take an anchored range selector */
    PROMQL_F_SMOOTHED_SAFE = 1 << 3, /* may take a smoothed range selector */
    PROMQL_F_SORT = 1 << 4,          /* warns in range queries */
    PROMQL_F_SPECIAL = 1 << 5,       /* evaluated by eval.c itself */
    PROMQL_F_QUERY_CONST = 1 << 6,   /* start(), end(), range(), step(): folded per query */
    PROMQL_F_RESETS = 1 << 7,        /* uses promql_fcall.resets when given */
    PROMQL_F_ST = 1 << 8,            /* uses promql_fcall.st (use_start_timestamps) */
    PROMQL_F_HIST = 1 << 9,          /* vector function that reads histogram samples (esample.h) */
};

/* Whether the start timestamp cur_st of the sample at cur_t says that the
 * counter was reset after the previous sample (prev_st, prev_t): no for
 * an unknown (0) start, one at or after cur_t (invalid, or OTel's
 * "unknown start"), or one before prev_t; yes for one after prev_t. A
 * start equal to prev_t is a reset only if the previous sample's start
 * is known, valid and not prev_t itself (a delta sample, not a cumulative
 * series whose start is unknown). Prometheus's isStartTimestampReset. */
static inline bool promql_st_reset(int64_t prev_st, int64_t prev_t, int64_t cur_st, int64_t cur_t)
{
    if (cur_st == 0 || cur_st >= cur_t || cur_st < prev_t) return false;
    if (cur_st > prev_t) return true;
    return prev_st != 0 && prev_st < prev_t;
}

/* Whether a start timestamp reaches back over the previous sample without
 * being the previous sample's start: the samples' intervals overlap
 * (Prometheus warns about it). */
static inline bool promql_st_overlap(int64_t prev_st, int64_t prev_t, int64_t cur_st)
{
    return cur_st != 0 && cur_st < prev_t && cur_st != prev_st;
}

typedef struct promql_fdef {
    const char *name;
    promql_range_fn range;
    promql_vec_fn vec;
    unsigned flags;
} promql_fdef;

/* A range function over a window with native histogram points (c->nh >
 * 0; floats may be there too), as Prometheus evaluates it: returns 1 with
 * a float result in *v or a histogram one in *out (new, caller frees), 0
 * for no result (annotations added), or -2 when the function ignores
 * histograms (the caller evaluates the float points alone). */
int promql_range_hist(const promql_fcall *c, double *v, promql_fh **out);

/* The implementation of the function called `name`, or NULL. */
const promql_fdef *promql_func_find(const char *name);

/* Labels for absent()/absent_over_time(): the equality matchers of the
 * selector `arg` (other than __name__; a name matched twice is dropped).
 * Caller frees. */
labels *promql_absent_labels(const promql_node *arg);

#endif
