/* Unit tests for exporter/protoparse: the protobuf exposition format must be
 * read as Prometheus 3.x's model/textparse/protobufparse.go reads it.
 *
 * Data: tests/data/protobuf/NAME.txt, one case per file:
 *   # comments
 *   options: [ignore_native] [keep_classic] [max_message=N]
 *   --- input           MetricFamily messages in protobuf text format, each
 *                       ended by a line "--- next" (or the next section);
 *                       encoded here with protobuf-c's descriptors, each
 *                       after its length as a varint
 *   --- raw             (instead of, or after, input) bytes as hex, appended
 *   --- truncate N      cut N bytes off the end of the body
 *   --- expect          the entries, one per line, as dump() below writes
 *                       them (written by hand from the input, the rules in
 *                       protobufparse.go and the expectations of
 *                       protobufparse_test.go)
 * Inputs in text format need no binary files, and the cases read like
 * Prometheus's own table. */
#include "testutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <strings.h>

#include <protobuf-c/protobuf-c.h>

#include "expfmt.h"
#include "metrics.pb-c.h"
#include "nhist.h"
#include "protoparse.h"
#include "registry.h"
#include "textparse.h"

#define DATA_DIR "tests/data/protobuf"

/* ---- a growable string ------------------------------------------------------ */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static int sbuf_sink(void *ctx, const char *s, size_t n)
{
    sbuf *b = ctx;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1)
            nc *= 2;
        b->p = realloc(b->p, nc);
        assert_non_null(b->p);
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static void sputs(sbuf *b, const char *s)
{
    sbuf_sink(b, s, strlen(s));
}

static void sprintf_(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sprintf_(sbuf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sputs(b, tmp);
}

static void sfloat(sbuf *b, double v)
{
    char f[EXPFMT_FLOAT_MAX];
    expfmt_format_float(v, f);
    sputs(b, f);
}

/* ---- protobuf text format -> message, driven by protobuf-c's descriptors ---- */

typedef struct lexer {
    const char *s, *e;
    const char *err;
} lexer;

static void skip_ws(lexer *l)
{
    while (l->s < l->e) {
        if (*l->s == '#') {
            while (l->s < l->e && *l->s != '\n')
                l->s++;
        } else if (*l->s == ' ' || *l->s == '\t' || *l->s == '\n' || *l->s == '\r' ||
                   *l->s == ',' || *l->s == ';') {
            l->s++;
        } else {
            break;
        }
    }
}

static size_t ident(lexer *l, char *out, size_t cap)
{
    size_t n = 0;
    while (l->s < l->e && (isalnum((unsigned char)*l->s) || *l->s == '_' || *l->s == '-' ||
                           *l->s == '+' || *l->s == '.')) {
        if (n + 1 < cap) out[n++] = *l->s;
        l->s++;
    }
    out[n] = '\0';
    return n;
}

/* A quoted string with C escapes (\n \t \" \\ \' \ooo \xHH). */
static bool quoted(lexer *l, sbuf *out)
{
    char q = *l->s++;
    while (l->s < l->e && *l->s != q) {
        char c = *l->s++;
        if (c == '\\' && l->s < l->e) {
            char d = *l->s++;
            if (d == 'n') c = '\n';
            else if (d == 't') c = '\t';
            else if (d == 'r') c = '\r';
            else if (d == 'x') {
                unsigned v = 0;
                for (int k = 0; k < 2 && l->s < l->e && isxdigit((unsigned char)*l->s); k++)
                    v = v * 16 + (unsigned)(isdigit((unsigned char)*l->s) ? *l->s - '0'
                                                                           : (tolower(*l->s) - 'a' + 10)),
                    l->s++;
                c = (char)v;
            } else if (d >= '0' && d <= '7') {
                unsigned v = (unsigned)(d - '0');
                for (int k = 0; k < 2 && l->s < l->e && *l->s >= '0' && *l->s <= '7'; k++)
                    v = v * 8 + (unsigned)(*l->s++ - '0');
                c = (char)v;
            } else {
                c = d;
            }
        }
        sbuf_sink(out, &c, 1);
    }
    if (l->s >= l->e) return false;
    l->s++;
    return true;
}

static size_t elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_FLOAT: return 4;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    default: return 8;
    }
}

static ProtobufCMessage *parse_msg(lexer *l, const ProtobufCMessageDescriptor *d, char end);

