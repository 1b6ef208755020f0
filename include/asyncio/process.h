/*
 * libasyncio: child processes.
 *
 * asyncio_process_spawn() starts a program with an argument vector, an
 * environment (the parent's, an empty one, either with variables set or
 * removed), a working directory, and for each of stdin / stdout / stderr:
 * the parent's, /dev/null, or a pipe. Pipes are the library's AsyncWrite
 * (stdin) and AsyncRead (stdout, stderr), so asyncio_copy, the buffered
 * reader and the io_util helpers work on them. asyncio_process_poll_wait()
 * awaits the exit status; asyncio_process_kill() sends a signal.
 *
 *     const char *argv[] = {"ls", "-l", NULL};
 *     asyncio_process_options o = ASYNCIO_PROCESS_OPTIONS_INIT(argv);
 *     o.stdout_mode = ASYNCIO_STDIO_PIPE;
 *     asyncio_process *p;
 *     int rc = asyncio_process_spawn(&p, &o);      // ENOENT: no such program
 *     ... read asyncio_process_stdout(p) until EOF ...
 *     asyncio_exit_status st;
 *     rc = asyncio_process_poll_wait(p, cx, &st);  // PENDING, then 0
 *     asyncio_process_free(p);
 *
 * Guarantees (docs/process.md):
 *   - Errors of the exec itself (no such program: ENOENT, not executable:
 *     EACCES, a bad working directory) come back from spawn, not as a
 *     child that exits with 127.
 *   - No file descriptor leaks into the child: it gets exactly 0, 1 and 2
 *     (every fd the library opens is close-on-exec, and where the C library
 *     can, the child closes all others before exec).
 *   - No zombies: a handle freed before its child was reaped hands the
 *     child to a background reaper (killing it first with
 *     ASYNCIO_PROCESS_KILL_ON_DROP). Only the library's own children are
 *     ever reaped (never waitpid(-1)), so other libraries' children are
 *     left alone.
 *   - Waiting uses a pidfd registered with the runtime's I/O driver where
 *     the kernel has one (Linux >= 5.3), else SIGCHLD through the signal
 *     API (signal.h): while a SIGCHLD-waited child or an orphan exists, the
 *     library is a SIGCHLD listener; a SIGCHLD handler installed before
 *     (another library's) is still called on every delivery.
 *     ASYNCIO_PROCESS_WAIT=signal in the environment forces the
 *     SIGCHLD path (read once, at the first spawn).
 *
 * Platforms: Linux and the other POSIX systems (posix_spawn). Windows:
 * every function returns ASYNCIO_ENOTSUP until its port is written.
 *
 * Thread-safety: a handle may be used from any thread; its parts are
 * independent (one task may read stdout while another writes stdin, a
 * third waits and any thread kills), but each part has one user at a time
 * (one reader of stdout, one waiter...). asyncio_process_free() must not
 * race with any other call on the handle.
 */
#ifndef ASYNCIO_PROCESS_H
#define ASYNCIO_PROCESS_H

#include <stdbool.h>

#include "common.h"
#include "error.h"
#include "io.h"
#include "task.h"

/** What one of the child's standard streams is connected to. */
typedef enum asyncio_stdio {
    ASYNCIO_STDIO_INHERIT = 0, /* the parent's own fd 0 / 1 / 2 */
    ASYNCIO_STDIO_NULL = 1,    /* /dev/null */
    ASYNCIO_STDIO_PIPE = 2,    /* a pipe to the parent: asyncio_process_stdin / stdout / stderr */
} asyncio_stdio;

/** The environment the child starts from, before asyncio_process_options.env applies. */
typedef enum asyncio_env_base {
    ASYNCIO_ENV_INHERIT = 0, /* a copy of the parent's environment at spawn time */
    ASYNCIO_ENV_CLEAR = 1,   /* empty */
} asyncio_env_base;

/** Flags for asyncio_process_options.flags. */
enum {
    /** asyncio_process_free() of a child still running sends it SIGKILL first. */
    ASYNCIO_PROCESS_KILL_ON_DROP = 1u << 0,
};

/**
 * How to start the child. Zero-initialise (or use ASYNCIO_PROCESS_OPTIONS_INIT)
 * and set what differs from the defaults: inherit everything, no flags.
 * Every pointer is borrowed for the duration of asyncio_process_spawn() only.
 */
