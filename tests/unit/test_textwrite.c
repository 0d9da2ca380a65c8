/* Unit tests for the exposition writer, format negotiation, the metric
 * registry and the process collector. The writer's output is also parsed
 * back with textparse (round trip) and checked by promtool in the
 * integration tests. */
#include "testutil.h"

#include <math.h>
#include <unistd.h>

#include "buf.h"
#include "process.h"
#include "registry.h"
#include "textparse.h"
#include "textwrite.h"

static void test_text_format(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    textwrite w;
    textwrite_init(&w, TEXTPARSE_PROMETHEUS, buf_sink, &b);
    textwrite_help(&w, "http_requests_total", 19, "Requests.\nSecond \\ line", 23);
    textwrite_type(&w, "http_requests_total", 19, EXPFMT_COUNTER);
    textwrite_label l[2] = {{"code", 4, "200", 3}, {"path", 4, "/a\"b\n", 5}};
    int64_t ts = 1700000000123;
    textwrite_sample(&w, "http_requests_total", 19, l, 2, 1027, &ts);
    textwrite_sample(&w, "http_requests_total", 19, NULL, 0, NAN, NULL);
    textwrite_type(&w, "x", 1, EXPFMT_STATESET);
    textwrite_sample(&w, "x", 1, NULL, 0, -INFINITY, NULL);
    textwrite_sample(&w, "my.metric", 9, l, 1, 1e-7, NULL);
    textwrite_unit(&w, "x", 1, "seconds", 7);
    textwrite_eof(&w);
    assert_int_equal(textwrite_error(&w), 0);
    assert_string_equal(buf_cstr(&b),
                        "# HELP http_requests_total Requests.\\nSecond \\\\ line\n"
                        "# TYPE http_requests_total counter\n"
                        "http_requests_total{code=\"200\",path=\"/a\\\"b\\n\"} 1027 1700000000123\n"
                        "http_requests_total NaN\n"
                        "# TYPE x untyped\n"
                        "x -Inf\n"
                        "{\"my.metric\",code=\"200\"} 1e-07\n");
    buf_cleanup(&b);
}

static void test_openmetrics_format(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    textwrite w;
    textwrite_init(&w, TEXTPARSE_OPENMETRICS, buf_sink, &b);
    textwrite_help(&w, "foo_total", 9, "Say \"hi\"", 8);
    textwrite_type(&w, "foo_total", 9, EXPFMT_COUNTER);
    int64_t ts = 1520879607789;
    textwrite_sample(&w, "foo_total", 9, NULL, 0, 1, &ts);
    textwrite_type(&w, "g", 1, EXPFMT_UNKNOWN);
    textwrite_unit(&w, "g_seconds", 9, "seconds", 7);
    textwrite_sample(&w, "g", 1, NULL, 0, 0.5, NULL);
    textwrite_eof(&w);
    assert_string_equal(buf_cstr(&b), "# HELP foo_total Say \\\"hi\\\"\n"
                                      "# TYPE foo counter\n"
                                      "foo_total 1.0 1520879607.789\n"
                                      "# TYPE g unknown\n"
                                      "# UNIT g_seconds seconds\n"
                                      "g 0.5\n"
                                      "# EOF\n");
    buf_cleanup(&b);
}

static void test_negotiate(void **state)
{
    (void)state;
    assert_int_equal(textwrite_negotiate(NULL), TEXTPARSE_PROMETHEUS);
    assert_int_equal(textwrite_negotiate("text/plain"), TEXTPARSE_PROMETHEUS);
    assert_int_equal(textwrite_negotiate("*/*"), TEXTPARSE_PROMETHEUS);
    /* What Prometheus 2.42 sends. */
    assert_int_equal(
        textwrite_negotiate("application/openmetrics-text;version=1.0.0,application/"
                            "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;"
                            "q=0.5,*/*;q=0.1"),
        TEXTPARSE_OPENMETRICS);
    /* What Prometheus 3.x sends. */
    assert_int_equal(
        textwrite_negotiate("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;"
                            "q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;"
                            "version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;"
                            "q=0.3,*/*;q=0.2"),
        TEXTPARSE_OPENMETRICS);
    assert_int_equal(textwrite_negotiate("text/plain;q=0.9,application/openmetrics-text;q=0.5"),
                     TEXTPARSE_PROMETHEUS);
}

static void collect_two(registry_collect *c, void *ctx)
{
    (void)ctx;
    registry_collect_family(c, "b_collected", "Collected.", EXPFMT_GAUGE);
    textwrite_label l = {"k", 1, "v", 1};
    registry_collect_sample(c, &l, 1, 7);
}

