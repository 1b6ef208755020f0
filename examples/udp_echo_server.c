/*
 * udp_echo_server: sends every datagram back to its sender.
 *
 *   udp_echo_server [--host IP] [--port P]
 *
 * Prints "listening on <ip>:<port>" once bound (--port 0: any free port).
 * One task, one socket: receive a datagram (up to 64 KiB, so nothing is
 * truncated), send it back, repeat. SIGINT / SIGTERM: close, exit 0.
 */
#include <stdio.h>

#include "common.h"

static const char USAGE[] = "usage: udp_echo_server [--host IP] [--port P]\n"
                            "  --host IP   address to bind (default 127.0.0.1; IPv6 as ::1)\n"
                            "  --port P    port (default 8080; 0 = any free port)\n"
                            "Prints 'listening on <ip>:<port>' once bound; SIGINT / SIGTERM stop "
                            "it.\n";

typedef struct server {
    asyncio_sockaddr addr;
    asyncio_udp_socket sock; /* fd == -1 until the first poll */
    asyncio_signal stop;
    bool replying; /* buf[0, len) goes back to `peer` */
    asyncio_sockaddr peer;
    size_t len;
    unsigned char buf[ASYNCIO_UDP_MAX_PAYLOAD_V6];
} server;

static int server_start(server *sv)
{
    int rc = example_stop_init(&sv->stop);
    if (rc == 0)
        rc = asyncio_udp_bind(&sv->sock, &sv->addr, NULL);
    if (rc == 0)
        rc = asyncio_udp_local_addr(&sv->sock, &sv->addr); /* the real port */
    return example_announce("udp_echo_server", rc, &sv->addr);
}

static int server_poll(void *state, asyncio_context *cx, void *output)
{
    server *sv = state;
    (void)output;
    if (sv->sock.fd < 0) {
        int rc = server_start(sv);
        if (rc < 0)
            return rc;
    }
    if (example_stop_requested(&sv->stop, cx))
        return 0;
    for (;;) {
        size_t n;
        int rc;
        if (sv->replying) {
            rc = asyncio_udp_poll_send_to(&sv->sock, cx, sv->buf, sv->len, &sv->peer, &n);
            if (rc == ASYNCIO_PENDING)
                return rc;
            if (rc < 0) /* e.g. the sender's port closed: drop this reply, keep serving */
                fprintf(stderr, "udp_echo_server: send: %s\n", asyncio_strerror(rc));
            sv->replying = false;
        }
        rc = asyncio_udp_poll_recv_from(&sv->sock, cx, sv->buf, sizeof sv->buf, &sv->len, &sv->peer,
                                        NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        sv->replying = rc == 0; /* a receive error (an ICMP report) is skipped */
    }
}

static void server_drop(void *state)
{
    server *sv = state;
    asyncio_udp_close(&sv->sock);
    asyncio_signal_drop(&sv->stop);
}

static const asyncio_task_vtable server_vt = {server_poll, server_drop, NULL, sizeof(server), 0};

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    unsigned long port = 8080;
    const example_flag flags[] = {
        {"--host", EXAMPLE_FLAG_STR, &host, 0},
        {"--port", EXAMPLE_FLAG_UINT, &port, 65535},
    };
    bool done;
    int code = example_parse_flags(argc, argv, flags, 2, USAGE, &done);
    if (done)
        return code;
    static server sv; /* 64 KiB: not on the stack (spawn copies it into the task) */
    asyncio_udp_socket_init_closed(&sv.sock);
    if (!example_ip_addr("udp_echo_server", host, port, &sv.addr))
        return 2;
    return example_run("udp_echo_server", 0, &server_vt, &sv);
}
