/* rwrecv: the remote write 1.0 receiver (POST /api/v1/write, on with
 * --web.enable-remote-write-receiver): decodes a request (rwproto.h) and
 * appends it to the store in one batch. */
#ifndef SIDEWATCH_RWRECV_H
#define SIDEWATCH_RWRECV_H

#include <stddef.h>

#include "buf.h"
#include "store.h"

/* Appends one request body (snappy-compressed prompb.WriteRequest): every
 * series and sample, histograms and metadata included. Returns 0 when
 * stored (HTTP 204); -EINVAL with the reason in err for a request that
 * cannot be decoded or is invalid (nothing of it is stored: HTTP 400);
 * -EIO/-ENOSPC when the store failed (HTTP 500). Samples the store refuses
 * as out of order or duplicate are counted by the store, as for scrapes
 * (see rwrecv.c for how that differs from Prometheus's 400). Thread-safe. */
int rwrecv_append(store *st, const void *body, size_t len, buf *err);

#endif
