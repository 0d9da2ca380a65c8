/* Unit tests for the limits on input that users and targets control
 * (issue 10, item 3), each with the counter that records its refusals:
 *   - scrape: body_size_limit and the --scrape.max-body-bytes hard cap,
 *     sample_limit, label_limit / label_name_length_limit /
 *     label_value_length_limit, target_limit (a real scrape manager against
 *     a small TCP server, over a temporary store);
 *   - API queries: --query.max-samples, --query.timeout, the 11,000 points
 *     per series and --query.max-regex-bytes, counted in
 *     sidewatch_queries_refused_total{reason};
 *   - the parsers' regex size check (promql_parse, match[] selectors) and
 *     PCRE2's backtracking limits (regex.h);
 *   - rule groups over --rules.max-rules-per-group (rulefmt).
 * Each test first shows the limit's counter at 0 (or below the limit the
 * input passes), then crosses the limit and checks both the refusal and
 * the count, so a limit or a counter that stops working fails here. */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "apiv1.h"
#include "buf.h"
#include "config.h"
#include "labels.h"
#include "mem.h"
#include "promql/parse.h"
#include "regex.h"
#include "registry.h"
#include "rulefmt.h"
#include "scrape.h"
#include "store.h"

/* ---- helpers ------------------------------------------------------------------------ */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The value of one sample line of the registry's text exposition
 * ("name{labels} value" with `series` = "name{labels}"), or -1 if absent. */
static double exposed(registry *reg, const char *series)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(registry_write(reg, TEXTPARSE_PROMETHEUS, buf_sink, &b), 0);
    double v = -1;
    size_t sl = strlen(series);
    for (const char *p = buf_cstr(&b); p && *p;) {
        const char *nl = strchr(p, '\n');
        if (strncmp(p, series, sl) == 0 && p[sl] == ' ') {
            v = strtod(p + sl + 1, NULL);
            break;
        }
        p = nl ? nl + 1 : NULL;
    }
    buf_cleanup(&b);
    return v;
}

/* ---- a tiny HTTP server for scrapes --------------------------------------------------- */

typedef struct route {
    const char *path;
    const char *body;
    size_t len;
} route;

typedef struct httpd {
    int fd;
    int port;
    pthread_t thread;
    const route *routes;
    size_t n_routes;
} httpd;

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static void *httpd_run(void *arg)
{
    httpd *h = arg;
    for (;;) {
        int c = accept(h->fd, NULL, NULL);
        if (c < 0) return NULL; /* the listener was shut down */
        char req[8192];
        size_t n = 0;
        while (n < sizeof req - 1) {
            ssize_t r = read(c, req + n, sizeof req - 1 - n);
            if (r <= 0) break;
            n += (size_t)r;
            req[n] = '\0';
            if (strstr(req, "\r\n\r\n")) break;
        }
        req[n] = '\0';
        char path[256] = "";
        sscanf(req, "GET %255s", path);
        const route *rt = NULL;
        for (size_t i = 0; i < h->n_routes; i++)
            if (strcmp(h->routes[i].path, path) == 0) rt = &h->routes[i];
        char head[256];
        if (rt) {
            int hl = snprintf(head, sizeof head,
                              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                              "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                              rt->len);
            write_all(c, head, (size_t)hl);
            write_all(c, rt->body, rt->len);
        } else {
            static const char nf[] =
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            write_all(c, nf, sizeof nf - 1);
        }
        close(c);
    }
}

static void httpd_start(httpd *h, const route *routes, size_t n)
{
    memset(h, 0, sizeof *h);
    h->routes = routes;
    h->n_routes = n;
    h->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(h->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(h->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(h->fd, 64), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(h->fd, (struct sockaddr *)&a, &al), 0);
    h->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&h->thread, NULL, httpd_run, h), 0);
}

static void httpd_stop(httpd *h)
{
    shutdown(h->fd, SHUT_RDWR);
    close(h->fd);
    pthread_join(h->thread, NULL);
}

/* ---- scrape limits ------------------------------------------------------------------- */

