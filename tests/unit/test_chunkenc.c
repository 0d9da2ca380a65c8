/* Unit tests for chunkenc: byte-exact encoding (hand-derived vectors, a
 * vector produced by Prometheus's Go XORChunk, and a bit-at-a-time
 * reference encoder written from the layout in chunkenc.h), bit-exact round
 * trips of edge values and timestamps, every delta-of-delta bucket bound,
 * the appender's refusals and limits, and decoding of truncated, bit-flipped
 * and hand-corrupted chunks (run under ASan/UBSan for the out-of-bounds
 * part). */
#include "testutil.h"

#include <math.h>

#include <errno.h>

#include "chunkenc.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

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

/* xorshift64: deterministic pseudo-random numbers. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Reference encoder: one bit at a time, straight from the layout comment
 * in chunkenc.h, sharing no code with the encoder under test. */
typedef struct {
    uint8_t *b;
    size_t nbits, cap;
} refbs;

static void ref_bit(refbs *s, unsigned bit)
{
    if (s->nbits / 8 >= s->cap) {
        size_t old = s->cap;
        s->cap = old ? 2 * old : 64;
        s->b = realloc(s->b, s->cap);
        assert_non_null(s->b);
        memset(s->b + old, 0, s->cap - old);
    }
    if (bit) s->b[s->nbits / 8] |= (uint8_t)(0x80 >> (s->nbits % 8));
    s->nbits++;
}

static void ref_bits(refbs *s, uint64_t x, int n)
{
    for (int i = n - 1; i >= 0; i--)
        ref_bit(s, (unsigned)((x >> i) & 1));
}

static void ref_uvarint(refbs *s, uint64_t x)
{
    while (x >= 0x80) {
        ref_bits(s, (x & 0x7f) | 0x80, 8);
        x >>= 7;
    }
    ref_bits(s, x, 8);
}

static int ref_clz(uint64_t x)
{
    int n = 0;
    while (!(x & 0x8000000000000000ULL)) {
        x <<= 1;
        n++;
    }
    return n;
}

static int ref_ctz(uint64_t x)
{
    int n = 0;
    while (!(x & 1)) {
        x >>= 1;
        n++;
    }
    return n;
}

/* Caller frees; *len gets the byte length. */
static uint8_t *ref_encode(const int64_t *ts, const uint64_t *vs, size_t n, size_t *len)
{
    refbs s = {0};
    int leading = -1, trailing = 0; /* -1: no window yet */
    uint64_t pdelta = 0;
    ref_bits(&s, n, 16);
    for (size_t i = 0; i < n; i++) {
        if (i == 0) {
            uint64_t zz = ts[0] < 0 ? ~((uint64_t)ts[0] << 1) : (uint64_t)ts[0] << 1;
            ref_uvarint(&s, zz);
            ref_bits(&s, vs[0], 64);
            continue;
        }
        uint64_t delta = (uint64_t)ts[i] - (uint64_t)ts[i - 1];
        if (i == 1) {
            ref_uvarint(&s, delta);
        } else {
            int64_t dod = (int64_t)(delta - pdelta);
            if (dod == 0)
                ref_bits(&s, 0, 1);
            else if (dod >= -8191 && dod <= 8192)
                ref_bits(&s, 2, 2), ref_bits(&s, (uint64_t)dod, 14);
            else if (dod >= -65535 && dod <= 65536)
                ref_bits(&s, 6, 3), ref_bits(&s, (uint64_t)dod, 17);
            else if (dod >= -524287 && dod <= 524288)
                ref_bits(&s, 14, 4), ref_bits(&s, (uint64_t)dod, 20);
            else
                ref_bits(&s, 15, 4), ref_bits(&s, (uint64_t)dod, 64);
        }
        pdelta = delta;
        uint64_t x = vs[i] ^ vs[i - 1];
        if (x == 0) {
            ref_bits(&s, 0, 1);
            continue;
        }
        int lz = ref_clz(x), tz = ref_ctz(x);
        if (lz > 31) lz = 31;
        if (leading >= 0 && lz >= leading && tz >= trailing) {
            ref_bits(&s, 2, 2);
            ref_bits(&s, x >> trailing, 64 - leading - trailing);
        } else {
            leading = lz, trailing = tz;
            ref_bits(&s, 3, 2);
            ref_bits(&s, (uint64_t)lz, 5);
            ref_bits(&s, (uint64_t)(64 - lz - tz), 6); /* 64 becomes 0 */
            ref_bits(&s, x >> tz, 64 - lz - tz);
        }
    }
    *len = (s.nbits + 7) / 8;
    return s.b;
}

static void hexdump_diff(const char *what, const uint8_t *got, size_t glen, const uint8_t *want,
                         size_t wlen)
{
    print_message("%s: got %zu bytes, want %zu\n  got ", what, glen, wlen);
    for (size_t i = 0; i < glen; i++)
        print_message("%02x", got[i]);
    print_message("\n want ");
    for (size_t i = 0; i < wlen; i++)
        print_message("%02x", want[i]);
    print_message("\n");
}

static void assert_bytes(const char *what, const uint8_t *got, size_t glen, const uint8_t *want,
                         size_t wlen)
{
    if (glen != wlen || memcmp(got, want, glen) != 0) {
        hexdump_diff(what, got, glen, want, wlen);
        fail_msg("%s: encoding differs", what);
    }
}

static void encode(chunk_appender *a, const int64_t *ts, const uint64_t *vs, size_t n)
{
    chunkenc_init(a);
    for (size_t i = 0; i < n; i++) {
        int rc = chunkenc_append(a, ts[i], u2d(vs[i]));
        if (rc != 0) fail_msg("append %zu (t=%lld) returned %d", i, (long long)ts[i], rc);
    }
}

/* Decodes data (copied into a buffer of exactly len bytes, so ASan sees any
 * overread) and checks every sample bit-exactly. */
static void assert_decodes(const char *what, const uint8_t *data, size_t len, const int64_t *ts,
                           const uint64_t *vs, size_t n)
{
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, data, len);
    assert_int_equal(chunkenc_count(copy, len), n);
    chunk_iter it;
    assert_int_equal(chunkenc_iter_init(&it, copy, len), 0);
    int64_t t;
    double v;
    for (size_t i = 0; i < n; i++) {
        int rc = chunkenc_iter_next(&it, &t, &v);
        if (rc != 1) fail_msg("%s: sample %zu: next returned %d", what, i, rc);
        if (t != ts[i] || d2u(v) != vs[i])
            fail_msg("%s: sample %zu: got (%lld, %016llx), want (%lld, %016llx)", what, i,
                     (long long)t, (unsigned long long)d2u(v), (long long)ts[i],
                     (unsigned long long)vs[i]);
    }
    assert_int_equal(chunkenc_iter_next(&it, &t, &v), 0);
    assert_int_equal(chunkenc_iter_next(&it, &t, &v), 0);
    free(copy);
}

