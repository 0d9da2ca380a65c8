#include "strutil.h"

#include "expfmt.h"
#include "mem.h"

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <wchar.h>
#include <wctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- durations (model.ParseDuration) ---------------------------------- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void dur_error(buf *err, const char *s, size_t len)
{
    if (!err) return;
    buf_puts(err, "not a valid duration string: ");
    expfmt_quote_go(buf_sink, err, s, len);
}

int strutil_parse_duration(const char *s, size_t len, int64_t *ms, buf *err)
{
    static const struct {
        const char *name;
        int pos;
        uint64_t mult_ns;
    } units[] = {
        {"y", 1, 365ULL * 24 * 3600 * 1000000000ULL},
        {"w", 2, 7ULL * 24 * 3600 * 1000000000ULL},
        {"d", 3, 24ULL * 3600 * 1000000000ULL},
        {"h", 4, 3600ULL * 1000000000ULL},
        {"m", 5, 60ULL * 1000000000ULL},
        {"s", 6, 1000000000ULL},
        {"ms", 7, 1000000ULL},
    };
    if (len == 1 && s[0] == '0') {
        *ms = 0;
        return 0;
    }
    if (len == 0) {
        if (err) buf_puts(err, "empty duration string");
        return -EINVAL;
    }
    uint64_t total_ns = 0;
    int last_pos = 0;
    size_t i = 0;
    while (i < len) {
        if (!is_digit(s[i])) {
            dur_error(err, s, len);
            return -EINVAL;
        }
        uint64_t v = 0;
        size_t j = i;
        for (; j < len && is_digit(s[j]); j++) {
            if (v > (UINT64_MAX - 9) / 10) {
                dur_error(err, s, len);
                return -EINVAL;
            }
            v = v * 10 + (uint64_t)(s[j] - '0');
        }
        size_t k = j;
        while (k < len && !is_digit(s[k]))
            k++;
        if (k == j) {
            dur_error(err, s, len);
            return -EINVAL;
        }
        int u = -1;
        for (int n = 0; n < 7; n++) {
            if (strlen(units[n].name) == k - j && memcmp(units[n].name, s + j, k - j) == 0) u = n;
        }
        if (u < 0) {
            if (err) {
                buf_puts(err, "unknown unit ");
                expfmt_quote_go(buf_sink, err, s + j, k - j);
                buf_puts(err, " in duration ");
                expfmt_quote_go(buf_sink, err, s, len);
            }
            return -EINVAL;
        }
        if (units[u].pos <= last_pos) {
            dur_error(err, s, len);
            return -EINVAL;
        }
        last_pos = units[u].pos;
        if (v > (1ULL << 63) / units[u].mult_ns) {
            if (err) buf_puts(err, "duration out of range");
            return -ERANGE;
        }
        total_ns += v * units[u].mult_ns;
        if (total_ns > (uint64_t)INT64_MAX) {
            if (err) buf_puts(err, "duration out of range");
            return -ERANGE;
        }
        i = k;
    }
    *ms = (int64_t)(total_ns / 1000000ULL);
    return 0;
}

size_t strutil_format_duration(int64_t ms, char out[32])
{
    size_t n = 0;
    if (ms == 0) {
        memcpy(out, "0s", 3);
        return 2;
    }
    uint64_t v = ms < 0 ? (uint64_t)(-(ms + 1)) + 1 : (uint64_t)ms;
    if (ms < 0) out[n++] = '-';
    static const struct {
        const char *unit;
        uint64_t mult;
        bool exact;
    } steps[] = {
        {"y", 365ULL * 24 * 3600 * 1000, true},
        {"w", 7ULL * 24 * 3600 * 1000, true},
        {"d", 24ULL * 3600 * 1000, false},
        {"h", 3600ULL * 1000, false},
        {"m", 60ULL * 1000, false},
        {"s", 1000, false},
        {"ms", 1, false},
    };
    for (int i = 0; i < 7; i++) {
        if (steps[i].exact && v % steps[i].mult != 0) continue;
        uint64_t q = v / steps[i].mult;
        if (q > 0) {
            n += (size_t)snprintf(out + n, 32 - n, "%" PRIu64 "%s", q, steps[i].unit);
            v -= q * steps[i].mult;
        }
    }
    return n;
}

