/* Unit tests for docker_sd_configs (discovery_docker): Prometheus's
 * conformance fixtures (../shared/conformance/docker-sd) served by a fake
 * Docker engine on a unix socket must give exactly the target label sets
 * of expected-targets.json; the same bodies through discovery_docker_build
 * must match them label for label (empty values included); then the
 * label rules one by one, the filters query, API version negotiation,
 * failures that keep the previous targets, discovery's integration and
 * reload, and the embedded default config's relabeling (prometheus.io labels) over
 * our fixtures and a real dockerd capture. */
#include "testutil.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "buf.h"
#include "config.h"
#include "discovery.h"
#include "discovery_docker.h"
#include "labels.h"
#include "mem.h"
#include "relabel.h"
#include "yamlconf.h"

#define SD_DIR "conformance/docker-sd"
#define DATA_DIR "tests/data/docker-sd"

static char tmpdir[256];

/* ---- a fake Docker engine ------------------------------------------------------------ */

enum fe_mode { FE_OK, FE_500, FE_GARBAGE, FE_WRONG_TYPE };

typedef struct fake_engine {
    char sock[108];
    char dir[2048];      /* fixture directory served */
    char api[32];        /* Api-Version: URL prefix and /version's ApiVersion ("" = none) */
    char *headers;       /* extra response header lines from headers.yml, "\r\n" separated */
    char *containers;    /* overrides containers/json (malloc'd) or NULL */
    bool version_absent; /* /version answers {} */
    enum fe_mode mode;
    int lfd;
    pthread_t th;
    atomic_bool stop;
    pthread_mutex_t mu;
    char paths[256][1024]; /* request targets, in order */
    size_t n_paths;
} fake_engine;

static char *read_all(const char *path, size_t *len)
{
    return tu_read_file(path, len);
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, fake_engine *fe, int status, const char *body, size_t len)
{
    buf h;
    buf_init(&h, BUF_UNLIMITED);
    buf_printf(&h,
               "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
               "Connection: close\r\n%s\r\n",
               status,
               status == 200   ? "OK"
               : status == 404 ? "Not Found"
                               : "Error",
               len, fe->headers ? fe->headers : "");
    send_all(fd, h.data, h.len);
    send_all(fd, body, len);
    buf_cleanup(&h);
}

/* Prometheus's mock (discovery/moby/mock_test.go) maps "containers/<x>" to
 * the file containers/<SanitizeLabelName(x)>(.json) and "<name>" to
 * <name>.json. */
static void serve_file(int fd, fake_engine *fe, const char *rel)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.json", fe->dir, rel);
    size_t len;
    char *body = read_all(path, &len);
    if (!body) {
        snprintf(path, sizeof path, "%s/%s", fe->dir, rel);
        body = read_all(path, &len);
    }
    if (!body) {
        respond(fd, fe, 500, "", 0);
        return;
    }
    respond(fd, fe, 200, body, len);
    free(body);
}

