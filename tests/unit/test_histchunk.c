/* Unit tests for histchunk: bit-exact round trips of integer, float,
 * custom-bucket (NHCB) and gauge histograms, staleness markers inside a
 * chunk, the appender's answers to layout changes, kind switches and
 * counter resets, its refusals, random histograms, and decoding of
 * truncated, bit-flipped and hand-corrupted chunks (run under ASan/UBSan
 * for the out-of-bounds part). Prints the bytes per sample of a realistic
 * series. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "histchunk.h"
#include "strutil.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

/* A histogram with one positive span [off, off+npos) and one negative span
 * of nneg buckets, counts from base growing by step per bucket. */
static void make_hist(nhist *h, bool is_float, int32_t schema, int32_t off, size_t npos, size_t nneg,
                      double base, double step)
{
    nhist_init(h);
    h->is_float = is_float;
    h->schema = schema;
    h->zero_threshold = 1e-128;
    h->zero_count = base;
    double total = h->zero_count;
    if (npos) {
        h->pos_spans = calloc(1, sizeof *h->pos_spans);
        h->pos_spans[0] = (nhist_span){off, (uint32_t)npos};
        h->n_pos_spans = 1;
        h->pos = calloc(npos, sizeof(double));
        h->n_pos = npos;
        for (size_t i = 0; i < npos; i++) total += h->pos[i] = base + step * (double)i;
    }
    if (nneg) {
        h->neg_spans = calloc(1, sizeof *h->neg_spans);
        h->neg_spans[0] = (nhist_span){-2, (uint32_t)nneg};
        h->n_neg_spans = 1;
        h->neg = calloc(nneg, sizeof(double));
        h->n_neg = nneg;
        for (size_t i = 0; i < nneg; i++) total += h->neg[i] = base + step * (double)(nneg - i);
    }
    h->count = total;
    h->sum = total * 0.37;
}

static void assert_hist_eq(const nhist *a, const nhist *b)
{
    assert_int_equal(a->is_float, b->is_float);
    assert_int_equal(a->hint, b->hint);
    assert_int_equal(a->schema, b->schema);
    assert_true(d2u(a->zero_threshold) == d2u(b->zero_threshold));
    assert_true(d2u(a->zero_count) == d2u(b->zero_count));
    assert_true(d2u(a->count) == d2u(b->count));
    assert_true(d2u(a->sum) == d2u(b->sum));
    assert_int_equal(a->n_pos_spans, b->n_pos_spans);
    assert_int_equal(a->n_neg_spans, b->n_neg_spans);
    assert_int_equal(a->n_pos, b->n_pos);
    assert_int_equal(a->n_neg, b->n_neg);
    assert_int_equal(a->n_custom_values, b->n_custom_values);
    for (size_t i = 0; i < a->n_pos_spans; i++) {
        assert_int_equal(a->pos_spans[i].offset, b->pos_spans[i].offset);
        assert_int_equal(a->pos_spans[i].length, b->pos_spans[i].length);
    }
    for (size_t i = 0; i < a->n_neg_spans; i++) {
        assert_int_equal(a->neg_spans[i].offset, b->neg_spans[i].offset);
        assert_int_equal(a->neg_spans[i].length, b->neg_spans[i].length);
    }
    for (size_t i = 0; i < a->n_pos; i++) assert_true(d2u(a->pos[i]) == d2u(b->pos[i]));
    for (size_t i = 0; i < a->n_neg; i++) assert_true(d2u(a->neg[i]) == d2u(b->neg[i]));
    for (size_t i = 0; i < a->n_custom_values; i++)
        assert_true(d2u(a->custom_values[i]) == d2u(b->custom_values[i]));
}

