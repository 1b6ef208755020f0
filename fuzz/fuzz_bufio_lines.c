/*
 * libFuzzer target: the buffered reader's read_until / read_line
 * (include/asyncio/bufio.h) over an in-memory reader. The first bytes pick
 * the capacity, the limit and the delimiter (lines_params). Property:
 * whole, byte by byte and random pieces (derived from the input) give the
 * same records and oversize events.
 */
#include <stdlib.h>

#include "http_drive.h"
#include "lines_drive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap, max;
    int delim;
    lines_params(data, size, &cap, &max, &delim);
    static lines_result whole, other;
    size_t *cuts = malloc((size + 1) * sizeof *cuts);
    if (cuts == NULL)
        return 0;
    lines_drive(data, size, cap, max, delim, NULL, 0, &whole);
    for (size_t i = 0; i + 1 < size; i++)
        cuts[i] = i + 1;
    lines_drive(data, size, cap, max, delim, cuts, size > 0 ? size - 1 : 0, &other);
    if (!lines_result_equal(&whole, &other))
        abort();
    uint64_t seed = drive_hash(14695981039346656037ull, data, size);
    size_t nc = drive_random_cuts(size, seed, cuts, size);
    lines_drive(data, size, cap, max, delim, cuts, nc, &other);
    if (!lines_result_equal(&whole, &other))
        abort();
    free(cuts);
    return 0;
}
