/*
 * Simulation sweep of the HTTP server's connection handling (docs/testing.md,
 * "Simulation"): examples/http/conn.c, parser.c and response.c, unmodified,
 * on the simulated OS (sim_os.h), one seed per run.
 *
 * Scenario "http": a server on 10.0.0.1:80 accepts as http_server.c's
 * serve() does (http_conn_start into a JoinSet, a cancel token); 10 clients
 * each open one keep-alive connection and send a seeded script of 1..8
 * requests (GET /plaintext, GET /json, POST /echo with a seeded body of
 * 0..3000 bytes, GET of a missing path), either pipelined (the whole script
 * written in seeded chunks, split further by the simulated short writes) or
 * one at a time (the next request after the previous response); a quarter
 * of the clients write byte by byte, each byte its own segment, so the
 * parser meets every split point of heads and bodies. The last
 * request says "Connection: close" on some seeds; otherwise the client shuts
 * down writing after its last request, so the server sees EOF while
 * responses are still owed. Checked per seed: every response, in order, has
 * the expected status, a Content-Length, and exactly the expected body
 * (echo: the bytes sent); all of them arrive, then EOF; everything ends
 * within 60 s of virtual time (a lost wake-up); no virtual fd left open, no
 * connection task left alive (http_conn_live), no block leaked (ASan).
 * Scenario "http_faults": the same with connection resets and a partition;
 * a client may end with ECONNRESET / EPIPE / early EOF, but every response
 * it did receive must still be the right one in the right order.
 *
 * Usage: sim_http [--seeds N] [--first S] [--scenario http|http_faults] [--verbose]
 * Prints the failing seeds and the rate; exit 1 on a failing seed.
 * Replay: sim_http --scenario S --first SEED --seeds 1 --verbose.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "asyncio.h"
#include "http/conn.h"
#include "sim_os.h"

#define CLIENTS     10
#define MAX_REQS    8
#define MAX_BODY    3000
#define SCRIPT_CAP  (MAX_REQS * (MAX_BODY + 128))
#define IN_CAP      (MAX_BODY + 1024)
#define DEADLINE_MS 60000

static bool g_faults;
static bool g_verbose;
static int g_failed;
static char g_why[200];
static int g_done;
static asyncio_waker g_collector;
static uint64_t g_conn_errors, g_responses;

static const char k_hello[] = "Hello, World!";
static const char k_json[] = "{\"message\":\"Hello, World!\"}";

static void fail_seed(int code, const char *what, int client, int req)
{
    if (g_failed == 0) {
        g_failed = code;
        snprintf(g_why, sizeof g_why, "client %d, response %d: %s", client, req, what);
    }
}

static unsigned char body_byte(int client, int req, size_t i)
{
    return (unsigned char)('a' + (i * 7u + (unsigned)client * 3u + (unsigned)req * 11u) % 26u);
}

/* ------------------------------------------------------------------------ */
/* Server: http_server.c's accept loop                                       */

typedef struct server {
    asyncio_tcp_listener *l;
    asyncio_join_set *conns;
    asyncio_cancel_token *stop;
} server;

static int server_poll(void *state, asyncio_context *cx, void *out)
{
    server *sv = state;
    (void)out;
    for (;;) {
        (void)asyncio_join_set_poll_drain(sv->conns, cx); /* reap finished connections */
        asyncio_tcp_stream s;
        int rc = asyncio_tcp_listener_poll_accept(sv->l, cx, &s, NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc < 0)
            continue; /* as serve(): the listener stays usable */
        (void)http_conn_start(&s, sv->conns, sv->stop); /* closes the stream on failure */
    }
}

static void server_drop(void *state)
{
    server *sv = state;
    asyncio_join_set_free(sv->conns); /* aborts what is left */
    asyncio_cancel_token_drop(sv->stop);
    asyncio_tcp_listener_close(sv->l);
}

static const asyncio_task_vtable server_vt = {server_poll, server_drop, NULL, sizeof(server), 0};

/* ------------------------------------------------------------------------ */
/* Clients                                                                   */

enum kind { K_PLAIN, K_JSON, K_ECHO, K_MISSING };

