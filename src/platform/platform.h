/*
 * Platform layer: the only place (with src/poller/) that calls the OS.
 *
 *   clock   monotonic milliseconds for timeouts.
 *   notify  a wake-up channel for the poller: eventfd on Linux, a
 *           non-blocking close-on-exec pipe elsewhere. signal() may be
 *           called from any thread; drain() only by the poller's owner.
 */
#ifndef ASYNCIO_PLATFORM_H
#define ASYNCIO_PLATFORM_H

#include <stdint.h>

/** Monotonic time in milliseconds (CLOCK_MONOTONIC). */
uint64_t asyncio__clock_now_ms(void);
/* Monotonic nanoseconds (observability: task/obs.h declares it too, for core code). */
uint64_t asyncio__clock_now_ns(void);

typedef struct asyncio__notify {
    int read_fd;  /* the fd to register for readability */
    int write_fd; /* equal to read_fd for eventfd */
} asyncio__notify;

/** Creates the channel. Returns 0 or a negative error (EMFILE, ENFILE, ENOMEM). */
int asyncio__notify_init(asyncio__notify *n);
/** Closes both ends. */
void asyncio__notify_close(asyncio__notify *n);
/** Makes read_fd readable. Never blocks; a full channel is already readable. */
void asyncio__notify_signal(asyncio__notify *n);
/** Empties the channel so read_fd stops being readable. */
void asyncio__notify_drain(asyncio__notify *n);

#endif
