/* Unit tests for the streaming JSON writer (structure, commas, and string
 * escaping identical to Go's encoding/json) and for the reader (accessors,
 * kinds, NULL safety, integers, caps, error positions). */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

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

/* json.h and jansson.h share no name (both compile in one file), and in a
 * binary that links json.o and libjansson, jansson's json_string() and
 * json_null() are jansson's: the writer used to export both names, and
 * whichever the linker met first won for every caller. */
static void test_coexists_with_jansson(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    json_writer w;
    json_writer_init(&w, &b);
    json_write_array_begin(&w);
    json_write_string(&w, "x");
    json_write_null(&w);
    json_write_array_end(&w);
    assert_string_equal(buf_cstr(&b), "[\"x\",null]");
    buf_cleanup(&b);

    json_t *s = json_string("jansson");
    json_t *n = json_null();
    assert_non_null(s);
    assert_string_equal(json_string_value(s), "jansson");
    assert_true(json_is_null(n));
    json_decref(s);
    json_decref(n);
}

/* ---- reader ---- */

static json_doc *parse_ok(const char *text, unsigned flags)
{
    json_read_error e;
    json_doc *d = json_doc_parse(text, strlen(text), 1 << 20, flags, &e);
    if (!d) fail_msg("%s: %s", text, e.msg);
    return d;
}

static void test_read_accessors(void **state)
{
    (void)state;
    json_doc *d =
        parse_ok("{\"s\": \"h\\u00e9\", \"i\": -42, \"r\": 1.5, \"t\": true, \"f\": false,"
                 " \"n\": null, \"a\": [1, \"x\", null], \"o\": {\"k\": \"v\"}}",
                 0);
    const json_val *r = json_doc_root(d);
    assert_int_equal(json_val_kind(r), JSON_KIND_OBJECT);
    assert_true(json_val_is_object(r));
    assert_int_equal(json_val_len(r), 8);

    size_t len = 99;
    assert_string_equal(json_val_string(json_val_get(r, "s"), &len), "h\xc3\xa9");
    assert_int_equal(len, 3);
    assert_non_null(json_val_string(json_val_get(r, "s"), NULL));

    int64_t i = 0;
    assert_int_equal(json_val_int64(json_val_get(r, "i"), &i), 0);
    assert_int_equal(i, -42);
    assert_true(json_val_is_int(json_val_get(r, "i")));
    assert_true(json_val_is_number(json_val_get(r, "i")));
    uint64_t u = 7;
    assert_int_equal(json_val_uint64(json_val_get(r, "i"), &u), -ERANGE);
    assert_int_equal(u, 7); /* untouched on failure */

    double x = 0;
    assert_int_equal(json_val_double(json_val_get(r, "r"), &x), 0);
    assert_true(x == 1.5);
    assert_int_equal(json_val_double(json_val_get(r, "i"), &x), 0);
    assert_true(x == -42);
    assert_true(json_val_is_real(json_val_get(r, "r")));
    assert_int_equal(json_val_int64(json_val_get(r, "r"), &i), -ERANGE); /* a fraction */
    assert_int_equal(json_val_uint64(json_val_get(r, "r"), &u), -ERANGE);

    bool b = false;
    assert_int_equal(json_val_bool(json_val_get(r, "t"), &b), 0);
    assert_true(b);
    assert_int_equal(json_val_bool(json_val_get(r, "f"), &b), 0);
    assert_false(b);
    assert_true(json_val_is_true(json_val_get(r, "t")));
    assert_false(json_val_is_true(json_val_get(r, "f")));
    assert_true(json_val_is_bool(json_val_get(r, "f")));
    assert_int_equal(json_val_kind(json_val_get(r, "t")), JSON_KIND_BOOL);

    const json_val *n = json_val_get(r, "n");
    assert_non_null(n);
    assert_true(json_val_is_null(n));
    assert_int_equal(json_val_kind(n), JSON_KIND_NULL);

    const json_val *a = json_val_get(r, "a");
    assert_true(json_val_is_array(a));
    assert_int_equal(json_val_len(a), 3);
    assert_int_equal(json_val_int64(json_val_at(a, 0), &i), 0);
    assert_int_equal(i, 1);
    assert_string_equal(json_val_string(json_val_at(a, 1), NULL), "x");
    assert_true(json_val_is_null(json_val_at(a, 2)));
    assert_null(json_val_at(a, 3));
    assert_int_equal(json_val_kind(json_val_at(a, 3)), JSON_KIND_NONE);

    const json_val *o = json_val_get(r, "o");
    assert_string_equal(json_val_string(json_val_get(o, "k"), NULL), "v");
    assert_null(json_val_get(o, "K")); /* keys compare byte for byte */
    assert_null(json_val_get(r, "missing"));
    json_doc_free(d);
}

