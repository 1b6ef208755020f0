/*
 * Child processes: exit codes and signals; exec errors come back from spawn;
 * pipes work as AsyncRead / AsyncWrite (buffered reader, copy); environment,
 * working directory and /dev/null stdio; the child sees only fds 0..2; kill,
 * kill-on-drop and the background reaping of dropped handles; no zombie and
 * no fd left after many spawns; children of other code are never reaped;
 * and, under ASYNCIO_PROCESS_WAIT=signal (ctest process.sigchld*), the same
 * suite over the SIGCHLD fallback.
 *
 * The test binary doubles as a helper child: `test_process --list-fds`
 * prints its own open fds, one per line.
 */
#include <dirent.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "asyncio/bufio.h"
#include "asyncio/io_util.h"
#include "asyncio/process.h"
#include "asyncio/runtime.h"
#include "asyncio/signal.h"
#include "asyncio/time.h"
#include "platform/process_os.h"
#include "support.h"

static char g_self[PATH_MAX]; /* this binary, for --list-fds */

/* Helper child mode: print every open fd except the directory stream's own. */
static int list_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 2;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(d))
            continue;
        printf("%s\n", de->d_name);
    }
    closedir(d);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Running a child to completion                                             */

#define OUT_CAP 65536

/* Reads stdout (if piped) to the end, then waits. */
typedef struct capture {
    asyncio_process *p;
    asyncio_read_to_end rd;
    int step;
    asyncio_exit_status st;
    char out[OUT_CAP + 1];
} capture;

static int capture_poll(void *fut, asyncio_context *cx)
{
    capture *c = fut;
    if (c->step == 0) {
        asyncio_read_to_end_init(&c->rd, asyncio_process_stdout(c->p), c->out, OUT_CAP);
        c->step = 1;
    }
    if (c->step == 1) {
        int rc = asyncio_read_to_end_poll(&c->rd, cx);
        if (rc == ASYNCIO_EBADF) /* stdout not piped */
            c->rd.done = 0;
        else if (rc != 0)
            return rc;
        c->out[c->rd.done] = '\0';
        c->step = 2;
    }
    return asyncio_process_poll_wait(c->p, cx, &c->st);
}

/* Spawns with o, captures stdout, waits, frees. Returns the spawn's or the wait's error. */
static int run_capture(asyncio_runtime *rt, const asyncio_process_options *o, capture *c)
{
    memset(c, 0, sizeof *c);
    int rc = asyncio_process_spawn(&c->p, o);
    if (rc < 0)
        return rc;
    rc = support_run_future(rt, capture_poll, c);
    asyncio_process_free(c->p);
    return rc;
}

/* True when this process has no child at all (waitid with WNOWAIT reaps nothing). */
static bool no_children_left(void)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD;
}

static asyncio_process_options piped(const char *const *argv)
{
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    o.stdout_mode = ASYNCIO_STDIO_PIPE;
    return o;
}

/* ------------------------------------------------------------------------ */
/* Exit status and exec errors                                               */

