/* Unit tests for agent/rwproto: remote write 1.0 bodies round-trip
 * (floats, the staleness NaN bit for bit, integer / float / custom-bucket
 * histograms, exemplars, metadata), and every kind of bad body is refused
 * with its reason and nothing returned. Bad label sets are made by hand
 * (the encoder borrows them unchecked); bad snappy blocks are written
 * byte by byte (format: varint length, then literal elements). */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>

#include "mem.h"
#include "rwproto.h"
#include "strutil.h"

/* A label set built by hand, in the given order (no sorting, no checks).
 * Free with mem_free (not labels_free: the strings are borrowed). */
static labels *raw_labels(size_t n, const char *const *kv)
{
    labels *ls = mem_calloc(1, sizeof *ls + n * sizeof(label));
    ls->n = (uint32_t)n;
    ls->bytes = (uint32_t)(sizeof *ls + n * sizeof(label));
    for (size_t i = 0; i < n; i++) {
        ls->v[i].name = kv[2 * i];
        ls->v[i].name_len = (uint32_t)strlen(kv[2 * i]);
        ls->v[i].value = kv[2 * i + 1];
        ls->v[i].value_len = (uint32_t)strlen(kv[2 * i + 1]);
    }
    return ls;
}

static labels *mk(size_t n, const char *const *kv)
{
    labels_builder b;
    labels_builder_init(&b);
    for (size_t i = 0; i < n; i++)
        labels_builder_set(&b, kv[2 * i], strlen(kv[2 * i]), kv[2 * i + 1], strlen(kv[2 * i + 1]));
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return ls;
}

/* Encodes r; asserts success. */
static void enc(const rwproto_request *r, buf *out)
{
    buf err;
    buf_init(&err, 4096);
    buf_init(out, BUF_UNLIMITED);
    int rc = rwproto_encode(r, out, &err);
    assert_int_equal(rc, 0);
    assert_true(out->len > 0);
    buf_cleanup(&err);
}

/* Decodes body expecting -EINVAL with `want` inside the reason. */
static void expect_bad(const void *body, size_t len, size_t max, const char *want)
{
    rwproto_request got;
    buf err;
    buf_init(&err, 4096);
    int rc = rwproto_decode(body, len, max, &got, &err);
    if (rc != -EINVAL || !strstr(buf_cstr(&err), want))
        fail_msg("want -EINVAL with \"%s\", got %d \"%s\"", want, rc, buf_cstr(&err));
    assert_int_equal(got.n_series, 0);
    assert_null(got.series);
    assert_int_equal(got.n_metadata, 0);
    buf_cleanup(&err);
}

static void expect_bad_request(const rwproto_request *r, const char *want)
{
    buf body;
    enc(r, &body);
    expect_bad(body.data, body.len, 0, want);
    buf_cleanup(&body);
}

static void decode_ok(const buf *body, rwproto_request *got)
{
    buf err;
    buf_init(&err, 4096);
    int rc = rwproto_decode(body->data, body->len, 0, got, &err);
    if (rc != 0) fail_msg("decode: %d %s", rc, buf_cstr(&err));
    buf_cleanup(&err);
}

