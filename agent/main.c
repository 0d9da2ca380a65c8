/* sidewatch: flags, subcommands, wiring and signals. main.c owns every
 * long-lived object; no other module holds mutable globals. */
#include <errno.h>
#include <stddef.h>
#include <glob.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "backfill.h"
#include "buf.h"
#include "config.h"
#include "containers.h"
#include "expfmt.h"
#include "httpc.h"
#include "log.h"
#include "mem.h"
#include "notify.h"
#include "process.h"
#include "regex.h"
#include "promql/promqltest.h"
#include "registry.h"
#include "remote.h"
#include "rulefmt.h"
#include "rules.h"
#include "rulestest.h"
#include "rwrecv.h"
#include "scrape.h"
#include "store.h"
#include "webconfig.h"
#include "strutil.h"

#define DEFAULT_LISTEN "0.0.0.0:9277"
#define DEFAULT_STORAGE "data/"
#define DEFAULT_RETENTION "15d"
#define DEFAULT_LOOKBACK "5m"
#define DEFAULT_QUERY_TIMEOUT "2m"
#define DEFAULT_QUERY_MAX_SAMPLES "50000000"
#define DEFAULT_QUERY_MAX_CONCURRENCY "20"
/* --query.max-regex-bytes: regex.h's REGEX_MAX_PATTERN (64 KiB). */
#define DEFAULT_QUERY_MAX_REGEX_BYTES "65536"
/* --scrape.max-body-bytes: scrape.h's SCRAPE_DEFAULT_MAX_BODY_BYTES (256 MiB). */
#define DEFAULT_SCRAPE_MAX_BODY_BYTES "268435456"
/* --rules.max-rules-per-group (0 = no limit). */
#define DEFAULT_RULES_MAX_RULES_PER_GROUP "10000"
#define STR_(x) #x
#define STR(x) STR_(x)
#define DEFAULT_WEB_MAX_CONNECTIONS STR(API_MAX_CONNECTIONS)
/* Cap on --enable-feature values kept (each may list several). */
#define MAX_FEATURE_FLAGS 64
/* How often retention runs. */
#define RETENTION_EVERY_MS (60 * 1000)

typedef struct flags {
    const char *config_file;
    const char *storage_path;
    const char *retention;
    const char *retention_size;
    const char *listen;
    const char *log_level;
    bool enable_lifecycle;
    bool enable_remote_write_receiver;
    const char *query_timeout;
    const char *query_max_samples;
    const char *query_lookback;
    const char *query_max_concurrency;
    const char *query_max_regex_bytes;
    const char *scrape_max_body_bytes;
    const char *rules_max_rules_per_group;
    const char *external_url;
    const char *resend_delay;
    const char *notification_max_age;
    const char *remote_max_lag;
    const char *notification_queue_capacity;
    const char *web_config_file;
    const char *web_max_connections;
    const char *web_read_timeout;
    const char *web_max_request_bytes;
    bool web_healthy_unauthenticated;
    const char *features[MAX_FEATURE_FLAGS]; /* --enable-feature values, in order */
    size_t n_features;
} flags;

/* What the flags select for queries. */
typedef struct query_settings {
    promql_engine_options engine;
    promql_parse_options parse; /* for rules and the API alike */
    int max_concurrency;
    size_t max_regex_bytes; /* API queries only (--query.max-regex-bytes) */
} query_settings;

/* Everything the running daemon owns. */
typedef struct daemon_state {
    flags f;
    pthread_mutex_t cfg_mu; /* guards cfg; also serialises reloads */
    config *cfg;
    store *st;
    registry *reg;
    scrape_manager *scrape;
    rules_manager *rules;
    notify *notifier;
    remote *rw; /* remote write queues */
    char *external_url; /* --web.external-url, without a trailing '/' */
    pthread_mutex_t coll_mu; /* guards coll (swapped by reloads, read by /metrics) */
    containers *coll;        /* the container stats collector, NULL when off */
    api *web;
    registry_metric *m_reload_success, *m_reload_ts;
    registry_metric *m_groups_refused; /* sidewatch_rule_groups_refused_total */
    size_t max_rules_per_group;        /* --rules.max-rules-per-group */
    pthread_t main_thread;
    int64_t start_ms;
    bool last_reload_ok;     /* under cfg_mu */
    int64_t last_reload_ms;  /* of the last successful load, under cfg_mu */
    char retention_text[96]; /* for runtimeinfo */
    char features_text[1024]; /* --enable-feature values joined, for status/flags */
} daemon_state;

static void usage(FILE *out)
{
    fputs("usage: sidewatch [<flags>]\n"
          "       sidewatch check config FILE...\n"
          "       sidewatch check rules [--lint=duplicate-rules|none] [--lint-fatal]\n"
          "                             [--ignore-unknown-fields] FILE...\n"
          "       sidewatch check store DIR\n"
          "       sidewatch check web-config FILE...\n"
          "       sidewatch import openmetrics FILE [--storage.path=DIR]\n"
          "       sidewatch dump DIR [--match=SELECTOR] [--min-time=MS] [--max-time=MS]\n"
          "       sidewatch healthcheck [URL]\n"
          "       sidewatch promql test FILE...\n"
          "       sidewatch test rules [--run REGEX]... [--ignore-unknown-fields] [--debug]\n"
          "                            [--enable-feature=F,...] TESTFILE...\n"
          "\n"
          "A Prometheus-compatible monitoring and alerting sidecar.\n"
          "\n"
          "Flags:\n"
          "  --config.file=FILE            Prometheus configuration file (default: embedded\n"
          "                                config that scrapes sidewatch itself)\n"
          "  --storage.path=DIR            where the database lives (default: " DEFAULT_STORAGE ")\n"
          "  --storage.retention.time=DUR  how long to keep samples (default: " DEFAULT_RETENTION ")\n"
          "  --storage.retention.size=SIZE most bytes of samples to keep, oldest first out\n"
          "                                (512MB, 10GB; default: no limit)\n"
          "  --web.listen-address=ADDR     address to serve HTTP on (default: " DEFAULT_LISTEN ")\n"
          "  --web.config.file=FILE        TLS and basic auth (Prometheus's web config format);\n"
          "                                users and headers re-read on reload, TLS at start\n"
          "  --web.healthy-unauthenticated /-/healthy and /-/ready answer without basic auth\n"
          "  --web.max-connections=N       most HTTP connections at once (default: " DEFAULT_WEB_MAX_CONNECTIONS ";\n"
          "                                an idle one costs a few KB, so thousands of idle or\n"
          "                                slow clients leave room for queries; Prometheus: 512)\n"
          "  --web.read-timeout=DUR        an idle connection is closed after this (default: 5m)\n"
          "  --web.max-request-bytes=N     largest request body outside remote write (default:\n"
          "                                10485760); larger ones get 413\n"
          "  --web.enable-lifecycle        allow POST /-/reload and /-/quit\n"
          "  --web.enable-remote-write-receiver  accept remote write 1.0 on POST /api/v1/write\n"
          "  --web.external-url=URL        the URL sidewatch is reached at (alert generator URLs,\n"
          "                                webhook externalURL; default: http://<hostname>:<port>)\n"
          "  --rules.alert.resend-delay=DUR  least time between resends of an alert (default: 1m)\n"
          "  --storage.remote.max-lag=DUR  write-ahead rows a remote_write queue has not sent after\n"
          "                                this long are released anyway and counted as dropped\n"
          "                                (default: 6h)\n"
          "  --notification.max-age=DUR    undelivered notifications older than this are dropped\n"
          "                                (default: 24h)\n"
          "  --alertmanager.notification-queue-capacity=N  most undelivered notifications kept per\n"
          "                                Alertmanager or webhook; the oldest go first (default: 10000)\n"
          "  --log.level=LEVEL             debug, info, warn or error (default: info)\n"
          "  --query.timeout=DUR           longest a query may run (default: " DEFAULT_QUERY_TIMEOUT ")\n"
          "  --query.max-samples=N         most samples one query may hold in memory\n"
          "                                (default: " DEFAULT_QUERY_MAX_SAMPLES ")\n"
          "  --query.lookback-delta=DUR    how far back an instant selector looks for a sample\n"
          "                                (default: " DEFAULT_LOOKBACK ")\n"
          "  --query.max-concurrency=N     queries evaluated at once; more wait (default: " DEFAULT_QUERY_MAX_CONCURRENCY ")\n"
          "  --query.max-regex-bytes=N     longest regex (=~, !~, label_replace, match[]) an API\n"
          "                                query may carry (1 to 65536; default: " DEFAULT_QUERY_MAX_REGEX_BYTES ")\n"
          "  --scrape.max-body-bytes=N     largest scrape body (decompressed) whatever\n"
          "                                body_size_limit says (default: " DEFAULT_SCRAPE_MAX_BODY_BYTES ")\n"
          "  --rules.max-rules-per-group=N a rule file with a larger group is refused (0: no\n"
          "                                limit; default: " DEFAULT_RULES_MAX_RULES_PER_GROUP ")\n"
          "  --enable-feature=NAME,...     Prometheus feature flags: promql-experimental-functions,\n"
          "                                promql-extended-range-selectors,\n"
          "                                promql-binop-fill-modifiers, promql-delayed-name-removal\n"
          "                                (others are logged and ignored)\n"
          "  --version                     print the version and exit\n"
          "  -h, --help                    show this help\n",
          out);
}

