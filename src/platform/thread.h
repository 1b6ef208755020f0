/*
 * Threads and locks for the rest of the library. Core code calls these
 * wrappers, never pthreads directly, so a Windows port replaces this file
 * (SRWLOCK / CONDITION_VARIABLE) and nothing else.
 */
#ifndef ASYNCIO_PLATFORM_THREAD_H
#define ASYNCIO_PLATFORM_THREAD_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* The types and the inline lock calls are per OS; the functions below are common. */
#ifdef _WIN32
#include "platform/thread_win.h"
#else
#include <pthread.h>

typedef struct asyncio__mutex {
    pthread_mutex_t m;
} asyncio__mutex;

/* Static initialiser for process-wide mutexes. */
#define ASYNCIO__MUTEX_INIT {PTHREAD_MUTEX_INITIALIZER}

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

typedef struct asyncio__cond {
    pthread_cond_t c;
} asyncio__cond;

/* A joinable thread (the multi-thread runtime's workers). */
typedef struct asyncio__thread {
    pthread_t th;
} asyncio__thread;
#endif

/* Condition variables use CLOCK_MONOTONIC so timed waits ignore wall-clock jumps. */
int asyncio__cond_init(asyncio__cond *cv);
void asyncio__cond_destroy(asyncio__cond *cv);
void asyncio__cond_wait(asyncio__cond *cv, asyncio__mutex *mu);
/* Returns false when `ms` elapsed without a signal (spurious wake-ups return true). */
bool asyncio__cond_timedwait(asyncio__cond *cv, asyncio__mutex *mu, uint64_t ms);
void asyncio__cond_signal(asyncio__cond *cv);
void asyncio__cond_broadcast(asyncio__cond *cv);

/*
 * Every thread the library starts (workers, blocking pool) has at least this much stack,
 * or the C library's default when that is larger (glibc: 8 MiB; musl: 128 KiB, raised).
 * Tokio's workers get 2 MiB too.
 */
#define ASYNCIO__THREAD_MIN_STACK ((size_t)2 << 20)

/* Starts a detached thread running fn(arg). 0 or a negative error (EAGAIN, ENOMEM). */
int asyncio__thread_spawn_detached(void *(*fn)(void *), void *arg);

/* Starts a joinable thread running fn(arg). 0 or a negative error (EAGAIN, ENOMEM). */
int asyncio__thread_spawn(asyncio__thread *t, void *(*fn)(void *), void *arg);

/* Waits for the thread to exit (its writes happen-before the return). */
void asyncio__thread_join(asyncio__thread *t);

/* Gives the CPU to another thread (sched_yield). */
void asyncio__thread_yield(void);

/* Sleeps the calling thread for about `ms` milliseconds (signals may end it early). */
void asyncio__sleep_ms(uint32_t ms);

/*
 * A spinlock for critical sections of a few instructions (linking a task
 * into a list): lock is one exchange, unlock one release store, where an
 * uncontended pthread mutex pays an atomic read-modify-write on both. A
 * waiter spins briefly, then yields the CPU, so a holder preempted on a
 * busy machine is not starved. Never hold it across anything that blocks.
 */
typedef struct asyncio__spinlock {
    _Atomic bool held;
} asyncio__spinlock;

#define ASYNCIO__SPINLOCK_INIT {false}

static inline void asyncio__spin_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static inline void asyncio__spin_lock(asyncio__spinlock *l)
{
    for (unsigned spins = 0;; spins++) {
        /* acquire: pairs with the release in asyncio__spin_unlock. */
        if (!atomic_exchange_explicit(&l->held, true, memory_order_acquire))
            return;
        /* Wait on a plain load (no line ping-pong), then try again. */
        while (atomic_load_explicit(&l->held, memory_order_relaxed)) {
            if (++spins >= 100)
                asyncio__thread_yield();
            else
                asyncio__spin_pause();
        }
    }
}

static inline void asyncio__spin_unlock(asyncio__spinlock *l)
{
    atomic_store_explicit(&l->held, false, memory_order_release);
}

/* Online CPUs (at least 1). */
uint32_t asyncio__cpu_count(void);

#endif
