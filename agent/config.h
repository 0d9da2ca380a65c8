/* config: the validated, immutable configuration (prometheus.yml plus
 * sidewatch's own top-level sections).
 *
 * A config is built from YAML in one go, validated completely, and never
 * changed afterwards; reload builds a new one and swaps the pointer. Objects
 * that outlive a reload hold a reference (config_ref/config_unref).
 *
 * Prometheus's prometheus.yml loads unchanged: keys that Prometheus knows and
 * sidewatch does not use (runtime, tracing, storage.tsdb, remote_read, otlp,
 * ...) are accepted and ignored; service discovery kinds that sidewatch does
 * not implement are errors naming the kind ("not supported:
 * kubernetes_sd_configs"); static, file and docker discovery are
 * implemented. Unknown keys are errors as in Prometheus
 * ("field foo not found in type config.plain"). */
#ifndef SIDEWATCH_CONFIG_H
#define SIDEWATCH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "labels.h"
#include "regex.h"

/* Defaults, as Prometheus. */
#define CONFIG_DEFAULT_SCRAPE_INTERVAL_MS (60 * 1000)
#define CONFIG_DEFAULT_SCRAPE_TIMEOUT_MS (10 * 1000)
#define CONFIG_DEFAULT_EVAL_INTERVAL_MS (60 * 1000)
#define CONFIG_DEFAULT_FILE_SD_REFRESH_MS (5 * 60 * 1000)
#define CONFIG_DEFAULT_DOCKER_SD_REFRESH_MS (60 * 1000)
#define CONFIG_DEFAULT_DOCKER_SD_PORT 80
/* The Docker socket the embedded default config discovers containers on
 * (when it exists). */
#define CONFIG_DEFAULT_DOCKER_SOCKET "/var/run/docker.sock"
/* The largest number of errors one load reports. */
#define CONFIG_MAX_ERRORS 50
/* Config files (and strings) larger than this are refused. */
#define CONFIG_MAX_FILE_BYTES (16 * 1024 * 1024)

enum relabel_action {
    RELABEL_REPLACE,
    RELABEL_KEEP,
    RELABEL_DROP,
    RELABEL_KEEPEQUAL,
    RELABEL_DROPEQUAL,
    RELABEL_HASHMOD,
    RELABEL_LABELMAP,
    RELABEL_LABELDROP,
    RELABEL_LABELKEEP,
    RELABEL_LOWERCASE,
    RELABEL_UPPERCASE,
};

/* One relabel_configs entry, defaults applied (separator ";", regex "(.*)",
 * replacement "$1", action replace). */
typedef struct config_relabel {
    enum relabel_action action;
    char **source_labels;
    size_t n_source_labels;
    char *separator;
    char *target_label; /* NULL when not set */
    regex *regex;       /* never NULL */
    uint64_t modulus;
    char *replacement;
} config_relabel;

typedef struct config_secret {
    char *value; /* inline secret or NULL */
    char *file;  /* *_file variant or NULL */
} config_secret;

/* HTTP client settings shared by scrape configs, alertmanagers and
 * remote_write (Prometheus's common HTTPClientConfig). */
typedef struct config_http_client {
    bool has_basic_auth;
    char *basic_auth_username;
    char *basic_auth_username_file;
    config_secret basic_auth_password;
    bool has_authorization;   /* authorization: or bearer_token(_file) */
    char *authorization_type; /* default "Bearer" */
    config_secret authorization_credentials;
    bool has_oauth2; /* parsed and validated; not used for requests yet */
    char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_server_name;
    bool tls_insecure_skip_verify;
    char *tls_min_version;             /* "TLS10".."TLS13" or NULL */
    char *tls_ca, *tls_cert, *tls_key; /* inline PEM (tls_config ca/cert/key) or NULL */
    char *proxy_url;
    bool follow_redirects; /* default true */
    bool enable_http2;     /* default true */
} config_http_client;

typedef struct config_target_group {
    char **targets; /* host:port */
    size_t n_targets;
    labels *labels; /* group labels; never NULL */
    char *source;   /* "file:index" for file_sd groups, else NULL */
} config_target_group;

typedef struct config_file_sd {
    char **files; /* glob patterns, relative paths resolved against the config's directory */
    size_t n_files;
    int64_t refresh_interval_ms;
} config_file_sd;

typedef struct config_param {
    char *name;
    char **values;
    size_t n_values;
} config_param;

/* One docker_sd_configs entry (Prometheus's moby.DockerSDConfig), defaults
 * applied. `host` is a URL: unix:///path, tcp://host:port, http(s)://...
 * Its syntax is checked as Prometheus does (url.Parse); an unusable scheme
 * is reported by discovery at run time, as Prometheus does. As in
 * Prometheus, `http` (auth, TLS, proxy) applies to http:// and https://
 * hosts only. */
