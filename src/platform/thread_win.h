/*
 * Win32 types behind thread.h (included from it on _WIN32 only): native SRWLOCK,
 * CONDITION_VARIABLE and thread handles, no pthreads emulation, so an MSVC build needs
 * nothing more. An SRWLOCK needs no destruction and has a static initialiser, so
 * asyncio__mutex_init cannot fail here.
 */
#ifndef ASYNCIO_PLATFORM_THREAD_WIN_H
#define ASYNCIO_PLATFORM_THREAD_WIN_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

typedef struct asyncio__mutex {
    SRWLOCK m;
} asyncio__mutex;

/* Static initialiser for process-wide mutexes. */
#define ASYNCIO__MUTEX_INIT \
    {                       \
        SRWLOCK_INIT        \
    }

static inline int asyncio__mutex_init(asyncio__mutex *mu)
{
    InitializeSRWLock(&mu->m);
    return 0;
}

static inline void asyncio__mutex_destroy(asyncio__mutex *mu)
{
    (void)mu; /* an SRWLOCK owns no kernel object */
}

static inline void asyncio__mutex_lock(asyncio__mutex *mu)
{
    AcquireSRWLockExclusive(&mu->m);
}

static inline void asyncio__mutex_unlock(asyncio__mutex *mu)
{
    ReleaseSRWLockExclusive(&mu->m);
}

typedef struct asyncio__cond {
    CONDITION_VARIABLE c;
} asyncio__cond;

/* A joinable thread: its handle, closed by asyncio__thread_join. */
typedef struct asyncio__thread {
    HANDLE th;
} asyncio__thread;

#endif
