/* rules: the rule engine — rule groups, recording rules, the alert state
 * machine and alert templates, with Prometheus 3.x's semantics
 * (rules/group.go, rules/manager.go, rules/alerting.go, rules/recording.go).
 *
 * A rules_manager holds the groups of a set of rule files. Each group is
 * evaluated at its interval (default: the global evaluation_interval) at
 * Prometheus's aligned timestamps (an offset from a hash of file and group
 * name, group.EvalTimestamp), querying at t - query_offset. Rules run in
 * order; each rule's output goes through the caller's appender and is
 * committed before the next rule runs, so later rules see earlier rules'
 * results of the same evaluation. The daemon runs one thread per group
 * (rules_manager_start); the promtool unit-test runner instead steps every
 * group itself with rules_manager_eval (same evaluation code, fake clock).
 *
 * Evaluation of one rule at time t (q = t - query_offset):
 *   recording: expr as an instant query at q; vector or scalar result
 *     (else "rule result is not a vector or scalar"); __name__ = record,
 *     rule labels (group labels overridden by rule labels) set; duplicate
 *     sets fail with "vector contains metrics with the same labelset after
 *     applying rule labels"; group limit: "exceeded limit of %d with %d
 *     series". Samples at q; series written last time but not now get a
 *     staleness marker (strutil_stale_nan) at q.
 *   alerting: expr at q; each sample becomes an alert: its labels minus
 *     __name__, plus the rule labels expanded as templates, plus
 *     alertname; annotations expanded too (template_expand with $labels,
 *     $value, $externalLabels, $externalURL, `query` at t; an error gives
 *     "<error expanding template: ...>" and a warning, never a failure);
 *     duplicate sets fail with "vector contains metrics with the same
 *     labelset after applying alert labels". Then Prometheus's state
 *     machine: new -> pending (activeAt = t) -> firing once t - activeAt
 *     >= for (firedAt = t); gone from the result -> inactive (resolvedAt =
 *     t), unless firing with keep_firing_for (keepFiringSince = first t
 *     gone, firing while t - keepFiringSince < keep_firing_for); pending
 *     ones are dropped at once, resolved ones kept 15 minutes. Written each
 *     evaluation, at q: ALERTS{alertname, alertstate="pending"|"firing",
 *     labels...} = 1 and ALERTS_FOR_STATE{alertname, labels...} =
 *     activeAt in seconds (with staleness markers when they go away).
 *     Limit: "exceeded limit of %d with %d alerts" (all alerts dropped).
 *   After a successful alerting rule evaluation, Prometheus's sendAlerts:
 *   every firing or resolved alert that needs sending (resolved since last
 *   sent, or last sent more than resend_delay ago) gets lastSentAt = t and
 *   validUntil = t + 4 * max(resend_delay, group interval) and is handed to
 *   the notify callback with startsAt = firedAt, endsAt = resolvedAt (or
 *   validUntil) and generatorURL = external_url + "/graph?g0.expr=" +
 *   url.QueryEscape(expr as Prometheus prints it) + "&g0.tab=1".
 *
 * Alert state persistence: after each evaluation where an alerting rule's
 * alerts changed, its full state is saved through rules_persist under the
 * rule's key, and it is loaded when the rule is created (start-up), so
 * pending alerts keep their `for` progress and firing ones (keep_firing_for
 * included) stay firing across restarts. Key (bytes):
 *   <file> 0xff <group name> 0xff <alert name> 0xff <rule labels as
 *   labels_format()> 0xff <n>
 * where n (decimal) counts earlier rules of the group with the same name and
 * labels. Value (text, one line per alert, fields separated by one space):
 *   first line "rules-alerts v1"; then per alert:
 *   <state: pending|firing|inactive> <activeAt> <firedAt> <resolvedAt>
 *   <lastSentAt> <validUntil> <keepFiringSince> <value> <labels> <annotations>
 * with times in ms since the epoch ("-" when unset), value as C's "%a"
 * (exact; strtod reads it back), and labels/annotations as lower-case hex
 * of labels_encode() ("-" for an empty set). Restored alerts keep their
 * times as saved (the downtime counts toward `for`, unlike Prometheus's
 * ALERTS_FOR_STATE restore with its grace period). A value is saved only
 * when it differs from the last one saved for the key.
 * An empty rule (no alerts) deletes its key. Unreadable values are logged
 * and ignored.
 *
 * Threads: a manager may be used from several threads (snapshot from the
 * API while groups run); its functions are serialised internally. The
 * callbacks are called from group threads (or from the rules_manager_eval
 * caller) and must be thread-safe when more than one group runs.
 *
 * rules does not know notify (main.c wires the notify callback). */
