#include "discovery.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "discovery_docker.h"
#include "expfmt.h"
#include "log.h"
#include "mem.h"
#include "strutil.h"
#include "yamlconf.h"

/* One file_sd file: its last good groups. */
typedef struct sd_file {
    char *path;
    config_target_group *groups;
    size_t n_groups;
    uint64_t hash; /* of the content that produced groups */
    bool have;     /* groups hold a successful read */
    bool matched;  /* matched by a pattern in the last refresh */
} sd_file;

typedef struct sd_job {
    const config_target_group **groups; /* static, then files', then docker's */
    size_t n_groups;
    size_t n_fixed; /* static and file groups (docker's follow) */
    size_t cap;
} sd_job;

/* One docker_sd_configs entry: its discoverer (NULL if it could not be
 * created) and the last groups taken from it. */
typedef struct sd_docker {
    discovery_docker *dd;
    size_t job;
    config_target_group *groups;
    size_t n_groups;
} sd_docker;

struct discovery {
    config *cfg;
    sd_job *jobs;
    size_t n_jobs;
    sd_file **files;
    size_t n_files, cap_files;
    int ifd; /* inotify */
    char **dirs;
    size_t n_dirs;
    char **names; /* basename patterns of every file_sd pattern */
    size_t n_names;
    sd_docker *dockers; /* in config order: job, then entry */
    size_t n_dockers;
    int efd;  /* eventfd the docker discoverers write to */
    int epfd; /* epoll over ifd and efd: discovery_fd() */
    registry *reg;
    int64_t next_refresh_ms;
    bool dirty;
    uint64_t state_hash; /* of every job's groups, to tell changes */
    registry_metric *m_read_errors, *m_scans;
};

static void free_groups(config_target_group *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < g[i].n_targets; k++)
            mem_free(g[i].targets[k]);
        mem_free(g[i].targets);
        labels_free(g[i].labels);
        mem_free(g[i].source);
    }
    mem_free(g);
}

static void free_file(sd_file *f)
{
    free_groups(f->groups, f->n_groups);
    mem_free(f->path);
    mem_free(f);
}

static void epoll_watch(discovery *d, int fd)
{
    if (d->epfd < 0 || fd < 0) return;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        log_warn("discovery", "epoll_ctl: %s", strerror(errno));
}

discovery *discovery_new(registry *reg)
{
    discovery *d = mem_calloc(1, sizeof *d);
    d->reg = reg;
    d->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (d->ifd < 0)
        log_warn("discovery",
                 "inotify unavailable (%s): file_sd changes are seen at refresh_interval",
                 strerror(errno));
    d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (d->efd < 0 || d->epfd < 0)
        log_warn("discovery", "eventfd/epoll unavailable (%s): docker_sd changes are seen late",
                 strerror(errno));
    epoll_watch(d, d->ifd);
    epoll_watch(d, d->efd);
    if (reg) {
        d->m_read_errors =
            registry_child(registry_counter(reg, "sidewatch_sd_file_read_errors_total",
                                            "Errors reading or parsing file_sd files.", NULL),
                           NULL);
        d->m_scans = registry_child(registry_counter(reg, "sidewatch_sd_file_scans_total",
                                                     "Scans of file_sd patterns.", NULL),
                                    NULL);
    }
    return d;
}

static void free_jobs(discovery *d)
{
    for (size_t i = 0; i < d->n_jobs; i++)
        mem_free(d->jobs[i].groups);
    mem_free(d->jobs);
    d->jobs = NULL;
    d->n_jobs = 0;
}

static void unwatch_all(discovery *d)
{
    for (size_t i = 0; i < d->n_dirs; i++)
        mem_free(d->dirs[i]);
    mem_free(d->dirs);
    d->dirs = NULL;
    d->n_dirs = 0;
    for (size_t i = 0; i < d->n_names; i++)
        mem_free(d->names[i]);
    mem_free(d->names);
    d->names = NULL;
    d->n_names = 0;
    if (d->ifd >= 0) {
        /* Closing is the simplest way to drop every watch at once (and
         * takes the descriptor out of the epoll set). */
        close(d->ifd);
        d->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        epoll_watch(d, d->ifd);
    }
}

static void free_dockers(sd_docker *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        discovery_docker_free(v[i].dd);
        discovery_docker_groups_free(v[i].groups, v[i].n_groups);
    }
    mem_free(v);
}

