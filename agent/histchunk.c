/* histchunk: native histogram chunk encoder and decoder (layout in
 * histchunk.h).
 *
 * Writing: the buffer is kept zeroed beyond the bits written; a field is
 * written a byte piece at a time. Each append makes every check that can
 * refuse the sample before it writes anything (growing the buffer cannot
 * fail: mem.h aborts on OOM), so a refused sample leaves the chunk as it
 * was. (Histogram samples are few compared with float samples; clarity
 * over speed here.)
 *
 * Reading: every read checks that the bits lie inside the data, so a
 * truncated or corrupt chunk gives -EINVAL and never an out-of-bounds
 * read. Integer arithmetic on decoded values wraps (unsigned), and the
 * results are range-checked. */
#include "histchunk.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "strutil.h"

#define HEADER_FLAG_FLOAT 0x01
#define MAX_INT_COUNT 9007199254740992.0 /* 2^53 */

static uint64_t f2u(double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    return u;
}

static double u2f(uint64_t u)
{
    double v;
    memcpy(&v, &u, 8);
    return v;
}

/* ---- bit writer ---- */

typedef struct bitw {
    uint8_t *d;
    size_t cap; /* bytes */
    uint64_t pos; /* bits */
} bitw;

static void bw_reserve(bitw *w, uint64_t more_bits)
{
    size_t need = (size_t)((w->pos + more_bits + 7) / 8);
    if (need <= w->cap) return;
    size_t cap = w->cap ? w->cap + w->cap / 2 : 64;
    if (cap < need) cap = need;
    w->d = mem_realloc(w->d, cap);
    memset(w->d + w->cap, 0, cap - w->cap);
    w->cap = cap;
}

/* Writes the low n bits of x (0 <= n <= 64), most significant first. */
static void bw_put(bitw *w, uint64_t x, unsigned n)
{
    bw_reserve(w, n);
    while (n > 0) {
        unsigned room = 8 - (unsigned)(w->pos & 7);
        unsigned k = n < room ? n : room;
        uint8_t piece = (uint8_t)((x >> (n - k)) & ((1u << k) - 1));
        w->d[w->pos >> 3] |= (uint8_t)(piece << (room - k));
        w->pos += k;
        n -= k;
    }
}

static void bw_bytes(bitw *w, const void *p, size_t n)
{
    /* Only used for the header, which starts byte-aligned. */
    bw_reserve(w, 8 * (uint64_t)n);
    memcpy(w->d + (w->pos >> 3), p, n);
    w->pos += 8 * (uint64_t)n;
}

static void bw_uvarint(bitw *w, uint64_t x)
{
    uint8_t b[10];
    size_t n = 0;
    while (x >= 0x80) {
        b[n++] = (uint8_t)(x | 0x80);
        x >>= 7;
    }
    b[n++] = (uint8_t)x;
    bw_bytes(w, b, n);
}

static void bw_varint(bitw *w, int64_t x)
{
    bw_uvarint(w, ((uint64_t)x << 1) ^ (uint64_t)(x >> 63));
}

static void bw_u64le(bitw *w, uint64_t x)
{
    uint8_t b[8];
    for (int k = 0; k < 8; k++) b[k] = (uint8_t)(x >> (8 * k));
    bw_bytes(w, b, 8);
}

/* The varbit classes: prefix length and payload bits. */
static const unsigned vb_bits[] = {4, 8, 14, 22, 36};
#define VB_CLASSES 5

static void bw_varbit(bitw *w, int64_t v)
{
    if (v == 0) {
        bw_put(w, 0, 1);
        return;
    }
    for (unsigned c = 0; c < VB_CLASSES; c++) {
        unsigned n = vb_bits[c];
        int64_t lo = -(((int64_t)1 << (n - 1)) - 1), hi = (int64_t)1 << (n - 1);
        if (v >= lo && v <= hi) {
            /* prefix: c + 1 ones, then a zero */
            bw_put(w, ((UINT64_C(1) << (c + 1)) - 1) << 1, c + 2);
            bw_put(w, (uint64_t)v & ((UINT64_C(1) << n) - 1), n);
            return;
        }
    }
    bw_put(w, 0x3f, 6);
    bw_put(w, (uint64_t)v, 64);
}