/* kingpin-style flags: --name=value or --name value. Returns 0, 1 when the
 * process should exit 0 (help/version), or -1 on error. */
static int parse_flags(int argc, char **argv, flags *f)
{
    static const struct {
        const char *name;
        size_t off;
    } opts[] = {
        {"config.file", offsetof(flags, config_file)},
        {"storage.path", offsetof(flags, storage_path)},
        {"storage.tsdb.path", offsetof(flags, storage_path)},
        {"storage.retention.time", offsetof(flags, retention)},
        {"storage.tsdb.retention.time", offsetof(flags, retention)},
        {"storage.retention.size", offsetof(flags, retention_size)},
        {"storage.tsdb.retention.size", offsetof(flags, retention_size)},
        {"web.listen-address", offsetof(flags, listen)},
        {"log.level", offsetof(flags, log_level)},
        {"query.timeout", offsetof(flags, query_timeout)},
        {"query.max-samples", offsetof(flags, query_max_samples)},
        {"query.lookback-delta", offsetof(flags, query_lookback)},
        {"query.max-concurrency", offsetof(flags, query_max_concurrency)},
        {"query.max-regex-bytes", offsetof(flags, query_max_regex_bytes)},
        {"scrape.max-body-bytes", offsetof(flags, scrape_max_body_bytes)},
        {"rules.max-rules-per-group", offsetof(flags, rules_max_rules_per_group)},
        {"web.external-url", offsetof(flags, external_url)},
        {"rules.alert.resend-delay", offsetof(flags, resend_delay)},
        {"notification.max-age", offsetof(flags, notification_max_age)},
        {"storage.remote.max-lag", offsetof(flags, remote_max_lag)},
        {"alertmanager.notification-queue-capacity", offsetof(flags, notification_queue_capacity)},
        {"web.config.file", offsetof(flags, web_config_file)},
        {"web.max-connections", offsetof(flags, web_max_connections)},
        {"web.read-timeout", offsetof(flags, web_read_timeout)},
        {"web.max-request-bytes", offsetof(flags, web_max_request_bytes)},
        {"enable-feature", 0},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(a, "--version") == 0) {
            printf("sidewatch, version %s\n", SIDEWATCH_VERSION);
            return 1;
        }
        if (strcmp(a, "--web.enable-lifecycle") == 0) {
            f->enable_lifecycle = true;
            continue;
        }
        if (strcmp(a, "--web.healthy-unauthenticated") == 0) {
            f->web_healthy_unauthenticated = true;
            continue;
        }
        if (strcmp(a, "--web.enable-remote-write-receiver") == 0) {
            f->enable_remote_write_receiver = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "sidewatch: error: unexpected argument '%s', try --help\n", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        bool found = false;
        for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
            if (strlen(opts[k].name) != nlen || strncmp(opts[k].name, name, nlen) != 0) continue;
            const char *v = eq ? eq + 1 : NULL;
            if (!v) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "sidewatch: error: expected argument for flag '--%s'\n",
                            opts[k].name);
                    return -1;
                }
                v = argv[++i];
            }
            found = true;
            if (strcmp(opts[k].name, "enable-feature") == 0) {
                /* Repeatable, as kingpin's Strings(). */
                if (f->n_features == MAX_FEATURE_FLAGS) {
                    fprintf(stderr, "sidewatch: error: too many --enable-feature flags\n");
                    return -1;
                }
                f->features[f->n_features++] = v;
                break;
            }
            *(const char **)((char *)f + opts[k].off) = v;
            break;
        }
        if (!found) {
            fprintf(stderr, "sidewatch: error: unknown long flag '--%.*s', try --help\n", (int)nlen,
                    name);
            return -1;
        }
    }
    return 0;
}

/* "host:port" that reaches our own listener, for the default config. */
static void self_address(const char *listen, char *out, size_t n)
{
    const char *colon = strrchr(listen, ':');
    const char *port = colon ? colon + 1 : "9277";
    size_t hlen = colon ? (size_t)(colon - listen) : 0;
    if (hlen == 0 || (hlen == 7 && strncmp(listen, "0.0.0.0", 7) == 0) ||
        (hlen == 4 && strncmp(listen, "[::]", 4) == 0))
        snprintf(out, n, "localhost:%s", port);
    else
        snprintf(out, n, "%.*s:%s", (int)hlen, listen, port);
}

static int load_config(daemon_state *d, config **out, buf *err)
{
    if (!d->f.config_file) {
        char self[256];
        self_address(d->f.listen, self, sizeof self);
        *out = config_default(self);
        return 0;
    }
    return config_load_file(d->f.config_file, out, err);
}

/* ---- check web-config ----------------------------------------------------- */

/* As promtool check web-config: "FILE SUCCESS" or "FILE FAILED: reason"
 * on stderr, exit 1 if any failed. */
static int check_web_config(int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "sidewatch: error: check web-config needs at least one FILE\n");
        return 2;
    }
    int failed = 0;
    for (int i = 0; i < argc; i++) {
        buf err;
        buf_init(&err, BUF_UNLIMITED);
        webconfig *wc = NULL;
        if (webconfig_load_file(argv[i], &wc, &err) < 0) {
            fprintf(stderr, "%s FAILED: %s", argv[i], buf_cstr(&err));
            failed = 1;
        } else {
            fprintf(stderr, "%s SUCCESS\n", argv[i]);
        }
        webconfig_free(wc);
        buf_cleanup(&err);
    }
    return failed;
}

/* ---- check config ------------------------------------------------------- */

static int check_config(int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "sidewatch: error: check config needs at least one FILE\n");
        return 2;
    }
    int failed = 0;
    for (int i = 0; i < argc; i++) {
        printf("Checking %s\n", argv[i]);
        config *c = NULL;
        buf err;
        buf_init(&err, 1 << 20);
        if (config_load_file(argv[i], &c, &err) < 0) {
            /* One error per line, indented like promtool's FAILED block. */
            printf("  FAILED:\n");
            const char *p = buf_cstr(&err);
            while (*p) {
                const char *nl = strchr(p, '\n');
                int len = nl ? (int)(nl - p) : (int)strlen(p);
                printf("    %.*s\n", len, p);
                p += len + (nl ? 1 : 0);
            }
            failed++;
            buf_cleanup(&err);
            printf("\n");
            continue;
        }
        /* As promtool: count the rule files, then check each one. */
        char **paths = NULL;
        size_t n_files = 0;
        if (rulefmt_glob(c->rule_files, c->n_rule_files, NULL, &paths, &n_files, &err) < 0) {
            printf("  FAILED:\n    %s\n\n", buf_cstr(&err));
            failed++;
        } else {
            printf("  SUCCESS: %zu rule files found\n", n_files);
            printf(" SUCCESS: %s is valid prometheus config file syntax\n\n", argv[i]);
            fflush(stdout);
            if (n_files && rulefmt_check_command((int)n_files, paths) != 0) failed++;
        }
        for (size_t k = 0; k < n_files; k++)
            mem_free(paths[k]);
        mem_free(paths);
        config_unref(c);
        buf_cleanup(&err);
    }
    return failed ? 1 : 0;
}

