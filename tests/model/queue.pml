/*
 * queue.pml: the steal-half protocol of src/sched/queue.c (asyncio__queue).
 *
 * One owner pushes NITEMS items (overflowing to the inject queue when the
 * ring is full) and pops, in every interleaving; two stealers each try to
 * steal half of the owner's queue STEAL_TRIES times. Spin explores every
 * sequentially consistent interleaving of their atomic steps.
 *
 * Mapping to the C code:
 *   steal, real   the two halves of `head`; every head load, CAS or store is
 *                 one atomic step over the pair (d_step / atomic)
 *   tail          `tail`, written only by the owner; one step per access
 *   slot[]        `buffer`; a plain read or write is its own step
 *   positions     free-running counters modulo MOD (uint32_t in C) starting
 *                 at START, so they wrap during the run; MOD is a multiple
 *                 of CAP and larger than every advance a delayed stealer can
 *                 miss, so there is no ABA (as 2^32 in C)
 *   inject queue  items overflowed there count as consumed
 *   stealer dst   abstracted: a stolen item counts as consumed once copied
 *
 * Slot contents: EMPTY (never written, or read and handed back), an item
 * number, or TAKEN (copied by a stealer that has not yet moved `steal`, so
 * the slot is still not the owner's).
 *
 * Properties (assertions):
 *   - a slot is read only after it was written (never EMPTY or TAKEN);
 *   - the owner writes only EMPTY slots: nothing unread, or read by a
 *     stealer that has not released it, is overwritten;
 *   - every item is consumed at most once, and at the end exactly once;
 *   - a stealer claims at most HALF, and only it moves `steal`;
 *   - at the end steal == real == tail and every slot is EMPTY.
 * A full search (no depth truncation) reports 0 errors.
 *
 * Injected bugs (spin -DBUGn), each must make the search fail; see README.md:
 *   BUG1  the stealer does not give up when another steal is in progress
 *   BUG2  the owner checks room against `real` instead of `steal`
 *   BUG3  the stealer hands the slots back (steal = real) before copying them
 *   BUG4  overflow claims its half with a plain store instead of a CAS
 */

#define CAP 4
#define MASK 3
#define HALF 2
#define MOD 16
#define START 13
#define NITEMS 6
#define STEAL_TRIES 2

#define SUB(a, b) (((a) + MOD - (b)) % MOD)
#define ADD(a, n) (((a) + (n)) % MOD)
#define IDX(p) ((p) & MASK)

#define EMPTY 0
#define TAKEN 255

byte slot[CAP];
byte steal = START;
byte real = START;
byte tail = START;
byte consumed[NITEMS + 1];

inline consume(it)
{
    assert(it >= 1 && it <= NITEMS);
    consumed[it]++;
    assert(consumed[it] == 1)
}

/* The owner reads a slot it claimed and consumes the item (one step: the slot is its own). */
inline owner_take(pos)
{
    d_step {
        v = slot[IDX(pos)];
        assert(v != EMPTY && v != TAKEN);
        slot[IDX(pos)] = EMPTY;
        consume(v);
        v = 0
    }
}

/* asyncio__queue_pop. got = 1 if an item was taken. */
inline pop()
{
    got = 0;
    d_step { s = steal; r = real }                  /* head load (acquire) */
    do
    :: r == tail -> break                            /* empty */
    :: else ->
        d_step {                                     /* head CAS (acq_rel) */
            if
            :: steal == s && real == r ->
                if
                :: s == r -> steal = ADD(r, 1)       /* no steal running: both move */
                :: else -> assert(s != ADD(r, 1))    /* a stealer owns steal */
                fi;
                real = ADD(r, 1);
                ok = 1
            :: else -> s = steal; r = real; ok = 0   /* failed: retry with its value */
            fi
        }
        if
        :: ok -> owner_take(r); got = 1; break
        :: else -> skip
        fi
    od;
    s = 0; r = 0; ok = 0
}

