/*
 * TEST-ONLY kqueue EMULATION over epoll, so that src/poller/kqueue.c runs on
 * Linux in CI (tests/CMakeLists.txt: the *.kqueue-emul ctest entries).
 *
 * What it proves: our backend's code paths (change lists and EV_RECEIPT
 * receipts, the fd table, EEXIST / ENOENT, batching of deletes, oneshot
 * re-arming with EV_ENABLE, EV_EOF / fflags mapping, the EVFILT_USER
 * wake-up) work together with the poller core, user sources and the runtime.
 * What it does NOT prove: that a real kernel's kqueue behaves like this. The
 * subset below follows kevent(2) (FreeBSD and macOS manual pages) as read,
 * not as observed.
 *
 * Subset: kqueue(); kevent() with EV_ADD / EV_DELETE / EV_ENABLE /
 * EV_DISABLE / EV_CLEAR / EV_ONESHOT / EV_DISPATCH / EV_RECEIPT, reporting
 * EV_EOF (fflags EIO on EPOLLERR: see deliver_fd) and EV_ERROR; filters
 * EVFILT_READ, EVFILT_WRITE (any fd epoll accepts) and EVFILT_USER
 * (NOTE_TRIGGER).
 *
 * Model: one epoll fd per kqueue (the fd the caller sees) and one eventfd for
 * all its EVFILT_USER knotes. Each fd ident has one epoll registration whose
 * mask is the union of its enabled knotes (READ: EPOLLIN | EPOLLPRI |
 * EPOLLRDHUP, WRITE: EPOLLOUT), EPOLLET if one has EV_CLEAR (an fd's knotes
 * are assumed to share their mode, as kqueue.c does), and no registration at
 * all when none is enabled (epoll would report HUP regardless). EV_DISPATCH /
 * EV_ONESHOT knotes are disabled / deleted after delivery. Knotes remember
 * the file (st_dev, st_ino) they were added for, so a closed fd whose number
 * is reused counts as a new fd, as the kernel's close-drops-knotes would.
 * Changes: like FreeBSD, errors and receipts go to the event list and, if
 * any, kevent returns them without collecting events.
 *
 * Thread-safety: one global mutex guards every kqueue's state; it is not
 * held while blocked in epoll_wait.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "sys/event.h"
#undef close /* this file closes for real */
#include <unistd.h>

#define EMUL_MAX_KQ   4096                /* kqueue fds above this are refused (EMFILE) */
#define EMUL_USER_TAG (UINT64_C(1) << 62) /* epoll data of the user eventfd */
#define EMUL_OVERFLOW 64                  /* events that did not fit, for the next call */

typedef struct knote {
    uintptr_t ident;
    short filter;
    unsigned short flags; /* EV_CLEAR / EV_ONESHOT / EV_DISPATCH as added */
    void *udata;
    bool enabled;
    bool triggered; /* EVFILT_USER only */
    dev_t dev;      /* fd filters: the file the knote was added for */
    ino_t ino;
} knote;

typedef struct kq_state {
    int epfd;
    int user_efd;
    knote *notes;
    size_t n, cap;
    struct kevent overflow[EMUL_OVERFLOW];
    size_t noverflow;
} kq_state;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static kq_state *g_kqs[EMUL_MAX_KQ];

static void state_free(kq_state *st)
{
    close(st->user_efd);
    free(st->notes);
    free(st);
}

int kqueue(void)
{
    kq_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return errno = ENOMEM, -1;
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    st->user_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EMUL_USER_TAG};
    if (st->epfd < 0 || st->user_efd < 0 || st->epfd >= EMUL_MAX_KQ ||
        epoll_ctl(st->epfd, EPOLL_CTL_ADD, st->user_efd, &ev) < 0) {
        int err = st->epfd >= EMUL_MAX_KQ ? EMFILE : errno;
        if (st->epfd >= 0)
            close(st->epfd);
        if (st->user_efd >= 0)
            close(st->user_efd);
        free(st);
        return errno = err, -1;
    }
    pthread_mutex_lock(&g_lock);
    if (g_kqs[st->epfd] != NULL) /* closed without kqueue_emul_close: reclaim */
        state_free(g_kqs[st->epfd]);
    g_kqs[st->epfd] = st;
    pthread_mutex_unlock(&g_lock);
    return st->epfd;
}

