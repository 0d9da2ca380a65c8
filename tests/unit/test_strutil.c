/* Unit tests for strutil (durations, byte sizes, hashing, Go string
 * literals, RFC 3339 times) and the shared float/quote helpers in
 * exporter/expfmt, checked against the outputs of the Go functions
 * Prometheus uses. */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <time.h>

#include "buf.h"
#include "expfmt.h"
#include "strutil.h"

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t ms;
    } good[] = {
        {"0", 0},
        {"1s", 1000},
        {"5m", 300000},
        {"1h30m", 5400000},
        {"100ms", 100},
        {"1d", 86400000},
        {"1w", 604800000},
        {"1y", 31536000000LL},
        {"2h45m10s", 9910000},
        {"1m0s", 60000},
        {"0s", 0},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = -1;
        buf err;
        buf_init(&err, 1024);
        assert_int_equal(strutil_parse_duration(good[i].in, strlen(good[i].in), &ms, &err), 0);
        assert_int_equal(ms, good[i].ms);
        buf_cleanup(&err);
    }
    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"", "empty duration string"},
        {"1", "not a valid duration string: \"1\""},
        {"1m1h", "not a valid duration string: \"1m1h\""},
        {"-1s", "not a valid duration string: \"-1s\""},
        {"1.5s", "unknown unit \".\" in duration \"1.5s\""},
        {"5x", "unknown unit \"x\" in duration \"5x\""},
        {"1s1s", "not a valid duration string: \"1s1s\""},
        {"300y", "duration out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms;
        buf err;
        buf_init(&err, 1024);
        assert_true(strutil_parse_duration(bad[i].in, strlen(bad[i].in), &ms, &err) < 0);
        assert_string_equal(buf_cstr(&err), bad[i].msg);
        buf_cleanup(&err);
    }
}

static void test_format_duration(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *out;
    } cases[] = {
        {0, "0s"},          {1000, "1s"},      {5400000, "1h30m"},    {86400000, "1d"},
        {90000000, "1d1h"}, {604800000, "1w"}, {31536000000LL, "1y"}, {100, "100ms"},
        {1500, "1s500ms"},  {-300000, "-5m"},  {93600000, "1d2h"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        strutil_format_duration(cases[i].ms, out);
        assert_string_equal(out, cases[i].out);
    }
}

static void test_parse_bytes(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t v;
    } good[] = {
        {"0", 0},      {"15MB", 15 << 20}, {"10MiB", 10 << 20}, {"512B", 512},
        {"1KB", 1024}, {"1.5KB", 1536},    {"1GB", 1LL << 30},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t v;
        assert_int_equal(strutil_parse_bytes(good[i].in, &v, NULL), 0);
        assert_int_equal(v, good[i].v);
    }
    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"100", "units: unknown unit  in 100"},
        {"10XB", "units: unknown unit XB in 10XB"},
        {"", "units: invalid "},
        {"MB", "units: invalid MB"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v;
        buf err;
        buf_init(&err, 1024);
        assert_true(strutil_parse_bytes(bad[i].in, &v, &err) < 0);
        assert_string_equal(buf_cstr(&err), bad[i].msg);
        buf_cleanup(&err);
    }
    char out[32];
    strutil_format_bytes(15 << 20, out);
    assert_string_equal(out, "15MiB");
    strutil_format_bytes(0, out);
    assert_string_equal(out, "0B");
    strutil_format_bytes(1536, out);
    assert_string_equal(out, "1KiB512B");
}

