/*
 * wake_set.pml: the per-child wake protocol of the combinators
 * (src/future/wake_set.c, src/future/combinators.c poll_woken).
 *
 * One combinator over N children, polled by its task (the owner), and one
 * event source per child on other threads:
 *   source i  the child's event happens (ready[i]); if the child had
 *             registered its waker, the source takes it and wakes it: the
 *             child waker sets bit i of `woken` (release), then wakes the
 *             task (notified = 1). The leaf's "set ready / check registered"
 *             and the child's "check ready / register" are atomic with
 *             respect to each other (a leaf does both under its own lock).
 *   owner     whenever the task is notified it runs once: it takes the whole
 *             bitmap (atomic exchange to 0), then polls each child whose bit
 *             was set and that is not done: ready -> done, else register.
 *             It stops when it is not notified and every source finished.
 *   init      starts with every bit set and the task notified (the first
 *             poll polls every child).
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
 */
#define N 2

bit ready[N];
bit done[N];
bit registered[N];
byte woken = 3; /* (1 << N) - 1 */
bit notified = 1;
byte sources_done = 0;

proctype source(byte i)
{
    bit wake = 0;
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
        notified = 1;
        woken = woken | (1 << i)
#else
        woken = woken | (1 << i); /* the bit first (release) ... */
        notified = 1              /* ... then the task's wake */
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

proctype owner()
{
    byte bits, i;
    do
    :: atomic { notified == 1 -> notified = 0 } /* the task runs */
#ifdef BUG1
        bits = woken;
#else
        atomic { bits = woken; woken = 0 } /* take the bitmap (acquire) */
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
    :: atomic { notified == 0 && sources_done == N -> break }
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
        run owner();
        run source(0);
        run source(1)
    }
}
