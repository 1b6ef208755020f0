/*
 * poll(2) backend: the portable fallback (ASYNCIO_BACKEND=poll on Linux).
 *
 * poll(2) only knows level readiness, so this file keeps the registrations
 * itself and emulates the other modes:
 *
 *   LEVEL    what poll(2) reports.
 *   ONESHOT  after one event the registration is disarmed (left out of the
 *            poll set) until modify() re-arms it.
 *   EDGE     after an event, the directions it reported are *disarmed*:
 *            left out of the poll set, so a source that stays ready is not
 *            reported again and never makes poll(2) spin. A direction is
 *            re-armed (its next readiness is a new edge) when
 *              - the caller says it hit EAGAIN: asyncio_poller_rearm_fd(),
 *                no syscall. This is the exact signal: readiness that
 *                returns before the next wait is reported;
 *              - or, for callers that do not say so, the zero-timeout probe
 *                poll(2) run before each wait finds it no longer ready.
 *                Without the rearm call, readiness that went away and came
 *                back between two waits cannot be seen (poll(2) has no
 *                history), so portable edge code calls rearm.
 *            Difference from epoll: new data arriving on a source that was
 *            never drained does not fire again (docs/backends.md).
 *
 * Registrations live in `regs`, indexed by fd, plus a dense list of the
 * registered fds. Every change bumps the registration's generation; the
 * owner snapshots generations when it builds a poll set and drops results
 * whose registration changed while it was blocked.
 *
 * Locking: `lock` guards regs / fds. The owner builds the poll set under
 * the lock, calls poll(2) without it, then processes results under it.
 * A change made from another thread kicks the owner (asyncio__poller_kick)
 * so the blocked poll(2) returns and the next one sees the change.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "platform/os_table.h"
#include "poller/poller_int.h"
#include "util/alloc.h"

#ifndef POLLRDHUP
#define POLLRDHUP 0
#endif

typedef struct poll_reg {
    uintptr_t token;
    uint32_t interest;  /* 0: not registered */
    uint32_t disarmed;  /* interest directions not to report until re-armed */
    uint32_t gen;       /* bumped on every change */
    uint32_t slot;      /* index in fds[] */
    asyncio_trigger mode;
} poll_reg;

typedef struct poll_backend {
    asyncio_poller *owner;
    asyncio__mutex lock;
    poll_reg *regs; /* indexed by fd */
    size_t regs_cap;
    int *fds; /* dense list of registered fds */
    size_t nfds, fds_cap;
    /*
     * Owner-only scratch for building poll sets: POLL_SCRATCH_MIN entries from init,
     * grown by a wait when more fds are registered. If it cannot grow (out of memory) a
     * wait polls the registrations that fit, starting at set_from and advancing it, so
     * every one gets its turn: failing the wait instead would cost the runtime's driver a
     * back-off per wait for as long as memory stays short (docs/io-driver.md).
     */
    struct pollfd *pfds;
    uint32_t *pgen;
    size_t pfds_cap;
    size_t set_from;
    size_t rotate; /* where the next result scan starts (fairness) */
} poll_backend;

#define POLL_SCRATCH_MIN 64

