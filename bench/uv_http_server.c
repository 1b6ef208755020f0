/*
 * uv_http_server: the libuv peer of examples/http_server for
 * bench/run_bench.sh: a minimal, correct HTTP/1.1 keep-alive server with
 * pipelining. Same command line and readiness line:
 *
 *   uv_http_server [--host IP] [--port P] [--threads N] [--root DIR]
 *
 * (--root is accepted and ignored: there is no /static route.)
 *
 * Routes: GET or HEAD of / and /plaintext -> 200 "Hello, World!"
 * (text/plain); /json -> 200 {"message":"Hello, World!"} (application/json);
 * anything else -> 404. A request with a body (Content-Length other than 0,
 * or Transfer-Encoding) or that does not parse -> 400 and close; a method
 * other than GET / HEAD -> 405. "Connection: close" and HTTP/1.0 without
 * "Connection: keep-alive" close after the response. Every response has
 * Server, Date (cached, refreshed once a second by a timer), Content-Type
 * and Content-Length, as in examples/http_server and nginx.
 *
 * Buffers, the way a tuned libuv server does it:
 *   - reads go into one 64 KiB buffer per loop (alloc_cb hands out the
 *     loop's buffer: libuv runs one read callback at a time, and every byte
 *     is consumed or copied before the callback returns);
 *   - a request split across reads keeps its partial bytes in a per-
 *     connection malloc'd block until it completes (at most 16 KiB, then
 *     431 and close), so an idle keep-alive connection holds no buffer;
 *   - the responses to every complete request of one read (a pipelined
 *     batch) are built in one per-loop output buffer and written with one
 *     uv_try_write; whatever the socket does not take is copied to the
 *     connection and finished with uv_write, with reading stopped meanwhile.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "uv_common.h"

#define READ_BUF     65536
#define MAX_PENDING  16384 /* a request whose head is larger gets 431 */
#define OUT_INITIAL  16384
#define RESPONSE_MAX 512

static const char USAGE[] =
    "usage: uv_http_server [--host IP] [--port P] [--threads N] [--root DIR]\n"
    "  --host IP      address to listen on (default 127.0.0.1; IPv6 as ::1)\n"
    "  --port P       port (default 8080; 0 = any free port)\n"
    "  --threads N    0 or 1 = one loop; N > 1 = N loops on N threads (SO_REUSEPORT)\n"
    "  --root DIR     accepted for compatibility with http_server; unused\n"
    "Routes: / and /plaintext, /json. Prints 'listening on <ip>:<port>' once ready;\n"
    "SIGINT / SIGTERM shut it down.\n";

static const char PLAIN_BODY[] = "Hello, World!";
static const char JSON_BODY[] = "{\"message\":\"Hello, World!\"}";

/* Per-loop state (uvb_loop.user). */
typedef struct http_loop {
    char rbuf[READ_BUF];
    char *out; /* the batch's responses */
    size_t out_len, out_cap;
    uv_timer_t date_timer;
    char date[40]; /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    /* The common responses (HTTP/1.1, keep-alive), rebuilt with each new Date. */
    char plain[RESPONSE_MAX], json[RESPONSE_MAX];
    size_t plain_len, json_len;
} http_loop;

typedef struct http_conn {
    uv_tcp_t tcp; /* first: the handle pointer is the connection pointer */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    char *pending; /* the bytes of an incomplete request, or NULL */
    size_t pending_len;
    char *unsent;     /* responses the socket did not take yet, or NULL */
    bool close_after; /* close once everything is written */
} http_conn;

/* ---- Date and prebuilt responses -------------------------------------------------- */

