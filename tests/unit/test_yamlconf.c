/* Unit tests for yamlconf: node kinds, positions, yaml.v2 scalar
 * resolution, typed getters, !!binary, anchors and merge keys, error
 * messages with positions, and the limits against hostile input. */
#include "testutil.h"

#include <errno.h>
#include <math.h>

#include "buf.h"
#include "yamlconf.h"

static yamlconf_doc *parse_ok(const char *text)
{
    yamlconf_doc *doc = NULL;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    int rc = yamlconf_parse(text, strlen(text), "t.yml", &doc, &err);
    if (rc != 0) fail_msg("parse failed for %s: %s", text, buf_cstr(&err));
    buf_cleanup(&err);
    return doc;
}

/* Parses text expecting failure; returns the message (caller frees). */
static char *parse_err(const char *text, size_t len, int want_rc)
{
    yamlconf_doc *doc = NULL;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    int rc = yamlconf_parse(text, len, "t.yml", &doc, &err);
    assert_int_equal(rc, want_rc);
    assert_null(doc);
    size_t n;
    return buf_detach(&err, &n);
}

static void test_scalar_resolution(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum yamlconf_kind kind;
        const char *tag;
        bool quoted;
    } cases[] = {
        {"", YAMLCONF_NULL, "!!null", false},
        {"~", YAMLCONF_NULL, "!!null", false},
        {"null", YAMLCONF_NULL, "!!null", false},
        {"Null", YAMLCONF_NULL, "!!null", false},
        {"NULL", YAMLCONF_NULL, "!!null", false},
        {"nULL", YAMLCONF_SCALAR, "!!str", false},
        {"'null'", YAMLCONF_SCALAR, "!!str", true},
        {"\"\"", YAMLCONF_SCALAR, "!!str", true},
        {"!!null ''", YAMLCONF_NULL, "!!null", true},
        {"true", YAMLCONF_SCALAR, "!!bool", false},
        {"yes", YAMLCONF_SCALAR, "!!bool", false},
        {"On", YAMLCONF_SCALAR, "!!bool", false},
        {"N", YAMLCONF_SCALAR, "!!bool", false},
        {"OFF", YAMLCONF_SCALAR, "!!bool", false},
        {"\"true\"", YAMLCONF_SCALAR, "!!str", true},
        {"12", YAMLCONF_SCALAR, "!!int", false},
        {"-12", YAMLCONF_SCALAR, "!!int", false},
        {"+12", YAMLCONF_SCALAR, "!!int", false},
        {"0x1F", YAMLCONF_SCALAR, "!!int", false},
        {"0o17", YAMLCONF_SCALAR, "!!int", false},
        {"0b101", YAMLCONF_SCALAR, "!!int", false},
        {"1_000", YAMLCONF_SCALAR, "!!int", false},
        {"18446744073709551615", YAMLCONF_SCALAR, "!!int", false},
        {"18446744073709551616", YAMLCONF_SCALAR, "!!float", false},
        {"08", YAMLCONF_SCALAR, "!!float", false},
        {"1.5", YAMLCONF_SCALAR, "!!float", false},
        {"1e3", YAMLCONF_SCALAR, "!!float", false},
        {"1e400", YAMLCONF_SCALAR, "!!str", false},
        {"-1e400", YAMLCONF_SCALAR, "!!str", false},
        {"._5", YAMLCONF_SCALAR, "!!str", false},
        {"1_0.5", YAMLCONF_SCALAR, "!!float", false},
        {".5", YAMLCONF_SCALAR, "!!float", false},
        {".inf", YAMLCONF_SCALAR, "!!float", false},
        {"-.Inf", YAMLCONF_SCALAR, "!!float", false},
        {".NaN", YAMLCONF_SCALAR, "!!float", false},
        {"15s", YAMLCONF_SCALAR, "!!str", false},
        {"1h30m", YAMLCONF_SCALAR, "!!str", false},
        {"2001-12-14", YAMLCONF_SCALAR, "!!timestamp", false},
        {"localhost:9090", YAMLCONF_SCALAR, "!!str", false},
        {"!!str 12", YAMLCONF_SCALAR, "!!str", false},
        {"!!int \"12\"", YAMLCONF_SCALAR, "!!int", true},
        {"!!float 1", YAMLCONF_SCALAR, "!!float", false},
        {"! 12", YAMLCONF_SCALAR, "!!str", false},
        {"!custom 12", YAMLCONF_SCALAR, "!custom", false},
        {"|\n  block\n", YAMLCONF_SCALAR, "!!str", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        yamlconf_doc *doc = parse_ok(cases[i].text);
        const yamlconf_node *n = yamlconf_root(doc);
        if (n->kind != cases[i].kind || strcmp(n->tag, cases[i].tag) != 0 ||
            n->quoted != cases[i].quoted) {
            fail_msg("%s: got kind %s tag %s quoted %d", cases[i].text, yamlconf_kind_name(n->kind),
                     n->tag, n->quoted);
        }
        yamlconf_free(doc);
    }
}

