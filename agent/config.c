/* config: prometheus.yml into a validated, immutable config.
 *
 * The YAML tree (yamlconf) is decoded section by section the way
 * Prometheus's strict yaml.v2 decoding and its UnmarshalYAML/Validate
 * methods do it: unknown and repeated keys, type errors, defaults, "null
 * means the zero value", inheritance from the global section and the
 * validation rules of config/config.go, model/relabel and common's
 * http_config.go. Unlike Prometheus, which stops at the first error, every
 * error is collected with its position; they are reported sorted by
 * position. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "expfmt.h"
#include "hmap.h"
#include "log.h"
#include "mem.h"
#include "strutil.h"
#include "yamlconf.h"

/* Errors kept before sorting; the first CONFIG_MAX_ERRORS are reported. */
#define CONFIG_COLLECT_ERRORS (20 * CONFIG_MAX_ERRORS)

/* ---- load context and errors ---------------------------------------------- */

typedef struct cerr {
    uint32_t line, col;
    size_t seq;
    char *msg;
} cerr;

typedef struct ctx {
    const char *source;
    char *dir; /* directory relative paths are resolved against */
    const config_load_opts *opts;
    cerr *errs;
    size_t n_errs, cap_errs, seq;
    char **scratch; /* quoted strings for messages, freed at the end */
    size_t n_scratch, cap_scratch;
    bool legacy;            /* global metric_name_validation_scheme: legacy */
    bool native_histograms; /* global scrape_native_histograms */
    bool always_classic;    /* global always_scrape_classic_histograms */
    bool convert_nhcb;      /* global convert_classic_histograms_to_nhcb */
    char *global_escaping;  /* resolved global metric_name_escaping_scheme */
    config *cfg;
} ctx;

static void add_error(ctx *c, uint32_t line, uint32_t col, char *msg)
{
    if (c->n_errs >= CONFIG_COLLECT_ERRORS) {
        mem_free(msg);
        return;
    }
    c->errs = mem_grow(c->errs, sizeof *c->errs, c->n_errs + 1, &c->cap_errs);
    c->errs[c->n_errs].line = line;
    c->errs[c->n_errs].col = col;
    c->errs[c->n_errs].seq = c->seq++;
    c->errs[c->n_errs].msg = msg;
    c->n_errs++;
}

static void verrorf(ctx *c, const yamlconf_node *at, const char *fmt, va_list ap)
{
    buf m;
    buf_init(&m, BUF_UNLIMITED);
    buf_vprintf(&m, fmt, ap);
    add_error(c, at ? at->line : 1, at ? at->col : 1, buf_detach(&m, NULL));
}

