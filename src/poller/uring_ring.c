/*
 * io_uring over the raw system calls (see uring_ring.h for the protocol and
 * its memory ordering).
 */
#include "poller/uring_ring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "util/alloc.h"

/* Features this file relies on; a kernel without them is not used (-ENOTSUP). */
#define URING_REQUIRED_FEATURES (IORING_FEAT_SINGLE_MMAP | IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG)

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
    long rc = syscall(__NR_io_uring_setup, entries, p);
    return rc < 0 ? -errno : (int)rc;
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags,
                     struct io_uring_getevents_arg *arg)
{
    long rc = syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, arg, sizeof *arg);
    return rc < 0 ? -errno : (int)rc;
}

static int sys_register(int fd, unsigned op, void *arg, unsigned nr)
{
    long rc = syscall(__NR_io_uring_register, fd, op, arg, nr);
    return rc < 0 ? -errno : (int)rc;
}

/* Ring pointers at the kernel-given offsets. */
#define AT(map, off) ((void *)((char *)(map) + (off)))

static int map_rings(asyncio__uring *r, const struct io_uring_params *p)
{
    size_t sq_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
    size_t cq_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
    r->ring_len = sq_len > cq_len ? sq_len : cq_len;
    r->ring_map = mmap(NULL, r->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                       IORING_OFF_SQ_RING);
    if (r->ring_map == MAP_FAILED)
        return -errno;
    r->sqes_len = p->sq_entries * sizeof(struct io_uring_sqe);
    r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                   IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED) {
        int rc = -errno;
        munmap(r->ring_map, r->ring_len);
        return rc;
    }
    void *m = r->ring_map;
    r->sq_head = AT(m, p->sq_off.head);
    r->sq_tail = AT(m, p->sq_off.tail);
    r->sq_flags = AT(m, p->sq_off.flags);
    r->sq_array = AT(m, p->sq_off.array);
    r->sq_mask = *(unsigned *)AT(m, p->sq_off.ring_mask);
    r->sq_entries = p->sq_entries;
    r->sq_local_tail = atomic_load_explicit(r->sq_tail, memory_order_relaxed);
    r->cq_head = AT(m, p->cq_off.head);
    r->cq_tail = AT(m, p->cq_off.tail);
    r->cq_flags = AT(m, p->cq_off.flags);
    r->cqes = AT(m, p->cq_off.cqes);
    r->cq_mask = *(unsigned *)AT(m, p->cq_off.ring_mask);
    r->cq_entries = p->cq_entries;
    return 0;
}

static int probe_ops(asyncio__uring *r)
{
    size_t len = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *probe = asyncio__calloc(1, len);
    if (probe == NULL)
        return ASYNCIO_ENOMEM;
    int rc = sys_register(r->fd, IORING_REGISTER_PROBE, probe, 256);
    if (rc >= 0) {
        for (unsigned i = 0; i < probe->ops_len && i < 256; i++) {
            if (probe->ops[i].flags & IO_URING_OP_SUPPORTED)
                r->ops[i / 64] |= UINT64_C(1) << (i % 64);
        }
        rc = 0;
    } else {
        rc = ASYNCIO_ENOTSUP; /* before 5.6, or forbidden: treat the ring as unusable */
    }
    asyncio__free(probe);
    return rc;
}