static void handle(int fd, fake_engine *fe)
{
    char req[8192];
    size_t n = 0;
    while (n < sizeof req - 1) {
        ssize_t r = read(fd, req + n, sizeof req - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
        req[n] = '\0';
        if (strstr(req, "\r\n\r\n")) break;
    }
    req[n] = '\0';
    char method[16], target[1024];
    if (sscanf(req, "%15s %1023s", method, target) != 2) return;
    pthread_mutex_lock(&fe->mu);
    if (fe->n_paths < 256) snprintf(fe->paths[fe->n_paths++], sizeof fe->paths[0], "%s", target);
    enum fe_mode mode = fe->mode;
    pthread_mutex_unlock(&fe->mu);

    if (strcmp(target, "/_ping") == 0) {
        serve_file(fd, fe, "_ping");
        return;
    }
    if (strcmp(target, "/version") == 0) {
        char body[128];
        if (fe->version_absent || !fe->api[0])
            snprintf(body, sizeof body, "{\"Version\":\"fake\"}");
        else
            snprintf(body, sizeof body, "{\"Version\":\"fake\",\"ApiVersion\":\"%s\"}", fe->api);
        respond(fd, fe, 200, body, strlen(body));
        return;
    }
    if (mode == FE_500) {
        const char *b = "{\"message\":\"engine on fire\"}";
        respond(fd, fe, 500, b, strlen(b));
        return;
    }
    if (mode == FE_GARBAGE) {
        respond(fd, fe, 200, "[{\"Id\": ", 8);
        return;
    }
    if (mode == FE_WRONG_TYPE) {
        respond(fd, fe, 200, "{\"Id\": \"x\"}", 11);
        return;
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, "/v%s/", fe->api);
    if (strncmp(target, prefix, strlen(prefix)) != 0) {
        const char *b = "{\"message\":\"page not found\"}";
        respond(fd, fe, 404, b, strlen(b));
        return;
    }
    const char *p = target + strlen(prefix);
    if (strncmp(p, "containers/", 11) == 0) {
        if (fe->containers) {
            respond(fd, fe, 200, fe->containers, strlen(fe->containers));
            return;
        }
        buf rel;
        buf_init(&rel, BUF_UNLIMITED);
        buf_puts(&rel, "containers/");
        for (const char *c = p + 11; *c; c++) {
            bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                      (*c >= '0' && *c <= '9') || *c == '_';
            buf_putc(&rel, ok ? *c : '_');
        }
        serve_file(fd, fe, buf_cstr(&rel));
        buf_cleanup(&rel);
        return;
    }
    if (strcmp(p, "networks") == 0) {
        serve_file(fd, fe, "networks");
        return;
    }
    const char *b = "{\"message\":\"page not found\"}";
    respond(fd, fe, 404, b, strlen(b));
}

static void *fe_thread(void *arg)
{
    fake_engine *fe = arg;
    while (!atomic_load(&fe->stop)) {
        struct pollfd p = {.fd = fe->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept(fe->lfd, NULL, NULL);
        if (c < 0) continue;
        handle(c, fe);
        close(c);
    }
    return NULL;
}

/* Reads headers.yml (a flat mapping) into response header lines and the
 * API version. */
static void fe_load_headers(fake_engine *fe)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/headers.yml", fe->dir);
    size_t len;
    char *text = read_all(path, &len);
    if (!text) return;
    yamlconf_doc *doc = NULL;
    assert_int_equal(yamlconf_parse(text, len, path, &doc, NULL), 0);
    const yamlconf_node *root = yamlconf_root(doc);
    buf h;
    buf_init(&h, BUF_UNLIMITED);
    for (size_t i = 0; i < root->n; i++) {
        const yamlconf_node *k = root->pairs[i].key, *v = root->pairs[i].value;
        buf_printf(&h, "%s: %s\r\n", k->str, v->str);
        if (strcmp(k->str, "Api-Version") == 0) snprintf(fe->api, sizeof fe->api, "%s", v->str);
    }
    fe->headers = buf_detach(&h, NULL);
    yamlconf_free(doc);
    free(text);
}

static fake_engine *fe_start(const char *dir, const char *name)
{
    fake_engine *fe = calloc(1, sizeof *fe);
    snprintf(fe->dir, sizeof fe->dir, "%s", dir);
    assert_true(snprintf(fe->sock, sizeof fe->sock, "%s/%s.sock", tmpdir, name) <
                (int)sizeof fe->sock);
    pthread_mutex_init(&fe->mu, NULL);
    fe_load_headers(fe);
    if (!fe->api[0]) snprintf(fe->api, sizeof fe->api, "1.41");
    fe->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fe->lfd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", fe->sock);
    unlink(fe->sock);
    assert_int_equal(bind(fe->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fe->lfd, 16), 0);
    assert_int_equal(pthread_create(&fe->th, NULL, fe_thread, fe), 0);
    return fe;
}

static void fe_stop(fake_engine *fe)
{
    if (!fe) return;
    atomic_store(&fe->stop, true);
    pthread_join(fe->th, NULL);
    close(fe->lfd);
    unlink(fe->sock);
    free(fe->headers);
    free(fe->containers);
    pthread_mutex_destroy(&fe->mu);
    free(fe);
}

static void fe_set_mode(fake_engine *fe, enum fe_mode m)
{
    pthread_mutex_lock(&fe->mu);
    fe->mode = m;
    pthread_mutex_unlock(&fe->mu);
}

static bool fe_saw(fake_engine *fe, const char *path)
{
    pthread_mutex_lock(&fe->mu);
    bool seen = false;
    for (size_t i = 0; i < fe->n_paths; i++)
        seen |= strcmp(fe->paths[i], path) == 0;
    pthread_mutex_unlock(&fe->mu);
    return seen;
}

/* ---- helpers -------------------------------------------------------------------------- */

static config *load_yaml(const char *yaml)
{
    config *c = NULL;
    buf err;
    buf_init(&err, 1 << 16);
    if (config_load_string(yaml, strlen(yaml), "test.yml", &c, &err) < 0)
        fail_msg("%s", buf_cstr(&err));
    buf_cleanup(&err);
    return c;
}

/* A config with one docker_sd entry on `sock` plus `extra` YAML lines
 * (indented for the entry). */
static config *docker_config(const char *sock, const char *extra)
{
    buf y;
    buf_init(&y, BUF_UNLIMITED);
    buf_printf(&y,
               "scrape_configs:\n  - job_name: d\n    docker_sd_configs:\n"
               "      - host: unix://%s\n%s",
               sock, extra ? extra : "");
    config *c = load_yaml(buf_cstr(&y));
    buf_cleanup(&y);
    return c;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until the discoverer has groups to take (or fails the test). */
static void take_groups(discovery_docker *dd, int efd, config_target_group **g, size_t *n)
{
    int64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        struct pollfd p = {.fd = efd, .events = POLLIN};
        poll(&p, 1, 100);
        uint64_t v;
        while (read(efd, &v, sizeof v) > 0) {
        }
        if (discovery_docker_take(dd, g, n)) return;
    }
    fail_msg("no target groups from the docker discoverer within 10 s");
}

/* Waits until `count` more refreshes than `from` have been done. */
static void wait_refreshes(discovery_docker *dd, uint64_t from, uint64_t count)
{
    int64_t deadline = now_ms() + 10000;
    while (discovery_docker_refreshes(dd) < from + count) {
        if (now_ms() > deadline) fail_msg("refreshes did not happen");
        usleep(10000);
    }
}

/* A label's value in a set (values are NUL-terminated), or NULL. */
static const char *lget(const labels *ls, const char *name)
{
    size_t len;
    return labels_get(ls, name, strlen(name), &len);
}

static const char *tlabel(const discovery_docker_target *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->labels[i].name, name) == 0) return t->labels[i].value;
    }
    return NULL;
}

/* Builds targets from two JSON texts with sd (or the defaults); fails the
 * test on error. */
static discovery_docker_target *build(const config_docker_sd *sd, const char *containers,
                                      const char *networks, size_t *n)
{
    config_docker_sd def = {
        .port = 80, .host_networking_host = "localhost", .match_first_network = true};
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    discovery_docker_target *t = NULL;
    if (discovery_docker_build(sd ? sd : &def, containers, strlen(containers), networks,
                               strlen(networks), &t, n, &err) < 0)
        fail_msg("build failed: %s", buf_cstr(&err));
    buf_cleanup(&err);
    return t;
}

static const char *build_error(const char *containers, const char *networks, buf *err)
{
    config_docker_sd def = {
        .port = 80, .host_networking_host = "localhost", .match_first_network = true};
    discovery_docker_target *t = NULL;
    size_t n = 0;
    buf_reset(err);
    int rc = discovery_docker_build(&def, containers, strlen(containers), networks,
                                    strlen(networks), &t, &n, err);
    assert_int_equal(rc, -EINVAL);
    assert_null(t);
    return buf_cstr(err);
}

/* ---- conformance: Prometheus's docker_test.go cases --------------------------------------- */

/* Whether a group (address + labels) equals an expected label set. Labels
 * with empty values are absent from sidewatch's label sets (relabeling
 * cannot tell the two apart); *empties counts them. */
