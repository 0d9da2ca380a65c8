#include "api.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "apiv1.h"
#include "expfmt.h"
#include "hmap.h"
#include "labels.h"
#include "log.h"
#include "mem.h"
#include "protoparse.h"
#include "registry.h"
#include "strutil.h"
#include "textwrite.h"
#include "workq.h"

/* Basic-auth verifications remembered. */
#define API_AUTH_CACHE 100

/* Responses above this size are gzip-compressed when the client accepts it. */
#define API_GZIP_MIN_BYTES 1024
/* Cap on a /federate or /metrics body. */
#define API_MAX_RESPONSE (512 * 1024 * 1024)

struct api {
    api_options o;
    struct MHD_Daemon *daemon;
    atomic_bool ready;
    int listen_fd;

    pthread_mutex_t readers_mu; /* pool of idle read connections */
    store_reader **readers;
    size_t n_readers, cap_readers;

    apiv1 *v1; /* /api/v1/ */

    /* --web.config.file: the one in force and the ones it replaced (kept
     * until api_stop: a request may still hold one). */
    pthread_mutex_t web_mu;
    webconfig *web;
    webconfig **old_web;
    size_t n_old_web;
    char *tls_cert, *tls_key, *tls_trust, *tls_prio; /* given to MHD, freed after it */
    enum webconfig_client_auth client_auth;          /* fixed at start, as TLS is */

    /* Verified basic-auth answers, so bcrypt runs once per user and
     * password (exporter-toolkit caches too); round-robin replacement. */
    pthread_mutex_t auth_mu;
    struct auth_entry {
        char *user, *pass, *hash;
        bool ok;
    } auth_cache[API_AUTH_CACHE];
    size_t auth_next;

    registry_family *refused; /* sidewatch_http_requests_refused_total{reason} */

    workq *wq; /* runs the requests that take time (dispatch, run_job) */

    /* Connections still sending their first request's headers, oldest
     * first, and the thread that closes those past header_timeout_s. */
    pthread_mutex_t track_mu;
    pthread_cond_t sweeper_cv;
    struct conn_track *waiting_head, *waiting_tail;
    unsigned header_timeout_s;
    bool sweeper_stop, sweeper_started;
    pthread_t sweeper_thread;
};

/* What the event loop does with a request once its body is in. */
enum route {
    ROUTE_NONE,
    ROUTE_AUTH, /* basic auth not in the cache: bcrypt on a worker */
    ROUTE_METRICS,
    ROUTE_FEDERATE,
    ROUTE_RELOAD,
    ROUTE_REMOTE_WRITE,
    ROUTE_V1,
};

/* Where a request stands with the worker pool. */
enum job_state {
    JOB_NONE,    /* nothing handed to a worker */
    JOB_RUNNING, /* a worker has it; the connection is suspended */
    JOB_DONE,    /* the worker finished and resumed the connection */
};

/* Per-request state across MHD callbacks, created by the URI logger (the
 * only place that sees the raw query string). Everything a handler reads
 * from the connection is copied here on the event loop, so a worker never
 * touches the MHD connection (only MHD_resume_connection, its last act). */
typedef struct request {
    api *a;
    struct MHD_Connection *c;
    char *uri; /* as received: path and query string, still escaped */
    char *url, *method;
    char *accept, *content_type, *content_encoding; /* headers, or NULL */
    bool accept_gzip, has_origin;
    const char **fed_match; /* /federate's match[] arguments (owned copies) */
    size_t n_fed_match;
    const webconfig *web; /* in force when the headers arrived (kept until api_stop) */
    buf body;
    bool too_large;
    bool started;    /* the access handler has seen the headers */
    bool quit_after; /* POST /-/quit: shut down once the answer is sent */
    bool denied;     /* answered 401 before the body was read */
    /* Basic auth checked on a worker (bcrypt is slow): the credentials
     * copied from the request, and the answer. */
    char *auth_user, *auth_pass;
    const char *auth_hash;
    bool auth_ok;
    enum route route;
    _Atomic enum job_state job;
    /* The answer a handler made, queued by the event loop. */
    struct MHD_Response *resp;
    unsigned status;
} request;

#define API_V1_PREFIX "/api/v1"

/* ---- responses ----------------------------------------------------------- */

static bool accepts_gzip(struct MHD_Connection *c)
{
    const char *ae = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept-Encoding");
    return ae && strstr(ae, "gzip");
}

/* Keeps r as the request's answer (replacing one made before) and returns
 * MHD_YES; the event loop queues it. */
static enum MHD_Result set_response(request *rq, unsigned status, struct MHD_Response *r)
{
    if (rq->resp) MHD_destroy_response(rq->resp);
    rq->resp = r;
    rq->status = status;
    return MHD_YES;
}

/* gzip-compresses in into out; returns 0 or -EIO. */
static int gzip_buf(const buf *in, buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -EIO;
    size_t bound = deflateBound(&z, in->len);
    if (buf_reserve(out, bound) < 0) {
        deflateEnd(&z);
        return -E2BIG;
    }
    z.next_in = (Bytef *)(in->data ? in->data : "");
    z.avail_in = (uInt)in->len;
    z.next_out = (Bytef *)out->data + out->len;
    z.avail_out = (uInt)bound;
    int rc = deflate(&z, Z_FINISH);
    if (rc != Z_STREAM_END) {
        deflateEnd(&z);
        return -EIO;
    }
    out->len += z.total_out;
    deflateEnd(&z);
    return 0;
}

/* Prometheus's CORS headers (httputil.SetCORS with the default origin
 * pattern), sent when the request has an Origin header. */
static void add_cors(struct MHD_Response *r)
{
    MHD_add_response_header(r, "Access-Control-Allow-Headers",
                            "Accept, Authorization, Content-Type, Origin");
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(r, "Access-Control-Expose-Headers", "Date");
    MHD_add_response_header(r, "Vary", "Origin");
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
}

/* The headers of an /api/v1 response besides the body's. */
static void add_v1_headers(struct MHD_Response *r, const apiv1_response *v)
{
    if (!v) return;
    if (v->allow) MHD_add_response_header(r, "Allow", v->allow);
    if (v->location) MHD_add_response_header(r, "Location", v->location);
    if (v->cors) add_cors(r);
    if (v->content_type && strncmp(v->content_type, "text/plain", 10) == 0)
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
}

static enum MHD_Result respond_v1(request *rq, unsigned status, const char *ctype, buf *body,
                                  const apiv1_response *v);

/* http_server_config.headers of the web config in force. */
static void add_web_headers(struct MHD_Response *r, const webconfig *wc)
{
    for (size_t i = 0; wc && i < wc->n_headers; i++)
        MHD_add_response_header(r, wc->headers[i].name, wc->headers[i].value);
}

/* Makes the answer: body (taken) with status and content type. */
static enum MHD_Result respond(request *rq, unsigned status, const char *ctype, buf *body)
{
    return respond_v1(rq, status, ctype, body, NULL);
}

