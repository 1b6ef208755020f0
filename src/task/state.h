/*
 * The task state word: one atomic 64-bit value per task that holds its
 * lifecycle flags and its reference count. This file pair is the only
 * code that changes the word; every transition returns an action the
 * caller must carry out (submit the task, deallocate it, ...), in the
 * manner of Tokio's runtime/task/state.rs.
 *
 * Bit table
 *
 *   bit  name            meaning
 *   0    RUNNING         a worker has claimed the task and is polling it
 *                        (also set by shutdown to claim an idle task)
 *   1    COMPLETE        the future finished (or was cancelled and its
 *                        output slot holds the cancellation); never cleared
 *   2    NOTIFIED        the task is in a run queue, or must be re-queued by
 *                        the thread that is polling it
 *   3    JOIN_INTEREST   a JoinHandle exists and wants the output
 *   4    JOIN_WAKER      the JoinHandle has stored a waker in the task; while
 *                        set and not COMPLETE only the JoinHandle touches it,
 *                        once COMPLETE only the runtime does
 *   5    CANCELLED       abort or shutdown asked the task to stop
 *   6-63 REF_COUNT       references: one per queue entry (the Notified
 *                        handle), per waker, per JoinHandle, and the owner
 *                        list's reference
 *
 * A new task starts with REF_COUNT 3 (owner list, JoinHandle, the first
 * Notified queue entry), NOTIFIED and JOIN_INTEREST.
 *
 * Orderings: every read-modify-write that hands the task to another thread
 * (submit, complete, the join-waker handshake) is acq_rel, so the poll's
 * writes to the task's state and output happen-before whoever observes the
 * new flags. ref_inc is relaxed (a reference can only be created from an
 * existing one, which already orders it); ref_dec is acq_rel so the thread
 * that frees sees every other thread's last writes.
 *
 * Thread-safety: every function is safe from any thread.
 */
#ifndef ASYNCIO_TASK_STATE_H
#define ASYNCIO_TASK_STATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

#define ASYNCIO__ST_RUNNING ((uint64_t)1 << 0)
#define ASYNCIO__ST_COMPLETE ((uint64_t)1 << 1)
#define ASYNCIO__ST_NOTIFIED ((uint64_t)1 << 2)
#define ASYNCIO__ST_JOIN_INTEREST ((uint64_t)1 << 3)
#define ASYNCIO__ST_JOIN_WAKER ((uint64_t)1 << 4)
#define ASYNCIO__ST_CANCELLED ((uint64_t)1 << 5)
#define ASYNCIO__ST_LIFECYCLE (ASYNCIO__ST_RUNNING | ASYNCIO__ST_COMPLETE)
#define ASYNCIO__ST_REF_SHIFT 6
#define ASYNCIO__ST_REF_ONE ((uint64_t)1 << ASYNCIO__ST_REF_SHIFT)
#define ASYNCIO__ST_FLAGS (ASYNCIO__ST_REF_ONE - 1)

typedef struct asyncio__task_state {
    _Atomic uint64_t word;
} asyncio__task_state;

/* A snapshot of the word, for the queries below. */
static inline uint64_t asyncio__st_refs(uint64_t s)
{
    return s >> ASYNCIO__ST_REF_SHIFT;
}

/*
 * Initial state: 3 references (owner list, JoinHandle, first queue entry),
 * NOTIFIED, JOIN_INTEREST; `detached` (spawned without a JoinHandle): 2
 * references and no JOIN_INTEREST, as if the handle had been dropped at
 * once, without the two RMWs that would take.
 */
static inline void asyncio__task_state_init(asyncio__task_state *st, bool detached);

/* Current value (acquire). */
uint64_t asyncio__task_state_load(const asyncio__task_state *st);

typedef enum asyncio__to_running {
    ASYNCIO__RUN_SUCCESS,   /* polled by the caller now */
    ASYNCIO__RUN_CANCELLED, /* claimed, but cancelled: run the cancel path instead of poll */
    ASYNCIO__RUN_FAILED,    /* running elsewhere or complete: the queue's ref was dropped */
    ASYNCIO__RUN_DEALLOC,   /* as FAILED, and that was the last reference: free the task */
} asyncio__to_running;

/* Called by a worker that popped the task from a queue (consumes NOTIFIED). */
ASYNCIO__MUST_USE static inline asyncio__to_running
asyncio__task_state_to_running(asyncio__task_state *st);

typedef enum asyncio__to_idle {
    ASYNCIO__IDLE_OK,          /* parked; the queue's ref was dropped */
    ASYNCIO__IDLE_OK_NOTIFIED, /* woken while running: caller must submit it again (ref kept) */
    ASYNCIO__IDLE_OK_DEALLOC,  /* parked and that was the last reference */
    ASYNCIO__IDLE_CANCELLED,   /* cancelled while running: caller must run the cancel path */
} asyncio__to_idle;

