/*
 * Async files and path operations: round trips, open-option semantics,
 * the read_file size limit, metadata, read_dir, create_dir_all / remove /
 * rename, cancellation of pending operations (counting allocator and fd
 * check in the fixtures), buffered I/O over a file, and file -> socket
 * copies taking the sendfile path (asserted with the copy's counters).
 *
 * Each step runs as a small future on a current-thread runtime through
 * run(): the test reads top to bottom.
 */
#include "support.h"
#include "tmpdir.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asyncio/blocking.h"
#include "asyncio/bufio.h"
#include "asyncio/fs.h"
#include "asyncio/io_util.h"
#include "asyncio/net.h"
#include "asyncio/runtime.h"
#include "asyncio/time.h"
#include "platform/zero_copy.h"
#include "reactor/driver.h"

/* ------------------------------------------------------------------------ */
/* Harness                                                                   */

/* Runs one future to completion on rt (tests/support). */
static int run(asyncio_runtime *rt, asyncio_future_poll_fn fn, void *fut)
{
    return support_run_future(rt, fn, fut);
}

/* Runs an fs op and drops it. */
static int run_op(asyncio_runtime *rt, asyncio_fs_op *op, int init_rc)
{
    int rc = init_rc < 0 ? init_rc : run(rt, asyncio_fs_op_poll_fn, op);
    asyncio_fs_op_drop(op);
    return rc;
}

/* A runtime of the flavour the scheduler matrix asks for (ASYNCIO_TEST_RUNTIME). */
static asyncio_runtime *new_rt(void)
{
    return support_runtime_new(NULL);
}

/* write_file(path, s) */
static int write_str(asyncio_runtime *rt, const char *path, const char *s)
{
    asyncio_fs_op op;
    return run_op(rt, &op, asyncio_fs_write_file_init(&op, path, s, strlen(s)));
}

/* read_file(path) compared with `want`. */
static void expect_content(asyncio_runtime *rt, const char *path, const char *want)
{
    asyncio_fs_op op;
    assert_ok(asyncio_fs_read_file_init(&op, path, 1 << 20));
    assert_ok(run(rt, asyncio_fs_op_poll_fn, &op));
    void *data;
    size_t len;
    assert_ok(asyncio_fs_op_take_data(&op, &data, &len));
    asyncio_fs_op_drop(&op);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(data, want, len);
    asyncio_fs_free_data(data);
}

static asyncio_file *open_file(asyncio_runtime *rt, const char *path, uint32_t flags, int *rc_out)
{
    asyncio_fs_op op;
    asyncio_open_options o = {.flags = flags};
    asyncio_file *f = NULL;
    int rc = asyncio_fs_open_init(&op, path, &o);
    if (rc == 0)
        rc = run(rt, asyncio_fs_op_poll_fn, &op);
    if (rc == 0)
        rc = asyncio_fs_op_take_file(&op, &f);
    asyncio_fs_op_drop(&op);
    *rc_out = rc;
    return f;
}

/* Keeps the only blocking thread busy until released; g_finished counts its returns. */
static _Atomic int g_release, g_started, g_finished;