static void errorf(ctx *c, const yamlconf_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errorf(ctx *c, const yamlconf_node *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verrorf(c, at, fmt, ap);
    va_end(ap);
}

/* An unsupported feature: an error, or a warning when the caller asked. */
static void unsupportedf(ctx *c, const yamlconf_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void unsupportedf(ctx *c, const yamlconf_node *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (c->opts && c->opts->unsupported_as_warnings) {
        if (c->opts->warnings) {
            buf_printf(c->opts->warnings, "%s:%u:%u: ", c->source, at->line, at->col);
            buf_vprintf(c->opts->warnings, fmt, ap);
            buf_putc(c->opts->warnings, '\n');
        }
    } else {
        verrorf(c, at, fmt, ap);
    }
    va_end(ap);
}

static void type_error(ctx *c, const yamlconf_node *n, const char *go_type)
{
    buf m;
    buf_init(&m, BUF_UNLIMITED);
    yamlconf_type_error(&m, n, go_type);
    add_error(c, n->line, n->col, buf_detach(&m, NULL));
}

/* s quoted like Go's %q; valid until the load ends. */
static const char *qs(ctx *c, const char *s, size_t len)
{
    buf m;
    buf_init(&m, BUF_UNLIMITED);
    expfmt_quote_go(buf_sink, &m, s, len);
    char *q = buf_detach(&m, NULL);
    c->scratch = mem_grow(c->scratch, sizeof *c->scratch, c->n_scratch + 1, &c->cap_scratch);
    c->scratch[c->n_scratch++] = q;
    return q;
}

static const char *qz(ctx *c, const char *s)
{
    return qs(c, s ? s : "", s ? strlen(s) : 0);
}

static int cmp_err(const void *a, const void *b)
{
    const cerr *x = a, *y = b;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    if (x->col != y->col) return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ---- a set of byte strings, for duplicate checks in linear time ------------ */

typedef struct strkey {
    const char *s; /* borrowed */
    size_t len;
} strkey;

typedef struct strset {
    hmap m;
} strset;

static bool strkey_eq(const void *val, const void *key)
{
    const strkey *a = val, *b = key;
    return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

static void strset_init(strset *set)
{
    hmap_init(&set->m);
}

/* Adds s (borrowed: it must outlive the set); false if already present. */
static bool strset_add(strset *set, const char *s, size_t len)
{
    strkey k = {s, len};
    uint64_t h = strutil_hash64(s, len, 0);
    if (hmap_get(&set->m, h, strkey_eq, &k)) return false;
    strkey *e = mem_malloc(sizeof *e);
    *e = k;
    hmap_put(&set->m, h, e);
    return true;
}

static void strset_cleanup(strset *set)
{
    size_t it = 0;
    void *v;
    while (hmap_next(&set->m, &it, &v))
        mem_free(v);
    hmap_cleanup(&set->m);
}

/* ---- paths (Go's filepath.Clean, Dir and config.JoinDir) ------------------- */

static char *path_clean(const char *p)
{
    size_t n = strlen(p);
    if (n == 0) return mem_strdup(".");
    bool rooted = p[0] == '/';
    char *out = mem_malloc(n + 2);
    size_t o = 0;
    if (rooted) out[o++] = '/';
    size_t base = o; /* where ".." may no longer pop */
    size_t i = 0;
    while (i < n) {
        while (i < n && p[i] == '/')
            i++;
        size_t s = i;
        while (i < n && p[i] != '/')
            i++;
        size_t len = i - s;
        if (len == 0 || (len == 1 && p[s] == '.')) continue;
        if (len == 2 && p[s] == '.' && p[s + 1] == '.') {
            if (o > base) {
                /* Pop the last element. */
                while (o > base && out[o - 1] != '/')
                    o--;
                if (o > base) o--;
            } else if (!rooted) {
                if (o > 0) out[o++] = '/';
                out[o++] = '.';
                out[o++] = '.';
                base = o;
            }
            continue;
        }
        if (o > 0 && out[o - 1] != '/') out[o++] = '/';
        memcpy(out + o, p + s, len);
        o += len;
    }
    if (o == 0) out[o++] = '.';
    out[o] = '\0';
    return out;
}

static char *path_dir(const char *p)
{
    const char *slash = strrchr(p, '/');
    if (!slash) return mem_strdup(".");
    char *d = mem_strndup(p, (size_t)(slash - p + 1));
    char *c = path_clean(d);
    mem_free(d);
    return c;
}

static char *join_dir(ctx *c, const char *p)
{
    if (!p) return NULL;
    if (p[0] == '\0' || p[0] == '/') return mem_strdup(p);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_printf(&b, "%s/%s", c->dir, p);
    char *r = path_clean(buf_cstr(&b));
    buf_cleanup(&b);
    return r;
}

/* In place: replaces *p by its joined form. */
static void join_dir_inplace(ctx *c, char **p)
{
    if (!*p) return;
    char *j = join_dir(c, *p);
    mem_free(*p);
    *p = j;
}

/* ---- struct decoding --------------------------------------------------------- */

typedef struct slot {
    const yamlconf_node *key; /* NULL when the field is absent */
    const yamlconf_node *val;
} slot;

static bool key_is(const yamlconf_node *k, const char *name)
{
    size_t n = strlen(name);
    return k->len == n && memcmp(k->str, name, n) == 0;
}

/* Decodes mapping n into one slot per known field name, reporting unknown
 * and repeated keys as yaml.v2's strict mode does, with the Go type name
 * `type`. Returns 1 for a mapping, 0 for null/absent (all slots empty), -1
 * for a type error (reported). */
static int decode_map(ctx *c, const yamlconf_node *n, const char *type, const char *const *names,
                      size_t nf, slot *slots)
{
    memset(slots, 0, nf * sizeof *slots);
    if (yamlconf_is_null(n)) return 0;
    if (n->kind != YAMLCONF_MAP) {
        type_error(c, n, type);
        return -1;
    }
    for (size_t i = 0; i < n->n; i++) {
        const yamlconf_node *k = n->pairs[i].key, *v = n->pairs[i].value;
        if (k->kind != YAMLCONF_SCALAR && k->kind != YAMLCONF_NULL) {
            type_error(c, k, "string");
            continue;
        }
        size_t f;
        for (f = 0; f < nf; f++) {
            if (key_is(k, names[f])) break;
        }
        if (f == nf) {
            errorf(c, k, "field %s not found in type %s", k->str, type);
        } else if (slots[f].key) {
            errorf(c, k, "field %s already set in type %s", k->str, type);
        } else {
            slots[f].key = k;
            slots[f].val = v;
        }
    }
    return 1;
}

/* Where to point for a field: its value, or its key when the value is null
 * (an empty value has no useful position). */
static const yamlconf_node *at_of(const slot *s, const yamlconf_node *fallback)
{
    if (!s->key) return fallback;
    if (s->val && !yamlconf_is_null(s->val)) return s->val;
    return s->key;
}

static bool is_scalar(const yamlconf_node *n)
{
    return n->kind == YAMLCONF_SCALAR;
}

/* Strings: absent -> 0 (unchanged), null -> "" , scalar -> its text. */
static int get_string(ctx *c, const slot *s, char **dst)
{
    if (!s->key) return 0;
    if (yamlconf_is_null(s->val)) {
        mem_free(*dst);
        *dst = mem_strdup("");
        return 1;
    }
    if (!is_scalar(s->val)) {
        type_error(c, s->val, "string");
        return -1;
    }
    mem_free(*dst);
    *dst = mem_strndup(s->val->str, s->val->len);
    return 1;
}

/* A string field that is only validated: returns the node's text or "". */
static const char *str_of(ctx *c, const slot *s, bool *ok)
{
    *ok = true;
    if (!s->key || yamlconf_is_null(s->val)) return "";
    if (!is_scalar(s->val)) {
        type_error(c, s->val, "string");
        *ok = false;
        return "";
    }
    return s->val->str;
}

static int get_bool(ctx *c, const slot *s, bool *dst)
{
    if (!s->key) return 0;
    if (yamlconf_is_null(s->val)) {
        *dst = false;
        return 1;
    }
    if (yamlconf_bool(s->val, dst) < 0) {
        type_error(c, s->val, "bool");
        return -1;
    }
    return 1;
}

static int get_uint(ctx *c, const slot *s, uint64_t *dst, const char *go_type)
{
    if (!s->key) return 0;
    if (yamlconf_is_null(s->val)) {
        *dst = 0;
        return 1;
    }
    if (yamlconf_uint64(s->val, dst) < 0) {
        type_error(c, s->val, go_type);
        return -1;
    }
    return 1;
}

static int get_int(ctx *c, const slot *s, int64_t *dst, const char *go_type)
{
    if (!s->key) return 0;
    if (yamlconf_is_null(s->val)) {
        *dst = 0;
        return 1;
    }
    if (yamlconf_int64(s->val, dst) < 0) {
        type_error(c, s->val, go_type);
        return -1;
    }
    return 1;
}

static int get_float(ctx *c, const slot *s, double *dst)
{
    if (!s->key) return 0;
    if (yamlconf_is_null(s->val)) {
        *dst = 0;
        return 1;
    }
    if (yamlconf_float(s->val, dst) < 0) {
        type_error(c, s->val, "float64");
        return -1;
    }
    return 1;
}

/* model.Duration: any scalar's text through model.ParseDuration. */
static int get_duration(ctx *c, const slot *s, int64_t *ms)
{
    if (!s->key) return 0;
    if (yamlconf_is_null(s->val)) {
        *ms = 0;
        return 1;
    }
    if (!is_scalar(s->val)) {
        type_error(c, s->val, "string");
        return -1;
    }
    buf e;
    buf_init(&e, 4096);
    int64_t v;
    int rc = strutil_parse_duration(s->val->str, s->val->len, &v, &e);
    if (rc < 0) {
        errorf(c, s->val, "%s", buf_cstr(&e));
        buf_cleanup(&e);
        return -1;
    }
    buf_cleanup(&e);
    *ms = v;
    return 1;
}

/* units.Base2Bytes: any scalar's text through units.ParseBase2Bytes. */
static int get_bytes(ctx *c, const slot *s, int64_t *out)
{
    if (!s->key) return 0;
    if (yamlconf_is_null(s->val)) {
        *out = 0;
        return 1;
    }
    if (!is_scalar(s->val)) {
        type_error(c, s->val, "units.Base2Bytes");
        return -1;
    }
    buf e;
    buf_init(&e, 4096);
    int64_t v;
    if (strutil_parse_bytes(s->val->str, &v, &e) < 0) {
        errorf(c, s->val, "%s", buf_cstr(&e));
        buf_cleanup(&e);
        return -1;
    }
    buf_cleanup(&e);
    *out = v;
    return 1;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mem_free(v[i]);
    mem_free(v);
}

/* []string: absent -> 0; null -> 1 with nothing; items: scalars (null
 * items are ""). *present_nonnull tells a non-null list (even empty). */
static int get_strv(ctx *c, const slot *s, const char *go_type, char ***out, size_t *n,
                    bool *nonnull)
{
    if (nonnull) *nonnull = false;
    if (!s->key) return 0;
    free_strv(*out, *n);
    *out = NULL;
    *n = 0;
    if (yamlconf_is_null(s->val)) return 1;
    if (s->val->kind != YAMLCONF_SEQ) {
        type_error(c, s->val, go_type);
        return -1;
    }
    if (nonnull) *nonnull = true;
    int rc = 1;
    char **v = mem_calloc(s->val->n ? s->val->n : 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < s->val->n; i++) {
        const yamlconf_node *it = s->val->items[i];
        if (yamlconf_is_null(it)) {
            v[k++] = mem_strdup("");
        } else if (!is_scalar(it)) {
            type_error(c, it, "string");
            rc = -1;
        } else {
            v[k++] = mem_strndup(it->str, it->len);
        }
    }
    *out = v;
    *n = k;
    return rc;
}

/* Walks a map[string]<T>: reports non-scalar keys, duplicate keys
 * (`key "x" already set in map`), and calls fn for each other pair. */
typedef void (*pair_fn)(ctx *c, const yamlconf_node *k, const yamlconf_node *v, void *arg);

static int walk_map(ctx *c, const yamlconf_node *n, const char *go_type, pair_fn fn, void *arg)
{
    if (yamlconf_is_null(n)) return 0;
    if (n->kind != YAMLCONF_MAP) {
        type_error(c, n, go_type);
        return -1;
    }
    strset seen;
    strset_init(&seen);
    for (size_t i = 0; i < n->n; i++) {
        const yamlconf_node *k = n->pairs[i].key;
        if (k->kind != YAMLCONF_SCALAR && k->kind != YAMLCONF_NULL) {
            type_error(c, k, "string");
            continue;
        }
        if (!strset_add(&seen, k->str, k->len)) {
            errorf(c, k, "key %s already set in map", qs(c, k->str, k->len));
            continue;
        }
        fn(c, k, n->pairs[i].value, arg);
    }
    strset_cleanup(&seen);
    return 1;
}

/* Values of map[string]string: scalars or null (""). */
static bool string_value(ctx *c, const yamlconf_node *v)
{
    if (yamlconf_is_null(v) || is_scalar(v)) return true;
    type_error(c, v, "string");
    return false;
}

static void check_string_value(ctx *c, const yamlconf_node *k, const yamlconf_node *v, void *arg)
{
    (void)k;
    (void)arg;
    string_value(c, v);
}

static void check_strv_value(ctx *c, const yamlconf_node *k, const yamlconf_node *v, void *arg)
{
    (void)k;
    const char *go_type = arg;
    if (yamlconf_is_null(v)) return;
    if (v->kind != YAMLCONF_SEQ) {
        type_error(c, v, go_type);
        return;
    }
    for (size_t i = 0; i < v->n; i++)
        string_value(c, v->items[i]);
}

/* Validates a list whose items are only checked for shape. Returns the
 * sequence node or NULL. */
static const yamlconf_node *seq_of(ctx *c, const slot *s, const char *go_type)
{
    if (!s->key || yamlconf_is_null(s->val)) return NULL;
    if (s->val->kind != YAMLCONF_SEQ) {
        type_error(c, s->val, go_type);
        return NULL;
    }
    return s->val;
}

/* ---- names ---------------------------------------------------------------------- */

static bool valid_label_name(bool legacy, const char *s, size_t len)
{
    if (legacy) return expfmt_legacy_label_name(s, len);
    return len > 0 && expfmt_utf8_valid(s, len);
}

static bool is_word(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* Prometheus's relabelTargetLegacy:
 * ^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$ — a letter, '_' or a $var
 * first, then word characters and $vars. */
static bool legacy_target_with_vars(const char *s, size_t len)
{
    size_t i = 0;
    bool first = true;
    while (i < len) {
        char ch = s[i];
        if (ch == '$') {
            i++;
            if (i < len && s[i] == '{') {
                size_t st = ++i;
                while (i < len && is_word(s[i]))
                    i++;
                if (i == st || i >= len || s[i] != '}') return false;
                i++;
            } else {
                size_t st = i;
                while (i < len && is_word(s[i]))
                    i++;
                if (i == st) return false;
            }
        } else if (first ? ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_')
                         : is_word(ch)) {
            i++;
        } else {
            return false;
        }
        first = false;
    }
    return !first;
}

static bool valid_label_name_with_vars(bool legacy, const char *s, size_t len)
{
    if (!legacy) return valid_label_name(false, s, len);
    return legacy_target_with_vars(s, len);
}

/* ---- relabel configs ------------------------------------------------------------- */

#define F_ENUM(id, name) id,
#define F_NAME(id, name) name,

#define RELABEL_FIELDS(X)                                                                          \
    X(RL_SOURCE_LABELS, "source_labels")                                                           \
    X(RL_SEPARATOR, "separator")                                                                   \
    X(RL_REGEX, "regex")                                                                           \
    X(RL_MODULUS, "modulus")                                                                       \
    X(RL_TARGET_LABEL, "target_label")                                                             \
    X(RL_REPLACEMENT, "replacement")                                                               \
    X(RL_ACTION, "action")
enum { RELABEL_FIELDS(F_ENUM) RL__N };
static const char *const relabel_names[] = {RELABEL_FIELDS(F_NAME)};

static const struct {
    const char *name;
    enum relabel_action action;
} relabel_actions[] = {
    {"replace", RELABEL_REPLACE},     {"keep", RELABEL_KEEP},
    {"drop", RELABEL_DROP},           {"keepequal", RELABEL_KEEPEQUAL},
    {"dropequal", RELABEL_DROPEQUAL}, {"hashmod", RELABEL_HASHMOD},
    {"labelmap", RELABEL_LABELMAP},   {"labeldrop", RELABEL_LABELDROP},
    {"labelkeep", RELABEL_LABELKEEP}, {"lowercase", RELABEL_LOWERCASE},
    {"uppercase", RELABEL_UPPERCASE},
};

static const char *action_name(enum relabel_action a)
{
    for (size_t i = 0; i < sizeof relabel_actions / sizeof relabel_actions[0]; i++) {
        if (relabel_actions[i].action == a) return relabel_actions[i].name;
    }
    return "?";
}

static void relabel_cleanup(config_relabel *r)
{
    free_strv(r->source_labels, r->n_source_labels);
    mem_free(r->separator);
    mem_free(r->target_label);
    regex_free(r->regex);
    mem_free(r->replacement);
    memset(r, 0, sizeof *r);
}

static void free_relabels(config_relabel *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        relabel_cleanup(&v[i]);
    mem_free(v);
}

static bool compile_regex(ctx *c, const yamlconf_node *at, const char *s, size_t len, regex **out)
{
    buf e;
    buf_init(&e, 4096);
    int rc = regex_compile(out, s, len, &e);
    if (rc < 0) {
        errorf(c, at, "%s", buf_cstr(&e));
        *out = NULL;
    }
    buf_cleanup(&e);
    return rc == 0;
}

/* Decodes and validates one relabel config (relabel.Config's UnmarshalYAML
 * and Validate). Returns false if it is invalid (errors reported). */
static bool decode_relabel(ctx *c, const yamlconf_node *n, bool legacy, config_relabel *r)
{
    slot s[RL__N];
    memset(r, 0, sizeof *r);
    r->action = RELABEL_REPLACE;
    r->separator = mem_strdup(";");
    r->replacement = mem_strdup("$1");
    int d = decode_map(c, n, "relabel.plain", relabel_names, RL__N, s);
    if (d < 0) return false;
    bool ok = true;

    /* source_labels: model.LabelNames, each a valid (UTF-8) label name. */
    bool src_nonnull = false;
    if (s[RL_SOURCE_LABELS].key) {
        bool listed = get_strv(c, &s[RL_SOURCE_LABELS], "model.LabelNames", &r->source_labels,
                               &r->n_source_labels, &src_nonnull) >= 0;
        if (!listed) ok = false;
        const yamlconf_node *seq = s[RL_SOURCE_LABELS].val;
        for (size_t i = 0; listed && src_nonnull && i < r->n_source_labels; i++) {
            const char *l = r->source_labels[i];
            const yamlconf_node *item = seq->items[i];
            size_t len = item->kind == YAMLCONF_SCALAR ? item->len : 0;
            if (!valid_label_name(false, l, len)) {
                errorf(c, item, "%s is not a valid label name", qs(c, l, len));
                ok = false;
            }
        }
    }
    if (get_string(c, &s[RL_SEPARATOR], &r->separator) < 0) ok = false;
    if (get_string(c, &s[RL_TARGET_LABEL], &r->target_label) < 0) ok = false;
    if (get_string(c, &s[RL_REPLACEMENT], &r->replacement) < 0) ok = false;
    if (get_uint(c, &s[RL_MODULUS], &r->modulus, "uint64") < 0) ok = false;

    /* regex: absent -> "(.*)"; null -> "" (the zero Regexp becomes ""). */
    bool regex_set = s[RL_REGEX].key != NULL;
    if (!regex_set) {
        compile_regex(c, n, "(.*)", 4, &r->regex);
    } else if (yamlconf_is_null(s[RL_REGEX].val)) {
        compile_regex(c, s[RL_REGEX].key, "", 0, &r->regex);
    } else if (!is_scalar(s[RL_REGEX].val)) {
        type_error(c, s[RL_REGEX].val, "string");
        ok = false;
    } else if (!compile_regex(c, s[RL_REGEX].val, s[RL_REGEX].val->str, s[RL_REGEX].val->len,
                              &r->regex)) {
        ok = false;
    }

    /* action: case-insensitive; null is the empty action. */
    bool action_empty = false;
    if (s[RL_ACTION].key) {
        const yamlconf_node *v = s[RL_ACTION].val;
        if (yamlconf_is_null(v) || (is_scalar(v) && v->len == 0)) {
            action_empty = true;
        } else if (!is_scalar(v)) {
            type_error(c, v, "string");
            ok = false;
        } else {
            size_t i, na = sizeof relabel_actions / sizeof relabel_actions[0];
            for (i = 0; i < na; i++) {
                if (strlen(relabel_actions[i].name) == v->len &&
                    strncasecmp(relabel_actions[i].name, v->str, v->len) == 0)
                    break;
            }
            if (i == na) {
                errorf(c, v, "unknown relabel action %s", qs(c, v->str, v->len));
                ok = false;
            } else {
                r->action = relabel_actions[i].action;
            }
        }
    }
    if (!ok) return false;

    /* Validate(), in Prometheus's order; the first failure is reported. */
    enum relabel_action a = r->action;
    const char *an = action_name(a);
    const char *tl = r->target_label ? r->target_label : "";
    size_t tl_len = strlen(tl);
    const yamlconf_node *tl_at = at_of(&s[RL_TARGET_LABEL], n);
    const yamlconf_node *act_at = at_of(&s[RL_ACTION], n);
    if (action_empty) {
        errorf(c, act_at, "relabel action cannot be empty");
        return false;
    }
    if (r->modulus == 0 && a == RELABEL_HASHMOD) {
        errorf(c, at_of(&s[RL_MODULUS], act_at),
               "relabel configuration for hashmod requires non-zero modulus");
        return false;
    }
    bool needs_target = a == RELABEL_REPLACE || a == RELABEL_HASHMOD || a == RELABEL_LOWERCASE ||
                        a == RELABEL_UPPERCASE || a == RELABEL_KEEPEQUAL || a == RELABEL_DROPEQUAL;
    if (needs_target && tl_len == 0) {
        errorf(c, at_of(&s[RL_TARGET_LABEL], act_at),
               "relabel configuration for %s action requires 'target_label' value", an);
        return false;
    }
    bool has_var = memchr(tl, '$', tl_len) != NULL;
    if (a == RELABEL_REPLACE && !has_var && !valid_label_name(legacy, tl, tl_len)) {
        errorf(c, tl_at, "%s is invalid 'target_label' for %s action", qs(c, tl, tl_len), an);
        return false;
    }
    if (a == RELABEL_REPLACE && has_var && !valid_label_name_with_vars(legacy, tl, tl_len)) {
        errorf(c, tl_at, "%s is invalid 'target_label' for %s action", qs(c, tl, tl_len), an);
        return false;
    }
    bool case_or_eq = a == RELABEL_LOWERCASE || a == RELABEL_UPPERCASE || a == RELABEL_KEEPEQUAL ||
                      a == RELABEL_DROPEQUAL;
    if (case_or_eq && !valid_label_name(legacy, tl, tl_len)) {
        errorf(c, tl_at, "%s is invalid 'target_label' for %s action", qs(c, tl, tl_len), an);
        return false;
    }
    bool default_replacement = strcmp(r->replacement, "$1") == 0;
    if (case_or_eq && !default_replacement) {
        errorf(c, at_of(&s[RL_REPLACEMENT], n), "'replacement' can not be set for %s action", an);
        return false;
    }
    if (a == RELABEL_LABELMAP &&
        !valid_label_name_with_vars(legacy, r->replacement, strlen(r->replacement))) {
        errorf(c, at_of(&s[RL_REPLACEMENT], n), "%s is invalid 'replacement' for %s action",
               qz(c, r->replacement), an);
        return false;
    }
    if (a == RELABEL_HASHMOD && !valid_label_name(legacy, tl, tl_len)) {
        errorf(c, tl_at, "%s is invalid 'target_label' for %s action", qs(c, tl, tl_len), an);
        return false;
    }
    bool default_separator = strcmp(r->separator, ";") == 0;
    if (a == RELABEL_KEEPEQUAL || a == RELABEL_DROPEQUAL) {
        if (regex_set || r->modulus != 0 || !default_separator || !default_replacement) {
            errorf(c, n,
                   "%s action requires only 'source_labels' and `target_label`, and no other "
                   "fields",
                   an);
            return false;
        }
    }
    if (a == RELABEL_LABELDROP || a == RELABEL_LABELKEEP) {
        if (src_nonnull || tl_len != 0 || r->modulus != 0 || !default_separator ||
            !default_replacement) {
            errorf(c, n, "%s action requires only 'regex', and no other fields", an);
            return false;
        }
    }
    if (r->target_label && !*r->target_label) {
        /* An empty target_label is "not set" (NULL), as config.h says. */
        mem_free(r->target_label);
        r->target_label = NULL;
    }
    return true;
}

/* A list of relabel configs. `null_msg` is Prometheus's message for a null
 * entry. Returns false if anything was invalid. */
static bool decode_relabels(ctx *c, const slot *s, bool legacy, const char *null_msg,
                            config_relabel **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!s->key || yamlconf_is_null(s->val)) return true;
    if (s->val->kind != YAMLCONF_SEQ) {
        type_error(c, s->val, "[]*relabel.Config");
        return false;
    }
    bool ok = true;
    config_relabel *v = mem_calloc(s->val->n ? s->val->n : 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < s->val->n; i++) {
        const yamlconf_node *it = s->val->items[i];
        if (yamlconf_is_null(it)) {
            errorf(c, it->line > s->key->line ? it : s->key, "%s", null_msg);
            ok = false;
            continue;
        }
        if (decode_relabel(c, it, legacy, &v[k])) {
            k++;
        } else {
            relabel_cleanup(&v[k]);
            ok = false;
        }
    }
    *out = v;
    *n = k;
    return ok;
}

/* ---- HTTP client settings (common's HTTPClientConfig) ----------------------------- */

#define HTTP_FIELDS(X)                                                                             \
    X(H_BASIC_AUTH, "basic_auth")                                                                  \
    X(H_AUTHORIZATION, "authorization")                                                            \
    X(H_OAUTH2, "oauth2")                                                                          \
    X(H_BEARER_TOKEN, "bearer_token")                                                              \
    X(H_BEARER_TOKEN_FILE, "bearer_token_file")                                                    \
    X(H_TLS_CONFIG, "tls_config")                                                                  \
    X(H_FOLLOW_REDIRECTS, "follow_redirects")                                                      \
    X(H_ENABLE_HTTP2, "enable_http2")                                                              \
    PROXY_FIELDS(X)                                                                                \
    X(H_HTTP_HEADERS, "http_headers")
#define PROXY_FIELDS(X)                                                                            \
    X(H_PROXY_URL, "proxy_url")                                                                    \
    X(H_NO_PROXY, "no_proxy")                                                                      \
    X(H_PROXY_FROM_ENV, "proxy_from_environment")                                                  \
    X(H_PROXY_CONNECT_HEADER, "proxy_connect_header")
enum { HTTP_FIELDS(F_ENUM) H__N };
static const char *const http_names[] = {HTTP_FIELDS(F_NAME)};

#define TLS_FIELDS(X)                                                                              \
    X(T_CA, "ca")                                                                                  \
    X(T_CERT, "cert")                                                                              \
    X(T_KEY, "key")                                                                                \
    X(T_CA_FILE, "ca_file")                                                                        \
    X(T_CERT_FILE, "cert_file")                                                                    \
    X(T_KEY_FILE, "key_file")                                                                      \
    X(T_CA_REF, "ca_ref")                                                                          \
    X(T_CERT_REF, "cert_ref")                                                                      \
    X(T_KEY_REF, "key_ref")                                                                        \
    X(T_SERVER_NAME, "server_name")                                                                \
    X(T_INSECURE, "insecure_skip_verify")                                                          \
    X(T_MIN_VERSION, "min_version")                                                                \
    X(T_MAX_VERSION, "max_version")
enum { TLS_FIELDS(F_ENUM) T__N };
static const char *const tls_names[] = {TLS_FIELDS(F_NAME)};

#define BASIC_FIELDS(X)                                                                            \
    X(B_USERNAME, "username")                                                                      \
    X(B_USERNAME_FILE, "username_file")                                                            \
    X(B_USERNAME_REF, "username_ref")                                                              \
    X(B_PASSWORD, "password")                                                                      \
    X(B_PASSWORD_FILE, "password_file")                                                            \
    X(B_PASSWORD_REF, "password_ref")
enum { BASIC_FIELDS(F_ENUM) B__N };
static const char *const basic_names[] = {BASIC_FIELDS(F_NAME)};

#define AUTHZ_FIELDS(X)                                                                            \
    X(A_TYPE, "type")                                                                              \
    X(A_CREDENTIALS, "credentials")                                                                \
    X(A_CREDENTIALS_FILE, "credentials_file")                                                      \
    X(A_CREDENTIALS_REF, "credentials_ref")
enum { AUTHZ_FIELDS(F_ENUM) A__N };
static const char *const authz_names[] = {AUTHZ_FIELDS(F_NAME)};

#define OAUTH2_FIELDS(X)                                                                           \
    X(O_CLIENT_ID, "client_id")                                                                    \
    X(O_CLIENT_SECRET, "client_secret")                                                            \
    X(O_CLIENT_SECRET_FILE, "client_secret_file")                                                  \
    X(O_CLIENT_SECRET_REF, "client_secret_ref")                                                    \
    X(O_CERT_KEY_ID, "client_certificate_key_id")                                                  \
    X(O_CERT_KEY, "client_certificate_key")                                                        \
    X(O_CERT_KEY_FILE, "client_certificate_key_file")                                              \
    X(O_CERT_KEY_REF, "client_certificate_key_ref")                                                \
    X(O_GRANT_TYPE, "grant_type")                                                                  \
    X(O_SIGNATURE_ALGORITHM, "signature_algorithm")                                                \
    X(O_ISS, "iss")                                                                                \
    X(O_AUDIENCE, "audience")                                                                      \
    X(O_CLAIMS, "claims")                                                                          \
    X(O_SCOPES, "scopes")                                                                          \
    X(O_TOKEN_URL, "token_url")                                                                    \
    X(O_ENDPOINT_PARAMS, "endpoint_params")                                                        \
    X(O_TLS_CONFIG, "tls_config")
enum { OAUTH2_FIELDS(F_ENUM) O__OWN };
enum { O_PROXY_URL = O__OWN, O_NO_PROXY, O_PROXY_FROM_ENV, O_PROXY_CONNECT_HEADER, O__N };
static const char *const oauth2_names[] = {OAUTH2_FIELDS(F_NAME) "proxy_url", "no_proxy",
                                           "proxy_from_environment", "proxy_connect_header"};

#define HEADER_FIELDS(X) X(HD_VALUES, "values") X(HD_SECRETS, "secrets") X(HD_FILES, "files")
enum { HEADER_FIELDS(F_ENUM) HD__N };
static const char *const header_names[] = {HEADER_FIELDS(F_NAME)};

static bool nonempty(const char *s)
{
    return s && *s;
}

static int count3(bool a, bool b, bool d)
{
    return (int)a + (int)b + (int)d;
}

/* TLSConfig's decoding and Validate. Fills the sidewatch fields if h. */
static bool decode_tls(ctx *c, const yamlconf_node *n, config_http_client *h)
{
    slot s[T__N];
    int d = decode_map(c, n, "config.plain", tls_names, T__N, s);
    if (d <= 0) return d == 0;
    bool ok = true;
    const char *v[T__N];
    for (int i = 0; i < T__N; i++) {
        if (i == T_INSECURE) {
            v[i] = "";
            continue;
        }
        bool fine;
        v[i] = str_of(c, &s[i], &fine);
        if (!fine) ok = false;
    }
    bool insecure = false;
    if (get_bool(c, &s[T_INSECURE], &insecure) < 0) ok = false;
    static const char *const versions[] = {"TLS13", "TLS12", "TLS11", "TLS10", NULL};
    for (int i = T_MIN_VERSION; i <= T_MAX_VERSION; i++) {
        if (!s[i].key || yamlconf_is_null(s[i].val) || !ok) continue;
        bool known = false;
        for (size_t k = 0; versions[k]; k++)
            known |= strcmp(versions[k], v[i]) == 0;
        if (!known) {
            errorf(c, s[i].val, "unknown TLS version: %s", v[i]);
            ok = false;
        }
    }
    if (!ok) return false;
    if (count3(*v[T_CA], *v[T_CA_FILE], *v[T_CA_REF]) > 1) {
        errorf(c, n, "at most one of ca, ca_file & ca_ref must be configured");
        return false;
    }
    if (count3(*v[T_CERT], *v[T_CERT_FILE], *v[T_CERT_REF]) > 1) {
        errorf(c, n, "at most one of cert, cert_file & cert_ref must be configured");
        return false;
    }
    if (count3(*v[T_KEY], *v[T_KEY_FILE], *v[T_KEY_REF]) > 1) {
        errorf(c, n, "at most one of key and key_file must be configured");
        return false;
    }
    bool using_cert = *v[T_CERT] || *v[T_CERT_FILE] || *v[T_CERT_REF];
    bool using_key = *v[T_KEY] || *v[T_KEY_FILE] || *v[T_KEY_REF];
    if (using_cert && !using_key) {
        errorf(c, n,
               "exactly one of key or key_file must be configured when a client certificate is "
               "configured");
        return false;
    }
    if (using_key && !using_cert) {
        errorf(c, n,
               "exactly one of cert or cert_file must be configured when a client key is "
               "configured");
        return false;
    }
    if (h) {
#define SETF(field, idx, join)                                                                     \
    do {                                                                                           \
        mem_free(h->field);                                                                        \
        h->field = *v[idx] ? (join ? join_dir(c, v[idx]) : mem_strdup(v[idx])) : NULL;             \
    } while (0)
        SETF(tls_ca_file, T_CA_FILE, 1);
        SETF(tls_cert_file, T_CERT_FILE, 1);
        SETF(tls_key_file, T_KEY_FILE, 1);
        SETF(tls_server_name, T_SERVER_NAME, 0);
        SETF(tls_min_version, T_MIN_VERSION, 0);
        SETF(tls_ca, T_CA, 0);
        SETF(tls_cert, T_CERT, 0);
        SETF(tls_key, T_KEY, 0);
#undef SETF
        h->tls_insecure_skip_verify = insecure;
    }
    return true;
}

/* ProxyConfig's Validate, over four slots in proxy order. */
static bool check_proxy(ctx *c, const slot *p, const yamlconf_node *owner, char **proxy_url)
{
    bool ok = true, fine;
    const char *url = str_of(c, &p[0], &fine);
    ok &= fine;
    const char *no_proxy = str_of(c, &p[1], &fine);
    ok &= fine;
    bool from_env = false;
    if (get_bool(c, &p[2], &from_env) < 0) ok = false;
    size_t n_connect = 0;
    if (p[3].key && !yamlconf_is_null(p[3].val)) {
        if (walk_map(c, p[3].val, "config.ProxyHeader", check_strv_value, "[]config.Secret") < 0)
            ok = false;
        else
            n_connect = p[3].val->n;
    }
    if (!ok) return false;
    bool url_set = p[0].key && !yamlconf_is_null(p[0].val) && *url;
    if (n_connect > 0 && !from_env && !url_set) {
        errorf(c, owner,
               "if proxy_connect_header is configured, proxy_url or proxy_from_environment must "
               "also be configured");
        return false;
    }
    if (from_env && url_set) {
        errorf(c, owner,
               "if proxy_from_environment is configured, proxy_url must not be configured");
        return false;
    }
    if (from_env && *no_proxy) {
        errorf(c, owner,
               "if proxy_from_environment is configured, no_proxy must not be configured");
        return false;
    }
    if (!(p[0].key && !yamlconf_is_null(p[0].val)) && *no_proxy) {
        errorf(c, owner, "if no_proxy is configured, proxy_url must also be configured");
        return false;
    }
    if (proxy_url) {
        mem_free(*proxy_url);
        *proxy_url = url_set ? mem_strdup(url) : NULL;
    }
    return true;
}

static bool header_reserved(const char *name)
{
    static const char *const reserved[] = {"Authorization",
                                           "Host",
                                           "Content-Encoding",
                                           "Content-Length",
                                           "Content-Type",
                                           "User-Agent",
                                           "Connection",
                                           "Keep-Alive",
                                           "Proxy-Authenticate",
                                           "Proxy-Authorization",
                                           "Www-Authenticate",
                                           "Accept-Encoding",
                                           "X-Prometheus-Remote-Write-Version",
                                           "X-Prometheus-Remote-Read-Version",
                                           "X-Prometheus-Scrape-Timeout-Seconds",
                                           "X-Amz-Date",
                                           "X-Amz-Security-Token",
                                           "X-Amz-Content-Sha256",
                                           NULL};
    for (size_t i = 0; reserved[i]; i++) {
        if (strcmp(reserved[i], name) == 0) return true;
    }
    return false;
}

/* Go's http.CanonicalHeaderKey for valid tokens; other names are returned
 * unchanged. Caller frees. */
static char *canonical_header(const char *s, size_t len)
{
    char *out = mem_strndup(s, len);
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        bool tok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                   (ch >= '0' && ch <= '9') || strchr("!#$%&'*+-.^_`|~", ch);
        if (!tok || ch == '\0') return out;
    }
    bool upper = true;
    for (size_t i = 0; i < len; i++) {
        char ch = out[i];
        if (upper && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        else if (!upper && ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        out[i] = ch;
        upper = ch == '-';
    }
    return out;
}

static void check_http_header(ctx *c, const yamlconf_node *k, const yamlconf_node *v, void *arg)
{
    bool *ok = arg;
    slot s[HD__N];
    if (decode_map(c, v, "config.Header", header_names, HD__N, s) < 0) {
        *ok = false;
        return;
    }
    char **tmp = NULL;
    size_t nt = 0;
    for (int i = 0; i < HD__N; i++) {
        if (get_strv(c, &s[i], "[]string", &tmp, &nt, NULL) < 0) *ok = false;
        free_strv(tmp, nt);
        tmp = NULL;
        nt = 0;
    }
    char *canon = canonical_header(k->str, k->len);
    if (header_reserved(canon)) {
        errorf(c, k, "setting header %s is not allowed", qz(c, canon));
        *ok = false;
    }
    mem_free(canon);
}

static void http_cleanup(config_http_client *h)
{
    mem_free(h->basic_auth_username);
    mem_free(h->basic_auth_username_file);
    mem_free(h->basic_auth_password.value);
    mem_free(h->basic_auth_password.file);
    mem_free(h->authorization_type);
    mem_free(h->authorization_credentials.value);
    mem_free(h->authorization_credentials.file);
    mem_free(h->tls_ca_file);
    mem_free(h->tls_cert_file);
    mem_free(h->tls_key_file);
    mem_free(h->tls_server_name);
    mem_free(h->tls_min_version);
    mem_free(h->tls_ca);
    mem_free(h->tls_cert);
    mem_free(h->tls_key);
    mem_free(h->proxy_url);
    memset(h, 0, sizeof *h);
}

static char *dup_or_null(const char *s)
{
    return nonempty(s) ? mem_strdup(s) : NULL;
}

/* Decodes the inline HTTPClientConfig fields and runs its Validate. The
 * caller set the defaults (follow_redirects, enable_http2) in *h. */
static bool decode_http(ctx *c, const slot *s, const yamlconf_node *owner, config_http_client *h)
{
    bool ok = true, fine;
    /* basic_auth */
    bool has_basic = s[H_BASIC_AUTH].key && !yamlconf_is_null(s[H_BASIC_AUTH].val);
    const char *bv[B__N] = {0};
    if (has_basic) {
        slot b[B__N];
        if (decode_map(c, s[H_BASIC_AUTH].val, "config.plain", basic_names, B__N, b) < 0) {
            ok = false;
            has_basic = false;
        } else {
            for (int i = 0; i < B__N; i++) {
                bv[i] = str_of(c, &b[i], &fine);
                ok &= fine;
            }
        }
    }
    /* authorization */
    bool has_authz = s[H_AUTHORIZATION].key && !yamlconf_is_null(s[H_AUTHORIZATION].val);
    const char *av[A__N] = {0};
    if (has_authz) {
        slot a[A__N];
        if (decode_map(c, s[H_AUTHORIZATION].val, "config.Authorization", authz_names, A__N, a) <
            0) {
            ok = false;
            has_authz = false;
        } else {
            for (int i = 0; i < A__N; i++) {
                av[i] = str_of(c, &a[i], &fine);
                ok &= fine;
            }
        }
    }
    /* oauth2 */
    bool has_oauth2 = s[H_OAUTH2].key && !yamlconf_is_null(s[H_OAUTH2].val);
    const char *ov[O__N] = {0};
    if (has_oauth2) {
        slot o[O__N];
        if (decode_map(c, s[H_OAUTH2].val, "config.plain", oauth2_names, O__N, o) < 0) {
            ok = false;
            has_oauth2 = false;
        } else {
            for (int i = 0; i < O__OWN; i++) {
                if (i == O_CLAIMS || i == O_SCOPES || i == O_ENDPOINT_PARAMS || i == O_TLS_CONFIG) {
                    ov[i] = "";
                    continue;
                }
                ov[i] = str_of(c, &o[i], &fine);
                ok &= fine;
            }
            if (o[O_CLAIMS].key && !yamlconf_is_null(o[O_CLAIMS].val) &&
                o[O_CLAIMS].val->kind != YAMLCONF_MAP) {
                type_error(c, o[O_CLAIMS].val, "map[string]interface {}");
                ok = false;
            }
            char **tmp = NULL;
            size_t nt = 0;
            if (get_strv(c, &o[O_SCOPES], "[]string", &tmp, &nt, NULL) < 0) ok = false;
            free_strv(tmp, nt);
            if (o[O_ENDPOINT_PARAMS].key &&
                walk_map(c, o[O_ENDPOINT_PARAMS].val, "map[string]string", check_string_value,
                         NULL) < 0)
                ok = false;
            if (o[O_TLS_CONFIG].key && !decode_tls(c, o[O_TLS_CONFIG].val, NULL)) ok = false;
            if (!check_proxy(c, o + O_PROXY_URL, s[H_OAUTH2].val, NULL)) ok = false;
        }
    }
    const char *bearer = str_of(c, &s[H_BEARER_TOKEN], &fine);
    ok &= fine;
    const char *bearer_file = str_of(c, &s[H_BEARER_TOKEN_FILE], &fine);
    ok &= fine;
    if (s[H_TLS_CONFIG].key && !decode_tls(c, s[H_TLS_CONFIG].val, h)) ok = false;
    if (get_bool(c, &s[H_FOLLOW_REDIRECTS], &h->follow_redirects) < 0) ok = false;
    if (get_bool(c, &s[H_ENABLE_HTTP2], &h->enable_http2) < 0) ok = false;
    if (!check_proxy(c, s + H_PROXY_URL, owner, &h->proxy_url)) ok = false;
    if (s[H_HTTP_HEADERS].key &&
        walk_map(c, s[H_HTTP_HEADERS].val, "config.Headers", check_http_header, &ok) < 0)
        ok = false;
    if (!ok) return false;

    /* Validate(), in common's order. */
    const yamlconf_node *bt_at =
        s[H_BEARER_TOKEN].key ? s[H_BEARER_TOKEN].key : s[H_BEARER_TOKEN_FILE].key;
    if (*bearer && *bearer_file) {
        errorf(c, bt_at, "at most one of bearer_token & bearer_token_file must be configured");
        return false;
    }
    if ((has_basic || has_oauth2) && (*bearer || *bearer_file)) {
        errorf(c, bt_at,
               "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be "
               "configured");
        return false;
    }
    if (has_basic && count3(*bv[B_USERNAME], *bv[B_USERNAME_FILE], *bv[B_USERNAME_REF]) > 1) {
        errorf(c, s[H_BASIC_AUTH].key,
               "at most one of basic_auth username, username_file & username_ref must be "
               "configured");
        return false;
    }
    if (has_basic && count3(*bv[B_PASSWORD], *bv[B_PASSWORD_FILE], *bv[B_PASSWORD_REF]) > 1) {
        errorf(c, s[H_BASIC_AUTH].key,
               "at most one of basic_auth password, password_file & password_ref must be "
               "configured");
        return false;
    }
    char *authz_type = NULL;
    if (has_authz) {
        if (*bearer || *bearer_file) {
            errorf(c, s[H_AUTHORIZATION].key,
                   "authorization is not compatible with bearer_token & bearer_token_file");
            return false;
        }
        if (count3(*av[A_CREDENTIALS], *av[A_CREDENTIALS_FILE], *av[A_CREDENTIALS_REF]) > 1) {
            errorf(c, s[H_AUTHORIZATION].key,
                   "at most one of authorization credentials & credentials_file must be "
                   "configured");
            return false;
        }
        /* strings.TrimSpace */
        const char *t = av[A_TYPE];
        size_t tl = strlen(t);
        while (tl && strchr(" \t\n\r\v\f", *t))
            t++, tl--;
        while (tl && strchr(" \t\n\r\v\f", t[tl - 1]))
            tl--;
        authz_type = tl ? mem_strndup(t, tl) : mem_strdup("Bearer");
        if (strcasecmp(authz_type, "basic") == 0) {
            mem_free(authz_type);
            errorf(c, s[H_AUTHORIZATION].key,
                   "authorization type cannot be set to \"basic\", use \"basic_auth\" instead");
            return false;
        }
        if (has_basic || has_oauth2) {
            mem_free(authz_type);
            errorf(c, s[H_AUTHORIZATION].key,
                   "at most one of basic_auth, oauth2 & authorization must be configured");
            return false;
        }
    }
    if (has_oauth2) {
        const yamlconf_node *o_at = s[H_OAUTH2].key;
        if (has_basic) {
            errorf(c, o_at, "at most one of basic_auth, oauth2 & authorization must be configured");
            mem_free(authz_type);
            return false;
        }
        const char *msg = NULL;
        if (!*ov[O_CLIENT_ID]) {
            msg = "oauth2 client_id must be configured";
        } else if (!*ov[O_TOKEN_URL]) {
            msg = "oauth2 token_url must be configured";
        } else if (strcmp(ov[O_GRANT_TYPE], "urn:ietf:params:oauth:grant-type:jwt-bearer") == 0) {
            if (count3(*ov[O_CERT_KEY], *ov[O_CERT_KEY_FILE], *ov[O_CERT_KEY_REF]) > 1) {
                msg = "at most one of oauth2 client_certificate_key, client_certificate_key_file "
                      "& client_certificate_key_ref must be configured using "
                      "grant-type=urn:ietf:params:oauth:grant-type:jwt-bearer";
            } else if (*ov[O_SIGNATURE_ALGORITHM] &&
                       strcmp(ov[O_SIGNATURE_ALGORITHM], "RS256") != 0 &&
                       strcmp(ov[O_SIGNATURE_ALGORITHM], "RS384") != 0 &&
                       strcmp(ov[O_SIGNATURE_ALGORITHM], "RS512") != 0) {
                msg = "valid signature algorithms are RS256, RS384 and RS512";
            }
        } else if (count3(*ov[O_CLIENT_SECRET], *ov[O_CLIENT_SECRET_FILE],
                          *ov[O_CLIENT_SECRET_REF]) > 1) {
            msg = "at most one of oauth2 client_secret, client_secret_file & client_secret_ref "
                  "must be configured using grant-type=client_credentials";
        }
        if (msg) {
            errorf(c, o_at, "%s", msg);
            mem_free(authz_type);
            return false;
        }
    }

    /* Fill sidewatch's view. */
    h->has_basic_auth = has_basic;
    if (has_basic) {
        h->basic_auth_username = dup_or_null(bv[B_USERNAME]);
        h->basic_auth_username_file =
            nonempty(bv[B_USERNAME_FILE]) ? join_dir(c, bv[B_USERNAME_FILE]) : NULL;
        h->basic_auth_password.value = dup_or_null(bv[B_PASSWORD]);
        h->basic_auth_password.file =
            nonempty(bv[B_PASSWORD_FILE]) ? join_dir(c, bv[B_PASSWORD_FILE]) : NULL;
    }
    h->has_oauth2 = has_oauth2;
    if (has_authz) {
        h->has_authorization = true;
        h->authorization_type = authz_type;
        h->authorization_credentials.value = dup_or_null(av[A_CREDENTIALS]);
        h->authorization_credentials.file =
            nonempty(av[A_CREDENTIALS_FILE]) ? join_dir(c, av[A_CREDENTIALS_FILE]) : NULL;
    } else if (*bearer || *bearer_file) {
        h->has_authorization = true;
        h->authorization_type = mem_strdup("Bearer");
        if (*bearer) h->authorization_credentials.value = mem_strdup(bearer);
        if (*bearer_file) h->authorization_credentials.file = join_dir(c, bearer_file);
    }
    return true;
}

static bool any_auth(const config_http_client *h)
{
    return h->has_basic_auth || h->has_authorization || h->has_oauth2;
}

/* ---- service discovery ---------------------------------------------------------- */

/* Every service discovery kind Prometheus 3.14 registers, static, file and
 * docker first (implemented), then the others (not supported), as yaml
 * keys. */
static const char *const sd_keys[] = {
    "static_configs",          "file_sd_configs",      "docker_sd_configs",
    "aws_sd_configs",          "azure_sd_configs",     "consul_sd_configs",
    "digitalocean_sd_configs", "dns_sd_configs",       "dockerswarm_sd_configs",
    "ec2_sd_configs",          "ecs_sd_configs",       "elasticache_sd_configs",
    "eureka_sd_configs",       "gce_sd_configs",       "hetzner_sd_configs",
    "http_sd_configs",         "ionos_sd_configs",     "kubernetes_sd_configs",
    "kuma_sd_configs",         "lightsail_sd_configs", "linode_sd_configs",
    "marathon_sd_configs",     "msk_sd_configs",       "nerve_sd_configs",
    "nomad_sd_configs",        "oci_sd_configs",       "openstack_sd_configs",
    "outscale_sd_configs",     "ovhcloud_sd_configs",  "puppetdb_sd_configs",
    "rds_sd_configs",          "scaleway_sd_configs",  "serverset_sd_configs",
    "stackit_sd_configs",      "triton_sd_configs",    "uyuni_sd_configs",
    "vultr_sd_configs",
};
enum { SD_STATIC = 0, SD_FILE = 1, SD_DOCKER = 2, SD__N = sizeof sd_keys / sizeof sd_keys[0] };
/* The first kind that is not implemented. */
#define SD_FIRST_UNSUPPORTED 3

#define TG_TYPE                                                                                    \
    "struct { Targets []string \"yaml:\\\"targets\\\"\"; Labels model.LabelSet "                   \
    "\"yaml:\\\"labels\\\"\" }"
static const char *const tg_names[] = {"targets", "labels"};

static void tg_cleanup(config_target_group *g)
{
    free_strv(g->targets, g->n_targets);
    labels_free(g->labels);
    mem_free(g->source);
}

static void free_tgs(config_target_group *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tg_cleanup(&v[i]);
    mem_free(v);
}

static void add_group_label(ctx *c, const yamlconf_node *k, const yamlconf_node *v, void *arg)
{
    labels_builder *b = arg;
    /* model.LabelName: valid UTF-8, not empty (Prometheus 3 validates
     * target labels with the UTF-8 scheme whatever the global setting). */
    if (!valid_label_name(false, k->str, k->len)) {
        errorf(c, k, "%s is not a valid label name", qs(c, k->str, k->len));
        return;
    }
    if (!string_value(c, v)) return;
    if (yamlconf_is_null(v)) return;
    labels_builder_add(b, k->str, k->len, v->str, v->len);
}

/* static_configs: a list of target groups. */
static bool decode_static(ctx *c, const slot *s, config_target_group **out, size_t *n)
{
    const yamlconf_node *seq = seq_of(c, s, "[]*targetgroup.Group");
    if (!seq) return !(s->key && !yamlconf_is_null(s->val));
    bool ok = true;
    config_target_group *v = mem_calloc(seq->n ? seq->n : 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < seq->n; i++) {
        const yamlconf_node *it = seq->items[i];
        if (yamlconf_is_null(it)) {
            errorf(c, it->line > s->key->line ? it : s->key,
                   "empty or null section in static_configs");
            ok = false;
            continue;
        }
        slot f[2];
        if (decode_map(c, it, TG_TYPE, tg_names, 2, f) < 0) {
            ok = false;
            continue;
        }
        config_target_group *g = &v[k];
        if (get_strv(c, &f[0], "[]string", &g->targets, &g->n_targets, NULL) < 0) ok = false;
        labels_builder b;
        labels_builder_init(&b);
        if (f[1].key && walk_map(c, f[1].val, "model.LabelSet", add_group_label, &b) < 0)
            ok = false;
        g->labels = labels_builder_finish(&b, NULL);
        labels_builder_cleanup(&b);
        if (!g->labels) g->labels = labels_dup(labels_empty());
        k++;
    }
    *out = v;
    *n = k;
    return ok;
}

/* Prometheus's patFileSDName: ^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$ */
static bool file_sd_name_ok(const char *s)
{
    const char *dot = strrchr(s, '.');
    if (!dot) return false;
    static const char *const exts[] = {"json", "yml", "yaml", "JSON", "YML", "YAML", NULL};
    bool ext = false;
    for (size_t i = 0; exts[i]; i++)
        ext |= strcmp(dot + 1, exts[i]) == 0;
    if (!ext) return false;
    /* The part before the extension: at most one '*', and no '/' after it. */
    const char *star = NULL;
    for (const char *p = s; p < dot; p++) {
        if (*p == '*') {
            if (star) return false;
            star = p;
        } else if (*p == '/' && star) {
            return false;
        }
    }
    return true;
}

static const char *const file_sd_names[] = {"files", "refresh_interval"};

static bool decode_file_sd(ctx *c, const slot *s, config_file_sd **out, size_t *n)
{
    const yamlconf_node *seq = seq_of(c, s, "[]*file.SDConfig");
    if (!seq) return !(s->key && !yamlconf_is_null(s->val));
    bool ok = true;
    config_file_sd *v = mem_calloc(seq->n ? seq->n : 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < seq->n; i++) {
        const yamlconf_node *it = seq->items[i];
        if (yamlconf_is_null(it)) {
            errorf(c, it->line > s->key->line ? it : s->key,
                   "empty or null section in file_sd_configs");
            ok = false;
            continue;
        }
        slot f[2];
        if (decode_map(c, it, "file.plain", file_sd_names, 2, f) < 0) {
            ok = false;
            continue;
        }
        config_file_sd *fs = &v[k++];
        fs->refresh_interval_ms = CONFIG_DEFAULT_FILE_SD_REFRESH_MS;
        bool fine = true;
        if (get_strv(c, &f[0], "[]string", &fs->files, &fs->n_files, NULL) < 0) fine = false;
        if (get_duration(c, &f[1], &fs->refresh_interval_ms) < 0) fine = false;
        if (fine && fs->n_files == 0) {
            errorf(c, it, "file service discovery config must contain at least one path name");
            fine = false;
        }
        for (size_t j = 0; fine && j < fs->n_files; j++) {
            if (!file_sd_name_ok(fs->files[j])) {
                const yamlconf_node *at = f[0].val->items[j];
                errorf(c, at, "path name %s is not valid for file discovery", qz(c, fs->files[j]));
                fine = false;
            }
        }
        for (size_t j = 0; fine && j < fs->n_files; j++)
            join_dir_inplace(c, &fs->files[j]);
        if (!fine) ok = false;
    }
    *out = v;
    *n = k;
    return ok;
}

/* ---- docker_sd_configs ------------------------------------------------------------ */

static bool is_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static int hex_val(char ch)
{
    return ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
}

/* Go's url.unescape error checks over s[0..n): `host` selects encodeHost
 * (only %XX >= 0x80 or "%25", and only host characters). Returns NULL or
 * the reason (static, or written to tmp). */
static const char *url_unescape_error(const char *s, size_t n, bool host, char *tmp, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n) {
                size_t m = n - i < 3 ? n - i : 3;
                snprintf(tmp, cap, "invalid URL escape \"%.*s\"", (int)m, s + i);
                return tmp;
            }
            if (!is_hex(s[i + 1]) || !is_hex(s[i + 2])) {
                snprintf(tmp, cap, "invalid URL escape \"%.3s\"", s + i);
                return tmp;
            }
            if (host && hex_val(s[i + 1]) < 8 && memcmp(s + i, "%25", 3) != 0) {
                snprintf(tmp, cap, "invalid URL escape \"%.3s\"", s + i);
                return tmp;
            }
            i += 2;
        } else if (host && ch < 0x80) {
            bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || strchr("-_.~!$&'()*+,;=:[]<>\"", ch);
            if (!ok || ch == '\0') {
                snprintf(tmp, cap, "invalid character \"%c\" in host name", ch);
                return tmp;
            }
        }
    }
    return NULL;
}

/* Go's validOptionalPort: "" or ":" followed by digits only. */
static bool valid_optional_port(const char *p, size_t n)
{
    if (n == 0) return true;
    if (p[0] != ':') return false;
    for (size_t i = 1; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
    }
    return true;
}

/* The errors Go's url.Parse gives (without the `parse "<url>": ` prefix);
 * NULL when it parses. Covers control characters, a missing scheme,
 * colons in a first relative segment, bad escapes, bad hosts and ports. */
static const char *go_url_error(const char *u, char *tmp, size_t cap)
{
    for (const char *p = u; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return "net/url: invalid control character in URL";
    }
    const char *hash = strchr(u, '#');
    size_t ulen = hash ? (size_t)(hash - u) : strlen(u);
    if (hash) {
        const char *e = url_unescape_error(hash + 1, strlen(hash + 1), false, tmp, cap);
        if (e) return e;
    }
    /* getScheme */
    size_t i = 0;
    bool have_scheme = false;
    for (; i < ulen; i++) {
        char ch = u[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) continue;
        if ((ch >= '0' && ch <= '9') || ch == '+' || ch == '-' || ch == '.') {
            if (i == 0) break;
            continue;
        }
        if (ch == ':') {
            if (i == 0) return "missing protocol scheme";
            have_scheme = true;
        }
        break;
    }
    const char *rest = have_scheme ? u + i + 1 : u;
    size_t rlen = ulen - (size_t)(rest - u);
    const char *q = memchr(rest, '?', rlen);
    if (q) rlen = (size_t)(q - rest);
    if (rlen == 0 || rest[0] != '/') {
        if (have_scheme) return NULL; /* opaque */
        const char *slash = memchr(rest, '/', rlen);
        size_t seg = slash ? (size_t)(slash - rest) : rlen;
        if (memchr(rest, ':', seg)) return "first path segment in URL cannot contain colon";
    }
    const char *path = rest;
    size_t plen = rlen;
    if ((have_scheme || !(rlen >= 3 && memcmp(rest, "///", 3) == 0)) && rlen >= 2 &&
        rest[0] == '/' && rest[1] == '/') {
        const char *auth = rest + 2;
        const char *slash = memchr(auth, '/', rlen - 2);
        size_t alen = slash ? (size_t)(slash - auth) : rlen - 2;
        path = auth + alen;
        plen = rlen - 2 - alen;
        /* parseAuthority: userinfo before the last '@' */
        const char *host = auth;
        size_t hlen = alen;
        for (size_t k = alen; k > 0; k--) {
            if (auth[k - 1] == '@') {
                for (size_t j = 0; j < k - 1; j++) {
                    unsigned char ch = (unsigned char)auth[j];
                    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                              (ch >= '0' && ch <= '9') || strchr("-._:~!$&'()*+,;=%@", ch);
                    if (!ok || ch == '\0') return "net/url: invalid userinfo";
                }
                host = auth + k;
                hlen = alen - k;
                break;
            }
        }
        /* parseHost */
        if (hlen > 0 && host[0] == '[') {
            const char *close = NULL;
            for (size_t k = hlen; k > 0; k--) {
                if (host[k - 1] == ']') {
                    close = host + k - 1;
                    break;
                }
            }
            if (!close) return "missing ']' in host";
            const char *cp = close + 1;
            size_t cl = hlen - (size_t)(cp - host);
            if (!valid_optional_port(cp, cl)) {
                snprintf(tmp, cap, "invalid port \"%.*s\" after host", (int)cl, cp);
                return tmp;
            }
        } else {
            const char *colon = NULL;
            for (size_t k = hlen; k > 0; k--) {
                if (host[k - 1] == ':') {
                    colon = host + k - 1;
                    break;
                }
            }
            if (colon) {
                size_t cl = hlen - (size_t)(colon - host);
                if (!valid_optional_port(colon, cl)) {
                    snprintf(tmp, cap, "invalid port \"%.*s\" after host", (int)cl, colon);
                    return tmp;
                }
            }
        }
        const char *e = url_unescape_error(host, hlen, true, tmp, cap);
        if (e) return e;
    }
    return url_unescape_error(path, plen, false, tmp, cap);
}

static void docker_sd_cleanup(config_docker_sd *d)
{
    mem_free(d->host);
    for (size_t i = 0; i < d->n_filters; i++) {
        mem_free(d->filters[i].name);
        free_strv(d->filters[i].values, d->filters[i].n_values);
    }
    mem_free(d->filters);
    mem_free(d->host_networking_host);
    http_cleanup(&d->http);
}

static void free_docker_sds(config_docker_sd *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        docker_sd_cleanup(&v[i]);
    mem_free(v);
}

#define DOCKER_SD_FIELDS(X)                                                                        \
    X(DK_HOST, "host")                                                                             \
    X(DK_PORT, "port")                                                                             \
    X(DK_FILTERS, "filters")                                                                       \
    X(DK_HOST_NETWORKING_HOST, "host_networking_host")                                             \
    X(DK_REFRESH_INTERVAL, "refresh_interval")                                                     \
    X(DK_MATCH_FIRST_NETWORK, "match_first_network")
enum { DOCKER_SD_FIELDS(F_ENUM) DK__OWN };
enum { DK_HTTP = DK__OWN, DK__N = DK__OWN + H__N };
static const char *const docker_sd_own_names[] = {DOCKER_SD_FIELDS(F_NAME)};
static const char *const docker_filter_names[] = {"name", "values"};

/* One docker_sd_configs entry: moby.DockerSDConfig's UnmarshalYAML (the
 * defaults, strict decoding, "host missing", url.Parse of the host) and the
 * HTTP client's Validate. */
static bool decode_docker_sd_entry(ctx *c, const yamlconf_node *it, config_docker_sd *d)
{
    const char *names[DK__N];
    size_t k = 0;
    for (size_t i = 0; i < DK__OWN; i++)
        names[k++] = docker_sd_own_names[i];
    for (size_t i = 0; i < H__N; i++)
        names[k++] = http_names[i];
    d->port = CONFIG_DEFAULT_DOCKER_SD_PORT;
    d->host_networking_host = mem_strdup("localhost");
    d->refresh_interval_ms = CONFIG_DEFAULT_DOCKER_SD_REFRESH_MS;
    d->match_first_network = true;
    d->http.follow_redirects = true;
    d->http.enable_http2 = true;
    slot s[DK__N];
    if (decode_map(c, it, "moby.plain", names, DK__N, s) < 0) return false;
    bool ok = true;
    if (get_string(c, &s[DK_HOST], &d->host) < 0) ok = false;
    if (get_int(c, &s[DK_PORT], &d->port, "int") < 0) ok = false;
    if (get_string(c, &s[DK_HOST_NETWORKING_HOST], &d->host_networking_host) < 0) ok = false;
    if (get_duration(c, &s[DK_REFRESH_INTERVAL], &d->refresh_interval_ms) < 0) ok = false;
    if (get_bool(c, &s[DK_MATCH_FIRST_NETWORK], &d->match_first_network) < 0) ok = false;
    const yamlconf_node *fl = s[DK_FILTERS].val;
    if (s[DK_FILTERS].key && !yamlconf_is_null(fl)) {
        if (fl->kind != YAMLCONF_SEQ) {
            type_error(c, fl, "[]moby.Filter");
            ok = false;
        } else {
            d->filters = mem_calloc(fl->n ? fl->n : 1, sizeof *d->filters);
            for (size_t i = 0; i < fl->n; i++) {
                slot f[2];
                int r = decode_map(c, fl->items[i], "moby.Filter", docker_filter_names, 2, f);
                if (r < 0) {
                    ok = false;
                    continue;
                }
                config_param *p = &d->filters[d->n_filters++];
                if (get_string(c, &f[0], &p->name) < 0) ok = false;
                if (!p->name) p->name = mem_strdup("");
                if (get_strv(c, &f[1], "[]string", &p->values, &p->n_values, NULL) < 0) ok = false;
            }
        }
    }
    /* Prometheus validates the HTTP client settings after the fields
     * decoded; a decoding error stops it before, but reporting both is
     * more useful and changes no verdict. */
    if (!decode_http(c, s + DK_HTTP, it, &d->http)) ok = false;
    if (!d->host) d->host = mem_strdup("");
    if (ok && !*d->host) {
        errorf(c, at_of(&s[DK_HOST], it), "host missing");
        ok = false;
    } else if (ok) {
        char tmp[256];
        const char *e = go_url_error(d->host, tmp, sizeof tmp);
        if (e) {
            errorf(c, at_of(&s[DK_HOST], it), "parse %s: %s", qz(c, d->host), e);
            ok = false;
        }
    }
    /* Prometheus would panic on a zero ticker (time.NewTicker). */
    if (ok && d->refresh_interval_ms <= 0) {
        errorf(c, at_of(&s[DK_REFRESH_INTERVAL], it),
               "refresh_interval must be greater than 0 for docker_sd_configs");
        ok = false;
    }
    return ok;
}

static bool decode_docker_sd(ctx *c, const slot *s, config_docker_sd **out, size_t *n)
{
    const yamlconf_node *seq = seq_of(c, s, "[]*moby.DockerSDConfig");
    if (!seq) return !(s->key && !yamlconf_is_null(s->val));
    bool ok = true;
    config_docker_sd *v = mem_calloc(seq->n ? seq->n : 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < seq->n; i++) {
        const yamlconf_node *it = seq->items[i];
        if (yamlconf_is_null(it)) {
            errorf(c, it->line > s->key->line ? it : s->key,
                   "empty or null section in docker_sd_configs");
            ok = false;
            continue;
        }
        if (!decode_docker_sd_entry(c, it, &v[k])) ok = false;
        k++;
    }
    *out = v;
    *n = k;
    return ok;
}

/* Go's url.Parse, as far as http_sd needs it: the scheme (lowercased) and
 * whether there is a host. */
static void url_scheme_host(const char *u, char *scheme, size_t cap, bool *has_host)
{
    scheme[0] = '\0';
    *has_host = false;
    size_t i = 0;
    if ((u[0] >= 'a' && u[0] <= 'z') || (u[0] >= 'A' && u[0] <= 'Z')) {
        while (u[i] && ((u[i] >= 'a' && u[i] <= 'z') || (u[i] >= 'A' && u[i] <= 'Z') ||
                        (u[i] >= '0' && u[i] <= '9') || u[i] == '+' || u[i] == '-' || u[i] == '.'))
            i++;
        if (u[i] == ':') {
            size_t n = i < cap - 1 ? i : cap - 1;
            for (size_t k = 0; k < n; k++) {
                char ch = u[k];
                scheme[k] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
            }
            scheme[n] = '\0';
            i++;
        } else {
            i = 0;
        }
    }
    const char *rest = u + i;
    if (rest[0] == '/' && rest[1] == '/') {
        const char *h = rest + 2;
        size_t hl = strcspn(h, "/?#");
        /* Drop userinfo. */
        const char *at = memchr(h, '@', hl);
        if (at) {
            hl -= (size_t)(at + 1 - h);
        }
        *has_host = hl > 0;
    }
}

/* An SD kind sidewatch does not implement: reported once per key; the
 * entries are checked for shape (and http_sd's URL, which Prometheus
 * checks while parsing). */
static bool check_unsupported_sd(ctx *c, const slot *s, size_t kind)
{
    unsupportedf(c, s->key,
                 "not supported: %s (sidewatch implements static_configs, "
                 "file_sd_configs and docker_sd_configs)",
                 sd_keys[kind]);
    const yamlconf_node *seq = seq_of(c, s, "[]discovery.Config");
    if (!seq) return !(s->key && !yamlconf_is_null(s->val));
    bool ok = true;
    for (size_t i = 0; i < seq->n; i++) {
        const yamlconf_node *it = seq->items[i];
        if (yamlconf_is_null(it)) {
            errorf(c, it->line > s->key->line ? it : s->key, "empty or null section in %s",
                   sd_keys[kind]);
            ok = false;
            continue;
        }
        if (it->kind != YAMLCONF_MAP) {
            type_error(c, it, "discovery.Config");
            ok = false;
            continue;
        }
        if (strcmp(sd_keys[kind], "http_sd_configs") == 0) {
            const yamlconf_node *kn;
            const yamlconf_node *u = yamlconf_map_get(it, "url", &kn);
            const char *us = u && is_scalar(u) ? u->str : "";
            if (u && !yamlconf_is_null(u) && !is_scalar(u)) {
                type_error(c, u, "string");
                ok = false;
                continue;
            }
            char scheme[32];
            bool has_host;
            url_scheme_host(us, scheme, sizeof scheme, &has_host);
            const yamlconf_node *at = u && !yamlconf_is_null(u) ? u : it;
            if (!*us) {
                errorf(c, at, "URL is missing");
                ok = false;
            } else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
                errorf(c, at, "URL scheme must be 'http' or 'https'");
                ok = false;
            } else if (!has_host) {
                errorf(c, at, "host is missing in URL");
                ok = false;
            }
        }
    }
    return ok;
}

/* CheckTargetAddress over the static targets as written (a URL is not a
 * host:port; relabeling may rewrite it, so callers skip this when there is
 * relabeling). */
static void check_static_targets(ctx *c, const slot *st)
{
    const yamlconf_node *seq = st->val;
    if (!st->key || !seq || seq->kind != YAMLCONF_SEQ) return;
    for (size_t a = 0; a < seq->n; a++) {
        const yamlconf_node *tn = yamlconf_map_get(seq->items[a], "targets", NULL);
        if (!tn || tn->kind != YAMLCONF_SEQ) continue;
        for (size_t b = 0; b < tn->n; b++) {
            const yamlconf_node *t = tn->items[b];
            if (t->kind == YAMLCONF_SCALAR && memchr(t->str, '/', t->len)) {
                errorf(c, t, "%s is not a valid hostname", qs(c, t->str, t->len));
            }
        }
    }
}

/* ---- scrape protocols --------------------------------------------------------- */

static const char *const proto_names[] = {
    [CONFIG_PROTO_OPENMETRICS_1_0_0] = "OpenMetricsText1.0.0",
    [CONFIG_PROTO_OPENMETRICS_0_0_1] = "OpenMetricsText0.0.1",
    [CONFIG_PROTO_PROMETHEUS_TEXT_1_0_0] = "PrometheusText1.0.0",
    [CONFIG_PROTO_PROMETHEUS_TEXT_0_0_4] = "PrometheusText0.0.4",
    [CONFIG_PROTO_PROMETHEUS_PROTO] = "PrometheusProto",
};
#define N_PROTOS (sizeof proto_names / sizeof proto_names[0])
#define PROTO_SUPPORTED                                                                            \
    "[OpenMetricsText0.0.1 OpenMetricsText1.0.0 PrometheusProto PrometheusText0.0.4 "              \
    "PrometheusText1.0.0]"

const char *config_scrape_protocol_name(enum config_scrape_protocol p)
{
    if ((size_t)p >= N_PROTOS) return "";
    return proto_names[p];
}

static int proto_lookup(const char *s, size_t len)
{
    for (size_t i = 0; i < N_PROTOS; i++) {
        if (strlen(proto_names[i]) == len && memcmp(proto_names[i], s, len) == 0) return (int)i;
    }
    return -1;
}

/* validateAcceptScrapeProtocols. `suffix` completes the messages
 * (" for global config"). Returns 1 set, 0 absent/null, -1 error. */
static int decode_protocols(ctx *c, const slot *s, const char *suffix,
                            enum config_scrape_protocol **out, size_t *n)
{
    if (!s->key || yamlconf_is_null(s->val)) return 0;
    char **v = NULL;
    size_t nv = 0;
    if (get_strv(c, s, "[]config.ScrapeProtocol", &v, &nv, NULL) < 0) {
        free_strv(v, nv);
        return -1;
    }
    const yamlconf_node *seq = s->val;
    int rc = 1;
    if (nv == 0) {
        errorf(c, seq, "scrape_protocols cannot be empty%s", suffix);
        rc = -1;
    }
    enum config_scrape_protocol *p = mem_calloc(nv ? nv : 1, sizeof *p);
    for (size_t i = 0; rc > 0 && i < nv; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(v[i], v[j]) == 0) {
                buf m;
                buf_init(&m, BUF_UNLIMITED);
                buf_putc(&m, '[');
                for (size_t k = 0; k < nv; k++)
                    buf_printf(&m, "%s%s", k ? " " : "", v[k]);
                buf_putc(&m, ']');
                errorf(c, seq->items[i], "duplicated protocol in scrape_protocols, got %s%s",
                       buf_cstr(&m), suffix);
                buf_cleanup(&m);
                rc = -1;
                break;
            }
        }
        if (rc < 0) break;
        int k = proto_lookup(v[i], strlen(v[i]));
        if (k < 0) {
            errorf(c, seq->items[i],
                   "scrape_protocols: unknown scrape protocol %s, supported: %s%s", v[i],
                   PROTO_SUPPORTED, suffix);
            rc = -1;
            break;
        }
        p[i] = (enum config_scrape_protocol)k;
    }
    free_strv(v, nv);
    if (rc < 0) {
        mem_free(p);
        return -1;
    }
    mem_free(*out);
    *out = p;
    *n = nv;
    return 1;
}

