/* remote: the remote write 1.0 sender (see remote.h).
 *
 * Threads of one queue (Prometheus's storage/remote/queue_manager.go is the
 * model; this is its own C):
 *
 * - the reader: reads write-ahead rows from the queue's cursor
 *   (store_wal_read), maps each series reference once to its labels
 *   (external labels added where the series lacks them, then
 *   write_relabel_configs; a dropped series is remembered as dropped),
 *   and appends each sample to the shard its series hashes to. A shard
 *   holds at most queue_config.capacity samples: the reader waits when it
 *   is full (backpressure; the rows stay in the store). Every row gets a
 *   counter of its samples still in flight; rows complete in sequence order
 *   and the cursor (store_wal_consumer_set) moves past completed rows, saved
 *   at most once a second (and at stop). It also reshards every 10 s and
 *   sends metadata every metadata_config.send_interval.
 * - shards: each takes up to max_samples_per_send samples (or what it has
 *   once batch_send_deadline has passed since its oldest pending sample),
 *   groups them by series (order kept), encodes them with rwproto and POSTs
 *   them with httpc.
 *
 * Responses: 2xx sent; 5xx, 429 and transport errors (connection refused,
 * remote_timeout) are retried with exponential backoff from min_backoff,
 * doubling up to max_backoff, or after Retry-After (seconds) when the
 * receiver gives one, as Prometheus does. 429 is retried whatever
 * retry_on_http_429 says: issue 9 asks for it (Prometheus drops the batch
 * when the option is false). Any other status drops the batch, counted in
 * *_failed_total.
 *
 * Exemplars (send_exemplars: true): the exemplars a write-ahead row
 * carries (those the store accepted with the row's batch) are entries of
 * the same shard as their series' samples, after the row's samples, and
 * each is sent in its own TimeSeries (the series' labels and the one
 * exemplar), as Prometheus's populateTimeSeries does; they count against
 * max_samples_per_send and capacity like samples. The resend guard below
 * (skip_t) is about samples only: exemplars neither move it nor are
 * filtered by it (an exemplar's timestamp may be older or newer than its
 * sample's); after a restart they are sent again only within the requests
 * below.
 *
 * No loss and no duplicates across restarts: a row is sent by several
 * shards, so when the queue stops (or crashes) some of its samples may have
 * reached the receiver and others not. Resending the sent ones would make a
 * Prometheus receiver refuse the whole request (out-of-order samples), so
 * next to the cursor the queue saves, per series that has samples sent
 * beyond the cursor, the timestamp of its newest sent sample (store kv
 * namespace "remote_write", key = consumer name; written before the
 * cursor, at most once a second). After a restart, samples at or before
 * that timestamp are taken as sent (the resend guard).
 *
 * Requests in flight: the guard is a second old at worst, and a request
 * whose answer never came may or may not have been applied, so before
 * each request is sent a record of it is saved (same namespace, key =
 * consumer, 0x01, its first place; 41 bytes: the places (row, index in the
 * row) of its first and last entries in its shard's entry stream, the
 * shard, the number of shards, a run generation and a fingerprint of the
 * labelling settings); records are deleted once the saved cursor is past
 * their last row. After a restart, recover() rebuilds each saved request
 * from the rows and sends it again, alone and before anything else (oldest
 * run first); those entries are then skipped by the reader. A Prometheus
 * receiver applies a request whole or not at all, so it either accepts the
 * request now (it had not arrived) or refuses it as out of order (it had,
 * whole, so nothing is lost; logged as information, not counted as failed).
 * An entry inside the ranges of records of several runs belongs to the
 * oldest (a later run skipped it). With other write_relabel_configs or
 * external labels (another fingerprint) the records are dropped, and only
 * the guard protects the restart.
 *
 * Resharding (simplified calculateDesiredShards): every 10 s, from the
 * samples read and sent in the interval and the time spent sending:
 * desired = time_per_sample * (in_rate + 0.05 * backlog), backlog =
 * (newest sample in the store - highest sent timestamp) * in_rate; changes within 30 %
 * are ignored, never fewer shards while more than 10 s behind, clamped to
 * [min_shards, max_shards]; no change while no sample was sent in the
 * interval. The reader drains every shard before it changes their number
 * (so no series' samples are ever in two shards). */
#include "remote.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "arena.h"
#include "hmap.h"
#include "httpc.h"
#include "labels.h"
#include "log.h"
#include "mem.h"
#include "relabel.h"
#include "rwproto.h"
#include "strutil.h"

#ifndef SIDEWATCH_VERSION
#define SIDEWATCH_VERSION "dev"
#endif

#define REMOTE_DEFAULT_MAX_LAG_MS ((int64_t)6 * 3600 * 1000)
#define REMOTE_READ_ROWS 512         /* rows per store_wal_read */
#define REMOTE_IDLE_POLL_MS 200      /* how often an idle reader looks for new rows */
#define REMOTE_SAVE_INTERVAL_MS 1000 /* cursor saves */
#define REMOTE_RESHARD_INTERVAL_MS 10000
#define REMOTE_RESPONSE_LIMIT (64 * 1024)    /* response bodies (error texts) kept */
#define REMOTE_BODY_LIMIT ((size_t)64 << 20) /* one encoded request */
#define REMOTE_KV_NS "remote_write"
#define REMOTE_LOG "remote"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An absolute CLOCK_REALTIME deadline ms from now (condition waits). */
static struct timespec deadline_in(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* ---- per-queue state ---------------------------------------------------------- */

/* One series as the queue sends it. Lives as long as the queue. */
typedef struct rseries {
    uint64_t ref;
    labels *ls;                /* external labels and relabelling applied; NULL: dropped */
    _Atomic int64_t sent_t;    /* newest timestamp sent (INT64_MIN: none) */
    _Atomic uint64_t sent_seq; /* the row of that sample (0: none) */
    int64_t skip_t;            /* samples at or before this were sent before a restart */
    bool dropped;              /* resolved, and relabelling drops it */
    size_t bidx;               /* scratch of the shard that owns the series */
} rseries;

/* One write-ahead row in flight. */
typedef struct rrow {
    uint64_t seq;
    _Atomic size_t left; /* samples not yet sent or dropped (+1 while the reader adds) */
} rrow;

typedef struct rentry {
    rseries *s;
    rrow *row;
    int64_t t;
    double v;
    nhist *h;   /* owned copy or NULL */
    labels *ex;   /* an exemplar (its labels, an owned copy), or NULL */
    uint32_t idx; /* its place in its row: samples first, then exemplars */
} rentry;

/* A request as saved before it is sent: the places (row, index in the row)
 * of its first and last entries in the entry stream of one shard (shard of
 * n_shards). The entries between are exactly the shard's entries of those
 * rows, so after a restart the request can be rebuilt from the rows. */
typedef struct rrecord {
    uint64_t first_seq, last_seq;
    uint32_t first_idx, last_idx;
    uint32_t n_shards, shard;
} rrecord;

typedef struct rqueue rqueue;

typedef struct rshard {
    rqueue *q;
    pthread_t th;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* entries added, entries taken, stop */
    rentry *ring;
    size_t cap, head, len;
    int64_t oldest_ms; /* monotonic time the oldest pending entry arrived */
    bool busy;         /* a batch is being sent */
    bool stop;
    httpc *http;
} rshard;

typedef struct qmetrics {
    registry_metric *samples, *failed, *retried, *histograms, *hist_failed, *hist_retried;
    registry_metric *exemplars, *ex_failed, *ex_retried, *ex_pending;
    registry_metric *ex_dropped_series, *ex_dropped_too_old, *ex_dropped_unknown;
    registry_metric *metadata, *metadata_failed, *metadata_retried;
    registry_metric *dropped_series, *dropped_too_old, *dropped_unknown, *hist_dropped_series;
    registry_metric *highest_sent, *highest_recv, *shards, *shards_desired, *shards_min,
        *shards_max, *pending, *hist_pending, *duration, *bytes, *metadata_bytes, *shard_capacity,
        *max_samples;
} qmetrics;

struct rqueue {
    remote *r;
    config *cfg; /* a reference: rw and the external labels point into it */
    const config_remote_write *rw;
    char *name;     /* remote_name */
    char *consumer; /* "remote_write/" + name */
    char *url;      /* rw->url for logs and metric labels: its password shown as xxxxx */
    char *settings; /* everything that decides how the queue sends (reload compares) */
    pthread_t reader;
    bool reader_running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop; /* under mu */

    rshard *shards;  /* max_shards of them */
    size_t n_shards; /* running ones (changed by the reader only) */

    hmap series; /* rseries by ref (reader only; entries never move) */
    rrow **rows; /* rows in flight, oldest first (reader only) */
    size_t rows_head, rows_len, rows_cap;
    uint64_t next_read;     /* first row not read yet */
    uint64_t saved;         /* cursor last saved */
    int64_t last_save_ms;   /* monotonic */
    uint64_t store_dropped; /* the consumer's dropped_samples already counted */

    /* resharding */
    _Atomic uint64_t n_in, n_out, n_out_ns;
    _Atomic int64_t highest_recv_ms, highest_sent_ms;
    _Atomic int64_t pending, hist_pending, ex_pending; /* entries in the shards */
    _Atomic uint64_t sends;                /* successful sends (a save is due after one) */
    uint64_t saved_sends;
    _Atomic size_t layout; /* n_shards as the shards see it (set while they are idle) */

    /* Requests saved before they were sent (see "Requests in flight" at
     * the top): recs are the saved ones not yet behind the saved cursor
     * (under rec_mu: shards add, the reader removes); old are those of the
     * previous run, sorted (the reader's), old_end past their last row. */
    uint32_t fingerprint; /* of what decides a series' labels and so its shard */
    pthread_mutex_t rec_mu;
    rrecord *recs;
    size_t n_recs, cap_recs;
    struct rrecord_gen *old;
    size_t n_old, cap_old;
    uint64_t old_end;
    uint32_t gen; /* this run's generation (one more than the newest saved) */
    int64_t last_reshard_ms;
    int64_t last_metadata_ms;
    qmetrics m;
};

struct remote {
    remote_options o;
    pthread_mutex_t mu; /* guards the queue list (apply/stop) */
    rqueue **q;
    size_t n;
    registry_metric *highest_ts; /* prometheus_remote_storage_highest_timestamp_in_seconds */
    _Atomic int64_t highest_ts_ms;
};

static bool queue_stopping(rqueue *q)
{
    pthread_mutex_lock(&q->mu);
    bool s = q->stop;
    pthread_mutex_unlock(&q->mu);
    return s;
}

/* Sleeps up to ms; false as soon as the queue stops. */
static bool queue_sleep(rqueue *q, int64_t ms)
{
    struct timespec ts = deadline_in(ms);
    pthread_mutex_lock(&q->mu);
    while (!q->stop) {
        if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT) break;
    }
    bool ok = !q->stop;
    pthread_mutex_unlock(&q->mu);
    return ok;
}

