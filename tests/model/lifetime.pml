/*
 * lifetime.pml: the runtime's lifetime against wakes from other threads
 * (src/task/task.h "The scheduler's lifetime", src/task/task.c waker_wake /
 * asyncio_join_handle_abort, src/sched/current_thread.c free).
 *
 * One idle task (polled once, waiting), a current-thread runtime and three
 * threads:
 *   waker    a thread that is not the runtime's holds a waker: wakes it by
 *            value, or by ref and then drops it
 *   aborter  another such thread holds the JoinHandle: aborts (or not), then
 *            drops the handle
 *   owner    asyncio_runtime_free: shutdown (claims the task, cancels it,
 *            drops the owner reference), drains the inject queue, waits for
 *            the remote calls in flight (quiesce), drains again, tears the
 *            runtime down (driver, locks, queues) and drops the handle's
 *            reference on the runtime's memory
 * Each state transition of state.c is one d_step; the counters' RMWs too.
 *
 * Properties:
 *   - a schedule call (push + unpark) never happens after the teardown;
 *   - nothing touches the runtime's memory after it was freed;
 *   - at the end: no entry left in the queue, the task and the runtime's
 *     memory freed exactly once, nothing in flight.
 *
 * Injected bugs (spin -DBUGn), each must make the search fail:
 *   BUG1  the code before issue 12: the remote bracket only around the
 *         schedule call (after the transition), and the runtime's memory
 *         freed by free (no reference count)
 *   BUG2  the bracket before the transition, but no reference count: a call
 *         that starts after free touches freed memory
 *   BUG3  no second drain after the quiesce: a late entry leaks
 *   BUG4  a remote wake by value inside the bracket (this model's first
 *         finding, in the fix's first version): the transition drops the
 *         waker's reference, another thread drops the task's last one and
 *         frees the task and the runtime's memory, and the leave writes
 *         into it. A remote wake keeps its reference across the bracket
 *         (by ref, then drop).
 */

#ifdef BUG4
/* (named on its own line so that run_models.sh finds the variant: see waker) */
#endif

#define NOTIFIED  1
#define RUNNING   2
#define COMPLETE  4
#define CANCELLED 8

#define NOTHING 0
#define SUBMIT  1
#define DEALLOC 2

byte t_state = 0;   /* idle: polled once, PENDING */
byte t_refs = 3;    /* owner list, the waker, the JoinHandle */
bit t_freed;
byte queued = 0;    /* entries in the inject queue */

byte rt_refs = 2;   /* the runtime handle + the task block */
bit rt_torn;        /* free's teardown done: driver, queues, locks are gone */
bit rt_freed;       /* the runtime's memory is gone */
byte inflight = 0;  /* remote_inflight */

#define RT_ALIVE assert(!rt_freed)

inline rt_unref()
{
    d_step {
        RT_ALIVE;
        assert(rt_refs > 0);
        rt_refs--;
        if
        :: rt_refs == 0 -> rt_freed = 1
        :: else -> skip
        fi
    }
}

inline task_dealloc()
{
    d_step { assert(!t_freed && t_refs == 0 && (t_state & COMPLETE)); t_freed = 1 };
#ifndef BUG1
#ifndef BUG2
    rt_unref()
#endif
#endif
}

inline t_unref()
{
    d_step { assert(!t_freed && t_refs > 0); t_refs--; last = (t_refs == 0) };
    if
    :: last -> task_dealloc()
    :: else -> skip
    fi
}

inline enter()
{
    d_step { RT_ALIVE; inflight++ }
}

inline leave()
{
    d_step { RT_ALIVE; assert(inflight > 0); inflight-- }
}

/* The schedule op from another thread: push onto inject and unpark the driver. */
inline schedule()
{
    d_step { RT_ALIVE; assert(!rt_torn); queued++ }
}

/* notify_by_val: the caller's reference moves to the entry (SUBMIT) or goes. */
inline notify_by_val(act)
{
    d_step {
        assert(!t_freed);
        if
        :: (t_state & (COMPLETE | RUNNING | NOTIFIED)) == 0 ->
            t_state = t_state | NOTIFIED; act = SUBMIT
        :: else ->
            if
            :: (t_state & RUNNING) && !(t_state & COMPLETE) -> t_state = t_state | NOTIFIED
            :: else -> skip
            fi;
            t_refs--;
            if
            :: t_refs == 0 -> act = DEALLOC
            :: else -> act = NOTHING
            fi
        fi
    }
}

