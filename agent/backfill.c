#include "backfill.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "hmap.h"
#include "labels.h"
#include "log.h"
#include "mem.h"
#include "strutil.h"
#include "textparse.h"

/* One series of the file: its samples in file order. */
typedef struct bseries {
    const char *key; /* the series bytes in the input (borrowed) */
    size_t key_len;
    labels *ls;
    store_sample *v;
    size_t n, cap;
    bool sorted;
} bseries;

typedef struct key_view {
    const char *p;
    size_t len;
} key_view;

static bool series_eq(const void *val, const void *key)
{
    const bseries *s = val;
    const key_view *k = key;
    return s->key_len == k->len && memcmp(s->key, k->p, k->len) == 0;
}

static const char *view(arena *a, textparse_str s, size_t *len)
{
    if (!s.escaped) {
        *len = s.len;
        return s.p;
    }
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    textparse_unescape(s, false, buf_sink, &b);
    char *r = arena_strndup(a, buf_cstr(&b), b.len);
    *len = b.len;
    buf_cleanup(&b);
    return r ? r : "";
}

/* The labels of the current series (name, labels; le/quantile normalised as
 * Prometheus does), or NULL with err set for a duplicate label name. */
static labels *series_labels(textparse *p, buf *err)
{
    arena a;
    arena_init(&a, 0);
    labels_builder lb;
    labels_builder_init(&lb);
    size_t len;
    const char *name = view(&a, textparse_metric_name(p), &len);
    labels_builder_add(&lb, LABELS_METRIC_NAME, 8, name, len);
    for (size_t i = 0; i < textparse_label_count(p); i++) {
        textparse_str ln, lv;
        textparse_label(p, i, &ln, &lv);
        size_t nl, vl;
        const char *n = view(&a, ln, &nl);
        char norm[EXPFMT_FLOAT_MAX];
        const char *v;
        if (textparse_label_normalized(p, i, norm, &vl))
            v = arena_strndup(&a, norm, vl);
        else
            v = view(&a, lv, &vl);
        labels_builder_add(&lb, n, nl, v, vl);
    }
    const char *dup = NULL;
    labels *ls = labels_builder_finish(&lb, &dup);
    if (!ls) buf_printf(err, "duplicate label name \"%s\"", dup);
    labels_builder_cleanup(&lb);
    arena_cleanup(&a);
    return ls;
}

/* HELP, TYPE and UNIT of a metric family in the file. */
typedef struct bmeta {
    char *name, *help, *unit;
    enum expfmt_type type;
} bmeta;

typedef struct meta_list {
    bmeta *v;
    size_t n, cap;
} meta_list;

static bmeta *meta_for(meta_list *l, textparse_str name)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    textparse_unescape(name, false, buf_sink, &b);
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i].name, buf_cstr(&b)) == 0) {
            buf_cleanup(&b);
            return &l->v[i];
        }
    }
    l->v = mem_grow(l->v, sizeof *l->v, l->n + 1, &l->cap);
    bmeta *m = &l->v[l->n++];
    memset(m, 0, sizeof *m);
    m->name = buf_detach(&b, NULL);
    return m;
}

static char *text_of(textparse_str t)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    textparse_unescape(t, false, buf_sink, &b);
    return buf_detach(&b, NULL);
}

static void meta_free(meta_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        mem_free(l->v[i].name);
        mem_free(l->v[i].help);
        mem_free(l->v[i].unit);
    }
    mem_free(l->v);
}

static int cmp_sample(const void *x, const void *y)
{
    int64_t a = ((const store_sample *)x)->t, b = ((const store_sample *)y)->t;
    return a < b ? -1 : a > b;
}

static void free_all(bseries **all, size_t n, hmap *m)
{
    for (size_t i = 0; i < n; i++) {
        labels_free(all[i]->ls);
        mem_free(all[i]->v);
        mem_free(all[i]);
    }
    mem_free(all);
    hmap_cleanup(m);
}

