/*
 * Response heads and the Date cache (see response.h).
 *
 * The Date cache is per thread, so worker threads never share a line of
 * memory for it: each keeps the second it formatted and the text; a new
 * second costs one gmtime_r + strftime on that thread.
 */
#include "response.h"

#include <string.h>
#include <time.h>

#include "parser.h"

/* A coarse clock is enough for a 1-second Date header (Linux); plain realtime elsewhere. */
#ifdef CLOCK_REALTIME_COARSE
#define HTTP_DATE_CLOCK CLOCK_REALTIME_COARSE
#else
#define HTTP_DATE_CLOCK CLOCK_REALTIME
#endif

static _Thread_local struct {
    time_t sec;
    char text[32];
} g_date = {-1, ""};

/* The current second; reformats the cached text when it changed. */
static time_t date_refresh(void)
{
    struct timespec ts;
    clock_gettime(HTTP_DATE_CLOCK, &ts);
    if (ts.tv_sec != g_date.sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(g_date.text, sizeof g_date.text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        g_date.sec = ts.tv_sec;
    }
    return ts.tv_sec;
}

const char *http_date(void)
{
    (void)date_refresh();
    return g_date.text;
}

static uint8_t *put(uint8_t *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *p++ = (uint8_t)tmp[--n];
    return p;
}

/* Formats a head (see http_response_head); the Date text must be current. */
static size_t format_head(uint8_t *p, int status, const char *ctype, uint64_t content_length,
                          http_conn_header conn, const char *extra)
{
    uint8_t *q = p;
    if (status == 200) {
        q = PUT_LIT(q, "HTTP/1.1 200 OK\r\n");
    } else {
        const char *reason = http_reason(status);
        q = PUT_LIT(q, "HTTP/1.1 ");
        q = put_u64(q, (uint64_t)status);
        *q++ = ' ';
        q = put(q, reason, strlen(reason));
        q = PUT_LIT(q, "\r\n");
    }
    q = PUT_LIT(q, "Server: libasyncio\r\nDate: ");
    q = put(q, g_date.text, 29);
    q = PUT_LIT(q, "\r\n");
    if (ctype != NULL) {
        q = PUT_LIT(q, "Content-Type: ");
        q = put(q, ctype, strlen(ctype));
        q = PUT_LIT(q, "\r\n");
    }
    if (content_length == HTTP_LEN_CHUNKED) {
        q = PUT_LIT(q, "Transfer-Encoding: chunked\r\n");
    } else {
        q = PUT_LIT(q, "Content-Length: ");
        q = put_u64(q, content_length);
        q = PUT_LIT(q, "\r\n");
    }
    if (conn == HTTP_CONN_CLOSE)
        q = PUT_LIT(q, "Connection: close\r\n");
    else if (conn == HTTP_CONN_KEEPALIVE)
        q = PUT_LIT(q, "Connection: keep-alive\r\n");
    if (extra != NULL)
        q = put(q, extra, strlen(extra));
    q = PUT_LIT(q, "\r\n");
    return (size_t)(q - p);
}

/*
 * The last head without an `extra` line, per thread: a server answering the
 * same kind of request again (a benchmark, a health check, pipelined GETs)
 * copies it instead of formatting it (-130 instructions per response). The
 * key is the arguments and the Date second; ctype by address (see response.h).
 */
static _Thread_local struct {
    time_t sec;
    int status;
    const char *ctype;
    uint64_t content_length;
    http_conn_header conn;
    size_t len;
    uint8_t text[HTTP_HEAD_MAX];
} g_last = {.sec = -1};

size_t http_response_head(uint8_t *p, int status, const char *ctype, uint64_t content_length,
                          http_conn_header conn, const char *extra)
{
    time_t sec = date_refresh();
    if (extra != NULL)
        return format_head(p, status, ctype, content_length, conn, extra);
    if (sec != g_last.sec || status != g_last.status || ctype != g_last.ctype ||
        content_length != g_last.content_length || conn != g_last.conn) {
        g_last.len = format_head(g_last.text, status, ctype, content_length, conn, NULL);
        g_last.sec = sec;
        g_last.status = status;
        g_last.ctype = ctype;
        g_last.content_length = content_length;
        g_last.conn = conn;
    }
    memcpy(p, g_last.text, g_last.len);
    return g_last.len;
}