/* respond(), with the extra headers of an /api/v1 response (v may be NULL). */
static enum MHD_Result respond_v1(request *rq, unsigned status, const char *ctype, buf *body,
                                  const apiv1_response *v)
{
    bool gz = false;
    if (body->len >= API_GZIP_MIN_BYTES && rq->accept_gzip) {
        buf z;
        buf_init(&z, API_MAX_RESPONSE);
        if (gzip_buf(body, &z) == 0) {
            buf_cleanup(body);
            *body = z;
            gz = true;
        } else {
            buf_cleanup(&z);
        }
    }
    size_t len;
    char *data = buf_detach(body, &len);
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback(len, data, mem_free);
    if (!r) {
        mem_free(data);
        return MHD_NO;
    }
    if (ctype) MHD_add_response_header(r, "Content-Type", ctype);
    if (gz) MHD_add_response_header(r, "Content-Encoding", "gzip");
    MHD_add_response_header(r, "Vary", "Accept-Encoding");
    add_v1_headers(r, v);
    add_web_headers(r, rq->web);
    return set_response(rq, status, r);
}

static enum MHD_Result respond_text(request *rq, unsigned status, const char *text)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_puts(&b, text);
    return respond(rq, status, "text/plain; charset=utf-8", &b);
}

/* ---- store readers ------------------------------------------------------------ */

static store_reader *reader_get(api *a)
{
    pthread_mutex_lock(&a->readers_mu);
    store_reader *r = a->n_readers ? a->readers[--a->n_readers] : NULL;
    pthread_mutex_unlock(&a->readers_mu);
    if (!r && store_reader_open(a->o.st, &r) < 0) return NULL;
    return r;
}

static void reader_put(api *a, store_reader *r)
{
    pthread_mutex_lock(&a->readers_mu);
    if (a->n_readers < 8) {
        a->readers = mem_grow(a->readers, sizeof *a->readers, a->n_readers + 1, &a->cap_readers);
        a->readers[a->n_readers++] = r;
        r = NULL;
    }
    pthread_mutex_unlock(&a->readers_mu);
    if (r) store_reader_close(r);
}

/* ---- /metrics -------------------------------------------------------------------- */

/* /metrics in the protobuf format: the registry, then the extra metrics
 * (written as text) converted. */
static enum MHD_Result handle_metrics_protobuf(api *a, request *rq)
{
    buf b;
    buf_init(&b, API_MAX_RESPONSE);
    int rc = registry_write_protobuf(a->o.reg, buf_sink, &b);
    if (rc == 0 && a->o.extra_metrics) {
        buf t;
        buf_init(&t, API_MAX_RESPONSE);
        rc = a->o.extra_metrics(a->o.ctx, TEXTPARSE_PROMETHEUS, &t);
        if (rc == 0 && t.len) rc = registry_text_to_protobuf(t.data, t.len, buf_sink, &b);
        buf_cleanup(&t);
    }
    if (rc < 0) {
        buf_cleanup(&b);
        return respond_text(rq, 500, "error writing metrics\n");
    }
    return respond(rq, 200, PROTOPARSE_CONTENT_TYPE, &b);
}

static enum MHD_Result handle_metrics(api *a, request *rq)
{
    const char *accept = rq->accept;
    if (registry_negotiate_protobuf(accept)) return handle_metrics_protobuf(a, rq);
    enum textparse_format f = textwrite_negotiate(accept);
    buf b;
    buf_init(&b, API_MAX_RESPONSE);
    if (registry_write(a->o.reg, f, buf_sink, &b) < 0) {
        buf_cleanup(&b);
        return respond_text(rq, 500, "error writing metrics\n");
    }
    if (a->o.extra_metrics) {
        static const char eof[] = "# EOF\n";
        bool om = f == TEXTPARSE_OPENMETRICS && b.len >= sizeof eof - 1 &&
                  memcmp(b.data + b.len - (sizeof eof - 1), eof, sizeof eof - 1) == 0;
        if (om) buf_truncate(&b, b.len - (sizeof eof - 1));
        if (a->o.extra_metrics(a->o.ctx, f, &b) < 0 || (om && buf_puts(&b, eof) < 0)) {
            buf_cleanup(&b);
            return respond_text(rq, 500, "error writing metrics\n");
        }
    }
    return respond(rq, 200,
                   f == TEXTPARSE_OPENMETRICS ? TEXTWRITE_CONTENT_TYPE_OPENMETRICS
                                              : TEXTWRITE_CONTENT_TYPE_PROMETHEUS,
                   &b);
}

/* ---- /federate ---------------------------------------------------------------------- */

typedef struct arg_list {
    const char *name;
    const char **v;
    size_t n, cap;
} arg_list;

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    arg_list *l = cls;
    if (key && strcmp(key, l->name) == 0) {
        l->v = mem_grow(l->v, sizeof *l->v, l->n + 1, &l->cap);
        l->v[l->n++] = mem_strdup(value ? value : ""); /* MHD's copy is the connection's */
    }
    return MHD_YES;
}

typedef struct fed_sample {
    labels *ls;
    int64_t t;
    double v;
} fed_sample;

static int cmp_fed(const void *x, const void *y)
{
    const fed_sample *a = x, *b = y;
    size_t al, bl;
    const char *an = labels_metric_name(a->ls, &al), *bn = labels_metric_name(b->ls, &bl);
    size_t n = al < bl ? al : bl;
    int c = memcmp(an, bn, n);
    if (c) return c;
    if (al != bl) return al < bl ? -1 : 1;
    return labels_compare(a->ls, b->ls);
}

