/*
 * Buffered reader and writer over in-memory user streams, polled by hand
 * (a no-op waker; the streams wake by reference when they say pending).
 * The reader's input can be delivered whole, byte by byte, or in random
 * chunks with a pending between chunks: every line-level result must be
 * identical, and the bytes seen (lines plus what was read after an
 * ASYNCIO_EMSGSIZE) must be the input exactly, so nothing is lost.
 */
#include "support.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio/bufio.h"
#include "asyncio/io_util.h"

static asyncio_waker nop_clone(const void *d)
{
    return (asyncio_waker){NULL, d};
}

static void nop(const void *d)
{
    (void)d;
}

static const asyncio_waker_vtable nop_vt = {nop_clone, nop, nop, nop};
static const asyncio_waker g_waker = {&nop_vt, NULL};

/* Polls `expr` until it is not pending (the streams always make progress eventually). */
#define POLL(expr)                                     \
    ({                                                 \
        int poll_rc_;                                  \
        int poll_n_ = 0;                               \
        while ((poll_rc_ = (expr)) == ASYNCIO_PENDING) \
            assert_true(++poll_n_ < 1000000);          \
        poll_rc_;                                      \
    })

/* ------------------------------------------------------------------------ */
/* In-memory reader: whole, byte by byte, or random chunks; pending between  */

typedef enum { FEED_WHOLE, FEED_BYTES, FEED_RANDOM } feed_mode;

typedef struct mem_reader {
    const char *data;
    size_t len, pos;
    feed_mode mode;
    unsigned seed;
    bool pend; /* pending on every other call */
    int reads;
    size_t last_len; /* len asked by the last call */
} mem_reader;

static int mem_read(void *self, asyncio_context *cx, void *buf, size_t len, size_t *n)
{
    mem_reader *r = self;
    r->reads++;
    r->last_len = len;
    if (r->mode != FEED_WHOLE) {
        r->pend = !r->pend;
        if (r->pend) {
            asyncio_waker_wake_by_ref(cx->waker);
            return ASYNCIO_PENDING;
        }
    }
    size_t k = r->len - r->pos;
    if (r->mode == FEED_BYTES)
        k = k < 1 ? k : 1;
    else if (r->mode == FEED_RANDOM) {
        r->seed = r->seed * 1103515245u + 12345u;
        size_t c = 1 + (r->seed >> 16) % 23;
        k = k < c ? k : c;
    }
    k = k < len ? k : len;
    memcpy(buf, r->data + r->pos, k);
    r->pos += k;
    *n = k;
    return 0;
}

static const asyncio_reader_vtable mem_reader_vt = {mem_read, NULL, NULL};

static asyncio_reader mem_as_reader(mem_reader *r)
{
    return (asyncio_reader){&mem_reader_vt, r};
}

/* ------------------------------------------------------------------------ */
/* read_line fed whole, byte by byte and in random chunks                    */

static const char g_text[] = "first line\n"
                             "\n"
                             "crlf line\r\n"
                             "a line that is far too long for the limit of thirty-two bytes\n"
                             "exactly thirty-one bytes + \\n..\n"
                             "short\n"
                             "0123456789012345678901234567890123456789012345678901234567890123\n"
                             "last line without newline";

typedef struct transcript {
    char text[4096]; /* lines and markers */
    size_t tlen;
    char bytes[4096]; /* every byte handed out, in order */
    size_t blen;
} transcript;

static void tr_add(transcript *t, const char *tag, const char *p, size_t n)
{
    t->tlen +=
        (size_t)snprintf(t->text + t->tlen, sizeof t->text - t->tlen, "%s[%.*s]", tag, (int)n, p);
    memcpy(t->bytes + t->blen, p, n);
    t->blen += n;
}

