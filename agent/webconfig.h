/* webconfig: Prometheus's --web.config.file (exporter-toolkit's web config)
 * into a validated, immutable struct.
 *
 * Keys and semantics follow exporter-toolkit's web/tls_config.go and
 * web/handler.go: strict decoding (unknown and repeated keys refused with
 * yaml.v2's messages), defaults min_version TLS12, max_version TLS13,
 * prefer_server_cipher_suites true, http2 true; relative cert_file,
 * key_file and client_ca_file are resolved against the file's directory;
 * TLS is enabled when any of cert(_file), key(_file), client_ca(_file) or
 * client_auth_type is set, and then needs a cert and a key; client CAs need
 * a client_auth_type other than NoClientCert; basic_auth_users values must
 * be bcrypt hashes; http_server_config.headers only takes the headers
 * exporter-toolkit allows, with its fixed values where it has them.
 *
 * The first error stops loading (as Go's decoder does) and is reported as
 * one line "<file>:<line>:<col>: <message>" (positionless checks, such as
 * a missing cert, are reported as "<file>: <message>"). Nothing here
 * touches TLS libraries: certificate and key contents are loaded as PEM
 * text for api.c to hand to libmicrohttpd. */
#ifndef SIDEWATCH_WEBCONFIG_H
#define SIDEWATCH_WEBCONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Largest web config file and largest PEM file read (cert, key, CA). */
#define WEBCONFIG_MAX_FILE (1u * 1024 * 1024)

enum webconfig_client_auth {
    WEBCONFIG_NO_CLIENT_CERT,
    WEBCONFIG_REQUEST_CLIENT_CERT,
    WEBCONFIG_REQUIRE_ANY_CLIENT_CERT,
    WEBCONFIG_VERIFY_CLIENT_CERT_IF_GIVEN,
    WEBCONFIG_REQUIRE_AND_VERIFY_CLIENT_CERT,
};

/* TLS protocol versions as on the wire (Go's tls.VersionTLS1x). */
#define WEBCONFIG_TLS10 0x0301
#define WEBCONFIG_TLS11 0x0302
#define WEBCONFIG_TLS12 0x0303
#define WEBCONFIG_TLS13 0x0304

/* One cipher suite from Go's tls.CipherSuites() and the GnuTLS priority
 * tokens that select it (key exchange, cipher, MAC; kx is "" for TLS 1.3
 * suites, which have no key exchange of their own). */
typedef struct webconfig_cipher {
    const char *go_name;
    uint16_t id;
    const char *gnutls_kx, *gnutls_cipher, *gnutls_mac;
} webconfig_cipher;

typedef struct webconfig_user {
    char *name;
    char *hash; /* bcrypt, "$2a$", "$2b$" or "$2y$" */
} webconfig_user;

typedef struct webconfig_header {
    char *name, *value;
} webconfig_header;

typedef struct webconfig {
    bool tls_enabled;
    /* Resolved paths ("" when not set) and inline PEM text ("" when not set). */
    char *cert_file, *key_file, *client_ca_file;
    char *cert, *key, *client_ca;
    enum webconfig_client_auth client_auth;
    uint16_t min_version, max_version;
    const webconfig_cipher **cipher_suites; /* borrowed from a static table */
    size_t n_cipher_suites;
    char **curves; /* GnuTLS group names: SECP256R1, SECP384R1, SECP521R1, X25519 */
    size_t n_curves;
    bool prefer_server_cipher_suites;
    char **client_allowed_sans; /* refused when non-empty (not enforced yet) */
    size_t n_client_allowed_sans;
    bool http2;
    webconfig_header *headers;
    size_t n_headers;
    webconfig_user *users; /* sorted by name */
    size_t n_users;
} webconfig;

/* Parses and validates text[0..len). `source` names it in messages; `dir`
 * is the directory relative paths are resolved against (NULL: as given).
 * On success returns 0 and *out (caller frees with webconfig_free). On
 * failure returns -EINVAL (or -E2BIG for an oversized input), *out is NULL
 * and one line is appended to err (if non-NULL). Files named in the config
 * are not read: see webconfig_check_files. */
int webconfig_load_string(const char *text, size_t len, const char *source, const char *dir,
                          webconfig **out, buf *err);
/* Reads and validates a file (relative paths resolved against its
 * directory), then checks that the certificate, key and CA files it names
 * can be read. Returns 0 or a negative errno (-ENOENT etc. when the file
 * itself cannot be read, -EINVAL when invalid), as webconfig_load_string. */
int webconfig_load_file(const char *path, webconfig **out, buf *err);
/* Checks that cert_file, key_file and client_ca_file can be read (within
 * WEBCONFIG_MAX_FILE). Returns 0, or -errno with exporter-toolkit's message
 * ("failed to read cert_file (PATH): ...") appended to err. */
int webconfig_check_files(const webconfig *wc, buf *err);
/* Frees everything. NULL is a no-op. */
void webconfig_free(webconfig *wc);

/* The user's bcrypt hash, or NULL. Borrowed from wc. */
const char *webconfig_user_hash(const webconfig *wc, const char *user);
/* The cipher suite with Go's name, or NULL. */
const webconfig_cipher *webconfig_cipher_by_name(const char *go_name);
/* Appends the GnuTLS priority string for min/max_version, cipher_suites
 * and curve_preferences (for libmicrohttpd's MHD_OPTION_HTTPS_PRIORITIES),
 * e.g. "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2". Cipher suites are
 * mapped to their GnuTLS cipher, key-exchange and MAC tokens; as GnuTLS
 * combines those freely, a list may enable a few more TLS 1.2 suites made
 * of the same parts. prefer_server_cipher_suites adds %SERVER_PRECEDENCE. */
void webconfig_gnutls_priorities(const webconfig *wc, buf *out);
/* "NoClientCert", "RequestClientCert", ... */
const char *webconfig_client_auth_name(enum webconfig_client_auth a);

#endif
