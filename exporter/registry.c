#include "registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct registry_metric {
    registry_family *fam;
    char **values;
    size_t holders;            /* registry_acquire count; guarded by the registry mutex */
    _Atomic uint64_t bits;     /* counter/gauge value, or histogram sum */
    _Atomic uint64_t count;    /* histogram observations */
    _Atomic uint64_t *buckets; /* histogram: n_bounds + 1 non-cumulative counts */
};

struct registry_family {
    registry *r;
    char *name, *help;
    enum expfmt_type type;
    char **label_names;
    size_t n_labels;
    double *bounds;
    size_t n_bounds;
    registry_metric **children;
    size_t n_children, cap_children;
};

typedef struct collector {
    registry_collector_fn fn;
    void *ctx;
} collector;

struct registry {
    pthread_mutex_t mu;
    registry_family **fams;
    size_t n_fams, cap_fams;
    collector *collectors;
    size_t n_collectors, cap_collectors;
};

/* ---- collected families (built during registry_write) ---- */

typedef struct csample {
    textwrite_label *labels;
    size_t n;
    double v;
} csample;

typedef struct cfamily {
    char *name, *help;
    enum expfmt_type type;
    csample *samples;
    size_t n, cap;
} cfamily;

struct registry_collect {
    cfamily *fams;
    size_t n, cap;
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) abort();
    return q;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) abort();
    return d;
}

static double bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

registry *registry_new(void)
{
    registry *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void free_strv(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_metric(registry_metric *m)
{
    free_strv(m->values, m->fam->n_labels);
    free((void *)m->buckets);
    free(m);
}

void registry_free(registry *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_fams; i++) {
        registry_family *f = r->fams[i];
        for (size_t j = 0; j < f->n_children; j++)
            free_metric(f->children[j]);
        free(f->children);
        free(f->name);
        free(f->help);
        free_strv(f->label_names, f->n_labels);
        free(f->bounds);
        free(f);
    }
    free(r->fams);
    free(r->collectors);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static registry_family *add_family(registry *r, const char *name, const char *help,
                                   enum expfmt_type type, const char *const *label_names,
                                   const double *bounds, size_t n_bounds)
{
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_fams; i++) {
        if (strcmp(r->fams[i]->name, name) == 0) {
            registry_family *f = r->fams[i]->type == type ? r->fams[i] : NULL;
            pthread_mutex_unlock(&r->mu);
            return f;
        }
    }
    registry_family *f = calloc(1, sizeof *f);
    if (!f) abort();
    f->r = r;
    f->name = xstrdup(name);
    f->help = xstrdup(help);
    f->type = type;
    while (label_names && label_names[f->n_labels])
        f->n_labels++;
    if (f->n_labels) {
        f->label_names = xrealloc(NULL, f->n_labels * sizeof(char *));
        for (size_t i = 0; i < f->n_labels; i++)
            f->label_names[i] = xstrdup(label_names[i]);
    }
    if (n_bounds) {
        f->bounds = xrealloc(NULL, n_bounds * sizeof(double));
        memcpy(f->bounds, bounds, n_bounds * sizeof(double));
        f->n_bounds = n_bounds;
    }
    if (r->n_fams == r->cap_fams) {
        r->cap_fams = r->cap_fams ? r->cap_fams * 2 : 16;
        r->fams = xrealloc(r->fams, r->cap_fams * sizeof *r->fams);
    }
    r->fams[r->n_fams++] = f;
    pthread_mutex_unlock(&r->mu);
    return f;
}

registry_family *registry_counter(registry *r, const char *name, const char *help,
                                  const char *const *label_names)
{
    return add_family(r, name, help, EXPFMT_COUNTER, label_names, NULL, 0);
}

registry_family *registry_gauge(registry *r, const char *name, const char *help,
                                const char *const *label_names)
{
    return add_family(r, name, help, EXPFMT_GAUGE, label_names, NULL, 0);
}

registry_family *registry_histogram(registry *r, const char *name, const char *help,
                                    const char *const *label_names, const double *bounds,
                                    size_t n_bounds)
{
    return add_family(r, name, help, EXPFMT_HISTOGRAM, label_names, bounds, n_bounds);
}

static bool values_equal(const registry_family *f, char **a, const char *const *b)
{
    for (size_t i = 0; i < f->n_labels; i++) {
        if (strcmp(a[i], b[i] ? b[i] : "") != 0) return false;
    }
    return true;
}

registry_metric *registry_child(registry_family *f, const char *const *label_values)
{
    registry *r = f->r;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < f->n_children; i++) {
        if (values_equal(f, f->children[i]->values, label_values)) {
            registry_metric *m = f->children[i];
            pthread_mutex_unlock(&r->mu);
            return m;
        }
    }
    registry_metric *m = calloc(1, sizeof *m);
    if (!m) abort();
    m->fam = f;
    if (f->n_labels) {
        m->values = xrealloc(NULL, f->n_labels * sizeof(char *));
        for (size_t i = 0; i < f->n_labels; i++)
            m->values[i] = xstrdup(label_values[i]);
    }
    if (f->type == EXPFMT_HISTOGRAM) {
        m->buckets = calloc(f->n_bounds + 1, sizeof(uint64_t));
        if (!m->buckets) abort();
    }
    if (f->n_children == f->cap_children) {
        f->cap_children = f->cap_children ? f->cap_children * 2 : 4;
        f->children = xrealloc(f->children, f->cap_children * sizeof *f->children);
    }
    f->children[f->n_children++] = m;
    pthread_mutex_unlock(&r->mu);
    return m;
}

