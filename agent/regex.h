/* regex: RE2-syntax regular expressions on PCRE2 (JIT), the only user of
 * <pcre2.h>.
 *
 * Prometheus anchors every regex fully and lets '.' match '\n'
 * (^(?s:<re>)$), for selectors, relabeling and label_replace alike; this
 * module does the same. Constructs PCRE2 has but RE2 (Go) rejects —
 * backreferences, lookaround, atomic groups, possessive quantifiers — are
 * rejected with Go's error text, so a config that Prometheus refuses is
 * refused here too. A compiled regex is immutable and may be shared by
 * threads. */
#ifndef SIDEWATCH_REGEX_H
#define SIDEWATCH_REGEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Longest pattern accepted (Prometheus has no limit; RE2 refuses programs
 * over ~1 MB compiled). Longer patterns fail with "expression too large". */
#define REGEX_MAX_PATTERN (64 * 1024)

/* Bounds on one match (PCRE2 backtracks; RE2 does not, so Prometheus needs
 * none): at most REGEX_MATCH_LIMIT backtracking steps (pcre2_set_match_limit,
 * about 20 ms of CPU on a pathological pattern such as (a|a)* against 40
 * a's and a b), REGEX_DEPTH_LIMIT nested backtracking points and
 * REGEX_HEAP_LIMIT_KIB of backtracking memory (interpreter), and JIT's own
 * stack. A match that hits one is "no match" (the series is not selected,
 * relabeling does not apply) and is counted in regex_limit_hits(); ordinary
 * patterns over label-sized text stay far below them. */
#define REGEX_MATCH_LIMIT 1000000
#define REGEX_DEPTH_LIMIT 100000
#define REGEX_HEAP_LIMIT_KIB 65536

typedef struct regex regex;

/* Compiles pattern[0..len). On success *out is a new regex (caller frees with
 * regex_free) and 0 is returned. On failure returns -EINVAL and appends
 * "error parsing regexp: <reason>: `<pattern>`" to err (if non-NULL). */
int regex_compile(regex **out, const char *pattern, size_t len, buf *err);
void regex_free(regex *re);

/* The pattern as given (not anchored). Borrowed. */
const char *regex_pattern(const regex *re);

/* Matches stopped by the limits above since the process started (all
 * regexes, all threads). Never fails. */
uint64_t regex_limit_hits(void);

/* True if the whole of s[0..len) matches (false also when a limit stopped
 * the match). */
bool regex_match(const regex *re, const char *s, size_t len);

/* The literal text every match must start with (maybe empty), as a view
 * into the pattern: "pod-00[0-9]{3}" gives "pod-00", "a|b" and "(?i)x" give
 * "". Lets callers narrow a search to a key range before matching. */
const char *regex_literal_prefix(const regex *re, size_t *len);

/* If the whole of s matches, appends tmpl expanded with the match (Go's
 * Regexp.Expand: $1, ${1}, $name, ${name}, $$) to out and returns 1;
 * returns 0 if s does not match; -E2BIG if out's limit was reached. */
int regex_expand(const regex *re, const char *s, size_t len, const char *tmpl, size_t tmpl_len,
                 buf *out);

#endif
