/*
 * Drivers shared by the HTTP parser's unit tests (tests/test_http_parser.c)
 * and its fuzz targets (fuzz/fuzz_http_*.c).
 *
 * http_drive() parses a byte string as a sequence of pipelined requests
 * (heads by http_parse_head, bodies by Content-Length or the chunked
 * decoder) the way the server does, but with the input revealed in pieces
 * that end at cuts[0] < cuts[1] < ... (the last piece always ends at len).
 * Its result (every request's head fields, a hash of its body, the final
 * error status, bytes consumed) must not depend on the cuts: that is the
 * property the tests and the fuzzers check for whole, byte-by-byte and
 * random pieces. http_drive_chunked() does the same for the chunked decoder
 * alone.
 */
#ifndef HTTP_DRIVE_H
#define HTTP_DRIVE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "parser.h"

#define DRIVE_MAX_MSGS 64

typedef struct drive_msg {
    http_request req;
    uint64_t body_len;
    uint64_t body_hash;
} drive_msg;

typedef struct drive_result {
    drive_msg msgs[DRIVE_MAX_MSGS];
    size_t nmsgs;    /* complete requests (head and body) */
    int error;       /* the status that ended parsing, or 0 */
    size_t consumed; /* bytes used by complete requests */
} drive_result;

static inline uint64_t drive_hash(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Small deterministic PRNG (xorshift64*). */
static inline uint64_t drive_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

/* Fills cuts with random increasing piece ends < len; returns how many. */
static inline size_t drive_random_cuts(size_t len, uint64_t seed, size_t *cuts, size_t cap)
{
    size_t n = 0, at = 0;
    seed |= 1;
    while (n < cap) {
        at += 1 + (size_t)(drive_rand(&seed) % 17);
        if (at >= len)
            break;
        cuts[n++] = at;
    }
    return n;
}

static inline bool drive_req_equal(const http_request *a, const http_request *b)
{
    return a->content_length == b->content_length && a->head_len == b->head_len &&
           a->target_off == b->target_off && a->target_len == b->target_len &&
           a->nheaders == b->nheaders && a->method == b->method &&
           a->version_minor == b->version_minor && a->flags == b->flags &&
           a->host_count == b->host_count;
}

static inline bool drive_result_equal(const drive_result *a, const drive_result *b)
{
    if (a->nmsgs != b->nmsgs || a->error != b->error || a->consumed != b->consumed)
        return false;
    for (size_t i = 0; i < a->nmsgs; i++) {
        if (!drive_req_equal(&a->msgs[i].req, &b->msgs[i].req) ||
            a->msgs[i].body_len != b->msgs[i].body_len ||
            a->msgs[i].body_hash != b->msgs[i].body_hash)
            return false;
    }
    return true;
}

enum { DRIVE_HEAD, DRIVE_CL, DRIVE_CHUNKED, DRIVE_STOP };

typedef struct drive_state {
    http_parser parser;
    http_chunked chunked;
    drive_msg cur;
    size_t msg_start, pos;
    uint64_t left;
    int phase;
} drive_state;

/* Processes data[.., visible). */
static inline void drive_step(drive_state *st, const uint8_t *data, size_t visible,
                              const http_limits *lim, drive_result *out)
{
    for (;;) {
        if (st->phase == DRIVE_STOP)
            return;
        if (st->phase == DRIVE_HEAD) {
            if (out->nmsgs == DRIVE_MAX_MSGS || st->msg_start == visible)
                return;
            int rc =
                http_parse_head(&st->parser, data + st->msg_start, visible - st->msg_start, lim);
            if (rc == HTTP_PARSE_MORE)
                return;
            if (rc != HTTP_PARSE_DONE) {
                out->error = rc;
                st->phase = DRIVE_STOP;
                return;
            }
            memset(&st->cur, 0, sizeof st->cur);
            st->cur.req = st->parser.req;
            st->cur.body_hash = 14695981039346656037ull;
            st->pos = st->msg_start + st->parser.req.head_len;
            if (st->parser.req.flags & HTTP_F_CHUNKED) {
                http_chunked_reset(&st->chunked);
                st->phase = DRIVE_CHUNKED;
            } else {
                st->left = st->parser.req.content_length;
                st->phase = DRIVE_CL;
            }
        }
        if (st->phase == DRIVE_CL) {
            size_t avail = visible - st->pos;
            size_t n = (uint64_t)avail < st->left ? avail : (size_t)st->left;
            st->cur.body_hash = drive_hash(st->cur.body_hash, data + st->pos, n);
            st->cur.body_len += n;
            st->pos += n;
            st->left -= n;
            if (st->left > 0)
                return;
        } else if (st->phase == DRIVE_CHUNKED) {
            size_t used, off, dlen;
            int rc = http_chunked_decode(&st->chunked, data + st->pos, visible - st->pos,
                                         lim->max_body, &used, &off, &dlen);
            if (rc == HTTP_CHUNK_DATA) {
                st->cur.body_hash = drive_hash(st->cur.body_hash, data + st->pos + off, dlen);
                st->cur.body_len += dlen;
                st->pos += used;
                continue;
            }
            if (rc == HTTP_CHUNK_MORE) {
                st->pos += used;
                return;
            }
            if (rc != HTTP_CHUNK_DONE) {
                out->error = rc;
                st->phase = DRIVE_STOP;
                return;
            }
            st->pos += used;
        }
        /* a complete request */
        out->msgs[out->nmsgs++] = st->cur;
        st->msg_start = st->pos;
        out->consumed = st->pos;
        http_parser_reset(&st->parser);
        st->phase = DRIVE_HEAD;
    }
}

/* Parses data[0, len) revealed in pieces ending at cuts[0..ncuts) then len. */
static inline void http_drive(const uint8_t *data, size_t len, const size_t *cuts, size_t ncuts,
                              const http_limits *lim, drive_result *out)
{
    drive_state st;
    memset(&st, 0, sizeof st);
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < ncuts; i++)
        drive_step(&st, data, cuts[i], lim, out);
    drive_step(&st, data, len, lim, out);
}

/* The chunked decoder alone: data is a chunked body (and whatever follows it). */
typedef struct chunked_result {
    int status; /* HTTP_CHUNK_MORE at the end of input, DONE, or an error */
    uint64_t body_len, body_hash;
    size_t consumed;
} chunked_result;

static inline void http_drive_chunked(const uint8_t *data, size_t len, const size_t *cuts,
                                      size_t ncuts, uint64_t max_body, chunked_result *out)
{
    http_chunked c;
    http_chunked_reset(&c);
    memset(out, 0, sizeof *out);
    out->body_hash = 14695981039346656037ull;
    size_t pos = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t visible = i < ncuts ? cuts[i] : len;
        while (pos < visible) {
            size_t used, off, dlen;
            int rc =
                http_chunked_decode(&c, data + pos, visible - pos, max_body, &used, &off, &dlen);
            if (rc == HTTP_CHUNK_DATA) {
                out->body_hash = drive_hash(out->body_hash, data + pos + off, dlen);
                out->body_len += dlen;
                pos += used;
                continue;
            }
            if (rc == HTTP_CHUNK_MORE) {
                pos += used;
                break;
            }
            out->status = rc;
            if (rc == HTTP_CHUNK_DONE)
                out->consumed = pos + used;
            return;
        }
    }
    out->status = HTTP_CHUNK_MORE;
    out->consumed = pos;
}

static inline bool chunked_result_equal(const chunked_result *a, const chunked_result *b)
{
    return a->status == b->status && a->body_len == b->body_len && a->body_hash == b->body_hash &&
           a->consumed == b->consumed;
}

#endif
