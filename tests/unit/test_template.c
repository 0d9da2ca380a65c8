/* Unit tests for template: the cases of Prometheus's template/template_test.go
 * that this data model can express (their inputs and expected outputs;
 * Go slices given to `range .` become `range (args ...)`, whose keys arg0..
 * arg9 iterate in the same order), Go text/template semantics (trim markers,
 * comments, scoping, control structures, printf verbs, value printing),
 * Go's error texts, the alert prefix ($labels, $value, $externalLabels,
 * $externalURL), `query` through a fake template_query_fn, and the limits.
 *
 * template_expand() prepends Prometheus's alert prefix, as Prometheus does,
 * so an execution error on line 1 reports the column in the joined text:
 * PFX (the prefix's length) plus the column Go reports for the bare text. */
#include "testutil.h"

#include <errno.h>
#include <math.h>

#include "buf.h"
#include "labels.h"
#include "mem.h"
#include "template.h"

#define PFX                                                                                        \
    ((int)strlen("{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}"                    \
                 "{{$externalURL := .ExternalURL}}{{$value := .Value}}"))

static labels *mk(const char *const *kv)
{
    labels_builder b;
    labels_builder_init(&b);
    for (size_t i = 0; kv && kv[i]; i += 2)
        labels_builder_set(&b, kv[i], strlen(kv[i]), kv[i + 1], strlen(kv[i + 1]));
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return ls;
}

/* ---- fake query function ---------------------------------------------------- */

typedef struct fake_sample {
    const char *kv[7];
    double v;
} fake_sample;

typedef struct fake_query {
    const fake_sample *s;
    size_t n;
    int calls;
    char last_expr[256];
    int64_t last_t;
    const char *fail; /* error message to return */
} fake_query;

static int fake_query_fn(void *ctx, const char *expr, int64_t t_ms, template_query_result *out,
                         buf *err)
{
    fake_query *q = ctx;
    q->calls++;
    snprintf(q->last_expr, sizeof q->last_expr, "%s", expr);
    q->last_t = t_ms;
    assert_int_equal(out->n, 0);
    if (q->fail) {
        buf_puts(err, q->fail);
        return -EINVAL;
    }
    out->v = mem_calloc(q->n ? q->n : 1, sizeof *out->v);
    out->n = q->n;
    for (size_t i = 0; i < q->n; i++) {
        out->v[i].metric = mk(q->s[i].kv);
        out->v[i].value = q->s[i].v;
    }
    return 0;
}

/* ---- helpers --------------------------------------------------------------------- */

typedef struct env {
    labels *ls, *ext;
    template_data d;
    fake_query q;
} env;

static void env_init(env *e)
{
    memset(e, 0, sizeof *e);
    const char *kv[] = {"instance", "foo:9090", "job", "node", "severity", "critical", NULL};
    const char *ext[] = {"cluster", "eu-1", NULL};
    e->ls = mk(kv);
    e->ext = mk(ext);
    e->d.labels = e->ls;
    e->d.external_labels = e->ext;
    e->d.value = 1234567.0;
    e->d.external_url = "http://testhost:9090/path/prefix";
    e->d.time_ms = 1353755652000LL; /* Prometheus's test time: 2012-11-24 11:14:12 */
    e->d.query = fake_query_fn;
    e->d.query_ctx = &e->q;
}

static void env_cleanup(env *e)
{
    labels_free(e->ls);
    labels_free(e->ext);
}

/* Expands; returns rc, output and error in caller-freed strings. */
static int run(const template_data *d, const char *text, char **out, char **err)
{
    buf o, e;
    buf_init(&o, BUF_UNLIMITED);
    buf_init(&e, BUF_UNLIMITED);
    int rc = template_expand("test", text, strlen(text), d, &o, &e);
    *out = buf_detach(&o, NULL);
    *err = buf_detach(&e, NULL);
    return rc;
}

static void expect_out(const template_data *d, const char *text, const char *want)
{
    char *out, *err;
    int rc = run(d, text, &out, &err);
    if (rc != 0 || strcmp(out, want) != 0)
        fail_msg("template %s\n  want: %s\n  got:  %s (rc %d, err %s)", text, want, out, rc, err);
    mem_free(out);
    mem_free(err);
}

/* want is the whole error text; a "%d" in it gets PFX + col. */
static void expect_err(const template_data *d, const char *text, const char *want_fmt, int col)
{
    char want[1024];
    snprintf(want, sizeof want, want_fmt, PFX + col);
    char *out, *err;
    int rc = run(d, text, &out, &err);
    if (rc != -EINVAL || strcmp(err, want) != 0)
        fail_msg("template %s\n  want error: %s\n  got:        %s (rc %d, out %s)", text, want, err,
                 rc, out);
    mem_free(out);
    mem_free(err);
}

/* ---- Prometheus's template_test.go ---------------------------------------------------- */