/* ---- byte sizes (units.ParseBase2Bytes) -------------------------------- */

static int bytes_unit(const char *u, size_t len, bool old_style, double *mult)
{
    static const char prefixes[] = "KMGTPE";
    if (len == 1 && u[0] == 'B') {
        *mult = 1;
        return 0;
    }
    double m = 1024;
    for (int i = 0; i < 6; i++, m *= 1024) {
        if (old_style) {
            if (len == 2 && u[0] == prefixes[i] && u[1] == 'B') {
                *mult = m;
                return 0;
            }
        } else if (len == 3 && u[0] == prefixes[i] && u[1] == 'i' && u[2] == 'B') {
            *mult = m;
            return 0;
        }
    }
    return -EINVAL;
}

static int parse_unit(const char *orig, bool old_style, int64_t *out, buf *err)
{
    const char *s = orig;
    bool neg = false;
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (!*s) {
        if (err) buf_printf(err, "units: invalid %s", orig);
        return -EINVAL;
    }
    double f = 0;
    while (*s) {
        if (!(*s == '.' || is_digit(*s))) {
            if (err) buf_printf(err, "units: invalid %s", orig);
            return -EINVAL;
        }
        double g = 0;
        const char *p = s;
        while (is_digit(*s))
            g = g * 10 + (*s++ - '0');
        bool pre = s != p, post = false;
        if (*s == '.') {
            s++;
            double scale = 1;
            p = s;
            while (is_digit(*s)) {
                scale *= 10;
                g += (*s++ - '0') / scale;
            }
            post = s != p;
        }
        if (!pre && !post) {
            if (err) buf_printf(err, "units: invalid %s", orig);
            return -EINVAL;
        }
        const char *u = s;
        while (*s && *s != '.' && !is_digit(*s))
            s++;
        double mult;
        if (bytes_unit(u, (size_t)(s - u), old_style, &mult) < 0) {
            if (err) buf_printf(err, "units: unknown unit %.*s in %s", (int)(s - u), u, orig);
            return -EINVAL;
        }
        f += g * mult;
    }
    if (neg) f = -f;
    if (f < -9223372036854775808.0 || f >= 9223372036854775808.0) {
        if (err) buf_puts(err, "units: overflow parsing unit");
        return -ERANGE;
    }
    *out = (int64_t)f;
    return 0;
}

int strutil_parse_bytes(const char *s, int64_t *out, buf *err)
{
    if (parse_unit(s, false, out, NULL) == 0) return 0;
    return parse_unit(s, true, out, err);
}

size_t strutil_format_bytes(int64_t n, char out[32])
{
    static const char *const suffixes[] = {"", "K", "M", "G", "T", "P", "E"};
    char parts[7][24];
    int used[7] = {0};
    for (int i = 0; i < 7; i++) {
        if (n % 1024 != 0 || (i == 0 && n == 0)) {
            snprintf(parts[6 - i], sizeof parts[0], "%" PRId64 "%s%s", n % 1024, suffixes[i],
                     i == 0 ? "B" : "iB");
            used[6 - i] = 1;
        }
        n /= 1024;
        if (n == 0) break;
    }
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < 7; i++) {
        if (used[i]) len += (size_t)snprintf(out + len, 32 - len, "%s", parts[i]);
    }
    return len;
}

