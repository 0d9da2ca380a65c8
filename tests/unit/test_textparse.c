/* Unit and conformance tests for exporter/textparse: the Prometheus text
 * format and OpenMetrics parsers must match Prometheus 3.14's
 * model/textparse entry for entry and error message for error message.
 *
 * Data:
 *   ../shared/conformance/exposition/  upstream inputs and error tables
 *   tests/data/exposition/NAME.expected one file per parsed input: the entries
 *                                      we expect, written from the
 *                                      expectations in Prometheus's
 *                                      promparse_test.go/openmetricsparse_test.go
 *                                      (or by hand for our own inputs). */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>

#include "expfmt.h"
#include "textparse.h"

#define DATA_DIR "tests/data/exposition"

/* ---- a small growable string for dumps ------------------------------------ */

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

static void sb_str(sbuf *b, const char *s)
{
    sbuf_sink(b, s, strlen(s));
}

static void sb_fmt(sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sbuf_sink(b, tmp, (size_t)n);
}

static void sb_quote(sbuf *b, const char *s, size_t n)
{
    expfmt_quote_go(sbuf_sink, b, s, n);
}

/* Quotes a view after decoding its escapes. */
static void sb_quote_unescaped(sbuf *b, textparse_str s, bool help_prom)
{
    sbuf tmp = {0};
    sbuf_sink(&tmp, "", 0);
    assert_int_equal(textparse_unescape(s, help_prom, sbuf_sink, &tmp), 0);
    sb_quote(b, tmp.p, tmp.len);
    free(tmp.p);
}

static void sb_float(sbuf *b, double v)
{
    if (isnan(v)) {
        uint64_t bits;
        memcpy(&bits, &v, sizeof bits);
        /* Prometheus normalises every NaN to value.NormalNaN. */
        if (bits == 0x7ff8000000000001ULL)
            sb_str(b, "NaN");
        else
            sb_fmt(b, "NaN(bits=%016llx)", (unsigned long long)bits);
        return;
    }
    char out[EXPFMT_FLOAT_MAX];
    expfmt_format_float(v, out);
    sb_str(b, out);
}

/* One line per entry (format described in tests/data/exposition/README). */
static void dump_entry(sbuf *b, textparse *p, enum textparse_entry e)
{
    bool prom = p->format == TEXTPARSE_PROMETHEUS;
    textparse_str s, n, v;
    switch (e) {
    case TEXTPARSE_HELP:
        s = textparse_meta_name(p);
        sb_str(b, "help ");
        sb_quote(b, s.p, s.len);
        sb_str(b, " ");
        sb_quote_unescaped(b, textparse_meta_text(p), prom);
        break;
    case TEXTPARSE_TYPE:
        s = textparse_meta_name(p);
        sb_str(b, "type ");
        sb_quote(b, s.p, s.len);
        sb_str(b, " ");
        sb_str(b, expfmt_type_name(textparse_meta_type(p)));
        break;
    case TEXTPARSE_UNIT:
        s = textparse_meta_name(p);
        sb_str(b, "unit ");
        sb_quote(b, s.p, s.len);
        sb_str(b, " ");
        s = textparse_meta_text(p);
        sb_quote(b, s.p, s.len);
        break;
    case TEXTPARSE_COMMENT:
        s = textparse_meta_text(p);
        sb_str(b, "comment ");
        sb_quote(b, s.p, s.len);
        break;
    case TEXTPARSE_SERIES: {
        s = textparse_series(p);
        sb_str(b, "series ");
        sb_quote(b, s.p, s.len);
        sb_str(b, " name=");
        sb_quote_unescaped(b, textparse_metric_name(p), false);
        for (size_t i = 0; i < textparse_label_count(p); i++) {
            textparse_label(p, i, &n, &v);
            sb_str(b, " ");
            sb_quote_unescaped(b, n, false);
            sb_str(b, "=");
            char norm[EXPFMT_FLOAT_MAX];
            size_t nl = 0;
            if (textparse_label_normalized(p, i, norm, &nl))
                sb_quote(b, norm, nl);
            else
                sb_quote_unescaped(b, v, false);
        }
        sb_str(b, " value=");
        sb_float(b, textparse_value(p));
        int64_t ts;
        if (textparse_timestamp(p, &ts)) sb_fmt(b, " ts=%lld", (long long)ts);
        if (textparse_has_exemplar(p)) {
            sb_str(b, " exemplar={");
            for (size_t i = 0; i < textparse_exemplar_label_count(p); i++) {
                textparse_exemplar_label(p, i, &n, &v);
                /* Prometheus keeps exemplar labels as written. */
                assert_false(n.escaped || v.escaped);
                if (i) sb_str(b, ",");
                sb_quote(b, n.p, n.len);
                sb_str(b, "=");
                sb_quote(b, v.p, v.len);
            }
            sb_str(b, "} value=");
            sb_float(b, textparse_exemplar_value(p));
            if (textparse_exemplar_timestamp(p, &ts)) sb_fmt(b, " ts=%lld", (long long)ts);
        }
        break;
    }
    default:
        break;
    }
    sb_str(b, "\n");
}

