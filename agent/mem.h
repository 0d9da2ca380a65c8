/* mem: allocation wrappers.
 *
 * sidewatch treats running out of memory as fatal, as redis and git do: every
 * wrapper either returns usable memory or logs and aborts the process. Input
 * sizes are bounded by named caps (see buf.h) long before that can happen, so
 * callers never need an OOM branch for these calls. */
#ifndef SIDEWATCH_MEM_H
#define SIDEWATCH_MEM_H

#include <stddef.h>

/* Returns memory that the caller frees with mem_free(); never NULL. */
void *mem_malloc(size_t n);
void *mem_calloc(size_t count, size_t size);
/* Like realloc(); p may be NULL. Never returns NULL. */
void *mem_realloc(void *p, size_t n);
/* Grows an array to hold at least `need` elements of `elem` bytes; *cap is
 * updated. Returns the (possibly moved) array. */
void *mem_grow(void *p, size_t elem, size_t need, size_t *cap);
/* Copies of a C string or of n bytes (NUL-terminated); caller frees. */
char *mem_strdup(const char *s);
char *mem_strndup(const char *s, size_t n);
/* free(); p may be NULL. */
void mem_free(void *p);

#endif
