/*
 * Error codes (asyncio_strerror, asyncio_err_name) and the allocation hook.
 */
#include "support.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_error_success_and_pending_have_names(void **state)
{
    (void)state;
    assert_string_equal(asyncio_err_name(0), "OK");
    assert_string_equal(asyncio_strerror(0), "success");
    assert_int_equal(ASYNCIO_PENDING, 1);
    assert_string_equal(asyncio_err_name(ASYNCIO_PENDING), "PENDING");
    assert_string_equal(asyncio_strerror(ASYNCIO_PENDING), "operation pending");
}

static void test_error_errno_codes_equal_negative_errno(void **state)
{
    (void)state;
    assert_int_equal(ASYNCIO_EINVAL, -EINVAL);
    assert_int_equal(ASYNCIO_ENOENT, -ENOENT);
    assert_int_equal(ASYNCIO_EAGAIN, -EAGAIN);
    assert_int_equal(ASYNCIO_EBADF, -EBADF);
    assert_int_equal(ASYNCIO_EEXIST, -EEXIST);
    assert_int_equal(ASYNCIO_EBUSY, -EBUSY);
    assert_int_equal(ASYNCIO_ENOTSUP, -ENOTSUP);
    assert_int_equal(ASYNCIO_ECONNRESET, -ECONNRESET);
}

static void test_error_errno_codes_have_names_and_messages(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *name;
        const char *msg;
    } cases[] = {
        {ASYNCIO_EINVAL, "EINVAL", "invalid argument"},
        {ASYNCIO_ENOENT, "ENOENT", "no such file, directory or registration"},
        {ASYNCIO_EBADF, "EBADF", "bad file descriptor"},
        {ASYNCIO_EEXIST, "EEXIST", "already exists or already registered"},
        {ASYNCIO_EBUSY, "EBUSY", "resource busy"},
        {ASYNCIO_EAGAIN, "EAGAIN", "resource temporarily unavailable"},
        {ASYNCIO_ENOMEM, "ENOMEM", "out of memory"},
        {ASYNCIO_ENOTSUP, "ENOTSUP", "operation not supported"},
        {ASYNCIO_ECONNREFUSED, "ECONNREFUSED", "connection refused"},
        {ASYNCIO_ETIMEDOUT, "ETIMEDOUT", "operation timed out"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_string_equal(asyncio_err_name(cases[i].code), cases[i].name);
        assert_string_equal(asyncio_strerror(cases[i].code), cases[i].msg);
    }
}

/* What process.h returns (waitpid, kill, execve) is in the table, not left to the C library. */
static void test_error_process_codes_have_names_and_messages(void **state)
{
    (void)state;
    static const struct {
        int code, sys;
        const char *name;
        const char *msg;
    } cases[] = {
        {ASYNCIO_ESRCH, ESRCH, "ESRCH", "no such process"},
        {ASYNCIO_ECHILD, ECHILD, "ECHILD", "no child processes"},
        {ASYNCIO_ENOEXEC, ENOEXEC, "ENOEXEC", "exec format error"},
        {ASYNCIO_E2BIG, E2BIG, "E2BIG", "argument list too long"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(cases[i].code, -cases[i].sys);
        assert_string_equal(asyncio_err_name(cases[i].code), cases[i].name);
        assert_string_equal(asyncio_strerror(cases[i].code), cases[i].msg);
    }
}

static void test_error_library_codes_are_in_reserved_range(void **state)
{
    (void)state;
    assert_int_equal(ASYNCIO_EUNEXPECTED_EOF, -4000);
    assert_int_equal(ASYNCIO_ECLOSED, -4001);
    assert_true(ASYNCIO_EUNEXPECTED_EOF >= ASYNCIO_ERR_LIB_MIN);
    assert_true(ASYNCIO_EUNEXPECTED_EOF <= ASYNCIO_ERR_LIB_MAX);
    assert_true(ASYNCIO_ECLOSED >= ASYNCIO_ERR_LIB_MIN);
    assert_true(ASYNCIO_ECLOSED <= ASYNCIO_ERR_LIB_MAX);
    assert_string_equal(asyncio_err_name(ASYNCIO_EUNEXPECTED_EOF), "EUNEXPECTED_EOF");
    assert_string_equal(asyncio_strerror(ASYNCIO_EUNEXPECTED_EOF), "unexpected end of file");
    assert_string_equal(asyncio_err_name(ASYNCIO_ECLOSED), "ECLOSED");
    assert_string_equal(asyncio_strerror(ASYNCIO_ECLOSED), "closed");
}

static void test_error_unknown_codes_are_reported_as_unknown(void **state)
{
    (void)state;
    static const int unknown[] = {-3999, -4004, -4095, 2, 12345, -123456, INT32_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(asyncio_err_name(unknown[i]), "UNKNOWN");
        assert_string_equal(asyncio_strerror(unknown[i]), "unknown error");
    }
}

/* System errors pass through unchanged, so a code outside the table still has a message. */
static void test_error_system_codes_outside_table_get_system_message(void **state)
{
    (void)state;
    static const int sys[] = {ENOTTY, EDOM, EMLINK, ENOLCK};
    for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++) {
        char want[256];
        /* The test runs on one thread: plain strerror is safe here. */
        snprintf(want, sizeof want, "%s", strerror(sys[i]));
        const char *got = asyncio_strerror(-sys[i]);
        assert_non_null(got);
        assert_string_equal(got, want);
        assert_string_not_equal(got, "unknown error");
    }
}

