/* Unit tests for the container statistics record and the Docker stats API
 * parser (agent/cstats.c): every stats capture of the real dockerd and
 * Podman in ../shared/docker, the derived examples with the docker CLI
 * numbers of NOTES.md §3 asserted exactly, and the hand-written edge cases
 * in tests/data/docker-stats/. */
#include "testutil.h"

#include <errno.h>
#include <math.h>

#include "buf.h"
#include "cstats.h"

#define DATA "tests/data/docker-stats/"
#define NA UINT64_MAX /* "not checked" in the tables below */

/* ---- helpers ------------------------------------------------------------------- */

static char *read_shared(const char *rel, size_t *len)
{
    char path[4096];
    char *d = tu_read_file(tu_shared_path(path, sizeof path, rel), len);
    if (!d) fail_msg("cannot read %s", path);
    return d;
}

static int parse_file(const char *path, bool shared, cstats *s, buf *err)
{
    size_t len = 0;
    char *d = shared ? read_shared(path, &len) : tu_read_file(path, &len);
    if (!d) fail_msg("cannot read %s", path);
    int rc = cstats_parse(s, d, len, err);
    free(d);
    return rc;
}

static void assert_fmt(const char *fmt, double v, const char *want)
{
    char got[64];
    snprintf(got, sizeof got, fmt, v);
    assert_string_equal(got, want);
}

/* ---- the captures ---------------------------------------------------------------- */

typedef struct capture_case {
    const char *file; /* under ../shared */
    const char *id, *name;
    int version;
    uint64_t known; /* bits that must be set */
    uint64_t clear; /* bits that must be clear */
    int64_t read_ns;
    uint64_t cpu_total, cpu_user, cpu_system;
    uint32_t n_percpu;
    uint64_t percpu0, host_ns;
    uint32_t online;
    uint64_t periods, thr_periods, thr_ns;
    uint64_t mem_usage, mem_limit, mem_max_usage, rss, cache, mapped, working_set;
    uint64_t pgfault, pgmajfault;
    uint64_t pids_current, pids_limit;
    uint32_t n_ifaces;
    const char *iface0;
    uint64_t rx, tx; /* summed */
    uint32_t n_blkdev;
    uint64_t blk_read, blk_write;
    const char *cpu_pct; /* docker CLI CPU %, "%.4f" */
    uint64_t mem_used;
    const char *mem_pct; /* "%.6f" */
} capture_case;

#define APP1_ID "c49a6c5f2635fc85b588f3d1e89d1f708a0c2959eee57ebe01f5d1002194265b"
#define V1_CPU (CSTATS_CPU_USAGE | CSTATS_CPU_USER_SYSTEM | CSTATS_CPU_PERCPU | CSTATS_CPU_CFS)
#define V1_MEM                                                                                     \
    (CSTATS_MEM_USAGE | CSTATS_MEM_LIMIT | CSTATS_MEM_MAX_USAGE | CSTATS_MEM_RSS |                 \
     CSTATS_MEM_CACHE | CSTATS_MEM_MAPPED_FILE | CSTATS_MEM_FAULTS | CSTATS_MEM_FAULTS_H |         \
     CSTATS_MEM_INACTIVE_FILE | CSTATS_MEM_TOTAL_INACTIVE_FILE)
/* Never in the stats API: cgroup-only fields. */
#define API_NEVER                                                                                  \
    (CSTATS_CPU_QUOTA | CSTATS_CPU_SHARES | CSTATS_PROCESSES | CSTATS_OOM | CSTATS_MEM_SWAP |      \
     CSTATS_MEM_FAILCNT)

