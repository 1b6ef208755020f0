/*
 * The poller's wake-up channel on Linux (CMake picks this file; notify_pipe.c
 * elsewhere): one non-blocking eventfd. signal() adds 1 to its counter; if
 * the counter is saturated the write fails with EAGAIN, which is fine: the
 * fd is readable already. drain() reads the counter back to zero.
 */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "internal.h"
#include "platform/os_table.h"
#include "platform/platform.h"
#include <sys/eventfd.h>

int asyncio__notify_init(asyncio__notify *n)
{
    int fd = asyncio__os.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    n->read_fd = fd;
    n->write_fd = fd;
    return 0;
}

void asyncio__notify_close(asyncio__notify *n)
{
    asyncio__os.close(n->read_fd);
    n->read_fd = n->write_fd = -1;
}

void asyncio__notify_signal(asyncio__notify *n)
{
    uint64_t one = 1;
    ssize_t r;
    do {
        r = asyncio__os.write(n->write_fd, &one, sizeof one);
    } while (r < 0 && errno == EINTR);
}

void asyncio__notify_drain(asyncio__notify *n)
{
    uint64_t value;
    ssize_t r;
    do {
        r = asyncio__os.read(n->read_fd, &value, sizeof value);
    } while (r < 0 && errno == EINTR);
}
