/*
 * idle_conns: opens many TCP connections to a server and holds them idle, so
 * bench/run_bench.sh can read the server's RSS per idle connection.
 *
 *   idle_conns --host IP --port P --conns N [--mode echo|http] [--batch B]
 *
 * Plain POSIX (no libuv, no libasyncio), driven by signals so a script can
 * take measurements between the phases:
 *   1. connect N sockets (non-blocking connects, B at a time, each batch
 *      waited for with poll), then print "connected ok=N failed=M";
 *   2. wait for SIGUSR1 (go on) or SIGTERM / SIGINT (skip to 4);
 *   3. one exchange on every connection, B at a time: --mode echo sends one
 *      byte and reads it back; --mode http sends
 *      "GET /plaintext HTTP/1.1" (keep-alive) and reads the whole response
 *      (head + Content-Length body). Prints "exchanged ok=N failed=M";
 *   4. wait for SIGTERM / SIGINT, count the connections the server closed
 *      meanwhile (readable with EOF or an error), print
 *      "closed_by_peer=K", close everything, exit 0.
 * So phase 1 measures connections that never sent anything and phase 3
 * connections that were used once and are idle again (a server that keeps
 * a buffer after the first read shows up only there).
 *
 * The soft RLIMIT_NOFILE is raised to the hard limit; N + 16 descriptors
 * are needed. Every wait is bounded (10 s per batch).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasestr */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS  10000
#define RESP_MAX 1024

typedef struct conn {
    int fd;        /* -1 once failed or closed */
    unsigned got;  /* response bytes so far */
    unsigned need; /* bytes that complete the response (0: not known yet) */
    char *resp;    /* http: the response so far */
} conn;

static const char USAGE[] =
    "usage: idle_conns --host IP --port P --conns N [--mode echo|http] [--batch B]\n"
    "  phase 1: connect N, print 'connected ok=N failed=M', wait for SIGUSR1\n"
    "  phase 2: one echo byte / one HTTP GET per connection, print 'exchanged ok=N failed=M'\n"
    "  SIGTERM / SIGINT: print 'closed_by_peer=K', close everything, exit 0\n";

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void drop(conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Polls the live fds of c[0..n) for `events` until done(c) for all or the deadline. */
static void wait_batch(conn *c, size_t n, short events, bool (*step)(conn *, short))
{
    struct pollfd *pf = calloc(n, sizeof *pf);
    size_t *idx = calloc(n, sizeof *idx);
    if (pf == NULL || idx == NULL) {
        perror("idle_conns: calloc");
        exit(1);
    }
    long deadline = now_ms() + WAIT_MS;
    for (;;) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (c[i].fd >= 0 && c[i].need != UINT32_MAX) {
                pf[m] = (struct pollfd){.fd = c[i].fd, .events = events};
                idx[m++] = i;
            }
        }
        long left = deadline - now_ms();
        if (m == 0 || left <= 0)
            break;
        int r = poll(pf, m, (int)left);
        if (r < 0 && errno != EINTR)
            break;
        for (size_t k = 0; r > 0 && k < m; k++)
            if (pf[k].revents != 0 && step(&c[idx[k]], pf[k].revents))
                c[idx[k]].need = UINT32_MAX; /* done */
    }
    for (size_t i = 0; i < n; i++) { /* unfinished by the deadline: failed */
        if (c[i].need != UINT32_MAX)
            drop(&c[i]);
        c[i].need = 0;
    }
    free(pf);
    free(idx);
}

/* ---- phase 1: connect ------------------------------------------------------------ */

static bool connect_step(conn *c, short revents)
{
    int err = 0;
    socklen_t len = sizeof err;
    (void)revents;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
        drop(c);
    return true;
}

