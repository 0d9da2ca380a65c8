/* The container stats collector against a fake engine (fakesrv.h) and the
 * cgroup v2 fixture tree (tests/data/cgroupv2): containers found in the
 * tree are read from cgroups, the others through the stats API; samples
 * land in a real store; a container that vanishes gets staleness markers;
 * one whose stats 404 (gone between list and stats) is counted and does not
 * disturb the others; the engine goes away and comes back; the exposition
 * for /metrics in both formats. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "config.h"
#include "containers.h"
#include "fakesrv.h"
#include "labels.h"
#include "mem.h"
#include "store.h"
#include "strutil.h"
#include "testutil.h"

/* In the fixture tree: systemd layout and cgroupfs layout. */
static const char ID_A[] = "ede54ee1afda366ab42f824e8a5ffd195155d853ceaec74a927f249ea270c743";
static const char ID_B[] = "2222222222222222222222222222222222222222222222222222222222222222";
/* Not in the tree: the stats API. */
static const char ID_C[] = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
static const char ID_D[] = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
static const char ID_E[] = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

#define MAX_FC 8
#define MAX_EV 64

typedef struct fc {
    char id[80], name[64];
    bool stats_404; /* the stats API says it is gone */
    int slow_ms;    /* stats answers take this long */
    uint64_t cpu_ns;
} fc;

static struct {
    pthread_mutex_t mu;
    fc cs[MAX_FC];
    size_t n;
    char *ev[MAX_EV];
    size_t n_ev;
    unsigned stats_reqs;
} eng = {.mu = PTHREAD_MUTEX_INITIALIZER};

static fsrv *srv;
static char dir[64], sock[128], fixture[PATH_MAX];

static void add_container(const char *id, const char *name, bool stats_404)
{
    pthread_mutex_lock(&eng.mu);
    fc *c = &eng.cs[eng.n++];
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->stats_404 = stats_404;
    c->cpu_ns = 1000000000;
    pthread_mutex_unlock(&eng.mu);
}

/* Removes it from the engine and tells the events stream. */
static void destroy_container(const char *id)
{
    pthread_mutex_lock(&eng.mu);
    for (size_t i = 0; i < eng.n; i++) {
        if (strcmp(eng.cs[i].id, id) != 0) continue;
        eng.cs[i] = eng.cs[--eng.n];
        break;
    }
    char line[512];
    snprintf(line, sizeof line,
             "{\"Type\":\"container\",\"Action\":\"destroy\",\"status\":\"destroy\",\"id\":\"%s\","
             "\"Actor\":{\"ID\":\"%s\",\"Attributes\":{\"name\":\"x\"}},\"time\":%ld,"
             "\"timeNano\":%ld000000000}\n",
             id, id, (long)time(NULL), (long)time(NULL));
    if (eng.n_ev < MAX_EV) eng.ev[eng.n_ev++] = strdup(line);
    pthread_mutex_unlock(&eng.mu);
}

static fc *find(const char *id)
{
    for (size_t i = 0; i < eng.n; i++)
        if (strcmp(eng.cs[i].id, id) == 0) return &eng.cs[i];
    return NULL;
}

static bool serve_events(fsrv *s, int fd)
{
    pthread_mutex_lock(&eng.mu);
    size_t next = eng.n_ev;
    pthread_mutex_unlock(&eng.mu);
    bool ok = fsrv_chunked_start(fd, 200, "application/json");
    while (ok) {
        pthread_mutex_lock(&eng.mu);
        char *piece = next < eng.n_ev ? strdup(eng.ev[next++]) : NULL;
        pthread_mutex_unlock(&eng.mu);
        if (piece) {
            ok = fsrv_chunk(fd, piece, strlen(piece));
            free(piece);
        } else if (!fsrv_sleep(s, 5)) {
            break;
        }
    }
    return false;
}