static void test_process_true_exits_with_code_zero(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"true", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    capture *c = malloc(sizeof *c);
    assert_ok(run_capture(rt, &o, c));
    assert_int_equal(c->st.code, 0);
    assert_int_equal(c->st.signal, 0);
    free(c);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_process_exit_code_is_reported(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"/bin/sh", "-c", "exit 42", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    capture *c = malloc(sizeof *c);
    assert_ok(run_capture(rt, &o, c));
    assert_int_equal(c->st.code, 42);
    assert_int_equal(c->st.signal, 0);
    free(c);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_process_missing_program_fails_spawn_with_enoent(void **state)
{
    (void)state;
    const char *argv[] = {"asyncio-no-such-program-here", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    asyncio_process *p = (asyncio_process *)&o; /* must stay untouched */
    assert_err(asyncio_process_spawn(&p, &o), ASYNCIO_ENOENT);
    assert_ptr_equal(p, (asyncio_process *)&o);
    const char *abs_argv[] = {"/nonexistent/dir/prog", NULL};
    o.argv = abs_argv;
    assert_err(asyncio_process_spawn(&p, &o), ASYNCIO_ENOENT);
}

static void test_process_non_executable_file_fails_spawn_with_eacces(void **state)
{
    (void)state;
    char path[] = "/tmp/asyncio-proc-XXXXXX";
    int fd = mkstemp(path);
    assert_sys(fd);
    assert_sys(write(fd, "#!/bin/sh\nexit 0\n", 17));
    close(fd);
    chmod(path, 0644); /* readable, not executable */
    const char *argv[] = {path, NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    asyncio_process *p;
    int rc = asyncio_process_spawn(&p, &o);
    unlink(path);
    assert_err(rc, ASYNCIO_EACCES);
}

static void test_process_missing_cwd_fails_spawn(void **state)
{
    (void)state;
    const char *argv[] = {"true", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    o.cwd = "/nonexistent/asyncio/dir";
    asyncio_process *p;
    assert_err(asyncio_process_spawn(&p, &o), ASYNCIO_ENOENT);
}

static void test_process_bad_options_are_einval(void **state)
{
    (void)state;
    asyncio_process *p;
    const char *empty[] = {NULL};
    const char *argv[] = {"true", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(empty);
    assert_err(asyncio_process_spawn(&p, &o), ASYNCIO_EINVAL);
    assert_err(asyncio_process_spawn(&p, NULL), ASYNCIO_EINVAL);
    o.argv = argv;
    assert_err(asyncio_process_spawn(NULL, &o), ASYNCIO_EINVAL);
    o.stdout_mode = (asyncio_stdio)7;
    assert_err(asyncio_process_spawn(&p, &o), ASYNCIO_EINVAL);
    o.stdout_mode = ASYNCIO_STDIO_INHERIT;
    o.flags = 0x80;
    assert_err(asyncio_process_spawn(&p, &o), ASYNCIO_EINVAL);
    o.flags = 0;
    const char *bad_env[] = {"=x", NULL};
    o.env = bad_env;
    assert_err(asyncio_process_spawn(&p, &o), ASYNCIO_EINVAL);
    asyncio_exit_status st;
    assert_err(asyncio_process_try_wait(NULL, &st), ASYNCIO_EINVAL);
    assert_err(asyncio_process_kill(NULL, SIGTERM), ASYNCIO_EINVAL);
    assert_err(asyncio_process_close_pipe(NULL, 0), ASYNCIO_EINVAL);
    asyncio_process_free(NULL);
}

/* ------------------------------------------------------------------------ */
/* kill, try_wait                                                            */

static void test_process_killed_child_reports_the_signal(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"sleep", "100", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    capture *c = malloc(sizeof *c);
    memset(c, 0, sizeof *c);
    assert_ok(asyncio_process_spawn(&c->p, &o));
    asyncio_exit_status st;
    assert_err(asyncio_process_try_wait(c->p, &st), ASYNCIO_EAGAIN);
    assert_ok(asyncio_process_kill(c->p, SIGTERM));
    assert_ok(support_run_future(rt, capture_poll, c));
    assert_int_equal(c->st.signal, SIGTERM);
    assert_int_equal(c->st.code, -1);
    /* Reaped: its pid may be someone else's now, so kill refuses; the status stays. */
    assert_err(asyncio_process_kill(c->p, SIGTERM), -ESRCH);
    assert_ok(asyncio_process_try_wait(c->p, &st));
    assert_int_equal(st.signal, SIGTERM);
    asyncio_process_free(c->p);
    free(c);
    assert_ok(asyncio_runtime_free(rt));
}

/* A wait under asyncio_timeout: too long for `sleep`, in time for `true`. */
typedef struct timed_wait {
    asyncio_process *p;
    asyncio_timeout t;
    bool started;
} timed_wait;

static int timed_wait_poll(void *fut, asyncio_context *cx)
{
    timed_wait *w = fut;
    if (!w->started) {
        asyncio_timeout_init(&w->t, asyncio_process_poll_wait_fn, w->p, 50);
        w->started = true;
    }
    int rc = asyncio_timeout_poll(&w->t, cx);
    if (rc != ASYNCIO_PENDING)
        asyncio_timeout_drop(&w->t);
    return rc;
}

static void test_process_wait_under_a_timeout_times_out_then_completes_after_kill(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"sleep", "1000", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    timed_wait w = {0};
    assert_ok(asyncio_process_spawn(&w.p, &o));
    assert_err(support_run_future(rt, timed_wait_poll, &w), ASYNCIO_ETIMEDOUT);
    asyncio_exit_status st;
    assert_err(asyncio_process_try_wait(w.p, &st), ASYNCIO_EAGAIN);
    assert_ok(asyncio_process_kill(w.p, SIGKILL));
    capture *c = calloc(1, sizeof *c);
    c->p = w.p;
    c->step = 2;
    assert_ok(support_run_future(rt, capture_poll, c)); /* a wait after a timed-out one */
    assert_int_equal(c->st.signal, SIGKILL);
    asyncio_process_free(w.p);
    free(c);
    /* A child that exits in time: the status comes from try_wait afterwards. */
    const char *quick[] = {"/bin/sh", "-c", "exit 9", NULL};
    o.argv = quick;
    w = (timed_wait){0};
    assert_ok(asyncio_process_spawn(&w.p, &o));
    w.started = true;
    asyncio_timeout_init(&w.t, asyncio_process_poll_wait_fn, w.p, 60000);
    assert_ok(support_run_future(rt, timed_wait_poll, &w));
    assert_ok(asyncio_process_try_wait(w.p, &st));
    assert_int_equal(st.code, 9);
    asyncio_process_free(w.p);
    assert_ok(asyncio_runtime_free(rt));
}

/* ------------------------------------------------------------------------ */
/* Pipes                                                                     */

static void test_process_stdout_pipe_reads_the_output(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"/bin/sh", "-c", "echo hello; echo world >&2; echo bye", NULL};
    asyncio_process_options o = piped(argv);
    o.stderr_mode = ASYNCIO_STDIO_NULL;
    capture *c = malloc(sizeof *c);
    assert_ok(run_capture(rt, &o, c));
    assert_string_equal(c->out, "hello\nbye\n");
    assert_int_equal(c->st.code, 0);
    free(c);
    assert_ok(asyncio_runtime_free(rt));
}

/* Reads the child's stderr line by line through the buffered reader. */
typedef struct lines_fut {
    asyncio_process *p;
    asyncio_buf_reader br;
    asyncio_lines it;
    int count;
    char last[64];
    asyncio_exit_status st;
    bool eof;
} lines_fut;

static int lines_poll(void *fut, asyncio_context *cx)
{
    lines_fut *f = fut;
    while (!f->eof) {
        const char *line;
        size_t len;
        int rc = asyncio_lines_poll_next(&f->it, cx, &line, &len);
        if (rc != 0)
            return rc;
        if (line == NULL) {
            f->eof = true;
            break;
        }
        f->count++;
        snprintf(f->last, sizeof f->last, "%.*s", (int)len, line);
    }
    return asyncio_process_poll_wait(f->p, cx, &f->st);
}

static void test_process_stderr_lines_through_the_buffered_reader(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"/bin/sh", "-c", "for i in 1 2 3 4 5; do echo line$i >&2; done; echo out",
                          NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    o.stderr_mode = ASYNCIO_STDIO_PIPE;
    o.stdout_mode = ASYNCIO_STDIO_NULL;
    lines_fut f = {0};
    assert_ok(asyncio_process_spawn(&f.p, &o));
    /* stdout is not a pipe: its reader says so. */
    char b;
    size_t n;
    asyncio_waker none = ASYNCIO_WAKER_EMPTY;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&none);
    assert_err(asyncio_poll_read(asyncio_process_stdout(f.p), &cx, &b, 1, &n), ASYNCIO_EBADF);
    assert_ok(asyncio_buf_reader_init(&f.br, asyncio_process_stderr(f.p), NULL, 256));
    asyncio_lines_init(&f.it, &f.br, 0);
    assert_ok(support_run_future(rt, lines_poll, &f));
    assert_int_equal(f.count, 5);
    assert_string_equal(f.last, "line5");
    assert_int_equal(f.st.code, 0);
    asyncio_buf_reader_free(&f.br);
    asyncio_process_free(f.p);
    assert_ok(asyncio_runtime_free(rt));
}

/* Writes `total` bytes to cat's stdin then shuts it down; a task of its own. */
typedef struct feeder {
    asyncio_process *p;
    unsigned char *data;
    size_t total;
    asyncio_write_all w;
    int step;
} feeder;

static int feeder_poll(void *state, asyncio_context *cx, void *output)
{
    feeder *f = state;
    (void)output;
    if (f->step == 0) {
        asyncio_write_all_init(&f->w, asyncio_process_stdin(f->p), f->data, f->total);
        f->step = 1;
    }
    int rc = asyncio_write_all_poll(&f->w, cx);
    if (rc != 0)
        return rc;
    return asyncio_poll_shutdown(asyncio_process_stdin(f->p), cx);
}

static void feeder_drop(void *state)
{
    (void)state;
}

static const asyncio_task_vtable feeder_vt = {feeder_poll, feeder_drop, NULL, sizeof(feeder), 0};

/* Reads cat's stdout to the end (in chunks, checking the pattern), joins the feeder, waits. */
typedef struct echo_fut {
    asyncio_process *p;
    asyncio_join_handle *feeder;
    size_t got;
    bool mismatch, eof, fed;
    int feed_rc;
    asyncio_exit_status st;
    unsigned char buf[16384];
} echo_fut;

static int echo_poll(void *fut, asyncio_context *cx)
{
    echo_fut *e = fut;
    while (!e->eof) {
        size_t n;
        int rc = asyncio_poll_read(asyncio_process_stdout(e->p), cx, e->buf, sizeof e->buf, &n);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < n; i++)
            if (e->buf[i] != (unsigned char)((e->got + i) * 7))
                e->mismatch = true;
        e->got += n;
        e->eof = n == 0;
    }
    if (!e->fed) {
        int rc = asyncio_join_handle_poll(e->feeder, cx, NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        e->feed_rc = rc;
        e->fed = true;
    }
    return asyncio_process_poll_wait(e->p, cx, &e->st);
}

static void test_process_stdin_and_stdout_pipes_stream_through_cat(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"cat", NULL};
    asyncio_process_options o = piped(argv);
    o.stdin_mode = ASYNCIO_STDIO_PIPE;
    size_t total = 1 << 20; /* far more than a pipe holds: both sides must make progress */
    unsigned char *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (unsigned char)(i * 7);
    echo_fut *e = calloc(1, sizeof *e);
    assert_ok(asyncio_process_spawn(&e->p, &o));
    feeder f = {.p = e->p, .data = data, .total = total};
    assert_ok(asyncio_spawn(rt, &feeder_vt, &f, &e->feeder));
    assert_ok(support_run_future(rt, echo_poll, e));
    assert_ok(e->feed_rc);
    assert_int_equal(e->got, total);
    assert_false(e->mismatch);
    assert_int_equal(e->st.code, 0);
    /* stdin was closed by the shutdown: the writer says so. */
    size_t n;
    asyncio_waker none = ASYNCIO_WAKER_EMPTY;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&none);
    assert_err(asyncio_poll_write(asyncio_process_stdin(e->p), &cx, "x", 1, &n), ASYNCIO_EBADF);
    asyncio_join_handle_drop(e->feeder);
    asyncio_process_free(e->p);
    free(e);
    free(data);
    assert_ok(asyncio_runtime_free(rt));
}

/* asyncio_copy from one child's stdout into another's stdin (a shell pipeline, async). */
typedef struct pipeline {
    asyncio_process *src, *dst;
    asyncio_copy copy;
    asyncio_read_to_end rd;
    int step;
    char out[64];
    asyncio_exit_status s1, s2;
} pipeline;

static int pipeline_poll(void *fut, asyncio_context *cx)
{
    pipeline *pl = fut;
    if (pl->step == 0) {
        int rc = asyncio_copy_poll(&pl->copy, cx);
        if (rc != 0)
            return rc;
        rc = asyncio_poll_shutdown(asyncio_process_stdin(pl->dst), cx);
        if (rc != 0)
            return rc;
        asyncio_read_to_end_init(&pl->rd, asyncio_process_stdout(pl->dst), pl->out,
                                 sizeof pl->out - 1);
        pl->step = 1;
    }
    if (pl->step == 1) {
        int rc = asyncio_read_to_end_poll(&pl->rd, cx);
        if (rc != 0)
            return rc;
        pl->out[pl->rd.done] = '\0';
        pl->step = 2;
    }
    if (pl->step == 2) {
        int rc = asyncio_process_poll_wait(pl->src, cx, &pl->s1);
        if (rc != 0)
            return rc;
        pl->step = 3;
    }
    return asyncio_process_poll_wait(pl->dst, cx, &pl->s2);
}

static void test_process_copy_moves_one_childs_stdout_into_anothers_stdin(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *gen[] = {"head", "-c", "300000", "/dev/zero", NULL};
    const char *wc[] = {"wc", "-c", NULL};
    asyncio_process_options o1 = piped(gen);
    asyncio_process_options o2 = piped(wc);
    o2.stdin_mode = ASYNCIO_STDIO_PIPE;
    pipeline *pl = calloc(1, sizeof *pl);
    assert_ok(asyncio_process_spawn(&pl->src, &o1));
    assert_ok(asyncio_process_spawn(&pl->dst, &o2));
    asyncio_copy_init(&pl->copy, asyncio_process_stdout(pl->src), asyncio_process_stdin(pl->dst));
    assert_ok(support_run_future(rt, pipeline_poll, pl));
    assert_int_equal(pl->copy.written, 300000);
    assert_int_equal(atoi(pl->out), 300000);
    assert_int_equal(pl->s1.code, 0);
    assert_int_equal(pl->s2.code, 0);
    asyncio_copy_drop(&pl->copy);
    asyncio_process_free(pl->src);
    asyncio_process_free(pl->dst);
    free(pl);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_process_child_writing_to_a_closed_stdout_gets_epipe_not_us(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"yes", NULL};
    asyncio_process_options o = piped(argv);
    capture *c = malloc(sizeof *c);
    memset(c, 0, sizeof *c);
    assert_ok(asyncio_process_spawn(&c->p, &o));
    assert_ok(asyncio_process_close_pipe(c->p, 1));
    assert_ok(asyncio_process_close_pipe(c->p, 1)); /* idempotent */
    c->step = 2;                                    /* only wait */
    assert_ok(support_run_future(rt, capture_poll, c));
    assert_int_equal(c->st.signal, SIGPIPE); /* `yes` got its default SIGPIPE back */
    asyncio_process_free(c->p);
    free(c);
    assert_ok(asyncio_runtime_free(rt));
}

/* Waits for the child, then writes to its stdin: the pipe has no reader any more. */
typedef struct late_write {
    asyncio_process *p;
    asyncio_exit_status st;
    bool exited;
    int write_rc;
} late_write;

static int late_write_poll(void *fut, asyncio_context *cx)
{
    late_write *w = fut;
    if (!w->exited) {
        int rc = asyncio_process_poll_wait(w->p, cx, &w->st);
        if (rc != 0)
            return rc;
        w->exited = true;
    }
    size_t n;
    w->write_rc = asyncio_poll_write(asyncio_process_stdin(w->p), cx, "hello", 5, &n);
    return w->write_rc == ASYNCIO_PENDING ? ASYNCIO_PENDING : 0;
}

/* PITFALLS "SIGPIPE": with SIGPIPE at its default, the write fails and the parent survives. */
static void test_process_writing_to_an_exited_childs_stdin_is_epipe_not_sigpipe(void **state)
{
    (void)state;
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    sigaction(SIGPIPE, &dfl, &old);
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"true", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    o.stdin_mode = ASYNCIO_STDIO_PIPE;
    late_write w = {0};
    assert_ok(asyncio_process_spawn(&w.p, &o));
    assert_ok(support_run_future(rt, late_write_poll, &w));
    assert_err(w.write_rc, ASYNCIO_EPIPE);
    asyncio_process_free(w.p);
    assert_ok(asyncio_runtime_free(rt));
    sigaction(SIGPIPE, &old, NULL);
}

/* Out of fds for the third pipe: spawn fails cleanly, no child, no fd, no block left. */
static void test_process_spawn_out_of_fds_fails_with_emfile_and_leaves_nothing(void **state)
{
    (void)state;
    struct rlimit old;
    assert_sys(getrlimit(RLIMIT_NOFILE, &old));
    /* A limit that leaves exactly 4 free fd numbers below it (new fds take the lowest free). */
    int limit = 0;
    for (int free_seen = 0; free_seen < 5; limit++)
        if (fcntl(limit, F_GETFD) < 0)
            free_seen++;
    limit--; /* the 5th free number itself is out of range */
    struct rlimit low = {.rlim_cur = (rlim_t)limit, .rlim_max = old.rlim_max};
    const char *argv[] = {"true", NULL};
    asyncio_process_options o = piped(argv);
    o.stdin_mode = ASYNCIO_STDIO_PIPE;
    o.stderr_mode = ASYNCIO_STDIO_PIPE; /* 6 fds wanted, 4 to spare: the third pipe fails */
    asyncio_process *p = NULL;
    assert_sys(setrlimit(RLIMIT_NOFILE, &low));
    int rc = asyncio_process_spawn(&p, &o);
    assert_sys(setrlimit(RLIMIT_NOFILE, &old));
    assert_err(rc, ASYNCIO_EMFILE);
    assert_null(p);
    assert_true(no_children_left());
}

/* ------------------------------------------------------------------------ */
/* Environment, working directory                                            */

static void test_process_cleared_environment_has_only_the_set_variables(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"/usr/bin/env", NULL};
    const char *env[] = {"A=1", "B=2", "A=3", "C", NULL}; /* A set twice: the last wins */
    asyncio_process_options o = piped(argv);
    o.env_base = ASYNCIO_ENV_CLEAR;
    o.env = env;
    capture *c = malloc(sizeof *c);
    assert_ok(run_capture(rt, &o, c));
    assert_string_equal(c->out, "B=2\nA=3\n");
    free(c);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_process_inherited_environment_with_set_and_removed_variables(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    setenv("ASYNCIO_PROC_KEEP", "kept", 1);
    setenv("ASYNCIO_PROC_GONE", "x", 1);
    setenv("ASYNCIO_PROC_OVER", "old", 1);
    const char *argv[] = {
        "/bin/sh", "-c",
        "echo \"$ASYNCIO_PROC_KEEP|${ASYNCIO_PROC_GONE-unset}|$ASYNCIO_PROC_OVER\"", NULL};
    const char *env[] = {"ASYNCIO_PROC_GONE", "ASYNCIO_PROC_OVER=new", NULL};
    asyncio_process_options o = piped(argv);
    o.env = env;
    capture *c = malloc(sizeof *c);
    assert_ok(run_capture(rt, &o, c));
    assert_string_equal(c->out, "kept|unset|new\n");
    /* The parent's environment is untouched. */
    assert_string_equal(getenv("ASYNCIO_PROC_GONE"), "x");
    unsetenv("ASYNCIO_PROC_KEEP");
    unsetenv("ASYNCIO_PROC_GONE");
    unsetenv("ASYNCIO_PROC_OVER");
    free(c);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_process_runs_in_the_given_working_directory(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    char dir[] = "/tmp/asyncio-cwd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char real[PATH_MAX];
    assert_non_null(realpath(dir, real));
    const char *argv[] = {"/bin/sh", "-c", "pwd -P", NULL};
    asyncio_process_options o = piped(argv);
    o.cwd = dir;
    capture *c = malloc(sizeof *c);
    assert_ok(run_capture(rt, &o, c));
    rmdir(dir);
    strcat(real, "\n");
    assert_string_equal(c->out, real);
    free(c);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_process_null_stdin_reads_end_of_file(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"wc", "-c", NULL};
    asyncio_process_options o = piped(argv);
    o.stdin_mode = ASYNCIO_STDIO_NULL;
    capture *c = malloc(sizeof *c);
    assert_ok(run_capture(rt, &o, c));
    assert_int_equal(atoi(c->out), 0);
    assert_int_equal(c->st.code, 0);
    free(c);
    assert_ok(asyncio_runtime_free(rt));
}

/* Spawns and awaits `left` children of `true`, one after the other, inside a task. */
typedef struct spawner {
    int left;
    int failures;
    asyncio_process *p;
} spawner;

static int spawner_poll(void *state, asyncio_context *cx, void *output)
{
    spawner *s = state;
    (void)output;
    const char *argv[] = {"true", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    while (s->left > 0) {
        if (s->p == NULL) {
            int rc = asyncio_process_spawn(&s->p, &o);
            if (rc < 0)
                return rc;
        }
        asyncio_exit_status st;
        int rc = asyncio_process_poll_wait(s->p, cx, &st);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc != 0 || st.code != 0)
            s->failures++;
        asyncio_process_free(s->p);
        s->p = NULL;
        s->left--;
    }
    return s->failures == 0 ? 0 : ASYNCIO_EIO;
}

static void spawner_drop(void *state)
{
    spawner *s = state;
    asyncio_process_free(s->p);
}

static const asyncio_task_vtable spawner_vt = {spawner_poll, spawner_drop, NULL, sizeof(spawner),
                                               0};

/* ------------------------------------------------------------------------ */
/* Dropped handles: kill-on-drop and the background reaper                  */

/* Sleeps in 5 ms steps until `pid` no longer exists (reaped: not even a zombie), at most ~20 s. */
typedef struct gone_fut {
    int pid;
    int tries;
    bool sleeping;
    asyncio_sleep s;
} gone_fut;

static int gone_poll(void *fut, asyncio_context *cx)
{
    gone_fut *g = fut;
    for (;;) {
        if (!g->sleeping) {
            if (kill(g->pid, 0) < 0 && errno == ESRCH)
                return 0;
            if (++g->tries > 4000)
                return ASYNCIO_ETIMEDOUT;
            asyncio_sleep_init(&g->s, 5);
            g->sleeping = true;
        }
        int rc = asyncio_sleep_poll(&g->s, cx);
        if (rc != 0)
            return rc;
        asyncio_sleep_drop(&g->s);
        g->sleeping = false;
    }
}

/* A task that drops the handle (inside the runtime), then waits for the pid to go. */
typedef struct dropper {
    asyncio_process *p;
    gone_fut g;
} dropper;

static int dropper_poll(void *fut, asyncio_context *cx)
{
    dropper *d = fut;
    if (d->p != NULL) {
        d->g.pid = asyncio_process_id(d->p);
        asyncio_process_free(d->p); /* stdin closes: cat exits on its own, later */
        d->p = NULL;
    }
    return gone_poll(&d->g, cx);
}

/* ------------------------------------------------------------------------ */
/* No fd leaks into the child                                                */

/* "0\n1\n2\n" plus every other fd of this process without close-on-exec, in order. */
static void inheritable_fds(char *out, size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, "0\n1\n2\n");
    for (int fd = 3; fd < 1024; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC) && len < cap)
            len += (size_t)snprintf(out + len, cap - len, "%d\n", fd);
    }
}

