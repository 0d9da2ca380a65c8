/* Unit tests for docker (the Engine API client and container cache)
 * against a fake engine written here: a unix-socket HTTP server
 * (fakesrv.h) serving the real dockerd 20.10 and Podman 4.3 captures from
 * ../shared/docker/ for /_ping, /version, /info, /containers/json,
 * /containers/{id}/json and /containers/{id}/stats, and a chunked /events
 * stream the test feeds. Scenarios: sync and event updates, Podman, a
 * stream cut mid-way and the re-list, an engine restart, a socket that
 * appears late, timeouts, garbage and truncated bodies, a container that
 * vanishes before its inspect (404), API 1.40 refused, unknown fields,
 * concurrent stats, snapshots read from another thread; plus the pure
 * parts (version negotiation, host parsing, feeding captures directly). */
#include "testutil.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "docker.h"
#include "fakesrv.h"
#include "httpc.h"
#include "log.h"
#include "mem.h"

/* ---- the fake engine ------------------------------------------------------------- */

enum mode { M_OK = 0, M_404, M_GARBAGE, M_TRUNCATED, M_SLOW, M_SLOW_404 };

typedef struct fc {
    char id[80];
    json_t *list;    /* the /containers/json entry */
    json_t *inspect; /* the /containers/{id}/json body */
    enum mode inspect_mode;
    char *stats; /* body; NULL: the exited-container capture */
    size_t stats_len;
    enum mode stats_mode;
} fc;

typedef struct engine {
    pthread_mutex_t mu;
    char *version, *info;
    fc cs[32];
    size_t n;
    char *list_override; /* served instead of the list when set */
    int slow_ms;         /* how long M_SLOW waits */
    bool reject_filters; /* /events?filters=... answers 400 */
    /* events: every emitted piece; a stream sends what is newer than its start */
    char *ev[512];
    size_t n_ev;
    unsigned drop_gen; /* bumping it cuts every open stream */
    int streams;       /* open /events streams */
    /* requests seen */
    char paths[1024][160];
    size_t n_paths;
    unsigned lists, inspects, events_reqs, stats_reqs;
} engine;

static engine eng;
static fsrv *srv;
static char dir[256], sock[300];

static char *read_shared(const char *rel, size_t *len)
{
    char p[4096];
    char *d = tu_read_file(tu_shared_path(p, sizeof p, rel), len);
    if (!d) fail_msg("cannot read %s", p);
    return d;
}

static json_t *load_shared(const char *rel)
{
    size_t n;
    char *d = read_shared(rel, &n);
    json_error_t err;
    json_t *j = json_loadb(d, n, 0, &err);
    free(d);
    if (!j) fail_msg("%s: %s", rel, err.text);
    return j;
}

/* A jansson string of a C string (json_stringn: agent/json.h's writer used to
 * export a json_string of its own, which shadowed jansson's at link time). */
static json_t *jstring(const char *s)
{
    return json_stringn(s, strlen(s));
}

static fc *fc_find(const char *id)
{
    for (size_t i = 0; i < eng.n; i++)
        if (strcmp(eng.cs[i].id, id) == 0) return &eng.cs[i];
    return NULL;
}

/* An inspect body for a list entry: the template capture with the entry's
 * id, name, image, labels and state, plus fields no engine sends (they
 * must be ignored). */
static json_t *synth_inspect(const json_t *tmpl, const json_t *le, int64_t pid)
{
    json_t *j = json_deep_copy(tmpl);
    json_object_set(j, "Id", json_object_get(le, "Id"));
    json_t *names = json_object_get(le, "Names");
    json_object_set(j, "Name", json_array_get(names, 0));
    json_t *cfg = json_object_get(j, "Config");
    json_object_set(cfg, "Image", json_object_get(le, "Image"));
    json_object_set(cfg, "Labels", json_object_get(le, "Labels"));
    json_t *st = json_object_get(j, "State");
    const char *state = json_string_value(json_object_get(le, "State"));
    json_object_set_new(st, "Status", jstring(state));
    json_object_set_new(st, "Running", json_boolean(strcmp(state, "running") == 0));
    json_object_set_new(st, "Pid", json_integer(strcmp(state, "running") == 0 ? pid : 0));
    json_object_set_new(st, "FutureStateField", json_pack("{s:[i,{s:n}]}", "x", 1, "y"));
    json_object_set(json_object_get(j, "HostConfig"), "NetworkMode",
                    json_object_get(json_object_get(le, "HostConfig"), "NetworkMode"));
    json_object_set_new(j, "FutureTopLevel", json_pack("{s:s,s:[]}", "a", "b", "c"));
    return j;
}

static void engine_reset(void)
{
    free(eng.version);
    free(eng.info);
    free(eng.list_override);
    for (size_t i = 0; i < eng.n; i++) {
        json_decref(eng.cs[i].list);
        json_decref(eng.cs[i].inspect);
        free(eng.cs[i].stats);
    }
    for (size_t i = 0; i < eng.n_ev; i++)
        free(eng.ev[i]);
    pthread_mutex_t mu = eng.mu;
    memset(&eng, 0, sizeof eng);
    eng.mu = mu;
    eng.slow_ms = 1500;
}

static void engine_add_list(json_t *list, const json_t *tmpl, const char *const *real_ids,
                            json_t *const *real_inspects, size_t n_real)
{
    size_t i;
    json_t *le;
    json_array_foreach(list, i, le)
    {
        fc *c = &eng.cs[eng.n++];
        snprintf(c->id, sizeof c->id, "%s", json_string_value(json_object_get(le, "Id")));
        c->list = json_incref(le);
        /* A field no engine sends, to be ignored. */
        json_object_set_new(c->list, "FutureListField", json_pack("{s:i}", "k", 7));
        for (size_t k = 0; k < n_real; k++)
            if (strcmp(real_ids[k], c->id) == 0) c->inspect = json_incref(real_inspects[k]);
        if (!c->inspect) c->inspect = synth_inspect(tmpl, le, 1000 + (int64_t)i);
    }
}

/* dockerd 20.10: containers-json-all (oom1 exited, health1, web1, app1
 * exited, mini1), the real inspects of app1 (exited) and health1, the
 * others synthesized from the running capture. */
static void engine_load_docker(void)
{
    pthread_mutex_lock(&eng.mu);
    engine_reset();
    eng.version = read_shared("docker/dockerd-version.json", NULL);
    eng.info = read_shared("docker/dockerd-info.json", NULL);
    json_t *list = load_shared("docker/dockerd-containers-json-all.json");
    json_t *tmpl = load_shared("docker/dockerd-container-inspect.json");
    json_t *real[2] = {load_shared("docker/dockerd-container-inspect-exited.json"),
                       load_shared("docker/dockerd-container-inspect-health.json")};
    const char *ids[2] = {json_string_value(json_object_get(real[0], "Id")),
                          json_string_value(json_object_get(real[1], "Id"))};
    engine_add_list(list, tmpl, ids, real, 2);
    json_decref(real[0]);
    json_decref(real[1]);
    json_decref(tmpl);
    json_decref(list);
    pthread_mutex_unlock(&eng.mu);
}

/* Podman 4.3: containers-json-all (web1, app1 exited, mini1), the real
 * exited inspect of app1, the others from the running capture. */
static void engine_load_podman(void)
{
    pthread_mutex_lock(&eng.mu);
    engine_reset();
    eng.version = read_shared("docker/podman-version.json", NULL);
    eng.info = read_shared("docker/podman-info.json", NULL);
    json_t *list = load_shared("docker/podman-containers-json-all.json");
    json_t *tmpl = load_shared("docker/podman-container-inspect.json");
    json_t *real = load_shared("docker/podman-container-inspect-exited.json");
    const char *id = json_string_value(json_object_get(real, "Id"));
    engine_add_list(list, tmpl, &id, &real, 1);
    json_decref(real);
    json_decref(tmpl);
    json_decref(list);
    pthread_mutex_unlock(&eng.mu);
}

