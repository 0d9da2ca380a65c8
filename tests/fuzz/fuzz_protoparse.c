/* libFuzzer target for exporter/protoparse: the first byte picks the
 * options (bit 0 ignore_native_histograms, bit 1 keep_classic_histograms,
 * bit 2 a 64-byte max_message_bytes, bit 3 convert_classic_to_nhcb), the rest is the body. Reads every
 * accessor of every entry, touches every byte of every returned view and
 * checks that the histograms it returns are valid and that the parser
 * stays at END or ERROR.
 *
 *   make fuzz-protoparse FUZZ_SECONDS=60
 * Seeds: tests/data/protobuf-seeds (the bodies of tests/data/protobuf,
 * written by test_protoparse with SIDEWATCH_PROTOPARSE_SEEDS=DIR) and
 * tests/data/fuzz-regressions/protoparse. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nhist.h"
#include "protoparse.h"

static size_t touch(const char *p, size_t n)
{
    size_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += (unsigned char)p[i];
    return t + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    protoparse_options o = {
        .ignore_native_histograms = data[0] & 1,
        .keep_classic_histograms = (data[0] >> 1) & 1,
        .max_message_bytes = (data[0] & 4) ? 64 : 0,
        .convert_classic_to_nhcb = (data[0] >> 3) & 1,
    };
    /* A copy of exactly the body, so ASan sees any overread. */
    size_t len = size - 1;
    uint8_t *body = malloc(len ? len : 1);
    if (!body) return 0;
    memcpy(body, data + 1, len);
    protoparse *p;
    if (protoparse_new(&p, body, len, &o) < 0) {
        free(body);
        return 0;
    }
    volatile size_t sink = 0;
    for (size_t guard = 0;; guard++) {
        if (guard > 10 * size + 100) __builtin_trap(); /* no endless loop */
        enum protoparse_entry e = protoparse_next(p);
        if (e == PROTOPARSE_END || e == PROTOPARSE_ERROR) {
            if (e == PROTOPARSE_ERROR && !protoparse_error(p)[0]) __builtin_trap();
            sink += strlen(protoparse_error(p));
            if (protoparse_next(p) != e) __builtin_trap();
            break;
        }
        if (e == PROTOPARSE_FAMILY) {
            const char *n, *h, *u;
            size_t nl, hl, ul;
            enum expfmt_type t;
            protoparse_family(p, &n, &nl, &h, &hl, &u, &ul, &t);
            sink += touch(n, nl) + touch(h, hl) + touch(u, ul) + (size_t)t;
            continue;
        }
        size_t l;
        const char *s = protoparse_series_key(p, &l);
        sink += touch(s, l);
        s = protoparse_metric_name(p, &l);
        sink += touch(s, l);
        for (size_t i = 0; i < protoparse_label_count(p); i++) {
            const char *n, *v;
            size_t nl, vl;
            protoparse_label(p, i, &n, &nl, &v, &vl);
            sink += touch(n, nl) + touch(v, vl);
        }
        int64_t ts;
        if (protoparse_timestamp(p, &ts)) sink += (size_t)ts;
        if (protoparse_created_timestamp(p, &ts)) sink += (size_t)ts;
        for (size_t i = 0; i < protoparse_exemplar_count(p); i++) {
            double v;
            bool has;
            protoparse_exemplar(p, i, &v, &has, &ts);
            sink += (size_t)has;
            for (size_t j = 0; j < protoparse_exemplar_label_count(p, i); j++) {
                const char *n, *lv;
                size_t nl, vl;
                protoparse_exemplar_label(p, i, j, &n, &nl, &lv, &vl);
                sink += touch(n, nl) + touch(lv, vl);
            }
        }
        if (e == PROTOPARSE_SERIES) {
            double v = protoparse_value(p);
            sink += v == v;
        } else {
            const nhist *h = protoparse_histogram(p);
            if (nhist_validate(h, NULL, 0) != 0) __builtin_trap();
            nhist c;
            nhist_init(&c);
            if (nhist_copy(&c, h) == 0) {
                if (c.schema > NHIST_MIN_SCHEMA && c.schema <= NHIST_MAX_SCHEMA) {
                    if (nhist_reduce_resolution(&c, c.schema - 1) != 0) __builtin_trap();
                }
                sink += nhist_bucket_count(&c);
            }
            nhist_cleanup(&c);
        }
    }
    (void)sink;
    protoparse_free(p);
    free(body);
    return 0;
}
