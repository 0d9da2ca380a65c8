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
