/*
 * poll_echo: a TCP echo server written directly on the poller API, in the
 * style of mio's classic example. Every socket is registered once,
 * edge-triggered; on each event we read / write until EAGAIN.
 *
 *   poll_echo [--host H] [--port P]
 *
 * Prints "listening on H:P" once ready and exits 0 on SIGINT / SIGTERM.
 *
 * Tokens are (generation << 32 | slot): a connection closed while handling
 * one event of a batch can have its slot reused by an accept later in the
 * same batch, and the generation makes the stale event miss.
 */
#include <arpa/inet.h>
#include <asyncio.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TOKEN_LISTENER ((uintptr_t)1 << 62)
#define TOKEN_SIGNAL (((uintptr_t)1 << 62) + 1)
#define MAX_CONNS 65536

typedef struct conn {
    int fd;          /* -1: free slot */
    uint32_t gen;    /* bumped each time the slot is reused */
    char *pending;   /* bytes read but not yet written back (backpressure) */
    size_t pend_off, pend_len;
} conn;

static conn g_conns[MAX_CONNS];
static int g_signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    char b = (char)sig;
    ssize_t r = write(g_signal_pipe[1], &b, 1);
    (void)r;
    errno = saved;
}

/*
 * O_NONBLOCK and FD_CLOEXEC with fcntl(2): portable (macOS has no SOCK_NONBLOCK,
 * accept4 or pipe2; on Linux the one-step flags would save these calls).
 */
static int set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static int listen_on(const char *host, int port, char *addr_out, size_t addr_len)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "poll_echo: bad IPv4 host '%s'\n", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    if (fd < 0 || set_nonblock_cloexec(fd) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1024) < 0) {
        perror("poll_echo: listen");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
    snprintf(addr_out, addr_len, "%s:%d", ip, ntohs(sa.sin_port));
    return fd;
}

static uintptr_t conn_token(size_t slot)
{
    return ((uintptr_t)g_conns[slot].gen << 32) | slot;
}

static conn *conn_from_token(uintptr_t token)
{
    size_t slot = token & 0xffffffffu;
    if (slot >= MAX_CONNS || g_conns[slot].fd < 0 || conn_token(slot) != token)
        return NULL; /* stale: the connection closed earlier in this batch */
    return &g_conns[slot];
}

static void conn_close(asyncio_poller *p, conn *c)
{
    asyncio_poller_deregister_fd(p, c->fd);
    close(c->fd);
    free(c->pending);
    c->fd = -1;
    c->pending = NULL;
    c->pend_off = c->pend_len = 0;
    c->gen++;
}

/* Writes what is pending. Returns 1 when all is written, 0 on EAGAIN, -1 on error. */
static int conn_flush(conn *c)
{
    while (c->pend_off < c->pend_len) {
        ssize_t w = send(c->fd, c->pending + c->pend_off, c->pend_len - c->pend_off, MSG_NOSIGNAL);
        if (w > 0)
            c->pend_off += (size_t)w;
        else if (w < 0 && errno == EINTR)
            continue;
        else
            return (w < 0 && errno == EAGAIN) ? 0 : -1;
    }
    c->pend_off = c->pend_len = 0;
    return 1;
}

/* Keeps bytes the socket would not take; we stop reading until they are written. */
static int conn_keep(conn *c, const char *buf, size_t len)
{
    char *p = realloc(c->pending, len);
    if (p == NULL)
        return -1;
    memcpy(p, buf, len);
    c->pending = p;
    c->pend_off = 0;
    c->pend_len = len;
    return 0;
}

