/* yamlconf: libyaml events into a node tree with positions, yaml.v2-style
 * scalar resolution, aliases, merge keys and limits. See yamlconf.h. */
#include "yamlconf.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "arena.h"
#include "expfmt.h"
#include "hmap.h"
#include "mem.h"
#include "strutil.h"

/* Arena cap: generous for YAMLCONF_MAX_NODES nodes plus a copy of the
 * largest input. */
#define YAMLCONF_ARENA_LIMIT ((size_t)1 << 30)

static const char TAG_STR[] = "!!str";
static const char TAG_INT[] = "!!int";
static const char TAG_FLOAT[] = "!!float";
static const char TAG_BOOL[] = "!!bool";
static const char TAG_NULL[] = "!!null";
static const char TAG_BINARY[] = "!!binary";
static const char TAG_MERGE[] = "!!merge";
static const char TAG_TIMESTAMP[] = "!!timestamp";
static const char TAG_SEQ[] = "!!seq";
static const char TAG_MAP[] = "!!map";

/* A node plus what only the builder needs: the expanded size. The public
 * node is the first member, so node pointers convert back. */
typedef struct xnode {
    yamlconf_node pub;
    uint64_t weight; /* nodes in the subtree, aliases counted as copies */
} xnode;

struct yamlconf_doc {
    arena mem;
    const yamlconf_node *root;
};

typedef struct anchor_ent {
    char *name;
    const yamlconf_node *node; /* NULL while its container is being built */
} anchor_ent;

typedef struct frame {
    xnode *node;
    const yamlconf_node **kids; /* items, or key,value,key,value... */
    size_t n, cap;
    anchor_ent *anchor; /* to complete at the end event, or NULL */
} frame;

typedef struct builder {
    const char *source;
    const char *text;
    size_t text_len;
    yamlconf_doc *doc;
    buf *err;
    frame stack[YAMLCONF_MAX_DEPTH];
    size_t depth;
    size_t nodes;
    hmap anchors; /* hash of name -> anchor_ent */
    const yamlconf_node *root;
    int documents;
    bool failed;
} builder;

/* ---- errors ---------------------------------------------------------------- */

static void fail_at(builder *b, size_t line, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail_at(builder *b, size_t line, size_t col, const char *fmt, ...)
{
    if (b->failed) return;
    b->failed = true;
    if (!b->err) return;
    buf_printf(b->err, "%s:%zu:%zu: ", b->source, line, col);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b->err, fmt, ap);
    va_end(ap);
    buf_putc(b->err, '\n');
}

/* Appends s (len bytes) shortened like yaml.v2 does in messages. */
static void put_short(buf *out, const char *s, size_t len)
{
    if (len > 10) {
        buf_append(out, s, 7);
        buf_puts(out, "...");
    } else {
        buf_append(out, s, len);
    }
}

/* ---- scalar resolution ------------------------------------------------------ */

static bool in_list(const char *s, size_t len, const char *const *list)
{
    for (; *list; list++) {
        if (strlen(*list) == len && memcmp(*list, s, len) == 0) return true;
    }
    return false;
}

static const char *const null_words[] = {"~", "null", "Null", "NULL", NULL};
static const char *const true_words[] = {"y",    "Y",    "yes", "Yes", "YES", "true",
                                         "True", "TRUE", "on",  "On",  "ON",  NULL};
static const char *const false_words[] = {"n",     "N",     "no",  "No",  "NO",  "false",
                                          "False", "FALSE", "off", "Off", "OFF", NULL};
static const char *const inf_words[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
static const char *const ninf_words[] = {"-.inf", "-.Inf", "-.INF", NULL};
static const char *const nan_words[] = {".nan", ".NaN", ".NAN", NULL};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Copies s without '_' into out (cap bytes, NUL-terminated); false if too
 * long to be a number. */
static bool strip_underscores(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '_') continue;
        if (n + 1 >= cap) return false;
        out[n++] = s[i];
    }
    out[n] = '\0';
    return true;
}

/* Go's strconv.ParseUint(s, 0, 64) on a sign-free string: 0x, 0o, 0b, a
 * leading 0 (octal) or decimal. Returns 0, -EINVAL (syntax) or -ERANGE. */
