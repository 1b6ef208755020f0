/*
 * OS side of error messages: what the C library says about an errno value
 * that libasyncio's own table (include/asyncio/error.h) does not list. Used
 * by src/error.c only; system errors pass through the library unchanged, so
 * their text must come from the system.
 */
#ifndef ASYNCIO_PLATFORM_ERROR_OS_H
#define ASYNCIO_PLATFORM_ERROR_OS_H

/*
 * The system's message for errnum (> 0), or NULL when the system knows no
 * such error. The string is static, or on C libraries without
 * strerrordesc_np a thread-local buffer valid until this thread's next call.
 * Thread-safe.
 */
const char *asyncio__os_strerror(int errnum);

/* The system's symbolic name for errnum ("ENOTTY"), or NULL. Static; thread-safe. */
const char *asyncio__os_errname(int errnum);

#endif
