/* remote: Prometheus remote write 1.0, both ways.
 *
 * Sending: one queue per `remote_write` entry of the config. Each reads the
 * store's write-ahead rows (store.h, "the write-ahead log") from its
 * durable cursor (consumer name "remote_write/<name or hash of the url>"),
 * maps series references to labels (external labels added,
 * write_relabel_configs applied, cached per reference), and hands samples
 * to shards by series hash (so each series' samples stay in order); each
 * shard sends batches of up to max_samples_per_send, or what it has after
 * batch_send_deadline, as rwproto bodies with httpc. 5xx and 429 are
 * retried with exponential backoff between min_backoff and max_backoff
 * (429 always, as issue 9 asks, whatever retry_on_http_429 says; after
 * Retry-After seconds when the receiver sends them; see remote.c); other 4xx
 * drop the batch and count it as failed; remote_timeout bounds each
 * request. The cursor advances (durably) only past rows whose every
 * sample was sent or dropped; with it the queue saves, per series sent
 * past the cursor, the newest timestamp sent (store kv namespace
 * "remote_write"), so a restart resends nothing a receiver already has. The shard count moves between min_shards and
 * max_shards with the backlog, as Prometheus's queue manager computes it.
 * Metadata goes every metadata_config.send_interval. Metrics use
 * Prometheus's names (prometheus_remote_storage_*), labelled
 * remote_name and url. Each queue runs on its own threads; nothing it does
 * blocks scraping or rule evaluation. (Receiving is agent/rwrecv.h.) */
#ifndef SIDEWATCH_REMOTE_H
#define SIDEWATCH_REMOTE_H

#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "registry.h"
#include "store.h"

typedef struct remote remote;

typedef struct remote_options {
    store *st;     /* borrowed */
    registry *reg; /* borrowed; the queue metrics go here */
    /* Rows a queue has not sent after this long are released anyway and
     * counted as dropped (--storage.remote.max-lag; 0 = 6h). */
    int64_t max_lag_ms;
} remote_options;

/* Starts the queues of cfg->remote_write (none is fine); cfg is
 * referenced (config_ref) by the queues that use it. Returns 0 and *out,
 * or -EINVAL with the reason in err (protobuf_message other than
 * prometheus.WriteRequest, two entries with one name): nothing runs then
 * and *out is NULL. */
int remote_start(remote **out, const remote_options *o, config *cfg, buf *err);
/* Applies a new config: queues whose settings are unchanged keep running
 * (and their cursor); a queue whose settings changed under the same name
 * restarts at its cursor; removed ones stop (their consumer is removed from
 * the store); new ones start at the store's current end. Returns 0, or
 * -EINVAL with the reason in err (as remote_start; nothing changed then),
 * or -EAGAIN when a queue's thread could not start. */
int remote_apply(remote *r, config *cfg, buf *err);
/* Stops every queue within about 100 ms (a request in flight is cancelled;
 * what it held is sent again after the next start), saves the cursors
 * (they stay in the store) and frees. NULL is a no-op. */
void remote_stop(remote *r);

#endif
