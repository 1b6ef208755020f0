/*
 * http_server: a small HTTP/1.1 server on libasyncio (docs/http.md).
 *
 *   http_server [--host H] [--port P] [--threads N] [--root DIR]
 *               [--max-line B] [--max-head B] [--max-headers N] [--max-body B]
 *               [--header-timeout-ms MS] [--idle-timeout-ms MS] [--linger-ms MS]
 *               [--max-conns N] [--body-timeout-ms MS] [--body-min-rate B]
 *               [--metrics] [--poll-histogram] [--dump-on-signal] [--stall-ms MS]
 *
 * Routes: GET / and /plaintext, /json, POST /echo, /static/<path> (files
 * under --root, sent with sendfile). Keep-alive and pipelining; limits and
 * hostile-input rules in examples/http/parser.c.
 *
 * Prints "listening on <addr>" (flushed) once ready; exits 0 after a
 * graceful shutdown on SIGINT / SIGTERM: stop accepting, close idle
 * connections, let in-flight responses finish (bounded by the header
 * timeout plus the linger time).
 *
 * --threads N: N worker threads (multi-thread runtime); 0 = the
 * current-thread runtime; omitted = one worker per CPU.
 *
 * Observability (docs/observability.md): --metrics serves GET /metrics in
 * the Prometheus text format (--poll-histogram adds the poll-time
 * histogram); --dump-on-signal prints a task dump on stderr at each
 * SIGUSR1; --stall-ms MS reports every poll longer than MS ms on stderr.
 *
 * Structure: main() parses flags and creates the runtime; the main task
 * binds the listener, accepts (one task per connection, examples/http/
 * conn.c) and waits for a signal, then shuts down.
 */
#include <asyncio.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h" /* example_dump_on_signal */
#include "http/conn.h"

typedef struct server_args {
    const char *host;
    int port;
    long threads; /* -1: one per CPU */
    const char *root;
    bool poll_histogram; /* --poll-histogram */
    bool dump_on_signal; /* --dump-on-signal */
    uint32_t stall_ms;   /* --stall-ms */
} server_args;

/* ------------------------------------------------------------------------ */
/* Flags                                                                     */

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--host H] [--port P] [--threads N] [--root DIR]\n"
            "          [--max-line B] [--max-head B] [--max-headers N] [--max-body B]\n"
            "          [--header-timeout-ms MS] [--idle-timeout-ms MS] [--linger-ms MS]\n"
            "          [--max-conns N] [--body-timeout-ms MS] [--body-min-rate B]\n"
            "          [--metrics] [--poll-histogram] [--dump-on-signal] [--stall-ms MS]\n"
            "  --metrics         GET /metrics answers the runtime's metrics (Prometheus text)\n"
            "  --poll-histogram  time every poll: /metrics gets asyncio_poll_duration_seconds\n"
            "  --dump-on-signal  SIGUSR1 prints a dump of every task to stderr\n"
            "  --stall-ms MS     report every task poll longer than MS ms on stderr\n",
            argv0);
}

static int parse_num(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max)
        return -1;
    *out = v;
    return 0;
}

/* A numeric flag: "--name value" into *dst (uint32) or *dst64. */
static int num_flag(const char *name, const char *val, server_args *a)
{
    http_config *c = &g_http_config;
    unsigned long long v;
    static const struct {
        const char *name;
        size_t off;
        unsigned long long min, max;
    } k_flags[] = {
        {"--max-line", offsetof(http_config, limits.max_line), 16, 1u << 20},
        {"--max-head", offsetof(http_config, limits.max_head), 16, 1u << 22},
        {"--max-headers", offsetof(http_config, limits.max_headers), 1, 10000},
        {"--header-timeout-ms", offsetof(http_config, header_timeout_ms), 1, UINT32_MAX},
        {"--idle-timeout-ms", offsetof(http_config, idle_timeout_ms), 1, UINT32_MAX},
        {"--linger-ms", offsetof(http_config, linger_ms), 0, UINT32_MAX},
        {"--max-conns", offsetof(http_config, max_conns), 1, UINT32_MAX},
        {"--body-timeout-ms", offsetof(http_config, body_timeout_ms), 1, UINT32_MAX},
        {"--body-min-rate", offsetof(http_config, body_min_rate), 0, UINT32_MAX},
    };
    if (strcmp(name, "--port") == 0) {
        if (parse_num(val, 65535, &v) < 0)
            return -1;
        a->port = (int)v;
        return 0;
    }
    if (strcmp(name, "--stall-ms") == 0) {
        if (parse_num(val, 3600000, &v) < 0)
            return -1;
        a->stall_ms = (uint32_t)v;
        return 0;
    }
    if (strcmp(name, "--threads") == 0) {
        if (parse_num(val, 1024, &v) < 0)
            return -1;
        a->threads = (long)v;
        return 0;
    }
    if (strcmp(name, "--max-body") == 0) {
        if (parse_num(val, 1ull << 40, &v) < 0)
            return -1;
        c->limits.max_body = v;
        return 0;
    }
    for (size_t i = 0; i < sizeof k_flags / sizeof k_flags[0]; i++) {
        if (strcmp(name, k_flags[i].name) == 0) {
            if (parse_num(val, k_flags[i].max, &v) < 0 || v < k_flags[i].min)
                return -1;
            *(uint32_t *)(void *)((char *)c + k_flags[i].off) = (uint32_t)v;
            return 0;
        }
    }
    return -1;
}

