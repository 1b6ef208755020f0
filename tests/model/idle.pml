/*
 * The multi-thread runtime's idle protocol (src/sched/mt_idle.c, park() in
 * src/sched/multi_thread.c): the packed counters (searching, unparked), the
 * sleepers stack, and how a worker leaves a park.
 *
 * Two workers and one notifier. A worker loops: maybe becomes a searcher
 * (to_searching, at most half the workers), maybe finds work as a searcher
 * (from_searching; the last searcher notifies), then parks (to_parked) and
 * waits in its parker until either
 *   - a notifier popped it off the stack and unparked its parker, or
 *   - its own driver turn queued work for it (has_local_work: a bounded
 *     number of times), or a spurious return (nothing: park again),
 * and leaves the park (asyncio__idle_leave_park). The notifier pushes work
 * from outside a few times: worker_to_notify, then parker_unpark of the
 * chosen worker; it may also push a pinned task (unpark_worker of one
 * worker, then its parker).
 *
 * Each locked section of mt_idle.c is one atomic step; the parker is a
 * token (unpark sets it, park consumes it). When everything has stopped
 * (spin's `timeout`: no process can move), every worker sleeps in its
 * parker, so the counters must say so: nobody searching, nobody unparked.
 * A leaked searching count there is the hang of issue 12 bug 1: no sleeper
 * is ever woken again (should_notify needs searching == 0).
 *
 *   BUG1  leave_park as it was: "was I woken?" and "unpark myself" in two
 *         locked sections, the second's result ignored. A notifier that
 *         pops the worker in between counts it searching, and the worker
 *         comes out believing it is not: the count never returns to 0.
 */

#define W      2  /* workers */
#define PUSHES 2  /* pushes from outside by the notifier */
#define LOCAL  1  /* driver turns that queue local work, per worker */
#define FOUND  2  /* times a searcher finds work, per worker (bounds the notify chains) */

byte nsearch = 0; /* state & SEARCH_MASK */
byte nunpark = W; /* state >> 16: every worker starts unparked */
bool onstack[W];  /* the sleepers stack, as a set (order does not matter here) */
bool sleeping[W];
bool woke_srch[W]; /* woke_searching: set by the notifier that popped the worker */
bool srch[W];      /* w->searching: the worker's own belief */
bool token[W];     /* the parker: an unpark not yet consumed */
byte lwork[W];     /* driver turns left that queue work for this worker */

/* asyncio__idle_worker_to_notify (its locked part), then asyncio__parker_unpark. */
inline notify()
{
    atomic {
        if
        :: nsearch == 0 && nunpark < W && onstack[0] -> pick = 0
        :: nsearch == 0 && nunpark < W && onstack[1] -> pick = 1
        :: else -> pick = 255
        fi;
        if
        :: pick != 255 ->
            nsearch++; nunpark++;
            onstack[pick] = 0; sleeping[pick] = 0; woke_srch[pick] = 1
        :: else -> skip
        fi
    }
    if
    :: pick != 255 -> token[pick] = 1
    :: else -> skip
    fi
}

proctype notifier()
{
    byte pushes = 0;
    byte pick;
    do
    :: pushes < PUSHES -> pushes++; notify()
    :: pushes < PUSHES ->
        /* a pinned push: schedule_pinned -> unpark_worker(home) + parker_unpark(home) */
        pushes++;
        if
        :: pick = 0
        :: pick = 1
        fi;
        atomic {
            if
            :: sleeping[pick] ->
                onstack[pick] = 0; sleeping[pick] = 0; woke_srch[pick] = 0; nunpark++
            :: else -> skip
            fi
        }
        token[pick] = 1
    :: pushes == PUSHES -> break
    od
}

proctype worker(byte me)
{
    byte found = 0;
    byte pick;
    bool must_leave, left, last;
    do
    :: true ->
        /* search: to_searching (its check and add as one step here: see mt_idle.c) */
        if
        :: !srch[me] -> atomic { if :: 2 * nsearch < W -> nsearch++; srch[me] = 1 :: else -> skip fi }
        :: skip
        fi;
        /* a searcher that found work: from_searching; the last one notifies */
        if
        :: srch[me] && found < FOUND ->
            found++;
            atomic { assert(nsearch > 0); last = (nsearch == 1); nsearch--; srch[me] = 0 };
            if
            :: last -> notify()
            :: skip
            fi
        :: skip
        fi;
        /* park: to_parked (one locked section) */
        atomic {
            assert(nunpark > 0 && !sleeping[me] && !onstack[me]);
            nunpark--;
            if
            :: srch[me] -> assert(nsearch > 0); nsearch--
            :: else -> skip
            fi;
            onstack[me] = 1; sleeping[me] = 1; woke_srch[me] = 0
        };
        srch[me] = 0;
        /* the park loop: parker_park, then leave_park */
        do
        :: true ->
end_wait:   if
            :: atomic { token[me] -> token[me] = 0; must_leave = 0 }
            :: atomic { lwork[me] > 0 -> lwork[me]--; must_leave = 1 } /* has_local_work */
            fi;
#ifdef BUG1
            atomic {
                if
                :: !sleeping[me] -> srch[me] = woke_srch[me]; left = 1
                :: else -> left = 0
                fi;
                woke_srch[me] = 0
            };
            if
            :: !left && must_leave ->
                atomic {
                    if
                    :: sleeping[me] ->
                        onstack[me] = 0; sleeping[me] = 0; woke_srch[me] = 0; nunpark++
                    :: else -> skip /* popped by a notifier meanwhile: the result was ignored */
                    fi
                };
                left = 1
            :: else -> skip
            fi;
#else
            atomic {
                if
                :: !sleeping[me] -> srch[me] = woke_srch[me]; left = 1
                :: sleeping[me] && must_leave ->
                    onstack[me] = 0; sleeping[me] = 0; nunpark++; srch[me] = 0; left = 1
                :: else -> left = 0
                fi;
                woke_srch[me] = 0
            };
#endif
            if
            :: left -> break
            :: else -> skip
            fi
        od
    od
}

/* Quiescent: every worker sleeps in its parker, so the counters must read 0 and 0. */
active proctype check()
{
    timeout ->
    assert(nsearch == 0);
    assert(nunpark == 0)
}

init
{
    atomic {
        lwork[0] = LOCAL; lwork[1] = LOCAL;
        run worker(0); run worker(1); run notifier()
    }
}
