/* store: the time-series database, the only user of <sqlite3.h>.
 *
 * One SQLite database in WAL mode under the storage directory. Samples are
 * compressed into Gorilla chunks (chunkenc.h): each series has an open chunk
 * in memory (the head); every committed batch is also written as one compact
 * row of a write-ahead table, so a crash loses nothing the head held; closed
 * chunks become BLOB rows. The on-disk format is described at the top of
 * store.c.
 *
 * One writer connection (appends, maintenance) guarded by a mutex, so several
 * producers (scrapes, rule evaluations) may append from their own threads;
 * readers open their own read-only connections (store_reader) and never
 * block the writer for longer than copying a series' head chunk.
 *
 * Callers see series by reference (a stable 64-bit id) and label set, never
 * the schema.
 *
 * Durability: store_batch_commit() returns only after the batch is committed
 * to the database; a process killed afterwards (even with SIGKILL) keeps it.
 *
 * Samples are (timestamp in ms since the epoch, float64), or native
 * histograms (nhist.h) in histogram chunks. A series may hold both kinds
 * (never two samples at one timestamp): the newest timestamp of a series,
 * whatever the kind, is what later samples must exceed. The staleness
 * marker (strutil_stale_nan) is stored bit-exactly; in a series whose newest
 * sample is a histogram it is stored as a histogram staleness marker
 * (nhist_is_stale), as Prometheus does. */
#ifndef SIDEWATCH_STORE_H
#define SIDEWATCH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "expfmt.h"
#include "labels.h"
#include "nhist.h"

typedef struct store store;
typedef struct store_batch store_batch;
typedef struct store_reader store_reader;

typedef struct store_options {
    const char *path;        /* storage directory; created if missing */
    int64_t retention_ms;    /* 0 = keep forever; Prometheus's default is 15d */
    int64_t retention_bytes; /* 0 = no size limit; else oldest chunks go first */
    int64_t head_max_age_ms; /* store_maintain closes head chunks open longer
                              * than this; 0 = one hour */
    int64_t max_exemplars;   /* exemplar storage bound (storage.exemplars.
                              * max_exemplars); 0 = exemplar storage off */
    /* Eviction from memory (store_maintain): a series whose samples are all
     * in chunk rows leaves memory once its newest sample is a staleness
     * marker appended at least evict_stale_ms before (0 = 2 minutes: a
     * target or rule that stopped producing it; a brief outage does not
     * reload it), or once nothing was appended to it for evict_idle_ms
     * (0 = 15 minutes; its head chunk is closed then). Evicted series keep
     * their reference and stay on disk: every call below finds them, and
     * appending to them loads them again. */
    int64_t evict_stale_ms;
    int64_t evict_idle_ms;
} store_options;

typedef struct store_stats {
    uint64_t series;           /* series in memory (not evicted; the store
                                * holds more on disk) */
    uint64_t series_evicted;   /* evicted from memory since open */
    uint64_t series_loaded;    /* loaded from disk into memory since open
                                * (at open, or an evicted one used again) */
    uint64_t samples_appended; /* since open */
    uint64_t batches_committed;
    uint64_t commit_errors;
    uint64_t out_of_order_samples; /* rejected: older than the series' newest sample */
    uint64_t duplicate_samples;    /* dropped: same timestamp and value */
    uint64_t retention_deleted_samples;
    uint64_t retention_deleted_chunks;
    uint64_t chunks_persisted;   /* closed chunks written since open */
    uint64_t corrupt_chunks;     /* chunks that failed to decode when read */
    uint64_t histogram_samples_appended; /* since open (also in samples_appended) */
    uint64_t invalid_histograms;         /* dropped: failed nhist_validate */
    uint64_t head_chunks;        /* open chunks in memory (series with samples in the head) */
    uint64_t head_memory_bytes;  /* bytes of chunk data held in memory */
    uint64_t wal_rows;           /* write-ahead rows not yet truncated */
    uint64_t replayed_samples;   /* samples replayed from the write-ahead table at open */
    /* Exemplar storage (Prometheus's prometheus_tsdb_exemplar_* metrics). */
    uint64_t exemplars_appended;     /* since open */
    uint64_t exemplars_out_of_order; /* refused: older than the series' newest */
    uint64_t exemplars_in_storage;
    uint64_t series_with_exemplars;
    int64_t max_exemplars;            /* the current bound; 0 = off */
    int64_t size_bytes;               /* database + WAL files on disk */
    int64_t min_time_ms, max_time_ms; /* of stored samples; 0 when empty */
} store_stats;