static size_t format_response(const http_loop *hl, char *dst, size_t cap, int status,
                              const char *reason, const char *type, const char *body, bool head,
                              const char *connection)
{
    size_t blen = strlen(body);
    int n = snprintf(dst, cap,
                     "HTTP/1.1 %d %s\r\nServer: uv\r\nDate: %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n%s\r\n%s",
                     status, reason, hl->date, type, blen, connection, head ? "" : body);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

static void refresh_date(http_loop *hl)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(hl->date, sizeof hl->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    hl->plain_len = format_response(hl, hl->plain, sizeof hl->plain, 200, "OK", "text/plain",
                                    PLAIN_BODY, false, "");
    hl->json_len = format_response(hl, hl->json, sizeof hl->json, 200, "OK", "application/json",
                                   JSON_BODY, false, "");
}

static void on_date_timer(uv_timer_t *t)
{
    refresh_date(t->data);
}

static int loop_init(uvb_loop *lp)
{
    http_loop *hl = calloc(1, sizeof *hl);
    if (hl == NULL || (hl->out = malloc(OUT_INITIAL)) == NULL)
        return UV_ENOMEM;
    hl->out_cap = OUT_INITIAL;
    refresh_date(hl);
    lp->user = hl;
    int rc = uv_timer_init(&lp->loop, &hl->date_timer);
    if (rc == 0) {
        hl->date_timer.data = hl;
        rc = uv_timer_start(&hl->date_timer, on_date_timer, 1000, 1000);
    }
    return rc;
}

/* ---- output ----------------------------------------------------------------------- */

static bool out_append(http_loop *hl, const char *p, size_t n)
{
    if (hl->out_len + n > hl->out_cap) {
        size_t cap = hl->out_cap * 2 > hl->out_len + n ? hl->out_cap * 2 : hl->out_len + n;
        char *o = realloc(hl->out, cap);
        if (o == NULL)
            return false;
        hl->out = o;
        hl->out_cap = cap;
    }
    memcpy(hl->out + hl->out_len, p, n);
    hl->out_len += n;
    return true;
}

/* ---- one request ------------------------------------------------------------------- */

typedef struct request {
    bool head;        /* HEAD: headers only */
    bool get;         /* GET or HEAD */
    bool keep_alive;  /* after the version and the Connection header */
    bool has_body;    /* Content-Length != 0 or Transfer-Encoding */
    bool bad;         /* does not parse */
    const char *path; /* not NUL-terminated */
    size_t path_len;
} request;

static bool token_is(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* Does the comma-separated header value [v, end) contain the token (case-insensitive)? */
static bool value_has(const char *v, const char *end, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = v; p + tl <= end; p++)
        if (strncasecmp(p, token, tl) == 0)
            return true;
    return false;
}

/* Parses the head [p, end) (ends with the blank line's CRLF CRLF). */
static void parse_head(const char *p, const char *end, request *rq)
{
    memset(rq, 0, sizeof *rq);
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    const char *sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL || eol[1] != '\n') {
        rq->bad = true;
        return;
    }
    rq->head = token_is(p, (size_t)(sp1 - p), "HEAD");
    rq->get = rq->head || token_is(p, (size_t)(sp1 - p), "GET");
    rq->path = sp1 + 1;
    rq->path_len = (size_t)(sp2 - sp1 - 1);
    const char *ver = sp2 + 1;
    size_t vlen = (size_t)(eol - ver);
    if (token_is(ver, vlen, "HTTP/1.1"))
        rq->keep_alive = true;
    else if (!token_is(ver, vlen, "HTTP/1.0"))
        rq->bad = true;
    for (const char *line = eol + 2; line < end - 2;) {
        const char *le = memchr(line, '\r', (size_t)(end - line));
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (colon == NULL || le[1] != '\n') {
            rq->bad = true;
            return;
        }
        size_t nlen = (size_t)(colon - line);
        const char *v = colon + 1;
        if (nlen == 10 && strncasecmp(line, "connection", 10) == 0) {
            if (value_has(v, le, "close"))
                rq->keep_alive = false;
            else if (value_has(v, le, "keep-alive"))
                rq->keep_alive = true;
        } else if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0) {
            while (v < le && (*v == ' ' || *v == '\t'))
                v++;
            for (const char *q = v; q < le && *q != ' ' && *q != '\t'; q++)
                if (*q != '0')
                    rq->has_body = true; /* anything but 0: not supported here */
        } else if (nlen == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
            rq->has_body = true;
        }
        line = le + 2;
    }
}

/* Appends the response to rq; returns false when the connection must close after it. */
static bool respond(http_loop *hl, const request *rq)
{
    char tmp[RESPONSE_MAX];
    size_t n;
    bool keep = rq->keep_alive && !rq->bad && !rq->has_body && rq->get;
    bool plain =
        token_is(rq->path, rq->path_len, "/plaintext") || token_is(rq->path, rq->path_len, "/");
    bool json = token_is(rq->path, rq->path_len, "/json");
    const char *conn = keep ? "" : "Connection: close\r\n";
    if (rq->bad || rq->has_body)
        n = format_response(hl, tmp, sizeof tmp, 400, "Bad Request", "text/plain", "Bad Request",
                            false, conn);
    else if (!rq->get)
        n = format_response(hl, tmp, sizeof tmp, 405, "Method Not Allowed", "text/plain",
                            "Method Not Allowed", false, conn);
    else if (keep && !rq->head && plain)
        return out_append(hl, hl->plain, hl->plain_len); /* the hot path */
    else if (keep && !rq->head && json)
        return out_append(hl, hl->json, hl->json_len);
    else if (plain || json)
        n = format_response(hl, tmp, sizeof tmp, 200, "OK",
                            plain ? "text/plain" : "application/json",
                            plain ? PLAIN_BODY : JSON_BODY, rq->head, conn);
    else
        n = format_response(hl, tmp, sizeof tmp, 404, "Not Found", "text/plain", "Not Found",
                            rq->head, conn);
    return out_append(hl, tmp, n) && keep;
}

