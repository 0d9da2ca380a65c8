/* libFuzzer target: the promqltest DSL parser (promqltest_parse) and the
 * series notation (promqltest_parse_series) on arbitrary input. A parse
 * either succeeds or fails with a line number and a message; never a crash,
 * leak or hang. A parsed script is walked: every expanded value must be of
 * a known kind, every expectation consistent.
 *
 * Build from the repository root with clang and -fsanitize=fuzzer,address,
 * undefined, linking every agent/ and exporter/ source except agent/main.c
 * with libpcre2-8 and libcrypto; seed it with ../shared/conformance/promql/
 * and tests/data/promql/ (run e.g. with -max_len=65536). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "labels.h"
#include "promql/promqltest.h"

static void check_series(const promqltest_series *s)
{
    for (size_t i = 0; i < s->n; i++) {
        const promqltest_item *it = &s->items[i];
        if (it->kind != PROMQLTEST_ITEM_OMITTED && it->kind != PROMQLTEST_ITEM_FLOAT &&
            it->kind != PROMQLTEST_ITEM_HISTOGRAM)
            abort();
        if (it->kind == PROMQLTEST_ITEM_HISTOGRAM && !it->h) abort();
        if (it->kind == PROMQLTEST_ITEM_HISTOGRAM && !s->histograms) abort();
    }
    if (!s->ls) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    promqltest_script *s = NULL;
    uint32_t line = 0;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    int rc = promqltest_parse(text, size, &s, &line, &err);
    if (rc == 0) {
        if (!s || err.len) abort();
        size_t evals = 0;
        for (size_t i = 0; i < s->n_cmds; i++) {
            const promqltest_cmd *c = &s->cmds[i];
            if (c->kind == PROMQLTEST_CMD_LOAD) {
                for (size_t k = 0; k < c->load->n_series; k++)
                    check_series(&c->load->series[k]);
            } else if (c->kind == PROMQLTEST_CMD_EVAL) {
                const promqltest_eval *ev = c->eval;
                evals++;
                if (ev->range && ev->end_ms < ev->start_ms) abort();
                if (!ev->expr || ev->expr[ev->expr_len] != '\0' || !ev->expr_len) abort();
                for (size_t k = 0; k < ev->n_expected; k++)
                    check_series(&ev->expected[k].s);
            }
        }
        if (evals != s->n_evals) abort();
        promqltest_script_free(s);
    } else {
        if (s || line == 0 || err.len == 0) abort();
    }
    /* The whole input as one series line. */
    arena a;
    arena_init(&a, 0);
    size_t budget = PROMQLTEST_MAX_FILE_ITEMS;
    promqltest_series ser;
    buf_reset(&err);
    if (promqltest_parse_series(&a, text, size, &budget, &ser, &err) == 0) {
        check_series(&ser);
        labels_free(ser.ls);
    } else if (err.len == 0) {
        abort();
    }
    arena_cleanup(&a);
    buf_cleanup(&err);
    return 0;
}