/* Parses data to the end; returns the dump, ending in "end" or
 * "error <message> at <line>:<col>". Caller frees. */
static char *dump_parse(enum textparse_format f, const char *data, size_t len)
{
    sbuf b = {0};
    textparse p;
    textparse_init(&p, f, data, len);
    for (;;) {
        enum textparse_entry e = textparse_next(&p);
        if (e == TEXTPARSE_END) {
            sb_str(&b, "end\n");
            break;
        }
        if (e == TEXTPARSE_ERROR) {
            sb_str(&b, "error ");
            const char *msg = textparse_error(&p);
            sb_quote(&b, msg, strlen(msg));
            sb_fmt(&b, " at %zu:%zu\n", textparse_error_line(&p), textparse_error_column(&p));
            break;
        }
        dump_entry(&b, &p, e);
    }
    /* Sticky end state. */
    enum textparse_entry again = textparse_next(&p);
    assert_true(again == TEXTPARSE_END || again == TEXTPARSE_ERROR);
    textparse_cleanup(&p);
    return b.p;
}

/* Runs the parser to END/ERROR; returns the error message (caller frees) or
 * NULL at a clean end. */
static char *parse_err(enum textparse_format f, const char *data, size_t len)
{
    textparse p;
    textparse_init(&p, f, data, len);
    enum textparse_entry e;
    do
        e = textparse_next(&p);
    while (e != TEXTPARSE_END && e != TEXTPARSE_ERROR);
    char *r = e == TEXTPARSE_ERROR ? strdup(textparse_error(&p)) : NULL;
    assert_int_equal(textparse_next(&p), e);
    textparse_cleanup(&p);
    return r;
}

static void print_bytes(const char *label, const char *s, size_t n)
{
    sbuf b = {0};
    sb_quote(&b, s, n);
    print_message("    %s %s\n", label, b.p);
    free(b.p);
}

/* ---- conformance: error tables --------------------------------------------- */

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Standard base64 with padding. Returns a malloc'd buffer (NUL-terminated
 * for convenience) and its length. */
static char *b64decode(const char *s, size_t *out_len)
{
    size_t n = strlen(s);
    char *out = malloc(n / 4 * 3 + 4);
    assert_non_null(out);
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=') break;
        int v = b64val((unsigned char)s[i]);
        assert_true(v >= 0);
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xFF);
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

static void run_error_table(const char *rel, enum textparse_format f)
{
    char path[4096];
    tu_shared_path(path, sizeof path, rel);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) fail_msg("cannot read %s: %s", path, jerr.text);
    json_t *cases = json_object_get(root, "cases");
    assert_true(json_is_array(cases));
    size_t total = json_array_size(cases), failed = 0;
    assert_true(total > 0);
    for (size_t i = 0; i < total; i++) {
        json_t *c = json_array_get(cases, i);
        const char *b64 = json_string_value(json_object_get(c, "input_b64"));
        const char *want = json_string_value(json_object_get(c, "err"));
        assert_non_null(b64);
        assert_non_null(want);
        size_t len = 0;
        char *in = b64decode(b64, &len);
        char *got = parse_err(f, in, len);
        /* For OpenMetrics "EOF" means the input parses cleanly. */
        bool ok = (f == TEXTPARSE_OPENMETRICS && strcmp(want, "EOF") == 0)
                      ? got == NULL
                      : got && !strcmp(got, want);
        if (!ok) {
            failed++;
            print_message("FAIL %s case %zu\n", rel, i);
            print_bytes("input:   ", in, len);
            print_message("    expected: %s\n", want);
            print_message("    got:      %s\n", got ? got : "(no error)");
        }
        free(got);
        free(in);
    }
    print_message("%s: %zu cases, %zu passed, %zu failed\n", rel, total, total - failed, failed);
    json_decref(root);
    assert_int_equal(failed, 0);
}

