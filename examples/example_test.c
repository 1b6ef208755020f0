/*
 * example_test: end-to-end checks of the network examples, run by ctest.
 *
 *   example_test BINDIR SCENARIO
 *
 * Each scenario starts example binaries from BINDIR (each in its own
 * process group, stdout on a pipe), waits for their "listening on <addr>"
 * line, exchanges data over loopback with plain blocking sockets, sends
 * SIGTERM / SIGINT and requires exit status 0:
 *
 *   tcp_echo          echo round trips (1 B .. 256 KiB), two clients at once,
 *                     half-close -> EOF; an idle client does not block shutdown
 *   tcp_echo_client   a 1 s load run prints the documented lines, errors: 0;
 *                     --idle 20 prints its line and exits 0 on SIGINT
 *   udp_echo          datagrams of 5 B and 60,000 B come back intact
 *   unix_echo         a stale socket file is replaced; echo + half-close; a
 *                     second server on the live path exits 1; the file is
 *                     removed on exit
 *   proxy             proxy in front of tcp_echo_server: 256 KiB round trip,
 *                     our FIN comes back as EOF (half-close propagated)
 *   bad_flags         unknown / malformed flags give exit status 2
 *
 * tcp_echo_server runs with --threads $EXAMPLE_TEST_THREADS (default 0,
 * the current-thread runtime), so a multi-thread variant is one more ctest
 * entry with that environment variable.
 *
 * Bounded: every socket read has a 10 s timeout and an alarm(60) watchdog
 * kills every started process group; children are killed on any failure,
 * so nothing is left running. No timing is asserted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 8
#define IO_TIMEOUT_S 10
#define WATCHDOG_S   60

typedef struct child {
    pid_t pid;      /* 0: reaped */
    int out;        /* read end of its stdout */
    char buf[4096]; /* stdout so far */
    size_t len;
} child;

static const char *g_bindir;
static child g_children[MAX_CHILDREN];
static int g_nchildren;

static void kill_all(void)
{
    for (int i = 0; i < g_nchildren; i++) {
        if (g_children[i].pid > 0) {
            kill(-g_children[i].pid, SIGKILL);
            waitpid(g_children[i].pid, NULL, 0);
            g_children[i].pid = 0;
        }
    }
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "example_test: watchdog expired\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    for (int i = 0; i < g_nchildren; i++)
        if (g_children[i].pid > 0)
            kill(-g_children[i].pid, SIGKILL);
    _exit(1);
}

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "example_test: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    kill_all();
    exit(1);
}

#define CHECK(cond, ...)       \
    do {                       \
        if (!(cond))           \
            fail(__VA_ARGS__); \
    } while (0)

/* ---- processes --------------------------------------------------------------- */

