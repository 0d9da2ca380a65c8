/* chunkenc_bench: cost of agent/chunkenc per sample.
 *
 *   make build/release/bench/chunkenc_bench && build/release/bench/chunkenc_bench [series]
 *
 * For each workload, `series` (default 10,000) chunks of 120 samples each
 * (Prometheus's chunk size) are encoded two ways:
 *   seq    one chunk after another: init, 120 appends, detach, free;
 *   scrape round-robin, as scrapes append: sample r of every series, then
 *          sample r + 1 (the appenders and their buffers go cold in between;
 *          the input is laid out in that order, so reading it is not what
 *          is measured);
 * then every chunk is decoded to the end. Times are the best of 5 runs and
 * include allocation (buffer growth, detach). Workloads:
 *   counter  15 s interval with +-3 ms jitter, integral increments 0..1000
 *   gauge    same timestamps, random walk of steps -10.00..+10.00
 *   const    15 s interval without jitter, constant value
 *   const+j  15 s interval with +-3 ms jitter, constant value */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chunkenc.h"

#define NSAMPLES CHUNKENC_TARGET_SAMPLES
#define RUNS 5

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum { COUNTER, GAUGE, CONST, CONST_JITTER, NWORK };
static const char *const names[NWORK] = {"counter", "gauge", "const", "const+j"};

/* Samples of series s, sample r at [s * NSAMPLES + r]. */
static void generate(int kind, size_t nseries, int64_t *t, double *v)
{
    for (size_t s = 0; s < nseries; s++) {
        double x = kind == GAUGE ? 100.0 : (double)(rnd() % 1000000);
        int64_t start = 1700000000000LL + (int64_t)(rnd() % 15000);
        for (size_t r = 0; r < NSAMPLES; r++) {
            int64_t jitter = kind == CONST ? 0 : (int64_t)(rnd() % 7) - 3;
            t[s * NSAMPLES + r] = start + (int64_t)r * 15000 + jitter;
            v[s * NSAMPLES + r] = x;
            if (kind == COUNTER) x += (double)(rnd() % 1001);
            if (kind == GAUGE) x += ((double)(rnd() % 2001) - 1000.0) / 100.0;
        }
    }
}

static void fail(const char *what, int rc)
{
    fprintf(stderr, "chunkenc_bench: %s failed: %d\n", what, rc);
    exit(1);
}

int main(int argc, char **argv)
{
    size_t nseries = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    if (nseries == 0) nseries = 1;
    size_t total = nseries * NSAMPLES;
    int64_t *t = malloc(total * sizeof *t);
    double *v = malloc(total * sizeof *v);
    int64_t *tt = malloc(total * sizeof *tt); /* transposed: [r * nseries + s] */
    double *vt = malloc(total * sizeof *vt);
    chunk_appender *apps = malloc(nseries * sizeof *apps);
    uint8_t **chunks = calloc(nseries, sizeof *chunks);
    size_t *lens = calloc(nseries, sizeof *lens);
    if (!t || !v || !tt || !vt || !apps || !chunks || !lens) fail("malloc", -ENOMEM);

    printf("chunkenc: %zu series x %d samples, best of %d runs\n", nseries, NSAMPLES, RUNS);
    printf("%-9s %14s %14s %14s %13s %13s\n", "workload", "append seq", "append scrape", "iterate",
           "bytes/sample", "cap/bytes");
    printf("%-9s %14s %14s %14s\n", "", "ns/sample", "ns/sample", "ns/sample");
    for (int kind = 0; kind < NWORK; kind++) {
        generate(kind, nseries, t, v);
        for (size_t s = 0; s < nseries; s++)
            for (size_t r = 0; r < NSAMPLES; r++) {
                tt[r * nseries + s] = t[s * NSAMPLES + r];
                vt[r * nseries + s] = v[s * NSAMPLES + r];
            }
        double best_seq = 1e30, best_scrape = 1e30, best_iter = 1e30;
        size_t bytes = 0, capacity = 0;
        volatile double sink = 0;

        for (int run = 0; run < RUNS; run++) {
            /* seq */
            for (size_t s = 0; s < nseries; s++) {
                free(chunks[s]);
                chunks[s] = NULL;
            }
            double t0 = now();
            for (size_t s = 0; s < nseries; s++) {
                chunk_appender a;
                chunkenc_init(&a);
                const int64_t *ts = t + s * NSAMPLES;
                const double *vs = v + s * NSAMPLES;
                for (size_t r = 0; r < NSAMPLES; r++) {
                    int rc = chunkenc_append(&a, ts[r], vs[r]);
                    if (rc) fail("append", rc);
                }
                chunks[s] = chunkenc_detach(&a, &lens[s]);
            }
            double dt = now() - t0;
            if (dt < best_seq) best_seq = dt;

            /* scrape order */
            for (size_t s = 0; s < nseries; s++)
                chunkenc_init(&apps[s]);
            t0 = now();
            for (size_t r = 0; r < NSAMPLES; r++)
                for (size_t s = 0; s < nseries; s++) {
                    int rc = chunkenc_append(&apps[s], tt[r * nseries + s], vt[r * nseries + s]);
                    if (rc) fail("append", rc);
                }
            dt = now() - t0;
            if (dt < best_scrape) best_scrape = dt;
            bytes = capacity = 0;
            for (size_t s = 0; s < nseries; s++) {
                size_t len;
                chunkenc_bytes(&apps[s], &len);
                bytes += len;
                capacity += chunkenc_capacity(&apps[s]);
                if (len != lens[s] || memcmp(chunkenc_bytes(&apps[s], &len), chunks[s], len))
                    fail("compare", -EINVAL);
                chunkenc_cleanup(&apps[s]);
            }

            /* iterate */
            t0 = now();
            double acc = 0;
            for (size_t s = 0; s < nseries; s++) {
                chunk_iter it;
                int64_t ts;
                double vs;
                int rc = chunkenc_iter_init(&it, chunks[s], lens[s]);
                if (rc) fail("iter_init", rc);
                while ((rc = chunkenc_iter_next(&it, &ts, &vs)) == 1)
                    acc += vs + (double)ts;
                if (rc) fail("iter_next", rc);
            }
            dt = now() - t0;
            sink = acc;
            if (dt < best_iter) best_iter = dt;
        }
        (void)sink;
        printf("%-9s %14.2f %14.2f %14.2f %13.3f %13.2f\n", names[kind], best_seq * 1e9 / total,
               best_scrape * 1e9 / total, best_iter * 1e9 / total, (double)bytes / total,
               (double)capacity / bytes);
    }
    for (size_t s = 0; s < nseries; s++)
        free(chunks[s]);
    free(chunks);
    free(lens);
    free(apps);
    free(tt);
    free(vt);
    free(t);
    free(v);
    return 0;
}
