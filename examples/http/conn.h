/*
 * One HTTP/1.1 connection = one task (http_server example).
 *
 * The server-wide configuration is set once before the runtime starts and
 * read-only afterwards. Connections are spawned into the main task's
 * JoinSet and watch its cancellation token (graceful shutdown,
 * docs/writing-tasks.md): when the token is cancelled, idle connections
 * close at once and busy ones after their current response (Connection:
 * close); the main task drains the set within a grace period, then aborts
 * what is left.
 */
#ifndef HTTP_CONN_H
#define HTTP_CONN_H
#include <asyncio.h>
#include <stdbool.h>
#include <stdint.h>

#include "parser.h"

typedef struct http_config {
    http_limits limits;
    uint32_t header_timeout_ms; /* a request's head must complete in this time: 408 */
    uint32_t idle_timeout_ms;   /* keep-alive idle (and stalled writes): close */
    uint32_t linger_ms;         /* after an error response: drain input this long at most */
    uint32_t max_conns;         /* connections beyond this are shed (503 + close) */
    uint32_t body_timeout_ms;   /* a request body must be complete this long after its head: 408 */
    uint32_t body_min_rate;     /* bytes/s a body must average after a grace period (0: off) */
    int root_fd;                /* --root directory, or -1 */
    bool metrics;               /* --metrics: GET /metrics answers the runtime's metrics */
    bool name_conns;            /* name the tasks "conn N" (a dump or stall report shows them) */
} http_config;

/** The configuration (set before the runtime starts; read-only afterwards). */
extern http_config g_http_config;

/**
 * Takes `stream` and spawns its connection task into `conns` on the
 * current runtime, or sheds it when max_conns connections are live (a
 * best-effort 503, then close). The task stops gracefully once `stop` is
 * cancelled (every call passes the same token). Returns 0 or a negative
 * error (the stream is closed either way).
 */
int http_conn_start(asyncio_tcp_stream *stream, asyncio_join_set *conns,
                    asyncio_cancel_token *stop);

/** Connections alive now. */
uint32_t http_conn_live(void);

/** Frees the calling thread's scratch buffers (called at exit by the main thread). */
void http_scratch_release(void);

#endif
