/*
 * Task groups and cancellation: JoinSet (completion order, len, abort_all,
 * shutdown, free aborts), AbortHandle, task ids and names, spawn with a
 * completion callback, cancellation tokens (trees, the cancelled future,
 * dropping a waiter mid-flight) and a cross-thread cancel stress (TSan).
 * Runs under the scheduler matrix (ct, mt1, mt4) and the counting
 * allocator: no block survives a test.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio.h"
#include "hand_waker.h"
#include "support.h"

/* ---- a task that sleeps `ms` then returns `rc` with output `value` -------------- */

typedef struct napper {
    uint64_t ms;
    int rc, value;
    asyncio_sleep s;
    bool init;
    _Atomic int *dropped; /* counts drops (NULL: none) */
} napper;

static int napper_poll(void *state, asyncio_context *cx, void *output)
{
    napper *n = state;
    if (!n->init) {
        asyncio_sleep_init(&n->s, n->ms);
        n->init = true;
    }
    int rc = asyncio_sleep_poll(&n->s, cx);
    if (rc != 0)
        return rc;
    *(int *)output = n->value;
    return n->rc;
}

static void napper_drop(void *state)
{
    napper *n = state;
    asyncio_sleep_drop(&n->s);
    if (n->dropped != NULL)
        atomic_fetch_add(n->dropped, 1);
}

static const asyncio_task_vtable napper_vt = {napper_poll, napper_drop, NULL, sizeof(napper),
                                              sizeof(int)};

/* ---- JoinSet -------------------------------------------------------------------- */

typedef struct js_main {
    asyncio_coro co;
    asyncio_join_set *js;
    int order[5], got, result, value;
    uint64_t ids[5], id;
} js_main;

static int js_order_poll(void *state, asyncio_context *cx, void *output)
{
    js_main *m = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(m->co);
    for (int i = 0; i < 5; i++) {
        napper n = {.ms = (uint64_t)(5 - i) * 10, .rc = i == 2 ? ASYNCIO_EIO : 0, .value = i};
        asyncio_abort_handle *ah;
        assert_ok(
            asyncio_join_set_spawn(m->js, asyncio_runtime_current(), &napper_vt, &n, NULL, &ah));
        m->ids[i] = asyncio_abort_handle_id(ah);
        assert_true(m->ids[i] != 0);
        asyncio_abort_handle_drop(ah);
    }
    assert_int_equal(asyncio_join_set_len(m->js), 5);
    for (m->got = 0; m->got < 5; m->got++) {
        ASYNCIO_AWAIT(m->co, rc,
                      asyncio_join_set_poll_join_next(m->js, cx, &m->result, &m->value, &m->id));
        assert_ok(rc);
        m->order[m->got] = m->value;
        assert_int_equal(m->value, 4 - m->got); /* shortest sleep first */
        assert_int_equal(m->id, m->ids[m->value]);
        assert_int_equal(m->result, m->value == 2 ? ASYNCIO_EIO : 0);
        assert_int_equal(asyncio_join_set_len(m->js), (size_t)(4 - m->got));
    }
    ASYNCIO_AWAIT(m->co, rc, asyncio_join_set_poll_join_next(m->js, cx, &m->result, NULL, NULL));
    assert_err(rc, ASYNCIO_ENOENT);
    ASYNCIO_END(m->co);
    return 0;
}

static const asyncio_task_vtable js_order_vt = {js_order_poll, NULL, NULL, sizeof(js_main), 0};

static void test_join_set_join_next_returns_tasks_in_completion_order(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.start_paused = true};
    asyncio_runtime *rt = support_runtime_new(&o);
    js_main m = {.co = ASYNCIO_CORO_INIT};
    assert_ok(asyncio_join_set_new(&m.js));
    /* block_on copies the state: read the order through a pointer kept in it. */
    assert_ok(asyncio_runtime_block_on(rt, &js_order_vt, &m, NULL));
    asyncio_join_set_free(m.js);
    assert_ok(asyncio_runtime_free(rt));
}

typedef struct js_abort {
    asyncio_coro co;
    asyncio_join_set *js;
    _Atomic int *dropped;
    int result, n;
} js_abort;

static int js_abort_poll(void *state, asyncio_context *cx, void *output)
{
    js_abort *m = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(m->co);
    for (int i = 0; i < 4; i++) {
        napper n = {.ms = UINT64_MAX / 2, .dropped = m->dropped};
        assert_ok(
            asyncio_join_set_spawn(m->js, asyncio_runtime_current(), &napper_vt, &n, NULL, NULL));
    }
    ASYNCIO_YIELD(m->co, cx); /* let them start sleeping */
    asyncio_join_set_abort_all(m->js);
    for (m->n = 0; m->n < 4; m->n++) {
        ASYNCIO_AWAIT(m->co, rc,
                      asyncio_join_set_poll_join_next(m->js, cx, &m->result, NULL, NULL));
        assert_ok(rc);
        assert_err(m->result, ASYNCIO_ECANCELED);
    }
    assert_int_equal(asyncio_join_set_len(m->js), 0);
    /* shutdown: abort and wait, on a fresh batch */
    for (int i = 0; i < 3; i++) {
        napper n = {.ms = UINT64_MAX / 2, .dropped = m->dropped};
        assert_ok(
            asyncio_join_set_spawn(m->js, asyncio_runtime_current(), &napper_vt, &n, NULL, NULL));
    }
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_join_set_poll_shutdown(m->js, cx));
    assert_int_equal(asyncio_join_set_len(m->js), 0);
    ASYNCIO_END(m->co);
    return 0;
}

