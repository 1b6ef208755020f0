/*
 * One HTTP/1.1 connection = one task (http_server example).
 *
 * The server-wide configuration is set once before the runtime starts and
 * read-only afterwards. The registry of live connections lets the main
 * task stop the server gracefully: http_server_stop() marks the server as
 * stopping and wakes every connection, so idle ones close at once and
 * busy ones close after their current response; http_conn_poll_all_closed()
 * waits for the last one.
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
} http_config;

/** The configuration (set before the runtime starts; read-only afterwards). */
extern http_config g_http_config;

/**
 * Takes `stream` and spawns its connection task on the current runtime,
 * or sheds it when max_conns connections are live (a best-effort 503, then
 * close). Returns 0 or a negative error (the stream is closed either way).
 */
int http_conn_start(asyncio_tcp_stream *stream);

/** Marks the server as stopping and wakes every connection. Any thread, once. */
void http_server_stop(void);

/** 0 once no connection is left, else ASYNCIO_PENDING with cx's waker kept. */
int http_conn_poll_all_closed(asyncio_context *cx);

/** Connections alive now. */
uint32_t http_conn_live(void);

/** Frees the calling thread's scratch buffers (called at exit by the main thread). */
void http_scratch_release(void);

#endif