/* Reads g_text with read_line(32) on a 40-byte buffer; long lines are read out raw. */
static void read_all_lines(feed_mode mode, unsigned seed, transcript *t)
{
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&g_waker);
    mem_reader mr = {.data = g_text, .len = strlen(g_text), .mode = mode, .seed = seed};
    asyncio_buf_reader br;
    char storage[40];
    assert_ok(asyncio_buf_reader_init(&br, mem_as_reader(&mr), storage, sizeof storage));
    memset(t, 0, sizeof *t);
    for (;;) {
        const char *line;
        size_t n;
        int rc = POLL(asyncio_buf_reader_poll_read_line(&br, &cx, 32, &line, &n));
        if (rc == ASYNCIO_EMSGSIZE) {
            /* Nothing was consumed: the next 32 bytes are the long line's start. */
            char raw[32];
            size_t got = 0;
            while (got < sizeof raw) {
                size_t k;
                assert_ok(
                    POLL(asyncio_buf_reader_poll_read(&br, &cx, raw + got, sizeof raw - got, &k)));
                assert_true(k > 0);
                got += k;
            }
            tr_add(t, "TOO_LONG", raw, got);
            continue;
        }
        assert_ok(rc);
        if (n == 0)
            break;
        tr_add(t, "L", line, n);
    }
    asyncio_buf_reader_free(&br);
}

static void test_read_line_whole_bytewise_random_chunks_identical(void **state)
{
    (void)state;
    transcript whole, bytes, chunks;
    read_all_lines(FEED_WHOLE, 0, &whole);
    assert_int_equal(whole.blen, strlen(g_text)); /* nothing lost */
    assert_memory_equal(whole.bytes, g_text, whole.blen);
    assert_non_null(strstr(whole.text, "L[crlf line\r\n]"));
    assert_non_null(strstr(whole.text, "TOO_LONG[a line that is far too long for ]"));
    assert_non_null(strstr(whole.text, "L[exactly thirty-one bytes + \\n..\n]"));
    assert_non_null(strstr(whole.text, "L[last line without newline]"));

    read_all_lines(FEED_BYTES, 0, &bytes);
    assert_string_equal(bytes.text, whole.text);
    assert_memory_equal(bytes.bytes, g_text, strlen(g_text));
    for (unsigned seed = 1; seed <= 200; seed++) {
        read_all_lines(FEED_RANDOM, seed, &chunks);
        assert_string_equal(chunks.text, whole.text);
        assert_int_equal(chunks.blen, strlen(g_text));
    }
}

static void test_read_line_too_long_is_emsgsize_and_consumes_nothing(void **state)
{
    (void)state;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&g_waker);
    const char *text = "0123456789abcdef\nok\n";
    mem_reader mr = {.data = text, .len = strlen(text), .mode = FEED_BYTES};
    asyncio_buf_reader br;
    assert_ok(asyncio_buf_reader_init(&br, mem_as_reader(&mr), NULL, 64));
    const char *line;
    size_t n;
    assert_err(POLL(asyncio_buf_reader_poll_read_line(&br, &cx, 8, &line, &n)), ASYNCIO_EMSGSIZE);
    size_t avail;
    const char *buffered = asyncio_buf_reader_buffer(&br, &avail);
    assert_int_equal(avail, 8);
    assert_memory_equal(buffered, "01234567", 8);
    /* Again: the same answer, still nothing consumed. */
    assert_err(POLL(asyncio_buf_reader_poll_read_line(&br, &cx, 8, &line, &n)), ASYNCIO_EMSGSIZE);
    /* A larger limit now takes the whole line. */
    assert_ok(POLL(asyncio_buf_reader_poll_read_line(&br, &cx, 0, &line, &n)));
    assert_int_equal(n, 17);
    assert_memory_equal(line, "0123456789abcdef\n", 17);
    assert_ok(POLL(asyncio_buf_reader_poll_read_line(&br, &cx, 8, &line, &n)));
    assert_memory_equal(line, "ok\n", n);
    assert_ok(POLL(asyncio_buf_reader_poll_read_line(&br, &cx, 8, &line, &n)));
    assert_int_equal(n, 0); /* EOF */
    /* A limit above the capacity cannot be honoured. */
    assert_err(asyncio_buf_reader_poll_read_line(&br, &cx, 65, &line, &n), ASYNCIO_EINVAL);
    asyncio_buf_reader_free(&br);
}

