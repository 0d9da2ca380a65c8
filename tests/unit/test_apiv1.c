/* Unit tests for apiv1 (the Prometheus HTTP API without HTTP) and querier:
 * form decoding as Go's url.ParseQuery, time and duration parameters,
 * error envelopes and statuses, and every endpoint's JSON over a small
 * temporary store, compared byte for byte with what Prometheus 3.x writes
 * for the same data. Table-driven: each case is a request and the exact
 * status and body (or a fragment of it). */
#include "testutil.h"
#include "teststore.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <unistd.h>

#include "apiv1.h"
#include "buf.h"
#include "labels.h"
#include "mem.h"
#include "querier.h"
#include "store.h"
#include "strutil.h"

/* ---- fixture ------------------------------------------------------------------ */

#define NOW_MS 300000 /* the API's clock: t = 300 s */

typedef struct fixture {
    char dir[64];
    store *st;
    apiv1 *api;
    config *cfg;
    int readers_out;
} fixture;

static store_reader *fx_reader_get(void *ctx)
{
    fixture *f = ctx;
    store_reader *r;
    if (store_reader_open(f->st, &r) < 0) return NULL;
    f->readers_out++;
    return r;
}

static void fx_reader_put(void *ctx, store_reader *r)
{
    fixture *f = ctx;
    f->readers_out--;
    store_reader_close(r);
}

static int64_t fx_now(void *ctx)
{
    (void)ctx;
    return NOW_MS;
}

static config *fx_config(void *ctx)
{
    fixture *f = ctx;
    return config_ref(f->cfg);
}

static void fx_runtime(void *ctx, apiv1_runtime *out)
{
    (void)ctx;
    out->start_time_ms = 1700000000123;
    out->reload_config_success = true;
    out->last_config_time_ms = 1700000000999;
    snprintf(out->storage_retention, sizeof out->storage_retention, "15d");
}

static uint64_t ref(store *s, labels *ls)
{
    uint64_t r;
    assert_int_equal(store_series_ref(s, ls, &r, NULL), 0);
    labels_free(ls);
    return r;
}

static const char test_config[] = "global:\n"
                                  "  scrape_interval: 15s\n"
                                  "scrape_configs:\n"
                                  "  - job_name: a\n"
                                  "    basic_auth: {username: u, password: hunter2}\n"
                                  "    static_configs:\n"
                                  "      - targets: ['h:1']\n"
                                  "webhooks:\n"
                                  "  - name: w\n"
                                  "    url: http://w/x\n"
                                  "    bearer_token: tok\n"
                                  "    hmac_secret: mac\n";

/* The store: every 15 s from 0 to 300 s,
 *   up{instance="h:1",job="a"} 1, up{instance="h:2",job="b"} 0,
 *   req_total{code="200",job="a"} t (1/s), req_total{code="500",job="a"} t/10,
 *   {__name__="odd.metric","a.b"="x<y>&"} 7 (only at 300 s),
 * and metadata for req_total and up. */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sidewatch-apiv1-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    store_options so = {.path = f->dir};
    buf err;
    buf_init(&err, 4096);
    assert_int_equal(store_open(&f->st, &so, &err), 0);
    assert_int_equal(config_load_string(test_config, strlen(test_config), "test.yml", &f->cfg, &err),
                     0);
    buf_cleanup(&err);
    uint64_t up1 = ref(f->st, tu_labels("__name__", "up", "job", "a", "instance", "h:1", NULL));
    uint64_t up2 = ref(f->st, tu_labels("__name__", "up", "job", "b", "instance", "h:2", NULL));
    uint64_t r200 = ref(f->st, tu_labels("__name__", "req_total", "job", "a", "code", "200", NULL));
    uint64_t r500 = ref(f->st, tu_labels("__name__", "req_total", "job", "a", "code", "500", NULL));
    uint64_t odd = ref(f->st, tu_labels("__name__", "odd.metric", "a.b", "x<y>&", NULL));
    for (int64_t t = 0; t <= 300000; t += 15000) {
        store_batch *b = store_batch_new(f->st);
        store_batch_add(b, up1, t, 1);
        store_batch_add(b, up2, t, 0);
        store_batch_add(b, r200, t, (double)t / 1000);
        store_batch_add(b, r500, t, (double)t / 10000);
        if (t == 300000) store_batch_add(b, odd, t, 7);
        if (t == 0) {
            store_batch_metadata(b, "req_total", EXPFMT_COUNTER, "Requests served.", "");
            store_batch_metadata(b, "up", EXPFMT_GAUGE, "1 if the target is up.", "");
        }
        assert_int_equal(store_batch_commit(b), 0);
    }
    static const apiv1_flag flags[] = {{"web.listen-address", "0.0.0.0:9277"},
                                       {"config.file", "prometheus.yml"}};
    apiv1_options o = {
        .st = f->st,
        .reader_get = fx_reader_get,
        .reader_put = fx_reader_put,
        .reader_ctx = f,
        .current_config = fx_config,
        .runtime_info = fx_runtime,
        .now_ms = fx_now,
        .ctx = f,
        .flags = flags,
        .n_flags = 2,
        .engine = {.lookback_delta_ms = 5 * 60 * 1000, .max_samples = 50000000},
        .parse = {.duration_expressions = true},
        .listen_address = "0.0.0.0:9277",
    };
    f->api = apiv1_new(&o);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    assert_int_equal(f->readers_out, 0);
    apiv1_free(f->api);
    config_unref(f->cfg);
    store_close(f->st);
    tu_rm_tree(f->dir);
    free(f);
    return 0;
}

/* Runs one request; returns the body (streamed ones collected), caller
 * frees. *status and *ctype receive the response's. */
