/* Unit tests for relabel: every action with Prometheus's semantics
 * (model/relabel/relabel_test.go behaviour), including chained rules,
 * template expansion in target labels, and hashmod's exact MD5 values. */
#include "testutil.h"

#include "arena.h"
#include "buf.h"
#include "labels.h"
#include "mem.h"
#include "relabel.h"

typedef struct rule {
    enum relabel_action action;
    const char *sources; /* comma-separated, or NULL */
    const char *separator;
    const char *target;
    const char *regex;
    uint64_t modulus;
    const char *replacement;
} rule;

static config_relabel make_rule(const rule *r)
{
    config_relabel c;
    memset(&c, 0, sizeof c);
    c.action = r->action;
    c.separator = (char *)(r->separator ? r->separator : ";");
    c.target_label = (char *)r->target;
    c.replacement = (char *)(r->replacement ? r->replacement : "$1");
    c.modulus = r->modulus;
    const char *re = r->regex ? r->regex : "(.*)";
    assert_int_equal(regex_compile(&c.regex, re, strlen(re), NULL), 0);
    if (r->sources) {
        char *copy = mem_strdup(r->sources), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            c.source_labels =
                mem_realloc(c.source_labels, (c.n_source_labels + 1) * sizeof(char *));
            c.source_labels[c.n_source_labels++] = mem_strdup(t);
        }
        mem_free(copy);
    }
    return c;
}

static void free_rule(config_relabel *c)
{
    for (size_t i = 0; i < c->n_source_labels; i++)
        mem_free(c->source_labels[i]);
    mem_free(c->source_labels);
    regex_free(c->regex);
}

/* Parses "{a="b", c="d"}"-less simple form: "a=b,c=d". */
static labels *parse_simple(const char *s)
{
    labels_builder b;
    labels_builder_init(&b);
    char *copy = mem_strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        labels_builder_add(&b, t, (size_t)(eq - t), eq + 1, strlen(eq + 1));
    }
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    mem_free(copy);
    return ls;
}

typedef struct relabel_case {
    const char *name;
    const char *input;
    rule rules[3];
    size_t n_rules;
    const char *output; /* NULL = dropped */
} relabel_case;

