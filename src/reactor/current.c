/*
 * The thread's current driver: set by a scheduler thread while it runs a
 * runtime (and by white-box tests), read by leaf futures (sleep, async fd)
 * to find where to register. Kept apart from driver.c so that each driver
 * part can be tested without linking the others.
 */
#include "reactor/driver.h"

static _Thread_local asyncio__driver *tl_current;

asyncio__driver *asyncio__driver_current(void)
{
    return tl_current;
}

asyncio__driver *asyncio__driver_enter(asyncio__driver *d)
{
    asyncio__driver *prev = tl_current;
    tl_current = d;
    return prev;
}