static void test_typed_getters(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc_i64;
        int64_t i64;
        int rc_u64;
        uint64_t u64;
    } ints[] = {
        {"42", 0, 42, 0, 42},
        {"-7", 0, -7, -ERANGE, 0},
        {"0x10", 0, 16, 0, 16},
        {"-0x10", 0, -16, -ERANGE, 0},
        {"0o17", 0, 15, 0, 15},
        {"017", 0, 15, 0, 15},
        {"0b11", 0, 3, 0, 3},
        {"1_000_000", 0, 1000000, 0, 1000000},
        {"9223372036854775807", 0, INT64_MAX, 0, 9223372036854775807ULL},
        {"-9223372036854775808", 0, INT64_MIN, -ERANGE, 0},
        {"9223372036854775808", -ERANGE, 0, 0, 9223372036854775808ULL},
        {"1e3", 0, 1000, 0, 1000}, /* floats truncate, as yaml.v2 */
        {"2.9", 0, 2, 0, 2},
        {"abc", -EINVAL, 0, -EINVAL, 0},
        {"'12'", -EINVAL, 0, -EINVAL, 0},
        {"true", -EINVAL, 0, -EINVAL, 0},
        {".nan", -ERANGE, 0, -ERANGE, 0},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        yamlconf_doc *doc = parse_ok(ints[i].text);
        const yamlconf_node *n = yamlconf_root(doc);
        int64_t v = 0;
        uint64_t u = 0;
        int rc = yamlconf_int64(n, &v);
        if (rc != ints[i].rc_i64 || (rc == 0 && v != ints[i].i64)) {
            fail_msg("int64(%s): rc %d value %lld", ints[i].text, rc, (long long)v);
        }
        rc = yamlconf_uint64(n, &u);
        if (rc != ints[i].rc_u64 || (rc == 0 && u != ints[i].u64)) {
            fail_msg("uint64(%s): rc %d value %llu", ints[i].text, rc, (unsigned long long)u);
        }
        yamlconf_free(doc);
    }

    static const struct {
        const char *text;
        int rc;
        bool v;
    } bools[] = {{"true", 0, true},      {"Yes", 0, true},  {"on", 0, true},   {"y", 0, true},
                 {"FALSE", 0, false},    {"no", 0, false},  {"Off", 0, false}, {"n", 0, false},
                 {"'true'", -EINVAL, 0}, {"1", -EINVAL, 0}, {"~", -EINVAL, 0}};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        yamlconf_doc *doc = parse_ok(bools[i].text);
        bool b = !bools[i].v;
        int rc = yamlconf_bool(yamlconf_root(doc), &b);
        if (rc != bools[i].rc || (rc == 0 && b != bools[i].v)) fail_msg("bool(%s)", bools[i].text);
        yamlconf_free(doc);
    }

    static const struct {
        const char *text;
        double v;
    } floats[] = {{"1.5", 1.5},         {"-2", -2},   {"1e-3", 0.001}, {".inf", INFINITY},
                  {"-.INF", -INFINITY}, {"0x10", 16}, {"1_0.5", 10.5}};
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        yamlconf_doc *doc = parse_ok(floats[i].text);
        double d = 0;
        assert_int_equal(yamlconf_float(yamlconf_root(doc), &d), 0);
        if (d != floats[i].v) fail_msg("float(%s) = %g", floats[i].text, d);
        yamlconf_free(doc);
    }
    yamlconf_doc *doc = parse_ok(".nan");
    double d = 0;
    assert_int_equal(yamlconf_float(yamlconf_root(doc), &d), 0);
    assert_true(isnan(d));
    yamlconf_free(doc);
    doc = parse_ok("'1.5'");
    assert_int_equal(yamlconf_float(yamlconf_root(doc), &d), -EINVAL);
    yamlconf_free(doc);
}

