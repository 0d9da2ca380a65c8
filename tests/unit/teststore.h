/* Helpers for the unit tests of modules built on labels and the store
 * (apart from testutil.h, which every test includes: labels.h's names would
 * clash with some tests' own). Include after testutil.h. */
#ifndef SIDEWATCH_TESTSTORE_H
#define SIDEWATCH_TESTSTORE_H

#include "buf.h"
#include "labels.h"
#include "store.h"

/* Labels from name, value pairs ending with NULL: tu_labels("a", "1", NULL).
 * Caller frees (labels_free). */
static inline labels *tu_labels(const char *name, ...)
{
    labels_builder b;
    labels_builder_init(&b);
    va_list ap;
    va_start(ap, name);
    for (const char *n = name; n; n = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        labels_builder_set(&b, n, strlen(n), v, strlen(v));
    }
    va_end(ap);
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return ls;
}

/* Opens a store with o; a failure fails the test with the store's message.
 * Caller closes it (store_close). */
static inline store *tu_store_open(const store_options *o)
{
    buf err;
    buf_init(&err, 4096);
    store *s = NULL;
    int rc = store_open(&s, o, &err);
    if (rc != 0) fail_msg("store_open: %d %s", rc, buf_cstr(&err));
    buf_cleanup(&err);
    return s;
}

#endif