static void test_prometheus_cases(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    const template_data *d = &e.d;
    /* text mode: no HTML escaping; safeHtml passes through */
    expect_out(d, "{{ \"<b>\" }}", "<b>");
    expect_out(d, "{{ \"<b>\" | safeHtml }}", "<b>");
    expect_out(d, "{{define \"x\"}}{{.arg0}} {{.arg1}}{{end}}{{template \"x\" (args 1 \"2\")}}",
               "1 2");
    /* stripPort, stripDomain */
    static const char *const strip[][3] = {
        {"foo.example.com", "foo.example.com", "foo"},
        {"foo.example.com:12345", "foo.example.com", "foo:12345"},
        {"192.0.2.1", "192.0.2.1", "192.0.2.1"},
        {"192.0.2.1:12345", "192.0.2.1", "192.0.2.1:12345"},
        {"2001:0DB8::1", "2001:0DB8::1", "2001:0DB8::1"},
        {"[2001:0DB8::1]:12345", "2001:0DB8::1", "[2001:0DB8::1]:12345"},
        {"[2001:0DB8::1]::12345", "[2001:0DB8::1]::12345", "[2001:0DB8::1]::12345"},
    };
    for (size_t i = 0; i < sizeof strip / sizeof strip[0]; i++) {
        char t[256];
        snprintf(t, sizeof t, "{{ \"%s\" | stripPort }}", strip[i][0]);
        expect_out(d, t, strip[i][1]);
        snprintf(t, sizeof t, "{{ \"%s\" | stripDomain }}", strip[i][0]);
        expect_out(d, t, strip[i][2]);
    }
    expect_out(d, "{{ reReplaceAll \"(a)b\" \"x$1\" \"ab\" }}", "xa");
    /* humanize */
    expect_out(d, "{{ range (args 0.0 1.0 1234567.0 .12) }}{{ humanize . }}:{{ end }}",
               "0:1:1.235M:120m:");
    expect_out(d,
               "{{ range (args \"0.0\" \"1.0\" \"1234567.0\" \".12\") }}{{ humanize . }}:{{ end }}",
               "0:1:1.235M:120m:");
    expect_out(d, "{{ range (args 0 -1 1 1234567 9223372036854775807) }}{{ humanize . }}:{{ end }}",
               "0:-1:1:1.235M:9.223E:");
    expect_err(d, "{{ humanize \"one\" }}",
               "template: test:1:%d: executing \"test\" at <humanize \"one\">: error calling "
               "humanize: strconv.ParseFloat: parsing \"one\": invalid syntax",
               3);
    /* humanize1024 */
    expect_out(d, "{{ range (args 0.0 1.0 1048576.0 .12) }}{{ humanize1024 . }}:{{ end }}",
               "0:1:1Mi:0.12:");
    expect_out(
        d, "{{ range (args \"0.0\" \"1.0\" \"1048576.0\" \".12\") }}{{ humanize1024 . }}:{{ end }}",
        "0:1:1Mi:0.12:");
    expect_out(
        d, "{{ range (args 0 -1 1 1234567 9223372036854775807) }}{{ humanize1024 . }}:{{ end }}",
        "0:-1:1:1.177Mi:8Ei:");
    expect_err(d, "{{ humanize1024 \"one\" }}",
               "template: test:1:%d: executing \"test\" at <humanize1024 \"one\">: error calling "
               "humanize1024: strconv.ParseFloat: parsing \"one\": invalid syntax",
               3);
    /* humanizeDuration */
    expect_out(d,
               "{{ range (args 0 1 60 3600 86400 90000 -183845 899.99) }}{{ humanizeDuration . "
               "}}:{{ end }}",
               "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:");
    expect_out(d,
               "{{ range (args \"0\" \"1\" \"60\" \"3600\" \"86400\") }}{{ humanizeDuration . "
               "}}:{{ end }}",
               "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:");
    expect_out(d,
               "{{ range (args .1 .0001 .12345 60.1 60.5 1.2345 12.345) }}{{ humanizeDuration . "
               "}}:{{ end }}",
               "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:");
    expect_out(
        d,
        "{{ range (args \".1\" \".0001\" \".12345\" \"60.1\" \"60.5\" \"1.2345\" \"12.345\") }}"
        "{{ humanizeDuration . }}:{{ end }}",
        "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:");
    expect_out(d, "{{ range (args 0 -1 1 1234567) }}{{ humanizeDuration . }}:{{ end }}",
               "0s:-1s:1s:14d 6h 56m 7s:");
    expect_err(d, "{{ humanizeDuration \"one\" }}",
               "template: test:1:%d: executing \"test\" at <humanizeDuration \"one\">: error "
               "calling humanizeDuration: strconv.ParseFloat: parsing \"one\": invalid syntax",
               3);
    /* Inf and NaN, as strings and as $value */
    expect_out(d,
               "{{ range (args \"+Inf\" \"-Inf\" \"NaN\") }}{{ humanize . }}:{{ humanize1024 . }}:"
               "{{ humanizeDuration . }}:{{humanizeTimestamp .}}:{{ end }}",
               "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:");
    const double specials[] = {INFINITY, -INFINITY, NAN};
    const char *const special_out[] = {
        "+Inf:+Inf:+Inf:+Inf:", "-Inf:-Inf:-Inf:-Inf:", "NaN:NaN:NaN:NaN:"};
    for (size_t i = 0; i < 3; i++) {
        template_data d2 = e.d;
        d2.value = specials[i];
        expect_out(&d2,
                   "{{ humanize $value }}:{{ humanize1024 $value }}:{{ humanizeDuration $value }}:"
                   "{{humanizeTimestamp $value}}:",
                   special_out[i]);
    }
    /* humanizePercentage */
    expect_out(d,
               "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | "
               "humanizePercentage }}:{{ 1.23456 | humanizePercentage }}",
               "-22.22%:0%:12.35%:123.5%");
    expect_out(
        d,
        "{{ range (args 0 -1 1 1234567 9223372036854775807) }}{{ humanizePercentage . }}:{{ end }}",
        "0%:-100%:100%:1.235e+08%:9.223e+20%:");
    expect_out(d,
               "{{ \"-0.22222\" | humanizePercentage }}:{{ \"0.0\" | humanizePercentage }}:{{ "
               "\"0.1234567\" | humanizePercentage }}:{{ \"1.23456\" | humanizePercentage }}",
               "-22.22%:0%:12.35%:123.5%");
    expect_err(d, "{{ \"one\" | humanizePercentage }}",
               "template: test:1:%d: executing \"test\" at <humanizePercentage>: error calling "
               "humanizePercentage: strconv.ParseFloat: parsing \"one\": invalid syntax",
               11);
    /* humanizeTimestamp */
    expect_out(d, "{{ range (args 0 -1 1 1234567 9223372036) }}{{ humanizeTimestamp . }}:{{ end }}",
               "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:1970-01-01 00:00:01 "
               "+0000 UTC:1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:");
    expect_err(d,
               "{{ range (args -9223372036854775808 9223372036854775807) }}{{ humanizeTimestamp . "
               "}}:{{ end }}",
               "template: test:1:%d: executing \"test\" at <humanizeTimestamp .>: error calling "
               "humanizeTimestamp: -9.223372036854776e+18 cannot be represented as a nanoseconds "
               "timestamp since it overflows int64",
               62);
    expect_out(d, "{{ 1435065584.128 | humanizeTimestamp }}", "2015-06-23 13:19:44.128 +0000 UTC");
    expect_out(d, "{{ \"1435065584.128\" | humanizeTimestamp }}",
               "2015-06-23 13:19:44.128 +0000 UTC");
    /* toTime, toDuration, now, parseDuration */
    expect_out(d, "{{ (1435065584.128 | toTime).Format \"2006\" }}", "2015");
    expect_out(d, "{{ (\"1435065584.128\" | toTime).Format \"2006\" }}", "2015");
    expect_out(d, "{{ (1800 | toDuration).String }}", "30m0s");
    expect_out(d, "{{ (\"1800\" | toDuration).String }}", "30m0s");
    expect_out(d, "{{ now }}", "1.353755652e+09");
    expect_out(d, "{{ (now | toTime).Format \"Mon Jan 2 15:04:05 2006\" }}",
               "Sat Nov 24 11:14:12 2012");
    expect_out(d, "{{ (\"-30m\" | parseDuration | toDuration | (now | toTime).Add).UnixMilli }}",
               "1353753852000");
    expect_out(d, "{{ printf \"%0.2f\" (parseDuration \"1h2m10ms\") }}", "3720.01");
    expect_out(d, "{{ printf \"%0.2f\" (parseDuration \"-1h2m10ms\") }}", "-3720.01");
    /* strings */
    expect_out(d, "{{ \"aa bb CC\" | title }}", "Aa Bb CC");
    expect_out(d, "{{ \"aa bb CC\" | toUpper }}", "AA BB CC");
    expect_out(d, "{{ \"don't stop-me now_ok a.b été\" | title }}", "Don't Stop-Me Now_ok A.b Été");
    expect_out(d, "{{ \"aA bB CC\" | toLower }}", "aa bb cc");
    expect_out(d, "{{ match \"a+\" \"aa\" }} {{ match \"a+\" \"b\" }}", "true false");
    expect_out(d, "{{ graphLink \"up\" }}", "/graph?g0.expr=up&g0.tab=0");
    expect_out(d, "{{ tableLink \"up\" }}", "/graph?g0.expr=up&g0.tab=1");
    expect_out(d, "{{ pathPrefix }}", "/path/prefix");
    expect_out(d, "{{ externalURL }}", "http://testhost:9090/path/prefix");
    /* parse errors */
    expect_err(d, "{{\xc2\xa0}}", "template: test:1: unrecognized character in action: U+00A0", 0);
    expect_err(d, "{{", "template: test:1: unclosed action", 0);
    env_cleanup(&e);
}

