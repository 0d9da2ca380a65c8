#include "labels.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "expfmt.h"
#include "strutil.h"

/* The hash is hash_block()'s for an empty set (XXH64 of no bytes, seed 0),
 * so the static set equals an empty set built with the builder. */
static const labels empty_labels = {0, sizeof(labels), 0xEF46DB3751D8E999ULL};

const labels *labels_empty(void)
{
    return &empty_labels;
}

void labels_free(labels *ls)
{
    if (ls && ls != &empty_labels) mem_free(ls);
}

/* Hash of the string area: names and values in order, NUL-separated. */
static uint64_t hash_block(const labels *ls)
{
    if (ls->n == 0) return strutil_hash64("", 0, 0);
    const char *start = ls->v[0].name;
    const char *end = ls->v[ls->n - 1].value + ls->v[ls->n - 1].value_len + 1;
    return strutil_hash64(start, (size_t)(end - start), 0);
}

labels *labels_dup(const labels *ls)
{
    labels *d = mem_malloc(ls->bytes);
    memcpy(d, ls, ls->bytes);
    ptrdiff_t delta = (const char *)d - (const char *)ls;
    for (uint32_t i = 0; i < d->n; i++) {
        d->v[i].name += delta;
        d->v[i].value += delta;
    }
    return d;
}

const char *labels_get(const labels *ls, const char *name, size_t name_len, size_t *len)
{
    /* Sets are small; a linear scan beats bisection below ~16 labels. */
    for (uint32_t i = 0; i < ls->n; i++) {
        const label *l = &ls->v[i];
        if (l->name_len == name_len && memcmp(l->name, name, name_len) == 0) {
            if (len) *len = l->value_len;
            return l->value;
        }
    }
    if (len) *len = 0;
    return NULL;
}

const char *labels_metric_name(const labels *ls, size_t *len)
{
    const char *v = labels_get(ls, LABELS_METRIC_NAME, 8, len);
    return v ? v : "";
}

uint64_t labels_hash(const labels *ls)
{
    return ls->hash;
}

static int cmp_bytes(const char *a, size_t al, const char *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = memcmp(a, b, n);
    if (c) return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

bool labels_equal(const labels *a, const labels *b)
{
    if (a == b) return true;
    if (a->n != b->n || a->hash != b->hash) return false;
    for (uint32_t i = 0; i < a->n; i++) {
        const label *x = &a->v[i], *y = &b->v[i];
        if (x->name_len != y->name_len || x->value_len != y->value_len ||
            memcmp(x->name, y->name, x->name_len) || memcmp(x->value, y->value, x->value_len))
            return false;
    }
    return true;
}

int labels_compare(const labels *a, const labels *b)
{
    uint32_t n = a->n < b->n ? a->n : b->n;
    for (uint32_t i = 0; i < n; i++) {
        int c = cmp_bytes(a->v[i].name, a->v[i].name_len, b->v[i].name, b->v[i].name_len);
        if (c) return c;
        c = cmp_bytes(a->v[i].value, a->v[i].value_len, b->v[i].value, b->v[i].value_len);
        if (c) return c;
    }
    return a->n < b->n ? -1 : a->n > b->n ? 1 : 0;
}

void labels_escape_value(buf *out, const char *v, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *esc = NULL;
        switch (v[i]) {
        case '\\':
            esc = "\\\\";
            break;
        case '"':
            esc = "\\\"";
            break;
        case '\n':
            esc = "\\n";
            break;
        default:
            run++;
            continue;
        }
        buf_append(out, v + i - run, run);
        run = 0;
        buf_puts(out, esc);
    }
    buf_append(out, v + len - run, run);
}

static void put_name(buf *out, const char *name, size_t len)
{
    if (expfmt_legacy_label_name(name, len)) {
        buf_append(out, name, len);
    } else {
        buf_putc(out, '"');
        labels_escape_value(out, name, len);
        buf_putc(out, '"');
    }
}

void labels_format(const labels *ls, buf *out)
{
    buf_putc(out, '{');
    for (uint32_t i = 0; i < ls->n; i++) {
        if (i) buf_puts(out, ", ");
        put_name(out, ls->v[i].name, ls->v[i].name_len);
        buf_putc(out, '=');
        expfmt_quote_go(buf_sink, out, ls->v[i].value, ls->v[i].value_len);
    }
    buf_putc(out, '}');
}

