/* select_bench: read latency of the store.
 *   - one series' 24 h of samples (15 s step: 5,760 samples in chunk rows)
 *   - select 1,000 of 100,000 series by a regex matcher (and read their
 *     newest 5 minutes)
 * Each measurement is the median of 50 runs, on a store written through the
 * normal append path and reopened (so the data is in chunk rows).
 *
 *   build/release/bench/select_bench [DIR] */
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "labels.h"
#include "mem.h"
#include "store.h"

#define NSERIES 100000
#define DAY_SAMPLES 5760
#define RUNS 50

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int rm_entry(const char *p, const struct stat *s, int f, struct FTW *w)
{
    (void)s;
    (void)f;
    (void)w;
    return remove(p);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp/sidewatch-select-bench";
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    store_options o = {.path = dir};
    store *s;
    buf err;
    buf_init(&err, 4096);
    if (store_open(&s, &o, &err) < 0) {
        fprintf(stderr, "%s\n", buf_cstr(&err));
        return 1;
    }
    const int64_t t0 = 1700000000000LL, step = 15000;
    /* 100,000 series (pods), 20 samples each over the last 5 minutes. */
    uint64_t *refs = mem_malloc(NSERIES * sizeof *refs);
    for (int i = 0; i < NSERIES; i++) {
        char pod[32];
        snprintf(pod, sizeof pod, "pod-%05d", i);
        labels_builder b;
        labels_builder_init(&b);
        labels_builder_set(&b, "__name__", 8, "container_cpu_usage_seconds_total", 33);
        labels_builder_set(&b, "pod", 3, pod, strlen(pod));
        labels_builder_set(&b, "namespace", 9, i % 2 ? "prod" : "dev", i % 2 ? 4 : 3);
        labels *ls = labels_builder_finish(&b, NULL);
        store_series_ref(s, ls, &refs[i], NULL);
        labels_free(ls);
        labels_builder_cleanup(&b);
    }
    int64_t end = t0 + (DAY_SAMPLES - 1) * step;
    for (int k = 0; k < 20; k++) {
        store_batch *b = store_batch_new(s);
        for (int i = 0; i < NSERIES; i++) store_batch_add(b, refs[i], end - (19 - k) * step, k + i);
        store_batch_commit(b);
    }
    /* One series with a full day. */
    labels_builder b;
    labels_builder_init(&b);
    labels_builder_set(&b, "__name__", 8, "node_load1", 10);
    labels *day = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    uint64_t dref;
    store_series_ref(s, day, &dref, NULL);
    labels_free(day);
    for (int k = 0; k < DAY_SAMPLES; k += 500) {
        store_batch *bb = store_batch_new(s);
        for (int j = k; j < k + 500 && j < DAY_SAMPLES; j++)
            store_batch_add(bb, dref, t0 + j * step, (double)(j % 400) / 100);
        store_batch_commit(bb);
    }
    store_close(s);
    if (store_open(&s, &o, &err) < 0) return 1;

    store_reader *r;
    store_reader_open(s, &r);
    double times[RUNS];
    size_t got = 0;
    for (int k = 0; k < RUNS; k++) {
        double a = now();
        store_sample *v;
        size_t n;
        store_read_samples(r, dref, t0, end, &v, &n);
        times[k] = now() - a;
        got = n;
        mem_free(v);
    }
    printf("select: one series, 24 h (%zu samples): %.3f ms\n", got, median(times, RUNS) * 1e3);

    label_matcher m[2];
    labels_matcher_init(&m[0], MATCH_EQ, "__name__", 8, "container_cpu_usage_seconds_total", 33, NULL);
    labels_matcher_init(&m[1], MATCH_RE, "pod", 3, "pod-00[0-9]{3}", 14, NULL);
    size_t nsel = 0, nsamples = 0;
    double rtimes[RUNS];
    for (int k = 0; k < RUNS; k++) {
        double a = now();
        store_select_result res;
        store_select(r, m, 2, end - 300000, end, &res);
        times[k] = now() - a;
        nsel = res.n;
        size_t total = 0;
        double c = now();
        store_reader_begin(r);
        for (size_t i = 0; i < res.n; i++) {
            store_sample *v;
            size_t n;
            store_read_samples(r, res.series[i].ref, end - 300000, end, &v, &n);
            total += n;
            mem_free(v);
        }
        store_reader_end(r);
        rtimes[k] = now() - c;
        nsamples = total;
        store_select_result_free(&res);
    }
    printf("select: %zu of %d series by regex: %.3f ms; reading their last 5 min (%zu samples): %.3f ms\n",
           nsel, NSERIES, median(times, RUNS) * 1e3, nsamples, median(rtimes, RUNS) * 1e3);
    labels_matcher_cleanup(&m[0]);
    labels_matcher_cleanup(&m[1]);
    store_reader_close(r);
    store_close(s);
    mem_free(refs);
    buf_cleanup(&err);
    return 0;
}
