/* Unit and conformance tests for config: every validation rule (one data
 * file per case under tests/data/config/, expected message and position
 * in the tables below), parsed values of good configs, and Prometheus's own
 * config test data read in place from ../shared/conformance/config/. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "labels.h"
#include "mem.h"
#include "regex.h"
#include "yamlconf.h"

#define DATA_DIR "tests/data/config"
#define CONF_DIR "conformance/config"

/* ---- helpers --------------------------------------------------------------- */

/* Loads a file; returns the config or NULL, with the error text in err. */
static config *load_path(const char *path, buf *err, const config_load_opts *opts)
{
    size_t len = 0;
    char *text = tu_read_file(path, &len);
    if (!text) fail_msg("cannot read %s", path);
    config *c = NULL;
    int rc = config_load_string_opts(text, len, path, opts, &c, err);
    free(text);
    if (rc == 0) assert_non_null(c);
    if (rc != 0) assert_null(c);
    return c;
}

static config *load_good(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, DATA_DIR "/%s.good.yml", name);
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    config *c = NULL;
    int rc = config_load_file(path, &c, &err);
    if (rc != 0) fail_msg("%s failed to load:\n%s", path, buf_cstr(&err));
    buf_cleanup(&err);
    return c;
}

static config *load_yaml(const char *yaml, buf *err)
{
    config *c = NULL;
    config_load_string(yaml, strlen(yaml), "inline.yml", &c, err);
    return c;
}

static const config_scrape *job(const config *c, const char *name)
{
    const config_scrape *s = config_find_job(c, name);
    if (!s) fail_msg("job %s not found", name);
    return s;
}

