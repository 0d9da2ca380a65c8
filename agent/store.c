/* store: the time-series database on SQLite (see store.h for the contract
 * callers rely on).
 *
 * Files in the storage directory:
 *   sidewatch.db (+ -wal, -shm)  the database, in SQLite's WAL mode
 *   lock                         flock()ed while open, so a second process
 *                                cannot open the same store (the kernel
 *                                drops the lock when the holder dies, even
 *                                by SIGKILL)
 *
 * On-disk format (schema version STORE_SCHEMA_VERSION in PRAGMA
 * user_version, application_id "SDWT"; auto_vacuum=INCREMENTAL):
 *   meta(key, value)                   next_series_id high-water mark
 *   series(id, labels, metric, lhash, first_end)
 *                                      labels = labels_encode() of the
 *                                      canonical set (unique: a set is
 *                                      looked up in memory, then by lhash,
 *                                      before it gets an id); lhash
 *                                      (version 8) = strutil_hash64 (seed 0)
 *                                      of labels, as a signed integer, with
 *                                      the index series_lhash; first_end
 *                                      (version 8) = max_t of the series'
 *                                      chunk row that ends first, NULL
 *                                      without chunk rows (kept in the
 *                                      transactions that write and delete
 *                                      chunk rows), with the partial index
 *                                      series_first_end: retention and the
 *                                      store's time range find the oldest
 *                                      data of every series, in memory or
 *                                      not, without a walk over all series
 *                                      and without an index per chunk row
 *   label_values(id, name, value, series)
 *                                      one row per label pair, with the
 *                                      number of series carrying it (the
 *                                      selectivity estimate of store_select)
 *   postings(lv_id, series_id)         the inverted index: pair -> series
 *   chunks(id, series_id, max_t, min_t, count, enc, data)
 *                                      one closed chunk (usually 120 samples)
 *                                      per row in the chunkenc.h encoding
 *                                      `enc` (XOR, or decimal when smaller),
 *                                      or (version 5) a native histogram
 *                                      chunk (histchunk.h; enc 2 integer,
 *                                      3 float histograms), appended
 *                                      in write order (so table pages fill
 *                                      completely); the index chunks_series
 *                                      (series_id, max_t, min_t) serves range
 *                                      scans (version 2: without min_t);
 *                                      the partial index chunks_hist
 *                                      (series_id, max_t) WHERE enc >= 2
 *                                      (version 5) finds a series' newest
 *                                      histogram chunk at replay
 *   wal(slot, data)                    the write-ahead table: slots holding
 *                                      one committed batch each (format
 *                                      below); meta.wal_pin says which are
 *                                      still needed, meta.wal_head (version
 *                                      6) from which row on replay must
 *                                      append them to the head
 *   wal_consumers(name, next_seq, max_lag_ms, dropped)
 *                                      (version 6) remote-write cursors:
 *                                      each holds the rows from next_seq on
 *   metadata(metric, type, help, unit) latest wins
 *   kv(ns, key, value)                 durable state of other modules
 *                                      (version 4): alert state, the
 *                                      notification outbox (store_kv_*)
 *   exemplars(id, series_id, t, v, labels)
 *                                      (version 7) stored exemplars, id in
 *                                      append order (v: the double's bits;
 *                                      labels: labels_encode()); at most
 *                                      max_exemplars rows: the commit that
 *                                      adds some deletes the lowest ids
 *                                      beyond (Prometheus's circular buffer
 *                                      evicts its oldest entries the same
 *                                      way); index exemplars_series
 *                                      (series_id, t)
 * Label names and values are BLOBs (they may contain NUL; BLOBs compare with
 * memcmp, i.e. like Go strings).
 *
 * Write-ahead slot: a blob of fixed capacity (size classes: the leaf page,
 * plus one overflow page per class) holding a header and the row. The
 * header: the batch's sequence number, 8 bytes, then the row's length, 4
 * bytes, both little-endian (sequence 0 = never used); since version 6 the
 * length's top bit is set and 8 more bytes follow, the commit's wall-clock
 * time in ms (20 bytes in all). Rows of older versions have the 12-byte
 * header and no commit time (store_wal_read reports commit_ms 0; max_lag
 * counts them as committed when the store was opened). A slot whose
 * sequence number is below meta.wal_pin is free: its samples are all in
 * chunk rows and no consumer needs it. Slots are rewritten in place (sqlite3_blob_write), which
 * changes only the pages the row covers, where an INSERT and a later DELETE
 * also rewrite free-list, pointer-map and header pages: 2 pages per commit
 * instead of 5 for a 1,000-sample batch.
 *
 * Write-ahead row: uvarint n, then n samples, each as: uvarint of
 * (zigzag(ref - previous ref) << 1 | I); zigzag varint of (t - previous t)
 * (previous values start at 0); then the value: if I is set, a zigzag varint
 * of the value, which is an integer that a double holds exactly (counters,
 * most gauges), else its 8 bytes little-endian. Only accepted samples are
 * written (out-of-order and duplicate ones are dropped before).
 * A batch with histogram samples (version 5) is written as a row of kind 1
 * instead: bytes 0x00 0x01 (an old row never starts with 0: it starts with
 * n >= 1), uvarint n, then n samples in batch order, each as: uvarint of
 * (zigzag(ref - previous ref) << 2 | K); zigzag varint of (t - previous t);
 * then by K: 0 the value's 8 bytes, 1 a zigzag varint of an integer value
 * (as I above), 2 a histogram: uvarint length, then a histogram chunk
 * (histchunk.h) of that one sample. Batches without histograms keep the old
 * row, so the float path and old rows are unchanged.
 * A batch with accepted exemplars (version 7) is written as a row of kind
 * 2: bytes 0x00 0x02, then the samples exactly as in kind 1 (n may be 0),
 * then uvarint m and m exemplars, each as: uvarint series id, zigzag
 * varint t, the value's 8 bytes little-endian, uvarint length and the
 * labels_encode() bytes of its labels. Replay ignores the exemplars (they
 * are in the exemplars table, written in the same transaction); they are
 * there for store_wal_read (remote write).
 *
 * Schema version 5 marks a database that may hold histogram chunks and
 * rows of kind 1: a version-4 binary refuses it (a newer schema) instead of
 * counting the chunks as corrupt and dropping the rows' samples. The
 * upgrade from 4 only adds chunks_hist. Version 6 marks slots that may
 * carry the 20-byte header (a version-5 binary would take them for damaged
 * ones); the upgrade from 5 adds wal_consumers, and old rows stay readable.
 * Version 7 marks rows of kind 2 (a version-6 binary would call them
 * corrupt); the upgrade from 6 adds the exemplars table. Version 8 adds
 * series.lhash and series.first_end (computed for existing rows by the
 * upgrade) and their indexes: a version-7 binary would write series and
 * chunk rows without them, which the lookup of evicted series and
 * retention could not find.
 *
 * Consumers (remote write, store.h). The release point is
 * meta.wal_pin = min(the head's pin, every consumer's next_seq): rows a
 * consumer has not read stay in their slots after their samples are in
 * chunk rows. meta.wal_head records the head's own pin, so replay at open
 * appends only rows from there on; rows kept only for consumers stay in
 * use (readable) but are never appended to the head again. store_maintain
 * moves the cursor of a consumer past rows committed before now - its
 * max_lag_ms (adding their samples to its dropped count) in the same
 * transaction that moves meta.wal_pin, so a crash never releases a row
 * without counting it. Disk cost: a receiver that is down keeps every row
 * of up to max_lag_ms (a 1,000-sample scrape row is about 5-10 KB: hours
 * at 10,000 samples/s are gigabytes); retention by time or size deletes
 * only chunk rows and does not count the rows kept only for consumers
 * (max_lag_ms bounds them), so a lagging consumer does not make size
 * retention delete chunks. The slot pool grows with the rows kept and
 * shrinks again (store_maintain deletes free slots beyond the number in
 * use) once the consumer caught up.
 *
 * The head. Each series has an open chunk in memory. A commit writes, in one
 * SQLite transaction: the rows of series created since the last commit,
 * every chunk closed since the last commit, one write-ahead row with the
 * batch, and metadata changes. Only when COMMIT succeeded are the samples
 * appended to the open chunks; a chunk reaching CHUNKENC_TARGET_SAMPLES is
 * closed and waits in memory for the next commit (or store_maintain) to write
 * it. A write-ahead row is released (meta.wal_pin moves past it, its slot is
 * reused) once no series still holds one of its samples only in memory: the
 * truncation point is the oldest write-ahead sequence number pinned by an
 * open or unwritten chunk. store_maintain deletes free slots beyond
 * STORE_WAL_SPARE_SLOTS (or beyond the number in use). Head chunks open
 * longer than STORE_HEAD_MAX_AGE_MS are closed early by store_maintain, so a
 * series that stopped receiving samples does not pin the table forever;
 * those of a series whose newest sample is a staleness marker are closed by
 * the next store_maintain (their memory is freed once written and no
 * reader needs it), so series churn does not grow the head.
 * At open the write-ahead rows from meta.wal_head on are replayed into the
 * head, skipping samples already in chunk rows; store_close writes every
 * chunk (open ones too) and empties the table (but for rows consumers
 * hold), so a clean restart replays nothing. Sequence numbers continue
 * across restarts (from the newest slot or meta.wal_pin), so a consumer's
 * cursor stays valid.
 *
 * Readers. A read merges chunk rows (through the reader's connection) with
 * the series' chunks still in memory. Chunks written to the database stay
 * in memory while a reader registered before that commit is active
 * (register, then start the SQLite snapshot: everything written before the
 * registration is in the snapshot, everything after is still in memory), so
 * no sample is ever missed; samples seen twice are merged by timestamp.
 * Chunks may overlap in time only after a backfill; reads sort and
 * deduplicate then.
 *
 * Locking: write_mu guards the writer connection, the per-series append
 * state and the head's structure; head_lock (a read-write lock) is held for
 * writing while the head is changed and for reading while a reader copies a
 * series' in-memory chunks; index_mu guards the series index (by_labels,
 * id_pages, next_id, pending); readers_mu the list of active read snapshots;
 * stats_mu the counters; ring_mu the ring of used write-ahead slots (changed
 * under write_mu too, so the writer reads it without ring_mu) and
 * last_wal_seq's moves, so store_wal_read finds rows without write_mu;
 * cons_mu the consumers (changed under write_mu too); wal_rd_mu the
 * write-ahead reader's connection. Order: write_mu, head_lock, index_mu,
 * readers_mu, stats_mu, ring_mu, cons_mu; wal_rd_mu is taken alone.
 *
 * Histograms. A series that gets a histogram sample gets a second open
 * chunk (struct hhead, allocated then: float-only series carry only a NULL
 * pointer), cut as histchunk.h says (120 samples, or 1 KiB after 10; a
 * layout change, kind switch or counter reset starts a new one; the first
 * sample after a detected reset is stored with hint RESET when it had none,
 * as Prometheus's chunk header says). Closed histogram chunks share the
 * series' list of in-memory chunks (mchunk.enc tells them apart), the
 * write-ahead pin and the readers' rules. The newest timestamp (last_t) is
 * per series across both kinds; last_v holds the value bits of a float or
 * a hash of a histogram's one-sample chunk (for duplicates), last_hist
 * which. A float staleness marker for a series whose newest sample is a
 * histogram is stored as a histogram staleness marker. Replay keeps a
 * watermark per kind (the newest chunk row of that kind, looked up only
 * for series whose rows hold samples of the kind), since a closed float
 * chunk may be newer than samples of the open histogram chunk.
 *
 * Series lifecycle: store_series_ref() gives a new series its id at once and
 * queues it in `pending`; the next commit writes every pending series row in
 * the same transaction as its samples, so no committed sample can reference
 * a series row that is not committed. Series rows are never deleted
 * (references are stable for the database's lifetime, and ids are never
 * reused: next_id = max(max(series.id) + 1, meta.next_series_id)).
 *
 * Eviction. Only the series in use are in memory (struct series in
 * id_pages and by_labels): store_maintain evicts a series that is fully
 * written (no open head chunk, no closed chunk in memory, so no reader can need its
 * memory either: written chunks stay in se->chunks while a reader older
 * than their write is active) and idle: its newest sample is a staleness
 * marker appended evict_stale_ms ago, or nothing was appended for
 * evict_idle_ms (whose head chunk store_maintain closes first). Series with
 * stored exemplars stay (max_exemplars bounds them; the exemplar counts
 * stay exact). store_open loads no series but those with exemplars and
 * those replay appends to; the others come back on demand. An evicted
 * series keeps its id: store_series_ref finds it by lhash in the series
 * table (through its own read connection, lk_db, under lookup_mu, which
 * also serializes the creation of new series, so a label set never gets
 * two ids) and returns its id without loading it; a commit (or replay, or
 * an import) that meets a reference not in memory loads the series by id
 * with the writer connection (series_load: its row, its newest and oldest
 * chunk rows for the order and duplicate checks and its time range).
 * Readers never load series: for one not in memory they read its labels
 * and time range from their own snapshot. Retention finds the chunks of
 * every series through series.first_end. Memory is freed at once: every
 * use of a series pointer outside write_mu holds head_lock (copy_head) or
 * index_mu (series_in_range, resident_labels: they copy what they need),
 * and eviction holds all three. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chunkenc.h"
#include "histchunk.h"
#include "hmap.h"
#include "log.h"
#include "mem.h"
#include "strutil.h"

#define STORE_SCHEMA_VERSION 8
#define STORE_APPLICATION_ID 0x53445754 /* "SDWT" */
#define STORE_DB_NAME "sidewatch.db"
#define STORE_LOCK_NAME "lock"
/* How long a connection waits for a lock held by another connection
 * (checkpoints, WAL recovery) before giving up with -EBUSY. */
#define STORE_BUSY_TIMEOUT_MS 10000
/* Database page size: chunk rows average a few hundred bytes, and a page
 * wastes on average half a row at its end. */
#ifndef STORE_PAGE_SIZE
#define STORE_PAGE_SIZE 4096
#endif
/* Bound the SQLite WAL file left behind after a checkpoint. */
#define STORE_JOURNAL_SIZE_LIMIT (8 * 1024 * 1024)
/* The checkpointer runs when SQLite's WAL holds this many frames, and at
 * least every STORE_CHECKPOINT_EVERY_S seconds. */
#define STORE_CHECKPOINT_FRAMES 2000
#define STORE_CHECKPOINT_EVERY_S 5
/* store_maintain's checkpoint waits this long for readers. */
#define STORE_CHECKPOINT_WAIT_MS 200
/* store_select stops estimating regex matchers once an equality matcher
 * narrowed the candidates to this many series. */
#define STORE_SELECT_GOOD_ENOUGH 256
/* A head chunk open longer than this is closed by store_maintain (default
 * of store_options.head_max_age_ms). */
#define STORE_HEAD_MAX_AGE_MS (60 * 60 * 1000)
/* Defaults of store_options.evict_stale_ms and evict_idle_ms (store.h). */
#define STORE_EVICT_STALE_MS (2 * 60 * 1000)
#define STORE_EVICT_IDLE_MS (15 * 60 * 1000)
/* The store's oldest sample is looked for among this many of the chunk rows
 * that end first (chunks of different series overlap in time). */
#define STORE_MINT_CHUNKS 256
/* Commits between write-ahead truncations done inside a commit (besides
 * store_maintain's). */
#define STORE_TRUNCATE_EVERY_COMMITS 512
/* Write-ahead slots. A slot's blob is a 12-byte header (the batch's
 * sequence number, 8 bytes, and the row's length, 4 bytes, little-endian)
 * and the row. Class 0 holds up to STORE_WAL_SLOT_BASE bytes, which SQLite
 * keeps on the table's leaf page; each class above adds one overflow page. */
#define STORE_WAL_HEADER 12
/* The version-6 header: STORE_WAL_HEADER, then the commit time (8 bytes),
 * flagged by the length's top bit. */
#define STORE_WAL_HEADER_TIMED 20
#define STORE_WAL_TIMED 0x80000000u
/* A consumer name's longest length (bytes). */
#define STORE_WAL_CONSUMER_NAME_MAX 1024
/* store_wal_read retries this often when the rows it found were released
 * (and their slots reused) before it read them. */
#define STORE_WAL_READ_TRIES 8
#define STORE_WAL_SLOT_BASE 3800
#define STORE_WAL_SLOT_STEP (STORE_PAGE_SIZE - 4)
/* Free slots are listed by class; classes from STORE_WAL_CLASSES - 1 up
 * share the last list. */
#define STORE_WAL_CLASSES 64
/* store_maintain deletes free slots beyond this many (or beyond the number
 * in use, if larger). */
#define STORE_WAL_SPARE_SLOTS 64
/* How many samples ahead a commit prefetches series and chunk memory. */
#define STORE_PREFETCH 8
/* Backfill: chunks per transaction. */
#define STORE_IMPORT_CHUNKS_PER_TX 4096
/* Retention deletes at most this many chunk rows per transaction, so
 * producers waiting for the writer are not stalled by one huge delete. */
#define STORE_RETENTION_SERIES_PER_TX 512
/* Free pages are given back (incremental vacuum) when they exceed this share
 * of the file. */
#define STORE_VACUUM_FREE_RATIO 0.25

#define COMPONENT "storage"

/* ---- in-memory structures --------------------------------------------------- */

typedef struct series series;

/* A closed chunk held in memory: not written yet (persisted_seq == 0), or
 * written but kept for readers whose snapshot predates the write. */
typedef struct mchunk {
    struct mchunk *next;  /* the series' list, oldest first */
    struct mchunk *gnext; /* store's unwritten or retained list */
    series *se;
    int64_t min_t, max_t;
    uint64_t first_seq;     /* write-ahead row of its first sample */
    uint64_t persisted_seq; /* commit that wrote it; 0 = not written */
    uint32_t len;
    uint8_t enc; /* enum chunkenc_encoding: XOR, or a histogram chunk */
    uint8_t data[];
} mchunk;

/* A row of the write-ahead table. */
typedef struct wal_slot {
    int64_t id;
    uint64_t seq;      /* of the batch it holds (while in use) */
    int64_t commit_ms; /* its commit time (while in use; old rows: open time) */
    uint32_t cls;      /* size class: capacity slot_capacity(cls) */
    uint32_t nsamples; /* samples in its row (while in use) */
} wal_slot;

/* A remote-write consumer of the write-ahead rows (store.h). */
typedef struct wal_consumer {
    char *name;
    uint64_t next_seq;
    int64_t max_lag_ms;
    uint64_t dropped;
} wal_consumer;

/* A series' exemplar state (allocated at its first exemplar): the newest
 * stored exemplar, for the duplicate and order checks, and the number of
 * its exemplars in the table. */
typedef struct exstate {
    int64_t t;
    uint64_t v;     /* bits */
    uint64_t lhash; /* strutil_hash64 of the labels' encoding */
    uint8_t *lenc;  /* labels_encode() of its labels */
    uint32_t lenc_len;
    bool has;       /* t, v, lhash, lenc describe a stored exemplar */
    uint64_t count; /* rows in the exemplars table */
    /* Tentative newest while a commit checks its batch (write_mu). */
    uint64_t gen;
    int64_t tent_t;
    uint64_t tent_v, tent_lhash;
    const uint8_t *tent_lenc;
    uint32_t tent_lenc_len;
    bool tent_has;
} exstate;

/* A series' open histogram chunk (allocated at its first histogram). */
typedef struct hhead {
    histchunk_appender open;
    int64_t open_min_t;
    uint64_t open_seq;     /* write-ahead row of the open chunk's first sample */
    int64_t open_since_ms; /* wall time of that sample's append */
} hhead;

typedef struct slot_list {
    wal_slot *v;
    size_t n, cap;
} slot_list;

struct series {
    uint64_t id;
    uint8_t *lenc; /* labels_encode() of the set: equality = byte equality */
    uint32_t lenc_len;
    uint64_t hash; /* labels_hash() */

    /* Append state (write_mu; changed under head_lock for writing). */
    int64_t last_t;
    uint64_t last_v;
    bool has_last;
    bool last_v_known; /* false after a restart until a sample is appended */
    bool has_data;     /* min_t valid */
    bool last_hist;    /* the newest sample is a histogram (last_v: its hash) */
    int64_t min_t;     /* oldest sample stored (never raised by retention) */
    int64_t persisted_max_t; /* newest sample in a chunk row, INT64_MIN if none */
    int64_t first_end;       /* series.first_end as committed, INT64_MAX for NULL */
    chunk_appender open;
    int64_t open_min_t;
    uint64_t open_seq;      /* write-ahead row of the open chunk's first sample */
    int64_t open_since_ms;  /* wall time of that sample's append */
    mchunk *chunks;         /* closed chunks in memory, oldest first */
    uint64_t batch_seq;     /* write-ahead row of the last batch appended */
    int64_t batch_first_t;  /* timestamp of that batch's first sample here */
    int64_t active_ms;      /* wall time of the last append (or the load) */
    bool pending;           /* its row is not committed yet (write_mu) */

    /* Tentative state while a commit checks its batch (write_mu). */
    uint64_t gen;
    int64_t tent_t;
    uint64_t tent_v;
    bool tent_has;
    bool tent_v_known;
    bool tent_hist;
    hhead *hh; /* histogram head; NULL until the series gets a histogram */
    exstate *ex; /* exemplar state; NULL until the series gets an exemplar */
};

/* The series in memory by id: pages of STORE_ID_PAGE slots; a page is
 * freed when its last series leaves memory. Ids are handed out in order,
 * so churned series empty whole pages: the table follows the series in
 * memory, not every id ever used (the directory costs a pointer per page). */
#define STORE_ID_PAGE_BITS 9
#define STORE_ID_PAGE (1u << STORE_ID_PAGE_BITS)
typedef struct id_page {
    uint32_t live; /* non-NULL slots */
    series *v[STORE_ID_PAGE];
} id_page;

typedef struct meta_entry {
    char *metric;
    enum expfmt_type type;
    char *help;
    char *unit;
} meta_entry;

struct store {
    char *dir;
    char *db_path;
    char *wal_path;
    int lock_fd;
    int64_t retention_ms;
    int64_t retention_bytes;
    int64_t head_max_age_ms;
    int64_t evict_stale_ms, evict_idle_ms;

    pthread_mutex_t write_mu;
    sqlite3 *db;
    struct {
        sqlite3_stmt *begin, *commit, *rollback;
        sqlite3_stmt *ins_series, *find_lv, *ins_lv, *inc_lv, *ins_posting, *set_meta;
        sqlite3_stmt *ins_chunk, *ins_slot, *del_slot, *upsert_metadata;
        sqlite3_stmt *del_chunks_before, *oldest_chunks, *del_chunk;
        sqlite3_stmt *first_chunk, *last_chunk;
        sqlite3_stmt *upsert_consumer, *del_consumer, *set_consumer;
        sqlite3_stmt *ins_ex, *trim_ex;
        sqlite3_stmt *series_row, *ended_before, *oldest_series, *set_first_end, *lower_first_end;
    } st;
    /* Exemplar storage (write_mu; ex_total and ex_series also read under
     * stats_mu). */
    _Atomic int64_t max_ex; /* 0 = off */
    uint64_t ex_total;      /* rows in the exemplars table */
    uint64_t ex_series;     /* series with rows there */
    uint64_t gen;  /* commit generation, for the tentative state */
    hmap metadata; /* metric -> meta_entry: what the database holds */
    mchunk *unwritten, *unwritten_tail; /* closed chunks to write, oldest first */
    mchunk *retained, *retained_tail;   /* written, kept for readers */
    uint64_t commits_since_truncate;
    _Atomic uint64_t last_wal_seq; /* newest write-ahead row whose samples are in the head */
    uint64_t wal_next;             /* sequence number of the next row */
    uint64_t truncated_upto; /* rows below this are free (and meta.wal_pin says so) */
    uint64_t head_pinned;    /* meta.wal_head: rows below it are in chunk rows */
    pthread_mutex_t ring_mu;
    pthread_mutex_t cons_mu;
    wal_consumer *cons;
    size_t ncons, cons_cap;
    /* store_wal_read's connection (opened at its first call). */
    pthread_mutex_t wal_rd_mu;
    sqlite3 *wal_rdb;
    sqlite3_stmt *wal_rd_row, *wal_rd_begin, *wal_rd_end;
    /* Write-ahead slots: those holding needed rows in sequence order (a
     * ring), and free ones by size class. */
    wal_slot *slots_used;
    size_t used_head, used_len, used_cap;
    slot_list slots_free[STORE_WAL_CLASSES];
    size_t free_total;
    int64_t next_slot_id;

    /* Checkpoints of SQLite's WAL run on their own thread and connection, so
     * commits never wait for the fsync()s a checkpoint does. */
    pthread_t ckpt_thread;
    bool ckpt_running;
    sqlite3 *ckpt_db;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cond;
    bool ckpt_stop, ckpt_wanted;

    pthread_rwlock_t head_lock;
    _Atomic uint64_t commit_seq; /* commits that wrote chunks or rows */

    pthread_mutex_t index_mu;
    hmap by_labels; /* labels -> series */
    id_page **id_pages; /* by id (series_at); NULL: no series in memory there */
    size_t id_npages, id_pages_cap;
    uint64_t next_id;
    series **pending; /* series whose rows are not committed yet */
    size_t npending, pending_cap;

    /* Label-set lookups of series not in memory (store_series_ref, and
     * store_series_labels): their own read connection. lookup_mu is taken
     * before index_mu; a new series is only created under it. */
    pthread_mutex_t lookup_mu;
    sqlite3 *lk_db;
    sqlite3_stmt *lk_hash, *lk_id;

    pthread_mutex_t readers_mu;
    struct store_reader *readers; /* open readers (for their snapshots) */
    bool no_flush;                /* store_check: close without writing */
    bool closing;                 /* store_close is flushing */

    pthread_mutex_t stats_mu;
    store_stats stats;  /* counters; series, size, head and time range are
                         * filled in by store_get_stats */
    int64_t mint, maxt; /* of stored samples; INT64_MAX, INT64_MIN when none */
    int64_t ev_maxt;    /* newest sample of the series not in memory (at most) */
    uint64_t head_bytes;
    uint64_t stale_hash; /* hash of the histogram staleness marker (last_v) */
};

typedef struct batch_sample {
    uint64_t ref;
    int64_t t;
    uint64_t v; /* bits */
} batch_sample;

typedef struct batch_meta {
    char *metric;
    enum expfmt_type type;
    char *help;
    char *unit;
} batch_meta;

/* A histogram sample in a batch: ref | BATCH_HIST, v = index into h. */
#define BATCH_HIST (UINT64_C(1) << 63)

/* An exemplar in a batch: labels encoded into the batch's exb buffer. */
typedef struct batch_exemplar {
    uint64_t ref;
    int64_t t;
    uint64_t v; /* bits */
    size_t loff;
    uint32_t llen;
} batch_exemplar;

struct store_batch {
    store *s;
    batch_sample *v;
    size_t n, cap;
    batch_exemplar *ex;
    size_t nex, excap;
    buf exb;          /* the exemplars' encoded labels */
    uint64_t ex_long; /* refused: labels over STORE_EXEMPLAR_MAX_LABEL_RUNES */
    nhist *h; /* the batch's histograms (owned copies) */
    size_t nh, hcap;
    batch_meta *m;
    size_t nm, mcap;
};

struct store_reader {
    store *s;
    sqlite3 *db;
    bool snapshot;     /* between store_reader_begin and store_reader_end */
    uint64_t snap_seq; /* commit_seq at registration; 0 = not registered */
    uint64_t visible;  /* last_wal_seq at registration: newer batches are hidden */
    struct store_reader *next;
    struct {
        sqlite3_stmt *begin, *end;
        sqlite3_stmt *lv_eq, *lv_name, *lv_range, *postings;
        sqlite3_stmt *chunks, *hchunks, *metadata, *names, *values, *touch;
        sqlite3_stmt *meta_all, *lv_all, *exemplars;
        sqlite3_stmt *series_row, *last_chunk, *series_info;
    } st;
};

struct store_import {
    store *s;
    size_t chunks_in_tx;
    bool in_tx;
    int err;
};

/* ---- helpers ----------------------------------------------------------------- */

static int sql_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
        return 0;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_CANTOPEN:
        return -EACCES;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_TOOBIG:
        return -E2BIG;
    case SQLITE_INTERRUPT:
        return -EINTR;
    default:
        return -EIO;
    }
}

/* Schema version 1 stored each value as the float64's 8 bytes in reverse
 * order, read as a signed 64-bit INTEGER; the migration decodes them. */
static uint64_t value_decode(int64_t x)
{
    return __builtin_bswap64((uint64_t)x);
}

static uint64_t double_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double bits_double(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
}

/* Steps a statement that returns no row, then resets it. */
static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void bind_bytes(sqlite3_stmt *st, int i, const char *p, size_t len)
{
    sqlite3_bind_blob(st, i, p ? p : "", (int)len, SQLITE_STATIC);
}

static void column_bytes(sqlite3_stmt *st, int i, const char **p, size_t *len)
{
    const void *b = sqlite3_column_blob(st, i);
    *len = (size_t)sqlite3_column_bytes(st, i);
    *p = b ? b : "";
}

static int mkdir_p(const char *path)
{
    char *tmp = mem_strdup(path);
    size_t len = strlen(tmp);
    while (len > 1 && tmp[len - 1] == '/')
        tmp[--len] = '\0';
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            mem_free(tmp);
            return -e;
        }
        *p = '/';
    }
    int rc = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) rc = -errno;
    mem_free(tmp);
    if (rc == 0) {
        struct stat st;
        if (stat(path, &st) != 0) return -errno;
        if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
    }
    return rc;
}

static char *path_join(const char *dir, const char *name)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_printf(&b, "%s/%s", dir, name);
    return buf_detach(&b, NULL);
}

static bool meta_eq(const void *val, const void *key)
{
    return strcmp(((const meta_entry *)val)->metric, key) == 0;
}

static uint64_t str_hash(const char *s)
{
    return strutil_hash64(s, strlen(s), 0);
}

static void meta_entry_free(meta_entry *e)
{
    if (!e) return;
    mem_free(e->metric);
    mem_free(e->help);
    mem_free(e->unit);
    mem_free(e);
}

static void stat_add_size(const char *path, int64_t *total)
{
    struct stat st;
    if (stat(path, &st) == 0) *total += (int64_t)st.st_size;
}

