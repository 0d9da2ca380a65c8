/* Unit tests for agent/cgroup.c: cgroup v2 against the fixture tree in
 * tests/data/cgroupv2 (kernel file formats), cgroup v1 against the real
 * snapshot in ../shared/docker/cgroupv1-snapshot, and, when running as root
 * on a host with cgroup v1 controllers, against real cgroups created for the
 * test with a busy child process moved in. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cgroup.h"
#include "cstats.h"

#define V2 "tests/data/cgroupv2"
#define ID1 "ede54ee1afda366ab42f824e8a5ffd195155d853ceaec74a927f249ea270c743"
#define ID2 "2222222222222222222222222222222222222222222222222222222222222222"
#define ID3 "3333333333333333333333333333333333333333333333333333333333333333"
#define ID4 "4444444444444444444444444444444444444444444444444444444444444444"

static cgroup_fs *open_fs(const char *root, const char *proc, const char *sys)
{
    cgroup_options o = {.root = root, .proc_root = proc, .sys_root = sys};
    cgroup_fs *fs = NULL;
    buf err;
    buf_init(&err, 1024);
    int rc = cgroup_open(&fs, &o, &err);
    if (rc != 0) fail_msg("cgroup_open(%s): %d %s", root, rc, buf_cstr(&err));
    buf_cleanup(&err);
    return fs;
}

/* ---- cgroup v2 fixture ---------------------------------------------------------- */

