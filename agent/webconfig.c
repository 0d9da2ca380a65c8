/* webconfig: exporter-toolkit's web config, decoded strictly (see
 * webconfig.h). The first error ends loading, as in Go. */
#include "webconfig.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mem.h"
#include "yamlconf.h"

typedef struct ctx {
    const char *source;
    const char *dir;
    buf *err;
    bool failed;
} ctx;

static void errorf(ctx *c, const yamlconf_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errorf(ctx *c, const yamlconf_node *at, const char *fmt, ...)
{
    if (c->failed) return;
    c->failed = true;
    if (!c->err) return;
    if (at)
        buf_printf(c->err, "%s:%u:%u: ", c->source, (unsigned)at->line, (unsigned)at->col);
    else
        buf_printf(c->err, "%s: ", c->source);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(c->err, fmt, ap);
    va_end(ap);
    buf_putc(c->err, '\n');
}

static void type_error(ctx *c, const yamlconf_node *n, const char *go_type)
{
    buf m;
    buf_init(&m, BUF_UNLIMITED);
    yamlconf_type_error(&m, n, go_type);
    errorf(c, n, "%s", buf_cstr(&m));
    buf_cleanup(&m);
}

/* ---- tables ------------------------------------------------------------------ */

/* Go's tls.CipherSuites() (the secure list exporter-toolkit accepts). */
static const webconfig_cipher ciphers[] = {
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xc009, "ECDHE-ECDSA", "AES-128-CBC", "SHA1"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", 0xc00a, "ECDHE-ECDSA", "AES-256-CBC", "SHA1"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xc013, "ECDHE-RSA", "AES-128-CBC", "SHA1"},
    {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", 0xc014, "ECDHE-RSA", "AES-256-CBC", "SHA1"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xc02b, "ECDHE-ECDSA", "AES-128-GCM", "AEAD"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", 0xc02c, "ECDHE-ECDSA", "AES-256-GCM", "AEAD"},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xc02f, "ECDHE-RSA", "AES-128-GCM", "AEAD"},
    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 0xc030, "ECDHE-RSA", "AES-256-GCM", "AEAD"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0xcca8, "ECDHE-RSA", "CHACHA20-POLY1305",
     "AEAD"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", 0xcca9, "ECDHE-ECDSA", "CHACHA20-POLY1305",
     "AEAD"},
    {"TLS_AES_128_GCM_SHA256", 0x1301, "", "AES-128-GCM", "AEAD"},
    {"TLS_AES_256_GCM_SHA384", 0x1302, "", "AES-256-GCM", "AEAD"},
    {"TLS_CHACHA20_POLY1305_SHA256", 0x1303, "", "CHACHA20-POLY1305", "AEAD"},
};

const webconfig_cipher *webconfig_cipher_by_name(const char *go_name)
{
    for (size_t i = 0; i < sizeof ciphers / sizeof ciphers[0]; i++)
        if (strcmp(ciphers[i].go_name, go_name) == 0) return &ciphers[i];
    return NULL;
}

static const struct {
    const char *go, *gnutls;
} curves[] = {
    {"CurveP256", "SECP256R1"},
    {"CurveP384", "SECP384R1"},
    {"CurveP521", "SECP521R1"},
    {"X25519", "X25519"},
};

static const struct {
    const char *name;
    uint16_t v;
} versions[] = {
    {"TLS10", WEBCONFIG_TLS10},
    {"TLS11", WEBCONFIG_TLS11},
    {"TLS12", WEBCONFIG_TLS12},
    {"TLS13", WEBCONFIG_TLS13},
};

static const char *const auth_names[] = {
    [WEBCONFIG_NO_CLIENT_CERT] = "NoClientCert",
    [WEBCONFIG_REQUEST_CLIENT_CERT] = "RequestClientCert",
    [WEBCONFIG_REQUIRE_ANY_CLIENT_CERT] = "RequireAnyClientCert",
    [WEBCONFIG_VERIFY_CLIENT_CERT_IF_GIVEN] = "VerifyClientCertIfGiven",
    [WEBCONFIG_REQUIRE_AND_VERIFY_CLIENT_CERT] = "RequireAndVerifyClientCert",
};

