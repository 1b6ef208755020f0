/*
 * Condition variable creation and timed wait on macOS, which has no
 * pthread_condattr_setclock: the wait is relative
 * (pthread_cond_timedwait_relative_np), so a change of the wall clock cannot
 * stretch or cut it, as CLOCK_MONOTONIC guarantees elsewhere (cond_posix.c).
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "internal.h"
#include "platform/thread.h"

int asyncio__cond_init(asyncio__cond *cv)
{
    return -pthread_cond_init(&cv->c, NULL);
}

bool asyncio__cond_timedwait(asyncio__cond *cv, asyncio__mutex *mu, uint64_t ms)
{
    struct timespec rel = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    int rc = pthread_cond_timedwait_relative_np(&cv->c, &mu->m, &rel);
    ASYNCIO_CHECK(rc == 0 || rc == ETIMEDOUT);
    return rc == 0;
}
