/* TEMP: the proposed protoparse interface until the real module lands. */
#ifndef SIDEWATCH_PROTOPARSE_H
#define SIDEWATCH_PROTOPARSE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "expfmt.h"
#include "nhist.h"

typedef struct protoparse_options {
    bool ignore_native_histograms;
    bool keep_classic_histograms;
    size_t max_message_bytes;
} protoparse_options;
enum protoparse_entry {
    PROTOPARSE_ERROR = -1,
    PROTOPARSE_END = 0,
    PROTOPARSE_FAMILY,
    PROTOPARSE_SERIES,
    PROTOPARSE_HISTOGRAM
};
typedef struct protoparse protoparse;
int protoparse_new(protoparse **out, const uint8_t *data, size_t len, const protoparse_options *o);
void protoparse_free(protoparse *p);
enum protoparse_entry protoparse_next(protoparse *p);
void protoparse_family(const protoparse *p, const char **name, size_t *name_len, const char **help,
                       size_t *help_len, const char **unit, size_t *unit_len,
                       enum expfmt_type *type);
const char *protoparse_series_key(const protoparse *p, size_t *len);
const char *protoparse_metric_name(const protoparse *p, size_t *len);
size_t protoparse_label_count(const protoparse *p);
void protoparse_label(const protoparse *p, size_t i, const char **name, size_t *nl,
                      const char **value, size_t *vl);
double protoparse_value(const protoparse *p);
const nhist *protoparse_histogram(const protoparse *p);
bool protoparse_timestamp(const protoparse *p, int64_t *ms);
const char *protoparse_error(const protoparse *p);
bool protoparse_is_content_type(const char *ct);
#endif
