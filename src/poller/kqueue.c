/*
 * kqueue backend (macOS, FreeBSD, and on Linux CI the test-only emulation in
 * tests/kqueue_emul/: see docs/backends.md for what that does and does not prove).
 *
 * Mapping (table in docs/backends.md): READABLE and PRIORITY interest watch
 * EVFILT_READ, WRITABLE watches EVFILT_WRITE; edge = EV_CLEAR, oneshot =
 * EV_DISPATCH (reregister re-arms with EV_ADD | EV_ENABLE), level = neither.
 * The token travels in kevent.udata. EV_EOF on the read filter is
 * READ_CLOSED, on the write filter WRITE_CLOSED; EV_EOF with a non-zero
 * fflags (the socket error) adds ERROR.
 *
 * A kqueue cannot say "this fd is already registered" (EV_ADD modifies), so
 * the backend keeps a table indexed by fd with each registration's interest,
 * mode, token and file identity (st_dev, st_ino, one fstat per register): it
 * gives EEXIST / ENOENT as epoll does, the filters to delete when the
 * interest shrinks, and the mode needed on delivery. Closing an fd makes the
 * kernel drop its filters; the table notices when the number is registered
 * again for another file (the identity differs) and forgets the old entry,
 * so, as on epoll, a closed-then-reused number can be registered anew.
 *
 * Batching. Register and reregister are submitted at once (EV_RECEIPT), so
 * their errors (EBADF, ENOMEM, ...) reach the caller. Deregistration and the
 * internal "disable the other filter of a oneshot fd" changes are queued and
 * ride on the next kevent call: the next register / reregister (before its
 * own changes, so an fd number reused after deregister + close is handled in
 * order), or the next wait. A wait with queued changes submits them with a
 * zero timeout under the lock (so no registration can slip in between
 * grabbing and applying them) and returns the events that call harvested;
 * only if it harvested none does it block in a second call without changes.
 * Errors of queued EV_DELETEs are ignored: they mean the fd was closed after
 * deregister, and closing already removed its filters.
 *
 * The poller's wake-up: EVFILT_USER (ident 0, EV_CLEAR) triggered with
 * NOTE_TRIGGER, reported under ASYNCIO_TOKEN_RESERVED; where EVFILT_USER is
 * missing the core's notify pipe is registered like any fd (ops.wake NULL).
 *
 * Thread-safety: `lock` guards the table and the queued changes; the kqueue
 * itself is thread-safe. The scratch event array is the waiting owner's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/types.h>
#include <sys/event.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "internal.h"
#include "poller/poller_int.h"
#include "util/alloc.h"

/* Largest kevent batch; bigger caller buffers are filled by later waits. */
#define KQ_MAX_BATCH 1024
/* Initial scratch: the runtime's default event capacity. */
#define KQ_INITIAL_BATCH 256
/* Queued changes beyond this are flushed at once by the call that queues them. */
#define KQ_MAX_PENDING 64
/* The wake-up's EVFILT_USER ident (its namespace is separate from fds). */
#define KQ_WAKE_IDENT 0

typedef struct kq_reg {
    uintptr_t token;
    uint32_t interest; /* 0: not registered */
    asyncio_trigger mode;
    dev_t dev; /* the file registered under this number (see fd_reused) */
    ino_t ino;
} kq_reg;

typedef struct kq_backend {
    int kq;
    asyncio__mutex lock;
    kq_reg *regs; /* indexed by fd, regs_cap entries */
    size_t regs_cap;
    struct kevent pending[KQ_MAX_PENDING];
    size_t npending;
    struct kevent *evs; /* owner-only scratch */
    size_t evs_cap;
} kq_backend;

static int kq_wake_register(kq_backend *b);