/* Where the next value of field f goes in m (growing a repeated field). */
static void *slot(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    char *base = (char *)m;
    if (f->label != PROTOBUF_C_LABEL_REPEATED) return base + f->offset;
    size_t *n = (size_t *)(void *)(base + f->quantifier_offset);
    void **arr = (void **)(void *)(base + f->offset);
    size_t es = elem_size(f->type);
    *arr = realloc(*arr, (*n + 1) * es);
    assert_non_null(*arr);
    void *p = (char *)*arr + *n * es;
    memset(p, 0, es);
    (*n)++;
    return p;
}

static bool parse_field(lexer *l, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    skip_ws(l);
    if (l->s < l->e && *l->s == ':') l->s++;
    skip_ws(l);
    if (l->s >= l->e) return false;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        char open = *l->s++;
        if (open != '<' && open != '{') return false;
        ProtobufCMessage *sub = parse_msg(l, f->descriptor, open == '<' ? '>' : '}');
        if (!sub) return false;
        *(ProtobufCMessage **)slot(m, f) = sub;
        return true;
    }
    if (f->type == PROTOBUF_C_TYPE_BYTES || f->type == PROTOBUF_C_TYPE_STRING) {
        if (*l->s != '"' && *l->s != '\'') return false;
        sbuf b = {0};
        if (!quoted(l, &b)) return false;
        if (!b.p) b.p = calloc(1, 1);
        if (f->type == PROTOBUF_C_TYPE_BYTES) {
            ProtobufCBinaryData *bd = slot(m, f);
            bd->data = (uint8_t *)b.p;
            bd->len = b.len;
        } else {
            *(char **)slot(m, f) = b.p;
        }
        return true;
    }
    char word[128];
    if (!ident(l, word, sizeof word)) return false;
    void *p = slot(m, f);
    switch (f->type) {
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, word);
        *(int32_t *)p = v ? v->value : (int32_t)strtol(word, NULL, 10);
        return true;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v;
        if (expfmt_parse_float(word, strlen(word), &v) < 0) {
            if (strcasecmp(word, "inf") == 0 || strcasecmp(word, "+inf") == 0) v = INFINITY;
            else if (strcasecmp(word, "-inf") == 0) v = -INFINITY;
            else if (strcasecmp(word, "nan") == 0) v = NAN;
            else return false;
        }
        *(double *)p = v;
        return true;
    }
    case PROTOBUF_C_TYPE_UINT64: *(uint64_t *)p = strtoull(word, NULL, 0); return true;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64: *(int64_t *)p = strtoll(word, NULL, 0); return true;
    case PROTOBUF_C_TYPE_UINT32: *(uint32_t *)p = (uint32_t)strtoul(word, NULL, 0); return true;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32: *(int32_t *)p = (int32_t)strtol(word, NULL, 0); return true;
    default: return false;
    }
}

static ProtobufCMessage *parse_msg(lexer *l, const ProtobufCMessageDescriptor *d, char end)
{
    ProtobufCMessage *m = calloc(1, d->sizeof_message);
    assert_non_null(m);
    d->message_init(m);
    for (;;) {
        skip_ws(l);
        if (l->s >= l->e) {
            if (end == 0) return m;
            l->err = "unexpected end";
            break;
        }
        if (*l->s == end) {
            l->s++;
            return m;
        }
        char name[64];
        if (!ident(l, name, sizeof name)) {
            l->err = "expected a field name";
            break;
        }
        if (strcmp(name, "start_timestamp") == 0) strcpy(name, "created_timestamp");
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);
        if (!f) {
            l->err = "unknown field";
            break;
        }
        if (!parse_field(l, m, f)) {
            if (!l->err) l->err = "bad field value";
            break;
        }
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return NULL;
}

static void put_varint(sbuf *b, uint64_t v)
{
    char c;
    while (v >= 0x80) {
        c = (char)(v | 0x80);
        sbuf_sink(b, &c, 1);
        v >>= 7;
    }
    c = (char)v;
    sbuf_sink(b, &c, 1);
}

