/*
 * libasyncio: the future interface and its combinators.
 *
 * One interface for everything that can be awaited: a vtable of two
 * functions and the state they work on,
 *
 *     poll(state, cx, out)   ASYNCIO_PENDING (cx's waker stored), or the
 *                            result: 0 or a negative error, having written
 *                            its output (if any) to `out`
 *     drop(state)            cancels / releases the future (may be NULL)
 *
 * -- the same two signatures as a task's (asyncio_task_vtable), so any task
 * type's poll and drop are a future vtable too. An asyncio_future value
 * binds a vtable, the state and the destination of the output; it is three
 * pointers, passed and stored by value. Every leaf of the library can be
 * made into one (include/asyncio/adapt.h), and every combinator below is
 * one again (asyncio_select_future, asyncio_join_future,
 * asyncio_timeout_future in time.h), so they nest.
 *
 * Ownership: a combinator owns the futures it is given. It drops each one
 * exactly once: a child that finished is dropped at once (its output is
 * already written), the losers of a select / race and the rest of a failed
 * try_join are dropped as soon as the result is known, and dropping the
 * combinator drops whatever is still running. What dropping a child loses
 * is the child's own cancellation rule (adapt.h and each leaf's header:
 * a read or an accept loses nothing, an acquire gives its partial permits
 * back, a received message that was not returned stays in the channel...).
 *
 * Wakes: a combinator over several futures gives each child its own waker,
 * which records *which* child was woken before waking the task, so a poll
 * polls only the children that were woken (plus all of them on the first
 * poll). The per-child wakers live in one block (an asyncio_wake_set)
 * allocated by the combinator's init and reference-counted: a waker a leaf
 * still holds after the combinator was dropped (a socket's registration, a
 * signal listener) points at live memory, and waking it only wakes the task.
 * Polling allocates nothing.
 *
 * Thread-safety: a future (and a combinator) belongs to one task: poll and
 * drop it from one thread at a time. Wakers are woken from any thread.
 *
 * Moving: combinators are movable until their first poll. The children
 * array given to init is kept as a pointer (it is usually in the same task
 * state: initialise the combinator in the task's first poll, once the state
 * stays where it is, or keep the array outside).
 */
#ifndef ASYNCIO_FUTURE_H
#define ASYNCIO_FUTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "error.h"
#include "task.h"

/* ------------------------------------------------------------------------ */
/* The interface                                                             */

/**
 * How a future works. poll is required; drop may be NULL (nothing to
 * release). The signatures are those of asyncio_task_vtable's poll / drop.
 */
typedef struct asyncio_future_vtable {
    int (*poll)(void *state, asyncio_context *cx, void *out);
    void (*drop)(void *state);
} asyncio_future_vtable;

/**
 * A future: vtable, state and output destination (NULL: the future has no
 * output or the caller does not want it). A plain value; an empty future
 * (NULL vtable) is one that finished and was dropped, or never existed.
 * Whoever holds the value owns the future (drops it once).
 */
typedef struct asyncio_future {
    const asyncio_future_vtable *vtable;
    void *state;
    void *out;
} asyncio_future;

/** The empty future. */
#ifdef __cplusplus
#define ASYNCIO_FUTURE_EMPTY (asyncio_future{NULL, NULL, NULL})
#else
#define ASYNCIO_FUTURE_EMPTY ((asyncio_future){NULL, NULL, NULL})
#endif

/** A future from its parts (a user type's vtable, its state, where its output goes). */
static inline asyncio_future asyncio_future_make(const asyncio_future_vtable *vt, void *state,
                                                 void *out)
{
    asyncio_future f;
    f.vtable = vt;
    f.state = state;
    f.out = out;
    return f;
}

/** True for the empty future (finished and dropped, or never set). */
static inline bool asyncio_future_is_empty(const asyncio_future *f)
{
    return f->vtable == NULL;
}

/**
 * Polls f (writing its output to f->out). Returns ASYNCIO_PENDING, 0 or a
 * negative error; ASYNCIO_EINVAL for an empty future. Does not drop f when
 * it finishes: call asyncio_future_drop.
 */
static inline int asyncio_future_poll(asyncio_future *f, asyncio_context *cx)
{
    if (f->vtable == NULL)
        return ASYNCIO_EINVAL;
    return f->vtable->poll(f->state, cx, f->out);
}

/** Drops f (its drop, if any) and makes it empty. Idempotent. */
static inline void asyncio_future_drop(asyncio_future *f)
{
    const asyncio_future_vtable *vt = f->vtable;
    f->vtable = NULL;
    if (vt != NULL && vt->drop != NULL)
        vt->drop(f->state);
}

/* ------------------------------------------------------------------------ */
/* Per-child wakers                                                          */

/**
 * The per-child wakers of a combinator (see above). Opaque; created and
 * released by the combinators. Reference-counted: the combinator holds one
 * reference, every clone of a child waker one more.
 */
typedef struct asyncio_wake_set asyncio_wake_set;