/* ---- query settings ---------------------------------------------------------------- */

/* Parses the --query.* flags and --enable-feature into *q. Feature names
 * follow Prometheus 3.x: those that change PromQL are applied, the ones
 * Prometheus has but sidewatch does not need are logged and ignored, and
 * unknown ones are logged and ignored, as Prometheus does. Returns 0, or -1
 * after printing the problem. */
static int query_settings_from_flags(const flags *f, query_settings *q, char *features_text,
                                     size_t features_len)
{
    memset(q, 0, sizeof *q);
    buf err;
    buf_init(&err, 4096);
    int64_t ms;
    if (strutil_parse_duration(f->query_timeout, strlen(f->query_timeout), &ms, &err) < 0 ||
        ms <= 0) {
        fprintf(stderr, "sidewatch: error: --query.timeout: %s\n",
                err.len ? buf_cstr(&err) : "must be positive");
        buf_cleanup(&err);
        return -1;
    }
    q->engine.timeout_ms = ms;
    buf_reset(&err);
    if (strutil_parse_duration(f->query_lookback, strlen(f->query_lookback), &ms, &err) < 0 ||
        ms <= 0) {
        fprintf(stderr, "sidewatch: error: --query.lookback-delta: %s\n",
                err.len ? buf_cstr(&err) : "must be positive");
        buf_cleanup(&err);
        return -1;
    }
    q->engine.lookback_delta_ms = ms;
    buf_cleanup(&err);
    char *end;
    errno = 0;
    long long n = strtoll(f->query_max_samples, &end, 10);
    if (errno || *end || end == f->query_max_samples || n <= 0) {
        fprintf(stderr, "sidewatch: error: --query.max-samples must be a positive integer\n");
        return -1;
    }
    q->engine.max_samples = n;
    errno = 0;
    n = strtoll(f->query_max_concurrency, &end, 10);
    if (errno || *end || end == f->query_max_concurrency || n <= 0 || n > 100000) {
        fprintf(stderr, "sidewatch: error: --query.max-concurrency must be a positive integer\n");
        return -1;
    }
    q->max_concurrency = (int)n;
    errno = 0;
    n = strtoll(f->query_max_regex_bytes, &end, 10);
    if (errno || *end || end == f->query_max_regex_bytes || n <= 0 || n > REGEX_MAX_PATTERN) {
        fprintf(stderr, "sidewatch: error: --query.max-regex-bytes must be an integer from 1 to %d\n",
                REGEX_MAX_PATTERN);
        return -1;
    }
    q->max_regex_bytes = (size_t)n;
    /* Duration expressions are always on in Prometheus 3.14. */
    q->parse.duration_expressions = true;
    static const char *const ignored[] = {
        "exemplar-storage", "memory-snapshot-on-shutdown", "extra-scrape-metrics",
        "metadata-wal-records", "promql-per-step-stats", "auto-reload-config",
        "concurrent-rule-eval", "native-histograms", "ooo-native-histograms",
        "created-timestamp-zero-ingestion", "xor2-encoding", "histograms-st-encoding",
        "st-synthesis", "st-storage", "use-start-timestamps", "delayed-compaction", "old-ui",
        "otlp-deltatocumulative", "otlp-native-delta-ingestion", "type-and-unit-labels",
        "use-uncached-io", "fast-startup", "search-api",
    };
    buf joined;
    buf_init(&joined, features_len - 1);
    for (size_t i = 0; i < f->n_features; i++) {
        if (i) buf_putc(&joined, ',');
        buf_puts(&joined, f->features[i]);
        const char *p = f->features[i];
        while (*p) {
            size_t len = strcspn(p, ",");
            char o[128];
            snprintf(o, sizeof o, "%.*s", (int)len, p);
            p += len + (p[len] == ',');
            if (strcmp(o, "promql-experimental-functions") == 0) {
                q->parse.experimental_functions = true;
                log_info("main", "Experimental PromQL functions enabled.");
            } else if (strcmp(o, "promql-extended-range-selectors") == 0) {
                q->parse.extended_range_selectors = true;
                log_info("main", "Experimental PromQL extended range selectors enabled.");
            } else if (strcmp(o, "promql-binop-fill-modifiers") == 0) {
                q->parse.fill_modifiers = true;
                log_info("main", "Experimental PromQL binary operator fill modifiers enabled.");
            } else if (strcmp(o, "promql-delayed-name-removal") == 0) {
                q->engine.delayed_name_removal = true;
                log_info("main", "Experimental PromQL delayed name removal enabled.");
            } else if (strcmp(o, "promql-duration-expr") == 0) {
                log_warn("main",
                         "This option for --enable-feature is now permanently enabled and "
                         "therefore a no-op. option=%s",
                         o);
            } else {
                bool known = false;
                for (size_t k = 0; k < sizeof ignored / sizeof ignored[0]; k++)
                    known = known || strcmp(o, ignored[k]) == 0;
                if (known)
                    log_warn("main", "Feature not implemented by sidewatch, ignored. option=%s", o);
                else if (o[0])
                    log_warn("main", "Unknown option for --enable-feature option=%s", o);
            }
        }
    }
    snprintf(features_text, features_len, "%s", buf_cstr(&joined));
    buf_cleanup(&joined);
    return 0;
}

/* ---- the daemon ------------------------------------------------------------------ */

