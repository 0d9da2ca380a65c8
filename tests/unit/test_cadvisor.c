/* Unit tests for agent/cadvisor.c: the exact series (names, labels, values)
 * for captures and cgroup fixtures against tests/data/cadvisor/<case>.txt,
 * label sanitizing and selection, HELP/TYPE through the text writer, the
 * sink contract, and the same sink appending to the real store.
 *
 * The expected files hold one series per line, as labels_format_metric()
 * writes it, then the value; "# family <name> <type>" lines mark where the
 * sink's family callback ran. Set SIDEWATCH_UPDATE_EXPECTED=1 to rewrite
 * them (then review the diff). */
#include "testutil.h"

#include <errno.h>
#include <unistd.h>

#include "buf.h"
#include "cadvisor.h"
#include "cgroup.h"
#include "cstats.h"
#include "expfmt.h"
#include "labels.h"
#include "mem.h"
#include "store.h"
#include "textwrite.h"

#define DATA "tests/data/cadvisor/"
#define APP1_ID "c49a6c5f2635fc85b588f3d1e89d1f708a0c2959eee57ebe01f5d1002194265b"
#define V2_ID "ede54ee1afda366ab42f824e8a5ffd195155d853ceaec74a927f249ea270c743"

/* ---- a sink that lists series ---------------------------------------------------- */

typedef struct lister {
    buf out;
    size_t samples, families;
    int stop_after; /* return -ECANCELED at this sample (0: never) */
} lister;

static int list_family(void *ctx, const cadvisor_family *f)
{
    lister *l = ctx;
    l->families++;
    buf_printf(&l->out, "# family %s %s\n", f->name, expfmt_type_name(f->type));
    return 0;
}

static int list_sample(void *ctx, const cadvisor_family *f, const labels *ls, double v,
                       int64_t t_ms)
{
    lister *l = ctx;
    /* The family's name is the series' __name__. */
    size_t len;
    const char *name = labels_metric_name(ls, &len);
    assert_int_equal(len, strlen(f->name));
    assert_memory_equal(name, f->name, len);
    labels_format_metric(ls, &l->out);
    char num[EXPFMT_FLOAT_MAX];
    expfmt_format_float(v, num);
    buf_printf(&l->out, " %s", num);
    if (t_ms) buf_printf(&l->out, " @%lld", (long long)t_ms);
    buf_putc(&l->out, '\n');
    l->samples++;
    if (l->stop_after && (int)l->samples == l->stop_after) return -ECANCELED;
    return 0;
}

/* ---- the cases ------------------------------------------------------------------- */

static const char *const compose_keys[] = {"com.docker.compose.project",
                                           "com.docker.compose.service", "com.example.metrics.path",
                                           "com.example.metrics.port", "prometheus.io/scrape"};
static const char *const compose_values[] = {"demo", "app", "/metrics", "9102", "true"};

/* Keys that collide after sanitizing, non-ASCII, an empty value. */
static const char *const odd_keys[] = {"a_b", "a.b", "\xc3\xa9-x", "empty", "9lives"};
static const char *const odd_values[] = {"second", "first", "accent", "", "cat"};

static int fake_device_name(void *ctx, uint32_t major, uint32_t minor, char *out, size_t n)
{
    (void)ctx;
    if (major == 254 && minor == 0) {
        snprintf(out, n, "/dev/vda");
        return 0;
    }
    return -ENOENT;
}

typedef struct cadvisor_case {
    const char *name;    /* expected file: DATA "<name>.txt" */
    const char *capture; /* stats JSON in ../shared, or NULL */
    const char *cgroup_root, *cgroup_path;
    unsigned cgroup_flags;
    bool shared_root; /* cgroup_root is under ../shared */
    cadvisor_container meta;
    cadvisor_options opts;
    bool machine;
} cadvisor_case;

