/* rulefmt: Prometheus rule files (see rulefmt.h).
 *
 * Two passes, as Prometheus's model/rulefmt.Parse: first the YAML is decoded
 * into the file structure (type errors, unknown fields, duplicate keys and
 * bad durations, as yaml.v3 reports them); only when that worked are the
 * groups and rules validated (names, expressions, templates). Messages are
 * Prometheus's, prefixed with "<source>:<line>:<col>: " of the node at
 * fault. */
#include "rulefmt.h"

#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "expfmt.h"
#include "mem.h"
#include "promql/parse.h"
#include "strutil.h"
#include "template.h"
#include "yamlconf.h"

/* Cap of the message buffer check_command uses per file. */
#define RULEFMT_MAX_ERRORS_BYTES (1u << 20)

typedef struct ctx {
    const char *src;
    rulefmt_options o;
    buf *err;
    int n_err;
} ctx;

static void err_prefix(ctx *c, const yamlconf_node *at)
{
    if (c->err) {
        if (c->err->len > 0 && c->err->data[c->err->len - 1] != '\n') buf_putc(c->err, '\n');
        if (at)
            buf_printf(c->err, "%s:%u:%u: ", c->src, at->line, at->col);
        else
            buf_printf(c->err, "%s: ", c->src);
    }
    c->n_err++;
}

static void err_end(ctx *c)
{
    if (c->err) buf_putc(c->err, '\n');
}

static void __attribute__((format(printf, 3, 4)))
errorf(ctx *c, const yamlconf_node *at, const char *fmt, ...)
{
    err_prefix(c, at);
    if (c->err) {
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(c->err, fmt, ap);
        va_end(ap);
    }
    err_end(c);
}

static void type_error(ctx *c, const yamlconf_node *n, const char *go_type)
{
    err_prefix(c, n);
    if (c->err) yamlconf_type_error(c->err, n, go_type);
    err_end(c);
}

static void put_quoted(buf *b, const char *s, size_t len)
{
    expfmt_quote_go(buf_sink, b, s ? s : "", s ? len : 0);
}

/* ---- decoding (yaml.v3 into Go structs) ------------------------------------------- */

/* One struct field: its key and value nodes once found. */
typedef struct field {
    const char *name;
    const yamlconf_node *key, *val;
} field;

/* Decodes a mapping into fields, as yaml.v3 does for a struct with
 * KnownFields(true): a repeated key is an error, an unknown one too (unless
 * ignore_unknown_fields). Returns false if `n` is not a mapping (nor null). */
static bool decode_struct(ctx *c, const yamlconf_node *n, const char *go_type, field *f, size_t nf)
{
    if (yamlconf_is_null(n)) return true;
    if (n->kind != YAMLCONF_MAP) {
        type_error(c, n, go_type);
        return false;
    }
    for (size_t i = 0; i < n->n; i++) {
        const yamlconf_node *k = n->pairs[i].key;
        for (size_t j = 0; j < i; j++) {
            const yamlconf_node *pk = n->pairs[j].key;
            if (pk->kind != YAMLCONF_SEQ && pk->kind != YAMLCONF_MAP && pk->len == k->len &&
                k->kind != YAMLCONF_SEQ && k->kind != YAMLCONF_MAP &&
                memcmp(pk->str, k->str, k->len) == 0) {
                err_prefix(c, k);
                if (c->err) {
                    buf_puts(c->err, "mapping key ");
                    put_quoted(c->err, k->str, k->len);
                    buf_printf(c->err, " already defined at line %u", pk->line);
                }
                err_end(c);
                break;
            }
        }
        size_t j = 0;
        for (; j < nf; j++)
            if (k->kind == YAMLCONF_SCALAR && k->len == strlen(f[j].name) &&
                memcmp(k->str, f[j].name, k->len) == 0)
                break;
        if (j == nf) {
            if (!c->o.ignore_unknown_fields) {
                err_prefix(c, k);
                if (c->err) {
                    buf_puts(c->err, "field ");
                    buf_append(c->err, k->str, k->len);
                    buf_printf(c->err, " not found in type %s", go_type);
                }
                err_end(c);
            }
            continue;
        }
        if (!f[j].key) {
            f[j].key = k;
            f[j].val = n->pairs[i].value;
        }
    }
    return true;
}