static void test_v2_full(void **state)
{
    (void)state;
    cgroup_fs *fs = open_fs(V2 "/fs", V2 "/proc", V2 "/sys");
    assert_int_equal(cgroup_get_mode(fs), CGROUP_MODE_V2);
    assert_string_equal(cgroup_mode_name(cgroup_get_mode(fs)), "v2");
    cstats s;
    int rc = cgroup_read(fs, "/system.slice/docker-" ID1 ".scope",
                         CGROUP_READ_PERCPU | CGROUP_READ_NETWORK, &s);
    assert_int_equal(rc, 0);
    assert_int_equal(s.cgroup_version, 2);
    const uint64_t want = CSTATS_CPU_USAGE | CSTATS_CPU_USER_SYSTEM | CSTATS_CPU_CFS |
                          CSTATS_CPU_QUOTA | CSTATS_CPU_SHARES | CSTATS_MEM_USAGE |
                          CSTATS_MEM_LIMIT | CSTATS_MEM_MAX_USAGE | CSTATS_MEM_RSS |
                          CSTATS_MEM_CACHE | CSTATS_MEM_SWAP | CSTATS_MEM_MAPPED_FILE |
                          CSTATS_MEM_FAULTS | CSTATS_MEM_FAULTS_H | CSTATS_MEM_INACTIVE_FILE |
                          CSTATS_MEM_ACTIVE_FILE | CSTATS_NET | CSTATS_BLKIO | CSTATS_PIDS_CURRENT |
                          CSTATS_PIDS_LIMIT | CSTATS_PROCESSES | CSTATS_OOM;
    assert_int_equal(s.known, want);
    /* cpu.stat in microseconds, as ns */
    assert_int_equal(s.cpu.total_ns, 129912000);
    assert_int_equal(s.cpu.user_ns, 107918000);
    assert_int_equal(s.cpu.system_ns, 21994000);
    assert_int_equal(s.cpu.n_percpu, 0); /* v2 has no per-CPU usage */
    assert_int_equal(s.cpu.periods, 120);
    assert_int_equal(s.cpu.throttled_periods, 3);
    assert_int_equal(s.cpu.throttled_ns, 41000000);
    assert_int_equal(s.cpu.quota_us, 50000);
    assert_int_equal(s.cpu.period_us, 100000);
    assert_int_equal(s.cpu.shares, 2597); /* weight 100, cAdvisor's conversion */
    /* memory */
    assert_int_equal(s.mem.usage, 11403264);
    assert_int_equal(s.mem.limit, 134217728);
    assert_int_equal(s.mem.max_usage, 12582912);
    assert_int_equal(s.mem.rss, 1572864);         /* anon */
    assert_int_equal(s.mem.cache, 7626752);       /* file */
    assert_int_equal(s.mem.mapped_file, 2723840); /* file_mapped */
    assert_int_equal(s.mem.swap, 4096);
    assert_int_equal(s.mem.pgfault, 2042);
    assert_int_equal(s.mem.pgmajfault, 45);
    assert_int_equal(s.mem.h_pgfault, 2042);
    assert_int_equal(s.mem.inactive_file, 2510848);
    assert_int_equal(s.mem.active_file, 5115904);
    assert_int_equal(cstats_working_set(&s), 8892416); /* 11403264 - 2510848 */
    assert_int_equal(s.oom_events, 1);
    /* io.stat */
    assert_int_equal(s.n_blkdev, 2);
    assert_int_equal(s.blkdev[0].major, 254);
    assert_int_equal(s.blkdev[0].minor, 0);
    assert_int_equal(s.blkdev[0].known, CSTATS_BLK_BYTES | CSTATS_BLK_OPS);
    assert_int_equal(s.blkdev[0].read_bytes, 7593984);
    assert_int_equal(s.blkdev[0].write_bytes, 100);
    assert_int_equal(s.blkdev[0].reads, 120);
    assert_int_equal(s.blkdev[0].writes, 32);
    assert_int_equal(s.blkdev[1].major, 259);
    assert_int_equal(s.blkdev[1].read_bytes, 4096);
    uint64_t rd, wr;
    cstats_cli_block_io(&s, &rd, &wr);
    assert_int_equal(rd, 7598080);
    assert_int_equal(wr, 100);
    /* pids: "max" is unlimited */
    assert_int_equal(s.pids.current, 5);
    assert_int_equal(s.pids.limit, 0);
    assert_int_equal(s.processes, 2);
    /* net/dev of pid 4242: lo and veth* left out */
    assert_int_equal(s.n_ifaces, 2);
    assert_string_equal(s.ifaces[0].name, "eth0");
    assert_int_equal(s.ifaces[0].rx_bytes, 5338);
    assert_int_equal(s.ifaces[0].rx_packets, 36);
    assert_int_equal(s.ifaces[0].rx_errors, 1);
    assert_int_equal(s.ifaces[0].rx_dropped, 2);
    assert_int_equal(s.ifaces[0].tx_bytes, 648);
    assert_int_equal(s.ifaces[0].tx_packets, 8);
    assert_int_equal(s.ifaces[0].tx_errors, 3);
    assert_int_equal(s.ifaces[0].tx_dropped, 4);
    assert_string_equal(s.ifaces[1].name, "eth5");
    uint64_t rx, tx;
    cstats_cli_net_io(&s, &rx, &tx);
    assert_int_equal(rx, 9979);
    assert_int_equal(tx, 1338);

    /* Without the optional flags: no process count, no network. */
    assert_int_equal(cgroup_read(fs, "system.slice/docker-" ID1 ".scope", 0, &s), 0);
    assert_int_equal(s.known, want & ~(uint64_t)(CSTATS_NET | CSTATS_PROCESSES));
    cgroup_free(fs);
}

/* The cgroupfs layout on v2, with the files older kernels and cgroups
 * without the cpu controller lack. */
static void test_v2_sparse(void **state)
{
    (void)state;
    cgroup_fs *fs = open_fs(V2 "/fs", V2 "/proc", V2 "/sys");
    cstats s;
    assert_int_equal(cgroup_read(fs, "/docker/" ID2, CGROUP_READ_NETWORK, &s), 0);
    const uint64_t want = CSTATS_CPU_USAGE | CSTATS_CPU_USER_SYSTEM | CSTATS_MEM_USAGE |
                          CSTATS_MEM_LIMIT | CSTATS_MEM_RSS | CSTATS_MEM_CACHE |
                          CSTATS_MEM_MAPPED_FILE | CSTATS_MEM_FAULTS | CSTATS_MEM_FAULTS_H |
                          CSTATS_MEM_INACTIVE_FILE | CSTATS_MEM_ACTIVE_FILE | CSTATS_BLKIO |
                          CSTATS_PIDS_CURRENT | CSTATS_PIDS_LIMIT | CSTATS_PROCESSES;
    assert_int_equal(s.known, want);
    assert_int_equal(s.cpu.total_ns, 5000000);
    assert_int_equal(s.mem.limit, UINT64_MAX);   /* "max" */
    assert_int_equal(cstats_working_set(&s), 0); /* inactive_file 1500 > usage 1000 */
    assert_int_equal(s.n_blkdev, 0);
    assert_int_equal(s.processes, 0); /* empty: no first pid, no network */
    assert_int_equal(s.n_ifaces, 0);

    /* A cgroup with a single file: only that is known. */
    assert_int_equal(cgroup_read(fs, "machine.slice/libpod-" ID3 ".scope", 0, &s), 0);
    assert_int_equal(s.known, CSTATS_MEM_USAGE);
    assert_int_equal(s.mem.usage, 4096);
    assert_int_equal(cstats_working_set(&s), 4096);
    cgroup_free(fs);
}

