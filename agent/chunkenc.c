/* chunkenc: Gorilla/Prometheus XOR chunk encoder and decoder (layout in
 * chunkenc.h).
 *
 * Writing: the buffer is kept zeroed beyond the bits written, so a write ORs
 * a whole field (up to 57 bits) into place with one unaligned big-endian
 * 64-bit load/store, and zero bits (the '0' codes) are written by only
 * advancing the bit count. Each append first works out the sample's exact
 * size in bits, grows the buffer if needed (geometrically, starting small)
 * and only then writes, so a failed append leaves the chunk untouched.
 *
 * Reading: each field is taken from a 64-bit window loaded at the current
 * bit position (at least 57 valid bits; past the end of the data the window
 * is padded with zero bits instead of reading out of bounds). A sample is
 * accepted only if every bit it used lies inside the data, so a truncated
 * or corrupt chunk gives -EINVAL and never an out-of-bounds read. */
#include "chunkenc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_BITS 16
/* First allocation: enough for the header and the largest first sample
 * (2 + 10 + 8 bytes). Later growth is by half the capacity. */
#define INITIAL_CAP 32
/* chunkenc_detach trims the buffer when it has more slack than this
 * (Prometheus compacts its chunks with the same threshold). */
#define DETACH_TRIM_SLACK 32

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

static inline uint64_t load_be64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return __builtin_bswap64(w);
}

static inline void store_be64(uint8_t *p, uint64_t w)
{
    w = __builtin_bswap64(w);
    memcpy(p, &w, 8);
}

static inline uint64_t f2u(double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    return u;
}

static inline double u2f(uint64_t u)
{
    double v;
    memcpy(&v, &u, 8);
    return v;
}

/* ---- writing ---- */

/* ORs the low n bits of x (1 <= n <= 57) into the stream at bit *pos. The
 * bits at and after *pos must be zero and the buffer must hold them. */
static inline void put(uint8_t *d, uint32_t cap, uint32_t *pos, uint64_t x, unsigned n)
{
    uint32_t p = *pos;
    uint8_t *b = d + (p >> 3);
    uint64_t v = (x << (64 - n)) >> (p & 7);
    if (LIKELY((p >> 3) + 8 <= cap)) {
        store_be64(b, load_be64(b) | v);
    } else {
        /* Near the end of the buffer: touch only the bytes the field spans. */
        unsigned nbytes = ((p & 7) + n + 7) >> 3;
        for (unsigned i = 0; i < nbytes; i++)
            b[i] |= (uint8_t)(v >> (56 - 8 * i));
    }
    *pos = p + n;
}

/* Like put for 1 <= n <= 64. */
static inline void put_long(uint8_t *d, uint32_t cap, uint32_t *pos, uint64_t x, unsigned n)
{
    if (n > 57) {
        put(d, cap, pos, x >> 32, n - 32);
        put(d, cap, pos, x & 0xffffffffu, 32);
    } else {
        put(d, cap, pos, x, n);
    }
}

static unsigned put_uvarint(uint8_t *p, uint64_t x)
{
    unsigned n = 0;
    while (x >= 0x80) {
        p[n++] = (uint8_t)(x | 0x80);
        x >>= 7;
    }
    p[n++] = (uint8_t)x;
    return n;
}

static unsigned uvarint_len(uint64_t x)
{
    unsigned n = 1;
    while (x >= 0x80) {
        x >>= 7;
        n++;
    }
    return n;
}

/* Makes room for `need` bytes; the new bytes are zero. Returns 0 or
 * -ENOMEM (nothing changed). */
static int grow(chunk_appender *a, uint64_t need)
{
    uint64_t cap = a->cap ? (uint64_t)a->cap + a->cap / 2 : INITIAL_CAP;
    if (cap < need) cap = need;
    cap = (cap + 7) & ~(uint64_t)7;
    uint8_t *d = realloc(a->data, cap);
    if (!d) return -ENOMEM;
    memset(d + a->cap, 0, cap - a->cap);
    a->data = d;
    a->cap = (uint32_t)cap;
    return 0;
}

/* How the value of the next sample is written: its size in bits, and for
 * a new window the window. */
typedef struct {
    uint64_t x; /* bits(v) ^ bits(previous v) */
    unsigned nbits;
    uint8_t leading, trailing; /* new window (when nbits counts '11') */
    bool reuse;
} vplan;