void registry_family_remove(registry_family *f, const char *const *label_values)
{
    registry *r = f->r;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < f->n_children; i++) {
        if (values_equal(f, f->children[i]->values, label_values)) {
            free_metric(f->children[i]);
            f->children[i] = f->children[--f->n_children];
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
}

registry_metric *registry_acquire(registry_family *f, const char *const *label_values)
{
    registry_metric *m = registry_child(f, label_values);
    pthread_mutex_lock(&f->r->mu);
    m->holders++;
    pthread_mutex_unlock(&f->r->mu);
    return m;
}

void registry_release(registry_metric *m)
{
    if (!m) return;
    registry_family *f = m->fam;
    pthread_mutex_lock(&f->r->mu);
    if (m->holders > 0) m->holders--;
    if (m->holders == 0) {
        for (size_t i = 0; i < f->n_children; i++) {
            if (f->children[i] == m) {
                f->children[i] = f->children[--f->n_children];
                free_metric(m);
                break;
            }
        }
    }
    pthread_mutex_unlock(&f->r->mu);
}

static void atomic_add_double(_Atomic uint64_t *bits, double v)
{
    uint64_t old = atomic_load(bits);
    for (;;) {
        uint64_t nv = double_to_bits(bits_to_double(old) + v);
        if (atomic_compare_exchange_weak(bits, &old, nv)) return;
    }
}

void registry_inc(registry_metric *m)
{
    atomic_add_double(&m->bits, 1);
}

void registry_add(registry_metric *m, double v)
{
    atomic_add_double(&m->bits, v);
}

void registry_set(registry_metric *m, double v)
{
    atomic_store(&m->bits, double_to_bits(v));
}

void registry_observe(registry_metric *m, double v)
{
    registry_family *f = m->fam;
    if (!m->buckets) return;
    size_t i = 0;
    while (i < f->n_bounds && v > f->bounds[i])
        i++;
    atomic_fetch_add(&m->buckets[i], 1);
    atomic_add_double(&m->bits, v);
    atomic_fetch_add(&m->count, 1);
}

double registry_value(registry_metric *m)
{
    if (m->buckets) return (double)atomic_load(&m->count);
    return bits_to_double(atomic_load(&m->bits));
}

void registry_add_collector(registry *r, registry_collector_fn fn, void *ctx)
{
    pthread_mutex_lock(&r->mu);
    if (r->n_collectors == r->cap_collectors) {
        r->cap_collectors = r->cap_collectors ? r->cap_collectors * 2 : 4;
        r->collectors = xrealloc(r->collectors, r->cap_collectors * sizeof *r->collectors);
    }
    r->collectors[r->n_collectors].fn = fn;
    r->collectors[r->n_collectors].ctx = ctx;
    r->n_collectors++;
    pthread_mutex_unlock(&r->mu);
}

void registry_collect_family(registry_collect *c, const char *name, const char *help,
                             enum expfmt_type type)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->fams = xrealloc(c->fams, c->cap * sizeof *c->fams);
    }
    cfamily *f = &c->fams[c->n++];
    memset(f, 0, sizeof *f);
    f->name = xstrdup(name);
    f->help = xstrdup(help);
    f->type = type;
}

