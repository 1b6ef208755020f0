/*
 * The directory watcher: create / modify / delete / rename events with
 * names, moves in and out, directories, overflow, the end of the watched
 * directory, and a waiting task being woken by a new event. File-system
 * changes are made with plain syscalls by the test; the watcher is polled
 * by tasks on a current-thread runtime.
 */
#include "support.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asyncio/runtime.h"
#include "asyncio/time.h"
#include "asyncio/watch.h"

/* ------------------------------------------------------------------------ */
/* Harness                                                                   */

/* Runs one future to completion on rt (tests/support). */
static int run(asyncio_runtime *rt, asyncio_future_poll_fn fn, void *fut)
{
    return support_run_future(rt, fn, fut);
}

typedef struct new_args {
    asyncio_watcher *w;
    const char *dir;
} new_args;

static int new_poll(void *p, asyncio_context *cx)
{
    (void)cx;
    new_args *a = p;
    return asyncio_watcher_new(&a->w, a->dir);
}

static int free_poll(void *p, asyncio_context *cx)
{
    (void)cx;
    return asyncio_watcher_free(p);
}

static asyncio_watcher *watch(asyncio_runtime *rt, const char *dir)
{
    new_args a = {NULL, dir};
    assert_ok(run(rt, new_poll, &a));
    return a.w;
}

static void unwatch(asyncio_runtime *rt, asyncio_watcher *w)
{
    assert_ok(run(rt, free_poll, w));
}

/* Events seen, with copied names. */
#define MAX_EV 64
typedef struct seen_event {
    asyncio_watch_kind kind;
    char name[64];
    char to[64];
    bool is_dir;
} seen_event;

typedef struct collect {
    asyncio_watcher *w;
    asyncio_watch_kind stop; /* returns after an event of this kind */
    seen_event ev[MAX_EV];
    int n;
    long total;
} collect;

static int collect_poll(void *p, asyncio_context *cx)
{
    collect *c = p;
    for (;;) {
        asyncio_watch_event e;
        int rc = asyncio_watcher_poll_next(c->w, cx, &e);
        if (rc != 0)
            return rc;
        c->total++;
        if (c->n < MAX_EV) {
            seen_event *s = &c->ev[c->n++];
            s->kind = e.kind;
            snprintf(s->name, sizeof s->name, "%s", e.name);
            snprintf(s->to, sizeof s->to, "%s", e.to_name != NULL ? e.to_name : "");
            s->is_dir = e.is_dir;
        }
        if (e.kind == c->stop)
            return 0;
    }
}

static char g_dir[64], g_other[64];