static inline void plan_value(const chunk_appender *a, uint64_t v, vplan *p)
{
    uint64_t x = v ^ a->v;
    p->x = x;
    p->reuse = false;
    if (x == 0) {
        p->nbits = 1;
        return;
    }
    unsigned lead = (unsigned)__builtin_clzll(x);
    unsigned trail = (unsigned)__builtin_ctzll(x);
    if (lead > 31) lead = 31; /* the 5-bit field's limit */
    if (a->leading != 0xff && lead >= a->leading && trail >= a->trailing) {
        p->reuse = true;
        p->nbits = 2 + 64 - a->leading - a->trailing;
        return;
    }
    p->leading = (uint8_t)lead;
    p->trailing = (uint8_t)trail;
    p->nbits = 13 + 64 - lead - trail;
}

static inline void write_value(chunk_appender *a, const vplan *p)
{
    uint8_t *d = a->data;
    uint32_t cap = a->cap;
    if (p->x == 0) {
        a->bits += 1; /* '0' */
    } else if (p->reuse) {
        unsigned m = 64 - a->leading - a->trailing;
        uint64_t bits = p->x >> a->trailing;
        if (m <= 55) {
            put(d, cap, &a->bits, (UINT64_C(2) << m) | bits, 2 + m);
        } else {
            put(d, cap, &a->bits, 2, 2);
            put_long(d, cap, &a->bits, bits, m);
        }
    } else {
        unsigned m = 64 - p->leading - p->trailing;
        /* '11', 5 bits leading, 6 bits meaningful count (64 wraps to 0). */
        uint64_t ctl = (UINT64_C(3) << 11) | ((uint64_t)p->leading << 6) | (m & 63);
        put(d, cap, &a->bits, ctl, 13);
        put_long(d, cap, &a->bits, p->x >> p->trailing, m);
        a->leading = p->leading;
        a->trailing = p->trailing;
    }
}

void chunkenc_init(chunk_appender *a)
{
    memset(a, 0, sizeof *a);
    a->leading = 0xff;
}

void chunkenc_cleanup(chunk_appender *a)
{
    free(a->data);
    chunkenc_init(a);
}

/* Timestamp bucket bounds: -(2^(n-1) - 1) <= dod <= 2^(n-1). */
static inline bool dod_fits(int64_t dod, unsigned nbits)
{
    int64_t hi = INT64_C(1) << (nbits - 1);
    return dod >= -(hi - 1) && dod <= hi;
}

int chunkenc_append(chunk_appender *a, int64_t t, double v)
{
    uint64_t vbits = f2u(v);
    uint16_t n = a->count;

    if (UNLIKELY(n == CHUNKENC_MAX_SAMPLES)) return -E2BIG;
    if (LIKELY(n >= 2)) {
        if (UNLIKELY(t <= a->t)) return -EINVAL;
        /* Deltas are exact as unsigned (t > a->t), dod wraps like Go's. */
        uint64_t delta = (uint64_t)t - (uint64_t)a->t;
        int64_t dod = (int64_t)(delta - (uint64_t)a->delta);
        unsigned tbits;
        uint64_t tcode;
        if (dod == 0) {
            tbits = 1, tcode = 0;
        } else if (dod_fits(dod, 14)) {
            tbits = 16, tcode = (UINT64_C(2) << 14) | ((uint64_t)dod & 0x3fff);
        } else if (dod_fits(dod, 17)) {
            tbits = 20, tcode = (UINT64_C(6) << 17) | ((uint64_t)dod & 0x1ffff);
        } else if (dod_fits(dod, 20)) {
            tbits = 24, tcode = (UINT64_C(14) << 20) | ((uint64_t)dod & 0xfffff);
        } else {
            tbits = 68, tcode = 15;
        }
        vplan vp;
        plan_value(a, vbits, &vp);
        uint64_t need = ((uint64_t)a->bits + tbits + vp.nbits + 7) >> 3;
        if (UNLIKELY(need > a->cap) && grow(a, need) < 0) return -ENOMEM;

        if (tbits == 1) {
            a->bits += 1;
        } else if (tbits < 68) {
            put(a->data, a->cap, &a->bits, tcode, tbits);
        } else {
            put(a->data, a->cap, &a->bits, tcode, 4);
            put_long(a->data, a->cap, &a->bits, (uint64_t)dod, 64);
        }
        write_value(a, &vp);
        a->delta = (int64_t)delta;
    } else if (n == 1) {
        if (t <= a->t) return -EINVAL;
        uint64_t delta = (uint64_t)t - (uint64_t)a->t;
        vplan vp;
        plan_value(a, vbits, &vp);
        /* The uvarint starts on a byte boundary (16 + 8k + 64 bits). */
        uint64_t need = (a->bits >> 3) + uvarint_len(delta) + ((vp.nbits + 7) >> 3);
        if (need > a->cap && grow(a, need) < 0) return -ENOMEM;
        a->bits += 8 * put_uvarint(a->data + (a->bits >> 3), delta);
        write_value(a, &vp);
        a->delta = (int64_t)delta;
    } else {
        /* zigzag, as Go's binary.PutVarint */
        uint64_t zz = ((uint64_t)t << 1) ^ (uint64_t)(t >> 63);
        uint64_t need = 2 + uvarint_len(zz) + 8;
        if (need > a->cap && grow(a, need) < 0) return -ENOMEM;
        a->bits = HEADER_BITS;
        a->bits += 8 * put_uvarint(a->data + 2, zz);
        put_long(a->data, a->cap, &a->bits, vbits, 64);
    }
    a->t = t;
    a->v = vbits;
    a->count = ++n;
    a->data[0] = (uint8_t)(n >> 8);
    a->data[1] = (uint8_t)n;
    return 0;
}

