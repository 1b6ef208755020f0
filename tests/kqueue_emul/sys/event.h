/*
 * TEST-ONLY kqueue EMULATION over epoll (Linux): the subset of <sys/event.h>
 * that src/poller/kqueue.c uses, so its code paths run in CI on Linux.
 *
 * It proves our backend's logic (change lists, receipts, the fd table,
 * oneshot re-arming, EOF mapping, the EVFILT_USER wake-up), NOT the kernel's
 * kqueue semantics: those are only checked by reading kevent(2), and by
 * building for macOS with its real headers (make check-macos). Never install
 * or ship this header. Semantics and limits: tests/kqueue_emul/kqueue_emul.c.
 *
 * Values follow macOS / FreeBSD where they agree; only the names matter here.
 */
#ifndef ASYNCIO_TEST_KQUEUE_EMUL_SYS_EVENT_H
#define ASYNCIO_TEST_KQUEUE_EMUL_SYS_EVENT_H

#include <stdint.h>
#include <time.h>

#define EVFILT_READ  (-1)
#define EVFILT_WRITE (-2)
#define EVFILT_USER  (-10)

#define EV_ADD      0x0001u
#define EV_DELETE   0x0002u
#define EV_ENABLE   0x0004u
#define EV_DISABLE  0x0008u
#define EV_ONESHOT  0x0010u
#define EV_CLEAR    0x0020u
#define EV_RECEIPT  0x0040u
#define EV_DISPATCH 0x0080u
#define EV_EOF      0x8000u
#define EV_ERROR    0x4000u

#define NOTE_TRIGGER 0x01000000u

/** One change or event, as on macOS / FreeBSD (data is intptr_t-sized). */
struct kevent {
    uintptr_t ident;
    short filter;
    unsigned short flags;
    unsigned int fflags;
    intptr_t data;
    void *udata;
};

#define EV_SET(kevp, a, b, c, d, e, f)      \
    do {                                    \
        struct kevent *kev__ = (kevp);      \
        kev__->ident = (a);                 \
        kev__->filter = (short)(b);         \
        kev__->flags = (unsigned short)(c); \
        kev__->fflags = (d);                \
        kev__->data = (e);                  \
        kev__->udata = (f);                 \
    } while (0)

/** Emulated kqueue(2): returns an epoll fd or -1 + errno. */
int kqueue(void);

/**
 * close(2) that also frees the emulation's state when `fd` is an emulated
 * kqueue. The macro below routes every close() of a file that includes this
 * header through it (only src/poller/kqueue.c does, in the emulation build).
 */
int kqueue_emul_close(int fd);
#define close(fd) kqueue_emul_close(fd)

/** Emulated kevent(2): applies changes, then waits for events; see kqueue_emul.c. */
int kevent(int kq, const struct kevent *changelist, int nchanges, struct kevent *eventlist,
           int nevents, const struct timespec *timeout);

#endif
