/*
 * Unit tests of the http_server example's request parser and chunked
 * decoder (examples/http/parser.c, compiled into this executable), the
 * split-invariance property (whole, byte by byte, every two-piece split,
 * random pieces with fixed seeds give identical results), and the replay
 * of every regression input under tests/http_regress/ (inputs the fuzzers
 * found: fuzz/README in docs/http.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/http_drive.h"
#include "../fuzz/lines_drive.h"
#include "parser.h"

static const http_limits k_lim = HTTP_LIMITS_DEFAULT;

static int parse_whole(const char *s, http_request *out)
{
    http_parser p;
    http_parser_reset(&p);
    int rc = http_parse_head(&p, (const uint8_t *)s, strlen(s), &k_lim);
    if (out != NULL)
        *out = p.req;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Head parser                                                               */

static void test_parser_reads_request_line_and_framing_fields(void **state)
{
    (void)state;
    static const char req[] = "POST /echo?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n"
                              "Connection: keep-alive\r\n\r\nbody";
    http_request r;
    assert_int_equal(parse_whole(req, &r), HTTP_PARSE_DONE);
    assert_int_equal(r.method, HTTP_M_POST);
    assert_int_equal(r.version_minor, 1);
    assert_int_equal(r.head_len, sizeof req - 1 - 4);
    assert_memory_equal(req + r.target_off, "/echo?x=1", r.target_len);
    assert_int_equal(r.target_len, 9);
    assert_int_equal(r.content_length, 12);
    assert_int_equal(r.nheaders, 3);
    assert_true(r.flags & HTTP_F_HAS_CL);
    assert_true(r.flags & HTTP_F_CONN_KEEP);
    assert_false(r.flags & HTTP_F_CHUNKED);
}