static void test_promparse_errors(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("conformance/exposition/promparse-errors.json");
    run_error_table("conformance/exposition/promparse-errors.json", TEXTPARSE_PROMETHEUS);
}

static void test_omparse_errors(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("conformance/exposition/omparse-errors.json");
    run_error_table("conformance/exposition/omparse-errors.json", TEXTPARSE_OPENMETRICS);
}

/* ---- conformance: every input file parses to the end ---------------------- */

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

static void test_conformance_inputs(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("conformance/exposition");
    char dir[4096];
    tu_shared_path(dir, sizeof dir, "conformance/exposition");
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t files = 0, failed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        enum textparse_format f;
        if (has_suffix(de->d_name, ".prom.txt") || !strcmp(de->d_name, "metrics-test.prom"))
            f = TEXTPARSE_PROMETHEUS;
        else if (has_suffix(de->d_name, ".om.txt"))
            f = TEXTPARSE_OPENMETRICS;
        else
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len = 0;
        char *data = tu_read_file(path, &len);
        assert_non_null(data);
        files++;
        textparse p;
        textparse_init(&p, f, data, len);
        size_t series = 0;
        enum textparse_entry e;
        while ((e = textparse_next(&p)) != TEXTPARSE_END && e != TEXTPARSE_ERROR) {
            if (e == TEXTPARSE_SERIES) series++;
        }
        if (e == TEXTPARSE_ERROR) {
            failed++;
            print_message("FAIL %s: %s at %zu:%zu\n", de->d_name, textparse_error(&p),
                          textparse_error_line(&p), textparse_error_column(&p));
        } else {
            print_message("ok   %s: %zu series\n", de->d_name, series);
        }
        /* promtool check metrics counts 27 series here. */
        if (!strcmp(de->d_name, "metrics-test.prom") && series != 27) {
            failed++;
            print_message("FAIL metrics-test.prom: %zu series, want 27\n", series);
        }
        textparse_cleanup(&p);
        free(data);
    }
    closedir(d);
    print_message("conformance inputs: %zu files, %zu failed\n", files, failed);
    assert_true(files >= 7);
    assert_int_equal(failed, 0);
}

/* ---- expected outputs (tests/data/exposition/NAME.expected) --------------- */

/* Each .expected file starts with "input <path>" (a path under ../shared
 * when it starts with "shared:", else relative to the repository root) and
 * "format prometheus|openmetrics"; the remaining lines are the dump. */
static bool check_expected_file(const char *name, bool *skipped)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", DATA_DIR, name);
    size_t elen = 0;
    char *exp = tu_read_file(path, &elen);
    assert_non_null(exp);
    char input[2048] = "", fmt[64] = "";
    char *body = exp;
    for (int k = 0; k < 2; k++) {
        char *nl = strchr(body, '\n');
        assert_non_null(nl);
        *nl = '\0';
        if (!strncmp(body, "input ", 6))
            snprintf(input, sizeof input, "%s", body + 6);
        else if (!strncmp(body, "format ", 7))
            snprintf(fmt, sizeof fmt, "%s", body + 7);
        body = nl + 1;
    }
    assert_true(input[0] && fmt[0]);
    char ipath[4096];
    if (!strncmp(input, "shared:", 7))
        tu_shared_path(ipath, sizeof ipath, input + 7);
    else
        snprintf(ipath, sizeof ipath, "%s", input);
    size_t len = 0;
    char *data = tu_read_file(ipath, &len);
    if (!data && !strncmp(input, "shared:", 7)) {
        *skipped = true;
        free(exp);
        return true;
    }
    if (!data) fail_msg("%s: cannot read input %s", name, ipath);
    enum textparse_format f =
        !strcmp(fmt, "openmetrics") ? TEXTPARSE_OPENMETRICS : TEXTPARSE_PROMETHEUS;
    char *got = dump_parse(f, data, len);
    bool ok = !strcmp(got, body);
    if (!ok) {
        print_message("FAIL %s (input %s)\n", name, input);
        /* First differing line. */
        const char *a = body, *b = got;
        for (int line = 3;; line++) {
            const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
            size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
            if (la != lb || memcmp(a, b, la)) {
                print_message("    line %d\n    expected: %.*s\n    got:      %.*s\n", line,
                              (int)la, a, (int)lb, b);
                break;
            }
            if (!ea || !eb) break;
            a = ea + 1;
            b = eb + 1;
        }
    }
    free(got);
    free(data);
    free(exp);
    return ok;
}

