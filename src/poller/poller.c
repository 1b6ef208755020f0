/*
 * Poller core: backend selection, argument validation, the fd and vtable
 * registration entry points, and the wait loop.
 *
 * The wait loop runs in named phases:
 *   wait_prepare   (lock) maybe deliver user events first; pick the backend
 *                  timeout (0 if user events are due); publish `waiting`.
 *   backend wait   (no lock) the kernel poller.
 *   wait_finish    filter the internal notify token (drain it); (lock) clear
 *                  `waiting` / `signaled`; maybe deliver user events last.
 * The delivery order alternates between fd-first and user-first so neither
 * kind can starve the other when the caller's buffer is small.
 *
 * Wake-up protocol (all under p->lock): a thread that queues a user event
 * writes the notify fd only if the owner is `waiting` and nobody has
 * `signaled` it yet, so same-thread readiness costs no syscall and a storm
 * of cross-thread wakes costs one write. The owner drains the notify fd
 * whenever the backend reports it, so a late write only causes one extra
 * loop iteration, never a lost or repeated event.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "poller/completion.h"
#include "poller/poller_int.h"
#include "util/alloc.h"

/* The single backend selection point: first entry is the platform default. */
/* ASYNCIO_HAVE_KQUEUE_DEFAULT: kqueue is the platform's best (CMake sets it on the BSDs and
 * macOS; the Linux test build with the kqueue emulation lists kqueue after epoll). */
static const asyncio__backend_ops *const g_backends[] = {
#ifdef ASYNCIO_HAVE_KQUEUE_DEFAULT
    &asyncio__kqueue_ops,
#endif
#ifdef ASYNCIO_HAVE_EPOLL
    &asyncio__epoll_ops,
#endif
#if defined(ASYNCIO_HAVE_KQUEUE) && !defined(ASYNCIO_HAVE_KQUEUE_DEFAULT)
    &asyncio__kqueue_ops,
#endif
#ifdef ASYNCIO_HAVE_URING
    &asyncio__uring_ops,
#endif
#ifdef ASYNCIO_HAVE_IOCP
    &asyncio__iocp_ops, /* Windows: the only backend (no poll(2) there) */
#else
    &asyncio__poll_ops,
#endif
};

/* Backends this library knows of (any not built here is ASYNCIO_ENOTSUP; built ones match first). */
static const char *const g_foreign_backends[] = {"epoll", "kqueue", "iocp", "uring", "poll"};

/*
 * The backend used instead when `ops` cannot run here (its init fails:
 * io_uring blocked by seccomp or kernel.io_uring_disabled, or too old a
 * kernel), or NULL: init's error is returned. asyncio_poller_backend()
 * names the backend actually in use. Both must have the same wake-up kind.
 */
static const asyncio__backend_ops *fallback_of(const asyncio__backend_ops *ops)
{
#ifdef ASYNCIO_HAVE_URING
    if (ops == &asyncio__uring_ops)
        return &asyncio__epoll_ops;
#endif
    ASYNCIO_UNUSED(ops);
    return NULL;
}

static int find_backend(const char *name, const asyncio__backend_ops **out)
{
    if (name == NULL || name[0] == '\0') {
        *out = g_backends[0];
        return 0;
    }
    for (size_t i = 0; i < ASYNCIO_ARRAY_LEN(g_backends); i++) {
        if (strcmp(g_backends[i]->name, name) == 0) {
            *out = g_backends[i];
            return 0;
        }
    }
    for (size_t i = 0; i < ASYNCIO_ARRAY_LEN(g_foreign_backends); i++) {
        if (strcmp(g_foreign_backends[i], name) == 0)
            return ASYNCIO_ENOTSUP;
    }
    return ASYNCIO_EINVAL;
}

static int poller_new(asyncio_poller **out, const char *backend, unsigned hints);

int asyncio_poller_new(asyncio_poller **out)
{
    return poller_new(out, NULL, 0);
}

int asyncio__poller_new_hinted(asyncio_poller **out, unsigned hints)
{
    return poller_new(out, NULL, hints);
}

int asyncio_poller_new_backend(asyncio_poller **out, const char *backend)
{
    return poller_new(out, backend, 0);
}

