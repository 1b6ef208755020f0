/*
 * inotify behind watch_os.h (Linux; CMake picks watch_os_none.c elsewhere).
 */
#include "platform/watch_os.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#include <sys/inotify.h>

#define WATCH_MASK                                                                      \
    (IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | \
     IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

int asyncio__watch_os_open(const char *dir, int *fd_out)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (inotify_add_watch(fd, dir, WATCH_MASK) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    *fd_out = fd;
    return 0;
}

int asyncio__watch_os_read(int fd, void *buf, size_t cap, size_t *n_out)
{
    ssize_t n;
    do {
        n = read(fd, buf, cap);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? ASYNCIO_EAGAIN : -errno;
    *n_out = (size_t)n;
    return 0;
}

static asyncio__watch_raw_kind kind_of(uint32_t mask)
{
    if (mask & IN_Q_OVERFLOW)
        return ASYNCIO__WATCH_RAW_OVERFLOW;
    if (mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT))
        return ASYNCIO__WATCH_RAW_GONE;
    if (mask & IN_CREATE)
        return ASYNCIO__WATCH_RAW_CREATE;
    if (mask & IN_DELETE)
        return ASYNCIO__WATCH_RAW_DELETE;
    if (mask & IN_MOVED_FROM)
        return ASYNCIO__WATCH_RAW_MOVED_FROM;
    if (mask & IN_MOVED_TO)
        return ASYNCIO__WATCH_RAW_MOVED_TO;
    if (mask & IN_MODIFY)
        return ASYNCIO__WATCH_RAW_MODIFY;
    return ASYNCIO__WATCH_RAW_OTHER;
}

int asyncio__watch_os_parse(const void *buf, size_t len, size_t *off, asyncio__watch_raw *out)
{
    struct inotify_event ev;
    if (*off + sizeof ev > len)
        return 0;
    const char *p = (const char *)buf + *off;
    memcpy(&ev, p, sizeof ev); /* the buffer need not be aligned for the struct */
    if (*off + sizeof ev + ev.len > len)
        return 0;
    out->kind = kind_of(ev.mask);
    out->cookie = ev.cookie;
    out->is_dir = (ev.mask & IN_ISDIR) != 0;
    out->name = ev.len > 0 ? p + sizeof ev : ""; /* NUL-padded by the kernel */
    *off += sizeof ev + ev.len;
    return 1;
}

void asyncio__watch_os_close(int fd)
{
    if (fd >= 0)
        close(fd);
}