/* Opens (creating if needed) the database in o->path. Returns 0 and *out, or
 * a negative errno with a message ("storage: <path>: ...") appended to err.
 * A database left by a crash (SIGKILL) opens without manual repair. */
int store_open(store **out, const store_options *o, buf *err);
/* Commits nothing more (batches are committed explicitly), closes every
 * connection and frees the store. NULL is a no-op. Readers must be closed
 * first. */
void store_close(store *s);

/* The reference for a label set, creating the series if it is new
 * (*created = true). References are stable for the database's lifetime,
 * also across eviction (an evicted series is found on disk and keeps its
 * reference; it is loaded when samples are appended to it). Thread-safe.
 * The labels are copied. Returns 0 or a negative errno (a failed lookup
 * on disk). */
int store_series_ref(store *s, const labels *ls, uint64_t *ref, bool *created);

/* ---- appending ------------------------------------------------------------ */

/* Starts a batch (one scrape or one rule evaluation). Never fails; the
 * batch is only memory until committed. */
store_batch *store_batch_new(store *s);
/* Adds a sample for a series reference. Out-of-order samples (older than
 * the newest committed sample of the series) are counted and dropped at
 * commit, as are exact duplicates; they are not errors. */
void store_batch_add(store_batch *b, uint64_t ref, int64_t t_ms, double v);
/* Adds a native histogram sample (h is copied; the batch owns the copy).
 * Same rules as store_batch_add; a histogram that fails nhist_validate is
 * counted (store_stats.invalid_histograms) and dropped at commit. */
void store_batch_add_histogram(store_batch *b, uint64_t ref, int64_t t_ms, const nhist *h);
/* Adds an exemplar of a series reference (ls copied; NULL = no labels).
 * Checked at commit as Prometheus's CircularExemplarStorage does, per
 * series in append order: one equal to the series' newest exemplar (labels,
 * value, timestamp) is a silent duplicate; one older than it (or at the same
 * timestamp with a smaller value, or equal value and a smaller label hash)
 * is out of order (counted in store_stats.exemplars_out_of_order); one whose
 * label names and values hold more than STORE_EXEMPLAR_MAX_LABEL_RUNES
 * runes in all is refused. Accepted ones are written in the batch's
 * transaction (the exemplars table and the write-ahead row) and the oldest
 * stored exemplars are evicted beyond max_exemplars. A no-op while exemplar
 * storage is off. Never fails. */
#define STORE_EXEMPLAR_MAX_LABEL_RUNES 128
void store_batch_add_exemplar(store_batch *b, uint64_t ref, int64_t t_ms, double v,
                              const labels *ls);
/* Records metadata for a metric family (kept: latest wins). Strings copied. */
void store_batch_metadata(store_batch *b, const char *metric, enum expfmt_type type,
                          const char *help, const char *unit);
size_t store_batch_len(const store_batch *b);
/* Commits the batch in one transaction and frees it. Returns 0, or a
 * negative errno (nothing of the batch is stored) with the reason logged. */
int store_batch_commit(store_batch *b);
/* Frees a batch without storing it. NULL is a no-op. */
void store_batch_free(store_batch *b);

/* Deletes samples older than now_ms - retention. Returns 0 or -errno.
 * (Part of store_maintain; kept for callers that only want retention.) */
int store_apply_retention(store *s, int64_t now_ms);

