/*
 * task_state.pml: the task state word of src/task/state.c and the harness
 * steps of src/task/task.c that act on its answers.
 *
 * One task, five threads:
 *   worker   pops queue entries and runs them (asyncio__task_run): to_running,
 *            poll (ready, or pending with or without waking itself by ref,
 *            as yield_now does), to_idle, complete / cancel
 *   waker    holds one waker reference: wakes by ref zero to two times, then
 *            wakes by value or drops the waker
 *   aborter  holds one reference (an AbortHandle; today abort goes through
 *            the JoinHandle, whose reference plays the same role): aborts or
 *            not, then lets its reference go
 *   handle   the JoinHandle: polls up to twice (stores the awaiting task's
 *            waker, replaces it, or takes the output), may wait for the
 *            join wake, then drops (asyncio_join_handle_drop)
 *   shutdown cancels the task if it is still owned, concurrently with the
 *            others (see the proctype for the reference it must hold)
 *   init     spawns (3 refs + the waker's + the aborter's), starts them all,
 *            waits, then drops the queue entries left (task_drop_entry).
 *
 * Each transition of state.c is one d_step: its CAS loop takes effect in one
 * atomic step, and a failed CAS changes nothing. Everything else the harness
 * does (pushing an entry, touching the output or the join-waker slot,
 * freeing) is a separate step, so other threads interleave between.
 *
 * Properties (assertions; spin also reports invalid end states):
 *   - the task is queued at most once at a time (queued <= 1 on submit);
 *   - the future is dropped (completion or cancel) exactly once;
 *   - the refcount never underflows, never reaches 0 twice, nothing touches
 *     the task after it is freed, and it is freed exactly once, only when
 *     complete and with the output and join waker already released;
 *   - never polled after COMPLETE, only while this worker holds RUNNING;
 *   - the output and the join-waker slot are never accessed by two threads
 *     at once unless both only read (a data race in C);
 *   - every stored join waker is dropped exactly once, every output is
 *     taken or dropped exactly once;
 *   - no lost join wake: a JoinHandle that returned PENDING is woken if the
 *     task completes.
 *
 * Injected bugs (spin -DBUGn), each must make the search fail; see README.md:
 *   BUG1  notify_by_ref ignores NOTIFIED: queues an already queued task again
 *   BUG2  to_idle drops the polling reference even when it re-queues the task
 *   BUG3  notify_by_val on a running task keeps the waker's reference
 *   BUG4  join_handle_dropped clears JOIN_WAKER even after COMPLETE
 *   BUG6  the handle drop's one-RMW fast path taken while JOIN_WAKER is set
 */

#define RUNNING 1
#define COMPLETE 2
#define NOTIFIED 4
#define JOIN_INTEREST 8
#define JOIN_WAKER 16
#define CANCELLED 32
#define LIFECYCLE 3

/* asyncio__to_running */
#define RUN_SUCCESS 0
#define RUN_CANCELLED 1
#define RUN_FAILED 2
#define RUN_DEALLOC 3
/* asyncio__to_idle */
#define IDLE_OK 0
#define IDLE_OK_NOTIFIED 1
#define IDLE_OK_DEALLOC 2
#define IDLE_CANCELLED 3
/* asyncio__notify_action */
#define NOTIFY_NOTHING 0
#define NOTIFY_SUBMIT 1
#define NOTIFY_DEALLOC 2
/* ASYNCIO__JH_* */
#define DROP_OUTPUT 1
#define DROP_WAKER 2
/* join poll results */
#define READY 0
#define PENDING 1

byte flags = NOTIFIED | JOIN_INTEREST;
byte refs = 5;          /* owner list, JoinHandle, spawn's queue entry, waker, aborter */
bit freed;
byte deallocs;
byte queued = 1;        /* entries in the run queue: spawn's */
bit owned = 1;          /* in the runtime's owned list */
byte future_drops;      /* vt->drop calls: the future finished or was cancelled */

bit has_output;         /* the output slot holds a value */
byte out_made, out_gone;
byte out_w, out_r;      /* threads writing / reading the output slot now */