static bool same_bits(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

static void assert_labels(const labels *got, const labels *want)
{
    if (!labels_equal(got, want)) {
        buf a, b;
        buf_init(&a, BUF_UNLIMITED), buf_init(&b, BUF_UNLIMITED);
        labels_format(got, &a), labels_format(want, &b);
        fail_msg("labels %s, want %s", buf_cstr(&a), buf_cstr(&b));
    }
}

static void test_floats_round_trip(void **state)
{
    (void)state;
    const char *kv1[] = {"__name__", "up", "instance", "a:1", "job", "j\xc3\xa9"};
    const char *kv2[] = {"__name__", "x", "empty", ""}; /* the empty value is dropped */
    labels *l1 = mk(3, kv1), *l2 = raw_labels(2, kv2);
    rwproto_sample s1[] = {{1000, 1},   {2000, -0.5},     {3000, strutil_stale_nan()},
                           {4000, NAN}, {5000, INFINITY}, {6000, 1e-300}};
    rwproto_sample s2[] = {{-5, 42}};
    rwproto_series ser[] = {{.ls = l1, .samples = s1, .n_samples = 6},
                            {.ls = l2, .samples = s2, .n_samples = 1}};
    rwproto_request r = {.series = ser, .n_series = 2};
    buf body;
    enc(&r, &body);

    rwproto_request got;
    decode_ok(&body, &got);
    assert_int_equal(got.n_series, 2);
    assert_labels(got.series[0].ls, l1);
    assert_int_equal(got.series[0].n_samples, 6);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(got.series[0].samples[i].t, s1[i].t);
        assert_true(same_bits(got.series[0].samples[i].v, s1[i].v));
    }
    assert_true(strutil_is_stale_nan(got.series[0].samples[2].v));
    assert_false(strutil_is_stale_nan(got.series[0].samples[3].v));
    const char *kv2s[] = {"__name__", "x"};
    labels *want2 = mk(1, kv2s);
    assert_labels(got.series[1].ls, want2);
    assert_int_equal(got.series[1].samples[0].t, -5);
    assert_true(got.series[1].samples[0].v == 42);
    assert_int_equal(got.series[1].n_hists, 0);
    assert_int_equal(got.n_metadata, 0);

    rwproto_request_cleanup(&got);
    assert_null(got.series);
    rwproto_request_cleanup(&got); /* twice is harmless */
    labels_free(l1), labels_free(want2), mem_free(l2);
    buf_cleanup(&body);
}

static void assert_hist_equal(const nhist *a, const nhist *b)
{
    assert_int_equal(a->is_float, b->is_float);
    assert_int_equal(a->hint, b->hint);
    assert_int_equal(a->schema, b->schema);
    assert_true(same_bits(a->zero_threshold, b->zero_threshold));
    assert_true(same_bits(a->zero_count, b->zero_count));
    assert_true(same_bits(a->count, b->count));
    assert_true(same_bits(a->sum, b->sum));
    assert_int_equal(a->n_pos_spans, b->n_pos_spans);
    assert_int_equal(a->n_neg_spans, b->n_neg_spans);
    for (size_t i = 0; i < a->n_pos_spans; i++) {
        assert_int_equal(a->pos_spans[i].offset, b->pos_spans[i].offset);
        assert_int_equal(a->pos_spans[i].length, b->pos_spans[i].length);
    }
    for (size_t i = 0; i < a->n_neg_spans; i++) {
        assert_int_equal(a->neg_spans[i].offset, b->neg_spans[i].offset);
        assert_int_equal(a->neg_spans[i].length, b->neg_spans[i].length);
    }
    assert_int_equal(a->n_pos, b->n_pos);
    assert_int_equal(a->n_neg, b->n_neg);
    for (size_t i = 0; i < a->n_pos; i++)
        assert_true(same_bits(a->pos[i], b->pos[i]));
    for (size_t i = 0; i < a->n_neg; i++)
        assert_true(same_bits(a->neg[i], b->neg[i]));
    assert_int_equal(a->n_custom_values, b->n_custom_values);
    for (size_t i = 0; i < a->n_custom_values; i++)
        assert_true(same_bits(a->custom_values[i], b->custom_values[i]));
}