static void connect_all(conn *c, size_t n, size_t batch, const struct sockaddr *sa, socklen_t salen)
{
    for (size_t b = 0; b < n; b += batch) {
        size_t m = n - b < batch ? n - b : batch;
        for (size_t i = b; i < b + m; i++) {
            c[i].fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            c[i].need = 0;
            if (c[i].fd < 0) {
                perror("idle_conns: socket");
                continue;
            }
            int one = 1;
            (void)setsockopt(c[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (connect(c[i].fd, sa, salen) == 0)
                c[i].need = UINT32_MAX; /* connected at once */
            else if (errno != EINPROGRESS)
                drop(&c[i]);
        }
        wait_batch(c + b, m, POLLOUT, connect_step);
    }
}

/* ---- phase 2: one exchange ----------------------------------------------------------- */

static bool echo_step(conn *c, short revents)
{
    char b[16];
    ssize_t r = (revents & (POLLIN | POLLHUP | POLLERR)) ? recv(c->fd, b, sizeof b, 0) : -1;
    if (r <= 0) {
        if (r < 0 && errno == EAGAIN)
            return false;
        drop(c);
        return true;
    }
    c->got += (unsigned)r;
    return c->got >= 1;
}

/* Reads the response head and its Content-Length body. */
static bool http_step(conn *c, short revents)
{
    (void)revents;
    ssize_t r = recv(c->fd, c->resp + c->got, RESP_MAX - 1 - c->got, 0);
    if (r <= 0) {
        if (r < 0 && errno == EAGAIN)
            return false;
        drop(c);
        return true;
    }
    c->got += (unsigned)r;
    c->resp[c->got] = '\0';
    if (c->need == 0) {
        char *end = strstr(c->resp, "\r\n\r\n");
        if (end == NULL)
            goto check_full;
        const char *cl = strcasestr(c->resp, "\r\nContent-Length:");
        unsigned body = cl != NULL && cl < end ? (unsigned)strtoul(cl + 17, NULL, 10) : 0;
        c->need = (unsigned)(end + 4 - c->resp) + body;
    }
    if (c->need > 0 && c->got >= c->need)
        return true;
check_full:
    if (c->got >= RESP_MAX - 1) { /* far larger than any expected response */
        drop(c);
        return true;
    }
    return false;
}

static void exchange_all(conn *c, size_t n, size_t batch, bool http, const char *host)
{
    char req[256];
    int reqlen =
        http ? snprintf(req, sizeof req, "GET /plaintext HTTP/1.1\r\nHost: %s\r\n\r\n", host) : 1;
    if (!http)
        req[0] = 'x';
    for (size_t b = 0; b < n; b += batch) {
        size_t m = n - b < batch ? n - b : batch;
        for (size_t i = b; i < b + m; i++) {
            c[i].got = 0;
            c[i].need = 0;
            if (c[i].fd < 0)
                continue;
            if (http && c[i].resp == NULL && (c[i].resp = malloc(RESP_MAX)) == NULL) {
                drop(&c[i]);
                continue;
            }
            if (send(c[i].fd, req, (size_t)reqlen, MSG_NOSIGNAL) != reqlen)
                drop(&c[i]);
        }
        wait_batch(c + b, m, POLLIN, http ? http_step : echo_step);
        for (size_t i = b; i < b + m; i++) {
            free(c[i].resp);
            c[i].resp = NULL;
        }
    }
}

/* ---- phase 3: who is still there -------------------------------------------------------- */

static size_t count_closed(conn *c, size_t n)
{
    size_t closed = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].fd < 0)
            continue;
        struct pollfd pf = {.fd = c[i].fd, .events = POLLIN};
        char b;
        if (poll(&pf, 1, 0) == 1 && recv(c[i].fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
            closed++;
    }
    return closed;
}

static size_t live(const conn *c, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += c[i].fd >= 0;
    return k;
}

static bool parse_addr(const char *host, unsigned long port, struct sockaddr_storage *ss,
                       socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((unsigned short)port);
        *len = sizeof *a4;
        return true;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((unsigned short)port);
        *len = sizeof *a6;
        return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *mode = "echo";
    unsigned long port = 0, nconns = 10000, batch = 500;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (i + 1 >= argc)
            goto bad;
        const char *f = argv[i], *v = argv[++i];
        if (strcmp(f, "--host") == 0)
            host = v;
        else if (strcmp(f, "--port") == 0)
            port = strtoul(v, NULL, 10);
        else if (strcmp(f, "--conns") == 0)
            nconns = strtoul(v, NULL, 10);
        else if (strcmp(f, "--batch") == 0)
            batch = strtoul(v, NULL, 10);
        else if (strcmp(f, "--mode") == 0)
            mode = v;
        else
            goto bad;
    }
    bool http = strcmp(mode, "http") == 0;
    struct sockaddr_storage ss;
    socklen_t salen;
    if (port == 0 || port > 65535 || nconns == 0 || batch == 0 ||
        (!http && strcmp(mode, "echo") != 0) || !parse_addr(host, port, &ss, &salen))
        goto bad;

    /* The signals are taken with sigwait: block them before anything else. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise_nofile();

    conn *c = calloc(nconns, sizeof *c);
    if (c == NULL) {
        perror("idle_conns: calloc");
        return 1;
    }
    connect_all(c, nconns, batch, (struct sockaddr *)&ss, salen);
    size_t ok = live(c, nconns);
    printf("connected ok=%zu failed=%zu\n", ok, nconns - ok);
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);
    if (sig == SIGUSR1) {
        exchange_all(c, nconns, batch, http, host);
        size_t ok2 = live(c, nconns);
        printf("exchanged ok=%zu failed=%zu\n", ok2, ok - ok2);
        fflush(stdout);
        do
            sigwait(&set, &sig);
        while (sig == SIGUSR1);
    }
    printf("closed_by_peer=%zu\n", count_closed(c, nconns));
    fflush(stdout);
    for (size_t i = 0; i < nconns; i++)
        drop(&c[i]);
    free(c);
    return 0;
bad:
    fputs(USAGE, stderr);
    return 2;
}
