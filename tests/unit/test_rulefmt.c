/* Unit and conformance tests for rulefmt: Prometheus's model/rulefmt test
 * data read in place from ../shared/conformance/rulefmt/ (every good file
 * loads, every bad one fails with the substring EXPECTED_ERRORS.tsv gives),
 * exact messages and positions for inline cases, decoding (unknown fields,
 * durations, numbers, empty files), legacy name validation, rulefmt_glob
 * and the exit codes of `check rules`. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <unistd.h>

#include "buf.h"
#include "labels.h"
#include "mem.h"
#include "rulefmt.h"
#include "yamlconf.h"

#define CONF_DIR "conformance/rulefmt"

/* ---- helpers --------------------------------------------------------------- */

static rulefmt_file *parse_str(const char *yaml, const rulefmt_options *o, buf *err, int *rc)
{
    rulefmt_file *f = NULL;
    int r = rulefmt_parse(yaml, strlen(yaml), "inline.yml", o, &f, err);
    if (rc) *rc = r;
    if (r == 0)
        assert_non_null(f);
    else
        assert_null(f);
    return f;
}

static rulefmt_file *parse_ok(const char *yaml, const rulefmt_options *o)
{
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    int rc;
    rulefmt_file *f = parse_str(yaml, o, &err, &rc);
    if (rc != 0) fail_msg("unexpected failure (%d):\n%s\nfor:\n%s", rc, buf_cstr(&err), yaml);
    assert_int_equal(err.len, 0);
    buf_cleanup(&err);
    return f;
}

/* Parses a YAML text that must fail; err gets the messages. */
static void parse_bad(const char *yaml, const rulefmt_options *o, buf *err)
{
    int rc;
    rulefmt_file *f = parse_str(yaml, o, err, &rc);
    if (rc == 0) {
        rulefmt_file_free(f);
        fail_msg("expected a failure for:\n%s", yaml);
    }
    assert_int_equal(rc, -EINVAL);
    assert_true(err->len > 0);
}

static const char *label_value(const labels *ls, const char *name)
{
    size_t len;
    const char *v = labels_get(ls, name, strlen(name), &len);
    return v ? v : "";
}

static bool is_legacy_case(const char *file)
{
    return strncmp(file, "legacy_", 7) == 0;
}

/* ---- conformance: bad files ------------------------------------------------- */

static void test_conformance_bad(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED(CONF_DIR "/EXPECTED_ERRORS.tsv");
    char tsv_path[4096], dir[4096];
    tu_shared_path(tsv_path, sizeof tsv_path, CONF_DIR "/EXPECTED_ERRORS.tsv");
    tu_shared_path(dir, sizeof dir, CONF_DIR);
    char *tsv = tu_read_file(tsv_path, NULL);
    assert_non_null(tsv);

    int cases = 0, failures = 0;
    char listed[64][256];
    int n_listed = 0;
    char *save = NULL;
    for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0') continue;
        char *tab = strchr(line, '\t');
        if (!tab) fail_msg("malformed TSV line: %s", line);
        *tab = '\0';
        const char *file = line, *want = tab + 1;
        if (n_listed < 64) snprintf(listed[n_listed++], sizeof listed[0], "%s", file);
        cases++;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, file);
        rulefmt_options o = {.legacy_name_validation = is_legacy_case(file)};
        buf err;
        buf_init(&err, BUF_UNLIMITED);
        rulefmt_file *f = NULL;
        int rc = rulefmt_load(path, &o, &f, &err);
        if (rc == 0) {
            print_message("FAIL %s: loaded, expected an error containing '%s'\n", file, want);
            failures++;
            rulefmt_file_free(f);
        } else if (!strstr(buf_cstr(&err), want)) {
            print_message("FAIL %s: error does not contain '%s':\n%s", file, want, buf_cstr(&err));
            failures++;
        } else {
            /* Every line carries "<path>:<line>:<col>: ". */
            char prefix[8300];
            snprintf(prefix, sizeof prefix, "%s:", path);
            const char *p = buf_cstr(&err);
            unsigned l = 0, c = 0;
            if (strncmp(p, prefix, strlen(prefix)) != 0 ||
                sscanf(p + strlen(prefix), "%u:%u: ", &l, &c) != 2 || l == 0 || c == 0) {
                print_message("FAIL %s: no file:line:col prefix: %s", file, p);
                failures++;
            }
        }
        buf_cleanup(&err);
    }
    free(tsv);

    /* Every *.bad.yaml in the folder must be listed (no case left out). */
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 9 || strcmp(e->d_name + n - 9, ".bad.yaml") != 0) continue;
        bool found = false;
        for (int i = 0; i < n_listed && !found; i++)
            found = strcmp(listed[i], e->d_name) == 0;
        if (!found) {
            print_message("FAIL %s: bad file without an expected error in the TSV\n", e->d_name);
            failures++;
        }
    }
    closedir(d);
    print_message("rulefmt conformance bad files: %d cases, %d failures\n", cases, failures);
    assert_true(cases >= 11);
    assert_int_equal(failures, 0);
}