static bool ref_eq(const void *val, const void *key)
{
    return (uint64_t)(uintptr_t)val == *(const uint64_t *)key;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result handle_federate(api *a, request *rq)
{
    arg_list args = {.v = rq->fed_match, .n = rq->n_fed_match};
    int64_t maxt = wall_ms(), mint = maxt - a->o.lookback_ms;
    buf err;
    buf_init(&err, 4096);
    fed_sample *vec = NULL;
    size_t nvec = 0, cap = 0;
    hmap seen; /* series refs already taken (several match[] may overlap) */
    hmap_init(&seen);
    store_reader *r = NULL;
    unsigned status = 200;

    for (size_t i = 0; i < args.n && status == 200; i++) {
        label_matcher *ms;
        size_t nm;
        int prc = labels_parse_selector_max(args.v[i], strlen(args.v[i]),
                                            a->o.v1.parse.max_regex_bytes, &ms, &nm, &err);
        if (prc < 0) {
            if (prc == -E2BIG && a->v1) apiv1_count_refused(a->v1, APIV1_REFUSED_REGEX_TOO_LARGE);
            status = 400;
            break;
        }
        if (!r && !(r = reader_get(a))) {
            buf_puts(&err, "storage unavailable");
            status = 503;
            labels_matchers_free(ms, nm);
            break;
        }
        store_select_result res;
        if (store_select(r, ms, nm, mint, maxt, &res) < 0) {
            buf_puts(&err, "error selecting series");
            status = 500;
            labels_matchers_free(ms, nm);
            break;
        }
        labels_matchers_free(ms, nm);
        for (size_t k = 0; k < res.n; k++) {
            uint64_t ref = res.series[k].ref;
            if (hmap_get(&seen, ref, ref_eq, &ref)) continue;
            store_sample *ss;
            size_t ns;
            if (store_read_samples(r, ref, mint, maxt, &ss, &ns) < 0 || ns == 0) {
                continue;
            }
            store_sample last = ss[ns - 1];
            mem_free(ss);
            if (strutil_is_stale_nan(last.v)) continue;
            vec = mem_grow(vec, sizeof *vec, nvec + 1, &cap);
            vec[nvec].ls = res.series[k].labels;
            res.series[k].labels = NULL;
            vec[nvec].t = last.t;
            vec[nvec].v = last.v;
            nvec++;
            hmap_put(&seen, ref, (void *)(uintptr_t)ref);
        }
        store_select_result_free(&res);
    }
    if (r) reader_put(a, r);
    hmap_cleanup(&seen);
    if (status != 200) {
        for (size_t i = 0; i < nvec; i++)
            labels_free(vec[i].ls);
        mem_free(vec);
        buf_putc(&err, '\n');
        enum MHD_Result ret = respond(rq, status, "text/plain; charset=utf-8", &err);
        return ret;
    }
    buf_cleanup(&err);
    if (nvec > 1) qsort(vec, nvec, sizeof *vec, cmp_fed);

    /* External labels are attached to samples that lack them; "instance" is
     * always among them (empty when not configured), as Prometheus does. */
    config *cfg = a->o.current_config(a->o.ctx);
    const labels *el = cfg->global.external_labels;
    textwrite_label *ext = mem_calloc(el->n + 1, sizeof *ext);
    size_t n_ext = 0;
    size_t il;
    bool have_instance = labels_get(el, "instance", 8, &il) != NULL;
    for (uint32_t k = 0; k < el->n; k++) {
        if (!have_instance && strcmp(el->v[k].name, "instance") > 0) {
            ext[n_ext++] = (textwrite_label){"instance", 8, "", 0};
            have_instance = true;
        }
        ext[n_ext++] =
            (textwrite_label){el->v[k].name, el->v[k].name_len, el->v[k].value, el->v[k].value_len};
    }
    if (!have_instance) ext[n_ext++] = (textwrite_label){"instance", 8, "", 0};

    buf out;
    buf_init(&out, API_MAX_RESPONSE);
    textwrite w;
    textwrite_init(&w, TEXTPARSE_PROMETHEUS, buf_sink, &out);
    textwrite_label *lv = NULL;
    size_t lcap = 0;
    const char *last_name = NULL;
    size_t last_len = 0;
    for (size_t i = 0; i < nvec; i++) {
        const labels *ls = vec[i].ls;
        size_t nl;
        const char *name = labels_metric_name(ls, &nl);
        if (nl == 0) continue; /* nameless series are not federated */
        if (!last_name || nl != last_len || memcmp(name, last_name, nl) != 0) {
            textwrite_type(&w, name, nl, EXPFMT_UNKNOWN);
            last_name = name;
            last_len = nl;
        }
        size_t n = 0;
        lv = mem_grow(lv, sizeof *lv, ls->n + n_ext + 1, &lcap);
        for (uint32_t k = 0; k < ls->n; k++) {
            if (ls->v[k].name_len == 8 && memcmp(ls->v[k].name, LABELS_METRIC_NAME, 8) == 0)
                continue;
            lv[n++] = (textwrite_label){ls->v[k].name, ls->v[k].name_len, ls->v[k].value,
                                        ls->v[k].value_len};
        }
        for (size_t k = 0; k < n_ext; k++) {
            size_t dummy;
            if (!labels_get(ls, ext[k].name, ext[k].name_len, &dummy)) lv[n++] = ext[k];
        }
        int64_t t = vec[i].t;
        textwrite_sample(&w, name, nl, lv, n, vec[i].v, &t);
    }
    mem_free(lv);
    mem_free(ext);
    config_unref(cfg);
    for (size_t i = 0; i < nvec; i++)
        labels_free(vec[i].ls);
    mem_free(vec);
    if (textwrite_error(&w) < 0) {
        buf_cleanup(&out);
        return respond_text(rq, 500, "federation response too large\n");
    }
    return respond(rq, 200, TEXTWRITE_CONTENT_TYPE_PROMETHEUS, &out);
}

/* ---- /api/v1 ---------------------------------------------------------------------------- */

/* A streamed /api/v1 body: parts from apiv1_stream_next, gzip-compressed
 * on the fly (zlib, one deflate stream) when the client accepts it. */
typedef struct stream_ctx {
    apiv1_stream *s;
    buf part; /* the current part, uncompressed */
    buf out;  /* bytes ready to send */
    size_t off;
    bool gz, done;
    z_stream z;
} stream_ctx;

/* Deflates in[0..len) into out; with finish, ends the gzip stream. Returns
 * 0 or -EIO. */
static int deflate_into(z_stream *z, const char *in, size_t len, buf *out, bool finish)
{
    z->next_in = (Bytef *)(in ? in : "");
    z->avail_in = (uInt)len;
    for (;;) {
        if (buf_reserve(out, 64 * 1024) < 0) return -EIO;
        z->next_out = (Bytef *)out->data + out->len;
        z->avail_out = (uInt)(out->cap - out->len - 1);
        uInt before = z->avail_out;
        int rc = deflate(z, finish ? Z_FINISH : Z_NO_FLUSH);
        out->len += before - z->avail_out;
        out->data[out->len] = '\0';
        if (rc == Z_STREAM_END) return 0;
        if (rc != Z_OK && rc != Z_BUF_ERROR) return -EIO;
        if (z->avail_in == 0 && !finish && z->avail_out > 0) return 0;
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *dst, size_t max)
{
    (void)pos;
    stream_ctx *c = cls;
    /* MHD runs this on its event loop: each call makes at most one part
     * (about APIV1_STREAM_CHUNK bytes of JSON from a result already
     * evaluated), so no call holds the loop for long. 0 would make it spin. */
    while (c->off == c->out.len) {
        if (c->done) return MHD_CONTENT_READER_END_OF_STREAM;
        buf_reset(&c->out);
        buf_reset(&c->part);
        c->off = 0;
        int rc = apiv1_stream_next(c->s, &c->part);
        if (rc < 0) {
            log_warn("web", "streaming a response failed: %s", strerror(-rc));
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (rc == 0) c->done = true;
        if (c->gz) {
            if (deflate_into(&c->z, c->part.data, c->part.len, &c->out, c->done) < 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        } else {
            buf tmp = c->out;
            c->out = c->part;
            c->part = tmp;
        }
    }
    size_t n = c->out.len - c->off;
    if (n > max) n = max;
    memcpy(dst, c->out.data + c->off, n);
    c->off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream_ctx *c = cls;
    apiv1_stream_free(c->s);
    if (c->gz) deflateEnd(&c->z);
    buf_cleanup(&c->part);
    buf_cleanup(&c->out);
    mem_free(c);
}

static enum MHD_Result respond_stream(request *rq, apiv1_response *v)
{
    stream_ctx *sc = mem_calloc(1, sizeof *sc);
    sc->s = v->stream;
    v->stream = NULL;
    buf_init(&sc->part, BUF_UNLIMITED);
    buf_init(&sc->out, BUF_UNLIMITED);
    if (rq->accept_gzip &&
        deflateInit2(&sc->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK)
        sc->gz = true;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, APIV1_STREAM_CHUNK,
                                                               stream_read, sc, stream_free);
    if (!r) {
        stream_free(sc);
        return MHD_NO;
    }
    if (v->content_type) MHD_add_response_header(r, "Content-Type", v->content_type);
    if (sc->gz) MHD_add_response_header(r, "Content-Encoding", "gzip");
    MHD_add_response_header(r, "Vary", "Accept-Encoding");
    add_v1_headers(r, v);
    add_web_headers(r, rq->web);
    return set_response(rq, v->status, r);
}

static enum MHD_Result handle_v1(api *a, request *rq)
{
    const char *q = strchr(rq->uri, '?');
    apiv1_request ar = {
        .method = rq->method,
        .path = rq->url + strlen(API_V1_PREFIX),
        .query = q ? q + 1 : NULL,
        .query_len = q ? strlen(q + 1) : 0,
        .content_type = rq->content_type,
        .body = rq->body.data,
        .body_len = rq->body.len,
        .body_too_large = rq->too_large,
        .has_origin = rq->has_origin,
    };
    apiv1_response v;
    apiv1_handle(a->v1, &ar, &v);
    enum MHD_Result ret;
    if (v.stream) {
        ret = respond_stream(rq, &v);
    } else {
        buf body = v.body;
        buf_init(&v.body, BUF_UNLIMITED);
        ret = respond_v1(rq, v.status, v.content_type, &body, &v);
    }
    apiv1_response_cleanup(&v);
    return ret;
}

static store_reader *v1_reader_get(void *ctx)
{
    return reader_get(ctx);
}

static void v1_reader_put(void *ctx, store_reader *r)
{
    reader_put(ctx, r);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static enum MHD_Result handle_reload(api *a, request *rq)
{
    if (!a->o.enable_lifecycle) return respond_text(rq, 403, "Lifecycle API is not enabled.\n");
    buf err;
    buf_init(&err, 64 * 1024);
    if (a->o.reload(a->o.ctx, &err) < 0) {
        buf msg;
        buf_init(&msg, BUF_UNLIMITED);
        buf_printf(&msg, "failed to reload config: %s\n", buf_cstr(&err));
        buf_cleanup(&err);
        return respond(rq, 500, "text/plain; charset=utf-8", &msg);
    }
    buf_cleanup(&err);
    buf ok;
    buf_init(&ok, BUF_UNLIMITED);
    return respond(rq, 200, "text/plain; charset=utf-8", &ok);
}

/* The shutdown starts in request_done, after the answer went out: started
 * here, it could stop the server before the client read its 200. */
static enum MHD_Result handle_quit(api *a, request *rq)
{
    if (!a->o.enable_lifecycle) return respond_text(rq, 403, "Lifecycle API is not enabled.\n");
    enum MHD_Result r = respond_text(rq, 200, "Requesting termination... Goodbye!\n");
    rq->quit_after = true;
    return r;
}

/* ---- remote write ---------------------------------------------------------------------- */

#define API_REMOTE_WRITE_PATH API_V1_PREFIX "/write"
#define API_PROTOBUF_TYPE "application/x-protobuf"
#define API_RW1_MESSAGE "prometheus.WriteRequest"
#define API_RW2_MESSAGE "io.prometheus.write.v2.Request"

/* Content-Type as client_golang's remote write handler (ParseProtoMsg)
 * reads it: empty means 1.0; else "application/x-protobuf" with an
 * optional proto= parameter that must name the 1.0 message (2.0 is not
 * served). Returns NULL, or the 415 message (caller frees). */
static char *remote_write_type_error(const char *ct)
{
    if (!ct) return NULL;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strlen(ct);
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n == 0) return NULL;
    buf msg;
    buf_init(&msg, BUF_UNLIMITED);
    const char *semi = memchr(ct, ';', n);
    size_t media = semi ? (size_t)(semi - ct) : n;
    if (media != strlen(API_PROTOBUF_TYPE) || memcmp(ct, API_PROTOBUF_TYPE, media) != 0) {
        buf_printf(&msg, "expected %s as the first (media) part, got %.*s content-type",
                   API_PROTOBUF_TYPE, (int)n, ct);
        return buf_detach(&msg, NULL);
    }
    const char *p = semi;
    const char *end = ct + n;
    while (p && p < end) {
        const char *start = p + 1;
        const char *next = memchr(start, ';', (size_t)(end - start));
        const char *pend = next ? next : end;
        const char *eq = memchr(start, '=', (size_t)(pend - start));
        if (!eq || memchr(eq + 1, '=', (size_t)(pend - eq - 1))) {
            buf_printf(&msg,
                       "as per https://www.rfc-editor.org/rfc/rfc9110#parameter expected "
                       "parameters to be key-values, got %.*s in %.*s content-type",
                       (int)(pend - start), start, (int)n, ct);
            return buf_detach(&msg, NULL);
        }
        if (eq - start == 5 && memcmp(start, "proto", 5) == 0) {
            size_t vl = (size_t)(pend - eq - 1);
            const char *v = eq + 1;
            if (vl == strlen(API_RW1_MESSAGE) && memcmp(v, API_RW1_MESSAGE, vl) == 0) {
                buf_cleanup(&msg);
                return NULL;
            }
            if (vl == strlen(API_RW2_MESSAGE) && memcmp(v, API_RW2_MESSAGE, vl) == 0)
                buf_printf(&msg,
                           "%s protobuf message is not accepted by this server; only accepts %s",
                           API_RW2_MESSAGE, API_RW1_MESSAGE);
            else
                buf_printf(&msg,
                           "got %.*s content type; unknown type for remote write protobuf "
                           "message %.*s, supported: %s",
                           (int)n, ct, (int)vl, v, API_RW1_MESSAGE);
            return buf_detach(&msg, NULL);
        }
        p = next;
    }
    buf_cleanup(&msg);
    return NULL;
}

/* POST /api/v1/write: Prometheus 3.x's checks in about its order
 * (client_golang's exp/api/remote handler and snappy middleware):
 * Content-Encoding (415: only snappy or none), body size (413),
 * Content-Type (415), then decoding and storing (rwrecv: 400 / 500; the
 * snappy check comes before the Content-Type one in Prometheus), 204 when
 * stored. Any other method is 405, as Prometheus's router answers. */
static enum MHD_Result handle_remote_write(api *a, request *rq)
{
    if (strcmp(rq->method, "POST") != 0) return respond_text(rq, 405, "Method Not Allowed\n");
    if (!a->o.remote_write)
        return respond_text(
            rq, 404,
            "remote write receiver needs to be enabled with --web.enable-remote-write-receiver\n");
    const char *enc = rq->content_encoding;
    if (enc && *enc && strcmp(enc, "snappy") != 0) {
        buf msg;
        buf_init(&msg, BUF_UNLIMITED);
        buf_printf(&msg,
                   "%s encoding (compression) is not accepted by this server; only snappy is "
                   "acceptable\n",
                   enc);
        return respond(rq, 415, "text/plain; charset=utf-8", &msg);
    }
    if (rq->too_large) {
        buf msg;
        buf_init(&msg, BUF_UNLIMITED);
        buf_printf(&msg, "request body exceeds the %zu bytes limit\n",
                   (size_t)API_MAX_REMOTE_WRITE_BODY);
        return respond(rq, 413, "text/plain; charset=utf-8", &msg);
    }
    char *terr = remote_write_type_error(rq->content_type);
    if (terr) {
        buf msg;
        buf_init(&msg, BUF_UNLIMITED);
        buf_printf(&msg, "%s\n", terr);
        mem_free(terr);
        return respond(rq, 415, "text/plain; charset=utf-8", &msg);
    }
    buf err;
    buf_init(&err, 64 * 1024);
    int rc = a->o.remote_write(a->o.ctx, rq->body.data ? rq->body.data : "", rq->body.len, &err);
    if (rc == 0) {
        buf_cleanup(&err);
        buf none;
        buf_init(&none, BUF_UNLIMITED);
        return respond(rq, 204, "text/plain; charset=utf-8", &none);
    }
    buf msg;
    buf_init(&msg, BUF_UNLIMITED);
    buf_printf(&msg, "%s\n", err.len ? buf_cstr(&err) : "remote write failed");
    buf_cleanup(&err);
    return respond(rq, rc == -EINVAL ? 400 : 500, "text/plain; charset=utf-8", &msg);
}

/* ---- authentication -------------------------------------------------------------------------- */

static void count_refused(api *a, const char *reason)
{
    if (!a->refused) return;
    const char *lv[] = {reason};
    registry_metric *m = registry_child(a->refused, lv);
    if (m) registry_inc(m);
}

/* Equal strings, in time that depends on the lengths only. */
static bool ct_equal(const char *x, const char *y)
{
    size_t lx = strlen(x), ly = strlen(y), n = lx < ly ? lx : ly;
    unsigned char d = lx != ly;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(x[i] ^ y[i]);
    return d == 0;
}

/* The cached answer for user/password against hash: 1 (right), 0
 * (wrong) or -1 (not cached: bcrypt must run). */
static int auth_cached(api *a, const char *hash, const char *user, const char *pass)
{
    int ans = -1;
    pthread_mutex_lock(&a->auth_mu);
    for (size_t i = 0; i < API_AUTH_CACHE && ans < 0; i++) {
        struct auth_entry *e = &a->auth_cache[i];
        if (e->user && strcmp(e->user, user) == 0 && strcmp(e->hash, hash) == 0 &&
            ct_equal(e->pass, pass))
            ans = e->ok;
    }
    pthread_mutex_unlock(&a->auth_mu);
    return ans;
}

/* An unknown user is checked against this hash, so it costs as long as a
 * known one. */
static const char dummy_hash[] = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/* bcrypt through libxcrypt (tens of milliseconds: run on a worker), the
 * answer remembered. */
static bool check_password(api *a, const char *hash_in, const char *user, const char *pass)
{
    const char *hash = hash_in ? hash_in : dummy_hash;
    int cached = auth_cached(a, hash, user, pass);
    if (cached >= 0) return cached && hash_in;
    struct crypt_data *cd = mem_calloc(1, sizeof *cd);
    const char *r = crypt_rn(pass, hash, cd, (int)sizeof *cd);
    bool ok = r && r[0] == '$' && ct_equal(r, hash);
    mem_free(cd);
    pthread_mutex_lock(&a->auth_mu);
    struct auth_entry *e = &a->auth_cache[a->auth_next];
    a->auth_next = (a->auth_next + 1) % API_AUTH_CACHE;
    mem_free(e->user);
    mem_free(e->pass);
    mem_free(e->hash);
    e->user = mem_strdup(user);
    e->pass = mem_strdup(pass);
    e->hash = mem_strdup(hash);
    e->ok = ok;
    pthread_mutex_unlock(&a->auth_mu);
    return ok && hash_in;
}

/* Basic auth on the event loop: 1 (let in), 0 (401), or -1 when bcrypt
 * must run (the credentials are then copied into rq for a worker). */
static int authorized(api *a, request *rq, struct MHD_Connection *c)
{
    const webconfig *wc = rq->web;
    if (!wc || wc->n_users == 0) return 1;
    if (a->o.healthy_unauthenticated &&
        (strcmp(rq->url, "/-/healthy") == 0 || strcmp(rq->url, "/-/ready") == 0))
        return 1;
    char *pass = NULL;
    char *user = MHD_basic_auth_get_username_password(c, &pass);
    int ans = 0;
    if (user) {
        const char *hash = webconfig_user_hash(wc, user);
        ans = auth_cached(a, hash ? hash : dummy_hash, user, pass ? pass : "");
        if (ans > 0 && !hash) ans = 0;
        if (ans < 0) {
            rq->auth_user = mem_strdup(user);
            rq->auth_pass = mem_strdup(pass ? pass : "");
            rq->auth_hash = hash; /* the webconfig outlives the request */
        }
    }
    if (user) MHD_free(user);
    if (pass) MHD_free(pass);
    return ans;
}

static enum MHD_Result respond_unauthorized(request *rq)
{
    static const char text[] = "Unauthorized\n";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    MHD_add_response_header(r, "WWW-Authenticate", "Basic");
    add_web_headers(r, rq->web);
    return set_response(rq, 401, r);
}

/* client_auth_type beyond what libmicrohttpd does (it only asks for a
 * certificate when given a trust list): a required certificate must be
 * there, and a given one must verify against client_ca for the Verify
 * kinds. Go refuses these in the handshake; here the connection is closed
 * before any answer. */
static bool client_cert_ok(api *a, struct MHD_Connection *c)
{
    if (a->client_auth == WEBCONFIG_NO_CLIENT_CERT ||
        a->client_auth == WEBCONFIG_REQUEST_CLIENT_CERT)
        return true;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session) return false;
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    unsigned int n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    if (!certs || n == 0) return a->client_auth == WEBCONFIG_VERIFY_CLIENT_CERT_IF_GIVEN;
    if (a->client_auth == WEBCONFIG_REQUIRE_ANY_CLIENT_CERT) return true;
    unsigned int status = 0;
    return gnutls_certificate_verify_peers2(s, &status) == 0 && status == 0;
}

/* ---- slow-loris bound ------------------------------------------------------------------- */

/* A connection that has not sent a complete request line and headers yet.
 * They are listed in the order they connected, so the ones past their
 * deadline are at the head. */
typedef struct conn_track {
    int fd;
    int64_t deadline_ms; /* CLOCK_MONOTONIC */
    bool listed;
    struct conn_track *prev, *next;
} conn_track;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void track_unlink(api *a, conn_track *t)
{
    if (!t->listed) return;
    if (t->prev)
        t->prev->next = t->next;
    else
        a->waiting_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        a->waiting_tail = t->prev;
    t->prev = t->next = NULL;
    t->listed = false;
}

/* MHD_OPTION_NOTIFY_CONNECTION, on the event loop: a new connection is
 * listed until its first request's headers are in; a closed one is
 * forgotten (before MHD closes its socket, so the sweeper never shuts down
 * a descriptor that was reused). */
static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    api *a = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci) return;
        conn_track *t = mem_calloc(1, sizeof *t);
        t->fd = ci->connect_fd;
        t->deadline_ms = mono_ms() + (int64_t)a->header_timeout_s * 1000;
        pthread_mutex_lock(&a->track_mu);
        t->prev = a->waiting_tail;
        if (a->waiting_tail)
            a->waiting_tail->next = t;
        else
            a->waiting_head = t;
        a->waiting_tail = t;
        t->listed = true;
        pthread_mutex_unlock(&a->track_mu);
        *socket_context = t;
        return;
    }
    conn_track *t = *socket_context;
    if (!t) return;
    pthread_mutex_lock(&a->track_mu);
    track_unlink(a, t);
    pthread_mutex_unlock(&a->track_mu);
    mem_free(t);
    *socket_context = NULL;
}