static const char ID_APP1[] = "c49a6c5f2635fc85b588f3d1e89d1f708a0c2959eee57ebe01f5d1002194265b";
static const char ID_WEB1[] = "faea67ec3d26396aff46395f336d7ec75b500492483899202abdcd4181854fd9";
static const char ID_MINI1[] = "862f26364fbb33719268952f71feb01e8d8d47b0febed575b3f9733c20ad6ad1";
static const char ID_OOM1[] = "59c2037760ba8d73062253e78124df4e82252ba1d575af860cfb0780caab7a15";
static const char ID_HEALTH1[] = "9716a7227b3b7460cf65aedafbda627003a671f69867b57acbad54c9633a04a2";
static const char ID_NEW1[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char ID_PODMAN_APP1[] =
    "a15973aadee909f0323df499a9b149c15eaaa34f85362c27ec9b95bf75b33f72";

/* Adds a running container to the engine (as `docker run` would). */
static void engine_add(const char *id, const char *name, int64_t pid)
{
    pthread_mutex_lock(&eng.mu);
    json_t *le = json_pack("{s:s,s:[s],s:s,s:{s:s},s:s,s:i,s:{s:s}}", "Id", id, "Names", "/x",
                           "Image", "busybox:1.36", "Labels", "team", "blue", "State", "running",
                           "Created", 1795614000, "HostConfig", "NetworkMode", "none");
    char slash[128];
    snprintf(slash, sizeof slash, "/%s", name);
    json_array_set_new(json_object_get(le, "Names"), 0, jstring(slash));
    fc *tmpl = fc_find(ID_WEB1) ? fc_find(ID_WEB1) : &eng.cs[0];
    fc *c = &eng.cs[eng.n++];
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    c->list = le;
    c->inspect = synth_inspect(tmpl->inspect, le, pid);
    pthread_mutex_unlock(&eng.mu);
}

static void engine_remove(const char *id)
{
    pthread_mutex_lock(&eng.mu);
    for (size_t i = 0; i < eng.n; i++) {
        if (strcmp(eng.cs[i].id, id) != 0) continue;
        json_decref(eng.cs[i].list);
        json_decref(eng.cs[i].inspect);
        free(eng.cs[i].stats);
        eng.cs[i] = eng.cs[--eng.n];
        break;
    }
    pthread_mutex_unlock(&eng.mu);
}

/* Changes a container's inspect State (and list State). */
static void engine_state(const char *id, const char *status, int64_t pid, int64_t exit_code)
{
    pthread_mutex_lock(&eng.mu);
    fc *c = fc_find(id);
    assert_non_null(c);
    json_t *st = json_object_get(c->inspect, "State");
    json_object_set_new(st, "Status", jstring(status));
    json_object_set_new(st, "Pid", json_integer(pid));
    json_object_set_new(st, "ExitCode", json_integer(exit_code));
    json_object_set_new(c->list, "State", jstring(status));
    pthread_mutex_unlock(&eng.mu);
}

static void engine_health(const char *id, const char *h)
{
    pthread_mutex_lock(&eng.mu);
    fc *c = fc_find(id);
    json_t *st = json_object_get(c->inspect, "State");
    json_object_set_new(st, "Health",
                        json_pack("{s:s,s:i,s:n}", "Status", h, "FailingStreak", 0, "Log"));
    pthread_mutex_unlock(&eng.mu);
}

static void engine_rename(const char *id, const char *name)
{
    char slash[128];
    snprintf(slash, sizeof slash, "/%s", name);
    pthread_mutex_lock(&eng.mu);
    fc *c = fc_find(id);
    json_object_set_new(c->inspect, "Name", jstring(slash));
    json_array_set_new(json_object_get(c->list, "Names"), 0, jstring(slash));
    pthread_mutex_unlock(&eng.mu);
}

static void engine_mode(const char *id, enum mode inspect, enum mode stats)
{
    pthread_mutex_lock(&eng.mu);
    fc *c = fc_find(id);
    assert_non_null(c);
    c->inspect_mode = inspect;
    c->stats_mode = stats;
    pthread_mutex_unlock(&eng.mu);
}

/* Emits raw bytes on every open (and future-started-before) stream. */
static void emit_raw(const char *piece)
{
    pthread_mutex_lock(&eng.mu);
    assert_true(eng.n_ev < sizeof eng.ev / sizeof *eng.ev);
    eng.ev[eng.n_ev++] = strdup(piece);
    pthread_mutex_unlock(&eng.mu);
}

static void emit(const char *action, const char *id, const char *attrs)
{
    char line[4096];
    snprintf(line, sizeof line,
             "{\"status\":\"%s\",\"id\":\"%s\",\"from\":\"local/mini\",\"Type\":\"container\","
             "\"Action\":\"%s\",\"Actor\":{\"ID\":\"%s\",\"Attributes\":%s},\"scope\":\"local\","
             "\"time\":1795614029,\"timeNano\":1795614029081528883}\n",
             action, id, action, id, attrs ? attrs : "{\"image\":\"local/mini\"}");
    emit_raw(line);
}

/* The line of a capture file whose text contains `needle`, with its '\n'. */
static char *capture_line(const char *rel, const char *needle)
{
    char *all = read_shared(rel, NULL);
    char *hit = strstr(all, needle);
    assert_non_null(hit);
    char *start = hit;
    while (start > all && start[-1] != '\n')
        start--;
    char *end = strchr(hit, '\n');
    size_t n = end ? (size_t)(end - start) + 1 : strlen(start);
    char *line = strndup(start, n);
    free(all);
    return line;
}

static void record(const char *path)
{
    pthread_mutex_lock(&eng.mu);
    if (eng.n_paths < sizeof eng.paths / sizeof *eng.paths)
        snprintf(eng.paths[eng.n_paths++], sizeof eng.paths[0], "%.150s", path);
    pthread_mutex_unlock(&eng.mu);
}

static bool serve_events(fsrv *s, int fd)
{
    pthread_mutex_lock(&eng.mu);
    size_t next = eng.n_ev;
    unsigned gen = eng.drop_gen;
    eng.streams++;
    eng.events_reqs++;
    pthread_mutex_unlock(&eng.mu);
    bool ok = fsrv_chunked_start(fd, 200, "application/json");
    while (ok) {
        pthread_mutex_lock(&eng.mu);
        bool cut = eng.drop_gen != gen;
        char *piece = next < eng.n_ev ? strdup(eng.ev[next++]) : NULL;
        pthread_mutex_unlock(&eng.mu);
        if (cut) break;
        if (piece) {
            ok = fsrv_chunk(fd, piece, strlen(piece));
            free(piece);
        } else if (!fsrv_sleep(s, 5)) {
            break;
        }
    }
    pthread_mutex_lock(&eng.mu);
    eng.streams--;
    pthread_mutex_unlock(&eng.mu);
    return false; /* cut: close without the last chunk */
}

static bool respond_mode(fsrv *s, int fd, enum mode m, const char *id, const char *body, size_t len)
{
    char msg[256];
    switch (m) {
    case M_404:
        snprintf(msg, sizeof msg, "{\"message\":\"No such container: %s\"}", id);
        return fsrv_respond_json(fd, 404, msg);
    case M_GARBAGE:
        return fsrv_respond_json(fd, 200, "{\"Id\": \"oops\", this is not JSON");
    case M_TRUNCATED:
        /* Promise the whole body, send half, close. */
        fsrv_printf(
            fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
            len);
        fsrv_write(fd, body, len / 2);
        return false;
    case M_SLOW_404:
        if (!fsrv_sleep(s, eng.slow_ms)) return false;
        snprintf(msg, sizeof msg, "{\"message\":\"No such container: %s\"}", id);
        return fsrv_respond_json(fd, 404, msg);
    case M_SLOW:
        if (!fsrv_sleep(s, eng.slow_ms)) return false;
        return fsrv_respond(fd, 200, "application/json", body, len);
    default:
        return fsrv_respond(fd, 200, "application/json", body, len);
    }
}

static bool engine_handle(fsrv *s, int fd, const fsrv_req *rq, void *ctx)
{
    (void)ctx;
    const char *p = rq->path;
    record(p);
    if (strcmp(p, "/_ping") == 0) return fsrv_respond(fd, 200, "text/plain", "OK", 2);
    if (strcmp(p, "/version") == 0) {
        pthread_mutex_lock(&eng.mu);
        char *b = strdup(eng.version);
        pthread_mutex_unlock(&eng.mu);
        bool ok = fsrv_respond_json(fd, 200, b);
        free(b);
        return ok;
    }
    /* Everything else must carry the negotiated version. */
    if (strncmp(p, "/v1.", 4) != 0 || !strchr(p + 1, '/'))
        return fsrv_respond_json(fd, 400, "{\"message\":\"unversioned path\"}");
    p = strchr(p + 1, '/');
    if (strcmp(p, "/info") == 0) {
        pthread_mutex_lock(&eng.mu);
        char *b = strdup(eng.info);
        pthread_mutex_unlock(&eng.mu);
        bool ok = fsrv_respond_json(fd, 200, b);
        free(b);
        return ok;
    }
    if (strncmp(p, "/events", 7) == 0) {
        pthread_mutex_lock(&eng.mu);
        bool reject = eng.reject_filters && strchr(p, '?');
        pthread_mutex_unlock(&eng.mu);
        if (reject) return fsrv_respond_json(fd, 400, "{\"message\":\"invalid filter 'type'\"}");
        return serve_events(s, fd);
    }
    if (strcmp(p, "/containers/json?all=true") == 0) {
        pthread_mutex_lock(&eng.mu);
        eng.lists++;
        char *b;
        if (eng.list_override) {
            b = strdup(eng.list_override);
        } else {
            json_t *a = json_array();
            for (size_t i = 0; i < eng.n; i++)
                json_array_append(a, eng.cs[i].list);
            b = json_dumps(a, 0);
            json_decref(a);
        }
        pthread_mutex_unlock(&eng.mu);
        bool ok = fsrv_respond_json(fd, 200, b);
        free(b);
        return ok;
    }
    char id[100], rest[200];
    if (sscanf(p, "/containers/%99[^/]/%199s", id, rest) == 2) {
        pthread_mutex_lock(&eng.mu);
        fc *c = fc_find(id);
        char *body = NULL;
        size_t len = 0;
        enum mode m = M_404;
        bool is_stats = strncmp(rest, "stats", 5) == 0;
        if (is_stats)
            eng.stats_reqs++;
        else
            eng.inspects++;
        if (c && !is_stats) {
            body = json_dumps(c->inspect, 0);
            len = strlen(body);
            m = c->inspect_mode;
        } else if (c) {
            body = c->stats ? strndup(c->stats, c->stats_len) : strdup("");
            len = c->stats ? c->stats_len : 0;
            m = c->stats_mode;
        }
        pthread_mutex_unlock(&eng.mu);
        bool ok;
        if (is_stats && strcmp(rest, "stats?stream=false&one-shot=true") != 0)
            ok = fsrv_respond_json(fd, 400, "{\"message\":\"want stream=false&one-shot=true\"}");
        else if (!is_stats && strcmp(rest, "json") != 0)
            ok = fsrv_respond_json(fd, 404, "{\"message\":\"page not found\"}");
        else
            ok = respond_mode(s, fd, m, id, body ? body : "", len);
        free(body);
        return ok;
    }
    return fsrv_respond_json(fd, 404, "{\"message\":\"page not found\"}");
}

/* ---- helpers ------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static docker *open_docker(int64_t timeout_ms)
{
    char host[400];
    snprintf(host, sizeof host, "unix://%s", sock);
    docker_opts o = {.host = host,
                     .request_timeout_ms = timeout_ms,
                     .backoff_initial_ms = 20,
                     .backoff_max_ms = 200,
                     .max_concurrent = 3,
                     .max_concurrent_stats = 2};
    docker *d = NULL;
    buf err;
    buf_init(&err, 1024);
    if (docker_new(&o, NULL, &d, &err) < 0) fail_msg("docker_new: %s", buf_cstr(&err));
    buf_cleanup(&err);
    return d;
}

/* Polls d until cond (which may use the snapshot `s` and `d`) holds. */
#define WAIT_UNTIL(d, ms, cond)                                                                    \
    do {                                                                                           \
        int64_t end_ = now_ms() + (ms);                                                            \
        for (;;) {                                                                                 \
            docker_snapshot *s = docker_snapshot_get(d);                                           \
            bool ok_ = (cond);                                                                     \
            docker_snapshot_unref(s);                                                              \
            if (ok_) break;                                                                        \
            if (now_ms() > end_) fail_msg("timed out waiting for: %s", #cond);                     \
            docker_poll(d, 20);                                                                    \
        }                                                                                          \
    } while (0)

static const docker_container *by_name(const docker_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->n_containers; i++)
        if (strcmp(s->containers[i].name, name) == 0) return &s->containers[i];
    return NULL;
}

static bool all_inspected(const docker_snapshot *s)
{
    for (size_t i = 0; i < s->n_containers; i++)
        if (!s->containers[i].inspected) return false;
    return true;
}

static size_t n_inspected(const docker_snapshot *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_containers; i++)
        n += s->containers[i].inspected;
    return n;
}

