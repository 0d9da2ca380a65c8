/* parse_bench: cost of parsing one scrape body, per sample, for the text
 * format (exporter/textparse) and the protobuf format (exporter/protoparse).
 *
 *   parse_bench text|openmetrics|protobuf|protobuf-native FILE [runs]
 *
 * Parses the whole body `runs` times (default 20) and prints the best time
 * per sample in ns: each entry's series bytes (the scrape cache key), metric
 * name, labels and value (or native histogram) are read, as the scrape does
 * for a series it already knows. protobuf-native parses with native
 * histograms on (one sample per histogram); protobuf reads every histogram
 * as classic series, like the text formats. bench/parse.py writes the
 * bodies (the same series in each format). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protoparse.h"
#include "textparse.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile size_t sink;

static long run_text(enum textparse_format f, const char *b, size_t n)
{
    textparse p;
    textparse_init(&p, f, b, n);
    long samples = 0;
    for (;;) {
        enum textparse_entry e = textparse_next(&p);
        if (e == TEXTPARSE_END) break;
        if (e == TEXTPARSE_ERROR) {
            fprintf(stderr, "parse error: %s\n", textparse_error(&p));
            exit(1);
        }
        if (e != TEXTPARSE_SERIES) continue;
        textparse_str s = textparse_series(&p), nm = textparse_metric_name(&p);
        size_t k = textparse_label_count(&p);
        for (size_t i = 0; i < k; i++) {
            textparse_str ln, lv;
            textparse_label(&p, i, &ln, &lv);
            sink += ln.len + lv.len;
        }
        sink += s.len + nm.len + (size_t)textparse_value(&p);
        samples++;
    }
    textparse_cleanup(&p);
    return samples;
}

static long run_proto(bool native, const char *b, size_t n)
{
    protoparse_options o = {.ignore_native_histograms = !native};
    protoparse *p;
    if (protoparse_new(&p, (const uint8_t *)b, n, &o) < 0) exit(1);
    long samples = 0;
    for (;;) {
        enum protoparse_entry e = protoparse_next(p);
        if (e == PROTOPARSE_END) break;
        if (e == PROTOPARSE_ERROR) {
            fprintf(stderr, "parse error: %s\n", protoparse_error(p));
            exit(1);
        }
        if (e == PROTOPARSE_FAMILY) continue;
        size_t kl, nl;
        const char *key = protoparse_series_key(p, &kl);
        const char *nm = protoparse_metric_name(p, &nl);
        size_t k = protoparse_label_count(p);
        for (size_t i = 0; i < k; i++) {
            const char *a, *v;
            size_t al, vl;
            protoparse_label(p, i, &a, &al, &v, &vl);
            sink += al + vl;
        }
        if (e == PROTOPARSE_HISTOGRAM)
            sink += nhist_bucket_count(protoparse_histogram(p));
        else
            sink += (size_t)protoparse_value(p);
        sink += kl + nl + (size_t)(key[0] + nm[0]);
        samples++;
    }
    protoparse_free(p);
    return samples;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: parse_bench text|openmetrics|protobuf|protobuf-native FILE [runs]\n");
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 20;
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    if (!b || fread(b, 1, (size_t)len, f) != (size_t)len) return 1;
    fclose(f);
    double best = 1e9;
    long samples = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        if (strcmp(argv[1], "text") == 0)
            samples = run_text(TEXTPARSE_PROMETHEUS, b, (size_t)len);
        else if (strcmp(argv[1], "openmetrics") == 0)
            samples = run_text(TEXTPARSE_OPENMETRICS, b, (size_t)len);
        else if (strcmp(argv[1], "protobuf") == 0)
            samples = run_proto(false, b, (size_t)len);
        else if (strcmp(argv[1], "protobuf-native") == 0)
            samples = run_proto(true, b, (size_t)len);
        else
            return 2;
        double d = now() - t0;
        if (d < best) best = d;
    }
    printf("%-16s %9ld bytes %7ld samples  %8.1f ns/sample  %6.2f ms/body\n", argv[1], len,
           samples, best * 1e9 / (double)samples, best * 1e3);
    free(b);
    return 0;
}
