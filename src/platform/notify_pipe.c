/*
 * The poller's wake-up channel where there is no eventfd (macOS, the BSDs;
 * CMake picks this file, notify_eventfd.c on Linux): a non-blocking,
 * close-on-exec pipe. signal() writes one byte (EAGAIN when the pipe is full
 * is fine: it is readable already); drain() reads until EAGAIN. The kqueue
 * backend wakes its waiter with EVFILT_USER instead and uses this only where
 * EVFILT_USER is missing.
 */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "internal.h"
#include "platform/os_table.h"
#include "platform/pipe.h"
#include "platform/platform.h"

int asyncio__notify_init(asyncio__notify *n)
{
    int fds[2];
    int rc = asyncio__pipe_open(fds);
    if (rc < 0)
        return rc;
    n->read_fd = fds[0];
    n->write_fd = fds[1];
    return 0;
}

void asyncio__notify_close(asyncio__notify *n)
{
    asyncio__os.close(n->read_fd);
    asyncio__os.close(n->write_fd);
    n->read_fd = n->write_fd = -1;
}

void asyncio__notify_signal(asyncio__notify *n)
{
    char b = 1;
    ssize_t r;
    do {
        r = asyncio__os.write(n->write_fd, &b, 1);
    } while (r < 0 && errno == EINTR);
}

void asyncio__notify_drain(asyncio__notify *n)
{
    char buf[128];
    for (;;) {
        ssize_t r = asyncio__os.read(n->read_fd, buf, sizeof buf);
        if (r > 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        break;
    }
}