static config *current_config(void *ctx)
{
    daemon_state *d = ctx;
    pthread_mutex_lock(&d->cfg_mu);
    config *c = config_ref(d->cfg);
    pthread_mutex_unlock(&d->cfg_mu);
    return c;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts the container collector of cfg (if enabled); a failure is logged
 * and leaves it off. */
static void start_containers(daemon_state *d, config *cfg)
{
    if (!cfg->containers.enabled) return;
    containers_options o = {.cfg = cfg, .st = d->st};
    containers *c = NULL;
    buf err;
    buf_init(&err, 4096);
    if (containers_new(&o, &c, &err) < 0)
        log_error("main", "container stats collector not started: %s", buf_cstr(&err));
    buf_cleanup(&err);
    pthread_mutex_lock(&d->coll_mu);
    d->coll = c;
    pthread_mutex_unlock(&d->coll_mu);
}

static int container_metrics(void *ctx, enum textparse_format format, buf *out)
{
    daemon_state *d = ctx;
    pthread_mutex_lock(&d->coll_mu);
    int rc = d->coll ? containers_metrics(d->coll, format, out) : 0;
    pthread_mutex_unlock(&d->coll_mu);
    return rc;
}

/* Loads cfg's rule files into the rule manager. */
static int apply_rules(daemon_state *d, const config *cfg, buf *err)
{
    size_t refused = 0;
    rulefmt_options fo = {.legacy_name_validation = cfg->global.legacy_name_validation,
                          .max_rules_per_group = d->max_rules_per_group,
                          .groups_refused = &refused};
    rules_config rc = {
        .files = cfg->rule_files,
        .n_files = cfg->n_rule_files,
        .fmt = &fo,
        .evaluation_interval_ms = cfg->global.evaluation_interval_ms,
        .query_offset_ms = cfg->global.rule_query_offset_ms,
        .external_labels = cfg->global.external_labels,
        .external_url = d->external_url,
    };
    int r = rules_manager_update(d->rules, &rc, err);
    if (refused && d->m_groups_refused) registry_add(d->m_groups_refused, (double)refused);
    return r;
}

/* The rule engine's alerts to the notifier (same fields). */
static void send_alerts(void *ctx, const char *expr, const rules_sent_alert *alerts, size_t n)
{
    (void)expr;
    daemon_state *d = ctx;
    if (!d->notifier || n == 0) return;
    notify_alert *v = mem_calloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (notify_alert){.labels = alerts[i].labels,
                              .annotations = alerts[i].annotations,
                              .starts_at_ms = alerts[i].starts_at_ms,
                              .ends_at_ms = alerts[i].ends_at_ms,
                              .generator_url = alerts[i].generator_url};
    notify_send(d->notifier, v, n);
    mem_free(v);
}

static void alertmanagers_cb(void *ctx, char ***urls, size_t *n)
{
    daemon_state *d = ctx;
    *urls = NULL;
    *n = 0;
    if (d->notifier) notify_alertmanager_urls(d->notifier, urls, n);
}

static void rules_snapshot_cb(void *ctx, rules_snapshot *out)
{
    daemon_state *d = ctx;
    if (d->rules)
        rules_manager_snapshot(d->rules, out);
    else
        memset(out, 0, sizeof *out);
}

/* POST /api/v1/write (api_options.remote_write): the receiver writes to
 * the store, which the api itself only reads. */
static int remote_write(void *ctx, const void *body, size_t len, buf *err)
{
    daemon_state *d = ctx;
    return rwrecv_append(d->st, body, len, err);
}

/* Re-reads --web.config.file: basic_auth_users and headers take effect for
 * new requests; TLS settings stay as at start. A file that no longer loads
 * is logged and the previous settings stay. */
static void reload_web_config(daemon_state *d)
{
    if (!d->f.web_config_file || !d->web) return;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    webconfig *wc = NULL;
    if (webconfig_load_file(d->f.web_config_file, &wc, &err) < 0)
        log_error("main", "Error reloading web config, keeping the previous one: %s",
                  buf_cstr(&err));
    else
        api_set_webconfig(d->web, wc);
    buf_cleanup(&err);
}

/* Loads the config again; on any error the running config stays. */
static int reload(void *ctx, buf *err)
{
    daemon_state *d = ctx;
    pthread_mutex_lock(&d->cfg_mu);
    log_info("main", "Loading configuration file %s",
             d->f.config_file ? d->f.config_file : "<default>");
    config *next = NULL;
    int rc = load_config(d, &next, err);
    if (rc < 0) goto refused;
    /* Rules first: a rule file with errors fails the reload before anything
     * else changes (the previous rules and config stay). */
    if (d->rules && (rc = apply_rules(d, next, err)) < 0) goto refused;
    /* (A notifier error leaves the new rules in place: they are valid.) */
    if (d->notifier && (rc = notify_apply_config(d->notifier, next, err)) < 0) goto refused;
    /* Remote write: queues whose settings changed restart at their cursor. */
    if (d->rw && (rc = remote_apply(d->rw, next, err)) < 0) goto refused;
    config *old = d->cfg;
    d->cfg = next;
    d->last_reload_ok = true;
    d->last_reload_ms = wall_ms();
    store_set_max_exemplars(d->st, next->max_exemplars);
    scrape_manager_reload(d->scrape, next);
    /* The collector is replaced only when its settings changed (its series
     * go stale and the new one starts over). */
    containers *gone = NULL;
    pthread_mutex_lock(&d->coll_mu);
    bool same = old->containers.enabled
                    ? d->coll != NULL && config_containers_equal(&old->containers, &next->containers)
                    : !next->containers.enabled;
    if (!same) {
        gone = d->coll;
        d->coll = NULL;
    }
    pthread_mutex_unlock(&d->coll_mu);
    if (!same) {
        containers_free(gone);
        start_containers(d, next);
    }
    registry_set(d->m_reload_success, 1);
    registry_set(d->m_reload_ts, (double)wall_ms() / 1000.0);
    pthread_mutex_unlock(&d->cfg_mu);
    config_unref(old);
    log_info("main", "Completed loading of configuration file");
    reload_web_config(d);
    return 0;
refused:
    config_unref(next);
    registry_set(d->m_reload_success, 0);
    d->last_reload_ok = false;
    pthread_mutex_unlock(&d->cfg_mu);
    log_error("main", "Error reloading config: %s", buf_cstr(err));
    return rc;
}

static void runtime_info(void *ctx, apiv1_runtime *out)
{
    daemon_state *d = ctx;
    out->start_time_ms = d->start_ms;
    pthread_mutex_lock(&d->cfg_mu);
    out->reload_config_success = d->last_reload_ok;
    out->last_config_time_ms = d->last_reload_ms;
    pthread_mutex_unlock(&d->cfg_mu);
    snprintf(out->storage_retention, sizeof out->storage_retention, "%.63s", d->retention_text);
    store_stats s;
    store_get_stats(d->st, &s);
    out->corruption_count = (int64_t)s.corrupt_chunks;
}

static void quit(void *ctx)
{
    daemon_state *d = ctx;
    pthread_kill(d->main_thread, SIGTERM);
}

static void collect_store(registry_collect *c, void *ctx)
{
    store *st = ctx;
    store_stats s;
    store_get_stats(st, &s);
    const struct {
        const char *name, *help;
        enum expfmt_type type;
        double value;
    } m[] = {
        {"sidewatch_store_series", "Series in memory (idle ones are evicted; all stay on disk).",
         EXPFMT_GAUGE, (double)s.series},
        {"sidewatch_store_series_evicted_total", "Idle series evicted from memory.",
         EXPFMT_COUNTER, (double)s.series_evicted},
        {"sidewatch_store_series_loaded_total",
         "Series loaded into memory from disk (evicted ones used again, or at start-up).",
         EXPFMT_COUNTER, (double)s.series_loaded},
        {"sidewatch_store_samples_appended_total", "Samples committed to the store.", EXPFMT_COUNTER,
         (double)s.samples_appended},
        {"sidewatch_store_commits_total", "Append batches committed.", EXPFMT_COUNTER,
         (double)s.batches_committed},
        {"sidewatch_store_commit_errors_total", "Append batches that failed to commit.",
         EXPFMT_COUNTER, (double)s.commit_errors},
        {"sidewatch_store_out_of_order_samples_total", "Samples rejected as out of order.",
         EXPFMT_COUNTER, (double)s.out_of_order_samples},
        {"sidewatch_store_duplicate_samples_total", "Exact duplicate samples dropped.",
         EXPFMT_COUNTER, (double)s.duplicate_samples},
        {"sidewatch_store_retention_deleted_samples_total", "Samples deleted by retention.",
         EXPFMT_COUNTER, (double)s.retention_deleted_samples},
        {"sidewatch_store_retention_deleted_chunks_total", "Chunks deleted by retention.",
         EXPFMT_COUNTER, (double)s.retention_deleted_chunks},
        {"sidewatch_store_chunks_written_total", "Closed chunks written to the database.",
         EXPFMT_COUNTER, (double)s.chunks_persisted},
        {"sidewatch_store_corrupt_chunks_total", "Chunks that failed to decode when read.",
         EXPFMT_COUNTER, (double)s.corrupt_chunks},
        {"sidewatch_store_head_chunks", "Open chunks held in memory.", EXPFMT_GAUGE,
         (double)s.head_chunks},
        {"sidewatch_store_head_memory_bytes", "Bytes of chunk data held in memory.", EXPFMT_GAUGE,
         (double)s.head_memory_bytes},
        {"sidewatch_store_write_ahead_rows", "Write-ahead rows still needed (samples not all in chunk rows yet).", EXPFMT_GAUGE,
         (double)s.wal_rows},
        {"sidewatch_store_size_bytes", "Size of the database files on disk.", EXPFMT_GAUGE,
         (double)s.size_bytes},
        {"sidewatch_store_lowest_timestamp_seconds", "Oldest sample timestamp in the store.",
         EXPFMT_GAUGE, (double)s.min_time_ms / 1000.0},
        {"sidewatch_store_highest_timestamp_seconds", "Newest sample timestamp in the store.",
         EXPFMT_GAUGE, (double)s.max_time_ms / 1000.0},
        /* Exemplar storage: Prometheus's own names (dashboards use them). */
        {"prometheus_tsdb_exemplar_exemplars_appended_total", "Total number of appended exemplars.",
         EXPFMT_COUNTER, (double)s.exemplars_appended},
        {"prometheus_tsdb_exemplar_exemplars_in_storage",
         "Number of exemplars currently in circular storage.", EXPFMT_GAUGE,
         (double)s.exemplars_in_storage},
        {"prometheus_tsdb_exemplar_series_with_exemplars_in_storage",
         "Number of series with exemplars currently in circular storage.", EXPFMT_GAUGE,
         (double)s.series_with_exemplars},
        {"prometheus_tsdb_exemplar_out_of_order_exemplars_total",
         "Total number of out of order exemplar ingestion failed attempts.", EXPFMT_COUNTER,
         (double)s.exemplars_out_of_order},
        {"prometheus_tsdb_exemplar_max_exemplars",
         "Total number of exemplars the exemplar storage can store, resizeable.", EXPFMT_GAUGE,
         (double)s.max_exemplars},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        registry_collect_family(c, m[i].name, m[i].help, m[i].type);
        registry_collect_sample(c, NULL, 0, m[i].value);
    }
}

/* Regex matches stopped by PCRE2's limits (regex.h), process-wide. */
static void collect_regex(registry_collect *c, void *ctx)
{
    (void)ctx;
    registry_collect_family(c, "sidewatch_regex_match_limit_hits_total",
                            "Regex matches stopped by the backtracking limits (counted as no "
                            "match): queries, relabeling and templates alike.",
                            EXPFMT_COUNTER);
    registry_collect_sample(c, NULL, 0, (double)regex_limit_hits());
}

static void register_self_metrics(daemon_state *d)
{
    static const char *const bl[] = {"version", NULL};
    const char *bv[] = {SIDEWATCH_VERSION};
    registry_set(registry_child(registry_gauge(d->reg, "sidewatch_build_info",
                                               "A metric with a constant '1' value labeled by the "
                                               "version of sidewatch.",
                                               bl),
                                bv),
                 1);
    d->m_reload_success = registry_child(
        registry_gauge(d->reg, "sidewatch_config_last_reload_successful",
                       "Whether the last configuration reload attempt was successful.", NULL),
        NULL);
    d->m_reload_ts = registry_child(
        registry_gauge(d->reg, "sidewatch_config_last_reload_success_timestamp_seconds",
                       "Timestamp of the last successful configuration reload.", NULL),
        NULL);
    d->m_groups_refused = registry_child(
        registry_counter(d->reg, "sidewatch_rule_groups_refused_total",
                         "Rule groups refused at load or reload because they had more rules than "
                         "--rules.max-rules-per-group (their file is refused).",
                         NULL),
        NULL);
    process_register(d->reg);
    registry_add_collector(d->reg, collect_store, d->st);
    registry_add_collector(d->reg, collect_regex, NULL);
}

static int run_daemon(const flags *f)
{
    daemon_state d;
    memset(&d, 0, sizeof d);
    d.f = *f;
    d.main_thread = pthread_self();
    pthread_mutex_init(&d.cfg_mu, NULL);
    pthread_mutex_init(&d.coll_mu, NULL);
    int exit_code = 1;
    buf err;
    buf_init(&err, 1 << 20);

    int64_t retention_ms, retention_bytes = 0;
    if (strutil_parse_duration(f->retention, strlen(f->retention), &retention_ms, &err) < 0) {
        fprintf(stderr, "sidewatch: error: --storage.retention.time: %s\n", buf_cstr(&err));
        return 1;
    }
    if (f->retention_size && strutil_parse_bytes(f->retention_size, &retention_bytes, &err) < 0) {
        fprintf(stderr, "sidewatch: error: --storage.retention.size: %s\n", buf_cstr(&err));
        return 1;
    }
    query_settings qs;
    if (query_settings_from_flags(f, &qs, d.features_text, sizeof d.features_text) < 0) return 1;
    size_t scrape_max_body;
    {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(f->scrape_max_body_bytes, &end, 10);
        if (errno || *end || end == f->scrape_max_body_bytes || v < 1024 || v > ((size_t)1 << 40)) {
            fprintf(stderr, "sidewatch: error: --scrape.max-body-bytes must be an integer from "
                            "1024 to 1099511627776\n");
            return 1;
        }
        scrape_max_body = (size_t)v;
        errno = 0;
        v = strtoull(f->rules_max_rules_per_group, &end, 10);
        if (errno || *end || end == f->rules_max_rules_per_group || f->rules_max_rules_per_group[0] == '-') {
            fprintf(stderr, "sidewatch: error: --rules.max-rules-per-group must be a non-negative "
                            "integer\n");
            return 1;
        }
        d.max_rules_per_group = (size_t)v;
    }
    d.start_ms = wall_ms();
    /* runtimeinfo's storageRetention: "15d", "15d or 512MiB" */
    {
        char dur[32], bytes[32];
        if (retention_ms > 0) strutil_format_duration(retention_ms, dur);
        if (retention_bytes > 0) strutil_format_bytes(retention_bytes, bytes);
        snprintf(d.retention_text, sizeof d.retention_text, "%s%s%s",
                 retention_ms > 0 ? dur : "", retention_ms > 0 && retention_bytes > 0 ? " or " : "",
                 retention_bytes > 0 ? bytes : "");
    }
    /* Signals are taken synchronously by this thread; block them everywhere
     * before any other thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    log_info("main", "Starting sidewatch version=%s", SIDEWATCH_VERSION);
    if (load_config(&d, &d.cfg, &err) < 0) {
        log_error("main", "Error loading config: %s", buf_cstr(&err));
        fprintf(stderr, "sidewatch: error loading config (--config.file=%s):\n%s\n", f->config_file,
                buf_cstr(&err));
        goto out;
    }
    if (httpc_global_init() < 0) {
        log_error("main", "could not initialise libcurl");
        goto out;
    }
    store_options so = {.path = f->storage_path,
                        .retention_ms = retention_ms,
                        .retention_bytes = retention_bytes,
                        .max_exemplars = d.cfg->max_exemplars};
    if (store_open(&d.st, &so, &err) < 0) {
        log_error("main", "Opening storage failed: %s", buf_cstr(&err));
        goto out;
    }
    d.reg = registry_new();
    register_self_metrics(&d);
    registry_set(d.m_reload_success, 1);
    registry_set(d.m_reload_ts, (double)wall_ms() / 1000.0);
    d.last_reload_ok = true;
    d.last_reload_ms = wall_ms();

    {
        /* Prometheus's computeExternalURL: http://<hostname>:<port> by default. */
        char url[512];
        if (f->external_url && *f->external_url) {
            snprintf(url, sizeof url, "%s", f->external_url);
        } else {
            char host[256] = "localhost";
            gethostname(host, sizeof host - 1);
            host[sizeof host - 1] = '\0';
            const char *colon = strrchr(f->listen, ':');
            snprintf(url, sizeof url, "http://%s:%s", host, colon ? colon + 1 : "9090");
        }
        size_t ul = strlen(url);
        while (ul > 0 && url[ul - 1] == '/') url[--ul] = '\0';
        d.external_url = mem_strdup(url);
    }
    {
        int64_t resend_ms = RULES_DEFAULT_RESEND_DELAY_MS;
        if (f->resend_delay &&
            strutil_parse_duration(f->resend_delay, strlen(f->resend_delay), &resend_ms, &err) < 0) {
            log_error("main", "--rules.alert.resend-delay: %s", buf_cstr(&err));
            goto out;
        }
        int64_t max_age_ms = 24 * 3600 * 1000LL;
        if (f->notification_max_age &&
            strutil_parse_duration(f->notification_max_age, strlen(f->notification_max_age),
                                   &max_age_ms, &err) < 0) {
            log_error("main", "--notification.max-age: %s", buf_cstr(&err));
            goto out;
        }
        int64_t capacity = 10000;
        if (f->notification_queue_capacity) {
            char *end;
            errno = 0;
            long long c = strtoll(f->notification_queue_capacity, &end, 10);
            if (errno || *end || c <= 0) {
                log_error("main", "--alertmanager.notification-queue-capacity: not a positive "
                                  "integer: %s", f->notification_queue_capacity);
                goto out;
            }
            capacity = c;
        }
        notify_options no = {.st = d.st,
                             .reg = d.reg,
                             .external_url = d.external_url,
                             .max_age_ms = max_age_ms,
                             .queue_capacity = capacity};
        if (notify_new(&no, &d.notifier, &err) < 0) {
            log_error("main", "could not start the notifier: %s", buf_cstr(&err));
            goto out;
        }
        if (notify_apply_config(d.notifier, d.cfg, &err) < 0) {
            log_error("main", "Error applying the alerting config: %s", buf_cstr(&err));
            goto out;
        }
        int64_t max_lag_ms = 6 * 3600 * 1000LL;
        if (f->remote_max_lag &&
            (strutil_parse_duration(f->remote_max_lag, strlen(f->remote_max_lag), &max_lag_ms,
                                    &err) < 0 ||
             max_lag_ms <= 0)) {
            log_error("main", "--storage.remote.max-lag: %s",
                      err.len ? buf_cstr(&err) : "must be positive");
            goto out;
        }
        remote_options rwo = {.st = d.st, .reg = d.reg, .max_lag_ms = max_lag_ms};
        if (remote_start(&d.rw, &rwo, d.cfg, &err) < 0) {
            log_error("main", "Error starting remote write: %s", buf_cstr(&err));
            goto out;
        }
        rules_options ro = {
            .notify = send_alerts,
            .notify_ctx = &d,
            .reg = d.reg,
            .engine = qs.engine,
            .parse = qs.parse,
            .resend_delay_ms = resend_ms,
        };
        rules_source_store(d.st, &ro.source);
        rules_appender_store(d.st, &ro.appender);
        rules_persist_store(d.st, &ro.persist);
        if (rules_manager_new(&ro, &d.rules, &err) < 0) {
            log_error("main", "could not create the rule manager: %s", buf_cstr(&err));
            goto out;
        }
        if (apply_rules(&d, d.cfg, &err) < 0) {
            log_error("main", "Error loading rules: %s", buf_cstr(&err));
            fprintf(stderr, "sidewatch: error loading rules:\n%s\n", buf_cstr(&err));
            goto out;
        }
    }
    d.scrape = scrape_manager_new(d.st, d.reg);
    if (!d.scrape) {
        log_error("main", "could not create the scrape manager");
        goto out;
    }
    scrape_manager_set_max_body_bytes(d.scrape, scrape_max_body);
    /* Every flag with its value, for /api/v1/status/flags. */
    const apiv1_flag flag_list[] = {
        {"config.file", f->config_file ? f->config_file : ""},
        {"storage.path", f->storage_path},
        {"storage.retention.time", f->retention},
        {"storage.retention.size", f->retention_size ? f->retention_size : "0B"},
        {"web.listen-address", f->listen},
        {"web.enable-lifecycle", f->enable_lifecycle ? "true" : "false"},
        {"web.enable-remote-write-receiver", f->enable_remote_write_receiver ? "true" : "false"},
        {"web.config.file", f->web_config_file ? f->web_config_file : ""},
        {"web.max-connections",
         f->web_max_connections ? f->web_max_connections : DEFAULT_WEB_MAX_CONNECTIONS},
        {"web.read-timeout", f->web_read_timeout ? f->web_read_timeout : "5m"},
        {"web.max-request-bytes", f->web_max_request_bytes ? f->web_max_request_bytes : "10485760"},
        {"web.healthy-unauthenticated", f->web_healthy_unauthenticated ? "true" : "false"},
        {"log.level", f->log_level},
        {"query.timeout", f->query_timeout},
        {"query.max-samples", f->query_max_samples},
        {"query.lookback-delta", f->query_lookback},
        {"query.max-concurrency", f->query_max_concurrency},
        {"query.max-regex-bytes", f->query_max_regex_bytes},
        {"scrape.max-body-bytes", f->scrape_max_body_bytes},
        {"rules.max-rules-per-group", f->rules_max_rules_per_group},
        {"web.external-url", d.external_url},
        {"rules.alert.resend-delay", f->resend_delay ? f->resend_delay : "1m"},
        {"notification.max-age", f->notification_max_age ? f->notification_max_age : "24h"},
        {"storage.remote.max-lag", f->remote_max_lag ? f->remote_max_lag : "6h"},
        {"alertmanager.notification-queue-capacity",
         f->notification_queue_capacity ? f->notification_queue_capacity : "10000"},
        {"enable-feature", d.features_text},
    };
    api_options ao = {
        .listen_address = f->listen,
        .reg = d.reg,
        .st = d.st,
        .enable_lifecycle = f->enable_lifecycle,
        .lookback_ms = qs.engine.lookback_delta_ms,
        .reload = reload,
        .quit = quit,
        .current_config = current_config,
        .extra_metrics = container_metrics,
        .remote_write = f->enable_remote_write_receiver ? remote_write : NULL,
        .ctx = &d,
        .v1 =
            {
                .scrape = d.scrape,
                .current_config = current_config,
                .runtime_info = runtime_info,
                .ctx = &d,
                .flags = flag_list,
                .n_flags = sizeof flag_list / sizeof flag_list[0],
                .engine = qs.engine,
                .parse = qs.parse,
                .max_concurrency = qs.max_concurrency,
                .reg = d.reg,
                .rules_snapshot = rules_snapshot_cb,
                .alertmanagers = alertmanagers_cb,
            },
    };
    if (f->web_config_file) {
        if (webconfig_load_file(f->web_config_file, &ao.web, &err) < 0) {
            log_error("main", "Error loading web config file %s: %s", f->web_config_file,
                      buf_cstr(&err));
            goto out;
        }
    }
    if (f->web_max_connections) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(f->web_max_connections, &end, 10);
        if (errno || *end || end == f->web_max_connections || v == 0 || v > 1000000) {
            log_error("main", "invalid --web.max-connections %s", f->web_max_connections);
            webconfig_free(ao.web);
            goto out;
        }
        ao.max_connections = (unsigned)v;
    }
    if (f->web_read_timeout) {
        int64_t ms = 0;
        if (strutil_parse_duration(f->web_read_timeout, strlen(f->web_read_timeout), &ms, &err) <
                0 ||
            ms < 1000 || ms > (int64_t)86400 * 1000) {
            log_error("main", "invalid --web.read-timeout %s (1s to 24h)", f->web_read_timeout);
            webconfig_free(ao.web);
            goto out;
        }
        ao.read_timeout_s = (unsigned)(ms / 1000);
    }
    if (f->web_max_request_bytes) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(f->web_max_request_bytes, &end, 10);
        if (errno || *end || end == f->web_max_request_bytes || v < 1024 ||
            v > API_MAX_REMOTE_WRITE_BODY) {
            log_error("main", "invalid --web.max-request-bytes %s (1024 to %zu)",
                      f->web_max_request_bytes, API_MAX_REMOTE_WRITE_BODY);
            webconfig_free(ao.web);
            goto out;
        }
        ao.max_request_bytes = (size_t)v;
    }
    ao.healthy_unauthenticated = f->web_healthy_unauthenticated;
    /* The regex limit is for queries users send; rule files are the
     * operator's and keep only regex.h's cap. */
    ao.v1.parse.max_regex_bytes = qs.max_regex_bytes;
    if (api_start(&d.web, &ao, &err) < 0) {
        log_error("main", "%s", buf_cstr(&err));
        goto out;
    }
    start_containers(&d, d.cfg);
    if (scrape_manager_start(d.scrape, d.cfg) < 0) {
        log_error("main", "could not start scraping");
        goto out;
    }
    if (rules_manager_start(d.rules) < 0) {
        log_error("main", "could not start rule evaluation");
        goto out;
    }
    api_set_ready(d.web, true);
    log_info("main", "Server is ready to receive web requests. address=%s", f->listen);

    int64_t next_maintenance = wall_ms() + 1000;
    for (;;) {
        struct timespec ts = {1, 0};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig == SIGHUP) {
            buf rerr;
            buf_init(&rerr, 1 << 20);
            reload(&d, &rerr);
            buf_cleanup(&rerr);
        } else if (sig == SIGTERM || sig == SIGINT) {
            log_info("main", "Received %s, exiting gracefully...",
                     sig == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
        int64_t now = wall_ms();
        if (now >= next_maintenance) {
            /* Writes closed chunks, truncates the write-ahead table and
             * applies retention; short retentions run more often than once
             * a minute. */
            store_maintain(d.st, now);
            int64_t every = RETENTION_EVERY_MS;
            if (retention_ms > 0 && retention_ms / 4 < every) every = retention_ms / 4;
            next_maintenance = now + (every < 1000 ? 1000 : every);
        }
    }
    exit_code = 0;
out:
    if (d.web) api_set_ready(d.web, false);
    /* Stop producers first, then the server, then the store: every finished
     * scrape and rule evaluation is committed before the database closes. */
    if (d.rules) rules_manager_stop(d.rules);
    if (d.scrape) scrape_manager_stop(d.scrape);
    pthread_mutex_lock(&d.coll_mu);
    containers *coll = d.coll;
    d.coll = NULL;
    pthread_mutex_unlock(&d.coll_mu);
    containers_free(coll);
    api_stop(d.web);
    scrape_manager_free(d.scrape);
    rules_manager_free(d.rules);
    /* After the rules (which send to it), before the store (its outbox). */
    notify_free(d.notifier);
    /* After the producers (their last rows are committed), before the store
     * (the cursors are saved in it). */
    remote_stop(d.rw);
    store_close(d.st);
    mem_free(d.external_url);
    registry_free(d.reg);
    config_unref(d.cfg);
    httpc_global_cleanup();
    buf_cleanup(&err);
    pthread_mutex_destroy(&d.cfg_mu);
    pthread_mutex_destroy(&d.coll_mu);
    if (exit_code == 0) log_info("main", "See you next time!");
    return exit_code;
}

