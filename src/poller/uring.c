/*
 * io_uring backend (Linux): the poll.h contract with IORING_OP_POLL_ADD.
 *
 * Modes:
 *   EDGE     one multishot POLL_ADD (IORING_POLL_ADD_MULTI; the kernel's
 *            multishot poll is edge-triggered, like EPOLLET): a CQE per
 *            wake-up of the fd's wait queue. rearm_fd is a no-op.
 *   LEVEL    a single-shot POLL_ADD, queued again as soon as its CQE is
 *            taken: the next wait submits it, and a poll armed on a ready
 *            fd completes at once, so every wait reports it while it is
 *            ready (and a drained fd is reported again only when it is
 *            ready again).
 *   ONESHOT  a single-shot POLL_ADD; reregister queues a new one.
 * A multishot poll that the kernel ends by itself (a CQE without
 * IORING_CQE_F_MORE: CQ overflow; a wake-up that io_uring itself caused,
 * EPOLL_URING_WAKE, as every signal of an eventfd registered with a ring
 * or of an io_uring fd; or -ECANCELED because the thread that submitted it
 * exited) is queued again; a fresh poll reports the current readiness, so
 * no edge is lost (at worst one is repeated; take_cqe and uring_rearm hold
 * a repeat back until the caller drained, without losing a new edge).
 *
 * Registrations live in a table indexed by fd (pages of 512 entries,
 * allocated when a number in their range is first registered, so the
 * memory follows the highest fd and a grown table is never copied or
 * zeroed past what is used). Each change (reregister,
 * deregister) bumps the registration's generation, and the user_data of a
 * POLL_ADD is (generation << 32 | fd): a CQE of an older generation is
 * dropped when it is read, so a wait that starts after a deregister never
 * reports the fd (poll.h). The request of the old generation is cancelled
 * with an IORING_OP_ASYNC_CANCEL (its own CQE carries UD_INTERNAL and is
 * ignored; why not POLL_REMOVE: queue_remove).
 *
 * Submission is batched: register, reregister and the re-arms queue SQEs
 * that the next wait submits in the same io_uring_enter as it waits
 * (IORING_ENTER_GETEVENTS), so the runtime's I/O driver makes one system
 * call per turn. A change made while the owner is blocked kicks it
 * (asyncio__poller_kick), and the next wait submits it. Deregister
 * submits at once and returns once the poll has ended (wait_ended): a
 * POLL_ADD holds a reference to the file, and a caller that deregisters
 * and closes expects the file to be released (the peer sees the close).
 *
 * Poll results are epoll bits (EPOLLIN, EPOLLRDHUP, ...): readable interest
 * asks for EPOLLRDHUP as epoll does. Regular files and directories give
 * -EPERM, as on epoll (a poll on them is always ready). An fd closed while
 * registered: the POLL_ADD keeps the file open (deregister first, poll.h);
 * the table remembers (st_dev, st_ino) so a number reused for another file
 * can be registered again (the old poll is removed then), and reregistering
 * or deregistering it gives -ENOENT.
 *
 * The ring is set up without SINGLE_ISSUER / DEFER_TASKRUN: any thread may
 * submit (registration from any thread, and the multi-thread runtime's
 * driver is turned by whichever worker is free). Completions run as task
 * work in the submitter's context. By default the kernel interrupts a
 * submitter running in user space to run it (an IPI), so a completion never
 * waits for that thread's next system call while another thread waits on
 * the ring. A poller created with ASYNCIO__POLLER_COOP (every runtime's
 * driver) asks for COOP_TASKRUN | TASKRUN_FLAG instead: no IPI per
 * completion (it measured -17 to -30% server CPU per echo round trip on
 * loopback, current-thread and 2 workers: docs/backends.md); the
 * completions of a thread's requests are posted at its next kernel entry,
 * and a wait that would not block enters anyway when the kernel flags
 * deferred work (IORING_SQ_TASKRUN), so a runtime that never parks still
 * sees them. Another thread's request on such a ring completes when that
 * thread next enters the kernel (a system call, a timer tick) or sleeps (the
 * kernel notifies with TWA_SIGNAL_NO_IPI, which wakes a sleeping thread),
 * so it is slower, never lost.
 *
 * Locking: `lock` guards the table and the SQ. The CQ is read by the owner only
 * (asyncio_poller_wait is never called by two threads at once).
 */