/* Periodic upkeep; call about once a minute. Closes head chunks that have
 * been open longer than an hour and those of series whose newest sample is
 * a staleness marker (churned series free their head memory) or that got
 * no sample for evict_idle_ms, writes closed chunks, evicts idle series
 * from memory (store_options; now_ms is compared with the wall-clock time
 * of their last append), moves the cursors of
 * write-ahead consumers that lag more than their max_lag_ms at now_ms
 * (below), truncates the write-ahead table, applies time and size
 * retention, checkpoints SQLite's own WAL and returns free pages to the
 * file system when many are free.
 * Returns 0 or -errno (logged). */
int store_maintain(store *s, int64_t now_ms);

void store_get_stats(store *s, store_stats *out);

/* Changes the exemplar bound (config reload); 0 turns exemplar storage off.
 * Stored exemplars beyond the bound (oldest first; all of them for 0) are
 * deleted by the next commit with exemplars or store_maintain. */
void store_set_max_exemplars(store *s, int64_t max_exemplars);
/* Whether exemplar storage is on (max_exemplars > 0). Thread-safe. */
bool store_exemplars_enabled(store *s);

/* ---- reading ----------------------------------------------------------------- */

/* A read-only connection for one thread at a time. */
int store_reader_open(store *s, store_reader **out);
void store_reader_close(store_reader *r);

/* Optional: makes the calls on this reader until store_reader_end() see one
 * snapshot of the database (a query sees one consistent state, and each call
 * skips taking a snapshot of its own, which is most of the cost of reading a
 * few samples). Without it every call reads its own, newest snapshot. Keep
 * it short (one query): while it is held, checkpoints cannot complete past
 * it and the WAL file grows. Returns 0, -EINVAL if a snapshot is already
 * held, or a negative errno. */
int store_reader_begin(store_reader *r);
/* Releases the snapshot; a no-op without one. */
void store_reader_end(store_reader *r);

typedef struct store_series {
    uint64_t ref;
    labels *labels; /* owned by the result */
} store_series;

typedef struct store_select_result {
    store_series *series; /* sorted by labels */
    size_t n;
} store_select_result;

/* Selects the series that match every matcher and have samples in
 * [mint, maxt] (inclusive). At least one matcher must not match the empty
 * string (as Prometheus requires); otherwise -EINVAL. Returns 0 and fills
 * *out (free with store_select_result_free), or a negative errno. */
int store_select(store_reader *r, const label_matcher *ms, size_t n, int64_t mint, int64_t maxt,
                 store_select_result *out);
void store_select_result_free(store_select_result *res);

typedef struct store_sample {
    int64_t t;
    double v;
} store_sample;

/* Reads the samples of a series with mint <= t <= maxt in time order.
 * Returns 0 and a malloc'd array in *out (caller frees with mem_free) with
 * its length in *n, or a negative errno. */
int store_read_samples(store_reader *r, uint64_t ref, int64_t mint, int64_t maxt,
                       store_sample **out, size_t *n);

/* A native histogram sample; h owns its arrays. */
typedef struct store_hsample {
    int64_t t;
    nhist h;
} store_hsample;

/* Reads the histogram samples of a series with mint <= t <= maxt in time
 * order (histogram staleness markers included). Returns 0 and a malloc'd
 * array in *out (free with store_hsamples_free) with its length in *n
 * (NULL/0 when none), or a negative errno. A series' float samples come
 * from store_read_samples; the two never share a timestamp. */
int store_read_histograms(store_reader *r, uint64_t ref, int64_t mint, int64_t maxt,
                          store_hsample **out, size_t *n);
/* Frees the histograms and the array; NULL is a no-op. */
void store_hsamples_free(store_hsample *s, size_t n);

/* ---- exemplars (for /api/v1/query_exemplars) ------------------------------- */

typedef struct store_exemplar {
    labels *labels; /* owned; never NULL (may be empty) */
    double v;
    int64_t t;
} store_exemplar;