static void test_process_child_sees_only_fds_0_1_2(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    /* Another child with all three pipes open meanwhile: its pipes must not leak. */
    const char *cat[] = {"cat", NULL};
    asyncio_process_options oc = piped(cat);
    oc.stdin_mode = ASYNCIO_STDIO_PIPE;
    oc.stderr_mode = ASYNCIO_STDIO_PIPE;
    asyncio_process *other;
    assert_ok(asyncio_process_spawn(&other, &oc));
    /* An fd without close-on-exec: closed in the child where the platform can. */
    int plain = open("/dev/null", O_RDONLY);
    assert_sys(plain);
    const char *argv[] = {g_self, "--list-fds", NULL};
    asyncio_process_options o = piped(argv);
    o.stdin_mode = ASYNCIO_STDIO_PIPE;
    o.stderr_mode = ASYNCIO_STDIO_PIPE;
    capture *c = malloc(sizeof *c);
    assert_ok(run_capture(rt, &o, c));
    assert_int_equal(c->st.code, 0);
    char want[256];
    inheritable_fds(want, sizeof want);
    close(plain);
    if (asyncio__spawn_closes_all_fds())
        assert_string_equal(c->out, "0\n1\n2\n");
    else /* musl: close-on-exec is the only guard, so exactly the fds that lack it */
        assert_string_equal(c->out, want);
    free(c);
    /* cat reads EOF once its stdin closes with the handle: reaped in the background. */
    dropper d = {.p = other};
    assert_ok(support_run_future(rt, dropper_poll, &d));
    assert_ok(asyncio_runtime_free(rt));
}

