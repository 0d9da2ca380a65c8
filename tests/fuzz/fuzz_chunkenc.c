/* libFuzzer target for agent/chunkenc:
 *  1. decodes the input as a chunk: must end (0 or -EINVAL) within the
 *     header's count, with increasing timestamps, inside the input;
 *  2. reads the input as a program of samples (timestamp steps of every
 *     delta-of-delta class, values of every XOR class, and timestamps that
 *     do not increase), appends them (a refused sample must leave the chunk
 *     unchanged), then decodes the chunk and compares bit-exactly, and
 *     checks that chunkenc_detach hands over the same bytes.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iagent \
 *       agent/chunkenc.c tests/fuzz/fuzz_chunkenc.c -o fuzz_chunkenc
 *   ./fuzz_chunkenc -max_total_time=60 corpus/
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunkenc.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

static void decode_any(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so the sanitizer sees any overread. */
    uint8_t *p = malloc(size ? size : 1);
    CHECK(p);
    if (size) memcpy(p, data, size);
    chunk_iter it;
    int rc = chunkenc_iter_init(&it, p, size);
    if (rc == 0) {
        int64_t t, prev = 0;
        double v;
        size_t n = 0;
        uint16_t count = chunkenc_count(p, size);
        while ((rc = chunkenc_iter_next(&it, &t, &v)) == 1) {
            CHECK(n == 0 || t > prev);
            prev = t;
            n++;
            CHECK(n <= count);
        }
        CHECK(rc == 0 || rc == -EINVAL);
        CHECK(rc != 0 || n == count);
        CHECK(chunkenc_iter_next(&it, &t, &v) == rc);
    } else {
        CHECK(rc == -EINVAL && size < 2);
    }
    /* The same bytes as a decimal chunk. */
    rc = chunkenc_iter_init_enc(&it, CHUNKENC_DECIMAL, p, size);
    if (rc == 0) {
        int64_t t, prev = 0;
        double v;
        size_t n = 0;
        while ((rc = chunkenc_iter_next(&it, &t, &v)) == 1) {
            CHECK(n == 0 || t > prev);
            prev = t;
            n++;
        }
        CHECK(rc == 0 || rc == -EINVAL);
        CHECK(rc != 0 || n == chunkenc_count(p, size));
    }
    free(p);
}

/* Input reader: bytes run out as zeros. */
typedef struct {
    const uint8_t *p;
    size_t n;
} rd;

static uint64_t take(rd *r, unsigned nbytes)
{
    uint64_t x = 0;
    for (unsigned i = 0; i < nbytes; i++) {
        x <<= 8;
        if (r->n) {
            x |= *r->p++;
            r->n--;
        }
    }
    return x;
}

static double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

/* a + b without signed overflow */
static int64_t add(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}