void discovery_free(discovery *d)
{
    if (!d) return;
    free_jobs(d);
    free_dockers(d->dockers, d->n_dockers);
    for (size_t i = 0; i < d->n_files; i++)
        free_file(d->files[i]);
    mem_free(d->files);
    unwatch_all(d);
    if (d->ifd >= 0) close(d->ifd);
    if (d->efd >= 0) close(d->efd);
    if (d->epfd >= 0) close(d->epfd);
    config_unref(d->cfg);
    mem_free(d);
}

int discovery_fd(const discovery *d)
{
    return d->epfd >= 0 ? d->epfd : d->ifd;
}

/* ---- reading one file ------------------------------------------------------ */

/* Parses the groups of a file_sd file. Returns 0, or -EINVAL with the
 * reason in err. */
static int parse_groups(const char *path, const char *text, size_t len, config_target_group **out,
                        size_t *n_out, buf *err)
{
    /* JSON is parsed as YAML (a superset), but an empty .json file is an
     * error as in Prometheus ("unexpected end of JSON input"): a file caught
     * half-written must not drop its targets. */
    size_t plen = strlen(path);
    if (plen > 5 && strcmp(path + plen - 5, ".json") == 0) {
        size_t i = 0;
        while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
            i++;
        if (i == len) {
            buf_printf(err, "%s: unexpected end of JSON input", path);
            return -EINVAL;
        }
    }
    yamlconf_doc *doc = NULL;
    if (yamlconf_parse(text, len, path, &doc, err) < 0) return -EINVAL;
    const yamlconf_node *root = yamlconf_root(doc);
    config_target_group *gs = NULL;
    size_t n = 0;
    int rc = 0;
    if (yamlconf_is_null(root)) {
        goto done; /* an empty file has no groups */
    }
    if (root->kind != YAMLCONF_SEQ) {
        buf_printf(err, "%s:%u:%u: expected a list of target groups", path, root->line, root->col);
        rc = -EINVAL;
        goto done;
    }
    gs = mem_calloc(root->n + 1, sizeof *gs);
    for (size_t i = 0; i < root->n && rc == 0; i++) {
        const yamlconf_node *g = root->items[i];
        config_target_group *tg = &gs[n++];
        char src[64];
        snprintf(src, sizeof src, ":%zu", i);
        tg->source = mem_malloc(strlen(path) + strlen(src) + 1);
        strcpy(tg->source, path);
        strcat(tg->source, src);
        labels_builder lb;
        labels_builder_init(&lb);
        labels_builder_set(&lb, "__meta_filepath", 15, path, strlen(path));
        if (g->kind != YAMLCONF_MAP) {
            buf_printf(err, "%s:%u:%u: a target group must be a mapping", path, g->line, g->col);
            rc = -EINVAL;
        }
        for (size_t k = 0; rc == 0 && k < g->n; k++) {
            const yamlconf_node *key = g->pairs[k].key, *val = g->pairs[k].value;
            if (yamlconf_str_eq(key, "targets")) {
                if (yamlconf_is_null(val)) continue;
                if (val->kind != YAMLCONF_SEQ) {
                    buf_printf(err, "%s:%u:%u: targets must be a list", path, val->line, val->col);
                    rc = -EINVAL;
                    break;
                }
                tg->targets = mem_calloc(val->n + 1, sizeof(char *));
                for (size_t t = 0; t < val->n; t++) {
                    const yamlconf_node *tn = val->items[t];
                    if (tn->kind != YAMLCONF_SCALAR || memchr(tn->str, '\0', tn->len)) {
                        buf_printf(err, "%s:%u:%u: a target must be a string", path, tn->line,
                                   tn->col);
                        rc = -EINVAL;
                        break;
                    }
                    if (memchr(tn->str, '/', tn->len)) {
                        buf_printf(err, "%s:%u:%u: \"%s\" is not a valid hostname", path, tn->line,
                                   tn->col, tn->str);
                        rc = -EINVAL;
                        break;
                    }
                    tg->targets[tg->n_targets++] = mem_strndup(tn->str, tn->len);
                }
            } else if (yamlconf_str_eq(key, "labels")) {
                if (yamlconf_is_null(val)) continue;
                if (val->kind != YAMLCONF_MAP) {
                    buf_printf(err, "%s:%u:%u: labels must be a mapping", path, val->line,
                               val->col);
                    rc = -EINVAL;
                    break;
                }
                for (size_t l = 0; l < val->n; l++) {
                    const yamlconf_node *ln = val->pairs[l].key, *lv = val->pairs[l].value;
                    if (ln->kind != YAMLCONF_SCALAR || !expfmt_utf8_valid(ln->str, ln->len) ||
                        ln->len == 0) {
                        buf_printf(err, "%s:%u:%u: \"%s\" is not a valid label name", path,
                                   ln->line, ln->col, ln->str);
                        rc = -EINVAL;
                        break;
                    }
                    if (lv->kind == YAMLCONF_SEQ || lv->kind == YAMLCONF_MAP ||
                        !expfmt_utf8_valid(lv->str, lv->len)) {
                        buf_printf(err, "%s:%u:%u: invalid value for label \"%s\"", path, lv->line,
                                   lv->col, ln->str);
                        rc = -EINVAL;
                        break;
                    }
                    labels_builder_set(&lb, ln->str, ln->len, lv->str, lv->len);
                }
            } else {
                buf_printf(err, "%s:%u:%u: field %s not found in target group", path, key->line,
                           key->col, key->str);
                rc = -EINVAL;
            }
        }
        tg->labels = labels_builder_finish(&lb, NULL);
        labels_builder_cleanup(&lb);
    }
done:
    yamlconf_free(doc);
    if (rc < 0) {
        free_groups(gs, n);
        return rc;
    }
    *out = gs;
    *n_out = n;
    return 0;
}