static const cadvisor_case cases[] = {
    /* Real dockerd v1 capture + blkio; one selected label. */
    {"example-v1",
     "docker/example-stats-cgroupv1.json",
     NULL,
     NULL,
     0,
     false,
     {.id = "/docker/" APP1_ID,
      .name = "/app1",
      .image = "local/mini:latest",
      .n_labels = 5,
      .label_keys = compose_keys,
      .label_values = compose_values,
      .start_time = 1795613975,
      .last_seen = 1795613984,
      .t_ms = 1795613984265},
     {.label_keys = (const char *const[]){"com.docker.compose.service"}, .n_label_keys = 1},
     false},
    /* cgroup v2 shape, every compose label, a device name, healthy */
    {"example-v2",
     "docker/example-stats-cgroupv2.json",
     NULL,
     NULL,
     0,
     false,
     {.id = "/system.slice/docker-" V2_ID ".scope",
      .name = "app1",
      .image = "nginx:1.27",
      .n_labels = 5,
      .label_keys = compose_keys,
      .label_values = compose_values,
      .health = "healthy",
      .last_seen = 1737035722},
     {.all_labels = true, .device_name = fake_device_name},
     true},
    /* Podman quirks; per-CPU usage; labels that sanitize oddly */
    {"podman-percpu",
     "docker/podman-stats-oneshot.json",
     NULL,
     NULL,
     0,
     false,
     {.id = "/libpod_parent/libpod-"
            "a15973aadee909f0323df499a9b149c15eaaa34f85362c27ec9b95bf75b33f72",
      .name = "app1",
      .image = "localhost/local/mini:latest",
      .n_labels = 5,
      .label_keys = odd_keys,
      .label_values = odd_values,
      .health = "starting"},
     {.all_labels = true, .percpu = true},
     false},
    /* The cgroup v2 fixture read by cgroup.c: quota, shares, swap, OOM,
     * processes, two devices (one unnamed). */
    {"cgroup-v2",
     NULL,
     "tests/data/cgroupv2",
     "/system.slice/docker-" V2_ID ".scope",
     CGROUP_READ_NETWORK,
     false,
     {.id = "/system.slice/docker-" V2_ID ".scope",
      .name = "app1",
      .image = "nginx:1.27",
      .start_time = 1737035700.5,
      .last_seen = 1737035722},
     {.device_name = fake_device_name},
     false},
    /* The real cgroup v1 snapshot with per-CPU usage. */
    {"cgroup-v1-snapshot",
     NULL,
     "docker/cgroupv1-snapshot/sidecar-test",
     "/",
     CGROUP_READ_PERCPU | CGROUP_READ_PROCS,
     true,
     {.id = "/sidecar-test", .name = "sidecar-test", .last_seen = 1795613000},
     {.percpu = true},
     false},
};

static char *render(const cadvisor_case *c)
{
    cstats s;
    char root[1024], fsroot[4096], proc[1100], sys[1100];
    if (c->capture) {
        size_t len = 0;
        char path[4096];
        char *d = tu_read_file(tu_shared_path(path, sizeof path, c->capture), &len);
        if (!d) fail_msg("cannot read %s", path);
        assert_int_equal(cstats_parse(&s, d, len, NULL), 0);
        free(d);
    } else {
        if (c->shared_root) {
            tu_shared_path(fsroot, sizeof fsroot, c->cgroup_root);
            snprintf(root, sizeof root, "tests/data/cgroupv2");
        } else {
            snprintf(root, sizeof root, "%s", c->cgroup_root);
            snprintf(fsroot, sizeof fsroot, "%s/fs", c->cgroup_root);
        }
        snprintf(proc, sizeof proc, "%s/proc", root);
        snprintf(sys, sizeof sys, "%s/sys", root);
        cgroup_options o = {.root = fsroot, .proc_root = proc, .sys_root = sys};
        cgroup_fs *fs;
        assert_int_equal(cgroup_open(&fs, &o, NULL), 0);
        assert_int_equal(cgroup_read(fs, c->cgroup_path, c->cgroup_flags, &s), 0);
        cgroup_free(fs);
    }
    cadvisor_container meta = c->meta;
    meta.stats = &s;
    cstats_machine m = {.cpu_cores = 2, .memory_bytes = 25276510208ull};
    snprintf(m.boot_id, sizeof m.boot_id, "4ca9b76f-f754-4d92-ad3d-17e597c1c9d1");
    lister l = {0};
    buf_init(&l.out, BUF_UNLIMITED);
    cadvisor_sink sink = {list_family, list_sample, &l};
    assert_int_equal(cadvisor_collect(&meta, 1, c->machine ? &m : NULL, &c->opts, &sink), 0);
    return buf_detach(&l.out, NULL);
}