/* Starts BINDIR/argv[0] with its stdout on a pipe, in its own process group. */
static child *start(const char *const *argv)
{
    CHECK(g_nchildren < MAX_CHILDREN, "too many children");
    child *c = &g_children[g_nchildren];
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", g_bindir, argv[0]);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL); /* the examples must not need SIGPIPE ignored */
        dup2(p[1], 1);
        execv(path, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here: no race with a kill before the child ran */
    close(p[1]);
    *c = (child){.pid = pid, .out = p[0]};
    g_nchildren++;
    return c;
}

/* Reads the child's stdout until `needle` appears; returns the text after it up to '\n'. */
static const char *wait_line(child *c, const char *needle)
{
    static char found[256];
    for (;;) {
        c->buf[c->len] = '\0';
        const char *at = strstr(c->buf, needle);
        const char *nl = at != NULL ? strchr(at, '\n') : NULL;
        if (nl != NULL) {
            size_t n = (size_t)(nl - at) - strlen(needle);
            snprintf(found, sizeof found, "%.*s", (int)n, at + strlen(needle));
            return found;
        }
        struct pollfd pfd = {.fd = c->out, .events = POLLIN};
        CHECK(poll(&pfd, 1, IO_TIMEOUT_S * 1000) == 1, "no '%s' line within %d s (got: %s)", needle,
              IO_TIMEOUT_S, c->buf);
        CHECK(c->len + 1 < sizeof c->buf, "too much output");
        ssize_t n = read(c->out, c->buf + c->len, sizeof c->buf - 1 - c->len);
        CHECK(n > 0, "stdout closed before '%s' (got: %s)", needle, c->buf);
        c->len += (size_t)n;
    }
}

/* Waits (bounded) for the child to exit; returns its exit status, or 128 + signal. */
static int reap(child *c)
{
    for (int i = 0; i < IO_TIMEOUT_S * 100; i++) {
        int st;
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == c->pid) {
            c->pid = 0;
            close(c->out);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail("process did not exit within %d s", IO_TIMEOUT_S);
    return -1;
}

static void stop_expect_0(child *c, int sig, const char *what)
{
    CHECK(kill(c->pid, sig) == 0, "kill: %s", strerror(errno));
    int st = reap(c);
    CHECK(st == 0, "%s: exit status %d after signal %d, want 0", what, st, sig);
}

/* Runs BINDIR/argv[0] to completion (stdout discarded); returns its exit status. */
static int run_status(const char *const *argv)
{
    child *c = start(argv);
    int st = reap(c);
    return st;
}

/* ---- sockets ------------------------------------------------------------------- */

static void set_timeouts(int fd)
{
    struct timeval tv = {IO_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* "127.0.0.1:PORT" -> a sockaddr_in. */
static struct sockaddr_in ipv4(const char *text)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char ip[64];
    unsigned port;
    CHECK(sscanf(text, "%63[^:]:%u", ip, &port) == 2 && inet_pton(AF_INET, ip, &sa.sin_addr) == 1,
          "not an IPv4 address: '%s'", text);
    sa.sin_port = htons((uint16_t)port);
    return sa;
}

static int connect_to(int family, int type, const void *sa, socklen_t len)
{
    int fd = socket(family, type | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0, "socket: %s", strerror(errno));
    set_timeouts(fd);
    CHECK(connect(fd, sa, len) == 0, "connect: %s", strerror(errno));
    return fd;
}

static int tcp_connect(const char *addr)
{
    struct sockaddr_in sa = ipv4(addr);
    return connect_to(AF_INET, SOCK_STREAM, &sa, sizeof sa);
}

static void send_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        CHECK(w > 0, "send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

static void expect_eof(int fd)
{
    char b;
    ssize_t r = recv(fd, &b, 1, 0);
    CHECK(r == 0, "expected EOF, got %zd (%s)", r, r < 0 ? strerror(errno) : "data");
}

/* Sends n patterned bytes in chunks while reading the echo (no deadlock on big n). */
static void echo_round_trip(int fd, size_t n, unsigned seed)
{
    unsigned char *out = malloc(n), *in = malloc(n);
    CHECK(out != NULL && in != NULL, "malloc");
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)(i * 7 + seed);
    size_t sent = 0, got = 0;
    while (got < n) {
        if (sent < n) {
            size_t k = n - sent < 16384 ? n - sent : 16384;
            send_all(fd, out + sent, k);
            sent += k;
        }
        size_t want = sent - got;
        ssize_t r = recv(fd, in + got, want, 0);
        CHECK(r > 0, "echo recv: %s", r == 0 ? "early EOF" : strerror(errno));
        got += (size_t)r;
    }
    CHECK(memcmp(in, out, n) == 0, "echo of %zu bytes differs", n);
    free(out);
    free(in);
}

/* ---- scenarios -------------------------------------------------------------------- */

/* tcp_echo_server --threads $EXAMPLE_TEST_THREADS (default 0: current-thread runtime). */
static child *start_tcp_echo_server(const char **addr_out)
{
    const char *threads = getenv("EXAMPLE_TEST_THREADS");
    const char *const argv[] = {"tcp_echo_server",
                                "--threads",
                                threads != NULL ? threads : "0",
                                "--host",
                                "127.0.0.1",
                                "--port",
                                "0",
                                NULL};
    child *c = start(argv);
    static char addr[256];
    snprintf(addr, sizeof addr, "%s", wait_line(c, "listening on "));
    *addr_out = addr;
    return c;
}

static void scenario_tcp_echo(void)
{
    const char *addr;
    child *srv = start_tcp_echo_server(&addr);
    int a = tcp_connect(addr), b = tcp_connect(addr), idle = tcp_connect(addr);
    static const size_t sizes[] = {1, 64, 4096, 65536, 262144};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        echo_round_trip(a, sizes[i], (unsigned)i);
        echo_round_trip(b, sizes[i], (unsigned)i + 100);
    }
    CHECK(shutdown(a, SHUT_WR) == 0, "shutdown");
    expect_eof(a); /* the server saw our EOF and closed */
    close(a);
    close(b);
    stop_expect_0(srv, SIGTERM, "tcp_echo_server"); /* `idle` is still connected */
    close(idle);
}

static void scenario_tcp_echo_client(void)
{
    const char *addr;
    child *srv = start_tcp_echo_server(&addr);
    char port[16];
    snprintf(port, sizeof port, "%s", strrchr(addr, ':') + 1);
    const char *const load[] = {
        "tcp_echo_client", "--host", "127.0.0.1", "--port", port, "--conns", "4",
        "--size",          "128",    "--seconds", "1",      NULL};
    child *cl = start(load);
    unsigned long rt = strtoul(wait_line(cl, "round_trips: "), NULL, 10);
    CHECK(rt > 0, "no round trips");
    wait_line(cl, "rtt/s: ");
    wait_line(cl, "p50_us: ");
    wait_line(cl, "p99_us: ");
    const char *errors = wait_line(cl, "errors: ");
    CHECK(strcmp(errors, "0") == 0, "errors: %s", errors);
    CHECK(reap(cl) == 0, "load run exit status");

    const char *const idle[] = {"tcp_echo_client", "--port", port, "--idle", "20", NULL};
    cl = start(idle);
    CHECK(strcmp(wait_line(cl, "idle: "), "20 connections open") == 0, "idle line");
    stop_expect_0(cl, SIGINT, "tcp_echo_client --idle");
    stop_expect_0(srv, SIGTERM, "tcp_echo_server");
}

static void scenario_udp_echo(void)
{
    static const char *const argv[] = {"udp_echo_server", "--port", "0", NULL};
    child *srv = start(argv);
    struct sockaddr_in sa = ipv4(wait_line(srv, "listening on "));
    int fd = connect_to(AF_INET, SOCK_DGRAM, &sa, sizeof sa);
    static unsigned char out[60000], in[65536];
    static const size_t sizes[] = {5, sizeof out};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizes[k]; i++)
            out[i] = (unsigned char)(i * 3 + k);
        CHECK(send(fd, out, sizes[k], 0) == (ssize_t)sizes[k], "udp send: %s", strerror(errno));
        ssize_t r = recv(fd, in, sizeof in, 0);
        CHECK(r == (ssize_t)sizes[k], "udp recv: %zd (%s)", r, r < 0 ? strerror(errno) : "size");
        CHECK(memcmp(in, out, sizes[k]) == 0, "datagram differs");
    }
    close(fd);
    stop_expect_0(srv, SIGTERM, "udp_echo_server");
}