static void make_dirs(void)
{
    strcpy(g_dir, "/tmp/asyncio_watch_XXXXXX");
    strcpy(g_other, "/tmp/asyncio_watch_o_XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    assert_non_null(mkdtemp(g_other));
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void remove_dirs(void)
{
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    nftw(g_other, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *in(char *buf, const char *dir, const char *name)
{
    snprintf(buf, 256, "%s/%s", dir, name);
    return buf;
}

static void touch_write(const char *path, const char *data)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_sys(fd);
    if (data != NULL)
        assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
    close(fd);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */

static void test_watch_reports_create_modify_and_delete_with_names(void **state)
{
    (void)state;
    make_dirs();
    asyncio_runtime *rt = support_runtime_new(NULL);
    asyncio_watcher *w = watch(rt, g_dir);
    char p[256];
    touch_write(in(p, g_dir, "a.txt"), NULL); /* create */
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    assert_sys(fd);
    assert_int_equal(write(fd, "x", 1), 1); /* modify */
    close(fd);
    assert_sys(unlink(p)); /* delete */
    collect c = {.w = w, .stop = ASYNCIO_WATCH_DELETE};
    assert_ok(run(rt, collect_poll, &c));
    assert_int_equal(c.n, 3);
    assert_int_equal(c.ev[0].kind, ASYNCIO_WATCH_CREATE);
    assert_string_equal(c.ev[0].name, "a.txt");
    assert_false(c.ev[0].is_dir);
    assert_int_equal(c.ev[1].kind, ASYNCIO_WATCH_MODIFY);
    assert_string_equal(c.ev[1].name, "a.txt");
    assert_int_equal(c.ev[2].kind, ASYNCIO_WATCH_DELETE);
    assert_string_equal(c.ev[2].name, "a.txt");
    assert_string_equal(asyncio_watch_kind_name(ASYNCIO_WATCH_DELETE), "delete");
    unwatch(rt, w);
    assert_ok(asyncio_runtime_free(rt));
    remove_dirs();
}

static void test_watch_pairs_a_rename_inside_the_directory(void **state)
{
    (void)state;
    make_dirs();
    asyncio_runtime *rt = support_runtime_new(NULL);
    char p[256], q[256];
    touch_write(in(p, g_dir, "old"), "data");
    asyncio_watcher *w = watch(rt, g_dir);
    assert_sys(rename(p, in(q, g_dir, "new")));
    collect c = {.w = w, .stop = ASYNCIO_WATCH_RENAME};
    assert_ok(run(rt, collect_poll, &c));
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ev[0].name, "old");
    assert_string_equal(c.ev[0].to, "new");
    unwatch(rt, w);
    assert_ok(asyncio_runtime_free(rt));
    remove_dirs();
}

static void test_watch_reports_moves_out_and_in_of_the_directory(void **state)
{
    (void)state;
    make_dirs();
    asyncio_runtime *rt = support_runtime_new(NULL);
    char p[256], q[256];
    touch_write(in(p, g_dir, "leaving"), NULL);
    touch_write(in(q, g_other, "arriving"), NULL);
    asyncio_watcher *w = watch(rt, g_dir);
    char r[256], s[256];
    assert_sys(rename(p, in(r, g_other, "gone")));
    assert_sys(rename(q, in(s, g_dir, "here")));
    collect c = {.w = w, .stop = ASYNCIO_WATCH_MOVED_IN};
    assert_ok(run(rt, collect_poll, &c));
    assert_int_equal(c.n, 2);
    assert_int_equal(c.ev[0].kind, ASYNCIO_WATCH_MOVED_OUT);
    assert_string_equal(c.ev[0].name, "leaving");
    assert_string_equal(c.ev[1].name, "here");
    unwatch(rt, w);
    assert_ok(asyncio_runtime_free(rt));
    remove_dirs();
}

static void test_watch_directory_entries_are_flagged_and_the_end_is_enoent(void **state)
{
    (void)state;
    make_dirs();
    asyncio_runtime *rt = support_runtime_new(NULL);
    char p[256];
    asyncio_watcher *w = watch(rt, g_dir);
    assert_sys(mkdir(in(p, g_dir, "sub"), 0755));
    collect c = {.w = w, .stop = ASYNCIO_WATCH_CREATE};
    assert_ok(run(rt, collect_poll, &c));
    assert_true(c.ev[0].is_dir);
    assert_string_equal(c.ev[0].name, "sub");
    assert_sys(rmdir(p));
    assert_sys(rmdir(g_dir)); /* the watched directory itself */
    collect d = {.w = w, .stop = 0};
    assert_err(run(rt, collect_poll, &d), ASYNCIO_ENOENT);
    assert_int_equal(d.ev[0].kind, ASYNCIO_WATCH_DELETE);
    assert_err(run(rt, collect_poll, &d), ASYNCIO_ENOENT); /* sticky */
    unwatch(rt, w);
    assert_ok(asyncio_runtime_free(rt));
    remove_dirs();
}

/* Creates a file from another task once the watcher's task is waiting. */
typedef struct maker {
    char path[256];
} maker;

static int maker_poll(void *state, asyncio_context *cx, void *output)
{
    (void)cx;
    (void)output;
    touch_write(((maker *)state)->path, NULL);
    return 0;
}

static const asyncio_task_vtable maker_vt = {maker_poll, NULL, NULL, sizeof(maker), 0};

typedef struct waiter {
    collect c;
    bool spawned;
    int pending_polls;
} waiter;

static int waiter_poll(void *p, asyncio_context *cx)
{
    waiter *wt = p;
    int rc = collect_poll(&wt->c, cx);
    if (rc == ASYNCIO_PENDING) {
        wt->pending_polls++;
        if (!wt->spawned) { /* now waiting: let another task make the change */
            maker m;
            in(m.path, g_dir, "late");
            assert_ok(asyncio_spawn(asyncio_runtime_current(), &maker_vt, &m, NULL));
            wt->spawned = true;
        }
    }
    return rc;
}

static void test_watch_wakes_a_waiting_task_when_an_event_arrives(void **state)
{
    (void)state;
    make_dirs();
    asyncio_runtime *rt = support_runtime_new(NULL);
    asyncio_watcher *w = watch(rt, g_dir);
    waiter wt = {.c = {.w = w, .stop = ASYNCIO_WATCH_CREATE}};
    assert_ok(run(rt, waiter_poll, &wt));
    assert_true(wt.pending_polls >= 1);
    assert_string_equal(wt.c.ev[0].name, "late");
    unwatch(rt, w);
    assert_ok(asyncio_runtime_free(rt));
    remove_dirs();
}

static void test_watch_queue_overflow_is_reported_as_an_event(void **state)
{
    (void)state;
    long max = 16384;
    FILE *f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 16384;
        fclose(f);
    }
    if (max > 200000)
        skip(); /* too many events to generate in a unit test */
    make_dirs();
    asyncio_runtime *rt = support_runtime_new(NULL);
    asyncio_watcher *w = watch(rt, g_dir);
    char p[256];
    in(p, g_dir, "churn");
    for (long i = 0; i < max / 2 + 64; i++) { /* two events per round */
        touch_write(p, NULL);
        assert_sys(unlink(p));
    }
    collect c = {.w = w, .stop = ASYNCIO_WATCH_OVERFLOW};
    assert_ok(run(rt, collect_poll, &c));
    assert_true(c.total <= max + 2);
    unwatch(rt, w);
    assert_ok(asyncio_runtime_free(rt));
    remove_dirs();
}

static void test_watch_bad_arguments_and_missing_directories(void **state)
{
    (void)state;
    make_dirs();
    asyncio_watcher *w = NULL;
    assert_err(asyncio_watcher_new(&w, g_dir), ASYNCIO_EINVAL); /* no runtime here */
    asyncio_runtime *rt = support_runtime_new(NULL);
    new_args a = {NULL, "/nonexistent/asyncio/dir"};
    assert_err(run(rt, new_poll, &a), ASYNCIO_ENOENT);
    char p[256];
    touch_write(in(p, g_dir, "file"), NULL);
    a.dir = p;
    assert_err(run(rt, new_poll, &a), ASYNCIO_ENOTDIR);
    a.dir = "";
    assert_err(run(rt, new_poll, &a), ASYNCIO_EINVAL);
    assert_ok(asyncio_watcher_free(NULL));
    assert_ok(asyncio_runtime_free(rt));
    remove_dirs();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_watch_reports_create_modify_and_delete_with_names),
        support_test(test_watch_pairs_a_rename_inside_the_directory),
        support_test(test_watch_reports_moves_out_and_in_of_the_directory),
        support_test(test_watch_directory_entries_are_flagged_and_the_end_is_enoent),
        support_test(test_watch_wakes_a_waiting_task_when_an_event_arrives),
        support_test(test_watch_queue_overflow_is_reported_as_an_event),
        support_test(test_watch_bad_arguments_and_missing_directories),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