static void test_parser_needs_more_until_the_empty_line(void **state)
{
    (void)state;
    assert_int_equal(parse_whole("GET / HTTP/1.1\r\nHost: a\r\n", NULL), HTTP_PARSE_MORE);
    assert_int_equal(parse_whole("GET / HTTP/1.1\r\nHost: a\r\n\r", NULL), HTTP_PARSE_MORE);
    assert_int_equal(parse_whole("GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL), HTTP_PARSE_DONE);
    assert_int_equal(parse_whole("", NULL), HTTP_PARSE_MORE);
}

static void test_parser_rejects_hostile_input_with_the_right_status(void **state)
{
    (void)state;
    static const struct {
        const char *req;
        int status;
    } k[] = {
        {"GET / HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
         400},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x02\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 400},
        {"GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
        {"GET / HTTP/1.1\r\nHost: a\r\nExpect: nope\r\n\r\n", 417},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n", 413},
        {"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        int rc = parse_whole(k[i].req, NULL);
        if (rc != k[i].status)
            fail_msg("case %zu: got %d, want %d", i, rc, k[i].status);
    }
}

/* RFC 9112 3.2: Host = uri-host [ ":" port ]; anything else is a 400. */
static void test_parser_rejects_host_outside_the_uri_host_port_grammar(void **state)
{
    (void)state;
    static const char *k_bad[] = {
        "a b",   "a\tb",    "a/b",         "a?b",  "a#b", "a@b",  "a\"b", "a<b",    "a\\b",
        "a:b",   "a:80:81", "a:8x",        "a%",   "a%4", "a%zz", "[::1", "[::1]x", "[::1]:x",
        "[a b]", "[::1]]",  "caf\xc3\xa9", "a{b}", "::1", "a|b",  "a^b",  "a`b",
    };
    static const char *k_good[] = {
        "",
        "a",
        "example.com",
        "example.com:8080",
        "a:",
        "127.0.0.1:80",
        "[::1]",
        "[::1]:8080",
        "[v1.x]",
        "a-b_c~d.e",
        "%41b",
        "!$&'()*+,;=",
        "xn--caf-dma.example",
    };
    char req[256];
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", k_bad[i]);
        int rc = parse_whole(req, NULL);
        if (rc != 400)
            fprintf(stderr, "Host '%s': %d, want 400\n", k_bad[i], rc);
        assert_int_equal(rc, 400);
    }
    for (size_t i = 0; i < sizeof k_good / sizeof k_good[0]; i++) {
        snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", k_good[i]);
        int rc = parse_whole(req, NULL);
        if (rc != HTTP_PARSE_DONE)
            fprintf(stderr, "Host '%s': %d, want accepted\n", k_good[i], rc);
        assert_int_equal(rc, HTTP_PARSE_DONE);
    }
    /* HTTP/1.0 need not send Host, but one it sends is checked all the same */
    assert_int_equal(parse_whole("GET / HTTP/1.0\r\n\r\n", NULL), HTTP_PARSE_DONE);
    assert_int_equal(parse_whole("GET / HTTP/1.0\r\nHost: a b\r\n\r\n", NULL), 400);
}

static void test_parser_enforces_line_head_and_count_limits(void **state)
{
    (void)state;
    http_limits lim = {32, 64, 3, 100};
    http_parser p;
    const char *line = "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n";
    http_parser_reset(&p);
    assert_int_equal(http_parse_head(&p, (const uint8_t *)line, strlen(line), &lim), 414);
    /* exactly at the limit (32 bytes without CRLF) is fine */
    const char *ok = "GET /aaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n";
    http_parser_reset(&p);
    assert_int_equal(http_parse_head(&p, (const uint8_t *)ok, strlen(ok), &lim), HTTP_PARSE_DONE);
    const char *many = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    http_parser_reset(&p);
    assert_int_equal(http_parse_head(&p, (const uint8_t *)many, strlen(many), &lim), 431);
    const char *big =
        "GET / HTTP/1.1\r\nHost: a\r\nX: "
        "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\n\r\n";
    http_parser_reset(&p);
    assert_int_equal(http_parse_head(&p, (const uint8_t *)big, strlen(big), &lim), 431);
}

/* ------------------------------------------------------------------------ */
/* Chunked decoder                                                           */

static void test_chunked_decoder_returns_data_and_skips_extensions_and_trailers(void **state)
{
    (void)state;
    static const char body[] = "3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nT: x\r\n\r\nNEXT";
    chunked_result r;
    http_drive_chunked((const uint8_t *)body, sizeof body - 1, NULL, 0, 1 << 20, &r);
    assert_int_equal(r.status, HTTP_CHUNK_DONE);
    assert_int_equal(r.body_len, 13);
    assert_int_equal(r.consumed, sizeof body - 1 - 4);
}

static void test_chunked_decoder_rejects_bad_sizes_and_framing(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int status;
    } k[] = {
        {"x\r\n", 400},
        {"-1\r\n", 400},
        {" 1\r\na\r\n", 400},
        {"1\r\naX\r\n", 400},
        {"1\na\r\n", 400},
        {"1 x\r\n", 400},
        {"0\r\n folded\r\n", 400},
        {"ffffffffffffffff\r\n", 400},
        {"100001\r\n", 413},
        {"1\r\na\r\r\n", 400},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        chunked_result r;
        http_drive_chunked((const uint8_t *)k[i].body, strlen(k[i].body), NULL, 0, 1 << 20, &r);
        if (r.status != k[i].status)
            fail_msg("case %zu (%s): got %d, want %d", i, k[i].body, r.status, k[i].status);
    }
}

/* ------------------------------------------------------------------------ */
/* Split invariance                                                          */

static const char *const k_samples[] = {
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "\r\nGET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: "
    "b\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n"
    "1\r\n!\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\tfold\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    /* CRs on 8-byte boundaries (a CR split from its LF) */
    "GET /ab\r\nHost: a\r\nXYZW: 1\r\n\r\n",
    "GET /abc HTTP/1.1\r\nHost: 12\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET / HTTP/3.0\r\n\r\n",
    "\x00\x01\x02garbage",
};

static void check_split_invariance(const uint8_t *d, size_t n)
{
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    assert_non_null(cuts);
    drive_result *whole = malloc(sizeof *whole), *other = malloc(sizeof *other);
    assert_non_null(whole);
    assert_non_null(other);
    http_drive(d, n, NULL, 0, &k_lim, whole);
    /* byte by byte */
    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    http_drive(d, n, cuts, n > 0 ? n - 1 : 0, &k_lim, other);
    assert_true(drive_result_equal(whole, other));
    /* every two-piece split */
    for (size_t at = 1; at < n; at++) {
        cuts[0] = at;
        http_drive(d, n, cuts, 1, &k_lim, other);
        if (!drive_result_equal(whole, other))
            fail_msg("split at %zu differs", at);
    }
    /* random pieces, fixed seeds */
    for (uint64_t seed = 1; seed <= 64; seed++) {
        size_t nc = drive_random_cuts(n, seed, cuts, n);
        http_drive(d, n, cuts, nc, &k_lim, other);
        if (!drive_result_equal(whole, other))
            fail_msg("random pieces (seed %llu) differ", (unsigned long long)seed);
    }
    free(whole);
    free(other);
    free(cuts);
}

static void test_any_split_of_the_input_parses_identically(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof k_samples / sizeof k_samples[0]; i++)
        check_split_invariance((const uint8_t *)k_samples[i], strlen(k_samples[i]));
    /* the pipelined sample gives two requests, the chunked one two, with bodies */
    drive_result *r = malloc(sizeof *r);
    assert_non_null(r);
    http_drive((const uint8_t *)k_samples[3], strlen(k_samples[3]), NULL, 0, &k_lim, r);
    assert_int_equal(r->nmsgs, 2);
    assert_int_equal(r->msgs[0].body_len, 6);
    assert_int_equal(r->error, 0);
    free(r);
}

