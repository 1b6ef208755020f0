/*
 * JoinSet: a group of tasks collected in completion order
 * (include/asyncio/join_set.h).
 *
 * Each task in the set has an entry {link, JoinHandle, set} and is spawned
 * with a completion callback (task.h) whose argument is the entry. The
 * callback runs on the thread that finishes the task, before its
 * JoinHandle sees the result.
 *
 *   running    entries whose task has not finished
 *   done       entries whose callback ran, oldest first: join_next takes
 *              the first and collects it through its JoinHandle (which may
 *              still say PENDING for the instant between the callback and
 *              the COMPLETE transition: its waker then wakes us)
 *
 * Lifetime: `refs` = 1 for the owner + 1 per entry in `running`. The
 * callback moves its entry from running to done and wakes the owner; after
 * asyncio_join_set_free (closed) it frees the entry itself instead, and
 * drops the set's reference. So an entry and the set outlive every
 * callback that can reach them.
 *
 * Lock: `lock` guards both lists, `closed`, `waker` and the entries'
 * links. Wakes happen after unlocking. Aborts are issued under the lock:
 * an abort only queues the task, it never runs the callback inline.
 */
#include "asyncio/join_set.h"

#include <stdatomic.h>
#include <stdbool.h>

#include "internal.h"
#include "platform/thread.h"
#include "util/alloc.h"
#include "util/list.h"

typedef struct js_entry {
    asyncio__list link;
    asyncio_join_handle *jh;
    asyncio_join_set *js;
    asyncio_task_complete_fn user_fn; /* the caller's own on_complete, called first */
    void *user_arg;
} js_entry;

struct asyncio_join_set {
    asyncio__mutex lock;
    _Atomic size_t refs;
    asyncio__list running, done;
    size_t len; /* entries in both lists (owner's view: running + done) */
    asyncio_waker waker;
    bool closed;
    bool aborted; /* poll_shutdown issued its abort_all */
};

