/*
 * Name resolution (getaddrinfo on the blocking pool) and connect-by-name.
 *
 * Ownership of a lookup. The first poll of a resolve allocates one job
 * block holding a copy of the host, and later the result array. The block
 * is shared by the future and the blocking job, refcount 2:
 *   - the job runs getaddrinfo, stores the result, and drops its reference;
 *   - the future drops its reference at drop.
 * Whoever drops last frees the block (and the result array), so a future
 * dropped while getaddrinfo still runs leaves the block to the job. A job
 * the pool cancelled at shutdown never runs: the pool then calls the
 * job's cleanup hook (job_cancelled), which drops the job's reference in
 * its place, whether the future is still waiting or was dropped before.
 *
 * Ordering: the job writes result / addrs before it returns; the blocking
 * handle's lock (job_finish / handle_poll) publishes them to the future.
 * The refcount decrement is acq_rel so the last owner sees all writes.
 *
 * Thread-safety: a resolve (and a connect_host) belongs to one task.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "asyncio/net.h"
#include "asyncio/runtime.h"
#include "internal.h"
#include "platform/socket.h"
#include "util/alloc.h"

typedef struct resolve_job {
    _Atomic int refs; /* the future + the blocking job */
    int family;
    uint16_t port;
    int result; /* written by the job before it returns */
    asyncio_sockaddr *addrs;
    size_t count;
    char host[]; /* NUL-terminated copy */
} resolve_job;

/* asyncio_resolve.state */
enum {
    RESOLVE_INIT = 0, /* not started */
    RESOLVE_RUNNING,  /* job queued or running; handle held */
    RESOLVE_DONE,     /* finished: result (and addrs / count on success) */
    RESOLVE_INVALID,  /* init failed: polls return EINVAL */
};

static void job_unref(resolve_job *j)
{
    /* acq_rel: the last owner sees the other side's writes before freeing. */
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1) {
        asyncio__free(j->addrs);
        asyncio__free(j);
    }
}

/* The pool cancelled the job before it ran (shutdown): drop its reference. */
static void job_cancelled(void *arg)
{
    job_unref(arg);
}

/* Runs on a blocking-pool thread. */
static int job_run(void *arg)
{
    resolve_job *j = arg;
    int rc = asyncio__sock_getaddrinfo(j->host, j->port, j->family, &j->addrs, &j->count);
    j->result = rc;
    job_unref(j);
    return rc;
}

int asyncio_resolve_init(asyncio_resolve *r, const char *host, uint16_t port, int family)
{
    if (r == NULL)
        return ASYNCIO_EINVAL;
    memset(r, 0, sizeof *r);
    r->state = RESOLVE_INVALID;
    if (host == NULL || host[0] == '\0' ||
        (family != AF_UNSPEC && family != AF_INET && family != AF_INET6))
        return ASYNCIO_EINVAL;
    size_t n = strlen(host);
    if (n > ASYNCIO_HOST_MAX)
        return ASYNCIO_ENAMETOOLONG;
    memcpy(r->host, host, n + 1);
    r->port = port;
    r->family = family;
    r->state = RESOLVE_INIT;
    return 0;
}

/* An IP literal of the wanted family: answered without a thread. 1 if it was one. */
static int resolve_literal(asyncio_resolve *r)
{
    asyncio_sockaddr a;
    if (asyncio_addr_from_ip(r->host, r->port, &a) < 0)
        return 0;
    r->state = RESOLVE_DONE;
    if (r->family != AF_UNSPEC && asyncio_addr_family(&a) != r->family) {
        r->result = ASYNCIO_EHOST_NOT_FOUND;
        return 1;
    }
    r->literal = asyncio__malloc(sizeof *r->literal);
    if (r->literal == NULL) {
        r->result = ASYNCIO_ENOMEM;
        return 1;
    }
    *r->literal = a;
    r->addrs = r->literal;
    r->count = 1;
    r->result = 0;
    return 1;
}

