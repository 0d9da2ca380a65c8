/* apiv1: the Prometheus HTTP API (see apiv1.h). The reference for every
 * shape and message is Prometheus 3.x's web/api/v1/api.go; functions below
 * name the Go function they follow where that helps. */
#include "apiv1.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "expfmt.h"
#include "json.h"
#include "labels.h"
#include "log.h"
#include "mem.h"
#include "querier.h"
#include "strutil.h"
#include "yamlconf.h"

#define COMPONENT "api"

/* Prometheus's MinTime and MaxTime (the defaults of optional start/end):
 * time.Unix(math.MinInt64/1000+62135596801, 0) and
 * time.Unix(math.MaxInt64/1000-62135596801, 999999999), in milliseconds. */
#define APIV1_MIN_TIME_MS (-9223309901257974LL * 1000)
#define APIV1_MAX_TIME_MS (9223309901257974LL * 1000 + 999)

#define CT_JSON "application/json"
#define CT_TEXT "text/plain; charset=utf-8"

struct apiv1 {
    apiv1_options o;
    apiv1_flag *flags; /* copies, sorted by name */
    char *listen_address;
    pthread_mutex_t slots_mu;
    pthread_cond_t slots_cv; /* on CLOCK_MONOTONIC */
    int slots_free;
    registry_metric *refused[APIV1_REFUSED_COUNT]; /* sidewatch_queries_refused_total; NULL: none */
};

static const char *const refused_reasons[APIV1_REFUSED_COUNT] = {
    [APIV1_REFUSED_MAX_SAMPLES] = "max_samples",
    [APIV1_REFUSED_TIMEOUT] = "timeout",
    [APIV1_REFUSED_TOO_MANY_POINTS] = "too_many_points",
    [APIV1_REFUSED_REGEX_TOO_LARGE] = "regex_too_large",
};

const char *apiv1_refused_reason(enum apiv1_refused r)
{
    return r < APIV1_REFUSED_COUNT ? refused_reasons[r] : "";
}

static void count_refused(apiv1 *a, enum apiv1_refused why)
{
    if (a->refused[why]) registry_inc(a->refused[why]);
}

void apiv1_count_refused(apiv1 *a, enum apiv1_refused why)
{
    count_refused(a, why);
}

/* ---- parameters ------------------------------------------------------------------ */

void apiv1_params_init(apiv1_params *p)
{
    memset(p, 0, sizeof *p);
}

void apiv1_params_cleanup(apiv1_params *p)
{
    for (size_t i = 0; i < p->n; i++) {
        mem_free(p->v[i].key);
        mem_free(p->v[i].value);
    }
    mem_free(p->v);
    mem_free(p->error);
    memset(p, 0, sizeof *p);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Go's url.QueryUnescape: returns a new string (caller frees) or NULL with
 * the EscapeError's message in err. */
static char *query_unescape(const char *s, size_t len, size_t *out_len, buf *err)
{
    char *out = mem_malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            if (i + 2 >= len || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
                size_t bad = len - i < 3 ? len - i : 3;
                buf_puts(err, "invalid URL escape ");
                expfmt_quote_go(buf_sink, err, s + i, bad);
                mem_free(out);
                return NULL;
            }
            out[n++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        } else if (s[i] == '+') {
            out[n++] = ' ';
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

static void set_error(apiv1_params *p, const char *msg, bool overwrite)
{
    if (p->error && !overwrite) return;
    mem_free(p->error);
    p->error = mem_strdup(msg);
}

int apiv1_params_parse(apiv1_params *p, const char *s, size_t len)
{
    buf err;
    buf_init(&err, 1024);
    size_t i = 0;
    int rc = 0;
    while (i < len) {
        const char *amp = memchr(s + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - s) : len;
        const char *pair = s + i;
        size_t plen = end - i;
        i = amp ? end + 1 : len;
        if (memchr(pair, ';', plen)) {
            /* Go overwrites any earlier error with this one. */
            set_error(p, "invalid semicolon separator in query", true);
            continue;
        }
        if (plen == 0) continue;
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq ? (size_t)(eq - pair) : plen;
        buf_reset(&err);
        size_t kl, vl;
        char *k = query_unescape(pair, klen, &kl, &err);
        char *v = k ? query_unescape(eq ? eq + 1 : "", eq ? plen - klen - 1 : 0, &vl, &err) : NULL;
        if (!v) {
            mem_free(k);
            set_error(p, buf_cstr(&err), false);
            continue;
        }
        if (p->n >= APIV1_MAX_PARAMS) {
            mem_free(k);
            mem_free(v);
            rc = -E2BIG;
            break;
        }
        p->v = mem_grow(p->v, sizeof *p->v, p->n + 1, &p->cap);
        p->v[p->n++] = (apiv1_param){k, v, kl, vl};
    }
    buf_cleanup(&err);
    return rc;
}

const apiv1_param *apiv1_params_get(const apiv1_params *p, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i].key_len == kl && memcmp(p->v[i].key, key, kl) == 0) return &p->v[i];
    }
    return NULL;
}

/* ---- times and durations ---------------------------------------------------------- */

size_t apiv1_format_time(int64_t ms, char out[40])
{
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        sec--;
    }
    return strutil_format_rfc3339(sec, (int32_t)frac * 1000000, out);
}

/* time.Parse(time.RFC3339Nano, s), truncated to milliseconds. */
static bool parse_rfc3339(const char *s, size_t len, int64_t *ms)
{
    int64_t sec;
    int32_t nsec;
    if (strutil_parse_rfc3339(s, len, &sec, &nsec) != 0) return false;
    *ms = sec * 1000 + nsec / 1000000;
    return true;
}

static void cannot_parse(buf *err, const char *s, size_t len, const char *what)
{
    buf_puts(err, "cannot parse ");
    expfmt_quote_go(buf_sink, err, s, len);
    buf_printf(err, " to a valid %s", what);
}

int apiv1_parse_time(const char *s, size_t len, int64_t *ms, buf *err)
{
    double f;
    if (expfmt_parse_float(s, len, &f) == 0 && !isnan(f) && !isinf(f)) {
        /* Seconds; the fraction is rounded to milliseconds (parseTime).
         * Beyond what milliseconds hold, the time saturates. */
        if (f >= 9.2e15) {
            *ms = INT64_MAX;
        } else if (f <= -9.2e15) {
            *ms = INT64_MIN;
        } else {
            double ip, fp = modf(f, &ip);
            *ms = (int64_t)ip * 1000 + (int64_t)round(fp * 1000);
        }
        return 0;
    }
    if (parse_rfc3339(s, len, ms)) return 0;
    char mn[40], mx[40];
    size_t mnl = apiv1_format_time(APIV1_MIN_TIME_MS, mn);
    /* MaxTime carries nanoseconds .999999999. */
    size_t mxl = apiv1_format_time(APIV1_MAX_TIME_MS - 999, mx) - 1;
    memcpy(mx + mxl, ".999999999Z", 12);
    mxl += 11;
    if (len == mnl && memcmp(s, mn, len) == 0) {
        *ms = APIV1_MIN_TIME_MS;
        return 0;
    }
    if (len == mxl && memcmp(s, mx, len) == 0) {
        *ms = APIV1_MAX_TIME_MS;
        return 0;
    }
    cannot_parse(err, s, len, "timestamp");
    return -EINVAL;
}

int apiv1_parse_duration(const char *s, size_t len, int64_t *ns, buf *err)
{
    double f;
    if (expfmt_parse_float(s, len, &f) == 0) {
        double t = f * 1e9;
        if (t >= 9223372036854775808.0 || t < -9223372036854775808.0) {
            cannot_parse(err, s, len, "duration. It overflows int64");
            return -EINVAL;
        }
        /* NaN converts to the smallest int64 on Prometheus's platforms. */
        *ns = isnan(t) ? INT64_MIN : (int64_t)t;
        return 0;
    }
    int64_t ms;
    if (strutil_parse_duration(s, len, &ms, NULL) == 0) {
        *ns = ms * 1000000;
        return 0;
    }
    cannot_parse(err, s, len, "duration");
    return -EINVAL;
}

/* Go's strconv.Atoi with its error text. */
static int parse_atoi(const char *s, size_t len, int64_t *out, buf *err)
{
    size_t i = 0;
    bool neg = false;
    if (len > 0 && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        i = 1;
    }
    bool ok = i < len;
    uint64_t v = 0;
    bool range = false;
    for (; i < len && ok; i++) {
        if (s[i] < '0' || s[i] > '9') {
            ok = false;
            break;
        }
        if (v > (UINT64_MAX - 9) / 10) range = true;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (ok && (range || v > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))) {
        buf_puts(err, "strconv.Atoi: parsing ");
        expfmt_quote_go(buf_sink, err, s, len);
        buf_puts(err, ": value out of range");
        return -ERANGE;
    }
    if (!ok) {
        buf_puts(err, "strconv.Atoi: parsing ");
        expfmt_quote_go(buf_sink, err, s, len);
        buf_puts(err, ": invalid syntax");
        return -EINVAL;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* ---- the request context ---------------------------------------------------------- */

enum err_type {
    ERR_BAD_DATA,
    ERR_EXEC,
    ERR_CANCELED,
    ERR_TIMEOUT,
    ERR_INTERNAL,
    ERR_UNAVAILABLE,
    ERR_NOT_FOUND,
};

static const struct {
    const char *name;
    unsigned status;
} err_types[] = {
    [ERR_BAD_DATA] = {"bad_data", 400},   [ERR_EXEC] = {"execution", 422},
    [ERR_CANCELED] = {"canceled", 499},   [ERR_TIMEOUT] = {"timeout", 503},
    [ERR_INTERNAL] = {"internal", 500},   [ERR_UNAVAILABLE] = {"unavailable", 500},
    [ERR_NOT_FOUND] = {"not_found", 404},
};

typedef struct req {
    apiv1 *a;
    const apiv1_request *rq;
    apiv1_params body;  /* the form body (r.PostForm) */
    apiv1_params query; /* the query string (r.URL.Query()) */
    const char *form_error; /* r.ParseForm's error, or NULL (borrowed) */
    apiv1_response *out;
    const char *route_param; /* label/<name>/values: the name (in path) */
    size_t route_param_len;
} req;

/* r.FormValue: the body first, then the query string; NULL when absent. */
static const apiv1_param *form_value(const req *r, const char *key)
{
    const apiv1_param *p = apiv1_params_get(&r->body, key);
    return p ? p : apiv1_params_get(&r->query, key);
}

/* r.Form[key]: every value, body ones first. Returns a malloc'd array. */
static const apiv1_param **form_values(const req *r, const char *key, size_t *n)
{
    size_t kl = strlen(key), cap = 0;
    const apiv1_param **v = NULL;
    *n = 0;
    const apiv1_params *lists[2] = {&r->body, &r->query};
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < lists[l]->n; i++) {
            const apiv1_param *p = &lists[l]->v[i];
            if (p->key_len == kl && memcmp(p->key, key, kl) == 0) {
                v = mem_grow(v, sizeof *v, *n + 1, &cap);
                v[(*n)++] = p;
            }
        }
    }
    return v;
}