static void test_process_kill_on_drop_kills_and_reaps_the_child(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"sleep", "1000", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    o.flags = ASYNCIO_PROCESS_KILL_ON_DROP;
    dropper d = {0};
    assert_ok(asyncio_process_spawn(&d.p, &o));
    assert_ok(support_run_future(rt, dropper_poll, &d));
    assert_ok(asyncio_runtime_free(rt));
}

/* Freed outside any runtime: the next spawn inside one arms the reaper. */
static void test_process_child_freed_outside_a_runtime_is_reaped_after_the_next_spawn(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"sleep", "1000", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    o.flags = ASYNCIO_PROCESS_KILL_ON_DROP;
    asyncio_process *p;
    assert_ok(asyncio_process_spawn(&p, &o));
    gone_fut g = {.pid = asyncio_process_id(p)};
    asyncio_process_free(p);
    spawner s = {.left = 1};
    assert_ok(asyncio_runtime_block_on(rt, &spawner_vt, &s, NULL));
    assert_ok(support_run_future(rt, gone_poll, &g));
    assert_ok(asyncio_runtime_free(rt));
}

static void test_process_dropped_running_child_is_reaped_in_the_background(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"/bin/sh", "-c", "cat; sleep 0.05", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    o.stdin_mode = ASYNCIO_STDIO_PIPE;
    dropper d = {0};
    assert_ok(asyncio_process_spawn(&d.p, &o));
    assert_ok(support_run_future(rt, dropper_poll, &d));
    assert_ok(asyncio_runtime_free(rt));
}