static void test_read_until_custom_delimiter_and_partial_last_record(void **state)
{
    (void)state;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&g_waker);
    const char text[] = "a\0bb\0ccc";
    mem_reader mr = {.data = text, .len = sizeof text - 1, .mode = FEED_RANDOM, .seed = 7};
    asyncio_buf_reader br;
    assert_ok(asyncio_buf_reader_init(&br, mem_as_reader(&mr), NULL, 0));
    const char *rec;
    size_t n;
    assert_ok(POLL(asyncio_buf_reader_poll_read_until(&br, &cx, 0, 0, &rec, &n)));
    assert_int_equal(n, 2);
    assert_memory_equal(rec, "a\0", 2);
    assert_ok(POLL(asyncio_buf_reader_poll_read_until(&br, &cx, 0, 0, &rec, &n)));
    assert_memory_equal(rec, "bb\0", 3);
    assert_ok(POLL(asyncio_buf_reader_poll_read_until(&br, &cx, 0, 0, &rec, &n)));
    assert_int_equal(n, 3);
    assert_memory_equal(rec, "ccc", 3);
    assert_ok(POLL(asyncio_buf_reader_poll_read_until(&br, &cx, 0, 0, &rec, &n)));
    assert_int_equal(n, 0);
    assert_err(asyncio_buf_reader_poll_read_until(&br, &cx, 256, 0, &rec, &n), ASYNCIO_EINVAL);
    asyncio_buf_reader_free(&br);
}

static void test_lines_strip_newlines_and_end_with_null(void **state)
{
    (void)state;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&g_waker);
    const char *text = "one\r\ntwo\n\nthree\rx\nlast";
    const char *want[] = {"one", "two", "", "three\rx", "last"};
    for (int mode = FEED_WHOLE; mode <= FEED_RANDOM; mode++) {
        mem_reader mr = {.data = text, .len = strlen(text), .mode = (feed_mode)mode, .seed = 3};
        asyncio_buf_reader br;
        assert_ok(asyncio_buf_reader_init(&br, mem_as_reader(&mr), NULL, 16));
        asyncio_lines it;
        asyncio_lines_init(&it, &br, 0);
        const char *line;
        size_t n;
        for (size_t i = 0; i < 5; i++) {
            assert_ok(POLL(asyncio_lines_poll_next(&it, &cx, &line, &n)));
            assert_non_null(line);
            assert_int_equal(n, strlen(want[i]));
            assert_memory_equal(line, want[i], n);
        }
        assert_ok(POLL(asyncio_lines_poll_next(&it, &cx, &line, &n)));
        assert_null(line);
        asyncio_buf_reader_free(&br);
    }
}

static void test_buf_reader_fill_buf_consume_and_large_read_bypass(void **state)
{
    (void)state;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&g_waker);
    char text[100];
    for (int i = 0; i < 100; i++)
        text[i] = (char)('A' + i % 26);
    mem_reader mr = {.data = text, .len = 100, .mode = FEED_WHOLE};
    asyncio_buf_reader br;
    assert_ok(asyncio_buf_reader_init(&br, mem_as_reader(&mr), NULL, 16));
    const void *data;
    size_t len;
    assert_ok(asyncio_buf_reader_poll_fill_buf(&br, &cx, &data, &len));
    assert_int_equal(len, 16);
    assert_int_equal(mr.last_len, 16);
    asyncio_buf_reader_consume(&br, 10);
    assert_ok(asyncio_buf_reader_poll_fill_buf(&br, &cx, &data, &len));
    assert_int_equal(len, 6); /* served from the buffer: no new read */
    assert_int_equal(mr.reads, 1);
    asyncio_buf_reader_consume(&br, 100); /* clamped */
    /* Empty buffer and a read >= capacity: straight into the caller's buffer. */
    char big[40];
    size_t n;
    assert_ok(asyncio_buf_reader_poll_read(&br, &cx, big, sizeof big, &n));
    assert_int_equal(n, 40);
    assert_int_equal(mr.last_len, 40);
    assert_memory_equal(big, text + 16, 40);
    /* A buffered reader is a reader: stack a second one on it. */
    asyncio_buf_reader outer;
    char outer_buf[8];
    assert_ok(asyncio_buf_reader_init(&outer, asyncio_buf_reader_as_reader(&br), outer_buf, 8));
    char rest[64];
    asyncio_read_to_end rte;
    asyncio_read_to_end_init(&rte, asyncio_buf_reader_as_reader(&outer), rest, sizeof rest);
    assert_ok(POLL(asyncio_read_to_end_poll(&rte, &cx)));
    assert_int_equal(rte.done, 44);
    assert_memory_equal(rest, text + 56, 44);
    asyncio_buf_reader_free(&outer);
    asyncio_buf_reader_free(&br);
}

