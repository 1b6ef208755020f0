/*
 * Messages and names for errno values outside the library's table.
 *
 * glibc >= 2.32 has strerrordesc_np / strerrorname_np: static strings, NULL
 * for an unknown value, no buffer and no lock. Elsewhere strerror_r writes
 * into a thread-local buffer; it comes in two flavours with one name (XSI
 * returns int and fills the buffer, GNU returns the string, which may or may
 * not be the buffer), told apart at compile time by the type of its result.
 */
#include "platform/error_os.h"

#include <string.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))

const char *asyncio__os_strerror(int errnum)
{
    return strerrordesc_np(errnum);
}

const char *asyncio__os_errname(int errnum)
{
    return strerrorname_np(errnum);
}

#else

static _Thread_local char tl_msg[128];

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

const char *asyncio__os_strerror(int errnum)
{
    tl_msg[0] = '\0';
    return ASYNCIO__STRERROR_R_RESULT(strerror_r(errnum, tl_msg, sizeof tl_msg), tl_msg);
}

const char *asyncio__os_errname(int errnum)
{
    (void)errnum;
    return NULL;
}

#endif