static void test_tree_and_positions(void **state)
{
    (void)state;
    const char *text = "# comment\n"
                       "global:\n"
                       "  scrape_interval: 15s\n"
                       "scrape_configs:\n"
                       "  - job_name: a\n"
                       "    static_configs:\n"
                       "      - targets: ['x:1', \"y:2\"]\n"
                       "  - job_name: b\n"
                       "empty:\n";
    yamlconf_doc *doc = parse_ok(text);
    const yamlconf_node *root = yamlconf_root(doc);
    assert_int_equal(root->kind, YAMLCONF_MAP);
    assert_string_equal(root->tag, "!!map");
    assert_int_equal(root->n, 3);
    assert_int_equal(root->line, 2);
    assert_int_equal(root->col, 1);
    /* Pairs keep document order. */
    assert_true(yamlconf_str_eq(root->pairs[0].key, "global"));
    assert_true(yamlconf_str_eq(root->pairs[1].key, "scrape_configs"));
    assert_true(yamlconf_str_eq(root->pairs[2].key, "empty"));
    assert_true(yamlconf_is_null(root->pairs[2].value));

    const yamlconf_node *k = NULL;
    const yamlconf_node *g = yamlconf_map_get(root, "global", &k);
    assert_non_null(g);
    assert_int_equal(k->line, 2);
    assert_int_equal(k->col, 1);
    const yamlconf_node *si = yamlconf_map_get(g, "scrape_interval", &k);
    assert_string_equal(si->str, "15s");
    assert_int_equal(si->len, 3);
    assert_int_equal(si->line, 3);
    assert_int_equal(si->col, 20);
    assert_int_equal(k->col, 3);
    assert_null(yamlconf_map_get(g, "nope", &k));
    assert_null(k);
    assert_null(yamlconf_map_get(si, "x", NULL)); /* not a mapping */

    const yamlconf_node *sc = yamlconf_map_get(root, "scrape_configs", NULL);
    assert_int_equal(sc->kind, YAMLCONF_SEQ);
    assert_string_equal(sc->tag, "!!seq");
    assert_int_equal(sc->n, 2);
    assert_int_equal(sc->items[0]->line, 5);
    assert_int_equal(sc->items[0]->col, 5);
    const yamlconf_node *st = yamlconf_map_get(sc->items[0], "static_configs", NULL);
    const yamlconf_node *tg = yamlconf_map_get(st->items[0], "targets", NULL);
    assert_int_equal(tg->n, 2);
    assert_string_equal(tg->items[0]->str, "x:1");
    assert_true(tg->items[0]->quoted);
    assert_int_equal(tg->items[1]->line, 7);
    assert_int_equal(tg->items[1]->col, 26);
    assert_true(yamlconf_str_eq(yamlconf_map_get(sc->items[1], "job_name", NULL), "b"));
    yamlconf_free(doc);

    /* An empty stream and a comment-only stream give a null root. */
    doc = parse_ok("");
    assert_int_equal(yamlconf_root(doc)->kind, YAMLCONF_NULL);
    yamlconf_free(doc);
    doc = parse_ok("# nothing\n---\n");
    assert_int_equal(yamlconf_root(doc)->kind, YAMLCONF_NULL);
    yamlconf_free(doc);
    yamlconf_free(NULL);
}