static int setup(unsigned sq_entries, unsigned cq_entries, unsigned mode,
                 struct io_uring_params *p)
{
    /*
     * SUBMIT_ALL (5.18): one bad SQE does not stop the batch. COOP_TASKRUN |
     * TASKRUN_FLAG (5.19) when asked (asyncio__uring_init). Older kernels
     * reject flags they do not know with EINVAL: the next try has fewer. A
     * worker ring has one try: without SINGLE_ISSUER (6.0) it is not made.
     */
    const uint32_t base = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    const uint32_t coop_flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    if (mode == ASYNCIO__URING_WORKER) {
        *p = (struct io_uring_params){
            .flags = base | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | coop_flags,
            .cq_entries = cq_entries,
        };
        int fd = sys_setup(sq_entries, p);
        return fd == ASYNCIO_EINVAL ? ASYNCIO_ENOTSUP : fd;
    }
    bool coop = mode == ASYNCIO__URING_COOP;
    const uint32_t tries[] = {
        base | IORING_SETUP_SUBMIT_ALL | (coop ? coop_flags : 0),
        base | IORING_SETUP_SUBMIT_ALL,
        base,
    };
    int fd = ASYNCIO_EINVAL;
    for (size_t i = coop ? 0 : 1; i < ASYNCIO_ARRAY_LEN(tries) && fd == ASYNCIO_EINVAL; i++) {
        *p = (struct io_uring_params){.flags = tries[i], .cq_entries = cq_entries};
        fd = sys_setup(sq_entries, p);
    }
    return fd;
}

int asyncio__uring_init(asyncio__uring *r, unsigned sq_entries, unsigned cq_entries,
                        unsigned mode)
{
    *r = (asyncio__uring){.fd = -1};
    atomic_init(&r->first_submitter, NULL);
    atomic_init(&r->many_submitters, false);
    struct io_uring_params p;
    int fd = setup(sq_entries, cq_entries, mode, &p);
    if (fd < 0)
        return fd;
    r->fd = fd;
    r->features = p.features;
    r->coop = (p.flags & IORING_SETUP_COOP_TASKRUN) != 0;
    r->single = (p.flags & IORING_SETUP_SINGLE_ISSUER) != 0;
    int rc =
        (p.features & URING_REQUIRED_FEATURES) == URING_REQUIRED_FEATURES ? 0 : ASYNCIO_ENOTSUP;
    if (rc == 0)
        rc = probe_ops(r);
    if (rc == 0)
        rc = map_rings(r, &p);
    if (rc < 0) {
        close(fd);
        r->fd = -1;
    }
    return rc;
}

void asyncio__uring_close(asyncio__uring *r)
{
    if (r->fd < 0)
        return;
    munmap(r->sqes, r->sqes_len);
    munmap(r->ring_map, r->ring_len);
    close(r->fd);
    r->fd = -1;
}

int asyncio__uring_register(asyncio__uring *r, unsigned op, void *arg, unsigned nr)
{
    int rc = sys_register(r->fd, op, arg, nr);
    return rc < 0 ? rc : 0;
}

bool asyncio__uring_has_op(const asyncio__uring *r, unsigned opcode)
{
    return opcode < 256 && (r->ops[opcode / 64] >> (opcode % 64) & 1) != 0;
}

struct io_uring_sqe *asyncio__uring_sqe(asyncio__uring *r, int *err)
{
    unsigned head = atomic_load_explicit(r->sq_head, memory_order_acquire);
    if (r->sq_local_tail - head == r->sq_entries) {
        /* Full: everything in it is published and pending; submit it now. */
        int rc = asyncio__uring_submit(r);
        head = atomic_load_explicit(r->sq_head, memory_order_acquire);
        if (r->sq_local_tail - head == r->sq_entries) {
            *err = rc < 0 ? rc : ASYNCIO_ENOSPC;
            return NULL;
        }
    }
    unsigned idx = r->sq_local_tail & r->sq_mask;
    struct io_uring_sqe *sqe = &r->sqes[idx];
    memset(sqe, 0, sizeof *sqe);
    r->sq_array[idx] = idx;
    r->sq_local_tail++;
    return sqe;
}

void asyncio__uring_publish(asyncio__uring *r)
{
    /* Release: the SQE contents are visible before the kernel sees the new tail. */
    atomic_store_explicit(r->sq_tail, r->sq_local_tail, memory_order_release);
}