int backfill_openmetrics(store *st, const char *data, size_t len, backfill_result *res, buf *err)
{
    memset(res, 0, sizeof *res);
    res->min_t = INT64_MAX;
    res->max_t = INT64_MIN;
    hmap m;
    hmap_init(&m);
    bseries **all = NULL;
    size_t n_all = 0, cap_all = 0;
    textparse p;
    textparse_init(&p, TEXTPARSE_OPENMETRICS, data, len);
    int rc = 0;
    meta_list metas = {0};

    /* 1. Parse and check everything; nothing is written yet. */
    for (;;) {
        enum textparse_entry e = textparse_next(&p);
        if (e == TEXTPARSE_END) break;
        if (e == TEXTPARSE_ERROR) {
            buf_printf(err, "%zu:%zu: %s", textparse_error_line(&p), textparse_error_column(&p),
                       textparse_error(&p));
            rc = -EINVAL;
            break;
        }
        if (e == TEXTPARSE_HELP || e == TEXTPARSE_TYPE || e == TEXTPARSE_UNIT) {
            bmeta *m = meta_for(&metas, textparse_meta_name(&p));
            if (e == TEXTPARSE_TYPE) {
                m->type = textparse_meta_type(&p);
            } else {
                char **slot = e == TEXTPARSE_HELP ? &m->help : &m->unit;
                mem_free(*slot);
                *slot = text_of(textparse_meta_text(&p));
            }
            continue;
        }
        if (e != TEXTPARSE_SERIES) continue;
        textparse_str k = textparse_series(&p);
        key_view kv = {k.p, k.len};
        uint64_t h = strutil_hash64(k.p, k.len, 0);
        bseries *s = hmap_get(&m, h, series_eq, &kv);
        if (!s) {
            labels *ls = series_labels(&p, err);
            if (!ls) {
                rc = -EINVAL;
                break;
            }
            s = mem_calloc(1, sizeof *s);
            s->key = k.p;
            s->key_len = k.len;
            s->ls = ls;
            s->sorted = true;
            hmap_put(&m, h, s);
            all = mem_grow(all, sizeof *all, n_all + 1, &cap_all);
            all[n_all++] = s;
        }
        int64_t t;
        if (!textparse_timestamp(&p, &t)) {
            buf_puts(err, "expected timestamp for series ");
            labels_format(s->ls, err);
            buf_puts(err, ", got none");
            rc = -EINVAL;
            break;
        }
        if (s->n == s->cap) s->v = mem_grow(s->v, sizeof *s->v, s->n + 1, &s->cap);
        if (s->n && t <= s->v[s->n - 1].t) s->sorted = false;
        s->v[s->n].t = t;
        s->v[s->n].v = textparse_value(&p);
        s->n++;
        if (t < res->min_t) res->min_t = t;
        if (t > res->max_t) res->max_t = t;
    }
    textparse_cleanup(&p);

    /* 2. Order each series, keep one sample per timestamp (identical
     * duplicates are dropped; conflicting values are an error). */
    for (size_t i = 0; rc == 0 && i < n_all; i++) {
        bseries *s = all[i];
        if (s->sorted) continue;
        qsort(s->v, s->n, sizeof *s->v, cmp_sample);
        size_t k = 0;
        for (size_t j = 0; j < s->n; j++) {
            if (k && s->v[k - 1].t == s->v[j].t) {
                uint64_t a, b;
                memcpy(&a, &s->v[k - 1].v, 8);
                memcpy(&b, &s->v[j].v, 8);
                if (a != b) {
                    buf_puts(err, "conflicting values for series ");
                    labels_format(s->ls, err);
                    buf_printf(err, " at timestamp %" PRId64, s->v[j].t);
                    rc = -EINVAL;
                    break;
                }
                res->duplicates++;
                continue;
            }
            s->v[k++] = s->v[j];
        }
        s->n = k;
    }

    /* 3. Write. */
    if (rc == 0) {
        store_import *im = NULL;
        rc = store_import_begin(st, &im);
        for (size_t i = 0; rc == 0 && i < n_all; i++) {
            rc = store_import_series(im, all[i]->ls, all[i]->v, all[i]->n);
            if (rc == 0) {
                res->series++;
                res->samples += all[i]->n;
            }
        }
        int frc = store_import_finish(im);
        if (rc == 0) rc = frc;
        if (rc == 0 && metas.n) {
            store_batch *b = store_batch_new(st);
            for (size_t i = 0; i < metas.n; i++)
                store_batch_metadata(b, metas.v[i].name, metas.v[i].type, metas.v[i].help,
                                     metas.v[i].unit);
            rc = store_batch_commit(b);
        }
        if (rc < 0) buf_printf(err, "writing to the store failed: %s", strerror(-rc));
    }
    if (res->samples == 0) res->min_t = res->max_t = 0;
    free_all(all, n_all, &m);
    meta_free(&metas);
    return rc;
}

int backfill_openmetrics_file(store *st, const char *path, backfill_result *res, buf *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        buf_printf(err, "%s: %s", path, strerror(e));
        return -e;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        buf_printf(err, "%s: not a regular file", path);
        close(fd);
        return -EINVAL;
    }
    if (sb.st_size > BACKFILL_MAX_FILE_BYTES) {
        buf_printf(err, "%s: larger than %lld bytes", path, (long long)BACKFILL_MAX_FILE_BYTES);
        close(fd);
        return -E2BIG;
    }
    size_t len = (size_t)sb.st_size;
    const char *data = "";
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            buf_printf(err, "%s: %s", path, strerror(e));
            close(fd);
            return -e;
        }
        madvise(map, len, MADV_SEQUENTIAL);
        data = map;
    }
    close(fd);
    size_t before = err->len;
    int rc = backfill_openmetrics(st, data, len, res, err);
    if (rc < 0 && err->len > before) {
        /* Prefix the file name to the message. */
        buf msg;
        buf_init(&msg, BUF_UNLIMITED);
        char c = err->data[before];
        buf_printf(&msg, "%s:%s", path, c >= '0' && c <= '9' ? "" : " ");
        buf_append(&msg, err->data + before, err->len - before);
        buf_truncate(err, before);
        buf_append(err, msg.data, msg.len);
        buf_cleanup(&msg);
    }
    if (map) munmap(map, len);
    return rc;
}