/* Decodes data and compares with want[0..n) at times ts. */
static void check_decode(const uint8_t *data, size_t len, const nhist *want, const int64_t *ts,
                         size_t n)
{
    histchunk_iter it;
    assert_int_equal(histchunk_iter_init(&it, data, len), 0);
    nhist got;
    nhist_init(&got);
    int64_t t;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(histchunk_iter_next(&it, &t, &got), 1);
        assert_int_equal(t, ts[i]);
        if (nhist_is_stale(&want[i])) {
            assert_true(nhist_is_stale(&got));
            assert_int_equal(got.hint, want[i].hint);
        } else {
            assert_hist_eq(&got, &want[i]);
        }
    }
    assert_int_equal(histchunk_iter_next(&it, &t, &got), 0);
    assert_int_equal(histchunk_iter_next(&it, &t, &got), 0);
    nhist_cleanup(&got);
    histchunk_iter_cleanup(&it);
}

static void free_hists(nhist *v, size_t n)
{
    for (size_t i = 0; i < n; i++) nhist_cleanup(&v[i]);
}

static void test_empty(void **state)
{
    (void)state;
    histchunk_appender a;
    histchunk_init(&a);
    size_t len;
    const uint8_t *b = histchunk_bytes(&a, &len);
    assert_int_equal(len, 2);
    assert_int_equal(histchunk_count(b, len), 0);
    histchunk_iter it;
    assert_int_equal(histchunk_iter_init(&it, b, len), 0);
    nhist h;
    nhist_init(&h);
    int64_t t;
    assert_int_equal(histchunk_iter_next(&it, &t, &h), 0);
    histchunk_iter_cleanup(&it);
    assert_int_equal(histchunk_iter_init(&it, b, 1), -EINVAL);
    assert_int_equal(histchunk_iter_init(&it, NULL, 0), -EINVAL);
    histchunk_cleanup(&a);
}

/* A realistic scraped series: 30 positive + 6 negative buckets, counts
 * growing by varying amounts every 15 s, 120 samples. */
static void roundtrip_series(bool is_float, int32_t schema, bool report)
{
    enum { N = 120 };
    nhist hs[N];
    int64_t ts[N];
    histchunk_appender a;
    histchunk_init(&a);
    for (size_t i = 0; i < N; i++) {
        make_hist(&hs[i], is_float, schema, -5, 30, 6, 0, 0);
        double total = 0;
        for (size_t k = 0; k < 30; k++) {
            double v = (double)(i * (k % 7 + 1) + (rnd() % 3) * i / 4 + k * 3);
            if (i > 0 && v < hs[i - 1].pos[k]) v = hs[i - 1].pos[k];
            if (is_float) v += 0.25 * (double)(i % 4);
            hs[i].pos[k] = v;
            total += v;
        }
        for (size_t k = 0; k < 6; k++) total += hs[i].neg[k] = (double)(i * k);
        hs[i].zero_count = (double)i;
        hs[i].count = total + (double)i + (double)(i % 3);
        hs[i].sum = hs[i].count * 0.0123 + (double)i;
        ts[i] = 1700000000000 + 15000 * (int64_t)i + (int64_t)(rnd() % 5) - 2;
        assert_int_equal(histchunk_append(&a, ts[i], &hs[i]), 0);
    }
    size_t len;
    const uint8_t *b = histchunk_bytes(&a, &len);
    assert_int_equal(histchunk_count(b, len), N);
    assert_int_equal(histchunk_enc(b, len), is_float ? CHUNKENC_FLOAT_HISTOGRAM : CHUNKENC_HISTOGRAM);
    check_decode(b, len, hs, ts, N);
    if (report)
        printf("# %s histogram, 36 buckets, 120 samples at 15 s: %zu bytes, %.1f bytes/sample\n",
               is_float ? "float" : "integer", len, (double)len / N);
    histchunk_cleanup(&a);
    free_hists(hs, N);
}

static void test_integer_roundtrip(void **state)
{
    (void)state;
    roundtrip_series(false, 3, true);
    roundtrip_series(false, -4, false);
}

static void test_float_roundtrip(void **state)
{
    (void)state;
    roundtrip_series(true, 0, true);
}