static void run_cases(bool shared)
{
    bool update = getenv("SIDEWATCH_UPDATE_EXPECTED") != NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const cadvisor_case *c = &cases[i];
        if ((c->capture || c->shared_root) != shared) continue;
        char path[256];
        snprintf(path, sizeof path, DATA "%s.txt", c->name);
        print_message("  %s\n", path);
        char *got = render(c);
        if (update) {
            FILE *f = fopen(path, "w");
            assert_non_null(f);
            fputs(got, f);
            fclose(f);
        }
        char *want = tu_read_file(path, NULL);
        if (!want) fail_msg("cannot read %s", path);
        if (strcmp(got, want) != 0) {
            print_message("got:\n%s", got);
            fail_msg("%s differs (SIDEWATCH_UPDATE_EXPECTED=1 rewrites it)", path);
        }
        free(want);
        free(got);
    }
}

/* Cases over the captures and the v1 snapshot in ../shared. */
static void test_exact_series_shared(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/example-stats-cgroupv1.json");
    TU_REQUIRE_SHARED("docker/cgroupv1-snapshot/sidecar-test");
    run_cases(true);
}

/* Cases over fixtures in this repository. */
static void test_exact_series_local(void **state)
{
    (void)state;
    run_cases(false);
}

/* ---- labels ---------------------------------------------------------------------- */

static void test_sanitize(void **state)
{
    (void)state;
    static const char *const table[][2] = {
        {"com.docker.compose.service", "com_docker_compose_service"},
        {"prometheus.io/scrape", "prometheus_io_scrape"},
        {"already_ok_123", "already_ok_123"},
        {"a-b c:d", "a_b_c_d"},
        {"\xc3\xa9t\xc3\xa9", "_t_"},           /* one '_' per character, as Go's regexp */
        {"\xe2\x82\xac\xf0\x9f\x90\xb3", "__"}, /* 3- and 4-byte characters */
        {"\xff\xfe", "__"},                     /* invalid bytes: one each */
        {"\xe2\x82", "__"},                     /* truncated sequence */
        {"\xed\xa0\x80", "___"},                /* a surrogate is invalid */
        {"", ""},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        buf b;
        buf_init(&b, 64);
        assert_int_equal(cadvisor_sanitize_label(table[i][0], strlen(table[i][0]), &b), 0);
        assert_string_equal(buf_cstr(&b), table[i][1]);
        buf_cleanup(&b);
    }
    buf b;
    buf_init(&b, 3);
    assert_int_equal(cadvisor_sanitize_label("abcd", 4, &b), -E2BIG);
    buf_cleanup(&b);
}

/* The base label set of one container under several selections. */
static char *one_series(const cadvisor_container *c, const cadvisor_options *o)
{
    lister l = {0};
    buf_init(&l.out, BUF_UNLIMITED);
    l.stop_after = 1;
    cadvisor_sink sink = {NULL, list_sample, &l};
    assert_int_equal(cadvisor_collect(c, 1, NULL, o, &sink), -ECANCELED);
    return buf_detach(&l.out, NULL);
}

static void test_label_selection(void **state)
{
    (void)state;
    cadvisor_container c = {.id = "/docker/x",
                            .name = "/web",
                            .image = "img",
                            .n_labels = 5,
                            .label_keys = compose_keys,
                            .label_values = compose_values,
                            .last_seen = 7};
    /* only metadata: container_last_seen is the first (and only) family */
    char *s = one_series(&c, NULL);
    assert_string_equal(s, "container_last_seen{id=\"/docker/x\",image=\"img\",name=\"web\"} 7\n");
    free(s);
    cadvisor_options o = {.label_keys = (const char *const[]){"prometheus.io/scrape", "nope",
                                                              "com.docker.compose.project"},
                          .n_label_keys = 3};
    s = one_series(&c, &o);
    assert_string_equal(s, "container_last_seen{container_label_com_docker_compose_project="
                           "\"demo\",container_label_prometheus_io_scrape=\"true\",id=\"/docker/"
                           "x\",image=\"img\",name=\"web\"} 7\n");
    free(s);
    o = (cadvisor_options){.all_labels = true};
    c.label_keys = odd_keys;
    c.label_values = odd_values;
    s = one_series(&c, &o);
    /* "a.b" < "a_b": its value wins; "é-x" -> "__x"; the empty one is
     * absent; a key starting with a digit is fine after the prefix. */
    assert_string_equal(s, "container_last_seen{container_label_9lives=\"cat\","
                           "container_label___x=\"accent\",container_label_a_b=\"first\","
                           "id=\"/docker/x\",image=\"img\",name=\"web\"} 7\n");
    free(s);
    /* Missing metadata: labels absent, not empty. */
    cadvisor_container bare = {.last_seen = 8};
    s = one_series(&bare, &o);
    assert_string_equal(s, "container_last_seen 8\n");
    free(s);
}

