/*
 * example_test: end-to-end checks of the network examples, run by ctest.
 *
 *   example_test BINDIR SCENARIO
 *
 * Each scenario starts example binaries from BINDIR (each in its own
 * process group, stdout on a pipe, stderr too where the test reads it),
 * waits for their "listening on <addr>" line, exchanges data over loopback
 * with plain blocking sockets, sends SIGTERM / SIGINT and requires exit
 * status 0:
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
 *   tcp_echo_stats    --stats: after echo traffic and SIGTERM, stderr holds one
 *                     "stats <key>: <value>" line per metric (polls, tasks_spawned,
 *                     io_events > 0; workers as asked), stdout only the listening
 *                     line; --stats-interval 1 prints them while running
 *   backpressure_server  --permits 1 --work-ms 50: every line of 3 connections
 *                     and of one accepted while they wait comes back; the first
 *                     three replies in the order the lines were sent; 5 lines took
 *                     at least 5 * 50 ms (never more than one in flight)
 *   watch_dir         "watching DIR", then create / modify / rename / mkdir /
 *                     unlink in a temporary directory print their lines in order
 *   bind_errors       tcp_echo_server and http_server on a port in use: exit 1
 *                     and one stderr line naming the address
 *   chat              chat_server: four clients in two rooms; two send 40
 *                     messages each, interleaved: every member of the room
 *                     gets all of them, each sender's in order, and nothing
 *                     from the other room; /quit, /join elsewhere; SIGTERM:
 *                     every client reads "* server shutting down, bye" and EOF
 *   chat_idle         chat_server --idle-timeout-ms 300: a silent client is
 *                     told and disconnected; SIGINT with a client connected
 *   chat_abort        a client stops reading while its room is flooded: at
 *                     SIGTERM it cannot finish within --grace-ms 300, is
 *                     aborted (its connection closes, no goodbye), exit 0
 *
 * tcp_echo_server and chat_server run with --threads $EXAMPLE_TEST_THREADS (default 0,
 * the current-thread runtime), so a multi-thread variant is one more ctest
 * entry with that environment variable (the *.mt entries).
 *
 * Bounded: every read has a 10 s timeout and an alarm(60) watchdog kills
 * every started process group; children are killed (and the temporary
 * directory removed) on any failure, so nothing is left running. No upper
 * bound on time is asserted; backpressure_server's lower bound only
 * detects two lines worked on at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

/* One output pipe of a child. */
typedef struct stream {
    int fd;         /* read end; -1: not captured, or closed after the exit */
    char buf[4096]; /* what was read so far, NUL-terminated (the excess is dropped) */
    size_t len;
    size_t pos; /* next_line: where the next unread line starts */
} stream;

typedef struct child {
    pid_t pid;       /* 0: reaped */
    stream out, err; /* stdout; stderr only if started with start_capture() */
} child;

