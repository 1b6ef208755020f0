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

/*
 * Attributes for a thread the library starts: at least ASYNCIO__THREAD_MIN_STACK bytes of
 * stack. These threads run users' poll functions and blocking jobs, which may keep large
 * buffers on the stack; the C library's default differs (glibc: RLIMIT_STACK, 8 MiB on
 * most systems; musl: 128 KiB). A larger default is kept, so glibc's is unchanged.
 */
static int thread_attr_init(pthread_attr_t *attr)
{
    int rc = pthread_attr_init(attr);
    if (rc != 0)
        return rc;
    size_t size = 0;
    if (pthread_attr_getstacksize(attr, &size) == 0 && size < ASYNCIO__THREAD_MIN_STACK)
        rc = pthread_attr_setstacksize(attr, ASYNCIO__THREAD_MIN_STACK);
    if (rc != 0)
        pthread_attr_destroy(attr);
    return rc;
}

int asyncio__thread_spawn_detached(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    int rc = thread_attr_init(&attr);
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
    pthread_attr_t attr;
    int rc = thread_attr_init(&attr);
    if (rc != 0)
        return -rc;
    rc = pthread_create(&t->th, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return -rc;
}

void asyncio__thread_join(asyncio__thread *t)
{
    ASYNCIO_CHECK(pthread_join(t->th, NULL) == 0);
}

void asyncio__thread_yield(void)
{
    sched_yield();
}

void asyncio__sleep_ms(uint32_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    (void)nanosleep(&ts, NULL); /* an early end (EINTR) only shortens a back-off */
}

uint32_t asyncio__cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 4096 ? (uint32_t)n : 1;
}
