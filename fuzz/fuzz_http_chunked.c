/*
 * libFuzzer target: the chunked-body decoder of examples/http/parser.c.
 * Property: whole, byte by byte and random pieces (derived from the input)
 * give the same status, body bytes (hash and length) and bytes consumed.
 */
#include <stdlib.h>

#include "http_drive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    chunked_result whole, other;
    size_t *cuts = malloc((size + 1) * sizeof *cuts);
    if (cuts == NULL)
        return 0;
    http_drive_chunked(data, size, NULL, 0, 4096, &whole);
    for (size_t i = 0; i + 1 < size; i++)
        cuts[i] = i + 1;
    http_drive_chunked(data, size, cuts, size > 0 ? size - 1 : 0, 4096, &other);
    if (!chunked_result_equal(&whole, &other))
        abort();
    uint64_t seed = drive_hash(14695981039346656037ull, data, size);
    size_t nc = drive_random_cuts(size, seed, cuts, size);
    http_drive_chunked(data, size, cuts, nc, 4096, &other);
    if (!chunked_result_equal(&whole, &other))
        abort();
    free(cuts);
    return 0;
}
