/*
 * Simulation sweep (docs/testing.md, "Simulation"): the unmodified runtime
 * and TCP code on the simulated OS (sim_os.h), one seed per run.
 *
 * Scenario "echo": a server on 10.0.0.1:7 accepts connections and spawns
 * one handler per connection that echoes until EOF, then shuts down
 * writing; 10 clients each send a seeded number of bytes (1..8 KiB, a
 * pattern of their own) in seeded chunks while reading the echo back. Checked
 * per seed: each client receives exactly its bytes in order (every byte is
 * compared as it arrives, so a lost, duplicated or reordered byte is caught
 * where it happens), then EOF; everything finishes within 60 s of virtual
 * time (a lost wake-up shows as that deadline); no fd and no block leaks.
 * Scenario "echo_faults": the same with connection resets and a network
 * partition; a client may then end with ECONNRESET / EPIPE / early EOF but
 * what it received must still be a prefix of what it sent.
 * Scenario "udp": a UDP echo server on 10.0.0.1:9; 10 clients (10.0.0.2..11)
 * send 20 numbered datagrams each and collect the replies for up to 1 s of
 * virtual time: every reply intact, none duplicated, none never sent, all
 * 20 back (latencies are independent, so they arrive reordered).
 * "udp_lossy": with 10 % loss and partitions: the same minus "all back".
 * Scenario "proxy": the echo scenario with the proxy example's connection
 * task (examples/proxy_conn.c) in between: a proxy on 10.0.0.20:8 accepts,
 * connects to the echo server and runs asyncio_copy_bidirectional; the
 * clients talk to the proxy.
 * Same checks: every byte through both ways intact and in order, and the EOF
 * each client sees proves the half-close went client -> proxy -> server and
 * back. "proxy_faults": with resets and partitions on both legs; a client may
 * end with ECONNRESET / EPIPE / early EOF (the proxy closes its side when the
 * other leg fails), never hang, and what it received is a prefix of what it sent.
 *
 * Planted bugs (SIM_PLANTED_BUG=1..3 at compile time; the sim_bug* targets):
 *   1  the handler forgets the rest of a short write (no re-arm / retry);
 *   2  the handler drops its waker on one path: a 1-byte read makes it
 *      return PENDING without anything that will wake it;
 *   3  a lost wake-up: a client wakes the collector before it counts itself
 *      done, with a suspension point in between.
 * Each must be found within 10,000 seeds (`make sim` runs them as self-tests).
 *
 * Usage: sim_echo [--seeds N] [--first S] [--scenario echo|echo_faults|proxy|proxy_faults|udp|udp_lossy]
 *                 [--expect-failure] [--verbose]
 * Prints the failing seeds and the rate; exit 1 on a failing seed (or, with
 * --expect-failure, on none). Replay: sim_echo --first S --seeds 1 --verbose.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asyncio.h"
#include "proxy_conn.h"
#include "sim_os.h"

#ifndef SIM_PLANTED_BUG
#define SIM_PLANTED_BUG 0
#endif

#define CLIENTS 10
#define MAX_SIZE 8192
#define DEADLINE_MS 60000

static bool g_faults; /* echo_faults: resets and partitions allowed */
static bool g_verbose;
static int g_failed;     /* first failure of this seed (0: none) */
static char g_why[160];  /* what failed */
static int g_done;       /* clients finished */
static asyncio_waker g_collector;
static uint64_t g_conn_errors; /* clients ended by a reset / EOF under faults, all seeds */

static void fail_seed(int code, const char *what, int client)
{
    if (g_failed == 0) {
        g_failed = code;
        snprintf(g_why, sizeof g_why, "client %d: %s", client, what);
    }
}

static unsigned char pattern(int client, size_t i)
{
    return (unsigned char)(i * 31u + (unsigned)client * 7u + (i >> 8));
}

/* ------------------------------------------------------------------------ */
/* Server: accept loop, one echo handler per connection                      */

typedef struct handler {
    asyncio_tcp_stream s;
    unsigned char buf[1024];
    size_t len, off;
    bool eof;
} handler;