static void test_scrape_body_limit_value(void **state)
{
    (void)state;
    size_t cap = 4096;
    /* Unset or above the cap: the cap. Never 0 (httpc's "no limit"). */
    assert_int_equal(scrape_body_limit(0, cap), cap);
    assert_int_equal(scrape_body_limit(1 << 20, cap), cap);
    assert_int_equal(scrape_body_limit(4097, cap), cap);
    /* Below it: one less than body_size_limit (a body of exactly the limit
     * fails, as in Prometheus). */
    assert_int_equal(scrape_body_limit(4096, cap), 4095);
    assert_int_equal(scrape_body_limit(100, cap), 99);
    assert_int_equal(scrape_body_limit(1, cap), 1);
    assert_true(scrape_body_limit(0, SCRAPE_DEFAULT_MAX_BODY_BYTES) > 0);
}

/* The last error of the target of `job`, copied into out. */
static bool target_error(scrape_manager *m, const char *job, char *out, size_t n)
{
    scrape_target_status *s;
    size_t k;
    assert_int_equal(scrape_manager_targets(m, &s, &k), 0);
    bool found = false;
    for (size_t i = 0; i < k; i++) {
        if (strcmp(s[i].job, job) == 0 && s[i].health == 0) {
            snprintf(out, n, "%s", s[i].last_error);
            found = true;
        }
    }
    scrape_target_status_free(s, k);
    return found;
}

