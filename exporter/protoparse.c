/* TEMP stub */
#include "protoparse.h"

#include <errno.h>
#include <stdlib.h>

struct protoparse {
    int dummy;
};
int protoparse_new(protoparse **out, const uint8_t *data, size_t len, const protoparse_options *o)
{
    (void)data, (void)len, (void)o;
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}
void protoparse_free(protoparse *p) { free(p); }
enum protoparse_entry protoparse_next(protoparse *p) { (void)p; return PROTOPARSE_ERROR; }
void protoparse_family(const protoparse *p, const char **name, size_t *name_len, const char **help,
                       size_t *help_len, const char **unit, size_t *unit_len,
                       enum expfmt_type *type)
{
    (void)p, *name = *help = *unit = "", *name_len = *help_len = *unit_len = 0, *type = 0;
}
const char *protoparse_series_key(const protoparse *p, size_t *len) { (void)p, *len = 0; return ""; }
const char *protoparse_metric_name(const protoparse *p, size_t *len) { (void)p, *len = 0; return ""; }
size_t protoparse_label_count(const protoparse *p) { (void)p; return 0; }
void protoparse_label(const protoparse *p, size_t i, const char **name, size_t *nl,
                      const char **value, size_t *vl)
{
    (void)p, (void)i, *name = *value = "", *nl = *vl = 0;
}
double protoparse_value(const protoparse *p) { (void)p; return 0; }
const nhist *protoparse_histogram(const protoparse *p) { (void)p; return NULL; }
bool protoparse_timestamp(const protoparse *p, int64_t *ms) { (void)p, (void)ms; return false; }
const char *protoparse_error(const protoparse *p) { (void)p; return "protobuf not supported (TEMP)"; }
bool protoparse_is_content_type(const char *ct) { (void)ct; return false; }
