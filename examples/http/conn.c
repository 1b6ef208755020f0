/*
 * One HTTP/1.1 connection as one task (see conn.h, docs/http.md).
 *
 * Memory. The task state (http_conn) holds the stream, one timer, the
 * registry links and three pointers; no buffer. Input is read into a
 * per-thread scratch buffer and parsed there; only when a request is left
 * incomplete are its bytes (and the parser state) moved to a heap block
 * (c->in), which is freed as soon as the connection is idle again.
 * Responses are formatted into a per-thread scratch buffer and written at
 * once; only what the socket does not take is copied to c->out. So an idle
 * keep-alive connection owns no buffer, and the hot path (a whole request
 * arrives, its response fits the socket) allocates nothing.
 *
 * Batching. Everything one read returned is parsed before anything is
 * written: the responses of pipelined requests accumulate in the scratch
 * buffer and go out in one write. A short read gives the socket's
 * readiness back (src/net/tcp.c), so a request costs one read and one
 * write, plus the shared epoll_wait.
 *
 * Steps (c->step):
 *   ST_READ     wait for input and read it (into scratch, or after c->in's bytes)
 *   ST_PROCESS  parse and answer the requests buffered in c->in
 *   ST_FLUSH    write c->out, then go to c->after
 *   ST_FILE     sendfile the static file c->file, then ST_PROCESS
 *   ST_LINGER   after a final response: shut down writing, drain input
 *               briefly (bounded time and bytes) so the peer sees the
 *               response and not a reset, then close
 *   ST_DONE     finished: the task returns and its drop closes everything
 * Every pending step also waits on the connection's timer (c->deadline):
 * idle keep-alive, header timeout (408), stalled writes, the linger bound.
 * The timer is re-armed lazily: moving the deadline later costs nothing
 * until the old deadline fires.
 */
#include "conn.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "response.h"
#include "sendfile.h"
#include "static_files.h"

http_config g_http_config = {
    .limits = HTTP_LIMITS_DEFAULT,
    .header_timeout_ms = 10000,
    .idle_timeout_ms = 5000,
    .linger_ms = 1000,
    .max_conns = 10000,
    .body_timeout_ms = 60000,
    .body_min_rate = 1024,
    .root_fd = -1,
};

/* ------------------------------------------------------------------------ */
/* Buffers                                                                   */

#define OUT_CAP          65536
#define OUT_HIGH         (OUT_CAP - 16384) /* stop answering and write once past this */
#define LINGER_MAX_BYTES (1u << 20)
#define SENDFILE_CHUNK   (1u << 20)

enum phase { PH_HEAD = 0, PH_BODY_CL, PH_BODY_CHUNKED };

enum route {
    R_NONE = 0,
    R_PLAIN,
    R_JSON,
    R_ECHO,
    R_STATIC,
    R_STATUS,  /* a fixed status answer (404, 405...) with a short text body */
    R_METRICS, /* --metrics: the runtime's metrics in the Prometheus text format */
};

/* Input: a request being parsed and the bytes not yet processed. */
typedef struct http_in {
    http_parser parser;   /* the head of the request at data[start] */
    http_chunked chunked; /* PH_BODY_CHUNKED */
    uint64_t body_left;   /* PH_BODY_CL */
    uint64_t body_start;  /* when the body's head was complete (runtime clock, ms) */
    uint32_t start, len;  /* unprocessed bytes: data[start, len) */
    uint8_t phase;        /* enum phase */
    uint8_t route;        /* of the request whose body is being read */
    uint8_t keep;         /* its keep-alive decision */
    uint8_t head_only;    /* it is a HEAD request */
    uint8_t allow;        /* 405: 1 = GET, HEAD; 2 = POST */
    uint8_t echo_pending; /* a chunked echo whose 200 head is not in the output yet */
    uint16_t status;
    uint32_t echo_mark; /* 1 + where that head starts in this batch's output; 0: written */
    uint8_t data[];
} http_in;

typedef struct out_buf {
    uint8_t *p;
    size_t len;
} out_buf;

static size_t g_in_cap; /* data bytes of an http_in: the longest head + slack */

static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;

typedef struct scratch {
    uint8_t out[OUT_CAP];
    http_in in; /* followed by g_in_cap bytes */
} scratch;

static void scratch_free(void *p)
{
    free(p);
}

static void scratch_key_init(void)
{
    (void)pthread_key_create(&g_scratch_key, scratch_free);
}

/* The calling thread's scratch (allocated on its first use), or NULL. */
static scratch *scratch_get(void)
{
    pthread_once(&g_scratch_once, scratch_key_init);
    scratch *s = pthread_getspecific(g_scratch_key);
    if (s == NULL) {
        s = malloc(sizeof *s + g_in_cap);
        if (s != NULL && pthread_setspecific(g_scratch_key, s) != 0) {
            free(s);
            s = NULL;
        }
    }
    return s;
}

