/*
 * White-box: the raw io_uring layer (src/poller/uring_ring.c) and the uring backend's
 * per-opcode decision. The poll.h contract on uring is proven by the whole matrix
 * (ctest *.uring entries); the fallback when io_uring is refused by the seccomp entries
 * (*.uring-fallback-*). Here: the SQ wraps and, when full, submits by itself; every CQE is
 * read once; the opcode probe; a ring without an opcode the backend needs is refused.
 */
#include "support.h"

#include <errno.h>
#include <string.h>

#include "poller/uring_ring.h"

/* A ring, or skip when this kernel / sandbox refuses io_uring (the fallback suites cover it). */
static void ring_or_skip(asyncio__uring *r, unsigned sq, unsigned cq)
{
    int rc = asyncio__uring_init(r, sq, cq, ASYNCIO__URING_PLAIN);
    if (rc == ASYNCIO_ENOSYS || rc == ASYNCIO_EPERM || rc == ASYNCIO_ENOTSUP) {
        print_message("skipped: io_uring unavailable (%s)\n", asyncio_err_name(rc));
        skip();
    }
    assert_ok(rc);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_uring_full_sq_submits_by_itself_and_every_cqe_is_read_once),
        support_test(test_uring_wait_times_out_with_nothing_in_flight),
        support_test(test_uring_probe_knows_the_opcodes_and_a_missing_one_refuses_the_backend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