static void test_v2_missing(void **state)
{
    (void)state;
    cgroup_fs *fs = open_fs(V2 "/fs", V2 "/proc", V2 "/sys");
    cstats s;
    s.known = 1;
    assert_int_equal(cgroup_read(fs, "/docker/0000", 0, &s), -ENOENT);
    assert_int_equal(s.known, 0);
    assert_int_equal(cgroup_read(fs, "/docker/../docker/" ID2, 0, &s), -EINVAL);
    assert_int_equal(cgroup_read(fs, "/system.slice/docker-" ID1 ".scope/cpu.stat", 0, &s),
                     -ENOENT); /* a file, not a cgroup */

    /* A cgroup removed between locating and reading it. */
    char tmpl[] = "/tmp/sidewatch-cgv2-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char p[256], q[256];
    snprintf(p, sizeof p, "%s/cgroup.controllers", tmpl);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(p, sizeof p, "%s/c1", tmpl);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(q, sizeof q, "%s/c1/memory.current", tmpl);
    f = fopen(q, "w");
    fputs("42\n", f);
    fclose(f);
    cgroup_fs *tfs = open_fs(tmpl, NULL, NULL);
    char found[256];
    assert_int_equal(cgroup_find_container(tfs, "c1", "/", CGROUP_DRIVER_ANY, found, sizeof found),
                     0);
    assert_string_equal(found, "/c1");
    assert_int_equal(unlink(q), 0);
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(cgroup_read(tfs, found, 0, &s), -ENOENT);
    cgroup_free(tfs);
    snprintf(p, sizeof p, "%s/cgroup.controllers", tmpl);
    unlink(p);
    rmdir(tmpl);
    cgroup_free(fs);
}

/* ---- locating containers ---------------------------------------------------------- */

typedef struct find_case {
    const char *id, *parent;
    enum cgroup_driver driver;
    int rc;
    const char *path;
} find_case;

static const find_case finds[] = {
    {ID1, NULL, CGROUP_DRIVER_ANY, 0, "/system.slice/docker-" ID1 ".scope"},
    {ID1, NULL, CGROUP_DRIVER_SYSTEMD, 0, "/system.slice/docker-" ID1 ".scope"},
    {ID1, NULL, CGROUP_DRIVER_CGROUPFS, -ENOENT, NULL},
    {ID1, "system.slice", CGROUP_DRIVER_CGROUPFS, 0, "/system.slice/docker-" ID1 ".scope"},
    {ID2, NULL, CGROUP_DRIVER_ANY, 0, "/docker/" ID2},
    {ID2, NULL, CGROUP_DRIVER_SYSTEMD, -ENOENT, NULL},
    {ID2, "/docker/", CGROUP_DRIVER_SYSTEMD, 0, "/docker/" ID2},
    {ID2, "", CGROUP_DRIVER_CGROUPFS, 0, "/docker/" ID2}, /* "": unknown parent */
    {ID3, NULL, CGROUP_DRIVER_ANY, 0, "/machine.slice/libpod-" ID3 ".scope"},
    {ID4, NULL, CGROUP_DRIVER_ANY, -ENOENT, NULL},
    {ID4, "custom-app.slice", CGROUP_DRIVER_ANY, 0,
     "/custom.slice/custom-app.slice/docker-" ID4 ".scope"},
    {"docker", "/", CGROUP_DRIVER_ANY, 0, "/docker"}, /* the root as parent */
    {"0000", NULL, CGROUP_DRIVER_ANY, -ENOENT, NULL},
    /* invalid input */
    {"", NULL, CGROUP_DRIVER_ANY, -EINVAL, NULL},
    {"..", NULL, CGROUP_DRIVER_ANY, -EINVAL, NULL},
    {"a/b", NULL, CGROUP_DRIVER_ANY, -EINVAL, NULL},
    {"x y", NULL, CGROUP_DRIVER_ANY, -EINVAL, NULL},
    {ID2, "../../etc", CGROUP_DRIVER_ANY, -EINVAL, NULL},
    {ID2, "a--b.slice", CGROUP_DRIVER_ANY, -EINVAL, NULL},
    {ID2, "-a.slice", CGROUP_DRIVER_ANY, -EINVAL, NULL},
    {ID2, "a b", CGROUP_DRIVER_ANY, -EINVAL, NULL},
};

