/*
 * tcp_echo_server: a TCP echo server, one task per connection.
 *
 *   tcp_echo_server [--host IP] [--port P] [--threads N] [--stats]
 *                   [--stats-interval S] [--dump-on-signal] [--stall-ms MS]
 *
 * Prints "listening on <ip>:<port>" once ready (--port 0: the kernel picks
 * the port, and the line shows it). --threads 0 runs everything on one
 * thread (current-thread runtime); N > 0 uses the multi-thread runtime with
 * N workers (default: one per CPU). SIGINT / SIGTERM: stop accepting, close
 * the connections, free everything, exit 0. The accept loop (bind, print,
 * accept until a signal) is example_tcp_server in common.c; this file is
 * the connection task.
 *
 * --stats prints the runtime's metrics (asyncio_runtime_metrics, summed
 * over every worker) to stderr when a signal stops the server, one
 * "stats <key>: <value>" line per counter; --stats-interval S (implies
 * --stats) also prints them every S seconds. stdout is unchanged.
 *
 * --dump-on-signal: SIGUSR1 writes a task dump (asyncio_runtime_dump) to
 * stderr; --stall-ms MS reports every poll longer than MS on stderr
 * (docs/observability.md walks through both).
 *
 * The connection task is written with the await macros (await.h): it reads
 * top to bottom, and compiles to the same state machine as a hand-written
 * `switch` (docs/writing-tasks.md has both versions and their callgrind
 * instruction counts).
 *
 * Memory per idle connection: the task state below is 56 bytes and holds
 * no buffer. A connection waits for readability first and borrows a
 * CONN_BUF-byte buffer only while data flows; the buffer goes back (to its
 * thread's one-buffer cache, example_buf_give in common.c) as soon as a
 * read finds the socket empty.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

#define CONN_BUF EXAMPLE_BUF_SIZE

static const char USAGE[] =
    "usage: tcp_echo_server [--host IP] [--port P] [--threads N] [--stats]\n"
    "                       [--stats-interval S] [--dump-on-signal] [--stall-ms MS]\n"
    "  --host IP     address to listen on (default 127.0.0.1; IPv6 as ::1)\n"
    "  --port P      port (default 8080; 0 = any free port)\n"
    "  --threads N   0 = current-thread runtime; N > 0 = N worker threads\n"
    "                (default: the number of CPUs)\n"
    "  --stats       on shutdown, print runtime metrics to stderr, one\n"
    "                'stats <key>: <value>' line each (e.g. 'stats polls: 1234')\n"
    "  --stats-interval S\n"
    "                also print them every S seconds (implies --stats)\n"
    "  --dump-on-signal\n"
    "                SIGUSR1 prints a dump of every task to stderr\n"
    "  --stall-ms MS report every task poll longer than MS ms on stderr\n"
    "Prints 'listening on <ip>:<port>' once ready; SIGINT / SIGTERM shut it down.\n";

/* ---- one connection --------------------------------------------------------- */

typedef struct conn {
    asyncio_tcp_stream s;
    unsigned char *buf; /* CONN_BUF bytes while data flows, NULL while idle */
    size_t len;         /* bytes read into buf ... */
    size_t off;         /* ... of which buf[0, off) were written back */
    asyncio_coro co;    /* where conn_poll resumes (await.h) */
} conn;

/*
 * Idle, a connection waits for readability and holds no buffer. Then data
 * flows: it reads and echoes until the socket is empty (the read says
 * pending and has stored the waker), gives the buffer back and sleeps; or
 * it ends at EOF or an error.
 */
static int conn_poll(void *state, asyncio_context *cx, void *output)
{
    conn *c = state;
    asyncio_writer w = asyncio_tcp_stream_writer(&c->s);
    int rc;
    (void)output;
    ASYNCIO_BEGIN(c->co);
    for (;;) {
        ASYNCIO_AWAIT_OK(c->co, rc, asyncio_tcp_stream_poll_read_ready(&c->s, cx));
        if ((c->buf = example_buf_take()) == NULL)
            return ASYNCIO_ENOMEM;
        while ((rc = asyncio_tcp_stream_poll_read(&c->s, cx, c->buf, CONN_BUF, &c->len)) == 0 &&
               c->len > 0) {
            c->off = 0;
            ASYNCIO_AWAIT_OK(c->co, rc, asyncio_poll_write_all(w, cx, c->buf, c->len, &c->off));
        }
        example_buf_give(c->buf); /* to this thread's cache: the next busy connection takes it */
        c->buf = NULL;
        if (rc != ASYNCIO_PENDING)
            return rc;          /* EOF (0): the peer is done; an error: the peer is gone */
        ASYNCIO_SUSPEND(c->co); /* until readable: the read stored our waker */
    }
    ASYNCIO_END(c->co);
    return 0;
}

static void conn_drop(void *state)
{
    conn *c = state;
    example_buf_give(c->buf);
    asyncio_tcp_stream_close(&c->s);
}

static const asyncio_task_vtable conn_vt = {conn_poll, conn_drop, NULL, sizeof(conn), 0};

