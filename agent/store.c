/* store: the time-series database on SQLite (first version: one row per
 * sample; see store.h for the contract callers rely on).
 *
 * Files in the storage directory:
 *   sidewatch.db (+ -wal, -shm)  the database, in WAL mode
 *   lock                         flock()ed while open, so a second process
 *                                cannot open the same store (the kernel
 *                                drops the lock when the holder dies, even
 *                                by SIGKILL)
 *
 * Schema (version STORE_SCHEMA_VERSION in PRAGMA user_version):
 *   meta(key, value)                   next_series_id high-water mark
 *   series(id, labels, metric)         labels = labels_encode() of the
 *                                      canonical set, UNIQUE
 *   label_values(id, name, value, series)
 *                                      one row per label pair, with the
 *                                      number of series carrying it (the
 *                                      selectivity estimate of store_select)
 *   postings(lv_id, series_id)         the inverted index: pair -> series
 *   samples(series_id, t, v)           WITHOUT ROWID, key (series_id, t);
 *                                      v is the float64's bit pattern,
 *                                      byte-swapped, as an INTEGER (see
 *                                      value_encode)
 *   metadata(metric, type, help, unit) latest wins
 * Label names and values are BLOBs (they may contain NUL; BLOBs compare with
 * memcmp, i.e. like Go strings).
 *
 * Locking: write_mu guards the writer connection, the per-series append
 * state (last_t, last_v, min_t) and the metadata cache; index_mu guards the
 * in-memory series index (by_labels, by_id, next_id, pending); stats_mu the
 * published counters. Order: write_mu, then index_mu, then stats_mu. Readers
 * use their own connections and take none of these locks.
 *
 * Series lifecycle: store_series_ref() gives a new series its id at once
 * and queues it in `pending`; the next commit (whichever producer makes it)
 * writes every pending series row in the same transaction as its samples,
 * so no committed sample can reference a series row that is not committed.
 * A failed commit puts the series back in the queue. Series are never
 * deleted (references are stable for the database's lifetime, and ids are
 * never reused: next_id = max(max(series.id) + 1, meta.next_series_id), the
 * high-water mark written with every new series row; an id handed out but
 * never committed before a crash may be handed out again, which is harmless
 * as nothing durable refers to it);
 * retention deletes samples only, so a series whose samples all expired
 * stays in the index (and in memory) without samples and is not selected by
 * store_select (which requires samples in the range). */
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
#include <unistd.h>

#include "hmap.h"
#include "log.h"
#include "mem.h"
#include "strutil.h"

#define STORE_SCHEMA_VERSION 1
#define STORE_APPLICATION_ID 0x53445754 /* "SDWT" */
#define STORE_DB_NAME "sidewatch.db"
#define STORE_LOCK_NAME "lock"
/* How long a connection waits for a lock held by another connection
 * (checkpoints, WAL recovery) before giving up with -EBUSY. */
#define STORE_BUSY_TIMEOUT_MS 10000
/* Bound the WAL file left behind after a checkpoint. */
#define STORE_JOURNAL_SIZE_LIMIT (64 * 1024 * 1024)
/* Retention deletes this many series' samples per transaction, so producers
 * waiting for the writer are not stalled by one huge delete. */
#define STORE_RETENTION_SERIES_PER_TX 256
/* store_select stops estimating regex matchers once an equality matcher
 * narrowed the candidates to this many series. */
#define STORE_SELECT_GOOD_ENOUGH 256

#define COMPONENT "storage"

/* ---- in-memory series index ----------------------------------------------- */