static const char *label(const docker_container *c, const char *key)
{
    for (size_t i = 0; i < c->n_labels; i++)
        if (strcmp(c->labels[i].key, key) == 0) return c->labels[i].value;
    return NULL;
}

static bool synced_with(const docker_snapshot *s, size_t n)
{
    return s->engine.synced && s->n_containers == n && all_inspected(s);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sw-docker-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(sock, sizeof sock, "%s/docker.sock", dir);
    pthread_mutex_lock(&eng.mu);
    engine_reset();
    pthread_mutex_unlock(&eng.mu);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fsrv_stop(srv);
    srv = NULL;
    pthread_mutex_lock(&eng.mu);
    engine_reset();
    pthread_mutex_unlock(&eng.mu);
    unlink(sock);
    rmdir(dir);
    return 0;
}

static void start_engine(void)
{
    srv = fsrv_start(sock, engine_handle, NULL);
    assert_non_null(srv);
}

/* ---- tests: pure parts ------------------------------------------------------------- */

static void test_negotiate(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int rc;
        const char *api;
    } cases[] = {
        {"{\"ApiVersion\":\"1.41\",\"MinAPIVersion\":\"1.12\"}", 0, "1.41"},
        {"{\"ApiVersion\":\"1.43\"}", 0, "1.43"},
        {"{\"ApiVersion\":\"1.47\",\"MinAPIVersion\":\"1.24\"}", 0, DOCKER_API_NEWEST},
        {"{\"ApiVersion\":\"2.0\"}", 0, DOCKER_API_NEWEST},
        {"{\"ApiVersion\":\"1.40\",\"MinAPIVersion\":\"1.12\"}", -ENOTSUP, NULL},
        {"{\"ApiVersion\":\"1.9\"}", -ENOTSUP, NULL},
        {"{\"ApiVersion\":\"1.60\",\"MinAPIVersion\":\"1.50\"}", -ENOTSUP, NULL},
        {"{\"ApiVersion\":\"1.4x\"}", -EINVAL, NULL},
        {"{\"ApiVersion\":\"\"}", -EINVAL, NULL},
        {"{\"ApiVersion\":141}", -EINVAL, NULL},
        {"{\"Version\":\"20.10\"}", -EINVAL, NULL},
        {"[\"ApiVersion\",\"1.41\"]", -EINVAL, NULL},
        {"{\"ApiVersion\":\"1.41\"", -EINVAL, NULL},
        {"", -EINVAL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char api[16] = "";
        buf err;
        buf_init(&err, 1024);
        int rc = docker_negotiate_version(cases[i].body, strlen(cases[i].body), api, &err);
        if (rc != cases[i].rc) fail_msg("case %zu (%s): rc %d", i, cases[i].body, rc);
        if (rc == 0) {
            assert_string_equal(api, cases[i].api);
        } else {
            assert_true(err.len > 0);
        }
        if (rc == -ENOTSUP && strstr(cases[i].body, "1.40"))
            assert_non_null(strstr(buf_cstr(&err), "1.40"));
        buf_cleanup(&err);
    }
}

static void test_negotiate_captures(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    const char *files[] = {"docker/dockerd-version.json", "docker/podman-version.json"};
    for (size_t i = 0; i < 2; i++) {
        size_t n;
        char *b = read_shared(files[i], &n);
        char api[16];
        buf err;
        buf_init(&err, 1024);
        assert_int_equal(docker_negotiate_version(b, n, api, &err), 0);
        assert_string_equal(api, "1.41");
        buf_cleanup(&err);
        free(b);
    }
}