static void test_scrape_limits_counted(void **state)
{
    (void)state;
    /* Bodies: 3000 bytes of samples; a 20-sample body; labels over each
     * label limit; a healthy one. */
    static char big[3000], many[1024];
    memset(big, 0, sizeof big);
    for (size_t n = 0; n + 16 < sizeof big;)
        n += (size_t)sprintf(big + n, "big_%06zu 1\n", n);
    size_t big_len = strlen(big);
    size_t ml = 0;
    for (int i = 0; i < 20; i++)
        ml += (size_t)sprintf(many + ml, "many_%d %d\n", i, i);
    static const char labels4[] = "m{a=\"1\",b=\"2\",c=\"3\",d=\"4\"} 1\n";
    static const char longname[] = "m{averyveryverylongname=\"1\"} 1\n";
    static const char longvalue[] = "m{a=\"0123456789abcdefghij\"} 1\n";
    static const char ok[] = "ok_metric 1\n";
    route routes[] = {
        {"/big", big, big_len},
        {"/many", many, ml},
        {"/labels", labels4, sizeof labels4 - 1},
        {"/longname", longname, sizeof longname - 1},
        {"/longvalue", longvalue, sizeof longvalue - 1},
        {"/ok", ok, sizeof ok - 1},
    };
    httpd h;
    httpd_start(&h, routes, sizeof routes / sizeof routes[0]);

    char *dir = tu_tmpdir_new("wip-limits-scrape");
    store *st;
    buf err;
    buf_init(&err, 1 << 16);
    store_options so = {.path = dir};
    assert_int_equal(store_open(&st, &so, &err), 0);
    registry *reg = registry_new();
    scrape_manager *m = scrape_manager_new(st, reg);
    assert_non_null(m);
    /* Every counter exists from the start, at 0. */
    static const char *const counters[] = {
        "sidewatch_scrapes_exceeded_body_size_limit_total",
        "sidewatch_scrapes_exceeded_sample_limit_total",
        "sidewatch_scrapes_exceeded_label_limits_total",
        "sidewatch_scrape_pool_exceeded_target_limit_total",
        "sidewatch_scrapes_exceeded_bucket_limit_total",
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        assert_true(exposed(reg, counters[i]) == 0);
    /* The hard cap (2048) is below the big body; job "body" sets a smaller
     * body_size_limit, job "cap" none. */
    scrape_manager_set_max_body_bytes(m, 2048);

    char cfg_text[4096];
    int p = h.port;
    snprintf(cfg_text, sizeof cfg_text,
             "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n"
             "scrape_configs:\n"
             "  - job_name: body\n    metrics_path: /big\n    body_size_limit: 1KB\n"
             "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
             "  - job_name: cap\n    metrics_path: /big\n"
             "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
             "  - job_name: samples\n    metrics_path: /many\n    sample_limit: 10\n"
             "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
             "  - job_name: samples_ok\n    metrics_path: /many\n    sample_limit: 20\n"
             "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
             "  - job_name: labels\n    metrics_path: /labels\n    label_limit: 5\n"
             "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
             "  - job_name: longname\n    metrics_path: /longname\n"
             "    label_name_length_limit: 10\n"
             "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
             "  - job_name: longvalue\n    metrics_path: /longvalue\n"
             "    label_value_length_limit: 10\n"
             "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
             "  - job_name: targets\n    metrics_path: /ok\n    target_limit: 1\n"
             "    static_configs: [{targets: ['127.0.0.1:%d', 'localhost:%d']}]\n",
             p, p, p, p, p, p, p, p, p);
    config *cfg = NULL;
    assert_int_equal(config_load_string(cfg_text, strlen(cfg_text), "limits.yml", &cfg, &err), 0);
    assert_int_equal(scrape_manager_start(m, cfg), 0);

    /* target_limit is checked when the target set is built. */
    assert_true(exposed(reg, "sidewatch_scrape_pool_exceeded_target_limit_total") >= 1);
    /* Wait for each job's target to fail with its reason. */
    static const struct {
        const char *job, *reason;
    } want[] = {
        {"body", "body size limit exceeded"},
        {"cap", "body size limit exceeded (--scrape.max-body-bytes=2048)"},
        {"samples", "sample limit exceeded"},
        {"labels", "label_limit exceeded (metric: m, number of labels: 7, limit: 5)"},
        {"longname", "label_name_length_limit exceeded"},
        {"longvalue", "label_value_length_limit exceeded"},
        {"targets", "target_limit exceeded (number of targets: 2, limit: 1)"},
    };
    int64_t deadline = mono_ms() + 15000;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char e[1024] = "";
        while (!target_error(m, want[i].job, e, sizeof e) && mono_ms() < deadline)
            usleep(20000);
        if (strncmp(e, want[i].reason, strlen(want[i].reason)) != 0)
            fail_msg("job %s: last error \"%s\", want \"%s\"", want[i].job, e, want[i].reason);
        /* The body_size_limit message is Prometheus's, without the flag. */
        if (strcmp(want[i].job, "body") == 0) assert_null(strstr(e, "--scrape"));
    }
    char e[1024];
    assert_false(target_error(m, "samples_ok", e, sizeof e));
    scrape_manager_stop(m);

    /* Counted: both body jobs, each label limit (one counter), samples. */
    assert_true(exposed(reg, "sidewatch_scrapes_exceeded_body_size_limit_total") >= 2);
    assert_true(exposed(reg, "sidewatch_scrapes_exceeded_sample_limit_total") >= 1);
    assert_true(exposed(reg, "sidewatch_scrapes_exceeded_label_limits_total") >= 3);
    assert_true(exposed(reg, "sidewatch_scrapes_exceeded_bucket_limit_total") == 0);

    scrape_manager_free(m);
    config_unref(cfg);
    registry_free(reg);
    store_close(st);
    buf_cleanup(&err);
    httpd_stop(&h);
    tu_tmpdir_free(dir);
}

/* Without a hard cap set, a target with no body_size_limit still has one. */
static void test_scrape_default_cap(void **state)
{
    (void)state;
    assert_true(SCRAPE_DEFAULT_MAX_BODY_BYTES >= ((size_t)64 << 20));
    assert_true(SCRAPE_DEFAULT_MAX_BODY_BYTES <= ((size_t)1 << 30));
    assert_int_equal(scrape_body_limit(0, SCRAPE_DEFAULT_MAX_BODY_BYTES),
                     SCRAPE_DEFAULT_MAX_BODY_BYTES);
}

/* ---- the regex size check in the parsers ----------------------------------------------- */

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static int parse_rc(const char *q, size_t max, buf *err)
{
    promql_parse_options o = {.max_regex_bytes = max};
    promql_ast *ast = NULL;
    buf_reset(err);
    int rc = promql_parse(q, strlen(q), &o, &ast, err);
    promql_ast_free(ast);
    return rc;
}

