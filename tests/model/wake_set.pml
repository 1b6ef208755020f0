/*
 * wake_set.pml: the per-child wake protocol of the combinators
 * (src/future/wake_set.c, src/future/combinators.c poll_woken).
 *
 * One combinator over N children, polled by its task (the owner), and one
 * event source per child on other threads:
 *   source i  the child's event happens (ready[i]); if the child had
 *             registered its waker, the source takes it and wakes it: the
 *             child waker sets bit i of `woken` (fetch_or), then loads the
 *             parent cell and wakes that task (notified[p] = 1). The leaf's
 *             "set ready / check registered" and the child's "check ready /
 *             register" are atomic with respect to each other (a leaf does
 *             both under its own lock).
 *   owner     whenever its current task `cur` is notified it runs once: it
 *             takes the whole bitmap (atomic exchange to 0), then polls each
 *             child whose bit was set and that is not done: ready -> done,
 *             else register. Once, at any point, the combinator moves to
 *             another task (task 1): that task polls it without having been
 *             notified; the poll first publishes the new parent (`parent` =
 *             1, a store), then takes the bitmap as above. Task 0 is never
 *             notified about the combinator again. The owner stops when its
 *             task is not notified and every source finished.
 *   init      starts with every bit set and task 0 notified (the first poll
 *             polls every child).
 * Spin's interleavings are sequentially consistent: the C code makes the
 * four accesses that need it seq_cst (the store of parent and the load of
 * woken in the owner; the fetch_or and the load of parent in the waker).
 *
 * Property: no lost wake. When the owner stops, every child whose event
 * happened has completed (else the task would sleep forever with a ready
 * child it will never poll).
 *
 * Injected bugs (spin -DBUGn), each must make the search fail:
 *   BUG1  the owner clears the bits it polled *after* polling them (instead
 *         of taking them before): a wake landing during the poll is erased
 *   BUG2  the child waker wakes the task before setting its bit: the task
 *         may run, see no bit, and sleep with the child ready
 *   BUG3  the child waker loads the parent before setting its bit: it may
 *         wake the task the combinator just left, after the new task took
 *         the bitmap
 *   BUG4  the new task takes the bitmap before publishing itself as the
 *         parent: a wake between the two goes to the old task
 */
#define N 2

bit ready[N];
bit done[N];
bit registered[N];
byte woken = 3; /* (1 << N) - 1 */
bit notified[2];
bit parent = 0;
byte sources_done = 0;

proctype source(byte i)
{
    bit wake = 0;
    bit p;
    atomic {
        ready[i] = 1;
        if
        :: registered[i] -> registered[i] = 0; wake = 1
        :: else -> skip
        fi
    }
    if
    :: wake ->
#ifdef BUG2
        p = parent;
        notified[p] = 1;
        woken = woken | (1 << i)
#else
#ifdef BUG3
        p = parent;
        woken = woken | (1 << i);
        notified[p] = 1
#else
        woken = woken | (1 << i); /* the bit first (fetch_or) ... */
        p = parent;               /* ... then load the parent cell ... */
        notified[p] = 1           /* ... and wake that task */
#endif
#endif
    :: else -> skip
    fi;
    sources_done++
}

/* Polls child i once: complete it if its event happened, else register its waker. */
inline poll_child(i)
{
    atomic {
        if
        :: done[i] -> skip
        :: !done[i] && ready[i] -> done[i] = 1
        :: !done[i] && !ready[i] -> registered[i] = 1
        fi
    }
}

/* One poll of the combinator: take the bitmap, poll the children it names. */
inline poll_woken()
{
#ifdef BUG1
    bits = woken;
#else
    atomic { bits = woken; woken = 0 } /* take the bitmap */
#endif
    i = 0;
    do
    :: i < N ->
        if
        :: (bits & (1 << i)) != 0 -> poll_child(i)
        :: else -> skip
        fi;
        i++
    :: else -> break
    od;
#ifdef BUG1
    woken = woken & ~bits
#endif
}

proctype owner()
{
    byte bits, i;
    bit cur = 0;
    do
    :: atomic { notified[cur] == 1 -> notified[cur] = 0 } /* the task runs */
        poll_woken()
    :: cur == 0 -> /* the combinator moves to task 1, which polls it */
        cur = 1;
#ifdef BUG4
        atomic { bits = woken; woken = 0 };
        parent = 1;
        i = 0;
        do
        :: i < N ->
            if
            :: (bits & (1 << i)) != 0 -> poll_child(i)
            :: else -> skip
            fi;
            i++
        :: else -> break
        od
#else
        parent = 1; /* replace_parent: publish the new cell (seq_cst store) */
        poll_woken()
#endif
    :: atomic { notified[cur] == 0 && sources_done == N -> break }
    od;
    i = 0;
    do
    :: i < N -> assert(!ready[i] || done[i]); i++
    :: else -> break
    od
}

init
{
    atomic {
        notified[0] = 1;
        run owner();
        run source(0);
        run source(1)
    }
}
