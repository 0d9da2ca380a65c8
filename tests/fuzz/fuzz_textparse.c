/* libFuzzer target for exporter/textparse: parses the input as the text
 * format and as OpenMetrics until END or ERROR, reads every accessor of
 * every entry and decodes every returned string.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iexporter \
 *       exporter/textparse.c exporter/expfmt.c tests/fuzz/fuzz_textparse.c -o fuzz_textparse
 *   ./fuzz_textparse -max_total_time=60 corpus/ ../shared/conformance/exposition/
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "textparse.h"

static int count_sink(void *ctx, const char *p, size_t n)
{
    size_t *total = ctx;
    /* Touch the bytes so the sanitizer checks them. */
    for (size_t i = 0; i < n; i++)
        *total += (unsigned char)p[i];
    *total += n;
    return 0;
}

/* Every view must lie inside the input. */
static void check_view(const uint8_t *data, size_t size, textparse_str s)
{
    if (s.len == 0) return;
    if ((const uint8_t *)s.p < data || (const uint8_t *)s.p + s.len > data + size) __builtin_trap();
}

static size_t use(const uint8_t *data, size_t size, textparse_str s, bool help)
{
    size_t total = 0;
    check_view(data, size, s);
    textparse_unescape(s, help, count_sink, &total);
    textparse_unescape(s, !help, count_sink, &total);
    return total;
}

static void run(const uint8_t *data, size_t size, enum textparse_format f)
{
    textparse p;
    textparse_init(&p, f, (const char *)data, size);
    volatile size_t sink = 0;
    size_t entries = 0;
    for (;;) {
        enum textparse_entry e = textparse_next(&p);
        if (e == TEXTPARSE_END) break;
        if (e == TEXTPARSE_ERROR) {
            const char *msg = textparse_error(&p);
            if (!msg[0]) __builtin_trap();
            sink += strlen(msg) + textparse_error_line(&p) + textparse_error_column(&p);
            if (textparse_error_line(&p) < 1 || textparse_error_column(&p) < 1) __builtin_trap();
            break;
        }
        entries++;
        textparse_str n, v;
        switch (e) {
        case TEXTPARSE_SERIES: {
            sink += use(data, size, textparse_series(&p), false);
            sink += use(data, size, textparse_metric_name(&p), false);
            for (size_t i = 0; i < textparse_label_count(&p); i++) {
                textparse_label(&p, i, &n, &v);
                sink += use(data, size, n, false) + use(data, size, v, false);
                char out[EXPFMT_FLOAT_MAX];
                size_t ol = 0;
                if (textparse_label_normalized(&p, i, out, &ol)) {
                    if (ol == 0 || ol >= EXPFMT_FLOAT_MAX) __builtin_trap();
                    sink += ol;
                }
            }
            int64_t ts;
            sink += (size_t)textparse_timestamp(&p, &ts);
            sink += (size_t)(textparse_value(&p) == 0);
            sink += (size_t)textparse_current_type(&p);
            if (textparse_has_exemplar(&p)) {
                for (size_t i = 0; i < textparse_exemplar_label_count(&p); i++) {
                    textparse_exemplar_label(&p, i, &n, &v);
                    sink += use(data, size, n, false) + use(data, size, v, false);
                }
                sink += (size_t)(textparse_exemplar_value(&p) == 0);
                sink += (size_t)textparse_exemplar_timestamp(&p, &ts);
            }
            break;
        }
        case TEXTPARSE_HELP:
        case TEXTPARSE_TYPE:
        case TEXTPARSE_UNIT:
        case TEXTPARSE_COMMENT:
            sink += use(data, size, textparse_meta_name(&p), false);
            sink += use(data, size, textparse_meta_text(&p), f == TEXTPARSE_PROMETHEUS);
            sink += (size_t)textparse_meta_type(&p);
            break;
        default:
            __builtin_trap();
        }
        /* Every entry consumes at least one byte, so this bounds the loop. */
        if (entries > size + 1) __builtin_trap();
    }
    /* END and ERROR are sticky. */
    enum textparse_entry again = textparse_next(&p);
    if (again != TEXTPARSE_END && again != TEXTPARSE_ERROR) __builtin_trap();
    textparse_cleanup(&p);
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size copy so reads past the end are caught. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    run(copy, size, TEXTPARSE_PROMETHEUS);
    run(copy, size, TEXTPARSE_OPENMETRICS);

    /* The input as a Content-Type header (up to the first NUL). */
    if (size < 512) {
        char ct[512];
        memcpy(ct, copy, size);
        ct[size] = '\0';
        enum textparse_format f;
        (void)textparse_format_from_content_type(ct, &f);
    }
    free(copy);
    return 0;
}