static void test_hosts(void **state)
{
    (void)state;
    static const struct {
        const char *host;
        int rc;
    } cases[] = {
        {"unix:///var/run/docker.sock", 0},
        {"tcp://127.0.0.1:2375", 0},
        {"tcp://docker.example", 0},
        {"tcp://[::1]:2376", 0},
        {"tcp://[::1]", 0},
        {"http://127.0.0.1:2375/", 0},
        {"https://docker.example:2376/base", 0},
        {"unix://", -EINVAL},
        {"tcp://", -EINVAL},
        {"tcp:///path", -EINVAL},
        {"tcp://a b:1", -EINVAL},
        {"ssh://user@host", -EINVAL},
        {"npipe:////./pipe/docker_engine", -EINVAL},
        {"fd://", -EINVAL},
        {"", -EINVAL},
        {"/var/run/docker.sock", -EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        docker_opts o = {.host = cases[i].host, .tls = true, .tls_ca_file = "/nonexistent/ca.pem"};
        docker *d = NULL;
        buf err;
        buf_init(&err, 1024);
        int rc = docker_new(&o, NULL, &d, &err);
        if (rc != cases[i].rc)
            fail_msg("host \"%s\": rc %d (%s)", cases[i].host, rc, buf_cstr(&err));
        if (rc == 0) {
            assert_non_null(d);
            docker_snapshot *s = docker_snapshot_get(d);
            assert_string_equal(s->engine.host, cases[i].host);
            assert_false(s->engine.connected);
            assert_int_equal(s->n_containers, 0);
            docker_snapshot_unref(s);
        } else {
            assert_null(d);
            assert_non_null(strstr(buf_cstr(&err), cases[i].host));
        }
        docker_free(d);
        buf_cleanup(&err);
    }
    /* No host: DOCKER_HOST, else the default socket. */
    char *saved = getenv("DOCKER_HOST") ? strdup(getenv("DOCKER_HOST")) : NULL;
    setenv("DOCKER_HOST", "tcp://10.0.0.1:2375", 1);
    docker *d = NULL;
    buf err;
    buf_init(&err, 1024);
    assert_int_equal(docker_new(NULL, NULL, &d, &err), 0);
    docker_snapshot *s = docker_snapshot_get(d);
    assert_string_equal(s->engine.host, "tcp://10.0.0.1:2375");
    docker_snapshot_unref(s);
    docker_free(d);
    unsetenv("DOCKER_HOST");
    assert_int_equal(docker_new(NULL, NULL, &d, &err), 0);
    s = docker_snapshot_get(d);
    assert_string_equal(s->engine.host, DOCKER_DEFAULT_HOST);
    docker_snapshot_unref(s);
    docker_free(d);
    if (saved) setenv("DOCKER_HOST", saved, 1);
    free(saved);
    buf_cleanup(&err);
    /* docker_free(NULL) is a no-op; so is unref(NULL). */
    docker_free(NULL);
    docker_snapshot_unref(NULL);
}

/* The captures fed straight into the cache (no engine), in odd chunkings. */
static void test_feed_captures(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-containers-json.json");
    docker *d = NULL;
    buf err;
    buf_init(&err, 1024);
    docker_opts o = {.host = "unix:///nonexistent/docker.sock"};
    assert_int_equal(docker_new(&o, NULL, &d, &err), 0);
    size_t n;
    char *list = read_shared("docker/dockerd-containers-json.json", &n);
    /* Truncated: refused, nothing changes. */
    assert_int_equal(docker_feed_list(d, list, n / 2), -EINVAL);
    assert_int_equal(docker_feed_list(d, list, n), 0);
    free(list);
    char *insp = read_shared("docker/dockerd-container-inspect.json", &n);
    assert_int_equal(docker_feed_inspect(d, ID_APP1, insp, n - 10), -EINVAL);
    assert_int_equal(docker_feed_inspect(d, ID_WEB1, insp, n), -EINVAL); /* another id */
    assert_int_equal(docker_feed_inspect(d, ID_APP1, insp, n), 0);
    free(insp);
    char *info = read_shared("docker/podman-info.json", &n);
    assert_int_equal(docker_feed_info(d, info, n), 0);
    assert_int_equal(docker_feed_info(d, "[]", 2), -EINVAL);
    free(info);
    /* The live events capture up to oom1's destroy, in chunks of 7 bytes. */
    char *evs = read_shared("docker/dockerd-events-live.ndjson", &n);
    size_t cut = (size_t)(strstr(evs, "{\"status\":\"destroy\"") - evs);
    for (size_t off = 0; off < cut; off += 7)
        docker_feed_events(d, evs + off, cut - off < 7 ? cut - off : 7);
    assert_int_equal(docker_errors(d, DOCKER_ERR_BAD_EVENT), 0);
    docker_counters c;
    docker_counters_get(d, &c);
    assert_true(c.events > 0);
    assert_true(c.events_ignored > 0);
    docker_step(d); /* publishes (and starts connecting: fails later, harmlessly) */
    docker_snapshot *s = docker_snapshot_get(d);
    const docker_container *app = docker_snapshot_find(s, ID_APP1);
    assert_non_null(app);
    assert_string_equal(app->name, "app1");
    assert_string_equal(app->image, "local/mini:latest");
    assert_string_equal(app->state, "exited");                                /* die */
    assert_string_equal(docker_snapshot_find(s, ID_MINI1)->state, "running"); /* unpaused */
    assert_string_equal(docker_snapshot_find(s, ID_HEALTH1)->health, "healthy");
    assert_string_equal(docker_snapshot_find(s, ID_HEALTH1)->name, "health1");
    assert_int_equal(docker_snapshot_find(s, ID_OOM1)->oom_events, 1);
    assert_string_equal(docker_snapshot_find(s, ID_OOM1)->state, "exited");
    assert_string_equal(s->engine.cgroup_driver, "cgroupfs");
    assert_int_equal(s->engine.cgroup_version, 1);
    docker_snapshot_unref(s);
    /* The rest, byte by byte: everything is destroyed. */
    for (size_t off = cut; off < n; off++)
        docker_feed_events(d, evs + off, 1);
    free(evs);
    docker_step(d);
    s = docker_snapshot_get(d);
    assert_int_equal(s->n_containers, 0);
    assert_int_equal(docker_errors(d, DOCKER_ERR_BAD_EVENT), 0);
    docker_snapshot_unref(s);
    docker_free(d);
    buf_cleanup(&err);
}

/* ---- tests: against the fake engine ------------------------------------------------ */

static void test_sync_docker(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    start_engine();
    docker *d = open_docker(2000);
    WAIT_UNTIL(d, 5000, synced_with(s, 5));
    docker_snapshot *s = docker_snapshot_get(d);
    assert_true(s->engine.connected);
    assert_string_equal(s->engine.api_version, "1.41");
    assert_string_equal(s->engine.version, "20.10.24+dfsg1");
    assert_false(s->engine.podman);
    assert_string_equal(s->engine.cgroup_driver, "cgroupfs");
    assert_int_equal(s->engine.cgroup_version, 1);
    assert_int_equal(s->engine.ncpu, 2);
    assert_int_equal(s->engine.mem_total, 25276510208LL);
    assert_string_equal(s->engine.os, "linux");
    assert_string_equal(s->engine.last_error, "");
    /* sorted by id */
    for (size_t i = 1; i < s->n_containers; i++)
        assert_true(strcmp(s->containers[i - 1].id, s->containers[i].id) < 0);

    const docker_container *app = docker_snapshot_find(s, ID_APP1);
    assert_non_null(app);
    assert_string_equal(app->name, "app1");
    assert_string_equal(app->image, "local/mini:latest");
    assert_true(strncmp(app->image_id, "sha256:165bb101", 15) == 0);
    assert_string_equal(app->state, "exited");
    assert_int_equal(app->pid, 0);
    assert_int_equal(app->exit_code, 137);
    assert_false(app->oom_killed);
    assert_int_equal(app->restart_count, 0);
    assert_string_equal(app->network_mode, "testnet");
    assert_string_equal(app->cgroup_parent, "");
    assert_string_equal(app->health, "");
    assert_int_equal(app->memory_limit, 134217728);
    assert_int_equal(app->nano_cpus, 500000000);
    assert_int_equal(app->pids_limit, 64);
    assert_int_equal(app->n_labels, 5);
    assert_string_equal(app->labels[0].key, "com.docker.compose.project");
    assert_string_equal(app->labels[0].value, "demo");
    assert_string_equal(app->labels[4].key, "prometheus.io/scrape");
    /* 2026-11-25T13:39:35.425777139Z and 13:40:19.338420799Z */
    assert_true(app->started_at > 1795613975.42 && app->started_at < 1795613975.43);
    assert_true(app->finished_at > 1795614019.33 && app->finished_at < 1795614019.34);
    assert_true(app->created > 1795613974.9 && app->created < 1795613975.0);

    const docker_container *h = by_name(s, "health1");
    assert_non_null(h);
    assert_string_equal(h->id, ID_HEALTH1);
    assert_string_equal(h->health, "healthy");
    assert_string_equal(h->state, "running");
    assert_int_equal(h->pid, 12375);
    assert_string_equal(h->network_mode, "none");
    assert_int_equal(h->finished_at, 0); /* Go's zero time */
    const docker_container *mini = by_name(s, "mini1");
    assert_non_null(mini);
    assert_string_equal(mini->image, "local/mini");
    assert_string_equal(label(mini, "prometheus.io/port"), "8080");
    assert_string_equal(by_name(s, "web1")->network_mode, "host");
    assert_string_equal(by_name(s, "oom1")->state, "exited");
    docker_snapshot_unref(s);

    /* Every path but /version carried the negotiated version; the events
     * stream asked for container events only. */
    pthread_mutex_lock(&eng.mu);
    bool saw_events = false;
    for (size_t i = 0; i < eng.n_paths; i++) {
        if (strcmp(eng.paths[i], "/version") == 0) continue;
        if (strncmp(eng.paths[i], "/v1.41/", 7) != 0) fail_msg("path %s", eng.paths[i]);
        if (strncmp(eng.paths[i], "/v1.41/events?filters=", 22) == 0) {
            saw_events = true;
            assert_non_null(strstr(eng.paths[i], "%22container%22"));
        }
    }
    assert_true(saw_events);
    assert_int_equal(eng.lists, 1);
    pthread_mutex_unlock(&eng.mu);
    for (int e = 0; e < DOCKER_ERR_COUNT; e++)
        if (docker_errors(d, (enum docker_error)e) != 0)
            fail_msg("unexpected %s error", docker_error_name((enum docker_error)e));
    docker_free(d);
}

static void test_events(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    start_engine();
    docker *d = open_docker(2000);
    WAIT_UNTIL(d, 5000, synced_with(s, 5));
    uint64_t seq0;
    {
        docker_snapshot *s = docker_snapshot_get(d);
        seq0 = s->seq;
        docker_snapshot_unref(s);
    }

    /* create + start of a new container */
    engine_add(ID_NEW1, "new1", 4242);
    emit("create", ID_NEW1, "{\"image\":\"busybox:1.36\",\"name\":\"new1\",\"team\":\"blue\"}");
    emit("start", ID_NEW1, "{\"image\":\"busybox:1.36\",\"name\":\"new1\",\"team\":\"blue\"}");
    WAIT_UNTIL(d, 3000,
               (by_name(s, "new1") && by_name(s, "new1")->inspected &&
                by_name(s, "new1")->pid == 4242 &&
                strcmp(by_name(s, "new1")->state, "running") == 0));
    {
        docker_snapshot *s = docker_snapshot_get(d);
        assert_true(s->seq > seq0);
        const docker_container *c = docker_snapshot_find(s, ID_NEW1);
        assert_string_equal(c->image, "busybox:1.36");
        assert_string_equal(label(c, "team"), "blue");
        docker_snapshot_unref(s);
    }

    /* rename */
    engine_rename(ID_WEB1, "web2");
    emit("rename", ID_WEB1, "{\"name\":\"web2\",\"oldName\":\"/web1\",\"image\":\"local/mini\"}");
    WAIT_UNTIL(d, 3000, by_name(s, "web2") && !by_name(s, "web1"));

    /* oom (the real event line), twice */
    char *oom = capture_line("docker/example-events.ndjson", "\"Action\":\"oom\"");
    emit_raw(oom);
    WAIT_UNTIL(d, 3000, docker_snapshot_find(s, ID_OOM1)->oom_events == 1);
    emit_raw(oom);
    WAIT_UNTIL(d, 3000, docker_snapshot_find(s, ID_OOM1)->oom_events == 2);
    free(oom);

    /* die */
    engine_state(ID_MINI1, "exited", 0, 137);
    emit("die", ID_MINI1, "{\"exitCode\":\"137\",\"name\":\"mini1\"}");
    WAIT_UNTIL(d, 3000,
               strcmp(docker_snapshot_find(s, ID_MINI1)->state, "exited") == 0 &&
                   docker_snapshot_find(s, ID_MINI1)->pid == 0 &&
                   docker_snapshot_find(s, ID_MINI1)->exit_code == 137);

    /* health: Docker's "health_status: unhealthy", then Podman's form */
    engine_health(ID_HEALTH1, "unhealthy");
    emit("health_status: unhealthy", ID_HEALTH1, NULL);
    WAIT_UNTIL(d, 3000, strcmp(docker_snapshot_find(s, ID_HEALTH1)->health, "unhealthy") == 0);
    engine_health(ID_HEALTH1, "healthy");
    emit("health_status", ID_HEALTH1, "{\"health_status\":\"healthy\"}");
    WAIT_UNTIL(d, 3000, strcmp(docker_snapshot_find(s, ID_HEALTH1)->health, "healthy") == 0);

    /* pause / unpause */
    engine_state(ID_WEB1, "paused", 1002, 0);
    emit("pause", ID_WEB1, NULL);
    WAIT_UNTIL(d, 3000, strcmp(docker_snapshot_find(s, ID_WEB1)->state, "paused") == 0);
    engine_state(ID_WEB1, "running", 1002, 0);
    emit("unpause", ID_WEB1, NULL);
    WAIT_UNTIL(d, 3000, strcmp(docker_snapshot_find(s, ID_WEB1)->state, "running") == 0);

    /* destroy (the real event line) */
    engine_remove(ID_OOM1);
    char *destroy = capture_line("docker/example-events.ndjson", "\"Action\":\"destroy\"");
    emit_raw(destroy);
    free(destroy);
    WAIT_UNTIL(d, 3000, docker_snapshot_find(s, ID_OOM1) == NULL);

    /* Garbage lines are skipped and counted; network and exec events are
     * ignored; a line split over three chunks and one with unknown fields
     * still apply. */
    emit_raw("this is not json\n");
    emit_raw("{\"Type\":\"container\"}\n");
    emit_raw("[1,2,3]\n");
    emit_raw("{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"../../etc\"}}\n");
    emit_raw("\n\r\n   \n");
    char *net = capture_line("docker/example-events.ndjson", "\"Type\":\"network\"");
    emit_raw(net);
    free(net);
    char *exec = capture_line("docker/example-events.ndjson", "exec_start");
    emit_raw(exec);
    free(exec);
    engine_state(ID_APP1, "running", 777, 0);
    char split[2048];
    snprintf(split, sizeof split,
             "{\"Type\":\"container\",\"Action\":\"start\",\"FutureField\":[{\"x\":null}],"
             "\"Actor\":{\"ID\":\"%s\",\"Attributes\":{\"name\":\"app1\",\"new\":true}},"
             "\"time\":1795614030}\n",
             ID_APP1);
    char a[40], b[40];
    snprintf(a, sizeof a, "%.30s", split);
    snprintf(b, sizeof b, "%.30s", split + 30);
    emit_raw(a);
    emit_raw(b);
    emit_raw(split + 60);
    WAIT_UNTIL(d, 3000, docker_snapshot_find(s, ID_APP1)->pid == 777);
    assert_int_equal(docker_errors(d, DOCKER_ERR_BAD_EVENT), 4);
    docker_counters c;
    docker_counters_get(d, &c);
    assert_true(c.events_ignored >= 2);
    /* The cache still holds everyone else. */
    WAIT_UNTIL(d, 1000, s->n_containers == 5 && all_inspected(s) && s->engine.synced);
    assert_int_equal(docker_errors(d, DOCKER_ERR_STREAM_CLOSED), 0);
    docker_free(d);
}

static void test_podman(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/podman-version.json");
    engine_load_podman();
    start_engine();
    docker *d = open_docker(2000);
    WAIT_UNTIL(d, 5000, synced_with(s, 3));
    docker_snapshot *s = docker_snapshot_get(d);
    assert_true(s->engine.podman);
    assert_string_equal(s->engine.api_version, "1.41");
    assert_string_equal(s->engine.version, "4.3.1");
    assert_string_equal(s->engine.cgroup_driver, "cgroupfs");
    const docker_container *app = docker_snapshot_find(s, ID_PODMAN_APP1);
    assert_non_null(app);
    assert_string_equal(app->name, "app1");
    assert_string_equal(app->image, "localhost/local/mini:latest");
    assert_string_equal(app->state, "exited");
    assert_string_equal(app->health, ""); /* Podman's {"Status": ""} */
    assert_string_equal(label(app, "com.docker.compose.service"), "app");
    assert_non_null(by_name(s, "web1"));
    assert_non_null(by_name(s, "mini1"));
    docker_snapshot_unref(s);

    /* Podman's events (status + Action, init/cleanup) replayed. */
    size_t n;
    char *evs = read_shared("docker/podman-events.ndjson", &n);
    emit_raw(evs);
    free(evs);
    docker_counters c;
    int64_t end = now_ms() + 3000;
    do {
        docker_poll(d, 20);
        docker_counters_get(d, &c);
    } while (c.events_ignored < 2 && now_ms() < end);
    assert_true(c.events > 0);
    assert_true(c.events_ignored >= 2); /* init, cleanup */
    assert_int_equal(docker_errors(d, DOCKER_ERR_BAD_EVENT), 0);
    WAIT_UNTIL(d, 3000, synced_with(s, 3));
    docker_free(d);
}

/* A container that is created and destroyed while its inspect runs: the
 * 404 that follows its destroy event is no error. */
static void test_short_lived(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    engine_add(ID_NEW1, "oneshot", 4);
    engine_mode(ID_NEW1, M_SLOW_404, M_OK);
    pthread_mutex_lock(&eng.mu);
    eng.slow_ms = 500;
    pthread_mutex_unlock(&eng.mu);
    start_engine();
    docker *d = open_docker(2000);
    WAIT_UNTIL(d, 5000, s->engine.synced && s->n_containers == 6 && n_inspected(s) == 5);
    /* The list had it; the others are inspected, its inspect is in flight
     * (slow, then 404). */
    emit("die", ID_NEW1, "{\"exitCode\":\"0\"}");
    emit("destroy", ID_NEW1, NULL);
    WAIT_UNTIL(d, 3000, docker_snapshot_find(s, ID_NEW1) == NULL);
    int64_t end = now_ms() + 1000; /* let the slow 404 arrive */
    while (now_ms() < end)
        docker_poll(d, 20);
    assert_int_equal(docker_errors(d, DOCKER_ERR_NOT_FOUND), 0);
    WAIT_UNTIL(d, 1000, synced_with(s, 5));
    docker_free(d);
}

/* The events stream is cut; meanwhile a container went and another came,
 * without events: the reconnect re-lists. */
static void test_disconnect_relist(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    start_engine();
    docker *d = open_docker(2000);
    WAIT_UNTIL(d, 5000, synced_with(s, 5));
    engine_remove(ID_MINI1);
    engine_add(ID_NEW1, "late1", 555);
    pthread_mutex_lock(&eng.mu);
    eng.drop_gen++;
    pthread_mutex_unlock(&eng.mu);
    WAIT_UNTIL(d, 5000,
               synced_with(s, 5) && by_name(s, "late1") && !docker_snapshot_find(s, ID_MINI1));
    assert_int_equal(docker_errors(d, DOCKER_ERR_STREAM_CLOSED), 1);
    pthread_mutex_lock(&eng.mu);
    assert_int_equal(eng.lists, 2);
    assert_int_equal(eng.streams, 1);
    pthread_mutex_unlock(&eng.mu);
    docker_counters c;
    docker_counters_get(d, &c);
    assert_int_equal(c.sessions, 2);
    /* Events flow on the new stream. */
    engine_state(ID_NEW1, "exited", 0, 1);
    emit("die", ID_NEW1, "{\"exitCode\":\"1\"}");
    WAIT_UNTIL(d, 3000, strcmp(docker_snapshot_find(s, ID_NEW1)->state, "exited") == 0);
    docker_free(d);
}

/* The engine goes away (socket closed and removed) and comes back with
 * other containers. */
static void test_engine_restart(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    start_engine();
    docker *d = open_docker(2000);
    WAIT_UNTIL(d, 5000, synced_with(s, 5));
    fsrv_stop(srv);
    srv = NULL;
    WAIT_UNTIL(d, 3000, !s->engine.connected && docker_errors(d, DOCKER_ERR_CONNECT) >= 2);
    {
        docker_snapshot *s = docker_snapshot_get(d);
        assert_int_equal(s->n_containers, 5); /* kept while away */
        assert_true(strlen(s->engine.last_error) > 0);
        docker_snapshot_unref(s);
    }
    engine_remove(ID_OOM1);
    engine_remove(ID_APP1);
    engine_add(ID_NEW1, "new1", 99);
    start_engine();
    WAIT_UNTIL(d, 5000, synced_with(s, 4) && by_name(s, "new1") && !by_name(s, "app1"));
    {
        docker_snapshot *s = docker_snapshot_get(d);
        assert_true(s->engine.connected);
        assert_string_equal(s->engine.last_error, "");
        docker_snapshot_unref(s);
    }
    assert_int_equal(docker_errors(d, DOCKER_ERR_STREAM_CLOSED), 1);
    docker_free(d);
}

/* No socket at start; it appears later. */
static void test_socket_appears(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    docker *d = open_docker(2000);
    assert_int_equal(docker_stats_fetch(d, (const char *[]){ID_APP1}, 1, 0, NULL, NULL), -ENOTCONN);
    WAIT_UNTIL(d, 3000, docker_errors(d, DOCKER_ERR_CONNECT) >= 3);
    {
        docker_snapshot *s = docker_snapshot_get(d);
        assert_false(s->engine.connected);
        assert_int_equal(s->n_containers, 0);
        assert_true(strlen(s->engine.last_error) > 0);
        docker_snapshot_unref(s);
    }
    start_engine();
    WAIT_UNTIL(d, 5000, synced_with(s, 5));
    docker_free(d);
}

static void test_api_too_old(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    pthread_mutex_lock(&eng.mu);
    free(eng.version);
    eng.version =
        strdup("{\"Version\":\"19.03.15\",\"ApiVersion\":\"1.40\",\"MinAPIVersion\":\"1.12\","
               "\"Os\":\"linux\"}");
    pthread_mutex_unlock(&eng.mu);
    start_engine();
    docker *d = open_docker(2000);
    WAIT_UNTIL(d, 3000, docker_errors(d, DOCKER_ERR_UNSUPPORTED_API) >= 2);
    docker_snapshot *s = docker_snapshot_get(d);
    assert_false(s->engine.connected);
    assert_non_null(strstr(s->engine.last_error, "1.40"));
    assert_non_null(strstr(s->engine.last_error, "1.41"));
    assert_string_equal(s->engine.api_version, "");
    docker_snapshot_unref(s);
    pthread_mutex_lock(&eng.mu);
    assert_int_equal(eng.lists, 0);
    assert_int_equal(eng.events_reqs, 0);
    pthread_mutex_unlock(&eng.mu);
    docker_free(d);
}

/* A newer engine: the client speaks its own newest version. */
static void test_api_newer(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    pthread_mutex_lock(&eng.mu);
    free(eng.version);
    eng.version =
        strdup("{\"Version\":\"28.2.2\",\"ApiVersion\":\"1.50\",\"MinAPIVersion\":\"1.24\"}");
    pthread_mutex_unlock(&eng.mu);
    start_engine();
    docker *d = open_docker(2000);
    WAIT_UNTIL(d, 5000, synced_with(s, 5));
    docker_snapshot *s = docker_snapshot_get(d);
    assert_string_equal(s->engine.api_version, DOCKER_API_NEWEST);
    docker_snapshot_unref(s);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "/v%s/", DOCKER_API_NEWEST);
    pthread_mutex_lock(&eng.mu);
    for (size_t i = 0; i < eng.n_paths; i++)
        if (strcmp(eng.paths[i], "/version") != 0)
            assert_true(strncmp(eng.paths[i], prefix, strlen(prefix)) == 0);
    pthread_mutex_unlock(&eng.mu);
    docker_free(d);
}

