#include "registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <protobuf-c/protobuf-c.h>

#include "metrics.pb-c.h"

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

/* Runs the collectors, then locks the registry and lists every family
 * (registered and collected) sorted by name. The caller writes, then calls
 * gather_done. */
typedef struct gathered {
    registry_collect col;
    fview *views;
    size_t n, max_labels;
} gathered;

static void gather(registry *r, gathered *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_lock(&r->mu);
    size_t n_collectors = r->n_collectors;
    collector *cs = xrealloc(NULL, (n_collectors + 1) * sizeof *cs);
    if (n_collectors) memcpy(cs, r->collectors, n_collectors * sizeof *cs);
    pthread_mutex_unlock(&r->mu);
    /* Collectors run without the registry lock: they may be slow (reading
     * /proc, the database) and must not block counters being created. */
    for (size_t i = 0; i < n_collectors; i++)
        cs[i].fn(&g->col, cs[i].ctx);
    free(cs);

    pthread_mutex_lock(&r->mu);
    g->n = r->n_fams + g->col.n;
    g->views = xrealloc(NULL, (g->n + 1) * sizeof *g->views);
    for (size_t i = 0; i < r->n_fams; i++) {
        g->views[i] = (fview){r->fams[i]->name, r->fams[i], NULL};
        if (r->fams[i]->n_labels > g->max_labels) g->max_labels = r->fams[i]->n_labels;
    }
    for (size_t i = 0; i < g->col.n; i++)
        g->views[r->n_fams + i] = (fview){g->col.fams[i].name, NULL, &g->col.fams[i]};
    qsort(g->views, g->n, sizeof *g->views, cmp_fview);
}

static void gather_done(registry *r, gathered *g)
{
    pthread_mutex_unlock(&r->mu);
    free(g->views);
    collect_free(&g->col);
}

int registry_write(registry *r, enum textparse_format format, expfmt_sink sink, void *ctx)
{
    gathered g;
    gather(r, &g);
    textwrite w;
    textwrite_init(&w, format, sink, ctx);
    textwrite_label *lbuf = xrealloc(NULL, (g.max_labels + 1) * sizeof *lbuf);
    for (size_t i = 0; i < g.n; i++) {
        const char *name = g.views[i].name;
        size_t nlen = strlen(name);
        if (g.views[i].reg) {
            registry_family *f = g.views[i].reg;
            if (f->n_children == 0) continue;
            textwrite_help(&w, name, nlen, f->help, strlen(f->help));
            textwrite_type(&w, name, nlen, f->type);
            write_registered(&w, f, lbuf);
        } else {
            cfamily *f = g.views[i].col;
            if (f->n == 0) continue;
            textwrite_help(&w, name, nlen, f->help, strlen(f->help));
            textwrite_type(&w, name, nlen, f->type);
            for (size_t j = 0; j < f->n; j++)
                textwrite_sample(&w, name, nlen, f->samples[j].labels, f->samples[j].n,
                                 f->samples[j].v, NULL);
        }
    }
    textwrite_eof(&w);
    gather_done(r, &g);
    free(lbuf);
    return textwrite_error(&w);
}

/* ---- the protobuf format ------------------------------------------------------ */

typedef Io__Prometheus__Client__LabelPair pb_label;
typedef Io__Prometheus__Client__Metric pb_metric;

/* Label pairs of one metric, sorted by name as client_golang sorts them. */
static int cmp_pb_label(const void *a, const void *b)
{
    const pb_label *x = *(pb_label *const *)a, *y = *(pb_label *const *)b;
    size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = memcmp(x->name.data, y->name.data, n);
    if (c) return c;
    return x->name.len < y->name.len ? -1 : x->name.len > y->name.len;
}

static ProtobufCBinaryData pb_str(const char *s, size_t n)
{
    return (ProtobufCBinaryData){n, (uint8_t *)(uintptr_t)s};
}

/* Packs mf after its length as a varint into the sink. */
static int pack_family(const Io__Prometheus__Client__MetricFamily *mf, expfmt_sink sink, void *ctx)
{
    size_t n = io__prometheus__client__metric_family__get_packed_size(mf);
    uint8_t *buf = xrealloc(NULL, n + 10);
    size_t v = 0;
    for (uint64_t x = n; ; x >>= 7) {
        buf[v++] = (uint8_t)(x >= 0x80 ? (x & 0x7f) | 0x80 : x);
        if (x < 0x80) break;
    }
    io__prometheus__client__metric_family__pack(mf, buf + v);
    int rc = sink(ctx, (const char *)buf, v + n);
    free(buf);
    return rc;
}