static void test_histograms_round_trip(void **state)
{
    (void)state;
    /* Integer: counts that go down and up (negative deltas on the wire). */
    nhist_span ip[] = {{-2, 3}, {4, 1}}, in[] = {{0, 2}};
    double ipc[] = {5, 2, 9, 1}, inc[] = {3, 3};
    nhist hi = {.is_float = false,
                .hint = NHIST_HINT_NOT_RESET,
                .schema = 3,
                .zero_threshold = 1e-128,
                .zero_count = 4,
                .count = 4 + 17 + 6,
                .sum = -12.5,
                .pos_spans = ip,
                .n_pos_spans = 2,
                .pos = ipc,
                .n_pos = 4,
                .neg_spans = in,
                .n_neg_spans = 1,
                .neg = inc,
                .n_neg = 2};
    /* Float. */
    nhist_span fp[] = {{1, 2}};
    double fpc[] = {0.25, 1.5};
    nhist hf = {.is_float = true,
                .hint = NHIST_HINT_GAUGE,
                .schema = -2,
                .zero_threshold = 0.001,
                .zero_count = 0.5,
                .count = 2.25,
                .sum = 7.75,
                .pos_spans = fp,
                .n_pos_spans = 1,
                .pos = fpc,
                .n_pos = 2};
    /* Custom buckets (NHCB). */
    nhist_span cp[] = {{0, 2}, {1, 1}};
    double cpc[] = {1, 0, 3}, cv[] = {0.1, 0.5, 2.5};
    nhist hc = {.is_float = false,
                .hint = NHIST_HINT_RESET,
                .schema = NHIST_CUSTOM_SCHEMA,
                .count = 4,
                .sum = 3.5,
                .pos_spans = cp,
                .n_pos_spans = 2,
                .pos = cpc,
                .n_pos = 3,
                .custom_values = cv,
                .n_custom_values = 3};
    /* A histogram staleness marker. */
    nhist hs;
    nhist_init(&hs);
    hs.sum = strutil_stale_nan();
    char e[256];
    assert_int_equal(nhist_validate(&hi, e, sizeof e), 0);
    assert_int_equal(nhist_validate(&hf, e, sizeof e), 0);
    assert_int_equal(nhist_validate(&hc, e, sizeof e), 0);

    const char *kv[] = {"__name__", "lat_seconds"};
    labels *ls = mk(1, kv);
    rwproto_hsample hsv[] = {{100, hi}, {200, hf}, {300, hc}, {400, hs}};
    const char *ekv[] = {"trace_id", "abc", "span_id", "x"};
    labels *els = mk(2, ekv);
    rwproto_exemplar ex[] = {{els, 150, 0.75}, {NULL, 0, -1}};
    rwproto_sample fl[] = {{50, 1}};
    rwproto_series ser = {.ls = ls,
                          .samples = fl,
                          .n_samples = 1,
                          .hists = hsv,
                          .n_hists = 4,
                          .exemplars = ex,
                          .n_exemplars = 2};
    rwproto_metadata md[] = {{"lat_seconds", "Latency.", "seconds", EXPFMT_HISTOGRAM},
                             {"up", "", "", EXPFMT_GAUGE},
                             {"info_x", NULL, NULL, EXPFMT_INFO}};
    rwproto_request r = {.series = &ser, .n_series = 1, .metadata = md, .n_metadata = 3};
    buf body;
    enc(&r, &body);

    rwproto_request got;
    decode_ok(&body, &got);
    assert_int_equal(got.n_series, 1);
    rwproto_series *g = &got.series[0];
    assert_labels(g->ls, ls);
    assert_int_equal(g->n_samples, 1);
    assert_int_equal(g->n_hists, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(g->hists[i].t, hsv[i].t);
        assert_hist_equal(&g->hists[i].h, &hsv[i].h);
    }
    assert_true(nhist_is_stale(&g->hists[3].h));
    assert_int_equal(g->n_exemplars, 2);
    assert_labels(g->exemplars[0].ls, els);
    assert_int_equal(g->exemplars[0].t, 150);
    assert_true(g->exemplars[0].v == 0.75);
    assert_int_equal(g->exemplars[1].ls->n, 0);
    assert_true(g->exemplars[1].v == -1);
    assert_int_equal(got.n_metadata, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(got.metadata[i].metric, md[i].metric);
        assert_string_equal(got.metadata[i].help, md[i].help ? md[i].help : "");
        assert_string_equal(got.metadata[i].unit, md[i].unit ? md[i].unit : "");
        assert_int_equal(got.metadata[i].type, md[i].type);
    }
    rwproto_request_cleanup(&got);

    /* Every metadata type survives. */
    for (int t = EXPFMT_UNKNOWN; t <= EXPFMT_STATESET; t++) {
        rwproto_metadata m = {"m", "h", "u", (enum expfmt_type)t};
        rwproto_request rm = {.metadata = &m, .n_metadata = 1};
        buf b2;
        enc(&rm, &b2);
        decode_ok(&b2, &got);
        assert_int_equal(got.n_metadata, 1);
        assert_int_equal(got.metadata[0].type, t);
        rwproto_request_cleanup(&got);
        buf_cleanup(&b2);
    }
    labels_free(ls), labels_free(els);
    buf_cleanup(&body);
}

