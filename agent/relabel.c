#include "relabel.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "expfmt.h"
#include "strutil.h"

/* Largest intermediate string a rule may build (joined source values,
 * expansions). Label values larger than this cannot come from a scrape that
 * passed label_value_length_limit anyway. */
#define RELABEL_MAX_VALUE (1024 * 1024)

static const char *get(const labels_builder *lb, const char *name, size_t *len)
{
    const char *v = labels_builder_get(lb, name, strlen(name), len);
    return v ? v : "";
}

static char *keep_copy(arena *a, const buf *b)
{
    char *s = arena_strndup(a, buf_cstr(b), b->len);
    return s;
}

/* A snapshot of the builder's labels (Go's Builder.Range iterates over one). */
static label *snapshot(const labels_builder *lb, arena *a, size_t *n)
{
    *n = lb->n;
    label *v = arena_alloc(a, (lb->n ? lb->n : 1) * sizeof *v);
    if (v) memcpy(v, lb->v, lb->n * sizeof *v);
    return v;
}

static bool apply_one(const config_relabel *c, labels_builder *lb, arena *a, bool legacy)
{
    buf val;
    buf_init(&val, RELABEL_MAX_VALUE);
    for (size_t i = 0; i < c->n_source_labels; i++) {
        size_t len;
        const char *v = get(lb, c->source_labels[i], &len);
        if (i) buf_puts(&val, c->separator);
        buf_append(&val, v, len);
    }
    const char *sv = buf_cstr(&val);
    size_t slen = val.len;
    bool keep = true;
    size_t tlen;
    const char *tv;

    switch (c->action) {
    case RELABEL_DROP:
        keep = !regex_match(c->regex, sv, slen);
        break;
    case RELABEL_KEEP:
        keep = regex_match(c->regex, sv, slen);
        break;
    case RELABEL_DROPEQUAL:
        tv = get(lb, c->target_label, &tlen);
        keep = !(tlen == slen && memcmp(tv, sv, slen) == 0);
        break;
    case RELABEL_KEEPEQUAL:
        tv = get(lb, c->target_label, &tlen);
        keep = tlen == slen && memcmp(tv, sv, slen) == 0;
        break;
    case RELABEL_REPLACE: {
        /* Fast path of Prometheus: empty value, default regex, and no
         * template variables: set the target to the replacement as is. */
        bool default_re = strcmp(regex_pattern(c->regex), "(.*)") == 0;
        if (slen == 0 && default_re && !strchr(c->target_label, '$') &&
            !strchr(c->replacement, '$')) {
            labels_builder_set(lb, c->target_label, strlen(c->target_label), c->replacement,
                               strlen(c->replacement));
            break;
        }
        buf target, res;
        buf_init(&target, RELABEL_MAX_VALUE);
        buf_init(&res, RELABEL_MAX_VALUE);
        if (regex_expand(c->regex, sv, slen, c->target_label, strlen(c->target_label), &target) ==
            1) {
            bool valid = legacy
                             ? expfmt_legacy_label_name(buf_cstr(&target), target.len)
                             : (target.len > 0 && expfmt_utf8_valid(buf_cstr(&target), target.len));
            if (valid) {
                regex_expand(c->regex, sv, slen, c->replacement, strlen(c->replacement), &res);
                char *t = keep_copy(a, &target);
                if (res.len == 0) {
                    if (t) labels_builder_del(lb, t, target.len);
                } else {
                    char *r = keep_copy(a, &res);
                    if (t && r) labels_builder_set(lb, t, target.len, r, res.len);
                }
            }
        }
        buf_cleanup(&target);
        buf_cleanup(&res);
        break;
    }
    case RELABEL_LOWERCASE:
    case RELABEL_UPPERCASE: {
        buf out;
        buf_init(&out, RELABEL_MAX_VALUE);
        if (c->action == RELABEL_LOWERCASE)
            strutil_lower(sv, slen, &out);
        else
            strutil_upper(sv, slen, &out);
        char *r = keep_copy(a, &out);
        if (r) labels_builder_set(lb, c->target_label, strlen(c->target_label), r, out.len);
        buf_cleanup(&out);
        break;
    }
    case RELABEL_HASHMOD: {
        unsigned char sum[16];
        strutil_md5(sv, slen, sum);
        uint64_t h = 0;
        for (int i = 8; i < 16; i++)
            h = (h << 8) | sum[i];
        char num[32];
        int n = snprintf(num, sizeof num, "%" PRIu64, c->modulus ? h % c->modulus : 0);
        char *r = arena_strndup(a, num, (size_t)n);
        if (r) labels_builder_set(lb, c->target_label, strlen(c->target_label), r, (size_t)n);
        break;
    }
    case RELABEL_LABELMAP: {
        size_t n;
        label *snap = snapshot(lb, a, &n);
        for (size_t i = 0; snap && i < n; i++) {
            buf name;
            buf_init(&name, RELABEL_MAX_VALUE);
            if (regex_expand(c->regex, snap[i].name, snap[i].name_len, c->replacement,
                             strlen(c->replacement), &name) == 1) {
                char *r = keep_copy(a, &name);
                if (r) labels_builder_set(lb, r, name.len, snap[i].value, snap[i].value_len);
            }
            buf_cleanup(&name);
        }
        break;
    }
    case RELABEL_LABELDROP:
    case RELABEL_LABELKEEP: {
        size_t n;
        label *snap = snapshot(lb, a, &n);
        for (size_t i = 0; snap && i < n; i++) {
            bool m = regex_match(c->regex, snap[i].name, snap[i].name_len);
            if (m == (c->action == RELABEL_LABELDROP))
                labels_builder_del(lb, snap[i].name, snap[i].name_len);
        }
        break;
    }
    }
    buf_cleanup(&val);
    return keep;
}

bool relabel_apply(const config_relabel *cfgs, size_t n, labels_builder *lb, arena *scratch,
                   bool legacy_names)
{
    for (size_t i = 0; i < n; i++) {
        if (!apply_one(&cfgs[i], lb, scratch, legacy_names)) return false;
    }
    return true;
}
