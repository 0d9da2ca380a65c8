/* Unit tests for the small util modules: buf (caps), arena (limits,
 * alignment), hmap (collisions, deletion, growth), log levels. */
#include "testutil.h"

#include <errno.h>

#include "arena.h"
#include "buf.h"
#include "hmap.h"
#include "log.h"
#include "mem.h"

static void test_buf_limit_leaves_buffer_unchanged(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 8);
    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(buf_puts(&b, "12345"), 0);
    assert_int_equal(buf_puts(&b, "6789"), -E2BIG);
    assert_string_equal(buf_cstr(&b), "12345");
    assert_int_equal(buf_printf(&b, "%d", 678), 0);
    assert_int_equal(b.len, 8);
    assert_int_equal(buf_putc(&b, 'x'), -E2BIG);
    buf_truncate(&b, 2);
    assert_string_equal(buf_cstr(&b), "12");
    size_t len;
    char *d = buf_detach(&b, &len);
    assert_string_equal(d, "12");
    assert_int_equal(len, 2);
    assert_int_equal(b.len, 0);
    mem_free(d);
    buf_init(&b, BUF_UNLIMITED);
    for (int i = 0; i < 1000; i++) buf_printf(&b, "%04d", i);
    assert_int_equal(b.len, 4000);
    assert_memory_equal(b.data + 3996, "0999", 4);
    buf_cleanup(&b);
}

/* A reserved but empty buffer reads as "" (it once read uninitialised
 * bytes: buf_reserve allocated without a terminator). */
static void test_buf_reserve_then_cstr(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(buf_reserve(&b, 100), 0);
    assert_non_null(b.data);
    assert_string_equal(buf_cstr(&b), "");
    size_t len;
    char *d = buf_detach(&b, &len);
    assert_int_equal(len, 0);
    assert_int_equal(d[0], '\0');
    mem_free(d);
    buf_cleanup(&b);
}

static void test_arena(void **state)
{
    (void)state;
    arena a;
    arena_init(&a, 1000);
    char *p = arena_alloc(&a, 10);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 16, 0);
    char *q = arena_strndup(&a, "hello", 5);
    assert_string_equal(q, "hello");
    assert_null(arena_alloc(&a, 2000)); /* over the limit */
    assert_non_null(arena_alloc(&a, 100));
    arena_cleanup(&a);
    arena_init(&a, 0); /* unlimited: big allocations get their own block */
    for (int i = 0; i < 100; i++) assert_non_null(arena_calloc(&a, 100000));
    arena_cleanup(&a);
}

typedef struct item {
    int key;
} item;

static bool item_eq(const void *val, const void *key)
{
    return ((const item *)val)->key == *(const int *)key;
}

static void test_hmap(void **state)
{
    (void)state;
    hmap m;
    hmap_init(&m);
    item *items = mem_calloc(5000, sizeof *items);
    for (int i = 0; i < 5000; i++) {
        items[i].key = i;
        /* Only 7 distinct hashes: every lookup walks collisions. */
        hmap_put(&m, (uint64_t)(i % 7), &items[i]);
    }
    assert_int_equal(hmap_len(&m), 5000);
    for (int i = 0; i < 5000; i += 97) assert_ptr_equal(hmap_get(&m, (uint64_t)(i % 7), item_eq, &i), &items[i]);
    for (int i = 0; i < 5000; i += 2) assert_ptr_equal(hmap_del(&m, (uint64_t)(i % 7), item_eq, &i), &items[i]);
    assert_int_equal(hmap_len(&m), 2500);
    int k = 4;
    assert_null(hmap_get(&m, 4, item_eq, &k));
    k = 5;
    assert_ptr_equal(hmap_get(&m, 5, item_eq, &k), &items[5]);
    size_t it = 0, seen = 0;
    void *v;
    while (hmap_next(&m, &it, &v)) {
        assert_int_equal(((item *)v)->key % 2, 1);
        seen++;
    }
    assert_int_equal(seen, 2500);
    hmap_cleanup(&m);
    mem_free(items);
}

static void test_log_levels(void **state)
{
    (void)state;
    enum log_level l;
    assert_int_equal(log_parse_level("debug", &l), 0);
    assert_int_equal(l, LOG_DEBUG);
    assert_int_equal(log_parse_level("error", &l), 0);
    assert_int_equal(l, LOG_ERROR);
    assert_int_equal(log_parse_level("loud", &l), -EINVAL);
    log_set_level(LOG_WARN);
    assert_false(log_enabled(LOG_INFO));
    assert_true(log_enabled(LOG_ERROR));
    log_set_level(LOG_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_limit_leaves_buffer_unchanged),
        cmocka_unit_test(test_buf_reserve_then_cstr),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_hmap),
        cmocka_unit_test(test_log_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
