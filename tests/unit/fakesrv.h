/* A tiny HTTP/1.1 server on a unix socket for unit tests (httpc, docker).
 *
 * One thread accepts, one thread per connection reads requests and hands
 * each to the test's handler, which writes the response itself (helpers
 * below: a whole response with Content-Length, or chunked pieces), may
 * delay (fsrv_sleep wakes early when the server stops), and says whether
 * the connection stays open for another request. fsrv_stop() shuts every
 * connection down, joins every thread and removes the socket file, so a
 * test can "restart the engine" by stopping and starting on the same path.
 * Header-only and static so each test binary gets its own copy. */
#ifndef SIDEWATCH_FAKESRV_H
#define SIDEWATCH_FAKESRV_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

typedef struct fsrv fsrv;

typedef struct fsrv_req {
    char method[16];
    char path[4096]; /* with the query string */
    char *head;      /* request line and headers (NUL-terminated), valid during the handler */
    char *body;      /* the Content-Length body (NUL-terminated), valid during the handler */
    size_t body_len;
} fsrv_req;

/* The value of header `name` (case-insensitive) copied into out (cap
 * bytes); false when absent. */
static inline bool fsrv_header(const fsrv_req *rq, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = rq->head ? strstr(rq->head, "\r\n") : NULL; p && p[2];
         p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t n = e ? (size_t)(e - v) : strlen(v);
            if (n >= cap) n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

/* Handles one request on fd (runs on the connection's thread). Returns true
 * to keep the connection open for the next request. */
typedef bool (*fsrv_fn)(fsrv *s, int fd, const fsrv_req *rq, void *ctx);

typedef struct fsrv_conn {
    int fd; /* -1 once closed */
    pthread_t thread;
    fsrv *srv;
} fsrv_conn;

struct fsrv {
    char path[108];
    int lfd;
    fsrv_fn fn;
    void *ctx;
    pthread_t acceptor;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    fsrv_conn **conns;
    size_t n_conns, cap_conns;
    unsigned long requests; /* handled so far */
};

static inline bool fsrv_write(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

static inline bool fsrv_printf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline bool fsrv_printf(int fd, const char *fmt, ...)
{
    char tmp[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) return false;
    return fsrv_write(fd, tmp, (size_t)n);
}

static inline const char *fsrv_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 404:
        return "Not Found";
    case 400:
        return "Bad Request";
    case 429:
        return "Too Many Requests";
    default:
        return status >= 500 ? "Internal Server Error" : "Status";
    }
}

/* A whole response with Content-Length (keep-alive). */
static inline bool fsrv_respond(int fd, int status, const char *ctype, const char *body, size_t len)
{
    return fsrv_printf(fd,
                       "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nApi-Version: 1.41\r\n"
                       "Content-Length: %zu\r\n\r\n",
                       status, fsrv_reason(status), ctype, len) &&
           (len == 0 || fsrv_write(fd, body, len));
}

static inline bool fsrv_respond_json(int fd, int status, const char *body)
{
    return fsrv_respond(fd, status, "application/json", body, strlen(body));
}

/* Headers of a chunked response; then fsrv_chunk() pieces and fsrv_chunk_end(). */
static inline bool fsrv_chunked_start(int fd, int status, const char *ctype)
{
    return fsrv_printf(fd,
                       "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nApi-Version: 1.41\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n",
                       status, fsrv_reason(status), ctype);
}

static inline bool fsrv_chunk(int fd, const char *p, size_t n)
{
    if (n == 0) return true;
    return fsrv_printf(fd, "%zx\r\n", n) && fsrv_write(fd, p, n) && fsrv_write(fd, "\r\n", 2);
}

static inline bool fsrv_chunk_end(int fd)
{
    return fsrv_write(fd, "0\r\n\r\n", 5);
}