/* Encodes, compares with the reference encoder, decodes. */
static void check_roundtrip(const char *what, const int64_t *ts, const uint64_t *vs, size_t n)
{
    chunk_appender a;
    encode(&a, ts, vs, n);
    assert_int_equal(a.count, n);
    size_t len, rlen;
    const uint8_t *b = chunkenc_bytes(&a, &len);
    uint8_t *ref = ref_encode(ts, vs, n, &rlen);
    assert_bytes(what, b, len, ref, rlen);
    assert_true(chunkenc_capacity(&a) >= len);
    assert_decodes(what, b, len, ts, vs, n);
    free(ref);
    chunkenc_cleanup(&a);
}

/* Field by field (struct copies need not copy padding). */
static void assert_same_state(const chunk_appender *a, const chunk_appender *b)
{
    assert_ptr_equal(a->data, b->data);
    assert_int_equal(a->cap, b->cap);
    assert_int_equal(a->bits, b->bits);
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->leading, b->leading);
    assert_int_equal(a->trailing, b->trailing);
    assert_true(a->t == b->t);
    assert_true(a->delta == b->delta);
    assert_true(a->v == b->v);
}

#define T0 1700000000000LL /* 2023-11-14, a typical millisecond timestamp */

/* ---- byte-exact vectors ---- */

static void test_empty(void **state)
{
    (void)state;
    chunk_appender a;
    chunkenc_init(&a);
    size_t len = 99;
    const uint8_t *b = chunkenc_bytes(&a, &len);
    assert_int_equal(len, 2);
    assert_int_equal(b[0], 0);
    assert_int_equal(b[1], 0);
    assert_int_equal(chunkenc_capacity(&a), 0);
    chunk_iter it;
    int64_t t;
    double v;
    assert_int_equal(chunkenc_iter_init(&it, b, len), 0);
    assert_int_equal(chunkenc_iter_next(&it, &t, &v), 0);
    chunkenc_cleanup(&a);
    chunkenc_cleanup(&a); /* twice is fine */
}

/* Hand-derived encodings. Bits are written most significant first and the
 * last byte is padded with zero bits. */
static const int64_t hand1_t[] = {0};
static const uint64_t hand1_v[] = {0};
/* count 0x0001 | zigzag(0) = 0 -> varint 00 | 0.0 -> 8 bytes of 00 */
static const uint8_t hand1_b[] = {0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};

static const int64_t hand2_t[] = {1, 2, 3};
static const uint64_t hand2_v[] = {0x3FF0000000000000ULL, 0x3FF0000000000000ULL,
                                   0x4000000000000000ULL}; /* 1.0, 1.0, 2.0 */
/* count 00 03 | zigzag(1) = 2 -> 02 | 1.0 = 3F F0 00 00 00 00 00 00
 * t1: delta 1 -> uvarint 01 (still byte aligned)
 * v1: 1.0 ^ 1.0 = 0                      '0'
 * t2: dod = 1 - 1 = 0                    '0'
 * v2: 2.0 ^ 1.0 = 0x7FF0000000000000: 1 leading zero, 52 trailing, no window
 *     yet -> '11' + 00001 + 11 meaningful (001011) + 0x7FF (11111111111)
 * bits: 0 0 11 00001 001011 11111111111 (26) + 000000 padding
 *     = 00110000 10010111 11111111 11000000 = 30 97 FF C0 */
static const uint8_t hand2_b[] = {0x00, 0x03, 0x02, 0x3F, 0xF0, 0x00, 0x00, 0x00,
                                  0x00, 0x00, 0x00, 0x01, 0x30, 0x97, 0xFF, 0xC0};

static const int64_t hand3_t[] = {0, 10, 19, 29, 39, 49};
static const uint64_t hand3_v[] = {
    0, 0, 0, 0, 0x4008000000000000ULL, 0x4000000000000000ULL}; /* ..., 3.0, 2.0 */
/* count 00 06 | zigzag(0) 00 | 0.0: 8 x 00 | t1: delta 10 -> 0A
 * v1: '0'
 * t2: delta 9, dod -1 -> '10' + 14 bits of -1 = 11111111111111;  v2: '0'
 * t3: delta 10, dod +1 -> '10' + 00000000000001;                 v3: '0'
 * t4: dod 0 '0'; v4: 3.0 ^ 0.0 = 0x4008000000000000: 1 leading, 51 trailing
 *     -> '11' + 00001 + 001100 (12) + 0x801 = 100000000001
 * t5: dod 0 '0'; v5: 2.0 ^ 3.0 = 0x0008000000000000: 12 leading >= 1 and
 *     51 trailing >= 51 -> fits the window: '10' + 12 bits 000000000001
 * bits: 0 1011111111111111 0 1000000000000001 0 0 11 00001 001100
 *       100000000001 0 10 000000000001  (80 bits, no padding)
 *     = 01011111 11111111 10100000 00000000 01001100 00100110 01000000
 *       00001010 00000000 00010000 = 5F FF A0 00 4C 26 40 0A 00 10 */
static const uint8_t hand3_b[] = {0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                  0x0A, 0x5F, 0xFF, 0xA0, 0x00, 0x4C, 0x26, 0x40, 0x0A, 0x00, 0x10};

static const int64_t hand4_t[] = {-1, 1000, 10194, 84925};
static const uint64_t hand4_v[] = {0x8000000000000000ULL, 0x8000000000000000ULL,
                                   0x8000000000000000ULL, 0x8000000000000000ULL}; /* -0.0 */
/* count 00 04 | zigzag(-1) = 1 -> 01 | -0.0 = 80 00 00 00 00 00 00 00
 * t1: delta 1001 = 0x3E9 -> uvarint E9 07;  v1: '0'
 * t2: delta 9194, dod 8193 (one past the 14-bit bucket) -> '110' + 17 bits
 *     00010000000000001;  v2: '0'
 * t3: delta 74731, dod 65537 (one past the 17-bit bucket) -> '1110' +
 *     20 bits 00010000000000000001;  v3: '0'
 * bits: 0 110 00010000000000001 0 1110 00010000000000000001 0 (47) + 0
 *     = 01100001 00000000 00001011 10000100 00000000 00000100
 *     = 61 00 0B 84 00 04 */
static const uint8_t hand4_b[] = {0x00, 0x04, 0x01, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                  0x00, 0xE9, 0x07, 0x61, 0x00, 0x0B, 0x84, 0x00, 0x04};

static void test_hand_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const int64_t *t;
        const uint64_t *v;
        size_t n;
        const uint8_t *bytes;
        size_t len;
    } cases[] = {
        {"one sample", hand1_t, hand1_v, ARRAY_LEN(hand1_t), hand1_b, sizeof hand1_b},
        {"new window", hand2_t, hand2_v, ARRAY_LEN(hand2_t), hand2_b, sizeof hand2_b},
        {"14-bit dods, reused window", hand3_t, hand3_v, ARRAY_LEN(hand3_t), hand3_b,
         sizeof hand3_b},
        {"17- and 20-bit dods", hand4_t, hand4_v, ARRAY_LEN(hand4_t), hand4_b, sizeof hand4_b},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        chunk_appender a;
        encode(&a, cases[i].t, cases[i].v, cases[i].n);
        size_t len;
        const uint8_t *b = chunkenc_bytes(&a, &len);
        assert_bytes(cases[i].name, b, len, cases[i].bytes, cases[i].len);
        assert_decodes(cases[i].name, cases[i].bytes, cases[i].len, cases[i].t, cases[i].v,
                       cases[i].n);
        uint8_t *ref = ref_encode(cases[i].t, cases[i].v, cases[i].n, &len);
        assert_bytes(cases[i].name, ref, len, cases[i].bytes, cases[i].len);
        free(ref);
        chunkenc_cleanup(&a);
    }
}