static void test_promql_regex_size(void **state)
{
    (void)state;
    buf err, q;
    buf_init(&err, BUF_UNLIMITED);
    buf_init(&q, BUF_UNLIMITED);
    char *at = repeat('a', 16), *over = repeat('a', 17);
    /* At the limit: accepted; one byte over: -E2BIG with the sizes. */
    buf_printf(&q, "x{a=~\"%s\"}", at);
    assert_int_equal(parse_rc(buf_cstr(&q), 16, &err), 0);
    buf_reset(&q);
    buf_printf(&q, "x{a=~\"%s\"}", over);
    assert_int_equal(parse_rc(buf_cstr(&q), 16, &err), -E2BIG);
    assert_non_null(strstr(buf_cstr(&err), "regular expression is too large (17 bytes, the limit is 16 bytes)"));
    assert_non_null(strstr(buf_cstr(&err), "1:"));
    /* No limit: accepted. */
    assert_int_equal(parse_rc(buf_cstr(&q), 0, &err), 0);
    /* !~ too; = and != are not regexes. */
    buf_reset(&q);
    buf_printf(&q, "x{a!~\"%s\"}", over);
    assert_int_equal(parse_rc(buf_cstr(&q), 16, &err), -E2BIG);
    buf_reset(&q);
    buf_printf(&q, "x{a=\"%s\", b!=\"%s\"}", over, over);
    assert_int_equal(parse_rc(buf_cstr(&q), 16, &err), 0);
    /* label_replace's regex, also in parentheses. */
    buf_reset(&q);
    buf_printf(&q, "label_replace(x, \"d\", \"$1\", \"s\", \"%s\")", over);
    assert_int_equal(parse_rc(buf_cstr(&q), 16, &err), -E2BIG);
    buf_reset(&q);
    buf_printf(&q, "label_replace(x, \"d\", \"$1\", \"s\", (\"%s\"))", over);
    assert_int_equal(parse_rc(buf_cstr(&q), 16, &err), -E2BIG);
    buf_reset(&q);
    buf_printf(&q, "label_replace(x, \"d\", \"$1\", \"s\", \"%s\")", at);
    assert_int_equal(parse_rc(buf_cstr(&q), 16, &err), 0);
    /* Other errors stay -EINVAL. */
    assert_int_equal(parse_rc("x{a=~\"(\"}", 16, &err), -EINVAL);
    assert_int_equal(parse_rc("sum(", 16, &err), -EINVAL);

    /* match[] selectors. */
    label_matcher *ms = NULL;
    size_t n = 0;
    buf_reset(&q);
    buf_printf(&q, "{a=~\"%s\"}", over);
    buf_reset(&err);
    assert_int_equal(labels_parse_metric_selector_max(q.data, q.len, 16, &ms, &n, &err), -E2BIG);
    assert_null(ms);
    assert_non_null(strstr(buf_cstr(&err), "regular expression is too large"));
    assert_int_equal(labels_parse_metric_selector_max(q.data, q.len, 0, &ms, &n, &err), 0);
    labels_matchers_free(ms, n);
    buf_reset(&q);
    buf_printf(&q, "{a=~\"%s\"}", at);
    assert_int_equal(labels_parse_metric_selector_max(q.data, q.len, 16, &ms, &n, &err), 0);
    labels_matchers_free(ms, n);
    assert_int_equal(labels_parse_metric_selector_max("{a=~\"(\"}", 8, 16, &ms, &n, &err),
                     -EINVAL);
    free(at);
    free(over);
    buf_cleanup(&q);
    buf_cleanup(&err);
}

/* ---- PCRE2 backtracking limits ------------------------------------------------------- */

