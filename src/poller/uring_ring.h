/*
 * One io_uring instance over the raw system calls (no liburing): setup, the
 * mmapped rings, queueing SQEs, io_uring_enter, reading CQEs, and the
 * opcode probe. Used by the uring poller backend (uring.c); the mechanism
 * is kept apart so a completion path can share it.
 *
 * Memory ordering (io_uring_setup(2), "the kernel documents"): we are the
 * only writer of the SQ tail and the CQ head, the kernel of the SQ head and
 * the CQ tail.
 *   - an SQE is written, then the SQ tail is stored with RELEASE, pairing with
 *     the kernel's acquire load of the tail when it submits;
 *   - the SQ head is loaded with ACQUIRE (pairs with the kernel's release
 *     store when it consumed SQEs) before a slot is reused;
 *   - the CQ tail is loaded with ACQUIRE (pairs with the kernel's release
 *     store after it wrote the CQEs) before CQEs are read;
 *   - the CQ head is stored with RELEASE after the CQEs were read, so the
 *     kernel does not overwrite a CQE we are still reading.
 *
 * Thread-safety: none here. The owner (uring.c) serialises SQ use with its
 * lock; the CQ is read by the one thread that waits.
 */
#ifndef ASYNCIO_POLLER_URING_RING_H
#define ASYNCIO_POLLER_URING_RING_H

#include <linux/io_uring.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct asyncio__uring {
    int fd;
    void *ring_map; /* SQ and CQ rings (IORING_FEAT_SINGLE_MMAP: one mapping) */
    size_t ring_len;
    struct io_uring_sqe *sqes;
    size_t sqes_len;

    _Atomic unsigned *sq_head; /* kernel-written */
    _Atomic unsigned *sq_tail; /* ours */
    _Atomic unsigned *sq_flags;
    unsigned *sq_array;
    unsigned sq_mask, sq_entries;
    unsigned sq_local_tail; /* next free slot (== *sq_tail: every SQE is published at once) */

    _Atomic unsigned *cq_head; /* ours */
    _Atomic unsigned *cq_tail; /* kernel-written */
    _Atomic unsigned *cq_flags; /* ours (IORING_CQ_EVENTFD_DISABLED) */
    struct io_uring_cqe *cqes;
    unsigned cq_mask, cq_entries;

    /*
     * The first thread that submitted (the address of a thread-local), and
     * whether any other thread has submitted since: a request ends in the
     * context of the thread that submitted it (see asyncio__uring_barrier).
     */
    _Atomic(const void *) first_submitter;
    atomic_bool many_submitters;

    uint32_t features;      /* io_uring_params.features */
    bool coop;  /* set up with COOP_TASKRUN | TASKRUN_FLAG (asyncio__uring_init) */
    bool single; /* set up with SINGLE_ISSUER (a worker's ring: its owner alone submits) */
    uint64_t ops[256 / 64]; /* IORING_REGISTER_PROBE: bit n set = opcode n supported */
} asyncio__uring;

/*
 * Creates a ring with `sq_entries` SQ and `cq_entries` CQ slots, and probes
 * its opcodes. 0, or a negative error: the io_uring_setup error as is
 * (ASYNCIO_ENOSYS without io_uring, ASYNCIO_EPERM when seccomp or
 * kernel.io_uring_disabled forbids it, ASYNCIO_ENOMEM, ASYNCIO_EMFILE),
 * ASYNCIO_ENOTSUP when the kernel lacks a feature this file relies on
 * (single mmap, no-drop CQ, extended enter arguments, the probe itself).
 *
 * `mode` ASYNCIO__URING_COOP: ask for IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG
 * (5.19; without them on an older kernel: r->coop says which). The kernel
 * then no longer interrupts a submitter running in user space (an IPI) to
 * post its completions: they are posted at that thread's next entry into
 * the kernel, and a sleeping submitter is still woken. Right only when the
 * thread that waits for completions is the one that submits (nearly) every
 * request, and it must then enter the kernel when
 * asyncio__uring_taskrun_pending() says so (asyncio__uring_enter does).
 */
