/*
 * The io_uring backend's completion path (poller/completion.h): stream
 * receives as multishot IORING_OP_RECV into a provided-buffer ring, sends
 * as IORING_OP_SEND, cancels as IORING_OP_ASYNC_CANCEL, on the poller's own
 * ring (uring.c), so their SQEs go out in the same io_uring_enter as the
 * wait and their CQEs come back in the same pass.
 *
 * The buffer ring (IORING_REGISTER_PBUF_RING, group 0, 5.19) holds
 * ASYNCIO__COMP_BUF_COUNT buffers of ASYNCIO__COMP_BUF_SIZE bytes, shared by
 * every stream: the kernel picks one when bytes arrive, so an idle stream
 * with a receive armed holds no memory. Ring slots = buffers, so a buffer
 * given back always finds a slot. Only the first ASYNCIO__COMP_BUF_FIRST
 * circulate at first; grow() adds as many again from the parked rest
 * when a receive starved (their pages are touched only then), and after a
 * quiet second a one-submitter ring gives them back (asyncio__uring_comp_trim:
 * the ring is replaced, every free buffer's pages go back to the kernel,
 * 64 stay in circulation). Giving back: the entry is written, then
 * the ring's tail is stored with RELEASE (pairs with the kernel's acquire
 * load of the tail before it reads entries); buf_lock orders recyclers.
 *
 * File and path operations (READ, WRITE, FSYNC, STATX, OPENAT, CLOSE,
 * RENAMEAT, UNLINKAT, MKDIRAT) and CONNECT are
 * single SQEs whose one CQE carries the system call's result; their memory
 * (buffer, paths, the statx result, the address) is the caller's until that
 * CQE was handed over (completion.h). ACCEPT_MULTI is one multishot
 * IORING_OP_ACCEPT (5.19): a CQE per accepted connection.
 *
 * Opcode checks (IORING_REGISTER_PROBE, per operation): SEND needs
 * IORING_OP_SEND; RECV_MULTI needs IORING_OP_RECV, multishot receive (6.0;
 * IORING_OP_SEND_ZC, of the same release, is the probe's witness) and the
 * buffer ring registration to succeed. Both need ASYNC_CANCEL. A kind that
 * is missing falls back to the readiness path (comp.c asks has()).
 *
 * Locking: SQEs under the backend's lock (uring.c); the completion batch is
 * the waiting owner's; buffers under buf_lock.
 */
#include <errno.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#ifndef STATX_TYPE
/* A libc without statx(2) (musl before 1.2.5): the kernel's own definition. */
#include <linux/stat.h>
#endif

#include "internal.h"
#include "platform/fs_os.h"
#include "poller/uring_int.h"

ASYNCIO_STATIC_ASSERT(sizeof(struct statx) <= ASYNCIO__COP_STATX_SIZE,
                      "a STATX result fits the storage completion.h promises");
ASYNCIO_STATIC_ASSERT(ASYNCIO__COP_CWD == AT_FDCWD, "ASYNCIO__COP_CWD is AT_FDCWD");

#define BUF_GROUP 0

ASYNCIO_STATIC_ASSERT((ASYNCIO__COMP_BUF_COUNT & (ASYNCIO__COMP_BUF_COUNT - 1)) == 0 &&
                          ASYNCIO__COMP_BUF_COUNT <= 32768,
                      "the buffer ring has a power-of-two size below 2^15");

static void *map_anon(size_t len)
{
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

/* buf_lock held: puts buffer bid at the ring's tail (published by publish_tail). */
static void put_buf(uring_comp *c, uint16_t bid)
{
    struct io_uring_buf *e = &c->br->bufs[c->br_tail & (ASYNCIO__COMP_BUF_COUNT - 1)];
    e->addr = (uint64_t)(uintptr_t)(c->bufs + (size_t)bid * ASYNCIO__COMP_BUF_SIZE);
    e->len = ASYNCIO__COMP_BUF_SIZE;
    e->bid = bid;
    c->br_tail++;
}

static void publish_tail(uring_comp *c)
{
    /* Release: the entries are written before the kernel sees the new tail. */
    atomic_store_explicit((_Atomic uint16_t *)&c->br->tail, c->br_tail, memory_order_release);
}

/* buf_lock held (or no other thread yet): registers the ring (group 0) over c->br as it stands. 0 or a negative error. */
static int register_ring_locked(uring_backend *b)
{
    uring_comp *c = &b->comp;
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)c->br,
        .ring_entries = ASYNCIO__COMP_BUF_COUNT,
        .bgid = BUF_GROUP,
    };
    int rc = asyncio__uring_register(&b->ring, IORING_REGISTER_PBUF_RING, &reg, 1);
    c->registered = rc == 0;
    return rc;
}

