/* notify: delivers alerts to Alertmanagers (API v2) and, without an
 * Alertmanager, straight to webhooks in Alertmanager's webhook payload
 * (version 4), through a durable outbox in the store's database.
 *
 * Flow: the rule engine hands every alert that needs sending to
 * notify_send() (Prometheus's sendAlerts: firing alerts each resend
 * interval, resolved ones for 15 minutes). notify_send() adds the external
 * labels (where the alert lacks them), applies alerting.alert_relabel_configs
 * (then each Alertmanager's own), and
 *   - for each Alertmanager: writes one outbox entry holding the JSON array
 *     POSTed to <scheme>://<target><path_prefix>/api/v2/alerts;
 *   - for each webhook receiver: adds the alerts to the receiver's
 *     aggregation groups (group_by, group_wait, group_interval,
 *     repeat_interval, send_resolved, max_alerts, as Alertmanager's
 *     dispatcher and notification log do); when a group is due, its webhook
 *     body is written to the outbox.
 * Delivery threads (one per Alertmanager target and per webhook receiver,
 * so one slow or dead receiver never delays another) send outbox entries
 * oldest first, retrying with exponential backoff and jitter on connection
 * errors, timeouts, 5xx and 429; an entry is deleted when delivered
 * (2xx), dropped and counted on other 4xx, or dropped and counted when
 * older than max_age. The outbox and the webhook groups' notification state
 * live in the store (store_kv_*), so a restart neither loses nor repeats a
 * notification.
 *
 * notify_send() never blocks on the network: it only takes a mutex and
 * writes the outbox. Thread-safe. */
#ifndef SIDEWATCH_NOTIFY_H
#define SIDEWATCH_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "labels.h"
#include "registry.h"
#include "store.h"

/* One alert as Prometheus's notifier.Alert. */
typedef struct notify_alert {
    const labels *labels;      /* with alertname; external labels not yet added */
    const labels *annotations; /* may be NULL */
    int64_t starts_at_ms;
    int64_t ends_at_ms;        /* firing: valid-until; resolved: when it resolved; 0 = unset */
    const char *generator_url; /* may be NULL */
} notify_alert;

typedef struct notify_options {
    store *st;                /* borrowed; holds the outbox */
    registry *reg;            /* borrowed; metrics are registered here */
    const char *external_url; /* --web.external-url, for webhook payloads' externalURL */
    int64_t max_age_ms;       /* outbox entries older than this are dropped; 0 = 24h */
    int64_t queue_capacity;   /* max outbox entries per destination; 0 = 10000; the
                               * oldest are dropped (and counted) beyond it */
    /* Retry backoff: the first retry waits about backoff_initial_ms (0 = 1s),
     * each further one twice as long, at most backoff_max_ms (0 = 5m); each
     * wait is jittered down by up to a half. */
    int64_t backoff_initial_ms;
    int64_t backoff_max_ms;
    /* The clock (ms since the epoch) for grouping timers, entry ages and
     * retry times; NULL = the real clock. With a clock hook the delivery
     * threads re-read it at least every 20 ms (tests move a fake clock). */
    int64_t (*now_ms)(void *clock_ctx);
    void *clock_ctx;
} notify_options;

typedef struct notify notify;

/* Creates the notifier, reading what the outbox already holds. Delivery
 * starts with the first notify_apply_config(). Returns 0 and *out, or a
 * negative errno with a message appended to err. */
int notify_new(const notify_options *o, notify **out, buf *err);
/* Applies alerting.alertmanagers, alert_relabel_configs, external labels and
 * webhooks from cfg (borrowed for the call; what is kept is copied).
 * Destinations that stay keep their outbox and state; removed ones stop
 * (their undelivered entries stay in the store until they age out).
 * Returns 0, or a negative errno with a message appended to err (nothing
 * changed). */
int notify_apply_config(notify *n, const config *cfg, buf *err);
/* Queues alerts (borrowed for the call). */
void notify_send(notify *n, const notify_alert *alerts, size_t n_alerts);
/* Number of outbox entries not yet delivered (all destinations). */
int64_t notify_pending(notify *n);
/* The Alertmanager URLs in use (.../api/v2/alerts), for
 * /api/v1/alertmanagers. Caller frees each string and the array. */
void notify_alertmanager_urls(notify *n, char ***urls, size_t *count);
/* Wakes every delivery thread to re-check its queue and timers now. */
void notify_kick(notify *n);
/* Stops the delivery threads (undelivered entries stay in the store) and
 * frees n. NULL is a no-op. */
void notify_free(notify *n);

/* ---- the payloads (exported for tests and tools) ---------------------------- */

/* Prometheus's model.LabelSet.Fingerprint(): FNV-1a 64 over the sorted
 * names and values, each followed by 0xff. Printed as "%016" PRIx64. */
uint64_t notify_fingerprint(const labels *ls);

/* Longest notify_format_time() output with its NUL. */
#define NOTIFY_TIME_MAX 40
/* Formats a time (ns since the epoch, UTC) as Go marshals a time.Time:
 * RFC 3339 with up to nine fraction digits, trailing zeros trimmed
 * ("2026-11-25T13:51:27Z", "...26.717926348Z"). NOTIFY_ZERO_TIME gives
 * Go's zero time "0001-01-01T00:00:00Z". Returns the length. */
#define NOTIFY_ZERO_TIME INT64_MIN
size_t notify_format_time(int64_t unix_ns, char out[NOTIFY_TIME_MAX]);

/* Appends Alertmanager's group key for the root route and these group
 * labels: {}:{alertname="X", job="y"}. */
void notify_group_key(const labels *group_labels, buf *out);

/* An alert as a webhook payload shows it, with nanosecond times. */
typedef struct notify_webhook_alert {
    const labels *labels;
    const labels *annotations; /* may be NULL */
    int64_t starts_at_ns;
    int64_t ends_at_ns;        /* 0 = unset (firing) */
    const char *generator_url; /* may be NULL */
} notify_webhook_alert;

/* Appends Alertmanager's webhook payload (version 4) for one notification
 * of group `group_labels` to `receiver`: the alerts (borrowed) sorted as
 * Alertmanager sorts them (job, instance, then the label sets), cut to
 * max_alerts (0 = all; the rest counted in truncatedAlerts), each firing or
 * resolved as of now_ns (firing ones with Go's zero endsAt), with
 * commonLabels, commonAnnotations, externalURL, version "4" and groupKey.
 * Returns 0, or -E2BIG when out's limit is reached. */
int notify_webhook_body(const char *receiver, const labels *group_labels,
                        const notify_webhook_alert *alerts, size_t n, uint64_t max_alerts,
                        const char *external_url, int64_t now_ns, buf *out);

#endif