static int parse_go_uint(const char *s, uint64_t *out)
{
    unsigned base = 10;
    if (s[0] == '0' && s[1] != '\0') {
        if (s[1] == 'x' || s[1] == 'X') {
            base = 16;
            s += 2;
        } else if (s[1] == 'o' || s[1] == 'O') {
            base = 8;
            s += 2;
        } else if (s[1] == 'b' || s[1] == 'B') {
            base = 2;
            s += 2;
        } else {
            base = 8;
            s += 1;
        }
    }
    if (*s == '\0') return -EINVAL;
    uint64_t v = 0;
    bool range = false;
    for (; *s; s++) {
        unsigned d;
        char c = *s;
        if (c >= '0' && c <= '9') {
            d = (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            d = (unsigned)(c - 'A' + 10);
        } else {
            return -EINVAL;
        }
        if (d >= base) return -EINVAL;
        if (v > (UINT64_MAX - d) / base) range = true;
        v = v * base + d;
    }
    if (range) return -ERANGE;
    *out = v;
    return 0;
}

/* Parses an integer like yaml.v2 (underscores dropped, then Go base-0
 * syntax with an optional sign). *neg tells the sign of the magnitude. */
static int parse_int_text(const char *s, size_t len, bool *neg, uint64_t *mag)
{
    char tmp[512];
    if (!strip_underscores(s, len, tmp, sizeof tmp)) return -ERANGE;
    const char *p = tmp;
    *neg = false;
    if (*p == '+' || *p == '-') {
        *neg = *p == '-';
        p++;
    }
    return parse_go_uint(p, mag);
}

/* yaml.v2's float syntax: ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static bool yaml_style_float(const char *s)
{
    if (*s == '+' || *s == '-') s++;
    if (*s == '.') {
        s++;
        if (!is_digit(*s)) return false;
        while (is_digit(*s))
            s++;
    } else {
        if (!is_digit(*s)) return false;
        while (is_digit(*s))
            s++;
        if (*s == '.') {
            s++;
            while (is_digit(*s))
                s++;
        }
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!is_digit(*s)) return false;
        while (is_digit(*s))
            s++;
    }
    return *s == '\0';
}

/* yaml.v2's timestamp shapes, loosely: YYYY-M-D, optionally followed by a
 * time ("T", "t" or spaces, then digits). */
static bool looks_like_timestamp(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && is_digit(s[i]))
        i++;
    if (i != 4 || i == len || s[i] != '-') return false;
    i++;
    size_t d = 0;
    while (i < len && is_digit(s[i]) && d < 3)
        i++, d++;
    if (d < 1 || d > 2 || i == len || s[i] != '-') return false;
    i++;
    d = 0;
    while (i < len && is_digit(s[i]) && d < 3)
        i++, d++;
    if (d < 1 || d > 2) return false;
    if (i == len) return true;
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ' && s[i] != '\t') return false;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i < len && (s[i] == 'T' || s[i] == 't')) i++;
    return i < len && is_digit(s[i]);
}

static int float_of(const char *s, size_t len, double *out);

/* The tag a plain scalar resolves to, as yaml.v2's resolve(). */
static const char *resolve_plain(const char *s, size_t len)
{
    if (len == 0 || in_list(s, len, null_words)) return TAG_NULL;
    if (in_list(s, len, true_words) || in_list(s, len, false_words)) return TAG_BOOL;
    if (in_list(s, len, inf_words) || in_list(s, len, ninf_words) || in_list(s, len, nan_words))
        return TAG_FLOAT;
    if (len == 2 && s[0] == '<' && s[1] == '<') return TAG_MERGE;
    char c = s[0];
    double d;
    if (c == '.') {
        /* Go's ParseFloat(in): no underscores here. */
        if (!memchr(s, '_', len) && float_of(s, len, &d) == 0) return TAG_FLOAT;
        return TAG_STR;
    }
    if (c == '+' || c == '-' || is_digit(c)) {
        if (looks_like_timestamp(s, len)) return TAG_TIMESTAMP;
        bool neg;
        uint64_t mag;
        int rc = parse_int_text(s, len, &neg, &mag);
        if (rc == 0) {
            if (!neg || mag <= (uint64_t)INT64_MAX + 1) return TAG_INT;
        }
        /* Float-shaped and in range (1e400 is a string, as in yaml.v2);
         * an out-of-range integer that is not float-shaped (0x...) too. */
        if (float_of(s, len, &d) == 0) return TAG_FLOAT;
    }
    return TAG_STR;
}