typedef struct asyncio_process_options {
    /** Required, NULL-terminated, at least one entry: the child's argv. */
    const char *const *argv;
    /**
     * The program to run; NULL means argv[0]. A name without '/' is looked
     * up in the directories of the parent's PATH (as execvp does), whatever
     * `env` gives the child.
     */
    const char *file;
    asyncio_env_base env_base;
    /**
     * Optional NULL-terminated list applied in order on top of env_base:
     * "NAME=value" sets NAME, a bare "NAME" removes it. NULL: no change.
     */
    const char *const *env;
    /** Working directory of the child; NULL: the parent's. */
    const char *cwd;
    asyncio_stdio stdin_mode;
    asyncio_stdio stdout_mode;
    asyncio_stdio stderr_mode;
    unsigned flags; /* ASYNCIO_PROCESS_* */
} asyncio_process_options;

/** Options that run argv with everything inherited (C++: a braced temporary). */
#ifdef __cplusplus
#define ASYNCIO_PROCESS_OPTIONS_INIT(argv_)                                    \
    asyncio_process_options                                                    \
    {                                                                          \
        (argv_), NULL, ASYNCIO_ENV_INHERIT, NULL, NULL, ASYNCIO_STDIO_INHERIT, \
            ASYNCIO_STDIO_INHERIT, ASYNCIO_STDIO_INHERIT, 0u                   \
    }
#else
#define ASYNCIO_PROCESS_OPTIONS_INIT(argv_) ((asyncio_process_options){.argv = (argv_)})
#endif

/**
 * How the child ended. Exactly one of the two is meaningful: `signal` is 0
 * when the child exited with `code` (0..255), else it is the number of the
 * signal that killed it and `code` is -1.
 */
typedef struct asyncio_exit_status {
    int code;
    int signal;
} asyncio_exit_status;

/** A spawned child. Opaque; from asyncio_process_spawn(), released by asyncio_process_free(). */
typedef struct asyncio_process asyncio_process;

ASYNCIO_BEGIN_DECLS

/**
 * Starts the child described by `opts`. Returns once the program was
 * executed (or failed to be): *out then owns the child, its pipes and the
 * duty to reap it. Needs no runtime: the pipes and the exit notification
 * attach to the I/O driver of the runtime whose task first polls them.
 *
 * Errors: ASYNCIO_EINVAL (NULL argument, argv NULL or empty, an unknown
 * stdio mode, env_base or flag); errors of the exec and of preparing the
 * child, exactly as the system reports them: ASYNCIO_ENOENT (no such
 * program, or no such cwd), ASYNCIO_EACCES (not executable, or a
 * directory on the way cannot be searched), ASYNCIO_ENOTDIR, and
 * ASYNCIO_ENOEXEC, ASYNCIO_E2BIG; ASYNCIO_EMFILE / ENFILE (no fd for a
 * pipe), ASYNCIO_EAGAIN (process limit), ASYNCIO_ENOMEM; ASYNCIO_ENOTSUP
 * where processes are not implemented (Windows). On error no child is left
 * behind, nothing needs freeing and *out is untouched.
 *
 * Thread-safety: any thread, concurrently with other spawns (their pipes
 * never leak into each other's children). With ASYNCIO_ENV_INHERIT it reads
 * the process environment, so, as for getenv, no thread may setenv meanwhile. May be called from
 * inside a task; it blocks for as long as the system's fork + exec takes.
 */
ASYNCIO_EXTERN int asyncio_process_spawn(asyncio_process **out,
                                         const asyncio_process_options *opts);

/** The child's process id (still valid for kill(2) only until it is reaped). Thread-safe. */
ASYNCIO_EXTERN int asyncio_process_id(const asyncio_process *p);

/**
 * The child's stdin as an AsyncWrite, borrowing p (valid until
 * asyncio_process_free). Writes return ASYNCIO_EPIPE once the child closed
 * its end. poll_shutdown closes the pipe, so the child reads end of file.
 * When stdin is not ASYNCIO_STDIO_PIPE (or was closed), every call through
 * the writer returns ASYNCIO_EBADF.
 */
ASYNCIO_EXTERN asyncio_writer asyncio_process_stdin(asyncio_process *p);

