/* Unit tests for labels: builder, canonical order, hashing, comparison,
 * formatting, encoding, matchers and the series selector parser (cases in
 * tests/data/selector/cases.txt). */
#include "testutil.h"

#include <errno.h>

#include "buf.h"
#include "labels.h"
#include "mem.h"

static labels *mk(const char *const *kv)
{
    labels_builder b;
    labels_builder_init(&b);
    for (size_t i = 0; kv[i]; i += 2)
        labels_builder_set(&b, kv[i], strlen(kv[i]), kv[i + 1], strlen(kv[i + 1]));
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return ls;
}

static char *fmt(const labels *ls, bool metric)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    if (metric)
        labels_format_metric(ls, &b);
    else
        labels_format(ls, &b);
    return buf_detach(&b, NULL);
}

static void test_builder_sorts_and_drops_empty(void **state)
{
    (void)state;
    const char *kv[] = {"job", "node", "__name__", "up", "empty", "", "instance", "a:1", NULL};
    labels *ls = mk(kv);
    assert_int_equal(ls->n, 3);
    assert_string_equal(ls->v[0].name, "__name__");
    assert_string_equal(ls->v[1].name, "instance");
    assert_string_equal(ls->v[2].name, "job");
    size_t len;
    assert_string_equal(labels_get(ls, "job", 3, &len), "node");
    assert_int_equal(len, 4);
    assert_null(labels_get(ls, "empty", 5, &len));
    char *s = fmt(ls, false);
    assert_string_equal(s, "{__name__=\"up\", instance=\"a:1\", job=\"node\"}");
    mem_free(s);
    s = fmt(ls, true);
    assert_string_equal(s, "up{instance=\"a:1\",job=\"node\"}");
    mem_free(s);
    labels_free(ls);
}

static void test_set_del_and_duplicates(void **state)
{
    (void)state;
    labels_builder b;
    labels_builder_init(&b);
    labels_builder_set(&b, "a", 1, "1", 1);
    labels_builder_set(&b, "a", 1, "2", 1);
    labels_builder_set(&b, "b", 1, "3", 1);
    labels_builder_set(&b, "b", 1, "", 0); /* empty value deletes */
    labels *ls = labels_builder_finish(&b, NULL);
    assert_int_equal(ls->n, 1);
    assert_string_equal(ls->v[0].value, "2");
    labels_free(ls);
    labels_builder_reset(&b);
    labels_builder_add(&b, "x", 1, "1", 1);
    labels_builder_add(&b, "x", 1, "2", 1);
    const char *dup = NULL;
    assert_null(labels_builder_finish(&b, &dup));
    assert_string_equal(dup, "x");
    labels_builder_cleanup(&b);
}

static void test_hash_equal_compare(void **state)
{
    (void)state;
    const char *a[] = {"a", "1", "b", "2", NULL}, *b[] = {"b", "2", "a", "1", NULL};
    const char *c[] = {"a", "1", "b", "3", NULL}, *d[] = {"a", "1", NULL};
    labels *la = mk(a), *lb = mk(b), *lc = mk(c), *ld = mk(d);
    assert_true(labels_equal(la, lb));
    assert_true(labels_hash(la) == labels_hash(lb));
    assert_false(labels_equal(la, lc));
    assert_true(labels_hash(la) != labels_hash(lc));
    assert_true(labels_compare(la, lc) < 0);
    assert_true(labels_compare(ld, la) < 0);
    assert_int_equal(labels_compare(la, lb), 0);
    labels *dup = labels_dup(la);
    assert_true(labels_equal(dup, la));
    assert_ptr_not_equal(dup->v[0].name, la->v[0].name);
    labels_free(dup);
    labels_free(la);
    labels_free(lb);
    labels_free(lc);
    labels_free(ld);
}

/* labels_empty() equals (and hashes as) an empty set built normally. */
static void test_empty_set(void **state)
{
    (void)state;
    labels_builder b;
    labels_builder_init(&b);
    labels *e = labels_builder_finish(&b, NULL);
    assert_int_equal(e->n, 0);
    assert_true(labels_hash(e) == labels_hash(labels_empty()));
    assert_true(labels_equal(e, labels_empty()));
    assert_int_equal(labels_compare(e, labels_empty()), 0);
    labels_free(e);
    labels_builder_cleanup(&b);
}

