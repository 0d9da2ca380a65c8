/* template: the subset of Go's text/template that Prometheus rule files use
 * in alert labels and annotations, with Prometheus's template functions
 * (template/template.go in Prometheus).
 *
 * Language: text and actions `{{ ... }}` (with `{{-` / `-}}` trimming),
 * Go template comments; pipelines `a | b`; variables `$x := ...`,
 * `$x = ...`; fields `.Labels.x`, `$labels.x`, `.Value`, `$value`,
 * `$externalLabels.x`, `$externalURL`; `if`/`else if`/`else`/`end`,
 * `range` (over a query result, a map or a slice; `range $i, $e := ...`),
 * `with`, `define`/`template`/`block`, `break`/`continue`; Go's builtins
 * `and`, `or`, `not`, `len`, `index`, `slice`, `print`, `printf`, `println`,
 * `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `html`, `js`, `urlquery`; Prometheus's
 * functions `humanize`, `humanize1024`, `humanizeDuration`,
 * `humanizePercentage`, `humanizeTimestamp`, `toTime`, `title`, `toUpper`,
 * `toLower`, `match`, `reReplaceAll`, `safeHtml`, `stripPort`,
 * `stripDomain`, `graphLink`, `tableLink`, `args`, `label`, `value`,
 * `first`, `sortByLabel`, `strvalue`, `query`, `externalURL`, `pathPrefix`,
 * `parseDuration`, `toDuration`, `now`, `urlQueryEscape` (a `toTime` result
 * has the time.Time methods Format, String, Unix, UnixMilli, Add, Year...;
 * a `toDuration` result String, Seconds, Minutes, Hours, Milliseconds...).
 *
 * Prometheus prefixes every alert template with
 *   {{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}
 *   {{$externalURL := .ExternalURL}}{{$value := .Value}}
 * template_expand() does the same, so `$labels` etc. always exist.
 *
 * Errors read like Go's: "template: __alert_HighLatency:1:12: executing
 * \"__alert_HighLatency\" at <humanize $labels.x>: error calling humanize:
 * ...". Parse errors: "template: NAME:LINE: unexpected ...".
 *
 * Thread-safe (no global state); memory: everything the caller passes is
 * borrowed, results are appended to caller-owned bufs. */
#ifndef SIDEWATCH_TEMPLATE_H
#define SIDEWATCH_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "labels.h"

/* One element of a `query` result: Prometheus's template sample. */
typedef struct template_sample {
    labels *metric; /* owned by the result */
    double value;
} template_sample;

typedef struct template_query_result {
    template_sample *v; /* owned */
    size_t n;
} template_query_result;

void template_query_result_cleanup(template_query_result *r);

/* Runs the PromQL expression `expr` as an instant query at time t_ms (the
 * rule evaluation's time). A vector result gives its samples, a scalar one
 * sample with no labels; other types are an error. On success returns 0 and
 * fills *out (empty on entry; the template engine frees it); on failure
 * returns a negative errno with a message appended to err (the template then
 * fails with "error calling query: <message>"). */
typedef int (*template_query_fn)(void *ctx, const char *expr, int64_t t_ms,
                                 template_query_result *out, buf *err);

typedef struct template_data {
    const labels *labels;          /* .Labels, $labels; may be NULL (empty) */
    double value;                  /* .Value, $value */
    const labels *external_labels; /* .ExternalLabels, $externalLabels; may be NULL */
    const char *external_url;      /* .ExternalURL, $externalURL; may be NULL ("") */
    int64_t time_ms;               /* evaluation time, for `query` */
    template_query_fn query;       /* NULL: `query` fails with an error */
    void *query_ctx;
} template_data;

/* Expands `text` (len bytes, need not be NUL-terminated) named `name` (Go's
 * template name; Prometheus uses "__alert_" + alert name) with data d,
 * appending the result to out. Returns 0; or -EINVAL (parse or execution
 * error: Go's message appended to err; out may hold partial output, which
 * callers discard, as Prometheus does), or -E2BIG when out's own limit is
 * reached. Bounded: output over 1 MiB, more than 100,000 range iterations,
 * a string value over 1 MiB, {{template}} recursion deeper than 200, nesting
 * deeper than 200 (parse) or 500 (execution), 10 million evaluation steps or
 * 64 MiB of working memory is an error. */
int template_expand(const char *name, const char *text, size_t len, const template_data *d,
                    buf *out, buf *err);

/* Parses `text` as template_expand would, without running it (rule-file
 * validation: Prometheus's rulefmt checks that templates parse). Returns 0,
 * or -EINVAL with Go's parse error appended to err. */
int template_check(const char *name, const char *text, size_t len, buf *err);

/* Prometheus's humanize functions, exported for other modules (notify's
 * texts, tests). Each appends to out; a non-numeric input is the caller's
 * concern (they take numbers). A timestamp whose nanoseconds overflow int64
 * appends Prometheus's error text ("<v> cannot be represented as a
 * nanoseconds timestamp since it overflows int64"). */
void template_humanize(double v, buf *out);
void template_humanize1024(double v, buf *out);
void template_humanize_duration(double seconds, buf *out);
void template_humanize_percentage(double v, buf *out);
void template_humanize_timestamp(double unix_seconds, buf *out);

#endif