double strutil_stale_nan(void)
{
    uint64_t bits = STRUTIL_STALE_NAN_BITS;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

bool strutil_is_stale_nan(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits == STRUTIL_STALE_NAN_BITS;
}

/* ---- hashing (XXH64) ----------------------------------------------------- */

#define P1 11400714785074694791ULL
#define P2 14029467366897019727ULL
#define P3 1609587929392839161ULL
#define P4 9650029242287828579ULL
#define P5 2870177450012600261ULL

static inline uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t round64(uint64_t acc, uint64_t in)
{
    acc += in * P2;
    acc = rotl(acc, 31);
    return acc * P1;
}

static inline uint64_t merge64(uint64_t acc, uint64_t v)
{
    acc ^= round64(0, v);
    return acc * P1 + P4;
}

uint64_t strutil_hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data, *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        const unsigned char *limit = end - 32;
        do {
            v1 = round64(v1, rd64(p));
            v2 = round64(v2, rd64(p + 8));
            v3 = round64(v3, rd64(p + 16));
            v4 = round64(v4, rd64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = merge64(h, v1);
        h = merge64(h, v2);
        h = merge64(h, v3);
        h = merge64(h, v4);
    } else {
        h = seed + P5;
    }
    h += (uint64_t)len;
    while (p + 8 <= end) {
        h ^= round64(0, rd64(p));
        h = rotl(h, 27) * P1 + P4;
        p += 8;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)rd32(p) * P1;
        h = rotl(h, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        h ^= (*p++) * P5;
        h = rotl(h, 11) * P1;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

bool strutil_has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

bool strutil_has_suffix(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

void strutil_md5(const void *p, size_t len, unsigned char out[16])
{
    unsigned int n = 16;
    EVP_Digest(p, len, out, &n, EVP_md5(), NULL);
}

int strutil_hmac_sha256(const void *key, size_t key_len, const void *p, size_t len,
                        unsigned char out[32])
{
    unsigned int n = 32;
    static const unsigned char nothing[1];
    if (!HMAC(EVP_sha256(), key_len ? key : nothing, (int)key_len, len ? p : nothing, len, out,
              &n) ||
        n != 32) {
        memset(out, 0, 32);
        return -EIO;
    }
    return 0;
}

/* One character of a glob class (Go's getEsc): advances *pp past it. */
static bool glob_class_char(const char **pp, uint32_t *r)
{
    const unsigned char *p = (const unsigned char *)*pp;
    if (*p == '\0' || *p == '-' || *p == ']') return false;
    if (*p == '\\') {
        p++;
        if (*p == '\0') return false;
    }
    size_t n = *p < 0x80             ? 1
               : (*p & 0xe0) == 0xc0 ? 2
               : (*p & 0xf0) == 0xe0 ? 3
               : (*p & 0xf8) == 0xf0 ? 4
                                     : 0;
    if (n == 0) return false;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return false;
    if (!expfmt_utf8_valid((const char *)p, n)) return false;
    uint32_t cp = n == 1   ? p[0]
                  : n == 2 ? (p[0] & 0x1fu)
                  : n == 3 ? (p[0] & 0x0fu)
                           : (p[0] & 0x07u);
    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (p[i] & 0x3fu);
    *r = cp;
    *pp = (const char *)(p + n);
    return true;
}

bool strutil_glob_valid(const char *p)
{
    while (*p) {
        if (*p == '\\') {
            if (p[1] == '\0') return false;
            p += 2;
            continue;
        }
        if (*p != '[') {
            p++;
            continue;
        }
        p++;
        if (*p == '^') p++;
        for (int nrange = 0;; nrange++) {
            if (*p == ']' && nrange > 0) {
                p++;
                break;
            }
            uint32_t lo, hi;
            if (!glob_class_char(&p, &lo)) return false;
            hi = lo;
            if (*p == '-') {
                p++;
                if (!glob_class_char(&p, &hi) || hi < lo) return false;
            }
        }
    }
    return true;
}

static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void utf8_locale_init(void)
{
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static void map_case(const char *s, size_t len, buf *out, bool upper)
{
    pthread_once(&utf8_once, utf8_locale_init);
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 || !utf8_locale) {
            char m = (char)c;
            if (upper && c >= 'a' && c <= 'z') m = (char)(c - 32);
            if (!upper && c >= 'A' && c <= 'Z') m = (char)(c + 32);
            buf_putc(out, m);
            i++;
            continue;
        }
        mbstate_t st;
        memset(&st, 0, sizeof st);
        wchar_t wc;
        locale_t old = uselocale(utf8_locale);
        size_t n = mbrtowc(&wc, s + i, len - i, &st);
        if (n == (size_t)-1 || n == (size_t)-2 || n == 0) {
            uselocale(old);
            buf_putc(out, (char)c);
            i++;
            continue;
        }
        wint_t m =
            upper ? towupper_l((wint_t)wc, utf8_locale) : towlower_l((wint_t)wc, utf8_locale);
        char tmp[MB_LEN_MAX];
        memset(&st, 0, sizeof st);
        size_t k = wcrtomb(tmp, (wchar_t)m, &st);
        uselocale(old);
        if (k == (size_t)-1)
            buf_append(out, s + i, n);
        else
            buf_append(out, tmp, k);
        i += n;
    }
}

void strutil_lower(const char *s, size_t len, buf *out)
{
    map_case(s, len, out, false);
}

void strutil_upper(const char *s, size_t len, buf *out)
{
    map_case(s, len, out, true);
}

int strutil_append_rune(buf *out, uint32_t r)
{
    char e[4];
    size_t n;
    if (r > 0x10FFFF || (r >= 0xD800 && r < 0xE000)) r = 0xFFFD;
    if (r < 0x80) {
        e[0] = (char)r;
        n = 1;
    } else if (r < 0x800) {
        e[0] = (char)(0xC0 | (r >> 6));
        e[1] = (char)(0x80 | (r & 0x3F));
        n = 2;
    } else if (r < 0x10000) {
        e[0] = (char)(0xE0 | (r >> 12));
        e[1] = (char)(0x80 | ((r >> 6) & 0x3F));
        e[2] = (char)(0x80 | (r & 0x3F));
        n = 3;
    } else {
        e[0] = (char)(0xF0 | (r >> 18));
        e[1] = (char)(0x80 | ((r >> 12) & 0x3F));
        e[2] = (char)(0x80 | ((r >> 6) & 0x3F));
        e[3] = (char)(0x80 | (r & 0x3F));
        n = 4;
    }
    return buf_append(out, e, n);
}

/* ---- Go string literals ---------------------------------------------------------------------- */

static int unquote_fail(strutil_unquote_error *err, enum strutil_unquote_problem problem, size_t at)
{
    static const char *const msgs[] = {
        [STRUTIL_UNQUOTE_NOT_QUOTED] = "not a quoted string",
        [STRUTIL_UNQUOTE_UNTERMINATED] = "unterminated quoted string",
        [STRUTIL_UNQUOTE_UNKNOWN_ESCAPE] = "unknown escape sequence",
        [STRUTIL_UNQUOTE_ILLEGAL_CHAR] = "illegal character in escape sequence",
        [STRUTIL_UNQUOTE_OCTAL_RANGE] = "octal escape value > 255",
        [STRUTIL_UNQUOTE_CODE_POINT] = "escape sequence is an invalid Unicode code point",
        [STRUTIL_UNQUOTE_RUNE_LITERAL] = "illegal rune literal",
    };
    if (err) {
        err->problem = problem;
        err->msg = msgs[problem];
        err->at = at;
    }
    return -EINVAL;
}

static int digit_value(char c, uint32_t base)
{
    uint32_t d;
    if (c >= '0' && c <= '9')
        d = (uint32_t)(c - '0');
    else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        d = (uint32_t)((c | 0x20) - 'a' + 10);
    else
        return -1;
    return d < base ? (int)d : -1;
}

int strutil_go_unescape(const char *s, size_t len, char quote, buf *out, strutil_unquote_error *err)
{
    if (len < 2) return unquote_fail(err, STRUTIL_UNQUOTE_UNTERMINATED, len);
    char c = s[1], v = 0;
    int digits = 0;
    uint32_t base = 16;
    switch (c) {
    case 'a':
        v = '\a';
        break;
    case 'b':
        v = '\b';
        break;
    case 'f':
        v = '\f';
        break;
    case 'n':
        v = '\n';
        break;
    case 'r':
        v = '\r';
        break;
    case 't':
        v = '\t';
        break;
    case 'v':
        v = '\v';
        break;
    case '\\':
        v = '\\';
        break;
    case '\'':
    case '"':
        if (c != quote) return unquote_fail(err, STRUTIL_UNQUOTE_UNKNOWN_ESCAPE, 0);
        v = c;
        break;
    case 'x':
        digits = 2;
        break;
    case 'u':
        digits = 4;
        break;
    case 'U':
        digits = 8;
        break;
    default:
        if (c < '0' || c > '7') return unquote_fail(err, STRUTIL_UNQUOTE_UNKNOWN_ESCAPE, 0);
        digits = 3;
        base = 8;
        break;
    }
    if (!digits) return out && buf_putc(out, v) < 0 ? -E2BIG : 2;

    size_t i = base == 8 ? 1 : 2; /* an octal escape starts with its first digit */
    uint32_t x = 0;
    for (int k = 0; k < digits; k++, i++) {
        if (i >= len) return unquote_fail(err, STRUTIL_UNQUOTE_UNTERMINATED, len);
        int d = digit_value(s[i], base);
        if (d < 0) return unquote_fail(err, STRUTIL_UNQUOTE_ILLEGAL_CHAR, i);
        x = x * base + (uint32_t)d;
    }
    int rc = 0;
    if (c == 'x' || base == 8) {
        if (x > 255) return unquote_fail(err, STRUTIL_UNQUOTE_OCTAL_RANGE, i);
        if (out) rc = buf_putc(out, (char)x);
    } else {
        if (x > 0x10FFFF || (x >= 0xD800 && x < 0xE000))
            return unquote_fail(err, STRUTIL_UNQUOTE_CODE_POINT, i);
        if (out) rc = strutil_append_rune(out, x);
    }
    return rc < 0 ? rc : (int)i;
}

/* The inside of `...` up to the closing quote at s[close]; 0 or -E2BIG. */
static int unquote_raw(const char *s, size_t close, bool drop_cr, buf *out)
{
    for (size_t i = 1; i < close;) {
        size_t k = i;
        while (k < close && !(drop_cr && s[k] == '\r'))
            k++;
        int rc = buf_append(out, s + i, k - i);
        if (rc < 0) return rc;
        i = k + 1;
    }
    return 0;
}

/* "..." or '...'; 0 with *close the offset of the closing quote, -EINVAL
 * or -E2BIG. */
static int unquote_escaped(const char *s, size_t len, bool one_char, buf *out, size_t *close,
                           strutil_unquote_error *err)
{
    char q = s[0];
    size_t i = 1, chars = 0;
    while (i < len && s[i] != q && s[i] != '\n') {
        if (s[i] == '\\') {
            int n = strutil_go_unescape(s + i, len - i, q, out, err);
            if (n < 0) {
                if (n == -EINVAL && err)
                    err->at = err->problem == STRUTIL_UNQUOTE_UNTERMINATED ? 0 : i + err->at;
                return n;
            }
            i += (size_t)n;
            chars++;
            continue;
        }
        /* Plain bytes; a character is a lead byte and the continuation bytes
         * after it. */
        size_t k = i;
        for (; k < len && s[k] != q && s[k] != '\n' && s[k] != '\\'; k++) {
            if (((unsigned char)s[k] & 0xC0) != 0x80 || !((unsigned char)s[k - 1] & 0x80)) chars++;
        }
        int rc = buf_append(out, s + i, k - i);
        if (rc < 0) return rc;
        i = k;
    }
    if (i >= len || s[i] != q) return unquote_fail(err, STRUTIL_UNQUOTE_UNTERMINATED, 0);
    if (one_char && chars != 1) return unquote_fail(err, STRUTIL_UNQUOTE_RUNE_LITERAL, 0);
    *close = i;
    return 0;
}

int strutil_go_unquote(const char *s, size_t len, enum strutil_unquote_mode mode, buf *out,
                       size_t *end, strutil_unquote_error *err)
{
    if (len == 0 || (s[0] != '"' && s[0] != '\'' && s[0] != '`'))
        return unquote_fail(err, STRUTIL_UNQUOTE_NOT_QUOTED, 0);
    size_t mark = out->len, close;
    int rc;
    if (s[0] == '`') {
        const char *c = memchr(s + 1, '`', len - 1);
        if (!c) return unquote_fail(err, STRUTIL_UNQUOTE_UNTERMINATED, 0);
        close = (size_t)(c - s);
        /* Go drops carriage returns from raw strings; Prometheus does not. */
        rc = unquote_raw(s, close, mode == STRUTIL_UNQUOTE_GO, out);
    } else {
        rc = unquote_escaped(s, len, mode == STRUTIL_UNQUOTE_GO && s[0] == '\'', out, &close, err);
    }
    if (rc < 0) {
        buf_truncate(out, mark);
        return rc;
    }
    *end = close + 1;
    return 0;
}

/* ---- RFC 3339 times ---------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * algorithms); m 1..12, d 1..31. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* n decimal digits at s into *v; false if any is not a digit. */
static bool fixed_digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i])) return false;
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

