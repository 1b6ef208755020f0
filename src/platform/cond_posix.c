/*
 * Condition variable creation and timed wait on CLOCK_MONOTONIC
 * (pthread_condattr_setclock): Linux and the BSDs. macOS has no
 * pthread_condattr_setclock: cond_darwin.c. CMake picks the file.
 */
#include <errno.h>
#include <time.h>

#include "internal.h"
#include "platform/thread.h"

int asyncio__cond_init(asyncio__cond *cv)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc != 0)
        return -rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&cv->c, &attr);
    pthread_condattr_destroy(&attr);
    return -rc;
}

bool asyncio__cond_timedwait(asyncio__cond *cv, asyncio__mutex *mu, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rc = pthread_cond_timedwait(&cv->c, &mu->m, &ts);
    ASYNCIO_CHECK(rc == 0 || rc == ETIMEDOUT);
    return rc == 0;
}