void http_scratch_release(void)
{
    pthread_once(&g_scratch_once, scratch_key_init);
    free(pthread_getspecific(g_scratch_key));
    pthread_setspecific(g_scratch_key, NULL);
}

static void in_reset(http_in *in)
{
    memset(in, 0, sizeof *in);
}

/* ------------------------------------------------------------------------ */
/* Connection state and registry                                             */

enum step { ST_READ = 0, ST_PROCESS, ST_FLUSH, ST_FILE, ST_LINGER, ST_DONE };

/* Response bytes the socket did not take yet (ST_FLUSH): on the heap, with their progress. */
typedef struct http_out {
    uint32_t len, off;
    uint8_t data[];
} http_out;

/* A static file being sent (ST_FILE): on the heap while it is, so idle connections do not pay. */
typedef struct http_file {
    int fd;
    uint64_t off, left;
    const char *type; /* its Content-Type (http_static_content_type) */
} http_file;

typedef struct http_conn http_conn;
struct http_conn {
    asyncio_tcp_stream stream;
    asyncio_sleep timer;
    asyncio_cancelled stop; /* wakes the task when the server stops (from the first poll) */
    http_in *in;            /* heap: an incomplete request, or NULL */
    http_out *out;          /* heap: response bytes the socket did not take yet, or NULL */
    http_file *file;        /* ST_FILE: the static file, or NULL */
    uint64_t deadline;      /* the current step's time limit (runtime clock, ms) */
    uint64_t armed;         /* the deadline the timer is set to (UINT64_MAX: not set) */
    uint32_t drained;
    uint8_t step, after; /* after: ST_FLUSH's next step */
    uint8_t file_then;   /* ST_FILE's next step */
    bool registered : 1, shut : 1; /* one byte: the struct ends at 184 bytes, not 192 */
    /*
     * Field order matters for memory: every 16 bytes here are one malloc
     * granule of the task block (header + this) per idle connection
     * (docs/http.md, "Memory"). 184 bytes: the stop future (40 B) replaced
     * the old registry links and waker (32 B); a static file's state and
     * unsent output's progress are on the heap while there are any
     * (http_file, http_out), not here.
     */
};

static _Atomic uint32_t g_live;
/* The server's stop token (http_conn_start's; the same one for every connection). */
static asyncio_cancel_token *_Atomic g_stop;

/* True once the server is stopping (graceful shutdown: answer with Connection: close). */
static bool stopping(void)
{
    return asyncio_cancel_token_is_cancelled(atomic_load_explicit(&g_stop, memory_order_relaxed));
}

uint32_t http_conn_live(void)
{
    return atomic_load(&g_live);
}

static void conn_register(http_conn *c, asyncio_context *cx)
{
    /*
     * The timer and the stop future are initialised here, in the task's
     * own block, not in the spawner's copy: once polled they are linked
     * into the timer wheel / the token, so they must not move
     * (asyncio_spawn copies the initial state).
     */
    asyncio_sleep_init_until(&c->timer, UINT64_MAX);
    c->armed = UINT64_MAX;
    asyncio_cancelled_init(&c->stop, atomic_load_explicit(&g_stop, memory_order_relaxed));
    (void)asyncio_cancelled_poll(&c->stop, cx); /* registers the task's waker (0 if stopping) */
    c->registered = true;
}

static void file_close(http_conn *c)
{
    if (c->file == NULL)
        return;
    close(c->file->fd);
    free(c->file);
    c->file = NULL;
}

static void conn_drop(void *state)
{
    http_conn *c = state;
    if (c->registered) { /* initialised by the first poll */
        asyncio_cancelled_drop(&c->stop);
        asyncio_sleep_drop(&c->timer);
    }
    file_close(c);
    free(c->in);
    free(c->out);
    asyncio_tcp_stream_close(&c->stream);
    atomic_fetch_sub(&g_live, 1);
}

/*
 * The runtime clock, read at most once per connection poll: a poll that
 * answers 16 pipelined requests sets 16 deadlines, and each clock read
 * costs a vDSO call and the time driver's lock. Within one poll (micro-
 * seconds) the time does not move in any way that matters for timeouts of
 * seconds. conn_poll invalidates it on entry.
 */
static _Thread_local uint64_t t_now;
static _Thread_local bool t_now_valid;

static uint64_t now_ms(void)
{
    if (!t_now_valid) {
        t_now = asyncio_time_now_ms();
        t_now_valid = true;
    }
    return t_now;
}

/* ------------------------------------------------------------------------ */
/* Responses                                                                 */

