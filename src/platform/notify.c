/*
 * The poller's wake-up channel.
 *
 * Linux: one non-blocking eventfd. signal() adds 1 to its counter; if the
 * counter is saturated the write fails with EAGAIN, which is fine: the fd
 * is readable already. drain() reads the counter back to zero.
 *
 * Elsewhere: a non-blocking pipe. signal() writes one byte (EAGAIN when the
 * pipe is full is fine for the same reason); drain() reads until EAGAIN.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "internal.h"
#include "platform/platform.h"

#ifdef __linux__
#include <sys/eventfd.h>

int asyncio__notify_init(asyncio__notify *n)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    n->read_fd = fd;
    n->write_fd = fd;
    return 0;
}

void asyncio__notify_close(asyncio__notify *n)
{
    close(n->read_fd);
    n->read_fd = n->write_fd = -1;
}

void asyncio__notify_signal(asyncio__notify *n)
{
    uint64_t one = 1;
    ssize_t r;
    do {
        r = write(n->write_fd, &one, sizeof one);
    } while (r < 0 && errno == EINTR);
}

void asyncio__notify_drain(asyncio__notify *n)
{
    uint64_t value;
    ssize_t r;
    do {
        r = read(n->read_fd, &value, sizeof value);
    } while (r < 0 && errno == EINTR);
}

#else /* pipe fallback */

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

int asyncio__notify_init(asyncio__notify *n)
{
    int fds[2];
    if (pipe(fds) < 0)
        return -errno;
    int rc = set_flags(fds[0]);
    if (rc == 0)
        rc = set_flags(fds[1]);
    if (rc < 0) {
        close(fds[0]);
        close(fds[1]);
        return rc;
    }
    n->read_fd = fds[0];
    n->write_fd = fds[1];
    return 0;
}

void asyncio__notify_close(asyncio__notify *n)
{
    close(n->read_fd);
    close(n->write_fd);
    n->read_fd = n->write_fd = -1;
}

void asyncio__notify_signal(asyncio__notify *n)
{
    char b = 1;
    ssize_t r;
    do {
        r = write(n->write_fd, &b, 1);
    } while (r < 0 && errno == EINTR);
}

void asyncio__notify_drain(asyncio__notify *n)
{
    char buf[128];
    for (;;) {
        ssize_t r = read(n->read_fd, buf, sizeof buf);
        if (r > 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        break;
    }
}
#endif
