/* TEMP: store histogram stubs until the real implementation lands. */
#include <stdlib.h>

#include "store.h"

void store_batch_add_histogram(store_batch *b, uint64_t ref, int64_t t_ms, const nhist *h)
{
    (void)b, (void)ref, (void)t_ms, (void)h;
}

int store_read_histograms(store_reader *r, uint64_t ref, int64_t mint, int64_t maxt,
                          store_hsample **out, size_t *n)
{
    (void)r, (void)ref, (void)mint, (void)maxt;
    *out = NULL;
    *n = 0;
    return 0;
}

void store_hsamples_free(store_hsample *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) nhist_cleanup(&s[i].h);
    free(s);
}
