#include "strutil.h"

#include "expfmt.h"

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <openssl/evp.h>
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
