/*
 * Allocation-failure sweep over the sync primitives (tests/support/
 * alloc_sweep.h; docs/testing.md): an mpsc producer task feeding the main
 * task through a bounded channel, semaphore / mutex / rwlock hand-offs with a
 * second task, broadcast to two receivers, a watch channel change and a
 * once_cell initialisation. Every allocation reached is failed once: the
 * caller gets ASYNCIO_ENOMEM, nothing leaks, nothing hangs.
 */
#include <stdio.h>
#include <string.h>

#include "alloc_sweep.h"
#include "asyncio.h"
#include "support.h"

#define ITEMS 100 /* several of the channel's blocks: allocations mid-stream */

/* ------------------------------------------------------------------------ */
/* mpsc: a producer task sends ITEMS ints through a 2-slot channel.          */

typedef struct producer {
    asyncio_coro co;
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_send send;
    int i;
} producer;

static int producer_poll(void *state, asyncio_context *cx, void *out)
{
    producer *p = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(p->co);
    for (p->i = 1; p->i <= ITEMS; p->i++) {
        asyncio_mpsc_send_init(&p->send, p->tx, &p->i);
        ASYNCIO_AWAIT(p->co, rc, asyncio_mpsc_send_poll(&p->send, cx));
        asyncio_mpsc_send_drop(&p->send);
        if (rc != 0)
            return rc;
    }
    ASYNCIO_END(p->co);
    return 0;
}

static void producer_drop(void *state)
{
    producer *p = state;
    if (p->co.resume != 0 && p->co.resume != ASYNCIO_CORO_DONE)
        asyncio_mpsc_send_drop(&p->send);
    asyncio_mpsc_sender_drop(p->tx);
}

static const asyncio_task_vtable producer_vt = {producer_poll, producer_drop, NULL,
                                                sizeof(producer), 0};

typedef struct mpsc_main {
    asyncio_coro co;
    asyncio_mpsc_receiver *rx;
    asyncio_join_handle *prod;
    asyncio_mpsc_recv recv;
    int v, sum, n;
} mpsc_main;

/* An unbounded channel: ITEMS try_sends grow its ring several times (each growth may fail). */
static int unbounded_round_trip(void)
{
    asyncio_mpsc_sender *tx;
    asyncio_mpsc_receiver *rx;
    int rc = asyncio_mpsc_unbounded_channel(&tx, &rx, sizeof(int));
    if (rc != 0)
        return rc;
    int sent = 0, v;
    for (int i = 1; i <= ITEMS && rc == 0; i++) {
        rc = asyncio_mpsc_try_send(tx, &i);
        sent += rc == 0;
    }
    int send_rc = rc;
    for (int i = 1; i <= sent; i++) {
        SWEEP_EXPECT_EQ(asyncio_mpsc_try_recv(rx, &v), 0);
        SWEEP_EXPECT_EQ(v, i); /* in order, nothing lost before the failure */
    }
    SWEEP_EXPECT_EQ(asyncio_mpsc_len(rx), 0);
    asyncio_mpsc_sender_drop(tx);
    asyncio_mpsc_receiver_drop(rx);
    return send_rc;
}

static int mpsc_main_poll(void *state, asyncio_context *cx, void *out)
{
    mpsc_main *m = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(m->co);
    producer init;
    memset(&init, 0, sizeof init);
    rc = asyncio_mpsc_channel(&init.tx, &m->rx, sizeof(int), 2);
    if (rc != 0)
        return rc;
    rc = asyncio_spawn(asyncio_runtime_current(), &producer_vt, &init, &m->prod);
    if (rc != 0) {
        asyncio_mpsc_sender_drop(init.tx); /* the task does not exist: the sender is ours */
        return rc;
    }
    for (;;) {
        asyncio_mpsc_recv_init(&m->recv, m->rx);
        ASYNCIO_AWAIT(m->co, rc, asyncio_mpsc_recv_poll(&m->recv, cx, &m->v));
        asyncio_mpsc_recv_drop(&m->recv);
        if (rc == ASYNCIO_ECLOSED)
            break;
        if (rc != 0)
            return rc;
        m->sum += m->v;
        m->n++;
    }
    ASYNCIO_AWAIT(m->co, rc, asyncio_join_handle_poll(m->prod, cx, NULL));
    if (rc != 0)
        return rc;
    SWEEP_EXPECT_EQ(m->n, ITEMS);
    SWEEP_EXPECT_EQ(m->sum, ITEMS * (ITEMS + 1) / 2);
    ASYNCIO_END(m->co);
    return unbounded_round_trip();
}