#include <errno.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include "internal.h"
#include "poller/poller_int.h"
#include "poller/uring_int.h"
#include "util/alloc.h"

bool asyncio__uring_poller_usable(const asyncio__uring *r)
{
    /* Multishot poll came in 5.13 with IORING_FEAT_RSRC_TAGS, the feature bit that tells it. */
    return asyncio__uring_has_op(r, IORING_OP_POLL_ADD) &&
           asyncio__uring_has_op(r, IORING_OP_ASYNC_CANCEL) &&
           (r->features & IORING_FEAT_RSRC_TAGS) != 0;
}

static int uring_init(asyncio_poller *owner, void **state)
{
    uring_backend *b = asyncio__calloc(1, sizeof *b);
    if (b == NULL)
        return ASYNCIO_ENOMEM;
    unsigned mode = owner->hints & ASYNCIO__POLLER_WORKER ? ASYNCIO__URING_WORKER
                    : owner->hints & ASYNCIO__POLLER_COOP ? ASYNCIO__URING_COOP
                                                          : ASYNCIO__URING_PLAIN;
    int rc = asyncio__uring_init(&b->ring, URING_SQ_ENTRIES, URING_CQ_ENTRIES, mode);
    if (rc == 0 && !asyncio__uring_poller_usable(&b->ring))
        rc = ASYNCIO_ENOTSUP; /* the core falls back to epoll */
    if (rc == 0 && (rc = asyncio__mutex_init(&b->lock)) == 0) {
        b->owner = owner;
        *state = b;
        return 0;
    }
    asyncio__uring_close(&b->ring);
    asyncio__free(b);
    return rc;
}

static void uring_destroy(void *state)
{
    uring_backend *b = state;
    asyncio__uring_comp_release(b);
    asyncio__uring_close(&b->ring); /* the kernel cancels the polls still armed */
    asyncio__mutex_destroy(&b->lock);
    for (size_t i = 0; i < b->n_reg_pages; i++)
        asyncio__free(b->reg_pages[i]);
    asyncio__free(b->reg_pages);
    asyncio__free(b->ending);
    asyncio__free(b);
}

/* ------------------------------------------------------------------------ */
/* The registration table (lock held)                                        */

ASYNCIO_STATIC_ASSERT(sizeof(void *) != 8 || sizeof(uring_reg) == 32,
                      "one uring_reg per fd number: keep it at 32 bytes");

/* fd's entry, or NULL when no number of its page was ever registered. */
static uring_reg *reg_at(const uring_backend *b, int fd)
{
    size_t page = (size_t)(uint32_t)fd >> URING_REG_PAGE_SHIFT;
    if (fd < 0 || page >= b->n_reg_pages || b->reg_pages[page] == NULL)
        return NULL;
    return &b->reg_pages[page][(uint32_t)fd & (URING_REG_PAGE - 1)];
}

/* fd's entry if it is registered, else NULL. */
static uring_reg *reg_live(const uring_backend *b, int fd)
{
    uring_reg *r = reg_at(b, fd);
    return r != NULL && r->interest != 0 ? r : NULL;
}

/* fd's entry, its page allocated (zeroed) if needed. 0 or ASYNCIO_ENOMEM. */
static int reg_make(uring_backend *b, int fd, uring_reg **out)
{
    size_t page = (size_t)(uint32_t)fd >> URING_REG_PAGE_SHIFT;
    void *pages = b->reg_pages;
    int rc = asyncio__grow_zeroed(&pages, &b->n_reg_pages, page + 1, sizeof *b->reg_pages);
    b->reg_pages = pages;
    if (rc < 0)
        return rc;
    if (b->reg_pages[page] == NULL &&
        (b->reg_pages[page] = asyncio__calloc(URING_REG_PAGE, sizeof(uring_reg))) == NULL)
        return ASYNCIO_ENOMEM;
    *out = &b->reg_pages[page][(uint32_t)fd & (URING_REG_PAGE - 1)];
    return 0;
}