/* The empty request is valid both ways (Prometheus sends none, but a
 * receiver must accept it). */
static void test_empty(void **state)
{
    (void)state;
    rwproto_request r = {0}, got;
    buf body;
    enc(&r, &body);
    decode_ok(&body, &got);
    assert_int_equal(got.n_series, 0);
    assert_int_equal(got.n_metadata, 0);
    rwproto_request_cleanup(&got);
    buf_cleanup(&body);
}

/* The encoder honours out's cap. */
static void test_encode_cap(void **state)
{
    (void)state;
    const char *kv[] = {"__name__", "some_rather_long_metric_name_for_the_test"};
    labels *ls = mk(1, kv);
    rwproto_sample s[64];
    for (int i = 0; i < 64; i++)
        s[i] = (rwproto_sample){i * 1000, (double)i * 1.37};
    rwproto_series ser = {.ls = ls, .samples = s, .n_samples = 64};
    rwproto_request r = {.series = &ser, .n_series = 1};
    buf out, err;
    buf_init(&out, 16);
    buf_init(&err, 4096);
    buf_puts(&out, "old");
    assert_int_equal(rwproto_encode(&r, &out, &err), -E2BIG);
    assert_non_null(strstr(buf_cstr(&err), "exceeds the limit"));
    buf_cleanup(&out), buf_cleanup(&err);
    labels_free(ls);
}

/* Appends a snappy block holding `raw` as literals (up to 60 bytes each). */
static void snappy_literal(buf *out, const void *raw, size_t n)
{
    size_t v = n;
    do {
        unsigned char c = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) c |= 0x80;
        buf_putc(out, (char)c);
    } while (v);
    const unsigned char *p = raw;
    while (n > 0) {
        size_t k = n > 60 ? 60 : n;
        buf_putc(out, (char)((k - 1) << 2));
        buf_append(out, p, k);
        p += k, n -= k;
    }
}

