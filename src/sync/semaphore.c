/*
 * asyncio_semaphore: a counting semaphore with fair FIFO waiters, the
 * backpressure primitive (the async mutex and the bounded mpsc channel are
 * built on it). The model is Tokio's batch_semaphore: an atomic permit word
 * for the uncontended paths, a lock and an intrusive FIFO for waiting.
 *
 * State word (sem->state, bit table in sync_int.h): CLOSED, WAITERS and the
 * available permits. This file performs every transition.
 *
 * Fast paths (no lock, one CAS):
 *   - take (try_acquire, the first poll of an acquire): succeeds only if
 *     not CLOSED, WAITERS clear and enough permits; otherwise try_acquire
 *     fails and an acquire takes the slow path.
 *   - put (release): adds the permits while WAITERS is clear; once it is
 *     set, the release takes the lock and hands the permits to the waiters.
 * Because WAITERS and the list change together under the lock, and with
 * WAITERS set no lock-free operation can change the word (takes fail, puts
 * divert to the lock), the word is stable for a lock holder who sees
 * WAITERS set; otherwise lock holders update it with a CAS loop.
 *
 * Protocol of the slow paths (under sem->lock):
 *   - Permits are assigned to waiters in FIFO order, and partially: a
 *     release gives the head waiter as many permits as it still needs, and
 *     only when the head is fully granted does the next waiter get any. A
 *     large request at the head therefore blocks later small ones: it
 *     cannot be starved.
 *   - Invariant: WAITERS (list non-empty) => permits == 0 unless CLOSED.
 *     try_acquire and a first poll never overtake a queued waiter.
 *   - Queueing takes whatever is available as a partial grant and sets
 *     WAITERS in the same CAS.
 *   - A fully granted waiter is unlinked, gets result 0 and its waker is
 *     moved out to be woken after the lock is released; the permits are
 *     now its own. If it is dropped before a poll observed the grant,
 *     drop gives all of them back.
 *   - Cancel unlinks synchronously: dropping a queued acquire removes it
 *     and hands its partial grant on (to the next waiters, or the count).
 *   - Close sets CLOSED, fails every queued acquire with ASYNCIO_ECLOSED
 *     (their partial grants go back to the count) and every later one.
 *     Once CLOSED is set, released permits go to the count, never to a
 *     waiter that close is about to fail (close wakes in batches, dropping
 *     the lock in between).
 *
 * Acquire states (asyncio_semaphore_acquire.state):
 *   ACQ_IDLE     initialised, never polled: not linked, holds nothing.
 *   ACQ_WAITING  polled and not finished: linked while result is PENDING;
 *                unlinked with result 0 (granted, not yet observed) or
 *                ASYNCIO_ECLOSED once a releaser / closer settled it.
 *   ACQ_DONE     a poll returned the result (or it was dropped): holds no
 *                reference to the semaphore.
 *
 * Deferred release (the bounded channel's receiver frees one slot per
 * message): asyncio__semaphore_release_deferred adds the permit to
 * sem->deferred, a word on the releaser's own cache line, so the senders'
 * word stops bouncing between cores on every message. Permits there are
 * real free permits, so nobody may conclude "none left" without them:
 *   - A taker that finds too few permits (and no waiters) takes the lock
 *     and collects `deferred` into the count before it decides to queue
 *     (acquire) or to fail (try_acquire). Collecting happens only under
 *     the lock, so no permit is ever in a collector's hands outside it.
 *   - The collector first raises waiters_hint, then exchanges `deferred`
 *     to 0; the releaser first adds to `deferred`, then reads the hint
 *     (both pairs seq_cst, Dekker): either the collector gets the permit,
 *     or the releaser sees the hint and hands everything deferred over
 *     through the ordinary release, which serves queued waiters in FIFO
 *     order and wakes them. So a waiter is never left behind a deferred
 *     permit. The hint mirrors WAITERS otherwise (cleared under the lock
 *     when the list empties).
 *
 * Memory ordering: every change of the word is a read-modify-write, so
 * each one continues the release sequence of the ones before it. Puts are
 * release and takes are acquire: whoever takes a permit sees the writes of
 * whoever gave one back before it (the async mutex's critical section,
 * the channel's slot reads). Grants to waiters happen under the lock.
 *
 * Wakers are woken outside the lock, gathered in batches of
 * ASYNCIO__WAKE_BATCH; waking any number of waiters never allocates.
 */