bit jw;                 /* the join-waker slot holds a waker */
byte jw_made, jw_dropped;
byte jw_w, jw_r;        /* threads writing / reading the slot now */
bit jw_woken;           /* the stored join waker was woken, not yet seen by the handle */

bit waker_done, aborter_done, worker_done, shutdown_done;

#define ALIVE assert(!freed)

/* ---- data-race detector for the two slots ---------------------------------- */

inline begin_write(w, r) { d_step { assert(w == 0 && r == 0); w = 1 } }
inline end_write(w) { w = 0 }
inline begin_read(w, r) { d_step { assert(w == 0); r++ } }
inline end_read(r) { r-- }

/* ---- state.c transitions, one d_step each ------------------------------------ */

inline to_running(act)
{
    d_step {
        ALIVE;
        assert(flags & NOTIFIED);
        if
        :: (flags & LIFECYCLE) != 0 ->               /* running elsewhere or complete */
            assert(refs > 0);
            refs--;
            act = (refs == 0 -> RUN_DEALLOC : RUN_FAILED)
        :: else ->
            act = ((flags & CANCELLED) != 0 -> RUN_CANCELLED : RUN_SUCCESS);
            flags = (flags | RUNNING) & ~NOTIFIED
        fi
    }
}

inline to_idle(act)
{
    d_step {
        ALIVE;
        assert(flags & RUNNING);
        if
        :: (flags & CANCELLED) != 0 -> act = IDLE_CANCELLED
        :: else ->
            flags = flags & ~RUNNING;
            if
            :: (flags & NOTIFIED) != 0 ->
#ifdef BUG2
                assert(refs > 0); refs--;            /* BUG2: the entry's reference is dropped */
#endif
                act = IDLE_OK_NOTIFIED
            :: else ->
                assert(refs > 0);
                refs--;
                act = (refs == 0 -> IDLE_OK_DEALLOC : IDLE_OK)
            fi
        fi
    }
}

inline to_complete(snap)
{
    d_step {
        ALIVE;
        assert((flags & RUNNING) != 0 && (flags & COMPLETE) == 0);
        flags = flags ^ (RUNNING | COMPLETE);
        snap = flags
    }
}

inline notify_by_ref(act)
{
    d_step {
        ALIVE;
        if
#ifdef BUG1
        :: (flags & COMPLETE) != 0 -> act = NOTIFY_NOTHING     /* BUG1: NOTIFIED not checked */
#else
        :: (flags & (COMPLETE | NOTIFIED)) != 0 -> act = NOTIFY_NOTHING
#endif
        :: else ->
            if
            :: (flags & RUNNING) != 0 -> flags = flags | NOTIFIED; act = NOTIFY_NOTHING
            :: else -> flags = flags | NOTIFIED; refs++; act = NOTIFY_SUBMIT
            fi
        fi
    }
}

inline notify_by_val(act)
{
    d_step {
        ALIVE;
        if
        :: (flags & RUNNING) != 0 ->
            flags = flags | NOTIFIED;
#ifndef BUG3
            assert(refs > 0);
            refs--;                                  /* (BUG3: kept) */
#endif
            assert(refs > 0);                        /* the poller still holds one */
            act = NOTIFY_NOTHING
        :: else ->
            if
            :: (flags & (COMPLETE | NOTIFIED)) != 0 ->
                assert(refs > 0);
                refs--;
                act = (refs == 0 -> NOTIFY_DEALLOC : NOTIFY_NOTHING)
            :: else -> flags = flags | NOTIFIED; act = NOTIFY_SUBMIT
            fi
        fi
    }
}

inline notify_and_cancel(submit)
{
    d_step {
        ALIVE;
        submit = 0;
        if
        :: (flags & (CANCELLED | COMPLETE)) != 0 -> skip
        :: else ->
            if
            :: (flags & RUNNING) != 0 -> flags = flags | CANCELLED | NOTIFIED
            :: else ->
                if
                :: (flags & NOTIFIED) != 0 -> flags = flags | CANCELLED
                :: else -> flags = flags | CANCELLED | NOTIFIED; refs++; submit = 1
                fi
            fi
        fi
    }
}