static int blocker(void *arg)
{
    (void)arg;
    atomic_store(&g_started, 1);
    while (!atomic_load(&g_release))
        sched_yield();
    atomic_fetch_add(&g_finished, 1);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Whole-file operations and options                                         */

static void test_fs_write_file_then_read_file_round_trips(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256];
    assert_ok(write_str(rt, path_in(p, "a.txt"), "hello, files\n"));
    expect_content(rt, p, "hello, files\n");
    assert_ok(write_str(rt, p, "shorter")); /* write_file truncates */
    expect_content(rt, p, "shorter");
    asyncio_fs_op op;
    assert_ok(run_op(rt, &op, asyncio_fs_append_file_init(&op, p, "+more", 5)));
    expect_content(rt, p, "shorter+more");
    assert_ok(write_str(rt, path_in(p, "empty"), ""));
    expect_content(rt, p, "");
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

static void test_fs_read_file_over_the_size_limit_is_efbig(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256];
    assert_ok(write_str(rt, path_in(p, "big"), "0123456789"));
    asyncio_fs_op op;
    assert_err(run_op(rt, &op, asyncio_fs_read_file_init(&op, p, 9)), ASYNCIO_EFBIG);
    assert_ok(asyncio_fs_read_file_init(&op, p, 10)); /* exactly the limit is fine */
    assert_ok(run(rt, asyncio_fs_op_poll_fn, &op));
    asyncio_fs_op_drop(&op); /* the buffer nobody took is freed here */
    assert_err(run_op(rt, &op, asyncio_fs_read_file_init(&op, g_dir, 100)), ASYNCIO_EISDIR);
    assert_err(run_op(rt, &op, asyncio_fs_read_file_init(&op, path_in(p, "missing"), 100)),
               ASYNCIO_ENOENT);
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* A file whose size the OS does not report (procfs: 0) is bounded by the bytes read. */
static void test_fs_read_file_of_a_file_without_a_size_is_bounded_by_the_bytes_read(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_rt();
    asyncio_fs_op op;
    assert_err(run_op(rt, &op, asyncio_fs_read_file_init(&op, "/proc/self/maps", 8)),
               ASYNCIO_EFBIG);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_fs_open_create_new_on_existing_file_fails_with_eexist(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256];
    int rc;
    asyncio_file *f =
        open_file(rt, path_in(p, "n"), ASYNCIO_OPEN_WRITE | ASYNCIO_OPEN_CREATE_NEW, &rc);
    assert_ok(rc);
    assert_ok(asyncio_file_close(f));
    f = open_file(rt, p, ASYNCIO_OPEN_WRITE | ASYNCIO_OPEN_CREATE_NEW, &rc);
    assert_err(rc, ASYNCIO_EEXIST);
    assert_null(f);
    f = open_file(rt, path_in(p, "absent"), ASYNCIO_OPEN_READ, &rc);
    assert_err(rc, ASYNCIO_ENOENT);
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* Writes `s` through an asyncio_file with write_all, then flushes. */
typedef struct write_task {
    asyncio_file *f;
    asyncio_write_all wa;
    int step;
} write_task;

static int write_task_poll(void *p, asyncio_context *cx)
{
    write_task *t = p;
    if (t->step == 0) {
        int rc = asyncio_write_all_poll(&t->wa, cx);
        if (rc != 0)
            return rc;
        t->step = 1;
    }
    return asyncio_file_poll_flush(t->f, cx);
}

static int write_all_only_poll(void *p, asyncio_context *cx)
{
    return asyncio_write_all_poll(p, cx);
}

static int file_write_str(asyncio_runtime *rt, asyncio_file *f, const char *s)
{
    write_task t = {.f = f};
    asyncio_write_all_init(&t.wa, asyncio_file_writer(f), s, strlen(s));
    return run(rt, write_task_poll, &t);
}

static void test_fs_open_truncate_empties_and_append_adds_to_the_end(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256];
    int rc;
    assert_ok(write_str(rt, path_in(p, "t"), "old content"));
    asyncio_file *f = open_file(rt, p, ASYNCIO_OPEN_WRITE | ASYNCIO_OPEN_TRUNCATE, &rc);
    assert_ok(rc);
    assert_ok(file_write_str(rt, f, "new"));
    assert_ok(asyncio_file_close(f));
    expect_content(rt, p, "new");

    f = open_file(rt, p, ASYNCIO_OPEN_APPEND, &rc);
    assert_ok(rc);
    assert_ok(file_write_str(rt, f, "+1"));
    assert_ok(file_write_str(rt, f, "+2"));
    assert_ok(asyncio_file_close(f));
    expect_content(rt, p, "new+1+2");

    /* Without TRUNCATE, writing overwrites in place from offset 0. */
    f = open_file(rt, p, ASYNCIO_OPEN_WRITE, &rc);
    assert_ok(rc);
    assert_ok(file_write_str(rt, f, "NE"));
    assert_ok(asyncio_file_close(f));
    expect_content(rt, p, "NEw+1+2");
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

static void test_fs_open_invalid_flag_combinations_are_einval(void **state)
{
    (void)state;
    asyncio_fs_op op;
    const uint32_t bad[] = {
        0,
        ASYNCIO_OPEN_CREATE,
        ASYNCIO_OPEN_READ | ASYNCIO_OPEN_TRUNCATE,
        ASYNCIO_OPEN_READ | ASYNCIO_OPEN_CREATE_NEW,
        ASYNCIO_OPEN_APPEND | ASYNCIO_OPEN_TRUNCATE,
        1u << 20,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        asyncio_open_options o = {.flags = bad[i]};
        assert_err(asyncio_fs_open_init(&op, "/tmp/x", &o), ASYNCIO_EINVAL);
        asyncio_fs_op_drop(&op);
    }
    asyncio_open_options ok = {.flags = ASYNCIO_OPEN_READ};
    assert_err(asyncio_fs_open_init(&op, "", &ok), ASYNCIO_EINVAL);
    asyncio_fs_op_drop(&op);
    assert_err(asyncio_fs_open_init(&op, NULL, &ok), ASYNCIO_EINVAL);
    asyncio_fs_op_drop(&op);
    assert_err(asyncio_fs_rename_init(&op, "/tmp/a", NULL), ASYNCIO_EINVAL);
    asyncio_fs_op_drop(&op);
    assert_err(asyncio_fs_write_file_init(&op, "/tmp/a", NULL, 3), ASYNCIO_EINVAL);
    asyncio_fs_op_drop(&op);
    /* A failed init's poll returns the init's error. */
    asyncio_waker none = ASYNCIO_WAKER_EMPTY;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&none);
    assert_err(asyncio_fs_remove_init(&op, ""), ASYNCIO_EINVAL);
    assert_err(asyncio_fs_op_poll(&op, &cx), ASYNCIO_EINVAL);
    asyncio_fs_op_drop(&op);
    /* Outside a runtime there is no blocking pool: EINVAL, nothing started. */
    assert_ok(asyncio_fs_remove_init(&op, "/tmp/whatever"));
    assert_err(asyncio_fs_op_poll(&op, &cx), ASYNCIO_EINVAL);
    asyncio_fs_op_drop(&op);
}

/* ------------------------------------------------------------------------ */
/* Metadata, directories                                                     */

static void test_fs_metadata_reports_size_type_and_mtime(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256];
    assert_ok(write_str(rt, path_in(p, "m"), "12345"));
    asyncio_fs_op op;
    assert_ok(asyncio_fs_metadata_init(&op, p, true));
    assert_ok(run(rt, asyncio_fs_op_poll_fn, &op));
    assert_int_equal(op.metadata.size, 5);
    assert_int_equal(op.metadata.type, ASYNCIO_FILE_TYPE_FILE);
    struct stat st;
    assert_sys(stat(p, &st));
    assert_int_equal(op.metadata.mtime_sec, st.st_mtim.tv_sec);
    assert_int_equal(op.metadata.mtime_nsec, st.st_mtim.tv_nsec);
    asyncio_fs_op_drop(&op);

    assert_ok(asyncio_fs_metadata_init(&op, g_dir, true));
    assert_ok(run(rt, asyncio_fs_op_poll_fn, &op));
    assert_int_equal(op.metadata.type, ASYNCIO_FILE_TYPE_DIR);
    asyncio_fs_op_drop(&op);
    assert_err(run_op(rt, &op, asyncio_fs_metadata_init(&op, path_in(p, "nope"), true)),
               ASYNCIO_ENOENT);
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

static void test_fs_metadata_without_following_links_reports_a_symlink(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256], l[256];
    assert_ok(write_str(rt, path_in(p, "m"), "12345"));
    assert_sys(symlink(p, path_in(l, "link")));
    asyncio_fs_op op;
    assert_ok(asyncio_fs_metadata_init(&op, l, false));
    assert_ok(run(rt, asyncio_fs_op_poll_fn, &op));
    assert_int_equal(op.metadata.type, ASYNCIO_FILE_TYPE_SYMLINK);
    asyncio_fs_op_drop(&op);
    assert_ok(asyncio_fs_metadata_init(&op, l, true)); /* followed: the file */
    assert_ok(run(rt, asyncio_fs_op_poll_fn, &op));
    assert_int_equal(op.metadata.type, ASYNCIO_FILE_TYPE_FILE);
    assert_int_equal(op.metadata.size, 5);
    asyncio_fs_op_drop(&op);
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* Lists a directory into a bitmask of the names "f0".."f99" seen (+ counts others). */
typedef struct list_task {
    asyncio_read_dir rd;
    uint64_t seen[2];
    int others;
    int dirs;
} list_task;

static int list_task_poll(void *p, asyncio_context *cx)
{
    list_task *t = p;
    for (;;) {
        asyncio_dir_entry e;
        int rc = asyncio_read_dir_poll_next(&t->rd, cx, &e);
        if (rc != 0)
            return rc;
        if (e.name == NULL)
            return 0;
        int i;
        if (sscanf(e.name, "f%d", &i) == 1 && i >= 0 && i < 100) {
            t->seen[i / 64] |= 1ull << (i % 64);
            assert_int_equal(e.type, ASYNCIO_FILE_TYPE_FILE);
        } else {
            t->others++;
            t->dirs += e.type == ASYNCIO_FILE_TYPE_DIR;
        }
    }
}

static void test_fs_read_dir_sees_created_files(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256];
    for (int i = 0; i < 100; i++) { /* more than one batch */
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        assert_ok(write_str(rt, path_in(p, name), "x"));
    }
    asyncio_fs_op op;
    assert_ok(run_op(rt, &op, asyncio_fs_create_dir_all_init(&op, path_in(p, "sub"), 0)));
    list_task t = {0};
    assert_ok(asyncio_read_dir_init(&t.rd, g_dir));
    assert_ok(run(rt, list_task_poll, &t));
    asyncio_read_dir_drop(&t.rd);
    assert_true(t.seen[0] == UINT64_MAX && t.seen[1] == (1ull << 36) - 1);
    assert_int_equal(t.others, 1);
    assert_int_equal(t.dirs, 1);

    list_task missing = {0};
    assert_ok(asyncio_read_dir_init(&missing.rd, path_in(p, "nope")));
    assert_err(run(rt, list_task_poll, &missing), ASYNCIO_ENOENT);
    asyncio_read_dir_drop(&missing.rd);
    list_task notdir = {0};
    assert_ok(asyncio_read_dir_init(&notdir.rd, path_in(p, "f1")));
    assert_err(run(rt, list_task_poll, &notdir), ASYNCIO_ENOTDIR);
    asyncio_read_dir_drop(&notdir.rd);
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* Lists g_dir and checks it holds exactly one entry, named `want`. */
typedef struct one_name_task {
    asyncio_read_dir rd;
    const char *want;
    int entries, matches;
} one_name_task;

static int one_name_poll(void *p, asyncio_context *cx)
{
    one_name_task *t = p;
    for (;;) {
        asyncio_dir_entry e;
        int rc = asyncio_read_dir_poll_next(&t->rd, cx, &e);
        if (rc != 0 || e.name == NULL)
            return rc;
        t->entries++;
        t->matches += strcmp(e.name, t->want) == 0;
    }
}

/* UTF-8 names (Windows converts them to UTF-16 and back) round-trip unchanged. */
static void test_fs_utf8_names_round_trip_through_files_and_listings(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256], q[256];
    const char *name = "h\xc3\xa9llo-\xe6\x97\xa5\xe6\x9c\xac-\xf0\x9f\x98\x80.txt";
    assert_ok(write_str(rt, path_in(p, name), "caf\xc3\xa9"));
    expect_content(rt, p, "caf\xc3\xa9");
    one_name_task t = {.want = name};
    assert_ok(asyncio_read_dir_init(&t.rd, g_dir));
    assert_ok(run(rt, one_name_poll, &t));
    asyncio_read_dir_drop(&t.rd);
    assert_int_equal(t.entries, 1);
    assert_int_equal(t.matches, 1);
    asyncio_fs_op op;
    assert_ok(run_op(rt, &op, asyncio_fs_rename_init(&op, p, path_in(q, "\xc3\xbc"))));
    expect_content(rt, q, "caf\xc3\xa9");
    assert_ok(run_op(rt, &op, asyncio_fs_remove_init(&op, q)));
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

static void test_fs_create_dir_all_remove_and_rename(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256], q[256];
    asyncio_fs_op op;
    assert_ok(run_op(rt, &op, asyncio_fs_create_dir_all_init(&op, path_in(p, "a/b/c/"), 0700)));
    struct stat st;
    assert_sys(stat(path_in(p, "a/b/c"), &st));
    assert_true(S_ISDIR(st.st_mode));
    /* Again: an existing directory is success. */
    assert_ok(run_op(rt, &op, asyncio_fs_create_dir_all_init(&op, p, 0)));
    /* A file in the way. */
    assert_ok(write_str(rt, path_in(p, "a/file"), "x"));
    assert_err(run_op(rt, &op, asyncio_fs_create_dir_all_init(&op, p, 0)), ASYNCIO_EEXIST);
    assert_err(run_op(rt, &op, asyncio_fs_create_dir_all_init(&op, path_in(p, "a/file/d"), 0)),
               ASYNCIO_ENOTDIR);

    /* Rename a file, then a directory. */
    assert_ok(run_op(rt, &op,
                     asyncio_fs_rename_init(&op, path_in(p, "a/file"), path_in(q, "a/b/moved"))));
    expect_content(rt, q, "x");
    assert_err(stat(p, &st), -1);
    assert_ok(run_op(rt, &op, asyncio_fs_rename_init(&op, path_in(p, "a/b/c"), path_in(q, "c2"))));
    assert_sys(stat(q, &st));
    assert_err(run_op(rt, &op, asyncio_fs_rename_init(&op, path_in(p, "nope"), q)), ASYNCIO_ENOENT);

    /* Remove: a non-empty directory refuses, a file and an empty directory go. */
    assert_err(run_op(rt, &op, asyncio_fs_remove_init(&op, path_in(p, "a/b"))), ASYNCIO_ENOTEMPTY);
    assert_ok(run_op(rt, &op, asyncio_fs_remove_init(&op, path_in(p, "a/b/moved"))));
    assert_ok(run_op(rt, &op, asyncio_fs_remove_init(&op, path_in(p, "a/b"))));
    assert_ok(run_op(rt, &op, asyncio_fs_remove_init(&op, path_in(p, "c2"))));
    assert_err(run_op(rt, &op, asyncio_fs_remove_init(&op, path_in(p, "c2"))), ASYNCIO_ENOENT);
    assert_err(stat(path_in(p, "a/b"), &st), -1);
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* ------------------------------------------------------------------------ */
/* Files: read / write / sync / metadata, bufio, copy                        */

/* Reads the file to its end (read_to_end into buf). */
typedef struct slurp_task {
    asyncio_read_to_end rte;
} slurp_task;

static int slurp_poll(void *p, asyncio_context *cx)
{
    return asyncio_read_to_end_poll(&((slurp_task *)p)->rte, cx);
}

static void test_fs_file_write_sync_metadata_and_read_back(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256];
    int rc;
    /* More than one job's worth, so write_all loops over background writes. */
    size_t n = 3 * ASYNCIO_FILE_BUF_SIZE + 123;
    char *data = malloc(n + 1), *back = malloc(n + 16);
    assert_non_null(data);
    assert_non_null(back);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)('a' + i % 26);
    data[n] = '\0';
    asyncio_file *f = open_file(rt, path_in(p, "rw"),
                                ASYNCIO_OPEN_READ | ASYNCIO_OPEN_WRITE | ASYNCIO_OPEN_CREATE, &rc);
    assert_ok(rc);
    assert_ok(file_write_str(rt, f, data));
    assert_ok(asyncio_file_close(f));

    /* Read back through a fresh handle with read_to_end. */
    f = open_file(rt, p, ASYNCIO_OPEN_READ, &rc);
    assert_ok(rc);
    slurp_task s;
    asyncio_read_to_end_init(&s.rte, asyncio_file_reader(f), back, n + 16);
    assert_ok(run(rt, slurp_poll, &s));
    assert_int_equal(s.rte.done, n);
    assert_memory_equal(back, data, n);
    assert_ok(asyncio_file_close(f));
    free(data);
    free(back);
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* sync + metadata on an open file. */
typedef struct sync_md_task {
    asyncio_file *f;
    asyncio_fs_metadata md;
    int step;
} sync_md_task;

