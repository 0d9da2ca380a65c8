/* libFuzzer target: config_load_string (and so yamlconf) on arbitrary
 * input. Loads must either succeed or fail with at least one error line,
 * never crash, leak or hang; a loaded config is also exercised a little.
 *
 * Build from the repository root with clang and -fsanitize=fuzzer,address,
 * undefined, linking every agent/ and exporter/ source except agent/main.c
 * with yaml-0.1 and libpcre2-8; seed it with ../shared/conformance/config/
 * and tests/data/config/ (run e.g. with -max_len=65536). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    buf err, warn;
    buf_init(&err, BUF_UNLIMITED);
    buf_init(&warn, BUF_UNLIMITED);
    /* The first byte picks strict or lenient loading. */
    config_load_opts opts = {.unsupported_as_warnings = size > 0 && (data[0] & 1),
                             .warnings = &warn};
    config *c = NULL;
    int rc = config_load_string_opts((const char *)data, size, "fuzz.yml", &opts, &c, &err);
    if (rc == 0) {
        if (!c || err.len != 0) abort();
        for (size_t i = 0; i < c->n_scrape_configs; i++) {
            const config_scrape *s = &c->scrape_configs[i];
            if (config_find_job(c, s->job_name) == NULL) abort();
            if (s->scrape_timeout_ms > s->scrape_interval_ms) abort();
            if (s->n_scrape_protocols == 0) abort();
            for (size_t k = 0; k < s->n_relabel_configs; k++) {
                if (!s->relabel_configs[k].regex) abort();
            }
        }
        config_unref(config_ref(c));
        config_unref(c);
    } else {
        if (c || err.len == 0) abort();
    }
    buf_cleanup(&err);
    buf_cleanup(&warn);
    return 0;
}