/* XOR-codes the float bits x against the field's previous value. */
static void bw_xor(bitw *w, histchunk_field *f, uint64_t bits, bool first)
{
    if (first) {
        bw_put(w, bits, 64);
        f->prev = bits;
        f->lead = 0xff;
        return;
    }
    uint64_t x = bits ^ f->prev;
    f->prev = bits;
    if (x == 0) {
        bw_put(w, 0, 1);
        return;
    }
    unsigned lead = (unsigned)__builtin_clzll(x), trail = (unsigned)__builtin_ctzll(x);
    if (f->lead != 0xff && lead >= f->lead && trail >= f->trail) {
        unsigned m = 64 - f->lead - f->trail;
        bw_put(w, 2, 2);
        bw_put(w, x >> f->trail, m);
        return;
    }
    unsigned m = 64 - lead - trail;
    bw_put(w, 3, 2);
    bw_put(w, lead, 6);
    bw_put(w, m & 63, 6);
    bw_put(w, x >> trail, m);
    f->lead = (uint8_t)lead;
    f->trail = (uint8_t)trail;
}

/* An integer field: value, delta or delta of delta by the field's age. */
static void bw_int(bitw *w, histchunk_field *f, int64_t v, uint32_t nvals)
{
    if (nvals == 0) {
        bw_varbit(w, v);
        f->delta = 0;
    } else {
        int64_t d = (int64_t)((uint64_t)v - f->prev);
        bw_varbit(w, nvals == 1 ? d : (int64_t)((uint64_t)d - (uint64_t)f->delta));
        f->delta = d;
    }
    f->prev = (uint64_t)v;
}

/* ---- bit reader ---- */

typedef struct bitr {
    const uint8_t *d;
    uint64_t len_bits;
    uint64_t pos;
} bitr;

static int br_get(bitr *r, unsigned n, uint64_t *out)
{
    if (r->pos > r->len_bits || r->len_bits - r->pos < n) return -EINVAL;
    uint64_t x = 0;
    while (n > 0) {
        unsigned room = 8 - (unsigned)(r->pos & 7);
        unsigned k = n < room ? n : room;
        uint8_t byte = r->d[r->pos >> 3];
        uint64_t piece = (uint64_t)(byte >> (room - k)) & ((1u << k) - 1);
        x = (k == 64 ? 0 : x << k) | piece;
        r->pos += k;
        n -= k;
    }
    *out = x;
    return 0;
}

static int br_varbit(bitr *r, int64_t *v)
{
    uint64_t b;
    unsigned ones = 0;
    for (;;) {
        if (br_get(r, 1, &b) < 0) return -EINVAL;
        if (!b) break;
        if (++ones == 6) break;
    }
    if (ones == 0) {
        *v = 0;
        return 0;
    }
    if (ones == 6) {
        if (br_get(r, 64, &b) < 0) return -EINVAL;
        *v = (int64_t)b;
        return 0;
    }
    unsigned n = vb_bits[ones - 1];
    if (br_get(r, n, &b) < 0) return -EINVAL;
    if (b > (UINT64_C(1) << (n - 1))) b -= UINT64_C(1) << n; /* wraps to the negative */
    *v = (int64_t)b;
    return 0;
}

