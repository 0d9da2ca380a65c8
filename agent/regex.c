#define PCRE2_CODE_UNIT_WIDTH 8
#include "regex.h"

#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "expfmt.h"
#include "mem.h"

enum regex_kind {
    REGEX_PCRE,     /* general case */
    REGEX_LITERAL,  /* no metacharacters: byte comparison */
    REGEX_ANY,      /* ".*" */
    REGEX_NONEMPTY, /* ".+" */
};

struct regex {
    enum regex_kind kind;
    char *pattern;
    size_t pattern_len;
    size_t prefix_len; /* literal prefix of every match */
    pcre2_code *code;
    uint32_t captures;
};

/* Match data is per thread: pcre2_match_data is not shareable. */
static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_destroy(void *p)
{
    pcre2_match_data_free(p);
}

/* One match context for every match (read-only once made, so shared by
 * all threads): PCRE2 backtracks, so a pattern like (a|a)* against a long
 * value could otherwise run for a very long time; the limits make such a
 * match stop (as "no match") after a bounded amount of work. */
static pcre2_match_context *match_ctx;
static atomic_uint_fast64_t limit_hits;

static void md_key_init(void)
{
    pthread_key_create(&md_key, md_destroy);
    match_ctx = pcre2_match_context_create(NULL);
    if (match_ctx) {
        pcre2_set_match_limit(match_ctx, REGEX_MATCH_LIMIT);
        pcre2_set_depth_limit(match_ctx, REGEX_DEPTH_LIMIT);
        pcre2_set_heap_limit(match_ctx, REGEX_HEAP_LIMIT_KIB);
    }
}

uint64_t regex_limit_hits(void)
{
    return atomic_load(&limit_hits);
}

/* pcre2_match with the limits; a match stopped by one counts as no match. */
static int match_limited(const regex *re, const char *s, size_t len, pcre2_match_data *md)
{
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, 0, md, match_ctx);
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
        rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT) {
        atomic_fetch_add(&limit_hits, 1);
        return PCRE2_ERROR_NOMATCH;
    }
    return rc;
}

#define MD_PAIRS 64

static pcre2_match_data *thread_match_data(uint32_t pairs)
{
    pthread_once(&md_once, md_key_init);
    pcre2_match_data *md = pthread_getspecific(md_key);
    if (md && pcre2_get_ovector_count(md) >= pairs) return md;
    if (md) pcre2_match_data_free(md);
    md = pcre2_match_data_create(pairs > MD_PAIRS ? pairs : MD_PAIRS, NULL);
    if (!md) return NULL;
    pthread_setspecific(md_key, md);
    return md;
}

static bool is_meta(char c)
{
    return strchr("\\.+*?()|[]{}^$", c) != NULL;
}

static bool is_octal(char c)
{
    return c >= '0' && c <= '7';
}

/* Rejects what RE2 rejects but PCRE2 accepts. Returns a Go-style reason and
 * the offending text via *at and *at_len, or NULL when the pattern is fine. */
static const char *re2_incompatible(const char *p, size_t len, size_t *at, size_t *at_len)
{
    bool in_class = false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '\\') {
            if (i + 1 >= len) return NULL; /* PCRE2 reports the trailing backslash */
            char e = p[i + 1];
            if (e == 'Q') { /* \Q...\E literal text */
                const char *end = NULL;
                for (size_t j = i + 2; j + 1 < len; j++) {
                    if (p[j] == '\\' && p[j + 1] == 'E') {
                        end = p + j;
                        break;
                    }
                }
                if (!end) return NULL;
                i = (size_t)(end - p) + 1;
                continue;
            }
            if (e >= '1' && e <= '9' && !(i + 2 < len && is_octal(e) && is_octal(p[i + 2]))) {
                *at = i;
                *at_len = 2;
                return "invalid escape sequence";
            }
            if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) {
                if (!strchr("aftnrvdDsSwWbBAzxpPQEC", e)) {
                    *at = i;
                    *at_len = 2;
                    return "invalid escape sequence";
                }
            }
            i++;
            continue;
        }
        if (in_class) {
            if (c == ']') in_class = false;
            continue;
        }
        if (c == '[') {
            in_class = true;
            if (i + 1 < len && p[i + 1] == '^') i++;
            if (i + 1 < len && p[i + 1] == ']') i++;
            continue;
        }
        if (c == '(' && i + 2 < len && p[i + 1] == '?') {
            char d = p[i + 2];
            bool lookbehind = d == '<' && i + 3 < len && (p[i + 3] == '=' || p[i + 3] == '!');
            if (d == '=' || d == '!' || d == '>' || d == '|' || d == 'R' || d == '&' || d == '+' ||
                d == 'C' || (d >= '0' && d <= '9') || lookbehind || d == '#') {
                *at = i;
                *at_len = lookbehind ? 4 : 3;
                return "invalid or unsupported Perl syntax";
            }
        }
        if ((c == '*' || c == '+' || c == '?' || c == '}') && i + 1 < len && p[i + 1] == '+') {
            *at = i;
            *at_len = 2;
            return "invalid nested repetition operator";
        }
    }
    return NULL;
}

