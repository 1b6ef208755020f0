/*
 * Internal helpers shared by every source file: container_of, the two
 * assertion strengths, static assertions. Never included by public headers.
 */
#ifndef ASYNCIO_INTERNAL_H
#define ASYNCIO_INTERNAL_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "asyncio/common.h"
#include "asyncio/error.h"

#define ASYNCIO_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define ASYNCIO_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)

#define ASYNCIO_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define ASYNCIO_UNUSED(x) ((void)(x))

/*
 * A result that must be acted on (Tokio's #[must_use] on the task state
 * transitions, ref_dec and the queue's push results): ignoring one is a
 * leak, a lost wake or a use after free. -Werror in CI makes it an error.
 */
#if defined(__GNUC__) || defined(__clang__)
#define ASYNCIO__MUST_USE __attribute__((warn_unused_result))
#else
#define ASYNCIO__MUST_USE
#endif

#if defined(__GNUC__) || defined(__clang__)
#define ASYNCIO_LIKELY(x) __builtin_expect(!!(x), 1)
#define ASYNCIO_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define ASYNCIO_LIKELY(x) (x)
#define ASYNCIO_UNLIKELY(x) (x)
#endif

/* Always-on check for corruption (refcount underflow, broken invariants). */
#define ASYNCIO_CHECK(cond)                                                                        \
    do {                                                                                           \
        if (ASYNCIO_UNLIKELY(!(cond))) {                                                           \
            fprintf(stderr, "libasyncio: check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Debug-only precondition on hot paths. */
#ifdef NDEBUG
#define ASYNCIO_ASSERT(cond) ((void)0)
#else
#define ASYNCIO_ASSERT(cond) ASYNCIO_CHECK(cond)
#endif

#endif