/* Encodes one MetricFamily in text format, length-delimited, onto body. */
static void encode_family(sbuf *body, const char *text, size_t len, const char *file)
{
    lexer l = {text, text + len, NULL};
    ProtobufCMessage *m = parse_msg(&l, &io__prometheus__client__metric_family__descriptor, 0);
    if (!m) fail_msg("%s: text format: %s at offset %zu", file, l.err, (size_t)(l.s - text));
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n + 1);
    assert_int_equal(protobuf_c_message_pack(m, buf), n);
    put_varint(body, n);
    sbuf_sink(body, (const char *)buf, n);
    free(buf);
    protobuf_c_message_free_unpacked(m, NULL);
}

/* ---- dumping the parser's entries ---------------------------------------------- */

static void dump_labels(sbuf *b, const protoparse *p)
{
    sputs(b, "{");
    for (size_t i = 0; i < protoparse_label_count(p); i++) {
        const char *n, *v;
        size_t nl, vl;
        protoparse_label(p, i, &n, &nl, &v, &vl);
        if (i) sputs(b, ",");
        sbuf_sink(b, n, nl);
        sputs(b, "=");
        expfmt_quote_go(sbuf_sink, b, v, vl);
    }
    sputs(b, "}");
}

static void dump_spans(sbuf *b, const nhist_span *s, size_t n, const double *c, size_t nc)
{
    sputs(b, "[");
    for (size_t i = 0; i < n; i++)
        sprintf_(b, "%s%d:%u", i ? " " : "", (int)s[i].offset, (unsigned)s[i].length);
    sputs(b, "] [");
    for (size_t i = 0; i < nc; i++) {
        if (i) sputs(b, " ");
        sfloat(b, c[i]);
    }
    sputs(b, "]");
}

static const char *const hint_names[] = {"unknown", "reset", "not_reset", "gauge"};

static int gocmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return al < bl ? -1 : al > bl;
}

/* Checks the series key against the labels: __name__'s value at its sorted
 * place, every other label as 0xff name 0xff value. */
static void check_key(const protoparse *p, const char *file)
{
    sbuf want = {0};
    size_t nlen;
    const char *name = protoparse_metric_name(p, &nlen);
    bool done = false;
    for (size_t i = 0; i <= protoparse_label_count(p); i++) {
        const char *n = NULL, *v;
        size_t nl = 0, vl;
        if (i < protoparse_label_count(p)) protoparse_label(p, i, &n, &nl, &v, &vl);
        if (!done && (i == protoparse_label_count(p) || gocmp("__name__", 8, n, nl) < 0)) {
            sbuf_sink(&want, name, nlen);
            done = true;
        }
        if (i == protoparse_label_count(p)) break;
        sputs(&want, "\xff");
        sbuf_sink(&want, n, nl);
        sputs(&want, "\xff");
        sbuf_sink(&want, v, vl);
    }
    size_t klen;
    const char *key = protoparse_series_key(p, &klen);
    if (klen != want.len || memcmp(key, want.p ? want.p : "", klen) != 0)
        fail_msg("%s: series key of %.*s does not match its labels", file, (int)nlen, name);
    free(want.p);
}

static void dump_entry_tail(sbuf *b, const protoparse *p)
{
    int64_t t;
    if (protoparse_timestamp(p, &t)) sprintf_(b, " @%lld", (long long)t);
    if (protoparse_created_timestamp(p, &t)) sprintf_(b, " ct=%lld", (long long)t);
    sputs(b, "\n");
    for (size_t i = 0; i < protoparse_exemplar_count(p); i++) {
        double v;
        bool has_ts;
        int64_t ts;
        protoparse_exemplar(p, i, &v, &has_ts, &ts);
        sputs(b, "  exemplar {");
        for (size_t j = 0; j < protoparse_exemplar_label_count(p, i); j++) {
            const char *n, *lv;
            size_t nl, vl;
            protoparse_exemplar_label(p, i, j, &n, &nl, &lv, &vl);
            if (j) sputs(b, ",");
            sbuf_sink(b, n, nl);
            sputs(b, "=");
            expfmt_quote_go(sbuf_sink, b, lv, vl);
        }
        sputs(b, "} ");
        sfloat(b, v);
        if (has_ts) sprintf_(b, " @%lld", (long long)ts);
        sputs(b, "\n");
    }
}

