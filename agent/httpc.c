#include "httpc.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "buf.h"
#include "mem.h"

struct httpc_transfer {
    httpc *h;
    CURL *easy;
    struct curl_slist *headers;
    buf body;
    bool too_large;
    httpc_data_fn on_data; /* streaming mode */
    void *data_ctx;
    int stream;   /* -1 undecided, 0 collect (non-2xx), 1 stream to on_data */
    bool aborted; /* on_data asked to stop */
    httpc_done_fn done;
    void *ctx;
    char errbuf[CURL_ERROR_SIZE];
    httpc_transfer *prev, *next;
};

struct httpc {
    CURLM *multi;
    httpc_transfer *head;
    size_t running;
};

int httpc_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void httpc_global_cleanup(void)
{
    curl_global_cleanup();
}

httpc *httpc_new(void)
{
    httpc *h = mem_calloc(1, sizeof *h);
    h->multi = curl_multi_init();
    if (!h->multi) {
        mem_free(h);
        return NULL;
    }
    return h;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    httpc_transfer *t = ud;
    size_t len = size * n;
    if (t->on_data && t->stream < 0) {
        /* The first body bytes: the final status is known by now. */
        long status = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        t->stream = status >= 200 && status < 300;
    }
    if (t->stream == 1) {
        if (len > 0 && t->on_data(t->data_ctx, p, len) != 0) {
            t->aborted = true;
            return 0; /* aborts with CURLE_WRITE_ERROR */
        }
        return len;
    }
    if (buf_append(&t->body, p, len) < 0) {
        t->too_large = true;
        return 0; /* aborts with CURLE_WRITE_ERROR */
    }
    return len;
}

static void transfer_free(httpc_transfer *t)
{
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    buf_cleanup(&t->body);
    mem_free(t);
}

/* Configures an easy handle for req; returns 0 or -errno. */
static int setup(httpc_transfer *t, const httpc_request *req)
{
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sidewatch/" SIDEWATCH_VERSION);
    if (req->unix_socket) curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, req->unix_socket);
    if (req->timeout_ms > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    if (req->connect_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
    if (req->on_data) {
        t->on_data = req->on_data;
        t->data_ctx = req->data_ctx;
        t->stream = -1;
        /* A quiet stream over TCP would otherwise never notice a peer that
         * vanished; unix sockets see the close. */
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
    }
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, req->gzip ? "gzip" : "identity");
    if (req->follow_redirects) {
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    }
    if (req->basic_user) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, req->basic_user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, req->basic_password ? req->basic_password : "");
    }
    if (req->tls_ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, req->tls_ca_file);
    if (req->tls_cert_file) curl_easy_setopt(e, CURLOPT_SSLCERT, req->tls_cert_file);
    if (req->tls_key_file) curl_easy_setopt(e, CURLOPT_SSLKEY, req->tls_key_file);
    if (req->tls_insecure_skip_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        struct curl_slist *l = curl_slist_append(t->headers, req->headers[i]);
        if (!l) return -ENOMEM;
        t->headers = l;
    }
    if (req->body) {
        /* Without this curl sends "Expect: 100-continue" and waits. */
        struct curl_slist *l = curl_slist_append(t->headers, "Expect:");
        if (!l) return -ENOMEM;
        t->headers = l;
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body);
    }
    if (req->method) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    if (t->headers) curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    return 0;
}

static httpc_transfer *transfer_new(const httpc_request *req)
{
    httpc_transfer *t = mem_calloc(1, sizeof *t);
    buf_init(&t->body, req->body_limit ? req->body_limit : BUF_UNLIMITED);
    t->easy = curl_easy_init();
    if (!t->easy || setup(t, req) < 0) {
        transfer_free(t);
        return NULL;
    }
    return t;
}

int httpc_start(httpc *h, const httpc_request *req, httpc_done_fn done, void *ctx,
                httpc_transfer **out)
{
    httpc_transfer *t = transfer_new(req);
    if (!t) return -ENOMEM;
    t->h = h;
    t->done = done;
    t->ctx = ctx;
    if (curl_multi_add_handle(h->multi, t->easy) != CURLM_OK) {
        transfer_free(t);
        return -EIO;
    }
    t->next = h->head;
    if (h->head) h->head->prev = t;
    h->head = t;
    h->running++;
    if (out) *out = t;
    return 0;
}

