/*
 * slab.pml: one chunk of the task-block slab (src/task/block_cache.c):
 * frees from other threads onto the chunk's remote stack, the owner taking
 * the stack back, and the owner orphaning the chunk (its runtime is freed)
 * while blocks are still out, after which the last free frees the chunk.
 *
 * Configuration: three blocks out (1, 2, 3). Two other threads free blocks
 * 1 and 2 (asyncio__slab_free_remote). The owner holds block 3 and, in any
 * order: takes the remote stack back (chunk_collect) up to twice, handing
 * the first block it got back to a third freeing thread (a block freed,
 * taken back, handed out and freed again); frees block 3 on its own list
 * (before orphaning) or as a foreign thread would (after); orphans the
 * chunk (chunk_orphan). Pointers are block ids (0: none); the remote word
 * is id | ORPHAN, changed only by atomic steps as the C's CAS and exchanges.
 *
 * Checked: nothing touches the chunk after it was freed; it is freed once;
 * once every thread is done it has been freed, with no block unaccounted
 * (live count 0); the owner's count never goes below zero.
 *
 * Variants (each must be caught):
 *   BUG1  chunk_orphan publishes the live count after the ORPHAN mark
 *   BUG2  chunk_orphan forgets the blocks pushed before the mark
 *   BUG3  a freeing thread pushes without looking at the mark (a plain
 *         lock-free stack push): its block is lost in an orphaned chunk
 *   BUG4  chunk_orphan takes no hold of its own (the first version of the
 *         code): with nothing on the stack, the frees after the mark take
 *         the count to zero and free the chunk, and the orphaning's
 *         subtraction then reads freed memory and frees it again
 */
#define ORPHAN 8

byte remote = 0;  /* the stack's top block, | ORPHAN */
byte nxt[4];      /* each block's first word: the next block on the stack */
short used = 3;   /* owner: blocks out */
short live = 0;   /* after orphaning: blocks still out */
byte freed = 0;   /* times the chunk was freed */

inline touch()
{
    assert(freed == 0)
}

/* asyncio__slab_free_remote(ch, b) */
inline remote_free(b, h, ok, last)
{
    touch();
    h = remote;
    do
#ifdef BUG3
    :: false ->
#else
    :: (h & ORPHAN) ->
#endif
        atomic { touch(); live = live - 1; last = (live == 0) }
        assert(live >= 0);
        if
        :: last -> freed++
        :: else -> skip
        fi;
        break
    :: else ->
        touch();
        nxt[b] = h;
        atomic {
            touch();
            if
            :: remote == h -> remote = b; ok = true
            :: else -> h = remote; ok = false
            fi
        }
        if
        :: ok -> break
        :: else -> skip
        fi
    od
}

proctype Freer(byte b)
{
    byte h;
    bool ok, last;
    remote_free(b, h, ok, last)
}

proctype Owner()
{
    byte h, c, n, rounds = 0;
    bool holds = true, orphaned = false, handed = false, ok, last;
    do
    :: !orphaned && rounds < 2 -> /* chunk_collect */
        rounds++;
        touch();
        if
        :: remote != 0 ->
            atomic { touch(); h = remote; remote = 0 };
            n = 0;
            c = h;
            do
            :: c != 0 -> touch(); c = nxt[c]; n++
            :: else -> break
            od;
            used = used - n;
            assert(used >= 0);
            if
            :: !handed -> /* chunk_take: the block h is out again, and freed elsewhere */
                handed = true;
                used++;
                run Freer(h)
            :: else -> skip
            fi
        :: else -> skip
        fi
    :: !orphaned && holds -> /* a free on the owning thread: its own list */
        holds = false;
        touch();
        used--;
        assert(used >= 0)
    :: !orphaned -> /* chunk_orphan */
        touch();
#ifdef BUG4
#define HOLD 0
#else
#define HOLD 1
#endif
#ifndef BUG1
        live = used + HOLD; /* the blocks out, and the orphaning's own hold */
#endif
        atomic { touch(); h = remote; remote = ORPHAN };
#ifdef BUG1
        live = used + HOLD;
#endif
        n = HOLD;
        c = h;
        do
        :: c != 0 -> touch(); c = nxt[c]; n++
        :: else -> break
        od;
#ifdef BUG2
        n = HOLD;
#endif
        atomic { live = live - n; last = (live == 0) };
        assert(live >= 0);
        if
        :: last -> touch(); freed++
        :: else -> skip
        fi;
        orphaned = true
    :: orphaned && holds -> /* the owner's thread no longer owns it: the remote path */
        holds = false;
        remote_free(3, h, ok, last)
    :: orphaned && !holds -> break
    od
}

init
{
    atomic {
        run Freer(1);
        run Freer(2);
        run Owner()
    };
    (_nr_pr == 1);
    assert(freed == 1);
    assert(live == 0)
}