#include "sync/sync_int.h"

#include "util/alloc.h"

enum acquire_state {
    ACQ_IDLE = 0,
    ACQ_WAITING = 1,
    ACQ_DONE = 2,
};

#define SEM_CLOSED  ASYNCIO__SEM_CLOSED
#define SEM_WAITERS ASYNCIO__SEM_WAITERS

static size_t permits_of(size_t s)
{
    return s >> ASYNCIO__SEM_SHIFT;
}

static size_t permits_word(size_t n)
{
    return n << ASYNCIO__SEM_SHIFT;
}

static asyncio_semaphore_acquire *acquire_of(asyncio__list *n)
{
    return ASYNCIO_CONTAINER_OF(n, asyncio_semaphore_acquire, link);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */

int asyncio__semaphore_init(asyncio_semaphore *sem, size_t permits)
{
    if (permits > ASYNCIO_SEMAPHORE_MAX_PERMITS)
        return ASYNCIO_EINVAL;
    int rc = asyncio__mutex_init(&sem->lock);
    if (rc != 0)
        return rc;
    atomic_init(&sem->state, permits_word(permits));
    asyncio__list_init(&sem->waiters);
    sem->deferred_ok = false;
    atomic_init(&sem->deferred, 0);
    atomic_init(&sem->waiters_hint, false);
    return 0;
}

int asyncio__semaphore_init_deferred(asyncio_semaphore *sem, size_t permits)
{
    int rc = asyncio__semaphore_init(sem, permits);
    if (rc == 0)
        sem->deferred_ok = true;
    return rc;
}

void asyncio__semaphore_destroy(asyncio_semaphore *sem)
{
    ASYNCIO_CHECK(asyncio__list_empty(&sem->waiters));
    asyncio__mutex_destroy(&sem->lock);
}

bool asyncio__semaphore_has_waiters(asyncio_semaphore *sem)
{
    asyncio__mutex_lock(&sem->lock);
    bool busy = !asyncio__list_empty(&sem->waiters);
    asyncio__mutex_unlock(&sem->lock);
    return busy;
}

int asyncio_semaphore_new(asyncio_semaphore **out, size_t permits)
{
    if (out == NULL || permits > ASYNCIO_SEMAPHORE_MAX_PERMITS)
        return ASYNCIO_EINVAL;
    asyncio_semaphore *sem = asyncio__malloc(sizeof *sem);
    if (sem == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__semaphore_init(sem, permits);
    if (rc != 0) {
        asyncio__free(sem);
        return rc;
    }
    *out = sem;
    return 0;
}

int asyncio_semaphore_free(asyncio_semaphore *sem)
{
    if (sem == NULL)
        return 0;
    if (asyncio__semaphore_has_waiters(sem))
        return ASYNCIO_EBUSY;
    asyncio__semaphore_destroy(sem);
    asyncio__free(sem);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The state word                                                            */

/*
 * Fast take of n permits, no lock: 0, ASYNCIO_ECLOSED, or ASYNCIO_EAGAIN
 * (not enough permits, or waiters are queued: never overtake them).
 */
static int take_fast(asyncio_semaphore *sem, size_t n)
{
    /* relaxed: only a first guess, the CAS below validates it */
    size_t s = atomic_load_explicit(&sem->state, memory_order_relaxed);
    for (;;) {
        if (s & SEM_CLOSED)
            return ASYNCIO_ECLOSED;
        if ((s & SEM_WAITERS) || permits_of(s) < n)
            return ASYNCIO_EAGAIN;
        /*
         * acquire: pairs with the release of every put earlier in the word's
         * modification order (put_fast, put_locked), so the writes of
         * whoever gave permits back are visible to the new holder.
         */
        if (atomic_compare_exchange_weak_explicit(&sem->state, &s, s - permits_word(n),
                                                  memory_order_acquire, memory_order_relaxed))
            return 0;
    }
}

/*
 * Fast put of n permits (n <= cap), no lock: 0, ASYNCIO_EOVERFLOW (the
 * count would exceed cap; nothing added), or ASYNCIO_PENDING when waiters
 * are queued: the caller takes the lock and hands the permits to them.
 */
static int put_fast(asyncio_semaphore *sem, size_t n, size_t cap)
{
    /* relaxed: only a first guess, the CAS below validates it */
    size_t s = atomic_load_explicit(&sem->state, memory_order_relaxed);
    while (!(s & SEM_WAITERS)) {
        if (permits_of(s) > cap - n)
            return ASYNCIO_EOVERFLOW;
        /* release: pairs with the acquire of take_fast / queue_locked that take these permits */
        if (atomic_compare_exchange_weak_explicit(&sem->state, &s, s + permits_word(n),
                                                  memory_order_release, memory_order_relaxed))
            return 0;
    }
    return ASYNCIO_PENDING;
}

/*
 * Under the lock: adds n permits to the count and makes WAITERS match the
 * list (set iff non-empty). A CAS loop, because while WAITERS is clear the
 * fast paths change the word concurrently.
 */
static void put_locked(asyncio_semaphore *sem, size_t n)
{
    size_t waiters = asyncio__list_empty(&sem->waiters) ? 0 : SEM_WAITERS;
    /* relaxed: only a first guess, the CAS below validates it */
    size_t s = atomic_load_explicit(&sem->state, memory_order_relaxed);
    for (;;) {
        size_t ns = ((s & ~SEM_WAITERS) | waiters) + permits_word(n);
        if (ns == s)
            return;
        /* release: pairs with the acquire of take_fast / queue_locked that take these permits */
        if (atomic_compare_exchange_weak_explicit(&sem->state, &s, ns, memory_order_release,
                                                  memory_order_relaxed))
            return;
    }
}

/*
 * Under the lock, deferred semaphores: clears waiters_hint once the list is
 * empty. relaxed: a releaser that still sees it set merely hands its
 * permits over early; setting it is collect_deferred_locked's job.
 */
static void sync_hint_locked(asyncio_semaphore *sem)
{
    if (sem->deferred_ok && asyncio__list_empty(&sem->waiters) &&
        atomic_load_explicit(&sem->waiters_hint, memory_order_relaxed))
        atomic_store_explicit(&sem->waiters_hint, false, memory_order_relaxed);
}

/*
 * Under the lock, deferred semaphores with no waiter queued: moves the
 * deferred permits into the count, leaving waiters_hint raised (the caller
 * queues, or calls sync_hint_locked).
 */
static void collect_deferred_locked(asyncio_semaphore *sem)
{
    /*
     * seq_cst, both: the Dekker pair with release_deferred (its fetch_add
     * of `deferred`, then its load of the hint). Either this exchange sees
     * its permit, or its load sees the hint and it hands the permit over
     * through the ordinary release (which then finds us queued).
     */
    atomic_store_explicit(&sem->waiters_hint, true, memory_order_seq_cst);
    size_t n = atomic_exchange_explicit(&sem->deferred, 0, memory_order_seq_cst);
    if (n > 0)
        put_locked(sem, n);
}

void asyncio__semaphore_release_deferred(asyncio_semaphore *sem, size_t cap)
{
    ASYNCIO_ASSERT(sem->deferred_ok);
    /*
     * seq_cst: the Dekker pair with collect_deferred_locked (see there);
     * its release half also hands our writes to the collector, whose
     * seq_cst exchange acquires them before it puts the permits.
     */
    size_t before = atomic_fetch_add_explicit(&sem->deferred, 1, memory_order_seq_cst);
    ASYNCIO_CHECK(before < cap); /* more permits than the total: accounting is broken */
    if (!atomic_load_explicit(&sem->waiters_hint, memory_order_seq_cst))
        return; /* nobody waits: a taker collects it when it needs it */
    /* relaxed: only this thread adds to `deferred`; the release below publishes */
    size_t n = atomic_exchange_explicit(&sem->deferred, 0, memory_order_relaxed);
    if (n > 0) {
        int rc = asyncio__semaphore_release_capped(sem, n, cap);
        ASYNCIO_CHECK(rc == 0); /* more permits than the total: accounting is broken */
    }
}

/* ------------------------------------------------------------------------ */
/* Assigning permits                                                         */

/*
 * Under the lock: gives n permits to the waiters, head first, moving the
 * wakers of the fully granted ones into `b`, then puts what is left into
 * the count. Returns the permits not yet placed because the batch is full
 * (the caller wakes it outside the lock and calls again), else 0. Once the
 * semaphore is closed nobody is granted: close fails the waiters.
 */
static size_t assign_locked(asyncio_semaphore *sem, size_t n, asyncio__wake_batch *b)
{
    /* relaxed: CLOSED is only set under the lock we hold */
    bool closed = atomic_load_explicit(&sem->state, memory_order_relaxed) & SEM_CLOSED;
    asyncio__list *node;
    while (!closed && n > 0 && (node = asyncio__list_first(&sem->waiters)) != NULL) {
        if (asyncio__wake_batch_full(b))
            return n; /* WAITERS stays set: the list is not empty */
        asyncio_semaphore_acquire *a = acquire_of(node);
        size_t take = a->needed < n ? a->needed : n;
        a->needed -= take;
        n -= take;
        if (a->needed > 0)
            break; /* the head is partially granted: later waiters wait behind it */
        asyncio__list_remove(node);
        a->result = 0;
        asyncio__wake_batch_push(b, &a->waker);
    }
    put_locked(sem, n);
    sync_hint_locked(sem);
    return 0;
}

/* Assigns n permits, releases the lock (held on entry) and wakes the granted waiters. */
static void assign_and_unlock(asyncio_semaphore *sem, size_t n)
{
    asyncio__wake_batch b;
    asyncio__wake_batch_init(&b);
    for (;;) {
        n = assign_locked(sem, n, &b);
        asyncio__mutex_unlock(&sem->lock);
        asyncio__wake_batch_wake(&b);
        if (n == 0)
            return;
        asyncio__mutex_lock(&sem->lock);
    }
}

/*
 * Release with a ceiling on the resulting count (the mutex and the bounded
 * channel know their total, so a double release is caught).
 */
int asyncio__semaphore_release_capped(asyncio_semaphore *sem, size_t n, size_t cap)
{
    if (n > cap)
        return ASYNCIO_EOVERFLOW;
    int rc = put_fast(sem, n, cap);
    if (rc != ASYNCIO_PENDING)
        return rc;
    asyncio__mutex_lock(&sem->lock); /* waiters are queued: hand the permits to them */
    /* relaxed: with WAITERS set the word only changes under this lock */
    if (permits_of(atomic_load_explicit(&sem->state, memory_order_relaxed)) > cap - n) {
        asyncio__mutex_unlock(&sem->lock);
        return ASYNCIO_EOVERFLOW;
    }
    assign_and_unlock(sem, n);
    return 0;
}

int asyncio_semaphore_release(asyncio_semaphore *sem, size_t n)
{
    if (sem == NULL)
        return ASYNCIO_EINVAL;
    if (n == 0)
        return 0;
    return asyncio__semaphore_release_capped(sem, n, ASYNCIO_SEMAPHORE_MAX_PERMITS);
}

int asyncio_semaphore_add_permits(asyncio_semaphore *sem, size_t n)
{
    return asyncio_semaphore_release(sem, n);
}

int asyncio_semaphore_try_acquire(asyncio_semaphore *sem, size_t n)
{
    if (sem == NULL || n > ASYNCIO_SEMAPHORE_MAX_PERMITS)
        return ASYNCIO_EINVAL;
    int rc = take_fast(sem, n);
    if (rc != ASYNCIO_EAGAIN || !sem->deferred_ok)
        return rc;
    /* Too few permits in the word: count the deferred ones before failing. */
    asyncio__mutex_lock(&sem->lock);
    /* relaxed: WAITERS only changes under the lock we hold */
    if (!(atomic_load_explicit(&sem->state, memory_order_relaxed) & SEM_WAITERS)) {
        collect_deferred_locked(sem);
        rc = take_fast(sem, n);
        sync_hint_locked(sem);
    }
    asyncio__mutex_unlock(&sem->lock);
    return rc;
}

size_t asyncio_semaphore_available_permits(asyncio_semaphore *sem)
{
    if (sem == NULL)
        return 0;
    /* relaxed, both: a snapshot; 0 while waiters are queued (the invariant) */
    size_t s = atomic_load_explicit(&sem->state, memory_order_relaxed);
    size_t p = permits_of(s);
    if (sem->deferred_ok && !(s & SEM_WAITERS))
        p += atomic_load_explicit(&sem->deferred, memory_order_relaxed);
    return p;
}

void asyncio_semaphore_close(asyncio_semaphore *sem)
{
    if (sem == NULL)
        return;
    asyncio__wake_batch b;
    asyncio__wake_batch_init(&b);
    asyncio__mutex_lock(&sem->lock);
    /*
     * relaxed: CLOSED publishes no data; fast paths that see it just fail,
     * and lock holders read it under this lock. From now on nobody is
     * queued: the list only shrinks.
     */
    atomic_fetch_or_explicit(&sem->state, SEM_CLOSED, memory_order_relaxed);
    size_t returned = 0;
    asyncio__list *n;
    while ((n = asyncio__list_first(&sem->waiters)) != NULL) {
        if (asyncio__wake_batch_full(&b)) {
            put_locked(sem, returned);
            returned = 0;
            asyncio__mutex_unlock(&sem->lock);
            asyncio__wake_batch_wake(&b);
            asyncio__mutex_lock(&sem->lock);
            continue;
        }
        asyncio_semaphore_acquire *a = acquire_of(n);
        asyncio__list_remove(n);
        returned += a->wanted - a->needed; /* its partial grant goes back to the count */
        a->result = ASYNCIO_ECLOSED;
        asyncio__wake_batch_push(&b, &a->waker);
    }
    put_locked(sem, returned); /* the list is empty: clears WAITERS */
    sync_hint_locked(sem);
    asyncio__mutex_unlock(&sem->lock);
    asyncio__wake_batch_wake(&b);
}

bool asyncio_semaphore_is_closed(asyncio_semaphore *sem)
{
    if (sem == NULL)
        return false;
    /* relaxed: a snapshot of a flag that publishes no data */
    return atomic_load_explicit(&sem->state, memory_order_relaxed) & SEM_CLOSED;
}

/* ------------------------------------------------------------------------ */
/* The acquire future                                                        */

void asyncio_semaphore_acquire_init(asyncio_semaphore_acquire *a, asyncio_semaphore *sem, size_t n)
{
    asyncio__list_node_init(&a->link);
    a->sem = sem;
    a->wanted = n;
    a->needed = n;
    a->waker = ASYNCIO_WAKER_EMPTY;
    a->result = ASYNCIO_PENDING;
    a->state = ACQ_IDLE;
}

static int finish(asyncio_semaphore_acquire *a, int result)
{
    a->result = result;
    a->state = ACQ_DONE;
    return result;
}

/*
 * Under the lock, after the fast take failed: takes the permits if that is
 * possible now, else takes what is available as a partial grant and sets
 * WAITERS (one CAS). Returns 0 (granted), ASYNCIO_ECLOSED, or
 * ASYNCIO_PENDING with a->needed set: the caller links the future.
 */
static int queue_locked(asyncio_semaphore_acquire *a)
{
    asyncio_semaphore *sem = a->sem;
    /* relaxed: only a first guess, the CASes below validate it */
    size_t s = atomic_load_explicit(&sem->state, memory_order_relaxed);
    for (;;) {
        ASYNCIO_ASSERT(!(s & SEM_WAITERS) == asyncio__list_empty(&sem->waiters));
        if (s & SEM_CLOSED)
            return ASYNCIO_ECLOSED;
        if (s & SEM_WAITERS) { /* the word is stable: no permits, queue behind the others */
            a->needed = a->wanted;
            return ASYNCIO_PENDING;
        }
        size_t have = permits_of(s);
        size_t ns = have >= a->wanted ? s - permits_word(a->wanted) : SEM_WAITERS;
        /* acquire: pairs with the release of the puts whose permits this takes */
        if (atomic_compare_exchange_weak_explicit(&sem->state, &s, ns, memory_order_acquire,
                                                  memory_order_relaxed)) {
            if (have >= a->wanted)
                return 0;                 /* released since the fast take failed */
            a->needed = a->wanted - have; /* partial grant: keeps the invariant */
            return ASYNCIO_PENDING;
        }
    }
}

/* First poll: take the permits now, or queue (with whatever is available as a partial grant). */
static int acquire_first(asyncio_semaphore_acquire *a, asyncio_context *cx)
{
    asyncio_semaphore *sem = a->sem;
    int rc = take_fast(sem, a->wanted);
    if (rc == 0 || rc == ASYNCIO_ECLOSED)
        return finish(a, rc); /* the uncontended path: no lock */
    if (a->wanted == 0)       /* nothing to wait for, even behind queued waiters */
        return finish(a, 0);
    asyncio__mutex_lock(&sem->lock);
    /* relaxed: WAITERS only changes under the lock we hold */
    if (sem->deferred_ok &&
        !(atomic_load_explicit(&sem->state, memory_order_relaxed) & SEM_WAITERS))
        collect_deferred_locked(sem); /* permits freed but not yet counted are not "none" */
    rc = queue_locked(a);
    if (rc != ASYNCIO_PENDING) {
        sync_hint_locked(sem);
        asyncio__mutex_unlock(&sem->lock);
        return finish(a, rc);
    }
    asyncio__list_push_back(&sem->waiters, &a->link);
    a->waker = asyncio_waker_clone(cx->waker);
    a->state = ACQ_WAITING;
    asyncio__mutex_unlock(&sem->lock);
    return ASYNCIO_PENDING;
}

/* Later polls: observe a grant or a close, or refresh the stored waker. */
static int acquire_again(asyncio_semaphore_acquire *a, asyncio_context *cx)
{
    asyncio_semaphore *sem = a->sem;
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_lock(&sem->lock);
    int result = a->result;
    if (result == ASYNCIO_PENDING && !asyncio_waker_will_wake(&a->waker, cx->waker)) {
        old = a->waker; /* dropped outside the lock */
        a->waker = asyncio_waker_clone(cx->waker);
    }
    asyncio__mutex_unlock(&sem->lock);
    asyncio_waker_drop(&old);
    if (result == ASYNCIO_PENDING)
        return ASYNCIO_PENDING;
    return finish(a, result); /* the settler moved the waker out already */
}

int asyncio_semaphore_acquire_poll(asyncio_semaphore_acquire *a, asyncio_context *cx)
{
    if (a == NULL || cx == NULL || a->sem == NULL)
        return ASYNCIO_EINVAL;
    switch (a->state) {
    case ACQ_DONE: /* finished: the result again */
        return a->result;
    case ACQ_IDLE: /* never polled */
        if (a->wanted > ASYNCIO_SEMAPHORE_MAX_PERMITS)
            return finish(a, ASYNCIO_EINVAL);
        if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        return acquire_first(a, cx);
    case ACQ_WAITING: /* queued, or settled and not yet observed */
        if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        return acquire_again(a, cx);
    default:
        ASYNCIO_CHECK(!"asyncio_semaphore_acquire: corrupt state");
        return ASYNCIO_EINVAL;
    }
}

void asyncio_semaphore_acquire_drop(asyncio_semaphore_acquire *a)
{
    if (a == NULL || a->state != ACQ_WAITING) {
        if (a != NULL)
            a->state = ACQ_DONE;
        return;
    }
    asyncio_semaphore *sem = a->sem;
    asyncio__mutex_lock(&sem->lock);
    size_t give;
    if (asyncio__list_linked(&a->link)) { /* still queued: cancel */
        asyncio__list_remove(&a->link);
        give = a->wanted - a->needed;
    } else if (a->result == 0) { /* granted, never observed: all of it goes back */
        give = a->wanted;
    } else { /* closed: its partial grant already went back */
        give = 0;
    }
    asyncio_waker old = a->waker;
    a->waker = ASYNCIO_WAKER_EMPTY;
    a->result = ASYNCIO_ECANCELED;
    a->state = ACQ_DONE;
    /* at most what was taken from the count; also clears WAITERS if the list emptied */
    assign_and_unlock(sem, give);
    asyncio_waker_drop(&old);
}