static int handler_poll(void *state, asyncio_context *cx, void *out)
{
    handler *h = state;
    (void)out;
    for (;;) {
        while (h->off < h->len) {
            size_t n;
            int rc = asyncio_tcp_stream_poll_write(&h->s, cx, h->buf + h->off, h->len - h->off, &n);
            if (rc != 0)
                return rc;
            h->off += n;
#if SIM_PLANTED_BUG == 1
            h->off = h->len; /* BUG: a short write's remainder is forgotten */
#endif
        }
        if (h->eof)
            return asyncio_tcp_stream_poll_shutdown(&h->s, cx);
        h->off = h->len = 0;
        int rc = asyncio_tcp_stream_poll_read(&h->s, cx, h->buf, sizeof h->buf, &h->len);
        if (rc != 0)
            return rc;
        h->eof = h->len == 0;
#if SIM_PLANTED_BUG == 2
        if (h->len == 1) {
            h->off = 0;
            return ASYNCIO_PENDING; /* BUG: "yield", but nothing holds our waker */
        }
#endif
    }
}

static void handler_drop(void *state)
{
    handler *h = state;
    asyncio_tcp_stream_close(&h->s);
}

static const asyncio_task_vtable handler_vt = {handler_poll, handler_drop, NULL, sizeof(handler),
                                               0};

typedef struct server {
    asyncio_tcp_listener *l;
} server;

static int server_poll(void *state, asyncio_context *cx, void *out)
{
    server *sv = state;
    (void)out;
    for (;;) {
        handler h;
        memset(&h, 0, sizeof h);
        int rc = asyncio_tcp_listener_poll_accept(sv->l, cx, &h.s, NULL);
        if (rc != 0)
            return rc;
        asyncio_join_handle *jh;
        rc = asyncio_spawn(asyncio_runtime_current(), &handler_vt, &h, &jh);
        if (rc != 0) {
            asyncio_tcp_stream_close(&h.s);
            return rc;
        }
        asyncio_join_handle_drop(jh); /* detached */
    }
}

static void server_drop(void *state)
{
    server *sv = state;
    asyncio_tcp_listener_close(sv->l);
}

static const asyncio_task_vtable server_vt = {server_poll, server_drop, NULL, sizeof(server), 0};

/* ------------------------------------------------------------------------ */
/* Proxy (scenarios "proxy", "proxy_faults"): the proxy example's connection  */
/* task itself (examples/proxy_conn.c), behind an accept loop                 */

static bool g_proxy; /* clients go through a proxy on 10.0.0.20:8 to the echo server */
static asyncio_sockaddr g_upstream;

static int proxy_poll(void *state, asyncio_context *cx, void *out)
{
    server *sv = state;
    (void)out;
    for (;;) {
        asyncio_tcp_stream s;
        int rc = asyncio_tcp_listener_poll_accept(sv->l, cx, &s, NULL);
        if (rc != 0)
            return rc;
        proxy_conn c;
        proxy_conn_init(&c, &s, &g_upstream);
        asyncio_join_handle *jh;
        rc = asyncio_spawn(asyncio_runtime_current(), &proxy_conn_vt, &c, &jh);
        if (rc != 0) {
            asyncio_tcp_connect_drop(&c.connect);
            asyncio_tcp_stream_close(&s);
            return rc;
        }
        asyncio_join_handle_drop(jh); /* detached, as example_spawn_conn's tasks */
    }
}

static const asyncio_task_vtable proxy_vt = {proxy_poll, server_drop, NULL, sizeof(server), 0};

/* ------------------------------------------------------------------------ */
/* Clients                                                                   */

typedef struct client {
    int id;
    asyncio_sockaddr addr;
    asyncio_tcp_connect conn;
    asyncio_tcp_stream s;
    int step;
    size_t size, sent, got;
    bool shut, counted, woke;
    unsigned char in[512];
} client;

/* Sends the next seeded chunk; PENDING or an error stops the caller. */
static int client_send(client *c, asyncio_context *cx)
{
    unsigned char chunk[700];
    while (c->sent < c->size) {
        size_t want = 1 + (size_t)sim_rand(sizeof chunk);
        if (want > c->size - c->sent)
            want = c->size - c->sent;
        for (size_t i = 0; i < want; i++)
            chunk[i] = pattern(c->id, c->sent + i);
        size_t n;
        int rc = asyncio_tcp_stream_poll_write(&c->s, cx, chunk, want, &n);
        if (rc != 0)
            return rc;
        c->sent += n;
    }
    if (!c->shut) {
        int rc = asyncio_tcp_stream_poll_shutdown(&c->s, cx);
        if (rc != 0)
            return rc;
        c->shut = true;
    }
    return 0;
}