/* The first request's headers are in: the connection leaves the list. */
static void headers_arrived(api *a, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_track *t = ci ? ci->socket_context : NULL;
    if (!t || !t->listed) return;
    pthread_mutex_lock(&a->track_mu);
    track_unlink(a, t);
    pthread_mutex_unlock(&a->track_mu);
}

/* Once a second, shuts down the sockets of connections that are past
 * their header deadline; the event loop then sees them end and closes
 * them. (MHD's own timeout counts from the last byte received, so a client
 * sending one byte a second would never reach it.) */
static void *sweeper(void *arg)
{
    api *a = arg;
    pthread_mutex_lock(&a->track_mu);
    while (!a->sweeper_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&a->sweeper_cv, &a->track_mu, &ts);
        int64_t now = mono_ms();
        unsigned n = 0;
        while (a->waiting_head && a->waiting_head->deadline_ms <= now) {
            conn_track *t = a->waiting_head;
            shutdown(t->fd, SHUT_RDWR);
            track_unlink(a, t);
            n++;
        }
        if (n) {
            pthread_mutex_unlock(&a->track_mu);
            for (unsigned i = 0; i < n; i++)
                count_refused(a, "header_timeout");
            log_debug("web", "closed %u connections that sent no complete request headers in %us",
                      n, a->header_timeout_s);
            pthread_mutex_lock(&a->track_mu);
        }
    }
    pthread_mutex_unlock(&a->track_mu);
    return NULL;
}