static void mpsc_main_drop(void *state)
{
    mpsc_main *m = state;
    if (m->co.resume != 0 && m->co.resume != ASYNCIO_CORO_DONE && m->rx != NULL)
        asyncio_mpsc_recv_drop(&m->recv);
    if (m->prod != NULL)
        asyncio_join_handle_drop(m->prod);
    if (m->rx != NULL)
        asyncio_mpsc_receiver_drop(m->rx);
}

static int scenario_mpsc(void)
{
    static const asyncio_task_vtable vt = {mpsc_main_poll, mpsc_main_drop, NULL,
                                           sizeof(mpsc_main), 0};
    return alloc_sweep_block_on(&vt, NULL);
}

static void test_faults_mpsc_survives_every_failed_allocation(void **state)
{
    (void)state;
    alloc_sweep_scenario s = {"mpsc", scenario_mpsc, NULL};
    assert_true(alloc_sweep_run(&s) > 0);
}

/* ------------------------------------------------------------------------ */
/* Locks: the main task holds the mutex, the write lock and the only permit  */
/* while a helper task queues on all three; the main task releases them and  */
/* joins the helper.                                                         */

typedef struct locks {
    asyncio_semaphore *sem;
    asyncio_mutex *mu;
    asyncio_rwlock *rw;
} locks;

typedef struct lock_helper {
    asyncio_coro co;
    locks l;
    asyncio_semaphore_acquire acq;
    asyncio_mutex_lock lock;
    asyncio_rwlock_read rd;
    int step; /* 1 acquire, 2 lock, 3 read: which future is initialised */
} lock_helper;

static int lock_helper_poll(void *state, asyncio_context *cx, void *out)
{
    lock_helper *h = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(h->co);
    h->step = 1;
    asyncio_semaphore_acquire_init(&h->acq, h->l.sem, 1);
    ASYNCIO_AWAIT_OK(h->co, rc, asyncio_semaphore_acquire_poll(&h->acq, cx));
    SWEEP_EXPECT_EQ(asyncio_semaphore_release(h->l.sem, 1), 0);
    h->step = 2;
    asyncio_mutex_lock_init(&h->lock, h->l.mu);
    ASYNCIO_AWAIT_OK(h->co, rc, asyncio_mutex_lock_poll(&h->lock, cx));
    asyncio_mutex_unlock(h->l.mu);
    h->step = 3;
    asyncio_rwlock_read_init(&h->rd, h->l.rw);
    ASYNCIO_AWAIT_OK(h->co, rc, asyncio_rwlock_read_poll(&h->rd, cx));
    asyncio_rwlock_read_unlock(h->l.rw);
    h->step = 0;
    ASYNCIO_END(h->co);
    return 0;
}

static void lock_helper_drop(void *state)
{
    lock_helper *h = state;
    if (h->step == 1)
        asyncio_semaphore_acquire_drop(&h->acq);
    else if (h->step == 2)
        asyncio_mutex_lock_drop(&h->lock);
    else if (h->step == 3)
        asyncio_rwlock_read_drop(&h->rd);
}

static const asyncio_task_vtable lock_helper_vt = {lock_helper_poll, lock_helper_drop, NULL,
                                                   sizeof(lock_helper), 0};

typedef struct locks_main {
    asyncio_coro co;
    locks l;
    asyncio_join_handle *helper;
} locks_main;

/*
 * The locks outlive every task that may wait on them: after an early error the
 * helper can still be queued until the runtime's shutdown drops it, so the
 * scenario frees them once the runtime is gone.
 */
static locks g_locks;

static int locks_create(locks_main *m)
{
    int rc = asyncio_semaphore_new(&g_locks.sem, 1);
    if (rc == 0)
        rc = asyncio_mutex_new(&g_locks.mu);
    if (rc == 0)
        rc = asyncio_rwlock_new(&g_locks.rw);
    if (rc != 0)
        return rc;
    m->l = g_locks;
    SWEEP_EXPECT_EQ(asyncio_semaphore_try_acquire(m->l.sem, 1), 0);
    SWEEP_EXPECT_EQ(asyncio_mutex_try_lock(m->l.mu), 0);
    SWEEP_EXPECT_EQ(asyncio_rwlock_try_write(m->l.rw), 0);
    lock_helper init;
    memset(&init, 0, sizeof init);
    init.l = m->l;
    return asyncio_spawn(asyncio_runtime_current(), &lock_helper_vt, &init, &m->helper);
}