static const asyncio_task_vtable js_abort_vt = {js_abort_poll, NULL, NULL, sizeof(js_abort), 0};

static void test_join_set_abort_all_and_shutdown_cancel_every_task(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    _Atomic int dropped = 0;
    js_abort m = {.co = ASYNCIO_CORO_INIT, .dropped = &dropped};
    assert_ok(asyncio_join_set_new(&m.js));
    assert_ok(asyncio_runtime_block_on(rt, &js_abort_vt, &m, NULL));
    assert_int_equal(atomic_load(&dropped), 7);
    asyncio_join_set_free(m.js);
    assert_ok(asyncio_runtime_free(rt));
}

typedef struct js_spawner {
    asyncio_join_set *js;
    _Atomic int *dropped;
} js_spawner;

static int js_spawner_poll(void *state, asyncio_context *cx, void *output)
{
    js_spawner *m = state;
    (void)cx;
    (void)output;
    for (int i = 0; i < 6; i++) {
        napper n = {.ms = i < 3 ? 0 : UINT64_MAX / 2, .dropped = m->dropped, .value = i};
        assert_ok(
            asyncio_join_set_spawn(m->js, asyncio_runtime_current(), &napper_vt, &n, NULL, NULL));
    }
    return 0;
}

static const asyncio_task_vtable js_spawner_vt = {js_spawner_poll, NULL, NULL, sizeof(js_spawner),
                                                  0};

static void test_join_set_free_aborts_running_tasks_and_leaks_nothing(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    _Atomic int dropped = 0;
    js_spawner m = {.dropped = &dropped};
    assert_ok(asyncio_join_set_new(&m.js));
    assert_ok(asyncio_runtime_block_on(rt, &js_spawner_vt, &m, NULL));
    asyncio_join_set_free(m.js); /* some finished (results dropped), some still sleep */
    assert_ok(asyncio_runtime_free(rt));
    assert_int_equal(atomic_load(&dropped), 6);
}

static void test_join_set_rejects_bad_arguments(void **state)
{
    (void)state;
    asyncio_join_set *js;
    assert_err(asyncio_join_set_new(NULL), ASYNCIO_EINVAL);
    assert_ok(asyncio_join_set_new(&js));
    napper n = {0};
    assert_err(asyncio_join_set_spawn(js, NULL, &napper_vt, &n, NULL, NULL), ASYNCIO_EINVAL);
    assert_int_equal(asyncio_join_set_len(js), 0); /* a failed spawn leaves no entry */
    assert_err(asyncio_join_set_spawn(NULL, NULL, &napper_vt, &n, NULL, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_join_set_poll_shutdown(NULL, NULL), ASYNCIO_EINVAL);
    asyncio_join_set_free(js);
    asyncio_join_set_free(NULL);
}

/*
 * Runtime shutdown with a JoinSet owner still running (tokio#2082's shape: a
 * drop that wakes / aborts other tasks during shutdown): the owner's drop
 * frees the set while its children are cancelled in any order, their
 * completion callbacks run on the shutdown thread. No deadlock, no leak.
 */
typedef struct js_owner {
    asyncio_join_set *js;
    _Atomic int *dropped;
    atomic_bool *ready; /* set once the children are spawned */
    bool spawned;
} js_owner;

static int js_owner_poll(void *state, asyncio_context *cx, void *output)
{
    js_owner *o = state;
    (void)output;
    if (!o->spawned) {
        assert_ok(asyncio_join_set_new(&o->js));
        for (int i = 0; i < 8; i++) {
            napper n = {.ms = UINT64_MAX / 2, .dropped = o->dropped};
            assert_ok(asyncio_join_set_spawn(o->js, asyncio_runtime_current(), &napper_vt, &n, NULL,
                                             NULL));
        }
        o->spawned = true;
        atomic_store(o->ready, true);
    }
    int result;
    return asyncio_join_set_poll_join_next(o->js, cx, &result, NULL, NULL); /* never finishes */
}

static void js_owner_drop(void *state)
{
    js_owner *o = state;
    asyncio_join_set_free(o->js);
    atomic_fetch_add(o->dropped, 100);
}

static const asyncio_task_vtable js_owner_vt = {js_owner_poll, js_owner_drop, NULL,
                                                sizeof(js_owner), 0};

/* Yields 16 times (lets spawned tasks run a few polls first). */
static int yield_n_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    int *n = state;
    if ((*n)++ < 16) {
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    return 0;
}

static const asyncio_task_vtable yield_n_vt = {yield_n_poll, NULL, NULL, sizeof(int), 0};

/* Yields until *flag is set (another task's progress, on any worker). */
static int wait_flag_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    atomic_bool *flag = *(atomic_bool **)state;
    if (!atomic_load(flag)) {
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    return 0;
}

static const asyncio_task_vtable wait_flag_vt = {wait_flag_poll, NULL, NULL, sizeof(atomic_bool *),
                                                 0};

static void test_runtime_shutdown_with_a_join_set_owner_running_leaks_nothing(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        asyncio_runtime *rt = support_runtime_new(NULL);
        _Atomic int dropped = 0;
        atomic_bool ready = false;
        atomic_bool *readyp = &ready;
        js_owner o = {.dropped = &dropped, .ready = &ready};
        assert_ok(asyncio_spawn(rt, &js_owner_vt, &o, NULL));
        assert_ok(asyncio_runtime_block_on(rt, &wait_flag_vt, &readyp, NULL)); /* let it spawn */
        assert_ok(asyncio_runtime_free(rt)); /* shutdown: the owner and its 8 children */
        assert_int_equal(atomic_load(&dropped), 108);
    }
}

