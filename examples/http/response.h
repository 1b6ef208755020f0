/*
 * Response writing for the http_server example: the cached Date header and
 * the status line + header block, formatted straight into a caller buffer
 * (no allocation, no stdio on the hot path).
 */
#ifndef HTTP_RESPONSE_H
#define HTTP_RESPONSE_H
#include <stddef.h>
#include <stdint.h>

/** Largest head http_response_head() writes (extra header excluded). */
#define HTTP_HEAD_MAX 320

#define HTTP_LEN_CHUNKED UINT64_MAX /* http_response_head: Transfer-Encoding: chunked */

typedef enum http_conn_header {
    HTTP_CONN_NONE = 0,  /* HTTP/1.1 keep-alive: nothing to say */
    HTTP_CONN_CLOSE,     /* Connection: close */
    HTTP_CONN_KEEPALIVE, /* Connection: keep-alive (answering HTTP/1.0) */
} http_conn_header;

/**
 * The IMF-fixdate of the current second ("Sun, 06 Nov 1994 08:49:37 GMT",
 * 29 characters, not NUL-terminated). Cached per thread and reformatted
 * only when the second changes (a vDSO clock read per call, no syscall).
 */
const char *http_date(void);

/**
 * Writes "HTTP/1.1 <status> <reason>", Server, Date, Content-Type (if
 * ctype), Content-Length (or Transfer-Encoding: chunked), Connection as
 * asked, `extra` (a complete "Name: value\r\n" line or NULL), and the empty
 * line into p, which must have HTTP_HEAD_MAX + strlen(extra) bytes free.
 * Returns the bytes written. `ctype` must be a string that never changes (a
 * literal or a static table entry): the last head without `extra` is kept
 * per thread and copied when the arguments and the second are the same,
 * and ctype is compared by address.
 */
size_t http_response_head(uint8_t *p, int status, const char *ctype, uint64_t content_length,
                          http_conn_header conn, const char *extra);

#endif