typedef struct series {
    uint64_t id;
    labels *ls;
    /* Append state, guarded by write_mu. last_t is the newest committed
     * timestamp (valid if has_last) and last_v its value's bits; they
     * survive retention, so later samples are still ordered against them.
     * min_t is the oldest stored timestamp (valid if has_stored). */
    int64_t last_t;
    uint64_t last_v;
    int64_t min_t;
    bool has_last;
    bool has_stored;
    uint64_t gen; /* commit generation that saved undo state for it */
} series;

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

    pthread_mutex_t write_mu;
    sqlite3 *db;
    struct {
        sqlite3_stmt *begin, *commit, *rollback;
        sqlite3_stmt *ins_series, *find_lv, *ins_lv, *inc_lv, *ins_posting, *set_meta;
        sqlite3_stmt *ins_sample, *upsert_metadata;
        sqlite3_stmt *del_samples, *first_t, *last_sample;
    } st;
    uint64_t gen;  /* commit generation */
    hmap metadata; /* metric -> meta_entry: what the database holds */

    pthread_mutex_t index_mu;
    hmap by_labels; /* labels -> series */
    series **by_id; /* index = id; NULL for ids never assigned */
    size_t by_id_cap;
    uint64_t next_id;
    series **pending; /* series whose rows are not committed yet */
    size_t npending, pending_cap;

    pthread_mutex_t stats_mu;
    store_stats stats;  /* counters; series, size and time range are filled in
                         * by store_get_stats */
    int64_t mint, maxt; /* of stored samples; INT64_MAX, INT64_MIN when none */

    atomic_int readers;
};

typedef struct batch_sample {
    uint64_t ref;
    int64_t t;
    uint64_t v; /* bits */
    size_t seq;
    series *se; /* resolved at commit */
} batch_sample;

typedef struct batch_meta {
    char *metric;
    enum expfmt_type type;
    char *help;
    char *unit;
} batch_meta;

struct store_batch {
    store *s;
    batch_sample *v;
    size_t n, cap;
    batch_meta *m;
    size_t nm, mcap;
};

