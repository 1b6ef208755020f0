/*
 * Zero-copy helpers shared by every OS (fd kinds, the statistics). The
 * syscalls: splice(2) and sendfile(2) on Linux (zero_copy_linux.c),
 * ASYNCIO_ENOTSUP elsewhere (zero_copy_none.c: the caller then copies
 * through a buffer). CMake picks the file. See zero_copy.h.
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