unsigned asyncio__uring_pending(asyncio__uring *r)
{
    /* The published tail (an atomic): callable without the SQ owner's lock. */
    unsigned tail = atomic_load_explicit(r->sq_tail, memory_order_relaxed);
    return tail - atomic_load_explicit(r->sq_head, memory_order_acquire);
}

/* One per thread: its address names the thread. */
static _Thread_local char g_thread_mark;

static void note_submitter(asyncio__uring *r)
{
    const void *me = &g_thread_mark, *first = NULL;
    if (atomic_load_explicit(&r->many_submitters, memory_order_relaxed))
        return;
    if (!atomic_compare_exchange_strong_explicit(&r->first_submitter, &first, me,
                                                 memory_order_relaxed, memory_order_relaxed) &&
        first != me)
        atomic_store_explicit(&r->many_submitters, true, memory_order_relaxed);
}

bool asyncio__uring_sole_submitter(const asyncio__uring *r)
{
    if (atomic_load_explicit(&r->many_submitters, memory_order_relaxed))
        return false;
    const void *first = atomic_load_explicit(&r->first_submitter, memory_order_relaxed);
    return first == NULL || first == (const void *)&g_thread_mark;
}

void asyncio__uring_barrier(asyncio__uring *r)
{
    if (!atomic_load_explicit(&r->many_submitters, memory_order_relaxed))
        return;
    int err = 0;
    struct io_uring_sqe *sqe = asyncio__uring_sqe(r, &err);
    if (sqe == NULL)
        return;
    sqe->opcode = IORING_OP_NOP;
    sqe->user_data = UINT64_C(1) << 63; /* ignored by every reader of this ring */
    asyncio__uring_publish(r);
    (void)asyncio__uring_submit(r);
}

int asyncio__uring_enter(asyncio__uring *r, unsigned to_submit, bool wait, int timeout_ms)
{
    if (to_submit > 0)
        note_submitter(r);
    struct __kernel_timespec ts = {0};
    struct io_uring_getevents_arg arg = {0};
    unsigned flags = IORING_ENTER_EXT_ARG, min_complete = 0;
    if (wait) {
        flags |= IORING_ENTER_GETEVENTS;
        min_complete = 1;
        if (timeout_ms >= 0) {
            ts.tv_sec = timeout_ms / 1000;
            ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
            arg.ts = (uint64_t)(uintptr_t)&ts;
        }
    } else if (asyncio__uring_cq_overflowed(r) || asyncio__uring_taskrun_pending(r)) {
        /* Flushes the kernel's overflow list into the CQ; runs completions deferred as task work. */
        flags |= IORING_ENTER_GETEVENTS;
    }
    int rc = sys_enter(r->fd, to_submit, min_complete, flags, &arg);
    /* With to_submit > 0 the result is the number submitted (a wait error is dropped). */
    return rc == -ETIME || rc >= 0 ? 0 : rc;
}

int asyncio__uring_wait_cqes(asyncio__uring *r, unsigned count, int timeout_ms)
{
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                   .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
    struct io_uring_getevents_arg arg = {.ts = (uint64_t)(uintptr_t)&ts};
    int rc = sys_enter(r->fd, 0, count, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg);
    return rc == -ETIME || rc >= 0 ? 0 : rc;
}

int asyncio__uring_submit(asyncio__uring *r)
{
    unsigned n = asyncio__uring_pending(r);
    return n > 0 ? asyncio__uring_enter(r, n, false, 0) : 0;
}

unsigned asyncio__uring_cq_ready(asyncio__uring *r)
{
    unsigned tail = atomic_load_explicit(r->cq_tail, memory_order_acquire);
    return tail - atomic_load_explicit(r->cq_head, memory_order_relaxed);
}

bool asyncio__uring_cq_overflowed(asyncio__uring *r)
{
    return (atomic_load_explicit(r->sq_flags, memory_order_relaxed) & IORING_SQ_CQ_OVERFLOW) != 0;
}