static void test_find_container(void **state)
{
    (void)state;
    cgroup_fs *fs = open_fs(V2 "/fs", NULL, NULL);
    for (size_t i = 0; i < sizeof finds / sizeof finds[0]; i++) {
        const find_case *c = &finds[i];
        char out[512] = "";
        int rc = cgroup_find_container(fs, c->id, c->parent, c->driver, out, sizeof out);
        if (rc != c->rc)
            fail_msg("case %zu (%s, %s): rc %d want %d", i, c->id, c->parent ? c->parent : "NULL",
                     rc, c->rc);
        if (c->path) assert_string_equal(out, c->path);
    }
    char small[20];
    assert_int_equal(cgroup_find_container(fs, ID2, NULL, CGROUP_DRIVER_ANY, small, sizeof small),
                     -ENAMETOOLONG);
    cgroup_free(fs);
}

/* ---- host facts ------------------------------------------------------------------- */

static void test_machine(void **state)
{
    (void)state;
    cgroup_fs *fs = open_fs(V2 "/fs", V2 "/proc", V2 "/sys");
    cstats_machine m;
    assert_int_equal(cgroup_machine_read(fs, &m), 0);
    assert_int_equal(m.cpu_cores, 6); /* 0-2,4-5,7 */
    assert_int_equal(m.memory_bytes, 25276510208ull);
    assert_string_equal(m.boot_id, "0f6c1f0e-8a3b-4c1e-9d2a-5b7e6f1a2c3d");
    char dev[32];
    assert_int_equal(cgroup_block_device_name(fs, 254, 0, dev, sizeof dev), 0);
    assert_string_equal(dev, "/dev/vda");
    assert_int_equal(cgroup_block_device_name(fs, 8, 0, dev, sizeof dev), -ENOENT);
    assert_int_equal(cgroup_block_device_name(fs, 254, 0, dev, 6), -ENAMETOOLONG);
    cgroup_free(fs);

    /* Without sysfs: the processors of cpuinfo. */
    fs = open_fs(V2 "/fs", V2 "/proc", V2 "/nonexistent");
    assert_int_equal(cgroup_machine_read(fs, &m), 0);
    assert_int_equal(m.cpu_cores, 2);
    cgroup_free(fs);

    /* Without procfs: an error, CPUs still counted. */
    fs = open_fs(V2 "/fs", V2 "/nonexistent", V2 "/sys");
    assert_int_equal(cgroup_machine_read(fs, &m), -ENOENT);
    assert_int_equal(m.cpu_cores, 6);
    assert_int_equal(m.memory_bytes, 0);
    cgroup_free(fs);

    /* This host: sane numbers. */
    fs = open_fs(V2 "/fs", NULL, NULL);
    assert_int_equal(cgroup_machine_read(fs, &m), 0);
    assert_int_equal(m.cpu_cores, (uint32_t)sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(m.memory_bytes > (64ull << 20));
    cgroup_free(fs);
}

static void test_open_errors(void **state)
{
    (void)state;
    cgroup_fs *fs = (cgroup_fs *)1;
    buf err;
    buf_init(&err, 1024);
    cgroup_options o = {.root = "tests/data/cgroupv2/proc"}; /* a directory, not cgroups */
    assert_int_equal(cgroup_open(&fs, &o, &err), -ENOENT);
    assert_null(fs);
    assert_non_null(strstr(buf_cstr(&err), "no cgroup filesystem"));
    o.root = "/nonexistent/cgroup";
    assert_int_equal(cgroup_open(&fs, &o, NULL), -ENOENT);
    cgroup_free(NULL);
    buf_cleanup(&err);
}

/* ---- cgroup v1: the real snapshot -------------------------------------------------- */

static void test_v1_snapshot(void **state)
{
    (void)state;
    TU_REQUIRE_SHARED("docker/cgroupv1-snapshot/sidecar-test/memory/memory.stat");
    char root[4096];
    tu_shared_path(root, sizeof root, "docker/cgroupv1-snapshot/sidecar-test");
    /* The snapshot keeps <ctrl>/<file> of one cgroup: it is the root
     * cgroup of a root whose controllers are its subdirectories. */
    cgroup_fs *fs = open_fs(root, V2 "/proc", V2 "/sys");
    assert_int_equal(cgroup_get_mode(fs), CGROUP_MODE_HYBRID); /* unified/ is there */
    cstats s;
    assert_int_equal(
        cgroup_read(fs, "/", CGROUP_READ_PERCPU | CGROUP_READ_PROCS | CGROUP_READ_NETWORK, &s), 0);
    assert_int_equal(s.cgroup_version, 1);
    const uint64_t want = CSTATS_CPU_USAGE | CSTATS_CPU_USER_SYSTEM | CSTATS_CPU_PERCPU |
                          CSTATS_CPU_CFS | CSTATS_CPU_QUOTA | CSTATS_CPU_SHARES | CSTATS_MEM_USAGE |
                          CSTATS_MEM_LIMIT | CSTATS_MEM_MAX_USAGE | CSTATS_MEM_FAILCNT |
                          CSTATS_MEM_RSS | CSTATS_MEM_CACHE | CSTATS_MEM_SWAP |
                          CSTATS_MEM_MAPPED_FILE | CSTATS_MEM_FAULTS | CSTATS_MEM_FAULTS_H |
                          CSTATS_MEM_INACTIVE_FILE | CSTATS_MEM_TOTAL_INACTIVE_FILE |
                          CSTATS_MEM_ACTIVE_FILE | CSTATS_MEM_TOTAL_ACTIVE_FILE | CSTATS_BLKIO |
                          CSTATS_PIDS_CURRENT | CSTATS_PIDS_LIMIT | CSTATS_PROCESSES | CSTATS_OOM;
    if (s.known != want)
        fail_msg("known %#llx, want %#llx", (unsigned long long)s.known, (unsigned long long)want);
    /* cpuacct */
    uint64_t tick = 1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK);
    assert_int_equal(s.cpu.total_ns, 301524137);
    assert_int_equal(s.cpu.user_ns, 19 * tick); /* cpuacct.stat: user 19, system 10 */
    assert_int_equal(s.cpu.system_ns, 10 * tick);
    assert_int_equal(s.cpu.n_percpu, 2);
    assert_int_equal(s.cpu.percpu_ns[0], 3023978);
    assert_int_equal(s.cpu.percpu_ns[1], 298500159);
    /* cpu */
    assert_int_equal(s.cpu.periods, 10);
    assert_int_equal(s.cpu.throttled_periods, 4);
    assert_int_equal(s.cpu.throttled_ns, 150632261);
    assert_int_equal(s.cpu.quota_us, 50000);
    assert_int_equal(s.cpu.period_us, 100000);
    assert_int_equal(s.cpu.shares, 1024);
    /* memory */
    assert_int_equal(s.mem.usage, 69582848);
    assert_int_equal(s.mem.limit, 268435456);
    assert_int_equal(s.mem.max_usage, 70774784);
    assert_int_equal(s.mem.failcnt, 0);
    assert_int_equal(s.mem.rss, 110592);     /* total_rss */
    assert_int_equal(s.mem.cache, 67133440); /* total_cache */
    assert_int_equal(s.mem.swap, 0);
    assert_int_equal(s.mem.mapped_file, 0);
    assert_int_equal(s.mem.pgfault, 1092);
    assert_int_equal(s.mem.pgmajfault, 2);
    assert_int_equal(s.mem.h_pgfault, 1092);
    assert_int_equal(s.mem.h_pgmajfault, 2);
    assert_int_equal(s.mem.total_inactive_file, 67108864); /* the 64 MiB written */
    assert_int_equal(s.mem.total_active_file, 24576);
    assert_int_equal(cstats_working_set(&s), 69582848 - 67108864);
    assert_int_equal(s.oom_events, 0);
    /* pids, processes; blkio reads "Total 0" only */
    assert_int_equal(s.pids.current, 1);
    assert_int_equal(s.pids.limit, 32);
    assert_int_equal(s.processes, 1);
    assert_int_equal(s.n_blkdev, 0);
    /* pid 13847 is not in the fixture /proc: no network data, no error */
    assert_false(s.known & CSTATS_NET);
    cgroup_free(fs);
}