typedef struct config_docker_sd {
    char *host;
    int64_t port;          /* default 80; Go int, not range-checked (as Prometheus) */
    config_param *filters; /* name + values, in config order */
    size_t n_filters;
    char *host_networking_host;  /* default "localhost" */
    int64_t refresh_interval_ms; /* default 60s, > 0 */
    bool match_first_network;    /* default true */
    config_http_client http;
} config_docker_sd;

enum config_scrape_protocol {
    CONFIG_PROTO_OPENMETRICS_1_0_0,
    CONFIG_PROTO_OPENMETRICS_0_0_1,
    CONFIG_PROTO_PROMETHEUS_TEXT_1_0_0,
    CONFIG_PROTO_PROMETHEUS_TEXT_0_0_4,
    CONFIG_PROTO_PROMETHEUS_PROTO,
};

typedef struct config_scrape {
    char *job_name;
    int64_t scrape_interval_ms;
    int64_t scrape_timeout_ms;
    char *metrics_path; /* default "/metrics" */
    char *scheme;       /* "http" or "https" */
    config_param *params;
    size_t n_params;
    bool honor_labels;
    bool honor_timestamps; /* default true */
    bool track_timestamps_staleness;
    bool enable_compression; /* default true */
    enum config_scrape_protocol *scrape_protocols;
    size_t n_scrape_protocols;
    bool has_fallback_protocol;
    enum config_scrape_protocol fallback_scrape_protocol;
    /* Native histograms (own setting, else the global one; all default
     * false/0 as in Prometheus 3.x). */
    bool scrape_native_histograms;
    bool always_scrape_classic_histograms;
    bool convert_classic_histograms_to_nhcb;
    uint64_t native_histogram_bucket_limit;    /* 0 = no limit */
    double native_histogram_min_bucket_factor; /* 0 = none (schema up to 8) */
    /* metric_name_validation_scheme of the job (own or global): legacy
     * names only; relabel configs were validated with it. */
    bool legacy_name_validation;
    /* "allow-utf-8", "underscores", "dots" or "values" (resolved from the
     * job's and the global settings as Prometheus does). */
    char *metric_name_escaping_scheme;

    /* 0 = no limit, as Prometheus */
    uint64_t sample_limit;
    uint64_t target_limit;
    uint64_t label_limit;
    uint64_t label_name_length_limit;
    uint64_t label_value_length_limit;
    int64_t body_size_limit;       /* bytes */
    uint64_t keep_dropped_targets; /* 0 = keep all, as Prometheus */

    config_target_group *static_configs;
    size_t n_static_configs;
    config_file_sd *file_sd_configs;
    size_t n_file_sd_configs;
    config_docker_sd *docker_sd_configs;
    size_t n_docker_sd_configs;

    config_relabel *relabel_configs;
    size_t n_relabel_configs;
    config_relabel *metric_relabel_configs;
    size_t n_metric_relabel_configs;

    config_http_client http;
} config_scrape;

typedef struct config_alertmanager {
    char *scheme;
    char *path_prefix;
    int64_t timeout_ms; /* default 10s */
    char *api_version;  /* "v2" */
    config_target_group *static_configs;
    size_t n_static_configs;
    config_file_sd *file_sd_configs;
    size_t n_file_sd_configs;
    config_docker_sd *docker_sd_configs; /* parsed; Alertmanager discovery is not run yet */
    size_t n_docker_sd_configs;
    config_relabel *relabel_configs;
    size_t n_relabel_configs;
    /* alert_relabel_configs of this Alertmanager only (after the global
     * alerting.alert_relabel_configs). */
    config_relabel *alert_relabel_configs;
    size_t n_alert_relabel_configs;
    config_http_client http;
} config_alertmanager;

typedef struct config_header {
    char *name, *value;
} config_header;

typedef struct config_remote_write {
    char *url;
    char *name;
    int64_t remote_timeout_ms; /* default 30s */
    config_header *headers;
    size_t n_headers;
    config_relabel *write_relabel_configs;
    size_t n_write_relabel_configs;
    config_http_client http;
    /* queue_config, Prometheus's defaults */
    int64_t queue_capacity;               /* 10000 */
    int64_t queue_min_shards;             /* 1 */
    int64_t queue_max_shards;             /* 50 */
    int64_t queue_max_samples_per_send;   /* 2000 */
    int64_t queue_batch_send_deadline_ms; /* 5s */
    int64_t queue_min_backoff_ms;         /* 30ms */
    int64_t queue_max_backoff_ms;         /* 5s */
    bool queue_retry_on_http_429;         /* false (Prometheus's default) */
    int64_t queue_sample_age_limit_ms;    /* 0 = no limit */
    /* metadata_config */
    bool metadata_send;                    /* true */
    int64_t metadata_send_interval_ms;     /* 1m */
    int64_t metadata_max_samples_per_send; /* 2000 */
    bool send_exemplars;                   /* false (Prometheus's default) */
    /* "prometheus.WriteRequest" (remote write 1.0, default) or
     * "io.prometheus.write.v2.Request" */
    char *protobuf_message;
} config_remote_write;