static void set_default_protocols(enum config_scrape_protocol **out, size_t *n, bool proto_first)
{
    static const enum config_scrape_protocol def[] = {
        CONFIG_PROTO_PROMETHEUS_PROTO,      CONFIG_PROTO_OPENMETRICS_1_0_0,
        CONFIG_PROTO_OPENMETRICS_0_0_1,     CONFIG_PROTO_PROMETHEUS_TEXT_1_0_0,
        CONFIG_PROTO_PROMETHEUS_TEXT_0_0_4,
    };
    const enum config_scrape_protocol *src = proto_first ? def : def + 1;
    size_t cnt = proto_first ? 5 : 4;
    *out = mem_calloc(cnt, sizeof **out);
    memcpy(*out, src, cnt * sizeof **out);
    *n = cnt;
}

/* ---- external labels (${VAR} expansion like Go's os.Expand) ------------------------ */

static bool shell_special(char ch)
{
    return strchr("*#$@!?-0123456789", ch) != NULL && ch != '\0';
}

/* getShellName: the variable name at s (after '$') and the bytes used. */
static void shell_name(const char *s, size_t len, const char **name, size_t *nlen, size_t *w)
{
    *name = s;
    *nlen = 0;
    if (s[0] == '{') {
        if (len > 2 && shell_special(s[1]) && s[2] == '}') {
            *name = s + 1;
            *nlen = 1;
            *w = 3;
            return;
        }
        for (size_t i = 1; i < len; i++) {
            if (s[i] == '}') {
                if (i == 1) {
                    *w = 2; /* bad syntax: eat "${}" */
                    return;
                }
                *name = s + 1;
                *nlen = i - 1;
                *w = i + 1;
                return;
            }
        }
        *w = 1; /* bad syntax: eat "${" */
        return;
    }
    if (shell_special(s[0])) {
        *nlen = 1;
        *w = 1;
        return;
    }
    size_t i = 0;
    while (i < len && is_word(s[i]))
        i++;
    *nlen = i;
    *w = i;
}