/* v1 blkio and percpu formats with data (the snapshot has only "Total 0"). */
static void test_v1_blkio(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/sidewatch-cgv1-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char p[512];
    snprintf(p, sizeof p, "%s/blkio", tmpl);
    assert_int_equal(mkdir(p, 0755), 0);
    const char *files[][2] = {
        {"blkio/cgroup.procs", ""},
        {"blkio/blkio.throttle.io_service_bytes_recursive",
         "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n"
         "8:0 Total 12288\n254:0 Read 7593984\n254:0 Write 33554432\nTotal 41160704\n"},
        {"blkio/blkio.throttle.io_serviced_recursive",
         "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\n254:0 Read 120\n254:0 Write 32\nTotal 155\n"},
    };
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpl, files[i][0]);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs(files[i][1], f);
        fclose(f);
    }
    cgroup_fs *fs = open_fs(tmpl, NULL, NULL);
    assert_int_equal(cgroup_get_mode(fs), CGROUP_MODE_V1);
    cstats s;
    assert_int_equal(cgroup_read(fs, "", 0, &s), 0);
    assert_int_equal(s.known, CSTATS_BLKIO);
    assert_int_equal(s.n_blkdev, 2);
    assert_int_equal(s.blkdev[0].major, 8);
    assert_int_equal(s.blkdev[0].read_bytes, 4096);
    assert_int_equal(s.blkdev[0].write_bytes, 8192);
    assert_int_equal(s.blkdev[0].reads, 1);
    assert_int_equal(s.blkdev[0].writes, 2);
    assert_int_equal(s.blkdev[1].read_bytes, 7593984);
    assert_int_equal(s.blkdev[1].write_bytes, 33554432);
    uint64_t rd, wr;
    cstats_cli_block_io(&s, &rd, &wr);
    assert_int_equal(rd, 7598080);
    assert_int_equal(wr, 33562624);
    cgroup_free(fs);
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpl, files[i][0]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/blkio", tmpl);
    rmdir(p);
    rmdir(tmpl);
}