static void scenario_unix_echo(void)
{
    char dir[] = "/tmp/example_test.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/echo.sock", dir);
    /* A stale socket file: bound, then closed without unlink (a crashed server). */
    int stale = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(bind(stale, (struct sockaddr *)&sa, sizeof sa) == 0, "bind stale: %s", strerror(errno));
    close(stale);

    const char *const argv[] = {"unix_echo_server", "--path", sa.sun_path, NULL};
    child *srv = start(argv);
    CHECK(strcmp(wait_line(srv, "listening on "), sa.sun_path) == 0, "listening line");
    int fd = connect_to(AF_UNIX, SOCK_STREAM, &sa, sizeof sa);
    echo_round_trip(fd, 5, 1);
    echo_round_trip(fd, 200000, 2);
    CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown");
    expect_eof(fd);
    close(fd);

    CHECK(run_status(argv) == 1, "a second server on a live path must exit 1");
    stop_expect_0(srv, SIGTERM, "unix_echo_server");
    struct stat st;
    CHECK(lstat(sa.sun_path, &st) < 0 && errno == ENOENT, "socket file left behind");
    rmdir(dir);
}

static void scenario_proxy(void)
{
    const char *echo_addr;
    child *srv = start_tcp_echo_server(&echo_addr);
    const char *const argv[] = {"proxy", "--listen", "127.0.0.1:0", "--to", echo_addr, NULL};
    child *px = start(argv);
    const char *addr = wait_line(px, "listening on ");
    int fd = tcp_connect(addr);
    echo_round_trip(fd, 1, 3);
    echo_round_trip(fd, 262144, 4);
    CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown");
    expect_eof(fd); /* our FIN went through the proxy, the server's came back */
    close(fd);
    int idle = tcp_connect(addr); /* still open at shutdown */
    stop_expect_0(px, SIGTERM, "proxy");
    close(idle);
    stop_expect_0(srv, SIGTERM, "tcp_echo_server");
}

static void expect_usage_error(const char *const *argv)
{
    int st = run_status(argv);
    CHECK(st == 2, "%s %s: exit status %d, want 2", argv[0], argv[1] ? argv[1] : "", st);
}

static void scenario_bad_flags(void)
{
    static const char *const cases[][6] = {
        {"tcp_echo_server", "--bogus", NULL},
        {"tcp_echo_server", "--port", "70000", NULL},
        {"tcp_echo_server", "--host", "not-an-ip", NULL},
        {"tcp_echo_client", "--conns", "abc", NULL},
        {"tcp_echo_client", "--port", NULL},
        {"udp_echo_server", "--threads", "1", NULL},
        {"unix_echo_server", NULL},
        {"proxy", "--listen", "nonsense", "--to", "127.0.0.1:1", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_usage_error(cases[i]);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: example_test BINDIR "
                        "tcp_echo|tcp_echo_client|udp_echo|unix_echo|proxy|bad_flags\n");
        return 2;
    }
    g_bindir = argv[1];
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    alarm(WATCHDOG_S);
    static const struct {
        const char *name;
        void (*run)(void);
    } scenarios[] = {
        {"tcp_echo", scenario_tcp_echo}, {"tcp_echo_client", scenario_tcp_echo_client},
        {"udp_echo", scenario_udp_echo}, {"unix_echo", scenario_unix_echo},
        {"proxy", scenario_proxy},       {"bad_flags", scenario_bad_flags},
    };
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        if (strcmp(argv[2], scenarios[i].name) == 0) {
            scenarios[i].run();
            kill_all();
            printf("example_test %s: ok\n", argv[2]);
            return 0;
        }
    }
    fprintf(stderr, "example_test: unknown scenario '%s'\n", argv[2]);
    return 2;
}