static Io__Prometheus__Client__MetricType pb_type(enum expfmt_type t)
{
    switch (t) {
    case EXPFMT_COUNTER: return IO__PROMETHEUS__CLIENT__METRIC_TYPE__COUNTER;
    case EXPFMT_GAUGE: return IO__PROMETHEUS__CLIENT__METRIC_TYPE__GAUGE;
    case EXPFMT_HISTOGRAM: return IO__PROMETHEUS__CLIENT__METRIC_TYPE__HISTOGRAM;
    case EXPFMT_SUMMARY: return IO__PROMETHEUS__CLIENT__METRIC_TYPE__SUMMARY;
    case EXPFMT_GAUGEHISTOGRAM: return IO__PROMETHEUS__CLIENT__METRIC_TYPE__GAUGE_HISTOGRAM;
    default: return IO__PROMETHEUS__CLIENT__METRIC_TYPE__UNTYPED;
    }
}

/* Storage for one metric's message and its parts. */
typedef struct pb_one {
    pb_metric m;
    Io__Prometheus__Client__Counter counter;
    Io__Prometheus__Client__Gauge gauge;
    Io__Prometheus__Client__Untyped untyped;
    Io__Prometheus__Client__Histogram hist;
    pb_label *labels;
    pb_label **label_ptrs;
    Io__Prometheus__Client__Bucket *buckets;
    Io__Prometheus__Client__Bucket **bucket_ptrs;
} pb_one;

static void pb_one_init(pb_one *o, enum expfmt_type t, size_t n_labels, double v)
{
    memset(o, 0, sizeof *o);
    io__prometheus__client__metric__init(&o->m);
    io__prometheus__client__counter__init(&o->counter);
    io__prometheus__client__gauge__init(&o->gauge);
    io__prometheus__client__untyped__init(&o->untyped);
    io__prometheus__client__histogram__init(&o->hist);
    o->labels = xrealloc(NULL, (n_labels + 1) * sizeof *o->labels);
    o->label_ptrs = xrealloc(NULL, (n_labels + 1) * sizeof *o->label_ptrs);
    switch (t) {
    case EXPFMT_COUNTER: o->counter.value = v, o->m.counter = &o->counter; break;
    case EXPFMT_GAUGE: o->gauge.value = v, o->m.gauge = &o->gauge; break;
    case EXPFMT_HISTOGRAM: o->m.histogram = &o->hist; break;
    default: o->untyped.value = v, o->m.untyped = &o->untyped; break;
    }
}

static void pb_one_label(pb_one *o, const char *n, size_t nl, const char *v, size_t vl)
{
    pb_label *l = &o->labels[o->m.n_label];
    io__prometheus__client__label_pair__init(l);
    l->name = pb_str(n, nl);
    l->value = pb_str(v, vl);
    o->label_ptrs[o->m.n_label++] = l;
    o->m.label = o->label_ptrs;
}

static void pb_one_free(pb_one *o)
{
    free(o->labels);
    free(o->label_ptrs);
    free(o->buckets);
    free(o->bucket_ptrs);
}