static enum expfmt_type type_from_name(const char *name)
{
    for (int t = EXPFMT_UNKNOWN; t <= EXPFMT_STATESET; t++) {
        if (strcmp(expfmt_type_name((enum expfmt_type)t), name) == 0) return (enum expfmt_type)t;
    }
    return EXPFMT_UNKNOWN;
}

static bool series_eq(const void *val, const void *key)
{
    const series *se = val;
    const buf *enc = key;
    return se->lenc_len == enc->len && memcmp(se->lenc, enc->data, enc->len) == 0;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The series in memory with this id, or NULL. Caller holds index_mu. */
static inline series *series_at(const store *s, uint64_t id)
{
    uint64_t p = id >> STORE_ID_PAGE_BITS;
    if (p >= s->id_npages || !s->id_pages[p]) return NULL;
    return s->id_pages[p]->v[id & (STORE_ID_PAGE - 1)];
}

/* Iterates over the series in memory (se); the body may remove se from
 * the index (index_del). Caller holds index_mu. */
#define FOR_EACH_SERIES(s, se)                                                                     \
    for (size_t p_ = 0; p_ < (s)->id_npages; p_++)                                                 \
        for (size_t k_ = 0; (s)->id_pages[p_] && k_ < STORE_ID_PAGE; k_++)                          \
            if (((se) = (s)->id_pages[p_]->v[k_]) != NULL)

/* Adds a series to the in-memory index. Caller holds index_mu (or owns the
 * store exclusively, at open). */
static void index_add(store *s, series *se)
{
    hmap_put(&s->by_labels, se->hash, se);
    uint64_t p = se->id >> STORE_ID_PAGE_BITS;
    if (p >= s->id_npages) {
        s->id_pages = mem_grow(s->id_pages, sizeof *s->id_pages, p + 1, &s->id_pages_cap);
        memset(s->id_pages + s->id_npages, 0, (p + 1 - s->id_npages) * sizeof *s->id_pages);
        s->id_npages = p + 1;
    }
    if (!s->id_pages[p]) s->id_pages[p] = mem_calloc(1, sizeof **s->id_pages);
    id_page *pg = s->id_pages[p];
    series **slot = &pg->v[se->id & (STORE_ID_PAGE - 1)];
    if (!*slot) pg->live++;
    *slot = se;
}

/* Removes a series from the in-memory index (its page goes with its last
 * series). Caller holds index_mu. */
static void index_del(store *s, series *se)
{
    buf key = {.data = (char *)se->lenc, .len = se->lenc_len};
    hmap_del(&s->by_labels, se->hash, series_eq, &key);
    uint64_t p = se->id >> STORE_ID_PAGE_BITS;
    id_page *pg = p < s->id_npages ? s->id_pages[p] : NULL;
    if (!pg || pg->v[se->id & (STORE_ID_PAGE - 1)] != se) return;
    pg->v[se->id & (STORE_ID_PAGE - 1)] = NULL;
    if (--pg->live == 0) {
        mem_free(pg);
        s->id_pages[p] = NULL;
    }
}

/* The series.lhash of an encoded label set (the top). */
static int64_t series_lhash(const void *lenc, size_t len)
{
    return (int64_t)strutil_hash64(lenc, len, 0);
}

/* Frees a series and everything it owns (its chunks in memory too). */
static void series_free(series *se)
{
    mchunk *c = se->chunks;
    while (c) {
        mchunk *next = c->next;
        mem_free(c);
        c = next;
    }
    chunkenc_cleanup(&se->open);
    if (se->hh) histchunk_cleanup(&se->hh->open);
    mem_free(se->hh);
    if (se->ex) mem_free(se->ex->lenc);
    mem_free(se->ex);
    mem_free(se->lenc);
    mem_free(se);
}

static series *series_new(uint64_t id, const labels *ls, const buf *enc)
{
    series *se = mem_calloc(1, sizeof *se);
    se->id = id;
    se->lenc = mem_malloc(enc->len ? enc->len : 1);
    memcpy(se->lenc, enc->data, enc->len);
    se->lenc_len = (uint32_t)enc->len;
    se->hash = labels_hash(ls);
    se->persisted_max_t = INT64_MIN;
    se->first_end = INT64_MAX;
    chunkenc_init(&se->open);
    return se;
}

/* ---- varints and the write-ahead row ------------------------------------------ */


typedef struct wal_reader {
    const uint8_t *p, *end;
    uint64_t n, i;
    uint64_t ref;
    int64_t t;
    bool kind1; /* a row of kind 1 or 2 (with histograms or exemplars) */
    bool kind2; /* a row of kind 2: exemplars follow the samples */
} wal_reader;

static int wal_reader_init(wal_reader *w, const void *data, size_t len)
{
    w->p = data;
    w->end = w->p + len;
    w->i = 0;
    w->ref = 0;
    w->t = 0;
    w->kind1 = len > 0 && w->p[0] == 0;
    w->kind2 = false;
    if (w->kind1) {
        if (len < 2 || (w->p[1] != 1 && w->p[1] != 2)) return -EINVAL;
        w->kind2 = w->p[1] == 2;
        w->p += 2;
    }
    if (strutil_get_uvarint(&w->p, w->end, &w->n) < 0 || w->n > len) return -EINVAL;
    return 0;
}

/* 1 and the next sample, 0 at the end, -EINVAL if corrupt. For a
 * histogram sample *hp points at its one-sample chunk (*hlen bytes, inside
 * the row); else *hp is NULL and *v the value's bits. */
static int wal_reader_next(wal_reader *w, uint64_t *ref, int64_t *t, uint64_t *v,
                           const uint8_t **hp, size_t *hlen)
{
    *hp = NULL;
    *hlen = 0;
    /* In a row of kind 2 the exemplars follow (w->p is at them). */
    if (w->i >= w->n) return w->p == w->end || w->kind2 ? 0 : -EINVAL;
    uint64_t rf;
    int64_t dt;
    if (strutil_get_uvarint(&w->p, w->end, &rf) < 0 || strutil_get_varint(&w->p, w->end, &dt) < 0) return -EINVAL;
    unsigned kind = 0;
    if (w->kind1) {
        kind = (unsigned)(rf & 3);
        /* as the old format: zigzag ref delta << 1 | integer flag */
        rf = (rf >> 2) << 1 | (kind == 1);
        if (kind == 3) return -EINVAL;
    }
    uint64_t zz = rf >> 1;
    int64_t dr = (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1);
    uint64_t bits = 0;
    if (kind == 2) {
        uint64_t l;
        if (strutil_get_uvarint(&w->p, w->end, &l) < 0 || l > (uint64_t)(w->end - w->p)) return -EINVAL;
        *hp = w->p;
        *hlen = (size_t)l;
        w->p += l;
    } else if (rf & 1) {
        int64_t iv;
        if (strutil_get_varint(&w->p, w->end, &iv) < 0) return -EINVAL;
        double d = (double)iv;
        memcpy(&bits, &d, sizeof bits);
    } else {
        if (w->end - w->p < 8) return -EINVAL;
        for (int k = 7; k >= 0; k--) bits = (bits << 8) | w->p[k];
        w->p += 8;
    }
    w->ref += (uint64_t)dr;
    w->t = (int64_t)((uint64_t)w->t + (uint64_t)dt);
    w->i++;
    *ref = w->ref;
    *t = w->t;
    *v = bits;
    return 1;
}

/* Decodes the exemplar section of a row of kind 2 (from p, the end of its
 * samples, to end). With out NULL only checks it. Returns 0 (and *out,
 * *n: the array and its labels owned by the caller) or -EINVAL. */
static int wal_exemplars_decode(const uint8_t *p, const uint8_t *end, store_wal_exemplar **out,
                                size_t *n)
{
    uint64_t m;
    if (out) {
        *out = NULL;
        *n = 0;
    }
    if (strutil_get_uvarint(&p, end, &m) < 0 || m > (uint64_t)(end - p)) return -EINVAL;
    store_wal_exemplar *v = out && m ? mem_calloc((size_t)m, sizeof *v) : NULL;
    size_t got = 0;
    int rc = 0;
    for (uint64_t i = 0; i < m; i++) {
        uint64_t ref, l, bits = 0;
        int64_t t;
        if (strutil_get_uvarint(&p, end, &ref) < 0 || strutil_get_varint(&p, end, &t) < 0 ||
            end - p < 8) {
            rc = -EINVAL;
            break;
        }
        for (int k = 7; k >= 0; k--)
            bits = (bits << 8) | p[k];
        p += 8;
        labels *ls = NULL;
        if (strutil_get_uvarint(&p, end, &l) < 0 || l > (uint64_t)(end - p) ||
            labels_decode(p, (size_t)l, &ls) < 0) {
            rc = -EINVAL;
            break;
        }
        p += l;
        if (v) {
            v[got++] =
                (store_wal_exemplar){.ref = ref, .t = t, .v = bits_double(bits), .labels = ls};
        } else {
            labels_free(ls);
        }
    }
    if (rc == 0 && p != end) rc = -EINVAL;
    if (rc < 0) {
        for (size_t i = 0; i < got; i++)
            labels_free(v[i].labels);
        mem_free(v);
        return rc;
    }
    if (out) {
        *out = v;
        *n = got;
    }
    return 0;
}

/* ---- write-ahead slots ---------------------------------------------------------------- */

static int64_t slot_capacity(uint32_t cls)
{
    return STORE_WAL_SLOT_BASE + (int64_t)cls * STORE_WAL_SLOT_STEP;
}

/* The smallest class holding `len` bytes (header included). */
static uint32_t slot_class(size_t len)
{
    if (len <= STORE_WAL_SLOT_BASE) return 0;
    return (uint32_t)((len - STORE_WAL_SLOT_BASE + STORE_WAL_SLOT_STEP - 1) / STORE_WAL_SLOT_STEP);
}

/* The largest class a blob of `cap` bytes holds. */
static uint32_t class_of_capacity(int64_t cap)
{
    if (cap <= STORE_WAL_SLOT_BASE) return 0;
    return (uint32_t)((cap - STORE_WAL_SLOT_BASE) / STORE_WAL_SLOT_STEP);
}

static void slot_list_push(slot_list *l, wal_slot x)
{
    if (l->n == l->cap) l->v = mem_grow(l->v, sizeof *l->v, l->n + 1, &l->cap);
    l->v[l->n++] = x;
}

static void slot_free_push(store *s, wal_slot x)
{
    uint32_t i = x.cls < STORE_WAL_CLASSES ? x.cls : STORE_WAL_CLASSES - 1;
    slot_list_push(&s->slots_free[i], x);
    s->free_total++;
}

/* Takes a free slot of class `cls` or the nearest larger one. */
static bool slot_free_take(store *s, uint32_t cls, wal_slot *out)
{
    for (uint32_t i = cls; i < STORE_WAL_CLASSES - 1; i++) {
        slot_list *l = &s->slots_free[i];
        if (l->n) {
            *out = l->v[--l->n];
            s->free_total--;
            return true;
        }
    }
    slot_list *big = &s->slots_free[STORE_WAL_CLASSES - 1];
    for (size_t i = 0; i < big->n; i++) {
        if (big->v[i].cls >= cls) {
            *out = big->v[i];
            big->v[i] = big->v[--big->n];
            s->free_total--;
            return true;
        }
    }
    return false;
}

static void slot_used_push(store *s, wal_slot x)
{
    if (s->used_len == s->used_cap) {
        size_t cap = s->used_cap ? 2 * s->used_cap : 64;
        wal_slot *v = mem_malloc(cap * sizeof *v);
        for (size_t i = 0; i < s->used_len; i++) v[i] = s->slots_used[(s->used_head + i) % s->used_cap];
        mem_free(s->slots_used);
        s->slots_used = v;
        s->used_cap = cap;
        s->used_head = 0;
    }
    s->slots_used[(s->used_head + s->used_len) % s->used_cap] = x;
    s->used_len++;
}

/* Frees the slots whose rows are all below `pin` (in chunk rows, and no
 * consumer needs them). Caller holds write_mu (and takes ring_mu here). */
static void slots_release_below(store *s, uint64_t pin)
{
    pthread_mutex_lock(&s->ring_mu);
    while (s->used_len && s->slots_used[s->used_head].seq < pin) {
        slot_free_push(s, s->slots_used[s->used_head]);
        s->used_head = (s->used_head + 1) % s->used_cap;
        s->used_len--;
    }
    pthread_mutex_unlock(&s->ring_mu);
}

/* The used slot at position i of the ring (0 = oldest). Caller holds
 * write_mu or ring_mu. */
static wal_slot *slot_used_at(store *s, size_t i)
{
    return &s->slots_used[(s->used_head + i) % s->used_cap];
}

/* The position in the ring of the first row with seq >= `seq` (used_len if
 * none). Caller holds write_mu or ring_mu. */
static size_t slot_used_find(store *s, uint64_t seq)
{
    size_t lo = 0, hi = s->used_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (slot_used_at(s, mid)->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Writes the write-ahead row `rec` (len bytes, the first
 * STORE_WAL_HEADER_TIMED of them left for the header) of `nsamples`
 * samples for batch `seq`, committed at commit_ms, into a free slot, or a
 * new one. Caller holds write_mu, in a transaction; on success *slot is the
 * slot to mark used once the transaction commits, and *created says it is
 * new (its id is next_slot_id); on failure a reused slot is free again. */
static int slot_write(store *s, uint64_t seq, int64_t commit_ms, uint32_t nsamples, uint8_t *rec,
                      size_t len, wal_slot *slot, bool *created)
{
    uint32_t n = (uint32_t)(len - STORE_WAL_HEADER_TIMED) | STORE_WAL_TIMED;
    for (int k = 0; k < 8; k++) rec[k] = (uint8_t)(seq >> (8 * k));
    for (int k = 0; k < 4; k++) rec[8 + k] = (uint8_t)(n >> (8 * k));
    for (int k = 0; k < 8; k++) rec[12 + k] = (uint8_t)((uint64_t)commit_ms >> (8 * k));
    uint32_t cls = slot_class(len);
    *created = !slot_free_take(s, cls, slot);
    int rc = SQLITE_OK;
    if (*created) {
        /* Rows are few and reused: a new one is rare once the store has
         * run for a while. */
        *slot = (wal_slot){.id = s->next_slot_id, .cls = cls};
        sqlite3_bind_int64(s->st.ins_slot, 1, slot->id);
        sqlite3_bind_int64(s->st.ins_slot, 2, slot_capacity(cls));
        rc = step_done(s->st.ins_slot);
    }
    if (rc == SQLITE_OK) {
        /* Writing in place changes only the pages the row covers: no page
         * is allocated or freed, unlike an INSERT and a later DELETE. */
        sqlite3_blob *bl = NULL;
        rc = sqlite3_blob_open(s->db, "main", "wal", "data", slot->id, 1, &bl);
        if (rc == SQLITE_OK) rc = sqlite3_blob_write(bl, rec, (int)len, 0);
        int rc2 = sqlite3_blob_close(bl);
        if (rc == SQLITE_OK) rc = rc2;
    }
    if (rc != SQLITE_OK && !*created) slot_free_push(s, *slot);
    slot->seq = seq;
    slot->commit_ms = commit_ms;
    slot->nsamples = nsamples;
    return rc;
}

/* A slot's header, as read from the first `avail` bytes of a blob of
 * blob_len bytes. */
typedef struct slot_hdr {
    uint64_t seq;
    uint32_t len;      /* of the row */
    uint32_t off;      /* where the row starts: the header's length */
    int64_t commit_ms; /* 0 in a row of a version before 6 */
} slot_hdr;

/* Reads a slot's header: false if it holds no row (never written) or a
 * header that does not fit the slot (a damaged file); h->seq is set
 * either way (0 for a slot never written). */
static bool slot_header(const uint8_t *p, size_t avail, size_t blob_len, slot_hdr *h)
{
    *h = (slot_hdr){0};
    if (avail < STORE_WAL_HEADER || blob_len < STORE_WAL_HEADER) return false;
    uint64_t q = 0;
    uint32_t n = 0;
    for (int k = 7; k >= 0; k--) q = q << 8 | p[k];
    for (int k = 3; k >= 0; k--) n = n << 8 | p[8 + k];
    h->seq = q;
    h->off = STORE_WAL_HEADER;
    if (n & STORE_WAL_TIMED) {
        if (avail < STORE_WAL_HEADER_TIMED || blob_len < STORE_WAL_HEADER_TIMED) return false;
        uint64_t c = 0;
        for (int k = 7; k >= 0; k--) c = c << 8 | p[12 + k];
        h->commit_ms = (int64_t)c;
        h->off = STORE_WAL_HEADER_TIMED;
        n &= ~STORE_WAL_TIMED;
    }
    h->len = n;
    return q != 0 && (size_t)n <= blob_len - h->off;
}

/* The number of samples a row holds, from its first bytes (0 if they do
 * not say). */
static uint32_t row_count(const uint8_t *p, size_t avail)
{
    const uint8_t *end = p + avail;
    if (avail >= 2 && p[0] == 0) p += 2; /* a row of kind 1 */
    uint64_t n = 0;
    if (strutil_get_uvarint(&p, end, &n) < 0 || n > UINT32_MAX) return 0;
    return (uint32_t)n;
}

/* ---- the head --------------------------------------------------------------------- */

static void list_push(mchunk **head, mchunk **tail, mchunk *c)
{
    c->gnext = NULL;
    if (*tail)
        (*tail)->gnext = c;
    else
        *head = c;
    *tail = c;
}

/* Closes a series' open chunk into its in-memory list and the store's list
 * of chunks to write. Caller holds write_mu and head_lock for writing. */
static void close_open_chunk(store *s, series *se)
{
    if (se->open.count == 0) return;
    size_t len;
    const uint8_t *bytes = chunkenc_bytes(&se->open, &len);
    mchunk *c = mem_malloc(sizeof *c + len);
    memset(c, 0, sizeof *c);
    memcpy(c->data, bytes, len);
    c->len = (uint32_t)len;
    c->se = se;
    c->min_t = se->open_min_t;
    c->max_t = se->open.t;
    c->first_seq = se->open_seq;
    mchunk **pp = &se->chunks;
    while (*pp) pp = &(*pp)->next;
    *pp = c;
    list_push(&s->unwritten, &s->unwritten_tail, c);
    s->head_bytes += len;
    s->head_bytes -= chunkenc_capacity(&se->open);
    chunkenc_cleanup(&se->open);
}

/* Appends one accepted sample to the head. Caller holds write_mu and
 * head_lock for writing. */
static void head_append(store *s, series *se, int64_t t, uint64_t v, uint64_t seq, int64_t now)
{
    if (se->batch_seq != seq) {
        se->batch_seq = seq;
        se->batch_first_t = t;
    }
    se->active_ms = now;
    if (se->open.count == 0) {
        se->open_min_t = t;
        se->open_seq = seq;
        se->open_since_ms = now;
    }
    size_t before = chunkenc_capacity(&se->open);
    double d;
    memcpy(&d, &v, sizeof d);
    if (chunkenc_append(&se->open, t, d) < 0) {
        /* Cannot happen for an accepted sample (t > last); keep the head
         * consistent anyway by starting a new chunk. */
        close_open_chunk(s, se);
        se->open_min_t = t;
        se->open_seq = seq;
        se->open_since_ms = now;
        before = 0;
        chunkenc_append(&se->open, t, d);
    }
    s->head_bytes += chunkenc_capacity(&se->open) - before;
    if (!se->has_data || t < se->min_t) {
        se->min_t = t;
        se->has_data = true;
    }
    se->last_t = t;
    se->last_v = v;
    se->has_last = true;
    se->last_v_known = true;
    se->last_hist = false;
    if (se->open.count >= CHUNKENC_TARGET_SAMPLES) close_open_chunk(s, se);
}

/* Closes a series' open histogram chunk, as close_open_chunk. */
static void close_open_hchunk(store *s, series *se)
{
    hhead *hh = se->hh;
    if (!hh || hh->open.count == 0) return;
    size_t len;
    const uint8_t *bytes = histchunk_bytes(&hh->open, &len);
    mchunk *c = mem_malloc(sizeof *c + len);
    memset(c, 0, sizeof *c);
    memcpy(c->data, bytes, len);
    c->len = (uint32_t)len;
    c->enc = (uint8_t)histchunk_enc(bytes, len);
    c->se = se;
    c->min_t = hh->open_min_t;
    c->max_t = hh->open.t;
    c->first_seq = hh->open_seq;
    mchunk **pp = &se->chunks;
    while (*pp) pp = &(*pp)->next;
    *pp = c;
    list_push(&s->unwritten, &s->unwritten_tail, c);
    s->head_bytes += len;
    s->head_bytes -= histchunk_memory(&hh->open);
    histchunk_cleanup(&hh->open);
}

/* Appends one accepted histogram sample (hash: of its one-sample chunk,
 * for duplicate checks) to the head. Caller holds write_mu and head_lock
 * for writing. */
static void head_append_hist(store *s, series *se, int64_t t, const nhist *h, uint64_t hash,
                             uint64_t seq, int64_t now)
{
    if (!se->hh) {
        se->hh = mem_calloc(1, sizeof *se->hh);
        histchunk_init(&se->hh->open);
        s->head_bytes += sizeof *se->hh;
    }
    hhead *hh = se->hh;
    if (se->batch_seq != seq) {
        se->batch_seq = seq;
        se->batch_first_t = t;
    }
    se->active_ms = now;
    size_t before = histchunk_memory(&hh->open);
    int rc = hh->open.count ? histchunk_append(&hh->open, t, h) : HISTCHUNK_CUT;
    if (rc == HISTCHUNK_CUT || rc == HISTCHUNK_CUT_RESET) {
        close_open_hchunk(s, se);
        hh->open_min_t = t;
        hh->open_seq = seq;
        hh->open_since_ms = now;
        before = 0;
        nhist tmp = *h; /* borrows h's arrays */
        if (rc == HISTCHUNK_CUT_RESET && tmp.hint == NHIST_HINT_UNKNOWN) tmp.hint = NHIST_HINT_RESET;
        rc = histchunk_append(&hh->open, t, &tmp);
    }
    if (rc != 0) /* cannot happen for an accepted sample (validated, t > last) */
        log_error(COMPONENT, "series %" PRIu64 ": histogram at %" PRId64 " not appended (%d)", se->id,
                  t, rc);
    s->head_bytes += histchunk_memory(&hh->open) - before;
    if (!se->has_data || t < se->min_t) {
        se->min_t = t;
        se->has_data = true;
    }
    se->last_t = t;
    se->last_v = hash;
    se->has_last = true;
    se->last_v_known = true;
    se->last_hist = true;
    if (histchunk_full(&hh->open)) close_open_hchunk(s, se);
}

/* The oldest active reader snapshot, UINT64_MAX when none. */
static uint64_t oldest_reader(store *s)
{
    uint64_t m = UINT64_MAX;
    pthread_mutex_lock(&s->readers_mu);
    for (struct store_reader *r = s->readers; r; r = r->next) {
        if (r->snap_seq && r->snap_seq < m) m = r->snap_seq;
    }
    pthread_mutex_unlock(&s->readers_mu);
    return m;
}

/* Frees written chunks that no active reader can still need. Caller holds
 * write_mu and head_lock for writing. */
static void release_retained(store *s)
{
    uint64_t oldest = oldest_reader(s);
    while (s->retained && s->retained->persisted_seq < oldest) {
        mchunk *c = s->retained;
        s->retained = c->gnext;
        if (!s->retained) s->retained_tail = NULL;
        /* Written chunks are the oldest of their series' list. */
        series *se = c->se;
        if (se->chunks == c) {
            se->chunks = c->next;
        } else {
            mchunk **pp = &se->chunks;
            while (*pp && *pp != c) pp = &(*pp)->next;
            if (*pp) *pp = c->next;
        }
        s->head_bytes -= c->len;
        mem_free(c);
    }
}

/* After a commit that wrote the chunks from `first` (the old unwritten
 * list): marks them written and moves them to the retained list. Caller
 * holds write_mu and head_lock for writing. */
static void mark_written(store *s, mchunk *first, uint64_t seq)
{
    while (first) {
        mchunk *next = first->gnext;
        first->persisted_seq = seq;
        if (first->max_t > first->se->persisted_max_t) first->se->persisted_max_t = first->max_t;
        if (first->max_t < first->se->first_end) first->se->first_end = first->max_t;
        list_push(&s->retained, &s->retained_tail, first);
        first = next;
    }
}

/* The oldest write-ahead row still needed: pinned by an open chunk or a
 * chunk not yet written. Caller holds write_mu. */
static uint64_t wal_pin(store *s, bool count_unwritten)
{
    uint64_t pin = s->last_wal_seq + 1;
    if (count_unwritten) {
        for (mchunk *c = s->unwritten; c; c = c->gnext) {
            if (c->first_seq < pin) pin = c->first_seq;
        }
    }
    pthread_mutex_lock(&s->index_mu);
    series *se;
    FOR_EACH_SERIES(s, se) {
        if (se->open.count && se->open_seq < pin) pin = se->open_seq;
        if (se->hh && se->hh->open.count && se->hh->open_seq < pin) pin = se->hh->open_seq;
    }
    pthread_mutex_unlock(&s->index_mu);
    return pin;
}

/* The release point: the head's pin lowered to every consumer's cursor.
 * Caller holds write_mu. */
static uint64_t release_pin(store *s, uint64_t head_pin)
{
    uint64_t pin = head_pin;
    for (size_t i = 0; i < s->ncons; i++) {
        if (s->cons[i].next_seq < pin) pin = s->cons[i].next_seq;
    }
    return pin;
}

/* ---- open and close ------------------------------------------------------------ */

static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE series(id INTEGER PRIMARY KEY, labels BLOB NOT NULL, metric BLOB NOT NULL);"
    "CREATE TABLE label_values(id INTEGER PRIMARY KEY, name BLOB NOT NULL,"
    " value BLOB NOT NULL, series INTEGER NOT NULL, UNIQUE(name, value));"
    "CREATE TABLE postings(lv_id INTEGER NOT NULL, series_id INTEGER NOT NULL,"
    " PRIMARY KEY(lv_id, series_id)) WITHOUT ROWID;"
    "CREATE TABLE metadata(metric TEXT PRIMARY KEY, type TEXT NOT NULL, help TEXT NOT NULL,"
    " unit TEXT NOT NULL) WITHOUT ROWID;";

/* Tables added by schema version 2 (also the migration from version 1). */
static const char schema_v2_sql[] =
    "CREATE TABLE chunks(id INTEGER PRIMARY KEY, series_id INTEGER NOT NULL,"
    " max_t INTEGER NOT NULL, min_t INTEGER NOT NULL, count INTEGER NOT NULL, enc INTEGER NOT NULL,"
    " data BLOB NOT NULL);"
    "CREATE TABLE wal(slot INTEGER PRIMARY KEY, data BLOB NOT NULL);";

/* The chunk index of schema version 3 (version 2 had (series_id, max_t)):
 * with min_t in the index a read skips, without visiting their rows, the
 * chunks that end after the query's start but begin after its end (all
 * newer chunks, for a query over older data). */
static const char schema_v3_sql[] = "DROP INDEX IF EXISTS chunks_series;"
                                    "CREATE INDEX chunks_series ON chunks(series_id, max_t, min_t);";

/* The key-value table of schema version 4 (store_kv_*). */
static const char schema_v4_sql[] = "CREATE TABLE IF NOT EXISTS kv(ns TEXT NOT NULL, key BLOB NOT NULL,"
                                    " value BLOB NOT NULL, PRIMARY KEY(ns, key)) WITHOUT ROWID;";

/* Version 5: histogram chunks (enc 2 and 3); their partial index. */
static const char schema_v5_sql[] =
    "CREATE INDEX IF NOT EXISTS chunks_hist ON chunks(series_id, max_t) WHERE enc >= 2;";

/* Version 7: stored exemplars. */
static const char schema_v7_sql[] =
    "CREATE TABLE IF NOT EXISTS exemplars(id INTEGER PRIMARY KEY, series_id INTEGER NOT NULL,"
    " t INTEGER NOT NULL, v INTEGER NOT NULL, labels BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS exemplars_series ON exemplars(series_id, t);";

/* Version 6: remote-write consumers of the write-ahead rows. */
static const char schema_v6_sql[] =
    "CREATE TABLE IF NOT EXISTS wal_consumers(name TEXT PRIMARY KEY, next_seq INTEGER NOT NULL,"
    " max_lag_ms INTEGER NOT NULL, dropped INTEGER NOT NULL) WITHOUT ROWID;";

/* Version 8: series.lhash (filled in by migrate_v8) and the indexes for
 * series not in memory. */
static const char schema_v8_lhash_sql[] =
    "ALTER TABLE series ADD COLUMN lhash INTEGER NOT NULL DEFAULT 0;";
static const char schema_v8_first_end_sql[] = "ALTER TABLE series ADD COLUMN first_end INTEGER;";
static const char schema_v8_index_sql[] =
    "UPDATE series SET first_end = (SELECT max_t FROM chunks WHERE series_id = series.id"
    " ORDER BY max_t LIMIT 1);"
    "CREATE INDEX IF NOT EXISTS series_lhash ON series(lhash);"
    "CREATE INDEX IF NOT EXISTS series_first_end ON series(first_end) WHERE first_end IS NOT NULL;";

static void open_error(buf *err, const store *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void open_error(buf *err, const store *s, const char *fmt, ...)
{
    if (!err) return;
    buf_printf(err, "storage: %s: ", s->dir);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(err, fmt, ap);
    va_end(ap);
}

static int query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        *out = 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Version 1 kept one row per sample (values as byte-swapped INTEGERs);
 * re-encode them as chunks. Runs inside init_schema's transaction. */
static int migrate_v1(store *s)
{
    int rc = sqlite3_exec(s->db, schema_v2_sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_stmt *rd = NULL, *wr = NULL;
    rc = sqlite3_prepare_v2(s->db, "SELECT series_id, t, v FROM samples ORDER BY series_id, t", -1,
                            &rd, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->db,
                                "INSERT INTO chunks(series_id, max_t, min_t, count, enc, data)"
                                " VALUES(?1,?2,?3,?5,0,?4)",
                                -1, &wr, NULL);
    chunk_appender a;
    chunkenc_init(&a);
    int64_t cur = -1, min_t = 0;
    uint64_t migrated = 0;
    for (;;) {
        int step = rc == SQLITE_OK ? sqlite3_step(rd) : rc;
        bool row = step == SQLITE_ROW;
        if (!row && step != SQLITE_DONE) {
            rc = step;
            break;
        }
        int64_t id = row ? sqlite3_column_int64(rd, 0) : -2;
        if (a.count && (id != cur || a.count >= CHUNKENC_TARGET_SAMPLES)) {
            size_t len;
            const uint8_t *bytes = chunkenc_bytes(&a, &len);
            sqlite3_bind_int64(wr, 1, cur);
            sqlite3_bind_int64(wr, 2, a.t);
            sqlite3_bind_int64(wr, 3, min_t);
            sqlite3_bind_blob(wr, 4, bytes, (int)len, SQLITE_STATIC);
            sqlite3_bind_int(wr, 5, a.count);
            rc = step_done(wr);
            chunkenc_cleanup(&a);
            if (rc != SQLITE_OK) break;
        }
        if (!row) {
            rc = SQLITE_OK;
            break;
        }
        cur = id;
        int64_t t = sqlite3_column_int64(rd, 1);
        double v = bits_double(value_decode(sqlite3_column_int64(rd, 2)));
        if (a.count == 0) min_t = t;
        if (chunkenc_append(&a, t, v) == 0) migrated++;
    }
    chunkenc_cleanup(&a);
    sqlite3_finalize(rd);
    sqlite3_finalize(wr);
    if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, "DROP TABLE samples", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        log_info(COMPONENT, "migrated %" PRIu64 " samples from schema version 1 to chunks", migrated);
    return rc;
}

/* Adds series.lhash, computed from each row's labels (decoded and encoded
 * again, as store_series_ref encodes a set), series.first_end from the
 * chunk rows, and the version-8 indexes.
 * Runs inside init_schema's transaction. */
static int migrate_v8(store *s)
{
    /* A database downgraded by hand (user_version lowered) may have them. */
    int64_t has = 0;
    int rc = query_int(s->db, "SELECT count(*) FROM pragma_table_info('series') WHERE name = 'lhash'",
                       &has);
    if (rc == SQLITE_OK && !has) rc = sqlite3_exec(s->db, schema_v8_lhash_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = query_int(s->db,
                       "SELECT count(*) FROM pragma_table_info('series') WHERE name = 'first_end'",
                       &has);
    if (rc == SQLITE_OK && !has) rc = sqlite3_exec(s->db, schema_v8_first_end_sql, NULL, NULL, NULL);
    sqlite3_stmt *rd = NULL, *wr = NULL;
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(s->db, "SELECT id, labels FROM series", -1, &rd, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->db, "UPDATE series SET lhash = ?2 WHERE id = ?1", -1, &wr, NULL);
    buf enc;
    buf_init(&enc, BUF_UNLIMITED);
    uint64_t n = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(rd)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        const char *p;
        size_t len;
        column_bytes(rd, 1, &p, &len);
        labels *ls;
        if (labels_decode(p, len, &ls) < 0) continue; /* store_check reports it */
        buf_reset(&enc);
        labels_encode(ls, &enc);
        labels_free(ls);
        sqlite3_bind_int64(wr, 1, sqlite3_column_int64(rd, 0));
        sqlite3_bind_int64(wr, 2, series_lhash(enc.data, enc.len));
        rc = step_done(wr);
        n++;
    }
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
    buf_cleanup(&enc);
    sqlite3_finalize(rd);
    sqlite3_finalize(wr);
    if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, schema_v8_index_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK && n)
        log_info(COMPONENT, "migrated %" PRIu64 " series to schema version 8 (label hashes)", n);
    return rc;
}

/* Creates the schema or checks (and migrates) the existing one, in one
 * transaction. */
static int init_schema(store *s, buf *err)
{
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) goto sqlerr;
    int64_t version, app_id, tables;
    if ((rc = query_int(s->db, "PRAGMA user_version", &version)) != SQLITE_OK) goto sqlerr;
    if ((rc = query_int(s->db, "PRAGMA application_id", &app_id)) != SQLITE_OK) goto sqlerr;
    if (version == 0) {
        rc = query_int(s->db, "SELECT count(*) FROM sqlite_schema", &tables);
        if (rc != SQLITE_OK) goto sqlerr;
        if (tables > 0 || app_id != 0) {
            open_error(err, s,
                       "%s is not a sidewatch database (it has tables but no schema "
                       "version)",
                       STORE_DB_NAME);
            rc = -EINVAL;
            goto fail;
        }
        rc = sqlite3_exec(s->db, schema_sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, schema_v2_sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, schema_v3_sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, schema_v4_sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, schema_v5_sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, schema_v6_sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, schema_v7_sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK) rc = migrate_v8(s);
        if (rc != SQLITE_OK) goto sqlerr;
    } else if (app_id != STORE_APPLICATION_ID) {
        open_error(err, s, "%s is not a sidewatch database (application_id 0x%" PRIx64 ")",
                   STORE_DB_NAME, (uint64_t)app_id);
        rc = -EINVAL;
        goto fail;
    } else if (version > STORE_SCHEMA_VERSION) {
        open_error(err, s,
                   "database schema version %" PRId64 " is newer than this sidewatch "
                   "supports (%d); upgrade sidewatch or use another --storage.path",
                   version, STORE_SCHEMA_VERSION);
        rc = -EPROTO;
        goto fail;
    } else {
        if (version == 1 && (rc = migrate_v1(s)) != SQLITE_OK) goto sqlerr;
        if (version < 3) {
            rc = sqlite3_exec(s->db, schema_v3_sql, NULL, NULL, NULL);
            if (rc != SQLITE_OK) goto sqlerr;
            log_info(COMPONENT, "migrated the chunk index to schema version 3");
        }
        if (version < 4) {
            rc = sqlite3_exec(s->db, schema_v4_sql, NULL, NULL, NULL);
            if (rc != SQLITE_OK) goto sqlerr;
        }
        if (version < 5) {
            rc = sqlite3_exec(s->db, schema_v5_sql, NULL, NULL, NULL);
            if (rc != SQLITE_OK) goto sqlerr;
        }
        if (version < 6) {
            rc = sqlite3_exec(s->db, schema_v6_sql, NULL, NULL, NULL);
            if (rc != SQLITE_OK) goto sqlerr;
        }
        if (version < 7) {
            rc = sqlite3_exec(s->db, schema_v7_sql, NULL, NULL, NULL);
            if (rc != SQLITE_OK) goto sqlerr;
        }
        if (version < 8 && (rc = migrate_v8(s)) != SQLITE_OK) goto sqlerr;
    }
    if (version < STORE_SCHEMA_VERSION) {
        char pragmas[128];
        snprintf(pragmas, sizeof pragmas, "PRAGMA application_id=%d; PRAGMA user_version=%d",
                 STORE_APPLICATION_ID, STORE_SCHEMA_VERSION);
        rc = sqlite3_exec(s->db, pragmas, NULL, NULL, NULL);
        if (rc != SQLITE_OK) goto sqlerr;
    }
    rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) goto sqlerr;
    return 0;
sqlerr:
    open_error(err, s, "%s", sqlite3_errmsg(s->db));
    rc = sql_errno(rc);
fail:
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int prepare_writer(store *s)
{
    static const struct {
        size_t off;
        const char *sql;
    } stmts[] = {
#define W(field, sql) {offsetof(store, st.field), sql}
        W(begin, "BEGIN IMMEDIATE"),
        W(commit, "COMMIT"),
        W(rollback, "ROLLBACK"),
        W(ins_series, "INSERT INTO series(id, labels, metric, lhash) VALUES(?1, ?2, ?3, ?4)"),
        /* Not one UPSERT ... RETURNING: SQLite runs RETURNING through a
         * temporary table, 50 times slower than these three. */
        W(find_lv, "SELECT id FROM label_values WHERE name = ?1 AND value = ?2"),
        W(ins_lv, "INSERT INTO label_values(name, value, series) VALUES(?1, ?2, 1)"),
        W(inc_lv, "UPDATE label_values SET series = series + 1 WHERE id = ?1"),
        W(ins_posting, "INSERT INTO postings(lv_id, series_id) VALUES(?1, ?2)"),
        W(set_meta, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)"),
        W(ins_chunk, "INSERT INTO chunks(series_id, max_t, min_t, count, enc, data)"
                     " VALUES(?1, ?2, ?3, ?6, ?4, ?5)"),
        W(ins_slot, "INSERT INTO wal(slot, data) VALUES(?1, zeroblob(?2))"),
        W(del_slot, "DELETE FROM wal WHERE slot = ?1"),
        W(upsert_metadata, "INSERT INTO metadata(metric, type, help, unit) VALUES(?1, ?2, ?3, ?4)"
                           " ON CONFLICT(metric) DO UPDATE SET type = excluded.type,"
                           " help = excluded.help, unit = excluded.unit"),
        W(del_chunks_before, "DELETE FROM chunks WHERE series_id = ?1 AND max_t < ?2"
                             " RETURNING count"),
        W(oldest_chunks, "SELECT series_id, max_t, min_t FROM chunks ORDER BY max_t LIMIT ?1"),
        W(del_chunk, "DELETE FROM chunks WHERE series_id = ?1 AND max_t = ?2 AND min_t = ?3"
                     " RETURNING data"),
        W(first_chunk, "SELECT min_t, max_t FROM chunks WHERE series_id = ?1 ORDER BY max_t LIMIT 1"),
        W(last_chunk, "SELECT max_t, data, enc FROM chunks WHERE series_id = ?1"
                      " ORDER BY max_t DESC LIMIT 1"),
        W(upsert_consumer, "INSERT INTO wal_consumers(name, next_seq, max_lag_ms, dropped)"
                           " VALUES(?1, ?2, ?3, 0) ON CONFLICT(name) DO UPDATE SET"
                           " next_seq = excluded.next_seq, max_lag_ms = excluded.max_lag_ms"),
        W(del_consumer, "DELETE FROM wal_consumers WHERE name = ?1"),
        W(set_consumer, "UPDATE wal_consumers SET next_seq = ?2, dropped = ?3 WHERE name = ?1"),
        W(ins_ex, "INSERT INTO exemplars(series_id, t, v, labels) VALUES(?1, ?2, ?3, ?4)"),
        W(trim_ex, "DELETE FROM exemplars WHERE id IN (SELECT id FROM exemplars ORDER BY id"
                   " LIMIT ?1) RETURNING series_id"),
        W(series_row, "SELECT labels FROM series WHERE id = ?1"),
        /* From series_first_end: the series with chunks ending before ?1,
         * and those whose first chunk ends first. */
        W(ended_before, "SELECT id FROM series WHERE first_end < ?1 LIMIT ?2"),
        W(oldest_series, "SELECT id, first_end FROM series WHERE first_end IS NOT NULL"
                         " ORDER BY first_end LIMIT ?1"),
        W(set_first_end, "UPDATE series SET first_end = ?2 WHERE id = ?1"),
        W(lower_first_end, "UPDATE series SET first_end = ?2 WHERE id = ?1"
                           " AND (first_end IS NULL OR first_end > ?2)"),
#undef W
    };
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        int rc = prepare(s->db, stmts[i].sql, (sqlite3_stmt **)((char *)s + stmts[i].off));
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

/* The last sample of an encoded chunk; false if it has none or is corrupt. */
static bool chunk_last(int enc, const uint8_t *data, size_t len, int64_t *t, uint64_t *v)
{
    chunk_iter it;
    if (chunkenc_iter_init_enc(&it, (enum chunkenc_encoding)enc, data, len) < 0) return false;
    int64_t tt;
    double vv;
    bool any = false;
    int rc;
    while ((rc = chunkenc_iter_next(&it, &tt, &vv)) == 1) {
        *t = tt;
        *v = double_bits(vv);
        any = true;
    }
    return any && rc == 0;
}

/* Reads a series' stored range and newest sample from its chunk rows (two
 * seeks on the chunks key). Caller holds write_mu (or owns the store, at
 * open). Returns an SQLite code. */
static int series_load_range(store *s, series *se)
{
    sqlite3_bind_int64(s->st.last_chunk, 1, (int64_t)se->id);
    int rc = sqlite3_step(s->st.last_chunk);
    if (rc == SQLITE_ROW) {
        se->persisted_max_t = sqlite3_column_int64(s->st.last_chunk, 0);
        se->last_t = se->persisted_max_t;
        se->has_last = true;
        /* A histogram chunk: its hash is not known (chunk_last fails). */
        se->last_hist = sqlite3_column_int(s->st.last_chunk, 2) >= CHUNKENC_HISTOGRAM;
        const char *p;
        size_t len;
        column_bytes(s->st.last_chunk, 1, &p, &len);
        int64_t lt = 0;
        uint64_t lv = 0;
        int enc = sqlite3_column_int(s->st.last_chunk, 2);
        if (chunk_last(enc, (const uint8_t *)p, len, &lt, &lv) && lt == se->last_t) {
            se->last_v = lv;
            se->last_v_known = true;
        }
    }
    sqlite3_reset(s->st.last_chunk);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
    sqlite3_bind_int64(s->st.first_chunk, 1, (int64_t)se->id);
    rc = sqlite3_step(s->st.first_chunk);
    if (rc == SQLITE_ROW) {
        se->min_t = sqlite3_column_int64(s->st.first_chunk, 0);
        se->first_end = sqlite3_column_int64(s->st.first_chunk, 1);
        se->has_data = true;
    }
    sqlite3_reset(s->st.first_chunk);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Loads a series that is not in memory (evicted, or not loaded at open) by
 * id from its row and chunk rows, and adds it to the index. Caller holds
 * write_mu (or owns the store, at open) and index_mu, and has checked that
 * the id is not in memory. Returns the series, or NULL for an id without a
 * (decodable) series row or on a database error (logged). */
static series *series_load(store *s, uint64_t id)
{
    if (id == 0 || id >= s->next_id) return NULL;
    sqlite3_stmt *st = s->st.series_row;
    sqlite3_bind_int64(st, 1, (int64_t)id);
    int rc = sqlite3_step(st);
    labels *ls = NULL;
    if (rc == SQLITE_ROW) {
        const char *p;
        size_t len;
        column_bytes(st, 0, &p, &len);
        if (labels_decode(p, len, &ls) < 0) {
            log_error(COMPONENT, "series %" PRIu64 ": its labels do not decode", id);
            ls = NULL;
        }
    } else if (rc != SQLITE_DONE) {
        log_error(COMPONENT, "loading series %" PRIu64 ": %s", id, sqlite3_errmsg(s->db));
    }
    sqlite3_reset(st);
    if (!ls) return NULL;
    buf enc;
    buf_init(&enc, BUF_UNLIMITED);
    labels_encode(ls, &enc);
    series *se = series_new(id, ls, &enc);
    labels_free(ls);
    buf_cleanup(&enc);
    if ((rc = series_load_range(s, se)) != SQLITE_OK) {
        log_error(COMPONENT, "loading series %" PRIu64 ": %s", id, sqlite3_errmsg(s->db));
        series_free(se);
        return NULL;
    }
    se->active_ms = wall_ms();
    index_add(s, se);
    pthread_mutex_lock(&s->stats_mu);
    s->stats.series_loaded++;
    pthread_mutex_unlock(&s->stats_mu);
    return se;
}

/* The series of an id, in memory or loaded (series_load). Caller holds
 * write_mu and index_mu. */
static series *series_get_or_load(store *s, uint64_t id)
{
    series *se = series_at(s, id);
    return se ? se : series_load(s, id);
}

/* Loads the id high-water mark, the metadata cache, the series with stored
 * exemplars (with their exemplar state) and the consumers. Other series
 * are loaded on demand (the top: eviction). */
static int load_state(store *s, buf *err)
{
    sqlite3_stmt *st = NULL;
    int64_t max_id = 0;
    int rc = query_int(s->db, "SELECT max(id) FROM series", &max_id);
    if (rc != SQLITE_OK) goto sqlerr_nofin;
    if (max_id < 0) max_id = 0;
    /* The newest sample in chunk rows (the store's time range; no series
     * is in memory yet): a scan of the chunks_series index. */
    int64_t newest = INT64_MIN;
    rc = sqlite3_prepare_v2(s->db, "SELECT max(max_t) FROM chunks", -1, &st, NULL);
    if (rc != SQLITE_OK) goto sqlerr;
    if ((rc = sqlite3_step(st)) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        newest = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) goto sqlerr_nofin;
    s->ev_maxt = newest;

    int64_t hwm = 0;
    rc = query_int(s->db, "SELECT value FROM meta WHERE key = 'next_series_id'", &hwm);
    if (rc != SQLITE_OK) goto sqlerr;
    s->next_id = (uint64_t)max_id + 1;
    if (hwm > 0 && (uint64_t)hwm > s->next_id) s->next_id = (uint64_t)hwm;

    rc = sqlite3_prepare_v2(s->db, "SELECT metric, type, help, unit FROM metadata", -1, &st, NULL);
    if (rc != SQLITE_OK) goto sqlerr;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        meta_entry *e = mem_calloc(1, sizeof *e);
        e->metric = mem_strdup((const char *)sqlite3_column_text(st, 0));
        e->type = type_from_name((const char *)sqlite3_column_text(st, 1));
        e->help = mem_strdup((const char *)sqlite3_column_text(st, 2));
        e->unit = mem_strdup((const char *)sqlite3_column_text(st, 3));
        hmap_put(&s->metadata, str_hash(e->metric), e);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_DONE) goto sqlerr_nofin;

    /* Each series' newest exemplar (the highest id: per series they are
     * appended in order) and how many it has. */
    rc = sqlite3_prepare_v2(s->db,
                            "SELECT e.series_id, c.n, e.t, e.v, e.labels FROM (SELECT series_id,"
                            " count(*) AS n, max(id) AS mid FROM exemplars GROUP BY series_id) c"
                            " JOIN exemplars e ON e.id = c.mid",
                            -1, &st, NULL);
    if (rc != SQLITE_OK) goto sqlerr;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        pthread_mutex_lock(&s->index_mu);
        series *se = id > 0 ? series_get_or_load(s, (uint64_t)id) : NULL;
        pthread_mutex_unlock(&s->index_mu);
        if (!se || se->ex) continue;
        exstate *e = se->ex = mem_calloc(1, sizeof *se->ex);
        e->count = (uint64_t)sqlite3_column_int64(st, 1);
        e->t = sqlite3_column_int64(st, 2);
        e->v = (uint64_t)sqlite3_column_int64(st, 3);
        const char *p;
        size_t len;
        column_bytes(st, 4, &p, &len);
        e->lenc = mem_malloc(len ? len : 1);
        memcpy(e->lenc, p, len);
        e->lenc_len = (uint32_t)len;
        e->lhash = strutil_hash64(p, len, 0);
        e->has = true;
        s->ex_total += e->count;
        s->ex_series++;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_DONE) goto sqlerr_nofin;

    rc = sqlite3_prepare_v2(s->db, "SELECT name, next_seq, max_lag_ms, dropped FROM wal_consumers",
                            -1, &st, NULL);
    if (rc != SQLITE_OK) goto sqlerr;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (s->ncons == s->cons_cap) s->cons = mem_grow(s->cons, sizeof *s->cons, s->ncons + 1, &s->cons_cap);
        const char *name = (const char *)sqlite3_column_text(st, 0);
        s->cons[s->ncons++] = (wal_consumer){
            .name = mem_strdup(name ? name : ""),
            .next_seq = (uint64_t)sqlite3_column_int64(st, 1),
            .max_lag_ms = sqlite3_column_int64(st, 2),
            .dropped = (uint64_t)sqlite3_column_int64(st, 3),
        };
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) goto sqlerr_nofin;
    return 0;
sqlerr:
    sqlite3_finalize(st);
sqlerr_nofin:
    open_error(err, s, "loading the series index: %s", sqlite3_errmsg(s->db));
    return sql_errno(rc);
}

static int cmp_slot_seq(const void *x, const void *y)
{
    const wal_slot *a = x, *b = y;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Per series while replaying: the newest sample of each kind in chunk
 * rows or replayed so far (INT64_MIN: none), looked up when first needed. */
typedef struct replay_wm {
    int64_t f, h;
    bool touched, f_known, h_known;
} replay_wm;

typedef struct replay_ctx {
    replay_wm *wm; /* by series id */
    size_t n;
    sqlite3_stmt *last_float, *last_hist; /* newest chunk row of a kind */
    int rc;       /* an SQLite error of those lookups */
} replay_ctx;

static int64_t replay_lookup(replay_ctx *cx, sqlite3_stmt *st, uint64_t id)
{
    sqlite3_bind_int64(st, 1, (int64_t)id);
    int rc = sqlite3_step(st);
    int64_t t = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : INT64_MIN;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) cx->rc = rc;
    return t;
}

/* The watermark of a kind for a series, as replay_wm says. */
static int64_t *replay_mark(replay_ctx *cx, series *se, bool hist)
{
    replay_wm *w = &cx->wm[se->id];
    if (!w->touched) {
        /* First touch: the newest chunk row (load_state) is of one kind. */
        w->touched = true;
        if (se->persisted_max_t == INT64_MIN) {
            w->f = w->h = INT64_MIN;
            w->f_known = w->h_known = true;
        } else if (se->last_hist) {
            w->h = se->persisted_max_t;
            w->h_known = true;
        } else {
            w->f = se->persisted_max_t;
            w->f_known = true;
        }
    }
    if (hist && !w->h_known) {
        w->h = replay_lookup(cx, cx->last_hist, se->id);
        w->h_known = true;
    } else if (!hist && !w->f_known) {
        w->f = replay_lookup(cx, cx->last_float, se->id);
        w->f_known = true;
    }
    return hist ? &w->h : &w->f;
}

/* Replays one write-ahead row into the head; false if it is corrupt. */
static bool replay_row(store *s, replay_ctx *cx, uint64_t seq, const uint8_t *p, size_t len,
                       int64_t now, uint64_t *replayed, uint64_t *skipped, uint64_t *unknown)
{
    wal_reader w;
    int r = wal_reader_init(&w, p, len);
    uint64_t ref, v;
    int64_t t;
    const uint8_t *hp;
    size_t hlen;
    nhist h;
    nhist_init(&h);
    while (r == 0 && (r = wal_reader_next(&w, &ref, &t, &v, &hp, &hlen)) == 1) {
        r = 0;
        /* Series are loaded as their rows come (open loads none). */
        pthread_mutex_lock(&s->index_mu);
        series *se = series_get_or_load(s, ref);
        pthread_mutex_unlock(&s->index_mu);
        if (!se || se->id >= cx->n) {
            (*unknown)++;
            continue;
        }
        int64_t *mark = replay_mark(cx, se, hp != NULL);
        if (t <= *mark) {
            (*skipped)++;
            continue;
        }
        /* The series' newest timestamp stays the newest of both kinds. */
        bool had = se->has_last, lh = se->last_hist, lk = se->last_v_known;
        int64_t lt = se->last_t;
        uint64_t lv = se->last_v;
        if (hp) {
            histchunk_iter it;
            int64_t t0;
            if (histchunk_iter_init(&it, hp, hlen) < 0 || histchunk_iter_next(&it, &t0, &h) != 1) {
                histchunk_iter_cleanup(&it);
                r = -EINVAL;
                break;
            }
            histchunk_iter_cleanup(&it);
            head_append_hist(s, se, t, &h, strutil_hash64(hp, hlen, 0), seq, now);
        } else {
            head_append(s, se, t, v, seq, now);
        }
        if (had && lt > t) {
            se->last_t = lt;
            se->last_v = lv;
            se->last_hist = lh;
            se->last_v_known = lk;
        }
        *mark = t;
        (*replayed)++;
    }
    nhist_cleanup(&h);
    return r == 0;
}

/* Replays the write-ahead rows into the head, oldest first: samples newer
 * than the series' chunk rows are appended again, exactly as when first
 * committed. Slots below meta.wal_pin hold rows already in chunk rows and
 * become free slots. */
static int replay_wal(store *s, buf *err)
{
    int64_t pin = 0, head = 0;
    int rc = query_int(s->db, "SELECT value FROM meta WHERE key = 'wal_pin'", &pin);
    /* Rows kept only for consumers (below meta.wal_head) are in chunk rows:
     * they stay readable but are not appended again. Without wal_head (a
     * version before 6) every row from wal_pin on is replayed. */
    if (rc == SQLITE_OK) rc = query_int(s->db, "SELECT value FROM meta WHERE key = 'wal_head'", &head);
    if (head < pin) head = pin;
    sqlite3_stmt *st = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->db, "SELECT slot, length(data), substr(data, 1, 32) FROM wal", -1,
                                &st, NULL);
    if (rc != SQLITE_OK) goto sqlerr;
    slot_list used = {0};
    uint64_t max_seq = pin > 0 ? (uint64_t)pin - 1 : 0;
    int64_t max_id = 0;
    int64_t now = wall_ms();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        wal_slot x = {.id = sqlite3_column_int64(st, 0),
                      .cls = class_of_capacity(sqlite3_column_int64(st, 1))};
        if (x.id > max_id) max_id = x.id;
        size_t blob_len = (size_t)sqlite3_column_int64(st, 1);
        const uint8_t *h = sqlite3_column_blob(st, 2);
        size_t avail = (size_t)sqlite3_column_bytes(st, 2);
        slot_hdr hd = {0};
        bool ok = h && slot_header(h, avail, blob_len, &hd);
        if (hd.seq > max_seq) max_seq = hd.seq;
        if (ok && hd.seq >= (uint64_t)pin) {
            x.seq = hd.seq;
            /* A row without its commit time counts as committed now. */
            x.commit_ms = hd.commit_ms ? hd.commit_ms : now;
            x.nsamples = row_count(h + hd.off, avail - hd.off < hd.len ? avail - hd.off : hd.len);
            slot_list_push(&used, x);
        } else {
            if (!ok && hd.seq != 0)
                log_error(COMPONENT, "write-ahead slot %" PRId64 " has a damaged header; ignored",
                          x.id);
            slot_free_push(s, x);
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_DONE) {
        mem_free(used.v);
        goto sqlerr_nofin;
    }
    if (used.n) qsort(used.v, used.n, sizeof *used.v, cmp_slot_seq);
    replay_ctx cx = {.wm = mem_calloc(s->next_id, sizeof *cx.wm), .n = s->next_id};
    rc = sqlite3_prepare_v2(s->db, "SELECT data FROM wal WHERE slot = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->db,
                                "SELECT max_t FROM chunks WHERE series_id = ?1 AND enc < 2"
                                " ORDER BY max_t DESC LIMIT 1",
                                -1, &cx.last_float, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->db,
                                "SELECT max_t FROM chunks WHERE series_id = ?1 AND enc >= 2"
                                " ORDER BY max_t DESC LIMIT 1",
                                -1, &cx.last_hist, NULL);
    uint64_t replayed = 0, skipped = 0, unknown = 0;
    size_t rows = 0;
    for (size_t i = 0; rc == SQLITE_OK && i < used.n; i++) {
        if (used.v[i].seq >= (uint64_t)head) {
            sqlite3_bind_int64(st, 1, used.v[i].id);
            if ((rc = sqlite3_step(st)) != SQLITE_ROW) break;
            rc = SQLITE_OK;
            const uint8_t *p = sqlite3_column_blob(st, 0);
            size_t blob_len = (size_t)sqlite3_column_bytes(st, 0);
            slot_hdr hd;
            if (p && slot_header(p, blob_len, blob_len, &hd) &&
                !replay_row(s, &cx, hd.seq, p + hd.off, hd.len, now, &replayed, &skipped, &unknown))
                /* A row SQLite committed cannot be torn; a corrupt one means
                 * the file was damaged. Keep what could be read, say so. */
                log_error(COMPONENT,
                          "write-ahead row %" PRIu64 " is corrupt; samples after the damage "
                          "in that row are lost",
                          hd.seq);
            sqlite3_reset(st);
            rows++;
        }
        s->last_wal_seq = used.v[i].seq;
        slot_used_push(s, used.v[i]);
    }
    sqlite3_finalize(st);
    st = NULL;
    sqlite3_finalize(cx.last_float);
    sqlite3_finalize(cx.last_hist);
    mem_free(cx.wm);
    mem_free(used.v);
    if (rc == SQLITE_OK && cx.rc != SQLITE_OK) rc = cx.rc;
    if (rc != SQLITE_OK) goto sqlerr_nofin;
    /* Sequence numbers continue after every number a slot or the pin has
     * seen, so a stale slot never looks newer than the pin. */
    s->last_wal_seq = max_seq;
    s->wal_next = max_seq + 1;
    s->truncated_upto = pin > 0 ? (uint64_t)pin : 0;
    s->head_pinned = (uint64_t)head;
    s->next_slot_id = max_id + 1;
    s->stats.replayed_samples = replayed;
    s->stats.wal_rows = s->used_len;
    if (rows)
        log_info(COMPONENT,
                 "replayed %" PRIu64 " samples from %zu write-ahead rows (%" PRIu64
                 " already in chunks)",
                 replayed, rows, skipped);
    if (s->used_len > rows)
        log_info(COMPONENT, "%zu write-ahead rows kept for remote-write consumers",
                 s->used_len - rows);
    if (unknown)
        log_error(COMPONENT, "write-ahead rows reference %" PRIu64 " samples of unknown series",
                  unknown);
    return 0;
sqlerr:
    sqlite3_finalize(st);
sqlerr_nofin:
    open_error(err, s, "reading the write-ahead table: %s", sqlite3_errmsg(s->db));
    return sql_errno(rc);
}

static void ckpt_stop(store *s)
{
    if (s->ckpt_running) {
        pthread_mutex_lock(&s->ckpt_mu);
        s->ckpt_stop = true;
        pthread_cond_signal(&s->ckpt_cond);
        pthread_mutex_unlock(&s->ckpt_mu);
        pthread_join(s->ckpt_thread, NULL);
        s->ckpt_running = false;
    }
    if (s->ckpt_db) sqlite3_close(s->ckpt_db);
    s->ckpt_db = NULL;
}

static void free_all(store *s)
{
    ckpt_stop(s);
    sqlite3_finalize(s->wal_rd_row);
    sqlite3_finalize(s->wal_rd_begin);
    sqlite3_finalize(s->wal_rd_end);
    if (s->wal_rdb) sqlite3_close(s->wal_rdb);
    sqlite3_finalize(s->lk_hash);
    sqlite3_finalize(s->lk_id);
    if (s->lk_db) sqlite3_close(s->lk_db);
    for (size_t i = 0; i < s->ncons; i++) mem_free(s->cons[i].name);
    mem_free(s->cons);
    if (s->db) {
        sqlite3_stmt **stmts = (sqlite3_stmt **)&s->st;
        for (size_t i = 0; i < sizeof s->st / sizeof(sqlite3_stmt *); i++)
            sqlite3_finalize(stmts[i]);
        /* The last connection to close checkpoints the WAL and removes it. */
        if (sqlite3_close(s->db) != SQLITE_OK)
            log_error(COMPONENT, "closing %s: %s", s->db_path, sqlite3_errmsg(s->db));
    }
    series *se;
    FOR_EACH_SERIES(s, se) series_free(se);
    for (size_t i = 0; i < s->id_npages; i++) mem_free(s->id_pages[i]);
    mem_free(s->id_pages);
    mem_free(s->pending);
    mem_free(s->slots_used);
    for (int i = 0; i < STORE_WAL_CLASSES; i++) mem_free(s->slots_free[i].v);
    hmap_cleanup(&s->by_labels);
    size_t it = 0;
    void *v;
    while (hmap_next(&s->metadata, &it, &v)) meta_entry_free(v);
    hmap_cleanup(&s->metadata);
    if (s->lock_fd >= 0) close(s->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&s->write_mu);
    pthread_mutex_destroy(&s->index_mu);
    pthread_mutex_destroy(&s->lookup_mu);
    pthread_mutex_destroy(&s->readers_mu);
    pthread_mutex_destroy(&s->stats_mu);
    pthread_mutex_destroy(&s->ring_mu);
    pthread_mutex_destroy(&s->cons_mu);
    pthread_mutex_destroy(&s->wal_rd_mu);
    pthread_rwlock_destroy(&s->head_lock);
    pthread_mutex_destroy(&s->ckpt_mu);
    pthread_cond_destroy(&s->ckpt_cond);
    mem_free(s->dir);
    mem_free(s->db_path);
    mem_free(s->wal_path);
    mem_free(s);
}

/* Called by SQLite after each commit on the writer connection. */
static int wal_hook(void *ctx, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    store *s = ctx;
    if (frames >= STORE_CHECKPOINT_FRAMES) {
        pthread_mutex_lock(&s->ckpt_mu);
        s->ckpt_wanted = true;
        pthread_cond_signal(&s->ckpt_cond);
        pthread_mutex_unlock(&s->ckpt_mu);
    }
    return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
    store *s = arg;
    pthread_mutex_lock(&s->ckpt_mu);
    while (!s->ckpt_stop) {
        if (!s->ckpt_wanted) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += STORE_CHECKPOINT_EVERY_S;
            pthread_cond_timedwait(&s->ckpt_cond, &s->ckpt_mu, &until);
            if (s->ckpt_stop) break;
        }
        s->ckpt_wanted = false;
        pthread_mutex_unlock(&s->ckpt_mu);
        /* PASSIVE: copies what it can without blocking the writer or
         * readers; the next writer restarts the WAL once all is copied. */
        int rc = sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn(COMPONENT, "checkpoint failed: %s", sqlite3_errmsg(s->ckpt_db));
        pthread_mutex_lock(&s->ckpt_mu);
    }
    pthread_mutex_unlock(&s->ckpt_mu);
    return NULL;
}