/* Runs the parser over body and writes every entry. */
static void dump(sbuf *b, const uint8_t *body, size_t len, const protoparse_options *o,
                 const char *file)
{
    protoparse *p;
    assert_int_equal(protoparse_new(&p, body, len, o), 0);
    for (int guard = 0; guard < 100000; guard++) {
        enum protoparse_entry e = protoparse_next(p);
        if (e == PROTOPARSE_END) {
            sputs(b, "end\n");
            break;
        }
        if (e == PROTOPARSE_ERROR) {
            sprintf_(b, "error %s\n", protoparse_error(p));
            /* It stays there. */
            assert_int_equal(protoparse_next(p), PROTOPARSE_ERROR);
            break;
        }
        if (e == PROTOPARSE_FAMILY) {
            const char *n, *h, *u;
            size_t nl, hl, ul;
            enum expfmt_type t;
            protoparse_family(p, &n, &nl, &h, &hl, &u, &ul, &t);
            sputs(b, "family ");
            sbuf_sink(b, n, nl);
            sprintf_(b, " %s help=", expfmt_type_name(t));
            expfmt_quote_go(sbuf_sink, b, h, hl);
            if (ul) {
                sputs(b, " unit=");
                expfmt_quote_go(sbuf_sink, b, u, ul);
            }
            sputs(b, "\n");
            continue;
        }
        size_t nl;
        const char *n = protoparse_metric_name(p, &nl);
        check_key(p, file);
        if (e == PROTOPARSE_SERIES) {
            sputs(b, "series ");
            sbuf_sink(b, n, nl);
            dump_labels(b, p);
            sputs(b, " ");
            sfloat(b, protoparse_value(p));
        } else {
            assert_int_equal(e, PROTOPARSE_HISTOGRAM);
            const nhist *h = protoparse_histogram(p);
            sputs(b, "histogram ");
            sbuf_sink(b, n, nl);
            dump_labels(b, p);
            sprintf_(b, " %s schema=%d count=", h->is_float ? "float" : "int", (int)h->schema);
            sfloat(b, h->count);
            sputs(b, " sum=");
            sfloat(b, h->sum);
            sputs(b, " zt=");
            sfloat(b, h->zero_threshold);
            sputs(b, " zc=");
            sfloat(b, h->zero_count);
            sprintf_(b, " hint=%s pos=", hint_names[h->hint & 3]);
            dump_spans(b, h->pos_spans, h->n_pos_spans, h->pos, h->n_pos);
            sputs(b, " neg=");
            dump_spans(b, h->neg_spans, h->n_neg_spans, h->neg, h->n_neg);
            if (h->n_custom_values) {
                sputs(b, " cv=[");
                for (size_t i = 0; i < h->n_custom_values; i++) {
                    if (i) sputs(b, " ");
                    sfloat(b, h->custom_values[i]);
                }
                sputs(b, "]");
            }
            /* What the parser returns is valid. */
            char err[256];
            if (nhist_validate(h, err, sizeof err) < 0) fail_msg("%s: invalid histogram: %s", file, err);
        }
        dump_entry_tail(b, p);
    }
    protoparse_free(p);
}

/* ---- the data-driven cases ----------------------------------------------------------- */

typedef struct tcase {
    protoparse_options o;
    sbuf body;
    sbuf expect;
} tcase;