static bool group_matches(const config_target_group *g, json_t *exp, size_t *empties)
{
    const char *k;
    json_t *v;
    size_t want = 0, e = 0;
    json_object_foreach(exp, k, v)
    {
        const char *val = json_string_value(v);
        if (strcmp(k, "__address__") == 0) {
            if (g->n_targets != 1 || strcmp(g->targets[0], val) != 0) return false;
            continue;
        }
        size_t len;
        const char *got = labels_get(g->labels, k, strlen(k), &len);
        if (!*val) {
            e++;
            if (got) return false;
            continue;
        }
        want++;
        if (!got || len != strlen(val) || memcmp(got, val, len) != 0) return false;
    }
    *empties = e;
    return g->labels->n == want;
}

static bool target_matches(const discovery_docker_target *t, json_t *exp)
{
    if (t->n != json_object_size(exp)) return false;
    for (size_t i = 0; i < t->n; i++) {
        json_t *v = json_object_get(exp, t->labels[i].name);
        if (!v || strcmp(json_string_value(v), t->labels[i].value) != 0) return false;
    }
    return true;
}

static void print_group(const config_target_group *g)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    labels_format(g->labels, &b);
    print_message("    got %s %s\n", g->n_targets ? g->targets[0] : "(none)", buf_cstr(&b));
    buf_cleanup(&b);
}

static void test_conformance(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED(SD_DIR "/expected-targets.json");
    char path[4096];
    json_error_t je;
    json_t *all =
        json_load_file(tu_shared_path(path, sizeof path, SD_DIR "/expected-targets.json"), 0, &je);
    assert_non_null(all);
    size_t cases = 0, failed_cases = 0, targets = 0, matched = 0, exact = 0, empties = 0;
    const char *name;
    json_t *tc;
    json_object_foreach(all, name, tc)
    {
        const char *fixture = json_string_value(json_object_get(tc, "fixture"));
        bool mfn = json_is_true(json_object_get(tc, "match_first_network"));
        json_t *expected = json_object_get(tc, "expected");
        size_t want = json_array_size(expected);
        assert_int_equal(want, json_integer_value(json_object_get(tc, "targets")));
        cases++;
        targets += want;

        /* 1. Through a fake engine serving the fixture. */
        char rel[256], dir[4096];
        snprintf(rel, sizeof rel, SD_DIR "/%s", fixture);
        tu_shared_path(dir, sizeof dir, rel);
        fake_engine *fe = fe_start(dir, fixture);
        config *c = docker_config(fe->sock, mfn ? "" : "        match_first_network: false\n");
        int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        discovery_docker *dd =
            discovery_docker_new(c, &c->scrape_configs[0].docker_sd_configs[0], "d", NULL, efd);
        assert_non_null(dd);
        config_target_group *g = NULL;
        size_t ng = 0;
        take_groups(dd, efd, &g, &ng);
        bool *used = calloc(ng + 1, sizeof *used);
        size_t ok = 0;
        for (size_t i = 0; i < want; i++) {
            json_t *exp = json_array_get(expected, i);
            bool found = false;
            for (size_t k = 0; k < ng && !found; k++) {
                size_t e = 0;
                if (!used[k] && group_matches(&g[k], exp, &e)) {
                    used[k] = found = true;
                    empties += e;
                }
            }
            if (found) {
                ok++;
            } else {
                char *s = json_dumps(exp, JSON_SORT_KEYS | JSON_COMPACT);
                print_message("  %s: expected target not discovered: %s\n", name, s);
                free(s);
            }
        }
        for (size_t k = 0; k < ng; k++) {
            if (!used[k]) {
                print_message("  %s: unexpected target:\n", name);
                print_group(&g[k]);
            }
        }
        /* The requests a Prometheus client makes, with the fixture's
         * version (headers.yml's Api-Version) in the path. */
        char want_path[128];
        snprintf(want_path, sizeof want_path, "/v%s/containers/json", fe->api);
        assert_true(fe_saw(fe, want_path));
        snprintf(want_path, sizeof want_path, "/v%s/networks", fe->api);
        assert_true(fe_saw(fe, want_path));
        free(used);
        discovery_docker_groups_free(g, ng);
        discovery_docker_free(dd);
        close(efd);

        /* 2. The same bodies straight through the builder, label for label
         * (empty values included). */
        char cpath[4096], npath[4096];
        assert_true(snprintf(cpath, sizeof cpath, "%s/containers/json.json", dir) <
                    (int)sizeof cpath);
        assert_true(snprintf(npath, sizeof npath, "%s/networks.json", dir) < (int)sizeof npath);
        char *cj = read_all(cpath, NULL), *nj = read_all(npath, NULL);
        size_t nt = 0;
        discovery_docker_target *t = build(&c->scrape_configs[0].docker_sd_configs[0], cj, nj, &nt);
        size_t ex = 0;
        bool *tused = calloc(nt + 1, sizeof *tused);
        for (size_t i = 0; i < want; i++) {
            for (size_t k = 0; k < nt; k++) {
                if (!tused[k] && target_matches(&t[k], json_array_get(expected, i))) {
                    tused[k] = true;
                    ex++;
                    break;
                }
            }
        }
        free(tused);
        discovery_docker_targets_free(t, nt);
        free(cj);
        free(nj);
        config_unref(c);
        fe_stop(fe);

        bool pass = ok == want && ng == want && ex == want && nt == want;
        print_message("docker-sd conformance %s (%s, match_first_network=%s): %zu/%zu targets "
                      "through the fake engine, %zu/%zu exact from the builder, %s\n",
                      name, fixture, mfn ? "true" : "false", ok, want, ex, want,
                      pass ? "PASS" : "FAIL");
        matched += ok;
        exact += ex;
        if (!pass) failed_cases++;
    }
    json_decref(all);
    print_message("docker-sd conformance: %zu cases, %zu passed, %zu failed; %zu/%zu targets "
                  "matched (%zu expected labels with empty values are absent from sidewatch's "
                  "label sets, as relabeling sees them), %zu/%zu exact\n",
                  cases, cases - failed_cases, failed_cases, matched, targets, empties, exact,
                  targets);
    assert_int_equal(cases, 3);
    assert_int_equal(targets, 22);
    assert_int_equal(failed_cases, 0);
}

