/*
 * libasyncio: the poller (low-level readiness API).
 *
 * A poller tells which registered sources are ready for I/O. Sources are
 * registered with a caller-chosen *token* (any pointer-sized value except
 * ASYNCIO_TOKEN_RESERVED), an *interest* (which directions to watch) and a
 * *trigger mode*:
 *
 *   ASYNCIO_EDGE     an event is reported when a direction becomes ready;
 *                    it is not repeated until the source has been drained
 *                    (the operation returned EAGAIN) and becomes ready again.
 *                    Portable edge code calls asyncio_poller_rearm_fd() (or
 *                    asyncio_poller_rearm()) after each EAGAIN: it is free on
 *                    epoll, and backends that emulate edge triggering (poll)
 *                    need it to report readiness that returns before the
 *                    next wait (docs/backends.md).
 *   ASYNCIO_LEVEL    an event is reported on every wait while the source is
 *                    ready.
 *   ASYNCIO_ONESHOT  one event, then the registration is disarmed (it stays
 *                    registered) until asyncio_poller_reregister*().
 *
 * Sources are file descriptors (asyncio_poller_register_fd), user-space
 * readiness objects (asyncio_user_source, set from any thread), or any user
 * type that implements the asyncio_source vtable, typically by registering
 * the descriptors or user sources it is made of.
 *
 * Backends: "epoll" (Linux default), "uring" (Linux io_uring, IORING_OP_POLL_ADD;
 * ASYNCIO_BACKEND=uring; epoll is used instead where io_uring is refused), "kqueue" (macOS
 * and BSD default) and "poll" (portable fallback; force it with the environment variable
 * ASYNCIO_BACKEND=poll). docs/backends.md explains what each emulates.
 * On uring an armed poll holds a reference to its file: an fd closed while
 * registered stays open (and reported) until deregistered or its number is
 * registered again, one more reason to deregister before closing.
 *
 * Thread-safety: register / reregister / deregister and
 * asyncio_user_source_set_readiness / asyncio_poller_waker_wake may be called from
 * any thread, also while another thread is blocked in asyncio_poller_wait;
 * changes take effect no later than the next wait. asyncio_poller_wait
 * itself must not be called by two threads at once on one poller.
 *
 * Ownership: the poller never owns a source. Deregister an fd before closing
 * it: epoll and kqueue forget a closed fd by themselves, but the poll(2) backend only
 * notices at its next wait, and a new fd that reuses the number before then
 * would be reported under the old token. User sources and wakers must be
 * deregistered / freed before the poller is freed.
 */
#ifndef ASYNCIO_POLL_H
#define ASYNCIO_POLL_H

#include <stdint.h>

#include "common.h"
#include "error.h"

/** Opaque poller. Created by asyncio_poller_new(), freed by asyncio_poller_free(). */
typedef struct asyncio_poller asyncio_poller;

/**
 * Readiness / interest bits.
 *
 * Interest uses READABLE, WRITABLE and PRIORITY (at least one). Events may
 * carry any bit. ERROR and hang-ups (READ_CLOSED | WRITE_CLOSED together)
 * are reported whatever the interest; READ_CLOSED alone (the peer shut down
 * its writing side) is reported only with READABLE interest.
 */
enum asyncio_ready {
    ASYNCIO_READABLE = 1u << 0,     /**< data (or a pending accept, or EOF) to read */
    ASYNCIO_WRITABLE = 1u << 1,     /**< room to write */
    ASYNCIO_PRIORITY = 1u << 2,     /**< out-of-band / priority data (POLLPRI) */
    ASYNCIO_ERROR = 1u << 3,        /**< an error is pending on the source (e.g. SO_ERROR) */
    ASYNCIO_READ_CLOSED = 1u << 4,  /**< the peer will send no more (EOF / RDHUP / HUP) */
    ASYNCIO_WRITE_CLOSED = 1u << 5, /**< writing can no longer succeed (HUP / reset) */
};

/** Every valid interest bit. */
#define ASYNCIO_INTEREST_MASK (ASYNCIO_READABLE | ASYNCIO_WRITABLE | ASYNCIO_PRIORITY)

/** Trigger modes. */
typedef enum asyncio_trigger {
    ASYNCIO_EDGE = 0,
    ASYNCIO_LEVEL = 1,
    ASYNCIO_ONESHOT = 2,
} asyncio_trigger;

/** The one token value callers may not use: the poller keeps it for itself. */
#define ASYNCIO_TOKEN_RESERVED UINTPTR_MAX

/** One readiness event as filled in by asyncio_poller_wait(). */
typedef struct asyncio_event {
    uintptr_t token;    /**< the token the source was (re)registered with */
    uint32_t readiness; /**< asyncio_ready bits */
} asyncio_event;