#ifndef SIDEWATCH_RULES_H
#define SIDEWATCH_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "labels.h"
#include "promql/eval.h"
#include "promql/parse.h"
#include "registry.h"
#include "store.h"

struct rulefmt_file;    /* rulefmt.h */
struct rulefmt_options; /* rulefmt.h */

/* "Unset" for the alert timestamps below (Go's zero time.Time): 0 is a real
 * time (promtool tests start at the epoch). */
#define RULES_TS_NONE INT64_MIN

/* Prometheus's resolvedRetention and default resend delay. */
#define RULES_RESOLVED_RETENTION_MS (15 * 60 * 1000LL)
#define RULES_DEFAULT_RESEND_DELAY_MS (60 * 1000LL)
#define RULES_DEFAULT_INTERVAL_MS (60 * 1000LL)

enum rules_alert_state {
    RULES_STATE_UNKNOWN,  /* rule not evaluated yet (rule state only) */
    RULES_STATE_INACTIVE, /* resolved (an alert), or no alert (a rule) */
    RULES_STATE_PENDING,
    RULES_STATE_FIRING,
};

enum rules_health { RULES_HEALTH_UNKNOWN, RULES_HEALTH_OK, RULES_HEALTH_ERR };

/* "unknown", "inactive", "pending", "firing" (Prometheus's lower-case
 * AlertState names, as the API prints them). Static. */
const char *rules_state_name(enum rules_alert_state s);
/* "unknown", "ok", "err" (the API's health values). Static. */
const char *rules_health_name(enum rules_health h);

/* One alert instance (Prometheus's rules.Alert). Times are ms since the
 * epoch, RULES_TS_NONE when unset. In a snapshot, labels and annotations
 * are owned by the snapshot. */
typedef struct rules_alert {
    labels *labels;      /* with alertname */
    labels *annotations; /* expanded; never NULL */
    double value;
    enum rules_alert_state state; /* INACTIVE, PENDING or FIRING */
    int64_t active_at_ms;
    int64_t fired_at_ms;
    int64_t resolved_at_ms;
    int64_t last_sent_at_ms;
    int64_t valid_until_ms;
    int64_t keep_firing_since_ms;
} rules_alert;

/* ---- callbacks ---------------------------------------------------------------- */

/* Where rule results go (the store for the daemon, a memstore for tests).
 * For each rule evaluation the engine calls begin(), then append() for each
 * sample, then commit() exactly once (also when an append failed); after
 * commit() returns, the samples must be visible to the source's next
 * queries. begin returns an opaque batch handle (may be ctx itself; NULL
 * is a failure: the rule fails with "cannot start appender"). append
 * borrows ls. append and commit return 0 or a negative errno with a message
 * appended to err; a failed append is logged and the sample dropped (the
 * rule's health becomes err with that message); a failed commit makes the
 * rule fail. */
typedef struct rules_appender {
    void *ctx;
    void *(*begin)(void *ctx);
    int (*append)(void *batch, const labels *ls, int64_t t_ms, double v, buf *err);
    /* A native histogram result (borrowed), as append. NULL: histogram
     * results are dropped, each with an error. */
    int (*append_histogram)(void *batch, const labels *ls, int64_t t_ms, const promql_fh *h,
                            buf *err);
    int (*commit)(void *batch, buf *err);
} rules_appender;

/* Where queries read from. For each rule evaluation (and its template
 * `query` calls) the engine calls begin(), which fills *q with the data
 * source to use until end(handle) and returns an opaque handle (may be
 * ctx; NULL with a message in err is a failure). With begin NULL, every
 * query reads from `fixed` instead (rules_source_queryable). */
typedef struct rules_source {
    void *ctx;
    void *(*begin)(void *ctx, promql_queryable *q, buf *err);
    void (*end)(void *ctx, void *handle);
    promql_queryable fixed;
} rules_source;

/* An alert handed to the notify callback (Prometheus's notifier.Alert as
 * rules.SendAlerts builds it). Everything is borrowed for the call. */