static void assert_label(const labels *ls, const char *name, const char *want)
{
    size_t len;
    const char *v = labels_get(ls, name, strlen(name), &len);
    if (!want) {
        if (v) fail_msg("label %s: want absent, got %s", name, v);
        return;
    }
    if (!v || len != strlen(want) || memcmp(v, want, len) != 0) {
        fail_msg("label %s: want %s, got %s", name, want, v ? v : "(absent)");
    }
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- own bad cases: tests/data/config/<name>.bad.yml -------------------------- */

/* The expected "<line>:<col>: <message>" (after "<file>:") of one error of
 * each bad file. */
static const struct {
    const char *name;
    const char *expect;
} bad_cases[] = {
    {"alert_relabel_null", "3:6: empty or null alert relabeling rule"},
    {"am_alert_relabel_null", "6:11: empty or null Alertmanager alert relabeling rule"},
    {"am_api_version", "3:20: expected Alertmanager api version to be one of [v2] but got v1"},
    {"am_api_version_null", "3:7: expected Alertmanager api version to be one of [v2] but got "},
    {"am_null", "3:6: empty or null alertmanager config section"},
    {"am_relabel_null", "6:10: empty or null Alertmanager target relabeling rule"},
    {"am_scheme", "3:15: unsupported Alertmanager scheme \"smtp\" (sidewatch sends over \"http\" "
                  "and \"https\")"},
    {"am_sigv4_with_auth",
     "5:7: at most one of basic_auth, authorization, oauth2, & sigv4 must be configured"},
    {"am_timeout", "3:16: not a valid duration string: \"10\""},
    {"am_unknown_field", "3:7: field path not found in type config.AlertmanagerConfig"},
    {"am_unsupported_sd",
     "3:7: not supported: dns_sd_configs (sidewatch implements static_configs, "
     "file_sd_configs and docker_sd_configs)"},
    {"am_url_target", "4:21: \"http://am:9093\" is not a valid hostname"},
    {"binary_invalid", "3:11: !!binary value contains invalid base64 data"},
    {"docker_sd_filter_unknown", "7:13: field value not found in type moby.Filter"},
    {"docker_sd_filters_type", "6:11: cannot unmarshal !!map into []moby.Filter"},
    {"docker_sd_host_missing", "4:9: host missing"},
    {"docker_sd_host_port", "4:15: parse \"tcp://docker:23x5\": invalid port \":23x5\" after host"},
    {"docker_sd_host_url", "4:15: parse \"http://[::1\": missing ']' in host"},
    {"docker_sd_http_auth",
     "7:9: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"},
    {"docker_sd_match_type", "5:30: cannot unmarshal !!str `maybe` into bool"},
    {"docker_sd_null", "4:8: empty or null section in docker_sd_configs"},
    {"docker_sd_port_type", "5:15: cannot unmarshal !!str `http` into int"},
    {"docker_sd_refresh_zero",
     "5:27: refresh_interval must be greater than 0 for docker_sd_configs"},
    {"docker_sd_unknown_field", "5:9: field role not found in type moby.plain"},
    {"external_labels_dup", "4:5: key \"foo\" already set in map"},
    {"external_labels_legacy", "4:5: \"foo.bar\" is not a valid label name"},
    {"external_labels_type", "2:20: cannot unmarshal !!seq into map[string]string"},
    {"external_labels_value_type", "3:13: cannot unmarshal !!map into string"},
    {"file_sd_empty", "4:9: file service discovery config must contain at least one path name"},
    {"file_sd_extension", "4:17: path name \"targets.txt\" is not valid for file discovery"},
    {"file_sd_null", "4:8: empty or null section in file_sd_configs"},
    {"file_sd_pattern", "4:17: path name \"targets/*/x.json\" is not valid for file discovery"},
    {"file_sd_unknown_field", "5:9: field refresh not found in type file.plain"},
    {"global_bad_duration", "2:20: not a valid duration string: \"15\""},
    {"global_duration_type", "2:24: cannot unmarshal !!seq into string"},
    {"global_escaping", "2:32: unknown global name escaping method specified, must be one of "
                        "'allow-utf-8', 'underscores', 'dots', or 'values', got \"hyphens\""},
    {"global_label_limit_negative", "2:16: cannot unmarshal !!int `-5` into uint"},
    {"global_protocols_dup", "2:39: duplicated protocol in scrape_protocols, got [PrometheusProto "
                             "prometheusproto] for global config"},
    {"global_protocols_empty", "2:21: scrape_protocols cannot be empty for global config"},
    {"global_protocols_unknown", "2:43: scrape_protocols: unknown scrape protocol JSON, supported: "
                                 "[OpenMetricsText0.0.1 OpenMetricsText1.0.0 PrometheusProto "
                                 "PrometheusText0.0.4 PrometheusText1.0.0] for global config"},
    {"global_sample_limit_type", "2:17: cannot unmarshal !!str `lots` into uint"},
    {"global_timeout_gt_interval", "3:19: global scrape timeout greater than scrape interval"},
    {"global_type", "2:3: cannot unmarshal !!seq into config.plain"},
    {"global_validation_scheme", "2:34: unrecognized ValidationScheme: \"ascii\""},
    {"http_authz_and_basic",
     "3:5: at most one of basic_auth, oauth2 & authorization must be configured"},
    {"http_authz_basic_type",
     "3:5: authorization type cannot be set to \"basic\", use \"basic_auth\" instead"},
    {"http_authz_credentials_both",
     "3:5: at most one of authorization credentials & credentials_file must be configured"},
    {"http_authz_with_bearer",
     "3:5: authorization is not compatible with bearer_token & bearer_token_file"},
    {"http_basic_password_both",
     "3:5: at most one of basic_auth password, password_file & password_ref must be configured"},
    {"http_basic_unknown", "4:7: field user not found in type config.plain"},
    {"http_basic_username_both",
     "3:5: at most one of basic_auth username, username_file & username_ref must be configured"},
    {"http_bearer_both", "3:5: at most one of bearer_token & bearer_token_file must be configured"},
    {"http_headers_reserved", "4:7: setting header \"User-Agent\" is not allowed"},
    {"http_no_proxy_alone", "2:5: if no_proxy is configured, proxy_url must also be configured"},
    {"http_oauth2_client_id", "3:5: oauth2 client_id must be configured"},
    {"http_oauth2_secret_both",
     "3:5: at most one of oauth2 client_secret, client_secret_file & client_secret_ref must be "
     "configured using grant-type=client_credentials"},
    {"http_oauth2_token_url", "3:5: oauth2 token_url must be configured"},
    {"http_oauth2_with_basic",
     "3:5: at most one of basic_auth, oauth2 & authorization must be configured"},
    {"http_proxy_connect_header", "2:5: if proxy_connect_header is configured, proxy_url or "
                                  "proxy_from_environment must also be configured"},
    {"http_proxy_env_and_url",
     "2:5: if proxy_from_environment is configured, proxy_url must not be configured"},
    {"http_sd_missing_url", "4:9: URL is missing"},
    {"http_sd_no_host", "4:14: host is missing in URL"},
    {"http_tls_ca_both", "4:7: at most one of ca, ca_file & ca_ref must be configured"},
    {"http_tls_cert_no_key", "4:7: exactly one of key or key_file must be configured when a client "
                             "certificate is configured"},
    {"http_tls_key_no_cert",
     "4:7: exactly one of cert or cert_file must be configured when a client key is configured"},
    {"http_tls_unknown", "4:7: field verify not found in type config.plain"},
    {"http_tls_version", "4:20: unknown TLS version: TLS14"},
    {"http_tls_version_newline", "4:20: unknown TLS version: TLS1\\n3"},
    {"metric_relabel_null", "7:9: empty or null metric relabeling rule in scrape config"},
    {"multi_doc", "3:1: multiple YAML documents are not supported (this is the second)"},
    {"otlp_duplicate_attribute", "2:36: invalid 'promote_resource_attributes': duplicated promoted "
                                 "OTel resource attribute \"a\""},
    {"otlp_promote_both", "3:3: 'promote_all_resource_attributes' and "
                          "'promote_resource_attributes' cannot be configured simultaneously"},
    {"otlp_strategy", "2:25: unsupported OTLP translation strategy \"Foo\""},
    {"otlp_strategy_legacy",
     "4:25: OTLP translation strategy \"NoTranslation\" is not allowed when UTF8 is disabled"},
    {"relabel_action_empty", "5:9: relabel action cannot be empty"},
    {"relabel_action_unknown", "5:17: unknown relabel action \"Explode\""},
    {"relabel_dropequal_replacement", "6:22: 'replacement' can not be set for dropequal action"},
    {"relabel_dropequal_separator",
     "4:9: dropequal action requires only 'source_labels' and `target_label`, and no other fields"},
    {"relabel_hashmod_target_invalid",
     "8:23: \"tmp-hash\" is invalid 'target_label' for hashmod action"},
    {"relabel_hashmod_target_missing",
     "6:17: relabel configuration for hashmod action requires 'target_label' value"},
    {"relabel_job_legacy_target",
     "7:23: \"host.name\" is invalid 'target_label' for replace action"},
    {"relabel_keepequal_regex",
     "4:9: keepequal action requires only 'source_labels' and `target_label`, and no other fields"},
    {"relabel_keepequal_target_missing",
     "5:17: relabel configuration for keepequal action requires 'target_label' value"},
    {"relabel_labeldrop_empty_sources",
     "4:9: labeldrop action requires only 'regex', and no other fields"},
    {"relabel_labeldrop_target",
     "4:9: labeldrop action requires only 'regex', and no other fields"},
    {"relabel_labelkeep_modulus",
     "4:9: labelkeep action requires only 'regex', and no other fields"},
    {"relabel_labelmap_replacement",
     "7:22: \"meta.$1\" is invalid 'replacement' for labelmap action"},
    {"relabel_list_type", "3:22: cannot unmarshal !!str `keep ev...` into []*relabel.Config"},
    {"relabel_lowercase_target_missing",
     "5:17: relabel configuration for lowercase action requires 'target_label' value"},
    {"relabel_lowercase_target_var", "7:23: \"$1\" is invalid 'target_label' for lowercase action"},
    {"relabel_modulus_negative", "5:18: cannot unmarshal !!int `-1` into uint64"},
    {"relabel_regex_lookahead",
     "5:16: error parsing regexp: invalid or unsupported Perl syntax: `(?=`"},
    {"relabel_replace_target_legacy",
     "7:23: \"foo.bar\" is invalid 'target_label' for replace action"},
    {"relabel_replace_target_utf8", "5:23: \"\\xff\" is invalid 'target_label' for replace action"},
    {"relabel_replace_target_var_legacy",
     "7:23: \"${1}-x\" is invalid 'target_label' for replace action"},
    {"relabel_source_label_empty", "4:25: \"\" is not a valid label name"},
    {"relabel_unknown_field", "5:9: field regexp not found in type relabel.plain"},
    {"relabel_uppercase_replacement", "6:22: 'replacement' can not be set for uppercase action"},
    {"remote_read_null", "2:5: empty or null remote read config section"},
    {"remote_write_null", "2:4: empty or null remote write config section"},
    {"rr_dup_name", "5:11: found multiple remote read configs with job name \"a\""},
    {"rr_url_missing", "2:5: url for remote_read is empty"},
    {"rule_files_pattern",
     "1:14: invalid rule file path \"rules/[a.yml\": syntax error in pattern"},
    {"rule_files_type", "1:13: cannot unmarshal !!str `alerts.yml` into []string"},
    {"runtime_type", "2:9: cannot unmarshal !!str `lots` into int"},
    {"rw_auth_multiple", "2:5: at most one of basic_auth, authorization, oauth2, sigv4, azuread or "
                         "google_iam must be configured. Currently configured: [basic_auth sigv4]"},
    {"rw_dup_name", "5:11: found multiple remote write configs with job name \"a\""},
    {"rw_header_authorization", "4:7: authorization header must be changed via the basic_auth, "
                                "authorization, oauth2, sigv4, azuread or google_iam parameter"},
    {"rw_header_reserved", "4:7: Content-Type is a reserved header. It must not be changed"},
    {"rw_protobuf_message", "3:23: invalid protobuf_message value: unknown type for remote write "
                            "protobuf message prometheus.WriteRequestV3, supported: "
                            "prometheus.WriteRequest, io.prometheus.write.v2.Request"},
    {"rw_queue_backoff", "3:5: remote write queue max_backoff must not be less than min_backoff"},
    {"rw_queue_capacity", "3:5: remote write queue capacity must be positive"},
    {"rw_queue_max_shards", "3:5: remote write queue max_shards must be positive"},
    {"rw_queue_min_gt_max",
     "3:5: remote write queue min_shards must not be greater than max_shards"},
    {"rw_relabel_null", "4:8: empty or null relabeling rule in remote write config"},
    {"rw_url_missing", "2:5: url for remote_write is empty"},
    {"scrape_body_size_unit", "3:22: units: unknown unit XB in 10XB"},
    {"scrape_bool_type", "3:19: cannot unmarshal !!str `true` into bool"},
    {"scrape_config_files", "1:1: not supported: scrape_config_files (sidewatch reads scrape "
                            "configs from the main config file only)"},
    {"scrape_config_files_pattern", "2:5: invalid scrape config file path \"scrape/*/x.yml\""},
    {"scrape_configs_type", "2:3: cannot unmarshal !!map into []*config.ScrapeConfig"},
    {"scrape_dup_field", "4:5: field job_name already set in type config.ScrapeConfig"},
    {"scrape_dup_job_three", "4:15: found multiple scrape configs with job name \"a\""},
    {"scrape_escaping_unknown",
     "3:34: unknown scrape config name escaping method specified, must be one of 'allow-utf-8', "
     "'underscores', 'dots', or 'values', got \"hyphens\""},
    {"scrape_fallback",
     "3:31: invalid fallback_scrape_protocol for scrape config with job name \"a\": unknown scrape "
     "protocol Text, supported: [OpenMetricsText0.0.1 OpenMetricsText1.0.0 PrometheusProto "
     "PrometheusText0.0.4 PrometheusText1.0.0]"},
    {"scrape_item_type", "2:5: cannot unmarshal !!str `a` into config.ScrapeConfig"},
    {"scrape_job_name_type", "2:15: cannot unmarshal !!seq into string"},
    {"scrape_legacy_utf8_escaping",
     "4:34: utf8 metric names requested but validation scheme is not set to UTF8"},
    {"scrape_params_type", "4:15: cannot unmarshal !!str `http_2xx` into []string"},
    {"scrape_protocols_job",
     "3:24: scrape_protocols: unknown scrape protocol OpenMetricsText2.0.0, supported: "
     "[OpenMetricsText0.0.1 OpenMetricsText1.0.0 PrometheusProto PrometheusText0.0.4 "
     "PrometheusText1.0.0] for scrape config with job name \"a\""},
    {"scrape_scheme", "3:13: unsupported scheme \"ftp\" for scrape config with job name \"a\" "
                      "(sidewatch scrapes \"http\" and \"https\")"},
    {"scrape_timeout_gt_global_interval",
     "5:21: scrape timeout greater than scrape interval for scrape config with job name \"a\""},
    {"scrape_unknown_field", "3:5: field scrape_intervall not found in type config.ScrapeConfig"},
    {"scrape_validation_scheme", "3:36: unrecognized ValidationScheme: \"ascii\""},
    {"static_label_dup", "7:11: key \"env\" already set in map"},
    {"static_label_name", "6:11: \"\" is not a valid label name"},
    {"static_type", "4:7: cannot unmarshal !!map into []*targetgroup.Group"},
    {"static_unknown_field",
     "4:9: field target not found in type struct { Targets []string \"yaml:\\\"targets\\\"\"; "
     "Labels model.LabelSet \"yaml:\\\"labels\\\"\" }"},
    {"storage_chunk_encoding", "4:15: 'storage.tsdb.chunk_encoding.floats' must be 'xor' or "
                               "'xor2', or the field must be omitted entirely, got \"gorilla\""},
    {"storage_retention_percentage",
     "4:19: 'storage.tsdb.retention.percentage' must be in the range [0, 100], got 101"},
    {"webhook_auth_both",
     "5:5: at most one of basic_auth & bearer_token (or bearer_token_file) must be configured"},
    {"webhook_bearer_both",
     "5:5: at most one of bearer_token & bearer_token_file must be configured"},
    {"webhook_dup_name", "4:11: found multiple webhooks with name \"a\""},
    {"webhook_duration", "4:17: not a valid duration string: \"soon\""},
    {"webhook_group_by_wildcard",
     "4:15: cannot have wildcard group_by (`...`) and other labels at the same time"},
    {"webhook_group_interval", "4:21: webhook group_interval must be greater than 0"},
    {"webhook_hmac_both", "5:5: at most one of hmac_secret & hmac_secret_file must be configured"},
    {"webhook_max_alerts", "4:17: cannot unmarshal !!int `-1` into uint64"},
    {"webhook_no_name", "2:5: webhook name is missing or empty"},
    {"webhook_no_url", "2:5: webhook url is missing or empty"},
    {"webhook_unknown", "4:5: field sendresolved not found in type config.WebhookConfig"},
    {"webhook_url_scheme",
     "3:10: webhook url \"ftp://h/x\": unsupported scheme (use http:// or https://)"},
    {"containers_cgroup_root",
     "2:16: containers cgroup_root \"sys/fs/cgroup\" must be an absolute path"},
    {"containers_host", "2:16: containers docker_host \"ssh://me@host\": unsupported scheme (use "
                        "unix://, tcp://, http:// or https://)"},
    {"containers_interval", "2:13: containers interval must be greater than 0"},
    {"containers_rule_both", "3:7: include rule needs exactly one of name or label"},
    {"containers_rule_label", "3:14: include label rule needs a label key (KEY or KEY=REGEX)"},
    {"containers_rule_regex", "3:13: error parsing regexp: missing closing ): `(a`"},
    {"containers_unknown", "2:3: field intervall not found in type containers.Config"},
    {"storage_unknown", "2:3: field wal not found in type config.StorageConfig"},
    {"top_scalar", "1:1: cannot unmarshal !!str `hello` into config.plain"},
    {"tracing_client_type",
     "3:16: expected tracing client type to be to be http or grpc, but got udp"},
    {"tracing_compression", "3:16: invalid compression type zstd provided, valid options: gzip"},
    {"tracing_endpoint", "2:3: tracing endpoint must be set"},
    {"unknown_anchor", "2:5: unknown anchor 'base' referenced"},
    {"unknown_top", "3:1: field rules not found in type config.plain"},
    {"unsupported_sd", "3:5: not supported: kubernetes_sd_configs (sidewatch implements "
                       "static_configs, file_sd_configs and docker_sd_configs)"},
    {"unsupported_sd_null_item", "4:9: empty or null section in consul_sd_configs"},
    {"yaml_syntax", "3:23: mapping values are not allowed in this context"},
    {"yaml_tab", "2:1: while scanning for the next token found character that cannot start any "
                 "token (started at line 2, column 1)"},
};

static void test_own_bad_cases(void **state)
{
    (void)state;
    size_t failed = 0;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, DATA_DIR "/%s.bad.yml", bad_cases[i].name);
        buf err;
        buf_init(&err, BUF_UNLIMITED);
        config *c = NULL;
        int rc = config_load_file(path, &c, &err);
        buf want;
        buf_init(&want, BUF_UNLIMITED);
        buf_printf(&want, "%s:%s\n", path, bad_cases[i].expect);
        if (rc != -EINVAL || c || !strstr(buf_cstr(&err), buf_cstr(&want))) {
            print_message("FAIL %s: rc=%d, want %sgot:\n%s", path, rc, buf_cstr(&want),
                          buf_cstr(&err));
            failed++;
        }
        config_unref(c);
        buf_cleanup(&want);
        buf_cleanup(&err);
    }
    print_message("own bad cases: %zu checked, %zu failed\n",
                  sizeof bad_cases / sizeof bad_cases[0], failed);
    assert_int_equal(failed, 0);
}

