/* Helpers shared by the cmocka unit tests: file reading and locating the
 * conformance data in ../shared (SIDEWATCH_SHARED). Tests run from the
 * repository root. */
#ifndef SIDEWATCH_TESTUTIL_H
#define SIDEWATCH_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>

/* Reads a whole file; returns NULL if it cannot be read. Caller frees. */
static inline char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *d = malloc(cap + 1);
    size_t r;
    while ((r = fread(d + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            d = realloc(d, cap + 1);
        }
    }
    fclose(f);
    d[n] = '\0';
    if (len) *len = n;
    return d;
}

/* Temporary directories for tests that need files (stores, outboxes):
 * tu_tmpdir_new makes an empty /tmp/<prefix>-XXXXXX (caller frees with
 * tu_tmpdir_free, which removes it and everything below); tu_rm_tree only
 * removes a tree. */
static inline int tu_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline void tu_rm_tree(const char *dir)
{
    nftw(dir, tu_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline char *tu_tmpdir_new(const char *prefix)
{
    char *d = malloc(strlen(prefix) + 16);
    assert_non_null(d);
    sprintf(d, "/tmp/%s-XXXXXX", prefix);
    assert_non_null(mkdtemp(d));
    return d;
}

static inline void tu_tmpdir_free(char *d)
{
    tu_rm_tree(d);
    free(d);
}

static inline const char *tu_shared_dir(void)
{
    const char *d = getenv("SIDEWATCH_SHARED");
    return d && *d ? d : "../shared";
}

/* Builds "<shared>/<rel>" into out. */
static inline const char *tu_shared_path(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", tu_shared_dir(), rel);
    return out;
}

/* Conformance data lives in ../shared. Without it a test is skipped and
 * says why; in CI (CI set) a missing ../shared is a failure. */
#define TU_REQUIRE_SHARED(rel)                                                                     \
    do {                                                                                           \
        char tu_p_[4096];                                                                          \
        struct stat tu_st_;                                                                        \
        if (stat(tu_shared_path(tu_p_, sizeof tu_p_, rel), &tu_st_) != 0) {                        \
            if (getenv("CI") && *getenv("CI")) fail_msg("conformance data missing: %s", tu_p_);    \
            print_message("SKIPPED: conformance data not found at %s (clone next to ../shared)\n", \
                          tu_p_);                                                                  \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

#endif