static int br_xor(bitr *r, histchunk_field *f, bool first, uint64_t *bits)
{
    uint64_t b;
    if (first) {
        if (br_get(r, 64, &b) < 0) return -EINVAL;
        f->prev = b;
        f->lead = 0xff;
        *bits = b;
        return 0;
    }
    if (br_get(r, 1, &b) < 0) return -EINVAL;
    if (!b) {
        *bits = f->prev;
        return 0;
    }
    if (br_get(r, 1, &b) < 0) return -EINVAL;
    unsigned lead, trail, m;
    if (!b) {
        if (f->lead == 0xff) return -EINVAL;
        lead = f->lead;
        trail = f->trail;
        m = 64 - lead - trail;
    } else {
        uint64_t l, mm;
        if (br_get(r, 6, &l) < 0 || br_get(r, 6, &mm) < 0) return -EINVAL;
        lead = (unsigned)l;
        m = mm ? (unsigned)mm : 64;
        if (lead + m > 64) return -EINVAL;
        trail = 64 - lead - m;
        f->lead = (uint8_t)lead;
        f->trail = (uint8_t)trail;
    }
    uint64_t x;
    if (br_get(r, m, &x) < 0) return -EINVAL;
    if (m < 64) x <<= trail;
    f->prev ^= x;
    *bits = f->prev;
    return 0;
}

static int br_int(bitr *r, histchunk_field *f, uint32_t nvals, int64_t *v)
{
    int64_t x;
    if (br_varbit(r, &x) < 0) return -EINVAL;
    if (nvals == 0) {
        f->delta = 0;
        f->prev = (uint64_t)x;
    } else {
        uint64_t d = nvals == 1 ? (uint64_t)x : (uint64_t)x + (uint64_t)f->delta;
        f->delta = (int64_t)d;
        f->prev += d;
    }
    *v = (int64_t)f->prev;
    return 0;
}


static uint64_t get_u64le(const uint8_t *p)
{
    uint64_t x = 0;
    for (int k = 7; k >= 0; k--) x = x << 8 | p[k];
    return x;
}

/* ---- appending ---- */

void histchunk_init(histchunk_appender *a)
{
    memset(a, 0, sizeof *a);
}

void histchunk_cleanup(histchunk_appender *a)
{
    mem_free(a->data);
    mem_free(a->pos_spans);
    mem_free(a->neg_spans);
    mem_free(a->custom_values);
    mem_free(a->bucket_f);
    mem_free(a->last_b);
    histchunk_init(a);
}

static bool spans_eq(const nhist_span *a, size_t na, const nhist_span *b, size_t nb)
{
    if (na != nb) return false;
    for (size_t i = 0; i < na; i++) {
        if (a[i].offset != b[i].offset || a[i].length != b[i].length) return false;
    }
    return true;
}

static bool spans_cover(const nhist_span *sp, size_t n, size_t nb)
{
    if (n > HISTCHUNK_MAX_SPANS) return false;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) total += sp[i].length;
    return total == nb;
}

static bool int_ok(double v)
{
    return v >= 0 && v <= MAX_INT_COUNT && v == floor(v);
}

static bool same_layout(const histchunk_appender *a, const nhist *h)
{
    if (a->is_float != h->is_float || a->schema != h->schema ||
        f2u(a->zero_threshold) != f2u(h->zero_threshold))
        return false;
    if (!spans_eq(a->pos_spans, a->n_pos_spans, h->pos_spans, h->n_pos_spans) ||
        !spans_eq(a->neg_spans, a->n_neg_spans, h->neg_spans, h->n_neg_spans))
        return false;
    if (a->n_custom_values != h->n_custom_values) return false;
    for (size_t i = 0; i < a->n_custom_values; i++) {
        if (f2u(a->custom_values[i]) != f2u(h->custom_values[i])) return false;
    }
    return true;
}

/* Writes the header for h's layout into w (the count bytes left 0). */
static void write_header(bitw *w, const nhist *h)
{
    bw_put(w, 0, 16);
    uint8_t flags = h->is_float ? HEADER_FLAG_FLOAT : 0;
    bw_bytes(w, &flags, 1);
    bw_varint(w, h->schema);
    bw_u64le(w, f2u(h->zero_threshold));
    bw_uvarint(w, h->n_pos_spans);
    for (size_t i = 0; i < h->n_pos_spans; i++) {
        bw_varint(w, h->pos_spans[i].offset);
        bw_uvarint(w, h->pos_spans[i].length);
    }
    bw_uvarint(w, h->n_neg_spans);
    for (size_t i = 0; i < h->n_neg_spans; i++) {
        bw_varint(w, h->neg_spans[i].offset);
        bw_uvarint(w, h->neg_spans[i].length);
    }
    bw_uvarint(w, h->n_custom_values);
    for (size_t i = 0; i < h->n_custom_values; i++) bw_u64le(w, f2u(h->custom_values[i]));
}

