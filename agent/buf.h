/* buf: size-capped growable byte buffers (after curl's dynbuf).
 *
 * Every buffer that input can grow carries a limit. Appending past the limit
 * fails with -E2BIG and leaves the buffer unchanged, so a caller can report
 * "body exceeds body_size_limit" and keep what it had. The data is always
 * NUL-terminated (the terminator is not counted in len or in the limit). */
#ifndef SIDEWATCH_BUF_H
#define SIDEWATCH_BUF_H

#include <stdarg.h>
#include <stddef.h>

#define BUF_UNLIMITED ((size_t)-1)

typedef struct buf {
    char *data;   /* NULL until the first append; use buf_cstr() for "" */
    size_t len;   /* bytes used, excluding the NUL */
    size_t cap;   /* bytes allocated */
    size_t limit; /* maximum len; BUF_UNLIMITED for none */
} buf;

/* Initialises an empty buffer that may grow to `limit` bytes. */
void buf_init(buf *b, size_t limit);
/* Frees the data; the buffer can be reused after buf_init(). */
void buf_cleanup(buf *b);
/* Empties the buffer, keeping its allocation. */
void buf_reset(buf *b);

/* Appends; returns 0, or -E2BIG (buffer unchanged) when the limit would be
 * exceeded. */
int buf_append(buf *b, const void *p, size_t n);
int buf_puts(buf *b, const char *s);
int buf_putc(buf *b, char c);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf *b, const char *fmt, va_list ap);
/* Ensures room for n more bytes; same errors as buf_append. */
int buf_reserve(buf *b, size_t n);
/* Shortens to n bytes (n <= len). */
void buf_truncate(buf *b, size_t n);

/* The contents as a C string; "" for an empty buffer. Borrowed. */
const char *buf_cstr(const buf *b);
/* Hands the allocation to the caller (who frees it with mem_free) and leaves
 * the buffer empty. Never NULL. */
char *buf_detach(buf *b, size_t *len);

/* An expfmt_sink (exporter/expfmt.h) that appends to the buf in ctx. */
int buf_sink(void *ctx, const char *p, size_t n);

#endif