static int kq_init(asyncio_poller *owner, void **state)
{
    ASYNCIO_UNUSED(owner);
    kq_backend *b = asyncio__calloc(1, sizeof *b);
    if (b == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__mutex_init(&b->lock);
    if (rc < 0)
        goto fail_free;
    b->evs_cap = KQ_INITIAL_BATCH;
    b->evs = asyncio__malloc(b->evs_cap * sizeof *b->evs);
    rc = ASYNCIO_ENOMEM;
    if (b->evs == NULL)
        goto fail_mutex;
    b->kq = kqueue();
    if (b->kq < 0) {
        rc = -errno;
        goto fail_evs;
    }
    if (fcntl(b->kq, F_SETFD, FD_CLOEXEC) < 0 || (rc = kq_wake_register(b)) < 0) {
        rc = rc < 0 ? rc : -errno;
        close(b->kq);
        goto fail_evs;
    }
    *state = b;
    return 0;

fail_evs:
    asyncio__free(b->evs);
fail_mutex:
    asyncio__mutex_destroy(&b->lock);
fail_free:
    asyncio__free(b);
    return rc;
}

static void kq_destroy(void *state)
{
    kq_backend *b = state;
    close(b->kq);
    asyncio__mutex_destroy(&b->lock);
    asyncio__free(b->regs);
    asyncio__free(b->evs);
    asyncio__free(b);
}

/* ------------------------------------------------------------------------ */
/* The fd table and the change list (lock held)                              */

static kq_reg *lookup(kq_backend *b, int fd)
{
    if ((size_t)fd >= b->regs_cap || b->regs[fd].interest == 0)
        return NULL;
    return &b->regs[fd];
}

static int table_reserve(kq_backend *b, int fd)
{
    void *regs = b->regs;
    int rc = asyncio__grow_zeroed(&regs, &b->regs_cap, (size_t)fd + 1, sizeof *b->regs);
    b->regs = regs;
    return rc;
}

static unsigned short mode_flags(asyncio_trigger mode)
{
    switch (mode) {
    case ASYNCIO_EDGE: /* the kernel resets the filter's state after delivery */
        return EV_CLEAR;
    case ASYNCIO_ONESHOT: /* disabled after delivery; EV_ENABLE re-arms it */
        return EV_DISPATCH;
    case ASYNCIO_LEVEL: /* reported while the condition holds */
    default:
        return 0;
    }
}

/* Which filters an interest needs: bit 0 EVFILT_READ, bit 1 EVFILT_WRITE. */
static unsigned filters_of(uint32_t interest)
{
    unsigned f = 0;
    if (interest & (ASYNCIO_READABLE | ASYNCIO_PRIORITY))
        f |= 1u;
    if (interest & ASYNCIO_WRITABLE)
        f |= 2u;
    return f;
}

static void push(struct kevent *list, size_t *n, int fd, short filter, unsigned short flags,
                 uintptr_t token)
{
    EV_SET(&list[*n], (uintptr_t)fd, filter, flags, 0, 0, (void *)token);
    (*n)++;
}

/*
 * Submits the queued changes followed by `extra` (all with EV_RECEIPT) in one
 * call. Returns the first error among `extra`, 0 if none. Lock held.
 */
static int submit(kq_backend *b, const struct kevent *extra, size_t n_extra)
{
    struct kevent changes[KQ_MAX_PENDING + 4];
    size_t n = b->npending;
    if (n > 0)
        memcpy(changes, b->pending, n * sizeof *changes);
    if (n_extra > 0) /* extra is NULL for a plain flush */
        memcpy(changes + n, extra, n_extra * sizeof *changes);
    b->npending = 0;
    size_t total = n + n_extra;
    for (size_t i = 0; i < total; i++)
        changes[i].flags |= EV_RECEIPT;
    struct kevent results[KQ_MAX_PENDING + 4];
    int got;
    do {
        got = kevent(b->kq, changes, (int)total, results, (int)total, NULL);
    } while (got < 0 && errno == EINTR);
    if (got < 0)
        return -errno;
    for (int i = 0; i < got; i++) {
        bool queued = (size_t)i < n; /* results come back in change order */
        if ((results[i].flags & EV_ERROR) && results[i].data != 0 && !queued)
            return -(int)results[i].data;
    }
    return 0;
}

/* Queues one change for the next kevent call, flushing when the queue is full. */
static void queue_change(kq_backend *b, int fd, short filter, unsigned short flags)
{
    if (b->npending == KQ_MAX_PENDING)
        (void)submit(b, NULL, 0); /* queued-change errors are ignored (see header) */
    push(b->pending, &b->npending, fd, filter, flags, 0);
}

/* ------------------------------------------------------------------------ */
/* Registration                                                              */

/*
 * Builds the changes that move `fd` from `old` (interest 0: none) to the new
 * interest / mode / token into list[0..]; returns the count (at most 4).
 */
static size_t build_changes(struct kevent *list, int fd, const kq_reg *old, uintptr_t token,
                            uint32_t interest, asyncio_trigger mode)
{
    size_t n = 0;
    unsigned had = old->interest != 0 ? filters_of(old->interest) : 0;
    unsigned want = filters_of(interest);
    static const short filter_of_bit[2] = {EVFILT_READ, EVFILT_WRITE};
    unsigned short add = (unsigned short)(EV_ADD | EV_ENABLE | mode_flags(mode));
    for (unsigned i = 0; i < 2; i++) {
        unsigned bit = 1u << i;
        bool mode_changed = old->interest != 0 && old->mode != mode;
        if ((had & bit) && (!(want & bit) || mode_changed))
            push(list, &n, fd, filter_of_bit[i], EV_DELETE, 0);
        if (want & bit)
            push(list, &n, fd, filter_of_bit[i], add, token);
    }
    return n;
}

/* Queues EV_DELETE of the filters `interest` needs (errors ignored: see the header). */
static void take_back(kq_backend *b, int fd, uint32_t interest)
{
    unsigned f = filters_of(interest);
    if (f & 1u)
        queue_change(b, fd, EVFILT_READ, EV_DELETE);
    if (f & 2u)
        queue_change(b, fd, EVFILT_WRITE, EV_DELETE);
}

/*
 * Checks `fd` for register (is_add) / reregister against the table; fills
 * *sb with the file's identity. Returns 0, EBADF, EEXIST or ENOENT. Lock held.
 */
static int check_entry(kq_backend *b, int fd, bool is_add, struct stat *sb)
{
    if (fstat(fd, sb) < 0)
        return ASYNCIO_EBADF;
    kq_reg *r = lookup(b, fd);
    if (r != NULL && (r->dev != sb->st_dev || r->ino != sb->st_ino))
        r->interest = 0; /* closed and reused: the kernel already dropped its filters */
    r = lookup(b, fd);
    if ((r != NULL) == is_add)
        return is_add ? ASYNCIO_EEXIST : ASYNCIO_ENOENT;
    return 0;
}

static int apply(kq_backend *b, int fd, uintptr_t token, uint32_t interest, asyncio_trigger mode,
                 bool is_add)
{
    struct stat sb;
    asyncio__mutex_lock(&b->lock);
    int rc = table_reserve(b, fd);
    if (rc == 0)
        rc = check_entry(b, fd, is_add, &sb);
    if (rc == 0) {
        kq_reg none = {0};
        kq_reg *r = lookup(b, fd);
        struct kevent changes[4];
        size_t n = build_changes(changes, fd, r != NULL ? r : &none, token, interest, mode);
        rc = submit(b, changes, n);
        if (rc == 0)
            b->regs[fd] = (kq_reg){token, interest, mode, sb.st_dev, sb.st_ino};
        else if (is_add) /* a half-added fd (one filter added, one failed) is taken back */
            take_back(b, fd, interest);
    }
    asyncio__mutex_unlock(&b->lock);
    return rc;
}

static int kq_add(void *state, int fd, uintptr_t token, uint32_t interest, asyncio_trigger mode)
{
    return apply(state, fd, token, interest, mode, true);
}

static int kq_modify(void *state, int fd, uintptr_t token, uint32_t interest, asyncio_trigger mode)
{
    return apply(state, fd, token, interest, mode, false);
}

static int kq_remove(void *state, int fd)
{
    kq_backend *b = state;
    if (fcntl(fd, F_GETFD) < 0)
        return ASYNCIO_EBADF;
    asyncio__mutex_lock(&b->lock);
    kq_reg *r = lookup(b, fd);
    if (r != NULL) {
        take_back(b, fd, r->interest);
        r->interest = 0;
    }
    asyncio__mutex_unlock(&b->lock);
    return r != NULL ? 0 : ASYNCIO_ENOENT;
}

static int kq_rearm(void *state, int fd, uint32_t directions)
{
    /* EV_CLEAR edges are tracked by the kernel: nothing to do, no syscall. */
    ASYNCIO_UNUSED(state);
    ASYNCIO_UNUSED(fd);
    ASYNCIO_UNUSED(directions);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Wake-up                                                                   */

#ifdef EVFILT_USER
static int kq_wake_register(kq_backend *b)
{
    struct kevent ev;
    EV_SET(&ev, KQ_WAKE_IDENT, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0,
           (void *)ASYNCIO_TOKEN_RESERVED);
    return kevent(b->kq, &ev, 1, NULL, 0, NULL) < 0 ? -errno : 0;
}

static void kq_wake(void *state)
{
    kq_backend *b = state;
    struct kevent ev;
    EV_SET(&ev, KQ_WAKE_IDENT, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    int rc;
    do {
        rc = kevent(b->kq, &ev, 1, NULL, 0, NULL);
    } while (rc < 0 && errno == EINTR);
}
#define KQ_WAKE        kq_wake
#define KQ_FILTER_USER EVFILT_USER
#else /* no EVFILT_USER (OpenBSD < 7.x...): the core registers its notify pipe */
static int kq_wake_register(kq_backend *b)
{
    ASYNCIO_UNUSED(b);
    return 0;
}
#define KQ_WAKE        NULL
#define KQ_FILTER_USER 0 /* no filter has this value: never matches */
#endif

/* ------------------------------------------------------------------------ */
/* Waiting                                                                   */

static uint32_t from_kevent(const struct kevent *ev, uint32_t interest)
{
    uint32_t r = 0;
    bool eof = (ev->flags & EV_EOF) != 0;
    if (ev->filter == EVFILT_READ) {
        r |= interest & (ASYNCIO_READABLE | ASYNCIO_PRIORITY);
        if (eof)
            r |= ASYNCIO_READ_CLOSED;
    } else if (ev->filter == EVFILT_WRITE) {
        r |= ASYNCIO_WRITABLE;
        if (eof)
            r |= ASYNCIO_WRITE_CLOSED;
    }
    if (eof && ev->fflags != 0)
        r |= ASYNCIO_ERROR;
    return r;
}

/*
 * Converts one harvested kevent into out[*n] (merging with the previous event
 * of the same fd). Lock held. Oneshot fds with both filters get the other one
 * disabled, so one event disarms the whole registration as on epoll.
 */
static void convert_one(kq_backend *b, const struct kevent *ev, asyncio_event *out, size_t *n,
                        int *last_fd)
{
    if (ev->flags & EV_ERROR) /* a queued change's receipt: see the header */
        return;
    if (ev->filter == KQ_FILTER_USER) {
        out[(*n)++] = (asyncio_event){ASYNCIO_TOKEN_RESERVED, ASYNCIO_READABLE};
        *last_fd = -1;
        return;
    }
    int fd = (int)ev->ident;
    kq_reg *r = lookup(b, fd);
    if (r == NULL || r->token != (uintptr_t)ev->udata) /* deregistered / replaced since */
        return;
    uint32_t ready = from_kevent(ev, r->interest);
    if (*n > 0 && fd == *last_fd && out[*n - 1].token == r->token) {
        out[*n - 1].readiness |= ready;
        return;
    }
    if (r->mode == ASYNCIO_ONESHOT && filters_of(r->interest) == 3u) {
        short other = ev->filter == EVFILT_READ ? EVFILT_WRITE : EVFILT_READ;
        queue_change(b, fd, other, EV_DISABLE);
    }
    out[(*n)++] = (asyncio_event){r->token, ready};
    *last_fd = fd;
}

static size_t convert(kq_backend *b, int got, asyncio_event *out)
{
    size_t n = 0;
    int last_fd = -1;
    asyncio__mutex_lock(&b->lock);
    for (int i = 0; i < got; i++)
        convert_one(b, &b->evs[i], out, &n, &last_fd);
    asyncio__mutex_unlock(&b->lock);
    return n;
}

static int kq_wait(void *state, asyncio_event *out, size_t cap, int timeout_ms, size_t *n_out)
{
    kq_backend *b = state;
    size_t want = cap < KQ_MAX_BATCH ? cap : KQ_MAX_BATCH;
    size_t need = want > KQ_MAX_PENDING ? want : KQ_MAX_PENDING;
    if (need > b->evs_cap) {
        struct kevent *grown = asyncio__realloc(b->evs, need * sizeof *grown);
        if (grown == NULL)
            return ASYNCIO_ENOMEM;
        b->evs = grown;
        b->evs_cap = need;
    }
    *n_out = 0;
    /* Phase 1: queued changes ride on a zero-timeout harvest, under the lock. */
    asyncio__mutex_lock(&b->lock);
    if (b->npending > want) /* no room for their error receipts: flush them apart */
        (void)submit(b, NULL, 0);
    int got = 0;
    if (b->npending > 0) {
        struct timespec zero = {0, 0};
        got = kevent(b->kq, b->pending, (int)b->npending, b->evs, (int)want, &zero);
        b->npending = 0;
    }
    asyncio__mutex_unlock(&b->lock);
    if (got < 0 && errno != EINTR)
        return -errno;
    if (got > 0)
        *n_out = convert(b, got, out);
    if (*n_out > 0 || got < 0)
        return got < 0 ? ASYNCIO_EINTR : 0;
    /* Phase 2: block without changes (new ones queued meanwhile wait for the next call). */
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
    got = kevent(b->kq, NULL, 0, b->evs, (int)want, timeout_ms < 0 ? NULL : &ts);
    if (got < 0)
        return -errno;
    *n_out = convert(b, got, out);
    return 0;
}

const asyncio__backend_ops asyncio__kqueue_ops = {
    "kqueue", kq_init, kq_destroy, kq_add, kq_modify, kq_remove, kq_rearm, kq_wait, KQ_WAKE, NULL,
};