static int sync_md_poll(void *p, asyncio_context *cx)
{
    sync_md_task *t = p;
    int rc;
    switch (t->step) {
    case 0:
        if ((rc = asyncio_file_poll_sync(t->f, cx, false)) != 0)
            return rc;
        t->step = 1;
        /* fall through */
    case 1:
        if ((rc = asyncio_file_poll_sync(t->f, cx, true)) != 0)
            return rc;
        t->step = 2;
        /* fall through */
    default:
        return asyncio_file_poll_metadata(t->f, cx, &t->md);
    }
}

static void test_fs_file_sync_and_metadata_see_background_writes(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256];
    int rc;
    asyncio_file *f = open_file(rt, path_in(p, "s"), ASYNCIO_OPEN_WRITE | ASYNCIO_OPEN_CREATE, &rc);
    assert_ok(rc);
    /* write_all only: the last background write is still in flight when sync starts. */
    write_task w = {.f = f};
    asyncio_write_all_init(&w.wa, asyncio_file_writer(f), "0123456789", 10);
    assert_ok(run(rt, write_all_only_poll, &w.wa));
    sync_md_task t = {.f = f};
    assert_ok(run(rt, sync_md_poll, &t));
    assert_int_equal(t.md.size, 10);
    assert_int_equal(t.md.type, ASYNCIO_FILE_TYPE_FILE);
    assert_ok(asyncio_file_close(f));

    /* A write to a read-only file: the background write's EBADF surfaces at flush. */
    f = open_file(rt, p, ASYNCIO_OPEN_READ, &rc);
    assert_ok(rc);
    asyncio_write_all_init(&w.wa, asyncio_file_writer(f), "x", 1);
    w.f = f;
    w.step = 0;
    assert_err(run(rt, write_task_poll, &w), ASYNCIO_EBADF);
    assert_ok(asyncio_file_close(f));
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* Counts lines through a buffered reader over a file. */
typedef struct lines_task {
    asyncio_buf_reader br;
    asyncio_lines it;
    int count;
    bool ok;
} lines_task;