const char *webconfig_client_auth_name(enum webconfig_client_auth a)
{
    if ((unsigned)a >= sizeof auth_names / sizeof auth_names[0]) return "?";
    return auth_names[a];
}

/* exporter-toolkit's extraHTTPHeaders: NULL values = any value. */
static const struct {
    const char *name;
    const char *values[3];
} allowed_headers[] = {
    {"Strict-Transport-Security", {NULL}},
    {"X-Content-Type-Options", {"nosniff", NULL}},
    {"X-Frame-Options", {"deny", "sameorigin", NULL}},
    {"X-XSS-Protection", {NULL}},
    {"Content-Security-Policy", {NULL}},
};

/* ---- decoding helpers ----------------------------------------------------- */

typedef struct slot {
    const yamlconf_node *key, *val;
} slot;

static bool key_is(const yamlconf_node *k, const char *name)
{
    size_t n = strlen(name);
    return k->len == n && memcmp(k->str, name, n) == 0;
}

/* 1 for a mapping, 0 for null, -1 on error (reported). */
static int decode_map(ctx *c, const yamlconf_node *n, const char *type, const char *const *names,
                      size_t nf, slot *slots)
{
    memset(slots, 0, nf * sizeof *slots);
    if (yamlconf_is_null(n)) return 0;
    if (n->kind != YAMLCONF_MAP) {
        type_error(c, n, type);
        return -1;
    }
    for (size_t i = 0; i < n->n; i++) {
        const yamlconf_node *k = n->pairs[i].key;
        if (k->kind != YAMLCONF_SCALAR && k->kind != YAMLCONF_NULL) {
            type_error(c, k, "string");
            return -1;
        }
        size_t f;
        for (f = 0; f < nf; f++)
            if (key_is(k, names[f])) break;
        if (f == nf) {
            errorf(c, k, "field %s not found in type %s", k->str, type);
            return -1;
        }
        if (slots[f].key) {
            errorf(c, k, "field %s already set in type %s", k->str, type);
            return -1;
        }
        slots[f].key = k;
        slots[f].val = n->pairs[i].value;
    }
    return 1;
}

/* A string field: absent or null leaves *dst; a scalar replaces it. */
static bool get_string(ctx *c, const slot *s, char **dst)
{
    if (!s->key || yamlconf_is_null(s->val)) return true;
    if (s->val->kind != YAMLCONF_SCALAR || strlen(s->val->str) != s->val->len) {
        type_error(c, s->val, "string");
        return false;
    }
    mem_free(*dst);
    *dst = mem_strdup(s->val->str);
    return true;
}

static bool get_bool(ctx *c, const slot *s, bool *dst)
{
    if (!s->key || yamlconf_is_null(s->val)) return true;
    if (yamlconf_bool(s->val, dst) < 0) {
        type_error(c, s->val, "bool");
        return false;
    }
    return true;
}

/* Items of a []string field, each checked to be a scalar; NULL = none. */
static const yamlconf_node *get_seq(ctx *c, const slot *s, const char *go_type)
{
    if (!s->key || yamlconf_is_null(s->val)) return NULL;
    if (s->val->kind != YAMLCONF_SEQ) {
        type_error(c, s->val, go_type);
        return NULL;
    }
    for (size_t i = 0; i < s->val->n; i++) {
        const yamlconf_node *it = s->val->items[i];
        if (!yamlconf_is_null(it) && it->kind != YAMLCONF_SCALAR) {
            type_error(c, it, "string");
            return NULL;
        }
    }
    return s->val;
}

static char *join_dir(const char *dir, const char *p)
{
    if (!dir || !*dir || !*p || p[0] == '/') return mem_strdup(p);
    size_t dl = strlen(dir), pl = strlen(p);
    char *r = mem_malloc(dl + pl + 2);
    memcpy(r, dir, dl);
    r[dl] = '/';
    memcpy(r + dl + 1, p, pl + 1);
    return r;
}

/* ---- bcrypt hash shape (as Go's bcrypt.Cost checks it) -------------------- */

