/*
 * The scaffolding the libuv benchmark peers share (uv_echo_server.c,
 * uv_http_server.c), so that both take the same command line and print the
 * same readiness line as the libasyncio examples, and run_bench.sh drives
 * every server alike:
 *
 *   <prog> [--host IP] [--port P] [--threads N] [<server-specific flags>]
 *
 *   --threads 0 or 1   one uv_loop_t on the main thread (the usual libuv
 *                      server)
 *   --threads N > 1    N loops, one per thread, each with its own listening
 *                      socket bound to the same address with SO_REUSEPORT
 *                      (the kernel spreads new connections): the usual way
 *                      to put libuv on several cores
 *
 * Prints "listening on <ip>:<port>" (IPv6: "[ip]:port") on stdout, flushed,
 * once every listener is bound; --port 0 lets the kernel pick the port, and
 * the line shows it. SIGINT / SIGTERM stop every loop; main returns 0.
 * SIGPIPE is ignored (a peer that resets while we write gives EPIPE).
 *
 * Thread-safety: each loop and everything on it belongs to its own thread;
 * the only cross-thread call is uv_async_send on the stop handles.
 */
#ifndef BENCH_UV_COMMON_H
#define BENCH_UV_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#define UVB_MAX_THREADS 64
#define UVB_BACKLOG     4096

typedef struct uvb_loop uvb_loop;

/* What a server plugs into the scaffolding. */
typedef struct uvb_server {
    const char *prog;  /* "uv_echo_server": error messages */
    const char *usage; /* printed by --help (stdout) and on a bad flag (stderr) */
    /* Called on the loop's thread for each new connection (status as libuv gives it). */
    uv_connection_cb on_connection;
    /* Optional: set up per-loop state (lp->user) before the loop runs; 0 or a uv error. */
    int (*loop_init)(uvb_loop *lp);
} uvb_server;

/* Flags every peer accepts; the per-server ones are kept for the server to read. */
typedef struct uvb_options {
    const char *host; /* --host (127.0.0.1) */
    unsigned port;    /* --port (8080) */
    unsigned threads; /* --threads (1) */
    size_t buf_size;  /* --buf-size (16384): uv_echo_server's per-connection buffer */
    const char *root; /* --root: accepted for http_server's contract, unused */
} uvb_options;

struct uvb_loop {
    uv_loop_t loop;
    uv_tcp_t listener; /* listener.data points back here */
    uv_async_t stop;   /* wakes the loop to stop it (SIGINT / SIGTERM) */
    uv_thread_t thread;
    int index;
    void *user; /* the server's per-loop state */
    const uvb_options *opt;
};

/* The loop a listener or a connection accepted from it belongs to. */
static inline uvb_loop *uvb_loop_of(uv_handle_t *h)
{
    return (uvb_loop *)h->loop->data;
}

/* Parses the flags, binds, prints "listening on", runs the loops; returns main's exit code. */
int uvb_main(const uvb_server *srv, int argc, char **argv);

#endif