typedef struct client {
    int id;
    asyncio_tcp_connect conn;
    asyncio_tcp_stream s;
    int step;
    int nreq;            /* requests in the script */
    bool pipelined;      /* write the whole script at once, else one request per response */
    bool trickle;        /* write one byte at a time (each its own segment) */
    bool close_last;     /* the last request says Connection: close */
    bool shut;           /* shut down writing (after the last request, unless close_last) */
    bool counted;
    enum kind kind[MAX_REQS];
    size_t body_len[MAX_REQS];
    size_t req_end[MAX_REQS]; /* where request i ends in script */
    size_t script_len, sent;
    int got;                  /* responses received and checked */
    size_t in_len;
    unsigned char script[SCRIPT_CAP];
    unsigned char in[IN_CAP];
} client;

static void client_script(client *c)
{
    size_t n = 0;
    c->nreq = 1 + (int)sim_rand(MAX_REQS);
    c->pipelined = sim_rand(2) == 0;
    c->close_last = sim_rand(3) == 0;
    c->trickle = sim_rand(4) == 0;
    for (int i = 0; i < c->nreq; i++) {
        c->kind[i] = (enum kind)sim_rand(4);
        const char *conn = i == c->nreq - 1 && c->close_last ? "Connection: close\r\n" : "";
        char *p = (char *)c->script + n;
        size_t room = SCRIPT_CAP - n;
        switch (c->kind[i]) {
        case K_PLAIN:
            n += (size_t)snprintf(p, room, "GET /plaintext HTTP/1.1\r\nHost: sim\r\n%s\r\n", conn);
            break;
        case K_JSON:
            n += (size_t)snprintf(p, room, "GET /json HTTP/1.1\r\nHost: sim\r\n%s\r\n", conn);
            break;
        case K_MISSING:
            n += (size_t)snprintf(p, room, "GET /missing/%d HTTP/1.1\r\nHost: sim\r\n%s\r\n", i,
                                  conn);
            break;
        case K_ECHO:
            c->body_len[i] = (size_t)sim_rand(MAX_BODY + 1);
            n += (size_t)snprintf(p, room,
                                  "POST /echo HTTP/1.1\r\nHost: sim\r\nContent-Length: %zu\r\n%s\r\n",
                                  c->body_len[i], conn);
            for (size_t j = 0; j < c->body_len[i]; j++)
                c->script[n++] = body_byte(c->id, i, j);
            break;
        }
        c->req_end[i] = n;
    }
    c->script_len = n;
}

/* Writes what the script allows now (all of it, or up to the request awaiting its response). */
static int client_send(client *c, asyncio_context *cx)
{
    size_t limit = c->pipelined || c->got >= c->nreq ? c->script_len : c->req_end[c->got];
    while (c->sent < limit) {
        size_t want = c->trickle ? 1 : 1 + (size_t)sim_rand(700), n;
        if (want > limit - c->sent)
            want = limit - c->sent;
        int rc = asyncio_tcp_stream_poll_write(&c->s, cx, c->script + c->sent, want, &n);
        if (rc != 0)
            return rc;
        c->sent += n;
    }
    if (c->sent == c->script_len && !c->close_last && !c->shut) {
        int rc = asyncio_tcp_stream_poll_shutdown(&c->s, cx);
        if (rc != 0)
            return rc;
        c->shut = true;
    }
    return 0;
}

/* Finds `name` (lower case, with ": ") in a response head; its value or NULL. */
static const char *head_field(const char *head, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl <= len; i++)
        if ((i == 0 || head[i - 1] == '\n') && strncasecmp(head + i, name, nl) == 0)
            return head + i + nl;
    return NULL;
}