inline to_shutdown(claimed)
{
    d_step {
        ALIVE;
        claimed = ((flags & LIFECYCLE) == 0);
        flags = flags | CANCELLED;
        if
        :: claimed -> flags = flags | RUNNING
        :: else -> skip
        fi
    }
}

inline join_handle_dropped(jh)
{
    d_step {
        ALIVE;
        assert(flags & JOIN_INTEREST);
        jh = ((flags & COMPLETE) != 0 -> DROP_OUTPUT : 0);
        flags = flags & ~JOIN_INTEREST;
#ifdef BUG4
        flags = flags & ~JOIN_WAKER;                 /* BUG4: even when complete */
#else
        if
        :: (flags & COMPLETE) == 0 -> flags = flags & ~JOIN_WAKER
        :: else -> skip
        fi;
#endif
        jh = jh | ((flags & JOIN_WAKER) != 0 -> 0 : DROP_WAKER)
    }
}

inline unset_waker_after_complete(snap)
{
    d_step {
        ALIVE;
        assert((flags & COMPLETE) != 0 && (flags & JOIN_WAKER) != 0);
        flags = flags & ~JOIN_WAKER;
        snap = flags
    }
}

inline set_join_waker(ok)
{
    d_step {
        ALIVE;
        assert((flags & JOIN_INTEREST) != 0 && (flags & JOIN_WAKER) == 0);
        if
        :: (flags & COMPLETE) != 0 -> ok = 0
        :: else -> flags = flags | JOIN_WAKER; ok = 1
        fi
    }
}

/*
 * BUG5 (README.md; found as FINDING1 and fixed in state.c): checking
 * JOIN_WAKER before COMPLETE. Once the task is complete the runtime may
 * already have cleared JOIN_WAKER (unset_waker_after_complete), so a handle
 * replacing its waker would abort. COMPLETE is tested first (Tokio's order).
 */
inline unset_join_waker(ok)
{
    d_step {
        ALIVE;
        assert((flags & JOIN_INTEREST) != 0);
#ifdef BUG5
        assert((flags & JOIN_WAKER) != 0);
#endif
        if
        :: (flags & COMPLETE) != 0 -> ok = 0
        :: else -> assert((flags & JOIN_WAKER) != 0); flags = flags & ~JOIN_WAKER; ok = 1
        fi
    }
}

inline ref_inc()
{
    d_step { ALIVE; assert(refs > 0); refs++ }
}

/* ref_dec_n; frees on the last reference. */
inline ref_dec(n)
{
    d_step { ALIVE; assert(refs >= n); refs = refs - n; last = (refs == 0) };
    if
    :: last -> dealloc()
    :: else -> skip
    fi
}

/* ---- harness steps (task.c) -------------------------------------------------- */

/* asyncio__task_dealloc: only memory may be left. */
inline dealloc()
{
    d_step {
        ALIVE;
        assert(refs == 0 && deallocs == 0);
        assert((flags & COMPLETE) != 0 && future_drops == 1);
        assert(queued == 0 && !owned);
        assert(!has_output && out_made == out_gone);
        assert(!jw && jw_made == jw_dropped);
        freed = 1;
        deallocs++
    }
}

/* The scheduler's schedule op: a new entry (it owns the reference the transition made). */
inline submit()
{
    d_step { ALIVE; assert(queued == 0); queued++ }
}

inline drop_join_waker()
{
    begin_write(jw_w, jw_r);
    d_step {
        if
        :: jw -> jw = 0; jw_dropped++
        :: else -> skip                              /* asyncio_waker_drop of EMPTY */
        fi;
        end_write(jw_w)
    }
}

/*
 * complete(): 1. output written, COMPLETE published; 2. output dropped if
 * nobody wants it, else the join waker woken (and dropped if the handle went
 * away meanwhile); 3. leave the owned list, drop polling (+ owner) refs.
 */