/* ---- metrics --------------------------------------------------------------------- */

static const char *const QLABELS[] = {"remote_name", "url", NULL};
static const char *const QLABELS_REASON[] = {"remote_name", "url", "reason", NULL};

static registry_metric *qcounter(remote *r, rqueue *q, const char *name, const char *help)
{
    const char *v[] = {q->name, q->url};
    return registry_child(registry_counter(r->o.reg, name, help, QLABELS), v);
}

static registry_metric *qgauge(remote *r, rqueue *q, const char *name, const char *help)
{
    const char *v[] = {q->name, q->url};
    return registry_child(registry_gauge(r->o.reg, name, help, QLABELS), v);
}

static registry_metric *qdropped(remote *r, rqueue *q, const char *name, const char *reason)
{
    const char *v[] = {q->name, q->url, reason};
    bool ex = strstr(name, "exemplars") != NULL;
    return registry_child(
        registry_counter(r->o.reg, name,
                         ex ? "Total number of exemplars which were dropped after being read from "
                              "the WAL before being sent to remote write, either via relabelling, "
                              "due to being too old or unintentionally because of an unknown "
                              "reference ID."
                            : "Total number of samples which were dropped after being read from "
                              "the WAL before being sent via remote write, either via "
                              "relabelling, due to being too old or unintentionally because of "
                              "an unknown reference ID.",
                         QLABELS_REASON),
        v);
}

static const double DURATION_BOUNDS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                         2.5,   5,    10,    25,   60,  120,  300};

static void metrics_init(remote *r, rqueue *q)
{
    qmetrics *m = &q->m;
    m->samples = qcounter(r, q, "prometheus_remote_storage_samples_total",
                          "Total number of samples sent to remote storage.");
    m->failed = qcounter(r, q, "prometheus_remote_storage_samples_failed_total",
                         "Total number of samples which failed on send to remote storage, "
                         "non-recoverable errors.");
    m->retried = qcounter(r, q, "prometheus_remote_storage_samples_retried_total",
                          "Total number of samples which failed on send to remote storage but "
                          "were retried because the send error was recoverable.");
    m->histograms = qcounter(r, q, "prometheus_remote_storage_histograms_total",
                             "Total number of histograms sent to remote storage.");
    m->hist_failed = qcounter(r, q, "prometheus_remote_storage_histograms_failed_total",
                              "Total number of histograms which failed on send to remote "
                              "storage, non-recoverable errors.");
    m->hist_retried = qcounter(r, q, "prometheus_remote_storage_histograms_retried_total",
                               "Total number of histograms which failed on send to remote "
                               "storage but were retried because the send error was "
                               "recoverable.");
    m->exemplars = qcounter(r, q, "prometheus_remote_storage_exemplars_total",
                            "Total number of exemplars sent to remote storage.");
    m->ex_failed = qcounter(r, q, "prometheus_remote_storage_exemplars_failed_total",
                            "Total number of exemplars which failed on send to remote storage, "
                            "non-recoverable errors.");
    m->ex_retried = qcounter(r, q, "prometheus_remote_storage_exemplars_retried_total",
                             "Total number of exemplars which failed on send to remote storage "
                             "but were retried because the send error was recoverable.");
    m->ex_pending = qgauge(r, q, "prometheus_remote_storage_exemplars_pending",
                           "The number of exemplars pending in the queues shards to be sent to "
                           "the remote storage.");
    m->ex_dropped_series =
        qdropped(r, q, "prometheus_remote_storage_exemplars_dropped_total", "dropped_series");
    m->ex_dropped_too_old =
        qdropped(r, q, "prometheus_remote_storage_exemplars_dropped_total", "too_old");
    m->ex_dropped_unknown = qdropped(r, q, "prometheus_remote_storage_exemplars_dropped_total",
                                     "unintentionally_dropped_series");
    m->metadata = qcounter(r, q, "prometheus_remote_storage_metadata_total",
                           "Total number of metadata entries sent to remote storage.");
    m->metadata_failed = qcounter(r, q, "prometheus_remote_storage_metadata_failed_total",
                                  "Total number of metadata entries which failed on send to "
                                  "remote storage, non-recoverable errors.");
    m->metadata_retried = qcounter(r, q, "prometheus_remote_storage_metadata_retried_total",
                                   "Total number of metadata entries which failed on send to "
                                   "remote storage but were retried because the send error was "
                                   "recoverable.");
    m->dropped_series =
        qdropped(r, q, "prometheus_remote_storage_samples_dropped_total", "dropped_series");
    m->dropped_too_old =
        qdropped(r, q, "prometheus_remote_storage_samples_dropped_total", "too_old");
    m->dropped_unknown = qdropped(r, q, "prometheus_remote_storage_samples_dropped_total",
                                  "unintentionally_dropped_series");
    m->hist_dropped_series =
        qdropped(r, q, "prometheus_remote_storage_histograms_dropped_total", "dropped_series");
    m->highest_sent = qgauge(r, q, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
                             "Timestamp from a WAL sample, the highest timestamp successfully sent "
                             "by this queue, in seconds since epoch.");
    m->highest_recv = qgauge(r, q, "prometheus_remote_storage_queue_highest_timestamp_seconds",
                             "Highest timestamp that was enqueued, in seconds since epoch.");
    m->shards = qgauge(r, q, "prometheus_remote_storage_shards",
                       "The number of shards used for parallel sending to the remote storage.");
    m->shards_desired = qgauge(r, q, "prometheus_remote_storage_shards_desired",
                               "The number of shards that the queues shard calculation wants to "
                               "run based on the rate of samples in vs. samples out.");
    m->shards_min = qgauge(r, q, "prometheus_remote_storage_shards_min",
                           "The minimum number of shards that the queue is allowed to run.");
    m->shards_max = qgauge(r, q, "prometheus_remote_storage_shards_max",
                           "The maximum number of shards that the queue is allowed to run.");
    m->pending = qgauge(r, q, "prometheus_remote_storage_samples_pending",
                        "The number of samples pending in the queues shards to be sent to the "
                        "remote storage.");
    m->hist_pending = qgauge(r, q, "prometheus_remote_storage_histograms_pending",
                             "The number of histograms pending in the queues shards to be sent to "
                             "the remote storage.");
    m->shard_capacity = qgauge(r, q, "prometheus_remote_storage_shard_capacity",
                               "The capacity of each shard of the queue used for parallel sending "
                               "to the remote storage.");
    m->max_samples = qgauge(r, q, "prometheus_remote_storage_max_samples_per_send",
                            "The maximum number of samples to be sent, in a single request, to "
                            "the remote storage.");
    m->bytes = qcounter(r, q, "prometheus_remote_storage_bytes_total",
                        "The total number of bytes of data (not metadata) sent by the queue after "
                        "compression.");
    m->metadata_bytes = qcounter(r, q, "prometheus_remote_storage_metadata_bytes_total",
                                 "The total number of bytes of metadata sent by the queue after "
                                 "compression.");
    const char *v[] = {q->name, q->url};
    m->duration = registry_child(
        registry_histogram(r->o.reg, "prometheus_remote_storage_sent_batch_duration_seconds",
                           "Duration of send calls to the remote storage.", QLABELS,
                           DURATION_BOUNDS, sizeof DURATION_BOUNDS / sizeof DURATION_BOUNDS[0]),
        v);
    registry_set(m->shards_min, (double)q->rw->queue_min_shards);
    registry_set(m->shards_max, (double)q->rw->queue_max_shards);
    registry_set(m->shard_capacity, (double)q->rw->queue_capacity);
    registry_set(m->max_samples, (double)q->rw->queue_max_samples_per_send);
}

/* Removes the queue's children (a queue that reload removed). */
static void metrics_remove(remote *r, rqueue *q)
{
    static const char *const counters[] = {"prometheus_remote_storage_samples_total",
                                           "prometheus_remote_storage_samples_failed_total",
                                           "prometheus_remote_storage_samples_retried_total",
                                           "prometheus_remote_storage_histograms_total",
                                           "prometheus_remote_storage_histograms_failed_total",
                                           "prometheus_remote_storage_histograms_retried_total",
                                           "prometheus_remote_storage_exemplars_total",
                                           "prometheus_remote_storage_exemplars_failed_total",
                                           "prometheus_remote_storage_exemplars_retried_total",
                                           "prometheus_remote_storage_metadata_total",
                                           "prometheus_remote_storage_metadata_failed_total",
                                           "prometheus_remote_storage_metadata_retried_total",
                                           "prometheus_remote_storage_bytes_total",
                                           "prometheus_remote_storage_metadata_bytes_total",
                                           NULL};
    static const char *const gauges[] = {
        "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
        "prometheus_remote_storage_queue_highest_timestamp_seconds",
        "prometheus_remote_storage_shards",
        "prometheus_remote_storage_shards_desired",
        "prometheus_remote_storage_shards_min",
        "prometheus_remote_storage_shards_max",
        "prometheus_remote_storage_samples_pending",
        "prometheus_remote_storage_histograms_pending",
        "prometheus_remote_storage_exemplars_pending",
        "prometheus_remote_storage_shard_capacity",
        "prometheus_remote_storage_max_samples_per_send",
        NULL};
    const char *v[] = {q->name, q->url, NULL};
    for (size_t i = 0; counters[i]; i++)
        registry_family_remove(registry_counter(r->o.reg, counters[i], "", QLABELS), v);
    for (size_t i = 0; gauges[i]; i++)
        registry_family_remove(registry_gauge(r->o.reg, gauges[i], "", QLABELS), v);
    registry_family_remove(
        registry_histogram(r->o.reg, "prometheus_remote_storage_sent_batch_duration_seconds", "",
                           QLABELS, DURATION_BOUNDS,
                           sizeof DURATION_BOUNDS / sizeof DURATION_BOUNDS[0]),
        v);
    static const char *const reasons[] = {"dropped_series", "too_old",
                                          "unintentionally_dropped_series"};
    for (size_t i = 0; i < 3; i++) {
        const char *rv[] = {q->name, q->url, reasons[i]};
        registry_family_remove(registry_counter(r->o.reg,
                                                "prometheus_remote_storage_samples_dropped_total",
                                                "", QLABELS_REASON),
                               rv);
        registry_family_remove(
            registry_counter(r->o.reg, "prometheus_remote_storage_histograms_dropped_total", "",
                             QLABELS_REASON),
            rv);
        registry_family_remove(registry_counter(r->o.reg,
                                                "prometheus_remote_storage_exemplars_dropped_total",
                                                "", QLABELS_REASON),
                               rv);
    }
}