/* ------------------------------------------------------------------------ */
/* select / race                                                             */

/**
 * The first of N futures to finish wins (select), or the first to succeed
 * (race: a child that fails is dropped and the others go on; when every
 * child failed, the last error is the result). Embeddable; fields private.
 */
typedef struct asyncio_select {
    /* private */
    asyncio_future *futs;
    size_t n;
    asyncio_wake_set *ws;
    size_t winner;
    size_t live; /* children not yet finished (race) */
    int last_err;
    unsigned char race;
    unsigned char done;
} asyncio_select;

ASYNCIO_BEGIN_DECLS

/**
 * Initialises a select over futs[0..n): the select owns those futures
 * from now on (also when init fails: they are dropped then). The array
 * itself stays the caller's and must outlive the select; finished children
 * become empty in it.
 *
 * Errors: ASYNCIO_EINVAL (NULL s or futs, n == 0, an empty future in the
 * array), ASYNCIO_ENOMEM (the wake set). On error *s is safe to drop.
 */
ASYNCIO_EXTERN int asyncio_select_init(asyncio_select *s, asyncio_future *futs, size_t n);

/** As asyncio_select_init, with race semantics (first success wins). */
ASYNCIO_EXTERN int asyncio_race_init(asyncio_select *s, asyncio_future *futs, size_t n);

/**
 * Polls the children that were woken (all of them at the first poll), in
 * index order. When one finishes (select) or succeeds (race), drops every
 * other child and returns its result, with its index in *winner (if
 * non-NULL; also asyncio_select_winner). A child's output went to its own
 * `out`. Returns ASYNCIO_PENDING otherwise. Polling after the result
 * returns ASYNCIO_EINVAL.
 *
 * Errors: the winner's error (select), the last child's error when all
 * failed (race), ASYNCIO_EINVAL (NULL argument, select not initialised or
 * finished).
 */
ASYNCIO_EXTERN int asyncio_select_poll(asyncio_select *s, asyncio_context *cx, size_t *winner);

/** The index of the child that won, or SIZE_MAX before there is one. */
ASYNCIO_EXTERN size_t asyncio_select_winner(const asyncio_select *s);

/**
 * Drops every child still running (each with its cancellation rule) and
 * the select's wake set. Idempotent; fine on a select whose init failed.
 */
ASYNCIO_EXTERN void asyncio_select_drop(asyncio_select *s);

/** The select as a future; its output is the winner's index (size_t) written to `winner_out`. */
ASYNCIO_EXTERN asyncio_future asyncio_select_future(asyncio_select *s, size_t *winner_out);

/* ------------------------------------------------------------------------ */
/* join_all / try_join                                                       */

/**
 * Runs N futures to completion, concurrently on one task, collecting each
 * one's result (join_all; Tokio's join! and join_all) -- or until the
 * first error, which drops the rest (try_join). Embeddable; fields private.
 */
typedef struct asyncio_join {
    /* private */
    asyncio_future *futs;
    size_t n;
    asyncio_wake_set *ws;
    int *results;
    size_t left;   /* children still running */
    size_t failed; /* try_join: the child whose error ended it, or SIZE_MAX */
    unsigned char try_join;
    unsigned char done;
} asyncio_join;

/**
 * Initialises a join_all over futs[0..n) (owned from now on, as for
 * select). results[i] (an array of n ints, the caller's, which must outlive
 * the join) receives child i's result as it finishes; outputs go to each
 * child's own `out`.
 *
 * Errors: ASYNCIO_EINVAL (NULL argument, n == 0, an empty future),
 * ASYNCIO_ENOMEM. On error the futures were dropped and *j is safe to drop.
 */
ASYNCIO_EXTERN int asyncio_join_all_init(asyncio_join *j, asyncio_future *futs, size_t n,
                                         int *results);

/**
 * As asyncio_join_all_init, with try_join semantics: the first child to
 * fail ends the join with its error and the others are dropped.
 */
ASYNCIO_EXTERN int asyncio_try_join_init(asyncio_join *j, asyncio_future *futs, size_t n,
                                         int *results);

/**
 * Polls the woken children. join_all: 0 once every child finished
 * (whatever their results: read results[]). try_join: 0 once all
 * succeeded, or the first error (the failing index in *failed if non-NULL,
 * and results[] filled for the children that finished). Else
 * ASYNCIO_PENDING. Errors: ASYNCIO_EINVAL (NULL argument, not initialised,
 * already finished).
 */
ASYNCIO_EXTERN int asyncio_join_poll(asyncio_join *j, asyncio_context *cx, size_t *failed);

/** Drops the children still running and the wake set. Idempotent. */
ASYNCIO_EXTERN void asyncio_join_drop(asyncio_join *j);

/** The join as a future (no output; try_join's failing index: asyncio_join_poll). */
ASYNCIO_EXTERN asyncio_future asyncio_join_future(asyncio_join *j);

ASYNCIO_END_DECLS

#endif