/* Maps the buffers and registers the ring. 0 or a negative error (nothing left behind). */
static int buffers_setup(uring_backend *b)
{
    uring_comp *c = &b->comp;
    c->br_len = ASYNCIO__COMP_BUF_COUNT * sizeof(struct io_uring_buf);
    c->bufs_len = (size_t)ASYNCIO__COMP_BUF_COUNT * ASYNCIO__COMP_BUF_SIZE;
    c->br = map_anon(c->br_len);
    c->bufs = map_anon(c->bufs_len);
    int rc = c->br != NULL && c->bufs != NULL ? 0 : ASYNCIO_ENOMEM;
    if (rc == 0)
        rc = register_ring_locked(b);
    if (rc < 0) {
        if (c->br != NULL)
            munmap(c->br, c->br_len);
        if (c->bufs != NULL)
            munmap(c->bufs, c->bufs_len);
        c->br = NULL;
        c->bufs = NULL;
        return rc;
    }
    c->br_tail = 0;
    for (unsigned i = 0; i < ASYNCIO__COMP_BUF_FIRST; i++)
        put_buf(c, (uint16_t)i);
    /* The rest parked, popped in order: FIRST first. */
    c->n_parked = 0;
    for (unsigned i = ASYNCIO__COMP_BUF_COUNT; i-- > ASYNCIO__COMP_BUF_FIRST;)
        c->parked[c->n_parked++] = (uint16_t)i;
    atomic_store_explicit(&c->circulating, ASYNCIO__COMP_BUF_FIRST, memory_order_relaxed);
    c->consumed = 0;
    c->quiet_since = 0;
    publish_tail(c);
    return 0;
}

void asyncio__uring_comp_release(uring_backend *b)
{
    uring_comp *c = &b->comp;
    if (c->efd > 0) {
        close(c->efd); /* the ring's registration goes with the ring */
        close(c->wake_efd);
        c->efd = c->wake_efd = 0;
    }
    if (c->br != NULL) {
        struct io_uring_buf_reg reg = {.bgid = BUF_GROUP};
        if (c->registered)
            (void)asyncio__uring_register(&b->ring, IORING_UNREGISTER_PBUF_RING, &reg, 1);
        c->registered = false;
        munmap(c->br, c->br_len);
        munmap(c->bufs, c->bufs_len);
        c->br = NULL;
        c->bufs = NULL;
    }
    c->fn = NULL;
}

/* The opcode of each file and path kind (probed by probe_generic, used by fill_generic). */
static const uint8_t k_generic_opcode[ASYNCIO__COP_KINDS] = {
    [ASYNCIO__COP_READ] = IORING_OP_READ,         [ASYNCIO__COP_WRITE] = IORING_OP_WRITE,
    [ASYNCIO__COP_FSYNC] = IORING_OP_FSYNC,       [ASYNCIO__COP_STATX] = IORING_OP_STATX,
    [ASYNCIO__COP_OPENAT] = IORING_OP_OPENAT,     [ASYNCIO__COP_CLOSE] = IORING_OP_CLOSE,
    [ASYNCIO__COP_RENAMEAT] = IORING_OP_RENAMEAT, [ASYNCIO__COP_UNLINKAT] = IORING_OP_UNLINKAT,
    [ASYNCIO__COP_MKDIRAT] = IORING_OP_MKDIRAT,   [ASYNCIO__COP_ACCEPT_MULTI] = IORING_OP_ACCEPT,
    [ASYNCIO__COP_CONNECT] = IORING_OP_CONNECT,
};

/*
 * The file and path kinds: each needs its opcode and ASYNC_CANCEL; READ and
 * WRITE at the fd's offset (off -1, the cursor read(2) and write(2) use)
 * need IORING_FEAT_RW_CUR_POS (5.6).
 */
static void probe_generic(const asyncio__uring *r, bool cancel, bool *has)
{
    bool cur_pos = (r->features & IORING_FEAT_RW_CUR_POS) != 0;
    for (unsigned k = ASYNCIO__COP_FIRST_GENERIC; k < ASYNCIO__COP_KINDS; k++)
        has[k] = cancel && asyncio__uring_has_op(r, k_generic_opcode[k]);
    has[ASYNCIO__COP_READ] = has[ASYNCIO__COP_READ] && cur_pos;
    has[ASYNCIO__COP_WRITE] = has[ASYNCIO__COP_WRITE] && cur_pos;
    /* Multishot accept came with IORING_OP_SOCKET (5.19): that opcode is its witness. */
    has[ASYNCIO__COP_ACCEPT_MULTI] =
        has[ASYNCIO__COP_ACCEPT_MULTI] && asyncio__uring_has_op(r, IORING_OP_SOCKET);
}