/* Every *.bad.yml in the data directory has an entry (no case is skipped
 * silently), and every entry has its file. */
static void test_own_bad_cases_complete(void **state)
{
    (void)state;
    DIR *d = opendir(DATA_DIR);
    assert_non_null(d);
    size_t files = 0, missing = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (!has_suffix(n, ".bad.yml")) continue;
        files++;
        size_t len = strlen(n) - strlen(".bad.yml");
        bool found = false;
        for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
            if (strlen(bad_cases[i].name) == len && strncmp(bad_cases[i].name, n, len) == 0) {
                found = true;
            }
        }
        if (!found) {
            print_message("no expectation for %s/%s\n", DATA_DIR, n);
            missing++;
        }
    }
    closedir(d);
    assert_int_equal(missing, 0);
    assert_int_equal(files, sizeof bad_cases / sizeof bad_cases[0]);
}

/* ---- own good cases ------------------------------------------------------------ */

static void test_webhooks_section(void **state)
{
    (void)state;
    config *c = load_good("webhooks");
    assert_int_equal(c->n_webhooks, 3);
    const config_webhook *w = &c->webhooks[0];
    assert_string_equal(w->name, "ops");
    assert_string_equal(w->url, "https://hooks.example.com/alert");
    assert_false(w->group_by_all);
    assert_int_equal(w->n_group_by, 2);
    assert_string_equal(w->group_by[1], "job");
    assert_int_equal(w->group_wait_ms, 10000);
    assert_int_equal(w->group_interval_ms, 60000);
    assert_int_equal(w->repeat_interval_ms, 2 * 3600 * 1000);
    assert_false(w->send_resolved);
    assert_int_equal(w->max_alerts, 5);
    assert_int_equal(w->timeout_ms, 3000);
    assert_int_equal(w->max_age_ms, 3600 * 1000);
    assert_true(w->http.has_authorization);
    assert_string_equal(w->http.authorization_type, "Bearer");
    assert_string_equal(w->http.authorization_credentials.value, "s3cret-token");
    assert_string_equal(w->hmac_secret.value, "sign-me");
    assert_null(w->hmac_secret.file);
    assert_true(w->http.tls_insecure_skip_verify);
    w = &c->webhooks[1];
    assert_true(w->group_by_all);
    assert_int_equal(w->n_group_by, 0);
    assert_true(w->http.has_basic_auth);
    assert_string_equal(w->http.basic_auth_username, "u");
    /* files are resolved against the config's directory */
    assert_non_null(strstr(w->http.basic_auth_password.file, "/pw.txt"));
    assert_true(w->http.basic_auth_password.file[0] == '/' ||
                strncmp(w->http.basic_auth_password.file, DATA_DIR, strlen(DATA_DIR)) == 0);
    assert_non_null(strstr(w->hmac_secret.file, "/hmac.txt"));
    w = &c->webhooks[2];
    assert_int_equal(w->group_wait_ms, CONFIG_WEBHOOK_GROUP_WAIT_MS);
    assert_int_equal(w->group_interval_ms, CONFIG_WEBHOOK_GROUP_INTERVAL_MS);
    assert_int_equal(w->repeat_interval_ms, CONFIG_WEBHOOK_REPEAT_INTERVAL_MS);
    assert_int_equal(w->timeout_ms, CONFIG_WEBHOOK_TIMEOUT_MS);
    assert_true(w->send_resolved);
    assert_int_equal(w->max_alerts, 0);
    assert_int_equal(w->max_age_ms, 0);
    assert_false(w->http.has_authorization);
    assert_false(w->http.has_basic_auth);
    assert_null(w->hmac_secret.value);
    assert_int_equal(w->n_group_by, 0);
    assert_false(w->group_by_all);
    config_unref(c);
}

static void test_containers_section(void **state)
{
    (void)state;
    config *c = load_good("containers");
    const config_containers *cc = &c->containers;
    assert_true(cc->enabled);
    assert_string_equal(cc->docker_host, "unix:///tmp/docker.sock");
    assert_string_equal(cc->cgroup_root, "/host/sys/fs/cgroup");
    assert_int_equal(cc->interval_ms, 20000);
    assert_false(cc->all_labels);
    assert_int_equal(cc->n_label_keys, 2);
    assert_string_equal(cc->label_keys[1], "app");
    assert_int_equal(cc->n_include, 2);
    assert_int_equal(cc->n_exclude, 2);
    const char *k[] = {"com.docker.compose.project", "sidewatch.ignore"};
    const char *v[] = {"shop", "1"};
    assert_true(config_containers_selected(cc, "/web-1", NULL, NULL, 0));
    assert_false(config_containers_selected(cc, "db", NULL, NULL, 0));
    assert_true(config_containers_selected(cc, "db", k, v, 1));
    assert_false(config_containers_selected(cc, "db", k, v, 2));
    assert_false(config_containers_selected(cc, "web-migrate", NULL, NULL, 0));
    const char *v2[] = {"other"};
    assert_false(config_containers_selected(cc, "db", k, v2, 1));
    assert_true(config_containers_equal(cc, cc));

    buf err;
    buf_init(&err, BUF_UNLIMITED);
    /* Defaults: absent section = off; present = on with the global interval. */
    config *d = load_yaml("global: {scrape_interval: 7s}\n", &err);
    assert_non_null(d);
    assert_false(d->containers.enabled);
    assert_false(config_containers_equal(cc, &d->containers));
    config *e = load_yaml("global: {scrape_interval: 7s}\ncontainers: {}\n", &err);
    assert_non_null(e);
    assert_true(e->containers.enabled);
    assert_int_equal(e->containers.interval_ms, 7000);
    assert_true(e->containers.all_labels);
    assert_string_equal(e->containers.cgroup_root, "/sys/fs/cgroup");
    assert_true(config_containers_selected(&e->containers, "x", NULL, NULL, 0));
    config *f = load_yaml("containers:\n  enabled: false\n", &err);
    assert_non_null(f);
    assert_false(f->containers.enabled);
    /* The embedded default turns it on with the engine. */
    config *g = config_default_docker("localhost:9277", "unix:///run/x.sock");
    assert_true(g->containers.enabled);
    assert_string_equal(g->containers.docker_host, "unix:///run/x.sock");
    config *h = config_default_docker("localhost:9277", NULL);
    assert_false(h->containers.enabled);
    config_unref(c);
    config_unref(d);
    config_unref(e);
    config_unref(f);
    config_unref(g);
    config_unref(h);
    buf_cleanup(&err);
}

static void test_defaults(void **state)
{
    (void)state;
    config *c = load_good("defaults");
    assert_int_equal(c->refs, 1);
    assert_string_equal(c->source, DATA_DIR "/defaults.good.yml");
    assert_non_null(strstr(c->yaml, "job_name: a"));
    assert_int_equal(c->global.scrape_interval_ms, 60000);
    assert_int_equal(c->global.scrape_timeout_ms, 10000);
    assert_int_equal(c->global.evaluation_interval_ms, 60000);
    assert_int_equal(c->global.rule_query_offset_ms, 0);
    assert_int_equal(c->global.external_labels->n, 0);
    assert_false(c->global.legacy_name_validation);
    assert_int_equal(c->global.n_scrape_protocols, 0);
    assert_int_equal(c->n_scrape_configs, 1);
    const config_scrape *s = job(c, "a");
    assert_int_equal(s->scrape_interval_ms, 60000);
    assert_int_equal(s->scrape_timeout_ms, 10000);
    assert_string_equal(s->metrics_path, "/metrics");
    assert_string_equal(s->scheme, "http");
    assert_false(s->honor_labels);
    assert_true(s->honor_timestamps);
    assert_false(s->track_timestamps_staleness);
    assert_true(s->enable_compression);
    assert_int_equal(s->n_params, 0);
    assert_int_equal(s->n_scrape_protocols, 4);
    assert_int_equal(s->scrape_protocols[0], CONFIG_PROTO_OPENMETRICS_1_0_0);
    assert_int_equal(s->scrape_protocols[1], CONFIG_PROTO_OPENMETRICS_0_0_1);
    assert_int_equal(s->scrape_protocols[2], CONFIG_PROTO_PROMETHEUS_TEXT_1_0_0);
    assert_int_equal(s->scrape_protocols[3], CONFIG_PROTO_PROMETHEUS_TEXT_0_0_4);
    assert_false(s->has_fallback_protocol);
    assert_false(s->legacy_name_validation);
    assert_string_equal(s->metric_name_escaping_scheme, "allow-utf-8");
    assert_int_equal(s->sample_limit, 0);
    assert_int_equal(s->body_size_limit, 0);
    assert_int_equal(s->n_static_configs, 1);
    assert_int_equal(s->static_configs[0].n_targets, 1);
    assert_string_equal(s->static_configs[0].targets[0], "localhost:9090");
    assert_non_null(s->static_configs[0].labels);
    assert_int_equal(s->static_configs[0].labels->n, 0);
    assert_null(s->static_configs[0].source);
    assert_int_equal(s->n_file_sd_configs, 0);
    assert_int_equal(s->n_relabel_configs, 0);
    assert_true(s->http.follow_redirects);
    assert_true(s->http.enable_http2);
    assert_false(s->http.has_basic_auth);
    assert_false(s->http.has_authorization);
    assert_false(s->http.has_oauth2);
    assert_null(s->http.tls_ca_file);
    assert_false(s->http.tls_insecure_skip_verify);
    assert_null(config_find_job(c, "b"));
    assert_null(config_find_job(c, NULL));
    assert_null(config_find_job(NULL, "a"));
    assert_int_equal(c->n_rule_files, 0);
    assert_int_equal(c->n_alertmanagers, 0);
    assert_int_equal(c->n_remote_write, 0);

    /* Reference counting. */
    assert_ptr_equal(config_ref(c), c);
    assert_int_equal(c->refs, 2);
    config_unref(c);
    assert_int_equal(c->refs, 1);
    config_unref(c);
    config_unref(NULL);
    assert_null(config_ref(NULL));

    const char *const empties[] = {"empty", "empty_sections"};
    for (size_t i = 0; i < 2; i++) {
        c = load_good(empties[i]);
        assert_int_equal(c->global.scrape_interval_ms, 60000);
        assert_int_equal(c->global.scrape_timeout_ms, 10000);
        assert_int_equal(c->global.evaluation_interval_ms, 60000);
        assert_int_equal(c->n_scrape_configs, 0);
        config_unref(c);
    }
}