void registry_collect_sample(registry_collect *c, const textwrite_label *labels, size_t n, double v)
{
    if (c->n == 0) return;
    cfamily *f = &c->fams[c->n - 1];
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->samples = xrealloc(f->samples, f->cap * sizeof *f->samples);
    }
    csample *s = &f->samples[f->n++];
    s->n = n;
    s->v = v;
    s->labels = n ? xrealloc(NULL, n * sizeof *s->labels) : NULL;
    for (size_t i = 0; i < n; i++) {
        char *name = malloc(labels[i].name_len + 1), *value = malloc(labels[i].value_len + 1);
        if (!name || !value) abort();
        memcpy(name, labels[i].name, labels[i].name_len);
        name[labels[i].name_len] = '\0';
        memcpy(value, labels[i].value, labels[i].value_len);
        value[labels[i].value_len] = '\0';
        s->labels[i] = (textwrite_label){name, labels[i].name_len, value, labels[i].value_len};
    }
}

static void collect_free(registry_collect *c)
{
    for (size_t i = 0; i < c->n; i++) {
        cfamily *f = &c->fams[i];
        for (size_t j = 0; j < f->n; j++) {
            for (size_t k = 0; k < f->samples[j].n; k++) {
                free((void *)f->samples[j].labels[k].name);
                free((void *)f->samples[j].labels[k].value);
            }
            free(f->samples[j].labels);
        }
        free(f->samples);
        free(f->name);
        free(f->help);
    }
    free(c->fams);
}

/* One family to write: either registered or collected. */
typedef struct fview {
    const char *name;
    registry_family *reg;
    cfamily *col;
} fview;

static int cmp_fview(const void *a, const void *b)
{
    return strcmp(((const fview *)a)->name, ((const fview *)b)->name);
}

static int cmp_child(const void *a, const void *b, void *fam)
{
    const registry_family *f = fam;
    const registry_metric *x = *(registry_metric *const *)a, *y = *(registry_metric *const *)b;
    for (size_t i = 0; i < f->n_labels; i++) {
        int c = strcmp(x->values[i], y->values[i]);
        if (c) return c;
    }
    return 0;
}