/* Bytes produced by Prometheus's own XORChunk (Go), for ten samples
 * t = 1234123324 + i, v = 123535.123 + i: the "chunks" entry of
 * golang-tests/test.json in github.com/SINTEF/rusty-chunkenc (base64
 * "AAr46PmYCUD+KPH3ztkXAe4v0FDQUdBQ0FPA"). */
static void test_prometheus_vector(void **state)
{
    (void)state;
    static const uint8_t want[] = {0x00, 0x0a, 0xf8, 0xe8, 0xf9, 0x98, 0x09, 0x40, 0xfe,
                                   0x28, 0xf1, 0xf7, 0xce, 0xd9, 0x17, 0x01, 0xee, 0x2f,
                                   0xd0, 0x50, 0xd0, 0x51, 0xd0, 0x50, 0xd0, 0x53, 0xc0};
    int64_t ts[10];
    uint64_t vs[10];
    for (int i = 0; i < 10; i++) {
        ts[i] = 1234123324 + i;
        vs[i] = d2u(123535.123 + i);
    }
    chunk_appender a;
    encode(&a, ts, vs, 10);
    size_t len;
    const uint8_t *b = chunkenc_bytes(&a, &len);
    assert_bytes("prometheus vector", b, len, want, sizeof want);
    assert_decodes("prometheus vector", want, sizeof want, ts, vs, 10);
    chunkenc_cleanup(&a);
}

/* ---- values ---- */

#define STALE 0x7ff0000000000002ULL
#define PINF 0x7ff0000000000000ULL
#define NINF 0xfff0000000000000ULL
#define NEGZERO 0x8000000000000000ULL
#define DMAX 0x7fefffffffffffffULL

static const uint64_t edge_values[] = {
    0x7ff8000000000000ULL, /* NaN */
    0x7ff8000000000001ULL, /* NaN with payload */
    0x7ff0000000000001ULL, /* signalling NaN */
    0xfff8000000000000ULL, /* negative NaN */
    0x7fffffffffffffffULL, /* NaN, all payload bits */
    0xffffffffffffffffULL, /* NaN, every bit */
    STALE,
    PINF,
    NINF,
    NEGZERO,
    0,
    1,                     /* smallest denormal */
    0x000fffffffffffffULL, /* largest denormal */
    0x8000000000000001ULL, /* negative denormal */
    0x0010000000000000ULL, /* DBL_MIN */
    DMAX,
    0xffefffffffffffffULL, /* -DBL_MAX */
    0x3ff0000000000000ULL, /* 1.0 */
    0xbff0000000000000ULL, /* -1.0 */
};

/* start + i * step, without signed overflow in between. */
static void regular_times(int64_t *ts, size_t n, int64_t start, int64_t step)
{
    for (size_t i = 0; i < n; i++)
        ts[i] = (int64_t)((uint64_t)start + (uint64_t)i * (uint64_t)step);
}

static void test_values_roundtrip(void **state)
{
    (void)state;
    enum { N = 800 };
    int64_t ts[N];
    uint64_t vs[N];
    regular_times(ts, N, T0, 15000);
    const size_t ne = ARRAY_LEN(edge_values);

    /* Every ordered pair of edge values, so each one follows each other. */
    size_t n = 0;
    for (size_t i = 0; i < ne; i++)
        for (size_t j = 0; j < ne; j++) {
            vs[n++] = edge_values[i];
            vs[n++] = edge_values[j];
        }
    assert_true(n <= N);
    check_roundtrip("edge value pairs", ts, vs, n);

    /* Each edge value repeated, then the next. */
    n = 0;
    for (size_t i = 0; i < ne; i++)
        for (int k = 0; k < 5; k++)
            vs[n++] = edge_values[i];
    check_roundtrip("edge values repeated", ts, vs, n);

    /* Each edge value as the first sample, then a normal value. */
    for (size_t i = 0; i < ne; i++) {
        uint64_t two[3] = {edge_values[i], d2u(1.5), edge_values[i]};
        check_roundtrip("edge first", ts, two, 3);
        check_roundtrip("edge alone", ts, two, 1);
    }

    /* Alternating values. */
    static const uint64_t alt[][2] = {
        {0, STALE},
        {0x3ff0000000000000ULL, 0xbff0000000000000ULL} /* 1, -1 */,
        {DMAX, 1},
        {PINF, NINF},
        {0, 0xffffffffffffffffULL},
        {NEGZERO, 0},
        {0x3fb999999999999aULL, 0x3fc999999999999aULL} /* 0.1, 0.2 */,
    };
    for (size_t k = 0; k < ARRAY_LEN(alt); k++) {
        for (size_t i = 0; i < 200; i++)
            vs[i] = alt[k][i & 1];
        check_roundtrip("alternating", ts, vs, 200);
    }

    /* Constants. */
    static const uint64_t consts[] = {0, 0x4045000000000000ULL /* 42 */, STALE, NEGZERO};
    for (size_t k = 0; k < ARRAY_LEN(consts); k++) {
        for (size_t i = 0; i < N; i++)
            vs[i] = consts[k];
        check_roundtrip("constant", ts, vs, N);
    }

    /* A single set bit walking through every position and back: windows
     * at every offset, and the leading-zero cap of 31. */
    n = 0;
    vs[n++] = 0;
    for (int b = 0; b < 64; b++)
        vs[n++] = 1ULL << b;
    for (int b = 63; b >= 0; b--)
        vs[n++] = (1ULL << b) | 1;
    check_roundtrip("walking bit", ts, vs, n);

    /* Leading zeros past 31 (capped) then reusing that window. */
    uint64_t small[] = {0, 1, 3, 2, 0x100000000ULL, 0x80000000ULL, 0x7fffffffULL};
    check_roundtrip("leading cap", ts, small, ARRAY_LEN(small));

    /* 64 meaningful bits (written as 0 in the 6-bit field), then reused. */
    uint64_t full[] = {0, 0x8000000000000001ULL, 0x0000000000000001ULL, 0x8000000000000000ULL, 0};
    check_roundtrip("64 meaningful bits", ts, full, ARRAY_LEN(full));

    /* Random doubles (every bit pattern, NaNs included). */
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < N; i++)
            vs[i] = rnd();
        check_roundtrip("random bits", ts, vs, N);
    }

    /* Counters: integral increments, and fractional ones. */
    double c = 0;
    for (size_t i = 0; i < N; i++, c += (double)(rnd() % 1000))
        vs[i] = d2u(c);
    check_roundtrip("integral counter", ts, vs, N);
    c = 1e9;
    for (size_t i = 0; i < N; i++, c += (double)(rnd() % 1000000) / 1000.0)
        vs[i] = d2u(c);
    check_roundtrip("fractional counter", ts, vs, N);

    /* Random walk gauge. */
    c = 100;
    for (size_t i = 0; i < N; i++, c += ((double)(rnd() % 2001) - 1000.0) / 100.0)
        vs[i] = d2u(c);
    check_roundtrip("random walk", ts, vs, N);
}