int kqueue_emul_close(int fd)
{
    if (fd >= 0 && fd < EMUL_MAX_KQ) {
        pthread_mutex_lock(&g_lock);
        kq_state *st = g_kqs[fd];
        g_kqs[fd] = NULL;
        pthread_mutex_unlock(&g_lock);
        if (st != NULL)
            state_free(st);
    }
    return close(fd);
}

/* ------------------------------------------------------------------------ */
/* Knotes (g_lock held)                                                      */

static knote *find(kq_state *st, uintptr_t ident, short filter)
{
    for (size_t i = 0; i < st->n; i++) {
        if (st->notes[i].ident == ident && st->notes[i].filter == filter)
            return &st->notes[i];
    }
    return NULL;
}

static void drop(kq_state *st, knote *kn)
{
    *kn = st->notes[--st->n];
}

/* Forgets the knotes of `fd` that belong to a file that is no longer behind it. */
static void purge_stale(kq_state *st, int fd, const struct stat *now)
{
    for (size_t i = 0; i < st->n;) {
        knote *kn = &st->notes[i];
        bool stale = kn->filter != EVFILT_USER && kn->ident == (uintptr_t)fd &&
                     (now == NULL || kn->dev != now->st_dev || kn->ino != now->st_ino);
        if (stale)
            drop(st, kn);
        else
            i++;
    }
}

