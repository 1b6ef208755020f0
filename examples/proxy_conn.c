/* The proxy example's connection task (proxy_conn.h). */
#include "proxy_conn.h"

#include <string.h>

void proxy_conn_init(proxy_conn *c, const asyncio_tcp_stream *client,
                     const asyncio_sockaddr *upstream)
{
    memset(c, 0, sizeof *c); /* co: ASYNCIO_CORO_INIT (start from the top) */
    c->piping = false;
    c->client = *client;
    asyncio_tcp_stream_init_closed(&c->upstream);
    asyncio_tcp_connect_init(&c->connect, upstream); /* connects in the task */
}

static int proxy_conn_poll(void *state, asyncio_context *cx, void *output)
{
    proxy_conn *c = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(c->co);
    /* The upstream is down: the task ends and its drop closes the client. */
    ASYNCIO_AWAIT_OK(c->co, rc, asyncio_tcp_connect_poll(&c->connect, cx, &c->upstream));
    (void)asyncio_tcp_stream_set_nodelay(&c->upstream, true);
    asyncio_copy_bidirectional_init(
        &c->pipe, asyncio_tcp_stream_reader(&c->client), asyncio_tcp_stream_writer(&c->client),
        asyncio_tcp_stream_reader(&c->upstream), asyncio_tcp_stream_writer(&c->upstream));
    c->piping = true;
    /* Both directions, half-close propagated; done when both are. */
    ASYNCIO_AWAIT_OK(c->co, rc, asyncio_copy_bidirectional_poll(&c->pipe, cx));
    ASYNCIO_END(c->co);
    return 0;
}

static void proxy_conn_drop(void *state)
{
    proxy_conn *c = state;
    if (c->piping)
        asyncio_copy_bidirectional_drop(&c->pipe);
    asyncio_tcp_connect_drop(&c->connect);
    asyncio_tcp_stream_close(&c->upstream);
    asyncio_tcp_stream_close(&c->client);
}

const asyncio_task_vtable proxy_conn_vt = {proxy_conn_poll, proxy_conn_drop, NULL,
                                           sizeof(proxy_conn), 0};