/* Every window size (1..64 meaningful bits) at every bit alignment, both as
 * a new window and reused: sample 1 opens a window of s1 = 1..8 bits at
 * the top (13 + s1 bits after a byte boundary: every alignment), sample 2
 * opens one of m bits with L leading zeros, sample 3 reuses it. */
static void test_window_alignment(void **state)
{
    (void)state;
    int64_t ts[5];
    regular_times(ts, 5, T0, 1000);
    for (int s1 = 1; s1 <= 8; s1++) {
        for (int m = 1; m <= 64; m++) {
            const int leads[] = {0, 1, 5, 31, 64 - m};
            for (size_t k = 0; k < ARRAY_LEN(leads); k++) {
                int lead = leads[k], trail = 64 - lead - m;
                if (trail < 0) continue;
                uint64_t x = (1ULL << (63 - lead)) | (1ULL << trail);
                uint64_t vs[5];
                vs[0] = 0;
                vs[1] = 0x8000000000000000ULL | (1ULL << (64 - s1));
                vs[2] = vs[1] ^ x;
                vs[3] = vs[2] ^ x;
                vs[4] = vs[3] ^ (1ULL << trail);
                check_roundtrip("window alignment", ts, vs, 5);
            }
        }
    }
}

/* ---- timestamps ---- */

static void test_timestamp_patterns(void **state)
{
    (void)state;
    enum { N = 500 };
    int64_t ts[N];
    uint64_t vs[N];
    for (size_t i = 0; i < N; i++)
        vs[i] = d2u((double)i);

    static const struct {
        const char *name;
        int64_t start, step;
    } regular[] = {
        {"1 ms steps", T0, 1},
        {"1 h steps", T0, 3600000},
        {"15 s steps", T0, 15000},
        {"negative, 1 h steps", -3600000LL * 200, 3600000},
        {"across zero", -250, 1},
        {"from INT64_MIN", INT64_MIN, 1},
        {"up to INT64_MAX", INT64_MAX - (N - 1) * 1000LL, 1000},
        {"huge steps", INT64_MIN, INT64_MAX / N * 2},
    };
    for (size_t k = 0; k < ARRAY_LEN(regular); k++) {
        regular_times(ts, N, regular[k].start, regular[k].step);
        check_roundtrip(regular[k].name, ts, vs, N);
    }

    /* Scrape-like jitter of a few ms. */
    ts[0] = T0;
    for (size_t i = 1; i < N; i++)
        ts[i] = T0 + (int64_t)i * 15000 + (int64_t)(rnd() % 7) - 3;
    check_roundtrip("15 s with jitter", ts, vs, N);

    /* Irregular: random steps of every size class. */
    for (int round = 0; round < 20; round++) {
        /* Start in [-2^61, 2^61], steps up to 2^50: no overflow. */
        ts[0] = (int64_t)(rnd() >> 2) - (1LL << 61);
        for (size_t i = 1; i < N; i++)
            ts[i] = ts[i - 1] + 1 + (int64_t)(rnd() >> (14 + rnd() % 50));
        check_roundtrip("random steps", ts, vs, N);
    }

    /* Timestamp extremes. */
    static const struct {
        const char *name;
        int64_t t[5];
        size_t n;
    } ext[] = {
        {"INT64_MIN alone", {INT64_MIN}, 1},
        {"INT64_MAX alone", {INT64_MAX}, 1},
        {"MIN to MAX", {INT64_MIN, INT64_MAX}, 2},
        {"MIN, MIN+1, MAX", {INT64_MIN, INT64_MIN + 1, INT64_MAX}, 3},
        {"MIN, 0, MAX", {INT64_MIN, 0, INT64_MAX}, 3},
        {"MIN, -1, 0, MAX-1, MAX", {INT64_MIN, -1, 0, INT64_MAX - 1, INT64_MAX}, 5},
        {"near MAX", {INT64_MAX - 3, INT64_MAX - 2, INT64_MAX - 1, INT64_MAX}, 4},
        {"near MIN", {INT64_MIN, INT64_MIN + 1, INT64_MIN + 2, INT64_MIN + 4}, 4},
        {"MIN+1, MAX-1", {INT64_MIN + 1, INT64_MAX - 1, INT64_MAX}, 3},
        {"negative", {-1000, -1, 0, 1, 1000}, 5},
        {"zero to MAX", {0, INT64_MAX / 2, INT64_MAX}, 3},
    };
    for (size_t k = 0; k < ARRAY_LEN(ext); k++) {
        check_roundtrip(ext[k].name, ext[k].t, vs, ext[k].n);
        /* Nothing can follow INT64_MAX. */
        if (ext[k].t[ext[k].n - 1] == INT64_MAX) {
            chunk_appender a;
            encode(&a, ext[k].t, vs, ext[k].n);
            assert_int_equal(chunkenc_append(&a, INT64_MAX, 0), -EINVAL);
            assert_int_equal(chunkenc_append(&a, INT64_MIN, 0), -EINVAL);
            chunkenc_cleanup(&a);
        }
    }
}

/* Each bound of each delta-of-delta bucket, from both sides: the sample's
 * size in bits is the bucket's code (value unchanged adds 1 bit). */
static void test_dod_buckets(void **state)
{
    (void)state;
    static const struct {
        int64_t dod;
        unsigned bits;
    } cases[] = {
        {0, 1},
        {1, 16},
        {-1, 16},
        {8192, 16},
        {8193, 20},
        {-8191, 16},
        {-8192, 20},
        {65536, 20},
        {65537, 24},
        {-65535, 20},
        {-65536, 24},
        {524288, 24},
        {524289, 68},
        {-524287, 24},
        {-524288, 68},
        {1LL << 40, 68},
        {-(1LL << 40), 68},
        {-(1LL << 50) + 1, 68}, /* delta 1 after a delta of 2^50 */
    };
    const int64_t d = 1LL << 50;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        int64_t ts[4] = {0, d, 2 * d + cases[i].dod, 3 * d + 2 * cases[i].dod};
        uint64_t vs[4] = {0, 0, 0, 0};
        chunk_appender a;
        encode(&a, ts, vs, 2);
        uint32_t before = a.bits;
        assert_int_equal(chunkenc_append(&a, ts[2], 0), 0);
        if (a.bits - before != cases[i].bits + 1)
            fail_msg("dod %lld: %u bits, want %u", (long long)cases[i].dod, a.bits - before,
                     cases[i].bits + 1);
        /* dod 0 after it */
        before = a.bits;
        assert_int_equal(chunkenc_append(&a, ts[3], 0), 0);
        assert_int_equal(a.bits - before, 2);
        chunkenc_cleanup(&a);
        check_roundtrip("dod bucket", ts, vs, 4);
    }

    /* All bounds in one chunk, each followed by its negation. */
    int64_t ts[2 * ARRAY_LEN(cases) + 2];
    uint64_t vs[ARRAY_LEN(ts)];
    int64_t delta = d;
    ts[0] = 0;
    ts[1] = d;
    size_t n = 2;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        for (int sign = 1; sign >= -1; sign -= 2) {
            delta += sign * cases[i].dod;
            ts[n] = ts[n - 1] + delta;
            n++;
        }
    }
    for (size_t i = 0; i < n; i++)
        vs[i] = rnd();
    check_roundtrip("all dod bounds", ts, vs, n);
}