static void test_prometheus_query_cases(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    const template_data *d = &e.d;
    fake_sample scalar[] = {{{NULL}, 1.5}};
    e.q.s = scalar;
    e.q.n = 1;
    expect_out(d, "{{ query \"1.5\" | first | value }}", "1.5");
    assert_string_equal(e.q.last_expr, "1.5");
    assert_int_equal(e.q.last_t, 1353755652000LL);

    fake_sample inst[] = {{{"__name__", "metric", "instance", "a", NULL}, 11}};
    e.q.s = inst;
    expect_out(d, "{{ query \"metric{instance='a'}\" | first | value }}", "11");
    assert_string_equal(e.q.last_expr, "metric{instance='a'}");
    expect_out(d, "{{ query \"metric{instance='a'}\" | first | label \"instance\" }}", "a");
    expect_out(d, "{{ query \"metric{instance='a'}\" | first | label \"foo\" }}", "");
    expect_out(d, "{{ $x := query \"metric\" | first }}{{ $x.Labels.foo }}", "");

    fake_sample sv[] = {{{"__name__", "metric", "__value__", "a", NULL}, 11}};
    e.q.s = sv;
    expect_out(d, "{{ query \"metric{__value__='a'}\" | first | strvalue }}", "a");

    fake_sample two[] = {{{"__name__", "metric", "instance", "b", NULL}, 21},
                         {{"__name__", "metric", "instance", "a", NULL}, 11}};
    e.q.s = two;
    e.q.n = 2;
    expect_out(d,
               "{{ range query \"metric\" | sortByLabel \"instance\" "
               "}}{{.Labels.instance}}:{{.Value}}: {{end}}",
               "a:11: b:21: ");
    expect_out(d, "{{ range query \"metric\" }}{{.Labels.instance}}{{end}}", "ba");
    expect_out(d, "{{ len (query \"metric\") }} {{ (index (query \"metric\") 1).Value }}", "2 11");

    e.q.n = 0;
    expect_err(d, "{{ query \"missing\" | first }}",
               "template: test:1:%d: executing \"test\" at <first>: error calling first: first() "
               "called on vector with no elements",
               21);
    expect_err(d, "{{ (query \"missing\").banana }}",
               "template: test:1:%d: executing \"test\" at <\"missing\">: can't evaluate field "
               "banana in type template.queryResult",
               10);
    expect_out(d, "{{ range query \"missing\" }}x{{ else }}none{{ end }}", "none");
    e.q.s = inst;
    e.q.n = 1;
    /* checked against promtool: a sample prints as the struct it points to */
    expect_out(d, "{{ query \"up\" | first }}|{{ (query \"up\" | first).Labels }}",
               "{map[__name__:metric instance:a] 11}|map[__name__:metric instance:a]");
    e.q.n = 0;

    e.q.fail = "bad_data: parse error";
    expect_err(d, "{{ query \"x(\" }}",
               "template: test:1:%d: executing \"test\" at <query \"x(\">: error calling query: "
               "bad_data: parse error",
               3);
    template_data nq = e.d;
    nq.query = NULL;
    char *out, *err;
    assert_int_equal(run(&nq, "{{ query \"up\" }}", &out, &err), -EINVAL);
    assert_non_null(strstr(err, "error calling query: "));
    mem_free(out);
    mem_free(err);
    env_cleanup(&e);
}

