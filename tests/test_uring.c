/*
 * White-box: the raw io_uring layer (src/poller/uring_ring.c) and the uring backend's
 * per-opcode decision. The poll.h contract on uring is proven by the whole matrix
 * (ctest *.uring entries); the fallback when io_uring is refused by the seccomp entries
 * (*.uring-fallback-*). Here: the SQ wraps and, when full, submits by itself; every CQE is
 * read once; the opcode probe; a ring without an opcode the backend needs is refused.
 */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "platform/thread.h"
#include "poller/uring_ring.h"

/* A ring of `mode`, or skip when this kernel / sandbox refuses io_uring (the fallback suites cover it). */
static void ring_mode_or_skip(asyncio__uring *r, unsigned sq, unsigned cq, unsigned mode)
{
    int rc = asyncio__uring_init(r, sq, cq, mode);
    if (rc == ASYNCIO_ENOSYS || rc == ASYNCIO_EPERM || rc == ASYNCIO_ENOTSUP) {
        print_message("skipped: io_uring unavailable (%s)\n", asyncio_err_name(rc));
        skip();
    }
    assert_ok(rc);
}

static void ring_or_skip(asyncio__uring *r, unsigned sq, unsigned cq)
{
    ring_mode_or_skip(r, sq, cq, ASYNCIO__URING_PLAIN);
}

/* A bound ring (SINGLE_ISSUER | DEFER_TASKRUN) made by this thread, or skip before 6.1. */
static void bound_ring_or_skip(asyncio__uring *r)
{
    ring_mode_or_skip(r, 16, 64, ASYNCIO__URING_BOUND);
    if (!r->deferred) {
        asyncio__uring_close(r);
        print_message("skipped: no DEFER_TASKRUN on this kernel (a COOP ring was made)\n");
        skip();
    }
}

/* Queues one NOP with user_data ud (the caller is the ring's only user at that moment). */
static void queue_nop(asyncio__uring *r, uint64_t ud)
{
    int err = 0;
    struct io_uring_sqe *sqe = asyncio__uring_sqe(r, &err);
    assert_non_null(sqe);
    sqe->opcode = IORING_OP_NOP;
    sqe->user_data = ud;
    asyncio__uring_publish(r);
}

/* Reads every ready CQE; checks each NOP's user_data is seen once. Returns how many. */
static unsigned drain_nops(asyncio__uring *r, unsigned char *seen, unsigned n)
{
    unsigned got = 0;
    unsigned head = atomic_load_explicit(r->cq_head, memory_order_relaxed);
    unsigned tail = atomic_load_explicit(r->cq_tail, memory_order_acquire);
    for (; head != tail; head++, got++) {
        const struct io_uring_cqe *c = &r->cqes[head & r->cq_mask];
        assert_int_equal(c->res, 0);
        assert_true(c->user_data < n);
        assert_int_equal(seen[c->user_data]++, 0);
    }
    atomic_store_explicit(r->cq_head, head, memory_order_release);
    return got;
}

static void test_uring_full_sq_submits_by_itself_and_every_cqe_is_read_once(void **state)
{
    (void)state;
    enum { N = 1000 }; /* ~62 times the SQ, with a CQ of 64: waits in between drain it */
    asyncio__uring r;
    ring_or_skip(&r, 16, 64);
    unsigned char seen[N] = {0};
    unsigned done = 0;
    for (unsigned i = 0; i < N; i++) {
        int err = 0;
        struct io_uring_sqe *sqe = asyncio__uring_sqe(&r, &err);
        assert_non_null(sqe);
        sqe->opcode = IORING_OP_NOP;
        sqe->user_data = i;
        asyncio__uring_publish(&r);
        if (i % 32 == 31) { /* keep the CQ from overflowing (NODROP would hold the rest) */
            assert_ok(asyncio__uring_submit(&r));
            done += drain_nops(&r, seen, N);
        }
    }
    assert_ok(asyncio__uring_submit(&r));
    assert_int_equal(asyncio__uring_pending(&r), 0);
    while (done < N) {
        assert_ok(asyncio__uring_enter(&r, 0, true, 1000));
        done += drain_nops(&r, seen, N);
    }
    assert_int_equal(done, N);
    assert_int_equal(asyncio__uring_cq_ready(&r), 0);
    asyncio__uring_close(&r);
}

static void test_uring_wait_times_out_with_nothing_in_flight(void **state)
{
    (void)state;
    asyncio__uring r;
    ring_or_skip(&r, 8, 16);
    assert_ok(asyncio__uring_enter(&r, 0, true, 1)); /* -ETIME is a plain timeout: 0 */
    assert_int_equal(asyncio__uring_cq_ready(&r), 0);
    asyncio__uring_close(&r);
}