static void test_bad_snappy(void **state)
{
    (void)state;
    const char *kv[] = {"__name__", "up"};
    labels *ls = mk(1, kv);
    rwproto_sample s[] = {{1, 1}, {2, 2}, {3, 3}};
    rwproto_series ser = {.ls = ls, .samples = s, .n_samples = 3};
    rwproto_request r = {.series = &ser, .n_series = 1};
    buf body;
    enc(&r, &body);

    expect_bad("", 0, 0, "snappy: corrupt input");
    /* Truncated. */
    expect_bad(body.data, body.len - 3, 0, "snappy: corrupt input");
    expect_bad(body.data, 1, 0, "snappy: corrupt input");
    /* Declared length bigger than what the block holds. */
    buf lie;
    buf_init(&lie, BUF_UNLIMITED);
    buf_putc(&lie, (char)(body.data[0] + 5)); /* small bodies: one varint byte */
    assert_true((unsigned char)body.data[0] < 0x7b);
    buf_append(&lie, body.data + 1, body.len - 1);
    expect_bad(lie.data, lie.len, 0, "snappy: corrupt input");
    /* A gzip body (wrong compression). */
    const unsigned char gz[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
                                0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    expect_bad(gz, sizeof gz, 0, "snappy");
    /* A back reference before the start of the output. */
    const unsigned char backref[] = {0x04, 0x01, 0x05, 0x10};
    expect_bad(backref, sizeof backref, 0, "snappy: corrupt input");
    /* Claimed size over the cap (the data is never looked at). */
    const unsigned char big[] = {0x80, 0x80, 0x80, 0x14}; /* 40 MiB */
    expect_bad(big, sizeof big, 0, "decompressed size 40 MiB exceeds the limit of 32 MiB");
    /* A real body over a small cap. */
    char want[96];
    snprintf(want, sizeof want, "exceeds the limit of %zu bytes", (size_t)10);
    expect_bad(body.data, body.len, 10, want);
    buf_cleanup(&lie);
    buf_cleanup(&body);
    labels_free(ls);
}

static void test_bad_protobuf(void **state)
{
    (void)state;
    struct {
        const char *raw;
        size_t len;
    } cases[] = {
        {"\x0a\x05\x0a\x03", 4}, /* timeseries field longer than the message */
        {"\xff\xff\xff", 3},     /* bad tag varint */
        {"\x0b", 1},             /* start group (wire type 3) */
        {"\x0a\x02\x12\x09", 4}, /* nested sample length past the end */
        {"\x0f\x00", 2},         /* wire type 7 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        snappy_literal(&b, cases[i].raw, cases[i].len);
        expect_bad(b.data, b.len, 0, "protobuf: cannot decode the WriteRequest");
        buf_cleanup(&b);
    }
    /* An uncompressed protobuf body (Content-Encoding missing): its first
     * byte (0x0a) is read as a length of 10 and the rest is no block. */
    const char raw[] = "\x0a\x0c\x0a\x0a\x0a\x08__name__";
    expect_bad(raw, sizeof raw - 1, 0, "snappy: corrupt input");

    /* And a hand-made valid one decodes (so the cases above fail for the
     * reason they claim): one series {__name__="up"} with sample (2, 5). */
    const unsigned char ok[] = {0x0a, 0x1d, 0x0a, 0x0e, 0x0a, 0x08, '_',  '_',  'n',  'a',  'm',
                                'e',  '_',  '_',  0x12, 0x02, 'u',  'p',  0x12, 0x0b, 0x09, 0,
                                0,    0,    0,    0,    0,    0x14, 0x40, 0x10, 0x02};
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    snappy_literal(&b, ok, sizeof ok);
    rwproto_request got;
    decode_ok(&b, &got);
    assert_int_equal(got.n_series, 1);
    assert_int_equal(got.series[0].n_samples, 1);
    assert_int_equal(got.series[0].samples[0].t, 2);
    assert_true(got.series[0].samples[0].v == 5);
    rwproto_request_cleanup(&got);
    buf_cleanup(&b);
}

static void test_bad_labels(void **state)
{
    (void)state;
    rwproto_sample s[] = {{1, 1}};
    struct {
        size_t n;
        const char *kv[8];
        const char *want;
    } cases[] = {
        {2, {"__name__", "up", "", "v"}, "series 1: label name \"\" is empty"},
        {2, {"__name__", "up", "job", "a"}, NULL}, /* fine */
        {2, {"job", "a", "__name__", "up"}, "series 1: labels not sorted"},
        {3, {"__name__", "up", "a", "1", "a", "2"}, "series 1: duplicate label name \"a\""},
        {1, {"job", "a"}, "series 1: no metric name"},
        {2, {"__name__", "", "job", "a"}, "series 1: no metric name"},
        {0, {NULL}, "series 1: no metric name"},
        {2, {"__name__", "up", "b\xff", "x"}, "series 1: label name is not valid UTF-8"},
        {2, {"__name__", "up", "b", "\xc0\xaf"}, "value of label \"b\" is not valid UTF-8"},
        {1, {"__name__", "caf\xc3\xa9.total"}, NULL}, /* UTF-8 names are fine */
    };
    const char *okkv[] = {"__name__", "fine"};
    labels *okls = mk(1, okkv);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        labels *ls = raw_labels(cases[i].n, cases[i].kv);
        rwproto_series ser[] = {{.ls = okls, .samples = s, .n_samples = 1},
                                {.ls = ls, .samples = s, .n_samples = 1}};
        rwproto_request r = {.series = ser, .n_series = 2};
        if (cases[i].want) {
            expect_bad_request(&r, cases[i].want);
        } else {
            buf body;
            rwproto_request got;
            enc(&r, &body);
            decode_ok(&body, &got);
            assert_int_equal(got.n_series, 2);
            rwproto_request_cleanup(&got);
            buf_cleanup(&body);
        }
        mem_free(ls);
    }

    /* Exemplar labels: empty name, duplicate name. */
    const char *e1[] = {"", "x"};
    const char *e2[] = {"a", "1", "a", "2"};
    labels *el1 = raw_labels(1, e1), *el2 = raw_labels(2, e2);
    rwproto_exemplar ex1 = {el1, 1, 1}, ex2 = {el2, 1, 1};
    rwproto_series ser1 = {.ls = okls, .exemplars = &ex1, .n_exemplars = 1};
    rwproto_request r1 = {.series = &ser1, .n_series = 1};
    expect_bad_request(&r1, "series 0: label name \"\" is empty");
    rwproto_series ser2 = {.ls = okls, .exemplars = &ex2, .n_exemplars = 1};
    rwproto_request r2 = {.series = &ser2, .n_series = 1};
    expect_bad_request(&r2, "series 0: exemplar 0: duplicate label name \"a\"");
    mem_free(el1), mem_free(el2);
    labels_free(okls);
}

static void test_bad_timestamps(void **state)
{
    (void)state;
    const char *kv[] = {"__name__", "up"};
    labels *ls = mk(1, kv);
    rwproto_sample s[] = {{1000, 1}, {3000, 2}, {2000, 3}};
    rwproto_series ser = {.ls = ls, .samples = s, .n_samples = 3};
    rwproto_request r = {.series = &ser, .n_series = 1};
    expect_bad_request(&r, "series 0: sample timestamps out of order (2000 after 3000)");

    /* Equal timestamps are left to the store (duplicates are counted). */
    s[2].t = 3000;
    buf body;
    rwproto_request got;
    enc(&r, &body);
    decode_ok(&body, &got);
    assert_int_equal(got.series[0].n_samples, 3);
    rwproto_request_cleanup(&got);
    buf_cleanup(&body);

    nhist h;
    nhist_init(&h);
    rwproto_hsample hs[] = {{20, h}, {10, h}};
    rwproto_series hser = {.ls = ls, .hists = hs, .n_hists = 2};
    rwproto_request hr = {.series = &hser, .n_series = 1};
    expect_bad_request(&hr, "series 0: histogram timestamps out of order (10 after 20)");
    labels_free(ls);
}

static void test_bad_histograms(void **state)
{
    (void)state;
    const char *kv[] = {"__name__", "h"};
    labels *ls = mk(1, kv);
    nhist_span sp[] = {{0, 2}};
    double c2[] = {1, 2}, cv[] = {1, 0.5};
    struct {
        nhist h;
        const char *want;
    } cases[] = {
        /* spans cover 2 buckets, 1 given */
        {{.count = 1, .pos_spans = sp, .n_pos_spans = 1, .pos = c2, .n_pos = 1}, "histogram 0: "},
        /* count lower than the buckets */
        {{.count = 1, .pos_spans = sp, .n_pos_spans = 1, .pos = c2, .n_pos = 2}, "histogram 0: "},
        /* schema out of range */
        {{.schema = 9}, "histogram 0: "},
        /* custom values not increasing */
        {{.schema = NHIST_CUSTOM_SCHEMA, .custom_values = cv, .n_custom_values = 2},
         "histogram 0: "},
        /* float: negative count */
        {{.is_float = true,
          .count = 2,
          .pos_spans = sp,
          .n_pos_spans = 1,
          .pos = (double[]){-1, 3},
          .n_pos = 2},
         "histogram 0: "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char msg[256];
        assert_int_not_equal(nhist_validate(&cases[i].h, msg, sizeof msg), 0);
        char want[400];
        snprintf(want, sizeof want, "series 0: %s%s", cases[i].want, msg);
        rwproto_hsample hs = {5, cases[i].h};
        rwproto_series ser = {.ls = ls, .hists = &hs, .n_hists = 1};
        rwproto_request r = {.series = &ser, .n_series = 1};
        expect_bad_request(&r, want);
    }
    /* Integer deltas summing below zero: a negative bucket count. */
    double neg_abs[] = {2, -1};
    nhist hn = {.count = 2, .pos_spans = sp, .n_pos_spans = 1, .pos = neg_abs, .n_pos = 2};
    rwproto_hsample hs = {5, hn};
    rwproto_series ser = {.ls = ls, .hists = &hs, .n_hists = 1};
    rwproto_request r = {.series = &ser, .n_series = 1};
    expect_bad_request(&r, "series 0: histogram 0: ");
    labels_free(ls);
}

/* The fuzz seeds (tests/data/fuzz-seeds/rwproto, written from the wire
 * format by hand: a mode byte, then a snappy body (0) or a raw
 * WriteRequest (1)) all decode, with the series and samples they hold. */
static void test_seed_files(void **state)
{
    (void)state;
    const char *dir = "tests/data/fuzz-seeds/rwproto";
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    size_t n_files = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len = 0;
        char *data = tu_read_file(path, &len);
        assert_non_null(data);
        assert_true(len > 1);
        buf body;
        buf_init(&body, BUF_UNLIMITED);
        if (data[0] & 1)
            snappy_literal(&body, data + 1, len - 1);
        else
            buf_append(&body, data + 1, len - 1);
        rwproto_request got;
        buf err;
        buf_init(&err, 4096);
        int rc = rwproto_decode(body.data, body.len, 0, &got, &err);
        if (rc != 0) fail_msg("%s: %s", path, buf_cstr(&err));
        assert_true(got.n_series > 0);
        size_t points = 0;
        for (size_t i = 0; i < got.n_series; i++)
            points += got.series[i].n_samples + got.series[i].n_hists;
        assert_true(points > 0);
        if (strstr(e->d_name, "hists")) {
            assert_int_equal(got.series[0].n_hists, 3);
            assert_true(got.series[0].hists[1].h.is_float);
            assert_int_equal(got.series[0].hists[2].h.schema, NHIST_CUSTOM_SCHEMA);
            assert_int_equal(got.series[0].n_exemplars, 1);
            assert_int_equal(got.n_metadata, 1);
            assert_int_equal(got.metadata[0].type, EXPFMT_COUNTER);
        }
        rwproto_request_cleanup(&got);
        buf_cleanup(&err), buf_cleanup(&body);
        free(data);
        n_files++;
    }
    closedir(d);
    assert_true(n_files >= 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_floats_round_trip),
        cmocka_unit_test(test_histograms_round_trip),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_encode_cap),
        cmocka_unit_test(test_bad_snappy),
        cmocka_unit_test(test_bad_protobuf),
        cmocka_unit_test(test_bad_labels),
        cmocka_unit_test(test_bad_timestamps),
        cmocka_unit_test(test_bad_histograms),
        cmocka_unit_test(test_seed_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