/* Called after a poll returned PENDING. */
ASYNCIO__MUST_USE static inline asyncio__to_idle
asyncio__task_state_to_idle(asyncio__task_state *st);

/*
 * RUNNING -> COMPLETE after the output was stored. Returns the new
 * snapshot, so the caller knows whether to wake the join waker
 * (JOIN_WAKER) or drop the output itself (no JOIN_INTEREST).
 */
ASYNCIO__MUST_USE static inline uint64_t
asyncio__task_state_to_complete(asyncio__task_state *st);

typedef enum asyncio__notify_action {
    ASYNCIO__NOTIFY_NOTHING, /* already queued, running (it will re-queue) or complete */
    ASYNCIO__NOTIFY_SUBMIT,  /* caller must push the task on a run queue (a ref was added) */
    ASYNCIO__NOTIFY_DEALLOC, /* by-value wake dropped the last reference: free the task */
} asyncio__notify_action;

/* wake_by_ref: the waker keeps its own reference. */
ASYNCIO__MUST_USE static inline asyncio__notify_action
asyncio__task_state_notify_by_ref(asyncio__task_state *st);

/* wake (by value): the waker's reference is consumed by this call. */
ASYNCIO__MUST_USE static inline asyncio__notify_action
asyncio__task_state_notify_by_val(asyncio__task_state *st);

/*
 * Abort: sets CANCELLED. Returns true when the task was idle and the caller
 * must submit it (a ref was added) so a worker runs its cancel path.
 */
ASYNCIO__MUST_USE bool asyncio__task_state_notify_and_cancel(asyncio__task_state *st);

/*
 * Runtime shutdown: sets CANCELLED and, if the task is idle, claims it
 * (sets RUNNING). Returns true when the caller claimed it and must run the
 * cancel path itself.
 */
ASYNCIO__MUST_USE bool asyncio__task_state_to_shutdown(asyncio__task_state *st);

/* What the JoinHandle must clean up itself when it is dropped. */
#define ASYNCIO__JH_DROP_OUTPUT 1u /* the task is complete: drop its output */
#define ASYNCIO__JH_DROP_WAKER 2u  /* the join-waker slot is the handle's: drop what it holds */

/*
 * JoinHandle dropped: clears JOIN_INTEREST (and JOIN_WAKER if the task is
 * not complete). Returns ASYNCIO__JH_* flags. The JoinHandle's reference is
 * still held; the caller drops it afterwards.
 */
ASYNCIO__MUST_USE static inline unsigned
asyncio__task_state_join_handle_dropped(asyncio__task_state *st);

/*
 * JoinHandle dropped after the task completed, with the join-waker slot in
 * the handle's hands (the caller loaded COMPLETE set and JOIN_WAKER clear:
 * neither changes again, only the handle could set JOIN_WAKER) and its
 * output and slot already dropped: clears JOIN_INTEREST and drops the
 * handle's reference in one RMW. Returns true when that was the last
 * reference.
 */
ASYNCIO__MUST_USE static inline bool
asyncio__task_state_join_handle_drop_complete(asyncio__task_state *st);

/*
 * Runtime, after waking the join waker of a completed task: clears
 * JOIN_WAKER and returns the new snapshot. If it no longer has
 * JOIN_INTEREST, the handle is gone and the runtime drops the waker.
 */
ASYNCIO__MUST_USE uint64_t asyncio__task_state_unset_waker_after_complete(asyncio__task_state *st);

/*
 * JoinHandle stores a waker: sets JOIN_WAKER (which must be clear). Returns
 * false if the task completed first: the output is ready, the waker was not
 * published (the caller keeps it).
 */
ASYNCIO__MUST_USE bool asyncio__task_state_set_join_waker(asyncio__task_state *st);

/*
 * JoinHandle takes its waker back to replace it: clears JOIN_WAKER. Returns
 * false if the task completed first (the runtime owns the waker now).
 */
ASYNCIO__MUST_USE bool asyncio__task_state_unset_join_waker(asyncio__task_state *st);

/* References. ref_dec returns true when it dropped the last one. */
static inline void asyncio__task_state_ref_inc(asyncio__task_state *st);
ASYNCIO__MUST_USE static inline bool asyncio__task_state_ref_dec(asyncio__task_state *st);
/* Drops `n` references at once; true when none remain. */
ASYNCIO__MUST_USE static inline bool asyncio__task_state_ref_dec_n(asyncio__task_state *st,
                                                                 uint64_t n);