typedef struct rules_sent_alert {
    const labels *labels;      /* with alertname; no external labels */
    const labels *annotations; /* never NULL */
    int64_t starts_at_ms;      /* firedAt */
    int64_t ends_at_ms;        /* resolvedAt when resolved, else validUntil */
    const char *generator_url;
} rules_sent_alert;

/* Called after each alerting rule evaluation that has alerts to send
 * (n > 0), with the rule's expression as Prometheus prints it. */
typedef void (*rules_notify_fn)(void *ctx, const char *expr, const rules_sent_alert *alerts,
                                size_t n);

/* Durable alert state (format above). save stores value (len bytes) under
 * key, or deletes key when value is NULL; load returns 0 with *value
 * (mem_malloc'd, the engine frees it) and *len, -ENOENT when absent, or
 * another negative errno. Both append a message to err on failure (the
 * engine logs it and carries on). Both NULL: no persistence. */
typedef struct rules_persist {
    void *ctx;
    int (*save)(void *ctx, const void *key, size_t key_len, const void *value, size_t len,
                buf *err);
    int (*load)(void *ctx, const void *key, size_t key_len, void **value, size_t *len, buf *err);
} rules_persist;

/* Ready-made callbacks over the store (borrowed; must outlive the
 * manager): the persistence in kv namespace RULES_KV_NAMESPACE, a source
 * that opens a reader and a querier snapshot per evaluation (no querier
 * limits: the engine's max_samples and timeout apply), and an appender
 * that writes one store batch per rule evaluation (series created on first
 * use). Each fills *out and allocates nothing. */
#define RULES_KV_NAMESPACE "alerts"
void rules_persist_store(store *s, rules_persist *out);
void rules_source_store(store *s, rules_source *out);
void rules_appender_store(store *s, rules_appender *out);
/* A source that always answers from q (copied into out->fixed; q->ctx is
 * borrowed): memstore_queryable() for tests and the unit-test runner. */
void rules_source_queryable(const promql_queryable *q, rules_source *out);

/* ---- the manager ----------------------------------------------------------- */

/* Fixed for the manager's life. Everything is copied, except that the
 * callbacks' ctx and reg are borrowed. */
typedef struct rules_options {
    rules_source source;
    rules_appender appender;
    rules_notify_fn notify; /* NULL: alerts are not sent anywhere */
    void *notify_ctx;
    rules_persist persist;        /* zeroed: no persistence */
    registry *reg;                /* NULL: no metrics */
    promql_engine_options engine; /* cancel is ignored; the manager cancels on stop */
    promql_parse_options parse;   /* for rule expressions */
    int64_t resend_delay_ms;      /* 0 = 1m (--rules.alert.resend-delay) */
} rules_options;

/* What a (re)load applies; borrowed for the call. */
typedef struct rules_config {
    char *const *files; /* rule files or glob patterns (rule_files) */
    size_t n_files;
    const char *base_dir;              /* relative patterns are resolved here; NULL = cwd */
    const struct rulefmt_options *fmt; /* rulefmt.h; NULL: defaults */
    int64_t evaluation_interval_ms;    /* default group interval; 0 = 1m */
    int64_t query_offset_ms;           /* global rule_query_offset */
    const labels *external_labels;     /* NULL: none */
    const char *external_url;          /* NULL: "" */
} rules_config;

typedef struct rules_manager rules_manager;

/* A manager with no groups. Returns 0 and *out (free with
 * rules_manager_free), or -EINVAL with a message appended to err (missing
 * source/appender callbacks). */
int rules_manager_new(const rules_options *o, rules_manager **out, buf *err);
/* Stops the group threads (waiting for running evaluations) and frees
 * everything. NULL is a no-op. Alert state is not deleted from persistence
 * (it is what the next start restores). */
void rules_manager_free(rules_manager *m);

/* Loads the rule files of c (rulefmt_glob + rulefmt_load) and replaces
 * the current groups, as Prometheus's Manager.Update: a group with the same
 * file, name and definition (interval, limit, query_offset, labels, rules)
 * as an old one is kept as it is; a changed group takes the old one's
 * series and alert state for rules with the same name and labels
 * (copyState); groups that are gone get staleness markers for what they
 * wrote and their persisted alert state is deleted. New groups restore
 * their alerting rules' state from persistence. When the manager is
 * started, new groups start and removed ones stop. Returns 0; on a load
 * error returns -EINVAL (or another negative errno) with every message
 * appended to err and keeps the old groups. */
