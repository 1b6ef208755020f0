/*
 * Cancellation tokens (include/asyncio/cancel.h).
 *
 * A tree of tokens shares one lock, the root's (`lock` points at it; every
 * token keeps its parent alive, so the root outlives all its descendants).
 * Under the lock: the children / sibling links, every token's waiters list
 * and the waiters' wakers. `cancelled` is also read without the lock
 * (is_cancelled, the poll fast path): it is set with release under the lock
 * before any waiter is taken, and read with acquire.
 *
 * Cancel, in steps:
 *   1. lock; walk the subtree (depth first, no recursion: children, then
 *      siblings, then climb back); set `cancelled` on every token not yet
 *      cancelled and move its waiters to a local list;
 *   2. take up to 32 waiters off the local list (their wakers moved out,
 *      the nodes unlinked), unlock, wake them, lock again; until empty.
 * A waiter dropped meanwhile unlinks itself from the local list under the
 * lock (its node is all it needs), so it is never woken after its drop.
 * A future polled after step 1 sees `cancelled` and completes at once.
 */
#include "asyncio/cancel.h"

#include <stdatomic.h>

#include "internal.h"
#include "platform/thread.h"
#include "util/alloc.h"
#include "util/list.h"

struct asyncio_cancel_token {
    _Atomic size_t refs;
    _Atomic bool cancelled;
    asyncio_cancel_token *parent; /* holds a reference; NULL for a root */
    asyncio__mutex *lock;         /* the root's own_lock */
    asyncio__mutex own_lock;      /* initialised for roots only */
    asyncio__list children;       /* head */
    asyncio__list sibling;        /* node in parent->children */
    asyncio__list waiters;        /* head: asyncio_cancelled.link */
};

#define WAKE_BATCH 32

static asyncio_cancel_token *token_alloc(void)
{
    asyncio_cancel_token *t = asyncio__malloc(sizeof *t);
    if (t == NULL)
        return NULL;
    atomic_init(&t->refs, 1);
    atomic_init(&t->cancelled, false);
    t->parent = NULL;
    asyncio__list_init(&t->children);
    asyncio__list_node_init(&t->sibling);
    asyncio__list_init(&t->waiters);
    return t;
}