static const char k_hello[] = "Hello, World!";
static const char k_json[] = "{\"message\":\"Hello, World!\"}";

static void out_put(out_buf *o, const void *p, size_t n)
{
    memcpy(o->p + o->len, p, n);
    o->len += n;
}

static http_conn_header conn_header(const http_in *in, const http_request *r)
{
    if (!in->keep)
        return HTTP_CONN_CLOSE;
    return r->version_minor == 0 ? HTTP_CONN_KEEPALIVE : HTTP_CONN_NONE;
}

/* A status answer with a one-line text body ("Not Found\n"). */
static void out_status(out_buf *o, int status, http_conn_header ch, bool head_only,
                       const char *extra)
{
    const char *reason = http_reason(status);
    size_t n = strlen(reason);
    o->len += http_response_head(o->p + o->len, status, "text/plain", n + 1, ch, extra);
    if (!head_only) {
        out_put(o, reason, n);
        out_put(o, "\n", 1);
    }
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

/*
 * The time limit while a request body arrives: the earliest of
 *   inactivity   header_timeout_ms after now (the last bytes);
 *   whole body   body_timeout_ms after the head was complete;
 *   minimum rate body_start + a grace of header_timeout_ms + the time the
 *                body bytes consumed so far earn at body_min_rate B/s
 *                (mod_reqtimeout's MinRate: each body_min_rate bytes buy 1 s).
 * Chunked bodies are credited with their data bytes only, not the framing.
 */
static uint64_t body_deadline(const http_in *in)
{
    const http_config *g = &g_http_config;
    uint64_t d = now_ms() + g->header_timeout_ms;
    uint64_t whole = in->body_start + g->body_timeout_ms;
    if (whole < d)
        d = whole;
    if (g->body_min_rate > 0) {
        const http_request *r = &in->parser.req;
        uint64_t got =
            in->phase == PH_BODY_CHUNKED ? in->chunked.total : r->content_length - in->body_left;
        uint64_t rate = in->body_start + g->header_timeout_ms + got * 1000 / g->body_min_rate;
        if (rate < d)
            d = rate;
    }
    return d;
}

enum act { ACT_INPUT, ACT_FLUSH, ACT_FILE, ACT_CLOSE, ACT_NEXT };

static bool path_is(const uint8_t *p, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n == m && memcmp(p, lit, m) == 0;
}

/* Chooses the route of a complete head; may open the static file. */

/* The length of the target's path: up to its first '?' or '#', 8 bytes at a time. */
static size_t path_len(const uint8_t *t, size_t tl)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t n = 0;
    for (; n + 8 <= tl; n += 8) {
        uint64_t w;
        memcpy(&w, t + n, sizeof w);
        uint64_t q = w ^ (ones * '?'), h = w ^ (ones * '#');
        if ((((q - ones) & ~q) | ((h - ones) & ~h)) & highs)
            break; /* one of them is in this word: find it byte by byte */
    }
    while (n < tl && t[n] != '?' && t[n] != '#')
        n++;
    return n;
}

static void route_request(http_conn *c, http_in *in, const uint8_t *msg)
{
    const http_request *r = &in->parser.req;
    const uint8_t *t = msg + r->target_off;
    size_t tl = r->target_len, n;
    if (tl > 7 && (memcmp(t, "http://", 7) == 0 || memcmp(t, "https://", 8) == 0)) {
        /* absolute-form (RFC 9112 3.2.2): route on its path; "http://h" means "/" */
        size_t i = t[4] == ':' ? 7 : 8;
        while (i < tl && t[i] != '/' && t[i] != '?')
            i++;
        if (i == tl || t[i] == '?') {
            t = (const uint8_t *)"/";
            tl = 1;
        } else {
            t += i;
            tl -= i;
        }
    }
    n = path_len(t, tl);
    bool get = r->method == HTTP_M_GET || r->method == HTTP_M_HEAD;
    in->status = 200;
    if (n == 0 || t[0] != '/') {
        in->route = R_STATUS;
        in->status = 400;
        in->keep = 0;
    } else if (path_is(t, n, "/") || path_is(t, n, "/plaintext")) {
        in->route = get ? R_PLAIN : R_STATUS;
    } else if (path_is(t, n, "/json")) {
        in->route = get ? R_JSON : R_STATUS;
    } else if (path_is(t, n, "/echo")) {
        in->route = r->method == HTTP_M_POST ? R_ECHO : R_STATUS;
    } else if (g_http_config.metrics && path_is(t, n, "/metrics")) {
        in->route = get ? R_METRICS : R_STATUS;
    } else if (n >= 8 && memcmp(t, "/static/", 8) == 0) {
        in->route = get ? R_STATIC : R_STATUS;
        if (get) {
            int fd = -1;
            uint64_t size = 0;
            int st = http_static_open(g_http_config.root_fd, t + 8, n - 8, &fd, &size);
            if (st == 200 && (c->file = malloc(sizeof *c->file)) == NULL) {
                close(fd);
                st = 503; /* as when out of descriptors: retry later */
            }
            if (st == 200) {
                c->file->fd = fd;
                c->file->off = 0;
                c->file->left = size;
                c->file->type = http_static_content_type(t + 8, n - 8);
            } else {
                in->route = R_STATUS;
                in->status = (uint16_t)st;
            }
        }
    } else {
        in->route = R_STATUS;
        in->status = 404;
    }
    if (in->status == 400)
        in->keep = 0; /* a malformed target: do not trust the rest */
    if (in->route == R_STATUS && in->status == 200) {
        in->status = 405;
        in->allow = path_is(t, n, "/echo") ? 2 : 1;
    }
}