static bool path_eq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static sd_file *file_get(discovery *d, const char *path)
{
    for (size_t i = 0; i < d->n_files; i++) {
        if (path_eq(d->files[i]->path, path)) return d->files[i];
    }
    sd_file *f = mem_calloc(1, sizeof *f);
    f->path = mem_strdup(path);
    d->files = mem_grow(d->files, sizeof *d->files, d->n_files + 1, &d->cap_files);
    d->files[d->n_files++] = f;
    return f;
}

/* Re-reads a file; on failure its previous groups stay. */
static void file_read(discovery *d, sd_file *f)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    buf content;
    buf_init(&content, DISCOVERY_MAX_FILE_BYTES);
    buf err;
    buf_init(&err, 4096);
    int rc = 0;
    if (fd < 0) {
        buf_printf(&err, "%s: %s", f->path, strerror(errno));
        rc = -errno;
    } else {
        char tmp[65536];
        ssize_t r;
        while ((r = read(fd, tmp, sizeof tmp)) > 0) {
            if (buf_append(&content, tmp, (size_t)r) < 0) {
                buf_printf(&err, "%s: file larger than %d bytes", f->path,
                           DISCOVERY_MAX_FILE_BYTES);
                rc = -E2BIG;
                break;
            }
        }
        if (r < 0 && rc == 0) {
            buf_printf(&err, "%s: %s", f->path, strerror(errno));
            rc = -errno;
        }
        close(fd);
    }
    if (rc == 0) {
        uint64_t h = strutil_hash64(buf_cstr(&content), content.len, 0);
        if (f->have && h == f->hash) goto out;
        config_target_group *gs = NULL;
        size_t n = 0;
        if (parse_groups(f->path, buf_cstr(&content), content.len, &gs, &n, &err) == 0) {
            free_groups(f->groups, f->n_groups);
            f->groups = gs;
            f->n_groups = n;
            f->hash = h;
            f->have = true;
            log_debug("discovery", "read %zu target groups from %s", n, f->path);
        } else {
            rc = -EINVAL;
        }
    }
    if (rc < 0) {
        /* err names the file (and the position, for parse errors). */
        log_error("discovery", "Error reading file_sd file: %s", buf_cstr(&err));
        if (d->m_read_errors) registry_inc(d->m_read_errors);
    }
out:
    buf_cleanup(&content);
    buf_cleanup(&err);
}

/* ---- scanning ------------------------------------------------------------------- */

static void watch_dir(discovery *d, const char *pattern)
{
    if (d->ifd < 0) return;
    char dir[PATH_MAX];
    const char *slash = strrchr(pattern, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - pattern), pattern);
    else
        snprintf(dir, sizeof dir, ".");
    if (dir[0] == '\0') snprintf(dir, sizeof dir, "/");
    d->names = mem_realloc(d->names, (d->n_names + 1) * sizeof *d->names);
    d->names[d->n_names++] = mem_strdup(slash ? slash + 1 : pattern);
    for (size_t i = 0; i < d->n_dirs; i++) {
        if (strcmp(d->dirs[i], dir) == 0) return;
    }
    if (inotify_add_watch(d->ifd, dir,
                          IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO |
                              IN_MOVED_FROM | IN_ATTRIB) < 0) {
        log_warn("discovery", "cannot watch %s: %s", dir, strerror(errno));
        return;
    }
    d->dirs = mem_realloc(d->dirs, (d->n_dirs + 1) * sizeof *d->dirs);
    d->dirs[d->n_dirs++] = mem_strdup(dir);
}