/* A string field: any scalar is taken as its text (yaml.v3), null is "". */
static bool decode_string(ctx *c, const yamlconf_node *n, const char **s, size_t *len)
{
    *s = "";
    *len = 0;
    if (yamlconf_is_null(n)) return true;
    if (n->kind != YAMLCONF_SCALAR) {
        type_error(c, n, "string");
        return false;
    }
    *s = n->str;
    *len = n->len;
    return true;
}

/* model.Duration: decoded as a string, then model.ParseDuration. */
static void decode_duration(ctx *c, const yamlconf_node *n, int64_t *ms)
{
    const char *s;
    size_t len;
    *ms = 0;
    if (yamlconf_is_null(n)) return;
    if (!decode_string(c, n, &s, &len)) return;
    buf e;
    buf_init(&e, 4096);
    if (strutil_parse_duration(s, len, ms, &e) < 0) errorf(c, n, "%s", buf_cstr(&e));
    buf_cleanup(&e);
}

/* map[string]string into a label set (strings borrowed from the YAML
 * document until labels_builder_finish copies them). */
static labels *decode_string_map(ctx *c, const yamlconf_node *n)
{
    labels_builder b;
    labels_builder_init(&b);
    if (!yamlconf_is_null(n)) {
        if (n->kind != YAMLCONF_MAP) {
            type_error(c, n, "map[string]string");
        } else {
            for (size_t i = 0; i < n->n; i++) {
                const yamlconf_node *k = n->pairs[i].key, *v = n->pairs[i].value;
                const char *ks, *vs;
                size_t kl, vl;
                if (!decode_string(c, k, &ks, &kl) || !decode_string(c, v, &vs, &vl)) continue;
                bool dup = false;
                for (size_t j = 0; j < i && !dup; j++) {
                    const yamlconf_node *pk = n->pairs[j].key;
                    if (pk->kind != YAMLCONF_SEQ && pk->kind != YAMLCONF_MAP && pk->len == kl &&
                        memcmp(pk->str, ks, kl) == 0) {
                        err_prefix(c, k);
                        if (c->err) {
                            buf_puts(c->err, "mapping key ");
                            put_quoted(c->err, ks, kl);
                            buf_printf(c->err, " already defined at line %u", pk->line);
                        }
                        err_end(c);
                        dup = true;
                    }
                }
                if (!dup) labels_builder_add(&b, ks, kl, vs, vl);
            }
        }
    }
    const char *dupname = NULL;
    labels *ls = labels_builder_finish(&b, &dupname);
    labels_builder_cleanup(&b);
    if (!ls) ls = labels_dup(labels_empty()); /* duplicates were reported above */
    return ls;
}

enum { R_RECORD, R_ALERT, R_EXPR, R_FOR, R_KFF, R_LABELS, R_ANNOTATIONS, R__N };
static const char *const rule_fields[R__N] = {"record",          "alert",  "expr",       "for",
                                              "keep_firing_for", "labels", "annotations"};
enum { G_NAME, G_INTERVAL, G_QOFF, G_LIMIT, G_RULES, G_LABELS, G__N };
static const char *const group_fields[G__N] = {"name",  "interval", "query_offset",
                                               "limit", "rules",    "labels"};

/* The nodes kept for validation. */
typedef struct rule_nodes {
    const yamlconf_node *node, *record, *alert, *expr, *labels, *annotations;
} rule_nodes;

typedef struct group_nodes {
    const yamlconf_node *node, *labels;
    rule_nodes *rules;
} group_nodes;

static char *dup_str(const char *s, size_t len)
{
    return mem_strndup(s, len);
}