static int poller_new(asyncio_poller **out, const char *backend, unsigned hints)
{
    if (out == NULL)
        return ASYNCIO_EINVAL;
    const asyncio__backend_ops *ops;
    bool worker = (hints & ASYNCIO__POLLER_WORKER) != 0;
    int rc = find_backend(worker ? "uring" : backend != NULL ? backend : getenv("ASYNCIO_BACKEND"),
                          &ops);
    if (rc < 0)
        return rc;

    asyncio_poller *p = asyncio__calloc(1, sizeof *p);
    if (p == NULL)
        return ASYNCIO_ENOMEM;
    p->ops = ops;
    p->hints = hints;
    asyncio__list_init(&p->ready);
    if ((rc = asyncio__mutex_init(&p->lock)) < 0)
        goto fail_free;
    p->notify.read_fd = p->notify.write_fd = -1;
    if (ops->wake == NULL && !worker && (rc = asyncio__notify_init(&p->notify)) < 0)
        goto fail_mutex;
    /* A backend that cannot run here hands over to its fallback (same wake-up kind). */
    while ((rc = p->ops->init(p, &p->backend)) < 0 && !worker && fallback_of(p->ops) != NULL)
        p->ops = fallback_of(p->ops);
    if (rc < 0)
        goto fail_notify;
    ops = p->ops;
    if (ops->wake == NULL && !worker) {
        rc = ops->add(p->backend, p->notify.read_fd, ASYNCIO_TOKEN_RESERVED, ASYNCIO_READABLE,
                      ASYNCIO_LEVEL);
        if (rc < 0)
            goto fail_backend;
    }
    *out = p;
    return 0;

fail_backend:
    ops->destroy(p->backend);
fail_notify:
    if (ops->wake == NULL && p->notify.read_fd >= 0)
        asyncio__notify_close(&p->notify);
fail_mutex:
    asyncio__mutex_destroy(&p->lock);
fail_free:
    asyncio__free(p);
    return rc;
}

int asyncio_poller_free(asyncio_poller *p)
{
    if (p == NULL)
        return 0;
    asyncio__mutex_lock(&p->lock);
    size_t users = p->user_sources;
    asyncio__mutex_unlock(&p->lock);
    if (users != 0)
        return ASYNCIO_EBUSY;
    p->ops->destroy(p->backend);
    if (p->ops->wake == NULL && p->notify.read_fd >= 0)
        asyncio__notify_close(&p->notify);
    asyncio__mutex_destroy(&p->lock);
    asyncio__free(p);
    return 0;
}

const char *asyncio_poller_backend(const asyncio_poller *p)
{
    return p != NULL ? p->ops->name : "none";
}

/* ------------------------------------------------------------------------ */
/* Registration                                                              */

int asyncio__poller_check_args(const asyncio_poller *p, uintptr_t token, uint32_t interest,
                               asyncio_trigger mode)
{
    if (p == NULL || token == ASYNCIO_TOKEN_RESERVED)
        return ASYNCIO_EINVAL;
    if (interest == 0 || (interest & ~(uint32_t)ASYNCIO_INTEREST_MASK) != 0)
        return ASYNCIO_EINVAL;
    switch (mode) {
    case ASYNCIO_EDGE:
    case ASYNCIO_LEVEL:
    case ASYNCIO_ONESHOT:
        return 0;
    default:
        return ASYNCIO_EINVAL;
    }
}

/*
 * The fd of a (re/de)registration: ASYNCIO_EBADF when negative, `own_rc` for
 * one of the poller's own notify fds (registered by the poller itself), else 0.
 */
static int fd_arg(const asyncio_poller *p, int fd, int own_rc)
{
    if (fd < 0)
        return ASYNCIO_EBADF;
    if (fd == p->notify.read_fd || fd == p->notify.write_fd)
        return own_rc;
    return 0;
}

int asyncio_poller_register_fd(asyncio_poller *p, int fd, uintptr_t token, uint32_t interest,
                               asyncio_trigger mode)
{
    int rc = asyncio__poller_check_args(p, token, interest, mode);
    if (rc == 0)
        rc = fd_arg(p, fd, ASYNCIO_EEXIST);
    if (rc < 0)
        return rc;
    return p->ops->add(p->backend, fd, token, interest, mode);
}

int asyncio_poller_reregister_fd(asyncio_poller *p, int fd, uintptr_t token, uint32_t interest,
                                 asyncio_trigger mode)
{
    int rc = asyncio__poller_check_args(p, token, interest, mode);
    if (rc == 0)
        rc = fd_arg(p, fd, ASYNCIO_ENOENT);
    if (rc < 0)
        return rc;
    return p->ops->modify(p->backend, fd, token, interest, mode);
}