/* ---- the alert prefix and data ------------------------------------------------------ */

static void test_alert_data(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    const template_data *d = &e.d;
    expect_out(d, "{{ $labels.instance }} {{ .Labels.job }} {{ $value }} {{ .Value }}",
               "foo:9090 node 1.234567e+06 1.234567e+06");
    expect_out(d, "{{ $externalLabels.cluster }} {{ .ExternalLabels.cluster }} {{ $externalURL }}",
               "eu-1 eu-1 http://testhost:9090/path/prefix");
    expect_out(d, "{{ $labels }}", "map[instance:foo:9090 job:node severity:critical]");
    /* missingkey=zero on map[string]string: "" */
    expect_out(d, "[{{ $labels.nope }}][{{ index $labels \"nope\" }}]", "[][]");
    /* a missing key of map[string]interface{}: no value */
    expect_out(d, "{{ (args 1).arg7 }}", "<no value>");
    expect_out(d, "{{ humanize $value }} {{ printf \"%.2f\" $value }}", "1.235M 1234567.00");
    expect_err(d, "{{ .Foo }}",
               "template: test:1:%d: executing \"test\" at <.Foo>: can't evaluate field Foo in "
               "type struct { Labels map[string]string; ExternalLabels map[string]string; "
               "ExternalURL string; Value interface {} }",
               3);
    /* NULL data fields */
    template_data empty = {0};
    expect_out(&empty, "[{{ $labels.x }}][{{ $externalURL }}][{{ $value }}][{{ len $labels }}]",
               "[][][0][0]");
    expect_out(NULL, "{{ $value }}", "0");
    env_cleanup(&e);
}

/* ---- Go text/template semantics --------------------------------------------------------- */

