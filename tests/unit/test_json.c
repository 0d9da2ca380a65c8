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
    json_init(&w, &b);
    json_object_begin(&w);
    json_key(&w, "status");
    json_string(&w, "success");
    json_key(&w, "data");
    json_array_begin(&w);
    json_int(&w, -1);
    json_uint(&w, 2);
    json_double(&w, 1.5);
    json_double(&w, NAN);
    json_float_string(&w, 1e6);
    json_float_string(&w, INFINITY);
    json_bool(&w, true);
    json_null(&w);
    json_object_begin(&w);
    json_object_end(&w);
    json_array_begin(&w);
    json_array_end(&w);
    json_array_end(&w);
    json_object_end(&w);
    assert_int_equal(json_error(&w), 0);
    assert_string_equal(
        buf_cstr(&b),
        "{\"status\":\"success\",\"data\":[-1,2,1.5,null,\"1e+06\",\"+Inf\",true,null,{},[]]}");
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
        json_init(&w, &b);
        json_string_n(&w, cases[i].in, cases[i].len);
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
    json_init(&w, &b);
    json_array_begin(&w);
    json_string(&w, "this is far too long");
    json_array_end(&w);
    assert_true(json_error(&w) < 0);
    assert_true(b.len <= 10);
    buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_escaping_like_go),
        cmocka_unit_test(test_limit_is_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