/* Expected strings are what Go's strconv.FormatFloat(f, 'g', -1, 64) prints. */
static void test_format_float(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *out;
    } cases[] = {
        {0, "0"},
        {1, "1"},
        {-2.5, "-2.5"},
        {100000, "100000"},
        {1000000, "1e+06"},
        {1234567, "1.234567e+06"},
        {0.0001, "0.0001"},
        {0.00001, "1e-05"},
        {8.3835e-05, "8.3835e-05"},
        {0.1, "0.1"},
        {1.0 / 3, "0.3333333333333333"},
        {123456.789, "123456.789"},
        {1e21, "1e+21"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {5e-324, "5e-324"},
        {3.886707e+06, "3.886707e+06"},
        {1520872607.123, "1.520872607123e+09"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[EXPFMT_FLOAT_MAX];
        expfmt_format_float(cases[i].v, out);
        assert_string_equal(out, cases[i].out);
    }
    char out[EXPFMT_FLOAT_MAX];
    expfmt_format_om_float(1, out);
    assert_string_equal(out, "1.0");
    expfmt_format_om_float(0.5, out);
    assert_string_equal(out, "0.5");
    expfmt_format_om_float(1e6, out);
    assert_string_equal(out, "1e+06");
    expfmt_format_om_float(INFINITY, out);
    assert_string_equal(out, "+Inf");
}

static void test_parse_float(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        double v;
    } good[] = {
        {"1", 1},
        {"-2.5", -2.5},
        {"1e3", 1000},
        {".5", 0.5},
        {"5.", 5},
        {"+Inf", INFINITY},
        {"-inf", -INFINITY},
        {"Infinity", INFINITY},
        {"1E-2", 0.01},
        {"0.000118953", 0.000118953},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        double v;
        assert_int_equal(expfmt_parse_float(good[i].in, strlen(good[i].in), &v), 0);
        assert_true(v == good[i].v);
    }
    double v;
    assert_int_equal(expfmt_parse_float("NaN", 3, &v), 0);
    assert_true(isnan(v));
    assert_int_equal(expfmt_parse_float("nan", 3, &v), 0);
    static const char *bad[] = {"",     "true",  "1_2",   "0x1f", "1e",
                                "+nan", "infin", "1.2.3", " 1",   "--1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(expfmt_parse_float(bad[i], strlen(bad[i]), &v), -EINVAL);
    }
    assert_int_equal(expfmt_parse_float("1e400", 5, &v), -ERANGE);
    buf err;
    buf_init(&err, 1024);
    expfmt_float_error(buf_sink, &err, "true", 4, -EINVAL);
    assert_string_equal(buf_cstr(&err), "strconv.ParseFloat: parsing \"true\": invalid syntax");
    buf_cleanup(&err);
}

static void test_quote_go(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"abc", 3, "\"abc\""},          {"a\"b\\c", 5, "\"a\\\"b\\\\c\""},
        {"\n\t", 2, "\"\\n\\t\""},      {"\xff", 1, "\"\\xff\""},
        {"a\0b", 3, "\"a\\x00b\""},     {"\xe6\xb8\xac", 3, "\"\xe6\xb8\xac\""},
        {"\xc2\xa0", 2, "\"\\u00a0\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf b;
        buf_init(&b, 1024);
        expfmt_quote_go(buf_sink, &b, cases[i].in, cases[i].len);
        assert_string_equal(buf_cstr(&b), cases[i].out);
        buf_cleanup(&b);
    }
}

