/*
 * The proxy example's connection task (examples/proxy.c): connect to the
 * upstream, then asyncio_copy_bidirectional both ways, half-close
 * propagated; the task ends when both directions are done, or with the
 * first error (the upstream refused or a leg was reset), and its drop closes
 * both streams. A unit of its own so the simulation (tests/sim/sim_echo.c,
 * scenario "proxy") runs exactly this code.
 */
#ifndef EXAMPLE_PROXY_CONN_H
#define EXAMPLE_PROXY_CONN_H
#include <stdbool.h>

#include <asyncio.h>

/** One proxied connection: the task state (fields private to proxy_conn.c). */
typedef struct proxy_conn {
    asyncio_coro co; /* where the poll resumes (await.h) */
    bool piping;     /* pipe is initialised (it points at the streams) */
    asyncio_tcp_stream client, upstream;
    asyncio_tcp_connect connect;
    asyncio_copy_bidirectional pipe;
} proxy_conn;

/**
 * Initialises `c` for spawning with proxy_conn_vt: it takes `client` (moved;
 * the task's drop closes it) and will connect to `upstream` (copied) when
 * first polled. Cannot fail. Not thread-safe on one `c` (it is a value to
 * hand to asyncio_spawn).
 */
void proxy_conn_init(proxy_conn *c, const asyncio_tcp_stream *client,
                     const asyncio_sockaddr *upstream);

/**
 * The task's vtable (state proxy_conn, no output). The task returns 0 when
 * both directions are done, or the first error: the upstream connect's
 * (e.g. ASYNCIO_ECONNREFUSED) or a copy's (e.g. ASYNCIO_ECONNRESET,
 * ASYNCIO_EPIPE). Either way its drop closes both streams.
 */
extern const asyncio_task_vtable proxy_conn_vt;

#endif