static void test_inherit(void **state)
{
    (void)state;
    config *c = load_good("inherit");
    const config_global *g = &c->global;
    assert_int_equal(g->scrape_interval_ms, 30000);
    assert_int_equal(g->scrape_timeout_ms, 20000);
    assert_int_equal(g->body_size_limit, 1 << 20);
    assert_int_equal(g->n_scrape_protocols, 2);

    const config_scrape *s = job(c, "inherits");
    assert_int_equal(s->scrape_interval_ms, 30000);
    assert_int_equal(s->scrape_timeout_ms, 20000);
    assert_int_equal(s->body_size_limit, 1 << 20);
    assert_int_equal(s->sample_limit, 100);
    assert_int_equal(s->target_limit, 5);
    assert_int_equal(s->label_limit, 10);
    assert_int_equal(s->label_name_length_limit, 20);
    assert_int_equal(s->label_value_length_limit, 30);
    assert_int_equal(s->keep_dropped_targets, 7);
    assert_int_equal(s->n_scrape_protocols, 2);
    assert_int_equal(s->scrape_protocols[0], CONFIG_PROTO_PROMETHEUS_TEXT_0_0_4);
    assert_int_equal(s->scrape_protocols[1], CONFIG_PROTO_PROMETHEUS_PROTO);

    s = job(c, "short");
    assert_int_equal(s->scrape_interval_ms, 5000);
    assert_int_equal(s->scrape_timeout_ms, 5000);
    assert_int_equal(s->sample_limit, 50);
    assert_int_equal(s->body_size_limit, 512 << 10);
    assert_int_equal(s->n_scrape_protocols, 1);
    assert_int_equal(s->scrape_protocols[0], CONFIG_PROTO_OPENMETRICS_1_0_0);
    assert_true(s->has_fallback_protocol);
    assert_int_equal(s->fallback_scrape_protocol, CONFIG_PROTO_PROMETHEUS_TEXT_1_0_0);

    s = job(c, "native");
    assert_int_equal(s->n_scrape_protocols, 2);
    assert_int_equal(s->scrape_protocols[0], CONFIG_PROTO_PROMETHEUS_TEXT_0_0_4);

    s = job(c, "zero");
    assert_int_equal(s->scrape_interval_ms, 30000);
    assert_int_equal(s->scrape_timeout_ms, 20000);
    assert_int_equal(s->label_limit, 10);
    config_unref(c);

    c = load_good("native");
    assert_int_equal(c->global.scrape_timeout_ms, 5000);
    s = job(c, "proto-first");
    assert_int_equal(s->scrape_timeout_ms, 5000);
    assert_int_equal(s->n_scrape_protocols, 5);
    assert_int_equal(s->scrape_protocols[0], CONFIG_PROTO_PROMETHEUS_PROTO);
    assert_int_equal(s->scrape_protocols[4], CONFIG_PROTO_PROMETHEUS_TEXT_0_0_4);
    s = job(c, "text");
    assert_int_equal(s->n_scrape_protocols, 4);
    assert_int_equal(s->scrape_protocols[0], CONFIG_PROTO_OPENMETRICS_1_0_0);
    config_unref(c);
}

static void test_relabel_actions(void **state)
{
    (void)state;
    config *c = load_good("relabel_actions");
    const config_scrape *s = job(c, "a");
    assert_int_equal(s->n_relabel_configs, 13);
    const config_relabel *r = s->relabel_configs;
    static const enum relabel_action want[] = {
        RELABEL_REPLACE,   RELABEL_KEEP,      RELABEL_DROP,      RELABEL_KEEPEQUAL,
        RELABEL_DROPEQUAL, RELABEL_HASHMOD,   RELABEL_LABELMAP,  RELABEL_LABELDROP,
        RELABEL_LABELKEEP, RELABEL_LOWERCASE, RELABEL_UPPERCASE, RELABEL_REPLACE,
        RELABEL_REPLACE,
    };
    for (size_t i = 0; i < 13; i++) {
        assert_int_equal(r[i].action, want[i]);
        assert_non_null(r[i].regex);
        assert_non_null(r[i].separator);
        assert_non_null(r[i].replacement);
    }
    /* Defaults. */
    assert_int_equal(r[0].n_source_labels, 1);
    assert_string_equal(r[0].source_labels[0], "__address__");
    assert_string_equal(r[0].separator, ";");
    assert_string_equal(regex_pattern(r[0].regex), "(.*)");
    assert_string_equal(r[0].replacement, "$1");
    assert_string_equal(r[0].target_label, "instance");
    assert_int_equal(r[0].modulus, 0);
    /* keep: separator and anchored regex. */
    assert_string_equal(r[1].separator, ",");
    assert_true(regex_match(r[1].regex, "x,y", 3));
    assert_false(regex_match(r[1].regex, "x,yz", 4));
    assert_null(r[1].target_label);
    assert_string_equal(regex_pattern(r[2].regex), "drop.*");
    assert_string_equal(r[3].target_label, "b");
    assert_int_equal(r[5].modulus, 8);
    assert_string_equal(r[5].target_label, "__tmp_hash");
    assert_string_equal(r[6].replacement, "meta_$1");
    assert_int_equal(r[7].n_source_labels, 0);
    assert_null(r[7].target_label);
    assert_string_equal(r[10].target_label, "A");
    assert_string_equal(r[11].target_label, "${1}.x");
    /* `regex:` and `replacement:` null: the empty regex and replacement. */
    assert_string_equal(regex_pattern(r[12].regex), "");
    assert_true(regex_match(r[12].regex, "", 0));
    assert_false(regex_match(r[12].regex, "a", 1));
    assert_string_equal(r[12].replacement, "");
    assert_int_equal(s->n_metric_relabel_configs, 1);
    assert_int_equal(s->metric_relabel_configs[0].action, RELABEL_DROP);
    config_unref(c);

    c = load_good("legacy");
    assert_true(c->global.legacy_name_validation);
    s = job(c, "a");
    assert_true(s->legacy_name_validation);
    assert_string_equal(s->metric_name_escaping_scheme, "underscores");
    assert_string_equal(s->relabel_configs[0].target_label, "${1}_x");
    assert_string_equal(s->relabel_configs[2].replacement, "meta_${1}");
    s = job(c, "utf8-job");
    assert_false(s->legacy_name_validation);
    assert_string_equal(s->metric_name_escaping_scheme, "allow-utf-8");
    assert_string_equal(s->relabel_configs[0].target_label, "host.name");
    config_unref(c);
}

static void test_yaml_features(void **state)
{
    (void)state;
    config *c = load_good("yaml_features");
    const config_scrape *s = job(c, "base");
    assert_true(s->honor_labels);
    assert_int_equal(s->scrape_interval_ms, 30000);
    assert_label(s->static_configs[0].labels, "env", "prod");
    s = job(c, "derived");
    assert_false(s->honor_labels);
    assert_int_equal(s->scrape_interval_ms, 30000); /* merged from *base */
    assert_string_equal(s->static_configs[0].targets[0], "b:2");
    assert_label(s->static_configs[0].labels, "env", "prod");
    assert_label(s->static_configs[0].labels, "team", "core");
    s = job(c, "123");
    assert_int_equal(s->sample_limit, 16);
    assert_int_equal(s->label_limit, 1000);
    assert_int_equal(s->target_limit, 1000);
    assert_label(s->static_configs[0].labels, "bin", "hello");
    assert_label(s->static_configs[0].labels, "empty", NULL); /* empty = absent */
    config_unref(c);
}

static void test_paths(void **state)
{
    (void)state;
    config *c = load_good("paths");
    assert_int_equal(c->n_rule_files, 3);
    assert_string_equal(c->rule_files[0], DATA_DIR "/rules/*.yml");
    assert_string_equal(c->rule_files[1], "/etc/sidewatch/alerts.yml");
    assert_string_equal(c->rule_files[2], "tests/data/shared/x.rules");
    const config_scrape *s = job(c, "a");
    assert_int_equal(s->n_file_sd_configs, 2);
    assert_int_equal(s->file_sd_configs[0].n_files, 2);
    assert_string_equal(s->file_sd_configs[0].files[0], DATA_DIR "/targets/*.json");
    assert_string_equal(s->file_sd_configs[0].files[1], DATA_DIR "/t.yml");
    assert_int_equal(s->file_sd_configs[0].refresh_interval_ms, 30000);
    assert_string_equal(s->file_sd_configs[1].files[0], "/abs/t.yaml");
    assert_int_equal(s->file_sd_configs[1].refresh_interval_ms, CONFIG_DEFAULT_FILE_SD_REFRESH_MS);
    assert_string_equal(s->http.tls_ca_file, DATA_DIR "/certs/ca.pem");
    assert_string_equal(s->http.tls_cert_file, "/abs/c.pem");
    assert_string_equal(s->http.tls_key_file, DATA_DIR "/certs/k.pem");
    assert_true(s->http.has_basic_auth);
    assert_null(s->http.basic_auth_username);
    assert_string_equal(s->http.basic_auth_username_file, DATA_DIR "/secrets/user");
    assert_null(s->http.basic_auth_password.value);
    assert_string_equal(s->http.basic_auth_password.file, DATA_DIR "/secrets/pw");
    assert_false(s->http.has_authorization);
    s = job(c, "b");
    assert_true(s->http.has_authorization);
    assert_string_equal(s->http.authorization_type, "Bearer");
    assert_null(s->http.authorization_credentials.value);
    assert_string_equal(s->http.authorization_credentials.file, DATA_DIR "/secrets/token");
    config_unref(c);

    /* A config loaded from a string named without a directory resolves
     * against "." (Go's filepath.Join(".", p) keeps p as is). */
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    c = load_yaml("rule_files: [a/../b.yml, ./c/*.yml, /x/../y.yml]\n", &err);
    assert_non_null(c);
    assert_string_equal(c->rule_files[0], "b.yml");
    assert_string_equal(c->rule_files[1], "c/*.yml");
    assert_string_equal(c->rule_files[2], "/x/../y.yml"); /* absolute: kept as written */
    config_unref(c);
    config *c2 = NULL;
    const char *y = "rule_files: [r.yml, ../r2.yml]\n";
    assert_int_equal(config_load_string(y, strlen(y), "/etc/sw/../conf/p.yml", &c2, &err), 0);
    assert_string_equal(c2->rule_files[0], "/etc/conf/r.yml");
    assert_string_equal(c2->rule_files[1], "/etc/r2.yml");
    config_unref(c2);
    buf_cleanup(&err);
}