static void test_regex_backtracking_bounded(void **state)
{
    (void)state;
    regex *re = NULL;
    const char *pat = "(a|a)*";
    assert_int_equal(regex_compile(&re, pat, strlen(pat), NULL), 0);
    /* 2^40 paths: without a match limit this runs for hours. */
    char s[64];
    memset(s, 'a', 40);
    s[40] = 'b';
    uint64_t before = regex_limit_hits();
    int64_t t0 = mono_ms();
    assert_false(regex_match(re, s, 41));
    int64_t took = mono_ms() - t0;
    assert_true(regex_limit_hits() == before + 1);
    /* Generous for sanitizers and a busy machine; hours without the limit. */
    assert_true(took < 10000);
    /* Ordinary matches neither hit the limit nor change their answer. */
    assert_true(regex_match(re, s, 40));
    /* 20 a's and a b: about 2^20 steps, under PCRE2's own default limit
     * (10,000,000) but over REGEX_MATCH_LIMIT: so the tighter limit is the
     * one in force. 16 a's stay under it. */
    memset(s, 'a', 20);
    s[20] = 'b';
    assert_false(regex_match(re, s, 21));
    assert_true(regex_limit_hits() == before + 2);
    memset(s, 'a', 16);
    s[16] = 'b';
    assert_false(regex_match(re, s, 17));
    assert_true(regex_limit_hits() == before + 2);
    before += 1;
    regex_free(re);
    pat = "api-[0-9]+|web.*";
    assert_int_equal(regex_compile(&re, pat, strlen(pat), NULL), 0);
    assert_true(regex_match(re, "api-42", 6));
    assert_true(regex_match(re, "web-frontend", 12));
    assert_false(regex_match(re, "db", 2));
    regex_free(re);
    assert_true(regex_limit_hits() == before + 1);
}

/* ---- rule groups -------------------------------------------------------------------- */

static void test_rule_group_size(void **state)
{
    (void)state;
    static const char three[] = "groups:\n"
                                "  - name: small\n"
                                "    rules:\n"
                                "      - record: a\n        expr: vector(1)\n"
                                "  - name: big\n"
                                "    rules:\n"
                                "      - record: a\n        expr: vector(1)\n"
                                "      - record: b\n        expr: vector(2)\n"
                                "      - record: c\n        expr: vector(3)\n";
    size_t refused = 0;
    rulefmt_options o = {.max_rules_per_group = 3, .groups_refused = &refused};
    rulefmt_file *f = NULL;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    /* At the limit: fine, nothing counted. */
    assert_int_equal(rulefmt_parse(three, strlen(three), "r.yml", &o, &f, &err), 0);
    assert_int_equal(refused, 0);
    rulefmt_file_free(f);
    f = NULL;
    /* Over it: the file is refused, naming the group and the flag. */
    o.max_rules_per_group = 2;
    assert_true(rulefmt_parse(three, strlen(three), "r.yml", &o, &f, &err) < 0);
    assert_null(f);
    assert_int_equal(refused, 1);
    assert_non_null(strstr(buf_cstr(&err), "r.yml:6:"));
    assert_non_null(strstr(buf_cstr(&err),
                           "group \"big\" has 3 rules, more than the limit of 2 "
                           "(--rules.max-rules-per-group)"));
    /* 0: no limit. */
    o.max_rules_per_group = 0;
    buf_reset(&err);
    assert_int_equal(rulefmt_parse(three, strlen(three), "r.yml", &o, &f, &err), 0);
    assert_int_equal(refused, 1);
    rulefmt_file_free(f);
    buf_cleanup(&err);
}

/* ---- API query refusals ---------------------------------------------------------------- */

typedef struct qfix {
    char *dir;
    store *st;
    registry *reg;
    apiv1 *api;
} qfix;

static store_reader *q_reader_get(void *ctx)
{
    qfix *f = ctx;
    store_reader *r;
    return store_reader_open(f->st, &r) < 0 ? NULL : r;
}

static void q_reader_put(void *ctx, store_reader *r)
{
    (void)ctx;
    store_reader_close(r);
}

static int64_t q_now(void *ctx)
{
    (void)ctx;
    return 300000;
}

/* Three series x{i="0".."2"} with a sample every 15 s from 0 to 300 s (63
 * samples); --query.max-samples 30 (or *state's, when a test sets one),
 * --query.max-regex-bytes 16. */
