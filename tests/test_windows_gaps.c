/*
 * Windows only (tests/windows.cmake): each gap of the Windows port answers with the code
 * docs/backends.md promises, never a silent success or a crash: Unix-domain listeners where
 * Winsock has no AF_UNIX (wine 8; Windows before 10 1803), Unix socket pairs, processes and
 * the directory watcher.
 */
#include "support.h"

#include <string.h>

#include "asyncio/net.h"
#include "asyncio/process.h"
#include "asyncio/runtime.h"
#include "asyncio/unix.h"
#include "asyncio/watch.h"

typedef struct bind_task {
    const char *path;
    int rc;
} bind_task;

/* Binds a Unix listener inside a task (it registers with the current runtime). */
static int bind_poll(void *p, asyncio_context *cx)
{
    (void)cx;
    bind_task *t = p;
    asyncio_sockaddr a;
    assert_ok(asyncio_addr_unix(t->path, &a));
    asyncio_unix_listener *l = NULL;
    t->rc = asyncio_unix_listener_bind(&l, &a, NULL);
    if (t->rc == 0)
        assert_ok(asyncio_unix_listener_close(l));
    return 0;
}

static void test_windows_unix_listener_works_or_is_enotsup_never_eafnosupport(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    bind_task t = {.path = "asyncio_gap_test.sock"};
    assert_ok(support_run_future(rt, bind_poll, &t));
    /* Before the mapping, wine's missing AF_UNIX surfaced as ASYNCIO_EAFNOSUPPORT. */
    if (t.rc != 0)
        assert_err(t.rc, ASYNCIO_ENOTSUP);
    remove(t.path);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_windows_unix_stream_pair_is_enotsup(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    asyncio_unix_stream a, b;
    asyncio_unix_stream_init_closed(&a);
    asyncio_unix_stream_init_closed(&b);
    assert_err(asyncio_unix_stream_pair(&a, &b), ASYNCIO_ENOTSUP);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_windows_process_spawn_is_enotsup(void **state)
{
    (void)state;
    const char *const argv[] = {"cmd.exe", "/c", "exit", NULL};
    asyncio_process_options o;
    memset(&o, 0, sizeof o);
    o.argv = argv;
    asyncio_process *p = NULL;
    assert_err(asyncio_process_spawn(&p, &o), ASYNCIO_ENOTSUP);
    assert_null(p);
}

typedef struct watch_task {
    int rc;
} watch_task;

static int watch_poll(void *p, asyncio_context *cx)
{
    (void)cx;
    watch_task *t = p;
    asyncio_watcher *w = NULL;
    t->rc = asyncio_watcher_new(&w, ".");
    if (t->rc == 0)
        asyncio_watcher_free(w);
    return 0;
}

static void test_windows_directory_watcher_is_enotsup(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    watch_task t = {0};
    assert_ok(support_run_future(rt, watch_poll, &t));
    assert_err(t.rc, ASYNCIO_ENOTSUP);
    assert_ok(asyncio_runtime_free(rt));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_windows_unix_listener_works_or_is_enotsup_never_eafnosupport),
        support_test(test_windows_unix_stream_pair_is_enotsup),
        support_test(test_windows_process_spawn_is_enotsup),
        support_test(test_windows_directory_watcher_is_enotsup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
