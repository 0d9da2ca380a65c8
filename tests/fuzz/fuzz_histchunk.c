/* libFuzzer target for agent/histchunk:
 *  decodes the input as a histogram chunk: it must end (0 or -EINVAL)
 *  within the header's count, with increasing timestamps, reading only
 *  inside the input (an exact-size copy, so ASan sees any overread); every
 *  sample decoded is appended again to new chunks (cutting where the
 *  appender asks, which it must never do for an empty chunk), and those
 *  chunks must decode to the same samples bit for bit.
 *
 *   make fuzz-histchunk FUZZ_SECONDS=60
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "histchunk.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

static bool same_bits(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

static bool hist_eq(const nhist *a, const nhist *b)
{
    if (a->is_float != b->is_float || a->hint != b->hint || a->schema != b->schema ||
        !same_bits(a->zero_threshold, b->zero_threshold) || !same_bits(a->sum, b->sum) ||
        a->n_pos != b->n_pos || a->n_neg != b->n_neg || a->n_pos_spans != b->n_pos_spans ||
        a->n_neg_spans != b->n_neg_spans || a->n_custom_values != b->n_custom_values)
        return false;
    if (nhist_is_stale(a)) return nhist_is_stale(b);
    if (!same_bits(a->count, b->count) || !same_bits(a->zero_count, b->zero_count)) return false;
    for (size_t i = 0; i < a->n_pos; i++)
        if (!same_bits(a->pos[i], b->pos[i])) return false;
    for (size_t i = 0; i < a->n_neg; i++)
        if (!same_bits(a->neg[i], b->neg[i])) return false;
    for (size_t i = 0; i < a->n_pos_spans; i++)
        if (a->pos_spans[i].offset != b->pos_spans[i].offset ||
            a->pos_spans[i].length != b->pos_spans[i].length)
            return false;
    for (size_t i = 0; i < a->n_neg_spans; i++)
        if (a->neg_spans[i].offset != b->neg_spans[i].offset ||
            a->neg_spans[i].length != b->neg_spans[i].length)
            return false;
    for (size_t i = 0; i < a->n_custom_values; i++)
        if (!same_bits(a->custom_values[i], b->custom_values[i])) return false;
    return true;
}

/* Decodes the appender's chunk and checks it holds want[0..n). */
static void verify(const histchunk_appender *a, const nhist *want, const int64_t *ts, size_t n)
{
    size_t len;
    const uint8_t *b = histchunk_bytes(a, &len);
    uint8_t *p = malloc(len);
    CHECK(p);
    memcpy(p, b, len);
    histchunk_iter it;
    CHECK(histchunk_iter_init(&it, p, len) == 0);
    nhist h;
    nhist_init(&h);
    int64_t t;
    for (size_t i = 0; i < n; i++) {
        CHECK(histchunk_iter_next(&it, &t, &h) == 1);
        CHECK(t == ts[i]);
        CHECK(hist_eq(&h, &want[i]));
    }
    CHECK(histchunk_iter_next(&it, &t, &h) == 0);
    nhist_cleanup(&h);
    histchunk_iter_cleanup(&it);
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    CHECK(p);
    if (size) memcpy(p, data, size);
    histchunk_iter it;
    int rc = histchunk_iter_init(&it, p, size);
    if (rc < 0) {
        CHECK(rc == -EINVAL);
        free(p);
        return 0;
    }
    uint16_t count = histchunk_count(p, size);
    nhist *hs = calloc(count ? count : 1, sizeof *hs);
    int64_t *ts = calloc(count ? count : 1, sizeof *ts);
    CHECK(hs && ts);
    size_t n = 0;
    int64_t t;
    nhist tmp;
    nhist_init(&tmp);
    while ((rc = histchunk_iter_next(&it, &t, &tmp)) == 1) {
        CHECK(n < count);
        CHECK(n == 0 || t > ts[n - 1]);
        hs[n] = tmp; /* moved: hs[n] owns the arrays now */
        nhist_init(&tmp);
        ts[n++] = t;
    }
    nhist_cleanup(&tmp);
    CHECK(rc == 0 || rc == -EINVAL);
    CHECK(rc != 0 || n == count);
    CHECK(histchunk_iter_next(&it, &t, &tmp) == rc);
    nhist_cleanup(&tmp);
    histchunk_iter_cleanup(&it);

    histchunk_appender a;
    histchunk_init(&a);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        int r = histchunk_append(&a, ts[i], &hs[i]);
        if (r == HISTCHUNK_CUT || r == HISTCHUNK_CUT_RESET) {
            CHECK(a.count > 0);
            verify(&a, hs + start, ts + start, i - start);
            histchunk_cleanup(&a);
            start = i;
            r = histchunk_append(&a, ts[i], &hs[i]);
        }
        CHECK(r == 0);
    }
    if (n > start) verify(&a, hs + start, ts + start, n - start);
    histchunk_cleanup(&a);
    for (size_t i = 0; i < count; i++) nhist_cleanup(&hs[i]);
    free(hs);
    free(ts);
    free(p);
    return 0;
}