/* Every accessor on a value of each wrong kind, and on NULL. */
static void test_read_wrong_kinds_and_null(void **state)
{
    (void)state;
    json_doc *d = parse_ok("[\"s\", 1, 1.5, true, null, [], {}]", 0);
    const json_val *a = json_doc_root(d);
    const json_val *vals[8];
    for (size_t k = 0; k < 7; k++)
        vals[k] = json_val_at(a, k);
    vals[7] = NULL;
    static const enum json_kind kinds[] = {
        JSON_KIND_STRING, JSON_KIND_INT,   JSON_KIND_REAL,   JSON_KIND_BOOL,
        JSON_KIND_NULL,   JSON_KIND_ARRAY, JSON_KIND_OBJECT, JSON_KIND_NONE,
    };
    for (size_t k = 0; k < 8; k++) {
        const json_val *v = vals[k];
        enum json_kind kd = kinds[k];
        assert_int_equal(json_val_kind(v), kd);
        assert_int_equal(json_val_is_string(v), kd == JSON_KIND_STRING);
        assert_int_equal(json_val_is_int(v), kd == JSON_KIND_INT);
        assert_int_equal(json_val_is_real(v), kd == JSON_KIND_REAL);
        assert_int_equal(json_val_is_number(v), kd == JSON_KIND_INT || kd == JSON_KIND_REAL);
        assert_int_equal(json_val_is_bool(v), kd == JSON_KIND_BOOL);
        assert_int_equal(json_val_is_null(v), kd == JSON_KIND_NULL);
        assert_int_equal(json_val_is_array(v), kd == JSON_KIND_ARRAY);
        assert_int_equal(json_val_is_object(v), kd == JSON_KIND_OBJECT);
        size_t len = 5;
        if (kd != JSON_KIND_STRING) {
            assert_null(json_val_string(v, &len));
            assert_int_equal(len, 5);
        }
        int64_t i = 3;
        uint64_t u = 3;
        double x = 3;
        bool b = true;
        bool number = kd == JSON_KIND_INT || kd == JSON_KIND_REAL;
        if (!number) {
            assert_int_equal(json_val_int64(v, &i), -EINVAL);
            assert_int_equal(json_val_uint64(v, &u), -EINVAL);
            assert_int_equal(json_val_double(v, &x), -EINVAL);
            assert_int_equal(i, 3);
            assert_int_equal(u, 3);
            assert_true(x == 3);
        }
        if (kd != JSON_KIND_BOOL) {
            assert_int_equal(json_val_bool(v, &b), -EINVAL);
            assert_true(b);
            assert_false(json_val_is_true(v));
        }
        if (kd != JSON_KIND_OBJECT) {
            assert_null(json_val_get(v, "x"));
            json_iter it = {0};
            assert_false(json_val_next(v, &it, NULL, NULL));
        }
        if (kd != JSON_KIND_ARRAY) assert_null(json_val_at(v, 0));
        if (kd != JSON_KIND_ARRAY && kd != JSON_KIND_OBJECT) assert_int_equal(json_val_len(v), 0);
    }
    assert_null(json_doc_root(NULL));
    json_doc_free(NULL);
    json_doc_free(d);
}

