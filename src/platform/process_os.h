/*
 * OS side of child processes (src/process/process.c): starting a program,
 * reaping one child by pid, signalling it, and the Linux pidfd.
 *
 *   process_os_posix.c  posix_spawn(p), waitpid(pid, WNOHANG), kill: Linux,
 *                       macOS and the BSDs.
 *   pidfd_linux.c       pidfd_open(2); pidfd_none.c elsewhere (-ENOSYS).
 *
 * A Windows port provides its own file behind this header (asyncio__spawn
 * returning ASYNCIO_ENOTSUP until processes are ported); the core
 * (src/process/process.c) needs nothing else from the OS.
 *
 * Only ever waits for one given pid: never waitpid(-1), so children of other
 * libraries in the process are never reaped here. Every function may be
 * called from any thread.
 */
#ifndef ASYNCIO_PLATFORM_PROCESS_OS_H
#define ASYNCIO_PLATFORM_PROCESS_OS_H

#include <stdbool.h>

#include "asyncio/process.h"

/* What a child's fd 0 / 1 / 2 becomes (asyncio__spawn_req.stdio). */
#define ASYNCIO__STDIO_KEEP (-1) /* the parent's own fd */
#define ASYNCIO__STDIO_NULL (-2) /* /dev/null */
/* any fd >= 3: the child's end of a pipe, dup'ed onto 0 / 1 / 2 in the child */

typedef struct asyncio__spawn_req {
    const char *file;  /* program; searched in PATH when it has no '/' */
    char *const *argv; /* NULL-terminated */
    char *const *envp; /* NULL-terminated; NULL: the parent's environment */
    const char *cwd;   /* NULL: the parent's */
    int stdio[3];      /* ASYNCIO__STDIO_KEEP / _NULL / a pipe end >= 3 */
} asyncio__spawn_req;

/*
 * Starts the child: its signal mask empty, SIGPIPE back to its default, every
 * fd other than 0, 1, 2 closed where the C library can do it in the child
 * (asyncio__spawn_closes_all_fds), close-on-exec fds closed anyway. Returns 0
 * with *pid_out, or the error of the fork, of a file action (open, chdir) or
 * of the exec (ENOENT, EACCES...). No child exists after an error.
 */
int asyncio__spawn(const asyncio__spawn_req *r, int *pid_out);

/* True when spawned children get exactly fds 0..2 even of fds without close-on-exec. */
bool asyncio__spawn_closes_all_fds(void);

/*
 * A pipe for one of a child's stdio fds, both ends close-on-exec: *parent_fd
 * non-blocking (registered with the I/O driver), *child_fd blocking (what
 * programs expect of their stdio) and numbered >= 3 (so dup'ing it onto 0..2
 * never clobbers another). child_reads: the child's end is the read end
 * (stdin). Returns 0 or a negative errno (EMFILE, ENFILE); on error no fd
 * is left open.
 */
int asyncio__child_pipe(int *parent_fd, int *child_fd, bool child_reads);

/* close(2) for the fds above. */
void asyncio__child_fd_close(int fd);

/*
 * waitpid(pid, WNOHANG): 0 with *st (the child is reaped), ASYNCIO_EAGAIN
 * while it runs, -ECHILD when it is not (or no longer) a child to reap.
 */
int asyncio__child_reap(int pid, asyncio_exit_status *st);

/* Blocking waitpid(pid): only after a SIGKILL, when nothing else can reap it. */
void asyncio__child_reap_blocking(int pid);

/* kill(pid, sig): 0 or a negative errno (EINVAL for a bad signal, EPERM, ESRCH). */
int asyncio__child_kill(int pid, int sig);

/* SIGKILL's number (the core includes no <signal.h>). */
int asyncio__sigkill(void);

/* SIGCHLD's number, for the waiting that goes through the signal API. */
int asyncio__sigchld(void);

/*
 * pidfd_open(pid, 0): a close-on-exec fd that becomes readable when the
 * child exits. -ENOSYS where the kernel (or OS) has none, or another
 * negative errno (EMFILE...).
 */
int asyncio__pidfd_open(int pid);

/* The value of NAME in the environment, or NULL (getenv). */
const char *asyncio__env_get(const char *name);

/* The parent's environment, NULL-terminated (environ). Not to be kept. */
char *const *asyncio__env_current(void);

#endif