/* ---- cgroup v1: real cgroups on this host ------------------------------------------ */

static const char *const v1_ctrls[] = {"cpu", "cpuacct", "memory", "pids", "blkio"};
#define N_CTRLS (sizeof v1_ctrls / sizeof v1_ctrls[0])

/* This process's cgroup in v1 controller `ctrl` (from /proc/self/cgroup). */
static bool own_cgroup(const char *ctrl, char *out, size_t n)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = '\0';
        line[strcspn(line, "\n")] = '\0';
        c2[1 + strcspn(c2 + 1, "\n")] = '\0';
        for (char *tok = strtok(c1 + 1, ","); tok; tok = strtok(NULL, ","))
            if (strcmp(tok, ctrl) == 0) {
                snprintf(out, n, "%s", c2 + 1);
                found = true;
            }
    }
    fclose(f);
    return found;
}

static bool write_str(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = write(fd, s, strlen(s)) == (ssize_t)strlen(s);
    close(fd);
    return ok;
}

typedef struct real_env {
    char root[64];           /* temporary root of symlinks */
    char name[64];           /* sidewatch-test-<pid> */
    char dirs[N_CTRLS][256]; /* created cgroup directories ("" if not) */
} real_env;

static int rmdir_retry(const char *p)
{
    /* A memory cgroup can stay busy briefly after its last task exits. */
    for (int i = 0; i < 200; i++) {
        if (rmdir(p) == 0 || errno == ENOENT) return 0;
        if (errno != EBUSY) return -errno;
        usleep(10000);
    }
    return -EBUSY;
}

static void *rmdir_thread(void *arg)
{
    real_env *e = arg;
    usleep(20000);
    for (size_t i = 0; i < N_CTRLS; i++)
        if (e->dirs[i][0] && rmdir_retry(e->dirs[i]) == 0) e->dirs[i][0] = '\0';
    return NULL;
}

