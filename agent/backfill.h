/* backfill: `sidewatch import openmetrics FILE --storage.path DIR`, which
 * loads an OpenMetrics file into the store like promtool's
 * `tsdb create-blocks-from openmetrics`: every sample must carry a
 * timestamp; series may appear in any order and their samples need not be
 * sorted. The whole file is parsed and checked before anything is written,
 * so a file with an error imports nothing. */
#ifndef SIDEWATCH_BACKFILL_H
#define SIDEWATCH_BACKFILL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

/* Largest input accepted (the file is mapped and indexed in memory). */
#define BACKFILL_MAX_FILE_BYTES (16LL * 1024 * 1024 * 1024)

typedef struct backfill_result {
    uint64_t series;
    uint64_t samples;
    uint64_t duplicates; /* same series and timestamp, same value: dropped */
    int64_t min_t, max_t;
} backfill_result;

/* Imports data[0..len) (OpenMetrics text, borrowed) into st. Returns 0 and
 * fills *res, or a negative errno with the reason ("<line>:<col>: <parser
 * message>", "expected timestamp for series {...}, got none", conflicting
 * values for one timestamp, store errors) appended to err; on a parse error
 * nothing is written. */
int backfill_openmetrics(store *st, const char *data, size_t len, backfill_result *res, buf *err);

/* Reads `path` and imports it (see backfill_openmetrics). */
int backfill_openmetrics_file(store *st, const char *path, backfill_result *res, buf *err);

#endif
