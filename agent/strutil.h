/* strutil: Prometheus-compatible parsing and formatting of durations and
 * byte sizes; the staleness marker; hashing.
 *
 * These functions reproduce the exact behaviour (and error texts) of the Go
 * libraries Prometheus uses, because users see those texts and tests compare
 * them: model.ParseDuration and units.ParseBase2Bytes. Floats, names, UTF-8
 * and Go quoting live in exporter/expfmt.h, which exporter/ shares. */
#ifndef SIDEWATCH_STRUTIL_H
#define SIDEWATCH_STRUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Milliseconds in the units Prometheus durations use. */
#define STRUTIL_MS_PER_SECOND 1000LL
#define STRUTIL_MS_PER_MINUTE (60 * STRUTIL_MS_PER_SECOND)
#define STRUTIL_MS_PER_HOUR (60 * STRUTIL_MS_PER_MINUTE)
#define STRUTIL_MS_PER_DAY (24 * STRUTIL_MS_PER_HOUR)

/* Parses a Prometheus duration ("0", "1y2w3d4h5m6s7ms", units in that order,
 * each at most once) into milliseconds. Returns 0, or -EINVAL with
 * `not a valid duration string: "<s>"` written to err (if err != NULL). */
int strutil_parse_duration(const char *s, size_t len, int64_t *ms, buf *err);
/* Formats like model.Duration.String(): "1h30m", "0s", "-5m". Returns the
 * length written to out (NUL-terminated, out needs 32 bytes). */
size_t strutil_format_duration(int64_t ms, char out[32]);

/* Parses a size like units.ParseBase2Bytes: "15MB", "10MiB", "512B", "0".
 * Returns 0, or -EINVAL with the library's message ("units: unknown unit
 * <u> in <s>", "units: invalid <s>") appended to err. */
int strutil_parse_bytes(const char *s, int64_t *out, buf *err);
/* Formats bytes as Base2Bytes.String() does ("15MiB", "0B"); out: 32 bytes. */
size_t strutil_format_bytes(int64_t n, char out[32]);

/* The staleness marker: a NaN with a distinct bit pattern. */
#define STRUTIL_STALE_NAN_BITS 0x7ff0000000000002ULL
double strutil_stale_nan(void);
bool strutil_is_stale_nan(double v);

/* 64-bit hash of bytes (XXH64 algorithm); stable across runs and hosts. */
uint64_t strutil_hash64(const void *p, size_t len, uint64_t seed);

/* MD5 digest (for hashmod relabeling, which must match Prometheus's
 * target sharding exactly); the only user of OpenSSL's libcrypto. */
void strutil_md5(const void *p, size_t len, unsigned char out[16]);

/* Unicode-aware case mapping of UTF-8 text (Go's strings.ToLower/ToUpper);
 * invalid bytes are copied unchanged. Appends to out. */
void strutil_lower(const char *s, size_t len, buf *out);
void strutil_upper(const char *s, size_t len, buf *out);

/* Case-sensitive prefix/suffix tests on (pointer, length) strings. */
bool strutil_has_prefix(const char *s, size_t len, const char *prefix);
bool strutil_has_suffix(const char *s, size_t len, const char *suffix);

#endif