static void test_nhcb(void **state)
{
    (void)state;
    enum { N = 50 };
    nhist hs[N];
    int64_t ts[N];
    histchunk_appender a;
    histchunk_init(&a);
    for (size_t i = 0; i < N; i++) {
        make_hist(&hs[i], i % 2 == 99, NHIST_CUSTOM_SCHEMA, 0, 5, 0, (double)i, 1);
        hs[i].zero_threshold = 0;
        hs[i].zero_count = 0;
        hs[i].n_custom_values = 4;
        hs[i].custom_values = malloc(4 * sizeof(double));
        for (size_t k = 0; k < 4; k++) hs[i].custom_values[k] = 0.1 * (double)(k + 1);
        ts[i] = 1000 * (int64_t)i;
        assert_int_equal(histchunk_append(&a, ts[i], &hs[i]), 0);
    }
    size_t len;
    const uint8_t *b = histchunk_bytes(&a, &len);
    check_decode(b, len, hs, ts, N);
    /* Other custom bounds: a new chunk. */
    nhist o;
    nhist_copy(&o, &hs[N - 1]);
    o.custom_values[2] = 0.35;
    assert_int_equal(histchunk_append(&a, 1000 * N, &o), HISTCHUNK_CUT);
    nhist_cleanup(&o);
    histchunk_cleanup(&a);
    free_hists(hs, N);
}

static void test_gauge(void **state)
{
    (void)state;
    enum { N = 40 };
    nhist hs[N];
    int64_t ts[N];
    histchunk_appender a;
    histchunk_init(&a);
    for (size_t i = 0; i < N; i++) {
        /* Going up and down: no reset for a gauge. */
        make_hist(&hs[i], false, 1, 2, 8, 2, (double)((i * 7) % 11), 2);
        hs[i].hint = NHIST_HINT_GAUGE;
        ts[i] = 500 * (int64_t)i;
        assert_int_equal(histchunk_append(&a, ts[i], &hs[i]), 0);
    }
    size_t len;
    const uint8_t *b = histchunk_bytes(&a, &len);
    check_decode(b, len, hs, ts, N);
    /* A counter sample after gauge samples: a new chunk. */
    nhist c;
    make_hist(&c, false, 1, 2, 8, 2, 100, 2);
    assert_int_equal(histchunk_append(&a, 500 * N, &c), HISTCHUNK_CUT);
    nhist_cleanup(&c);
    histchunk_cleanup(&a);
    free_hists(hs, N);
}

static void make_stale(nhist *h)
{
    nhist_init(h);
    h->sum = strutil_stale_nan();
}

static void test_stale_marker(void **state)
{
    (void)state;
    enum { N = 9 };
    nhist hs[N];
    int64_t ts[N];
    histchunk_appender a;
    histchunk_init(&a);
    for (size_t i = 0; i < N; i++) {
        if (i == 0 || i == 4 || i == 5 || i == 8) {
            make_stale(&hs[i]);
            if (i == 5) hs[i].hint = NHIST_HINT_NOT_RESET;
        } else {
            make_hist(&hs[i], false, 2, 0, 4, 0, (double)(10 * i), 1);
        }
        ts[i] = 60000 * (int64_t)i + (i == 3 ? 17 : 0);
        assert_true(nhist_is_stale(&hs[i]) == (i == 0 || i == 4 || i == 5 || i == 8));
        int rc = histchunk_append(&a, ts[i], &hs[i]);
        if (i == 1) {
            /* After a leading marker of another layout (schema 0, no
             * spans): the first real sample starts a new chunk. */
            assert_int_equal(rc, HISTCHUNK_CUT);
            size_t l;
            const uint8_t *b = histchunk_bytes(&a, &l);
            check_decode(b, l, hs, ts, 1);
            histchunk_cleanup(&a);
            rc = histchunk_append(&a, ts[i], &hs[i]);
        }
        assert_int_equal(rc, 0);
    }
    size_t len;
    const uint8_t *b = histchunk_bytes(&a, &len);
    assert_int_equal(histchunk_count(b, len), N - 1);
    check_decode(b, len, hs + 1, ts + 1, N - 1);
    /* The decoded marker carries the chunk's layout and validates. */
    histchunk_iter it;
    assert_int_equal(histchunk_iter_init(&it, b, len), 0);
    nhist g;
    nhist_init(&g);
    int64_t t;
    for (int i = 0; i < 4; i++) assert_int_equal(histchunk_iter_next(&it, &t, &g), 1);
    assert_true(nhist_is_stale(&g));
    assert_int_equal(g.schema, 2);
    assert_int_equal(nhist_validate(&g, NULL, 0), 0);
    nhist_cleanup(&g);
    histchunk_iter_cleanup(&it);
    histchunk_cleanup(&a);
    free_hists(hs, N);
}