static int64_t now_ms(const apiv1 *a)
{
    if (a->o.now_ms) return a->o.now_ms(a->o.ctx);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- responses ----------------------------------------------------------------------- */

static void respond_error(req *r, enum err_type t, const char *msg)
{
    apiv1_response *out = r->out;
    buf_reset(&out->body);
    json_writer w;
    json_writer_init(&w, &out->body);
    json_write_object_begin(&w);
    json_write_key(&w, "status");
    json_write_string(&w, "error");
    json_write_key(&w, "errorType");
    json_write_string(&w, err_types[t].name);
    json_write_key(&w, "error");
    json_write_string(&w, msg);
    json_write_object_end(&w);
    out->status = err_types[t].status;
    out->content_type = CT_JSON;
}

/* invalidParamError: `invalid parameter "<name>": <msg>`, bad_data. */
static void respond_param_error(req *r, const char *name, const char *msg)
{
    buf m;
    buf_init(&m, BUF_UNLIMITED);
    buf_printf(&m, "invalid parameter \"%s\": %s", name, msg);
    respond_error(r, ERR_BAD_DATA, buf_cstr(&m));
    buf_cleanup(&m);
}

static void respond_text(req *r, unsigned status, const char *text)
{
    buf_reset(&r->out->body);
    buf_puts(&r->out->body, text);
    r->out->status = status;
    r->out->content_type = CT_TEXT;
}

/* Warnings and infos of a response (borrowed strings). */
typedef struct notes {
    const char **warnings;
    size_t n_warnings, cap_warnings;
    const char **infos;
    size_t n_infos, cap_infos;
} notes;

static void note_warning(notes *n, const char *s)
{
    n->warnings = mem_grow(n->warnings, sizeof *n->warnings, n->n_warnings + 1, &n->cap_warnings);
    n->warnings[n->n_warnings++] = s;
}

static void notes_cleanup(notes *n)
{
    mem_free(n->warnings);
    mem_free(n->infos);
}

/* Annotations.AsStrings(query, 10, 10): at most 10 of each kind, then
 * "<n> more warning annotations omitted". */
static void write_note_list(json_writer *w, const char *key, const char *const *v, size_t n,
                            size_t max, const char *kind)
{
    if (n == 0) return;
    json_write_key(w, key);
    json_write_array_begin(w);
    for (size_t i = 0; i < n && i < max; i++)
        json_write_string(w, v[i]);
    if (n > max) {
        char more[96];
        snprintf(more, sizeof more, "%zu more %s annotations omitted", n - max, kind);
        json_write_string(w, more);
    }
    json_write_array_end(w);
}

static void write_notes(json_writer *w, const notes *n)
{
    if (!n) return;
    write_note_list(w, "warnings", n->warnings, n->n_warnings, APIV1_MAX_WARNINGS, "warning");
    write_note_list(w, "infos", n->infos, n->n_infos, APIV1_MAX_INFOS, "info");
}

/* Starts {"status":"success","data": in the response body. */
static void ok_begin(req *r, json_writer *w)
{
    buf_reset(&r->out->body);
    json_writer_init(w, &r->out->body);
    json_write_object_begin(w);
    json_write_key(w, "status");
    json_write_string(w, "success");
    json_write_key(w, "data");
}

/* Ends the envelope with the warnings and infos. */
static void ok_end(req *r, json_writer *w, const notes *n)
{
    write_notes(w, n);
    json_write_object_end(w);
    if (json_writer_error(w) < 0) {
        respond_error(r, ERR_INTERNAL, "response too large");
        return;
    }
    r->out->status = 200;
    r->out->content_type = CT_JSON;
}

static void write_labels(json_writer *w, const labels *ls, bool drop_name)
{
    json_write_object_begin(w);
    for (uint32_t i = 0; i < ls->n; i++) {
        const label *l = &ls->v[i];
        if (drop_name && l->name_len == 8 && memcmp(l->name, LABELS_METRIC_NAME, 8) == 0) continue;
        json_write_key_n(w, l->name, l->name_len);
        json_write_string_n(w, l->value, l->value_len);
    }
    json_write_object_end(w);
}

static void write_strings(json_writer *w, const store_strings *s, size_t limit)
{
    json_write_array_begin(w);
    for (size_t i = 0; i < s->n && (limit == 0 || i < limit); i++)
        json_write_string_n(w, s->v[i].p, s->v[i].len);
    json_write_array_end(w);
}

/* ---- shared parameter handling -------------------------------------------------------- */

/* parseLimitParam. Returns 0 and *limit (0 = none), or -1 after responding. */
static int limit_param(req *r, int64_t *limit)
{
    *limit = 0;
    const apiv1_param *p = form_value(r, "limit");
    if (!p || p->value_len == 0) return 0;
    buf err;
    buf_init(&err, 1024);
    if (parse_atoi(p->value, p->value_len, limit, &err) < 0) {
        respond_param_error(r, "limit", buf_cstr(&err));
        buf_cleanup(&err);
        return -1;
    }
    buf_cleanup(&err);
    if (*limit < 0) {
        respond_param_error(r, "limit", "limit must be non-negative");
        return -1;
    }
    return 0;
}

/* parseTimeParam: an optional time with a default. Returns 0 or -1 after
 * responding. */
static int time_param(req *r, const char *name, int64_t def, int64_t *out)
{
    const apiv1_param *p = form_value(r, name);
    if (!p || p->value_len == 0) {
        *out = def;
        return 0;
    }
    buf err;
    buf_init(&err, 1024);
    buf_printf(&err, "invalid time value for '%s': ", name);
    if (apiv1_parse_time(p->value, p->value_len, out, &err) < 0) {
        respond_param_error(r, name, buf_cstr(&err));
        buf_cleanup(&err);
        return -1;
    }
    buf_cleanup(&err);
    return 0;
}

/* A parsed match[] list: one matcher array per selector. */
typedef struct matcher_sets {
    label_matcher **sets;
    size_t *counts;
    size_t n;
} matcher_sets;

static void matcher_sets_free(matcher_sets *m)
{
    for (size_t i = 0; i < m->n; i++)
        labels_matchers_free(m->sets[i], m->counts[i]);
    mem_free(m->sets);
    mem_free(m->counts);
    memset(m, 0, sizeof *m);
}

/* parseMatchersParam: parses every match[]; each must have a matcher that
 * does not match "". Returns 0, or -EINVAL with the message in err. */
static int parse_matchers(req *r, const apiv1_param *const *v, size_t n, matcher_sets *out,
                          buf *err)
{
    memset(out, 0, sizeof *out);
    out->sets = mem_calloc(n + 1, sizeof *out->sets);
    out->counts = mem_calloc(n + 1, sizeof *out->counts);
    for (size_t i = 0; i < n; i++) {
        int rc = labels_parse_metric_selector_max(v[i]->value, v[i]->value_len,
                                                  r->a->o.parse.max_regex_bytes, &out->sets[i],
                                                  &out->counts[i], err);
        if (rc < 0) {
            if (rc == -E2BIG) count_refused(r->a, APIV1_REFUSED_REGEX_TOO_LARGE);
            matcher_sets_free(out);
            return -EINVAL;
        }
        out->n++;
    }
    for (size_t i = 0; i < out->n; i++) {
        bool ok = false;
        for (size_t k = 0; k < out->counts[i] && !ok; k++)
            ok = !labels_matcher_matches_empty(&out->sets[i][k]);
        if (!ok) {
            buf_puts(err, "match[] must contain at least one non-empty matcher");
            matcher_sets_free(out);
            return -EINVAL;
        }
    }
    return 0;
}

static store_reader *reader_get(req *r)
{
    return r->a->o.reader_get ? r->a->o.reader_get(r->a->o.reader_ctx) : NULL;
}

static void reader_put(req *r, store_reader *sr)
{
    if (sr) r->a->o.reader_put(r->a->o.reader_ctx, sr);
}

/* ---- /labels and /label/<name>/values ------------------------------------------------------ */

/* Merges b into a (both sorted, unique); b is emptied. */
static void strings_merge(store_strings *a, store_strings *b)
{
    store_strings m = {0};
    m.v = mem_calloc(a->n + b->n + 1, sizeof *m.v);
    size_t i = 0, k = 0;
    while (i < a->n || k < b->n) {
        int c;
        if (i == a->n)
            c = 1;
        else if (k == b->n)
            c = -1;
        else {
            size_t l = a->v[i].len < b->v[k].len ? a->v[i].len : b->v[k].len;
            c = memcmp(a->v[i].p, b->v[k].p, l);
            if (!c) c = a->v[i].len < b->v[k].len ? -1 : a->v[i].len > b->v[k].len;
        }
        if (c <= 0) {
            m.v[m.n++] = a->v[i++];
            if (c == 0) mem_free(b->v[k++].p);
        } else {
            m.v[m.n++] = b->v[k++];
        }
    }
    mem_free(a->v);
    mem_free(b->v);
    b->v = NULL;
    b->n = 0;
    *a = m;
}

/* labelNames and labelValues share everything but the store call. */
static void label_strings(req *r, const char *name, size_t name_len)
{
    int64_t limit, start, end;
    if (limit_param(r, &limit) < 0) return;
    if (time_param(r, "start", APIV1_MIN_TIME_MS, &start) < 0) return;
    if (time_param(r, "end", APIV1_MAX_TIME_MS, &end) < 0) return;
    size_t nm;
    const apiv1_param **mv = form_values(r, "match[]", &nm);
    matcher_sets ms;
    buf err;
    buf_init(&err, 64 * 1024);
    if (parse_matchers(r, mv, nm, &ms, &err) < 0) {
        respond_error(r, ERR_BAD_DATA, buf_cstr(&err));
        buf_cleanup(&err);
        mem_free(mv);
        return;
    }
    mem_free(mv);
    store_reader *sr = reader_get(r);
    if (!sr) {
        respond_error(r, ERR_UNAVAILABLE, "storage is not available");
        matcher_sets_free(&ms);
        buf_cleanup(&err);
        return;
    }
    store_strings res = {0};
    int rc = 0;
    if (ms.n == 0) {
        rc = name ? store_label_values(sr, name, name_len, NULL, 0, start, end, &res)
                  : store_label_names(sr, NULL, 0, start, end, &res);
    }
    for (size_t i = 0; i < ms.n && rc == 0; i++) {
        store_strings one = {0};
        rc = name ? store_label_values(sr, name, name_len, ms.sets[i], ms.counts[i], start, end,
                                       &one)
                  : store_label_names(sr, ms.sets[i], ms.counts[i], start, end, &one);
        if (rc == 0) strings_merge(&res, &one);
        store_strings_free(&one);
    }
    reader_put(r, sr);
    matcher_sets_free(&ms);
    buf_cleanup(&err);
    if (rc < 0) {
        store_strings_free(&res);
        respond_error(r, ERR_EXEC, strerror(-rc));
        return;
    }
    notes n = {0};
    if (limit > 0 && res.n > (size_t)limit) note_warning(&n, "results truncated due to limit");
    json_writer w;
    ok_begin(r, &w);
    write_strings(&w, &res, limit > 0 ? (size_t)limit : 0);
    ok_end(r, &w, &n);
    notes_cleanup(&n);
    store_strings_free(&res);
}

static void h_labels(req *r)
{
    label_strings(r, NULL, 0);
}

/* model.UnescapeName(name, ValueEncodingEscaping): "U__" names spell
 * '_' as "__" and other characters as "_<hex code point>_". Appends the
 * result to out, or the name unchanged when it is not validly escaped. */
static void unescape_name(const char *name, size_t len, buf *out)
{
    if (len < 3 || memcmp(name, "U__", 3) != 0) {
        buf_append(out, name, len);
        return;
    }
    buf u;
    buf_init(&u, BUF_UNLIMITED);
    const char *s = name + 3;
    size_t n = len - 3;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '_') {
            buf_putc(&u, s[i]);
            continue;
        }
        if (++i >= n) goto invalid;
        if (s[i] == '_') {
            buf_putc(&u, '_');
            continue;
        }
        uint32_t cp = 0;
        for (int j = 0;; j++) {
            if (i >= n || j >= 6) goto invalid;
            if (s[i] == '_') break;
            int h = hexval(s[i]); /* Go lower-cases first: both cases decode */
            if (h < 0) goto invalid;
            cp = cp * 16 + (uint32_t)h;
            i++;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto invalid;
        strutil_append_rune(&u, cp);
    }
    buf_append(out, u.data ? u.data : "", u.len);
    buf_cleanup(&u);
    return;
invalid:
    buf_cleanup(&u);
    buf_append(out, name, len);
}

static void h_label_values(req *r)
{
    buf name;
    buf_init(&name, BUF_UNLIMITED);
    unescape_name(r->route_param, r->route_param_len, &name);
    if (name.len == 0 || !expfmt_utf8_valid(name.data, name.len)) {
        buf msg;
        buf_init(&msg, BUF_UNLIMITED);
        buf_puts(&msg, "invalid label name: ");
        expfmt_quote_go(buf_sink, &msg, name.data ? name.data : "", name.len);
        respond_error(r, ERR_BAD_DATA, buf_cstr(&msg));
        buf_cleanup(&msg);
        buf_cleanup(&name);
        return;
    }
    label_strings(r, name.data, name.len);
    buf_cleanup(&name);
}

/* ---- /series ------------------------------------------------------------------------ */

static int cmp_series_labels(const void *x, const void *y)
{
    return labels_compare(((const store_series *)x)->labels, ((const store_series *)y)->labels);
}

static void h_series(req *r)
{
    if (r->form_error) {
        buf m;
        buf_init(&m, BUF_UNLIMITED);
        buf_printf(&m, "error parsing form values: %s", r->form_error);
        respond_error(r, ERR_BAD_DATA, buf_cstr(&m));
        buf_cleanup(&m);
        return;
    }
    size_t nm;
    const apiv1_param **mv = form_values(r, "match[]", &nm);
    if (nm == 0) {
        mem_free(mv);
        respond_error(r, ERR_BAD_DATA, "no match[] parameter provided");
        return;
    }
    int64_t limit, start, end;
    if (limit_param(r, &limit) < 0 || time_param(r, "start", APIV1_MIN_TIME_MS, &start) < 0 ||
        time_param(r, "end", APIV1_MAX_TIME_MS, &end) < 0) {
        mem_free(mv);
        return;
    }
    matcher_sets ms;
    buf err;
    buf_init(&err, 64 * 1024);
    int prc = parse_matchers(r, mv, nm, &ms, &err);
    mem_free(mv);
    if (prc < 0) {
        respond_param_error(r, "match[]", buf_cstr(&err));
        buf_cleanup(&err);
        return;
    }
    buf_cleanup(&err);
    store_reader *sr = reader_get(r);
    if (!sr) {
        matcher_sets_free(&ms);
        respond_error(r, ERR_UNAVAILABLE, "storage is not available");
        return;
    }
    /* One snapshot for all the selectors. */
    bool snap = store_reader_begin(sr) == 0;
    store_series *all = NULL;
    size_t n_all = 0, cap_all = 0;
    int rc = 0;
    for (size_t i = 0; i < ms.n && rc == 0; i++) {
        store_select_result res;
        rc = store_select(sr, ms.sets[i], ms.counts[i], start, end, &res);
        if (rc < 0) break;
        for (size_t k = 0; k < res.n; k++) {
            all = mem_grow(all, sizeof *all, n_all + 1, &cap_all);
            all[n_all++] = res.series[k];
        }
        mem_free(res.series);
    }
    if (snap) store_reader_end(sr);
    reader_put(r, sr);
    size_t n_sets = ms.n;
    matcher_sets_free(&ms);
    if (rc < 0) {
        for (size_t i = 0; i < n_all; i++)
            labels_free(all[i].labels);
        mem_free(all);
        respond_error(r, ERR_INTERNAL, strerror(-rc));
        return;
    }
    /* Several selectors: merged and deduplicated, as storage.NewMergeSeriesSet. */
    if (n_sets > 1) {
        qsort(all, n_all, sizeof *all, cmp_series_labels);
        size_t k = 0;
        for (size_t i = 0; i < n_all; i++) {
            if (k && all[k - 1].ref == all[i].ref) {
                labels_free(all[i].labels);
                continue;
            }
            all[k++] = all[i];
        }
        n_all = k;
    }
    notes n = {0};
    size_t shown = n_all;
    if (limit > 0 && n_all > (size_t)limit) {
        shown = (size_t)limit;
        note_warning(&n, "results truncated due to limit");
    }
    json_writer w;
    ok_begin(r, &w);
    json_write_array_begin(&w);
    for (size_t i = 0; i < shown; i++)
        write_labels(&w, all[i].labels, false);
    json_write_array_end(&w);
    ok_end(r, &w, &n);
    notes_cleanup(&n);
    for (size_t i = 0; i < n_all; i++)
        labels_free(all[i].labels);
    mem_free(all);
}