/* ---- the server: common.c's accept loop spawns one task per connection ---------- */

static void spawn_conn(example_tcp_server *sv, asyncio_tcp_stream *s)
{
    conn c = {.s = *s, .buf = NULL, .co = ASYNCIO_CORO_INIT};
    if (example_spawn_conn(sv, &conn_vt, &c) < 0)
        asyncio_tcp_stream_close(s); /* shutting down, or out of memory */
}

/* ---- --stats: the accept loop wrapped with a metrics printer ---------------------- */

typedef struct stats_server {
    example_tcp_server sv;     /* the accept loop this task runs */
    uint64_t interval_ms;      /* 0: print only on shutdown */
    asyncio_interval interval; /* polled only when interval_ms > 0 */
    bool first_tick_seen;      /* the interval's first tick is immediate: not printed */
} stats_server;

/* One "stats <key>: <value>" line per counter, written with one call (stderr is unbuffered). */
static void print_stats(asyncio_runtime *rt)
{
    asyncio_worker_metrics m;
    if (asyncio_runtime_metrics(rt, ASYNCIO_ALL_WORKERS, &m) < 0)
        return;
    const struct {
        const char *key;
        uint64_t value;
    } rows[] = {
        {"workers", asyncio_runtime_num_workers(rt)},
        {"tasks_spawned", m.tasks_spawned},
        {"remote_spawned", m.remote_spawned},
        {"polls", m.polls},
        {"steals", m.steals},
        {"tasks_stolen", m.tasks_stolen},
        {"parks", m.parks},
        {"unparks", m.unparks},
        {"lifo_hits", m.lifo_hits},
        {"budget_yields", m.budget_yields},
        {"io_events", m.io_events},
        {"local_queue_depth", m.local_queue_depth},
        {"global_queue_depth", m.global_queue_depth},
        {"blocking_threads", m.blocking_threads},
        {"overflows", m.overflows},
        {"alive_tasks", m.alive_tasks},
        {"blocking_queue_depth", m.blocking_queue_depth},
        {"timers_active", m.timers_active},
        {"timers_fired", m.timers_fired},
        {"io_registrations", m.io_registrations},
    };
    char text[1024];
    size_t len = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0] && len < sizeof text; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "stats %s: %" PRIu64 "\n",
                                rows[i].key, rows[i].value);
    fputs(text, stderr);
}

static int stats_server_poll(void *state, asyncio_context *cx, void *output)
{
    stats_server *st = state;
    asyncio_runtime *rt = asyncio_runtime_current();
    while (st->interval_ms > 0 && asyncio_interval_poll_tick(&st->interval, cx, NULL) == 0) {
        if (st->first_tick_seen)
            print_stats(rt);
        st->first_tick_seen = true;
    }
    int rc = example_tcp_server_vt.poll(&st->sv, cx, output);
    if (rc == 0) /* SIGINT / SIGTERM: the connection tasks are still there, about to be dropped */
        print_stats(rt);
    return rc;
}

static void stats_server_drop(void *state)
{
    stats_server *st = state;
    asyncio_interval_drop(&st->interval);
    example_tcp_server_vt.drop(&st->sv);
}

static const asyncio_task_vtable stats_server_vt = {stats_server_poll, stats_server_drop, NULL,
                                                    sizeof(stats_server), 0};

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    unsigned long port = 8080, threads = example_cpus(), interval_s = 0;
    bool stats = false;
    example_observe ob = {false, 0};
    const example_flag flags[] = {
        {"--host", EXAMPLE_FLAG_STR, &host, 0},
        {"--port", EXAMPLE_FLAG_UINT, &port, 65535},
        {"--threads", EXAMPLE_FLAG_UINT, &threads, 1024},
        {"--stats", EXAMPLE_FLAG_BOOL, &stats, 0},
        {"--stats-interval", EXAMPLE_FLAG_UINT, &interval_s, 86400},
        {"--dump-on-signal", EXAMPLE_FLAG_BOOL, &ob.dump_on_signal, 0},
        {"--stall-ms", EXAMPLE_FLAG_UINT, &ob.stall_ms, 3600000},
    };
    bool done;
    int code = example_parse_flags(argc, argv, flags, 7, USAGE, &done);
    if (done)
        return code;
    stats_server st = {.sv = {.prog = "tcp_echo_server", .on_accept = spawn_conn},
                       .interval_ms = (uint64_t)interval_s * 1000};
    if (!example_ip_addr(st.sv.prog, host, port, &st.sv.addr))
        return 2;
    if (!stats && interval_s == 0) /* exactly the plain accept loop */
        return example_run_observed(st.sv.prog, threads, &example_tcp_server_vt, &st.sv, &ob);
    /* Period 0 (no --stats-interval) fails with EINVAL but leaves it safe to drop; unpolled. */
    (void)asyncio_interval_init(&st.interval, st.interval_ms, ASYNCIO_MISSED_TICK_SKIP);
    return example_run_observed(st.sv.prog, threads, &stats_server_vt, &st, &ob);
}