static void decode_rule(ctx *c, const yamlconf_node *n, rulefmt_rule *r, rule_nodes *rn)
{
    field f[R__N];
    for (size_t i = 0; i < R__N; i++)
        f[i] = (field){rule_fields[i], NULL, NULL};
    rn->node = n;
    r->line = (int)n->line;
    r->col = (int)n->col;
    bool ok = decode_struct(c, n, "rulefmt.Rule", f, R__N);
    const char *s;
    size_t len;
    if (ok && f[R_RECORD].key && decode_string(c, f[R_RECORD].val, &s, &len) && len > 0)
        r->record = dup_str(s, len);
    if (ok && f[R_ALERT].key && decode_string(c, f[R_ALERT].val, &s, &len) && len > 0)
        r->alert = dup_str(s, len);
    if (ok && f[R_EXPR].key && decode_string(c, f[R_EXPR].val, &s, &len))
        r->expr = dup_str(s, len);
    else
        r->expr = mem_strdup("");
    if (ok && f[R_FOR].key) decode_duration(c, f[R_FOR].val, &r->for_ms);
    if (ok && f[R_KFF].key) decode_duration(c, f[R_KFF].val, &r->keep_firing_for_ms);
    r->labels = decode_string_map(c, ok ? f[R_LABELS].val : NULL);
    r->annotations = decode_string_map(c, ok ? f[R_ANNOTATIONS].val : NULL);
    rn->record = f[R_RECORD].val;
    rn->alert = f[R_ALERT].val;
    rn->expr = f[R_EXPR].val;
    rn->labels = f[R_LABELS].val;
    rn->annotations = f[R_ANNOTATIONS].val;
}

static void decode_group(ctx *c, const yamlconf_node *n, rulefmt_group *g, group_nodes *gn)
{
    field f[G__N];
    for (size_t i = 0; i < G__N; i++)
        f[i] = (field){group_fields[i], NULL, NULL};
    gn->node = n;
    g->line = (int)n->line;
    g->col = (int)n->col;
    bool ok = decode_struct(c, n, "rulefmt.RuleGroup", f, G__N);
    const char *s;
    size_t len;
    if (ok && f[G_NAME].key && decode_string(c, f[G_NAME].val, &s, &len))
        g->name = dup_str(s, len);
    else
        g->name = mem_strdup("");
    if (ok && f[G_INTERVAL].key) decode_duration(c, f[G_INTERVAL].val, &g->interval_ms);
    if (ok && f[G_QOFF].key && !yamlconf_is_null(f[G_QOFF].val)) {
        g->has_query_offset = true;
        decode_duration(c, f[G_QOFF].val, &g->query_offset_ms);
    }
    if (ok && f[G_LIMIT].key && !yamlconf_is_null(f[G_LIMIT].val) &&
        yamlconf_int64(f[G_LIMIT].val, &g->limit) < 0)
        type_error(c, f[G_LIMIT].val, "int");
    g->labels = decode_string_map(c, ok ? f[G_LABELS].val : NULL);
    gn->labels = f[G_LABELS].val;
    const yamlconf_node *rs = ok ? f[G_RULES].val : NULL;
    if (yamlconf_is_null(rs)) return;
    if (rs->kind != YAMLCONF_SEQ) {
        type_error(c, rs, "[]rulefmt.Rule");
        return;
    }
    g->rules = mem_calloc(rs->n ? rs->n : 1, sizeof *g->rules);
    gn->rules = mem_calloc(rs->n ? rs->n : 1, sizeof *gn->rules);
    /* yaml.v3 drops null items of a sequence of structs. */
    for (size_t i = 0; i < rs->n; i++) {
        if (yamlconf_is_null(rs->items[i])) continue;
        decode_rule(c, rs->items[i], &g->rules[g->n_rules], &gn->rules[g->n_rules]);
        g->n_rules++;
    }
}

/* ---- validation ---------------------------------------------------------------------- */

static bool valid_label_name(const ctx *c, const char *s, size_t len)
{
    if (c->o.legacy_name_validation) return expfmt_legacy_label_name(s, len);
    return len > 0 && expfmt_utf8_valid(s, len);
}

static bool valid_metric_name(const ctx *c, const char *s, size_t len)
{
    if (c->o.legacy_name_validation) return expfmt_legacy_metric_name(s, len);
    return len > 0 && expfmt_utf8_valid(s, len);
}

static const yamlconf_node *map_value(const yamlconf_node *map, const char *name, size_t len)
{
    if (!map || map->kind != YAMLCONF_MAP) return map;
    for (size_t i = 0; i < map->n; i++) {
        const yamlconf_node *k = map->pairs[i].key;
        if (k->len == len && memcmp(k->str, name, len) == 0) return map->pairs[i].value;
    }
    return map;
}