static void test_expected_outputs(void **state)
{
    (void)state;
    DIR *d = opendir(DATA_DIR);
    assert_non_null(d);
    size_t total = 0, failed = 0, skipped = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!has_suffix(de->d_name, ".expected")) continue;
        total++;
        bool skip = false;
        if (!check_expected_file(de->d_name, &skip)) failed++;
        if (skip) {
            skipped++;
            print_message("SKIPPED %s: conformance data not found\n", de->d_name);
        }
    }
    closedir(d);
    print_message("expected outputs: %zu files, %zu failed, %zu skipped\n", total, failed, skipped);
    assert_true(total >= 5);
    if (skipped && getenv("CI") && *getenv("CI")) fail_msg("conformance data missing");
    assert_int_equal(failed, 0);
}

/* ---- error messages and positions of our own cases ------------------------ */

struct err_case {
    enum textparse_format f;
    const char *in;
    size_t len;
    const char *err; /* NULL: parses cleanly */
    size_t line, col;
};

#define PROM TEXTPARSE_PROMETHEUS
#define OM TEXTPARSE_OPENMETRICS
#define IN(s) s, sizeof(s) - 1

static void test_error_cases(void **state)
{
    (void)state;
    static const struct err_case cases[] = {
        /* TestPromNullByteHandling */
        {PROM, IN("null_byte_metric{a=\"abc\x00\"} 1"), NULL, 0, 0},
        {PROM, IN("a{b=\"\x00ss\"} 1\n"), NULL, 0, 0},
        {PROM, IN("a{b=\"\x00\"} 1\n"), NULL, 0, 0},
        {PROM, IN("a{b=\x00\"ssss\"} 1\n"),
         "expected label value, got \"\\x00\" (\"INVALID\") while parsing: \"a{b=\\x00\"", 1, 5},
        {PROM, IN("a{b=\"\x00"),
         "expected label value, got \"\\\"\\x00\\n\" (\"INVALID\") while parsing: "
         "\"a{b=\\\"\\x00\\n\"",
         1, 7},
        {PROM, IN("a{b\x00=\"hiih\"}\t1"),
         "expected equal, got \"\\x00\" (\"INVALID\") while parsing: \"a{b\\x00\"", 1, 4},
        {PROM, IN("a\x00{b=\"ddd\"} 1"),
         "expected value after metric, got \"\\x00\" (\"INVALID\") while parsing: \"a\\x00\"", 1,
         2},
        {PROM, IN("a 0 1\x00"),
         "expected next entry after timestamp, got \"\\x00\" (\"INVALID\") while parsing: "
         "\"a 0 1\\x00\"",
         1, 6},
        /* TestOMNullByteHandling */
        {OM, IN("null_byte_metric{a=\"abc\x00\"} 1\n# EOF\n"), NULL, 0, 0},
        {OM, IN("a{b=\"\x00ss\"} 1\n# EOF\n"), NULL, 0, 0},
        {OM, IN("a{b=\"\x00\"} 1\n# EOF\n"), NULL, 0, 0},
        {OM, IN("a{b=\"\x00\"} 1\n# EOF"), NULL, 0, 0},
        {OM, IN("a{b=\x00\"ssss\"} 1\n# EOF\n"),
         "expected label value, got \"\\x00\" (\"INVALID\") while parsing: \"a{b=\\x00\"", 1, 5},
        {OM, IN("a{b=\"\x00"),
         "expected label value, got \"\\\"\\x00\" (\"INVALID\") while parsing: \"a{b=\\\"\\x00\"",
         1, 7},
        {OM, IN("a{b\x00=\"hiih\"}\t1"),
         "expected equal, got \"\\x00\" (\"INVALID\") while parsing: \"a{b\\x00\"", 1, 4},
        {OM, IN("a\x00{b=\"ddd\"} 1"),
         "expected value after metric, got \"\\x00\" (\"INVALID\") while parsing: \"a\\x00\"", 1,
         2},
        {OM, IN("#"), "expected a valid start token, got \"#\" (\"INVALID\") while parsing: \"#\"",
         1, 2},
        {OM, IN("# H"),
         "expected a valid start token, got \"# H\" (\"INVALID\") while parsing: \"# H\"", 1, 4},
        {OM, IN("custom_metric_total 1 # {b=\x00\"ssss\"} 1\n"),
         "expected label value, got \"\\x00\" (\"INVALID\") while parsing: "
         "\"custom_metric_total 1 # {b=\\x00\"",
         1, 28},
        {OM, IN("custom_metric_total 1 # {b=\"\x00ss\"} 1\n"),
         "expected label value, got \"\\\"\\x00\" (\"INVALID\") while parsing: "
         "\"custom_metric_total 1 # {b=\\\"\\x00\"",
         1, 29},
        /* TestPromParseBareIdentifierInBraces / the OpenMetrics twin. */
        {PROM, IN("{A} 0\n"), "expected equal, got \"} \" (\"BCLOSE\") while parsing: \"{A} \"", 1,
         4},
        {OM, IN("{A} 0\n# EOF\n"),
         "expected equal, got \"} \" (\"BCLOSE\") while parsing: \"{A} \"", 1, 4},
        /* Positions are 1-based line and byte column of where parsing stopped. */
        {PROM, IN("a 1\nb 2\nc{x=y} 3\n"),
         "expected label value, got \"y\" (\"INVALID\") while parsing: \"c{x=y\"", 3, 5},
        {OM, IN("a 1\nb 2\n"), "data does not end with # EOF", 3, 1},
        /* Quoted names: a second metric name, or one in an exemplar. */
        {PROM, IN("a{\"b\"} 1\n"), "metric name already set while parsing: \"a{\\\"b\\\"}\"", 1, 7},
        {OM, IN("{\"a\",\"b\"} 1\n# EOF\n"),
         "metric name already set while parsing: \"{\\\"a\\\",\\\"b\\\"}\"", 1, 10},
        {OM, IN("a 1 # {\"b\"} 1\n# EOF\n"),
         "expected label name, got \"} \" (\"BCLOSE\") while parsing: \"a 1 # {\\\"b\\\"} \"", 1,
         12},
        /* Timestamps: Go's int64 range (text), seconds -> ms (OpenMetrics). */
        {PROM, IN("a 1 9223372036854775807\n"), NULL, 0, 0},
        {PROM, IN("a 1 9223372036854775808\n"),
         "strconv.ParseInt: parsing \"9223372036854775808\": value out of range while parsing: "
         "\"a 1 9223372036854775808\"",
         1, 24},
        {PROM, IN("a 1e999\n"),
         "strconv.ParseFloat: parsing \"1e999\": value out of range while parsing: \"a 1e999\"", 1,
         8},
        {OM, IN("a 1 1e999\n# EOF\n"),
         "strconv.ParseFloat: parsing \"1e999\": value out of range while parsing: \"a 1 1e999\"",
         1, 10},
        /* Metadata. */
        {PROM, IN("# TYPE a gauge extra\n"), "invalid metric type \"gauge extra\"", 1, 21},
        {PROM, IN("# HELP a \xff\n"), "help text \"\\xff\" is not a valid utf8 string", 1, 11},
        {PROM, IN("# TYPE a\n"), "invalid metric type \"\"", 1, 9},
        {OM, IN("# HELP a \xff\n# EOF\n"), "help text \"\\xff\" is not a valid utf8 string", 2, 1},
        {OM, IN("# UNIT a_seconds seconds\n# EOF\n"), NULL, 0, 0},
        {OM, IN("# UNIT a_seconds bytes\n# EOF\n"),
         "unit \"bytes\" not a suffix of metric \"a_seconds\"", 2, 1},
        {OM, IN("# UNIT seconds seconds\n# EOF\n"),
         "unit \"seconds\" not a suffix of metric \"seconds\"", 2, 1},
        {OM, IN("# TYPE a counter\n# TYPE b bogus\n# EOF\n"), "invalid metric type \"bogus\"", 3,
         1},
        /* A value with a trailing blank: OpenMetrics returns the sample, then
         * fails on the dangling line break. */
        {OM, IN("a 1 \n# EOF\n"),
         "expected a valid start token, got \"\\n#\" (\"LINEBREAK\") while parsing: \"\\n#\"", 2,
         1},
        {OM, IN("a 1 # {} 2\n# EOF\n"), NULL, 0, 0},
        {OM, IN("a 1 # {} 2 3 4\n# EOF\n"),
         "expected next entry after exemplar timestamp, got \" 4\\n\" (\"TIMESTAMP\") while "
         "parsing: \"a 1 # {} 2 3 4\\n\"",
         1, 15},
        /* The text format accepts a NUL at a line start as the end. */
        {PROM, IN("a 1\n\x00garbage{"), NULL, 0, 0},
        {PROM, IN("# comment \x00 with nul\na 1\n"), NULL, 0, 0},
        {PROM, IN("#x\x00y\n!!!"), NULL, 0, 0},
        /* HELP/TYPE look-alikes are comments in the text format. */
        {PROM, IN("# HELPX a\n# TYPEa b\n#\tHELP a b\n"), NULL, 0, 0},
        {PROM, IN(""), NULL, 0, 0},
        {OM, IN(""), "data does not end with # EOF", 1, 1},
        {PROM, IN("\n\n   \n"), NULL, 0, 0},
        {PROM, IN("{\"a\" 1\n"),
         "expected equal, got \"1\" (\"INVALID\") while parsing: \"{\\\"a\\\" 1\"", 1, 6},
    };
    size_t failed = 0, n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++) {
        const struct err_case *c = &cases[i];
        textparse p;
        textparse_init(&p, c->f, c->in, c->len);
        enum textparse_entry e;
        do
            e = textparse_next(&p);
        while (e != TEXTPARSE_END && e != TEXTPARSE_ERROR);
        const char *got = e == TEXTPARSE_ERROR ? textparse_error(&p) : NULL;
        bool ok;
        if (!c->err)
            ok = !got;
        else
            ok = got && !strcmp(got, c->err) && textparse_error_line(&p) == c->line &&
                 textparse_error_column(&p) == c->col;
        if (!ok) {
            failed++;
            print_message("FAIL case %zu (%s)\n", i, c->f == PROM ? "text" : "openmetrics");
            print_bytes("input:   ", c->in, c->len);
            print_message("    expected: %s at %zu:%zu\n", c->err ? c->err : "(no error)", c->line,
                          c->col);
            if (got)
                print_message("    got:      %s at %zu:%zu\n", got, textparse_error_line(&p),
                              textparse_error_column(&p));
            else
                print_message("    got:      (no error)\n");
        }
        textparse_cleanup(&p);
    }
    print_message("error cases: %zu, %zu failed\n", n, failed);
    assert_int_equal(failed, 0);
}

