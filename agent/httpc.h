/* httpc: HTTP client on libcurl's multi interface, the only user of
 * <curl/curl.h>.
 *
 * One httpc runs any number of concurrent transfers from a single thread:
 * the owner calls httpc_poll() in its loop, and completion callbacks run
 * inside httpc_poll(). TCP, TLS and unix sockets; gzip; per-request timeout
 * and a cap on the (decompressed) body. httpc_wakeup() may be called from
 * any thread to interrupt a poll.
 *
 * Streaming: a request with on_data set hands a 2xx response's body to
 * on_data piece by piece as it arrives (chunked encoding and gzip already
 * decoded) instead of collecting it, for long-lived responses such as the
 * Docker events stream; the transfer then lasts until the server closes it,
 * the timeout hits, on_data returns non-zero, or it is cancelled. */
#ifndef SIDEWATCH_HTTPC_H
#define SIDEWATCH_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct httpc httpc;
typedef struct httpc_transfer httpc_transfer;

/* Streaming data callback: n bytes of a 2xx body (n > 0). Runs inside
 * httpc_poll() (or httpc_fetch()), inside libcurl: it must not call
 * httpc_start, httpc_cancel, httpc_poll or httpc_free on the same client.
 * Returns 0 to continue, non-zero to stop the transfer (its done callback
 * then runs with HTTPC_ERR_CANCELLED). */
typedef int (*httpc_data_fn)(void *data_ctx, const char *p, size_t n);

typedef struct httpc_request {
    const char *url;
    const char *method;         /* NULL = GET (POST when body is set) */
    const char *unix_socket;    /* connect through this socket instead of TCP */
    const char *const *headers; /* "Name: value" strings, NULL-terminated, or NULL */
    const char *body;           /* request body or NULL */
    size_t body_len;
    bool gzip;                  /* advertise and decode gzip */
    int64_t timeout_ms;         /* whole transfer; 0 = none */
    int64_t connect_timeout_ms; /* connection set-up only; 0 = libcurl's default (300 s) */
    size_t body_limit;          /* response bytes after decoding; 0 = none; for a
                                   streamed 2xx body it does not apply */
    /* credentials: sent as given, never logged */
    const char *basic_user, *basic_password;
    /* TLS */
    const char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_server_name;
    bool tls_insecure_skip_verify;
    bool follow_redirects;
    /* Streaming: when set, a 2xx body goes to on_data(data_ctx, ...) and the
     * response handed to the done callback has an empty body; any other
     * status is collected as usual (so the caller sees the error body).
     * Streamed transfers also turn on TCP keepalive. */
    httpc_data_fn on_data;
    void *data_ctx;
} httpc_request;

enum httpc_result {
    HTTPC_OK = 0,        /* a response arrived (any status) */
    HTTPC_ERR_TIMEOUT,   /* timeout_ms elapsed */
    HTTPC_ERR_TOO_LARGE, /* body exceeded body_limit */
    HTTPC_ERR_CONNECT,   /* DNS, connect, TLS failures */
    HTTPC_ERR_TRANSFER,  /* broken transfer, bad encoding, other curl errors */
    HTTPC_ERR_CANCELLED, /* httpc_cancel / httpc_free */
};

typedef struct httpc_response {
    enum httpc_result result;
    const char *error;        /* human-readable reason when result != HTTPC_OK */
    long status;              /* HTTP status, 0 without response */
    const char *content_type; /* "" when absent */
    const char *content_encoding;
    const char *retry_after; /* the Retry-After header's value, "" when absent */
    const char *body; /* decoded body, NUL-terminated */
    size_t body_len;
    double seconds; /* total time */
} httpc_response;

/* Called once per transfer from httpc_poll() (or httpc_cancel/httpc_free
 * with HTTPC_ERR_CANCELLED). The response and its strings are valid only
 * during the call. */
typedef void (*httpc_done_fn)(void *ctx, const httpc_response *resp);

/* Global libcurl setup; call once from main before any thread starts. */
int httpc_global_init(void);
void httpc_global_cleanup(void);

/* A new client, or NULL on failure. */
httpc *httpc_new(void);
/* Cancels running transfers (their callbacks run) and frees the client. */
void httpc_free(httpc *h);

/* Starts a transfer; the request's strings are copied. Returns 0 and an
 * optional handle (valid until the callback has run), or -errno. */
int httpc_start(httpc *h, const httpc_request *req, httpc_done_fn done, void *ctx,
                httpc_transfer **out);
/* Cancels a running transfer; its callback runs with HTTPC_ERR_CANCELLED
 * before this returns. Not from inside an on_data callback. */
void httpc_cancel(httpc *h, httpc_transfer *t);
/* The HTTP status of a running transfer once its response headers have
 * arrived, 0 before; lets a caller tell when a long-lived stream has been
 * accepted. t must be running (its done callback has not run). */
long httpc_transfer_status(const httpc_transfer *t);

/* Drives transfers for up to timeout_ms (less if a transfer completes or
 * httpc_wakeup is called); `extra_fd` (or -1) is also waited on for input.
 * Returns the number of running transfers, or -errno. */
int httpc_poll(httpc *h, int timeout_ms, int extra_fd);
/* Interrupts httpc_poll from another thread. */
void httpc_wakeup(httpc *h);
size_t httpc_running(const httpc *h);

/* Blocking convenience: performs one request on the calling thread and
 * fills *resp; the caller frees with httpc_response_cleanup. Returns 0 if a
 * response arrived, else a negative errno (resp->result/error say why). */
int httpc_fetch(const httpc_request *req, httpc_response *resp);
void httpc_response_cleanup(httpc_response *resp);

#endif