/* Hash of every job's group list (sources and content). */
static uint64_t groups_hash(const discovery *d)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t j = 0; j < d->n_jobs; j++) {
        h = h * 31 + j;
        for (size_t g = 0; g < d->jobs[j].n_groups; g++) {
            const config_target_group *tg = d->jobs[j].groups[g];
            h = h * 1099511628211ULL ^ labels_hash(tg->labels);
            for (size_t t = 0; t < tg->n_targets; t++)
                h = h * 1099511628211ULL ^
                    strutil_hash64(tg->targets[t], strlen(tg->targets[t]), g);
        }
    }
    return h;
}

static void add_group(sd_job *j, const config_target_group *g, size_t *cap)
{
    j->groups = mem_grow(j->groups, sizeof *j->groups, j->n_groups + 1, cap);
    j->groups[j->n_groups++] = g;
}

/* Replaces every job's docker groups by the latest ones taken. */
static void add_docker_groups(discovery *d)
{
    for (size_t j = 0; j < d->n_jobs; j++)
        d->jobs[j].n_groups = d->jobs[j].n_fixed;
    for (size_t i = 0; i < d->n_dockers; i++) {
        sd_docker *dk = &d->dockers[i];
        if (dk->job >= d->n_jobs) continue;
        sd_job *job = &d->jobs[dk->job];
        for (size_t g = 0; g < dk->n_groups; g++)
            add_group(job, &dk->groups[g], &job->cap);
    }
}

/* Globs every pattern, reads new or changed files, drops files that no
 * longer match, and rebuilds each job's group list. */
static void scan(discovery *d)
{
    const config *cfg = d->cfg;
    if (d->m_scans) registry_inc(d->m_scans);
    for (size_t i = 0; i < d->n_files; i++)
        d->files[i]->matched = false;
    free_jobs(d);
    d->n_jobs = cfg->n_scrape_configs;
    d->jobs = mem_calloc(d->n_jobs + 1, sizeof *d->jobs);
    for (size_t j = 0; j < cfg->n_scrape_configs; j++) {
        const config_scrape *sc = &cfg->scrape_configs[j];
        sd_job *job = &d->jobs[j];
        size_t cap = 0;
        for (size_t g = 0; g < sc->n_static_configs; g++)
            add_group(job, &sc->static_configs[g], &cap);
        for (size_t s = 0; s < sc->n_file_sd_configs; s++) {
            const config_file_sd *fs = &sc->file_sd_configs[s];
            for (size_t p = 0; p < fs->n_files; p++) {
                glob_t gl;
                int grc = glob(fs->files[p], 0, NULL, &gl);
                if (grc != 0) {
                    if (grc != GLOB_NOMATCH) log_warn("discovery", "glob %s failed", fs->files[p]);
                    continue;
                }
                for (size_t k = 0; k < gl.gl_pathc; k++) {
                    sd_file *f = file_get(d, gl.gl_pathv[k]);
                    if (!f->matched) file_read(d, f);
                    f->matched = true;
                    for (size_t g = 0; g < f->n_groups; g++)
                        add_group(job, &f->groups[g], &cap);
                }
                globfree(&gl);
            }
        }
        job->n_fixed = job->n_groups;
        job->cap = cap;
    }
    add_docker_groups(d);
    /* Files that no longer match anything are forgotten (their targets go). */
    size_t w = 0;
    for (size_t i = 0; i < d->n_files; i++) {
        if (d->files[i]->matched)
            d->files[w++] = d->files[i];
        else
            free_file(d->files[i]);
    }
    d->n_files = w;
}

static int64_t min_refresh_ms(const config *cfg)
{
    int64_t m = 0;
    for (size_t j = 0; j < cfg->n_scrape_configs; j++) {
        const config_scrape *sc = &cfg->scrape_configs[j];
        for (size_t s = 0; s < sc->n_file_sd_configs; s++) {
            int64_t r = sc->file_sd_configs[s].refresh_interval_ms;
            if (r > 0 && (m == 0 || r < m)) m = r;
        }
    }
    return m;
}

/* Starts a discoverer for every docker_sd_configs entry of cfg; a running
 * one with an equal config is kept, with its targets (as Prometheus keeps
 * unchanged providers across reloads). */
