/*
 * asyncio_once_cell: a value set at most once, initialised by one caller
 * at a time while the others wait (Tokio's OnceCell::get_or_init).
 *
 * One allocation holds the cell and its value slot (elem_size bytes after
 * the header).
 *
 * Cell state (cell->state; changed only under cell->lock, read without it
 * by the lock-free get):
 *   EMPTY         no value, nobody initialising.
 *   INITIALISING  one get_or_init future holds the turn (F_TURN), or the
 *                 turn was handed to a queued future that has not observed
 *                 it yet (its `granted` flag; it is unlinked).
 *   SET           the value is in `value` and never changes again.
 * The value is written before the release store of SET; readers load SET
 * with acquire, then copy: no lock on the read path.
 *
 * Future states (asyncio_once_cell_get_or_init.state):
 *   F_INIT      initialised, never polled.
 *   F_WAITING   queued in cell->waiters (FIFO) while another future holds
 *               the turn; unlinked once the turn was handed to it
 *               (granted) or the value was set (a finish / set woke it).
 *   F_TURN      holds the initialisation turn: must finish or drop.
 *   F_DONE      completed with the value (or finished the init).
 *   F_CANCELLED dropped: polls return ASYNCIO_ECANCELED.
 * The turn is never lost: the one place it ends without a value is
 * pass_turn_locked, which hands it to the oldest waiter or, with none,
 * makes the cell EMPTY again, where the next first poll takes it.
 */
#include <stdalign.h>
#include <string.h>

#include "asyncio/once_cell.h"

#include "sync/sync_int.h"
#include "util/alloc.h"

enum cell_state {
    CELL_EMPTY = 0,
    CELL_INITIALISING = 1,
    CELL_SET = 2,
};

enum future_state {
    F_INIT = 0,
    F_WAITING = 1,
    F_TURN = 2,
    F_DONE = 3,
    F_CANCELLED = 4,
};

struct asyncio_once_cell {
    _Atomic int state; /* enum cell_state, see above */
    asyncio__mutex lock;
    asyncio__list waiters; /* asyncio_once_cell_get_or_init.link, FIFO */
    size_t elem_size;
    alignas(max_align_t) unsigned char value[]; /* elem_size bytes, valid once SET */
};

static asyncio_once_cell_get_or_init *future_of(asyncio__list *n)
{
    return ASYNCIO_CONTAINER_OF(n, asyncio_once_cell_get_or_init, link);
}