/* A message longer than the inline buffer is kept whole (up to its cap). */
static void test_long_error(void **state)
{
    (void)state;
    size_t n = 3000;
    char *in = malloc(n + 8);
    assert_non_null(in);
    memset(in, 'a', n);
    memcpy(in + n, "{b=c}", 5);
    textparse p;
    textparse_init(&p, PROM, in, n + 5);
    assert_int_equal(textparse_next(&p), TEXTPARSE_ERROR);
    const char *msg = textparse_error(&p);
    assert_true(strlen(msg) > TEXTPARSE_ERROR_MAX);
    assert_non_null(
        strstr(msg, "expected label value, got \"c\" (\"INVALID\") while parsing: \"aaa"));
    assert_true(has_suffix(msg, "aaa{b=c\""));
    assert_int_equal(textparse_error_column(&p), n + 4);
    textparse_cleanup(&p);
    free(in);
}

/* ---- API details ------------------------------------------------------------- */

static void test_views_and_flags(void **state)
{
    (void)state;
    static const char in[] = "# HELP m a\\\\b\\nc\\\"d\n"
                             "# TYPE m histogram\n"
                             "m_bucket{\"l\\\"q\"=\"x\\ny\",le=\"1e3\"} 1\n"
                             "m_bucket{le=\"x\\\\\"} 2\n";
    textparse p;
    textparse_init(&p, PROM, in, sizeof in - 1);
    assert_int_equal(textparse_next(&p), TEXTPARSE_HELP);
    textparse_str t = textparse_meta_text(&p);
    assert_true(t.escaped);
    sbuf b = {0};
    assert_int_equal(textparse_unescape(t, true, sbuf_sink, &b), 0);
    /* Text-format HELP decodes \\ and \n only. */
    assert_string_equal(b.p, "a\\b\nc\\\"d");
    free(b.p);
    assert_false(textparse_meta_name(&p).escaped);
    assert_int_equal(textparse_next(&p), TEXTPARSE_TYPE);
    assert_int_equal(textparse_meta_type(&p), EXPFMT_HISTOGRAM);
    assert_false(textparse_meta_text(&p).escaped);
    assert_int_equal(textparse_next(&p), TEXTPARSE_SERIES);
    assert_int_equal(textparse_current_type(&p), EXPFMT_HISTOGRAM);
    assert_int_equal(textparse_label_count(&p), 2);
    textparse_str n, v;
    textparse_label(&p, 0, &n, &v);
    assert_true(n.escaped && v.escaped);
    assert_int_equal(n.len, 4); /* l\"q */
    char norm[EXPFMT_FLOAT_MAX];
    size_t nl = 0;
    assert_false(textparse_label_normalized(&p, 0, norm, &nl));
    assert_true(textparse_label_normalized(&p, 1, norm, &nl));
    assert_int_equal(nl, 6);
    assert_memory_equal(norm, "1000.0", 6);
    assert_false(textparse_has_exemplar(&p));
    assert_int_equal(textparse_next(&p), TEXTPARSE_SERIES);
    /* Escaped values never normalise (they cannot be floats). */
    assert_false(textparse_label_normalized(&p, 0, norm, &nl));
    assert_int_equal(textparse_next(&p), TEXTPARSE_END);
    assert_int_equal(textparse_next(&p), TEXTPARSE_END);
    textparse_cleanup(&p);
    textparse_cleanup(&p); /* idempotent */
}