static bool handle(fsrv *s, int fd, const fsrv_req *rq, void *ctx)
{
    (void)ctx;
    const char *p = rq->path;
    if (strcmp(p, "/_ping") == 0) return fsrv_respond(fd, 200, "text/plain", "OK", 2);
    if (strcmp(p, "/version") == 0)
        return fsrv_respond_json(fd, 200,
                                 "{\"Version\":\"20.10.24\",\"ApiVersion\":\"1.41\","
                                 "\"MinAPIVersion\":\"1.12\",\"Os\":\"linux\",\"Arch\":\"amd64\"}");
    if (strncmp(p, "/v1.", 4) != 0 || !strchr(p + 1, '/'))
        return fsrv_respond_json(fd, 400, "{\"message\":\"unversioned path\"}");
    p = strchr(p + 1, '/');
    if (strcmp(p, "/info") == 0)
        return fsrv_respond_json(fd, 200,
                                 "{\"CgroupVersion\":\"2\",\"NCPU\":2,\"MemTotal\":25276510208}");
    if (strncmp(p, "/events", 7) == 0) return serve_events(s, fd);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    if (strncmp(p, "/containers/json", 16) == 0) {
        pthread_mutex_lock(&eng.mu);
        buf_putc(&b, '[');
        for (size_t i = 0; i < eng.n; i++) {
            buf_printf(&b,
                       "%s{\"Id\":\"%s\",\"Names\":[\"/%s\"],\"Image\":\"img:1\",\"State\":"
                       "\"running\",\"Status\":\"Up\",\"Labels\":{\"app\":\"%s\",\"tier\":\"x\"},"
                       "\"HostConfig\":{\"NetworkMode\":\"none\"}}",
                       i ? "," : "", eng.cs[i].id, eng.cs[i].name, eng.cs[i].name);
        }
        buf_putc(&b, ']');
        pthread_mutex_unlock(&eng.mu);
        bool ok = fsrv_respond_json(fd, 200, buf_cstr(&b));
        buf_cleanup(&b);
        return ok;
    }
    char id[100], rest[200];
    if (sscanf(p, "/containers/%99[^/]/%199s", id, rest) == 2) {
        pthread_mutex_lock(&eng.mu);
        fc *c = find(id);
        int status = 200;
        if (!c || (strncmp(rest, "stats", 5) == 0 && c->stats_404)) {
            status = 404;
            buf_printf(&b, "{\"message\":\"No such container: %s\"}", id);
        } else if (strncmp(rest, "stats", 5) == 0) {
            eng.stats_reqs++;
            int slow = c->slow_ms;
            if (slow > 0) {
                pthread_mutex_unlock(&eng.mu);
                bool alive = fsrv_sleep(s, slow);
                pthread_mutex_lock(&eng.mu);
                c = find(id);
                if (!alive || !c) {
                    pthread_mutex_unlock(&eng.mu);
                    buf_cleanup(&b);
                    return false;
                }
            }
            c->cpu_ns += 500000000;
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            struct tm tm;
            gmtime_r(&now.tv_sec, &tm);
            char read[64];
            size_t rl = strftime(read, sizeof read, "%Y-%m-%dT%H:%M:%S", &tm);
            snprintf(read + rl, sizeof read - rl, ".%09ldZ", now.tv_nsec);
            buf_printf(&b,
                       "{\"read\":\"%s\",\"preread\":\"0001-01-01T00:00:00Z\","
                       "\"id\":\"%s\",\"name\":\"/%s\",\"pids_stats\":{\"current\":3},"
                       "\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":%llu,"
                       "\"usage_in_kernelmode\":1,\"usage_in_usermode\":2},"
                       "\"system_cpu_usage\":9000000000,\"online_cpus\":2},"
                       "\"memory_stats\":{\"usage\":4096000,\"limit\":134217728,"
                       "\"stats\":{\"inactive_file\":96000}}}",
                       read, c->id, c->name, (unsigned long long)c->cpu_ns);
        } else {
            buf_printf(&b,
                       "{\"Id\":\"%s\",\"Name\":\"/%s\",\"Config\":{\"Image\":\"img:1\","
                       "\"Labels\":{\"app\":\"%s\",\"tier\":\"x\"}},\"Image\":\"sha256:ab\","
                       "\"State\":{\"Status\":\"running\",\"Running\":true,\"Pid\":4242,"
                       "\"StartedAt\":\"2026-11-25T09:00:00Z\"},"
                       "\"HostConfig\":{\"NetworkMode\":\"none\",\"Memory\":134217728}}",
                       c->id, c->name, c->name);
        }
        pthread_mutex_unlock(&eng.mu);
        bool ok = fsrv_respond_json(fd, status, buf_cstr(&b));
        buf_cleanup(&b);
        return ok;
    }
    buf_cleanup(&b);
    return fsrv_respond_json(fd, 404, "{\"message\":\"page not found\"}");
}

/* ---- helpers ------------------------------------------------------------------------ */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef bool (*cond_fn)(containers *c, const void *arg);

