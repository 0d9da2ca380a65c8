/* rulefmt: Prometheus rule files (model/rulefmt in Prometheus): parsing and
 * validation of
 *
 *   groups:
 *     - name: <string>                 # unique in the file
 *       interval: <duration>           # default: global evaluation_interval
 *       query_offset: <duration>       # default: global rule_query_offset
 *       limit: <int>                   # 0 = no limit
 *       labels: {<name>: <value>}      # added to every rule's result
 *       rules:
 *         - record: <metric name>      # exactly one of record and alert
 *           alert: <string>
 *           expr: <PromQL>             # must parse (string or number YAML)
 *           for: <duration>            # alerts only
 *           keep_firing_for: <duration>  # alerts only
 *           labels: {<name>: <value>}
 *           annotations: {<name>: <value>}  # alerts only
 *
 * with Prometheus's error texts (the substrings rulefmt_test.go and
 * promtool expect), each prefixed with "<file>:<line>:<col>: " of the node at
 * fault, and templates in labels and annotations checked with
 * template_check(). Unknown fields are errors ("field x not found in type
 * rulefmt.Rule") unless ignore_unknown_fields is set. An empty file or one
 * with no groups is valid.
 *
 * Memory: a rulefmt_file owns everything in it; rulefmt_file_free() frees
 * it. Thread-safe (no global state). */
#ifndef SIDEWATCH_RULEFMT_H
#define SIDEWATCH_RULEFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "labels.h"

typedef struct rulefmt_rule {
    char *record;          /* recording rule: the metric name; else NULL */
    char *alert;           /* alerting rule: the alert name; else NULL */
    char *expr;            /* the PromQL text as written */
    int64_t for_ms;        /* 0 when absent */
    int64_t keep_firing_for_ms;
    labels *labels;        /* never NULL; sorted by name */
    labels *annotations;   /* never NULL; sorted by name (alerts only) */
    int line, col;         /* position of the rule's mapping (1-based) */
} rulefmt_rule;

typedef struct rulefmt_group {
    char *name;
    int64_t interval_ms;     /* 0 = use the global evaluation_interval */
    bool has_query_offset;   /* query_offset was given (even 0) */
    int64_t query_offset_ms;
    int64_t limit;           /* 0 = no limit */
    labels *labels;          /* never NULL; group labels */
    rulefmt_rule *rules;
    size_t n_rules;
    int line, col;
} rulefmt_group;

typedef struct rulefmt_file {
    char *path; /* as given */
    rulefmt_group *groups;
    size_t n_groups;
} rulefmt_file;

typedef struct rulefmt_options {
    bool ignore_unknown_fields;  /* promtool's --ignore-unknown-fields */
    bool legacy_name_validation; /* metric_name_validation_scheme: legacy
                                  * (label, annotation and record names
                                  * must match [a-zA-Z_][a-zA-Z0-9_]* /
                                  * [a-zA-Z_:][a-zA-Z0-9_:]*) */
    /* Most rules in one group (--rules.max-rules-per-group); 0 = no limit.
     * A group with more is an error of its file ("<src>:L:C: group \"g\"
     * has N rules, more than the limit of M (--rules.max-rules-per-group)"),
     * and groups_refused (when not NULL) is incremented for it. */
    size_t max_rules_per_group;
    size_t *groups_refused;
} rulefmt_options;

/* Parses and validates YAML text; `source` names the file in messages.
 * On success returns 0 and *out (caller frees). On failure returns -EINVAL
 * (-ENOMEM), *out is NULL, and every error found is appended to err, one per
 * line ("<source>:<line>:<col>: <message>"; YAML syntax errors as
 * yamlconf reports them). o may be NULL (defaults). */
int rulefmt_parse(const char *text, size_t len, const char *source, const rulefmt_options *o,
                  rulefmt_file **out, buf *err);
/* Reads and parses one file (errors as rulefmt_parse, or "<path>: <strerror>"
 * when it cannot be read: -errno). */
int rulefmt_load(const char *path, const rulefmt_options *o, rulefmt_file **out, buf *err);
void rulefmt_file_free(rulefmt_file *f);

/* Expands rule_files patterns (globs; relative ones against base_dir, which
 * may be NULL for the working directory) into the sorted list of matching
 * files, as Prometheus does (a pattern matching nothing is not an error;
 * a malformed pattern is). Returns 0 and *paths and *n (caller frees each and
 * the array), or -EINVAL with a message appended to err. */
int rulefmt_glob(char *const *patterns, size_t n_patterns, const char *base_dir, char ***paths,
                 size_t *n, buf *err);

/* `sidewatch check rules [--lint=duplicate-rules|none] [--lint-fatal]
 * [--ignore-unknown-fields] FILE...` (promtool's check rules): prints
 * "Checking FILE", then "  SUCCESS: N rules found" or "  FAILED:" and the
 * errors, and the duplicate-rule lint warnings, like promtool. Returns the
 * exit code (0 all good; 1 some file failed; 3 lint problems with
 * --lint-fatal). argv holds only the arguments after "check rules". */
int rulefmt_check_command(int argc, char **argv);

#endif