typedef struct config_global {
    int64_t scrape_interval_ms;
    int64_t scrape_timeout_ms;
    int64_t evaluation_interval_ms;
    int64_t rule_query_offset_ms;
    labels *external_labels;     /* never NULL; ${VAR} expanded */
    bool legacy_name_validation; /* metric_name_validation_scheme: legacy */
    /* scrape limits inherited by every scrape config */
    uint64_t sample_limit, target_limit, label_limit;
    uint64_t label_name_length_limit, label_value_length_limit;
    int64_t body_size_limit;
    uint64_t keep_dropped_targets;
    enum config_scrape_protocol *scrape_protocols;
    size_t n_scrape_protocols;
} config_global;

/* One include/exclude rule of the containers section: either a container
 * name regex (anchored, on the name without '/'), or a label: its key and
 * optionally a value regex (anchored; NULL: the key merely exists). */
typedef struct config_container_match {
    regex *name;        /* name rule; NULL for a label rule */
    char *label_key;    /* label rule; NULL for a name rule */
    regex *label_value; /* NULL: any value */
} config_container_match;

/* sidewatch's own top-level `containers:` section (container stats). */
typedef struct config_containers {
    bool enabled;      /* section present and not `enabled: false` */
    char *docker_host; /* never NULL: given, else $DOCKER_HOST, else unix:///var/run/docker.sock */
    int64_t interval_ms; /* default: global scrape_interval */
    char *cgroup_root;   /* default "/sys/fs/cgroup"; "" = never read cgroups (stats API only) */
    bool all_labels;     /* label_keys absent: every engine label becomes container_label_* */
    char **label_keys;   /* exact keys exported when !all_labels (may be empty: none) */
    size_t n_label_keys;
    config_container_match *include; /* none: every container */
    size_t n_include;
    config_container_match *exclude;
    size_t n_exclude;
    /* TLS to a tcp:// or https:// engine: `tls_config:` (ca_file, cert_file,
     * key_file, insecure_skip_verify), or, when docker_host came from
     * $DOCKER_HOST, the docker CLI's DOCKER_TLS_VERIFY and DOCKER_CERT_PATH
     * (ca.pem, cert.pem, key.pem). Only the tls_* fields are used. */
    bool tls;
    config_http_client tls_client;
} config_containers;

/* true when a and b would run the same collector (reload keeps it). */
bool config_containers_equal(const config_containers *a, const config_containers *b);
/* Whether a container with this name and these labels (n pairs, keys[i] =
 * values[i]) passes the include and exclude rules of cc. */
bool config_containers_selected(const config_containers *cc, const char *name,
                                const char *const *keys, const char *const *values, size_t n);

/* Defaults of a webhooks: receiver (Alertmanager's route and webhook
 * defaults). */
#define CONFIG_WEBHOOK_GROUP_WAIT_MS (30 * 1000)
#define CONFIG_WEBHOOK_GROUP_INTERVAL_MS (5 * 60 * 1000)
#define CONFIG_WEBHOOK_REPEAT_INTERVAL_MS (4 * 60 * 60 * 1000)
#define CONFIG_WEBHOOK_TIMEOUT_MS (10 * 1000)

/* One receiver of sidewatch's top-level `webhooks:` section: alerts are
 * grouped and timed as Alertmanager's root route would, and POSTed as
 * Alertmanager's webhook payload (version 4) to url. */
typedef struct config_webhook {
    char *name; /* unique, non-empty */
    char *url;  /* http:// or https:// */
    bool group_by_all; /* group_by: ['...'] */
    char **group_by;   /* label names (when !group_by_all) */
    size_t n_group_by;
    int64_t group_wait_ms;     /* default 30s, >= 0 */
    int64_t group_interval_ms; /* default 5m, > 0 */
    int64_t repeat_interval_ms; /* default 4h, > 0 */
    bool send_resolved;         /* default true */
    uint64_t max_alerts;        /* 0 = all */
    int64_t timeout_ms;         /* default 10s, > 0 */
    int64_t max_age_ms;         /* 0 = the outbox's max age */
    /* bearer_token(_file) -> has_authorization (type "Bearer"), basic_auth
     * {username, password, password_file}, tls_config; the rest unused. */
    config_http_client http;
    config_secret hmac_secret; /* hmac_secret / hmac_secret_file; both NULL: no signature */
} config_webhook;

