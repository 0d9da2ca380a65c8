/* promql/gosort: the unstable sort of Go's sort.Sort and slices.SortFunc
 * (pattern-defeating quicksort with Go's pivot choices, insertion sort for
 * 12 elements or fewer, heapsort fallback).
 *
 * PromQL results that Prometheus orders with these sorts (sort(),
 * sort_desc(), topk/bottomk output, classic histogram buckets) keep equal
 * elements in the order Go leaves them in only if the same algorithm runs:
 * this is that algorithm, driven through callbacks. */
#ifndef SIDEWATCH_PROMQL_GOSORT_H
#define SIDEWATCH_PROMQL_GOSORT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct promql_gosort_iface {
    void *ctx;
    bool (*less)(void *ctx, size_t i, size_t j);
    void (*swap)(void *ctx, size_t i, size_t j);
} promql_gosort_iface;

/* Sorts elements [0, n) as Go's sort.Sort(data) with data.Len() == n. */
void promql_gosort(const promql_gosort_iface *data, size_t n);

#endif