/* Sleeps up to ms; returns false at once (or early) when the server stops. */
static inline bool fsrv_sleep(fsrv *s, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) break;
    }
    bool ok = !s->stopping;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static inline bool fsrv_stopping(fsrv *s)
{
    pthread_mutex_lock(&s->mu);
    bool st = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* Reads one request head (and skips a Content-Length body). Returns false
 * on EOF or error. `pend`/`npend` carry bytes read past the request. */
static inline bool fsrv_read_request(int fd, char *pend, size_t *npend, size_t cap, fsrv_req *rq)
{
    for (;;) {
        pend[*npend] = '\0';
        /* Not HTTP (a TLS ClientHello starts with 0x16): hang up. */
        if (*npend > 0 && (pend[0] < 'A' || pend[0] > 'Z')) return false;
        char *end = strstr(pend, "\r\n\r\n");
        if (end) {
            size_t head = (size_t)(end - pend) + 4;
            memset(rq, 0, sizeof *rq);
            if (sscanf(pend, "%15s %4095s", rq->method, rq->path) != 2) return false;
            size_t body = 0;
            const char *cl = strcasestr(pend, "\r\ncontent-length:");
            if (cl && cl < end) body = strtoul(cl + 17, NULL, 10);
            while (*npend < head + body) {
                if (*npend >= cap) return false;
                ssize_t r = recv(fd, pend + *npend, cap - *npend, 0);
                if (r <= 0) return false;
                *npend += (size_t)r;
            }
            rq->head = malloc(head + 1);
            memcpy(rq->head, pend, head);
            rq->head[head] = '\0';
            rq->body = malloc(body + 1);
            memcpy(rq->body, pend + head, body);
            rq->body[body] = '\0';
            rq->body_len = body;
            memmove(pend, pend + head + body, *npend - head - body);
            *npend -= head + body;
            return true;
        }
        if (*npend >= cap) return false;
        ssize_t r = recv(fd, pend + *npend, cap - *npend, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        *npend += (size_t)r;
    }
}

static inline void *fsrv_conn_main(void *arg)
{
    fsrv_conn *c = arg;
    fsrv *s = c->srv;
    size_t cap = 64 * 1024, npend = 0;
    char *pend = malloc(cap + 1);
    fsrv_req rq;
    while (fsrv_read_request(c->fd, pend, &npend, cap, &rq)) {
        pthread_mutex_lock(&s->mu);
        s->requests++;
        pthread_mutex_unlock(&s->mu);
        bool keep = s->fn(s, c->fd, &rq, s->ctx);
        free(rq.head);
        free(rq.body);
        if (!keep) break;
    }
    free(pend);
    pthread_mutex_lock(&s->mu);
    close(c->fd);
    c->fd = -1;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static inline void *fsrv_accept_main(void *arg)
{
    fsrv *s = arg;
    for (;;) {
        /* Poll so a stop is noticed without relying on shutdown() waking accept(). */
        struct pollfd pfd = {.fd = s->lfd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0) {
            if (fsrv_stopping(s)) break;
            continue;
        }
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (fsrv_stopping(s)) break;
            continue;
        }
        pthread_mutex_lock(&s->mu);
        if (s->stopping) {
            pthread_mutex_unlock(&s->mu);
            close(fd);
            break;
        }
        if (s->n_conns == s->cap_conns) {
            s->cap_conns = s->cap_conns ? s->cap_conns * 2 : 16;
            s->conns = realloc(s->conns, s->cap_conns * sizeof *s->conns);
        }
        fsrv_conn *c = calloc(1, sizeof *c);
        c->fd = fd;
        c->srv = s;
        s->conns[s->n_conns++] = c;
        pthread_create(&c->thread, NULL, fsrv_conn_main, c);
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

/* Listens on path (an old socket file there is removed). NULL on failure. */
static inline fsrv *fsrv_start(const char *path, fsrv_fn fn, void *ctx)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) return NULL;
    fsrv *s = calloc(1, sizeof *s);
    memcpy(s->path, path, strlen(path) + 1);
    s->fn = fn;
    s->ctx = ctx;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    memcpy(a.sun_path, path, strlen(path) + 1);
    unlink(path);
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(s->lfd, 64) < 0) {
        if (s->lfd >= 0) close(s->lfd);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        return NULL;
    }
    pthread_create(&s->acceptor, NULL, fsrv_accept_main, s);
    return s;
}

/* Listens on 127.0.0.1 on a free port (written to *port). NULL on failure. */
static inline fsrv *fsrv_start_tcp(fsrv_fn fn, void *ctx, int *port)
{
    fsrv *s = calloc(1, sizeof *s);
    s->fn = fn;
    s->ctx = ctx;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(s->lfd, 64) < 0 ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al) < 0) {
        if (s->lfd >= 0) close(s->lfd);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        return NULL;
    }
    *port = ntohs(a.sin_port);
    pthread_create(&s->acceptor, NULL, fsrv_accept_main, s);
    return s;
}

/* Wakes every fsrv_sleep (handlers that wait on their own conditions use
 * s->mu / s->cv too). */
static inline void fsrv_broadcast(fsrv *s)
{
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Closes every open connection abruptly (the server keeps listening). */
static inline void fsrv_drop_connections(fsrv *s)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_conns; i++)
        if (s->conns[i]->fd >= 0) shutdown(s->conns[i]->fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->mu);
}

static inline unsigned long fsrv_requests(fsrv *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned long n = s->requests;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Stops listening, removes the socket file (unix), closes every connection and
 * joins every thread. NULL is a no-op. */
static inline void fsrv_stop(fsrv *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->path[0]) unlink(s->path);
    shutdown(s->lfd, SHUT_RDWR);
    pthread_join(s->acceptor, NULL);
    close(s->lfd);
    fsrv_drop_connections(s);
    for (size_t i = 0; i < s->n_conns; i++) {
        pthread_join(s->conns[i]->thread, NULL);
        free(s->conns[i]);
    }
    free(s->conns);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

#endif
