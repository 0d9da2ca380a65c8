/* Unit tests for webconfig: one data file per case under
 * tests/data/web-config/ (cases modelled on exporter-toolkit's
 * web/testdata and the messages promtool check web-config prints), with the
 * expected message and position in the table below, and the decoded values
 * of the good files. */
#include "testutil.h"

#include <errno.h>

#include "buf.h"
#include "webconfig.h"

#define DATA_DIR "tests/data/web-config"

static webconfig *load_good(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, DATA_DIR "/%s.good.yml", name);
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    webconfig *wc = NULL;
    int rc = webconfig_load_file(path, &wc, &err);
    if (rc != 0) fail_msg("%s failed to load: %s", path, buf_cstr(&err));
    assert_non_null(wc);
    assert_string_equal(buf_cstr(&err), "");
    buf_cleanup(&err);
    return wc;
}

static void test_empty_defaults(void **state)
{
    (void)state;
    webconfig *wc = load_good("empty");
    assert_false(wc->tls_enabled);
    assert_int_equal(wc->min_version, WEBCONFIG_TLS12);
    assert_int_equal(wc->max_version, WEBCONFIG_TLS13);
    assert_true(wc->prefer_server_cipher_suites);
    assert_true(wc->http2);
    assert_int_equal(wc->n_users, 0);
    assert_int_equal(wc->n_headers, 0);
    assert_int_equal(wc->client_auth, WEBCONFIG_NO_CLIENT_CERT);
    webconfig_free(wc);
    webconfig_free(NULL);
}

static void test_tls(void **state)
{
    (void)state;
    webconfig *wc = load_good("tls");
    assert_true(wc->tls_enabled);
    /* Relative paths are resolved against the file's directory. */
    assert_string_equal(wc->cert_file, DATA_DIR "/server.crt");
    assert_string_equal(wc->key_file, DATA_DIR "/server.key");
    assert_string_equal(wc->client_ca_file, DATA_DIR "/ca.crt");
    assert_int_equal(wc->client_auth, WEBCONFIG_REQUIRE_AND_VERIFY_CLIENT_CERT);
    assert_string_equal(webconfig_client_auth_name(wc->client_auth), "RequireAndVerifyClientCert");
    assert_int_equal(wc->min_version, WEBCONFIG_TLS13);
    assert_int_equal(wc->max_version, WEBCONFIG_TLS13);
    assert_false(wc->prefer_server_cipher_suites);
    buf p;
    buf_init(&p, BUF_UNLIMITED);
    webconfig_gnutls_priorities(wc, &p);
    assert_string_equal(buf_cstr(&p), "NORMAL:-VERS-ALL:+VERS-TLS1.3");
    buf_cleanup(&p);
    webconfig_free(wc);
}