static void test_go_semantics(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    const template_data *d = &e.d;
    /* trim markers and comments */
    expect_out(d, "a  {{- 1 -}}  b", "a1b");
    expect_out(d, "a {{- /* comment */ -}} b", "ab");
    expect_out(d, "a{{/* multi\nline */}}b", "ab");
    expect_out(d, "{{-3}}", "-3");
    expect_out(d, "x\n  {{- \"y\" }}\n", "xy\n");
    /* if / else if / else, with, range */
    expect_out(d,
               "{{ if eq $labels.severity \"warning\" }}w{{ else if eq $labels.severity "
               "\"critical\" }}c{{ else }}o{{ end }}",
               "c");
    expect_out(
        d,
        "{{ if 0 }}a{{ else }}b{{ end }}{{ if \"\" }}a{{ else }}b{{ end }}{{ if 0.5 }}c{{ end }}",
        "bbc");
    expect_out(d,
               "{{ with $labels.job }}{{ . }}{{ end }}{{ with $labels.nope }}x{{ else }}-{{ end }}",
               "node-");
    expect_out(d, "{{ with $x := $labels.job }}{{ $x }}{{ end }}", "node");
    expect_out(d, "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
               "instance=foo:9090;job=node;severity=critical;");
    expect_out(d, "{{ range $labels }}{{ . }},{{ end }}", "foo:9090,node,critical,");
    expect_out(d, "{{ range $i, $e := (args \"a\" \"b\") }}{{ $i }}{{ $e }}{{ end }}",
               "arg0aarg1b");
    expect_out(d, "{{ range 3 }}{{ . }}{{ end }}", "012");
    expect_out(d, "{{ range $labels }}{{ if eq . \"node\" }}{{ break }}{{ end }}{{ . }}{{ end }}",
               "foo:9090");
    expect_out(d,
               "{{ range $labels }}{{ if eq . \"node\" }}{{ continue }}{{ end }}{{ . }}{{ end }}",
               "foo:9090critical");
    expect_out(d, "{{ range (args) }}x{{ else }}empty{{ end }}", "empty");
    /* variables: scoping, assignment, $ */
    expect_out(d, "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2");
    expect_out(d, "{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}", "21");
    expect_out(d, "{{ range $labels }}{{ $.Labels.job }}{{ end }}", "nodenodenode");
    expect_err(d, "{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}",
               "template: test:1: undefined variable \"$y\"", 0);
    /* pipelines: the previous value is the last argument */
    expect_out(d, "{{ \"a\" | printf \"%s-%s\" \"b\" }}", "b-a");
    expect_out(d, "{{ 1.5 | printf \"%v\" }}", "1.5");
    /* functions: and/or short-circuit, not, eq with many, comparisons, len, index */
    expect_out(d, "{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 \"\" \"x\" }} {{ or 0 \"\" }} {{ not 0 }}",
               "0 2 x  true");
    expect_out(d, "{{ or 1 (humanize \"x\") }}", "1");
    expect_out(d, "{{ eq 1 2 3 1 }} {{ eq \"a\" \"b\" }} {{ ne 1 2 }} {{ eq true true }}",
               "true false true true");
    expect_out(d, "{{ lt 1 2 }} {{ le 2 2 }} {{ gt 1.5 2.5 }} {{ ge \"b\" \"a\" }}",
               "true true false true");
    expect_err(d, "{{ lt 1 1.5 }}",
               "template: test:1:%d: executing \"test\" at <lt 1 1.5>: error calling lt: "
               "incompatible types for comparison",
               3);
    expect_err(d, "{{ eq 1 \"1\" }}",
               "template: test:1:%d: executing \"test\" at <eq 1 \"1\">: error calling eq: "
               "incompatible types for comparison",
               3);
    expect_out(d, "{{ len \"abc\" }} {{ len $labels }} {{ index $labels \"job\" }}", "3 3 node");
    expect_out(d, "{{ print 1 2 \"a\" 3 }}|{{ println 1 \"a\" }}|", "1 2a3|1 a\n|");
    expect_out(d, "{{ html \"<a href='x'>&\" }} {{ js \"a'b<\" }} {{ urlquery \"a b&c\" }}",
               "&lt;a href=&#39;x&#39;&gt;&amp; a\\'b\\u003C a+b%26c");
    /* numbers: ideal constants */
    /* found by fuzzing: a binary literal read past its digit set */
    expect_err(d, "{{ $labels of 0bLonue }} times", "template: test:1: function \"of\" not defined",
               0);
    expect_err(d, "{{ 0bLonue }}", "template: test:1: bad number syntax: \"0bL\"", 0);
    expect_out(d, "{{ 0b101 }} {{ 0o17 }} {{ 0x1p4 }}", "5 15 16");
    expect_out(d, "{{ 1e3 }} {{ 0x10 }} {{ 1_000 }} {{ 'a' }} {{ -0.5 }} {{ 100000000.0 }}",
               "1000 16 1000 97 -0.5 1e+08");
    /* printf */
    expect_out(
        d,
        "{{ printf \"%5.2f|%-5d|%05d|%x|%X|%q|%v|%s\" 3.14159 42 -42 255 255 \"hi\" 1e21 \"s\" }}",
        " 3.14|42   |-0042|ff|FF|\"hi\"|1e+21|s");
    expect_out(d,
               "{{ printf \"%d|%t|%e|%g|%G|%.3g|%8.3e|%+d|%%\" 7 true 123456.789 0.000012345 1e-7 "
               "1234.5678 1234.5678 5 }}",
               "7|true|1.234568e+05|1.2345e-05|1E-07|1.23e+03|1.235e+03|+5|%");
    expect_out(d, "{{ printf \"%d %s\" 1.5 2 }}", "%!d(float64=1.5) %!s(int=2)");
    expect_out(d, "{{ printf \"%d\" }}|{{ printf \"%d\" 1 2 }}", "%!d(MISSING)|1%!(EXTRA int=2)");
    expect_out(d, "{{ printf \"%v %s\" $labels.job $labels }}",
               "node map[instance:foo:9090 job:node severity:critical]");
    expect_out(
        d, "{{ printf \"%.1f%%\" 99.95 }} {{ printf \"%6.2f\" -1.0 }} {{ printf \"%f\" $value }}",
        "100.0%  -1.00 1234567.000000");
    expect_out(d, "{{ printf \"%10s|%-4s|%.2s\" \"abc\" \"x\" \"hello\" }}", "       abc|x   |he");
    expect_out(d, "{{ printf \"%c %q %x\" 65 66 \"hi\" }}", "A 'B' 6869");
    expect_out(d, "{{ printf \"%s|%v\" nil nil }}|{{ print nil }}", "%!s(<nil>)|<nil>|<nil>");
    /* float printing (%v is strconv 'g', shortest) */
    expect_out(d, "{{ 0.1 }} {{ 123456.0 }} {{ 1234567.0 }} {{ 0.0001 }} {{ 0.00001 }}",
               "0.1 123456 1.234567e+06 0.0001 1e-05");
    /* reReplaceAll: every leftmost match, Go's expansion */
    expect_out(d, "{{ reReplaceAll \"(a)b\" \"x$1\" \"abcab\" }}", "xacxa");
    expect_out(d, "{{ reReplaceAll \"a*\" \"-\" \"baaac\" }}", "-b-c-");
    expect_out(d, "{{ reReplaceAll \":[0-9]+$\" \"\" $labels.instance }}", "foo");
    expect_out(d, "{{ reReplaceAll \"(?P<host>[^:]+):(\\\\d+)\" \"${2}@${host}\" \"h:1 g:2\" }}",
               "1@h2@ g");
    expect_out(d,
               "{{ match \"^foo\" $labels.instance }} {{ match \"oo:9\" $labels.instance }} {{ "
               "match \"^9090\" $labels.instance }}",
               "true true false");
    expect_err(
        d, "{{ match \"(\" \"x\" }}",
        "template: test:1:%d: executing \"test\" at <match \"(\" \"x\">: error calling match: "
        "error parsing regexp: missing closing ): `(`",
        3);
    expect_err(
        d, "{{ reReplaceAll \"(\" \"\" \"x\" }}",
        "template: test:1:%d: executing \"test\" at <reReplaceAll \"(\" \"\" \"x\">: error calling "
        "reReplaceAll: regexp: Compile(`(`): error parsing regexp: missing closing ): `(`",
        3);
    /* checked against promtool (Prometheus 2.42): */
    expect_out(d,
               "{{ reReplaceAll \"^\" \"x\" \"abc\" }} {{ reReplaceAll \"$\" \"x\" \"abc\" }} {{ "
               "reReplaceAll \"b*\" \"-\" \"abc\" }} "
               "{{ reReplaceAll \"(?i)B\" \"$0$0\" \"aBc\" }}",
               "xabc abcx -a-c- aBBc");
    expect_out(d,
               "{{ reReplaceAll \"a|ab\" \"[$0]\" \"abab\" }} {{ reReplaceAll \"(x)?y\" \"[$1]\" "
               "\"yxy\" }}",
               "[a]b[a]b [][x]");
    expect_out(
        d, "{{ reReplaceAll \"\\\\b\" \"|\" \"ab cd\" }} {{ reReplaceAll \"^a\" \"X\" \"aaa\" }}",
        "|ab| |cd| Xaa");
    expect_out(d,
               "{{ reReplaceAll \"(a)(b)?\" \"<$1$2$10${1}0$0x>\" \"aab\" }} {{ reReplaceAll \"é\" "
               "\"${0}$$\" \"aéb€é\" }}",
               "<aa0><aba0> aé$b€é$");
    expect_out(d,
               "{{ match \"^a.c$\" \"a\\nc\" }} {{ match \"(?s)^a.c$\" \"a\\nc\" }} {{ match \"\" "
               "\"x\" }}",
               "false true true");
    expect_out(d, "{{ printf \"%d\" $labels }}",
               "map[%!d(string=instance):%!d(string=foo:9090) %!d(string=job):%!d(string=node) "
               "%!d(string=severity):%!d(string=critical)]");
    expect_out(d, "{{ printf \"%T %T %T\" 1 \"a\" $labels }}", "int string map[string]string");
    expect_out(
        d,
        "{{ printf \"%s\" (args 1 \"x\") }} {{ printf \"%v\" true }} {{ printf \"%5t|\" false }} "
        "{{ printf \"%05s\" \"ab\" }} {{ printf \"%-05d|\" 3 }}",
        "map[arg0:%!s(int=1) arg1:x] true false| 000ab 3    |");
    expect_out(d,
               "{{ printf \"%v %v %v\" 1e-5 1e20 1e21 }} {{ printf \"%g %g\" 100000.0 1e6 }} "
               "{{ printf \"%.2g\" 100.0 }} {{ printf \"%e\" 0.0 }}",
               "1e-05 1e+20 1e+21 100000 1e+06 1e+02 0.000000e+00");
    expect_out(d,
               "{{ printf \"%5.1f%%\" 12.345 }} {{ printf \"%-8.3s|\" \"abcdef\" }} {{ printf "
               "\"%08.2f\" 3.14159 }}",
               " 12.3% abc     | 00003.14");
    expect_out(d,
               "{{ (1435065584.128 | toTime).Format \"2006-01-02T15:04:05.000Z07:00\" }}|"
               "{{ (1435065584.128 | toTime).Format \"Jan _2 3:4:5 PM .999 -0700 MST 06 002\" }}",
               "2015-06-23T13:19:44.128Z|Jun 23 1:19:44 PM .128 +0000 UTC 15 174");
    expect_out(d,
               "{{ (1435065584 | toTime).Format \"Monday January 2 15:04:05.999999999\" }}|"
               "{{ (1435065584.5 | toTime).Unix }}|{{ (-1.5 | toTime) }}|{{ (1435065584.128 | "
               "toTime).Year }}",
               "Tuesday June 23 13:19:44|1435065584|1969-12-31 23:59:58.5 +0000 UTC|2015");
    expect_out(d, "{{ printf \"%q\" \"a\\tb\\u00e9\" }} {{ printf \"%.3q\" \"abcdef\" }}",
               "\"a\\tbé\" \"abc\"");
    expect_out(d,
               "{{ printf \"%x %X %o %b\" 255 255 8 5 }} {{ printf \"%#x %#o\" 255 8 }} {{ printf "
               "\"% d\" 5 }}",
               "ff FF 10 101 0xff 010  5");
    expect_out(d,
               "{{ printf \"%6.2f\" -1.0 }}|{{ printf \"%x\" -255 }}|{{ printf \"%08.3f\" -3.14159 "
               "}}|{{ printf \"%+.2e\" 12345.678 }}",
               " -1.00|-ff|-003.142|+1.23e+04");
    expect_out(
        d,
        "{{ len \"héllo\" }} {{ index \"abc\" 1 }} {{ slice \"abc\" 1 }} {{ slice \"abcd\" 1 3 }}",
        "6 98 bc bc");
    expect_out(d, "{{ -1234567 | humanize }} {{ 0.000001234 | humanize }} {{ 1e30 | humanize }}",
               "-1.235M 1.234u 1e+06Y");
    expect_out(d, "{{ 1023 | humanize1024 }} {{ 1025 | humanize1024 }} {{ -2048 | humanize1024 }}",
               "1023 1.001ki -2ki");
    expect_out(d,
               "{{ humanizeDuration 0.5 }} {{ humanizeDuration -0.5 }} {{ humanizeDuration 59.99 "
               "}} {{ humanizeDuration 1e12 }}",
               "500ms -500ms 59.99s 11574074d 1h 46m 40s");
    expect_out(d, "{{ humanizePercentage 1 }} {{ humanizePercentage \"NaN\" }}", "100% NaN%");
    expect_out(d,
               "{{ \"http://a.b/c\" | urlquery }} {{ \"foo.bar.example.com\" | stripDomain }} {{ "
               "\"localhost:80\" | stripDomain }}",
               "http%3A%2F%2Fa.b%2Fc foo localhost:80");
    expect_out(d,
               "{{ index (args 1 2) \"arg1\" }} {{ index (args 1 2) \"arg5\" }} {{ eq nil nil }} "
               "{{ eq 1 nil }}",
               "2 <no value> true false");
    expect_err(d, "{{ $x := 1 }}{{ $y = 2 }}",
               "template: test:1:%d: executing \"test\" at <2>: undefined variable: $y", 21);
    expect_err(d, "{{ 9223372036854775808 }}",
               "template: test:1:%d: executing \"test\" at <9223372036854775808>: "
               "9223372036854775808 overflows int",
               3);
    /* define/template/block */
    expect_out(d,
               "{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" $labels.job }}{{ block \"b\" "
               "1 }}<{{ . }}>{{ end }}",
               "[node]<1>");
    env_cleanup(&e);
}