static void load_case(const char *path, tcase *c)
{
    size_t len = 0;
    char *text = tu_read_file(path, &len);
    if (!text) fail_msg("cannot read %s", path);
    memset(c, 0, sizeof *c);
    enum { S_HEAD, S_INPUT, S_RAW, S_EXPECT } sec = S_HEAD;
    const char *fam = NULL; /* start of the current text family */
    char *line = text;
    while (line < text + len) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        char *end = nl ? nl : text + len;
        char *next = nl ? nl + 1 : text + len;
        bool marker = end - line >= 4 && strncmp(line, "--- ", 4) == 0;
        if (marker && sec == S_INPUT && fam) {
            encode_family(&c->body, fam, (size_t)(line - fam), path);
            fam = NULL;
        }
        if (marker) {
            char word[64] = {0};
            size_t wl = (size_t)(end - line - 4) < sizeof word - 1 ? (size_t)(end - line - 4) : sizeof word - 1;
            memcpy(word, line + 4, wl);
            if (strcmp(word, "input") == 0 || strcmp(word, "next") == 0) {
                sec = S_INPUT;
                fam = next;
            } else if (strcmp(word, "raw") == 0) {
                sec = S_RAW;
            } else if (strncmp(word, "truncate ", 9) == 0) {
                size_t cut = strtoul(word + 9, NULL, 10);
                assert_true(cut <= c->body.len);
                c->body.len -= cut;
                sec = S_HEAD;
            } else if (strcmp(word, "expect") == 0) {
                sec = S_EXPECT;
            } else {
                fail_msg("%s: unknown section %s", path, word);
            }
        } else if (sec == S_HEAD && strncmp(line, "options:", 8) == 0) {
            char opts[256] = {0};
            memcpy(opts, line + 8, (size_t)(end - line - 8) < 255 ? (size_t)(end - line - 8) : 255);
            c->o.ignore_native_histograms = strstr(opts, "ignore_native") != NULL;
            c->o.keep_classic_histograms = strstr(opts, "keep_classic") != NULL;
            c->o.convert_classic_to_nhcb = strstr(opts, "nhcb") != NULL;
            const char *mm = strstr(opts, "max_message=");
            if (mm) c->o.max_message_bytes = strtoul(mm + 12, NULL, 10);
        } else if (sec == S_RAW) {
            for (char *q = line; q + 1 < end;) {
                if (isxdigit((unsigned char)q[0]) && isxdigit((unsigned char)q[1])) {
                    char hex[3] = {q[0], q[1], 0};
                    char byte = (char)strtoul(hex, NULL, 16);
                    sbuf_sink(&c->body, &byte, 1);
                    q += 2;
                } else {
                    q++;
                }
            }
        } else if (sec == S_EXPECT) {
            if (end > line && line[0] != '#') {
                sbuf_sink(&c->expect, line, (size_t)(end - line));
                sputs(&c->expect, "\n");
            }
        }
        line = next;
    }
    if (sec == S_INPUT && fam) encode_family(&c->body, fam, (size_t)(text + len - fam), path);
    if (!c->expect.p) fail_msg("%s: no expect section", path);
    free(text);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_data_files(void **state)
{
    (void)state;
    DIR *d = opendir(DATA_DIR);
    assert_non_null(d);
    char *names[512];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < 512) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".txt") == 0) names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], name_cmp);
    assert_true(n >= 10);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", DATA_DIR, names[i]);
        tcase c;
        load_case(path, &c);
        const char *seeds = getenv("SIDEWATCH_PROTOPARSE_SEEDS");
        if (seeds && *seeds) { /* fuzz seeds: the option byte, then the body */
            char sp[1024];
            snprintf(sp, sizeof sp, "%s/%.*s.bin", seeds, (int)strlen(names[i]) - 4, names[i]);
            FILE *f = fopen(sp, "wb");
            assert_non_null(f);
            fputc((c.o.ignore_native_histograms ? 1 : 0) | (c.o.keep_classic_histograms ? 2 : 0) |
                      (c.o.convert_classic_to_nhcb ? 8 : 0),
                  f);
            if (c.body.len) fwrite(c.body.p, 1, c.body.len, f);
            fclose(f);
        }
        sbuf got = {0};
        dump(&got, (const uint8_t *)c.body.p, c.body.len, &c.o, path);
        if (strcmp(got.p, c.expect.p) != 0) {
            print_message("FAIL %s\n--- got:\n%s--- want:\n%s", path, got.p, c.expect.p);
            failed++;
        }
        free(got.p);
        free(c.body.p);
        free(c.expect.p);
        free(names[i]);
    }
    if (failed) fail_msg("%d of %zu data files differ", failed, n);
}

/* ---- API edges --------------------------------------------------------------------- */

static void test_empty_and_null(void **state)
{
    (void)state;
    protoparse *p;
    assert_int_equal(protoparse_new(&p, NULL, 0, NULL), 0);
    assert_int_equal(protoparse_next(p), PROTOPARSE_END);
    assert_int_equal(protoparse_next(p), PROTOPARSE_END);
    assert_string_equal(protoparse_error(p), "");
    protoparse_free(p);
    protoparse_free(NULL);
}