static char *call(apiv1 *a, const char *method, const char *path, const char *query,
                  const char *ctype, const char *body, unsigned *status, const char **out_ctype,
                  bool *streamed)
{
    apiv1_request rq = {
        .method = method,
        .path = path,
        .query = query,
        .query_len = query ? strlen(query) : 0,
        .content_type = ctype,
        .body = body,
        .body_len = body ? strlen(body) : 0,
    };
    apiv1_response resp;
    apiv1_handle(a, &rq, &resp);
    *status = resp.status;
    if (out_ctype) *out_ctype = resp.content_type;
    if (streamed) *streamed = resp.stream != NULL;
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    if (resp.stream) {
        int rc, parts = 0;
        while ((rc = apiv1_stream_next(resp.stream, &out)) == 1)
            parts++;
        assert_int_equal(rc, 0);
        assert_true(parts > 1); /* really in parts */
    } else {
        buf_append(&out, resp.body.data ? resp.body.data : "", resp.body.len);
    }
    apiv1_response_cleanup(&resp);
    return buf_detach(&out, NULL);
}

/* ---- parameters ------------------------------------------------------------------- */

static void test_params_like_go(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *pairs; /* "k=v|k=v" after decoding */
        const char *error;
    } cases[] = {
        {"a=1&b=2&a=3", "a=1|b=2|a=3", NULL},
        {"match%5B%5D=up&match[]=x", "match[]=up|match[]=x", NULL},
        {"q=a+b%20c%2Bd", "q=a b c+d", NULL},
        {"x&&y=", "x=|y=", NULL},
        {"=v", "=v", NULL},
        {"a=%zz&b=1", "b=1", "invalid URL escape \"%zz\""},
        {"a=1%", "", "invalid URL escape \"%\""},
        {"a=%4&b=%G1", "", "invalid URL escape \"%4\""},
        {"a=1;b=2&c=3", "c=3", "invalid semicolon separator in query"},
        {"a=%zz&b=1;c", "", "invalid semicolon separator in query"},
        {"", "", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        apiv1_params p;
        apiv1_params_init(&p);
        assert_int_equal(apiv1_params_parse(&p, cases[i].in, strlen(cases[i].in)), 0);
        buf got;
        buf_init(&got, BUF_UNLIMITED);
        for (size_t k = 0; k < p.n; k++)
            buf_printf(&got, "%s%s=%s", k ? "|" : "", p.v[k].key, p.v[k].value);
        assert_string_equal(buf_cstr(&got), cases[i].pairs);
        if (cases[i].error)
            assert_string_equal(p.error ? p.error : "(none)", cases[i].error);
        else
            assert_null(p.error);
        buf_cleanup(&got);
        apiv1_params_cleanup(&p);
    }
    apiv1_params p;
    apiv1_params_init(&p);
    apiv1_params_parse(&p, "k=first&k=second", 16);
    assert_string_equal(apiv1_params_get(&p, "k")->value, "first");
    assert_null(apiv1_params_get(&p, "x"));
    apiv1_params_cleanup(&p);
}

static void test_time_param(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t ms;
        const char *error;
    } cases[] = {
        {"0", 0, NULL},
        {"1", 1000, NULL},
        {"1.5", 1500, NULL},
        {"1435781451.781", 1435781451781, NULL},
        {"1.0006", 1001, NULL}, /* fraction rounded to ms */
        {"1.0004", 1000, NULL},
        {"1.0005", 1000, NULL}, /* 0.0005 is 0.000499999... as a double */
        {"-1.5", -1500, NULL},
        {"1e3", 1000000, NULL},
        {"+2", 2000, NULL},
        {"2015-07-01T20:10:51.781Z", 1435781451781, NULL},
        {"2015-07-01T20:10:51Z", 1435781451000, NULL},
        {"2015-07-01T20:10:51.7819999Z", 1435781451781, NULL}, /* truncated */
        {"2015-07-01T22:10:51.781+02:00", 1435781451781, NULL},
        {"2015-07-01T18:10:51,5-02:00", 1435781451500, NULL},
        {"1969-12-31T23:59:59.5Z", -500, NULL},
        {"2016-02-29T00:00:00Z", 1456704000000, NULL},
        {"2015-02-29T00:00:00Z", 0, "cannot parse \"2015-02-29T00:00:00Z\" to a valid timestamp"},
        {"2015-07-01 20:10:51Z", 0, "cannot parse \"2015-07-01 20:10:51Z\" to a valid timestamp"},
        {"2015-07-01T24:00:00Z", 0, "cannot parse \"2015-07-01T24:00:00Z\" to a valid timestamp"},
        {"2015-07-01T20:10:51", 0, "cannot parse \"2015-07-01T20:10:51\" to a valid timestamp"},
        {"x", 0, "cannot parse \"x\" to a valid timestamp"},
        {"", 0, "cannot parse \"\" to a valid timestamp"},
        {"NaN", 0, "cannot parse \"NaN\" to a valid timestamp"},
        {"1_000", 0, "cannot parse \"1_000\" to a valid timestamp"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf err;
        buf_init(&err, 1024);
        int64_t ms = -42;
        int rc = apiv1_parse_time(cases[i].in, strlen(cases[i].in), &ms, &err);
        if (cases[i].error) {
            assert_int_equal(rc, -EINVAL);
            assert_string_equal(buf_cstr(&err), cases[i].error);
        } else {
            if (rc != 0) fail_msg("%s: %s", cases[i].in, buf_cstr(&err));
            if (ms != cases[i].ms) fail_msg("%s: %lld", cases[i].in, (long long)ms);
        }
        buf_cleanup(&err);
    }
    /* Prometheus's MinTime and MaxTime strings (what clients send for
     * "unbounded") round-trip through the formatter. */
    char t[40];
    apiv1_format_time(-9223309901257974LL * 1000, t);
    int64_t ms;
    assert_int_equal(apiv1_parse_time(t, strlen(t), &ms, NULL), 0);
    assert_true(ms == -9223309901257974LL * 1000);
}