/* One container's inspect 404s (it vanished), one returns garbage, one a
 * truncated body, one is too slow: the others are cached, errors counted. */
static void test_inspect_failures(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    engine_mode(ID_OOM1, M_404, M_OK);
    engine_mode(ID_MINI1, M_GARBAGE, M_OK);
    engine_mode(ID_WEB1, M_TRUNCATED, M_OK);
    engine_mode(ID_HEALTH1, M_SLOW, M_OK);
    start_engine();
    docker *d = open_docker(300);
    WAIT_UNTIL(d, 5000,
               s->engine.synced && docker_errors(d, DOCKER_ERR_NOT_FOUND) == 1 &&
                   docker_errors(d, DOCKER_ERR_BAD_JSON) >= 1 &&
                   docker_errors(d, DOCKER_ERR_TRANSFER) >= 1 &&
                   docker_errors(d, DOCKER_ERR_TIMEOUT) >= 1 && docker_snapshot_find(s, ID_APP1) &&
                   docker_snapshot_find(s, ID_APP1)->inspected);
    docker_snapshot *s = docker_snapshot_get(d);
    assert_int_equal(s->n_containers, 4);
    assert_null(docker_snapshot_find(s, ID_OOM1));
    const docker_container *mini = docker_snapshot_find(s, ID_MINI1);
    assert_non_null(mini);
    assert_false(mini->inspected);
    assert_string_equal(mini->name, "mini1"); /* from the list */
    assert_string_equal(mini->state, "running");
    assert_false(docker_snapshot_find(s, ID_WEB1)->inspected);
    assert_false(docker_snapshot_find(s, ID_HEALTH1)->inspected);
    assert_true(s->engine.connected);
    docker_snapshot_unref(s);

    /* They recover by themselves (retried after a delay). */
    engine_mode(ID_MINI1, M_OK, M_OK);
    engine_mode(ID_WEB1, M_OK, M_OK);
    engine_mode(ID_HEALTH1, M_OK, M_OK);
    WAIT_UNTIL(d, 6000, synced_with(s, 4));
    docker_free(d);
}

