/* Monotonic clock for poller timeouts. */
#include <time.h>

#include "platform/os_table.h"
#include "platform/platform.h"

uint64_t asyncio__clock_now_ms(void)
{
    struct timespec ts;
    asyncio__os.clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t asyncio__clock_now_ns(void)
{
    struct timespec ts;
    asyncio__os.clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
