/* chunkenc: Gorilla/Prometheus XOR chunk encoder and decoder (layout in
 * chunkenc.h).
 *
 * Writing: the buffer is kept zeroed beyond the bits written, so a field of
 * up to 57 bits is written with one unaligned big-endian 64-bit store of a
 * word built from the current partial byte, and zero bits (the '0' codes)
 * by only advancing the bit count; a sample's timestamp and value codes go
 * in one store when they fit. Each append first works out the sample's
 * exact size in bits, grows the buffer if needed (geometrically, starting
 * small) and only then writes, so a failed append leaves the chunk as it
 * was.
 *
 * Reading: each field is taken from a 64-bit window loaded at the current
 * bit position (at least 57 valid bits; past the end of the data the window
 * is padded with zero bits instead of reading out of bounds). A sample is
 * accepted only if every bit it used lies inside the data, so a truncated
 * or corrupt chunk gives -EINVAL and never an out-of-bounds read. */
#include "chunkenc.h"

#include <errno.h>
#include <math.h>
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
#define INLINE inline __attribute__((always_inline))
#define NOINLINE __attribute__((noinline))

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

/* Bit writer over the appender's buffer, kept in locals while a sample is
 * written (stores through uint8_t * would otherwise force the compiler to
 * reload the appender's fields after each one). */
typedef struct {
    uint8_t *d;
    uint32_t cap; /* bytes */
    uint32_t pos; /* bits written */
} bitw;

/* Writes the low n bits of x (1 <= n <= 57) at the current position. Every
 * bit from the position on is zero, so the 8 bytes from the current byte
 * are that byte's written bits and then zeros: the word is built in a
 * register from that one byte, and stored. (Loading the 8 bytes instead
 * would partly overlap the previous field's 8-byte store at another
 * offset, which store-to-load forwarding cannot serve: a stall per
 * field.) */
static INLINE void put(bitw *w, uint64_t x, unsigned n)
{
    uint32_t p = w->pos;
    uint8_t *b = w->d + (p >> 3);
    uint64_t v = (x << (64 - n)) >> (p & 7);
    if (LIKELY((p >> 3) + 8 <= w->cap)) {
        store_be64(b, ((uint64_t)b[0] << 56) | v);
    } else {
        /* Near the end of the buffer: touch only the bytes the field spans. */
        unsigned nbytes = ((p & 7) + n + 7) >> 3;
        for (unsigned i = 0; i < nbytes; i++)
            b[i] |= (uint8_t)(v >> (56 - 8 * i));
    }
    w->pos = p + n;
}