int asyncio_once_cell_new(asyncio_once_cell **out, size_t elem_size)
{
    if (out == NULL || elem_size == 0 || elem_size > SIZE_MAX - sizeof(asyncio_once_cell))
        return ASYNCIO_EINVAL;
    asyncio_once_cell *cell = asyncio__malloc(sizeof *cell + elem_size);
    if (cell == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__mutex_init(&cell->lock);
    if (rc != 0) {
        asyncio__free(cell);
        return rc;
    }
    atomic_init(&cell->state, CELL_EMPTY);
    asyncio__list_init(&cell->waiters);
    cell->elem_size = elem_size;
    *out = cell;
    return 0;
}

int asyncio_once_cell_free(asyncio_once_cell *cell)
{
    if (cell == NULL)
        return 0;
    asyncio__mutex_lock(&cell->lock);
    /* relaxed: changed only under the lock we hold */
    bool busy = !asyncio__list_empty(&cell->waiters) ||
                atomic_load_explicit(&cell->state, memory_order_relaxed) == CELL_INITIALISING;
    asyncio__mutex_unlock(&cell->lock);
    if (busy)
        return ASYNCIO_EBUSY;
    asyncio__mutex_destroy(&cell->lock);
    asyncio__free(cell);
    return 0;
}

/* True (and the value copied to out, if non-NULL) if the cell is set. No lock. */
static bool read_value(asyncio_once_cell *cell, void *out)
{
    /* acquire: pairs with the release store of SET in publish_locked: the value is visible */
    if (atomic_load_explicit(&cell->state, memory_order_acquire) != CELL_SET)
        return false;
    if (out != NULL)
        memcpy(out, cell->value, cell->elem_size);
    return true;
}

int asyncio_once_cell_get(asyncio_once_cell *cell, void *out)
{
    if (cell == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    return read_value(cell, out) ? 0 : ASYNCIO_EAGAIN;
}

bool asyncio_once_cell_is_set(asyncio_once_cell *cell)
{
    return cell != NULL && read_value(cell, NULL);
}

/*
 * Under the lock: stores the value, publishes SET and wakes every waiter
 * (each unlinked; its next poll reads the value). Releases the lock.
 */
static void publish_and_unlock(asyncio_once_cell *cell, const void *value)
{
    memcpy(cell->value, value, cell->elem_size);
    /* release: pairs with the acquire load in read_value */
    atomic_store_explicit(&cell->state, CELL_SET, memory_order_release);
    asyncio__wake_batch b;
    asyncio__wake_batch_init(&b);
    asyncio__list *node;
    while ((node = asyncio__list_first(&cell->waiters)) != NULL) {
        if (asyncio__wake_batch_full(&b)) { /* nobody queues any more: the cell is SET */
            asyncio__mutex_unlock(&cell->lock);
            asyncio__wake_batch_wake(&b);
            asyncio__mutex_lock(&cell->lock);
            continue;
        }
        asyncio__list_remove(node);
        asyncio__wake_batch_push(&b, &future_of(node)->waker);
    }
    asyncio__mutex_unlock(&cell->lock);
    asyncio__wake_batch_wake(&b);
}

int asyncio_once_cell_set(asyncio_once_cell *cell, const void *value)
{
    if (cell == NULL || value == NULL)
        return ASYNCIO_EINVAL;
    asyncio__mutex_lock(&cell->lock);
    /* relaxed: changed only under the lock we hold */
    int s = atomic_load_explicit(&cell->state, memory_order_relaxed);
    if (s != CELL_EMPTY) {
        asyncio__mutex_unlock(&cell->lock);
        return s == CELL_SET ? ASYNCIO_EEXIST : ASYNCIO_EBUSY;
    }
    publish_and_unlock(cell, value);
    return 0;
}

/*
 * Under the lock: the turn ends without a value. The oldest waiter gets it
 * (unlinked, granted, its waker moved to *w), or the cell is EMPTY again.
 */
static void pass_turn_locked(asyncio_once_cell *cell, asyncio_waker *w)
{
    asyncio__list *node = asyncio__list_first(&cell->waiters);
    if (node == NULL) {
        /* relaxed: no value is published; readers only act on SET */
        atomic_store_explicit(&cell->state, CELL_EMPTY, memory_order_relaxed);
        return;
    }
    asyncio_once_cell_get_or_init *next = future_of(node);
    asyncio__list_remove(node);
    next->granted = 1;
    *w = next->waker;
    next->waker = ASYNCIO_WAKER_EMPTY;
}

void asyncio_once_cell_get_or_init_init(asyncio_once_cell_get_or_init *f, asyncio_once_cell *cell)
{
    asyncio__list_node_init(&f->link);
    f->cell = cell;
    f->waker = ASYNCIO_WAKER_EMPTY;
    f->granted = 0;
    f->state = F_INIT;
}

static int got_value(asyncio_once_cell_get_or_init *f, bool *init_turn)
{
    f->state = F_DONE;
    *init_turn = false;
    return 0;
}

static int got_turn(asyncio_once_cell_get_or_init *f, bool *init_turn)
{
    f->state = F_TURN;
    *init_turn = true;
    return 0;
}

/* Under the lock (released on return): what a poll of a not-yet-finished future sees. */
static int poll_locked(asyncio_once_cell_get_or_init *f, asyncio_context *cx, void *out,
                       bool *init_turn)
{
    asyncio_once_cell *cell = f->cell;
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    int rc = ASYNCIO_PENDING;
    /* relaxed: changed only under the lock we hold (the value was written under it too) */
    int s = atomic_load_explicit(&cell->state, memory_order_relaxed);
    if (s == CELL_SET) { /* set meanwhile: leave the queue if still in it */
        asyncio__list_remove(&f->link);
        old = f->waker;
        f->waker = ASYNCIO_WAKER_EMPTY;
        if (out != NULL)
            memcpy(out, cell->value, cell->elem_size);
        rc = got_value(f, init_turn);
    } else if (f->granted) { /* a dropped initialiser handed the turn to us */
        f->granted = 0;
        rc = got_turn(f, init_turn);
    } else if (s == CELL_EMPTY) {       /* nobody initialises: our turn */
        asyncio__list_remove(&f->link); /* never linked in practice: a turn is passed to a waiter */
        atomic_store_explicit(&cell->state, CELL_INITIALISING, memory_order_relaxed);
        rc = got_turn(f, init_turn);
    } else if (f->state == F_INIT) { /* someone initialises: queue */
        asyncio__list_push_back(&cell->waiters, &f->link);
        f->waker = asyncio_waker_clone(cx->waker);
        f->state = F_WAITING;
    } else if (!asyncio_waker_will_wake(&f->waker, cx->waker)) { /* queued: refresh the waker */
        old = f->waker;
        f->waker = asyncio_waker_clone(cx->waker);
    }
    asyncio__mutex_unlock(&cell->lock);
    asyncio_waker_drop(&old);
    return rc;
}

int asyncio_once_cell_get_or_init_poll(asyncio_once_cell_get_or_init *f, asyncio_context *cx,
                                       void *out, bool *init_turn)
{
    if (f == NULL || cx == NULL || init_turn == NULL || f->cell == NULL)
        return ASYNCIO_EINVAL;
    switch (f->state) {
    case F_DONE: /* completed: the value again (it never changes) */
        read_value(f->cell, out);
        *init_turn = false;
        return 0;
    case F_TURN: /* holds the turn: the result again */
        *init_turn = true;
        return 0;
    case F_CANCELLED:
        return ASYNCIO_ECANCELED;
    case F_INIT:    /* first poll */
    case F_WAITING: /* queued, or granted / woken and not yet observed */
        if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        if (f->state == F_INIT && read_value(f->cell, out)) /* the lock-free path */
            return got_value(f, init_turn);
        asyncio__mutex_lock(&f->cell->lock);
        return poll_locked(f, cx, out, init_turn);
    default:
        ASYNCIO_CHECK(!"asyncio_once_cell_get_or_init: corrupt state");
        return ASYNCIO_EINVAL;
    }
}

int asyncio_once_cell_init_finish(asyncio_once_cell_get_or_init *f, const void *value)
{
    if (f == NULL || value == NULL || f->cell == NULL || f->state != F_TURN)
        return ASYNCIO_EINVAL;
    asyncio_once_cell *cell = f->cell;
    asyncio__mutex_lock(&cell->lock);
    /* relaxed: changed only under the lock we hold */
    ASYNCIO_CHECK(atomic_load_explicit(&cell->state, memory_order_relaxed) == CELL_INITIALISING);
    f->state = F_DONE;
    publish_and_unlock(cell, value);
    return 0;
}

void asyncio_once_cell_get_or_init_drop(asyncio_once_cell_get_or_init *f)
{
    if (f == NULL)
        return;
    if (f->state != F_WAITING && f->state != F_TURN) {
        f->state = f->state == F_DONE ? F_DONE : F_CANCELLED;
        return;
    }
    asyncio_once_cell *cell = f->cell;
    asyncio_waker forward = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_lock(&cell->lock);
    asyncio__list_remove(&f->link);
    /* Holding the turn, or handed it and never observed it: pass it on. */
    if (f->state == F_TURN || f->granted)
        pass_turn_locked(cell, &forward);
    f->granted = 0;
    asyncio_waker old = f->waker;
    f->waker = ASYNCIO_WAKER_EMPTY;
    f->state = F_CANCELLED;
    asyncio__mutex_unlock(&cell->lock);
    asyncio_waker_wake(&forward);
    asyncio_waker_drop(&old);
}