/* The file's identity as the table keeps it. */
static uint32_t fold_dev(const struct stat *st)
{
    uint64_t d = (uint64_t)st->st_dev;
    return (uint32_t)(d ^ d >> 32);
}

/* ------------------------------------------------------------------------ */
/* SQEs (lock held)                                                          */

static uint64_t poll_ud(int fd, const uring_reg *r)
{
    return (uint64_t)(r->gen & GEN_MASK) << 32 | (uint32_t)fd;
}

static uint32_t to_poll(uint32_t interest)
{
    uint32_t ev = 0;
    if (interest & ASYNCIO_READABLE)
        ev |= EPOLLIN | EPOLLRDHUP;
    if (interest & ASYNCIO_WRITABLE)
        ev |= EPOLLOUT;
    if (interest & ASYNCIO_PRIORITY)
        ev |= EPOLLPRI;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    ev = ev << 16 | ev >> 16; /* the kernel swaps the half-words of poll32_events */
#endif
    return ev;
}

/* Queues the POLL_ADD of r's current generation. */
static int queue_add(uring_backend *b, int fd, uring_reg *r)
{
    int rc = 0;
    struct io_uring_sqe *sqe = asyncio__uring_sqe(&b->ring, &rc);
    if (sqe == NULL)
        return rc;
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = fd;
    sqe->poll32_events = to_poll(r->interest);
    sqe->len = r->mode == ASYNCIO_EDGE ? IORING_POLL_ADD_MULTI : 0;
    sqe->user_data = poll_ud(fd, r);
    asyncio__uring_publish(&b->ring);
    r->in_kernel = true;
    return 0;
}

static void set_quiet(uring_backend *b, uring_reg *r, uint32_t quiet)
{
    if ((r->quiet != 0) != (quiet != 0)) {
        size_t n = atomic_load_explicit(&b->quiet_count, memory_order_relaxed);
        atomic_store_explicit(&b->quiet_count, quiet != 0 ? n + 1 : n - 1, memory_order_relaxed);
    }
    r->quiet = (uint8_t)quiet;
}