/* ---- dispatch --------------------------------------------------------------------------- */

/* Queues the answer a handler made; none (the handler gave up) closes the
 * connection. */
static enum MHD_Result queue_answer(request *rq, struct MHD_Connection *c)
{
    if (!rq->resp) return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(c, rq->status, rq->resp);
    MHD_destroy_response(rq->resp);
    rq->resp = NULL;
    return ret;
}

/* A worker's part: bcrypt or a handler that takes time; then the
 * connection goes back to the event loop, which queues the answer. */
static void run_job(void *arg)
{
    request *rq = arg;
    api *a = rq->a;
    switch (rq->route) {
    case ROUTE_AUTH:
        rq->auth_ok = check_password(a, rq->auth_hash, rq->auth_user, rq->auth_pass);
        break;
    case ROUTE_METRICS:
        handle_metrics(a, rq);
        break;
    case ROUTE_FEDERATE:
        handle_federate(a, rq);
        break;
    case ROUTE_RELOAD:
        handle_reload(a, rq);
        break;
    case ROUTE_REMOTE_WRITE:
        handle_remote_write(a, rq);
        break;
    case ROUTE_V1:
        handle_v1(a, rq);
        break;
    case ROUTE_NONE:
        break;
    }
    atomic_store(&rq->job, JOB_DONE);
    MHD_resume_connection(rq->c); /* the last touch: rq may be freed after it */
}

