/*
 * tcp_echo_server: a TCP echo server, one task per connection.
 *
 *   tcp_echo_server [--host IP] [--port P] [--threads N]
 *
 * Prints "listening on <ip>:<port>" once ready (--port 0: the kernel picks
 * the port, and the line shows it). --threads 0 runs everything on one
 * thread (current-thread runtime); N > 0 uses the multi-thread runtime with
 * N workers (default: one per CPU). SIGINT / SIGTERM: stop accepting, close
 * the connections, free everything, exit 0. The accept loop (bind, print,
 * accept until a signal) is example_tcp_server in common.c; this file is
 * the connection task.
 *
 * Memory per idle connection: the task state below is 48 bytes and holds
 * no buffer. A connection waits for readability first and borrows a
 * CONN_BUF-byte buffer only while data flows; the buffer goes back as
 * soon as a read finds the socket empty.
 */
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

#define CONN_BUF 16384

static const char USAGE[] =
    "usage: tcp_echo_server [--host IP] [--port P] [--threads N]\n"
    "  --host IP     address to listen on (default 127.0.0.1; IPv6 as ::1)\n"
    "  --port P      port (default 8080; 0 = any free port)\n"
    "  --threads N   0 = current-thread runtime; N > 0 = N worker threads\n"
    "                (default: the number of CPUs)\n"
    "Prints 'listening on <ip>:<port>' once ready; SIGINT / SIGTERM shut it down.\n";

/* ---- one connection --------------------------------------------------------- */

typedef struct conn {
    asyncio_tcp_stream s;
    unsigned char *buf; /* CONN_BUF bytes while data flows, NULL while idle */
    size_t len, off;    /* buf[off, len) is still to be written back */
} conn;

static int conn_poll(void *state, asyncio_context *cx, void *output)
{
    conn *c = state;
    (void)output;
    for (;;) {
        if (c->off < c->len) { /* write back what we read */
            size_t n;
            int rc = asyncio_tcp_stream_poll_write(&c->s, cx, c->buf + c->off, c->len - c->off, &n);
            if (rc != 0)
                return rc; /* ASYNCIO_PENDING, or the peer is gone */
            c->off += n;
            continue;
        }
        if (c->buf == NULL) { /* idle: wait for data before taking a buffer */
            int rc = asyncio_tcp_stream_poll_read_ready(&c->s, cx);
            if (rc != 0)
                return rc;
            if ((c->buf = malloc(CONN_BUF)) == NULL)
                return ASYNCIO_ENOMEM;
        }
        int rc = asyncio_tcp_stream_poll_read(&c->s, cx, c->buf, CONN_BUF, &c->len);
        if (rc == ASYNCIO_PENDING) { /* drained: give the buffer back while we wait */
            free(c->buf);
            c->buf = NULL;
            c->len = 0;
        }
        if (rc != 0)
            return rc;
        if (c->len == 0)
            return 0; /* EOF: the peer is done */
        c->off = 0;
    }
}

static void conn_drop(void *state)
{
    conn *c = state;
    free(c->buf);
    asyncio_tcp_stream_close(&c->s);
}

static const asyncio_task_vtable conn_vt = {conn_poll, conn_drop, NULL, sizeof(conn), 0};

/* ---- the server: common.c's accept loop spawns one task per connection ---------- */

static void spawn_conn(asyncio_tcp_stream *s)
{
    conn c = {.s = *s, .buf = NULL};
    if (asyncio_spawn(asyncio_runtime_current(), &conn_vt, &c, NULL) < 0)
        asyncio_tcp_stream_close(s); /* shutting down, or out of memory */
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    unsigned long port = 8080, threads = example_cpus();
    const example_flag flags[] = {
        {"--host", EXAMPLE_FLAG_STR, &host, 0},
        {"--port", EXAMPLE_FLAG_UINT, &port, 65535},
        {"--threads", EXAMPLE_FLAG_UINT, &threads, 1024},
    };
    bool done;
    int code = example_parse_flags(argc, argv, flags, 3, USAGE, &done);
    if (done)
        return code;
    example_tcp_server sv = {.prog = "tcp_echo_server", .on_accept = spawn_conn};
    if (!example_ip_addr(sv.prog, host, port, &sv.addr))
        return 2;
    return example_run(sv.prog, threads, &example_tcp_server_vt, &sv);
}
