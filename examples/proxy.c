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
 * accept loop is example_tcp_server (common.c); the per-connection task is
 * proxy_conn.c (shared with the simulation, tests/sim/sim_echo.c).
 */
#include <stdio.h>

#include "common.h"
#include "proxy_conn.h"

static const char USAGE[] =
    "usage: proxy --listen IP:PORT --to IP:PORT\n"
    "  --listen IP:PORT   where to accept (e.g. 127.0.0.1:0 for any free port)\n"
    "  --to IP:PORT       the upstream every connection is forwarded to\n"
    "Prints 'listening on <ip>:<port>' once ready; SIGINT / SIGTERM stop it.\n";

static asyncio_sockaddr g_upstream;

/* ---- the server: common.c's accept loop spawns one task per connection ---------- */

static void spawn_conn(example_tcp_server *sv, asyncio_tcp_stream *client)
{
    proxy_conn c;
    proxy_conn_init(&c, client, &g_upstream);
    if (example_spawn_conn(sv, &proxy_conn_vt, &c) < 0)
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