static int comp_attach(void *state, asyncio__completion_fn fn, void *ctx, uintptr_t token)
{
    uring_backend *b = state;
    uring_comp *c = &b->comp;
    if (c->fn != NULL)
        return ASYNCIO_EBUSY;
    const asyncio__uring *r = &b->ring;
    bool cancel = asyncio__uring_has_op(r, IORING_OP_ASYNC_CANCEL);
    c->has[ASYNCIO__COP_SEND] = cancel && asyncio__uring_has_op(r, IORING_OP_SEND);
    c->has[ASYNCIO__COP_RECV_MULTI] = cancel && asyncio__uring_has_op(r, IORING_OP_RECV) &&
                                      asyncio__uring_has_op(r, IORING_OP_SEND_ZC) &&
                                      buffers_setup(b) == 0;
    probe_generic(r, cancel, c->has);
    bool any = false;
    for (unsigned k = 0; k < ASYNCIO__COP_KINDS; k++)
        any = any || c->has[k];
    if (!any)
        return ASYNCIO_ENOTSUP;
    atomic_init(&c->buf_lock.held, false);
    c->ctx = ctx;
    c->token = token;
    c->n_batch = 0;
    c->fn = fn;
    return 0;
}

static void comp_detach(void *state)
{
    asyncio__uring_comp_release(state);
}

static bool comp_has(void *state, asyncio__cop_kind kind)
{
    uring_backend *b = state;
    return b->comp.fn != NULL && kind < ASYNCIO__COP_KINDS && b->comp.has[kind];
}

/* The file and path kinds (one completion each). */
static void fill_generic(struct io_uring_sqe *sqe, const asyncio__cop_req *req)
{
    sqe->opcode = k_generic_opcode[req->kind];
    switch (req->kind) {
    case ASYNCIO__COP_READ:  /* fd, buf, len, off (-1: the fd's offset, moved) */
    case ASYNCIO__COP_WRITE: /* the same */
        sqe->addr = (uint64_t)(uintptr_t)req->buf;
        sqe->len = req->len;
        sqe->off = (uint64_t)req->off;
        break;
    case ASYNCIO__COP_FSYNC:
        sqe->fsync_flags = req->flags & ASYNCIO__COP_F_DATASYNC ? IORING_FSYNC_DATASYNC : 0;
        break;
    case ASYNCIO__COP_STATX: /* fd: the directory; addr: path; len: mask; off: the result */
        sqe->addr = (uint64_t)(uintptr_t)req->path;
        sqe->len = STATX_TYPE | STATX_MODE | STATX_SIZE | STATX_MTIME;
        sqe->off = (uint64_t)(uintptr_t)req->out;
        sqe->statx_flags = (req->flags & ASYNCIO__COP_F_NOFOLLOW ? AT_SYMLINK_NOFOLLOW : 0) |
                           (req->flags & ASYNCIO__COP_F_EMPTY_PATH ? AT_EMPTY_PATH : 0);
        break;
    case ASYNCIO__COP_OPENAT: /* close-on-exec like asyncio__fs_open; mode 0 means 0666 */
        /*
         * Straight to a kernel worker: the inline attempt opens with O_NONBLOCK,
         * so a FIFO would open for reading without waiting for a writer, and
         * fail with ENXIO for writing without a reader; open(2) waits for both.
         */
        sqe->flags = IOSQE_ASYNC;
        sqe->addr = (uint64_t)(uintptr_t)req->path;
        sqe->len = req->mode != 0 ? req->mode : 0666;
        sqe->open_flags = (uint32_t)asyncio__fs_open_os_flags(req->open_flags);
        break;
    case ASYNCIO__COP_CLOSE:
        break;
    case ASYNCIO__COP_RENAMEAT: /* fd / addr: from; len / addr2: to */
        sqe->addr = (uint64_t)(uintptr_t)req->path;
        sqe->len = (uint32_t)req->fd;
        sqe->addr2 = (uint64_t)(uintptr_t)req->path2;
        break;
    case ASYNCIO__COP_UNLINKAT:
        sqe->addr = (uint64_t)(uintptr_t)req->path;
        sqe->unlink_flags = req->flags & ASYNCIO__COP_F_REMOVEDIR ? AT_REMOVEDIR : 0;
        break;
    case ASYNCIO__COP_MKDIRAT:
        sqe->addr = (uint64_t)(uintptr_t)req->path;
        sqe->len = req->mode;
        break;
    case ASYNCIO__COP_ACCEPT_MULTI: /* no peer address: one buffer cannot serve many CQEs */
        sqe->ioprio = IORING_ACCEPT_MULTISHOT;
        sqe->accept_flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
        break;
    default: /* ASYNCIO__COP_CONNECT: addr: the sockaddr; off: its length */
        sqe->addr = (uint64_t)(uintptr_t)req->buf;
        sqe->off = req->len;
        break;
    }
}