static void test_uring_probe_knows_the_opcodes_and_a_missing_one_refuses_the_backend(void **state)
{
    (void)state;
    asyncio__uring r;
    ring_or_skip(&r, 8, 16);
    assert_true(asyncio__uring_has_op(&r, IORING_OP_NOP));
    assert_true(asyncio__uring_has_op(&r, IORING_OP_POLL_ADD));
    assert_false(asyncio__uring_has_op(&r, 255)); /* no such opcode (yet) */
    assert_false(asyncio__uring_has_op(&r, 4096));
    assert_true(asyncio__uring_poller_usable(&r));

    /* As a kernel without ASYNC_CANCEL would probe: the backend is refused (epoll instead). */
    asyncio__uring hidden = r;
    hidden.ops[IORING_OP_ASYNC_CANCEL / 64] &= ~(UINT64_C(1) << (IORING_OP_ASYNC_CANCEL % 64));
    assert_false(asyncio__uring_poller_usable(&hidden));
    hidden = r;
    hidden.ops[IORING_OP_POLL_ADD / 64] &= ~(UINT64_C(1) << (IORING_OP_POLL_ADD % 64));
    assert_false(asyncio__uring_poller_usable(&hidden));
    hidden = r;
    hidden.features &= ~(uint32_t)IORING_FEAT_RSRC_TAGS; /* before 5.13: no multishot poll */
    assert_false(asyncio__uring_poller_usable(&hidden));
    asyncio__uring_close(&r);
}

typedef struct foreign_try {
    asyncio__uring *r;
    int enter_rc, wait_rc;
} foreign_try;

/* Another thread: may not enter a bound ring; what it queues waits for the owner. */
static void *foreign_thread(void *arg)
{
    foreign_try *t = arg;
    queue_nop(t->r, 7);
    t->enter_rc = asyncio__uring_enter(t->r, asyncio__uring_pending(t->r), true, 1000);
    t->wait_rc = asyncio__uring_wait_cqes(t->r, 1, 1000);
    return NULL;
}

static void test_bound_ring_refuses_other_threads_and_its_owner_submits_what_they_queued(
    void **state)
{
    (void)state;
    asyncio__uring r;
    bound_ring_or_skip(&r);
    foreign_try t = {.r = &r};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, foreign_thread, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(t.enter_rc, ASYNCIO_EEXIST); /* refused without a system call */
    assert_int_equal(t.wait_rc, ASYNCIO_EEXIST);
    assert_int_equal(asyncio__uring_pending(&r), 1); /* still queued, not lost */
    assert_ok(asyncio__uring_enter(&r, asyncio__uring_pending(&r), true, 1000)); /* the owner */
    assert_int_equal(asyncio__uring_cq_ready(&r), 1);
    unsigned head = atomic_load_explicit(r.cq_head, memory_order_relaxed);
    assert_int_equal(r.cqes[head & r.cq_mask].user_data, 7);
    atomic_store_explicit(r.cq_head, head + 1, memory_order_release);
    asyncio__uring_close(&r);
}

typedef struct late_writer {
    int fd;
} late_writer;

static void *write_late(void *arg)
{
    late_writer *w = arg;
    asyncio__sleep_ms(20);
    assert_int_equal(write(w->fd, "x", 1), 1);
    return NULL;
}

/*
 * DEFER_TASKRUN: a poll's completion (task work) is posted when the owner
 * waits, however late the event comes, from another thread.
 */
static void test_bound_ring_posts_a_late_completion_when_its_owner_waits(void **state)
{
    (void)state;
    asyncio__uring r;
    bound_ring_or_skip(&r);
    int p[2];
    assert_int_equal(pipe(p), 0);
    int err = 0;
    struct io_uring_sqe *sqe = asyncio__uring_sqe(&r, &err);
    assert_non_null(sqe);
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = p[0];
    sqe->poll32_events = POLLIN;
    sqe->user_data = 30;
    asyncio__uring_publish(&r);
    assert_ok(asyncio__uring_submit(&r));
    late_writer w = {p[1]};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, write_late, &w), 0);
    while (asyncio__uring_cq_ready(&r) == 0)
        assert_ok(asyncio__uring_enter(&r, 0, true, -1));
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(asyncio__uring_cq_ready(&r), 1);
    unsigned head = atomic_load_explicit(r.cq_head, memory_order_relaxed);
    assert_int_equal(r.cqes[head & r.cq_mask].user_data, 30);
    assert_true(r.cqes[head & r.cq_mask].res & POLLIN);
    atomic_store_explicit(r.cq_head, head + 1, memory_order_release);
    close(p[0]);
    close(p[1]);
    asyncio__uring_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_uring_full_sq_submits_by_itself_and_every_cqe_is_read_once),
        support_test(test_uring_wait_times_out_with_nothing_in_flight),
        support_test(test_uring_probe_knows_the_opcodes_and_a_missing_one_refuses_the_backend),
        support_test(test_bound_ring_refuses_other_threads_and_its_owner_submits_what_they_queued),
        support_test(test_bound_ring_posts_a_late_completion_when_its_owner_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
