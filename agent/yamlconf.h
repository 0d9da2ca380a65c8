/* yamlconf: YAML text into an immutable node tree that remembers where every
 * node came from, for the config and rule-file loaders. The only user of
 * <yaml.h> (libyaml).
 *
 * A document is parsed in one go into nodes of four kinds: null, scalar,
 * sequence and mapping. Every node keeps its 1-based line and column and
 * its tag. Scalars are resolved the way Go's yaml.v2 (which Prometheus
 * uses) resolves them, so a consumer can type them like Prometheus does:
 *
 *   - plain `~`, `null`, `Null`, `NULL` and the empty plain scalar are null
 *     (kind YAMLCONF_NULL, tag "!!null");
 *   - plain y/yes/true/on/n/no/false/off (and their Capitalised and UPPER
 *     forms) are "!!bool", decimal/0x/0o/0b integers (with `_` separators)
 *     are "!!int", floats and .inf/.nan are "!!float", `<<` is "!!merge";
 *   - quoted and block scalars are "!!str";
 *   - an explicit tag wins: `!!str 12` is a string, `!!binary` is decoded
 *     from base64 (the text then may contain NUL bytes; `len` counts them),
 *     `!!int "12"` is checked and resolved as an integer. Unknown tags (`!x`)
 *     are kept and the scalar is treated as a string.
 *
 * Anchors and aliases are resolved by sharing: an alias is the anchored
 * node itself (so it reports the anchor's position). Merge keys (`<<: *a`,
 * `<<: [*a, *b]`) are applied while building the mapping: the merged pairs
 * appear at the position of the `<<` key, and a merged key never overrides
 * a key written explicitly in the mapping or merged earlier. Duplicate
 * explicit keys are kept in order: detecting them is up to the consumer.
 *
 * Only one document is accepted: a second document is an error (yaml.v2
 * silently ignores everything after the first one; sidewatch refuses to
 * guess). An empty stream gives a null root.
 *
 * Limits (inputs are untrusted; alias bombs expand exponentially):
 * YAMLCONF_MAX_INPUT bytes, YAMLCONF_MAX_DEPTH nesting levels,
 * YAMLCONF_MAX_NODES nodes as written, and YAMLCONF_MAX_EXPANDED units once
 * every alias is counted as a full copy, where a node is one unit plus one
 * per YAMLCONF_EXPANDED_BYTES bytes of its text. That bounds both any walk
 * over the tree and the text a consumer copies out of it (an alias of a
 * long string repeated many times is refused). */
#ifndef SIDEWATCH_YAMLCONF_H
#define SIDEWATCH_YAMLCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define YAMLCONF_MAX_INPUT (64u * 1024 * 1024)
#define YAMLCONF_MAX_DEPTH 256
#define YAMLCONF_MAX_NODES (1u << 21)
#define YAMLCONF_MAX_EXPANDED (1u << 23)
#define YAMLCONF_EXPANDED_BYTES 16

enum yamlconf_kind {
    YAMLCONF_NULL,
    YAMLCONF_SCALAR,
    YAMLCONF_SEQ,
    YAMLCONF_MAP,
};

typedef struct yamlconf_node yamlconf_node;

typedef struct yamlconf_pair {
    const yamlconf_node *key;
    const yamlconf_node *value;
} yamlconf_pair;

struct yamlconf_node {
    enum yamlconf_kind kind;
    uint32_t line, col; /* 1-based, of the node's first character */
    /* Short form for the YAML core tags ("!!str", "!!int", "!!float",
     * "!!bool", "!!null", "!!binary", "!!merge", "!!seq", "!!map"),
     * otherwise the tag as written. Never NULL. */
    const char *tag;
    /* Scalars and nulls: the text (after !!binary decoding), NUL-terminated;
     * len excludes the terminator and may count embedded NULs. "" for
     * sequences and mappings. */
    const char *str;
    size_t len;
    bool quoted;                       /* scalar written quoted or as a block (| >), not plain */
    size_t n;                          /* number of items (sequence) or pairs (mapping) */
    const yamlconf_node *const *items; /* sequence items */
    const yamlconf_pair *pairs;        /* mapping pairs, in document order */
};

typedef struct yamlconf_doc yamlconf_doc;

/* Parses text[0..len). `source` names the input in messages. On success
 * returns 0 and *out (caller frees with yamlconf_free). On failure returns
 * -EINVAL (syntax error, bad alias, bad !!binary, a limit exceeded, more
 * than one document) or -E2BIG (input over YAMLCONF_MAX_INPUT), *out is
 * NULL, and one line "<source>:<line>:<col>: <problem>" is appended to err
 * (if err is non-NULL), e.g.
 * "prometheus.yml:3:9: mapping values are not allowed in this context". */
int yamlconf_parse(const char *text, size_t len, const char *source, yamlconf_doc **out, buf *err);
/* Frees a document and every node in it. NULL is a no-op. */
void yamlconf_free(yamlconf_doc *doc);

/* The root node (a null node for an empty stream). Borrowed from doc. */
const yamlconf_node *yamlconf_root(const yamlconf_doc *doc);

/* ---- helpers for consumers ---------------------------------------------- */

/* True for NULL pointers and null nodes. */
bool yamlconf_is_null(const yamlconf_node *n);
/* True if n is a scalar or null node whose text equals s (NUL-free). */
bool yamlconf_str_eq(const yamlconf_node *n, const char *s);

/* The value of the first pair in `map` whose key is a scalar equal to key,
 * or NULL (also when map is not a mapping). If key_out is non-NULL it gets
 * the key node. Borrowed. */
const yamlconf_node *yamlconf_map_get(const yamlconf_node *map, const char *key,
                                      const yamlconf_node **key_out);

/* Typed reading of scalars, as yaml.v2 decodes into Go values. Each returns
 * 0, or -EINVAL if the node does not hold that type (for example a quoted
 * "true" is a string, not a bool) and -ERANGE if the number does not fit.
 * Nothing is written on failure. */
int yamlconf_bool(const yamlconf_node *n, bool *out);
/* Integers; a float with an integral part in range is truncated, as yaml.v2
 * does when decoding a float into an int. */
int yamlconf_int64(const yamlconf_node *n, int64_t *out);
int yamlconf_uint64(const yamlconf_node *n, uint64_t *out);
/* Floats; integers are converted. */
int yamlconf_float(const yamlconf_node *n, double *out);

/* Appends yaml.v2's type error for a node that cannot be decoded into the
 * Go type `go_type`: "cannot unmarshal !!str `abc` into uint",
 * "cannot unmarshal !!seq into string" (long values are shortened to
 * 7 characters and "..."). */
void yamlconf_type_error(buf *out, const yamlconf_node *n, const char *go_type);

/* "null", "scalar", "sequence" or "mapping". */
const char *yamlconf_kind_name(enum yamlconf_kind k);

#endif