struct store_reader {
    store *s;
    sqlite3 *db;
    bool snapshot; /* between store_reader_begin and store_reader_end */
    struct {
        sqlite3_stmt *begin, *end;
        sqlite3_stmt *lv_eq, *lv_name, *postings, *series_labels, *has_samples;
        sqlite3_stmt *samples, *metadata, *names, *values;
    } st;
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

/* Values are stored as the float64's 8 bytes in reverse order, read as a
 * signed 64-bit INTEGER: a bijection, so every bit pattern (NaN payloads,
 * the staleness marker, -0) round-trips exactly, unlike REAL columns where
 * SQLite turns NaN into NULL. Reversing puts the sign/exponent byte low and
 * the (often zero) low mantissa bytes high, so round values such as 1 or
 * 100 become small integers and take 1-3 bytes in SQLite's varint-sized
 * records instead of 8. */
static int64_t value_encode(uint64_t bits)
{
    return (int64_t)__builtin_bswap64(bits);
}

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

static bool series_eq(const void *val, const void *key)
{
    return labels_equal(((const series *)val)->ls, key);
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

/* Adds a series to the in-memory index. Caller holds index_mu (or owns the
 * store exclusively, at open). */
static void index_add(store *s, series *se)
{
    hmap_put(&s->by_labels, labels_hash(se->ls), se);
    if (se->id >= s->by_id_cap) {
        size_t old = s->by_id_cap;
        s->by_id = mem_grow(s->by_id, sizeof *s->by_id, se->id + 1, &s->by_id_cap);
        memset(s->by_id + old, 0, (s->by_id_cap - old) * sizeof *s->by_id);
    }
    s->by_id[se->id] = se;
}

/* Recomputes min/max time from the series. Caller holds write_mu. */
static void recompute_time_range(store *s)
{
    int64_t mint = INT64_MAX, maxt = INT64_MIN;
    pthread_mutex_lock(&s->index_mu);
    for (size_t i = 0; i < s->by_id_cap; i++) {
        series *se = s->by_id[i];
        if (!se || !se->has_stored) continue;
        if (se->min_t < mint) mint = se->min_t;
        if (se->last_t > maxt) maxt = se->last_t;
    }
    pthread_mutex_unlock(&s->index_mu);
    pthread_mutex_lock(&s->stats_mu);
    s->mint = mint;
    s->maxt = maxt;
    pthread_mutex_unlock(&s->stats_mu);
}

/* ---- open and close ------------------------------------------------------------ */

static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE series(id INTEGER PRIMARY KEY, labels BLOB NOT NULL UNIQUE,"
    " metric BLOB NOT NULL);"
    "CREATE TABLE label_values(id INTEGER PRIMARY KEY, name BLOB NOT NULL,"
    " value BLOB NOT NULL, series INTEGER NOT NULL, UNIQUE(name, value));"
    "CREATE TABLE postings(lv_id INTEGER NOT NULL, series_id INTEGER NOT NULL,"
    " PRIMARY KEY(lv_id, series_id)) WITHOUT ROWID;"
    "CREATE TABLE samples(series_id INTEGER NOT NULL, t INTEGER NOT NULL, v INTEGER NOT NULL,"
    " PRIMARY KEY(series_id, t)) WITHOUT ROWID;"
    "CREATE TABLE metadata(metric TEXT PRIMARY KEY, type TEXT NOT NULL, help TEXT NOT NULL,"
    " unit TEXT NOT NULL) WITHOUT ROWID;";

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

/* Creates the schema or checks the existing one, in one transaction. */
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
        if (rc != SQLITE_OK) goto sqlerr;
        char pragmas[128];
        snprintf(pragmas, sizeof pragmas, "PRAGMA application_id=%d; PRAGMA user_version=%d",
                 STORE_APPLICATION_ID, STORE_SCHEMA_VERSION);
        rc = sqlite3_exec(s->db, pragmas, NULL, NULL, NULL);
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
    }
    /* Older versions would be migrated here; version 1 is the first. */
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
        W(ins_series, "INSERT INTO series(id, labels, metric) VALUES(?1, ?2, ?3)"),
        /* Not one UPSERT ... RETURNING: SQLite runs RETURNING through a
         * temporary table, 50 times slower than these three. */
        W(find_lv, "SELECT id FROM label_values WHERE name = ?1 AND value = ?2"),
        W(ins_lv, "INSERT INTO label_values(name, value, series) VALUES(?1, ?2, 1)"),
        W(inc_lv, "UPDATE label_values SET series = series + 1 WHERE id = ?1"),
        W(ins_posting, "INSERT INTO postings(lv_id, series_id) VALUES(?1, ?2)"),
        W(set_meta, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)"),
        W(ins_sample, "INSERT INTO samples(series_id, t, v) VALUES(?1, ?2, ?3)"),
        W(upsert_metadata, "INSERT INTO metadata(metric, type, help, unit) VALUES(?1, ?2, ?3, ?4)"
                           " ON CONFLICT(metric) DO UPDATE SET type = excluded.type,"
                           " help = excluded.help, unit = excluded.unit"),
        W(del_samples, "DELETE FROM samples WHERE series_id = ?1 AND t < ?2"),
        W(first_t, "SELECT t FROM samples WHERE series_id = ?1 ORDER BY t LIMIT 1"),
        W(last_sample, "SELECT t, v FROM samples WHERE series_id = ?1 ORDER BY t DESC LIMIT 1"),
#undef W
    };
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        int rc = prepare(s->db, stmts[i].sql, (sqlite3_stmt **)((char *)s + stmts[i].off));
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

/* Loads the series index, each series' newest and oldest sample, the id
 * high-water mark and the metadata cache. */
static int load_state(store *s, buf *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT id, labels FROM series ORDER BY id", -1, &st, NULL);
    if (rc != SQLITE_OK) goto sqlerr;
    uint64_t max_id = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *p;
        size_t len;
        column_bytes(st, 1, &p, &len);
        labels *ls;
        if (id <= 0 || labels_decode(p, len, &ls) < 0) {
            open_error(err, s, "corrupt series row %" PRId64, id);
            sqlite3_finalize(st);
            return -EIO;
        }
        series *se = mem_calloc(1, sizeof *se);
        se->id = (uint64_t)id;
        se->ls = ls;
        index_add(s, se);
        if (se->id > max_id) max_id = se->id;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_DONE) goto sqlerr;

