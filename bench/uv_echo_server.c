/*
 * uv_echo_server: the libuv peer of examples/tcp_echo_server for
 * bench/run_bench.sh. Same command line and readiness line:
 *
 *   uv_echo_server [--host IP] [--port P] [--threads N] [--buf-size B]
 *
 * Written the way a libuv echo server usually is, so the comparison is with
 * what libuv users run:
 *   - one malloc'd connection (uv_tcp_t + a write request) per client;
 *   - a per-connection read buffer of --buf-size bytes (default 16384, the
 *     same as tcp_echo_server's), handed out by alloc_cb: allocated on the
 *     first read and kept until the connection closes (libuv only calls
 *     alloc_cb once the socket is readable, so a connection that never sent
 *     anything has no buffer);
 *   - the echo is written with uv_try_write at once (the common case: one
 *     read(2) and one write(2) per round trip, no callback); only what the
 *     socket did not take goes through uv_write, with reading stopped until
 *     it completes, so the buffer is never overwritten while queued.
 */
#include <stdio.h>
#include <stdlib.h>

#include "uv_common.h"

static const char USAGE[] =
    "usage: uv_echo_server [--host IP] [--port P] [--threads N] [--buf-size B]\n"
    "  --host IP      address to listen on (default 127.0.0.1; IPv6 as ::1)\n"
    "  --port P       port (default 8080; 0 = any free port)\n"
    "  --threads N    0 or 1 = one loop; N > 1 = N loops on N threads (SO_REUSEPORT)\n"
    "  --buf-size B   per-connection read buffer (default 16384)\n"
    "Prints 'listening on <ip>:<port>' once ready; SIGINT / SIGTERM shut it down.\n";

typedef struct echo_conn {
    uv_tcp_t tcp; /* first: the handle pointer is the connection pointer */
    uv_write_t wreq;
    char *buf; /* buf_size bytes after the first read, NULL before */
    size_t cap;
} echo_conn;

static void on_close(uv_handle_t *h)
{
    echo_conn *c = (echo_conn *)h;
    free(c->buf);
    free(c);
}

static void conn_close(echo_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    echo_conn *c = (echo_conn *)h;
    (void)suggested;
    if (c->buf == NULL)
        c->buf = malloc(c->cap);
    *buf =
        uv_buf_init(c->buf, c->buf != NULL ? (unsigned)c->cap : 0); /* 0: libuv reports ENOBUFS */
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *req, int status)
{
    echo_conn *c = req->data;
    if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    echo_conn *c = (echo_conn *)s;
    if (nread < 0) { /* UV_EOF or an error: the client is done */
        conn_close(c);
        return;
    }
    if (nread == 0)
        return; /* EAGAIN */
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
    int n = uv_try_write(s, &out, 1);
    if (n == nread)
        return;
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        conn_close(c);
        return;
    }
    /* The socket took only part: queue the rest, stop reading until it is written. */
    uv_read_stop(s);
    out = uv_buf_init(buf->base + n, (unsigned)(nread - n));
    c->wreq.data = c;
    if (uv_write(&c->wreq, s, &out, 1, on_write) != 0)
        conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return; /* e.g. EMFILE: libuv retries on the next readiness */
    uvb_loop *lp = uvb_loop_of((uv_handle_t *)server);
    echo_conn *c = malloc(sizeof *c);
    if (c == NULL)
        return;
    c->buf = NULL;
    c->cap = lp->opt->buf_size;
    if (uv_tcp_init(server->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

int main(int argc, char **argv)
{
    static const uvb_server srv = {"uv_echo_server", USAGE, on_connection, NULL};
    return uvb_main(&srv, argc, argv);
}
