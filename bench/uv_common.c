/*
 * uv_common.c: flags, listeners, loops-per-thread and shutdown for the libuv
 * benchmark peers (see uv_common.h for the contract).
 *
 * Startup, in order:
 *   1. parse flags;
 *   2. create and bind one listening socket per loop (SO_REUSEPORT when
 *      there are several; the first bind picks the port when --port 0);
 *   3. init each loop, hand it its socket (uv_tcp_open + uv_listen), call
 *      the server's loop_init;
 *   4. print "listening on" and start loops 1..N-1 on their threads; loop 0
 *      runs on the main thread and owns the SIGINT / SIGTERM handles.
 * Shutdown: the signal callback uv_async_sends every other loop's stop
 * handle and stops loop 0; each thread's uv_run returns; main joins them and
 * returns 0. Connections still open are closed by the process exit.
 */
#include "uv_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static uvb_loop g_loops[UVB_MAX_THREADS];
static unsigned g_nloops;
static uv_signal_t g_sigint, g_sigterm;

/* ---- flags ------------------------------------------------------------------ */

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max || s[0] == '-')
        return false;
    *out = v;
    return true;
}

/* Returns -1 to go on, or the exit code main should return. */
static int parse_flags(const uvb_server *srv, int argc, char **argv, uvb_options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            fputs(srv->usage, stdout);
            return 0;
        }
        if (i + 1 >= argc)
            goto bad;
        const char *v = argv[++i];
        unsigned long n;
        if (strcmp(f, "--host") == 0)
            o->host = v;
        else if (strcmp(f, "--root") == 0)
            o->root = v;
        else if (strcmp(f, "--port") == 0 && parse_uint(v, 65535, &n))
            o->port = (unsigned)n;
        else if (strcmp(f, "--threads") == 0 && parse_uint(v, UVB_MAX_THREADS, &n))
            o->threads = (unsigned)n;
        else if (strcmp(f, "--buf-size") == 0 && parse_uint(v, 1u << 24, &n) && n > 0)
            o->buf_size = n;
        else
            goto bad;
    }
    return -1;
bad:
    fprintf(stderr, "%s: bad or incomplete flag near '%s'\n%s", srv->prog, argv[argc - 1],
            srv->usage);
    return 2;
}

/* ---- listeners ----------------------------------------------------------------- */

/* Binds one listening socket; *port is updated to the bound port. Returns the fd or -errno. */
static int bind_listener(const char *host, unsigned *port, bool reuseport)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)*port);
        len = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)*port);
        len = sizeof *a6;
    } else {
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, (struct sockaddr *)&ss, len) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    *port = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
    return fd;
}

/* ---- loops ------------------------------------------------------------------- */

static void on_stop(uv_async_t *h)
{
    uv_stop(h->loop);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    for (unsigned i = 1; i < g_nloops; i++)
        uv_async_send(&g_loops[i].stop);
    uv_stop(h->loop);
}

static int loop_setup(const uvb_server *srv, uvb_loop *lp, int fd)
{
    int rc = uv_loop_init(&lp->loop);
    if (rc != 0)
        return rc;
    lp->loop.data = lp;
    if ((rc = uv_async_init(&lp->loop, &lp->stop, on_stop)) != 0 ||
        (rc = uv_tcp_init(&lp->loop, &lp->listener)) != 0 ||
        (rc = uv_tcp_open(&lp->listener, fd)) != 0)
        return rc;
    lp->listener.data = lp;
    if ((rc = uv_listen((uv_stream_t *)&lp->listener, UVB_BACKLOG, srv->on_connection)) != 0)
        return rc;
    return srv->loop_init != NULL ? srv->loop_init(lp) : 0;
}

static void loop_thread(void *arg)
{
    uvb_loop *lp = arg;
    uv_run(&lp->loop, UV_RUN_DEFAULT);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int uvb_main(const uvb_server *srv, int argc, char **argv)
{
    static uvb_options o = {"127.0.0.1", 8080, 1, 16384, NULL};
    int code = parse_flags(srv, argc, argv, &o);
    if (code >= 0)
        return code;
    g_nloops = o.threads > 1 ? o.threads : 1;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();

    unsigned port = o.port;
    for (unsigned i = 0; i < g_nloops; i++) {
        int fd = bind_listener(o.host, &port, g_nloops > 1);
        int rc = fd < 0 ? fd : 0;
        g_loops[i].index = (int)i;
        g_loops[i].opt = &o;
        if (rc == 0)
            rc = loop_setup(srv, &g_loops[i], fd); /* fd < 0 mapped to uv error codes below */
        if (rc != 0) {
            fprintf(stderr, "%s: listen on %s:%u: %s\n", srv->prog, o.host, port,
                    fd < 0 ? strerror(-fd) : uv_strerror(rc));
            return 1;
        }
    }
    if (uv_signal_init(&g_loops[0].loop, &g_sigint) != 0 ||
        uv_signal_init(&g_loops[0].loop, &g_sigterm) != 0 ||
        uv_signal_start(&g_sigint, on_signal, SIGINT) != 0 ||
        uv_signal_start(&g_sigterm, on_signal, SIGTERM) != 0) {
        fprintf(stderr, "%s: cannot install signal handlers\n", srv->prog);
        return 1;
    }
    bool v6 = strchr(o.host, ':') != NULL;
    printf("listening on %s%s%s:%u\n", v6 ? "[" : "", o.host, v6 ? "]" : "", port);
    fflush(stdout);

    for (unsigned i = 1; i < g_nloops; i++) {
        if (uv_thread_create(&g_loops[i].thread, loop_thread, &g_loops[i]) != 0) {
            fprintf(stderr, "%s: cannot start thread %u\n", srv->prog, i);
            return 1;
        }
    }
    uv_run(&g_loops[0].loop, UV_RUN_DEFAULT);
    for (unsigned i = 1; i < g_nloops; i++)
        uv_thread_join(&g_loops[i].thread);
    return 0;
}
