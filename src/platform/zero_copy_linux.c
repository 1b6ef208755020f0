/* splice(2) and sendfile(2) for asyncio_copy on Linux (see zero_copy.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>

#include "internal.h"
#include "platform/fd_io.h"
#include "platform/zero_copy.h"

/* Caps one call so ssize_t never overflows and one syscall stays bounded. */
#define ZC_MAX_CHUNK ((size_t)1 << 30)

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
