/* chunkenc: Gorilla-style compression of one series' samples into a chunk
 * (delta-of-delta timestamps, XOR-compressed float64 values), with the bit
 * layout of Prometheus's XOR chunk. Pure code: no I/O, no locks.
 *
 * Encoded chunk (all bit fields most significant bit first):
 *   bytes 0-1   number of samples, big-endian uint16
 *   sample 0    timestamp as a zigzag varint; value as 64 raw bits
 *   sample 1    timestamp delta (t1 - t0 > 0) as an unsigned varint;
 *               value XOR-encoded (below)
 *   sample n>=2 delta-of-delta dod = (tn - tn-1) - (tn-1 - tn-2):
 *                 dod == 0                 '0'
 *                 -8191 <= dod <= 8192     '10'   + 14 bits two's complement
 *                 -65535 <= dod <= 65536   '110'  + 17 bits
 *                 -524287 <= dod <= 524288 '1110' + 20 bits
 *                 otherwise                '1111' + 64 bits
 *               then the value XOR-encoded.
 *   XOR value   x = bits(v) ^ bits(previous v):
 *                 x == 0                   '0'
 *                 x fits the previous      '10' + the previous window's
 *                 leading/trailing window        meaningful bits
 *                 otherwise                '11' + 5 bits leading zeros (capped
 *                                          at 31) + 6 bits count of
 *                                          meaningful bits (64 written as 0)
 *                                          + the meaningful bits
 * The bit stream is padded with zero bits to a whole byte. Values are kept
 * bit-exactly (NaN payloads, the staleness marker, -0).
 *
 * Timestamps within a chunk must strictly increase: the appender refuses
 * anything else. */
#ifndef SIDEWATCH_CHUNKENC_H
#define SIDEWATCH_CHUNKENC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Samples per chunk (Prometheus cuts its XOR chunks at 120 samples). */
#define CHUNKENC_TARGET_SAMPLES 120
/* The count field's limit. */
#define CHUNKENC_MAX_SAMPLES 65535

/* An open chunk being appended to. The caller owns the struct; the buffer
 * is heap memory the appender grows (freed by chunkenc_reset/cleanup). */
typedef struct chunk_appender {
    uint8_t *data;   /* encoded bytes; data[0..1] hold the count */
    uint32_t cap;    /* bytes allocated */
    uint32_t bits;   /* bits written, header included */
    uint16_t count;  /* samples */
    uint8_t leading, trailing; /* XOR window of the last value (leading 0xff: none yet) */
    int64_t t;       /* last timestamp */
    int64_t delta;   /* last timestamp delta */
    uint64_t v;      /* bits of the last value */
} chunk_appender;

/* An empty chunk; never fails (allocation is lazy). An all-zero struct is
 * not an empty appender (leading must start at 0xff): call this first. */
void chunkenc_init(chunk_appender *a);
/* Frees the buffer; the appender is empty and reusable afterwards. */
void chunkenc_cleanup(chunk_appender *a);

/* Appends a sample. Returns 0, -EINVAL if t is not greater than the last
 * timestamp (nothing written), or -E2BIG when the chunk already holds
 * CHUNKENC_MAX_SAMPLES. Also -ENOMEM if the buffer cannot grow; every
 * error leaves the chunk unchanged. */
int chunkenc_append(chunk_appender *a, int64_t t, double v);

/* The encoded chunk so far (valid until the next append) and its length in
 * bytes; an empty chunk is 2 bytes (count 0). */
const uint8_t *chunkenc_bytes(const chunk_appender *a, size_t *len);

/* Hands the encoded bytes to the caller (who frees them with free()) and
 * leaves the appender empty. *len gets the byte length. The buffer is
 * trimmed when it has more than 32 bytes of slack. An empty appender gives
 * a new 2-byte chunk; NULL (and *len 0) only if that allocation fails. */
uint8_t *chunkenc_detach(chunk_appender *a, size_t *len);

/* Bytes used by the appender's buffer (for memory accounting). */
size_t chunkenc_capacity(const chunk_appender *a);

/* Reads an encoded chunk. The data is borrowed and must outlive the
 * iterator. */