/* ------------------------------------------------------------------------ */
/* Many spawns: no zombie, no fd, no block left                              */

static void test_process_1000_spawn_waits_leave_no_zombie_and_no_fd(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    long n = (long)support_scale(1000);
    spawner s = {.left = (int)n}; /* copied into the task */
    long before = support_alloc_total();
    assert_ok(asyncio_runtime_block_on(rt, &spawner_vt, &s, NULL));
    /* At most two blocks per spawn + wait: the handle and its pidfd's registration. */
    assert_true(support_alloc_total() - before <= 2 * n + 8);
    assert_true(no_children_left());
    assert_ok(asyncio_runtime_free(rt));
    /* teardown: no fd and no block left */
}

/* Many tasks spawn and wait at once (on every worker under mt4): the TSan stress. */
typedef struct fanout {
    asyncio_join_handle *jh[16];
    int n, joined, failed;
} fanout;

static int fanout_poll(void *fut, asyncio_context *cx)
{
    fanout *f = fut;
    while (f->joined < f->n) {
        int rc = asyncio_join_handle_poll(f->jh[f->joined], cx, NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc != 0)
            f->failed++;
        asyncio_join_handle_drop(f->jh[f->joined]);
        f->joined++;
    }
    return 0;
}

static void test_process_concurrent_spawns_and_waits_from_many_tasks(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    fanout f = {.n = 16};
    for (int i = 0; i < f.n; i++) {
        spawner s = {.left = (int)support_scale(40)};
        assert_ok(asyncio_spawn(rt, &spawner_vt, &s, &f.jh[i]));
    }
    assert_ok(support_run_future(rt, fanout_poll, &f));
    assert_int_equal(f.failed, 0);
    assert_true(no_children_left());
    assert_ok(asyncio_runtime_free(rt));
}