static void test_buf_reader_allocates_once_at_init(void **state)
{
    (void)state;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&g_waker);
    mem_reader mr = {.data = g_text, .len = strlen(g_text), .mode = FEED_RANDOM, .seed = 9};
    long before = support_alloc_total();
    asyncio_buf_reader br;
    assert_ok(asyncio_buf_reader_init(&br, mem_as_reader(&mr), NULL, 128));
    assert_int_equal(support_alloc_total() - before, 1);
    asyncio_lines it;
    asyncio_lines_init(&it, &br, 0);
    const char *line;
    size_t n;
    int lines = 0;
    do {
        assert_ok(POLL(asyncio_lines_poll_next(&it, &cx, &line, &n)));
        lines += line != NULL;
    } while (line != NULL);
    assert_int_equal(lines, 8);
    assert_int_equal(support_alloc_total() - before, 1);
    asyncio_buf_reader_free(&br);
    assert_int_equal(support_alloc_live(), 0);
    /* Bad arguments. */
    char storage[4];
    assert_err(asyncio_buf_reader_init(&br, mem_as_reader(&mr), storage, 0), ASYNCIO_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */

typedef struct mem_writer {
    char out[8192];
    size_t len;
    size_t max_per_call; /* 0: all */
    bool pend_mode, pend;
    int writes, vectored, flushes, shutdowns;
    size_t last_len;
    char log[256]; /* "W<n>" per write, "F" per flush, "S" per shutdown */
    size_t loglen;
} mem_writer;

/* Appends an event to the log: the tag, then the byte count if it is a write. */
static void log_ev(mem_writer *w, char tag, size_t n, bool with_n)
{
    char *at = w->log + w->loglen;
    size_t room = sizeof w->log - w->loglen;
    if (room < 24)
        return; /* long runs only check the bytes, not the log */
    int k = with_n ? snprintf(at, room, "%c%zu", tag, n) : snprintf(at, room, "%c", tag);
    w->loglen += (size_t)k;
}

static bool maybe_pend(mem_writer *w, asyncio_context *cx)
{
    if (!w->pend_mode)
        return false;
    w->pend = !w->pend;
    if (w->pend)
        asyncio_waker_wake_by_ref(cx->waker);
    return w->pend;
}

static int mw_write(void *self, asyncio_context *cx, const void *buf, size_t len, size_t *n)
{
    mem_writer *w = self;
    if (maybe_pend(w, cx))
        return ASYNCIO_PENDING;
    size_t k = w->max_per_call != 0 && len > w->max_per_call ? w->max_per_call : len;
    memcpy(w->out + w->len, buf, k);
    w->len += k;
    w->writes++;
    w->last_len = len;
    log_ev(w, 'W', k, true);
    *n = k;
    return 0;
}

static int mw_write_vectored(void *self, asyncio_context *cx, const asyncio_iovec *iov, int cnt,
                             size_t *n)
{
    mem_writer *w = self;
    if (maybe_pend(w, cx))
        return ASYNCIO_PENDING;
    size_t total = 0;
    for (int i = 0; i < cnt; i++) {
        memcpy(w->out + w->len, iov[i].base, iov[i].len);
        w->len += iov[i].len;
        total += iov[i].len;
    }
    w->vectored++;
    log_ev(w, 'V', total, true);
    *n = total;
    return 0;
}

static int mw_flush(void *self, asyncio_context *cx)
{
    mem_writer *w = self;
    if (maybe_pend(w, cx))
        return ASYNCIO_PENDING;
    w->flushes++;
    log_ev(w, 'F', 0, false);
    return 0;
}

static int mw_shutdown(void *self, asyncio_context *cx)
{
    mem_writer *w = self;
    if (maybe_pend(w, cx))
        return ASYNCIO_PENDING;
    w->shutdowns++;
    log_ev(w, 'S', 0, false);
    return 0;
}

static const asyncio_writer_vtable mem_writer_vt = {
    mw_write, mw_write_vectored, mw_flush, mw_shutdown, NULL, NULL};

static int write_str(asyncio_buf_writer *bw, asyncio_context *cx, const char *s)
{
    asyncio_write_all wa;
    asyncio_write_all_init(&wa, asyncio_buf_writer_as_writer(bw), s, strlen(s));
    return POLL(asyncio_write_all_poll(&wa, cx));
}

static void test_buf_writer_small_writes_wait_for_flush(void **state)
{
    (void)state;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&g_waker);
    static mem_writer w;
    memset(&w, 0, sizeof w);
    asyncio_buf_writer bw;
    assert_ok(asyncio_buf_writer_init(&bw, (asyncio_writer){&mem_writer_vt, &w}, NULL, 16));
    assert_ok(write_str(&bw, &cx, "abc"));
    assert_ok(write_str(&bw, &cx, "defg"));
    assert_int_equal(w.writes, 0); /* all buffered */
    assert_int_equal(asyncio_buf_writer_buffered(&bw), 7);
    assert_ok(POLL(asyncio_buf_writer_poll_flush(&bw, &cx)));
    assert_string_equal(w.log, "W7F");
    assert_memory_equal(w.out, "abcdefg", 7);
    assert_int_equal(asyncio_buf_writer_buffered(&bw), 0);
    /* Flushing an empty buffer still flushes the inner writer, and writes nothing. */
    assert_ok(POLL(asyncio_buf_writer_poll_flush(&bw, &cx)));
    assert_string_equal(w.log, "W7FF");
    assert_ok(asyncio_buf_writer_free(&bw));
}