static void test_binary(void **state)
{
    (void)state;
    yamlconf_doc *doc = parse_ok("!!binary \"/w==\": !!binary |\n  aGVs\n  bG8A\n");
    const yamlconf_node *root = yamlconf_root(doc);
    const yamlconf_node *k = root->pairs[0].key, *v = root->pairs[0].value;
    assert_string_equal(k->tag, "!!binary");
    assert_int_equal(k->len, 1);
    assert_int_equal((unsigned char)k->str[0], 0xff);
    assert_int_equal(v->len, 6);
    assert_memory_equal(v->str, "hello\0", 6);
    yamlconf_free(doc);

    static const char *const bad[] = {"!!binary abc", "!!binary 'a b='", "!!binary '=AAA'",
                                      "!!binary 'AA=A'", "!!binary 'AAAA='"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *msg = parse_err(bad[i], strlen(bad[i]), -EINVAL);
        if (!strstr(msg, "t.yml:1:1: !!binary value contains invalid base64 data")) {
            fail_msg("%s: %s", bad[i], msg);
        }
        free(msg);
    }
}

static void test_anchors_and_merge(void **state)
{
    (void)state;
    const char *text = "base: &b\n"
                       "  a: 1\n"
                       "  b: 2\n"
                       "other: &o {c: 3, a: 9}\n"
                       "m1:\n"
                       "  <<: *b\n"
                       "  b: 20\n"
                       "m2:\n"
                       "  x: 0\n"
                       "  <<: [*o, *b]\n"
                       "alias: *b\n"
                       "quoted:\n"
                       "  '<<': *b\n";
    yamlconf_doc *doc = parse_ok(text);
    const yamlconf_node *root = yamlconf_root(doc);
    const yamlconf_node *base = yamlconf_map_get(root, "base", NULL);
    /* Aliases share the anchored node. */
    assert_ptr_equal(yamlconf_map_get(root, "alias", NULL), base);

    const yamlconf_node *m1 = yamlconf_map_get(root, "m1", NULL);
    assert_int_equal(m1->n, 2); /* a merged, b explicit (not overridden) */
    assert_true(yamlconf_str_eq(m1->pairs[0].key, "a"));
    assert_true(yamlconf_str_eq(m1->pairs[1].key, "b"));
    assert_string_equal(m1->pairs[1].value->str, "20");
    /* The merged value is the anchored node itself, with its position. */
    assert_ptr_equal(m1->pairs[0].value, yamlconf_map_get(base, "a", NULL));
    assert_int_equal(m1->pairs[0].value->line, 2);

    const yamlconf_node *m2 = yamlconf_map_get(root, "m2", NULL);
    /* x, then c and a from *o (earlier sources win), then b from *b. */
    assert_int_equal(m2->n, 4);
    assert_true(yamlconf_str_eq(m2->pairs[0].key, "x"));
    assert_true(yamlconf_str_eq(m2->pairs[1].key, "c"));
    assert_true(yamlconf_str_eq(m2->pairs[2].key, "a"));
    assert_string_equal(m2->pairs[2].value->str, "9");
    assert_true(yamlconf_str_eq(m2->pairs[3].key, "b"));

    /* A quoted '<<' is an ordinary key. */
    const yamlconf_node *q = yamlconf_map_get(root, "quoted", NULL);
    assert_int_equal(q->n, 1);
    assert_true(yamlconf_str_eq(q->pairs[0].key, "<<"));
    assert_int_equal(q->pairs[0].value->kind, YAMLCONF_MAP);
    yamlconf_free(doc);

    /* Duplicate explicit keys are kept for the consumer to report. */
    doc = parse_ok("a: 1\na: 2\n");
    assert_int_equal(yamlconf_root(doc)->n, 2);
    yamlconf_free(doc);

    /* A redefined anchor refers to its latest definition. */
    doc = parse_ok("a: &x 1\nb: &x 2\nc: *x\n");
    assert_string_equal(yamlconf_map_get(yamlconf_root(doc), "c", NULL)->str, "2");
    yamlconf_free(doc);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        {"a: b: c\n", "t.yml:1:5: mapping values are not allowed in this context"},
        {"a:\n  - b\n  c: d\n", "t.yml:3:3: while parsing a block collection did not find "
                                "expected '-' indicator (started at line 2, column 3)"},
        {"a: [1, 2\n", "t.yml:2:1: while parsing a flow sequence did not find expected ',' or "
                       "']' (started at line 1, column 4)"},
        {"a: *nope\n", "t.yml:1:4: unknown anchor 'nope' referenced"},
        {"a: &x [1, *x]\n", "t.yml:1:11: anchor 'x' value contains itself"},
        {"a: 1\n---\nb: 2\n", "t.yml:2:1: multiple YAML documents are not supported"},
        {"a:\n  <<: 1\n", "t.yml:2:7: map merge requires map or sequence of maps as the value"},
        {"a:\n  <<: [{x: 1}, 2]\n", "t.yml:2:7: map merge requires map or sequence of maps"},
        {"a: !!int abc\n", "t.yml:1:4: cannot decode !!str `abc` as a !!int"},
        {"a: !!bool 'yes, please'\n", "t.yml:1:4: cannot decode !!str `yes, pl...` as a !!bool"},
        {"a: !!null x\n", "t.yml:1:4: cannot decode !!str `x` as a !!null"},
        {"a: \"\\q\"\n", "t.yml:1:5: while parsing a quoted scalar found unknown escape "
                         "character (started at line 1, column 4)"},
        {"a: 'x\n", "t.yml:2:1: while scanning a quoted scalar found unexpected end of stream"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *msg = parse_err(cases[i].text, strlen(cases[i].text), -EINVAL);
        if (!strstr(msg, cases[i].msg)) fail_msg("%s: got %s", cases[i].text, msg);
        /* One line, newline-terminated. */
        assert_ptr_equal(strchr(msg, '\n'), msg + strlen(msg) - 1);
        free(msg);
    }
    /* Invalid UTF-8 and control characters: the position is computed from
     * the byte offset. */
    char *msg = parse_err("a: 1\nb: \xff\n", 10, -EINVAL);
    assert_non_null(strstr(msg, "t.yml:2:4: invalid leading UTF-8 octet"));
    free(msg);
    msg = parse_err("a: x\0y\n", 7, -EINVAL);
    assert_non_null(strstr(msg, "t.yml:1:5: control characters are not allowed"));
    free(msg);
    /* A NULL err buffer is allowed. */
    yamlconf_doc *doc = (yamlconf_doc *)1;
    assert_int_equal(yamlconf_parse("a: [", 4, "x", &doc, NULL), -EINVAL);
    assert_null(doc);
}