/* ---- conformance: good files ------------------------------------------------- */

/* The groups and rules counted straight from the YAML, to compare with. */
static void count_yaml(const char *path, size_t *groups, size_t rules[16])
{
    size_t len = 0;
    char *text = tu_read_file(path, &len);
    assert_non_null(text);
    yamlconf_doc *doc = NULL;
    assert_int_equal(yamlconf_parse(text, len, path, &doc, NULL), 0);
    const yamlconf_node *gs = yamlconf_map_get(yamlconf_root(doc), "groups", NULL);
    assert_non_null(gs);
    *groups = gs->n;
    for (size_t i = 0; i < gs->n && i < 16; i++) {
        const yamlconf_node *rs = yamlconf_map_get(gs->items[i], "rules", NULL);
        rules[i] = rs ? rs->n : 0;
    }
    yamlconf_free(doc);
    free(text);
}

static void test_conformance_good(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED(CONF_DIR "/test.yaml");
    char dir[4096];
    tu_shared_path(dir, sizeof dir, CONF_DIR);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int cases = 0, failures = 0;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        size_t n = strlen(name);
        if (n < 5 || strcmp(name + n - 5, ".yaml") != 0) continue;
        if (n >= 9 && strcmp(name + n - 9, ".bad.yaml") == 0) continue;
        cases++;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        rulefmt_options o = {.legacy_name_validation = is_legacy_case(name)};
        buf err;
        buf_init(&err, BUF_UNLIMITED);
        rulefmt_file *f = NULL;
        if (rulefmt_load(path, &o, &f, &err) != 0) {
            print_message("FAIL %s: %s", name, buf_cstr(&err));
            failures++;
            buf_cleanup(&err);
            continue;
        }
        size_t ng, nr[16] = {0};
        count_yaml(path, &ng, nr);
        if (f->n_groups != ng) {
            print_message("FAIL %s: %zu groups, YAML has %zu\n", name, f->n_groups, ng);
            failures++;
        }
        for (size_t i = 0; i < f->n_groups && i < ng && i < 16; i++) {
            const rulefmt_group *g = &f->groups[i];
            if (g->n_rules != nr[i]) {
                print_message("FAIL %s: group %zu has %zu rules, YAML has %zu\n", name, i,
                              g->n_rules, nr[i]);
                failures++;
            }
            for (size_t k = 0; k < g->n_rules; k++) {
                const rulefmt_rule *r = &g->rules[k];
                if ((r->record == NULL) == (r->alert == NULL) || !r->expr || !*r->expr ||
                    r->line <= 0 || r->col <= 0 || !r->labels || !r->annotations) {
                    print_message("FAIL %s: group %zu rule %zu is malformed\n", name, i, k);
                    failures++;
                }
            }
        }
        rulefmt_file_free(f);
        buf_cleanup(&err);
    }
    closedir(d);
    print_message("rulefmt conformance good files: %d cases, %d failures\n", cases, failures);
    assert_true(cases >= 5);
    assert_int_equal(failures, 0);
}

