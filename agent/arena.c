#include "arena.h"

#include <string.h>

#include "mem.h"

#define ARENA_BLOCK_SIZE (64 * 1024)

struct arena_block {
    arena_block *next;
    size_t size, off;
    _Alignas(16) unsigned char data[];
};

void arena_init(arena *a, size_t limit)
{
    a->head = NULL;
    a->used = 0;
    a->limit = limit;
}

void arena_cleanup(arena *a)
{
    arena_block *b = a->head;
    while (b) {
        arena_block *next = b->next;
        mem_free(b);
        b = next;
    }
    a->head = NULL;
    a->used = 0;
}

void *arena_alloc(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (a->limit && (n > a->limit || a->used > a->limit - n)) return NULL;
    arena_block *b = a->head;
    if (!b || b->size - b->off < n) {
        size_t size = n > ARENA_BLOCK_SIZE / 2 ? n : ARENA_BLOCK_SIZE;
        b = mem_malloc(sizeof *b + size);
        b->size = size;
        b->off = 0;
        if (n > ARENA_BLOCK_SIZE / 2 && a->head) {
            /* Keep the partly used head block current for small requests. */
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = b->data + b->off;
    b->off += n;
    a->used += n;
    return p;
}

void *arena_calloc(arena *a, size_t n)
{
    void *p = arena_alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}