/* Like put for 1 <= n <= 64. */
static INLINE void put_long(bitw *w, uint64_t x, unsigned n)
{
    if (n > 57) {
        put(w, x >> 32, n - 32);
        put(w, x & 0xffffffffu, 32);
    } else {
        put(w, x, n);
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

/* How the value of the next sample is written. */
typedef struct {
    uint64_t x;    /* bits(v) ^ bits(previous v) */
    uint64_t code; /* the whole field, when nbits <= 57 */
    unsigned nbits;
    uint8_t leading, trailing; /* the new window (kind NEW) */
    enum { SAME, REUSE, NEW } kind;
} vplan;

static INLINE void plan_value(const chunk_appender *a, uint64_t v, vplan *p)
{
    uint64_t x = v ^ a->v;
    p->x = x;
    p->code = 0; /* '0', or unused when the field is longer than 57 bits */
    p->leading = p->trailing = 0;
    if (x == 0) {
        p->kind = SAME;
        p->nbits = 1;
        return;
    }
    unsigned lead = (unsigned)__builtin_clzll(x);
    unsigned trail = (unsigned)__builtin_ctzll(x);
    if (lead > 31) lead = 31; /* the 5-bit field's limit */
    if (a->leading != 0xff && lead >= a->leading && trail >= a->trailing) {
        unsigned m = 64 - a->leading - a->trailing;
        p->kind = REUSE;
        p->nbits = 2 + m;
        if (m <= 55) p->code = (UINT64_C(2) << m) | (x >> a->trailing); /* '10' */
        return;
    }
    unsigned m = 64 - lead - trail;
    p->kind = NEW;
    p->leading = (uint8_t)lead;
    p->trailing = (uint8_t)trail;
    p->nbits = 13 + m;
    /* '11', 5 bits leading, 6 bits meaningful count (64 wraps to 0) */
    p->code = (UINT64_C(3) << 11) | ((uint64_t)lead << 6) | (m & 63);
    if (m <= 44) p->code = (p->code << m) | (x >> trail);
}

/* Writes the value field, after tbits of timestamp code tcode when the two
 * fit one write (tbits 0: none). */
static INLINE void write_value(bitw *w, chunk_appender *a, const vplan *p, uint64_t tcode,
                               unsigned tbits)
{
    if (tbits + p->nbits <= 57) {
        uint64_t code = (tcode << p->nbits) | p->code;
        if (code)
            put(w, code, tbits + p->nbits);
        else
            w->pos += tbits + p->nbits; /* '0' '0': nothing to set */
    } else {
        if (tbits) put(w, tcode, tbits);
        if (p->kind == REUSE) {
            unsigned m = p->nbits - 2;
            put(w, 2, 2);
            put_long(w, p->x >> a->trailing, m);
        } else {
            unsigned m = p->nbits - 13;
            put(w, (UINT64_C(3) << 11) | ((uint64_t)p->leading << 6) | (m & 63), 13);
            put_long(w, p->x >> p->trailing, m);
        }
    }
    if (p->kind == NEW) {
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

/* Sample 0 or 1 (byte-aligned varints): out of the hot path. */
static NOINLINE int append_start(chunk_appender *a, int64_t t, uint64_t vbits)
{
    if (a->count == 1) {
        if (t <= a->t) return -EINVAL;
        uint64_t delta = (uint64_t)t - (uint64_t)a->t;
        vplan vp;
        plan_value(a, vbits, &vp);
        /* The uvarint starts on a byte boundary (16 + 8k + 64 bits). */
        uint64_t need = (a->bits >> 3) + uvarint_len(delta) + ((vp.nbits + 7) >> 3);
        if (need > a->cap && grow(a, need) < 0) return -ENOMEM;
        bitw w = {a->data, a->cap, a->bits};
        w.pos += 8 * put_uvarint(w.d + (w.pos >> 3), delta);
        write_value(&w, a, &vp, 0, 0);
        a->bits = w.pos;
        a->delta = (int64_t)delta;
    } else {
        /* zigzag, as Go's binary.PutVarint */
        uint64_t zz = ((uint64_t)t << 1) ^ (uint64_t)(t >> 63);
        uint64_t need = 2 + uvarint_len(zz) + 8;
        if (need > a->cap && grow(a, need) < 0) return -ENOMEM;
        bitw w = {a->data, a->cap, HEADER_BITS};
        w.pos += 8 * put_uvarint(w.d + 2, zz);
        put_long(&w, vbits, 64);
        a->bits = w.pos;
    }
    a->t = t;
    a->v = vbits;
    a->count++;
    a->data[0] = 0;
    a->data[1] = (uint8_t)a->count;
    return 0;
}

int chunkenc_append(chunk_appender *a, int64_t t, double v)
{
    uint64_t vbits = f2u(v);
    uint16_t n = a->count;

    if (UNLIKELY(n < 2)) return append_start(a, t, vbits);
    if (UNLIKELY(n == CHUNKENC_MAX_SAMPLES)) return -E2BIG;
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

    bitw w = {a->data, a->cap, a->bits};
    if (UNLIKELY(tbits == 68)) {
        put(&w, tcode, 4);
        put_long(&w, (uint64_t)dod, 64);
        write_value(&w, a, &vp, 0, 0);
    } else {
        write_value(&w, a, &vp, tcode, tbits);
    }
    a->bits = w.pos;
    a->delta = (int64_t)delta;
    a->t = t;
    a->v = vbits;
    a->count = ++n;
    w.d[0] = (uint8_t)(n >> 8);
    w.d[1] = (uint8_t)n;
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
static INLINE uint64_t window(const uint8_t *d, size_t len, uint64_t pos)
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
static INLINE uint64_t get_long(const uint8_t *d, size_t len, uint64_t *pos, unsigned n)
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

/* Reads an XOR-encoded value into it->v and the window. w holds the stream
 * from *pos on, its top `avail` bits valid (as window() gives them); it is
 * reloaded only when a field reaches past them. Returns false if a field
 * is out of range. */
static INLINE bool get_value(chunk_iter *it, uint64_t *pos, uint64_t w, unsigned avail)
{
    if (!(w >> 63)) { /* '0': unchanged */
        *pos += 1;
        return true;
    }
    if (!((w >> 62) & 1)) { /* '10': the previous window */
        unsigned m = 64 - it->leading - it->trailing;
        uint64_t x;
        if (2 + m <= avail) {
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
    if (avail < 13) {
        w = window(it->data, it->len, *pos);
        avail = 64 - (unsigned)(*pos & 7);
    }
    unsigned lead = (unsigned)(w >> 57) & 31;
    unsigned m = (unsigned)(w >> 51) & 63;
    if (m == 0) m = 64;
    if (lead + m > 64) return false;
    unsigned trail = 64 - lead - m;
    uint64_t x;
    if (13 + m <= avail) {
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

static int dec_next(chunk_iter *it, int64_t *t, double *v);

int chunkenc_iter_next(chunk_iter *it, int64_t *t, double *v)
{
    if (UNLIKELY(it->bad)) return -EINVAL;
    if (it->i >= it->n) return 0;
    if (it->enc == CHUNKENC_DECIMAL) return dec_next(it, t, v);

    uint64_t pos = it->pos;
    uint64_t end = (uint64_t)it->len * 8;
    uint64_t delta;

    uint64_t w;
    unsigned avail;
    if (LIKELY(it->i >= 2)) {
        w = window(it->data, it->len, pos);
        avail = 64 - (unsigned)(pos & 7);
        int64_t dod;
        unsigned used;
        if (!(w >> 63)) {
            dod = 0;
            used = 1;
        } else if (!((w >> 62) & 1)) {
            uint64_t b = (w >> 48) & 0x3fff;
            dod = b > 0x2000 ? (int64_t)b - 0x4000 : (int64_t)b;
            used = 16;
        } else if (!((w >> 61) & 1)) {
            uint64_t b = (w >> 44) & 0x1ffff;
            dod = b > 0x10000 ? (int64_t)b - 0x20000 : (int64_t)b;
            used = 20;
        } else if (!((w >> 60) & 1)) {
            uint64_t b = (w >> 40) & 0xfffff;
            dod = b > 0x80000 ? (int64_t)b - 0x100000 : (int64_t)b;
            used = 24;
        } else {
            pos += 4;
            dod = (int64_t)get_long(it->data, it->len, &pos, 64);
            w = window(it->data, it->len, pos);
            avail = 64 - (unsigned)(pos & 7);
            used = 0;
        }
        /* used <= 24 < avail: the value's control bits are in w */
        pos += used;
        w <<= used;
        avail -= used;
        delta = (uint64_t)it->delta + (uint64_t)dod;
    } else if (it->i == 1) {
        if (get_uvarint(it->data, it->len, &pos, &delta) < 0) return corrupt(it);
        w = window(it->data, it->len, pos);
        avail = 64 - (unsigned)(pos & 7);
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
    if (UNLIKELY(!get_value(it, &pos, w, avail))) return corrupt(it);
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

/* ---- the decimal encoding ---------------------------------------------------- */

static const double pow10_table[CHUNKENC_DECIMAL_MAX_SCALE + 1] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
};

#define DEC_LIMIT 9007199254740992.0 /* 2^53 */

/* Whether v is m / 10^scale for an integer m (bit for bit); sets *m. */
static bool decimal_at(double v, unsigned scale, int64_t *m)
{
    double x = v * pow10_table[scale];
    if (!(x >= -DEC_LIMIT && x <= DEC_LIMIT)) return false; /* also NaN */
    double r = nearbyint(x);
    int64_t mi = (int64_t)r;
    double back = (double)mi / pow10_table[scale];
    if (f2u(back) != f2u(v)) return false; /* also -0 (back is +0) */
    *m = mi;
    return true;
}

/* The smallest scale >= from at which v is a decimal, or -1. */
static int decimal_scale(double v, int from)
{
    int64_t m;
    for (int s = from; s <= CHUNKENC_DECIMAL_MAX_SCALE; s++) {
        if (decimal_at(v, (unsigned)s, &m)) return s;
    }
    return -1;
}

static void put_dod(bitw *w, int64_t dod)
{
    if (dod == 0) {
        w->pos += 1;
    } else if (dod_fits(dod, 14)) {
        put(w, (UINT64_C(2) << 14) | ((uint64_t)dod & 0x3fff), 16);
    } else if (dod_fits(dod, 17)) {
        put(w, (UINT64_C(6) << 17) | ((uint64_t)dod & 0x1ffff), 20);
    } else if (dod_fits(dod, 20)) {
        put(w, (UINT64_C(14) << 20) | ((uint64_t)dod & 0xfffff), 24);
    } else {
        put(w, 15, 4);
        put_long(w, (uint64_t)dod, 64);
    }
}

static void put_vdelta(bitw *w, int64_t d)
{
    if (d == 0) {
        w->pos += 1;
    } else if (dod_fits(d, 7)) {
        put(w, (UINT64_C(2) << 7) | ((uint64_t)d & 0x7f), 9);
    } else if (dod_fits(d, 15)) {
        put(w, (UINT64_C(6) << 15) | ((uint64_t)d & 0x7fff), 18);
    } else if (dod_fits(d, 31)) {
        put(w, (UINT64_C(14) << 31) | ((uint64_t)d & 0x7fffffff), 35);
    } else {
        put(w, 15, 4);
        put_long(w, (uint64_t)d, 64);
    }
}

int chunkenc_decimal_encode(const int64_t *t, const double *v, size_t n, uint8_t **out,
                            size_t *len)
{
    if (n == 0 || n > CHUNKENC_MAX_SAMPLES || !t || !v) return -EINVAL;
    int scale = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && t[i] <= t[i - 1]) return -EINVAL;
        scale = decimal_scale(v[i], scale);
        if (scale < 0) return -EDOM;
    }
    /* Header, three varints, then at most 68 + 68 bits per sample, plus the
     * 8 bytes put() may touch past the last field. */
    size_t cap = 3 + 30 + n * 17 + 8;
    uint8_t *d = calloc(1, cap);
    if (!d) return -ENOMEM;
    d[0] = (uint8_t)(n >> 8);
    d[1] = (uint8_t)n;
    d[2] = (uint8_t)scale;
    size_t b = 3;
    int64_t prev_m = 0;
    if (!decimal_at(v[0], (unsigned)scale, &prev_m)) {
        free(d);
        return -EDOM;
    }
    b += put_uvarint(d + b, ((uint64_t)t[0] << 1) ^ (uint64_t)(t[0] >> 63));
    b += put_uvarint(d + b, ((uint64_t)prev_m << 1) ^ (uint64_t)(prev_m >> 63));
    int64_t delta = 0;
    if (n >= 2) {
        delta = (int64_t)((uint64_t)t[1] - (uint64_t)t[0]);
        b += put_uvarint(d + b, (uint64_t)delta);
    }
    bitw w = {d, (uint32_t)cap, (uint32_t)(b * 8)};
    for (size_t i = 1; i < n; i++) {
        if (i >= 2) {
            int64_t nd = (int64_t)((uint64_t)t[i] - (uint64_t)t[i - 1]);
            put_dod(&w, (int64_t)((uint64_t)nd - (uint64_t)delta));
            delta = nd;
        }
        int64_t m = 0;
        if (!decimal_at(v[i], (unsigned)scale, &m)) {
            /* A value valid at a smaller scale but out of range at the
             * final one. */
            free(d);
            return -EDOM;
        }
        put_vdelta(&w, m - prev_m);
        prev_m = m;
    }
    *len = (w.pos + 7) / 8;
    *out = d;
    return 0;
}

int chunkenc_compact(const uint8_t *data, size_t len, uint8_t **out, size_t *out_len)
{
    chunk_iter it;
    if (chunkenc_iter_init(&it, data, len) < 0) return -EINVAL;
    size_t n = it.n;
    if (n == 0) return 0;
    int64_t ts[CHUNKENC_TARGET_SAMPLES], *tv = ts;
    double vs[CHUNKENC_TARGET_SAMPLES], *vv = vs;
    if (n > CHUNKENC_TARGET_SAMPLES) {
        tv = malloc(n * sizeof *tv);
        vv = malloc(n * sizeof *vv);
        if (!tv || !vv) {
            free(tv);
            free(vv);
            return 0;
        }
    }
    size_t k = 0;
    int rc;
    int scale = 0;
    while ((rc = chunkenc_iter_next(&it, &tv[k], &vv[k])) == 1) {
        scale = scale >= 0 ? decimal_scale(vv[k], scale) : -1;
        k++;
    }
    int ret = 0;
    if (rc < 0 || k != n) {
        ret = -EINVAL;
    } else if (scale >= 0) {
        uint8_t *d;
        size_t dl;
        if (chunkenc_decimal_encode(tv, vv, n, &d, &dl) == 0) {
            if (dl < len) {
                *out = d;
                *out_len = dl;
                ret = 1;
            } else {
                free(d);
            }
        }
    }
    if (tv != ts) {
        free(tv);
        free(vv);
    }
    return ret;
}

int chunkenc_iter_init_enc(chunk_iter *it, enum chunkenc_encoding enc, const uint8_t *data,
                           size_t len)
{
    if (enc == CHUNKENC_XOR) return chunkenc_iter_init(it, data, len);
    memset(it, 0, sizeof *it);
    if (enc != CHUNKENC_DECIMAL || !data || len < 3 || data[2] > CHUNKENC_DECIMAL_MAX_SCALE) {
        it->bad = true;
        return -EINVAL;
    }
    it->enc = CHUNKENC_DECIMAL;
    it->data = data;
    it->len = len;
    it->n = (uint16_t)(data[0] << 8 | data[1]);
    it->scale = data[2];
    it->pos = 24;
    return 0;
}

/* The next n-bit two's complement field of a bucket code. */
static INLINE int64_t get_signed(const uint8_t *d, size_t len, uint64_t *pos, unsigned n)
{
    uint64_t b = get_long(d, len, pos, n);
    uint64_t half = UINT64_C(1) << (n - 1);
    return b > half ? (int64_t)(b - (half << 1)) : (int64_t)b;
}

/* A bucket code: '0', '10'+a, '110'+b, '1110'+c or '1111'+64 bits. */
static INLINE int64_t get_bucket(const uint8_t *d, size_t len, uint64_t *pos, unsigned a,
                                 unsigned b, unsigned c)
{
    uint64_t w = window(d, len, *pos);
    if (!(w >> 63)) {
        *pos += 1;
        return 0;
    }
    if (!((w >> 62) & 1)) {
        *pos += 2;
        return get_signed(d, len, pos, a);
    }
    if (!((w >> 61) & 1)) {
        *pos += 3;
        return get_signed(d, len, pos, b);
    }
    if (!((w >> 60) & 1)) {
        *pos += 4;
        return get_signed(d, len, pos, c);
    }
    *pos += 4;
    return (int64_t)get_long(d, len, pos, 64);
}

static int dec_next(chunk_iter *it, int64_t *t, double *v)
{
    uint64_t pos = it->pos;
    uint64_t end = (uint64_t)it->len * 8;
    if (it->i == 0) {
        uint64_t zt, zm;
        if (get_uvarint(it->data, it->len, &pos, &zt) < 0 ||
            get_uvarint(it->data, it->len, &pos, &zm) < 0)
            return corrupt(it);
        it->t = (int64_t)(zt >> 1) ^ -(int64_t)(zt & 1);
        it->m = (int64_t)(zm >> 1) ^ -(int64_t)(zm & 1);
        if (it->n >= 2) {
            uint64_t delta;
            if (get_uvarint(it->data, it->len, &pos, &delta) < 0) return corrupt(it);
            it->delta = (int64_t)delta;
        }
    } else {
        int64_t delta = it->delta;
        if (it->i >= 2) {
            int64_t dod = get_bucket(it->data, it->len, &pos, 14, 17, 20);
            delta = (int64_t)((uint64_t)delta + (uint64_t)dod);
        }
        int64_t nt = (int64_t)((uint64_t)it->t + (uint64_t)delta);
        if (UNLIKELY(nt <= it->t)) return corrupt(it); /* not increasing, or overflow */
        int64_t dv = get_bucket(it->data, it->len, &pos, 7, 15, 31);
        it->m = (int64_t)((uint64_t)it->m + (uint64_t)dv);
        it->t = nt;
        it->delta = delta;
    }
    if (UNLIKELY(pos > end)) return corrupt(it);
    if (UNLIKELY(it->m > (int64_t)DEC_LIMIT || it->m < -(int64_t)DEC_LIMIT)) return corrupt(it);
    it->pos = pos;
    it->i++;
    *t = it->t;
    *v = (double)it->m / pow10_table[it->scale];
    return 1;
}