/* TestParseFileSuccessWithAliases */
static void test_conformance_aliases(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED(CONF_DIR "/test_aliases.yaml");
    char path[4096];
    tu_shared_path(path, sizeof path, CONF_DIR "/test_aliases.yaml");
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    rulefmt_file *f = NULL;
    if (rulefmt_load(path, NULL, &f, &err) != 0) fail_msg("%s", buf_cstr(&err));
    const char *expr = "sum without(instance) (rate(errors_total[5m]))\n/\n"
                       "sum without(instance) (rate(requests_total[5m]))\n";
    assert_int_equal(f->n_groups, 2);
    for (size_t i = 0; i < f->n_groups; i++) {
        const rulefmt_group *g = &f->groups[i];
        assert_int_equal(g->n_rules, 4);
        assert_int_equal(g->interval_ms, 30000);
        assert_string_equal(g->rules[0].alert, "HighAlert");
        assert_string_equal(label_value(g->rules[0].labels, "severity"), "critical");
        assert_null(g->rules[1].alert);
        assert_string_equal(g->rules[1].record, "new_metric");
        assert_string_equal(g->rules[2].alert, "HighAlert");
        assert_string_equal(g->rules[3].alert, "HighAlert2");
        assert_string_equal(label_value(g->rules[3].labels, "severity"), "critical");
        for (size_t k = 0; k < g->n_rules; k++)
            assert_string_equal(g->rules[k].expr, expr);
    }
    const rulefmt_rule *r0 = &f->groups[0].rules[0];
    assert_string_equal(label_value(r0->annotations, "description"),
                        "stuff's happening with {{ $.labels.service }}");
    assert_int_equal(r0->for_ms, 5 * 60 * 1000);
    /* The merged rule keeps the anchored rule's for and annotations. */
    assert_int_equal(f->groups[0].rules[3].for_ms, 5 * 60 * 1000);
    assert_string_equal(label_value(f->groups[0].rules[3].annotations, "description"),
                        "stuff's happening with {{ $.labels.service }}");
    rulefmt_file_free(f);
    buf_cleanup(&err);
}

/* ---- exact messages and positions ------------------------------------------ */

