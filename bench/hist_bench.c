/* hist_bench: bytes per native histogram sample on disk.
 *
 *   build/release/bench/hist_bench [DIR]
 *
 * For three workloads, 1,000 series of a 32-bucket latency histogram
 * (schema 3, one span, integer counts) get 720 samples each (3 h at 15 s)
 * through the normal append path (one commit per scrape of all series),
 * growing by 10, 100 or 1,000 observations per scrape spread over the
 * buckets at random; then the store is closed (every chunk written),
 * reopened for one store_maintain (which gives the write-ahead slots'
 * free pages back, as the running daemon does every minute) and closed,
 * and the bytes of sidewatch.db divided by the samples. A float-counter
 * workload of the same shape (1,000 series x 32 counters) is stored the
 * same way for comparison (bytes per float sample). */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "labels.h"
#include "store.h"

#define NSERIES 1000
#define NSAMPLES 720
#define NBUCKETS 32

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int rm_entry(const char *p, const struct stat *s, int f, struct FTW *w)
{
    (void)s, (void)f, (void)w;
    return remove(p);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long long db_bytes(const char *dir)
{
    char p[1024];
    long long total = 0;
    const char *names[] = {"sidewatch.db", "sidewatch.db-wal"};
    for (int i = 0; i < 2; i++) {
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        if (stat(p, &st) == 0) total += st.st_size;
    }
    return total;
}

static int run(const char *dir, int per_scrape, bool floats)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    store_options o = {.path = dir};
    store *s;
    buf err;
    buf_init(&err, 4096);
    if (store_open(&s, &o, &err) < 0) {
        fprintf(stderr, "%s\n", buf_cstr(&err));
        return 1;
    }
    long long empty = db_bytes(dir);
    size_t nrefs = floats ? (size_t)NSERIES * (NBUCKETS + 2) : NSERIES;
    uint64_t *refs = calloc(nrefs, sizeof *refs);
    double *counts = calloc((size_t)NSERIES * NBUCKETS, sizeof *counts);
    double *sums = calloc(NSERIES, sizeof *sums);
    for (size_t i = 0; i < nrefs; i++) {
        char inst[32], le[32];
        snprintf(inst, sizeof inst, "10.0.%zu.%zu:8080", i / 250 % 256, i % 250);
        snprintf(le, sizeof le, "%zu", i % (NBUCKETS + 2));
        labels_builder b;
        labels_builder_init(&b);
        labels_builder_set(&b, "__name__", 8, "http_request_duration_seconds", 29);
        labels_builder_set(&b, "instance", 8, inst, strlen(inst));
        labels_builder_set(&b, "job", 3, "api", 3);
        if (floats) labels_builder_set(&b, "le", 2, le, strlen(le));
        labels *ls = labels_builder_finish(&b, NULL);
        labels_builder_cleanup(&b);
        bool created;
        store_series_ref(s, ls, &refs[i], &created);
        labels_free(ls);
    }
    nhist h;
    nhist_init(&h);
    nhist_span span = {-8, NBUCKETS};
    double pos[NBUCKETS];
    h.schema = 3;
    h.pos_spans = &span;
    h.n_pos_spans = 1;
    h.pos = pos;
    h.n_pos = NBUCKETS;
    int64_t t0 = 1700000000000;
    double start = now();
    for (int k = 0; k < NSAMPLES; k++) {
        store_batch *b = store_batch_new(s);
        int64_t t = t0 + (int64_t)k * 15000 + (int64_t)(rnd() % 7) - 3;
        for (size_t i = 0; i < NSERIES; i++) {
            double *c = counts + i * NBUCKETS;
            for (int n = 0; n < per_scrape; n++) {
                /* a bell-ish shape: the sum of two uniform picks */
                int bi = (int)((rnd() % (NBUCKETS / 2)) + (rnd() % (NBUCKETS / 2)));
                c[bi] += 1;
                sums[i] += 0.001 * (bi + 1);
            }
            if (floats) {
                double cum = 0;
                for (int j = 0; j < NBUCKETS; j++) {
                    cum += c[j];
                    store_batch_add(b, refs[i * (NBUCKETS + 2) + (size_t)j], t, cum);
                }
                store_batch_add(b, refs[i * (NBUCKETS + 2) + NBUCKETS], t, cum);
                store_batch_add(b, refs[i * (NBUCKETS + 2) + NBUCKETS + 1], t, sums[i]);
            } else {
                double total = 0;
                for (int j = 0; j < NBUCKETS; j++) {
                    pos[j] = c[j];
                    total += c[j];
                }
                h.count = total;
                h.sum = sums[i];
                store_batch_add_histogram(b, refs[i], t, &h);
            }
        }
        if (store_batch_commit(b) < 0) {
            fprintf(stderr, "commit failed\n");
            return 1;
        }
    }
    double took = now() - start;
    store_close(s);
    if (store_open(&s, &o, &err) < 0 || store_maintain(s, t0 + 3 * 3600 * 1000) < 0) {
        fprintf(stderr, "reopen: %s\n", buf_cstr(&err));
        return 1;
    }
    store_close(s);
    long long bytes = db_bytes(dir) - empty;
    double samples = (double)NSAMPLES * (double)nrefs;
    if (floats)
        printf("classic histogram as %d float series each (%d+2 per histogram): %.2f bytes per "
               "float sample, %.1f bytes per histogram scrape, %.0f samples/s\n",
               NBUCKETS + 2, NBUCKETS, (double)bytes / samples,
               (double)bytes / ((double)NSAMPLES * NSERIES), samples / took);
    else
        printf("native histogram, %4d observations per scrape: %.1f bytes per histogram sample "
               "(%.0f samples/s)\n",
               per_scrape, (double)bytes / samples, samples / took);
    free(refs);
    free(counts);
    free(sums);
    buf_cleanup(&err);
    if (!getenv("HIST_BENCH_KEEP")) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp/sidewatch-hist-bench";
    if (getenv("HIST_BENCH_ONE")) return run(dir, atoi(getenv("HIST_BENCH_ONE")), false);
    int per[] = {10, 100, 1000};
    for (int i = 0; i < 3; i++)
        if (run(dir, per[i], false)) return 1;
    return run(dir, 100, true);
}