typedef struct config {
    int refs;     /* atomic */
    char *source; /* file name, or "<default>" for the embedded config */
    char *yaml;   /* the original text (for /api/v1/status/config) */
    config_global global;
    char **rule_files; /* patterns, relative ones resolved against the config's directory */
    size_t n_rule_files;
    config_scrape *scrape_configs;
    size_t n_scrape_configs;
    config_relabel *alert_relabel_configs;
    size_t n_alert_relabel_configs;
    config_alertmanager *alertmanagers;
    size_t n_alertmanagers;
    config_remote_write *remote_write;
    size_t n_remote_write;
    config_containers containers;
    config_webhook *webhooks; /* sidewatch's `webhooks:` receivers, in config order */
    size_t n_webhooks;
    /* storage.exemplars.max_exemplars: CONFIG_DEFAULT_MAX_EXEMPLARS when
     * absent (exemplar storage is on by default in sidewatch); 0 (or a
     * negative value) = off. */
    int64_t max_exemplars;
} config;

#define CONFIG_DEFAULT_MAX_EXEMPLARS 100000

/* Parses and validates YAML text. `source` names the file in messages
 * ("<file>:<line>:<col>: <message>"); relative paths in the config are
 * resolved against its directory. On success returns 0 and *out (refcount 1,
 * caller unrefs). On failure returns -EINVAL, *out is NULL, and every error
 * found (at most CONFIG_MAX_ERRORS) is appended to err, one per line. */
int config_load_string(const char *yaml, size_t len, const char *source, config **out, buf *err);
/* Options for config_load_string_opts. */
typedef struct config_load_opts {
    /* Report the features sidewatch does not implement (service discovery
     * kinds other than static_configs, file_sd_configs and
     * docker_sd_configs, and scrape_config_files) as warnings instead of errors: their sections
     * are validated for shape and otherwise skipped, and each warning line
     * ("<file>:<line>:<col>: not supported: ...") goes to `warnings` (may
     * be NULL). Meant for `check config` style tooling and tests; the
     * daemon loads with the default (errors). */
    bool unsupported_as_warnings;
    buf *warnings;
} config_load_opts;

/* config_load_string with options (opts may be NULL: the defaults). */
int config_load_string_opts(const char *yaml, size_t len, const char *source,
                            const config_load_opts *opts, config **out, buf *err);
/* Reads and loads a file; a read failure is reported as "<file>: <errno text>".
 * Files over CONFIG_MAX_FILE_BYTES are refused (-EFBIG). Returns 0, -EINVAL
 * for an invalid config, or the negative errno of the failed read. */
int config_load_file(const char *path, config **out, buf *err);
/* The embedded default config: scrape sidewatch's own /metrics at
 * `self_address` (host:port) every 15s and, when CONFIG_DEFAULT_DOCKER_SOCKET
 * exists, the containers of that engine labelled prometheus.io/scrape=true
 * (job "docker", see config_default_docker). Never fails. */
config *config_default(const char *self_address);
/* config_default with the Docker engine given: `docker_host` (a
 * docker_sd_configs host such as "unix:///var/run/docker.sock", or NULL for
 * no docker job). The docker job keeps containers labelled
 * prometheus.io/scrape=true and honours prometheus.io/port,
 * prometheus.io/path and prometheus.io/scheme. Never fails. */
config *config_default_docker(const char *self_address, const char *docker_host);

config *config_ref(config *c);
/* Drops a reference; frees at zero. NULL is a no-op. */
void config_unref(config *c);

/* Looks up a scrape config by job name; NULL if absent. Borrowed. */
const config_scrape *config_find_job(const config *c, const char *job_name);

/* The value of a secret: its inline value, or the content of its file with
 * surrounding whitespace trimmed (as Prometheus reads credentials files).
 * Returns a copy the caller frees (and should wipe), or NULL when neither
 * is set or the file cannot be read (logged without the secret). */
char *config_read_secret(const config_secret *s);

/* url for display (logs, metric labels, API pages): a password in its
 * userinfo ("scheme://user:password@host/...") is replaced by "xxxxx", as
 * Prometheus's config.URL.Redacted() does; anything else is kept as is.
 * Returns a new string the caller frees (never NULL; aborts on OOM). */
char *config_redact_url(const char *url);

/* Names of the scrape protocols as written in YAML ("OpenMetricsText1.0.0"). */
const char *config_scrape_protocol_name(enum config_scrape_protocol p);

#endif