static void test_layout_changes(void **state)
{
    (void)state;
    histchunk_appender a;
    histchunk_init(&a);
    nhist h;
    make_hist(&h, false, 3, 0, 10, 2, 5, 1);
    assert_int_equal(histchunk_append(&a, 1000, &h), 0);
    size_t len0;
    histchunk_bytes(&a, &len0);
    nhist o;
    nhist_init(&o);
    /* schema */
    nhist_copy(&o, &h);
    o.schema = 2;
    assert_int_equal(histchunk_append(&a, 2000, &o), HISTCHUNK_CUT);
    /* zero threshold */
    nhist_copy(&o, &h);
    o.zero_threshold = 0.001;
    assert_int_equal(histchunk_append(&a, 2000, &o), HISTCHUNK_CUT);
    /* integer -> float */
    nhist_copy(&o, &h);
    o.is_float = true;
    assert_int_equal(histchunk_append(&a, 2000, &o), HISTCHUNK_CUT);
    /* a bucket added (superset) */
    nhist_cleanup(&o);
    make_hist(&o, false, 3, 0, 11, 2, 6, 1);
    assert_int_equal(histchunk_append(&a, 2000, &o), HISTCHUNK_CUT);
    /* a bucket fewer (shrink) */
    nhist_cleanup(&o);
    make_hist(&o, false, 3, 1, 9, 2, 6, 1);
    assert_int_equal(histchunk_append(&a, 2000, &o), HISTCHUNK_CUT);
    /* a bucket decreasing: counter reset */
    nhist_copy(&o, &h);
    o.pos[3] -= 1;
    assert_int_equal(histchunk_append(&a, 2000, &o), HISTCHUNK_CUT_RESET);
    /* count decreasing */
    nhist_copy(&o, &h);
    o.count -= 1;
    assert_int_equal(histchunk_append(&a, 2000, &o), HISTCHUNK_CUT_RESET);
    /* an explicit reset hint */
    nhist_copy(&o, &h);
    o.hint = NHIST_HINT_RESET;
    assert_int_equal(histchunk_append(&a, 2000, &o), HISTCHUNK_CUT_RESET);
    /* nothing was written by the refusals */
    size_t len1;
    histchunk_bytes(&a, &len1);
    assert_int_equal(len0, len1);
    assert_int_equal(a.count, 1);
    /* equal values: fine */
    nhist_copy(&o, &h);
    assert_int_equal(histchunk_append(&a, 2000, &o), 0);
    /* refusals */
    assert_int_equal(histchunk_append(&a, 2000, &o), -EINVAL); /* same time */
    assert_int_equal(histchunk_append(&a, 1500, &o), -EINVAL); /* older */
    o.pos[0] = 1.5;
    assert_int_equal(histchunk_append(&a, 3000, &o), -EINVAL); /* not whole */
    o.pos[0] = -1;
    assert_int_equal(histchunk_append(&a, 3000, &o), -EINVAL); /* negative */
    nhist_copy(&o, &h);
    o.pos_spans[0].length = 9;
    assert_int_equal(histchunk_append(&a, 3000, &o), -EINVAL); /* spans */
    nhist_cleanup(&o);
    assert_int_equal(a.count, 2);
    /* A new chunk takes the cut sample. */
    histchunk_appender b;
    histchunk_init(&b);
    make_hist(&o, true, 2, 0, 3, 0, 1.5, 0.5);
    assert_int_equal(histchunk_append(&b, 4000, &o), 0);
    size_t len;
    const uint8_t *bytes = histchunk_bytes(&b, &len);
    int64_t t = 4000;
    check_decode(bytes, len, &o, &t, 1);
    nhist_cleanup(&o);
    nhist_cleanup(&h);
    histchunk_cleanup(&a);
    histchunk_cleanup(&b);
}

