/* rules: see rules.h. (Stub bodies; the implementation follows.) */
#include "rules.h"

#include <errno.h>
#include <string.h>

const char *rules_state_name(enum rules_alert_state s)
{
    switch (s) {
    case RULES_STATE_INACTIVE: return "inactive";
    case RULES_STATE_PENDING: return "pending";
    case RULES_STATE_FIRING: return "firing";
    default: return "unknown";
    }
}

const char *rules_health_name(enum rules_health h)
{
    switch (h) {
    case RULES_HEALTH_OK: return "ok";
    case RULES_HEALTH_ERR: return "err";
    default: return "unknown";
    }
}

void rules_persist_store(store *s, rules_persist *out) { (void)s; memset(out, 0, sizeof *out); }
void rules_source_store(store *s, const promql_engine_options *eo, rules_source *out)
{
    (void)s; (void)eo; memset(out, 0, sizeof *out);
}
void rules_appender_store(store *s, rules_appender *out) { (void)s; memset(out, 0, sizeof *out); }
void rules_source_queryable(const promql_queryable *q, rules_source *out)
{
    (void)q; memset(out, 0, sizeof *out);
}
int rules_manager_new(const rules_options *o, rules_manager **out, buf *err)
{
    (void)o; (void)err; *out = NULL; return -ENOSYS;
}
void rules_manager_free(rules_manager *m) { (void)m; }
int rules_manager_update(rules_manager *m, const rules_config *c, buf *err)
{
    (void)m; (void)c; (void)err; return -ENOSYS;
}
int rules_manager_start(rules_manager *m) { (void)m; return -ENOSYS; }
void rules_manager_stop(rules_manager *m) { (void)m; }
int rules_manager_eval(rules_manager *m, int64_t t_ms, const size_t *order, size_t n_order)
{
    (void)m; (void)t_ms; (void)order; (void)n_order; return -ENOSYS;
}
int rules_manager_eval_group(rules_manager *m, size_t group_index, int64_t t_ms)
{
    (void)m; (void)group_index; (void)t_ms; return -ENOSYS;
}
void rules_manager_snapshot(rules_manager *m, rules_snapshot *out) { (void)m; memset(out, 0, sizeof *out); }
void rules_snapshot_cleanup(rules_snapshot *s) { (void)s; }
int64_t rules_eval_timestamp(const char *file, const char *group, int64_t interval_ms, int64_t now_ms)
{
    (void)file; (void)group; (void)interval_ms; return now_ms;
}
void rules_generator_url(const char *external_url, const char *expr, buf *out)
{
    (void)external_url; (void)expr; (void)out;
}