static void test_every_truncation(void **state)
{
    (void)state;
    /* Each proper prefix of a valid body ends in an error or, when it cuts
     * between messages, a clean end; never a crash or an overread (ASan). */
    tcase c;
    load_case(DATA_DIR "/prom-table.txt", &c);
    for (size_t cut = 0; cut < c.body.len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, c.body.p, cut);
        sbuf got = {0};
        dump(&got, copy, cut, &c.o, "truncation");
        assert_non_null(strstr(got.p, "\nend\n") || strncmp(got.p, "end\n", 4) == 0
                            ? got.p
                            : strstr(got.p, "error "));
        free(got.p);
        free(copy);
    }
    free(c.body.p);
    free(c.expect.p);
}

static void test_decode_memory_cap(void **state)
{
    (void)state;
    /* 100000 empty Metric messages: 2 bytes each on the wire, ~110 in
     * memory, over the 32x cap: refused with a clear message. */
    size_t nm = 100000, ml = 3 + 2 * nm;
    sbuf body = {0};
    put_varint(&body, ml);
    sbuf_sink(&body, "\x0a\x01m", 3);
    for (size_t i = 0; i < nm; i++)
        sbuf_sink(&body, "\x22\x00", 2);
    protoparse *p;
    assert_int_equal(protoparse_new(&p, (const uint8_t *)body.p, body.len, NULL), 0);
    assert_int_equal(protoparse_next(p), PROTOPARSE_ERROR);
    assert_string_equal(protoparse_error(p),
                        "protobuf message of 200003 bytes at offset 0 needs too much memory to decode");
    protoparse_free(p);
    /* A tenth of them decodes (the cap has 1 MiB of slack). */
    body.len = 0;
    nm = 10000, ml = 3 + 2 * nm;
    put_varint(&body, ml);
    sbuf_sink(&body, "\x0a\x01m", 3);
    for (size_t i = 0; i < nm; i++)
        sbuf_sink(&body, "\x22\x00", 2);
    assert_int_equal(protoparse_new(&p, (const uint8_t *)body.p, body.len, NULL), 0);
    assert_int_equal(protoparse_next(p), PROTOPARSE_FAMILY);
    size_t n = 0;
    while (protoparse_next(p) == PROTOPARSE_SERIES)
        n++;
    assert_int_equal(n, nm);
    assert_string_equal(protoparse_error(p), "");
    protoparse_free(p);
    free(body.p);
}

static void test_content_type(void **state)
{
    (void)state;
    assert_true(protoparse_is_content_type(PROTOPARSE_CONTENT_TYPE));
    assert_true(protoparse_is_content_type("application/vnd.google.protobuf"));
    assert_true(protoparse_is_content_type("Application/Vnd.Google.Protobuf; proto=x"));
    assert_true(protoparse_is_content_type(" application/vnd.google.protobuf ;encoding=delimited"));
    assert_false(protoparse_is_content_type(NULL));
    assert_false(protoparse_is_content_type(""));
    assert_false(protoparse_is_content_type("text/plain; version=0.0.4"));
    assert_false(protoparse_is_content_type("application/openmetrics-text"));
    assert_false(protoparse_is_content_type("application/vnd.google.protobuf; proto"));
    assert_false(protoparse_is_content_type("application/vnd.google.protobuf; a=1; a=2"));
    assert_false(protoparse_is_content_type("application/vnd.google.protobuf/x"));
}

/* ---- the registry written as protobuf, read back ----------------------------------- */

static void collect(registry_collect *c, void *ctx)
{
    (void)ctx;
    registry_collect_family(c, "collected_gauge", "From a collector.", EXPFMT_GAUGE);
    textwrite_label l[] = {{"id", 2, "a\"b", 3}, {"kind", 4, "x", 1}};
    registry_collect_sample(c, l, 2, 12.5);
    registry_collect_sample(c, l + 1, 1, -1);
    registry_collect_family(c, "collected_untyped", "", EXPFMT_UNKNOWN);
    registry_collect_sample(c, NULL, 0, 7);
}

static registry *sample_registry(void)
{
    registry *r = registry_new();
    assert_non_null(r);
    const char *const ln[] = {"path", "code", NULL};
    registry_family *ctr = registry_counter(r, "http_requests_total", "Requests.", ln);
    const char *const v1[] = {"/a", "200"}, *const v2[] = {"/b", "500"};
    registry_add(registry_child(ctr, v1), 3);
    registry_inc(registry_child(ctr, v2));
    registry_family *g = registry_gauge(r, "temperature", "Temp.", NULL);
    registry_set(registry_child(g, NULL), -4.25);
    const double bounds[] = {0.1, 1, 10};
    registry_family *h = registry_histogram(r, "latency_seconds", "Latency.", NULL, bounds, 3);
    registry_metric *hm = registry_child(h, NULL);
    registry_observe(hm, 0.05);
    registry_observe(hm, 0.5);
    registry_observe(hm, 0.7);
    registry_observe(hm, 50);
    registry_add_collector(r, collect, NULL);
    return r;
}