typedef struct store_exemplar_series {
    labels *labels;     /* the series' labels, owned */
    store_exemplar *ex; /* in timestamp order, owned */
    size_t n;
} store_exemplar_series;

/* The exemplars with start <= t <= end of the series matching any of the
 * nsets matcher sets (set i: sets[i], lens[i] matchers; each set needs a
 * matcher that does not match "", else -EINVAL), as Prometheus's
 * ExemplarQuerier.Select: series sorted by labels, only those with at least
 * one exemplar in range. Returns 0 and *out (free with
 * store_exemplar_series_free; NULL/0 when none) or a negative errno. Empty
 * while exemplar storage is off. */
int store_exemplars_select(store_reader *r, const label_matcher *const *sets, const size_t *lens,
                           size_t nsets, int64_t start, int64_t end, store_exemplar_series **out,
                           size_t *n);
void store_exemplar_series_free(store_exemplar_series *x, size_t n);

/* Metadata of a metric family; returns 0 and copies (caller frees), or
 * -ENOENT. */
int store_get_metadata(store_reader *r, const char *metric, enum expfmt_type *type, char **help,
                       char **unit);

/* Every metric family's metadata, sorted by metric name. Returns 0 and a
 * malloc'd array in *out (free with store_metadata_free) with its length in
 * *n, or a negative errno. */
typedef struct store_metadata {
    char *metric, *help, *unit; /* owned */
    enum expfmt_type type;
} store_metadata;
int store_metadata_list(store_reader *r, store_metadata **out, size_t *n);
void store_metadata_free(store_metadata *m, size_t n);

/* ---- index statistics (for /api/v1/status/tsdb) ------------------------------ */

/* One entry of a top list: a name and a count; name is owned. */
typedef struct store_stat {
    char *name;
    uint64_t count;
} store_stat;

/* Cardinality of the series index, as Prometheus's head postings stats:
 * the `limit` highest entries of each list, by count (descending; equal
 * counts by name). */
typedef struct store_index_stats {
    uint64_t num_label_pairs;       /* distinct (name, value) pairs */
    store_stat *series_by_metric;   /* series per __name__ value */
    store_stat *values_by_label;    /* distinct values per label name */
    store_stat *bytes_by_label;     /* estimated bytes of label strings per name:
                                     * (length of name and value, each with a
                                     * varint length prefix) x series, as
                                     * Prometheus estimates memoryInBytesByLabelName */
    store_stat *series_by_pair;     /* series per "name=value" */
    size_t n_series_by_metric, n_values_by_label, n_bytes_by_label, n_series_by_pair;
} store_index_stats;

/* Computes the statistics in one pass over the label index (one row per
 * label pair, each with its series count; memory O(label names + limit)),
 * from the reader's snapshot. Series whose samples retention removed still
 * count (series are kept). Returns 0 and fills *out (free with
 * store_index_stats_free), or a negative errno. */
int store_index_stats_get(store_reader *r, size_t limit, store_index_stats *out);
void store_index_stats_free(store_index_stats *s);

/* ---- label index (for /api/v1/labels and /api/v1/label/<name>/values) ------ */

/* A byte string owned by its list: p is NUL-terminated for convenience but
 * may contain NUL bytes (label values may). */
typedef struct store_string {
    char *p;
    size_t len;
} store_string;

typedef struct store_strings {
    store_string *v; /* sorted bytewise, unique */
    size_t n;
} store_strings;

/* The label names of the series that match every matcher and have samples
 * in [mint, maxt]. With n == 0 (no matchers): every label name in the index,
 * whatever the time range (series are kept after retention removed their
 * samples, so this may name labels with no samples left). With matchers the
 * rules of store_select apply (-EINVAL if all of them match ""). Returns 0
 * and fills *out (free with store_strings_free), or a negative errno. */
int store_label_names(store_reader *r, const label_matcher *ms, size_t n, int64_t mint,
                      int64_t maxt, store_strings *out);