static const relabel_case cases[] = {
    {"replace default regex",
     "a=foo,b=bar",
     {{RELABEL_REPLACE, "a", NULL, "d", "f(.*)", 0, "ch${1}-ch${1}"}},
     1,
     "a=foo,b=bar,d=choo-choo"},
    {"replace joined sources, chained",
     "a=foo,b=bar,c=baz",
     {{RELABEL_REPLACE, "a,b", NULL, "a", "f(.*);(.*)r", 0, "b${1}${2}m"},
      {RELABEL_REPLACE, "c,a", NULL, "d", "(b).*b(.*)ba(.*)", 0, "$1$2$2$3"}},
     2,
     "a=boobam,b=bar,c=baz,d=boooom"},
    {"replace no match keeps",
     "a=foo",
     {{RELABEL_REPLACE, "a", NULL, "b", "f", 0, "bar"}},
     1,
     "a=foo"},
    {"replace empty result deletes",
     "a=foo,b=bar",
     {{RELABEL_REPLACE, "a", NULL, "b", "(.*)", 0, "${2}"}},
     1,
     "a=foo"},
    {"replace into template target",
     "a=some-name-value",
     {{RELABEL_REPLACE, "a", NULL, "${2}", "some-([^-]+)-([^,]+)", 0, "${1}"}},
     1,
     "a=some-name-value,value=name"},
    {"replace invalid target is ignored (legacy)",
     "a=some-name-0",
     {{RELABEL_REPLACE, "a", NULL, "${3}", "some-([^-]+)-([^,]+)", 0, "${1}"}},
     1,
     "a=some-name-0"},
    {"replace fast path sets static",
     "a=foo",
     {{RELABEL_REPLACE, NULL, NULL, "b", NULL, 0, "static"}},
     1,
     "a=foo,b=static"},
    {"drop matching", "a=foo", {{RELABEL_DROP, "a", NULL, NULL, ".*o.*", 0, NULL}}, 1, NULL},
    {"drop non-matching keeps",
     "a=boo",
     {{RELABEL_DROP, "a", NULL, NULL, "f.*", 0, NULL}},
     1,
     "a=boo"},
    {"keep non-matching drops",
     "a=foo",
     {{RELABEL_KEEP, "a", NULL, NULL, "no-match", 0, NULL}},
     1,
     NULL},
    {"keep missing label matches empty",
     "a=foo",
     {{RELABEL_KEEP, "b", NULL, NULL, "", 0, NULL}},
     1,
     "a=foo"},
    {"keepequal",
     "a=foo,b=foo",
     {{RELABEL_KEEPEQUAL, "a", NULL, "b", NULL, 0, NULL}},
     1,
     "a=foo,b=foo"},
    {"keepequal drops",
     "a=foo,b=bar",
     {{RELABEL_KEEPEQUAL, "a", NULL, "b", NULL, 0, NULL}},
     1,
     NULL},
    {"dropequal", "a=foo,b=foo", {{RELABEL_DROPEQUAL, "a", NULL, "b", NULL, 0, NULL}}, 1, NULL},
    {"dropequal keeps",
     "a=foo,b=bar",
     {{RELABEL_DROPEQUAL, "a", NULL, "b", NULL, 0, NULL}},
     1,
     "a=foo,b=bar"},
    {"hashmod",
     "a=foo,b=bar,c=baz",
     {{RELABEL_HASHMOD, "c", NULL, "d", NULL, 1000, NULL}},
     1,
     "a=foo,b=bar,c=baz,d=976"},
    {"hashmod newline",
     "a=foo\nbar",
     {{RELABEL_HASHMOD, "a", NULL, "b", NULL, 1000, NULL}},
     1,
     "a=foo\nbar,b=734"},
    {"labelmap",
     "a=foo,b=bar,c=baz",
     {{RELABEL_LABELMAP, NULL, NULL, NULL, "a", 0, "foo"}},
     1,
     "a=foo,b=bar,c=baz,foo=foo"},
    {"labelmap with groups",
     "__meta_my_bar=aaa,__meta_my_baz=bbb,__meta_other=ccc",
     {{RELABEL_LABELMAP, NULL, NULL, NULL, "__meta_(my.*)", 0, "${1}"}},
     1,
     "__meta_my_bar=aaa,__meta_my_baz=bbb,__meta_other=ccc,my_bar=aaa,my_baz=bbb"},
    {"labeldrop",
     "a=foo,b=bar,c=baz",
     {{RELABEL_LABELDROP, NULL, NULL, NULL, "(b|c)", 0, NULL}},
     1,
     "a=foo"},
    {"labelkeep",
     "a=foo,b=bar,c=baz",
     {{RELABEL_LABELKEEP, NULL, NULL, NULL, "(b|c)", 0, NULL}},
     1,
     "b=bar,c=baz"},
    {"lowercase",
     "foo=bAr123Foo",
     {{RELABEL_LOWERCASE, "foo", NULL, "foo_lowercase", NULL, 0, NULL}},
     1,
     "foo=bAr123Foo,foo_lowercase=bar123foo"},
    {"uppercase unicode",
     "foo=b\xc3\xa9r",
     {{RELABEL_UPPERCASE, "foo", NULL, "up", NULL, 0, NULL}},
     1,
     "foo=b\xc3\xa9r,up=B\xc3\x89R"},
    {"separator",
     "a=x,b=y",
     {{RELABEL_REPLACE, "a,b", "-", "c", NULL, 0, NULL}},
     1,
     "a=x,b=y,c=x-y"},
};

static void test_cases(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const relabel_case *tc = &cases[i];
        config_relabel cfg[3];
        for (size_t k = 0; k < tc->n_rules; k++)
            cfg[k] = make_rule(&tc->rules[k]);
        labels *in = parse_simple(tc->input);
        labels_builder lb;
        labels_builder_init(&lb);
        labels_builder_from(&lb, in);
        arena a;
        arena_init(&a, 1 << 20);
        bool legacy = strstr(tc->name, "legacy") != NULL;
        bool keep = relabel_apply(cfg, tc->n_rules, &lb, &a, legacy);
        buf got;
        buf_init(&got, 4096);
        if (keep) {
            labels *out = labels_builder_finish(&lb, NULL);
            for (uint32_t k = 0; k < out->n; k++)
                buf_printf(&got, "%s%s=%s", k ? "," : "", out->v[k].name, out->v[k].value);
            labels_free(out);
        }
        const char *want = tc->output;
        bool ok = keep ? (want && strcmp(buf_cstr(&got), want) == 0) : want == NULL;
        if (!ok) {
            print_message("relabel case \"%s\": want %s, got %s\n", tc->name,
                          want ? want : "(dropped)", keep ? buf_cstr(&got) : "(dropped)");
            failed++;
        }
        buf_cleanup(&got);
        arena_cleanup(&a);
        labels_builder_cleanup(&lb);
        labels_free(in);
        for (size_t k = 0; k < tc->n_rules; k++)
            free_rule(&cfg[k]);
    }
    assert_int_equal(failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_cases)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