/* Random layouts and values, appended with cuts as the appender asks;
 * every chunk decodes to exactly what went in. */
static void test_random(void **state)
{
    (void)state;
    for (int round = 0; round < 60; round++) {
        size_t n = 1 + rnd() % 200;
        nhist *hs = calloc(n, sizeof *hs);
        int64_t *ts = calloc(n, sizeof *ts);
        bool is_float = rnd() % 2;
        size_t npos = rnd() % 40, nneg = rnd() % 5;
        int64_t t = (int64_t)(rnd() % 2000000000000ULL) - 1000000000000LL;
        histchunk_appender a;
        histchunk_init(&a);
        size_t start = 0;
        for (size_t i = 0; i < n; i++) {
            t += 1 + (int64_t)(rnd() % 4 == 0 ? rnd() % 100000000 : rnd() % 30000);
            ts[i] = t;
            if (rnd() % 23 == 0) {
                make_stale(&hs[i]);
            } else {
                if (rnd() % 31 == 0) npos = rnd() % 40; /* layout change */
                make_hist(&hs[i], is_float, 1, -3, npos, nneg, 0, 0);
                double total = 0;
                for (size_t k = 0; k < npos; k++)
                    total += hs[i].pos[k] = is_float ? (double)(rnd() % 100000) / 7.0 : (double)(rnd() % 1000000);
                for (size_t k = 0; k < nneg; k++) total += hs[i].neg[k] = (double)(rnd() % 50);
                hs[i].count = total + (double)(rnd() % 3);
                hs[i].sum = rnd() % 5 == 0 ? NAN : (double)(int64_t)rnd() / 1e6;
                hs[i].hint = (enum nhist_hint)(rnd() % 4);
            }
            int rc = histchunk_append(&a, t, &hs[i]);
            if (rc == HISTCHUNK_CUT || rc == HISTCHUNK_CUT_RESET) {
                size_t len;
                const uint8_t *b = histchunk_bytes(&a, &len);
                check_decode(b, len, hs + start, ts + start, i - start);
                histchunk_cleanup(&a);
                start = i;
                rc = histchunk_append(&a, t, &hs[i]);
            }
            assert_int_equal(rc, 0);
        }
        size_t len;
        const uint8_t *b = histchunk_bytes(&a, &len);
        check_decode(b, len, hs + start, ts + start, n - start);
        histchunk_cleanup(&a);
        free_hists(hs, n);
        free(hs);
        free(ts);
    }
}

/* Builds a chunk of n mixed samples into a malloc'd copy. */
static uint8_t *sample_chunk(size_t n, bool is_float, size_t *len)
{
    histchunk_appender a;
    histchunk_init(&a);
    for (size_t i = 0; i < n; i++) {
        nhist h;
        if (i == n / 2)
            make_stale(&h);
        else
            make_hist(&h, is_float, 0, -1, 6, 2, (double)i * 3, (double)i);
        assert_int_equal(histchunk_append(&a, 1000 * (int64_t)i * (int64_t)i, &h), 0);
        nhist_cleanup(&h);
    }
    const uint8_t *b = histchunk_bytes(&a, len);
    uint8_t *copy = malloc(*len);
    memcpy(copy, b, *len);
    histchunk_cleanup(&a);
    return copy;
}

