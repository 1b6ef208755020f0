/*
 * fd_io.h on Windows: the "fds" the reactor can wait on are sockets (the IOCP backend polls
 * sockets through AFD), so asyncio_async_fd accepts sockets only; any other handle gets
 * ASYNCIO_ENOTSUP (docs/backends.md). There is no SIGPIPE: the guard does nothing.
 */
#include "platform/fd_io.h"

#include "internal.h"
#include "platform/win.h"

int asyncio__fd_probe(int fd, bool *is_socket, bool *is_stream)
{
    if (fd < 0)
        return ASYNCIO_EBADF;
    int type = 0, len = sizeof type;
    if (getsockopt(asyncio__win_sock(fd), SOL_SOCKET, SO_TYPE, (char *)&type, &len) != 0) {
        int rc = asyncio__wsa_error();
        return rc == ASYNCIO_ENOTSOCK ? ASYNCIO_ENOTSUP : rc;
    }
    *is_socket = true;
    *is_stream = type == SOCK_STREAM;
    return 0;
}

static int io_result(int n, size_t *n_out)
{
    if (n >= 0) {
        *n_out = (size_t)n;
        return 0;
    }
    return asyncio__wsa_error();
}

int asyncio__fd_read(int fd, void *buf, size_t len, size_t *n_out)
{
    int n = recv(asyncio__win_sock(fd), buf, len > INT_MAX ? INT_MAX : (int)len, 0);
    return io_result(n, n_out);
}

int asyncio__fd_write(int fd, bool is_socket, const void *buf, size_t len, size_t *n_out)
{
    if (!is_socket)
        return ASYNCIO_ENOTSUP;
    int n = send(asyncio__win_sock(fd), buf, len > INT_MAX ? INT_MAX : (int)len, 0);
    return io_result(n, n_out);
}

void asyncio__sigpipe_begin(asyncio__sigpipe_guard *g)
{
    (void)g;
}

void asyncio__sigpipe_end(asyncio__sigpipe_guard *g, bool failed_with_epipe)
{
    (void)g;
    (void)failed_with_epipe;
}