/* asyncio__queue_push_back_or_overflow of item `item`. */
inline push()
{
    do
    :: d_step { s = steal; r = real }                /* head load (acquire) */
#ifdef BUG2
       if
       :: SUB(tail, r) < CAP ->                      /* BUG2: room measured from real */
#else
       if
       :: SUB(tail, s) < CAP ->                      /* room at tail */
#endif
           d_step { assert(slot[IDX(tail)] == EMPTY); slot[IDX(tail)] = item }
           tail = ADD(tail, 1);                      /* tail store (release) */
           break
       :: else ->
           if
           :: s != r -> consume(item); break         /* steal running: only item to inject */
           :: else ->
               assert(SUB(tail, r) == CAP);
               d_step {                              /* overflow: claim the oldest HALF */
#ifdef BUG4
                   steal = ADD(r, HALF); real = ADD(r, HALF); ok = 1   /* BUG4: plain store */
#else
                   if
                   :: steal == r && real == r -> steal = ADD(r, HALF); real = ADD(r, HALF); ok = 1
                   :: else -> ok = 0
                   fi
#endif
               }
               if
               :: ok ->
                   i = 0;
                   do
                   :: i < HALF -> owner_take(ADD(r, i)); i++
                   :: else -> break
                   od;
                   consume(item);                    /* the batch: HALF items, then item */
                   break
               :: else -> skip                       /* a stealer won: look again */
               fi
           fi
       fi
    od;
    s = 0; r = 0; i = 0; ok = 0;
    item++
}

proctype owner()
{
    byte item = 1, s, r, i, v;
    bit ok, got;
    do
    :: item <= NITEMS -> push()
    :: pop()
    :: item > NITEMS -> break
    od;
    do                                               /* drain: pop until empty */
    :: pop(); if :: got -> skip :: else -> break fi
    od
}

/* asyncio__queue_steal_into's steal_half, with the destination abstracted. */
proctype stealer()
{
    byte tries = 0, s, r, t, n, i, v;
    bit ok;
    do
    :: tries < STEAL_TRIES ->
        tries++;
        d_step { s = steal; r = real }               /* head load (acquire) */
        do
        :: t = tail;                                 /* tail load (acquire) */
#ifndef BUG1
           if
           :: s != r -> n = 0; break                 /* another steal is running */
           :: else -> skip
           fi;
#endif
           n = SUB(t, r);
           n = n - n / 2;
           if
           :: n == 0 -> break
           :: else -> skip
           fi;
           d_step {                                  /* claim: (s, r) -> (s, r + n) */
               if
               :: steal == s && real == r -> real = ADD(r, n); ok = 1
               :: else -> s = steal; r = real; ok = 0
               fi
           }
           if
           :: ok -> break
           :: else -> skip
           fi
        od;
        if
        :: n > 0 ->
            assert(n <= HALF);
#ifdef BUG3
            d_step { steal = real }                  /* BUG3: released before copying */
            i = 0;
            do
            :: i < n ->
                d_step {
                    v = slot[IDX(ADD(s, i))];
                    assert(v != EMPTY && v != TAKEN);
                    slot[IDX(ADD(s, i))] = EMPTY;
                    consume(v); v = 0
                };
                i++
            :: else -> break
            od
#else
            i = 0;
            do                                       /* copy the claimed slots, one by one */
            :: i < n ->
                d_step {
                    v = slot[IDX(ADD(s, i))];
                    assert(v != EMPTY && v != TAKEN);
                    slot[IDX(ADD(s, i))] = TAKEN;
                    consume(v); v = 0
                };
                i++
            :: else -> break
            od;
            i = 0;
            d_step {                                 /* release: steal = current real (CAS loop) */
                assert(steal == s && steal != real);
                do
                :: i < n -> assert(slot[IDX(ADD(s, i))] == TAKEN); slot[IDX(ADD(s, i))] = EMPTY; i++
                :: else -> break
                od;
                steal = real
            }
#endif
        :: else -> skip
        fi;
        s = 0; r = 0; t = 0; n = 0; i = 0; ok = 0
    :: else -> break
    od
}

init
{
    byte k;
    atomic {
        run owner();
        run stealer();
        run stealer()
    }
    (_nr_pr == 1);                                   /* everyone finished */
    k = 1;
    do
    :: k <= NITEMS -> assert(consumed[k] == 1); k++
    :: else -> break
    od;
    assert(steal == real && real == tail);
    k = 0;
    do
    :: k < CAP -> assert(slot[k] == EMPTY); k++
    :: else -> break
    od
}