/* ---- /metadata ----------------------------------------------------------------------- */

/* strconv.Atoi for limit and limit_per_metric, with metricMetadata's
 * message. Returns 0, or -1 after responding. */
static int metadata_limit(req *r, const char *name, int64_t *out)
{
    *out = -1;
    const apiv1_param *p = form_value(r, name);
    if (!p || p->value_len == 0) return 0;
    buf err;
    buf_init(&err, 1024);
    int rc = parse_atoi(p->value, p->value_len, out, &err);
    buf_cleanup(&err);
    if (rc < 0) {
        char msg[64];
        snprintf(msg, sizeof msg, "%s must be a number", name);
        respond_error(r, ERR_BAD_DATA, msg);
        return -1;
    }
    return 0;
}

static void h_metadata(req *r)
{
    int64_t limit, limit_per_metric;
    if (metadata_limit(r, "limit", &limit) < 0) return;
    if (metadata_limit(r, "limit_per_metric", &limit_per_metric) < 0) return;
    const apiv1_param *metric = form_value(r, "metric");
    store_reader *sr = reader_get(r);
    if (!sr) {
        respond_error(r, ERR_UNAVAILABLE, "storage is not available");
        return;
    }
    store_metadata *md = NULL;
    size_t n = 0;
    int rc = store_metadata_list(sr, &md, &n);
    reader_put(r, sr);
    if (rc < 0) {
        respond_error(r, ERR_INTERNAL, strerror(-rc));
        return;
    }
    json_writer w;
    ok_begin(r, &w);
    json_write_object_begin(&w);
    int64_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (metric && metric->value_len &&
            (strlen(md[i].metric) != metric->value_len ||
             memcmp(md[i].metric, metric->value, metric->value_len) != 0))
            continue;
        if (limit >= 0 && shown >= limit) break;
        /* One entry per metric: limit_per_metric (>0) cannot cut it. */
        json_write_key(&w, md[i].metric);
        json_write_array_begin(&w);
        json_write_object_begin(&w);
        json_write_key(&w, "type");
        json_write_string(&w, expfmt_type_name(md[i].type));
        json_write_key(&w, "unit");
        json_write_string(&w, md[i].unit);
        json_write_key(&w, "help");
        json_write_string(&w, md[i].help);
        json_write_object_end(&w);
        json_write_array_end(&w);
        shown++;
    }
    json_write_object_end(&w);
    ok_end(r, &w, NULL);
    store_metadata_free(md, n);
}

/* ---- /targets ------------------------------------------------------------------------- */

/* host and port of a URL's authority ("http://h:p/path"). */
static void url_host_port(const char *url, const char **host, size_t *hl, const char **port,
                          size_t *pl, const char **auth_end)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *end = p + strcspn(p, "/?#");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) p = at + 1;
    *auth_end = end;
    *port = NULL;
    *pl = 0;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) rb = end;
        *host = p + 1;
        *hl = (size_t)(rb - p - 1);
        if (rb < end && rb[1] == ':') {
            *port = rb + 2;
            *pl = (size_t)(end - rb - 2);
        }
        return;
    }
    const char *colon = memchr(p, ':', (size_t)(end - p));
    *host = p;
    *hl = colon ? (size_t)(colon - p) : (size_t)(end - p);
    if (colon) {
        *port = colon + 1;
        *pl = (size_t)(end - colon - 1);
    }
}

/* getGlobalURL: targets on localhost get the externally reachable host
 * (Prometheus's external URL defaults to http://<hostname>:<listen port>). */
static void global_url(const apiv1 *a, const char *url, const char *hostname, buf *out)
{
    const char *host, *port, *auth_end;
    size_t hl, pl;
    url_host_port(url, &host, &hl, &port, &pl, &auth_end);
    static const char *const local[] = {"127.0.0.1", "localhost", "::1"};
    bool is_local = false;
    for (size_t i = 0; i < 3; i++) {
        if (strlen(local[i]) == hl && memcmp(local[i], host, hl) == 0) is_local = true;
    }
    const char *lp = a->listen_address ? strrchr(a->listen_address, ':') : NULL;
    if (!is_local || !lp) {
        buf_puts(out, url);
        return;
    }
    lp++;
    const char *scheme_end = strstr(url, "://");
    if (port && strlen(lp) == pl && memcmp(lp, port, pl) == 0) {
        buf_printf(out, "http://%s:%s", hostname, lp);
    } else {
        if (scheme_end) buf_append(out, url, (size_t)(scheme_end - url) + 3);
        buf_puts(out, hostname);
        if (port) {
            buf_putc(out, ':');
            buf_append(out, port, pl);
        }
    }
    buf_puts(out, auth_end);
}

static void write_time(json_writer *w, int64_t ms)
{
    char t[40];
    /* Go's zero time for "never". */
    if (ms == 0) {
        json_write_string(w, "0001-01-01T00:00:00Z");
        return;
    }
    json_write_string_n(w, t, apiv1_format_time(ms, t));
}

/* ---- /rules, /alerts and /alertmanagers ------------------------------------------------------- */

/* An alert's value as Prometheus prints it: strconv.FormatFloat(v, 'e', -1,
 * 64), the shortest exponent form that reads back exactly ("9e-01"). */
static void write_alert_value(json_writer *w, double v)
{
    char s[40];
    if (isnan(v))
        snprintf(s, sizeof s, "NaN");
    else if (isinf(v))
        snprintf(s, sizeof s, "%sInf", v > 0 ? "+" : "-");
    else
        for (int p = 0; p <= 17; p++) {
            snprintf(s, sizeof s, "%.*e", p, v);
            if (strtod(s, NULL) == v) break;
        }
    json_write_string(w, s);
}

/* Go's zero time for a time that was never set. */
static void write_rule_time(json_writer *w, int64_t ms)
{
    char t[40];
    if (ms == RULES_TS_NONE)
        json_write_string(w, "0001-01-01T00:00:00Z");
    else
        json_write_string_n(w, t, apiv1_format_time(ms, t));
}

static void write_alert(json_writer *w, const rules_alert *a)
{
    json_write_object_begin(w);
    json_write_key(w, "labels");
    write_labels(w, a->labels, false);
    json_write_key(w, "annotations");
    write_labels(w, a->annotations ? a->annotations : labels_empty(), false);
    json_write_key(w, "state");
    json_write_string(w, rules_state_name(a->state));
    json_write_key(w, "activeAt");
    write_rule_time(w, a->active_at_ms);
    if (a->keep_firing_since_ms != RULES_TS_NONE) {
        json_write_key(w, "keepFiringSince");
        write_rule_time(w, a->keep_firing_since_ms);
    }
    json_write_key(w, "value");
    write_alert_value(w, a->value);
    json_write_object_end(w);
}

static void write_alerts(json_writer *w, const rules_alert *a, size_t n)
{
    json_write_array_begin(w);
    for (size_t i = 0; i < n; i++)
        write_alert(w, &a[i]);
    json_write_array_end(w);
}

/* strconv.ParseBool. */
static int parse_go_bool(const char *s, size_t len, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (strlen(yes[i]) == len && memcmp(yes[i], s, len) == 0) return *out = true, 0;
        if (strlen(no[i]) == len && memcmp(no[i], s, len) == 0) return *out = false, 0;
    }
    return -EINVAL;
}

static bool param_listed(const apiv1_param *const *v, size_t n, const char *s)
{
    if (!n) return true;
    for (size_t i = 0; i < n; i++)
        if (v[i]->value_len == strlen(s) && memcmp(v[i]->value, s, v[i]->value_len) == 0)
            return true;
    return false;
}

/* Opens a group object up to its "rules" array; returns true. */
static bool begin_rule_group(json_writer *w, const rules_group_snap *gs)
{
    json_write_object_begin(w);
    json_write_key(w, "name");
    json_write_string(w, gs->name);
    json_write_key(w, "file");
    json_write_string(w, gs->file);
    json_write_key(w, "rules");
    json_write_array_begin(w);
    return true;
}

static void h_rules(req *r)
{
    const apiv1_param *typ = form_value(r, "type");
    bool want_alerting = true, want_recording = true;
    if (typ && typ->value_len) {
        char t[16] = "";
        for (size_t i = 0; i < typ->value_len && i < sizeof t - 1; i++)
            t[i] = (char)(typ->value[i] >= 'A' && typ->value[i] <= 'Z' ? typ->value[i] + 32
                                                                        : typ->value[i]);
        if (typ->value_len < sizeof t && strcmp(t, "alert") == 0) {
            want_recording = false;
        } else if (typ->value_len < sizeof t && strcmp(t, "record") == 0) {
            want_alerting = false;
        } else {
            buf m;
            buf_init(&m, BUF_UNLIMITED);
            buf_printf(&m, "not supported value \"%.*s\"", (int)typ->value_len, typ->value);
            respond_param_error(r, "type", buf_cstr(&m));
            buf_cleanup(&m);
            return;
        }
    }
    bool exclude_alerts = false;
    const apiv1_param *ex = form_value(r, "exclude_alerts");
    if (ex && ex->value_len) {
        if (parse_go_bool(ex->value, ex->value_len, &exclude_alerts) < 0) {
            buf m;
            buf_init(&m, BUF_UNLIMITED);
            buf_printf(&m, "strconv.ParseBool: parsing \"%.*s\": invalid syntax",
                       (int)ex->value_len, ex->value);
            respond_param_error(r, "exclude_alerts", buf_cstr(&m));
            buf_cleanup(&m);
            return;
        }
    }
    size_t n_names, n_groups, n_files, n_match;
    const apiv1_param **names = form_values(r, "rule_name[]", &n_names);
    const apiv1_param **groups = form_values(r, "rule_group[]", &n_groups);
    const apiv1_param **files = form_values(r, "file[]", &n_files);
    const apiv1_param **match = form_values(r, "match[]", &n_match);
    matcher_sets ms = {0};
    buf err;
    buf_init(&err, BUF_UNLIMITED);
    if (n_match && parse_matchers(r, match, n_match, &ms, &err) < 0) {
        respond_param_error(r, "match[]", buf_cstr(&err));
        goto out;
    }
    rules_snapshot snap = {0};
    if (r->a->o.rules_snapshot) r->a->o.rules_snapshot(r->a->o.ctx, &snap);
    json_writer w;
    ok_begin(r, &w);
    json_write_object_begin(&w);
    json_write_key(&w, "groups");
    json_write_array_begin(&w);
    for (size_t g = 0; g < snap.n_groups; g++) {
        const rules_group_snap *gs = &snap.groups[g];
        if (!param_listed(groups, n_groups, gs->name) || !param_listed(files, n_files, gs->file))
            continue;
        bool any = false;
        for (size_t i = 0; i < gs->n_rules; i++) {
            const rules_rule_snap *rs = &gs->rules[i];
            if (rs->alerting ? !want_alerting : !want_recording) continue;
            if (!param_listed(names, n_names, rs->name)) continue;
            if (ms.n) {
                bool hit = false;
                for (size_t k = 0; k < ms.n && !hit; k++)
                    hit = labels_match_all(rs->labels, ms.sets[k], ms.counts[k]);
                if (!hit) continue;
            }
            if (!any) any = begin_rule_group(&w, gs);
            json_write_object_begin(&w);
            if (rs->alerting) {
                json_write_key(&w, "state");
                json_write_string(&w, rules_state_name(rs->state == RULES_STATE_UNKNOWN
                                                           ? RULES_STATE_INACTIVE
                                                           : rs->state));
            }
            json_write_key(&w, "name");
            json_write_string(&w, rs->name);
            json_write_key(&w, "query");
            json_write_string(&w, rs->query);
            if (rs->alerting) {
                json_write_key(&w, "duration");
                json_write_double(&w, (double)rs->for_ms / 1000.0);
                json_write_key(&w, "keepFiringFor");
                json_write_double(&w, (double)rs->keep_firing_for_ms / 1000.0);
                json_write_key(&w, "labels");
                write_labels(&w, rs->labels, false);
                json_write_key(&w, "annotations");
                write_labels(&w, rs->annotations, false);
                json_write_key(&w, "alerts");
                if (exclude_alerts)
                    json_write_null(&w);
                else
                    write_alerts(&w, rs->alerts, rs->n_alerts);
            } else if (rs->labels->n) {
                json_write_key(&w, "labels");
                write_labels(&w, rs->labels, false);
            }
            json_write_key(&w, "health");
            json_write_string(&w, rules_health_name(rs->health));
            if (rs->last_error && *rs->last_error) {
                json_write_key(&w, "lastError");
                json_write_string(&w, rs->last_error);
            }
            json_write_key(&w, "evaluationTime");
            json_write_double(&w, rs->evaluation_time_s);
            json_write_key(&w, "lastEvaluation");
            write_rule_time(&w, rs->last_evaluation_ms);
            json_write_key(&w, "type");
            json_write_string(&w, rs->alerting ? "alerting" : "recording");
            json_write_object_end(&w);
        }
        /* A group is listed when a rule of it is, or, without rule
         * filters, always (Prometheus lists empty groups then). */
        bool filtered = n_names || ms.n || !want_alerting || !want_recording;
        if (!any && !filtered) any = begin_rule_group(&w, gs);
        if (!any) continue;
        json_write_array_end(&w);
        json_write_key(&w, "interval");
        json_write_double(&w, (double)gs->interval_ms / 1000.0);
        json_write_key(&w, "limit");
        json_write_int(&w, gs->limit);
        json_write_key(&w, "evaluationTime");
        json_write_double(&w, gs->evaluation_time_s);
        json_write_key(&w, "lastEvaluation");
        write_rule_time(&w, gs->last_evaluation_ms);
        json_write_object_end(&w);
    }
    json_write_array_end(&w);
    json_write_object_end(&w);
    ok_end(r, &w, NULL);
    rules_snapshot_cleanup(&snap);
out:
    matcher_sets_free(&ms);
    buf_cleanup(&err);
    mem_free(names);
    mem_free(groups);
    mem_free(files);
    mem_free(match);
}