/**
 * The child's stdout as an AsyncRead, borrowing p. Reads end of file (0
 * bytes) when every copy of the pipe's write end is closed, usually at the
 * child's exit. Not a pipe (or closed): ASYNCIO_EBADF. Exposes its fd for
 * asyncio_copy's splice path.
 */
ASYNCIO_EXTERN asyncio_reader asyncio_process_stdout(asyncio_process *p);

/** The child's stderr as an AsyncRead; as asyncio_process_stdout(). */
ASYNCIO_EXTERN asyncio_reader asyncio_process_stderr(asyncio_process *p);

/**
 * Closes the parent's end of a pipe now (fd 0, 1 or 2 of the child):
 * for stdin the child reads end of file; for stdout / stderr its further
 * writes fail with EPIPE (or kill it with SIGPIPE). Idempotent.
 * Errors: ASYNCIO_EINVAL (NULL p, which not 0..2). Must not race with a
 * use of the same pipe. Thread-safety: any runtime thread.
 */
ASYNCIO_EXTERN int asyncio_process_close_pipe(asyncio_process *p, int which);

/**
 * Awaits the child's exit. Returns 0 with *status filled (`status` may be
 * NULL; every later call returns the same status at once), or
 * ASYNCIO_PENDING after storing cx's waker: it is woken when the child
 * exits. Reaps the child.
 *
 * Errors: ASYNCIO_EINVAL (NULL p or cx; no runtime on this thread while
 * the child still runs), ASYNCIO_ECHILD (someone else reaped the child: a
 * waitpid(-1) elsewhere in the process, or SIGCHLD set to SIG_IGN), errors
 * of registering the pidfd (ASYNCIO_ENOMEM...). One waiter at a time.
 * Thread-safety: from a task (any thread), concurrently with kill.
 */
ASYNCIO_EXTERN int asyncio_process_poll_wait(asyncio_process *p, asyncio_context *cx,
                                             asyncio_exit_status *status);

/**
 * asyncio_process_poll_wait(p, cx, NULL) with the asyncio_future_poll_fn
 * signature, for asyncio_timeout_init(&t, asyncio_process_poll_wait_fn, p,
 * ms): a wait with a time limit. After it returned 0, asyncio_process_try_wait
 * gives the status at once. Errors: as poll_wait.
 */
ASYNCIO_EXTERN int asyncio_process_poll_wait_fn(void *p, asyncio_context *cx);

/**
 * Reaps the child if it has exited, without waiting: 0 with *status
 * filled, or ASYNCIO_EAGAIN while it still runs. Errors: ASYNCIO_EINVAL
 * (NULL argument), ASYNCIO_ECHILD (as poll_wait). Never blocks; needs no
 * runtime. Thread-safety: any thread, not concurrently with poll_wait.
 */
ASYNCIO_EXTERN int asyncio_process_try_wait(asyncio_process *p, asyncio_exit_status *status);

/**
 * Sends signal `sig` to the child (e.g. SIGTERM; SIGKILL to force). Safe
 * against pid reuse: a child that was already reaped is never signalled.
 * Errors: ASYNCIO_EINVAL (NULL p, invalid sig), ASYNCIO_ESRCH (the child
 * has exited and was reaped: check the status; or a wait reported -ECHILD,
 * so its pid may belong to someone else now), ASYNCIO_EPERM.
 * Thread-safety: any thread, concurrently with poll_wait and the pipes.
 */
ASYNCIO_EXTERN int asyncio_process_kill(asyncio_process *p, int sig);

/**
 * Releases the handle: closes the pipes, and if the child has not been
 * reaped, kills it with SIGKILL when ASYNCIO_PROCESS_KILL_ON_DROP was set,
 * then reaps it now if it has exited or hands it to the background reaper
 * (reaped when SIGCHLD next reaches any running runtime, or at the next
 * spawn or free). The child itself keeps running unless killed. NULL is a
 * no-op. Call it before freeing the runtime whose tasks polled the pipes
 * or waited (their registrations live in its I/O driver). Thread-safety:
 * any thread, not concurrently with another call on p.
 */
ASYNCIO_EXTERN void asyncio_process_free(asyncio_process *p);

ASYNCIO_END_DECLS

#endif