/* Waits for one child; outputs the signal that killed it (or 0). */
static int waiter_poll(void *state, asyncio_context *cx, void *output)
{
    asyncio_process **pp = state;
    asyncio_exit_status st;
    int rc = asyncio_process_poll_wait(*pp, cx, &st);
    if (rc != 0)
        return rc;
    *(int *)output = st.signal;
    return 0;
}

static void waiter_drop(void *state)
{
    (void)state; /* the handle stays the test's */
}

static const asyncio_task_vtable waiter_vt = {waiter_poll, waiter_drop, NULL,
                                              sizeof(asyncio_process *), sizeof(int)};

#define RACE_N 8

static void *kill_all(void *arg)
{
    asyncio_process **ps = arg;
    for (int i = 0; i < RACE_N; i++)
        asyncio_process_kill(ps[i], SIGKILL);
    return NULL;
}

/* Joins RACE_N waiters, checking each saw SIGKILL. */
typedef struct killed_join {
    asyncio_join_handle *jh[RACE_N];
    int joined, wrong;
} killed_join;

static int killed_join_poll(void *fut, asyncio_context *cx)
{
    killed_join *k = fut;
    while (k->joined < RACE_N) {
        int sig = 0;
        int rc = asyncio_join_handle_poll(k->jh[k->joined], cx, &sig);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc != 0 || sig != SIGKILL)
            k->wrong++;
        asyncio_join_handle_drop(k->jh[k->joined++]);
    }
    return 0;
}

static void test_process_kill_from_another_thread_races_the_waits(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"sleep", "1000", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    asyncio_process *ps[RACE_N];
    killed_join k = {0};
    for (int i = 0; i < RACE_N; i++) {
        assert_ok(asyncio_process_spawn(&ps[i], &o));
        assert_ok(asyncio_spawn(rt, &waiter_vt, &ps[i], &k.jh[i]));
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, kill_all, ps), 0);
    assert_ok(support_run_future(rt, killed_join_poll, &k));
    pthread_join(th, NULL);
    assert_int_equal(k.wrong, 0);
    for (int i = 0; i < RACE_N; i++) {
        assert_err(asyncio_process_kill(ps[i], SIGKILL), -ESRCH);
        asyncio_process_free(ps[i]);
    }
    assert_true(no_children_left());
    assert_ok(asyncio_runtime_free(rt));
}

