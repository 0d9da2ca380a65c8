/* Unit tests for the streaming JSON writer: structure, commas, and string
 * escaping identical to Go's encoding/json. */
#include "testutil.h"

#include <math.h>

#include "buf.h"
#include "json.h"

static void test_structure(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    json_writer w;
    json_writer_init(&w, &b);
    json_write_object_begin(&w);
    json_write_key(&w, "status");
    json_write_string(&w, "success");
    json_write_key(&w, "data");
    json_write_array_begin(&w);
    json_write_int(&w, -1);
    json_write_uint(&w, 2);
    json_write_double(&w, 1.5);
    json_write_double(&w, NAN);
    json_write_float_string(&w, 1e6);
    json_write_float_string(&w, INFINITY);
    json_write_bool(&w, true);
    json_write_null(&w);
    json_write_object_begin(&w);
    json_write_object_end(&w);
    json_write_array_begin(&w);
    json_write_array_end(&w);
    json_write_array_end(&w);
    json_write_object_end(&w);
    assert_int_equal(json_writer_error(&w), 0);
    assert_string_equal(
        buf_cstr(&b),
        "{\"status\":\"success\",\"data\":[-1,2,1.5,null,\"1000000\",\"+Inf\",true,null,{},[]]}");
    buf_cleanup(&b);
}

static void test_escaping_like_go(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"plain", 5, "\"plain\""},
        {"q\"b\\", 4, "\"q\\\"b\\\\\""},
        {"\n\r\t", 3, "\"\\n\\r\\t\""},
        {"<a&b>", 5, "\"\\u003ca\\u0026b\\u003e\""},
        {"\x01\x1f", 2, "\"\\u0001\\u001f\""},
        {"caf\xc3\xa9", 5, "\"caf\xc3\xa9\""},
        {"bad\xff", 4, "\"bad\\ufffd\""},
        {"\xe2\x80\xa8", 3, "\"\\u2028\""},
        {"nul\0x", 5, "\"nul\\u0000x\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        json_writer w;
        json_writer_init(&w, &b);
        json_write_string_n(&w, cases[i].in, cases[i].len);
        assert_string_equal(buf_cstr(&b), cases[i].out);
        buf_cleanup(&b);
    }
}

/* Floats as Go formats them: the API's sample values (jsonutil.MarshalFloat),
 * encoding/json numbers, and strconv.FormatFloat(v, 'f', -1, 64). */
static void test_float_styles_like_go(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *prom, *json, *fixed;
    } cases[] = {
        {0, "0", "0", "0"},
        {-0.0, "-0", "-0", "-0"},
        {1, "1", "1", "1"},
        {1e6, "1000000", "1000000", "1000000"},
        {0.1, "0.1", "0.1", "0.1"},
        {-2.5, "-2.5", "-2.5", "-2.5"},
        {0.30000000000000004, "0.30000000000000004", "0.30000000000000004",
         "0.30000000000000004"},
        {0.000001, "0.000001", "0.000001", "0.000001"},
        {1e-7, "1e-07", "1e-7", "0.0000001"},
        {1.5e-10, "1.5e-10", "1.5e-10", "0.00000000015"},
        {1e20, "100000000000000000000", "100000000000000000000", "100000000000000000000"},
        {1e21, "1e+21", "1e+21", "1000000000000000000000"},
        {1.5e300, "1.5e+300", "1.5e+300", NULL},
        {123456789.123, "123456789.123", "123456789.123", "123456789.123"},
        {9007199254740994.0, "9007199254740994", "9007199254740994", "9007199254740994"},
        {1.7976931348623157e308, "1.7976931348623157e+308", "1.7976931348623157e+308", NULL},
        {5e-324, "5e-324", "5e-324", NULL},
        {1.0 / 3, "0.3333333333333333", "0.3333333333333333", "0.3333333333333333"},
        {NAN, "NaN", NULL, "NaN"},
        {INFINITY, "+Inf", NULL, "+Inf"},
        {-INFINITY, "-Inf", NULL, "-Inf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[JSON_FLOAT_MAX];
        json_format_float(cases[i].v, JSON_FLOAT_PROMETHEUS, out);
        assert_string_equal(out, cases[i].prom);
        if (cases[i].json) {
            json_format_float(cases[i].v, JSON_FLOAT_GO_JSON, out);
            assert_string_equal(out, cases[i].json);
        }
        if (cases[i].fixed) {
            json_format_float(cases[i].v, JSON_FLOAT_FIXED, out);
            assert_string_equal(out, cases[i].fixed);
        }
    }
    char big[JSON_FLOAT_MAX];
    size_t n = json_format_float(1.7976931348623157e308, JSON_FLOAT_FIXED, big);
    assert_int_equal(n, 309);
    assert_memory_equal(big, "17976931348623157", 17);
    n = json_format_float(5e-324, JSON_FLOAT_FIXED, big);
    assert_int_equal(n, 2 + 323 + 1);
    assert_string_equal(big + 325, "5");
}

static void test_timestamps_like_prometheus(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *out;
    } cases[] = {
        {0, "0"}, {1000, "1"}, {1500, "1.500"}, {5, "0.005"}, {1435781451781, "1435781451.781"},
        {-1, "-0.001"}, {-1500, "-1.500"}, {1700000000010, "1700000000.010"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        json_writer w;
        json_writer_init(&w, &b);
        json_write_timestamp(&w, cases[i].ms);
        assert_string_equal(buf_cstr(&b), cases[i].out);
        buf_cleanup(&b);
    }
}

static void test_limit_is_sticky(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 10);
    json_writer w;
    json_writer_init(&w, &b);
    json_write_array_begin(&w);
    json_write_string(&w, "this is far too long");
    json_write_array_end(&w);
    assert_true(json_writer_error(&w) < 0);
    assert_true(b.len <= 10);
    buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_escaping_like_go),
        cmocka_unit_test(test_float_styles_like_go),
        cmocka_unit_test(test_timestamps_like_prometheus),
        cmocka_unit_test(test_limit_is_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