static void *dup_or_null(const void *p, size_t n, size_t elem)
{
    if (!n) return NULL;
    void *d = mem_malloc(n * elem);
    memcpy(d, p, n * elem);
    return d;
}

/* Takes h's layout as the chunk's (the chunk is empty). */
static void set_layout(histchunk_appender *a, const nhist *h)
{
    a->is_float = h->is_float;
    a->schema = h->schema;
    a->zero_threshold = h->zero_threshold;
    a->pos_spans = dup_or_null(h->pos_spans, h->n_pos_spans, sizeof *h->pos_spans);
    a->neg_spans = dup_or_null(h->neg_spans, h->n_neg_spans, sizeof *h->neg_spans);
    a->n_pos_spans = h->n_pos_spans;
    a->n_neg_spans = h->n_neg_spans;
    a->n_pos = h->n_pos;
    a->n_neg = h->n_neg;
    a->custom_values = dup_or_null(h->custom_values, h->n_custom_values, sizeof(double));
    a->n_custom_values = h->n_custom_values;
    size_t nb = h->n_pos + h->n_neg;
    a->bucket_f = nb ? mem_calloc(nb, sizeof *a->bucket_f) : NULL;
    a->last_b = nb ? mem_calloc(nb, sizeof *a->last_b) : NULL;
}

/* Writes a sample's value fields, updating the field state. */
static void write_values(bitw *w, histchunk_appender *a, const nhist *h)
{
    uint32_t k = a->nvals;
    size_t nb = a->n_pos + a->n_neg;
    if (!a->is_float) {
        bw_int(w, &a->count_f, (int64_t)h->count, k);
        bw_int(w, &a->zero_f, (int64_t)h->zero_count, k);
        for (size_t i = 0; i < nb; i++) {
            bool neg = i >= a->n_pos;
            size_t j = neg ? i - a->n_pos : i;
            const double *side = neg ? h->neg : h->pos;
            int64_t d = (int64_t)side[j] - (j ? (int64_t)side[j - 1] : 0);
            bw_int(w, &a->bucket_f[i], d, k);
        }
        bw_xor(w, &a->sum_f, f2u(h->sum), k == 0);
    } else {
        bw_xor(w, &a->count_f, f2u(h->count), k == 0);
        bw_xor(w, &a->zero_f, f2u(h->zero_count), k == 0);
        bw_xor(w, &a->sum_f, f2u(h->sum), k == 0);
        for (size_t i = 0; i < nb; i++) {
            double v = i < a->n_pos ? h->pos[i] : h->neg[i - a->n_pos];
            bw_xor(w, &a->bucket_f[i], f2u(v), k == 0);
        }
    }
}

static bool counter_reset(const histchunk_appender *a, const nhist *h)
{
    if (h->hint == NHIST_HINT_RESET) return true;
    if (a->nvals == 0) return false;
    if (h->count < a->last_count || h->zero_count < a->last_zero) return true;
    for (size_t i = 0; i < a->n_pos; i++) {
        if (h->pos[i] < a->last_b[i]) return true;
    }
    for (size_t i = 0; i < a->n_neg; i++) {
        if (h->neg[i] < a->last_b[a->n_pos + i]) return true;
    }
    return false;
}

