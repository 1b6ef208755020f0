/*
 * The I/O driver (registrations, readiness word, waker slots, dispatch,
 * deferred release). io.h documents the readiness word, the tick protocol,
 * the locking and the deregistration steps; docs/io-driver.md tells the
 * story with examples. The public async fd built on it is async_fd.c.
 *
 * This file is the only code that changes a registration's readiness word:
 * word_add() (dispatch), word_observe() (poll_ready) and word_clear()
 * (clear_ready) are its three transitions, plus SHUTDOWN on deregister.
 */
#include "reactor/io.h"

#include <stdbool.h>

#include "internal.h"
#include "poller/poller_int.h"
#include "util/alloc.h"

ASYNCIO_STATIC_ASSERT(ASYNCIO_IO_TICK_BITS >= 1 && ASYNCIO_IO_TICK_BITS <= 17,
                      "three direction fields and SHUTDOWN must fit in 64 bits");
ASYNCIO_STATIC_ASSERT(ASYNCIO__IO_DIRS *ASYNCIO__IO_FIELD_BITS <= 63,
                      "direction fields must stay below the SHUTDOWN bit");

/* ------------------------------------------------------------------------ */
/* Directions                                                                */

/* Per direction: the event bit that makes it ready and the one that closes it. */
static const uint32_t dir_primary[ASYNCIO__IO_DIRS] = {ASYNCIO_READABLE, ASYNCIO_WRITABLE,
                                                       ASYNCIO_PRIORITY};
static const uint32_t dir_closed[ASYNCIO__IO_DIRS] = {ASYNCIO_READ_CLOSED, ASYNCIO_WRITE_CLOSED,
                                                      ASYNCIO_READ_CLOSED};

/* The direction index of a public direction bit, or -1. */
static int dir_index(uint32_t direction)
{
    switch (direction) {
    case ASYNCIO_READABLE:
        return ASYNCIO__IO_DIR_READ;
    case ASYNCIO_WRITABLE:
        return ASYNCIO__IO_DIR_WRITE;
    case ASYNCIO_PRIORITY:
        return ASYNCIO__IO_DIR_PRIORITY;
    default:
        return -1;
    }
}

/* ------------------------------------------------------------------------ */
/* The readiness word (bit table in io.h)                                    */

static unsigned field_shift(int d)
{
    return (unsigned)d * ASYNCIO__IO_FIELD_BITS;
}

static uint64_t field_get(uint64_t w, int d)
{
    return (w >> field_shift(d)) & ASYNCIO__IO_FIELD_MASK;
}

static uint64_t field_put(uint64_t w, int d, uint64_t f)
{
    return (w & ~(ASYNCIO__IO_FIELD_MASK << field_shift(d))) | (f << field_shift(d));
}

static uint32_t field_tick(uint64_t f)
{
    return (uint32_t)((f >> ASYNCIO__IO_TICK_SHIFT) & ASYNCIO__IO_TICK_MASK);
}

/* The field bits an event adds to direction d (0: the event does not concern it). */
static uint64_t event_bits(uint32_t ev, int d)
{
    uint64_t add = 0;
    if (ev & dir_primary[d])
        add |= ASYNCIO__IO_PRIMARY;
    if (ev & dir_closed[d])
        add |= ASYNCIO__IO_CLOSED;
    if (ev & ASYNCIO_ERROR)
        add |= ASYNCIO__IO_ERROR;
    return add;
}

/*
 * Dispatch's transition: ORs the event into every direction it concerns;
 * a direction whose readiness was SEEN by a guard gets a new tick (and SEEN
 * is cleared: the next observation re-arms it). Sets *touched to the bit
 * mask of directions concerned.
 */
static uint64_t word_add(uint64_t w, uint32_t ev, unsigned *touched)
{
    *touched = 0;
    for (int d = 0; d < ASYNCIO__IO_DIRS; d++) {
        uint64_t add = event_bits(ev, d);
        if (add == 0)
            continue;
        *touched |= 1u << d;
        uint64_t f = field_get(w, d) | add;
        if (f & ASYNCIO__IO_SEEN) {
            uint64_t tick = (field_tick(f) + 1u) & ASYNCIO__IO_TICK_MASK;
            f = (f & ASYNCIO__IO_READY_BITS) | (tick << ASYNCIO__IO_TICK_SHIFT);
        }
        w = field_put(w, d, f);
    }
    return w;
}

