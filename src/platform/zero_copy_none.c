/*
 * zero_copy.h where splice(2) is missing (macOS, the BSDs): every call
 * returns ASYNCIO_ENOTSUP and asyncio_copy takes its buffered path. macOS
 * and FreeBSD have a sendfile(2) (file to socket only, with different
 * signatures); not used yet (docs/backends.md).
 */
#include <stddef.h>

#include "internal.h"
#include "platform/zero_copy.h"

int asyncio__zc_pipe_open(int fds[2])
{
    fds[0] = fds[1] = -1;
    return ASYNCIO_ENOTSUP;
}

int asyncio__zc_splice(int in_fd, int out_fd, size_t len, size_t *n_out)
{
    (void)in_fd;
    (void)out_fd;
    (void)len;
    (void)n_out;
    return ASYNCIO_ENOTSUP;
}

int asyncio__zc_sendfile(int out_fd, int in_fd, size_t len, size_t *n_out)
{
    (void)out_fd;
    (void)in_fd;
    (void)len;
    (void)n_out;
    return ASYNCIO_ENOTSUP;
}
