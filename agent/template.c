/* TEMPORARY stub of template.h (drop at merge of wip-tmpl): expands to the
 * text unchanged. */
#include "template.h"

#include <string.h>

#include "mem.h"

void template_query_result_cleanup(template_query_result *r)
{
    for (size_t i = 0; i < r->n; i++) labels_free(r->v[i].metric);
    mem_free(r->v);
    r->v = NULL;
    r->n = 0;
}

int template_expand(const char *name, const char *text, size_t len, const template_data *d,
                    buf *out, buf *err)
{
    (void)name; (void)d; (void)err;
    return buf_append(out, text, len);
}

int template_check(const char *name, const char *text, size_t len, buf *err)
{
    (void)name; (void)text; (void)len; (void)err;
    return 0;
}

void template_humanize(double v, buf *out) { buf_printf(out, "%g", v); }
void template_humanize1024(double v, buf *out) { buf_printf(out, "%g", v); }
void template_humanize_duration(double s, buf *out) { buf_printf(out, "%gs", s); }
void template_humanize_percentage(double v, buf *out) { buf_printf(out, "%g%%", v * 100); }
void template_humanize_timestamp(double s, buf *out) { buf_printf(out, "%g", s); }
