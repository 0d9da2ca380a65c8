/* libFuzzer target for agent/cstats.c's Docker stats API parser: parses the
 * input as a stats body, checks the record's invariants (a failed parse
 * leaves nothing known; counts within the caps; strings terminated), runs
 * the derived numbers and feeds the record through cadvisor.c's families
 * (label building from interface names and devices).
 *
 *   make fuzz-docker_stats FUZZ_SECONDS=60
 *
 * Seeds: every stats capture in ../shared/docker and tests/data/docker-stats. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cadvisor.h"
#include "cstats.h"

static int count_sample(void *ctx, const cadvisor_family *f, const labels *ls, double v,
                        int64_t t_ms)
{
    size_t *n = ctx;
    (void)t_ms;
    /* Every set has __name__ = the family, sorted names, non-empty values. */
    size_t len;
    const char *name = labels_metric_name(ls, &len);
    if (len != strlen(f->name) || memcmp(name, f->name, len) != 0) __builtin_trap();
    for (uint32_t i = 0; i < ls->n; i++) {
        if (ls->v[i].value_len == 0) __builtin_trap();
        if (i > 0 && strcmp(ls->v[i - 1].name, ls->v[i].name) >= 0) __builtin_trap();
    }
    *n += ls->n + (v == v);
    return 0;
}

static void check_str(const char *s, size_t cap)
{
    if (!memchr(s, '\0', cap)) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size copy so reads past the end are caught. */
    char *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    cstats *s = malloc(sizeof *s);
    buf err;
    buf_init(&err, 4096);
    int rc = cstats_parse(s, copy, size, &err);
    check_str(s->id, sizeof s->id);
    check_str(s->name, sizeof s->name);
    if (s->name[0] == '/') __builtin_trap();
    if (rc != 0) {
        if (s->known != 0 || s->n_ifaces != 0 || s->n_blkdev != 0) __builtin_trap();
        if (err.len == 0) __builtin_trap(); /* every error says why */
    }
    if (s->n_ifaces > CSTATS_MAX_IFACES || s->n_blkdev > CSTATS_MAX_BLKDEV ||
        s->cpu.n_percpu > CSTATS_MAX_CPUS)
        __builtin_trap();
    for (uint32_t i = 0; i < s->n_ifaces; i++) {
        check_str(s->ifaces[i].name, sizeof s->ifaces[i].name);
        if (!s->ifaces[i].name[0]) __builtin_trap();
    }
    if (cstats_working_set(s) > s->mem.usage) __builtin_trap();
    volatile double sink = cstats_cli_cpu_percent(s) + cstats_cli_mem_percent(s);
    uint64_t a, b;
    cstats_cli_net_io(s, &a, &b);
    cstats_cli_block_io(s, &a, &b);
    sink += (double)cstats_cli_mem_used(s) + (double)a + (double)b;
    (void)sink;

    if (rc == 0) {
        cadvisor_container c = {.id = s->id, .name = s->name, .stats = s, .last_seen = 1};
        cadvisor_options o = {.percpu = size & 1};
        size_t n = 0;
        cadvisor_sink sk = {NULL, count_sample, &n};
        if (cadvisor_collect(&c, 1, NULL, &o, &sk) != 0) __builtin_trap();
    }
    buf_cleanup(&err);
    free(s);
    free(copy);
    return 0;
}
