/*
 * Listeners on the completion path: one multishot accept per listening
 * socket and the queue of connections it accepted (see comp.h,
 * "listeners", for the protocol and the lifetime rule).
 *
 * States (all under `lock`):
 *   armed       the multishot request is queued or in flight (its cop is
 *               on the driver's ops list); its last completion clears it;
 *   stopping    ... and a cancel was asked (queue full, or close);
 *   direct      an error was reported: the next poll tries accept(2) once
 *               before arming again;
 *   closed      the owner closed it: completions close their fds.
 * `refs` counts the owner (until its close is done) and the request in
 * flight: whoever drops the last frees the acceptor. The owner keeps its
 * reference across the cancel it submits, so a last completion handled
 * meanwhile on another thread cannot free the request it names.
 * The queue is a ring of fds (grown by doubling: completions that arrive
 * while a cancel is on its way still find room).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "platform/socket.h"
#include "reactor/comp.h"
#include "util/alloc.h"

struct asyncio__cacceptor {
    asyncio__cop op; /* first: the cop's address is the acceptor's */
    asyncio__spinlock lock;
    asyncio_waker waker;
    int fd;
    int err; /* the error that ended the request, not reported yet (0: none) */
    int *q;  /* accepted fds: q[(head + i) % cap] for i < len */
    uint32_t head, len, cap;
    uint8_t refs; /* the owner's (until close is done) + the request's (while armed) */
    bool armed, stopping, direct, closed;
};

#define CACCEPT_QUEUE_MIN 16u

bool asyncio__comp_accepts(const asyncio__comp_driver *cd)
{
    return asyncio__comp_has(cd, ASYNCIO__COP_ACCEPT_MULTI);
}

int asyncio__cacceptor_new(asyncio__comp_driver *cd, int fd, asyncio__cacceptor **out)
{
    asyncio__cacceptor *a = asyncio__calloc(1, sizeof *a);
    if (a == NULL)
        return ASYNCIO_ENOMEM;
    atomic_init(&a->lock.held, false);
    asyncio__list_node_init(&a->op.node);
    a->op.cd = cd;
    a->waker = ASYNCIO_WAKER_EMPTY;
    a->fd = fd;
    a->refs = 1;
    *out = a;
    return 0;
}

/* lock held: appends fd; false when the queue could not grow (ENOMEM). */
static bool push_locked(asyncio__cacceptor *a, int fd)
{
    if (a->len == a->cap) {
        uint32_t cap = a->cap == 0 ? CACCEPT_QUEUE_MIN : a->cap * 2;
        int *q = asyncio__malloc(cap * sizeof *q);
        if (q == NULL)
            return false;
        for (uint32_t i = 0; i < a->len; i++)
            q[i] = a->q[(a->head + i) % a->cap];
        asyncio__free(a->q);
        a->q = q;
        a->head = 0;
        a->cap = cap;
    }
    a->q[(a->head + a->len) % a->cap] = fd;
    a->len++;
    return true;
}

/* lock held: takes the oldest fd (the queue is not empty). */
static int pop_locked(asyncio__cacceptor *a)
{
    int fd = a->q[a->head];
    a->head = (a->head + 1) % a->cap;
    a->len--;
    return fd;
}

/*
 * Errors that end one connection, not the listener (accept(2)'s own
 * retry list, src/platform/socket.c): the request is armed again.
 */
static bool per_connection(int32_t res)
{
    return res == ASYNCIO_ECONNABORTED || res == ASYNCIO_EPROTO || res == ASYNCIO_EPERM ||
           res == ASYNCIO_EINTR || res == ASYNCIO_EAGAIN || res == ASYNCIO_ENETDOWN ||
           res == ASYNCIO_ENETUNREACH || res == ASYNCIO_EHOSTUNREACH;
}

static void acceptor_free(asyncio__cacceptor *a)
{
    while (a->len > 0)
        (void)asyncio__sock_close(pop_locked(a));
    asyncio__free(a->q);
    asyncio__free(a);
}