static int float_of(const char *s, size_t len, double *out)
{
    if (in_list(s, len, inf_words)) {
        *out = INFINITY;
        return 0;
    }
    if (in_list(s, len, ninf_words)) {
        *out = -INFINITY;
        return 0;
    }
    if (in_list(s, len, nan_words)) {
        *out = NAN;
        return 0;
    }
    char tmp[512];
    if (!strip_underscores(s, len, tmp, sizeof tmp) || !yaml_style_float(tmp)) return -EINVAL;
    double v;
    int rc = expfmt_parse_float(tmp, strlen(tmp), &v); /* Go's ParseFloat, locale-free */
    if (rc < 0) return rc;
    *out = v;
    return 0;
}

/* ---- base64 (Go's base64.StdEncoding.DecodeString, which skips \r \n) ------ */

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes in place into out (at least len bytes). Returns the decoded
 * length or -1 for invalid data. */
static long b64_decode(const char *in, size_t len, char *out)
{
    unsigned char q[4];
    size_t nq = 0, n = 0;
    bool done = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\r' || c == '\n') continue;
        if (done) return -1;
        q[nq++] = c;
        if (nq < 4) continue;
        nq = 0;
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (q[k] == '=') {
                if (k < 2) return -1;
                pad++;
                v[k] = 0;
            } else {
                if (pad) return -1;
                v[k] = b64_val(q[k]);
                if (v[k] < 0) return -1;
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[n++] = (char)(w >> 16);
        if (pad < 2) out[n++] = (char)(w >> 8);
        if (pad < 1) out[n++] = (char)w;
        if (pad) done = true;
    }
    if (nq != 0) return -1;
    return (long)n;
}

/* ---- building --------------------------------------------------------------- */

static xnode *new_node(builder *b, enum yamlconf_kind kind, const yaml_mark_t *mark)
{
    if (++b->nodes > YAMLCONF_MAX_NODES) {
        fail_at(b, mark->line + 1, mark->column + 1, "document has too many nodes (more than %u)",
                YAMLCONF_MAX_NODES);
        return NULL;
    }
    xnode *x = arena_calloc(&b->doc->mem, sizeof *x);
    if (!x) {
        fail_at(b, mark->line + 1, mark->column + 1, "document too large");
        return NULL;
    }
    x->pub.kind = kind;
    x->pub.line = (uint32_t)(mark->line + 1 > UINT32_MAX ? UINT32_MAX : mark->line + 1);
    x->pub.col = (uint32_t)(mark->column + 1 > UINT32_MAX ? UINT32_MAX : mark->column + 1);
    x->pub.str = "";
    x->weight = 1;
    return x;
}

static uint64_t weight_of(const yamlconf_node *n)
{
    return ((const xnode *)n)->weight;
}

static uint64_t add_weight(uint64_t a, uint64_t b)
{
    uint64_t s = a + b;
    return s > (uint64_t)YAMLCONF_MAX_EXPANDED + 1 ? (uint64_t)YAMLCONF_MAX_EXPANDED + 1 : s;
}

/* The short tag for a tag as libyaml reports it (the long form for the
 * core schema). Returns NULL for the non-specific tag "!". */
static const char *short_tag(builder *b, const char *tag)
{
    static const char prefix[] = "tag:yaml.org,2002:";
    if (strcmp(tag, "!") == 0) return NULL;
    if (strncmp(tag, prefix, sizeof prefix - 1) == 0) {
        const char *t = tag + sizeof prefix - 1;
        static const char *const known[] = {TAG_STR,  TAG_INT,    TAG_FLOAT, TAG_BOOL,
                                            TAG_NULL, TAG_BINARY, TAG_MERGE, TAG_TIMESTAMP,
                                            TAG_SEQ,  TAG_MAP,    NULL};
        for (size_t i = 0; known[i]; i++) {
            if (strcmp(known[i] + 2, t) == 0) return known[i];
        }
        size_t n = strlen(t);
        char *s = arena_alloc(&b->doc->mem, n + 3);
        if (!s) return TAG_STR;
        memcpy(s, "!!", 2);
        memcpy(s + 2, t, n + 1);
        return s;
    }
    char *s = arena_strndup(&b->doc->mem, tag, strlen(tag));
    return s ? s : TAG_STR;
}