static void test_read_iteration(void **state)
{
    (void)state;
    /* Document order; a repeated key keeps its first place and last value. */
    json_doc *d = parse_ok("{\"b\": 1, \"a\": 2, \"c\": 3, \"b\": 4}", 0);
    const json_val *r = json_doc_root(d);
    static const char *const keys[] = {"b", "a", "c"};
    static const int64_t vals[] = {4, 2, 3};
    json_iter it = {0};
    const char *k;
    const json_val *v;
    size_t n = 0;
    while (json_val_next(r, &it, &k, &v)) {
        assert_true(n < 3);
        assert_string_equal(k, keys[n]);
        int64_t i;
        assert_int_equal(json_val_int64(v, &i), 0);
        assert_int_equal(i, vals[n]);
        n++;
    }
    assert_int_equal(n, 3);
    assert_false(json_val_next(r, &it, &k, &v)); /* stays at the end */
    assert_int_equal(json_val_len(r), 3);
    json_doc_free(d);

    d = parse_ok("{}", 0);
    json_iter e = {0};
    assert_false(json_val_next(json_doc_root(d), &e, &k, &v));
    json_doc_free(d);
}

static void test_read_integers(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        unsigned flags;
        int rc64;
        int64_t i64;
        int rcu;
        uint64_t u64;
    } cases[] = {
        {"[0]", 0, 0, 0, 0, 0},
        {"[9223372036854775807]", 0, 0, INT64_MAX, 0, INT64_MAX},
        {"[-9223372036854775808]", 0, 0, INT64_MIN, -ERANGE, 0},
        {"[1e3]", 0, 0, 1000, 0, 1000},
        {"[-0.0]", 0, 0, 0, 0, 0},
        {"[2.5]", 0, -ERANGE, 0, -ERANGE, 0},
        {"[9.3e18]", 0, -ERANGE, 0, 0, 9300000000000000000u},
        {"[1e300]", 0, -ERANGE, 0, 0, UINT64_MAX},
        {"[-1e300]", 0, -ERANGE, 0, -ERANGE, 0},
        /* Docker's "no limit": 2^64-1, read as a real, saturates. */
        {"[18446744073709551615]", JSON_READ_BIG_INTEGERS, -ERANGE, 0, 0, UINT64_MAX},
        {"[9223372036854775808]", JSON_READ_BIG_INTEGERS, -ERANGE, 0, 0, 9223372036854775808u},
        /* As a real it rounds to -2^63, which int64 holds. */
        {"[-9223372036854775809]", JSON_READ_BIG_INTEGERS, 0, INT64_MIN, -ERANGE, 0},
        {"[-9223372036854779999]", JSON_READ_BIG_INTEGERS, -ERANGE, 0, -ERANGE, 0},
        {"[\"18446744073709551615\"]", JSON_READ_BIG_INTEGERS, -EINVAL, 0, -EINVAL, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        json_doc *d = parse_ok(cases[k].text, cases[k].flags);
        const json_val *v = json_val_at(json_doc_root(d), 0);
        int64_t i = 0;
        uint64_t u = 0;
        int rc = json_val_int64(v, &i);
        if (rc != cases[k].rc64 || (rc == 0 && i != cases[k].i64))
            fail_msg("%s: int64 %d %" PRId64, cases[k].text, rc, i);
        rc = json_val_uint64(v, &u);
        if (rc != cases[k].rcu || (rc == 0 && u != cases[k].u64))
            fail_msg("%s: uint64 %d %" PRIu64, cases[k].text, rc, u);
        json_doc_free(d);
    }
    /* Without the flag an integer beyond int64 is an error, as in jansson. */
    json_read_error e;
    assert_null(json_doc_parse("[18446744073709551615]", 22, 100, 0, &e));
    assert_int_equal(e.code, -EBADMSG);
    assert_non_null(strstr(e.text, "too big integer"));
    /* The flag leaves strings and shorter numbers alone. */
    json_doc *d = parse_ok("{\"99999999999999999999\": \"99999999999999999999\", \"n\": 12}",
                           JSON_READ_BIG_INTEGERS);
    const json_val *r = json_doc_root(d);
    assert_string_equal(json_val_string(json_val_get(r, "99999999999999999999"), NULL),
                        "99999999999999999999");
    assert_true(json_val_is_int(json_val_get(r, "n")));
    json_doc_free(d);
}