#define ORPHAN_THREADS 4
#define ORPHANS_EACH   6

/* Spawns and at once frees (kill-on-drop) children, outside any runtime. */
static void *make_orphans(void *arg)
{
    int *pids = arg;
    const char *argv[] = {"sleep", "1000", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    o.flags = ASYNCIO_PROCESS_KILL_ON_DROP;
    for (int i = 0; i < ORPHANS_EACH; i++) {
        asyncio_process *p;
        if (asyncio_process_spawn(&p, &o) < 0)
            return (void *)1;
        pids[i] = asyncio_process_id(p);
        asyncio_process_free(p);
    }
    return NULL;
}

/* Arms the reaper with one spawn, then waits until every pid is gone. */
typedef struct all_gone {
    int pids[ORPHAN_THREADS * ORPHANS_EACH];
    int next;
    spawner arm;
    bool armed;
    gone_fut g;
} all_gone;

static int all_gone_poll(void *fut, asyncio_context *cx)
{
    all_gone *a = fut;
    if (!a->armed) {
        int rc = spawner_poll(&a->arm, cx, NULL);
        if (rc != 0)
            return rc;
        a->armed = true;
    }
    while (a->next < ORPHAN_THREADS * ORPHANS_EACH) {
        if (a->g.pid == 0)
            a->g = (gone_fut){.pid = a->pids[a->next]};
        int rc = gone_poll(&a->g, cx);
        if (rc != 0)
            return rc;
        a->g.pid = 0;
        a->next++;
    }
    return 0;
}

static void test_process_orphans_freed_on_many_threads_are_all_reaped(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    all_gone *a = calloc(1, sizeof *a);
    a->arm.left = 1;
    pthread_t th[ORPHAN_THREADS];
    for (int i = 0; i < ORPHAN_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, make_orphans, &a->pids[i * ORPHANS_EACH]), 0);
    for (int i = 0; i < ORPHAN_THREADS; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_null(r);
    }
    assert_ok(support_run_future(rt, all_gone_poll, a));
    assert_true(no_children_left());
    free(a);
    assert_ok(asyncio_runtime_free(rt));
}

/* ------------------------------------------------------------------------ */
/* Living with the signal API and with other code's children                 */

/* A user's SIGCHLD listener plus a waited child: both see what they should. */
typedef struct shared_fut {
    asyncio_process *p;
    asyncio_signal sig;
    asyncio_exit_status st;
    bool waited, signalled;
} shared_fut;

static int shared_poll(void *fut, asyncio_context *cx)
{
    shared_fut *s = fut;
    if (!s->waited) {
        int rc = asyncio_process_poll_wait(s->p, cx, &s->st);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc != 0)
            return rc;
        s->waited = true;
    }
    int signo = 0;
    int rc = asyncio_signal_poll(&s->sig, cx, &signo);
    if (rc != 0)
        return rc;
    s->signalled = signo == SIGCHLD;
    return 0;
}