int histchunk_append(histchunk_appender *a, int64_t t, const nhist *h)
{
    bool stale = nhist_is_stale(h);
    if (a->count && (t <= a->t || (uint64_t)t - (uint64_t)a->t > (uint64_t)INT64_MAX))
        return -EINVAL;
    if (a->count >= HISTCHUNK_MAX_SAMPLES) return -E2BIG;
    if (!spans_cover(h->pos_spans, h->n_pos_spans, h->n_pos) ||
        !spans_cover(h->neg_spans, h->n_neg_spans, h->n_neg) ||
        h->n_pos + h->n_neg > HISTCHUNK_MAX_BUCKETS || h->n_custom_values > HISTCHUNK_MAX_CUSTOM ||
        (unsigned)h->hint > NHIST_HINT_GAUGE)
        return -EINVAL;
    if (!stale && !h->is_float) {
        if (!int_ok(h->count) || !int_ok(h->zero_count)) return -EINVAL;
        for (size_t i = 0; i < h->n_pos; i++)
            if (!int_ok(h->pos[i])) return -EINVAL;
        for (size_t i = 0; i < h->n_neg; i++)
            if (!int_ok(h->neg[i])) return -EINVAL;
    }
    if (a->count && !stale) {
        if (a->nvals == 0) {
            /* Only staleness markers so far: their layout need not be the
             * sample's. */
            if (!same_layout(a, h)) return HISTCHUNK_CUT;
        } else {
            if (!same_layout(a, h) || a->gauge != (h->hint == NHIST_HINT_GAUGE)) return HISTCHUNK_CUT;
            if (!a->gauge && counter_reset(a, h)) return HISTCHUNK_CUT_RESET;
        }
    }

    bitw w = {a->data, a->cap, a->bits};
    if (a->count == 0) {
        histchunk_cleanup(a);
        w = (bitw){0};
        write_header(&w, h);
        set_layout(a, h);
    }
    /* Timestamp. */
    if (a->count == 0) {
        bw_put(&w, (uint64_t)t, 64);
        a->delta = 0;
    } else {
        int64_t d = (int64_t)((uint64_t)t - (uint64_t)a->t);
        bw_varbit(&w, a->count == 1 ? d : (int64_t)((uint64_t)d - (uint64_t)a->delta));
        a->delta = d;
    }
    a->t = t;
    bw_put(&w, (uint64_t)h->hint, 2);
    bw_put(&w, stale ? 1 : 0, 1);
    if (!stale) {
        if (a->nvals == 0) a->gauge = h->hint == NHIST_HINT_GAUGE;
        write_values(&w, a, h);
        a->last_count = h->count;
        a->last_zero = h->zero_count;
        for (size_t i = 0; i < a->n_pos; i++) a->last_b[i] = h->pos[i];
        for (size_t i = 0; i < a->n_neg; i++) a->last_b[a->n_pos + i] = h->neg[i];
        a->nvals++;
    }
    a->count++;
    a->data = w.d;
    a->cap = w.cap;
    a->bits = w.pos;
    a->data[0] = (uint8_t)(a->count >> 8);
    a->data[1] = (uint8_t)a->count;
    return 0;
}

bool histchunk_full(const histchunk_appender *a)
{
    if (a->count >= HISTCHUNK_TARGET_SAMPLES) return true;
    return a->count >= HISTCHUNK_MIN_SAMPLES && (a->bits + 7) / 8 >= HISTCHUNK_TARGET_BYTES;
}

const uint8_t *histchunk_bytes(const histchunk_appender *a, size_t *len)
{
    static const uint8_t empty[2] = {0, 0};
    if (!a->count) {
        *len = 2;
        return empty;
    }
    *len = (size_t)((a->bits + 7) / 8);
    return a->data;
}

size_t histchunk_memory(const histchunk_appender *a)
{
    size_t nb = a->n_pos + a->n_neg;
    return a->cap + nb * (sizeof *a->bucket_f + sizeof *a->last_b) +
           (a->n_pos_spans + a->n_neg_spans) * sizeof(nhist_span) +
           a->n_custom_values * sizeof(double);
}

int histchunk_enc(const uint8_t *data, size_t len)
{
    if (!data || len < 3 || (data[2] & ~HEADER_FLAG_FLOAT)) return -EINVAL;
    return data[2] & HEADER_FLAG_FLOAT ? CHUNKENC_FLOAT_HISTOGRAM : CHUNKENC_HISTOGRAM;
}

uint16_t histchunk_count(const uint8_t *data, size_t len)
{
    if (!data || len < 2) return 0;
    return (uint16_t)(data[0] << 8 | data[1]);
}