static void test_limits(void **state)
{
    (void)state;
    /* Nesting depth. */
    buf y;
    buf_init(&y, BUF_UNLIMITED);
    for (int i = 0; i < YAMLCONF_MAX_DEPTH + 1; i++)
        buf_putc(&y, '[');
    for (int i = 0; i < YAMLCONF_MAX_DEPTH + 1; i++)
        buf_putc(&y, ']');
    char *msg = parse_err(y.data, y.len, -EINVAL);
    assert_non_null(strstr(msg, "t.yml:1:257: document nested too deeply (more than 256 levels)"));
    free(msg);
    buf_reset(&y);
    for (int i = 0; i < YAMLCONF_MAX_DEPTH; i++)
        buf_putc(&y, '[');
    for (int i = 0; i < YAMLCONF_MAX_DEPTH; i++)
        buf_putc(&y, ']');
    yamlconf_doc *doc = NULL;
    assert_int_equal(yamlconf_parse(y.data, y.len, "t.yml", &doc, NULL), 0);
    yamlconf_free(doc);

    /* Alias bomb ("billion laughs"): each level doubles nine times. */
    buf_reset(&y);
    buf_puts(&y, "a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 10; i++) {
        buf_printf(&y, "a%d: &a%d [", i, i);
        for (int k = 0; k < 9; k++)
            buf_printf(&y, "%s*a%d", k ? ", " : "", i - 1);
        buf_puts(&y, "]\n");
    }
    msg = parse_err(y.data, y.len, -EINVAL);
    assert_non_null(strstr(msg, "document too large once aliases are expanded"));
    free(msg);

    /* A long string repeated through aliases counts by its length. */
    buf_reset(&y);
    buf_puts(&y, "s: &s \"");
    for (int i = 0; i < 1 << 20; i++)
        buf_putc(&y, 'x');
    buf_puts(&y, "\"\nl: [*s");
    for (int i = 0; i < 200; i++)
        buf_puts(&y, ", *s");
    buf_puts(&y, "]\n");
    msg = parse_err(y.data, y.len, -EINVAL);
    assert_non_null(strstr(msg, "t.yml:2:4: document too large once aliases are expanded"));
    free(msg);
    /* ... while a few copies are fine. */
    buf_truncate(&y, y.len - 2 - 4 * 190);
    buf_puts(&y, "]\n");
    assert_int_equal(yamlconf_parse(y.data, y.len, "t.yml", &doc, NULL), 0);
    yamlconf_free(doc);

    /* Node count. */
    buf_reset(&y);
    buf_putc(&y, '[');
    for (unsigned i = 0; i <= YAMLCONF_MAX_NODES; i++)
        buf_puts(&y, "1,");
    buf_putc(&y, ']');
    msg = parse_err(y.data, y.len, -EINVAL);
    assert_non_null(strstr(msg, "document has too many nodes"));
    free(msg);

    /* Input size: refused before parsing. */
    size_t big = YAMLCONF_MAX_INPUT + 1;
    char *p = malloc(big);
    memset(p, ' ', big);
    msg = parse_err(p, big, -E2BIG);
    assert_non_null(strstr(msg, "t.yml: YAML input too large"));
    free(msg);
    free(p);
    buf_cleanup(&y);
}

static void test_type_error_text(void **state)
{
    (void)state;
    static const struct {
        const char *text, *go_type, *msg;
    } cases[] = {
        {"abc", "uint", "cannot unmarshal !!str `abc` into uint"},
        {"12345678901", "bool", "cannot unmarshal !!int `1234567...` into bool"},
        {"[1]", "string", "cannot unmarshal !!seq into string"},
        {"{a: 1}", "[]string", "cannot unmarshal !!map into []string"},
        {"'true'", "bool", "cannot unmarshal !!str `true` into bool"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        yamlconf_doc *doc = parse_ok(cases[i].text);
        buf m;
        buf_init(&m, BUF_UNLIMITED);
        yamlconf_type_error(&m, yamlconf_root(doc), cases[i].go_type);
        assert_string_equal(buf_cstr(&m), cases[i].msg);
        buf_cleanup(&m);
        yamlconf_free(doc);
    }
    assert_string_equal(yamlconf_kind_name(YAMLCONF_MAP), "mapping");
    assert_string_equal(yamlconf_kind_name(YAMLCONF_NULL), "null");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_resolution),
        cmocka_unit_test(test_typed_getters),
        cmocka_unit_test(test_tree_and_positions),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_anchors_and_merge),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_type_error_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