int strutil_parse_rfc3339(const char *s, size_t len, int64_t *sec, int32_t *nsec)
{
    int y, mo, d, h, mi, se;
    if (len < 20 || !fixed_digits(s, 4, &y) || s[4] != '-' || !fixed_digits(s + 5, 2, &mo) ||
        s[7] != '-' || !fixed_digits(s + 8, 2, &d) || s[10] != 'T' ||
        !fixed_digits(s + 11, 2, &h) || s[13] != ':' || !fixed_digits(s + 14, 2, &mi) ||
        s[16] != ':' || !fixed_digits(s + 17, 2, &se))
        return -EINVAL;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 ||
        se > 59)
        return -EINVAL;
    size_t i = 19;
    int32_t frac = 0;
    if (i + 1 < len && (s[i] == '.' || s[i] == ',') && is_digit(s[i + 1])) {
        int nd = 0;
        for (i++; i < len && is_digit(s[i]); i++, nd++) {
            if (nd < 9) frac = frac * 10 + (s[i] - '0');
        }
        for (; nd < 9; nd++)
            frac *= 10;
    }
    int off = 0, oh, om;
    if (i + 1 == len && s[i] == 'Z') {
        /* UTC */
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':' &&
               fixed_digits(s + i + 1, 2, &oh) && fixed_digits(s + i + 4, 2, &om) && oh <= 24 &&
               om <= 60) {
        off = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    } else {
        return -EINVAL;
    }
    *sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    *nsec = frac;
    return 0;
}