static const char *bcrypt_problem(const char *h)
{
    static char msg[128];
    size_t n = strlen(h);
    if (n < 59) return "crypto/bcrypt: hashedSecret too short to be a bcrypted password";
    if (h[0] != '$') {
        snprintf(msg, sizeof msg,
                 "crypto/bcrypt: bcrypt hashes must start with '$', but hashedSecret started with "
                 "'%c'",
                 h[0]);
        return msg;
    }
    if (h[1] > '2') {
        snprintf(msg, sizeof msg,
                 "crypto/bcrypt: bcrypt algorithm version '%c' requested is newer than current "
                 "version '2'",
                 h[1]);
        return msg;
    }
    size_t i = h[2] == '$' ? 3 : 4;
    if (h[1] != '2' || (i == 4 && (h[2] != 'a' && h[2] != 'b' && h[2] != 'y')) || h[i - 1] != '$')
        return "bcrypt hash is not of the $2a$, $2b$ or $2y$ form libxcrypt verifies";
    if (h[i] < '0' || h[i] > '9' || h[i + 1] < '0' || h[i + 1] > '9' || h[i + 2] != '$')
        return "crypto/bcrypt: bcrypt hash has a malformed cost";
    int cost = (h[i] - '0') * 10 + (h[i + 1] - '0');
    if (cost < 4 || cost > 31) {
        snprintf(msg, sizeof msg, "crypto/bcrypt: cost %d is outside allowed range (4,31)", cost);
        return msg;
    }
    return NULL;
}

/* ---- sections --------------------------------------------------------------- */

enum {
    T_CERT,
    T_KEY,
    T_CLIENT_CA,
    T_CERT_FILE,
    T_KEY_FILE,
    T_CLIENT_AUTH,
    T_CLIENT_CA_FILE,
    T_CIPHERS,
    T_CURVES,
    T_MIN,
    T_MAX,
    T_PREFER,
    T_SANS,
    T_N
};
static const char *const tls_names[T_N] = {
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "cipher_suites",
    "curve_preferences",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
};

static bool get_version(ctx *c, const slot *s, uint16_t *dst)
{
    if (!s->key || yamlconf_is_null(s->val)) return true;
    if (s->val->kind != YAMLCONF_SCALAR) {
        type_error(c, s->val, "string");
        return false;
    }
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        if (strcmp(s->val->str, versions[i].name) == 0) {
            *dst = versions[i].v;
            return true;
        }
    }
    errorf(c, s->val, "unknown TLS version: %s", s->val->str);
    return false;
}

