/* Unit tests for strutil (durations, byte sizes, hashing) and the shared
 * float/quote helpers in exporter/expfmt, checked against the outputs of the
 * Go functions Prometheus uses. */
#include "testutil.h"

#include <errno.h>
#include <math.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_duration), cmocka_unit_test(test_format_duration),
        cmocka_unit_test(test_parse_bytes),    cmocka_unit_test(test_format_float),
        cmocka_unit_test(test_parse_float),    cmocka_unit_test(test_quote_go),
        cmocka_unit_test(test_utf8_and_names), cmocka_unit_test(test_hash_and_stale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