/* ---- the label rules -------------------------------------------------------------------- */

static void test_labels_and_addresses(void **state)
{
    (void)state;
    const char *nets = "[{\"Id\":\"n1\",\"Name\":\"front\",\"Scope\":\"local\",\"Internal\":true,"
                       "\"Labels\":{\"com.example/ü-x\":\"v\"}},"
                       "{\"Id\":\"n2\",\"Name\":\"back\",\"Scope\":\"swarm\",\"Ingress\":true}]";
    const char *cs =
        "[{\"Id\":\"a\",\"Names\":[\"/a\",\"/b\"],\"Image\":\"img\",\"ImageID\":\"\","
        "\"Labels\":{\"com.docker.compose.service\":\"web\",\"ü-ber/x\":\"1\",\"9lives\":\"\"},"
        "\"HostConfig\":{\"NetworkMode\":\"front\"},"
        "\"Ports\":[{\"IP\":\"0.0.0.0\",\"PrivatePort\":80,\"PublicPort\":8080,\"Type\":\"tcp\"},"
        "{\"PrivatePort\":53,\"Type\":\"udp\"},{\"PrivatePort\":81,\"PublicPort\":81,\"Type\":"
        "\"tcp\"}],"
        "\"NetworkSettings\":{\"Networks\":{\"front\":{\"NetworkID\":\"n1\",\"IPAddress\":\"10.0.0."
        "2\","
        "\"GlobalIPv6Address\":\"2001:0db8:0000:0000:0000:0000:0000:0001\"}}}},"
        /* no names: skipped */
        "{\"Id\":\"b\",\"Names\":[],\"HostConfig\":{\"NetworkMode\":\"front\"},"
        "\"NetworkSettings\":{\"Networks\":{\"front\":{\"NetworkID\":\"n1\",\"IPAddress\":\"10.0.0."
        "3\"}}}},"
        /* IPv6 only, with odd spellings */
        "{\"Id\":\"c\",\"Names\":[\"/c\"],\"HostConfig\":{\"NetworkMode\":\"back\"},"
        "\"NetworkSettings\":{\"Networks\":{\"back\":{\"NetworkID\":\"n2\",\"IPAddress\":\"\","
        "\"GlobalIPv6Address\":\"2001:DB8:0:1:0:0:1:1\"}}}},"
        /* match_first_network skips nil networks; unknown network IDs add no labels */
        "{\"Id\":\"d\",\"Names\":[\"/d\"],\"HostConfig\":{\"NetworkMode\":\"x\"},"
        "\"NetworkSettings\":{\"Networks\":{\"a\":null,\"c\":{\"NetworkID\":\"zz\",\"IPAddress\":"
        "\"10.9.0.1\"},"
        "\"b\":{\"NetworkID\":\"n2\",\"IPAddress\":\"::ffff:10.8.0.1\"}}}},"
        /* host networking */
        "{\"Id\":\"e\",\"Names\":[\"/e\"],\"HostConfig\":{\"NetworkMode\":\"host\"},"
        "\"Ports\":[{\"PrivatePort\":5353,\"Type\":\"udp\"}],"
        "\"NetworkSettings\":{\"Networks\":{\"host\":{\"NetworkID\":\"h\",\"IPAddress\":\"\"}}}},"
        /* a cycle of shared network namespaces ends */
        "{\"Id\":\"f\",\"Names\":[\"/f\"],\"HostConfig\":{\"NetworkMode\":\"container:g\"}},"
        "{\"Id\":\"g\",\"Names\":[\"/g\"],\"HostConfig\":{\"NetworkMode\":\"container:f\"},"
        "\"NetworkSettings\":{\"Networks\":null}},"
        /* shared namespace of a container that has networks; zone kept */
        "{\"Id\":\"h\",\"Names\":[\"/h\"],\"HostConfig\":{\"NetworkMode\":\"container:i\"}},"
        "{\"Id\":\"i\",\"Names\":[\"/i\"],\"HostConfig\":{\"NetworkMode\":\"front\"},"
        "\"NetworkSettings\":{\"Networks\":{\"front\":{\"NetworkID\":\"n1\",\"IPAddress\":\"\","
        "\"GlobalIPv6Address\":\"fe80::1%eth0\"}}}},"
        "null]";
    size_t n = 0;
    discovery_docker_target *t = build(NULL, cs, nets, &n);
    /* a: 2 tcp ports on one network; c, d, e, h, i: one each. */
    assert_int_equal(n, 7);
    const discovery_docker_target *a80 = &t[0], *a81 = &t[1];
    assert_string_equal(tlabel(a80, "__address__"), "10.0.0.2:80");
    assert_string_equal(tlabel(a80, "__meta_docker_port_private"), "80");
    assert_string_equal(tlabel(a80, "__meta_docker_port_public"), "8080");
    assert_string_equal(tlabel(a80, "__meta_docker_port_public_ip"), "0.0.0.0");
    assert_string_equal(tlabel(a80, "__meta_docker_container_name"), "/a");
    assert_string_equal(tlabel(a80, "__meta_docker_container_image"), "img");
    assert_null(tlabel(a80, "__meta_docker_container_image_id")); /* empty: not set */
    assert_string_equal(tlabel(a80, "__meta_docker_container_label_com_docker_compose_service"),
                        "web");
    assert_string_equal(tlabel(a80, "__meta_docker_container_label___ber_x"), "1");
    assert_string_equal(tlabel(a80, "__meta_docker_container_label_9lives"), "");
    assert_string_equal(tlabel(a80, "__meta_docker_network_label_com_example___x"), "v");
    assert_string_equal(tlabel(a80, "__meta_docker_network_internal"), "true");
    assert_string_equal(tlabel(a80, "__meta_docker_network_ingress"), "false");
    assert_string_equal(tlabel(a80, "__meta_docker_network_name"), "front");
    assert_string_equal(tlabel(a80, "__meta_docker_network_ip"), "10.0.0.2");
    assert_string_equal(tlabel(a81, "__address__"), "10.0.0.2:81");
    assert_string_equal(tlabel(a81, "__meta_docker_port_public_ip"), ""); /* no IP */
    for (size_t i = 1; i < a80->n; i++)                                   /* sorted by name */
        assert_true(strcmp(a80->labels[i - 1].name, a80->labels[i].name) < 0);

    assert_string_equal(tlabel(&t[2], "__address__"), "[2001:db8:0:1::1:1]:80");
    assert_string_equal(tlabel(&t[2], "__meta_docker_network_scope"), "swarm");
    assert_string_equal(tlabel(&t[2], "__meta_docker_network_ingress"), "true");
    assert_null(tlabel(&t[2], "__meta_docker_port_private"));
    /* d: networks by name a (nil), b, c: b is first. */
    assert_string_equal(tlabel(&t[3], "__address__"), "[::ffff:10.8.0.1]:80");
    assert_string_equal(tlabel(&t[3], "__meta_docker_network_name"), "back");
    assert_string_equal(tlabel(&t[4], "__address__"), "localhost");
    assert_string_equal(tlabel(&t[4], "__meta_docker_network_ip"), "");
    assert_null(tlabel(&t[4], "__meta_docker_network_name"));
    assert_string_equal(tlabel(&t[5], "__meta_docker_container_name"), "/h");
    assert_string_equal(tlabel(&t[5], "__address__"), "[fe80::1%eth0]:80");
    assert_string_equal(tlabel(&t[5], "__meta_docker_container_network_mode"), "container:i");
    assert_string_equal(tlabel(&t[6], "__meta_docker_container_name"), "/i");
    discovery_docker_targets_free(t, n);

    /* Without match_first_network every non-nil network is a target; the
     * configured port and host_networking_host are used. */
    config_docker_sd sd = {
        .port = -1, .host_networking_host = "127.0.0.1", .match_first_network = false};
    t = build(&sd, cs, nets, &n);
    assert_int_equal(n, 8);
    assert_string_equal(tlabel(&t[3], "__address__"), "[::ffff:10.8.0.1]:18446744073709551615");
    assert_string_equal(tlabel(&t[4], "__address__"), "10.9.0.1:18446744073709551615");
    assert_null(tlabel(&t[4], "__meta_docker_network_name"));
    assert_string_equal(tlabel(&t[5], "__address__"), "127.0.0.1");
    discovery_docker_targets_free(t, n);

    /* The groups scrape uses: empty values dropped, the address as target. */
    t = build(NULL, cs, nets, &n);
    config_target_group *g = discovery_docker_groups(t, n);
    assert_string_equal(g[0].targets[0], "10.0.0.2:80");
    assert_null(lget(g[0].labels, "__address__"));
    assert_null(lget(g[0].labels, "__meta_docker_container_label_9lives"));
    assert_non_null(lget(g[0].labels, "__meta_docker_port_public"));
    assert_string_equal(g[0].source, "Docker");
    discovery_docker_groups_free(g, n);
    discovery_docker_targets_free(t, n);

    /* Repeated IDs: the later network and container win, as in Go maps. */
    t = build(NULL,
              "[{\"Id\":\"x\",\"Names\":[\"/x1\"],\"HostConfig\":{\"NetworkMode\":\"front\"},"
              "\"NetworkSettings\":{\"Networks\":{\"front\":{\"NetworkID\":\"n1\",\"IPAddress\":"
              "\"10.0.0.1\"}}}},"
              "{\"Id\":\"x\",\"Names\":[\"/x2\"],\"HostConfig\":{\"NetworkMode\":\"front\"},"
              "\"NetworkSettings\":{\"Networks\":{\"front\":{\"NetworkID\":\"n1\",\"IPAddress\":"
              "\"10.0.0.2\"}}}},"
              "{\"Id\":\"y\",\"Names\":[\"/y\"],\"HostConfig\":{\"NetworkMode\":\"container:x\"}}]",
              "[{\"Id\":\"n1\",\"Name\":\"old\"},{\"Id\":\"n1\",\"Name\":\"new\"}]", &n);
    assert_int_equal(n, 3);
    assert_string_equal(tlabel(&t[0], "__meta_docker_network_name"), "new");
    assert_string_equal(tlabel(&t[2], "__address__"), "10.0.0.2:80");
    discovery_docker_targets_free(t, n);

    /* null and empty answers are no containers. */
    t = build(NULL, "null", "null", &n);
    assert_int_equal(n, 0);
    discovery_docker_targets_free(t, n);
    t = build(NULL, "[]", "[]", &n);
    assert_int_equal(n, 0);
    discovery_docker_targets_free(t, n);
}

