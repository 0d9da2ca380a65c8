/* log: leveled logfmt lines on stderr, in the shape Prometheus writes:
 *   ts=2026-11-25T14:13:38.123Z level=warn component=scrape msg="..." target=...
 *
 * The level is process-wide and set once by main before threads start; the
 * functions are safe to call from any thread (one write per line). */
#ifndef SIDEWATCH_LOG_H
#define SIDEWATCH_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Parses "debug", "info", "warn" or "error"; returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
void log_set_level(enum log_level level);
int log_enabled(enum log_level level);

/* Writes one line: msg is the printf-formatted text, quoted and escaped.
 * `kv` may be NULL or hold extra logfmt pairs ("target=\"x\" err=\"y\""),
 * written after msg as given. */
void log_write(enum log_level level, const char *component, const char *kv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_debug(comp, ...) log_write(LOG_DEBUG, comp, NULL, __VA_ARGS__)
#define log_info(comp, ...) log_write(LOG_INFO, comp, NULL, __VA_ARGS__)
#define log_warn(comp, ...) log_write(LOG_WARN, comp, NULL, __VA_ARGS__)
#define log_error(comp, ...) log_write(LOG_ERROR, comp, NULL, __VA_ARGS__)

#endif