/* ---- reading ---- */

static int read_spans(const uint8_t **p, const uint8_t *end, nhist_span **out, size_t *n,
                      size_t *buckets, size_t *total)
{
    uint64_t cnt;
    if (strutil_get_uvarint(p, end, &cnt) < 0 || cnt > HISTCHUNK_MAX_SPANS ||
        cnt > (uint64_t)(end - *p) / 2)
        return -EINVAL;
    *n = (size_t)cnt;
    *out = cnt ? mem_malloc((size_t)cnt * sizeof **out) : NULL;
    uint64_t b = 0;
    for (size_t i = 0; i < cnt; i++) {
        int64_t off;
        uint64_t l;
        if (strutil_get_varint(p, end, &off) < 0 || strutil_get_uvarint(p, end, &l) < 0 || off < INT32_MIN ||
            off > INT32_MAX || l > UINT32_MAX)
            return -EINVAL;
        (*out)[i].offset = (int32_t)off;
        (*out)[i].length = (uint32_t)l;
        b += l;
        if (b + *total > HISTCHUNK_MAX_BUCKETS) return -EINVAL;
    }
    *buckets = (size_t)b;
    *total += (size_t)b;
    return 0;
}

int histchunk_iter_init(histchunk_iter *it, const uint8_t *data, size_t len)
{
    memset(it, 0, sizeof *it);
    it->bad = true;
    if (!data || len < 2) return -EINVAL;
    it->data = data;
    it->len = len;
    it->n = histchunk_count(data, len);
    it->bad = false;
    if (it->n == 0 && len == 2) return 0;
    histchunk_appender *st = &it->st;
    int enc = histchunk_enc(data, len);
    const uint8_t *p = data + 3, *end = data + len;
    int64_t schema;
    uint64_t cnt;
    size_t total = 0;
    if (enc < 0 || it->n == 0 || strutil_get_varint(&p, end, &schema) < 0 || schema < INT32_MIN ||
        schema > INT32_MAX || end - p < 8)
        goto bad;
    st->is_float = enc == CHUNKENC_FLOAT_HISTOGRAM;
    st->schema = (int32_t)schema;
    st->zero_threshold = u2f(get_u64le(p));
    p += 8;
    if (read_spans(&p, end, &st->pos_spans, &st->n_pos_spans, &st->n_pos, &total) < 0 ||
        read_spans(&p, end, &st->neg_spans, &st->n_neg_spans, &st->n_neg, &total) < 0)
        goto bad;
    if (strutil_get_uvarint(&p, end, &cnt) < 0 || cnt > HISTCHUNK_MAX_CUSTOM || cnt > (uint64_t)(end - p) / 8)
        goto bad;
    st->n_custom_values = (size_t)cnt;
    st->custom_values = cnt ? mem_malloc((size_t)cnt * sizeof(double)) : NULL;
    for (size_t i = 0; i < cnt; i++, p += 8) st->custom_values[i] = u2f(get_u64le(p));
    /* Every non-stale sample takes at least one bit per field. */
    if (total > 8 * (size_t)(end - p)) goto bad;
    if (total) {
        st->bucket_f = mem_calloc(total, sizeof *st->bucket_f);
        st->last_b = mem_calloc(total, sizeof *st->last_b);
    }
    it->pos = 8 * (uint64_t)(p - data);
    return 0;
bad:
    histchunk_iter_cleanup(it);
    it->bad = true;
    return -EINVAL;
}

void histchunk_iter_cleanup(histchunk_iter *it)
{
    histchunk_cleanup(&it->st);
}

