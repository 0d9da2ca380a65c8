/* strutil: Prometheus-compatible parsing and formatting of durations, byte
 * sizes and RFC 3339 times; the staleness marker; hashing.
 *
 * These functions reproduce the exact behaviour (and error texts) of the Go
 * libraries Prometheus uses, because users see those texts and tests compare
 * them: model.ParseDuration, time.Parse and Format with time.RFC3339Nano,
 * units.ParseBase2Bytes, strconv.Unquote and Prometheus's
 * util/strutil.Unquote. Floats, names, UTF-8 validity and Go
 * quoting live in exporter/expfmt.h, which exporter/ shares. */
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

/* ---- RFC 3339 times --------------------------------------------------------------------- */

/* Parses s[0..len) as Go's time.Parse(time.RFC3339Nano, s) does:
 * "2006-01-02T15:04:05[.frac](Z|+07:00)", a four-digit year (0000..9999),
 * a valid calendar date (Feb 29 in leap years only), hour 0..23, minute and
 * second 0..59; an optional fraction after '.' or ',' of one or more digits
 * (beyond nine they are read and dropped); then 'Z' or an offset +hh:mm or
 * -hh:mm (hh up to 24 and mm up to 60, as Go allows); nothing after it. 'T'
 * and 'Z' are upper case only. On success *sec gets seconds since the epoch
 * (UTC) and *nsec 0..999999999, and returns 0; otherwise returns -EINVAL and
 * leaves *sec and *nsec alone. */
int strutil_parse_rfc3339(const char *s, size_t len, int64_t *sec, int32_t *nsec);
/* As strutil_parse_rfc3339, but 't' and 'z' may also be lower case (RFC 3339
 * allows it, Go does not), as sidewatch's promtool test runner and Docker
 * stats parser have always accepted. */
int strutil_parse_rfc3339_ci(const char *s, size_t len, int64_t *sec, int32_t *nsec);
/* Formats seconds since the epoch plus nsec (0..999999999) as Go's
 * t.UTC().Format(time.RFC3339Nano): "2024-05-01T10:00:00.25Z", the
 * fraction's trailing zeros trimmed and no fraction when nsec is 0; years
 * outside 0..9999 are written in full ("-0001", "10000"). Any int64 second
 * fits: out (40 bytes) is NUL-terminated; returns the length without NUL. */
size_t strutil_format_rfc3339(int64_t sec, int32_t nsec, char out[40]);

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
/* HMAC-SHA256 of p with key (for signed webhook bodies). Returns 0, or
 * -EIO if libcrypto fails (out is then zeroed). */
int strutil_hmac_sha256(const void *key, size_t key_len, const void *p, size_t len,
                        unsigned char out[32]);

/* Unicode-aware case mapping of UTF-8 text (Go's strings.ToLower/ToUpper);
 * invalid bytes are copied unchanged. Appends to out. */
void strutil_lower(const char *s, size_t len, buf *out);
void strutil_upper(const char *s, size_t len, buf *out);

/* Case-sensitive prefix/suffix tests on (pointer, length) strings. */
bool strutil_has_prefix(const char *s, size_t len, const char *prefix);
bool strutil_has_suffix(const char *s, size_t len, const char *suffix);
/* True if `pattern` is well-formed for Go's filepath.Match/filepath.Glob
 * (false where they return ErrBadPattern, "syntax error in pattern"): a
 * `\` escapes the next character and must not end the pattern; a `[`
 * class is closed, holds at least one range, each end is a valid UTF-8
 * character other than an unescaped '-' or ']', and lo <= hi. */
bool strutil_glob_valid(const char *pattern);

/* Appends the UTF-8 encoding of the rune r. A value that is not a Unicode
 * code point (a surrogate, or above U+10FFFF) is written as U+FFFD, as Go's
 * utf8.AppendRune does. Returns 0, or -E2BIG (out unchanged) at out's limit. */
int strutil_append_rune(buf *out, uint32_t r);

/* ---- Go string literals -------------------------------------------------------------------
 *
 * "..." and '...' with the escapes \a \b \f \n \r \t \v \\ \' \" \xHH \uHHHH
 * \UHHHHHHHH and octal \NNN (\' only inside '...', \" only inside "..."; \x and
 * octal give one byte, \u and \U a UTF-8 encoded code point), and raw `...`
 * without escapes. What is wrong with a literal is one of these problems,
 * each with a static message in Go's words, at the byte offset given: */