/* Echoes until the socket would block. Returns false when the connection must close. */
static bool conn_echo(conn *c)
{
    char buf[16384];
    int f = conn_flush(c);
    if (f <= 0)
        return f == 0; /* still blocked on writing: leave input in the kernel */
    for (;;) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r == 0)
            return false;
        if (r < 0)
            return errno == EINTR ? true : errno == EAGAIN;
        size_t off = 0;
        while (off < (size_t)r) {
            ssize_t w = send(c->fd, buf + off, (size_t)r - off, MSG_NOSIGNAL);
            if (w > 0) {
                off += (size_t)w;
            } else if (w < 0 && errno == EAGAIN) {
                return conn_keep(c, buf + off, (size_t)r - off) == 0;
            } else if (!(w < 0 && errno == EINTR)) {
                return false;
            }
        }
    }
}

static void accept_all(asyncio_poller *p, int lfd)
{
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd >= 0 && set_nonblock_cloexec(fd) < 0) {
            perror("poll_echo: fcntl");
            close(fd);
            continue;
        }
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                perror("poll_echo: accept"); /* e.g. EMFILE: try again on the next event */
            return;
        }
        size_t slot = 0;
        while (slot < MAX_CONNS && g_conns[slot].fd >= 0)
            slot++;
        if (slot == MAX_CONNS) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        g_conns[slot].fd = fd;
        int rc = asyncio_poller_register_fd(p, fd, conn_token(slot),
                                            ASYNCIO_READABLE | ASYNCIO_WRITABLE, ASYNCIO_EDGE);
        if (rc < 0) {
            fprintf(stderr, "poll_echo: register: %s\n", asyncio_strerror(rc));
            conn_close(p, &g_conns[slot]);
        }
    }
}

static int parse_args(int argc, char **argv, const char **host, int *port)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            *host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            *port = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--host H] [--port P]\n", argv[0]);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 8080;
    if (parse_args(argc, argv, &host, &port) < 0)
        return 2;
    for (size_t i = 0; i < MAX_CONNS; i++)
        g_conns[i].fd = -1;

    asyncio_poller *p;
    int rc = asyncio_poller_new(&p);
    if (rc < 0) {
        fprintf(stderr, "poll_echo: poller: %s\n", asyncio_strerror(rc));
        return 1;
    }
    if (pipe(g_signal_pipe) < 0 || set_nonblock_cloexec(g_signal_pipe[0]) < 0 ||
        set_nonblock_cloexec(g_signal_pipe[1]) < 0)
        return 1;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    char addr[64];
    int lfd = listen_on(host, port, addr, sizeof addr);
    if (lfd < 0)
        return 1;
    if ((rc = asyncio_poller_register_fd(p, lfd, TOKEN_LISTENER, ASYNCIO_READABLE, ASYNCIO_EDGE)) <
            0 ||
        (rc = asyncio_poller_register_fd(p, g_signal_pipe[0], TOKEN_SIGNAL, ASYNCIO_READABLE,
                                         ASYNCIO_EDGE)) < 0) {
        fprintf(stderr, "poll_echo: register: %s\n", asyncio_strerror(rc));
        return 1;
    }
    printf("listening on %s (backend %s)\n", addr, asyncio_poller_backend(p));
    fflush(stdout);

    asyncio_event events[256];
    bool running = true;
    while (running) {
        size_t n;
        if ((rc = asyncio_poller_wait(p, events, 256, -1, &n)) < 0) {
            fprintf(stderr, "poll_echo: wait: %s\n", asyncio_strerror(rc));
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            if (events[i].token == TOKEN_LISTENER) {
                accept_all(p, lfd);
            } else if (events[i].token == TOKEN_SIGNAL) {
                running = false;
            } else {
                conn *c = conn_from_token(events[i].token);
                if (c != NULL && !conn_echo(c))
                    conn_close(p, c);
            }
        }
    }

    /* Graceful shutdown: stop accepting, close every connection, free the poller. */
    for (size_t i = 0; i < MAX_CONNS; i++) {
        if (g_conns[i].fd >= 0)
            conn_close(p, &g_conns[i]);
    }
    asyncio_poller_deregister_fd(p, lfd);
    close(lfd);
    asyncio_poller_free(p);
    printf("shut down\n");
    return 0;
}