static void test_read_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        unsigned flags;
        int line, column;
        const char *text_has;
    } cases[] = {
        {"", 0, 1, 0, "'[' or '{' expected"},
        {"\"s\"", 0, 1, 3, "'[' or '{' expected"},
        {"{\"a\": 1,\n \"b\": }", 0, 2, 7, "unexpected token"},
        {"[1] x", 0, 1, 5, "end of file expected"},
        {"[\"\\u0000\"]", 0, 1, 9, "\\u0000 is not allowed"},
        {"[\"a\xff\"]", 0, 1, 3, "unable to decode byte 0xff"},
        {"[\"\xc3\"]", 0, 1, 2, "unable to decode byte"},
        {"{\"k\\u0000\": 1}", JSON_READ_ALLOW_NUL, 1, 10, "NUL byte in object key"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        json_read_error e;
        memset(&e, 0, sizeof e);
        json_doc *d = json_doc_parse(cases[k].text, strlen(cases[k].text), 100, cases[k].flags, &e);
        if (d) fail_msg("%s: parsed", cases[k].text);
        if (e.code != -EBADMSG || e.line != cases[k].line || e.column != cases[k].column ||
            !strstr(e.text, cases[k].text_has))
            fail_msg("%s: %d %s", cases[k].text, e.code, e.msg);
        char want[JSON_READ_MSG_MAX];
        snprintf(want, sizeof want, "%d:%d: %s", e.line, e.column, e.text);
        assert_string_equal(e.msg, want);
        /* err may be NULL */
        assert_null(
            json_doc_parse(cases[k].text, strlen(cases[k].text), 100, cases[k].flags, NULL));
    }
    /* NUL bytes in strings with the flag; a length, not strlen. */
    json_doc *d = parse_ok("[\"a\\u0000b\"]", JSON_READ_ALLOW_NUL);
    size_t len = 0;
    const char *s = json_val_string(json_val_at(json_doc_root(d), 0), &len);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "a\0b", 3);
    json_doc_free(d);
    /* Any top value with JSON_READ_ANY; whitespace around it. */
    d = parse_ok(" \"s\"\n", JSON_READ_ANY);
    assert_string_equal(json_val_string(json_doc_root(d), NULL), "s");
    json_doc_free(d);
    d = parse_ok("null", JSON_READ_ANY);
    assert_true(json_val_is_null(json_doc_root(d)));
    json_doc_free(d);
    /* data may be NULL when len is 0. */
    json_read_error e;
    assert_null(json_doc_parse(NULL, 0, 100, JSON_READ_ANY, &e));
    assert_int_equal(e.code, -EBADMSG);
    /* Embedded NUL in the input is not the end of it. */
    assert_null(json_doc_parse("[1]\0", 4, 100, 0, &e));
    assert_int_equal(e.code, -EBADMSG);
}

static void test_read_cap_and_depth(void **state)
{
    (void)state;
    json_read_error e;
    assert_null(json_doc_parse("[1, 2]", 6, 5, 0, &e));
    assert_int_equal(e.code, -E2BIG);
    assert_int_equal(e.line, 0);
    assert_int_equal(e.column, 0);
    assert_string_equal(e.msg, "0:0: input of 6 bytes exceeds the limit of 5");
    json_doc *d = json_doc_parse("[1, 2]", 6, 6, 0, &e);
    assert_non_null(d);
    json_doc_free(d);

    /* Deep nesting is an error, not a stack overflow. */
    size_t n = 100000;
    char *deep = malloc(n);
    memset(deep, '[', n);
    assert_null(json_doc_parse(deep, n, n, 0, &e));
    assert_int_equal(e.code, -EBADMSG);
    assert_non_null(strstr(e.text, "maximum parsing depth"));
    free(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_escaping_like_go),
        cmocka_unit_test(test_float_styles_like_go),
        cmocka_unit_test(test_timestamps_like_prometheus),
        cmocka_unit_test(test_limit_is_sticky),
        cmocka_unit_test(test_coexists_with_jansson),
        cmocka_unit_test(test_read_accessors),
        cmocka_unit_test(test_read_wrong_kinds_and_null),
        cmocka_unit_test(test_read_iteration),
        cmocka_unit_test(test_read_integers),
        cmocka_unit_test(test_read_errors),
        cmocka_unit_test(test_read_cap_and_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