static void test_ciphers(void **state)
{
    (void)state;
    webconfig *wc = load_good("ciphers");
    assert_int_equal(wc->client_auth, WEBCONFIG_VERIFY_CLIENT_CERT_IF_GIVEN);
    assert_int_equal(wc->n_cipher_suites, 3);
    assert_string_equal(wc->cipher_suites[0]->go_name, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    assert_int_equal(wc->cipher_suites[0]->id, 0xc02f);
    assert_string_equal(wc->cipher_suites[0]->gnutls_kx, "ECDHE-RSA");
    assert_string_equal(wc->cipher_suites[1]->gnutls_cipher, "CHACHA20-POLY1305");
    assert_string_equal(wc->cipher_suites[2]->gnutls_kx, "");
    assert_int_equal(wc->cipher_suites[2]->id, 0x1302);
    assert_int_equal(wc->n_curves, 2);
    assert_string_equal(wc->curves[0], "SECP256R1");
    assert_string_equal(wc->curves[1], "X25519");
    assert_null(webconfig_cipher_by_name("TLS_RSA_WITH_RC4_128_SHA"));
    buf p;
    buf_init(&p, BUF_UNLIMITED);
    webconfig_gnutls_priorities(wc, &p);
    assert_string_equal(buf_cstr(&p),
                        "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:-KX-ALL:-MAC-ALL"
                        ":+AES-128-GCM:+ECDHE-RSA:+AEAD:+CHACHA20-POLY1305:+ECDHE-ECDSA"
                        ":+AES-256-GCM:-GROUP-ALL:+GROUP-SECP256R1:+GROUP-X25519"
                        ":%SERVER_PRECEDENCE");
    buf_cleanup(&p);
    webconfig_free(wc);
}

static void test_users(void **state)
{
    (void)state;
    webconfig *wc = load_good("users");
    assert_false(wc->tls_enabled);
    assert_int_equal(wc->n_users, 3);
    assert_string_equal(wc->users[0].name, "alice"); /* sorted */
    assert_string_equal(webconfig_user_hash(wc, "carol"),
                        "$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu");
    assert_non_null(webconfig_user_hash(wc, "bob"));
    assert_null(webconfig_user_hash(wc, "dave"));
    assert_null(webconfig_user_hash(wc, ""));
    webconfig_free(wc);
}

static void test_headers(void **state)
{
    (void)state;
    webconfig *wc = load_good("headers");
    assert_false(wc->http2);
    assert_int_equal(wc->n_headers, 5);
    assert_string_equal(wc->headers[0].name, "X-Frame-Options");
    assert_string_equal(wc->headers[0].value, "deny");
    assert_string_equal(wc->headers[1].value, "max-age=31536000; includeSubDomains");
    assert_string_equal(wc->headers[3].value, "1");
    assert_string_equal(wc->headers[4].value, "default-src 'self'");
    webconfig_free(wc);
}

static void test_inline(void **state)
{
    (void)state;
    webconfig *wc = load_good("inline");
    assert_true(wc->tls_enabled);
    assert_string_equal(wc->cert_file, "");
    assert_non_null(strstr(wc->cert, "BEGIN CERTIFICATE"));
    assert_non_null(strstr(wc->key, "BEGIN PRIVATE KEY"));
    /* RequireClientCert is exporter-toolkit's old name. */
    assert_int_equal(wc->client_auth, WEBCONFIG_REQUIRE_ANY_CLIENT_CERT);
    webconfig_free(wc);
}

static const struct bad_case {
    const char *name;
    const char *msg; /* the whole message after "<file>:" */
} bad_cases[] = {
    {"junk", "1:1: cannot unmarshal !!str `hWkNKCp...` into web.Config"},
    {"junk_key", "2:3: field cert_filse not found in type web.TLSConfig"},
    {"top_key", "4:1: field web_listen not found in type web.Config"},
    {"dup_key", "3:3: field cert_file already set in type web.TLSConfig"},
    {"tls_type", "1:20: cannot unmarshal !!seq into web.TLSConfig"},
    {"http2_type", "2:10: cannot unmarshal !!str `maybe` into bool"},
    {"cert_missing", "2:3: missing one of cert or cert_file"},
    {"key_missing", "2:3: missing one of key or key_file"},
    {"cert_empty", "2:3: missing one of cert or cert_file"},
    {"both_certs", "3:3: at most one of cert and cert_file must be configured"},
    {"client_auth", "4:21: invalid ClientAuth: Sometimes"},
    {"ca_without_policy", "2:3: client CA's have been configured without a Client Auth Policy"},
    {"version", "4:16: unknown TLS version: TLS111"},
    {"min_above_max",
     "4:16: min_version is above max_version: no supported versions satisfy MinVersion and "
     "MaxVersion"},
    {"cipher", "6:5: unknown cipher: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048"},
    {"curve", "4:34: unknown curve: CurveP1024"},
    {"user_plain", "2:9: crypto/bcrypt: hashedSecret too short to be a bcrypted password"},
    {"user_prefix",
     "2:9: crypto/bcrypt: bcrypt hashes must start with '$', but hashedSecret started with 'x'"},
    {"user_cost", "2:9: crypto/bcrypt: cost 3 is outside allowed range (4,31)"},
    {"header_extra", "3:5: HTTP header \"Access-Control-Allow-Origin\" can not be configured"},
    {"header_frame",
     "3:22: invalid value for X-Frame-Options. Expected one of: [\"deny\" \"sameorigin\"], but "
     "got: \"allow\""},
    {"header_nosniff",
     "3:29: invalid value for X-Content-Type-Options. Expected one of: [\"nosniff\"], but got: "
     "\"sniff\""},
    {"client_sans", "5:3: client_allowed_sans is not supported by sidewatch"},
    {"rate_limit", "1:1: rate_limit is not supported by sidewatch (use --web.max-connections)"},
};

static void test_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        char path[512], want[1024];
        snprintf(path, sizeof path, DATA_DIR "/%s.bad.yml", bad_cases[i].name);
        snprintf(want, sizeof want, "%s:%s\n", path, bad_cases[i].msg);
        buf err;
        buf_init(&err, BUF_UNLIMITED);
        webconfig *wc = (webconfig *)1;
        int rc = webconfig_load_file(path, &wc, &err);
        if (rc != -EINVAL || wc != NULL || strcmp(buf_cstr(&err), want) != 0)
            fail_msg("%s: rc=%d\n got: %s want: %s", path, rc, buf_cstr(&err), want);
        buf_cleanup(&err);
    }
}

/* Files the config names must be readable (promtool reads them too). */
static void test_missing_file(void **state)
{
    (void)state;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    webconfig *wc = NULL;
    int rc = webconfig_load_file(DATA_DIR "/missing_file.bad.yml", &wc, &err);
    assert_int_equal(rc, -ENOENT);
    assert_null(wc);
    assert_string_equal(buf_cstr(&err),
                        "failed to read cert_file (" DATA_DIR "/nosuch.crt): open " DATA_DIR
                        "/nosuch.crt: No such file or directory\n");
    buf_reset(&err);
    rc = webconfig_load_file(DATA_DIR "/no-such-config.yml", &wc, &err);
    assert_int_equal(rc, -ENOENT);
    assert_non_null(strstr(buf_cstr(&err), "no-such-config.yml"));
    buf_cleanup(&err);
}

/* Strings: no dir means paths stay as given; absolute paths are kept. */
static void test_string_paths(void **state)
{
    (void)state;
    const char *y = "tls_server_config:\n  cert_file: /etc/a.crt\n  key_file: b.key\n";
    webconfig *wc = NULL;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_int_equal(webconfig_load_string(y, strlen(y), "x.yml", "/d", &wc, &err), 0);
    assert_string_equal(wc->cert_file, "/etc/a.crt");
    assert_string_equal(wc->key_file, "/d/b.key");
    webconfig_free(wc);
    assert_int_equal(webconfig_load_string(y, strlen(y), "x.yml", NULL, &wc, &err), 0);
    assert_string_equal(wc->key_file, "b.key");
    webconfig_free(wc);
    /* A YAML syntax error is reported with its position. */
    const char *bad = "tls_server_config:\n  cert_file: [\n";
    assert_int_equal(webconfig_load_string(bad, strlen(bad), "x.yml", NULL, &wc, &err), -EINVAL);
    assert_null(wc);
    assert_non_null(strstr(buf_cstr(&err), "x.yml:"));
    buf_cleanup(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_defaults),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_ciphers),
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_inline),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_string_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