static bool decode_tls(ctx *c, const yamlconf_node *n, webconfig *wc)
{
    slot s[T_N];
    if (decode_map(c, n, "web.TLSConfig", tls_names, T_N, s) < 0) return false;
    char *auth = mem_strdup("");
    bool ok = get_string(c, &s[T_CERT], &wc->cert) && get_string(c, &s[T_KEY], &wc->key) &&
              get_string(c, &s[T_CLIENT_CA], &wc->client_ca) &&
              get_string(c, &s[T_CERT_FILE], &wc->cert_file) &&
              get_string(c, &s[T_KEY_FILE], &wc->key_file) &&
              get_string(c, &s[T_CLIENT_AUTH], &auth) &&
              get_string(c, &s[T_CLIENT_CA_FILE], &wc->client_ca_file) &&
              get_version(c, &s[T_MIN], &wc->min_version) &&
              get_version(c, &s[T_MAX], &wc->max_version) &&
              get_bool(c, &s[T_PREFER], &wc->prefer_server_cipher_suites);
    if (ok) {
        const yamlconf_node *q = get_seq(c, &s[T_CIPHERS], "[]web.Cipher");
        for (size_t i = 0; q && i < q->n; i++) {
            const webconfig_cipher *cs = webconfig_cipher_by_name(q->items[i]->str);
            if (!cs) {
                errorf(c, q->items[i], "unknown cipher: %s", q->items[i]->str);
                break;
            }
            wc->cipher_suites = mem_realloc(wc->cipher_suites,
                                            (wc->n_cipher_suites + 1) * sizeof *wc->cipher_suites);
            wc->cipher_suites[wc->n_cipher_suites++] = cs;
        }
    }
    if (ok && !c->failed) {
        const yamlconf_node *q = get_seq(c, &s[T_CURVES], "[]web.Curve");
        for (size_t i = 0; q && i < q->n; i++) {
            size_t k;
            for (k = 0; k < sizeof curves / sizeof curves[0]; k++)
                if (strcmp(curves[k].go, q->items[i]->str) == 0) break;
            if (k == sizeof curves / sizeof curves[0]) {
                errorf(c, q->items[i], "unknown curve: %s", q->items[i]->str);
                break;
            }
            wc->curves = mem_realloc(wc->curves, (wc->n_curves + 1) * sizeof *wc->curves);
            wc->curves[wc->n_curves++] = mem_strdup(curves[k].gnutls);
        }
    }
    if (ok && !c->failed) {
        const yamlconf_node *q = get_seq(c, &s[T_SANS], "[]string");
        for (size_t i = 0; q && i < q->n; i++) {
            wc->client_allowed_sans = mem_realloc(wc->client_allowed_sans,
                                                  (wc->n_client_allowed_sans + 1) * sizeof(char *));
            wc->client_allowed_sans[wc->n_client_allowed_sans++] = mem_strdup(q->items[i]->str);
        }
        /* A restriction that would be silently ignored is refused. */
        if (wc->n_client_allowed_sans)
            errorf(c, s[T_SANS].key, "client_allowed_sans is not supported by sidewatch");
    }
    if (ok && !c->failed) {
        if (strcmp(auth, "") == 0 || strcmp(auth, "NoClientCert") == 0)
            wc->client_auth = WEBCONFIG_NO_CLIENT_CERT;
        else if (strcmp(auth, "RequestClientCert") == 0)
            wc->client_auth = WEBCONFIG_REQUEST_CLIENT_CERT;
        else if (strcmp(auth, "RequireAnyClientCert") == 0 ||
                 strcmp(auth, "RequireClientCert") == 0)
            wc->client_auth = WEBCONFIG_REQUIRE_ANY_CLIENT_CERT;
        else if (strcmp(auth, "VerifyClientCertIfGiven") == 0)
            wc->client_auth = WEBCONFIG_VERIFY_CLIENT_CERT_IF_GIVEN;
        else if (strcmp(auth, "RequireAndVerifyClientCert") == 0)
            wc->client_auth = WEBCONFIG_REQUIRE_AND_VERIFY_CLIENT_CERT;
        else
            errorf(c, s[T_CLIENT_AUTH].val, "invalid ClientAuth: %s", auth);
    }
    wc->tls_enabled = *wc->cert_file || *wc->cert || *wc->key_file || *wc->key ||
                      *wc->client_ca_file || *wc->client_ca || *auth;
    mem_free(auth);
    if (!ok || c->failed) return false;
    if (*wc->cert_file && *wc->cert) {
        errorf(c, s[T_CERT].key, "at most one of cert and cert_file must be configured");
        return false;
    }
    if (*wc->key_file && *wc->key) {
        errorf(c, s[T_KEY].key, "at most one of key and key_file must be configured");
        return false;
    }
    if (*wc->client_ca_file && *wc->client_ca) {
        errorf(c, s[T_CLIENT_CA].key,
               "at most one of client_ca and client_ca_file must be configured");
        return false;
    }
    char *p;
    p = join_dir(c->dir, wc->cert_file), mem_free(wc->cert_file), wc->cert_file = p;
    p = join_dir(c->dir, wc->key_file), mem_free(wc->key_file), wc->key_file = p;
    p = join_dir(c->dir, wc->client_ca_file), mem_free(wc->client_ca_file), wc->client_ca_file = p;
    if (!wc->tls_enabled) return true;
    if (!*wc->cert_file && !*wc->cert) {
        errorf(c, n, "missing one of cert or cert_file");
        return false;
    }
    if (!*wc->key_file && !*wc->key) {
        errorf(c, n, "missing one of key or key_file");
        return false;
    }
    if ((*wc->client_ca_file || *wc->client_ca) && wc->client_auth == WEBCONFIG_NO_CLIENT_CERT) {
        errorf(c, n, "client CA's have been configured without a Client Auth Policy");
        return false;
    }
    if (wc->min_version > wc->max_version) {
        errorf(c, s[T_MIN].key ? s[T_MIN].val : n,
               "min_version is above max_version: no supported versions satisfy MinVersion and "
               "MaxVersion");
        return false;
    }
    return true;
}

