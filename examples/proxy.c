/*
 * proxy: a TCP proxy. Every accepted connection gets its own connection to
 * the upstream, and asyncio_copy_bidirectional moves the bytes both ways
 * (spliced in the kernel when both ends are plain sockets). When one side
 * shuts down writing, the other side's writer is shut down too
 * (half-close propagated); the task ends when both directions are done.
 *
 *   proxy --listen IP:PORT --to IP:PORT
 *
 * Addresses are IP literals: 127.0.0.1:8080, [::1]:8080 (port 0 in --listen:
 * any free port). Prints "listening on <ip>:<port>" once ready.
 * SIGINT / SIGTERM: stop accepting, close every connection, exit 0. The
 * accept loop is example_tcp_server (common.c); this file is the
 * per-connection task.
 */
#include <stdio.h>

#include "common.h"

static const char USAGE[] =
    "usage: proxy --listen IP:PORT --to IP:PORT\n"
    "  --listen IP:PORT   where to accept (e.g. 127.0.0.1:0 for any free port)\n"
    "  --to IP:PORT       the upstream every connection is forwarded to\n"
    "Prints 'listening on <ip>:<port>' once ready; SIGINT / SIGTERM stop it.\n";

static asyncio_sockaddr g_upstream;

/* ---- one connection: connect upstream, then copy both ways ---------------------- */

typedef struct conn {
    asyncio_coro co; /* where conn_poll resumes (await.h) */
    bool piping;     /* pipe is initialised (it points at the streams) */
    asyncio_tcp_stream client, upstream;
    asyncio_tcp_connect connect;
    asyncio_copy_bidirectional pipe;
} conn;

static int conn_poll(void *state, asyncio_context *cx, void *output)
{
    conn *c = state;
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

static void conn_drop(void *state)
{
    conn *c = state;
    if (c->piping)
        asyncio_copy_bidirectional_drop(&c->pipe);
    asyncio_tcp_connect_drop(&c->connect);
    asyncio_tcp_stream_close(&c->upstream);
    asyncio_tcp_stream_close(&c->client);
}

static const asyncio_task_vtable conn_vt = {conn_poll, conn_drop, NULL, sizeof(conn), 0};

/* ---- the server: common.c's accept loop spawns one task per connection ---------- */

static void spawn_conn(example_tcp_server *sv, asyncio_tcp_stream *client)
{
    conn c = {.co = ASYNCIO_CORO_INIT, .piping = false, .client = *client};
    asyncio_tcp_stream_init_closed(&c.upstream);
    asyncio_tcp_connect_init(&c.connect, &g_upstream); /* connects in the task */
    if (example_spawn_conn(sv, &conn_vt, &c) < 0)
        asyncio_tcp_stream_close(client);
}

/* An IP:PORT flag value; prints why and returns false if it is not one. */
static bool parse_ip_port(const char *flag, const char *text, asyncio_sockaddr *out)
{
    int rc = text != NULL ? asyncio_addr_parse(text, out) : ASYNCIO_EINVAL;
    int family = rc == 0 ? asyncio_addr_family(out) : AF_UNSPEC;
    if (family == AF_INET || family == AF_INET6)
        return true;
    fprintf(stderr, "proxy: %s wants IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8080\n%s", flag, USAGE);
    return false;
}

int main(int argc, char **argv)
{
    const char *listen = NULL, *to = NULL;
    const example_flag flags[] = {
        {"--listen", EXAMPLE_FLAG_STR, &listen, 0},
        {"--to", EXAMPLE_FLAG_STR, &to, 0},
    };
    bool done;
    int code = example_parse_flags(argc, argv, flags, 2, USAGE, &done);
    if (done)
        return code;
    example_tcp_server sv = {.prog = "proxy", .on_accept = spawn_conn};
    if (!parse_ip_port("--listen", listen, &sv.addr) || !parse_ip_port("--to", to, &g_upstream))
        return 2;
    return example_run(sv.prog, 0, &example_tcp_server_vt, &sv);
}