static int lines_poll(void *p, asyncio_context *cx)
{
    lines_task *t = p;
    for (;;) {
        const char *line;
        size_t len;
        int rc = asyncio_lines_poll_next(&t->it, cx, &line, &len);
        if (rc != 0)
            return rc;
        if (line == NULL)
            return 0;
        char want[32];
        int wl = snprintf(want, sizeof want, "line %d", t->count);
        t->ok = t->ok && (size_t)wl == len && memcmp(line, want, len) == 0;
        t->count++;
    }
}

/* Reads `path` back through a buffered line iterator: it holds `expect` lines "line <i>". */
static void assert_file_lines(asyncio_runtime *rt, const char *path, int expect)
{
    int rc;
    asyncio_file *f = open_file(rt, path, ASYNCIO_OPEN_READ, &rc);
    assert_ok(rc);
    lines_task t = {.ok = true};
    assert_ok(asyncio_buf_reader_init(&t.br, asyncio_file_reader(f), NULL, 0));
    asyncio_lines_init(&t.it, &t.br, 0);
    assert_ok(run(rt, lines_poll, &t));
    assert_int_equal(t.count, expect);
    assert_true(t.ok);
    asyncio_buf_reader_free(&t.br);
    assert_ok(asyncio_file_close(f));
}

static void test_fs_buffered_reader_reads_lines_from_a_file(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256];
    size_t cap = 20000 * 12, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (int i = 0; i < 20000; i++)
        len += (size_t)snprintf(text + len, cap - len, "line %d\n", i);
    asyncio_fs_op op;
    assert_ok(run_op(rt, &op, asyncio_fs_write_file_init(&op, path_in(p, "lines"), text, len)));
    free(text);
    assert_file_lines(rt, p, 20000);
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* Writes numbered lines through a buffered writer over a file, then shuts it down. */
typedef struct bufw_task {
    asyncio_buf_writer bw;
    asyncio_write_all wa;
    char line[32];
    int i, n;
    bool writing;
} bufw_task;