static void test_error_texts(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    const template_data *d = &e.d;
    static const struct {
        const char *text, *err;
    } parse_errs[] = {
        {"{{ foo }}", "template: test:1: function \"foo\" not defined"},
        {"{{ if }}", "template: test:1: missing value for if"},
        {"{{ end }}", "template: test:1: unexpected {{end}}"},
        {"{{ else }}", "template: test:1: unexpected {{else}}"},
        {"{{ if 1 }}x", "template: test:1: unexpected EOF"},
        {"{{ $x }}", "template: test:1: undefined variable \"$x\""},
        {"{{ 1 | 2 }}", "template: test:1: non executable command in pipeline stage 2"},
        {"a\nb\n{{ \"x }}", "template: test:3: unterminated quoted string"},
        {"{{ 3x }}", "template: test:1: bad number syntax: \"3x\""},
        {"{{ ) }}", "template: test:1: unexpected \")\" in command"},
        /* the rest of these texts were checked against promtool check rules */
        {"{{ 0bLonue }}", "template: test:1: bad number syntax: \"0bL\""},
        {"{{ .x@ }}", "template: test:1: bad character U+0040 '@'"},
        {"{{ range $a, $b, $c := 1 }}{{end}}", "template: test:1: too many declarations in range"},
        {"{{ if 1 }}{{ define \"x\" }}{{ end }}{{ end }}",
         "template: test:1: unexpected <define> in command"},
        {"{{ 1 }}}}{{", "template: test:1: unclosed action"},
        {"{{ /* c */ }}", "template: test:1: unexpected \"/\" in command"},
        {"{{/* c */ 1 }}", "template: test:1: comment ends before closing delimiter"},
        {"{{ nil.x }}", "template: test:1: unexpected . after term \"nil\""},
        {"{{ 1.x }}", "template: test:1: bad number syntax: \"1.x\""},
        {"{{ 'ab' }}", "template: test:1: malformed character constant: 'ab'"},
        {"{{ 1e400 }}", "template: test:1: illegal number syntax: \"1e400\""},
        {"{{ with }}{{ end }}", "template: test:1: missing value for with"},
        {"{{ range . }}{{ else }}{{ else }}{{ end }}",
         "template: test:1: expected end; found {{else}}"},
        {"{{ ( }}", "template: test:1: unclosed left paren"},
        {"{{/* x }}", "template: test:1: unclosed comment"},
        {"{{ break }}", "template: test:1: {{break}} outside {{range}}"},
        {"{{ template \"nope\" }}", NULL}, /* parses; fails at execution */
        {"{{ @ }}", "template: test:1: unexpected \"@\" in command"},
    };
    for (size_t i = 0; i < sizeof parse_errs / sizeof parse_errs[0]; i++) {
        buf err;
        buf_init(&err, BUF_UNLIMITED);
        int rc = template_check("test", parse_errs[i].text, strlen(parse_errs[i].text), &err);
        if (parse_errs[i].err == NULL) {
            if (rc != 0)
                fail_msg("%s: unexpected parse error %s", parse_errs[i].text, buf_cstr(&err));
        } else if (rc != -EINVAL || strcmp(buf_cstr(&err), parse_errs[i].err) != 0) {
            fail_msg("%s\n  want: %s\n  got:  %s", parse_errs[i].text, parse_errs[i].err,
                     buf_cstr(&err));
        }
        buf_cleanup(&err);
        if (parse_errs[i].err) expect_err(d, parse_errs[i].text, parse_errs[i].err, 0);
    }
    expect_err(d, "{{ template \"nope\" }}",
               "template: test:1:%d: executing \"test\" at <{{template \"nope\"}}>: template "
               "\"nope\" not defined",
               12);
    expect_err(d, "{{ \"a\" \"b\" }}",
               "template: test:1:%d: executing \"test\" at <\"a\">: can't give argument to "
               "non-function \"a\"",
               3);
    expect_err(d, "{{ nil }}",
               "template: test:1:%d: executing \"test\" at <nil>: nil is not a command", 3);
    expect_err(
        d, "{{ len 3 }}",
        "template: test:1:%d: executing \"test\" at <len 3>: error calling len: len of type int",
        3);
    expect_err(d, "{{ humanize }}",
               "template: test:1:%d: executing \"test\" at <humanize>: wrong number of args for "
               "humanize: want 1 got 0",
               3);
    expect_err(d, "{{ title 1 }}",
               "template: test:1:%d: executing \"test\" at <1>: expected string; found 1", 9);
    expect_err(d, "{{ 1.5 | title }}",
               "template: test:1:%d: executing \"test\" at <title>: wrong type for value; expected "
               "string; got float64",
               9);
    expect_err(d, "{{ $labels.job.x }}",
               "template: test:1:%d: executing \"test\" at <$labels.job.x>: can't evaluate field x "
               "in type string",
               3);
    expect_err(d, "{{ range 1.5 }}{{ end }}",
               "template: test:1:%d: executing \"test\" at <1.5>: range can't iterate over 1.5", 9);
    /* line and column after a newline */
    expect_err(
        d, "x\n  {{ humanizeDuration \"one-two\" }}",
        "template: test:2:5: executing \"test\" at <humanizeDuration \"one-two\">: error calling "
        "humanizeDuration: strconv.ParseFloat: parsing \"one-two\": invalid syntax",
        0);
    /* partial output is left for the caller to discard */
    char *out, *err;
    assert_int_equal(run(d, "ok{{ humanize \"x\" }}", &out, &err), -EINVAL);
    assert_string_equal(out, "ok");
    mem_free(out);
    mem_free(err);
    env_cleanup(&e);
}