/* Suspends the connection and gives the request to a worker; the event
 * loop goes on with other connections and calls dispatch again once the
 * worker resumes this one. */
static enum MHD_Result hand_off(api *a, request *rq, struct MHD_Connection *c)
{
    atomic_store(&rq->job, JOB_RUNNING);
    MHD_suspend_connection(c);
    if (workq_submit(a->wq, run_job, rq) < 0) {
        /* api_stop has begun. */
        rq->route = ROUTE_NONE;
        respond_text(rq, 503, "Service Unavailable\n");
        atomic_store(&rq->job, JOB_DONE);
        MHD_resume_connection(c);
    }
    return MHD_YES;
}

/* The headers passed (or failed) basic auth. */
static enum MHD_Result after_auth(api *a, request *rq, struct MHD_Connection *c, bool ok)
{
    if (!ok) {
        count_refused(a, "unauthorized");
        rq->denied = true;
        respond_unauthorized(rq);
        return queue_answer(rq, c);
    }
    /* API requests may carry forms up to Go's 10 MB. */
    bool v1 = strncmp(rq->url, API_V1_PREFIX "/", strlen(API_V1_PREFIX) + 1) == 0;
    if (strcmp(rq->url, API_REMOTE_WRITE_PATH) == 0)
        buf_init(&rq->body, API_MAX_REMOTE_WRITE_BODY);
    else if (v1)
        buf_init(&rq->body, a->o.max_request_bytes ? a->o.max_request_bytes : APIV1_MAX_BODY);
    else if (a->o.max_request_bytes)
        buf_init(&rq->body, a->o.max_request_bytes);
    return MHD_YES;
}

static char *header_copy(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return v ? mem_strdup(v) : NULL;
}

/* The headers are in: copies what handlers read, checks the client
 * certificate and basic auth. */
static enum MHD_Result first_call(api *a, request *rq, struct MHD_Connection *c, const char *url,
                                  const char *method)
{
    rq->started = true;
    rq->a = a;
    rq->c = c;
    rq->url = mem_strdup(url);
    rq->method = mem_strdup(method);
    headers_arrived(a, c);
    pthread_mutex_lock(&a->web_mu);
    rq->web = a->web;
    pthread_mutex_unlock(&a->web_mu);
    if (!client_cert_ok(a, c)) {
        count_refused(a, "client_certificate");
        log_debug("web", "client certificate refused for %s", url);
        return MHD_NO;
    }
    rq->accept = header_copy(c, "Accept");
    rq->content_type = header_copy(c, "Content-Type");
    rq->content_encoding = header_copy(c, "Content-Encoding");
    rq->accept_gzip = accepts_gzip(c);
    rq->has_origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin") != NULL;
    if (strcmp(url, "/federate") == 0) {
        arg_list args = {.name = "match[]"};
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, &args);
        rq->fed_match = args.v;
        rq->n_fed_match = args.n;
    }
    int au = authorized(a, rq, c);
    if (au < 0) {
        rq->route = ROUTE_AUTH;
        return hand_off(a, rq, c);
    }
    return after_auth(a, rq, c, au > 0);
}

/* The access handler, on the event loop: MHD calls it when the headers are
 * in, for each part of the body, once more when the body is complete, and
 * again after a worker resumed the connection. Cheap answers are made
 * here; the rest go to a worker (run_job). */