int registry_write_protobuf(registry *r, expfmt_sink sink, void *ctx)
{
    gathered g;
    gather(r, &g);
    int rc = 0;
    for (size_t i = 0; i < g.n && rc == 0; i++) {
        Io__Prometheus__Client__MetricFamily mf;
        io__prometheus__client__metric_family__init(&mf);
        mf.name = pb_str(g.views[i].name, strlen(g.views[i].name));
        size_t n = 0;
        pb_one *ones = NULL;
        if (g.views[i].reg) {
            registry_family *f = g.views[i].reg;
            if (f->n_children == 0) continue;
            mf.help = pb_str(f->help, strlen(f->help));
            mf.type = pb_type(f->type);
            registry_metric **kids = xrealloc(NULL, (f->n_children + 1) * sizeof *kids);
            memcpy(kids, f->children, f->n_children * sizeof *kids);
            qsort_r(kids, f->n_children, sizeof *kids, cmp_child, f);
            n = f->n_children;
            ones = xrealloc(NULL, n * sizeof *ones);
            for (size_t c = 0; c < n; c++) {
                registry_metric *m = kids[c];
                pb_one *o = &ones[c];
                pb_one_init(o, f->type, f->n_labels, bits_to_double(atomic_load(&m->bits)));
                for (size_t l = 0; l < f->n_labels; l++)
                    pb_one_label(o, f->label_names[l], strlen(f->label_names[l]), m->values[l],
                                 strlen(m->values[l]));
                if (f->type == EXPFMT_HISTOGRAM) {
                    /* client_golang: cumulative counts, no +Inf bucket. */
                    o->buckets = xrealloc(NULL, (f->n_bounds + 1) * sizeof *o->buckets);
                    o->bucket_ptrs = xrealloc(NULL, (f->n_bounds + 1) * sizeof *o->bucket_ptrs);
                    uint64_t cum = 0;
                    for (size_t b = 0; b <= f->n_bounds; b++) {
                        cum += atomic_load(&m->buckets[b]);
                        if (b == f->n_bounds) break;
                        io__prometheus__client__bucket__init(&o->buckets[b]);
                        o->buckets[b].cumulative_count = cum;
                        o->buckets[b].upper_bound = f->bounds[b];
                        o->bucket_ptrs[b] = &o->buckets[b];
                    }
                    o->hist.sample_count = cum;
                    o->hist.sample_sum = bits_to_double(atomic_load(&m->bits));
                    o->hist.n_bucket = f->n_bounds;
                    o->hist.bucket = o->bucket_ptrs;
                }
            }
            free(kids);
        } else {
            cfamily *f = g.views[i].col;
            if (f->n == 0) continue;
            mf.help = pb_str(f->help, strlen(f->help));
            /* Collected samples are single values: counters, gauges or untyped. */
            enum expfmt_type t = f->type == EXPFMT_COUNTER || f->type == EXPFMT_GAUGE
                                     ? f->type
                                     : EXPFMT_UNKNOWN;
            mf.type = pb_type(t);
            n = f->n;
            ones = xrealloc(NULL, n * sizeof *ones);
            for (size_t j = 0; j < n; j++) {
                pb_one_init(&ones[j], t, f->samples[j].n, f->samples[j].v);
                for (size_t l = 0; l < f->samples[j].n; l++) {
                    const textwrite_label *tl = &f->samples[j].labels[l];
                    pb_one_label(&ones[j], tl->name, tl->name_len, tl->value, tl->value_len);
                }
            }
        }
        pb_metric **mp = xrealloc(NULL, (n + 1) * sizeof *mp);
        for (size_t j = 0; j < n; j++) {
            qsort(ones[j].label_ptrs, ones[j].m.n_label, sizeof *ones[j].label_ptrs, cmp_pb_label);
            mp[j] = &ones[j].m;
        }
        mf.n_metric = n;
        mf.metric = mp;
        rc = pack_family(&mf, sink, ctx);
        for (size_t j = 0; j < n; j++)
            pb_one_free(&ones[j]);
        free(ones);
        free(mp);
    }
    gather_done(r, &g);
    return rc;
}

/* ---- content negotiation -------------------------------------------------------- */

typedef struct accept_entry {
    const char *type;
    size_t type_len, sub_len;
    const char *sub;
    const char *params; /* after the media range, up to params_end */
    const char *params_end;
    double q;
    size_t pos;
} accept_entry;

