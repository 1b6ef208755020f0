/*
 * Task state transitions. Each one is a compare-and-swap loop over the
 * snapshot (or a single fetch op where the change is unconditional); see
 * the bit table and ordering rules in state.h.
 *
 * Reference rules used below:
 *   - a queue entry (Notified) owns one reference;
 *   - a worker polling the task holds the reference of the entry it popped;
 *   - a by-value wake that submits moves its reference to the new entry;
 *   - a by-ref wake or abort that submits adds one.
 */
#include "task/state.h"

#include "internal.h"

#define LOAD(st) atomic_load_explicit(&(st)->word, memory_order_acquire)
#define CAS(st, cur, next)                                                                         \
    atomic_compare_exchange_weak_explicit(&(st)->word, &(cur), (next), memory_order_acq_rel,      \
                                          memory_order_acquire)

static bool is_idle(uint64_t s)
{
    return (s & ASYNCIO__ST_LIFECYCLE) == 0;
}

static uint64_t ref_dec_checked(uint64_t s)
{
    ASYNCIO_CHECK(asyncio__st_refs(s) > 0); /* underflow = corruption */
    return s - ASYNCIO__ST_REF_ONE;
}

static uint64_t ref_inc_checked(uint64_t s)
{
    ASYNCIO_CHECK(asyncio__st_refs(s) < (UINT64_MAX >> ASYNCIO__ST_REF_SHIFT));
    return s + ASYNCIO__ST_REF_ONE;
}

void asyncio__task_state_init(asyncio__task_state *st)
{
    atomic_init(&st->word,
                3 * ASYNCIO__ST_REF_ONE | ASYNCIO__ST_NOTIFIED | ASYNCIO__ST_JOIN_INTEREST);
}

uint64_t asyncio__task_state_load(const asyncio__task_state *st)
{
    return atomic_load_explicit(&((asyncio__task_state *)st)->word, memory_order_acquire);
}

asyncio__to_running asyncio__task_state_to_running(asyncio__task_state *st)
{
    uint64_t cur = LOAD(st), next;
    asyncio__to_running action;
    do {
        ASYNCIO_CHECK(cur & ASYNCIO__ST_NOTIFIED);
        if (!is_idle(cur)) {
            /* Running elsewhere or complete: this stale queue entry just lets go. */
            next = ref_dec_checked(cur);
            action = asyncio__st_refs(next) == 0 ? ASYNCIO__RUN_DEALLOC : ASYNCIO__RUN_FAILED;
        } else {
            next = (cur | ASYNCIO__ST_RUNNING) & ~ASYNCIO__ST_NOTIFIED;
            action = (cur & ASYNCIO__ST_CANCELLED) ? ASYNCIO__RUN_CANCELLED : ASYNCIO__RUN_SUCCESS;
        }
    } while (!CAS(st, cur, next));
    return action;
}

asyncio__to_idle asyncio__task_state_to_idle(asyncio__task_state *st)
{
    uint64_t cur = LOAD(st), next;
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
            next = ref_dec_checked(next);
            action = asyncio__st_refs(next) == 0 ? ASYNCIO__IDLE_OK_DEALLOC : ASYNCIO__IDLE_OK;
        }
    } while (!CAS(st, cur, next));
    return action;
}

uint64_t asyncio__task_state_to_complete(asyncio__task_state *st)
{
    const uint64_t delta = ASYNCIO__ST_RUNNING | ASYNCIO__ST_COMPLETE;
    uint64_t prev = atomic_fetch_xor_explicit(&st->word, delta, memory_order_acq_rel);
    ASYNCIO_CHECK((prev & ASYNCIO__ST_RUNNING) && !(prev & ASYNCIO__ST_COMPLETE));
    return prev ^ delta;
}

asyncio__notify_action asyncio__task_state_notify_by_ref(asyncio__task_state *st)
{
    uint64_t cur = LOAD(st), next;
    do {
        if (cur & (ASYNCIO__ST_COMPLETE | ASYNCIO__ST_NOTIFIED))
            return ASYNCIO__NOTIFY_NOTHING;
        if (cur & ASYNCIO__ST_RUNNING) {
            /* The poller re-queues it in to_idle. */
            next = cur | ASYNCIO__ST_NOTIFIED;
        } else {
            next = ref_inc_checked(cur | ASYNCIO__ST_NOTIFIED);
        }
    } while (!CAS(st, cur, next));
    return (cur & ASYNCIO__ST_RUNNING) ? ASYNCIO__NOTIFY_NOTHING : ASYNCIO__NOTIFY_SUBMIT;
}

asyncio__notify_action asyncio__task_state_notify_by_val(asyncio__task_state *st)
{
    uint64_t cur = LOAD(st), next;
    asyncio__notify_action action;
    do {
        if (cur & ASYNCIO__ST_RUNNING) {
            /* Mark for re-queue; the waker's reference is released. */
            next = ref_dec_checked(cur | ASYNCIO__ST_NOTIFIED);
            ASYNCIO_CHECK(asyncio__st_refs(next) > 0); /* the poller still holds one */
            action = ASYNCIO__NOTIFY_NOTHING;
        } else if (cur & (ASYNCIO__ST_COMPLETE | ASYNCIO__ST_NOTIFIED)) {
            next = ref_dec_checked(cur);
            action = asyncio__st_refs(next) == 0 ? ASYNCIO__NOTIFY_DEALLOC
                                                 : ASYNCIO__NOTIFY_NOTHING;
        } else {
            /* The waker's reference becomes the queue entry's. */
            next = cur | ASYNCIO__ST_NOTIFIED;
            action = ASYNCIO__NOTIFY_SUBMIT;
        }
    } while (!CAS(st, cur, next));
    return action;
}