static void test_duration_param(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t ns;
        const char *error;
    } cases[] = {
        {"15", 15000000000LL, NULL},
        {"1.5", 1500000000LL, NULL},
        {"0.001", 1000000LL, NULL},
        {"-1", -1000000000LL, NULL},
        {"0", 0, NULL},
        {"5m", 300000000000LL, NULL},
        {"1h30m", 5400000000000LL, NULL},
        {"100ms", 100000000LL, NULL},
        {"1y", 365LL * 86400 * 1000000000LL, NULL},
        {"x", 0, "cannot parse \"x\" to a valid duration"},
        {"5m1h", 0, "cannot parse \"5m1h\" to a valid duration"},
        {"", 0, "cannot parse \"\" to a valid duration"},
        {"1e300", 0, "cannot parse \"1e300\" to a valid duration. It overflows int64"},
        {"1000y", 0, "cannot parse \"1000y\" to a valid duration"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf err;
        buf_init(&err, 1024);
        int64_t ns = -42;
        int rc = apiv1_parse_duration(cases[i].in, strlen(cases[i].in), &ns, &err);
        if (cases[i].error) {
            assert_int_equal(rc, -EINVAL);
            assert_string_equal(buf_cstr(&err), cases[i].error);
        } else {
            if (rc != 0) fail_msg("%s: %s", cases[i].in, buf_cstr(&err));
            if (ns != cases[i].ns) fail_msg("%s: %lld", cases[i].in, (long long)ns);
        }
        buf_cleanup(&err);
    }
}

static void test_format_time(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *out;
    } cases[] = {
        {0, "1970-01-01T00:00:00Z"},
        {1435781451781, "2015-07-01T20:10:51.781Z"},
        {1435781451500, "2015-07-01T20:10:51.5Z"},
        {1435781451010, "2015-07-01T20:10:51.01Z"},
        {-500, "1969-12-31T23:59:59.5Z"},
        {-62135596800000LL, "0001-01-01T00:00:00Z"},
        {253402300799999LL, "9999-12-31T23:59:59.999Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char t[40];
        apiv1_format_time(cases[i].ms, t);
        assert_string_equal(t, cases[i].out);
    }
}

/* ---- endpoints ---------------------------------------------------------------------- */

typedef struct api_case {
    const char *method, *path, *query;
    const char *body; /* sent as an application/x-www-form-urlencoded form */
    unsigned status;
    const char *expect;   /* the exact body, or NULL */
    const char *contains; /* a fragment of the body, or NULL */
} api_case;

#define FORM "application/x-www-form-urlencoded"
#define OK(data) "{\"status\":\"success\",\"data\":" data "}"
#define BAD(msg) "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"" msg "\"}"

static void run_cases(fixture *f, const api_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const api_case *c = &cases[i];
        unsigned status;
        const char *ctype;
        char *body = call(f->api, c->method ? c->method : "GET", c->path, c->query,
                          c->body ? FORM : NULL, c->body, &status, &ctype, NULL);
        if (status != c->status || (c->expect && strcmp(body, c->expect) != 0) ||
            (c->contains && !strstr(body, c->contains)))
            fail_msg("%s %s?%s\n  got %u %s\n  want %u %s", c->method ? c->method : "GET", c->path,
                     c->query ? c->query : "", status, body, c->status,
                     c->expect ? c->expect : c->contains);
        if (status != 204 && status != 301 && status != 308) {
            assert_non_null(ctype);
            if (status == 404 || status == 405)
                assert_string_equal(ctype, "text/plain; charset=utf-8");
            else
                assert_string_equal(ctype, "application/json");
        }
        mem_free(body);
    }
}

static void test_series_labels_values(void **state)
{
    fixture *f = *state;
    static const api_case cases[] = {
        {NULL, "/series", "match[]=up", NULL, 200,
         OK("[{\"__name__\":\"up\",\"instance\":\"h:1\",\"job\":\"a\"},"
            "{\"__name__\":\"up\",\"instance\":\"h:2\",\"job\":\"b\"}]"),
         NULL},
        /* Several match[] (body first, then the query string): merged, sorted, unique. */
        {"POST", "/series", "match[]=up{job=\"a\"}", "match%5B%5D=req_total%7Bcode%3D%22500%22%7D&match[]=up",
         200,
         OK("[{\"__name__\":\"req_total\",\"code\":\"500\",\"job\":\"a\"},"
            "{\"__name__\":\"up\",\"instance\":\"h:1\",\"job\":\"a\"},"
            "{\"__name__\":\"up\",\"instance\":\"h:2\",\"job\":\"b\"}]"),
         NULL},
        {NULL, "/series", "match[]=up&limit=1", NULL, 200,
         "{\"status\":\"success\",\"data\":[{\"__name__\":\"up\",\"instance\":\"h:1\",\"job\":\"a\"}],"
         "\"warnings\":[\"results truncated due to limit\"]}",
         NULL},
        /* Label values are escaped as Go's encoding/json does. */
        {NULL, "/series", "match[]={\"odd.metric\"}", NULL, 200,
         OK("[{\"__name__\":\"odd.metric\",\"a.b\":\"x\\u003cy\\u003e\\u0026\"}]"), NULL},
        {NULL, "/series", "match[]=up&start=400", NULL, 200, OK("[]"), NULL},
        {NULL, "/series", "match[]=up&end=2015-07-01T20:10:51Z", NULL, 200, NULL, "\"job\":\"b\""},
        {NULL, "/series", NULL, NULL, 400, BAD("no match[] parameter provided"), NULL},
        {NULL, "/series", "match[]={job=\"\"}", NULL, 400,
         BAD("invalid parameter \\\"match[]\\\": match[] must contain at least one non-empty "
             "matcher"),
         NULL},
        {NULL, "/series", "match[]=up{", NULL, 400, NULL,
         "invalid parameter \\\"match[]\\\": 1:4: parse error: "},
        {NULL, "/series", "match[]=up&start=x", NULL, 400,
         BAD("invalid parameter \\\"start\\\": invalid time value for 'start': cannot parse "
             "\\\"x\\\" to a valid timestamp"),
         NULL},
        {NULL, "/series", "match[]=up&limit=-1", NULL, 400,
         BAD("invalid parameter \\\"limit\\\": limit must be non-negative"), NULL},
        {NULL, "/series", "match[]=up&limit=x", NULL, 400,
         BAD("invalid parameter \\\"limit\\\": strconv.Atoi: parsing \\\"x\\\": invalid syntax"),
         NULL},
        {NULL, "/series", "match[]=up&x=%zz", NULL, 400,
         BAD("error parsing form values: invalid URL escape \\\"%zz\\\""), NULL},

        {NULL, "/labels", NULL, NULL, 200,
         OK("[\"__name__\",\"a.b\",\"code\",\"instance\",\"job\"]"), NULL},
        {"POST", "/labels", NULL, "match[]=up", 200, OK("[\"__name__\",\"instance\",\"job\"]"),
         NULL},
        {NULL, "/labels", "match[]=up&match[]=req_total", NULL, 200,
         OK("[\"__name__\",\"code\",\"instance\",\"job\"]"), NULL},
        {NULL, "/labels", "limit=2", NULL, 200,
         "{\"status\":\"success\",\"data\":[\"__name__\",\"a.b\"],"
         "\"warnings\":[\"results truncated due to limit\"]}",
         NULL},
        {NULL, "/labels", "match[]=nothing", NULL, 200, OK("[]"), NULL},
        {NULL, "/labels", "match[]={a=~\".*\"}", NULL, 400,
         BAD("match[] must contain at least one non-empty matcher"), NULL},

        {NULL, "/label/__name__/values", NULL, NULL, 200,
         OK("[\"odd.metric\",\"req_total\",\"up\"]"), NULL},
        {NULL, "/label/job/values", "match[]=up{job=\"b\"}", NULL, 200, OK("[\"b\"]"), NULL},
        {NULL, "/label/job/values", "match[]=up&limit=1", NULL, 200,
         "{\"status\":\"success\",\"data\":[\"a\"],\"warnings\":[\"results truncated due to "
         "limit\"]}",
         NULL},
        /* U__ names are unescaped: a.b */
        {NULL, "/label/U__a_2e_b/values", NULL, NULL, 200, OK("[\"x\\u003cy\\u003e\\u0026\"]"),
         NULL},
        {NULL, "/label/missing/values", NULL, NULL, 200, OK("[]"), NULL},
        {NULL, "/label/\xff/values", NULL, NULL, 400, BAD("invalid label name: \\\"\\\\xff\\\""),
         NULL},
        {"POST", "/label/job/values", NULL, NULL, 405, "Method Not Allowed\n", NULL},
    };
    run_cases(f, cases, sizeof cases / sizeof cases[0]);
}