static int locks_main_poll(void *state, asyncio_context *cx, void *out)
{
    locks_main *m = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(m->co);
    rc = locks_create(m);
    if (rc != 0)
        return rc;
    ASYNCIO_YIELD(m->co, cx); /* let the helper queue on the semaphore */
    SWEEP_EXPECT_EQ(asyncio_semaphore_release(m->l.sem, 1), 0);
    asyncio_mutex_unlock(m->l.mu);
    asyncio_rwlock_write_unlock(m->l.rw);
    ASYNCIO_AWAIT(m->co, rc, asyncio_join_handle_poll(m->helper, cx, NULL));
    ASYNCIO_END(m->co);
    return rc;
}

static void locks_main_drop(void *state)
{
    locks_main *m = state;
    if (m->helper != NULL)
        asyncio_join_handle_drop(m->helper);
}

static int scenario_locks(void)
{
    static const asyncio_task_vtable vt = {locks_main_poll, locks_main_drop, NULL,
                                           sizeof(locks_main), 0};
    memset(&g_locks, 0, sizeof g_locks);
    locks_main init;
    memset(&init, 0, sizeof init);
    int rc = alloc_sweep_block_on(&vt, &init);
    if (g_locks.sem != NULL)
        SWEEP_EXPECT_EQ(asyncio_semaphore_free(g_locks.sem), 0);
    if (g_locks.mu != NULL)
        SWEEP_EXPECT_EQ(asyncio_mutex_free(g_locks.mu), 0);
    if (g_locks.rw != NULL)
        SWEEP_EXPECT_EQ(asyncio_rwlock_free(g_locks.rw), 0);
    return rc;
}

static void test_faults_locks_survive_every_failed_allocation(void **state)
{
    (void)state;
    alloc_sweep_scenario s = {"semaphore_mutex_rwlock", scenario_locks, NULL};
    assert_true(alloc_sweep_run(&s) > 0);
}

/* ------------------------------------------------------------------------ */
/* broadcast, watch and once_cell in one task                                */

typedef struct chan_main {
    asyncio_coro co;
    asyncio_broadcast_sender *btx;
    asyncio_broadcast_receiver *brx[2];
    asyncio_broadcast_recv brecv;
    asyncio_watch_sender *wtx;
    asyncio_watch_receiver *wrx;
    asyncio_watch_changed changed;
    asyncio_once_cell *cell;
    asyncio_once_cell_get_or_init goi;
    int v, i, j, live; /* live: 1 brecv, 2 changed, 3 goi initialised */
    bool init_turn;
} chan_main;

static int chan_setup(chan_main *m)
{
    int zero = 0, rc = asyncio_broadcast_channel(&m->btx, &m->brx[0], sizeof(int), 4);
    if (rc == 0)
        rc = asyncio_broadcast_subscribe(m->btx, &m->brx[1]);
    if (rc == 0)
        rc = asyncio_watch_channel(&m->wtx, &m->wrx, sizeof(int), &zero);
    if (rc == 0)
        rc = asyncio_once_cell_new(&m->cell, sizeof(int));
    return rc;
}

static int chan_main_poll(void *state, asyncio_context *cx, void *out)
{
    chan_main *m = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(m->co);
    rc = chan_setup(m);
    if (rc != 0)
        return rc;
    for (m->i = 1; m->i <= 2; m->i++) {
        rc = asyncio_broadcast_send(m->btx, &m->i);
        if (rc < 0)
            return rc;
    }
    for (m->j = 0; m->j < 2; m->j++) {
        for (m->i = 1; m->i <= 2; m->i++) {
            asyncio_broadcast_recv_init(&m->brecv, m->brx[m->j]);
            m->live = 1;
            ASYNCIO_AWAIT(m->co, rc, asyncio_broadcast_recv_poll(&m->brecv, cx, &m->v));
            asyncio_broadcast_recv_drop(&m->brecv);
            m->live = 0;
            if (rc != 0)
                return rc;
            SWEEP_EXPECT_EQ(m->v, m->i);
        }
    }
    m->v = 42;
    rc = asyncio_watch_send(m->wtx, &m->v);
    if (rc != 0)
        return rc;
    asyncio_watch_changed_init(&m->changed, m->wrx);
    m->live = 2;
    ASYNCIO_AWAIT(m->co, rc, asyncio_watch_changed_poll(&m->changed, cx));
    asyncio_watch_changed_drop(&m->changed);
    m->live = 0;
    if (rc != 0)
        return rc;
    SWEEP_EXPECT_EQ(asyncio_watch_borrow_and_update(m->wrx, &m->v), 0);
    SWEEP_EXPECT_EQ(m->v, 42);
    asyncio_once_cell_get_or_init_init(&m->goi, m->cell);
    m->live = 3;
    ASYNCIO_AWAIT(m->co, rc, asyncio_once_cell_get_or_init_poll(&m->goi, cx, &m->v, &m->init_turn));
    if (rc == 0 && m->init_turn) {
        m->v = 7;
        rc = asyncio_once_cell_init_finish(&m->goi, &m->v);
    }
    asyncio_once_cell_get_or_init_drop(&m->goi);
    m->live = 0;
    if (rc != 0)
        return rc;
    SWEEP_EXPECT_EQ(asyncio_once_cell_get(m->cell, &m->v), 0);
    SWEEP_EXPECT_EQ(m->v, 7);
    ASYNCIO_END(m->co);
    return 0;
}