/* The values of label `name` over the same selection as store_label_names. */
int store_label_values(store_reader *r, const char *name, size_t name_len, const label_matcher *ms,
                       size_t n, int64_t mint, int64_t maxt, store_strings *out);
/* Frees the strings and empties *s. NULL is a no-op. */
void store_strings_free(store_strings *s);

/* ---- backfill ----------------------------------------------------------------- */

/* Writes whole chunks straight into the database, bypassing the head and the
 * write-ahead table (for `sidewatch import openmetrics`). Samples may be older
 * than what the series already holds; overlapping data is merged on read.
 * Not for use while producers append to the same series. */
typedef struct store_import store_import;

/* Starts an import; returns 0 and *out, or -errno. */
int store_import_begin(store *s, store_import **out);
/* Adds samples of one series (sorted by time, no equal timestamps; else
 * -EINVAL). Chunks are written in large transactions; the series is created
 * if new. Returns 0 or -errno. */
int store_import_series(store_import *im, const labels *ls, const store_sample *samples, size_t n);
/* The same for histogram samples of one series (sorted by time, no equal
 * timestamps, each passing nhist_validate; else -EINVAL). */
int store_import_histograms(store_import *im, const labels *ls, const store_hsample *samples,
                            size_t n);
/* Commits what is left and frees the import. Returns 0 or -errno; on error
 * the samples of the last transaction are not stored. */
int store_import_finish(store_import *im);

/* ---- the write-ahead log, for remote write ---------------------------------------
 *
 * Every committed batch that stores samples or exemplars is one write-ahead row with a
 * sequence number one above the previous row's (a batch whose samples were
 * all dropped, or that only creates series or metadata, writes none).
 * Normally a row is released as soon as its samples are in chunk rows. A
 * *consumer* (a remote-write endpoint, by name) holds the rows from its
 * durable cursor on, so that it can send them after a restart or an outage
 * of the receiver; but never rows whose commit time is older than now (the
 * now_ms of store_maintain) - the consumer's max_lag: those are released at
 * the next store_maintain anyway, the consumer's cursor moves past them and
 * their samples are added to its dropped count (nothing is lost silently).
 * Consumers and cursors live in the database (consistent with the rows
 * after any crash). */

typedef struct store_wal_sample {
    uint64_t ref;   /* series reference: store_series_labels() */
    int64_t t;
    double v;       /* the value of a float sample (h NULL) */
    const nhist *h; /* a histogram sample, or NULL; owned by the batch array */
} store_wal_sample;

/* An exemplar accepted with the row's batch. */
typedef struct store_wal_exemplar {
    uint64_t ref;
    int64_t t;
    double v;
    labels *labels; /* owned by the batch array; never NULL */
} store_wal_exemplar;

typedef struct store_wal_batch {
    uint64_t seq;      /* the row's sequence number */
    int64_t commit_ms; /* wall-clock time of its commit (ms since the epoch);
                        * 0 for a row written by a version before this
                        * field (max_lag counts those from the open) */
    store_wal_sample *samples;
    size_t n;
    store_wal_exemplar *exemplars; /* accepted exemplars of the batch (schema 7) */
    size_t n_exemplars;
} store_wal_batch;

typedef struct store_wal_consumer {
    uint64_t next_seq;        /* the first row it still needs */
    int64_t max_lag_ms;       /* rows older than this are released anyway */
    uint64_t dropped_samples; /* samples of rows released before it read them */
} store_wal_consumer;

/* The sequence number the next commit will get: rows below it are
 * committed. A new consumer that wants only new data starts here. */
uint64_t store_wal_next_seq(store *s);
/* Registers consumer `name` (or updates it) with its cursor (next_seq: the
 * first row it still needs; rows below are released for it) and its
 * max_lag_ms (> 0). Durable once it returns 0; -errno (message in err,
 * may be NULL) otherwise. Moving a cursor backwards below rows already
 * released is allowed (store_wal_read then reports the gap). Thread-safe. */