static void test_process_foreign_children_and_signal_listeners_are_left_alone(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    shared_fut s = {0};
    int sigs[] = {SIGCHLD};
    assert_ok(asyncio_signal_init(&s.sig, sigs, 1));
    /* A child this test starts itself, as another library would: the runtime must not reap it. */
    pid_t foreign = fork();
    assert_sys(foreign);
    if (foreign == 0)
        _exit(7);
    const char *argv[] = {"/bin/sh", "-c", "exit 3", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    assert_ok(asyncio_process_spawn(&s.p, &o));
    assert_ok(support_run_future(rt, shared_poll, &s));
    assert_int_equal(s.st.code, 3);
    assert_true(s.signalled); /* the user's listener saw SIGCHLD too */
    int status;
    assert_int_equal(waitpid(foreign, &status, 0), foreign); /* still ours to reap */
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    asyncio_signal_drop(&s.sig);
    asyncio_process_free(s.p);
    assert_ok(asyncio_runtime_free(rt));
}

static _Atomic int g_foreign_sigchld; /* calls of another library's SIGCHLD handler (any thread) */

static void foreign_sigchld(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    (void)info;
    (void)ctx;
    atomic_fetch_add(&g_foreign_sigchld, 1);
}

/*
 * Another library's SIGCHLD handler keeps running while the library listens
 * for SIGCHLD (the signal module chains SIGCHLD), so that library still
 * learns about its own children; and waiting for ours still works.
 */
static void test_process_another_librarys_sigchld_handler_keeps_running(void **state)
{
    (void)state;
    struct sigaction mine = {0}, old;
    mine.sa_sigaction = foreign_sigchld;
    mine.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&mine.sa_mask);
    assert_sys(sigaction(SIGCHLD, &mine, &old));
    atomic_store(&g_foreign_sigchld, 0);
    asyncio_runtime *rt = support_runtime_new(NULL);
    asyncio_signal listen; /* makes the library's handler the installed one, in any wait mode */
    int sigs[] = {SIGCHLD};
    assert_ok(asyncio_signal_init(&listen, sigs, 1));
    const char *argv[] = {"/bin/sh", "-c", "exit 5", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    capture *c = calloc(1, sizeof *c);
    assert_ok(asyncio_process_spawn(&c->p, &o));
    c->step = 2;
    assert_ok(support_run_future(rt, capture_poll, c));
    assert_int_equal(c->st.code, 5);
    /* The delivery may land on any thread: give it a bounded moment. */
    for (int i = 0; i < 5000 && atomic_load(&g_foreign_sigchld) == 0; i++)
        usleep(1000);
    assert_true(atomic_load(&g_foreign_sigchld) > 0);
    asyncio_process_free(c->p);
    asyncio_signal_drop(&listen);
    struct sigaction now;
    assert_sys(sigaction(SIGCHLD, NULL, &now));
    assert_true(now.sa_sigaction == foreign_sigchld); /* given back when the last listener went */
    assert_sys(sigaction(SIGCHLD, &old, NULL));
    free(c);
    assert_ok(asyncio_runtime_free(rt));
}

/* A waitpid elsewhere took our child: -ECHILD for good, and its pid is never signalled again. */
static void test_process_child_reaped_by_someone_else_is_echild_and_never_signalled(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    const char *argv[] = {"true", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    capture *c = calloc(1, sizeof *c);
    assert_ok(asyncio_process_spawn(&c->p, &o));
    int status;
    assert_int_equal(waitpid(asyncio_process_id(c->p), &status, 0), asyncio_process_id(c->p));
    asyncio_exit_status st;
    assert_err(asyncio_process_try_wait(c->p, &st), -ECHILD);
    c->step = 2;
    assert_err(support_run_future(rt, capture_poll, c), -ECHILD);
    assert_err(asyncio_process_kill(c->p, SIGKILL), -ESRCH); /* the pid may be a stranger's now */
    asyncio_process_free(c->p);
    free(c);
    assert_true(no_children_left());
    assert_ok(asyncio_runtime_free(rt));
}

/* Under ASYNCIO_PROCESS_WAIT=signal the fallback really is used: a SIGCHLD handler is in place. */
static void test_process_wait_mechanism_follows_the_environment(void **state)
{
    (void)state;
    const char *argv[] = {"true", NULL};
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
    asyncio_process *p;
    struct sigaction before;
    sigaction(SIGCHLD, NULL, &before);
    assert_ok(asyncio_process_spawn(&p, &o));
    struct sigaction during;
    sigaction(SIGCHLD, NULL, &during);
    const char *mode = getenv("ASYNCIO_PROCESS_WAIT");
    bool forced = mode != NULL && strcmp(mode, "signal") == 0;
    int probe = asyncio__pidfd_open(getpid());
    if (probe >= 0)
        close(probe);
    if (forced || probe < 0) {
        assert_true(during.sa_handler != SIG_DFL && during.sa_handler != SIG_IGN);
    } else { /* pidfd: SIGCHLD untouched */
        assert_true(during.sa_handler == before.sa_handler);
    }
    asyncio_process_kill(p, SIGKILL);
    asyncio_runtime *rt = support_runtime_new(NULL);
    capture *c = malloc(sizeof *c);
    memset(c, 0, sizeof *c);
    c->p = p;
    c->step = 2;
    assert_ok(support_run_future(rt, capture_poll, c));
    asyncio_process_free(p);
    sigaction(SIGCHLD, NULL, &during);
    assert_true(during.sa_handler == before.sa_handler); /* the last listener restored it */
    free(c);
    assert_ok(asyncio_runtime_free(rt));
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--list-fds") == 0)
        return list_fds();
    if (realpath("/proc/self/exe", g_self) == NULL)
        return 1;
    /* The signal module's self-pipe lives as long as the process: make it before fds are counted.
     */
    asyncio_signal warm;
    int sigs[] = {SIGCHLD};
    if (asyncio_signal_init(&warm, sigs, 1) == 0)
        asyncio_signal_drop(&warm);
    const struct CMUnitTest tests[] = {
        support_test(test_process_true_exits_with_code_zero),
        support_test(test_process_exit_code_is_reported),
        support_test(test_process_missing_program_fails_spawn_with_enoent),
        support_test(test_process_non_executable_file_fails_spawn_with_eacces),
        support_test(test_process_missing_cwd_fails_spawn),
        support_test(test_process_bad_options_are_einval),
        support_test(test_process_killed_child_reports_the_signal),
        support_test(test_process_wait_under_a_timeout_times_out_then_completes_after_kill),
        support_test(test_process_stdout_pipe_reads_the_output),
        support_test(test_process_stderr_lines_through_the_buffered_reader),
        support_test(test_process_stdin_and_stdout_pipes_stream_through_cat),
        support_test(test_process_copy_moves_one_childs_stdout_into_anothers_stdin),
        support_test(test_process_child_writing_to_a_closed_stdout_gets_epipe_not_us),
        support_test(test_process_writing_to_an_exited_childs_stdin_is_epipe_not_sigpipe),
        support_test(test_process_spawn_out_of_fds_fails_with_emfile_and_leaves_nothing),
        support_test(test_process_cleared_environment_has_only_the_set_variables),
        support_test(test_process_inherited_environment_with_set_and_removed_variables),
        support_test(test_process_runs_in_the_given_working_directory),
        support_test(test_process_null_stdin_reads_end_of_file),
        support_test(test_process_child_sees_only_fds_0_1_2),
        support_test(test_process_kill_on_drop_kills_and_reaps_the_child),
        support_test(test_process_dropped_running_child_is_reaped_in_the_background),
        support_test(test_process_child_freed_outside_a_runtime_is_reaped_after_the_next_spawn),
        support_test(test_process_1000_spawn_waits_leave_no_zombie_and_no_fd),
        support_test(test_process_concurrent_spawns_and_waits_from_many_tasks),
        support_test(test_process_kill_from_another_thread_races_the_waits),
        support_test(test_process_orphans_freed_on_many_threads_are_all_reaped),
        support_test(test_process_foreign_children_and_signal_listeners_are_left_alone),
        support_test(test_process_child_reaped_by_someone_else_is_echild_and_never_signalled),
        support_test(test_process_wait_mechanism_follows_the_environment),
        support_test(test_process_another_librarys_sigchld_handler_keeps_running),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
