/* Unit tests for the HTTP server's threading (api.c on libmicrohttpd's
 * epoll loop) and its worker pool (workq): the pool runs every job, never
 * more threads than its cap, and refuses jobs once stopped; the server
 * keeps answering /-/healthy while a slow handler runs on a worker, holds
 * hundreds of idle connections without refusing a request (and does
 * refuse past --web.max-connections), closes a connection that trickles
 * its headers past the header deadline while a keep-alive one that sent
 * its request stays, and checks basic auth on a worker (bcrypt) and then
 * from its cache. Real sockets on 127.0.0.1. */
#include "testutil.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "buf.h"
#include "mem.h"
#include "registry.h"
#include "webconfig.h"
#include "workq.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- workq ------------------------------------------------------------------- */

typedef struct wq_state {
    atomic_int done, running, max_running;
    int sleep_ms;
} wq_state;

static void wq_job(void *arg)
{
    wq_state *s = arg;
    int r = atomic_fetch_add(&s->running, 1) + 1;
    int m = atomic_load(&s->max_running);
    while (r > m && !atomic_compare_exchange_weak(&s->max_running, &m, r)) {
    }
    if (s->sleep_ms) sleep_ms(s->sleep_ms);
    atomic_fetch_sub(&s->running, 1);
    atomic_fetch_add(&s->done, 1);
}

static void test_workq_runs_every_job_within_its_cap(void **state)
{
    (void)state;
    wq_state s = {.sleep_ms = 20};
    workq *q = workq_new("test", 3);
    assert_int_equal(workq_threads(q), 0); /* threads start on demand */
    for (int i = 0; i < 12; i++)
        assert_int_equal(workq_submit(q, wq_job, &s), 0);
    workq_free(q); /* runs what is queued, then joins */
    assert_int_equal(atomic_load(&s.done), 12);
    assert_true(atomic_load(&s.max_running) <= 3);
    assert_true(atomic_load(&s.max_running) >= 2); /* jobs did run side by side */
}

static void test_workq_refuses_after_stop(void **state)
{
    (void)state;
    wq_state s = {0};
    workq *q = workq_new("test", 2);
    assert_int_equal(workq_submit(q, wq_job, &s), 0);
    workq_stop(q);
    assert_int_equal(atomic_load(&s.done), 1);
    assert_int_equal(workq_submit(q, wq_job, &s), -ESHUTDOWN);
    assert_int_equal(atomic_load(&s.done), 1);
    workq_free(q);
    workq_free(NULL);
}

/* ---- a server on 127.0.0.1 --------------------------------------------------------- */

typedef struct server {
    api *a;
    registry *reg;
    int port;
    char addr[64];
    atomic_int reloads;
    int reload_ms; /* how long a reload takes */
} server;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    return ntohs(sa.sin_port);
}

static int slow_reload(void *ctx, buf *err)
{
    (void)err;
    server *s = ctx;
    sleep_ms(s->reload_ms);
    atomic_fetch_add(&s->reloads, 1);
    return 0;
}

static void no_quit(void *ctx)
{
    (void)ctx;
}

static void server_start(server *s, unsigned max_conns, unsigned header_timeout_s, webconfig *wc)
{
    s->reg = registry_new();
    s->port = free_port();
    snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", s->port);
    api_options o = {
        .listen_address = s->addr,
        .reg = s->reg,
        .enable_lifecycle = true,
        .reload = slow_reload,
        .quit = no_quit,
        .ctx = s,
        .web = wc,
        .max_connections = max_conns,
        .header_timeout_s = header_timeout_s,
    };
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    int rc = api_start(&s->a, &o, &err);
    if (rc < 0) fail_msg("api_start: %s", buf_cstr(&err));
    buf_cleanup(&err);
    api_set_ready(s->a, true);
}

static void server_stop(server *s)
{
    api_stop(s->a);
    registry_free(s->reg);
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads until the peer closes or timeout_ms passes; returns the bytes
 * read, or -1 on a reset. */
static ssize_t read_all(int fd, char *out, size_t cap, int timeout_ms)
{
    size_t n = 0;
    double end = now_s() + timeout_ms / 1000.0;
    while (n + 1 < cap) {
        int left = (int)((end - now_s()) * 1000);
        if (left <= 0) break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left) <= 0) break;
        ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
        if (r < 0) return errno == ECONNRESET ? -1 : (ssize_t)n;
        if (r == 0) break;
        n += (size_t)r;
    }
    out[n] = '\0';
    return (ssize_t)n;
}

