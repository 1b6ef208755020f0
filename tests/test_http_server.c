/*
 * Conformance tests of examples/http_server over loopback.
 *
 * Each test starts its own server (--threads 0 --port 0, small timeouts
 * through flags so nothing waits for the 10 s defaults), talks raw bytes to
 * it with blocking sockets (every receive bounded by SO_RCVTIMEO), and stops
 * it with SIGTERM, checking that it exits 0. The table of raw requests
 * gives, for each, the exact status expected and whether the connection
 * must stay open (a second request on it is answered) or be closed (EOF,
 * not a reset, after the response).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef HTTP_SERVER_PATH
#error "HTTP_SERVER_PATH must name the http_server binary"
#endif

/* ------------------------------------------------------------------------ */
/* Server process                                                            */

typedef struct server {
    pid_t pid;
    int port;
} server;

static char g_root[256];
static uid_t g_server_uid; /* != 0: the server drops root for this uid (see server_start) */

/* Servers started by the running test: a failing test's teardown kills them. */
#define MAX_SERVERS 4
static pid_t g_servers[MAX_SERVERS];

static void track(pid_t pid, bool on)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (on ? g_servers[i] == 0 : g_servers[i] == pid) {
            g_servers[i] = on ? pid : 0;
            return;
        }
    }
}

static int kill_leftovers(void **state)
{
    (void)state;
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (g_servers[i] > 0) {
            kill(g_servers[i], SIGKILL);
            waitpid(g_servers[i], NULL, 0);
            g_servers[i] = 0;
        }
    }
    return 0;
}

static void make_root(void)
{
    if (g_root[0] != '\0')
        return;
    snprintf(g_root, sizeof g_root, "/tmp/http_test_root.%d", (int)getpid());
    char path[512];
    mkdir(g_root, 0700);
    snprintf(path, sizeof path, "%s/sub", g_root);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/a.txt", g_root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("static file\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/evil", g_root);
    (void)symlink("/etc/passwd", path);
}

static void remove_root(void)
{
    char path[512];
    if (g_root[0] == '\0')
        return;
    snprintf(path, sizeof path, "%s/evil", g_root);
    unlink(path);
    snprintf(path, sizeof path, "%s/a.txt", g_root);
    unlink(path);
    snprintf(path, sizeof path, "%s/sub", g_root);
    rmdir(path);
    rmdir(g_root);
}

/* Starts the server with the default test flags plus `extra` (NULL-terminated). */
static void server_start(server *s, ...)
{
    const char *argv[48];
    int n = 0;
    make_root();
    argv[n++] = HTTP_SERVER_PATH;
    const char *threads = getenv("HTTP_TEST_THREADS"); /* default: current-thread */
    argv[n++] = "--threads";
    argv[n++] = threads != NULL ? threads : "0";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--root";
    argv[n++] = g_root;
    argv[n++] = "--header-timeout-ms";
    argv[n++] = "400";
    argv[n++] = "--linger-ms";
    argv[n++] = "300";
    va_list ap;
    va_start(ap, s);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 46)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test (ctest timeout) */
        if (g_server_uid != 0 && (setgid(g_server_uid) != 0 || setuid(g_server_uid) != 0))
            _exit(126);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    track(pid, true);
    char line[128];
    size_t len = 0;
    for (;;) { /* read "listening on 127.0.0.1:PORT\n" */
        ssize_t r = read(fds[0], line + len, 1);
        if (r <= 0 || line[len] == '\n' || len + 2 >= sizeof line)
            break;
        len++;
    }
    line[len] = '\0';
    close(fds[0]);
    const char *colon = strrchr(line, ':');
    assert_true(strncmp(line, "listening on ", 13) == 0 && colon != NULL);
    s->pid = pid;
    s->port = atoi(colon + 1);
}

/* The exit status must be 0 (bounded: SIGKILL after 10 s). */
static void server_wait_exit(server *s)
{
    track(s->pid, false);
    int status = -1;
    for (int i = 0; i < 1000; i++) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid)
            break;
        if (i == 999) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            fail_msg("server did not exit after SIGTERM");
        }
        usleep(10000);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* SIGTERM, then the exit status must be 0. */
static void server_stop(server *s)
{
    kill(s->pid, SIGTERM);
    server_wait_exit(s);
}

/* ------------------------------------------------------------------------ */
/* Client                                                                    */

typedef struct client {
    int fd;
    char buf[65536];
    size_t len;
} client;

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void client_open(client *c, int port)
{
    c->fd = connect_to(port);
    c->len = 0;
}