/* INIT -> RUNNING (or DONE for a literal / a failure to start). */
static int resolve_start(asyncio_resolve *r)
{
    asyncio_runtime *rt = asyncio_runtime_current();
    if (rt == NULL)
        return ASYNCIO_EINVAL; /* stays INIT */
    if (resolve_literal(r))
        return 0;
    size_t n = strlen(r->host);
    resolve_job *j = asyncio__calloc(1, sizeof *j + n + 1);
    if (j == NULL) {
        r->state = RESOLVE_DONE;
        r->result = ASYNCIO_ENOMEM;
        return 0;
    }
    atomic_init(&j->refs, 2);
    j->family = r->family;
    j->port = r->port;
    memcpy(j->host, r->host, n + 1);
    int rc = asyncio_spawn_blocking_with_cleanup(rt, job_run, job_cancelled, j, &r->handle);
    if (rc < 0) {
        asyncio__free(j);
        r->state = RESOLVE_DONE;
        r->result = rc;
        return 0;
    }
    r->job = j;
    r->state = RESOLVE_RUNNING;
    return 0;
}

/* RUNNING: waits for the job, then takes its result. */
static int resolve_wait(asyncio_resolve *r, asyncio_context *cx)
{
    int rc = asyncio_blocking_handle_poll(r->handle, cx);
    if (rc == ASYNCIO_PENDING)
        return rc;
    resolve_job *j = r->job;
    asyncio_blocking_handle_drop(r->handle);
    r->handle = NULL;
    r->state = RESOLVE_DONE;
    if (rc == ASYNCIO_ECANCELED) { /* never ran: job_cancelled dropped its reference */
        r->result = rc;
        return 0;
    }
    r->result = j->result;
    if (j->result == 0) {
        r->addrs = j->addrs;
        r->count = j->count;
    }
    return 0;
}

int asyncio_resolve_poll(asyncio_resolve *r, asyncio_context *cx)
{
    if (r == NULL || cx == NULL)
        return ASYNCIO_EINVAL;
    for (;;) {
        int rc;
        switch (r->state) {
        case RESOLVE_INIT:
            rc = resolve_start(r);
            break;
        case RESOLVE_RUNNING:
            rc = resolve_wait(r, cx);
            break;
        case RESOLVE_DONE:
            return r->result;
        default: /* RESOLVE_INVALID */
            return ASYNCIO_EINVAL;
        }
        if (rc != 0)
            return rc;
    }
}

void asyncio_resolve_drop(asyncio_resolve *r)
{
    if (r == NULL)
        return;
    if (r->handle != NULL) {
        asyncio_blocking_handle_drop(r->handle); /* the job runs on, detached */
        r->handle = NULL;
    }
    if (r->job != NULL) {
        job_unref(r->job);
        r->job = NULL;
    }
    asyncio__free(r->literal);
    r->literal = NULL;
    r->addrs = NULL;
    r->count = 0;
    if (r->state != RESOLVE_INVALID)
        r->state = RESOLVE_DONE;
    if (r->result == 0)
        r->result = ASYNCIO_ECANCELED;
}

/* ------------------------------------------------------------------------ */
/* Connect by name                                                           */

/* asyncio_tcp_connect_host.state */
enum {
    HOST_RESOLVING = 0, /* waiting for the addresses */
    HOST_CONNECTING,    /* `connect` targets addrs[next - 1] */
    HOST_CONNECTED,     /* the stream waits in `connect` to be taken */
    HOST_FINISHED,      /* taken, failed (last_error) or cancelled */
};

int asyncio_tcp_connect_host_init(asyncio_tcp_connect_host *c, const char *host, uint16_t port)
{
    if (c == NULL)
        return ASYNCIO_EINVAL;
    memset(c, 0, sizeof *c);
    asyncio_tcp_connect_init(&c->connect, NULL);
    int rc = asyncio_resolve_init(&c->resolve, host, port, AF_UNSPEC);
    c->state = rc == 0 ? HOST_RESOLVING : HOST_FINISHED;
    c->last_error = rc;
    return rc;
}

