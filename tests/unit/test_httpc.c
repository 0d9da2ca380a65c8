/* Unit tests for httpc against a fake HTTP/1.1 server on a unix socket
 * (fakesrv.h): plain requests, the body limit, connect errors, and the
 * streaming mode (chunks handed to on_data as they arrive, the status
 * visible before the body, non-2xx bodies collected, abort from on_data,
 * a stream cut mid-chunk, timeout and cancel of a stream, other transfers
 * completing while a stream stays open, httpc_fetch with on_data). */
#include "testutil.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fakesrv.h"
#include "httpc.h"

static char dir[256];
static char sock[300];
static fsrv *srv;
static bool released; /* under srv->mu */

static bool handler(fsrv *s, int fd, const fsrv_req *rq, void *ctx)
{
    (void)ctx;
    if (strcmp(rq->path, "/plain") == 0) return fsrv_respond(fd, 200, "text/plain", "hello", 5);
    if (strcmp(rq->path, "/big") == 0) {
        static char big[10000];
        memset(big, 'x', sizeof big);
        return fsrv_respond(fd, 200, "text/plain", big, sizeof big);
    }
    if (strcmp(rq->path, "/stream") == 0) {
        /* Headers now, the body only once the test has seen the status. */
        if (!fsrv_chunked_start(fd, 200, "application/json")) return false;
        pthread_mutex_lock(&s->mu);
        while (!released && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
        const char *parts[] = {"line1\n", "li", "ne2\n", "line3\n"};
        for (size_t i = 0; i < 4; i++) {
            if (!fsrv_chunk(fd, parts[i], strlen(parts[i]))) return false;
            fsrv_sleep(s, 10);
        }
        return fsrv_chunk_end(fd);
    }
    if (strcmp(rq->path, "/stream-abrupt") == 0) {
        fsrv_chunked_start(fd, 200, "application/json");
        fsrv_chunk(fd, "partial", 7);
        /* A chunk header promising more than is sent, then close. */
        fsrv_printf(fd, "100\r\nshort");
        return false;
    }
    if (strcmp(rq->path, "/stream-forever") == 0) {
        if (!fsrv_chunked_start(fd, 200, "application/json")) return false;
        while (fsrv_sleep(s, 20))
            if (!fsrv_chunk(fd, "tick\n", 5)) return false;
        return false;
    }
    if (strcmp(rq->path, "/stream-404") == 0)
        return fsrv_respond_json(fd, 404, "{\"message\":\"page not found\"}");
    return fsrv_respond_json(fd, 400, "{\"message\":\"unknown path\"}");
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sw-httpc-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(sock, sizeof sock, "%s/srv.sock", dir);
    released = false;
    srv = fsrv_start(sock, handler, NULL);
    return srv ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fsrv_stop(srv);
    srv = NULL;
    rmdir(dir);
    return 0;
}

typedef struct result {
    bool done;
    enum httpc_result res;
    long status;
    char error[256];
    buf body;   /* collected by the done callback */
    buf stream; /* collected by on_data */
    int pieces;
    int abort_after; /* on_data returns 1 after this many pieces (0: never) */
} result;

static void result_init(result *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->body, BUF_UNLIMITED);
    buf_init(&r->stream, BUF_UNLIMITED);
}

static void result_cleanup(result *r)
{
    buf_cleanup(&r->body);
    buf_cleanup(&r->stream);
}

static void on_done(void *ctx, const httpc_response *resp)
{
    result *r = ctx;
    r->done = true;
    r->res = resp->result;
    r->status = resp->status;
    snprintf(r->error, sizeof r->error, "%s", resp->error ? resp->error : "");
    buf_append(&r->body, resp->body, resp->body_len);
}

static int on_data(void *ctx, const char *p, size_t n)
{
    result *r = ctx;
    buf_append(&r->stream, p, n);
    r->pieces++;
    return r->abort_after && r->pieces >= r->abort_after ? 1 : 0;
}

static httpc_request req_for(const char *path, char *url, size_t n)
{
    snprintf(url, n, "http://fake%s", path);
    return (httpc_request){.url = url, .unix_socket = sock, .timeout_ms = 5000};
}

static void poll_until(httpc *h, bool *flag, int ms)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!*flag) {
        httpc_poll(h, 20, -1);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 > ms) break;
    }
}