/* Reads what has come back, checking every byte; 0 at EOF. */
static int client_recv(client *c, asyncio_context *cx)
{
    for (;;) {
        size_t n;
        int rc = asyncio_tcp_stream_poll_read(&c->s, cx, c->in, sizeof c->in, &n);
        if (rc != 0)
            return rc;
        if (n == 0)
            return c->got == c->size ? 0 : ASYNCIO_EUNEXPECTED_EOF;
        for (size_t i = 0; i < n; i++) {
            if (c->got + i >= c->sent || c->in[i] != pattern(c->id, c->got + i)) {
                fail_seed(-1, c->got + i >= c->sent ? "received a byte never sent"
                                                    : "received a wrong byte",
                          c->id);
                return ASYNCIO_EIO;
            }
        }
        c->got += n;
    }
}

static void client_finish(client *c)
{
    if (!c->counted) {
        c->counted = true;
        g_done++;
    }
}

static int client_poll(void *state, asyncio_context *cx, void *out)
{
    client *c = state;
    (void)out;
    int rc = 0;
    switch (c->step) {
    case 0:
        rc = asyncio_tcp_connect_poll(&c->conn, cx, &c->s);
        if (rc != 0)
            break;
        c->step = 1;
        /* fallthrough */
    case 1: {
        int src = client_send(c, cx);
        int rrc = client_recv(c, cx);
        if (src != 0 && src != ASYNCIO_PENDING) {
            rc = src;
            break;
        }
        if (rrc != 0) {
            rc = rrc;
            break;
        }
        if (src == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        c->step = 2;
    }
        /* fallthrough */
    case 2:
#if SIM_PLANTED_BUG == 3
        /* BUG: wake the collector first, count ourselves after a suspension point. */
        if (!c->woke) {
            c->woke = true;
            asyncio_waker_wake_by_ref(&g_collector);
            asyncio_waker_wake_by_ref(cx->waker); /* yield once */
            return ASYNCIO_PENDING;
        }
        client_finish(c);
#else
        client_finish(c);
        asyncio_waker_wake_by_ref(&g_collector);
#endif
        asyncio_tcp_stream_close(&c->s);
        return 0;
    default:
        return 0;
    }
    if (rc == ASYNCIO_PENDING)
        return rc;
    /* An error: allowed only under faults, and only a connection's end. */
    bool ok = g_faults && (rc == ASYNCIO_ECONNRESET || rc == ASYNCIO_EPIPE ||
                           rc == ASYNCIO_EUNEXPECTED_EOF || rc == ASYNCIO_ECONNREFUSED);
    if (!ok)
        fail_seed(rc, asyncio_err_name(rc), c->id);
    g_conn_errors++;
    client_finish(c);
    asyncio_waker_wake_by_ref(&g_collector);
    asyncio_tcp_stream_close(&c->s);
    c->step = 3;
    return 0;
}

static void client_drop(void *state)
{
    client *c = state;
    asyncio_tcp_connect_drop(&c->conn);
    asyncio_tcp_stream_close(&c->s);
}

static const asyncio_task_vtable client_vt = {client_poll, client_drop, NULL, sizeof(client), 0};

/* ------------------------------------------------------------------------ */
/* UDP: an echo server; clients send numbered datagrams and collect replies  */

#define DATAGRAMS 20

static bool g_udp;       /* the udp scenarios instead of the TCP echo */
static bool g_lossy;     /* udp_lossy: loss and partitions, so replies may be missing */
static uint64_t g_reordered, g_lost;

typedef struct udp_server {
    asyncio_udp_socket s;
    unsigned char buf[1024];
    size_t len;
    asyncio_sockaddr from;
    bool have;
} udp_server;

static int udp_server_poll(void *state, asyncio_context *cx, void *out)
{
    udp_server *u = state;
    (void)out;
    for (;;) {
        if (!u->have) {
            int rc = asyncio_udp_poll_recv_from(&u->s, cx, u->buf, sizeof u->buf, &u->len, &u->from,
                                                NULL);
            if (rc != 0)
                return rc;
            u->have = true;
        }
        size_t n;
        int rc = asyncio_udp_poll_send_to(&u->s, cx, u->buf, u->len, &u->from, &n);
        if (rc != 0)
            return rc;
        u->have = false;
    }
}

static void udp_server_drop(void *state)
{
    udp_server *u = state;
    asyncio_udp_close(&u->s);
}

static const asyncio_task_vtable udp_server_vt = {udp_server_poll, udp_server_drop, NULL,
                                                  sizeof(udp_server), 0};

typedef struct udp_client {
    int id;
    asyncio_udp_socket s;
    asyncio_sockaddr server;
    int sent, got, last_seq;
    bool seen[DATAGRAMS], waiting;
    asyncio_sleep grace;
    unsigned char buf[1024];
} udp_client;

/* Datagram seq of client id: 4 bytes id, 4 bytes seq, then a pattern; length from both. */
static size_t udp_fill(unsigned char *b, int id, int seq)
{
    size_t len = 8 + (size_t)((id * 37 + seq * 101) % 500);
    memcpy(b, &id, 4);
    memcpy(b + 4, &seq, 4);
    for (size_t i = 8; i < len; i++)
        b[i] = pattern(id, i + (size_t)seq);
    return len;
}

static bool udp_check(udp_client *c, const unsigned char *b, size_t n)
{
    int id, seq;
    unsigned char want[1024];
    if (n < 8)
        return false;
    memcpy(&id, b, 4);
    memcpy(&seq, b + 4, 4);
    if (id != c->id || seq < 0 || seq >= c->sent || c->seen[seq])
        return false; /* another client's, never sent, or a duplicate */
    size_t len = udp_fill(want, id, seq);
    if (len != n || memcmp(want, b, n) != 0)
        return false;
    c->seen[seq] = true;
    if (seq < c->last_seq)
        g_reordered++;
    c->last_seq = seq;
    return true;
}

static int udp_client_poll(void *state, asyncio_context *cx, void *out)
{
    udp_client *c = state;
    (void)out;
    while (c->sent < DATAGRAMS) {
        size_t len = udp_fill(c->buf, c->id, c->sent), n;
        int rc = asyncio_udp_poll_send_to(&c->s, cx, c->buf, len, &c->server, &n);
        if (rc != 0)
            return rc;
        c->sent++;
    }
    if (!c->waiting) {
        asyncio_sleep_init(&c->grace, 1000); /* replies may come until then */
        c->waiting = true;
    }
    while (c->got < DATAGRAMS) {
        size_t n;
        int rc = asyncio_udp_poll_recv_from(&c->s, cx, c->buf, sizeof c->buf, &n, NULL, NULL);
        if (rc == ASYNCIO_PENDING) {
            if (asyncio_sleep_poll(&c->grace, cx) != 0)
                return ASYNCIO_PENDING;
            break; /* the grace period is over */
        }
        if (rc != 0)
            return rc;
        if (!udp_check(c, c->buf, n)) {
            fail_seed(-1, "a datagram corrupted, duplicated or never sent", c->id);
            break;
        }
        c->got++;
    }
    if (c->got < DATAGRAMS && !g_lossy)
        fail_seed(-1, "datagrams lost without loss in the network", c->id);
    g_lost += (uint64_t)(DATAGRAMS - c->got);
    g_done++;
    asyncio_waker_wake_by_ref(&g_collector);
    return 0;
}

static void udp_client_drop(void *state)
{
    udp_client *c = state;
    if (c->waiting)
        asyncio_sleep_drop(&c->grace);
    asyncio_udp_close(&c->s);
}

static const asyncio_task_vtable udp_client_vt = {udp_client_poll, udp_client_drop, NULL,
                                                  sizeof(udp_client), 0};

static int udp_start(asyncio_join_handle **srv, asyncio_join_handle **clients,
                     asyncio_runtime *rt)
{
    udp_server sv;
    memset(&sv, 0, sizeof sv);
    asyncio_sockaddr addr;
    int rc = asyncio_addr_parse("10.0.0.1:9", &addr);
    if (rc == 0)
        rc = asyncio_udp_bind(&sv.s, &addr, NULL);
    if (rc == 0)
        rc = asyncio_spawn(rt, &udp_server_vt, &sv, srv);
    if (rc != 0) {
        asyncio_udp_close(&sv.s);
        return rc;
    }
    for (int i = 0; i < CLIENTS; i++) {
        udp_client c;
        memset(&c, 0, sizeof c);
        c.id = i;
        c.server = addr;
        c.last_seq = -1;
        char local[32];
        snprintf(local, sizeof local, "10.0.0.%d:0", 2 + i);
        asyncio_sockaddr la;
        rc = asyncio_addr_parse(local, &la);
        if (rc == 0)
            rc = asyncio_udp_bind(&c.s, &la, NULL);
        if (rc == 0) {
            rc = asyncio_spawn(rt, &udp_client_vt, &c, &clients[i]);
            if (rc != 0)
                asyncio_udp_close(&c.s);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Main: start everything, wait for every client or the virtual deadline     */

typedef struct sim_main {
    int step;
    asyncio_join_handle *server, *proxy, *clients[CLIENTS];
    asyncio_sleep deadline;
} sim_main;

static int main_start(sim_main *m, asyncio_runtime *rt)
{
    asyncio_sleep_init(&m->deadline, DEADLINE_MS);
    if (g_udp)
        return udp_start(&m->server, m->clients, rt);
    asyncio_sockaddr addr;
    server sv;
    int rc = asyncio_addr_parse("10.0.0.1:7", &addr);
    if (rc == 0)
        rc = asyncio_tcp_listener_bind(&sv.l, &addr, NULL);
    if (rc != 0)
        return rc;
    rc = asyncio_spawn(rt, &server_vt, &sv, &m->server);
    if (rc != 0) {
        asyncio_tcp_listener_close(sv.l);
        return rc;
    }
    if (g_proxy) {
        g_upstream = addr;
        server px;
        rc = asyncio_addr_parse("10.0.0.20:8", &addr);
        if (rc == 0)
            rc = asyncio_tcp_listener_bind(&px.l, &addr, NULL);
        if (rc != 0)
            return rc;
        rc = asyncio_spawn(rt, &proxy_vt, &px, &m->proxy);
        if (rc != 0) {
            asyncio_tcp_listener_close(px.l);
            return rc;
        }
    }
    for (int i = 0; i < CLIENTS; i++) {
        client c;
        memset(&c, 0, sizeof c);
        c.id = i;
        c.size = 1 + (size_t)sim_rand(MAX_SIZE);
        asyncio_tcp_stream_init_closed(&c.s);
        asyncio_tcp_connect_init(&c.conn, &addr);
        rc = asyncio_spawn(rt, &client_vt, &c, &m->clients[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int main_poll(void *state, asyncio_context *cx, void *out)
{
    sim_main *m = state;
    (void)out;
    if (m->step == 0) {
        int rc = main_start(m, asyncio_runtime_current());
        if (rc != 0)
            return rc;
        m->step = 1;
    }
    asyncio_waker_drop(&g_collector);
    g_collector = asyncio_waker_clone(cx->waker);
    /*
     * The deadline first: a run that only finishes because the deadline woke us had lost
     * a wake-up (a correct run takes well under a second of virtual time).
     */
    if (asyncio_sleep_poll(&m->deadline, cx) == 0) {
        fail_seed(ASYNCIO_ETIMEDOUT, "not done within the virtual deadline (a hang)", -1);
        return 0;
    }
    return g_done < CLIENTS ? ASYNCIO_PENDING : 0;
}

static void main_drop(void *state)
{
    sim_main *m = state;
    asyncio_sleep_drop(&m->deadline);
    for (int i = 0; i < CLIENTS; i++)
        if (m->clients[i] != NULL) {
            (void)asyncio_join_handle_abort(m->clients[i]);
            asyncio_join_handle_drop(m->clients[i]);
        }
    if (m->proxy != NULL) {
        (void)asyncio_join_handle_abort(m->proxy);
        asyncio_join_handle_drop(m->proxy);
    }
    if (m->server != NULL) {
        (void)asyncio_join_handle_abort(m->server);
        asyncio_join_handle_drop(m->server);
    }
    asyncio_waker_drop(&g_collector);
}

static const asyncio_task_vtable main_vt = {main_poll, main_drop, NULL, sizeof(sim_main), 0};

/* ------------------------------------------------------------------------ */
/* One seed                                                                  */

static int run_seed(uint64_t seed)
{
    sim_options o = {.seed = seed, .max_latency_ms = 5, .short_pct = 10};
    if (g_faults) {
        o.reset_pct = 5;
        o.partition_pct = 30;
    }
    if (g_lossy) {
        o.udp_loss_pct = 10;
        o.partition_pct = 30;
    }
    sim_os_install(&o);
    g_failed = 0;
    g_done = 0;
    g_why[0] = '\0';
    g_collector = ASYNCIO_WAKER_EMPTY;
    asyncio_runtime_options ro;
    memset(&ro, 0, sizeof ro);
    ro.flavor = ASYNCIO_RUNTIME_CURRENT_THREAD;
    asyncio_runtime *rt;
    int rc = asyncio_runtime_new(&rt, &ro);
    if (rc == 0) {
        sim_main m;
        memset(&m, 0, sizeof m);
        rc = asyncio_runtime_block_on(rt, &main_vt, &m, NULL);
        int frc = asyncio_runtime_free(rt);
        if (rc == 0 && frc != 0)
            rc = frc;
    }
    if (rc != 0)
        fail_seed(rc, asyncio_err_name(rc), -1);
    uint64_t vt = sim_now_ms();
    int open = sim_os_uninstall();
    if (open != 0 && g_failed == 0)
        fail_seed(-1, "virtual fds left open", -1);
    if (g_verbose || g_failed != 0)
        printf("seed %llu: %s%s (virtual %llu ms)\n", (unsigned long long)seed,
               g_failed ? "FAIL " : "ok", g_why, (unsigned long long)(vt - 1000));
    return g_failed;
}

int main(int argc, char **argv)
{
    uint64_t first = 0, seeds = 1000;
    bool expect_failure = false;
    const char *scenario = "echo";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc)
            seeds = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--first") == 0 && i + 1 < argc)
            first = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--scenario") == 0 && i + 1 < argc)
            scenario = argv[++i];
        else if (strcmp(argv[i], "--expect-failure") == 0)
            expect_failure = true;
        else if (strcmp(argv[i], "--verbose") == 0)
            g_verbose = true;
        else {
            fprintf(stderr, "usage: sim_echo [--seeds N] [--first S] [--scenario echo|echo_faults|proxy|proxy_faults|udp|udp_lossy] "
                            "[--expect-failure] [--verbose]\n");
            return 2;
        }
    }
    if (strcmp(scenario, "echo_faults") == 0)
        g_faults = true;
    else if (strcmp(scenario, "proxy") == 0)
        g_proxy = true;
    else if (strcmp(scenario, "proxy_faults") == 0)
        g_proxy = g_faults = true;
    else if (strcmp(scenario, "udp") == 0)
        g_udp = true;
    else if (strcmp(scenario, "udp_lossy") == 0)
        g_udp = g_lossy = true;
    else if (strcmp(scenario, "echo") != 0) {
        fprintf(stderr, "sim_echo: unknown scenario %s\n", scenario);
        return 2;
    }
    setenv("ASYNCIO_BACKEND", "epoll", 1); /* the simulated OS implements epoll */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t failing = 0, ran = 0;
    for (uint64_t s = first; s < first + seeds; s++) {
        ran++;
        if (run_seed(s) != 0) {
            failing++;
            if (expect_failure)
                break; /* the planted bug is found */
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("sim %s%s: %llu seeds from %llu, %llu failing, %llu connections ended by an error, "
           "%llu datagrams lost, %llu reordered, %.0f seeds/s (wall clock; machine shared)\n",
           scenario, SIM_PLANTED_BUG ? " (planted bug)" : "", (unsigned long long)ran,
           (unsigned long long)first, (unsigned long long)failing,
           (unsigned long long)g_conn_errors, (unsigned long long)g_lost,
           (unsigned long long)g_reordered, ran / (secs > 0 ? secs : 1e-9));
    if (expect_failure)
        return failing > 0 ? 0 : 1;
    return failing > 0 ? 1 : 0;
}
