/* hmap: an open-addressing hash table from a 64-bit hash to a borrowed
 * pointer. Keys live inside the values; lookups pass an equality callback,
 * so one table type serves series caches, label indexes and target sets.
 * Not thread-safe: each table belongs to one owner. */
#ifndef SIDEWATCH_HMAP_H
#define SIDEWATCH_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hmap_slot {
    uint64_t hash;
    void *val; /* NULL = empty; HMAP_TOMBSTONE = deleted */
} hmap_slot;

typedef struct hmap {
    hmap_slot *slots;
    size_t cap;  /* power of two, or 0 */
    size_t len;  /* live entries */
    size_t used; /* live + tombstones */
} hmap;

/* Compares a stored value with a lookup key. */
typedef bool (*hmap_eq_fn)(const void *val, const void *key);

void hmap_init(hmap *m);
/* Frees the table, not the values. */
void hmap_cleanup(hmap *m);
/* The value whose hash is h and that eq() accepts, or NULL. */
void *hmap_get(const hmap *m, uint64_t h, hmap_eq_fn eq, const void *key);
/* Inserts val (non-NULL, borrowed) without looking for duplicates. */
void hmap_put(hmap *m, uint64_t h, void *val);
/* Removes and returns the matching value, or NULL. */
void *hmap_del(hmap *m, uint64_t h, hmap_eq_fn eq, const void *key);
/* Iteration: start with *it = 0; returns false at the end. Safe with
 * hmap_del of the current entry. */
bool hmap_next(const hmap *m, size_t *it, void **val);
size_t hmap_len(const hmap *m);

#endif