static int bufw_poll(void *p, asyncio_context *cx)
{
    bufw_task *t = p;
    for (;;) {
        if (t->writing) {
            int rc = asyncio_write_all_poll(&t->wa, cx);
            if (rc != 0)
                return rc;
            t->writing = false;
            t->i++;
        }
        if (t->i == t->n) /* flushes the buffer, then the file (waits for its write) */
            return asyncio_buf_writer_poll_shutdown(&t->bw, cx);
        int len = snprintf(t->line, sizeof t->line, "line %d\n", t->i);
        asyncio_write_all_init(&t->wa, asyncio_buf_writer_as_writer(&t->bw), t->line, (size_t)len);
        t->writing = true;
    }
}

static void test_fs_buffered_writer_writes_through_to_a_file(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256];
    int rc;
    asyncio_file *f =
        open_file(rt, path_in(p, "bw"), ASYNCIO_OPEN_WRITE | ASYNCIO_OPEN_CREATE, &rc);
    assert_ok(rc);
    bufw_task t = {.n = 5000};
    assert_ok(asyncio_buf_writer_init(&t.bw, asyncio_file_writer(f), NULL, 0));
    assert_ok(run(rt, bufw_poll, &t));
    assert_int_equal(asyncio_buf_writer_buffered(&t.bw), 0);
    assert_ok(asyncio_buf_writer_free(&t.bw));
    assert_ok(asyncio_file_close(f));
    assert_file_lines(rt, p, 5000);
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* Copies a file into a TCP stream while draining the other end. */
typedef struct copy_task {
    asyncio_file *f;
    int client_fd, server_fd;
    asyncio_tcp_stream out, in;
    bool started, copied;
    asyncio_copy copy;
    unsigned char buf[65536];
    size_t received;
    bool match;
} copy_task;