typedef struct chunk_iter {
    const uint8_t *data;
    size_t len;      /* bytes */
    uint64_t pos;    /* next bit to read */
    uint16_t n, i;   /* samples in the chunk, samples read */
    uint8_t leading, trailing;
    int64_t t, delta;
    uint64_t v;
    bool bad;
    uint8_t enc;     /* enum chunkenc_encoding */
    uint8_t scale;   /* decimal: fraction digits */
    int64_t m;       /* decimal: the last value times 10^scale */
} chunk_iter;

/* Starts reading; returns 0, or -EINVAL when the data is shorter than the
 * header (or NULL). */
int chunkenc_iter_init(chunk_iter *it, const uint8_t *data, size_t len);
/* The next sample: returns 1 and sets *t and *v, 0 at the end, or -EINVAL
 * when the chunk is corrupt (truncated bits, timestamps not increasing,
 * field values out of range). Never reads outside data[0..len). */
int chunkenc_iter_next(chunk_iter *it, int64_t *t, double *v);
/* The sample count stored in the header (0 for data shorter than 2 bytes);
 * the same for both encodings. */
uint16_t chunkenc_count(const uint8_t *data, size_t len);

/* ---- the decimal encoding -------------------------------------------------
 *
 * Most values scraped are integers (counters, bucket counts) or decimals
 * with few fraction digits (21.5, 0.125). For a chunk whose values all are,
 * sidewatch stores them as integers m = v * 10^scale and encodes the
 * differences of consecutive m with the same bucket idea as the timestamps.
 * A chunk is written this way only when that is smaller than the XOR chunk;
 * the encoding is recorded next to the chunk (the store's `enc` column), as
 * the bytes do not say it.
 *
 * Decimal chunk:
 *   bytes 0-1   number of samples, big-endian uint16
 *   byte 2      scale: fraction digits, 0..CHUNKENC_DECIMAL_MAX_SCALE
 *   varints     t0 (zigzag), m0 (zigzag), and t1 - t0 (unsigned) if n >= 2
 *   bit stream  for each sample i >= 1: (if i >= 2: the timestamp's
 *               delta-of-delta, coded as in the XOR chunk), then
 *               d = m_i - m_{i-1}:
 *                 d == 0                        '0'
 *                 -63 <= d <= 64                '10'   + 7 bits
 *                 -16383 <= d <= 16384          '110'  + 15 bits
 *                 -(2^30 - 1) <= d <= 2^30      '1110' + 31 bits
 *                 otherwise                     '1111' + 64 bits
 * A value is a decimal of `scale` digits when it is finite, not -0,
 * |m| <= 2^53 and (double)m / 10^scale is bit for bit the value: decoding
 * computes exactly that, so values round-trip exactly. */

/* The store's `enc` column. CHUNKENC_HISTOGRAM and CHUNKENC_FLOAT_HISTOGRAM
 * are native histogram chunks (histchunk.h), which chunkenc_iter_init_enc
 * refuses with -EINVAL. */
enum chunkenc_encoding {
    CHUNKENC_XOR = 0,
    CHUNKENC_DECIMAL = 1,
    CHUNKENC_HISTOGRAM = 2,
    CHUNKENC_FLOAT_HISTOGRAM = 3,
};
#define CHUNKENC_DECIMAL_MAX_SCALE 9

/* Encodes n samples (1 <= n <= CHUNKENC_MAX_SAMPLES, timestamps strictly
 * increasing) as a decimal chunk. Returns 0 and a malloc'd buffer (caller
 * frees) with its length; -EDOM if a value is not a short decimal; -EINVAL
 * for bad arguments. */
int chunkenc_decimal_encode(const int64_t *t, const double *v, size_t n, uint8_t **out,
                            size_t *len);

/* Re-encodes an XOR chunk as a decimal chunk when every value allows it and
 * the result is smaller. Returns 1 and a malloc'd buffer in *out (caller
 * frees), 0 when the XOR chunk stays, -EINVAL if it does not decode. */
int chunkenc_compact(const uint8_t *data, size_t len, uint8_t **out, size_t *out_len);

/* Like chunkenc_iter_init for a chunk in either encoding. */
int chunkenc_iter_init_enc(chunk_iter *it, enum chunkenc_encoding enc, const uint8_t *data,
                           size_t len);

#endif