/* A garbage list fails the session (retried with backoff), then recovers;
 * a slow list times out. */
static void test_list_failures(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    pthread_mutex_lock(&eng.mu);
    eng.list_override = strdup("[{\"Id\":\"abc\",\"Names\":[\"/x\"]}, garbage");
    pthread_mutex_unlock(&eng.mu);
    start_engine();
    docker *d = open_docker(2000);
    WAIT_UNTIL(d, 3000, docker_errors(d, DOCKER_ERR_BAD_JSON) >= 2);
    {
        docker_snapshot *s = docker_snapshot_get(d);
        assert_false(s->engine.synced);
        assert_int_equal(s->n_containers, 0);
        docker_snapshot_unref(s);
    }
    /* Entries without a usable Id are skipped, the rest merged. */
    pthread_mutex_lock(&eng.mu);
    free(eng.list_override);
    char *good = read_shared("docker/dockerd-containers-json.json", NULL);
    size_t gl = strlen(good);
    eng.list_override = malloc(gl + 64);
    snprintf(eng.list_override, gl + 64, "[{\"Id\":\"../etc\"},7,%s", good + 1);
    free(good);
    pthread_mutex_unlock(&eng.mu);
    uint64_t bad0 = docker_errors(d, DOCKER_ERR_BAD_JSON);
    WAIT_UNTIL(d, 5000, s->engine.synced && s->n_containers == 3);
    assert_true(docker_errors(d, DOCKER_ERR_BAD_JSON) >= bad0 + 1);
    docker_free(d);
}

