/*
 * Task harness: allocation, the task waker, the poll / cancel / complete
 * paths, JoinHandles, yield_now and the cooperative budget.
 *
 * Every state change goes through src/task/state.c; this file carries out
 * the actions the transitions return. Reference accounting (see state.h):
 *   spawn       3 refs: owner list, JoinHandle, first queue entry (2 detached)
 *   waker       clone = +1, drop = -1, wake (by value) moves or drops its ref
 *   run         the popped entry's ref is the "polling" ref
 *   complete    drops the polling ref and, via release(), the owner's ref
 *   handle drop drops the handle's ref
 * The block is freed by whoever drops the last reference.
 */
#include "task/task.h"

#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "task/block_cache.h"

/* ------------------------------------------------------------------------ */
/* Allocation                                                                */

/* ------------------------------------------------------------------------ */
/* The scheduler's references (task.h: "The scheduler's lifetime")           */

void asyncio__sched_init(asyncio__scheduler *s, const asyncio__scheduler_ops *ops)
{
    s->ops = ops;
    s->track_clock = NULL;
    atomic_init(&s->refs, 1);
    atomic_init(&s->remote_inflight, 0);
}

void asyncio__sched_unref(asyncio__scheduler *s)
{
    /* acq_rel: the last one sees every other holder's accesses before the memory goes. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        s->ops->dealloc(s);
}

/*
 * Task ids: unique in the process, never 0 (0 means "no task"). A runtime
 * thread (one with a task cache) takes them from a range it reserved
 * (block_cache.h), so spawns on different workers do not share the
 * counter's cache line; other threads take one at a time.
 */
static _Atomic uint64_t g_next_id = 1;

static inline uint64_t next_id(asyncio__task_cache *c)
{
    /* Relaxed: only uniqueness matters. */
    if (c == NULL)
        return atomic_fetch_add_explicit(&g_next_id, 1, memory_order_relaxed);
    if (ASYNCIO_UNLIKELY(c->id_next == c->id_end)) {
        c->id_next =
            atomic_fetch_add_explicit(&g_next_id, ASYNCIO__TASK_ID_RANGE, memory_order_relaxed);
        c->id_end = c->id_next + ASYNCIO__TASK_ID_RANGE;
    }
    return c->id_next++;
}

/* The task being polled or dropped on this thread (asyncio_task_id / asyncio_task_name). */
static _Thread_local asyncio__task *tl_current;

/* The record sits right before the header: it keeps the header's (max_align_t) alignment. */
_Static_assert(sizeof(asyncio__task_obs) % _Alignof(max_align_t) == 0,
               "asyncio__task_obs must keep the task header aligned");

/* A tracked task's record before it is published (plain initialisation). */
static void obs_init(asyncio__task_obs *o, uint32_t now_ms)
{
    o->spawned_ms = now_ms;
    atomic_init(&o->polls, 0);
    atomic_init(&o->poll_ms, now_ms);
    atomic_init(&o->longest_ms, 0);
    atomic_init(&o->worker, NULL);
    atomic_init(&o->wait_what, NULL);
    atomic_init(&o->wait_arg, ASYNCIO_WAITING_NO_ARG);
    atomic_init(&o->wait_polls, 0);
}

_Static_assert(ASYNCIO__TASK_CACHE_CLASSES <= ASYNCIO__TASK_BLK_CLASS,
               "a size class must fit the header's blk bits");
_Static_assert(sizeof(asyncio__set_entry) % _Alignof(max_align_t) == 0,
               "asyncio__set_entry must keep the task header aligned");

asyncio__task *asyncio__task_new(asyncio__scheduler *s, const asyncio_task_vtable *vt,
                                 const void *init_state, const asyncio_spawn_options *opts,
                                 unsigned flags)
{
    bool in_set = (flags & ASYNCIO__TASK_NEW_SET) != 0;
    size_t size = asyncio__task_end_offset(vt), name_len = 0;
    bool track = s->track_clock != NULL;
    bool want_extra = track || (opts != NULL && (opts->name != NULL || opts->on_complete != NULL));
    if (want_extra) {
        name_len = opts != NULL && opts->name != NULL ? strlen(opts->name) : 0;
        size = asyncio__task_extra_offset(vt) + sizeof(asyncio__task_extra) + name_len + 1;
    }
    /* Before the header: the set entry, then the record (at a fixed offset from the header). */
    size_t head =
        (in_set ? sizeof(asyncio__set_entry) : 0) + (track ? sizeof(asyncio__task_obs) : 0);
    uint8_t cls;
    asyncio__task_cache *c = asyncio__tl_task_cache; /* one thread-local read for both uses */
    char *block = asyncio__task_block_alloc_from(c, head + size, &cls);
    if (block == NULL)
        return NULL;
    asyncio__task *t = (asyncio__task *)(void *)(block + head);
    t->blk = (uint8_t)(cls | (want_extra ? ASYNCIO__TASK_BLK_EXTRA : 0u) |
                       (in_set ? ASYNCIO__TASK_BLK_SET : 0u));
    t->id = next_id(c);
    t->vt = vt; /* before the extra: its offset depends on vt */
    if (want_extra) {
        asyncio__task_extra *x = asyncio__task_extra_of(t);
        x->on_complete = opts != NULL ? opts->on_complete : NULL;
        x->on_complete_arg = opts != NULL ? opts->on_complete_arg : NULL;
        if (track)
            obs_init(asyncio__task_obs_of(t),
                     atomic_load_explicit(&((asyncio__obs_clock *)s->track_clock)->now_ms,
                                          memory_order_relaxed));
        if (name_len > 0)
            memcpy(x->name, opts->name, name_len);
        x->name[name_len] = '\0';
    }
    asyncio__task_state_init(&t->state, (flags & ASYNCIO__TASK_NEW_DETACHED) != 0);
    t->sched = s;
    asyncio__sched_ref(s);
    if (in_set) /* after blk and sched: they locate the entry */
        asyncio__task_set_entry(t)->task = t;
    t->next = NULL;
    asyncio__list_node_init(&t->owned);
    t->join_waker = ASYNCIO_WAKER_EMPTY;
    t->result = 0;
    t->has_output = false;
    t->pin = -1;
    void *state = asyncio__task_state_ptr(t);
    if (init_state != NULL)
        memcpy(state, init_state, vt->state_size);
    else if (vt->state_size > 0)
        memset(state, 0, vt->state_size);
    return t;
}

void asyncio__task_dealloc(asyncio__task *t)
{
    /* Every path to here ran drop (or never published the task); only memory is left. */
    asyncio__scheduler *s = t->sched; /* alive: the task holds a reference until below */
    char *block = (char *)t - asyncio__task_head_size(t);
    asyncio__task_block_free(block, (uint8_t)(t->blk & ASYNCIO__TASK_BLK_CLASS));
    asyncio__sched_unref(s);
}

/* ------------------------------------------------------------------------ */
/* The task waker: data is the task, each waker owns one reference.          */

static void schedule(asyncio__task *t, bool yield)
{
    t->sched->ops->schedule(t->sched, t, yield);
}

static asyncio_waker waker_clone(const void *data);

/*
 * Wakes from a thread that is not the runtime's are bracketed (task.h: "The
 * scheduler's lifetime"): counted before the transition, so that a free
 * racing with them waits until their schedule is done. A dealloc comes after
 * the bracket: it may drop the scheduler's last reference.
 */
void (*asyncio__task_remote_hook)(void);

/* A remote wake / abort made its transition: the window the bracket covers (tests). */
static void remote_hook(void)
{
    if (ASYNCIO_UNLIKELY(asyncio__task_remote_hook != NULL))
        asyncio__task_remote_hook();
}

static void waker_drop(const void *data);

static void waker_wake(const void *data)
{
    asyncio__task *t = (asyncio__task *)data;
    asyncio__scheduler *s = t->sched;
    if (ASYNCIO_UNLIKELY(asyncio__sched_enter_remote(s))) {
        /*
         * By ref inside the bracket, then the drop: a by-value transition
         * gives our reference away, and another thread could then drop the
         * task's last one -- freeing the task and the runtime's memory --
         * before our leave writes the counter (tests/model/lifetime.pml
         * BUG4). One more RMW, on remote wakes only.
         */
        bool submit = asyncio__task_state_notify_by_ref(&t->state) == ASYNCIO__NOTIFY_SUBMIT;
        remote_hook();
        if (submit)
            schedule(t, false); /* the transition added the entry's reference */
        asyncio__sched_leave_remote(s, true);
        waker_drop(data);
        return;
    }
    switch (asyncio__task_state_notify_by_val(&t->state)) {
    case ASYNCIO__NOTIFY_SUBMIT:
        schedule(t, false); /* our reference now belongs to the queue entry */
        break;
    case ASYNCIO__NOTIFY_DEALLOC:
        asyncio__task_dealloc(t);
        break;
    case ASYNCIO__NOTIFY_NOTHING:
        break;
    }
}

static void waker_wake_by_ref(const void *data)
{
    /* The caller's waker keeps the task (and so the runtime's memory) alive throughout. */
    asyncio__task *t = (asyncio__task *)data;
    asyncio__scheduler *s = t->sched;
    bool remote = asyncio__sched_enter_remote(s);
    bool submit = asyncio__task_state_notify_by_ref(&t->state) == ASYNCIO__NOTIFY_SUBMIT;
    if (remote)
        remote_hook();
    if (submit)
        schedule(t, false); /* the transition added the entry's reference */
    asyncio__sched_leave_remote(s, remote);
}

static void waker_drop(const void *data)
{
    asyncio__task *t = (asyncio__task *)data;
    if (asyncio__task_state_ref_dec(&t->state))
        asyncio__task_dealloc(t);
}

static const asyncio_waker_vtable g_task_waker_vtable = {
    waker_clone,
    waker_wake,
    waker_wake_by_ref,
    waker_drop,
};

static asyncio_waker waker_clone(const void *data)
{
    asyncio__task *t = (asyncio__task *)data;
    asyncio__task_state_ref_inc(&t->state);
    return (asyncio_waker){&g_task_waker_vtable, t};
}

/* ------------------------------------------------------------------------ */
/* Completion                                                                */

/*
 * Publishes the result (the future was already dropped), hands the output
 * to whoever owns it now, wakes the JoinHandle, and drops the polling and
 * owner references. Steps, in order:
 *   1. result / has_output written, then COMPLETE published (acq_rel);
 *   2. no JOIN_INTEREST: nobody will collect the output, drop it here;
 *      JOIN_WAKER: wake the handle's waker, then give the slot back
 *      (and drop the waker too if the handle went away meanwhile);
 *   3. leave the owner list, drop the references.
 */
static void complete(asyncio__task *t, int result, bool has_output)
{
    asyncio__task_extra *x = asyncio__task_extra_of(t);
    if (x != NULL && x->on_complete != NULL) {
        /* Before COMPLETE is published: the output is still the runtime's alone. */
        void *out = has_output ? asyncio__task_output_ptr(t) : NULL;
        x->on_complete(x->on_complete_arg, t->id, result, out);
    }
    if (t->blk & ASYNCIO__TASK_BLK_SET)
        asyncio__join_set_task_done(asyncio__task_set_entry(t)); /* after the caller's callback */
    t->result = result;
    t->has_output = has_output;
    uint64_t s = asyncio__task_state_to_complete(&t->state);
    if (!(s & ASYNCIO__ST_JOIN_INTEREST)) {
        if (t->has_output && t->vt->drop_output != NULL)
            t->vt->drop_output(asyncio__task_output_ptr(t));
        t->has_output = false;
    } else if (s & ASYNCIO__ST_JOIN_WAKER) {
        asyncio_waker_wake_by_ref(&t->join_waker);
        s = asyncio__task_state_unset_waker_after_complete(&t->state);
        if (!(s & ASYNCIO__ST_JOIN_INTEREST))
            asyncio_waker_drop(&t->join_waker);
    }
    uint64_t refs = 1; /* polling */
    if (t->sched->ops->release(t->sched, t))
        refs++; /* owner */
    if (asyncio__task_state_ref_dec_n(&t->state, refs))
        asyncio__task_dealloc(t);
}

/* The task is claimed (RUNNING) and must stop: drop the future, complete as cancelled. */
static void cancel(asyncio__task *t)
{
    asyncio__task *prev = tl_current;
    tl_current = t;
    if (t->vt->drop != NULL)
        t->vt->drop(asyncio__task_state_ptr(t));
    tl_current = prev;
    complete(t, ASYNCIO_ECANCELED, false);
}

/*
 * Poll begin / end of an observed runtime (task/obs.h). Only the polling
 * thread writes these fields, so each update is a load and a store. The
 * flags are constants in each entry point below, so a runtime pays only
 * for the options it has.
 */
#define OBS_WATCH 1u /* the worker's record says which task it polls (always, when observed) */
#define OBS_TRACK 2u /* track_tasks: the task's own record */
#define OBS_HIST  4u /* poll_time_histogram: two clock reads */
#define OBS_ANY   8u /* the flags come from the record (the general entry point) */

#if defined(__GNUC__) || defined(__clang__)
#define TASK_RUN_INLINE inline __attribute__((always_inline))
#else
#define TASK_RUN_INLINE inline
#endif

static TASK_RUN_INLINE bool obs_has(const asyncio__worker_obs *wo, unsigned flags, unsigned f)
{
    if (!(flags & OBS_ANY))
        return (flags & f) != 0;
    return f == OBS_TRACK ? wo->track : f == OBS_HIST ? wo->hist_on : true;
}

static TASK_RUN_INLINE uint64_t obs_poll_begin(asyncio__worker_obs *wo, asyncio__task *t,
                                               unsigned flags)
{
    if (obs_has(wo, flags, OBS_TRACK)) { /* every task of a tracking runtime has its record */
        asyncio__task_obs *o = asyncio__task_obs_of(t);
        atomic_store_explicit(&o->polls, atomic_load_explicit(&o->polls, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        atomic_store_explicit(&o->poll_ms, atomic_load_explicit(&wo->now_ms, memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&o->worker, wo, memory_order_relaxed);
    }
    /* release: the previous poll's count (metrics) is visible to the sampler with it. */
    atomic_store_explicit(&wo->task, t, memory_order_release);
    return obs_has(wo, flags, OBS_HIST) ? asyncio__clock_now_ns() : 0;
}

static TASK_RUN_INLINE void obs_poll_end(asyncio__worker_obs *wo, uint64_t start, unsigned flags)
{
    atomic_store_explicit(&wo->task, NULL, memory_order_release);
    if (obs_has(wo, flags, OBS_HIST)) {
        uint64_t d = asyncio__clock_now_ns() - start;
        ASYNCIO__OBS_ADD(wo->hist[asyncio__obs_bucket(d)], 1);
        ASYNCIO__OBS_ADD(wo->hist_sum, d);
    }
}

/* The body of every entry point: with flags == 0 the compiler drops every obs line. */
static TASK_RUN_INLINE unsigned task_run(asyncio__task *t, asyncio__worker_obs *wo, unsigned flags)
{
    switch (asyncio__task_state_to_running(&t->state)) {
    case ASYNCIO__RUN_SUCCESS:
        break;
    case ASYNCIO__RUN_CANCELLED:
        cancel(t);
        return 0;
    case ASYNCIO__RUN_FAILED:
        return 0; /* stale entry: the task ran or finished elsewhere */
    case ASYNCIO__RUN_DEALLOC:
        asyncio__task_dealloc(t);
        return 0;
    }

    /* The waker is borrowed: the polling reference keeps the task alive during poll. */
    asyncio_waker w = {&g_task_waker_vtable, t};
    asyncio_context cx = {&w, true, ASYNCIO_COOP_BUDGET};
    asyncio__task *prev = tl_current;
    tl_current = t;
    uint64_t start = flags != 0 ? obs_poll_begin(wo, t, flags) : 0;
    int rc = t->vt->poll(asyncio__task_state_ptr(t), &cx, asyncio__task_output_ptr(t));
    if (flags != 0)
        obs_poll_end(wo, start, flags); /* before drop: a drop's time is not the poll's */
    if (rc != ASYNCIO_PENDING) {
        if (t->vt->drop != NULL)
            t->vt->drop(asyncio__task_state_ptr(t));
        tl_current = prev;
        complete(t, rc, t->vt->output_size > 0);
        return ASYNCIO__RAN_POLL;
    }
    tl_current = prev;
    unsigned ran = cx.budget == 0 ? ASYNCIO__RAN_POLL | ASYNCIO__RAN_BUDGET : ASYNCIO__RAN_POLL;
    switch (asyncio__task_state_to_idle(&t->state)) {
    case ASYNCIO__IDLE_OK:
        break;
    case ASYNCIO__IDLE_OK_NOTIFIED:
        schedule(t, true); /* woken while polled (yield, budget): behind the others */
        break;
    case ASYNCIO__IDLE_OK_DEALLOC:
        asyncio__task_dealloc(t);
        break;
    case ASYNCIO__IDLE_CANCELLED:
        cancel(t);
        break;
    }
    return ran;
}

unsigned asyncio__task_run(asyncio__task *t)
{
    return task_run(t, NULL, 0);
}

unsigned asyncio__task_run_watched(asyncio__task *t, asyncio__worker_obs *wo)
{
    return task_run(t, wo, OBS_WATCH);
}

unsigned asyncio__task_run_tracked(asyncio__task *t, asyncio__worker_obs *wo)
{
    return task_run(t, wo, OBS_WATCH | OBS_TRACK);
}

unsigned asyncio__task_run_observed(asyncio__task *t, asyncio__worker_obs *wo)
{
    return task_run(t, wo, OBS_ANY);
}

asyncio__task_run_fn asyncio__task_run_for(const asyncio__worker_obs *wo)
{
    if (wo->hist_on)
        return asyncio__task_run_observed;
    return wo->track ? asyncio__task_run_tracked : asyncio__task_run_watched;
}

bool asyncio__task_shutdown(asyncio__task *t)
{
    if (!asyncio__task_state_to_shutdown(&t->state))
        return false;
    /* We claimed it: take a polling reference so complete() has one to drop. */
    asyncio__task_state_ref_inc(&t->state);
    cancel(t);
    return true;
}

void asyncio__task_drop_notified(asyncio__task *t)
{
    if (asyncio__task_state_ref_dec(&t->state))
        asyncio__task_dealloc(t);
}

void asyncio__task_shutdown_unowned(asyncio__task *t)
{
    if (asyncio__task_state_to_shutdown(&t->state)) {
        cancel(t); /* the owner's reference is the polling one; release() finds it gone */
        return;
    }
    if (asyncio__task_state_ref_dec(&t->state))
        asyncio__task_dealloc(t);
}

void asyncio__task_drop_entry(asyncio__task *t)
{
    asyncio__to_running r = asyncio__task_state_to_running(&t->state);
    ASYNCIO_CHECK(r == ASYNCIO__RUN_FAILED || r == ASYNCIO__RUN_DEALLOC);
    if (r == ASYNCIO__RUN_DEALLOC)
        asyncio__task_dealloc(t);
}

/* ------------------------------------------------------------------------ */
/* JoinHandle: a pointer to the task block, owning one reference.            */

static asyncio__task *handle_task(const asyncio_join_handle *jh)
{
    return (asyncio__task *)jh;
}

/* The task is COMPLETE and we hold interest: hand out the result (and output once). */
static int take_result(asyncio__task *t, void *output)
{
    if (output != NULL && t->has_output) {
        memcpy(output, asyncio__task_output_ptr(t), t->vt->output_size);
        t->has_output = false; /* ownership moved to the caller */
    }
    return t->result;
}

int asyncio_join_handle_poll(asyncio_join_handle *jh, asyncio_context *cx, void *output)
{
    if (jh == NULL || cx == NULL || cx->waker == NULL)
        return ASYNCIO_EINVAL;
    asyncio__task *t = handle_task(jh);
    uint64_t s = asyncio__task_state_load(&t->state);
    if (s & ASYNCIO__ST_COMPLETE)
        return take_result(t, output);
    if (s & ASYNCIO__ST_JOIN_WAKER) {
        if (asyncio_waker_will_wake(&t->join_waker, cx->waker))
            return ASYNCIO_PENDING;
        /* Take the slot back to replace the waker; failing means it just completed. */
        if (!asyncio__task_state_unset_join_waker(&t->state))
            return take_result(t, output);
        asyncio_waker_drop(&t->join_waker);
    }
    t->join_waker = asyncio_waker_clone(cx->waker);
    if (!asyncio__task_state_set_join_waker(&t->state)) {
        /* Completed before we could publish: the waker stays ours. */
        asyncio_waker_drop(&t->join_waker);
        return take_result(t, output);
    }
    return ASYNCIO_PENDING;
}

int asyncio_join_handle_abort(asyncio_join_handle *jh)
{
    if (jh == NULL)
        return ASYNCIO_EINVAL;
    asyncio__task *t = handle_task(jh);
    asyncio__scheduler *s = t->sched;
    bool remote = asyncio__sched_enter_remote(s); /* as a wake: see waker_wake */
    bool submit = asyncio__task_state_notify_and_cancel(&t->state);
    if (remote)
        remote_hook(); /* the handle's reference keeps the task alive throughout */
    if (submit)
        schedule(t, false); /* the transition added the entry's reference */
    asyncio__sched_leave_remote(s, remote);
    return 0;
}

bool asyncio_join_handle_is_finished(const asyncio_join_handle *jh)
{
    if (jh == NULL)
        return false;
    return (asyncio__task_state_load(&handle_task(jh)->state) & ASYNCIO__ST_COMPLETE) != 0;
}

/* The task's output, if the handle still holds it (the handle's alone: COMPLETE seen). */
static void drop_output(asyncio__task *t)
{
    if (t->has_output) {
        if (t->vt->drop_output != NULL)
            t->vt->drop_output(asyncio__task_output_ptr(t));
        t->has_output = false;
    }
}

void asyncio_join_handle_drop(asyncio_join_handle *jh)
{
    if (jh == NULL)
        return;
    asyncio__task *t = handle_task(jh);
    uint64_t s = ASYNCIO__ST_LOAD(&t->state); /* acquire: the output, if COMPLETE */
    if ((s & (ASYNCIO__ST_COMPLETE | ASYNCIO__ST_JOIN_WAKER)) == ASYNCIO__ST_COMPLETE) {
        /*
         * Joined (the usual drop): output and waker slot are the handle's
         * alone, so they go first and one RMW then gives up interest and
         * reference (was two).
         */
        drop_output(t);
        asyncio_waker_drop(&t->join_waker); /* EMPTY unless the runtime left it to us */
        if (asyncio__task_state_join_handle_drop_complete(&t->state))
            asyncio__task_dealloc(t);
        return;
    }
    unsigned f = asyncio__task_state_join_handle_dropped(&t->state);
    if (f & ASYNCIO__JH_DROP_OUTPUT)
        drop_output(t);
    if (f & ASYNCIO__JH_DROP_WAKER)
        asyncio_waker_drop(&t->join_waker);
    if (asyncio__task_state_ref_dec(&t->state))
        asyncio__task_dealloc(t);
}

uint64_t asyncio_join_handle_id(const asyncio_join_handle *jh)
{
    return jh != NULL ? handle_task(jh)->id : 0;
}

/* The task's name, or NULL when it has none. */
static const char *task_name(const asyncio__task *t)
{
    asyncio__task_extra *x = t != NULL ? asyncio__task_extra_of(t) : NULL;
    return x != NULL && x->name[0] != '\0' ? x->name : NULL;
}

const char *asyncio_join_handle_name(const asyncio_join_handle *jh)
{
    return task_name(jh != NULL ? handle_task(jh) : NULL);
}

/* ------------------------------------------------------------------------ */
/* AbortHandle: a pointer to the task block, owning one reference.           */

static asyncio__task *abort_task(const asyncio_abort_handle *ah)
{
    return (asyncio__task *)ah;
}

int asyncio_join_handle_abort_handle(asyncio_join_handle *jh, asyncio_abort_handle **out)
{
    if (jh == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    asyncio__task *t = handle_task(jh);
    asyncio__task_state_ref_inc(&t->state); /* made from the handle's live reference */
    *out = (asyncio_abort_handle *)t;
    return 0;
}

int asyncio_abort_handle_abort(asyncio_abort_handle *ah)
{
    /* The same transition as the JoinHandle's: both hold a reference. */
    return ah != NULL ? asyncio_join_handle_abort((asyncio_join_handle *)abort_task(ah))
                      : ASYNCIO_EINVAL;
}

bool asyncio_abort_handle_is_finished(const asyncio_abort_handle *ah)
{
    if (ah == NULL)
        return false;
    return (asyncio__task_state_load(&abort_task(ah)->state) & ASYNCIO__ST_COMPLETE) != 0;
}

uint64_t asyncio_abort_handle_id(const asyncio_abort_handle *ah)
{
    return ah != NULL ? abort_task(ah)->id : 0;
}

void asyncio_abort_handle_drop(asyncio_abort_handle *ah)
{
    if (ah == NULL)
        return;
    asyncio__task *t = abort_task(ah);
    if (asyncio__task_state_ref_dec(&t->state))
        asyncio__task_dealloc(t);
}

/* Copies at most cap - 1 bytes of src and a terminator. */
static void copy_trunc(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static asyncio_task_run_state run_state(uint64_t s)
{
    if (s & (ASYNCIO__ST_RUNNING | ASYNCIO__ST_COMPLETE))
        return s & ASYNCIO__ST_NOTIFIED ? ASYNCIO_TASK_NOTIFIED : ASYNCIO_TASK_RUNNING;
    return s & ASYNCIO__ST_NOTIFIED ? ASYNCIO_TASK_SCHEDULED : ASYNCIO_TASK_IDLE;
}

/* The tracked fields: relaxed snapshots, each consistent on its own (diagnostics). */
static void obs_info(const asyncio__task_obs *co, uint32_t now_ms, asyncio_task_info *out)
{
    asyncio__task_obs *o = (asyncio__task_obs *)co;
    out->tracked = true;
    uint32_t polls = atomic_load_explicit(&o->polls, memory_order_relaxed);
    out->polls = polls;
    const asyncio__worker_obs *w = atomic_load_explicit(&o->worker, memory_order_relaxed);
    if (out->worker < 0 && w != NULL)
        out->worker = (int32_t)w->index;
    /* uint32 ms: wrapping differences (ages under 49 days). */
    out->age_us = (uint64_t)(uint32_t)(now_ms - o->spawned_ms) * 1000u;
    uint32_t since = atomic_load_explicit(&o->poll_ms, memory_order_relaxed);
    out->since_poll_us = (uint64_t)(uint32_t)(now_ms - since) * 1000u;
    out->longest_poll_us =
        (uint64_t)atomic_load_explicit(&o->longest_ms, memory_order_relaxed) * 1000u;
    const char *what = atomic_load_explicit(&o->wait_what, memory_order_relaxed);
    int64_t arg = atomic_load_explicit(&o->wait_arg, memory_order_relaxed);
    if (what == NULL || atomic_load_explicit(&o->wait_polls, memory_order_relaxed) != polls)
        return; /* none, or set during an earlier poll: stale */
    if (arg == ASYNCIO_WAITING_NO_ARG)
        copy_trunc(out->waiting_on, sizeof out->waiting_on, what);
    else
        snprintf(out->waiting_on, sizeof out->waiting_on, "%s %lld", what, (long long)arg);
}

void asyncio__task_info(const asyncio__task *t, uint32_t now_ms, asyncio_task_info *out)
{
    memset(out, 0, sizeof *out);
    out->id = t->id;
    out->state = run_state(asyncio__task_state_load(&t->state));
    out->worker = t->pin;
    asyncio__task_extra *x = asyncio__task_extra_of(t);
    if (x == NULL)
        return;
    copy_trunc(out->name, sizeof out->name, x->name);
    if (asyncio__task_tracked(t))
        obs_info(asyncio__task_obs_of(t), now_ms, out);
}

void asyncio_task_set_waiting_on(const char *what, int64_t arg)
{
    asyncio__task *t = tl_current;
    if (t == NULL || !asyncio__task_tracked(t))
        return;
    /* The polling thread is the only writer; the dump reads them relaxed. */
    asyncio__task_obs *o = asyncio__task_obs_of(t);
    atomic_store_explicit(&o->wait_polls, atomic_load_explicit(&o->polls, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&o->wait_arg, arg, memory_order_relaxed);
    atomic_store_explicit(&o->wait_what, what, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* The current task                                                          */

uint64_t asyncio_task_id(void)
{
    return tl_current != NULL ? tl_current->id : 0;
}

const char *asyncio_task_name(void)
{
    return task_name(tl_current);
}

/* ------------------------------------------------------------------------ */
/* yield_now and the cooperative budget                                      */

int asyncio_yield_poll(asyncio_yield *y, asyncio_context *cx)
{
    if (y == NULL || cx == NULL || cx->waker == NULL)
        return ASYNCIO_EINVAL;
    if (y->yielded)
        return 0;
    y->yielded = true;
    asyncio_waker_wake_by_ref(cx->waker);
    return ASYNCIO_PENDING;
}

int asyncio_coop_proceed(asyncio_context *cx)
{
    if (cx == NULL || !cx->coop)
        return 0;
    if (cx->budget == 0) {
        asyncio_waker_wake_by_ref(cx->waker); /* ready again at once, after the others */
        return ASYNCIO_PENDING;
    }
    cx->budget--;
    return 0;
}