static void test_metadata_targets_status(void **state)
{
    fixture *f = *state;
    static const api_case cases[] = {
        {NULL, "/metadata", NULL, NULL, 200,
         OK("{\"req_total\":[{\"type\":\"counter\",\"unit\":\"\",\"help\":\"Requests served.\"}],"
            "\"up\":[{\"type\":\"gauge\",\"unit\":\"\",\"help\":\"1 if the target is up.\"}]}"),
         NULL},
        {NULL, "/metadata", "metric=up", NULL, 200,
         OK("{\"up\":[{\"type\":\"gauge\",\"unit\":\"\",\"help\":\"1 if the target is up.\"}]}"),
         NULL},
        {NULL, "/metadata", "limit=1", NULL, 200, NULL, "{\"status\":\"success\",\"data\":{\"req_total\":[{"},
        {NULL, "/metadata", "limit=0", NULL, 200, OK("{}"), NULL},
        {NULL, "/metadata", "metric=nope", NULL, 200, OK("{}"), NULL},
        {NULL, "/metadata", "limit=x", NULL, 400, BAD("limit must be a number"), NULL},
        {NULL, "/metadata", "limit_per_metric=x", NULL, 400,
         BAD("limit_per_metric must be a number"), NULL},
        /* No scrape manager: no targets. */
        {NULL, "/targets", NULL, NULL, 200,
         OK("{\"activeTargets\":[],\"droppedTargets\":[],\"droppedTargetCounts\":{}}"), NULL},
        {NULL, "/targets", "state=active", NULL, 200,
         OK("{\"activeTargets\":[],\"droppedTargets\":[],\"droppedTargetCounts\":null}"), NULL},
        {NULL, "/status/buildinfo", NULL, NULL, 200, NULL,
         "{\"status\":\"success\",\"data\":{\"version\":\"" SIDEWATCH_VERSION
         "\",\"revision\":\"unknown\",\"branch\":\"unknown\",\"buildUser\":\"unknown\","
         "\"buildDate\":\"unknown\",\"goVersion\":"},
        {NULL, "/status/flags", NULL, NULL, 200,
         OK("{\"config.file\":\"prometheus.yml\",\"web.listen-address\":\"0.0.0.0:9277\"}"), NULL},
        /* The config as YAML, secrets masked. */
        {NULL, "/status/config", NULL, NULL, 200,
         OK("{\"yaml\":\"global:\\n  scrape_interval: 15s\\nscrape_configs:\\n- job_name: a\\n  "
            "basic_auth:\\n    username: u\\n    password: \\u003csecret\\u003e\\n  "
            "static_configs:\\n  - targets:\\n    - \\\"h:1\\\"\\nwebhooks:\\n- name: w\\n  "
            "url: http://w/x\\n  bearer_token: \\u003csecret\\u003e\\n  "
            "hmac_secret: \\u003csecret\\u003e\\n\"}"),
         NULL},
        {NULL, "/status/runtimeinfo", NULL, NULL, 200, NULL,
         "{\"status\":\"success\",\"data\":{\"startTime\":\"2023-11-14T22:13:20.123Z\",\"CWD\":"},
        {NULL, "/status/runtimeinfo", NULL, NULL, 200, NULL,
         "\"serverTime\":\"1970-01-01T00:05:00Z\",\"reloadConfigSuccess\":true,"
         "\"lastConfigTime\":\"2023-11-14T22:13:20Z\",\"corruptionCount\":0,\"goroutineCount\":"},
        {NULL, "/status/runtimeinfo", NULL, NULL, 200, NULL,
         "\"GOMEMLIMIT\":9223372036854775807,\"GOGC\":\"\",\"GODEBUG\":\"\","
         "\"storageRetention\":\"15d\"}}"},
        {NULL, "/status/tsdb", NULL, NULL, 200, NULL,
         "\"seriesCountByMetricName\":[{\"name\":\"req_total\",\"value\":2},{\"name\":\"up\","
         "\"value\":2},{\"name\":\"odd.metric\",\"value\":1}],"
         "\"labelValueCountByLabelName\":[{\"name\":\"__name__\",\"value\":3},"},
        {NULL, "/status/tsdb", NULL, NULL, 200, NULL,
         "{\"status\":\"success\",\"data\":{\"headStats\":{\"numSeries\":5,\"numLabelPairs\":10,"
         "\"chunkCount\":"},
        {NULL, "/status/tsdb", NULL, NULL, 200, NULL, "\"minTime\":0,\"maxTime\":300000},"},
        {NULL, "/status/tsdb", "limit=1", NULL, 200, NULL,
         "\"seriesCountByLabelValuePair\":[{\"name\":\"job=a\",\"value\":3}]}}"},
        {NULL, "/status/tsdb", "limit=0", NULL, 400, BAD("limit must be a positive number"), NULL},
        {NULL, "/status/tsdb", "limit=10001", NULL, 400, BAD("limit must not exceed 10000"), NULL},
    };
    run_cases(f, cases, sizeof cases / sizeof cases[0]);
}