static void expand_env(const char *s, size_t len, buf *out)
{
    size_t i = 0;
    for (size_t j = 0; j < len; j++) {
        if (s[j] == '$' && j + 1 < len) {
            buf_append(out, s + i, j - i);
            const char *name;
            size_t nlen, w;
            shell_name(s + j + 1, len - j - 1, &name, &nlen, &w);
            if (nlen == 0 && w > 0) {
                /* invalid syntax: the characters are eaten */
            } else if (nlen == 0) {
                buf_putc(out, '$');
            } else if (nlen == 1 && name[0] == '$') {
                buf_putc(out, '$');
            } else {
                char *var = mem_strndup(name, nlen);
                const char *val = getenv(var);
                if (val) buf_puts(out, val);
                mem_free(var);
            }
            j += w;
            i = j + 1;
        }
    }
    if (i < len) buf_append(out, s + i, len - i);
}

typedef struct ext_labels {
    labels_builder b;
    buf vals; /* expanded values, NUL-separated; offsets in pending */
    size_t *offs, *lens;
    const yamlconf_node **names;
    size_t n, cap, cap2, cap3;
    bool ok;
} ext_labels;

static void add_external_label(ctx *c, const yamlconf_node *k, const yamlconf_node *v, void *arg)
{
    ext_labels *e = arg;
    if (!valid_label_name(c->legacy, k->str, k->len)) {
        errorf(c, k, "%s is not a valid label name", qs(c, k->str, k->len));
        e->ok = false;
    }
    if (!string_value(c, v)) {
        e->ok = false;
        return;
    }
    const char *val = yamlconf_is_null(v) ? "" : v->str;
    size_t vlen = yamlconf_is_null(v) ? 0 : v->len;
    if (!expfmt_utf8_valid(val, vlen)) {
        errorf(c, v, "%s is not a valid label value", qs(c, val, vlen));
        e->ok = false;
    }
    if (!e->ok) return;
    size_t off = e->vals.len;
    expand_env(val, vlen, &e->vals);
    size_t l = e->vals.len - off;
    buf_putc(&e->vals, '\0');
    e->offs = mem_grow(e->offs, sizeof *e->offs, e->n + 1, &e->cap);
    e->lens = mem_grow(e->lens, sizeof *e->lens, e->n + 1, &e->cap2);
    e->names = mem_grow(e->names, sizeof *e->names, e->n + 1, &e->cap3);
    e->offs[e->n] = off;
    e->lens[e->n] = l;
    e->names[e->n] = k;
    e->n++;
}

/* ---- global --------------------------------------------------------------------- */

#define GLOBAL_FIELDS(X)                                                                           \
    X(G_SCRAPE_INTERVAL, "scrape_interval")                                                        \
    X(G_SCRAPE_TIMEOUT, "scrape_timeout")                                                          \
    X(G_SCRAPE_PROTOCOLS, "scrape_protocols")                                                      \
    X(G_EVALUATION_INTERVAL, "evaluation_interval")                                                \
    X(G_RULE_QUERY_OFFSET, "rule_query_offset")                                                    \
    X(G_QUERY_LOG_FILE, "query_log_file")                                                          \
    X(G_SCRAPE_FAILURE_LOG_FILE, "scrape_failure_log_file")                                        \
    X(G_EXTERNAL_LABELS, "external_labels")                                                        \
    X(G_BODY_SIZE_LIMIT, "body_size_limit")                                                        \
    X(G_SAMPLE_LIMIT, "sample_limit")                                                              \
    X(G_TARGET_LIMIT, "target_limit")                                                              \
    X(G_LABEL_LIMIT, "label_limit")                                                                \
    X(G_LABEL_NAME_LENGTH_LIMIT, "label_name_length_limit")                                        \
    X(G_LABEL_VALUE_LENGTH_LIMIT, "label_value_length_limit")                                      \
    X(G_KEEP_DROPPED_TARGETS, "keep_dropped_targets")                                              \
    X(G_METRIC_NAME_VALIDATION_SCHEME, "metric_name_validation_scheme")                            \
    X(G_METRIC_NAME_ESCAPING_SCHEME, "metric_name_escaping_scheme")                                \
    X(G_SCRAPE_NATIVE_HISTOGRAMS, "scrape_native_histograms")                                      \
    X(G_CONVERT_CLASSIC_TO_NHCB, "convert_classic_histograms_to_nhcb")                             \
    X(G_ALWAYS_SCRAPE_CLASSIC, "always_scrape_classic_histograms")                                 \
    X(G_EXTRA_SCRAPE_METRICS, "extra_scrape_metrics")
enum { GLOBAL_FIELDS(F_ENUM) G__N };
static const char *const global_names[] = {GLOBAL_FIELDS(F_NAME)};

/* ValidationScheme.Set: "" (unset), "legacy", "utf8". Returns 0 unset, 1
 * legacy, 2 utf8, -1 error (reported). */
static int decode_validation_scheme(ctx *c, const slot *s)
{
    bool fine;
    const char *v = str_of(c, s, &fine);
    if (!fine) return -1;
    if (!*v) return 0;
    if (strcmp(v, "legacy") == 0) return 1;
    if (strcmp(v, "utf8") == 0) return 2;
    errorf(c, s->val, "unrecognized ValidationScheme: %s", qz(c, v));
    return -1;
}

static bool escaping_known(const char *s)
{
    return strcmp(s, "allow-utf-8") == 0 || strcmp(s, "underscores") == 0 ||
           strcmp(s, "dots") == 0 || strcmp(s, "values") == 0;
}

