/* histchunk: compression of one series' native histogram samples (nhist.h)
 * into a chunk, after the ideas of Prometheus's histogram chunks: the
 * layout (schema, zero threshold, spans, custom bounds) once in a header,
 * then per sample a delta-of-delta timestamp, the counter reset hint and
 * the values, each against the previous sample's. Pure code: no I/O, no
 * locks.
 *
 * Encoded chunk:
 *   bytes 0-1   number of samples, big-endian uint16
 *   byte 2      flags: bit 0 = float histogram (CHUNKENC_FLOAT_HISTOGRAM),
 *               else integer (CHUNKENC_HISTOGRAM); other bits 0
 *   varints     schema (zigzag); zero threshold (8 bytes, little-endian
 *               bits); positive spans: count, then (offset zigzag, length)
 *               each; negative spans likewise; custom bounds: count, then
 *               8 bytes each
 *   bit stream  (most significant bit first) per sample:
 *     timestamp   sample 0: 64 bits; sample 1: t1 - t0 as a varbit;
 *                 later: the delta of delta as a varbit
 *     2 bits      counter reset hint (enum nhist_hint)
 *     1 bit       1 = staleness marker: nothing more for this sample
 *     values      (not for a staleness marker; "previous" is the previous
 *                 sample that was not one)
 *       integer:  count, zero count, then the buckets (positive, then
 *                 negative), each bucket as its absolute count minus its
 *                 left neighbour's on the same side (the side's first: the
 *                 count), each such field as a varbit: of the value for
 *                 the first sample, of its difference to the previous
 *                 sample's for the second, of the difference of those
 *                 differences for later ones; then the sum XOR-coded
 *       float:    count, zero count, sum, then the buckets' absolute
 *                 counts, each XOR-coded against the same field of the
 *                 previous sample (as the float chunk values in chunkenc.h,
 *                 with a 6-bit leading-zero count; the first sample's
 *                 values as 64 raw bits)
 *   varbit      signed: '0' = 0; '10' + 4 bits, '110' + 8, '1110' + 14,
 *               '11110' + 22, '111110' + 36 (two's complement, the range
 *               -(2^(n-1) - 1) .. 2^(n-1)); '111111' + 64 bits
 * The stream is padded with zero bits to a whole byte.
 *
 * A chunk holds samples of one layout and kind: histchunk_append refuses
 * (HISTCHUNK_CUT) a sample whose layout (schema, zero threshold, spans,
 * custom bounds), integer/float kind or gauge-ness (hint GAUGE) differs
 * from the chunk's, and (HISTCHUNK_CUT_RESET) a counter reset: a non-gauge
 * sample with hint RESET, or whose count, zero count or a bucket is below
 * the previous sample's, as Prometheus's appender decides. The caller then
 * starts a new chunk. A staleness marker (nhist_is_stale) fits any chunk;
 * it decodes with the chunk's kind, schema, zero threshold and custom
 * bounds, no buckets, counts 0 and the marker's sum. Samples of an
 * integer chunk decode with the hint as appended; values bit-exactly. */
#ifndef SIDEWATCH_HISTCHUNK_H
#define SIDEWATCH_HISTCHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkenc.h"
#include "nhist.h"

/* A chunk is full at this many samples, or at HISTCHUNK_TARGET_BYTES once
 * it has HISTCHUNK_MIN_SAMPLES (Prometheus's numbers for histogram
 * chunks). */
#define HISTCHUNK_TARGET_SAMPLES 120
#define HISTCHUNK_TARGET_BYTES 1024
#define HISTCHUNK_MIN_SAMPLES 10
#define HISTCHUNK_MAX_SAMPLES 65535
/* Caps on what a chunk's layout may hold (appending more gives -EINVAL;
 * decoding a header with more gives -EINVAL). */
#define HISTCHUNK_MAX_BUCKETS 65536
#define HISTCHUNK_MAX_SPANS 65536
#define HISTCHUNK_MAX_CUSTOM 65536

/* histchunk_append's "start a new chunk" answers. */
#define HISTCHUNK_CUT 1
#define HISTCHUNK_CUT_RESET 2

