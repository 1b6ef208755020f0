/*
 * Driver for the buffered line reader (include/asyncio/bufio.h) over an
 * in-memory reader that hands out its bytes in pieces (and says
 * ASYNCIO_PENDING once before each piece), shared by the fuzz target
 * fuzz/fuzz_bufio_lines.c and the regression replay in
 * tests/test_http_parser.c.
 *
 * lines_drive() reads records with asyncio_buf_reader_poll_read_until()
 * until EOF; on ASYNCIO_EMSGSIZE it consumes `max` bytes and goes on. The
 * sequence of records (hash and length) and oversize events must not depend
 * on how the input was cut into pieces.
 */
#ifndef LINES_DRIVE_H
#define LINES_DRIVE_H
#include <asyncio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct mem_reader {
    const uint8_t *data;
    size_t len, pos;
    const size_t *cuts; /* piece ends */
    size_t ncuts, next;
    bool pended; /* PENDING was returned for the current piece */
} mem_reader;

static int mem_reader_poll_read(void *self, asyncio_context *cx, void *buf, size_t len,
                                size_t *n_out)
{
    mem_reader *m = self;
    (void)cx;
    if (m->pos == m->len || len == 0) {
        *n_out = 0;
        return 0;
    }
    if (!m->pended) {
        m->pended = true;
        return ASYNCIO_PENDING; /* the caller polls again (no waker needed here) */
    }
    while (m->next < m->ncuts && m->cuts[m->next] <= m->pos)
        m->next++;
    size_t end = m->next < m->ncuts ? m->cuts[m->next] : m->len;
    size_t n = end - m->pos;
    if (n > len)
        n = len;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    if (m->pos == end)
        m->pended = false;
    *n_out = n;
    return 0;
}

static const asyncio_reader_vtable k_mem_reader_vt = {mem_reader_poll_read, NULL, NULL};

#define LINES_MAX_EVENTS 256

typedef struct lines_result {
    size_t nevents;
    int64_t events[LINES_MAX_EVENTS]; /* record length, or -1 for EMSGSIZE */
    uint64_t hash;                    /* over all records */
    int error;                        /* an unexpected error, or 0 */
} lines_result;

static void lines_drive(const uint8_t *data, size_t len, size_t cap, size_t max, int delim,
                        const size_t *cuts, size_t ncuts, lines_result *out)
{
    mem_reader m = {data, len, 0, cuts, ncuts, 0, false};
    asyncio_reader r = {&k_mem_reader_vt, &m};
    asyncio_buf_reader br;
    asyncio_waker w = ASYNCIO_WAKER_EMPTY;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&w);
    memset(out, 0, sizeof *out);
    out->hash = 14695981039346656037ull;
    if ((out->error = asyncio_buf_reader_init(&br, r, NULL, cap)) != 0)
        return;
    for (size_t guard = 0; guard < 8 * len + 64; guard++) {
        const char *rec;
        size_t n;
        int rc = asyncio_buf_reader_poll_read_until(&br, &cx, delim, max, &rec, &n);
        if (rc == ASYNCIO_PENDING)
            continue;
        if (rc == ASYNCIO_EMSGSIZE) {
            if (out->nevents < LINES_MAX_EVENTS)
                out->events[out->nevents++] = -1;
            asyncio_buf_reader_consume(&br, max == 0 ? cap : max);
            continue;
        }
        if (rc != 0) {
            out->error = rc;
            break;
        }
        if (n == 0)
            break; /* EOF */
        for (size_t i = 0; i < n; i++)
            out->hash = (out->hash ^ (uint8_t)rec[i]) * 1099511628211ull;
        if (out->nevents < LINES_MAX_EVENTS)
            out->events[out->nevents++] = (int64_t)n;
    }
    asyncio_buf_reader_free(&br);
}

static inline bool lines_result_equal(const lines_result *a, const lines_result *b)
{
    return a->nevents == b->nevents && a->hash == b->hash && a->error == b->error &&
           memcmp(a->events, b->events, a->nevents * sizeof a->events[0]) == 0;
}

/* Parameters derived from the first two bytes of a fuzz input. */
static inline void lines_params(const uint8_t *data, size_t len, size_t *cap, size_t *max,
                                int *delim)
{
    *cap = 1 + (len > 0 ? data[0] % 64 : 7);
    *max = len > 1 ? data[1] % (*cap + 1) : 0;
    *delim = len > 1 && (data[1] & 0x80) ? '\n' : (len > 2 ? data[2] : '\n');
}

#endif