static void h_alerts(req *r)
{
    rules_snapshot snap = {0};
    if (r->a->o.rules_snapshot) r->a->o.rules_snapshot(r->a->o.ctx, &snap);
    json_writer w;
    ok_begin(r, &w);
    json_write_object_begin(&w);
    json_write_key(&w, "alerts");
    json_write_array_begin(&w);
    for (size_t g = 0; g < snap.n_groups; g++)
        for (size_t i = 0; i < snap.groups[g].n_rules; i++) {
            const rules_rule_snap *rs = &snap.groups[g].rules[i];
            if (!rs->alerting) continue;
            for (size_t k = 0; k < rs->n_alerts; k++)
                write_alert(&w, &rs->alerts[k]);
        }
    json_write_array_end(&w);
    json_write_object_end(&w);
    ok_end(r, &w, NULL);
    rules_snapshot_cleanup(&snap);
}

static void h_alertmanagers(req *r)
{
    char **urls = NULL;
    size_t n = 0;
    if (r->a->o.alertmanagers) r->a->o.alertmanagers(r->a->o.ctx, &urls, &n);
    json_writer w;
    ok_begin(r, &w);
    json_write_object_begin(&w);
    json_write_key(&w, "activeAlertmanagers");
    json_write_array_begin(&w);
    for (size_t i = 0; i < n; i++) {
        json_write_object_begin(&w);
        json_write_key(&w, "url");
        json_write_string(&w, urls[i]);
        json_write_object_end(&w);
        mem_free(urls[i]);
    }
    mem_free(urls);
    json_write_array_end(&w);
    json_write_key(&w, "droppedAlertmanagers");
    json_write_array_begin(&w);
    json_write_array_end(&w);
    json_write_object_end(&w);
    ok_end(r, &w, NULL);
}

static void h_targets(req *r)
{
    const apiv1_param *pool = apiv1_params_get(&r->query, "scrapePool");
    const apiv1_param *state = apiv1_params_get(&r->query, "state");
    char st[16] = "";
    if (state && state->value_len < sizeof st) {
        for (size_t i = 0; i < state->value_len; i++)
            st[i] = (char)((state->value[i] >= 'A' && state->value[i] <= 'Z')
                               ? state->value[i] + 32
                               : state->value[i]);
        st[state->value_len] = '\0';
    } else if (state) {
        snprintf(st, sizeof st, "-");
    }
    bool show_active = !*st || strcmp(st, "any") == 0 || strcmp(st, "active") == 0;
    bool show_dropped = !*st || strcmp(st, "any") == 0 || strcmp(st, "dropped") == 0;
    char hostname[256] = "localhost";
    gethostname(hostname, sizeof hostname - 1);
    hostname[sizeof hostname - 1] = '\0';

    scrape_target_status *ts = NULL;
    size_t nt = 0;
    scrape_dropped dropped = {0};
    if (r->a->o.scrape && show_active) scrape_manager_targets(r->a->o.scrape, &ts, &nt);
    if (r->a->o.scrape && show_dropped) scrape_manager_dropped(r->a->o.scrape, &dropped);

    json_writer w;
    ok_begin(r, &w);
    json_write_object_begin(&w);
    json_write_key(&w, "activeTargets");
    json_write_array_begin(&w);
    buf gurl;
    buf_init(&gurl, BUF_UNLIMITED);
    for (size_t i = 0; i < nt; i++) {
        const scrape_target_status *t = &ts[i];
        if (pool && pool->value_len &&
            (strlen(t->job) != pool->value_len || memcmp(t->job, pool->value, pool->value_len)))
            continue;
        json_write_object_begin(&w);
        json_write_key(&w, "discoveredLabels");
        write_labels(&w, t->discovered ? t->discovered : labels_empty(), false);
        json_write_key(&w, "labels");
        write_labels(&w, t->labels ? t->labels : labels_empty(), false);
        json_write_key(&w, "scrapePool");
        json_write_string(&w, t->job);
        json_write_key(&w, "scrapeUrl");
        json_write_string(&w, t->url);
        json_write_key(&w, "globalUrl");
        buf_reset(&gurl);
        global_url(r->a, t->url, hostname, &gurl);
        json_write_string_n(&w, gurl.data ? gurl.data : "", gurl.len);
        json_write_key(&w, "lastError");
        json_write_string(&w, t->last_error ? t->last_error : "");
        json_write_key(&w, "lastScrape");
        write_time(&w, t->last_scrape_ms);
        json_write_key(&w, "lastScrapeDuration");
        json_write_double(&w, t->last_duration_seconds);
        json_write_key(&w, "health");
        json_write_string(&w, t->health > 0 ? "up" : t->health == 0 ? "down" : "unknown");
        char d[32];
        json_write_key(&w, "scrapeInterval");
        strutil_format_duration(t->interval_ms, d);
        json_write_string(&w, d);
        json_write_key(&w, "scrapeTimeout");
        strutil_format_duration(t->timeout_ms, d);
        json_write_string(&w, d);
        json_write_object_end(&w);
    }
    buf_cleanup(&gurl);
    json_write_array_end(&w);
    json_write_key(&w, "droppedTargets");
    json_write_array_begin(&w);
    for (size_t i = 0; i < dropped.n_targets; i++) {
        const char *job = dropped.targets[i].job;
        if (pool && pool->value_len &&
            (strlen(job) != pool->value_len || memcmp(job, pool->value, pool->value_len)))
            continue;
        json_write_object_begin(&w);
        json_write_key(&w, "discoveredLabels");
        write_labels(&w, dropped.targets[i].discovered, false);
        json_write_key(&w, "scrapePool");
        json_write_string(&w, job);
        json_write_object_end(&w);
    }
    json_write_array_end(&w);
    json_write_key(&w, "droppedTargetCounts");
    if (show_dropped) {
        /* A Go map: keys sorted. */
        size_t nj = dropped.n_jobs;
        size_t *order = mem_calloc(nj + 1, sizeof *order);
        for (size_t i = 0; i < nj; i++)
            order[i] = i;
        for (size_t i = 1; i < nj; i++) {
            for (size_t k = i; k > 0 && strcmp(dropped.jobs[order[k - 1]].job,
                                               dropped.jobs[order[k]].job) > 0;
                 k--) {
                size_t x = order[k];
                order[k] = order[k - 1];
                order[k - 1] = x;
            }
        }
        json_write_object_begin(&w);
        for (size_t i = 0; i < nj; i++) {
            json_write_key(&w, dropped.jobs[order[i]].job);
            json_write_uint(&w, dropped.jobs[order[i]].count);
        }
        json_write_object_end(&w);
        mem_free(order);
    } else {
        json_write_null(&w);
    }
    json_write_object_end(&w);
    ok_end(r, &w, NULL);
    scrape_target_status_free(ts, nt);
    scrape_dropped_cleanup(&dropped);
}

/* ---- /status/... ------------------------------------------------------------------------- */

static void h_buildinfo(req *r)
{
    json_writer w;
    ok_begin(r, &w);
    json_write_object_begin(&w);
    json_write_key(&w, "version");
    json_write_string(&w, SIDEWATCH_VERSION);
    json_write_key(&w, "revision");
    json_write_string(&w, "unknown");
    json_write_key(&w, "branch");
    json_write_string(&w, "unknown");
    json_write_key(&w, "buildUser");
    json_write_string(&w, "unknown");
    json_write_key(&w, "buildDate");
    json_write_string(&w, "unknown");
    json_write_key(&w, "goVersion");
    json_write_string(&w, "none (C, " __VERSION__ ")");
    json_write_object_end(&w);
    ok_end(r, &w, NULL);
}

static void h_flags(req *r)
{
    json_writer w;
    ok_begin(r, &w);
    json_write_object_begin(&w);
    for (size_t i = 0; i < r->a->o.n_flags; i++) {
        json_write_key(&w, r->a->flags[i].name);
        json_write_string(&w, r->a->flags[i].value);
    }
    json_write_object_end(&w);
    ok_end(r, &w, NULL);
}

static int thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 1;
    char line[256];
    int n = 1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Threads:", 8) == 0) n = atoi(line + 8);
    }
    fclose(f);
    return n;
}

static void h_runtimeinfo(req *r)
{
    apiv1_runtime rt;
    memset(&rt, 0, sizeof rt);
    if (r->a->o.runtime_info) r->a->o.runtime_info(r->a->o.ctx, &rt);
    char cwd[4096] = "";
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
    char hostname[256] = "";
    gethostname(hostname, sizeof hostname - 1);
    hostname[sizeof hostname - 1] = '\0';
    const char *gogc = getenv("GOGC"), *godebug = getenv("GODEBUG");
    json_writer w;
    ok_begin(r, &w);
    json_write_object_begin(&w);
    json_write_key(&w, "startTime");
    write_time(&w, rt.start_time_ms);
    json_write_key(&w, "CWD");
    json_write_string(&w, cwd);
    json_write_key(&w, "hostname");
    json_write_string(&w, hostname);
    json_write_key(&w, "serverTime");
    write_time(&w, now_ms(r->a));
    json_write_key(&w, "reloadConfigSuccess");
    json_write_bool(&w, rt.reload_config_success);
    json_write_key(&w, "lastConfigTime");
    /* Prometheus keeps whole seconds here. */
    write_time(&w, rt.last_config_time_ms / 1000 * 1000);
    json_write_key(&w, "corruptionCount");
    json_write_int(&w, rt.corruption_count);
    json_write_key(&w, "goroutineCount");
    json_write_int(&w, thread_count());
    json_write_key(&w, "GOMAXPROCS");
    json_write_int(&w, sysconf(_SC_NPROCESSORS_ONLN));
    json_write_key(&w, "GOMEMLIMIT");
    json_write_int(&w, INT64_MAX);
    json_write_key(&w, "GOGC");
    json_write_string(&w, gogc ? gogc : "");
    json_write_key(&w, "GODEBUG");
    json_write_string(&w, godebug ? godebug : "");
    json_write_key(&w, "storageRetention");
    json_write_string(&w, rt.storage_retention);
    json_write_object_end(&w);
    ok_end(r, &w, NULL);
}

/* Keys whose values Prometheus's config.String() shows as <secret> (and,
 * in yaml_seq, the items of an http_headers entry's "secrets"). */
static bool secret_key(const char *key, const char *parent)
{
    static const char *const keys[] = {"password", "credentials", "bearer_token", "client_secret",
                                       "secret_key", "token", "auth_token", "hmac_secret"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(key, keys[i]) == 0) return true;
    }
    return strcmp(key, "key") == 0 && parent && strcmp(parent, "tls_config") == 0;
}