static void test_bad_bodies(void **state)
{
    (void)state;
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    assert_string_equal(build_error("{}", "[]", &err),
                        "error while listing containers: json: cannot unmarshal object into Go "
                        "value of type []container.Summary");
    assert_non_null(
        strstr(build_error("[{\"Id\": ", "[]", &err), "error while listing containers: "));
    assert_string_equal(
        build_error("[{\"Names\":[\"/x\"],\"Ports\":[{\"PrivatePort\":\"80\"}]}]", "[]", &err),
        "error while listing containers: json: cannot unmarshal string into Go struct field "
        "Summary.Ports.PrivatePort of type uint16");
    assert_string_equal(
        build_error("[{\"Names\":[\"/x\"],\"Ports\":[{\"PrivatePort\":70000}]}]", "[]", &err),
        "error while listing containers: json: cannot unmarshal number into Go struct field "
        "Summary.Ports.PrivatePort of type uint16");
    assert_string_equal(build_error("[{\"Names\":[\"/x\"],\"NetworkSettings\":{\"Networks\":{\"a\":"
                                    "{\"IPAddress\":\"300.1.1.1\"}}}}]",
                                    "[]", &err),
                        "error while listing containers: ParseAddr(\"300.1.1.1\"): unable to parse "
                        "IP");
    assert_string_equal(build_error("[{\"Names\":[\"/x\"],\"Labels\":{\"a\":1}}]", "[]", &err),
                        "error while listing containers: json: cannot unmarshal number into Go "
                        "struct field Summary.Labels of type string");
    assert_string_equal(build_error("[]", "[{\"Id\":\"n\",\"Internal\":\"yes\"}]", &err),
                        "error while computing network labels: json: cannot unmarshal string "
                        "into Go struct field Summary.Internal of type bool");
    assert_non_null(
        strstr(build_error("[]", "<html>", &err), "error while computing network labels: "));
    buf_cleanup(&err);
}

