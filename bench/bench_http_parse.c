/*
 * bench_http_parse: the HTTP example's request-head parser on its own.
 *
 * Parses each sample head N times (whole, as the server sees a pipelined or
 * keep-alive request) and prints ns per parse, median and min-max of REPS
 * runs. Under callgrind (--reps 1) the instruction count per parse is the
 * figure to compare (docs/performance.md): it does not depend on the noise
 * of this machine.
 *
 *   bench_http_parse [--n N] [--reps R] [--only NAME]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/parser.h"

static const struct sample {
    const char *name;
    const char *head;
} k_samples[] = {
    /* what wrk sends (bench/wrk_pipeline.lua) */
    {"wrk", "GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"},
    {"curl", "GET /static/index.html HTTP/1.1\r\nHost: localhost:8080\r\n"
             "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"},
    {"browser",
     "GET /static/app.js?v=20261207 HTTP/1.1\r\nHost: www.example.com\r\n"
     "Connection: keep-alive\r\n"
     "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36\r\n"
     "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
     "Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n"
     "Cache-Control: max-age=0\r\nSec-Fetch-Mode: navigate\r\n"
     "Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n\r\n"},
    {"post", "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Content-Length: 1024\r\n\r\n"},
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    long n = 1000000;
    int reps = 5;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            n = atol(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--n N] [--reps R] [--only NAME]\n", argv[0]);
            return 2;
        }
    }
    if (n <= 0 || reps <= 0 || reps > 100) {
        fprintf(stderr, "bench_http_parse: --n and --reps must be positive (reps <= 100)\n");
        return 2;
    }
    const http_limits lim = HTTP_LIMITS_DEFAULT;
    printf("%-8s %6s %12s %12s %12s\n", "sample", "bytes", "ns/parse", "min", "max");
    for (size_t s = 0; s < sizeof k_samples / sizeof k_samples[0]; s++) {
        if (only != NULL && strcmp(only, k_samples[s].name) != 0)
            continue;
        const uint8_t *msg = (const uint8_t *)k_samples[s].head;
        size_t len = strlen(k_samples[s].head);
        double t[100];
        unsigned long sink = 0;
        for (int r = 0; r < reps; r++) {
            double t0 = now_ns();
            for (long i = 0; i < n; i++) {
                http_parser p;
                http_parser_reset(&p);
                if (http_parse_head(&p, msg, len, &lim) != HTTP_PARSE_DONE) {
                    fprintf(stderr, "bench_http_parse: sample %s did not parse\n",
                            k_samples[s].name);
                    return 1;
                }
                sink += p.req.head_len;
                __asm__ volatile("" : : "r"(msg) : "memory"); /* no hoisting across parses */
            }
            t[r] = (now_ns() - t0) / (double)n;
        }
        qsort(t, (size_t)reps, sizeof t[0], cmp_double);
        printf("%-8s %6zu %12.1f %12.1f %12.1f\n", k_samples[s].name, len, t[reps / 2], t[0],
               t[reps - 1]);
        if (sink != (unsigned long)n * reps * len)
            return 1;
    }
    return 0;
}