/* Starts a rule error: "<src>:L:C: [L2:C2: ]group "g", rule N, "name": ". */
static void rule_err_start(ctx *c, const yamlconf_node *at, const yamlconf_node *alt,
                           const rulefmt_group *g, size_t idx, const rulefmt_rule *r)
{
    err_prefix(c, at);
    if (!c->err) return;
    if (alt) buf_printf(c->err, "%u:%u: ", alt->line, alt->col);
    const char *name = r->alert ? r->alert : r->record ? r->record : "";
    buf_puts(c->err, "group ");
    put_quoted(c->err, g->name, strlen(g->name));
    buf_printf(c->err, ", rule %zu, ", idx + 1);
    put_quoted(c->err, name, strlen(name));
    buf_puts(c->err, ": ");
}

static void __attribute__((format(printf, 7, 8)))
rule_errorf(ctx *c, const yamlconf_node *at, const yamlconf_node *alt, const rulefmt_group *g,
            size_t idx, const rulefmt_rule *r, const char *fmt, ...)
{
    rule_err_start(c, at, alt, g, idx, r);
    if (c->err) {
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(c->err, fmt, ap);
        va_end(ap);
    }
    err_end(c);
}

/* Appends "<what> <text>" as one error, after the rule prefix when r is set. */
static void name_error(ctx *c, const yamlconf_node *at, const rulefmt_group *g, size_t idx,
                       const rulefmt_rule *r, const char *what, const char *s, size_t len)
{
    if (r)
        rule_err_start(c, at, NULL, g, idx, r);
    else
        err_prefix(c, at);
    if (c->err) {
        buf_puts(c->err, what);
        buf_append(c->err, s, len);
    }
    err_end(c);
}

/* Label (or annotation) names and values as written in the map, empty
 * values included (Go validates the map, not the label set). */
static void check_labels(ctx *c, const yamlconf_node *map, const rulefmt_group *g, size_t idx,
                         const rulefmt_rule *r, bool annotations)
{
    if (!map || map->kind != YAMLCONF_MAP) return;
    for (size_t i = 0; i < map->n; i++) {
        const yamlconf_node *k = map->pairs[i].key, *v = map->pairs[i].value;
        bool bad_name = !valid_label_name(c, k->str, k->len) ||
                        (!annotations && k->len == strlen(LABELS_METRIC_NAME) &&
                         memcmp(k->str, LABELS_METRIC_NAME, k->len) == 0);
        if (bad_name)
            name_error(c, k, g, idx, r,
                       annotations ? "invalid annotation name: " : "invalid label name: ", k->str,
                       k->len);
        if (!annotations && v && v->kind == YAMLCONF_SCALAR && !expfmt_utf8_valid(v->str, v->len))
            name_error(c, k, g, idx, r, "invalid label value: ", v->str, v->len);
    }
}

static void check_templates(ctx *c, const labels *ls, const yamlconf_node *map,
                            const rulefmt_group *g, size_t idx, const rulefmt_rule *r,
                            const char *what)
{
    buf name;
    buf_init(&name, BUF_UNLIMITED);
    buf_printf(&name, "__alert_%s", r->alert);
    for (uint32_t i = 0; i < ls->n; i++) {
        const label *l = &ls->v[i];
        buf e;
        buf_init(&e, 1 << 16);
        if (template_check(buf_cstr(&name), l->value, l->value_len, &e) < 0) {
            rule_err_start(c, map_value(map, l->name, l->name_len), NULL, g, idx, r);
            if (c->err) {
                buf_printf(c->err, "%s ", what);
                put_quoted(c->err, l->name, l->name_len);
                buf_printf(c->err, ": %s", buf_cstr(&e));
            }
            err_end(c);
        }
        buf_cleanup(&e);
    }
    buf_cleanup(&name);
}