static const capture_case captures[] = {
    /* Real dockerd 20.10, cgroup v1, stream=false: precpu filled. */
    {"docker/dockerd-stats-stream-false.json",
     APP1_ID,
     "app1",
     1,
     V1_CPU | CSTATS_CPU_HOST | CSTATS_CPU_ONLINE | CSTATS_PRECPU | V1_MEM | CSTATS_NET |
         CSTATS_BLKIO | CSTATS_PIDS_CURRENT | CSTATS_PIDS_LIMIT | CSTATS_READ_TIME |
         CSTATS_PREREAD_TIME,
     API_NEVER,
     1795613984265763977,
     4448455761,
     4300000000,
     130000000,
     2,
     2979639050,
     778680000000,
     2,
     91,
     86,
     4093809341,
     35028992,
     134217728,
     36163584,
     61440,
     33558528,
     0,
     1474560,
     1481,
     0,
     1,
     64,
     1,
     "eth0",
     1166,
     0,
     0,
     0,
     0,
     "50.2446",
     1474560,
     "1.098633"},
    /* one-shot: no precpu system time, so no CPU% */
    {"docker/dockerd-stats-oneshot.json",
     APP1_ID,
     "app1",
     1,
     V1_CPU | CSTATS_CPU_HOST | V1_MEM | CSTATS_NET | CSTATS_PIDS_LIMIT,
     API_NEVER | CSTATS_PRECPU | CSTATS_PREREAD_TIME,
     NA,
     4954211759,
     4810000000,
     140000000,
     2,
     3485395048,
     780690000000,
     2,
     101,
     96,
     4575439016,
     35028992,
     134217728,
     36163584,
     61440,
     33558528,
     0,
     1474560,
     1481,
     0,
     1,
     64,
     1,
     "eth0",
     1166,
     0,
     0,
     0,
     0,
     "0.0000",
     1474560,
     "1.098633"},
    /* --network host: no "networks" key at all */
    {"docker/dockerd-stats-hostnet-web1.json",
     "faea67ec3d26396aff46395f336d7ec75b500492483899202abdcd4181854fd9",
     "web1",
     1,
     V1_CPU | V1_MEM | CSTATS_PIDS_CURRENT,
     API_NEVER | CSTATS_NET | CSTATS_PIDS_LIMIT,
     NA,
     18031157,
     0,
     0,
     2,
     16048288,
     782700000000,
     2,
     0,
     0,
     0,
     630784,
     67108864,
     3579904,
     57344,
     4096,
     0,
     630784,
     1069,
     0,
     1,
     NA,
     0,
     NULL,
     0,
     0,
     0,
     0,
     0,
     "0.0000",
     630784,
     "0.939941"},
    /* --network none, no memory limit: the limit is the host's RAM */
    {"docker/dockerd-stats-netnone-mini1.json",
     "862f26364fbb33719268952f71feb01e8d8d47b0febed575b3f9733c20ad6ad1",
     "mini1",
     1,
     V1_CPU | V1_MEM,
     API_NEVER | CSTATS_NET | CSTATS_PIDS_LIMIT,
     NA,
     22037881,
     0,
     10000000,
     2,
     18817157,
     784700000000,
     2,
     0,
     0,
     0,
     327680,
     25276510208,
     4083712,
     57344,
     0,
     0,
     327680,
     1151,
     0,
     1,
     NA,
     0,
     NULL,
     0,
     0,
     0,
     0,
     0,
     "0.0000",
     327680,
     "0.001296"},
    /* The real capture plus block I/O (NOTES.md §3). */
    {"docker/example-stats-cgroupv1.json",
     APP1_ID,
     "app1",
     1,
     V1_CPU | CSTATS_PRECPU | V1_MEM | CSTATS_NET | CSTATS_BLKIO,
     API_NEVER,
     1795613984265763977,
     4448455761,
     4300000000,
     130000000,
     2,
     2979639050,
     778680000000,
     2,
     91,
     86,
     4093809341,
     35028992,
     134217728,
     36163584,
     61440,
     33558528,
     0,
     1474560,
     1481,
     0,
     1,
     64,
     1,
     "eth0",
     1166,
     0,
     1,
     7593984,
     33554432,
     "50.2446",
     1474560,
     "1.098633"},
    /* cgroup v2 shape (swagger v1.56): no percpu, no max_usage, pids limit 2^64-1. */
    {"docker/example-stats-cgroupv2.json",
     "ede54ee1afda366ab42f824e8a5ffd195155d853ceaec74a927f249ea270c743",
     "app1",
     2,
     CSTATS_CPU_USAGE | CSTATS_CPU_USER_SYSTEM | CSTATS_CPU_CFS | CSTATS_PRECPU | CSTATS_MEM_USAGE |
         CSTATS_MEM_LIMIT | CSTATS_MEM_RSS | CSTATS_MEM_CACHE | CSTATS_MEM_MAPPED_FILE |
         CSTATS_MEM_FAULTS | CSTATS_MEM_FAULTS_H | CSTATS_MEM_INACTIVE_FILE | CSTATS_NET |
         CSTATS_BLKIO | CSTATS_PIDS_CURRENT | CSTATS_PIDS_LIMIT,
     API_NEVER | CSTATS_CPU_PERCPU | CSTATS_MEM_MAX_USAGE | CSTATS_MEM_TOTAL_INACTIVE_FILE,
     1737035722165243637,
     129912000,
     107918000,
     21994000,
     0,
     NA,
     739306590000000,
     4,
     120,
     3,
     41000000,
     11403264,
     8217579520,
     NA,
     1572864,
     7626752,
     2723840,
     8892416,
     2042,
     45,
     5,
     0,
     2,
     "eth0",
     9979,
     1338,
     1,
     7593984,
     100,
     "10.0000",
     8892416,
     "0.108212"},
    /* Podman 4.3: name without '/', "Id", no memory_stats.stats, networks
     * keyed "network", precpu zeroed without system time. */
    {"docker/podman-stats-oneshot.json",
     "a15973aadee909f0323df499a9b149c15eaaa34f85362c27ec9b95bf75b33f72",
     "app1",
     1,
     V1_CPU | CSTATS_CPU_HOST | CSTATS_MEM_USAGE | CSTATS_MEM_LIMIT | CSTATS_NET | CSTATS_BLKIO |
         CSTATS_PIDS_CURRENT,
     API_NEVER | CSTATS_PRECPU | CSTATS_MEM_RSS | CSTATS_MEM_CACHE | CSTATS_MEM_MAX_USAGE |
         CSTATS_MEM_FAULTS | CSTATS_MEM_INACTIVE_FILE | CSTATS_MEM_TOTAL_INACTIVE_FILE |
         CSTATS_PIDS_LIMIT,
     NA,
     3653742904,
     3581792528,
     71950376,
     2,
     1856571896,
     75318619413,
     2,
     0,
     0,
     0,
     35106816,
     134217728,
     NA,
     NA,
     NA,
     NA,
     35106816,
     NA,
     NA,
     1,
     NA,
     1,
     "network",
     586,
     1360,
     0,
     0,
     0,
     "0.0000",
     35106816,
     "26.156616"},
    {"docker/podman-stats-stream-false.json",
     "a15973aadee909f0323df499a9b149c15eaaa34f85362c27ec9b95bf75b33f72",
     "app1",
     1,
     V1_CPU | CSTATS_MEM_USAGE | CSTATS_NET,
     API_NEVER | CSTATS_PRECPU,
     NA,
     3644989735,
     3573039359,
     71950376,
     2,
     1847746749,
     75295206336,
     2,
     0,
     0,
     0,
     35106816,
     134217728,
     NA,
     NA,
     NA,
     NA,
     35106816,
     NA,
     NA,
     1,
     NA,
     1,
     "network",
     586,
     1360,
     0,
     0,
     0,
     "0.0000",
     35106816,
     "26.156616"},
    {"docker/podman-stats-idle-mini1.json",
     "a9c465c72b6765851a59b6d20ec85bf7e67bcf2332b7cb767830b7acb73075fa",
     "mini1",
     1,
     V1_CPU | CSTATS_MEM_USAGE | CSTATS_NET,
     API_NEVER | CSTATS_PRECPU,
     NA,
     25906234,
     21911602,
     3994632,
     2,
     4730536,
     75355164652,
     2,
     0,
     0,
     0,
     331776,
     25276510208,
     NA,
     NA,
     NA,
     NA,
     331776,
     NA,
     NA,
     1,
     NA,
     1,
     "network",
     0,
     0,
     0,
     0,
     0,
     "0.0000",
     331776,
     "0.001313"},
    {"docker/podman-stats-hostnet-web1.json",
     "818e6838641537ff55ccaa7dc8a71bb4ac9ea90cc837f0f608a0dfea62ad70b3",
     "web1",
     1,
     V1_CPU | CSTATS_MEM_USAGE | CSTATS_NET,
     API_NEVER | CSTATS_PRECPU,
     NA,
     24262857,
     24262857,
     0,
     2,
     22596007,
     154524668378,
     2,
     0,
     0,
     0,
     688128,
     67108864,
     NA,
     NA,
     NA,
     NA,
     688128,
     NA,
     NA,
     1,
     NA,
     1,
     "network",
     0,
     0,
     0,
     0,
     0,
     "0.0000",
     688128,
     "1.025391"},
};

