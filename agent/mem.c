#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void mem_oom(size_t n)
{
    fprintf(stderr, "sidewatch: out of memory allocating %zu bytes\n", n);
    abort();
}

void *mem_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) mem_oom(n);
    return p;
}

void *mem_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) mem_oom(count * size);
    return p;
}

void *mem_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) mem_oom(n);
    return q;
}

void *mem_grow(void *p, size_t elem, size_t need, size_t *cap)
{
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 8;
    while (c < need) {
        if (c > ((size_t)-1) / 2 / elem) mem_oom(need * elem);
        c *= 2;
    }
    p = mem_realloc(p, c * elem);
    *cap = c;
    return p;
}

char *mem_strdup(const char *s)
{
    return mem_strndup(s, strlen(s));
}

char *mem_strndup(const char *s, size_t n)
{
    char *d = mem_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void mem_free(void *p)
{
    free(p);
}