static void fill(struct io_uring_sqe *sqe, const asyncio__cop_req *req)
{
    sqe->fd = req->fd;
    sqe->user_data = UD_OP | (uint64_t)(uintptr_t)req->op;
    switch (req->kind) {
    case ASYNCIO__COP_RECV_MULTI: /* every arrival is a CQE naming the buffer it filled */
        sqe->opcode = IORING_OP_RECV;
        sqe->ioprio = IORING_RECV_MULTISHOT;
        sqe->flags = IOSQE_BUFFER_SELECT;
        sqe->buf_group = BUF_GROUP;
        break;
    case ASYNCIO__COP_SEND:
        sqe->opcode = IORING_OP_SEND;
        sqe->addr = (uint64_t)(uintptr_t)req->buf;
        sqe->len = req->len;
        sqe->msg_flags = MSG_NOSIGNAL;
        break;
    default:
        fill_generic(sqe, req);
        break;
    }
}

static int comp_submit(void *state, const asyncio__cop_req *req)
{
    uring_backend *b = state;
    if (!comp_has(state, req->kind))
        return ASYNCIO_ENOTSUP;
    int rc = 0;
    asyncio__mutex_lock(&b->lock);
    struct io_uring_sqe *sqe = asyncio__uring_sqe(&b->ring, &rc);
    if (sqe != NULL) {
        fill(sqe, req);
        asyncio__uring_publish(&b->ring);
        b->comp.inflight++;
    }
    asyncio__mutex_unlock(&b->lock);
    if (rc == 0 && !b->ring.single) /* a worker's ring: its owner is the submitter */
        asyncio__poller_kick(b->owner); /* a blocked owner submits it at its next wait */
    return rc;
}

/*
 * Lock held: queues a request whose CQE nobody reads (UD_INTERNAL): a cancel
 * of `addr`'s request, of every request (cancel_flags ANY), or a close of
 * fd. 0, or ASYNCIO_ENOSPC / an io_uring_enter error (nothing queued).
 */
static int queue_internal_locked(uring_backend *b, uint8_t opcode, int fd, uint64_t addr,
                                 uint32_t cancel_flags)
{
    int rc = 0;
    struct io_uring_sqe *sqe = asyncio__uring_sqe(&b->ring, &rc);
    if (sqe != NULL) {
        sqe->opcode = opcode;
        sqe->fd = fd;
        sqe->addr = addr;
        sqe->cancel_flags = cancel_flags;
        sqe->user_data = UD_INTERNAL;
        asyncio__uring_publish(&b->ring);
    }
    return rc;
}

static int comp_cancel(void *state, void *op, bool now)
{
    uring_backend *b = state;
    asyncio__mutex_lock(&b->lock);
    int rc = queue_internal_locked(b, IORING_OP_ASYNC_CANCEL, -1,
                                   UD_OP | (uint64_t)(uintptr_t)op, 0);
    if (rc == 0) {
        if (!now) {
            asyncio__mutex_unlock(&b->lock);
            asyncio__poller_kick(b->owner); /* a blocked owner submits it at its next wait */
            return 0;
        }
        /*
         * Now: the operations queued before it reach the kernel before their fd is
         * closed (a queued SEND must not find the number reused). EINTR, or EBUSY /
         * EAGAIN while the kernel is short of completion room: retried, bounded.
         */
        for (int tries = 0; tries < 100; tries++) {
            rc = asyncio__uring_submit(&b->ring);
            if (rc != ASYNCIO_EINTR && rc != ASYNCIO_EBUSY && rc != ASYNCIO_EAGAIN)
                break;
        }
    }
    asyncio__mutex_unlock(&b->lock);
    if (rc < 0)
        asyncio__poller_kick(b->owner); /* the kernel was busy: the next wait submits it */
    return rc;
}

static int comp_flush(void *state)
{
    uring_backend *b = state;
    if (asyncio__uring_pending(&b->ring) == 0)
        return 0;
    asyncio__mutex_lock(&b->lock);
    int rc = asyncio__uring_submit(&b->ring);
    asyncio__mutex_unlock(&b->lock);
    return rc;
}

