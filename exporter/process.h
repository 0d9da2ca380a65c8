/* process: the standard process_* metrics of Prometheus client libraries
 * (CPU seconds, resident and virtual memory, open and maximum file
 * descriptors, start time), read from /proc at exposition time. */
#ifndef SIDEWATCH_PROCESS_H
#define SIDEWATCH_PROCESS_H

#include "registry.h"

/* Adds the process collector to r. */
void process_register(registry *r);

typedef struct process_stats {
    double cpu_seconds;
    double resident_bytes;
    double virtual_bytes;
    double start_time_seconds;
    double open_fds;
    double max_fds;
} process_stats;

/* Reads the calling process's stats; returns 0 or -errno (fields that could
 * not be read are 0). */
int process_read(process_stats *out);

#endif
