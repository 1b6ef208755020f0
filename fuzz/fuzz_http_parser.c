/*
 * libFuzzer target: the HTTP request parser (heads, Content-Length and
 * chunked bodies, pipelined requests) of examples/http/parser.c.
 * Property: the input parsed whole, byte by byte, and in random pieces
 * (cut points derived from the input) gives identical results.
 */
#include <stdlib.h>

#include "http_drive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const http_limits lim = {256, 512, 16, 4096}; /* small: limits get hit */
    static drive_result whole, other;
    size_t *cuts = malloc((size + 1) * sizeof *cuts);
    if (cuts == NULL)
        return 0;
    http_drive(data, size, NULL, 0, &lim, &whole);
    for (size_t i = 0; i + 1 < size; i++)
        cuts[i] = i + 1;
    http_drive(data, size, cuts, size > 0 ? size - 1 : 0, &lim, &other);
    if (!drive_result_equal(&whole, &other))
        abort();
    uint64_t seed = drive_hash(14695981039346656037ull, data, size);
    size_t nc = drive_random_cuts(size, seed, cuts, size);
    http_drive(data, size, cuts, nc, &lim, &other);
    if (!drive_result_equal(&whole, &other))
        abort();
    free(cuts);
    return 0;
}