    for (uint64_t id = 1; id <= max_id; id++) {
        series *se = s->by_id[id];
        if (!se) continue;
        sqlite3_bind_int64(s->st.last_sample, 1, (int64_t)id);
        rc = sqlite3_step(s->st.last_sample);
        if (rc == SQLITE_ROW) {
            se->last_t = sqlite3_column_int64(s->st.last_sample, 0);
            se->last_v = value_decode(sqlite3_column_int64(s->st.last_sample, 1));
            se->has_last = true;
        }
        sqlite3_reset(s->st.last_sample);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) goto sqlerr;
        sqlite3_bind_int64(s->st.first_t, 1, (int64_t)id);
        rc = sqlite3_step(s->st.first_t);
        if (rc == SQLITE_ROW) {
            se->min_t = sqlite3_column_int64(s->st.first_t, 0);
            se->has_stored = true;
        }
        sqlite3_reset(s->st.first_t);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) goto sqlerr;
    }

    int64_t hwm = 0;
    rc = query_int(s->db, "SELECT value FROM meta WHERE key = 'next_series_id'", &hwm);
    if (rc != SQLITE_OK) goto sqlerr;
    s->next_id = max_id + 1;
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
    if (rc != SQLITE_DONE) goto sqlerr_nofin;
    return 0;
sqlerr:
    sqlite3_finalize(st);
sqlerr_nofin:
    open_error(err, s, "loading the series index: %s", sqlite3_errmsg(s->db));
    return sql_errno(rc);
}

static void free_all(store *s)
{
    if (s->db) {
        sqlite3_stmt **stmts = (sqlite3_stmt **)&s->st;
        for (size_t i = 0; i < sizeof s->st / sizeof(sqlite3_stmt *); i++)
            sqlite3_finalize(stmts[i]);
        /* The last connection to close checkpoints the WAL and removes it. */
        if (sqlite3_close(s->db) != SQLITE_OK)
            log_error(COMPONENT, "closing %s: %s", s->db_path, sqlite3_errmsg(s->db));
    }
    for (size_t i = 0; i < s->by_id_cap; i++) {
        if (!s->by_id[i]) continue;
        labels_free(s->by_id[i]->ls);
        mem_free(s->by_id[i]);
    }
    mem_free(s->by_id);
    mem_free(s->pending);
    hmap_cleanup(&s->by_labels);
    size_t it = 0;
    void *v;
    while (hmap_next(&s->metadata, &it, &v))
        meta_entry_free(v);
    hmap_cleanup(&s->metadata);
    if (s->lock_fd >= 0) close(s->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&s->write_mu);
    pthread_mutex_destroy(&s->index_mu);
    pthread_mutex_destroy(&s->stats_mu);
    mem_free(s->dir);
    mem_free(s->db_path);
    mem_free(s->wal_path);
    mem_free(s);
}

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
    pthread_mutex_init(&s->write_mu, NULL);
    pthread_mutex_init(&s->index_mu, NULL);
    pthread_mutex_init(&s->stats_mu, NULL);
    hmap_init(&s->by_labels);
    hmap_init(&s->metadata);
    atomic_init(&s->readers, 0);
    s->mint = INT64_MAX;
    s->maxt = INT64_MIN;

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
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc < 0) goto fail;
    recompute_time_range(s);
    *out = s;
    return 0;

sqlfail:
    rc = sql_errno(sqlrc);
    open_error(err, s, "%s", s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(sqlrc));
fail:
    free_all(s);
    return rc;
}

void store_close(store *s)
{
    if (!s) return;
    int n = atomic_load(&s->readers);
    if (n != 0) log_error(COMPONENT, "store_close with %d reader(s) still open", n);
    free_all(s);
}

/* ---- series ---------------------------------------------------------------------- */

int store_series_ref(store *s, const labels *ls, uint64_t *ref, bool *created)
{
    if (created) *created = false;
    if (!ls || ls->n == 0) return -EINVAL;
    pthread_mutex_lock(&s->index_mu);
    series *se = hmap_get(&s->by_labels, labels_hash(ls), series_eq, ls);
    if (!se) {
        se = mem_calloc(1, sizeof *se);
        se->id = s->next_id++;
        se->ls = labels_dup(ls);
        index_add(s, se);
        s->pending = mem_grow(s->pending, sizeof *s->pending, s->npending + 1, &s->pending_cap);
        s->pending[s->npending++] = se;
        if (created) *created = true;
    }
    *ref = se->id;
    pthread_mutex_unlock(&s->index_mu);
    return 0;
}

/* Writes a series row and its postings. Caller holds write_mu, in a
 * transaction. */
