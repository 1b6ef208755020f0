/*
 * backpressure_server: a line server whose "work" is limited by a
 * semaphore.
 *
 *   backpressure_server [--host H] [--port P] --permits N --work-ms M
 *
 * For every newline-terminated line a client sends, its connection task
 * acquires one of N permits (fair, FIFO: asyncio_semaphore), holds it for
 * M ms of simulated work (asyncio_sleep), releases it and replies with the
 * same line. At most N lines are being worked on at any time, whatever the
 * number of clients; the others wait in the semaphore's queue while the
 * accept loop keeps accepting. Lines of one connection are handled in
 * order.
 *
 * Prints "listening on <addr>" (flushed) once ready; --port 0 picks an
 * ephemeral port. SIGINT / SIGTERM: stops accepting, closes the semaphore
 * (queued acquires fail), and exits 0 once the runtime dropped every
 * connection.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio/bufio.h"
#include "asyncio/io_util.h"
#include "asyncio/net.h"
#include "asyncio/runtime.h"
#include "asyncio/signal.h"
#include "asyncio/sync.h"
#include "asyncio/time.h"

#define LINE_MAX_BYTES 4096

/* ---- one connection --------------------------------------------------------- */

typedef enum conn_step {
    CONN_START = 0, /* first poll: set up the buffered reader */
    CONN_READ,      /* waiting for a line */
    CONN_ACQUIRE,   /* waiting for a permit */
    CONN_WORK,      /* holding a permit for work_ms */
    CONN_REPLY,     /* writing the line back */
    CONN_CLOSED,    /* the client sent EOF: the task is done */
} conn_step;

typedef struct conn {
    conn_step step;
    asyncio_tcp_stream stream;
    asyncio_semaphore *sem;
    uint64_t work_ms;
    bool reader_ready; /* br was initialised (it points into this task's state) */
    bool holding;      /* a permit is ours */
    asyncio_buf_reader br;
    asyncio_semaphore_acquire acq;
    asyncio_sleep work;
    asyncio_write_all reply;
    size_t len;
    char line[LINE_MAX_BYTES];
} conn;

/* One step; 0 to go on (CONN_CLOSED: finished), or ASYNCIO_PENDING / an error. */
static int conn_step_once(conn *c, asyncio_context *cx)
{
    int rc;
    const char *data;
    switch (c->step) {
    case CONN_START:
        rc = asyncio_buf_reader_init(&c->br, asyncio_tcp_stream_reader(&c->stream), NULL, 0);
        if (rc < 0)
            return rc;
        c->reader_ready = true;
        c->step = CONN_READ;
        return 0;
    case CONN_READ:
        rc = asyncio_buf_reader_poll_read_line(&c->br, cx, LINE_MAX_BYTES, &data, &c->len);
        if (rc != 0)
            return rc;     /* PENDING, or EMSGSIZE for an over-long line: close */
        if (c->len == 0) { /* EOF */
            c->step = CONN_CLOSED;
            return 0;
        }
        memcpy(c->line, data, c->len);
        asyncio_semaphore_acquire_init(&c->acq, c->sem, 1);
        c->step = CONN_ACQUIRE;
        return 0;
    case CONN_ACQUIRE:
        if ((rc = asyncio_semaphore_acquire_poll(&c->acq, cx)) != 0)
            return rc; /* PENDING, or ECLOSED at shutdown */
        c->holding = true;
        asyncio_sleep_init(&c->work, c->work_ms);
        c->step = CONN_WORK;
        return 0;
    case CONN_WORK:
        if ((rc = asyncio_sleep_poll(&c->work, cx)) != 0)
            return rc;
        asyncio_sleep_drop(&c->work);
        asyncio_semaphore_release(c->sem, 1);
        c->holding = false;
        asyncio_write_all_init(&c->reply, asyncio_tcp_stream_writer(&c->stream), c->line, c->len);
        c->step = CONN_REPLY;
        return 0;
    case CONN_REPLY:
        if ((rc = asyncio_write_all_poll(&c->reply, cx)) != 0)
            return rc;
        c->step = CONN_READ;
        return 0;
    default: /* CONN_CLOSED */
        return 0;
    }
}

static int conn_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    conn *c = state;
    while (c->step != CONN_CLOSED) {
        int rc = conn_step_once(c, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc < 0)
            return 0; /* a connection error (reset, over-long line, shutdown) only ends it */
    }
    return 0;
}

/* Runs once, finished or cancelled (shutdown): gives everything back. */
static void conn_drop(void *state)
{
    conn *c = state;
    if (c->step == CONN_ACQUIRE)
        asyncio_semaphore_acquire_drop(&c->acq);
    if (c->step == CONN_WORK)
        asyncio_sleep_drop(&c->work);
    if (c->holding)
        asyncio_semaphore_release(c->sem, 1);
    if (c->reader_ready)
        asyncio_buf_reader_free(&c->br);
    asyncio_tcp_stream_close(&c->stream);
}

static const asyncio_task_vtable conn_vt = {conn_poll, conn_drop, NULL, sizeof(conn), 0};

/* ---- the accept loop --------------------------------------------------------- */