static bool wait_for(containers *c, cond_fn fn, const void *arg, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 20) {
        if (fn(c, arg)) return true;
        sleep_ms(20);
    }
    return fn(c, arg);
}

static bool seen_is(containers *c, const void *arg)
{
    const uint64_t *want = arg; /* cgroup, api */
    containers_status s;
    containers_status_get(c, &s);
    return s.containers_cgroup == want[0] && s.containers_api == want[1];
}

static bool engine_is(containers *c, const void *arg)
{
    containers_status s;
    containers_status_get(c, &s);
    return s.engine_connected == *(const bool *)arg;
}

static bool more_cycles(containers *c, const void *arg)
{
    containers_status s;
    containers_status_get(c, &s);
    return s.cycles >= *(const uint64_t *)arg;
}

static uint64_t cycles(containers *c)
{
    containers_status s;
    containers_status_get(c, &s);
    return s.cycles;
}

/* The samples of the one series matching sel, in [0, now]. */
static size_t samples(store *st, const char *sel, store_sample **out)
{
    store_reader *r;
    assert_int_equal(store_reader_open(st, &r), 0);
    label_matcher *ms;
    size_t nm;
    buf err;
    buf_init(&err, 1024);
    assert_int_equal(labels_parse_selector(sel, strlen(sel), &ms, &nm, &err), 0);
    store_select_result res;
    assert_int_equal(store_select(r, ms, nm, 0, INT64_MAX / 2, &res), 0);
    size_t n = 0;
    *out = NULL;
    if (res.n != 1) fail_msg("%s: %zu series", sel, res.n);
    assert_int_equal(store_read_samples(r, res.series[0].ref, 0, INT64_MAX / 2, out, &n), 0);
    store_select_result_free(&res);
    labels_matchers_free(ms, nm);
    store_reader_close(r);
    buf_cleanup(&err);
    return n;
}

static double last_value(store *st, const char *sel)
{
    store_sample *s;
    size_t n = samples(st, sel, &s);
    assert_true(n > 0);
    double v = s[n - 1].v;
    mem_free(s);
    return v;
}

static config *load_cfg(const char *root)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "containers:\n  docker_host: unix://%s\n  interval: 100ms\n  cgroup_root: \"%s\"\n"
             "  exclude:\n    - label: app=skipped\n",
             sock, root);
    buf err;
    buf_init(&err, 4096);
    config *cfg = NULL;
    if (config_load_string(yaml, strlen(yaml), "t.yml", &cfg, &err) < 0)
        fail_msg("config: %s", buf_cstr(&err));
    buf_cleanup(&err);
    return cfg;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sw-coll-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(sock, sizeof sock, "%s/docker.sock", dir);
    if (!realpath("tests/data/cgroupv2/fs", fixture)) return -1;
    pthread_mutex_lock(&eng.mu);
    for (size_t i = 0; i < eng.n_ev; i++)
        free(eng.ev[i]);
    eng.n_ev = 0;
    eng.n = 0;
    eng.stats_reqs = 0;
    pthread_mutex_unlock(&eng.mu);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fsrv_stop(srv);
    srv = NULL;
    pthread_mutex_lock(&eng.mu);
    for (size_t i = 0; i < eng.n_ev; i++)
        free(eng.ev[i]);
    eng.n_ev = 0;
    pthread_mutex_unlock(&eng.mu);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return -1;
    return 0;
}

static store *open_store(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/data", dir);
    store_options so = {.path = path};
    store *st;
    buf err;
    buf_init(&err, 1024);
    if (store_open(&st, &so, &err) < 0) fail_msg("store: %s", buf_cstr(&err));
    buf_cleanup(&err);
    return st;
}