void labels_format_metric(const labels *ls, buf *out)
{
    size_t nlen;
    const char *name = labels_get(ls, LABELS_METRIC_NAME, 8, &nlen);
    bool quoted_name = name && !expfmt_legacy_metric_name(name, nlen);
    if (name && !quoted_name) buf_append(out, name, nlen);
    bool any = quoted_name;
    for (uint32_t i = 0; i < ls->n; i++) {
        if (ls->v[i].value == name) continue;
        any = true;
    }
    if (!any && name) return;
    buf_putc(out, '{');
    bool first = true;
    if (quoted_name) {
        buf_putc(out, '"');
        labels_escape_value(out, name, nlen);
        buf_putc(out, '"');
        first = false;
    }
    for (uint32_t i = 0; i < ls->n; i++) {
        const label *l = &ls->v[i];
        if (l->value == name) continue;
        if (!first) buf_putc(out, ',');
        first = false;
        put_name(out, l->name, l->name_len);
        buf_puts(out, "=\"");
        labels_escape_value(out, l->value, l->value_len);
        buf_putc(out, '"');
    }
    buf_putc(out, '}');
}

/* ---- encoding ------------------------------------------------------------ */

static void put_varint(buf *out, uint64_t v)
{
    unsigned char tmp[10];
    int n = 0;
    while (v >= 0x80) {
        tmp[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (unsigned char)v;
    buf_append(out, tmp, (size_t)n);
}

static int get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end) return -EINVAL;
        unsigned char c = *(*p)++;
        r |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -EINVAL;
}

void labels_encode(const labels *ls, buf *out)
{
    put_varint(out, ls->n);
    for (uint32_t i = 0; i < ls->n; i++) {
        put_varint(out, ls->v[i].name_len);
        buf_append(out, ls->v[i].name, ls->v[i].name_len);
        put_varint(out, ls->v[i].value_len);
        buf_append(out, ls->v[i].value, ls->v[i].value_len);
    }
}

int labels_decode(const void *data, size_t len, labels **out)
{
    const unsigned char *p = data, *end = p + len;
    uint64_t n;
    if (get_varint(&p, end, &n) < 0 || n > len) return -EINVAL;
    labels_builder b;
    labels_builder_init(&b);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t nl, vl;
        if (get_varint(&p, end, &nl) < 0 || nl > (uint64_t)(end - p)) goto bad;
        const char *name = (const char *)p;
        p += nl;
        if (get_varint(&p, end, &vl) < 0 || vl > (uint64_t)(end - p)) goto bad;
        labels_builder_add(&b, name, nl, (const char *)p, vl);
        p += vl;
    }
    if (p != end) goto bad;
    const char *dup = NULL;
    *out = labels_builder_finish(&b, &dup);
    labels_builder_cleanup(&b);
    return *out ? 0 : -EINVAL;
bad:
    labels_builder_cleanup(&b);
    return -EINVAL;
}

/* ---- builder --------------------------------------------------------------- */

void labels_builder_init(labels_builder *b)
{
    b->v = NULL;
    b->n = b->cap = 0;
}

void labels_builder_cleanup(labels_builder *b)
{
    mem_free(b->v);
    labels_builder_init(b);
}

void labels_builder_reset(labels_builder *b)
{
    b->n = 0;
}

void labels_builder_add(labels_builder *b, const char *name, size_t name_len, const char *value,
                        size_t value_len)
{
    b->v = mem_grow(b->v, sizeof *b->v, b->n + 1, &b->cap);
    b->v[b->n].name = name;
    b->v[b->n].name_len = (uint32_t)name_len;
    b->v[b->n].value = value;
    b->v[b->n].value_len = (uint32_t)value_len;
    b->n++;
}

void labels_builder_from(labels_builder *b, const labels *ls)
{
    b->n = 0;
    b->v = mem_grow(b->v, sizeof *b->v, ls->n, &b->cap);
    if (ls->n) memcpy(b->v, ls->v, ls->n * sizeof *b->v);
    b->n = ls->n;
}

static ptrdiff_t builder_find(const labels_builder *b, const char *name, size_t name_len)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->v[i].name_len == name_len && memcmp(b->v[i].name, name, name_len) == 0)
            return (ptrdiff_t)i;
    }
    return -1;
}

void labels_builder_set(labels_builder *b, const char *name, size_t name_len, const char *value,
                        size_t value_len)
{
    ptrdiff_t i = builder_find(b, name, name_len);
    if (value_len == 0) {
        if (i >= 0) b->v[i] = b->v[--b->n];
        return;
    }
    if (i >= 0) {
        b->v[i].value = value;
        b->v[i].value_len = (uint32_t)value_len;
        return;
    }
    labels_builder_add(b, name, name_len, value, value_len);
}

