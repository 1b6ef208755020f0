/*
 * User-space readiness sources and wakers.
 *
 * A user source is the second implementation of the source vtable. Its
 * readiness is an atomic set from any thread; while it is registered, its
 * routing fields (token, interest, mode, armed, ready_node) are guarded by
 * the lock of the poller it is registered with.
 *
 * Queueing rule: a source is linked on poller->ready exactly when an event
 * may be due. set_readiness links it (if registered, armed and the new
 * readiness is reportable) and kicks a blocked owner. Delivery, by mode:
 *   EDGE     unlink after reporting; the next set_readiness links it again.
 *   LEVEL    stay linked while readiness is reportable; unlink when it is not.
 *   ONESHOT  unlink and disarm; only reregister arms it again.
 *
 * Race between set_readiness (store readiness, then load poller) and
 * register (store poller, then load readiness): both sides are seq_cst, so
 * at least one of them sees the other's store and links the source; linking
 * twice is prevented by the list's "linked" state under the lock.
 *
 * A waker is a user source registered edge-triggered for READABLE; waking
 * sets READABLE again, which is exactly "one event per wait, coalesced".
 */
#include "internal.h"
#include "poller/poller_int.h"
#include "util/alloc.h"

#define CLOSED_BITS ((uint32_t)(ASYNCIO_ERROR | ASYNCIO_READ_CLOSED | ASYNCIO_WRITE_CLOSED))
#define ALL_READY_BITS ((uint32_t)ASYNCIO_INTEREST_MASK | CLOSED_BITS)

struct asyncio_poller_waker {
    asyncio_user_source src;
    asyncio_poller *poller;
};

static uint32_t reportable(const asyncio_user_source *u, uint32_t readiness)
{
    return readiness & (u->interest | CLOSED_BITS);
}

/* Lock held. Links `u` if an event is due; returns true if the owner must be signalled. */
static bool maybe_queue_locked(asyncio_poller *p, asyncio_user_source *u)
{
    uint32_t r = atomic_load(&u->readiness);
    if (!u->armed || reportable(u, r) == 0) {
        if (u->mode == ASYNCIO_LEVEL && asyncio__list_linked(&u->ready_node))
            asyncio__list_remove(&u->ready_node);
        return false;
    }
    if (!asyncio__list_linked(&u->ready_node))
        asyncio__list_push_back(&p->ready, &u->ready_node);
    return asyncio__poller_kick_locked(p);
}

