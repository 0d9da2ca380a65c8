/* promql/sort: stable sort of an index permutation, then applied with
 * swaps. */
#include "promql/sort.h"

#include <string.h>

#include "mem.h"

/* Insertion sort is faster for short runs; each run of this many indices
 * is sorted that way before merging. */
#define RUN 16

static void insertion_sort(const promql_sort_iface *d, size_t *idx, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        size_t x = idx[i], j = i;
        while (j > 0 && d->less(d->ctx, x, idx[j - 1])) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = x;
    }
}

/* Merges the sorted runs a[0, na) and b[0, nb) into out; on equal keys
 * the element of a (earlier in the input) comes first. */
static void merge(const promql_sort_iface *d, const size_t *a, size_t na, const size_t *b,
                  size_t nb, size_t *out)
{
    size_t i = 0, j = 0, k = 0;
    while (i < na && j < nb)
        out[k++] = d->less(d->ctx, b[j], a[i]) ? b[j++] : a[i++];
    while (i < na)
        out[k++] = a[i++];
    while (j < nb)
        out[k++] = b[j++];
}

/* Bottom-up merge sort of idx (scratch has the same length); returns the
 * array that holds the result. */
static size_t *merge_sort(const promql_sort_iface *d, size_t *idx, size_t *scratch, size_t n)
{
    for (size_t s = 0; s < n; s += RUN)
        insertion_sort(d, idx + s, n - s < RUN ? n - s : RUN);
    size_t *from = idx, *to = scratch;
    for (size_t w = RUN; w < n; w *= 2) {
        for (size_t s = 0; s < n; s += 2 * w) {
            size_t na = n - s < w ? n - s : w;
            size_t nb = n - s - na < w ? n - s - na : w;
            merge(d, from + s, na, from + s + na, nb, to + s);
        }
        size_t *t = from;
        from = to;
        to = t;
    }
    return from;
}

void promql_sort_stable(const promql_sort_iface *d, size_t n)
{
    if (n < 2) return;
    /* order[k]: the input index of the element that belongs at k. */
    size_t *mem = mem_malloc(4 * n * sizeof *mem);
    size_t *order = mem, *scratch = mem + n, *pos = mem + 2 * n, *at = mem + 3 * n;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    order = merge_sort(d, order, scratch, n);
    /* pos[e]: where input element e is now; at[p]: which input element is
     * at p. Each swap puts one element in its final place. */
    for (size_t i = 0; i < n; i++)
        pos[i] = at[i] = i;
    for (size_t k = 0; k < n; k++) {
        size_t e = order[k], p = pos[e];
        if (p == k) continue;
        d->swap(d->ctx, k, p);
        size_t displaced = at[k];
        at[k] = e;
        pos[e] = k;
        at[p] = displaced;
        pos[displaced] = p;
    }
    mem_free(mem);
}