/* Decodes arbitrary bytes: returns the samples read and the final code. */
static int decode_all(const uint8_t *d, size_t len, size_t *n)
{
    histchunk_iter it;
    *n = 0;
    int rc = histchunk_iter_init(&it, d, len);
    if (rc < 0) return rc;
    nhist h;
    nhist_init(&h);
    int64_t t;
    while ((rc = histchunk_iter_next(&it, &t, &h)) == 1) (*n)++;
    nhist_cleanup(&h);
    histchunk_iter_cleanup(&it);
    return rc;
}

static void test_truncation(void **state)
{
    (void)state;
    for (int f = 0; f < 2; f++) {
        size_t len;
        uint8_t *full = sample_chunk(20, f, &len);
        size_t n;
        assert_int_equal(decode_all(full, len, &n), 0);
        assert_int_equal(n, 20);
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *p = malloc(cut ? cut : 1);
            memcpy(p, full, cut);
            int rc = decode_all(p, cut, &n);
            assert_int_equal(rc, -EINVAL);
            assert_true(n < 20);
            free(p);
        }
        free(full);
    }
}

static void test_bit_flips(void **state)
{
    (void)state;
    size_t len;
    uint8_t *full = sample_chunk(30, false, &len);
    uint8_t *p = malloc(len);
    for (int round = 0; round < 3000; round++) {
        memcpy(p, full, len);
        int flips = 1 + (int)(rnd() % 4);
        for (int k = 0; k < flips; k++) p[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
        size_t n;
        int rc = decode_all(p, len, &n);
        assert_true(rc == 0 || rc == -EINVAL);
        assert_true(n <= histchunk_count(p, len));
    }
    free(p);
    free(full);
}

static void test_corrupt_header(void **state)
{
    (void)state;
    size_t len;
    uint8_t *full = sample_chunk(5, false, &len);
    size_t n;
    /* unknown flag bits */
    full[2] |= 0x80;
    assert_int_equal(histchunk_enc(full, len), -EINVAL);
    assert_int_equal(decode_all(full, len, &n), -EINVAL);
    full[2] &= 0x7f;
    /* a count larger than the samples present */
    full[1] = 6;
    assert_int_equal(decode_all(full, len, &n), -EINVAL);
    assert_int_equal(n, 5);
    full[1] = 5;
    /* a huge span count */
    uint8_t bad[] = {0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f};
    assert_int_equal(decode_all(bad, sizeof bad, &n), -EINVAL);
    /* count 0 with a header: corrupt */
    uint8_t zero[] = {0, 0, 0, 0};
    assert_int_equal(decode_all(zero, sizeof zero, &n), -EINVAL);
    free(full);
}

static void test_full(void **state)
{
    (void)state;
    histchunk_appender a;
    histchunk_init(&a);
    nhist h;
    make_hist(&h, false, 0, 0, 2, 0, 1, 0);
    size_t i = 0;
    while (!histchunk_full(&a)) {
        assert_int_equal(histchunk_append(&a, (int64_t)i, &h), 0);
        i++;
    }
    assert_int_equal(i, HISTCHUNK_TARGET_SAMPLES);
    histchunk_cleanup(&a);
    nhist_cleanup(&h);
    /* Many buckets of random values: cut by bytes after the minimum. */
    make_hist(&h, true, 0, 0, 100, 0, 1, 0);
    h.hint = NHIST_HINT_GAUGE;
    i = 0;
    while (!histchunk_full(&a)) {
        for (size_t k = 0; k < 100; k++) h.pos[k] = (double)rnd() / 3.0;
        assert_int_equal(histchunk_append(&a, (int64_t)i, &h), 0);
        i++;
    }
    assert_int_equal(i, HISTCHUNK_MIN_SAMPLES);
    histchunk_cleanup(&a);
    nhist_cleanup(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_integer_roundtrip),
        cmocka_unit_test(test_float_roundtrip),
        cmocka_unit_test(test_nhcb),
        cmocka_unit_test(test_gauge),
        cmocka_unit_test(test_stale_marker),
        cmocka_unit_test(test_layout_changes),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_corrupt_header),
        cmocka_unit_test(test_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