void labels_builder_del(labels_builder *b, const char *name, size_t name_len)
{
    ptrdiff_t i = builder_find(b, name, name_len);
    if (i >= 0) b->v[i] = b->v[--b->n];
}

const char *labels_builder_get(const labels_builder *b, const char *name, size_t name_len,
                               size_t *len)
{
    ptrdiff_t i = builder_find(b, name, name_len);
    if (i < 0) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = b->v[i].value_len;
    return b->v[i].value;
}

static int cmp_label(const void *x, const void *y)
{
    const label *a = x, *b = y;
    return cmp_bytes(a->name, a->name_len, b->name, b->name_len);
}

labels *labels_builder_finish(labels_builder *b, const char **dup_name)
{
    /* Drop empty values, then sort by name (insertion sort: sets are small
     * and often nearly sorted). */
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->v[i].value_len > 0) b->v[n++] = b->v[i];
    }
    b->n = n;
    if (n > 32) {
        qsort(b->v, n, sizeof *b->v, cmp_label);
    } else {
        for (size_t i = 1; i < n; i++) {
            label t = b->v[i];
            size_t j = i;
            while (j > 0 && cmp_label(&b->v[j - 1], &t) > 0) {
                b->v[j] = b->v[j - 1];
                j--;
            }
            b->v[j] = t;
        }
    }
    for (size_t i = 1; i < n; i++) {
        if (cmp_label(&b->v[i - 1], &b->v[i]) == 0) {
            if (dup_name) {
                *dup_name = b->v[i].name;
                return NULL;
            }
        }
    }
    size_t bytes = sizeof(labels) + n * sizeof(label);
    for (size_t i = 0; i < n; i++)
        bytes += b->v[i].name_len + b->v[i].value_len + 2;
    labels *ls = mem_malloc(bytes);
    ls->n = (uint32_t)n;
    ls->bytes = (uint32_t)bytes;
    char *s = (char *)&ls->v[n];
    for (size_t i = 0; i < n; i++) {
        label *l = &ls->v[i];
        memcpy(s, b->v[i].name, b->v[i].name_len);
        s[b->v[i].name_len] = '\0';
        l->name = s;
        l->name_len = b->v[i].name_len;
        s += l->name_len + 1;
        memcpy(s, b->v[i].value, b->v[i].value_len);
        s[b->v[i].value_len] = '\0';
        l->value = s;
        l->value_len = b->v[i].value_len;
        s += l->value_len + 1;
    }
    ls->hash = hash_block(ls);
    return ls;
}

/* ---- matchers ------------------------------------------------------------------ */

int labels_matcher_init(label_matcher *m, enum matcher_type type, const char *name, size_t name_len,
                        const char *value, size_t value_len, buf *err)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    if (type == MATCH_RE || type == MATCH_NRE) {
        if (regex_compile(&m->re, value, value_len, err) < 0) return -EINVAL;
    }
    m->name = mem_strndup(name, name_len);
    m->name_len = name_len;
    m->value = mem_strndup(value, value_len);
    m->value_len = value_len;
    return 0;
}

void labels_matcher_cleanup(label_matcher *m)
{
    mem_free(m->name);
    mem_free(m->value);
    regex_free(m->re);
    memset(m, 0, sizeof *m);
}

bool labels_matcher_matches(const label_matcher *m, const char *v, size_t len)
{
    switch (m->type) {
    case MATCH_EQ:
        return len == m->value_len && memcmp(v, m->value, len) == 0;
    case MATCH_NEQ:
        return !(len == m->value_len && memcmp(v, m->value, len) == 0);
    case MATCH_RE:
        return regex_match(m->re, v, len);
    case MATCH_NRE:
        return !regex_match(m->re, v, len);
    }
    return false;
}

bool labels_matcher_matches_empty(const label_matcher *m)
{
    return labels_matcher_matches(m, "", 0);
}

bool labels_match_all(const labels *ls, const label_matcher *ms, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *v = labels_get(ls, ms[i].name, ms[i].name_len, &len);
        if (!labels_matcher_matches(&ms[i], v ? v : "", len)) return false;
    }
    return true;
}

void labels_matcher_format(const label_matcher *m, buf *out)
{
    static const char *const ops[] = {"=", "!=", "=~", "!~"};
    put_name(out, m->name, m->name_len);
    buf_puts(out, ops[m->type]);
    buf_putc(out, '"');
    labels_escape_value(out, m->value, m->value_len);
    buf_putc(out, '"');
}

/* ---- series selectors ---------------------------------------------------------- */