static void apply_dockers(discovery *d, config *cfg)
{
    size_t n = 0;
    for (size_t j = 0; j < cfg->n_scrape_configs; j++)
        n += cfg->scrape_configs[j].n_docker_sd_configs;
    sd_docker *next = mem_calloc(n + 1, sizeof *next);
    size_t k = 0;
    for (size_t j = 0; j < cfg->n_scrape_configs; j++) {
        const config_scrape *sc = &cfg->scrape_configs[j];
        for (size_t s = 0; s < sc->n_docker_sd_configs; s++) {
            const config_docker_sd *sd = &sc->docker_sd_configs[s];
            sd_docker *nd = &next[k++];
            nd->job = j;
            for (size_t o = 0; o < d->n_dockers; o++) {
                sd_docker *od = &d->dockers[o];
                if (od->dd && discovery_docker_same(od->dd, sd, sc->job_name)) {
                    *nd = *od;
                    nd->job = j;
                    memset(od, 0, sizeof *od);
                    break;
                }
            }
            if (!nd->dd) nd->dd = discovery_docker_new(cfg, sd, sc->job_name, d->reg, d->efd);
        }
    }
    free_dockers(d->dockers, d->n_dockers);
    d->dockers = next;
    d->n_dockers = n;
}

/* Takes new groups from the docker discoverers; true if any had some. */
static bool take_dockers(discovery *d)
{
    if (d->efd >= 0) {
        uint64_t v;
        while (read(d->efd, &v, sizeof v) > 0) {
        }
    }
    bool any = false;
    for (size_t i = 0; i < d->n_dockers; i++) {
        sd_docker *dk = &d->dockers[i];
        config_target_group *g;
        size_t n;
        if (dk->dd && discovery_docker_take(dk->dd, &g, &n)) {
            discovery_docker_groups_free(dk->groups, dk->n_groups);
            dk->groups = g;
            dk->n_groups = n;
            any = true;
        }
    }
    return any;
}

void discovery_apply(discovery *d, config *cfg)
{
    config *old = d->cfg;
    d->cfg = config_ref(cfg);
    apply_dockers(d, cfg);
    take_dockers(d);
    unwatch_all(d);
    for (size_t j = 0; j < cfg->n_scrape_configs; j++) {
        const config_scrape *sc = &cfg->scrape_configs[j];
        for (size_t s = 0; s < sc->n_file_sd_configs; s++) {
            for (size_t p = 0; p < sc->file_sd_configs[s].n_files; p++)
                watch_dir(d, sc->file_sd_configs[s].files[p]);
        }
    }
    /* Re-read everything under the new config. */
    for (size_t i = 0; i < d->n_files; i++)
        d->files[i]->have = false;
    scan(d);
    d->state_hash = groups_hash(d);
    d->dirty = false;
    d->next_refresh_ms = 0;
    config_unref(old);
}

bool discovery_refresh(discovery *d, int64_t now_ms)
{
    if (!d->cfg) return false;
    if (d->ifd >= 0) {
        /* Only events on names a pattern can match count: other files in a
         * watched directory (a log file, say) must not cause rescans. */
        char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        ssize_t r;
        while ((r = read(d->ifd, ev, sizeof ev)) > 0) {
            for (char *p = ev; p < ev + r;) {
                const struct inotify_event *e = (const struct inotify_event *)p;
                if (e->len == 0 || (e->mask & IN_Q_OVERFLOW)) d->dirty = true;
                for (size_t i = 0; e->len && i < d->n_names; i++) {
                    if (fnmatch(d->names[i], e->name, FNM_PERIOD) == 0) d->dirty = true;
                }
                p += sizeof *e + e->len;
            }
        }
    }
    bool docker = take_dockers(d);
    int64_t every = min_refresh_ms(d->cfg);
    if (every > 0 && d->next_refresh_ms == 0) d->next_refresh_ms = now_ms + every;
    bool due = every > 0 && now_ms >= d->next_refresh_ms;
    if (!d->dirty && !due && !docker) return false;
    if (due) d->next_refresh_ms = now_ms + every;
    if (d->dirty || due) {
        d->dirty = false;
        /* scan() re-reads every matched file; unchanged content is
         * recognised by its hash and costs no parse. */
        scan(d);
    } else {
        add_docker_groups(d);
    }
    uint64_t h = groups_hash(d);
    if (h == d->state_hash) return false;
    d->state_hash = h;
    return true;
}

size_t discovery_groups(discovery *d, size_t job, const config_target_group *const **out)
{
    if (job >= d->n_jobs) {
        *out = NULL;
        return 0;
    }
    *out = d->jobs[job].groups;
    return d->jobs[job].n_groups;
}