static void decode_global(ctx *c, const yamlconf_node *n)
{
    config_global *g = &c->cfg->global;
    g->scrape_interval_ms = CONFIG_DEFAULT_SCRAPE_INTERVAL_MS;
    g->scrape_timeout_ms = CONFIG_DEFAULT_SCRAPE_TIMEOUT_MS;
    g->evaluation_interval_ms = CONFIG_DEFAULT_EVAL_INTERVAL_MS;
    g->external_labels = labels_dup(labels_empty());
    c->global_escaping = mem_strdup("allow-utf-8");
    slot s[G__N];
    if (decode_map(c, n, "config.plain", global_names, G__N, s) <= 0) return;

    int scheme = decode_validation_scheme(c, &s[G_METRIC_NAME_VALIDATION_SCHEME]);
    c->legacy = g->legacy_name_validation = scheme == 1;

    /* external_labels: map[string]string, validated, then ${VAR}-expanded. */
    if (s[G_EXTERNAL_LABELS].key) {
        ext_labels e;
        memset(&e, 0, sizeof e);
        e.ok = true;
        labels_builder_init(&e.b);
        buf_init(&e.vals, BUF_UNLIMITED);
        walk_map(c, s[G_EXTERNAL_LABELS].val, "map[string]string", add_external_label, &e);
        if (e.ok) {
            for (size_t i = 0; i < e.n; i++) {
                labels_builder_add(&e.b, e.names[i]->str, e.names[i]->len, e.vals.data + e.offs[i],
                                   e.lens[i]);
            }
            labels *ls = labels_builder_finish(&e.b, NULL);
            if (ls) {
                labels_free(g->external_labels);
                g->external_labels = ls;
            }
        }
        labels_builder_cleanup(&e.b);
        buf_cleanup(&e.vals);
        mem_free(e.offs);
        mem_free(e.lens);
        mem_free(e.names);
    }

    int64_t interval = 0, timeout = 0, eval = 0;
    int ri = get_duration(c, &s[G_SCRAPE_INTERVAL], &interval);
    int rt = get_duration(c, &s[G_SCRAPE_TIMEOUT], &timeout);
    get_duration(c, &s[G_EVALUATION_INTERVAL], &eval);
    get_duration(c, &s[G_RULE_QUERY_OFFSET], &g->rule_query_offset_ms);
    if (interval == 0) interval = CONFIG_DEFAULT_SCRAPE_INTERVAL_MS;
    if (ri >= 0 && rt >= 0 && timeout > interval) {
        errorf(c, at_of(&s[G_SCRAPE_TIMEOUT], n),
               "global scrape timeout greater than scrape interval");
    }
    if (timeout == 0) {
        timeout = CONFIG_DEFAULT_SCRAPE_TIMEOUT_MS < interval ? CONFIG_DEFAULT_SCRAPE_TIMEOUT_MS
                                                              : interval;
    }
    if (eval == 0) eval = CONFIG_DEFAULT_EVAL_INTERVAL_MS;
    g->scrape_interval_ms = interval;
    g->scrape_timeout_ms = timeout;
    g->evaluation_interval_ms = eval;

    decode_protocols(c, &s[G_SCRAPE_PROTOCOLS], " for global config", &g->scrape_protocols,
                     &g->n_scrape_protocols);

    get_bytes(c, &s[G_BODY_SIZE_LIMIT], &g->body_size_limit);
    get_uint(c, &s[G_SAMPLE_LIMIT], &g->sample_limit, "uint");
    get_uint(c, &s[G_TARGET_LIMIT], &g->target_limit, "uint");
    get_uint(c, &s[G_LABEL_LIMIT], &g->label_limit, "uint");
    get_uint(c, &s[G_LABEL_NAME_LENGTH_LIMIT], &g->label_name_length_limit, "uint");
    get_uint(c, &s[G_LABEL_VALUE_LENGTH_LIMIT], &g->label_value_length_limit, "uint");
    get_uint(c, &s[G_KEEP_DROPPED_TARGETS], &g->keep_dropped_targets, "uint");

    bool fine, dummy = false;
    str_of(c, &s[G_QUERY_LOG_FILE], &fine);
    str_of(c, &s[G_SCRAPE_FAILURE_LOG_FILE], &fine);
    get_bool(c, &s[G_SCRAPE_NATIVE_HISTOGRAMS], &c->native_histograms);
    get_bool(c, &s[G_CONVERT_CLASSIC_TO_NHCB], &c->convert_nhcb);
    get_bool(c, &s[G_ALWAYS_SCRAPE_CLASSIC], &c->always_classic);
    get_bool(c, &s[G_EXTRA_SCRAPE_METRICS], &dummy);

    /* The global escaping scheme, defaulted from the validation scheme. */
    const char *esc = str_of(c, &s[G_METRIC_NAME_ESCAPING_SCHEME], &fine);
    if (fine && *esc && !escaping_known(esc)) {
        errorf(c, s[G_METRIC_NAME_ESCAPING_SCHEME].val,
               "unknown global name escaping method specified, must be one of 'allow-utf-8', "
               "'underscores', 'dots', or 'values', got %s",
               qz(c, esc));
    } else if (fine && *esc) {
        mem_free(c->global_escaping);
        c->global_escaping = mem_strdup(esc);
    } else if (c->legacy) {
        mem_free(c->global_escaping);
        c->global_escaping = mem_strdup("underscores");
    }
}

/* ---- scrape configs ------------------------------------------------------------- */

#define SCRAPE_FIELDS(X)                                                                           \
    X(SC_JOB_NAME, "job_name")                                                                     \
    X(SC_HONOR_LABELS, "honor_labels")                                                             \
    X(SC_HONOR_TIMESTAMPS, "honor_timestamps")                                                     \
    X(SC_TRACK_TIMESTAMPS_STALENESS, "track_timestamps_staleness")                                 \
    X(SC_PARAMS, "params")                                                                         \
    X(SC_SCRAPE_INTERVAL, "scrape_interval")                                                       \
    X(SC_SCRAPE_TIMEOUT, "scrape_timeout")                                                         \
    X(SC_SCRAPE_PROTOCOLS, "scrape_protocols")                                                     \
    X(SC_FALLBACK_PROTOCOL, "fallback_scrape_protocol")                                            \
    X(SC_SCRAPE_NATIVE_HISTOGRAMS, "scrape_native_histograms")                                     \
    X(SC_ALWAYS_SCRAPE_CLASSIC, "always_scrape_classic_histograms")                                \
    X(SC_SCRAPE_CLASSIC, "scrape_classic_histograms")                                              \
    X(SC_CONVERT_CLASSIC_TO_NHCB, "convert_classic_histograms_to_nhcb")                            \
    X(SC_SCRAPE_FAILURE_LOG_FILE, "scrape_failure_log_file")                                       \
    X(SC_METRICS_PATH, "metrics_path")                                                             \
    X(SC_SCHEME, "scheme")                                                                         \
    X(SC_ENABLE_COMPRESSION, "enable_compression")                                                 \
    X(SC_BODY_SIZE_LIMIT, "body_size_limit")                                                       \
    X(SC_SAMPLE_LIMIT, "sample_limit")                                                             \
    X(SC_TARGET_LIMIT, "target_limit")                                                             \
    X(SC_LABEL_LIMIT, "label_limit")                                                               \
    X(SC_LABEL_NAME_LENGTH_LIMIT, "label_name_length_limit")                                       \
    X(SC_LABEL_VALUE_LENGTH_LIMIT, "label_value_length_limit")                                     \
    X(SC_NATIVE_HISTOGRAM_BUCKET_LIMIT, "native_histogram_bucket_limit")                           \
    X(SC_NATIVE_HISTOGRAM_MIN_BUCKET_FACTOR, "native_histogram_min_bucket_factor")                 \
    X(SC_KEEP_DROPPED_TARGETS, "keep_dropped_targets")                                             \
    X(SC_METRIC_NAME_VALIDATION_SCHEME, "metric_name_validation_scheme")                           \
    X(SC_METRIC_NAME_ESCAPING_SCHEME, "metric_name_escaping_scheme")                               \
    X(SC_EXTRA_SCRAPE_METRICS, "extra_scrape_metrics")                                             \
    X(SC_RELABEL_CONFIGS, "relabel_configs")                                                       \
    X(SC_METRIC_RELABEL_CONFIGS, "metric_relabel_configs")
enum { SCRAPE_FIELDS(F_ENUM) SC__OWN };
enum { SC_HTTP = SC__OWN, SC_SD = SC__OWN + H__N, SC__N = SC__OWN + H__N + SD__N };

/* Field names of a struct = own names + inline HTTP fields + SD keys. */
static const char *const scrape_own_names[] = {SCRAPE_FIELDS(F_NAME)};

static void build_names(const char **out, const char *const *own, size_t n_own, bool http, bool sd)
{
    size_t k = 0;
    for (size_t i = 0; i < n_own; i++)
        out[k++] = own[i];
    if (http) {
        for (size_t i = 0; i < H__N; i++)
            out[k++] = http_names[i];
    }
    if (sd) {
        for (size_t i = 0; i < SD__N; i++)
            out[k++] = sd_keys[i];
    }
}

static void scrape_cleanup(config_scrape *s)
{
    mem_free(s->job_name);
    mem_free(s->metrics_path);
    mem_free(s->scheme);
    for (size_t i = 0; i < s->n_params; i++) {
        mem_free(s->params[i].name);
        free_strv(s->params[i].values, s->params[i].n_values);
    }
    mem_free(s->params);
    mem_free(s->scrape_protocols);
    free_tgs(s->static_configs, s->n_static_configs);
    for (size_t i = 0; i < s->n_file_sd_configs; i++) {
        free_strv(s->file_sd_configs[i].files, s->file_sd_configs[i].n_files);
    }
    mem_free(s->file_sd_configs);
    free_docker_sds(s->docker_sd_configs, s->n_docker_sd_configs);
    free_relabels(s->relabel_configs, s->n_relabel_configs);
    free_relabels(s->metric_relabel_configs, s->n_metric_relabel_configs);
    mem_free(s->metric_name_escaping_scheme);
    http_cleanup(&s->http);
}

static void add_param(ctx *c, const yamlconf_node *k, const yamlconf_node *v, void *arg)
{
    config_scrape *s = arg;
    slot sl = {k, v};
    config_param p = {0};
    p.name = mem_strndup(k->str, k->len);
    get_strv(c, &sl, "[]string", &p.values, &p.n_values, NULL);
    s->params = mem_realloc(s->params, (s->n_params + 1) * sizeof *s->params);
    s->params[s->n_params++] = p;
}

/* Decodes SD slots for a scrape or alertmanager config. */
static bool decode_sds(ctx *c, const slot *sd, config_target_group **st, size_t *n_st,
                       config_file_sd **fs, size_t *n_fs, config_docker_sd **ds, size_t *n_ds)
{
    bool ok = true;
    if (!decode_static(c, &sd[SD_STATIC], st, n_st)) ok = false;
    if (!decode_file_sd(c, &sd[SD_FILE], fs, n_fs)) ok = false;
    if (!decode_docker_sd(c, &sd[SD_DOCKER], ds, n_ds)) ok = false;
    for (size_t k = SD_FIRST_UNSUPPORTED; k < SD__N; k++) {
        if (sd[k].key && !check_unsupported_sd(c, &sd[k], k)) ok = false;
    }
    return ok;
}

static void decode_scrape(ctx *c, const yamlconf_node *n, config_scrape *sc)
{
    const config_global *g = &c->cfg->global;
    const char *names[SC__N];
    build_names(names, scrape_own_names, SC__OWN, true, true);
    slot s[SC__N];

    sc->metrics_path = mem_strdup("/metrics");
    sc->scheme = mem_strdup("http");
    sc->honor_timestamps = true;
    sc->enable_compression = true;
    sc->http.follow_redirects = true;
    sc->http.enable_http2 = true;
    if (decode_map(c, n, "config.ScrapeConfig", names, SC__N, s) < 0) return;

    int rj = get_string(c, &s[SC_JOB_NAME], &sc->job_name);
    if (!sc->job_name) sc->job_name = mem_strdup("");
    const char *job = sc->job_name;
    if (rj >= 0 && !*job) errorf(c, at_of(&s[SC_JOB_NAME], n), "job_name is empty");

    get_bool(c, &s[SC_HONOR_LABELS], &sc->honor_labels);
    get_bool(c, &s[SC_HONOR_TIMESTAMPS], &sc->honor_timestamps);
    get_bool(c, &s[SC_TRACK_TIMESTAMPS_STALENESS], &sc->track_timestamps_staleness);
    get_bool(c, &s[SC_ENABLE_COMPRESSION], &sc->enable_compression);
    if (s[SC_PARAMS].key) walk_map(c, s[SC_PARAMS].val, "url.Values", add_param, sc);
    get_string(c, &s[SC_METRICS_PATH], &sc->metrics_path);
    if (get_string(c, &s[SC_SCHEME], &sc->scheme) >= 0 && strcmp(sc->scheme, "http") != 0 &&
        strcmp(sc->scheme, "https") != 0) {
        errorf(c, at_of(&s[SC_SCHEME], n),
               "unsupported scheme %s for scrape config with job name %s (sidewatch scrapes "
               "\"http\" and \"https\")",
               qz(c, sc->scheme), qz(c, job));
    }

    /* Ignored settings: checked for type only. */
    bool fine, dummy = false;
    uint64_t u = 0;
    double f = 0;
    str_of(c, &s[SC_SCRAPE_FAILURE_LOG_FILE], &fine);
    sc->always_scrape_classic_histograms = c->always_classic;
    /* Prometheus 2.x's name for it (3.0 renamed it), accepted so that
     * older prometheus.yml files load; the new name wins. */
    if (!s[SC_ALWAYS_SCRAPE_CLASSIC].key)
        get_bool(c, &s[SC_SCRAPE_CLASSIC], &sc->always_scrape_classic_histograms);
    get_bool(c, &s[SC_ALWAYS_SCRAPE_CLASSIC], &sc->always_scrape_classic_histograms);
    sc->convert_classic_histograms_to_nhcb = c->convert_nhcb;
    get_bool(c, &s[SC_CONVERT_CLASSIC_TO_NHCB], &sc->convert_classic_histograms_to_nhcb);
    get_bool(c, &s[SC_EXTRA_SCRAPE_METRICS], &dummy);
    if (get_uint(c, &s[SC_NATIVE_HISTOGRAM_BUCKET_LIMIT], &u, "uint") >= 0)
        sc->native_histogram_bucket_limit = u;
    if (get_float(c, &s[SC_NATIVE_HISTOGRAM_MIN_BUCKET_FACTOR], &f) >= 0)
        sc->native_histogram_min_bucket_factor = f;
    bool native = c->native_histograms;
    get_bool(c, &s[SC_SCRAPE_NATIVE_HISTOGRAMS], &native);
    sc->scrape_native_histograms = native;

    /* HTTP client settings (UnmarshalYAML validates them first). */
    bool http_ok = decode_http(c, s + SC_HTTP, n, &sc->http);
    (void)http_ok;

    /* Service discovery. */
    const slot *sd = s + SC_SD;
    decode_sds(c, sd, &sc->static_configs, &sc->n_static_configs, &sc->file_sd_configs,
               &sc->n_file_sd_configs, &sc->docker_sd_configs, &sc->n_docker_sd_configs);

    /* Name validation scheme of this job (relabel configs use it). */
    int local = decode_validation_scheme(c, &s[SC_METRIC_NAME_VALIDATION_SCHEME]);
    bool legacy = local == 1 || (local == 0 && c->legacy);
    sc->legacy_name_validation = legacy;

    /* Relabel configs: target groups are only checked for URLs when there
     * is no relabeling (it could fix them). */
    bool rl_ok = decode_relabels(c, &s[SC_RELABEL_CONFIGS], legacy,
                                 "empty or null target relabeling rule in scrape config",
                                 &sc->relabel_configs, &sc->n_relabel_configs);
    bool has_relabel = s[SC_RELABEL_CONFIGS].key && !yamlconf_is_null(s[SC_RELABEL_CONFIGS].val) &&
                       s[SC_RELABEL_CONFIGS].val->kind == YAMLCONF_SEQ &&
                       s[SC_RELABEL_CONFIGS].val->n > 0;
    (void)rl_ok;
    if (!has_relabel) {
        check_static_targets(c, &sd[SD_STATIC]);
    }
    decode_relabels(c, &s[SC_METRIC_RELABEL_CONFIGS], legacy,
                    "empty or null metric relabeling rule in scrape config",
                    &sc->metric_relabel_configs, &sc->n_metric_relabel_configs);

    /* Validate(global): intervals. */
    int64_t interval = 0, timeout = 0;
    int ri = get_duration(c, &s[SC_SCRAPE_INTERVAL], &interval);
    int rt = get_duration(c, &s[SC_SCRAPE_TIMEOUT], &timeout);
    if (interval == 0) interval = g->scrape_interval_ms;
    if (ri >= 0 && rt >= 0 && timeout > interval) {
        errorf(c, at_of(&s[SC_SCRAPE_TIMEOUT], n),
               "scrape timeout greater than scrape interval for scrape config with job name %s",
               qz(c, job));
    }
    if (timeout == 0) timeout = g->scrape_timeout_ms < interval ? g->scrape_timeout_ms : interval;
    sc->scrape_interval_ms = interval;
    sc->scrape_timeout_ms = timeout;

    /* Limits: 0 inherits the global value. */
    get_bytes(c, &s[SC_BODY_SIZE_LIMIT], &sc->body_size_limit);
    get_uint(c, &s[SC_SAMPLE_LIMIT], &sc->sample_limit, "uint");
    get_uint(c, &s[SC_TARGET_LIMIT], &sc->target_limit, "uint");
    get_uint(c, &s[SC_LABEL_LIMIT], &sc->label_limit, "uint");
    get_uint(c, &s[SC_LABEL_NAME_LENGTH_LIMIT], &sc->label_name_length_limit, "uint");
    get_uint(c, &s[SC_LABEL_VALUE_LENGTH_LIMIT], &sc->label_value_length_limit, "uint");
    get_uint(c, &s[SC_KEEP_DROPPED_TARGETS], &sc->keep_dropped_targets, "uint");
    if (sc->body_size_limit == 0) sc->body_size_limit = g->body_size_limit;
    if (sc->sample_limit == 0) sc->sample_limit = g->sample_limit;
    if (sc->target_limit == 0) sc->target_limit = g->target_limit;
    if (sc->label_limit == 0) sc->label_limit = g->label_limit;
    if (sc->label_name_length_limit == 0) sc->label_name_length_limit = g->label_name_length_limit;
    if (sc->label_value_length_limit == 0)
        sc->label_value_length_limit = g->label_value_length_limit;
    if (sc->keep_dropped_targets == 0) sc->keep_dropped_targets = g->keep_dropped_targets;

    /* Scrape protocols: own, else global, else the defaults (protobuf
     * first when native histograms are scraped). */
    buf suffix;
    buf_init(&suffix, BUF_UNLIMITED);
    buf_printf(&suffix, " for scrape config with job name %s", qz(c, job));
    int rp = decode_protocols(c, &s[SC_SCRAPE_PROTOCOLS], buf_cstr(&suffix), &sc->scrape_protocols,
                              &sc->n_scrape_protocols);
    buf_cleanup(&suffix);
    if (rp == 0) {
        if (g->n_scrape_protocols) {
            sc->scrape_protocols = mem_calloc(g->n_scrape_protocols, sizeof *sc->scrape_protocols);
            memcpy(sc->scrape_protocols, g->scrape_protocols,
                   g->n_scrape_protocols * sizeof *sc->scrape_protocols);
            sc->n_scrape_protocols = g->n_scrape_protocols;
        } else {
            set_default_protocols(&sc->scrape_protocols, &sc->n_scrape_protocols, native);
        }
    }
    if (s[SC_FALLBACK_PROTOCOL].key) {
        const char *fb = str_of(c, &s[SC_FALLBACK_PROTOCOL], &fine);
        if (fine && *fb) {
            int k = proto_lookup(fb, strlen(fb));
            if (k < 0) {
                errorf(c, s[SC_FALLBACK_PROTOCOL].val,
                       "invalid fallback_scrape_protocol for scrape config with job name %s: "
                       "unknown scrape protocol %s, supported: %s",
                       qz(c, job), fb, PROTO_SUPPORTED);
            } else {
                sc->has_fallback_protocol = true;
                sc->fallback_scrape_protocol = (enum config_scrape_protocol)k;
            }
        }
    }

    /* Escaping scheme. */
    const char *esc = str_of(c, &s[SC_METRIC_NAME_ESCAPING_SCHEME], &fine);
    if (fine) {
        const char *e = esc;
        if (!*e) {
            if (local == 0)
                e = c->global_escaping;
            else
                e = legacy ? "underscores" : "allow-utf-8";
        }
        const yamlconf_node *e_at = at_of(&s[SC_METRIC_NAME_ESCAPING_SCHEME], n);
        if (strcmp(e, "allow-utf-8") == 0) {
            if (legacy) {
                errorf(c, e_at,
                       "utf8 metric names requested but validation scheme is not set to UTF8");
            }
        } else if (!escaping_known(e)) {
            errorf(c, e_at,
                   "unknown scrape config name escaping method specified, must be one of "
                   "'allow-utf-8', 'underscores', 'dots', or 'values', got %s",
                   qz(c, e));
        }
        sc->metric_name_escaping_scheme = mem_strdup(e);
    }
}

/* ---- alerting ---------------------------------------------------------------------- */

#define AM_FIELDS(X)                                                                               \
    X(AM_SIGV4, "sigv4")                                                                           \
    X(AM_SCHEME, "scheme")                                                                         \
    X(AM_PATH_PREFIX, "path_prefix")                                                               \
    X(AM_TIMEOUT, "timeout")                                                                       \
    X(AM_API_VERSION, "api_version")                                                               \
    X(AM_RELABEL_CONFIGS, "relabel_configs")                                                       \
    X(AM_ALERT_RELABEL_CONFIGS, "alert_relabel_configs")
enum { AM_FIELDS(F_ENUM) AM__OWN };
enum { AM_HTTP = AM__OWN, AM_SD = AM__OWN + H__N, AM__N = AM__OWN + H__N + SD__N };
static const char *const am_own_names[] = {AM_FIELDS(F_NAME)};

static void am_cleanup(config_alertmanager *a)
{
    mem_free(a->scheme);
    mem_free(a->path_prefix);
    mem_free(a->api_version);
    free_tgs(a->static_configs, a->n_static_configs);
    for (size_t i = 0; i < a->n_file_sd_configs; i++) {
        free_strv(a->file_sd_configs[i].files, a->file_sd_configs[i].n_files);
    }
    mem_free(a->file_sd_configs);
    free_docker_sds(a->docker_sd_configs, a->n_docker_sd_configs);
    free_relabels(a->relabel_configs, a->n_relabel_configs);
    free_relabels(a->alert_relabel_configs, a->n_alert_relabel_configs);
    http_cleanup(&a->http);
}