int asyncio_cancel_token_new(asyncio_cancel_token **out)
{
    if (out == NULL)
        return ASYNCIO_EINVAL;
    asyncio_cancel_token *t = token_alloc();
    if (t == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__mutex_init(&t->own_lock);
    if (rc < 0) {
        asyncio__free(t);
        return rc;
    }
    t->lock = &t->own_lock;
    *out = t;
    return 0;
}

int asyncio_cancel_token_child(asyncio_cancel_token *parent, asyncio_cancel_token **out)
{
    if (parent == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    asyncio_cancel_token *t = token_alloc();
    if (t == NULL)
        return ASYNCIO_ENOMEM;
    t->parent = asyncio_cancel_token_clone(parent);
    t->lock = parent->lock;
    asyncio__mutex_lock(t->lock);
    if (atomic_load_explicit(&parent->cancelled, memory_order_relaxed))
        atomic_store_explicit(&t->cancelled, true, memory_order_relaxed); /* born cancelled */
    asyncio__list_push_back(&parent->children, &t->sibling);
    asyncio__mutex_unlock(t->lock);
    *out = t;
    return 0;
}

asyncio_cancel_token *asyncio_cancel_token_clone(asyncio_cancel_token *t)
{
    if (t != NULL)
        atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed); /* from a live reference */
    return t;
}

bool asyncio_cancel_token_is_cancelled(const asyncio_cancel_token *t)
{
    /* Acquire: pairs with the release store in cancel (what was done before it is seen). */
    return t != NULL && atomic_load_explicit(&t->cancelled, memory_order_acquire);
}

void asyncio_cancel_token_drop(asyncio_cancel_token *t)
{
    while (t != NULL) {
        /* acq_rel: the last holder sees every other holder's accesses before the free. */
        if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
            return;
        /* No children (each holds a reference) and no waiters (each holds one too). */
        asyncio_cancel_token *parent = t->parent;
        if (parent != NULL) {
            asyncio__mutex_lock(t->lock);
            asyncio__list_remove(&t->sibling);
            asyncio__mutex_unlock(t->lock);
        } else {
            asyncio__mutex_destroy(&t->own_lock);
        }
        asyncio__free(t);
        t = parent; /* our reference to it goes too */
    }
}

/* The next token of the subtree of `root` after `t`, depth first; NULL at the end. */
static asyncio_cancel_token *next_in_subtree(asyncio_cancel_token *t, asyncio_cancel_token *root)
{
    if (!asyncio__list_empty(&t->children))
        return ASYNCIO_CONTAINER_OF(t->children.next, asyncio_cancel_token, sibling);
    while (t != root) {
        asyncio_cancel_token *p = t->parent;
        if (t->sibling.next != &p->children)
            return ASYNCIO_CONTAINER_OF(t->sibling.next, asyncio_cancel_token, sibling);
        t = p;
    }
    return NULL;
}

/* Moves every waiter of `t` to `to`. Lock held. */
static void take_waiters(asyncio_cancel_token *t, asyncio__list *to)
{
    while (!asyncio__list_empty(&t->waiters)) {
        asyncio__list *n = t->waiters.next;
        asyncio__list_remove(n);
        asyncio__list_push_back(to, n);
    }
}

void asyncio_cancel_token_cancel(asyncio_cancel_token *t)
{
    if (t == NULL || asyncio_cancel_token_is_cancelled(t))
        return;
    asyncio__list to_wake;
    asyncio__list_init(&to_wake);
    asyncio__mutex_lock(t->lock);
    for (asyncio_cancel_token *n = t; n != NULL; n = next_in_subtree(n, t)) {
        if (atomic_load_explicit(&n->cancelled, memory_order_relaxed))
            continue; /* its waiters were woken by an earlier cancel */
        /* Release: pairs with is_cancelled's acquire. */
        atomic_store_explicit(&n->cancelled, true, memory_order_release);
        take_waiters(n, &to_wake);
    }
    while (!asyncio__list_empty(&to_wake)) {
        asyncio_waker batch[WAKE_BATCH];
        size_t k = 0;
        while (k < WAKE_BATCH && !asyncio__list_empty(&to_wake)) {
            asyncio__list *n = to_wake.next;
            asyncio__list_remove(n);
            asyncio_cancelled *f = ASYNCIO_CONTAINER_OF(n, asyncio_cancelled, link);
            batch[k++] = f->waker;
            f->waker = ASYNCIO_WAKER_EMPTY;
        }
        asyncio__mutex_unlock(t->lock);
        for (size_t i = 0; i < k; i++)
            asyncio_waker_wake(&batch[i]); /* outside the lock */
        asyncio__mutex_lock(t->lock);
    }
    asyncio__mutex_unlock(t->lock);
}

/* ---- the cancelled future ------------------------------------------------------ */

void asyncio_cancelled_init(asyncio_cancelled *f, asyncio_cancel_token *t)
{
    asyncio__list_node_init(&f->link);
    f->token = asyncio_cancel_token_clone(t);
    f->waker = ASYNCIO_WAKER_EMPTY;
}

int asyncio_cancelled_poll(asyncio_cancelled *f, asyncio_context *cx)
{
    if (f == NULL || cx == NULL || cx->waker == NULL || f->token == NULL)
        return ASYNCIO_EINVAL;
    asyncio_cancel_token *t = f->token;
    if (asyncio_cancel_token_is_cancelled(t))
        return 0;
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    int rc = ASYNCIO_PENDING;
    asyncio__mutex_lock(t->lock);
    if (atomic_load_explicit(&t->cancelled, memory_order_relaxed)) {
        rc = 0; /* cancelled meanwhile: its waiters were already taken */
    } else if (!asyncio_waker_will_wake(&f->waker, cx->waker)) {
        old = f->waker;
        f->waker = asyncio_waker_clone(cx->waker);
    }
    if (rc == ASYNCIO_PENDING && !asyncio__list_linked(&f->link))
        asyncio__list_push_back(&t->waiters, &f->link);
    asyncio__mutex_unlock(t->lock);
    asyncio_waker_drop(&old);
    return rc;
}

void asyncio_cancelled_drop(asyncio_cancelled *f)
{
    if (f == NULL || f->token == NULL)
        return;
    asyncio_cancel_token *t = f->token;
    asyncio__mutex_lock(t->lock);
    asyncio__list_remove(&f->link); /* from the token's waiters or a cancel's local list */
    asyncio_waker w = f->waker;
    f->waker = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_unlock(t->lock);
    asyncio_waker_drop(&w);
    f->token = NULL;
    asyncio_cancel_token_drop(t);
}

static int cancelled_future_poll(void *state, asyncio_context *cx, void *out)
{
    (void)out;
    return asyncio_cancelled_poll(state, cx);
}

static void cancelled_future_drop(void *state)
{
    asyncio_cancelled_drop(state);
}

static const asyncio_future_vtable g_cancelled_vt = {cancelled_future_poll, cancelled_future_drop};

asyncio_future asyncio_cancelled_future(asyncio_cancelled *f)
{
    return asyncio_future_make(&g_cancelled_vt, f, NULL);
}