static const uint8_t empty_chunk[2] = {0, 0};

const uint8_t *chunkenc_bytes(const chunk_appender *a, size_t *len)
{
    if (!a->data) {
        *len = sizeof empty_chunk;
        return empty_chunk;
    }
    *len = ((size_t)a->bits + 7) >> 3;
    return a->data;
}

uint8_t *chunkenc_detach(chunk_appender *a, size_t *len)
{
    uint8_t *d = a->data;
    size_t n;
    if (!d) {
        d = calloc(1, sizeof empty_chunk);
        *len = d ? sizeof empty_chunk : 0;
        return d;
    }
    n = ((size_t)a->bits + 7) >> 3;
    if (a->cap - n > DETACH_TRIM_SLACK) {
        uint8_t *t = realloc(d, n);
        if (t) d = t;
    }
    chunkenc_init(a);
    *len = n;
    return d;
}

size_t chunkenc_capacity(const chunk_appender *a)
{
    return a->cap;
}

/* ---- reading ---- */

/* 64 bits of the stream from bit pos on, most significant first; at least
 * 57 of them are data unless the data ends sooner, then zero bits follow. */
static inline uint64_t window(const uint8_t *d, size_t len, uint64_t pos)
{
    size_t b = (size_t)(pos >> 3);
    uint64_t w;
    if (LIKELY(b + 8 <= len)) {
        w = load_be64(d + b);
    } else {
        w = 0;
        for (unsigned s = 56; b < len; b++, s -= 8)
            w |= (uint64_t)d[b] << s;
    }
    return w << (pos & 7);
}

/* The next n bits (1 <= n <= 64); *pos advances even past the end, so the
 * caller checks *pos against the length once per sample. */
static inline uint64_t get_long(const uint8_t *d, size_t len, uint64_t *pos, unsigned n)
{
    uint64_t x;
    if (n <= 57) {
        x = window(d, len, *pos) >> (64 - n);
    } else {
        uint64_t hi = window(d, len, *pos) >> 32;
        uint64_t lo = window(d, len, *pos + 32) >> 32;
        x = ((hi << 32) | lo) >> (64 - n);
    }
    *pos += n;
    return x;
}

/* A varint starting on a byte boundary, as Go's binary.ReadUvarint: at
 * most 10 bytes, the 10th at most 1. Returns 0 or -EINVAL. */
static int get_uvarint(const uint8_t *d, size_t len, uint64_t *pos, uint64_t *out)
{
    size_t b = (size_t)(*pos >> 3);
    uint64_t x = 0;
    for (unsigned i = 0, s = 0; i < 10; i++, s += 7) {
        if (b + i >= len) return -EINVAL;
        uint8_t c = d[b + i];
        if (c < 0x80) {
            if (i == 9 && c > 1) return -EINVAL;
            *out = x | (uint64_t)c << s;
            *pos += 8 * (i + 1);
            return 0;
        }
        x |= (uint64_t)(c & 0x7f) << s;
    }
    return -EINVAL;
}

/* Reads an XOR-encoded value into it->v and the window; returns false if a
 * field is out of range. */