static void decode_alertmanager(ctx *c, const yamlconf_node *n, config_alertmanager *a)
{
    const char *names[AM__N];
    build_names(names, am_own_names, AM__OWN, true, true);
    slot s[AM__N];
    a->scheme = mem_strdup("http");
    a->path_prefix = mem_strdup("");
    a->timeout_ms = 10 * 1000;
    a->api_version = mem_strdup("v2");
    a->http.follow_redirects = true;
    a->http.enable_http2 = true;
    if (decode_map(c, n, "config.AlertmanagerConfig", names, AM__N, s) < 0) return;

    bool http_ok = decode_http(c, s + AM_HTTP, n, &a->http);
    if (s[AM_SIGV4].key && !yamlconf_is_null(s[AM_SIGV4].val)) {
        if (s[AM_SIGV4].val->kind != YAMLCONF_MAP) {
            type_error(c, s[AM_SIGV4].val, "sigv4.SigV4Config");
        } else if (http_ok && any_auth(&a->http)) {
            errorf(c, s[AM_SIGV4].key,
                   "at most one of basic_auth, authorization, oauth2, & sigv4 must be configured");
        }
    }
    if (get_string(c, &s[AM_SCHEME], &a->scheme) >= 0 && strcmp(a->scheme, "http") != 0 &&
        strcmp(a->scheme, "https") != 0) {
        errorf(c, at_of(&s[AM_SCHEME], n),
               "unsupported Alertmanager scheme %s (sidewatch sends over \"http\" and \"https\")",
               qz(c, a->scheme));
    }
    get_string(c, &s[AM_PATH_PREFIX], &a->path_prefix);
    get_duration(c, &s[AM_TIMEOUT], &a->timeout_ms);
    if (s[AM_API_VERSION].key) {
        bool fine;
        const char *v = str_of(c, &s[AM_API_VERSION], &fine);
        /* A null version is refused too: yaml.v2 would leave it empty and
         * Prometheus would then silently send nothing. */
        if (fine && strcmp(v, "v2") != 0) {
            errorf(c, at_of(&s[AM_API_VERSION], n),
                   "expected Alertmanager api version to be one of [v2] but got %s", v);
        }
    }
    const slot *sd = s + AM_SD;
    decode_sds(c, sd, &a->static_configs, &a->n_static_configs, &a->file_sd_configs,
               &a->n_file_sd_configs, &a->docker_sd_configs, &a->n_docker_sd_configs);
    decode_relabels(c, &s[AM_RELABEL_CONFIGS], c->legacy,
                    "empty or null Alertmanager target relabeling rule", &a->relabel_configs,
                    &a->n_relabel_configs);
    decode_relabels(c, &s[AM_ALERT_RELABEL_CONFIGS], c->legacy,
                    "empty or null Alertmanager alert relabeling rule", &a->alert_relabel_configs,
                    &a->n_alert_relabel_configs);
    bool has_relabel = s[AM_RELABEL_CONFIGS].key && !yamlconf_is_null(s[AM_RELABEL_CONFIGS].val) &&
                       s[AM_RELABEL_CONFIGS].val->kind == YAMLCONF_SEQ &&
                       s[AM_RELABEL_CONFIGS].val->n > 0;
    if (!has_relabel) check_static_targets(c, &sd[SD_STATIC]);
}

static const char *const alerting_names[] = {"alert_relabel_configs", "alertmanagers"};

static void decode_alerting(ctx *c, const yamlconf_node *n)
{
    config *cfg = c->cfg;
    slot s[2];
    if (decode_map(c, n, "config.plain", alerting_names, 2, s) <= 0) return;
    decode_relabels(c, &s[0], c->legacy, "empty or null alert relabeling rule",
                    &cfg->alert_relabel_configs, &cfg->n_alert_relabel_configs);
    const yamlconf_node *seq = seq_of(c, &s[1], "config.AlertmanagerConfigs");
    if (!seq) return;
    cfg->alertmanagers = mem_calloc(seq->n ? seq->n : 1, sizeof *cfg->alertmanagers);
    for (size_t i = 0; i < seq->n; i++) {
        const yamlconf_node *it = seq->items[i];
        if (yamlconf_is_null(it)) {
            errorf(c, it->line > s[1].key->line ? it : s[1].key,
                   "empty or null alertmanager config section");
            continue;
        }
        decode_alertmanager(c, it, &cfg->alertmanagers[cfg->n_alertmanagers++]);
    }
}

/* ---- remote write / remote read ------------------------------------------------------ */

#define RW_FIELDS(X)                                                                               \
    X(RW_URL, "url")                                                                               \
    X(RW_REMOTE_TIMEOUT, "remote_timeout")                                                         \
    X(RW_HEADERS, "headers")                                                                       \
    X(RW_WRITE_RELABEL_CONFIGS, "write_relabel_configs")                                           \
    X(RW_NAME, "name")                                                                             \
    X(RW_SEND_EXEMPLARS, "send_exemplars")                                                         \
    X(RW_SEND_NATIVE_HISTOGRAMS, "send_native_histograms")                                         \
    X(RW_ROUND_ROBIN_DNS, "round_robin_dns")                                                       \
    X(RW_PROTOBUF_MESSAGE, "protobuf_message")                                                     \
    X(RW_FAILED_REQUEST_LOGGING, "failed_request_logging")                                         \
    X(RW_QUEUE_CONFIG, "queue_config")                                                             \
    X(RW_METADATA_CONFIG, "metadata_config")                                                       \
    X(RW_SIGV4, "sigv4")                                                                           \
    X(RW_AZUREAD, "azuread")                                                                       \
    X(RW_GOOGLE_IAM, "google_iam")
enum { RW_FIELDS(F_ENUM) RW__OWN };
enum { RW_HTTP = RW__OWN, RW__N = RW__OWN + H__N };
static const char *const rw_own_names[] = {RW_FIELDS(F_NAME)};

#define QUEUE_FIELDS(X)                                                                            \
    X(Q_CAPACITY, "capacity")                                                                      \
    X(Q_MAX_SHARDS, "max_shards")                                                                  \
    X(Q_MIN_SHARDS, "min_shards")                                                                  \
    X(Q_MAX_SAMPLES_PER_SEND, "max_samples_per_send")                                              \
    X(Q_BATCH_SEND_DEADLINE, "batch_send_deadline")                                                \
    X(Q_MIN_BACKOFF, "min_backoff")                                                                \
    X(Q_MAX_BACKOFF, "max_backoff")                                                                \
    X(Q_RETRY_ON_HTTP_429, "retry_on_http_429")                                                    \
    X(Q_SAMPLE_AGE_LIMIT, "sample_age_limit")
enum { QUEUE_FIELDS(F_ENUM) Q__N };
static const char *const queue_names[] = {QUEUE_FIELDS(F_NAME)};
static const char *const metadata_names[] = {"send", "send_interval", "max_samples_per_send"};

static void rw_cleanup(config_remote_write *r)
{
    mem_free(r->url);
    mem_free(r->name);
    for (size_t i = 0; i < r->n_headers; i++) {
        mem_free(r->headers[i].name);
        mem_free(r->headers[i].value);
    }
    mem_free(r->headers);
    free_relabels(r->write_relabel_configs, r->n_write_relabel_configs);
    mem_free(r->protobuf_message);
    http_cleanup(&r->http);
}

static bool reserved_header_lc(const char *name)
{
    static const char *const reserved[] = {"host",
                                           "content-encoding",
                                           "content-length",
                                           "content-type",
                                           "user-agent",
                                           "connection",
                                           "keep-alive",
                                           "proxy-authenticate",
                                           "proxy-authorization",
                                           "www-authenticate",
                                           "accept-encoding",
                                           "x-prometheus-remote-write-version",
                                           "x-prometheus-remote-read-version",
                                           "x-amz-date",
                                           "x-amz-security-token",
                                           "x-amz-content-sha256",
                                           NULL};
    for (size_t i = 0; reserved[i]; i++) {
        if (strcasecmp(reserved[i], name) == 0) return true;
    }
    return false;
}

typedef struct hdr_arg {
    config_remote_write *rw; /* NULL: only validate */
    const char *auth_msg;
} hdr_arg;

static void add_rw_header(ctx *c, const yamlconf_node *k, const yamlconf_node *v, void *arg)
{
    hdr_arg *h = arg;
    if (!string_value(c, v)) return;
    if (strcasecmp(k->str, "authorization") == 0) {
        errorf(c, k, "%s", h->auth_msg);
        return;
    }
    if (reserved_header_lc(k->str)) {
        errorf(c, k, "%s is a reserved header. It must not be changed", k->str);
        return;
    }
    if (h->rw) {
        config_remote_write *r = h->rw;
        r->headers = mem_realloc(r->headers, (r->n_headers + 1) * sizeof *r->headers);
        r->headers[r->n_headers].name = mem_strndup(k->str, k->len);
        r->headers[r->n_headers].value =
            yamlconf_is_null(v) ? mem_strdup("") : mem_strndup(v->str, v->len);
        r->n_headers++;
    }
}

static void decode_remote_write(ctx *c, const yamlconf_node *n, config_remote_write *r)
{
    const char *names[RW__N];
    build_names(names, rw_own_names, RW__OWN, true, false);
    slot s[RW__N];
    r->remote_timeout_ms = 30 * 1000;
    r->protobuf_message = mem_strdup("prometheus.WriteRequest");
    r->queue_capacity = 10000;
    r->queue_min_shards = 1;
    r->queue_max_shards = 50;
    r->queue_max_samples_per_send = 2000;
    r->queue_batch_send_deadline_ms = 5000;
    r->queue_min_backoff_ms = 30;
    r->queue_max_backoff_ms = 5000;
    r->queue_retry_on_http_429 = false;
    r->metadata_send = true;
    r->metadata_send_interval_ms = 60 * 1000;
    r->metadata_max_samples_per_send = 2000;
    r->http.follow_redirects = true;
    r->http.enable_http2 = false;
    if (decode_map(c, n, "config.plain", names, RW__N, s) < 0) return;

    if (!s[RW_URL].key || yamlconf_is_null(s[RW_URL].val)) {
        errorf(c, at_of(&s[RW_URL], n), "url for remote_write is empty");
    } else {
        get_string(c, &s[RW_URL], &r->url);
    }
    get_duration(c, &s[RW_REMOTE_TIMEOUT], &r->remote_timeout_ms);
    hdr_arg ha = {r, "authorization header must be changed via the basic_auth, authorization, "
                     "oauth2, sigv4, azuread or google_iam parameter"};
    if (s[RW_HEADERS].key) walk_map(c, s[RW_HEADERS].val, "map[string]string", add_rw_header, &ha);
    decode_relabels(c, &s[RW_WRITE_RELABEL_CONFIGS], c->legacy,
                    "empty or null relabeling rule in remote write config",
                    &r->write_relabel_configs, &r->n_write_relabel_configs);
    get_string(c, &s[RW_NAME], &r->name);
    bool dummy = false;
    get_bool(c, &s[RW_SEND_EXEMPLARS], &r->send_exemplars);
    get_bool(c, &s[RW_SEND_NATIVE_HISTOGRAMS], &dummy);
    get_bool(c, &s[RW_ROUND_ROBIN_DNS], &dummy);
    get_bool(c, &s[RW_FAILED_REQUEST_LOGGING], &dummy);
    if (get_string(c, &s[RW_PROTOBUF_MESSAGE], &r->protobuf_message) > 0 &&
        strcmp(r->protobuf_message, "prometheus.WriteRequest") != 0 &&
        strcmp(r->protobuf_message, "io.prometheus.write.v2.Request") != 0) {
        errorf(c, at_of(&s[RW_PROTOBUF_MESSAGE], n),
               "invalid protobuf_message value: unknown type for remote write protobuf message "
               "%s, supported: prometheus.WriteRequest, io.prometheus.write.v2.Request",
               r->protobuf_message);
    }
    bool http_ok = decode_http(c, s + RW_HTTP, n, &r->http);

    /* queue_config: the defaults stay for absent fields; null zeroes it. */
    if (s[RW_QUEUE_CONFIG].key) {
        slot q[Q__N];
        int d = decode_map(c, s[RW_QUEUE_CONFIG].val, "config.QueueConfig", queue_names, Q__N, q);
        if (d == 0) {
            r->queue_capacity = r->queue_min_shards = r->queue_max_shards = 0;
            r->queue_max_samples_per_send = 0;
            r->queue_batch_send_deadline_ms = r->queue_min_backoff_ms = 0;
            r->queue_max_backoff_ms = 0;
        }
        bool qok = d >= 0;
        if (d > 0) {
            qok &= get_int(c, &q[Q_CAPACITY], &r->queue_capacity, "int") >= 0;
            qok &= get_int(c, &q[Q_MAX_SHARDS], &r->queue_max_shards, "int") >= 0;
            qok &= get_int(c, &q[Q_MIN_SHARDS], &r->queue_min_shards, "int") >= 0;
            qok &=
                get_int(c, &q[Q_MAX_SAMPLES_PER_SEND], &r->queue_max_samples_per_send, "int") >= 0;
            qok &=
                get_duration(c, &q[Q_BATCH_SEND_DEADLINE], &r->queue_batch_send_deadline_ms) >= 0;
            qok &= get_duration(c, &q[Q_MIN_BACKOFF], &r->queue_min_backoff_ms) >= 0;
            qok &= get_duration(c, &q[Q_MAX_BACKOFF], &r->queue_max_backoff_ms) >= 0;
            qok &= get_bool(c, &q[Q_RETRY_ON_HTTP_429], &r->queue_retry_on_http_429) >= 0;
            qok &= get_duration(c, &q[Q_SAMPLE_AGE_LIMIT], &r->queue_sample_age_limit_ms) >= 0;
        }
        const yamlconf_node *q_at = s[RW_QUEUE_CONFIG].key;
        const char *msg = NULL;
        if (!qok) {
        } else if (r->queue_max_shards <= 0) {
            msg = "remote write queue max_shards must be positive";
        } else if (r->queue_min_shards <= 0) {
            msg = "remote write queue min_shards must be positive";
        } else if (r->queue_min_shards > r->queue_max_shards) {
            msg = "remote write queue min_shards must not be greater than max_shards";
        } else if (r->queue_max_samples_per_send <= 0) {
            msg = "remote write queue max_samples_per_send must be positive";
        } else if (r->queue_capacity <= 0) {
            msg = "remote write queue capacity must be positive";
        } else if (r->queue_max_backoff_ms < r->queue_min_backoff_ms) {
            msg = "remote write queue max_backoff must not be less than min_backoff";
        }
        if (msg) errorf(c, q_at, "%s", msg);
    }
    if (s[RW_METADATA_CONFIG].key) {
        slot m[3];
        int d =
            decode_map(c, s[RW_METADATA_CONFIG].val, "config.MetadataConfig", metadata_names, 3, m);
        if (d == 0) {
            r->metadata_send = false;
            r->metadata_send_interval_ms = 0;
            r->metadata_max_samples_per_send = 0;
        } else if (d > 0) {
            get_bool(c, &m[0], &r->metadata_send);
            get_duration(c, &m[1], &r->metadata_send_interval_ms);
            get_int(c, &m[2], &r->metadata_max_samples_per_send, "int");
        }
    }
    /* validateAuthConfigs */
    const char *auths[6];
    size_t na = 0;
    if (http_ok) {
        if (r->http.has_basic_auth) auths[na++] = "basic_auth";
        if (r->http.has_authorization) auths[na++] = "authorization";
        if (r->http.has_oauth2) auths[na++] = "oauth2";
    }
    static const int extra[] = {RW_SIGV4, RW_AZUREAD, RW_GOOGLE_IAM};
    static const char *const extra_names[] = {"sigv4", "azuread", "google_iam"};
    static const char *const extra_types[] = {"sigv4.SigV4Config", "azuread.AzureADConfig",
                                              "googleiam.Config"};
    for (int i = 0; i < 3; i++) {
        const slot *x = &s[extra[i]];
        if (!x->key || yamlconf_is_null(x->val)) continue;
        if (x->val->kind != YAMLCONF_MAP) {
            type_error(c, x->val, extra_types[i]);
            continue;
        }
        auths[na++] = extra_names[i];
    }
    if (na > 1) {
        buf m;
        buf_init(&m, BUF_UNLIMITED);
        for (size_t i = 0; i < na; i++)
            buf_printf(&m, "%s%s", i ? " " : "", auths[i]);
        errorf(c, n,
               "at most one of basic_auth, authorization, oauth2, sigv4, azuread or google_iam "
               "must be configured. Currently configured: [%s]",
               buf_cstr(&m));
        buf_cleanup(&m);
    }
}

#define RR_FIELDS(X)                                                                               \
    X(RR_URL, "url")                                                                               \
    X(RR_REMOTE_TIMEOUT, "remote_timeout")                                                         \
    X(RR_CHUNKED_READ_LIMIT, "chunked_read_limit")                                                 \
    X(RR_HEADERS, "headers")                                                                       \
    X(RR_READ_RECENT, "read_recent")                                                               \
    X(RR_NAME, "name")                                                                             \
    X(RR_REQUIRED_MATCHERS, "required_matchers")                                                   \
    X(RR_FILTER_EXTERNAL_LABELS, "filter_external_labels")
enum { RR_FIELDS(F_ENUM) RR__OWN };
enum { RR_HTTP = RR__OWN, RR__N = RR__OWN + H__N };
static const char *const rr_own_names[] = {RR_FIELDS(F_NAME)};

static void check_matcher_label(ctx *c, const yamlconf_node *k, const yamlconf_node *v, void *arg)
{
    (void)arg;
    if (!valid_label_name(false, k->str, k->len)) {
        errorf(c, k, "%s is not a valid label name", qs(c, k->str, k->len));
    }
    string_value(c, v);
}

/* remote_read is accepted and ignored; returns the name ("" if none) for
 * the duplicate check, or NULL on a type error. */
static char *decode_remote_read(ctx *c, const yamlconf_node *n)
{
    const char *names[RR__N];
    build_names(names, rr_own_names, RR__OWN, true, false);
    slot s[RR__N];
    if (decode_map(c, n, "config.plain", names, RR__N, s) < 0) return NULL;
    if (!s[RR_URL].key || yamlconf_is_null(s[RR_URL].val)) {
        errorf(c, at_of(&s[RR_URL], n), "url for remote_read is empty");
    } else {
        bool fine;
        str_of(c, &s[RR_URL], &fine);
    }
    int64_t d;
    get_duration(c, &s[RR_REMOTE_TIMEOUT], &d);
    uint64_t u;
    get_uint(c, &s[RR_CHUNKED_READ_LIMIT], &u, "uint64");
    hdr_arg ha = {NULL, "authorization header must be changed via the basic_auth, authorization, "
                        "oauth2, sigv4, azuread or google_iam parameter"};
    if (s[RR_HEADERS].key) walk_map(c, s[RR_HEADERS].val, "map[string]string", add_rw_header, &ha);
    bool b;
    get_bool(c, &s[RR_READ_RECENT], &b);
    get_bool(c, &s[RR_FILTER_EXTERNAL_LABELS], &b);
    if (s[RR_REQUIRED_MATCHERS].key)
        walk_map(c, s[RR_REQUIRED_MATCHERS].val, "model.LabelSet", check_matcher_label, NULL);
    config_http_client h = {0};
    decode_http(c, s + RR_HTTP, n, &h);
    http_cleanup(&h);
    char *name = NULL;
    get_string(c, &s[RR_NAME], &name);
    return name ? name : mem_strdup("");
}

/* ---- storage (exemplars.max_exemplars is used; the rest is checked and ignored), tracing,
 * runtime, otlp ---------------------------------------------------------------------------- */

static const char *const storage_names[] = {"tsdb", "exemplars"};
static const char *const tsdb_names[] = {
    "out_of_order_time_window", "stale_series_compaction_threshold", "chunk_encoding", "retention"};
static const char *const retention_names[] = {"time", "size", "percentage"};
static const char *const chunk_encoding_names[] = {"floats"};
static const char *const exemplars_names[] = {"max_exemplars"};

static void decode_storage(ctx *c, const yamlconf_node *n)
{
    slot s[2];
    if (decode_map(c, n, "config.StorageConfig", storage_names, 2, s) <= 0) return;
    slot t[4];
    if (s[0].key && decode_map(c, s[0].val, "config.plain", tsdb_names, 4, t) > 0) {
        int64_t d;
        double f;
        bool fine;
        get_duration(c, &t[0], &d);
        get_float(c, &t[1], &f);
        slot ce[1];
        if (t[2].key && decode_map(c, t[2].val, "config.ChunkEncodingConfig", chunk_encoding_names,
                                   1, ce) > 0) {
            const char *fl = str_of(c, &ce[0], &fine);
            if (fine && *fl && strcmp(fl, "xor") != 0 && strcmp(fl, "xor2") != 0) {
                errorf(c, ce[0].val,
                       "'storage.tsdb.chunk_encoding.floats' must be 'xor' or 'xor2', or the field "
                       "must be omitted entirely, got %s",
                       qz(c, fl));
            }
        }
        slot r[3];
        if (t[3].key && decode_map(c, t[3].val, "config.plain", retention_names, 3, r) > 0) {
            int64_t size = 0;
            double pct = 0;
            get_duration(c, &r[0], &d);
            if (get_bytes(c, &r[1], &size) > 0 && size < 0) {
                char b[32];
                strutil_format_bytes(size, b);
                errorf(c, r[1].val,
                       "'storage.tsdb.retention.size' must be greater than or equal to 0, got %s",
                       b);
            }
            if (get_float(c, &r[2], &pct) > 0 && (pct < 0 || pct > 100)) {
                errorf(c, r[2].val,
                       "'storage.tsdb.retention.percentage' must be in the range [0, 100], got %g",
                       pct);
            }
        }
    }
    slot e[1];
    if (s[1].key && decode_map(c, s[1].val, "config.ExemplarsConfig", exemplars_names, 1, e) > 0) {
        int64_t v;
        if (get_int(c, &e[0], &v, "int64") > 0) c->cfg->max_exemplars = v < 0 ? 0 : v;
    }
}

static const char *const tracing_names[] = {"client_type", "endpoint",   "sampling_fraction",
                                            "insecure",    "tls_config", "headers",
                                            "compression", "timeout"};

static void check_tracing_header(ctx *c, const yamlconf_node *k, const yamlconf_node *v, void *arg)
{
    (void)arg;
    if (!string_value(c, v)) return;
    if (strcasecmp(k->str, "authorization") == 0) {
        errorf(c, k, "custom authorization header configuration is not yet supported");
    } else if (reserved_header_lc(k->str)) {
        errorf(c, k, "%s is a reserved header. It must not be changed", k->str);
    }
}