static unsigned char pat(size_t i)
{
    return (unsigned char)((i * 131u) ^ (i >> 9));
}

static int copy_task_poll(void *p, asyncio_context *cx)
{
    copy_task *t = p;
    if (!t->started) {
        assert_ok(asyncio_tcp_stream_from_fd(&t->out, t->client_fd));
        assert_ok(asyncio_tcp_stream_from_fd(&t->in, t->server_fd));
        asyncio_copy_init(&t->copy, asyncio_file_reader(t->f), asyncio_tcp_stream_writer(&t->out));
        t->started = true;
    }
    if (!t->copied) {
        int rc = asyncio_copy_poll(&t->copy, cx);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            t->copied = true;
            assert_ok(asyncio_tcp_stream_poll_shutdown(&t->out, cx));
        }
    }
    for (;;) {
        size_t n;
        int rc = asyncio_tcp_stream_poll_read(&t->in, cx, t->buf, sizeof t->buf, &n);
        if (rc != 0)
            return rc;
        if (n == 0)
            return 0;
        for (size_t i = 0; i < n; i++)
            t->match = t->match && t->buf[i] == pat(t->received + i);
        t->received += n;
    }
}

static void test_fs_copy_from_a_file_to_a_socket_uses_sendfile(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256];
    size_t n = (1u << 20) + 777;
    unsigned char *data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = pat(i);
    asyncio_fs_op op;
    assert_ok(run_op(rt, &op, asyncio_fs_write_file_init(&op, path_in(p, "blob"), data, n)));
    free(data);
    int rc;
    asyncio_file *f = open_file(rt, p, ASYNCIO_OPEN_READ, &rc);
    assert_ok(rc);
    copy_task *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->f = f;
    t->match = true;
    support_tcp_pair(&t->client_fd, &t->server_fd);
    uint64_t before = atomic_load(&asyncio__zero_copy_sendfile_bytes);
    assert_ok(run(rt, copy_task_poll, t));
    assert_int_equal(t->received, n);
    assert_true(t->match);
    assert_int_equal(t->copy.path, ASYNCIO_COPY_PATH_SENDFILE);
    assert_int_equal(t->copy.zero_copy, n);
    assert_true(atomic_load(&asyncio__zero_copy_sendfile_bytes) - before >= n);
    asyncio_copy_drop(&t->copy);
    assert_ok(asyncio_tcp_stream_close(&t->out));
    assert_ok(asyncio_tcp_stream_close(&t->in));
    free(t);
    assert_ok(asyncio_file_close(f));
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* Requests the runtime running this task has put on its io_uring (0 on other backends). */
static uint64_t ring_requests(void)
{
    asyncio__driver *d = asyncio__driver_current();
    assert_non_null(d);
    return atomic_load(&d->comp.submitted);
}

