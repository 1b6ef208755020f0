/*
 * A custom event source through the asyncio_source vtable, awaited by a
 * task with asyncio_async_fd.
 *
 * `ticker` wraps a Linux timerfd in a struct that embeds asyncio_source; its
 * vtable forwards registration to the timerfd's descriptor. One task arms
 * the timer (every 20 ms), registers the ticker with
 * asyncio_async_fd_new_source(), and waits for five expirations with the
 * poll_ready / read / clear_ready loop. (The same shape fits an eventfd, a
 * signalfd, an inotify fd or a device: only the vtable changes.)
 *
 * Build: part of the examples (cmake --build build --target async_fd_eventfd).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "asyncio/async_fd.h"
#include "asyncio/runtime.h"

/* ---- the custom source ----------------------------------------------- */

typedef struct ticker {
    asyncio_source base; /* first member: the callbacks cast back to ticker */
    int tfd;
} ticker;

static int ticker_register(asyncio_source *src, asyncio_poller *p, uintptr_t token,
                           uint32_t interest, asyncio_trigger mode)
{
    return asyncio_poller_register_fd(p, ((ticker *)src)->tfd, token, interest, mode);
}

static int ticker_reregister(asyncio_source *src, asyncio_poller *p, uintptr_t token,
                             uint32_t interest, asyncio_trigger mode)
{
    return asyncio_poller_reregister_fd(p, ((ticker *)src)->tfd, token, interest, mode);
}

static int ticker_deregister(asyncio_source *src, asyncio_poller *p)
{
    return asyncio_poller_deregister_fd(p, ((ticker *)src)->tfd);
}

static int ticker_rearm(asyncio_source *src, asyncio_poller *p, uint32_t directions)
{
    return asyncio_poller_rearm_fd(p, ((ticker *)src)->tfd, directions);
}

static const asyncio_source_vtable ticker_vtable = {ticker_register, ticker_reregister,
                                                    ticker_deregister, ticker_rearm};

static int ticker_open(ticker *t, unsigned period_ms)
{
    t->base.vtable = &ticker_vtable;
    t->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (t->tfd < 0)
        return -errno;
    struct itimerspec its = {0};
    its.it_interval.tv_nsec = (long)period_ms * 1000000L;
    its.it_value = its.it_interval;
    if (timerfd_settime(t->tfd, 0, &its, NULL) < 0) {
        int err = -errno;
        close(t->tfd);
        return err;
    }
    return 0;
}

/* ---- the task ------------------------------------------------------------ */

typedef struct tick_task {
    ticker src;
    asyncio_async_fd *afd; /* NULL until the first poll */
    uint64_t ticks;
} tick_task;

/* Releases the registration, then the fd (in that order: the fd is ours). */
static void tick_task_release(tick_task *s)
{
    if (s->afd == NULL)
        return;
    asyncio_async_fd_free(s->afd);
    s->afd = NULL;
    close(s->src.tfd);
}

static int tick_task_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    tick_task *s = state;
    if (s->afd == NULL) {
        int rc = ticker_open(&s->src, 20);
        if (rc < 0)
            return rc;
        rc = asyncio_async_fd_new_source(&s->afd, &s->src.base, ASYNCIO_READABLE);
        if (rc < 0) {
            close(s->src.tfd);
            return rc;
        }
    }
    while (s->ticks < 5) {
        asyncio_ready_guard g;
        int rc = asyncio_async_fd_poll_ready(s->afd, cx, ASYNCIO_READABLE, &g);
        if (rc != 0)
            return rc; /* ASYNCIO_PENDING: woken on the next expiration */
        uint64_t n;
        ssize_t got = read(s->src.tfd, &n, sizeof n);
        if (got == (ssize_t)sizeof n) {
            s->ticks += n;
            printf("tick (%llu so far)\n", (unsigned long long)s->ticks);
        } else if (got < 0 && errno == EAGAIN) {
            asyncio_async_fd_clear_ready(s->afd, &g); /* drained: wait for the next edge */
        } else if (got < 0 && errno != EINTR) {
            return -errno;
        }
    }
    tick_task_release(s);
    return 0;
}

/* Runs if the task is cancelled before it finished (or after it did: then a no-op). */
static void tick_task_drop(void *state)
{
    tick_task_release(state);
}

static const asyncio_task_vtable tick_task_vtable = {
    tick_task_poll, tick_task_drop, NULL, sizeof(tick_task), 0,
};

int main(void)
{
    asyncio_runtime *rt = NULL;
    int rc = asyncio_runtime_new(&rt, NULL);
    if (rc < 0) {
        fprintf(stderr, "runtime: %s\n", asyncio_strerror(rc));
        return 1;
    }
    rc = asyncio_runtime_block_on(rt, &tick_task_vtable, NULL, NULL);
    if (rc < 0)
        fprintf(stderr, "task: %s\n", asyncio_strerror(rc));
    int frc = asyncio_runtime_free(rt);
    if (frc < 0)
        fprintf(stderr, "runtime_free: %s\n", asyncio_strerror(frc));
    return rc < 0 || frc < 0;
}