static void *comp_buffer(void *state, uint16_t bid)
{
    uring_backend *b = state;
    return b->comp.bufs + (size_t)bid * ASYNCIO__COMP_BUF_SIZE;
}

static void comp_recycle(void *state, uint16_t bid)
{
    uring_comp *c = &((uring_backend *)state)->comp;
    asyncio__spin_lock(&c->buf_lock);
    put_buf(c, bid);
    publish_tail(c);
    asyncio__spin_unlock(&c->buf_lock);
}

static bool comp_grow(void *state)
{
    uring_backend *b = state;
    uring_comp *c = &b->comp;
    asyncio__spin_lock(&c->buf_lock);
    /* A trim whose new ring could not be registered: registering it now is the growth. */
    bool grew = !c->registered && register_ring_locked(b) == 0;
    unsigned have = atomic_load_explicit(&c->circulating, memory_order_relaxed);
    unsigned add = have < c->n_parked ? have : c->n_parked;
    for (unsigned i = 0; i < add; i++)
        put_buf(c, c->parked[--c->n_parked]);
    if (add > 0) {
        atomic_store_explicit(&c->circulating, (uint16_t)(have + add), memory_order_relaxed);
        publish_tail(c);
    }
    asyncio__spin_unlock(&c->buf_lock);
    return grew || add > 0;
}

/* madvise(MADV_DONTNEED) over the buffers ids[0, n), one call per run of adjacent ones. */
static void drop_pages(uring_comp *c, const uint16_t *ids, size_t n)
{
    uint8_t mark[ASYNCIO__COMP_BUF_COUNT] = {0};
    for (size_t i = 0; i < n; i++)
        mark[ids[i]] = 1;
    for (unsigned i = 0; i < ASYNCIO__COMP_BUF_COUNT;) {
        if (!mark[i]) {
            i++;
            continue;
        }
        unsigned j = i;
        while (j < ASYNCIO__COMP_BUF_COUNT && mark[j])
            j++;
        (void)madvise(c->bufs + (size_t)i * ASYNCIO__COMP_BUF_SIZE,
                      (size_t)(j - i) * ASYNCIO__COMP_BUF_SIZE, MADV_DONTNEED);
        i = j;
    }
}

/* Lock held: how many CQEs in the CQ carry a buffer of ours (taken, not reaped yet). */
static unsigned buffers_in_cq(uring_backend *b)
{
    asyncio__uring *r = &b->ring;
    unsigned head = atomic_load_explicit(r->cq_head, memory_order_relaxed);
    unsigned tail = atomic_load_explicit(r->cq_tail, memory_order_acquire);
    unsigned n = 0;
    for (; head != tail; head++) {
        const struct io_uring_cqe *cqe = &r->cqes[head & r->cq_mask];
        if ((cqe->user_data & (UD_INTERNAL | UD_OP)) == UD_OP && (cqe->flags & IORING_CQE_F_BUFFER))
            n++;
    }
    return n;
}