static bool decode_http(ctx *c, const yamlconf_node *n, webconfig *wc)
{
    static const char *const names[] = {"http2", "headers"};
    slot s[2];
    if (decode_map(c, n, "web.HTTPConfig", names, 2, s) < 0) return false;
    if (!get_bool(c, &s[0], &wc->http2)) return false;
    const yamlconf_node *h = s[1].val;
    if (!s[1].key || yamlconf_is_null(h)) return true;
    if (h->kind != YAMLCONF_MAP) {
        type_error(c, h, "map[string]string");
        return false;
    }
    for (size_t i = 0; i < h->n; i++) {
        const yamlconf_node *k = h->pairs[i].key, *v = h->pairs[i].value;
        if (k->kind != YAMLCONF_SCALAR) {
            type_error(c, k, "string");
            return false;
        }
        if (!yamlconf_is_null(v) && v->kind != YAMLCONF_SCALAR) {
            type_error(c, v, "string");
            return false;
        }
        const char *val = yamlconf_is_null(v) ? "" : v->str;
        size_t a;
        for (a = 0; a < sizeof allowed_headers / sizeof allowed_headers[0]; a++)
            if (strcmp(allowed_headers[a].name, k->str) == 0) break;
        if (a == sizeof allowed_headers / sizeof allowed_headers[0]) {
            errorf(c, k, "HTTP header \"%s\" can not be configured", k->str);
            return false;
        }
        if (allowed_headers[a].values[0]) {
            bool found = false;
            for (size_t j = 0; allowed_headers[a].values[j]; j++)
                if (strcmp(allowed_headers[a].values[j], val) == 0) found = true;
            if (!found) {
                buf m;
                buf_init(&m, BUF_UNLIMITED);
                for (size_t j = 0; allowed_headers[a].values[j]; j++)
                    buf_printf(&m, "%s\"%s\"", j ? " " : "", allowed_headers[a].values[j]);
                errorf(c, v ? v : k, "invalid value for %s. Expected one of: [%s], but got: \"%s\"",
                       k->str, buf_cstr(&m), val);
                buf_cleanup(&m);
                return false;
            }
        }
        if (strchr(val, '\r') || strchr(val, '\n')) {
            errorf(c, v, "invalid value for %s: line breaks are not allowed", k->str);
            return false;
        }
        for (size_t j = 0; j < wc->n_headers; j++) {
            if (strcmp(wc->headers[j].name, k->str) == 0) {
                errorf(c, k, "key \"%s\" already set in map", k->str);
                return false;
            }
        }
        wc->headers = mem_realloc(wc->headers, (wc->n_headers + 1) * sizeof *wc->headers);
        wc->headers[wc->n_headers].name = mem_strdup(k->str);
        wc->headers[wc->n_headers].value = mem_strdup(val);
        wc->n_headers++;
    }
    return true;
}

static int user_cmp(const void *a, const void *b)
{
    return strcmp(((const webconfig_user *)a)->name, ((const webconfig_user *)b)->name);
}