static void update_pending(rqueue *q)
{
    registry_set(q->m.pending, (double)atomic_load(&q->pending));
    registry_set(q->m.hist_pending, (double)atomic_load(&q->hist_pending));
    registry_set(q->m.ex_pending, (double)atomic_load(&q->ex_pending));
}

/* The pending counter of an entry's kind. */
static _Atomic int64_t *pending_of(rqueue *q, const rentry *e)
{
    return e->ex ? &q->ex_pending : e->h ? &q->hist_pending : &q->pending;
}

/* Frees what an entry owns (its histogram or exemplar labels). */
static void entry_release(rentry *e)
{
    if (e->h) {
        nhist_cleanup(e->h);
        mem_free(e->h);
        e->h = NULL;
    }
    labels_free(e->ex);
    e->ex = NULL;
}

static void set_max(_Atomic int64_t *a, int64_t v)
{
    int64_t cur = atomic_load(a);
    while (v > cur && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

/* ---- naming ------------------------------------------------------------------------ */

static void put_relabel(buf *b, const config_relabel *rc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        buf_printf(b, "relabel %d [", (int)rc[i].action);
        for (size_t k = 0; k < rc[i].n_source_labels; k++)
            buf_printf(b, "%s,", rc[i].source_labels[k]);
        buf_printf(b, "] %s|%s|%s|%" PRIu64 "|%s\n", rc[i].separator ? rc[i].separator : "",
                   rc[i].target_label ? rc[i].target_label : "", regex_pattern(rc[i].regex),
                   rc[i].modulus, rc[i].replacement ? rc[i].replacement : "");
    }
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

/* Everything that decides what and how a queue sends, as text. Secrets are
 * read at every send, so only where they come from is part of it. */
static char *settings_text(const config *cfg, const config_remote_write *rw)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    const config_http_client *h = &rw->http;
    buf_printf(&b, "url %s\nname %s\ntimeout %" PRId64 "\n", rw->url, nz(rw->name),
               rw->remote_timeout_ms);
    for (size_t i = 0; i < rw->n_headers; i++)
        buf_printf(&b, "header %s: %s\n", rw->headers[i].name, rw->headers[i].value);
    put_relabel(&b, rw->write_relabel_configs, rw->n_write_relabel_configs);
    buf_printf(&b, "basic %d %s %s %s %s\n", h->has_basic_auth, nz(h->basic_auth_username),
               nz(h->basic_auth_username_file), nz(h->basic_auth_password.value),
               nz(h->basic_auth_password.file));
    buf_printf(&b, "authz %d %s %s %s\n", h->has_authorization, nz(h->authorization_type),
               nz(h->authorization_credentials.value), nz(h->authorization_credentials.file));
    buf_printf(&b, "tls %s %s %s %s %d %d\n", nz(h->tls_ca_file), nz(h->tls_cert_file),
               nz(h->tls_key_file), nz(h->tls_server_name), h->tls_insecure_skip_verify,
               h->follow_redirects);
    buf_printf(&b,
               "queue %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
               " %" PRId64 " %d %" PRId64 "\n",
               rw->queue_capacity, rw->queue_min_shards, rw->queue_max_shards,
               rw->queue_max_samples_per_send, rw->queue_batch_send_deadline_ms,
               rw->queue_min_backoff_ms, rw->queue_max_backoff_ms, rw->queue_retry_on_http_429,
               rw->queue_sample_age_limit_ms);
    buf_printf(&b, "send_exemplars %d\n", rw->send_exemplars);
    buf_printf(&b, "metadata %d %" PRId64 " %" PRId64 "\n", rw->metadata_send,
               rw->metadata_send_interval_ms, rw->metadata_max_samples_per_send);
    buf_puts(&b, "external");
    const labels *el = cfg->global.external_labels;
    for (uint32_t i = 0; el && i < el->n; i++)
        buf_printf(&b, " %s=%s", el->v[i].name, el->v[i].value);
    buf_putc(&b, '\n');
    return buf_detach(&b, NULL);
}

/* A hash of what decides the labels a series is sent with and so its shard
 * (write_relabel_configs, external labels): saved requests are rebuilt after
 * a restart only when it is unchanged. */
static uint32_t labelling_fingerprint(const config *cfg, const config_remote_write *rw)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    put_relabel(&b, rw->write_relabel_configs, rw->n_write_relabel_configs);
    const labels *el = cfg->global.external_labels;
    for (uint32_t i = 0; el && i < el->n; i++)
        buf_printf(&b, " %s=%s", el->v[i].name, el->v[i].value);
    uint32_t h = (uint32_t)strutil_hash64(b.data ? b.data : "", b.len, 0x7265636f7264ULL);
    buf_cleanup(&b);
    return h;
}

/* The queue's name: its `name`, else the first 6 hex digits of the MD5 of
 * its url (Prometheus hashes the whole entry; the url alone keeps the
 * cursor when other settings change). */
static char *queue_name(const config_remote_write *rw)
{
    if (rw->name && rw->name[0]) return mem_strdup(rw->name);
    unsigned char md[16];
    strutil_md5(rw->url, strlen(rw->url), md);
    char hex[8];
    snprintf(hex, sizeof hex, "%02x%02x%02x", md[0], md[1], md[2]);
    return mem_strdup(hex);
}

/* ---- series cache ------------------------------------------------------------------- */

static uint64_t ref_hash(uint64_t ref)
{
    return strutil_hash64(&ref, sizeof ref, 0x72656d6f7465ULL);
}

static bool ref_eq(const void *val, const void *key)
{
    return ((const rseries *)val)->ref == *(const uint64_t *)key;
}

static rseries *series_get(rqueue *q, uint64_t ref, bool create)
{
    uint64_t h = ref_hash(ref);
    rseries *s = hmap_get(&q->series, h, ref_eq, &ref);
    if (s || !create) return s;
    s = mem_calloc(1, sizeof *s);
    s->ref = ref;
    s->skip_t = INT64_MIN;
    atomic_store(&s->sent_t, INT64_MIN);
    hmap_put(&q->series, h, s);
    return s;
}

/* Labels of a series as sent: the store's, external labels added where the
 * series has none of that name, write_relabel_configs applied. NULL when
 * relabelling drops it (or leaves no label). */
static labels *series_labels(rqueue *q, const labels *ls)
{
    labels_builder lb;
    labels_builder_init(&lb);
    labels_builder_from(&lb, ls);
    const labels *el = q->cfg->global.external_labels;
    for (uint32_t i = 0; el && i < el->n; i++) {
        size_t len;
        if (!labels_builder_get(&lb, el->v[i].name, el->v[i].name_len, &len))
            labels_builder_set(&lb, el->v[i].name, el->v[i].name_len, el->v[i].value,
                               el->v[i].value_len);
    }
    arena scratch;
    arena_init(&scratch, 0);
    labels *out = NULL;
    if (relabel_apply(q->rw->write_relabel_configs, q->rw->n_write_relabel_configs, &lb, &scratch,
                      q->cfg->global.legacy_name_validation)) {
        out = labels_builder_finish(&lb, NULL);
        if (out && out->n == 0) {
            labels_free(out);
            out = NULL;
        }
    }
    labels_builder_cleanup(&lb);
    arena_cleanup(&scratch);
    return out;
}

/* Resolves a reference the first time it is seen. Returns the entry; its
 * ls is NULL when the series is dropped. *unknown is set for a reference
 * the store does not know. */
static rseries *series_resolve(rqueue *q, uint64_t ref, bool *unknown)
{
    *unknown = false;
    rseries *s = series_get(q, ref, false);
    if (s && (s->ls || s->dropped)) return s;
    if (!s) s = series_get(q, ref, true);
    labels *raw = store_series_labels(q->r->o.st, ref);
    if (!raw) {
        *unknown = true;
        return s; /* retried the next time it is seen */
    }
    s->ls = series_labels(q, raw);
    labels_free(raw);
    if (!s->ls) s->dropped = true;
    return s;
}

/* ---- cursor ----------------------------------------------------------------------- */

/* The skip table: (ref, newest sent t) of the series with samples sent in
 * rows at or after `from`, 16 bytes each, big-endian. */
static void skip_table(rqueue *q, uint64_t from, buf *out)
{
    size_t it = 0;
    void *v;
    while (hmap_next(&q->series, &it, &v)) {
        rseries *s = v;
        uint64_t seq = atomic_load(&s->sent_seq);
        if (seq == 0 || seq < from) continue;
        int64_t t = atomic_load(&s->sent_t);
        unsigned char rec[16];
        for (int i = 0; i < 8; i++) {
            rec[i] = (unsigned char)(s->ref >> (56 - 8 * i));
            rec[8 + i] = (unsigned char)((uint64_t)t >> (56 - 8 * i));
        }
        buf_append(out, rec, sizeof rec);
    }
}

static void skip_load(rqueue *q)
{
    store_kv_entry *e = NULL;
    size_t n = 0;
    if (store_kv_list(q->r->o.st, REMOTE_KV_NS, q->consumer, strlen(q->consumer), 0, &e, &n, NULL) <
        0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (e[i].key_len != strlen(q->consumer)) continue; /* a longer name with this prefix */
        const unsigned char *p = e[i].value;
        for (size_t off = 0; off + 16 <= e[i].value_len; off += 16) {
            uint64_t ref = 0, t = 0;
            for (int k = 0; k < 8; k++) {
                ref = ref << 8 | p[off + k];
                t = t << 8 | p[off + 8 + k];
            }
            rseries *s = series_get(q, ref, true);
            s->skip_t = (int64_t)t;
        }
    }
    store_kv_entries_free(e, n);
}

/* ---- requests in flight ------------------------------------------------------------ */

#define RECORD_VERSION 1
#define RECORD_LEN 41 /* version, fingerprint, generation, n_shards, shard, first, last */

typedef struct rrecord_gen {
    rrecord r;
    uint32_t gen;
} rrecord_gen;

static void put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
}

static uint64_t get_be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* (seq_a, idx_a) <= (seq_b, idx_b) */
static bool pos_le(uint64_t seq_a, uint32_t idx_a, uint64_t seq_b, uint32_t idx_b)
{
    return seq_a < seq_b || (seq_a == seq_b && idx_a <= idx_b);
}

