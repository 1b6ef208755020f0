/*
 * Error names and messages, generated from the X-macro tables in
 * include/asyncio/error.h, plus the version query.
 */
#include "internal.h"
#include "platform/error_os.h"

/*
 * Codes between the library range and 0 that the table does not list are
 * system errors passed through unchanged (-ENOTTY, -ESRCH, ...): the system
 * names them. The range check also keeps -err from overflowing.
 */
static int system_errnum(int err)
{
    return err < 0 && err > ASYNCIO_ERR_LIB_MAX ? -err : 0;
}

unsigned asyncio_version(void)
{
    return (ASYNCIO_VERSION_MAJOR << 16) | (ASYNCIO_VERSION_MINOR << 8) | ASYNCIO_VERSION_PATCH;
}

const char *asyncio_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case ASYNCIO_PENDING:
        return "operation pending";
#define XX_ERRNO(name, msg) \
    case ASYNCIO_##name:    \
        return msg;
        ASYNCIO_ERRNO_MAP(XX_ERRNO)
#undef XX_ERRNO
#define XX_LIB(name, value, msg) \
    case ASYNCIO_E##name:        \
        return msg;
        ASYNCIO_LIB_ERR_MAP(XX_LIB)
#undef XX_LIB
    default:
        break;
    }
    int errnum = system_errnum(err);
    const char *msg = errnum != 0 ? asyncio__os_strerror(errnum) : NULL;
    return msg != NULL ? msg : "unknown error";
}

const char *asyncio_err_name(int err)
{
    switch (err) {
    case 0:
        return "OK";
    case ASYNCIO_PENDING:
        return "PENDING";
#define XX_ERRNO(name, msg) \
    case ASYNCIO_##name:    \
        return #name;
        ASYNCIO_ERRNO_MAP(XX_ERRNO)
#undef XX_ERRNO
#define XX_LIB(name, value, msg) \
    case ASYNCIO_E##name:        \
        return "E" #name;
        ASYNCIO_LIB_ERR_MAP(XX_LIB)
#undef XX_LIB
    default:
        break;
    }
    int errnum = system_errnum(err);
    const char *name = errnum != 0 ? asyncio__os_errname(errnum) : NULL;
    return name != NULL ? name : "UNKNOWN";
}