static void test_http(void **state)
{
    (void)state;
    config *c = load_good("http");
    const config_scrape *s = job(c, "authz");
    assert_true(s->http.has_authorization);
    assert_string_equal(s->http.authorization_type, "Token");
    assert_string_equal(s->http.authorization_credentials.value, "s3cret");
    assert_null(s->http.authorization_credentials.file);
    assert_false(s->http.follow_redirects);
    assert_false(s->http.enable_http2);
    assert_string_equal(s->http.proxy_url, "http://proxy:3128");
    assert_non_null(strstr(s->http.tls_ca, "BEGIN CERTIFICATE"));
    assert_null(s->http.tls_ca_file);
    assert_string_equal(s->http.tls_server_name, "example.com");
    assert_true(s->http.tls_insecure_skip_verify);
    assert_string_equal(s->http.tls_min_version, "TLS12");
    s = job(c, "bearer");
    assert_true(s->http.has_authorization);
    assert_string_equal(s->http.authorization_type, "Bearer");
    assert_string_equal(s->http.authorization_credentials.value, "tok");
    s = job(c, "basic");
    assert_true(s->http.has_basic_auth);
    assert_string_equal(s->http.basic_auth_username, "u");
    assert_string_equal(s->http.basic_auth_password.value, "p");
    assert_false(s->http.has_authorization);
    s = job(c, "oauth");
    assert_true(s->http.has_oauth2);
    assert_false(s->http.has_authorization);
    assert_int_equal(s->n_params, 2);
    assert_string_equal(s->params[0].name, "module");
    assert_int_equal(s->params[0].n_values, 1);
    assert_string_equal(s->params[0].values[0], "http_2xx");
    assert_string_equal(s->params[1].name, "target");
    assert_int_equal(s->params[1].n_values, 2);
    s = job(c, "env-proxy");
    assert_null(s->http.proxy_url);
    config_unref(c);
}

static void test_alerting(void **state)
{
    (void)state;
    config *c = load_good("alerting");
    assert_int_equal(c->n_alert_relabel_configs, 1);
    assert_int_equal(c->alert_relabel_configs[0].action, RELABEL_LABELDROP);
    assert_int_equal(c->n_alertmanagers, 2);
    const config_alertmanager *a = &c->alertmanagers[0];
    assert_string_equal(a->scheme, "https");
    assert_string_equal(a->path_prefix, "/am");
    assert_int_equal(a->timeout_ms, 5000);
    assert_string_equal(a->api_version, "v2");
    assert_true(a->http.has_basic_auth);
    assert_int_equal(a->n_static_configs, 1);
    assert_int_equal(a->static_configs[0].n_targets, 2);
    assert_string_equal(a->static_configs[0].targets[1], "am2:9093");
    assert_int_equal(a->n_file_sd_configs, 1);
    assert_string_equal(a->file_sd_configs[0].files[0], DATA_DIR "/am/*.json");
    assert_int_equal(a->n_alert_relabel_configs, 1);
    assert_int_equal(a->alert_relabel_configs[0].action, RELABEL_DROP);
    a = &c->alertmanagers[1];
    assert_string_equal(a->scheme, "http");
    assert_string_equal(a->path_prefix, "");
    assert_int_equal(a->timeout_ms, 10000);
    assert_string_equal(a->api_version, "v2");
    assert_string_equal(a->static_configs[0].targets[0], "http://am3:9093");
    assert_int_equal(a->n_relabel_configs, 1);
    assert_true(a->http.enable_http2);
    config_unref(c);
}

static void test_remote_write(void **state)
{
    (void)state;
    config *c = load_good("remote_write");
    assert_int_equal(c->n_remote_write, 2);
    const config_remote_write *r = &c->remote_write[0];
    assert_string_equal(r->url, "http://remote1/push");
    assert_string_equal(r->name, "one");
    assert_int_equal(r->remote_timeout_ms, 10000);
    assert_int_equal(r->n_headers, 1);
    assert_string_equal(r->headers[0].name, "X-Scope-OrgID");
    assert_string_equal(r->headers[0].value, "tenant1");
    assert_int_equal(r->n_write_relabel_configs, 1);
    assert_int_equal(r->queue_max_shards, 10);
    assert_int_equal(r->queue_min_shards, 1);
    assert_int_equal(r->queue_capacity, 10000);
    assert_int_equal(r->queue_max_samples_per_send, 2000);
    assert_int_equal(r->queue_batch_send_deadline_ms, 5000);
    assert_int_equal(r->queue_min_backoff_ms, 30);
    assert_int_equal(r->queue_max_backoff_ms, 5000);
    assert_true(r->queue_retry_on_http_429);
    assert_int_equal(r->queue_sample_age_limit_ms, 3600000);
    assert_false(r->metadata_send);
    assert_int_equal(r->metadata_send_interval_ms, 60000);
    assert_int_equal(r->metadata_max_samples_per_send, 2000);
    assert_string_equal(r->protobuf_message, "prometheus.WriteRequest");
    assert_true(r->http.follow_redirects);
    assert_false(r->http.enable_http2); /* remote write's own default */
    r = &c->remote_write[1];
    assert_null(r->name);
    assert_int_equal(r->remote_timeout_ms, 30000);
    assert_false(r->queue_retry_on_http_429);
    assert_true(r->metadata_send);
    assert_string_equal(r->protobuf_message, "io.prometheus.write.v2.Request");
    config_unref(c);
}

/* storage.exemplars.max_exemplars (default 100000 in sidewatch; 0 or
 * negative: off) and remote_write send_exemplars (default false). */
static void test_exemplar_settings(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        int64_t max;
    } cases[] = {
        {"global: {}\n", 100000},
        {"storage: {exemplars: {}}\n", 100000},
        {"storage: {exemplars: {max_exemplars: 5}}\n", 5},
        {"storage: {exemplars: {max_exemplars: 0}}\n", 0},
        {"storage: {exemplars: {max_exemplars: -3}}\n", 0},
    };
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf_reset(&err);
        config *c = load_yaml(cases[i].yaml, &err);
        if (!c) fail_msg("%s: %s", cases[i].yaml, buf_cstr(&err));
        assert_int_equal(c->max_exemplars, cases[i].max);
        config_unref(c);
    }
    buf_reset(&err);
    assert_null(load_yaml("storage: {exemplars: {max_exemplars: many}}\n", &err));
    assert_non_null(strstr(buf_cstr(&err), "int64"));
    buf_reset(&err);
    config *c = load_yaml("remote_write:\n  - url: http://a/w\n    send_exemplars: true\n"
                          "  - url: http://b/w\n",
                          &err);
    if (!c) fail_msg("%s", buf_cstr(&err));
    assert_true(c->remote_write[0].send_exemplars);
    assert_false(c->remote_write[1].send_exemplars);
    config_unref(c);
    buf_cleanup(&err);
}

static void test_ignored_sections(void **state)
{
    (void)state;
    config *c = load_good("ignored");
    assert_int_equal(c->global.rule_query_offset_ms, 30000);
    const config_scrape *s = job(c, "a");
    assert_string_equal(s->metric_name_escaping_scheme, "dots");
    assert_true(s->track_timestamps_staleness);
    assert_false(s->enable_compression);
    assert_false(s->honor_timestamps);
    config_unref(c);
}

static void test_env_expansion(void **state)
{
    (void)state;
    unsetenv("SIDEWATCH_TEST_UNSET");
    unsetenv("1");
    setenv("SIDEWATCH_TEST_VAR", "V", 1);
    config *c = load_good("env_expansion");
    const labels *ls = c->global.external_labels;
    assert_label(ls, "plain", "value");
    assert_label(ls, "braces", "V");
    assert_label(ls, "bare", "pre-V-post");
    assert_label(ls, "literal", "$SIDEWATCH_TEST_VAR");
    assert_label(ls, "unset", NULL); /* expands to "": no label */
    assert_label(ls, "dangling", "end$");
    assert_label(ls, "bad", "abc");
    assert_label(ls, "special", "xy");
    config_unref(c);
    unsetenv("SIDEWATCH_TEST_VAR");
    c = load_good("env_expansion");
    assert_label(c->global.external_labels, "braces", NULL);
    assert_label(c->global.external_labels, "bare", "pre--post");
    config_unref(c);
}

static void test_many_errors(void **state)
{
    (void)state;
    /* Independent errors are all reported, sorted by position. */
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    const char *y = "scrape_configs:\n"
                    "  - job_name: a\n"
                    "    scrape_interval: 1x\n"
                    "    relabel_configs:\n"
                    "      - action: hashmod\n"
                    "  - job_name: a\n"
                    "    bogus: 1\n"
                    "global:\n"
                    "  scrape_timeout: 2m\n";
    assert_null(load_yaml(y, &err));
    const char *want[] = {
        "inline.yml:3:22: unknown unit \"x\" in duration \"1x\"\n",
        "inline.yml:5:17: relabel configuration for hashmod requires non-zero modulus\n",
        "inline.yml:6:15: found multiple scrape configs with job name \"a\"\n",
        "inline.yml:7:5: field bogus not found in type config.ScrapeConfig\n",
        "inline.yml:9:19: global scrape timeout greater than scrape interval\n",
    };
    const char *p = buf_cstr(&err);
    for (size_t i = 0; i < 5; i++) {
        const char *q = strstr(p, want[i]);
        if (!q) fail_msg("want %s in order in:\n%s", want[i], buf_cstr(&err));
        p = q + strlen(want[i]);
    }
    assert_int_equal(count_lines(buf_cstr(&err)), 5);

    /* At most CONFIG_MAX_ERRORS are reported. */
    buf y2;
    buf_init(&y2, BUF_UNLIMITED);
    buf_puts(&y2, "scrape_configs:\n");
    for (int i = 0; i < 2 * CONFIG_MAX_ERRORS; i++)
        buf_puts(&y2, "  - job_name: \"\"\n");
    buf_reset(&err);
    assert_null(load_yaml(y2.data, &err));
    assert_int_equal(count_lines(buf_cstr(&err)), CONFIG_MAX_ERRORS);
    assert_non_null(strstr(buf_cstr(&err), "inline.yml:2:15: job_name is empty\n"));
    buf_cleanup(&y2);
    buf_cleanup(&err);
}

static void test_load_file_errors(void **state)
{
    (void)state;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    config *c = (config *)1;
    assert_int_equal(config_load_file(DATA_DIR "/does-not-exist.yml", &c, &err), -ENOENT);
    assert_null(c);
    assert_string_equal(buf_cstr(&err),
                        DATA_DIR "/does-not-exist.yml: No such file or directory\n");
    buf_reset(&err);
    assert_int_equal(config_load_file(DATA_DIR, &c, &err), -EISDIR);
    assert_string_equal(buf_cstr(&err), DATA_DIR ": Is a directory\n");

    /* Larger than CONFIG_MAX_FILE_BYTES: refused without parsing. */
    char path[] = "/tmp/sidewatch-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, CONFIG_MAX_FILE_BYTES + 1), 0);
    close(fd);
    buf_reset(&err);
    assert_int_equal(config_load_file(path, &c, &err), -EFBIG);
    assert_non_null(strstr(buf_cstr(&err), "config file is larger than the limit"));
    unlink(path);
    char *big = calloc(1, CONFIG_MAX_FILE_BYTES + 1);
    memset(big, ' ', CONFIG_MAX_FILE_BYTES + 1);
    buf_reset(&err);
    assert_int_equal(config_load_string(big, CONFIG_MAX_FILE_BYTES + 1, "big.yml", &c, &err),
                     -EINVAL);
    assert_non_null(strstr(buf_cstr(&err), "big.yml: config is larger than the limit"));
    free(big);

    /* YAML syntax errors come with the position. */
    buf_reset(&err);
    assert_null(load_yaml("global:\n  scrape_interval: [1m\n", &err));
    assert_non_null(strstr(buf_cstr(&err), "inline.yml:3:1: while parsing a flow sequence"));
    /* A NULL err buffer is allowed. */
    assert_int_equal(config_load_string("x: 1", 4, NULL, &c, NULL), -EINVAL);
    buf_cleanup(&err);
}