int asyncio_poller_deregister_fd(asyncio_poller *p, int fd)
{
    if (p == NULL)
        return ASYNCIO_EINVAL;
    int rc = fd_arg(p, fd, ASYNCIO_ENOENT);
    if (rc < 0)
        return rc;
    return p->ops->remove(p->backend, fd);
}

static bool directions_ok(uint32_t d)
{
    return d != 0 && (d & ~(uint32_t)ASYNCIO_INTEREST_MASK) == 0;
}

int asyncio_poller_rearm_fd(asyncio_poller *p, int fd, uint32_t directions)
{
    if (p == NULL || !directions_ok(directions))
        return ASYNCIO_EINVAL;
    if (fd < 0)
        return ASYNCIO_EBADF;
    return p->ops->rearm(p->backend, fd, directions);
}

static int fd_source_register(asyncio_source *src, asyncio_poller *p, uintptr_t token,
                              uint32_t interest, asyncio_trigger mode)
{
    asyncio_fd_source *s = ASYNCIO_CONTAINER_OF(src, asyncio_fd_source, base);
    return asyncio_poller_register_fd(p, s->fd, token, interest, mode);
}

static int fd_source_reregister(asyncio_source *src, asyncio_poller *p, uintptr_t token,
                                uint32_t interest, asyncio_trigger mode)
{
    asyncio_fd_source *s = ASYNCIO_CONTAINER_OF(src, asyncio_fd_source, base);
    return asyncio_poller_reregister_fd(p, s->fd, token, interest, mode);
}

static int fd_source_deregister(asyncio_source *src, asyncio_poller *p)
{
    asyncio_fd_source *s = ASYNCIO_CONTAINER_OF(src, asyncio_fd_source, base);
    return asyncio_poller_deregister_fd(p, s->fd);
}

static int fd_source_rearm(asyncio_source *src, asyncio_poller *p, uint32_t directions)
{
    asyncio_fd_source *s = ASYNCIO_CONTAINER_OF(src, asyncio_fd_source, base);
    return asyncio_poller_rearm_fd(p, s->fd, directions);
}

static const asyncio_source_vtable g_fd_source_vtable = {
    fd_source_register,
    fd_source_reregister,
    fd_source_deregister,
    fd_source_rearm,
};

void asyncio_fd_source_init(asyncio_fd_source *src, int fd)
{
    if (src == NULL)
        return;
    src->base.vtable = &g_fd_source_vtable;
    src->fd = fd;
}

static bool source_ok(const asyncio_source *src)
{
    return src != NULL && src->vtable != NULL && src->vtable->register_source != NULL &&
           src->vtable->reregister_source != NULL && src->vtable->deregister_source != NULL;
}

int asyncio_poller_register(asyncio_poller *p, asyncio_source *src, uintptr_t token,
                            uint32_t interest, asyncio_trigger mode)
{
    int rc = asyncio__poller_check_args(p, token, interest, mode);
    if (rc < 0)
        return rc;
    if (!source_ok(src))
        return ASYNCIO_EINVAL;
    return src->vtable->register_source(src, p, token, interest, mode);
}

int asyncio_poller_reregister(asyncio_poller *p, asyncio_source *src, uintptr_t token,
                              uint32_t interest, asyncio_trigger mode)
{
    int rc = asyncio__poller_check_args(p, token, interest, mode);
    if (rc < 0)
        return rc;
    if (!source_ok(src))
        return ASYNCIO_EINVAL;
    return src->vtable->reregister_source(src, p, token, interest, mode);
}

int asyncio_poller_deregister(asyncio_poller *p, asyncio_source *src)
{
    if (p == NULL || !source_ok(src))
        return ASYNCIO_EINVAL;
    return src->vtable->deregister_source(src, p);
}

int asyncio_poller_rearm(asyncio_poller *p, asyncio_source *src, uint32_t directions)
{
    if (p == NULL || !source_ok(src) || !directions_ok(directions))
        return ASYNCIO_EINVAL;
    if (src->vtable->rearm_source == NULL)
        return 0;
    return src->vtable->rearm_source(src, p, directions);
}

/* ------------------------------------------------------------------------ */
/* Wake-ups                                                                  */