/* Checks complete responses at the front of c->in; false (seed failed) on a wrong one. */
static bool client_check(client *c)
{
    for (;;) {
        unsigned char *end = NULL;
        for (size_t i = 0; i + 4 <= c->in_len; i++)
            if (memcmp(c->in + i, "\r\n\r\n", 4) == 0) {
                end = c->in + i + 4;
                break;
            }
        if (end == NULL) {
            if (c->in_len == IN_CAP) {
                fail_seed(-1, "a response head larger than any the server writes", c->id, c->got);
                return false;
            }
            return true;
        }
        size_t head_len = (size_t)(end - c->in);
        char head[1024];
        if (head_len >= sizeof head) {
            fail_seed(-1, "an oversized response head", c->id, c->got);
            return false;
        }
        memcpy(head, c->in, head_len);
        head[head_len] = '\0';
        if (c->got >= c->nreq) {
            fail_seed(-1, "a response to no request", c->id, c->got);
            return false;
        }
        enum kind k = c->kind[c->got];
        int want_status = k == K_MISSING ? 404 : 200;
        int status = 0;
        if (sscanf(head, "HTTP/1.1 %d ", &status) != 1 || status != want_status) {
            fail_seed(-1, "wrong status line", c->id, c->got);
            return false;
        }
        const char *cl = head_field(head, head_len, "content-length: ");
        char *cl_end = NULL;
        unsigned long long len = cl != NULL ? strtoull(cl, &cl_end, 10) : 0;
        if (cl == NULL || cl_end == cl || *cl_end != '\r') {
            fail_seed(-1, "no valid Content-Length", c->id, c->got);
            return false;
        }
        if (len > IN_CAP - head_len) {
            fail_seed(-1, "a Content-Length larger than any body expected", c->id, c->got);
            return false;
        }
        if (c->in_len < head_len + len)
            return true; /* the body is still coming */
        const unsigned char *body = end;
        bool ok = true;
        switch (k) {
        case K_PLAIN:
            ok = len == sizeof k_hello - 1 && memcmp(body, k_hello, len) == 0;
            break;
        case K_JSON:
            ok = len == sizeof k_json - 1 && memcmp(body, k_json, len) == 0;
            break;
        case K_ECHO:
            ok = len == c->body_len[c->got];
            for (size_t j = 0; ok && j < len; j++)
                ok = body[j] == body_byte(c->id, c->got, j);
            break;
        case K_MISSING:
            break; /* any short text; its length was checked by the framing */
        }
        if (!ok) {
            fail_seed(-1, "wrong body", c->id, c->got);
            return false;
        }
        bool says_close = strstr(head, "onnection: close") != NULL;
        if (c->got == c->nreq - 1 && c->close_last && !says_close) {
            fail_seed(-1, "Connection: close not answered with Connection: close", c->id, c->got);
            return false;
        }
        c->got++;
        g_responses++;
        size_t used = head_len + (size_t)len;
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
    }
}

/* Reads and checks responses; 0 at EOF after all of them. */
static int client_recv(client *c, asyncio_context *cx)
{
    for (;;) {
        size_t n;
        int rc = asyncio_tcp_stream_poll_read(&c->s, cx, c->in + c->in_len, IN_CAP - c->in_len, &n);
        if (rc != 0)
            return rc;
        if (n == 0) {
            if (c->got == c->nreq && c->in_len == 0)
                return 0;
            return ASYNCIO_EUNEXPECTED_EOF;
        }
        c->in_len += n;
        if (!client_check(c))
            return ASYNCIO_EIO;
    }
}

static void client_finish(client *c)
{
    if (!c->counted) {
        c->counted = true;
        g_done++;
        asyncio_waker_wake_by_ref(&g_collector);
    }
    asyncio_tcp_stream_close(&c->s);
    c->step = 2;
}

static int client_poll(void *state, asyncio_context *cx, void *out)
{
    client *c = state;
    (void)out;
    int rc = 0;
    if (c->step == 0) {
        rc = asyncio_tcp_connect_poll(&c->conn, cx, &c->s);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc == 0)
            c->step = 1;
    }
    while (c->step == 1) {
        int before = c->got;
        int src = client_send(c, cx);
        int rrc = client_recv(c, cx);
        if (src != 0 && src != ASYNCIO_PENDING) {
            rc = src;
            break;
        }
        if (rrc == 0) {
            client_finish(c);
            return 0;
        }
        if (rrc != ASYNCIO_PENDING) {
            rc = rrc;
            break;
        }
        if (c->got == before)
            return ASYNCIO_PENDING; /* nothing new unlocks a request: both wait */
    }
    if (c->step == 2)
        return 0;
    bool ok = g_faults && (rc == ASYNCIO_ECONNRESET || rc == ASYNCIO_EPIPE ||
                           rc == ASYNCIO_EUNEXPECTED_EOF || rc == ASYNCIO_ECONNREFUSED);
    if (!ok)
        fail_seed(rc, asyncio_err_name(rc), c->id, c->got);
    g_conn_errors++;
    client_finish(c);
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
/* Main: start everything, wait for every client or the virtual deadline     */

