/*
 * Child processes on Windows: not ported yet (process_os.h). Every way of
 * starting a child reports ASYNCIO_ENOTSUP, so no handle ever holds a child
 * and the waiting functions below are never reached with a real pid;
 * docs/backends.md lists the gap. A port would use CreateProcessW with
 * inherited pipe handles and wait on the process handle through the IOCP
 * backend.
 */
#include <errno.h>
#include <stdlib.h>

#include "asyncio/error.h"
#include "platform/process_os.h"

int asyncio__spawn(const asyncio__spawn_req *r, int *pid_out)
{
    (void)r;
    (void)pid_out;
    return ASYNCIO_ENOTSUP;
}

bool asyncio__spawn_closes_all_fds(void)
{
    return false;
}

int asyncio__child_pipe(int *parent_fd, int *child_fd, bool child_reads)
{
    (void)child_reads;
    *parent_fd = -1;
    *child_fd = -1;
    return ASYNCIO_ENOTSUP;
}

void asyncio__child_fd_close(int fd)
{
    (void)fd; /* asyncio__child_pipe never opens one here */
}

int asyncio__child_reap(int pid, asyncio_exit_status *st)
{
    (void)pid;
    (void)st;
    return -ECHILD;
}

void asyncio__child_reap_blocking(int pid)
{
    (void)pid;
}

int asyncio__child_kill(int pid, int sig)
{
    (void)pid;
    (void)sig;
    return ASYNCIO_ENOTSUP;
}

int asyncio__sigkill(void)
{
    return 9; /* the number POSIX gives SIGKILL; nothing receives it here */
}

int asyncio__sigchld(void)
{
    return -1; /* no SIGCHLD on Windows: the signal API refuses it (ASYNCIO_EINVAL) */
}

const char *asyncio__env_get(const char *name)
{
    return getenv(name);
}

char *const *asyncio__env_current(void)
{
    return (char *const *)_environ;
}