bool asyncio__poller_kick_locked(asyncio_poller *p)
{
    if (!p->waiting || p->signaled)
        return false;
    p->signaled = true;
    return true;
}

void asyncio__poller_kick(asyncio_poller *p)
{
    asyncio__mutex_lock(&p->lock);
    bool signal = asyncio__poller_kick_locked(p);
    asyncio__mutex_unlock(&p->lock);
    if (signal)
        asyncio__poller_signal(p);
}

void asyncio__poller_signal(asyncio_poller *p)
{
    if (p->ops->wake != NULL)
        p->ops->wake(p->backend);
    else
        asyncio__notify_signal(&p->notify);
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                   */

static int remaining_ms(int timeout_ms, uint64_t deadline)
{
    if (timeout_ms <= 0)
        return timeout_ms;
    uint64_t now = asyncio__clock_now_ms();
    return now >= deadline ? 0 : (int)(deadline - now);
}

/* Phase 1 (lock): returns the timeout to give the backend. */
static int wait_prepare(asyncio_poller *p, bool user_first, asyncio_event *events, size_t cap,
                        size_t *n, int timeout)
{
    asyncio__mutex_lock(&p->lock);
    if (user_first)
        *n += asyncio__user_deliver_locked(p, events + *n, cap - *n);
    if (*n > 0 || !asyncio__list_empty(&p->ready))
        timeout = 0;
    p->waiting = timeout != 0;
    asyncio__mutex_unlock(&p->lock);
    return timeout;
}

/* Removes internal notify events from out[0..got); returns the new count. */
static size_t filter_internal(asyncio_poller *p, asyncio_event *out, size_t got)
{
    size_t kept = 0;
    bool drain = false;
    for (size_t i = 0; i < got; i++) {
        if (out[i].token == ASYNCIO_TOKEN_RESERVED)
            drain = true;
        else
            out[kept++] = out[i];
    }
    if (drain && p->ops->wake == NULL) /* a backend wake-up resets itself */
        asyncio__notify_drain(&p->notify);
    return kept;
}

/* Phase 3 (lock): clears the wake-up flags and maybe delivers user events. */
static void wait_finish(asyncio_poller *p, bool user_first, asyncio_event *events, size_t cap,
                        size_t *n)
{
    asyncio__mutex_lock(&p->lock);
    p->waiting = false;
    p->signaled = false;
    if (!user_first && *n < cap)
        *n += asyncio__user_deliver_locked(p, events + *n, cap - *n);
    asyncio__mutex_unlock(&p->lock);
}

int asyncio_poller_wait(asyncio_poller *p, asyncio_event *events, size_t capacity, int timeout_ms,
                        size_t *n_out)
{
    if (p == NULL || events == NULL || n_out == NULL || capacity == 0 ||
        capacity > INT32_MAX || timeout_ms < -1)
        return ASYNCIO_EINVAL;
    uint64_t deadline = timeout_ms > 0 ? asyncio__clock_now_ms() + (uint64_t)timeout_ms : 0;
    size_t n = 0;
    int rc = 0;
    for (;;) {
        bool user_first = p->user_first;
        p->user_first = !user_first;
        int t = wait_prepare(p, user_first, events, capacity, &n, remaining_ms(timeout_ms, deadline));
        size_t got = 0;
        rc = 0;
        if (n < capacity)
            rc = p->ops->wait(p->backend, events + n, capacity - n, t, &got);
        if (rc == 0)
            n += filter_internal(p, events + n, got);
        wait_finish(p, user_first, events, capacity, &n);
        if (rc < 0 && rc != ASYNCIO_EINTR)
            break;
        rc = 0;
        /* Only a timeout or a wake that carried nothing for the caller end up here empty. */
        if (n > 0 || timeout_ms == 0 || remaining_ms(timeout_ms, deadline) == 0)
            break;
    }
    *n_out = n;
    /* Events already taken off the user queue are never dropped for a backend error. */
    return n > 0 ? 0 : rc;
}

/* ------------------------------------------------------------------------ */
/* Completion operations (poller/completion.h): forwarded to the backend     */

/* The backend's completion operations, or NULL (only uring has them). */
static const asyncio__completion_ops *comp_ops(const asyncio_poller *p)
{
#ifdef ASYNCIO_HAVE_URING
    if (p->ops == &asyncio__uring_ops)
        return &asyncio__uring_comp_ops;
#endif
    ASYNCIO_UNUSED(p);
    return NULL;
}

int asyncio__poller_comp_attach(asyncio_poller *p, asyncio__completion_fn fn, void *ctx,
                                uintptr_t token)
{
    if (p == NULL || fn == NULL)
        return ASYNCIO_EINVAL;
    if (comp_ops(p) == NULL)
        return ASYNCIO_ENOTSUP;
    return comp_ops(p)->attach(p->backend, fn, ctx, token);
}

void asyncio__poller_comp_detach(asyncio_poller *p)
{
    if (p != NULL && comp_ops(p) != NULL)
        comp_ops(p)->detach(p->backend);
}

bool asyncio__poller_comp_has(asyncio_poller *p, asyncio__cop_kind kind)
{
    return comp_ops(p) != NULL && comp_ops(p)->has(p->backend, kind);
}

int asyncio__poller_comp_submit(asyncio_poller *p, const asyncio__cop_req *req)
{
    return comp_ops(p)->submit(p->backend, req);
}

int asyncio__poller_comp_cancel(asyncio_poller *p, void *op)
{
    return comp_ops(p)->cancel(p->backend, op, true);
}

int asyncio__poller_comp_cancel_later(asyncio_poller *p, void *op)
{
    return comp_ops(p)->cancel(p->backend, op, false);
}

int asyncio__poller_deregister_close_fd(asyncio_poller *p, int fd, bool *closed)
{
    *closed = false;
    if (p == NULL || p->ops->remove_close == NULL)
        return asyncio_poller_deregister_fd(p, fd);
    int rc = fd_arg(p, fd, ASYNCIO_ENOENT);
    if (rc < 0)
        return rc;
    return p->ops->remove_close(p->backend, fd, closed);
}

void *asyncio__poller_comp_buffer(asyncio_poller *p, uint16_t bid)
{
    return comp_ops(p)->buffer(p->backend, bid);
}

void asyncio__poller_comp_recycle(asyncio_poller *p, uint16_t bid)
{
    comp_ops(p)->recycle(p->backend, bid);
}

bool asyncio__poller_comp_grow(asyncio_poller *p)
{
    return comp_ops(p)->grow(p->backend);
}

size_t asyncio__poller_comp_deliver(asyncio_poller *p)
{
    return comp_ops(p) != NULL ? comp_ops(p)->deliver(p->backend) : 0;
}

int asyncio__poller_comp_flush(asyncio_poller *p)
{
    return comp_ops(p) != NULL ? comp_ops(p)->flush(p->backend) : 0;
}

size_t asyncio__poller_comp_run(asyncio_poller *p)
{
    return comp_ops(p)->run(p->backend);
}

bool asyncio__poller_comp_pending(asyncio_poller *p)
{
    return comp_ops(p)->pending(p->backend);
}

int asyncio__poller_comp_notify_fd(asyncio_poller *p)
{
    return comp_ops(p)->notify_fd(p->backend);
}

uint16_t asyncio__poller_comp_sq_mark(asyncio_poller *p)
{
    return comp_ops(p)->sq_mark(p->backend);
}

bool asyncio__poller_comp_sq_taken(asyncio_poller *p, uint16_t mark)
{
    return comp_ops(p)->sq_taken(p->backend, mark);
}

int asyncio__poller_comp_cancel_all(asyncio_poller *p)
{
    return comp_ops(p)->cancel_all(p->backend);
}

void asyncio__poller_comp_notify(asyncio_poller *p, bool on)
{
    comp_ops(p)->notify(p->backend, on);
}

void asyncio__poller_comp_notified(asyncio_poller *p)
{
    comp_ops(p)->notified(p->backend);
}

void asyncio__poller_comp_sleep(asyncio_poller *p)
{
    comp_ops(p)->sleep(p->backend);
}

void asyncio__poller_comp_wake(asyncio_poller *p)
{
    comp_ops(p)->wake(p->backend);
}

size_t asyncio__poller_comp_inflight(asyncio_poller *p)
{
    return comp_ops(p) != NULL ? comp_ops(p)->inflight(p->backend) : 0;
}

int asyncio__poller_comp_close_fd(asyncio_poller *p, int fd)
{
    return comp_ops(p)->close_fd(p->backend, fd);
}

void asyncio__poller_comp_metadata(asyncio_poller *p, const void *out, asyncio_fs_metadata *md)
{
    comp_ops(p)->metadata(out, md);
}