static void test_random_inputs_parse_identically_in_random_pieces(void **state)
{
    (void)state;
    /* a token soup of HTTP fragments: exercises many error and success paths */
    static const char *const k_tok[] = {
        "GET ",
        "POST ",
        "/",
        "/echo",
        " HTTP/1.1",
        " HTTP/1.0",
        "\r\n",
        "\r",
        "\n",
        "Host: a",
        "Content-Length: ",
        "3",
        "0",
        "Transfer-Encoding: chunked",
        ": ",
        "abc",
        "5;x=y",
        "\t",
        " ",
        "\x7f",
        "Connection: close",
        ";",
    };
    uint64_t seed = 42;
    uint8_t buf[512];
    for (int iter = 0; iter < 2000; iter++) {
        size_t n = 0;
        while (n < sizeof buf - 32) {
            const char *t = k_tok[drive_rand(&seed) % (sizeof k_tok / sizeof k_tok[0])];
            size_t l = strlen(t);
            memcpy(buf + n, t, l);
            n += l;
            if (drive_rand(&seed) % 24 == 0)
                break;
        }
        drive_result *a = malloc(sizeof *a), *b = malloc(sizeof *b);
        size_t cuts[512];
        assert_non_null(a);
        assert_non_null(b);
        http_drive(buf, n, NULL, 0, &k_lim, a);
        size_t nc = drive_random_cuts(n, seed, cuts, 512);
        http_drive(buf, n, cuts, nc, &k_lim, b);
        assert_true(drive_result_equal(a, b));
        free(a);
        free(b);
    }
}

/*
 * The whole-head fast path (parser.c) against the byte loop: a head given
 * whole takes the fast path, the same head fed one byte at a time never
 * does. Valid heads are mutated (bytes replaced, inserted, deleted with the
 * characters the grammar cares about) and every limit is swept across the
 * head's own sizes, where an off-by-one in the fast path's limit checks
 * would answer DONE where the byte loop answers 414 / 431, or the reverse.
 */
static const char k_long_head[] =
    "GET /a-very-long-target/with/more/than/eight/bytes/in/every/run HTTP/1.1\r\n"
    "Host: long.example\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101\r\n\r\n";

static const char *const k_valid_heads[] = {
    "GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length: 5\r\n\r\nhello",
    "PUT /x?y=z&w HTTP/1.1\r\nHost:a\r\nX-Tab:\tv\t w \t\r\nEmpty:\r\nObs: caf\xc3\xa9\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: b\r\nConnection: keep-alive, close\r\nExpect: 100-continue\r\n\r\n",
    "POST /c HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "GET /p HTTP/1.1\r\nHost: p\r\n\r\nGET /q HTTP/1.1\r\nHost: q\r\n\r\n",
    k_long_head,
};

static void check_whole_equals_bytewise(const uint8_t *d, size_t n, const http_limits *lim)
{
    drive_result *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(cuts);
    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    http_drive(d, n, NULL, 0, lim, a);
    http_drive(d, n, cuts, n > 0 ? n - 1 : 0, lim, b);
    if (!drive_result_equal(a, b))
        fail_msg("whole (fast path) and byte-by-byte differ: %d/%zu vs %d/%zu on [%.*s]", a->error,
                 a->nmsgs, b->error, b->nmsgs, (int)n, (const char *)d);
    free(a);
    free(b);
    free(cuts);
}