/* Starts the checkpointer; on failure the writer checkpoints itself. */
static void ckpt_start(store *s)
{
    if (sqlite3_open_v2(s->db_path, &s->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        log_warn(COMPONENT, "no checkpoint connection: %s",
                 s->ckpt_db ? sqlite3_errmsg(s->ckpt_db) : "out of memory");
        sqlite3_close(s->ckpt_db);
        s->ckpt_db = NULL;
        return;
    }
    sqlite3_busy_timeout(s->ckpt_db, STORE_BUSY_TIMEOUT_MS);
    if (pthread_create(&s->ckpt_thread, NULL, ckpt_main, s) != 0) {
        sqlite3_close(s->ckpt_db);
        s->ckpt_db = NULL;
        return;
    }
    s->ckpt_running = true;
    sqlite3_wal_autocheckpoint(s->db, 0);
    sqlite3_wal_hook(s->db, wal_hook, s);
}

static int oldest_chunks(store *s, size_t limit, int64_t *mint, int64_t *first_end);

/* The store's time range: of the series in memory (their head too) and of
 * the chunk rows of those not in memory: the newest sample of series
 * evicted or on disk at open (ev_maxt), and the oldest start among the
 * first chunks of the STORE_MINT_CHUNKS series whose first chunk ends
 * first. Takes write_mu. */
static void recompute_time_range(store *s)
{
    int64_t mint = INT64_MAX, maxt = INT64_MIN;
    pthread_mutex_lock(&s->index_mu);
    series *se;
    FOR_EACH_SERIES(s, se) {
        if (!se->has_data) continue;
        if (se->min_t < mint) mint = se->min_t;
        if (se->has_last && se->last_t > maxt) maxt = se->last_t;
    }
    pthread_mutex_unlock(&s->index_mu);
    pthread_mutex_lock(&s->write_mu);
    int64_t oldest, first_end;
    int rc = oldest_chunks(s, STORE_MINT_CHUNKS, &oldest, &first_end);
    if (rc == SQLITE_OK && oldest < mint) mint = oldest;
    if (rc != SQLITE_OK) log_warn(COMPONENT, "reading the time range: %s", sqlite3_errmsg(s->db));
    pthread_mutex_unlock(&s->write_mu);
    pthread_mutex_lock(&s->stats_mu);
    if (s->ev_maxt > maxt) maxt = s->ev_maxt;
    pthread_mutex_unlock(&s->stats_mu);
    pthread_mutex_lock(&s->stats_mu);
    s->mint = mint;
    s->maxt = maxt;
    pthread_mutex_unlock(&s->stats_mu);
}

static int hist_prepare(const nhist *h, buf *hb, uint64_t *loc, uint64_t *hash);

int store_open(store **out, const store_options *o, buf *err)
{
    *out = NULL;
    if (!o || !o->path || !*o->path) {
        if (err) buf_puts(err, "storage: no storage path given");
        return -EINVAL;
    }
    store *s = mem_calloc(1, sizeof *s);
    s->dir = mem_strdup(o->path);
    s->db_path = path_join(o->path, STORE_DB_NAME);
    s->wal_path = path_join(o->path, STORE_DB_NAME "-wal");
    s->lock_fd = -1;
    s->retention_ms = o->retention_ms > 0 ? o->retention_ms : 0;
    s->retention_bytes = o->retention_bytes > 0 ? o->retention_bytes : 0;
    s->head_max_age_ms = o->head_max_age_ms > 0 ? o->head_max_age_ms : STORE_HEAD_MAX_AGE_MS;
    s->evict_stale_ms = o->evict_stale_ms > 0 ? o->evict_stale_ms : STORE_EVICT_STALE_MS;
    s->evict_idle_ms = o->evict_idle_ms > 0 ? o->evict_idle_ms : STORE_EVICT_IDLE_MS;
    atomic_init(&s->max_ex, o->max_exemplars > 0 ? o->max_exemplars : 0);
    pthread_mutex_init(&s->write_mu, NULL);
    pthread_mutex_init(&s->index_mu, NULL);
    pthread_mutex_init(&s->lookup_mu, NULL);
    pthread_mutex_init(&s->readers_mu, NULL);
    pthread_mutex_init(&s->stats_mu, NULL);
    pthread_mutex_init(&s->ring_mu, NULL);
    pthread_mutex_init(&s->cons_mu, NULL);
    pthread_mutex_init(&s->wal_rd_mu, NULL);
    pthread_rwlock_init(&s->head_lock, NULL);
    pthread_mutex_init(&s->ckpt_mu, NULL);
    pthread_cond_init(&s->ckpt_cond, NULL);
    hmap_init(&s->by_labels);
    hmap_init(&s->metadata);
    atomic_init(&s->commit_seq, 1);
    s->mint = INT64_MAX;
    s->maxt = INT64_MIN;
    s->ev_maxt = INT64_MIN;

    int rc = mkdir_p(o->path);
    if (rc < 0) {
        open_error(err, s, "cannot create the storage directory: %s", strerror(-rc));
        goto fail;
    }
    char *lock_path = path_join(o->path, STORE_LOCK_NAME);
    s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    mem_free(lock_path);
    if (s->lock_fd < 0) {
        rc = -errno;
        open_error(err, s, "cannot create the lock file: %s", strerror(-rc));
        goto fail;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        open_error(err, s, "%s",
                   rc == -EBUSY ? "in use by another sidewatch process (lock held)"
                                : strerror(-rc));
        goto fail;
    }
    if (access(o->path, W_OK) != 0) {
        rc = -errno;
        open_error(err, s, "the storage directory is not writable: %s", strerror(-rc));
        goto fail;
    }

    int sqlrc = sqlite3_open_v2(
        s->db_path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (sqlrc != SQLITE_OK) goto sqlfail;
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(s->db, 0);

    /* Durability. In WAL mode a commit appends the transaction's pages to
     * the -wal file with write(2) before COMMIT returns; with
     * synchronous=NORMAL the WAL is fsync()ed only at checkpoints, not at
     * every commit. Data written with write(2) is in the kernel's page cache
     * and reaches the file even if the process dies right after (SIGKILL,
     * abort, OOM kill), and SQLite's recovery replays every complete
     * committed transaction from the WAL at the next open. So NORMAL keeps
     * the contract in store.h (a returned commit survives the process being
     * killed) without an fsync per scrape. It does not protect the last
     * commits against power loss or a kernel crash (the database stays
     * consistent, but recent batches can roll back); FULL would, at the
     * price of one fsync per batch, which a monitoring sidecar committing
     * every scrape does not need. */
    /* Page size and auto_vacuum can only be chosen while the file is empty,
     * before WAL mode writes its first page. */
    int64_t pages = 0;
    if ((sqlrc = query_int(s->db, "PRAGMA page_count", &pages)) != SQLITE_OK) goto sqlfail;
    if (pages == 0) {
        char ps[96];
        snprintf(ps, sizeof ps, "PRAGMA page_size=%d; PRAGMA auto_vacuum=INCREMENTAL",
                 STORE_PAGE_SIZE);
        if ((sqlrc = sqlite3_exec(s->db, ps, NULL, NULL, NULL)) != SQLITE_OK) goto sqlfail;
    }
    char *mode = NULL;
    sqlrc = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    if (sqlrc != SQLITE_OK) goto sqlfail;
    {
        sqlite3_stmt *st;
        sqlrc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &st, NULL);
        if (sqlrc != SQLITE_OK) goto sqlfail;
        if (sqlite3_step(st) == SQLITE_ROW)
            mode = mem_strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    if (!mode || strcmp(mode, "wal") != 0) {
        open_error(err, s, "cannot switch %s to WAL mode (journal_mode=%s)", STORE_DB_NAME,
                   mode ? mode : "?");
        mem_free(mode);
        rc = -EIO;
        goto fail;
    }
    mem_free(mode);
    char pragmas[128];
    snprintf(pragmas, sizeof pragmas, "PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=%d",
             STORE_JOURNAL_SIZE_LIMIT);
    sqlrc = sqlite3_exec(s->db, pragmas, NULL, NULL, NULL);
    if (sqlrc != SQLITE_OK) goto sqlfail;

    if ((rc = init_schema(s, err)) < 0) goto fail;
    if ((sqlrc = prepare_writer(s)) != SQLITE_OK) goto sqlfail;
    /* One read transaction for the whole load: one snapshot, and no lock
     * round trip per statement. */
    if ((sqlrc = sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL)) != SQLITE_OK) goto sqlfail;
    rc = load_state(s, err);
    if (rc == 0) rc = replay_wal(s, err);
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc < 0) goto fail;
    sqlrc = sqlite3_open_v2(s->db_path, &s->lk_db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (sqlrc == SQLITE_OK) {
        sqlite3_busy_timeout(s->lk_db, STORE_BUSY_TIMEOUT_MS);
        sqlrc = prepare(s->lk_db, "SELECT id, labels FROM series WHERE lhash = ?1", &s->lk_hash);
    }
    if (sqlrc == SQLITE_OK) sqlrc = prepare(s->lk_db, "SELECT labels FROM series WHERE id = ?1", &s->lk_id);
    if (sqlrc != SQLITE_OK) {
        rc = sql_errno(sqlrc);
        open_error(err, s, "opening the series lookup connection: %s",
                   s->lk_db ? sqlite3_errmsg(s->lk_db) : sqlite3_errstr(sqlrc));
        goto fail;
    }
    recompute_time_range(s);
    {
        buf hb;
        buf_init(&hb, BUF_UNLIMITED);
        nhist marker;
        nhist_init(&marker);
        marker.sum = strutil_stale_nan();
        uint64_t loc;
        hist_prepare(&marker, &hb, &loc, &s->stale_hash);
        buf_cleanup(&hb);
    }
    ckpt_start(s);
    *out = s;
    return 0;

sqlfail:
    rc = sql_errno(sqlrc);
    open_error(err, s, "%s", s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(sqlrc));
fail:
    free_all(s);
    return rc;
}

/* ---- series ---------------------------------------------------------------------- */

/* The id of the series row holding the encoded set enc, 0 if none, or a
 * negative errno. Caller holds lookup_mu. */
static int64_t lookup_by_labels(store *s, const buf *enc)
{
    sqlite3_stmt *st = s->lk_hash;
    sqlite3_bind_int64(st, 1, series_lhash(enc->data, enc->len));
    int64_t found = 0;
    int rc;
    buf again;
    buf_init(&again, BUF_UNLIMITED);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *p;
        size_t len;
        column_bytes(st, 1, &p, &len);
        labels *ls;
        if (labels_decode(p, len, &ls) < 0) continue;
        /* Compared as encoded now (as the hash was computed). */
        buf_reset(&again);
        labels_encode(ls, &again);
        labels_free(ls);
        if (again.len == enc->len && memcmp(again.data, enc->data, enc->len) == 0) {
            found = sqlite3_column_int64(st, 0);
            rc = SQLITE_DONE;
            break;
        }
    }
    buf_cleanup(&again);
    sqlite3_reset(st);
    /* The next statement starts a new read transaction: each lookup sees
     * every row committed before it. */
    if (rc != SQLITE_DONE) {
        log_error(COMPONENT, "looking up a series: %s", sqlite3_errmsg(s->lk_db));
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    return found;
}

int store_series_ref(store *s, const labels *ls, uint64_t *ref, bool *created)
{
    if (created) *created = false;
    if (!ls || ls->n == 0) return -EINVAL;
    buf enc;
    buf_init(&enc, BUF_UNLIMITED);
    labels_encode(ls, &enc);
    pthread_mutex_lock(&s->index_mu);
    series *se = hmap_get(&s->by_labels, labels_hash(ls), series_eq, &enc);
    if (se) {
        *ref = se->id;
        pthread_mutex_unlock(&s->index_mu);
        buf_cleanup(&enc);
        return 0;
    }
    pthread_mutex_unlock(&s->index_mu);
    /* Not in memory: evicted (its row says its id) or new. New series are
     * only created under lookup_mu, and a series is only evicted once its
     * row is committed, so after a miss in memory here the table is
     * authoritative. */
    pthread_mutex_lock(&s->lookup_mu);
    pthread_mutex_lock(&s->index_mu);
    se = hmap_get(&s->by_labels, labels_hash(ls), series_eq, &enc);
    int64_t id = se ? (int64_t)se->id : 0;
    pthread_mutex_unlock(&s->index_mu);
    if (!id) id = lookup_by_labels(s, &enc);
    if (id > 0) {
        *ref = (uint64_t)id;
    } else if (id == 0) {
        pthread_mutex_lock(&s->index_mu);
        se = series_new(s->next_id++, ls, &enc);
        se->pending = true;
        se->active_ms = wall_ms();
        index_add(s, se);
        s->pending = mem_grow(s->pending, sizeof *s->pending, s->npending + 1, &s->pending_cap);
        s->pending[s->npending++] = se;
        *ref = se->id;
        pthread_mutex_unlock(&s->index_mu);
        if (created) *created = true;
    }
    pthread_mutex_unlock(&s->lookup_mu);
    buf_cleanup(&enc);
    return id < 0 ? (int)id : 0;
}

/* Writes a series row and its postings. Caller holds write_mu, in a
 * transaction. */
static int write_series(store *s, const series *se)
{
    labels *ls = NULL;
    if (labels_decode(se->lenc, se->lenc_len, &ls) < 0) return SQLITE_CORRUPT;
    size_t mlen;
    const char *metric = labels_metric_name(ls, &mlen);
    sqlite3_bind_int64(s->st.ins_series, 1, (int64_t)se->id);
    bind_bytes(s->st.ins_series, 2, (const char *)se->lenc, se->lenc_len);
    bind_bytes(s->st.ins_series, 3, metric, mlen);
    sqlite3_bind_int64(s->st.ins_series, 4, series_lhash(se->lenc, se->lenc_len));
    int rc = step_done(s->st.ins_series);
    for (uint32_t i = 0; rc == SQLITE_OK && i < ls->n; i++) {
        const label *l = &ls->v[i];
        bind_bytes(s->st.find_lv, 1, l->name, l->name_len);
        bind_bytes(s->st.find_lv, 2, l->value, l->value_len);
        rc = sqlite3_step(s->st.find_lv);
        int64_t lv_id = rc == SQLITE_ROW ? sqlite3_column_int64(s->st.find_lv, 0) : 0;
        sqlite3_reset(s->st.find_lv);
        if (rc == SQLITE_ROW) {
            sqlite3_bind_int64(s->st.inc_lv, 1, lv_id);
            rc = step_done(s->st.inc_lv);
        } else if (rc == SQLITE_DONE) {
            bind_bytes(s->st.ins_lv, 1, l->name, l->name_len);
            bind_bytes(s->st.ins_lv, 2, l->value, l->value_len);
            rc = step_done(s->st.ins_lv);
            lv_id = sqlite3_last_insert_rowid(s->db);
        }
        if (rc != SQLITE_OK) break;
        sqlite3_bind_int64(s->st.ins_posting, 1, lv_id);
        sqlite3_bind_int64(s->st.ins_posting, 2, (int64_t)se->id);
        rc = step_done(s->st.ins_posting);
    }
    labels_free(ls);
    return rc;
}

/* Writes every series row queued since the last commit. Caller holds
 * write_mu, in a transaction; *taken receives the queue (to put back on
 * failure with requeue_series). */
static int write_pending_series(store *s, series ***taken, size_t *ntaken)
{
    pthread_mutex_lock(&s->index_mu);
    *taken = s->pending;
    *ntaken = s->npending;
    s->pending = NULL;
    s->npending = s->pending_cap = 0;
    if (s->closing) {
        /* Series that never got a sample are not worth keeping. */
        size_t k = 0;
        for (size_t i = 0; i < *ntaken; i++) {
            series *se = (*taken)[i];
            if (se->has_last || se->open.count || se->chunks) (*taken)[k++] = se;
        }
        *ntaken = k;
    }
    uint64_t next_id = s->next_id;
    pthread_mutex_unlock(&s->index_mu);
    int rc = SQLITE_OK;
    for (size_t i = 0; i < *ntaken && rc == SQLITE_OK; i++) rc = write_series(s, (*taken)[i]);
    if (rc == SQLITE_OK && *ntaken) {
        sqlite3_bind_text(s->st.set_meta, 1, "next_series_id", -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->st.set_meta, 2, (int64_t)next_id);
        rc = step_done(s->st.set_meta);
    }
    return rc;
}

/* After the commit that wrote their rows: the series may be evicted now.
 * Frees the list. Caller holds write_mu. */
static void rows_written(series **taken, size_t ntaken)
{
    for (size_t i = 0; i < ntaken; i++) taken[i]->pending = false;
    mem_free(taken);
}

/* Puts series rows that a failed commit did not write back in the queue,
 * ahead of any created meanwhile. */
static void requeue_series(store *s, series **taken, size_t ntaken)
{
    if (!ntaken) {
        mem_free(taken);
        return;
    }
    pthread_mutex_lock(&s->index_mu);
    size_t total = ntaken + s->npending, cap = ntaken;
    taken = mem_grow(taken, sizeof *taken, total, &cap);
    if (s->npending) memcpy(taken + ntaken, s->pending, s->npending * sizeof *taken);
    mem_free(s->pending);
    s->pending = taken;
    s->npending = total;
    s->pending_cap = cap;
    pthread_mutex_unlock(&s->index_mu);
}

/* Lowers series.first_end of series id to max_t if that is lower (or it is
 * NULL). Caller holds write_mu, in a transaction. */
static int lower_first_end(store *s, uint64_t id, int64_t max_t)
{
    sqlite3_bind_int64(s->st.lower_first_end, 1, (int64_t)id);
    sqlite3_bind_int64(s->st.lower_first_end, 2, max_t);
    return step_done(s->st.lower_first_end);
}

/* Writes the chunks of the unwritten list. Caller holds write_mu, in a
 * transaction. */
static int write_chunks(store *s, mchunk *first)
{
    for (mchunk *c = first; c; c = c->gnext) {
        /* A series' first chunk row (or one older than its first). */
        if (c->max_t < c->se->first_end) {
            int rc = lower_first_end(s, c->se->id, c->max_t);
            if (rc != SQLITE_OK) return rc;
        }
        if (c->enc >= CHUNKENC_HISTOGRAM) {
            sqlite3_bind_int64(s->st.ins_chunk, 1, (int64_t)c->se->id);
            sqlite3_bind_int64(s->st.ins_chunk, 2, c->max_t);
            sqlite3_bind_int64(s->st.ins_chunk, 3, c->min_t);
            sqlite3_bind_int(s->st.ins_chunk, 4, c->enc);
            sqlite3_bind_blob(s->st.ins_chunk, 5, c->data, (int)c->len, SQLITE_STATIC);
            sqlite3_bind_int(s->st.ins_chunk, 6, histchunk_count(c->data, c->len));
            int rc = step_done(s->st.ins_chunk);
            if (rc != SQLITE_OK) return rc;
            continue;
        }
        /* Stored as a decimal chunk when that is smaller. */
        uint8_t *dec = NULL;
        size_t dec_len = 0;
        bool use_dec = chunkenc_compact(c->data, c->len, &dec, &dec_len) == 1;
        sqlite3_bind_int64(s->st.ins_chunk, 1, (int64_t)c->se->id);
        sqlite3_bind_int64(s->st.ins_chunk, 2, c->max_t);
        sqlite3_bind_int64(s->st.ins_chunk, 3, c->min_t);
        sqlite3_bind_int(s->st.ins_chunk, 4, use_dec ? CHUNKENC_DECIMAL : CHUNKENC_XOR);
        sqlite3_bind_blob(s->st.ins_chunk, 5, use_dec ? dec : c->data, (int)(use_dec ? dec_len : c->len),
                          SQLITE_STATIC);
        sqlite3_bind_int(s->st.ins_chunk, 6, chunkenc_count(c->data, c->len));
        int rc = step_done(s->st.ins_chunk);
        free(dec);
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

static size_t list_len(const mchunk *c)
{
    size_t n = 0;
    for (; c; c = c->gnext) n++;
    return n;
}

/* ---- batches ------------------------------------------------------------------------ */

store_batch *store_batch_new(store *s)
{
    store_batch *b = mem_calloc(1, sizeof *b);
    b->s = s;
    buf_init(&b->exb, BUF_UNLIMITED);
    return b;
}

/* Runes of a UTF-8 string (bytes that do not continue a sequence). */
static size_t rune_count(const char *p, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)p[i] & 0xc0) != 0x80;
    return n;
}

void store_batch_add_exemplar(store_batch *b, uint64_t ref, int64_t t_ms, double v,
                              const labels *ls)
{
    if (atomic_load(&b->s->max_ex) <= 0) return;
    if (!ls) ls = labels_empty();
    size_t runes = 0;
    for (uint32_t i = 0; i < ls->n; i++)
        runes += rune_count(ls->v[i].name, ls->v[i].name_len) +
                 rune_count(ls->v[i].value, ls->v[i].value_len);
    if (runes > STORE_EXEMPLAR_MAX_LABEL_RUNES) {
        b->ex_long++;
        return;
    }
    if (b->nex == b->excap) b->ex = mem_grow(b->ex, sizeof *b->ex, b->nex + 1, &b->excap);
    batch_exemplar *x = &b->ex[b->nex++];
    x->ref = ref;
    x->t = t_ms;
    memcpy(&x->v, &v, sizeof x->v);
    x->loff = b->exb.len;
    labels_encode(ls, &b->exb);
    x->llen = (uint32_t)(b->exb.len - x->loff);
}

void store_batch_add(store_batch *b, uint64_t ref, int64_t t_ms, double v)
{
    if (b->n == b->cap) b->v = mem_grow(b->v, sizeof *b->v, b->n + 1, &b->cap);
    batch_sample *x = &b->v[b->n++];
    x->ref = ref;
    x->t = t_ms;
    memcpy(&x->v, &v, sizeof x->v);
}

void store_batch_add_histogram(store_batch *b, uint64_t ref, int64_t t_ms, const nhist *h)
{
    if (b->nh == b->hcap) b->h = mem_grow(b->h, sizeof *b->h, b->nh + 1, &b->hcap);
    nhist *c = &b->h[b->nh];
    nhist_init(c);
    if (nhist_copy(c, h) < 0) {
        log_error(COMPONENT, "out of memory copying a histogram");
        abort(); /* mem.h's policy */
    }
    if (b->n == b->cap) b->v = mem_grow(b->v, sizeof *b->v, b->n + 1, &b->cap);
    batch_sample *x = &b->v[b->n++];
    x->ref = ref | BATCH_HIST;
    x->t = t_ms;
    x->v = b->nh++;
}

void store_batch_metadata(store_batch *b, const char *metric, enum expfmt_type type,
                          const char *help, const char *unit)
{
    b->m = mem_grow(b->m, sizeof *b->m, b->nm + 1, &b->mcap);
    batch_meta *m = &b->m[b->nm++];
    m->metric = mem_strdup(metric);
    m->type = type;
    m->help = mem_strdup(help ? help : "");
    m->unit = mem_strdup(unit ? unit : "");
}

size_t store_batch_len(const store_batch *b)
{
    return b->n;
}

void store_batch_free(store_batch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->nm; i++) {
        mem_free(b->m[i].metric);
        mem_free(b->m[i].help);
        mem_free(b->m[i].unit);
    }
    mem_free(b->m);
    mem_free(b->v);
    for (size_t i = 0; i < b->nh; i++) nhist_cleanup(&b->h[i]);
    mem_free(b->h);
    mem_free(b->ex);
    buf_cleanup(&b->exb);
    mem_free(b);
}