static void chan_main_drop(void *state)
{
    chan_main *m = state;
    if (m->live == 1)
        asyncio_broadcast_recv_drop(&m->brecv);
    else if (m->live == 2)
        asyncio_watch_changed_drop(&m->changed);
    else if (m->live == 3)
        asyncio_once_cell_get_or_init_drop(&m->goi);
    for (int i = 0; i < 2; i++)
        if (m->brx[i] != NULL)
            asyncio_broadcast_receiver_drop(m->brx[i]);
    if (m->btx != NULL)
        asyncio_broadcast_sender_drop(m->btx);
    if (m->wrx != NULL)
        asyncio_watch_receiver_drop(m->wrx);
    if (m->wtx != NULL)
        asyncio_watch_sender_drop(m->wtx);
    if (m->cell != NULL)
        SWEEP_EXPECT_EQ(asyncio_once_cell_free(m->cell), 0);
}

static int scenario_channels(void)
{
    static const asyncio_task_vtable vt = {chan_main_poll, chan_main_drop, NULL,
                                           sizeof(chan_main), 0};
    return alloc_sweep_block_on(&vt, NULL);
}

static void test_faults_broadcast_watch_once_cell_survive_every_failed_allocation(void **state)
{
    (void)state;
    alloc_sweep_scenario s = {"broadcast_watch_once_cell", scenario_channels, NULL};
    assert_true(alloc_sweep_run(&s) > 0);
}

/* ------------------------------------------------------------------------ */
/* oneshot, notify, barrier and a cancel-token tree between two tasks: both   */
/* meet at a barrier, the helper sends a oneshot value, waits to be notified  */
/* and then for its child token to be cancelled through the parent.          */

static asyncio_notify *g_notify;
static asyncio_barrier *g_barrier; /* both outlive the tasks: freed after the runtime */

typedef struct meet_helper {
    asyncio_coro co;
    asyncio_oneshot_sender *tx;
    asyncio_cancel_token *child;
    asyncio_barrier_wait bw;
    asyncio_notified nf;
    asyncio_cancelled cf;
    int live; /* 1 bw, 2 nf, 3 cf initialised */
    bool leader;
} meet_helper;

static int meet_helper_poll(void *state, asyncio_context *cx, void *out)
{
    meet_helper *h = state;
    int rc = 0, five = 5;
    (void)out;
    ASYNCIO_BEGIN(h->co);
    asyncio_barrier_wait_init(&h->bw, g_barrier);
    h->live = 1;
    ASYNCIO_AWAIT(h->co, rc, asyncio_barrier_wait_poll(&h->bw, cx, &h->leader));
    asyncio_barrier_wait_drop(&h->bw);
    h->live = 0;
    if (rc != 0)
        return rc;
    rc = asyncio_oneshot_send(h->tx, &five);
    h->tx = NULL; /* released by the send, in every case */
    if (rc != 0)
        return rc;
    asyncio_notified_init(&h->nf, g_notify);
    h->live = 2;
    ASYNCIO_AWAIT(h->co, rc, asyncio_notified_poll(&h->nf, cx));
    asyncio_notified_drop(&h->nf);
    h->live = 0;
    if (rc != 0)
        return rc;
    asyncio_cancelled_init(&h->cf, h->child);
    h->live = 3;
    ASYNCIO_AWAIT(h->co, rc, asyncio_cancelled_poll(&h->cf, cx));
    asyncio_cancelled_drop(&h->cf);
    h->live = 0;
    ASYNCIO_END(h->co);
    return rc;
}