/* ------------------------------------------------------------------------ */
/* Sources                                                                   */

typedef struct asyncio_source asyncio_source;

/**
 * The source vtable: how a user type registers itself. Each callback is
 * called by the matching asyncio_poller_*() function after the arguments have
 * been validated, and returns 0 or a negative error code, which is passed
 * back to the caller unchanged. A callback usually forwards to
 * asyncio_poller_register_fd() (or to an inner source) for each fd the type
 * is made of.
 */
typedef struct asyncio_source_vtable {
    int (*register_source)(asyncio_source *src, asyncio_poller *poller, uintptr_t token,
                           uint32_t interest, asyncio_trigger mode);
    int (*reregister_source)(asyncio_source *src, asyncio_poller *poller, uintptr_t token,
                             uint32_t interest, asyncio_trigger mode);
    int (*deregister_source)(asyncio_source *src, asyncio_poller *poller);
    /* Optional (NULL: nothing to do): forwards asyncio_poller_rearm() to the inner fds. */
    int (*rearm_source)(asyncio_source *src, asyncio_poller *poller, uint32_t directions);
} asyncio_source_vtable;

/**
 * The base every source embeds (usually as its first member; recover the
 * outer struct with a container_of-style cast in the callbacks).
 */
struct asyncio_source {
    const asyncio_source_vtable *vtable;
};

/**
 * A file descriptor as a source: the first implementation of the vtable.
 * Embeddable; it owns nothing (the fd stays the caller's).
 */
typedef struct asyncio_fd_source {
    asyncio_source base; /* private */
    int fd;              /* read-only */
} asyncio_fd_source;

/**
 * User-space readiness (mio 0.6's Registration / SetReadiness pair): a source
 * whose readiness is set by calling asyncio_user_source_set_readiness() from
 * any thread, and delivered by asyncio_poller_wait() like an fd event,
 * honouring edge / level / oneshot. Opaque; created by
 * asyncio_user_source_new(), freed by asyncio_user_source_free().
 */
typedef struct asyncio_user_source asyncio_user_source;

/**
 * A cross-thread waker: asyncio_poller_waker_wake() from any thread makes a wait
 * that is blocked (or the next one) return an event with the waker's token
 * and ASYNCIO_READABLE. Wakes before that wait coalesce into one event.
 * Opaque; created by asyncio_poller_waker_new(), freed by asyncio_poller_waker_free().
 */
typedef struct asyncio_poller_waker asyncio_poller_waker;

ASYNCIO_BEGIN_DECLS

/* ------------------------------------------------------------------------ */
/* Poller lifecycle                                                          */

/**
 * Creates a poller with the default backend: the one named by the
 * environment variable ASYNCIO_BACKEND if it is set and non-empty, else the
 * platform's best ("epoll" on Linux, "kqueue" on macOS and the BSDs). On
 * success *out owns a poller that must be released with asyncio_poller_free().
 *
 * Errors: ASYNCIO_EINVAL (out is NULL, or ASYNCIO_BACKEND names no backend),
 * ASYNCIO_ENOTSUP (the named backend does not exist on this platform),
 * ASYNCIO_ENOMEM, ASYNCIO_EMFILE / ASYNCIO_ENFILE (no fd for the kernel
 * poller or its internal notifier). On failure *out is untouched and nothing
 * needs closing.
 */
ASYNCIO_EXTERN int asyncio_poller_new(asyncio_poller **out);

/**
 * As asyncio_poller_new(), with the backend named explicitly ("epoll",
 * "uring", "kqueue", "poll"); NULL means the default as above (environment
 * included). "uring" where io_uring cannot be used (io_uring_setup refused
 * by seccomp or kernel.io_uring_disabled, too old a kernel) creates an epoll
 * poller instead: never an error for that reason; asyncio_poller_backend()
 * names the backend in use.
 */
ASYNCIO_EXTERN int asyncio_poller_new_backend(asyncio_poller **out, const char *backend);

/**
 * Frees a poller and the kernel objects it holds. File descriptors that are
 * still registered are simply forgotten (they stay open: they are the
 * caller's).
 *
 * Errors: ASYNCIO_EBUSY if user sources or wakers are still registered
 * (nothing is freed: deregister or free them first). NULL is a no-op
 * returning 0. Must not race with any other call on the same poller.
 */
ASYNCIO_EXTERN int asyncio_poller_free(asyncio_poller *poller);

/**
 * The backend's name ("epoll", "uring", "kqueue", "poll"): the one in use,
 * which is the fallback's when the one asked for could not run. "none" for
 * NULL. Static string; thread-safe.
 */