/* Applies an explicit core tag to a scalar's text, as yaml.v2 would.
 * Returns false (after reporting) when the text does not fit the tag. */
static bool apply_tag(builder *b, xnode *x, const char *tag)
{
    yamlconf_node *n = &x->pub;
    if (tag == TAG_STR || tag == TAG_TIMESTAMP) {
        n->tag = tag;
        return true;
    }
    if (tag == TAG_BINARY) {
        char *out = (char *)n->str; /* decoded in place: never longer */
        long len = b64_decode(n->str, n->len, out);
        if (len < 0) {
            fail_at(b, n->line, n->col, "!!binary value contains invalid base64 data");
            return false;
        }
        out[len] = '\0';
        n->len = (size_t)len;
        n->tag = TAG_BINARY;
        return true;
    }
    if (tag == TAG_NULL || tag == TAG_BOOL || tag == TAG_INT || tag == TAG_FLOAT ||
        tag == TAG_MERGE) {
        const char *r = resolve_plain(n->str, n->len);
        bool ok = r == tag || (tag == TAG_FLOAT && r == TAG_INT);
        if (!ok) {
            if (!b->failed && b->err) {
                buf_printf(b->err, "%s:%u:%u: cannot decode %s `", b->source, n->line, n->col, r);
                put_short(b->err, n->str, n->len);
                buf_printf(b->err, "` as a %s\n", tag);
            }
            b->failed = true;
            return false;
        }
        n->tag = tag;
        if (tag == TAG_NULL) n->kind = YAMLCONF_NULL;
        return true;
    }
    n->tag = tag; /* an application tag: a string as far as we care */
    return true;
}

static bool anchor_eq(const void *val, const void *key)
{
    return strcmp(((const anchor_ent *)val)->name, (const char *)key) == 0;
}

static anchor_ent *anchor_define(builder *b, const char *name, const yamlconf_node *node)
{
    uint64_t h = strutil_hash64(name, strlen(name), 0);
    anchor_ent *e = hmap_get(&b->anchors, h, anchor_eq, name);
    if (!e) {
        e = mem_calloc(1, sizeof *e);
        e->name = mem_strdup(name);
        hmap_put(&b->anchors, h, e);
    }
    e->node = node;
    return e;
}

static void add_child(builder *b, const yamlconf_node *n)
{
    if (b->depth == 0) {
        b->root = n;
        return;
    }
    frame *f = &b->stack[b->depth - 1];
    f->kids = mem_grow(f->kids, sizeof *f->kids, f->n + 1, &f->cap);
    f->kids[f->n++] = n;
    f->node->weight = add_weight(f->node->weight, weight_of(n));
}