static void meet_helper_drop(void *state)
{
    meet_helper *h = state;
    if (h->live == 1)
        asyncio_barrier_wait_drop(&h->bw);
    else if (h->live == 2)
        asyncio_notified_drop(&h->nf);
    else if (h->live == 3)
        asyncio_cancelled_drop(&h->cf);
    asyncio_oneshot_sender_drop(h->tx);
    asyncio_cancel_token_drop(h->child);
}

static const asyncio_task_vtable meet_helper_vt = {meet_helper_poll, meet_helper_drop, NULL,
                                                   sizeof(meet_helper), 0};

typedef struct meet_main {
    asyncio_coro co;
    asyncio_oneshot_receiver *rx;
    asyncio_cancel_token *parent;
    asyncio_join_handle *helper;
    asyncio_barrier_wait bw;
    bool bw_live, leader;
    int v;
} meet_main;

static int meet_start(meet_main *m)
{
    meet_helper h;
    memset(&h, 0, sizeof h);
    int rc = asyncio_notify_new(&g_notify);
    if (rc == 0)
        rc = asyncio_barrier_new(&g_barrier, 2);
    if (rc == 0)
        rc = asyncio_cancel_token_new(&m->parent);
    if (rc == 0)
        rc = asyncio_cancel_token_child(m->parent, &h.child);
    if (rc == 0)
        rc = asyncio_oneshot_channel(&h.tx, &m->rx, sizeof(int));
    if (rc == 0)
        rc = asyncio_spawn(asyncio_runtime_current(), &meet_helper_vt, &h, &m->helper);
    if (rc != 0) { /* the helper does not exist: what it would own is ours */
        if (h.tx != NULL)
            asyncio_oneshot_sender_drop(h.tx);
        if (h.child != NULL)
            asyncio_cancel_token_drop(h.child);
    }
    return rc;
}

static int meet_main_poll(void *state, asyncio_context *cx, void *out)
{
    meet_main *m = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(m->co);
    rc = meet_start(m);
    if (rc != 0)
        return rc;
    asyncio_barrier_wait_init(&m->bw, g_barrier);
    m->bw_live = true;
    ASYNCIO_AWAIT(m->co, rc, asyncio_barrier_wait_poll(&m->bw, cx, &m->leader));
    asyncio_barrier_wait_drop(&m->bw);
    m->bw_live = false;
    if (rc != 0)
        return rc;
    ASYNCIO_AWAIT(m->co, rc, asyncio_oneshot_recv_poll(m->rx, cx, &m->v));
    if (rc != 0)
        return rc;
    SWEEP_EXPECT_EQ(m->v, 5);
    asyncio_notify_one(g_notify);
    asyncio_cancel_token_cancel(m->parent);
    ASYNCIO_AWAIT(m->co, rc, asyncio_join_handle_poll(m->helper, cx, NULL));
    ASYNCIO_END(m->co);
    return rc;
}

static void meet_main_drop(void *state)
{
    meet_main *m = state;
    if (m->bw_live)
        asyncio_barrier_wait_drop(&m->bw);
    if (m->rx != NULL)
        asyncio_oneshot_receiver_drop(m->rx);
    if (m->parent != NULL)
        asyncio_cancel_token_drop(m->parent);
    if (m->helper != NULL)
        asyncio_join_handle_drop(m->helper);
}

static int scenario_meet(void)
{
    static const asyncio_task_vtable vt = {meet_main_poll, meet_main_drop, NULL,
                                           sizeof(meet_main), 0};
    g_notify = NULL;
    g_barrier = NULL;
    int rc = alloc_sweep_block_on(&vt, NULL);
    if (g_notify != NULL)
        SWEEP_EXPECT_EQ(asyncio_notify_free(g_notify), 0);
    if (g_barrier != NULL)
        SWEEP_EXPECT_EQ(asyncio_barrier_free(g_barrier), 0);
    return rc;
}

static void test_faults_oneshot_notify_barrier_cancel_survive_every_failed_allocation(
    void **state)
{
    (void)state;
    alloc_sweep_scenario s = {"oneshot_notify_barrier_cancel", scenario_meet, NULL};
    assert_true(alloc_sweep_run(&s) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faults_mpsc_survives_every_failed_allocation),
        cmocka_unit_test(test_faults_locks_survive_every_failed_allocation),
        cmocka_unit_test(test_faults_broadcast_watch_once_cell_survive_every_failed_allocation),
        cmocka_unit_test(test_faults_oneshot_notify_barrier_cancel_survive_every_failed_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