inline complete(produced)
{
    begin_write(out_w, out_r);
    d_step { has_output = produced; out_made = out_made + produced; end_write(out_w) };
    to_complete(snap);
    if
    :: (snap & JOIN_INTEREST) == 0 ->
        begin_write(out_w, out_r);
        d_step {
            if
            :: has_output -> has_output = 0; out_gone++
            :: else -> skip
            fi;
            end_write(out_w)
        }
    :: else ->
        if
        :: (snap & JOIN_WAKER) != 0 ->
            begin_read(jw_w, jw_r);
            d_step { assert(jw); jw_woken = 1; end_read(jw_r) };
            unset_waker_after_complete(snap);
            if
            :: (snap & JOIN_INTEREST) == 0 -> drop_join_waker()
            :: else -> skip
            fi
        :: else -> skip
        fi
    fi;
    d_step { n = 1 + owned; owned = 0 };             /* release(): under the runtime lock */
    ref_dec(n)
}

/* cancel(): drop the future, complete with ECANCELED (no output). */
inline cancel()
{
    d_step { ALIVE; future_drops++; assert(future_drops == 1) };
    complete(0)
}

/* asyncio__task_run for one popped entry. */
inline run_entry()
{
    to_running(act);
    if
    :: act == RUN_FAILED -> skip
    :: act == RUN_DEALLOC -> dealloc()
    :: act == RUN_CANCELLED -> cancel()
    :: act == RUN_SUCCESS ->
        d_step {                                     /* poll */
            ALIVE;
            assert((flags & RUNNING) != 0 && (flags & COMPLETE) == 0)
        };
        if
        :: d_step { future_drops++; assert(future_drops == 1) };   /* ready */
           complete(1)
        :: if                                        /* pending */
           :: notify_by_ref(act); assert(act == NOTIFY_NOTHING)   /* yield: wake itself */
           :: skip
           fi;
           to_idle(act);
           if
           :: act == IDLE_OK -> skip
           :: act == IDLE_OK_NOTIFIED -> submit()
           :: act == IDLE_OK_DEALLOC -> dealloc()
           :: act == IDLE_CANCELLED -> cancel()
           fi
        fi
    fi;
    act = 0; snap = 0; n = 0; last = 0
}

proctype worker()
{
    byte act, snap, n;
    bit last;
    do
    :: d_step { queued > 0 -> queued-- } -> run_entry()
    :: d_step { queued == 0 && waker_done && aborter_done } -> break
    od;
    worker_done = 1
}

proctype waker()
{
    byte act, k;
    bit last;
    do
    :: k < 2 ->
        notify_by_ref(act);
        if
        :: act == NOTIFY_SUBMIT -> submit()
        :: else -> skip
        fi;
        k++
    :: break
    od;
    if
    :: notify_by_val(act);
       if
       :: act == NOTIFY_SUBMIT -> submit()
       :: act == NOTIFY_DEALLOC -> dealloc()
       :: act == NOTIFY_NOTHING -> skip
       fi
    :: ref_dec(1)                                    /* dropped without waking */
    fi;
    waker_done = 1
}

proctype aborter()
{
    bit sub, last;
    if
    :: notify_and_cancel(sub);
       if
       :: sub -> submit()
       :: else -> skip
       fi
    :: skip
    fi;
    ref_dec(1);
    aborter_done = 1
}

/* take_result(): the task is COMPLETE and the handle has interest. */
inline take_result()
{
    begin_write(out_w, out_r);
    d_step {
        if
        :: has_output -> has_output = 0; out_gone++
        :: else -> skip
        fi;
        end_write(out_w)
    }
}

