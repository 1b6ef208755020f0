/*
 * rwlock.pml: the async RwLock (src/sync/rwlock.c) on the semaphore's
 * lock-free fast paths and FIFO slow paths (src/sync/semaphore.c, bit
 * table in src/sync/sync_int.h).
 *
 * The lock is a semaphore of MAX = 2 permits (two readers at most): a read
 * acquires 1, a write acquires 2. Three processes, in rounds (the writer
 * and reader1 two rounds each, reader2 one: about 7.4 M states; three
 * rounds each take 37 M states and two minutes for no new branch). A round:
 * acquire (first poll: the lock-free take; else under the lock: take what
 * is there as a partial grant and queue), wait for the grant or cancel at
 * any moment (the drop: unlink and hand the partial grant on, or give a
 * grant nobody observed back), critical section, release (the lock-free
 * put while no waiter is queued; else under the lock: assign to the head
 * waiter first, FIFO, partially).
 *   writer   wants 2
 *   reader1  wants 1
 *   reader2  wants 1
 * The state word is (p, W): available permits and the WAITERS bit; each
 * fast path's CAS loop is one atomic conditional update (a failed CAS
 * re-reads the word, so the loop decides on the current value). The lock
 * is a spin lock; the waiter list an array, FIFO. A waiter "sleeps" until
 * its result is set (the wake) and observes it under the lock, as
 * acquire_again does.
 *
 * Properties:
 *   - mutual exclusion: a writer is alone; readers never overlap a writer;
 *   - the invariant: WAITERS => no available permit (what stops a
 *     lock-free take from overtaking a queued waiter);
 *   - writer preference: a reader that arrives while the writer is queued
 *     gets the lock only after the writer has had it (or gave up);
 *   - no lost wake-up: every process terminates (an invalid end state is a
 *     waiter nobody will ever grant);
 *   - conservation: at the end all 2 permits are back, nobody is queued.
 *
 * Injected bugs (spin -DBUGn), each must make the search fail:
 *   BUG1  queueing does not take the available permits as a partial grant
 *         (queue_locked sets WAITERS but leaves them in the count)
 *   BUG2  the lock-free release ignores WAITERS and adds to the count while
 *         a waiter is queued (nobody hands the permits to it)
 *   BUG3  dropping a queued request does not hand its partial grant on
 *   BUG4  dropping a granted request that never observed the grant keeps
 *         the permits (they are lost)
 */

#define MAX 2
#define NPROC 3
#define WRITER 0

byte p = MAX;     /* available permits */
bit W;            /* WAITERS: the list is non-empty */
bit lk;           /* the semaphore's mutex */
byte q[NPROC];    /* FIFO waiter list (process ids) */
byte qlen;
bit linked[NPROC];
byte needed[NPROC];
bit granted[NPROC];   /* result == 0 set by a releaser / dropper (the wake) */
byte readers_in, writers_in;
byte writer_turns;    /* times the writer held the lock or gave up */
byte done;

inline lock()   { atomic { lk == 0 -> lk = 1 } }
inline unlock() { lk = 0 }

/* Under the lock: unlink process `id` from the FIFO. */
inline q_remove(id)
{
    d_step {
        i = 0;
        do
        :: i < qlen && q[i] != id -> i++
        :: else -> break
        od;
        assert(i < qlen);
        do
        :: i + 1 < qlen -> q[i] = q[i + 1]; i++
        :: else -> break
        od;
        qlen--;
        linked[id] = 0
    }
}

/*
 * Under the lock: assign_locked + put_locked. n permits go to the head
 * waiters first (partially); the rest to the count, with WAITERS made to
 * match the list, in one atomic update of the word.
 */