/* sidewatch check store DIR */
static int check_store(int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "sidewatch: error: check store needs exactly one DIR\n");
        return 2;
    }
    printf("Checking %s\n", argv[0]);
    buf report;
    buf_init(&report, 64 << 20);
    int rc = store_check(argv[0], &report);
    fputs(buf_cstr(&report), stdout);
    if (rc == 0)
        printf(" SUCCESS: %s is a sound sidewatch store\n", argv[0]);
    else
        printf(" FAILED: %s\n", rc == -EIO ? "problems found" : strerror(-rc));
    buf_cleanup(&report);
    return rc == 0 ? 0 : 1;
}

/* sidewatch import openmetrics FILE [--storage.path=DIR] */
static int import_openmetrics(int argc, char **argv)
{
    const char *file = NULL, *dir = DEFAULT_STORAGE;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--storage.path=", 15) == 0 ||
            strncmp(argv[i], "--storage.tsdb.path=", 20) == 0) {
            dir = strchr(argv[i], '=') + 1;
        } else if ((strcmp(argv[i], "--storage.path") == 0 ||
                    strcmp(argv[i], "--storage.tsdb.path") == 0) &&
                   i + 1 < argc) {
            dir = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "sidewatch: error: unknown flag '%s' for import openmetrics\n", argv[i]);
            return 2;
        } else if (!file) {
            file = argv[i];
        } else {
            fprintf(stderr, "sidewatch: error: import openmetrics takes one FILE\n");
            return 2;
        }
    }
    if (!file) {
        fprintf(stderr, "sidewatch: error: import openmetrics needs a FILE\n");
        return 2;
    }
    buf err;
    buf_init(&err, 1 << 20);
    store *st = NULL;
    store_options so = {.path = dir};
    if (store_open(&st, &so, &err) < 0) {
        fprintf(stderr, "sidewatch: error: %s\n", buf_cstr(&err));
        buf_cleanup(&err);
        return 1;
    }
    backfill_result res;
    int rc = backfill_openmetrics_file(st, file, &res, &err);
    store_close(st);
    if (rc < 0) {
        fprintf(stderr, "sidewatch: error: import failed, nothing was imported: %s\n",
                buf_cstr(&err));
        buf_cleanup(&err);
        return 1;
    }
    printf("imported %" PRIu64 " samples of %" PRIu64 " series into %s", res.samples, res.series,
           dir);
    if (res.samples) printf(" (timestamps %" PRId64 " to %" PRId64 " ms)", res.min_t, res.max_t);
    if (res.duplicates) printf("; %" PRIu64 " duplicate samples dropped", res.duplicates);
    printf("\n");
    buf_cleanup(&err);
    return 0;
}

