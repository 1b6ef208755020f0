/*
 * run_cmd: runs a command, streams its output line by line, and kills it
 * when a timeout expires.
 *
 *   run_cmd [--timeout-ms N] [--grace-ms N] -- PROGRAM [ARG...]
 *
 * Output (stdout, one line each, flushed):
 *   "started pid N"          the child runs
 *   "out: LINE"              a line the child wrote to its stdout
 *   "err: LINE"              a line the child wrote to its stderr
 *   "timeout: SIGTERM"       --timeout-ms (default 10000) expired: SIGTERM sent
 *   "timeout: SIGKILL"       still alive --grace-ms (default 1000) later
 *   "exit: code N" / "exit: signal N"   how the child ended
 * Exit status: the child's code; 128 + N when killed by signal N; 124 when
 * the timeout fired (as timeout(1)); 127 when the program could not be
 * started ("run_cmd: cannot run PROGRAM: REASON" on stderr: the exec error
 * comes back from spawn, not as a child exiting 127); 2 on bad flags.
 * SIGINT / SIGTERM to run_cmd forward SIGTERM to the child.
 *
 * One task drives everything: two line iterators (buffered readers over the
 * child's pipes, include/asyncio/bufio.h), the wait future, a deadline
 * sleep and a signal listener, all polled from the same poll function.
 * When the child has exited and the timeout fired, output still held by a
 * grandchild that inherited the pipes is abandoned rather than awaited.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio/bufio.h"
#include "asyncio/process.h"
#include "asyncio/runtime.h"
#include "asyncio/signal.h"
#include "asyncio/time.h"

typedef struct stream {
    asyncio_buf_reader br;
    asyncio_lines lines;
    const char *tag; /* "out" or "err" */
    bool eof;
} stream;

typedef enum phase {
    PHASE_RUNNING, /* before the deadline */
    PHASE_TERM,    /* SIGTERM sent, grace period running */
    PHASE_KILLED,  /* SIGKILL sent */
} phase;

typedef struct run_task {
    /* configuration */
    const char *const *argv;
    uint64_t timeout_ms, grace_ms;
    /* state */
    asyncio_process *p;
    stream out, err;
    asyncio_sleep deadline;
    asyncio_signal stop;
    bool started, exited, timed_out, reported;
    phase phase;
    asyncio_exit_status st;
} run_task;

static int run_start(run_task *t)
{
    asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(t->argv);
    o.stdin_mode = ASYNCIO_STDIO_NULL;
    o.stdout_mode = ASYNCIO_STDIO_PIPE;
    o.stderr_mode = ASYNCIO_STDIO_PIPE;
    o.flags = ASYNCIO_PROCESS_KILL_ON_DROP; /* run_cmd failing never leaves the child behind */
    int rc = asyncio_process_spawn(&t->p, &o);
    if (rc < 0) {
        fprintf(stderr, "run_cmd: cannot run %s: %s\n", t->argv[0], asyncio_strerror(rc));
        t->reported = true;
        return rc;
    }
    static const int sigs[] = {SIGINT, SIGTERM};
    t->started = true;
    if ((rc = asyncio_signal_init(&t->stop, sigs, 2)) < 0)
        return rc;
    t->out.tag = "out";
    t->err.tag = "err";
    if ((rc = asyncio_buf_reader_init(&t->out.br, asyncio_process_stdout(t->p), NULL, 0)) < 0)
        return rc;
    if ((rc = asyncio_buf_reader_init(&t->err.br, asyncio_process_stderr(t->p), NULL, 0)) < 0)
        return rc;
    asyncio_lines_init(&t->out.lines, &t->out.br, 0);
    asyncio_lines_init(&t->err.lines, &t->err.br, 0);
    asyncio_sleep_init(&t->deadline, t->timeout_ms);
    printf("started pid %d\n", asyncio_process_id(t->p));
    fflush(stdout);
    return 0;
}

/* Prints every complete line available now; 0 when pending or at EOF. */
static int stream_pump(stream *s, asyncio_context *cx)
{
    while (!s->eof) {
        const char *line;
        size_t len;
        int rc = asyncio_lines_poll_next(&s->lines, cx, &line, &len);
        if (rc == ASYNCIO_PENDING)
            return 0;
        if (rc == ASYNCIO_EMSGSIZE) { /* a line longer than the buffer: print it in pieces */
            const void *data;
            rc = asyncio_buf_reader_poll_fill_buf(&s->br, cx, &data, &len);
            if (rc != 0)
                return rc == ASYNCIO_PENDING ? 0 : rc;
            line = data;
            printf("%s: %.*s\n", s->tag, (int)len, line);
            asyncio_buf_reader_consume(&s->br, len);
            continue;
        }
        if (rc != 0)
            return rc;
        if (line == NULL)
            s->eof = true;
        else
            printf("%s: %.*s\n", s->tag, (int)len, line);
    }
    return 0;
}