/* ---- appender rules ---- */

static void test_rejects(void **state)
{
    (void)state;
    for (size_t before = 1; before <= 5; before++) {
        chunk_appender a;
        int64_t ts[5];
        uint64_t vs[5];
        for (size_t i = 0; i < 5; i++) {
            ts[i] = -100 + 10 * (int64_t)i;
            vs[i] = d2u((double)i);
        }
        encode(&a, ts, vs, before);
        chunk_appender snap = a;
        size_t len;
        const uint8_t *b = chunkenc_bytes(&a, &len);
        uint8_t *copy = malloc(len);
        memcpy(copy, b, len);
        const int64_t last = ts[before - 1];
        const int64_t bad[] = {last, last - 1, last - 10, INT64_MIN};
        for (size_t k = 0; k < ARRAY_LEN(bad); k++) {
            assert_int_equal(chunkenc_append(&a, bad[k], 1.0), -EINVAL);
            assert_same_state(&a, &snap);
            b = chunkenc_bytes(&a, &len);
            assert_memory_equal(b, copy, len);
        }
        /* Still usable. */
        assert_int_equal(chunkenc_append(&a, last + 1, 1.0), 0);
        assert_int_equal(a.count, before + 1);
        free(copy);
        chunkenc_cleanup(&a);
    }
}

static void test_max_samples(void **state)
{
    (void)state;
    chunk_appender a;
    chunkenc_init(&a);
    for (int64_t i = 0; i < CHUNKENC_MAX_SAMPLES; i++)
        assert_int_equal(chunkenc_append(&a, T0 + i, (double)(i % 7)), 0);
    assert_int_equal(a.count, CHUNKENC_MAX_SAMPLES);
    chunk_appender snap = a;
    assert_int_equal(chunkenc_append(&a, T0 + CHUNKENC_MAX_SAMPLES, 1.0), -E2BIG);
    assert_same_state(&a, &snap);
    size_t len;
    const uint8_t *b = chunkenc_bytes(&a, &len);
    assert_int_equal(chunkenc_count(b, len), CHUNKENC_MAX_SAMPLES);
    chunk_iter it;
    assert_int_equal(chunkenc_iter_init(&it, b, len), 0);
    int64_t t;
    double v;
    size_t n = 0;
    while (chunkenc_iter_next(&it, &t, &v) == 1) {
        assert_true(t == T0 + (int64_t)n);
        assert_true(v == (double)(n % 7));
        n++;
    }
    assert_int_equal(n, CHUNKENC_MAX_SAMPLES);
    assert_int_equal(chunkenc_iter_next(&it, &t, &v), 0);
    chunkenc_cleanup(&a);
}

/* Bytes per sample for 120-sample chunks of scrape data (bounds about 10%
 * above what this encoder, byte-identical to Prometheus's, produces).
 * Prometheus's 1-2 bytes/sample holds for aligned timestamps (Prometheus
 * aligns scrape timestamps within 2 ms by default): with a few ms of jitter
 * almost every delta-of-delta is non-zero and costs the 16-bit '10' + 14
 * code, so jittered timestamps alone take ~2 bytes/sample in this layout. */
static size_t scrape_chunk(chunk_appender *a, int jitter_ms, int max_increment)
{
    chunkenc_init(a);
    double c = 123456;
    for (int i = 0; i < CHUNKENC_TARGET_SAMPLES; i++) {
        int64_t j = jitter_ms ? (int64_t)(rnd() % (2 * jitter_ms + 1)) - jitter_ms : 0;
        assert_int_equal(chunkenc_append(a, T0 + i * 15000LL + j, c), 0);
        if (max_increment) c += (double)(rnd() % (max_increment + 1));
    }
    size_t len;
    chunkenc_bytes(a, &len);
    return len;
}

static void test_scrape_compression(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int jitter, inc;
        double max_bytes_per_sample;
    } cases[] = {
        {"aligned, constant", 0, 0, 0.45},           /* measured 0.40 */
        {"aligned, slow counter", 0, 10, 1.8},       /* 1.61 */
        {"aligned, busy counter", 0, 1000, 3.1},     /* 2.83 */
        {"jitter 3 ms, constant", 3, 0, 2.3},        /* 2.12 */
        {"jitter 3 ms, slow counter", 3, 10, 3.6},   /* 3.32 */
        {"jitter 3 ms, busy counter", 3, 1000, 5.0}, /* 4.55 */
    };
    for (size_t k = 0; k < ARRAY_LEN(cases); k++) {
        double total = 0;
        for (int r = 0; r < 50; r++) {
            chunk_appender a;
            size_t len = scrape_chunk(&a, cases[k].jitter, cases[k].inc);
            total += (double)len;
            /* The buffer stays close to the data. */
            assert_true(chunkenc_capacity(&a) <= len + len / 2 + 32);
            chunkenc_cleanup(&a);
        }
        double bps = total / 50 / CHUNKENC_TARGET_SAMPLES;
        print_message("    %-28s %.2f bytes/sample\n", cases[k].name, bps);
        if (bps > cases[k].max_bytes_per_sample)
            fail_msg("%s: %.2f bytes/sample > %.2f", cases[k].name, bps,
                     cases[k].max_bytes_per_sample);
    }
}

static void test_random_vs_reference(void **state)
{
    (void)state;
    enum { N = 400 };
    int64_t ts[N];
    uint64_t vs[N];
    for (int round = 0; round < 300; round++) {
        size_t n = 1 + rnd() % N;
        int64_t delta = 1 + (int64_t)(rnd() % 100000);
        ts[0] = (int64_t)(rnd() >> (1 + rnd() % 63)) * (rnd() & 1 ? 1 : -1);
        vs[0] = rnd();
        int vmode = (int)(rnd() % 4);
        for (size_t i = 1; i < n; i++) {
            switch (rnd() % 8) {
            case 0:
                delta += (int64_t)(rnd() % 20001) - 10000;
                break;
            case 1:
                delta += (int64_t)(rnd() % 2000001) - 1000000;
                break;
            case 2:
                delta += (int64_t)(rnd() % 140001) - 70000;
                break;
            case 3:
                delta = (int64_t)(rnd() >> (8 + rnd() % 56));
                break;
            default:
                break;
            }
            if (delta <= 0) delta = 1 + (int64_t)(rnd() % 1000);
            if (ts[i - 1] > INT64_MAX - delta) {
                n = i;
                break;
            }
            ts[i] = ts[i - 1] + delta;
            switch (vmode == 0 ? rnd() % 4 : (uint64_t)vmode) {
            case 0:
                vs[i] = rnd();
                break;
            case 1:
                vs[i] = vs[i - 1];
                break;
            case 2:
                vs[i] = d2u(u2d(vs[i - 1]) + (double)(rnd() % 100));
                break;
            default:
                vs[i] = vs[i - 1] ^ (rnd() >> (rnd() % 64) << (rnd() % 64));
                break;
            }
        }
        check_roundtrip("random", ts, vs, n);
    }
}

