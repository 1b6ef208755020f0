/*
 * watch_os.h where there is no inotify (macOS, the BSDs, Windows): every
 * watcher fails with ASYNCIO_ENOTSUP, listed in docs/backends.md. kqueue's
 * EVFILT_VNODE (NOTE_WRITE on the directory's fd) says only that a directory
 * changed, not which entry or how; the watcher reports named create / modify
 * / delete / rename events, which would need a rescan-and-diff of the
 * directory on each change. Windows' ReadDirectoryChangesW fits those events
 * (created, modified, removed, renamed old / new name, overflow as
 * ERROR_NOTIFY_ENUM_DIR), but it completes an overlapped read on a directory
 * handle, which the readiness reactor cannot wait on: it needs an IOCP
 * completion path in the reactor first. Not done yet.
 */
#include "platform/watch_os.h"

#include <unistd.h>

#include "internal.h"

int asyncio__watch_os_open(const char *dir, int *fd_out)
{
    (void)dir;
    (void)fd_out;
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
    if (fd >= 0)
        close(fd);
}