/* The public readiness bits a direction field stands for. */
static uint32_t field_public(uint64_t f, int d)
{
    uint32_t r = 0;
    if (f & ASYNCIO__IO_PRIMARY)
        r |= dir_primary[d];
    if (f & ASYNCIO__IO_CLOSED)
        r |= dir_closed[d];
    if (f & ASYNCIO__IO_ERROR)
        r |= ASYNCIO_ERROR;
    return r;
}

static bool field_ready(uint64_t w, int d)
{
    return (field_get(w, d) & ASYNCIO__IO_READY_BITS) != 0;
}

/* Returns the directions whose wakers must be woken (0: shut down, or nothing concerned). */
static unsigned set_readiness(asyncio__io_reg *reg, uint32_t ev)
{
    unsigned touched = 0;
    /*
     * Acquire on the load and acq_rel on the CAS: the driver's update is
     * released to the acquire loads in poll_ready, so a task that sees the
     * readiness also sees what the driver thread did before dispatching it.
     */
    uint64_t cur = atomic_load_explicit(&reg->readiness, memory_order_acquire);
    for (;;) {
        if (cur & ASYNCIO__IO_SHUTDOWN)
            return 0; /* deregistering: a late event changes nothing, wakes no one */
        uint64_t next = word_add(cur, ev, &touched);
        if (next == cur)
            return touched;
        if (atomic_compare_exchange_weak_explicit(&reg->readiness, &cur, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            return touched;
    }
}

/*
 * poll_ready's transition: if direction d is ready, marks it SEEN (in the
 * same atomic step that reads its tick) and fills the guard. Returns false
 * if it is not ready.
 */
static bool word_observe(asyncio__io_reg *reg, int d, uint32_t direction,
                         asyncio_ready_guard *guard)
{
    /* Acquire: pairs with set_readiness's release (see there). */
    uint64_t cur = atomic_load_explicit(&reg->readiness, memory_order_acquire);
    for (;;) {
        uint64_t f = field_get(cur, d);
        if ((f & ASYNCIO__IO_READY_BITS) == 0)
            return false;
        /*
         * Acquire (both outcomes), as the load above. Setting SEEN itself
         * publishes nothing: what matters is only its place in this word's
         * modification order (any event after it moves the tick).
         */
        if ((f & ASYNCIO__IO_SEEN) ||
            atomic_compare_exchange_weak_explicit(&reg->readiness, &cur,
                                                  field_put(cur, d, f | ASYNCIO__IO_SEEN),
                                                  memory_order_acquire, memory_order_acquire)) {
            guard->readiness = field_public(f, d);
            guard->direction = direction;
            guard->tick = field_tick(f);
            return true;
        }
    }
}

/*
 * clear_ready's transition: clears PRIMARY and ERROR of the guard's
 * direction if its tick is still the guard's (CLOSED is final). SEEN stays:
 * an event after this clear must still move the tick for any other guard
 * taken at this tick.
 */
static bool word_clear(asyncio__io_reg *reg, int d, uint32_t tick)
{
    uint64_t cur = atomic_load_explicit(&reg->readiness, memory_order_relaxed);
    for (;;) {
        uint64_t f = field_get(cur, d);
        if (field_tick(f) != tick)
            return false; /* an event arrived since the guard: keep its readiness */
        uint64_t nf = f & ~(ASYNCIO__IO_PRIMARY | ASYNCIO__IO_ERROR);
        if (nf == f)
            return true;
        /* Relaxed: the decision reads only this word (coherence orders it); no data is published.
         */
        if (atomic_compare_exchange_weak_explicit(&reg->readiness, &cur, field_put(cur, d, nf),
                                                  memory_order_relaxed, memory_order_relaxed))
            return true;
    }
}

/* ------------------------------------------------------------------------ */
/* Waker slots                                                               */

/* Takes the wakers of `dirs` under the lock, wakes them after it. */
static void wake_directions(asyncio__io_reg *reg, unsigned dirs)
{
    asyncio_waker taken[ASYNCIO__IO_DIRS];
    asyncio__spin_lock(&reg->lock);
    for (int d = 0; d < ASYNCIO__IO_DIRS; d++) {
        taken[d] = ASYNCIO_WAKER_EMPTY;
        if (dirs & (1u << d)) {
            taken[d] = reg->wakers[d];
            reg->wakers[d] = ASYNCIO_WAKER_EMPTY;
        }
    }
    asyncio__spin_unlock(&reg->lock);
    for (int d = 0; d < ASYNCIO__IO_DIRS; d++)
        asyncio_waker_wake(&taken[d]);
}

/*
 * Stores a clone of `w` in direction d's slot, then re-reads readiness
 * under the same lock (see "Waker slots" in io.h). Returns true if the
 * direction turned out to be ready. The replaced waker is dropped after
 * unlocking: its drop may run arbitrary code.
 */
static bool store_waker(asyncio__io_reg *reg, int d, const asyncio_waker *w)
{
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_lock(&reg->lock);
    if (!asyncio_waker_will_wake(&reg->wakers[d], w)) {
        old = reg->wakers[d];
        reg->wakers[d] = asyncio_waker_clone(w);
    }
    /* Acquire: as in word_observe. */
    bool ready = field_ready(atomic_load_explicit(&reg->readiness, memory_order_acquire), d);
    asyncio__spin_unlock(&reg->lock);
    asyncio_waker_drop(&old);
    return ready;
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

static int reg_init(asyncio__slab_entry *e)
{
    asyncio__io_reg *reg = ASYNCIO_CONTAINER_OF(e, asyncio__io_reg, entry);
    atomic_init(&reg->readiness, 0);
    for (int d = 0; d < ASYNCIO__IO_DIRS; d++)
        reg->wakers[d] = ASYNCIO_WAKER_EMPTY;
    atomic_init(&reg->lock.held, false);
    return 0;
}

int asyncio__io_driver_init(asyncio__io_driver *io, asyncio_poller *poller)
{
    if (io == NULL || poller == NULL)
        return ASYNCIO_EINVAL;
    int rc = asyncio__mutex_init(&io->lock);
    if (rc < 0)
        return rc;
    io->poller = poller;
    asyncio__slab_init(&io->slab, sizeof(asyncio__io_reg), reg_init, NULL);
    asyncio__list_init(&io->pending);
    io->live = 0;
    return 0;
}

/* Recycles every pending slot. io->lock held. */
static void release_pending_locked(asyncio__io_driver *io)
{
    asyncio__list *n;
    while ((n = asyncio__list_first(&io->pending)) != NULL) {
        asyncio__list_remove(n);
        asyncio__slab_release(&io->slab, ASYNCIO_CONTAINER_OF(n, asyncio__slab_entry, node));
    }
}

int asyncio__io_driver_close(asyncio__io_driver *io)
{
    asyncio__mutex_lock(&io->lock);
    size_t live = io->live;
    asyncio__mutex_unlock(&io->lock);
    if (live > 0)
        return ASYNCIO_EBUSY;
    release_pending_locked(io); /* nobody else uses the driver any more */
    asyncio__slab_close(&io->slab);
    asyncio__mutex_destroy(&io->lock);
    return 0;
}

int asyncio__io_register(asyncio__io_driver *io, asyncio_source *src, uint32_t interest,
                         asyncio__io_reg **out)
{
    return asyncio__io_register_watch(io, src, interest, ASYNCIO_READABLE | ASYNCIO_WRITABLE, out);
}

int asyncio__io_register_watch(asyncio__io_driver *io, asyncio_source *src, uint32_t interest,
                               uint32_t watch, asyncio__io_reg **out)
{
    if (interest == 0 || (interest & ~(uint32_t)ASYNCIO_INTEREST_MASK) != 0 ||
        (watch & ~(uint32_t)(ASYNCIO_READABLE | ASYNCIO_WRITABLE)) != 0 ||
        (watch == 0 && (interest & ASYNCIO_PRIORITY) != 0))
        return ASYNCIO_EINVAL;
    uint32_t poll_interest = ASYNCIO_READABLE | ASYNCIO_WRITABLE | (interest & ASYNCIO_PRIORITY);
    asyncio__slab_entry *e = NULL;
    asyncio__mutex_lock(&io->lock);
    int rc = asyncio__slab_alloc(&io->slab, &e);
    if (rc == 0)
        io->live++;
    asyncio__mutex_unlock(&io->lock);
    if (rc < 0)
        return rc;

    asyncio__io_reg *reg = ASYNCIO_CONTAINER_OF(e, asyncio__io_reg, entry);
    /* Nobody can reach the entry yet (its generation is even): plain initialisation. */
    atomic_store_explicit(&reg->readiness, 0, memory_order_relaxed);
    reg->interest = poll_interest;
    reg->comp = NULL;
    atomic_store_explicit(&reg->polled, watch != 0, memory_order_relaxed);
    asyncio__slab_publish(e); /* before the poller can report the token */
    if (watch == 0) {         /* the poller comes later (asyncio__io_watch), if ever */
        *out = reg;
        return 0;
    }
    rc = asyncio_poller_register(
        io->poller, src, asyncio__slab_token(e),
        (poll_interest & ~(uint32_t)(ASYNCIO_READABLE | ASYNCIO_WRITABLE)) | watch, ASYNCIO_EDGE);
    if (rc < 0) {
        /* No event can carry a token that was never registered: recycle at once. */
        asyncio__slab_retire(e);
        asyncio__mutex_lock(&io->lock);
        io->live--;
        asyncio__slab_release(&io->slab, e);
        asyncio__mutex_unlock(&io->lock);
        return rc;
    }
    *out = reg;
    return 0;
}

bool asyncio__io_polled(const asyncio__io_reg *reg)
{
    return atomic_load_explicit(&reg->polled, memory_order_acquire) != 0;
}

int asyncio__io_watch(asyncio__io_driver *io, asyncio__io_reg *reg, asyncio_source *src,
                      uint32_t watch, bool once)
{
    if (watch == 0 || (watch & ~(uint32_t)(ASYNCIO_READABLE | ASYNCIO_WRITABLE)) != 0)
        return ASYNCIO_EINVAL;
    uint32_t bits = (reg->interest & ~(uint32_t)(ASYNCIO_READABLE | ASYNCIO_WRITABLE)) | watch;
    uintptr_t token = asyncio__slab_token(&reg->entry);
    int rc = 0;
    /* The driver's lock orders a reader's and a writer's first call (one registers). */
    asyncio__mutex_lock(&io->lock);
    bool polled = atomic_load_explicit(&reg->polled, memory_order_relaxed) != 0;
    if (!polled) {
        rc = asyncio_poller_register(io->poller, src, token, bits, ASYNCIO_EDGE);
        if (rc == 0)
            atomic_store_explicit(&reg->polled, 1, memory_order_release);
    } else if (!once) {
        rc = asyncio_poller_reregister(io->poller, src, token, bits, ASYNCIO_EDGE);
    }
    asyncio__mutex_unlock(&io->lock);
    return rc;
}

static int deregister_rest(asyncio__io_driver *io, asyncio__io_reg *reg, int rc);

int asyncio__io_deregister(asyncio__io_driver *io, asyncio__io_reg *reg, asyncio_source *src)
{
    /* 1. Waits that start from now on report nothing for the source. */
    int rc = asyncio__io_polled(reg) ? asyncio_poller_deregister(io->poller, src) : 0;
    return deregister_rest(io, reg, rc);
}

int asyncio__io_deregister_close(asyncio__io_driver *io, asyncio__io_reg *reg, int fd,
                                 bool *closed)
{
    int rc = asyncio__poller_deregister_close_fd(io->poller, fd, closed);
    if (rc == ASYNCIO_ENOENT && !asyncio__io_polled(reg))
        rc = 0; /* never registered with the poller: only the close was asked */
    return deregister_rest(io, reg, rc);
}

/* Steps 2-5 of a deregister, after the poller's (whose result is rc). */
static int deregister_rest(asyncio__io_driver *io, asyncio__io_reg *reg, int rc)
{
    /*
     * 2. SHUTDOWN. acq_rel: a dispatch that read the word before this
     * update and CASes after it fails and re-reads SHUTDOWN.
     */
    atomic_fetch_or_explicit(&reg->readiness, ASYNCIO__IO_SHUTDOWN, memory_order_acq_rel);
    /* 3. Stale tokens stop resolving. */
    asyncio__slab_retire(&reg->entry);
    /* 4. Take the wakers; drop them outside the lock. */
    asyncio_waker taken[ASYNCIO__IO_DIRS];
    asyncio__spin_lock(&reg->lock);
    for (int d = 0; d < ASYNCIO__IO_DIRS; d++) {
        taken[d] = reg->wakers[d];
        reg->wakers[d] = ASYNCIO_WAKER_EMPTY;
    }
    asyncio__spin_unlock(&reg->lock);
    for (int d = 0; d < ASYNCIO__IO_DIRS; d++)
        asyncio_waker_drop(&taken[d]);
    /* 5. Hand the slot to the safe point; from here on `reg` is the driver's. */
    asyncio__mutex_lock(&io->lock);
    asyncio__list_push_back(&io->pending, &reg->entry.node);
    io->live--;
    asyncio__mutex_unlock(&io->lock);
    return rc;
}

uintptr_t asyncio__io_token(const asyncio__io_reg *reg)
{
    return asyncio__slab_token(&reg->entry);
}

int asyncio__io_poll_ready(asyncio__io_reg *reg, asyncio_context *cx, uint32_t direction,
                           asyncio_ready_guard *guard)
{
    int d = dir_index(direction);
    if (reg == NULL || cx == NULL || cx->waker == NULL || guard == NULL || d < 0 ||
        (reg->interest & direction) == 0)
        return ASYNCIO_EINVAL;
    uint64_t w = atomic_load_explicit(&reg->readiness, memory_order_acquire);
    if (!field_ready(w, d) && !store_waker(reg, d, cx->waker))
        return ASYNCIO_PENDING;
    if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
        return ASYNCIO_PENDING; /* out of budget: the task was rescheduled */
    /* Ready stays ready (only this direction's single owner clears it), so this loops once. */
    while (!word_observe(reg, d, direction, guard)) {
        if (!store_waker(reg, d, cx->waker))
            return ASYNCIO_PENDING;
    }
    return 0;
}

bool asyncio__io_hung_up(const asyncio__io_reg *reg, uint32_t direction)
{
    int d = dir_index(direction);
    uint64_t w = atomic_load_explicit(&reg->readiness, memory_order_acquire);
    return d >= 0 && (field_get(w, d) & (ASYNCIO__IO_CLOSED | ASYNCIO__IO_ERROR)) != 0;
}

bool asyncio__io_clear_ready(asyncio__io_reg *reg, const asyncio_ready_guard *guard)
{
    int d = dir_index(guard->direction);
    if (d < 0)
        return false;
    return word_clear(reg, d, guard->tick);
}

void asyncio__io_dispatch(asyncio__io_driver *io, const asyncio_event *ev)
{
    asyncio__slab_entry *e = asyncio__slab_get(&io->slab, ev->token);
    if (e == NULL)
        return; /* stale (deregistered, maybe reused slot) or foreign token */
    asyncio__io_reg *reg = ASYNCIO_CONTAINER_OF(e, asyncio__io_reg, entry);
    unsigned touched = set_readiness(reg, ev->readiness);
    if (touched != 0)
        wake_directions(reg, touched);
}

void asyncio__io_maintain(asyncio__io_driver *io)
{
    asyncio__mutex_lock(&io->lock);
    release_pending_locked(io);
    asyncio__mutex_unlock(&io->lock);
}