static void test_count(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x12, 0x34, 0x56};
    static const uint8_t full[] = {0xff, 0xff};
    assert_int_equal(chunkenc_count(NULL, 0), 0);
    assert_int_equal(chunkenc_count(b, 0), 0);
    assert_int_equal(chunkenc_count(b, 1), 0);
    assert_int_equal(chunkenc_count(b, 2), 0x1234);
    assert_int_equal(chunkenc_count(b, 3), 0x1234);
    assert_int_equal(chunkenc_count(full, 2), 65535);
    chunk_appender a;
    chunkenc_init(&a);
    for (int i = 0; i < 300; i++) {
        size_t len;
        const uint8_t *p = chunkenc_bytes(&a, &len);
        assert_int_equal(chunkenc_count(p, len), i);
        assert_int_equal(chunkenc_append(&a, i, (double)i), 0);
    }
    chunkenc_cleanup(&a);
}

static void test_detach(void **state)
{
    (void)state;
    chunk_appender a;
    size_t len, dlen;

    /* Empty: a 2-byte chunk of its own. */
    chunkenc_init(&a);
    uint8_t *d = chunkenc_detach(&a, &dlen);
    assert_non_null(d);
    assert_int_equal(dlen, 2);
    assert_int_equal(d[0], 0);
    assert_int_equal(d[1], 0);
    free(d);

    for (size_t n = 1; n <= 300; n += 37) {
        chunkenc_init(&a);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(chunkenc_append(&a, T0 + 15000 * (int64_t)i, (double)(i * i)), 0);
        const uint8_t *b = chunkenc_bytes(&a, &len);
        uint8_t *copy = malloc(len);
        memcpy(copy, b, len);
        d = chunkenc_detach(&a, &dlen);
        assert_non_null(d);
        assert_int_equal(dlen, len);
        assert_memory_equal(d, copy, len);
        /* The appender is empty and reusable, from any timestamp. */
        assert_int_equal(a.count, 0);
        assert_int_equal(chunkenc_capacity(&a), 0);
        b = chunkenc_bytes(&a, &len);
        assert_int_equal(len, 2);
        assert_int_equal(b[0] | b[1], 0);
        assert_int_equal(chunkenc_append(&a, -5, 1.0), 0);
        assert_int_equal(chunkenc_append(&a, -4, 2.0), 0);
        int64_t ts[2] = {-5, -4};
        uint64_t vs[2] = {d2u(1.0), d2u(2.0)};
        b = chunkenc_bytes(&a, &len);
        assert_decodes("after detach", b, len, ts, vs, 2);
        /* The detached chunk lives on its own. */
        chunkenc_cleanup(&a);
        chunk_iter it;
        int64_t t;
        double v;
        size_t k = 0;
        assert_int_equal(chunkenc_iter_init(&it, d, dlen), 0);
        while (chunkenc_iter_next(&it, &t, &v) == 1)
            k++;
        assert_int_equal(k, n);
        free(d);
        free(copy);
    }
}

/* ---- corrupt input ---- */

/* Decodes until the end or an error; checks the decoder's promises
 * (increasing timestamps, never more samples than the header says) and
 * returns the last result; *n gets the samples read. */
static int decode_all(const uint8_t *data, size_t len, size_t *n)
{
    chunk_iter it;
    *n = 0;
    int rc = chunkenc_iter_init(&it, data, len);
    if (rc < 0) {
        assert_int_equal(rc, -EINVAL);
        assert_true(len < 2);
        return rc;
    }
    int64_t t, prev = INT64_MIN;
    double v;
    while ((rc = chunkenc_iter_next(&it, &t, &v)) == 1) {
        if (*n > 0) assert_true(t > prev);
        prev = t;
        (*n)++;
        assert_true(*n <= chunkenc_count(data, len));
    }
    assert_true(rc == 0 || rc == -EINVAL);
    /* Sticky. */
    assert_int_equal(chunkenc_iter_next(&it, &t, &v), rc);
    if (rc == 0) assert_int_equal(*n, chunkenc_count(data, len));
    return rc;
}

/* A few valid chunks covering every code path; caller frees each. */
static size_t corpus(uint8_t **chunks, size_t *lens, size_t max)
{
    size_t k = 0;
    enum { N = 150 };
    int64_t ts[N];
    uint64_t vs[N];
    chunk_appender a;
    for (int kind = 0; kind < 6 && k < max; kind++) {
        size_t n = N;
        for (size_t i = 0; i < N; i++) {
            switch (kind) {
            case 0: /* scrape counter with jitter */
                ts[i] = T0 + 15000 * (int64_t)i + (int64_t)(rnd() % 5) - 2;
                vs[i] = d2u((double)(1000 + 7 * i));
                break;
            case 1: /* random everything */
                ts[i] = i ? ts[i - 1] + 1 + (int64_t)(rnd() >> (14 + rnd() % 50)) : -7;
                vs[i] = rnd();
                break;
            case 2: /* constant, regular */
                ts[i] = (int64_t)i * 1000;
                vs[i] = STALE;
                break;
            case 3: /* extremes */
                n = 5;
                ts[0] = INT64_MIN, ts[1] = -1, ts[2] = 0, ts[3] = INT64_MAX - 1, ts[4] = INT64_MAX;
                vs[i] = i & 1 ? 0xffffffffffffffffULL : 1;
                break;
            case 4: /* 64-bit meaningful windows */
                ts[i] = (int64_t)i;
                vs[i] = i & 1 ? 0x8000000000000001ULL : 0;
                break;
            default: /* edge values */
                ts[i] = (int64_t)i * 3600000;
                vs[i] = edge_values[i % ARRAY_LEN(edge_values)];
                break;
            }
        }
        encode(&a, ts, vs, n);
        chunks[k] = chunkenc_detach(&a, &lens[k]);
        k++;
    }
    return k;
}

static void test_truncation(void **state)
{
    (void)state;
    uint8_t *chunks[8];
    size_t lens[8];
    size_t nc = corpus(chunks, lens, 8);
    for (size_t c = 0; c < nc; c++) {
        size_t full_n;
        assert_int_equal(decode_all(chunks[c], lens[c], &full_n), 0);
        for (size_t l = 0; l < lens[c]; l++) {
            uint8_t *p = malloc(l ? l : 1);
            memcpy(p, chunks[c], l);
            size_t n;
            /* The last byte always holds bits of the last sample, so every
             * truncation is an error, after the samples that fit. */
            assert_int_equal(decode_all(p, l, &n), -EINVAL);
            assert_true(n < full_n);
            free(p);
        }
        free(chunks[c]);
    }
}

