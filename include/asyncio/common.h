/*
 * libasyncio: definitions shared by every public header.
 *
 * ASYNCIO_EXTERN marks each public declaration. The library is built with
 * -fvisibility=hidden, so only marked symbols are exported from the shared
 * object; everything else (including cross-file internals named asyncio__*)
 * stays private.
 */
#ifndef ASYNCIO_COMMON_H
#define ASYNCIO_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(ASYNCIO_SHARED)
#if defined(ASYNCIO_BUILDING)
#define ASYNCIO_EXTERN __declspec(dllexport)
#else
#define ASYNCIO_EXTERN __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define ASYNCIO_EXTERN __attribute__((visibility("default")))
#else
#define ASYNCIO_EXTERN
#endif

#ifdef __cplusplus
#define ASYNCIO_BEGIN_DECLS extern "C" {
#define ASYNCIO_END_DECLS }
#else
#define ASYNCIO_BEGIN_DECLS
#define ASYNCIO_END_DECLS
#endif

/** Library version, also available at run time through asyncio_version(). */
#define ASYNCIO_VERSION_MAJOR 0
#define ASYNCIO_VERSION_MINOR 1
#define ASYNCIO_VERSION_PATCH 0

/**
 * An intrusive list link, embedded in futures that wait in a list (timers,
 * semaphore and notify waiters, signal listeners). Private: never touch it.
 * It is the library's own list node type (src/util/list.h uses this very
 * struct), so the library accesses it with no cast. NULL links: in no list.
 */
typedef struct asyncio_link {
    /* private */
    struct asyncio_link *next;
    struct asyncio_link *prev;
} asyncio_link;

ASYNCIO_BEGIN_DECLS

/**
 * The library's version as (major << 16) | (minor << 8) | patch.
 * Thread-safe; never fails.
 */
ASYNCIO_EXTERN unsigned asyncio_version(void);

ASYNCIO_END_DECLS

#endif