/* The kv key of a record: the consumer, 0x01, its first place (12 bytes). */
static void record_key(const rqueue *q, const rrecord *rc, buf *out)
{
    buf_puts(out, q->consumer);
    unsigned char k[13];
    k[0] = 1;
    put_be(k + 1, rc->first_seq, 8);
    put_be(k + 9, rc->first_idx, 4);
    buf_append(out, k, sizeof k);
}

/* Saves the request of ents[0..k) (one shard's, in stream order) before it
 * is sent. A failed save is logged; the request is sent anyway (a restart
 * may then resend it mixed with newer samples). */
static void record_save(rshard *sh, const rentry *ents, size_t k)
{
    rqueue *q = sh->q;
    rrecord rc = {.first_seq = ents[0].row->seq,
                  .first_idx = ents[0].idx,
                  .last_seq = ents[k - 1].row->seq,
                  .last_idx = ents[k - 1].idx,
                  .n_shards = (uint32_t)atomic_load(&q->layout),
                  .shard = (uint32_t)(sh - q->shards)};
    unsigned char v[RECORD_LEN];
    v[0] = RECORD_VERSION;
    put_be(v + 1, q->fingerprint, 4);
    put_be(v + 5, q->gen, 4);
    put_be(v + 9, rc.n_shards, 4);
    put_be(v + 13, rc.shard, 4);
    put_be(v + 17, rc.first_seq, 8);
    put_be(v + 25, rc.first_idx, 4);
    put_be(v + 29, rc.last_seq, 8);
    put_be(v + 37, rc.last_idx, 4);
    buf key, err;
    buf_init(&key, BUF_UNLIMITED);
    buf_init(&err, 4096);
    record_key(q, &rc, &key);
    store_kv_op op = {.ns = REMOTE_KV_NS,
                      .key = key.data,
                      .key_len = key.len,
                      .value = v,
                      .value_len = sizeof v};
    if (store_kv_apply(q->r->o.st, &op, 1, &err) < 0) {
        log_warn(REMOTE_LOG, "remote_name=%s: cannot save a request before sending it: %s",
                 q->name, buf_cstr(&err));
    } else {
        pthread_mutex_lock(&q->rec_mu);
        if (q->n_recs == q->cap_recs) q->recs = mem_grow(q->recs, sizeof *q->recs, q->n_recs + 1, &q->cap_recs);
        q->recs[q->n_recs++] = rc;
        pthread_mutex_unlock(&q->rec_mu);
    }
    buf_cleanup(&key);
    buf_cleanup(&err);
}

/* Deletes the saved records whose rows are all before cursor (saved). */
static void records_prune(rqueue *q, uint64_t cursor)
{
    buf keys;
    buf_init(&keys, BUF_UNLIMITED);
    size_t klen = strlen(q->consumer) + 13, n = 0;
    pthread_mutex_lock(&q->rec_mu);
    size_t w = 0;
    for (size_t i = 0; i < q->n_recs; i++) {
        if (q->recs[i].last_seq < cursor) {
            record_key(q, &q->recs[i], &keys);
            n++;
        } else {
            q->recs[w++] = q->recs[i];
        }
    }
    q->n_recs = w;
    pthread_mutex_unlock(&q->rec_mu);
    if (n > 0) {
        store_kv_op *ops = mem_calloc(n, sizeof *ops);
        for (size_t i = 0; i < n; i++)
            ops[i] = (store_kv_op){.ns = REMOTE_KV_NS, .key = keys.data + i * klen, .key_len = klen};
        buf err;
        buf_init(&err, 4096);
        if (store_kv_apply(q->r->o.st, ops, n, &err) < 0)
            log_warn(REMOTE_LOG, "remote_name=%s: cannot delete sent requests: %s", q->name,
                     buf_cstr(&err));
        buf_cleanup(&err);
        mem_free(ops);
    }
    buf_cleanup(&keys);
}

static int gen_cmp(const void *a, const void *b)
{
    const rrecord_gen *x = a, *y = b;
    if (x->gen != y->gen) return x->gen < y->gen ? -1 : 1;
    if (x->r.first_seq != y->r.first_seq) return x->r.first_seq < y->r.first_seq ? -1 : 1;
    if (x->r.first_idx != y->r.first_idx) return x->r.first_idx < y->r.first_idx ? -1 : 1;
    return 0;
}

/* Loads the records of the previous run that reach the cursor (others, and
 * those saved with other labelling settings, are deleted). remove: delete
 * them all (the queue is forgotten). */
static void records_load(rqueue *q, bool remove)
{
    store *st = q->r->o.st;
    size_t clen = strlen(q->consumer);
    char *prefix = mem_malloc(clen + 1);
    memcpy(prefix, q->consumer, clen);
    prefix[clen] = 1;
    store_kv_entry *e = NULL;
    size_t n = 0;
    int rc = store_kv_list(st, REMOTE_KV_NS, prefix, clen + 1, 0, &e, &n, NULL);
    mem_free(prefix);
    if (rc < 0) return;
    store_kv_op *del = mem_calloc(n ? n : 1, sizeof *del);
    size_t nd = 0;
    uint32_t max_gen = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *v = e[i].value;
        bool ok = !remove && e[i].key_len == clen + 13 && e[i].value_len == RECORD_LEN &&
                  v[0] == RECORD_VERSION;
        rrecord_gen g = {0};
        if (ok) {
            g.gen = (uint32_t)get_be(v + 5, 4);
            g.r.n_shards = (uint32_t)get_be(v + 9, 4);
            g.r.shard = (uint32_t)get_be(v + 13, 4);
            g.r.first_seq = get_be(v + 17, 8);
            g.r.first_idx = (uint32_t)get_be(v + 25, 4);
            g.r.last_seq = get_be(v + 29, 8);
            g.r.last_idx = (uint32_t)get_be(v + 37, 4);
            if (g.gen > max_gen) max_gen = g.gen;
            ok = (uint32_t)get_be(v + 1, 4) == q->fingerprint && g.r.n_shards > 0 &&
                 g.r.shard < g.r.n_shards &&
                 pos_le(g.r.first_seq, g.r.first_idx, g.r.last_seq, g.r.last_idx) &&
                 g.r.last_seq >= q->next_read;
        }
        if (!ok) {
            del[nd++] = (store_kv_op){.ns = REMOTE_KV_NS, .key = e[i].key, .key_len = e[i].key_len};
            continue;
        }
        q->old = mem_grow(q->old, sizeof *q->old, q->n_old + 1, &q->cap_old);
        q->old[q->n_old++] = g;
        if (g.r.last_seq + 1 > q->old_end) q->old_end = g.r.last_seq + 1;
        pthread_mutex_lock(&q->rec_mu);
        q->recs = mem_grow(q->recs, sizeof *q->recs, q->n_recs + 1, &q->cap_recs);
        q->recs[q->n_recs++] = g.r;
        pthread_mutex_unlock(&q->rec_mu);
    }
    if (nd > 0) store_kv_apply(st, del, nd, NULL);
    mem_free(del);
    store_kv_entries_free(e, n);
    if (q->n_old > 1) qsort(q->old, q->n_old, sizeof *q->old, gen_cmp);
    q->gen = max_gen + 1;
}

/* The record of the previous run whose request held the entry of series s
 * at (seq, idx), or -1. An entry inside the ranges of records of several
 * runs belongs to the oldest run (a later run never sent it again). */
static ssize_t old_record(const rqueue *q, const rseries *s, uint64_t seq, uint32_t idx)
{
    if (seq >= q->old_end) return -1;
    for (size_t i = 0; i < q->n_old; i++) { /* oldest run first */
        const rrecord *rc = &q->old[i].r;
        if (pos_le(rc->first_seq, rc->first_idx, seq, idx) &&
            pos_le(seq, idx, rc->last_seq, rc->last_idx) && s->ls->hash % rc->n_shards == rc->shard)
            return (ssize_t)i;
    }
    return -1;
}

/* Moves the cursor past completed rows; saves it (skip table first) when
 * it moved and the last save is older than a second, or when `force`. */
static void advance_cursor(rqueue *q, bool force)
{
    while (q->rows_len > 0) {
        rrow *row = q->rows[q->rows_head];
        if (atomic_load(&row->left) != 0) break;
        mem_free(row);
        q->rows_head = (q->rows_head + 1) % q->rows_cap;
        q->rows_len--;
    }
    uint64_t cursor = q->rows_len ? q->rows[q->rows_head]->seq : q->next_read;
    int64_t now = mono_ms();
    uint64_t sends = atomic_load(&q->sends);
    if (cursor == q->saved && sends == q->saved_sends) return;
    if (!force && now - q->last_save_ms < REMOTE_SAVE_INTERVAL_MS) return;
    store *st = q->r->o.st;
    buf skip;
    buf_init(&skip, BUF_UNLIMITED);
    skip_table(q, q->saved < cursor ? q->saved : cursor, &skip);
    store_kv_op op = {.ns = REMOTE_KV_NS,
                      .key = q->consumer,
                      .key_len = strlen(q->consumer),
                      .value = skip.len ? skip.data : NULL,
                      .value_len = skip.len};
    buf err;
    buf_init(&err, 4096);
    int rc = store_kv_apply(st, &op, 1, &err);
    if (rc == 0)
        rc = store_wal_consumer_set(
            st, q->consumer, cursor,
            q->r->o.max_lag_ms > 0 ? q->r->o.max_lag_ms : REMOTE_DEFAULT_MAX_LAG_MS, &err);
    if (rc < 0) {
        log_warn(REMOTE_LOG, "remote_name=%s: cannot save the cursor: %s", q->name, buf_cstr(&err));
    } else {
        q->saved = cursor;
        q->saved_sends = sends;
        q->last_save_ms = now;
        records_prune(q, cursor);
    }
    buf_cleanup(&err);
    buf_cleanup(&skip);
    /* Rows the store released for us (max lag) count as dropped. */
    store_wal_consumer c;
    if (store_wal_consumer_get(st, q->consumer, &c) == 0 && c.dropped_samples > q->store_dropped) {
        registry_add(q->m.dropped_too_old, (double)(c.dropped_samples - q->store_dropped));
        q->store_dropped = c.dropped_samples;
    }
}

static void rows_push(rqueue *q, rrow *row)
{
    if (q->rows_len == q->rows_cap) {
        size_t ncap = q->rows_cap ? q->rows_cap * 2 : 64;
        rrow **n = mem_malloc(ncap * sizeof *n);
        for (size_t i = 0; i < q->rows_len; i++)
            n[i] = q->rows[(q->rows_head + i) % q->rows_cap];
        mem_free(q->rows);
        q->rows = n;
        q->rows_cap = ncap;
        q->rows_head = 0;
    }
    q->rows[(q->rows_head + q->rows_len) % q->rows_cap] = row;
    q->rows_len++;
}