static void test_default_config(void **state)
{
    (void)state;
    config *c = config_default("127.0.0.1:9277");
    assert_non_null(c);
    assert_string_equal(c->source, "<default>");
    assert_non_null(c->yaml);
    assert_int_equal(c->n_scrape_configs, 1);
    const config_scrape *s = job(c, "sidewatch");
    assert_int_equal(s->scrape_interval_ms, 15000);
    assert_int_equal(s->scrape_timeout_ms, 10000);
    assert_string_equal(s->metrics_path, "/metrics");
    assert_int_equal(s->n_static_configs, 1);
    assert_string_equal(s->static_configs[0].targets[0], "127.0.0.1:9277");
    config_unref(c);
    /* Odd characters are quoted, not interpreted as YAML. */
    c = config_default("we\"ird\\host: #1");
    assert_string_equal(job(c, "sidewatch")->static_configs[0].targets[0], "we\"ird\\host: #1");
    config_unref(c);
    /* Not a host:port at all: falls back to the default port. */
    c = config_default("http://x/y");
    assert_string_equal(job(c, "sidewatch")->static_configs[0].targets[0], "localhost:9277");
    config_unref(c);

    /* With a Docker engine: the docker job (its relabeling is tested with
     * the discovery fixtures in test_discovery_docker). */
    c = config_default_docker("127.0.0.1:9277", "unix:///run/x y/docker.sock");
    assert_int_equal(c->n_scrape_configs, 2);
    s = job(c, "docker");
    assert_int_equal(s->n_docker_sd_configs, 1);
    assert_string_equal(s->docker_sd_configs[0].host, "unix:///run/x y/docker.sock");
    assert_int_equal(s->docker_sd_configs[0].refresh_interval_ms, 15000);
    assert_true(s->has_fallback_protocol);
    assert_int_equal(s->fallback_scrape_protocol, CONFIG_PROTO_PROMETHEUS_TEXT_0_0_4);
    assert_int_equal(s->n_relabel_configs, 5);
    assert_int_equal(s->relabel_configs[0].action, RELABEL_KEEP);
    assert_string_equal(s->relabel_configs[0].source_labels[0],
                        "__meta_docker_container_label_prometheus_io_scrape");
    assert_string_equal(s->relabel_configs[1].target_label, "__address__");
    assert_string_equal(s->relabel_configs[2].target_label, "__metrics_path__");
    assert_string_equal(s->relabel_configs[3].target_label, "__scheme__");
    assert_string_equal(s->relabel_configs[4].target_label, "container");
    config_unref(c);
    /* A host that is no URL falls back to no docker job. */
    c = config_default_docker("127.0.0.1:9277", "http://[::1");
    assert_int_equal(c->n_scrape_configs, 1);
    config_unref(c);
    /* config_default adds the job exactly when the default socket exists. */
    struct stat st;
    bool sock = stat(CONFIG_DEFAULT_DOCKER_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode);
    c = config_default("127.0.0.1:9277");
    assert_int_equal(c->n_scrape_configs, sock ? 2 : 1);
    config_unref(c);
}

static void test_docker_sd(void **state)
{
    (void)state;
    config *c = load_good("docker_sd");
    const config_scrape *s = job(c, "docker");
    assert_int_equal(s->n_docker_sd_configs, 3);
    const config_docker_sd *d = &s->docker_sd_configs[0];
    assert_string_equal(d->host, "unix:///var/run/docker.sock");
    assert_int_equal(d->port, 80);
    assert_string_equal(d->host_networking_host, "localhost");
    assert_int_equal(d->refresh_interval_ms, 60000);
    assert_true(d->match_first_network);
    assert_int_equal(d->n_filters, 0);
    d = &s->docker_sd_configs[1];
    assert_string_equal(d->host, "tcp://127.0.0.1:2375");
    assert_int_equal(d->port, 9100);
    assert_string_equal(d->host_networking_host, "127.0.0.1");
    assert_int_equal(d->refresh_interval_ms, 15000);
    assert_false(d->match_first_network);
    assert_int_equal(d->n_filters, 3);
    assert_string_equal(d->filters[0].name, "label");
    assert_int_equal(d->filters[0].n_values, 2);
    assert_string_equal(d->filters[0].values[0], "prometheus.io/scrape=true");
    assert_string_equal(d->filters[0].values[1], "team=a");
    assert_string_equal(d->filters[1].name, "status");
    assert_string_equal(d->filters[2].name, "empty");
    assert_int_equal(d->filters[2].n_values, 0);
    d = &s->docker_sd_configs[2];
    assert_true(d->http.has_basic_auth);
    assert_string_equal(d->http.basic_auth_username, "u");
    assert_string_equal(d->http.basic_auth_password.file, DATA_DIR "/secrets/pw");
    assert_string_equal(d->http.tls_ca_file, DATA_DIR "/certs/ca.pem");
    assert_true(d->http.tls_insecure_skip_verify);
    assert_string_equal(d->http.proxy_url, "http://proxy:3128");
    /* Hosts the Docker client cannot use load, as in Prometheus (the
     * discoverer reports them). */
    s = job(c, "ignored-host");
    assert_int_equal(s->n_docker_sd_configs, 2);
    assert_string_equal(s->docker_sd_configs[1].host, "ssh://user@host");
    assert_int_equal(c->alertmanagers[0].n_docker_sd_configs, 1);
    config_unref(c);
}

static void test_protocol_names(void **state)
{
    (void)state;
    assert_string_equal(config_scrape_protocol_name(CONFIG_PROTO_OPENMETRICS_1_0_0),
                        "OpenMetricsText1.0.0");
    assert_string_equal(config_scrape_protocol_name(CONFIG_PROTO_OPENMETRICS_0_0_1),
                        "OpenMetricsText0.0.1");
    assert_string_equal(config_scrape_protocol_name(CONFIG_PROTO_PROMETHEUS_TEXT_1_0_0),
                        "PrometheusText1.0.0");
    assert_string_equal(config_scrape_protocol_name(CONFIG_PROTO_PROMETHEUS_TEXT_0_0_4),
                        "PrometheusText0.0.4");
    assert_string_equal(config_scrape_protocol_name(CONFIG_PROTO_PROMETHEUS_PROTO),
                        "PrometheusProto");
}

static void test_unsupported_as_warnings(void **state)
{
    (void)state;
    const char *y = "scrape_config_files: [more/*.yml]\n"
                    "scrape_configs:\n"
                    "  - job_name: a\n"
                    "    consul_sd_configs:\n"
                    "      - server: localhost:8500\n"
                    "    static_configs:\n"
                    "      - targets: [x:1]\n";
    buf err, warn;
    buf_init(&err, BUF_UNLIMITED);
    buf_init(&warn, BUF_UNLIMITED);
    config *c = NULL;
    assert_int_equal(config_load_string(y, strlen(y), "w.yml", &c, &err), -EINVAL);
    assert_int_equal(count_lines(buf_cstr(&err)), 2);
    assert_non_null(strstr(buf_cstr(&err), "w.yml:1:1: not supported: scrape_config_files"));
    assert_non_null(strstr(buf_cstr(&err), "w.yml:4:5: not supported: consul_sd_configs"));
    buf_reset(&err);
    config_load_opts o = {.unsupported_as_warnings = true, .warnings = &warn};
    assert_int_equal(config_load_string_opts(y, strlen(y), "w.yml", &o, &c, &err), 0);
    assert_string_equal(buf_cstr(&err), "");
    assert_int_equal(count_lines(buf_cstr(&warn)), 2);
    assert_non_null(strstr(buf_cstr(&warn), "w.yml:4:5: not supported: consul_sd_configs"));
    assert_int_equal(job(c, "a")->n_static_configs, 1);
    config_unref(c);
    /* Shape errors inside unsupported sections stay errors. */
    const char *y2 = "scrape_configs:\n"
                     "  - job_name: a\n"
                     "    consul_sd_configs: [~]\n";
    buf_reset(&warn);
    assert_int_equal(config_load_string_opts(y2, strlen(y2), "w.yml", &o, &c, &err), -EINVAL);
    assert_non_null(strstr(buf_cstr(&err), "empty or null section in consul_sd_configs"));
    buf_cleanup(&err);
    buf_cleanup(&warn);
}

/* ---- conformance: Prometheus's config/testdata ---------------------------------- */

static void test_conformance_bad(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED(CONF_DIR "/EXPECTED_ERRORS.tsv");
    char path[4096];
    char *tsv =
        tu_read_file(tu_shared_path(path, sizeof path, CONF_DIR "/EXPECTED_ERRORS.tsv"), NULL);
    assert_non_null(tsv);
    size_t checked = 0, failed = 0;
    char *save = NULL;
    for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || !*line) continue;
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        const char *file = line, *want = tab + 1;
        char rel[512];
        snprintf(rel, sizeof rel, CONF_DIR "/%s", file);
        tu_shared_path(path, sizeof path, rel);
        buf err;
        buf_init(&err, BUF_UNLIMITED);
        config *c = load_path(path, &err, NULL);
        checked++;
        if (c || !strstr(buf_cstr(&err), want)) {
            print_message("FAIL conformance %s: want error containing %s, got:\n%s", file, want,
                          c ? "(loaded)\n" : buf_cstr(&err));
            failed++;
        }
        config_unref(c);
        buf_cleanup(&err);
    }
    free(tsv);

    /* Every *.bad.yml in the directory is listed. */
    DIR *d = opendir(tu_shared_path(path, sizeof path, CONF_DIR));
    assert_non_null(d);
    size_t files = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        files += has_suffix(e->d_name, ".bad.yml");
    closedir(d);
    print_message("conformance bad configs: %zu checked, %zu failed, %zu files\n", checked, failed,
                  files);
    assert_int_equal(failed, 0);
    assert_int_equal(checked, files);
    assert_int_equal(checked, 20);
}

