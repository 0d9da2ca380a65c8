/* promql/gosort: Go's pdqsort (sort.Sort), for identical orders of equal
 * elements. Indices are signed, as Go's ints, because some loops run
 * down to 0 or compare against a - 1. */
#include "promql/gosort.h"

#include <stdint.h>

typedef ptrdiff_t idx;

typedef struct s {
    const promql_gosort_iface *d;
} s;

static bool less(const s *x, idx i, idx j)
{
    return x->d->less(x->d->ctx, (size_t)i, (size_t)j);
}

static void swap(const s *x, idx i, idx j)
{
    x->d->swap(x->d->ctx, (size_t)i, (size_t)j);
}

/* bits.Len */
static int bit_len(uint64_t v)
{
    int n = 0;
    while (v) {
        n++;
        v >>= 1;
    }
    return n;
}

static void insertion_sort(const s *x, idx a, idx b)
{
    for (idx i = a + 1; i < b; i++)
        for (idx j = i; j > a && less(x, j, j - 1); j--)
            swap(x, j, j - 1);
}

static void sift_down(const s *x, idx lo, idx hi, idx first)
{
    idx root = lo;
    for (;;) {
        idx child = 2 * root + 1;
        if (child >= hi) return;
        if (child + 1 < hi && less(x, first + child, first + child + 1)) child++;
        if (!less(x, first + root, first + child)) return;
        swap(x, first + root, first + child);
        root = child;
    }
}

static void heap_sort(const s *x, idx a, idx b)
{
    idx first = a, hi = b - a;
    for (idx i = (hi - 1) / 2; i >= 0; i--)
        sift_down(x, i, hi, first);
    for (idx i = hi - 1; i >= 0; i--) {
        swap(x, first, first + i);
        sift_down(x, 0, i, first);
    }
}

enum hint { UNKNOWN_HINT, INCREASING_HINT, DECREASING_HINT };

/* order2/median/medianAdjacent with the swap counter of choosePivot. */
static idx median3(const s *x, idx a, idx b, idx c, int *swaps)
{
    idx t;
    if (less(x, b, a)) {
        (*swaps)++;
        t = a;
        a = b;
        b = t;
    }
    if (less(x, c, b)) {
        (*swaps)++;
        t = b;
        b = c;
        c = t;
    }
    if (less(x, b, a)) {
        (*swaps)++;
        t = a;
        a = b;
        b = t;
    }
    (void)c;
    return b;
}

static idx choose_pivot(const s *x, idx a, idx b, enum hint *h)
{
    idx l = b - a;
    int swaps = 0;
    idx i = a + l / 4 * 1, j = a + l / 4 * 2, k = a + l / 4 * 3;
    if (l >= 8) {
        if (l >= 50) {
            i = median3(x, i - 1, i, i + 1, &swaps);
            j = median3(x, j - 1, j, j + 1, &swaps);
            k = median3(x, k - 1, k, k + 1, &swaps);
        }
        j = median3(x, i, j, k, &swaps);
    }
    *h = swaps == 0 ? INCREASING_HINT : swaps == 12 ? DECREASING_HINT : UNKNOWN_HINT;
    return j;
}

static void reverse_range(const s *x, idx a, idx b)
{
    for (idx i = a, j = b - 1; i < j; i++, j--)
        swap(x, i, j);
}

static bool partial_insertion_sort(const s *x, idx a, idx b)
{
    idx i = a + 1;
    for (int step = 0; step < 5; step++) {
        while (i < b && !less(x, i, i - 1))
            i++;
        if (i == b) return true;
        if (b - a < 50) return false;
        swap(x, i, i - 1);
        if (i - a >= 2) {
            for (idx j = i - 1; j >= 1; j--) {
                if (!less(x, j, j - 1)) break;
                swap(x, j, j - 1);
            }
        }
        if (b - i >= 2) {
            for (idx j = i + 1; j < b; j++) {
                if (!less(x, j, j - 1)) break;
                swap(x, j, j - 1);
            }
        }
    }
    return false;
}

static void break_patterns(const s *x, idx a, idx b)
{
    idx length = b - a;
    if (length < 8) return;
    uint64_t r = (uint64_t)length;
    uint64_t modulus = (uint64_t)1 << bit_len((uint64_t)length);
    for (idx i = a + (length / 4) * 2 - 1; i <= a + (length / 4) * 2 + 1; i++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        idx other = (idx)(r & (modulus - 1));
        if (other >= length) other -= length;
        swap(x, i, a + other);
    }
}

static idx partition_equal(const s *x, idx a, idx b, idx pivot)
{
    swap(x, a, pivot);
    idx i = a + 1, j = b - 1;
    for (;;) {
        while (i <= j && !less(x, a, i))
            i++;
        while (i <= j && less(x, a, j))
            j--;
        if (i > j) break;
        swap(x, i, j);
        i++;
        j--;
    }
    return i;
}

static idx partition(const s *x, idx a, idx b, idx pivot, bool *already)
{
    swap(x, a, pivot);
    idx i = a + 1, j = b - 1;
    while (i <= j && less(x, i, a))
        i++;
    while (i <= j && !less(x, j, a))
        j--;
    if (i > j) {
        swap(x, j, a);
        *already = true;
        return j;
    }
    swap(x, i, j);
    i++;
    j--;
    for (;;) {
        while (i <= j && less(x, i, a))
            i++;
        while (i <= j && !less(x, j, a))
            j--;
        if (i > j) break;
        swap(x, i, j);
        i++;
        j--;
    }
    swap(x, j, a);
    *already = false;
    return j;
}

static void pdqsort(const s *x, idx a, idx b, int limit)
{
    bool was_balanced = true, was_partitioned = true;
    for (;;) {
        idx length = b - a;
        if (length <= 12) {
            insertion_sort(x, a, b);
            return;
        }
        if (limit == 0) {
            heap_sort(x, a, b);
            return;
        }
        if (!was_balanced) {
            break_patterns(x, a, b);
            limit--;
        }
        enum hint h;
        idx pivot = choose_pivot(x, a, b, &h);
        if (h == DECREASING_HINT) {
            reverse_range(x, a, b);
            pivot = (b - 1) - (pivot - a);
            h = INCREASING_HINT;
        }
        if (was_balanced && was_partitioned && h == INCREASING_HINT) {
            if (partial_insertion_sort(x, a, b)) return;
        }
        if (a > 0 && !less(x, a - 1, pivot)) {
            a = partition_equal(x, a, b, pivot);
            continue;
        }
        bool already;
        idx mid = partition(x, a, b, pivot, &already);
        was_partitioned = already;
        idx left = mid - a, right = b - mid, threshold = length / 8;
        if (left < right) {
            was_balanced = left >= threshold;
            pdqsort(x, a, mid, limit);
            a = mid + 1;
        } else {
            was_balanced = right >= threshold;
            pdqsort(x, mid + 1, b, limit);
            b = mid;
        }
    }
}

void promql_gosort(const promql_gosort_iface *data, size_t n)
{
    if (n <= 1) return;
    s x = {data};
    pdqsort(&x, 0, (idx)n, bit_len((uint64_t)n));
}