static const struct {
    const char *name, *yaml, *want; /* want: the complete error text */
} position_cases[] = {
    {"bad expr", "groups:\n- name: g\n  rules:\n  - record: a\n    expr: sum(\n",
     "inline.yml:5:11: group \"g\", rule 1, \"a\": could not parse expression: 1:5: parse "
     "error: unclosed left parenthesis\n"},
    {"record and alert",
     "groups:\n  - name: g\n    rules:\n      - record: Hi\n        alert: Hello\n        expr: "
     "1\n",
     "inline.yml:4:17: 5:16: group \"g\", rule 1, \"Hello\": only one of 'record' and 'alert' "
     "must be set\n"},
    {"neither record nor alert: the rule's position",
     "groups:\n- name: g\n  rules:\n  - expr: up\n",
     "inline.yml:4:5: group \"g\", rule 1, \"\": one of 'record' or 'alert' must be set\n"},
    {"missing expr", "groups:\n- name: g\n  rules:\n  - alert: A\n",
     "inline.yml:4:5: group \"g\", rule 1, \"A\": field 'expr' must be set in rule\n"},
    {"empty group name", "groups:\n- name: ''\n  rules: []\n",
     "inline.yml:2:3: Groupname must not be empty\n"},
    {"duplicate group", "groups:\n- name: x\n  rules: []\n- name: x\n",
     "inline.yml:4:3: groupname: \"x\" is repeated in the same file\n"},
    {"recording rule with annotations",
     "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    annotations:\n      a: b\n",
     "inline.yml:4:13: group \"g\", rule 1, \"r\": invalid field 'annotations' in recording "
     "rule\n"},
    {"invalid label name at its key",
     "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    labels:\n      __name__: x\n",
     "inline.yml:7:7: group \"g\", rule 1, \"r\": invalid label name: __name__\n"},
    {"label __name__ with an empty value",
     "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    labels:\n      __name__: ''\n",
     "inline.yml:7:7: group \"g\", rule 1, \"r\": invalid label name: __name__\n"},
    {"group label __name__", "groups:\n- name: g\n  labels:\n    __name__: x\n  rules: []\n",
     "inline.yml:4:5: invalid label name: __name__\n"},
    {"invalid UTF-8 label value",
     "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    labels:\n      a: !!binary "
     "/w==\n",
     "inline.yml:7:7: group \"g\", rule 1, \"r\": invalid label value: \xff\n"},
    {"unknown rule field",
     "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotation:\n      a: b\n",
     "inline.yml:6:5: field annotation not found in type rulefmt.Rule\n"},
    {"unknown top-level fields", "rule_files: [a]\ngroups: []\ntests: []\n",
     "inline.yml:1:1: field rule_files not found in type rulefmt.RuleGroups\n"
     "inline.yml:3:1: field tests not found in type rulefmt.RuleGroups\n"},
    {"bad duration", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    for: 5x\n",
     "inline.yml:6:10: unknown unit \"x\" in duration \"5x\"\n"},
    {"bad interval", "groups:\n- name: g\n  interval: 1.5m\n",
     "inline.yml:3:13: unknown unit \".\" in duration \"1.5m\"\n"},
    {"limit not an int", "groups:\n- name: g\n  limit: many\n",
     "inline.yml:3:10: cannot unmarshal !!str `many` into int\n"},
    {"groups not a list", "groups: {a: b}\n",
     "inline.yml:1:9: cannot unmarshal !!map into []rulefmt.RuleGroup\n"},
    {"rules not a list", "groups:\n- name: g\n  rules: x\n",
     "inline.yml:3:10: cannot unmarshal !!str `x` into []rulefmt.Rule\n"},
    {"a rule that is a string", "groups:\n- name: g\n  rules:\n  - up\n",
     "inline.yml:4:5: cannot unmarshal !!str `up` into rulefmt.Rule\n"},
    {"root is a list", "- a\n", "inline.yml:1:1: cannot unmarshal !!seq into rulefmt.RuleGroups\n"},
    {"expr is a list", "groups:\n- name: g\n  rules:\n  - record: r\n    expr: [up]\n",
     "inline.yml:5:11: cannot unmarshal !!seq into string\n"},
    {"repeated key", "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    expr: down\n",
     "inline.yml:6:5: mapping key \"expr\" already defined at line 5\n"},
    {"label template error (alerts)",
     "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      s: "
     "\"{{ x\"\n",
     NULL /* checked by prefix below: the text is template.c's */},
    {"recording rule name with braces",
     "groups:\n- name: g\n  rules:\n  - record: 'a{b=\"c\"}'\n    expr: up\n",
     "inline.yml:4:13: group \"g\", rule 1, \"a{b=\\\"c\\\"}\": braces present in the recording "
     "rule name; should it be in expr?: a{b=\"c\"}\n"},
    {"record for and keep_firing_for",
     "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    for: 1m\n    "
     "keep_firing_for: 2m\n",
     "inline.yml:4:13: group \"g\", rule 1, \"r\": invalid field 'for' in recording rule\n"
     "inline.yml:4:13: group \"g\", rule 1, \"r\": invalid field 'keep_firing_for' in recording "
     "rule\n"},
};

static void test_positions(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof position_cases / sizeof position_cases[0]; i++) {
        buf err;
        buf_init(&err, BUF_UNLIMITED);
        rulefmt_file *f = NULL;
        const char *y = position_cases[i].yaml;
        int rc = rulefmt_parse(y, strlen(y), "inline.yml", NULL, &f, &err);
        const char *want = position_cases[i].want;
        if (rc == 0) {
            print_message("FAIL %s: parsed\n", position_cases[i].name);
            failures++;
            rulefmt_file_free(f);
        } else if (want && strcmp(buf_cstr(&err), want) != 0) {
            print_message("FAIL %s:\n got: %s want: %s", position_cases[i].name, buf_cstr(&err),
                          want);
            failures++;
        } else if (!want) {
            const char *p = "inline.yml:7:10: group \"g\", rule 1, \"A\": annotation \"s\": ";
            if (strncmp(buf_cstr(&err), p, strlen(p)) != 0) {
                print_message("FAIL %s:\n got: %s want prefix: %s\n", position_cases[i].name,
                              buf_cstr(&err), p);
                failures++;
            }
        }
        buf_cleanup(&err);
    }
    print_message("rulefmt position cases: %zu, %d failures\n",
                  sizeof position_cases / sizeof position_cases[0], failures);
    assert_int_equal(failures, 0);
}

