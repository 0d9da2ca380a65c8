#include "discovery.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
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
    const config_target_group **groups; /* static, then files' */
    size_t n_groups;
} sd_job;

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

discovery *discovery_new(registry *reg)
{
    discovery *d = mem_calloc(1, sizeof *d);
    d->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (d->ifd < 0)
        log_warn("discovery",
                 "inotify unavailable (%s): file_sd changes are seen at refresh_interval",
                 strerror(errno));
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
        /* Closing is the simplest way to drop every watch at once. */
        close(d->ifd);
        d->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    }
}

void discovery_free(discovery *d)
{
    if (!d) return;
    free_jobs(d);
    for (size_t i = 0; i < d->n_files; i++)
        free_file(d->files[i]);
    mem_free(d->files);
    unwatch_all(d);
    if (d->ifd >= 0) close(d->ifd);
    config_unref(d->cfg);
    mem_free(d);
}

int discovery_fd(const discovery *d)
{
    return d->ifd;
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
    }
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

void discovery_apply(discovery *d, config *cfg)
{
    config *old = d->cfg;
    d->cfg = config_ref(cfg);
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
    int64_t every = min_refresh_ms(d->cfg);
    if (every > 0 && d->next_refresh_ms == 0) d->next_refresh_ms = now_ms + every;
    bool due = every > 0 && now_ms >= d->next_refresh_ms;
    if (!d->dirty && !due) return false;
    if (due) d->next_refresh_ms = now_ms + every;
    d->dirty = false;
    /* scan() re-reads every matched file; unchanged content is recognised by
     * its hash and costs no parse. */
    scan(d);
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