/* Fills h with the chunk's layout and no values. */
static void layout_into(const histchunk_appender *st, nhist *h, bool with_buckets)
{
    h->is_float = st->is_float;
    h->schema = st->schema;
    h->zero_threshold = st->zero_threshold;
    h->custom_values = dup_or_null(st->custom_values, st->n_custom_values, sizeof(double));
    h->n_custom_values = st->n_custom_values;
    if (!with_buckets) return;
    h->pos_spans = dup_or_null(st->pos_spans, st->n_pos_spans, sizeof(nhist_span));
    h->neg_spans = dup_or_null(st->neg_spans, st->n_neg_spans, sizeof(nhist_span));
    h->n_pos_spans = st->n_pos_spans;
    h->n_neg_spans = st->n_neg_spans;
    h->n_pos = st->n_pos;
    h->n_neg = st->n_neg;
    h->pos = st->n_pos ? mem_malloc(st->n_pos * sizeof(double)) : NULL;
    h->neg = st->n_neg ? mem_malloc(st->n_neg * sizeof(double)) : NULL;
}

static bool int_range(int64_t v)
{
    return v >= 0 && (double)v <= MAX_INT_COUNT;
}

int histchunk_iter_next(histchunk_iter *it, int64_t *t, nhist *h)
{
    if (it->bad) return -EINVAL;
    if (it->i >= it->n) return 0;
    histchunk_appender *st = &it->st;
    bitr r = {it->data, 8 * (uint64_t)it->len, it->pos};
    uint64_t b, hint, stale;
    if (it->i == 0) {
        if (br_get(&r, 64, &b) < 0) goto bad;
        st->t = (int64_t)b;
        st->delta = 0;
    } else {
        int64_t x;
        if (br_varbit(&r, &x) < 0) goto bad;
        uint64_t d = it->i == 1 ? (uint64_t)x : (uint64_t)x + (uint64_t)st->delta;
        if ((int64_t)d <= 0) goto bad;
        int64_t nt = (int64_t)((uint64_t)st->t + d);
        if (nt <= st->t) goto bad;
        st->delta = (int64_t)d;
        st->t = nt;
    }
    if (br_get(&r, 2, &hint) < 0 || br_get(&r, 1, &stale) < 0) goto bad;
    nhist_cleanup(h);
    h->hint = (enum nhist_hint)hint;
    if (stale) {
        layout_into(st, h, false);
        h->sum = u2f(0x7ff0000000000002ULL);
    } else {
        layout_into(st, h, true);
        uint32_t k = it->nvals;
        size_t nb = st->n_pos + st->n_neg;
        if (!st->is_float) {
            int64_t c, z;
            if (br_int(&r, &st->count_f, k, &c) < 0 || br_int(&r, &st->zero_f, k, &z) < 0 ||
                !int_range(c) || !int_range(z))
                goto bad_h;
            h->count = (double)c;
            h->zero_count = (double)z;
            int64_t prev = 0;
            for (size_t i = 0; i < nb; i++) {
                int64_t d;
                if (br_int(&r, &st->bucket_f[i], k, &d) < 0) goto bad_h;
                if (i == 0 || i == st->n_pos) prev = 0;
                int64_t v = (int64_t)((uint64_t)prev + (uint64_t)d);
                if (!int_range(v)) goto bad_h;
                if (i < st->n_pos)
                    h->pos[i] = (double)v;
                else
                    h->neg[i - st->n_pos] = (double)v;
                prev = v;
            }
            if (br_xor(&r, &st->sum_f, k == 0, &b) < 0) goto bad_h;
            h->sum = u2f(b);
        } else {
            uint64_t c, z, s;
            if (br_xor(&r, &st->count_f, k == 0, &c) < 0 || br_xor(&r, &st->zero_f, k == 0, &z) < 0 ||
                br_xor(&r, &st->sum_f, k == 0, &s) < 0)
                goto bad_h;
            h->count = u2f(c);
            h->zero_count = u2f(z);
            h->sum = u2f(s);
            for (size_t i = 0; i < nb; i++) {
                if (br_xor(&r, &st->bucket_f[i], k == 0, &b) < 0) goto bad_h;
                if (i < st->n_pos)
                    h->pos[i] = u2f(b);
                else
                    h->neg[i - st->n_pos] = u2f(b);
            }
        }
        it->nvals++;
    }
    it->pos = r.pos;
    it->i++;
    *t = st->t;
    return 1;
bad_h:
    nhist_cleanup(h);
bad:
    it->bad = true;
    return -EINVAL;
}