static bool scalar_key_eq(const yamlconf_node *a, const yamlconf_node *b)
{
    if (a->kind != YAMLCONF_SCALAR && a->kind != YAMLCONF_NULL) return false;
    if (b->kind != YAMLCONF_SCALAR && b->kind != YAMLCONF_NULL) return false;
    return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

static bool is_merge_key(const yamlconf_node *k)
{
    return k->kind == YAMLCONF_SCALAR && k->tag == TAG_MERGE;
}

typedef struct keyset {
    hmap m;
} keyset;

static bool key_node_eq(const void *val, const void *key)
{
    return scalar_key_eq(val, key);
}

static uint64_t key_hash(const yamlconf_node *k)
{
    return strutil_hash64(k->str, k->len, 7);
}

/* Adds key to the set unless an equal key is there; returns true if added.
 * Non-scalar keys are never equal to anything. */
static bool keyset_add(keyset *s, const yamlconf_node *k)
{
    if (k->kind != YAMLCONF_SCALAR && k->kind != YAMLCONF_NULL) return true;
    uint64_t h = key_hash(k);
    if (hmap_get(&s->m, h, key_node_eq, k)) return false;
    hmap_put(&s->m, h, (void *)k);
    return true;
}

/* Builds the pair array of a finished mapping, applying merge keys. */
static bool finish_mapping(builder *b, frame *f)
{
    xnode *x = f->node;
    size_t npairs = f->n / 2;
    bool has_merge = false;
    for (size_t i = 0; i < npairs; i++) {
        if (is_merge_key(f->kids[2 * i])) has_merge = true;
    }
    if (!has_merge) {
        yamlconf_pair *pairs = arena_alloc(&b->doc->mem, (npairs ? npairs : 1) * sizeof *pairs);
        if (!pairs) {
            fail_at(b, x->pub.line, x->pub.col, "document too large");
            return false;
        }
        for (size_t i = 0; i < npairs; i++) {
            pairs[i].key = f->kids[2 * i];
            pairs[i].value = f->kids[2 * i + 1];
        }
        x->pub.pairs = pairs;
        x->pub.n = npairs;
        return true;
    }

    /* Validate merge values and count the result. */
    keyset seen;
    hmap_init(&seen.m);
    for (size_t i = 0; i < npairs; i++) {
        const yamlconf_node *k = f->kids[2 * i];
        if (!is_merge_key(k)) keyset_add(&seen, k);
    }
    yamlconf_pair *out = NULL;
    size_t nout = 0, cap = 0;
    uint64_t weight = 1;
    bool ok = true;
    for (size_t i = 0; i < npairs && ok; i++) {
        const yamlconf_node *k = f->kids[2 * i], *v = f->kids[2 * i + 1];
        if (!is_merge_key(k)) {
            out = mem_grow(out, sizeof *out, nout + 1, &cap);
            out[nout].key = k;
            out[nout].value = v;
            nout++;
            weight = add_weight(weight, add_weight(weight_of(k), weight_of(v)));
            continue;
        }
        const yamlconf_node *const *srcs = &v;
        size_t nsrc = 1;
        if (v->kind == YAMLCONF_SEQ) {
            srcs = v->items;
            nsrc = v->n;
        }
        for (size_t s = 0; s < nsrc; s++) {
            if (srcs[s]->kind != YAMLCONF_MAP) {
                fail_at(b, v->line, v->col,
                        "map merge requires map or sequence of maps as the value");
                ok = false;
                break;
            }
            for (size_t p = 0; p < srcs[s]->n; p++) {
                const yamlconf_pair *mp = &srcs[s]->pairs[p];
                if (!keyset_add(&seen, mp->key)) continue;
                out = mem_grow(out, sizeof *out, nout + 1, &cap);
                out[nout++] = *mp;
                weight = add_weight(weight, add_weight(weight_of(mp->key), weight_of(mp->value)));
            }
        }
    }
    hmap_cleanup(&seen.m);
    if (ok) {
        yamlconf_pair *pairs = arena_alloc(&b->doc->mem, (nout ? nout : 1) * sizeof *pairs);
        if (!pairs) {
            fail_at(b, x->pub.line, x->pub.col, "document too large");
            ok = false;
        } else {
            if (nout) memcpy(pairs, out, nout * sizeof *pairs);
            x->pub.pairs = pairs;
            x->pub.n = nout;
            x->weight = weight;
        }
    }
    mem_free(out);
    return ok;
}

static bool finish_container(builder *b)
{
    frame *f = &b->stack[b->depth - 1];
    xnode *x = f->node;
    bool ok = true;
    if (x->pub.kind == YAMLCONF_MAP) {
        ok = finish_mapping(b, f);
    } else {
        const yamlconf_node **items = arena_alloc(&b->doc->mem, (f->n ? f->n : 1) * sizeof *items);
        if (!items) {
            fail_at(b, x->pub.line, x->pub.col, "document too large");
            ok = false;
        } else {
            if (f->n) memcpy(items, f->kids, f->n * sizeof *items);
            x->pub.items = items;
            x->pub.n = f->n;
        }
    }
    if (ok && x->weight > YAMLCONF_MAX_EXPANDED) {
        fail_at(b, x->pub.line, x->pub.col,
                "document too large once aliases are expanded (more than %u units)",
                YAMLCONF_MAX_EXPANDED);
        ok = false;
    }
    if (ok && f->anchor) f->anchor->node = &x->pub;
    mem_free(f->kids);
    f->kids = NULL;
    f->n = f->cap = 0;
    b->depth--;
    if (ok) add_child(b, &x->pub);
    return ok;
}

static bool on_scalar(builder *b, yaml_event_t *ev)
{
    xnode *x = new_node(b, YAMLCONF_SCALAR, &ev->start_mark);
    if (!x) return false;
    yamlconf_node *n = &x->pub;
    size_t len = ev->data.scalar.length;
    char *s = arena_strndup(&b->doc->mem, (const char *)ev->data.scalar.value, len);
    if (!s) {
        fail_at(b, n->line, n->col, "document too large");
        return false;
    }
    n->str = s;
    n->len = len;
    x->weight = 1 + len / YAMLCONF_EXPANDED_BYTES;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    n->quoted = !plain;
    const char *tag = ev->data.scalar.tag ? short_tag(b, (const char *)ev->data.scalar.tag) : NULL;
    if (!tag) {
        /* No tag or the non-specific "!": plain scalars resolve, others
         * are strings. */
        n->tag = plain && !ev->data.scalar.tag ? resolve_plain(s, len) : TAG_STR;
        if (n->tag == TAG_NULL) n->kind = YAMLCONF_NULL;
    } else if (!apply_tag(b, x, tag)) {
        return false;
    }
    if (ev->data.scalar.anchor) anchor_define(b, (const char *)ev->data.scalar.anchor, n);
    add_child(b, n);
    return true;
}

static bool on_start(builder *b, yaml_event_t *ev, enum yamlconf_kind kind)
{
    if (b->depth >= YAMLCONF_MAX_DEPTH) {
        fail_at(b, ev->start_mark.line + 1, ev->start_mark.column + 1,
                "document nested too deeply (more than %d levels)", YAMLCONF_MAX_DEPTH);
        return false;
    }
    xnode *x = new_node(b, kind, &ev->start_mark);
    if (!x) return false;
    const yaml_char_t *tag, *anchor;
    if (kind == YAMLCONF_MAP) {
        tag = ev->data.mapping_start.tag;
        anchor = ev->data.mapping_start.anchor;
        x->pub.tag = TAG_MAP;
    } else {
        tag = ev->data.sequence_start.tag;
        anchor = ev->data.sequence_start.anchor;
        x->pub.tag = TAG_SEQ;
    }
    if (tag) {
        const char *t = short_tag(b, (const char *)tag);
        if (t) x->pub.tag = t;
    }
    frame *f = &b->stack[b->depth++];
    memset(f, 0, sizeof *f);
    f->node = x;
    if (anchor) f->anchor = anchor_define(b, (const char *)anchor, NULL);
    return true;
}

static bool on_alias(builder *b, yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    anchor_ent *e = hmap_get(&b->anchors, strutil_hash64(name, strlen(name), 0), anchor_eq, name);
    if (!e) {
        fail_at(b, ev->start_mark.line + 1, ev->start_mark.column + 1,
                "unknown anchor '%s' referenced", name);
        return false;
    }
    if (!e->node) {
        fail_at(b, ev->start_mark.line + 1, ev->start_mark.column + 1,
                "anchor '%s' value contains itself", name);
        return false;
    }
    add_child(b, e->node);
    return true;
}

/* Line and column (1-based) of a byte offset into the input. */
static void offset_pos(const builder *b, size_t off, size_t *line, size_t *col)
{
    size_t l = 1, c = 1;
    if (off > b->text_len) off = b->text_len;
    for (size_t i = 0; i < off; i++) {
        if (b->text[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)b->text[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static void parser_error(builder *b, yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "unknown problem parsing YAML content";
    size_t line, col;
    if (p->error == YAML_READER_ERROR) {
        offset_pos(b, p->problem_offset, &line, &col);
        if (p->problem_value != -1) {
            fail_at(b, line, col, "%s (byte 0x%02x)", problem, (unsigned)p->problem_value & 0xff);
        } else {
            fail_at(b, line, col, "%s", problem);
        }
        return;
    }
    if (p->error == YAML_MEMORY_ERROR) {
        fail_at(b, 1, 1, "out of memory parsing YAML");
        return;
    }
    line = p->problem_mark.line + 1;
    col = p->problem_mark.column + 1;
    if (p->context) {
        fail_at(b, line, col, "%s %s (started at line %zu, column %zu)", p->context, problem,
                (size_t)p->context_mark.line + 1, (size_t)p->context_mark.column + 1);
    } else {
        fail_at(b, line, col, "%s", problem);
    }
}

static void free_anchors(builder *b)
{
    size_t it = 0;
    void *v;
    while (hmap_next(&b->anchors, &it, &v)) {
        anchor_ent *e = v;
        mem_free(e->name);
        mem_free(e);
    }
    hmap_cleanup(&b->anchors);
}

int yamlconf_parse(const char *text, size_t len, const char *source, yamlconf_doc **out, buf *err)
{
    *out = NULL;
    if (!source) source = "<input>";
    if (len > YAMLCONF_MAX_INPUT) {
        if (err) {
            buf_printf(err, "%s: YAML input too large (%zu bytes, the limit is %u)\n", source, len,
                       YAMLCONF_MAX_INPUT);
        }
        return -E2BIG;
    }
    builder *b = mem_calloc(1, sizeof *b);
    b->source = source;
    b->text = text;
    b->text_len = len;
    b->err = err;
    b->doc = mem_calloc(1, sizeof *b->doc);
    arena_init(&b->doc->mem, YAMLCONF_ARENA_LIMIT);
    hmap_init(&b->anchors);

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fail_at(b, 1, 1, "cannot initialise the YAML parser");
    } else {
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
        bool done = false;
        while (!done && !b->failed) {
            yaml_event_t ev;
            if (!yaml_parser_parse(&parser, &ev)) {
                parser_error(b, &parser);
                break;
            }
            switch (ev.type) {
            case YAML_STREAM_END_EVENT:
                done = true;
                break;
            case YAML_DOCUMENT_START_EVENT:
                if (++b->documents > 1) {
                    fail_at(b, ev.start_mark.line + 1, ev.start_mark.column + 1,
                            "multiple YAML documents are not supported (this is the second)");
                }
                break;
            case YAML_SCALAR_EVENT:
                on_scalar(b, &ev);
                break;
            case YAML_SEQUENCE_START_EVENT:
                on_start(b, &ev, YAMLCONF_SEQ);
                break;
            case YAML_MAPPING_START_EVENT:
                on_start(b, &ev, YAMLCONF_MAP);
                break;
            case YAML_SEQUENCE_END_EVENT:
            case YAML_MAPPING_END_EVENT:
                if (b->depth > 0) finish_container(b);
                break;
            case YAML_ALIAS_EVENT:
                on_alias(b, &ev);
                break;
            default:
                break;
            }
            yaml_event_delete(&ev);
        }
        yaml_parser_delete(&parser);
    }
    for (size_t i = 0; i < b->depth; i++)
        mem_free(b->stack[i].kids);
    free_anchors(b);

    int rc = 0;
    if (b->failed) {
        yamlconf_free(b->doc);
        rc = -EINVAL;
    } else {
        if (!b->root) {
            yaml_mark_t m = {0, 0, 0};
            xnode *x = new_node(b, YAMLCONF_NULL, &m);
            if (x) x->pub.tag = TAG_NULL;
            b->root = x ? &x->pub : NULL;
        }
        if (!b->root) {
            yamlconf_free(b->doc);
            rc = -EINVAL;
        } else {
            b->doc->root = b->root;
            *out = b->doc;
        }
    }
    mem_free(b);
    return rc;
}

void yamlconf_free(yamlconf_doc *doc)
{
    if (!doc) return;
    arena_cleanup(&doc->mem);
    mem_free(doc);
}

const yamlconf_node *yamlconf_root(const yamlconf_doc *doc)
{
    return doc->root;
}

/* ---- helpers ---------------------------------------------------------------- */

bool yamlconf_is_null(const yamlconf_node *n)
{
    return !n || n->kind == YAMLCONF_NULL;
}

bool yamlconf_str_eq(const yamlconf_node *n, const char *s)
{
    if (!n || (n->kind != YAMLCONF_SCALAR && n->kind != YAMLCONF_NULL)) return false;
    size_t len = strlen(s);
    return n->len == len && memcmp(n->str, s, len) == 0;
}

const yamlconf_node *yamlconf_map_get(const yamlconf_node *map, const char *key,
                                      const yamlconf_node **key_out)
{
    if (key_out) *key_out = NULL;
    if (!map || map->kind != YAMLCONF_MAP) return NULL;
    for (size_t i = 0; i < map->n; i++) {
        if (yamlconf_str_eq(map->pairs[i].key, key)) {
            if (key_out) *key_out = map->pairs[i].key;
            return map->pairs[i].value;
        }
    }
    return NULL;
}

int yamlconf_bool(const yamlconf_node *n, bool *out)
{
    if (!n || n->kind != YAMLCONF_SCALAR || n->tag != TAG_BOOL) return -EINVAL;
    *out = in_list(n->str, n->len, true_words);
    return 0;
}

int yamlconf_int64(const yamlconf_node *n, int64_t *out)
{
    if (!n || n->kind != YAMLCONF_SCALAR) return -EINVAL;
    if (n->tag == TAG_INT) {
        bool neg;
        uint64_t mag;
        int rc = parse_int_text(n->str, n->len, &neg, &mag);
        if (rc < 0) return rc;
        if (neg) {
            if (mag > (uint64_t)INT64_MAX + 1) return -ERANGE;
            *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
        } else {
            if (mag > (uint64_t)INT64_MAX) return -ERANGE;
            *out = (int64_t)mag;
        }
        return 0;
    }
    if (n->tag == TAG_FLOAT) {
        double f;
        int rc = float_of(n->str, n->len, &f);
        if (rc < 0) return rc;
        if (!(f < 9223372036854775808.0 && f >= -9223372036854775808.0)) return -ERANGE;
        *out = (int64_t)f;
        return 0;
    }
    return -EINVAL;
}

int yamlconf_uint64(const yamlconf_node *n, uint64_t *out)
{
    if (!n || n->kind != YAMLCONF_SCALAR) return -EINVAL;
    if (n->tag == TAG_INT) {
        bool neg;
        uint64_t mag;
        int rc = parse_int_text(n->str, n->len, &neg, &mag);
        if (rc < 0) return rc;
        if (neg && mag != 0) return -ERANGE;
        *out = mag;
        return 0;
    }
    if (n->tag == TAG_FLOAT) {
        double f;
        int rc = float_of(n->str, n->len, &f);
        if (rc < 0) return rc;
        if (!(f < 18446744073709551616.0 && f > -1.0)) return -ERANGE;
        *out = (uint64_t)f;
        return 0;
    }
    return -EINVAL;
}

int yamlconf_float(const yamlconf_node *n, double *out)
{
    if (!n || n->kind != YAMLCONF_SCALAR) return -EINVAL;
    if (n->tag == TAG_FLOAT) return float_of(n->str, n->len, out);
    if (n->tag == TAG_INT) {
        bool neg;
        uint64_t mag;
        int rc = parse_int_text(n->str, n->len, &neg, &mag);
        if (rc < 0) return rc;
        *out = neg ? -(double)mag : (double)mag;
        return 0;
    }
    return -EINVAL;
}

void yamlconf_type_error(buf *out, const yamlconf_node *n, const char *go_type)
{
    buf_printf(out, "cannot unmarshal %s", n->tag);
    if (n->kind == YAMLCONF_SCALAR || n->kind == YAMLCONF_NULL) {
        buf_puts(out, " `");
        put_short(out, n->str, n->len);
        buf_putc(out, '`');
    }
    buf_printf(out, " into %s", go_type);
}

const char *yamlconf_kind_name(enum yamlconf_kind k)
{
    switch (k) {
    case YAMLCONF_NULL:
        return "null";
    case YAMLCONF_SCALAR:
        return "scalar";
    case YAMLCONF_SEQ:
        return "sequence";
    case YAMLCONF_MAP:
        return "mapping";
    }
    return "?";
}