static void decode_tracing(ctx *c, const yamlconf_node *n)
{
    slot s[8];
    if (decode_map(c, n, "config.plain", tracing_names, 8, s) <= 0) return;
    bool fine;
    const char *ct = str_of(c, &s[0], &fine);
    if (fine && s[0].key && !yamlconf_is_null(s[0].val) && strcmp(ct, "http") != 0 &&
        strcmp(ct, "grpc") != 0) {
        errorf(c, s[0].val, "expected tracing client type to be to be http or grpc, but got %s",
               ct);
    }
    const char *ep = str_of(c, &s[1], &fine);
    double f;
    get_float(c, &s[2], &f);
    bool b;
    get_bool(c, &s[3], &b);
    if (s[4].key) decode_tls(c, s[4].val, NULL);
    if (s[5].key) walk_map(c, s[5].val, "map[string]string", check_tracing_header, NULL);
    if (fine && !*ep) errorf(c, at_of(&s[1], n), "tracing endpoint must be set");
    const char *comp = str_of(c, &s[6], &fine);
    if (fine && *comp && strcmp(comp, "gzip") != 0) {
        errorf(c, s[6].val, "invalid compression type %s provided, valid options: gzip", comp);
    }
    int64_t d;
    get_duration(c, &s[7], &d);
}

static const char *const runtime_names[] = {"gogc"};
static const char *const otlp_names[] = {"promote_all_resource_attributes",
                                         "promote_resource_attributes",
                                         "ignore_resource_attributes",
                                         "translation_strategy",
                                         "keep_identifying_resource_attributes",
                                         "convert_histograms_to_nhcb",
                                         "promote_scope_metadata",
                                         "label_name_underscore_sanitization",
                                         "label_name_preserve_multiple_underscores"};

/* sanitizeAttributes: trimmed, non-empty, unique. */
static void check_attributes(ctx *c, const slot *s, char **v, size_t n, const char *what,
                             const char *adjective)
{
    strset seen;
    strset_init(&seen);
    for (size_t i = 0; i < n; i++) {
        const char *a = v[i];
        size_t l = strlen(a);
        while (l && strchr(" \t\n\r\v\f", *a))
            a++, l--;
        while (l && strchr(" \t\n\r\v\f", a[l - 1]))
            l--;
        const yamlconf_node *at = i < s->val->n ? s->val->items[i] : s->val;
        if (l == 0) {
            errorf(c, at, "invalid '%s': empty %s OTel resource attribute", what, adjective);
        } else if (!strset_add(&seen, a, l)) {
            errorf(c, at, "invalid '%s': duplicated %s OTel resource attribute %s", what, adjective,
                   qs(c, a, l));
        }
    }
    strset_cleanup(&seen);
}

static void decode_otlp(ctx *c, const yamlconf_node *n)
{
    slot s[9];
    if (decode_map(c, n, "config.plain", otlp_names, 9, s) <= 0) return;
    bool all = false, b;
    get_bool(c, &s[0], &all);
    for (int i = 4; i < 9; i++)
        get_bool(c, &s[i], &b);
    char **promote = NULL, **ignore = NULL;
    size_t np = 0, ni = 0;
    get_strv(c, &s[1], "[]string", &promote, &np, NULL);
    get_strv(c, &s[2], "[]string", &ignore, &ni, NULL);
    if (all) {
        if (np > 0) {
            errorf(c, s[1].key,
                   "'promote_all_resource_attributes' and 'promote_resource_attributes' cannot be "
                   "configured simultaneously");
        } else {
            check_attributes(c, &s[2], ignore, ni, "ignore_resource_attributes", "ignored");
        }
    } else {
        if (ni > 0) {
            errorf(c, s[2].key,
                   "'ignore_resource_attributes' cannot be configured unless "
                   "'promote_all_resource_attributes' is true");
        } else {
            check_attributes(c, &s[1], promote, np, "promote_resource_attributes", "promoted");
        }
    }
    free_strv(promote, np);
    free_strv(ignore, ni);
    bool fine;
    const char *ts = str_of(c, &s[3], &fine);
    if (fine && *ts) {
        if (strcmp(ts, "UnderscoreEscapingWithSuffixes") == 0 ||
            strcmp(ts, "UnderscoreEscapingWithoutSuffixes") == 0) {
        } else if (strcmp(ts, "NoTranslation") == 0 ||
                   strcmp(ts, "NoUTF8EscapingWithSuffixes") == 0) {
            if (c->legacy) {
                errorf(c, s[3].val,
                       "OTLP translation strategy %s is not allowed when UTF8 is disabled",
                       qz(c, ts));
            }
        } else {
            errorf(c, s[3].val, "unsupported OTLP translation strategy %s", qz(c, ts));
        }
    }
}

/* ---- containers: (sidewatch's container stats) ------------------------------------------ */

#define CT_FIELDS(X)                                                                               \
    X(CT_ENABLED, "enabled")                                                                       \
    X(CT_DOCKER_HOST, "docker_host")                                                               \
    X(CT_INTERVAL, "interval")                                                                     \
    X(CT_CGROUP_ROOT, "cgroup_root")                                                               \
    X(CT_LABEL_KEYS, "label_keys")                                                                 \
    X(CT_INCLUDE, "include")                                                                       \
    X(CT_EXCLUDE, "exclude")                                                                       \
    X(CT_TLS_CONFIG, "tls_config")
enum { CT_FIELDS(F_ENUM) CT__N };
static const char *const ct_names[] = {CT_FIELDS(F_NAME)};

#define CM_FIELDS(X)                                                                               \
    X(CM_NAME, "name")                                                                             \
    X(CM_LABEL, "label")
enum { CM_FIELDS(F_ENUM) CM__N };
static const char *const cm_names[] = {CM_FIELDS(F_NAME)};

static void container_matches_free(config_container_match *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        regex_free(v[i].name);
        mem_free(v[i].label_key);
        regex_free(v[i].label_value);
    }
    mem_free(v);
}

static void containers_cleanup(config_containers *cc)
{
    mem_free(cc->docker_host);
    mem_free(cc->cgroup_root);
    free_strv(cc->label_keys, cc->n_label_keys);
    container_matches_free(cc->include, cc->n_include);
    container_matches_free(cc->exclude, cc->n_exclude);
    http_cleanup(&cc->tls_client);
    memset(cc, 0, sizeof *cc);
}

/* include/exclude: a list of {name: REGEX} or {label: KEY} or
 * {label: KEY=REGEX}, one key per entry. */
static void decode_container_matches(ctx *c, const slot *s, const char *what,
                                     config_container_match **out, size_t *n)
{
    const yamlconf_node *seq = seq_of(c, s, "[]containers.Match");
    if (!seq) return;
    *out = mem_calloc(seq->n ? seq->n : 1, sizeof **out);
    for (size_t i = 0; i < seq->n; i++) {
        const yamlconf_node *it = seq->items[i];
        slot m[CM__N];
        int d = decode_map(c, it, "containers.Match", cm_names, CM__N, m);
        if (d <= 0) {
            if (d == 0) errorf(c, it->line > s->key->line ? it : s->key, "empty %s rule", what);
            continue;
        }
        if ((m[CM_NAME].key != NULL) == (m[CM_LABEL].key != NULL)) {
            errorf(c, it, "%s rule needs exactly one of name or label", what);
            continue;
        }
        config_container_match cm = {0};
        if (m[CM_NAME].key) {
            bool ok;
            const char *re = str_of(c, &m[CM_NAME], &ok);
            if (!ok) continue;
            if (!compile_regex(c, at_of(&m[CM_NAME], it), re, strlen(re), &cm.name)) continue;
        } else {
            bool ok;
            const char *lv = str_of(c, &m[CM_LABEL], &ok);
            if (!ok) continue;
            const char *eq = strchr(lv, '=');
            size_t klen = eq ? (size_t)(eq - lv) : strlen(lv);
            if (klen == 0) {
                errorf(c, at_of(&m[CM_LABEL], it),
                       "%s label rule needs a label key (KEY or KEY=REGEX)", what);
                continue;
            }
            if (eq &&
                !compile_regex(c, at_of(&m[CM_LABEL], it), eq + 1, strlen(eq + 1), &cm.label_value))
                continue;
            cm.label_key = mem_strndup(lv, klen);
        }
        (*out)[(*n)++] = cm;
    }
}

static void decode_containers(ctx *c, const yamlconf_node *key, const yamlconf_node *n)
{
    config_containers *cc = &c->cfg->containers;
    slot s[CT__N];
    int d = decode_map(c, n, "containers.Config", ct_names, CT__N, s);
    if (d < 0) return;
    cc->enabled = true;
    cc->all_labels = true;
    cc->interval_ms = c->cfg->global.scrape_interval_ms;
    get_bool(c, &s[CT_ENABLED], &cc->enabled);
    if (get_string(c, &s[CT_DOCKER_HOST], &cc->docker_host) > 0) {
        const char *h = cc->docker_host;
        if (!*h) {
            errorf(c, at_of(&s[CT_DOCKER_HOST], key), "containers docker_host is empty");
        } else if (strncmp(h, "unix://", 7) != 0 && strncmp(h, "tcp://", 6) != 0 &&
                   strncmp(h, "http://", 7) != 0 && strncmp(h, "https://", 8) != 0) {
            errorf(c, at_of(&s[CT_DOCKER_HOST], key),
                   "containers docker_host %s: unsupported scheme (use unix://, tcp://, http:// or "
                   "https://)",
                   qz(c, h));
        }
    }
    if (s[CT_TLS_CONFIG].key) {
        if (decode_tls(c, s[CT_TLS_CONFIG].val, &cc->tls_client)) cc->tls = true;
    }
    if (!cc->docker_host) {
        const char *env = getenv("DOCKER_HOST");
        cc->docker_host = mem_strdup(env && *env ? env : "unix://" CONFIG_DEFAULT_DOCKER_SOCKET);
        /* The docker CLI's TLS settings go with its DOCKER_HOST. */
        const char *verify = getenv("DOCKER_TLS_VERIFY"), *certs = getenv("DOCKER_CERT_PATH");
        if (env && *env && !cc->tls && ((verify && *verify) || (certs && *certs))) {
            cc->tls = true;
            cc->tls_client.tls_insecure_skip_verify = !(verify && *verify);
            if (certs && *certs) {
                buf p;
                buf_init(&p, BUF_UNLIMITED);
                buf_printf(&p, "%s/ca.pem", certs);
                cc->tls_client.tls_ca_file = buf_detach(&p, NULL);
                buf_printf(&p, "%s/cert.pem", certs);
                cc->tls_client.tls_cert_file = buf_detach(&p, NULL);
                buf_printf(&p, "%s/key.pem", certs);
                cc->tls_client.tls_key_file = buf_detach(&p, NULL);
                buf_cleanup(&p);
            }
        }
    }
    int64_t iv = 0;
    if (get_duration(c, &s[CT_INTERVAL], &iv) > 0) {
        if (iv <= 0)
            errorf(c, at_of(&s[CT_INTERVAL], key), "containers interval must be greater than 0");
        else
            cc->interval_ms = iv;
    }
    if (get_string(c, &s[CT_CGROUP_ROOT], &cc->cgroup_root) > 0 && *cc->cgroup_root &&
        cc->cgroup_root[0] != '/') {
        errorf(c, at_of(&s[CT_CGROUP_ROOT], key),
               "containers cgroup_root %s must be an absolute path", qz(c, cc->cgroup_root));
    }
    if (!cc->cgroup_root) cc->cgroup_root = mem_strdup("/sys/fs/cgroup");
    if (get_strv(c, &s[CT_LABEL_KEYS], "[]string", &cc->label_keys, &cc->n_label_keys, NULL) > 0) {
        cc->all_labels = false;
        for (size_t i = 0; i < cc->n_label_keys; i++) {
            if (!*cc->label_keys[i]) {
                const yamlconf_node *v = s[CT_LABEL_KEYS].val;
                errorf(c, i < v->n ? v->items[i] : v, "containers label_keys: empty key");
            }
        }
    }
    decode_container_matches(c, &s[CT_INCLUDE], "include", &cc->include, &cc->n_include);
    decode_container_matches(c, &s[CT_EXCLUDE], "exclude", &cc->exclude, &cc->n_exclude);
}

/* ---- webhooks: (sidewatch's direct Alertmanager-format webhooks) ------------------------- */

#define WH_FIELDS(X)                                                                               \
    X(WH_NAME, "name")                                                                             \
    X(WH_URL, "url")                                                                               \
    X(WH_GROUP_BY, "group_by")                                                                     \
    X(WH_GROUP_WAIT, "group_wait")                                                                 \
    X(WH_GROUP_INTERVAL, "group_interval")                                                         \
    X(WH_REPEAT_INTERVAL, "repeat_interval")                                                       \
    X(WH_SEND_RESOLVED, "send_resolved")                                                           \
    X(WH_MAX_ALERTS, "max_alerts")                                                                 \
    X(WH_TIMEOUT, "timeout")                                                                       \
    X(WH_MAX_AGE, "max_age")                                                                       \
    X(WH_BEARER_TOKEN, "bearer_token")                                                             \
    X(WH_BEARER_TOKEN_FILE, "bearer_token_file")                                                   \
    X(WH_BASIC_AUTH, "basic_auth")                                                                 \
    X(WH_HMAC_SECRET, "hmac_secret")                                                               \
    X(WH_HMAC_SECRET_FILE, "hmac_secret_file")                                                     \
    X(WH_TLS_CONFIG, "tls_config")
enum { WH_FIELDS(F_ENUM) WH__N };
static const char *const wh_names[] = {WH_FIELDS(F_NAME)};
static const char *const wh_basic_names[] = {"username", "password", "password_file"};

static void webhook_cleanup(config_webhook *w)
{
    mem_free(w->name);
    mem_free(w->url);
    free_strv(w->group_by, w->n_group_by);
    http_cleanup(&w->http);
    mem_free(w->hmac_secret.value);
    mem_free(w->hmac_secret.file);
    memset(w, 0, sizeof *w);
}

/* A secret and its *_file variant (at most one). Returns false on error. */
static bool decode_secret_pair(ctx *c, const yamlconf_node *owner, const slot *inl,
                               const slot *file, const char *what, config_secret *out)
{
    bool ok1, ok2;
    const char *v = str_of(c, inl, &ok1);
    const char *f = str_of(c, file, &ok2);
    if (!ok1 || !ok2) return false;
    if (*v && *f) {
        errorf(c, file->key ? file->key : owner, "at most one of %s & %s_file must be configured",
               what, what);
        return false;
    }
    if (*v) out->value = mem_strdup(v);
    if (*f) out->file = join_dir(c, f);
    return true;
}

/* A duration that must be > 0 (or >= 0 with zero_ok). */
static void webhook_duration(ctx *c, const slot *s, const yamlconf_node *owner, const char *what,
                             bool zero_ok, int64_t *out)
{
    int64_t v = 0;
    if (get_duration(c, s, &v) <= 0) return;
    if (v < 0 || (!zero_ok && v == 0)) {
        errorf(c, at_of(s, owner), "webhook %s must be %s 0", what,
               zero_ok ? "greater than or equal to" : "greater than");
        return;
    }
    *out = v;
}

static void decode_webhook(ctx *c, const yamlconf_node *n, config_webhook *w)
{
    w->group_wait_ms = CONFIG_WEBHOOK_GROUP_WAIT_MS;
    w->group_interval_ms = CONFIG_WEBHOOK_GROUP_INTERVAL_MS;
    w->repeat_interval_ms = CONFIG_WEBHOOK_REPEAT_INTERVAL_MS;
    w->timeout_ms = CONFIG_WEBHOOK_TIMEOUT_MS;
    w->send_resolved = true;
    w->http.follow_redirects = true;
    w->http.enable_http2 = true;
    slot s[WH__N];
    if (decode_map(c, n, "config.WebhookConfig", wh_names, WH__N, s) < 0) return;

    if (get_string(c, &s[WH_NAME], &w->name) == 0 || (w->name && !*w->name))
        errorf(c, at_of(&s[WH_NAME], n), "webhook name is missing or empty");
    if (get_string(c, &s[WH_URL], &w->url) == 0 || (w->url && !*w->url)) {
        errorf(c, at_of(&s[WH_URL], n), "webhook url is missing or empty");
    } else if (w->url) {
        const char *u = w->url;
        size_t skip = strncmp(u, "http://", 7) == 0 ? 7 : strncmp(u, "https://", 8) == 0 ? 8 : 0;
        char tmp[256];
        const char *why = go_url_error(u, tmp, sizeof tmp);
        if (skip == 0) {
            errorf(c, s[WH_URL].val, "webhook url %s: unsupported scheme (use http:// or https://)",
                   qz(c, u));
        } else if (u[skip] == '\0' || u[skip] == '/') {
            errorf(c, s[WH_URL].val, "webhook url %s has no host", qz(c, u));
        } else if (why) {
            errorf(c, s[WH_URL].val, "webhook url %s: %s", qz(c, u), why);
        }
    }
    bool nonnull = false;
    if (get_strv(c, &s[WH_GROUP_BY], "[]model.LabelName", &w->group_by, &w->n_group_by, &nonnull) >
        0) {
        bool all = false;
        for (size_t i = 0; i < w->n_group_by; i++) {
            const yamlconf_node *at =
                i < s[WH_GROUP_BY].val->n ? s[WH_GROUP_BY].val->items[i] : s[WH_GROUP_BY].val;
            const char *l = w->group_by[i];
            if (strcmp(l, "...") == 0) {
                all = true;
            } else if (!valid_label_name(c->legacy, l, strlen(l))) {
                errorf(c, at, "invalid label name %s in webhook group_by", qz(c, l));
            } else {
                for (size_t j = 0; j < i; j++) {
                    if (strcmp(w->group_by[j], l) == 0) {
                        errorf(c, at, "duplicated label %s in webhook group_by", qz(c, l));
                        break;
                    }
                }
            }
        }
        if (all && w->n_group_by > 1) {
            errorf(c, s[WH_GROUP_BY].val,
                   "cannot have wildcard group_by (`...`) and other labels at the same time");
        }
        if (all) {
            w->group_by_all = true;
            free_strv(w->group_by, w->n_group_by);
            w->group_by = NULL;
            w->n_group_by = 0;
        }
    }
    webhook_duration(c, &s[WH_GROUP_WAIT], n, "group_wait", true, &w->group_wait_ms);
    webhook_duration(c, &s[WH_GROUP_INTERVAL], n, "group_interval", false, &w->group_interval_ms);
    webhook_duration(c, &s[WH_REPEAT_INTERVAL], n, "repeat_interval", false,
                     &w->repeat_interval_ms);
    webhook_duration(c, &s[WH_TIMEOUT], n, "timeout", false, &w->timeout_ms);
    webhook_duration(c, &s[WH_MAX_AGE], n, "max_age", true, &w->max_age_ms);
    get_bool(c, &s[WH_SEND_RESOLVED], &w->send_resolved);
    get_uint(c, &s[WH_MAX_ALERTS], &w->max_alerts, "uint64");

    config_secret bearer = {0};
    bool bearer_ok = decode_secret_pair(c, n, &s[WH_BEARER_TOKEN], &s[WH_BEARER_TOKEN_FILE],
                                        "bearer_token", &bearer);
    if (bearer_ok && (bearer.value || bearer.file)) {
        w->http.has_authorization = true;
        w->http.authorization_type = mem_strdup("Bearer");
        w->http.authorization_credentials = bearer;
    }
    if (s[WH_BASIC_AUTH].key && !yamlconf_is_null(s[WH_BASIC_AUTH].val)) {
        slot b[3];
        if (decode_map(c, s[WH_BASIC_AUTH].val, "config.BasicAuth", wh_basic_names, 3, b) > 0) {
            bool fine;
            const char *user = str_of(c, &b[0], &fine);
            if (fine && decode_secret_pair(c, s[WH_BASIC_AUTH].val, &b[1], &b[2], "password",
                                           &w->http.basic_auth_password)) {
                w->http.has_basic_auth = true;
                w->http.basic_auth_username = mem_strdup(user);
            }
        }
    }
    if (w->http.has_basic_auth && w->http.has_authorization) {
        errorf(c, s[WH_BASIC_AUTH].key,
               "at most one of basic_auth & bearer_token (or bearer_token_file) must be "
               "configured");
    }
    decode_secret_pair(c, n, &s[WH_HMAC_SECRET], &s[WH_HMAC_SECRET_FILE], "hmac_secret",
                       &w->hmac_secret);
    if (s[WH_TLS_CONFIG].key) decode_tls(c, s[WH_TLS_CONFIG].val, &w->http);
}

static void decode_webhooks(ctx *c, const slot *s)
{
    config *cfg = c->cfg;
    const yamlconf_node *seq = seq_of(c, s, "[]config.WebhookConfig");
    if (!seq) return;
    cfg->webhooks = mem_calloc(seq->n ? seq->n : 1, sizeof *cfg->webhooks);
    strset names;
    strset_init(&names);
    for (size_t i = 0; i < seq->n; i++) {
        const yamlconf_node *it = seq->items[i];
        if (yamlconf_is_null(it)) {
            errorf(c, it->line > s->key->line ? it : s->key, "empty or null webhook section");
            continue;
        }
        config_webhook *w = &cfg->webhooks[cfg->n_webhooks++];
        decode_webhook(c, it, w);
        if (!w->name || !*w->name) continue;
        if (!strset_add(&names, w->name, strlen(w->name))) {
            const yamlconf_node *at = yamlconf_map_get(it, "name", NULL);
            errorf(c, at ? at : it, "found multiple webhooks with name %s", qz(c, w->name));
        }
    }
    strset_cleanup(&names);
}