static bool meta_changed(const meta_entry *e, const batch_meta *m)
{
    return !e || e->type != m->type || strcmp(e->help, m->help) != 0 ||
           strcmp(e->unit, m->unit) != 0;
}

/* Updates the metadata cache after a committed write. Caller holds
 * write_mu. */
static void meta_cache_put(store *s, const batch_meta *m)
{
    uint64_t h = str_hash(m->metric);
    meta_entry *e = hmap_get(&s->metadata, h, meta_eq, m->metric);
    if (!e) {
        e = mem_calloc(1, sizeof *e);
        e->metric = mem_strdup(m->metric);
        hmap_put(&s->metadata, h, e);
    } else {
        mem_free(e->help);
        mem_free(e->unit);
    }
    e->type = m->type;
    e->help = mem_strdup(m->help);
    e->unit = mem_strdup(m->unit);
}

/* One accepted sample of a batch, with its series resolved. For a
 * histogram, h is set and v is (offset << 32 | length) of its one-sample
 * chunk in the commit's histogram buffer. */
typedef struct accepted {
    series *se;
    int64_t t;
    uint64_t v;
    const nhist *h;
} accepted;

/* Whether the float with these bits is an integer a double holds exactly
 * (not -0); *iv gets it. */
static bool exact_int(uint64_t v, int64_t *iv)
{
    double d;
    memcpy(&d, &v, sizeof d);
    if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(int64_t)d))
        return false;
    *iv = (int64_t)d;
    double back = (double)*iv;
    uint64_t bb;
    memcpy(&bb, &back, sizeof bb);
    return bb == v;
}

/* Encodes h as a one-sample histogram chunk (at time 0: the write-ahead
 * row has the time) appended to hb; returns 0, the chunk's
 * (offset << 32 | length) and its hash (equal histograms, equal hashes),
 * or -EINVAL if the histogram cannot be stored (invalid). */
static int hist_prepare(const nhist *h, buf *hb, uint64_t *loc, uint64_t *hash)
{
    if (!nhist_is_stale(h) && nhist_validate(h, NULL, 0) < 0) return -EINVAL;
    histchunk_appender a;
    histchunk_init(&a);
    int rc = histchunk_append(&a, 0, h);
    if (rc == 0) {
        size_t len;
        const uint8_t *bytes = histchunk_bytes(&a, &len);
        *loc = (uint64_t)hb->len << 32 | (uint64_t)len;
        buf_append(hb, bytes, len);
        *hash = strutil_hash64(bytes, len, 0);
    }
    histchunk_cleanup(&a);
    return rc == 0 ? 0 : -EINVAL;
}

/* One accepted exemplar of a batch. */
typedef struct ex_accepted {
    series *se;
    int64_t t;
    uint64_t v;
    uint64_t lhash;
    const uint8_t *lenc; /* in the batch's exb */
    uint32_t llen;
} ex_accepted;

/* Checks the batch's exemplars as Prometheus's validateExemplar does (see
 * store_batch_add_exemplar), in batch order against each series' newest
 * (tentatively accepted) one. Caller holds write_mu and index_mu. Fills
 * acc (b->nex entries) and returns how many were accepted. */
