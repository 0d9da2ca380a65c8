#include "process.h"

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Boot time in seconds since the epoch, from /proc/stat's btime. */
static double boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    char line[256];
    double bt = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "btime ", 6) == 0) {
            bt = strtod(line + 6, NULL);
            break;
        }
    }
    fclose(f);
    return bt;
}

int process_read(process_stats *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return -errno;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name (which may contain spaces) start after
     * the last ')'. Field 3 is the state; utime is 14, stime 15, starttime
     * 22, vsize 23, rss 24 (1-based, as proc(5)). */
    char *p = strrchr(buf, ')');
    if (!p) return -EINVAL;
    p += 2;
    unsigned long long v[24] = {0};
    int field = 3;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok && field <= 24;
         tok = strtok_r(NULL, " ", &save)) {
        v[field - 1] = strtoull(tok, NULL, 10);
        field++;
    }
    long tick = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    out->cpu_seconds = (double)(v[13] + v[14]) / (double)tick;
    out->start_time_seconds = boot_time() + (double)v[21] / (double)tick;
    out->virtual_bytes = (double)v[22];
    out->resident_bytes = (double)v[23] * (double)page;

    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        double count = 0;
        while ((e = readdir(d))) {
            if (e->d_name[0] != '.') count++;
        }
        closedir(d);
        out->open_fds = count - 1; /* the directory stream's own descriptor */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) out->max_fds = (double)rl.rlim_cur;
    return 0;
}

static void collect(registry_collect *c, void *ctx)
{
    (void)ctx;
    process_stats s;
    if (process_read(&s) < 0) return;
    static const struct {
        const char *name, *help;
        enum expfmt_type type;
        size_t off;
    } m[] = {
        {"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
         EXPFMT_COUNTER, offsetof(process_stats, cpu_seconds)},
        {"process_max_fds", "Maximum number of open file descriptors.", EXPFMT_GAUGE,
         offsetof(process_stats, max_fds)},
        {"process_open_fds", "Number of open file descriptors.", EXPFMT_GAUGE,
         offsetof(process_stats, open_fds)},
        {"process_resident_memory_bytes", "Resident memory size in bytes.", EXPFMT_GAUGE,
         offsetof(process_stats, resident_bytes)},
        {"process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
         EXPFMT_GAUGE, offsetof(process_stats, start_time_seconds)},
        {"process_virtual_memory_bytes", "Virtual memory size in bytes.", EXPFMT_GAUGE,
         offsetof(process_stats, virtual_bytes)},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        registry_collect_family(c, m[i].name, m[i].help, m[i].type);
        double v;
        memcpy(&v, (const char *)&s + m[i].off, sizeof v);
        registry_collect_sample(c, NULL, 0, v);
    }
}

void process_register(registry *r)
{
    registry_add_collector(r, collect, NULL);
}
