/* TEMPORARY stub of template.h for the wip-rulefmt branch: the real
 * template.c is written on another branch and replaces this file at merge.
 * template_check() only checks that `{{` and `}}` balance; everything else
 * is a placeholder. */
#include "template.h"

#include <errno.h>

void template_query_result_cleanup(template_query_result *r)
{
    (void)r;
}

int template_expand(const char *name, const char *text, size_t len, const template_data *d,
                    buf *out, buf *err)
{
    (void)d;
    (void)err;
    (void)name;
    buf_append(out, text, len);
    return 0;
}

int template_check(const char *name, const char *text, size_t len, buf *err)
{
    int depth = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] == '{' && text[i + 1] == '{') {
            if (depth) break;
            depth = 1;
            i++;
        } else if (text[i] == '}' && text[i + 1] == '}') {
            if (!depth) {
                buf_printf(err, "template: %s:1: unexpected \"}}\"", name);
                return -EINVAL;
            }
            depth = 0;
            i++;
        }
    }
    if (depth) {
        buf_printf(err, "template: %s:1: unclosed action", name);
        return -EINVAL;
    }
    return 0;
}

void template_humanize(double v, buf *out)
{
    buf_printf(out, "%g", v);
}

void template_humanize1024(double v, buf *out)
{
    buf_printf(out, "%g", v);
}

void template_humanize_duration(double seconds, buf *out)
{
    buf_printf(out, "%gs", seconds);
}

void template_humanize_percentage(double v, buf *out)
{
    buf_printf(out, "%g%%", v * 100);
}

void template_humanize_timestamp(double unix_seconds, buf *out)
{
    buf_printf(out, "%g", unix_seconds);
}