static size_t exemplars_check(store *s, store_batch *b, uint64_t gen, ex_accepted *acc,
                              uint64_t *ooo, uint64_t *dup, uint64_t *unknown)
{
    size_t n = 0;
    for (size_t i = 0; i < b->nex; i++) {
        const batch_exemplar *x = &b->ex[i];
        series *se = series_get_or_load(s, x->ref);
        if (!se) {
            (*unknown)++;
            continue;
        }
        if (!se->ex) se->ex = mem_calloc(1, sizeof *se->ex);
        exstate *e = se->ex;
        if (e->gen != gen) {
            e->gen = gen;
            e->tent_has = e->has;
            e->tent_t = e->t;
            e->tent_v = e->v;
            e->tent_lhash = e->lhash;
            e->tent_lenc = e->lenc;
            e->tent_lenc_len = e->lenc_len;
        }
        const uint8_t *lenc = (const uint8_t *)b->exb.data + x->loff;
        uint64_t lhash = strutil_hash64(lenc, x->llen, 0);
        if (e->tent_has) {
            double nv = bits_double(x->v), ov = bits_double(e->tent_v);
            if (x->t == e->tent_t && nv == ov && x->llen == e->tent_lenc_len &&
                memcmp(lenc, e->tent_lenc, x->llen) == 0) {
                (*dup)++;
                continue;
            }
            if (x->t < e->tent_t || (x->t == e->tent_t && nv < ov) ||
                (x->t == e->tent_t && nv == ov && lhash < e->tent_lhash)) {
                (*ooo)++;
                continue;
            }
        }
        e->tent_has = true;
        e->tent_t = x->t;
        e->tent_v = x->v;
        e->tent_lhash = lhash;
        e->tent_lenc = lenc;
        e->tent_lenc_len = x->llen;
        acc[n++] = (ex_accepted){se, x->t, x->v, lhash, lenc, x->llen};
    }
    return n;
}

/* Inserts the accepted exemplars and deletes the oldest rows beyond the
 * bound; the series ids of deleted rows go to *evicted (caller frees).
 * Caller holds write_mu, in a transaction. */
static int exemplars_write(store *s, const ex_accepted *acc, size_t n, uint64_t **evicted,
                           size_t *nevicted)
{
    *evicted = NULL;
    *nevicted = 0;
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st = s->st.ins_ex;
        sqlite3_bind_int64(st, 1, (int64_t)acc[i].se->id);
        sqlite3_bind_int64(st, 2, acc[i].t);
        sqlite3_bind_int64(st, 3, (int64_t)acc[i].v);
        sqlite3_bind_blob(st, 4, acc[i].lenc, (int)acc[i].llen, SQLITE_STATIC);
        int rc = step_done(st);
        if (rc != SQLITE_OK) return rc;
    }
    int64_t max = atomic_load(&s->max_ex);
    if (max < 0) max = 0;
    uint64_t total = s->ex_total + n;
    if (total <= (uint64_t)max) return SQLITE_OK;
    sqlite3_stmt *st = s->st.trim_ex;
    sqlite3_bind_int64(st, 1, (int64_t)(total - (uint64_t)max));
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*nevicted == cap) *evicted = mem_grow(*evicted, sizeof **evicted, *nevicted + 1, &cap);
        (*evicted)[(*nevicted)++] = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* After a committed exemplars_write: the series' newest exemplars and the
 * counts. Caller holds write_mu. */
static void exemplars_committed(store *s, const ex_accepted *acc, size_t n, const uint64_t *evicted,
                                size_t nevicted)
{
    uint64_t series_delta_add = 0, series_delta_sub = 0;
    for (size_t i = 0; i < n; i++) {
        exstate *e = acc[i].se->ex;
        if (e->count++ == 0) series_delta_add++;
        e->has = true;
        e->t = acc[i].t;
        e->v = acc[i].v;
        e->lhash = acc[i].lhash;
        if (e->lenc_len != acc[i].llen || !e->lenc) {
            mem_free(e->lenc);
            e->lenc = mem_malloc(acc[i].llen ? acc[i].llen : 1);
            e->lenc_len = acc[i].llen;
        }
        memcpy(e->lenc, acc[i].lenc, acc[i].llen);
        e->gen = 0;
    }
    pthread_mutex_lock(&s->index_mu);
    for (size_t i = 0; i < nevicted; i++) {
        series *se = series_at(s, evicted[i]);
        if (!se || !se->ex || se->ex->count == 0) continue;
        if (--se->ex->count == 0) {
            /* As Prometheus drops the series' index entry: no newest left. */
            se->ex->has = false;
            series_delta_sub++;
        }
    }
    pthread_mutex_unlock(&s->index_mu);
    pthread_mutex_lock(&s->stats_mu);
    s->ex_total = s->ex_total + n - nevicted;
    s->ex_series = s->ex_series + series_delta_add - series_delta_sub;
    s->stats.exemplars_appended += n;
    pthread_mutex_unlock(&s->stats_mu);
}

/* Records that write-ahead rows below `pin` are no longer needed (their
 * slots may be reused once this commits). Caller in a transaction. */
static int set_wal_pin(store *s, uint64_t pin)
{
    sqlite3_bind_text(s->st.set_meta, 1, "wal_pin", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->st.set_meta, 2, (int64_t)pin);
    return step_done(s->st.set_meta);
}

/* Records that the samples of write-ahead rows below `pin` are in chunk
 * rows (replay starts there). Caller in a transaction. */
static int set_wal_head(store *s, uint64_t pin)
{
    sqlite3_bind_text(s->st.set_meta, 1, "wal_head", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->st.set_meta, 2, (int64_t)pin);
    return step_done(s->st.set_meta);
}

int store_batch_commit(store_batch *b)
{
    store *s = b->s;
    pthread_mutex_lock(&s->write_mu);
    uint64_t gen = ++s->gen;
    uint64_t ooo = 0, dup = 0, unknown = 0;
    accepted *acc = mem_malloc((b->n ? b->n : 1) * sizeof *acc);
    size_t nacc = 0, nhacc = 0;
    uint64_t invalid = 0;
    buf hb; /* one-sample chunks of the accepted histograms */
    buf_init(&hb, BUF_UNLIMITED);
    nhist marker; /* the histogram staleness marker */
    nhist_init(&marker);
    marker.sum = strutil_stale_nan();

    /* Check every sample against its series' newest one (and the samples
     * before it in this batch) without touching the series yet. */
    pthread_mutex_lock(&s->index_mu);
    for (size_t i = 0; i < b->n; i++) {
        const batch_sample *x = &b->v[i];
        /* Series are scattered in memory; fetch a few samples ahead. */
        if (i + STORE_PREFETCH < b->n) __builtin_prefetch(series_at(s, b->v[i + STORE_PREFETCH].ref), 1);
        series *se = series_at(s, x->ref);
        if (__builtin_expect(!se, 0)) {
            /* A histogram, or a series not in memory: load it (a scrape
             * cache's reference to an evicted series appends again). */
            se = series_get_or_load(s, x->ref & ~BATCH_HIST);
            if (!se) {
                unknown++;
                continue;
            }
        }
        if (__builtin_expect((x->ref & BATCH_HIST) != 0, 0)) {
            if (x->v < b->nh) {
                const nhist *h = &b->h[x->v];
                uint64_t loc, hash;
                if (hist_prepare(h, &hb, &loc, &hash) < 0) {
                    invalid++;
                    continue;
                }
                if (se->gen != gen) {
                    se->gen = gen;
                    se->tent_t = se->last_t;
                    se->tent_v = se->last_v;
                    se->tent_has = se->has_last;
                    se->tent_v_known = se->last_v_known;
                    se->tent_hist = se->last_hist;
                }
                if (se->tent_has && x->t <= se->tent_t) {
                    if (x->t == se->tent_t &&
                        (!se->tent_v_known || (se->tent_hist && hash == se->tent_v)))
                        dup++;
                    else
                        ooo++;
                    hb.len = (size_t)(loc >> 32); /* drop its chunk */
                    continue;
                }
                se->tent_t = x->t;
                se->tent_v = hash;
                se->tent_has = true;
                se->tent_v_known = true;
                se->tent_hist = true;
                acc[nacc++] = (accepted){se, x->t, loc, h};
                nhacc++;
                continue;
            }
            unknown++;
            continue;
        }
        if (se->gen != gen) {
            se->gen = gen;
            se->tent_t = se->last_t;
            se->tent_v = se->last_v;
            se->tent_has = se->has_last;
            se->tent_v_known = se->last_v_known;
            se->tent_hist = se->last_hist;
        }
        if (se->tent_has && x->t <= se->tent_t) {
            /* Prometheus: same timestamp and value = duplicate (ignored),
             * otherwise out of order. After a restart the last value may be
             * unknown; an equal timestamp then counts as a duplicate. */
            if (x->t == se->tent_t &&
                (!se->tent_v_known || (x->v == se->tent_v && !se->tent_hist) ||
                 (se->tent_hist && se->tent_v == s->stale_hash &&
                  strutil_is_stale_nan(bits_double(x->v)))))
                dup++;
            else
                ooo++;
            continue;
        }
        if (__builtin_expect(se->tent_hist, 0)) {
            /* A float after a histogram: a staleness marker becomes a
             * histogram staleness marker, as Prometheus stores it. */
            uint64_t loc, hash;
            if (strutil_is_stale_nan(bits_double(x->v)) && hist_prepare(&marker, &hb, &loc, &hash) == 0) {
                se->tent_t = x->t;
                se->tent_v = hash;
                se->tent_has = true;
                se->tent_v_known = true;
                acc[nacc++] = (accepted){se, x->t, loc, &marker};
                nhacc++;
                continue;
            }
            se->tent_hist = false;
        }
        se->tent_t = x->t;
        se->tent_v = x->v;
        se->tent_has = true;
        se->tent_v_known = true;
        acc[nacc++] = (accepted){se, x->t, x->v, NULL};
    }
    uint64_t exooo = 0, exdup = 0;
    ex_accepted *exacc = b->nex ? mem_malloc(b->nex * sizeof *exacc) : NULL;
    size_t nexacc = b->nex ? exemplars_check(s, b, gen, exacc, &exooo, &exdup, &unknown) : 0;
    pthread_mutex_unlock(&s->index_mu);
    if (unknown)
        log_warn(COMPONENT,
                 "dropping %" PRIu64 " sample(s) or exemplar(s) with unknown series references",
                 unknown);
    if (b->ex_long)
        log_debug(COMPONENT, "dropped %" PRIu64 " exemplar(s) with labels over %d runes",
                  b->ex_long, STORE_EXEMPLAR_MAX_LABEL_RUNES);
    size_t exbytes = 0;
    for (size_t i = 0; i < nexacc; i++)
        exbytes += exacc[i].llen + 40;

    /* The write-ahead row: the accepted samples, compactly (at most 28
     * bytes each: two 10-byte varints and the value). */
    buf wal;
    buf_init(&wal, BUF_UNLIMITED);
    buf_reserve(&wal, STORE_WAL_HEADER_TIMED + 24 + nacc * 28 + hb.len + exbytes);
    uint8_t *w = (uint8_t *)wal.data + STORE_WAL_HEADER_TIMED;
    uint64_t pref = 0;
    int64_t pt = 0;
    if (nhacc || nexacc) {
        /* A row of kind 1, or 2 with exemplars (see the top). */
        *w++ = 0;
        *w++ = nexacc ? 2 : 1;
        w += strutil_put_uvarint(w, nacc);
        for (size_t i = 0; i < nacc; i++) {
            int64_t dr = (int64_t)(acc[i].se->id - pref);
            int64_t dt = (int64_t)((uint64_t)acc[i].t - (uint64_t)pt);
            uint64_t zr = ((uint64_t)dr << 1) ^ (uint64_t)(dr >> 63);
            int64_t iv = 0;
            unsigned kind = acc[i].h ? 2 : exact_int(acc[i].v, &iv) ? 1 : 0;
            w += strutil_put_uvarint(w, zr << 2 | kind);
            w += strutil_put_uvarint(w, ((uint64_t)dt << 1) ^ (uint64_t)(dt >> 63));
            if (kind == 2) {
                size_t off = (size_t)(acc[i].v >> 32), len = (size_t)(acc[i].v & 0xffffffffu);
                w += strutil_put_uvarint(w, len);
                memcpy(w, hb.data + off, len);
                w += len;
            } else if (kind == 1) {
                w += strutil_put_uvarint(w, ((uint64_t)iv << 1) ^ (uint64_t)(iv >> 63));
            } else {
                for (int k = 0; k < 8; k++) w[k] = (uint8_t)(acc[i].v >> (8 * k));
                w += 8;
            }
            pref = acc[i].se->id;
            pt = acc[i].t;
        }
        if (nexacc) {
            w += strutil_put_uvarint(w, nexacc);
            for (size_t i = 0; i < nexacc; i++) {
                int64_t t = exacc[i].t;
                w += strutil_put_uvarint(w, exacc[i].se->id);
                w += strutil_put_uvarint(w, ((uint64_t)t << 1) ^ (uint64_t)(t >> 63));
                for (int k = 0; k < 8; k++)
                    w[k] = (uint8_t)(exacc[i].v >> (8 * k));
                w += 8;
                w += strutil_put_uvarint(w, exacc[i].llen);
                memcpy(w, exacc[i].lenc, exacc[i].llen);
                w += exacc[i].llen;
            }
        }
    } else {
    w += strutil_put_uvarint(w, nacc);
    for (size_t i = 0; i < nacc; i++) {
        int64_t dr = (int64_t)(acc[i].se->id - pref);
        int64_t dt = (int64_t)((uint64_t)acc[i].t - (uint64_t)pt);
        uint64_t v = acc[i].v;
        double d;
        memcpy(&d, &v, sizeof d);
        /* Integers a double holds exactly, bit for bit (not -0). */
        bool is_int = d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(int64_t)d;
        int64_t iv = is_int ? (int64_t)d : 0;
        if (is_int) {
            double back = (double)iv;
            uint64_t bb;
            memcpy(&bb, &back, sizeof bb);
            is_int = bb == v;
        }
        uint64_t zr = ((uint64_t)dr << 1) ^ (uint64_t)(dr >> 63);
        w += strutil_put_uvarint(w, zr << 1 | (is_int ? 1 : 0));
        w += strutil_put_uvarint(w, ((uint64_t)dt << 1) ^ (uint64_t)(dt >> 63));
        if (is_int) {
            w += strutil_put_uvarint(w, ((uint64_t)iv << 1) ^ (uint64_t)(iv >> 63));
        } else {
            for (int k = 0; k < 8; k++) w[k] = (uint8_t)(v >> (8 * k));
            w += 8;
        }
        pref = acc[i].se->id;
        pt = acc[i].t;
    }
    }
    wal.len = (size_t)(w - (uint8_t *)wal.data);

    series **taken = NULL;
    size_t ntaken = 0;
    mchunk *to_write = s->unwritten;
    s->unwritten = s->unwritten_tail = NULL;
    bool *written_meta = mem_calloc(b->nm ? b->nm : 1, sizeof *written_meta);
    bool truncate = ++s->commits_since_truncate >= STORE_TRUNCATE_EVERY_COMMITS;
    uint64_t pin = 0, head_pin = 0;
    int64_t now = wall_ms();
    const char *what = "BEGIN";
    int rc = SQLITE_OK;
    uint64_t wal_seq = 0;
    wal_slot slot = {0};
    bool have_slot = false, slot_created = false;
    uint64_t *evicted = NULL;
    size_t nevicted = 0;

    pthread_mutex_lock(&s->index_mu);
    bool anything = s->npending > 0 || nacc > 0 || nexacc > 0 || b->nm > 0 || to_write;
    pthread_mutex_unlock(&s->index_mu);
    if (!anything) goto done;

    /* A transaction left open by a failed ROLLBACK would make every later
     * BEGIN fail; end it first. */
    if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
    if ((rc = step_done(s->st.begin)) != SQLITE_OK) goto fail;
    what = "writing series";
    if ((rc = write_pending_series(s, &taken, &ntaken)) != SQLITE_OK) goto fail;
    what = "writing chunks";
    if ((rc = write_chunks(s, to_write)) != SQLITE_OK) goto fail;
    if (nacc || nexacc) {
        what = "writing the write-ahead row";
        wal_seq = s->wal_next;
        rc = slot_write(s, wal_seq, now, (uint32_t)nacc, (uint8_t *)wal.data, wal.len, &slot,
                        &slot_created);
        if (rc != SQLITE_OK) goto fail;
        have_slot = true;
    }
    if (truncate) {
        /* Chunks written in this transaction no longer pin their rows. */
        head_pin = wal_pin(s, false);
        if (nacc && wal_seq < head_pin) head_pin = wal_seq; /* this batch is not in the head yet */
        pin = release_pin(s, head_pin);
        what = "truncating the write-ahead table";
        if (pin > s->truncated_upto && (rc = set_wal_pin(s, pin)) != SQLITE_OK) goto fail;
        if (head_pin > s->head_pinned && (rc = set_wal_head(s, head_pin)) != SQLITE_OK) goto fail;
    }
    if (nexacc) {
        what = "writing exemplars";
        if ((rc = exemplars_write(s, exacc, nexacc, &evicted, &nevicted)) != SQLITE_OK) goto fail;
    }
    what = "writing metadata";
    for (size_t i = 0; i < b->nm; i++) {
        const batch_meta *m = &b->m[i];
        const meta_entry *e = hmap_get(&s->metadata, str_hash(m->metric), meta_eq, m->metric);
        if (!meta_changed(e, m)) continue;
        sqlite3_stmt *st = s->st.upsert_metadata;
        sqlite3_bind_text(st, 1, m->metric, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, expfmt_type_name(m->type), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, m->help, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, m->unit, -1, SQLITE_STATIC);
        if ((rc = step_done(st)) != SQLITE_OK) goto fail;
        written_meta[i] = true;
    }
    what = "COMMIT";
    if ((rc = step_done(s->st.commit)) != SQLITE_OK) goto fail;

    /* Committed: now the head may change. */
    rows_written(taken, ntaken);
    size_t nwritten = list_len(to_write);
    uint64_t seq = atomic_load(&s->commit_seq);
    pthread_rwlock_wrlock(&s->head_lock);
    mark_written(s, to_write, seq);
    int64_t bmin = INT64_MAX, bmax = INT64_MIN;
    for (size_t i = 0; i < nacc; i++) {
        /* The series (fetched ahead in the check above, maybe evicted
         * since) and the end of its open chunk. */
        if (i + 2 * STORE_PREFETCH < nacc) __builtin_prefetch(acc[i + 2 * STORE_PREFETCH].se, 1);
        if (i + STORE_PREFETCH < nacc) {
            const chunk_appender *pa = &acc[i + STORE_PREFETCH].se->open;
            if (pa->data) __builtin_prefetch(pa->data + (pa->bits >> 3), 1);
        }
        if (__builtin_expect(acc[i].h != NULL, 0)) {
            const uint8_t *hc = (const uint8_t *)hb.data + (acc[i].v >> 32);
            head_append_hist(s, acc[i].se, acc[i].t, acc[i].h,
                             strutil_hash64(hc, (size_t)(acc[i].v & 0xffffffffu), 0), wal_seq, now);
        } else {
            head_append(s, acc[i].se, acc[i].t, acc[i].v, wal_seq, now);
        }
        if (acc[i].t < bmin) bmin = acc[i].t;
        if (acc[i].t > bmax) bmax = acc[i].t;
    }
    release_retained(s);
    pthread_rwlock_unlock(&s->head_lock);
    atomic_fetch_add(&s->commit_seq, 1);
    if (nexacc) exemplars_committed(s, exacc, nexacc, evicted, nevicted);
    if (nacc || nexacc) {
        /* The row and the sequence number together, for store_wal_read. */
        pthread_mutex_lock(&s->ring_mu);
        slot_used_push(s, slot);
        atomic_store(&s->last_wal_seq, wal_seq);
        pthread_mutex_unlock(&s->ring_mu);
        s->wal_next = wal_seq + 1;
        if (slot_created) s->next_slot_id++;
    }
    if (truncate) {
        s->commits_since_truncate = 0;
        if (head_pin > s->head_pinned) s->head_pinned = head_pin;
        if (pin > s->truncated_upto) {
            slots_release_below(s, pin);
            s->truncated_upto = pin;
        }
    }
    for (size_t i = 0; i < b->nm; i++) {
        if (written_meta[i]) meta_cache_put(s, &b->m[i]);
    }
    pthread_mutex_lock(&s->stats_mu);
    s->stats.chunks_persisted += nwritten;
    if (bmin < s->mint) s->mint = bmin;
    if (bmax > s->maxt) s->maxt = bmax;
    s->stats.wal_rows = s->used_len;
    pthread_mutex_unlock(&s->stats_mu);
done:
    pthread_mutex_lock(&s->stats_mu);
    s->stats.samples_appended += nacc;
    s->stats.histogram_samples_appended += nhacc;
    s->stats.invalid_histograms += invalid;
    s->stats.batches_committed++;
    s->stats.out_of_order_samples += ooo;
    s->stats.duplicate_samples += dup;
    s->stats.exemplars_out_of_order += exooo;
    pthread_mutex_unlock(&s->stats_mu);
    pthread_mutex_unlock(&s->write_mu);
    buf_cleanup(&hb);
    buf_cleanup(&wal);
    mem_free(acc);
    mem_free(exacc);
    mem_free(evicted);
    mem_free(written_meta);
    store_batch_free(b);
    return 0;

fail:;
    int err = sql_errno(rc);
    if (err == 0) err = -EIO;
    log_error(COMPONENT, "commit failed (%s): %s; %zu sample(s) not stored", what,
              sqlite3_errmsg(s->db), b->n);
    if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
    requeue_series(s, taken, ntaken);
    /* A reused slot is free again (its old row is back); a new one is gone. */
    if (have_slot && !slot_created) slot_free_push(s, slot);
    /* The chunks go back to the front of the unwritten list. */
    if (to_write) {
        mchunk *last = to_write;
        while (last->gnext) last = last->gnext;
        last->gnext = s->unwritten;
        if (!s->unwritten) s->unwritten_tail = last;
        s->unwritten = to_write;
    }
    if (truncate) s->commits_since_truncate = 0;
    pthread_mutex_lock(&s->stats_mu);
    s->stats.commit_errors++;
    pthread_mutex_unlock(&s->stats_mu);
    pthread_mutex_unlock(&s->write_mu);
    buf_cleanup(&hb);
    buf_cleanup(&wal);
    mem_free(acc);
    mem_free(exacc);
    mem_free(evicted);
    mem_free(written_meta);
    store_batch_free(b);
    return err;
}

/* ---- maintenance ------------------------------------------------------------------------ */

/* Deletes chunk rows that end before `cutoff`, STORE_RETENTION_SERIES_PER_TX
 * series per transaction. Caller holds write_mu, outside a transaction. */
static int delete_before(store *s, int64_t cutoff, uint64_t *deleted_chunks)
{
    uint64_t chunks = 0, samples = 0;
    int rc = SQLITE_OK;
    int64_t todo[STORE_RETENTION_SERIES_PER_TX];
    for (;;) {
        /* The series with chunks to delete, in memory or not: those whose
         * first chunk ends before the cutoff (series_first_end). */
        size_t n = 0;
        sqlite3_stmt *q = s->st.ended_before;
        sqlite3_bind_int64(q, 1, cutoff);
        sqlite3_bind_int64(q, 2, STORE_RETENTION_SERIES_PER_TX);
        while (n < STORE_RETENTION_SERIES_PER_TX && (rc = sqlite3_step(q)) == SQLITE_ROW)
            todo[n++] = sqlite3_column_int64(q, 0);
        sqlite3_reset(q);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) break;
        rc = SQLITE_OK;
        if (n == 0) break;
        if ((rc = step_done(s->st.begin)) != SQLITE_OK) break;
        for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
            sqlite3_stmt *st = s->st.del_chunks_before;
            sqlite3_bind_int64(st, 1, todo[i]);
            sqlite3_bind_int64(st, 2, cutoff);
            uint64_t here = 0;
            while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                samples += (uint64_t)sqlite3_column_int64(st, 0);
                here++;
            }
            sqlite3_reset(st);
            if (rc != SQLITE_DONE) break;
            rc = SQLITE_OK;
            chunks += here;
            /* The series now starts at its first remaining chunk (or in
             * the head): first_end follows (even if nothing was deleted, so
             * a wrong one cannot select the series forever). */
            sqlite3_bind_int64(s->st.first_chunk, 1, todo[i]);
            int r = sqlite3_step(s->st.first_chunk);
            int64_t first = r == SQLITE_ROW ? sqlite3_column_int64(s->st.first_chunk, 0) : INT64_MAX;
            int64_t first_end = r == SQLITE_ROW ? sqlite3_column_int64(s->st.first_chunk, 1) : INT64_MAX;
            sqlite3_reset(s->st.first_chunk);
            if (r != SQLITE_ROW && r != SQLITE_DONE) {
                rc = r;
                break;
            }
            sqlite3_bind_int64(s->st.set_first_end, 1, todo[i]);
            if (first_end == INT64_MAX)
                sqlite3_bind_null(s->st.set_first_end, 2);
            else
                sqlite3_bind_int64(s->st.set_first_end, 2, first_end);
            if ((rc = step_done(s->st.set_first_end)) != SQLITE_OK) break;
            pthread_rwlock_wrlock(&s->head_lock);
            pthread_mutex_lock(&s->index_mu);
            series *se = series_at(s, (uint64_t)todo[i]);
            pthread_mutex_unlock(&s->index_mu);
            if (se) { /* a failed commit leaves these a little low: harmless */
                se->first_end = first_end;
                for (mchunk *c = se->chunks; c; c = c->next) {
                    if (c->persisted_seq == 0 && c->min_t < first) first = c->min_t;
                }
                if (se->open.count && se->open_min_t < first) first = se->open_min_t;
                if (se->hh && se->hh->open.count && se->hh->open_min_t < first)
                    first = se->hh->open_min_t;
                if (first == INT64_MAX) {
                    se->has_data = false;
                    se->persisted_max_t = INT64_MIN;
                } else {
                    se->min_t = first;
                }
            }
            pthread_rwlock_unlock(&s->head_lock);
        }
        if (rc == SQLITE_OK) rc = step_done(s->st.commit);
        if (rc != SQLITE_OK) break;
    }
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
    pthread_mutex_lock(&s->stats_mu);
    s->stats.retention_deleted_chunks += chunks;
    s->stats.retention_deleted_samples += samples;
    if (rc == SQLITE_OK && s->ev_maxt < cutoff) s->ev_maxt = INT64_MIN; /* all of it went */
    pthread_mutex_unlock(&s->stats_mu);
    if (deleted_chunks) *deleted_chunks = chunks;
    return rc;
}

/* The oldest sample time among the first chunks of the `limit` series whose
 * first chunk ends first (*mint; the chunks of different series overlap in
 * time), and the time the first of them ends (*first_end); both INT64_MAX
 * without chunk rows. Caller holds write_mu. */
static int oldest_chunks(store *s, size_t limit, int64_t *mint, int64_t *first_end)
{
    *mint = *first_end = INT64_MAX;
    int64_t ids[STORE_MINT_CHUNKS];
    size_t n = 0;
    sqlite3_stmt *st = s->st.oldest_series;
    sqlite3_bind_int64(st, 1, (int64_t)(limit < STORE_MINT_CHUNKS ? limit : STORE_MINT_CHUNKS));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < STORE_MINT_CHUNKS) {
        ids[n++] = sqlite3_column_int64(st, 0);
        if (sqlite3_column_int64(st, 1) < *first_end) *first_end = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return rc;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(s->st.first_chunk, 1, ids[i]);
        rc = sqlite3_step(s->st.first_chunk);
        if (rc == SQLITE_ROW && sqlite3_column_int64(s->st.first_chunk, 0) < *mint)
            *mint = sqlite3_column_int64(s->st.first_chunk, 0);
        sqlite3_reset(s->st.first_chunk);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
    }
    return SQLITE_OK;
}

/* Bytes the database's pages hold (free pages excluded). */
static int64_t used_bytes(store *s)
{
    int64_t pages = 0, free_pages = 0, page_size = 0;
    query_int(s->db, "PRAGMA page_count", &pages);
    query_int(s->db, "PRAGMA freelist_count", &free_pages);
    query_int(s->db, "PRAGMA page_size", &page_size);
    return (pages - free_pages) * page_size;
}

/* Deletes free slots, largest first, until at most `keep` are left. On
 * failure they stay (and are tried again next time). Caller holds write_mu,
 * outside a transaction. */
static void slots_trim(store *s, size_t keep)
{
    if (s->free_total <= keep) return;
    slot_list doomed = {0};
    int rc = step_done(s->st.begin);
    for (uint32_t i = STORE_WAL_CLASSES; rc == SQLITE_OK && s->free_total > keep && i-- > 0;) {
        slot_list *l = &s->slots_free[i];
        while (rc == SQLITE_OK && l->n && s->free_total > keep) {
            wal_slot x = l->v[--l->n];
            s->free_total--;
            slot_list_push(&doomed, x);
            sqlite3_bind_int64(s->st.del_slot, 1, x.id);
            rc = step_done(s->st.del_slot);
        }
    }
    if (rc == SQLITE_OK) rc = step_done(s->st.commit);
    if (rc != SQLITE_OK) {
        log_warn(COMPONENT, "deleting free write-ahead slots failed: %s", sqlite3_errmsg(s->db));
        if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
        for (size_t i = 0; i < doomed.n; i++) slot_free_push(s, doomed.v[i]);
    }
    mem_free(doomed.v);
}

/* A consumer's cursor and dropped count after max_lag (store.h): rows from
 * its cursor on committed before now_ms - max_lag_ms are passed over and
 * their samples counted. Caller holds write_mu. */
static void consumer_lag(store *s, const wal_consumer *c, int64_t now_ms, uint64_t *next,
                         uint64_t *dropped)
{
    *next = c->next_seq;
    *dropped = c->dropped;
    if (c->max_lag_ms <= 0 || now_ms < INT64_MIN + c->max_lag_ms) return;
    int64_t cutoff = now_ms - c->max_lag_ms;
    for (size_t i = slot_used_find(s, c->next_seq); i < s->used_len; i++) {
        const wal_slot *x = slot_used_at(s, i);
        if (x->commit_ms >= cutoff) break;
        *dropped += x->nsamples;
        *next = x->seq + 1;
    }
}

/* Writes every closed chunk (and pending series) and truncates the
 * write-ahead table to the release point (the head's pin, lowered to the
 * consumers' cursors; with `lag`, cursors first move past rows older than
 * their max lag at now_ms). Caller holds write_mu. */
