/*
 * platform.h's notify channel on Windows. The only poller backend there, IOCP, has its own
 * wake-up (PostQueuedCompletionStatus, the backend's wake()), so the poller core never asks
 * for this channel; a backend without wake() cannot be built on Windows, and the calls
 * below say so instead of pretending.
 */
#include "internal.h"
#include "platform/platform.h"

int asyncio__notify_init(asyncio__notify *n)
{
    n->read_fd = n->write_fd = -1;
    return ASYNCIO_ENOTSUP;
}

void asyncio__notify_close(asyncio__notify *n)
{
    n->read_fd = n->write_fd = -1;
}

void asyncio__notify_signal(asyncio__notify *n)
{
    (void)n;
}

void asyncio__notify_drain(asyncio__notify *n)
{
    (void)n;
}