static void validate_rule(ctx *c, const rulefmt_group *g, size_t idx, const rulefmt_rule *r,
                          const rule_nodes *rn)
{
    const yamlconf_node *rec_at = rn->record ? rn->record : rn->node;
    if (r->record && r->alert)
        rule_errorf(c, rn->record, rn->alert, g, idx, r,
                    "only one of 'record' and 'alert' must be set");
    if (!r->record && !r->alert)
        rule_errorf(c,
                    rn->record  ? rn->record
                    : rn->alert ? rn->alert
                                : rn->node,
                    NULL, g, idx, r, "one of 'record' or 'alert' must be set");
    const yamlconf_node *expr_at = rn->expr ? rn->expr : rn->node;
    if (r->expr[0] == '\0') {
        rule_errorf(c, expr_at, NULL, g, idx, r, "field 'expr' must be set in rule");
    } else {
        buf e;
        buf_init(&e, 1 << 16);
        promql_ast *ast = NULL;
        if (promql_parse(r->expr, strlen(r->expr), NULL, &ast, &e) < 0)
            rule_errorf(c, expr_at, NULL, g, idx, r, "could not parse expression: %s",
                        buf_cstr(&e));
        else
            promql_ast_free(ast);
        buf_cleanup(&e);
    }
    if (r->record) {
        if (r->annotations->n > 0 ||
            (rn->annotations && rn->annotations->kind == YAMLCONF_MAP && rn->annotations->n > 0))
            rule_errorf(c, rec_at, NULL, g, idx, r,
                        "invalid field 'annotations' in recording rule");
        if (r->for_ms != 0)
            rule_errorf(c, rec_at, NULL, g, idx, r, "invalid field 'for' in recording rule");
        if (r->keep_firing_for_ms != 0)
            rule_errorf(c, rec_at, NULL, g, idx, r,
                        "invalid field 'keep_firing_for' in recording rule");
        size_t len = strlen(r->record);
        if (!valid_metric_name(c, r->record, len))
            rule_errorf(c, rec_at, NULL, g, idx, r, "invalid recording rule name: %s", r->record);
        if (strchr(r->record, '{') || strchr(r->record, '}'))
            rule_errorf(c, rec_at, NULL, g, idx, r,
                        "braces present in the recording rule name; should it be in expr?: %s",
                        r->record);
    }
    check_labels(c, rn->labels, g, idx, r, false);
    check_labels(c, rn->annotations, g, idx, r, true);
    if (r->alert) {
        check_templates(c, r->labels, rn->labels, g, idx, r, "label");
        check_templates(c, r->annotations, rn->annotations, g, idx, r, "annotation");
    }
}

static void validate(ctx *c, const rulefmt_file *f, const group_nodes *gn)
{
    for (size_t j = 0; j < f->n_groups; j++) {
        const rulefmt_group *g = &f->groups[j];
        if (g->name[0] == '\0') errorf(c, gn[j].node, "Groupname must not be empty");
        for (size_t k = 0; k < j; k++) {
            if (strcmp(f->groups[k].name, g->name) == 0) {
                errorf(c, gn[j].node, "groupname: \"%s\" is repeated in the same file", g->name);
                break;
            }
        }
        check_labels(c, gn[j].labels, g, 0, NULL, false);
        if (c->o.max_rules_per_group && g->n_rules > c->o.max_rules_per_group) {
            /* One error for the group, not one per rule of it. */
            errorf(c, gn[j].node,
                   "group \"%s\" has %zu rules, more than the limit of %zu "
                   "(--rules.max-rules-per-group)",
                   g->name, g->n_rules, c->o.max_rules_per_group);
            if (c->o.groups_refused) (*c->o.groups_refused)++;
            continue;
        }
        for (size_t i = 0; i < g->n_rules; i++)
            validate_rule(c, g, i, &g->rules[i], &gn[j].rules[i]);
    }
}

/* ---- entry points -------------------------------------------------------------------- */

static void rule_cleanup(rulefmt_rule *r)
{
    mem_free(r->record);
    mem_free(r->alert);
    mem_free(r->expr);
    labels_free(r->labels);
    labels_free(r->annotations);
}

void rulefmt_file_free(rulefmt_file *f)
{
    if (!f) return;
    for (size_t j = 0; j < f->n_groups; j++) {
        rulefmt_group *g = &f->groups[j];
        mem_free(g->name);
        labels_free(g->labels);
        for (size_t i = 0; i < g->n_rules; i++)
            rule_cleanup(&g->rules[i]);
        mem_free(g->rules);
    }
    mem_free(f->groups);
    mem_free(f->path);
    mem_free(f);
}