/* asyncio_join_handle_poll; `same` says whether cx's waker is the one stored. */
inline join_poll()
{
    d_step { ALIVE; s = flags };
    if
    :: (s & COMPLETE) != 0 -> take_result(); res = READY
    :: else ->
        if
        :: (s & JOIN_WAKER) != 0 ->
            begin_read(jw_w, jw_r);
            end_read(jw_r);                          /* will_wake compares the stored waker */
            if
            :: res = PENDING                         /* same waker: nothing to do */
            :: unset_join_waker(ok);                 /* a different one: take the slot back */
               if
               :: !ok -> take_result(); res = READY
               :: else -> drop_join_waker(); res = 2 /* go on to store the new one */
               fi
            fi
        :: else -> res = 2
        fi;
        if
        :: res == 2 ->
            begin_write(jw_w, jw_r);
            d_step { assert(!jw); jw = 1; jw_made++; end_write(jw_w) };
            set_join_waker(ok);
            if
            :: !ok -> drop_join_waker(); take_result(); res = READY
            :: else -> res = PENDING
            fi
        :: else -> skip
        fi
    fi;
    s = 0; ok = 0
}

proctype handle()
{
    byte s, res, jh, k;
    bit ok, last;
    do
    :: k < 2 ->
        k++;
        join_poll();
        if
        :: res == READY -> break
        :: else ->
            if
            :: skip                                  /* poll again at once */
            :: d_step { jw_woken -> jw_woken = 0 }   /* woken: poll again */
            :: worker_done && shutdown_done ->       /* nobody left to complete it */
               assert((flags & COMPLETE) == 0 || jw_woken);   /* no lost join wake */
               break
            fi
        fi
    :: break
    od;
    /*
     * asyncio_join_handle_drop: a load first; a complete task whose waker
     * slot is the handle's (JOIN_WAKER clear) takes the fast path: output
     * and slot dropped, then interest and reference in one RMW.
     */
    atomic { ALIVE; s = flags };
#ifdef BUG6
    if
    :: (s & COMPLETE) != 0 ->                        /* BUG6: JOIN_WAKER not checked */
#else
    if
    :: (s & COMPLETE) != 0 && (s & JOIN_WAKER) == 0 ->
#endif
        take_result();
        drop_join_waker();
        d_step {
            ALIVE;
            assert((flags & JOIN_INTEREST) != 0 && (flags & COMPLETE) != 0 && refs >= 1);
            flags = flags & ~JOIN_INTEREST;
            refs--;
            last = (refs == 0)
        };
        if
        :: last -> dealloc()
        :: else -> skip
        fi
    :: else ->
        join_handle_dropped(jh);
        if
        :: (jh & DROP_OUTPUT) != 0 -> take_result()
        :: else -> skip
        fi;
        if
        :: (jh & DROP_WAKER) != 0 -> drop_join_waker()
        :: else -> skip
        fi;
        ref_dec(1)
    fi
}

/*
 * Runtime shutdown, concurrent with the others (as the multi-thread runtime
 * must do it): under the owned-list lock take a reference while the task is
 * still owned (the owner's reference keeps it alive until then), then
 * asyncio__task_shutdown: claimed -> that reference is the polling one the
 * cancel path drops; not claimed (running, or completing) -> drop it, the
 * worker sees CANCELLED in to_idle. The current-thread runtime is the case
 * where nothing else runs.
 */
proctype shutdown()
{
    byte act, snap, n;
    bit last, claimed, had;
    d_step { had = owned; if :: had -> ALIVE; refs++ :: else -> skip fi };
    if
    :: had ->
        to_shutdown(claimed);
        if
        :: claimed -> cancel()
        :: else -> ref_dec(1)
        fi
    :: else -> skip
    fi;
    shutdown_done = 1
}

init
{
    byte act;
    bit last;
    atomic {
        run worker();
        run waker();
        run aborter();
        run handle();
        run shutdown()
    }
    (_nr_pr == 1);
    do
    :: queued > 0 ->                                 /* asyncio__task_drop_entry */
        queued--;
        to_running(act);
        assert(act == RUN_FAILED || act == RUN_DEALLOC);
        if
        :: act == RUN_DEALLOC -> dealloc()
        :: else -> skip
        fi
    :: else -> break
    od;
    assert(!owned);
    assert(freed && deallocs == 1 && refs == 0);
    assert(future_drops == 1);
    assert(out_made == out_gone && jw_made == jw_dropped)
}