static const char *g_bindir;
static child g_children[MAX_CHILDREN];
static int g_nchildren;
static char g_tmpdir[64]; /* a scenario's temporary directory, removed on exit; "" if none */

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

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Removes g_tmpdir and everything in it (a scenario made it; it holds no mount points). */
static void remove_tmpdir(void)
{
    if (g_tmpdir[0] != '\0')
        nftw(g_tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    g_tmpdir[0] = '\0';
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
    remove_tmpdir();
    exit(1);
}

#define CHECK(cond, ...)       \
    do {                       \
        if (!(cond))           \
            fail(__VA_ARGS__); \
    } while (0)

/* ---- processes --------------------------------------------------------------- */

/*
 * Starts BINDIR/argv[0] in its own process group, its stdout on a pipe and,
 * with capture_err, its stderr too (else it shares ours).
 */
static child *start_child(const char *const *argv, bool capture_err)
{
    CHECK(g_nchildren < MAX_CHILDREN, "too many children");
    child *c = &g_children[g_nchildren];
    int p[2], e[2] = {-1, -1};
    CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    CHECK(!capture_err || pipe2(e, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", g_bindir, argv[0]);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL); /* the examples must not need SIGPIPE ignored */
        dup2(p[1], 1);
        if (e[1] >= 0)
            dup2(e[1], 2);
        execv(path, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here: no race with a kill before the child ran */
    close(p[1]);
    if (e[1] >= 0)
        close(e[1]);
    memset(c, 0, sizeof *c);
    c->pid = pid;
    c->out.fd = p[0];
    c->err.fd = e[0];
    g_nchildren++;
    return c;
}

static child *start(const char *const *argv)
{
    return start_child(argv, false);
}

static child *start_capture(const char *const *argv)
{
    return start_child(argv, true);
}

/*
 * Waits up to timeout_ms for s to be readable and reads once. Returns 1
 * (data; beyond the buffer it is dropped), 0 (EOF) or -1 (timeout).
 */
static int stream_read(stream *s, int timeout_ms)
{
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) != 1)
        return -1;
    char scratch[1024];
    size_t room = sizeof s->buf - 1 - s->len;
    char *to = room > 0 ? s->buf + s->len : scratch;
    ssize_t n = read(s->fd, to, room > 0 ? room : sizeof scratch);
    if (n <= 0)
        return 0; /* EOF (or an error: the same for a test) */
    if (room > 0)
        s->len += (size_t)n;
    s->buf[s->len] = '\0';
    return 1;
}

/* Reads s until `needle` appears; returns the text after it up to '\n'. */
static const char *wait_in(stream *s, const char *needle, const char *what)
{
    static char found[256];
    for (;;) {
        s->buf[s->len] = '\0';
        const char *at = strstr(s->buf, needle);
        const char *nl = at != NULL ? strchr(at, '\n') : NULL;
        if (nl != NULL) {
            size_t n = (size_t)(nl - at) - strlen(needle);
            snprintf(found, sizeof found, "%.*s", (int)n, at + strlen(needle));
            return found;
        }
        CHECK(s->len + 1 < sizeof s->buf, "too much output on %s", what);
        int r = stream_read(s, IO_TIMEOUT_S * 1000);
        CHECK(r >= 0, "no '%s' line on %s within %d s (got: %s)", needle, what, IO_TIMEOUT_S,
              s->buf);
        CHECK(r > 0, "%s closed before '%s' (got: %s)", what, needle, s->buf);
    }
}

/* Reads the child's stdout until `needle` appears; returns the text after it up to '\n'. */
static const char *wait_line(child *c, const char *needle)
{
    return wait_in(&c->out, needle, "stdout");
}

/* The same on its stderr (started with start_capture()). */
static const char *wait_err_line(child *c, const char *needle)
{
    return wait_in(&c->err, needle, "stderr");
}

/* The next line of s not returned yet, without its '\n' (each line in order). */
static const char *next_line(stream *s)
{
    static char line[256];
    for (;;) {
        const char *nl = strchr(s->buf + s->pos, '\n');
        if (nl != NULL) {
            size_t n = (size_t)(nl - (s->buf + s->pos));
            snprintf(line, sizeof line, "%.*s", (int)n, s->buf + s->pos);
            s->pos += n + 1;
            return line;
        }
        CHECK(s->len + 1 < sizeof s->buf, "too much output");
        int r = stream_read(s, IO_TIMEOUT_S * 1000);
        CHECK(r >= 0, "no new line within %d s (got: %s)", IO_TIMEOUT_S, s->buf + s->pos);
        CHECK(r > 0, "exited early (output: %s)", s->buf + s->pos);
    }
}

/* Reads what s has now, without waiting (a child never blocks on a full pipe). */
static void drain(stream *s)
{
    while (s->fd >= 0 && stream_read(s, 0) > 0) {
    }
}

/* After the exit: reads s to EOF (bounded), then closes it. */
static void finish(stream *s)
{
    if (s->fd < 0)
        return;
    int r;
    while ((r = stream_read(s, IO_TIMEOUT_S * 1000)) > 0) {
    }
    close(s->fd);
    s->fd = -1;
    CHECK(r == 0, "an output pipe stayed open %d s after the exit", IO_TIMEOUT_S);
}

/*
 * Waits (bounded) for the child to exit, reading its pipes meanwhile;
 * returns its exit status, or 128 + signal. Its output stays in c->out /
 * c->err; captured stderr is also copied to ours (ctest shows it).
 */
static int reap(child *c)
{
    for (int i = 0; i < IO_TIMEOUT_S * 100; i++) {
        drain(&c->out);
        drain(&c->err);
        int st;
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == c->pid) {
            c->pid = 0;
            bool captured = c->err.fd >= 0;
            finish(&c->out);
            finish(&c->err);
            if (captured)
                fputs(c->err.buf, stderr);
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

/* $EXAMPLE_TEST_THREADS, default "0" (current-thread runtime). */
static const char *test_threads(void)
{
    const char *threads = getenv("EXAMPLE_TEST_THREADS");
    return threads != NULL ? threads : "0";
}

/* tcp_echo_server --threads $EXAMPLE_TEST_THREADS (default 0: current-thread runtime). */
static child *start_tcp_echo_server(const char **addr_out)
{
    const char *const argv[] = {
        "tcp_echo_server", "--threads", test_threads(), "--host", "127.0.0.1", "--port", "0", NULL};
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

/* Runs argv to completion with stderr captured: exit 1 and stderr exactly `want`. */
static void expect_one_error_line(const char *const *argv, const char *want)
{
    child *c = start_capture(argv);
    int st = reap(c);
    CHECK(st == 1, "%s: exit status %d, want 1", argv[0], st);
    CHECK(strcmp(c->err.buf, want) == 0, "%s: stderr was '%s', want '%s'", argv[0], c->err.buf,
          want);
}

/*
 * A port in use: each server reports it on one stderr line that names the address, then
 * exits 1 (no second, address-less line from the runtime's exit path).
 */
static void scenario_bind_errors(void)
{
    int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = ipv4("127.0.0.1:0");
    socklen_t len = sizeof sa;
    CHECK(bind(busy, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(busy, 1) == 0 &&
              getsockname(busy, (struct sockaddr *)&sa, &len) == 0,
          "occupy a port: %s", strerror(errno));
    char port[16], want[128];
    snprintf(port, sizeof port, "%u", (unsigned)ntohs(sa.sin_port));

    const char *const echo[] = {"tcp_echo_server", "--port", port, "--threads", "0", NULL};
    snprintf(want, sizeof want, "tcp_echo_server: listen on 127.0.0.1:%s: address already in use\n",
             port);
    expect_one_error_line(echo, want);

    const char *const http[] = {"http_server", "--port", port, "--threads", "0", NULL};
    snprintf(want, sizeof want, "http_server: listen on 127.0.0.1:%s: address already in use\n",
             port);
    expect_one_error_line(http, want);
    close(busy);
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

/* ---- tcp_echo_server --stats ---------------------------------------------------------- */

/* The value of the "stats <key>: N" line in text; fails unless there is exactly one. */
static unsigned long long stats_value(const char *text, const char *key)
{
    char needle[64];
    snprintf(needle, sizeof needle, "stats %s: ", key);
    const char *at = strstr(text, needle);
    CHECK(at != NULL, "no '%s' line on stderr (got: %s)", needle, text);
    CHECK(strstr(at + 1, needle) == NULL, "'%s' printed more than once", needle);
    char *end;
    unsigned long long v = strtoull(at + strlen(needle), &end, 10);
    CHECK(end != at + strlen(needle) && *end == '\n', "malformed '%s' line", needle);
    return v;
}

static void scenario_tcp_echo_stats(void)
{
    const char *const argv[] = {
        "tcp_echo_server", "--threads", test_threads(), "--host", "127.0.0.1",
        "--port",          "0",         "--stats",      NULL};
    child *srv = start_capture(argv);
    const char *addr = wait_line(srv, "listening on ");
    int fd = tcp_connect(addr);
    echo_round_trip(fd, 4096, 5);
    echo_round_trip(fd, 65536, 6);
    CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown");
    expect_eof(fd);
    close(fd);
    stop_expect_0(srv, SIGTERM, "tcp_echo_server --stats"); /* reads stderr to EOF */

    static const char *const keys[] = {"workers",
                                       "tasks_spawned",
                                       "remote_spawned",
                                       "polls",
                                       "steals",
                                       "tasks_stolen",
                                       "parks",
                                       "unparks",
                                       "lifo_hits",
                                       "budget_yields",
                                       "io_events",
                                       "local_queue_depth",
                                       "global_queue_depth",
                                       "blocking_threads",
                                       "overflows",
                                       "alive_tasks",
                                       "blocking_queue_depth",
                                       "timers_active",
                                       "timers_fired",
                                       "io_registrations"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        (void)stats_value(srv->err.buf, keys[i]);
    const char *text = srv->err.buf;
    CHECK(stats_value(text, "polls") > 0, "stats polls: 0");
    CHECK(stats_value(text, "tasks_spawned") > 0, "stats tasks_spawned: 0 (a connection task ran)");
    CHECK(stats_value(text, "io_events") > 0, "stats io_events: 0 (the echo needed readiness)");
    unsigned long long threads = strtoull(test_threads(), NULL, 10);
    CHECK(stats_value(text, "workers") == (threads == 0 ? 1 : threads), "stats workers: %llu",
          stats_value(text, "workers"));
    /* stdout is a contract: still only the listening line. */
    CHECK(strncmp(srv->out.buf, "listening on ", 13) == 0 &&
              strchr(srv->out.buf, '\n') == srv->out.buf + srv->out.len - 1,
          "stdout changed with --stats: %s", srv->out.buf);

    /* --stats-interval 1 (implies --stats): a block appears while the server runs. */
    const char *const periodic[] = {
        "tcp_echo_server", "--threads", test_threads(),     "--host", "127.0.0.1",
        "--port",          "0",         "--stats-interval", "1",      NULL};
    srv = start_capture(periodic);
    fd = tcp_connect(wait_line(srv, "listening on "));
    echo_round_trip(fd, 1024, 7);
    CHECK(strtoull(wait_err_line(srv, "stats polls: "), NULL, 10) > 0, "periodic stats polls: 0");
    close(fd);
    stop_expect_0(srv, SIGTERM, "tcp_echo_server --stats-interval 1");
}

/* ---- observability: --dump-on-signal, --stall-ms, http_server --metrics ------------------ */

/* Sends `req` on a new connection and reads the answer to EOF (the request says close). */
static void http_exchange(const char *addr, const char *req, char *resp, size_t cap)
{
    int fd = tcp_connect(addr);
    send_all(fd, (const unsigned char *)req, strlen(req));
    size_t len = 0;
    for (;;) {
        CHECK(len + 1 < cap, "answer larger than %zu bytes", cap);
        ssize_t r = recv(fd, resp + len, cap - 1 - len, 0);
        CHECK(r >= 0, "recv: %s", strerror(errno));
        if (r == 0)
            break;
        len += (size_t)r;
    }
    resp[len] = '\0';
    close(fd);
}

static void scenario_observe(void)
{
    /* tcp_echo_server: SIGUSR1 prints a task dump on stderr, the server keeps serving. */
    const char *const argv[] = {
        "tcp_echo_server",  "--threads",  test_threads(), "--host", "127.0.0.1", "--port", "0",
        "--dump-on-signal", "--stall-ms", "1000",         NULL};
    child *srv = start_capture(argv);
    const char *addr = wait_line(srv, "listening on ");
    int fd = tcp_connect(addr);
    echo_round_trip(fd, 4096, 9);
    CHECK(kill(srv->pid, SIGUSR1) == 0, "kill: %s", strerror(errno));
    (void)wait_err_line(srv, "asyncio runtime dump: ");
    (void)wait_err_line(srv, "task ");
    (void)wait_err_line(srv, " name=\"conn 1\" "); /* connection tasks are named */
    (void)wait_err_line(srv, "end of dump (");
    echo_round_trip(fd, 4096, 10); /* still serving */
    close(fd);
    stop_expect_0(srv, SIGTERM, "tcp_echo_server --dump-on-signal");

    /* http_server --metrics: GET /metrics is Prometheus text; without the flag it is a 404. */
    const char *const http[] = {"http_server", "--port",           "0", "--threads", test_threads(),
                                "--metrics",   "--poll-histogram", NULL};
    srv = start(http);
    addr = wait_line(srv, "listening on ");
    static char resp[65536];
    http_exchange(addr, "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", resp,
                  sizeof resp);
    CHECK(strncmp(resp, "HTTP/1.1 200 ", 13) == 0, "GET /metrics: %.80s", resp);
    CHECK(strstr(resp, "text/plain; version=0.0.4") != NULL, "content type: %.200s", resp);
    CHECK(strstr(resp, "\nasyncio_tasks_alive ") != NULL, "no asyncio_tasks_alive: %s", resp);
    CHECK(strstr(resp, "asyncio_backend_info{backend=\"") != NULL, "no backend: %s", resp);
    CHECK(strstr(resp, "asyncio_poll_duration_seconds_bucket{worker=\"0\",le=\"+Inf\"} ") != NULL,
          "no histogram: %s", resp);
    stop_expect_0(srv, SIGTERM, "http_server --metrics");
    const char *const plain[] = {"http_server", "--port", "0", "--threads", test_threads(), NULL};
    srv = start(plain);
    addr = wait_line(srv, "listening on ");
    http_exchange(addr, "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", resp,
                  sizeof resp);
    CHECK(strncmp(resp, "HTTP/1.1 404 ", 13) == 0, "GET /metrics without --metrics: %.80s", resp);
    stop_expect_0(srv, SIGTERM, "http_server");
}

/* ---- backpressure_server --------------------------------------------------------------- */

#define BP_WORK_MS 50

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* Per connection: the bytes it sent, the reply so far. */
typedef struct bp_conn {
    int fd;
    const char *want;
    char got[64];
    size_t len;
    bool done;
} bp_conn;

/* Reads what one ready connection has; true once its whole reply is in. */
static bool bp_read(bp_conn *c, int k)
{
    ssize_t r = recv(c->fd, c->got + c->len, sizeof c->got - 1 - c->len, 0);
    CHECK(r > 0, "connection %d: %s before its reply (got '%.*s')", k,
          r == 0 ? "EOF" : strerror(errno), (int)c->len, c->got);
    c->len += (size_t)r;
    size_t want = strlen(c->want);
    CHECK(c->len <= want && memcmp(c->got, c->want, c->len) == 0, "connection %d got '%.*s'", k,
          (int)c->len, c->got);
    return c->len == want;
}

/*
 * One permit: at most one line is worked on at a time. Three connections
 * send a line each, 10 ms apart (the arrivals are ordered, the permit orders
 * the work); a fourth, accepted while they wait, sends two lines. Every reply
 * comes back; the first three in the order sent; and, as a lower bound only,
 * 5 lines through one permit take at least 5 * work-ms.
 */
static void scenario_backpressure_server(void)
{
    static const char *const argv[] = {"backpressure_server", "--port", "0", "--permits", "1",
                                       "--work-ms",           "50",     NULL};
    child *srv = start(argv);
    const char *first = next_line(&srv->out);
    CHECK(strncmp(first, "listening on ", 13) == 0, "unexpected first line: '%s'", first);
    char addr[256];
    snprintf(addr, sizeof addr, "%s", first + 13);

    bp_conn conns[4] = {{.want = "line-0\n"},
                        {.want = "line-1\n"},
                        {.want = "line-2\n"},
                        {.want = "late-1\nlate-2\n"}};
    for (int i = 0; i < 3; i++)
        conns[i].fd = tcp_connect(addr);
    double start_s = now_s();
    for (int i = 0; i < 3; i++) {
        send_all(conns[i].fd, (const unsigned char *)conns[i].want, strlen(conns[i].want));
        sleep_ms(10);
    }
    conns[3].fd = tcp_connect(addr); /* accepted and served while the others wait */
    send_all(conns[3].fd, (const unsigned char *)conns[3].want, strlen(conns[3].want));

    int order[4], ndone = 0;
    double deadline = now_s() + 20;
    while (ndone < 4) {
        struct pollfd pfd[4];
        int idx[4], n = 0;
        for (int i = 0; i < 4; i++) {
            if (!conns[i].done) {
                pfd[n] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
                idx[n++] = i;
            }
        }
        double left = deadline - now_s();
        int r = poll(pfd, (nfds_t)n, left > 0 ? (int)(left * 1000) + 1 : 0);
        CHECK(r > 0, "timed out after 20 s with %d of 4 replies complete", ndone);
        for (int j = 0; j < n; j++) {
            if (pfd[j].revents != 0 && bp_read(&conns[idx[j]], idx[j])) {
                conns[idx[j]].done = true;
                order[ndone++] = idx[j];
            }
        }
    }
    double elapsed = now_s() - start_s;
    CHECK(order[0] == 0 && order[1] == 1 && order[2] == 2,
          "replies of the single-permit server out of order: %d %d %d %d (3 = late)", order[0],
          order[1], order[2], order[3]);
    CHECK(elapsed >= 5 * BP_WORK_MS / 1000.0,
          "5 lines through 1 permit took %.3f s (< %d ms): more than one in flight", elapsed,
          5 * BP_WORK_MS);
    for (int i = 0; i < 4; i++)
        close(conns[i].fd);
    stop_expect_0(srv, SIGTERM, "backpressure_server");
    printf("backpressure_server: order %d %d %d %d, %.3f s\n", order[0], order[1], order[2],
           order[3], elapsed);
}

/* ---- watch_dir ----------------------------------------------------------------------------- */

/* DIR/name into buf (g_tmpdir is short: no truncation). */
static const char *in_tmpdir(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", g_tmpdir, name);
    return buf;
}

/* ---- chat_server ------------------------------------------------------------------ */

/* A chat client: a blocking socket and the lines read from it. */
typedef struct chat_client {
    int fd;
    char buf[8192];
    size_t len;
} chat_client;

static void chat_send(chat_client *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    send_all(c->fd, (const unsigned char *)line, (size_t)n);
}

/* The next line from the server, without its '\n'; NULL at EOF. */
static const char *chat_line(chat_client *c)
{
    static char line[1024];
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - c->buf);
            CHECK(n < sizeof line, "line too long");
            memcpy(line, c->buf, n);
            line[n] = '\0';
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            return line;
        }
        CHECK(c->len < sizeof c->buf, "chat line too long");
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        CHECK(r >= 0, "chat recv: %s", strerror(errno));
        if (r == 0) {
            CHECK(c->len == 0, "EOF after a partial line");
            return NULL;
        }
        c->len += (size_t)r;
    }
}

static void chat_expect(chat_client *c, const char *want)
{
    const char *got = chat_line(c);
    CHECK(got != NULL && strcmp(got, want) == 0, "chat: want '%s', got '%s'", want,
          got != NULL ? got : "(EOF)");
}

static void chat_expect_eof(chat_client *c)
{
    const char *got = chat_line(c);
    CHECK(got == NULL, "chat: want EOF, got '%s'", got);
}

/* On a connected socket: reads the welcome line, takes a nickname and joins a room. */
static void chat_join_fd(chat_client *c, int fd, const char *nick, const char *room)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    const char *w = chat_line(c);
    CHECK(w != NULL && strncmp(w, "* welcome guest", 15) == 0, "welcome line: '%s'", w);
    chat_send(c, "/nick %s\r\n/join %s\n", nick, room); /* "\r\n" and "\n" both end a line */
    char want[64];
    snprintf(want, sizeof want, "* you are %s", nick);
    chat_expect(c, want);
    snprintf(want, sizeof want, "* joined %s", room);
    chat_expect(c, want);
}

/* Connects, reads the welcome line, takes a nickname and joins a room. */
static void chat_join(chat_client *c, const char *addr, const char *nick, const char *room)
{
    chat_join_fd(c, tcp_connect(addr), nick, room);
}

static child *start_chat_server(const char *idle_ms, const char *capacity, const char **addr_out)
{
    const char *const argv[] = {
        "chat_server",       "--threads", test_threads(),    "--port", "0", "--grace-ms", "300",
        "--idle-timeout-ms", idle_ms,     "--room-capacity", capacity, NULL};
    child *c = start(argv);
    static char addr[256];
    snprintf(addr, sizeof addr, "%s", wait_line(c, "listening on "));
    *addr_out = addr;
    return c;
}

#define CHAT_MSGS 40

/*
 * Reads a red-room member's lines until it has every message of alice and
 * bob: each sender's in the order sent, and nothing else (no blue line).
 */
static void chat_expect_red(chat_client *c)
{
    int next[2] = {0, 0};
    while (next[0] < CHAT_MSGS || next[1] < CHAT_MSGS) {
        const char *l = chat_line(c);
        CHECK(l != NULL, "red member: EOF after alice %d, bob %d", next[0], next[1]);
        int who = strncmp(l, "alice: ", 7) == 0 ? 0 : strncmp(l, "bob: ", 5) == 0 ? 1 : -1;
        CHECK(who >= 0, "red member got '%s'", l);
        char want[64];
        snprintf(want, sizeof want, "%s: %s says %d", who ? "bob" : "alice", who ? "bob" : "alice",
                 next[who]);
        CHECK(strcmp(l, want) == 0, "red member: want '%s', got '%s'", want, l);
        next[who]++;
    }
}

static void scenario_chat(void)
{
    const char *addr;
    child *srv = start_chat_server("600000", "256", &addr);
    chat_client alice, bob, carol, dave;
    chat_join(&alice, addr, "alice", "red");
    chat_join(&bob, addr, "bob", "red");
    chat_join(&carol, addr, "carol", "red");
    chat_join(&dave, addr, "dave", "blue");
    for (int i = 0; i < CHAT_MSGS; i++) { /* interleaved, from two connections */
        chat_send(&alice, "alice says %d\n", i);
        chat_send(&bob, "bob says %d\n", i);
        if (i < 5)
            chat_send(&dave, "dave says %d\n", i);
    }
    chat_expect_red(&alice);
    chat_expect_red(&bob);
    chat_expect_red(&carol);
    for (int i = 0; i < 5; i++) {
        char want[64];
        snprintf(want, sizeof want, "dave: dave says %d", i);
        chat_expect(&dave, want);
    }
    chat_send(&carol, "/quit\n");
    chat_expect(&carol, "* bye");
    chat_expect_eof(&carol);
    chat_send(&alice, "/join green\n"); /* alice leaves red: bob's next message is not hers */
    chat_expect(&alice, "* joined green");
    chat_send(&bob, "still here\n");
    chat_expect(&bob, "bob: still here");
    chat_send(&dave, "no room for this?\n");
    chat_expect(&dave, "dave: no room for this?");
    /* Shutdown: every client is told, then sees the connection close; nothing else arrived. */
    CHECK(kill(srv->pid, SIGTERM) == 0, "kill: %s", strerror(errno));
    chat_client *left[] = {&alice, &bob, &dave};
    for (int i = 0; i < 3; i++) {
        chat_expect(left[i], "* server shutting down, bye");
        chat_expect_eof(left[i]);
    }
    int st = reap(srv);
    CHECK(st == 0, "chat_server: exit status %d after SIGTERM, want 0", st);
    close(alice.fd);
    close(bob.fd);
    close(carol.fd);
    close(dave.fd);
}

/*
 * A client that stops reading while its room is flooded: at shutdown its
 * task is stuck writing (its socket buffers are full), so it cannot say
 * goodbye within --grace-ms and is aborted; the connection still closes.
 * The room keeps every message (--room-capacity above FLOOD_LINES), so the
 * stuck client's task never skips one as lagged: it has more to write than
 * the stuck socket's 4 KiB receive buffer plus the largest send buffer
 * Linux grows to by default (tcp_wmem: 4 MiB).
 */
#define FLOOD_LINES 11000
#define FLOOD_BATCH 50

static void scenario_chat_abort(void)
{
    const char *addr;
    child *srv = start_chat_server("600000", "16384", &addr);
    struct sockaddr_in sa = ipv4(addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    CHECK(fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0, "socket");
    set_timeouts(fd);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s", strerror(errno));
    chat_client stuck, loud;
    chat_join_fd(&stuck, fd, "stuck", "flood");
    chat_join(&loud, addr, "loud", "flood");
    char text[480];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    for (int i = 0; i < FLOOD_LINES; i += FLOOD_BATCH) { /* loud reads its own: never stuck */
        for (int k = 0; k < FLOOD_BATCH; k++)
            chat_send(&loud, "%d %s\n", i + k, text);
        for (int k = 0; k < FLOOD_BATCH; k++) {
            const char *l = chat_line(&loud);
            CHECK(l != NULL && strncmp(l, "loud: ", 6) == 0 && atoi(l + 6) == i + k,
                  "loud: want message %d, got '%.40s'", i + k, l != NULL ? l : "(EOF)");
        }
    }
    CHECK(kill(srv->pid, SIGTERM) == 0, "kill: %s", strerror(errno));
    chat_expect(&loud, "* server shutting down, bye");
    chat_expect_eof(&loud);
    int st = reap(srv); /* within the grace period plus the abort */
    CHECK(st == 0, "chat_server: exit status %d after SIGTERM, want 0", st);
    /*
     * The stuck client: whatever was buffered (the last line cut where the
     * abort stopped the write), then the close, and no goodbye.
     */
    static const char bye[] = "* server shutting down, bye\n";
    char tail[sizeof bye - 1]; /* the last bytes received */
    size_t total = 0, kept = 0;
    const char *from = stuck.buf; /* what chat_join_fd had buffered, then each recv */
    ssize_t r = (ssize_t)stuck.len;
    static char chunk[65536];
    do {
        size_t n = (size_t)r < sizeof tail ? (size_t)r : sizeof tail; /* keep its last n */
        size_t drop = kept + n > sizeof tail ? kept + n - sizeof tail : 0;
        memmove(tail, tail + drop, kept - drop);
        memcpy(tail + kept - drop, from + r - (ssize_t)n, n);
        kept += n - drop;
        total += (size_t)r;
        from = chunk;
    } while ((r = recv(stuck.fd, chunk, sizeof chunk, 0)) > 0);
    CHECK(r == 0, "stuck client: recv: %s", strerror(errno));
    CHECK(total > 0 && (kept < sizeof tail || memcmp(tail, bye, sizeof tail) != 0),
          "the stuck client was not aborted (its buffers did not fill)");
    close(stuck.fd);
    close(loud.fd);
}

static void scenario_chat_idle(void)
{
    const char *addr;
    child *srv = start_chat_server("300", "256", &addr);
    chat_client quiet;
    chat_join(&quiet, addr, "quiet", "lobby"); /* activity, then nothing */
    chat_expect(&quiet, "* idle for 300 ms, bye");
    chat_expect_eof(&quiet);
    close(quiet.fd);
    chat_client late = {.fd = tcp_connect(addr)}; /* still accepting; stopped while connected */
    const char *w = chat_line(&late);
    CHECK(w != NULL && strncmp(w, "* welcome", 9) == 0, "welcome line: '%s'", w);
    CHECK(kill(srv->pid, SIGINT) == 0, "kill: %s", strerror(errno));
    const char *l = chat_line(&late); /* shutdown, or (on a slow machine) the idle timeout */
    CHECK(l != NULL && (strcmp(l, "* server shutting down, bye") == 0 ||
                        strcmp(l, "* idle for 300 ms, bye") == 0),
          "late client got '%s'", l);
    chat_expect_eof(&late);
    close(late.fd);
    int st = reap(srv);
    CHECK(st == 0, "chat_server: exit status %d after SIGINT, want 0", st);
}

static void scenario_watch_dir(void)
{
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/asyncio_watch_dir_XXXXXX");
    if (mkdtemp(g_tmpdir) == NULL) {
        g_tmpdir[0] = '\0';
        fail("mkdtemp: %s", strerror(errno));
    }
    const char *const argv[] = {"watch_dir", g_tmpdir, NULL};
    child *w = start(argv);
    char want0[128];
    snprintf(want0, sizeof want0, "watching %s", g_tmpdir);
    const char *line = next_line(&w->out);
    CHECK(strcmp(line, want0) == 0, "first line '%s', want '%s'", line, want0);

    char a[128], b[128], sub[128];
    in_tmpdir(a, sizeof a, "a.txt");
    in_tmpdir(b, sizeof b, "b.txt");
    in_tmpdir(sub, sizeof sub, "sub");
    int fd = open(a, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0, "open %s: %s", a, strerror(errno));
    CHECK(write(fd, "x", 1) == 1, "write: %s", strerror(errno));
    close(fd);
    CHECK(rename(a, b) == 0, "rename: %s", strerror(errno));
    CHECK(mkdir(sub, 0755) == 0, "mkdir: %s", strerror(errno));
    CHECK(unlink(b) == 0, "unlink: %s", strerror(errno));

    static const char *const want[] = {"create a.txt", "modify a.txt", "rename a.txt b.txt",
                                       "create sub/", "delete b.txt"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        line = next_line(&w->out);
        CHECK(strcmp(line, want[i]) == 0, "event line %zu: '%s', want '%s'", i + 1, line, want[i]);
    }
    stop_expect_0(w, SIGTERM, "watch_dir");
    remove_tmpdir();
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*run)(void);
    } scenarios[] = {
        {"tcp_echo", scenario_tcp_echo},
        {"tcp_echo_client", scenario_tcp_echo_client},
        {"udp_echo", scenario_udp_echo},
        {"unix_echo", scenario_unix_echo},
        {"proxy", scenario_proxy},
        {"bad_flags", scenario_bad_flags},
        {"tcp_echo_stats", scenario_tcp_echo_stats},
        {"observe", scenario_observe},
        {"backpressure_server", scenario_backpressure_server},
        {"watch_dir", scenario_watch_dir},
        {"bind_errors", scenario_bind_errors},
        {"chat", scenario_chat},
        {"chat_idle", scenario_chat_idle},
        {"chat_abort", scenario_chat_abort},
    };
    const size_t n = sizeof scenarios / sizeof scenarios[0];
    if (argc != 3) {
        fprintf(stderr, "usage: example_test BINDIR SCENARIO\nscenarios:");
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %s", scenarios[i].name);
        fprintf(stderr, "\n");
        return 2;
    }
    g_bindir = argv[1];
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    alarm(WATCHDOG_S);
    for (size_t i = 0; i < n; i++) {
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