static void test_filters_query_and_endpoint(void **state)
{
    (void)state;
    config *c =
        load_yaml("scrape_configs:\n  - job_name: d\n    docker_sd_configs:\n"
                  "      - host: unix:///x.sock\n"
                  "        filters:\n"
                  "          - name: status\n            values: [running]\n"
                  "          - name: label\n"
                  "            values: [prometheus.io/scrape=true, a<b]\n"
                  "          - name: label\n            values: [prometheus.io/scrape=true]\n"
                  "          - name: empty\n"
                  "      - host: unix:///x.sock\n");
    buf q;
    buf_init(&q, BUF_UNLIMITED);
    discovery_docker_filters_query(&c->scrape_configs[0].docker_sd_configs[0], &q);
    /* json.Marshal(map[string]map[string]bool) then url.Values.Encode. */
    assert_string_equal(buf_cstr(&q),
                        "filters=%7B%22label%22%3A%7B%22a%5Cu003cb%22%3Atrue%2C%22prometheus.io%"
                        "2Fscrape%3Dtrue%22%3Atrue%7D%2C%22status%22%3A%7B%22running%22%3Atrue%"
                        "7D%7D");
    buf_reset(&q);
    discovery_docker_filters_query(&c->scrape_configs[0].docker_sd_configs[1], &q);
    assert_string_equal(buf_cstr(&q), "");
    buf_cleanup(&q);
    config_unref(c);

    buf base, sock, err;
    buf_init(&base, BUF_UNLIMITED);
    buf_init(&sock, BUF_UNLIMITED);
    buf_init(&err, BUF_UNLIMITED);
    bool http;
    assert_int_equal(
        discovery_docker_endpoint("unix:///var/run/docker.sock", &base, &sock, &http, &err), 0);
    assert_string_equal(buf_cstr(&base), "http://api.moby.localhost");
    assert_string_equal(buf_cstr(&sock), "/var/run/docker.sock");
    assert_false(http);
    buf_reset(&base);
    buf_reset(&sock);
    assert_int_equal(
        discovery_docker_endpoint("tcp://10.0.0.1:2375/base/", &base, &sock, &http, &err), 0);
    assert_string_equal(buf_cstr(&base), "http://10.0.0.1:2375/base");
    assert_string_equal(buf_cstr(&sock), "");
    assert_false(http); /* Prometheus applies the HTTP client settings to http(s) only */
    buf_reset(&base);
    assert_int_equal(discovery_docker_endpoint("https://d:2376", &base, &sock, &http, &err), 0);
    assert_string_equal(buf_cstr(&base), "https://d:2376");
    assert_true(http);
    assert_int_equal(discovery_docker_endpoint("/var/run/docker.sock", &base, &sock, &http, &err),
                     -EINVAL);
    assert_string_equal(buf_cstr(&err), "unable to parse docker host `/var/run/docker.sock`");
    buf_reset(&err);
    assert_int_equal(discovery_docker_endpoint("ssh://u@h", &base, &sock, &http, &err), -EINVAL);
    assert_non_null(strstr(buf_cstr(&err), "unsupported docker host protocol \"ssh\""));
    buf_cleanup(&base);
    buf_cleanup(&sock);
    buf_cleanup(&err);

    /* A discoverer for an unusable host is not created (logged). */
    c = load_yaml("scrape_configs:\n  - job_name: d\n    docker_sd_configs:\n"
                  "      - host: ssh://u@h\n");
    assert_null(discovery_docker_new(c, &c->scrape_configs[0].docker_sd_configs[0], "d", NULL, -1));
    config_unref(c);
}

/* ---- the discoverer against the fake engine --------------------------------------------- */

static void test_negotiation(void **state)
{
    (void)state;
    const char *dir = DATA_DIR "/annotated";
    struct {
        const char *engine; /* /version's ApiVersion; NULL: absent */
        const char *path;   /* the listing asked for */
        bool ok;
    } cases[] = {
        {"1.41", "/v1.41/containers/json", true},  {"1.40", "/v1.40/containers/json", true},
        {"1.99", "/v1.55/containers/json", false}, /* this fake serves /v1.99/ only: 404 */
        {"1.30", "/v1.55/containers/json", false}, /* too old: not negotiated */
        {NULL, "/v1.55/containers/json", true},    /* an engine that does not say: the newest */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_engine *fe = fe_start(dir, "neg");
        snprintf(fe->api, sizeof fe->api, "%s", cases[i].engine ? cases[i].engine : "1.55");
        fe->version_absent = !cases[i].engine;
        config *c = docker_config(fe->sock, "        refresh_interval: 1h\n");
        discovery_docker *dd =
            discovery_docker_new(c, &c->scrape_configs[0].docker_sd_configs[0], "d", NULL, -1);
        wait_refreshes(dd, 0, 1);
        if (!fe_saw(fe, cases[i].path)) {
            for (size_t k = 0; k < fe->n_paths; k++)
                print_message("  requested %s\n", fe->paths[k]);
            fail_msg("engine %s: %s not requested", cases[i].engine, cases[i].path);
        }
        assert_true(fe_saw(fe, "/version"));
        assert_int_equal(discovery_docker_failures(dd), cases[i].ok ? 0 : 1);
        discovery_docker_free(dd);
        config_unref(c);
        fe_stop(fe);
    }
}