static void test_bit_flips(void **state)
{
    (void)state;
    uint8_t *chunks[8];
    size_t lens[8];
    size_t nc = corpus(chunks, lens, 8);
    size_t ok = 0, bad = 0;
    for (size_t c = 0; c < nc; c++) {
        uint8_t *p = malloc(lens[c]);
        for (int r = 0; r < 3000; r++) {
            memcpy(p, chunks[c], lens[c]);
            int flips = 1 + (int)(rnd() % 4);
            for (int f = 0; f < flips; f++) {
                /* Mostly past the header, so decoding gets somewhere. */
                size_t bit = rnd() % (lens[c] * 8);
                p[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
            }
            size_t n;
            if (decode_all(p, lens[c], &n) == 0)
                ok++;
            else
                bad++;
        }
        free(p);
        free(chunks[c]);
    }
    print_message("    bit flips: %zu decoded, %zu rejected\n", ok, bad);
    assert_true(bad > 0);

    /* Random bytes of every small length. */
    uint8_t buf[300];
    for (int r = 0; r < 20000; r++) {
        size_t len = rnd() % sizeof buf;
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rnd();
        if (len >= 2 && (r & 1)) buf[0] = 0; /* small counts too */
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, buf, len);
        size_t n;
        decode_all(p, len, &n);
        free(p);
    }
}

/* Hand-made corrupt (and odd but valid) chunks: how many samples decode
 * and what the iterator returns then. */
static void test_corrupt_fields(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uint8_t b[32];
        size_t len;
        size_t samples; /* decoded before the result */
        int rc;
    } cases[] = {
        {"empty", {0}, 0, 0, -EINVAL},
        {"one byte", {0}, 1, 0, -EINVAL},
        {"count, no data", {0, 1}, 2, 0, -EINVAL},
        {"first value cut", {0, 1, 0, 1, 2, 3, 4, 5, 6, 7}, 10, 0, -EINVAL},
        {"varint of 11 bytes",
         {0,    1,    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
          0x80, 0x80, 0,    0,    0,    0,    0,    0,    0,    0},
         21,
         0,
         -EINVAL},
        {"varint overflow (10th byte 2)",
         {0, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, 0, 0, 0, 0, 0, 0, 0, 0},
         20,
         0,
         -EINVAL},
        {"varint of 10 bytes (10th byte 1)",
         {0, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0},
         20,
         1,
         0},
        {"non-minimal varint", {0, 1, 0x80, 0x00, 1, 2, 3, 4, 5, 6, 7, 8}, 12, 1, 0},
        {"delta 0", {0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00}, 13, 1, -EINVAL},
        /* t0 = INT64_MAX (zigzag 2^64-2), delta 1 */
        {"delta overflows",
         {0,    2, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
          0x01, 0, 0,    0,    0,    0,    0,    0,    0,    0x01, 0x00},
         22,
         1,
         -EINVAL},
        /* t0 0, delta 5, v1 '0', then dod -5 ('10' + 14 bits 11111111111011)
         * makes delta 0: 0 10 11111111111011 0 -> 5F FD 80 */
        {"dod to delta 0",
         {0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05, 0x5f, 0xfd, 0x80},
         15,
         2,
         -EINVAL},
        /* sample 1: '11', leading 31, meaningful 40: 71 > 64;
         * 11 11111 101000 -> FF 40 */
        {"window past 64 bits",
         {0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x40, 0, 0, 0, 0, 0, 0},
         20,
         1,
         -EINVAL},
        /* sample 1: '11', leading 1, meaningful 0 (= 64): 65 > 64;
         * 11 00001 000000 -> C2 00 */
        {"64 meaningful bits with leading 1",
         {0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xc2, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0},
         23,
         1,
         -EINVAL},
        /* sample 1: '10' before any window: Prometheus's iterator reads 64
         * bits (window 0/0), as a chunk whose appender was rebuilt after
         * one sample writes it; '10' + 0x3FF0000000000000 (1.0) -> 8F FC
         * and seven 00 */
        {"'10' before a window",
         {0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x8f, 0xfc, 0, 0, 0, 0, 0, 0, 0},
         21,
         2,
         0},
        {"'10' before a window, cut",
         {0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x8f, 0xfc, 0, 0, 0, 0, 0, 0},
         20,
         1,
         -EINVAL},
        {"trailing bytes ignored", {0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff}, 13, 1, 0},
        {"count 0 with data", {0, 0, 0xff, 0xff}, 4, 0, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint8_t *p = malloc(cases[i].len ? cases[i].len : 1);
        memcpy(p, cases[i].b, cases[i].len);
        size_t n;
        int rc = decode_all(p, cases[i].len, &n);
        if (rc != cases[i].rc || n != cases[i].samples)
            fail_msg("%s: rc %d after %zu samples, want %d after %zu", cases[i].name, rc, n,
                     cases[i].rc, cases[i].samples);
        free(p);
    }

    /* The '10' case decodes to the value Prometheus gets. */
    static const uint8_t odd[] = {0,    2,    0,    0, 0, 0, 0, 0, 0, 0, 0,
                                  0x01, 0x8f, 0xfc, 0, 0, 0, 0, 0, 0, 0};
    int64_t ts[2] = {0, 1};
    uint64_t vs[2] = {0, d2u(1.0)};
    assert_decodes("'10' before a window", odd, sizeof odd, ts, vs, 2);

    /* NULL data. */
    chunk_iter it;
    assert_int_equal(chunkenc_iter_init(&it, NULL, 0), -EINVAL);
    int64_t t;
    double v;
    assert_int_equal(chunkenc_iter_next(&it, &t, &v), -EINVAL);
}

/* ---- the decimal encoding -------------------------------------------------- */

static uint64_t dbits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

/* Encodes t/v as a decimal chunk, decodes it and checks every sample bit
 * for bit; returns the encoded length. */
static size_t dec_roundtrip(const int64_t *t, const double *v, size_t n)
{
    uint8_t *d = NULL;
    size_t len = 0;
    int rc = chunkenc_decimal_encode(t, v, n, &d, &len);
    if (rc != 0) fail_msg("decimal_encode: %d", rc);
    assert_int_equal(chunkenc_count(d, len), n);
    chunk_iter it;
    assert_int_equal(chunkenc_iter_init_enc(&it, CHUNKENC_DECIMAL, d, len), 0);
    for (size_t i = 0; i < n; i++) {
        int64_t tt;
        double vv;
        assert_int_equal(chunkenc_iter_next(&it, &tt, &vv), 1);
        assert_true(tt == t[i]);
        if (dbits(vv) != dbits(v[i]))
            fail_msg("sample %zu: got %.17g want %.17g", i, vv, v[i]);
    }
    int64_t tt;
    double vv;
    assert_int_equal(chunkenc_iter_next(&it, &tt, &vv), 0);
    free(d);
    return len;
}