/* ---- collection contract ----------------------------------------------------------- */

static void test_metadata_only_and_machine(void **state)
{
    (void)state;
    cadvisor_container cs[2] = {
        {.id = "/docker/a", .name = "a", .start_time = 100, .last_seen = 200},
        {.id = "/docker/b", .name = "b", .last_seen = 201},
    };
    cstats_machine m = {.cpu_cores = 4, .memory_bytes = 1024};
    lister l = {0};
    buf_init(&l.out, BUF_UNLIMITED);
    cadvisor_sink sink = {list_family, list_sample, &l};
    assert_int_equal(cadvisor_collect(cs, 2, &m, NULL, &sink), 0);
    /* Family by family, containers in order; no boot id: no label. */
    assert_string_equal(buf_cstr(&l.out),
                        "# family container_last_seen gauge\n"
                        "container_last_seen{id=\"/docker/a\",name=\"a\"} 200\n"
                        "container_last_seen{id=\"/docker/b\",name=\"b\"} 201\n"
                        "# family container_start_time_seconds gauge\n"
                        "container_start_time_seconds{id=\"/docker/a\",name=\"a\"}"
                        " 100\n"
                        "# family machine_cpu_cores gauge\n"
                        "machine_cpu_cores 4\n"
                        "# family machine_memory_bytes gauge\n"
                        "machine_memory_bytes 1024\n");
    /* Nothing at all: no families announced. */
    buf_reset(&l.out);
    l.families = l.samples = 0;
    assert_int_equal(cadvisor_collect(NULL, 0, NULL, NULL, &sink), 0);
    assert_int_equal(l.families, 0);
    assert_int_equal(l.samples, 0);
    /* A stats record with nothing known: only metadata series and -1 health. */
    cstats empty;
    cstats_reset(&empty);
    cadvisor_container e = {.name = "e", .stats = &empty};
    assert_int_equal(cadvisor_collect(&e, 1, NULL, NULL, &sink), 0);
    assert_string_equal(buf_cstr(&l.out), "# family container_health_state gauge\n"
                                          "container_health_state{name=\"e\"} -1\n");
    buf_cleanup(&l.out);
}

static int failing_family(void *ctx, const cadvisor_family *f)
{
    (void)ctx;
    (void)f;
    return -EPIPE;
}

static void test_sink_errors(void **state)
{
    (void)state;
    cadvisor_container cs[3] = {{.name = "a", .last_seen = 1},
                                {.name = "b", .last_seen = 1},
                                {.name = "c", .last_seen = 1, .start_time = 1}};
    lister l = {0};
    buf_init(&l.out, BUF_UNLIMITED);
    l.stop_after = 2;
    cadvisor_sink sink = {list_family, list_sample, &l};
    assert_int_equal(cadvisor_collect(cs, 3, NULL, NULL, &sink), -ECANCELED);
    assert_int_equal(l.samples, 2); /* nothing after the error */
    cadvisor_sink bad = {failing_family, list_sample, &l};
    l.samples = 0;
    assert_int_equal(cadvisor_collect(cs, 3, NULL, NULL, &bad), -EPIPE);
    assert_int_equal(l.samples, 0);
    buf_cleanup(&l.out);
}

/* ---- the exposition sink --------------------------------------------------------- */

