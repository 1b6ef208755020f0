/*
 * Zero-copy syscalls: splice(2) and sendfile(2) on Linux, ASYNCIO_ENOSYS
 * elsewhere (the caller then copies through a buffer). See zero_copy.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "platform/fd_io.h"
#include "platform/zero_copy.h"

_Atomic uint64_t asyncio__zero_copy_splice_bytes;
_Atomic uint64_t asyncio__zero_copy_sendfile_bytes;

/* Caps one call so ssize_t never overflows and one syscall stays bounded. */
#define ZC_MAX_CHUNK ((size_t)1 << 30)

asyncio__fd_kind asyncio__fd_kind_of(int fd)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return ASYNCIO__FD_OTHER;
    if (S_ISREG(st.st_mode))
        return ASYNCIO__FD_FILE;
    if (S_ISFIFO(st.st_mode))
        return ASYNCIO__FD_PIPE;
    if (S_ISSOCK(st.st_mode))
        return ASYNCIO__FD_SOCKET;
    return ASYNCIO__FD_OTHER;
}

void asyncio__zc_pipe_close(int fds[2])
{
    for (int i = 0; i < 2; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

#ifdef __linux__
#include <sys/sendfile.h>

/* A result of a byte-moving syscall as the library reports it. */
static int zc_result(ssize_t n, size_t *n_out)
{
    if (n >= 0) {
        *n_out = (size_t)n;
        return 0;
    }
    if (errno == EWOULDBLOCK)
        return ASYNCIO_EAGAIN;
    return -errno;
}

int asyncio__zc_pipe_open(int fds[2])
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        fds[0] = fds[1] = -1;
        return -errno;
    }
    return 0;
}

/*
 * SIGPIPE: splice(2) and sendfile(2) into a socket or pipe whose reader is
 * gone raise it (neither has MSG_NOSIGNAL). Block it around the call and
 * eat the one this call raised (unless one was already pending before), with
 * the guard the async fd's write path uses, so the caller sees ASYNCIO_EPIPE.
 */
int asyncio__zc_splice(int in_fd, int out_fd, size_t len, size_t *n_out)
{
    if (len > ZC_MAX_CHUNK)
        len = ZC_MAX_CHUNK;
    asyncio__sigpipe_guard g;
    asyncio__sigpipe_begin(&g);
    ssize_t n;
    do {
        n = splice(in_fd, NULL, out_fd, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    } while (n < 0 && errno == EINTR);
    asyncio__sigpipe_end(&g, n < 0 && errno == EPIPE);
    return zc_result(n, n_out);
}

int asyncio__zc_sendfile(int out_fd, int in_fd, size_t len, size_t *n_out)
{
    if (len > ZC_MAX_CHUNK)
        len = ZC_MAX_CHUNK;
    asyncio__sigpipe_guard g;
    asyncio__sigpipe_begin(&g);
    ssize_t n;
    do {
        n = sendfile(out_fd, in_fd, NULL, len);
    } while (n < 0 && errno == EINTR);
    asyncio__sigpipe_end(&g, n < 0 && errno == EPIPE);
    return zc_result(n, n_out);
}

#else /* !__linux__ */

int asyncio__zc_pipe_open(int fds[2])
{
    fds[0] = fds[1] = -1;
    return ASYNCIO_ENOSYS;
}

int asyncio__zc_splice(int in_fd, int out_fd, size_t len, size_t *n_out)
{
    (void)in_fd;
    (void)out_fd;
    (void)len;
    (void)n_out;
    return ASYNCIO_ENOSYS;
}

int asyncio__zc_sendfile(int out_fd, int in_fd, size_t len, size_t *n_out)
{
    (void)out_fd;
    (void)in_fd;
    (void)len;
    (void)n_out;
    return ASYNCIO_ENOSYS;
}

#endif