static void test_decimal_roundtrip(void **state)
{
    (void)state;
    int64_t t[200];
    double v[200];
    for (int i = 0; i < 200; i++) t[i] = 1700000000000LL + i * 15000;
    /* Integers: a counter, a constant, negative values, the 2^53 edge. */
    for (int i = 0; i < 120; i++) v[i] = 1000 + i * 7 + (i % 3);
    size_t counter = dec_roundtrip(t, v, 120);
    assert_true(counter < 120 * 2); /* under 2 bytes/sample */
    for (int i = 0; i < 120; i++) v[i] = 42;
    size_t constant = dec_roundtrip(t, v, 120);
    assert_true(constant < 48); /* varint header, then 2 bits per sample */
    for (int i = 0; i < 120; i++) v[i] = (i % 2 ? -1 : 1) * (double)(i * 1000003);
    dec_roundtrip(t, v, 120);
    double edge[] = {9007199254740992.0, -9007199254740992.0, 0, 1, 9007199254740991.0};
    dec_roundtrip(t, edge, 5);
    /* Decimals of growing scale within one chunk, up to 9 digits. */
    double mixed[] = {1, 0.5, 21.25, -3.125, 0.001, 123456.789, 1e-9, 2.000000001, 0.1, 0.3};
    dec_roundtrip(t, mixed, 10);
    /* A random walk with 3 decimals beats XOR by far. */
    double x = 20;
    uint64_t r = 1;
    for (int i = 0; i < 120; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        x += (double)((int)(r >> 33) % 1001 - 500) / 1000.0;
        v[i] = nearbyint(x * 1000) / 1000;
    }
    size_t walk = dec_roundtrip(t, v, 120);
    chunk_appender a;
    chunkenc_init(&a);
    for (int i = 0; i < 120; i++) assert_int_equal(chunkenc_append(&a, t[i], v[i]), 0);
    size_t xlen;
    const uint8_t *xb = chunkenc_bytes(&a, &xlen);
    print_message("random walk: decimal %zu bytes, XOR %zu bytes\n", walk, xlen);
    assert_true(walk * 2 < xlen);
    /* chunkenc_compact picks the decimal chunk, and it decodes the same. */
    uint8_t *d;
    size_t dl;
    assert_int_equal(chunkenc_compact(xb, xlen, &d, &dl), 1);
    assert_int_equal(dl, walk);
    free(d);
    chunkenc_cleanup(&a);
    /* Irregular timestamps use the same buckets as XOR chunks. */
    int64_t it[6] = {-5, 0, 7, 100000, 100001, INT64_MAX};
    double iv[6] = {1, 2, 3, 4, 5, 6};
    dec_roundtrip(it, iv, 6);
    /* One sample. */
    dec_roundtrip(t, v, 1);
    /* Regression (fuzzing): a first delta above INT64_MAX is valid. */
    int64_t huge[2] = {-9151313341519480168LL, 6557242158748809880LL};
    double zero[2] = {0, 0};
    dec_roundtrip(huge, zero, 2);
}

static void test_decimal_rejects(void **state)
{
    (void)state;
    int64_t t[2] = {1, 2};
    uint8_t *d = NULL;
    size_t len;
    double bad[][2] = {
        {1, NAN}, {1, INFINITY}, {-0.0, 1}, {1.0 / 3, 1}, {1e-10, 1}, {1e17, 1}, {0.1 + 0.2, 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (chunkenc_decimal_encode(t, bad[i], 2, &d, &len) != -EDOM)
            fail_msg("case %zu accepted", i);
    }
    double ok[2] = {1, 2};
    int64_t same[2] = {5, 5};
    assert_int_equal(chunkenc_decimal_encode(same, ok, 2, &d, &len), -EINVAL);
    assert_int_equal(chunkenc_decimal_encode(t, ok, 0, &d, &len), -EINVAL);
    /* An XOR chunk with a non-decimal value stays XOR. */
    chunk_appender a;
    chunkenc_init(&a);
    chunkenc_append(&a, 1, 1.0 / 3);
    chunkenc_append(&a, 2, 2);
    size_t xl;
    const uint8_t *xb = chunkenc_bytes(&a, &xl);
    assert_int_equal(chunkenc_compact(xb, xl, &d, &len), 0);
    chunkenc_cleanup(&a);
    chunk_iter it;
    uint8_t bad_scale[3] = {0, 1, 10};
    assert_int_equal(chunkenc_iter_init_enc(&it, CHUNKENC_DECIMAL, bad_scale, 3), -EINVAL);
    assert_int_equal(chunkenc_iter_init_enc(&it, (enum chunkenc_encoding)7, bad_scale, 3), -EINVAL);
}

/* Every truncation and random corruption of decimal chunks either decodes
 * or returns -EINVAL; never reads out of bounds (run under ASan). */
static void test_decimal_corruption(void **state)
{
    (void)state;
    int64_t t[120];
    double v[120];
    for (int i = 0; i < 120; i++) {
        t[i] = 1000 + i * (i % 5 == 0 ? 997 : 1000);
        v[i] = i % 7 == 0 ? nearbyint(123.456 * i * 1000) / 1000 : i;
    }
    uint8_t *d;
    size_t len;
    assert_int_equal(chunkenc_decimal_encode(t, v, 120, &d, &len), 0);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, d, cut);
        chunk_iter it;
        int rc = chunkenc_iter_init_enc(&it, CHUNKENC_DECIMAL, copy, cut);
        int64_t tt;
        double vv;
        int n = 0;
        while (rc == 0 && (rc = chunkenc_iter_next(&it, &tt, &vv)) == 1) {
            n++;
            rc = 0;
        }
        assert_true(rc == -EINVAL || (rc == 0 && n == 120 && cut == len));
        free(copy);
    }
    uint64_t r = 7;
    for (int k = 0; k < 5000; k++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, d, len);
        for (int f = 0; f < 1 + k % 4; f++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            copy[(r >> 33) % len] ^= (uint8_t)(1u << ((r >> 20) % 8));
        }
        chunk_iter it;
        int rc = chunkenc_iter_init_enc(&it, CHUNKENC_DECIMAL, copy, len);
        int64_t tt;
        double vv;
        int guard = 0;
        while (rc == 0 && (rc = chunkenc_iter_next(&it, &tt, &vv)) == 1 && guard++ < 70000) rc = 0;
        assert_true(rc == 0 || rc == -EINVAL);
        free(copy);
    }
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_hand_vectors),
        cmocka_unit_test(test_prometheus_vector),
        cmocka_unit_test(test_values_roundtrip),
        cmocka_unit_test(test_window_alignment),
        cmocka_unit_test(test_timestamp_patterns),
        cmocka_unit_test(test_dod_buckets),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_max_samples),
        cmocka_unit_test(test_scrape_compression),
        cmocka_unit_test(test_random_vs_reference),
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_detach),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_corrupt_fields),
        cmocka_unit_test(test_decimal_roundtrip),
        cmocka_unit_test(test_decimal_rejects),
        cmocka_unit_test(test_decimal_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