/* ---- limits ---------------------------------------------------------------------------- */

static void expect_err_contains(const template_data *d, const char *text, const char *part)
{
    char *out, *err;
    int rc = run(d, text, &out, &err);
    if (rc != -EINVAL || !strstr(err, part))
        fail_msg("template %.60s...\n  want error containing: %s\n  got: %s (rc %d)", text, part,
                 err, rc);
    mem_free(out);
    mem_free(err);
}

static void test_limits(void **state)
{
    (void)state;
    env e;
    env_init(&e);
    const template_data *d = &e.d;
    expect_err_contains(d, "{{ range 100001 }}{{ end }}", "range exceeds 100000 iterations");
    expect_out(d, "{{ range 100000 }}{{ end }}done", "done");
    expect_err_contains(d, "{{ range 2000 }}{{ printf \"%1000d\" 1 }}{{ end }}",
                        "template output exceeds 1048576 bytes");
    /* deep nesting is a parse error, not a stack overflow */
    buf t;
    buf_init(&t, BUF_UNLIMITED);
    for (int i = 0; i < 1000; i++)
        buf_puts(&t, "{{ if 1 }}");
    expect_err_contains(d, buf_cstr(&t), "max nesting depth exceeded");
    buf_reset(&t);
    buf_puts(&t, "{{ ");
    for (int i = 0; i < 1000; i++)
        buf_putc(&t, '(');
    expect_err_contains(d, buf_cstr(&t), "max nesting depth exceeded");
    /* unbounded recursion and exponential work */
    expect_err_contains(d, "{{ define \"a\" }}{{ template \"a\" }}{{ end }}{{ template \"a\" }}",
                        "exceeded maximum template depth (200)");
    buf_reset(&t);
    for (int i = 0; i < 60; i++)
        buf_printf(&t, "{{ define \"t%d\" }}{{ template \"t%d\" }}{{ template \"t%d\" }}{{ end }}",
                   i, i + 1, i + 1);
    buf_puts(&t, "{{ define \"t60\" }}{{ end }}{{ template \"t0\" }}");
    expect_err_contains(d, buf_cstr(&t), "template execution exceeds");
    /* strings that double each iteration stop at the string cap */
    expect_err_contains(
        d,
        "{{ $s := \"xxxxxxxxxxxxxxxx\" }}{{ range 40 }}{{ $s = printf \"%s%s\" $s $s }}{{ end }}",
        "exceeds");
    /* nesting inside recursion is bounded too (the C stack) */
    buf_reset(&t);
    buf_puts(&t, "{{ define \"r\" }}");
    for (int i = 0; i < 150; i++)
        buf_puts(&t, "{{ if 1 }}");
    buf_puts(&t, "{{ template \"r\" }}");
    for (int i = 0; i < 150; i++)
        buf_puts(&t, "{{ end }}");
    buf_puts(&t, "{{ end }}{{ template \"r\" }}");
    expect_err_contains(d, buf_cstr(&t), "exceeded maximum nesting depth (500)");
    /* regexes are compiled once per expansion; distinct ones are capped */
    expect_out(
        d, "{{ range 5000 }}{{ reReplaceAll \"a\" \"b\" \"aXa\" | printf \"%.0s\" }}{{ end }}ok",
        "ok");
    expect_err_contains(d, "{{ range 300 }}{{ match (printf \"a%d\" .) \"x\" }}{{ end }}",
                        "error calling match: more than 256 distinct regular expressions");
    buf_cleanup(&t);
    env_cleanup(&e);
}

