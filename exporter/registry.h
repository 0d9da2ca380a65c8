/* registry: a small metric registry (counters, gauges, histograms with
 * label vectors) and its exposition, for a program's own /metrics.
 *
 * Updates are lock-free (atomic compare-and-swap on the value bits), so hot
 * paths may count freely; creating children and writing take the registry
 * mutex. Collectors add values computed at exposition time (process stats,
 * database size). Families are written sorted by name, children by label
 * values, as Prometheus's client libraries do.
 *
 * Ownership: the registry owns families and children; pointers to them stay
 * valid until registry_free() (or registry_family_remove() for a child). */
#ifndef SIDEWATCH_REGISTRY_H
#define SIDEWATCH_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "expfmt.h"
#include "textparse.h"
#include "textwrite.h"

typedef struct registry registry;
typedef struct registry_family registry_family;
typedef struct registry_metric registry_metric;
typedef struct registry_collect registry_collect;

/* A new empty registry; NULL only if memory runs out. */
registry *registry_new(void);
/* Frees the registry with all families and children. NULL is a no-op. */
void registry_free(registry *r);

/* Registers a family. `label_names` is a NULL-terminated list (copied) or
 * NULL. Registering an existing name returns the existing family if the
 * type matches, else NULL. Counter names should end in "_total". */
registry_family *registry_counter(registry *r, const char *name, const char *help,
                                  const char *const *label_names);
registry_family *registry_gauge(registry *r, const char *name, const char *help,
                                const char *const *label_names);
/* `bounds` are the bucket upper bounds in increasing order (copied); +Inf
 * is implicit. */
registry_family *registry_histogram(registry *r, const char *name, const char *help,
                                    const char *const *label_names, const double *bounds,
                                    size_t n_bounds);

/* The child for these label values (as many as the family has names; NULL
 * for a family without labels), created on first use. Never NULL. */
registry_metric *registry_child(registry_family *f, const char *const *label_values);
/* Removes a child (e.g. when a target goes away). Pointers to it become
 * invalid. Unknown children are ignored. */
void registry_family_remove(registry_family *f, const char *const *label_values);

/* Reference-counted children, for owners that may share label values (two
 * targets with the same job and instance): acquire returns the child and
 * counts a holder; release drops the holder and removes the child when the
 * last one is gone. */
registry_metric *registry_acquire(registry_family *f, const char *const *label_values);
void registry_release(registry_metric *m);

void registry_inc(registry_metric *m);
void registry_add(registry_metric *m, double v);
void registry_set(registry_metric *m, double v);
void registry_observe(registry_metric *m, double v);
/* Current value (counter/gauge) or observation count (histogram). */
double registry_value(registry_metric *m);

/* Collectors run at every registry_write() and emit families through the
 * registry_collect_* calls. */
typedef void (*registry_collector_fn)(registry_collect *c, void *ctx);
void registry_add_collector(registry *r, registry_collector_fn fn, void *ctx);
/* Starts a family inside a collector. */
void registry_collect_family(registry_collect *c, const char *name, const char *help,
                             enum expfmt_type type);
/* Adds a sample named like the family to the current collected family;
 * `labels` may be NULL when n is 0 (copied). */
void registry_collect_sample(registry_collect *c, const textwrite_label *labels, size_t n,
                             double v);

/* Writes every family in `format`. Returns 0 or the sink's error. */
int registry_write(registry *r, enum textparse_format format, expfmt_sink sink, void *ctx);

/* Writes every family in the protobuf format (PROTOPARSE_CONTENT_TYPE: one
 * length-delimited io.prometheus.client.MetricFamily per family), as
 * client_golang does: families sorted by name, label pairs sorted by name,
 * histograms with cumulative buckets and no +Inf bucket; collected
 * families of other types than counter and gauge as UNTYPED. Returns 0 or
 * the sink's first error (writing stops there). */
int registry_write_protobuf(registry *r, expfmt_sink sink, void *ctx);

/* Converts a body in the text format 0.0.4 (what registry_write writes,
 * or any collector's text) to the protobuf format: samples of a family
 * whose TYPE is counter, gauge or untyped keep it, with its HELP; every
 * other sample (the parts of histograms and summaries) goes into an
 * UNTYPED family named like the sample. Timestamps are kept. Returns 0,
 * -EINVAL if the text does not parse (nothing more is written), or the
 * sink's error. */
int registry_text_to_protobuf(const char *text, size_t len, expfmt_sink sink, void *ctx);

/* Whether an Accept header asks for the protobuf format before any other
 * format sidewatch writes, as client_golang's
 * expfmt.NegotiateIncludingOpenMetrics decides: entries ordered by q, then
 * by specificity (goautoneg); the first that names
 * application/vnd.google.protobuf with proto=io.prometheus.client.MetricFamily
 * and encoding=delimited wins, text/plain (version 0.0.4, 1.0.0 or none) or
 * application/openmetrics-text (1.0.0, 0.0.1 or none) lose. NULL is false. */
bool registry_negotiate_protobuf(const char *accept);

#endif