int rulefmt_parse(const char *text, size_t len, const char *source, const rulefmt_options *o,
                  rulefmt_file **out, buf *err)
{
    *out = NULL;
    if (!source) source = "";
    yamlconf_doc *doc = NULL;
    int rc = yamlconf_parse(text, len, source, &doc, err);
    if (rc < 0) {
        if (err && err->len > 0 && err->data[err->len - 1] != '\n') buf_putc(err, '\n');
        return rc == -ENOMEM ? rc : -EINVAL;
    }
    ctx c = {.src = source, .err = err};
    if (o) c.o = *o;

    rulefmt_file *f = mem_calloc(1, sizeof *f);
    f->path = mem_strdup(source);
    group_nodes *gn = NULL;

    const yamlconf_node *root = yamlconf_root(doc);
    field top[1] = {{"groups", NULL, NULL}};
    if (decode_struct(&c, root, "rulefmt.RuleGroups", top, 1) && !yamlconf_is_null(top[0].val)) {
        const yamlconf_node *gs = top[0].val;
        if (gs->kind != YAMLCONF_SEQ) {
            type_error(&c, gs, "[]rulefmt.RuleGroup");
        } else {
            f->groups = mem_calloc(gs->n ? gs->n : 1, sizeof *f->groups);
            gn = mem_calloc(gs->n ? gs->n : 1, sizeof *gn);
            for (size_t j = 0; j < gs->n; j++) {
                if (yamlconf_is_null(gs->items[j])) continue; /* dropped, as yaml.v3 does */
                decode_group(&c, gs->items[j], &f->groups[f->n_groups], &gn[f->n_groups]);
                f->n_groups++;
            }
        }
    }
    if (c.n_err == 0) validate(&c, f, gn);

    if (gn)
        for (size_t j = 0; j < f->n_groups; j++)
            mem_free(gn[j].rules);
    mem_free(gn);
    yamlconf_free(doc);
    if (c.n_err > 0) {
        rulefmt_file_free(f);
        return -EINVAL;
    }
    *out = f;
    return 0;
}

/* Reads fp to its end (at most YAMLCONF_MAX_INPUT bytes) and parses it as
 * `name`; does not close fp. */
static int load_stream(FILE *fp, const char *name, const rulefmt_options *o, rulefmt_file **out,
                       buf *err)
{
    buf text;
    buf_init(&text, (size_t)YAMLCONF_MAX_INPUT + 1);
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        if (buf_append(&text, chunk, n) < 0) {
            rc = -E2BIG;
            break;
        }
    }
    if (rc == 0 && ferror(fp)) {
        if (err) buf_printf(err, "%s: %s\n", name, strerror(EIO));
        buf_cleanup(&text);
        return -EIO;
    }
    if (rc == -E2BIG) {
        if (err)
            buf_printf(err, "%s: file too large (the limit is %u bytes)\n", name,
                       (unsigned)YAMLCONF_MAX_INPUT);
        buf_cleanup(&text);
        return -EINVAL;
    }
    rc = rulefmt_parse(buf_cstr(&text), text.len, name, o, out, err);
    buf_cleanup(&text);
    return rc;
}

int rulefmt_load(const char *path, const rulefmt_options *o, rulefmt_file **out, buf *err)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        int e = errno;
        if (err) buf_printf(err, "%s: %s\n", path, strerror(e));
        return -e;
    }
    int rc = load_stream(fp, path, o, out, err);
    fclose(fp);
    return rc;
}