ASYNCIO_EXTERN const char *asyncio_poller_backend(const asyncio_poller *poller);

/* ------------------------------------------------------------------------ */
/* Registration                                                              */

/**
 * Registers `fd` with `token`, `interest` and `mode`.
 *
 * Errors: ASYNCIO_EINVAL (NULL poller, interest empty or with bits outside
 * ASYNCIO_INTEREST_MASK, unknown mode, token == ASYNCIO_TOKEN_RESERVED),
 * ASYNCIO_EBADF (fd is not an open descriptor), ASYNCIO_EEXIST (fd is already
 * registered with this poller), ASYNCIO_EPERM (the fd cannot be polled, e.g.
 * a regular file under epoll), ASYNCIO_ENOMEM / ASYNCIO_ENOSPC (kernel or
 * table limits).
 */
ASYNCIO_EXTERN int asyncio_poller_register_fd(asyncio_poller *poller, int fd, uintptr_t token,
                                              uint32_t interest, asyncio_trigger mode);

/**
 * Replaces the token, interest and mode of a registered fd and re-arms it
 * (a oneshot registration becomes active again; an edge registration
 * reports current readiness again).
 *
 * Errors: as asyncio_poller_register_fd(), with ASYNCIO_ENOENT instead of
 * ASYNCIO_EEXIST when the fd is not registered.
 */
ASYNCIO_EXTERN int asyncio_poller_reregister_fd(asyncio_poller *poller, int fd, uintptr_t token,
                                                uint32_t interest, asyncio_trigger mode);

/**
 * Removes `fd`. No event for it is returned by waits that start after this
 * call returns (events already copied out by an earlier wait are the
 * caller's to ignore).
 *
 * Errors: ASYNCIO_EINVAL (NULL poller), ASYNCIO_EBADF (not an open fd),
 * ASYNCIO_ENOENT (not registered).
 */
ASYNCIO_EXTERN int asyncio_poller_deregister_fd(asyncio_poller *poller, int fd);

/**
 * Tells the poller that the caller drained `directions` (ASYNCIO_READABLE
 * and/or WRITABLE / PRIORITY) of an edge-registered fd to EAGAIN, so the
 * next readiness in those directions is a new edge. On epoll this is a
 * no-op (the kernel tracks edges itself) and costs no syscall; on the poll
 * backend it re-arms the emulated edge without a syscall. Calling it for a
 * level or oneshot registration does nothing (oneshot needs reregister).
 *
 * On uring, a rearm after a report the backend held back as a repeat
 * queues a fresh poll of fd (docs/backends.md, "Polls the kernel ends by
 * itself"), so no edge that came after the drain is lost.
 *
 * Errors: ASYNCIO_EINVAL (NULL poller, directions empty or outside
 * ASYNCIO_INTEREST_MASK), ASYNCIO_EBADF (fd < 0), ASYNCIO_ENOENT (poll
 * backend: fd not registered; epoll does not check), and on uring only
 * when that fresh poll cannot be queued (the kernel refusing submissions
 * with the submission queue full: ASYNCIO_ENOSPC or the io_uring_enter
 * error): the registration is then gone, as after a failed reregister;
 * register fd again. Thread-safe.
 */
ASYNCIO_EXTERN int asyncio_poller_rearm_fd(asyncio_poller *poller, int fd, uint32_t directions);

/**
 * Initialises `src` as the source for `fd`. Never fails; the fd stays the
 * caller's. `src` must stay valid only during the register calls.
 */
ASYNCIO_EXTERN void asyncio_fd_source_init(asyncio_fd_source *src, int fd);

/**
 * Registers any source through its vtable. Validates the arguments (errors
 * as for asyncio_poller_register_fd(); ASYNCIO_EINVAL also for a NULL source,
 * vtable or callback), then returns what the source's register_source
 * callback returns.
 */
ASYNCIO_EXTERN int asyncio_poller_register(asyncio_poller *poller, asyncio_source *src,
                                           uintptr_t token, uint32_t interest,
                                           asyncio_trigger mode);

/** As asyncio_poller_register(), through reregister_source. */
ASYNCIO_EXTERN int asyncio_poller_reregister(asyncio_poller *poller, asyncio_source *src,
                                             uintptr_t token, uint32_t interest,
                                             asyncio_trigger mode);

/** As asyncio_poller_register(), through deregister_source. */
ASYNCIO_EXTERN int asyncio_poller_deregister(asyncio_poller *poller, asyncio_source *src);

/**
 * asyncio_poller_rearm_fd() for any source, through its rearm_source
 * callback (0 without calling anything when the source has none, e.g. user
 * sources, whose edges are exact). Errors: ASYNCIO_EINVAL (NULL poller or
 * source, bad directions), or what the callback returns.
 */