static int q_setup(void **state)
{
    int64_t max_samples = *state ? *(const int64_t *)*state : 30;
    qfix *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir_new("wip-limits-api");
    store_options so = {.path = f->dir};
    buf err;
    buf_init(&err, 4096);
    assert_int_equal(store_open(&f->st, &so, &err), 0);
    buf_cleanup(&err);
    uint64_t refs[3];
    for (int i = 0; i < 3; i++) {
        labels_builder b;
        labels_builder_init(&b);
        char v[2] = {(char)('0' + i), 0};
        labels_builder_set(&b, "__name__", 8, "x", 1);
        labels_builder_set(&b, "i", 1, v, 1);
        labels *ls = labels_builder_finish(&b, NULL);
        labels_builder_cleanup(&b);
        assert_int_equal(store_series_ref(f->st, ls, &refs[i], NULL), 0);
        labels_free(ls);
    }
    for (int64_t t = 0; t <= 300000; t += 15000) {
        store_batch *b = store_batch_new(f->st);
        for (int i = 0; i < 3; i++)
            store_batch_add(b, refs[i], t, (double)t);
        assert_int_equal(store_batch_commit(b), 0);
    }
    f->reg = registry_new();
    apiv1_options o = {
        .st = f->st,
        .reader_get = q_reader_get,
        .reader_put = q_reader_put,
        .reader_ctx = f,
        .now_ms = q_now,
        .ctx = f,
        .engine = {.lookback_delta_ms = 5 * 60 * 1000, .max_samples = max_samples},
        .parse = {.max_regex_bytes = 16},
        .reg = f->reg,
    };
    f->api = apiv1_new(&o);
    *state = f;
    return 0;
}

static int q_teardown(void **state)
{
    qfix *f = *state;
    apiv1_free(f->api);
    registry_free(f->reg);
    store_close(f->st);
    tu_tmpdir_free(f->dir);
    free(f);
    return 0;
}

/* GET path?query; returns the status, the body into out (may be NULL). */
static unsigned get(qfix *f, const char *path, const char *query, buf *out)
{
    apiv1_request rq = {.method = "GET",
                        .path = path,
                        .query = query,
                        .query_len = query ? strlen(query) : 0};
    apiv1_response resp;
    apiv1_handle(f->api, &rq, &resp);
    unsigned st = resp.status;
    if (out) {
        buf_reset(out);
        if (resp.stream) {
            while (apiv1_stream_next(resp.stream, out) > 0) {
            }
        } else {
            buf_append(out, buf_cstr(&resp.body), resp.body.len);
        }
    }
    apiv1_response_cleanup(&resp);
    return st;
}

static double refused(qfix *f, const char *reason)
{
    char s[128];
    snprintf(s, sizeof s, "sidewatch_queries_refused_total{reason=\"%s\"}", reason);
    return exposed(f->reg, s);
}

static const char *const reasons[] = {"max_samples", "timeout", "too_many_points",
                                      "regex_too_large"};

/* Only `reason` moved, by exactly one since `before`. */
static void assert_counted(qfix *f, const double before[4], const char *reason)
{
    for (int i = 0; i < 4; i++) {
        double want = before[i] + (strcmp(reasons[i], reason) == 0 ? 1 : 0);
        if (refused(f, reasons[i]) != want)
            fail_msg("%s: %g, want %g (after a %s refusal)", reasons[i], refused(f, reasons[i]),
                     want, reason);
    }
}

static void snapshot(qfix *f, double out[4])
{
    for (int i = 0; i < 4; i++)
        out[i] = refused(f, reasons[i]);
}

static void test_query_refusals_precreated(void **state)
{
    qfix *f = *state;
    for (int i = 0; i < 4; i++)
        assert_true(refused(f, reasons[i]) == 0);
    assert_string_equal(apiv1_refused_reason(APIV1_REFUSED_REGEX_TOO_LARGE), "regex_too_large");
}