static void write_registered(textwrite *w, registry_family *f, textwrite_label *lbuf)
{
    size_t nlen = strlen(f->name);
    registry_metric **kids = xrealloc(NULL, (f->n_children + 1) * sizeof *kids);
    memcpy(kids, f->children, f->n_children * sizeof *kids);
    qsort_r(kids, f->n_children, sizeof *kids, cmp_child, f);
    for (size_t c = 0; c < f->n_children; c++) {
        registry_metric *m = kids[c];
        for (size_t i = 0; i < f->n_labels; i++) {
            lbuf[i] = (textwrite_label){f->label_names[i], strlen(f->label_names[i]), m->values[i],
                                        strlen(m->values[i])};
        }
        if (f->type != EXPFMT_HISTOGRAM) {
            textwrite_sample(w, f->name, nlen, lbuf, f->n_labels,
                             bits_to_double(atomic_load(&m->bits)), NULL);
            continue;
        }
        char bucket_name[512], le[EXPFMT_FLOAT_MAX];
        snprintf(bucket_name, sizeof bucket_name, "%s_bucket", f->name);
        uint64_t cum = 0;
        for (size_t b = 0; b <= f->n_bounds; b++) {
            cum += atomic_load(&m->buckets[b]);
            size_t lelen;
            if (b == f->n_bounds) {
                memcpy(le, "+Inf", 5);
                lelen = 4;
            } else if (w->format == TEXTPARSE_OPENMETRICS) {
                lelen = expfmt_format_om_float(f->bounds[b], le);
            } else {
                lelen = expfmt_format_float(f->bounds[b], le);
            }
            lbuf[f->n_labels] = (textwrite_label){"le", 2, le, lelen};
            textwrite_sample(w, bucket_name, strlen(bucket_name), lbuf, f->n_labels + 1,
                             (double)cum, NULL);
        }
        char name2[512];
        snprintf(name2, sizeof name2, "%s_sum", f->name);
        textwrite_sample(w, name2, strlen(name2), lbuf, f->n_labels,
                         bits_to_double(atomic_load(&m->bits)), NULL);
        snprintf(name2, sizeof name2, "%s_count", f->name);
        textwrite_sample(w, name2, strlen(name2), lbuf, f->n_labels, (double)cum, NULL);
    }
    free(kids);
}

int registry_write(registry *r, enum textparse_format format, expfmt_sink sink, void *ctx)
{
    registry_collect col = {0};
    pthread_mutex_lock(&r->mu);
    size_t n_collectors = r->n_collectors;
    collector *cs = xrealloc(NULL, (n_collectors + 1) * sizeof *cs);
    if (n_collectors) memcpy(cs, r->collectors, n_collectors * sizeof *cs);
    pthread_mutex_unlock(&r->mu);
    /* Collectors run without the registry lock: they may be slow (reading
     * /proc, the database) and must not block counters being created. */
    for (size_t i = 0; i < n_collectors; i++)
        cs[i].fn(&col, cs[i].ctx);
    free(cs);

    pthread_mutex_lock(&r->mu);
    size_t n = r->n_fams + col.n;
    fview *views = xrealloc(NULL, (n + 1) * sizeof *views);
    size_t max_labels = 0;
    for (size_t i = 0; i < r->n_fams; i++) {
        views[i] = (fview){r->fams[i]->name, r->fams[i], NULL};
        if (r->fams[i]->n_labels > max_labels) max_labels = r->fams[i]->n_labels;
    }
    for (size_t i = 0; i < col.n; i++)
        views[r->n_fams + i] = (fview){col.fams[i].name, NULL, &col.fams[i]};
    qsort(views, n, sizeof *views, cmp_fview);

    textwrite w;
    textwrite_init(&w, format, sink, ctx);
    textwrite_label *lbuf = xrealloc(NULL, (max_labels + 1) * sizeof *lbuf);
    for (size_t i = 0; i < n; i++) {
        const char *name = views[i].name;
        size_t nlen = strlen(name);
        if (views[i].reg) {
            registry_family *f = views[i].reg;
            if (f->n_children == 0) continue;
            textwrite_help(&w, name, nlen, f->help, strlen(f->help));
            textwrite_type(&w, name, nlen, f->type);
            write_registered(&w, f, lbuf);
        } else {
            cfamily *f = views[i].col;
            if (f->n == 0) continue;
            textwrite_help(&w, name, nlen, f->help, strlen(f->help));
            textwrite_type(&w, name, nlen, f->type);
            for (size_t j = 0; j < f->n; j++)
                textwrite_sample(&w, name, nlen, f->samples[j].labels, f->samples[j].n,
                                 f->samples[j].v, NULL);
        }
    }
    textwrite_eof(&w);
    pthread_mutex_unlock(&r->mu);
    free(lbuf);
    free(views);
    collect_free(&col);
    return textwrite_error(&w);
}
