/*
 * The boilerplate the network examples share, so each example file shows
 * only its own logic:
 *
 *   flags      a tiny table-driven parser: "--name value" and "--name"
 *              switches; --help prints the usage on stdout (exit 0), a bad
 *              flag prints it on stderr (exit 2)
 *   runtime    "--threads N": 0 = current-thread runtime, N > 0 =
 *              multi-thread runtime with N workers
 *   shutdown   example_stop_*: a SIGINT / SIGTERM listener (asyncio_signal)
 *              to poll next to the accept loop
 *   output     "listening on <addr>" on stdout, flushed at once (stdout may
 *              be a pipe that a script reads)
 */
#ifndef EXAMPLES_COMMON_H
#define EXAMPLES_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include <asyncio.h>

/* ---- connection buffers ------------------------------------------------------- */

/*
 * EXAMPLE_BUF_SIZE-byte buffers that a connection borrows only while data
 * flows (an idle connection holds none), with a one-buffer cache per thread
 * so a busy connection does not malloc and free 16 KiB on every exchange
 * (~270 instructions of glibc per round trip, ~14% of the echo server's user
 * space: docs/performance.md). No lock on the path: each thread's cache is
 * its own; the caches are listed once (an atomic push) so example_run() can
 * free them after the runtime's threads are gone.
 *
 * example_buf_take: a buffer, or NULL when out of memory.
 * example_buf_give: returns one (NULL is a no-op); any thread.
 * example_buf_release_all: frees every cached buffer; only when no other
 *   thread uses these functions any more (example_run calls it at the end).
 */
#define EXAMPLE_BUF_SIZE 16384
void *example_buf_take(void);
void example_buf_give(void *buf);
void example_buf_release_all(void);

/* ---- flags ----------------------------------------------------------------- */

typedef enum example_flag_kind {
    EXAMPLE_FLAG_STR,  /* const char *: the next argument */
    EXAMPLE_FLAG_UINT, /* unsigned long: decimal, 0..max */
    EXAMPLE_FLAG_BOOL, /* bool: set to true when present, takes no value */
} example_flag_kind;

typedef struct example_flag {
    const char *name; /* "--port" */
    example_flag_kind kind;
    void *value;       /* const char **, unsigned long * or bool * */
    unsigned long max; /* EXAMPLE_FLAG_UINT: the largest value accepted */
} example_flag;

/*
 * Parses argv against flags[0..n). Returns 0, or the exit code main should
 * return at once: 0 after --help (usage on stdout), 2 for a bad flag (the
 * reason and the usage on stderr). Sets *done when main must return.
 */
int example_parse_flags(int argc, char **argv, const example_flag *flags, int n, const char *usage,
                        bool *done);

/* ---- runtime ---------------------------------------------------------------- */

/* The number of online CPUs (at least 1): the default for --threads. */
unsigned long example_cpus(void);

/*
 * Runs `vt` / `init` as the main task of a new runtime (threads == 0:
 * current-thread, else multi-thread with that many workers), then frees the
 * runtime (remaining tasks are dropped: their connections close). Prints
 * "<prog>: cannot create the runtime: <asyncio_strerror>" when that fails;
 * the task reports its own errors. Returns main's exit code: 0, or 1 when
 * the runtime could not be created, the task failed, or freeing failed.
 */
int example_run(const char *prog, unsigned long threads, const asyncio_task_vtable *vt,
                const void *init);

/* ---- observability (docs/observability.md) ----------------------------------- */

typedef struct example_observe {
    bool dump_on_signal;    /* --dump-on-signal: SIGUSR1 writes asyncio_runtime_dump to stderr */
    unsigned long stall_ms; /* --stall-ms: the stall detector's threshold (0: off) */
} example_observe;

/* example_run() with observability: task tracking and the SIGUSR1 dump, the stall detector. */
int example_run_observed(const char *prog, unsigned long threads, const asyncio_task_vtable *vt,
                         const void *init, const example_observe *ob);