/* ---- decoding ---------------------------------------------------------------- */

static void test_unknown_fields(void **state)
{
    (void)state;
    const char *y = "groups:\n- name: g\n  namespace: team\n  rules:\n  - alert: A\n"
                    "    expr: up\n    owner: me\n";
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    parse_bad(y, NULL, &err);
    assert_string_equal(buf_cstr(&err),
                        "inline.yml:3:3: field namespace not found in type rulefmt.RuleGroup\n"
                        "inline.yml:7:5: field owner not found in type rulefmt.Rule\n");
    buf_cleanup(&err);

    rulefmt_options o = {.ignore_unknown_fields = true};
    rulefmt_file *f = parse_ok(y, &o);
    assert_int_equal(f->n_groups, 1);
    assert_int_equal(f->groups[0].n_rules, 1);
    assert_string_equal(f->groups[0].rules[0].alert, "A");
    rulefmt_file_free(f);
}

static void test_durations_and_fields(void **state)
{
    (void)state;
    const char *y = "groups:\n"
                    "- name: g\n"
                    "  interval: 1m30s\n"
                    "  query_offset: 0s\n"
                    "  limit: 10\n"
                    "  labels: {team: a}\n"
                    "  rules:\n"
                    "  - alert: A\n"
                    "    expr: up == 0\n"
                    "    for: 1h\n"
                    "    keep_firing_for: 2w\n"
                    "    labels: {sev: page, b: x}\n"
                    "    annotations: {summary: 'x {{ $labels.a }}'}\n"
                    "- name: h\n"
                    "  rules:\n"
                    "  - record: r:x\n"
                    "    expr: sum(up)\n";
    rulefmt_file *f = parse_ok(y, NULL);
    assert_int_equal(f->n_groups, 2);
    const rulefmt_group *g = &f->groups[0];
    assert_string_equal(g->name, "g");
    assert_int_equal(g->interval_ms, 90000);
    assert_true(g->has_query_offset);
    assert_int_equal(g->query_offset_ms, 0);
    assert_int_equal(g->limit, 10);
    assert_string_equal(label_value(g->labels, "team"), "a");
    assert_int_equal(g->line, 2);
    assert_int_equal(g->col, 3);
    const rulefmt_rule *r = &g->rules[0];
    assert_int_equal(r->for_ms, 3600000);
    assert_int_equal(r->keep_firing_for_ms, 14LL * 24 * 3600 * 1000);
    assert_int_equal(r->labels->n, 2);
    assert_string_equal(r->labels->v[0].name, "b"); /* sorted */
    assert_string_equal(label_value(r->annotations, "summary"), "x {{ $labels.a }}");
    assert_int_equal(r->line, 8);
    assert_int_equal(r->col, 5);
    const rulefmt_group *h = &f->groups[1];
    assert_false(h->has_query_offset);
    assert_int_equal(h->interval_ms, 0);
    assert_string_equal(h->rules[0].record, "r:x");
    assert_null(h->rules[0].alert);
    assert_int_equal(h->rules[0].annotations->n, 0);
    rulefmt_file_free(f);
}