static void test_conformance_simple_good(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED(CONF_DIR "/global_timeout.good.yml");
    char path[4096];
    buf err;
    buf_init(&err, BUF_UNLIMITED);

    config *c = load_path(tu_shared_path(path, sizeof path, CONF_DIR "/global_timeout.good.yml"),
                          &err, NULL);
    if (!c) fail_msg("global_timeout.good.yml: %s", buf_cstr(&err));
    assert_int_equal(c->global.scrape_interval_ms, 3600000);
    assert_int_equal(c->global.scrape_timeout_ms, 3600000);
    config_unref(c);

    /* external_labels.good.yml with TEST unset and set. */
    tu_shared_path(path, sizeof path, CONF_DIR "/external_labels.good.yml");
    unsetenv("TEST");
    c = load_path(path, &err, NULL);
    if (!c) fail_msg("external_labels.good.yml: %s", buf_cstr(&err));
    const labels *ls = c->global.external_labels;
    assert_label(ls, "bar", "foo");
    assert_label(ls, "baz", "foobar");
    assert_label(ls, "foo", NULL); /* "" in Prometheus; sidewatch label sets drop "" */
    assert_label(ls, "qux", "foo${TEST}");
    assert_label(ls, "xyz", "foo$bar");
    assert_int_equal(ls->n, 4);
    config_unref(c);
    setenv("TEST", "TestValue", 1);
    c = load_path(path, &err, NULL);
    if (!c) fail_msg("external_labels.good.yml: %s", buf_cstr(&err));
    ls = c->global.external_labels;
    assert_label(ls, "bar", "foo");
    assert_label(ls, "baz", "fooTestValuebar");
    assert_label(ls, "foo", "TestValue");
    assert_label(ls, "qux", "foo${TEST}");
    assert_label(ls, "xyz", "foo$bar");
    assert_int_equal(ls->n, 5);
    config_unref(c);
    unsetenv("TEST");

    /* scrape_interval_larger.good.yml uses dns_sd_configs: exactly that
     * error; with unsupported features as warnings it loads. */
    tu_shared_path(path, sizeof path, CONF_DIR "/scrape_interval_larger.good.yml");
    c = load_path(path, &err, NULL);
    assert_null(c);
    buf want;
    buf_init(&want, BUF_UNLIMITED);
    buf_printf(&want,
               "%s:10:5: not supported: dns_sd_configs (sidewatch implements static_configs, "
               "file_sd_configs and docker_sd_configs)\n",
               path);
    assert_string_equal(buf_cstr(&err), buf_cstr(&want));
    buf_reset(&err);
    buf warn;
    buf_init(&warn, BUF_UNLIMITED);
    config_load_opts o = {.unsupported_as_warnings = true, .warnings = &warn};
    c = load_path(path, &err, &o);
    if (!c) fail_msg("scrape_interval_larger.good.yml: %s", buf_cstr(&err));
    assert_string_equal(buf_cstr(&warn), buf_cstr(&want));
    const config_scrape *s = job(c, "prometheus");
    assert_int_equal(s->scrape_interval_ms, 5000);
    assert_int_equal(s->scrape_timeout_ms, 5000); /* min(global 15s, 5s) */
    config_unref(c);
    buf_cleanup(&warn);
    buf_cleanup(&want);
    buf_cleanup(&err);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The "<kind>_sd_configs" names in lines "...: not supported: <key> (...)",
 * sorted and unique. Returns the count (all occurrences) in *occurrences. */
static size_t unsupported_kinds(const char *text, char **kinds, size_t cap, size_t *occurrences)
{
    size_t n = 0;
    *occurrences = 0;
    const char *p = text;
    while ((p = strstr(p, ": not supported: "))) {
        p += strlen(": not supported: ");
        size_t len = strcspn(p, " \n");
        (*occurrences)++;
        bool dup = false;
        for (size_t i = 0; i < n; i++) {
            dup |= strlen(kinds[i]) == len && strncmp(kinds[i], p, len) == 0;
        }
        if (!dup && n < cap) kinds[n++] = strndup(p, len);
    }
    qsort(kinds, n, sizeof *kinds, cmp_str);
    return n;
}

static void test_conformance_conf_good(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED(CONF_DIR "/conf.good.yml");
    char path[4096];
    tu_shared_path(path, sizeof path, CONF_DIR "/conf.good.yml");
    buf err;
    buf_init(&err, BUF_UNLIMITED);

    /* 1. As the daemon loads it: it fails, and only with "not supported"
     * errors for service discovery kinds. */
    config *c = load_path(path, &err, NULL);
    assert_null(c);
    char *e = strdup(buf_cstr(&err));
    size_t lines = count_lines(e), unsupported = 0;
    for (const char *l = e; *l; l = strchr(l, '\n') + 1) {
        const char *nl = strchr(l, '\n');
        const char *m = strstr(l, ": not supported: ");
        if (m && m < nl &&
            strstr(m, "_sd_configs (sidewatch implements static_configs, "
                      "file_sd_configs and docker_sd_configs)") < nl) {
            unsupported++;
        } else {
            print_message("unexpected error: %.*s\n", (int)(nl - l), l);
        }
    }
    assert_int_equal(lines, unsupported);

    char *kinds[64];
    size_t occ;
    size_t nk = unsupported_kinds(e, kinds, 64, &occ);
    static const char *const want_kinds[] = {
        "azure_sd_configs",     "consul_sd_configs",      "digitalocean_sd_configs",
        "dns_sd_configs",       "dockerswarm_sd_configs", "ec2_sd_configs",
        "eureka_sd_configs",    "hetzner_sd_configs",     "http_sd_configs",
        "ionos_sd_configs",     "kubernetes_sd_configs",  "kuma_sd_configs",
        "lightsail_sd_configs", "linode_sd_configs",      "marathon_sd_configs",
        "nerve_sd_configs",     "nomad_sd_configs",       "oci_sd_configs",
        "openstack_sd_configs", "outscale_sd_configs",    "ovhcloud_sd_configs",
        "puppetdb_sd_configs",  "scaleway_sd_configs",    "stackit_sd_configs",
        "triton_sd_configs",    "uyuni_sd_configs",       "vultr_sd_configs",
    };
    size_t nwant = sizeof want_kinds / sizeof want_kinds[0];
    for (size_t i = 0; i < nk; i++)
        print_message("unsupported in conf.good.yml: %s\n", kinds[i]);
    assert_int_equal(nk, nwant);
    for (size_t i = 0; i < nwant; i++)
        assert_string_equal(kinds[i], want_kinds[i]);
    assert_int_equal(occ, 28); /* kubernetes_sd_configs appears twice */

    /* Independently: every *_sd_configs key in the file except
     * file_sd_configs is one of them (read with yamlconf). */
    size_t len = 0;
    char *text = tu_read_file(path, &len);
    yamlconf_doc *doc = NULL;
    assert_int_equal(yamlconf_parse(text, len, path, &doc, NULL), 0);
    const yamlconf_node *sc = yamlconf_map_get(yamlconf_root(doc), "scrape_configs", NULL);
    size_t keys = 0;
    for (size_t i = 0; i < sc->n; i++) {
        const yamlconf_node *m = sc->items[i];
        for (size_t k = 0; k < m->n; k++) {
            const char *key = m->pairs[k].key->str;
            if (!has_suffix(key, "_sd_configs") || strcmp(key, "file_sd_configs") == 0 ||
                strcmp(key, "docker_sd_configs") == 0)
                continue;
            keys++;
            assert_non_null(bsearch(&key, kinds, nk, sizeof *kinds, cmp_str));
        }
    }
    assert_int_equal(keys, occ);
    yamlconf_free(doc);
    free(text);

    /* 2. With unsupported features as warnings, everything else loads:
     * check the values. */
    buf warn;
    buf_init(&warn, BUF_UNLIMITED);
    buf_reset(&err);
    config_load_opts o = {.unsupported_as_warnings = true, .warnings = &warn};
    c = load_path(path, &err, &o);
    if (!c) fail_msg("conf.good.yml with unsupported as warnings: %s", buf_cstr(&err));
    assert_string_equal(buf_cstr(&warn), e); /* the same lines, as warnings */

    const config_global *g = &c->global;
    assert_int_equal(g->scrape_interval_ms, 15000);
    assert_int_equal(g->scrape_timeout_ms, 10000);
    assert_int_equal(g->evaluation_interval_ms, 30000);
    assert_int_equal(g->body_size_limit, 15 << 20);
    assert_int_equal(g->sample_limit, 1500);
    assert_int_equal(g->target_limit, 30);
    assert_int_equal(g->label_limit, 30);
    assert_int_equal(g->label_name_length_limit, 200);
    assert_int_equal(g->label_value_length_limit, 200);
    assert_int_equal(g->external_labels->n, 2);
    assert_label(g->external_labels, "monitor", "codelab");
    assert_label(g->external_labels, "foo", "bar");

    assert_int_equal(c->n_rule_files, 2);
    assert_true(has_suffix(c->rule_files[0], CONF_DIR "/first.rules"));
    assert_true(has_suffix(c->rule_files[1], CONF_DIR "/my/*.rules"));
    struct stat st;
    assert_int_equal(stat(c->rule_files[0], &st), 0); /* resolved to the real file */

    assert_int_equal(c->n_scrape_configs, 34);
    const config_scrape *s = job(c, "prometheus");
    assert_true(s->honor_labels);
    assert_int_equal(s->scrape_interval_ms, 15000);
    assert_int_equal(s->scrape_timeout_ms, 10000);
    assert_string_equal(s->metrics_path, "/metrics");
    assert_string_equal(s->scheme, "http");
    assert_true(s->has_fallback_protocol);
    assert_int_equal(s->fallback_scrape_protocol, CONFIG_PROTO_PROMETHEUS_TEXT_0_0_4);
    assert_int_equal(s->n_scrape_protocols, 4);
    assert_int_equal(s->body_size_limit, 15 << 20);
    assert_int_equal(s->sample_limit, 1500);
    assert_int_equal(s->target_limit, 30);
    assert_int_equal(s->label_limit, 30);
    assert_int_equal(s->label_name_length_limit, 200);
    assert_int_equal(s->label_value_length_limit, 200);
    assert_int_equal(s->n_file_sd_configs, 2);
    assert_int_equal(s->file_sd_configs[0].n_files, 3);
    assert_true(has_suffix(s->file_sd_configs[0].files[0], CONF_DIR "/foo/*.slow.json"));
    assert_true(has_suffix(s->file_sd_configs[0].files[2], CONF_DIR "/single/file.yml"));
    assert_int_equal(s->file_sd_configs[0].refresh_interval_ms, 10 * 60000);
    assert_true(has_suffix(s->file_sd_configs[1].files[0], CONF_DIR "/bar/*.yaml"));
    assert_int_equal(s->file_sd_configs[1].refresh_interval_ms, 5 * 60000);
    assert_int_equal(s->n_static_configs, 1);
    assert_int_equal(s->static_configs[0].n_targets, 2);
    assert_string_equal(s->static_configs[0].targets[0], "localhost:9090");
    assert_string_equal(s->static_configs[0].targets[1], "localhost:9191");
    assert_label(s->static_configs[0].labels, "my", "label");
    assert_label(s->static_configs[0].labels, "your", "label");
    assert_int_equal(s->n_relabel_configs, 6);
    const config_relabel *r = s->relabel_configs;
    assert_int_equal(r[0].n_source_labels, 2);
    assert_string_equal(r[0].source_labels[0], "job");
    assert_string_equal(r[0].source_labels[1], "__meta_dns_name");
    assert_string_equal(regex_pattern(r[0].regex), "(.*)some-[regex]");
    assert_string_equal(r[0].target_label, "job");
    assert_string_equal(r[0].replacement, "foo-${1}");
    assert_int_equal(r[0].action, RELABEL_REPLACE);
    assert_string_equal(r[1].target_label, "cde");
    assert_string_equal(r[2].replacement, "static");
    assert_string_equal(regex_pattern(r[3].regex), "");
    assert_int_equal(r[4].action, RELABEL_KEEPEQUAL);
    assert_int_equal(r[5].action, RELABEL_DROPEQUAL);
    assert_true(s->http.has_authorization);
    assert_string_equal(s->http.authorization_type, "Bearer");
    assert_true(has_suffix(s->http.authorization_credentials.file, CONF_DIR "/valid_token_file"));
    assert_string_equal(s->http.tls_min_version, "TLS10");

    s = job(c, "service-x");
    assert_true(s->http.has_basic_auth);
    assert_string_equal(s->http.basic_auth_username, "admin_name");
    assert_string_equal(s->http.basic_auth_password.value, "multiline\nmysecret\ntest");
    assert_int_equal(s->scrape_interval_ms, 50000);
    assert_int_equal(s->scrape_timeout_ms, 5000);
    assert_int_equal(s->n_scrape_protocols, 1);
    assert_int_equal(s->scrape_protocols[0], CONFIG_PROTO_PROMETHEUS_TEXT_0_0_4);
    assert_int_equal(s->body_size_limit, 10 << 20);
    assert_int_equal(s->sample_limit, 1000);
    assert_int_equal(s->target_limit, 35);
    assert_int_equal(s->label_limit, 35);
    assert_int_equal(s->label_name_length_limit, 210);
    assert_int_equal(s->label_value_length_limit, 210);
    assert_string_equal(s->metrics_path, "/my_path");
    assert_string_equal(s->scheme, "https");
    assert_int_equal(s->n_static_configs, 0); /* only dns_sd_configs */
    assert_int_equal(s->n_relabel_configs, 6);
    r = s->relabel_configs;
    assert_int_equal(r[0].action, RELABEL_DROP);
    assert_string_equal(r[0].source_labels[0], "job");
    assert_int_equal(r[1].action, RELABEL_HASHMOD);
    assert_int_equal(r[1].modulus, 8);
    assert_string_equal(r[1].target_label, "__tmp_hash");
    assert_int_equal(r[2].action, RELABEL_KEEP);
    assert_string_equal(regex_pattern(r[2].regex), "1");
    assert_int_equal(r[3].action, RELABEL_LABELMAP);
    assert_int_equal(r[4].action, RELABEL_LABELDROP);
    assert_int_equal(r[5].action, RELABEL_LABELKEEP);
    assert_int_equal(s->n_metric_relabel_configs, 1);
    assert_int_equal(s->metric_relabel_configs[0].action, RELABEL_DROP);
    assert_string_equal(regex_pattern(s->metric_relabel_configs[0].regex), "expensive_metric.*");

    s = job(c, "service-y");
    assert_string_equal(s->relabel_configs[0].separator, ",");
    assert_string_equal(s->relabel_configs[0].target_label, "${1}");
    assert_string_equal(s->relabel_configs[0].replacement, "${2}");
    s = job(c, "service-z");
    assert_true(has_suffix(s->http.tls_cert_file, CONF_DIR "/valid_cert_file"));
    assert_true(has_suffix(s->http.tls_key_file, CONF_DIR "/valid_key_file"));
    assert_string_equal(s->http.authorization_credentials.value, "mysecret");
    s = job(c, "service-kubernetes-namespaces");
    assert_string_equal(s->http.basic_auth_username, "myusername");
    assert_true(has_suffix(s->http.basic_auth_password.file, CONF_DIR "/valid_password_file"));
    s = job(c, "0123service-xxx");
    assert_string_equal(s->static_configs[0].targets[0], "localhost:9090");
    s = job(c, "badfederation");
    assert_false(s->honor_timestamps);
    assert_string_equal(s->metrics_path, "/federate");
    assert_non_null(config_find_job(c, "測試"));
    /* docker_sd_configs loads, with Prometheus's defaults. */
    s = job(c, "docker");
    assert_int_equal(s->n_docker_sd_configs, 1);
    const config_docker_sd *dk = &s->docker_sd_configs[0];
    assert_string_equal(dk->host, "unix:///var/run/docker.sock");
    assert_int_equal(dk->port, 80);
    assert_int_equal(dk->n_filters, 0);
    assert_string_equal(dk->host_networking_host, "localhost");
    assert_int_equal(dk->refresh_interval_ms, 60000);
    assert_true(dk->match_first_network);
    assert_true(dk->http.follow_redirects);
    assert_true(dk->http.enable_http2);
    s = job(c, "hetzner");
    assert_int_equal(s->relabel_configs[0].action, RELABEL_UPPERCASE);
    /* scrape_native_histograms: true puts the protobuf format first. */
    assert_int_equal(s->n_scrape_protocols, 5);
    assert_int_equal(s->scrape_protocols[0], CONFIG_PROTO_PROMETHEUS_PROTO);

    assert_int_equal(c->n_alertmanagers, 1);
    const config_alertmanager *a = &c->alertmanagers[0];
    assert_string_equal(a->scheme, "https");
    assert_int_equal(a->timeout_ms, 10000);
    assert_string_equal(a->api_version, "v2");
    assert_int_equal(a->n_static_configs, 1);
    assert_int_equal(a->static_configs[0].n_targets, 3);
    assert_string_equal(a->static_configs[0].targets[0], "1.2.3.4:9093");
    assert_string_equal(a->static_configs[0].targets[2], "1.2.3.6:9093");

    assert_int_equal(c->n_remote_write, 2);
    const config_remote_write *rw = &c->remote_write[0];
    assert_string_equal(rw->url, "http://remote1/push");
    assert_string_equal(rw->name, "drop_expensive");
    assert_int_equal(rw->n_write_relabel_configs, 1);
    assert_int_equal(rw->write_relabel_configs[0].action, RELABEL_DROP);
    assert_true(rw->http.has_oauth2);
    rw = &c->remote_write[1];
    assert_string_equal(rw->name, "rw_tls");
    assert_string_equal(rw->protobuf_message, "io.prometheus.write.v2.Request");
    assert_int_equal(rw->n_headers, 1);
    assert_string_equal(rw->headers[0].name, "name");
    assert_string_equal(rw->headers[0].value, "value");
    assert_true(has_suffix(rw->http.tls_cert_file, CONF_DIR "/valid_cert_file"));

    config_unref(c);
    for (size_t i = 0; i < nk; i++)
        free(kinds[i]);
    free(e);
    buf_cleanup(&warn);
    buf_cleanup(&err);
}

/* The native histogram settings: global defaults, per-job overrides, and
 * Prometheus 2.x's scrape_classic_histograms as an alias. */
static void test_native_histogram_settings(void **state)
{
    (void)state;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    config *c = load_yaml("global:\n"
                          "  scrape_native_histograms: true\n"
                          "  always_scrape_classic_histograms: true\n"
                          "scrape_configs:\n"
                          "  - job_name: a\n"
                          "  - job_name: b\n"
                          "    scrape_native_histograms: false\n"
                          "    always_scrape_classic_histograms: false\n"
                          "    convert_classic_histograms_to_nhcb: true\n"
                          "    native_histogram_bucket_limit: 160\n"
                          "    native_histogram_min_bucket_factor: 1.1\n"
                          "  - job_name: old\n"
                          "    scrape_classic_histograms: false\n"
                          "  - job_name: both\n"
                          "    scrape_classic_histograms: false\n"
                          "    always_scrape_classic_histograms: true\n",
                          &err);
    assert_non_null(c);
    const config_scrape *a = job(c, "a"), *b = job(c, "b");
    assert_true(a->scrape_native_histograms);
    assert_true(a->always_scrape_classic_histograms);
    assert_false(a->convert_classic_histograms_to_nhcb);
    assert_int_equal(a->native_histogram_bucket_limit, 0);
    assert_true(a->native_histogram_min_bucket_factor == 0);
    assert_int_equal(a->scrape_protocols[0], CONFIG_PROTO_PROMETHEUS_PROTO);
    assert_false(b->scrape_native_histograms);
    assert_false(b->always_scrape_classic_histograms);
    assert_true(b->convert_classic_histograms_to_nhcb);
    assert_int_equal(b->native_histogram_bucket_limit, 160);
    assert_true(b->native_histogram_min_bucket_factor == 1.1);
    assert_int_not_equal(b->scrape_protocols[0], CONFIG_PROTO_PROMETHEUS_PROTO);
    assert_false(job(c, "old")->always_scrape_classic_histograms);
    assert_true(job(c, "both")->always_scrape_classic_histograms);
    config_unref(c);
    buf_cleanup(&err);
}

/* A password in a URL's userinfo is shown as xxxxx (Prometheus's URL.Redacted());
 * user names, hosts, paths and URLs without a password are kept. */
static void test_redact_url(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"http://user:s3cr3t@host:9090/api/v1/write", "http://user:xxxxx@host:9090/api/v1/write"},
        {"https://u:p@x@host/p?q=a:b@c", "https://u:xxxxx@host/p?q=a:b@c"},
        {"http://user:@host/", "http://user:xxxxx@host/"},
        {"http://user@host/a:b@c", "http://user@host/a:b@c"},
        {"http://host:9090/write", "http://host:9090/write"},
        {"http://host/x?u=a:b@c#f", "http://host/x?u=a:b@c#f"},
        {"not a url:pw@x", "not a url:pw@x"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = config_redact_url(cases[i][0]);
        assert_string_equal(got, cases[i][1]);
        mem_free(got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_native_histogram_settings),
        cmocka_unit_test(test_own_bad_cases),
        cmocka_unit_test(test_own_bad_cases_complete),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_inherit),
        cmocka_unit_test(test_relabel_actions),
        cmocka_unit_test(test_yaml_features),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_http),
        cmocka_unit_test(test_alerting),
        cmocka_unit_test(test_remote_write),
        cmocka_unit_test(test_ignored_sections),
        cmocka_unit_test(test_exemplar_settings),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_many_errors),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_default_config),
        cmocka_unit_test(test_docker_sd),
        cmocka_unit_test(test_protocol_names),
        cmocka_unit_test(test_containers_section),
        cmocka_unit_test(test_webhooks_section),
        cmocka_unit_test(test_unsupported_as_warnings),
        cmocka_unit_test(test_conformance_bad),
        cmocka_unit_test(test_conformance_simple_good),
        cmocka_unit_test(test_conformance_conf_good),
        cmocka_unit_test(test_redact_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
