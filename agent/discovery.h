/* discovery: target groups for each scrape job, from static_configs and
 * file_sd_configs (JSON or YAML files matched by glob patterns, re-read when
 * they change: inotify, and every refresh_interval as a fallback).
 *
 * A discovery belongs to one thread (the scrape thread): it is not
 * thread-safe. Groups returned are valid until the next discovery_apply()
 * or discovery_refresh(). A file that cannot be read or parsed keeps its
 * previous groups and the error is logged and counted, as Prometheus does. */
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
 * it, file_sd patterns are expanded and read now. */
void discovery_apply(discovery *d, config *cfg);

/* Re-reads files whose content may have changed (inotify events, new files
 * matching a pattern, refresh intervals elapsed). Returns true if the groups
 * of any job changed. Cheap when nothing changed. */
bool discovery_refresh(discovery *d, int64_t now_ms);

/* A descriptor that becomes readable when a watched file changes, or -1. */
int discovery_fd(const discovery *d);

/* The target groups of scrape config `job` (index into cfg->scrape_configs):
 * static groups first, then file groups in file order. Returns the count
 * and sets *out to a borrowed array. */
size_t discovery_groups(discovery *d, size_t job, const config_target_group *const **out);

#endif
