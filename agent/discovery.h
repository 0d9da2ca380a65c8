/* discovery: target groups for each scrape job, from static_configs,
 * file_sd_configs (JSON or YAML files matched by glob patterns, re-read when
 * they change: inotify, and every refresh_interval as a fallback) and
 * docker_sd_configs (discovery_docker: one thread per entry asks the
 * Docker engine every refresh_interval).
 *
 * A discovery belongs to one thread (the scrape thread): it is not
 * thread-safe. Groups returned are valid until the next discovery_apply()
 * or discovery_refresh(). A file that cannot be read or parsed, or a
 * Docker engine that cannot be asked, keeps its previous groups and the
 * error is logged and counted, as Prometheus does. A reload keeps a docker
 * discoverer whose config did not change, with its groups. */
#ifndef SIDEWATCH_DISCOVERY_H
#define SIDEWATCH_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "registry.h"

/* Largest file_sd file read (bigger files are an error for that file). */
#define DISCOVERY_MAX_FILE_BYTES (16 * 1024 * 1024)

typedef struct discovery discovery;

/* `reg` (may be NULL) receives sidewatch_sd_* metrics. */
discovery *discovery_new(registry *reg);
void discovery_free(discovery *d);

/* Starts serving `cfg` (a reference is taken): static groups are taken from
 * it, file_sd patterns are expanded and read now, docker discoverers start
 * (their groups arrive through discovery_refresh) or are kept. */
void discovery_apply(discovery *d, config *cfg);

/* Re-reads files whose content may have changed (inotify events, new files
 * matching a pattern, refresh intervals elapsed) and takes new docker
 * groups. Returns true if the groups of any job changed. Cheap when nothing
 * changed. */
bool discovery_refresh(discovery *d, int64_t now_ms);

/* A descriptor that becomes readable when a watched file changes or a
 * docker discoverer has new groups (an epoll set; discovery_refresh()
 * drains it), or -1. */
int discovery_fd(const discovery *d);

/* The target groups of scrape config `job` (index into cfg->scrape_configs):
 * static groups first, then file groups in file order, then docker groups
 * (one per discovered target) in config order. Returns the count
 * and sets *out to a borrowed array. */
size_t discovery_groups(discovery *d, size_t job, const config_target_group *const **out);

#endif