static void encode_program(const uint8_t *data, size_t size)
{
    rd r = {data, size};
    size_t max = size + 1;
    int64_t *ts = malloc(max * sizeof *ts);
    uint64_t *vs = malloc(max * sizeof *vs);
    CHECK(ts && vs);
    size_t n = 0;
    chunk_appender a;
    chunkenc_init(&a);

    int64_t t = (int64_t)take(&r, 8), delta = 15000;
    uint64_t v = 0;
    while (r.n && n < max) {
        uint8_t c = (uint8_t)take(&r, 1);
        /* timestamp */
        switch (c & 7) {
        case 0:
            break; /* dod 0 */
        case 1:
            delta = add(delta, (int8_t)take(&r, 1));
            break;
        case 2:
            delta = add(delta, (int16_t)take(&r, 2));
            break;
        case 3:
            delta = add(delta, (int64_t)take(&r, 3) - (1 << 23));
            break;
        case 4:
            delta = (int64_t)take(&r, 8);
            break;
        case 5:
            delta = 1;
            break;
        case 6:
            delta = -(int64_t)take(&r, 1);
            break; /* not increasing */
        default:
            delta = (int64_t)(take(&r, 8) >> (take(&r, 1) & 63));
            break;
        }
        int64_t nt = (int64_t)((uint64_t)t + (uint64_t)delta);
        /* value */
        uint64_t nv = v;
        switch ((c >> 3) & 7) {
        case 0:
            break;
        case 1:
            nv = take(&r, 8);
            break;
        case 2:
            nv = v ^ (take(&r, 1) << (take(&r, 1) & 63));
            break;
        case 3:
            nv = d2u(u2d(v) + (double)take(&r, 1));
            break;
        case 4:
            nv = 0x7ff0000000000002ULL;
            break; /* staleness marker */
        case 5:
            nv = 0x7ff0000000000000ULL | take(&r, 7);
            break; /* NaN/Inf payloads */
        case 6:
            nv = v ^ (take(&r, 2) << (take(&r, 1) & 63));
            break;
        default:
            nv = v ^ 0x8000000000000000ULL;
            break; /* sign flip */
        }
        if (c >> 6 == 3) nt = t; /* equal timestamp */

        size_t before_len, after_len;
        chunkenc_bytes(&a, &before_len);
        uint16_t before_count = a.count;
        int rc = chunkenc_append(&a, nt, u2d(nv));
        if (n > 0 && nt <= t) {
            CHECK(rc == -EINVAL);
            chunkenc_bytes(&a, &after_len);
            CHECK(after_len == before_len && a.count == before_count);
            continue;
        }
        CHECK(rc == 0);
        ts[n] = nt;
        vs[n] = nv;
        n++;
        t = nt;
        v = nv;
    }

    size_t len;
    const uint8_t *b = chunkenc_bytes(&a, &len);
    CHECK(chunkenc_count(b, len) == n);
    CHECK(chunkenc_capacity(&a) >= (n ? len : 0));
    uint8_t *copy = malloc(len);
    CHECK(copy);
    memcpy(copy, b, len);

    chunk_iter it;
    CHECK(chunkenc_iter_init(&it, copy, len) == 0);
    for (size_t i = 0; i < n; i++) {
        int64_t gt;
        double gv;
        CHECK(chunkenc_iter_next(&it, &gt, &gv) == 1);
        CHECK(gt == ts[i] && d2u(gv) == vs[i]);
    }
    int64_t gt;
    double gv;
    CHECK(chunkenc_iter_next(&it, &gt, &gv) == 0);

    /* The decimal encoding: when it accepts the samples, it round-trips
     * them bit for bit, and chunkenc_compact agrees with it. */
    if (n > 0 && n <= CHUNKENC_MAX_SAMPLES) {
        double *dv = malloc(n * sizeof *dv);
        CHECK(dv);
        for (size_t i = 0; i < n; i++) dv[i] = u2d(vs[i]);
        uint8_t *dec = NULL;
        size_t declen = 0;
        int drc = chunkenc_decimal_encode(ts, dv, n, &dec, &declen);
        CHECK(drc == 0 || drc == -EDOM);
        if (drc == 0) {
            chunk_iter di;
            CHECK(chunkenc_iter_init_enc(&di, CHUNKENC_DECIMAL, dec, declen) == 0);
            for (size_t i = 0; i < n; i++) {
                CHECK(chunkenc_iter_next(&di, &gt, &gv) == 1);
                CHECK(gt == ts[i] && d2u(gv) == vs[i]);
            }
            CHECK(chunkenc_iter_next(&di, &gt, &gv) == 0);
        }
        uint8_t *cmp = NULL;
        size_t cmplen = 0;
        int crc = chunkenc_compact(copy, len, &cmp, &cmplen);
        CHECK(crc == (drc == 0 && declen < len ? 1 : 0));
        if (crc == 1) CHECK(cmplen == declen && memcmp(cmp, dec, declen) == 0);
        free(cmp);
        free(dec);
        free(dv);
    }

    size_t dlen;
    uint8_t *d = chunkenc_detach(&a, &dlen);
    CHECK(d && dlen == len && memcmp(d, copy, len) == 0);
    CHECK(a.count == 0 && chunkenc_capacity(&a) == 0);
    free(d);
    free(copy);
    chunkenc_cleanup(&a);
    free(ts);
    free(vs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_any(data, size);
    encode_program(data, size);
    return 0;
}
