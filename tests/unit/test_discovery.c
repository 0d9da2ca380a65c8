/* Unit tests for discovery: static groups, file_sd files in JSON and YAML,
 * glob patterns, __meta_filepath, keeping the last good groups of a broken
 * file, change detection, and the Accept header scrape builds. */
#include "testutil.h"

#include <stdlib.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "discovery.h"
#include "mem.h"
#include "scrape.h"

static char dir[256];

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static config *load(const char *yaml)
{
    config *c = NULL;
    buf err;
    buf_init(&err, 1 << 16);
    char src[512];
    snprintf(src, sizeof src, "%s/prometheus.yml", dir);
    if (config_load_string(yaml, strlen(yaml), src, &c, &err) < 0) fail_msg("%s", buf_cstr(&err));
    buf_cleanup(&err);
    return c;
}

/* "addr[label=value,...]" for every target of job j, joined by spaces. */
static char *describe(discovery *d, size_t j)
{
    const config_target_group *const *gs;
    size_t n = discovery_groups(d, j, &gs);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    for (size_t g = 0; g < n; g++) {
        for (size_t t = 0; t < gs[g]->n_targets; t++) {
            if (out.len) buf_putc(&out, ' ');
            buf_puts(&out, gs[g]->targets[t]);
            size_t len;
            const char *env = labels_get(gs[g]->labels, "env", 3, &len);
            if (env) buf_printf(&out, "[env=%s]", env);
            const char *fp = labels_get(gs[g]->labels, "__meta_filepath", 15, &len);
            if (fp) buf_printf(&out, "[file=%s]", strrchr(fp, '/') + 1);
        }
    }
    return buf_detach(&out, NULL);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sidewatch-test-discovery-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_static_and_files(void **state)
{
    (void)state;
    write_file("a.json", "[{\"targets\": [\"h1:1\", \"h2:2\"], \"labels\": {\"env\": \"prod\"}}]");
    write_file("b.yml", "- targets: ['h3:3']\n  labels:\n    env: test\n");
    write_file("ignored.txt", "- targets: ['nope:1']\n");
    config *c = load("scrape_configs:\n"
                     "  - job_name: s\n    static_configs:\n      - targets: ['s:1']\n"
                     "  - job_name: f\n    static_configs:\n      - targets: ['s:2']\n"
                     "    file_sd_configs:\n      - files: ['*.json', '*.yml']\n");
    discovery *d = discovery_new(NULL);
    discovery_apply(d, c);
    char *s = describe(d, 0);
    assert_string_equal(s, "s:1");
    mem_free(s);
    s = describe(d, 1);
    assert_string_equal(s, "s:2 h1:1[env=prod][file=a.json] h2:2[env=prod][file=a.json] h3:3[env=test][file=b.yml]");
    mem_free(s);
    assert_false(discovery_refresh(d, 1000)); /* nothing changed */

    /* A change is seen (inotify), a broken file keeps its groups, an empty
     * .json is broken too, and a removed file's targets go. */
    write_file("b.yml", "- targets: ['h4:4']\n");
    assert_true(discovery_refresh(d, 2000));
    s = describe(d, 1);
    assert_string_equal(s, "s:2 h1:1[env=prod][file=a.json] h2:2[env=prod][file=a.json] h4:4[file=b.yml]");
    mem_free(s);
    write_file("a.json", "[{\"targets\": [");
    assert_false(discovery_refresh(d, 3000));
    write_file("a.json", "  \n");
    assert_false(discovery_refresh(d, 3500));
    write_file("a.json", "[{\"targets\": [\"http://bad\"]}]");
    assert_false(discovery_refresh(d, 3600));
    char path[512];
    snprintf(path, sizeof path, "%s/b.yml", dir);
    unlink(path);
    assert_true(discovery_refresh(d, 4000));
    s = describe(d, 1);
    assert_string_equal(s, "s:2 h1:1[env=prod][file=a.json] h2:2[env=prod][file=a.json]");
    mem_free(s);
    discovery_free(d);
    config_unref(c);
}

static void test_accept_header(void **state)
{
    (void)state;
    enum config_scrape_protocol all[] = {CONFIG_PROTO_OPENMETRICS_1_0_0, CONFIG_PROTO_OPENMETRICS_0_0_1,
                                         CONFIG_PROTO_PROMETHEUS_TEXT_1_0_0,
                                         CONFIG_PROTO_PROMETHEUS_TEXT_0_0_4};
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    scrape_accept_header(all, 4, &b);
    assert_string_equal(buf_cstr(&b),
                        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
                        "application/openmetrics-text;version=0.0.1;q=0.5,"
                        "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
                        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2");
    buf_reset(&b);
    enum config_scrape_protocol proto_first[] = {CONFIG_PROTO_PROMETHEUS_PROTO,
                                                 CONFIG_PROTO_PROMETHEUS_TEXT_0_0_4};
    scrape_accept_header(proto_first, 2, &b);
    assert_string_equal(buf_cstr(&b),
                        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                        "encoding=delimited;q=0.6,text/plain;version=0.0.4;q=0.5,*/*;q=0.4");
    buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_static_and_files, setup, teardown),
        cmocka_unit_test(test_accept_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