static void test_whole_head_fast_path_agrees_with_the_byte_loop(void **state)
{
    (void)state;
    static const uint8_t k_bytes[] = {'\r', '\n', '\t', ' ', ':', 0x7f, 0x80, 0x00, 'A',
                                      '1',  '/',  '.',  ',', 0x1f, '%', '[',  '~',  0xff};
    uint64_t seed = 7;
    uint8_t buf[512];
    size_t nheads = sizeof k_valid_heads / sizeof k_valid_heads[0];
    for (size_t h = 0; h < nheads; h++) {
        size_t n = strlen(k_valid_heads[h]);
        const uint8_t *d = (const uint8_t *)k_valid_heads[h];
        check_whole_equals_bytewise(d, n, &k_lim);
        /* every limit across the head's own sizes */
        for (uint32_t v = 0; v <= n + 1; v++) {
            http_limits l = k_lim;
            l.max_line = v;
            check_whole_equals_bytewise(d, n, &l);
            l = k_lim;
            l.max_head = v;
            check_whole_equals_bytewise(d, n, &l);
            l = k_lim;
            l.max_body = v;
            check_whole_equals_bytewise(d, n, &l);
        }
        for (uint32_t v = 0; v <= 6; v++) {
            http_limits l = k_lim;
            l.max_headers = v;
            check_whole_equals_bytewise(d, n, &l);
        }
        /* every single-byte substitution with the characters the grammar cares about */
        for (size_t at = 0; at < n; at++) {
            for (size_t b = 0; b < sizeof k_bytes; b++) {
                memcpy(buf, d, n);
                buf[at] = k_bytes[b];
                check_whole_equals_bytewise(buf, n, &k_lim);
            }
        }
    }
    for (int iter = 0; iter < 4000; iter++) {
        const char *src = k_valid_heads[drive_rand(&seed) % nheads];
        size_t n = strlen(src);
        memcpy(buf, src, n);
        int nmut = 1 + (int)(drive_rand(&seed) % 3);
        for (int m = 0; m < nmut && n > 1; m++) {
            size_t at = drive_rand(&seed) % n;
            uint8_t c = k_bytes[drive_rand(&seed) % sizeof k_bytes];
            switch (drive_rand(&seed) % 3) {
            case 0:
                buf[at] = c;
                break;
            case 1:
                if (n < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = c;
                    n++;
                }
                break;
            default:
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
                break;
            }
        }
        check_whole_equals_bytewise(buf, n, &k_lim);
    }
}

/* ------------------------------------------------------------------------ */
/* Regression inputs                                                         */

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    uint8_t *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static void replay_lines(const uint8_t *d, size_t n)
{
    size_t cap, max;
    int delim;
    lines_params(d, n, &cap, &max, &delim);
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    assert_non_null(cuts);
    lines_result a, b;
    lines_drive(d, n, cap, max, delim, NULL, 0, &a);
    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    lines_drive(d, n, cap, max, delim, cuts, n > 0 ? n - 1 : 0, &b);
    assert_true(lines_result_equal(&a, &b));
    free(cuts);
}

static void test_regression_inputs_replay_cleanly(void **state)
{
    (void)state;
    static const char *const k_dirs[] = {"parser", "chunked", "lines"};
    size_t count = 0;
    for (size_t k = 0; k < 3; k++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", HTTP_REGRESS_DIR, k_dirs[k]);
        DIR *dp = opendir(dir);
        if (dp == NULL)
            continue;
        struct dirent *e;
        while ((e = readdir(dp)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            size_t n = 0;
            uint8_t *d = read_file(path, &n);
            if (d == NULL)
                continue;
            if (k == 2) {
                replay_lines(d, n);
            } else {
                check_split_invariance(d, n);
                chunked_result a, b;
                size_t cuts[1];
                cuts[0] = n / 2;
                http_drive_chunked(d, n, NULL, 0, 1 << 20, &a);
                http_drive_chunked(d, n, cuts, n > 1 ? 1 : 0, 1 << 20, &b);
                assert_true(chunked_result_equal(&a, &b));
            }
            free(d);
            count++;
        }
        closedir(dp);
    }
    fprintf(stderr, "replayed %zu regression inputs\n", count);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parser_reads_request_line_and_framing_fields),
        cmocka_unit_test(test_parser_needs_more_until_the_empty_line),
        cmocka_unit_test(test_parser_rejects_hostile_input_with_the_right_status),
        cmocka_unit_test(test_parser_rejects_host_outside_the_uri_host_port_grammar),
        cmocka_unit_test(test_parser_enforces_line_head_and_count_limits),
        cmocka_unit_test(test_chunked_decoder_returns_data_and_skips_extensions_and_trailers),
        cmocka_unit_test(test_chunked_decoder_rejects_bad_sizes_and_framing),
        cmocka_unit_test(test_any_split_of_the_input_parses_identically),
        cmocka_unit_test(test_whole_head_fast_path_agrees_with_the_byte_loop),
        cmocka_unit_test(test_random_inputs_parse_identically_in_random_pieces),
        cmocka_unit_test(test_regression_inputs_replay_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