static bool decode_users(ctx *c, const yamlconf_node *u, webconfig *wc)
{
    if (yamlconf_is_null(u)) return true;
    if (u->kind != YAMLCONF_MAP) {
        type_error(c, u, "map[string]config.Secret");
        return false;
    }
    for (size_t i = 0; i < u->n; i++) {
        const yamlconf_node *k = u->pairs[i].key, *v = u->pairs[i].value;
        if (k->kind != YAMLCONF_SCALAR || strlen(k->str) != k->len) {
            type_error(c, k, "string");
            return false;
        }
        if (!yamlconf_is_null(v) && v->kind != YAMLCONF_SCALAR) {
            type_error(c, v, "config.Secret");
            return false;
        }
        if (strchr(k->str, ':')) {
            errorf(c, k, "basic_auth_users: user name \"%s\" contains ':'", k->str);
            return false;
        }
        for (size_t j = 0; j < wc->n_users; j++) {
            if (strcmp(wc->users[j].name, k->str) == 0) {
                errorf(c, k, "key \"%s\" already set in map", k->str);
                return false;
            }
        }
        const char *h = yamlconf_is_null(v) ? "" : v->str;
        const char *problem = bcrypt_problem(h);
        if (problem) {
            errorf(c, yamlconf_is_null(v) ? k : v, "%s", problem);
            return false;
        }
        wc->users = mem_realloc(wc->users, (wc->n_users + 1) * sizeof *wc->users);
        wc->users[wc->n_users].name = mem_strdup(k->str);
        wc->users[wc->n_users].hash = mem_strdup(h);
        wc->n_users++;
    }
    if (wc->n_users > 1) qsort(wc->users, wc->n_users, sizeof *wc->users, user_cmp);
    return true;
}

/* ---- entry points ------------------------------------------------------------ */

static webconfig *webconfig_new_default(void)
{
    webconfig *wc = mem_calloc(1, sizeof *wc);
    wc->cert_file = mem_strdup("");
    wc->key_file = mem_strdup("");
    wc->client_ca_file = mem_strdup("");
    wc->cert = mem_strdup("");
    wc->key = mem_strdup("");
    wc->client_ca = mem_strdup("");
    wc->min_version = WEBCONFIG_TLS12;
    wc->max_version = WEBCONFIG_TLS13;
    wc->prefer_server_cipher_suites = true;
    wc->http2 = true;
    return wc;
}

int webconfig_load_string(const char *text, size_t len, const char *source, const char *dir,
                          webconfig **out, buf *err)
{
    *out = NULL;
    if (len > WEBCONFIG_MAX_FILE) {
        if (err) buf_printf(err, "%s: file over %u bytes\n", source, WEBCONFIG_MAX_FILE);
        return -E2BIG;
    }
    yamlconf_doc *doc = NULL;
    int rc = yamlconf_parse(text, len, source, &doc, err);
    if (rc < 0) return rc == -E2BIG ? -E2BIG : -EINVAL;
    ctx c = {.source = source, .dir = dir, .err = err};
    webconfig *wc = webconfig_new_default();
    static const char *const names[] = {"tls_server_config", "http_server_config", "rate_limit",
                                        "basic_auth_users"};
    slot s[4];
    const yamlconf_node *root = yamlconf_root(doc);
    if (decode_map(&c, root, "web.Config", names, 4, s) >= 0) {
        /* Go decodes in document order, so the error order follows it. */
        if (decode_tls(&c, s[0].val, wc) && decode_http(&c, s[1].val, wc) &&
            decode_users(&c, s[3].val, wc) && s[2].key && !yamlconf_is_null(s[2].val))
            errorf(&c, s[2].key,
                   "rate_limit is not supported by sidewatch (use --web.max-connections)");
    }
    yamlconf_free(doc);
    if (c.failed) {
        webconfig_free(wc);
        return -EINVAL;
    }
    *out = wc;
    return 0;
}

static int check_one(const char *what, const char *path, buf *err)
{
    if (!*path) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (err)
            buf_printf(err, "failed to read %s (%s): open %s: %s\n", what, path, path, strerror(e));
        return -e;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fileno(f), &st) == 0 && st.st_size > (off_t)WEBCONFIG_MAX_FILE) {
        if (err)
            buf_printf(err, "failed to read %s (%s): over %u bytes\n", what, path,
                       WEBCONFIG_MAX_FILE);
        rc = -EFBIG;
    }
    fclose(f);
    return rc;
}

int webconfig_check_files(const webconfig *wc, buf *err)
{
    int rc;
    if ((rc = check_one("cert_file", wc->cert_file, err)) < 0) return rc;
    if ((rc = check_one("key_file", wc->key_file, err)) < 0) return rc;
    return check_one("client_ca_file", wc->client_ca_file, err);
}