static void test_buf_writer_overflow_writes_buffer_first_then_large_bypasses(void **state)
{
    (void)state;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&g_waker);
    static mem_writer w;
    memset(&w, 0, sizeof w);
    char storage[16];
    asyncio_buf_writer bw;
    assert_ok(asyncio_buf_writer_init(&bw, (asyncio_writer){&mem_writer_vt, &w}, storage, 16));
    assert_ok(write_str(&bw, &cx, "0123456789")); /* buffered */
    assert_ok(write_str(&bw, &cx, "abcdefghij")); /* does not fit: buffer out, then buffered */
    assert_string_equal(w.log, "W10");
    assert_ok(write_str(&bw, &cx, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")); /* >= capacity: bypass */
    assert_string_equal(w.log, "W10W10W26");
    assert_int_equal(w.last_len, 26); /* one call with the caller's whole buffer */
    assert_memory_equal(w.out, "0123456789abcdefghijABCDEFGHIJKLMNOPQRSTUVWXYZ", 46);
    assert_int_equal(w.flushes, 0);
    assert_ok(asyncio_buf_writer_free(&bw));
}

static void test_buf_writer_shutdown_flushes_first(void **state)
{
    (void)state;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&g_waker);
    static mem_writer w;
    memset(&w, 0, sizeof w);
    asyncio_buf_writer bw;
    assert_ok(asyncio_buf_writer_init(&bw, (asyncio_writer){&mem_writer_vt, &w}, NULL, 0));
    assert_ok(write_str(&bw, &cx, "bye"));
    assert_ok(POLL(asyncio_buf_writer_poll_shutdown(&bw, &cx)));
    assert_string_equal(w.log, "W3S");
    assert_ok(asyncio_buf_writer_free(&bw));
}

static void test_buf_writer_pending_partial_inner_loses_and_repeats_nothing(void **state)
{
    (void)state;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&g_waker);
    static mem_writer w;
    memset(&w, 0, sizeof w);
    w.max_per_call = 3;
    w.pend_mode = true;
    asyncio_buf_writer bw;
    assert_ok(asyncio_buf_writer_init(&bw, (asyncio_writer){&mem_writer_vt, &w}, NULL, 10));
    char want[2048];
    size_t wlen = 0;
    for (int i = 0; i < 200; i++) {
        char piece[16];
        snprintf(piece, sizeof piece, "<%d>", i);
        const char *p = i % 50 == 7 ? "a-piece-longer-than-ten" : piece; /* some bypass */
        assert_ok(write_str(&bw, &cx, p));
        memcpy(want + wlen, p, strlen(p));
        wlen += strlen(p);
    }
    assert_ok(POLL(asyncio_buf_writer_poll_flush(&bw, &cx)));
    assert_int_equal(w.len, wlen);
    assert_memory_equal(w.out, want, wlen);
    assert_ok(asyncio_buf_writer_free(&bw));
}