/* ---- AbortHandle, ids, names, completion callback ----------------------------- */

typedef struct who {
    uint64_t id;
    char name[32];
} who;

static int whoami_poll(void *state, asyncio_context *cx, void *output)
{
    (void)state;
    (void)cx;
    who *w = output;
    w->id = asyncio_task_id();
    const char *n = asyncio_task_name();
    snprintf(w->name, sizeof w->name, "%s", n != NULL ? n : "(none)");
    return 0;
}

static const asyncio_task_vtable whoami_vt = {whoami_poll, NULL, NULL, 0, sizeof(who)};

typedef struct cb_record {
    _Atomic int calls;
    uint64_t id;
    int result;
    int value;
    bool had_output;
} cb_record;

static void record_completion(void *arg, uint64_t id, int result, void *output)
{
    cb_record *r = arg;
    r->id = id;
    r->result = result;
    r->had_output = output != NULL;
    if (output != NULL)
        r->value = *(int *)output;
    atomic_fetch_add(&r->calls, 1);
}

typedef struct ids_main {
    asyncio_coro co;
    asyncio_join_handle *a, *b, *c;
    who wa, wb;
    cb_record *rec;
    int rc_c;
} ids_main;

static int ids_main_poll(void *state, asyncio_context *cx, void *output)
{
    ids_main *m = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(m->co);
    {
        asyncio_spawn_options named = {.name = "worker-7"};
        assert_ok(asyncio_spawn_with(asyncio_runtime_current(), &whoami_vt, NULL, &named, &m->a));
        assert_ok(asyncio_spawn(asyncio_runtime_current(), &whoami_vt, NULL, &m->b));
        assert_string_equal(asyncio_join_handle_name(m->a), "worker-7");
        assert_null(asyncio_join_handle_name(m->b));
        assert_true(asyncio_join_handle_id(m->a) != asyncio_join_handle_id(m->b));
        assert_true(asyncio_task_id() != 0); /* this task's own */
        napper n = {.ms = 5, .value = 42};
        asyncio_spawn_options cb = {.on_complete = record_completion, .on_complete_arg = m->rec};
        assert_ok(asyncio_spawn_with(asyncio_runtime_current(), &napper_vt, &n, &cb, &m->c));
    }
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_join_handle_poll(m->a, cx, &m->wa));
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_join_handle_poll(m->b, cx, &m->wb));
    assert_int_equal(m->wa.id, asyncio_join_handle_id(m->a));
    assert_string_equal(m->wa.name, "worker-7");
    assert_int_equal(m->wb.id, asyncio_join_handle_id(m->b));
    assert_string_equal(m->wb.name, "(none)");
    ASYNCIO_AWAIT(m->co, m->rc_c, asyncio_join_handle_poll(m->c, cx, NULL));
    assert_ok(m->rc_c);
    assert_int_equal(atomic_load(&m->rec->calls), 1);
    assert_int_equal(m->rec->id, asyncio_join_handle_id(m->c));
    assert_int_equal(m->rec->value, 42);
    assert_true(m->rec->had_output);
    ASYNCIO_END(m->co);
    return 0;
}

static void ids_main_drop(void *state)
{
    ids_main *m = state;
    asyncio_join_handle_drop(m->a);
    asyncio_join_handle_drop(m->b);
    asyncio_join_handle_drop(m->c);
}

static const asyncio_task_vtable ids_main_vt = {ids_main_poll, ids_main_drop, NULL,
                                                sizeof(ids_main), 0};

static void test_tasks_have_ids_names_and_a_completion_callback(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.start_paused = true};
    asyncio_runtime *rt = support_runtime_new(&o);
    cb_record rec = {0};
    ids_main m = {.co = ASYNCIO_CORO_INIT, .rec = &rec};
    assert_ok(asyncio_runtime_block_on(rt, &ids_main_vt, &m, NULL));
    assert_int_equal(asyncio_task_id(), 0); /* outside every task */
    assert_null(asyncio_task_name());
    assert_ok(asyncio_runtime_free(rt));
}