static void test_routing(void **state)
{
    fixture *f = *state;
    static const api_case cases[] = {
        {NULL, "/nope", NULL, NULL, 404, "404 page not found\n", NULL},
        {NULL, "", NULL, NULL, 404, "404 page not found\n", NULL},
        /* httprouter matches an empty :name, which is then invalid. */
        {NULL, "/label//values", NULL, NULL, 400, BAD("invalid label name: \\\"\\\""), NULL},
        {NULL, "/label/a/b/values", NULL, NULL, 404, "404 page not found\n", NULL},
        {"POST", "/targets", NULL, NULL, 405, "Method Not Allowed\n", NULL},
        {"DELETE", "/query", NULL, NULL, 405, "Method Not Allowed\n", NULL},
        {"OPTIONS", "/anything", NULL, NULL, 204, "", NULL},
        {NULL, "/labels/", "a=b", NULL, 301, "", NULL},
        {"POST", "/query/", NULL, NULL, 308, "", NULL},
    };
    run_cases(f, cases, sizeof cases / sizeof cases[0]);
    /* Allow and Location headers. */
    apiv1_request rq = {.method = "POST", .path = "/metadata"};
    apiv1_response resp;
    apiv1_handle(f->api, &rq, &resp);
    assert_string_equal(resp.allow, "GET, OPTIONS");
    apiv1_response_cleanup(&resp);
    rq = (apiv1_request){.method = "PUT", .path = "/query"};
    apiv1_handle(f->api, &rq, &resp);
    assert_string_equal(resp.allow, "GET, OPTIONS, POST");
    apiv1_response_cleanup(&resp);
    rq = (apiv1_request){.method = "GET", .path = "/labels/", .query = "a=b", .query_len = 3,
                         .has_origin = true};
    apiv1_handle(f->api, &rq, &resp);
    assert_string_equal(resp.location, "/api/v1/labels?a=b");
    assert_true(resp.cors);
    apiv1_response_cleanup(&resp);
}