static void real_env_cleanup(real_env *e)
{
    char p[512];
    for (size_t i = 0; i < N_CTRLS; i++) {
        if (e->dirs[i][0]) rmdir_retry(e->dirs[i]);
        snprintf(p, sizeof p, "%s/%s", e->root, v1_ctrls[i]);
        unlink(p);
    }
    rmdir(e->root);
}

typedef struct real_result {
    int rc1, rc2, find_rc;
    char found[256];
    cstats s1, s2;
    int race_bad; /* reads during removal that were neither 0 nor -ENOENT */
    int race_final;
    int reads;
} real_result;

static void test_v1_real(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("SKIPPED: real cgroup v1 test needs root (creates cgroups)\n");
        skip();
    }
    cgroup_fs *probe = NULL;
    if (cgroup_open(&probe, NULL, NULL) != 0 || (cgroup_get_mode(probe) != CGROUP_MODE_V1 &&
                                                 cgroup_get_mode(probe) != CGROUP_MODE_HYBRID)) {
        print_message("SKIPPED: no cgroup v1 controllers under /sys/fs/cgroup (mode %s)\n",
                      probe ? cgroup_mode_name(cgroup_get_mode(probe)) : "none");
        cgroup_free(probe);
        skip();
    }
    cgroup_free(probe);

    /* A root of symlinks to this process's own cgroup in each controller,
     * so the test cgroups are children of ours (our limits keep applying)
     * and one relative path names them in every controller. */
    real_env e = {0};
    snprintf(e.root, sizeof e.root, "/tmp/sidewatch-cgroot-XXXXXX");
    assert_non_null(mkdtemp(e.root));
    snprintf(e.name, sizeof e.name, "sidewatch-test-%d", (int)getpid());
    for (size_t i = 0; i < N_CTRLS; i++) {
        char own[512], target[1024], link[128];
        if (!own_cgroup(v1_ctrls[i], own, sizeof own)) continue;
        snprintf(target, sizeof target, "/sys/fs/cgroup/%s%s", v1_ctrls[i],
                 strcmp(own, "/") ? own : "");
        snprintf(link, sizeof link, "%s/%s", e.root, v1_ctrls[i]);
        if (symlink(target, link) != 0) continue;
        snprintf(e.dirs[i], sizeof e.dirs[i], "%s/%s", link, e.name);
        if (mkdir(e.dirs[i], 0755) != 0) {
            print_message("cannot create %s: %s\n", e.dirs[i], strerror(errno));
            e.dirs[i][0] = '\0';
        }
    }
    if (!e.dirs[0][0] || !e.dirs[1][0] || !e.dirs[2][0] || !e.dirs[3][0]) {
        real_env_cleanup(&e);
        print_message("SKIPPED: cannot create cgroups under cpu, cpuacct, memory and pids\n");
        skip();
    }
    char p[600];
    snprintf(p, sizeof p, "%s/cpu.cfs_period_us", e.dirs[0]);
    write_str(p, "100000");
    snprintf(p, sizeof p, "%s/cpu.cfs_quota_us", e.dirs[0]);
    bool quota = write_str(p, "50000");
    snprintf(p, sizeof p, "%s/memory.limit_in_bytes", e.dirs[2]);
    bool memlimit = write_str(p, "67108864");
    snprintf(p, sizeof p, "%s/pids.max", e.dirs[3]);
    bool pidsmax = write_str(p, "16");

    /* A child that waits to be moved, touches 8 MiB (charged to the new
     * memory cgroup) and spins. */
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char c;
        close(go[1]);
        alarm(20); /* never outlives a stuck test */
        if (read(go[0], &c, 1) != 1) _exit(1);
        size_t n = 8u << 20;
        volatile char *m = malloc(n);
        for (size_t i = 0; m && i < n; i += 4096)
            m[i] = 1;
        for (volatile unsigned long x = 0;; x++)
            ;
    }
    close(go[0]);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)child);
    bool moved = true;
    for (size_t i = 0; i < N_CTRLS; i++) {
        if (!e.dirs[i][0]) continue;
        snprintf(p, sizeof p, "%s/cgroup.procs", e.dirs[i]);
        moved &= write_str(p, pid);
    }
    assert_int_equal(write(go[1], "x", 1), 1);
    close(go[1]);

    real_result *r = calloc(1, sizeof *r);
    cgroup_options o = {.root = e.root};
    cgroup_fs *fs = NULL;
    int orc = cgroup_open(&fs, &o, NULL);
    if (orc == 0) {
        char rel[80];
        snprintf(rel, sizeof rel, "/%s", e.name);
        usleep(200000);
        r->rc1 = cgroup_read(fs, rel, CGROUP_READ_PERCPU | CGROUP_READ_PROCS, &r->s1);
        usleep(400000);
        r->rc2 = cgroup_read(fs, rel, CGROUP_READ_PERCPU | CGROUP_READ_PROCS, &r->s2);
        r->find_rc =
            cgroup_find_container(fs, e.name, "/", CGROUP_DRIVER_ANY, r->found, sizeof r->found);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        /* Removal while reading: every read is whole or -ENOENT. */
        pthread_t th;
        pthread_create(&th, NULL, rmdir_thread, &e);
        cstats *t = malloc(sizeof *t);
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            int rc = cgroup_read(fs, rel, CGROUP_READ_PROCS, t);
            r->reads++;
            if (rc != 0 && rc != -ENOENT) r->race_bad++;
            r->race_final = rc;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (rc == -ENOENT || now.tv_sec - t0.tv_sec > 5) break;
        }
        free(t);
        pthread_join(th, NULL);
        cgroup_free(fs);
    } else {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    real_env_cleanup(&e);

    /* Assertions only now, with everything cleaned up. */
    assert_int_equal(orc, 0);
    assert_true(moved);
    assert_int_equal(r->rc1, 0);
    assert_int_equal(r->rc2, 0);
    const cstats *a = &r->s1, *b = &r->s2;
    print_message("  cpu %.3f -> %.3f s, periods %llu throttled %llu, mem %llu, pids %llu\n",
                  a->cpu.total_ns / 1e9, b->cpu.total_ns / 1e9, (unsigned long long)b->cpu.periods,
                  (unsigned long long)b->cpu.throttled_periods, (unsigned long long)b->mem.usage,
                  (unsigned long long)b->pids.current);
    assert_int_equal(a->cgroup_version, 1);
    uint64_t need = CSTATS_CPU_USAGE | CSTATS_CPU_USER_SYSTEM | CSTATS_CPU_CFS | CSTATS_CPU_QUOTA |
                    CSTATS_MEM_USAGE | CSTATS_MEM_LIMIT | CSTATS_PIDS_CURRENT | CSTATS_PIDS_LIMIT |
                    CSTATS_PROCESSES;
    assert_int_equal(b->known & need, need);
    /* CPU grows, and under a 50 ms / 100 ms quota no faster than half a CPU
     * (with slack for timing). */
    assert_true(a->cpu.total_ns > 0);
    assert_true(b->cpu.total_ns > a->cpu.total_ns);
    if (quota) {
        assert_int_equal(b->cpu.quota_us, 50000);
        assert_int_equal(b->cpu.period_us, 100000);
        assert_true(b->cpu.periods > a->cpu.periods);
        assert_true(b->cpu.total_ns - a->cpu.total_ns < 400000000ull);
    }
    if (memlimit) assert_int_equal(b->mem.limit, 67108864);
    assert_true(b->mem.usage >= (4u << 20));
    assert_true(b->mem.usage <= b->mem.limit);
    assert_true(cstats_working_set(b) <= b->mem.usage);
    assert_int_equal(b->processes, 1);
    assert_true(b->pids.current >= 1 && b->pids.current <= 16);
    if (pidsmax) assert_int_equal(b->pids.limit, 16);
    assert_int_equal(r->find_rc, 0);
    char want[80];
    snprintf(want, sizeof want, "/%s", e.name);
    assert_string_equal(r->found, want);
    assert_int_equal(r->race_bad, 0);
    assert_int_equal(r->race_final, -ENOENT);
    print_message("  %d reads while the cgroups were removed\n", r->reads);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2_full),     cmocka_unit_test(test_v2_sparse),
        cmocka_unit_test(test_v2_missing),  cmocka_unit_test(test_find_container),
        cmocka_unit_test(test_machine),     cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_v1_snapshot), cmocka_unit_test(test_v1_blkio),
        cmocka_unit_test(test_v1_real),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