/*
 * Spawns a detached task on rt that writes asyncio_runtime_dump() to stderr
 * each time `sig` (initialised by the caller for SIGUSR1, so no signal sent
 * after that is lost) reports a delivery. `sig` must outlive the runtime:
 * drop it after asyncio_runtime_free(). Returns 0 or asyncio_spawn's error.
 */
int example_dump_on_signal(asyncio_runtime *rt, asyncio_signal *sig);

/* ---- addresses and output --------------------------------------------------- */

/* An IP literal and a port as an address; prints an error and returns false if bad. */
bool example_ip_addr(const char *prog, const char *host, unsigned long port, asyncio_sockaddr *out);

/* Prints "listening on <addr>" and flushes stdout. */
void example_print_listening(const asyncio_sockaddr *addr);

/*
 * Ends a server's start-up: rc == 0 prints the listening line for addr;
 * rc < 0 prints "<prog>: listen: <asyncio_strerror(rc)>" on stderr.
 * Returns rc.
 */
int example_announce(const char *prog, int rc, const asyncio_sockaddr *addr);

/* ---- graceful shutdown ------------------------------------------------------- */

/*
 * Starts listening for SIGINT and SIGTERM (asyncio_signal_init): call it
 * before printing "listening on", so a signal sent right after is seen.
 * Returns 0 or an asyncio error.
 */
int example_stop_init(asyncio_signal *stop);

/*
 * True once SIGINT or SIGTERM arrived; false (cx's waker stored) until
 * then. Poll it first in the task that owns the listener.
 */
bool example_stop_requested(asyncio_signal *stop, asyncio_context *cx);

/* ---- a TCP accept loop with graceful shutdown ------------------------------------ */

typedef struct example_tcp_server example_tcp_server;

/* Takes one accepted connection (it owns *s now: example_spawn_conn a task for it, or close it). */
typedef void (*example_accept_fn)(example_tcp_server *sv, asyncio_tcp_stream *s);

/*
 * The main task of a TCP server, as the initial state of
 * example_tcp_server_vt: on the first poll it starts listening for SIGINT /
 * SIGTERM, binds `addr`, prints "listening on <addr>"; then it accepts and
 * hands each connection (TCP_NODELAY on) to `on_accept`, which spawns its
 * task into the server's JoinSet with example_spawn_conn, until a signal
 * arrives. Then the graceful-shutdown pattern (docs/writing-tasks.md):
 *   1. stop accepting (the listener is closed);
 *   2. signal every connection task: cancel `stop_token` (tasks that hold
 *      a clone of it, example_conn_token, wind down by themselves);
 *   3. drain: collect finished connection tasks for at most `drain_ms`
 *      (asyncio_timeout over a join_next loop);
 *   4. abort the rest and wait for their drops (join_set shutdown);
 * then it returns 0. Finished connections are collected while serving too,
 * so the set holds only live ones.
 */
struct example_tcp_server {
    /* set by main */
    const char *prog;
    asyncio_sockaddr addr;
    example_accept_fn on_accept;
    uint64_t drain_ms; /* step 3's deadline (0: abort at once) */
    /* private */
    asyncio_tcp_listener *listener; /* NULL until the first poll */
    asyncio_signal stop;
    asyncio_join_set *conns;
    asyncio_cancel_token *stop_token;
    asyncio_timeout drain;
    uint8_t step;
};

/* Spawns a connection task named "conn N" into sv's JoinSet (asyncio_join_set_spawn's errors). */
int example_spawn_conn(example_tcp_server *sv, const asyncio_task_vtable *vt, const void *init);

/* The server's stop token (borrowed: clone it to keep it in a task). */
asyncio_cancel_token *example_conn_token(example_tcp_server *sv);

extern const asyncio_task_vtable example_tcp_server_vt;

#endif
