/*
 * Windows error mapping (win.h) and the C library's messages for errno values outside the
 * library's table (error_os.h).
 *
 * Winsock reports WSAE* codes, the rest of Win32 ERROR_* codes; the library reports the
 * C library's errno values negated (mingw-w64 and MSVC share them: EAGAIN 11, ECONNRESET 108,
 * ...), so one table turns each into the code a POSIX build would give for the same
 * condition. Codes nobody maps become ASYNCIO_EIO.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "platform/error_os.h"
#include "platform/win.h"

typedef struct win_errmap {
    DWORD win;
    int code;
} win_errmap;

static const win_errmap g_map[] = {
    /* Winsock */
    {WSAEINTR, ASYNCIO_EINTR},
    {WSAEBADF, ASYNCIO_EBADF},
    {WSAEACCES, ASYNCIO_EACCES},
    {WSAEFAULT, ASYNCIO_EFAULT},
    {WSAEINVAL, ASYNCIO_EINVAL},
    {WSAEMFILE, ASYNCIO_EMFILE},
    {WSAEWOULDBLOCK, ASYNCIO_EAGAIN},
    {WSAEINPROGRESS, ASYNCIO_EINPROGRESS},
    {WSAEALREADY, ASYNCIO_EALREADY},
    {WSAENOTSOCK, ASYNCIO_ENOTSOCK},
    {WSAEDESTADDRREQ, ASYNCIO_EDESTADDRREQ},
    {WSAEMSGSIZE, ASYNCIO_EMSGSIZE},
    {WSAEPROTOTYPE, ASYNCIO_EPROTOTYPE},
    {WSAENOPROTOOPT, -ENOPROTOOPT},
    {WSAEPROTONOSUPPORT, ASYNCIO_EPROTONOSUPPORT},
    {WSAESOCKTNOSUPPORT, ASYNCIO_EPROTONOSUPPORT},
    {WSAEOPNOTSUPP, ASYNCIO_ENOTSUP},
    {WSAEPFNOSUPPORT, ASYNCIO_EAFNOSUPPORT},
    {WSAEAFNOSUPPORT, ASYNCIO_EAFNOSUPPORT},
    {WSAEADDRINUSE, ASYNCIO_EADDRINUSE},
    {WSAEADDRNOTAVAIL, ASYNCIO_EADDRNOTAVAIL},
    {WSAENETDOWN, ASYNCIO_ENETDOWN},
    {WSAENETUNREACH, ASYNCIO_ENETUNREACH},
    {WSAENETRESET, ASYNCIO_ENETRESET},
    {WSAECONNABORTED, ASYNCIO_ECONNABORTED},
    {WSAECONNRESET, ASYNCIO_ECONNRESET},
    {WSAENOBUFS, ASYNCIO_ENOBUFS},
    {WSAEISCONN, ASYNCIO_EISCONN},
    {WSAENOTCONN, ASYNCIO_ENOTCONN},
    {WSAESHUTDOWN, ASYNCIO_EPIPE}, /* POSIX send() after shutdown(SHUT_WR) says EPIPE */
    {WSAETIMEDOUT, ASYNCIO_ETIMEDOUT},
    {WSAECONNREFUSED, ASYNCIO_ECONNREFUSED},
    {WSAELOOP, ASYNCIO_ELOOP},
    {WSAENAMETOOLONG, ASYNCIO_ENAMETOOLONG},
    {WSAEHOSTDOWN, ASYNCIO_EHOSTDOWN},
    {WSAEHOSTUNREACH, ASYNCIO_EHOSTUNREACH},
    {WSAENOTEMPTY, ASYNCIO_ENOTEMPTY},
    {WSAEDQUOT, ASYNCIO_EDQUOT},
    {WSAECANCELLED, ASYNCIO_ECANCELED},
    {WSA_OPERATION_ABORTED, ASYNCIO_ECANCELED},
    {WSA_NOT_ENOUGH_MEMORY, ASYNCIO_ENOMEM},
    {WSANOTINITIALISED, ASYNCIO_EINVAL},
    {WSAHOST_NOT_FOUND, ASYNCIO_EHOST_NOT_FOUND},
    {WSATRY_AGAIN, ASYNCIO_EAGAIN},
    /* Win32 */
    {ERROR_FILE_NOT_FOUND, ASYNCIO_ENOENT},
    {ERROR_PATH_NOT_FOUND, ASYNCIO_ENOENT},
    {ERROR_INVALID_NAME, ASYNCIO_ENOENT},
    {ERROR_ACCESS_DENIED, ASYNCIO_EACCES},
    {ERROR_INVALID_HANDLE, ASYNCIO_EBADF},
    {ERROR_NOT_ENOUGH_MEMORY, ASYNCIO_ENOMEM},
    {ERROR_OUTOFMEMORY, ASYNCIO_ENOMEM},
    {ERROR_NO_SYSTEM_RESOURCES, ASYNCIO_ENOMEM},
    {ERROR_INVALID_PARAMETER, ASYNCIO_EINVAL},
    {ERROR_TOO_MANY_OPEN_FILES, ASYNCIO_EMFILE},
    {ERROR_FILE_EXISTS, ASYNCIO_EEXIST},
    {ERROR_ALREADY_EXISTS, ASYNCIO_EEXIST},
    {ERROR_BROKEN_PIPE, ASYNCIO_EPIPE},
    {ERROR_NO_DATA, ASYNCIO_EPIPE},
    {ERROR_OPERATION_ABORTED, ASYNCIO_ECANCELED},
    {ERROR_NOT_SUPPORTED, ASYNCIO_ENOTSUP},
    {ERROR_CALL_NOT_IMPLEMENTED, ASYNCIO_ENOSYS},
    {ERROR_DIR_NOT_EMPTY, ASYNCIO_ENOTEMPTY},
    {ERROR_DISK_FULL, ASYNCIO_ENOSPC},
    {ERROR_HANDLE_DISK_FULL, ASYNCIO_ENOSPC},
    {ERROR_SHARING_VIOLATION, ASYNCIO_EBUSY},
    {ERROR_LOCK_VIOLATION, ASYNCIO_EBUSY},
    {ERROR_DIRECTORY, ASYNCIO_ENOTDIR},
    {ERROR_FILENAME_EXCED_RANGE, ASYNCIO_ENAMETOOLONG},
    {ERROR_NOT_SAME_DEVICE, ASYNCIO_EXDEV},
    {ERROR_WRITE_PROTECT, ASYNCIO_EROFS},
    {ERROR_NETNAME_DELETED, ASYNCIO_ECONNRESET},
    {ERROR_CONNECTION_REFUSED, ASYNCIO_ECONNREFUSED},
    {ERROR_CONNECTION_ABORTED, ASYNCIO_ECONNABORTED},
    {ERROR_NETWORK_UNREACHABLE, ASYNCIO_ENETUNREACH},
    {ERROR_HOST_UNREACHABLE, ASYNCIO_EHOSTUNREACH},
    {ERROR_SEM_TIMEOUT, ASYNCIO_ETIMEDOUT},
    {ERROR_TIMEOUT, ASYNCIO_ETIMEDOUT},
    {WAIT_TIMEOUT, ASYNCIO_ETIMEDOUT},
    {ERROR_IO_PENDING, ASYNCIO_EINPROGRESS},
    {ERROR_NEGATIVE_SEEK, ASYNCIO_EINVAL},
    {ERROR_SEEK_ON_DEVICE, ASYNCIO_ESPIPE},
};