static void test_number_expr(void **state)
{
    (void)state;
    rulefmt_file *f = parse_ok("groups:\n- name: g\n  rules:\n  - record: one\n    expr: 1\n"
                               "  - record: two\n    expr: 2.5e3\n  - alert: yes_it_is\n"
                               "    expr: true\n",
                               NULL);
    assert_string_equal(f->groups[0].rules[0].expr, "1");
    assert_string_equal(f->groups[0].rules[1].expr, "2.5e3");
    /* A YAML bool is taken as its text, which PromQL reads as a metric. */
    assert_string_equal(f->groups[0].rules[2].expr, "true");
    rulefmt_file_free(f);
}

static void test_empty(void **state)
{
    (void)state;
    const char *texts[] = {"", "# nothing\n", "groups:\n", "groups: []\n", "---\n"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        rulefmt_file *f = parse_ok(texts[i], NULL);
        assert_int_equal(f->n_groups, 0);
        assert_string_equal(f->path, "inline.yml");
        rulefmt_file_free(f);
    }
    /* Null items of the groups and rules lists are dropped (yaml.v3). */
    rulefmt_file *n = parse_ok("groups:\n- null\n- name: g\n  rules:\n  - ~\n  - record: r\n"
                               "    expr: up\n- \n",
                               NULL);
    assert_int_equal(n->n_groups, 1);
    assert_int_equal(n->groups[0].n_rules, 1);
    assert_string_equal(n->groups[0].rules[0].record, "r");
    rulefmt_file_free(n);
    /* A group without rules is fine. */
    rulefmt_file *f = parse_ok("groups:\n- name: g\n", NULL);
    assert_int_equal(f->n_groups, 1);
    assert_int_equal(f->groups[0].n_rules, 0);
    rulefmt_file_free(f);
}

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    parse_bad("groups:\n- name: [\n", NULL, &err);
    assert_true(strncmp(buf_cstr(&err), "inline.yml:", 11) == 0);
    assert_true(err.data[err.len - 1] == '\n');
    buf_cleanup(&err);
}

static void test_legacy_validation(void **state)
{
    (void)state;
    const char *lname = "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n"
                        "    labels:\n      ins-tance: x\n";
    const char *rname = "groups:\n- name: g\n  rules:\n  - record: my.metric\n    expr: up\n";
    const char *aname = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n"
                        "    annotations:\n      ins-tance: x\n";
    rulefmt_options legacy = {.legacy_name_validation = true};
    rulefmt_file *f = parse_ok(lname, NULL);
    rulefmt_file_free(f);
    f = parse_ok(rname, NULL);
    rulefmt_file_free(f);
    f = parse_ok(aname, NULL);
    rulefmt_file_free(f);

    buf err;
    buf_init(&err, BUF_UNLIMITED);
    parse_bad(lname, &legacy, &err);
    assert_string_equal(
        buf_cstr(&err),
        "inline.yml:7:7: group \"g\", rule 1, \"r\": invalid label name: ins-tance\n");
    buf_reset(&err);
    parse_bad(rname, &legacy, &err);
    assert_string_equal(buf_cstr(&err), "inline.yml:4:13: group \"g\", rule 1, \"my.metric\": "
                                        "invalid recording rule name: my.metric\n");
    buf_reset(&err);
    parse_bad(aname, &legacy, &err);
    assert_string_equal(
        buf_cstr(&err),
        "inline.yml:7:7: group \"g\", rule 1, \"A\": invalid annotation name: ins-tance\n");
    buf_cleanup(&err);
}

static void test_load_missing(void **state)
{
    (void)state;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    rulefmt_file *f = NULL;
    assert_int_equal(rulefmt_load("/nonexistent/wip-rulefmt.yml", NULL, &f, &err), -ENOENT);
    assert_null(f);
    assert_string_equal(buf_cstr(&err),
                        "/nonexistent/wip-rulefmt.yml: No such file or directory\n");
    buf_cleanup(&err);
}

/* ---- rulefmt_glob ------------------------------------------------------------- */

static void touch(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fclose(fp);
}