static int poll_init(asyncio_poller *owner, void **state)
{
    poll_backend *b = asyncio__calloc(1, sizeof *b);
    if (b == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__mutex_init(&b->lock);
    if (rc < 0) {
        asyncio__free(b);
        return rc;
    }
    b->owner = owner;
    b->pfds = asyncio__malloc(POLL_SCRATCH_MIN * sizeof *b->pfds);
    b->pgen = asyncio__malloc(POLL_SCRATCH_MIN * sizeof *b->pgen);
    if (b->pfds == NULL || b->pgen == NULL) {
        asyncio__free(b->pfds);
        asyncio__free(b->pgen);
        asyncio__mutex_destroy(&b->lock);
        asyncio__free(b);
        return ASYNCIO_ENOMEM;
    }
    b->pfds_cap = POLL_SCRATCH_MIN;
    *state = b;
    return 0;
}

static void poll_destroy(void *state)
{
    poll_backend *b = state;
    asyncio__mutex_destroy(&b->lock);
    asyncio__free(b->regs);
    asyncio__free(b->fds);
    asyncio__free(b->pfds);
    asyncio__free(b->pgen);
    asyncio__free(b);
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

/* Grows arrays (lock held) so that fd fits and one more fd can be listed. */
static int reserve(poll_backend *b, int fd)
{
    void *regs = b->regs;
    int rc = asyncio__grow_zeroed(&regs, &b->regs_cap, (size_t)fd + 1, sizeof *b->regs);
    b->regs = regs;
    if (rc < 0)
        return rc;
    if (b->nfds == b->fds_cap) {
        size_t cap = b->fds_cap ? b->fds_cap * 2 : 64;
        int *f = asyncio__realloc(b->fds, cap * sizeof *f);
        if (f == NULL)
            return ASYNCIO_ENOMEM;
        b->fds = f;
        b->fds_cap = cap;
    }
    return 0;
}

static poll_reg *lookup(poll_backend *b, int fd)
{
    if ((size_t)fd >= b->regs_cap || b->regs[fd].interest == 0)
        return NULL;
    return &b->regs[fd];
}

static void set_reg(poll_reg *r, uintptr_t token, uint32_t interest, asyncio_trigger mode)
{
    r->token = token;
    r->interest = interest;
    r->mode = mode;
    r->disarmed = 0;
    r->gen++;
}

/* Lock held: forgets fd (swap-remove from the dense list). */
static void unlist(poll_backend *b, int fd)
{
    poll_reg *r = &b->regs[fd];
    uint32_t slot = r->slot;
    int last = b->fds[--b->nfds];
    b->fds[slot] = last;
    b->regs[last].slot = slot;
    r->interest = 0;
    r->gen++;
}

static int poll_add(void *state, int fd, uintptr_t token, uint32_t interest, asyncio_trigger mode)
{
    poll_backend *b = state;
    if (!fd_is_open(fd))
        return ASYNCIO_EBADF;
    asyncio__mutex_lock(&b->lock);
    int rc = lookup(b, fd) != NULL ? ASYNCIO_EEXIST : reserve(b, fd);
    if (rc == 0) {
        poll_reg *r = &b->regs[fd];
        set_reg(r, token, interest, mode);
        r->slot = (uint32_t)b->nfds;
        b->fds[b->nfds++] = fd;
    }
    asyncio__mutex_unlock(&b->lock);
    if (rc == 0)
        asyncio__poller_kick(b->owner);
    return rc;
}

static int poll_modify(void *state, int fd, uintptr_t token, uint32_t interest,
                       asyncio_trigger mode)
{
    poll_backend *b = state;
    if (!fd_is_open(fd))
        return ASYNCIO_EBADF;
    asyncio__mutex_lock(&b->lock);
    poll_reg *r = lookup(b, fd);
    if (r != NULL)
        set_reg(r, token, interest, mode);
    asyncio__mutex_unlock(&b->lock);
    if (r == NULL)
        return ASYNCIO_ENOENT;
    asyncio__poller_kick(b->owner);
    return 0;
}

static int poll_remove(void *state, int fd)
{
    poll_backend *b = state;
    if (!fd_is_open(fd))
        return ASYNCIO_EBADF;
    asyncio__mutex_lock(&b->lock);
    poll_reg *r = lookup(b, fd);
    if (r != NULL)
        unlist(b, fd);
    asyncio__mutex_unlock(&b->lock);
    /* No kick: a stale result is dropped by the generation check. */
    return r != NULL ? 0 : ASYNCIO_ENOENT;
}

static int poll_rearm(void *state, int fd, uint32_t directions)
{
    poll_backend *b = state;
    asyncio__mutex_lock(&b->lock);
    poll_reg *r = lookup(b, fd);
    bool changed = false;
    if (r != NULL && r->mode == ASYNCIO_EDGE && (r->disarmed & directions) != 0) {
        r->disarmed &= ~directions;
        changed = true;
    }
    asyncio__mutex_unlock(&b->lock);
    if (r == NULL)
        return ASYNCIO_ENOENT;
    if (changed)
        asyncio__poller_kick(b->owner); /* a blocked owner must add it to its poll set */
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Readiness mapping                                                         */

static short to_poll(uint32_t dirs)
{
    short ev = 0;
    if (dirs & ASYNCIO_READABLE)
        ev |= POLLIN | POLLRDHUP;
    if (dirs & ASYNCIO_WRITABLE)
        ev |= POLLOUT;
    if (dirs & ASYNCIO_PRIORITY)
        ev |= POLLPRI;
    return ev;
}

/* Which of `dirs` a result makes active (errors and hang-ups wake every direction). */
static uint32_t active_dirs(short rev, uint32_t dirs)
{
    uint32_t a = 0;
    if (rev & (POLLERR | POLLHUP))
        return dirs;
    if (rev & (POLLIN | POLLRDHUP))
        a |= ASYNCIO_READABLE;
    if (rev & POLLOUT)
        a |= ASYNCIO_WRITABLE;
    if (rev & POLLPRI)
        a |= ASYNCIO_PRIORITY;
    return a & dirs;
}

static uint32_t from_poll(short rev, uint32_t armed)
{
    uint32_t r = 0;
    if (rev & POLLIN)
        r |= ASYNCIO_READABLE;
    if (rev & POLLOUT)
        r |= ASYNCIO_WRITABLE;
    if (rev & POLLPRI)
        r |= ASYNCIO_PRIORITY;
    r &= armed;
    if (rev & POLLERR)
        r |= ASYNCIO_ERROR;
    if (rev & POLLHUP)
        r |= ASYNCIO_READ_CLOSED | ASYNCIO_WRITE_CLOSED;
    if (rev & POLLRDHUP)
        r |= ASYNCIO_READ_CLOSED;
    return r;
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                   */

static int reserve_scratch(poll_backend *b, size_t n)
{
    if (n <= b->pfds_cap)
        return 0;
    size_t cap = b->pfds_cap ? b->pfds_cap : 64;
    while (cap < n)
        cap *= 2;
    struct pollfd *p = asyncio__realloc(b->pfds, cap * sizeof *p);
    if (p == NULL)
        return ASYNCIO_ENOMEM;
    b->pfds = p;
    uint32_t *g = asyncio__realloc(b->pgen, cap * sizeof *g);
    if (g == NULL)
        return ASYNCIO_ENOMEM;
    b->pgen = g;
    b->pfds_cap = cap;
    return 0;
}

/*
 * Lock held. Builds the poll set: with probe, edge registrations' disarmed
 * directions plus fully disarmed oneshot registrations with no events (the
 * probe only looks for POLLNVAL on those); otherwise every registration's
 * armed directions. At most pfds_cap entries: when the scratch could not
 * grow, the registrations from set_from on, wrapping (see poll_backend).
 */
static size_t build_set(poll_backend *b, bool probe)
{
    size_t n = 0, from = 0;
    bool partial = b->nfds > b->pfds_cap; /* the scratch could not grow: see set_from */
    if (partial)
        from = b->set_from % b->nfds;
    for (size_t j = 0; j < b->nfds && n < b->pfds_cap; j++) {
        size_t i = from + j < b->nfds ? from + j : from + j - b->nfds;
        if (partial)
            b->set_from = i + 1;
        int fd = b->fds[i];
        poll_reg *r = &b->regs[fd];
        uint32_t dirs;
        bool include;
        if (probe) {
            dirs = r->mode == ASYNCIO_EDGE ? r->disarmed : 0;
            /*
             * A disarmed oneshot fd is in neither set otherwise, so if it is
             * closed while registered POLLNVAL is never seen and it is never
             * forgotten (its number stays "registered" after reuse).
             */
            include = dirs != 0 || (r->mode == ASYNCIO_ONESHOT && r->disarmed != 0);
        } else {
            dirs = r->interest & ~r->disarmed;
            include = dirs != 0;
        }
        if (!include)
            continue; /* left out entirely, so hang-ups cannot make poll(2) spin */
        b->pfds[n] = (struct pollfd){.fd = fd, .events = to_poll(dirs), .revents = 0};
        b->pgen[n] = r->gen;
        n++;
    }
    return n;
}

static int sys_poll(struct pollfd *pfds, size_t n, int timeout_ms)
{
    int rc = asyncio__os.poll(pfds, (nfds_t)n, timeout_ms);
    return rc < 0 ? -errno : rc;
}

/*
 * Re-arms edge directions that the caller has drained since they were
 * reported, and forgets disarmed fds that were closed while registered.
 */
static int probe_disarmed(poll_backend *b)
{
    asyncio__mutex_lock(&b->lock);
    (void)reserve_scratch(b, b->nfds); /* on ENOMEM: probe what fits (build_set) */
    size_t n = build_set(b, true);
    asyncio__mutex_unlock(&b->lock);
    if (n == 0)
        return 0;
    int rc = sys_poll(b->pfds, n, 0);
    if (rc < 0)
        return rc;
    asyncio__mutex_lock(&b->lock);
    for (size_t i = 0; i < n; i++) {
        poll_reg *r = lookup(b, b->pfds[i].fd);
        if (r == NULL || r->gen != b->pgen[i])
            continue;
        if (b->pfds[i].revents & POLLNVAL) {
            unlist(b, b->pfds[i].fd); /* closed behind our back: forget it, as epoll does */
            continue;
        }
        if (r->mode != ASYNCIO_EDGE)
            continue; /* a disarmed oneshot stays disarmed until modify() */
        uint32_t still = active_dirs(b->pfds[i].revents, r->disarmed);
        r->disarmed = still;
    }
    asyncio__mutex_unlock(&b->lock);
    return 0;
}

/* Lock held: turns one result into an event (or nothing) and applies the mode. */
static bool take_result(poll_backend *b, size_t i, asyncio_event *ev)
{
    struct pollfd *pf = &b->pfds[i];
    if (pf->revents == 0)
        return false;
    poll_reg *r = lookup(b, pf->fd);
    if (r == NULL || r->gen != b->pgen[i])
        return false; /* changed or removed while we were blocked */
    if (pf->revents & POLLNVAL) {
        unlist(b, pf->fd); /* closed behind our back: forget it, as epoll does */
        return false;
    }
    uint32_t armed = r->interest & ~r->disarmed;
    uint32_t active = active_dirs(pf->revents, armed);
    if (active == 0)
        return false;
    ev->token = r->token;
    ev->readiness = from_poll(pf->revents, armed);
    if (r->mode == ASYNCIO_EDGE)
        r->disarmed |= active;
    else if (r->mode == ASYNCIO_ONESHOT)
        r->disarmed = r->interest;
    return true;
}

static int poll_wait(void *state, asyncio_event *out, size_t cap, int timeout_ms, size_t *n_out)
{
    poll_backend *b = state;
    int rc = probe_disarmed(b);
    if (rc < 0)
        return rc;

    asyncio__mutex_lock(&b->lock);
    (void)reserve_scratch(b, b->nfds); /* on ENOMEM: poll what fits (build_set) */
    size_t n = build_set(b, false);
    asyncio__mutex_unlock(&b->lock);

    int ready = sys_poll(b->pfds, n, timeout_ms);
    if (ready < 0)
        return ready;

    size_t got = 0;
    asyncio__mutex_lock(&b->lock);
    size_t start = n ? b->rotate % n : 0, i = 0;
    for (; i < n && got < cap; i++) {
        if (take_result(b, (start + i) % n, &out[got]))
            got++;
    }
    b->rotate = start + i;
    asyncio__mutex_unlock(&b->lock);
    *n_out = got;
    return 0;
}

const asyncio__backend_ops asyncio__poll_ops = {
    "poll",      poll_init,  poll_destroy, poll_add, poll_modify,
    poll_remove, poll_rearm, poll_wait,    NULL, NULL,
};