/* "name{sorted labels} value" lines, sorted, from the text format. */
static char *text_samples(const char *body, size_t len, bool norm_le)
{
    textparse p;
    textparse_init(&p, TEXTPARSE_PROMETHEUS, body, len);
    char *lines[256];
    size_t n = 0;
    for (;;) {
        enum textparse_entry e = textparse_next(&p);
        assert_int_not_equal(e, TEXTPARSE_ERROR);
        if (e == TEXTPARSE_END) break;
        if (e != TEXTPARSE_SERIES) continue;
        sbuf b = {0};
        textparse_str nm = textparse_metric_name(&p);
        textparse_unescape(nm, false, sbuf_sink, &b);
        /* labels sorted by name (few, so selection order) */
        size_t nl = textparse_label_count(&p);
        bool used[16] = {0};
        assert_true(nl < 16);
        sputs(&b, "{");
        for (size_t k = 0; k < nl; k++) {
            size_t best = SIZE_MAX;
            for (size_t i = 0; i < nl; i++) {
                if (used[i]) continue;
                textparse_str a, bb;
                textparse_label(&p, i, &a, NULL);
                if (best != SIZE_MAX) textparse_label(&p, best, &bb, NULL);
                if (best == SIZE_MAX || gocmp(a.p, a.len, bb.p, bb.len) < 0) best = i;
            }
            used[best] = true;
            textparse_str ln, lv;
            textparse_label(&p, best, &ln, &lv);
            char norm[EXPFMT_FLOAT_MAX];
            size_t normlen;
            if (k) sputs(&b, ",");
            sbuf_sink(&b, ln.p, ln.len);
            sputs(&b, "=");
            sbuf v = {0};
            if (norm_le && ln.len == 2 && memcmp(ln.p, "le", 2) == 0) {
                /* protoparse formats le as Prometheus 3.x does ("1.0") */
                double d;
                assert_int_equal(expfmt_parse_float(lv.p, lv.len, &d), 0);
                normlen = expfmt_format_om_float(d, norm);
                sbuf_sink(&v, norm, normlen);
            } else {
                textparse_unescape(lv, false, sbuf_sink, &v);
            }
            expfmt_quote_go(sbuf_sink, &b, v.p ? v.p : "", v.len);
            free(v.p);
        }
        sputs(&b, "} ");
        sfloat(&b, textparse_value(&p));
        lines[n++] = b.p;
    }
    textparse_cleanup(&p);
    qsort(lines, n, sizeof lines[0], name_cmp);
    sbuf all = {0};
    for (size_t i = 0; i < n; i++) {
        sputs(&all, lines[i]);
        sputs(&all, "\n");
        free(lines[i]);
    }
    return all.p;
}

/* The same lines from the protobuf format, plus the families seen. */
static char *proto_samples(const char *body, size_t len, sbuf *families)
{
    protoparse *p;
    assert_int_equal(protoparse_new(&p, (const uint8_t *)body, len, NULL), 0);
    char *lines[256];
    size_t n = 0;
    for (;;) {
        enum protoparse_entry e = protoparse_next(p);
        if (e == PROTOPARSE_ERROR) fail_msg("protoparse: %s", protoparse_error(p));
        if (e == PROTOPARSE_END) break;
        if (e == PROTOPARSE_FAMILY) {
            const char *nm, *h;
            size_t nl, hl;
            enum expfmt_type t;
            protoparse_family(p, &nm, &nl, &h, &hl, NULL, NULL, &t);
            sbuf_sink(families, nm, nl);
            sprintf_(families, " %s ", expfmt_type_name(t));
            expfmt_quote_go(sbuf_sink, families, h, hl);
            sputs(families, "\n");
            continue;
        }
        assert_int_equal(e, PROTOPARSE_SERIES);
        sbuf b = {0};
        size_t nl;
        const char *nm = protoparse_metric_name(p, &nl);
        sbuf_sink(&b, nm, nl);
        dump_labels(&b, p);
        sputs(&b, " ");
        sfloat(&b, protoparse_value(p));
        lines[n++] = b.p;
    }
    protoparse_free(p);
    qsort(lines, n, sizeof lines[0], name_cmp);
    sbuf all = {0};
    for (size_t i = 0; i < n; i++) {
        sputs(&all, lines[i]);
        sputs(&all, "\n");
        free(lines[i]);
    }
    return all.p;
}

