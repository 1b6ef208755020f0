/*
 * tcp_echo_client: a load generator for echo servers, and an idle-connection
 * holder for memory measurements. One current-thread runtime, one task per
 * connection.
 *
 *   tcp_echo_client [--host H] [--port P] [--conns C] [--size S] [--seconds T]
 *   tcp_echo_client [--host H] [--port P] --idle C
 *
 * Load mode: C connections each send an S-byte message, wait for all S
 * bytes to come back, and repeat, for T seconds (or until SIGINT / SIGTERM).
 * Then it prints one "key: value" line each (the output format is stable;
 * scripts parse it):
 *
 *   conns: C
 *   size: S
 *   seconds: <elapsed, 2 decimals>
 *   round_trips: <completed in that time, all connections>
 *   rtt/s: <round_trips / seconds, integer>
 *   p50_us: <median round-trip latency, microseconds>
 *   p99_us: <99th percentile, microseconds>
 *   errors: <connections that failed>
 *
 * and exits 0 (1 if a connection failed). Latencies are binned per
 * microsecond up to 100 ms; slower round trips count as 100000.
 *
 * Idle mode: opens C connections one after another, prints
 * "idle: C connections open", holds them without sending anything until
 * SIGINT / SIGTERM, closes them and exits 0. RLIMIT_NOFILE is raised to what
 * C needs (at most to the hard limit; if that is too low it says so and
 * exits 1). C is capped at 100000 in both modes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common.h"

#define MAX_CONNS 100000
#define HIST_BINS 100001 /* 0..99999 us, then "100 ms or more" */
#define GRACE_MS  5000   /* after the run: how long in-flight round trips may take */

static const char USAGE[] =
    "usage: tcp_echo_client [--host H] [--port P] [--conns C] [--size S] [--seconds T]\n"
    "       tcp_echo_client [--host H] [--port P] --idle C\n"
    "  --host H      server host name or IP (default 127.0.0.1)\n"
    "  --port P      server port (default 8080)\n"
    "  --conns C     connections doing ping-pong at once (default 50, max 100000)\n"
    "  --size S      message size in bytes (default 64, max 1048576)\n"
    "  --seconds T   how long to run (default 5)\n"
    "  --idle C      open C idle connections and hold them until SIGINT / SIGTERM\n"
    "Load mode prints, one per line: conns: C, size: S, seconds: T, round_trips: N,\n"
    "rtt/s: N, p50_us: N, p99_us: N, errors: N (exit 1 if errors > 0).\n"
    "Idle mode prints 'idle: C connections open' once they are.\n";

static struct {
    const char *host;
    uint16_t port;
    size_t size;
    bool stop;                /* time is up: finish the round trip in flight, then stop */
    uint64_t round_trips;     /* completed before stop */
    uint64_t hist[HIST_BINS]; /* latency histogram, 1 us bins */
} g;