size_t asyncio__user_deliver_locked(asyncio_poller *p, asyncio_event *out, size_t cap)
{
    size_t n = 0;
    asyncio__list *node = p->ready.next;
    while (n < cap && node != &p->ready) {
        asyncio__list *next = node->next;
        asyncio_user_source *u = ASYNCIO_CONTAINER_OF(node, asyncio_user_source, ready_node);
        uint32_t ev = reportable(u, atomic_load(&u->readiness));
        if (ev != 0) {
            out[n].token = u->token;
            out[n].readiness = ev;
            n++;
        }
        switch (u->mode) {
        case ASYNCIO_LEVEL:
            /* Stays queued while ready; readiness cleared means nothing is due. */
            if (ev == 0)
                asyncio__list_remove(node);
            break;
        case ASYNCIO_ONESHOT:
            /* Reported once: disarmed until reregistered. */
            u->armed = false;
            asyncio__list_remove(node);
            break;
        case ASYNCIO_EDGE:
        default:
            /* Reported once per set_readiness; the next one queues it again. */
            asyncio__list_remove(node);
            break;
        }
        node = next;
    }
    /* Level sources reported before a full buffer move to the back, so all get their turn. */
    if (node != &p->ready && node != p->ready.next) {
        asyncio__list *head = &p->ready;
        asyncio__list *first = head->next, *last = node->prev, *tail = head->prev;
        head->next = node;
        node->prev = head;
        tail->next = first;
        first->prev = tail;
        last->next = head;
        head->prev = last;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Vtable                                                                    */

static void set_route(asyncio_user_source *u, uintptr_t token, uint32_t interest,
                      asyncio_trigger mode)
{
    u->token = token;
    u->interest = interest;
    u->mode = mode;
    u->armed = true;
}

static int user_register(asyncio_source *src, asyncio_poller *p, uintptr_t token,
                         uint32_t interest, asyncio_trigger mode)
{
    asyncio_user_source *u = ASYNCIO_CONTAINER_OF(src, asyncio_user_source, base);
    asyncio__mutex_lock(&p->lock);
    if (atomic_load(&u->poller) != NULL) {
        asyncio__mutex_unlock(&p->lock);
        return ASYNCIO_EEXIST;
    }
    set_route(u, token, interest, mode);
    p->user_sources++;
    atomic_store(&u->poller, p);
    bool signal = maybe_queue_locked(p, u);
    asyncio__mutex_unlock(&p->lock);
    if (signal)
        asyncio__poller_signal(p);
    return 0;
}

static int user_reregister(asyncio_source *src, asyncio_poller *p, uintptr_t token,
                           uint32_t interest, asyncio_trigger mode)
{
    asyncio_user_source *u = ASYNCIO_CONTAINER_OF(src, asyncio_user_source, base);
    asyncio__mutex_lock(&p->lock);
    if (atomic_load(&u->poller) != p) {
        asyncio__mutex_unlock(&p->lock);
        return ASYNCIO_ENOENT;
    }
    /* Re-evaluate from scratch under the new route. */
    if (asyncio__list_linked(&u->ready_node))
        asyncio__list_remove(&u->ready_node);
    set_route(u, token, interest, mode);
    bool signal = maybe_queue_locked(p, u);
    asyncio__mutex_unlock(&p->lock);
    if (signal)
        asyncio__poller_signal(p);
    return 0;
}

static int user_deregister(asyncio_source *src, asyncio_poller *p)
{
    asyncio_user_source *u = ASYNCIO_CONTAINER_OF(src, asyncio_user_source, base);
    asyncio__mutex_lock(&p->lock);
    if (atomic_load(&u->poller) != p) {
        asyncio__mutex_unlock(&p->lock);
        return ASYNCIO_ENOENT;
    }
    if (asyncio__list_linked(&u->ready_node))
        asyncio__list_remove(&u->ready_node);
    atomic_store(&u->poller, NULL);
    ASYNCIO_CHECK(p->user_sources > 0);
    p->user_sources--;
    asyncio__mutex_unlock(&p->lock);
    return 0;
}

static const asyncio_source_vtable g_user_vtable = {
    user_register,
    user_reregister,
    user_deregister,
    NULL, /* edges are exact: nothing to re-arm */
};

static void user_source_init(asyncio_user_source *u)
{
    u->base.vtable = &g_user_vtable;
    atomic_init(&u->readiness, 0);
    atomic_init(&u->poller, NULL);
    u->token = 0;
    u->interest = 0;
    u->mode = ASYNCIO_EDGE;
    u->armed = false;
    asyncio__list_node_init(&u->ready_node);
}

int asyncio_user_source_new(asyncio_user_source **out)
{
    if (out == NULL)
        return ASYNCIO_EINVAL;
    asyncio_user_source *u = asyncio__malloc(sizeof *u);
    if (u == NULL)
        return ASYNCIO_ENOMEM;
    user_source_init(u);
    *out = u;
    return 0;
}

int asyncio_user_source_free(asyncio_user_source *u)
{
    if (u == NULL)
        return 0;
    if (atomic_load(&u->poller) != NULL)
        return ASYNCIO_EBUSY;
    asyncio__free(u);
    return 0;
}

asyncio_source *asyncio_user_source_base(asyncio_user_source *u)
{
    return u != NULL ? &u->base : NULL;
}

int asyncio_user_source_set_readiness(asyncio_user_source *u, uint32_t readiness)
{
    if (u == NULL || (readiness & ~ALL_READY_BITS) != 0)
        return ASYNCIO_EINVAL;
    atomic_store(&u->readiness, readiness);
    asyncio_poller *p = atomic_load(&u->poller);
    if (p == NULL)
        return 0; /* register will see the readiness (see the file comment) */
    asyncio__mutex_lock(&p->lock);
    bool signal = false;
    if (atomic_load(&u->poller) == p)
        signal = maybe_queue_locked(p, u);
    asyncio__mutex_unlock(&p->lock);
    if (signal)
        asyncio__poller_signal(p);
    return 0;
}

uint32_t asyncio_user_source_readiness(const asyncio_user_source *u)
{
    return u != NULL ? atomic_load(&((asyncio_user_source *)u)->readiness) : 0;
}

/* ------------------------------------------------------------------------ */
/* Waker                                                                     */

int asyncio_poller_waker_new(asyncio_poller *p, uintptr_t token, asyncio_poller_waker **out)
{
    if (p == NULL || out == NULL || token == ASYNCIO_TOKEN_RESERVED)
        return ASYNCIO_EINVAL;
    asyncio_poller_waker *w = asyncio__malloc(sizeof *w);
    if (w == NULL)
        return ASYNCIO_ENOMEM;
    user_source_init(&w->src);
    w->poller = p;
    int rc = user_register(&w->src.base, p, token, ASYNCIO_READABLE, ASYNCIO_EDGE);
    if (rc < 0) {
        asyncio__free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int asyncio_poller_waker_wake(asyncio_poller_waker *w)
{
    if (w == NULL)
        return ASYNCIO_EINVAL;
    return asyncio_user_source_set_readiness(&w->src, ASYNCIO_READABLE);
}

int asyncio_poller_waker_free(asyncio_poller_waker *w)
{
    if (w == NULL)
        return 0;
    user_deregister(&w->src.base, w->poller);
    asyncio__free(w);
    return 0;
}
