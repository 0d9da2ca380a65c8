/* labels: immutable label sets in canonical (name-sorted) order, a builder
 * to make them, hashing, comparison, and label matchers (=, !=, =~, !~).
 *
 * A `labels` is one heap block: header, label array and the string bytes.
 * Strings carry explicit lengths (label values may contain NUL) and are also
 * NUL-terminated for convenience. Label sets never contain empty values,
 * as in Prometheus, where an empty value means "label absent". */
#ifndef SIDEWATCH_LABELS_H
#define SIDEWATCH_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "regex.h"

#define LABELS_METRIC_NAME "__name__"

typedef struct label {
    const char *name;
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
} label;

typedef struct labels {
    uint32_t n;
    uint32_t bytes; /* size of the whole block */
    uint64_t hash;  /* labels_hash() of this set, computed once */
    label v[];
} labels;

/* The empty label set (a static object; labels_free ignores it). */
const labels *labels_empty(void);
/* Frees a set; NULL and labels_empty() are no-ops. */
void labels_free(labels *ls);
/* A heap copy; caller frees. */
labels *labels_dup(const labels *ls);

/* Value of `name`, or NULL (and *len = 0) when absent. Borrowed. */
const char *labels_get(const labels *ls, const char *name, size_t name_len, size_t *len);
/* The metric name or "" when absent. */
const char *labels_metric_name(const labels *ls, size_t *len);

uint64_t labels_hash(const labels *ls);
bool labels_equal(const labels *a, const labels *b);
/* Orders as Prometheus's labels.Compare: by name, then value, then length. */
int labels_compare(const labels *a, const labels *b);

/* Appends {a="b", c="d"} (Prometheus's labels.String()). */
void labels_format(const labels *ls, buf *out);
/* Appends name{a="b",c="d"} (the exposition/PromQL form; quoted names when
 * not legacy-valid). Without a metric name: {a="b"}. */
void labels_format_metric(const labels *ls, buf *out);
/* Appends a label value escaped for the text format (\\, \", \n). */
void labels_escape_value(buf *out, const char *v, size_t len);

/* Compact binary encoding (varint lengths) and its inverse. decode returns 0
 * and a new set (caller frees), or -EINVAL for malformed input. */
void labels_encode(const labels *ls, buf *out);
int labels_decode(const void *data, size_t len, labels **out);

/* ---- builder ----------------------------------------------------------- */

/* Entries borrow their strings until labels_builder_finish() copies them. */
typedef struct labels_builder {
    label *v;
    size_t n, cap;
} labels_builder;

void labels_builder_init(labels_builder *b);
void labels_builder_cleanup(labels_builder *b);
void labels_builder_reset(labels_builder *b);
/* Starts from an existing set (borrowed). */
void labels_builder_from(labels_builder *b, const labels *ls);
/* Sets name=value (borrowed); an empty value deletes the label. */
void labels_builder_set(labels_builder *b, const char *name, size_t name_len, const char *value,
                        size_t value_len);
void labels_builder_del(labels_builder *b, const char *name, size_t name_len);
const char *labels_builder_get(const labels_builder *b, const char *name, size_t name_len,
                               size_t *len);
/* Appends without checking for an existing name (fast path for parsers;
 * duplicates are reported by labels_builder_finish). */
void labels_builder_add(labels_builder *b, const char *name, size_t name_len, const char *value,
                        size_t value_len);
/* Sorts, drops empty values and copies into a new set (caller frees). If
 * `dup_name` is non-NULL, duplicated names are detected: *dup_name points to
 * the first duplicate (borrowed from the builder) and NULL is returned. */
labels *labels_builder_finish(labels_builder *b, const char **dup_name);

/* ---- matchers ------------------------------------------------------------ */

enum matcher_type { MATCH_EQ, MATCH_NEQ, MATCH_RE, MATCH_NRE };

typedef struct label_matcher {
    enum matcher_type type;
    char *name; /* owned */
    size_t name_len;
    char *value; /* owned */
    size_t value_len;
    regex *re; /* owned; for MATCH_RE and MATCH_NRE */
} label_matcher;

/* Initialises a matcher with copies of name and value. Returns 0, or
 * -EINVAL with the regex error appended to err. */
int labels_matcher_init(label_matcher *m, enum matcher_type type, const char *name, size_t name_len,
                        const char *value, size_t value_len, buf *err);
void labels_matcher_cleanup(label_matcher *m);
bool labels_matcher_matches(const label_matcher *m, const char *v, size_t len);
/* True if the matcher accepts the empty string (i.e. also matches series
 * without the label). */
bool labels_matcher_matches_empty(const label_matcher *m);
/* True if every matcher accepts the set (absent labels count as ""). */
bool labels_match_all(const labels *ls, const label_matcher *ms, size_t n);
/* Appends a="b", a!="b", a=~"b" or a!~"b". */
void labels_matcher_format(const label_matcher *m, buf *out);

/* Parses a series selector as Prometheus's parser.ParseMetricSelector does:
 * `name`, `name{a="b", c=~"d"}`, `{__name__="x"}`, quoted UTF-8 names
 * (`{"my.metric", "a.b"="x"}`), strings in "", '' or `` with Go escapes, and
 * a trailing comma. On success returns 0 and a new array of *n matchers
 * (free with labels_matchers_free). On failure returns -EINVAL and appends
 * "<line>:<col>: parse error: <reason>" to err. */
int labels_parse_selector(const char *s, size_t len, label_matcher **out, size_t *n, buf *err);
/* The same without the check that some matcher does not match "" (as
 * Prometheus's ParseMetricSelector, which leaves that check to callers:
 * the API reports "match[] must contain at least one non-empty matcher"). */
int labels_parse_metric_selector(const char *s, size_t len, label_matcher **out, size_t *n,
                                 buf *err);
/* labels_parse_metric_selector with a cap on each =~ and !~ value
 * (max_regex_bytes, 0 = none; --query.max-regex-bytes for the API's
 * match[]): a longer one fails with -E2BIG, before it is compiled, and
 * "<line>:<col>: parse error: regular expression is too large (N bytes, the
 * limit is M bytes)" in err. Other failures as above. */
int labels_parse_metric_selector_max(const char *s, size_t len, size_t max_regex_bytes,
                                     label_matcher **out, size_t *n, buf *err);
/* labels_parse_selector (some matcher must not match "") with the same
 * regex cap and -E2BIG failure as labels_parse_metric_selector_max: for
 * /federate's match[]. */
int labels_parse_selector_max(const char *s, size_t len, size_t max_regex_bytes,
                              label_matcher **out, size_t *n, buf *err);
void labels_matchers_free(label_matcher *ms, size_t n);

#endif
