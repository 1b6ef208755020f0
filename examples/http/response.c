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

const char *http_date(void)
{
    struct timespec ts;
    clock_gettime(HTTP_DATE_CLOCK, &ts);
    if (ts.tv_sec != g_date.sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(g_date.text, sizeof g_date.text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        g_date.sec = ts.tv_sec;
    }
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

size_t http_response_head(uint8_t *p, int status, const char *ctype, uint64_t content_length,
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
    q = put(q, http_date(), 29);
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