#define ASYNCIO__URING_PLAIN  0u
#define ASYNCIO__URING_COOP   1u
#define ASYNCIO__URING_WORKER 2u
/*
 * `mode` ASYNCIO__URING_WORKER: a ring that one thread alone submits to and
 * reaps (a multi-thread runtime worker's own ring, src/reactor/comp.c):
 * IORING_SETUP_SINGLE_ISSUER (6.0; the kernel refuses io_uring_enter and
 * io_uring_register from every other thread, EEXIST) with COOP_TASKRUN |
 * TASKRUN_FLAG. Not DEFER_TASKRUN: with it the kernel signals an eventfd
 * registered on the ring (IORING_REGISTER_EVENTFD) through an RCU callback
 * when work is deferred to the owner, 14-21 ms late (measured on 6.18), and
 * a sleeping owner could only be woken that way or by sleeping in its own
 * ring; with COOP_TASKRUN the kernel wakes the sleeping owner to post its
 * completions, and the eventfd is signalled at once (21 us).
 * ASYNCIO_ENOTSUP (no ring) on a kernel without them.
 */
int asyncio__uring_init(asyncio__uring *r, unsigned sq_entries, unsigned cq_entries,
                        unsigned mode);

/*
 * Whether completions wait as task work for a kernel entry of their
 * submitter (IORING_SQ_TASKRUN; only on a COOP or WORKER ring, both coop): a non-blocking
 * wait must then enter with GETEVENTS to have them posted.
 */
static inline bool asyncio__uring_taskrun_pending(const asyncio__uring *r)
{
    return r->coop &&
           (atomic_load_explicit(r->sq_flags, memory_order_relaxed) & IORING_SQ_TASKRUN);
}

/* Unmaps and closes. The kernel cancels whatever is still in flight. */
void asyncio__uring_close(asyncio__uring *r);

/*
 * Whether every request on r was submitted by the calling thread (no other
 * thread has ever submitted: first_submitter, many_submitters). Then all of
 * their completion work runs on this thread.
 */
bool asyncio__uring_sole_submitter(const asyncio__uring *r);

/* io_uring_register(op, arg, nr): 0 or a negative error. */
int asyncio__uring_register(asyncio__uring *r, unsigned op, void *arg, unsigned nr);

/* Whether the kernel supports `opcode` (IORING_REGISTER_PROBE). */
bool asyncio__uring_has_op(const asyncio__uring *r, unsigned opcode);

/*
 * A zeroed SQE, published (it is submitted by the next enter). When the SQ
 * is full, the queued SQEs are submitted first (one io_uring_enter). NULL
 * and *err set if that submission failed.
 */
struct io_uring_sqe *asyncio__uring_sqe(asyncio__uring *r, int *err);

/* Publishes SQEs filled since the last call (release store of the SQ tail). */
void asyncio__uring_publish(asyncio__uring *r);

/*
 * Published SQEs the kernel has not consumed yet (reads only atomics: no
 * lock needed). Several threads may each
 * ask io_uring_enter to submit this many: the kernel consumes SQEs in
 * order, up to what is there, so asking for more than remains is harmless
 * and nothing is ever submitted twice or left behind.
 */
unsigned asyncio__uring_pending(asyncio__uring *r);

/*
 * io_uring_enter: submits `to_submit` SQEs and, with wait, waits for one
 * CQE at most timeout_ms (-1: no limit). 0, or a negative error (EINTR,
 * EBUSY, EAGAIN: SQEs not submitted stay queued for the next enter; a wait
 * that timed out returns 0).
 */
int asyncio__uring_enter(asyncio__uring *r, unsigned to_submit, bool wait, int timeout_ms);

/*
 * Waits (submitting nothing) until the CQ holds at least `count` CQEs, at
 * most timeout_ms. Any thread: it only waits, it reads no CQE. 0 or a
 * negative error (a timeout is 0).
 */
int asyncio__uring_wait_cqes(asyncio__uring *r, unsigned count, int timeout_ms);

/*
 * Caller holds the SQ owner's lock. Once a request's last CQE is visible,
 * the thread that submitted it may still be about to drop the request's
 * file reference (the kernel posts a batch's CQEs, wakes waiters, then
 * frees the batch, all under the ring's internal lock). Submitting a NOP
 * takes that lock, so when this returns that free is done. A no-op (no
 * system call) while only the calling thread has ever submitted.
 */
void asyncio__uring_barrier(asyncio__uring *r);

/* Submits every pending SQE now, without waiting. 0 or a negative error. */
int asyncio__uring_submit(asyncio__uring *r);

/*
 * Whether the poller backend (uring.c) can run on this ring: POLL_ADD and
 * ASYNC_CANCEL in the probe, multishot poll (5.13). If not, its init fails
 * with ASYNCIO_ENOTSUP and the poller core falls back to epoll.
 */
bool asyncio__uring_poller_usable(const asyncio__uring *r);

/* CQEs ready to be read (acquire), and whether the kernel holds overflowed ones. */
unsigned asyncio__uring_cq_ready(asyncio__uring *r);
bool asyncio__uring_cq_overflowed(asyncio__uring *r);

#endif
