/*
 * thread.h on Windows: CONDITION_VARIABLE over the SRWLOCK of asyncio__mutex, threads from
 * _beginthreadex (so the C runtime's per-thread state is set up and freed), the CPU count
 * from GetActiveProcessorCount. Timed waits use GetTickCount64-relative milliseconds,
 * which SleepConditionVariableSRW measures on the monotonic interrupt clock.
 */
#include <process.h>
#include <stdlib.h>

#include "platform/thread.h"
#include "util/alloc.h"

int asyncio__cond_init(asyncio__cond *cv)
{
    InitializeConditionVariable(&cv->c);
    return 0;
}

void asyncio__cond_destroy(asyncio__cond *cv)
{
    (void)cv; /* owns no kernel object */
}

void asyncio__cond_wait(asyncio__cond *cv, asyncio__mutex *mu)
{
    ASYNCIO_CHECK(SleepConditionVariableSRW(&cv->c, &mu->m, INFINITE, 0));
}

bool asyncio__cond_timedwait(asyncio__cond *cv, asyncio__mutex *mu, uint64_t ms)
{
    /* INFINITE is 0xFFFFFFFF: longer waits are cut to just below it (a spurious wake-up). */
    DWORD wait = ms >= (uint64_t)INFINITE ? INFINITE - 1 : (DWORD)ms;
    if (SleepConditionVariableSRW(&cv->c, &mu->m, wait, 0))
        return true;
    ASYNCIO_CHECK(GetLastError() == ERROR_TIMEOUT);
    return false;
}

void asyncio__cond_signal(asyncio__cond *cv)
{
    WakeConditionVariable(&cv->c);
}

void asyncio__cond_broadcast(asyncio__cond *cv)
{
    WakeAllConditionVariable(&cv->c);
}

/* The start routine and its argument, owned by the new thread (freed as it starts). */
typedef struct thread_start {
    void *(*fn)(void *);
    void *arg;
} thread_start;

static unsigned __stdcall thread_main(void *p)
{
    thread_start s = *(thread_start *)p;
    asyncio__free(p);
    s.fn(s.arg);
    return 0;
}

/* Starts a thread with ASYNCIO__THREAD_MIN_STACK bytes of stack; its handle or NULL. */
static HANDLE start_thread(void *(*fn)(void *), void *arg, int *err)
{
    thread_start *s = asyncio__malloc(sizeof *s);
    if (s == NULL) {
        *err = ASYNCIO_ENOMEM;
        return NULL;
    }
    s->fn = fn;
    s->arg = arg;
    uintptr_t h = _beginthreadex(NULL, (unsigned)ASYNCIO__THREAD_MIN_STACK, thread_main, s,
                                 STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
    if (h == 0) {
        asyncio__free(s);
        *err = ASYNCIO_EAGAIN;
        return NULL;
    }
    return (HANDLE)h;
}

int asyncio__thread_spawn_detached(void *(*fn)(void *), void *arg)
{
    int err = 0;
    HANDLE h = start_thread(fn, arg, &err);
    if (h == NULL)
        return err;
    CloseHandle(h); /* detached: the thread runs on, nobody joins it */
    return 0;
}

int asyncio__thread_spawn(asyncio__thread *t, void *(*fn)(void *), void *arg)
{
    int err = 0;
    t->th = start_thread(fn, arg, &err);
    return t->th != NULL ? 0 : err;
}

void asyncio__thread_join(asyncio__thread *t)
{
    ASYNCIO_CHECK(WaitForSingleObject(t->th, INFINITE) == WAIT_OBJECT_0);
    CloseHandle(t->th);
    t->th = NULL;
}

void asyncio__thread_yield(void)
{
    SwitchToThread();
}

void asyncio__sleep_ms(uint32_t ms)
{
    Sleep(ms);
}

uint32_t asyncio__cpu_count(void)
{
    DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
    return n > 0 && n < 4096 ? (uint32_t)n : 1;
}