static void test_queries(void **state)
{
    fixture *f = *state;
    static const api_case cases[] = {
        /* Instant vector; time defaults to now (300 s). */
        {NULL, "/query", "query=up", NULL, 200,
         OK("{\"resultType\":\"vector\",\"result\":["
            "{\"metric\":{\"__name__\":\"up\",\"instance\":\"h:1\",\"job\":\"a\"},\"value\":[300,"
            "\"1\"]},"
            "{\"metric\":{\"__name__\":\"up\",\"instance\":\"h:2\",\"job\":\"b\"},\"value\":[300,"
            "\"0\"]}]}"),
         NULL},
        /* A form body wins over the query string (r.FormValue). */
        {"POST", "/query", "query=up", "query=sum%28up%29&time=150.5", 200,
         OK("{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[150.500,\"1\"]}]}"),
         NULL},
        {NULL, "/query", "query=sum%20by%20(code)%20(rate(req_total[1m]))&time=2015-07-01T20:10:51Z",
         NULL, 200, OK("{\"resultType\":\"vector\",\"result\":[]}"), NULL},
        {NULL, "/query", "query=sum%20by%20(code)%20(rate(req_total[1m]))&time=120", NULL, 200,
         OK("{\"resultType\":\"vector\",\"result\":["
            /* Prometheus's rate: 45 * ((60 / 45) / 60), not exactly 1 */
            "{\"metric\":{\"code\":\"200\"},\"value\":[120,\"0.9999999999999999\"]},"
            "{\"metric\":{\"code\":\"500\"},\"value\":[120,\"0.09999999999999999\"]}]}"),
         NULL},
        {NULL, "/query", "query=up&limit=1", NULL, 200,
         "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":["
         "{\"metric\":{\"__name__\":\"up\",\"instance\":\"h:1\",\"job\":\"a\"},\"value\":[300,"
         "\"1\"]}]},\"warnings\":[\"results truncated due to limit\"]}",
         NULL},
        /* Scalars: the time as a JSON number, the value in 'f' format. */
        {NULL, "/query", "query=1e-7&time=1.5", NULL, 200,
         OK("{\"resultType\":\"scalar\",\"result\":[1.5,\"0.0000001\"]}"), NULL},
        {NULL, "/query", "query=time()", NULL, 200,
         OK("{\"resultType\":\"scalar\",\"result\":[300,\"300\"]}"), NULL},
        {NULL, "/query", "query=%22a%3Cb%22&time=0", NULL, 200,
         OK("{\"resultType\":\"string\",\"result\":[0,\"a\\u003cb\"]}"), NULL},
        {NULL, "/query", "query=vector(1e-7)&time=0.001", NULL, 200,
         OK("{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0.001,\"1e-07\"]}]}"),
         NULL},
        /* A range vector instant query gives a matrix. */
        {NULL, "/query", "query=up{job=\"b\"}[30s]&time=300", NULL, 200,
         OK("{\"resultType\":\"matrix\",\"result\":[{\"metric\":{\"__name__\":\"up\","
            "\"instance\":\"h:2\",\"job\":\"b\"},\"values\":[[285,\"0\"],[300,\"0\"]]}]}"),
         NULL},
        /* Annotations become infos with their position. */
        {NULL, "/query", "query=rate(up[1m])&time=300", NULL, 200, NULL,
         "\"infos\":[\"PromQL info: metric might not be a counter, name does not end in "
         "_total/_sum/_count/_bucket: \\\"up\\\" (1:6)\"]}"},
        /* Range queries. */
        {NULL, "/query_range", "query=req_total{code=\"200\"}&start=0&end=60&step=30", NULL, 200,
         OK("{\"resultType\":\"matrix\",\"result\":[{\"metric\":{\"__name__\":\"req_total\","
            "\"code\":\"200\",\"job\":\"a\"},\"values\":[[0,\"0\"],[30,\"30\"],[60,\"60\"]]}]}"),
         NULL},
        {"POST", "/query_range", NULL, "query=1&start=0&end=1&step=0.5", 200,
         OK("{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"values\":[[0,\"1\"],[0.500,"
            "\"1\"],[1,\"1\"]]}]}"),
         NULL},
        {NULL, "/query_range", "query=up&start=0&end=300&step=1m&limit=1", NULL, 200, NULL,
         "\"warnings\":[\"results truncated due to limit\"]}"},
        {NULL, "/query", "query=lookback_test&lookback_delta=x", NULL, 400,
         BAD("error parsing lookback delta duration: cannot parse \\\"x\\\" to a valid duration"),
         NULL},
        /* lookback_delta: the last samples (300 s) are 100 s before 400 s. */
        {NULL, "/query", "query=up&time=400&lookback_delta=1m", NULL, 200,
         OK("{\"resultType\":\"vector\",\"result\":[]}"), NULL},
        {NULL, "/query", "query=count(up)&time=400", NULL, 200,
         OK("{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[400,\"2\"]}]}"),
         NULL},
        {NULL, "/query", "query=up%5B5m%5D%20offset%20-6m&time=0", NULL, 200, NULL,
         "\"values\":[[75,\"1\"],[90,\"1\"],"},

        /* Errors. */
        {NULL, "/query", "query=sum(", NULL, 400,
         BAD("invalid parameter \\\"query\\\": 1:5: parse error: unclosed left parenthesis"),
         NULL},
        {NULL, "/query", NULL, NULL, 400, NULL, "invalid parameter \\\"query\\\": 1:1: parse error"},
        {NULL, "/query", "query=up&time=x", NULL, 400,
         BAD("invalid parameter \\\"time\\\": invalid time value for 'time': cannot parse "
             "\\\"x\\\" to a valid timestamp"),
         NULL},
        {NULL, "/query", "query=up&timeout=x", NULL, 400,
         BAD("invalid parameter \\\"timeout\\\": cannot parse \\\"x\\\" to a valid duration"),
         NULL},
        {NULL, "/query", "query=up&timeout=0", NULL, 503,
         "{\"status\":\"error\",\"errorType\":\"timeout\",\"error\":\"query timed out in query "
         "queue\"}",
         NULL},
        {NULL, "/query_range", "query=up&end=1&step=1", NULL, 400,
         BAD("invalid parameter \\\"start\\\": cannot parse \\\"\\\" to a valid timestamp"), NULL},
        {NULL, "/query_range", "query=up&start=1&step=1", NULL, 400,
         BAD("invalid parameter \\\"end\\\": cannot parse \\\"\\\" to a valid timestamp"), NULL},
        {NULL, "/query_range", "query=up&start=2&end=1&step=1", NULL, 400,
         BAD("invalid parameter \\\"end\\\": end timestamp must not be before start time"), NULL},
        {NULL, "/query_range", "query=up&start=1&end=2", NULL, 400,
         BAD("invalid parameter \\\"step\\\": cannot parse \\\"\\\" to a valid duration"), NULL},
        {NULL, "/query_range", "query=up&start=1&end=2&step=0", NULL, 400,
         BAD("invalid parameter \\\"step\\\": zero or negative query resolution step widths are "
             "not accepted. Try a positive integer"),
         NULL},
        {NULL, "/query_range", "query=up&start=1&end=2&step=-5m", NULL, 400, NULL,
         "cannot parse \\\"-5m\\\" to a valid duration"},
        {NULL, "/query_range", "query=up&start=0&end=11001&step=1", NULL, 400,
         BAD("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the "
             "query resolution (?step=XX)"),
         NULL},
        {NULL, "/query_range", "query=up&start=0&end=11000&step=1&limit=x", NULL, 400, NULL,
         "invalid parameter \\\"limit\\\""},
        {NULL, "/query_range", "query=up[5m]&start=0&end=1&step=1", NULL, 400,
         BAD("invalid parameter \\\"query\\\": invalid expression type \\\"range vector\\\" for "
             "range query, must be Scalar or instant Vector"),
         NULL},
        {NULL, "/query_range", "query=%22s%22&start=0&end=1&step=1", NULL, 400, NULL,
         "invalid expression type \\\"string\\\" for range query"},
        {NULL, "/query", "query=up[1000y]", NULL, 400, NULL, "invalid parameter \\\"query\\\": "},
        {NULL, "/query", "query=1/", NULL, 400, NULL, "1:3: parse error"},
    };
    run_cases(f, cases, sizeof cases / sizeof cases[0]);
}

static void test_format_parse_exemplars(void **state)
{
    fixture *f = *state;
    static const api_case cases[] = {
        {NULL, "/format_query", "query=sum(rate(x[5m]))by(job)", NULL, 200,
         OK("\"sum by (job) (rate(x[5m]))\""), NULL},
        {"POST", "/format_query", NULL, "query=foo%7Bbar%3D%22baz%22%7D", 200,
         OK("\"foo{bar=\\\"baz\\\"}\""), NULL},
        {NULL, "/format_query", "query=sum(", NULL, 400,
         BAD("invalid parameter \\\"query\\\": 1:5: parse error: unclosed left parenthesis"),
         NULL},
        {NULL, "/parse_query", "query=-x%20offset%201m", NULL, 200,
         OK("{\"expr\":{\"anchored\":false,\"matchers\":[{\"name\":\"__name__\",\"type\":\"=\","
            "\"value\":\"x\"}],\"name\":\"x\",\"offset\":60000,\"offsetExpr\":null,\"smoothed\":"
            "false,\"startOrEnd\":null,\"timestamp\":null,\"type\":\"vectorSelector\"},\"op\":\"-"
            "\",\"type\":\"unaryExpr\"}"),
         NULL},
        {NULL, "/parse_query", "query=a%20%2B%20on(b)%20group_left%20c", NULL, 200, NULL,
         "\"matching\":{\"card\":\"many-to-one\",\"fillValues\":{\"lhs\":null,\"rhs\":null},"
         "\"include\":[],\"labels\":[\"b\"],\"on\":true}"},
        {NULL, "/parse_query", "query=topk(3,%20x)%20@%20start()", NULL, 400, NULL,
         "parse error"},
        {NULL, "/parse_query", "query=topk(3,%20x%20@%20start())", NULL, 200, NULL,
         "\"op\":\"topk\",\"param\":{\"type\":\"numberLiteral\",\"val\":\"3\"}"},
        {NULL, "/query_exemplars", "query=up", NULL, 200, OK("[]"), NULL},
        {NULL, "/query_exemplars", "query=1%2B1", NULL, 204, "", NULL},
        {NULL, "/query_exemplars", "query=up&start=2&end=1", NULL, 400,
         BAD("end timestamp must not be before start timestamp"), NULL},
        {NULL, "/query_exemplars", "query=sum(", NULL, 400,
         BAD("1:5: parse error: unclosed left parenthesis"), NULL},
    };
    run_cases(f, cases, sizeof cases / sizeof cases[0]);
}

static void assert_hist_json(const promql_fh *h, const char *want)
{
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    json_writer w;
    json_writer_init(&w, &out);
    apiv1_write_histogram(&w, h);
    assert_int_equal(json_writer_error(&w), 0);
    if (strcmp(buf_cstr(&out), want) != 0) fail_msg("got  %s\nwant %s", buf_cstr(&out), want);
    buf_cleanup(&out);
}

/* Histogram values in Prometheus's JSON shape (jsonutil.MarshalHistogram):
 * negative buckets [lower, upper) first, highest magnitude first, then the
 * closed zero bucket, then (lower, upper] positive buckets; empty buckets
 * are left out, and so is "buckets" when nothing is left. */
static void test_histogram_json(void **state)
{
    (void)state;
    promql_fh *h = promql_fh_new();
    assert_hist_json(h, "{\"count\":\"0\",\"sum\":\"0\"}");
    h->count = 12;
    h->sum = 3.5;
    h->zero_threshold = 0.001;
    h->zero_count = 2;
    promql_fh_set_bucket(h, true, 0, 1);
    promql_fh_set_bucket(h, true, 1, 0);
    promql_fh_set_bucket(h, true, 2, 3);
    promql_fh_set_bucket(h, false, 1, 4);
    promql_fh_set_bucket(h, false, 3, 0.5);
    assert_hist_json(h, "{\"count\":\"12\",\"sum\":\"3.5\",\"buckets\":["
                        "[1,\"-8\",\"-4\",\"0.5\"],[1,\"-2\",\"-1\",\"4\"],"
                        "[3,\"-0.001\",\"0.001\",\"2\"],"
                        "[0,\"0.5\",\"1\",\"1\"],[0,\"2\",\"4\",\"3\"]]}");
    /* Schema -1 doubles the exponent steps; an empty zero bucket with a
     * threshold is not written. */
    promql_fh *g = promql_fh_new();
    g->schema = -1;
    g->count = 1;
    g->sum = 1.2;
    g->zero_threshold = 0.001;
    promql_fh_set_bucket(g, true, 1, 1);
    assert_hist_json(g, "{\"count\":\"1\",\"sum\":\"1.2\",\"buckets\":["
                        "[0,\"1\",\"4\",\"1\"]]}");
    /* Custom buckets: -Inf below the first bound, +Inf above the last. */
    promql_fh *c = promql_fh_new();
    c->schema = PROMQL_FH_CUSTOM_SCHEMA;
    c->count = 3;
    c->sum = 7;
    c->custom = mem_malloc(2 * sizeof *c->custom);
    c->custom[0] = 1;
    c->custom[1] = 2;
    c->n_custom = 2;
    promql_fh_set_bucket(c, true, 0, 1);
    promql_fh_set_bucket(c, true, 2, 2);
    assert_hist_json(c, "{\"count\":\"3\",\"sum\":\"7\",\"buckets\":["
                        "[0,\"-Inf\",\"1\",\"1\"],[0,\"2\",\"+Inf\",\"2\"]]}");
    promql_fh_free(h);
    promql_fh_free(g);
    promql_fh_free(c);
}

/* Every response parses as JSON with Prometheus's envelope. */
static void test_envelopes_are_json(void **state)
{
    fixture *f = *state;
    static const char *const paths[][2] = {
        {"/query", "query=up"},
        {"/query", "query=x{"},
        {"/query_range", "query=req_total&start=0&end=300&step=15"},
        {"/series", "match[]=up"},
        {"/labels", NULL},
        {"/label/job/values", NULL},
        {"/metadata", NULL},
        {"/targets", NULL},
        {"/status/buildinfo", NULL},
        {"/status/config", NULL},
        {"/status/flags", NULL},
        {"/status/runtimeinfo", NULL},
        {"/status/tsdb", NULL},
        {"/format_query", "query=up"},
        {"/parse_query", "query=sum%20by(a)(rate(x[5m:1m]%20offset%201m))%20%3E%20bool%201"},
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        unsigned status;
        char *body = call(f->api, "GET", paths[i][0], paths[i][1], NULL, NULL, &status, NULL, NULL);
        json_error_t je;
        json_t *j = json_loads(body, 0, &je);
        if (!j) fail_msg("%s: not JSON (%s): %s", paths[i][0], je.text, body);
        const char *st = json_string_value(json_object_get(j, "status"));
        assert_non_null(st);
        if (status == 200) {
            assert_string_equal(st, "success");
            assert_non_null(json_object_get(j, "data"));
        } else {
            assert_string_equal(st, "error");
            assert_non_null(json_object_get(j, "errorType"));
        }
        json_decref(j);
        mem_free(body);
    }
}

/* Large matrices come as a stream of parts and are the same JSON. */
static void test_streamed_matrix(void **state)
{
    fixture *f = *state;
    /* 4 series x 10,001 steps of 30 ms > APIV1_STREAM_MIN_POINTS. */
    unsigned status;
    bool streamed;
    char *body = call(f->api, "GET", "/query_range",
                      "query=req_total%20or%20up&start=0&end=300&step=0.03", NULL, NULL, &status,
                      NULL, &streamed);
    assert_int_equal(status, 200);
    assert_true(streamed);
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    if (!j) fail_msg("streamed body is not JSON: %s", je.text);
    json_t *data = json_object_get(j, "data");
    assert_string_equal(json_string_value(json_object_get(data, "resultType")), "matrix");
    json_t *result = json_object_get(data, "result");
    assert_int_equal(json_array_size(result), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *values = json_object_get(json_array_get(result, i), "values");
        assert_int_equal(json_array_size(values), 10001);
    }
    /* Sorted by labels, as Prometheus returns range results. */
    json_t *m0 = json_object_get(json_array_get(result, 0), "metric");
    assert_string_equal(json_string_value(json_object_get(m0, "__name__")), "req_total");
    json_t *last = json_array_get(json_object_get(json_array_get(result, 0), "values"), 10000);
    assert_true(json_real_value(json_array_get(last, 0)) == 300.0 ||
                json_integer_value(json_array_get(last, 0)) == 300);
    assert_string_equal(json_string_value(json_array_get(last, 1)), "300");
    json_decref(j);
    mem_free(body);
    /* With a limit the truncation warning comes after the streamed data. */
    body = call(f->api, "GET", "/query_range",
                "query=req_total%20or%20up&start=0&end=300&step=0.03&limit=3", NULL, NULL, &status,
                NULL, &streamed);
    assert_true(streamed);
    j = json_loads(body, 0, &je);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(json_object_get(j, "data"), "result")), 3);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "warnings"), 0)),
                        "results truncated due to limit");
    json_decref(j);
    mem_free(body);
}