#define CHECK(field, want)                                                                         \
    do {                                                                                           \
        if ((uint64_t)(want) != NA) assert_int_equal((field), (want));                             \
    } while (0)

static void check_capture(const capture_case *c, const cstats *s)
{
    print_message("  %s\n", c->file);
    assert_string_equal(s->id, c->id);
    assert_string_equal(s->name, c->name);
    assert_int_equal(s->cgroup_version, c->version);
    if ((s->known & c->known) != c->known)
        fail_msg("%s: missing known bits %#llx", c->file,
                 (unsigned long long)(c->known & ~s->known));
    if (s->known & c->clear)
        fail_msg("%s: unexpected known bits %#llx", c->file,
                 (unsigned long long)(s->known & c->clear));
    assert_int_equal(s->truncated, 0);
    if (c->read_ns != (int64_t)NA) assert_int_equal(s->read_ns, c->read_ns);
    CHECK(s->cpu.total_ns, c->cpu_total);
    CHECK(s->cpu.user_ns, c->cpu_user);
    CHECK(s->cpu.system_ns, c->cpu_system);
    assert_int_equal(s->cpu.n_percpu, c->n_percpu);
    if (c->n_percpu) CHECK(s->cpu.percpu_ns[0], c->percpu0);
    CHECK(s->cpu.host_ns, c->host_ns);
    assert_int_equal(s->cpu.online_cpus, c->online);
    CHECK(s->cpu.periods, c->periods);
    CHECK(s->cpu.throttled_periods, c->thr_periods);
    CHECK(s->cpu.throttled_ns, c->thr_ns);
    CHECK(s->mem.usage, c->mem_usage);
    CHECK(s->mem.limit, c->mem_limit);
    CHECK(s->mem.max_usage, c->mem_max_usage);
    CHECK(s->mem.rss, c->rss);
    CHECK(s->mem.cache, c->cache);
    CHECK(s->mem.mapped_file, c->mapped);
    CHECK(cstats_working_set(s), c->working_set);
    CHECK(s->mem.pgfault, c->pgfault);
    CHECK(s->mem.pgmajfault, c->pgmajfault);
    CHECK(s->pids.current, c->pids_current);
    CHECK(s->pids.limit, c->pids_limit);
    assert_int_equal(s->n_ifaces, c->n_ifaces);
    if (c->iface0) assert_string_equal(s->ifaces[0].name, c->iface0);
    uint64_t rx, tx, rd, wr;
    cstats_cli_net_io(s, &rx, &tx);
    assert_int_equal(rx, c->rx);
    assert_int_equal(tx, c->tx);
    assert_int_equal(s->n_blkdev, c->n_blkdev);
    cstats_cli_block_io(s, &rd, &wr);
    assert_int_equal(rd, c->blk_read);
    assert_int_equal(wr, c->blk_write);
    assert_fmt("%.4f", cstats_cli_cpu_percent(s), c->cpu_pct);
    assert_int_equal(cstats_cli_mem_used(s), c->mem_used);
    assert_fmt("%.6f", cstats_cli_mem_percent(s), c->mem_pct);
}