/* Makes fd's epoll registration match its enabled knotes. Returns 0 or an errno. */
static int sync_fd(kq_state *st, int fd)
{
    uint32_t mask = 0;
    bool edge = false;
    for (size_t i = 0; i < st->n; i++) {
        const knote *kn = &st->notes[i];
        if (kn->ident != (uintptr_t)fd || kn->filter == EVFILT_USER || !kn->enabled)
            continue;
        mask |= kn->filter == EVFILT_READ ? EPOLLIN | EPOLLPRI | EPOLLRDHUP : EPOLLOUT;
        edge = edge || (kn->flags & EV_CLEAR);
    }
    struct epoll_event ev = {.events = mask | (edge ? EPOLLET : 0), .data.u64 = (uint64_t)fd};
    if (mask == 0) {
        if (epoll_ctl(st->epfd, EPOLL_CTL_DEL, fd, &ev) < 0 && errno != ENOENT)
            return errno;
        return 0;
    }
    /* MOD re-evaluates readiness, as kqueue does for EV_ADD / EV_ENABLE. */
    if (epoll_ctl(st->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
        return 0;
    if (errno != ENOENT)
        return errno;
    return epoll_ctl(st->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
}

static knote *add_knote(kq_state *st, const struct kevent *c, const struct stat *sb)
{
    if (st->n == st->cap) {
        size_t cap = st->cap != 0 ? st->cap * 2 : 16;
        knote *grown = realloc(st->notes, cap * sizeof *grown);
        if (grown == NULL)
            return NULL;
        st->notes = grown;
        st->cap = cap;
    }
    knote *kn = &st->notes[st->n++];
    *kn = (knote){.ident = c->ident, .filter = c->filter, .enabled = true};
    if (sb != NULL) {
        kn->dev = sb->st_dev;
        kn->ino = sb->st_ino;
    }
    return kn;
}

/* EV_ADD / EV_ENABLE / EV_DISABLE common part on an existing or new knote. */
static void update(knote *kn, const struct kevent *c)
{
    if (c->flags & EV_ADD) {
        kn->udata = c->udata;
        kn->flags = c->flags & (EV_CLEAR | EV_ONESHOT | EV_DISPATCH);
    }
    if (c->flags & EV_ENABLE)
        kn->enabled = true;
    if (c->flags & EV_DISABLE)
        kn->enabled = false;
}

static void user_signal(kq_state *st)
{
    uint64_t one = 1;
    ssize_t r = write(st->user_efd, &one, sizeof one);
    (void)r; /* a saturated counter is readable already */
}

static int change_user(kq_state *st, const struct kevent *c)
{
    knote *kn = find(st, c->ident, EVFILT_USER);
    if (kn == NULL && !(c->flags & EV_ADD))
        return ENOENT;
    if (c->flags & EV_DELETE) {
        drop(st, kn);
        return 0;
    }
    if (kn == NULL && (kn = add_knote(st, c, NULL)) == NULL)
        return ENOMEM;
    update(kn, c);
    if (c->fflags & NOTE_TRIGGER)
        kn->triggered = true;
    if (kn->triggered && kn->enabled)
        user_signal(st);
    return 0;
}

static int change_fd(kq_state *st, const struct kevent *c)
{
    int fd = (int)c->ident;
    struct stat sb;
    if (fcntl(fd, F_GETFD) < 0 || fstat(fd, &sb) < 0) {
        purge_stale(st, fd, NULL);
        return EBADF;
    }
    purge_stale(st, fd, &sb);
    knote *kn = find(st, c->ident, c->filter);
    if (kn == NULL && !(c->flags & EV_ADD))
        return ENOENT;
    if (c->flags & EV_DELETE) {
        drop(st, kn);
        return sync_fd(st, fd);
    }
    bool created = kn == NULL;
    if (created && (kn = add_knote(st, c, &sb)) == NULL)
        return ENOMEM;
    update(kn, c);
    int err = sync_fd(st, fd);
    if (err != 0 && created) {
        drop(st, kn);
        (void)sync_fd(st, fd);
    }
    return err;
}

static int apply_change(kq_state *st, const struct kevent *c)
{
    switch (c->filter) {
    case EVFILT_USER:
        return change_user(st, c);
    case EVFILT_READ:
    case EVFILT_WRITE:
        return change_fd(st, c);
    default:
        return EINVAL;
    }
}

/* ------------------------------------------------------------------------ */
/* Delivery (g_lock held)                                                    */

/* Puts one event in out[*n] (or the overflow) and applies ONESHOT / DISPATCH. */
static void emit(kq_state *st, knote *kn, unsigned short eof, unsigned fflags, struct kevent *out,
                 int cap, int *n)
{
    struct kevent ev = {kn->ident, kn->filter, (unsigned short)(kn->flags | eof),
                        fflags,    0,          kn->udata};
    if (*n < cap)
        out[(*n)++] = ev;
    else if (st->noverflow < EMUL_OVERFLOW)
        st->overflow[st->noverflow++] = ev;
    if (kn->flags & EV_DISPATCH)
        kn->enabled = false;
    if (kn->flags & EV_ONESHOT)
        drop(st, kn);
}

static void deliver_user(kq_state *st, struct kevent *out, int cap, int *n)
{
    uint64_t v;
    ssize_t r = read(st->user_efd, &v, sizeof v);
    (void)r;
    bool again = false;
    for (size_t i = st->n; i-- > 0;) {
        knote *kn = &st->notes[i];
        if (kn->filter != EVFILT_USER || !kn->enabled || !kn->triggered)
            continue;
        if (kn->flags & (EV_CLEAR | EV_DISPATCH | EV_ONESHOT))
            kn->triggered = false;
        else
            again = true; /* level: reported until disabled or deleted */
        emit(st, kn, 0, 0, out, cap, n);
    }
    if (again)
        user_signal(st);
}

static void deliver_fd(kq_state *st, int fd, uint32_t events, struct kevent *out, int cap, int *n)
{
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return;
    /*
     * kqueue puts the socket error in fflags without clearing it; reading SO_ERROR here
     * would clear it (connect would then look successful), so the emulation only says
     * "there is one" with EIO. kqueue.c tests fflags for non-zero only.
     */
    unsigned err = (events & EPOLLERR) ? EIO : 0;
    bool changed = false;
    for (size_t i = st->n; i-- > 0;) {
        knote *kn = &st->notes[i];
        if (kn->ident != (uintptr_t)fd || kn->filter == EVFILT_USER || !kn->enabled ||
            kn->dev != sb.st_dev || kn->ino != sb.st_ino)
            continue;
        uint32_t hup = EPOLLHUP | EPOLLERR;
        uint32_t want =
            kn->filter == EVFILT_READ ? EPOLLIN | EPOLLPRI | EPOLLRDHUP | hup : EPOLLOUT | hup;
        if (!(events & want))
            continue;
        uint32_t eof_bits = kn->filter == EVFILT_READ ? EPOLLRDHUP | EPOLLHUP : hup;
        unsigned short eof = (events & eof_bits) ? EV_EOF : 0;
        changed = changed || (kn->flags & (EV_DISPATCH | EV_ONESHOT));
        emit(st, kn, eof, eof ? err : 0, out, cap, n);
    }
    if (changed)
        (void)sync_fd(st, fd);
}

/* ------------------------------------------------------------------------ */
/* kevent                                                                    */

static int timeout_ms(const struct timespec *ts)
{
    if (ts == NULL)
        return -1;
    long long ms = (long long)ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* Applies the change list; returns how many receipts / errors went to out, or -errno. */
static int apply_changes(kq_state *st, const struct kevent *changes, int nchanges,
                         struct kevent *out, int nevents)
{
    int nout = 0;
    for (int i = 0; i < nchanges; i++) {
        int err = apply_change(st, &changes[i]);
        if (err == 0 && !(changes[i].flags & EV_RECEIPT))
            continue;
        if (nout == nevents) {
            if (err != 0)
                return -err;
            continue;
        }
        out[nout] = changes[i];
        out[nout].flags = EV_ERROR;
        out[nout].data = err;
        nout++;
    }
    return nout;
}

int kevent(int kq, const struct kevent *changelist, int nchanges, struct kevent *eventlist,
           int nevents, const struct timespec *timeout)
{
    pthread_mutex_lock(&g_lock);
    kq_state *st = kq >= 0 && kq < EMUL_MAX_KQ ? g_kqs[kq] : NULL;
    if (st == NULL) {
        pthread_mutex_unlock(&g_lock);
        return errno = EBADF, -1;
    }
    int got = apply_changes(st, changelist, nchanges, eventlist, nevents);
    if (got == 0 && nevents > 0 && st->noverflow > 0) {
        size_t take = st->noverflow < (size_t)nevents ? st->noverflow : (size_t)nevents;
        memcpy(eventlist, st->overflow, take * sizeof *eventlist);
        memmove(st->overflow, st->overflow + take, (st->noverflow - take) * sizeof *eventlist);
        st->noverflow -= take;
        got = (int)take;
    }
    pthread_mutex_unlock(&g_lock);
    if (got != 0 || nevents == 0)
        return got < 0 ? (errno = -got, -1) : got;

    struct epoll_event evs[64];
    int max = nevents < 64 ? nevents : 64;
    int ready = epoll_wait(kq, evs, max, timeout_ms(timeout));
    if (ready < 0)
        return -1;
    int n = 0;
    pthread_mutex_lock(&g_lock);
    if (g_kqs[kq] == st) {
        for (int i = 0; i < ready; i++) {
            if (evs[i].data.u64 == EMUL_USER_TAG)
                deliver_user(st, eventlist, nevents, &n);
            else
                deliver_fd(st, (int)evs[i].data.u64, evs[i].events, eventlist, nevents, &n);
        }
    }
    pthread_mutex_unlock(&g_lock);
    return n;
}