ASYNCIO_EXTERN int asyncio_poller_rearm(asyncio_poller *poller, asyncio_source *src,
                                        uint32_t directions);

/* ------------------------------------------------------------------------ */
/* Waiting                                                                   */

/**
 * Waits for events and copies up to `capacity` of them into `events`;
 * stores how many in *n_out.
 *
 * timeout_ms: -1 waits until an event arrives, 0 returns at once, N > 0
 * waits at most about N milliseconds. A finite wait may return with no
 * events (timeout, or a wake-up that carried nothing for the caller).
 * Signals never surface: EINTR is retried with the remaining time. Sources
 * ready beyond `capacity` are delivered by later waits: edge and oneshot
 * events are not lost.
 *
 * Must not be called by two threads at once on one poller.
 *
 * Errors: ASYNCIO_EINVAL (NULL poller / events / n_out, capacity 0 or above
 * INT32_MAX, timeout_ms < -1), ASYNCIO_ENOMEM, or what the kernel poller
 * reports (rare: ASYNCIO_EBADF if its fd was closed behind its back).
 */
ASYNCIO_EXTERN int asyncio_poller_wait(asyncio_poller *poller, asyncio_event *events,
                                       size_t capacity, int timeout_ms, size_t *n_out);

/* ------------------------------------------------------------------------ */
/* User-space readiness                                                      */

/**
 * Creates an unregistered user source with no readiness.
 * Errors: ASYNCIO_EINVAL (out NULL), ASYNCIO_ENOMEM.
 */
ASYNCIO_EXTERN int asyncio_user_source_new(asyncio_user_source **out);

/**
 * Frees a user source. Errors: ASYNCIO_EBUSY if it is still registered
 * (deregister it first); NULL is a no-op returning 0. Must not race with
 * asyncio_user_source_set_readiness() on the same source.
 */
ASYNCIO_EXTERN int asyncio_user_source_free(asyncio_user_source *src);

/** The user source as a generic source, for asyncio_poller_register() & co. */
ASYNCIO_EXTERN asyncio_source *asyncio_user_source_base(asyncio_user_source *src);

/**
 * Replaces the source's readiness with `readiness` (asyncio_ready bits; 0
 * clears it). If the source is registered and the new readiness intersects
 * its interest (or carries ERROR / READ_CLOSED / WRITE_CLOSED), an event is
 * queued and a blocked wait is woken:
 *   edge: one event per call that leaves it ready (calls before the next
 *         wait coalesce into one event);
 *   level: reported by every wait until readiness is cleared;
 *   oneshot: one event, then disarmed until reregistered.
 * A source that is ready when it is registered is reported at once.
 *
 * Thread-safe: any thread, concurrently with wait and (re|de)registration.
 * The caller keeps the source (and the poller it is registered with) alive
 * for the duration of the call.
 *
 * Errors: ASYNCIO_EINVAL (NULL source, bits outside the asyncio_ready set).
 */
ASYNCIO_EXTERN int asyncio_user_source_set_readiness(asyncio_user_source *src, uint32_t readiness);

/** The readiness last set. Thread-safe; 0 for NULL. */
ASYNCIO_EXTERN uint32_t asyncio_user_source_readiness(const asyncio_user_source *src);

/* ------------------------------------------------------------------------ */
/* Waker                                                                     */

/**
 * Creates a waker registered with `poller` under `token` (edge-triggered,
 * ASYNCIO_READABLE). A poller may have any number of wakers.
 *
 * Errors: ASYNCIO_EINVAL (NULL argument, token == ASYNCIO_TOKEN_RESERVED),
 * ASYNCIO_ENOMEM. On failure nothing needs freeing.
 */
ASYNCIO_EXTERN int asyncio_poller_waker_new(asyncio_poller *poller, uintptr_t token,
                                            asyncio_poller_waker **out);

/**
 * Wakes the poller: the current or next wait returns an event with the
 * waker's token. Repeated wakes before that wait coalesce into one event.
 * Thread-safe and async-signal-unsafe (it takes a lock).
 * Errors: ASYNCIO_EINVAL (NULL waker).
 */
ASYNCIO_EXTERN int asyncio_poller_waker_wake(asyncio_poller_waker *waker);

/**
 * Deregisters and frees a waker. NULL is a no-op. Must not race with
 * asyncio_poller_waker_wake() on the same waker. Returns 0.
 */
ASYNCIO_EXTERN int asyncio_poller_waker_free(asyncio_poller_waker *waker);

ASYNCIO_END_DECLS

#endif