static int write_series(store *s, const series *se, buf *enc)
{
    buf_reset(enc);
    labels_encode(se->ls, enc);
    size_t mlen;
    const char *metric = labels_metric_name(se->ls, &mlen);
    sqlite3_bind_int64(s->st.ins_series, 1, (int64_t)se->id);
    bind_bytes(s->st.ins_series, 2, enc->data, enc->len);
    bind_bytes(s->st.ins_series, 3, metric, mlen);
    int rc = step_done(s->st.ins_series);
    if (rc != SQLITE_OK) return rc;
    for (uint32_t i = 0; i < se->ls->n; i++) {
        const label *l = &se->ls->v[i];
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
        if (rc != SQLITE_OK) return rc;
        sqlite3_bind_int64(s->st.ins_posting, 1, lv_id);
        sqlite3_bind_int64(s->st.ins_posting, 2, (int64_t)se->id);
        rc = step_done(s->st.ins_posting);
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

/* ---- batches ------------------------------------------------------------------------ */

store_batch *store_batch_new(store *s)
{
    store_batch *b = mem_calloc(1, sizeof *b);
    b->s = s;
    return b;
}

void store_batch_add(store_batch *b, uint64_t ref, int64_t t_ms, double v)
{
    b->v = mem_grow(b->v, sizeof *b->v, b->n + 1, &b->cap);
    batch_sample *x = &b->v[b->n];
    x->ref = ref;
    x->t = t_ms;
    x->v = double_bits(v);
    x->seq = b->n;
    x->se = NULL;
    b->n++;
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
    mem_free(b);
}

/* Orders a batch by series (unknown references first), keeping the order
 * of each series' samples as added. */
static int cmp_batch_sample(const void *x, const void *y)
{
    const batch_sample *a = x, *b = y;
    uint64_t ia = a->se ? a->se->id : 0, ib = b->se ? b->se->id : 0;
    if (ia != ib) return ia < ib ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

typedef struct undo {
    series *se;
    int64_t last_t, min_t;
    uint64_t last_v;
    bool has_last, has_stored;
} undo;

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

int store_batch_commit(store_batch *b)
{
    store *s = b->s;
    pthread_mutex_lock(&s->write_mu);

    /* Resolve references and take the queue of unwritten series. */
    pthread_mutex_lock(&s->index_mu);
    series **pending = s->pending;
    size_t npending = s->npending;
    s->pending = NULL;
    s->npending = s->pending_cap = 0;
    uint64_t next_id = s->next_id;
    for (size_t i = 0; i < b->n; i++) {
        uint64_t ref = b->v[i].ref;
        b->v[i].se = ref < s->by_id_cap ? s->by_id[ref] : NULL;
    }
    pthread_mutex_unlock(&s->index_mu);

    size_t unknown = 0;
    if (b->n > 1) qsort(b->v, b->n, sizeof *b->v, cmp_batch_sample);
    while (unknown < b->n && !b->v[unknown].se)
        unknown++;
    if (unknown)
        log_warn(COMPONENT,
                 "dropping %zu sample(s) with unknown series references (first: %" PRIu64 ")",
                 unknown, b->v[0].ref);

    bool *written_meta = mem_calloc(b->nm ? b->nm : 1, sizeof *written_meta);
    undo *undos = NULL;
    size_t nundo = 0, undo_cap = 0;
    uint64_t appended = 0, ooo = 0, dup = 0;
    int64_t bmin = INT64_MAX, bmax = INT64_MIN;
    uint64_t gen = ++s->gen;
    const char *what = "BEGIN";
    buf enc;
    buf_init(&enc, BUF_UNLIMITED);
    int rc = SQLITE_OK;

    bool anything = npending > 0 || b->n > unknown || b->nm > 0;
    if (!anything) goto done;

    /* A transaction left open by a failed ROLLBACK would make every later
     * BEGIN fail; end it first. */
    if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
    if ((rc = step_done(s->st.begin)) != SQLITE_OK) goto fail;

    what = "writing series";
    for (size_t i = 0; i < npending; i++) {
        if ((rc = write_series(s, pending[i], &enc)) != SQLITE_OK) goto fail;
    }
    if (npending) {
        sqlite3_bind_text(s->st.set_meta, 1, "next_series_id", -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->st.set_meta, 2, (int64_t)next_id);
        if ((rc = step_done(s->st.set_meta)) != SQLITE_OK) goto fail;
    }

    what = "writing samples";
    for (size_t i = unknown; i < b->n; i++) {
        batch_sample *x = &b->v[i];
        series *se = x->se;
        if (se->gen != gen) {
            undos = mem_grow(undos, sizeof *undos, nundo + 1, &undo_cap);
            undos[nundo++] =
                (undo){se, se->last_t, se->min_t, se->last_v, se->has_last, se->has_stored};
            se->gen = gen;
        }
        if (se->has_last && x->t < se->last_t) {
            ooo++;
            continue;
        }
        if (se->has_last && x->t == se->last_t) {
            /* Prometheus: same value = duplicate (ignored), different value =
             * "duplicate sample for timestamp" (rejected as out of order). */
            if (x->v == se->last_v)
                dup++;
            else
                ooo++;
            continue;
        }
        sqlite3_bind_int64(s->st.ins_sample, 1, (int64_t)se->id);
        sqlite3_bind_int64(s->st.ins_sample, 2, x->t);
        sqlite3_bind_int64(s->st.ins_sample, 3, value_encode(x->v));
        if ((rc = step_done(s->st.ins_sample)) != SQLITE_OK) goto fail;
        se->last_t = x->t;
        se->last_v = x->v;
        se->has_last = true;
        if (!se->has_stored) {
            se->min_t = x->t;
            se->has_stored = true;
        }
        if (x->t < bmin) bmin = x->t;
        if (x->t > bmax) bmax = x->t;
        appended++;
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

done:
    for (size_t i = 0; i < b->nm; i++) {
        if (written_meta[i]) meta_cache_put(s, &b->m[i]);
    }
    pthread_mutex_lock(&s->stats_mu);
    s->stats.samples_appended += appended;
    s->stats.batches_committed++;
    s->stats.out_of_order_samples += ooo;
    s->stats.duplicate_samples += dup;
    if (bmin < s->mint) s->mint = bmin;
    if (bmax > s->maxt) s->maxt = bmax;
    pthread_mutex_unlock(&s->stats_mu);
    pthread_mutex_unlock(&s->write_mu);
    mem_free(pending);
    mem_free(undos);
    mem_free(written_meta);
    buf_cleanup(&enc);
    store_batch_free(b);
    return 0;

fail:;
    int err = sql_errno(rc);
    if (err == 0) err = -EIO;
    log_error(COMPONENT, "commit failed (%s): %s; %zu sample(s) not stored", what,
              sqlite3_errmsg(s->db), b->n);
    if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
    for (size_t i = 0; i < nundo; i++) {
        undos[i].se->last_t = undos[i].last_t;
        undos[i].se->last_v = undos[i].last_v;
        undos[i].se->min_t = undos[i].min_t;
        undos[i].se->has_last = undos[i].has_last;
        undos[i].se->has_stored = undos[i].has_stored;
    }
    /* Queue the series again, ahead of any created meanwhile. */
    pthread_mutex_lock(&s->index_mu);
    size_t total = npending + s->npending;
    size_t cap = npending;
    pending = mem_grow(pending, sizeof *pending, total, &cap);
    if (s->npending) memcpy(pending + npending, s->pending, s->npending * sizeof *pending);
    mem_free(s->pending);
    s->pending = pending;
    s->npending = total;
    s->pending_cap = cap;
    pthread_mutex_unlock(&s->index_mu);
    pthread_mutex_lock(&s->stats_mu);
    s->stats.commit_errors++;
    pthread_mutex_unlock(&s->stats_mu);
    pthread_mutex_unlock(&s->write_mu);
    mem_free(undos);
    mem_free(written_meta);
    buf_cleanup(&enc);
    store_batch_free(b);
    return err;
}

/* ---- retention ------------------------------------------------------------------------ */

int store_apply_retention(store *s, int64_t now_ms)
{
    if (s->retention_ms <= 0) return 0;
    if (now_ms < INT64_MIN + s->retention_ms) return 0;
    int64_t cutoff = now_ms - s->retention_ms;
    series *todo[STORE_RETENTION_SERIES_PER_TX];
    int64_t new_min[STORE_RETENTION_SERIES_PER_TX];
    bool still[STORE_RETENTION_SERIES_PER_TX];
    size_t cursor = 1;
    int ret = 0;
    for (;;) {
        pthread_mutex_lock(&s->write_mu);
        size_t n = 0;
        pthread_mutex_lock(&s->index_mu);
        size_t end = s->by_id_cap;
        while (cursor < end && n < STORE_RETENTION_SERIES_PER_TX) {
            series *se = s->by_id[cursor++];
            if (se && se->has_stored && se->min_t < cutoff) todo[n++] = se;
        }
        bool last = cursor >= end;
        pthread_mutex_unlock(&s->index_mu);
        if (n == 0) {
            pthread_mutex_unlock(&s->write_mu);
            if (last) break;
            continue;
        }
        uint64_t deleted = 0;
        if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
        int rc = step_done(s->st.begin);
        for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
            sqlite3_bind_int64(s->st.del_samples, 1, (int64_t)todo[i]->id);
            sqlite3_bind_int64(s->st.del_samples, 2, cutoff);
            rc = step_done(s->st.del_samples);
            if (rc != SQLITE_OK) break;
            deleted += (uint64_t)sqlite3_changes(s->db);
            sqlite3_bind_int64(s->st.first_t, 1, (int64_t)todo[i]->id);
            rc = sqlite3_step(s->st.first_t);
            still[i] = rc == SQLITE_ROW;
            new_min[i] = still[i] ? sqlite3_column_int64(s->st.first_t, 0) : 0;
            sqlite3_reset(s->st.first_t);
            rc = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
        }
        if (rc == SQLITE_OK) rc = step_done(s->st.commit);
        if (rc != SQLITE_OK) {
            log_error(COMPONENT, "retention failed: %s", sqlite3_errmsg(s->db));
            if (!sqlite3_get_autocommit(s->db)) step_done(s->st.rollback);
            ret = sql_errno(rc);
            pthread_mutex_unlock(&s->write_mu);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            todo[i]->min_t = new_min[i];
            todo[i]->has_stored = still[i];
        }
        pthread_mutex_lock(&s->stats_mu);
        s->stats.retention_deleted_samples += deleted;
        pthread_mutex_unlock(&s->stats_mu);
        pthread_mutex_unlock(&s->write_mu);
        if (last) break;
    }
    pthread_mutex_lock(&s->write_mu);
    recompute_time_range(s);
    pthread_mutex_unlock(&s->write_mu);
    return ret;
}

void store_get_stats(store *s, store_stats *out)
{
    pthread_mutex_lock(&s->stats_mu);
    *out = s->stats;
    bool empty = s->mint > s->maxt;
    out->min_time_ms = empty ? 0 : s->mint;
    out->max_time_ms = empty ? 0 : s->maxt;
    pthread_mutex_unlock(&s->stats_mu);
    pthread_mutex_lock(&s->index_mu);
    out->series = hmap_len(&s->by_labels);
    pthread_mutex_unlock(&s->index_mu);
    out->size_bytes = 0;
    stat_add_size(s->db_path, &out->size_bytes);
    stat_add_size(s->wal_path, &out->size_bytes);
}

/* ---- readers --------------------------------------------------------------------------- */

static void reader_free(store_reader *r)
{
    sqlite3_stmt **stmts = (sqlite3_stmt **)&r->st;
    for (size_t i = 0; i < sizeof r->st / sizeof(sqlite3_stmt *); i++)
        sqlite3_finalize(stmts[i]);
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
        R(postings, "SELECT series_id FROM postings WHERE lv_id = ?1"),
        R(series_labels, "SELECT labels FROM series WHERE id = ?1"),
        R(has_samples,
          "SELECT 1 FROM samples WHERE series_id = ?1 AND t >= ?2 AND t <= ?3 LIMIT 1"),
        R(samples, "SELECT t, v FROM samples WHERE series_id = ?1 AND t >= ?2 AND t <= ?3"
                   " ORDER BY t"),
        R(metadata, "SELECT type, help, unit FROM metadata WHERE metric = ?1"),
        R(names, "SELECT DISTINCT name FROM label_values ORDER BY name"),
        R(values, "SELECT value FROM label_values WHERE name = ?1 ORDER BY value"),
#undef R
    };
    *out = NULL;
    store_reader *r = mem_calloc(1, sizeof *r);
    r->s = s;
    int rc = sqlite3_open_v2(s->db_path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(r->db, STORE_BUSY_TIMEOUT_MS);
        for (size_t i = 0; i < sizeof stmts / sizeof stmts[0] && rc == SQLITE_OK; i++)
            rc = prepare(r->db, stmts[i].sql, (sqlite3_stmt **)((char *)r + stmts[i].off));
    }
    if (rc != SQLITE_OK) {
        log_error(COMPONENT, "opening a reader on %s: %s", s->db_path,
                  r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
        reader_free(r);
        return sql_errno(rc);
    }
    atomic_fetch_add(&s->readers, 1);
    *out = r;
    return 0;
}

void store_reader_close(store_reader *r)
{
    if (!r) return;
    atomic_fetch_sub(&r->s->readers, 1);
    reader_free(r);
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
        st = r->st.lv_name;
        bind_bytes(st, 1, m->name, m->name_len);
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

static int load_labels(store_reader *r, int64_t id, labels **out)
{
    sqlite3_stmt *st = r->st.series_labels;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    *out = NULL;
    if (rc == SQLITE_ROW) {
        const char *p;
        size_t len;
        column_bytes(st, 0, &p, &len);
        if (labels_decode(p, len, out) < 0) {
            log_error(COMPONENT, "corrupt labels in series row %" PRId64, id);
            rc = SQLITE_CORRUPT;
        } else {
            rc = SQLITE_OK;
        }
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK; /* not found: *out stays NULL */
    }
    sqlite3_reset(st);
    return rc;
}

static int has_samples(store_reader *r, int64_t id, int64_t mint, int64_t maxt, bool *yes)
{
    sqlite3_stmt *st = r->st.has_samples;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, mint);
    sqlite3_bind_int64(st, 3, maxt);
    int rc = sqlite3_step(st);
    *yes = rc == SQLITE_ROW;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int cmp_series(const void *x, const void *y)
{
    return labels_compare(((const store_series *)x)->labels, ((const store_series *)y)->labels);
}

/* A read transaction, so one call sees one snapshot, unless the caller
 * holds one. */
static int reader_begin(store_reader *r)
{
    return r->snapshot ? SQLITE_OK : step_done(r->st.begin);
}

static void reader_end(store_reader *r)
{
    if (!r->snapshot && !sqlite3_get_autocommit(r->db)) step_done(r->st.end);
}

int store_reader_begin(store_reader *r)
{
    if (r->snapshot) return -EINVAL;
    int rc = step_done(r->st.begin);
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
    if (!sqlite3_get_autocommit(r->db)) step_done(r->st.end);
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
        labels *ls;
        if ((rc = load_labels(r, ids.v[i], &ls)) != SQLITE_OK || !ls) continue;
        bool yes = false;
        if (labels_match_all(ls, ms, n)) rc = has_samples(r, ids.v[i], mint, maxt, &yes);
        if (!yes) {
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

void store_select_result_free(store_select_result *res)
{
    if (!res) return;
    for (size_t i = 0; i < res->n; i++)
        labels_free(res->series[i].labels);
    mem_free(res->series);
    res->series = NULL;
    res->n = 0;
}

int store_read_samples(store_reader *r, uint64_t ref, int64_t mint, int64_t maxt,
                       store_sample **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (mint > maxt) return 0;
    sqlite3_stmt *st = r->st.samples;
    sqlite3_bind_int64(st, 1, (int64_t)ref);
    sqlite3_bind_int64(st, 2, mint);
    sqlite3_bind_int64(st, 3, maxt);
    store_sample *v = NULL;
    size_t len = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        v = mem_grow(v, sizeof *v, len + 1, &cap);
        v[len].t = sqlite3_column_int64(st, 0);
        v[len].v = bits_double(value_decode(sqlite3_column_int64(st, 1)));
        len++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        log_error(COMPONENT, "reading samples: %s", sqlite3_errmsg(r->db));
        mem_free(v);
        return sql_errno(rc) ? sql_errno(rc) : -EIO;
    }
    *out = v;
    *n = len;
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