typedef struct stats_seen {
    char id[80];
    bool ok;
    enum docker_error error;
    long status;
    char *body;
    size_t len;
} stats_seen;

static stats_seen seen[16];
static size_t n_seen;

static void on_stats(void *ctx, const docker_stats_result *r)
{
    (void)ctx;
    stats_seen *x = &seen[n_seen++];
    snprintf(x->id, sizeof x->id, "%s", r->id);
    x->ok = r->ok;
    x->error = r->error;
    x->status = r->status;
    x->body = strndup(r->body, r->body_len);
    x->len = r->body_len;
}

static stats_seen *seen_for(const char *id)
{
    for (size_t i = 0; i < n_seen; i++)
        if (strcmp(seen[i].id, id) == 0) return &seen[i];
    return NULL;
}

static void seen_clear(void)
{
    for (size_t i = 0; i < n_seen; i++)
        free(seen[i].body);
    n_seen = 0;
}

static void set_stats(const char *id, const char *rel)
{
    size_t n;
    char *b = read_shared(rel, &n);
    pthread_mutex_lock(&eng.mu);
    fc *c = fc_find(id);
    free(c->stats);
    c->stats = b;
    c->stats_len = n;
    pthread_mutex_unlock(&eng.mu);
}

static void test_stats(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-stats-oneshot.json");
    engine_load_docker();
    set_stats(ID_MINI1, "docker/dockerd-stats-netnone-mini1.json");
    set_stats(ID_WEB1, "docker/dockerd-stats-hostnet-web1.json");
    set_stats(ID_APP1, "docker/dockerd-stats-exited.json");
    set_stats(ID_HEALTH1, "docker/dockerd-stats-oneshot.json");
    engine_mode(ID_HEALTH1, M_OK, M_SLOW);
    start_engine();
    docker *d = open_docker(300);
    WAIT_UNTIL(d, 5000, synced_with(s, 5));
    assert_int_equal(docker_stats_fetch(d, (const char *[]){"../../x"}, 1, 0, on_stats, NULL),
                     -EINVAL);
    const char *ids[] = {ID_MINI1, ID_WEB1, ID_APP1, ID_HEALTH1, ID_NEW1 /* vanished */};
    n_seen = 0;
    assert_int_equal(docker_stats_fetch(d, ids, 5, 300, on_stats, NULL), 0);
    int64_t end = now_ms() + 5000;
    while (n_seen < 5 && now_ms() < end)
        docker_poll(d, 20);
    assert_int_equal(n_seen, 5);
    size_t n;
    char *want = read_shared("docker/dockerd-stats-netnone-mini1.json", &n);
    stats_seen *m = seen_for(ID_MINI1);
    assert_true(m->ok);
    assert_int_equal(m->status, 200);
    assert_int_equal(m->len, n);
    assert_memory_equal(m->body, want, n);
    free(want);
    assert_true(seen_for(ID_WEB1)->ok);
    assert_true(seen_for(ID_APP1)->ok);
    assert_false(seen_for(ID_HEALTH1)->ok);
    assert_int_equal(seen_for(ID_HEALTH1)->error, DOCKER_ERR_TIMEOUT);
    stats_seen *gone = seen_for(ID_NEW1);
    assert_false(gone->ok);
    assert_int_equal(gone->error, DOCKER_ERR_NOT_FOUND);
    assert_int_equal(gone->status, 404);
    assert_non_null(strstr(gone->body, "No such container"));
    assert_int_equal(docker_errors(d, DOCKER_ERR_TIMEOUT), 1);
    assert_int_equal(docker_errors(d, DOCKER_ERR_NOT_FOUND), 1);
    docker_counters c;
    docker_counters_get(d, &c);
    assert_int_equal(c.stats_requests, 5);
    pthread_mutex_lock(&eng.mu);
    assert_int_equal(eng.stats_reqs, 5);
    pthread_mutex_unlock(&eng.mu);
    seen_clear();

    /* Pending stats are cancelled (and reported) by docker_free. */
    assert_int_equal(docker_stats_fetch(d, ids, 4, 5000, on_stats, NULL), 0);
    docker_free(d);
    assert_int_equal(n_seen, 4);
    seen_clear();
}

/* Podman: an exited container's stats are 200 with an empty body. */
static void test_stats_podman_empty(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/podman-stats-oneshot.json");
    engine_load_podman();
    start_engine();
    docker *d = open_docker(2000);
    WAIT_UNTIL(d, 5000, synced_with(s, 3));
    n_seen = 0;
    assert_int_equal(docker_stats_fetch(d, (const char *[]){ID_PODMAN_APP1}, 1, 0, on_stats, NULL),
                     0);
    int64_t end = now_ms() + 3000;
    while (n_seen < 1 && now_ms() < end)
        docker_poll(d, 20);
    assert_int_equal(n_seen, 1);
    assert_true(seen[0].ok);
    assert_int_equal(seen[0].status, 200);
    assert_int_equal(seen[0].len, 0);
    seen_clear();
    docker_free(d);
}

/* Slow replies to the session requests time out and are retried. */
static bool slow_version_handle(fsrv *s, int fd, const fsrv_req *rq, void *ctx)
{
    if (strcmp(rq->path, "/version") == 0) {
        pthread_mutex_lock(&eng.mu);
        bool slow = eng.slow_ms > 0;
        pthread_mutex_unlock(&eng.mu);
        if (slow && !fsrv_sleep(s, 1000)) return false;
    }
    return engine_handle(s, fd, rq, ctx);
}

static void test_slow_engine(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    srv = fsrv_start(sock, slow_version_handle, NULL);
    docker *d = open_docker(150);
    WAIT_UNTIL(d, 3000, docker_errors(d, DOCKER_ERR_TIMEOUT) >= 2);
    pthread_mutex_lock(&eng.mu);
    eng.slow_ms = 0;
    pthread_mutex_unlock(&eng.mu);
    WAIT_UNTIL(d, 5000, synced_with(s, 5));
    docker_free(d);
}

/* An engine that rejects the events filter: the next session asks for the
 * unfiltered stream, and network events in it are ignored. */
static void test_events_filter_rejected(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    pthread_mutex_lock(&eng.mu);
    eng.reject_filters = true;
    pthread_mutex_unlock(&eng.mu);
    start_engine();
    docker *d = open_docker(2000);
    WAIT_UNTIL(d, 5000, synced_with(s, 5));
    assert_int_equal(docker_errors(d, DOCKER_ERR_HTTP_STATUS), 1);
    char *net = capture_line("docker/example-events.ndjson", "\"Type\":\"network\"");
    emit_raw(net);
    free(net);
    engine_state(ID_MINI1, "exited", 0, 4);
    emit("die", ID_MINI1, "{\"exitCode\":\"4\"}");
    WAIT_UNTIL(d, 3000, docker_snapshot_find(s, ID_MINI1)->exit_code == 4);
    docker_counters c;
    docker_counters_get(d, &c);
    assert_true(c.events_ignored >= 1);
    assert_int_equal(docker_errors(d, DOCKER_ERR_BAD_EVENT), 0);
    docker_free(d);
}