/* One completion of the request: a connection, or (last) how it ended. */
static void on_accept(asyncio__cacceptor *a, int32_t res, bool last)
{
    int close_fd = -1;
    bool cancel = false, free_now = false;
    asyncio__spin_lock(&a->lock);
    if (res >= 0) {
        if (a->closed || !push_locked(a, (int)res))
            close_fd = (int)res; /* nobody will take it (or no room: the peer sees a reset) */
        else if (a->len >= ASYNCIO__CACCEPT_HIGH && !a->stopping && !last) {
            a->stopping = true; /* enough waiting: leave the rest in the backlog */
            cancel = true;
        }
    } else if (last && !per_connection(res) &&
               !(res == ASYNCIO_ECANCELED && (a->stopping || a->closed))) {
        a->err = res; /* EMFILE, ...: reported after the queued connections */
    }
    if (last) {
        a->armed = false;
        a->stopping = false;
        free_now = --a->refs == 0;
    }
    asyncio_waker w = a->waker;
    a->waker = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_unlock(&a->lock);
    if (close_fd >= 0)
        (void)asyncio__sock_close(close_fd);
    if (cancel)
        asyncio__comp_cancel(&a->op);
    asyncio_waker_wake(&w);
    if (free_now)
        acceptor_free(a);
}

static void on_accept_more(asyncio__cop *op, int32_t res)
{
    on_accept((asyncio__cacceptor *)op, res, false);
}

static void on_accept_last(asyncio__cop *op, int32_t res)
{
    on_accept((asyncio__cacceptor *)op, res, true);
}

/* The caller owns fd now: the peer's address if asked. */
static int hand_out(int fd, int *fd_out, asyncio_sockaddr *peer)
{
    if (peer != NULL) {
        int rc = asyncio__sock_peer_addr(fd, peer);
        if (rc < 0) {
            (void)asyncio__sock_close(fd);
            return rc == ASYNCIO_ENOTCONN ? ASYNCIO_ECONNABORTED : rc;
        }
    }
    *fd_out = fd;
    return 0;
}

int asyncio__cacceptor_poll(asyncio__cacceptor *a, asyncio_context *cx, int *fd_out,
                            asyncio_sockaddr *peer)
{
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_lock(&a->lock);
    if (a->len > 0) {
        int fd = pop_locked(a);
        asyncio__spin_unlock(&a->lock);
        return hand_out(fd, fd_out, peer);
    }
    if (a->err != 0) {
        int err = a->err;
        a->err = 0;
        a->direct = true;
        asyncio__spin_unlock(&a->lock);
        return err;
    }
    bool direct = a->direct && !a->armed;
    asyncio__spin_unlock(&a->lock);
    if (direct) {
        /* After an error: one accept(2), as the readiness path retries after a back-off. */
        int fd = asyncio__sock_accept(a->fd, peer);
        if (fd >= 0) {
            *fd_out = fd;
            return 0;
        }
        if (fd != ASYNCIO_EAGAIN)
            return fd;
        asyncio__spin_lock(&a->lock);
        a->direct = false;
        asyncio__spin_unlock(&a->lock);
    }
    asyncio__spin_lock(&a->lock);
    if (a->len > 0 || a->err != 0) { /* a completion came meanwhile */
        asyncio__spin_unlock(&a->lock);
        return asyncio__cacceptor_poll(a, cx, fd_out, peer);
    }
    if (!asyncio_waker_will_wake(&a->waker, cx->waker)) {
        old = a->waker;
        a->waker = asyncio_waker_clone(cx->waker);
    }
    bool arm = !a->armed;
    if (arm) {
        a->armed = true;
        a->refs++;
    }
    asyncio__spin_unlock(&a->lock);
    asyncio_waker_drop(&old);
    if (arm) {
        asyncio__cop_req req = {.kind = ASYNCIO__COP_ACCEPT_MULTI, .fd = a->fd};
        int rc = asyncio__comp_start_multi(a->op.cd, &a->op, on_accept_more, on_accept_last, &req);
        if (rc < 0) {
            asyncio__spin_lock(&a->lock);
            a->armed = false;
            a->refs--;
            asyncio__spin_unlock(&a->lock);
            return rc;
        }
    }
    return ASYNCIO_PENDING;
}

void asyncio__cacceptor_close(asyncio__cacceptor *a)
{
    asyncio__spin_lock(&a->lock);
    a->closed = true;
    bool armed = a->armed, cancel = armed && !a->stopping;
    a->stopping = a->stopping || armed;
    while (armed && a->len > 0) /* the peers see the reset now, not at the last completion */
        (void)asyncio__sock_close(pop_locked(a));
    asyncio_waker w = a->waker;
    a->waker = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_unlock(&a->lock);
    asyncio_waker_drop(&w);
    if (cancel)
        asyncio__comp_cancel(&a->op); /* may find it ended already: nothing to cancel then */
    asyncio__spin_lock(&a->lock);
    bool free_now = --a->refs == 0;
    asyncio__spin_unlock(&a->lock);
    if (free_now)
        acceptor_free(a); /* the queued fds are closed here */
}