int store_wal_consumer_set(store *s, const char *name, uint64_t next_seq, int64_t max_lag_ms,
                           buf *err);
/* The consumer's state, or -ENOENT when no consumer has that name. */
int store_wal_consumer_get(store *s, const char *name, store_wal_consumer *out);
/* Forgets a consumer (its rows are released at the next maintenance). 0 or
 * -errno; unknown names are not an error. */
int store_wal_consumer_remove(store *s, const char *name);
/* Reads up to max_rows committed rows with seq >= from_seq, in sequence
 * order, decoded (*out: free with store_wal_batches_free; NULL/0 when there
 * is nothing new). *first_seq is set to the first row that exists at or
 * after from_seq (> from_seq when rows from_seq.. were released: a gap the
 * caller counts). Reads through its own connection: never blocks a commit
 * for longer than a row copy. Returns 0 or -errno: -EIO when the row at
 * *first_seq does not decode (rows before it are returned first, without
 * error; skip it by reading from *first_seq + 1), -EAGAIN when the rows
 * kept being released while it read them (not a consumer's rows: call
 * again). Thread-safe. */
int store_wal_read(store *s, uint64_t from_seq, size_t max_rows, store_wal_batch **out, size_t *n,
                   uint64_t *first_seq);
void store_wal_batches_free(store_wal_batch *b, size_t n);
/* The labels of a series (a copy, caller frees with labels_free), or NULL
 * for an unknown reference. Thread-safe. */
labels *store_series_labels(store *s, uint64_t ref);

/* ---- durable key-value state ---------------------------------------------------- */

/* Small records other modules keep in the same database as the samples, so
 * that samples, alert state and pending notifications are consistent after
 * a crash: the rule engine's alert state, the notification outbox. Keys
 * live in a namespace (`ns`, a short text such as "alerts" or "outbox/am");
 * keys and values are bytes, and keys compare with memcmp (so big-endian
 * or zero-padded numbers list in numeric order). */
typedef struct store_kv_op {
    const char *ns;
    const void *key;
    size_t key_len;
    const void *value; /* NULL: delete the key (no error if absent) */
    size_t value_len;
} store_kv_op;

typedef struct store_kv_entry {
    void *key; /* owned; NUL-terminated for convenience (not counted in key_len) */
    size_t key_len;
    void *value; /* owned; NUL-terminated for convenience */
    size_t value_len;
} store_kv_entry;

/* Applies the puts and deletes in ops (in order) in one transaction: all or
 * none. Returns 0 once committed (durable as a batch commit, see above), or
 * a negative errno (-ENOSPC for a full disk, -EIO, ...) with a message
 * appended to err (may be NULL); nothing is then changed. Thread-safe. */
int store_kv_apply(store *s, const store_kv_op *ops, size_t n, buf *err);
/* The entries of namespace ns whose key starts with prefix (prefix_len 0:
 * all), sorted by key, at most limit of them (0 = no limit). *out (caller
 * frees with store_kv_entries_free) and *n; *out is NULL when none.
 * Returns 0 or a negative errno with a message appended to err. */
int store_kv_list(store *s, const char *ns, const void *prefix, size_t prefix_len, size_t limit,
                  store_kv_entry **out, size_t *n, buf *err);
void store_kv_entries_free(store_kv_entry *e, size_t n);
/* Number of entries in ns, or a negative errno. */
int64_t store_kv_count(store *s, const char *ns);

/* ---- checking --------------------------------------------------------------------- */

/* `sidewatch check store DIR`: runs SQLite's integrity_check, decodes every
 * series row (its label hash and first chunk end must match; no label set
 * twice), chunk and write-ahead row. Appends one line per problem (and a summary) to
 * report. Returns 0 if the store is sound, -EIO if problems were found, or
 * another -errno if it could not be checked. Opens the store itself (so it
 * fails with -EBUSY while a sidewatch process holds it). */
int store_check(const char *path, buf *report);

#endif