static void test_error_system_codes_outside_table_get_system_name(void **state)
{
    (void)state;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32) && \
    !defined(ASYNCIO_ERROR_OS_FALLBACK)
    assert_string_equal(asyncio_err_name(-ENOTTY), "ENOTTY");
    assert_string_equal(asyncio_err_name(-EDOM), "EDOM");
    assert_string_equal(asyncio_err_name(-EMLINK), "EMLINK");
#else
    skip(); /* no strerrorname_np: such codes are named "UNKNOWN" */
#endif
}

/* Each thread gets its own message for a fallback code (no shared buffer to race on). */
static void *strerror_on_thread(void *arg)
{
    for (int i = 0; i < 10000; i++) {
        const char *m = asyncio_strerror(-(int)(intptr_t)arg);
        if (m == NULL || strcmp(m, "unknown error") == 0)
            return (void *)1;
    }
    return NULL;
}

static void test_error_system_message_fallback_is_thread_safe(void **state)
{
    (void)state;
    pthread_t t[2];
    assert_int_equal(pthread_create(&t[0], NULL, strerror_on_thread, (void *)(intptr_t)ENOTTY), 0);
    assert_int_equal(pthread_create(&t[1], NULL, strerror_on_thread, (void *)(intptr_t)EDOM), 0);
    void *r0, *r1;
    assert_int_equal(pthread_join(t[0], &r0), 0);
    assert_int_equal(pthread_join(t[1], &r1), 0);
    assert_null(r0);
    assert_null(r1);
}

static void test_error_every_mapped_code_has_distinct_name(void **state)
{
    (void)state;
    /* Every errno-backed code maps to its own name ("E..."), never UNKNOWN. */
    static const int codes[] = {
#define XX(name, msg) ASYNCIO_##name,
        ASYNCIO_ERRNO_MAP(XX)
#undef XX
    };
    static const char *const names[] = {
#define XX(name, msg) #name,
        ASYNCIO_ERRNO_MAP(XX)
#undef XX
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_true(codes[i] < 0);
        assert_string_equal(asyncio_err_name(codes[i]), names[i]);
        assert_string_not_equal(asyncio_strerror(codes[i]), "unknown error");
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
}

/* ------------------------------------------------------------------------ */
/* Allocator hook                                                            */

static int g_mallocs;

static void *my_malloc(void *ctx, size_t size)
{
    (void)ctx;
    g_mallocs++;
    return malloc(size);
}

static void *my_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (ptr == NULL)
        g_mallocs++;
    return realloc(ptr, size);
}

static void my_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

static void test_alloc_set_allocator_rejects_null_functions(void **state)
{
    (void)state;
    asyncio_allocator a = {my_malloc, my_realloc, my_free, NULL};
    a.malloc = NULL;
    assert_err(asyncio_set_allocator(&a), ASYNCIO_EINVAL);
    a.malloc = my_malloc;
    a.realloc = NULL;
    assert_err(asyncio_set_allocator(&a), ASYNCIO_EINVAL);
    a.realloc = my_realloc;
    a.free = NULL;
    assert_err(asyncio_set_allocator(&a), ASYNCIO_EINVAL);

    /* A rejected allocator was not installed: the library still allocates with malloc. */
    g_mallocs = 0;
    asyncio_user_source *u = NULL;
    assert_ok(asyncio_user_source_new(&u));
    assert_ok(asyncio_user_source_free(u));
    assert_int_equal(g_mallocs, 0);
}

static void test_alloc_custom_allocator_is_used_and_null_restores_default(void **state)
{
    (void)state;
    asyncio_allocator a = {my_malloc, my_realloc, my_free, NULL};
    g_mallocs = 0;
    assert_ok(asyncio_set_allocator(&a));
    asyncio_user_source *u = NULL;
    assert_ok(asyncio_user_source_new(&u));
    assert_ok(asyncio_user_source_free(u));
    assert_true(g_mallocs >= 1);

    assert_ok(asyncio_set_allocator(NULL));
    int before = g_mallocs;
    assert_ok(asyncio_user_source_new(&u));
    assert_ok(asyncio_user_source_free(u));
    assert_int_equal(g_mallocs, before);
}

static void test_alloc_counting_allocator_sees_poller_blocks_freed(void **state)
{
    (void)state;
    support_alloc_install();
    asyncio_poller *p = NULL;
    assert_ok(asyncio_poller_new(&p));
    assert_true(support_alloc_live() > 0);
    assert_ok(asyncio_poller_free(p));
    assert_int_equal(support_alloc_live(), 0);
    support_alloc_uninstall();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_success_and_pending_have_names),
        cmocka_unit_test(test_error_errno_codes_equal_negative_errno),
        cmocka_unit_test(test_error_errno_codes_have_names_and_messages),
        cmocka_unit_test(test_error_process_codes_have_names_and_messages),
        cmocka_unit_test(test_error_library_codes_are_in_reserved_range),
        cmocka_unit_test(test_error_unknown_codes_are_reported_as_unknown),
        cmocka_unit_test(test_error_every_mapped_code_has_distinct_name),
        cmocka_unit_test(test_error_system_codes_outside_table_get_system_message),
        cmocka_unit_test(test_error_system_codes_outside_table_get_system_name),
        cmocka_unit_test(test_error_system_message_fallback_is_thread_safe),
        cmocka_unit_test(test_alloc_set_allocator_rejects_null_functions),
        cmocka_unit_test(test_alloc_custom_allocator_is_used_and_null_restores_default),
        cmocka_unit_test(test_alloc_counting_allocator_sees_poller_blocks_freed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