/* ---- sending ------------------------------------------------------------------------ */

typedef struct send_result {
    bool done;
    enum httpc_result result;
    long status;
    int64_t retry_after_ms; /* 0: none */
    char error[256];
} send_result;

static void on_sent(void *ctx, const httpc_response *resp)
{
    send_result *res = ctx;
    res->done = true;
    res->result = resp->result;
    res->status = resp->status;
    res->retry_after_ms = 0;
    if (resp->retry_after && resp->retry_after[0]) {
        char *end;
        long long s = strtoll(resp->retry_after, &end, 10);
        if (end != resp->retry_after && s > 0) res->retry_after_ms = (int64_t)s * 1000;
    }
    if (resp->result != HTTPC_OK)
        snprintf(res->error, sizeof res->error, "%s", resp->error ? resp->error : "error");
    else
        snprintf(res->error, sizeof res->error, "server returned HTTP status %ld: %.180s",
                 resp->status, resp->body ? resp->body : "");
}

static void wipe_free(char *s)
{
    if (!s) return;
    memset(s, 0, strlen(s));
    mem_free(s);
}

/* One POST of body; false when the queue stopped before it completed. */
static bool post(rqueue *q, httpc *http, const char *body, size_t len, send_result *res)
{
    const config_remote_write *rw = q->rw;
    const config_http_client *hc = &rw->http;
    size_t nh = 0, cap = rw->n_headers + 8;
    const char **headers = mem_calloc(cap, sizeof *headers);
    char **owned = mem_calloc(cap, sizeof *owned);
    size_t no = 0;
    headers[nh++] = "Content-Encoding: snappy";
    headers[nh++] = "Content-Type: " RWPROTO_CONTENT_TYPE;
    headers[nh++] = "User-Agent: sidewatch/" SIDEWATCH_VERSION;
    headers[nh++] = "X-Prometheus-Remote-Write-Version: " RWPROTO_VERSION;
    for (size_t i = 0; i < rw->n_headers; i++) {
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        buf_printf(&b, "%s: %s", rw->headers[i].name, rw->headers[i].value);
        headers[nh++] = owned[no++] = buf_detach(&b, NULL);
    }
    char *cred = NULL, *user = NULL, *pass = NULL;
    if (hc->has_authorization) {
        cred = config_read_secret(&hc->authorization_credentials);
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        buf_printf(&b, "Authorization: %s %s",
                   hc->authorization_type ? hc->authorization_type : "Bearer", cred ? cred : "");
        headers[nh++] = owned[no++] = buf_detach(&b, NULL);
    }
    if (hc->has_basic_auth) {
        user = hc->basic_auth_username_file
                   ? config_read_secret(&(config_secret){NULL, hc->basic_auth_username_file})
                   : mem_strdup(nz(hc->basic_auth_username));
        pass = config_read_secret(&hc->basic_auth_password);
    }
    httpc_request req = {
        .url = rw->url,
        .method = "POST",
        .headers = headers,
        .body = body,
        .body_len = len,
        .timeout_ms = rw->remote_timeout_ms,
        .body_limit = REMOTE_RESPONSE_LIMIT,
        .basic_user = user,
        .basic_password = hc->has_basic_auth ? (pass ? pass : "") : NULL,
        .tls_ca_file = hc->tls_ca_file,
        .tls_cert_file = hc->tls_cert_file,
        .tls_key_file = hc->tls_key_file,
        .tls_server_name = hc->tls_server_name,
        .tls_insecure_skip_verify = hc->tls_insecure_skip_verify,
        .follow_redirects = hc->follow_redirects,
    };
    memset(res, 0, sizeof *res);
    httpc_transfer *t = NULL;
    if (httpc_start(http, &req, on_sent, res, &t) < 0) {
        res->done = true;
        res->result = HTTPC_ERR_TRANSFER;
        snprintf(res->error, sizeof res->error, "cannot start the request");
    }
    wipe_free(cred);
    wipe_free(pass);
    wipe_free(user);
    for (size_t i = 0; i < no; i++)
        wipe_free(owned[i]);
    mem_free(owned);
    mem_free(headers);
    bool stopped = false;
    while (!res->done) {
        if (queue_stopping(q)) {
            httpc_cancel(http, t);
            stopped = true;
            break;
        }
        httpc_poll(http, 100, -1);
    }
    return !stopped;
}

enum send_outcome { SENT, FAILED, ABANDONED };

/* Sends body with retries. counts[0..3] = samples, histograms, metadata,
 * exemplars in it (for the retried counters). resend: a request that may
 * have reached the receiver before a restart, whose refusal is expected
 * (logged as information, not as an error). */
static enum send_outcome send_with_retries(rqueue *q, httpc *http, const char *body, size_t len,
                                           const size_t counts[4], bool resend)
{
    const config_remote_write *rw = q->rw;
    int64_t backoff = rw->queue_min_backoff_ms > 0 ? rw->queue_min_backoff_ms : 30;
    for (;;) {
        send_result res;
        int64_t t0 = mono_ms();
        if (!post(q, http, body, len, &res)) return ABANDONED;
        int64_t took = mono_ms() - t0;
        registry_observe(q->m.duration, (double)took / 1000.0);
        atomic_fetch_add(&q->n_out_ns, (uint64_t)took * 1000000ULL);
        bool ok = res.result == HTTPC_OK && res.status / 100 == 2;
        if (ok) return SENT;
        bool recoverable = res.result != HTTPC_OK || res.status / 100 == 5 || res.status == 429;
        if (!recoverable && resend) {
            log_info(REMOTE_LOG,
                     "remote_name=%s url=%s: a request sent before the restart was refused again "
                     "(%s); taken as received then",
                     q->name, q->url, res.error);
            return FAILED;
        }
        if (!recoverable) {
            log_error(REMOTE_LOG, "remote_name=%s url=%s: non-recoverable error: %s", q->name,
                      q->url, res.error);
            return FAILED;
        }
        int64_t sleep = res.retry_after_ms > 0 ? res.retry_after_ms : backoff;
        log_warn(REMOTE_LOG, "remote_name=%s url=%s: failed to send batch, retrying: %s", q->name,
                 q->url, res.error);
        if (!queue_sleep(q, sleep)) return ABANDONED;
        registry_add(q->m.retried, (double)counts[0]);
        registry_add(q->m.hist_retried, (double)counts[1]);
        registry_add(q->m.metadata_retried, (double)counts[2]);
        registry_add(q->m.ex_retried, (double)counts[3]);
        backoff = sleep * 2;
        if (rw->queue_max_backoff_ms > 0 && backoff > rw->queue_max_backoff_ms)
            backoff = rw->queue_max_backoff_ms;
    }
}

static void entry_done(rentry *e)
{
    entry_release(e);
    atomic_fetch_sub(&e->row->left, 1);
}

/* Encodes k entries (in arrival order) as one write request into body:
 * grouped by series, each series' order kept; exemplars each in a
 * TimeSeries of their own. counts[] as send_with_retries wants them;
 * *max_t: the newest sample's timestamp. Uses the series' bidx scratch, so
 * one thread at a time per series (its shard, or the reader before the
 * shards have anything). -1 with err set when it cannot be encoded. */
static int encode_entries(rentry *ents, size_t k, buf *body, size_t counts[4], int64_t *max_t,
                          buf *err)
{
    /* Group by series, keeping each series' order. */
    rwproto_series *ser = mem_calloc(k, sizeof *ser);
    size_t ns = 0, n_float = 0, n_hist = 0, n_ex = 0;
    for (size_t i = 0; i < k; i++) {
        rseries *s = ents[i].s;
        if (ents[i].ex) { /* its own TimeSeries, added below */
            n_ex++;
            continue;
        }
        if (s->bidx >= ns || ser[s->bidx].ls != s->ls) {
            s->bidx = ns;
            ser[ns++].ls = s->ls;
        }
        if (ents[i].h) {
            ser[s->bidx].n_hists++;
            n_hist++;
        } else {
            ser[s->bidx].n_samples++;
            n_float++;
        }
    }
    rwproto_sample *samples = mem_malloc((n_float ? n_float : 1) * sizeof *samples);
    rwproto_hsample *hists = mem_malloc((n_hist ? n_hist : 1) * sizeof *hists);
    size_t fo = 0, ho = 0;
    for (size_t i = 0; i < ns; i++) {
        ser[i].samples = samples + fo;
        ser[i].hists = hists + ho;
        fo += ser[i].n_samples;
        ho += ser[i].n_hists;
        ser[i].n_samples = ser[i].n_hists = 0;
    }
    *max_t = INT64_MIN;
    rwproto_exemplar *exs = mem_malloc((n_ex ? n_ex : 1) * sizeof *exs);
    size_t eo = 0;
    for (size_t i = 0; i < k; i++) {
        if (ents[i].ex) {
            /* As Prometheus: one TimeSeries per exemplar, with the series'
             * labels and no samples. */
            exs[eo] = (rwproto_exemplar){.ls = ents[i].ex, .t = ents[i].t, .v = ents[i].v};
            ser[ns++] =
                (rwproto_series){.ls = ents[i].s->ls, .exemplars = &exs[eo], .n_exemplars = 1};
            eo++;
            continue;
        }
        rwproto_series *s = &ser[ents[i].s->bidx];
        if (ents[i].h)
            s->hists[s->n_hists++] = (rwproto_hsample){.t = ents[i].t, .h = *ents[i].h};
        else
            s->samples[s->n_samples++] = (rwproto_sample){.t = ents[i].t, .v = ents[i].v};
        if (ents[i].t > *max_t) *max_t = ents[i].t;
    }
    rwproto_request req = {.series = ser, .n_series = ns};
    counts[0] = n_float;
    counts[1] = n_hist;
    counts[2] = 0;
    counts[3] = n_ex;
    int rc = rwproto_encode(&req, body, err);
    mem_free(samples);
    mem_free(hists);
    mem_free(exs);
    mem_free(ser);
    return rc < 0 ? -1 : 0;
}

/* Counts a request of k entries as sent. */
static void count_sent(rqueue *q, const size_t counts[4], size_t body_len, int64_t max_t)
{
    set_max(&q->highest_sent_ms, max_t);
    registry_set(q->m.highest_sent, (double)atomic_load(&q->highest_sent_ms) / 1000.0);
    registry_add(q->m.bytes, (double)body_len);
    registry_add(q->m.histograms, (double)counts[1]);
    registry_add(q->m.samples, (double)counts[0]);
    registry_add(q->m.exemplars, (double)counts[3]);
}