static void test_encode_decode(void **state)
{
    (void)state;
    labels_builder b;
    labels_builder_init(&b);
    labels_builder_set(&b, "__name__", 8, "m", 1);
    labels_builder_set(&b, "nul", 3, "a\0b", 3); /* values may contain NUL */
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    buf e;
    buf_init(&e, BUF_UNLIMITED);
    labels_encode(ls, &e);
    labels *back = NULL;
    assert_int_equal(labels_decode(e.data, e.len, &back), 0);
    assert_true(labels_equal(ls, back));
    size_t len;
    labels_get(back, "nul", 3, &len);
    assert_int_equal(len, 3);
    assert_int_equal(labels_decode(e.data, e.len - 1, &back), -EINVAL); /* truncated */
    labels_free(back);
    labels_free(ls);
    buf_cleanup(&e);
}

static void test_format_quoting(void **state)
{
    (void)state;
    const char *kv[] = {"__name__", "my.metric", "a.b", "x\"y", "c", "line\nbreak", NULL};
    labels *ls = mk(kv);
    char *s = fmt(ls, true);
    assert_string_equal(s, "{\"my.metric\",\"a.b\"=\"x\\\"y\",c=\"line\\nbreak\"}");
    mem_free(s);
    s = fmt(ls, false);
    assert_string_equal(s, "{__name__=\"my.metric\", \"a.b\"=\"x\\\"y\", c=\"line\\nbreak\"}");
    mem_free(s);
    labels_free(ls);
}

static void test_matchers(void **state)
{
    (void)state;
    const char *kv[] = {"__name__", "up", "job", "node", NULL};
    labels *ls = mk(kv);
    static const struct {
        enum matcher_type t;
        const char *name, *value;
        bool match, empty;
    } cases[] = {
        {MATCH_EQ, "job", "node", true, false},   {MATCH_EQ, "job", "nod", false, false},
        {MATCH_NEQ, "job", "x", true, true},      {MATCH_RE, "job", "no.*", true, false},
        {MATCH_RE, "job", "no", false, false}, /* fully anchored */
        {MATCH_RE, "job", "node|x", true, false}, {MATCH_NRE, "job", "n.*", false, true},
        {MATCH_EQ, "missing", "", true, true}, /* absent label is "" */
        {MATCH_RE, "missing", ".*", true, true},  {MATCH_RE, "missing", ".+", false, false},
        {MATCH_NEQ, "missing", "", false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        label_matcher m;
        assert_int_equal(labels_matcher_init(&m, cases[i].t, cases[i].name, strlen(cases[i].name),
                                             cases[i].value, strlen(cases[i].value), NULL),
                         0);
        if (labels_match_all(ls, &m, 1) != cases[i].match) fail_msg("case %zu: match", i);
        if (labels_matcher_matches_empty(&m) != cases[i].empty) fail_msg("case %zu: empty", i);
        labels_matcher_cleanup(&m);
    }
    label_matcher bad;
    buf err;
    buf_init(&err, 1024);
    assert_int_equal(labels_matcher_init(&bad, MATCH_RE, "a", 1, "(", 1, &err), -EINVAL);
    assert_non_null(strstr(buf_cstr(&err), "error parsing regexp"));
    buf_cleanup(&err);
    labels_free(ls);
}

static void test_selector_cases(void **state)
{
    (void)state;
    char *data = tu_read_file("tests/data/selector/cases.txt", NULL);
    assert_non_null(data);
    int failed = 0, total = 0;
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = '\0';
        const char *in = line, *want = tab + 1;
        total++;
        label_matcher *ms = NULL;
        size_t n = 0;
        buf err, got;
        buf_init(&err, 4096);
        buf_init(&got, 4096);
        int rc = labels_parse_selector(in, strlen(in), &ms, &n, &err);
        if (rc == 0) {
            for (size_t i = 0; i < n; i++) {
                if (i) buf_putc(&got, ' ');
                labels_matcher_format(&ms[i], &got);
            }
        } else {
            buf_printf(&got, "ERROR: %s", buf_cstr(&err));
        }
        bool ok = strncmp(want, "ERROR: ", 7) == 0 ? (rc < 0 && strstr(buf_cstr(&got), want + 7))
                                                   : strcmp(buf_cstr(&got), want) == 0;
        if (!ok) {
            print_message("selector case %s\n  want: %s\n  got:  %s\n", in, want, buf_cstr(&got));
            failed++;
        }
        labels_matchers_free(ms, n);
        buf_cleanup(&err);
        buf_cleanup(&got);
    }
    print_message("selector cases: %d passed, %d failed\n", total - failed, failed);
    free(data);
    assert_int_equal(failed, 0);
    assert_true(total >= 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builder_sorts_and_drops_empty),
        cmocka_unit_test(test_set_del_and_duplicates),
        cmocka_unit_test(test_hash_equal_compare),
        cmocka_unit_test(test_empty_set),
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_format_quoting),
        cmocka_unit_test(test_matchers),
        cmocka_unit_test(test_selector_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
