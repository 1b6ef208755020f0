/*
 * HTTP/1.1 request parsing for the http_server example: an incremental
 * request-head parser and a streaming chunked-body decoder.
 *
 * Both are byte-at-a-time state machines (the head parser has a whole-head
 * fast path in front that answers exactly as the state machine would, or
 * leaves the head to it: docs/http.md). The head parser keeps only
 * offsets: the caller keeps the bytes of the current request head
 * contiguous (from its first byte) and calls http_parse_head() again with
 * the longer buffer whenever more bytes arrived; each byte is examined
 * exactly once, so a head split at any byte boundary parses exactly like
 * one that arrives whole. The chunked decoder needs no contiguity at all:
 * it is fed any pieces and hands back spans of body data.
 *
 * Hostile input is rejected, never guessed at: every error is an HTTP
 * status (400, 413, 414, 417, 431, 501, 505) after which the connection
 * must close. Pure code: no I/O, no allocation, no global state.
 */
#ifndef HTTP_PARSER_H
#define HTTP_PARSER_H
#include <stddef.h>
#include <stdint.h>

/* Return values: 0 / 1 (/ 2) as below, or an HTTP error status (>= 400). */
#define HTTP_PARSE_MORE 0 /* every byte given was consumed; the head is incomplete */
#define HTTP_PARSE_DONE 1 /* the head is complete: http_request.head_len bytes */

#define HTTP_CHUNK_MORE 0 /* every byte given was consumed; the body is incomplete */
#define HTTP_CHUNK_DATA 1 /* a span of body data was found (see http_chunked_decode) */
#define HTTP_CHUNK_DONE 2 /* last chunk and trailers complete */

typedef enum http_method {
    HTTP_M_OTHER = 0,
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
} http_method;

/** Limits (see docs/http.md); all are in bytes except max_headers. */
typedef struct http_limits {
    uint32_t max_line;    /* request line, CRLF excluded: 414 beyond */
    uint32_t max_head;    /* header section after the request line: 431 beyond */
    uint32_t max_headers; /* header fields: 431 beyond */
    uint64_t max_body;    /* body (Content-Length or decoded chunked): 413 beyond */
} http_limits;

#define HTTP_LIMITS_DEFAULT       \
    {                             \
        8192, 16384, 100, 1048576 \
    }

enum {
    HTTP_F_CHUNKED = 1u << 0,    /* Transfer-Encoding: chunked */
    HTTP_F_HAS_CL = 1u << 1,     /* Content-Length present */
    HTTP_F_CONN_CLOSE = 1u << 2, /* Connection: close */
    HTTP_F_CONN_KEEP = 1u << 3,  /* Connection: keep-alive */
    HTTP_F_CONTINUE = 1u << 4,   /* Expect: 100-continue */
    HTTP_F_HAS_TE = 1u << 5,     /* a Transfer-Encoding field was seen */
};

/** What a complete head says. Offsets are from the first byte given to the parser. */
typedef struct http_request {
    uint64_t content_length; /* with HTTP_F_HAS_CL */
    uint32_t head_len;       /* bytes of the head, final CRLF included */
    uint32_t target_off, target_len;
    uint16_t nheaders;
    uint8_t method;        /* http_method */
    uint8_t version_minor; /* HTTP/1.<minor>: 0 or 1 */
    uint8_t flags;         /* HTTP_F_* */
    uint8_t host_count;
} http_request;

/** Head parser state. Zero-initialise (or http_parser_reset) before each request. */
typedef struct http_parser {
    http_request req;
    uint32_t pos;        /* bytes examined */
    uint32_t line_start; /* request line (after leading empty lines) or current field line */
    uint32_t mark;       /* start of the current token */
    uint32_t name_len;   /* current field name */
    uint32_t value_off, value_end;
    uint8_t state;
    uint8_t vidx; /* position inside "HTTP/x.y" */
    uint8_t major;
} http_parser;

/** Streaming chunked-body decoder. Zero-initialise (or http_chunked_reset) per body. */
typedef struct http_chunked {
    uint64_t remaining; /* data bytes left in the current chunk */
    uint64_t total;     /* body bytes so far */
    uint32_t line;      /* bytes of the current size or trailer line */
    uint32_t trailer;   /* bytes of the trailer section */
    uint8_t state;
    uint8_t digits;
} http_chunked;

void http_parser_reset(http_parser *p);

/**
 * Parses the head in msg[0..len): bytes msg[0..p->pos) were seen by an
 * earlier call and must be unchanged. Returns HTTP_PARSE_MORE,
 * HTTP_PARSE_DONE (p->req filled; the body starts at req.head_len) or an
 * error status. After a result other than MORE, reset before reuse.
 */
int http_parse_head(http_parser *p, const uint8_t *msg, size_t len, const http_limits *lim);

void http_chunked_reset(http_chunked *c);

/**
 * Decodes from in[0..len). Returns:
 *   HTTP_CHUNK_DATA  body bytes in[*data_off .. *data_off + *data_len) (non-empty);
 *                    *consumed = *data_off + *data_len;
 *   HTTP_CHUNK_MORE  *consumed == len, more input needed;
 *   HTTP_CHUNK_DONE  the body ended after *consumed bytes (the rest is the next request);
 *   an error status  (400 malformed, 413 over max_body; *consumed is meaningless).
 */
int http_chunked_decode(http_chunked *c, const uint8_t *in, size_t len, uint64_t max_body,
                        size_t *consumed, size_t *data_off, size_t *data_len);

/** Reason phrase of a status ("OK", "Not Found", ...). */
const char *http_reason(int status);

#endif