static void test_failures_keep_targets(void **state)
{
    (void)state;
    const char *dir = DATA_DIR "/annotated";
    fake_engine *fe = fe_start(dir, "fail");
    config *c = docker_config(fe->sock, "        refresh_interval: 100ms\n");
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    discovery_docker *dd =
        discovery_docker_new(c, &c->scrape_configs[0].docker_sd_configs[0], "d", NULL, efd);
    config_target_group *g = NULL;
    size_t n = 0;
    take_groups(dd, efd, &g, &n);
    assert_int_equal(n, 10);
    discovery_docker_groups_free(g, n);

    /* Unchanged answers publish nothing new. */
    uint64_t r = discovery_docker_refreshes(dd);
    wait_refreshes(dd, r, 2);
    assert_false(discovery_docker_take(dd, &g, &n));

    /* HTTP 500, garbage, a wrong JSON type, the engine gone: each refresh
     * fails and is counted; nothing is published, so the previous targets
     * stay. */
    enum fe_mode modes[] = {FE_500, FE_GARBAGE, FE_WRONG_TYPE};
    uint64_t f = discovery_docker_failures(dd);
    for (size_t i = 0; i < 3; i++) {
        fe_set_mode(fe, modes[i]);
        r = discovery_docker_refreshes(dd);
        wait_refreshes(dd, r, 2);
        assert_true(discovery_docker_failures(dd) >= f + 1);
        f = discovery_docker_failures(dd);
        assert_false(discovery_docker_take(dd, &g, &n));
    }
    fe_stop(fe);
    r = discovery_docker_refreshes(dd);
    wait_refreshes(dd, r, 2);
    assert_true(discovery_docker_failures(dd) >= f + 2);
    assert_false(discovery_docker_take(dd, &g, &n));

    /* The engine comes back with other containers: published at once. */
    fe = fe_start(dir, "fail");
    fe->containers = strdup("[{\"Id\":\"z\",\"Names\":[\"/z\"],\"HostConfig\":{\"NetworkMode\":"
                            "\"host\"},\"NetworkSettings\":{\"Networks\":{\"host\":{}}}}]");
    take_groups(dd, efd, &g, &n);
    assert_int_equal(n, 1);
    assert_string_equal(g[0].targets[0], "localhost");
    discovery_docker_groups_free(g, n);
    discovery_docker_free(dd);
    close(efd);
    config_unref(c);
    fe_stop(fe);
}

/* Through discovery: the scrape thread's view, the fd it polls, reloads. */
static void test_discovery_integration(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED(SD_DIR "/dockerprom/networks.json");
    char dir[4096];
    tu_shared_path(dir, sizeof dir, SD_DIR "/dockerprom");
    fake_engine *fe = fe_start(dir, "disc");
    buf y;
    buf_init(&y, BUF_UNLIMITED);
    buf_printf(&y,
               "scrape_configs:\n"
               "  - job_name: s\n    static_configs:\n      - targets: ['s:1']\n"
               "  - job_name: d\n    static_configs:\n      - targets: ['s:2']\n"
               "    docker_sd_configs:\n      - host: unix://%s\n        refresh_interval: 1h\n"
               "      - host: unix://%s\n        refresh_interval: 1h\n"
               "        match_first_network: false\n",
               fe->sock, fe->sock);
    config *c = load_yaml(buf_cstr(&y));
    discovery *d = discovery_new(NULL);
    discovery_apply(d, c);
    const config_target_group *const *gs;
    /* Until the engine answers, the static group alone. */
    assert_true(discovery_groups(d, 1, &gs) >= 1);
    int64_t deadline = now_ms() + 10000;
    size_t n = 0;
    while (n != 1 + 8 + 13 && now_ms() < deadline) {
        struct pollfd p = {.fd = discovery_fd(d), .events = POLLIN};
        poll(&p, 1, 200);
        if (discovery_refresh(d, 0)) n = discovery_groups(d, 1, &gs);
    }
    assert_int_equal(n, 1 + 8 + 13);
    assert_string_equal(gs[0]->targets[0], "s:2");
    assert_int_equal(discovery_groups(d, 0, &gs), 1);
    assert_false(discovery_refresh(d, 0));

    /* A reload with the same docker config keeps its targets at once. */
    config *c2 = load_yaml(buf_cstr(&y));
    discovery_apply(d, c2);
    assert_int_equal(discovery_groups(d, 1, &gs), 1 + 8 + 13);
    config_unref(c);
    /* A changed one starts over. */
    buf_reset(&y);
    buf_printf(&y,
               "scrape_configs:\n  - job_name: d\n"
               "    docker_sd_configs:\n      - host: unix://%s\n        port: 81\n",
               fe->sock);
    config *c3 = load_yaml(buf_cstr(&y));
    discovery_apply(d, c3);
    config_unref(c2);
    deadline = now_ms() + 10000;
    n = discovery_groups(d, 0, &gs);
    while (n != 8 && now_ms() < deadline) {
        struct pollfd p = {.fd = discovery_fd(d), .events = POLLIN};
        poll(&p, 1, 200);
        if (discovery_refresh(d, 0)) n = discovery_groups(d, 0, &gs);
    }
    assert_int_equal(n, 8);
    bool port81 = false;
    for (size_t i = 0; i < n; i++)
        port81 |= strcmp(gs[i]->targets[0], "172.19.0.3:81") == 0;
    assert_true(port81);
    discovery_free(d);
    config_unref(c3);
    buf_cleanup(&y);
    fe_stop(fe);
}

/* ---- the embedded default config's relabeling ---------------------------------------------- */

typedef struct relabeled {
    char addr[128], path[64], scheme[16], container[64];
} relabeled;

/* Applies the default docker job's relabel_configs to each group as
 * scrape does (address, job, default path and scheme first). Returns the
 * kept targets. */