/* Sends k entries (in arrival order) as one request, saved first (see
 * "Requests in flight" at the top); completes them unless the queue
 * stopped first. */
static void send_entries(rshard *sh, rentry *ents, size_t k)
{
    rqueue *q = sh->q;
    if (k == 0) return;
    record_save(sh, ents, k);
    buf body, err;
    buf_init(&body, REMOTE_BODY_LIMIT);
    buf_init(&err, 1024);
    enum send_outcome out;
    size_t counts[4];
    int64_t max_t;
    if (encode_entries(ents, k, &body, counts, &max_t, &err) < 0) {
        log_error(REMOTE_LOG, "remote_name=%s: cannot encode a batch: %s", q->name, buf_cstr(&err));
        out = FAILED;
    } else {
        out = send_with_retries(q, sh->http, body.data, body.len, counts, false);
    }
    if (out == SENT) {
        count_sent(q, counts, body.len, max_t);
        atomic_fetch_add(&q->n_out, k);
        atomic_fetch_add(&q->sends, 1);
        for (size_t i = 0; i < k; i++) {
            rseries *s = ents[i].s;
            if (ents[i].ex) continue; /* exemplars do not move the resend guard */
            if (ents[i].t > atomic_load(&s->sent_t)) atomic_store(&s->sent_t, ents[i].t);
            if (ents[i].row->seq > atomic_load(&s->sent_seq))
                atomic_store(&s->sent_seq, ents[i].row->seq);
        }
    } else if (out == FAILED) {
        registry_add(q->m.failed, (double)counts[0]);
        registry_add(q->m.hist_failed, (double)counts[1]);
        registry_add(q->m.ex_failed, (double)counts[3]);
    }
    for (size_t i = 0; i < k; i++) {
        /* Pending until sent or dropped, as Prometheus counts it. */
        atomic_fetch_sub(pending_of(q, &ents[i]), 1);
        if (out == ABANDONED) {
            /* The row stays incomplete: it is read again after a restart. */
            entry_release(&ents[i]);
        } else {
            entry_done(&ents[i]);
        }
    }
    buf_cleanup(&body);
    buf_cleanup(&err);
}

static void *shard_main(void *arg)
{
    rshard *sh = arg;
    rqueue *q = sh->q;
    size_t max =
        (size_t)(q->rw->queue_max_samples_per_send > 0 ? q->rw->queue_max_samples_per_send : 2000);
    int64_t deadline =
        q->rw->queue_batch_send_deadline_ms > 0 ? q->rw->queue_batch_send_deadline_ms : 5000;
    rentry *batch = mem_malloc(max * sizeof *batch);
    for (;;) {
        pthread_mutex_lock(&sh->mu);
        /* (A ring smaller than a batch sends when it is full.) */
        while (!sh->stop && sh->len < max && sh->len < sh->cap) {
            if (sh->len == 0) {
                pthread_cond_wait(&sh->cv, &sh->mu);
                continue;
            }
            int64_t wait = sh->oldest_ms + deadline - mono_ms();
            if (wait <= 0) break;
            struct timespec ts = deadline_in(wait);
            pthread_cond_timedwait(&sh->cv, &sh->mu, &ts);
        }
        if (sh->stop) {
            pthread_mutex_unlock(&sh->mu);
            break;
        }
        size_t k = sh->len < max ? sh->len : max;
        for (size_t i = 0; i < k; i++) {
            batch[i] = sh->ring[(sh->head + i) % sh->cap];
        }
        sh->head = (sh->head + k) % sh->cap;
        sh->len -= k;
        sh->oldest_ms = mono_ms();
        sh->busy = true;
        pthread_cond_broadcast(&sh->cv);
        pthread_mutex_unlock(&sh->mu);

        send_entries(sh, batch, k);

        pthread_mutex_lock(&sh->mu);
        sh->busy = false;
        pthread_cond_broadcast(&sh->cv);
        pthread_mutex_unlock(&sh->mu);
    }
    mem_free(batch);
    return NULL;
}

static void shard_start(rqueue *q, rshard *sh)
{
    sh->stop = false;
    sh->http = httpc_new();
    sh->running = pthread_create(&sh->th, NULL, shard_main, sh) == 0;
    if (!sh->running) log_error(REMOTE_LOG, "remote_name=%s: cannot start a shard", q->name);
}

/* Stops a shard's thread; entries it still holds are freed (their rows stay
 * incomplete). */
static void shard_stop(rshard *sh)
{
    if (sh->running) {
        pthread_mutex_lock(&sh->mu);
        sh->stop = true;
        pthread_cond_broadcast(&sh->cv);
        pthread_mutex_unlock(&sh->mu);
        pthread_join(sh->th, NULL);
        sh->running = false;
    }
    httpc_free(sh->http);
    sh->http = NULL;
    for (size_t i = 0; i < sh->len; i++) {
        rentry *e = &sh->ring[(sh->head + i) % sh->cap];
        atomic_fetch_sub(pending_of(sh->q, e), 1);
        entry_release(e);
    }
    sh->head = sh->len = 0;
}

/* Hands one entry to shard i, waiting while it is full. false when the
 * queue stops first (the entry is then not taken). */
static bool enqueue(rqueue *q, size_t i, const rentry *e)
{
    rshard *sh = &q->shards[i];
    pthread_mutex_lock(&sh->mu);
    while (sh->len == sh->cap) {
        struct timespec ts = deadline_in(100);
        pthread_cond_timedwait(&sh->cv, &sh->mu, &ts);
        if (sh->len < sh->cap) break;
        pthread_mutex_unlock(&sh->mu);
        if (queue_stopping(q)) return false;
        advance_cursor(q, false);
        update_pending(q);
        pthread_mutex_lock(&sh->mu);
    }
    if (sh->len == 0) sh->oldest_ms = mono_ms();
    sh->ring[(sh->head + sh->len) % sh->cap] = *e;
    sh->len++;
    atomic_fetch_add(pending_of(q, e), 1);
    /* The shard waits for its first entry (to start the deadline) or for
     * a full batch; waking it for every entry costs more than sending. */
    if (sh->len == 1 || sh->len == (size_t)q->rw->queue_max_samples_per_send || sh->len == sh->cap)
        pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    return true;
}

/* Waits until no shard holds or sends anything. false if the queue stops. */
static bool drain(rqueue *q)
{
    for (;;) {
        bool idle = true;
        for (size_t i = 0; i < q->n_shards && idle; i++) {
            rshard *sh = &q->shards[i];
            pthread_mutex_lock(&sh->mu);
            idle = sh->len == 0 && !sh->busy;
            pthread_mutex_unlock(&sh->mu);
        }
        if (idle) return true;
        advance_cursor(q, false);
        if (!queue_sleep(q, 50)) return false;
    }
}

static void reshard(rqueue *q, size_t want)
{
    if (want == q->n_shards || !drain(q)) return;
    log_info(REMOTE_LOG, "remote_name=%s: resharding from %zu to %zu shards", q->name, q->n_shards,
             want);
    for (size_t i = want; i < q->n_shards; i++)
        shard_stop(&q->shards[i]);
    for (size_t i = q->n_shards; i < want; i++)
        shard_start(q, &q->shards[i]);
    q->n_shards = want;
    atomic_store(&q->layout, want);
    registry_set(q->m.shards, (double)want);
}

static void maybe_reshard(rqueue *q)
{
    int64_t now = mono_ms();
    int64_t dt = now - q->last_reshard_ms;
    if (dt < REMOTE_RESHARD_INTERVAL_MS) return;
    q->last_reshard_ms = now;
    double secs = (double)dt / 1000.0;
    double in_rate = (double)atomic_exchange(&q->n_in, 0) / secs;
    uint64_t out = atomic_exchange(&q->n_out, 0);
    double out_rate = (double)out / secs;
    double out_secs = (double)atomic_exchange(&q->n_out_ns, 0) / 1e9;
    /* The highest timestamp ingested (Prometheus's highestRecvTimestamp
     * comes from its appender, not from what the queue has read): the
     * store's newest sample. */
    store_stats stats;
    store_get_stats(q->r->o.st, &stats);
    set_max(&q->r->highest_ts_ms, stats.max_time_ms);
    int64_t newest = atomic_load(&q->r->highest_ts_ms);
    registry_set(q->r->highest_ts, (double)atomic_load(&q->r->highest_ts_ms) / 1000.0);
    if (out_rate <= 0) return;
    double delay = (double)(newest - atomic_load(&q->highest_sent_ms)) / 1000.0;
    if (delay < 0) delay = 0;
    double backlog = delay * in_rate;
    double time_per_sample = out_secs / (double)out;
    double desired = time_per_sample * (in_rate + 0.05 * backlog);
    registry_set(q->m.shards_desired, desired);
    double cur = (double)q->n_shards;
    desired = ceil(desired);
    if (desired >= cur * 0.7 && desired <= cur * 1.3) return;
    int64_t want = (int64_t)desired;
    if (want < (int64_t)q->n_shards && delay > 10.0) return;
    if (want > q->rw->queue_max_shards) want = q->rw->queue_max_shards;
    if (want < q->rw->queue_min_shards) want = q->rw->queue_min_shards;
    if (want < 1) want = 1;
    reshard(q, (size_t)want);
}

/* ---- metadata ------------------------------------------------------------------------ */

static void send_metadata(rqueue *q)
{
    const config_remote_write *rw = q->rw;
    if (!rw->metadata_send || rw->metadata_send_interval_ms <= 0) return;
    int64_t now = mono_ms();
    if (q->last_metadata_ms && now - q->last_metadata_ms < rw->metadata_send_interval_ms) return;
    q->last_metadata_ms = now;
    store_reader *rd = NULL;
    if (store_reader_open(q->r->o.st, &rd) < 0) return;
    store_metadata *md = NULL;
    size_t n = 0;
    int rc = store_metadata_list(rd, &md, &n);
    store_reader_close(rd);
    if (rc < 0 || n == 0) {
        store_metadata_free(md, n);
        return;
    }
    size_t per =
        rw->metadata_max_samples_per_send > 0 ? (size_t)rw->metadata_max_samples_per_send : 2000;
    rwproto_metadata *m = mem_calloc(per, sizeof *m);
    buf body, err;
    buf_init(&body, REMOTE_BODY_LIMIT);
    buf_init(&err, 1024);
    for (size_t off = 0; off < n; off += per) {
        size_t k = n - off < per ? n - off : per;
        for (size_t i = 0; i < k; i++)
            m[i] = (rwproto_metadata){.metric = md[off + i].metric,
                                      .help = md[off + i].help,
                                      .unit = md[off + i].unit,
                                      .type = md[off + i].type};
        rwproto_request req = {.metadata = m, .n_metadata = k};
        buf_reset(&err);
        if (rwproto_encode(&req, &body, &err) < 0) {
            registry_add(q->m.metadata_failed, (double)k);
            continue;
        }
        size_t counts[4] = {0, 0, k, 0};
        /* From the reader thread, with a client of its own. */
        httpc *http = httpc_new();
        enum send_outcome out = send_with_retries(q, http, body.data, body.len, counts, false);
        httpc_free(http);
        if (out == SENT) {
            registry_add(q->m.metadata, (double)k);
            registry_add(q->m.metadata_bytes, (double)body.len);
        } else if (out == FAILED) {
            registry_add(q->m.metadata_failed, (double)k);
        } else {
            break;
        }
    }
    buf_cleanup(&body);
    buf_cleanup(&err);
    mem_free(m);
    store_metadata_free(md, n);
}

