/* Condition variables, detached and joinable threads over pthreads (see thread.h). */
#include "platform/thread.h"

#include <sched.h>
#include <time.h>
#include <unistd.h>

void asyncio__cond_destroy(asyncio__cond *cv)
{
    pthread_cond_destroy(&cv->c);
}

void asyncio__cond_wait(asyncio__cond *cv, asyncio__mutex *mu)
{
    ASYNCIO_CHECK(pthread_cond_wait(&cv->c, &mu->m) == 0);
}

void asyncio__cond_signal(asyncio__cond *cv)
{
    pthread_cond_signal(&cv->c);
}

void asyncio__cond_broadcast(asyncio__cond *cv)
{
    pthread_cond_broadcast(&cv->c);
}

int asyncio__thread_spawn_detached(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc != 0)
        return -rc;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    rc = pthread_create(&th, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return -rc;
}

int asyncio__thread_spawn(asyncio__thread *t, void *(*fn)(void *), void *arg)
{
    return -pthread_create(&t->th, NULL, fn, arg);
}

void asyncio__thread_join(asyncio__thread *t)
{
    ASYNCIO_CHECK(pthread_join(t->th, NULL) == 0);
}

void asyncio__thread_yield(void)
{
    sched_yield();
}

uint32_t asyncio__cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 4096 ? (uint32_t)n : 1;
}