int webconfig_load_file(const char *path, webconfig **out, buf *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (err) buf_printf(err, "open %s: %s\n", path, strerror(e));
        return -e;
    }
    buf text;
    buf_init(&text, WEBCONFIG_MAX_FILE);
    char chunk[8192];
    size_t r;
    int rc = 0;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (buf_append(&text, chunk, r) < 0) {
            rc = -E2BIG;
            break;
        }
    }
    bool read_err = ferror(f);
    fclose(f);
    if (rc == 0 && read_err) rc = -EIO;
    if (rc < 0) {
        if (err) buf_printf(err, "%s: %s\n", path, rc == -E2BIG ? "file too large" : "read error");
        buf_cleanup(&text);
        return rc;
    }
    char *dir = mem_strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir ? 1 : 0] = '\0';
    else
        strcpy(dir, ".");
    size_t len = 0;
    char *t = buf_detach(&text, &len);
    webconfig *wc = NULL;
    rc = webconfig_load_string(t ? t : "", len, path, dir, &wc, err);
    mem_free(t);
    mem_free(dir);
    if (rc == 0 && wc->tls_enabled && (rc = webconfig_check_files(wc, err)) < 0) {
        webconfig_free(wc);
        return rc;
    }
    *out = wc;
    return rc;
}

static void add_token(buf *out, const char *prefix, const char *tok, const char *seen)
{
    char t[64];
    snprintf(t, sizeof t, ":+%s%s", prefix, tok);
    if (!*tok || strstr(seen, t)) return;
    buf_puts(out, t);
}

void webconfig_gnutls_priorities(const webconfig *wc, buf *out)
{
    size_t start = out->len;
    buf_puts(out, "NORMAL:-VERS-ALL");
    static const char *const vnames[] = {"TLS1.0", "TLS1.1", "TLS1.2", "TLS1.3"};
    for (uint16_t v = wc->max_version; v >= wc->min_version && v >= WEBCONFIG_TLS10; v--)
        buf_printf(out, ":+VERS-%s", vnames[v - WEBCONFIG_TLS10]);
    if (wc->n_cipher_suites) {
        buf_puts(out, ":-CIPHER-ALL:-KX-ALL:-MAC-ALL");
        for (size_t i = 0; i < wc->n_cipher_suites; i++) {
            const webconfig_cipher *cs = wc->cipher_suites[i];
            add_token(out, "", cs->gnutls_cipher, buf_cstr(out) + start);
            add_token(out, "", cs->gnutls_kx, buf_cstr(out) + start);
            add_token(out, "", cs->gnutls_mac, buf_cstr(out) + start);
        }
    }
    if (wc->n_curves) {
        buf_puts(out, ":-GROUP-ALL");
        for (size_t i = 0; i < wc->n_curves; i++)
            add_token(out, "GROUP-", wc->curves[i], buf_cstr(out) + start);
    }
    if (wc->prefer_server_cipher_suites) buf_puts(out, ":%SERVER_PRECEDENCE");
}

const char *webconfig_user_hash(const webconfig *wc, const char *user)
{
    size_t lo = 0, hi = wc->n_users;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(user, wc->users[mid].name);
        if (cmp == 0) return wc->users[mid].hash;
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

void webconfig_free(webconfig *wc)
{
    if (!wc) return;
    mem_free(wc->cert_file);
    mem_free(wc->key_file);
    mem_free(wc->client_ca_file);
    mem_free(wc->cert);
    mem_free(wc->key);
    mem_free(wc->client_ca);
    mem_free(wc->cipher_suites);
    for (size_t i = 0; i < wc->n_curves; i++)
        mem_free(wc->curves[i]);
    mem_free(wc->curves);
    for (size_t i = 0; i < wc->n_client_allowed_sans; i++)
        mem_free(wc->client_allowed_sans[i]);
    mem_free(wc->client_allowed_sans);
    for (size_t i = 0; i < wc->n_headers; i++) {
        mem_free(wc->headers[i].name);
        mem_free(wc->headers[i].value);
    }
    mem_free(wc->headers);
    for (size_t i = 0; i < wc->n_users; i++) {
        mem_free(wc->users[i].name);
        mem_free(wc->users[i].hash);
    }
    mem_free(wc->users);
    mem_free(wc);
}
