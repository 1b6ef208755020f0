/*
 * zero_copy.h's shared part on Windows: the statistics, and fd kinds (only sockets are
 * told apart: the library's handles are sockets here). The copy calls themselves are
 * ASYNCIO_ENOTSUP (zero_copy_none.c), so asyncio_copy takes its buffered path. TransmitFile
 * would be the sendfile twin; not used yet (docs/backends.md).
 */
#include "internal.h"
#include "platform/win.h"
#include "platform/zero_copy.h"

_Atomic uint64_t asyncio__zero_copy_splice_bytes;
_Atomic uint64_t asyncio__zero_copy_sendfile_bytes;

asyncio__fd_kind asyncio__fd_kind_of(int fd)
{
    int type = 0, len = sizeof type;
    if (fd < 0 || getsockopt(asyncio__win_sock(fd), SOL_SOCKET, SO_TYPE, (char *)&type, &len) != 0)
        return ASYNCIO__FD_OTHER;
    return ASYNCIO__FD_SOCKET;
}

void asyncio__zc_pipe_close(int fds[2])
{
    fds[0] = fds[1] = -1; /* asyncio__zc_pipe_open never opens anything here */
}
