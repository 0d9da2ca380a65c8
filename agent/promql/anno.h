/* promql/anno: the warnings and infos ("annotations") a query collects while
 * it is evaluated, as Prometheus's util/annotations does.
 *
 * Annotations are keyed by their message without position: adding the same
 * message again keeps its place in the list (the order first raised) and
 * takes the newer position, as Prometheus's map overwrite does. The
 * histogram_quantile monotonicity info is special: repeated ones merge into
 * one that reports the bucket range, the largest difference, the number of
 * samples and the time span, and keep the first position.
 *
 * Internal to the engine (eval.c, func.c); the public form is
 * promql_annotations in promql/eval.h. */
#ifndef SIDEWATCH_PROMQL_ANNO_H
#define SIDEWATCH_PROMQL_ANNO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hmap.h"
#include "promql/eval.h"

enum promql_anno_kind { PROMQL_ANNO_WARNING, PROMQL_ANNO_INFO };

typedef struct promql_anno {
    enum promql_anno_kind kind;
    char *msg; /* owned; "PromQL warning: ..." without the position */
    size_t msg_len;
    uint64_t hash;
    uint32_t pos; /* byte offset in the query text */
    /* histogram_quantile forced monotonicity (msg is then the key) */
    bool monotonicity;
    int64_t min_ts, max_ts;
    double min_bucket, max_bucket, max_diff;
    int64_t count;
} promql_anno;

typedef struct promql_anno_set {
    promql_anno *v;
    size_t n, cap;
    hmap idx; /* message hash -> entry index + 1 */
} promql_anno_set;

void promql_anno_init(promql_anno_set *s);
void promql_anno_cleanup(promql_anno_set *s);

/* Adds an annotation whose message is the printf-style text (the
 * "PromQL warning: " or "PromQL info: " prefix is added here) at byte
 * offset `pos` of the query. Never fails (memory exhaustion aborts). */
void promql_anno_add(promql_anno_set *s, enum promql_anno_kind kind, uint32_t pos, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

/* The histogram_quantile "needed to be fixed for monotonicity" info;
 * `metric` may be empty (borrowed). */
void promql_anno_add_monotonicity(promql_anno_set *s, const char *metric, size_t metric_len,
                                  uint32_t pos, int64_t ts, double min_bucket, double max_bucket,
                                  double max_diff);

/* Renders every annotation with " (line:col)" of its position in `query`
 * into out (which the caller cleans up with promql_annotations_cleanup;
 * out's existing entries are kept). */
void promql_anno_render(const promql_anno_set *s, const char *query, size_t query_len,
                        promql_annotations *out);

#endif
