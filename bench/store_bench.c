/* store_bench: append throughput, bytes per sample and select+read latency
 * of agent/store.c. Not built by the Makefile; build it by hand with the
 * same flags as the agent (after `make build/release/tests/test_store` or
 * any target that compiles the objects):
 *
 *   cc -g -O2 -std=gnu11 -Wall -Wextra -Werror -Wno-missing-field-initializers \
 *      -D_GNU_SOURCE -pthread -Iagent -Iexporter -o build/release/store_bench \
 *      bench/store_bench.c \
 *      $(find build/release/agent build/release/exporter -name '*.o' ! -name main.o) \
 *      $(pkg-config --libs sqlite3 libpcre2-8) -lm -pthread
 *
 *   build/release/store_bench [rounds] [dir]
 *
 * With a dir (kept afterwards), a second run with rounds = 0 measures only
 * reopening and queries on the data of the first.
 *
 * Workload: 10,000 series (100 metric names x 100 instances; a "group"
 * label splits them in ten groups of 1,000), scraped `rounds` times
 * (default 100) at 15 s intervals, committed in batches of 1,000 samples.
 * Half the series are counters (integral, increasing), half gauges (random
 * doubles: the worst case for compression). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <ftw.h>

#include "buf.h"
#include "labels.h"
#include "mem.h"
#include "store.h"

#define NSERIES 10000
#define BATCH 1000
#define INTERVAL_MS 15000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static store *open_or_die(const char *dir)
{
    store_options o = {.path = dir};
    buf err;
    buf_init(&err, 4096);
    store *s;
    if (store_open(&s, &o, &err) != 0) {
        fprintf(stderr, "%s\n", buf_cstr(&err));
        exit(1);
    }
    buf_cleanup(&err);
    return s;
}

static labels *series_labels(int i)
{
    char name[32], inst[32], group[8];
    snprintf(name, sizeof name, "bench_metric_%d", i % 100);
    snprintf(inst, sizeof inst, "host-%d:9100", i / 100);
    snprintf(group, sizeof group, "g%d", i % 10);
    labels_builder b;
    labels_builder_init(&b);
    labels_builder_set(&b, "__name__", 8, name, strlen(name));
    labels_builder_set(&b, "instance", 8, inst, strlen(inst));
    labels_builder_set(&b, "job", 3, "bench", 5);
    labels_builder_set(&b, "group", 5, group, strlen(group));
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return ls;
}

typedef struct query_stats {
    double secs;
    size_t series, samples;
} query_stats;

static query_stats run_query(store_reader *r, enum matcher_type type, const char *name,
                             const char *value, int64_t mint, int64_t maxt, int iters,
                             bool snapshot)
{
    label_matcher m;
    labels_matcher_init(&m, type, name, strlen(name), value, strlen(value), NULL);
    query_stats q = {0};
    double t0 = now_s();
    for (int it = 0; it < iters; it++) {
        if (snapshot && store_reader_begin(r) != 0) exit(1);
        store_select_result res;
        if (store_select(r, &m, 1, mint, maxt, &res) != 0) exit(1);
        size_t samples = 0;
        for (size_t i = 0; i < res.n; i++) {
            store_sample *v;
            size_t n;
            if (store_read_samples(r, res.series[i].ref, mint, maxt, &v, &n) != 0) exit(1);
            samples += n;
            mem_free(v);
        }
        q.series = res.n;
        q.samples = samples;
        store_select_result_free(&res);
        if (snapshot) store_reader_end(r);
    }
    q.secs = (now_s() - t0) / iters;
    labels_matcher_cleanup(&m);
    return q;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 100;
    char tmpl[] = "/tmp/sidewatch-store-bench-XXXXXX";
    const char *dir = argc > 2 ? argv[2] : mkdtemp(tmpl);
    if (!dir) {
        perror("mkdtemp");
        return 1;
    }
    srand(42);
    store *s = open_or_die(dir);

    uint64_t *refs = mem_malloc(NSERIES * sizeof *refs);
    double t0 = now_s();
    for (int i = 0; i < NSERIES; i++) {
        labels *ls = series_labels(i);
        store_series_ref(s, ls, &refs[i], NULL);
        labels_free(ls);
    }
    double t_refs = now_s() - t0;

    const int64_t base = 1700000000000LL;
    double *counters = mem_calloc(NSERIES, sizeof *counters);
    double t_first = 0, t_rest = 0;
    uint64_t samples = 0;
    for (int round = 0; round < rounds; round++) {
        int64_t t = base + (int64_t)round * INTERVAL_MS;
        double r0 = now_s();
        for (int b0 = 0; b0 < NSERIES; b0 += BATCH) {
            store_batch *b = store_batch_new(s);
            for (int i = b0; i < b0 + BATCH; i++) {
                double v;
                if (i % 2 == 0) {
                    counters[i] += (double)(rand() % 100);
                    v = counters[i];
                } else {
                    v = (double)rand() / RAND_MAX * 100.0;
                }
                store_batch_add(b, refs[i], t, v);
            }
            if (store_batch_commit(b) != 0) return 1;
            samples += BATCH;
        }
        double dt = now_s() - r0;
        if (round == 0)
            t_first = dt;
        else
            t_rest += dt;
    }
    store_stats st;
    store_get_stats(s, &st);
    printf("store_bench: %d series, %d rounds, batches of %d samples, dir %s\n", NSERIES, rounds,
           BATCH, dir);
    printf("series refs (create 10k):  %.1f ms\n", t_refs * 1e3);
    if (rounds > 0)
        printf("append, first round (writes the 10k series rows too): %.0f samples/s\n",
               NSERIES / t_first);
    if (rounds > 1)
        printf("append, steady state:      %.0f samples/s (%.2f us/sample, %.2f ms/batch)\n",
               (double)(rounds - 1) * NSERIES / t_rest, t_rest / ((rounds - 1.0) * NSERIES) * 1e6,
               t_rest / ((rounds - 1.0) * NSERIES / BATCH) * 1e3);
    printf("appended %llu samples, on disk while open (db + wal): %.1f MB\n",
           (unsigned long long)st.samples_appended, st.size_bytes / 1e6);
    store_close(s);

    char path[4096];
    snprintf(path, sizeof path, "%s/sidewatch.db", dir);
    struct stat fst;
    stat(path, &fst);
    if (samples)
        printf("after close (checkpointed): %.1f MB = %.1f bytes/sample (incl. index and "
               "series)\n",
               fst.st_size / 1e6, (double)fst.st_size / (double)samples);

    t0 = now_s();
    s = open_or_die(dir);
    printf("reopen (loads 10k series): %.1f ms\n", (now_s() - t0) * 1e3);
    store_reader *r;
    if (store_reader_open(s, &r) != 0) return 1;
    store_get_stats(s, &st); /* an existing dir may hold more rounds */
    int64_t maxt = st.max_time_ms;
    int64_t hour = 3600 * 1000;
    struct {
        const char *what;
        enum matcher_type type;
        const char *name, *value;
        int64_t mint;
    } qs[] = {
        {"group=\"g3\" (1000 series), whole range", MATCH_EQ, "group", "g3", base},
        {"group=\"g3\" (1000 series), last 1h", MATCH_EQ, "group", "g3", maxt - hour},
        {"group=\"g3\" (1000 series), last 5m", MATCH_EQ, "group", "g3", maxt - 5 * 60 * 1000},
        {"instance=~\"host-(1|2)[0-9]:.*\" (2000 series), last 5m", MATCH_RE, "instance",
         "host-(1|2)[0-9]:.*", maxt - 5 * 60 * 1000},
        {"__name__=\"bench_metric_7\" (100 series), last 1h", MATCH_EQ, "__name__",
         "bench_metric_7", maxt - hour},
    };
    for (int snap = 0; snap < 2; snap++) {
        printf("select+read, %s:\n",
               snap ? "in one store_reader_begin() snapshot" : "each call its own snapshot");
        for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
            run_query(r, qs[i].type, qs[i].name, qs[i].value, qs[i].mint, maxt, 1, snap); /* warm */
            query_stats q =
                run_query(r, qs[i].type, qs[i].name, qs[i].value, qs[i].mint, maxt, 10, snap);
            printf("  %-58s %7.2f ms (%zu series, %zu samples)\n", qs[i].what, q.secs * 1e3,
                   q.series, q.samples);
        }
    }
    store_reader_close(r);
    store_close(s);
    mem_free(refs);
    mem_free(counters);
    if (argc <= 2) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