/* ---- exported humanize functions and template_check ----------------------------------------- */

static char *hz(void (*f)(double, buf *), double v)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    f(v, &b);
    return buf_detach(&b, NULL);
}

static void test_humanize_exports(void **state)
{
    (void)state;
    static const struct {
        void (*f)(double, buf *);
        double v;
        const char *want;
    } cases[] = {
        {template_humanize, 1234567.0, "1.235M"},
        {template_humanize, 0.12, "120m"},
        {template_humanize, 0, "0"},
        {template_humanize, -1e-9, "-1n"},
        {template_humanize1024, 1048576.0, "1Mi"},
        {template_humanize1024, 1234567, "1.177Mi"},
        {template_humanize_duration, 90061, "1d 1h 1m 1s"},
        {template_humanize_duration, 1.0011, "1.001s"},
        {template_humanize_duration, 0.000001, "1us"},
        {template_humanize_duration, 0.0000000015, "1.5ns"},
        {template_humanize_percentage, 0.1234567, "12.35%"},
        {template_humanize_timestamp, 1435065584.128, "2015-06-23 13:19:44.128 +0000 UTC"},
        {template_humanize_timestamp, 0, "1970-01-01 00:00:00 +0000 UTC"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = hz(cases[i].f, cases[i].v);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu: want %s got %s", i, cases[i].want, got);
        mem_free(got);
    }
}

static void test_check(void **state)
{
    (void)state;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    const char *ok = "{{ $labels.instance }} is down ({{ $value | humanize }})";
    assert_int_equal(template_check("__alert_X", ok, strlen(ok), &err), 0);
    assert_int_equal(err.len, 0);
    /* not NUL-terminated input: only len bytes are read */
    assert_int_equal(template_check("__alert_X", "{{ 1 }}{{", 7, &err), 0);
    const char *bad = "{{ $labels.instance ";
    assert_int_equal(template_check("__alert_X", bad, strlen(bad), &err), -EINVAL);
    assert_string_equal(buf_cstr(&err), "template: __alert_X:1: unclosed action");
    buf_cleanup(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prometheus_cases), cmocka_unit_test(test_prometheus_query_cases),
        cmocka_unit_test(test_alert_data),       cmocka_unit_test(test_go_semantics),
        cmocka_unit_test(test_error_texts),      cmocka_unit_test(test_limits),
        cmocka_unit_test(test_humanize_exports), cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