static void fill_response(httpc_transfer *t, CURLcode code, httpc_response *r)
{
    memset(r, 0, sizeof *r);
    char *ct = NULL;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ct);
    curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &r->seconds);
    r->content_type = ct ? ct : "";
    struct curl_header *hdr = NULL;
    r->content_encoding = "";
    if (curl_easy_header(t->easy, "Content-Encoding", 0, CURLH_HEADER, -1, &hdr) == CURLHE_OK)
        r->content_encoding = hdr->value;
    r->retry_after = "";
    if (curl_easy_header(t->easy, "Retry-After", 0, CURLH_HEADER, -1, &hdr) == CURLHE_OK)
        r->retry_after = hdr->value;
    r->body = buf_cstr(&t->body);
    r->body_len = t->body.len;
    if (code == CURLE_OK) {
        r->result = HTTPC_OK;
        return;
    }
    if (t->aborted) {
        r->result = HTTPC_ERR_CANCELLED;
        r->error = "aborted by the data callback";
    } else if (t->too_large) {
        r->result = HTTPC_ERR_TOO_LARGE;
        r->error = "response body exceeds the size limit";
    } else if (code == CURLE_OPERATION_TIMEDOUT) {
        r->result = HTTPC_ERR_TIMEOUT;
    } else if (code == CURLE_COULDNT_RESOLVE_HOST || code == CURLE_COULDNT_CONNECT ||
               code == CURLE_SSL_CONNECT_ERROR || code == CURLE_PEER_FAILED_VERIFICATION ||
               code == CURLE_SSL_CERTPROBLEM || code == CURLE_SSL_CACERT_BADFILE) {
        r->result = HTTPC_ERR_CONNECT;
    } else {
        r->result = HTTPC_ERR_TRANSFER;
    }
    if (!r->error) r->error = t->errbuf[0] ? t->errbuf : curl_easy_strerror(code);
}

static void unlink_transfer(httpc *h, httpc_transfer *t)
{
    curl_multi_remove_handle(h->multi, t->easy);
    if (t->prev)
        t->prev->next = t->next;
    else
        h->head = t->next;
    if (t->next) t->next->prev = t->prev;
    h->running--;
}

void httpc_cancel(httpc *h, httpc_transfer *t)
{
    unlink_transfer(h, t);
    httpc_response r;
    memset(&r, 0, sizeof r);
    r.result = HTTPC_ERR_CANCELLED;
    r.error = "cancelled";
    r.content_type = r.content_encoding = r.retry_after = r.body = "";
    t->done(t->ctx, &r);
    transfer_free(t);
}

long httpc_transfer_status(const httpc_transfer *t)
{
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

void httpc_free(httpc *h)
{
    if (!h) return;
    while (h->head)
        httpc_cancel(h, h->head);
    curl_multi_cleanup(h->multi);
    mem_free(h);
}

/* Runs the callbacks of every finished transfer; returns how many. */
static int finish_done(httpc *h)
{
    CURLMsg *msg;
    int left, n = 0;
    while ((msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        httpc_transfer *t = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        CURLcode code = msg->data.result;
        httpc_response r;
        fill_response(t, code, &r);
        /* Unlink first so the callback may start new transfers safely. */
        unlink_transfer(h, t);
        t->done(t->ctx, &r);
        transfer_free(t);
        n++;
    }
    return n;
}

int httpc_poll(httpc *h, int timeout_ms, int extra_fd)
{
    struct curl_waitfd extra = {.fd = extra_fd, .events = CURL_WAIT_POLLIN};
    int still;
    if (curl_multi_perform(h->multi, &still) != CURLM_OK) return -EIO;
    /* Transfers that finished right away (a local socket answers fast)
     * complete now: waiting first would hold their callbacks for the whole
     * timeout. */
    if (finish_done(h) > 0) return (int)h->running;
    if (curl_multi_poll(h->multi, extra_fd >= 0 ? &extra : NULL, extra_fd >= 0 ? 1 : 0,
                        timeout_ms < 0 ? 0 : timeout_ms, NULL) != CURLM_OK)
        return -EIO;
    if (curl_multi_perform(h->multi, &still) != CURLM_OK) return -EIO;
    finish_done(h);
    return (int)h->running;
}

void httpc_wakeup(httpc *h)
{
    curl_multi_wakeup(h->multi);
}

size_t httpc_running(const httpc *h)
{
    return h->running;
}

int httpc_fetch(const httpc_request *req, httpc_response *resp)
{
    httpc_transfer *t = transfer_new(req);
    memset(resp, 0, sizeof *resp);
    if (!t) {
        resp->result = HTTPC_ERR_TRANSFER;
        resp->error = "out of resources";
        resp->content_type = resp->content_encoding = resp->retry_after = resp->body = "";
        return -ENOMEM;
    }
    CURLcode code = curl_easy_perform(t->easy);
    httpc_response r;
    fill_response(t, code, &r);
    /* Copy out everything: the transfer goes away now. */
    *resp = r;
    resp->content_type = mem_strdup(r.content_type);
    resp->content_encoding = mem_strdup(r.content_encoding);
    resp->retry_after = mem_strdup(r.retry_after);
    resp->error = r.error ? mem_strdup(r.error) : NULL;
    size_t len;
    resp->body = buf_detach(&t->body, &len);
    resp->body_len = len;
    transfer_free(t);
    return resp->result == HTTPC_OK ? 0 : -EIO;
}

void httpc_response_cleanup(httpc_response *resp)
{
    mem_free((void *)resp->content_type);
    mem_free((void *)resp->content_encoding);
    mem_free((void *)resp->retry_after);
    mem_free((void *)resp->error);
    mem_free((void *)resp->body);
    memset(resp, 0, sizeof *resp);
}