int asyncio_tcp_connect_addrs_init(asyncio_tcp_connect_host *c, const asyncio_sockaddr *addrs,
                                   size_t count)
{
    if (c == NULL)
        return ASYNCIO_EINVAL;
    memset(c, 0, sizeof *c);
    asyncio_tcp_connect_init(&c->connect, NULL);
    c->resolve.state = RESOLVE_INVALID; /* safe to drop on error */
    c->state = HOST_FINISHED;
    c->last_error = ASYNCIO_EINVAL;
    if (addrs == NULL || count == 0)
        return ASYNCIO_EINVAL;
    /* A finished "lookup" over the caller's array: nothing to free at drop. */
    c->resolve.state = RESOLVE_DONE;
    c->resolve.addrs = addrs;
    c->resolve.count = count;
    c->state = HOST_RESOLVING;
    c->last_error = 0;
    return 0;
}

/* Starts the next address, or finishes with the last error when none is left. */
static int host_next(asyncio_tcp_connect_host *c)
{
    if (c->next >= c->resolve.count) {
        c->state = HOST_FINISHED;
        return c->last_error;
    }
    asyncio_tcp_connect_init(&c->connect, &c->resolve.addrs[c->next++]);
    c->state = HOST_CONNECTING;
    return 0;
}

/*
 * One step: 0 to go round again (*done set once connected), ASYNCIO_PENDING
 * or an error to return.
 */
static int host_step(asyncio_tcp_connect_host *c, asyncio_context *cx, asyncio_tcp_stream *out,
                     bool *done)
{
    int rc;
    switch (c->state) {
    case HOST_RESOLVING:
        rc = asyncio_resolve_poll(&c->resolve, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc < 0) {
            c->state = HOST_FINISHED;
            c->last_error = rc;
            return rc;
        }
        c->last_error = ASYNCIO_ENOENT;
        rc = host_next(c);
        return rc < 0 ? rc : 0;
    case HOST_CONNECTING:
        rc = asyncio_tcp_connect_poll(&c->connect, cx, NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc == 0) {
            c->state = HOST_CONNECTED;
            return 0;
        }
        c->last_error = rc;
        asyncio_tcp_connect_drop(&c->connect);
        rc = host_next(c);
        return rc < 0 ? rc : 0;
    case HOST_CONNECTED:
        *done = true;
        if (out == NULL)
            return 0;
        c->state = HOST_FINISHED;
        c->last_error = ASYNCIO_EINVAL; /* nothing left to take */
        return asyncio_tcp_connect_take(&c->connect, out);
    default: /* HOST_FINISHED */
        return c->last_error;
    }
}

int asyncio_tcp_connect_host_poll(asyncio_tcp_connect_host *c, asyncio_context *cx,
                                  asyncio_tcp_stream *out)
{
    if (c == NULL || cx == NULL)
        return ASYNCIO_EINVAL;
    for (;;) {
        bool done = false;
        int rc = host_step(c, cx, out, &done);
        if (rc != 0 || done)
            return rc;
    }
}

int asyncio_tcp_connect_host_poll_fn(void *c, asyncio_context *cx)
{
    return asyncio_tcp_connect_host_poll(c, cx, NULL);
}

int asyncio_tcp_connect_host_take(asyncio_tcp_connect_host *c, asyncio_tcp_stream *out)
{
    if (c == NULL || out == NULL || c->state != HOST_CONNECTED)
        return ASYNCIO_EINVAL;
    int rc = asyncio_tcp_connect_take(&c->connect, out);
    c->state = HOST_FINISHED;
    c->last_error = ASYNCIO_EINVAL;
    return rc;
}

void asyncio_tcp_connect_host_drop(asyncio_tcp_connect_host *c)
{
    if (c == NULL)
        return;
    asyncio_tcp_connect_drop(&c->connect);
    asyncio_resolve_drop(&c->resolve);
    if (c->state != HOST_FINISHED) {
        c->state = HOST_FINISHED;
        c->last_error = ASYNCIO_ECANCELED;
    }
}