static enum MHD_Result dispatch(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls)
{
    (void)version;
    api *a = cls;
    request *rq = *con_cls;
    if (!rq->started) return first_call(a, rq, c, url, method);
    if (atomic_load(&rq->job) == JOB_DONE) {
        atomic_store(&rq->job, JOB_NONE);
        if (rq->route == ROUTE_AUTH) {
            rq->route = ROUTE_NONE;
            return after_auth(a, rq, c, rq->auth_ok);
        }
        rq->route = ROUTE_NONE;
        return queue_answer(rq, c);
    }
    if (rq->denied) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (buf_append(&rq->body, upload, *upload_size) < 0) {
            if (!rq->too_large) count_refused(a, "body_too_large");
            rq->too_large = true;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    bool v1 = strncmp(url, API_V1_PREFIX "/", strlen(API_V1_PREFIX) + 1) == 0;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
    if (strcmp(url, API_REMOTE_WRITE_PATH) == 0)
        rq->route = ROUTE_REMOTE_WRITE;
    else if (v1)
        rq->route = ROUTE_V1;
    else if (rq->too_large)
        respond_text(rq, 413, "request body too large\n");
    else if (strcmp(url, "/metrics") == 0 && get)
        rq->route = ROUTE_METRICS;
    else if (strcmp(url, "/federate") == 0 && get)
        rq->route = ROUTE_FEDERATE;
    else if (strcmp(url, "/-/healthy") == 0 && get)
        respond_text(rq, 200, "sidewatch is Healthy.\n");
    else if (strcmp(url, "/-/ready") == 0 && get) {
        if (atomic_load(&a->ready))
            respond_text(rq, 200, "sidewatch is Ready.\n");
        else
            respond_text(rq, 503, "Service Unavailable\n");
    } else if (strcmp(url, "/-/reload") == 0 && post)
        rq->route = ROUTE_RELOAD;
    else if (strcmp(url, "/-/quit") == 0 && post)
        handle_quit(a, rq);
    else if (strcmp(url, "/-/reload") == 0 || strcmp(url, "/-/quit") == 0 ||
             strcmp(url, "/metrics") == 0 || strcmp(url, "/federate") == 0 ||
             strcmp(url, "/-/healthy") == 0 || strcmp(url, "/-/ready") == 0)
        respond_text(rq, 405, "Method Not Allowed\n");
    else
        respond_text(rq, 404, "404 page not found\n");
    if (rq->route != ROUTE_NONE) return hand_off(a, rq, c);
    return queue_answer(rq, c);
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    api *a = cls;
    request *rq = *con_cls;
    if (!rq) return;
    if (rq->quit_after) a->o.quit(a->o.ctx);
    buf_cleanup(&rq->body);
    mem_free(rq->uri);
    mem_free(rq->url);
    mem_free(rq->method);
    mem_free(rq->accept);
    mem_free(rq->content_type);
    mem_free(rq->content_encoding);
    for (size_t i = 0; i < rq->n_fed_match; i++)
        mem_free((char *)rq->fed_match[i]);
    mem_free(rq->fed_match);
    mem_free(rq->auth_user);
    mem_free(rq->auth_pass);
    if (rq->resp) MHD_destroy_response(rq->resp);
    mem_free(rq);
    *con_cls = NULL;
}

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    (void)c;
    request *rq = mem_calloc(1, sizeof *rq);
    rq->uri = mem_strdup(uri ? uri : "");
    buf_init(&rq->body, API_MAX_REQUEST_BODY);
    return rq;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_debug("web", "%s", msg);
}

/* ---- listening ----------------------------------------------------------------------------- */

/* Splits "host:port", "[v6]:port" or ":port". Returns 0 or -EINVAL. */
static int split_address(const char *addr, char *host, size_t hn, char *port, size_t pn)
{
    const char *colon;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':') return -EINVAL;
        snprintf(host, hn, "%.*s", (int)(end - addr - 1), addr + 1);
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon) return -EINVAL;
        snprintf(host, hn, "%.*s", (int)(colon - addr), addr);
    }
    snprintf(port, pn, "%s", colon + 1);
    return port[0] ? 0 : -EINVAL;
}

