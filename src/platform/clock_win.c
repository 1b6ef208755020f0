/* Monotonic clock for poller timeouts on Windows: QueryPerformanceCounter (platform.h). */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include "platform/platform.h"

uint64_t asyncio__clock_now_ms(void)
{
    LARGE_INTEGER freq; /* fixed at boot; read from user space, no syscall */
    QueryPerformanceFrequency(&freq);
    LARGE_INTEGER now;
    QueryPerformanceCounter(&now);
    uint64_t ticks = (uint64_t)now.QuadPart, hz = (uint64_t)freq.QuadPart;
    return ticks / hz * 1000u + ticks % hz * 1000u / hz;
}

uint64_t asyncio__clock_now_ns(void)
{
    LARGE_INTEGER freq;
    QueryPerformanceFrequency(&freq);
    LARGE_INTEGER now;
    QueryPerformanceCounter(&now);
    uint64_t ticks = (uint64_t)now.QuadPart, hz = (uint64_t)freq.QuadPart;
    /* whole seconds, then the remainder: no overflow for ~584 years of uptime */
    return ticks / hz * 1000000000u + ticks % hz * 1000000000u / hz;
}