/* A scalar as YAML: plain ones as written, quoted ones double-quoted. */
static void yaml_scalar(buf *out, const yamlconf_node *n)
{
    if (n->kind == YAMLCONF_NULL) {
        buf_puts(out, "null");
        return;
    }
    if (!n->quoted && n->len > 0 && !memchr(n->str, '\n', n->len)) {
        buf_append(out, n->str, n->len);
        return;
    }
    buf_putc(out, '"');
    for (size_t i = 0; i < n->len; i++) {
        unsigned char c = (unsigned char)n->str[i];
        if (c == '"' || c == '\\')
            buf_printf(out, "\\%c", c);
        else if (c == '\n')
            buf_puts(out, "\\n");
        else if (c == '\t')
            buf_puts(out, "\\t");
        else if (c < 0x20 || c == 0x7f)
            buf_printf(out, "\\x%02x", c);
        else
            buf_putc(out, (char)c);
    }
    buf_putc(out, '"');
}

static void indent(buf *out, int n)
{
    for (int i = 0; i < n; i++)
        buf_putc(out, ' ');
}

/* A value that ends its line: a scalar, or {} / [] for a map or sequence
 * that is empty or beyond the depth budget. */
static void yaml_leaf(buf *out, const yamlconf_node *v)
{
    if (v->kind == YAMLCONF_MAP)
        buf_puts(out, "{}");
    else if (v->kind == YAMLCONF_SEQ)
        buf_puts(out, "[]");
    else
        yaml_scalar(out, v);
    buf_putc(out, '\n');
}

static void yaml_seq(buf *out, const yamlconf_node *n, int ind, const char *parent, int budget);

/* A mapping in yaml.v2's block style at indentation ind; with first_inline
 * the first key continues the current line (after "- "). Values of secret
 * keys are masked. */
static void yaml_map(buf *out, const yamlconf_node *n, int ind, bool first_inline,
                     const char *parent, int budget)
{
    for (size_t i = 0; i < n->n; i++) {
        const yamlconf_node *k = n->pairs[i].key, *v = n->pairs[i].value;
        if (i > 0 || !first_inline) indent(out, ind);
        yaml_scalar(out, k);
        buf_putc(out, ':');
        const char *kname = k->kind == YAMLCONF_SCALAR ? k->str : NULL;
        if (kname && secret_key(kname, parent) && v->kind == YAMLCONF_SCALAR) {
            buf_puts(out, " <secret>\n");
        } else if (kname && (strcmp(kname, "url") == 0 || strcmp(kname, "proxy_url") == 0) &&
                   v->kind == YAMLCONF_SCALAR) {
            /* Prometheus's config.URL marshals Redacted(): a password as xxxxx. */
            char *red = config_redact_url(v->str);
            yamlconf_node shown = *v;
            shown.str = red;
            shown.len = strlen(red);
            buf_putc(out, ' ');
            yaml_leaf(out, &shown);
            mem_free(red);
        } else if (v->kind == YAMLCONF_MAP && v->n && budget > 0) {
            buf_putc(out, '\n');
            yaml_map(out, v, ind + 2, false, kname, budget - 1);
        } else if (v->kind == YAMLCONF_SEQ && v->n && budget > 0) {
            buf_putc(out, '\n');
            yaml_seq(out, v, ind, kname, budget - 1);
        } else {
            buf_putc(out, ' ');
            yaml_leaf(out, v);
        }
    }
}

/* A sequence: "- item" lines at indentation ind. */
static void yaml_seq(buf *out, const yamlconf_node *n, int ind, const char *parent, int budget)
{
    for (size_t i = 0; i < n->n; i++) {
        const yamlconf_node *v = n->items[i];
        indent(out, ind);
        buf_puts(out, "- ");
        if (parent && strcmp(parent, "secrets") == 0 && v->kind == YAMLCONF_SCALAR) {
            buf_puts(out, "<secret>\n"); /* http_headers: NAME: secrets: [...] */
        } else if (v->kind == YAMLCONF_MAP && v->n && budget > 0) {
            yaml_map(out, v, ind + 2, true, parent, budget - 1);
        } else if (v->kind == YAMLCONF_SEQ && v->n && budget > 0) {
            buf_putc(out, '\n');
            yaml_seq(out, v, ind + 2, parent, budget - 1);
        } else {
            yaml_leaf(out, v);
        }
    }
}

/* The running config as YAML. Prometheus prints its parsed config with
 * every default filled in; sidewatch prints the file as loaded, re-emitted
 * from its YAML tree (comments and layout normalised) with the values of
 * secret keys replaced by <secret>, as Prometheus does. */
static void config_yaml(const config *c, buf *out)
{
    yamlconf_doc *doc = NULL;
    if (!c->yaml || yamlconf_parse(c->yaml, strlen(c->yaml), c->source, &doc, NULL) < 0) return;
    const yamlconf_node *root = yamlconf_root(doc);
    if (root->kind == YAMLCONF_MAP) yaml_map(out, root, 0, false, NULL, YAMLCONF_MAX_DEPTH);
    yamlconf_free(doc);
}

static void h_config(req *r)
{
    buf y;
    buf_init(&y, BUF_UNLIMITED);
    config *c = r->a->o.current_config ? r->a->o.current_config(r->a->o.ctx) : NULL;
    if (c) {
        config_yaml(c, &y);
        config_unref(c);
    }
    json_writer w;
    ok_begin(r, &w);
    json_write_object_begin(&w);
    json_write_key(&w, "yaml");
    json_write_string_n(&w, y.data ? y.data : "", y.len);
    json_write_object_end(&w);
    ok_end(r, &w, NULL);
    buf_cleanup(&y);
}

static void write_stat_list(json_writer *w, const char *key, const store_stat *v, size_t n)
{
    json_write_key(w, key);
    json_write_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        json_write_object_begin(w);
        json_write_key(w, "name");
        json_write_string(w, v[i].name);
        json_write_key(w, "value");
        json_write_uint(w, v[i].count);
        json_write_object_end(w);
    }
    json_write_array_end(w);
}

static void h_tsdb(req *r)
{
    int64_t limit = APIV1_TSDB_LIMIT;
    const apiv1_param *p = form_value(r, "limit");
    if (p && p->value_len) {
        buf err;
        buf_init(&err, 1024);
        int rc = parse_atoi(p->value, p->value_len, &limit, &err);
        buf_cleanup(&err);
        if (rc < 0 || limit < 1) {
            respond_error(r, ERR_BAD_DATA, "limit must be a positive number");
            return;
        }
        if (limit > APIV1_TSDB_MAX_LIMIT) {
            char msg[64];
            snprintf(msg, sizeof msg, "limit must not exceed %d", APIV1_TSDB_MAX_LIMIT);
            respond_error(r, ERR_BAD_DATA, msg);
            return;
        }
    }
    store_reader *sr = reader_get(r);
    if (!sr) {
        respond_error(r, ERR_UNAVAILABLE, "storage is not available");
        return;
    }
    store_index_stats is;
    int rc = store_index_stats_get(sr, (size_t)limit, &is);
    reader_put(r, sr);
    if (rc < 0) {
        respond_error(r, ERR_INTERNAL, strerror(-rc));
        return;
    }
    store_stats ss;
    store_get_stats(r->a->o.st, &ss);
    bool empty = ss.min_time_ms == 0 && ss.max_time_ms == 0;
    json_writer w;
    ok_begin(r, &w);
    json_write_object_begin(&w);
    json_write_key(&w, "headStats");
    json_write_object_begin(&w);
    json_write_key(&w, "numSeries");
    json_write_uint(&w, ss.series);
    json_write_key(&w, "numLabelPairs");
    json_write_uint(&w, is.num_label_pairs);
    json_write_key(&w, "chunkCount");
    json_write_uint(&w, ss.head_chunks);
    /* An empty head reports math.MaxInt64 / math.MinInt64, as Prometheus. */
    json_write_key(&w, "minTime");
    json_write_int(&w, empty ? INT64_MAX : ss.min_time_ms);
    json_write_key(&w, "maxTime");
    json_write_int(&w, empty ? INT64_MIN : ss.max_time_ms);
    json_write_object_end(&w);
    write_stat_list(&w, "seriesCountByMetricName", is.series_by_metric, is.n_series_by_metric);
    write_stat_list(&w, "labelValueCountByLabelName", is.values_by_label, is.n_values_by_label);
    write_stat_list(&w, "memoryInBytesByLabelName", is.bytes_by_label, is.n_bytes_by_label);
    write_stat_list(&w, "seriesCountByLabelValuePair", is.series_by_pair, is.n_series_by_pair);
    json_write_object_end(&w);
    ok_end(r, &w, NULL);
    store_index_stats_free(&is);
}

/* ---- PromQL results ---------------------------------------------------------------------- */

/* A native histogram as Prometheus's jsonutil.MarshalHistogram writes it:
 * {"count": "...", "sum": "...", "buckets": [[boundary_rule, "lower",
 * "upper", "count"], ...]} with the non-empty buckets from the lowest
 * (rule 0: (lower, upper], 1: [lower, upper), 3: [lower, upper] for the
 * zero bucket); no "buckets" key when every bucket is empty. */
void apiv1_write_histogram(json_writer *w, const promql_fh *h)
{
    json_write_object_begin(w);
    json_write_key(w, "count");
    json_write_float_string(w, h->count);
    json_write_key(w, "sum");
    json_write_float_string(w, h->sum);
    promql_fh_iter it;
    promql_fh_iter_init(&it, h);
    bool found = false;
    while (promql_fh_iter_next(&it)) {
        if (it.count == 0) continue;
        if (!found) {
            json_write_key(w, "buckets");
            json_write_array_begin(w);
            found = true;
        }
        int rule = it.kind < 0 ? 1 : it.kind == 0 ? 3 : 0;
        json_write_array_begin(w);
        json_write_int(w, rule);
        json_write_float_string(w, it.lower);
        json_write_float_string(w, it.upper);
        json_write_float_string(w, it.count);
        json_write_array_end(w);
    }
    if (found) json_write_array_end(w);
    json_write_object_end(w);
}

static void write_series(json_writer *w, const promql_series *s)
{
    json_write_object_begin(w);
    json_write_key(w, "metric");
    write_labels(w, s->metric ? s->metric : labels_empty(), s->drop_name);
    if (s->n) {
        json_write_key(w, "values");
        json_write_array_begin(w);
        for (size_t i = 0; i < s->n; i++) {
            json_write_array_begin(w);
            json_write_timestamp(w, s->pts[i].t);
            json_write_float_string(w, s->pts[i].v);
            json_write_array_end(w);
        }
        json_write_array_end(w);
    }
    if (s->nh) {
        json_write_key(w, "histograms");
        json_write_array_begin(w);
        for (size_t i = 0; i < s->nh; i++) {
            json_write_array_begin(w);
            json_write_timestamp(w, s->hpts[i].t);
            apiv1_write_histogram(w, s->hpts[i].h);
            json_write_array_end(w);
        }
        json_write_array_end(w);
    }
    json_write_object_end(w);
}

static void write_sample(json_writer *w, const promql_sample *s)
{
    json_write_object_begin(w);
    json_write_key(w, "metric");
    write_labels(w, s->metric ? s->metric : labels_empty(), s->drop_name);
    json_write_key(w, s->h ? "histogram" : "value");
    json_write_array_begin(w);
    json_write_timestamp(w, s->t);
    if (s->h)
        apiv1_write_histogram(w, s->h);
    else
        json_write_float_string(w, s->v);
    json_write_array_end(w);
    json_write_object_end(w);
}

/* parser.Scalar and parser.String: [<t as a JSON float>, "<value>"]. */
static void write_scalar_or_string(json_writer *w, const promql_value *v)
{
    json_write_array_begin(w);
    json_write_double(w, (double)v->t / 1000.0);
    if (v->type == PROMQL_TYPE_SCALAR) {
        char f[JSON_FLOAT_MAX];
        json_write_string_n(w, f, json_format_float(v->scalar, JSON_FLOAT_FIXED, f));
    } else {
        json_write_string_n(w, v->string ? v->string : "", v->string_len);
    }
    json_write_array_end(w);
}

/* Frees series [from, n) of a matrix and shortens it. */
static void matrix_truncate(promql_matrix *m, size_t from)
{
    for (size_t i = from; i < m->n; i++) {
        labels_free(m->v[i].metric);
        mem_free(m->v[i].pts);
    }
    if (from < m->n) m->n = from;
}

static void vector_truncate(promql_vector *v, size_t from)
{
    for (size_t i = from; i < v->n; i++)
        labels_free(v->v[i].metric);
    if (from < v->n) v->n = from;
}

struct apiv1_stream {
    promql_value val; /* a matrix; series are freed as they are written */
    promql_annotations ann;
    notes notes; /* borrow from ann (and static strings) */
    size_t next;
    int phase; /* 0 before the head, 1 series, 2 the end, 3 done */
};

void apiv1_stream_free(apiv1_stream *s)
{
    if (!s) return;
    promql_value_cleanup(&s->val);
    promql_annotations_cleanup(&s->ann);
    notes_cleanup(&s->notes);
    mem_free(s);
}

/* Appends ,"<key>":["...",...] with the omission line, as write_note_list. */
static int raw_note_list(buf *out, const char *key, const char *const *v, size_t n, size_t max,
                         const char *kind)
{
    if (n == 0) return 0;
    int rc = buf_printf(out, ",\"%s\":[", key);
    for (size_t i = 0; i < n && i < max && rc == 0; i++) {
        rc = buf_puts(out, i ? ",\"" : "\"");
        if (rc == 0) rc = json_escape(out, v[i], strlen(v[i]));
        if (rc == 0) rc = buf_putc(out, '"');
    }
    if (rc == 0 && n > max) rc = buf_printf(out, ",\"%zu more %s annotations omitted\"", n - max, kind);
    if (rc == 0) rc = buf_putc(out, ']');
    return rc;
}