/* notify_by_ref: SUBMIT adds the entry's reference. */
inline notify_by_ref(act)
{
    d_step {
        assert(!t_freed && t_refs > 0);
        if
        :: (t_state & (COMPLETE | RUNNING | NOTIFIED)) == 0 ->
            t_state = t_state | NOTIFIED; t_refs++; act = SUBMIT
        :: else ->
            if
            :: (t_state & RUNNING) && !(t_state & COMPLETE) -> t_state = t_state | NOTIFIED
            :: else -> skip
            fi;
            act = NOTHING
        fi
    }
}

/* notify_and_cancel: like notify_by_ref, and marks CANCELLED. */
inline notify_and_cancel(act)
{
    d_step {
        assert(!t_freed && t_refs > 0);
        if
        :: t_state & COMPLETE -> act = NOTHING
        :: (t_state & (RUNNING | NOTIFIED)) == 0 ->
            t_state = t_state | NOTIFIED | CANCELLED; t_refs++; act = SUBMIT
        :: else -> t_state = t_state | CANCELLED; act = NOTHING
        fi
    }
}

proctype waker()
{
    byte act;
    bit last;
    if
    :: /* asyncio_waker_wake */
#if defined(BUG1)
        notify_by_val(act);
        if
        :: act == SUBMIT -> enter(); schedule(); leave()
        :: act == DEALLOC -> task_dealloc()
        :: else -> skip
        fi
#elif defined(BUG4)
        enter();
        notify_by_val(act);
        if
        :: act == SUBMIT -> schedule()
        :: else -> skip
        fi;
        leave();
        if
        :: act == DEALLOC -> task_dealloc()
        :: else -> skip
        fi
#else
        /* remote: by ref inside the bracket, our reference dropped after it */
        enter();
        notify_by_ref(act);
        if
        :: act == SUBMIT -> schedule()
        :: else -> skip
        fi;
        leave();
        t_unref()
#endif
    :: /* asyncio_waker_wake_by_ref, then asyncio_waker_drop */
#ifndef BUG1
        enter();
#endif
        notify_by_ref(act);
        if
        :: act == SUBMIT ->
#ifdef BUG1
            enter();
#endif
            schedule();
#ifdef BUG1
            leave()
#endif
        :: else -> skip
        fi;
#ifndef BUG1
        leave();
#endif
        t_unref()
    fi
}

proctype aborter()
{
    byte act;
    bit last;
    if
    :: /* asyncio_join_handle_abort */
#ifndef BUG1
        enter();
#endif
        notify_and_cancel(act);
        if
        :: act == SUBMIT ->
#ifdef BUG1
            enter();
#endif
            schedule();
#ifdef BUG1
            leave()
#endif
        :: else -> skip
        fi;
#ifndef BUG1
        leave()
#endif
    :: skip
    fi;
    t_unref() /* asyncio_join_handle_drop */
}

/* Drops every queued entry: asyncio__task_drop_entry on a complete task. */
inline drain()
{
    do
    :: atomic { queued > 0 -> queued-- }; t_unref()
    :: else -> break
    od;
    skip /* a landing step: a break may not jump into the caller's next d_step */
}

proctype owner()
{
    bit last, claimed;
    /* shutdown: claim the idle task (nothing else runs on this flavour) */
    d_step {
        claimed = !(t_state & (RUNNING | COMPLETE));
        if
        :: claimed -> t_state = t_state | RUNNING | CANCELLED
        :: else -> skip
        fi
    };
    assert(claimed);
    /* cancel: drop the future, complete, drop the owner's reference */
    d_step { t_state = (t_state & ~RUNNING) | COMPLETE };
    t_unref();
    drain();
    /* asyncio__runtime_quiesce */
    atomic { RT_ALIVE; inflight == 0 -> skip };
#ifndef BUG3
    drain();
#endif
    d_step { RT_ALIVE; rt_torn = 1 };
#if defined(BUG1) || defined(BUG2)
    d_step { rt_freed = 1 } /* no reference count: free frees the memory */
#else
    rt_unref()
#endif
}

init
{
    atomic { run waker(); run aborter(); run owner() }
    (_nr_pr == 1);
    assert(queued == 0 && inflight == 0);
    assert(t_freed && rt_freed && rt_torn)
}