static int parse_args(int argc, char **argv, server_args *a)
{
    for (int i = 1; i < argc; i++) {
        /* Switches (no value). */
        if (strcmp(argv[i], "--metrics") == 0) {
            g_http_config.metrics = true;
            continue;
        }
        if (strcmp(argv[i], "--poll-histogram") == 0) {
            a->poll_histogram = true;
            continue;
        }
        if (strcmp(argv[i], "--dump-on-signal") == 0) {
            a->dump_on_signal = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "http_server: %s needs a value\n", argv[i]);
            return -1;
        }
        const char *name = argv[i], *val = argv[++i];
        if (strcmp(name, "--host") == 0) {
            a->host = val;
        } else if (strcmp(name, "--root") == 0) {
            a->root = val;
        } else if (num_flag(name, val, a) < 0) {
            fprintf(stderr, "http_server: bad flag or value: %s %s\n", name, val);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Main task                                                                 */

typedef struct main_task {
    asyncio_coro co; /* where main_poll resumes (await.h) */
    const server_args *args;
    asyncio_tcp_listener *listener;
    asyncio_signal sig;
    asyncio_join_set *conns;    /* every connection task */
    asyncio_cancel_token *stop; /* cancelled at SIGINT / SIGTERM: connections wind down */
    asyncio_timeout drain;      /* bounds the wait for connections at shutdown */
    bool draining;              /* drain is initialised */
} main_task;

/* The main task printed its own error (one line per failure): main() adds none. */
static bool g_main_reported;

static int main_bind(main_task *m)
{
    asyncio_sockaddr addr;
    int rc = asyncio_addr_from_ip(m->args->host, (uint16_t)m->args->port, &addr);
    if (rc < 0) {
        fprintf(stderr, "http_server: bad host '%s': %s\n", m->args->host, asyncio_strerror(rc));
        g_main_reported = true;
        return rc;
    }
    asyncio_tcp_listener_options lo = {.backlog = 4096};
    if ((rc = asyncio_tcp_listener_bind(&m->listener, &addr, &lo)) < 0) {
        fprintf(stderr, "http_server: listen on %s:%d: %s\n", m->args->host, m->args->port,
                asyncio_strerror(rc));
        g_main_reported = true;
        return rc;
    }
    char text[ASYNCIO_ADDRSTRLEN];
    asyncio_tcp_listener_local_addr(m->listener, &addr);
    asyncio_addr_format(&addr, text, sizeof text);
    printf("listening on %s\n", text);
    fflush(stdout);
    return 0;
}

/* Accepts until SIGINT / SIGTERM (then 0), collecting finished connections on the way. */
static int serve(main_task *m, asyncio_context *cx)
{
    for (;;) {
        if (asyncio_signal_poll(&m->sig, cx, NULL) == 0)
            return 0;
        (void)asyncio_join_set_poll_drain(m->conns, cx); /* a finished one wakes us */
        asyncio_tcp_stream s;
        int rc = asyncio_tcp_listener_poll_accept(m->listener, cx, &s, NULL);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc < 0) {
            fprintf(stderr, "http_server: accept: %s\n", asyncio_strerror(rc));
            continue; /* e.g. ECONNABORTED: the listener stays usable */
        }
        http_conn_start(&s, m->conns, m->stop);
    }
}

/*
 * The graceful-shutdown pattern (docs/writing-tasks.md): serve; on a
 * signal stop accepting, cancel the connections' token (idle ones close at
 * once, busy ones after their response), drain them within the grace
 * period, then abort the rest and wait for their drops.
 */
static int main_poll(void *state, asyncio_context *cx, void *output)
{
    main_task *m = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(m->co);
    if ((rc = main_bind(m)) < 0)
        return rc;
    ASYNCIO_AWAIT(m->co, rc, serve(m, cx));
    asyncio_tcp_listener_close(m->listener);
    m->listener = NULL;
    asyncio_cancel_token_cancel(m->stop);
    uint32_t grace = g_http_config.header_timeout_ms + g_http_config.linger_ms + 1000;
    asyncio_timeout_init_future(&m->drain, asyncio_join_set_drain_future(m->conns), grace);
    m->draining = true;
    ASYNCIO_AWAIT(m->co, rc, asyncio_timeout_poll(&m->drain, cx)); /* ETIMEDOUT: grace over */
    ASYNCIO_AWAIT(m->co, rc, asyncio_join_set_poll_shutdown(m->conns, cx));
    ASYNCIO_END(m->co);
    return 0;
}

static void main_drop(void *state)
{
    main_task *m = state;
    asyncio_tcp_listener_close(m->listener);
    if (m->draining)
        asyncio_timeout_drop(&m->drain);
    asyncio_signal_drop(&m->sig); /* the task's copy is the one listening */
}

static const asyncio_task_vtable g_main_vt = {main_poll, main_drop, NULL, sizeof(main_task), 0};

/* ------------------------------------------------------------------------ */

static int open_root(const char *root)
{
    if (root == NULL)
        return -1;
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        fprintf(stderr, "http_server: --root %s: %s\n", root, strerror(errno));
    return fd;
}

int main(int argc, char **argv)
{
    server_args args = {"127.0.0.1", 8080, -1, NULL, false, false, 0};
    if (parse_args(argc, argv, &args) < 0) {
        usage(argv[0]);
        return 2;
    }
    if (args.root != NULL && (g_http_config.root_fd = open_root(args.root)) < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN); /* sendfile(2) to a reset peer would raise it */

    asyncio_runtime_options opts = {0};
    if (args.threads != 0) {
        opts.flavor = ASYNCIO_RUNTIME_MULTI_THREAD;
        opts.workers = args.threads < 0 ? 0 : (uint32_t)args.threads;
    }
    opts.poll_time_histogram = args.poll_histogram;
    opts.track_tasks = args.dump_on_signal;
    opts.stall_threshold_ms = args.stall_ms;
    g_http_config.name_conns = args.dump_on_signal || args.stall_ms > 0;
    asyncio_signal usr1; /* --dump-on-signal: listening before the runtime exists */
    static const int k_usr1[] = {SIGUSR1};
    if (args.dump_on_signal && asyncio_signal_init(&usr1, k_usr1, 1) < 0) {
        fprintf(stderr, "http_server: SIGUSR1: cannot listen\n");
        return 1;
    }
    asyncio_runtime *rt;
    int rc = asyncio_runtime_new(&rt, &opts);
    if (rc < 0) {
        fprintf(stderr, "http_server: cannot create the %s runtime: %s%s\n",
                args.threads != 0 ? "multi-thread" : "current-thread", asyncio_strerror(rc),
                args.threads != 0 ? " (try --threads 0 for the current-thread runtime)" : "");
        return 1;
    }
    main_task m;
    memset(&m, 0, sizeof m);
    m.args = &args;
    if ((rc = asyncio_join_set_new(&m.conns)) < 0 || (rc = asyncio_cancel_token_new(&m.stop)) < 0) {
        fprintf(stderr, "http_server: %s\n", asyncio_strerror(rc));
        asyncio_join_set_free(m.conns);
        asyncio_runtime_free(rt);
        return 1;
    }
    static const int k_sigs[] = {SIGINT, SIGTERM};
    if ((rc = asyncio_signal_init(&m.sig, k_sigs, 2)) < 0) {
        fprintf(stderr, "http_server: signals: %s\n", asyncio_strerror(rc));
        asyncio_join_set_free(m.conns);
        asyncio_cancel_token_drop(m.stop);
        asyncio_runtime_free(rt);
        return 1;
    }
    if (args.dump_on_signal && (rc = example_dump_on_signal(rt, &usr1)) < 0)
        fprintf(stderr, "http_server: --dump-on-signal: %s\n", asyncio_strerror(rc));
    if (rc >= 0)
        rc = asyncio_runtime_block_on(rt, &g_main_vt, &m, NULL);
    asyncio_join_set_free(m.conns); /* empty after a graceful stop; aborts the rest otherwise */
    int frc = asyncio_runtime_free(rt);
    if (args.dump_on_signal)
        asyncio_signal_drop(&usr1);
    asyncio_cancel_token_drop(m.stop);
    http_scratch_release();
    if (g_http_config.root_fd >= 0)
        close(g_http_config.root_fd);
    if (rc < 0 || frc < 0) {
        if (rc < 0 && !g_main_reported)
            fprintf(stderr, "http_server: %s\n", asyncio_strerror(rc));
        return 1;
    }
    return 0;
}