static bool regex_same(const regex *a, const regex *b)
{
    if (!a || !b) return a == b;
    return strcmp(regex_pattern(a), regex_pattern(b)) == 0;
}

static bool matches_equal(const config_container_match *a, size_t na,
                          const config_container_match *b, size_t nb)
{
    if (na != nb) return false;
    for (size_t i = 0; i < na; i++) {
        if (!regex_same(a[i].name, b[i].name) || !regex_same(a[i].label_value, b[i].label_value))
            return false;
        if ((a[i].label_key == NULL) != (b[i].label_key == NULL)) return false;
        if (a[i].label_key && strcmp(a[i].label_key, b[i].label_key) != 0) return false;
    }
    return true;
}

static bool streq0(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

bool config_containers_equal(const config_containers *a, const config_containers *b)
{
    if (a->enabled != b->enabled || a->interval_ms != b->interval_ms ||
        a->all_labels != b->all_labels || a->n_label_keys != b->n_label_keys)
        return false;
    if (!streq0(a->docker_host, b->docker_host) || !streq0(a->cgroup_root, b->cgroup_root))
        return false;
    if (a->tls != b->tls || !streq0(a->tls_client.tls_ca_file, b->tls_client.tls_ca_file) ||
        !streq0(a->tls_client.tls_cert_file, b->tls_client.tls_cert_file) ||
        !streq0(a->tls_client.tls_key_file, b->tls_client.tls_key_file) ||
        a->tls_client.tls_insecure_skip_verify != b->tls_client.tls_insecure_skip_verify)
        return false;
    for (size_t i = 0; i < a->n_label_keys; i++)
        if (strcmp(a->label_keys[i], b->label_keys[i]) != 0) return false;
    return matches_equal(a->include, a->n_include, b->include, b->n_include) &&
           matches_equal(a->exclude, a->n_exclude, b->exclude, b->n_exclude);
}

static bool match_one(const config_container_match *m, const char *name, const char *const *keys,
                      const char *const *values, size_t n)
{
    if (m->name) return regex_match(m->name, name, strlen(name));
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i], m->label_key) != 0) continue;
        return !m->label_value || regex_match(m->label_value, values[i], strlen(values[i]));
    }
    return false;
}

bool config_containers_selected(const config_containers *cc, const char *name,
                                const char *const *keys, const char *const *values, size_t n)
{
    if (!name) name = "";
    if (*name == '/') name++;
    bool in = cc->n_include == 0;
    for (size_t i = 0; !in && i < cc->n_include; i++)
        in = match_one(&cc->include[i], name, keys, values, n);
    if (!in) return false;
    for (size_t i = 0; i < cc->n_exclude; i++)
        if (match_one(&cc->exclude[i], name, keys, values, n)) return false;
    return true;
}

/* ---- top level ------------------------------------------------------------------------- */

#define TOP_FIELDS(X)                                                                              \
    X(TOP_GLOBAL, "global")                                                                        \
    X(TOP_RUNTIME, "runtime")                                                                      \
    X(TOP_ALERTING, "alerting")                                                                    \
    X(TOP_RULE_FILES, "rule_files")                                                                \
    X(TOP_SCRAPE_CONFIG_FILES, "scrape_config_files")                                              \
    X(TOP_SCRAPE_CONFIGS, "scrape_configs")                                                        \
    X(TOP_STORAGE, "storage")                                                                      \
    X(TOP_TRACING, "tracing")                                                                      \
    X(TOP_REMOTE_WRITE, "remote_write")                                                            \
    X(TOP_REMOTE_READ, "remote_read")                                                              \
    X(TOP_OTLP, "otlp")                                                                            \
    X(TOP_CONTAINERS, "containers")                                                                \
    X(TOP_WEBHOOKS, "webhooks")
enum { TOP_FIELDS(F_ENUM) TOP__N };
static const char *const top_names[] = {TOP_FIELDS(F_NAME)};

/* Prometheus's patRulePath: ^[^*]*(\*[^/]*)?$ */
static bool rule_path_ok(const char *s)
{
    const char *star = strchr(s, '*');
    if (!star) return true;
    return strchr(star + 1, '*') == NULL && strchr(star + 1, '/') == NULL;
}

static void decode_paths(ctx *c, const slot *s, const char *what, char ***out, size_t *n)
{
    if (get_strv(c, s, "[]string", out, n, NULL) <= 0) return;
    for (size_t i = 0; i < *n; i++) {
        if (!rule_path_ok((*out)[i])) {
            const yamlconf_node *at = i < s->val->n ? s->val->items[i] : s->val;
            errorf(c, at, "invalid %s path %s", what, qz(c, (*out)[i]));
        } else if (!strutil_glob_valid((*out)[i])) {
            /* Prometheus fails later, globbing the files (filepath.Glob's
             * ErrBadPattern); the config is refused here instead. */
            const yamlconf_node *at = i < s->val->n ? s->val->items[i] : s->val;
            errorf(c, at, "invalid %s path %s: syntax error in pattern", what, qz(c, (*out)[i]));
        }
        join_dir_inplace(c, &(*out)[i]);
    }
}

static void decode_config(ctx *c, const yamlconf_node *root)
{
    config *cfg = c->cfg;
    slot s[TOP__N];
    memset(s, 0, sizeof s);
    decode_map(c, root, "config.plain", top_names, TOP__N, s);

    decode_global(c, s[TOP_GLOBAL].key ? s[TOP_GLOBAL].val : NULL);

    slot rt[1];
    if (s[TOP_RUNTIME].key &&
        decode_map(c, s[TOP_RUNTIME].val, "config.RuntimeConfig", runtime_names, 1, rt) > 0) {
        int64_t v;
        get_int(c, &rt[0], &v, "int");
    }

    decode_paths(c, &s[TOP_RULE_FILES], "rule file", &cfg->rule_files, &cfg->n_rule_files);
    char **scf = NULL;
    size_t nscf = 0;
    decode_paths(c, &s[TOP_SCRAPE_CONFIG_FILES], "scrape config file", &scf, &nscf);
    if (nscf > 0) {
        unsupportedf(c, s[TOP_SCRAPE_CONFIG_FILES].key,
                     "not supported: scrape_config_files (sidewatch reads scrape configs from the "
                     "main config file only)");
    }
    free_strv(scf, nscf);

    strset names;
    strset_init(&names);
    const yamlconf_node *seq = seq_of(c, &s[TOP_SCRAPE_CONFIGS], "[]*config.ScrapeConfig");
    if (seq) {
        cfg->scrape_configs = mem_calloc(seq->n ? seq->n : 1, sizeof *cfg->scrape_configs);
        for (size_t i = 0; i < seq->n; i++) {
            const yamlconf_node *it = seq->items[i];
            if (yamlconf_is_null(it)) {
                errorf(c,
                       it->line > s[TOP_SCRAPE_CONFIGS].key->line ? it : s[TOP_SCRAPE_CONFIGS].key,
                       "empty or null scrape config section");
                continue;
            }
            config_scrape *sc = &cfg->scrape_configs[cfg->n_scrape_configs++];
            decode_scrape(c, it, sc);
            if (!sc->job_name || !*sc->job_name) continue;
            if (!strset_add(&names, sc->job_name, strlen(sc->job_name))) {
                const yamlconf_node *at = yamlconf_map_get(it, "job_name", NULL);
                errorf(c, at ? at : it, "found multiple scrape configs with job name %s",
                       qz(c, sc->job_name));
            }
        }
    }
    strset_cleanup(&names);

    if (s[TOP_ALERTING].key) decode_alerting(c, s[TOP_ALERTING].val);

    strset_init(&names);
    seq = seq_of(c, &s[TOP_REMOTE_WRITE], "[]*config.RemoteWriteConfig");
    if (seq) {
        cfg->remote_write = mem_calloc(seq->n ? seq->n : 1, sizeof *cfg->remote_write);
        for (size_t i = 0; i < seq->n; i++) {
            const yamlconf_node *it = seq->items[i];
            if (yamlconf_is_null(it)) {
                errorf(c, it->line > s[TOP_REMOTE_WRITE].key->line ? it : s[TOP_REMOTE_WRITE].key,
                       "empty or null remote write config section");
                continue;
            }
            config_remote_write *r = &cfg->remote_write[cfg->n_remote_write++];
            decode_remote_write(c, it, r);
            if (!r->name || !*r->name) continue;
            if (!strset_add(&names, r->name, strlen(r->name))) {
                const yamlconf_node *at = yamlconf_map_get(it, "name", NULL);
                errorf(c, at ? at : it, "found multiple remote write configs with job name %s",
                       qz(c, r->name));
            }
        }
    }
    strset_cleanup(&names);

    seq = seq_of(c, &s[TOP_REMOTE_READ], "[]*config.RemoteReadConfig");
    if (seq) {
        strset_init(&names);
        char **rr_names = mem_calloc(seq->n ? seq->n : 1, sizeof *rr_names);
        size_t nrr = 0;
        for (size_t i = 0; i < seq->n; i++) {
            const yamlconf_node *it = seq->items[i];
            if (yamlconf_is_null(it)) {
                errorf(c, it->line > s[TOP_REMOTE_READ].key->line ? it : s[TOP_REMOTE_READ].key,
                       "empty or null remote read config section");
                continue;
            }
            char *name = decode_remote_read(c, it);
            if (!name) continue;
            rr_names[nrr++] = name;
            if (*name && !strset_add(&names, name, strlen(name))) {
                const yamlconf_node *at = yamlconf_map_get(it, "name", NULL);
                errorf(c, at ? at : it, "found multiple remote read configs with job name %s",
                       qz(c, name));
            }
        }
        strset_cleanup(&names);
        free_strv(rr_names, nrr);
    }

    if (s[TOP_STORAGE].key) decode_storage(c, s[TOP_STORAGE].val);
    if (s[TOP_TRACING].key) decode_tracing(c, s[TOP_TRACING].val);
    if (s[TOP_OTLP].key) decode_otlp(c, s[TOP_OTLP].val);
    if (s[TOP_CONTAINERS].key) decode_containers(c, s[TOP_CONTAINERS].key, s[TOP_CONTAINERS].val);
    decode_webhooks(c, &s[TOP_WEBHOOKS]);
}

/* ---- lifetime --------------------------------------------------------------------------- */

static void config_free(config *c)
{
    if (!c) return;
    mem_free(c->source);
    mem_free(c->yaml);
    labels_free(c->global.external_labels);
    mem_free(c->global.scrape_protocols);
    free_strv(c->rule_files, c->n_rule_files);
    for (size_t i = 0; i < c->n_scrape_configs; i++)
        scrape_cleanup(&c->scrape_configs[i]);
    mem_free(c->scrape_configs);
    free_relabels(c->alert_relabel_configs, c->n_alert_relabel_configs);
    for (size_t i = 0; i < c->n_alertmanagers; i++)
        am_cleanup(&c->alertmanagers[i]);
    mem_free(c->alertmanagers);
    for (size_t i = 0; i < c->n_remote_write; i++)
        rw_cleanup(&c->remote_write[i]);
    mem_free(c->remote_write);
    containers_cleanup(&c->containers);
    for (size_t i = 0; i < c->n_webhooks; i++)
        webhook_cleanup(&c->webhooks[i]);
    mem_free(c->webhooks);
    mem_free(c);
}

config *config_ref(config *c)
{
    if (c) __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

void config_unref(config *c)
{
    if (!c) return;
    if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) config_free(c);
}

const config_scrape *config_find_job(const config *c, const char *job_name)
{
    if (!c || !job_name) return NULL;
    for (size_t i = 0; i < c->n_scrape_configs; i++) {
        if (strcmp(c->scrape_configs[i].job_name, job_name) == 0) return &c->scrape_configs[i];
    }
    return NULL;
}

int config_load_string_opts(const char *yaml, size_t len, const char *source,
                            const config_load_opts *opts, config **out, buf *err)
{
    *out = NULL;
    if (!source) source = "<string>";
    if (len > CONFIG_MAX_FILE_BYTES) {
        if (err) {
            buf_printf(err, "%s: config is larger than the limit of %d bytes\n", source,
                       CONFIG_MAX_FILE_BYTES);
        }
        return -EINVAL;
    }
    yamlconf_doc *doc = NULL;
    if (yamlconf_parse(yaml, len, source, &doc, err) < 0) return -EINVAL;

    ctx c;
    memset(&c, 0, sizeof c);
    c.source = source;
    c.dir = path_dir(source);
    c.opts = opts;
    c.cfg = mem_calloc(1, sizeof *c.cfg);
    c.cfg->refs = 1;
    c.cfg->max_exemplars = CONFIG_DEFAULT_MAX_EXEMPLARS;
    c.cfg->source = mem_strdup(source);
    c.cfg->yaml = mem_strndup(yaml, len);

    decode_config(&c, yamlconf_root(doc));
    yamlconf_free(doc);

    int rc = 0;
    if (c.n_errs > 0) {
        qsort(c.errs, c.n_errs, sizeof *c.errs, cmp_err);
        for (size_t i = 0; err && i < c.n_errs && i < CONFIG_MAX_ERRORS; i++) {
            buf_printf(err, "%s:%u:%u: ", source, c.errs[i].line, c.errs[i].col);
            /* One line per error, even when a quoted value has newlines. */
            for (const char *m = c.errs[i].msg; *m; m++) {
                if (*m == '\n')
                    buf_puts(err, "\\n");
                else if (*m == '\r')
                    buf_puts(err, "\\r");
                else
                    buf_putc(err, *m);
            }
            buf_putc(err, '\n');
        }
        config_free(c.cfg);
        rc = -EINVAL;
    } else {
        *out = c.cfg;
    }
    for (size_t i = 0; i < c.n_errs; i++)
        mem_free(c.errs[i].msg);
    mem_free(c.errs);
    for (size_t i = 0; i < c.n_scratch; i++)
        mem_free(c.scratch[i]);
    mem_free(c.scratch);
    mem_free(c.dir);
    mem_free(c.global_escaping);
    return rc;
}

int config_load_string(const char *yaml, size_t len, const char *source, config **out, buf *err)
{
    return config_load_string_opts(yaml, len, source, NULL, out, err);
}

int config_load_file(const char *path, config **out, buf *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (err) buf_printf(err, "%s: %s\n", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        if (err) buf_printf(err, "%s: %s\n", path, strerror(EISDIR));
        return -EISDIR;
    }
    buf data;
    buf_init(&data, CONFIG_MAX_FILE_BYTES);
    char tmp[65536];
    for (;;) {
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            buf_cleanup(&data);
            if (err) buf_printf(err, "%s: %s\n", path, strerror(e));
            return -e;
        }
        if (r == 0) break;
        if (buf_append(&data, tmp, (size_t)r) < 0) {
            close(fd);
            buf_cleanup(&data);
            if (err) {
                buf_printf(err, "%s: config file is larger than the limit of %d bytes\n", path,
                           CONFIG_MAX_FILE_BYTES);
            }
            return -EFBIG;
        }
    }
    close(fd);
    int rc = config_load_string(data.data ? data.data : "", data.len, path, out, err);
    buf_cleanup(&data);
    return rc;
}

/* ---- the embedded default config ------------------------------------------------------- */

static const char default_yaml_head[] =
    "# sidewatch's embedded default configuration: scrape sidewatch itself\n"
    "# and, when the Docker engine's socket is there, the containers\n"
    "# labelled prometheus.io/scrape=true.\n"
    "global:\n"
    "  scrape_interval: 15s\n"
    "  evaluation_interval: 15s\n"
    "scrape_configs:\n"
    "  - job_name: sidewatch\n"
    "    scrape_interval: 15s\n"
    "    static_configs:\n"
    "      - targets: [";

/* The common Prometheus recipe for annotated containers: keep those
 * labelled prometheus.io/scrape=true; prometheus.io/port replaces the port
 * of the address (host networking's "localhost" gains it; a container
 * without an IP, --network none, gets ":<port>", which cannot be scraped),
 * prometheus.io/path and prometheus.io/scheme set __metrics_path__ and
 * __scheme__; the container's name (without "/") becomes `container`.
 * Targets that send no Content-Type (simple servers such as busybox httpd)
 * are read as the text format (fallback_scrape_protocol). */
static const char default_yaml_docker[] =
    "  - job_name: docker\n"
    "    fallback_scrape_protocol: PrometheusText0.0.4\n"
    "    docker_sd_configs:\n"
    "      - host: %s\n"
    "        refresh_interval: 15s\n"
    "    relabel_configs:\n"
    "      - source_labels: [__meta_docker_container_label_prometheus_io_scrape]\n"
    "        regex: 'true'\n"
    "        action: keep\n"
    "      - source_labels: [__address__, __meta_docker_container_label_prometheus_io_port]\n"
    "        regex: '(.*?)(?::\\d+)?;(\\d+)'\n"
    "        replacement: '$1:$2'\n"
    "        target_label: __address__\n"
    "      - source_labels: [__meta_docker_container_label_prometheus_io_path]\n"
    "        regex: '(.+)'\n"
    "        target_label: __metrics_path__\n"
    "      - source_labels: [__meta_docker_container_label_prometheus_io_scheme]\n"
    "        regex: '(https?)'\n"
    "        target_label: __scheme__\n"
    "      - source_labels: [__meta_docker_container_name]\n"
    "        regex: '/?(.+)'\n"
    "        target_label: container\n";

/* Appends s as a double-quoted YAML string. */
static void yaml_quote(buf *y, const char *s)
{
    buf_putc(y, '"');
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') {
            buf_putc(y, '\\');
            buf_putc(y, (char)ch);
        } else if (ch < 0x20 || ch == 0x7f) {
            buf_printf(y, "\\x%02x", ch);
        } else {
            buf_putc(y, (char)ch);
        }
    }
    buf_putc(y, '"');
}

config *config_default_docker(const char *self_address, const char *docker_host)
{
    buf y;
    buf_init(&y, BUF_UNLIMITED);
    buf_puts(&y, default_yaml_head);
    yaml_quote(&y, self_address ? self_address : "localhost:9277");
    buf_puts(&y, "]\n");
    /* The container collector stores its series itself; they are on
     * /metrics for an upstream Prometheus, not for storing twice. */
    buf_puts(&y, "    metric_relabel_configs:\n"
                 "      - source_labels: [__name__]\n"
                 "        regex: 'container_.*|machine_.*'\n"
                 "        action: drop\n");
    if (docker_host) {
        buf q;
        buf_init(&q, BUF_UNLIMITED);
        yaml_quote(&q, docker_host);
        buf_printf(&y, default_yaml_docker, buf_cstr(&q));
        buf_printf(&y, "containers:\n  docker_host: %s\n", buf_cstr(&q));
        buf_cleanup(&q);
    }
    config *c = NULL;
    buf err;
    buf_init(&err, 64 * 1024);
    if (config_load_string(y.data, y.len, "<default>", &c, &err) < 0) {
        /* Only a self_address that is not host:port, or a docker host that
         * is not a URL, gets here (a caller bug): fall back to the
         * documented defaults. */
        log_error("config", "embedded default config refused: %s", buf_cstr(&err));
        buf_cleanup(&err);
        buf_cleanup(&y);
        if (docker_host) return config_default_docker(self_address, NULL);
        if (self_address && strcmp(self_address, "localhost:9277") != 0)
            return config_default_docker("localhost:9277", NULL);
        abort();
    }
    buf_cleanup(&err);
    buf_cleanup(&y);
    return c;
}

config *config_default(const char *self_address)
{
    struct stat st;
    bool docker = stat(CONFIG_DEFAULT_DOCKER_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode);
    return config_default_docker(self_address,
                                 docker ? "unix://" CONFIG_DEFAULT_DOCKER_SOCKET : NULL);
}

char *config_redact_url(const char *url)
{
    const char *scheme_end = strstr(url, "://");
    if (!scheme_end) return mem_strdup(url);
    const char *auth = scheme_end + 3;
    size_t auth_len = strcspn(auth, "/?#");
    /* The userinfo ends at the authority's last '@'; its password follows the first ':'. */
    const char *at = NULL;
    for (const char *p = auth; p < auth + auth_len; p++)
        if (*p == '@') at = p;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (!colon) return mem_strdup(url);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_append(&b, url, (size_t)(colon + 1 - url));
    buf_puts(&b, "xxxxx");
    buf_puts(&b, at);
    return buf_detach(&b, NULL);
}

char *config_read_secret(const config_secret *s)
{
    if (s->value) return mem_strdup(s->value);
    if (!s->file) return NULL;
    FILE *f = fopen(s->file, "rb");
    if (!f) {
        log_warn("config", "cannot read secret file %s: %s", s->file, strerror(errno));
        return NULL;
    }
    buf b;
    buf_init(&b, CONFIG_MAX_FILE_BYTES);
    char tmp[4096];
    size_t r;
    bool too_big = false;
    while ((r = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (buf_append(&b, tmp, r) < 0) {
            too_big = true;
            break;
        }
    }
    fclose(f);
    if (too_big) {
        log_warn("config", "secret file %s is too large", s->file);
        buf_cleanup(&b);
        return NULL;
    }
    /* Prometheus trims surrounding whitespace from credential files. */
    size_t len;
    char *d = buf_detach(&b, &len);
    size_t a = 0;
    while (a < len && (d[a] == ' ' || d[a] == '\t' || d[a] == '\n' || d[a] == '\r'))
        a++;
    while (len > a &&
           (d[len - 1] == ' ' || d[len - 1] == '\t' || d[len - 1] == '\n' || d[len - 1] == '\r'))
        len--;
    memmove(d, d + a, len - a);
    d[len - a] = '\0';
    return d;
}