static void test_text_sink(void **state)
{
    (void)state;
    cstats s;
    cstats_reset(&s);
    s.known = CSTATS_CPU_USAGE | CSTATS_MEM_USAGE | CSTATS_MEM_LIMIT;
    s.cpu.total_ns = 1500000000;
    s.mem.usage = 4096;
    s.mem.limit = UINT64_MAX; /* v2 "max": exported as 0 */
    cadvisor_container c = {.id = "/docker/x",
                            .name = "x",
                            .n_labels = 1,
                            .label_keys = (const char *const[]){"a\"b"},
                            .label_values = (const char *const[]){"q\"uote\n"},
                            .health = "unhealthy",
                            .stats = &s,
                            .t_ms = 1700000000123};
    const char *want_prom =
        "# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.\n"
        "# TYPE container_cpu_usage_seconds_total counter\n"
        "container_cpu_usage_seconds_total{container_label_a_b=\"q\\\"uote\\n\",cpu=\"total\","
        "id=\"/docker/x\",name=\"x\"} 1.5 1700000000123\n"
        "# HELP container_health_state The result of the container's health check\n"
        "# TYPE container_health_state gauge\n"
        "container_health_state{container_label_a_b=\"q\\\"uote\\n\",id=\"/docker/x\",name=\"x\"}"
        " 0 1700000000123\n"
        "# HELP container_memory_usage_bytes Current memory usage in bytes, including all "
        "memory regardless of when it was accessed\n"
        "# TYPE container_memory_usage_bytes gauge\n"
        "container_memory_usage_bytes{container_label_a_b=\"q\\\"uote\\n\",id=\"/docker/x\","
        "name=\"x\"} 4096 1700000000123\n"
        "# HELP container_memory_working_set_bytes Current working set in bytes.\n"
        "# TYPE container_memory_working_set_bytes gauge\n"
        "container_memory_working_set_bytes{container_label_a_b=\"q\\\"uote\\n\",id=\"/docker/"
        "x\",name=\"x\"} 4096 1700000000123\n"
        "# HELP container_spec_memory_limit_bytes Memory limit for the container.\n"
        "# TYPE container_spec_memory_limit_bytes gauge\n"
        "container_spec_memory_limit_bytes{container_label_a_b=\"q\\\"uote\\n\",id=\"/docker/x\","
        "name=\"x\"} 0 1700000000123\n";
    cadvisor_options o = {.all_labels = true};
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    textwrite w;
    textwrite_init(&w, TEXTPARSE_PROMETHEUS, buf_sink, &b);
    cadvisor_text t = {&w, true};
    cadvisor_sink sink = {cadvisor_text_family, cadvisor_text_sample, &t};
    assert_int_equal(cadvisor_collect(&c, 1, NULL, &o, &sink), 0);
    assert_string_equal(buf_cstr(&b), want_prom);

    /* OpenMetrics: counter families lose _total in TYPE; no timestamps. */
    buf_reset(&b);
    textwrite_init(&w, TEXTPARSE_OPENMETRICS, buf_sink, &b);
    t.timestamps = false;
    o.all_labels = false;
    assert_int_equal(cadvisor_collect(&c, 1, NULL, &o, &sink), 0);
    textwrite_eof(&w);
    assert_non_null(strstr(buf_cstr(&b), "# TYPE container_cpu_usage_seconds counter\n"
                                         "container_cpu_usage_seconds_total{cpu=\"total\","
                                         "id=\"/docker/x\",name=\"x\"} 1.5\n"));
    assert_non_null(strstr(buf_cstr(&b), "container_memory_usage_bytes{id=\"/docker/x\","
                                         "name=\"x\"} 4096.0\n"));

    /* A full writer stops the collection with its error. */
    buf small;
    buf_init(&small, 100);
    textwrite_init(&w, TEXTPARSE_PROMETHEUS, buf_sink, &small);
    assert_int_equal(cadvisor_collect(&c, 1, NULL, &o, &sink), -E2BIG);
    buf_cleanup(&small);

    /* More labels than the sink's stack array. */
    enum { N = 40 };
    const char *keys[N], *vals[N];
    char kb[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(kb[i], sizeof kb[i], "k%02d", i);
        keys[i] = kb[i];
        vals[i] = "v";
    }
    cadvisor_container many = {
        .n_labels = N, .label_keys = keys, .label_values = vals, .last_seen = 1};
    buf_reset(&b);
    textwrite_init(&w, TEXTPARSE_PROMETHEUS, buf_sink, &b);
    o.all_labels = true;
    assert_int_equal(cadvisor_collect(&many, 1, NULL, &o, &sink), 0);
    assert_non_null(strstr(buf_cstr(&b), "container_label_k39=\"v\"} 1\n"));
    buf_cleanup(&b);
}