/* sidewatch dump DIR [--match=SELECTOR] [--min-time=MS] [--max-time=MS]:
 * every stored sample, one line each, like `promtool tsdb dump`. */
static int dump_store(int argc, char **argv)
{
    const char *dir = NULL, *match = "{__name__=~\".+\"}";
    int64_t mint = INT64_MIN, maxt = INT64_MAX;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--match=", 8) == 0)
            match = argv[i] + 8;
        else if (strncmp(argv[i], "--min-time=", 11) == 0)
            mint = strtoll(argv[i] + 11, NULL, 10);
        else if (strncmp(argv[i], "--max-time=", 11) == 0)
            maxt = strtoll(argv[i] + 11, NULL, 10);
        else if (!dir && argv[i][0] != '-')
            dir = argv[i];
        else {
            fprintf(stderr, "sidewatch: error: unexpected argument '%s' for dump\n", argv[i]);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "sidewatch: error: dump needs a storage DIR\n");
        return 2;
    }
    buf err;
    buf_init(&err, 1 << 20);
    label_matcher *ms = NULL;
    size_t nm = 0;
    if (labels_parse_selector(match, strlen(match), &ms, &nm, &err) < 0) {
        fprintf(stderr, "sidewatch: error: --match: %s\n", buf_cstr(&err));
        buf_cleanup(&err);
        return 2;
    }
    store *st = NULL;
    store_options so = {.path = dir};
    int rc = 1;
    store_reader *r = NULL;
    store_select_result res = {0};
    if (store_open(&st, &so, &err) < 0) {
        fprintf(stderr, "sidewatch: error: %s\n", buf_cstr(&err));
        goto out;
    }
    if (store_reader_open(st, &r) < 0 || store_select(r, ms, nm, mint, maxt, &res) < 0) {
        fprintf(stderr, "sidewatch: error: reading %s failed\n", dir);
        goto out;
    }
    buf line;
    buf_init(&line, BUF_UNLIMITED);
    for (size_t i = 0; i < res.n; i++) {
        store_sample *v;
        size_t n;
        if (store_read_samples(r, res.series[i].ref, mint, maxt, &v, &n) < 0) continue;
        buf_reset(&line);
        labels_format(res.series[i].labels, &line);
        size_t prefix = line.len;
        for (size_t k = 0; k < n; k++) {
            buf_truncate(&line, prefix);
            char num[EXPFMT_FLOAT_MAX];
            expfmt_format_float(v[k].v, num);
            buf_printf(&line, " %s %" PRId64 "\n", num, v[k].t);
            fwrite(line.data, 1, line.len, stdout);
        }
        mem_free(v);
        /* Native histograms in promqltest's {{...}} form (staleness
         * markers as "stale"), after the series' floats. */
        store_hsample *hs;
        if (store_read_histograms(r, res.series[i].ref, mint, maxt, &hs, &n) < 0) continue;
        for (size_t k = 0; k < n; k++) {
            buf_truncate(&line, prefix);
            buf_putc(&line, ' ');
            if (nhist_is_stale(&hs[k].h)) {
                buf_puts(&line, "stale");
            } else {
                promql_fh *fh = promql_fh_from_nhist(&hs[k].h);
                promql_fh_format(fh, &line);
                promql_fh_free(fh);
            }
            buf_printf(&line, " %" PRId64 "\n", hs[k].t);
            fwrite(line.data, 1, line.len, stdout);
        }
        store_hsamples_free(hs, n);
    }
    buf_cleanup(&line);
    rc = 0;