static int flush(store *s, bool close_all, bool lag, int64_t now_ms)
{
    if (close_all) {
        pthread_rwlock_wrlock(&s->head_lock);
        pthread_mutex_lock(&s->index_mu);
        series *se;
        FOR_EACH_SERIES(s, se) {
            if (se->open.count) close_open_chunk(s, se);
            if (se->hh) close_open_hchunk(s, se);
        }
        pthread_mutex_unlock(&s->index_mu);
        pthread_rwlock_unlock(&s->head_lock);
    }
    mchunk *to_write = s->unwritten;
    s->unwritten = s->unwritten_tail = NULL;
    series **taken = NULL;
    size_t ntaken = 0;
    if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
    int rc = step_done(s->st.begin);
    if (rc == SQLITE_OK) rc = write_pending_series(s, &taken, &ntaken);
    if (rc == SQLITE_OK) rc = write_chunks(s, to_write);
    uint64_t head_pin = wal_pin(s, false);
    /* Consumers' cursors moved by max_lag, written with the pin they allow. */
    uint64_t *cnext = mem_malloc((s->ncons ? s->ncons : 1) * sizeof *cnext);
    uint64_t *cdropped = mem_malloc((s->ncons ? s->ncons : 1) * sizeof *cdropped);
    uint64_t pin = head_pin;
    for (size_t i = 0; i < s->ncons; i++) {
        const wal_consumer *c = &s->cons[i];
        cnext[i] = c->next_seq;
        cdropped[i] = c->dropped;
        if (lag) consumer_lag(s, c, now_ms, &cnext[i], &cdropped[i]);
        if (rc == SQLITE_OK && cnext[i] != c->next_seq) {
            sqlite3_bind_text(s->st.set_consumer, 1, c->name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s->st.set_consumer, 2, (int64_t)cnext[i]);
            sqlite3_bind_int64(s->st.set_consumer, 3, (int64_t)cdropped[i]);
            rc = step_done(s->st.set_consumer);
        }
        if (cnext[i] < pin) pin = cnext[i];
    }
    if (rc == SQLITE_OK && pin > s->truncated_upto) rc = set_wal_pin(s, pin);
    if (rc == SQLITE_OK && head_pin > s->head_pinned) rc = set_wal_head(s, head_pin);
    if (rc == SQLITE_OK) rc = step_done(s->st.commit);
    if (rc == SQLITE_OK) {
        pthread_mutex_lock(&s->cons_mu);
        for (size_t i = 0; i < s->ncons; i++) {
            if (cnext[i] != s->cons[i].next_seq) {
                log_warn(COMPONENT,
                         "remote-write consumer %s lags more than %" PRId64
                         " ms: %" PRIu64 " samples of write-ahead rows %" PRIu64 "..%" PRIu64
                         " dropped",
                         s->cons[i].name, s->cons[i].max_lag_ms, cdropped[i] - s->cons[i].dropped,
                         s->cons[i].next_seq, cnext[i] - 1);
                s->cons[i].next_seq = cnext[i];
                s->cons[i].dropped = cdropped[i];
            }
        }
        pthread_mutex_unlock(&s->cons_mu);
        if (head_pin > s->head_pinned) s->head_pinned = head_pin;
    }
    mem_free(cnext);
    mem_free(cdropped);
    if (rc != SQLITE_OK) {
        log_error(COMPONENT, "writing chunks failed: %s", sqlite3_errmsg(s->db));
        if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
        requeue_series(s, taken, ntaken);
        if (to_write) {
            mchunk *last = to_write;
            while (last->gnext) last = last->gnext;
            last->gnext = s->unwritten;
            if (!s->unwritten) s->unwritten_tail = last;
            s->unwritten = to_write;
        }
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    rows_written(taken, ntaken);
    size_t nwritten = list_len(to_write);
    uint64_t seq = atomic_load(&s->commit_seq);
    pthread_rwlock_wrlock(&s->head_lock);
    mark_written(s, to_write, seq);
    release_retained(s);
    pthread_rwlock_unlock(&s->head_lock);
    atomic_fetch_add(&s->commit_seq, 1);
    if (pin > s->truncated_upto) {
        slots_release_below(s, pin);
        s->truncated_upto = pin;
    }
    /* Free slots beyond what the table needs go (all at close: everything
     * is in chunk rows then, and the table ends up empty). */
    slots_trim(s, close_all ? 0 : s->used_len > STORE_WAL_SPARE_SLOTS ? s->used_len : STORE_WAL_SPARE_SLOTS);
    s->commits_since_truncate = 0;
    pthread_mutex_lock(&s->stats_mu);
    s->stats.chunks_persisted += nwritten;
    s->stats.wal_rows = s->used_len;
    pthread_mutex_unlock(&s->stats_mu);
    return 0;
}

/* Time retention, then size retention. Caller holds write_mu. */
static int retention(store *s, int64_t now_ms)
{
    int rc = SQLITE_OK;
    if (s->retention_ms > 0 && now_ms > INT64_MIN + s->retention_ms)
        rc = delete_before(s, now_ms - s->retention_ms, NULL);
    /* Rows kept only for consumers (below the head's pin) do not count:
     * max_lag bounds them, and deleting chunks would not shrink them. */
    int64_t held = 0;
    for (size_t i = 0; s->retention_bytes > 0 && i < s->used_len; i++) {
        const wal_slot *x = slot_used_at(s, i);
        if (x->seq >= s->head_pinned) break;
        held += slot_capacity(x->cls);
    }
    /* Size: drop the oldest hour of chunks until the data fits. */
    for (int guard = 0; rc == SQLITE_OK && s->retention_bytes > 0 && guard < 100000; guard++) {
        if (used_bytes(s) - held <= s->retention_bytes) break;
        /* The oldest chunk rows, of every series (in memory or not). */
        int64_t oldest, first_end;
        if ((rc = oldest_chunks(s, 1, &oldest, &first_end)) != SQLITE_OK) break;
        if (oldest == INT64_MAX) break; /* only the head is left */
        uint64_t deleted = 0;
        rc = delete_before(s, oldest + STRUTIL_MS_PER_HOUR, &deleted);
        if (rc == SQLITE_OK && deleted == 0) {
            /* Nothing ended within that hour: widen the step. */
            rc = delete_before(s, oldest + 24 * STRUTIL_MS_PER_HOUR, &deleted);
            /* At least the chunk that ends first goes. */
            if (rc == SQLITE_OK && deleted == 0 && first_end < INT64_MAX)
                rc = delete_before(s, first_end + 1, &deleted);
            if (deleted == 0) break;
        }
        /* Free pages count only once vacuumed; reuse makes the file stop
         * growing, the vacuum below makes it shrink. */
        sqlite3_exec(s->db, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) log_error(COMPONENT, "retention failed: %s", sqlite3_errmsg(s->db));
    return rc == SQLITE_OK ? 0 : (sql_errno(rc) ? sql_errno(rc) : -EIO);
}

int store_apply_retention(store *s, int64_t now_ms)
{
    pthread_mutex_lock(&s->write_mu);
    int rc = retention(s, now_ms);
    pthread_mutex_unlock(&s->write_mu);
    recompute_time_range(s);
    return rc;
}

/* Deletes stored exemplars beyond the bound (after store_set_max_exemplars
 * lowered it). Caller holds write_mu, outside a transaction. */
static int exemplars_trim(store *s)
{
    pthread_mutex_lock(&s->stats_mu);
    uint64_t total = s->ex_total;
    pthread_mutex_unlock(&s->stats_mu);
    int64_t max = atomic_load(&s->max_ex);
    if (total <= (uint64_t)(max > 0 ? max : 0)) return 0;
    uint64_t *evicted = NULL;
    size_t nevicted = 0;
    if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
    int rc = step_done(s->st.begin);
    if (rc == SQLITE_OK) rc = exemplars_write(s, NULL, 0, &evicted, &nevicted);
    if (rc == SQLITE_OK) rc = step_done(s->st.commit);
    if (rc == SQLITE_OK) {
        exemplars_committed(s, NULL, 0, evicted, nevicted);
    } else {
        log_error(COMPONENT, "deleting exemplars beyond max_exemplars: %s", sqlite3_errmsg(s->db));
        if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
    }
    mem_free(evicted);
    return rc == SQLITE_OK ? 0 : (sql_errno(rc) ? sql_errno(rc) : -EIO);
}

void store_set_max_exemplars(store *s, int64_t max_exemplars)
{
    atomic_store(&s->max_ex, max_exemplars > 0 ? max_exemplars : 0);
}

bool store_exemplars_enabled(store *s)
{
    return atomic_load(&s->max_ex) > 0;
}

/* Whether a series' newest sample is a staleness marker (float, or the
 * histogram marker): its target or rule stopped producing it, and it gets
 * no more samples unless it comes back. Caller holds write_mu. */
static bool series_stale(const store *s, const series *se)
{
    if (!se->has_last || !se->last_v_known) return false;
    return se->last_hist ? se->last_v == s->stale_hash : strutil_is_stale_nan(bits_double(se->last_v));
}

/* Evicts the series that are fully written and idle (the top) from memory.
 * Caller holds write_mu, after a flush (which wrote what store_maintain
 * closed). */
static void evict_idle(store *s, int64_t now_ms)
{
    uint64_t n = 0;
    int64_t ev_maxt = INT64_MIN;
    pthread_rwlock_wrlock(&s->head_lock);
    pthread_mutex_lock(&s->index_mu);
    series *se;
    FOR_EACH_SERIES(s, se) {
        if (se->pending || se->open.count || (se->hh && se->hh->open.count) || se->chunks) continue;
        if (se->ex && se->ex->count) continue;
        /* (One that never got a sample goes after evict_idle_ms.) */
        int64_t idle = now_ms - se->active_ms;
        if (idle < s->evict_idle_ms && (idle < s->evict_stale_ms || !series_stale(s, se))) continue;
        index_del(s, se);
        if (se->hh) s->head_bytes -= sizeof *se->hh;
        if (se->has_data && se->persisted_max_t > ev_maxt) ev_maxt = se->persisted_max_t;
        series_free(se);
        n++;
    }
    pthread_mutex_unlock(&s->index_mu);
    pthread_rwlock_unlock(&s->head_lock);
    if (n) log_debug(COMPONENT, "evicted %" PRIu64 " idle series from memory", n);
    pthread_mutex_lock(&s->stats_mu);
    if (ev_maxt > s->ev_maxt) s->ev_maxt = ev_maxt;
    s->stats.series_evicted += n;
    pthread_mutex_unlock(&s->stats_mu);
}

int store_maintain(store *s, int64_t now_ms)
{
    pthread_mutex_lock(&s->write_mu);
    /* Close head chunks open for too long (also those of series that stopped
     * receiving samples), so they are written and stop pinning rows; and
     * those of series that went stale at once, so a churned series (a pod
     * replaced, a target gone) gives its head memory back within one
     * maintenance instead of after head_max_age_ms. */
    int64_t wall = wall_ms();
    pthread_rwlock_wrlock(&s->head_lock);
    pthread_mutex_lock(&s->index_mu); /* held: store_series_ref may add pages */
    series *se;
    FOR_EACH_SERIES(s, se) {
        /* Idle series too, so that they can be evicted. */
        bool done = series_stale(s, se) || now_ms - se->active_ms >= s->evict_idle_ms;
        if (se->open.count && (done || wall - se->open_since_ms >= s->head_max_age_ms))
            close_open_chunk(s, se);
        if (se->hh && se->hh->open.count && (done || wall - se->hh->open_since_ms >= s->head_max_age_ms))
            close_open_hchunk(s, se);
    }
    pthread_mutex_unlock(&s->index_mu);
    pthread_rwlock_unlock(&s->head_lock);
    int rc = flush(s, false, true, now_ms);
    if (rc == 0) evict_idle(s, now_ms);
    int rc2 = retention(s, now_ms);
    if (rc == 0) rc = rc2;
    rc2 = exemplars_trim(s);
    if (rc == 0) rc = rc2;
    /* Move SQLite's WAL into the database file and truncate it, waiting
     * only briefly for readers (a busy checkpoint is retried next time);
     * give free pages back once they are many. */
    sqlite3_busy_timeout(s->db, STORE_CHECKPOINT_WAIT_MS);
    if (sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL) != SQLITE_OK)
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    int64_t pages = 0, free_pages = 0;
    query_int(s->db, "PRAGMA page_count", &pages);
    query_int(s->db, "PRAGMA freelist_count", &free_pages);
    if (pages > 0 && (double)free_pages / (double)pages > STORE_VACUUM_FREE_RATIO)
        sqlite3_exec(s->db, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
    pthread_mutex_unlock(&s->write_mu);
    recompute_time_range(s);
    return rc;
}

void store_close(store *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->readers_mu);
    bool busy = s->readers != NULL;
    pthread_mutex_unlock(&s->readers_mu);
    if (busy) log_error(COMPONENT, "store_close with reader(s) still open");
    /* Write every chunk, open ones too, and empty the write-ahead table, so
     * the next start replays nothing. If this fails, the rows stay and are
     * replayed. */
    ckpt_stop(s);
    pthread_mutex_lock(&s->write_mu);
    s->closing = true;
    if (!s->no_flush && flush(s, true, false, 0) == 0)
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    pthread_mutex_unlock(&s->write_mu);
    free_all(s);
}

void store_get_stats(store *s, store_stats *out)
{
    pthread_mutex_lock(&s->stats_mu);
    *out = s->stats;
    bool empty = s->mint > s->maxt;
    out->min_time_ms = empty ? 0 : s->mint;
    out->max_time_ms = empty ? 0 : s->maxt;
    out->exemplars_in_storage = s->ex_total;
    out->series_with_exemplars = s->ex_series;
    out->max_exemplars = atomic_load(&s->max_ex);
    pthread_mutex_unlock(&s->stats_mu);
    pthread_rwlock_rdlock(&s->head_lock);
    pthread_mutex_lock(&s->index_mu);
    out->series = hmap_len(&s->by_labels);
    uint64_t open = 0;
    series *se;
    FOR_EACH_SERIES(s, se) {
        if (se->open.count) open++;
        if (se->hh && se->hh->open.count) open++;
    }
    pthread_mutex_unlock(&s->index_mu);
    out->head_chunks = open;
    out->head_memory_bytes = s->head_bytes;
    pthread_rwlock_unlock(&s->head_lock);
    out->size_bytes = 0;
    stat_add_size(s->db_path, &out->size_bytes);
    stat_add_size(s->wal_path, &out->size_bytes);
}

typedef struct idvec {
    int64_t *v;
    size_t n, cap;
} idvec;

static void idvec_push(idvec *x, int64_t id)
{
    x->v = mem_grow(x->v, sizeof *x->v, x->n + 1, &x->cap);
    x->v[x->n++] = id;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

/* The label-pair ids whose value the matcher accepts, and the number of
 * series carrying them. */
static int matcher_pairs(store_reader *r, const label_matcher *m, idvec *lvs, int64_t *total)
{
    *total = 0;
    lvs->n = 0;
    sqlite3_stmt *st;
    int rc;
    if (m->type == MATCH_EQ) {
        st = r->st.lv_eq;
        bind_bytes(st, 1, m->name, m->name_len);
        bind_bytes(st, 2, m->value, m->value_len);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            idvec_push(lvs, sqlite3_column_int64(st, 0));
            *total = sqlite3_column_int64(st, 1);
            rc = SQLITE_DONE;
        }
    } else {
        /* A regex with a literal prefix only needs the values in the
         * prefix's key range [prefix, prefix with its last byte + 1). */
        size_t plen = 0;
        const char *prefix = m->type == MATCH_RE ? regex_literal_prefix(m->re, &plen) : NULL;
        char upper[256];
        size_t ulen = plen < sizeof upper ? plen : 0;
        if (ulen) {
            memcpy(upper, prefix, ulen);
            while (ulen > 0 && (unsigned char)upper[ulen - 1] == 0xff) ulen--;
            if (ulen) upper[ulen - 1] = (char)((unsigned char)upper[ulen - 1] + 1);
        }
        if (ulen) {
            st = r->st.lv_range;
            bind_bytes(st, 1, m->name, m->name_len);
            bind_bytes(st, 2, prefix, plen);
            bind_bytes(st, 3, upper, ulen);
        } else {
            st = r->st.lv_name;
            bind_bytes(st, 1, m->name, m->name_len);
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *v;
            size_t len;
            column_bytes(st, 2, &v, &len);
            if (!labels_matcher_matches(m, v, len)) continue;
            idvec_push(lvs, sqlite3_column_int64(st, 0));
            *total += sqlite3_column_int64(st, 1);
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Candidate series ids (sorted) from the most selective matcher that does
 * not match the empty string. */
static int select_candidates(store_reader *r, const label_matcher *ms, size_t n, idvec *ids)
{
    idvec best = {0}, cur = {0};
    int64_t best_total = INT64_MAX;
    int rc = SQLITE_OK;
    /* Equality matchers first: cheap to estimate, and often decisive. */
    for (int pass = 0; pass < 2 && rc == SQLITE_OK; pass++) {
        if (pass == 1 && best_total <= STORE_SELECT_GOOD_ENOUGH) break;
        for (size_t i = 0; i < n; i++) {
            if ((ms[i].type == MATCH_EQ) != (pass == 0)) continue;
            if (labels_matcher_matches_empty(&ms[i])) continue;
            int64_t total;
            if ((rc = matcher_pairs(r, &ms[i], &cur, &total)) != SQLITE_OK) break;
            if (total < best_total) {
                idvec t = best;
                best = cur;
                cur = t;
                best_total = total;
            }
            if (total == 0) goto out;
        }
    }
    if (rc != SQLITE_OK || best_total == 0) goto out;
    for (size_t i = 0; i < best.n; i++) {
        sqlite3_stmt *st = r->st.postings;
        sqlite3_bind_int64(st, 1, best.v[i]);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            idvec_push(ids, sqlite3_column_int64(st, 0));
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) goto out;
        rc = SQLITE_OK;
    }
    /* A series has one value per name, so the lists are disjoint. */
    if (ids->n > 1) qsort(ids->v, ids->n, sizeof *ids->v, cmp_i64);
out:
    mem_free(best.v);
    mem_free(cur.v);
    return rc;
}

/* ---- readers --------------------------------------------------------------------------- */

static void reader_free(store_reader *r)
{
    sqlite3_stmt **stmts = (sqlite3_stmt **)&r->st;
    for (size_t i = 0; i < sizeof r->st / sizeof(sqlite3_stmt *); i++) sqlite3_finalize(stmts[i]);
    sqlite3_close(r->db);
    mem_free(r);
}

int store_reader_open(store *s, store_reader **out)
{
    static const struct {
        size_t off;
        const char *sql;
    } stmts[] = {
#define R(field, sql) {offsetof(store_reader, st.field), sql}
        R(begin, "BEGIN"),
        R(end, "COMMIT"),
        R(lv_eq, "SELECT id, series FROM label_values WHERE name = ?1 AND value = ?2"),
        R(lv_name, "SELECT id, series, value FROM label_values WHERE name = ?1"),
        R(lv_range, "SELECT id, series, value FROM label_values WHERE name = ?1 AND value >= ?2"
                    " AND value < ?3"),
        R(postings, "SELECT series_id FROM postings WHERE lv_id = ?1"),
        R(chunks, "SELECT min_t, max_t, data, enc, count FROM chunks WHERE series_id = ?1"
                  " AND max_t >= ?2 AND min_t <= ?3 ORDER BY max_t"),
        R(hchunks, "SELECT min_t, max_t, data, enc, count FROM chunks WHERE series_id = ?1"
                   " AND max_t >= ?2 AND min_t <= ?3 AND enc >= 2 ORDER BY max_t"),
        R(metadata, "SELECT type, help, unit FROM metadata WHERE metric = ?1"),
        R(names, "SELECT DISTINCT name FROM label_values ORDER BY name"),
        R(values, "SELECT value FROM label_values WHERE name = ?1 ORDER BY value"),
        R(touch, "SELECT 1 FROM meta LIMIT 1"),
        R(meta_all, "SELECT metric, type, help, unit FROM metadata ORDER BY metric"),
        R(lv_all, "SELECT name, value, series FROM label_values"),
        R(exemplars, "SELECT t, v, labels FROM exemplars WHERE series_id = ?1 AND t >= ?2"
                     " AND t <= ?3 ORDER BY t, id"),
        R(series_row, "SELECT labels FROM series WHERE id = ?1"),
        R(last_chunk, "SELECT max_t FROM chunks WHERE series_id = ?1 ORDER BY max_t DESC LIMIT 1"),
        R(series_info, "SELECT labels,"
                       " (SELECT min_t FROM chunks WHERE series_id = ?1 ORDER BY max_t LIMIT 1)"
                       " FROM series WHERE id = ?1"),
#undef R
    };
    *out = NULL;
    store_reader *r = mem_calloc(1, sizeof *r);
    r->s = s;
    int rc = sqlite3_open_v2(s->db_path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(r->db, STORE_BUSY_TIMEOUT_MS);
        /* Readers do not map the file (SQLite's mmap_size is 0, its
         * default): every page a mapping touched stays resident in the
         * process for as long as the mapping lives, so pooled readers made
         * file-backed memory grow with the database (the soak: 15 -> 36 MiB
         * in 10 minutes, and still 15 -> 24 MiB when each mapping was
         * renewed every minute). Pages come from the OS cache into the
         * connection's bounded page cache instead; see bench/README.md
         * "Soak" for what it costs queries. */
        rc = sqlite3_exec(r->db, "PRAGMA mmap_size=0", NULL, NULL, NULL);
        for (size_t i = 0; i < sizeof stmts / sizeof stmts[0] && rc == SQLITE_OK; i++)
            rc = prepare(r->db, stmts[i].sql, (sqlite3_stmt **)((char *)r + stmts[i].off));
    }
    if (rc != SQLITE_OK) {
        log_error(COMPONENT, "opening a reader on %s: %s", s->db_path,
                  r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
        reader_free(r);
        return sql_errno(rc);
    }
    pthread_mutex_lock(&s->readers_mu);
    r->next = s->readers;
    s->readers = r;
    pthread_mutex_unlock(&s->readers_mu);
    *out = r;
    return 0;
}

void store_reader_close(store_reader *r)
{
    if (!r) return;
    store *s = r->s;
    pthread_mutex_lock(&s->readers_mu);
    for (store_reader **pp = &s->readers; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    pthread_mutex_unlock(&s->readers_mu);
    reader_free(r);
}

/* Registers a read: chunks written from now on stay in memory until
 * unregister. Must happen before the SQLite snapshot starts. */
static void reader_register(store_reader *r)
{
    pthread_mutex_lock(&r->s->readers_mu);
    r->snap_seq = atomic_load(&r->s->commit_seq);
    r->visible = atomic_load(&r->s->last_wal_seq);
    pthread_mutex_unlock(&r->s->readers_mu);
}

static void reader_unregister(store_reader *r)
{
    pthread_mutex_lock(&r->s->readers_mu);
    r->snap_seq = 0;
    pthread_mutex_unlock(&r->s->readers_mu);
}

/* A read transaction, so one call sees one snapshot, unless the caller holds
 * one. */
static int reader_begin(store_reader *r)
{
    if (r->snapshot) return SQLITE_OK;
    reader_register(r);
    int rc = step_done(r->st.begin);
    if (rc == SQLITE_OK) { /* a first read starts the snapshot now */
        rc = sqlite3_step(r->st.touch);
        sqlite3_reset(r->st.touch);
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc != SQLITE_OK) reader_unregister(r);
    return rc;
}

static void reader_end(store_reader *r)
{
    if (r->snapshot) return;
    if (!sqlite3_get_autocommit(r->db)) step_done(r->st.end);
    reader_unregister(r);
}

int store_reader_begin(store_reader *r)
{
    if (r->snapshot) return -EINVAL;
    int rc = reader_begin(r);
    if (rc != SQLITE_OK) {
        log_error(COMPONENT, "starting a read snapshot: %s", sqlite3_errmsg(r->db));
        return sql_errno(rc);
    }
    r->snapshot = true;
    return 0;
}

void store_reader_end(store_reader *r)
{
    if (!r->snapshot) return;
    r->snapshot = false;
    reader_end(r);
}

/* Encoded labels copied out of a series while index_mu is held, decoded
 * after it is released (commits wait for index_mu). */
typedef struct lenc_copy {
    uint8_t small[512];
    uint8_t *p;
    uint32_t len;
} lenc_copy;

static void lenc_copy_take(lenc_copy *c, const series *se)
{
    c->len = se->lenc_len;
    c->p = c->len <= sizeof c->small ? c->small : mem_malloc(c->len);
    memcpy(c->p, se->lenc, c->len);
}

static labels *lenc_copy_decode(lenc_copy *c)
{
    labels *ls = NULL;
    if (labels_decode(c->p, c->len, &ls) < 0) ls = NULL;
    if (c->p != c->small) mem_free(c->p);
    return ls;
}

/* Decodes the labels of a series in memory into *ls (NULL if they do not
 * decode); false if the series is not in memory. */
static bool resident_labels(store *s, uint64_t id, labels **ls)
{
    *ls = NULL;
    lenc_copy lc;
    pthread_mutex_lock(&s->index_mu);
    series *se = series_at(s, id);
    if (se) lenc_copy_take(&lc, se);
    pthread_mutex_unlock(&s->index_mu);
    if (se) *ls = lenc_copy_decode(&lc);
    return se != NULL;
}


/* The labels of a series row through st (SELECT labels ... WHERE id = ?1),
 * or NULL (none, or an error: logged). */
static labels *row_labels(sqlite3 *db, sqlite3_stmt *st, int64_t id)
{
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    labels *ls = NULL;
    if (rc == SQLITE_ROW) {
        const char *p;
        size_t len;
        column_bytes(st, 0, &p, &len);
        if (labels_decode(p, len, &ls) < 0) ls = NULL;
    } else if (rc != SQLITE_DONE) {
        log_error(COMPONENT, "reading series %" PRId64 ": %s", id, sqlite3_errmsg(db));
    }
    sqlite3_reset(st);
    return ls;
}

/* The labels of a series: from memory, or (not in memory) from the
 * reader's snapshot. */
static labels *series_labels(store_reader *r, int64_t id)
{
    labels *ls;
    if (resident_labels(r->s, (uint64_t)id, &ls)) return ls;
    return row_labels(r->db, r->st.series_row, id);
}

/* Whether a series may have samples in [mint, maxt] (*yes): its stored
 * range, chunk-granular (retention drops whole chunks); and then its labels
 * (*ls, NULL if they do not decode). For a series not in memory, the same
 * range from its chunk rows in the reader's snapshot (all its samples are
 * there): the end of the newest, the start of the one that ends first, as
 * series_load_range would set it: one seek for a series that ended before
 * mint (most of those a query meets), then its start and labels in one
 * statement. Returns an SQLite code. */
static int series_in_range(store_reader *r, int64_t id, int64_t mint, int64_t maxt, bool *yes,
                           labels **ls)
{
    store *s = r->s;
    *yes = false;
    *ls = NULL;
    lenc_copy lc;
    pthread_rwlock_rdlock(&s->head_lock);
    pthread_mutex_lock(&s->index_mu);
    series *se = series_at(s, (uint64_t)id);
    if (se) {
        *yes = se->has_data && se->has_last && se->min_t <= maxt && se->last_t >= mint;
        if (*yes) lenc_copy_take(&lc, se);
    }
    pthread_mutex_unlock(&s->index_mu);
    pthread_rwlock_unlock(&s->head_lock);
    if (se) {
        if (*yes) *ls = lenc_copy_decode(&lc);
        return SQLITE_OK;
    }
    sqlite3_stmt *st = r->st.last_chunk;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    bool maybe = rc == SQLITE_ROW && sqlite3_column_int64(st, 0) >= mint;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
    if (!maybe) return SQLITE_OK;
    st = r->st.series_info;
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 1) != SQLITE_NULL &&
        sqlite3_column_int64(st, 1) <= maxt) {
        *yes = true;
        const char *p;
        size_t len;
        column_bytes(st, 0, &p, &len);
        if (labels_decode(p, len, ls) < 0) *ls = NULL;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int cmp_series(const void *x, const void *y)
{
    return labels_compare(((const store_series *)x)->labels, ((const store_series *)y)->labels);
}

static bool selectable(const label_matcher *ms, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!labels_matcher_matches_empty(&ms[i])) return true;
    }
    return false;
}

int store_select(store_reader *r, const label_matcher *ms, size_t n, int64_t mint, int64_t maxt,
                 store_select_result *out)
{
    out->series = NULL;
    out->n = 0;
    if (!selectable(ms, n)) return -EINVAL;
    if (mint > maxt) return 0;
    idvec ids = {0};
    size_t cap = 0;
    int rc = reader_begin(r);
    if (rc == SQLITE_OK) rc = select_candidates(r, ms, n, &ids);
    for (size_t i = 0; i < ids.n && rc == SQLITE_OK; i++) {
        bool in;
        labels *ls;
        if ((rc = series_in_range(r, ids.v[i], mint, maxt, &in, &ls)) != SQLITE_OK || !ls) continue;
        if (!labels_match_all(ls, ms, n)) {
            labels_free(ls);
            continue;
        }
        out->series = mem_grow(out->series, sizeof *out->series, out->n + 1, &cap);
        out->series[out->n].ref = (uint64_t)ids.v[i];
        out->series[out->n].labels = ls;
        out->n++;
    }
    if (rc != SQLITE_OK) log_error(COMPONENT, "select: %s", sqlite3_errmsg(r->db));
    reader_end(r);
    mem_free(ids.v);
    if (rc != SQLITE_OK) {
        store_select_result_free(out);
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    if (out->n > 1) qsort(out->series, out->n, sizeof *out->series, cmp_series);
    return 0;
}

/* ---- exemplars ------------------------------------------------------------------ */

static int cmp_exemplar_series(const void *x, const void *y)
{
    const store_exemplar_series *a = x, *b = y;
    return labels_compare(a->labels, b->labels);
}

/* Reads series id's exemplars in [start, end] into *x (x->n 0: none). */
static int exemplars_read(store_reader *r, int64_t id, int64_t start, int64_t end,
                          store_exemplar_series *x)
{
    sqlite3_stmt *st = r->st.exemplars;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, start);
    sqlite3_bind_int64(st, 3, end);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *p;
        size_t len;
        column_bytes(st, 2, &p, &len);
        labels *ls = NULL;
        if (labels_decode(p, len, &ls) < 0) {
            log_error(COMPONENT, "series %" PRId64 ": an exemplar's labels do not decode", id);
            continue;
        }
        x->ex = mem_grow(x->ex, sizeof *x->ex, x->n + 1, &cap);
        x->ex[x->n++] = (store_exemplar){.labels = ls,
                                         .t = sqlite3_column_int64(st, 0),
                                         .v = bits_double((uint64_t)sqlite3_column_int64(st, 1))};
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int store_exemplars_select(store_reader *r, const label_matcher *const *sets, const size_t *lens,
                           size_t nsets, int64_t start, int64_t end, store_exemplar_series **out,
                           size_t *n)
{
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < nsets; i++)
        if (!selectable(sets[i], lens[i])) return -EINVAL;
    if (atomic_load(&r->s->max_ex) <= 0 || start > end || nsets == 0) return 0;
    idvec all = {0};
    int rc = reader_begin(r);
    for (size_t i = 0; i < nsets && rc == SQLITE_OK; i++) {
        idvec ids = {0};
        rc = select_candidates(r, sets[i], lens[i], &ids);
        for (size_t k = 0; k < ids.n && rc == SQLITE_OK; k++) {
            labels *ls = series_labels(r, ids.v[k]);
            if (ls && labels_match_all(ls, sets[i], lens[i])) idvec_push(&all, ids.v[k]);
            labels_free(ls);
        }
        mem_free(ids.v);
    }
    if (all.n > 1) qsort(all.v, all.n, sizeof *all.v, cmp_i64);
    store_exemplar_series *res = NULL;
    size_t nres = 0, cap = 0;
    for (size_t i = 0; i < all.n && rc == SQLITE_OK; i++) {
        if (i > 0 && all.v[i] == all.v[i - 1]) continue;
        store_exemplar_series x = {0};
        rc = exemplars_read(r, all.v[i], start, end, &x);
        if (x.n && rc == SQLITE_OK) x.labels = series_labels(r, all.v[i]);
        if (!x.labels) {
            for (size_t k = 0; k < x.n; k++)
                labels_free(x.ex[k].labels);
            mem_free(x.ex);
            continue;
        }
        res = mem_grow(res, sizeof *res, nres + 1, &cap);
        res[nres++] = x;
    }
    if (rc != SQLITE_OK) log_error(COMPONENT, "exemplars: %s", sqlite3_errmsg(r->db));
    reader_end(r);
    mem_free(all.v);
    if (rc != SQLITE_OK) {
        store_exemplar_series_free(res, nres);
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    if (nres > 1) qsort(res, nres, sizeof *res, cmp_exemplar_series);
    *out = res;
    *n = nres;
    return 0;
}

void store_exemplar_series_free(store_exemplar_series *x, size_t n)
{
    if (!x) return;
    for (size_t i = 0; i < n; i++) {
        labels_free(x[i].labels);
        for (size_t k = 0; k < x[i].n; k++)
            labels_free(x[i].ex[k].labels);
        mem_free(x[i].ex);
    }
    mem_free(x);
}

void store_select_result_free(store_select_result *res)
{
    if (!res) return;
    for (size_t i = 0; i < res->n; i++) labels_free(res->series[i].labels);
    mem_free(res->series);
    res->series = NULL;
    res->n = 0;
}

typedef struct sample_vec {
    store_sample *v;
    size_t n, cap;
    bool sorted; /* every sample so far was newer than the previous one */
} sample_vec;

/* Decodes a chunk's samples within [mint, maxt] into out. Returns 0 or
 * -EINVAL for a corrupt chunk (what decoded before the damage is kept). */
static int decode_into(int enc, const uint8_t *data, size_t len, int64_t mint, int64_t maxt,
                       sample_vec *out)
{
    chunk_iter it;
    if (chunkenc_iter_init_enc(&it, (enum chunkenc_encoding)enc, data, len) < 0) return -EINVAL;
    int64_t t;
    double v;
    int rc;
    while ((rc = chunkenc_iter_next(&it, &t, &v)) == 1) {
        if (t < mint) continue;
        if (t > maxt) break;
        if (out->n && t <= out->v[out->n - 1].t) out->sorted = false;
        if (out->n == out->cap) out->v = mem_grow(out->v, sizeof *out->v, out->n + 1, &out->cap);
        out->v[out->n].t = t;
        out->v[out->n].v = v;
        out->n++;
    }
    return rc < 0 ? -EINVAL : 0;
}

static int cmp_sample(const void *x, const void *y)
{
    int64_t a = ((const store_sample *)x)->t, b = ((const store_sample *)y)->t;
    return a < b ? -1 : a > b;
}

/* A copy of a series' in-memory chunks overlapping [mint, maxt]. */
typedef struct head_copy {
    buf data;      /* concatenated chunk bytes */
    size_t *lens;  /* per chunk */
    size_t n, cap;
} head_copy;

/* Also returns, in *hide_from, the first timestamp the reader must not see:
 * the series' last batch, if it was committed after the reader registered
 * (isolation: a read sees whole batches). Only the last batch per series is
 * tracked; a read that lasts longer than two of a series' batches may see
 * the older one. */
static void copy_head(store *s, uint64_t ref, uint64_t visible, int64_t mint, int64_t maxt,
                      head_copy *hc, bool *hide, int64_t *hide_from, bool hist)
{
    *hide = false;
    *hide_from = 0;
    /* Looked up under head_lock: eviction (which takes it for writing)
     * cannot free the series while it is copied. */
    pthread_rwlock_rdlock(&s->head_lock);
    pthread_mutex_lock(&s->index_mu);
    series *se = series_at(s, ref);
    pthread_mutex_unlock(&s->index_mu);
    if (!se) { /* not in memory: everything is in chunk rows */
        pthread_rwlock_unlock(&s->head_lock);
        return;
    }
    *hide = se->batch_seq > visible;
    *hide_from = se->batch_first_t;
    for (mchunk *c = se->chunks; c; c = c->next) {
        if (c->max_t < mint || c->min_t > maxt) continue;
        if ((c->enc >= CHUNKENC_HISTOGRAM) != hist) continue;
        buf_append(&hc->data, c->data, c->len);
        hc->lens = mem_grow(hc->lens, sizeof *hc->lens, hc->n + 1, &hc->cap);
        hc->lens[hc->n++] = c->len;
    }
    if (hist) {
        hhead *hh = se->hh;
        if (hh && hh->open.count && hh->open.t >= mint && hh->open_min_t <= maxt) {
            size_t len;
            const uint8_t *bytes = histchunk_bytes(&hh->open, &len);
            buf_append(&hc->data, bytes, len);
            hc->lens = mem_grow(hc->lens, sizeof *hc->lens, hc->n + 1, &hc->cap);
            hc->lens[hc->n++] = len;
        }
    } else if (se->open.count && se->open.t >= mint && se->open_min_t <= maxt) {
        size_t len;
        const uint8_t *bytes = chunkenc_bytes(&se->open, &len);
        buf_append(&hc->data, bytes, len);
        hc->lens = mem_grow(hc->lens, sizeof *hc->lens, hc->n + 1, &hc->cap);
        hc->lens[hc->n++] = len;
    }
    pthread_rwlock_unlock(&s->head_lock);
}

int store_read_samples(store_reader *r, uint64_t ref, int64_t mint, int64_t maxt,
                       store_sample **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (mint > maxt) return 0;
    store *s = r->s;
    int rc = reader_begin(r);
    if (rc != SQLITE_OK) {
        log_error(COMPONENT, "reading samples: %s", sqlite3_errmsg(r->db));
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    sample_vec sv = {.sorted = true};
    uint64_t corrupt = 0;
    /* Chunk rows first (the snapshot started at registration), then the
     * head: a chunk written meanwhile is still in memory, see the top. */
    sqlite3_stmt *st = r->st.chunks;
    sqlite3_bind_int64(st, 1, (int64_t)ref);
    sqlite3_bind_int64(st, 2, mint);
    sqlite3_bind_int64(st, 3, maxt);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (__builtin_expect(sqlite3_column_int(st, 3) >= CHUNKENC_HISTOGRAM, 0))
            continue; /* store_read_histograms' */
        /* Room for the chunk's samples in the window, estimated from its
         * span: one allocation instead of a doubling series per read. */
        int64_t count = sqlite3_column_int64(st, 4);
        int64_t cmin = sqlite3_column_int64(st, 0), cmax = sqlite3_column_int64(st, 1);
        if (count > 0 && count <= CHUNKENC_MAX_SAMPLES && cmax >= cmin) {
            double lo = (double)(cmin > mint ? cmin : mint), hi = (double)(cmax < maxt ? cmax : maxt);
            double span = (double)cmax - (double)cmin;
            size_t want = span > 0 ? (size_t)((hi - lo) / span * (double)count) + 2 : (size_t)count;
            if (want > (size_t)count) want = (size_t)count;
            if (sv.n + want > sv.cap) sv.v = mem_grow(sv.v, sizeof *sv.v, sv.n + want, &sv.cap);
        }
        const void *d = sqlite3_column_blob(st, 2);
        if (decode_into(sqlite3_column_int(st, 3), d, (size_t)sqlite3_column_bytes(st, 2), mint, maxt,
                        &sv) < 0)
            corrupt++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        log_error(COMPONENT, "reading chunks: %s", sqlite3_errmsg(r->db));
        reader_end(r);
        mem_free(sv.v);
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    head_copy hc = {0};
    buf_init(&hc.data, BUF_UNLIMITED);
    int64_t hide_from;
    bool hide;
    copy_head(s, ref, r->visible, mint, maxt, &hc, &hide, &hide_from, false);
    reader_end(r);
    size_t off = 0;
    for (size_t i = 0; i < hc.n; i++) {
        if (decode_into(CHUNKENC_XOR, (const uint8_t *)hc.data.data + off, hc.lens[i], mint, maxt,
                        &sv) < 0)
            corrupt++;
        off += hc.lens[i];
    }
    buf_cleanup(&hc.data);
    mem_free(hc.lens);
    if (corrupt) {
        log_error(COMPONENT, "series %" PRIu64 ": %" PRIu64 " corrupt chunk(s) skipped", ref, corrupt);
        pthread_mutex_lock(&s->stats_mu);
        s->stats.corrupt_chunks += corrupt;
        pthread_mutex_unlock(&s->stats_mu);
    }
    /* A chunk may be seen twice (written while this read ran) or overlap
     * another (backfill): sort if needed, then keep one sample per
     * timestamp. */
    if (!sv.sorted && sv.n > 1) {
        qsort(sv.v, sv.n, sizeof *sv.v, cmp_sample);
    }
    size_t k = 0;
    for (size_t i = 0; i < sv.n; i++) {
        if (hide && sv.v[i].t >= hide_from) break;
        if (k && sv.v[k - 1].t == sv.v[i].t) continue;
        sv.v[k++] = sv.v[i];
    }
    *out = sv.v;
    *n = k;
    return 0;
}

typedef struct hsample_vec {
    store_hsample *v;
    size_t n, cap;
    bool sorted;
} hsample_vec;

/* Decodes a histogram chunk's samples within [mint, maxt] into out; enc is
 * what the chunk must be (-1: either). Returns 0 or -EINVAL for a corrupt
 * chunk (what decoded before the damage is kept). */
static int decode_hist_into(int enc, const uint8_t *data, size_t len, int64_t mint, int64_t maxt,
                            hsample_vec *out)
{
    if (len > 2 && enc >= 0 && histchunk_enc(data, len) != enc) return -EINVAL;
    histchunk_iter it;
    if (histchunk_iter_init(&it, data, len) < 0) return -EINVAL;
    int64_t t;
    nhist h;
    nhist_init(&h);
    int rc;
    while ((rc = histchunk_iter_next(&it, &t, &h)) == 1) {
        if (t < mint) continue;
        if (t > maxt) break;
        if (out->n && t <= out->v[out->n - 1].t) out->sorted = false;
        if (out->n == out->cap) out->v = mem_grow(out->v, sizeof *out->v, out->n + 1, &out->cap);
        out->v[out->n].t = t;
        out->v[out->n].h = h; /* moved */
        nhist_init(&h);
        out->n++;
    }
    nhist_cleanup(&h);
    histchunk_iter_cleanup(&it);
    return rc < 0 ? -EINVAL : 0;
}

static int cmp_hsample(const void *x, const void *y)
{
    int64_t a = ((const store_hsample *)x)->t, b = ((const store_hsample *)y)->t;
    return a < b ? -1 : a > b;
}

void store_hsamples_free(store_hsample *v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) nhist_cleanup(&v[i].h);
    mem_free(v);
}

int store_read_histograms(store_reader *r, uint64_t ref, int64_t mint, int64_t maxt,
                          store_hsample **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (mint > maxt) return 0;
    store *s = r->s;
    int rc = reader_begin(r);
    if (rc != SQLITE_OK) {
        log_error(COMPONENT, "reading histograms: %s", sqlite3_errmsg(r->db));
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    hsample_vec hv = {.sorted = true};
    uint64_t corrupt = 0;
    /* As store_read_samples: chunk rows, then the head. */
    sqlite3_stmt *st = r->st.hchunks;
    sqlite3_bind_int64(st, 1, (int64_t)ref);
    sqlite3_bind_int64(st, 2, mint);
    sqlite3_bind_int64(st, 3, maxt);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const void *d = sqlite3_column_blob(st, 2);
        if (decode_hist_into(sqlite3_column_int(st, 3), d, (size_t)sqlite3_column_bytes(st, 2), mint,
                             maxt, &hv) < 0)
            corrupt++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        log_error(COMPONENT, "reading histogram chunks: %s", sqlite3_errmsg(r->db));
        reader_end(r);
        store_hsamples_free(hv.v, hv.n);
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    head_copy hc = {0};
    buf_init(&hc.data, BUF_UNLIMITED);
    int64_t hide_from;
    bool hide;
    copy_head(s, ref, r->visible, mint, maxt, &hc, &hide, &hide_from, true);
    reader_end(r);
    size_t off = 0;
    for (size_t i = 0; i < hc.n; i++) {
        if (decode_hist_into(-1, (const uint8_t *)hc.data.data + off, hc.lens[i], mint, maxt, &hv) < 0)
            corrupt++;
        off += hc.lens[i];
    }
    buf_cleanup(&hc.data);
    mem_free(hc.lens);
    if (corrupt) {
        log_error(COMPONENT, "series %" PRIu64 ": %" PRIu64 " corrupt histogram chunk(s) skipped", ref,
                  corrupt);
        pthread_mutex_lock(&s->stats_mu);
        s->stats.corrupt_chunks += corrupt;
        pthread_mutex_unlock(&s->stats_mu);
    }
    if (!hv.sorted && hv.n > 1) qsort(hv.v, hv.n, sizeof *hv.v, cmp_hsample);
    size_t k = 0;
    for (size_t i = 0; i < hv.n; i++) {
        if ((hide && hv.v[i].t >= hide_from) || (k && hv.v[k - 1].t == hv.v[i].t)) {
            nhist_cleanup(&hv.v[i].h);
            continue;
        }
        hv.v[k++] = hv.v[i];
    }
    if (k == 0) {
        mem_free(hv.v);
        hv.v = NULL;
    }
    *out = hv.v;
    *n = k;
    return 0;
}

int store_get_metadata(store_reader *r, const char *metric, enum expfmt_type *type, char **help,
                       char **unit)
{
    sqlite3_stmt *st = r->st.metadata;
    sqlite3_bind_text(st, 1, metric, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int ret;
    if (rc == SQLITE_ROW) {
        if (type) *type = type_from_name((const char *)sqlite3_column_text(st, 0));
        if (help) *help = mem_strdup((const char *)sqlite3_column_text(st, 1));
        if (unit) *unit = mem_strdup((const char *)sqlite3_column_text(st, 2));
        ret = 0;
    } else if (rc == SQLITE_DONE) {
        ret = -ENOENT;
    } else {
        log_error(COMPONENT, "reading metadata: %s", sqlite3_errmsg(r->db));
        ret = sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    sqlite3_reset(st);
    return ret;
}

int store_metadata_list(store_reader *r, store_metadata **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int rc = reader_begin(r);
    if (rc != SQLITE_OK) {
        log_error(COMPONENT, "reading metadata: %s", sqlite3_errmsg(r->db));
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    sqlite3_stmt *st = r->st.meta_all;
    store_metadata *v = NULL;
    size_t len = 0, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        v = mem_grow(v, sizeof *v, len + 1, &cap);
        v[len].metric = mem_strdup((const char *)sqlite3_column_text(st, 0));
        v[len].type = type_from_name((const char *)sqlite3_column_text(st, 1));
        v[len].help = mem_strdup((const char *)sqlite3_column_text(st, 2));
        v[len].unit = mem_strdup((const char *)sqlite3_column_text(st, 3));
        len++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) log_error(COMPONENT, "reading metadata: %s", sqlite3_errmsg(r->db));
    reader_end(r);
    if (rc != SQLITE_DONE) {
        store_metadata_free(v, len);
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    *out = v;
    *n = len;
    return 0;
}

void store_metadata_free(store_metadata *m, size_t n)
{
    if (!m) return;
    for (size_t i = 0; i < n; i++) {
        mem_free(m[i].metric);
        mem_free(m[i].help);
        mem_free(m[i].unit);
    }
    mem_free(m);
}

/* ---- index statistics ------------------------------------------------------------------ */

/* The `limit` largest entries seen (a bounded selection; names copied only
 * when they enter). */
typedef struct topk {
    store_stat *v;
    size_t n, limit;
    size_t min; /* index of the smallest entry once full */
} topk;

static int cmp_stat(const void *x, const void *y)
{
    const store_stat *a = x, *b = y;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* Whether (count, name) ranks above the entry e (higher count, then the
 * smaller name). */
static bool stat_above(uint64_t count, const char *name, size_t len, const store_stat *e)
{
    if (count != e->count) return count > e->count;
    size_t el = strlen(e->name);
    int c = memcmp(name, e->name, len < el ? len : el);
    return c ? c < 0 : len < el;
}

static void topk_push(topk *t, const char *name, size_t len, uint64_t count)
{
    if (t->limit == 0) return;
    if (t->n < t->limit) {
        t->v[t->n].name = mem_strndup(name, len);
        t->v[t->n].count = count;
        t->n++;
    } else {
        if (!stat_above(count, name, len, &t->v[t->min])) return;
        mem_free(t->v[t->min].name);
        t->v[t->min].name = mem_strndup(name, len);
        t->v[t->min].count = count;
    }
    if (t->n == t->limit) { /* find the new smallest */
        t->min = 0;
        for (size_t i = 1; i < t->n; i++) {
            const store_stat *e = &t->v[i];
            if (!stat_above(e->count, e->name, strlen(e->name), &t->v[t->min])) t->min = i;
        }
    }
}

static void topk_finish(topk *t, store_stat **out, size_t *n)
{
    if (t->n > 1) qsort(t->v, t->n, sizeof *t->v, cmp_stat);
    *out = t->v;
    *n = t->n;
}

/* Bytes of a string with its varint length prefix. */
static uint64_t varint_string_size(size_t len)
{
    uint64_t n = 1;
    for (size_t x = len; x >= 0x80; x >>= 7)
        n++;
    return n + len;
}

/* Per label name: distinct values and estimated bytes. */
typedef struct name_stat {
    char *name;
    size_t len;
    uint64_t values, bytes;
} name_stat;

static bool name_stat_eq(const void *val, const void *key)
{
    const name_stat *ns = val;
    const store_string *k = key;
    return ns->len == k->len && memcmp(ns->name, k->p, k->len) == 0;
}

int store_index_stats_get(store_reader *r, size_t limit, store_index_stats *out)
{
    memset(out, 0, sizeof *out);
    topk metrics = {.limit = limit}, pairs = {.limit = limit};
    metrics.v = mem_calloc(limit + 1, sizeof *metrics.v);
    pairs.v = mem_calloc(limit + 1, sizeof *pairs.v);
    hmap names;
    hmap_init(&names);
    name_stat **all = NULL;
    size_t n_all = 0, cap_all = 0;
    buf pair;
    buf_init(&pair, BUF_UNLIMITED);

    int rc = reader_begin(r);
    if (rc == SQLITE_OK) {
        sqlite3_stmt *st = r->st.lv_all;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *name, *value;
            size_t nlen, vlen;
            column_bytes(st, 0, &name, &nlen);
            column_bytes(st, 1, &value, &vlen);
            uint64_t series = (uint64_t)sqlite3_column_int64(st, 2);
            out->num_label_pairs++;
            store_string key = {(char *)name, nlen};
            uint64_t h = strutil_hash64(name, nlen, 0);
            name_stat *ns = hmap_get(&names, h, name_stat_eq, &key);
            if (!ns) {
                ns = mem_calloc(1, sizeof *ns);
                ns->name = mem_strndup(name, nlen);
                ns->len = nlen;
                hmap_put(&names, h, ns);
                all = mem_grow(all, sizeof *all, n_all + 1, &cap_all);
                all[n_all++] = ns;
            }
            ns->values++;
            ns->bytes += (varint_string_size(nlen) + varint_string_size(vlen)) * series;
            if (nlen == 8 && memcmp(name, LABELS_METRIC_NAME, 8) == 0)
                topk_push(&metrics, value, vlen, series);
            buf_reset(&pair);
            buf_append(&pair, name, nlen);
            buf_putc(&pair, '=');
            buf_append(&pair, value, vlen);
            topk_push(&pairs, pair.data, pair.len, series);
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) log_error(COMPONENT, "index stats: %s", sqlite3_errmsg(r->db));
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        reader_end(r);
    } else {
        log_error(COMPONENT, "index stats: %s", sqlite3_errmsg(r->db));
    }
    buf_cleanup(&pair);
    topk values = {.limit = limit}, bytes = {.limit = limit};
    values.v = mem_calloc(limit + 1, sizeof *values.v);
    bytes.v = mem_calloc(limit + 1, sizeof *bytes.v);
    for (size_t i = 0; i < n_all; i++) {
        topk_push(&values, all[i]->name, all[i]->len, all[i]->values);
        topk_push(&bytes, all[i]->name, all[i]->len, all[i]->bytes);
        mem_free(all[i]->name);
        mem_free(all[i]);
    }
    mem_free(all);
    hmap_cleanup(&names);
    topk_finish(&metrics, &out->series_by_metric, &out->n_series_by_metric);
    topk_finish(&values, &out->values_by_label, &out->n_values_by_label);
    topk_finish(&bytes, &out->bytes_by_label, &out->n_bytes_by_label);
    topk_finish(&pairs, &out->series_by_pair, &out->n_series_by_pair);
    if (rc != SQLITE_OK) {
        store_index_stats_free(out);
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    return 0;
}

static void stats_list_free(store_stat *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mem_free(v[i].name);
    mem_free(v);
}

void store_index_stats_free(store_index_stats *s)
{
    if (!s) return;
    stats_list_free(s->series_by_metric, s->n_series_by_metric);
    stats_list_free(s->values_by_label, s->n_values_by_label);
    stats_list_free(s->bytes_by_label, s->n_bytes_by_label);
    stats_list_free(s->series_by_pair, s->n_series_by_pair);
    memset(s, 0, sizeof *s);
}

/* ---- label names and values ---------------------------------------------------------- */

static void strings_push(store_strings *s, size_t *cap, const char *p, size_t len)
{
    s->v = mem_grow(s->v, sizeof *s->v, s->n + 1, cap);
    s->v[s->n].p = mem_strndup(p, len);
    s->v[s->n].len = len;
    s->n++;
}

static int cmp_string(const void *x, const void *y)
{
    const store_string *a = x, *b = y;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->p, b->p, n);
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

static void strings_sort_unique(store_strings *s)
{
    if (s->n < 2) return;
    qsort(s->v, s->n, sizeof *s->v, cmp_string);
    size_t k = 1;
    for (size_t i = 1; i < s->n; i++) {
        if (cmp_string(&s->v[k - 1], &s->v[i]) == 0)
            mem_free(s->v[i].p);
        else
            s->v[k++] = s->v[i];
    }
    s->n = k;
}

void store_strings_free(store_strings *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++)
        mem_free(s->v[i].p);
    mem_free(s->v);
    s->v = NULL;
    s->n = 0;
}

/* Without matchers: every name (name == NULL) or every value of `name` in
 * the index. */
static int index_strings(store_reader *r, const char *name, size_t name_len, store_strings *out)
{
    sqlite3_stmt *st = name ? r->st.values : r->st.names;
    if (name) bind_bytes(st, 1, name, name_len);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *p;
        size_t len;
        column_bytes(st, 0, &p, &len);
        strings_push(out, &cap, p, len);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        log_error(COMPONENT, "reading the label index: %s", sqlite3_errmsg(r->db));
        store_strings_free(out);
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    return 0;
}

static int label_strings(store_reader *r, const char *name, size_t name_len,
                         const label_matcher *ms, size_t n, int64_t mint, int64_t maxt,
                         store_strings *out)
{
    out->v = NULL;
    out->n = 0;
    if (n == 0) return index_strings(r, name, name_len, out);
    store_select_result res;
    int rc = store_select(r, ms, n, mint, maxt, &res);
    if (rc < 0) return rc;
    size_t cap = 0;
    for (size_t i = 0; i < res.n; i++) {
        const labels *ls = res.series[i].labels;
        if (name) {
            size_t len;
            const char *v = labels_get(ls, name, name_len, &len);
            if (v) strings_push(out, &cap, v, len);
        } else {
            for (uint32_t j = 0; j < ls->n; j++)
                strings_push(out, &cap, ls->v[j].name, ls->v[j].name_len);
        }
    }
    store_select_result_free(&res);
    strings_sort_unique(out);
    return 0;
}

int store_label_names(store_reader *r, const label_matcher *ms, size_t n, int64_t mint,
                      int64_t maxt, store_strings *out)
{
    return label_strings(r, NULL, 0, ms, n, mint, maxt, out);
}

int store_label_values(store_reader *r, const char *name, size_t name_len, const label_matcher *ms,
                       size_t n, int64_t mint, int64_t maxt, store_strings *out)
{
    return label_strings(r, name, name_len, ms, n, mint, maxt, out);
}

/* ---- backfill ----------------------------------------------------------------------- */

int store_import_begin(store *s, store_import **out)
{
    store_import *im = mem_calloc(1, sizeof *im);
    im->s = s;
    pthread_mutex_lock(&s->write_mu);
    *out = im;
    return 0;
}

/* Sets series.first_end (and se's) from the series' chunk rows, after an
 * import wrote some (in any order). Caller holds write_mu, in the import's
 * transaction. Returns an SQLite code. */
static int refresh_first_end(store *s, series *se)
{
    sqlite3_bind_int64(s->st.first_chunk, 1, (int64_t)se->id);
    int rc = sqlite3_step(s->st.first_chunk);
    int64_t first_end = rc == SQLITE_ROW ? sqlite3_column_int64(s->st.first_chunk, 1) : INT64_MAX;
    sqlite3_reset(s->st.first_chunk);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
    sqlite3_bind_int64(s->st.set_first_end, 1, (int64_t)se->id);
    if (first_end == INT64_MAX)
        sqlite3_bind_null(s->st.set_first_end, 2);
    else
        sqlite3_bind_int64(s->st.set_first_end, 2, first_end);
    if ((rc = step_done(s->st.set_first_end)) == SQLITE_OK) se->first_end = first_end;
    return rc;
}

/* Commits the open import transaction. Caller holds write_mu. */
static int import_commit(store_import *im)
{
    store *s = im->s;
    if (!im->in_tx) return 0;
    im->in_tx = false;
    im->chunks_in_tx = 0;
    int rc = step_done(s->st.commit);
    if (rc != SQLITE_OK) {
        log_error(COMPONENT, "import: commit failed: %s", sqlite3_errmsg(s->db));
        if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    return 0;
}

int store_import_series(store_import *im, const labels *ls, const store_sample *samples, size_t n)
{
    store *s = im->s;
    if (im->err) return im->err;
    for (size_t i = 1; i < n; i++) {
        if (samples[i].t <= samples[i - 1].t) return -EINVAL;
    }
    if (n == 0) return 0;
    uint64_t ref;
    bool created;
    int rc = store_series_ref(s, ls, &ref, &created);
    if (rc < 0) return rc;
    pthread_mutex_lock(&s->index_mu);
    series *se = series_get_or_load(s, ref); /* write_mu is held: stays in memory */
    pthread_mutex_unlock(&s->index_mu);
    if (!se) return -EIO;
    if (!im->in_tx) {
        if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
        if ((rc = step_done(s->st.begin)) != SQLITE_OK) goto fail;
        im->in_tx = true;
    }
    series **taken = NULL;
    size_t ntaken = 0;
    rc = write_pending_series(s, &taken, &ntaken);
    rows_written(taken, ntaken); /* the import holds write_mu until it commits */
    if (rc != SQLITE_OK) goto fail;
    /* Chunks of CHUNKENC_TARGET_SAMPLES, each in the smaller encoding. */
    for (size_t i = 0; i < n && rc == SQLITE_OK; i += CHUNKENC_TARGET_SAMPLES) {
        size_t k = n - i < CHUNKENC_TARGET_SAMPLES ? n - i : CHUNKENC_TARGET_SAMPLES;
        int64_t ts[CHUNKENC_TARGET_SAMPLES];
        double vs[CHUNKENC_TARGET_SAMPLES];
        chunk_appender a;
        chunkenc_init(&a);
        for (size_t j = 0; j < k; j++) {
            ts[j] = samples[i + j].t;
            vs[j] = samples[i + j].v;
            chunkenc_append(&a, ts[j], vs[j]);
        }
        size_t xlen, dlen = 0;
        const uint8_t *xbytes = chunkenc_bytes(&a, &xlen);
        uint8_t *dbytes = NULL;
        bool dec = chunkenc_decimal_encode(ts, vs, k, &dbytes, &dlen) == 0 && dlen < xlen;
        sqlite3_bind_int64(s->st.ins_chunk, 1, (int64_t)ref);
        sqlite3_bind_int64(s->st.ins_chunk, 2, ts[k - 1]);
        sqlite3_bind_int64(s->st.ins_chunk, 3, ts[0]);
        sqlite3_bind_int(s->st.ins_chunk, 4, dec ? CHUNKENC_DECIMAL : CHUNKENC_XOR);
        sqlite3_bind_blob(s->st.ins_chunk, 5, dec ? dbytes : xbytes, (int)(dec ? dlen : xlen),
                          SQLITE_STATIC);
        sqlite3_bind_int(s->st.ins_chunk, 6, (int)k);
        rc = step_done(s->st.ins_chunk);
        free(dbytes);
        chunkenc_cleanup(&a);
        im->chunks_in_tx++;
    }
    if (rc == SQLITE_OK) rc = refresh_first_end(s, se);
    if (rc != SQLITE_OK) goto fail;
    /* The series' range grows; later live samples must be newer than what
     * was imported. */
    pthread_rwlock_wrlock(&s->head_lock);
    int64_t first = samples[0].t, last = samples[n - 1].t;
    if (!se->has_data || first < se->min_t) se->min_t = first;
    se->has_data = true;
    if (last > se->persisted_max_t) se->persisted_max_t = last;
    if (!se->has_last || last > se->last_t) {
        se->last_t = last;
        uint64_t bits;
        memcpy(&bits, &samples[n - 1].v, sizeof bits);
        se->last_v = bits;
        se->last_v_known = true;
        se->has_last = true;
        se->last_hist = false;
    }
    pthread_rwlock_unlock(&s->head_lock);
    pthread_mutex_lock(&s->stats_mu);
    s->stats.samples_appended += n;
    if (first < s->mint) s->mint = first;
    if (last > s->maxt) s->maxt = last;
    pthread_mutex_unlock(&s->stats_mu);
    if (im->chunks_in_tx >= STORE_IMPORT_CHUNKS_PER_TX) return im->err = import_commit(im);
    return 0;
fail:
    log_error(COMPONENT, "import: %s", sqlite3_errmsg(s->db));
    if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
    im->in_tx = false;
    return im->err = sql_errno(rc) ? sql_errno(rc) : -EIO;
}

/* Writes an import's histogram chunk. Caller holds write_mu, in the
 * import's transaction. */
static int import_hchunk(store_import *im, uint64_t ref, const histchunk_appender *a,
                         int64_t min_t)
{
    store *s = im->s;
    size_t len;
    const uint8_t *bytes = histchunk_bytes(a, &len);
    sqlite3_bind_int64(s->st.ins_chunk, 1, (int64_t)ref);
    sqlite3_bind_int64(s->st.ins_chunk, 2, a->t);
    sqlite3_bind_int64(s->st.ins_chunk, 3, min_t);
    sqlite3_bind_int(s->st.ins_chunk, 4, histchunk_enc(bytes, len));
    sqlite3_bind_blob(s->st.ins_chunk, 5, bytes, (int)len, SQLITE_STATIC);
    sqlite3_bind_int(s->st.ins_chunk, 6, a->count);
    im->chunks_in_tx++;
    return step_done(s->st.ins_chunk);
}

int store_import_histograms(store_import *im, const labels *ls, const store_hsample *samples,
                            size_t n)
{
    store *s = im->s;
    if (im->err) return im->err;
    /* Everything is checked before anything is written. */
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && samples[i].t <= samples[i - 1].t) return -EINVAL;
        if (nhist_is_stale(&samples[i].h)) continue;
        if (nhist_validate(&samples[i].h, NULL, 0) < 0) return -EINVAL;
        histchunk_appender a;
        histchunk_init(&a);
        int r = histchunk_append(&a, samples[i].t, &samples[i].h);
        histchunk_cleanup(&a);
        if (r != 0) return -EINVAL;
    }
    if (n == 0) return 0;
    uint64_t ref;
    bool created;
    int rc = store_series_ref(s, ls, &ref, &created);
    if (rc < 0) return rc;
    pthread_mutex_lock(&s->index_mu);
    series *se = series_get_or_load(s, ref); /* write_mu is held: stays in memory */
    pthread_mutex_unlock(&s->index_mu);
    if (!se) return -EIO;
    if (!im->in_tx) {
        if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
        if ((rc = step_done(s->st.begin)) != SQLITE_OK) goto fail;
        im->in_tx = true;
    }
    series **taken = NULL;
    size_t ntaken = 0;
    rc = write_pending_series(s, &taken, &ntaken);
    rows_written(taken, ntaken); /* the import holds write_mu until it commits */
    if (rc != SQLITE_OK) goto fail;
    /* Chunks cut as the head cuts them. */
    histchunk_appender a;
    histchunk_init(&a);
    int64_t min_t = 0;
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        if (a.count == 0) min_t = samples[i].t;
        int r = histchunk_append(&a, samples[i].t, &samples[i].h);
        if (r == HISTCHUNK_CUT || r == HISTCHUNK_CUT_RESET) {
            rc = import_hchunk(im, ref, &a, min_t);
            histchunk_cleanup(&a);
            min_t = samples[i].t;
            nhist tmp = samples[i].h; /* borrows the arrays */
            if (r == HISTCHUNK_CUT_RESET && tmp.hint == NHIST_HINT_UNKNOWN) tmp.hint = NHIST_HINT_RESET;
            histchunk_append(&a, samples[i].t, &tmp);
        }
        if (rc == SQLITE_OK && histchunk_full(&a)) {
            rc = import_hchunk(im, ref, &a, min_t);
            histchunk_cleanup(&a);
        }
    }
    if (rc == SQLITE_OK && a.count) rc = import_hchunk(im, ref, &a, min_t);
    histchunk_cleanup(&a);
    if (rc == SQLITE_OK) rc = refresh_first_end(s, se);
    if (rc != SQLITE_OK) goto fail;
    pthread_rwlock_wrlock(&s->head_lock);
    int64_t first = samples[0].t, last = samples[n - 1].t;
    if (!se->has_data || first < se->min_t) se->min_t = first;
    se->has_data = true;
    if (last > se->persisted_max_t) se->persisted_max_t = last;
    if (!se->has_last || last > se->last_t) {
        se->last_t = last;
        se->last_v_known = false; /* the hash is not kept for imports */
        se->last_hist = true;
        se->has_last = true;
    }
    pthread_rwlock_unlock(&s->head_lock);
    pthread_mutex_lock(&s->stats_mu);
    s->stats.samples_appended += n;
    s->stats.histogram_samples_appended += n;
    if (first < s->mint) s->mint = first;
    if (last > s->maxt) s->maxt = last;
    pthread_mutex_unlock(&s->stats_mu);
    if (im->chunks_in_tx >= STORE_IMPORT_CHUNKS_PER_TX) return im->err = import_commit(im);
    return 0;
fail:
    log_error(COMPONENT, "import: %s", sqlite3_errmsg(s->db));
    if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
    im->in_tx = false;
    return im->err = sql_errno(rc) ? sql_errno(rc) : -EIO;
}

int store_import_finish(store_import *im)
{
    if (!im) return 0;
    store *s = im->s;
    int rc = im->err ? im->err : import_commit(im);
    if (im->in_tx && !sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
    pthread_mutex_unlock(&s->write_mu);
    mem_free(im);
    return rc;
}

/* ---- the write-ahead log for remote write ----------------------------------------------- */

uint64_t store_wal_next_seq(store *s)
{
    return atomic_load(&s->last_wal_seq) + 1;
}

static wal_consumer *consumer_find(store *s, const char *name)
{
    for (size_t i = 0; i < s->ncons; i++) {
        if (strcmp(s->cons[i].name, name) == 0) return &s->cons[i];
    }
    return NULL;
}

int store_wal_consumer_set(store *s, const char *name, uint64_t next_seq, int64_t max_lag_ms,
                           buf *err)
{
    if (!name || !*name || strlen(name) > STORE_WAL_CONSUMER_NAME_MAX || max_lag_ms <= 0 ||
        next_seq > INT64_MAX) {
        if (err)
            buf_printf(err, "storage: write-ahead consumer %s: %s", name ? name : "(null)",
                       max_lag_ms <= 0 ? "max_lag_ms must be > 0" : "invalid name or cursor");
        return -EINVAL;
    }
    pthread_mutex_lock(&s->write_mu);
    if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
    int rc = step_done(s->st.begin);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(s->st.upsert_consumer, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->st.upsert_consumer, 2, (int64_t)next_seq);
        sqlite3_bind_int64(s->st.upsert_consumer, 3, max_lag_ms);
        rc = step_done(s->st.upsert_consumer);
    }
    if (rc == SQLITE_OK) rc = step_done(s->st.commit);
    if (rc != SQLITE_OK) {
        int e = sql_errno(rc) ? sql_errno(rc) : -EIO;
        if (err)
            buf_printf(err, "storage: saving write-ahead consumer %s: %s", name,
                       sqlite3_errmsg(s->db));
        log_error(COMPONENT, "saving write-ahead consumer %s: %s", name, sqlite3_errmsg(s->db));
        if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
        pthread_mutex_unlock(&s->write_mu);
        return e;
    }
    pthread_mutex_lock(&s->cons_mu);
    wal_consumer *c = consumer_find(s, name);
    if (!c) {
        if (s->ncons == s->cons_cap)
            s->cons = mem_grow(s->cons, sizeof *s->cons, s->ncons + 1, &s->cons_cap);
        c = &s->cons[s->ncons++];
        *c = (wal_consumer){.name = mem_strdup(name)};
    }
    c->next_seq = next_seq;
    c->max_lag_ms = max_lag_ms;
    pthread_mutex_unlock(&s->cons_mu);
    pthread_mutex_unlock(&s->write_mu);
    return 0;
}

int store_wal_consumer_get(store *s, const char *name, store_wal_consumer *out)
{
    if (!name) return -ENOENT;
    pthread_mutex_lock(&s->cons_mu);
    const wal_consumer *c = consumer_find(s, name);
    if (c)
        *out = (store_wal_consumer){
            .next_seq = c->next_seq, .max_lag_ms = c->max_lag_ms, .dropped_samples = c->dropped};
    pthread_mutex_unlock(&s->cons_mu);
    return c ? 0 : -ENOENT;
}

int store_wal_consumer_remove(store *s, const char *name)
{
    if (!name) return 0;
    pthread_mutex_lock(&s->write_mu);
    if (!consumer_find(s, name)) {
        pthread_mutex_unlock(&s->write_mu);
        return 0;
    }
    if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
    int rc = step_done(s->st.begin);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(s->st.del_consumer, 1, name, -1, SQLITE_STATIC);
        rc = step_done(s->st.del_consumer);
    }
    if (rc == SQLITE_OK) rc = step_done(s->st.commit);
    if (rc != SQLITE_OK) {
        log_error(COMPONENT, "removing write-ahead consumer %s: %s", name, sqlite3_errmsg(s->db));
        if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
        pthread_mutex_unlock(&s->write_mu);
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    pthread_mutex_lock(&s->cons_mu);
    wal_consumer *c = consumer_find(s, name);
    mem_free(c->name);
    *c = s->cons[--s->ncons];
    pthread_mutex_unlock(&s->cons_mu);
    pthread_mutex_unlock(&s->write_mu);
    return 0;
}

/* Frees a batch's samples and their histograms. */
static void wal_batch_cleanup(store_wal_batch *b)
{
    for (size_t k = 0; k < b->n; k++) {
        nhist *h = (nhist *)b->samples[k].h;
        if (!h) continue;
        nhist_cleanup(h);
        mem_free(h);
    }
    mem_free(b->samples);
    b->samples = NULL;
    b->n = 0;
    for (size_t k = 0; k < b->n_exemplars; k++)
        labels_free(b->exemplars[k].labels);
    mem_free(b->exemplars);
    b->exemplars = NULL;
    b->n_exemplars = 0;
}

void store_wal_batches_free(store_wal_batch *b, size_t n)
{
    if (!b) return;
    for (size_t i = 0; i < n; i++) wal_batch_cleanup(&b[i]);
    mem_free(b);
}

/* Decodes a write-ahead row into *out (samples owned by it). Returns 0 or
 * -EINVAL for a corrupt row (nothing kept). */
static int wal_row_decode(const uint8_t *p, size_t len, store_wal_batch *out)
{
    wal_reader w;
    int r = wal_reader_init(&w, p, len);
    if (r < 0) return r;
    out->samples = mem_malloc((w.n ? w.n : 1) * sizeof *out->samples);
    out->n = 0;
    uint64_t ref, v;
    int64_t t;
    const uint8_t *hp;
    size_t hlen;
    while ((r = wal_reader_next(&w, &ref, &t, &v, &hp, &hlen)) == 1) {
        store_wal_sample *x = &out->samples[out->n];
        *x = (store_wal_sample){.ref = ref, .t = t, .v = bits_double(v)};
        if (hp) {
            nhist *h = mem_malloc(sizeof *h);
            nhist_init(h);
            histchunk_iter it;
            int64_t t0;
            if (histchunk_iter_init(&it, hp, hlen) < 0 || histchunk_iter_next(&it, &t0, h) != 1) {
                histchunk_iter_cleanup(&it);
                nhist_cleanup(h);
                mem_free(h);
                r = -EINVAL;
                break;
            }
            histchunk_iter_cleanup(&it);
            x->h = h;
            x->v = 0;
        }
        out->n++;
    }
    out->exemplars = NULL;
    out->n_exemplars = 0;
    if (r == 0 && w.kind2) r = wal_exemplars_decode(w.p, w.end, &out->exemplars, &out->n_exemplars);
    if (r < 0) {
        wal_batch_cleanup(out);
        return -EINVAL;
    }
    return 0;
}

/* Opens store_wal_read's connection. Caller holds wal_rd_mu. */
static int wal_rd_open(store *s)
{
    if (s->wal_rdb) return SQLITE_OK;
    int rc = sqlite3_open_v2(s->db_path, &s->wal_rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(s->wal_rdb, STORE_BUSY_TIMEOUT_MS);
        rc = prepare(s->wal_rdb, "SELECT data FROM wal WHERE slot = ?1", &s->wal_rd_row);
    }
    if (rc == SQLITE_OK) rc = prepare(s->wal_rdb, "BEGIN", &s->wal_rd_begin);
    if (rc == SQLITE_OK) rc = prepare(s->wal_rdb, "COMMIT", &s->wal_rd_end);
    if (rc != SQLITE_OK) {
        log_error(COMPONENT, "opening the write-ahead reader on %s: %s", s->db_path,
                  s->wal_rdb ? sqlite3_errmsg(s->wal_rdb) : sqlite3_errstr(rc));
        sqlite3_finalize(s->wal_rd_row);
        sqlite3_finalize(s->wal_rd_begin);
        sqlite3_finalize(s->wal_rd_end);
        s->wal_rd_row = s->wal_rd_begin = s->wal_rd_end = NULL;
        sqlite3_close(s->wal_rdb);
        s->wal_rdb = NULL;
    }
    return rc;
}

int store_wal_read(store *s, uint64_t from_seq, size_t max_rows, store_wal_batch **out, size_t *n,
                   uint64_t *first_seq)
{
    *out = NULL;
    *n = 0;
    *first_seq = from_seq;
    if (max_rows == 0) return 0;
    wal_slot *want = NULL;
    int err = 0;
    for (int attempt = 0; attempt < STORE_WAL_READ_TRIES; attempt++) {
        /* Which slots hold rows from from_seq on (committed ones only: a row
         * enters the ring after its COMMIT). */
        pthread_mutex_lock(&s->ring_mu);
        uint64_t next = atomic_load(&s->last_wal_seq) + 1;
        size_t i0 = slot_used_find(s, from_seq);
        size_t k = s->used_len - i0 < max_rows ? s->used_len - i0 : max_rows;
        want = mem_malloc((k ? k : 1) * sizeof *want);
        for (size_t i = 0; i < k; i++) want[i] = *slot_used_at(s, i0 + i);
        pthread_mutex_unlock(&s->ring_mu);
        if (k == 0) {
            /* Rows from_seq..next-1 were all released. */
            *first_seq = from_seq < next ? next : from_seq;
            mem_free(want);
            return 0;
        }
        *first_seq = want[0].seq;

        pthread_mutex_lock(&s->wal_rd_mu);
        int rc = wal_rd_open(s);
        if (rc == SQLITE_OK) rc = step_done(s->wal_rd_begin);
        store_wal_batch *b = NULL;
        size_t got = 0;
        if (rc == SQLITE_OK) b = mem_calloc(k, sizeof *b);
        for (size_t i = 0; rc == SQLITE_OK && i < k; i++) {
            sqlite3_bind_int64(s->wal_rd_row, 1, want[i].id);
            int step = sqlite3_step(s->wal_rd_row);
            if (step != SQLITE_ROW) {
                sqlite3_reset(s->wal_rd_row);
                if (step != SQLITE_DONE) rc = step;
                break; /* the slot was deleted: released meanwhile */
            }
            const uint8_t *p = sqlite3_column_blob(s->wal_rd_row, 0);
            size_t blob_len = (size_t)sqlite3_column_bytes(s->wal_rd_row, 0);
            slot_hdr hd;
            bool same = p && slot_header(p, blob_len, blob_len, &hd) && hd.seq == want[i].seq;
            if (same) {
                /* Another row there means this one was released and its
                 * slot reused: stop (the rows after it are newer). */
                if (wal_row_decode(p + hd.off, hd.len, &b[got]) < 0) {
                    log_error(COMPONENT, "write-ahead row %" PRIu64 " does not decode", hd.seq);
                    err = -EIO;
                } else {
                    b[got].seq = hd.seq;
                    b[got].commit_ms = hd.commit_ms;
                    got++;
                }
            }
            sqlite3_reset(s->wal_rd_row);
            if (!same || err) break;
        }
        if (s->wal_rdb && !sqlite3_get_autocommit(s->wal_rdb)) step_done(s->wal_rd_end);
        if (rc != SQLITE_OK) {
            log_error(COMPONENT, "reading the write-ahead table: %s",
                      s->wal_rdb ? sqlite3_errmsg(s->wal_rdb) : sqlite3_errstr(rc));
            err = sql_errno(rc) ? sql_errno(rc) : -EIO;
        }
        pthread_mutex_unlock(&s->wal_rd_mu);
        mem_free(want);
        if (got) {
            *out = b;
            *n = got;
            return 0;
        }
        mem_free(b);
        if (err) return err;
        /* The first row was released before it could be read: look again. */
    }
    return -EAGAIN;
}

labels *store_series_labels(store *s, uint64_t ref)
{
    labels *ls;
    if (resident_labels(s, ref, &ls)) return ls;
    /* Not in memory (evicted): its committed row. */
    if (ref == 0 || ref > INT64_MAX) return NULL;
    pthread_mutex_lock(&s->lookup_mu);
    ls = row_labels(s->lk_db, s->lk_id, (int64_t)ref);
    pthread_mutex_unlock(&s->lookup_mu);
    return ls;
}

/* ---- durable key-value state ------------------------------------------------------ */

static int kv_fail(store *s, int rc, buf *err, const char *what)
{
    if (err) buf_printf(err, "storage: %s: %s", what, sqlite3_errmsg(s->db));
    return sql_errno(rc);
}

int store_kv_apply(store *s, const store_kv_op *ops, size_t n, buf *err)
{
    pthread_mutex_lock(&s->write_mu);
    sqlite3_stmt *put = NULL, *del = NULL;
    int rc = prepare(s->db, "INSERT OR REPLACE INTO kv(ns, key, value) VALUES(?1, ?2, ?3)", &put);
    if (rc == SQLITE_OK) rc = prepare(s->db, "DELETE FROM kv WHERE ns = ?1 AND key = ?2", &del);
    if (rc == SQLITE_OK) rc = step_done(s->st.begin);
    if (rc != SQLITE_OK) {
        int e = kv_fail(s, rc, err, "writing state");
        sqlite3_finalize(put);
        sqlite3_finalize(del);
        pthread_mutex_unlock(&s->write_mu);
        return e;
    }
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        sqlite3_stmt *st = ops[i].value ? put : del;
        sqlite3_bind_text(st, 1, ops[i].ns, -1, SQLITE_STATIC);
        bind_bytes(st, 2, ops[i].key, ops[i].key_len);
        if (ops[i].value) bind_bytes(st, 3, ops[i].value, ops[i].value_len);
        rc = step_done(st);
        sqlite3_clear_bindings(st);
    }
    if (rc == SQLITE_OK) rc = step_done(s->st.commit);
    int e = 0;
    if (rc != SQLITE_OK) {
        e = kv_fail(s, rc, err, "writing state");
        if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
    }
    sqlite3_finalize(put);
    sqlite3_finalize(del);
    pthread_mutex_unlock(&s->write_mu);
    return e;
}

int store_kv_list(store *s, const char *ns, const void *prefix, size_t prefix_len, size_t limit,
                  store_kv_entry **out, size_t *n, buf *err)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->write_mu);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT key, value FROM kv WHERE ns = ?1 AND substr(key, 1, ?3) = ?2"
                                " ORDER BY key LIMIT ?4",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        int e = kv_fail(s, rc, err, "reading state");
        pthread_mutex_unlock(&s->write_mu);
        return e;
    }
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    bind_bytes(st, 2, prefix, prefix_len);
    sqlite3_bind_int64(st, 3, (int64_t)prefix_len);
    sqlite3_bind_int64(st, 4, limit ? (int64_t)limit : -1);
    store_kv_entry *v = NULL;
    size_t len = 0, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            v = mem_realloc(v, cap * sizeof *v);
        }
        store_kv_entry *e = &v[len++];
        e->key_len = (size_t)sqlite3_column_bytes(st, 0);
        e->key = mem_malloc(e->key_len + 1);
        if (e->key_len) memcpy(e->key, sqlite3_column_blob(st, 0), e->key_len);
        ((char *)e->key)[e->key_len] = 0;
        e->value_len = (size_t)sqlite3_column_bytes(st, 1);
        e->value = mem_malloc(e->value_len + 1);
        if (e->value_len) memcpy(e->value, sqlite3_column_blob(st, 1), e->value_len);
        ((char *)e->value)[e->value_len] = 0;
    }
    int e = 0;
    if (rc != SQLITE_DONE) {
        e = kv_fail(s, rc, err, "reading state");
        store_kv_entries_free(v, len);
        v = NULL;
        len = 0;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->write_mu);
    *out = v;
    *n = len;
    return e;
}