bool asyncio__task_state_notify_and_cancel(asyncio__task_state *st)
{
    uint64_t cur = LOAD(st), next;
    bool submit;
    do {
        if (cur & (ASYNCIO__ST_CANCELLED | ASYNCIO__ST_COMPLETE))
            return false;
        submit = false;
        if (cur & ASYNCIO__ST_RUNNING) {
            /* The poller sees CANCELLED in to_idle. */
            next = cur | ASYNCIO__ST_CANCELLED | ASYNCIO__ST_NOTIFIED;
        } else if (cur & ASYNCIO__ST_NOTIFIED) {
            /* Already queued: the worker sees CANCELLED in to_running. */
            next = cur | ASYNCIO__ST_CANCELLED;
        } else {
            next = ref_inc_checked(cur | ASYNCIO__ST_CANCELLED | ASYNCIO__ST_NOTIFIED);
            submit = true;
        }
    } while (!CAS(st, cur, next));
    return submit;
}

bool asyncio__task_state_to_shutdown(asyncio__task_state *st)
{
    uint64_t cur = LOAD(st), next;
    do {
        next = cur | ASYNCIO__ST_CANCELLED;
        if (is_idle(cur))
            next |= ASYNCIO__ST_RUNNING;
    } while (!CAS(st, cur, next));
    return is_idle(cur);
}

unsigned asyncio__task_state_join_handle_dropped(asyncio__task_state *st)
{
    uint64_t cur = LOAD(st), next;
    do {
        ASYNCIO_CHECK(cur & ASYNCIO__ST_JOIN_INTEREST);
        next = cur & ~ASYNCIO__ST_JOIN_INTEREST;
        if (!(cur & ASYNCIO__ST_COMPLETE))
            next &= ~ASYNCIO__ST_JOIN_WAKER; /* the handle takes its waker back */
    } while (!CAS(st, cur, next));
    unsigned flags = 0;
    if (cur & ASYNCIO__ST_COMPLETE)
        flags |= ASYNCIO__JH_DROP_OUTPUT;
    if (!(next & ASYNCIO__ST_JOIN_WAKER))
        flags |= ASYNCIO__JH_DROP_WAKER;
    return flags;
}

uint64_t asyncio__task_state_unset_waker_after_complete(asyncio__task_state *st)
{
    uint64_t prev =
        atomic_fetch_and_explicit(&st->word, ~ASYNCIO__ST_JOIN_WAKER, memory_order_acq_rel);
    ASYNCIO_CHECK((prev & ASYNCIO__ST_COMPLETE) && (prev & ASYNCIO__ST_JOIN_WAKER));
    return prev & ~ASYNCIO__ST_JOIN_WAKER;
}

bool asyncio__task_state_set_join_waker(asyncio__task_state *st)
{
    uint64_t cur = LOAD(st), next;
    do {
        ASYNCIO_CHECK((cur & ASYNCIO__ST_JOIN_INTEREST) && !(cur & ASYNCIO__ST_JOIN_WAKER));
        if (cur & ASYNCIO__ST_COMPLETE)
            return false;
        next = cur | ASYNCIO__ST_JOIN_WAKER;
    } while (!CAS(st, cur, next));
    return true;
}

bool asyncio__task_state_unset_join_waker(asyncio__task_state *st)
{
    uint64_t cur = LOAD(st), next;
    do {
        /* COMPLETE first: once the task is complete the runtime owns the slot
         * and may already have cleared JOIN_WAKER (unset_waker_after_complete). */
        if (cur & ASYNCIO__ST_COMPLETE)
            return false;
        ASYNCIO_CHECK((cur & ASYNCIO__ST_JOIN_INTEREST) && (cur & ASYNCIO__ST_JOIN_WAKER));
        next = cur & ~ASYNCIO__ST_JOIN_WAKER;
    } while (!CAS(st, cur, next));
    return true;
}

void asyncio__task_state_ref_inc(asyncio__task_state *st)
{
    /* Relaxed: a new reference is made from an existing one, which orders it. */
    uint64_t prev = atomic_fetch_add_explicit(&st->word, ASYNCIO__ST_REF_ONE, memory_order_relaxed);
    ASYNCIO_CHECK(asyncio__st_refs(prev) > 0 &&
                  asyncio__st_refs(prev) < (UINT64_MAX >> ASYNCIO__ST_REF_SHIFT));
}

bool asyncio__task_state_ref_dec(asyncio__task_state *st)
{
    return asyncio__task_state_ref_dec_n(st, 1);
}

bool asyncio__task_state_ref_dec_n(asyncio__task_state *st, uint64_t n)
{
    /* acq_rel: the thread that drops the last reference sees every other thread's writes. */
    uint64_t prev =
        atomic_fetch_sub_explicit(&st->word, n * ASYNCIO__ST_REF_ONE, memory_order_acq_rel);
    ASYNCIO_CHECK(asyncio__st_refs(prev) >= n); /* underflow = corruption */
    return asyncio__st_refs(prev) == n;
}