out:
    store_select_result_free(&res);
    store_reader_close(r);
    store_close(st);
    labels_matchers_free(ms, nm);
    buf_cleanup(&err);
    return rc;
}

/* ---- healthcheck --------------------------------------------------------- */

#define HEALTHCHECK_DEFAULT_URL "http://127.0.0.1:9277/-/healthy"
#define HEALTHCHECK_TIMEOUT_MS 5000
#define HEALTHCHECK_CMDLINE_MAX 65536

/* The --web.listen-address PID 1 was started with, when PID 1 is a sidewatch
 * daemon (the case inside the container image, where the healthcheck runs in
 * the daemon's PID namespace). Returns a string the caller frees, or NULL
 * when there is no such PID 1 or it was started without the flag. */
static char *healthcheck_pid1_listen(void)
{
    FILE *f = fopen("/proc/1/cmdline", "rb");
    if (f == NULL) return NULL;
    char *cmd = mem_malloc(HEALTHCHECK_CMDLINE_MAX + 1);
    size_t n = fread(cmd, 1, HEALTHCHECK_CMDLINE_MAX, f);
    fclose(f);
    cmd[n] = '\0';
    char *found = NULL;
    const char *base = strrchr(cmd, '/');
    base = base != NULL ? base + 1 : cmd;
    if (n > 0 && strcmp(base, "sidewatch") == 0) {
        static const char flag[] = "--web.listen-address";
        /* Arguments are NUL-separated; the last occurrence wins, as in parse_flags. */
        for (size_t i = strlen(cmd) + 1; i < n; i += strlen(cmd + i) + 1) {
            const char *a = cmd + i;
            if (strncmp(a, flag, sizeof flag - 1) != 0) continue;
            if (a[sizeof flag - 1] == '=') {
                mem_free(found);
                found = mem_strdup(a + sizeof flag);
            } else if (a[sizeof flag - 1] == '\0' && i + strlen(a) + 1 < n) {
                mem_free(found);
                found = mem_strdup(a + strlen(a) + 1);
            }
        }
    }
    mem_free(cmd);
    return found;
}