static size_t relabel_groups(const config *c, const config_target_group *g, size_t n,
                             relabeled *out, size_t cap)
{
    const config_scrape *sc = config_find_job(c, "docker");
    assert_non_null(sc);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        labels_builder lb;
        labels_builder_init(&lb);
        labels_builder_from(&lb, g[i].labels);
        labels_builder_set(&lb, "__address__", 11, g[i].targets[0], strlen(g[i].targets[0]));
        labels_builder_set(&lb, "job", 3, "docker", 6);
        labels_builder_set(&lb, "__metrics_path__", 16, sc->metrics_path, strlen(sc->metrics_path));
        labels_builder_set(&lb, "__scheme__", 10, sc->scheme, strlen(sc->scheme));
        arena a;
        arena_init(&a, 1 << 20);
        if (relabel_apply(sc->relabel_configs, sc->n_relabel_configs, &lb, &a, false)) {
            assert_true(kept < cap);
            relabeled *r = &out[kept++];
            size_t len;
            const char *v;
            v = labels_builder_get(&lb, "__address__", 11, &len);
            snprintf(r->addr, sizeof r->addr, "%.*s", (int)len, v ? v : "");
            v = labels_builder_get(&lb, "__metrics_path__", 16, &len);
            snprintf(r->path, sizeof r->path, "%.*s", (int)len, v ? v : "");
            v = labels_builder_get(&lb, "__scheme__", 10, &len);
            snprintf(r->scheme, sizeof r->scheme, "%.*s", (int)len, v ? v : "");
            v = labels_builder_get(&lb, "container", 9, &len);
            snprintf(r->container, sizeof r->container, "%.*s", (int)len, v ? v : "");
        }
        arena_cleanup(&a);
        labels_builder_cleanup(&lb);
    }
    return kept;
}

static config_target_group *groups_from_files(const char *cpath, const char *npath, size_t *n)
{
    char *cj = read_all(cpath, NULL), *nj = read_all(npath, NULL);
    assert_non_null(cj);
    assert_non_null(nj);
    discovery_docker_target *t = build(NULL, cj, nj, n);
    config_target_group *g = discovery_docker_groups(t, *n);
    discovery_docker_targets_free(t, *n);
    free(cj);
    free(nj);
    return g;
}

static void test_default_config_relabeling(void **state)
{
    (void)state;
    config *c = config_default_docker("localhost:9277", "unix:///var/run/docker.sock");
    relabeled r[32];
    size_t n = 0;
    config_target_group *g = groups_from_files(DATA_DIR "/annotated/containers/json.json",
                                               DATA_DIR "/annotated/networks.json", &n);
    assert_int_equal(n, 10);
    size_t k = relabel_groups(c, g, n, r, 32);
    discovery_docker_groups_free(g, n);
    static const relabeled want[] = {
        /* two TCP ports, both moved to prometheus.io/port (scrape keeps one) */
        {"172.18.0.2:9100", "/m", "https", "multi"},
        {"172.18.0.2:9100", "/m", "https", "multi"},
        /* no prometheus.io/port: the exposed port */
        {"172.18.0.3:8000", "/metrics", "http", "plain"},
        /* the namespace of /plain, its own port label */
        {"172.18.0.3:9200", "/metrics", "http", "shared"},
        /* /off: prometheus.io/scrape=false, dropped */
        {"[fd00::5]:9000", "/metrics", "http", "v6"},
        /* the first network by name (a_net) */
        {"10.2.0.2:7000", "/metrics", "http", "two"},
        /* published ports: the container's port; one target per binding */
        {"172.18.0.4:80", "/metrics", "http", "pub"},
        {"172.18.0.4:80", "/metrics", "http", "pub"},
        /* host networking: host_networking_host and the port; an unknown
         * scheme is ignored */
        {"localhost:18081", "/metrics", "http", "hostnet"},
    };
    assert_int_equal(k, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < k; i++) {
        assert_string_equal(r[i].addr, want[i].addr);
        assert_string_equal(r[i].path, want[i].path);
        assert_string_equal(r[i].scheme, want[i].scheme);
        assert_string_equal(r[i].container, want[i].container);
    }
    print_message("default docker job over tests/data/docker-sd/annotated: %zu of %zu targets "
                  "kept, as expected\n",
                  k, n);

    /* Prometheus's fixtures: no container is labelled prometheus.io/scrape. */
    TU_REQUIRE_SHARED(SD_DIR "/dockerprom/networks.json");
    char cp[4096], np[4096];
    tu_shared_path(cp, sizeof cp, SD_DIR "/dockerprom/containers/json.json");
    tu_shared_path(np, sizeof np, SD_DIR "/dockerprom/networks.json");
    g = groups_from_files(cp, np, &n);
    assert_int_equal(n, 8);
    assert_int_equal(relabel_groups(c, g, n, r, 32), 0);
    discovery_docker_groups_free(g, n);

    /* The real dockerd capture: web1 (host networking, port 18081) and
     * app1 (testnet, no port label) are kept; mini1 (--network none) is
     * kept with an address that cannot be reached, as in Prometheus. */
    TU_REQUIRE_SHARED("docker/dockerd-containers-json.json");
    tu_shared_path(cp, sizeof cp, "docker/dockerd-containers-json.json");
    g = groups_from_files(cp, DATA_DIR "/dockerd/networks.json", &n);
    assert_int_equal(n, 3);
    k = relabel_groups(c, g, n, r, 32);
    assert_int_equal(k, 3);
    assert_string_equal(r[0].addr, "localhost:18081");
    assert_string_equal(r[0].path, "/metrics");
    assert_string_equal(r[0].container, "web1");
    assert_string_equal(r[1].addr, "10.213.7.2:80");
    assert_string_equal(r[1].container, "app1");
    assert_string_equal(r[2].addr, ":8080");
    assert_string_equal(lget(g[1].labels, "__meta_docker_network_internal"), "true");
    discovery_docker_groups_free(g, n);
    config_unref(c);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sidewatch-test-dsd-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conformance),
        cmocka_unit_test(test_labels_and_addresses),
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_filters_query_and_endpoint),
        cmocka_unit_test(test_negotiation),
        cmocka_unit_test(test_failures_keep_targets),
        cmocka_unit_test(test_discovery_integration),
        cmocka_unit_test(test_default_config_relabeling),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