static inline bool get_value(chunk_iter *it, uint64_t *pos)
{
    uint64_t w = window(it->data, it->len, *pos);
    if (!(w >> 63)) { /* '0': unchanged */
        *pos += 1;
        return true;
    }
    if (!((w >> 62) & 1)) { /* '10': the previous window */
        unsigned m = 64 - it->leading - it->trailing;
        uint64_t x;
        if (m <= 55) {
            x = (w << 2) >> (64 - m);
            *pos += 2 + m;
        } else {
            *pos += 2;
            x = get_long(it->data, it->len, pos, m);
        }
        it->v ^= x << it->trailing;
        return true;
    }
    /* '11': a new window */
    unsigned lead = (unsigned)(w >> 57) & 31;
    unsigned m = (unsigned)(w >> 51) & 63;
    if (m == 0) m = 64;
    if (lead + m > 64) return false;
    unsigned trail = 64 - lead - m;
    uint64_t x;
    if (m <= 44) {
        x = (w << 13) >> (64 - m);
        *pos += 13 + m;
    } else {
        *pos += 13;
        x = get_long(it->data, it->len, pos, m);
    }
    it->v ^= x << trail;
    it->leading = (uint8_t)lead;
    it->trailing = (uint8_t)trail;
    return true;
}

int chunkenc_iter_init(chunk_iter *it, const uint8_t *data, size_t len)
{
    memset(it, 0, sizeof *it);
    if (len < 2 || !data) {
        it->bad = true;
        return -EINVAL;
    }
    it->data = data;
    it->len = len;
    it->pos = HEADER_BITS;
    it->n = (uint16_t)(data[0] << 8 | data[1]);
    /* Window (0, 0) before the first '11', as Prometheus's iterator: a
     * chunk whose appender was rebuilt after one sample starts with '10'
     * and 64 bits. */
    it->leading = 0;
    it->trailing = 0;
    return 0;
}

static int corrupt(chunk_iter *it)
{
    it->bad = true;
    return -EINVAL;
}

int chunkenc_iter_next(chunk_iter *it, int64_t *t, double *v)
{
    if (UNLIKELY(it->bad)) return -EINVAL;
    if (it->i >= it->n) return 0;

    uint64_t pos = it->pos;
    uint64_t end = (uint64_t)it->len * 8;
    uint64_t delta;

    if (LIKELY(it->i >= 2)) {
        uint64_t w = window(it->data, it->len, pos);
        int64_t dod;
        if (!(w >> 63)) {
            dod = 0;
            pos += 1;
        } else if (!((w >> 62) & 1)) {
            uint64_t b = (w >> 48) & 0x3fff;
            dod = b > 0x2000 ? (int64_t)b - 0x4000 : (int64_t)b;
            pos += 16;
        } else if (!((w >> 61) & 1)) {
            uint64_t b = (w >> 44) & 0x1ffff;
            dod = b > 0x10000 ? (int64_t)b - 0x20000 : (int64_t)b;
            pos += 20;
        } else if (!((w >> 60) & 1)) {
            uint64_t b = (w >> 40) & 0xfffff;
            dod = b > 0x80000 ? (int64_t)b - 0x100000 : (int64_t)b;
            pos += 24;
        } else {
            pos += 4;
            dod = (int64_t)get_long(it->data, it->len, &pos, 64);
        }
        delta = (uint64_t)it->delta + (uint64_t)dod;
    } else if (it->i == 1) {
        if (get_uvarint(it->data, it->len, &pos, &delta) < 0) return corrupt(it);
    } else {
        uint64_t zz;
        if (get_uvarint(it->data, it->len, &pos, &zz) < 0) return corrupt(it);
        it->t = (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1);
        it->v = get_long(it->data, it->len, &pos, 64);
        if (pos > end) return corrupt(it);
        it->pos = pos;
        it->i = 1;
        *t = it->t;
        *v = u2f(it->v);
        return 1;
    }

    int64_t nt = (int64_t)((uint64_t)it->t + delta);
    if (UNLIKELY(nt <= it->t)) return corrupt(it); /* not increasing, or overflow */
    if (UNLIKELY(!get_value(it, &pos))) return corrupt(it);
    if (UNLIKELY(pos > end)) return corrupt(it);
    it->pos = pos;
    it->t = nt;
    it->delta = (int64_t)delta;
    it->i++;
    *t = nt;
    *v = u2f(it->v);
    return 1;
}

uint16_t chunkenc_count(const uint8_t *data, size_t len)
{
    if (!data || len < 2) return 0;
    return (uint16_t)(data[0] << 8 | data[1]);
}