/* ---- the reader ------------------------------------------------------------------------ */

static void queue_open_cursor(rqueue *q)
{
    store *st = q->r->o.st;
    int64_t lag = q->r->o.max_lag_ms > 0 ? q->r->o.max_lag_ms : REMOTE_DEFAULT_MAX_LAG_MS;
    store_wal_consumer c;
    if (store_wal_consumer_get(st, q->consumer, &c) == 0) {
        q->next_read = c.next_seq;
        q->store_dropped = c.dropped_samples;
    } else {
        q->next_read = store_wal_next_seq(st);
    }
    buf err;
    buf_init(&err, 4096);
    if (store_wal_consumer_set(st, q->consumer, q->next_read, lag, &err) < 0)
        log_warn(REMOTE_LOG, "remote_name=%s: cannot register the cursor: %s", q->name,
                 buf_cstr(&err));
    buf_cleanup(&err);
    q->saved = q->next_read;
    q->last_save_ms = mono_ms();
    skip_load(q);
    records_load(q, false);
}

/* Reads one slice of rows and hands their samples to the shards. Returns
 * the number of rows read, or -1 when the queue stops. */
static ssize_t read_rows(rqueue *q)
{
    store_wal_batch *b = NULL;
    size_t n = 0;
    uint64_t first = q->next_read;
    int rc = store_wal_read(q->r->o.st, q->next_read, REMOTE_READ_ROWS, &b, &n, &first);
    if (rc == -EIO) {
        /* A row that does not decode: skipped (the store logged it), as
         * Prometheus's WAL watcher gives up on a corrupt segment. */
        log_error(REMOTE_LOG, "remote_name=%s: write-ahead row %" PRIu64 " is corrupt; skipped",
                  q->name, first);
        if (first >= q->next_read) q->next_read = first + 1;
        return 0;
    }
    if (rc < 0) return 0; /* -EAGAIN and the like: again at the next turn */
    if (first > q->next_read) q->next_read = first; /* released rows: counted by the store */
    int64_t age_limit = q->rw->queue_sample_age_limit_ms;
    int64_t now = wall_ms();
    ssize_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        /* Between rows: a big backlog keeps the reader here for long. */
        maybe_reshard(q);
        rrow *row = mem_malloc(sizeof *row);
        row->seq = b[i].seq;
        atomic_store(&row->left, 1);
        rows_push(q, row);
        q->next_read = b[i].seq + 1;
        rows++;
        bool stopped = false;
        for (size_t k = 0; k < b[i].n && !stopped; k++) {
            const store_wal_sample *ws = &b[i].samples[k];
            bool unknown;
            rseries *s = series_resolve(q, ws->ref, &unknown);
            if (ws->t > atomic_load(&q->highest_recv_ms)) {
                set_max(&q->highest_recv_ms, ws->t);
                set_max(&q->r->highest_ts_ms, ws->t);
            }
            if (unknown) {
                registry_inc(q->m.dropped_unknown);
                continue;
            }
            if (!s->ls) {
                registry_inc(ws->h ? q->m.hist_dropped_series : q->m.dropped_series);
                continue;
            }
            if (ws->t <= s->skip_t) continue; /* sent before the restart */
            if (old_record(q, s, b[i].seq, (uint32_t)k) >= 0) continue; /* resent by recover() */
            if (age_limit > 0 && now - ws->t > age_limit) {
                registry_inc(q->m.dropped_too_old);
                continue;
            }
            rentry e = {.s = s, .row = row, .t = ws->t, .v = ws->v, .idx = (uint32_t)k};
            if (ws->h) {
                e.h = mem_malloc(sizeof *e.h);
                nhist_init(e.h);
                if (nhist_copy(e.h, ws->h) < 0) {
                    mem_free(e.h);
                    continue;
                }
            }
            atomic_fetch_add(&row->left, 1);
            atomic_fetch_add(&q->n_in, 1);
            size_t shard = (size_t)(s->ls->hash % q->n_shards);
            if (!enqueue(q, shard, &e)) {
                atomic_fetch_sub(&row->left, 1);
                entry_release(&e);
                stopped = true;
            }
        }
        /* The row's exemplars, after its samples (same shard as their
         * series). Not filtered by skip_t: see the top. */
        for (size_t k = 0; q->rw->send_exemplars && k < b[i].n_exemplars && !stopped; k++) {
            const store_wal_exemplar *we = &b[i].exemplars[k];
            bool unknown;
            rseries *s = series_resolve(q, we->ref, &unknown);
            if (unknown) {
                registry_inc(q->m.ex_dropped_unknown);
                continue;
            }
            if (!s->ls) {
                registry_inc(q->m.ex_dropped_series);
                continue;
            }
            uint32_t idx = (uint32_t)(b[i].n + k);
            if (old_record(q, s, b[i].seq, idx) >= 0) continue; /* resent by recover() */
            if (age_limit > 0 && now - we->t > age_limit) {
                registry_inc(q->m.ex_dropped_too_old);
                continue;
            }
            rentry e = {.s = s,
                        .row = row,
                        .t = we->t,
                        .v = we->v,
                        .ex = labels_dup(we->labels),
                        .idx = idx};
            atomic_fetch_add(&row->left, 1);
            atomic_fetch_add(&q->n_in, 1);
            size_t shard = (size_t)(s->ls->hash % q->n_shards);
            if (!enqueue(q, shard, &e)) {
                atomic_fetch_sub(&row->left, 1);
                entry_release(&e);
                stopped = true;
            }
        }
        if (stopped) {
            /* The row stays incomplete (left > 0): read again after a restart. */
            store_wal_batches_free(b, n);
            return -1;
        }
        atomic_fetch_sub(&row->left, 1);
    }
    store_wal_batches_free(b, n);
    if (q->old_end && q->next_read >= q->old_end) { /* past what the previous run sent */
        mem_free(q->old);
        q->old = NULL;
        q->n_old = q->cap_old = 0;
        q->old_end = 0;
    }
    registry_set(q->m.highest_recv, (double)atomic_load(&q->highest_recv_ms) / 1000.0);
    registry_set(q->r->highest_ts, (double)atomic_load(&q->r->highest_ts_ms) / 1000.0);
    return rows;
}

/* Appends a copy of e to the list (*v, *n, *cap). */
static void entries_push(rentry **v, size_t *n, size_t *cap, const rentry *e)
{
    *v = mem_grow(*v, sizeof **v, *n + 1, cap);
    (*v)[(*n)++] = *e;
}

/* Sends again, before anything else, the requests the previous run saved
 * and may have sent (q->old), each rebuilt from the rows as a request of
 * its own, oldest run first. A Prometheus receiver applies a request whole
 * or not at all, so each is either accepted now (it had not arrived) or
 * refused as out of order (it had, whole); mixed with newer samples, as
 * before, that refusal dropped the newer ones too. false when the queue
 * stops first (the records stay for the next start). */
static bool recover(rqueue *q)
{
    if (q->n_old == 0) return true;
    store *st = q->r->o.st;
    rentry **reqs = mem_calloc(q->n_old, sizeof *reqs);
    size_t *lens = mem_calloc(q->n_old, sizeof *lens);
    size_t *caps = mem_calloc(q->n_old, sizeof *caps);
    int64_t age_limit = q->rw->queue_sample_age_limit_ms;
    int64_t now = wall_ms();
    uint64_t next = q->next_read;
    bool ok = true;
    while (next < q->old_end) {
        store_wal_batch *b = NULL;
        size_t n = 0;
        uint64_t first = next;
        int rc = store_wal_read(st, next, REMOTE_READ_ROWS, &b, &n, &first);
        if (rc == -EIO) { /* read_rows logs and skips it */
            next = (first >= next ? first : next) + 1;
            continue;
        }
        if (rc < 0) {
            if (!queue_sleep(q, REMOTE_IDLE_POLL_MS)) {
                ok = false;
                break;
            }
            continue;
        }
        if (n == 0) break; /* the rows are gone (released) */
        for (size_t i = 0; i < n && b[i].seq < q->old_end; i++) {
            next = b[i].seq + 1;
            size_t nk = b[i].n + (q->rw->send_exemplars ? b[i].n_exemplars : 0);
            for (size_t k = 0; k < nk; k++) {
                bool ex = k >= b[i].n;
                const store_wal_sample *ws = ex ? NULL : &b[i].samples[k];
                const store_wal_exemplar *we = ex ? &b[i].exemplars[k - b[i].n] : NULL;
                bool unknown;
                rseries *s = series_resolve(q, ex ? we->ref : ws->ref, &unknown);
                if (unknown || !s->ls) continue;
                int64_t t = ex ? we->t : ws->t;
                if (!ex && t <= s->skip_t) continue;
                if (age_limit > 0 && now - t > age_limit) continue;
                ssize_t r = old_record(q, s, b[i].seq, (uint32_t)k);
                if (r < 0) continue;
                rentry e = {.s = s, .t = t, .v = ex ? we->v : ws->v, .idx = (uint32_t)k};
                if (ex) {
                    e.ex = labels_dup(we->labels);
                } else if (ws->h) {
                    e.h = mem_malloc(sizeof *e.h);
                    nhist_init(e.h);
                    if (nhist_copy(e.h, ws->h) < 0) {
                        mem_free(e.h);
                        continue;
                    }
                }
                entries_push(&reqs[r], &lens[r], &caps[r], &e);
            }
        }
        if (n > 0 && b[n - 1].seq + 1 > next && b[n - 1].seq < q->old_end) next = b[n - 1].seq + 1;
        store_wal_batches_free(b, n);
    }
    httpc *http = httpc_new();
    size_t accepted = 0, refused = 0;
    for (size_t i = 0; ok && i < q->n_old; i++) {
        if (lens[i] == 0) continue;
        buf body, err;
        buf_init(&body, REMOTE_BODY_LIMIT);
        buf_init(&err, 1024);
        size_t counts[4];
        int64_t max_t;
        if (encode_entries(reqs[i], lens[i], &body, counts, &max_t, &err) < 0) {
            log_error(REMOTE_LOG, "remote_name=%s: cannot encode a batch: %s", q->name,
                      buf_cstr(&err));
        } else {
            enum send_outcome out = send_with_retries(q, http, body.data, body.len, counts, true);
            if (out == SENT) {
                count_sent(q, counts, body.len, max_t);
                accepted++;
            } else if (out == FAILED) {
                refused++;
            } else {
                ok = false;
            }
        }
        buf_cleanup(&body);
        buf_cleanup(&err);
    }
    httpc_free(http);
    for (size_t i = 0; i < q->n_old; i++) {
        for (size_t k = 0; k < lens[i]; k++)
            entry_release(&reqs[i][k]);
        mem_free(reqs[i]);
    }
    mem_free(reqs);
    mem_free(lens);
    mem_free(caps);
    if (accepted + refused > 0)
        log_info(REMOTE_LOG,
                 "remote_name=%s: %zu requests of the previous run sent again first: %zu "
                 "accepted, %zu refused as received before",
                 q->name, accepted + refused, accepted, refused);
    return ok;
}