int apiv1_stream_next(apiv1_stream *s, buf *out)
{
    size_t start = out->len;
    if (s->phase == 0) {
        if (buf_puts(out, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[") <
            0)
            return -E2BIG;
        s->phase = 1;
    }
    promql_matrix *m = &s->val.matrix;
    while (s->phase == 1 && s->next < m->n && out->len - start < APIV1_STREAM_CHUNK) {
        if (s->next && buf_putc(out, ',') < 0) return -E2BIG;
        json_writer w;
        json_writer_init(&w, out);
        promql_series *se = &m->v[s->next];
        write_series(&w, se);
        if (json_writer_error(&w) < 0) return json_writer_error(&w);
        labels_free(se->metric);
        mem_free(se->pts);
        promql_series_free_hists(se);
        se->metric = NULL;
        se->pts = NULL;
        se->n = se->cap = 0;
        s->next++;
    }
    if (s->phase == 1 && s->next >= m->n) s->phase = 2;
    if (s->phase == 2) {
        int rc = buf_puts(out, "]}");
        if (rc == 0)
            rc = raw_note_list(out, "warnings", s->notes.warnings, s->notes.n_warnings,
                               APIV1_MAX_WARNINGS, "warning");
        if (rc == 0)
            rc = raw_note_list(out, "infos", s->notes.infos, s->notes.n_infos, APIV1_MAX_INFOS,
                               "info");
        if (rc == 0) rc = buf_putc(out, '}');
        if (rc < 0) return rc;
        s->phase = 3;
    }
    return s->phase == 3 ? 0 : 1;
}

/* ---- query slots ----------------------------------------------------------------------- */

/* Waits for one of the max_concurrency slots until deadline (monotonic ms;
 * 0 = forever). Returns 0 or -ETIMEDOUT. */
static int slot_acquire(apiv1 *a, int64_t deadline)
{
    pthread_mutex_lock(&a->slots_mu);
    int rc = 0;
    while (a->slots_free == 0 && rc == 0) {
        if (deadline) {
            struct timespec ts = {deadline / 1000, (deadline % 1000) * 1000000};
            if (pthread_cond_timedwait(&a->slots_cv, &a->slots_mu, &ts) == ETIMEDOUT &&
                a->slots_free == 0)
                rc = -ETIMEDOUT;
        } else {
            pthread_cond_wait(&a->slots_cv, &a->slots_mu);
        }
    }
    if (rc == 0) a->slots_free--;
    pthread_mutex_unlock(&a->slots_mu);
    return rc;
}

static void slot_release(apiv1 *a)
{
    pthread_mutex_lock(&a->slots_mu);
    a->slots_free++;
    pthread_cond_signal(&a->slots_cv);
    pthread_mutex_unlock(&a->slots_mu);
}

/* ---- /query and /query_range ---------------------------------------------------------------- */

typedef struct query_args {
    int64_t start, end, step_ms; /* step 0: instant */
    int64_t timeout_ms;          /* from the timeout parameter; -1 = none */
    int64_t lookback_ms;         /* 0 = the engine's */
    int64_t limit;
    bool range;
} query_args;

/* The timeout parameter; returns 0 or -1 after responding. */
static int timeout_param(req *r, int64_t *timeout_ms)
{
    *timeout_ms = -1;
    const apiv1_param *p = form_value(r, "timeout");
    if (!p || p->value_len == 0) return 0;
    int64_t ns;
    buf err;
    buf_init(&err, 1024);
    if (apiv1_parse_duration(p->value, p->value_len, &ns, &err) < 0) {
        respond_param_error(r, "timeout", buf_cstr(&err));
        buf_cleanup(&err);
        return -1;
    }
    buf_cleanup(&err);
    *timeout_ms = ns <= 0 ? 0 : (ns + 999999) / 1000000;
    return 0;
}

/* extractQueryOpts: lookback_delta. Returns 0 or -1 after responding. */
static int query_opts(req *r, int64_t *lookback_ms)
{
    *lookback_ms = 0;
    const apiv1_param *p = form_value(r, "lookback_delta");
    if (!p || p->value_len == 0) return 0;
    int64_t ns;
    buf err;
    buf_init(&err, 1024);
    buf_puts(&err, "error parsing lookback delta duration: ");
    if (apiv1_parse_duration(p->value, p->value_len, &ns, &err) < 0) {
        respond_error(r, ERR_BAD_DATA, buf_cstr(&err));
        buf_cleanup(&err);
        return -1;
    }
    buf_cleanup(&err);
    *lookback_ms = ns > 0 ? ns / 1000000 : 0;
    return 0;
}

/* Maps an evaluation failure (rc from promql_eval) to the API's error
 * (returnAPIError), counting the limits. */
static void respond_eval_error(req *r, int rc, const promql_error *e, const querier *q)
{
    if (q->limit == QUERIER_LIMIT_SAMPLES || (q->limit == QUERIER_LIMIT_NONE && rc == -E2BIG))
        count_refused(r->a, APIV1_REFUSED_MAX_SAMPLES);
    else if (q->limit == QUERIER_LIMIT_DEADLINE || e->kind == PROMQL_ERR_TIMEOUT)
        count_refused(r->a, APIV1_REFUSED_TIMEOUT);
    if (q->limit == QUERIER_LIMIT_SAMPLES) {
        respond_error(r, ERR_EXEC,
                      "query processing would load too many samples into memory in query "
                      "execution");
        return;
    }
    if (q->limit == QUERIER_LIMIT_DEADLINE) {
        respond_error(r, ERR_TIMEOUT, "query timed out in expression evaluation");
        return;
    }
    const char *msg = e->msg.len ? buf_cstr(&e->msg) : "query failed";
    switch (e->kind) {
    case PROMQL_ERR_BAD_DATA:
        respond_param_error(r, "query", msg);
        break;
    case PROMQL_ERR_TIMEOUT:
        respond_error(r, ERR_TIMEOUT, msg);
        break;
    case PROMQL_ERR_CANCELED:
        respond_error(r, ERR_CANCELED, msg);
        break;
    case PROMQL_ERR_INTERNAL:
        respond_error(r, ERR_INTERNAL, msg);
        break;
    default:
        respond_error(r, ERR_EXEC, msg);
        break;
    }
}

static size_t matrix_points(const promql_matrix *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        n += m->v[i].n;
    return n;
}

/* Writes the result (taken) with its annotations (taken). */
static void respond_value(req *r, promql_value *val, promql_annotations *ann, int64_t limit)
{
    notes n = {0};
    for (size_t i = 0; i < ann->n_warnings; i++)
        note_warning(&n, ann->warnings[i]);
    for (size_t i = 0; i < ann->n_infos; i++) {
        n.infos = mem_grow(n.infos, sizeof *n.infos, n.n_infos + 1, &n.cap_infos);
        n.infos[n.n_infos++] = ann->infos[i];
    }
    /* truncateResults */
    if (limit > 0 && val->type == PROMQL_TYPE_VECTOR && val->vector.n > (size_t)limit) {
        vector_truncate(&val->vector, (size_t)limit);
        note_warning(&n, "results truncated due to limit");
    } else if (limit > 0 && val->type == PROMQL_TYPE_MATRIX && val->matrix.n > (size_t)limit) {
        matrix_truncate(&val->matrix, (size_t)limit);
        note_warning(&n, "results truncated due to limit");
    }
    if (val->type == PROMQL_TYPE_MATRIX && matrix_points(&val->matrix) > APIV1_STREAM_MIN_POINTS) {
        apiv1_stream *s = mem_calloc(1, sizeof *s);
        s->val = *val;
        s->ann = *ann;
        s->notes = n;
        memset(val, 0, sizeof *val);
        memset(ann, 0, sizeof *ann);
        r->out->stream = s;
        r->out->status = 200;
        r->out->content_type = CT_JSON;
        return;
    }
    json_writer w;
    ok_begin(r, &w);
    json_write_object_begin(&w);
    json_write_key(&w, "resultType");
    json_write_string(&w, promql_type_name(val->type));
    json_write_key(&w, "result");
    switch (val->type) {
    case PROMQL_TYPE_SCALAR:
    case PROMQL_TYPE_STRING:
        write_scalar_or_string(&w, val);
        break;
    case PROMQL_TYPE_VECTOR:
        json_write_array_begin(&w);
        for (size_t i = 0; i < val->vector.n; i++)
            write_sample(&w, &val->vector.v[i]);
        json_write_array_end(&w);
        break;
    case PROMQL_TYPE_MATRIX:
        json_write_array_begin(&w);
        for (size_t i = 0; i < val->matrix.n; i++)
            write_series(&w, &val->matrix.v[i]);
        json_write_array_end(&w);
        break;
    default:
        json_write_null(&w);
        break;
    }
    json_write_object_end(&w);
    ok_end(r, &w, &n);
    notes_cleanup(&n);
    promql_value_cleanup(val);
    promql_annotations_cleanup(ann);
}

/* Parses, evaluates and answers a query (NewInstantQuery/NewRangeQuery and
 * Exec). */
static void run_query(req *r, const query_args *qa)
{
    apiv1 *a = r->a;
    const apiv1_param *qp = form_value(r, "query");
    const char *text = qp ? qp->value : "";
    size_t text_len = qp ? qp->value_len : 0;
    promql_ast *ast = NULL;
    buf err;
    buf_init(&err, 64 * 1024);
    int prc = promql_parse(text, text_len, &a->o.parse, &ast, &err);
    if (prc < 0) {
        if (prc == -E2BIG) count_refused(a, APIV1_REFUSED_REGEX_TOO_LARGE);
        respond_param_error(r, "query", buf_cstr(&err));
        buf_cleanup(&err);
        return;
    }
    buf_cleanup(&err);
    enum promql_type type = promql_node_type(ast->root);
    if (qa->range && type != PROMQL_TYPE_VECTOR && type != PROMQL_TYPE_SCALAR) {
        buf m;
        buf_init(&m, BUF_UNLIMITED);
        buf_printf(&m,
                   "invalid expression type \"%s\" for range query, must be Scalar or instant "
                   "Vector",
                   promql_type_doc_name(type));
        respond_param_error(r, "query", buf_cstr(&m));
        buf_cleanup(&m);
        promql_ast_free(ast);
        return;
    }

    /* One deadline for the queue, the loading and the evaluation. */
    int64_t timeout = a->o.engine.timeout_ms > 0 ? a->o.engine.timeout_ms : 2 * 60 * 1000;
    if (qa->timeout_ms >= 0 && qa->timeout_ms < timeout) timeout = qa->timeout_ms;
    int64_t deadline = querier_now_ms() + timeout;
    if (timeout <= 0 || slot_acquire(a, deadline) < 0) {
        count_refused(a, APIV1_REFUSED_TIMEOUT);
        respond_error(r, ERR_TIMEOUT, "query timed out in query queue");
        promql_ast_free(ast);
        return;
    }
    int64_t remaining = deadline - querier_now_ms();
    store_reader *sr = remaining > 0 ? reader_get(r) : NULL;
    if (remaining <= 0 || !sr) {
        slot_release(a);
        promql_ast_free(ast);
        if (remaining <= 0) {
            count_refused(a, APIV1_REFUSED_TIMEOUT);
            respond_error(r, ERR_TIMEOUT, "query timed out in expression evaluation");
        } else {
            respond_error(r, ERR_UNAVAILABLE, "storage is not available");
        }
        return;
    }
    promql_engine_options eo = a->o.engine;
    eo.timeout_ms = remaining;
    if (qa->lookback_ms > 0) eo.lookback_delta_ms = qa->lookback_ms;
    querier_options qo = {
        .max_samples = eo.max_samples > 0 ? eo.max_samples : 50000000,
        .deadline_ms = deadline,
    };
    querier q;
    promql_value val;
    memset(&val, 0, sizeof val);
    promql_annotations ann;
    memset(&ann, 0, sizeof ann);
    promql_error perr;
    promql_error_init(&perr);
    int rc = querier_begin(&q, sr, &qo);
    if (rc < 0) {
        reader_put(r, sr);
        slot_release(a);
        promql_ast_free(ast);
        promql_error_cleanup(&perr);
        respond_error(r, ERR_INTERNAL, strerror(-rc));
        return;
    }
    promql_queryable src;
    querier_queryable(&q, &src);
    promql_query pq = {
        .ast = ast,
        .expr = ast->root,
        .start_ms = qa->start,
        .end_ms = qa->end,
        .step_ms = qa->step_ms,
    };
    rc = promql_eval(&eo, &src, &pq, &val, &ann, &perr);
    querier_end(&q);
    reader_put(r, sr);
    slot_release(a);
    if (rc < 0) {
        respond_eval_error(r, rc, &perr, &q);
        promql_value_cleanup(&val);
    } else {
        respond_value(r, &val, &ann, qa->limit);
    }
    promql_annotations_cleanup(&ann);
    promql_error_cleanup(&perr);
    promql_ast_free(ast);
}

static void h_query(req *r)
{
    query_args qa = {0};
    if (limit_param(r, &qa.limit) < 0) return;
    if (time_param(r, "time", now_ms(r->a), &qa.start) < 0) return;
    qa.end = qa.start;
    if (timeout_param(r, &qa.timeout_ms) < 0) return;
    if (query_opts(r, &qa.lookback_ms) < 0) return;
    run_query(r, &qa);
}

/* A required time (parseTime, no default). Returns 0 or -1 after responding. */
static int required_time(req *r, const char *name, int64_t *out)
{
    const apiv1_param *p = form_value(r, name);
    buf err;
    buf_init(&err, 1024);
    int rc = apiv1_parse_time(p ? p->value : "", p ? p->value_len : 0, out, &err);
    if (rc < 0) respond_param_error(r, name, buf_cstr(&err));
    buf_cleanup(&err);
    return rc < 0 ? -1 : 0;
}

static void h_query_range(req *r)
{
    query_args qa = {.range = true};
    if (limit_param(r, &qa.limit) < 0) return;
    if (required_time(r, "start", &qa.start) < 0) return;
    if (required_time(r, "end", &qa.end) < 0) return;
    if (qa.end < qa.start) {
        respond_param_error(r, "end", "end timestamp must not be before start time");
        return;
    }
    const apiv1_param *sp = form_value(r, "step");
    int64_t step_ns;
    buf err;
    buf_init(&err, 1024);
    if (apiv1_parse_duration(sp ? sp->value : "", sp ? sp->value_len : 0, &step_ns, &err) < 0) {
        respond_param_error(r, "step", buf_cstr(&err));
        buf_cleanup(&err);
        return;
    }
    buf_cleanup(&err);
    /* Steps under a millisecond cannot be evaluated (Prometheus's engine
     * divides by the step in milliseconds): refused like zero steps. */
    if (step_ns < 1000000) {
        respond_param_error(r, "step",
                            "zero or negative query resolution step widths are not accepted. Try "
                            "a positive integer");
        return;
    }
    /* end.Sub(start) saturates at the largest time.Duration. */
    int64_t range_ms, range_ns;
    if (__builtin_sub_overflow(qa.end, qa.start, &range_ms) || range_ms > INT64_MAX / 1000000)
        range_ns = INT64_MAX;
    else
        range_ns = range_ms * 1000000;
    if (range_ns / step_ns > APIV1_MAX_POINTS_PER_SERIES) {
        count_refused(r->a, APIV1_REFUSED_TOO_MANY_POINTS);
        respond_error(r, ERR_BAD_DATA,
                      "exceeded maximum resolution of 11,000 points per timeseries. Try "
                      "decreasing the query resolution (?step=XX)");
        return;
    }
    qa.step_ms = step_ns / 1000000;
    if (timeout_param(r, &qa.timeout_ms) < 0) return;
    if (query_opts(r, &qa.lookback_ms) < 0) return;
    run_query(r, &qa);
}

/* ---- /format_query, /parse_query, /query_exemplars ------------------------------------------ */

/* Parses the query parameter; NULL after responding with the error. */
static promql_ast *parse_query_param(req *r, bool param_error)
{
    const apiv1_param *qp = form_value(r, "query");
    promql_ast *ast = NULL;
    buf err;
    buf_init(&err, 64 * 1024);
    int rc = promql_parse(qp ? qp->value : "", qp ? qp->value_len : 0, &r->a->o.parse, &ast, &err);
    if (rc < 0) {
        if (rc == -E2BIG) count_refused(r->a, APIV1_REFUSED_REGEX_TOO_LARGE);
        if (param_error)
            respond_param_error(r, "query", buf_cstr(&err));
        else
            respond_error(r, ERR_BAD_DATA, buf_cstr(&err));
        ast = NULL;
    }
    buf_cleanup(&err);
    return ast;
}

static void h_format_query(req *r)
{
    promql_ast *ast = parse_query_param(r, true);
    if (!ast) return;
    buf pretty;
    buf_init(&pretty, BUF_UNLIMITED);
    promql_pretty(ast->root, &pretty);
    json_writer w;
    ok_begin(r, &w);
    json_write_string_n(&w, pretty.data ? pretty.data : "", pretty.len);
    ok_end(r, &w, NULL);
    buf_cleanup(&pretty);
    promql_ast_free(ast);
}

static void write_ast(json_writer *w, const promql_node *n);

static void write_ms_or_null(json_writer *w, bool set, int64_t v)
{
    if (set)
        json_write_int(w, v);
    else
        json_write_null(w);
}

static void write_start_or_end(json_writer *w, const promql_at *at)
{
    if (at->set && at->start_or_end == PROMQL_OP_START)
        json_write_string(w, "start");
    else if (at->set && at->start_or_end == PROMQL_OP_END)
        json_write_string(w, "end");
    else
        json_write_null(w);
}

static void write_number_val(json_writer *w, double v)
{
    char f[JSON_FLOAT_MAX];
    json_write_string_n(w, f, json_format_float(v, JSON_FLOAT_FIXED, f));
}

/* translateDurationExpr */
static void write_duration_ast(json_writer *w, const promql_node *n)
{
    if (!n) {
        json_write_null(w);
        return;
    }
    if (n->kind == PROMQL_NODE_NUMBER) {
        json_write_object_begin(w);
        json_write_key(w, "duration");
        json_write_bool(w, n->number.duration);
        json_write_key(w, "type");
        json_write_string(w, "numberLiteral");
        json_write_key(w, "val");
        write_number_val(w, n->number.val);
        json_write_object_end(w);
        return;
    }
    if (n->kind != PROMQL_NODE_DURATION) {
        write_ast(w, n);
        return;
    }
    if (n->duration.op == PROMQL_OP_NONE && n->duration.lhs && !n->duration.rhs) {
        write_duration_ast(w, n->duration.lhs);
        return;
    }
    /* Unary minus/plus keep their operand on the right, as Prometheus. */
    bool unary = (n->duration.op == PROMQL_OP_SUB || n->duration.op == PROMQL_OP_ADD) &&
                 !n->duration.rhs;
    json_write_object_begin(w);
    json_write_key(w, "lhs");
    write_duration_ast(w, unary ? NULL : n->duration.lhs);
    json_write_key(w, "op");
    json_write_string(w, promql_op_name(n->duration.op));
    json_write_key(w, "rhs");
    write_duration_ast(w, unary ? n->duration.lhs : n->duration.rhs);
    json_write_key(w, "type");
    json_write_string(w, "durationExpr");
    json_write_key(w, "wrapped");
    json_write_bool(w, n->duration.wrapped);
    json_write_object_end(w);
}

static void write_str_list(json_writer *w, const promql_str *v, size_t n)
{
    json_write_array_begin(w);
    for (size_t i = 0; i < n; i++)
        json_write_string_n(w, v[i].p, v[i].len);
    json_write_array_end(w);
}

static void write_matchers(json_writer *w, const label_matcher *ms, size_t n)
{
    static const char *const types[] = {"=", "!=", "=~", "!~"};
    json_write_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        json_write_object_begin(w);
        json_write_key(w, "name");
        json_write_string_n(w, ms[i].name, ms[i].name_len);
        json_write_key(w, "type");
        json_write_string(w, types[ms[i].type]);
        json_write_key(w, "value");
        json_write_string_n(w, ms[i].value, ms[i].value_len);
        json_write_object_end(w);
    }
    json_write_array_end(w);
}

/* The selector fields shared by vectorSelector and matrixSelector, in
 * sorted key order around "range"/"rangeExpr" (written by the caller). */
static void write_fill(json_writer *w, bool has, double v)
{
    if (has)
        json_write_double(w, v);
    else
        json_write_null(w);
}

/* translateAST: a Go map, so keys are written sorted. */
static void write_ast(json_writer *w, const promql_node *n)
{
    static const char *const cards[] = {"one-to-one", "many-to-one", "one-to-many",
                                        "many-to-many"};
    if (!n) {
        json_write_null(w);
        return;
    }
    if (n->kind == PROMQL_NODE_DURATION) { /* the top of a duration expression */
        write_duration_ast(w, n);
        return;
    }
    json_write_object_begin(w);
    switch (n->kind) {
    case PROMQL_NODE_AGGREGATE:
        json_write_key(w, "expr");
        write_ast(w, n->aggregate.expr);
        json_write_key(w, "grouping");
        write_str_list(w, n->aggregate.grouping, n->aggregate.n_grouping);
        json_write_key(w, "op");
        json_write_string(w, promql_op_name(n->aggregate.op));
        json_write_key(w, "param");
        write_ast(w, n->aggregate.param);
        json_write_key(w, "type");
        json_write_string(w, "aggregation");
        json_write_key(w, "without");
        json_write_bool(w, n->aggregate.without);
        break;
    case PROMQL_NODE_BINARY: {
        const promql_vector_matching *m = n->binary.matching;
        json_write_key(w, "bool");
        json_write_bool(w, n->binary.return_bool);
        json_write_key(w, "lhs");
        write_ast(w, n->binary.lhs);
        json_write_key(w, "matching");
        if (m) {
            json_write_object_begin(w);
            json_write_key(w, "card");
            json_write_string(w, cards[m->card]);
            json_write_key(w, "fillValues");
            json_write_object_begin(w);
            json_write_key(w, "lhs");
            write_fill(w, m->has_fill_lhs, m->fill_lhs);
            json_write_key(w, "rhs");
            write_fill(w, m->has_fill_rhs, m->fill_rhs);
            json_write_object_end(w);
            json_write_key(w, "include");
            write_str_list(w, m->include, m->n_include);
            json_write_key(w, "labels");
            write_str_list(w, m->matching_labels, m->n_matching);
            json_write_key(w, "on");
            json_write_bool(w, m->on);
            json_write_object_end(w);
        } else {
            json_write_null(w);
        }
        json_write_key(w, "op");
        json_write_string(w, promql_op_name(n->binary.op));
        json_write_key(w, "rhs");
        write_ast(w, n->binary.rhs);
        json_write_key(w, "type");
        json_write_string(w, "binaryExpr");
        break;
    }
    case PROMQL_NODE_CALL: {
        const promql_function *f = n->call.func;
        json_write_key(w, "args");
        json_write_array_begin(w);
        for (size_t i = 0; i < n->call.nargs; i++)
            write_ast(w, n->call.args[i]);
        json_write_array_end(w);
        json_write_key(w, "func");
        json_write_object_begin(w);
        json_write_key(w, "argTypes");
        json_write_array_begin(w);
        for (size_t i = 0; f && i < f->n_args; i++)
            json_write_string(w, promql_type_name(f->arg_types[i]));
        json_write_array_end(w);
        json_write_key(w, "name");
        json_write_string(w, f ? f->name : "");
        json_write_key(w, "returnType");
        json_write_string(w, promql_type_name(f ? f->return_type : PROMQL_TYPE_NONE));
        json_write_key(w, "variadic");
        json_write_int(w, f ? f->variadic : 0);
        json_write_object_end(w);
        json_write_key(w, "type");
        json_write_string(w, "call");
        break;
    }
    case PROMQL_NODE_MATRIX_SELECTOR:
    case PROMQL_NODE_VECTOR_SELECTOR: {
        bool matrix = n->kind == PROMQL_NODE_MATRIX_SELECTOR;
        const promql_node *vs = matrix ? n->matrix.vs : n;
        json_write_key(w, "anchored");
        json_write_bool(w, vs->vector.anchored);
        json_write_key(w, "matchers");
        write_matchers(w, vs->vector.matchers, vs->vector.n_matchers);
        json_write_key(w, "name");
        json_write_string_n(w, vs->vector.name.p ? vs->vector.name.p : "", vs->vector.name.len);
        json_write_key(w, "offset");
        json_write_int(w, vs->vector.offset.original_ms);
        json_write_key(w, "offsetExpr");
        write_duration_ast(w, vs->vector.offset.expr);
        if (matrix) {
            json_write_key(w, "range");
            json_write_int(w, n->matrix.range_ms);
            json_write_key(w, "rangeExpr");
            write_duration_ast(w, n->matrix.range_expr);
        }
        json_write_key(w, "smoothed");
        json_write_bool(w, vs->vector.smoothed);
        json_write_key(w, "startOrEnd");
        write_start_or_end(w, &vs->vector.at);
        json_write_key(w, "timestamp");
        write_ms_or_null(w, vs->vector.at.set && vs->vector.at.start_or_end == PROMQL_OP_NONE,
                         vs->vector.at.ts_ms);
        json_write_key(w, "type");
        json_write_string(w, matrix ? "matrixSelector" : "vectorSelector");
        break;
    }
    case PROMQL_NODE_SUBQUERY:
        json_write_key(w, "expr");
        write_ast(w, n->subquery.expr);
        json_write_key(w, "offset");
        json_write_int(w, n->subquery.offset.original_ms);
        json_write_key(w, "offsetExpr");
        write_duration_ast(w, n->subquery.offset.expr);
        json_write_key(w, "range");
        json_write_int(w, n->subquery.range_ms);
        json_write_key(w, "rangeExpr");
        write_duration_ast(w, n->subquery.range_expr);
        json_write_key(w, "startOrEnd");
        write_start_or_end(w, &n->subquery.at);
        json_write_key(w, "step");
        json_write_int(w, n->subquery.step_ms);
        json_write_key(w, "stepExpr");
        write_duration_ast(w, n->subquery.step_expr);
        json_write_key(w, "timestamp");
        write_ms_or_null(w, n->subquery.at.set && n->subquery.at.start_or_end == PROMQL_OP_NONE,
                         n->subquery.at.ts_ms);
        json_write_key(w, "type");
        json_write_string(w, "subquery");
        break;
    case PROMQL_NODE_NUMBER:
        json_write_key(w, "type");
        json_write_string(w, "numberLiteral");
        json_write_key(w, "val");
        write_number_val(w, n->number.val);
        break;
    case PROMQL_NODE_PAREN:
        json_write_key(w, "expr");
        write_ast(w, n->paren.expr);
        json_write_key(w, "type");
        json_write_string(w, "parenExpr");
        break;
    case PROMQL_NODE_STRING:
        json_write_key(w, "type");
        json_write_string(w, "stringLiteral");
        json_write_key(w, "val");
        json_write_string_n(w, n->string.val.p ? n->string.val.p : "", n->string.val.len);
        break;
    case PROMQL_NODE_UNARY:
        json_write_key(w, "expr");
        write_ast(w, n->unary.expr);
        json_write_key(w, "op");
        json_write_string(w, promql_op_name(n->unary.op));
        json_write_key(w, "type");
        json_write_string(w, "unaryExpr");
        break;
    case PROMQL_NODE_DURATION:
        break;
    }
    json_write_object_end(w);
}

static void h_parse_query(req *r)
{
    promql_ast *ast = parse_query_param(r, true);
    if (!ast) return;
    json_writer w;
    ok_begin(r, &w);
    write_ast(&w, ast->root);
    ok_end(r, &w, NULL);
    promql_ast_free(ast);
}

/* The vector selectors of an expression, as Prometheus's
 * parser.ExtractSelectors: every vector selector's matchers (borrowed from
 * the AST), in the order of a depth-first walk. */
typedef struct selector_list {
    const label_matcher **sets;
    size_t *lens;
    size_t n, cap, lcap;
} selector_list;

static void collect_selectors(const promql_node *n, selector_list *out)
{
    if (!n) return;
    switch (n->kind) {
    case PROMQL_NODE_VECTOR_SELECTOR:
        out->sets = mem_grow(out->sets, sizeof *out->sets, out->n + 1, &out->cap);
        out->lens = mem_grow(out->lens, sizeof *out->lens, out->n + 1, &out->lcap);
        out->sets[out->n] = n->vector.matchers;
        out->lens[out->n++] = n->vector.n_matchers;
        break;
    case PROMQL_NODE_MATRIX_SELECTOR:
        collect_selectors(n->matrix.vs, out);
        break;
    case PROMQL_NODE_AGGREGATE:
        collect_selectors(n->aggregate.expr, out);
        collect_selectors(n->aggregate.param, out);
        break;
    case PROMQL_NODE_BINARY:
        collect_selectors(n->binary.lhs, out);
        collect_selectors(n->binary.rhs, out);
        break;
    case PROMQL_NODE_CALL:
        for (size_t i = 0; i < n->call.nargs; i++)
            collect_selectors(n->call.args[i], out);
        break;
    case PROMQL_NODE_SUBQUERY:
        collect_selectors(n->subquery.expr, out);
        break;
    case PROMQL_NODE_PAREN:
        collect_selectors(n->paren.expr, out);
        break;
    case PROMQL_NODE_UNARY:
        collect_selectors(n->unary.expr, out);
        break;
    default:
        break;
    }
}

/* Prometheus's queryExemplars: the exemplars of the series any vector
 * selector of the query matches, between start and end. */
static void h_query_exemplars(req *r)
{
    int64_t start, end;
    if (time_param(r, "start", APIV1_MIN_TIME_MS, &start) < 0) return;
    if (time_param(r, "end", APIV1_MAX_TIME_MS, &end) < 0) return;
    if (end < start) {
        respond_error(r, ERR_BAD_DATA, "end timestamp must not be before start timestamp");
        return;
    }
    promql_ast *ast = parse_query_param(r, false);
    if (!ast) return;
    selector_list sel = {0};
    collect_selectors(ast->root, &sel);
    if (sel.n == 0) { /* no data: 204, as Prometheus */
        promql_ast_free(ast);
        r->out->status = 204;
        r->out->content_type = NULL;
        return;
    }
    store_reader *sr = reader_get(r);
    if (!sr) {
        promql_ast_free(ast);
        mem_free(sel.sets);
        mem_free(sel.lens);
        respond_error(r, ERR_UNAVAILABLE, "storage is not available");
        return;
    }
    store_exemplar_series *res = NULL;
    size_t n = 0;
    int rc = store_exemplars_select(sr, sel.sets, sel.lens, sel.n, start, end, &res, &n);
    reader_put(r, sr);
    promql_ast_free(ast);
    mem_free(sel.sets);
    mem_free(sel.lens);
    if (rc < 0) {
        respond_error(r, ERR_INTERNAL, strerror(-rc));
        return;
    }
    json_writer w;
    ok_begin(r, &w);
    json_write_array_begin(&w);
    for (size_t i = 0; i < n; i++) {
        json_write_object_begin(&w);
        json_write_key(&w, "seriesLabels");
        write_labels(&w, res[i].labels, false);
        json_write_key(&w, "exemplars");
        json_write_array_begin(&w);
        for (size_t k = 0; k < res[i].n; k++) {
            json_write_object_begin(&w);
            json_write_key(&w, "labels");
            write_labels(&w, res[i].ex[k].labels, false);
            json_write_key(&w, "value");
            json_write_float_string(&w, res[i].ex[k].v);
            json_write_key(&w, "timestamp");
            json_write_timestamp(&w, res[i].ex[k].t);
            json_write_object_end(&w);
        }
        json_write_array_end(&w);
        json_write_object_end(&w);
    }
    json_write_array_end(&w);
    store_exemplar_series_free(res, n);
    ok_end(r, &w, NULL);
}

/* ---- routing --------------------------------------------------------------------------- */

enum { M_GET = 1, M_POST = 2 };

static const struct route {
    const char *path;
    unsigned methods;
    void (*fn)(req *r);
} routes[] = {
    {"/query", M_GET | M_POST, h_query},
    {"/query_range", M_GET | M_POST, h_query_range},
    {"/query_exemplars", M_GET | M_POST, h_query_exemplars},
    {"/format_query", M_GET | M_POST, h_format_query},
    {"/parse_query", M_GET | M_POST, h_parse_query},
    {"/labels", M_GET | M_POST, h_labels},
    {"/label/:name/values", M_GET, h_label_values},
    {"/series", M_GET | M_POST, h_series},
    {"/targets", M_GET, h_targets},
    {"/rules", M_GET, h_rules},
    {"/alerts", M_GET, h_alerts},
    {"/alertmanagers", M_GET, h_alertmanagers},
    {"/metadata", M_GET, h_metadata},
    {"/status/config", M_GET, h_config},
    {"/status/runtimeinfo", M_GET, h_runtimeinfo},
    {"/status/buildinfo", M_GET, h_buildinfo},
    {"/status/flags", M_GET, h_flags},
    {"/status/tsdb", M_GET, h_tsdb},
};

/* Matches path[0..len) against a route; the :name segment goes to *param. */
static bool route_match(const struct route *rt, const char *path, size_t len, const char **param,
                        size_t *param_len)
{
    const char *colon = strchr(rt->path, ':');
    if (!colon) return strlen(rt->path) == len && memcmp(rt->path, path, len) == 0;
    size_t pre = (size_t)(colon - rt->path);
    const char *suffix = strchr(colon, '/');
    size_t suf = strlen(suffix);
    if (len < pre + suf || memcmp(path, rt->path, pre) != 0 ||
        memcmp(path + len - suf, suffix, suf) != 0)
        return false;
    const char *p = path + pre;
    size_t pl = len - pre - suf;
    if (memchr(p, '/', pl)) return false;
    *param = p;
    *param_len = pl;
    return true;
}

static const struct route *find_route(const char *path, size_t len, const char **param,
                                      size_t *param_len)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (route_match(&routes[i], path, len, param, param_len)) return &routes[i];
    }
    return NULL;
}