unsigned asyncio__uring_comp_trim(uring_backend *b)
{
    uring_comp *c = &b->comp;
    asyncio__uring *r = &b->ring;
    unsigned parked = 0;
    /* b->lock: no other thread submits (so no receive is issued elsewhere) meanwhile. */
    asyncio__mutex_lock(&b->lock);
    if (c->br == NULL || !c->registered || c->n_batch > 0 || !asyncio__uring_sole_submitter(r) ||
        asyncio__uring_cq_overflowed(r)) {
        asyncio__mutex_unlock(&b->lock);
        return 0;
    }
    asyncio__spin_lock(&c->buf_lock); /* recyclers and grow() wait */
    unsigned circulating = atomic_load_explicit(&c->circulating, memory_order_relaxed);
    struct io_uring_buf_reg unreg = {.bgid = BUF_GROUP};
    if (circulating <= ASYNCIO__COMP_BUF_FIRST ||
        asyncio__uring_register(r, IORING_UNREGISTER_PBUF_RING, &unreg, 1) < 0) {
        asyncio__spin_unlock(&c->buf_lock);
        asyncio__mutex_unlock(&b->lock);
        return 0;
    }
    c->registered = false;
    /*
     * No receive can take a buffer now (one that tries ends with ENOBUFS: the
     * starvation path re-arms it). Every buffer taken so far was taken by
     * task work on this thread, which posted its CQE in the same run: the
     * kernel's head is what we reaped plus what waits in the CQ, and the
     * entries from there to our tail are the buffers still free.
     */
    unsigned in_cq = buffers_in_cq(b);
    uint16_t head = (uint16_t)(c->consumed + in_cq);
    unsigned avail = (uint16_t)(c->br_tail - head);
    uint16_t ids[ASYNCIO__COMP_BUF_COUNT];
    unsigned n_free = 0;
    if (!asyncio__uring_cq_overflowed(r) && avail <= circulating) {
        for (unsigned i = 0; i < avail; i++)
            ids[n_free++] = c->br->bufs[(uint16_t)(head + i) & (ASYNCIO__COMP_BUF_COUNT - 1)].bid;
    }
    /*
     * (Otherwise CQEs the kernel holds back could name any of those entries:
     * they are left out of both rings, given back when a CQE names them or
     * lost to circulation, never handed out twice.)
     */
    unsigned keep = 0;
    if (n_free > 0) {
        unsigned out = circulating - n_free; /* in streams or in the CQ: back by recycle */
        keep = out >= ASYNCIO__COMP_BUF_FIRST ? 0 : ASYNCIO__COMP_BUF_FIRST - out;
        if (keep > n_free)
            keep = n_free;
    }
    /* Every free page goes back (those kept are faulted in again when next used). */
    drop_pages(c, ids, n_free);
    c->br_tail = 0;
    for (unsigned i = 0; i < keep; i++)
        put_buf(c, ids[i]);
    publish_tail(c);
    for (unsigned i = keep; i < n_free; i++)
        c->parked[c->n_parked++] = ids[i];
    parked = n_free - keep;
    circulating -= parked;
    atomic_store_explicit(&c->circulating, (uint16_t)circulating, memory_order_relaxed);
    /* The new list's head is 0; the CQEs still in the CQ were taken from the old one. */
    c->consumed = (uint16_t)(0u - in_cq);
    (void)register_ring_locked(b); /* on failure grow() tries again when a receive starves */
    asyncio__spin_unlock(&c->buf_lock);
    asyncio__mutex_unlock(&b->lock);
    return parked;
}

int asyncio__uring_comp_wait_cap(uring_backend *b, int timeout_ms)
{
    uring_comp *c = &b->comp;
    if (c->br == NULL ||
        atomic_load_explicit(&c->circulating, memory_order_relaxed) <= ASYNCIO__COMP_BUF_FIRST ||
        !asyncio__uring_sole_submitter(&b->ring))
        return timeout_ms;
    return timeout_ms < 0 || timeout_ms > URING_TRIM_QUIET_MS ? URING_TRIM_QUIET_MS : timeout_ms;
}

void asyncio__uring_comp_after_wait(uring_backend *b, size_t got, int timeout_ms)
{
    uring_comp *c = &b->comp;
    if (c->br == NULL ||
        atomic_load_explicit(&c->circulating, memory_order_relaxed) <= ASYNCIO__COMP_BUF_FIRST) {
        c->quiet_since = 0;
        return;
    }
    if (got > 0) {
        c->quiet_since = 0;
        return;
    }
    /* A wait that found nothing for a whole URING_TRIM_QUIET_MS: quiet that long already. */
    uint64_t now = timeout_ms == URING_TRIM_QUIET_MS ? 0 : asyncio__clock_now_ms();
    if (now != 0 && c->quiet_since == 0) {
        c->quiet_since = now;
    } else if (now == 0 || now - c->quiet_since >= URING_TRIM_QUIET_MS) {
        c->quiet_since = 0;
        (void)asyncio__uring_comp_trim(b);
    }
}

bool asyncio__uring_comp_take(uring_backend *b, const struct io_uring_cqe *cqe)
{
    uring_comp *c = &b->comp;
    if (c->n_batch == URING_COMP_BATCH)
        return false;
    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->inflight--;
    if (cqe->flags & IORING_CQE_F_BUFFER)
        c->consumed++; /* the kernel's head, as it counts (asyncio__uring_comp_trim) */
    c->batch[c->n_batch++] = (asyncio__completion){
        .op = (void *)(uintptr_t)(cqe->user_data & ~UD_OP),
        .res = cqe->res,
        .bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT),
        .has_buf = (cqe->flags & IORING_CQE_F_BUFFER) != 0,
        .more = (cqe->flags & IORING_CQE_F_MORE) != 0,
    };
    return true;
}

static size_t comp_deliver(void *state)
{
    uring_comp *c = &((uring_backend *)state)->comp;
    size_t n = c->n_batch;
    for (size_t i = 0; i < n; i++)
        c->fn(c->ctx, &c->batch[i]);
    c->n_batch = 0;
    return n;
}

