/* Unit tests for regex: Prometheus's anchoring and dot-all semantics, RE2
 * compatibility (what Go rejects is rejected), fast paths, and Go's
 * Regexp.Expand template rules used by relabeling. */
#include "testutil.h"

#include <errno.h>

#include "buf.h"
#include "regex.h"

static regex *compile(const char *p)
{
    regex *re = NULL;
    buf err;
    buf_init(&err, 4096);
    if (regex_compile(&re, p, strlen(p), &err) < 0) fail_msg("compile %s: %s", p, buf_cstr(&err));
    buf_cleanup(&err);
    return re;
}

static void test_match(void **state)
{
    (void)state;
    static const struct {
        const char *re, *s;
        bool match;
    } cases[] = {
        {"abc", "abc", true},
        {"abc", "abcd", false},
        {"abc", "xabc", false},
        {"a.c", "a\nc", true},
        {".*", "", true},
        {".*", "any\nthing", true},
        {".+", "", false},
        {".+", "x", true},
        {"a|ab", "ab", true},
        {"(a|b)+", "abba", true},
        {"[a-c]{2,3}", "abc", true},
        {"[a-c]{2,3}", "abcd", false},
        {"foo$", "foo\n", false},
        {"(?i)FOO", "foo", true},
        {"\\d+", "123", true},
        {"\\w+", "caf\xc3\xa9", false}, /* \w is ASCII-only as in Go */
        {"caf.", "caf\xc3\xa9", true},  /* . matches one rune */
        {"", "", true},
        {"", "x", false},
        {"10\\.0\\.0\\.1:9100", "10.0.0.1:9100", true},
        {"a.b", "a\xff" "b", true}, /* invalid UTF-8: one byte, one U+FFFD, as Go */
        {"a..b", "a\xff" "b", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        regex *re = compile(cases[i].re);
        if (regex_match(re, cases[i].s, strlen(cases[i].s)) != cases[i].match)
            fail_msg("case %zu: /%s/ on \"%s\"", i, cases[i].re, cases[i].s);
        regex_free(re);
    }
}

static void test_rejects_like_go(void **state)
{
    (void)state;
    static const struct {
        const char *re, *msg;
    } cases[] = {
        {"abc(def", "error parsing regexp: missing closing ): `abc(def`"},
        {"abc)", "error parsing regexp: unexpected ): `abc)`"},
        {"[abc", "error parsing regexp: missing closing ]: `[abc`"},
        {"(a)\\1", "error parsing regexp: invalid escape sequence: `\\1`"},
        {"a(?=b)", "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"},
        {"(?<!a)b", "error parsing regexp: invalid or unsupported Perl syntax: `(?<!`"},
        {"(?>a)", "error parsing regexp: invalid or unsupported Perl syntax: `(?>`"},
        {"a*+", "error parsing regexp: invalid nested repetition operator: `*+`"},
        {"\\h", "error parsing regexp: invalid escape sequence: `\\h`"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        regex *re = NULL;
        buf err;
        buf_init(&err, 4096);
        assert_int_equal(regex_compile(&re, cases[i].re, strlen(cases[i].re), &err), -EINVAL);
        assert_null(re);
        assert_string_equal(buf_cstr(&err), cases[i].msg);
        buf_cleanup(&err);
    }
    /* Things RE2 has and PCRE2 spells the same way keep working. */
    regex *re = compile("(?P<first>a)(?:b)\\Q.*\\E");
    assert_true(regex_match(re, "ab.*", 4));
    regex_free(re);
}

static void test_expand(void **state)
{
    (void)state;
    static const struct {
        const char *re, *s, *tmpl, *out;
        int rc;
    } cases[] = {
        {"(.*)", "abc", "$1", "abc", 1},
        {"(.*)some-(.*)", "xsome-y", "foo-${1}-$2", "foo-x-y", 1},
        {"(a)(b)", "ab", "$2$1", "ba", 1},
        {"(a)", "a", "$1x", "", 1}, /* $1x names group "1x": empty */
        {"(a)", "a", "${1}x", "ax", 1},
        {"(a)", "a", "$$1", "$1", 1},
        {"(?P<name>a+)", "aaa", "[$name]", "[aaa]", 1},
        {"(a)", "a", "$9", "", 1},   /* missing group: empty */
        {"(a)", "b", "$1", "", 0},   /* no match */
        {"(a)", "a", "${", "${", 1}, /* malformed stays literal */
        {"label:([^=]+)=([^,]+)", "label:k=v", "${2}", "v", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        regex *re = compile(cases[i].re);
        buf out;
        buf_init(&out, 1024);
        int rc = regex_expand(re, cases[i].s, strlen(cases[i].s), cases[i].tmpl,
                              strlen(cases[i].tmpl), &out);
        if (rc != cases[i].rc || strcmp(buf_cstr(&out), cases[i].out) != 0)
            fail_msg("case %zu: got rc=%d \"%s\"", i, rc, buf_cstr(&out));
        buf_cleanup(&out);
        regex_free(re);
    }
}

static void test_literal_prefix(void **state)
{
    (void)state;
    static const struct {
        const char *re, *prefix;
    } cases[] = {
        {"pod-00[0-9]{3}", "pod-00"}, {"abc", "abc"},   {"ab*", "a"},       {"ab?c", "a"},
        {"ab{2}", "a"},               {"a|b", ""},      {"(?i)abc", ""},    {".*x", ""},
        {"x.*", "x"},                 {"ab[|]c", "ab"}, {"ab\\.c", "ab"}, {"caf\xc3\xa9*", "caf"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        regex *re = compile(cases[i].re);
        size_t len;
        const char *p = regex_literal_prefix(re, &len);
        if (len != strlen(cases[i].prefix) || memcmp(p, cases[i].prefix, len) != 0)
            fail_msg("case %zu (%s): got \"%.*s\"", i, cases[i].re, (int)len, p);
        /* Every match starts with the prefix. */
        regex_free(re);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_rejects_like_go),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_literal_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
