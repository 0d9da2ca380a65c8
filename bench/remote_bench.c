/* Remote write catch-up: a backlog of write-ahead rows (an outage of
 * OUTAGE_S seconds of SERIES series scraped every second, i.e. SERIES
 * samples/s) is appended through the store API while the queue is stopped;
 * then the queue starts and sends it to URL (a real Prometheus receiver).
 * Prints the catch-up time, samples/s and this process's CPU per million
 * samples sent (the appending is not counted).
 *
 * Usage: remote_bench URL DIR [SERIES [OUTAGE_S [MAX_SHARDS]]] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "httpc.h"
#include "labels.h"
#include "log.h"
#include "registry.h"
#include "remote.h"
#include "store.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static remote *start(store *st, registry *reg, config *cfg)
{
    remote_options o = {.st = st, .reg = reg};
    remote *r = NULL;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    if (remote_start(&r, &o, cfg, &err) < 0) {
        fprintf(stderr, "remote_start: %s\n", buf_cstr(&err));
        exit(1);
    }
    buf_cleanup(&err);
    return r;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: remote_bench URL DIR [SERIES [OUTAGE_S [MAX_SHARDS]]]\n");
        return 2;
    }
    const char *url = argv[1], *dir = argv[2];
    int series = argc > 3 ? atoi(argv[3]) : 10000;
    int outage = argc > 4 ? atoi(argv[4]) : 3600;
    int max_shards = argc > 5 ? atoi(argv[5]) : 50;
    log_set_level(LOG_WARN);
    httpc_global_init();
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "remote_write:\n  - url: %s\n    name: bench\n"
             "    queue_config: {max_shards: %d}\n    metadata_config: {send: false}\n",
             url, max_shards);
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    config *cfg = NULL;
    if (config_load_string(yaml, strlen(yaml), "bench.yml", &cfg, &err) < 0) {
        fprintf(stderr, "config: %s\n", buf_cstr(&err));
        return 1;
    }
    store_options so = {.path = dir};
    store *st = NULL;
    if (store_open(&st, &so, &err) < 0) {
        fprintf(stderr, "store: %s\n", buf_cstr(&err));
        return 1;
    }
    registry *reg = registry_new();
    /* The queue exists (its cursor at the end), then stops: the outage. */
    remote_stop(start(st, reg, cfg));

    uint64_t *refs = calloc((size_t)series, sizeof *refs);
    for (int i = 0; i < series; i++) {
        char name[32], inst[32];
        snprintf(name, sizeof name, "bench_metric_%d", i % 100);
        snprintf(inst, sizeof inst, "host-%d", i / 100);
        labels_builder b;
        labels_builder_init(&b);
        labels_builder_set(&b, "__name__", 8, name, strlen(name));
        labels_builder_set(&b, "instance", 8, inst, strlen(inst));
        labels_builder_set(&b, "job", 3, "bench", 5);
        labels *ls = labels_builder_finish(&b, NULL);
        labels_builder_cleanup(&b);
        bool created;
        store_series_ref(st, ls, &refs[i], &created);
        labels_free(ls);
    }
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t end_ms = (int64_t)wall.tv_sec * 1000;
    int64_t t0 = end_ms - (int64_t)outage * 1000;
    double a0 = now_s();
    for (int s = 0; s < outage; s++) {
        store_batch *b = store_batch_new(st);
        for (int i = 0; i < series; i++)
            store_batch_add(b, refs[i], t0 + (int64_t)s * 1000, (double)(s + i));
        if (store_batch_commit(b) < 0) {
            fprintf(stderr, "commit failed\n");
            return 1;
        }
    }
    uint64_t total = (uint64_t)series * (uint64_t)outage;
    printf("backlog: %d series x %d s = %llu samples appended in %.1f s\n", series, outage,
           (unsigned long long)total, now_s() - a0);
    fflush(stdout);

    double c0 = cpu_s(), w0 = now_s();
    remote *r = start(st, reg, cfg);
    const char *ql[] = {"remote_name", "url", NULL};
    const char *qv[] = {"bench", url};
    registry_metric *sent = registry_child(
        registry_counter(reg, "prometheus_remote_storage_samples_total", "", ql), qv);
    registry_metric *failed = registry_child(
        registry_counter(reg, "prometheus_remote_storage_samples_failed_total", "", ql), qv);
    registry_metric *shards =
        registry_child(registry_gauge(reg, "prometheus_remote_storage_shards", "", ql), qv);
    double last_print = w0, max_shards_seen = 0;
    while (registry_value(sent) + registry_value(failed) < (double)total) {
        usleep(20 * 1000);
        double sh = registry_value(shards);
        if (sh > max_shards_seen) max_shards_seen = sh;
        if (now_s() - last_print > 10) {
            last_print = now_s();
            printf("  ... %.0f sent after %.0f s, %.0f shards\n", registry_value(sent),
                   last_print - w0, sh);
            fflush(stdout);
        }
        if (now_s() - w0 > 1800) {
            fprintf(stderr, "gave up after 30 minutes\n");
            break;
        }
    }
    double wall_s = now_s() - w0, cpu = cpu_s() - c0;
    double n = registry_value(sent);
    printf("catch-up: %.0f samples sent (%.0f failed) in %.1f s: %.0f samples/s, "
           "up to %.0f shards\n",
           n, registry_value(failed), wall_s, n / wall_s, max_shards_seen);
    printf("cpu: %.2f s for the sending, %.3f cpu-seconds per million samples\n", cpu,
           n > 0 ? cpu / n * 1e6 : 0);
    remote_stop(r);
    free(refs);
    registry_free(reg);
    store_close(st);
    config_unref(cfg);
    buf_cleanup(&err);
    httpc_global_cleanup();
    return 0;
}