static void send_bytes(int fd, const void *p, size_t n)
{
    const char *q = p;
    while (n > 0) {
        ssize_t w = send(fd, q, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        q += w;
        n -= (size_t)w;
    }
}

/* Reads more bytes into the client buffer: > 0 bytes, 0 on EOF, -errno on error. */
static int client_fill(client *c)
{
    if (c->len == sizeof c->buf)
        return -ENOBUFS;
    ssize_t r;
    do
        r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    c->len += (size_t)r;
    return (int)r;
}

static void client_consume(client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static const char *find_header(const char *head, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl < len; i++) {
        if ((i == 0 || head[i - 1] == '\n') && strncasecmp(head + i, name, nl) == 0 &&
            head[i + nl] == ':')
            return head + i + nl + 1;
    }
    return NULL;
}

/*
 * Reads one response; returns its status (0 if the connection ended or
 * failed first). The body goes to body/body_len if non-NULL (at most
 * body_cap). `head_only`: a HEAD answer has no body.
 */
static int read_response(client *c, bool head_only, char *body, size_t body_cap, size_t *body_len)
{
    char *end;
    for (;;) {
        end = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end != NULL)
            break;
        if (client_fill(c) <= 0)
            return 0;
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    int status = 0;
    if (sscanf(c->buf, "HTTP/1.1 %d", &status) != 1)
        return 0;
    const char *clp = find_header(c->buf, head_len, "Content-Length");
    bool te = find_header(c->buf, head_len, "Transfer-Encoding") != NULL;
    bool has_cl = clp != NULL;
    size_t cl = has_cl ? strtoul(clp, NULL, 10) : 0; /* before the head is consumed */
    size_t blen = 0;
    client_consume(c, head_len);
    if (status == 100)
        return 100;
    if (head_only) {
        /* nothing */
    } else if (te) {
        for (;;) { /* chunked: size line, data, CRLF; "0" CRLF CRLF */
            char *le;
            while ((le = memmem(c->buf, c->len, "\r\n", 2)) == NULL) {
                if (client_fill(c) <= 0)
                    return 0;
            }
            size_t sz = strtoul(c->buf, NULL, 16);
            client_consume(c, (size_t)(le - c->buf) + 2);
            while (c->len < sz + 2) {
                if (client_fill(c) <= 0)
                    return 0;
            }
            if (body != NULL && blen + sz <= body_cap)
                memcpy(body + blen, c->buf, sz);
            blen += sz;
            client_consume(c, sz + 2);
            if (sz == 0)
                break;
        }
    } else {
        while (blen < cl) { /* streamed: the body may exceed the client buffer */
            if (c->len == 0 && client_fill(c) <= 0)
                return 0;
            size_t k = c->len < cl - blen ? c->len : cl - blen;
            if (body != NULL && blen + k <= body_cap)
                memcpy(body + blen, c->buf, k);
            blen += k;
            client_consume(c, k);
        }
    }
    if (body_len != NULL)
        *body_len = blen;
    return status;
}

/* The server closed the connection cleanly: EOF (not a reset), nothing more. */
static bool client_sees_eof(client *c)
{
    if (c->len > 0)
        return false;
    return client_fill(c) == 0;
}

static const char k_get[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/* The connection still works: another request is answered with 200. */
static bool client_still_open(client *c)
{
    send_bytes(c->fd, k_get, sizeof k_get - 1);
    return read_response(c, false, NULL, 0, NULL) == 200;
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */

typedef struct raw_case {
    const char *name;
    const char *req;
    size_t len; /* 0: strlen(req) */
    int status;
    bool keep;
} raw_case;

#define H "Host: t\r\n"
#define CASE(n, r, s, k)          \
    {                             \
        n, r, sizeof(r) - 1, s, k \
    }

static const raw_case k_cases[] = {
    CASE("get_root", "GET / HTTP/1.1\r\n" H "\r\n", 200, true),
    CASE("get_plaintext", "GET /plaintext HTTP/1.1\r\n" H "\r\n", 200, true),
    CASE("get_json", "GET /json HTTP/1.1\r\n" H "\r\n", 200, true),
    CASE("get_query", "GET /?q=1&r=2 HTTP/1.1\r\n" H "\r\n", 200, true),
    /* The path ends at '?' or '#' found 8 bytes at a time: in a later word, at a word's end. */
    CASE("get_query_after_first_word", "GET /plaintext?q=1 HTTP/1.1\r\n" H "\r\n", 200, true),
    CASE("get_query_last_byte_of_a_word", "GET /plaint?q HTTP/1.1\r\n" H "\r\n", 404, true),
    CASE("get_query_first_byte_of_a_word", "GET /plainte?q HTTP/1.1\r\n" H "\r\n", 404, true),
    CASE("get_query_ends_a_word_path", "GET /plaintext?/json HTTP/1.1\r\n" H "\r\n", 200, true),
    CASE("get_long_path_then_query", "GET /plaintext/longer/path?q=1 HTTP/1.1\r\n" H "\r\n", 404,
         true),
    CASE("get_absolute_form", "GET http://t/json HTTP/1.1\r\n" H "\r\n", 200, true),
    CASE("get_not_found", "GET /nope HTTP/1.1\r\n" H "\r\n", 404, true),
    CASE("post_echo_cl", "POST /echo HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nhello", 200, true),
    CASE("post_echo_cl_zero", "POST /echo HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", 200, true),
    CASE("post_echo_chunked",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
         200, true),
    CASE("chunked_extension_ignored",
         "POST /echo HTTP/1.1\r\n" H
         "Transfer-Encoding: chunked\r\n\r\n5;a=b;c=\"d\"\r\nhello\r\n0;x\r\n\r\n",
         200, true),
    CASE("chunked_trailers_ignored",
         "POST /echo HTTP/1.1\r\n" H
         "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n",
         200, true),
    CASE("chunked_coding_case_insensitive",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: ChUnKeD\r\n\r\n0\r\n\r\n", 200, true),
    CASE("chunked_size_hex_upper",
         "POST /echo HTTP/1.1\r\n" H
         "Transfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
         200, true),
    CASE("http10_closes", "GET / HTTP/1.0\r\n\r\n", 200, false),
    CASE("http10_keep_alive_asked", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200, true),
    CASE("connection_close", "GET / HTTP/1.1\r\n" H "Connection: close\r\n\r\n", 200, false),
    CASE("connection_close_case", "GET / HTTP/1.1\r\n" H "Connection: Close\r\n\r\n", 200, false),
    CASE("connection_list_close", "GET / HTTP/1.1\r\n" H "Connection: keep-alive, close\r\n\r\n",
         200, false),
    CASE("leading_empty_line", "\r\nGET / HTTP/1.1\r\n" H "\r\n", 200, true),
    CASE("get_with_cl_zero", "GET / HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", 200, true),
    CASE("get_with_body_discarded", "GET / HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nabc", 200,
         true),
    CASE("obs_text_in_value", "GET / HTTP/1.1\r\n" H "X: caf\xc3\xa9\r\n\r\n", 200, true),
    CASE("tab_in_value", "GET / HTTP/1.1\r\n" H "X: a\tb\r\n\r\n", 200, true),
    CASE("empty_value", "GET / HTTP/1.1\r\n" H "X:\r\n\r\n", 200, true),
    CASE("no_space_after_colon", "GET / HTTP/1.1\r\nHost:t\r\n\r\n", 200, true),
    CASE("head_root", "HEAD / HTTP/1.1\r\n" H "\r\n", 200, true),
    CASE("head_json", "HEAD /json HTTP/1.1\r\n" H "\r\n", 200, true),
    CASE("head_not_found", "HEAD /nope HTTP/1.1\r\n" H "\r\n", 404, true),
    CASE("head_static", "HEAD /static/a.txt HTTP/1.1\r\n" H "\r\n", 200, true),
    CASE("put_root_405", "PUT / HTTP/1.1\r\n" H "Content-Length: 1\r\n\r\nx", 405, true),
    CASE("post_root_405", "POST / HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nabc", 405, true),
    CASE("get_echo_405", "GET /echo HTTP/1.1\r\n" H "\r\n", 405, true),
    CASE("delete_json_405", "DELETE /json HTTP/1.1\r\n" H "\r\n", 405, true),
    CASE("lowercase_method_405", "get / HTTP/1.1\r\n" H "\r\n", 405, true),
    CASE("static_file", "GET /static/a.txt HTTP/1.1\r\n" H "\r\n", 200, true),
    CASE("static_encoded_name", "GET /static/%61.txt HTTP/1.1\r\n" H "\r\n", 200, true),
    CASE("static_missing", "GET /static/missing HTTP/1.1\r\n" H "\r\n", 404, true),
    CASE("static_directory", "GET /static/sub HTTP/1.1\r\n" H "\r\n", 404, true),
    CASE("static_symlink_out", "GET /static/evil HTTP/1.1\r\n" H "\r\n", 404, true),
    CASE("static_absolute", "GET /static//etc/passwd HTTP/1.1\r\n" H "\r\n", 404, true),
    CASE("static_dotdot", "GET /static/../CMakeCache.txt HTTP/1.1\r\n" H "\r\n", 400, false),
    CASE("static_encoded_dotdot", "GET /static/%2e%2e/x HTTP/1.1\r\n" H "\r\n", 400, false),
    CASE("static_encoded_slash", "GET /static/sub%2f..%2fa.txt HTTP/1.1\r\n" H "\r\n", 400, false),
    CASE("missing_host_http11", "GET / HTTP/1.1\r\n\r\n", 400, false),
    CASE("duplicate_host", "GET / HTTP/1.1\r\n" H H "\r\n", 400, false),
    CASE("host_with_space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, false),
    CASE("host_with_slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, false),
    CASE("host_with_userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, false),
    CASE("host_bad_port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400, false),
    CASE("host_unclosed_ip_literal", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, false),
    CASE("host_with_port", "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", 200, true),
    CASE("host_ip_literal", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 200, true),
    CASE("host_empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 200, true),
    CASE("cl_and_te",
         "POST /echo HTTP/1.1\r\n" H
         "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400, false),
    CASE("te_and_cl",
         "POST /echo HTTP/1.1\r\n" H
         "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
         400, false),
    CASE("duplicate_cl_same",
         "POST /echo HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400,
         false),
    CASE("duplicate_cl_differ",
         "POST /echo HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400,
         false),
    CASE("cl_list", "POST /echo HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\nhello", 400, false),
    CASE("cl_negative", "POST /echo HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", 400, false),
    CASE("cl_plus", "POST /echo HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\nhello", 400, false),
    CASE("cl_hex", "POST /echo HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\nhello", 400, false),
    CASE("cl_empty", "POST /echo HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", 400, false),
    CASE("cl_overflow",
         "POST /echo HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999\r\n\r\n", 400, false),
    CASE("cl_over_limit", "POST /echo HTTP/1.1\r\n" H "Content-Length: 1048577\r\n\r\n", 413,
         false),
    CASE("te_gzip_501", "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", 501, false),
    CASE("te_gzip_chunked_501",
         "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
         false),
    CASE("te_identity_501", "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n", 501,
         false),
    CASE("te_chunked_twice",
         "POST /echo HTTP/1.1\r\n" H
         "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400, false),
    CASE("te_empty", "POST /echo HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n", 400, false),
    CASE("te_in_http10", "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
         false),
    CASE("chunk_size_invalid",
         "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400,
         false),
    CASE("chunk_size_0x",
         "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400,
         false),
    CASE("chunk_size_leading_space",
         "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n", 400,
         false),
    CASE("chunk_size_negative",
         "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400,
         false),
    CASE("chunk_size_overflow",
         "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 400,
         false),
    CASE("chunk_over_limit", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n200000\r\n",
         413, false),
    CASE("chunk_data_too_long",
         "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n", 400,
         false),
    CASE("chunk_size_bare_lf",
         "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400,
         false),
    CASE("chunk_trailer_obs_fold",
         "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n folded\r\n\r\n",
         400, false),
    CASE("bare_cr_in_value", "GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n", 400, false),
    CASE("bare_cr_in_request_line", "GET /\r HTTP/1.1\r\n" H "\r\n", 400, false),
    CASE("bare_cr_line_end", "GET / HTTP/1.1\r\n" H "X: a\r\r\n\r\n", 400, false),
    CASE("bare_lf_line_end", "GET / HTTP/1.1\nHost: t\n\n", 400, false),
    CASE("bare_lf_in_headers", "GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n", 400, false),
    CASE("control_char_in_value", "GET / HTTP/1.1\r\n" H "X: a\x01z\r\n\r\n", 400, false),
    CASE("del_in_value", "GET / HTTP/1.1\r\n" H "X: a\x7fz\r\n\r\n", 400, false),
    {"nul_in_value", "GET / HTTP/1.1\r\n" H "X: a\0z\r\n\r\n", 32, 400, false},
    CASE("control_char_in_target", "GET /a\x01z HTTP/1.1\r\n" H "\r\n", 400, false),
    CASE("space_before_colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400, false),
    CASE("tab_before_colon", "GET / HTTP/1.1\r\n" H "X\t: y\r\n\r\n", 400, false),
    CASE("obs_fold", "GET / HTTP/1.1\r\n" H "X: a\r\n b\r\n\r\n", 400, false),
    CASE("obs_fold_tab", "GET / HTTP/1.1\r\n" H "X: a\r\n\tb\r\n\r\n", 400, false),
    CASE("header_without_colon", "GET / HTTP/1.1\r\n" H "Foo\r\n\r\n", 400, false),
    CASE("empty_header_name", "GET / HTTP/1.1\r\n" H ": a\r\n\r\n", 400, false),
    CASE("invalid_char_in_name", "GET / HTTP/1.1\r\n" H "X(y: a\r\n\r\n", 400, false),
    CASE("invalid_method_char", "G(T / HTTP/1.1\r\n" H "\r\n", 400, false),
    CASE("double_space_in_line", "GET  / HTTP/1.1\r\n" H "\r\n", 400, false),
    CASE("trailing_space_in_line", "GET / HTTP/1.1 \r\n" H "\r\n", 400, false),
    CASE("lowercase_protocol", "GET / http/1.1\r\n" H "\r\n", 400, false),
    CASE("http09_request", "GET /\r\n\r\n", 400, false),
    CASE("version_garbage", "GET / HTTP/1.x\r\n" H "\r\n", 400, false),
    CASE("version_2_0_505", "GET / HTTP/2.0\r\n" H "\r\n", 505, false),
    CASE("version_1_2_505", "GET / HTTP/1.2\r\n" H "\r\n", 505, false),
    CASE("version_0_9_505", "GET / HTTP/0.9\r\n" H "\r\n", 505, false),
    CASE("asterisk_target", "GET * HTTP/1.1\r\n" H "\r\n", 400, false),
    CASE("expect_unknown_417",
         "POST /echo HTTP/1.1\r\n" H "Expect: something\r\nContent-Length: 1\r\n\r\nx", 417, false),
    CASE("junk_request", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, false),
};

/* Builds a request line with a target of `n` bytes (caller frees). */
static char *long_target(size_t n, const char *rest)
{
    size_t rl = strlen(rest);
    char *p = malloc(n + rl + 32);
    assert_non_null(p);
    memcpy(p, "GET /", 5);
    memset(p + 5, 'a', n - 1);
    memcpy(p + 4 + n, rest, rl + 1);
    return p;
}

/* Runs one raw case on a fresh connection; returns false (after printing) on mismatch. */
static bool run_case(int port, const raw_case *rc)
{
    client *c = malloc(sizeof *c);
    assert_non_null(c);
    client_open(c, port);
    size_t len = rc->len != 0 ? rc->len : strlen(rc->req);
    send_bytes(c->fd, rc->req, len);
    bool head = strncmp(rc->req, "HEAD", 4) == 0;
    int status = read_response(c, head, NULL, 0, NULL);
    bool ok = status == rc->status;
    bool state_ok = ok && (rc->keep ? client_still_open(c) : client_sees_eof(c));
    if (!ok || !state_ok)
        fprintf(stderr, "case %s: status %d (want %d), connection %s (want %s)\n", rc->name, status,
                rc->status, state_ok == rc->keep ? "open" : "closed",
                rc->keep ? "kept alive" : "closed");
    close(c->fd);
    free(c);
    return ok && state_ok;
}

static void test_raw_request_table_gives_exact_status_and_connection_state(void **state)
{
    (void)state;
    server s;
    server_start(&s, NULL);
    size_t n = sizeof k_cases / sizeof k_cases[0];
    size_t failed = 0;
    for (size_t i = 0; i < n; i++)
        failed += !run_case(s.port, &k_cases[i]);

    /* the size limits, built at run time */
    char *line = long_target(8300, " HTTP/1.1\r\nHost: t\r\n\r\n");
    raw_case big = {"request_line_too_long", line, 0, 414, false};
    failed += !run_case(s.port, &big);
    free(line);
    line = long_target(8000, " HTTP/1.1\r\nHost: t\r\n\r\n");
    raw_case fits = {"request_line_near_limit", line, 0, 404, true};
    failed += !run_case(s.port, &fits);
    free(line);

    char *hdr = malloc(20000);
    assert_non_null(hdr);
    strcpy(hdr, "GET / HTTP/1.1\r\nHost: t\r\nX: ");
    size_t l = strlen(hdr);
    memset(hdr + l, 'v', 17000);
    strcpy(hdr + l + 17000, "\r\n\r\n");
    raw_case big_head = {"header_section_too_large", hdr, 0, 431, false};
    failed += !run_case(s.port, &big_head);

    strcpy(hdr, "GET / HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 100; i++)
        sprintf(hdr + strlen(hdr), "X-%d: y\r\n", i);
    strcat(hdr, "\r\n");
    raw_case many = {"too_many_headers", hdr, 0, 431, false};
    failed += !run_case(s.port, &many);
    strcpy(hdr, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 99; i++)
        sprintf(hdr + strlen(hdr), "X-%d: y\r\n", i);
    strcat(hdr, "Host: t\r\n\r\n");
    raw_case hundred = {"exactly_100_headers", hdr, 0, 200, true};
    failed += !run_case(s.port, &hundred);
    free(hdr);

    server_stop(&s);
    fprintf(stderr, "%zu raw cases, %zu failed\n", n + 5, failed);
    assert_int_equal(failed, 0);
}

/* ------------------------------------------------------------------------ */
/* Behaviours                                                                */

static void test_pipelined_requests_are_answered_in_order(void **state)
{
    (void)state;
    server s;
    server_start(&s, NULL);
    client c;
    client_open(&c, s.port);
    char req[4096] = "";
    for (int i = 0; i < 16; i++)
        strcat(req, i % 2 == 0 ? "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n"
                               : "GET /json HTTP/1.1\r\nHost: t\r\n\r\n");
    strcat(req, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz");
    send_bytes(c.fd, req, strlen(req));
    for (int i = 0; i < 16; i++) {
        char body[64];
        size_t bl = 0;
        assert_int_equal(read_response(&c, false, body, sizeof body, &bl), 200);
        if (i % 2 == 0)
            assert_memory_equal(body, "Hello, World!", 13);
        else
            assert_memory_equal(body, "{\"message\":\"Hello, World!\"}", 27);
    }
    char body[8];
    size_t bl = 0;
    assert_int_equal(read_response(&c, false, body, sizeof body, &bl), 200);
    assert_int_equal(bl, 3);
    assert_memory_equal(body, "xyz", 3);
    assert_true(client_still_open(&c));
    close(c.fd);
    server_stop(&s);
}

static void test_pipelined_static_files_interleave_with_other_answers(void **state)
{
    (void)state;
    server s;
    server_start(&s, NULL);
    client c;
    client_open(&c, s.port);
    static const char req[] = "GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                              "HEAD /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                              "GET /json HTTP/1.1\r\nHost: t\r\n\r\n"
                              "GET /static/a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    send_bytes(c.fd, req, sizeof req - 1);
    char body[64];
    size_t bl = 0;
    assert_int_equal(read_response(&c, false, body, sizeof body, &bl), 200);
    assert_int_equal(bl, 12);
    assert_memory_equal(body, "static file\n", 12);
    assert_int_equal(read_response(&c, true, NULL, 0, NULL), 200);
    assert_int_equal(read_response(&c, false, body, sizeof body, &bl), 200);
    assert_int_equal(bl, 27);
    assert_int_equal(read_response(&c, false, body, sizeof body, &bl), 200);
    assert_memory_equal(body, "static file\n", 12);
    assert_true(client_sees_eof(&c));
    close(c.fd);
    server_stop(&s);
}

static void test_request_pipelined_after_a_rejected_one_is_never_processed(void **state)
{
    (void)state;
    server s;
    server_start(&s, NULL);
    static const char *k_bad[] = {
        "GET / HTTP/1.1\r\n\r\n", /* no Host */
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
        "Transfer-Encoding: chunked\r\n\r\n", /* CL + TE */
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabcXX\r\n", /* bad chunk */
    };
    for (size_t i = 0; i < 3; i++) {
        client c;
        client_open(&c, s.port);
        char req[512];
        snprintf(req, sizeof req, "%sGET /json HTTP/1.1\r\nHost: t\r\n\r\n", k_bad[i]);
        send_bytes(c.fd, req, strlen(req));
        /* the bad chunk arrives with its head: the echo's 200 is replaced by the 400 */
        assert_int_equal(read_response(&c, false, NULL, 0, NULL), 400);
        assert_int_equal(read_response(&c, false, NULL, 0, NULL), 0); /* EOF, no 200 */
        close(c.fd);
    }
    server_stop(&s);
}

static void test_request_sent_byte_by_byte_parses_like_a_whole_one(void **state)
{
    (void)state;
    server s;
    /* Generous deadlines: ~110 single-byte sends must not meet the 400 ms header
     * timeout (or the body's) on a loaded machine; this test is about parsing. */
    server_start(&s, "--header-timeout-ms", "60000", "--body-timeout-ms", "60000",
                 "--body-min-rate", "0", NULL);
    client c;
    client_open(&c, s.port);
    static const char req[] = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                              "\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
                              "GET /json HTTP/1.1\r\nHost: t\r\n\r\n";
    for (size_t i = 0; i < sizeof req - 1; i++) {
        send_bytes(c.fd, req + i, 1);
        usleep(500); /* separate segments, most of the time */
    }
    char body[16];
    size_t bl = 0;
    assert_int_equal(read_response(&c, false, body, sizeof body, &bl), 200);
    assert_int_equal(bl, 5);
    assert_memory_equal(body, "abcde", 5);
    assert_int_equal(read_response(&c, false, NULL, 0, NULL), 200);
    assert_true(client_still_open(&c));
    close(c.fd);
    server_stop(&s);
}

static void test_slowloris_client_gets_408_and_does_not_block_others(void **state)
{
    (void)state;
    server s;
    server_start(&s, NULL); /* --header-timeout-ms 400 */
    client slow;
    client_open(&slow, s.port);
    static const char partial[] = "GET / HTTP/1.1\r\nHost: t\r\nX-a: ";
    send_bytes(slow.fd, partial, sizeof partial - 1);
    for (int i = 0; i < 5; i++) { /* meanwhile others are served at once */
        client c;
        client_open(&c, s.port);
        assert_true(client_still_open(&c));
        close(c.fd);
        send_bytes(slow.fd, "b", 1); /* trickling bytes do not extend the header deadline */
    }
    assert_int_equal(read_response(&slow, false, NULL, 0, NULL), 408);
    assert_true(client_sees_eof(&slow));
    close(slow.fd);
    server_stop(&s);
}

/*
 * Sends a POST with a Content-Length of `len` and then its body one byte
 * every `gap_ms` (each gap well inside the inactivity limit), stopping as
 * soon as the server answers; returns that answer's status.
 */
static int trickle_body(int port, int len, int gap_ms)
{
    client c;
    client_open(&c, port);
    char head[128];
    snprintf(head, sizeof head, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", len);
    send_bytes(c.fd, head, strlen(head));
    for (int i = 0; i < len; i++) {
        struct pollfd pfd = {c.fd, POLLIN, 0};
        if (poll(&pfd, 1, gap_ms) > 0)
            break; /* answered early: stop sending */
        send_bytes(c.fd, "x", 1);
    }
    int st = read_response(&c, false, NULL, 0, NULL);
    if (st == 408)
        assert_true(client_sees_eof(&c));
    close(c.fd);
    return st;
}

/*
 * A body trickled slowly enough to never trip the inactivity limit
 * (--header-timeout-ms 400, a byte every 100 ms) still ends at the
 * whole-body deadline: 408 and close, long before the 40 bytes are in.
 */
static void test_slow_request_body_gets_408_at_the_body_deadline(void **state)
{
    (void)state;
    server s;
    server_start(&s, "--body-timeout-ms", "800", "--body-min-rate", "0", NULL);
    assert_int_equal(trickle_body(s.port, 40, 100), 408);
    server_stop(&s);
}

/*
 * Below the minimum rate (10 B/s here; 5 B/s sent) a body gets 408 once its
 * grace (the header timeout) and the time its bytes earned are used up,
 * although the whole-body deadline (60 s) is far away.
 */
static void test_request_body_below_min_rate_gets_408(void **state)
{
    (void)state;
    server s;
    server_start(&s, "--body-timeout-ms", "60000", "--body-min-rate", "10", NULL);
    assert_int_equal(trickle_body(s.port, 30, 200), 408);
    server_stop(&s);
}

static void test_idle_keep_alive_connection_is_closed_after_idle_timeout(void **state)
{
    (void)state;
    server s;
    server_start(&s, "--idle-timeout-ms", "200", NULL);
    client c;
    client_open(&c, s.port);
    assert_true(client_still_open(&c));
    assert_true(client_sees_eof(&c)); /* bounded by SO_RCVTIMEO (5 s) */
    close(c.fd);
    server_stop(&s);
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void test_500_idle_connections_do_not_block_a_new_one(void **state)
{
    (void)state;
    raise_nofile(2048); /* inherited by the server */
    server s;
    server_start(&s, "--idle-timeout-ms", "60000", NULL);
    enum { N = 500 };
    int *fds = malloc(N * sizeof *fds);
    assert_non_null(fds);
    for (int i = 0; i < N; i++)
        fds[i] = connect_to(s.port);
    /* half of them made one request and went idle with keep-alive */
    for (int i = 0; i < N; i += 2) {
        client *c = malloc(sizeof *c);
        assert_non_null(c);
        c->fd = fds[i];
        c->len = 0;
        assert_true(client_still_open(c));
        free(c);
    }
    client fresh;
    client_open(&fresh, s.port);
    assert_true(client_still_open(&fresh));
    close(fresh.fd);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    free(fds);
    server_stop(&s);
}

static void test_connections_beyond_max_conns_are_shed_and_server_stays_responsive(void **state)
{
    (void)state;
    server s;
    server_start(&s, "--max-conns", "2", NULL);
    client a, b, c;
    client_open(&a, s.port);
    client_open(&b, s.port);
    assert_true(client_still_open(&a));
    assert_true(client_still_open(&b));
    client_open(&c, s.port);
    int st = read_response(&c, false, NULL, 0, NULL);
    assert_true(st == 503 || st == 0); /* 503, or closed */
    close(c.fd);
    close(a.fd);
    /* once a slot is free a new connection is served (the close needs a moment to land) */
    bool served = false;
    for (int i = 0; i < 100 && !served; i++) {
        client d;
        client_open(&d, s.port);
        send_bytes(d.fd, k_get, sizeof k_get - 1);
        served = read_response(&d, false, NULL, 0, NULL) == 200;
        close(d.fd);
        if (!served)
            usleep(10000);
    }
    assert_true(served);
    assert_true(client_still_open(&b));
    close(b.fd);
    server_stop(&s);
}

static void test_error_response_is_received_not_reset_despite_unread_input(void **state)
{
    (void)state;
    server s;
    server_start(&s, NULL);
    client c;
    client_open(&c, s.port);
    /* a rejected request followed by a lot of input the server never reads */
    char *junk = malloc(200000);
    assert_non_null(junk);
    memset(junk, 'x', 200000);
    send_bytes(c.fd, "GET / HTTP/1.1\r\n\r\n", 18);
    send_bytes(c.fd, junk, 200000);
    free(junk);
    assert_int_equal(read_response(&c, false, NULL, 0, NULL), 400);
    assert_true(client_sees_eof(&c));
    close(c.fd);
    server_stop(&s);
}

/* n chunks of `size` bytes each ('x'), then the last chunk; caller frees. */
static char *chunked_body(int n, size_t size, size_t *len_out)
{
    char *b = malloc((size_t)n * (size + 16) + 8);
    assert_non_null(b);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        len += (size_t)sprintf(b + len, "%zx\r\n", size);
        memset(b + len, 'x', size);
        len += size;
        memcpy(b + len, "\r\n", 2);
        len += 2;
    }
    memcpy(b + len, "0\r\n\r\n", 5);
    *len_out = len + 5;
    return b;
}

/*
 * A chunked body beyond --max-body gets a 413 and an orderly close (EOF, not
 * a reset), on the streamed echo route too: the echo's 200 head is held back
 * until the first body bytes go out, and an answer still in the output
 * batch is replaced. Cases: the whole body in one send (many small chunks),
 * the head first and then one oversized chunk, and a route without echo.
 */
static void test_chunked_body_over_limit_gets_413(void **state)
{
    (void)state;
    server s;
    server_start(&s, "--max-body", "4000", NULL);
    static const char *k_paths[] = {"/echo", "/echo", "/"};
    for (int i = 0; i < 3; i++) {
        client c;
        client_open(&c, s.port);
        char head[128];
        snprintf(head, sizeof head,
                 "POST %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", k_paths[i]);
        size_t bl;
        char *body = i == 1 ? chunked_body(1, 5000, &bl) : chunked_body(10, 1000, &bl);
        send_bytes(c.fd, head, strlen(head));
        if (i == 1)
            usleep(20000); /* the head is usually answered alone first: nothing is sent yet */
        send_bytes(c.fd, body, bl);
        free(body);
        int st = read_response(&c, false, NULL, 0, NULL);
        if (st != 413)
            fprintf(stderr, "case %d (%s): status %d, want 413\n", i, k_paths[i], st);
        assert_int_equal(st, 413);
        assert_true(client_sees_eof(&c));
        close(c.fd);
    }
    server_stop(&s);
}

/* The lowest fd number the process `pid` has not open (from /proc/PID/fd). */
static int lowest_free_fd(pid_t pid)
{
    char path[64];
    bool used[1024] = {false};
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd >= 0 && fd < 1024)
            used[fd] = true;
    }
    closedir(d);
    int fd = 0;
    while (fd < 1024 && used[fd])
        fd++;
    return fd;
}

/*
 * A file that exists is not "not found" when the server cannot open it for
 * want of fds: with the server's RLIMIT_NOFILE lowered to its lowest free
 * fd (prlimit on the running server: every fd below the limit is in use),
 * the static file gets 503 with Retry-After, and once the limit is back
 * the same request on the same connection gets the file.
 */
static void test_static_file_gets_503_with_retry_after_when_server_is_out_of_fds(void **state)
{
    (void)state;
    server s;
    server_start(&s, "--idle-timeout-ms", "60000", NULL);
    client c;
    client_open(&c, s.port);
    assert_true(client_still_open(&c)); /* accepted: its fd exists */
    struct rlimit old, low;
    assert_int_equal(prlimit(s.pid, RLIMIT_NOFILE, NULL, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)lowest_free_fd(s.pid);
    assert_int_equal(prlimit(s.pid, RLIMIT_NOFILE, &low, NULL), 0);
    static const char req[] = "GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    send_bytes(c.fd, req, sizeof req - 1);
    char *end;
    while ((end = memmem(c.buf, c.len, "\r\n\r\n", 4)) == NULL)
        assert_true(client_fill(&c) > 0);
    bool retry_after = find_header(c.buf, (size_t)(end - c.buf) + 4, "Retry-After") != NULL;
    assert_int_equal(read_response(&c, false, NULL, 0, NULL), 503);
    assert_true(retry_after);
    assert_int_equal(prlimit(s.pid, RLIMIT_NOFILE, &old, NULL), 0);
    char body[64];
    size_t bl = 0;
    send_bytes(c.fd, req, sizeof req - 1);
    assert_int_equal(read_response(&c, false, body, sizeof body, &bl), 200);
    assert_int_equal(bl, 12);
    close(c.fd);
    server_stop(&s);
}

/*
 * A file the server may not read is 403, not 404 (EACCES). The server runs
 * as an unprivileged user when the test runs as root, whom permissions do
 * not stop.
 */
static void test_static_file_without_permission_gets_403(void **state)
{
    (void)state;
    make_root();
    char path[512];
    snprintf(path, sizeof path, "%s/secret.txt", g_root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("secret\n", f);
    fclose(f);
    assert_int_equal(chmod(path, 0), 0);
    assert_int_equal(chmod(g_root, 0755), 0);
    if (getuid() == 0)
        g_server_uid = 65534; /* nobody */
    server s;
    server_start(&s, NULL);
    g_server_uid = 0;
    client c;
    client_open(&c, s.port);
    static const char req[] = "GET /static/secret.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    send_bytes(c.fd, req, sizeof req - 1);
    int st = read_response(&c, false, NULL, 0, NULL);
    unlink(path);
    assert_int_equal(st, 403);
    assert_true(client_still_open(&c));
    static const char missing[] = "GET /static/nothing HTTP/1.1\r\nHost: t\r\n\r\n";
    send_bytes(c.fd, missing, sizeof missing - 1);
    assert_int_equal(read_response(&c, false, NULL, 0, NULL), 404);
    chmod(g_root, 0700);
    close(c.fd);
    server_stop(&s);
}

static void test_large_echo_body_round_trips(void **state)
{
    (void)state;
    server s;
    server_start(&s, NULL);
    client *c = malloc(sizeof *c);
    assert_non_null(c);
    client_open(c, s.port);
    size_t n = 300000;
    char *body = malloc(n);
    char *got = malloc(n);
    assert_non_null(body);
    assert_non_null(got);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('a' + i % 26);
    char head[128];
    snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", n);
    send_bytes(c->fd, head, strlen(head));
    /* the server streams the echo back while we send: read on a helper process side */
    pid_t pid = fork();
    if (pid == 0) {
        send_bytes(c->fd, body, n);
        _exit(0);
    }
    size_t bl = 0;
    int st = read_response(c, false, got, n, &bl);
    waitpid(pid, NULL, 0);
    assert_int_equal(st, 200);
    assert_int_equal(bl, n);
    assert_memory_equal(got, body, n);
    assert_true(client_still_open(c));
    close(c->fd);
    free(body);
    free(got);
    free(c);
    server_stop(&s);
}

static void test_expect_100_continue_gets_interim_response(void **state)
{
    (void)state;
    server s;
    server_start(&s, NULL);
    client c;
    client_open(&c, s.port);
    static const char req[] =
        "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    send_bytes(c.fd, req, sizeof req - 1);
    assert_int_equal(read_response(&c, false, NULL, 0, NULL), 100);
    send_bytes(c.fd, "ping", 4);
    char body[8];
    size_t bl = 0;
    assert_int_equal(read_response(&c, false, body, sizeof body, &bl), 200);
    assert_int_equal(bl, 4);
    assert_memory_equal(body, "ping", 4);
    close(c.fd);
    server_stop(&s);
}

static void test_graceful_shutdown_closes_idle_connections_and_exits_zero(void **state)
{
    (void)state;
    server s;
    server_start(&s, "--idle-timeout-ms", "60000", NULL);
    client c;
    client_open(&c, s.port);
    assert_true(client_still_open(&c));
    server_stop(&s); /* asserts exit status 0 */
    assert_true(client_sees_eof(&c));
    close(c.fd);
}

/*
 * On SIGTERM a connection that has not completed a request head is not
 * busy: it is closed at once (EOF), not kept until its header timeout
 * (30 s here, beyond the client's 5 s receive bound).
 */
static void test_shutdown_closes_a_connection_with_a_partial_head_at_once(void **state)
{
    (void)state;
    server s;
    server_start(&s, "--header-timeout-ms", "30000", NULL);
    client c;
    client_open(&c, s.port);
    assert_true(client_still_open(&c));
    static const char partial[] = "GET /json HTTP/1.1\r\nHo";
    send_bytes(c.fd, partial, sizeof partial - 1);
    usleep(50000); /* usually read before the signal; either way it must close at once */
    kill(s.pid, SIGTERM);
    assert_true(client_sees_eof(&c));
    close(c.fd);
    server_wait_exit(&s); /* a second SIGTERM could land after the handler is gone */
}

/*
 * A request that reached the server but was not read yet when SIGTERM came
 * is answered (Connection: close), not reset. Made deterministic with a
 * busy connection: the client asks for an 8 MiB file and does not read
 * (small receive buffer), so the server sits in sendfile and does not read
 * the second request sent meanwhile; then SIGTERM, then the client reads
 * everything: the file, then the second request's 200, then EOF.
 */
static void test_shutdown_answers_a_request_sent_behind_a_busy_response(void **state)
{
    (void)state;
    make_root();
    char path[512];
    snprintf(path, sizeof path, "%s/big.bin", g_root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 8 << 20), 0);
    fclose(f);
    server s;
    server_start(&s, "--idle-timeout-ms", "60000", NULL);
    client *c = malloc(sizeof *c);
    assert_non_null(c);
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    int small = 4096;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    static const char big[] = "GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n";
    send_bytes(c->fd, big, sizeof big - 1);
    assert_true(client_fill(c) > 0); /* the answer began: the server is in sendfile */
    static const char json[] = "GET /json HTTP/1.1\r\nHost: t\r\n\r\n";
    send_bytes(c->fd, json, sizeof json - 1);
    usleep(20000); /* let it land in the server's receive buffer (it is not read) */
    kill(s.pid, SIGTERM);
    size_t bl = 0;
    assert_int_equal(read_response(c, false, NULL, 0, &bl), 200);
    assert_int_equal(bl, 8 << 20);
    char body[64];
    assert_int_equal(read_response(c, false, body, sizeof body, &bl), 200);
    assert_memory_equal(body, "{\"message\"", 10);
    assert_true(client_sees_eof(c));
    close(c->fd);
    free(c);
    unlink(path);
    server_wait_exit(&s);
}

static void test_bad_flags_exit_with_usage(void **state)
{
    (void)state;
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        execl(HTTP_SERVER_PATH, HTTP_SERVER_PATH, "--port", "notanumber", (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
}

static int group_teardown(void **state)
{
    (void)state;
    remove_root();
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *filter = getenv("HTTP_TEST_FILTER"); /* e.g. "*over_limit*": run only those */
    if (filter != NULL)
        cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_raw_request_table_gives_exact_status_and_connection_state,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_pipelined_requests_are_answered_in_order, kill_leftovers),
        cmocka_unit_test_teardown(test_pipelined_static_files_interleave_with_other_answers,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_request_pipelined_after_a_rejected_one_is_never_processed,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_request_sent_byte_by_byte_parses_like_a_whole_one,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_slowloris_client_gets_408_and_does_not_block_others,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_slow_request_body_gets_408_at_the_body_deadline,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_request_body_below_min_rate_gets_408, kill_leftovers),
        cmocka_unit_test_teardown(test_idle_keep_alive_connection_is_closed_after_idle_timeout,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_500_idle_connections_do_not_block_a_new_one, kill_leftovers),
        cmocka_unit_test_teardown(
            test_connections_beyond_max_conns_are_shed_and_server_stays_responsive, kill_leftovers),
        cmocka_unit_test_teardown(test_error_response_is_received_not_reset_despite_unread_input,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_chunked_body_over_limit_gets_413, kill_leftovers),
        cmocka_unit_test_teardown(
            test_static_file_gets_503_with_retry_after_when_server_is_out_of_fds, kill_leftovers),
        cmocka_unit_test_teardown(test_static_file_without_permission_gets_403, kill_leftovers),
        cmocka_unit_test_teardown(test_large_echo_body_round_trips, kill_leftovers),
        cmocka_unit_test_teardown(test_expect_100_continue_gets_interim_response, kill_leftovers),
        cmocka_unit_test_teardown(test_graceful_shutdown_closes_idle_connections_and_exits_zero,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_shutdown_closes_a_connection_with_a_partial_head_at_once,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_shutdown_answers_a_request_sent_behind_a_busy_response,
                                  kill_leftovers),
        cmocka_unit_test_teardown(test_bad_flags_exit_with_usage, kill_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