void store_kv_entries_free(store_kv_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mem_free(e[i].key);
        mem_free(e[i].value);
    }
    mem_free(e);
}

int64_t store_kv_count(store *s, const char *ns)
{
    pthread_mutex_lock(&s->write_mu);
    sqlite3_stmt *st = NULL;
    int64_t count = 0;
    int rc = sqlite3_prepare_v2(s->db, "SELECT count(*) FROM kv WHERE ns = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            count = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->write_mu);
    return rc == SQLITE_OK ? count : sql_errno(rc);
}


int store_check(const char *path, buf *report)
{
    store *s = NULL;
    store_options o = {.path = path};
    buf err;
    buf_init(&err, 64 * 1024);
    int rc = store_open(&s, &o, &err);
    if (rc < 0) {
        buf_printf(report, "cannot open the store: %s\n", buf_cstr(&err));
        buf_cleanup(&err);
        return rc;
    }
    buf_cleanup(&err);
    uint64_t problems = 0, chunks = 0, samples = 0, rows = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *msg = (const char *)sqlite3_column_text(st, 0);
            if (msg && strcmp(msg, "ok") != 0) {
                buf_printf(report, "integrity_check: %s\n", msg);
                problems++;
            }
        }
        sqlite3_finalize(st);
    } else {
        buf_printf(report, "integrity_check could not run: %s\n", sqlite3_errmsg(s->db));
        problems++;
    }
    /* Series rows: labels that decode, lhash that matches them, no label set
     * twice (a series evicted and back must keep its id). */
    uint64_t nseries = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT id, labels, lhash FROM series", -1, &st, NULL) == SQLITE_OK) {
        buf enc;
        buf_init(&enc, BUF_UNLIMITED);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            nseries++;
            int64_t id = sqlite3_column_int64(st, 0);
            const char *p;
            size_t len;
            column_bytes(st, 1, &p, &len);
            labels *ls;
            if (labels_decode(p, len, &ls) < 0) {
                buf_printf(report, "series %" PRId64 ": its labels do not decode\n", id);
                problems++;
                continue;
            }
            buf_reset(&enc);
            labels_encode(ls, &enc);
            labels_free(ls);
            if (series_lhash(enc.data, enc.len) != sqlite3_column_int64(st, 2)) {
                buf_printf(report, "series %" PRId64 ": its label hash does not match its labels\n", id);
                problems++;
            }
        }
        if (step != SQLITE_DONE) {
            buf_printf(report, "reading series: %s\n", sqlite3_errmsg(s->db));
            problems++;
        }
        buf_cleanup(&enc);
        sqlite3_finalize(st);
    }
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, first_end FROM series WHERE first_end IS NOT"
                           " (SELECT max_t FROM chunks WHERE series_id = series.id ORDER BY max_t"
                           " LIMIT 1)",
                           -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            buf_printf(report, "series %" PRId64 ": first_end %s does not match its chunks\n",
                       (int64_t)sqlite3_column_int64(st, 0),
                       sqlite3_column_type(st, 1) == SQLITE_NULL ? "NULL"
                                                                 : (const char *)sqlite3_column_text(st, 1));
            problems++;
        }
        sqlite3_finalize(st);
    }
    if (sqlite3_prepare_v2(s->db,
                           "SELECT a.id, b.id FROM series a JOIN series b ON b.lhash = a.lhash"
                           " AND b.id > a.id AND b.labels = a.labels",
                           -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            buf_printf(report, "series %" PRId64 " and %" PRId64 " have the same labels\n",
                       (int64_t)sqlite3_column_int64(st, 0), (int64_t)sqlite3_column_int64(st, 1));
            problems++;
        }
        sqlite3_finalize(st);
    }
    if (sqlite3_prepare_v2(s->db,
                           "SELECT c.series_id, c.max_t, c.min_t, c.data, c.enc, c.count,"
                           " s.id IS NULL FROM chunks c LEFT JOIN series s ON s.id = c.series_id",
                           -1, &st, NULL) == SQLITE_OK) {
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            chunks++;
            int64_t id = sqlite3_column_int64(st, 0), max_t = sqlite3_column_int64(st, 1),
                    min_t = sqlite3_column_int64(st, 2);
            const uint8_t *d = sqlite3_column_blob(st, 3);
            size_t len = (size_t)sqlite3_column_bytes(st, 3);
            chunk_iter it;
            int64_t t, first = 0, lastt = 0;
            double v;
            int enc = sqlite3_column_int(st, 4);
            uint64_t count = 0;
            int r;
            if (enc >= CHUNKENC_HISTOGRAM) {
                /* A histogram chunk: decode every sample, check each. */
                histchunk_iter hit = {0};
                nhist h;
                nhist_init(&h);
                r = histchunk_enc(d, len) == enc ? histchunk_iter_init(&hit, d, len) : -EINVAL;
                while (r == 0 && (r = histchunk_iter_next(&hit, &t, &h)) == 1) {
                    if (!count) first = t;
                    lastt = t;
                    count++;
                    r = nhist_is_stale(&h) || nhist_validate(&h, NULL, 0) == 0 ? 0 : -EINVAL;
                }
                if (r >= 0) r = 0;
                nhist_cleanup(&h);
                histchunk_iter_cleanup(&hit);
            } else {
                r = chunkenc_iter_init_enc(&it, (enum chunkenc_encoding)enc, d, len);
                while (r == 0 && (r = chunkenc_iter_next(&it, &t, &v)) == 1) {
                    if (!count) first = t;
                    lastt = t;
                    count++;
                    r = 0;
                }
            }
            samples += count;
            bool orphan = sqlite3_column_int(st, 6) != 0;
            if (r < 0 || count == 0 || first != min_t || lastt != max_t ||
                count != (uint64_t)sqlite3_column_int64(st, 5) || orphan) {
                buf_printf(report,
                           "chunk of series %" PRId64 " [%" PRId64 ", %" PRId64 "]: %s\n", id,
                           min_t, max_t,
                           r < 0                ? "does not decode"
                           : count == 0         ? "is empty"
                           : orphan             ? "has no series row"
                                                : "bounds do not match its samples");
                problems++;
            }
        }
        if (step != SQLITE_DONE) {
            buf_printf(report, "reading chunks: %s\n", sqlite3_errmsg(s->db));
            problems++;
        }
        sqlite3_finalize(st);
    }
    /* The rows replay would read (store_open already replayed them; this
     * checks every one decodes to the end). */
    int64_t pin = 0;
    query_int(s->db, "SELECT value FROM meta WHERE key = 'wal_pin'", &pin);
    if (sqlite3_prepare_v2(s->db, "SELECT slot, data FROM wal", -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            const uint8_t *p = sqlite3_column_blob(st, 1);
            size_t blob_len = (size_t)sqlite3_column_bytes(st, 1);
            slot_hdr hd = {0};
            bool ok = p && slot_header(p, blob_len, blob_len, &hd);
            uint64_t seq = hd.seq;
            if (!ok && seq != 0) {
                buf_printf(report, "write-ahead slot %" PRId64 " has a damaged header\n",
                           (int64_t)sqlite3_column_int64(st, 0));
                problems++;
                continue;
            }
            if (!ok || seq < (uint64_t)pin) continue; /* free */
            rows++;
            wal_reader w;
            int r = wal_reader_init(&w, p + hd.off, hd.len);
            uint64_t ref, v;
            int64_t t;
            const uint8_t *hp;
            size_t hlen;
            nhist h;
            nhist_init(&h);
            while (r == 0 && (r = wal_reader_next(&w, &ref, &t, &v, &hp, &hlen)) == 1) {
                r = 0;
                if (!hp) continue;
                /* A histogram: one valid sample. */
                histchunk_iter hit;
                int64_t t0;
                if (histchunk_iter_init(&hit, hp, hlen) < 0 || histchunk_iter_next(&hit, &t0, &h) != 1 ||
                    (!nhist_is_stale(&h) && nhist_validate(&h, NULL, 0) < 0))
                    r = -EINVAL;
                histchunk_iter_cleanup(&hit);
            }
            nhist_cleanup(&h);
            if (r == 0 && w.kind2) r = wal_exemplars_decode(w.p, w.end, NULL, NULL);
            if (r < 0) {
                buf_printf(report, "write-ahead row %" PRIu64 " does not decode\n", seq);
                problems++;
            }
        }
        sqlite3_finalize(st);
    }
    buf_printf(report,
               "%" PRIu64 " series, %" PRIu64 " chunks with %" PRIu64 " samples, %" PRIu64
               " write-ahead rows: %" PRIu64 " problem(s)\n",
               nseries, chunks, samples, rows, problems);
    s->no_flush = true;
    store_close(s);
    return problems ? -EIO : 0;
}