/* tcp:// against the same fake engine on loopback. */
static void test_tcp(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    int port = 0;
    srv = fsrv_start_tcp(engine_handle, NULL, &port);
    assert_non_null(srv);
    char host[64];
    snprintf(host, sizeof host, "tcp://127.0.0.1:%d", port);
    docker_opts o = {.host = host, .backoff_initial_ms = 20};
    docker *d = NULL;
    buf err;
    buf_init(&err, 1024);
    assert_int_equal(docker_new(&o, NULL, &d, &err), 0);
    buf_cleanup(&err);
    WAIT_UNTIL(d, 5000, synced_with(s, 5));
    engine_state(ID_MINI1, "exited", 0, 3);
    emit("die", ID_MINI1, "{\"exitCode\":\"3\"}");
    WAIT_UNTIL(d, 3000, docker_snapshot_find(s, ID_MINI1)->exit_code == 3);
    docker_free(d);
}

/* TLS is attempted when asked for (explicitly, or by DOCKER_TLS_VERIFY /
 * DOCKER_CERT_PATH with no host given): against the plain-HTTP fake the
 * handshake fails and counts as a connect error. (No TLS engine here: the
 * handshake itself is libcurl's, as for TLS scrapes.) */
static void test_tls_attempted(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    int port = 0;
    srv = fsrv_start_tcp(engine_handle, NULL, &port);
    assert_non_null(srv);
    char host[64];
    snprintf(host, sizeof host, "tcp://127.0.0.1:%d", port);
    docker_opts o = {.host = host, .tls = true, .backoff_initial_ms = 20, .backoff_max_ms = 50};
    docker *d = NULL;
    buf err;
    buf_init(&err, 1024);
    assert_int_equal(docker_new(&o, NULL, &d, &err), 0);
    WAIT_UNTIL(d, 3000, docker_errors(d, DOCKER_ERR_CONNECT) >= 2 && !s->engine.connected);
    docker_free(d);

    const char *keys[] = {"DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"};
    char *saved[3];
    for (int i = 0; i < 3; i++)
        saved[i] = getenv(keys[i]) ? strdup(getenv(keys[i])) : NULL;
    setenv("DOCKER_HOST", host, 1);
    setenv("DOCKER_TLS_VERIFY", "1", 1);
    setenv("DOCKER_CERT_PATH", dir, 1); /* no ca.pem/cert.pem/key.pem there */
    assert_int_equal(docker_new(NULL, NULL, &d, &err), 0);
    WAIT_UNTIL(d, 3000, docker_errors(d, DOCKER_ERR_CONNECT) >= 1 && !s->engine.connected);
    docker_free(d);
    /* Without them, the same host speaks plain HTTP. */
    unsetenv("DOCKER_TLS_VERIFY");
    unsetenv("DOCKER_CERT_PATH");
    assert_int_equal(docker_new(NULL, NULL, &d, &err), 0);
    WAIT_UNTIL(d, 5000, synced_with(s, 5));
    docker_free(d);
    for (int i = 0; i < 3; i++) {
        if (saved[i])
            setenv(keys[i], saved[i], 1);
        else
            unsetenv(keys[i]);
        free(saved[i]);
    }
    buf_cleanup(&err);
}

/* Readers on other threads take snapshots while the loop applies events;
 * a snapshot outlives docker_free. */
static atomic_bool reader_stop;
static void *reader(void *arg)
{
    docker *d = arg;
    unsigned long reads = 0;
    while (!atomic_load(&reader_stop)) {
        docker_snapshot *s = docker_snapshot_get(d);
        for (size_t i = 0; i < s->n_containers; i++) {
            /* No cmocka asserts off the main thread. */
            const docker_container *c = &s->containers[i];
            if (docker_snapshot_find(s, c->id) != c) abort();
            for (size_t k = 0; k < c->n_labels; k++)
                if (!c->labels[k].value) abort();
        }
        docker_snapshot_unref(s);
        reads++;
    }
    return (void *)reads;
}

static void test_threads(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    start_engine();
    docker *d = open_docker(2000);
    atomic_store(&reader_stop, false);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, reader, d);
    WAIT_UNTIL(d, 5000, synced_with(s, 5));
    for (int i = 0; i < 40; i++) {
        emit(i % 2 ? "pause" : "unpause", ID_WEB1, NULL);
        emit("oom", ID_APP1, NULL);
    }
    WAIT_UNTIL(d, 3000, docker_snapshot_find(s, ID_APP1)->oom_events == 40);
    docker_snapshot *kept = docker_snapshot_get(d);
    atomic_store(&reader_stop, true);
    for (int i = 0; i < 2; i++) {
        void *reads;
        pthread_join(th[i], &reads);
        assert_true((unsigned long)reads > 0);
    }
    docker_free(d);
    assert_int_equal(kept->n_containers, 5);
    assert_string_equal(docker_snapshot_find(kept, ID_APP1)->name, "app1");
    docker_snapshot_unref(kept);
}

/* Driven from a caller's own httpc loop (borrowed client). */
static void test_shared_loop(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-version.json");
    engine_load_docker();
    start_engine();
    httpc *h = httpc_new();
    char host[400];
    snprintf(host, sizeof host, "unix://%s", sock);
    docker_opts o = {.host = host};
    docker *d = NULL;
    buf err;
    buf_init(&err, 1024);
    assert_int_equal(docker_new(&o, h, &d, &err), 0);
    buf_cleanup(&err);
    bool done = false;
    int64_t end = now_ms() + 5000;
    while (!done && now_ms() < end) {
        int64_t wait = docker_step(d);
        assert_true(wait >= 0 && wait <= 1000);
        httpc_poll(h, (int)(wait < 50 ? wait : 50), -1);
        docker_step(d);
        docker_snapshot *s = docker_snapshot_get(d);
        done = synced_with(s, 5);
        docker_snapshot_unref(s);
    }
    assert_true(done);
    docker_free(d);
    assert_int_equal(httpc_running(h), 0);
    httpc_free(h);
}

/* Events lines beyond the cap are skipped and counted, and the stream goes on. */
static void test_event_line_limit(void **state)
{
    (void)state;
    docker *d = NULL;
    buf err;
    buf_init(&err, 1024);
    docker_opts o = {.host = "unix:///nonexistent.sock", .event_line_limit = 64};
    assert_int_equal(docker_new(&o, NULL, &d, &err), 0);
    char big[300];
    memset(big, 'x', sizeof big);
    docker_feed_events(d, big, sizeof big);
    docker_feed_events(d, big, sizeof big);
    docker_feed_events(d, "\n", 1);
    const char *ok = "{\"Type\":\"container\",\"Action\":\"oom\",\"Actor\":{\"ID\":\"abc\"}}\n";
    assert_true(strlen(ok) < 64);
    docker_feed_events(d, ok, strlen(ok));
    assert_int_equal(docker_errors(d, DOCKER_ERR_TOO_LARGE), 1);
    assert_int_equal(docker_errors(d, DOCKER_ERR_BAD_EVENT), 0);
    docker_step(d);
    docker_snapshot *s = docker_snapshot_get(d);
    assert_int_equal(s->n_containers, 1);
    assert_int_equal(s->containers[0].oom_events, 1);
    docker_snapshot_unref(s);
    docker_free(d);
    buf_cleanup(&err);
}

int main(void)
{
    httpc_global_init();
    pthread_mutex_init(&eng.mu, NULL);
    /* The module logs every engine error; the scenarios provoke many. */
    log_set_level(getenv("SIDEWATCH_TEST_LOG") ? LOG_DEBUG : (enum log_level)(LOG_ERROR + 1));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negotiate),
        cmocka_unit_test(test_negotiate_captures),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_feed_captures),
        cmocka_unit_test(test_event_line_limit),
        cmocka_unit_test_setup_teardown(test_sync_docker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_podman, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_lived, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_relist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_appears, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_too_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_newer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inspect_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_podman_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_engine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_filter_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_attempted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_loop, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pthread_mutex_lock(&eng.mu);
    engine_reset();
    pthread_mutex_unlock(&eng.mu);
    httpc_global_cleanup();
    return rc;
}
