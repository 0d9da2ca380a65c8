/* promql/sort: a stable sort driven through comparison and swap callbacks,
 * for the PromQL results whose elements the engine cannot move by value
 * (parallel arrays, heaps of samples).
 *
 * Equal elements keep their input order. Prometheus sorts these results
 * with Go's unstable sort, which also keeps the input order for 12
 * elements or fewer (it is an insertion sort there); for longer inputs
 * with equal keys the order of the equal elements may differ from
 * Prometheus's, which PromQL leaves unspecified. */
#ifndef SIDEWATCH_PROMQL_SORT_H
#define SIDEWATCH_PROMQL_SORT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct promql_sort_iface {
    void *ctx;
    /* true when element i must come before element j */
    bool (*less)(void *ctx, size_t i, size_t j);
    void (*swap)(void *ctx, size_t i, size_t j);
} promql_sort_iface;

/* Sorts elements [0, n) stably: O(n log n) calls to less, at most n - 1
 * calls to swap, O(n) temporary memory (allocation failure aborts, as
 * mem.h). less is only called with indices of the unsorted input. */
void promql_sort_stable(const promql_sort_iface *data, size_t n);

#endif
