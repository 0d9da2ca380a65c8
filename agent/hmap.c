#include "hmap.h"

#include "mem.h"

static char tombstone_marker;
#define HMAP_TOMBSTONE ((void *)&tombstone_marker)

void hmap_init(hmap *m)
{
    m->slots = NULL;
    m->cap = m->len = m->used = 0;
}

void hmap_cleanup(hmap *m)
{
    mem_free(m->slots);
    hmap_init(m);
}

static void rehash(hmap *m, size_t cap)
{
    hmap_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->slots = mem_calloc(cap, sizeof *m->slots);
    m->cap = cap;
    m->used = m->len;
    for (size_t i = 0; i < old_cap; i++) {
        void *v = old[i].val;
        if (!v || v == HMAP_TOMBSTONE) continue;
        size_t j = old[i].hash & (cap - 1);
        while (m->slots[j].val)
            j = (j + 1) & (cap - 1);
        m->slots[j] = old[i];
    }
    mem_free(old);
}

void *hmap_get(const hmap *m, uint64_t h, hmap_eq_fn eq, const void *key)
{
    if (!m->cap) return NULL;
    size_t i = h & (m->cap - 1);
    for (;;) {
        void *v = m->slots[i].val;
        if (!v) return NULL;
        if (v != HMAP_TOMBSTONE && m->slots[i].hash == h && eq(v, key)) return v;
        i = (i + 1) & (m->cap - 1);
    }
}

void hmap_put(hmap *m, uint64_t h, void *val)
{
    if ((m->used + 1) * 4 >= m->cap * 3) {
        size_t cap = m->cap ? m->cap : 16;
        while ((m->len + 1) * 2 >= cap)
            cap *= 2;
        rehash(m, cap);
    }
    size_t i = h & (m->cap - 1);
    while (m->slots[i].val && m->slots[i].val != HMAP_TOMBSTONE)
        i = (i + 1) & (m->cap - 1);
    if (!m->slots[i].val) m->used++;
    m->slots[i].hash = h;
    m->slots[i].val = val;
    m->len++;
}

void *hmap_del(hmap *m, uint64_t h, hmap_eq_fn eq, const void *key)
{
    if (!m->cap) return NULL;
    size_t i = h & (m->cap - 1);
    for (;;) {
        void *v = m->slots[i].val;
        if (!v) return NULL;
        if (v != HMAP_TOMBSTONE && m->slots[i].hash == h && eq(v, key)) {
            m->slots[i].val = HMAP_TOMBSTONE;
            m->len--;
            return v;
        }
        i = (i + 1) & (m->cap - 1);
    }
}

bool hmap_next(const hmap *m, size_t *it, void **val)
{
    while (*it < m->cap) {
        void *v = m->slots[(*it)++].val;
        if (v && v != HMAP_TOMBSTONE) {
            *val = v;
            return true;
        }
    }
    return false;
}

size_t hmap_len(const hmap *m)
{
    return m->len;
}
