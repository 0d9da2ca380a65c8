/* ingest_bench: samples per second appended through the store API from a
 * realistic scrape stream, write-ahead table included, and the side-by-side
 * input for `promtool tsdb bench write`.
 *
 * Stream: 10 targets x 1,000 series (half integer counters, a third gauges
 * with two decimals, the rest arbitrary doubles), scraped every 15 s, one
 * batch (commit) per target scrape, as the scrape loop does.
 *
 *   build/release/bench/ingest_bench [SCRAPES] [DIR]
 *
 * Two timed phases:
 *   cold    SCRAPES scrapes (default 100: 1M samples) from an empty store,
 *           as `promtool tsdb bench write` does: every write-ahead row
 *           needs a new slot, no chunk is closed;
 *   steady  120 scrapes (1.2M samples: one chunk's worth, so every series
 *           closes and writes one chunk in it) after 240 scrapes (an hour
 *           at 15 s) and a store_maintain, as in a store that has been
 *           running: write-ahead slots are reused.
 * Prints samples/s by wall clock and per CPU second of the appending thread
 * (SQLite's checkpoints run on their own thread) for each, and writes
 * DIR/series.json, the same 10,000 label sets in promtool's input format. */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "labels.h"
#include "mem.h"
#include "store.h"

#define TARGETS 10
#define PER_TARGET 1000

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double thread_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int rm_entry(const char *p, const struct stat *s, int f, struct FTW *w)
{
    (void)s;
    (void)f;
    (void)w;
    return remove(p);
}

static void report(const char *phase, uint64_t total, int scrapes, double dt, double dc)
{
    printf("ingest %s: %" PRIu64 " samples in %d batches of %d: %.2f s, %.2f CPU s\n", phase, total,
           scrapes * TARGETS, PER_TARGET, dt, dc);
    printf("ingest %s: %.2f million samples/s (wall), %.2f million samples/s per CPU second\n", phase,
           (double)total / dt / 1e6, (double)total / dc / 1e6);
}

int main(int argc, char **argv)
{
    int scrapes = argc > 1 ? atoi(argv[1]) : 100;
    char dir[256];
    snprintf(dir, sizeof dir, "%s", argc > 2 ? argv[2] : "/tmp/sidewatch-ingest-bench");
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    store_options o = {.path = dir};
    store *s;
    buf err;
    buf_init(&err, 4096);
    if (store_open(&s, &o, &err) < 0) {
        fprintf(stderr, "%s\n", buf_cstr(&err));
        return 1;
    }
    char jpath[300];
    snprintf(jpath, sizeof jpath, "%s/series.json", dir);
    FILE *json = fopen(jpath, "w");
    uint64_t *refs = mem_malloc(TARGETS * PER_TARGET * sizeof *refs);
    for (int t = 0; t < TARGETS; t++) {
        for (int i = 0; i < PER_TARGET; i++) {
            char name[32], inst[32], id[16];
            snprintf(name, sizeof name, "app_metric_%d", i / 50);
            snprintf(inst, sizeof inst, "10.0.0.%d:9100", t);
            snprintf(id, sizeof id, "%d", i % 50);
            labels_builder b;
            labels_builder_init(&b);
            labels_builder_set(&b, "__name__", 8, name, strlen(name));
            labels_builder_set(&b, "instance", 8, inst, strlen(inst));
            labels_builder_set(&b, "job", 3, "app", 3);
            labels_builder_set(&b, "id", 2, id, strlen(id));
            labels *ls = labels_builder_finish(&b, NULL);
            store_series_ref(s, ls, &refs[t * PER_TARGET + i], NULL);
            labels_free(ls);
            labels_builder_cleanup(&b);
            if (json)
                fprintf(json, "{\"__name__\":\"%s\",\"instance\":\"%s\",\"job\":\"app\",\"id\":\"%s\"}\n",
                        name, inst, id);
        }
    }
    if (json) fclose(json);
    double *counters = mem_calloc(TARGETS * PER_TARGET, sizeof(double));
    uint64_t rnd = 12345, total = 0;
    double t0 = 0, c0 = 0, first = 0;
    const int warm = 240;
    int steady_from = warm > scrapes ? warm : scrapes;
    /* Scrape -1 creates the series (their rows and index entries are
     * written with it); it is timed on its own. */
    const int steady = 120;
    for (int k = -1; k < steady_from + steady; k++) {
        if (k == 0 || k == steady_from) {
            if (k == 0) first = now() - t0;
            if (k == steady_from) store_maintain(s, 0);
            t0 = now();
            c0 = thread_cpu();
            total = 0;
        } else if (k == -1) {
            t0 = now();
        } else if (k == scrapes) {
            report("cold", total, scrapes, now() - t0, thread_cpu() - c0);
        }
        int64_t ts = 1700000000000LL + (int64_t)(k + 1) * 15000;
        for (int t = 0; t < TARGETS; t++) {
            store_batch *b = store_batch_new(s);
            for (int i = 0; i < PER_TARGET; i++) {
                int idx = t * PER_TARGET + i;
                rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
                double v;
                if (i % 6 < 3) {
                    counters[idx] += (double)((rnd >> 40) % 50);
                    v = counters[idx];
                } else if (i % 6 < 5) {
                    v = (double)((int64_t)((rnd >> 30) % 100000)) / 100;
                } else {
                    v = (double)(rnd >> 11) / 9007199254740992.0;
                }
                store_batch_add(b, refs[idx], ts, v);
                total++;
            }
            if (store_batch_commit(b) < 0) {
                fprintf(stderr, "commit failed\n");
                return 1;
            }
        }
    }
    report("steady", total, steady, now() - t0, thread_cpu() - c0);
    printf("ingest: first scrape (creates %d series): %.3f s\n", TARGETS * PER_TARGET, first);
    store_close(s);
    mem_free(refs);
    mem_free(counters);
    buf_cleanup(&err);
    return 0;
}