static bool eq_ci(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

static const char *trim(const char *s, const char *e, const char **end)
{
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *end = e;
    return s;
}

/* The value of parameter `key` in an accept entry (goautoneg keeps the
 * last one), or NULL. */
static const char *accept_param(const accept_entry *a, const char *key, size_t *len)
{
    const char *found = NULL;
    const char *s = a->params;
    while (s && s < a->params_end) {
        const char *semi = memchr(s, ';', (size_t)(a->params_end - s));
        const char *pe = semi ? semi : a->params_end;
        const char *eq = memchr(s, '=', (size_t)(pe - s));
        if (eq) {
            const char *ke, *ve;
            const char *k = trim(s, eq, &ke);
            const char *v = trim(eq + 1, pe, &ve);
            if (eq_ci(k, (size_t)(ke - k), key)) {
                found = v;
                *len = (size_t)(ve - v);
            }
        }
        s = semi ? semi + 1 : NULL;
    }
    return found;
}

static bool param_is(const accept_entry *a, const char *key, const char *want, bool empty_ok)
{
    size_t n = 0;
    const char *v = accept_param(a, key, &n);
    if (!v) return empty_ok;
    if (n == 0) return empty_ok;
    return n == strlen(want) && memcmp(v, want, n) == 0;
}

static int cmp_accept(const void *x, const void *y)
{
    const accept_entry *a = x, *b = y;
    if (a->q != b->q) return a->q > b->q ? -1 : 1;
    bool at = !(a->type_len == 1 && a->type[0] == '*'), bt = !(b->type_len == 1 && b->type[0] == '*');
    if (at != bt) return at ? -1 : 1;
    bool as = !(a->sub_len == 1 && a->sub[0] == '*'), bs = !(b->sub_len == 1 && b->sub[0] == '*');
    if (as != bs) return as ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

bool registry_negotiate_protobuf(const char *accept)
{
    if (!accept) return false;
    accept_entry es[32];
    size_t n = 0;
    const char *p = accept;
    while (*p && n < sizeof es / sizeof es[0]) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *re;
        const char *range = trim(p, semi ? semi : end, &re);
        const char *slash = memchr(range, '/', (size_t)(re - range));
        if (slash) {
            accept_entry *a = &es[n];
            a->type = range;
            a->type_len = (size_t)(slash - range);
            a->sub = slash + 1;
            a->sub_len = (size_t)(re - slash - 1);
            a->params = semi ? semi + 1 : NULL;
            a->params_end = end;
            a->q = 1;
            a->pos = n;
            size_t ql;
            const char *q = accept_param(a, "q", &ql);
            if (q) {
                char tmp[32] = {0};
                memcpy(tmp, q, ql < sizeof tmp - 1 ? ql : sizeof tmp - 1);
                a->q = strtod(tmp, NULL);
            }
            n++;
        }
        if (!comma) break;
        p = comma + 1;
    }
    qsort(es, n, sizeof es[0], cmp_accept);
    /* client_golang's NegotiateIncludingOpenMetrics: the first entry that
     * names a format it has wins; the default is the text format. */
    for (size_t i = 0; i < n; i++) {
        const accept_entry *a = &es[i];
        if (eq_ci(a->type, a->type_len, "application") &&
            eq_ci(a->sub, a->sub_len, "vnd.google.protobuf") &&
            param_is(a, "proto", "io.prometheus.client.MetricFamily", false)) {
            if (param_is(a, "encoding", "delimited", false)) return true;
            size_t el;
            const char *enc = accept_param(a, "encoding", &el);
            if (enc && ((el == 4 && memcmp(enc, "text", 4) == 0) ||
                        (el == 12 && memcmp(enc, "compact-text", 12) == 0)))
                return false; /* a format we do not write: text instead */
        }
        if (eq_ci(a->type, a->type_len, "text") && eq_ci(a->sub, a->sub_len, "plain") &&
            (param_is(a, "version", "0.0.4", true) || param_is(a, "version", "1.0.0", false)))
            return false;
        if (eq_ci(a->type, a->type_len, "application") &&
            eq_ci(a->sub, a->sub_len, "openmetrics-text") &&
            (param_is(a, "version", "1.0.0", true) || param_is(a, "version", "0.0.1", false)))
            return false;
    }
    return false;
}

/* ---- text to protobuf ------------------------------------------------------------- */

/* One family being converted: samples with copied strings. */
typedef struct conv {
    char *name, *help;
    enum expfmt_type type;
    pb_one *ones;
    size_t n, cap;
    char **strs; /* every copied string, freed at flush */
    size_t n_strs, cap_strs;
} conv;

static char *conv_keep(conv *c, const char *s, size_t n)
{
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    if (c->n_strs == c->cap_strs) {
        c->cap_strs = c->cap_strs ? 2 * c->cap_strs : 16;
        c->strs = xrealloc(c->strs, c->cap_strs * sizeof *c->strs);
    }
    c->strs[c->n_strs++] = d;
    return d;
}

static int conv_flush(conv *c, expfmt_sink sink, void *ctx)
{
    int rc = 0;
    if (c->n > 0 && sink) {
        Io__Prometheus__Client__MetricFamily mf;
        io__prometheus__client__metric_family__init(&mf);
        mf.name = pb_str(c->name, strlen(c->name));
        mf.help = pb_str(c->help ? c->help : "", c->help ? strlen(c->help) : 0);
        mf.type = pb_type(c->type);
        pb_metric **mp = xrealloc(NULL, c->n * sizeof *mp);
        for (size_t j = 0; j < c->n; j++) {
            /* ones[] was reallocated: point each metric at its own parts again. */
            pb_one *o = &c->ones[j];
            if (o->m.counter) o->m.counter = &o->counter;
            if (o->m.gauge) o->m.gauge = &o->gauge;
            if (o->m.untyped) o->m.untyped = &o->untyped;
            if (o->m.histogram) o->m.histogram = &o->hist;
            qsort(c->ones[j].label_ptrs, c->ones[j].m.n_label, sizeof *c->ones[j].label_ptrs,
                  cmp_pb_label);
            mp[j] = &c->ones[j].m;
        }
        mf.n_metric = c->n;
        mf.metric = mp;
        rc = pack_family(&mf, sink, ctx);
        free(mp);
    }
    for (size_t j = 0; j < c->n; j++)
        pb_one_free(&c->ones[j]);
    for (size_t j = 0; j < c->n_strs; j++)
        free(c->strs[j]);
    free(c->ones);
    free(c->strs);
    free(c->name);
    free(c->help);
    memset(c, 0, sizeof *c);
    return rc;
}

typedef struct strbuf {
    char *p;
    size_t len, cap;
} strbuf;

static int strbuf_sink(void *ctx, const char *s, size_t n)
{
    strbuf *b = ctx;
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static char *decoded(textparse_str s, bool help, strbuf *tmp)
{
    tmp->len = 0;
    strbuf_sink(tmp, "", 0);
    textparse_unescape(s, help, strbuf_sink, tmp);
    return tmp->p;
}

int registry_text_to_protobuf(const char *text, size_t len, expfmt_sink sink, void *ctx)
{
    textparse p;
    textparse_init(&p, TEXTPARSE_PROMETHEUS, text, len);
    conv c = {0};
    strbuf tmp = {0};
    char *fam_name = NULL, *fam_help = NULL; /* from the last HELP/TYPE lines */
    enum expfmt_type fam_type = EXPFMT_UNKNOWN;
    int rc = 0;
    for (;;) {
        enum textparse_entry e = textparse_next(&p);
        if (e == TEXTPARSE_END) break;
        if (e == TEXTPARSE_ERROR) {
            rc = -EINVAL;
            break;
        }
        if (e == TEXTPARSE_HELP || e == TEXTPARSE_TYPE) {
            textparse_str n = textparse_meta_name(&p);
            if (!fam_name || strlen(fam_name) != n.len || memcmp(fam_name, n.p, n.len) != 0) {
                free(fam_name);
                free(fam_help);
                fam_name = xrealloc(NULL, n.len + 1);
                memcpy(fam_name, n.p, n.len);
                fam_name[n.len] = '\0';
                fam_help = NULL;
                fam_type = EXPFMT_UNKNOWN;
            }
            if (e == TEXTPARSE_HELP) {
                free(fam_help);
                fam_help = xstrdup(decoded(textparse_meta_text(&p), true, &tmp));
            } else {
                fam_type = textparse_meta_type(&p);
            }
            continue;
        }
        if (e != TEXTPARSE_SERIES) continue;
        char *name = xstrdup(decoded(textparse_metric_name(&p), false, &tmp));
        /* A sample of the family its TYPE line named keeps the family's
         * type when that is a single-value type; any other sample (parts
         * of histograms and summaries) becomes an untyped family of its own. */
        bool own = fam_name && strcmp(name, fam_name) == 0 &&
                   (fam_type == EXPFMT_COUNTER || fam_type == EXPFMT_GAUGE ||
                    fam_type == EXPFMT_UNKNOWN);
        enum expfmt_type t = own ? fam_type : EXPFMT_UNKNOWN;
        if (!c.name || strcmp(c.name, name) != 0 || c.type != t) {
            if ((rc = conv_flush(&c, sink, ctx)) < 0) {
                free(name);
                break;
            }
            c.name = xstrdup(name);
            c.help = own && fam_help ? xstrdup(fam_help) : NULL;
            c.type = t;
        }
        free(name);
        if (c.n == c.cap) {
            c.cap = c.cap ? 2 * c.cap : 16;
            c.ones = xrealloc(c.ones, c.cap * sizeof *c.ones);
        }
        size_t nl = textparse_label_count(&p);
        pb_one *o = &c.ones[c.n++];
        pb_one_init(o, t, nl, textparse_value(&p));
        for (size_t i = 0; i < nl; i++) {
            textparse_str ln, lv;
            textparse_label(&p, i, &ln, &lv);
            const char *d = decoded(ln, false, &tmp);
            size_t kl = tmp.len;
            char *kn = conv_keep(&c, d, kl);
            d = decoded(lv, false, &tmp);
            size_t vl = tmp.len;
            char *kv = conv_keep(&c, d, vl);
            pb_one_label(o, kn, kl, kv, vl);
        }
        int64_t ts;
        if (textparse_timestamp(&p, &ts)) o->m.timestamp_ms = ts;
    }
    if (rc == 0)
        rc = conv_flush(&c, sink, ctx);
    else
        conv_flush(&c, NULL, NULL);
    free(fam_name);
    free(fam_help);
    free(tmp.p);
    textparse_cleanup(&p);
    return rc;
}
