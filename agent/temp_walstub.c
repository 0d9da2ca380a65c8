/* TEMP: stand-ins for store.h's write-ahead log API until wip-rwstore lands
 * (remove with this commit's revert). Nothing is ever read. */
#include <errno.h>

#include "store.h"

uint64_t store_wal_next_seq(store *s)
{
    (void)s;
    return 1;
}

int store_wal_consumer_set(store *s, const char *name, uint64_t next_seq, int64_t max_lag_ms,
                           buf *err)
{
    (void)s, (void)name, (void)next_seq, (void)max_lag_ms, (void)err;
    return 0;
}

int store_wal_consumer_get(store *s, const char *name, store_wal_consumer *out)
{
    (void)s, (void)name, (void)out;
    return -ENOENT;
}

int store_wal_consumer_remove(store *s, const char *name)
{
    (void)s, (void)name;
    return 0;
}

int store_wal_read(store *s, uint64_t from_seq, size_t max_rows, store_wal_batch **out, size_t *n,
                   uint64_t *first_seq)
{
    (void)s, (void)max_rows;
    *out = NULL;
    *n = 0;
    *first_seq = from_seq;
    return 0;
}

void store_wal_batches_free(store_wal_batch *b, size_t n)
{
    (void)b, (void)n;
}

labels *store_series_labels(store *s, uint64_t ref)
{
    (void)s, (void)ref;
    return NULL;
}