static const char *go_reason(int code)
{
    switch (code) {
    case PCRE2_ERROR_MISSING_CLOSING_PARENTHESIS:
        return "missing closing )";
    case PCRE2_ERROR_UNMATCHED_CLOSING_PARENTHESIS:
        return "unexpected )";
    case PCRE2_ERROR_MISSING_SQUARE_BRACKET:
        return "missing closing ]";
    case PCRE2_ERROR_QUANTIFIER_INVALID:
    case PCRE2_ERROR_QUANTIFIER_OUT_OF_ORDER:
        return "invalid repeat count";
    case PCRE2_ERROR_END_BACKSLASH:
        return "trailing backslash at end of expression";
    default:
        return NULL;
    }
}

static void compile_error(buf *err, const char *reason, const char *pat, size_t len)
{
    if (!err) return;
    buf_printf(err, "error parsing regexp: %s: `", reason);
    buf_append(err, pat, len);
    buf_putc(err, '`');
}

/* Length of the literal text at the start of every match: the leading
 * run of plain characters, minus the last one when a quantifier follows it;
 * nothing when the pattern has an alternation outside a class (it may not
 * apply to all branches). */
static size_t literal_prefix(const char *p, size_t len)
{
    bool in_class = false;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\\') {
            i++;
            continue;
        }
        if (in_class) {
            if (p[i] == ']') in_class = false;
        } else if (p[i] == '[') {
            in_class = true;
        } else if (p[i] == '|') {
            return 0;
        }
    }
    size_t n = 0;
    while (n < len && !is_meta(p[n])) n++;
    if (n > 0 && n < len && (p[n] == '*' || p[n] == '?' || p[n] == '{')) n--;
    /* Stop before a multi-byte UTF-8 character cut by the quantifier rule. */
    while (n > 0 && ((unsigned char)p[n - 1] & 0xC0) == 0x80) n--;
    if (n > 0 && ((unsigned char)p[n - 1] & 0xC0) == 0xC0) n--;
    return n;
}

const char *regex_literal_prefix(const regex *re, size_t *len)
{
    *len = re->prefix_len;
    return re->pattern;
}

int regex_compile(regex **out, const char *pattern, size_t len, buf *err)
{
    if (len > REGEX_MAX_PATTERN) {
        compile_error(err, "expression too large", pattern, 64);
        return -EINVAL;
    }
    size_t at = 0, at_len = 0;
    const char *why = re2_incompatible(pattern, len, &at, &at_len);
    if (why) {
        if (err) {
            buf_printf(err, "error parsing regexp: %s: `", why);
            buf_append(err, pattern + at, at_len);
            buf_putc(err, '`');
        }
        return -EINVAL;
    }
    regex *re = mem_calloc(1, sizeof *re);
    re->pattern = mem_strndup(pattern, len);
    re->pattern_len = len;

    bool literal = true;
    for (size_t i = 0; i < len; i++) {
        if (is_meta(pattern[i])) literal = false;
    }
    if (literal) {
        re->kind = REGEX_LITERAL;
    } else if (len == 2 && pattern[0] == '.' && pattern[1] == '*') {
        re->kind = REGEX_ANY;
    } else if (len == 2 && pattern[0] == '.' && pattern[1] == '+') {
        re->kind = REGEX_NONEMPTY;
    }
    /* Compile in every case: validation is the same for all, and
     * regex_expand needs the code for capture groups. */
    buf wrapped;
    buf_init(&wrapped, BUF_UNLIMITED);
    buf_puts(&wrapped, "(?:");
    buf_append(&wrapped, pattern, len);
    buf_puts(&wrapped, ")");
    int code;
    PCRE2_SIZE off;
    re->code = pcre2_compile((PCRE2_SPTR)wrapped.data, wrapped.len,
                             PCRE2_UTF | PCRE2_DOTALL | PCRE2_ANCHORED | PCRE2_ENDANCHORED |
                                 PCRE2_DOLLAR_ENDONLY,
                             &code, &off, NULL);
    buf_cleanup(&wrapped);
    if (!re->code) {
        const char *reason = go_reason(code);
        char msg[256];
        if (!reason) {
            pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof msg);
            reason = msg;
        }
        compile_error(err, reason, pattern, len);
        regex_free(re);
        return -EINVAL;
    }
    re->prefix_len = literal_prefix(pattern, len);
    pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
    pcre2_pattern_info(re->code, PCRE2_INFO_CAPTURECOUNT, &re->captures);
    *out = re;
    return 0;
}