static void test_plain_and_limit(void **state)
{
    (void)state;
    httpc *h = httpc_new();
    char u1[128], u2[128];
    result a, b;
    result_init(&a);
    result_init(&b);
    httpc_request r1 = req_for("/plain", u1, sizeof u1);
    httpc_request r2 = req_for("/big", u2, sizeof u2);
    r2.body_limit = 1000;
    assert_int_equal(httpc_start(h, &r1, on_done, &a, NULL), 0);
    assert_int_equal(httpc_start(h, &r2, on_done, &b, NULL), 0);
    poll_until(h, &a.done, 3000);
    poll_until(h, &b.done, 3000);
    assert_true(a.done && b.done);
    assert_int_equal(a.res, HTTPC_OK);
    assert_int_equal(a.status, 200);
    assert_string_equal(buf_cstr(&a.body), "hello");
    assert_int_equal(b.res, HTTPC_ERR_TOO_LARGE);
    assert_int_equal(httpc_running(h), 0);
    result_cleanup(&a);
    result_cleanup(&b);
    httpc_free(h);
}

static void test_connect_error(void **state)
{
    (void)state;
    httpc *h = httpc_new();
    char path[400];
    snprintf(path, sizeof path, "%s/missing.sock", dir);
    result a;
    result_init(&a);
    httpc_request r = {.url = "http://fake/plain", .unix_socket = path, .timeout_ms = 2000};
    assert_int_equal(httpc_start(h, &r, on_done, &a, NULL), 0);
    poll_until(h, &a.done, 3000);
    assert_true(a.done);
    assert_int_equal(a.res, HTTPC_ERR_CONNECT);
    assert_int_equal(a.status, 0);
    assert_true(a.error[0] != '\0');
    result_cleanup(&a);
    httpc_free(h);
}

/* The status is visible before any body byte; pieces arrive in order and
 * the done callback sees an empty body. Meanwhile plain requests complete
 * on the same client. */
static void test_stream(void **state)
{
    (void)state;
    httpc *h = httpc_new();
    char u[128], u2[128];
    result s, p[3];
    result_init(&s);
    httpc_request r = req_for("/stream", u, sizeof u);
    r.on_data = on_data;
    r.data_ctx = &s;
    httpc_transfer *t = NULL;
    assert_int_equal(httpc_start(h, &r, on_done, &s, &t), 0);
    assert_non_null(t);
    for (int i = 0; i < 200 && httpc_transfer_status(t) == 0; i++)
        httpc_poll(h, 10, -1);
    assert_int_equal(httpc_transfer_status(t), 200);
    assert_int_equal(s.pieces, 0);
    assert_false(s.done);

    httpc_request r2 = req_for("/plain", u2, sizeof u2);
    for (int i = 0; i < 3; i++) {
        result_init(&p[i]);
        assert_int_equal(httpc_start(h, &r2, on_done, &p[i], NULL), 0);
    }
    for (int i = 0; i < 3; i++) {
        poll_until(h, &p[i].done, 3000);
        assert_int_equal(p[i].res, HTTPC_OK);
        assert_string_equal(buf_cstr(&p[i].body), "hello");
        result_cleanup(&p[i]);
    }
    assert_false(s.done);

    pthread_mutex_lock(&srv->mu);
    released = true;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    poll_until(h, &s.done, 3000);
    assert_true(s.done);
    assert_int_equal(s.res, HTTPC_OK);
    assert_int_equal(s.status, 200);
    assert_string_equal(buf_cstr(&s.stream), "line1\nline2\nline3\n");
    assert_true(s.pieces >= 2);
    assert_int_equal(s.body.len, 0);
    result_cleanup(&s);
    httpc_free(h);
}

static void test_stream_non_2xx_collected(void **state)
{
    (void)state;
    httpc *h = httpc_new();
    char u[128];
    result s;
    result_init(&s);
    httpc_request r = req_for("/stream-404", u, sizeof u);
    r.on_data = on_data;
    r.data_ctx = &s;
    assert_int_equal(httpc_start(h, &r, on_done, &s, NULL), 0);
    poll_until(h, &s.done, 3000);
    assert_int_equal(s.res, HTTPC_OK);
    assert_int_equal(s.status, 404);
    assert_int_equal(s.pieces, 0);
    assert_string_equal(buf_cstr(&s.body), "{\"message\":\"page not found\"}");
    result_cleanup(&s);
    httpc_free(h);
}

