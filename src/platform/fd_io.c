/*
 * Plain fd operations (fd_io.h): fstat / getsockopt probing, read, write
 * and send with EINTR retried, and the SIGPIPE guard.
 */
#include "platform/fd_io.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "platform/os_table.h"

typedef struct sigpipe_state {
    sigset_t set, old;
    bool was_pending;
} sigpipe_state;

ASYNCIO_STATIC_ASSERT(sizeof(sigpipe_state) <= sizeof(asyncio__sigpipe_guard),
                      "asyncio__sigpipe_guard too small for two sigset_t");

int asyncio__fd_probe(int fd, bool *is_socket, bool *is_stream)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return ASYNCIO_EBADF;
    *is_socket = S_ISSOCK(st.st_mode);
    int type = 0;
    socklen_t tlen = sizeof type;
    *is_stream = S_ISFIFO(st.st_mode) ||
                 (*is_socket && asyncio__os.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 &&
                  type == SOCK_STREAM);
    return 0;
}

/* A byte count or -1 + errno as the library reports it. */
static int io_result(ssize_t n, size_t *n_out)
{
    if (n >= 0) {
        *n_out = (size_t)n;
        return 0;
    }
    if (errno == EWOULDBLOCK)
        return ASYNCIO_EAGAIN;
    return -errno;
}

int asyncio__fd_read(int fd, void *buf, size_t len, size_t *n_out)
{
    ssize_t n;
    do {
        n = asyncio__os.read(fd, buf, len);
    } while (n < 0 && errno == EINTR);
    return io_result(n, n_out);
}

int asyncio__fd_write(int fd, bool is_socket, const void *buf, size_t len, size_t *n_out)
{
    ssize_t n;
#ifdef MSG_NOSIGNAL
    if (is_socket) {
        do {
            n = asyncio__os.send(fd, buf, len, MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        return io_result(n, n_out);
    }
#else
    (void)is_socket;
#endif
    asyncio__sigpipe_guard g;
    asyncio__sigpipe_begin(&g);
    do {
        n = asyncio__os.write(fd, buf, len);
    } while (n < 0 && errno == EINTR);
    asyncio__sigpipe_end(&g, n < 0 && errno == EPIPE);
    return io_result(n, n_out);
}

void asyncio__sigpipe_begin(asyncio__sigpipe_guard *g)
{
    sigpipe_state *s = (sigpipe_state *)(void *)g->opaque;
    sigset_t pending;
    sigemptyset(&s->set);
    sigaddset(&s->set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    s->was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &s->set, &s->old);
}

void asyncio__sigpipe_end(asyncio__sigpipe_guard *g, bool failed_with_epipe)
{
    sigpipe_state *s = (sigpipe_state *)(void *)g->opaque;
    int err = errno;
    if (failed_with_epipe && !s->was_pending) {
        /*
         * The EPIPE raised a SIGPIPE that waits, blocked, for this thread: consume it.
         * sigwait (POSIX; macOS has no sigtimedwait) only once sigpending shows it, so
         * it never blocks. A thread-directed signal stays pending for this thread alone.
         */
        sigset_t pending;
        int sig;
        sigemptyset(&pending);
        if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1)
            (void)sigwait(&s->set, &sig);
    }
    pthread_sigmask(SIG_SETMASK, &s->old, NULL);
    errno = err;
}
