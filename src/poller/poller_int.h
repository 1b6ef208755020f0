/*
 * Internal contract between the poller core (poller.c, user_source.c) and
 * the backends (epoll.c, poll.c, ...).
 *
 * The core owns: argument validation, backend selection, the wake-up
 * channel (platform notify), user-space readiness, EINTR retries and the
 * timeout budget. A backend owns only its kernel object and the mapping of
 * (fd, token, interest, mode) to it. Backends report the notify fd's events
 * with token ASYNCIO_TOKEN_RESERVED; the core filters them out.
 */
#ifndef ASYNCIO_POLLER_INT_H
#define ASYNCIO_POLLER_INT_H

#include <stdatomic.h>
#include <stdbool.h>

#include "asyncio/poll.h"
#include "platform/platform.h"
#include "platform/thread.h"
#include "util/list.h"

typedef struct asyncio__backend_ops {
    const char *name;
    /* Creates the backend state for `owner`. 0 or a negative error. */
    int (*init)(asyncio_poller *owner, void **state);
    void (*destroy)(void *state);
    /* Arguments are validated by the core; errors are negative errno. */
    int (*add)(void *state, int fd, uintptr_t token, uint32_t interest, asyncio_trigger mode);
    int (*modify)(void *state, int fd, uintptr_t token, uint32_t interest, asyncio_trigger mode);
    int (*remove)(void *state, int fd);
    /* Re-arms emulated edge directions after the caller hit EAGAIN (see poll.h). */
    int (*rearm)(void *state, int fd, uint32_t directions);
    /*
     * Waits at most timeout_ms (-1: forever) and writes up to `cap` events.
     * Returns 0, -EINTR (the core retries with the remaining time) or another
     * negative error.
     */
    int (*wait)(void *state, asyncio_event *out, size_t cap, int timeout_ms, size_t *n_out);
    /*
     * Optional: the backend's own wake-up (kqueue's EVFILT_USER). When set, the
     * core creates no notify fd: it calls wake() to interrupt a wait, and the
     * backend reports the wake-up with token ASYNCIO_TOKEN_RESERVED and resets
     * it by itself. NULL: the core registers its platform notify channel.
     * Thread-safe, never blocks.
     */
    void (*wake)(void *state);
    /*
     * Optional: remove(fd), then close(fd) in the same submission to the
     * kernel (io_uring: an IORING_OP_CLOSE queued after the poll's cancel,
     * one io_uring_enter for both). *closed says whether the close was
     * queued; if false the caller closes fd itself. The caller owns fd: it
     * is the registered file (never closed behind the poller's back), so
     * the backend need not check its identity. NULL: remove only.
     */
    int (*remove_close)(void *state, int fd, bool *closed);
} asyncio__backend_ops;

/* Which backends are compiled in is decided by CMake (ASYNCIO_HAVE_<BACKEND>). */
#ifdef ASYNCIO_HAVE_EPOLL
extern const asyncio__backend_ops asyncio__epoll_ops;
#endif
#ifdef ASYNCIO_HAVE_KQUEUE
extern const asyncio__backend_ops asyncio__kqueue_ops;
#endif
#ifdef ASYNCIO_HAVE_URING
extern const asyncio__backend_ops asyncio__uring_ops;
/* The uring backend's completion operations (poller/completion.h, uring_comp.c). */
extern const struct asyncio__completion_ops asyncio__uring_comp_ops;
#endif
#ifdef ASYNCIO_HAVE_IOCP
extern const asyncio__backend_ops asyncio__iocp_ops;
#else
extern const asyncio__backend_ops asyncio__poll_ops;
#endif

struct asyncio_poller {
    const asyncio__backend_ops *ops;
    void *backend;
    asyncio__notify notify; /* both fds -1 when the backend has its own wake() */

    /* Guards everything below, and every registered user source's fields. */
    asyncio__mutex lock;
    asyncio__list ready;  /* user sources with an event to deliver */
    size_t user_sources;  /* registered user sources (wakers included) */
    bool waiting;         /* the owner is (about to be) blocked in the backend */
    bool signaled;        /* notify written since the owner last woke */

    bool user_first; /* owner only: alternates user / fd delivery order */
    unsigned hints;  /* ASYNCIO__POLLER_* given at creation (read by the backend's init) */
};

/*
 * Creation hint: the poller is a runtime's driver, whose threads enter the
 * kernel often (they wait on it, park, make system calls). A backend may
 * then trade promptness for speed (uring: COOP_TASKRUN, see uring.c): work
 * the kernel does for a thread's request may wait for that thread's next
 * kernel entry; a thread that sleeps is still woken for it, so nothing is
 * lost, only delayed while the submitter runs in user space.
 */
#define ASYNCIO__POLLER_COOP 1u

/*
 * Creation hint: a multi-thread runtime worker's own ring (src/reactor/comp.c,
 * "Rings"): the uring backend or nothing (no fallback), set up
 * SINGLE_ISSUER | COOP_TASKRUN, for completion operations only (no
 * registrations, no notify fd, never waited on with a timeout). Made, used
 * and (until its thread exits) entered by one thread only. ASYNCIO_ENOTSUP
 * where that cannot be had.
 */
#define ASYNCIO__POLLER_WORKER 2u

/* asyncio_poller_new() with creation hints (ASYNCIO__POLLER_*); same errors. */
int asyncio__poller_new_hinted(asyncio_poller **out, unsigned hints);

/*
 * Deregisters fd (asyncio_poller_deregister_fd) and, where the backend can
 * (remove_close above), closes it in the same submission: *closed is then
 * true and fd is gone (close's own result is not reported: a socket's
 * close cannot fail in a way the caller could act on). Else *closed is
 * false and the caller closes fd. Errors: those of deregister.
 */
int asyncio__poller_deregister_close_fd(asyncio_poller *p, int fd, bool *closed);

/*
 * User-space readiness. `readiness` and `poller` are atomics so that
 * set_readiness and register can race safely (Dekker-style, both
 * seq_cst: at least one side sees the other's store). Every other field is
 * guarded by the lock of the poller the source is registered with.
 */
struct asyncio_user_source {
    asyncio_source base;
    _Atomic uint32_t readiness;
    _Atomic(asyncio_poller *) poller; /* non-NULL while registered */
    uintptr_t token;
    uint32_t interest;
    asyncio_trigger mode;
    bool armed;               /* false: oneshot delivered, waiting for reregister */
    asyncio__list ready_node; /* linked on poller->ready while an event is due */
};

/*
 * Wakes the owner if it is blocked in the backend. Called by backends whose
 * registrations live in user space (poll) after a change made from another
 * thread, and by user sources. Takes poller->lock.
 */
void asyncio__poller_kick(asyncio_poller *p);

/* Same, with poller->lock held; returns true if the caller must signal notify after unlocking. */
bool asyncio__poller_kick_locked(asyncio_poller *p);

/* Interrupts the owner's wait: the backend's wake() or the notify channel. No lock needed. */
void asyncio__poller_signal(asyncio_poller *p);

/*
 * Moves due user-source events into out[0..cap) (lock held); returns the
 * count. Implemented in user_source.c.
 */
size_t asyncio__user_deliver_locked(asyncio_poller *p, asyncio_event *out, size_t cap);

/* Validation shared by every register entry point. */
int asyncio__poller_check_args(const asyncio_poller *p, uintptr_t token, uint32_t interest,
                               asyncio_trigger mode);

#endif