/*
 * GET /metrics (--metrics): asyncio_runtime_metrics_write_prometheus() into
 * a memory stream, then head and body into the output batch; 503 when it
 * does not fit the room left (a runtime with very many workers).
 */
static void out_metrics(out_buf *o, http_conn_header ch, bool head_only)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int rc = f != NULL ? asyncio_runtime_metrics_write_prometheus(asyncio_runtime_current(), f)
                       : ASYNCIO_ENOMEM;
    if (f != NULL && fclose(f) != 0 && rc == 0)
        rc = ASYNCIO_EIO;
    if (rc < 0 || o->len + HTTP_HEAD_MAX + len + 64 > OUT_CAP) {
        out_status(o, 503, ch, head_only, "Retry-After: 1\r\n");
    } else {
        o->len +=
            http_response_head(o->p + o->len, 200, "text/plain; version=0.0.4", len, ch, NULL);
        if (!head_only)
            out_put(o, text, len);
    }
    free(text);
}

/* Writes the answer of a request whose body (if any) was consumed. */
static int finish_request(http_conn *c, http_in *in, out_buf *o)
{
    const http_request *r = &in->parser.req;
    if (stopping())
        in->keep = 0; /* a body that ended after the stop began: the answer says close */
    http_conn_header ch = conn_header(in, r);
    bool ho = in->head_only;
    switch (in->route) {
    case R_PLAIN:
        o->len +=
            http_response_head(o->p + o->len, 200, "text/plain", sizeof k_hello - 1, ch, NULL);
        if (!ho)
            out_put(o, k_hello, sizeof k_hello - 1);
        break;
    case R_JSON:
        o->len +=
            http_response_head(o->p + o->len, 200, "application/json", sizeof k_json - 1, ch, NULL);
        if (!ho)
            out_put(o, k_json, sizeof k_json - 1);
        break;
    case R_ECHO:
        if (r->flags & HTTP_F_CHUNKED)
            out_put(o, "0\r\n\r\n", 5);
        break;
    case R_METRICS:
        out_metrics(o, ch, ho);
        break;
    case R_STATIC:
        o->len += http_response_head(o->p + o->len, 200, c->file->type, c->file->left, ch, NULL);
        if (ho || c->file->left == 0)
            file_close(c);
        break;
    default: {
        /* 405 says what is allowed; 503 (out of fds for a static file) when to retry */
        const char *extra = in->status == 503   ? "Retry-After: 1\r\n"
                            : in->status != 405 ? NULL
                            : in->allow == 2    ? "Allow: POST\r\n"
                                                : "Allow: GET, HEAD\r\n";
        out_status(o, in->status, ch, ho, extra);
        break;
    }
    }
    bool keep = in->keep;
    in->phase = PH_HEAD;
    http_parser_reset(&in->parser);
    if (!keep)
        return c->file != NULL ? ACT_FILE : ACT_CLOSE;
    return c->file != NULL ? ACT_FILE : ACT_NEXT;
}

/*
 * The echo's 200 head. A chunked body can still turn out to be too large or
 * malformed, so its head is put off until the first body bytes are echoed
 * (or the body ends): a body rejected before then gets its error status
 * instead. echo_mark remembers where the head went, so that while this
 * batch's output is unwritten the error can still replace it.
 */
static void echo_head(http_in *in, out_buf *o)
{
    const http_request *r = &in->parser.req;
    bool chunked = (r->flags & HTTP_F_CHUNKED) != 0;
    in->echo_pending = 0;
    in->echo_mark = (uint32_t)o->len + 1;
    o->len += http_response_head(o->p + o->len, 200, "application/octet-stream",
                                 chunked ? HTTP_LEN_CHUNKED : r->content_length, conn_header(in, r),
                                 NULL);
}