int asyncio__win_error(DWORD err)
{
    for (size_t i = 0; i < ASYNCIO_ARRAY_LEN(g_map); i++)
        if (g_map[i].win == err)
            return g_map[i].code;
    return ASYNCIO_EIO;
}

int asyncio__wsa_error(void)
{
    return asyncio__win_error((DWORD)WSAGetLastError());
}

static INIT_ONCE g_wsa_once = INIT_ONCE_STATIC_INIT;
static int g_wsa_rc;

static BOOL CALLBACK wsa_start(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    WSADATA data;
    int rc = WSAStartup(MAKEWORD(2, 2), &data);
    g_wsa_rc = rc == 0 ? 0 : asyncio__win_error((DWORD)rc);
    return TRUE;
}

int asyncio__winsock_init(void)
{
    /* InitOnceExecuteOnce: the first caller runs wsa_start, the others wait for it. */
    InitOnceExecuteOnce(&g_wsa_once, wsa_start, NULL, NULL);
    return g_wsa_rc;
}

/* error_os.h: the C runtime's messages; it has no names for errno values. */
enum { MSG_SIZE = 128 };
static _Thread_local char tl_msg[MSG_SIZE];

const char *asyncio__os_strerror(int errnum)
{
    if (strerror_s(tl_msg, sizeof tl_msg, errnum) != 0 || tl_msg[0] == '\0')
        return NULL;
    /* The CRT answers "Unknown error" for values it does not know. */
    return strncmp(tl_msg, "Unknown error", 13) == 0 ? NULL : tl_msg;
}

const char *asyncio__os_errname(int errnum)
{
    (void)errnum;
    return NULL;
}