typedef struct histchunk_field {
    uint64_t prev;  /* integer: previous value (as int64); float: its bits */
    int64_t delta;  /* integer: previous difference */
    uint8_t lead, trail; /* float: XOR window (lead 0xff: none yet) */
} histchunk_field;

/* An open chunk being appended to. The caller owns the struct; the arrays
 * are heap memory (freed by histchunk_cleanup). */
typedef struct histchunk_appender {
    uint8_t *data;  /* encoded bytes */
    size_t cap;     /* bytes allocated */
    uint64_t bits;  /* bits written, header included */
    uint16_t count; /* samples */
    uint32_t nvals; /* samples that are not staleness markers */
    bool is_float, gauge;
    int32_t schema;
    double zero_threshold;
    nhist_span *pos_spans, *neg_spans;
    size_t n_pos_spans, n_neg_spans, n_pos, n_neg;
    double *custom_values;
    size_t n_custom_values;
    int64_t t, delta;
    histchunk_field count_f, zero_f, sum_f;
    histchunk_field *bucket_f; /* n_pos + n_neg */
    double last_count, last_zero;
    double *last_b; /* previous absolute bucket counts, n_pos + n_neg */
} histchunk_appender;

/* An empty chunk; never fails (allocation is lazy). */
void histchunk_init(histchunk_appender *a);
/* Frees everything; the appender is empty and reusable afterwards. */
void histchunk_cleanup(histchunk_appender *a);

/* Appends a sample (h borrowed). Returns 0; HISTCHUNK_CUT or
 * HISTCHUNK_CUT_RESET when the sample belongs in a new chunk (see above;
 * never for an empty chunk); -EINVAL if t is not greater than the last
 * timestamp, an integer histogram holds a count that is not a whole number
 * in [0, 2^53], the spans do not add up to the bucket counts, or a cap is
 * exceeded; -E2BIG when the chunk holds HISTCHUNK_MAX_SAMPLES. Nothing is
 * written unless 0 is returned. Memory: aborts on OOM (mem.h). */
int histchunk_append(histchunk_appender *a, int64_t t, const nhist *h);

/* Whether the chunk reached its target size (see the caps above). */
bool histchunk_full(const histchunk_appender *a);

/* The encoded chunk so far (valid until the next append) and its length;
 * an empty chunk is 2 bytes (count 0, no header). */
const uint8_t *histchunk_bytes(const histchunk_appender *a, size_t *len);
/* Bytes held by the appender (buffer and per-bucket state). */
size_t histchunk_memory(const histchunk_appender *a);
/* The chunk's `enc` value: CHUNKENC_HISTOGRAM or CHUNKENC_FLOAT_HISTOGRAM,
 * or -EINVAL for data without a header (fewer than 3 bytes, bad flags). */
int histchunk_enc(const uint8_t *data, size_t len);
/* The sample count in the header (0 for data shorter than 2 bytes). */
uint16_t histchunk_count(const uint8_t *data, size_t len);

/* Reads an encoded chunk. The data is borrowed and must outlive the
 * iterator; the iterator owns the decoded layout (histchunk_iter_cleanup). */
typedef struct histchunk_iter {
    const uint8_t *data;
    size_t len;
    uint64_t pos; /* next bit */
    uint16_t n, i;
    uint32_t nvals;
    bool bad;
    histchunk_appender st; /* decoded layout and previous values */
} histchunk_iter;

/* Starts reading; returns 0, or -EINVAL when the header is corrupt or
 * truncated (the iterator then needs no cleanup, but cleanup is safe). A
 * chunk of 0 samples without a header is valid and empty. */
int histchunk_iter_init(histchunk_iter *it, const uint8_t *data, size_t len);
/* The next sample: returns 1, sets *t and makes *h (cleaned up first; the
 * caller owns it and frees it with nhist_cleanup) the sample; 0 at the
 * end; -EINVAL when the chunk is corrupt (truncated, timestamps not
 * increasing, integer counts out of range). Never reads outside
 * data[0..len). */
int histchunk_iter_next(histchunk_iter *it, int64_t *t, nhist *h);
void histchunk_iter_cleanup(histchunk_iter *it);

#endif