/*
 * A chunked body was rejected with `status`. If nothing of the echo's answer
 * has been written yet, the client gets the status; otherwise the streamed
 * 200 is cut short (no last chunk: the client sees an incomplete message).
 * Either way the connection ends with a lingering close, never a reset.
 */
static int body_rejected(http_in *in, out_buf *o, int status)
{
    if (in->route == R_ECHO && !in->echo_pending) {
        if (in->echo_mark == 0)
            return ACT_CLOSE;
        o->len = in->echo_mark - 1; /* still in this batch: take it back */
    }
    out_status(o, status, HTTP_CONN_CLOSE, false, NULL);
    return ACT_CLOSE;
}

/* A complete head: decide, answer what can be answered now, set up the body. */
static int start_request(http_conn *c, http_in *in, out_buf *o)
{
    const http_request *r = &in->parser.req;
    const uint8_t *msg = in->data + in->start;
    in->keep = r->version_minor == 1
                   ? !(r->flags & HTTP_F_CONN_CLOSE)
                   : (r->flags & HTTP_F_CONN_KEEP) && !(r->flags & HTTP_F_CONN_CLOSE);
    if (stopping())
        in->keep = 0;
    in->head_only = r->method == HTTP_M_HEAD;
    route_request(c, in, msg);
    in->start += r->head_len;

    bool chunked = (r->flags & HTTP_F_CHUNKED) != 0;
    bool has_body = chunked || r->content_length > 0;
    in->phase = chunked ? PH_BODY_CHUNKED : has_body ? PH_BODY_CL : PH_HEAD;
    in->body_left = r->content_length;
    http_chunked_reset(&in->chunked);
    if (has_body) {
        if ((r->flags & HTTP_F_CONTINUE) && r->version_minor == 1 && in->start == in->len)
            out_put(o, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        in->body_start = now_ms();
        c->deadline = body_deadline(in);
    }
    if (in->route == R_ECHO) {
        if (chunked)
            in->echo_pending = 1; /* see echo_head */
        else
            echo_head(in, o); /* a Content-Length within the limit: nothing can fail */
    }
    if (in->phase == PH_HEAD)
        return finish_request(c, in, o);
    return ACT_NEXT;
}

/* Room left for echoed body bytes in the output. */
static size_t out_room(const out_buf *o)
{
    return o->len + 64 < OUT_CAP ? OUT_CAP - o->len - 64 : 0;
}

static int body_cl(http_conn *c, http_in *in, out_buf *o)
{
    size_t avail = in->len - in->start;
    size_t n = avail;
    if ((uint64_t)n > in->body_left)
        n = (size_t)in->body_left;
    if (in->route == R_ECHO) {
        if (n > out_room(o))
            n = out_room(o);
        out_put(o, in->data + in->start, n);
    }
    in->start += (uint32_t)n;
    in->body_left -= n;
    if (in->body_left > 0)
        return n == avail ? ACT_INPUT : ACT_FLUSH;
    return finish_request(c, in, o);
}

static int body_chunked(http_conn *c, http_in *in, out_buf *o)
{
    bool echo = in->route == R_ECHO;
    for (;;) {
        size_t avail = in->len - in->start;
        if (avail == 0)
            return ACT_INPUT;
        size_t feed = avail;
        if (echo) {
            size_t room = out_room(o), reserve = in->echo_pending ? 32 + HTTP_HEAD_MAX : 32;
            if (room <= reserve)
                return ACT_FLUSH;
            if (feed > room - reserve)
                feed = room - reserve;
        }
        size_t used, off, dlen;
        int rc = http_chunked_decode(&in->chunked, in->data + in->start, feed,
                                     g_http_config.limits.max_body, &used, &off, &dlen);
        if (echo && in->echo_pending && (rc == HTTP_CHUNK_DATA || rc == HTTP_CHUNK_DONE))
            echo_head(in, o);
        if (rc == HTTP_CHUNK_DATA && echo) {
            char hdr[24];
            int hn = snprintf(hdr, sizeof hdr, "%zx\r\n", dlen);
            out_put(o, hdr, (size_t)hn);
            out_put(o, in->data + in->start + off, dlen);
            out_put(o, "\r\n", 2);
        }
        if (rc >= 400)
            return body_rejected(in, o, rc);
        in->start += (uint32_t)used;
        if (rc == HTTP_CHUNK_DONE)
            return finish_request(c, in, o);
    }
}

/*
 * Answers every request buffered in `in`, appending to `o`. Returns what
 * to do next: read more (ACT_INPUT), write and come back (ACT_FLUSH), send
 * the static file (ACT_FILE), or write and close (ACT_CLOSE).
 */
static int process(http_conn *c, http_in *in, out_buf *o)
{
    const http_limits *lim = &g_http_config.limits;
    for (;;) {
        int act;
        if (o->len > OUT_HIGH)
            return ACT_FLUSH;
        switch (in->phase) {
        case PH_HEAD: {
            if (in->start == in->len)
                return ACT_INPUT;
            if (in->parser.pos == 0)
                c->deadline = now_ms() + g_http_config.header_timeout_ms;
            int rc = http_parse_head(&in->parser, in->data + in->start, in->len - in->start, lim);
            if (rc == HTTP_PARSE_MORE)
                return ACT_INPUT;
            if (rc != HTTP_PARSE_DONE) {
                out_status(o, rc, HTTP_CONN_CLOSE, false, NULL);
                return ACT_CLOSE;
            }
            act = start_request(c, in, o);
            break;
        }
        case PH_BODY_CL:
            act = body_cl(c, in, o);
            break;
        default:
            act = body_chunked(c, in, o);
            break;
        }
        if (act != ACT_NEXT)
            return act;
    }
}

/* ------------------------------------------------------------------------ */
/* Steps                                                                     */

/* Writes o now, as far as the socket takes it; keeps the rest in c->out. */
static int write_now(http_conn *c, asyncio_context *cx, const out_buf *o)
{
    size_t off = 0;
    while (off < o->len) {
        size_t n;
        int rc = asyncio_tcp_stream_poll_write(&c->stream, cx, o->p + off, o->len - off, &n);
        if (rc == ASYNCIO_PENDING)
            break;
        if (rc < 0)
            return rc;
        off += n;
    }
    if (off < o->len) {
        c->out = malloc(sizeof *c->out + (o->len - off));
        if (c->out == NULL)
            return ASYNCIO_ENOMEM;
        memcpy(c->out->data, o->p + off, o->len - off);
        c->out->len = (uint32_t)(o->len - off);
        c->out->off = 0;
    }
    return 0;
}

/* Keeps what is left of `in` (the scratch, or c->in) for later: in c->in, or nowhere. */
static int stash_input(http_conn *c, http_in *in)
{
    bool empty = in->start == in->len && in->phase == PH_HEAD && in->parser.pos == 0;
    if (in == c->in) {
        if (empty) {
            free(c->in);
            c->in = NULL;
        } else if (in->start == in->len) {
            in->start = in->len = 0;
        }
        return 0;
    }
    if (empty)
        return 0;
    http_in *h = malloc(sizeof *h + g_in_cap);
    if (h == NULL)
        return ASYNCIO_ENOMEM;
    *h = *in;
    h->len = in->len - in->start;
    h->start = 0;
    memcpy(h->data, in->data + in->start, h->len);
    c->in = h;
    return 0;
}

/* Enters a step and sets its time limit (a partial request keeps its own). */
static void go_to(http_conn *c, uint8_t step)
{
    c->step = step;
    switch (step) {
    case ST_READ:
        if (c->in == NULL)
            c->deadline = now_ms() + g_http_config.idle_timeout_ms;
        else if (c->in->phase != PH_HEAD)
            c->deadline = body_deadline(c->in); /* a head keeps its own deadline */
        break;
    case ST_FLUSH:
    case ST_FILE:
        c->deadline = now_ms() + g_http_config.idle_timeout_ms;
        break;
    case ST_LINGER:
        c->deadline = now_ms() + g_http_config.linger_ms;
        break;
    default:
        break;
    }
}

/* Processes `in`, writes the answers, and picks the next step. */
static int run_process(http_conn *c, asyncio_context *cx, http_in *in, scratch *s)
{
    out_buf o = {s->out, 0};
    int act = process(c, in, &o);
    in->echo_mark = 0; /* this batch is written below: nothing in it can be taken back */
    if (act == ACT_CLOSE) {
        in->start = in->len; /* nothing after a final answer is processed */
        in->phase = PH_HEAD;
        http_parser_reset(&in->parser);
    }
    c->file_then = in->keep ? ST_PROCESS : ST_LINGER; /* read before stash may free in */
    if (stash_input(c, in) < 0 || write_now(c, cx, &o) < 0) {
        c->step = ST_DONE;
        return 0;
    }
    uint8_t next = act == ACT_INPUT   ? ST_READ
                   : act == ACT_FLUSH ? ST_PROCESS
                   : act == ACT_FILE  ? ST_FILE
                                      : ST_LINGER;
    if (c->out != NULL) {
        c->after = next;
        go_to(c, ST_FLUSH);
    } else {
        go_to(c, next);
    }
    return 0;
}

static int step_read(http_conn *c, asyncio_context *cx)
{
    scratch *s = scratch_get();
    if (s == NULL)
        return ASYNCIO_ENOMEM;
    http_in *in = c->in;
    if (in == NULL) {
        in = &s->in;
        in_reset(in);
    } else if (in->len == g_in_cap && in->start > 0) {
        memmove(in->data, in->data + in->start, in->len - in->start);
        in->len -= in->start;
        in->start = 0;
    }
    if (in->len == g_in_cap)
        return ASYNCIO_EMSGSIZE; /* cannot happen: the limits end any head before */
    size_t n;
    int rc =
        asyncio_tcp_stream_poll_read(&c->stream, cx, in->data + in->len, g_in_cap - in->len, &n);
    if (rc == ASYNCIO_PENDING && in->phase == PH_HEAD && stopping()) {
        /*
         * Stopping, and no request head is complete: nothing is owed to this
         * client, so close now (a partial head dies with it) instead of
         * waiting out its header timeout. Reading first, until the socket is
         * empty, means a request that had already arrived is answered (with
         * Connection: close) rather than reset by closing over unread input.
         */
        c->step = ST_DONE;
        return 0;
    }
    if (rc != 0)
        return rc;
    if (n == 0) {
        c->step = ST_DONE; /* the peer is gone: a partial request dies with it */
        return 0;
    }
    in->len += (uint32_t)n;
    return run_process(c, cx, in, s); /* a body still arriving: go_to sets its deadline */
}

static int step_process(http_conn *c, asyncio_context *cx)
{
    if (c->in == NULL) {
        go_to(c, ST_READ);
        return 0;
    }
    scratch *s = scratch_get();
    if (s == NULL)
        return ASYNCIO_ENOMEM;
    return run_process(c, cx, c->in, s);
}

static int step_flush(http_conn *c, asyncio_context *cx)
{
    http_out *o = c->out;
    while (o->off < o->len) {
        size_t n;
        int rc =
            asyncio_tcp_stream_poll_write(&c->stream, cx, o->data + o->off, o->len - o->off, &n);
        if (rc != 0)
            return rc;
        o->off += (uint32_t)n;
        c->deadline = now_ms() + g_http_config.idle_timeout_ms;
    }
    free(o);
    c->out = NULL;
    go_to(c, c->after);
    return 0;
}

static int sendfile_op(void *arg, int fd, size_t *n_out)
{
    http_conn *c = arg;
    http_file *f = c->file;
    size_t want = f->left < SENDFILE_CHUNK ? (size_t)f->left : SENDFILE_CHUNK;
    for (;;) {
        off_t off = (off_t)f->off;
        ssize_t r = http_sendfile(fd, f->fd, &off, want);
        if (r >= 0) {
            *n_out = (size_t)r;
            return 0;
        }
        if (errno == EINTR)
            continue;
        return errno == EAGAIN ? ASYNCIO_EAGAIN : -errno;
    }
}

static int step_file(http_conn *c, asyncio_context *cx)
{
    asyncio_writer w = asyncio_tcp_stream_writer(&c->stream);
    while (c->file->left > 0) {
        size_t n;
        int rc = w.vtable->poll_raw_io(w.self, cx, sendfile_op, c, &n);
        if (rc != 0)
            return rc;
        if (n == 0)
            return ASYNCIO_EIO; /* the file shrank: the promised length cannot be kept */
        c->file->off += n;
        c->file->left -= n;
        c->deadline = now_ms() + g_http_config.idle_timeout_ms;
    }
    file_close(c);
    go_to(c, c->file_then);
    return 0;
}

static int step_linger(http_conn *c, asyncio_context *cx)
{
    if (!c->shut) {
        c->shut = true;
        if (asyncio_tcp_stream_poll_shutdown(&c->stream, cx) < 0) {
            c->step = ST_DONE;
            return 0;
        }
    }
    scratch *s = scratch_get();
    if (s == NULL)
        return ASYNCIO_ENOMEM;
    for (;;) {
        size_t n;
        int rc = asyncio_tcp_stream_poll_read(&c->stream, cx, s->out, OUT_CAP, &n);
        if (rc == ASYNCIO_PENDING)
            return rc;
        c->drained += (uint32_t)n;
        if (rc < 0 || n == 0 || c->drained > LINGER_MAX_BYTES) {
            c->step = ST_DONE;
            return 0;
        }
    }
}

/*
 * The step's time limit passed. A request still arriving (its head, or its
 * body: inactivity, whole-body deadline or minimum rate) gets 408 and a
 * lingering close; an echo whose 200 already went out is cut, also with a
 * lingering close. Anything else (idle, stalled writer, linger over) ends.
 */
static void on_timeout(http_conn *c, asyncio_context *cx)
{
    if (c->step != ST_READ || c->in == NULL) {
        c->step = ST_DONE;
        return;
    }
    if (c->in->route == R_ECHO && c->in->phase != PH_HEAD && !c->in->echo_pending) {
        free(c->in);
        c->in = NULL;
        go_to(c, ST_LINGER);
        return;
    }
    scratch *s = scratch_get();
    free(c->in);
    c->in = NULL;
    if (s == NULL) {
        c->step = ST_DONE;
        return;
    }
    out_buf o = {s->out, 0};
    out_status(&o, 408, HTTP_CONN_CLOSE, false, NULL);
    if (write_now(c, cx, &o) < 0) {
        c->step = ST_DONE;
        return;
    }
    c->after = ST_LINGER;
    go_to(c, c->out != NULL ? ST_FLUSH : ST_LINGER);
}

/* Waits on the timer; returns ASYNCIO_PENDING, or 0 after handling a timeout. */
static int wait_timer(http_conn *c, asyncio_context *cx)
{
    for (;;) {
        if (c->armed > c->deadline) {
            asyncio_sleep_reset(&c->timer, c->deadline);
            c->armed = c->deadline;
        }
        int rc = asyncio_sleep_poll(&c->timer, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc < 0) {
            c->step = ST_DONE;
            return 0;
        }
        c->armed = UINT64_MAX; /* fired: set again before the next wait */
        if (now_ms() < c->deadline)
            continue;
        on_timeout(c, cx);
        return 0;
    }
}

static int conn_poll(void *state, asyncio_context *cx, void *output)
{
    http_conn *c = state;
    (void)output;
    t_now_valid = false; /* a new poll: read the clock again when needed */
    if (!c->registered) {
        conn_register(c, cx);
        c->deadline = now_ms() + g_http_config.idle_timeout_ms;
    }
    for (;;) {
        int rc;
        switch (c->step) {
        case ST_READ:
            rc = step_read(c, cx);
            break;
        case ST_PROCESS:
            rc = step_process(c, cx);
            break;
        case ST_FLUSH:
            rc = step_flush(c, cx);
            break;
        case ST_FILE:
            rc = step_file(c, cx);
            break;
        case ST_LINGER:
            rc = step_linger(c, cx);
            break;
        default:
            return 0;
        }
        if (rc == ASYNCIO_PENDING) {
            rc = wait_timer(c, cx);
            if (rc == ASYNCIO_PENDING)
                return rc;
        } else if (rc < 0) {
            return 0; /* reset by the peer, out of memory...: drop closes */
        }
    }
}

static const asyncio_task_vtable g_conn_vt = {conn_poll, conn_drop, NULL, sizeof(http_conn), 0};
_Static_assert(sizeof(void *) != 8 || sizeof(http_conn) <= 184,
               "http_conn grew: idle connections pay for it (docs/http.md, \"Memory\")");

/* ------------------------------------------------------------------------ */
/* Accepting                                                                 */

static const char k_busy[] = "HTTP/1.1 503 Service Unavailable\r\nServer: libasyncio\r\n"
                             "Content-Type: text/plain\r\nContent-Length: 20\r\n"
                             "Connection: close\r\n\r\nService Unavailable\n";

int http_conn_start(asyncio_tcp_stream *stream, asyncio_join_set *conns, asyncio_cancel_token *stop)
{
    atomic_store_explicit(&g_stop, stop, memory_order_relaxed); /* the same token every time */
    if (g_in_cap == 0) {
        const http_limits *l = &g_http_config.limits;
        g_in_cap = 2 * (size_t)l->max_line + l->max_head + 64;
        if (g_in_cap < 16384)
            g_in_cap = 16384;
    }
    if (atomic_fetch_add(&g_live, 1) >= g_http_config.max_conns) {
        /* shed: a best-effort 503 (never blocks), then close */
        ssize_t r = send(stream->fd, k_busy, sizeof k_busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)r;
        asyncio_tcp_stream_close(stream);
        atomic_fetch_sub(&g_live, 1);
        return 0;
    }
    (void)asyncio_tcp_stream_set_nodelay(stream, true);
    http_conn init;
    memset(&init, 0, sizeof init);
    init.stream = *stream;
    init.armed = UINT64_MAX;
    /*
     * Named "conn N" only when a dump or a stall report can show the name:
     * the name is copied into the task's block, 16 bytes per connection.
     */
    static _Atomic unsigned long seq;
    char name[32];
    asyncio_spawn_options o = {0};
    if (g_http_config.name_conns) {
        snprintf(name, sizeof name, "conn %lu", atomic_fetch_add(&seq, 1) + 1);
        o.name = name;
    }
    int rc = asyncio_join_set_spawn(conns, asyncio_runtime_current(), &g_conn_vt, &init, &o, NULL);
    if (rc < 0) {
        asyncio_tcp_stream_close(stream);
        atomic_fetch_sub(&g_live, 1);
    }
    asyncio_tcp_stream_init_closed(stream);
    return rc;
}