/* ------------------------------------------------------------------------ */
/* The transitions of every spawn, poll, wake and join, inline (the rest: state.c). */

#define ASYNCIO__ST_LOAD(st) atomic_load_explicit(&(st)->word, memory_order_acquire)
#define ASYNCIO__ST_CAS(st, cur, next)                                                             \
    atomic_compare_exchange_weak_explicit(&(st)->word, &(cur), (next), memory_order_acq_rel,      \
                                          memory_order_acquire)

static inline bool asyncio__st_is_idle(uint64_t s)
{
    return (s & ASYNCIO__ST_LIFECYCLE) == 0;
}

static inline uint64_t asyncio__st_ref_dec_checked(uint64_t s)
{
    ASYNCIO_CHECK(asyncio__st_refs(s) > 0); /* underflow = corruption */
    return s - ASYNCIO__ST_REF_ONE;
}

static inline uint64_t asyncio__st_ref_inc_checked(uint64_t s)
{
    ASYNCIO_CHECK(asyncio__st_refs(s) < (UINT64_MAX >> ASYNCIO__ST_REF_SHIFT));
    return s + ASYNCIO__ST_REF_ONE;
}

static inline asyncio__to_running asyncio__task_state_to_running(asyncio__task_state *st)
{
    uint64_t cur = ASYNCIO__ST_LOAD(st), next;
    asyncio__to_running action;
    do {
        ASYNCIO_CHECK(cur & ASYNCIO__ST_NOTIFIED);
        if (!asyncio__st_is_idle(cur)) {
            /* Running elsewhere or complete: this stale queue entry just lets go. */
            next = asyncio__st_ref_dec_checked(cur);
            action = asyncio__st_refs(next) == 0 ? ASYNCIO__RUN_DEALLOC : ASYNCIO__RUN_FAILED;
        } else {
            next = (cur | ASYNCIO__ST_RUNNING) & ~ASYNCIO__ST_NOTIFIED;
            action = (cur & ASYNCIO__ST_CANCELLED) ? ASYNCIO__RUN_CANCELLED : ASYNCIO__RUN_SUCCESS;
        }
    } while (!ASYNCIO__ST_CAS(st, cur, next));
    return action;
}

static inline asyncio__to_idle asyncio__task_state_to_idle(asyncio__task_state *st)
{
    uint64_t cur = ASYNCIO__ST_LOAD(st), next;
    asyncio__to_idle action;
    do {
        ASYNCIO_CHECK(cur & ASYNCIO__ST_RUNNING);
        if (cur & ASYNCIO__ST_CANCELLED)
            return ASYNCIO__IDLE_CANCELLED; /* stays RUNNING: the caller cancels it now */
        next = cur & ~ASYNCIO__ST_RUNNING;
        if (next & ASYNCIO__ST_NOTIFIED) {
            /* Woken while polled: the polling reference moves to the new queue entry. */
            action = ASYNCIO__IDLE_OK_NOTIFIED;
        } else {
            next = asyncio__st_ref_dec_checked(next);
            action = asyncio__st_refs(next) == 0 ? ASYNCIO__IDLE_OK_DEALLOC : ASYNCIO__IDLE_OK;
        }
    } while (!ASYNCIO__ST_CAS(st, cur, next));
    return action;
}

static inline asyncio__notify_action asyncio__task_state_notify_by_ref(asyncio__task_state *st)
{
    uint64_t cur = ASYNCIO__ST_LOAD(st), next;
    do {
        if (cur & (ASYNCIO__ST_COMPLETE | ASYNCIO__ST_NOTIFIED))
            return ASYNCIO__NOTIFY_NOTHING;
        if (cur & ASYNCIO__ST_RUNNING) {
            /* The poller re-queues it in to_idle. */
            next = cur | ASYNCIO__ST_NOTIFIED;
        } else {
            next = asyncio__st_ref_inc_checked(cur | ASYNCIO__ST_NOTIFIED);
        }
    } while (!ASYNCIO__ST_CAS(st, cur, next));
    return (cur & ASYNCIO__ST_RUNNING) ? ASYNCIO__NOTIFY_NOTHING : ASYNCIO__NOTIFY_SUBMIT;
}