static void *reader_main(void *arg)
{
    rqueue *q = arg;
    if (!recover(q)) return NULL;
    q->last_reshard_ms = mono_ms();
    for (;;) {
        if (queue_stopping(q)) break;
        send_metadata(q);
        maybe_reshard(q);
        ssize_t rows = read_rows(q);
        if (rows < 0) break;
        update_pending(q);
        advance_cursor(q, false);
        if (rows < REMOTE_READ_ROWS && !queue_sleep(q, REMOTE_IDLE_POLL_MS)) break;
    }
    return NULL;
}

/* ---- queues -------------------------------------------------------------------------------- */

static rqueue *queue_new(remote *r, config *cfg, size_t idx)
{
    rqueue *q = mem_calloc(1, sizeof *q);
    q->r = r;
    q->cfg = config_ref(cfg);
    q->rw = &cfg->remote_write[idx];
    q->name = queue_name(q->rw);
    q->url = config_redact_url(q->rw->url);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_printf(&b, "remote_write/%s", q->name);
    q->consumer = buf_detach(&b, NULL);
    q->settings = settings_text(cfg, q->rw);
    q->fingerprint = labelling_fingerprint(cfg, q->rw);
    pthread_mutex_init(&q->rec_mu, NULL);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    hmap_init(&q->series);
    size_t max = (size_t)(q->rw->queue_max_shards > 0 ? q->rw->queue_max_shards : 1);
    size_t cap = (size_t)(q->rw->queue_capacity > 0 ? q->rw->queue_capacity : 10000);
    q->shards = mem_calloc(max, sizeof *q->shards);
    for (size_t i = 0; i < max; i++) {
        rshard *sh = &q->shards[i];
        sh->q = q;
        sh->cap = cap;
        sh->ring = mem_malloc(cap * sizeof *sh->ring);
        pthread_mutex_init(&sh->mu, NULL);
        pthread_cond_init(&sh->cv, NULL);
    }
    metrics_init(r, q);
    return q;
}

static int queue_run(rqueue *q)
{
    queue_open_cursor(q);
    size_t n = (size_t)(q->rw->queue_min_shards > 0 ? q->rw->queue_min_shards : 1);
    if (n > (size_t)q->rw->queue_max_shards) n = (size_t)q->rw->queue_max_shards;
    for (size_t i = 0; i < n; i++)
        shard_start(q, &q->shards[i]);
    q->n_shards = n;
    atomic_store(&q->layout, n);
    registry_set(q->m.shards, (double)n);
    registry_set(q->m.shards_desired, (double)n);
    if (pthread_create(&q->reader, NULL, reader_main, q) != 0) return -EAGAIN;
    q->reader_running = true;
    log_info(REMOTE_LOG, "remote_name=%s url=%s: starting at write-ahead row %" PRIu64, q->name,
             q->url, q->next_read);
    return 0;
}

/* Stops the threads, saves the cursor and frees. remove: also forget the
 * consumer and the queue's metrics. */
static void queue_free(rqueue *q, bool remove)
{
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    /* Wake a reader waiting on a full shard. */
    for (size_t i = 0; i < q->n_shards; i++)
        pthread_cond_broadcast(&q->shards[i].cv);
    if (q->reader_running) pthread_join(q->reader, NULL);
    for (size_t i = 0; i < (size_t)q->rw->queue_max_shards; i++)
        shard_stop(&q->shards[i]);
    if (q->reader_running) advance_cursor(q, true);
    if (remove) {
        store_wal_consumer_remove(q->r->o.st, q->consumer);
        store_kv_op op = {.ns = REMOTE_KV_NS, .key = q->consumer, .key_len = strlen(q->consumer)};
        store_kv_apply(q->r->o.st, &op, 1, NULL);
        records_load(q, true);
        metrics_remove(q->r, q);
    }
    for (size_t i = 0; i < (size_t)q->rw->queue_max_shards; i++) {
        mem_free(q->shards[i].ring);
        pthread_mutex_destroy(&q->shards[i].mu);
        pthread_cond_destroy(&q->shards[i].cv);
    }
    mem_free(q->shards);
    while (q->rows_len > 0) {
        mem_free(q->rows[q->rows_head]);
        q->rows_head = (q->rows_head + 1) % q->rows_cap;
        q->rows_len--;
    }
    mem_free(q->rows);
    size_t it = 0;
    void *v;
    while (hmap_next(&q->series, &it, &v)) {
        rseries *s = v;
        labels_free(s->ls);
        mem_free(s);
    }
    hmap_cleanup(&q->series);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    mem_free(q->name);
    mem_free(q->url);
    mem_free(q->consumer);
    mem_free(q->settings);
    mem_free(q->recs);
    mem_free(q->old);
    pthread_mutex_destroy(&q->rec_mu);
    config_unref(q->cfg);
    mem_free(q);
}

static int check_config(const config *cfg, buf *err)
{
    for (size_t i = 0; i < cfg->n_remote_write; i++) {
        const config_remote_write *rw = &cfg->remote_write[i];
        char *shown = config_redact_url(rw->url); /* for error messages */
        if (rw->protobuf_message && strcmp(rw->protobuf_message, "prometheus.WriteRequest") != 0) {
            if (err)
                buf_printf(err,
                           "remote_write %s: protobuf_message %s is not supported (only "
                           "prometheus.WriteRequest, remote write 1.0)",
                           shown, rw->protobuf_message);
            mem_free(shown);
            return -EINVAL;
        }
        if (rw->queue_max_shards < 1 || rw->queue_capacity < 1 ||
            rw->queue_max_samples_per_send < 1) {
            if (err)
                buf_printf(err,
                           "remote_write %s: queue_config needs max_shards, capacity and "
                           "max_samples_per_send above 0",
                           shown);
            mem_free(shown);
            return -EINVAL;
        }
        char *ni = queue_name(rw);
        for (size_t k = 0; k < i; k++) {
            char *nk = queue_name(&cfg->remote_write[k]);
            bool dup = strcmp(ni, nk) == 0;
            mem_free(nk);
            if (dup) {
                if (err)
                    buf_printf(err,
                               "remote_write: duplicate remote write configs are not "
                               "allowed, found duplicate for URL: %s",
                               shown);
                mem_free(ni);
                mem_free(shown);
                return -EINVAL;
            }
        }
        mem_free(ni);
        mem_free(shown);
    }
    return 0;
}

int remote_start(remote **out, const remote_options *o, config *cfg, buf *err)
{
    *out = NULL;
    if (!o || !o->st || !o->reg || !cfg) {
        if (err) buf_puts(err, "remote: store, registry and config are required");
        return -EINVAL;
    }
    int rc = check_config(cfg, err);
    if (rc < 0) return rc;
    remote *r = mem_calloc(1, sizeof *r);
    r->o = *o;
    pthread_mutex_init(&r->mu, NULL);
    r->highest_ts = registry_child(
        registry_gauge(o->reg, "prometheus_remote_storage_highest_timestamp_in_seconds",
                       "Highest timestamp that has come into the remote storage via the Appender "
                       "interface, in seconds since epoch.",
                       NULL),
        NULL);
    if ((rc = remote_apply(r, cfg, err)) < 0) {
        remote_stop(r);
        return rc;
    }
    *out = r;
    return 0;
}

int remote_apply(remote *r, config *cfg, buf *err)
{
    int rc = check_config(cfg, err);
    if (rc < 0) return rc;
    pthread_mutex_lock(&r->mu);
    rqueue **next = mem_calloc(cfg->n_remote_write + 1, sizeof *next);
    bool *kept = mem_calloc(r->n + 1, sizeof *kept);
    /* Unchanged queues keep running. */
    for (size_t i = 0; i < cfg->n_remote_write; i++) {
        char *name = queue_name(&cfg->remote_write[i]);
        char *set = settings_text(cfg, &cfg->remote_write[i]);
        for (size_t k = 0; k < r->n; k++) {
            if (!kept[k] && strcmp(r->q[k]->name, name) == 0 &&
                strcmp(r->q[k]->settings, set) == 0) {
                next[i] = r->q[k];
                kept[k] = true;
                break;
            }
        }
        mem_free(name);
        mem_free(set);
    }
    /* Changed ones stop (keeping their cursor when the name stays); removed
     * ones stop and forget their cursor. */
    for (size_t k = 0; k < r->n; k++) {
        if (kept[k]) continue;
        bool renamed = true;
        for (size_t i = 0; i < cfg->n_remote_write && renamed; i++) {
            char *name = queue_name(&cfg->remote_write[i]);
            if (strcmp(name, r->q[k]->name) == 0) renamed = false;
            mem_free(name);
        }
        queue_free(r->q[k], renamed);
    }
    for (size_t i = 0; i < cfg->n_remote_write; i++) {
        if (next[i]) continue;
        next[i] = queue_new(r, cfg, i);
        if ((rc = queue_run(next[i])) < 0 && err)
            buf_printf(err, "remote_write %s: cannot start the queue", next[i]->url);
    }
    mem_free(r->q);
    mem_free(kept);
    r->q = next;
    r->n = cfg->n_remote_write;
    pthread_mutex_unlock(&r->mu);
    return rc < 0 ? rc : 0;
}

void remote_stop(remote *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++)
        queue_free(r->q[i], false);
    mem_free(r->q);
    r->q = NULL;
    r->n = 0;
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_destroy(&r->mu);
    mem_free(r);
}