/* Reports an error on stderr; returns it. */
static int report(const char *what, int rc)
{
    fprintf(stderr, "tcp_echo_client: %s: %s\n", what, asyncio_strerror(rc));
    return rc;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The smallest latency (us) with at least `fraction` of the samples at or below it. */
static uint64_t percentile_us(double fraction)
{
    uint64_t total = 0, seen = 0;
    for (size_t i = 0; i < HIST_BINS; i++)
        total += g.hist[i];
    uint64_t want = (uint64_t)((double)total * fraction + 0.5);
    for (size_t i = 0; i < HIST_BINS; i++) {
        seen += g.hist[i];
        if (seen >= want && seen > 0)
            return i;
    }
    return 0;
}

/* ---- one connection: connect, then ping-pong until g.stop ------------------------- */

typedef enum { CONNECTING, SENDING, RECEIVING } conn_step;

typedef struct conn {
    conn_step step;
    asyncio_tcp_connect_host connect;
    asyncio_tcp_stream s;
    asyncio_write_all send;
    asyncio_read_exact recv;
    uint64_t sent_at;
    unsigned char *out, *in; /* g.size bytes each */
} conn;

static int conn_poll(void *state, asyncio_context *cx, void *output)
{
    conn *c = state;
    (void)output;
    for (;;) {
        int rc;
        switch (c->step) {
        case CONNECTING: /* resolve and connect; buffers once connected */
            if ((rc = asyncio_tcp_connect_host_poll(&c->connect, cx, &c->s)) != 0)
                return rc;
            (void)asyncio_tcp_stream_set_nodelay(&c->s, true);
            c->out = malloc(g.size);
            c->in = malloc(g.size);
            if (c->out == NULL || c->in == NULL)
                return ASYNCIO_ENOMEM;
            memset(c->out, 'x', g.size);
            c->step = SENDING;
            c->sent_at = now_ns();
            asyncio_write_all_init(&c->send, asyncio_tcp_stream_writer(&c->s), c->out, g.size);
            break;
        case SENDING: /* the whole message out */
            if ((rc = asyncio_write_all_poll(&c->send, cx)) != 0)
                return rc;
            c->step = RECEIVING;
            asyncio_read_exact_init(&c->recv, asyncio_tcp_stream_reader(&c->s), c->in, g.size);
            break;
        case RECEIVING: { /* the whole echo back: one round trip */
            if ((rc = asyncio_read_exact_poll(&c->recv, cx)) != 0)
                return rc; /* early EOF: ASYNCIO_EUNEXPECTED_EOF */
            if (g.stop)
                return 0;
            uint64_t now = now_ns(), us = (now - c->sent_at) / 1000;
            g.hist[us < HIST_BINS - 1 ? us : HIST_BINS - 1]++;
            g.round_trips++;
            c->step = SENDING;
            c->sent_at = now;
            asyncio_write_all_init(&c->send, asyncio_tcp_stream_writer(&c->s), c->out, g.size);
            break;
        }
        }
    }
}

static void conn_drop(void *state)
{
    conn *c = state;
    asyncio_tcp_connect_host_drop(&c->connect);
    asyncio_tcp_stream_close(&c->s);
    free(c->out);
    free(c->in);
}

static const asyncio_task_vtable conn_vt = {conn_poll, conn_drop, NULL, sizeof(conn), 0};

/* ---- load mode: spawn, wait T seconds, stop, join, report ------------------------ */

typedef enum { RUNNING, JOINING } load_step;

typedef struct load {
    load_step step;
    size_t conns, joined, errors;
    unsigned long seconds;
    bool aborted;
    asyncio_join_handle **handles;
    asyncio_signal stop;
    asyncio_sleep timer; /* the run, then the grace period */
    uint64_t started, elapsed_ns;
} load;

static int load_spawn(load *l)
{
    int rc = example_stop_init(&l->stop);
    if (rc < 0)
        return report("signals", rc);
    if ((l->handles = calloc(l->conns, sizeof *l->handles)) == NULL)
        return report("starting", ASYNCIO_ENOMEM);
    for (size_t i = 0; i < l->conns; i++) {
        conn init = {.step = CONNECTING};
        asyncio_tcp_stream_init_closed(&init.s);
        rc = asyncio_tcp_connect_host_init(&init.connect, g.host, g.port);
        if (rc == 0)
            rc = asyncio_spawn(asyncio_runtime_current(), &conn_vt, &init, &l->handles[i]);
        if (rc < 0)
            return report("starting a connection", rc);
    }
    l->started = now_ns();
    asyncio_sleep_init(&l->timer, (uint64_t)l->seconds * 1000);
    return 0;
}

static void load_report(const load *l)
{
    double secs = (double)l->elapsed_ns / 1e9;
    printf("conns: %zu\nsize: %zu\nseconds: %.2f\nround_trips: %llu\n", l->conns, g.size, secs,
           (unsigned long long)g.round_trips);
    printf("rtt/s: %.0f\np50_us: %llu\np99_us: %llu\nerrors: %zu\n",
           secs > 0 ? (double)g.round_trips / secs : 0.0, (unsigned long long)percentile_us(0.50),
           (unsigned long long)percentile_us(0.99), l->errors);
    fflush(stdout);
}

static int load_poll(void *state, asyncio_context *cx, void *output)
{
    load *l = state;
    (void)output;
    if (l->handles == NULL) {
        int rc = load_spawn(l);
        if (rc < 0)
            return rc;
    }
    if (l->step == RUNNING) { /* until the time is up or a signal arrives */
        if (!example_stop_requested(&l->stop, cx) &&
            asyncio_sleep_poll(&l->timer, cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        g.stop = true;
        l->elapsed_ns = now_ns() - l->started;
        asyncio_sleep_drop(&l->timer);
        asyncio_sleep_init(&l->timer, GRACE_MS);
        l->step = JOINING;
    }
    while (l->joined < l->conns) { /* each finishes its round trip in flight */
        if (!l->aborted && asyncio_sleep_poll(&l->timer, cx) == 0) {
            for (size_t i = l->joined; i < l->conns; i++) /* stuck: give up on them */
                asyncio_join_handle_abort(l->handles[i]);
            l->aborted = true;
        }
        int rc = asyncio_join_handle_poll(l->handles[l->joined], cx, NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc < 0) {
            report("connection", rc);
            l->errors++;
        }
        l->joined++;
    }
    load_report(l);
    return l->errors > 0 ? ASYNCIO_EIO : 0; /* exit status 1; the errors were reported */
}

static void load_drop(void *state)
{
    load *l = state;
    for (size_t i = 0; l->handles != NULL && i < l->conns; i++)
        asyncio_join_handle_drop(l->handles[i]);
    free(l->handles);
    asyncio_sleep_drop(&l->timer);
    asyncio_signal_drop(&l->stop);
}

static const asyncio_task_vtable load_vt = {load_poll, load_drop, NULL, sizeof(load), 0};

/* ---- idle mode: open C connections, hold them until a signal --------------------- */

typedef struct idle {
    size_t want, open;
    asyncio_tcp_stream *streams; /* [0, open) are connected */
    asyncio_tcp_connect_host connect;
    bool connecting, announced;
    asyncio_signal stop;
} idle;

static int idle_poll(void *state, asyncio_context *cx, void *output)
{
    idle *d = state;
    (void)output;
    if (d->streams == NULL) {
        int rc = example_stop_init(&d->stop);
        if (rc < 0)
            return report("signals", rc);
        if ((d->streams = calloc(d->want, sizeof *d->streams)) == NULL)
            return report("starting", ASYNCIO_ENOMEM);
    }
    if (example_stop_requested(&d->stop, cx))
        return 0; /* the drop closes them */
    while (d->open < d->want) {
        if (!d->connecting) {
            int rc = asyncio_tcp_connect_host_init(&d->connect, g.host, g.port);
            if (rc < 0)
                return report("--host", rc);
            d->connecting = true;
        }
        int rc = asyncio_tcp_connect_host_poll(&d->connect, cx, &d->streams[d->open]);
        if (rc == ASYNCIO_PENDING)
            return rc;
        asyncio_tcp_connect_host_drop(&d->connect);
        d->connecting = false;
        if (rc < 0)
            return report("connect", rc);
        d->open++;
    }
    if (!d->announced) {
        printf("idle: %zu connections open\n", d->open);
        fflush(stdout);
        d->announced = true;
    }
    return ASYNCIO_PENDING; /* the signal listener holds our waker */
}

static void idle_drop(void *state)
{
    idle *d = state;
    if (d->connecting)
        asyncio_tcp_connect_host_drop(&d->connect);
    for (size_t i = 0; i < d->open; i++)
        asyncio_tcp_stream_close(&d->streams[i]);
    free(d->streams);
    asyncio_signal_drop(&d->stop);
}

static const asyncio_task_vtable idle_vt = {idle_poll, idle_drop, NULL, sizeof(idle), 0};

/* ---- main --------------------------------------------------------------------------- */

/* Makes room for `conns` sockets plus a few: raises the soft RLIMIT_NOFILE (up to the hard one). */
static bool ensure_fds(size_t conns)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)conns + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
        return true;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < need) {
        fprintf(stderr, "tcp_echo_client: %zu connections need %llu fds; the limit is %llu\n",
                conns, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    unsigned long port = 8080, conns = 50, size = 64, seconds = 5, idle_conns = 0;
    g.host = "127.0.0.1";
    const example_flag flags[] = {
        {"--host", EXAMPLE_FLAG_STR, &g.host, 0},
        {"--port", EXAMPLE_FLAG_UINT, &port, 65535},
        {"--conns", EXAMPLE_FLAG_UINT, &conns, MAX_CONNS},
        {"--size", EXAMPLE_FLAG_UINT, &size, 1 << 20},
        {"--seconds", EXAMPLE_FLAG_UINT, &seconds, 86400},
        {"--idle", EXAMPLE_FLAG_UINT, &idle_conns, MAX_CONNS},
    };
    bool done;
    int code = example_parse_flags(argc, argv, flags, 6, USAGE, &done);
    if (done)
        return code;
    if (port == 0 || (idle_conns == 0 && (conns == 0 || size == 0))) {
        fprintf(stderr, "tcp_echo_client: --port, --conns and --size must be > 0\n%s", USAGE);
        return 2;
    }
    g.port = (uint16_t)port;
    g.size = size;
    if (!ensure_fds(idle_conns > 0 ? idle_conns : conns))
        return 1;
    if (idle_conns > 0) {
        idle d = {.want = idle_conns};
        return example_run("tcp_echo_client", 0, &idle_vt, &d);
    }
    load l = {.conns = conns, .seconds = seconds};
    asyncio_sleep_init(&l.timer, 0); /* armed for real by the first poll */
    return example_run("tcp_echo_client", 0, &load_vt, &l);
}