/*
 * The deadline, then the grace period: SIGTERM, then SIGKILL. A deadline
 * that passes after the exit only ends the wait for output still held open
 * by a grandchild.
 */
static int deadline_pump(run_task *t, asyncio_context *cx)
{
    while (t->phase != PHASE_KILLED) {
        int rc = asyncio_sleep_poll(&t->deadline, cx);
        if (rc != 0)
            return rc == ASYNCIO_PENDING ? 0 : rc;
        t->timed_out = true;
        if (t->exited)
            return 0;
        int sig = t->phase == PHASE_RUNNING ? SIGTERM : SIGKILL;
        printf("timeout: %s\n", sig == SIGTERM ? "SIGTERM" : "SIGKILL");
        fflush(stdout);
        asyncio_process_kill(t->p, sig); /* ESRCH: it exited meanwhile, the wait tells */
        t->phase = t->phase == PHASE_RUNNING ? PHASE_TERM : PHASE_KILLED;
        asyncio_sleep_reset(&t->deadline, asyncio_time_now_ms() + t->grace_ms);
    }
    return 0;
}

static int run_step(run_task *t, asyncio_context *cx, int *output)
{
    int rc;
    if (!t->started && (rc = run_start(t)) < 0)
        return rc;
    while (asyncio_signal_poll(&t->stop, cx, NULL) == 0) /* forward ^C / SIGTERM */
        asyncio_process_kill(t->p, SIGTERM);
    if ((rc = stream_pump(&t->out, cx)) < 0 || (rc = stream_pump(&t->err, cx)) < 0)
        return rc;
    fflush(stdout);
    if (!t->exited) {
        rc = asyncio_process_poll_wait(t->p, cx, &t->st);
        if (rc < 0)
            return rc;
        t->exited = rc == 0;
    }
    if ((rc = deadline_pump(t, cx)) < 0)
        return rc;
    bool drained = t->out.eof && t->err.eof;
    if (!t->exited || (!drained && !t->timed_out))
        return ASYNCIO_PENDING; /* every future above stored the waker */
    if (t->st.signal != 0)
        printf("exit: signal %d\n", t->st.signal);
    else
        printf("exit: code %d\n", t->st.code);
    fflush(stdout);
    int status = t->st.signal != 0 ? 128 + t->st.signal : t->st.code;
    *output = t->timed_out ? 124 : status;
    return 0;
}

static int run_poll(void *state, asyncio_context *cx, void *output)
{
    run_task *t = state;
    int rc = run_step(t, cx, output);
    if (rc < 0 && !t->reported) {
        fprintf(stderr, "run_cmd: %s\n", asyncio_strerror(rc));
        t->reported = true;
    }
    return rc;
}

static void run_drop(void *state)
{
    run_task *t = state;
    asyncio_buf_reader_free(&t->out.br);
    asyncio_buf_reader_free(&t->err.br);
    asyncio_sleep_drop(&t->deadline);
    asyncio_signal_drop(&t->stop);
    asyncio_process_free(t->p);
}

static const asyncio_task_vtable run_vt = {run_poll, run_drop, NULL, sizeof(run_task), sizeof(int)};

static int usage(void)
{
    fprintf(stderr, "usage: run_cmd [--timeout-ms N] [--grace-ms N] -- PROGRAM [ARG...]\n");
    return 2;
}

static bool parse_ms(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0')
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    run_task t = {.timeout_ms = 10000, .grace_ms = 1000};
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
        uint64_t *dst = strcmp(argv[i], "--timeout-ms") == 0 ? &t.timeout_ms
                        : strcmp(argv[i], "--grace-ms") == 0 ? &t.grace_ms
                                                             : NULL;
        if (dst == NULL || i + 1 >= argc || !parse_ms(argv[i + 1], dst))
            return usage();
    }
    if (i + 1 >= argc)
        return usage();
    t.argv = (const char *const *)&argv[i + 1];
    asyncio_runtime *rt = NULL;
    int rc = asyncio_runtime_new(&rt, NULL);
    int status = 0;
    if (rc == 0) {
        rc = asyncio_runtime_block_on(rt, &run_vt, &t, &status);
        asyncio_runtime_free(rt);
    }
    if (rc < 0) { /* reported by the task, or the runtime could not start */
        if (rt == NULL)
            fprintf(stderr, "run_cmd: %s\n", asyncio_strerror(rc));
        return 127;
    }
    return status;
}
