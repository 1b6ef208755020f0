/*
 * Threads and locks for the rest of the library. Core code calls these
 * wrappers, never pthreads directly, so a Windows port replaces this file
 * (SRWLOCK / CONDITION_VARIABLE) and nothing else.
 */
#ifndef ASYNCIO_PLATFORM_THREAD_H
#define ASYNCIO_PLATFORM_THREAD_H

#include <errno.h>
#include <pthread.h>

#include "internal.h"

typedef struct asyncio__mutex {
    pthread_mutex_t m;
} asyncio__mutex;

static inline int asyncio__mutex_init(asyncio__mutex *mu)
{
    return -pthread_mutex_init(&mu->m, NULL);
}

static inline void asyncio__mutex_destroy(asyncio__mutex *mu)
{
    pthread_mutex_destroy(&mu->m);
}

static inline void asyncio__mutex_lock(asyncio__mutex *mu)
{
    ASYNCIO_CHECK(pthread_mutex_lock(&mu->m) == 0);
}

static inline void asyncio__mutex_unlock(asyncio__mutex *mu)
{
    ASYNCIO_CHECK(pthread_mutex_unlock(&mu->m) == 0);
}

#endif