/*
 * A worker's ring (ASYNCIO__URING_WORKER), by its owner: submits what is
 * queued, has the kernel run the completion work waiting for this thread
 * (GETEVENTS, never blocking), and hands every completion to the handler.
 * Such a ring carries operations only (no polls, no notify fd).
 */
static size_t comp_run(void *state)
{
    uring_backend *b = state;
    asyncio__uring *r = &b->ring;
    unsigned to_submit = asyncio__uring_pending(r);
    if (to_submit > 0 || asyncio__uring_taskrun_pending(r) || asyncio__uring_cq_overflowed(r)) {
        (void)asyncio__uring_enter(r, to_submit, false, 0); /* an error: the next turn retries */
    }
    size_t total = 0;
    for (;;) {
        asyncio__mutex_lock(&b->lock);
        unsigned head = atomic_load_explicit(r->cq_head, memory_order_relaxed);
        unsigned tail = atomic_load_explicit(r->cq_tail, memory_order_acquire);
        bool full = false;
        while (head != tail) {
            const struct io_uring_cqe *c = &r->cqes[head & r->cq_mask];
            if ((c->user_data & (UD_INTERNAL | UD_OP)) == UD_OP && !asyncio__uring_comp_take(b, c)) {
                full = true; /* the batch is full: handed over, then the rest */
                break;
            }
            head++;
        }
        atomic_store_explicit(r->cq_head, head, memory_order_release);
        asyncio__mutex_unlock(&b->lock);
        total += comp_deliver(b);
        if (!full)
            return total;
    }
}

/* Whether comp_run has something to do (any thread may ask; the answer is a hint). */
static bool comp_pending(void *state)
{
    uring_backend *b = state;
    asyncio__uring *r = &b->ring;
    return asyncio__uring_pending(r) > 0 || asyncio__uring_cq_ready(r) > 0 ||
           asyncio__uring_taskrun_pending(r) || asyncio__uring_cq_overflowed(r);
}

/*
 * An eventfd the kernel signals when it posts completions on this ring
 * (IORING_REGISTER_EVENTFD; with COOP_TASKRUN that is in the owner's
 * context: a sleeping owner is woken to post them). Owned by the backend
 * (closed with it). The fd, or a negative error. Owner.
 */
/* A new non-blocking eventfd numbered above 0 (0 means "none" in uring_comp). */
static int new_eventfd(void)
{
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd == 0) {
        int moved = fcntl(efd, F_DUPFD_CLOEXEC, 1);
        close(efd);
        efd = moved;
    }
    return efd < 0 ? -errno : efd;
}

static int comp_notify_fd(void *state)
{
    uring_backend *b = state;
    if (b->comp.efd > 0)
        return b->comp.efd;
    int efd = new_eventfd();
    if (efd < 0)
        return efd;
    int wake = new_eventfd();
    int rc = wake < 0 ? wake : asyncio__uring_register(&b->ring, IORING_REGISTER_EVENTFD, &efd, 1);
    if (rc < 0) {
        close(efd);
        if (wake > 0)
            close(wake);
        return rc;
    }
    b->comp.efd = efd;
    b->comp.wake_efd = wake;
    return efd;
}

/*
 * The owner sleeps until this ring has completions (its fd polls readable:
 * the kernel wakes a sleeping submitter to post them, COOP_TASKRUN) or
 * comp_wake is called; a signal or the kernel's task work may end it early
 * (the caller re-checks). The wake-up is consumed. Needs comp_notify_fd.
 */
static void comp_sleep(void *state)
{
    uring_backend *b = state;
    struct pollfd fds[2] = {{.fd = b->ring.fd, .events = POLLIN},
                            {.fd = b->comp.wake_efd, .events = POLLIN}};
    uint64_t n;
    if (poll(fds, 2, -1) > 0 && (fds[1].revents & POLLIN) &&
        read(b->comp.wake_efd, &n, sizeof n) < 0) {
        /* EAGAIN: a racing read took it; anything else: the next sleep returns at once */
    }
}

/* Ends the owner's comp_sleep (now or the next one). Any thread. */
static void comp_wake(void *state)
{
    uring_backend *b = state;
    uint64_t one = 1;
    ssize_t w;
    do
        w = write(b->comp.wake_efd, &one, sizeof one);
    while (w < 0 && errno == EINTR);
}

/* The SQ tail (low 16 bits) after the caller's last SQE. The ring's only submitter. */
static uint16_t comp_sq_mark(void *state)
{
    uring_backend *b = state;
    return (uint16_t)b->ring.sq_local_tail;
}