typedef struct server {
    asyncio_sockaddr addr;
    asyncio_semaphore *sem;
    uint64_t work_ms;
    asyncio_tcp_listener *listener;
    asyncio_signal stop;
    bool stop_ready;
} server;

static int server_start(server *s)
{
    static const int sigs[] = {SIGINT, SIGTERM};
    int rc = asyncio_signal_init(&s->stop, sigs, 2); /* before "listening on": no lost signal */
    if (rc < 0)
        return rc;
    s->stop_ready = true;
    if ((rc = asyncio_tcp_listener_bind(&s->listener, &s->addr, NULL)) < 0)
        return rc;
    asyncio_sockaddr local;
    char text[ASYNCIO_ADDRSTRLEN];
    if ((rc = asyncio_tcp_listener_local_addr(s->listener, &local)) < 0 ||
        (rc = asyncio_addr_format(&local, text, sizeof text)) < 0)
        return rc;
    printf("listening on %s\n", text);
    fflush(stdout);
    return 0;
}

static int server_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    server *s = state;
    int rc;
    if (s->listener == NULL && (rc = server_start(s)) < 0)
        return rc;
    for (;;) {
        rc = asyncio_signal_poll(&s->stop, cx, NULL); /* 0: a signal came, or PENDING */
        if (rc != ASYNCIO_PENDING) {                  /* SIGINT / SIGTERM: graceful shutdown */
            asyncio_semaphore_close(s->sem);
            return rc < 0 ? rc : 0;
        }
        conn c = {.step = CONN_START, .sem = s->sem, .work_ms = s->work_ms};
        rc = asyncio_tcp_listener_poll_accept(s->listener, cx, &c.stream, NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc < 0) {
            fprintf(stderr, "backpressure_server: accept: %s\n", asyncio_strerror(rc));
            continue; /* per-connection failure (the listener backs off by itself) */
        }
        if ((rc = asyncio_spawn(asyncio_runtime_current(), &conn_vt, &c, NULL)) < 0) {
            fprintf(stderr, "backpressure_server: spawn: %s\n", asyncio_strerror(rc));
            asyncio_tcp_stream_close(&c.stream);
        }
    }
}

static void server_drop(void *state)
{
    server *s = state;
    asyncio_tcp_listener_close(s->listener);
    s->listener = NULL;
    if (s->stop_ready)
        asyncio_signal_drop(&s->stop);
}

static const asyncio_task_vtable server_vt = {server_poll, server_drop, NULL, sizeof(server), 0};

/* ---- main --------------------------------------------------------------------- */

static const char usage[] =
    "usage: backpressure_server [--host H] [--port P] --permits N --work-ms M\n";

/* Parses a decimal in [lo, hi]; false if it is not one. */
static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    if (s == NULL || *s == '\0' || *s == '-')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int parse_args(int argc, char **argv, const char **host, uint64_t *port, uint64_t *permits,
                      uint64_t *work_ms)
{
    bool have_permits = false, have_work = false;
    /* Every option but --help takes a value: one step is the pair. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--host") == 0) {
            ok = v != NULL;
            *host = v;
        } else if (strcmp(a, "--port") == 0) {
            ok = parse_u64(v, 0, 65535, port);
        } else if (strcmp(a, "--permits") == 0) {
            ok = have_permits = parse_u64(v, 1, ASYNCIO_SEMAPHORE_MAX_PERMITS, permits);
        } else if (strcmp(a, "--work-ms") == 0) {
            ok = have_work = parse_u64(v, 0, UINT32_MAX, work_ms);
        } else {
            ok = false;
        }
        if (!ok) {
            fprintf(stderr, "backpressure_server: bad argument: %s%s%s\n%s", a, v ? " " : "",
                    v ? v : "", usage);
            return 2;
        }
    }
    if (!have_permits || !have_work) {
        fprintf(stderr, "backpressure_server: --permits and --work-ms are required\n%s", usage);
        return 2;
    }
    return -1; /* go on */
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    uint64_t port = 8080, permits = 0, work_ms = 0;
    int prc = parse_args(argc, argv, &host, &port, &permits, &work_ms);
    if (prc >= 0)
        return prc;
    server s = {.work_ms = work_ms};
    if (asyncio_addr_from_ip(host, (uint16_t)port, &s.addr) < 0) {
        fprintf(stderr, "backpressure_server: --host must be an IP address: %s\n", host);
        return 2;
    }
    asyncio_runtime *rt = NULL;
    int rc = asyncio_semaphore_new(&s.sem, (size_t)permits);
    if (rc == 0)
        rc = asyncio_runtime_new(&rt, NULL);
    asyncio_semaphore *sem = s.sem;
    if (rc == 0)
        rc = asyncio_runtime_block_on(rt, &server_vt, &s, NULL);
    if (rc < 0)
        fprintf(stderr, "backpressure_server: %s\n", asyncio_strerror(rc));
    /* Drops the connection tasks (their acquires leave the semaphore) before it is freed. */
    int frc = asyncio_runtime_free(rt);
    if (frc < 0)
        fprintf(stderr, "backpressure_server: runtime_free: %s\n", asyncio_strerror(frc));
    asyncio_semaphore_free(sem);
    return rc < 0 || frc < 0 ? 1 : 0;
}