/* The /-/healthy URL for a listen address "host:port": a wildcard or empty
 * host becomes loopback. Caller frees. */
static char *healthcheck_url_for(const char *listen)
{
    const char *colon = strrchr(listen, ':');
    if (colon == NULL) return mem_strdup(HEALTHCHECK_DEFAULT_URL);
    size_t hlen = (size_t)(colon - listen);
    char host[256];
    if (hlen >= sizeof host) return mem_strdup(HEALTHCHECK_DEFAULT_URL);
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    if (hlen == 0 || strcmp(host, "0.0.0.0") == 0) snprintf(host, sizeof host, "127.0.0.1");
    else if (strcmp(host, "[::]") == 0) snprintf(host, sizeof host, "[::1]");
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_printf(&b, "http://%s:%s/-/healthy", host, colon + 1);
    return buf_detach(&b, NULL);
}

/* `sidewatch healthcheck [URL]`: GETs URL (default: the /-/healthy of the
 * address PID 1 listens on when PID 1 is sidewatch, else
 * http://127.0.0.1:9277/-/healthy) and exits 0 on status 200, 1 with a
 * one-line reason on stderr otherwise, 2 on bad usage. For the image's
 * HEALTHCHECK: the runtime image has no curl or wget. */
static int healthcheck_main(int argc, char **argv)
{
    if (argc > 1 || (argc == 1 && argv[0][0] == '-')) {
        fprintf(stderr, "usage: sidewatch healthcheck [URL]\n");
        return 2;
    }
    char *url;
    if (argc == 1) {
        url = mem_strdup(argv[0]);
    } else {
        char *listen = healthcheck_pid1_listen();
        url = healthcheck_url_for(listen != NULL ? listen : DEFAULT_LISTEN);
        mem_free(listen);
    }
    if (httpc_global_init() < 0) {
        fprintf(stderr, "sidewatch: healthcheck: cannot initialise the HTTP client\n");
        mem_free(url);
        return 1;
    }
    httpc_request req = {
        .url = url,
        .timeout_ms = HEALTHCHECK_TIMEOUT_MS,
        .connect_timeout_ms = HEALTHCHECK_TIMEOUT_MS,
        .body_limit = 4096,
    };
    httpc_response resp;
    int rc = 1;
    if (httpc_fetch(&req, &resp) < 0) {
        fprintf(stderr, "sidewatch: healthcheck: %s: %s\n", url,
                resp.error != NULL ? resp.error : "request failed");
    } else if (resp.status != 200) {
        fprintf(stderr, "sidewatch: healthcheck: %s: HTTP status %ld\n", url, resp.status);
    } else {
        rc = 0;
    }
    httpc_response_cleanup(&resp);
    httpc_global_cleanup();
    mem_free(url);
    return rc;
}

/* Raises the soft limit on open files to the hard one, as Go's runtime
 * does at start (Prometheus inherits that): every HTTP connection, scrape
 * and store file takes a descriptor, and --web.max-connections is
 * thousands. Failure is logged and ignored. */
static void raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return;
    if (rl.rlim_cur == rl.rlim_max) {
        log_debug("main", "open file limit %llu (the hard limit)", (unsigned long long)rl.rlim_cur);
        return;
    }
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        log_debug("main", "cannot raise the open file limit from %llu to %llu: %s",
                  (unsigned long long)old, (unsigned long long)rl.rlim_max, strerror(errno));
        return;
    }
    log_debug("main", "raised the open file limit from %llu to %llu", (unsigned long long)old,
              (unsigned long long)rl.rlim_max);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "check") == 0) {
        if (argc >= 3 && strcmp(argv[2], "config") == 0) return check_config(argc - 3, argv + 3);
        if (argc >= 3 && strcmp(argv[2], "rules") == 0)
            return rulefmt_check_command(argc - 3, argv + 3);
        if (argc >= 3 && strcmp(argv[2], "store") == 0) return check_store(argc - 3, argv + 3);
        if (argc >= 3 && strcmp(argv[2], "web-config") == 0)
            return check_web_config(argc - 3, argv + 3);
        fprintf(stderr,
                "sidewatch: error: unknown check '%s' (known: config, rules, store, web-config)\n",
                argc >= 3 ? argv[2] : "");
        return 2;
    }
    if (argc >= 2 && strcmp(argv[1], "dump") == 0) return dump_store(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "healthcheck") == 0) return healthcheck_main(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "test") == 0) {
        if (argc >= 3 && strcmp(argv[2], "rules") == 0) return rulestest_main(argc - 3, argv + 3);
        fprintf(stderr, "sidewatch: error: unknown test command '%s' (known: rules)\n",
                argc >= 3 ? argv[2] : "");
        return 2;
    }
    if (argc >= 2 && strcmp(argv[1], "promql") == 0) {
        if (argc >= 3 && strcmp(argv[2], "test") == 0) return promqltest_main(argc - 3, argv + 3);
        fprintf(stderr, "sidewatch: error: unknown promql command '%s' (known: test)\n",
                argc >= 3 ? argv[2] : "");
        return 2;
    }
    if (argc >= 2 && strcmp(argv[1], "import") == 0) {
        if (argc >= 3 && strcmp(argv[2], "openmetrics") == 0)
            return import_openmetrics(argc - 3, argv + 3);
        fprintf(stderr, "sidewatch: error: unknown import format '%s' (known: openmetrics)\n",
                argc >= 3 ? argv[2] : "");
        return 2;
    }
    flags f = {
        .storage_path = DEFAULT_STORAGE,
        .retention = DEFAULT_RETENTION,
        .listen = DEFAULT_LISTEN,
        .log_level = "info",
        .query_timeout = DEFAULT_QUERY_TIMEOUT,
        .query_max_samples = DEFAULT_QUERY_MAX_SAMPLES,
        .query_lookback = DEFAULT_LOOKBACK,
        .query_max_concurrency = DEFAULT_QUERY_MAX_CONCURRENCY,
        .query_max_regex_bytes = DEFAULT_QUERY_MAX_REGEX_BYTES,
        .scrape_max_body_bytes = DEFAULT_SCRAPE_MAX_BODY_BYTES,
        .rules_max_rules_per_group = DEFAULT_RULES_MAX_RULES_PER_GROUP,
    };
    int rc = parse_flags(argc, argv, &f);
    if (rc != 0) return rc > 0 ? 0 : 1;
    enum log_level lvl;
    if (log_parse_level(f.log_level, &lvl) < 0) {
        fprintf(stderr, "sidewatch: error: --log.level must be debug, info, warn or error\n");
        return 1;
    }
    log_set_level(lvl);
    raise_nofile_limit();
    return run_daemon(&f);
}