/*
 * The first poll of an operation that would queue behind the blocker: on the
 * pool it is PENDING. Where the io_uring completion path takes the operation
 * (read_file, a file's read) it does not wait for the pool, and on the
 * multi-thread runtime another worker may submit and reap it before this poll
 * looks: then it is READY (0), and only then, with a request on the ring.
 */
static void expect_queued(int rc, uint64_t ring_before)
{
    if (rc == ASYNCIO_PENDING)
        return;
    assert_int_equal(rc, 0);
    assert_true(ring_requests() > ring_before);
}

/*
 * A file that read ahead (a read polled again with a smaller buffer) does not offer its fd.
 * The pool's only thread is kept busy during the first poll, so its read job stays queued
 * and the poll is pending for sure. On the io_uring completion path the read is a ring
 * request, which another worker of a multi-thread runtime may reap before the first poll
 * looks (expect_queued): then that attempt `raced` and the test starts over with the file
 * opened again.
 */
typedef struct readahead_task {
    asyncio_file *f;
    asyncio_blocking_handle *busy;
    char buf[16];
    int step;
    size_t n;
    bool raced;
    int finished_before; /* g_finished when this attempt's blocker was spawned */
} readahead_task;

static int readahead_poll(void *p, asyncio_context *cx)
{
    readahead_task *t = p;
    if (t->step == 0) {
        atomic_store(&g_release, 0);
        atomic_store(&g_started, 0);
        t->finished_before = atomic_load(&g_finished);
        assert_ok(asyncio_spawn_blocking(asyncio_runtime_current(), blocker, NULL, &t->busy));
        while (!atomic_load(&g_started))
            sched_yield();
        uint64_t before = ring_requests();
        int rc = asyncio_file_poll_read(t->f, cx, t->buf, 10, &t->n);
        expect_queued(rc, before);
        atomic_store(&g_release, 1); /* now the read job (10 bytes) may run */
        if (rc == 0) { /* read whole on the ring before this poll looked: nothing ahead */
            /* The next attempt resets g_release: this blocker must be gone by then. */
            while (atomic_load(&g_finished) == t->finished_before)
                sched_yield();
            asyncio_blocking_handle_drop(t->busy);
            t->raced = true;
            return 0;
        }
        t->step = 1;
        return ASYNCIO_PENDING;
    }
    /* Polled again with a 4-byte buffer: 10 bytes were read, 6 stay ahead. */
    int rc = asyncio_file_poll_read(t->f, cx, t->buf, 4, &t->n);
    if (rc != ASYNCIO_PENDING)
        asyncio_blocking_handle_drop(t->busy);
    return rc;
}