/* One request on a fresh connection ("Connection: close"); returns the
 * status (0 if there was no answer) and the response in resp. */
static int http(int port, const char *method, const char *path, const char *extra, char *resp,
                size_t cap)
{
    int fd = dial(port);
    if (fd < 0) return 0;
    char req[1024];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n", method,
             path, extra ? extra : "");
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
        close(fd);
        return 0;
    }
    ssize_t n = read_all(fd, resp, cap, 5000);
    close(fd);
    int status = 0;
    if (n > 12) sscanf(resp, "HTTP/1.1 %d", &status);
    return status;
}

typedef struct reload_call {
    int port, status;
    double took;
} reload_call;

static void *do_reload(void *arg)
{
    reload_call *c = arg;
    char resp[4096];
    double t0 = now_s();
    c->status = http(c->port, "POST", "/-/reload", NULL, resp, sizeof resp);
    c->took = now_s() - t0;
    return NULL;
}

/* A handler that takes 1.5 s (a reload) runs on a worker: /-/healthy,
 * answered by the event loop, stays fast meanwhile. */
static void test_slow_handler_does_not_stall_the_loop(void **state)
{
    (void)state;
    server s = {.reload_ms = 1500};
    server_start(&s, 0, 0, NULL);
    reload_call rc = {.port = s.port};
    pthread_t th;
    pthread_create(&th, NULL, do_reload, &rc);
    sleep_ms(200); /* the reload is running */
    char resp[4096];
    double worst = 0;
    for (int i = 0; i < 10; i++) {
        double t0 = now_s();
        assert_int_equal(http(s.port, "GET", "/-/healthy", NULL, resp, sizeof resp), 200);
        double took = now_s() - t0;
        if (took > worst) worst = took;
    }
    assert_int_equal(atomic_load(&s.reloads), 0); /* still running: the above overlapped it */
    pthread_join(th, NULL);
    assert_int_equal(rc.status, 200);
    assert_true(rc.took >= 1.4);
    assert_int_equal(atomic_load(&s.reloads), 1);
    if (worst > 0.25) fail_msg("/-/healthy took %.3f s while a reload ran", worst);
    server_stop(&s);
}

/* 500 idle connections take no worker: requests keep being answered.
 * Past --web.max-connections a request finds no room. */
static void test_idle_connections_and_the_limit(void **state)
{
    (void)state;
    server s = {0};
    server_start(&s, 0, 0, NULL);
    int idle[500];
    for (int i = 0; i < 500; i++) {
        idle[i] = dial(s.port);
        assert_true(idle[i] >= 0);
    }
    sleep_ms(300);
    char resp[4096];
    for (int i = 0; i < 5; i++) {
        double t0 = now_s();
        assert_int_equal(http(s.port, "GET", "/-/healthy", NULL, resp, sizeof resp), 200);
        assert_true(now_s() - t0 < 1.0);
    }
    for (int i = 0; i < 500; i++)
        close(idle[i]);
    server_stop(&s);

    server small = {0};
    server_start(&small, 20, 0, NULL);
    int held[20];
    for (int i = 0; i < 20; i++) {
        held[i] = dial(small.port);
        assert_true(held[i] >= 0);
    }
    sleep_ms(300);
    assert_int_equal(http(small.port, "GET", "/-/healthy", NULL, resp, sizeof resp), 0);
    for (int i = 0; i < 20; i++)
        close(held[i]);
    sleep_ms(300);
    assert_int_equal(http(small.port, "GET", "/-/healthy", NULL, resp, sizeof resp), 200);
    server_stop(&small);
}

/* With a 1 s header deadline: a client that trickles its request line a
 * byte at a time is closed after about a second (MHD's own timeout, from
 * the last byte, would never fire); a keep-alive connection that sent a
 * complete request stays open past it; the closure is counted. */
