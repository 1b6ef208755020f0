/*
 * JoinSet: a group of tasks collected in completion order
 * (include/asyncio/join_set.h).
 *
 * Each task in the set has an entry {link, set, task} at the start of its
 * own block (asyncio__set_entry, task/task.h: no allocation of its own; the
 * task pointer is the set's JoinHandle). When the task completes, the
 * harness calls asyncio__join_set_task_done on the thread that finishes
 * it, after the caller's own on_complete and before its JoinHandle sees
 * the result.
 *
 *   running    entries whose task has not finished
 *   done       entries whose callback ran, oldest first: join_next takes
 *              the first and collects it through its JoinHandle (which may
 *              still say PENDING for the instant between the callback and
 *              the COMPLETE transition: its waker then wakes us)
 *
 * Lifetime. `refs` = 1 for the owner + 1 per entry in `running`. The
 * completion step moves its entry from running to done and wakes the
 * owner; after asyncio_join_set_free (closed) it only unlinks the entry,
 * and drops the set's reference. An entry lives as long as its task block: while it is
 * on `running` the task has not completed, so the runtime's references
 * (owner, polling) keep the block through the callback; while it is on
 * `done` the set's JoinHandle keeps it, and join_next / free unlink it
 * before dropping that handle. So an entry and the set outlive every
 * callback that can reach them, and no entry is touched after its handle
 * is dropped.
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
#include "sched/runtime_int.h"
#include "task/task.h"
#include "util/alloc.h"
#include "util/list.h"

/* The entry's `task` is the set's JoinHandle (one reference) until free lets go of it. */
typedef asyncio__set_entry js_entry;

static asyncio_join_handle *entry_handle(const js_entry *e)
{
    return (asyncio_join_handle *)e->task;
}

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

/* A task of a set completed (any runtime thread; task.h). */
void asyncio__join_set_task_done(asyncio__set_entry *e)
{
    asyncio_join_set *js = e->set;
    asyncio_waker w = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_lock(&js->lock);
    asyncio__list_remove(&e->link);
    if (!js->closed) {
        asyncio__list_push_back(&js->done, &e->link);
        w = js->waker;
        js->waker = ASYNCIO_WAKER_EMPTY;
    } /* else: the set let go of it (free dropped its handle); the block goes with the task */
    asyncio__mutex_unlock(&js->lock);
    asyncio_waker_wake(&w);
    js_unref(js); /* the running entry's reference */
}

int asyncio_join_set_spawn(asyncio_join_set *js, asyncio_runtime *rt, const asyncio_task_vtable *vt,
                           const void *init_state, const asyncio_spawn_options *opts,
                           asyncio_abort_handle **abort_out)
{
    if (js == NULL || rt == NULL || vt == NULL || vt->poll == NULL)
        return ASYNCIO_EINVAL;
    asyncio__task *t = asyncio__task_new(&rt->sched, vt, init_state, opts, ASYNCIO__TASK_NEW_SET);
    if (t == NULL)
        return ASYNCIO_ENOMEM;
    js_entry *e = asyncio__task_set_entry(t); /* unpublished: plain writes */
    e->set = js;
    asyncio__list_node_init(&e->link);
    /* Linked (and counted) before publication: the task may finish before publish returns. */
    atomic_fetch_add_explicit(&js->refs, 1, memory_order_relaxed);
    asyncio__mutex_lock(&js->lock);
    asyncio__list_push_back(&js->running, &e->link);
    js->len++;
    asyncio__mutex_unlock(&js->lock);
    asyncio_join_handle *jh;
    int rc = asyncio__spawn_publish(rt, t, opts != NULL && opts->pinned, &jh);
    if (rc < 0) {
        asyncio__mutex_lock(&js->lock);
        asyncio__list_remove(&e->link); /* never published: no completion will run */
        js->len--;
        asyncio__mutex_unlock(&js->lock);
        asyncio__task_dealloc(t);
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
    int rc = asyncio_join_handle_poll(entry_handle(e), cx, output);
    if (rc == ASYNCIO_PENDING)
        return rc;
    *result = rc;
    if (id != NULL)
        *id = asyncio_join_handle_id(entry_handle(e));
    asyncio_join_handle *jh = entry_handle(e);
    asyncio__mutex_lock(&js->lock);
    asyncio__list_remove(&e->link);
    js->len--;
    asyncio__mutex_unlock(&js->lock);
    asyncio_join_handle_drop(jh); /* drops an output not taken, and maybe the entry's block */
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
        (void)asyncio_join_handle_abort(entry_handle(e)); /* only queues the task */
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
        (void)asyncio_join_handle_abort(entry_handle(e));
        /* Detached: the runtime's references keep the block until its completion unlinked e. */
        asyncio_join_handle_drop(entry_handle(e));
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
        asyncio_join_handle_drop(entry_handle(e)); /* the last use of e: it may free its block */
    }
    js_unref(js);
}