static void test_fs_read_ahead_is_served_first_and_given_back_before_a_write(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime_options o = {.blocking_max_threads = 1};
    asyncio_runtime *rt = support_runtime_new(&o);
    char p[256];
    int rc;
    assert_ok(write_str(rt, path_in(p, "ra"), "0123456789abcdef"));
    asyncio_file *f = NULL;
    readahead_task t = {.raced = true};
    for (int attempt = 0; attempt < 100 && t.raced; attempt++) {
        if (f != NULL)
            assert_ok(asyncio_file_close(f));
        f = open_file(rt, p, ASYNCIO_OPEN_READ | ASYNCIO_OPEN_WRITE, &rc);
        assert_ok(rc);
        t = (readahead_task){.f = f};
        assert_ok(run(rt, readahead_poll, &t));
    }
    assert_false(t.raced);
    assert_int_equal(t.n, 4);
    assert_memory_equal(t.buf, "0123", 4);
    assert_int_equal(asyncio_reader_raw_fd(asyncio_file_reader(f)), -1);
    /* The write lands at the logical position 4, not at the kernel's 10. */
    assert_ok(file_write_str(rt, f, "XY"));
    assert_int_equal(asyncio_reader_raw_fd(asyncio_file_reader(f)), asyncio_file_fd(f));
    assert_ok(asyncio_file_close(f));
    expect_content(rt, p, "0123XY6789abcdef");
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

/* ------------------------------------------------------------------------ */
/* Cancellation                                                              */

/* Starts an op (one poll: pending) and drops it while its job may still run. */
typedef struct start_drop_task {
    asyncio_fs_op op;
    asyncio_file *f;
    char buf[64];
} start_drop_task;

static int start_drop_poll(void *p, asyncio_context *cx)
{
    start_drop_task *t = p;
    int rc = asyncio_fs_op_poll(&t->op, cx);
    asyncio_fs_op_drop(&t->op); /* cancel, whatever the state */
    if (rc < 0)
        return rc;
    if (t->f != NULL) { /* and a file read in flight, closed at once */
        size_t n;
        rc = asyncio_file_poll_read(t->f, cx, t->buf, sizeof t->buf, &n);
        asyncio_file_close(t->f);
        t->f = NULL;
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void test_fs_dropping_pending_operations_leaks_nothing(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    asyncio_runtime *rt = new_rt();
    char p[256];
    assert_ok(write_str(rt, path_in(p, "c"), "some bytes"));
    for (int i = 0; i < 50; i++) {
        int rc;
        start_drop_task t = {0};
        t.f = open_file(rt, p, ASYNCIO_OPEN_READ, &rc);
        assert_ok(rc);
        asyncio_open_options o = {.flags = ASYNCIO_OPEN_READ};
        switch (i % 3) { /* an open (its fd), a read_file (its buffer), a listing */
        case 0:
            assert_ok(asyncio_fs_open_init(&t.op, p, &o));
            break;
        case 1:
            assert_ok(asyncio_fs_read_file_init(&t.op, p, 100));
            break;
        default:
            assert_ok(asyncio_fs_metadata_init(&t.op, p, true));
            break;
        }
        assert_ok(run(rt, start_drop_poll, &t));
    }
    /* The listing iterator too. */
    asyncio_read_dir rd;
    assert_ok(asyncio_read_dir_init(&rd, g_dir));
    asyncio_read_dir_drop(&rd);
    assert_ok(asyncio_runtime_free(rt)); /* waits for the jobs; teardown counts blocks and fds */
    support_tmpdir_remove();
}

typedef struct queued_task {
    asyncio_fs_op op;
    asyncio_read_dir rd;
    asyncio_file *f;
    char buf[8];
} queued_task;

static int queued_poll(void *p, asyncio_context *cx)
{
    queued_task *t = p;
    uint64_t before = ring_requests();
    expect_queued(asyncio_fs_op_poll(&t->op, cx), before);
    asyncio_fs_op_drop(&t->op); /* dropped while still queued behind the blocker (or on the ring) */
    asyncio_dir_entry e;
    assert_int_equal(asyncio_read_dir_poll_next(&t->rd, cx, &e), ASYNCIO_PENDING);
    asyncio_read_dir_drop(&t->rd);
    size_t n;
    before = ring_requests();
    expect_queued(asyncio_file_poll_read(t->f, cx, t->buf, sizeof t->buf, &n), before);
    assert_ok(asyncio_file_close(t->f));
    return 0;
}

static void test_fs_jobs_cancelled_at_shutdown_release_their_blocks(void **state)
{
    (void)state;
    support_tmpdir_make("asyncio_fs_");
    atomic_store(&g_release, 0);
    atomic_store(&g_started, 0);
    asyncio_runtime_options o = {.blocking_max_threads = 1};
    asyncio_runtime *rt = support_runtime_new(&o);
    char p[256];
    assert_ok(write_str(rt, path_in(p, "q"), "queued"));
    int rc;
    queued_task t = {0};
    t.f = open_file(rt, p, ASYNCIO_OPEN_READ, &rc);
    assert_ok(rc);
    asyncio_blocking_handle *h;
    assert_ok(asyncio_spawn_blocking(rt, blocker, NULL, &h));
    while (!atomic_load(&g_started))
        sched_yield();
    assert_ok(asyncio_fs_read_file_init(&t.op, p, 100));
    assert_ok(asyncio_read_dir_init(&t.rd, g_dir));
    assert_ok(run(rt, queued_poll, &t));
    /* Shutdown cancels the three queued jobs: the cleanup hook frees their blocks. */
    atomic_store(&g_release, 1);
    asyncio_runtime_shutdown(rt);
    asyncio_blocking_handle_drop(h);
    assert_ok(asyncio_runtime_free(rt));
    support_tmpdir_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_fs_write_file_then_read_file_round_trips),
        support_test(test_fs_read_file_over_the_size_limit_is_efbig),
        support_test(test_fs_read_file_of_a_file_without_a_size_is_bounded_by_the_bytes_read),
        support_test(test_fs_open_create_new_on_existing_file_fails_with_eexist),
        support_test(test_fs_open_truncate_empties_and_append_adds_to_the_end),
        support_test(test_fs_open_invalid_flag_combinations_are_einval),
        support_test(test_fs_metadata_reports_size_type_and_mtime),
        support_test(test_fs_metadata_without_following_links_reports_a_symlink),
        support_test(test_fs_read_dir_sees_created_files),
        support_test(test_fs_utf8_names_round_trip_through_files_and_listings),
        support_test(test_fs_create_dir_all_remove_and_rename),
        support_test(test_fs_file_write_sync_metadata_and_read_back),
        support_test(test_fs_file_sync_and_metadata_see_background_writes),
        support_test(test_fs_buffered_reader_reads_lines_from_a_file),
        support_test(test_fs_buffered_writer_writes_through_to_a_file),
        support_test(test_fs_copy_from_a_file_to_a_socket_uses_sendfile),
        support_test(test_fs_read_ahead_is_served_first_and_given_back_before_a_write),
        support_test(test_fs_dropping_pending_operations_leaks_nothing),
        support_test(test_fs_jobs_cancelled_at_shutdown_release_their_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