static void test_captures(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-stats-oneshot.json");
    for (size_t i = 0; i < sizeof captures / sizeof captures[0]; i++) {
        cstats s;
        buf err;
        buf_init(&err, 4096);
        int rc = parse_file(captures[i].file, true, &s, &err);
        if (rc != 0) fail_msg("%s: %d %s", captures[i].file, rc, buf_cstr(&err));
        check_capture(&captures[i], &s);
        buf_cleanup(&err);
    }
}

/* NOTES.md §3, the expected values, exactly (not only to the digits shown). */
static void test_notes_expected_numbers(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/example-stats-cgroupv2.json");
    cstats s;
    assert_int_equal(parse_file("docker/example-stats-cgroupv2.json", true, &s, NULL), 0);
    assert_true(cstats_cli_cpu_percent(&s) == 10.0);
    assert_int_equal(cstats_cli_mem_used(&s), 8892416);
    assert_true(fabs(cstats_cli_mem_percent(&s) - 8892416.0 / 8217579520.0 * 100.0) == 0);
    assert_true(fabs(cstats_cli_mem_percent(&s) - 0.108212) < 5e-7);
    uint64_t a, b;
    cstats_cli_net_io(&s, &a, &b);
    assert_int_equal(a, 9979);
    assert_int_equal(b, 1338);
    cstats_cli_block_io(&s, &a, &b);
    assert_int_equal(a, 7593984);
    assert_int_equal(b, 100);

    assert_int_equal(parse_file("docker/example-stats-cgroupv1.json", true, &s, NULL), 0);
    /* 502445566 ns of 2 s of host time on 2 CPUs */
    assert_true(cstats_cli_cpu_percent(&s) == 502445566.0 / 2000000000.0 * 2 * 100.0);
    assert_true(fabs(cstats_cli_cpu_percent(&s) - 50.2446) < 5e-5);
    assert_int_equal(cstats_cli_mem_used(&s), 1474560);
    assert_true(cstats_cli_mem_percent(&s) == 1.0986328125); /* exact: 1474560 / 2^27 */
    cstats_cli_block_io(&s, &a, &b);
    assert_int_equal(a, 7593984);
    assert_int_equal(b, 33554432);
    /* Per device and per op count, too. */
    assert_int_equal(s.blkdev[0].major, 254);
    assert_int_equal(s.blkdev[0].minor, 0);
    assert_int_equal(s.blkdev[0].known, CSTATS_BLK_BYTES | CSTATS_BLK_OPS);
    assert_int_equal(s.blkdev[0].reads, 120);
    assert_int_equal(s.blkdev[0].writes, 32);
    /* The old formula (usage - cache) gives 1470464. */
    assert_int_equal(s.mem.usage - s.mem.cache, 1470464);
    /* cAdvisor's working set is the same subtraction here. */
    assert_int_equal(cstats_working_set(&s), 1474560);
}