static containers *start(config *cfg, store *st)
{
    containers_options o = {.cfg = cfg,
                            .st = st,
                            .proc_root = "tests/data/cgroupv2/proc",
                            .sys_root = "tests/data/cgroupv2/sys",
                            .request_timeout_ms = 2000,
                            .backoff_initial_ms = 50,
                            .backoff_max_ms = 200};
    containers *c = NULL;
    buf err;
    buf_init(&err, 1024);
    if (containers_new(&o, &c, &err) < 0) fail_msg("containers_new: %s", buf_cstr(&err));
    buf_cleanup(&err);
    return c;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_collect_vanish_restart(void **state)
{
    (void)state;
    add_container(ID_A, "a", false);
    add_container(ID_B, "b", false);
    add_container(ID_C, "c", false);
    add_container(ID_D, "d", true);        /* gone between list and stats */
    add_container(ID_E, "skipped", false); /* excluded by label app=skipped */
    srv = fsrv_start(sock, handle, NULL);
    assert_non_null(srv);
    store *st = open_store();
    config *cfg = load_cfg(fixture);
    containers *c = start(cfg, st);
    config_unref(cfg); /* the collector keeps its own reference */

    const uint64_t want[2] = {2, 1};
    assert_true(wait_for(c, seen_is, want, 5000));
    uint64_t n = cycles(c) + 2;
    assert_true(wait_for(c, more_cycles, &n, 5000));
    containers_status s;
    containers_status_get(c, &s);
    assert_int_equal(s.containers_seen, 4);
    assert_string_equal(s.cgroup_mode, "v2");

    /* Stored: the fixture's numbers (cgroup) and the stats API body. */
    assert_true(last_value(st, "container_memory_working_set_bytes{name=\"a\"}") == 8892416);
    assert_true(last_value(st, "container_memory_working_set_bytes{name=\"c\"}") == 4000000);
    assert_true(last_value(st, "container_spec_memory_limit_bytes{name=\"c\"}") == 134217728);
    assert_true(last_value(st, "machine_cpu_cores") == 6);
    store_sample *smp;
    size_t ns = samples(st, "container_cpu_usage_seconds_total{name=\"c\"}", &smp);
    assert_true(ns >= 2);
    assert_true(smp[ns - 1].v > smp[0].v); /* the counter grows with each request */
    mem_free(smp);
    /* id: the cgroup path, or /docker/<id> from the stats API. */
    char sel[256];
    snprintf(sel, sizeof sel,
             "container_memory_usage_bytes{id=\"/system.slice/docker-%s.scope\",name=\"a\","
             "image=\"img:1\",container_label_app=\"a\"}",
             ID_A);
    assert_true(last_value(st, sel) == 11403264);
    snprintf(sel, sizeof sel, "container_memory_usage_bytes{id=\"/docker/%s\"}", ID_C);
    assert_true(last_value(st, sel) == 4096000);

    /* /metrics: both formats, the self metrics, D's 404 counted. */
    buf m;
    buf_init(&m, BUF_UNLIMITED);
    assert_int_equal(containers_metrics(c, TEXTPARSE_PROMETHEUS, &m), 0);
    const char *t = buf_cstr(&m);
    assert_non_null(strstr(t, "# TYPE container_cpu_usage_seconds_total counter\n"));
    assert_non_null(strstr(t, "container_memory_working_set_bytes{container_label_app=\"a\","
                              "container_label_tier=\"x\",id=\"/system.slice/docker-"));
    assert_non_null(strstr(t, "machine_cpu_cores{boot_id="));
    assert_null(strstr(t, "name=\"d\""));
    assert_null(strstr(t, "skipped"));
    assert_non_null(strstr(t, "sidewatch_containers_seen{source=\"api\"} 1\n"));
    assert_null(strstr(t, "sidewatch_docker_errors_total{reason=\"not_found\"} 0\n"));
    assert_non_null(strstr(t, "sidewatch_docker_errors_total{reason=\"not_found\"} "));
    assert_null(strstr(t, "# EOF"));
    buf_reset(&m);
    assert_int_equal(containers_metrics(c, TEXTPARSE_OPENMETRICS, &m), 0);
    t = buf_cstr(&m);
    assert_non_null(strstr(t, "# TYPE container_cpu_usage_seconds counter\n"));
    assert_null(strstr(t, "# EOF"));
    buf_cleanup(&m);

    /* C vanishes: its series get a staleness marker, the others go on. */
    destroy_container(ID_C);
    const uint64_t want2[2] = {2, 0};
    assert_true(wait_for(c, seen_is, want2, 5000));
    n = cycles(c) + 1;
    assert_true(wait_for(c, more_cycles, &n, 5000));
    assert_true(
        strutil_is_stale_nan(last_value(st, "container_memory_working_set_bytes{name=\"c\"}")));
    assert_true(last_value(st, "container_memory_working_set_bytes{name=\"a\"}") == 8892416);

    /* The engine goes away: cycles go on from cgroups, errors are counted. */
    fsrv_stop(srv);
    srv = NULL;
    bool up = false;
    assert_true(wait_for(c, engine_is, &up, 5000));
    n = cycles(c) + 2;
    assert_true(wait_for(c, more_cycles, &n, 5000));
    containers_status_get(c, &s);
    assert_int_equal(s.containers_cgroup, 2);
    buf_init(&m, BUF_UNLIMITED);
    assert_int_equal(containers_metrics(c, TEXTPARSE_PROMETHEUS, &m), 0);
    assert_non_null(strstr(buf_cstr(&m), "sidewatch_containers_engine_up 0\n"));
    buf_cleanup(&m);

    /* ... and comes back with a new container: recovered by itself. */
    add_container(ID_C, "c2", false);
    srv = fsrv_start(sock, handle, NULL);
    assert_non_null(srv);
    const uint64_t want3[2] = {2, 1};
    assert_true(wait_for(c, seen_is, want3, 10000));
    up = true;
    assert_true(wait_for(c, engine_is, &up, 5000));
    n = cycles(c) + 1;
    assert_true(wait_for(c, more_cycles, &n, 5000));
    assert_true(last_value(st, "container_memory_working_set_bytes{name=\"c2\"}") == 4000000);

    /* Stopping the collector ends its series. */
    containers_free(c);
    assert_true(
        strutil_is_stale_nan(last_value(st, "container_memory_working_set_bytes{name=\"a\"}")));
    assert_true(strutil_is_stale_nan(last_value(st, "machine_cpu_cores")));
    store_close(st);
}

/* No cgroup tree (cgroup_root ""): everything through the stats API. */
static void test_stats_api_only(void **state)
{
    (void)state;
    add_container(ID_A, "a", false);
    add_container(ID_B, "b", false);
    srv = fsrv_start(sock, handle, NULL);
    assert_non_null(srv);
    store *st = open_store();
    config *cfg = load_cfg("");
    containers *c = start(cfg, st);
    config_unref(cfg);
    const uint64_t want[2] = {0, 2};
    assert_true(wait_for(c, seen_is, want, 5000));
    containers_status s;
    containers_status_get(c, &s);
    assert_string_equal(s.cgroup_mode, "none");
    /* machine_* from the engine's /info */
    assert_true(last_value(st, "machine_cpu_cores") == 2);
    assert_true(last_value(st, "machine_memory_bytes") == 25276510208.0);
    char sel[160];
    snprintf(sel, sizeof sel, "container_spec_memory_limit_bytes{id=\"/docker/%s\"}", ID_A);
    assert_true(last_value(st, sel) == 134217728);
    containers_free(c);
    store_close(st);
}

/* Stopping while stats requests are in flight: their answers (cancelled)
 * arrive after the cycle is gone and touch nothing of it. */
static void test_free_while_waiting(void **state)
{
    (void)state;
    add_container(ID_C, "c", false);
    pthread_mutex_lock(&eng.mu);
    eng.cs[0].slow_ms = 5000;
    pthread_mutex_unlock(&eng.mu);
    srv = fsrv_start(sock, handle, NULL);
    assert_non_null(srv);
    store *st = open_store();
    config *cfg = load_cfg("");
    containers *c = start(cfg, st);
    config_unref(cfg);
    for (int i = 0; i < 250; i++) {
        pthread_mutex_lock(&eng.mu);
        unsigned n = eng.stats_reqs;
        pthread_mutex_unlock(&eng.mu);
        if (n > 0) break;
        sleep_ms(20);
    }
    sleep_ms(100);
    containers_free(c);
    store_close(st);
}

/* An engine that is not there: the collector runs, counts, and stops. */
static void test_no_engine(void **state)
{
    (void)state;
    store *st = open_store();
    config *cfg = load_cfg("");
    containers *c = start(cfg, st);
    config_unref(cfg);
    uint64_t n = 2;
    assert_true(wait_for(c, more_cycles, &n, 5000));
    buf m;
    buf_init(&m, BUF_UNLIMITED);
    assert_int_equal(containers_metrics(c, TEXTPARSE_PROMETHEUS, &m), 0);
    assert_null(strstr(buf_cstr(&m), "sidewatch_docker_errors_total{reason=\"connect\"} 0\n"));
    assert_non_null(strstr(buf_cstr(&m), "sidewatch_containers_engine_up 0\n"));
    buf_cleanup(&m);
    containers_free(c);
    containers_free(NULL);
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_collect_vanish_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_api_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_engine, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