enum strutil_unquote_problem {
    /* "not a quoted string": s[0] is no quote; at 0 */
    STRUTIL_UNQUOTE_NOT_QUOTED = 1,
    /* "unterminated quoted string": the input ends before the closing
     * quote (inside an escape too), or "..." or '...' meets a newline; at 0,
     * the opening quote */
    STRUTIL_UNQUOTE_UNTERMINATED,
    /* "unknown escape sequence"; at the backslash */
    STRUTIL_UNQUOTE_UNKNOWN_ESCAPE,
    /* "illegal character in escape sequence"; at the byte that is not a
     * digit of the escape */
    STRUTIL_UNQUOTE_ILLEGAL_CHAR,
    /* "octal escape value > 255"; after the digits */
    STRUTIL_UNQUOTE_OCTAL_RANGE,
    /* "escape sequence is an invalid Unicode code point" (a surrogate or
     * above U+10FFFF); after the digits */
    STRUTIL_UNQUOTE_CODE_POINT,
    /* "illegal rune literal": in STRUTIL_UNQUOTE_GO, '...' does not hold
     * exactly one character; at 0 */
    STRUTIL_UNQUOTE_RUNE_LITERAL,
};

typedef struct strutil_unquote_error {
    enum strutil_unquote_problem problem;
    const char *msg; /* static */
    size_t at;       /* byte offset of the problem in the input */
} strutil_unquote_error;

/* The two dialects of Go-style unquoting Prometheus uses. */
enum strutil_unquote_mode {
    /* Prometheus's util/strutil.Unquote (PromQL strings, label matchers):
     * '...' holds a string like "...", and `...` is taken byte for byte. */
    STRUTIL_UNQUOTE_PROMQL,
    /* Go's strconv.Unquote (promqltest's `expect string`): '...' holds
     * exactly one character, and \r is dropped from `...`. */
    STRUTIL_UNQUOTE_GO,
};

/* Reads the quoted string at the start of s[0..len) (s[0] is its quote:
 * '"', '\'' or '`') and appends its value to out; *end gets the offset just
 * after the closing quote (callers that need the literal to fill s check
 * *end == len). Other bytes are copied as they are, and the value is not
 * checked for valid UTF-8 (\xff gives the byte 0xff): callers that need it
 * check it. Returns 0, -EINVAL with *err filled in (err may be NULL), or
 * -E2BIG at out's limit; on failure out is as it was and *end is not set. */
int strutil_go_unquote(const char *s, size_t len, enum strutil_unquote_mode mode, buf *out,
                       size_t *end, strutil_unquote_error *err);

/* Reads the one escape sequence at s[0..len) (s[0] is the backslash) inside
 * a string quoted with `quote`, and appends its value to out (out may be NULL
 * to only check it). Returns the bytes the escape takes (2 to 10), -EINVAL
 * with *err filled in (err may be NULL; offsets count from the backslash,
 * and STRUTIL_UNQUOTE_UNTERMINATED is at len), or -E2BIG at out's limit
 * (out unchanged). */
int strutil_go_unescape(const char *s, size_t len, char quote, buf *out,
                        strutil_unquote_error *err);

/* ---- varints (Go's encoding/binary: LEB128, signed ones zigzag) ---------------
 *
 * strutil_put_uvarint writes v into p (room for 10 bytes) and returns the
 * length. The getters read one varint from *p (advanced past it), never
 * beyond end: 0, or -EINVAL for a truncated varint or one longer than 64
 * bits' worth of groups. Inline: the store's write-ahead rows and chunk
 * codecs call them per sample. */
static inline size_t strutil_put_uvarint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static inline int strutil_get_uvarint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end) return -22; /* -EINVAL, without <errno.h> here */
        uint8_t c = *(*p)++;
        r |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -22;
}

static inline int strutil_get_varint(const uint8_t **p, const uint8_t *end, int64_t *v)
{
    uint64_t u;
    if (strutil_get_uvarint(p, end, &u) < 0) return -22;
    *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return 0;
}

#endif