static void test_stream_abort_from_callback(void **state)
{
    (void)state;
    httpc *h = httpc_new();
    char u[128];
    result s;
    result_init(&s);
    s.abort_after = 2;
    httpc_request r = req_for("/stream-forever", u, sizeof u);
    r.on_data = on_data;
    r.data_ctx = &s;
    assert_int_equal(httpc_start(h, &r, on_done, &s, NULL), 0);
    poll_until(h, &s.done, 3000);
    assert_true(s.done);
    assert_int_equal(s.res, HTTPC_ERR_CANCELLED);
    assert_string_equal(s.error, "aborted by the data callback");
    assert_int_equal(s.pieces, 2);
    result_cleanup(&s);
    httpc_free(h);
}

static void test_stream_cut(void **state)
{
    (void)state;
    httpc *h = httpc_new();
    char u[128];
    result s;
    result_init(&s);
    httpc_request r = req_for("/stream-abrupt", u, sizeof u);
    r.on_data = on_data;
    r.data_ctx = &s;
    assert_int_equal(httpc_start(h, &r, on_done, &s, NULL), 0);
    poll_until(h, &s.done, 3000);
    assert_true(s.done);
    assert_int_equal(s.res, HTTPC_ERR_TRANSFER);
    assert_int_equal(s.status, 200);
    /* What arrived before the cut was delivered. */
    assert_true(strncmp(buf_cstr(&s.stream), "partial", 7) == 0);
    result_cleanup(&s);
    httpc_free(h);
}

static void test_stream_timeout_and_cancel(void **state)
{
    (void)state;
    httpc *h = httpc_new();
    char u[128];
    result a, b;
    result_init(&a);
    result_init(&b);
    httpc_request r = req_for("/stream-forever", u, sizeof u);
    r.on_data = on_data;
    r.data_ctx = &a;
    r.timeout_ms = 150;
    assert_int_equal(httpc_start(h, &r, on_done, &a, NULL), 0);
    httpc_request r2 = req_for("/stream-forever", u, sizeof u);
    r2.on_data = on_data;
    r2.data_ctx = &b;
    httpc_transfer *t = NULL;
    assert_int_equal(httpc_start(h, &r2, on_done, &b, &t), 0);
    poll_until(h, &a.done, 3000);
    assert_int_equal(a.res, HTTPC_ERR_TIMEOUT);
    assert_true(a.pieces > 0);
    assert_false(b.done);
    assert_true(b.pieces > 0);
    httpc_cancel(h, t);
    assert_true(b.done);
    assert_int_equal(b.res, HTTPC_ERR_CANCELLED);
    assert_int_equal(httpc_running(h), 0);
    result_cleanup(&a);
    result_cleanup(&b);
    httpc_free(h);
}

static void test_fetch_with_on_data(void **state)
{
    (void)state;
    pthread_mutex_lock(&srv->mu);
    released = true;
    pthread_mutex_unlock(&srv->mu);
    char u[128];
    result s;
    result_init(&s);
    httpc_request r = req_for("/stream", u, sizeof u);
    r.on_data = on_data;
    r.data_ctx = &s;
    httpc_response resp;
    assert_int_equal(httpc_fetch(&r, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body_len, 0);
    assert_string_equal(buf_cstr(&s.stream), "line1\nline2\nline3\n");
    httpc_response_cleanup(&resp);

    /* Without on_data the same body is collected. */
    httpc_request r2 = req_for("/stream", u, sizeof u);
    assert_int_equal(httpc_fetch(&r2, &resp), 0);
    assert_string_equal(resp.body, "line1\nline2\nline3\n");
    httpc_response_cleanup(&resp);
    result_cleanup(&s);
}

/* httpc_free with a stream open cancels it (its callback runs). */
static void test_free_cancels_stream(void **state)
{
    (void)state;
    httpc *h = httpc_new();
    char u[128];
    result s;
    result_init(&s);
    httpc_request r = req_for("/stream-forever", u, sizeof u);
    r.on_data = on_data;
    r.data_ctx = &s;
    assert_int_equal(httpc_start(h, &r, on_done, &s, NULL), 0);
    for (int i = 0; i < 100 && s.pieces == 0; i++)
        httpc_poll(h, 10, -1);
    assert_true(s.pieces > 0);
    httpc_free(h);
    assert_true(s.done);
    assert_int_equal(s.res, HTTPC_ERR_CANCELLED);
    result_cleanup(&s);
}

int main(void)
{
    httpc_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_non_2xx_collected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_abort_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_timeout_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_with_on_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_cancels_stream, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    httpc_global_cleanup();
    return rc;
}