static int listen_on(const char *addr, buf *err)
{
    char host[256], port[32];
    if (split_address(addr, host, sizeof host, port, sizeof port) < 0) {
        buf_printf(err, "listen tcp %s: address %s: missing port in address", addr, addr);
        return -EINVAL;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (gai != 0) {
        buf_printf(err, "listen tcp %s: %s", addr, gai_strerror(gai));
        return -EINVAL;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        buf_printf(err, "listen tcp %s: bind: %s", addr, strerror(saved));
        return -saved;
    }
    return fd;
}

/* Reads a PEM file (within WEBCONFIG_MAX_FILE), or copies the inline text
 * when path is "". Returns a string (caller frees) or NULL with err set. */
static char *read_pem(const char *what, const char *path, const char *text, buf *err)
{
    if (!*path) return mem_strdup(text);
    FILE *f = fopen(path, "rb");
    if (!f) {
        buf_printf(err, "failed to read %s (%s): %s", what, path, strerror(errno));
        return NULL;
    }
    buf b;
    buf_init(&b, WEBCONFIG_MAX_FILE);
    char chunk[4096];
    size_t r;
    bool too_big = false;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (buf_append(&b, chunk, r) < 0) too_big = true;
    fclose(f);
    if (too_big) {
        buf_printf(err, "failed to read %s (%s): over %u bytes", what, path, WEBCONFIG_MAX_FILE);
        buf_cleanup(&b);
        return NULL;
    }
    char *d = buf_detach(&b, NULL);
    return d ? d : mem_strdup("");
}

static void free_tls(api *a)
{
    mem_free(a->tls_cert);
    mem_free(a->tls_key);
    mem_free(a->tls_trust);
    mem_free(a->tls_prio);
}

int api_start(api **out, const api_options *o, buf *err)
{
    webconfig *wc = o->web;
    int fd = listen_on(o->listen_address, err);
    if (fd < 0) {
        webconfig_free(wc);
        return fd;
    }
    api *a = mem_calloc(1, sizeof *a);
    a->o = *o;
    a->o.web = NULL;
    a->web = wc;
    a->listen_fd = fd;
    pthread_mutex_init(&a->readers_mu, NULL);
    pthread_mutex_init(&a->web_mu, NULL);
    pthread_mutex_init(&a->auth_mu, NULL);
    pthread_mutex_init(&a->track_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->sweeper_cv, &ca);
    pthread_condattr_destroy(&ca);
    static const char *const reason[] = {"reason", NULL};
    if (o->reg)
        a->refused = registry_counter(o->reg, "sidewatch_http_requests_refused_total",
                                      "HTTP requests refused before they were served, by reason "
                                      "(unauthorized, client_certificate, body_too_large, "
                                      "header_timeout).",
                                      reason);
    /* Every reason from the start, at 0, so dashboards and alerts see them. */
    static const char *const reasons[] = {"unauthorized", "client_certificate", "body_too_large",
                                         "header_timeout"};
    for (size_t i = 0; a->refused && i < sizeof reasons / sizeof reasons[0]; i++)
        registry_child(a->refused, (const char *const[]){reasons[i], NULL});

    /* One event loop (epoll) serves every connection; the requests that
     * take time run on the worker pool while their connection is
     * suspended. */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    unsigned read_timeout = o->read_timeout_s ? o->read_timeout_s : API_CONNECTION_TIMEOUT_S;
    a->header_timeout_s = o->header_timeout_s ? o->header_timeout_s : API_HEADER_TIMEOUT_S;
    if (a->header_timeout_s > read_timeout) a->header_timeout_s = read_timeout;
    int max_q = o->v1.max_concurrency > 0 ? o->v1.max_concurrency : APIV1_DEFAULT_MAX_CONCURRENCY;
    unsigned workers = o->max_workers ? o->max_workers : (unsigned)max_q + API_EXTRA_WORKERS;
    struct MHD_OptionItem ops[20];
    size_t n = 0;
#define OPT(opt, val, ptr) ops[n++] = (struct MHD_OptionItem){(opt), (intptr_t)(val), (ptr)}
    OPT(MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a);
    OPT(MHD_OPTION_LISTEN_SOCKET, fd, NULL);
    OPT(MHD_OPTION_CONNECTION_LIMIT, o->max_connections ? o->max_connections : API_MAX_CONNECTIONS,
        NULL);
    OPT(MHD_OPTION_CONNECTION_TIMEOUT, read_timeout, NULL);
    OPT(MHD_OPTION_NOTIFY_CONNECTION, notify_connection, a);
    OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)API_MAX_HEADER_BYTES + 64 * 1024, NULL);
    OPT(MHD_OPTION_NOTIFY_COMPLETED, request_done, a);
    OPT(MHD_OPTION_URI_LOG_CALLBACK, uri_logger, a);
    int rc = 0;
    if (wc && wc->tls_enabled) {
        a->client_auth = wc->client_auth;
        a->tls_cert = read_pem("cert_file", wc->cert_file, wc->cert, err);
        a->tls_key = a->tls_cert ? read_pem("key_file", wc->key_file, wc->key, err) : NULL;
        if (!a->tls_cert || !a->tls_key) rc = -EINVAL;
        if (rc == 0 && (*wc->client_ca_file || *wc->client_ca)) {
            a->tls_trust = read_pem("client_ca_file", wc->client_ca_file, wc->client_ca, err);
            if (!a->tls_trust) rc = -EINVAL;
        } else if (rc == 0 && wc->client_auth != WEBCONFIG_NO_CLIENT_CERT) {
            /* libmicrohttpd asks for a client certificate only when it has
             * a trust list; without client CAs nothing is verified, so the
             * server's own certificate serves to make it ask. */
            a->tls_trust = mem_strdup(a->tls_cert);
        }
        buf prio;
        buf_init(&prio, BUF_UNLIMITED);
        webconfig_gnutls_priorities(wc, &prio);
        a->tls_prio = buf_detach(&prio, NULL);
        flags |= MHD_USE_TLS;
        OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, a->tls_cert);
        OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, a->tls_key);
        if (a->tls_trust) OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, a->tls_trust);
        OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, a->tls_prio);
    }
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
    if (rc == 0) {
        apiv1_options v1 = o->v1;
        v1.st = o->st;
        v1.reader_get = v1_reader_get;
        v1.reader_put = v1_reader_put;
        v1.reader_ctx = a;
        if (!v1.listen_address) v1.listen_address = o->listen_address;
        a->v1 = apiv1_new(&v1);
        a->wq = workq_new("web", workers);
        a->daemon = MHD_start_daemon(flags, 0, NULL, NULL, dispatch, a, MHD_OPTION_ARRAY, ops,
                                     MHD_OPTION_END);
        if (!a->daemon) {
            if (wc && wc->tls_enabled)
                buf_printf(err,
                           "could not start the HTTPS server on %s (bad certificate, key or "
                           "TLS settings: %s)",
                           o->listen_address, a->tls_prio);
            else
                buf_printf(err, "could not start the HTTP server on %s", o->listen_address);
            apiv1_free(a->v1);
            workq_free(a->wq);
            rc = -EIO;
        }
    }
    if (rc == 0) {
        int trc = pthread_create(&a->sweeper_thread, NULL, sweeper, a);
        if (trc == 0)
            a->sweeper_started = true;
        else
            log_warn("web", "no header timeout: cannot start its thread: %s", strerror(trc));
    }
    if (rc < 0) {
        close(fd);
        free_tls(a);
        webconfig_free(a->web);
        pthread_mutex_destroy(&a->readers_mu);
        pthread_mutex_destroy(&a->web_mu);
        pthread_mutex_destroy(&a->auth_mu);
        pthread_mutex_destroy(&a->track_mu);
        pthread_cond_destroy(&a->sweeper_cv);
        mem_free(a);
        return rc;
    }
    if (wc && wc->tls_enabled)
        log_info("web", "TLS is enabled (client_auth_type %s)",
                 webconfig_client_auth_name(wc->client_auth));
    *out = a;
    return 0;
}

void api_set_webconfig(api *a, webconfig *wc)
{
    pthread_mutex_lock(&a->web_mu);
    if (a->web) {
        a->old_web = mem_realloc(a->old_web, (a->n_old_web + 1) * sizeof *a->old_web);
        a->old_web[a->n_old_web++] = a->web;
    }
    a->web = wc;
    pthread_mutex_unlock(&a->web_mu);
}

void api_set_ready(api *a, bool ready)
{
    atomic_store(&a->ready, ready);
}

void api_stop(api *a)
{
    if (!a) return;
    if (a->sweeper_started) {
        pthread_mutex_lock(&a->track_mu);
        a->sweeper_stop = true;
        pthread_cond_signal(&a->sweeper_cv);
        pthread_mutex_unlock(&a->track_mu);
        pthread_join(a->sweeper_thread, NULL);
    }
    /* Requests under way finish first and resume their connections (new
     * ones get 503), so that MHD stops with no connection suspended. */
    workq_stop(a->wq);
    MHD_stop_daemon(a->daemon);
    workq_free(a->wq);
    close(a->listen_fd);
    apiv1_free(a->v1);
    for (size_t i = 0; i < a->n_readers; i++)
        store_reader_close(a->readers[i]);
    mem_free(a->readers);
    pthread_mutex_destroy(&a->readers_mu);
    free_tls(a);
    webconfig_free(a->web);
    for (size_t i = 0; i < a->n_old_web; i++)
        webconfig_free(a->old_web[i]);
    mem_free(a->old_web);
    for (size_t i = 0; i < API_AUTH_CACHE; i++) {
        mem_free(a->auth_cache[i].user);
        mem_free(a->auth_cache[i].pass);
        mem_free(a->auth_cache[i].hash);
    }
    pthread_mutex_destroy(&a->web_mu);
    pthread_mutex_destroy(&a->auth_mu);
    pthread_mutex_destroy(&a->track_mu);
    pthread_cond_destroy(&a->sweeper_cv);
    mem_free(a);
}