int rules_manager_update(rules_manager *m, const rules_config *c, buf *err);

/* rules_manager_update with the rule files already loaded (borrowed for
 * the call; what is kept is copied); c->files, n_files, base_dir and fmt
 * are ignored. Same semantics and errors (an expression that does not
 * parse: "<file>: group \"<g>\", rule \"<name>\": <parse error>"). */
int rules_manager_update_files(rules_manager *m, const struct rulefmt_file *const *files,
                               size_t n_files, const rules_config *c, buf *err);

/* Starts one thread per group (each waits for its first aligned
 * evaluation time, then evaluates every interval; a slow group never
 * delays another; missed iterations are counted). Idempotent. Returns 0 or
 * a negative errno (threads that could not start). */
int rules_manager_start(rules_manager *m);
/* Stops every group thread (a running evaluation is canceled through the
 * engine's cancel flag and finishes). Groups stay loaded. Idempotent. */
void rules_manager_stop(rules_manager *m);

/* The single-step API (the promtool unit-test runner; do not mix with
 * rules_manager_start): evaluates the groups once at t_ms exactly (no
 * alignment), one after another, on the calling thread, through the same
 * code as the group threads (appender, notify, persistence, metrics).
 * order: indexes into the groups as rules_manager_snapshot lists them
 * (file order, then group order in the file), n_order of them; NULL = all
 * in that order. Rule failures are recorded in each rule's health and
 * last error (see the snapshot), not returned. Returns 0, or -EINVAL for
 * an index out of range (nothing evaluated). */
int rules_manager_eval(rules_manager *m, int64_t t_ms, const size_t *order, size_t n_order);

/* Evaluates one group once at t_ms, exactly as rules_manager_eval. */
int rules_manager_eval_group(rules_manager *m, size_t group_index, int64_t t_ms);

/* ---- snapshot (for /api/v1/rules, /api/v1/alerts and test runners) ------------ */

typedef struct rules_rule_snap {
    bool alerting;       /* alerting rule, else recording */
    char *name;          /* alert or record name */
    char *query;         /* expr as written in the file */
    labels *labels;      /* rule labels (group labels merged), never NULL */
    labels *annotations; /* never NULL (empty for recording rules) */
    int64_t for_ms;      /* "duration" */
    int64_t keep_firing_for_ms;
    enum rules_health health;
    char *last_error;           /* NULL when none */
    int64_t last_evaluation_ms; /* RULES_TS_NONE before the first */
    double evaluation_time_s;
    enum rules_alert_state state; /* alerting: highest alert state, UNKNOWN before the first
                                   * evaluation */
    rules_alert *alerts;          /* alerting: the active alerts (not the resolved ones kept for
                                   * resending; Prometheus's ActiveAlerts), sorted by labels */
    size_t n_alerts;
} rules_rule_snap;

typedef struct rules_group_snap {
    char *name;
    char *file;
    int64_t interval_ms;
    int64_t query_offset_ms; /* effective (group's, else global) */
    int64_t limit;
    labels *labels;             /* group labels */
    int64_t last_evaluation_ms; /* RULES_TS_NONE before the first */
    double evaluation_time_s;
    rules_rule_snap *rules;
    size_t n_rules;
} rules_group_snap;

typedef struct rules_snapshot {
    rules_group_snap *groups; /* file order, then order in the file */
    size_t n_groups;
} rules_snapshot;

/* Copies the current state of every group into *out (caller cleans up with
 * rules_snapshot_cleanup). Consistent per group. Never fails. */
void rules_manager_snapshot(rules_manager *m, rules_snapshot *out);
void rules_snapshot_cleanup(rules_snapshot *s);

/* ---- helpers ---------------------------------------------------------------- */

/* Prometheus's group.EvalTimestamp: the latest aligned evaluation time
 * <= now_ms for a group of this file, name and interval (offset = hash of
 * {file, name} % interval, in nanoseconds as Prometheus computes it). */
int64_t rules_eval_timestamp(const char *file, const char *group, int64_t interval_ms,
                             int64_t now_ms);

/* Appends Prometheus's generator URL: external_url (may be NULL) +
 * "/graph?g0.expr=" + url.QueryEscape(expr) + "&g0.tab=1". */
void rules_generator_url(const char *external_url, const char *expr, buf *out);

#endif