static void test_buf_writer_vectored_buffers_small_and_passes_large(void **state)
{
    (void)state;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&g_waker);
    static mem_writer w;
    memset(&w, 0, sizeof w);
    asyncio_buf_writer bw;
    assert_ok(asyncio_buf_writer_init(&bw, (asyncio_writer){&mem_writer_vt, &w}, NULL, 8));
    asyncio_iovec small[] = {{"ab", 2}, {"", 0}, {"cd", 2}};
    size_t n;
    assert_ok(asyncio_buf_writer_poll_write_vectored(&bw, &cx, small, 3, &n));
    assert_int_equal(n, 4);
    assert_int_equal(w.len, 0);
    asyncio_iovec large[] = {{"0123", 4}, {"456789", 6}};
    assert_ok(asyncio_buf_writer_poll_write_vectored(&bw, &cx, large, 2, &n));
    assert_int_equal(n, 10);
    assert_string_equal(w.log, "W4V10");
    assert_memory_equal(w.out, "abcd0123456789", 14);
    assert_ok(asyncio_buf_writer_free(&bw));
}

/* EBUSY means what it means for every other _free: nothing was freed; flush and retry. */
static void test_buf_writer_free_with_unflushed_bytes_is_ebusy_and_frees_nothing(void **state)
{
    (void)state;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&g_waker);
    static mem_writer w;
    memset(&w, 0, sizeof w);
    asyncio_buf_writer bw;
    assert_ok(asyncio_buf_writer_init(&bw, (asyncio_writer){&mem_writer_vt, &w}, NULL, 8));
    assert_ok(write_str(&bw, &cx, "x"));
    assert_err(asyncio_buf_writer_free(&bw), ASYNCIO_EBUSY);
    assert_true(support_alloc_live() > 0); /* the buffer is still there... */
    assert_int_equal(asyncio_buf_writer_buffered(&bw), 1);
    assert_ok(POLL(asyncio_buf_writer_poll_flush(&bw, &cx))); /* ...and still usable */
    assert_int_equal(w.len, 1);
    assert_memory_equal(w.out, "x", 1);
    assert_ok(asyncio_buf_writer_free(&bw));
    assert_int_equal(support_alloc_live(), 0);
    assert_err(asyncio_buf_writer_init(&bw, (asyncio_writer){&mem_writer_vt, &w}, w.out, 0),
               ASYNCIO_EINVAL);
}

/* A writer whose inner stream failed cannot flush: discard drops the bytes, then _free works. */
static void test_buf_writer_discard_then_free_releases_unflushed_writer(void **state)
{
    (void)state;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&g_waker);
    static mem_writer w;
    memset(&w, 0, sizeof w);
    asyncio_buf_writer bw;
    assert_ok(asyncio_buf_writer_init(&bw, (asyncio_writer){&mem_writer_vt, &w}, NULL, 8));
    assert_ok(write_str(&bw, &cx, "abc"));
    assert_int_equal(asyncio_buf_writer_discard(&bw), 3);
    assert_int_equal(asyncio_buf_writer_buffered(&bw), 0);
    assert_int_equal(asyncio_buf_writer_discard(&bw), 0);
    assert_ok(asyncio_buf_writer_free(&bw));
    assert_int_equal(support_alloc_live(), 0);
    assert_int_equal(w.len, 0); /* nothing reached the inner writer */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_read_line_whole_bytewise_random_chunks_identical),
        support_test(test_read_line_too_long_is_emsgsize_and_consumes_nothing),
        support_test(test_read_until_custom_delimiter_and_partial_last_record),
        support_test(test_lines_strip_newlines_and_end_with_null),
        support_test(test_buf_reader_fill_buf_consume_and_large_read_bypass),
        support_test(test_buf_reader_allocates_once_at_init),
        support_test(test_buf_writer_small_writes_wait_for_flush),
        support_test(test_buf_writer_overflow_writes_buffer_first_then_large_bypasses),
        support_test(test_buf_writer_shutdown_flushes_first),
        support_test(test_buf_writer_pending_partial_inner_loses_and_repeats_nothing),
        support_test(test_buf_writer_vectored_buffers_small_and_passes_large),
        support_test(test_buf_writer_free_with_unflushed_bytes_is_ebusy_and_frees_nothing),
        support_test(test_buf_writer_discard_then_free_releases_unflushed_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