/*
 * Whether the kernel has taken the SQE that ended at `mark` (comp_sq_mark),
 * i.e. mark is not in (head, tail]. Any thread, ordered after the mark's
 * reading (the tail is then at least the mark). A mark old enough to wrap
 * into the window reads as not taken: the caller then plays safe.
 */
static bool comp_sq_taken(void *state, uint16_t mark)
{
    uring_backend *b = state;
    unsigned head = atomic_load_explicit(b->ring.sq_head, memory_order_acquire);
    unsigned tail = atomic_load_explicit(b->ring.sq_tail, memory_order_acquire);
    uint16_t ahead = (uint16_t)(mark - (uint16_t)head);
    return ahead == 0 || ahead > (uint16_t)(tail - head);
}

/* Queues a cancel of every request on the ring (IORING_ASYNC_CANCEL_ANY, 5.19). */
static int comp_cancel_all(void *state)
{
    uring_backend *b = state;
    asyncio__mutex_lock(&b->lock);
    int rc = queue_internal_locked(b, IORING_OP_ASYNC_CANCEL, -1, 0, IORING_ASYNC_CANCEL_ANY);
    asyncio__mutex_unlock(&b->lock);
    return rc;
}

/*
 * Turns the eventfd's signals on or off (IORING_CQ_EVENTFD_DISABLED, read by
 * the kernel before each signal). seq_cst: a caller that turns them on and
 * then checks comp_pending cannot miss work the kernel queued meanwhile
 * (the kernel's queueing is a full barrier before it reads the flag).
 */
static void comp_notify(void *state, bool on)
{
    uring_backend *b = state;
    unsigned f = atomic_load_explicit(b->ring.cq_flags, memory_order_relaxed);
    f = on ? f & ~(unsigned)IORING_CQ_EVENTFD_DISABLED : f | IORING_CQ_EVENTFD_DISABLED;
    atomic_store_explicit(b->ring.cq_flags, f, memory_order_seq_cst);
}

/* Reads the eventfd down to 0 (non-blocking: nothing to read is fine). Any thread. */
static void comp_notified(void *state)
{
    uring_backend *b = state;
    uint64_t n;
    ssize_t r;
    do
        r = read(b->comp.efd, &n, sizeof n);
    while (r < 0 && errno == EINTR);
}

static size_t comp_inflight(void *state)
{
    uring_backend *b = state;
    asyncio__mutex_lock(&b->lock);
    size_t n = b->comp.inflight;
    asyncio__mutex_unlock(&b->lock);
    return n;
}

/* Queues a close of fd (IORING_OP_CLOSE, its CQE ignored) behind what is queued. */
static int comp_close_fd(void *state, int fd)
{
    uring_backend *b = state;
    if (!asyncio__uring_has_op(&b->ring, IORING_OP_CLOSE))
        return ASYNCIO_ENOTSUP;
    asyncio__mutex_lock(&b->lock);
    int rc = queue_internal_locked(b, IORING_OP_CLOSE, fd, 0, 0);
    asyncio__mutex_unlock(&b->lock);
    return rc;
}

/* A STATX result (struct statx) as the library's metadata (the fields fill_generic asked for). */
static void comp_metadata(const void *out, asyncio_fs_metadata *md)
{
    const struct statx *stx = out;
    mode_t m = stx->stx_mode;
    md->size = stx->stx_size;
    md->mtime_sec = stx->stx_mtime.tv_sec;
    md->mtime_nsec = stx->stx_mtime.tv_nsec;
    md->mode = (uint32_t)(m & 07777);
    md->type = S_ISREG(m)   ? ASYNCIO_FILE_TYPE_FILE
               : S_ISDIR(m) ? ASYNCIO_FILE_TYPE_DIR
               : S_ISLNK(m) ? ASYNCIO_FILE_TYPE_SYMLINK
                            : ASYNCIO_FILE_TYPE_OTHER;
}

const asyncio__completion_ops asyncio__uring_comp_ops = {
    .metadata = comp_metadata,
    .attach = comp_attach,
    .detach = comp_detach,
    .has = comp_has,
    .submit = comp_submit,
    .cancel = comp_cancel,
    .buffer = comp_buffer,
    .recycle = comp_recycle,
    .grow = comp_grow,
    .deliver = comp_deliver,
    .flush = comp_flush,
    .run = comp_run,
    .pending = comp_pending,
    .notify_fd = comp_notify_fd,
    .notify = comp_notify,
    .notified = comp_notified,
    .inflight = comp_inflight,
    .close_fd = comp_close_fd,
    .sleep = comp_sleep,
    .wake = comp_wake,
    .cancel_all = comp_cancel_all,
    .sq_mark = comp_sq_mark,
    .sq_taken = comp_sq_taken,
};