/* ---- connection ------------------------------------------------------------------- */

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void on_close(uv_handle_t *h)
{
    http_conn *c = (http_conn *)h;
    free(c->pending);
    free(c->unsent);
    free(c);
}

static void conn_close(http_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    conn_close(req->data);
}

/* Everything is written: close gracefully if asked to, else read on. */
static void written(http_conn *c)
{
    if (!c->close_after) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
            conn_close(c);
        return;
    }
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    http_loop *hl = uvb_loop_of(h)->user;
    (void)suggested;
    *buf = uv_buf_init(hl->rbuf, READ_BUF);
}

static void on_write(uv_write_t *req, int status)
{
    http_conn *c = req->data;
    free(c->unsent);
    c->unsent = NULL;
    if (status < 0)
        conn_close(c);
    else
        written(c);
}

/* Writes the batch in hl->out: uv_try_write, then uv_write for the rest. */
static void flush_batch(http_conn *c, http_loop *hl)
{
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    int n = 0;
    if (hl->out_len > 0) {
        uv_buf_t b = uv_buf_init(hl->out, (unsigned)hl->out_len);
        n = uv_try_write(s, &b, 1);
        if (n == UV_EAGAIN)
            n = 0;
        if (n < 0) {
            conn_close(c);
            return;
        }
    }
    size_t rest = hl->out_len - (size_t)n;
    hl->out_len = 0;
    if (rest == 0) {
        if (c->close_after) {
            uv_read_stop(s);
            written(c);
        }
        return;
    }
    uv_read_stop(s);
    if ((c->unsent = malloc(rest)) == NULL) {
        conn_close(c);
        return;
    }
    memcpy(c->unsent, hl->out + n, rest);
    uv_buf_t b = uv_buf_init(c->unsent, (unsigned)rest);
    c->wreq.data = c;
    if (uv_write(&c->wreq, s, &b, 1, on_write) != 0)
        conn_close(c);
}

/*
 * Answers every complete request in [p, p + len); returns how many bytes were
 * consumed (the rest is an incomplete request). Stops after a request that
 * closes the connection: nothing pipelined behind it is processed.
 */
static size_t serve(http_conn *c, http_loop *hl, const char *p, size_t len)
{
    size_t used = 0;
    while (used < len && !c->close_after) {
        const char *start = p + used;
        const char *end = memmem(start, len - used, "\r\n\r\n", 4);
        if (end == NULL)
            break;
        end += 4;
        request rq;
        parse_head(start, end, &rq);
        if (!respond(hl, &rq))
            c->close_after = true;
        used = (size_t)(end - p);
    }
    return used;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    http_conn *c = (http_conn *)s;
    http_loop *hl = uvb_loop_of((uv_handle_t *)s)->user;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    const char *data = buf->base;
    size_t len = (size_t)nread;
    if (c->pending != NULL) { /* the continuation of a split request */
        char *p = realloc(c->pending, c->pending_len + len);
        if (p == NULL) {
            conn_close(c);
            return;
        }
        memcpy(p + c->pending_len, data, len);
        c->pending = p;
        c->pending_len += len;
        data = p;
        len = c->pending_len;
    }
    size_t used = serve(c, hl, data, len);
    size_t rest = len - used;
    if (rest > MAX_PENDING && !c->close_after) {
        char tmp[RESPONSE_MAX];
        size_t n = format_response(hl, tmp, sizeof tmp, 431, "Request Header Fields Too Large",
                                   "text/plain", "Too Large", false, "Connection: close\r\n");
        out_append(hl, tmp, n);
        c->close_after = true;
    }
    if (c->close_after)
        rest = 0; /* nothing behind a closing request is processed */
    if (rest > 0 && data != c->pending) {
        c->pending = malloc(rest);
        if (c->pending == NULL) {
            conn_close(c);
            return;
        }
        memcpy(c->pending, data + used, rest);
    } else if (rest > 0) {
        memmove(c->pending, c->pending + used, rest);
    } else {
        free(c->pending);
        c->pending = NULL;
    }
    c->pending_len = rest;
    flush_batch(c, hl);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    http_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    if (uv_tcp_init(server->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

int main(int argc, char **argv)
{
    static const uvb_server srv = {"uv_http_server", USAGE, on_connection, loop_init};
    return uvb_main(&srv, argc, argv);
}