/* Whether the media type of a Content-Type header is t (case-insensitive,
 * parameters ignored). */
static bool media_type_is(const char *ct, const char *t)
{
    if (!ct) return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return n == strlen(t) && strncasecmp(ct, t, n) == 0;
}

void apiv1_response_cleanup(apiv1_response *r)
{
    buf_cleanup(&r->body);
    mem_free(r->location);
    r->location = NULL;
    apiv1_stream_free(r->stream);
    r->stream = NULL;
}

void apiv1_handle(apiv1 *a, const apiv1_request *rq, apiv1_response *out)
{
    memset(out, 0, sizeof *out);
    buf_init(&out->body, APIV1_MAX_RESPONSE);
    out->cors = rq->has_origin;
    req r = {.a = a, .rq = rq, .out = out};
    apiv1_params_init(&r.body);
    apiv1_params_init(&r.query);
    const char *path = rq->path ? rq->path : "";
    size_t len = strlen(path);
    const char *method = rq->method ? rq->method : "GET";

    if (strcmp(method, "OPTIONS") == 0) { /* CORS preflight for any path */
        out->status = 204;
        return;
    }
    const struct route *rt = find_route(path, len, &r.route_param, &r.route_param_len);
    if (!rt && len > 1 && path[len - 1] == '/' &&
        find_route(path, len - 1, &r.route_param, &r.route_param_len)) {
        /* httprouter's RedirectTrailingSlash. */
        buf loc;
        buf_init(&loc, BUF_UNLIMITED);
        buf_printf(&loc, "/api/v1%.*s", (int)(len - 1), path);
        if (rq->query && rq->query_len) {
            buf_putc(&loc, '?');
            buf_append(&loc, rq->query, rq->query_len);
        }
        out->location = buf_detach(&loc, NULL);
        bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
        out->status = get ? 301 : 308;
        return;
    }
    if (!rt) {
        respond_text(&r, 404, "404 page not found\n");
        return;
    }
    unsigned m = strcmp(method, "GET") == 0 ? M_GET : strcmp(method, "POST") == 0 ? M_POST : 0;
    if (!(rt->methods & m)) {
        out->allow = rt->methods & M_POST ? "GET, OPTIONS, POST" : "GET, OPTIONS";
        respond_text(&r, 405, "Method Not Allowed\n");
        return;
    }
    /* r.ParseForm: the body (POST forms) first, then the query string. */
    if (rq->query && rq->query_len) apiv1_params_parse(&r.query, rq->query, rq->query_len);
    bool form_method = m == M_POST;
    if (form_method && media_type_is(rq->content_type, "application/x-www-form-urlencoded")) {
        if (rq->body_too_large)
            r.form_error = "http: POST too large";
        else if (rq->body_len)
            apiv1_params_parse(&r.body, rq->body, rq->body_len);
    }
    if (!r.form_error) r.form_error = r.body.error ? r.body.error : r.query.error;
    rt->fn(&r);
    apiv1_params_cleanup(&r.body);
    apiv1_params_cleanup(&r.query);
}

