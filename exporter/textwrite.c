#include "textwrite.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void textwrite_init(textwrite *w, enum textparse_format format, expfmt_sink sink, void *ctx)
{
    w->format = format;
    w->sink = sink;
    w->ctx = ctx;
    w->err = 0;
}

int textwrite_error(const textwrite *w)
{
    return w->err;
}

static void put(textwrite *w, const char *p, size_t n)
{
    if (w->err || n == 0) return;
    int rc = w->sink(w->ctx, p, n);
    if (rc) w->err = rc;
}

static void puts_(textwrite *w, const char *s)
{
    put(w, s, strlen(s));
}

/* Escapes \ and newline, plus " when `quote` (label values, OM HELP). */
static void put_escaped(textwrite *w, const char *s, size_t len, bool quote)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *esc = NULL;
        if (s[i] == '\\')
            esc = "\\\\";
        else if (s[i] == '\n')
            esc = "\\n";
        else if (quote && s[i] == '"')
            esc = "\\\"";
        if (!esc) {
            run++;
            continue;
        }
        put(w, s + i - run, run);
        run = 0;
        put(w, esc, 2);
    }
    put(w, s + len - run, run);
}

static void put_name(textwrite *w, const char *name, size_t len, bool metric)
{
    bool ok = metric ? expfmt_legacy_metric_name(name, len) : expfmt_legacy_label_name(name, len);
    if (ok) {
        put(w, name, len);
    } else {
        put(w, "\"", 1);
        put_escaped(w, name, len, true);
        put(w, "\"", 1);
    }
}

void textwrite_help(textwrite *w, const char *name, size_t name_len, const char *help,
                    size_t help_len)
{
    puts_(w, "# HELP ");
    put_name(w, name, name_len, true);
    put(w, " ", 1);
    put_escaped(w, help, help_len, w->format == TEXTPARSE_OPENMETRICS);
    put(w, "\n", 1);
}

static size_t family_name_len(const textwrite *w, const char *name, size_t len,
                              enum expfmt_type type)
{
    if (w->format == TEXTPARSE_OPENMETRICS && type == EXPFMT_COUNTER && len > 6 &&
        memcmp(name + len - 6, "_total", 6) == 0)
        return len - 6;
    return len;
}

void textwrite_type(textwrite *w, const char *name, size_t name_len, enum expfmt_type type)
{
    const char *t;
    if (w->format == TEXTPARSE_OPENMETRICS) {
        t = expfmt_type_name(type);
    } else {
        switch (type) {
        case EXPFMT_COUNTER:
            t = "counter";
            break;
        case EXPFMT_GAUGE:
            t = "gauge";
            break;
        case EXPFMT_HISTOGRAM:
            t = "histogram";
            break;
        case EXPFMT_SUMMARY:
            t = "summary";
            break;
        default:
            t = "untyped";
            break;
        }
    }
    puts_(w, "# TYPE ");
    put_name(w, name, family_name_len(w, name, name_len, type), true);
    put(w, " ", 1);
    puts_(w, t);
    put(w, "\n", 1);
}

void textwrite_unit(textwrite *w, const char *name, size_t name_len, const char *unit,
                    size_t unit_len)
{
    if (w->format != TEXTPARSE_OPENMETRICS) return;
    puts_(w, "# UNIT ");
    put_name(w, name, name_len, true);
    put(w, " ", 1);
    put(w, unit, unit_len);
    put(w, "\n", 1);
}

void textwrite_sample(textwrite *w, const char *name, size_t name_len,
                      const textwrite_label *labels, size_t n_labels, double value,
                      const int64_t *ts_ms)
{
    bool quoted = !expfmt_legacy_metric_name(name, name_len);
    if (!quoted) put(w, name, name_len);
    if (n_labels > 0 || quoted) {
        put(w, "{", 1);
        if (quoted) {
            put_name(w, name, name_len, true);
            if (n_labels) put(w, ",", 1);
        }
        for (size_t i = 0; i < n_labels; i++) {
            if (i) put(w, ",", 1);
            put_name(w, labels[i].name, labels[i].name_len, false);
            put(w, "=\"", 2);
            put_escaped(w, labels[i].value, labels[i].value_len, true);
            put(w, "\"", 1);
        }
        put(w, "}", 1);
    }
    char num[EXPFMT_FLOAT_MAX + 32];
    size_t n;
    num[0] = ' ';
    if (w->format == TEXTPARSE_OPENMETRICS)
        n = expfmt_format_om_float(value, num + 1) + 1;
    else
        n = expfmt_format_float(value, num + 1) + 1;
    put(w, num, n);
    if (ts_ms) {
        int64_t t = *ts_ms;
        if (w->format == TEXTPARSE_OPENMETRICS) {
            /* Seconds with millisecond precision, exactly. */
            int64_t sec = t / 1000, ms = t % 1000;
            if (ms < 0) {
                ms += 1000;
                sec -= 1;
            }
            if (sec < 0 && ms != 0) {
                /* negative times: write as a float to keep the sign right */
                n = (size_t)snprintf(num, sizeof num, " %.3f", (double)t / 1000.0);
            } else {
                n = (size_t)snprintf(num, sizeof num, " %" PRId64 ".%03" PRId64, sec, ms);
            }
        } else {
            n = (size_t)snprintf(num, sizeof num, " %" PRId64, t);
        }
        put(w, num, n);
    }
    put(w, "\n", 1);
}

void textwrite_eof(textwrite *w)
{
    if (w->format == TEXTPARSE_OPENMETRICS) puts_(w, "# EOF\n");
}

/* q value of one media range, 1 when absent. */
static double media_q(const char *params, size_t len)
{
    const char *p = params, *end = params + len;
    while (p < end) {
        while (p < end && (*p == ';' || *p == ' '))
            p++;
        if (end - p > 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') return strtod(p + 2, NULL);
        while (p < end && *p != ';')
            p++;
    }
    return 1;
}

enum textparse_format textwrite_negotiate(const char *accept)
{
    if (!accept) return TEXTPARSE_PROMETHEUS;
    double om = -1, text = -1;
    const char *p = accept;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && *p == ' ') {
            p++;
            len--;
        }
        const char *semi = memchr(p, ';', len);
        size_t mlen = semi ? (size_t)(semi - p) : len;
        while (mlen && p[mlen - 1] == ' ')
            mlen--;
        double q = semi ? media_q(semi, len - (size_t)(semi - p)) : 1;
        if (mlen == 28 && strncasecmp(p, "application/openmetrics-text", 28) == 0) {
            if (q > om) om = q;
        } else if ((mlen == 10 && strncasecmp(p, "text/plain", 10) == 0) ||
                   (mlen == 3 && strncmp(p, "*/*", 3) == 0)) {
            if (q > text) text = q;
        }
        if (!end) break;
        p = end + 1;
    }
    return om > 0 && om >= text ? TEXTPARSE_OPENMETRICS : TEXTPARSE_PROMETHEUS;
}
