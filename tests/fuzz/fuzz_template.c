/* libFuzzer target for agent/template: expands the input as an alert
 * template (with labels, external labels, a value and a fake `query` that
 * returns two samples) and checks the contract: the result is 0 or -EINVAL,
 * an error reads "template: NAME...", output stays within the 1 MiB limit,
 * and template_check() agrees with template_expand() about parse errors
 * (same message). Sanitizers catch the rest; the limits in template.c keep
 * every input bounded in time and memory.
 *
 * Built and run by `make fuzz`, or: make fuzz-template FUZZ_SECONDS=60
 * (seeded with the real-world annotation templates of tests/data/template/).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "labels.h"
#include "mem.h"
#include "template.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

static labels *mk(const char *const *kv)
{
    labels_builder b;
    labels_builder_init(&b);
    for (size_t i = 0; kv[i]; i += 2)
        labels_builder_set(&b, kv[i], strlen(kv[i]), kv[i + 1], strlen(kv[i + 1]));
    labels *ls = labels_builder_finish(&b, NULL);
    labels_builder_cleanup(&b);
    return ls;
}

static int fake_query(void *ctx, const char *expr, int64_t t_ms, template_query_result *out,
                      buf *err)
{
    (void)ctx, (void)t_ms;
    if (strstr(expr, "error")) {
        buf_puts(err, "query failed");
        return -EINVAL;
    }
    static const char *const a[] = {"__name__", "up", "instance", "b:9100", "job", "node", NULL};
    static const char *const b[] = {"__name__", "up", "instance", "a:9100", "__value__", "x", NULL};
    out->n = strstr(expr, "empty") ? 0 : 2;
    out->v = mem_calloc(2, sizeof *out->v);
    if (out->n) {
        out->v[0].metric = mk(a);
        out->v[0].value = 0;
        out->v[1].metric = mk(b);
        out->v[1].value = 1.5;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const kv[] = {"alertname", "HighLatency", "instance", "foo.example.com:9090",
                                     "job",       "api",         "severity", "critical",
                                     NULL};
    static const char *const ext[] = {"cluster", "eu-1", NULL};
    labels *ls = mk(kv), *el = mk(ext);
    template_data d = {
        .labels = ls,
        .value = 0.9876,
        .external_labels = el,
        .external_url = "http://sidewatch:9277/prefix",
        .time_ms = 1700000000000LL,
        .query = fake_query,
    };
    /* An exact-size copy, so the sanitizer sees any overread. */
    char *t = malloc(size ? size : 1);
    CHECK(t);
    if (size) memcpy(t, data, size);

    buf out, err, cerr;
    buf_init(&out, BUF_UNLIMITED);
    buf_init(&err, BUF_UNLIMITED);
    buf_init(&cerr, BUF_UNLIMITED);
    int rc = template_expand("__alert_Fuzz", t, size, &d, &out, &err);
    CHECK(rc == 0 || rc == -EINVAL);
    CHECK(out.len <= 1024 * 1024);
    if (rc == 0)
        CHECK(err.len == 0);
    else
        CHECK(err.len > 0 && strncmp(buf_cstr(&err), "template: ", 10) == 0);

    int crc = template_check("__alert_Fuzz", t, size, &cerr);
    CHECK(crc == 0 || crc == -EINVAL);
    if (crc != 0) {
        /* a parse error fails the expansion with the same message */
        CHECK(rc == -EINVAL);
        CHECK(cerr.len == err.len && memcmp(buf_cstr(&cerr), buf_cstr(&err), err.len) == 0);
    }
    buf_cleanup(&out);
    buf_cleanup(&err);
    buf_cleanup(&cerr);
    free(t);
    labels_free(ls);
    labels_free(el);
    return 0;
}