inline assign(n)
{
    d_step {
        do
        :: n > 0 && qlen > 0 ->
            h = q[0];
            if
            :: needed[h] <= n -> n = n - needed[h]; needed[h] = 0
            :: else -> needed[h] = needed[h] - n; n = 0
            fi;
            if
            :: needed[h] == 0 ->
                /* fully granted: unlink, result 0, woken */
                i = 0;
                do
                :: i + 1 < qlen -> q[i] = q[i + 1]; i++
                :: else -> break
                od;
                qlen--;
                linked[h] = 0;
                granted[h] = 1
            :: else -> break /* the head is partially granted: the others wait behind it */
            fi
        :: else -> break
        od;
        p = p + n;
        W = (qlen > 0);
        n = 0
    }
}

/* Unlock: the lock-free put while no waiter is queued, else hand over under the lock. */
inline release(n)
{
    atomic {
#ifdef BUG2
        if
        :: true -> p = p + n; ok = 1
        fi
#else
        if
        :: !W -> p = p + n; ok = 1
        :: else -> ok = 0
        fi
#endif
    };
    if
    :: !ok -> lock(); give = n; assign(give); unlock()
    :: else -> skip
    fi
}

proctype proc(byte me; byte want; byte rounds)
{
    byte i, h, give, round;
    byte wt;
    bit ok, got, wq, may_cancel;
    do
    :: round == rounds -> break
    :: else ->
        got = 0;
        if /* will this request be cancelled (at a moment of the scheduler's choosing)? */
        :: may_cancel = 0
        :: may_cancel = 1
        fi;
        /* First poll: the lock-free take (take_fast). */
        atomic {
            wq = (me != WRITER && linked[WRITER]);
            wt = writer_turns;
            if
            :: !W && p >= want -> p = p - want; got = 1
            :: else -> skip
            fi
        };
        if
        :: !got ->
            lock();
            /* queue_locked: one update of the word, under the lock */
            d_step {
                if
                :: W -> needed[me] = want
                :: !W && p >= want -> p = p - want; got = 1
#ifdef BUG1
                :: !W && p < want -> needed[me] = want; W = 1
#else
                :: !W && p < want -> needed[me] = want - p; p = 0; W = 1
#endif
                fi;
                if
                :: !got -> q[qlen] = me; qlen++; linked[me] = 1; granted[me] = 0
                :: else -> skip
                fi
            };
            unlock();
            if
            :: !got ->
                /* Wait for the grant (observed under the lock), or cancel at any moment. */
                if
                :: granted[me] -> lock(); got = 1; granted[me] = 0; unlock()
                :: may_cancel ->
                    lock();
                    if
                    :: linked[me] ->
                        q_remove(me);
#ifdef BUG3
                        give = 0
#else
                        give = want - needed[me]
#endif
                    :: else ->
                        assert(granted[me]);
#ifdef BUG4
                        give = 0
#else
                        give = want
#endif
                    fi;
                    granted[me] = 0;
                    assign(give); /* also clears WAITERS if the list emptied */
                    if
                    :: me == WRITER -> writer_turns++ /* gave up: before anyone it unblocked runs */
                    :: else -> skip
                    fi;
                    unlock()
                fi
            :: else -> skip
            fi
        :: else -> skip
        fi;
        if
        :: got ->
            if
            :: me == WRITER ->
                d_step { writers_in++; assert(writers_in == 1 && readers_in == 0); writer_turns++ };
                d_step { writers_in-- }
            :: else ->
                d_step { assert(!wq || writer_turns > wt); readers_in++; assert(writers_in == 0) };
                d_step { readers_in-- }
            fi;
            release(want)
        :: else -> skip
        fi;
        round++
    od;
    done++
}

/* The invariant, checked in every reachable state. */
proctype monitor()
{
    do
    :: atomic { W && p > 0 -> assert(false) }
    :: atomic { done == NPROC -> assert(p == MAX && !W && qlen == 0); break }
    od
}

init
{
    atomic {
        run proc(WRITER, MAX, 2);
        run proc(1, 1, 2);
        run proc(2, 1, 1);
        run monitor()
    }
}
