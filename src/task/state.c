/*
 * Task state transitions. Each one is a compare-and-swap loop over the
 * snapshot (or a single fetch op where the change is unconditional); see
 * the bit table and ordering rules in state.h. The ones every spawn, poll,
 * wake and join makes (to_running, to_idle, to_complete, the notifies, the
 * reference counts, the JoinHandle's drop) are defined inline at the end of
 * state.h: a call each was a tenth of a yield's instructions.
 *
 * Reference rules used below:
 *   - a queue entry (Notified) owns one reference;
 *   - a worker polling the task holds the reference of the entry it popped;
 *   - a by-value wake that submits moves its reference to the new entry;
 *   - a by-ref wake or abort that submits adds one.
 */
#include "task/state.h"

#include "internal.h"

#define LOAD ASYNCIO__ST_LOAD
#define CAS ASYNCIO__ST_CAS

#define is_idle asyncio__st_is_idle
#define ref_dec_checked asyncio__st_ref_dec_checked
#define ref_inc_checked asyncio__st_ref_inc_checked

uint64_t asyncio__task_state_load(const asyncio__task_state *st)
{
    return atomic_load_explicit(&((asyncio__task_state *)st)->word, memory_order_acquire);
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

