/* libFuzzer target: rulefmt_parse (and so yamlconf and the PromQL parser)
 * on arbitrary input, plus rulefmt_glob's pattern check on the input's first
 * line. A parse must either succeed with a consistent file or fail with at
 * least one error line, never crash, leak or hang.
 *
 * Built by `make fuzz-rulefmt` (clang, -fsanitize=fuzzer,address,undefined,
 * every agent/ and exporter/ source but agent/main.c); seeded with
 * ../shared/conformance/rulefmt/ and ../shared/conformance/rules-unittest/. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "rulefmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    /* The input's length picks the options, so seeds stay plain YAML. */
    rulefmt_options o = {.ignore_unknown_fields = size & 1, .legacy_name_validation = size & 2};
    rulefmt_file *f = NULL;
    int rc = rulefmt_parse((const char *)data, size, "fuzz.yml", &o, &f, &err);
    if (rc == 0) {
        if (!f || err.len != 0) abort();
        for (size_t i = 0; i < f->n_groups; i++) {
            const rulefmt_group *g = &f->groups[i];
            if (!g->name || !g->labels) abort();
            for (size_t k = 0; k < g->n_rules; k++) {
                const rulefmt_rule *r = &g->rules[k];
                if ((r->record == NULL) == (r->alert == NULL)) abort();
                if (!r->expr || !*r->expr || !r->labels || !r->annotations) abort();
                if (r->record && (r->for_ms || r->keep_firing_for_ms)) abort();
            }
        }
        rulefmt_file_free(f);
    } else {
        if (f || err.len == 0 || rc != -EINVAL) abort();
    }
    buf_cleanup(&err);

    /* The first line as a rule_files pattern, under a directory that does
     * not exist (so only the syntax check and glob(3) run). Leading '/'s
     * are skipped: an absolute pattern would glob the real file system
     * (a pattern of five wildcard levels under / took 17 s). */
    size_t skip = 0;
    while (skip < size && data[skip] == '/')
        skip++;
    size_t n = 0;
    while (skip + n < size && n < 256 && data[skip + n] != '\n' && data[skip + n] != '\0')
        n++;
    char *pat = mem_strndup((const char *)data + skip, n);
    char *pats[1] = {pat};
    char **paths = NULL;
    size_t np = 0;
    buf gerr;
    buf_init(&gerr, BUF_UNLIMITED);
    rc = rulefmt_glob(pats, 1, "/nonexistent-wip-rulefmt", &paths, &np, &gerr);
    if (rc == 0) {
        for (size_t i = 0; i < np; i++)
            mem_free(paths[i]);
        mem_free(paths);
    } else if (rc != -EINVAL || paths || np || gerr.len == 0) {
        abort();
    }
    buf_cleanup(&gerr);
    mem_free(pat);
    return 0;
}