int strutil_parse_rfc3339_ci(const char *s, size_t len, int64_t *sec, int32_t *nsec)
{
    if (len < 20 || (s[10] != 't' && s[len - 1] != 'z'))
        return strutil_parse_rfc3339(s, len, sec, nsec);
    char *c = mem_malloc(len);
    memcpy(c, s, len);
    if (c[10] == 't') c[10] = 'T';
    if (c[len - 1] == 'z') c[len - 1] = 'Z';
    int rc = strutil_parse_rfc3339(c, len, sec, nsec);
    mem_free(c);
    return rc;
}

size_t strutil_format_rfc3339(int64_t sec, int32_t nsec, char out[40])
{
    /* Floor division without overflow at INT64_MIN. */
    int64_t days = sec / 86400, rem = sec % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    uint64_t uy = y < 0 ? (uint64_t)0 - (uint64_t)y : (uint64_t)y;
    int n = snprintf(out, 40, "%s%04" PRIu64 "-%02d-%02dT%02d:%02d:%02d", y < 0 ? "-" : "", uy, m,
                     d, (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
    if (nsec > 0) {
        n += snprintf(out + n, 40 - (size_t)n, ".%09" PRId32, nsec);
        while (out[n - 1] == '0')
            n--;
    }
    out[n++] = 'Z';
    out[n] = '\0';
    return (size_t)n;
}