/* Queues the removal of r's request (if any), then moves r to a new generation. */
static int queue_remove(uring_backend *b, int fd, uring_reg *r)
{
    int rc = 0;
    set_quiet(b, r, 0);
    if (r->in_kernel) {
        struct io_uring_sqe *sqe = asyncio__uring_sqe(&b->ring, &rc);
        if (sqe != NULL) {
            /*
             * ASYNC_CANCEL, not POLL_REMOVE: a poll whose wake-up is being
             * processed (ready when armed, say) makes POLL_REMOVE fail with
             * -EALREADY and stays armed for good, holding its file; a cancel
             * marks it, and it ends as soon as that processing is done.
             */
            sqe->opcode = IORING_OP_ASYNC_CANCEL;
            sqe->fd = -1;
            sqe->addr = poll_ud(fd, r);
            sqe->user_data = UD_INTERNAL;
            asyncio__uring_publish(&b->ring);
        }
        r->in_kernel = false;
    }
    r->gen++;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Registration                                                              */

/* fstat: EBADF for a closed fd, EPERM for what epoll refuses too, the file's identity. */
static int identify(int fd, struct stat *st)
{
    if (fstat(fd, st) < 0)
        return -errno;
    if (S_ISREG(st->st_mode) || S_ISDIR(st->st_mode))
        return ASYNCIO_EPERM;
    return 0;
}

/*
 * Lock held. The registration of fd, or NULL. A registration whose file
 * was closed and whose number now names another file is forgotten (its
 * poll removed) and NULL is returned.
 */
static uring_reg *lookup(uring_backend *b, int fd, const struct stat *st)
{
    uring_reg *r = reg_live(b, fd);
    if (r == NULL)
        return NULL;
    if (r->dev == fold_dev(st) && r->ino == (uint64_t)st->st_ino)
        return r;
    (void)queue_remove(b, fd, r); /* best effort: a failure leaves the old file referenced */
    r->interest = 0;
    return NULL;
}

static void set_reg(uring_reg *r, uintptr_t token, uint32_t interest, asyncio_trigger mode,
                    const struct stat *st)
{
    r->token = token;
    r->interest = (uint8_t)interest;
    r->mode = (uint8_t)mode;
    r->dev = fold_dev(st);
    r->ino = (uint64_t)st->st_ino;
}

static int uring_add(void *state, int fd, uintptr_t token, uint32_t interest, asyncio_trigger mode)
{
    uring_backend *b = state;
    struct stat st;
    int rc = identify(fd, &st);
    if (rc < 0)
        return rc;
    asyncio__mutex_lock(&b->lock);
    uring_reg *r = NULL;
    if (lookup(b, fd, &st) != NULL)
        rc = ASYNCIO_EEXIST;
    else
        rc = reg_make(b, fd, &r);
    if (rc == 0) {
        set_reg(r, token, interest, mode, &st);
        r->gen++;
        if ((rc = queue_add(b, fd, r)) < 0)
            r->interest = 0;
    }
    asyncio__mutex_unlock(&b->lock);
    if (rc == 0)
        asyncio__poller_kick(b->owner); /* a blocked owner submits it at its next wait */
    return rc;
}

static int uring_modify(void *state, int fd, uintptr_t token, uint32_t interest,
                        asyncio_trigger mode)
{
    uring_backend *b = state;
    struct stat st;
    int rc = identify(fd, &st);
    if (rc < 0)
        return rc == ASYNCIO_EPERM ? ASYNCIO_ENOENT : rc;
    asyncio__mutex_lock(&b->lock);
    uring_reg *r = lookup(b, fd, &st);
    if (r == NULL) {
        rc = ASYNCIO_ENOENT;
    } else if ((rc = queue_remove(b, fd, r)) == 0) {
        set_reg(r, token, interest, mode, &st);
        rc = queue_add(b, fd, r);
    }
    if (rc < 0 && r != NULL)
        r->interest = 0; /* out of SQ space: the registration is gone rather than half-made */
    asyncio__mutex_unlock(&b->lock);
    if (rc == 0)
        asyncio__poller_kick(b->owner);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Deregistration: the file is released when deregister returns             */

/* Lock held: lists ud in `ending`. 0 or ASYNCIO_ENOMEM (then deregister does not wait). */
static int ending_add(uring_backend *b, uint64_t ud)
{
    if (b->n_ending == b->ending_cap) {
        size_t cap = b->ending_cap ? b->ending_cap * 2 : 8;
        uint64_t *e = asyncio__realloc(b->ending, cap * sizeof *e);
        if (e == NULL)
            return ASYNCIO_ENOMEM;
        b->ending = e;
        b->ending_cap = cap;
    }
    b->ending[b->n_ending++] = ud;
    return 0;
}

/* Lock held: removes ud from `ending` if it is there. */
static void ending_forget(uring_backend *b, uint64_t ud)
{
    for (size_t i = 0; i < b->n_ending; i++) {
        if (b->ending[i] == ud) {
            b->ending[i] = b->ending[--b->n_ending];
            return;
        }
    }
}

/* Lock held: whether the poll `ud` has ended (its last CQE read, or in the CQ now). */
static bool ended(uring_backend *b, uint64_t ud)
{
    bool listed = false;
    for (size_t i = 0; i < b->n_ending && !listed; i++)
        listed = b->ending[i] == ud;
    if (!listed)
        return true; /* the owner's wait read its last CQE */
    asyncio__uring *ring = &b->ring;
    unsigned head = atomic_load_explicit(ring->cq_head, memory_order_relaxed);
    unsigned tail = atomic_load_explicit(ring->cq_tail, memory_order_acquire);
    for (; head != tail; head++) {
        const struct io_uring_cqe *c = &ring->cqes[head & ring->cq_mask];
        if (c->user_data == ud && !(c->flags & IORING_CQE_F_MORE))
            return true; /* posted, not read yet: the kernel has let go of the file */
    }
    return false;
}

/* How long a deregister waits for a cancelled poll to end, at most (1 ms steps). */
#define URING_END_WAIT_STEPS 2000

/*
 * Waits until the cancelled poll `ud` has ended, so the kernel no longer
 * holds the file when deregister returns (a closed listener refuses the
 * next connect, its port can be bound again). A poll ends in the context of
 * the thread that submitted it (task work): at once if that is this thread,
 * else as soon as that thread is woken to run it. Bounded (2 s) against a
 * thread that never runs it; then the wait that reads its CQE forgets it.
 */
static void wait_ended(uring_backend *b, uint64_t ud)
{
    for (int step = 0; step < URING_END_WAIT_STEPS; step++) {
        asyncio__mutex_lock(&b->lock);
        bool done = ended(b, ud);
        if (done)
            asyncio__uring_barrier(&b->ring); /* its submitter has also let go of the file */
        unsigned seen = asyncio__uring_cq_ready(&b->ring);
        asyncio__mutex_unlock(&b->lock);
        if (done)
            return;
        /* Until one more CQE than we saw is posted, or 1 ms. */
        (void)asyncio__uring_wait_cqes(&b->ring, seen + 1, 1);
    }
}

/*
 * remove, and with `closed` remove_close: the caller owns fd and is
 * closing it (the runtime's own streams), so no fstat checks that the
 * number still names the registered file.
 */
static int remove_impl(uring_backend *b, int fd, bool *closed)
{
    struct stat st;
    int rc = closed != NULL ? 0 : identify(fd, &st);
    if (rc < 0 && rc != ASYNCIO_EBADF)
        return rc == ASYNCIO_EPERM ? ASYNCIO_ENOENT : rc;
    asyncio__mutex_lock(&b->lock);
    uring_reg *r = NULL;
    if (closed != NULL) {
        if ((r = reg_live(b, fd)) == NULL)
            rc = ASYNCIO_ENOENT;
    } else if (rc == ASYNCIO_EBADF) {
        /* Closed while registered: -EBADF as on epoll, but the poll still holds the file. */
        r = reg_live(b, fd);
    } else if ((r = lookup(b, fd, &st)) == NULL) {
        rc = ASYNCIO_ENOENT;
    }
    uint64_t ud = 0;
    if (r != NULL) {
        if (r->in_kernel && ending_add(b, poll_ud(fd, r)) == 0)
            ud = poll_ud(fd, r);
        int qrc = queue_remove(b, fd, r);
        r->interest = 0;
        if (rc == 0)
            rc = qrc;
    }
    if (closed != NULL && rc != ASYNCIO_EBADF && asyncio__uring_has_op(&b->ring, IORING_OP_CLOSE)) {
        /* After the cancel, in the same enter: the number is free when we return. */
        int serr = 0;
        struct io_uring_sqe *sqe = asyncio__uring_sqe(&b->ring, &serr);
        if (sqe != NULL) {
            sqe->opcode = IORING_OP_CLOSE;
            sqe->fd = fd;
            sqe->user_data = UD_INTERNAL;
            asyncio__uring_publish(&b->ring);
            *closed = true;
        }
    }
    /* Now, not at the next wait: the armed poll holds the file (see the file comment). */
    int src = asyncio__uring_submit(&b->ring);
    if (src < 0 && ud != 0) {
        ending_forget(b, ud); /* the kernel was busy: the cancel waits for the next enter */
        ud = 0;
    }
    asyncio__mutex_unlock(&b->lock);
    if (src < 0 && src != ASYNCIO_EINTR)
        asyncio__poller_kick(b->owner); /* the owner's next wait submits it */
    if (ud != 0)
        wait_ended(b, ud);
    return rc;
}

static int uring_remove(void *state, int fd)
{
    return remove_impl(state, fd, NULL);
}

static int uring_remove_close(void *state, int fd, bool *closed)
{
    return remove_impl(state, fd, closed);
}

/*
 * Multishot polls track edges in the kernel: nothing to do and no syscall,
 * except for a registration whose multishot poll the kernel ended (see
 * take_cqe): the caller drained these directions, so their next report is
 * a new edge and must not be held back. And if a report was held back
 * already (QUIET_HELD), it may have been a new edge that came after the
 * caller's drain: the kernel merges the wake-ups it has not posted yet
 * into one CQE, so the re-armed poll's first report can carry one. A fresh
 * poll then reports the readiness of now (at worst a repeat), else that
 * edge would be lost: a registered io_uring eventfd, whose every signal
 * ends our poll (EPOLL_URING_WAKE), once lost one that way.
 */
static int uring_rearm(void *state, int fd, uint32_t directions)
{
    uring_backend *b = state;
    if (atomic_load_explicit(&b->quiet_count, memory_order_relaxed) == 0)
        return 0;
    int rc = 0;
    bool queued = false;
    asyncio__mutex_lock(&b->lock);
    uring_reg *r = reg_live(b, fd);
    if (r != NULL && (r->quiet & QUIET_HELD) != 0) {
        if ((rc = queue_remove(b, fd, r)) == 0 && (rc = queue_add(b, fd, r)) == 0)
            queued = true;
        else
            r->interest = 0; /* out of SQ space: gone rather than half-made (as modify) */
    } else if (r != NULL) {
        set_quiet(b, r, r->quiet & ~directions);
    }
    asyncio__mutex_unlock(&b->lock);
    if (queued)
        asyncio__poller_kick(b->owner); /* a blocked owner submits it at its next wait */
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                   */

static uint32_t from_poll(uint32_t ev)
{
    uint32_t r = 0;
    if (ev & EPOLLIN)
        r |= ASYNCIO_READABLE;
    if (ev & EPOLLOUT)
        r |= ASYNCIO_WRITABLE;
    if (ev & EPOLLPRI)
        r |= ASYNCIO_PRIORITY;
    if (ev & EPOLLERR)
        r |= ASYNCIO_ERROR;
    if (ev & EPOLLHUP)
        r |= ASYNCIO_READ_CLOSED | ASYNCIO_WRITE_CLOSED;
    if (ev & EPOLLRDHUP)
        r |= ASYNCIO_READ_CLOSED;
    return r;
}

/*
 * Lock held. Turns one CQE into readiness for its registration (0: nothing
 * to report) and applies the mode: what must be queued again is queued.
 */
static uint32_t take_cqe(uring_backend *b, const struct io_uring_cqe *c, uring_reg **out)
{
    if (c->user_data & UD_INTERNAL)
        return 0;
    int fd = (int)(uint32_t)c->user_data;
    uint32_t gen = (uint32_t)(c->user_data >> 32) & GEN_MASK;
    uring_reg *r = reg_at(b, fd);
    if (r == NULL)
        return 0;
    bool more = (c->flags & IORING_CQE_F_MORE) != 0;
    if (r->interest == 0 || (r->gen & GEN_MASK) != gen) {
        /* Changed or removed since it was queued: dropped. Its last CQE: it has ended. */
        if (!more)
            ending_forget(b, c->user_data);
        return 0;
    }
    if (!more)
        r->in_kernel = false;
    uint32_t ready = 0, known = r->quiet & ~QUIET_HELD, held = r->quiet & QUIET_HELD;
    if (c->res == -ECANCELED) {
        known = 0; /* not ours (we bump the generation first): its submitter exited */
    } else if (c->res < 0) {
        /* Cannot poll it any more (e.g. EINVAL): say so once; reregister to try again. */
        *out = r;
        return ASYNCIO_ERROR;
    } else {
        /*
         * The first report of a poll re-armed after the kernel ended the
         * previous one (below) is its arm-time readiness: held back when it
         * says nothing the caller was not told by that poll's last CQE
         * (QUIET_HELD remembers it for uring_rearm).
         */
        ready = from_poll((uint32_t)c->res);
        if (known != 0) {
            if (ready != 0 && (ready & ~known) == 0) {
                ready = 0;
                held = QUIET_HELD;
            }
            known |= ready;
            set_quiet(b, r, held);
        } else {
            known = ready;
        }
    }
    if (!more && (r->mode != ASYNCIO_ONESHOT || c->res == -ECANCELED)) {
        /*
         * A poll we still want has ended: a level poll after each report
         * (that is how level is made), or one the kernel ended: CQ overflow
         * (a multishot poll stops when its CQE does not fit) or its
         * submitter exited. Queue a new one; a fresh poll reports the
         * readiness of the moment, so no edge is lost. After an overflow the
         * caller has this CQE's readiness in hand: `quiet` keeps the new
         * edge poll from repeating it (until rearm_fd says those directions
         * were drained).
         */
        if (queue_add(b, fd, r) < 0)
            ready |= ASYNCIO_ERROR; /* SQ full and the kernel busy: the caller must reregister */
        else if (r->mode == ASYNCIO_EDGE)
            set_quiet(b, r, known | held);
    }
    *out = r;
    return ready;
}

/* Lock held, owner only: moves CQEs into out[0..cap) (merging per fd); returns the count. */
static size_t reap(uring_backend *b, asyncio_event *out, size_t cap)
{
    asyncio__uring *ring = &b->ring;
    unsigned head = atomic_load_explicit(ring->cq_head, memory_order_relaxed);
    unsigned tail = atomic_load_explicit(ring->cq_tail, memory_order_acquire);
    size_t got = 0;
    uint32_t batch = ++b->batch;
    while (head != tail && got < cap) {
        uring_reg *r = NULL;
        const struct io_uring_cqe *c = &ring->cqes[head & ring->cq_mask];
        if ((c->user_data & (UD_INTERNAL | UD_OP)) == UD_OP) {
            /* A completion operation: kept for the handler (uring_comp.c), run after unlock. */
            if (!asyncio__uring_comp_take(b, c))
                break; /* the batch is full: the rest waits for the next pass */
            head++;
            continue;
        }
        uint32_t ready = take_cqe(b, c, &r);
        head++;
        if (ready == 0)
            continue;
        /*
         * The stamp is a hint: any slot below `got` holding r's token was
         * filled by this pass (tokens name one registration), so a stale
         * or truncated stamp can only miss a merge, never merge wrongly.
         */
        if (r->batch == (uint16_t)batch && r->slot < got && out[r->slot].token == r->token) {
            out[r->slot].readiness |= ready;
            continue;
        }
        r->batch = (uint16_t)batch;
        r->slot = (uint16_t)got;
        out[got].token = r->token;
        out[got].readiness = ready;
        got++;
    }
    /* Release: our reads of the CQEs are done before the kernel may reuse their slots. */
    atomic_store_explicit(ring->cq_head, head, memory_order_release);
    return got;
}

static int uring_wait(void *state, asyncio_event *out, size_t cap, int timeout_ms, size_t *n_out)
{
    uring_backend *b = state;
    unsigned to_submit = asyncio__uring_pending(&b->ring);

    /*
     * CQEs already there: no need to block; nothing to submit either and no
     * completion deferred as task work (a COOP_TASKRUN ring): no syscall at all.
     */
    unsigned ready = asyncio__uring_cq_ready(&b->ring);
    timeout_ms = asyncio__uring_comp_wait_cap(b, timeout_ms); /* a trim may be due */
    bool wait = timeout_ms != 0 && ready == 0;
    int rc = 0;
    if (to_submit > 0 || wait || asyncio__uring_cq_overflowed(&b->ring) ||
        asyncio__uring_taskrun_pending(&b->ring)) {
        rc = asyncio__uring_enter(&b->ring, to_submit, wait, timeout_ms);
        ready = asyncio__uring_cq_ready(&b->ring);
    }
    size_t got = 0;
    if (ready > 0) {
        asyncio__mutex_lock(&b->lock);
        got = reap(b, out, cap);
        asyncio__mutex_unlock(&b->lock);
        /*
         * Completions wait in the batch for the caller's deliver() (after
         * this wait returned, like readiness events); one event with the
         * handler's token makes the wait return and says they are there.
         */
        if (b->comp.n_batch > 0 && got < cap) {
            out[got].token = b->comp.token;
            out[got].readiness = 0;
            got++;
        }
    }
    *n_out = got;
    asyncio__uring_comp_after_wait(b, rc == 0 ? got : 1, wait ? timeout_ms : 0);
    if (got > 0 || rc == ASYNCIO_EINTR)
        return got > 0 ? 0 : rc;
    /* EBUSY / EAGAIN: the kernel is short of room for completions; the next wait retries. */
    return rc == ASYNCIO_EBUSY || rc == ASYNCIO_EAGAIN ? 0 : rc;
}

const asyncio__backend_ops asyncio__uring_ops = {
    "uring",      uring_init,  uring_destroy, uring_add, uring_modify,
    uring_remove, uring_rearm, uring_wait,    NULL, uring_remove_close,
};