static void test_glob(void **state)
{
    (void)state;
    char dir[] = "/tmp/wip-rulefmt-glob-XXXXXX";
    assert_non_null(mkdtemp(dir));
    touch(dir, "b.yml");
    touch(dir, "a.yml");
    touch(dir, "c.rules");
    char *pats[] = {"*.yml", "a.yml", "nothing-*.yml", "c.rules", "missing.yml"};
    char **paths = NULL;
    size_t n = 0;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(rulefmt_glob(pats, 5, dir, &paths, &n, &err), 0);
    assert_int_equal(n, 3);
    char want[512];
    snprintf(want, sizeof want, "%s/a.yml", dir);
    assert_string_equal(paths[0], want);
    snprintf(want, sizeof want, "%s/b.yml", dir);
    assert_string_equal(paths[1], want);
    snprintf(want, sizeof want, "%s/c.rules", dir);
    assert_string_equal(paths[2], want);
    for (size_t i = 0; i < n; i++)
        mem_free(paths[i]);
    mem_free(paths);

    /* An absolute pattern ignores base_dir. */
    char abs[512];
    snprintf(abs, sizeof abs, "%s/[ab].yml", dir);
    char *pats2[] = {abs};
    assert_int_equal(rulefmt_glob(pats2, 1, "/somewhere/else", &paths, &n, &err), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        mem_free(paths[i]);
    mem_free(paths);

    /* Malformed patterns, as Go's filepath.Match refuses them. */
    const char *bad[] = {"[", "a[b", "x\\", "[]a]", "[a-]", "[-a]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *p1[] = {(char *)bad[i]};
        buf_reset(&err);
        paths = (char **)&err; /* must be reset */
        assert_int_equal(rulefmt_glob(p1, 1, dir, &paths, &n, &err), -EINVAL);
        assert_null(paths);
        assert_int_equal(n, 0);
        assert_non_null(strstr(buf_cstr(&err), "syntax error in pattern"));
        assert_non_null(strstr(buf_cstr(&err), bad[i]));
    }
    buf_cleanup(&err);

    char p[512];
    const char *names[] = {"a.yml", "b.yml", "c.rules"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* ---- check rules exit codes --------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_check_command(void **state)
{
    (void)state;
    char dir[] = "/tmp/wip-rulefmt-check-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char good[512], dup[512], bad[512];
    snprintf(good, sizeof good, "%s/good.yml", dir);
    snprintf(dup, sizeof dup, "%s/dup.yml", dir);
    snprintf(bad, sizeof bad, "%s/bad.yml", dir);
    write_file(good, "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n");
    write_file(dup, "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n"
                    "  - record: a\n    expr: down\n");
    write_file(bad, "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up(\n");

    char *a1[] = {good};
    assert_int_equal(rulefmt_check_command(1, a1), 0);
    char *a2[] = {dup};
    assert_int_equal(rulefmt_check_command(1, a2), 0);
    char *a3[] = {"--lint-fatal", dup};
    assert_int_equal(rulefmt_check_command(2, a3), 3);
    char *a4[] = {"--lint=none", "--lint-fatal", dup};
    assert_int_equal(rulefmt_check_command(3, a4), 0);
    char *a5[] = {good, bad};
    assert_int_equal(rulefmt_check_command(2, a5), 1);
    char *a6[] = {"--lint-fatal", bad, dup};
    assert_int_equal(rulefmt_check_command(3, a6), 1);
    char *a7[] = {"--no-such-flag", good};
    assert_int_equal(rulefmt_check_command(2, a7), 1);
    char *a8[] = {"/nonexistent/wip-rulefmt.yml"};
    assert_int_equal(rulefmt_check_command(1, a8), 1);

    unlink(good);
    unlink(dup);
    unlink(bad);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conformance_bad),     cmocka_unit_test(test_conformance_good),
        cmocka_unit_test(test_conformance_aliases), cmocka_unit_test(test_positions),
        cmocka_unit_test(test_unknown_fields),      cmocka_unit_test(test_durations_and_fields),
        cmocka_unit_test(test_number_expr),         cmocka_unit_test(test_empty),
        cmocka_unit_test(test_yaml_syntax_error),   cmocka_unit_test(test_legacy_validation),
        cmocka_unit_test(test_load_missing),        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_check_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