/* Each line of the streamed captures parses; counters never go backwards. */
static void test_streams(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/dockerd-stats-stream-3s.ndjson");
    const char *files[] = {"docker/dockerd-stats-stream-3s.ndjson",
                           "docker/podman-stats-stream-4s.ndjson"};
    const size_t want_lines[] = {3, 1};
    for (size_t f = 0; f < 2; f++) {
        size_t len = 0;
        char *d = read_shared(files[f], &len);
        uint64_t prev = 0;
        size_t lines = 0;
        for (char *p = d; p < d + len;) {
            char *nl = memchr(p, '\n', (size_t)(d + len - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(d + len - p);
            if (n > 0) {
                cstats s;
                buf err;
                buf_init(&err, 1024);
                int rc = cstats_parse(&s, p, n, &err);
                if (rc) fail_msg("%s line %zu: %s", files[f], lines + 1, buf_cstr(&err));
                buf_cleanup(&err);
                assert_true(s.known & CSTATS_CPU_USAGE);
                assert_true(s.cpu.total_ns >= prev);
                prev = s.cpu.total_ns;
                /* From the second streamed line on, precpu is the previous line. */
                if (lines > 0 && f == 0) {
                    assert_true(s.known & CSTATS_PRECPU);
                    assert_true(cstats_cli_cpu_percent(&s) > 40 && cstats_cli_cpu_percent(&s) < 60);
                }
                lines++;
            }
            p += n + 1;
        }
        assert_int_equal(lines, want_lines[f]);
        free(d);
    }
}

/* ---- error bodies and edge cases (tests/data/docker-stats) ------------------------ */

typedef struct error_case {
    const char *file; /* NULL: the shared exited capture */
    int rc;
    const char *msg; /* substring of the error message */
    const char *name;
} error_case;

static const error_case errors[] = {
    {"404-docker.json", -ENOENT, "engine: No such container: 0123456789ab", ""},
    {"404-podman.json", -ENOENT, "no container with name or ID \"nope\" found", ""},
    {"500-engine.json", -EREMOTEIO, "context deadline exceeded", ""},
    {"empty-podman.json", -ENODATA, "empty body", ""},
    {"blank.json", -ENODATA, "not running", ""},
    {"garbage.txt", -EBADMSG, "stats: 1:3: '[' or '{' expected near 'Bad'", ""},
    {"array.json", -EBADMSG, "body: expected an object", ""},
    {"wrong-type-string.json", -EBADMSG, "memory_stats.usage: expected a non-negative integer", ""},
    {"wrong-type-negative.json", -EBADMSG, "cpu_stats.cpu_usage.total_usage: expected", ""},
    {"wrong-type-iface.json", -EBADMSG, "networks.eth0: expected an object", ""},
    {"bad-time.json", -EBADMSG, "read: not an RFC 3339 time", ""},
    {"blkio-missing-minor.json", -EBADMSG, "entries need major, minor, op and value", ""},
    {NULL, -ENODATA, "zero read time", "app1"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        const error_case *c = &errors[i];
        char path[256];
        bool shared = !c->file;
        if (shared) {
            TU_REQUIRE_SHARED("docker/dockerd-stats-exited.json");
            snprintf(path, sizeof path, "docker/dockerd-stats-exited.json");
        } else {
            snprintf(path, sizeof path, DATA "%s", c->file);
        }
        print_message("  %s\n", path);
        cstats s;
        buf err;
        buf_init(&err, 4096);
        int rc = parse_file(path, shared, &s, &err);
        if (rc != c->rc) fail_msg("%s: rc %d, want %d (%s)", path, rc, c->rc, buf_cstr(&err));
        if (!strstr(buf_cstr(&err), c->msg))
            fail_msg("%s: message \"%s\" lacks \"%s\"", path, buf_cstr(&err), c->msg);
        /* Nothing half-filled: at most the identity survives. */
        assert_int_equal(s.known, 0);
        assert_int_equal(s.n_ifaces, 0);
        assert_string_equal(s.name, c->name);
        buf_cleanup(&err);
    }
    /* Without an error buffer too. */
    cstats s;
    assert_int_equal(cstats_parse(&s, "{", 1, NULL), -EBADMSG);
    assert_int_equal(cstats_parse(&s, "", 0, NULL), -ENODATA);
    assert_int_equal(cstats_parse(&s, NULL, 0, NULL), -ENODATA);
    /* Every leading slash goes (a fuzz find: "//x" kept one). */
    static const char twice[] = "{\"read\": \"2026-11-25T13:39:44Z\", \"name\": \"//x\"}";
    cstats_parse(&s, twice, sizeof twice - 1, NULL);
    assert_string_equal(s.name, "x");
}

/* Every prefix of a real capture is an error, never a crash, and never a
 * partial record. */
static void test_truncated(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/example-stats-cgroupv2.json");
    size_t len = 0;
    char *d = read_shared("docker/example-stats-cgroupv2.json", &len);
    while (len > 0 && (d[len - 1] == '\n' || d[len - 1] == ' '))
        len--;
    for (size_t n = 1; n < len; n++) {
        cstats s;
        char *copy = malloc(n); /* exact size: reads past the end are caught by ASan */
        memcpy(copy, d, n);
        int rc = cstats_parse(&s, copy, n, NULL);
        free(copy);
        if (rc != -EBADMSG) fail_msg("prefix of %zu bytes: rc %d", n, rc);
        assert_int_equal(s.known, 0);
    }
    cstats s;
    assert_int_equal(cstats_parse(&s, d, len, NULL), 0);
    free(d);
}

static void test_nulls_and_missing(void **state)
{
    (void)state;
    cstats s;
    buf err;
    buf_init(&err, 1024);
    assert_int_equal(parse_file(DATA "nulls.json", false, &s, &err), 0);
    assert_string_equal(s.name, "nulls");
    assert_string_equal(s.id, "");
    /* Only what had a value. */
    assert_int_equal(s.known, CSTATS_CPU_USAGE | CSTATS_MEM_LIMIT | CSTATS_PIDS_LIMIT);
    assert_int_equal(s.cpu.total_ns, 12);
    assert_int_equal(s.mem.limit, 1048576);
    assert_int_equal(s.pids.limit, 0); /* 2^64-1: unlimited */
    assert_int_equal(s.cgroup_version, 0);
    /* Working set with an unknown usage: nothing to subtract from. */
    assert_int_equal(cstats_working_set(&s), 0);
    assert_true(cstats_cli_cpu_percent(&s) == 0);
    assert_true(cstats_cli_mem_percent(&s) == 0);

    assert_int_equal(parse_file(DATA "missing.json", false, &s, &err), 0);
    assert_string_equal(s.id, "abc");
    assert_string_equal(s.name, "bare");
    assert_int_equal(s.known, CSTATS_READ_TIME);
    assert_int_equal(s.read_ns, 1795610384500000000); /* 13:39:44.5+01:00 */
    assert_int_equal(s.n_ifaces, 0);

    /* {} is a valid, empty record. */
    assert_int_equal(cstats_parse(&s, "{}", 2, &err), 0);
    assert_int_equal(s.known, 0);

    /* Times: lower-case 't' and 'z' are read; Go's zero time and times
     * outside int64 ns are not known; a date that does not exist fails. */
    const char *t = "{\"read\":\"2026-11-25t12:39:44.5z\","
                    "\"preread\":\"0001-01-01T00:00:00+00:00\"}";
    assert_int_equal(cstats_parse(&s, t, strlen(t), &err), 0);
    assert_int_equal(s.known, CSTATS_READ_TIME);
    assert_int_equal(s.read_ns, 1795610384500000000);
    t = "{\"read\":\"1600-01-01T00:00:00Z\"}";
    assert_int_equal(cstats_parse(&s, t, strlen(t), &err), 0);
    assert_int_equal(s.known, 0);
    t = "{\"read\":\"2026-02-29T00:00:00Z\"}";
    assert_int_equal(cstats_parse(&s, t, strlen(t), &err), -EBADMSG);
    buf_cleanup(&err);
}

static void test_big_integers(void **state)
{
    (void)state;
    cstats s;
    buf err;
    buf_init(&err, 1024);
    int rc = parse_file(DATA "big-integers.json", false, &s, &err);
    if (rc) fail_msg("%s", buf_cstr(&err));
    /* A digit run inside a string is left alone. */
    assert_string_equal(s.name, "x18446744073709551615");
    assert_int_equal(s.pids.current, 3);
    assert_true(s.known & CSTATS_PIDS_LIMIT);
    assert_int_equal(s.pids.limit, 0);
    assert_true(s.mem.usage == 9223372036854775807ull);
    assert_true(s.mem.limit == 9223372036854775808ull);
    assert_true(s.mem.max_usage == UINT64_MAX); /* beyond 2^64: saturated */
    assert_true(s.cpu.total_ns == UINT64_MAX);
    assert_int_equal(s.cpu.n_percpu, 2);
    assert_true(s.cpu.percpu_ns[1] == UINT64_MAX);
    /* An integral real is an integer. */
    assert_true(s.known & CSTATS_MEM_TOTAL_INACTIVE_FILE);
    assert_int_equal(s.mem.total_inactive_file, 1000);
    /* A fractional one is not. */
    const char *frac = "{\"memory_stats\":{\"usage\":1.5}}";
    assert_int_equal(cstats_parse(&s, frac, strlen(frac), NULL), -EBADMSG);
    /* Negative beyond int64 is still negative. */
    const char *neg = "{\"memory_stats\":{\"usage\":-99999999999999999999}}";
    assert_int_equal(cstats_parse(&s, neg, strlen(neg), NULL), -EBADMSG);
    buf_cleanup(&err);
}

static void test_memory_edges(void **state)
{
    (void)state;
    cstats s;
    /* v1, total_inactive_file == usage: cAdvisor's working set is 0; the
     * CLI's v1 rule does not apply (not smaller) and it falls through to
     * inactive_file. */
    assert_int_equal(parse_file(DATA "v1-edge-inactive.json", false, &s, NULL), 0);
    assert_int_equal(s.cgroup_version, 1);
    assert_int_equal(cstats_working_set(&s), 0);
    assert_int_equal(cstats_cli_mem_used(&s), 600);
    assert_true(cstats_cli_mem_percent(&s) == 15.0);
    assert_int_equal(s.mem.cache, 1000); /* total_cache preferred */
    assert_int_equal(s.mem.pgfault, 7);
    assert_int_equal(s.mem.h_pgfault, 9);
    assert_int_equal(s.mem.h_pgmajfault, 2);

    /* v2, inactive_file above usage: clamped at 0; the CLI keeps usage. */
    assert_int_equal(parse_file(DATA "v2-inactive-above-usage.json", false, &s, NULL), 0);
    assert_int_equal(s.cgroup_version, 2);
    assert_int_equal(cstats_working_set(&s), 0);
    assert_int_equal(cstats_cli_mem_used(&s), 1000);
    assert_true(cstats_cli_mem_percent(&s) == 0); /* limit 0 */
    assert_int_equal(s.mem.rss, 10);
    assert_int_equal(s.mem.cache, 990);
    assert_int_equal(s.mem.mapped_file, 3);
    assert_int_equal(s.mem.h_pgfault, 4); /* v2: both scopes */
    /* No online_cpus: the CLI counts percpu entries (3), in float64 as the
     * CLI: (400 / 2000) * 3 * 100, which is not exactly 60. */
    assert_true(cstats_cli_cpu_percent(&s) == (400.0 / 2000.0) * 3.0 * 100.0);
    assert_true(fabs(cstats_cli_cpu_percent(&s) - 60.0) < 1e-12);
}

/* Input beyond the caps: more interfaces and CPUs than kept, a body over the
 * limit. */
static void test_caps(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_puts(&b, "{\"read\":\"2026-11-25T13:39:44Z\",\"networks\":{");
    for (int i = 0; i < CSTATS_MAX_IFACES + 5; i++)
        buf_printf(&b, "%s\"if%d\":{\"rx_bytes\":%d,\"tx_bytes\":1}", i ? "," : "", i, i);
    buf_puts(&b, "},\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":1000,\"percpu_usage\":[");
    for (int i = 0; i < CSTATS_MAX_CPUS + 44; i++)
        buf_printf(&b, "%s1", i ? "," : "");
    buf_puts(&b, "]},\"system_cpu_usage\":3000},\"precpu_stats\":{\"cpu_usage\":"
                 "{\"total_usage\":0},\"system_cpu_usage\":1000}}");
    cstats s;
    assert_int_equal(cstats_parse(&s, b.data, b.len, NULL), 0);
    assert_int_equal(s.n_ifaces, CSTATS_MAX_IFACES);
    assert_int_equal(s.truncated, CSTATS_TRUNC_IFACES | CSTATS_TRUNC_PERCPU);
    assert_false(s.known & CSTATS_CPU_PERCPU);
    assert_int_equal(s.cpu.n_percpu, 0);
    assert_int_equal(s.cpu.n_percpu_input, CSTATS_MAX_CPUS + 44);
    /* ncpu still counts every entry: 1000/2000 * 300 * 100 */
    assert_true(cstats_cli_cpu_percent(&s) == 15000.0);

    /* An interface name longer than the kernel allows is an error. */
    const char *longname = "{\"networks\":{\"abcdefghijklmnopqrstuvwxyz0123456789\":{}}}";
    assert_int_equal(cstats_parse(&s, longname, strlen(longname), NULL), -EBADMSG);

    buf_reset(&b);
    buf_putc(&b, '{');
    while (b.len <= CSTATS_MAX_BODY)
        buf_puts(&b, "                                ");
    buf_putc(&b, '}');
    buf err;
    buf_init(&err, 1024);
    assert_int_equal(cstats_parse(&s, b.data, b.len, &err), -E2BIG);
    assert_non_null(strstr(buf_cstr(&err), "exceeds"));
    buf_cleanup(&err);
    buf_cleanup(&b);
}

/* memory.stat key mapping shared with cgroup.c. */
static void test_memstat(void **state)
{
    (void)state;
    cstats s;
    cstats_memstat m;
    cstats_reset(&s);
    cstats_memstat_init(&m);
    assert_int_equal(cstats_memstat_apply(&m, &s), 0);
    assert_int_equal(s.known, 0);
    cstats_memstat_add(&m, "rss", 3, 5);
    cstats_memstat_add(&m, "rss_huge", 8, 99); /* not "rss" */
    cstats_memstat_add(&m, "swap", 4, 6);
    assert_int_equal(cstats_memstat_apply(&m, &s), 1);
    assert_int_equal(s.mem.rss, 5);
    assert_int_equal(s.mem.swap, 6);
    assert_int_equal(s.known, CSTATS_MEM_RSS | CSTATS_MEM_SWAP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_captures),     cmocka_unit_test(test_notes_expected_numbers),
        cmocka_unit_test(test_streams),      cmocka_unit_test(test_errors),
        cmocka_unit_test(test_truncated),    cmocka_unit_test(test_nulls_and_missing),
        cmocka_unit_test(test_big_integers), cmocka_unit_test(test_memory_edges),
        cmocka_unit_test(test_caps),         cmocka_unit_test(test_memstat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