/* ---- rule_files globs ------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rulefmt_glob(char *const *patterns, size_t n_patterns, const char *base_dir, char ***paths,
                 size_t *n, buf *err)
{
    *paths = NULL;
    *n = 0;
    char **v = NULL;
    size_t nv = 0, cap = 0;
    for (size_t i = 0; i < n_patterns; i++) {
        const char *pat = patterns[i];
        if (!strutil_glob_valid(pat)) {
            if (err)
                buf_printf(
                    err, "failed retrieving rule files for \"%s\": syntax error in pattern\n", pat);
            for (size_t k = 0; k < nv; k++)
                mem_free(v[k]);
            mem_free(v);
            return -EINVAL;
        }
        buf full;
        buf_init(&full, BUF_UNLIMITED);
        if (base_dir && *base_dir && pat[0] != '/') {
            buf_puts(&full, base_dir);
            if (base_dir[strlen(base_dir) - 1] != '/') buf_putc(&full, '/');
        }
        buf_puts(&full, pat);
        glob_t g;
        memset(&g, 0, sizeof g);
        int grc = glob(buf_cstr(&full), 0, NULL, &g);
        if (grc == 0) {
            for (size_t k = 0; k < g.gl_pathc; k++) {
                v = mem_grow(v, sizeof *v, nv + 1, &cap);
                v[nv++] = mem_strdup(g.gl_pathv[k]);
            }
        }
        if (grc == 0 || grc == GLOB_NOMATCH) globfree(&g);
        buf_cleanup(&full);
    }
    if (nv > 1) qsort(v, nv, sizeof *v, cmp_str);
    size_t w = 0;
    for (size_t k = 0; k < nv; k++) {
        if (w > 0 && strcmp(v[w - 1], v[k]) == 0) {
            mem_free(v[k]);
            continue;
        }
        v[w++] = v[k];
    }
    *paths = v;
    *n = w;
    return 0;
}

/* ---- check rules ----------------------------------------------------------------------- */

typedef struct dup_key {
    const char *metric;
    labels *ls; /* group labels overridden by rule labels; owned */
} dup_key;

static int cmp_dup(const void *a, const void *b)
{
    const dup_key *x = a, *y = b;
    int r = strcmp(x->metric, y->metric);
    return r ? r : labels_compare(x->ls, y->ls);
}

/* promtool's duplicate-rules lint: appends its message to msg and returns
 * the number of duplicates (0: none, msg untouched). */
static size_t lint_duplicates(const rulefmt_file *f, buf *msg)
{
    size_t total = 0;
    for (size_t j = 0; j < f->n_groups; j++)
        total += f->groups[j].n_rules;
    if (total < 2) return 0;
    dup_key *k = mem_calloc(total, sizeof *k);
    size_t nk = 0;
    for (size_t j = 0; j < f->n_groups; j++) {
        const rulefmt_group *g = &f->groups[j];
        for (size_t i = 0; i < g->n_rules; i++) {
            const rulefmt_rule *r = &g->rules[i];
            labels_builder b;
            labels_builder_init(&b);
            labels_builder_from(&b, g->labels);
            for (uint32_t l = 0; l < r->labels->n; l++)
                labels_builder_set(&b, r->labels->v[l].name, r->labels->v[l].name_len,
                                   r->labels->v[l].value, r->labels->v[l].value_len);
            k[nk].metric = r->alert ? r->alert : r->record ? r->record : "";
            k[nk].ls = labels_builder_finish(&b, NULL);
            labels_builder_cleanup(&b);
            nk++;
        }
    }
    qsort(k, nk, sizeof *k, cmp_dup);
    size_t *dups = mem_calloc(nk, sizeof *dups);
    size_t nd = 0;
    for (size_t i = 1; i < nk; i++) {
        if (cmp_dup(&k[i - 1], &k[i]) == 0 &&
            (nd == 0 || cmp_dup(&k[i - 1], &k[dups[nd - 1]]) != 0))
            dups[nd++] = i;
    }
    if (nd > 0) {
        buf_printf(msg, "lint error %zu duplicate rule(s) found.\n", nd);
        for (size_t d = 0; d < nd; d++) {
            const dup_key *x = &k[dups[d]];
            buf_printf(msg, "Metric: %s\nLabel(s):\n", x->metric);
            for (uint32_t l = 0; l < x->ls->n; l++)
                buf_printf(msg, "\t%s: %s\n", x->ls->v[l].name, x->ls->v[l].value);
        }
        buf_puts(msg, "Might cause inconsistency while recording expressions");
    }
    for (size_t i = 0; i < nk; i++)
        labels_free(k[i].ls);
    mem_free(k);
    mem_free(dups);
    return nd;
}

static void check_usage(FILE *out)
{
    fputs("usage: sidewatch check rules [--lint=duplicate-rules|none] [--lint-fatal]\n"
          "                             [--ignore-unknown-fields] [FILE...]\n"
          "Check if the rule files are valid or not (promtool check rules); with no FILE,\n"
          "reads standard input.\n",
          out);
}