/* --query.max-samples and the querier's cap: execution errors with
 * Prometheus's message; the API keeps answering. */
static void test_limits(void **state)
{
    fixture *f = *state;
    apiv1_options o = {
        .st = f->st,
        .reader_get = fx_reader_get,
        .reader_put = fx_reader_put,
        .reader_ctx = f,
        .now_ms = fx_now,
        .engine = {.max_samples = 50},
        .max_concurrency = 1,
    };
    apiv1 *a = apiv1_new(&o);
    unsigned status;
    /* 84 points (4 series x 21) against 50 */
    char *body = call(a, "GET", "/query", "query={__name__=~%22up|req_total%22}[5m]", NULL, NULL,
                      &status, NULL, NULL);
    assert_int_equal(status, 422);
    assert_string_equal(body, "{\"status\":\"error\",\"errorType\":\"execution\",\"error\":\"query "
                              "processing would load too many samples into memory in query "
                              "execution\"}");
    mem_free(body);
    body = call(a, "GET", "/query", "query=sum(up)", NULL, NULL, &status, NULL, NULL);
    assert_int_equal(status, 200);
    mem_free(body);
    apiv1_free(a);
}

/* The querier alone: one snapshot, series with their points, stale markers
 * kept, empty series left out. */
static void test_querier(void **state)
{
    fixture *f = *state;
    uint64_t s = ref(f->st, tu_labels("__name__", "stale_test", NULL));
    store_batch *b = store_batch_new(f->st);
    store_batch_add(b, s, 1000, 1);
    store_batch_add(b, s, 2000, strutil_stale_nan());
    assert_int_equal(store_batch_commit(b), 0);
    store_reader *r;
    assert_int_equal(store_reader_open(f->st, &r), 0);
    querier q;
    querier_options qo = {.max_samples = 30};
    assert_int_equal(querier_begin(&q, r, &qo), 0);
    promql_queryable src;
    querier_queryable(&q, &src);
    label_matcher m;
    assert_int_equal(labels_matcher_init(&m, MATCH_EQ, "__name__", 8, "stale_test", 10, NULL), 0);
    promql_matrix out = {0};
    buf err;
    buf_init(&err, 1024);
    assert_int_equal(src.select(src.ctx, &m, 1, 0, 5000, &out, &err), 0);
    assert_int_equal(out.n, 1);
    assert_int_equal(out.v[0].n, 2);
    assert_true(out.v[0].pts[0].t == 1000 && out.v[0].pts[0].v == 1);
    assert_true(strutil_is_stale_nan(out.v[0].pts[1].v));
    promql_matrix_cleanup(&out);
    /* No samples in range: no series. */
    assert_int_equal(src.select(src.ctx, &m, 1, 3000, 5000, &out, &err), 0);
    assert_int_equal(out.n, 0);
    promql_matrix_cleanup(&out);
    labels_matcher_cleanup(&m);
    /* The sample cap. */
    assert_int_equal(labels_matcher_init(&m, MATCH_EQ, "__name__", 8, "up", 2, NULL), 0);
    assert_int_equal(src.select(src.ctx, &m, 1, 0, 300000, &out, &err), -E2BIG);
    assert_int_equal(out.n, 0);
    assert_int_equal(q.limit, QUERIER_LIMIT_SAMPLES);
    assert_string_equal(buf_cstr(&err), "query processing would load too many samples into "
                                        "memory in query execution");
    promql_matrix_cleanup(&out);
    querier_end(&q);
    /* A passed deadline. */
    qo = (querier_options){.deadline_ms = querier_now_ms() - 1};
    assert_int_equal(querier_begin(&q, r, &qo), 0);
    querier_queryable(&q, &src);
    buf_reset(&err);
    assert_int_equal(src.select(src.ctx, &m, 1, 0, 300000, &out, &err), -ETIMEDOUT);
    assert_int_equal(q.limit, QUERIER_LIMIT_DEADLINE);
    querier_end(&q);
    querier_end(&q); /* twice is fine */
    labels_matcher_cleanup(&m);
    buf_cleanup(&err);
    store_reader_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_like_go),
        cmocka_unit_test(test_time_param),
        cmocka_unit_test(test_duration_param),
        cmocka_unit_test(test_format_time),
        cmocka_unit_test(test_histogram_json),
        cmocka_unit_test_setup_teardown(test_series_labels_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_targets_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_parse_exemplars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_envelopes_are_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streamed_matrix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_querier, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
