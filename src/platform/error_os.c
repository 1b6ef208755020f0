/*
 * Messages and names for errno values outside the library's table.
 *
 * glibc >= 2.32 has strerrordesc_np / strerrorname_np: static strings, NULL
 * for an unknown value, no buffer and no lock. Elsewhere strerror_r writes
 * into a thread-local buffer; it comes in two flavours with one name (XSI
 * returns int and fills the buffer, GNU returns the string, which may or may
 * not be the buffer), told apart at compile time by the type of its result.
 *
 * Neither flavour reliably says "unknown": musl's XSI strerror_r returns 0
 * with "No error information" for every value it does not know, and glibc's
 * GNU one returns "Unknown error 3999". So the fallback also asks for the
 * message of a value no system uses (INT_MAX) and treats an answer equal to
 * it, up to a trailing number, as unknown (NULL).
 *
 * ASYNCIO_ERROR_OS_FALLBACK forces the fallback on new glibc too, so the
 * glibc test build runs it (tests/CMakeLists.txt: error_fallback).
 */
#include "platform/error_os.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32)) && \
    !defined(ASYNCIO_ERROR_OS_FALLBACK)

const char *asyncio__os_strerror(int errnum)
{
    return strerrordesc_np(errnum);
}

const char *asyncio__os_errname(int errnum)
{
    return strerrorname_np(errnum);
}

#else

enum { MSG_SIZE = 128 };
static _Thread_local char tl_msg[MSG_SIZE];

/* XSI: 0 and the buffer filled, or an error number for an unknown errnum. */
static const char *xsi_result(int rc, char *buf)
{
    return rc == 0 && buf[0] != '\0' ? buf : NULL;
}

/* GNU: the message itself (static or in buf); never hand out an empty one. */
static const char *gnu_result(char *msg, char *buf)
{
    (void)buf;
    return msg != NULL && msg[0] != '\0' ? msg : NULL;
}

#define ASYNCIO__STRERROR_R_RESULT(r, buf) \
    _Generic((r), int : xsi_result, char * : gnu_result)(r, buf)

/* The system's text for errnum in buf, or NULL when it has none at all. */
static const char *system_text(int errnum, char *buf)
{
    buf[0] = '\0';
    return ASYNCIO__STRERROR_R_RESULT(strerror_r(errnum, buf, MSG_SIZE), buf);
}

/* Length of s without a trailing decimal number ("Unknown error 3999" -> 14). */
static size_t len_without_number(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] >= '0' && s[n - 1] <= '9')
        n--;
    if (n > 0 && s[n - 1] == '-')
        n--;
    return n;
}

const char *asyncio__os_strerror(int errnum)
{
    const char *msg = system_text(errnum, tl_msg);
    if (msg == NULL)
        return NULL;
    char unknown_buf[MSG_SIZE];
    const char *unknown = system_text(INT_MAX, unknown_buf);
    if (unknown != NULL) {
        size_t n = len_without_number(msg);
        if (n == len_without_number(unknown) && memcmp(msg, unknown, n) == 0)
            return NULL; /* the C library's "unknown" text */
    }
    return msg;
}

const char *asyncio__os_errname(int errnum)
{
    (void)errnum;
    return NULL;
}

#endif