int rulefmt_check_command(int argc, char **argv)
{
    const char *lint = "duplicate-rules";
    bool fatal = false;
    rulefmt_options o = {0};
    char **files = mem_calloc((size_t)argc + 1, sizeof *files);
    int nfiles = 0;
    bool flags_done = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (flags_done || a[0] != '-' || strcmp(a, "-") == 0) {
            files[nfiles++] = argv[i];
        } else if (strcmp(a, "--") == 0) {
            flags_done = true;
        } else if (strncmp(a, "--lint=", 7) == 0) {
            lint = a + 7;
        } else if (strcmp(a, "--lint") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sidewatch: error: expected argument for flag '--lint'\n");
                mem_free(files);
                return 1;
            }
            lint = argv[++i];
        } else if (strcmp(a, "--lint-fatal") == 0) {
            fatal = true;
        } else if (strcmp(a, "--no-lint-fatal") == 0) {
            fatal = false;
        } else if (strcmp(a, "--ignore-unknown-fields") == 0) {
            o.ignore_unknown_fields = true;
        } else if (strcmp(a, "--no-ignore-unknown-fields") == 0) {
            o.ignore_unknown_fields = false;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            check_usage(stdout);
            mem_free(files);
            return 0;
        } else {
            fprintf(stderr, "sidewatch: error: unknown long flag '%s', try --help\n", a);
            mem_free(files);
            return 1;
        }
    }
    /* kingpin's ExistingFiles(): every argument must exist before anything
     * is checked. */
    for (int i = 0; i < nfiles; i++) {
        struct stat st;
        if (stat(files[i], &st) != 0) {
            fprintf(stderr, "sidewatch: error: path '%s' does not exist, try --help\n", files[i]);
            mem_free(files);
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            fprintf(stderr, "sidewatch: error: '%s' is a directory, try --help\n", files[i]);
            mem_free(files);
            return 1;
        }
    }
    bool lint_dups = false;
    {
        const char *p = lint;
        while (*p) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if ((l == 3 && memcmp(p, "all", 3) == 0) ||
                (l == 15 && memcmp(p, "duplicate-rules", 15) == 0))
                lint_dups = true;
            else if (!(l == 4 && memcmp(p, "none", 4) == 0)) {
                buf q;
                buf_init(&q, BUF_UNLIMITED);
                put_quoted(&q, p, l);
                printf("WARNING: unknown lint option: %s\n", buf_cstr(&q));
                buf_cleanup(&q);
            }
            if (!e) break;
            p = e + 1;
        }
    }

    bool failed = false, has_errors = false;
    bool use_stdin = nfiles == 0;
    int count = use_stdin ? 1 : nfiles;
    for (int i = 0; i < count; i++) {
        const char *name = use_stdin ? "standard input" : files[i];
        printf("Checking %s\n", name);
        fflush(stdout);
        buf err;
        buf_init(&err, RULEFMT_MAX_ERRORS_BYTES);
        rulefmt_file *f = NULL;
        int rc;
        if (use_stdin)
            rc = load_stream(stdin, name, &o, &f, &err);
        else
            rc = rulefmt_load(files[i], &o, &f, &err);
        if (rc < 0) {
            failed = true;
            has_errors = true;
            fprintf(stderr, "  FAILED:\n%s", buf_cstr(&err));
            if (err.len > 0 && err.data[err.len - 1] != '\n') fputc('\n', stderr);
            fflush(stderr);
            buf_cleanup(&err);
            continue;
        }
        buf msg;
        buf_init(&msg, RULEFMT_MAX_ERRORS_BYTES);
        size_t nrules = 0;
        for (size_t j = 0; j < f->n_groups; j++)
            nrules += f->groups[j].n_rules;
        if (lint_dups && lint_duplicates(f, &msg) > 0) {
            failed = true;
            fprintf(stderr, "  FAILED:\n%s\n", buf_cstr(&msg));
            fflush(stderr);
        } else {
            printf("  SUCCESS: %zu rules found\n", nrules);
        }
        printf("\n");
        fflush(stdout);
        buf_cleanup(&msg);
        buf_cleanup(&err);
        rulefmt_file_free(f);
    }
    mem_free(files);
    if (failed && has_errors) return 1;
    if (failed && fatal) return 3;
    return 0;
}