static void test_registry_roundtrip(void **state)
{
    (void)state;
    registry *r = sample_registry();
    sbuf text = {0}, pb = {0}, fams = {0};
    assert_int_equal(registry_write(r, TEXTPARSE_PROMETHEUS, sbuf_sink, &text), 0);
    assert_int_equal(registry_write_protobuf(r, sbuf_sink, &pb), 0);
    char *want = text_samples(text.p, text.len, true);
    char *got = proto_samples(pb.p, pb.len, &fams);
    assert_string_equal(got, want);
    /* Every sample of the text is there (a sanity check on the comparison). */
    assert_non_null(strstr(got, "http_requests_total{code=\"200\",path=\"/a\"} 3\n"));
    assert_non_null(strstr(got, "latency_seconds_bucket{le=\"1.0\"} 3\n"));
    assert_non_null(strstr(got, "latency_seconds_bucket{le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(got, "collected_gauge{id=\"a\\\"b\",kind=\"x\"} 12.5\n"));
    assert_string_equal(fams.p, "collected_gauge gauge \"From a collector.\"\n"
                                "collected_untyped unknown \"\"\n"
                                "http_requests_total counter \"Requests.\"\n"
                                "latency_seconds histogram \"Latency.\"\n"
                                "temperature gauge \"Temp.\"\n");
    /* The text converted to protobuf reads back the same samples too. */
    sbuf conv = {0}, fams2 = {0};
    assert_int_equal(registry_text_to_protobuf(text.p, text.len, sbuf_sink, &conv), 0);
    char *got2 = proto_samples(conv.p, conv.len, &fams2);
    /* (untyped there, so le stays as written) */
    char *want2 = text_samples(text.p, text.len, false);
    assert_string_equal(got2, want2);
    free(want2);
    assert_non_null(strstr(fams2.p, "http_requests_total counter \"Requests.\"\n"));
    assert_non_null(strstr(fams2.p, "latency_seconds_bucket unknown \"\"\n"));
    assert_int_equal(registry_text_to_protobuf("a{", 2, sbuf_sink, &conv), -EINVAL);
    free(got2);
    free(conv.p);
    free(fams2.p);
    free(want);
    free(got);
    free(text.p);
    free(pb.p);
    free(fams.p);
    registry_free(r);
}

static void test_negotiate(void **state)
{
    (void)state;
    /* Prometheus's scrape Accept header with the protobuf protocol first. */
    assert_true(registry_negotiate_protobuf(
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;"
        "q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
        "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;"
        "escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"));
    /* Its default header (no protobuf). */
    assert_false(registry_negotiate_protobuf(
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
        "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;"
        "escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"));
    /* Lower q than text loses; order does not matter, q does. */
    assert_false(registry_negotiate_protobuf(
        "text/plain;q=0.9,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
        "encoding=delimited;q=0.5"));
    assert_true(registry_negotiate_protobuf(
        "text/plain;q=0.4, application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
        "encoding=delimited;q=0.5"));
    /* Without proto= or with another encoding it is not the delimited format. */
    assert_false(registry_negotiate_protobuf("application/vnd.google.protobuf;encoding=delimited"));
    assert_false(registry_negotiate_protobuf(
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"));
    /* An unsupported text version is skipped, so protobuf after it wins. */
    assert_true(registry_negotiate_protobuf(
        "text/plain;version=9.9.9,application/vnd.google.protobuf;"
        "proto=io.prometheus.client.MetricFamily;encoding=delimited"));
    assert_false(registry_negotiate_protobuf(NULL));
    assert_false(registry_negotiate_protobuf(""));
    assert_false(registry_negotiate_protobuf("*/*"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_files),
        cmocka_unit_test(test_empty_and_null),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_decode_memory_cap),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_registry_roundtrip),
        cmocka_unit_test(test_negotiate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
