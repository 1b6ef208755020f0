/*
 * epoll backend (Linux).
 *
 * Tokens go straight into epoll_event.data, so a wait is one epoll_wait and
 * a copy-out: no lookup. Edge = EPOLLET, oneshot = EPOLLONESHOT (the kernel
 * disarms; EPOLL_CTL_MOD re-arms), level = neither. Readable interest also
 * asks for EPOLLRDHUP so a peer's shutdown is reported as READ_CLOSED.
 *
 * The kernel object is thread-safe, so register / reregister / deregister
 * from other threads need no lock and no wake-up here.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "internal.h"
#include "platform/os_table.h"
#include "poller/poller_int.h"
#include "util/alloc.h"

/* Largest epoll_wait batch; bigger caller buffers are filled by later waits. */
#define EPOLL_MAX_BATCH 1024
/* Initial scratch: the runtime's default event capacity, so its waits never grow it. */
#define EPOLL_INITIAL_BATCH 256

typedef struct epoll_backend {
    int epfd;
    struct epoll_event *evs; /* owner-only scratch, grown up to EPOLL_MAX_BATCH */
    size_t evs_cap;
} epoll_backend;

static int epoll_init(asyncio_poller *owner, void **state)
{
    ASYNCIO_UNUSED(owner);
    epoll_backend *b = asyncio__calloc(1, sizeof *b);
    if (b == NULL)
        return ASYNCIO_ENOMEM;
    b->epfd = asyncio__os.epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        int rc = -errno;
        asyncio__free(b);
        return rc;
    }
    b->evs_cap = EPOLL_INITIAL_BATCH;
    b->evs = asyncio__malloc(b->evs_cap * sizeof *b->evs);
    if (b->evs == NULL) {
        asyncio__os.close(b->epfd);
        asyncio__free(b);
        return ASYNCIO_ENOMEM;
    }
    *state = b;
    return 0;
}

static void epoll_destroy(void *state)
{
    epoll_backend *b = state;
    asyncio__os.close(b->epfd);
    asyncio__free(b->evs);
    asyncio__free(b);
}

static uint32_t to_epoll(uint32_t interest, asyncio_trigger mode)
{
    uint32_t ev = 0;
    if (interest & ASYNCIO_READABLE)
        ev |= EPOLLIN | EPOLLRDHUP;
    if (interest & ASYNCIO_WRITABLE)
        ev |= EPOLLOUT;
    if (interest & ASYNCIO_PRIORITY)
        ev |= EPOLLPRI;
    if (mode == ASYNCIO_EDGE)
        ev |= EPOLLET;
    else if (mode == ASYNCIO_ONESHOT)
        ev |= EPOLLONESHOT;
    return ev;
}

static uint32_t from_epoll(uint32_t ev)
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

static int ctl(epoll_backend *b, int op, int fd, uintptr_t token, uint32_t interest,
               asyncio_trigger mode)
{
    struct epoll_event ev = {.events = to_epoll(interest, mode), .data.u64 = token};
    if (asyncio__os.epoll_ctl(b->epfd, op, fd, &ev) < 0)
        return -errno;
    return 0;
}

static int epoll_add(void *state, int fd, uintptr_t token, uint32_t interest, asyncio_trigger mode)
{
    return ctl(state, EPOLL_CTL_ADD, fd, token, interest, mode);
}

static int epoll_modify(void *state, int fd, uintptr_t token, uint32_t interest,
                        asyncio_trigger mode)
{
    return ctl(state, EPOLL_CTL_MOD, fd, token, interest, mode);
}

static int epoll_remove(void *state, int fd)
{
    epoll_backend *b = state;
    struct epoll_event unused = {0};
    if (asyncio__os.epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, &unused) < 0)
        return -errno;
    return 0;
}

static int epoll_rearm(void *state, int fd, uint32_t directions)
{
    /* EPOLLET edges are tracked by the kernel: nothing to do, no syscall. */
    ASYNCIO_UNUSED(state);
    ASYNCIO_UNUSED(fd);
    ASYNCIO_UNUSED(directions);
    return 0;
}

static int epoll_wait_events(void *state, asyncio_event *out, size_t cap, int timeout_ms,
                             size_t *n_out)
{
    epoll_backend *b = state;
    size_t want = cap < EPOLL_MAX_BATCH ? cap : EPOLL_MAX_BATCH;
    if (want > b->evs_cap) {
        /*
         * Out of memory: fetch a smaller batch rather than fail (a failing wait
         * costs the runtime's driver a back-off: docs/io-driver.md).
         */
        struct epoll_event *grown = asyncio__realloc(b->evs, want * sizeof *grown);
        if (grown != NULL) {
            b->evs = grown;
            b->evs_cap = want;
        } else {
            want = b->evs_cap;
        }
    }
    int got = asyncio__os.epoll_wait(b->epfd, b->evs, (int)want, timeout_ms);
    if (got < 0)
        return -errno;
    for (int i = 0; i < got; i++) {
        out[i].token = (uintptr_t)b->evs[i].data.u64;
        out[i].readiness = from_epoll(b->evs[i].events);
    }
    *n_out = (size_t)got;
    return 0;
}

const asyncio__backend_ops asyncio__epoll_ops = {
    "epoll",      epoll_init,  epoll_destroy,    epoll_add, epoll_modify,
    epoll_remove, epoll_rearm, epoll_wait_events, NULL, NULL,
};
