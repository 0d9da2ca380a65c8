/* TEMP: minimal nhist functions until the real module lands. */
#include "nhist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void nhist_init(nhist *h)
{
    memset(h, 0, sizeof *h);
}

void nhist_cleanup(nhist *h)
{
    if (!h) return;
    free(h->pos_spans);
    free(h->neg_spans);
    free(h->pos);
    free(h->neg);
    free(h->custom_values);
    nhist_init(h);
}

bool nhist_is_stale(const nhist *h)
{
    uint64_t b;
    memcpy(&b, &h->sum, sizeof b);
    return b == 0x7ff0000000000002ULL && h->n_pos == 0 && h->n_neg == 0;
}

int nhist_copy(nhist *dst, const nhist *src) { (void)dst, (void)src; return -ENOMEM; }
int nhist_reduce_resolution(nhist *h, int32_t schema) { (void)h, (void)schema; return -EINVAL; }
size_t nhist_bucket_count(const nhist *h) { return h->n_pos + h->n_neg; }
int nhist_validate(const nhist *h, char *err, size_t err_size) { (void)h, (void)err, (void)err_size; return 0; }