int asyncio_join_set_new(asyncio_join_set **out)
{
    if (out == NULL)
        return ASYNCIO_EINVAL;
    asyncio_join_set *js = asyncio__malloc(sizeof *js);
    if (js == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__mutex_init(&js->lock);
    if (rc < 0) {
        asyncio__free(js);
        return rc;
    }
    atomic_init(&js->refs, 1);
    asyncio__list_init(&js->running);
    asyncio__list_init(&js->done);
    js->len = 0;
    js->waker = ASYNCIO_WAKER_EMPTY;
    js->closed = false;
    js->aborted = false;
    *out = js;
    return 0;
}

static void js_unref(asyncio_join_set *js)
{
    /* acq_rel: the last holder sees every other holder's accesses before the free. */
    if (atomic_fetch_sub_explicit(&js->refs, 1, memory_order_acq_rel) != 1)
        return;
    asyncio_waker_drop(&js->waker);
    asyncio__mutex_destroy(&js->lock);
    asyncio__free(js);
}

/* The completion callback of every task in a set (any runtime thread). */
static void on_task_complete(void *arg, uint64_t id, int result, void *output)
{
    js_entry *e = arg;
    asyncio_join_set *js = e->js;
    if (e->user_fn != NULL)
        e->user_fn(e->user_arg, id, result, output);
    asyncio_waker w = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_lock(&js->lock);
    asyncio__list_remove(&e->link);
    bool closed = js->closed;
    if (!closed) {
        asyncio__list_push_back(&js->done, &e->link);
        w = js->waker;
        js->waker = ASYNCIO_WAKER_EMPTY;
    }
    asyncio__mutex_unlock(&js->lock);
    if (closed)
        asyncio__free(e); /* the set let go of it: its handle was dropped by free */
    asyncio_waker_wake(&w);
    js_unref(js); /* the running entry's reference */
}

int asyncio_join_set_spawn(asyncio_join_set *js, asyncio_runtime *rt, const asyncio_task_vtable *vt,
                           const void *init_state, const asyncio_spawn_options *opts,
                           asyncio_abort_handle **abort_out)
{
    if (js == NULL)
        return ASYNCIO_EINVAL;
    js_entry *e = asyncio__malloc(sizeof *e);
    if (e == NULL)
        return ASYNCIO_ENOMEM;
    asyncio_spawn_options o = {0};
    if (opts != NULL)
        o = *opts;
    e->user_fn = o.on_complete;
    e->user_arg = o.on_complete_arg;
    e->js = js;
    e->jh = NULL;
    asyncio__list_node_init(&e->link);
    o.on_complete = on_task_complete;
    o.on_complete_arg = e;
    /* Linked (and counted) before the spawn: the task may finish before spawn returns. */
    atomic_fetch_add_explicit(&js->refs, 1, memory_order_relaxed);
    asyncio__mutex_lock(&js->lock);
    asyncio__list_push_back(&js->running, &e->link);
    js->len++;
    asyncio__mutex_unlock(&js->lock);
    asyncio_join_handle *jh;
    int rc = asyncio_spawn_with(rt, vt, init_state, &o, &jh);
    asyncio__mutex_lock(&js->lock);
    if (rc == 0)
        e->jh = jh; /* join_next reads it under the lock: it may already be on `done` */
    else {
        asyncio__list_remove(&e->link); /* no callback will run */
        js->len--;
    }
    asyncio__mutex_unlock(&js->lock);
    if (rc < 0) {
        asyncio__free(e);
        js_unref(js);
        return rc;
    }
    if (abort_out != NULL && (rc = asyncio_join_handle_abort_handle(jh, abort_out)) < 0)
        return rc; /* cannot happen: jh is valid */
    return 0;
}

int asyncio_join_set_poll_join_next(asyncio_join_set *js, asyncio_context *cx, int *result,
                                    void *output, uint64_t *id)
{
    if (js == NULL || cx == NULL || cx->waker == NULL || result == NULL)
        return ASYNCIO_EINVAL;
    asyncio__mutex_lock(&js->lock);
    asyncio__list *first = asyncio__list_first(&js->done);
    if (first == NULL) {
        bool empty = js->len == 0;
        if (!empty)
            asyncio_waker_store(&js->waker, cx->waker);
        asyncio__mutex_unlock(&js->lock);
        return empty ? ASYNCIO_ENOENT : ASYNCIO_PENDING;
    }
    js_entry *e = ASYNCIO_CONTAINER_OF(first, js_entry, link);
    asyncio__mutex_unlock(&js->lock);
    /* The callback ran; the handle completes at once (or wakes cx right after). */
    int rc = asyncio_join_handle_poll(e->jh, cx, output);
    if (rc == ASYNCIO_PENDING)
        return rc;
    *result = rc;
    if (id != NULL)
        *id = asyncio_join_handle_id(e->jh);
    asyncio__mutex_lock(&js->lock);
    asyncio__list_remove(&e->link);
    js->len--;
    asyncio__mutex_unlock(&js->lock);
    asyncio_join_handle_drop(e->jh); /* drops an output that was not taken */
    asyncio__free(e);
    return 0;
}

size_t asyncio_join_set_len(const asyncio_join_set *js)
{
    return js != NULL ? js->len : 0; /* written by the owner only */
}

void asyncio_join_set_abort_all(asyncio_join_set *js)
{
    if (js == NULL)
        return;
    asyncio__mutex_lock(&js->lock);
    for (asyncio__list *n = js->running.next; n != &js->running; n = n->next) {
        js_entry *e = ASYNCIO_CONTAINER_OF(n, js_entry, link);
        (void)asyncio_join_handle_abort(e->jh); /* only queues the task */
    }
    asyncio__mutex_unlock(&js->lock);
}

int asyncio_join_set_poll_drain(asyncio_join_set *js, asyncio_context *cx)
{
    for (;;) {
        int result;
        int rc = asyncio_join_set_poll_join_next(js, cx, &result, NULL, NULL);
        if (rc == ASYNCIO_ENOENT)
            return 0;
        if (rc != 0)
            return rc;
    }
}

static int drain_future_poll(void *state, asyncio_context *cx, void *out)
{
    (void)out;
    return asyncio_join_set_poll_drain(state, cx);
}

static const asyncio_future_vtable g_drain_vt = {drain_future_poll, NULL};

asyncio_future asyncio_join_set_drain_future(asyncio_join_set *js)
{
    return asyncio_future_make(&g_drain_vt, js, NULL);
}

int asyncio_join_set_poll_shutdown(asyncio_join_set *js, asyncio_context *cx)
{
    if (js == NULL || cx == NULL)
        return ASYNCIO_EINVAL;
    if (!js->aborted) {
        js->aborted = true;
        asyncio_join_set_abort_all(js);
    }
    return asyncio_join_set_poll_drain(js, cx);
}

void asyncio_join_set_free(asyncio_join_set *js)
{
    if (js == NULL)
        return;
    asyncio__list done;
    asyncio__list_init(&done);
    asyncio__mutex_lock(&js->lock);
    js->closed = true; /* from now on callbacks free their own entries */
    for (asyncio__list *n = js->running.next; n != &js->running; n = n->next) {
        js_entry *e = ASYNCIO_CONTAINER_OF(n, js_entry, link);
        (void)asyncio_join_handle_abort(e->jh);
        asyncio_join_handle_drop(e->jh); /* detached; its callback still runs */
        e->jh = NULL;
    }
    /* Finished entries are ours alone: move them out and free them unlocked. */
    while (!asyncio__list_empty(&js->done)) {
        asyncio__list *n = js->done.next;
        asyncio__list_remove(n);
        asyncio__list_push_back(&done, n);
    }
    js->len = 0;
    asyncio__mutex_unlock(&js->lock);
    while (!asyncio__list_empty(&done)) {
        asyncio__list *n = done.next;
        asyncio__list_remove(n);
        js_entry *e = ASYNCIO_CONTAINER_OF(n, js_entry, link);
        asyncio_join_handle_drop(e->jh);
        asyncio__free(e);
    }
    js_unref(js);
}