static void test_header_deadline(void **state)
{
    (void)state;
    server s = {0};
    server_start(&s, 0, 1, NULL);
    double t0 = now_s();
    int loris = dial(s.port);
    int kept = dial(s.port);
    assert_true(loris >= 0 && kept >= 0);
    const char *req = "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(kept, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    char resp[4096];
    /* read the first answer (keep-alive: the connection stays) */
    ssize_t n = read_all(kept, resp, sizeof resp, 500);
    assert_true(n > 0 && strstr(resp, "200 OK"));

    const char *trickle = "GET /-/healthy HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    bool closed = false;
    for (size_t i = 0; i < strlen(trickle) && !closed; i++) {
        if (send(loris, trickle + i, 1, MSG_NOSIGNAL) < 0) {
            closed = true;
            break;
        }
        struct pollfd p = {.fd = loris, .events = POLLIN};
        if (poll(&p, 1, 150) > 0) {
            char b[64];
            if (recv(loris, b, sizeof b, 0) <= 0) closed = true;
        }
    }
    double took = now_s() - t0;
    assert_true(closed);
    if (took < 0.9 || took > 3.5) fail_msg("the slow client was closed after %.2f s", took);

    sleep_ms(1200); /* past the deadline for kept too, had it applied */
    assert_int_equal(send(kept, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    n = read_all(kept, resp, sizeof resp, 500);
    assert_true(n > 0 && strstr(resp, "200 OK"));
    close(kept);
    close(loris);

    static char metrics[1 << 16];
    assert_int_equal(http(s.port, "GET", "/metrics", NULL, metrics, sizeof metrics), 200);
    assert_non_null(
        strstr(metrics, "sidewatch_http_requests_refused_total{reason=\"header_timeout\"} 1"));
    server_stop(&s);
}

/* Basic auth: an uncached password is checked on a worker (the connection
 * suspended meanwhile), then answered from the cache; wrong passwords and
 * users get 401. */
static void test_basic_auth_on_a_worker(void **state)
{
    (void)state;
    char salt[64];
    assert_non_null(crypt_gensalt_rn("$2y$", 4, NULL, 0, salt, sizeof salt));
    struct crypt_data cd;
    memset(&cd, 0, sizeof cd);
    const char *hash = crypt_rn("secret", salt, &cd, (int)sizeof cd);
    assert_non_null(hash);
    char yml[256];
    snprintf(yml, sizeof yml, "basic_auth_users:\n  alice: '%s'\n", hash);
    webconfig *wc = NULL;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    if (webconfig_load_string(yml, strlen(yml), "web.yml", NULL, &wc, &err) < 0)
        fail_msg("%s", buf_cstr(&err));
    buf_cleanup(&err);
    server s = {0};
    server_start(&s, 0, 0, wc);
    char resp[4096];
    /* alice:secret, alice:wrong, bob:secret */
    const char *good = "Authorization: Basic YWxpY2U6c2VjcmV0\r\n";
    const char *bad = "Authorization: Basic YWxpY2U6d3Jvbmc=\r\n";
    const char *nouser = "Authorization: Basic Ym9iOnNlY3JldA==\r\n";
    /* not cached yet: a worker runs bcrypt */
    assert_int_equal(http(s.port, "GET", "/-/healthy", bad, resp, sizeof resp), 401);
    assert_non_null(strstr(resp, "WWW-Authenticate: Basic"));
    /* not cached yet, with a body still to read after the check */
    int fd = dial(s.port);
    const char *post = "POST /-/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
                       "YWxpY2U6c2VjcmV0\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    assert_int_equal(send(fd, post, strlen(post), MSG_NOSIGNAL), (ssize_t)strlen(post));
    assert_true(read_all(fd, resp, sizeof resp, 3000) > 0);
    assert_non_null(strstr(resp, "HTTP/1.1 200"));
    close(fd);
    /* cached now */
    assert_int_equal(http(s.port, "GET", "/-/healthy", good, resp, sizeof resp), 200);
    assert_non_null(strstr(resp, "Healthy"));
    assert_int_equal(http(s.port, "GET", "/-/healthy", bad, resp, sizeof resp), 401);
    assert_int_equal(http(s.port, "GET", "/-/healthy", nouser, resp, sizeof resp), 401);
    assert_int_equal(http(s.port, "GET", "/-/healthy", NULL, resp, sizeof resp), 401);
    assert_int_equal(atomic_load(&s.reloads), 1);
    server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workq_runs_every_job_within_its_cap),
        cmocka_unit_test(test_workq_refuses_after_stop),
        cmocka_unit_test(test_slow_handler_does_not_stall_the_loop),
        cmocka_unit_test(test_idle_connections_and_the_limit),
        cmocka_unit_test(test_header_deadline),
        cmocka_unit_test(test_basic_auth_on_a_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