static void test_registry(void **state)
{
    (void)state;
    registry *r = registry_new();
    static const char *const names[] = {"job", NULL};
    registry_family *c = registry_counter(r, "z_total", "Counter.", names);
    registry_family *g = registry_gauge(r, "a_gauge", "Gauge.", NULL);
    double bounds[] = {0.1, 1};
    registry_family *h = registry_histogram(r, "m_seconds", "Histogram.", NULL, bounds, 2);
    assert_null(registry_gauge(r, "z_total", "clash", NULL)); /* same name, other type */
    assert_ptr_equal(registry_counter(r, "z_total", "again", names), c);
    const char *v1[] = {"b"}, *v2[] = {"a"};
    registry_inc(registry_child(c, v1));
    registry_add(registry_child(c, v1), 2);
    registry_inc(registry_child(c, v2));
    registry_set(registry_child(g, NULL), 3.5);
    registry_metric *hm = registry_child(h, NULL);
    registry_observe(hm, 0.05);
    registry_observe(hm, 0.5);
    registry_observe(hm, 5);
    assert_true(registry_value(hm) == 3);
    registry_add_collector(r, collect_two, NULL);

    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(registry_write(r, TEXTPARSE_PROMETHEUS, buf_sink, &b), 0);
    assert_string_equal(
        buf_cstr(&b),
        "# HELP a_gauge Gauge.\n# TYPE a_gauge gauge\na_gauge 3.5\n"
        "# HELP b_collected Collected.\n# TYPE b_collected gauge\nb_collected{k=\"v\"} 7\n"
        "# HELP m_seconds Histogram.\n# TYPE m_seconds histogram\n"
        "m_seconds_bucket{le=\"0.1\"} 1\nm_seconds_bucket{le=\"1\"} 2\n"
        "m_seconds_bucket{le=\"+Inf\"} 3\nm_seconds_sum 5.55\nm_seconds_count 3\n"
        "# HELP z_total Counter.\n# TYPE z_total counter\n"
        "z_total{job=\"a\"} 1\nz_total{job=\"b\"} 3\n");
    buf_reset(&b);
    registry_family_remove(c, v1);
    assert_int_equal(registry_write(r, TEXTPARSE_OPENMETRICS, buf_sink, &b), 0);
    assert_non_null(strstr(buf_cstr(&b), "# TYPE z counter\nz_total{job=\"a\"} 1.0\n# EOF\n"));
    assert_null(strstr(buf_cstr(&b), "job=\"b\""));
    assert_non_null(strstr(buf_cstr(&b), "m_seconds_bucket{le=\"1.0\"} 2.0\n"));
    buf_cleanup(&b);
    registry_free(r);
}

static void test_roundtrip_through_parser(void **state)
{
    (void)state;
    registry *r = registry_new();
    static const char *const names[] = {"path", NULL};
    registry_family *c = registry_counter(r, "req_total", "Help with \\ and \"quotes\".", names);
    const char *v[] = {"/x\"y\\z\n"};
    registry_add(registry_child(c, v), 42);
    process_register(r);
    for (int f = 0; f < 2; f++) {
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        assert_int_equal(
            registry_write(r, f ? TEXTPARSE_OPENMETRICS : TEXTPARSE_PROMETHEUS, buf_sink, &b), 0);
        textparse p;
        textparse_init(&p, f ? TEXTPARSE_OPENMETRICS : TEXTPARSE_PROMETHEUS, b.data, b.len);
        int series = 0, found = 0;
        for (;;) {
            enum textparse_entry e = textparse_next(&p);
            if (e == TEXTPARSE_ERROR) fail_msg("format %d: %s\n%s", f, textparse_error(&p), b.data);
            if (e == TEXTPARSE_END) break;
            if (e != TEXTPARSE_SERIES) continue;
            series++;
            if (textparse_label_count(&p) == 1) {
                textparse_str n, val;
                textparse_label(&p, 0, &n, &val);
                buf un;
                buf_init(&un, BUF_UNLIMITED);
                textparse_unescape(val, false, buf_sink, &un);
                assert_string_equal(buf_cstr(&un), v[0]);
                assert_true(textparse_value(&p) == 42);
                buf_cleanup(&un);
                found++;
            }
        }
        textparse_cleanup(&p);
        assert_int_equal(found, 1);
        assert_true(series >= 7); /* the counter and six process_* metrics */
        buf_cleanup(&b);
    }
    registry_free(r);
}

static void test_process_stats(void **state)
{
    (void)state;
    process_stats s;
    assert_int_equal(process_read(&s), 0);
    assert_true(s.resident_bytes > 0);
    assert_true(s.virtual_bytes >= s.resident_bytes);
    assert_true(s.open_fds >= 3);
    assert_true(s.max_fds >= s.open_fds);
    assert_true(s.start_time_seconds > 1.6e9);
    assert_true(s.cpu_seconds >= 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_format),
        cmocka_unit_test(test_openmetrics_format),
        cmocka_unit_test(test_negotiate),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_roundtrip_through_parser),
        cmocka_unit_test(test_process_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