static void test_abort_handle_cancels_and_callback_sees_ecanceled(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    cb_record rec = {0};
    _Atomic int dropped = 0;
    napper n = {.ms = UINT64_MAX / 2, .dropped = &dropped};
    asyncio_spawn_options cb = {.on_complete = record_completion, .on_complete_arg = &rec};
    asyncio_join_handle *jh;
    assert_ok(asyncio_spawn_with(rt, &napper_vt, &n, &cb, &jh));
    asyncio_abort_handle *ah;
    assert_ok(asyncio_join_handle_abort_handle(jh, &ah));
    assert_int_equal(asyncio_abort_handle_id(ah), asyncio_join_handle_id(jh));
    assert_false(asyncio_abort_handle_is_finished(ah));
    assert_ok(asyncio_abort_handle_abort(ah));
    asyncio_runtime_shutdown(rt); /* runs the cancelled task's drop */
    assert_true(asyncio_abort_handle_is_finished(ah));
    assert_int_equal(atomic_load(&rec.calls), 1);
    assert_err(rec.result, ASYNCIO_ECANCELED);
    assert_false(rec.had_output);
    assert_int_equal(atomic_load(&dropped), 1);
    asyncio_abort_handle_drop(ah);
    asyncio_join_handle_drop(jh);
    assert_err(asyncio_abort_handle_abort(NULL), ASYNCIO_EINVAL);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_runtime_tasks_lists_live_tasks_with_ids_and_names(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    static const char *const names[3] = {"alpha", "beta", "a-name-longer-than-thirty-one-bytes"};
    asyncio_join_handle *jh[3];
    for (int i = 0; i < 3; i++) {
        napper n = {.ms = UINT64_MAX / 2};
        asyncio_spawn_options o = {.name = names[i]};
        assert_ok(asyncio_spawn_with(rt, &napper_vt, &n, &o, &jh[i]));
    }
    asyncio_task_info info[8];
    size_t n = 0;
    assert_ok(asyncio_runtime_tasks(rt, info, 8, &n));
    assert_int_equal(n, 3);
    int seen = 0;
    for (size_t k = 0; k < n; k++)
        for (int i = 0; i < 3; i++)
            if (info[k].id == asyncio_join_handle_id(jh[i])) {
                assert_int_equal(strncmp(info[k].name, names[i], 31), 0);
                assert_true(strlen(info[k].name) <= 31);
                seen |= 1 << i;
            }
    assert_int_equal(seen, 7);
    assert_ok(asyncio_runtime_tasks(rt, info, 1, &n)); /* a short array: the count is still all */
    assert_int_equal(n, 3);
    assert_ok(asyncio_runtime_tasks(rt, NULL, 0, &n));
    assert_int_equal(n, 3);
    assert_err(asyncio_runtime_tasks(rt, NULL, 1, &n), ASYNCIO_EINVAL);
    assert_err(asyncio_runtime_tasks(NULL, info, 8, &n), ASYNCIO_EINVAL);
    asyncio_join_handle_abort(jh[1]);
    asyncio_runtime_shutdown(rt);
    assert_ok(asyncio_runtime_tasks(rt, info, 8, &n));
    assert_int_equal(n, 0); /* cancelled by shutdown */
    for (int i = 0; i < 3; i++)
        asyncio_join_handle_drop(jh[i]);
    assert_ok(asyncio_runtime_free(rt));
}

/*
 * Join cycle (tokio#4724): two tasks each await the other's JoinHandle (as a
 * future, raced with a never-firing sleep) and are then aborted through
 * AbortHandles, or left to the runtime's shutdown. Each task's drop drops
 * the other's handle: the cycle is broken and nothing leaks.
 */
typedef struct cycler {
    asyncio_join_handle *_Atomic *other; /* filled by the test after both spawns */
    asyncio_join_handle *jh;
    asyncio_sleep never;
    asyncio_future f[2];
    asyncio_select sel;
    bool selecting;
    _Atomic int *dropped;
} cycler;

static int cycler_poll(void *state, asyncio_context *cx, void *output)
{
    cycler *c = state;
    (void)output;
    if (!c->selecting) {
        c->jh = atomic_exchange(c->other, NULL);
        if (c->jh == NULL) { /* not handed over yet */
            asyncio_waker_wake_by_ref(cx->waker);
            return ASYNCIO_PENDING;
        }
        asyncio_sleep_init_until(&c->never, UINT64_MAX);
        c->f[0] = asyncio_join_handle_future(c->jh, NULL);
        c->f[1] = asyncio_sleep_future(&c->never);
        assert_ok(asyncio_select_init(&c->sel, c->f, 2));
        c->selecting = true;
    }
    return asyncio_select_poll(&c->sel, cx, NULL);
}

static void cycler_drop(void *state)
{
    cycler *c = state;
    if (c->selecting)
        asyncio_select_drop(&c->sel); /* drops the other's JoinHandle */
    else
        asyncio_join_handle_drop(atomic_exchange(c->other, NULL));
    atomic_fetch_add(c->dropped, 1);
}

static const asyncio_task_vtable cycler_vt = {cycler_poll, cycler_drop, NULL, sizeof(cycler), 0};

static void test_join_cycle_broken_by_abort_or_shutdown_leaks_nothing(void **state)
{
    (void)state;
    for (int abort_them = 0; abort_them < 2; abort_them++) {
        asyncio_runtime *rt = support_runtime_new(NULL);
        _Atomic int dropped = 0;
        asyncio_join_handle *_Atomic slot_a = NULL, *_Atomic slot_b = NULL;
        cycler a = {.other = &slot_a, .dropped = &dropped};
        cycler b = {.other = &slot_b, .dropped = &dropped};
        asyncio_join_handle *ja, *jb;
        assert_ok(asyncio_spawn(rt, &cycler_vt, &a, &ja));
        assert_ok(asyncio_spawn(rt, &cycler_vt, &b, &jb));
        asyncio_abort_handle *aa, *ab;
        assert_ok(asyncio_join_handle_abort_handle(ja, &aa));
        assert_ok(asyncio_join_handle_abort_handle(jb, &ab));
        atomic_store(&slot_a, jb); /* a awaits b, b awaits a: the handles move into them */
        atomic_store(&slot_b, ja);
        int n = 0;
        assert_ok(asyncio_runtime_block_on(rt, &yield_n_vt, &n, NULL)); /* let them select */
        if (abort_them) {
            assert_ok(asyncio_abort_handle_abort(aa));
            assert_ok(asyncio_abort_handle_abort(ab));
        }
        asyncio_abort_handle_drop(aa);
        asyncio_abort_handle_drop(ab);
        assert_ok(asyncio_runtime_free(rt)); /* the counting allocator checks for leaks */
        assert_int_equal(atomic_load(&dropped), 2);
    }
}

/* ---- cancellation tokens ------------------------------------------------------ */

static void test_cancelling_a_parent_cancels_every_descendant_not_the_reverse(void **state)
{
    (void)state;
    asyncio_cancel_token *root, *a, *b, *a1;
    assert_ok(asyncio_cancel_token_new(&root));
    assert_ok(asyncio_cancel_token_child(root, &a));
    assert_ok(asyncio_cancel_token_child(root, &b));
    assert_ok(asyncio_cancel_token_child(a, &a1));
    asyncio_cancel_token_cancel(a);
    assert_true(asyncio_cancel_token_is_cancelled(a));
    assert_true(asyncio_cancel_token_is_cancelled(a1));
    assert_false(asyncio_cancel_token_is_cancelled(root));
    assert_false(asyncio_cancel_token_is_cancelled(b));
    asyncio_cancel_token_cancel(root);
    assert_true(asyncio_cancel_token_is_cancelled(b));
    asyncio_cancel_token *late;
    assert_ok(asyncio_cancel_token_child(root, &late)); /* born cancelled */
    assert_true(asyncio_cancel_token_is_cancelled(late));
    /* Dropped in any order: children keep their parents alive. */
    asyncio_cancel_token_drop(root);
    asyncio_cancel_token_drop(a);
    asyncio_cancel_token_drop(late);
    asyncio_cancel_token_drop(b);
    asyncio_cancel_token_drop(a1);
    assert_err(asyncio_cancel_token_new(NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_cancel_token_child(NULL, &a), ASYNCIO_EINVAL);
}

static void test_cancelled_future_wakes_once_and_a_dropped_one_never(void **state)
{
    (void)state;
    asyncio_cancel_token *root, *child;
    assert_ok(asyncio_cancel_token_new(&root));
    assert_ok(asyncio_cancel_token_child(root, &child));
    hand kw, dw;
    hand_init(&kw);
    hand_init(&dw);
    asyncio_cancelled kept, dropped;
    asyncio_cancelled_init(&kept, child);
    asyncio_cancelled_init(&dropped, child);
    assert_int_equal(asyncio_cancelled_poll(&kept, &kw.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_cancelled_poll(&kept, &kw.cx), ASYNCIO_PENDING); /* same waker kept */
    assert_int_equal(atomic_load(&kw.refs), 1);
    assert_int_equal(asyncio_cancelled_poll(&dropped, &dw.cx), ASYNCIO_PENDING);
    asyncio_cancelled_drop(&dropped); /* unlinked at once, its waker released */
    assert_int_equal(atomic_load(&dw.refs), 0);
    asyncio_cancel_token_cancel(root);
    assert_int_equal(atomic_load(&kw.wakes), 1);
    assert_int_equal(atomic_load(&kw.refs), 0); /* the wake consumed the clone */
    assert_int_equal(atomic_load(&dw.wakes), 0);
    asyncio_cancel_token_cancel(root); /* idempotent: no second wake */
    assert_int_equal(atomic_load(&kw.wakes), 1);
    assert_ok(asyncio_cancelled_poll(&kept, &kw.cx));
    assert_ok(asyncio_cancelled_poll(&kept, &kw.cx)); /* stays ready */
    asyncio_cancelled_drop(&kept);
    asyncio_cancelled_drop(&kept); /* idempotent */
    assert_err(asyncio_cancelled_poll(&kept, &kw.cx), ASYNCIO_EINVAL);
    asyncio_cancel_token_drop(child);
    asyncio_cancel_token_drop(root);
}

/*
 * A token tree and its waiters, dropped after every step of its life: the
 * handles first, the futures last (the worst order). Nothing leaks (the
 * counting allocator), a dropped waiter is never woken and keeps no clone
 * (hand_free), and a cancel reaches a grandchild whose parent handle is gone.
 */
enum { CT_STEPS = 7 };

static void
test_cancel_token_tree_dropped_at_every_step_leaks_nothing_and_wakes_no_dropped_waiter(void **state)
{
    (void)state;
    for (int stop = 0; stop <= CT_STEPS; stop++) {
        hand *hr = hand_new(), *hg = hand_new();
        asyncio_cancel_token *root = NULL, *child = NULL, *grand = NULL;
        asyncio_cancelled fr, fg;
        bool fr_live = false, fg_live = false;
        int step = 0;
        if (step++ < stop)
            assert_ok(asyncio_cancel_token_new(&root));
        if (step++ < stop)
            assert_ok(asyncio_cancel_token_child(root, &child));
        if (step++ < stop)
            assert_ok(asyncio_cancel_token_child(child, &grand));
        if (step++ < stop) {
            asyncio_cancelled_init(&fg, grand);
            fg_live = true;
            assert_int_equal(asyncio_cancelled_poll(&fg, &hg->cx), ASYNCIO_PENDING);
        }
        if (step++ < stop) {
            asyncio_cancelled_init(&fr, root);
            fr_live = true;
            assert_int_equal(asyncio_cancelled_poll(&fr, &hr->cx), ASYNCIO_PENDING);
        }
        if (step++ < stop) {
            asyncio_cancel_token_drop(child); /* the grandchild keeps its parent alive */
            child = NULL;
        }
        if (step++ < stop) {
            asyncio_cancel_token_cancel(root);
            assert_int_equal(hand_wakes(hg), 1);
            assert_int_equal(hand_wakes(hr), 1);
        }
        bool cancelled = stop == CT_STEPS;
        asyncio_cancel_token_drop(grand);
        asyncio_cancel_token_drop(child);
        asyncio_cancel_token_drop(root);
        if (fg_live) { /* the future's own reference keeps the tree */
            assert_int_equal(asyncio_cancelled_poll(&fg, &hg->cx), cancelled ? 0 : ASYNCIO_PENDING);
            asyncio_cancelled_drop(&fg);
        }
        if (fr_live) {
            assert_int_equal(asyncio_cancelled_poll(&fr, &hr->cx), cancelled ? 0 : ASYNCIO_PENDING);
            asyncio_cancelled_drop(&fr);
        }
        assert_int_equal(hand_wakes(hg) + hand_wakes(hr), cancelled ? 2 : 0);
        hand_free(hg); /* every clone released: nothing can wake into it any more */
        hand_free(hr);
    }
}

/*
 * A task owning a JoinSet is aborted after it collected `stop` of its
 * tasks, for every stop: while collecting, while waiting in join_next (its
 * waker registered in the set), after the set ran dry of finished tasks.
 * Its drop frees the set: every task in it is dropped exactly once, and
 * the runtime frees with nothing live (ASan: the set's waker slot is never
 * woken into the aborted owner).
 */
typedef struct js_collector {
    asyncio_coro co;
    asyncio_join_set *js;
    int result, value;
    _Atomic int *dropped, *collected; /* collected: -1 until its tasks are spawned */
} js_collector;

static int js_collector_poll(void *state, asyncio_context *cx, void *output)
{
    js_collector *o = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(o->co);
    assert_ok(asyncio_join_set_new(&o->js));
    for (int i = 0; i < 4; i++) { /* two finish at once, two sleep until aborted */
        napper n = {.ms = i < 2 ? 0 : UINT64_MAX / 2, .dropped = o->dropped, .value = i};
        assert_ok(
            asyncio_join_set_spawn(o->js, asyncio_runtime_current(), &napper_vt, &n, NULL, NULL));
    }
    atomic_store(o->collected, 0);
    for (;;) {
        ASYNCIO_AWAIT(o->co, rc,
                      asyncio_join_set_poll_join_next(o->js, cx, &o->result, &o->value, NULL));
        assert_ok(rc);
        atomic_fetch_add(o->collected, 1);
    }
    ASYNCIO_END(o->co);
    return 0;
}

static void js_collector_drop(void *state)
{
    js_collector *o = state;
    asyncio_join_set_free(o->js);
}

static const asyncio_task_vtable js_collector_vt = {js_collector_poll, js_collector_drop, NULL,
                                                    sizeof(js_collector), 0};

typedef struct js_abort_main {
    asyncio_coro co;
    int stop, result;
    asyncio_join_handle *jh;
    _Atomic int *dropped, *collected;
} js_abort_main;

static int js_abort_main_poll(void *state, asyncio_context *cx, void *output)
{
    js_abort_main *m = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(m->co);
    js_collector o = {.co = ASYNCIO_CORO_INIT, .dropped = m->dropped, .collected = m->collected};
    assert_ok(asyncio_spawn(asyncio_runtime_current(), &js_collector_vt, &o, &m->jh));
    while (atomic_load(m->collected) < m->stop)
        ASYNCIO_YIELD(m->co, cx);
    assert_ok(asyncio_join_handle_abort(m->jh));
    ASYNCIO_AWAIT(m->co, rc, asyncio_join_handle_poll(m->jh, cx, NULL));
    assert_err(rc, ASYNCIO_ECANCELED);
    asyncio_join_handle_drop(m->jh);
    m->jh = NULL;
    ASYNCIO_END(m->co);
    return 0;
}

static const asyncio_task_vtable js_abort_main_vt = {js_abort_main_poll, NULL, NULL,
                                                     sizeof(js_abort_main), 0};

static void test_join_set_owner_aborted_at_every_step_drops_every_task_once(void **state)
{
    (void)state;
    for (int stop = 0; stop <= 2; stop++) {
        asyncio_runtime *rt = support_runtime_new(NULL);
        _Atomic int dropped = 0, collected = -1;
        js_abort_main m = {
            .co = ASYNCIO_CORO_INIT, .stop = stop, .dropped = &dropped, .collected = &collected};
        assert_ok(asyncio_runtime_block_on(rt, &js_abort_main_vt, &m, NULL));
        assert_ok(asyncio_runtime_free(rt));
        assert_int_equal(atomic_load(&dropped), 4); /* each task once, collected or aborted */
        assert_true(atomic_load(&collected) >= stop && atomic_load(&collected) <= 2);
    }
}

/* Stress: tasks on the runtime wait on child tokens; another thread cancels the root. */
typedef struct waiter_task {
    asyncio_cancelled c;
    asyncio_cancel_token *tok;
    _Atomic int *done;
} waiter_task;

static int waiter_poll(void *state, asyncio_context *cx, void *output)
{
    waiter_task *w = state;
    (void)output;
    if (w->tok != NULL) {
        asyncio_cancelled_init(&w->c, w->tok);
        asyncio_cancel_token_drop(w->tok); /* the future holds its own reference */
        w->tok = NULL;
    }
    int rc = asyncio_cancelled_poll(&w->c, cx);
    if (rc == 0)
        atomic_fetch_add(w->done, 1);
    return rc;
}

static void waiter_drop(void *state)
{
    waiter_task *w = state;
    asyncio_cancelled_drop(&w->c);
    asyncio_cancel_token_drop(w->tok);
}

static const asyncio_task_vtable waiter_vt = {waiter_poll, waiter_drop, NULL, sizeof(waiter_task),
                                              0};

typedef struct stress_main {
    asyncio_coro co;
    asyncio_join_set *js;
    asyncio_cancel_token *root;
    _Atomic int *done;
    int n, i, result;
    pthread_t *canceller;
} stress_main;

static void *cancel_thread(void *arg)
{
    asyncio_cancel_token_cancel(arg);
    return NULL;
}

static int stress_main_poll(void *state, asyncio_context *cx, void *output)
{
    stress_main *m = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(m->co);
    for (m->i = 0; m->i < m->n; m->i++) {
        waiter_task w = {.done = m->done};
        assert_ok(asyncio_cancel_token_child(m->root, &w.tok));
        assert_ok(
            asyncio_join_set_spawn(m->js, asyncio_runtime_current(), &waiter_vt, &w, NULL, NULL));
        if (m->i == m->n / 2) {
            /* cancel while half of them are still being spawned */
            assert_int_equal(pthread_create(m->canceller, NULL, cancel_thread, m->root), 0);
        }
    }
    for (m->i = 0; m->i < m->n; m->i++) {
        ASYNCIO_AWAIT(m->co, rc,
                      asyncio_join_set_poll_join_next(m->js, cx, &m->result, NULL, NULL));
        assert_ok(rc);
        assert_ok(m->result);
    }
    ASYNCIO_END(m->co);
    return 0;
}

static const asyncio_task_vtable stress_main_vt = {stress_main_poll, NULL, NULL,
                                                   sizeof(stress_main), 0};

static void test_cancel_from_another_thread_wakes_every_waiting_task(void **state)
{
    (void)state;
    for (int round = 0; round < 10; round++) {
        asyncio_runtime *rt = support_runtime_new(NULL);
        _Atomic int done = 0;
        pthread_t th;
        stress_main m = {
            .co = ASYNCIO_CORO_INIT, .done = &done, .n = (int)support_scale(200), .canceller = &th};
        assert_ok(asyncio_join_set_new(&m.js));
        assert_ok(asyncio_cancel_token_new(&m.root));
        assert_ok(asyncio_runtime_block_on(rt, &stress_main_vt, &m, NULL));
        assert_int_equal(atomic_load(&done), m.n);
        asyncio_join_set_free(m.js);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_ok(asyncio_runtime_free(rt));
        asyncio_cancel_token_drop(m.root);
    }
}

/* ---- the JoinSet entry lives in the task's block ------------------------------ */

typedef struct user_cb {
    _Atomic int calls, cancelled;
    _Atomic uint64_t id_sum;
} user_cb;

static void user_cb_fn(void *arg, uint64_t id, int result, void *output)
{
    user_cb *u = arg;
    (void)output;
    atomic_fetch_add(&u->calls, 1);
    atomic_fetch_add(&u->id_sum, id);
    if (result == ASYNCIO_ECANCELED)
        atomic_fetch_add(&u->cancelled, 1);
}

/*
 * A spawn into a set allocates the task block and nothing else (the entry
 * is part of the block: it was a second malloc per task), with or without
 * the caller's own completion callback. From a thread outside the runtime,
 * which has no task-block cache, so every block is a fresh allocation.
 */
static void test_join_set_spawn_allocates_only_the_task_block(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL); /* not paused: the sleeps never end */
    asyncio_join_set *js;
    assert_ok(asyncio_join_set_new(&js));
    user_cb u = {0};
    uint64_t ids = 0;
    long before = support_alloc_total();
    for (int i = 0; i < 8; i++) {
        napper n = {.ms = UINT64_MAX / 2};
        asyncio_spawn_options so = {.on_complete = user_cb_fn, .on_complete_arg = &u};
        asyncio_abort_handle *ah = NULL;
        assert_ok(
            asyncio_join_set_spawn(js, rt, &napper_vt, &n, i % 2 ? &so : NULL, i % 2 ? &ah : NULL));
        if (ah != NULL) {
            ids += asyncio_abort_handle_id(ah);
            asyncio_abort_handle_drop(ah);
        }
    }
    assert_int_equal(support_alloc_total() - before, 8);
    assert_int_equal(asyncio_join_set_len(js), 8);
    asyncio_join_set_free(js); /* aborts all 8: each entry is unlinked by its own callback */
    assert_ok(asyncio_runtime_free(rt));
    assert_int_equal(atomic_load(&u.calls), 4); /* the caller's callback, on its 4 tasks only */
    assert_int_equal(atomic_load(&u.cancelled), 4);
    assert_int_equal(atomic_load(&u.id_sum), ids);
}

typedef struct js_outlive {
    int stage, collected;
    asyncio_join_set *js;
    user_cb *u;
} js_outlive;

/*
 * Spawns 6 tasks with the caller's callback (3 finish at once, 3 sleep
 * forever), collects two of the finished ones, waits for the third's
 * callback, and returns: the test frees the set with one finished entry
 * (on `done`, kept by the set's handle) and three running ones (detached:
 * kept by the runtime until their callbacks unlinked them at shutdown).
 */
static int js_outlive_poll(void *state, asyncio_context *cx, void *output)
{
    js_outlive *m = state;
    (void)output;
    if (m->stage == 0) {
        for (int i = 0; i < 6; i++) {
            napper n = {.ms = i % 2 ? UINT64_MAX / 2 : 0, .value = i};
            asyncio_spawn_options so = {.on_complete = user_cb_fn, .on_complete_arg = m->u};
            assert_ok(asyncio_join_set_spawn(m->js, asyncio_runtime_current(), &napper_vt, &n, &so,
                                             NULL));
        }
        m->stage = 1;
    }
    while (m->collected < 2) {
        int result, value;
        int rc = asyncio_join_set_poll_join_next(m->js, cx, &result, &value, NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        assert_ok(rc);
        assert_int_equal(value % 2, 0); /* a finished one */
        m->collected++;
    }
    if (atomic_load(&m->u->calls) < 3) { /* the third finished one is not on `done` yet */
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    assert_int_equal(asyncio_join_set_len(m->js), 4);
    return 0;
}

static const asyncio_task_vtable js_outlive_vt = {js_outlive_poll, NULL, NULL, sizeof(js_outlive),
                                                  0};

static void test_join_set_entries_outlive_a_freed_set_until_their_tasks_finish(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    user_cb u = {0};
    js_outlive m = {.u = &u};
    assert_ok(asyncio_join_set_new(&m.js));
    assert_ok(asyncio_runtime_block_on(rt, &js_outlive_vt, &m, NULL));
    asyncio_join_set_free(m.js); /* ASan: no entry is touched after its block went */
    assert_ok(asyncio_runtime_free(rt));
    assert_int_equal(atomic_load(&u.calls), 6);
    assert_int_equal(atomic_load(&u.cancelled), 3);
}

/* A spawn into a set on a runtime that is shutting down fails and leaves the set as it was. */
static void test_join_set_spawn_on_a_closed_runtime_fails_and_leaves_no_entry(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    asyncio_join_set *js;
    assert_ok(asyncio_join_set_new(&js));
    asyncio_runtime_shutdown(rt);
    user_cb u = {0};
    napper n = {.ms = 1};
    asyncio_spawn_options so = {.on_complete = user_cb_fn, .on_complete_arg = &u};
    assert_err(asyncio_join_set_spawn(js, rt, &napper_vt, &n, &so, NULL), ASYNCIO_ECANCELED);
    assert_err(asyncio_join_set_spawn(js, rt, &napper_vt, &n, NULL, NULL), ASYNCIO_ECANCELED);
    assert_int_equal(asyncio_join_set_len(js), 0);
    asyncio_join_set_free(js);
    assert_ok(asyncio_runtime_free(rt));
    assert_int_equal(atomic_load(&u.calls), 0); /* never published: the callback never runs */
}

/*
 * A set's task on a runtime that tracks tasks has both prefixes before its
 * header (the set entry, then the observation record), with or without a
 * name and the caller's callback: the dump reads name and record, the set
 * collects every task, and the blocks are freed whole (counting allocator).
 */
static void test_join_set_tasks_on_a_tracking_runtime_keep_entry_record_and_name(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.track_tasks = true}; /* not paused: the sleeps never end */
    asyncio_runtime *rt = support_runtime_new(&o);
    asyncio_join_set *js;
    assert_ok(asyncio_join_set_new(&js));
    user_cb u = {0};
    for (int i = 0; i < 4; i++) {
        napper n = {.ms = UINT64_MAX / 2, .value = i};
        asyncio_spawn_options so = {.name = i % 2 ? "setnamed" : NULL,
                                    .on_complete = i >= 2 ? user_cb_fn : NULL,
                                    .on_complete_arg = &u};
        assert_ok(asyncio_join_set_spawn(js, rt, &napper_vt, &n, &so, NULL));
    }
    asyncio_task_info info[8];
    size_t n = 0;
    assert_ok(asyncio_runtime_tasks(rt, info, 8, &n));
    assert_int_equal(n, 4);
    int named = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(info[i].tracked);
        named += strcmp(info[i].name, "setnamed") == 0;
    }
    assert_int_equal(named, 2);
    asyncio_join_set_free(js);
    assert_ok(asyncio_runtime_free(rt));
    assert_int_equal(atomic_load(&u.calls), 2);
    assert_int_equal(atomic_load(&u.cancelled), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_join_set_join_next_returns_tasks_in_completion_order),
        support_test(test_join_set_abort_all_and_shutdown_cancel_every_task),
        support_test(test_join_set_free_aborts_running_tasks_and_leaks_nothing),
        support_test(test_join_set_rejects_bad_arguments),
        support_test(test_runtime_shutdown_with_a_join_set_owner_running_leaks_nothing),
        support_test(test_tasks_have_ids_names_and_a_completion_callback),
        support_test(test_abort_handle_cancels_and_callback_sees_ecanceled),
        support_test(test_runtime_tasks_lists_live_tasks_with_ids_and_names),
        support_test(test_join_cycle_broken_by_abort_or_shutdown_leaks_nothing),
        support_test(test_cancelling_a_parent_cancels_every_descendant_not_the_reverse),
        support_test(test_cancelled_future_wakes_once_and_a_dropped_one_never),
        support_test(test_cancel_from_another_thread_wakes_every_waiting_task),
        support_test(
            test_cancel_token_tree_dropped_at_every_step_leaks_nothing_and_wakes_no_dropped_waiter),
        support_test(test_join_set_owner_aborted_at_every_step_drops_every_task_once),
        support_test(test_join_set_spawn_allocates_only_the_task_block),
        support_test(test_join_set_entries_outlive_a_freed_set_until_their_tasks_finish),
        support_test(test_join_set_spawn_on_a_closed_runtime_fails_and_leaves_no_entry),
        support_test(test_join_set_tasks_on_a_tracking_runtime_keep_entry_record_and_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