void regex_free(regex *re)
{
    if (!re) return;
    pcre2_code_free(re->code);
    mem_free(re->pattern);
    mem_free(re);
}

const char *regex_pattern(const regex *re)
{
    return re->pattern;
}

/* Runs PCRE2; returns the match data on a match, else NULL. */
/* s with every byte that is not part of valid UTF-8 replaced by U+FFFD, as
 * Go's regexp reads such text. Caller frees. */
static char *sanitize_utf8(const char *s, size_t len, size_t *out_len)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (n && i + n <= len && expfmt_utf8_valid(s + i, n)) {
            buf_append(&b, s + i, n);
            i += n;
        } else {
            buf_append(&b, "\xef\xbf\xbd", 3);
            i++;
        }
    }
    return buf_detach(&b, out_len);
}

/* Runs PCRE2; returns the match data on a match, else NULL. Text that is not
 * valid UTF-8 is matched as Go does (each bad byte a U+FFFD); then *subject
 * points to that copy, which the caller frees (else it is s). */
static pcre2_match_data *run(const regex *re, const char *s, size_t len, const char **subject)
{
    *subject = s;
    pcre2_match_data *md = thread_match_data(re->captures + 1);
    if (!md) return NULL;
    int rc = match_limited(re, s, len, md);
    if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21) {
        size_t clen;
        char *copy = sanitize_utf8(s, len, &clen);
        rc = match_limited(re, copy, clen, md);
        *subject = copy;
    }
    return rc >= 0 ? md : NULL;
}

bool regex_match(const regex *re, const char *s, size_t len)
{
    switch (re->kind) {
    case REGEX_LITERAL:
        return len == re->pattern_len && memcmp(s, re->pattern, len) == 0;
    case REGEX_ANY:
        return true;
    case REGEX_NONEMPTY:
        return len > 0;
    case REGEX_PCRE:
        break;
    }
    const char *subject;
    bool m = run(re, s, len, &subject) != NULL;
    if (subject != s) mem_free((char *)subject);
    return m;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Appends capture group `name` (a number or a group name) to out. */
static int append_group(const regex *re, pcre2_match_data *md, const char *s, const char *name,
                        size_t name_len, buf *out)
{
    long idx = -1;
    bool numeric = name_len > 0;
    for (size_t i = 0; i < name_len; i++) {
        if (name[i] < '0' || name[i] > '9') numeric = false;
    }
    if (numeric) {
        idx = 0;
        for (size_t i = 0; i < name_len && idx <= 100000; i++)
            idx = idx * 10 + (name[i] - '0');
    } else {
        char tmp[256];
        if (name_len >= sizeof tmp) return 0;
        memcpy(tmp, name, name_len);
        tmp[name_len] = '\0';
        int n = pcre2_substring_number_from_name(re->code, (PCRE2_SPTR)tmp);
        if (n < 0) return 0;
        idx = n;
    }
    if (idx < 0 || (uint32_t)idx > re->captures) return 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    PCRE2_SIZE a = ov[2 * idx], b = ov[2 * idx + 1];
    if (a == PCRE2_UNSET || b < a) return 0;
    return buf_append(out, s + a, b - a);
}

int regex_expand(const regex *re, const char *s, size_t len, const char *tmpl, size_t tmpl_len,
                 buf *out)
{
    const char *subject;
    pcre2_match_data *md = run(re, s, len, &subject);
    if (!md) {
        if (subject != s) mem_free((char *)subject);
        return 0;
    }
    size_t i = 0;
    int rc = 0;
    while (i < tmpl_len && rc == 0) {
        char c = tmpl[i];
        if (c != '$' || i + 1 >= tmpl_len) {
            size_t j = i;
            while (j < tmpl_len && tmpl[j] != '$')
                j++;
            if (j == i) j = i + 1;
            rc = buf_append(out, tmpl + i, j - i);
            i = j;
            continue;
        }
        char d = tmpl[i + 1];
        if (d == '$') {
            rc = buf_putc(out, '$');
            i += 2;
        } else if (d == '{') {
            size_t j = i + 2;
            while (j < tmpl_len && name_char(tmpl[j]))
                j++;
            if (j < tmpl_len && tmpl[j] == '}' && j > i + 2) {
                rc = append_group(re, md, subject, tmpl + i + 2, j - i - 2, out);
                i = j + 1;
            } else {
                rc = buf_putc(out, '$'); /* malformed: kept literally, as Go does */
                i++;
            }
        } else if (name_char(d)) {
            size_t j = i + 1;
            while (j < tmpl_len && name_char(tmpl[j]))
                j++;
            rc = append_group(re, md, subject, tmpl + i + 1, j - i - 1, out);
            i = j;
        } else {
            rc = buf_putc(out, '$');
            i++;
        }
    }
    if (subject != s) mem_free((char *)subject);
    return rc < 0 ? rc : 1;
}