static void test_utf8_and_names(void **state)
{
    (void)state;
    assert_true(expfmt_utf8_valid("abc", 3));
    assert_true(expfmt_utf8_valid("\xe6\xb8\xac\xe8\xa9\xa6", 6));
    assert_false(expfmt_utf8_valid("\xff", 1));
    assert_false(expfmt_utf8_valid("\xc0\x80", 2));     /* overlong */
    assert_false(expfmt_utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
    assert_false(expfmt_utf8_valid("\xe6\xb8", 2));     /* truncated */
    assert_true(expfmt_legacy_metric_name("a:b_c1", 6));
    assert_false(expfmt_legacy_label_name("a:b", 3));
    assert_false(expfmt_legacy_label_name("1a", 2));
    assert_false(expfmt_legacy_label_name("", 0));
}

static void test_hash_and_stale(void **state)
{
    (void)state;
    /* XXH64 reference values (seed 0). */
    assert_true(strutil_hash64("", 0, 0) == 0xEF46DB3751D8E999ULL);
    assert_true(strutil_hash64("abc", 3, 0) == 0x44BC2CF5AD770999ULL);
    const char *long_s = "Nobody inspects the spammish repetition";
    assert_true(strutil_hash64(long_s, strlen(long_s), 0) == 0xFBCEA83C8A378BF1ULL);
    assert_true(strutil_is_stale_nan(strutil_stale_nan()));
    assert_false(strutil_is_stale_nan(NAN));
    assert_true(isnan(strutil_stale_nan()));
}

/* String literal with its length (for NUL bytes and byte counts). */
#define LIT(x) x, sizeof(x) - 1

static void test_append_rune(void **state)
{
    (void)state;
    static const struct {
        uint32_t r;
        const char *out;
        size_t len;
    } cases[] = {
        {'A', LIT("A")},
        {0, LIT("\0")},
        {0x7F, LIT("\x7f")},
        {0x80, LIT("\xc2\x80")},
        {0xE4, LIT("\xc3\xa4")},
        {0x7FF, LIT("\xdf\xbf")},
        {0x800, LIT("\xe0\xa0\x80")},
        {0x20AC, LIT("\xe2\x82\xac")},
        {0xD7FF, LIT("\xed\x9f\xbf")},
        {0xE000, LIT("\xee\x80\x80")},
        {0xFFFF, LIT("\xef\xbf\xbf")},
        {0x10000, LIT("\xf0\x90\x80\x80")},
        {0x1F600, LIT("\xf0\x9f\x98\x80")},
        {0x10FFFF, LIT("\xf4\x8f\xbf\xbf")},
        /* not code points: U+FFFD, as Go's utf8.AppendRune */
        {0xD800, LIT("\xef\xbf\xbd")},
        {0xDFFF, LIT("\xef\xbf\xbd")},
        {0x110000, LIT("\xef\xbf\xbd")},
        {0xFFFFFFFF, LIT("\xef\xbf\xbd")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf b;
        buf_init(&b, 1024);
        buf_putc(&b, '>');
        assert_int_equal(strutil_append_rune(&b, cases[i].r), 0);
        assert_int_equal(b.len, cases[i].len + 1);
        assert_memory_equal(b.data + 1, cases[i].out, cases[i].len);
        buf_cleanup(&b);
    }
    /* At the buffer's limit: -E2BIG, nothing half written. */
    buf b;
    buf_init(&b, 2);
    buf_putc(&b, 'x');
    assert_int_equal(strutil_append_rune(&b, 0x20AC), -E2BIG);
    assert_int_equal(b.len, 1);
    assert_int_equal(strutil_append_rune(&b, 'y'), 0);
    assert_string_equal(buf_cstr(&b), "xy");
    buf_cleanup(&b);
}

static void test_go_unquote(void **state)
{
    (void)state;
    enum { P = STRUTIL_UNQUOTE_PROMQL, G = STRUTIL_UNQUOTE_GO };
    static const struct {
        int mode;
        const char *in;
        size_t in_len;
        const char *out;
        size_t out_len;
        size_t end;
    } good[] = {
        {P, LIT("\"abc\""), LIT("abc"), 5},
        {P, LIT("\"\""), LIT(""), 2},
        {P, LIT("''"), LIT(""), 2},
        {P, LIT("``"), LIT(""), 2},
        /* every escape letter */
        {P, LIT("\"\\a\\b\\f\\n\\r\\t\\v\\\\\\\"\""), LIT("\a\b\f\n\r\t\v\\\""), 20},
        {P, LIT("'\\''"), LIT("'"), 4},
        {P, LIT("'a\"b'"), LIT("a\"b"), 5},
        {P, LIT("\"a'b\""), LIT("a'b"), 5},
        /* \x and octal are bytes (0xff is not checked for UTF-8) */
        {P, LIT("\"\\x41\\xff\\xFf\""), LIT("A\xff\xff"), 14},
        {P, LIT("\"\\101\\000\\377\""), LIT("A\0\xff"), 14},
        /* \u and \U are code points, written as UTF-8 */
        {P, LIT("\"\\u00e4\\u00E4\""), LIT("\xc3\xa4\xc3\xa4"), 14},
        {P, LIT("\"\\ud7ff\\ue000\""), LIT("\xed\x9f\xbf\xee\x80\x80"), 14},
        {P, LIT("\"\\U0001F600\\U0010FFFF\""), LIT("\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"), 22},
        /* UTF-8 and other bytes are copied */
        {P, LIT("\"\xc3\xa9\t\xff\""), LIT("\xc3\xa9\t\xff"), 6},
        /* raw strings: no escapes, newlines allowed; Prometheus keeps \r,
         * Go drops it */
        {P, LIT("`a\\nb\r\nc\"'`"), LIT("a\\nb\r\nc\"'"), 11},
        {G, LIT("`a\\nb\r\nc\"'`"), LIT("a\\nb\nc\"'"), 11},
        {G, LIT("`\r\r`"), LIT(""), 4},
        /* the literal ends at its closing quote */
        {P, LIT("\"a\"b\""), LIT("a"), 3},
        {P, LIT("'a' + 'b'"), LIT("a"), 3},
        {P, LIT("`a`b`"), LIT("a"), 3},
        /* Go's '...' holds exactly one character */
        {G, LIT("'a'"), LIT("a"), 3},
        {G, LIT("'\xc3\xa9'"), LIT("\xc3\xa9"), 4},
        {G, LIT("'\xf0\x9f\x98\x80'"), LIT("\xf0\x9f\x98\x80"), 6},
        {G, LIT("'\\n'"), LIT("\n"), 4},
        {G, LIT("'\\''"), LIT("'"), 4},
        {G, LIT("'\\U0001F600'"), LIT("\xf0\x9f\x98\x80"), 12},
        {G, LIT("\"ab\""), LIT("ab"), 4},
        {P, LIT("'ab'"), LIT("ab"), 4},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        buf b;
        buf_init(&b, 1024);
        buf_putc(&b, '>'); /* the value is appended */
        size_t end = 0;
        strutil_unquote_error e = {0};
        int rc = strutil_go_unquote(good[i].in, good[i].in_len, good[i].mode, &b, &end, &e);
        if (rc != 0) fail_msg("case %zu (%s): %d %s at %zu", i, good[i].in, rc, e.msg, e.at);
        if (end != good[i].end) fail_msg("case %zu (%s): end %zu", i, good[i].in, end);
        assert_int_equal(b.len, good[i].out_len + 1);
        assert_memory_equal(b.data + 1, good[i].out, good[i].out_len);
        buf_cleanup(&b);
    }

    static const struct {
        int mode;
        const char *in;
        size_t in_len;
        enum strutil_unquote_problem problem;
        const char *msg;
        size_t at;
    } bad[] = {
        {P, LIT(""), STRUTIL_UNQUOTE_NOT_QUOTED, "not a quoted string", 0},
        {P, LIT("abc"), STRUTIL_UNQUOTE_NOT_QUOTED, "not a quoted string", 0},
        /* unterminated: at the opening quote, also when the input ends or a
         * newline comes inside an escape */
        {P, LIT("\"abc"), STRUTIL_UNQUOTE_UNTERMINATED, "unterminated quoted string", 0},
        {P, LIT("'abc\""), STRUTIL_UNQUOTE_UNTERMINATED, "unterminated quoted string", 0},
        {P, LIT("`abc"), STRUTIL_UNQUOTE_UNTERMINATED, "unterminated quoted string", 0},
        {P, LIT("\"a\nb\""), STRUTIL_UNQUOTE_UNTERMINATED, "unterminated quoted string", 0},
        {P, LIT("'a\nb'"), STRUTIL_UNQUOTE_UNTERMINATED, "unterminated quoted string", 0},
        {P, LIT("\"a\\"), STRUTIL_UNQUOTE_UNTERMINATED, "unterminated quoted string", 0},
        {P, LIT("\"a\\\""), STRUTIL_UNQUOTE_UNTERMINATED, "unterminated quoted string", 0},
        {P, LIT("\"\\x4"), STRUTIL_UNQUOTE_UNTERMINATED, "unterminated quoted string", 0},
        {P, LIT("\"\\40"), STRUTIL_UNQUOTE_UNTERMINATED, "unterminated quoted string", 0},
        {P, LIT("\"\\U110000"), STRUTIL_UNQUOTE_UNTERMINATED, "unterminated quoted string", 0},
        /* unknown escapes: at the backslash */
        {P, LIT("\"a\\q\""), STRUTIL_UNQUOTE_UNKNOWN_ESCAPE, "unknown escape sequence", 2},
        {P, LIT("\"\\'\""), STRUTIL_UNQUOTE_UNKNOWN_ESCAPE, "unknown escape sequence", 1},
        {P, LIT("'\\\"'"), STRUTIL_UNQUOTE_UNKNOWN_ESCAPE, "unknown escape sequence", 1},
        {P, LIT("\"\\`\""), STRUTIL_UNQUOTE_UNKNOWN_ESCAPE, "unknown escape sequence", 1},
        {P, LIT("\"ab\\8\""), STRUTIL_UNQUOTE_UNKNOWN_ESCAPE, "unknown escape sequence", 3},
        {P, LIT("\"\\\n\""), STRUTIL_UNQUOTE_UNKNOWN_ESCAPE, "unknown escape sequence", 1},
        {P, LIT("\"\\\xc3\xa9\""), STRUTIL_UNQUOTE_UNKNOWN_ESCAPE, "unknown escape sequence", 1},
        /* a byte that is not a digit of the escape: at that byte */
        {P, LIT("\"\\x4g\""), STRUTIL_UNQUOTE_ILLEGAL_CHAR, "illegal character in escape sequence",
         4},
        {P, LIT("\"\\u00e\""), STRUTIL_UNQUOTE_ILLEGAL_CHAR, "illegal character in escape sequence",
         6},
        {P, LIT("\"\\18\""), STRUTIL_UNQUOTE_ILLEGAL_CHAR, "illegal character in escape sequence",
         3},
        {P, LIT("\"ab\\U0000000z\""), STRUTIL_UNQUOTE_ILLEGAL_CHAR,
         "illegal character in escape sequence", 12},
        /* values out of range: after the digits */
        {P, LIT("\"\\400\""), STRUTIL_UNQUOTE_OCTAL_RANGE, "octal escape value > 255", 5},
        {P, LIT("\"a\\777b\""), STRUTIL_UNQUOTE_OCTAL_RANGE, "octal escape value > 255", 6},
        {P, LIT("\"\\ud800\""), STRUTIL_UNQUOTE_CODE_POINT,
         "escape sequence is an invalid Unicode code point", 7},
        {P, LIT("\"\\uDFFF\""), STRUTIL_UNQUOTE_CODE_POINT,
         "escape sequence is an invalid Unicode code point", 7},
        {P, LIT("'x\\U00110000'"), STRUTIL_UNQUOTE_CODE_POINT,
         "escape sequence is an invalid Unicode code point", 12},
        {P, LIT("\"\\UFFFFFFFF\""), STRUTIL_UNQUOTE_CODE_POINT,
         "escape sequence is an invalid Unicode code point", 11},
        /* Go's '...' with not exactly one character */
        {G, LIT("''"), STRUTIL_UNQUOTE_RUNE_LITERAL, "illegal rune literal", 0},
        {G, LIT("'ab'"), STRUTIL_UNQUOTE_RUNE_LITERAL, "illegal rune literal", 0},
        {G, LIT("'\\x41\\x42'"), STRUTIL_UNQUOTE_RUNE_LITERAL, "illegal rune literal", 0},
        {G, LIT("'a\xc3\xa9'"), STRUTIL_UNQUOTE_RUNE_LITERAL, "illegal rune literal", 0},
        /* an escape error comes first */
        {G, LIT("'ab\\q'"), STRUTIL_UNQUOTE_UNKNOWN_ESCAPE, "unknown escape sequence", 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf b;
        buf_init(&b, 1024);
        buf_putc(&b, '>');
        size_t end = 99;
        strutil_unquote_error e = {0};
        int rc = strutil_go_unquote(bad[i].in, bad[i].in_len, bad[i].mode, &b, &end, &e);
        if (rc != -EINVAL) fail_msg("case %zu (%s): %d, want -EINVAL", i, bad[i].in, rc);
        assert_int_equal(e.problem, bad[i].problem);
        assert_string_equal(e.msg, bad[i].msg);
        if (e.at != bad[i].at)
            fail_msg("case %zu (%s): at %zu, want %zu", i, bad[i].in, e.at, bad[i].at);
        assert_string_equal(buf_cstr(&b), ">"); /* out as it was */
        assert_int_equal(end, 99);
        /* err is optional */
        assert_int_equal(strutil_go_unquote(bad[i].in, bad[i].in_len, bad[i].mode, &b, &end, NULL),
                         -EINVAL);
        buf_cleanup(&b);
    }

    /* At the buffer's limit: -E2BIG, out as it was. */
    static const char *const big[] = {"\"abc\"", "\"a\\u00e4\"", "\"ab\\n\"", "`abc`"};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        buf b;
        buf_init(&b, 3);
        buf_putc(&b, '>');
        size_t end;
        assert_int_equal(
            strutil_go_unquote(big[i], strlen(big[i]), STRUTIL_UNQUOTE_PROMQL, &b, &end, NULL),
            -E2BIG);
        assert_string_equal(buf_cstr(&b), ">");
        buf_cleanup(&b);
    }
}

static void test_go_unescape(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t in_len;
        char quote;
        int rc;
        const char *out;
        size_t out_len;
    } good[] = {
        {LIT("\\n"), '"', 2, LIT("\n")},
        {LIT("\\\"rest"), '"', 2, LIT("\"")},
        {LIT("\\'"), '\'', 2, LIT("'")},
        {LIT("\\x41zz"), '"', 4, LIT("A")},
        {LIT("\\1012"), '"', 4, LIT("A")},
        {LIT("\\u00e4"), '"', 6, LIT("\xc3\xa4")},
        {LIT("\\U0001F600\""), '"', 10, LIT("\xf0\x9f\x98\x80")},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        buf b;
        buf_init(&b, 1024);
        assert_int_equal(strutil_go_unescape(good[i].in, good[i].in_len, good[i].quote, &b, NULL),
                         good[i].rc);
        assert_int_equal(b.len, good[i].out_len);
        assert_memory_equal(buf_cstr(&b), good[i].out, good[i].out_len);
        /* out is optional: only check */
        assert_int_equal(strutil_go_unescape(good[i].in, good[i].in_len, good[i].quote, NULL, NULL),
                         good[i].rc);
        buf_cleanup(&b);
    }
    static const struct {
        const char *in;
        size_t in_len;
        char quote;
        enum strutil_unquote_problem problem;
        size_t at;
    } bad[] = {
        /* offsets count from the backslash; the end of input is at len */
        {LIT("\\"), '"', STRUTIL_UNQUOTE_UNTERMINATED, 1},
        {LIT("\\x4"), '"', STRUTIL_UNQUOTE_UNTERMINATED, 3},
        {LIT("\\U0010"), '"', STRUTIL_UNQUOTE_UNTERMINATED, 6},
        {LIT("\\q"), '"', STRUTIL_UNQUOTE_UNKNOWN_ESCAPE, 0},
        {LIT("\\'"), '"', STRUTIL_UNQUOTE_UNKNOWN_ESCAPE, 0},
        {LIT("\\\""), '\'', STRUTIL_UNQUOTE_UNKNOWN_ESCAPE, 0},
        {LIT("\\xg0"), '"', STRUTIL_UNQUOTE_ILLEGAL_CHAR, 2},
        {LIT("\\09"), '"', STRUTIL_UNQUOTE_ILLEGAL_CHAR, 2},
        {LIT("\\400"), '"', STRUTIL_UNQUOTE_OCTAL_RANGE, 4},
        {LIT("\\ud800x"), '"', STRUTIL_UNQUOTE_CODE_POINT, 6},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf b;
        buf_init(&b, 1024);
        strutil_unquote_error e = {0};
        assert_int_equal(strutil_go_unescape(bad[i].in, bad[i].in_len, bad[i].quote, &b, &e),
                         -EINVAL);
        assert_int_equal(e.problem, bad[i].problem);
        assert_non_null(e.msg);
        assert_int_equal(e.at, bad[i].at);
        assert_int_equal(b.len, 0);
        buf_cleanup(&b);
    }
}

/* Go's filepath.Match: which patterns are ErrBadPattern. */
static void test_glob_valid(void **state)
{
    (void)state;
    const char *good[] = {"",         "a.yml",  "*.yml", "rules/*.y?l", "[abc].yml",
                          "[^a].yml", "[a-z]*", "[\\]]", "\\*.yml",     "]",
                          "-",        "[é-ü]",  "[a-a]", "x[\\-]"};
    const char *bad[] = {"[",   "a[b", "x\\",   "[]a]",   "[a-]", "[-a]",   "[z-a]",
                         "[^]", "[\\", "[a-\\", "[\xff]", "*[",   "ok/[a-b"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!strutil_glob_valid(good[i])) fail_msg("refused: %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (strutil_glob_valid(bad[i])) fail_msg("accepted: %s", bad[i]);
}

static void test_parse_rfc3339(void **state)
{
    (void)state;
    /* Seconds from `date -u -d <time> +%s` (GNU date). */
    static const struct {
        const char *in;
        int64_t sec;
        int32_t nsec;
    } good[] = {
        {"1970-01-01T00:00:00Z", 0, 0},
        {"2015-07-01T20:10:51Z", 1435781451, 0},
        {"2015-07-01T20:10:51.781Z", 1435781451, 781000000},
        {"2015-07-01T20:10:51,5Z", 1435781451, 500000000},
        {"2015-07-01T20:10:51.000000001Z", 1435781451, 1},
        {"2015-07-01T20:10:51.1234567899999Z", 1435781451, 123456789}, /* beyond 9: dropped */
        {"2015-07-01T22:10:51+02:00", 1435781451, 0},
        {"2015-07-01T18:10:51.25-02:00", 1435781451, 250000000},
        {"2015-07-01T20:10:51+24:00", 1435695051, 0}, /* Go allows hh 24, mm 60 */
        {"2015-07-01T20:10:51-00:60", 1435785051, 0},
        {"2016-02-29T00:00:00Z", 1456704000, 0},
        {"2000-02-29T23:59:59Z", 951868799, 0},
        {"1600-02-29T00:00:00Z", -11670998400LL, 0},
        {"0000-02-29T12:00:00Z", -62162078400LL, 0}, /* year 0 is a leap year */
        {"0000-01-01T00:00:00Z", -62167219200LL, 0},
        {"0001-01-01T00:00:00Z", -62135596800LL, 0}, /* Go's zero time */
        {"9999-12-31T23:59:59.999999999Z", 253402300799LL, 999999999},
        {"1969-12-31T23:59:59Z", -1, 0},
        {"1969-12-31T23:59:59.5Z", -1, 500000000},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t sec = 42;
        int32_t nsec = 42;
        int rc = strutil_parse_rfc3339(good[i].in, strlen(good[i].in), &sec, &nsec);
        if (rc != 0 || sec != good[i].sec || nsec != good[i].nsec)
            fail_msg("%s: rc %d, %" PRId64 " s %" PRId32 " ns; want %" PRId64 " s %" PRId32 " ns",
                     good[i].in, rc, sec, nsec, good[i].sec, good[i].nsec);
    }
    static const char *const bad[] = {
        "",
        "2015-07-01",
        "2015-07-01T20:10:51",  /* no zone */
        "2015-07-01 20:10:51Z", /* space for T */
        "2015-07-01t20:10:51Z", /* Go: upper case only */
        "2015-07-01T20:10:51z",
        "2015-02-29T00:00:00Z", /* not a leap year */
        "1900-02-29T00:00:00Z",
        "2015-04-31T00:00:00Z",
        "2015-00-01T00:00:00Z",
        "2015-13-01T00:00:00Z",
        "2015-07-00T00:00:00Z",
        "2015-07-01T24:00:00Z",
        "2015-07-01T23:60:00Z",
        "2015-07-01T23:59:60Z",  /* no leap seconds */
        "2015-07-01T20:10:51.Z", /* a separator needs a digit */
        "2015-07-01T20:10:51.5",
        "2015-07-01T20:10:51ZZ", /* trailing garbage */
        "2015-07-01T20:10:51Z ",
        "2015-07-01T20:10:51+02:00x",
        "2015-07-01T20:10:51+02:0",
        "2015-07-01T20:10:51+0200",
        "2015-07-01T20:10:51+25:00",
        "2015-07-01T20:10:51+00:61",
        "2015-07-01T20:10:51*02:00",
        "+2015-07-01T20:10:51Z",
        "-0001-01-01T00:00:00Z", /* only four-digit years */
        "10000-01-01T00:00:00Z",
        "2015-7-01T20:10:51Z",
        "2015-07-01T2:10:51Z",
        "201a-07-01T20:10:51Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t sec = 42;
        int32_t nsec = 42;
        if (strutil_parse_rfc3339(bad[i], strlen(bad[i]), &sec, &nsec) != -EINVAL)
            fail_msg("%s: accepted", bad[i]);
        assert_int_equal(sec, 42); /* untouched on failure */
        assert_int_equal(nsec, 42);
    }
    /* The length bounds the input: a valid prefix of a longer string. */
    const char *t = "2015-07-01T20:10:51Zjunk";
    int64_t sec;
    int32_t nsec;
    assert_int_equal(strutil_parse_rfc3339(t, 20, &sec, &nsec), 0);
    assert_int_equal(sec, 1435781451);
    assert_int_equal(strutil_parse_rfc3339(t, 19, &sec, &nsec), -EINVAL);

    /* The _ci variant also takes lower-case 't' and 'z', and nothing else. */
    assert_int_equal(strutil_parse_rfc3339_ci("2015-07-01t20:10:51.5z", 22, &sec, &nsec), 0);
    assert_int_equal(sec, 1435781451);
    assert_int_equal(nsec, 500000000);
    assert_int_equal(strutil_parse_rfc3339_ci("2015-07-01t20:10:51+02:00", 25, &sec, &nsec), 0);
    assert_int_equal(sec, 1435774251);
    assert_int_equal(strutil_parse_rfc3339_ci("2015-07-01T20:10:51Z", 20, &sec, &nsec), 0);
    assert_int_equal(sec, 1435781451);
    assert_int_equal(strutil_parse_rfc3339_ci("2015-07-01x20:10:51z", 20, &sec, &nsec), -EINVAL);
    assert_int_equal(strutil_parse_rfc3339_ci("2015-02-29t20:10:51z", 20, &sec, &nsec), -EINVAL);
    assert_int_equal(strutil_parse_rfc3339_ci("2015-07-01t20:10:51", 19, &sec, &nsec), -EINVAL);

    /* Every day from year 0 to 9999 against glibc's timegm. */
    for (int64_t day = -719528; day < 2932897; day += 13) {
        time_t tt = (time_t)(day * 86400 + 45296); /* 12:34:56 */
        struct tm tm;
        assert_non_null(gmtime_r(&tt, &tm));
        char in[96];
        snprintf(in, sizeof in, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        if (strutil_parse_rfc3339(in, strlen(in), &sec, &nsec) != 0 || sec != (int64_t)tt)
            fail_msg("%s: got %" PRId64 ", want %" PRId64, in, sec, (int64_t)tt);
    }
}

static void test_format_rfc3339(void **state)
{
    (void)state;
    static const struct {
        int64_t sec;
        int32_t nsec;
        const char *out;
    } cases[] = {
        {0, 0, "1970-01-01T00:00:00Z"},
        {1435781451, 781000000, "2015-07-01T20:10:51.781Z"},
        {1435781451, 500000000, "2015-07-01T20:10:51.5Z"},
        {1435781451, 10000000, "2015-07-01T20:10:51.01Z"},
        {1435781451, 1, "2015-07-01T20:10:51.000000001Z"},
        {1435781451, 999999999, "2015-07-01T20:10:51.999999999Z"},
        {-1, 0, "1969-12-31T23:59:59Z"},
        {-1, 500000000, "1969-12-31T23:59:59.5Z"},
        {-86400, 0, "1969-12-31T00:00:00Z"},
        {951782400, 0, "2000-02-29T00:00:00Z"},
        {-62135596800LL, 0, "0001-01-01T00:00:00Z"},
        {-62167219200LL, 0, "0000-01-01T00:00:00Z"},
        {-62167219201LL, 0, "-0001-12-31T23:59:59Z"},
        {253402300799LL, 0, "9999-12-31T23:59:59Z"},
        {253402300800LL, 0, "10000-01-01T00:00:00Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[40];
        size_t n = strutil_format_rfc3339(cases[i].sec, cases[i].nsec, out);
        assert_string_equal(out, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
    }
    /* The extremes of int64 seconds fit in 40 bytes. */
    char out[40];
    size_t n = strutil_format_rfc3339(INT64_MIN, 999999999, out);
    assert_int_equal(n, strlen(out));
    assert_true(n < 40);
    assert_int_equal(out[0], '-');
    n = strutil_format_rfc3339(INT64_MAX, 999999999, out);
    assert_int_equal(n, strlen(out));
    assert_true(n < 40);

    /* Against gmtime_r, and parsing gives the time back, over a sweep of
     * seconds from year 1 to 9999 (an odd step, so that every second of the
     * day and every day of the month is met). */
    for (int64_t s = -62135596800LL; s < 253402300800LL; s += 86400 * 97 + 3607) {
        time_t tt = (time_t)s;
        struct tm tm;
        assert_non_null(gmtime_r(&tt, &tm));
        char want[96];
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.000123Z", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        n = strutil_format_rfc3339(s, 123000, out);
        assert_string_equal(out, want);
        int64_t sec;
        int32_t nsec;
        assert_int_equal(strutil_parse_rfc3339(out, n, &sec, &nsec), 0);
        assert_int_equal(sec, s);
        assert_int_equal(nsec, 123000);
    }
}

/* Varints: round trips at every length, zigzag, truncation, overlong. */
static void test_varints(void **state)
{
    (void)state;
    uint8_t b[10];
    const uint64_t u[] = {0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX, (uint64_t)1 << 62, UINT64_MAX};
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        size_t n = strutil_put_uvarint(b, u[i]);
        const uint8_t *p = b;
        uint64_t got;
        assert_int_equal(strutil_get_uvarint(&p, b + n, &got), 0);
        assert_true(got == u[i]);
        assert_ptr_equal(p, b + n);
        p = b; /* one byte short */
        assert_int_equal(strutil_get_uvarint(&p, b + n - 1, &got), -EINVAL);
    }
    const int64_t sv[] = {0, -1, 1, -64, 64, INT64_MIN, INT64_MAX};
    for (size_t i = 0; i < sizeof sv / sizeof sv[0]; i++) {
        uint64_t z = ((uint64_t)sv[i] << 1) ^ (uint64_t)(sv[i] >> 63);
        size_t n = strutil_put_uvarint(b, z);
        const uint8_t *p = b;
        int64_t got;
        assert_int_equal(strutil_get_varint(&p, b + n, &got), 0);
        assert_true(got == sv[i]);
    }
    uint8_t overlong[11];
    memset(overlong, 0x80, sizeof overlong);
    const uint8_t *p = overlong;
    uint64_t got;
    assert_int_equal(strutil_get_uvarint(&p, overlong + sizeof overlong, &got), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varints),
        cmocka_unit_test(test_parse_duration), cmocka_unit_test(test_format_duration),
        cmocka_unit_test(test_parse_bytes),    cmocka_unit_test(test_format_float),
        cmocka_unit_test(test_parse_float),    cmocka_unit_test(test_quote_go),
        cmocka_unit_test(test_utf8_and_names), cmocka_unit_test(test_hash_and_stale),
        cmocka_unit_test(test_append_rune),    cmocka_unit_test(test_go_unquote),
        cmocka_unit_test(test_go_unescape),    cmocka_unit_test(test_glob_valid),
        cmocka_unit_test(test_parse_rfc3339),  cmocka_unit_test(test_format_rfc3339),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