/* ---- the same sink feeding the store ------------------------------------------------ */

typedef struct store_sink {
    store *st;
    store_batch *b;
} store_sink;

static int store_family(void *ctx, const cadvisor_family *f)
{
    store_sink *s = ctx;
    store_batch_metadata(s->b, f->name, f->type, f->help, "");
    return 0;
}

static int store_sample_fn(void *ctx, const cadvisor_family *f, const labels *ls, double v,
                           int64_t t_ms)
{
    (void)f;
    store_sink *s = ctx;
    uint64_t ref;
    bool created;
    int rc = store_series_ref(s->st, ls, &ref, &created);
    if (rc < 0) return rc;
    store_batch_add(s->b, ref, t_ms, v);
    return 0;
}

static void test_store_sink(void **state)
{
    (void)state;
    char dir[] = "/tmp/sidewatch-cadvisor-store-XXXXXX";
    assert_non_null(mkdtemp(dir));
    store_options so = {.path = dir};
    store *st;
    buf err;
    buf_init(&err, 1024);
    assert_int_equal(store_open(&st, &so, &err), 0);

    cgroup_options co = {.root = "tests/data/cgroupv2/fs",
                         .proc_root = "tests/data/cgroupv2/proc",
                         .sys_root = "tests/data/cgroupv2/sys"};
    cgroup_fs *fs;
    assert_int_equal(cgroup_open(&fs, &co, NULL), 0);
    cstats s;
    char path[256];
    assert_int_equal(cgroup_find_container(fs, V2_ID, NULL, CGROUP_DRIVER_ANY, path, sizeof path),
                     0);
    assert_int_equal(cgroup_read(fs, path, CGROUP_READ_NETWORK, &s), 0);
    cgroup_free(fs);
    cadvisor_container c = {.id = path, .name = "app1", .stats = &s, .t_ms = 1000};
    store_sink ss = {st, store_batch_new(st)};
    cadvisor_sink sink = {store_family, store_sample_fn, &ss};
    assert_int_equal(cadvisor_collect(&c, 1, NULL, NULL, &sink), 0);
    size_t n = store_batch_len(ss.b);
    assert_int_equal(store_batch_commit(ss.b), 0);

    store_reader *r;
    assert_int_equal(store_reader_open(st, &r), 0);
    label_matcher *ms;
    size_t nm;
    const char *sel = "container_memory_working_set_bytes{name=\"app1\"}";
    assert_int_equal(labels_parse_selector(sel, strlen(sel), &ms, &nm, &err), 0);
    store_select_result res;
    assert_int_equal(store_select(r, ms, nm, 0, 2000, &res), 0);
    assert_int_equal(res.n, 1);
    store_sample *smp;
    size_t ns;
    assert_int_equal(store_read_samples(r, res.series[0].ref, 0, 2000, &smp, &ns), 0);
    assert_int_equal(ns, 1);
    assert_int_equal(smp[0].t, 1000);
    assert_true(smp[0].v == 8892416);
    mem_free(smp);
    store_select_result_free(&res);
    labels_matchers_free(ms, nm);
    enum expfmt_type type;
    char *help = NULL, *unit = NULL;
    assert_int_equal(
        store_get_metadata(r, "container_cpu_usage_seconds_total", &type, &help, &unit), 0);
    assert_int_equal(type, EXPFMT_COUNTER);
    assert_string_equal(help, "Cumulative cpu time consumed in seconds.");
    mem_free(help);
    mem_free(unit);
    store_reader_close(r);
    store_close(st);
    print_message("  %zu samples stored\n", n);
    assert_true(n > 30);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    buf_cleanup(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_series_shared),
        cmocka_unit_test(test_exact_series_local),
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_label_selection),
        cmocka_unit_test(test_metadata_only_and_machine),
        cmocka_unit_test(test_sink_errors),
        cmocka_unit_test(test_text_sink),
        cmocka_unit_test(test_store_sink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