/* le/quantile normalisation uses Go's full ParseFloat: hex floats and
 * underscores included, and -0 is "0.0". */
static void test_label_normalization(void **state)
{
    (void)state;
    static const struct {
        const char *v, *want; /* want NULL: left as written */
    } cases[] = {
        {"1", "1.0"},
        {"1.0", NULL},
        {"0", "0.0"},
        {"-0", "0.0"},
        {"+Inf", NULL},
        {"inf", "+Inf"},
        {"Infinity", "+Inf"},
        {"-inf", "-Inf"},
        {"nan", "NaN"},
        {"1e3", "1000.0"},
        {"1e6", "1e+06"},
        {"0.00001", "1e-05"},
        {"0x1p3", "8.0"},
        {"0x1.8p1", "3.0"},
        {"0x10", NULL},
        {"1_000", "1000.0"},
        {"1__0", NULL},
        {"_1", NULL},
        {"1_", NULL},
        {"0x_1p0", "1.0"},
        {"1e1_0", "1e+10"},
        {"abc", NULL},
        {"", NULL},
        {"1e999", NULL},
        {"0.1", NULL},
        {".5", "0.5"},
        {"5.", "5.0"},
        {"+1", "1.0"},
        {"123456", "123456.0"},
        {"1234567", "1.234567e+06"},
        {"0x1P-2", "0.25"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char in[128];
        int n = snprintf(in, sizeof in, "# TYPE h histogram\nh_bucket{le=\"%s\"} 1\n", cases[i].v);
        textparse p;
        textparse_init(&p, PROM, in, (size_t)n);
        assert_int_equal(textparse_next(&p), TEXTPARSE_TYPE);
        assert_int_equal(textparse_next(&p), TEXTPARSE_SERIES);
        char out[EXPFMT_FLOAT_MAX];
        size_t ol = 0;
        bool got = textparse_label_normalized(&p, 0, out, &ol);
        if (cases[i].want) {
            if (!got || ol != strlen(cases[i].want) || memcmp(out, cases[i].want, ol))
                fail_msg("le=%s: want %s, got %s", cases[i].v, cases[i].want,
                         got ? out : "(unchanged)");
        } else if (got) {
            fail_msg("le=%s: want unchanged, got %.*s", cases[i].v, (int)ol, out);
        }
        textparse_cleanup(&p);
    }
    /* Only le of histograms and quantile of summaries. */
    static const char in[] = "# TYPE s summary\ns{quantile=\"1\",le=\"1\"} 1\n"
                             "# TYPE c counter\nc{le=\"1\",quantile=\"1\"} 1\n";
    textparse p;
    textparse_init(&p, PROM, in, sizeof in - 1);
    char out[EXPFMT_FLOAT_MAX];
    size_t ol;
    assert_int_equal(textparse_next(&p), TEXTPARSE_TYPE);
    assert_int_equal(textparse_next(&p), TEXTPARSE_SERIES);
    assert_true(textparse_label_normalized(&p, 0, out, &ol));
    assert_false(textparse_label_normalized(&p, 1, out, &ol));
    assert_int_equal(textparse_next(&p), TEXTPARSE_TYPE);
    assert_int_equal(textparse_next(&p), TEXTPARSE_SERIES);
    assert_false(textparse_label_normalized(&p, 0, out, &ol));
    assert_false(textparse_label_normalized(&p, 1, out, &ol));
    textparse_cleanup(&p);
}

static void test_unescape(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        bool help;
        const char *want;
    } cases[] = {
        {"plain", false, "plain"},
        {"", false, ""},
        {"a\\\"b", false, "a\"b"},
        {"a\\\"b", true, "a\\\"b"}, /* text-format HELP keeps \" */
        {"a\\\\b", false, "a\\b"},
        {"a\\\\b", true, "a\\b"},
        {"a\\nb", false, "a\nb"},
        {"a\\nb", true, "a\nb"},
        {"\\\\n", false, "\\n"}, /* left to right, no overlap */
        {"\\\\\\n", false, "\\\n"},
        {"\\x\\t", false, "\\x\\t"}, /* unknown escapes stay */
        {"end\\", false, "end\\"},
        {"\\", false, "\\"},
        {"\\\\\\", false, "\\\\"},
        {"escape \\ \\n \\\\ \\\" \\x chars", false, "escape \\ \n \\ \" \\x chars"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        textparse_str s = {cases[i].in, strlen(cases[i].in), true};
        sbuf b = {0};
        sbuf_sink(&b, "", 0);
        assert_int_equal(textparse_unescape(s, cases[i].help, sbuf_sink, &b), 0);
        if (strcmp(b.p, cases[i].want))
            fail_msg("unescape(%s, help=%d) = %s, want %s", cases[i].in, cases[i].help, b.p,
                     cases[i].want);
        free(b.p);
    }
}

static int failing_sink(void *ctx, const char *p, size_t n)
{
    (void)p;
    (void)n;
    int *calls = ctx;
    ++*calls;
    return -ENOSPC;
}

static void test_unescape_sink_error(void **state)
{
    (void)state;
    int calls = 0;
    textparse_str s = {"a\\nb", 4, true};
    assert_int_equal(textparse_unescape(s, false, failing_sink, &calls), -ENOSPC);
    assert_int_equal(calls, 1);
}

static void test_content_type(void **state)
{
    (void)state;
    static const struct {
        const char *ct;
        int want; /* -1: -EINVAL */
    } cases[] = {
        {"text/plain", PROM},
        {"text/plain; version=0.0.4", PROM},
        {"text/plain; version=0.0.4; charset=utf-8", PROM},
        {"text/plain;version=1.0.0;charset=utf-8;escaping=underscores", PROM},
        {"TEXT/Plain; Version=0.0.4", PROM},
        {"  text/plain  ;  version = 0.0.4  ", PROM},
        {"text/plain; version=", -1},
        {"text/plain; version=\"\"", PROM},
        {"text/plain; charset=\"utf-8\"", PROM},
        {"text/plain;", PROM},
        {"text/plain; ; ", -1},
        {"text/plain; version", -1},
        {"text/plain; version=0.0.4 junk", -1},
        {"text/plain; version=1; VERSION=2", -1},
        {"text/plain; version=\"0.0.4", -1},
        {"text/plain\xc2\xa0; version=0.0.4", PROM}, /* U+00A0 is white space in Go */
        {"application/openmetrics-text", OM},
        {"application/openmetrics-text; version=1.0.0; charset=utf-8", OM},
        {"application/openmetrics-text; version=0.0.1", OM},
        {"Application/OpenMetrics-Text;version=1.0.0", OM},
        {"application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
         "encoding=delimited",
         -1},
        {"", -1},
        {"text/html", -1},
        {"text/plain/x", -1},
        {"text", -1},
        {"application/json", -1},
        {"text/plainx", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum textparse_format f = (enum textparse_format)42;
        int rc = textparse_format_from_content_type(cases[i].ct, &f);
        if (cases[i].want < 0) {
            if (rc != -EINVAL) fail_msg("%s: want -EINVAL, got %d (format %d)", cases[i].ct, rc, f);
        } else if (rc != 0 || (int)f != cases[i].want) {
            fail_msg("%s: want format %d, got rc %d format %d", cases[i].ct, cases[i].want, rc, f);
        }
    }
    enum textparse_format f;
    assert_int_equal(textparse_format_from_content_type(NULL, &f), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_promparse_errors),   cmocka_unit_test(test_omparse_errors),
        cmocka_unit_test(test_conformance_inputs), cmocka_unit_test(test_expected_outputs),
        cmocka_unit_test(test_error_cases),        cmocka_unit_test(test_long_error),
        cmocka_unit_test(test_views_and_flags),    cmocka_unit_test(test_label_normalization),
        cmocka_unit_test(test_unescape),           cmocka_unit_test(test_unescape_sink_error),
        cmocka_unit_test(test_content_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