typedef struct sim_main {
    int step;
    asyncio_join_handle *server, *clients[CLIENTS];
    asyncio_sleep deadline;
} sim_main;

static int main_start(sim_main *m, asyncio_runtime *rt)
{
    asyncio_sleep_init(&m->deadline, DEADLINE_MS);
    asyncio_sockaddr addr;
    server sv;
    memset(&sv, 0, sizeof sv);
    int rc = asyncio_addr_parse("10.0.0.1:80", &addr);
    if (rc == 0)
        rc = asyncio_join_set_new(&sv.conns);
    if (rc == 0)
        rc = asyncio_cancel_token_new(&sv.stop);
    if (rc == 0)
        rc = asyncio_tcp_listener_bind(&sv.l, &addr, NULL);
    if (rc == 0)
        rc = asyncio_spawn(rt, &server_vt, &sv, &m->server);
    if (rc != 0) {
        asyncio_join_set_free(sv.conns);
        if (sv.stop != NULL)
            asyncio_cancel_token_drop(sv.stop);
        if (sv.l != NULL)
            asyncio_tcp_listener_close(sv.l);
        return rc;
    }
    client *c = malloc(sizeof *c); /* large: not on the stack */
    if (c == NULL)
        return ASYNCIO_ENOMEM;
    for (int i = 0; i < CLIENTS && rc == 0; i++) {
        memset(c, 0, offsetof(client, script));
        c->id = i;
        client_script(c);
        asyncio_tcp_stream_init_closed(&c->s);
        asyncio_tcp_connect_init(&c->conn, &addr);
        rc = asyncio_spawn(rt, &client_vt, c, &m->clients[i]);
    }
    free(c);
    return rc;
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
    /* The deadline first: a correct run takes well under a second of virtual time. */
    if (asyncio_sleep_poll(&m->deadline, cx) == 0) {
        fail_seed(ASYNCIO_ETIMEDOUT, "not done within the virtual deadline (a hang)", -1, -1);
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
        fail_seed(rc, asyncio_err_name(rc), -1, -1);
    if (http_conn_live() != 0)
        fail_seed(-1, "connection tasks left alive", -1, -1);
    http_scratch_release();
    uint64_t vt = sim_now_ms();
    int open = sim_os_uninstall();
    if (open != 0)
        fail_seed(-1, "virtual fds left open", -1, -1);
    if (g_verbose || g_failed != 0)
        printf("seed %llu: %s%s (virtual %llu ms)\n", (unsigned long long)seed,
               g_failed ? "FAIL " : "ok", g_why, (unsigned long long)(vt - 1000));
    return g_failed;
}

int main(int argc, char **argv)
{
    uint64_t first = 0, seeds = 1000;
    const char *scenario = "http";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc)
            seeds = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--first") == 0 && i + 1 < argc)
            first = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--scenario") == 0 && i + 1 < argc)
            scenario = argv[++i];
        else if (strcmp(argv[i], "--verbose") == 0)
            g_verbose = true;
        else {
            fprintf(stderr, "usage: sim_http [--seeds N] [--first S] [--scenario http|http_faults] "
                            "[--verbose]\n");
            return 2;
        }
    }
    if (strcmp(scenario, "http_faults") == 0)
        g_faults = true;
    else if (strcmp(scenario, "http") != 0) {
        fprintf(stderr, "sim_http: unknown scenario %s\n", scenario);
        return 2;
    }
    setenv("ASYNCIO_BACKEND", "epoll", 1); /* the simulated OS implements epoll */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t failing = 0, ran = 0;
    for (uint64_t s = first; s < first + seeds; s++) {
        ran++;
        if (run_seed(s) != 0)
            failing++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("sim %s: %llu seeds from %llu, %llu failing, %llu responses checked, "
           "%llu connections ended by an error, %.0f seeds/s (wall clock; machine shared)\n",
           scenario, (unsigned long long)ran, (unsigned long long)first,
           (unsigned long long)failing, (unsigned long long)g_responses,
           (unsigned long long)g_conn_errors, ran / (secs > 0 ? secs : 1e-9));
    return failing > 0 ? 1 : 0;
}
