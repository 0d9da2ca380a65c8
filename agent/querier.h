/* querier: the store as a PromQL data source (promql_queryable, see
 * promql/eval.h), for the query API and the rule engine.
 *
 * A querier serves one query (or one rule evaluation): querier_begin takes
 * a snapshot on a store reader, so every selector of the query sees the same
 * committed state, and querier_end releases it (keep it short: while a
 * snapshot is held, SQLite's checkpoints cannot complete past it).
 *
 * select() runs store_select and then store_read_samples for each series
 * and hands the points to the engine, staleness markers included (the
 * engine interprets them). Series with no sample in the range (the store's
 * selection is chunk-granular) are left out.
 *
 * Two limits protect the process while loading, before the engine sees the
 * data: a cap on the samples loaded by one query (the engine's
 * --query.max-samples) and a deadline (--query.timeout). Hitting one fails
 * the select with Prometheus's message for it and records which one in
 * querier.limit, so the caller reports the right error type. */
#ifndef SIDEWATCH_QUERIER_H
#define SIDEWATCH_QUERIER_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "promql/eval.h"
#include "store.h"

enum querier_limit {
    QUERIER_LIMIT_NONE,
    QUERIER_LIMIT_SAMPLES,  /* max_samples: "query processing would load too many
                             * samples into memory in query execution" */
    QUERIER_LIMIT_DEADLINE, /* deadline: "query timed out in expression evaluation" */
};

typedef struct querier_options {
    int64_t max_samples; /* samples one query may load; 0 = no cap */
    int64_t deadline_ms; /* CLOCK_MONOTONIC milliseconds (querier_now_ms); 0 = none */
} querier_options;

/* Caller-owned; fields are read-only for callers. */
typedef struct querier {
    store_reader *r; /* borrowed */
    bool snapshot;
    querier_options o;
    int64_t samples;          /* loaded so far */
    uint64_t series;          /* series handed to the engine so far */
    enum querier_limit limit; /* the limit that failed a select, if any */
} querier;

/* Starts a query on r (borrowed; one querier per reader at a time): takes
 * the reader's snapshot. o may be NULL (no limits). Returns 0, or a
 * negative errno (the reader is then unusable for this query; nothing to
 * end). */
int querier_begin(querier *q, store_reader *r, const querier_options *o);
/* Releases the snapshot. Safe on a querier whose begin failed or that was
 * zeroed. */
void querier_end(querier *q);
/* The data source for promql_eval; borrows q, which must stay valid while
 * the engine runs. */
void querier_queryable(querier *q, promql_queryable *out);
/* Milliseconds on CLOCK_MONOTONIC, the clock of querier_options.deadline_ms. */
int64_t querier_now_ms(void);

#endif
