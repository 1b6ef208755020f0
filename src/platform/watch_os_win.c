/*
 * watch_os.h on Windows: not ported yet; every watcher fails with ASYNCIO_ENOTSUP
 * (docs/backends.md). ReadDirectoryChangesW fits the watcher's raw events (created,
 * modified, removed, renamed old / new name, overflow as ERROR_NOTIFY_ENUM_DIR), but its
 * completion is an overlapped read on a directory handle, which the readiness reactor
 * cannot wait on: it needs an IOCP completion path in the reactor first.
 */
#include "internal.h"
#include "platform/watch_os.h"

int asyncio__watch_os_open(const char *dir, int *fd_out)
{
    (void)dir;
    *fd_out = -1;
    return ASYNCIO_ENOTSUP;
}

int asyncio__watch_os_read(int fd, void *buf, size_t cap, size_t *n_out)
{
    (void)fd;
    (void)buf;
    (void)cap;
    (void)n_out;
    return ASYNCIO_ENOTSUP;
}

int asyncio__watch_os_parse(const void *buf, size_t len, size_t *off, asyncio__watch_raw *out)
{
    (void)buf;
    (void)len;
    (void)off;
    (void)out;
    return 0;
}

void asyncio__watch_os_close(int fd)
{
    (void)fd; /* asyncio__watch_os_open never opens anything here */
}