static void test_query_max_samples(void **state)
{
    qfix *f = *state;
    double b[4];
    buf body;
    buf_init(&body, BUF_UNLIMITED);
    snapshot(f, b);
    /* 3 series x 5 samples = 15: under 30. */
    assert_int_equal(get(f, "/query", "query=sum(count_over_time(x%5B1m%5D))&time=300", &body),
                     200);
    assert_counted(f, b, "none");
    /* 3 x 21 = 63: over. */
    assert_int_equal(get(f, "/query", "query=sum(count_over_time(x%5B5m%5D))&time=300", &body),
                     422);
    assert_non_null(strstr(buf_cstr(&body), "too many samples"));
    assert_counted(f, b, "max_samples");
    buf_cleanup(&body);
}

static void test_query_timeout(void **state)
{
    qfix *f = *state;
    double b[4];
    snapshot(f, b);
    buf body;
    buf_init(&body, BUF_UNLIMITED);
    assert_int_equal(get(f, "/query", "query=x&time=300&timeout=0s", &body), 503);
    assert_non_null(strstr(buf_cstr(&body), "timed out"));
    assert_counted(f, b, "timeout");
    buf_cleanup(&body);
}

static void test_query_too_many_points(void **state)
{
    qfix *f = *state;
    double b[4];
    snapshot(f, b);
    /* 11,000 steps: the limit itself is allowed. */
    assert_int_equal(get(f, "/query_range", "query=vector(1)&start=0&end=11000&step=1", NULL), 200);
    assert_counted(f, b, "none");
    assert_int_equal(get(f, "/query_range", "query=vector(1)&start=0&end=11001&step=1", NULL), 400);
    assert_counted(f, b, "too_many_points");
}

static void test_query_regex_too_large(void **state)
{
    qfix *f = *state;
    double b[4];
    buf body;
    buf_init(&body, BUF_UNLIMITED);
    snapshot(f, b);
    /* 16 bytes: fine. */
    assert_int_equal(get(f, "/query", "query=x%7Bi%3D~%22%5B0-9%5D%7C0123456789%22%7D&time=300",
                         &body),
                     200);
    assert_counted(f, b, "none");
    /* 17 bytes: refused as bad_data, counted. */
    assert_int_equal(get(f, "/query", "query=x%7Bi%3D~%22%5B0-9%5D%7C0123456789a%22%7D&time=300",
                         &body),
                     400);
    assert_non_null(strstr(buf_cstr(&body), "regular expression is too large"));
    assert_counted(f, b, "regex_too_large");
    /* The same in match[] of /series and /labels. */
    snapshot(f, b);
    assert_int_equal(get(f, "/series", "match[]=x%7Bi%3D~%22%5B0-9%5D%7C0123456789a%22%7D", &body),
                     400);
    assert_counted(f, b, "regex_too_large");
    snapshot(f, b);
    assert_int_equal(get(f, "/labels", "match[]=x%7Bi%3D~%22%5B0-9%5D%7C0123456789a%22%7D", &body),
                     400);
    assert_counted(f, b, "regex_too_large");
    snapshot(f, b);
    assert_int_equal(get(f, "/series", "match[]=x%7Bi%3D~%22%5B0-9%5D%7C0123456789%22%7D", &body),
                     200);
    assert_counted(f, b, "none");
    /* Another parse error is not a regex refusal. */
    assert_int_equal(get(f, "/query", "query=sum(&time=300", &body), 400);
    assert_counted(f, b, "none");
    buf_cleanup(&body);
}

static int64_t many_samples = 1000000;

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrape_body_limit_value),
        cmocka_unit_test(test_scrape_default_cap),
        cmocka_unit_test(test_scrape_limits_counted),
        cmocka_unit_test(test_promql_regex_size),
        cmocka_unit_test(test_regex_backtracking_bounded),
        cmocka_unit_test(test_rule_group_size),
        cmocka_unit_test_setup_teardown(test_query_refusals_precreated, q_setup, q_teardown),
        cmocka_unit_test_setup_teardown(test_query_max_samples, q_setup, q_teardown),
        cmocka_unit_test_setup_teardown(test_query_timeout, q_setup, q_teardown),
        cmocka_unit_test_prestate_setup_teardown(test_query_too_many_points, q_setup, q_teardown,
                                                 &many_samples),
        cmocka_unit_test_prestate_setup_teardown(test_query_regex_too_large, q_setup, q_teardown,
                                                 &many_samples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