static inline asyncio__notify_action asyncio__task_state_notify_by_val(asyncio__task_state *st)
{
    uint64_t cur = ASYNCIO__ST_LOAD(st), next;
    asyncio__notify_action action;
    do {
        if (cur & ASYNCIO__ST_RUNNING) {
            /* Mark for re-queue; the waker's reference is released. */
            next = asyncio__st_ref_dec_checked(cur | ASYNCIO__ST_NOTIFIED);
            ASYNCIO_CHECK(asyncio__st_refs(next) > 0); /* the poller still holds one */
            action = ASYNCIO__NOTIFY_NOTHING;
        } else if (cur & (ASYNCIO__ST_COMPLETE | ASYNCIO__ST_NOTIFIED)) {
            next = asyncio__st_ref_dec_checked(cur);
            action = asyncio__st_refs(next) == 0 ? ASYNCIO__NOTIFY_DEALLOC
                                                 : ASYNCIO__NOTIFY_NOTHING;
        } else {
            /* The waker's reference becomes the queue entry's. */
            next = cur | ASYNCIO__ST_NOTIFIED;
            action = ASYNCIO__NOTIFY_SUBMIT;
        }
    } while (!ASYNCIO__ST_CAS(st, cur, next));
    return action;
}

static inline void asyncio__task_state_ref_inc(asyncio__task_state *st)
{
    /* Relaxed: a new reference is made from an existing one, which orders it. */
    uint64_t prev = atomic_fetch_add_explicit(&st->word, ASYNCIO__ST_REF_ONE, memory_order_relaxed);
    ASYNCIO_CHECK(asyncio__st_refs(prev) > 0 &&
                  asyncio__st_refs(prev) < (UINT64_MAX >> ASYNCIO__ST_REF_SHIFT));
}

static inline bool asyncio__task_state_ref_dec(asyncio__task_state *st)
{
    return asyncio__task_state_ref_dec_n(st, 1);
}

static inline bool asyncio__task_state_ref_dec_n(asyncio__task_state *st, uint64_t n)
{
    /* acq_rel: the thread that drops the last reference sees every other thread's writes. */
    uint64_t prev =
        atomic_fetch_sub_explicit(&st->word, n * ASYNCIO__ST_REF_ONE, memory_order_acq_rel);
    ASYNCIO_CHECK(asyncio__st_refs(prev) >= n); /* underflow = corruption */
    return asyncio__st_refs(prev) == n;
}

static inline uint64_t asyncio__task_state_to_complete(asyncio__task_state *st)
{
    const uint64_t delta = ASYNCIO__ST_RUNNING | ASYNCIO__ST_COMPLETE;
    uint64_t prev = atomic_fetch_xor_explicit(&st->word, delta, memory_order_acq_rel);
    ASYNCIO_CHECK((prev & ASYNCIO__ST_RUNNING) && !(prev & ASYNCIO__ST_COMPLETE));
    return prev ^ delta;
}

static inline void asyncio__task_state_init(asyncio__task_state *st, bool detached)
{
    atomic_init(&st->word, detached ? 2 * ASYNCIO__ST_REF_ONE | ASYNCIO__ST_NOTIFIED
                                    : 3 * ASYNCIO__ST_REF_ONE | ASYNCIO__ST_NOTIFIED |
                                          ASYNCIO__ST_JOIN_INTEREST);
}

static inline bool asyncio__task_state_join_handle_drop_complete(asyncio__task_state *st)
{
    /*
     * JOIN_INTEREST is set, so subtracting it clears it without a borrow.
     * acq_rel: as ref_dec (the last holder frees).
     */
    const uint64_t delta = ASYNCIO__ST_JOIN_INTEREST + ASYNCIO__ST_REF_ONE;
    uint64_t prev = atomic_fetch_sub_explicit(&st->word, delta, memory_order_acq_rel);
    ASYNCIO_CHECK(
        (prev & (ASYNCIO__ST_COMPLETE | ASYNCIO__ST_JOIN_INTEREST | ASYNCIO__ST_JOIN_WAKER)) ==
            (ASYNCIO__ST_COMPLETE | ASYNCIO__ST_JOIN_INTEREST) &&
        asyncio__st_refs(prev) > 0);
    return asyncio__st_refs(prev) == 1;
}

static inline unsigned asyncio__task_state_join_handle_dropped(asyncio__task_state *st)
{
    uint64_t cur = ASYNCIO__ST_LOAD(st), next;
    do {
        ASYNCIO_CHECK(cur & ASYNCIO__ST_JOIN_INTEREST);
        next = cur & ~ASYNCIO__ST_JOIN_INTEREST;
        if (!(cur & ASYNCIO__ST_COMPLETE))
            next &= ~ASYNCIO__ST_JOIN_WAKER; /* the handle takes its waker back */
    } while (!ASYNCIO__ST_CAS(st, cur, next));
    unsigned flags = 0;
    if (cur & ASYNCIO__ST_COMPLETE)
        flags |= ASYNCIO__JH_DROP_OUTPUT;
    if (!(next & ASYNCIO__ST_JOIN_WAKER))
        flags |= ASYNCIO__JH_DROP_WAKER;
    return flags;
}

#endif
