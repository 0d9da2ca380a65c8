/* arena: a region allocator for one query or one rule evaluation.
 *
 * Everything allocated from an arena is freed at once by arena_cleanup().
 * The arena has a byte limit (matching --query.max-samples style caps):
 * arena_alloc returns NULL once it would be exceeded, and callers turn that
 * into a "query processing would load too many samples" style error. */
#ifndef SIDEWATCH_ARENA_H
#define SIDEWATCH_ARENA_H

#include <stddef.h>

typedef struct arena_block arena_block;

typedef struct arena {
    arena_block *head;
    size_t used;  /* bytes handed out */
    size_t limit; /* 0 = unlimited */
} arena;

void arena_init(arena *a, size_t limit);
/* Frees every block; the arena is empty and reusable afterwards. */
void arena_cleanup(arena *a);
/* Returns 16-byte aligned memory owned by the arena, or NULL past the limit. */
void *arena_alloc(arena *a, size_t n);
void *arena_calloc(arena *a, size_t n);
/* NUL-terminated copy owned by the arena, or NULL past the limit. */
char *arena_strndup(arena *a, const char *s, size_t n);

#endif