/* ---- lifetime ------------------------------------------------------------------------------ */

static int cmp_flag(const void *x, const void *y)
{
    return strcmp(((const apiv1_flag *)x)->name, ((const apiv1_flag *)y)->name);
}

apiv1 *apiv1_new(const apiv1_options *o)
{
    apiv1 *a = mem_calloc(1, sizeof *a);
    a->o = *o;
    a->flags = mem_calloc(o->n_flags + 1, sizeof *a->flags);
    for (size_t i = 0; i < o->n_flags; i++) {
        a->flags[i].name = mem_strdup(o->flags[i].name);
        a->flags[i].value = mem_strdup(o->flags[i].value ? o->flags[i].value : "");
    }
    if (o->n_flags > 1) qsort(a->flags, o->n_flags, sizeof *a->flags, cmp_flag);
    a->o.flags = a->flags;
    a->listen_address = o->listen_address ? mem_strdup(o->listen_address) : NULL;
    a->o.listen_address = a->listen_address;
    a->slots_free = o->max_concurrency > 0 ? o->max_concurrency : APIV1_DEFAULT_MAX_CONCURRENCY;
    pthread_mutex_init(&a->slots_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->slots_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (o->reg) {
        static const char *const reason[] = {"reason", NULL};
        registry_family *f = registry_counter(
            o->reg, "sidewatch_queries_refused_total",
            "API queries refused by a limit, by reason (max_samples: --query.max-samples, timeout: "
            "--query.timeout, too_many_points: 11,000 points per series, regex_too_large: "
            "--query.max-regex-bytes).",
            reason);
        for (int i = 0; f && i < APIV1_REFUSED_COUNT; i++) {
            const char *lv[] = {refused_reasons[i], NULL};
            a->refused[i] = registry_child(f, lv);
        }
    }
    return a;
}

void apiv1_free(apiv1 *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->o.n_flags; i++) {
        mem_free((char *)a->flags[i].name);
        mem_free((char *)a->flags[i].value);
    }
    mem_free(a->flags);
    mem_free(a->listen_address);
    pthread_mutex_destroy(&a->slots_mu);
    pthread_cond_destroy(&a->slots_cv);
    mem_free(a);
}