typedef struct sel_parser {
    const char *s;
    size_t len, i;
    buf *err;
    bool failed;
    size_t max_regex; /* 0 = no limit */
    bool too_large;   /* a regex was over max_regex */
} sel_parser;

static void sel_error(sel_parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sel_error(sel_parser *p, size_t at, const char *fmt, ...)
{
    if (p->failed) return;
    p->failed = true;
    size_t line = 1, col = 1;
    for (size_t k = 0; k < at && k < p->len; k++) {
        if (p->s[k] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    buf_printf(p->err, "%zu:%zu: parse error: ", line, col);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(p->err, fmt, ap);
    va_end(ap);
}

static void sel_skip_space(sel_parser *p)
{
    while (p->i < p->len) {
        char c = p->s[p->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            p->i++;
        } else if (c == '#') { /* PromQL comments run to the end of the line */
            while (p->i < p->len && p->s[p->i] != '\n')
                p->i++;
        } else {
            break;
        }
    }
}

static bool sel_ident_char(char c, bool first, bool colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
    if (colon && c == ':') return true;
    return !first && c >= '0' && c <= '9';
}

/* Reads a quoted string (Prometheus's unquoting rules, as PromQL's) into
 * out, which must be empty; its value must be valid UTF-8. */
static bool sel_string(sel_parser *p, buf *out)
{
    size_t start = p->i, end;
    strutil_unquote_error e;
    if (strutil_go_unquote(p->s + start, p->len - start, STRUTIL_UNQUOTE_PROMQL, out, &end, &e) <
        0) {
        sel_error(p, start + e.at, "%s", e.msg);
        return false;
    }
    p->i = start + end;
    if (!expfmt_utf8_valid(buf_cstr(out), out->len)) {
        sel_error(p, start, "invalid UTF-8 rune");
        return false;
    }
    return true;
}

typedef struct sel_list {
    label_matcher *v;
    size_t n, cap;
} sel_list;

static bool sel_add(sel_parser *p, sel_list *l, enum matcher_type t, const char *name, size_t nl,
                    const char *value, size_t vl, size_t at)
{
    if ((t == MATCH_RE || t == MATCH_NRE) && p->max_regex && vl > p->max_regex) {
        sel_error(p, at, "regular expression is too large (%zu bytes, the limit is %zu bytes)", vl,
                  p->max_regex);
        p->too_large = true;
        return false;
    }
    l->v = mem_grow(l->v, sizeof *l->v, l->n + 1, &l->cap);
    buf e;
    buf_init(&e, 4096);
    if (labels_matcher_init(&l->v[l->n], t, name, nl, value, vl, &e) < 0) {
        sel_error(p, at, "%s", buf_cstr(&e));
        buf_cleanup(&e);
        return false;
    }
    buf_cleanup(&e);
    l->n++;
    return true;
}

void labels_matchers_free(label_matcher *ms, size_t n)
{
    if (!ms) return;
    for (size_t i = 0; i < n; i++)
        labels_matcher_cleanup(&ms[i]);
    mem_free(ms);
}

static int parse_selector(const char *s, size_t len, bool need_nonempty, size_t max_regex,
                          label_matcher **out, size_t *n, buf *err);

int labels_parse_selector(const char *s, size_t len, label_matcher **out, size_t *n, buf *err)
{
    return parse_selector(s, len, true, 0, out, n, err);
}

int labels_parse_metric_selector(const char *s, size_t len, label_matcher **out, size_t *n,
                                 buf *err)
{
    return parse_selector(s, len, false, 0, out, n, err);
}

int labels_parse_metric_selector_max(const char *s, size_t len, size_t max_regex_bytes,
                                     label_matcher **out, size_t *n, buf *err)
{
    return parse_selector(s, len, false, max_regex_bytes, out, n, err);
}

int labels_parse_selector_max(const char *s, size_t len, size_t max_regex_bytes,
                              label_matcher **out, size_t *n, buf *err)
{
    return parse_selector(s, len, true, max_regex_bytes, out, n, err);
}

static int parse_selector(const char *s, size_t len, bool need_nonempty, size_t max_regex,
                          label_matcher **out, size_t *n, buf *err)
{
    sel_parser p = {s, len, 0, err, false, max_regex, false};
    sel_list l = {0};
    buf name, value;
    buf_init(&name, BUF_UNLIMITED);
    buf_init(&value, BUF_UNLIMITED);
    bool has_name = false;

    sel_skip_space(&p);
    if (p.i < len && sel_ident_char(s[p.i], true, true)) {
        size_t st = p.i;
        while (p.i < len && sel_ident_char(s[p.i], false, true))
            p.i++;
        if (!sel_add(&p, &l, MATCH_EQ, LABELS_METRIC_NAME, 8, s + st, p.i - st, st)) goto fail;
        has_name = true;
        sel_skip_space(&p);
    }
    if (p.i < len && s[p.i] == '{') {
        p.i++;
        for (;;) {
            sel_skip_space(&p);
            if (p.i >= len) {
                sel_error(&p, p.i, "unexpected end of input inside braces");
                goto fail;
            }
            if (s[p.i] == '}') {
                p.i++;
                break;
            }
            size_t at = p.i;
            buf_reset(&name);
            bool quoted = false;
            if (s[p.i] == '"' || s[p.i] == '\'' || s[p.i] == '`') {
                if (!sel_string(&p, &name)) goto fail;
                quoted = true;
            } else if (sel_ident_char(s[p.i], true, false)) {
                size_t st = p.i;
                while (p.i < len && sel_ident_char(s[p.i], false, false))
                    p.i++;
                buf_append(&name, s + st, p.i - st);
            } else {
                sel_error(&p, at, "unexpected character inside braces: '%c'", s[p.i]);
                goto fail;
            }
            sel_skip_space(&p);
            /* A lone quoted string is the metric name. */
            if (quoted && p.i < len && (s[p.i] == ',' || s[p.i] == '}')) {
                if (has_name) {
                    sel_error(&p, at, "metric name must not be set twice: %s", buf_cstr(&name));
                    goto fail;
                }
                if (!sel_add(&p, &l, MATCH_EQ, LABELS_METRIC_NAME, 8, buf_cstr(&name), name.len,
                             at))
                    goto fail;
                has_name = true;
            } else {
                enum matcher_type t;
                if (p.i + 1 < len && s[p.i] == '=' && s[p.i + 1] == '~') {
                    t = MATCH_RE;
                    p.i += 2;
                } else if (p.i + 1 < len && s[p.i] == '!' && s[p.i + 1] == '~') {
                    t = MATCH_NRE;
                    p.i += 2;
                } else if (p.i + 1 < len && s[p.i] == '!' && s[p.i + 1] == '=') {
                    t = MATCH_NEQ;
                    p.i += 2;
                } else if (p.i < len && s[p.i] == '=') {
                    t = MATCH_EQ;
                    p.i++;
                } else {
                    sel_error(&p, p.i,
                              "unexpected %s in label matching, expected label matching operator",
                              p.i < len ? "character" : "end of input");
                    goto fail;
                }
                sel_skip_space(&p);
                if (p.i >= len || !(s[p.i] == '"' || s[p.i] == '\'' || s[p.i] == '`')) {
                    sel_error(&p, p.i, "unexpected %s in label matching, expected string",
                              p.i < len ? "character" : "end of input");
                    goto fail;
                }
                buf_reset(&value);
                size_t vat = p.i;
                if (!sel_string(&p, &value)) goto fail;
                if (!sel_add(&p, &l, t, buf_cstr(&name), name.len, buf_cstr(&value), value.len,
                             vat))
                    goto fail;
            }
            sel_skip_space(&p);
            if (p.i < len && s[p.i] == ',') {
                p.i++;
                continue;
            }
            if (p.i < len && s[p.i] == '}') {
                p.i++;
                break;
            }
            sel_error(&p, p.i, "unexpected %s in label matching, expected \",\" or \"}\"",
                      p.i < len ? "character" : "end of input");
            goto fail;
        }
    } else if (!has_name) {
        if (p.i < len)
            sel_error(&p, p.i, "unexpected character: '%c'", s[p.i]);
        else
            sel_error(&p, p.i, "unexpected end of input");
        goto fail;
    }
    sel_skip_space(&p);
    if (p.i < len) {
        sel_error(&p, p.i, "unexpected character after selector: '%c'", s[p.i]);
        goto fail;
    }
    bool nonempty = false;
    for (size_t k = 0; k < l.n; k++) {
        if (!labels_matcher_matches_empty(&l.v[k])) nonempty = true;
    }
    if (!nonempty && need_nonempty) {
        sel_error(&p, 0, "vector selector must contain at least one non-empty matcher");
        goto fail;
    }
    buf_cleanup(&name);
    buf_cleanup(&value);
    *out = l.v;
    *n = l.n;
    return 0;
fail:
    buf_cleanup(&name);
    buf_cleanup(&value);
    labels_matchers_free(l.v, l.n);
    *out = NULL;
    *n = 0;
    return p.too_large ? -E2BIG : -EINVAL;
}
