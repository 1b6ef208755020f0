/*
 * Windows helpers shared by the Win32 platform files and the IOCP backend (never included
 * by core code).
 *
 * Sockets as ints. The library's socket handles are `int` on every OS (asyncio_fd_source,
 * asyncio_tcp_stream, the poller's register calls). A Winsock SOCKET is a kernel handle, and
 * Windows guarantees that kernel handles have only 32 significant bits (they may be
 * truncated to 32 bits and sign-extended back: "Interprocess Communication Between 32-bit
 * and 64-bit Applications"), so the conversion below is lossless; a SOCKET that does not
 * round-trip is refused with ASYNCIO_EMFILE rather than truncated. docs/platforms.md.
 *
 * Errors. asyncio__win_error maps Winsock (WSAE*) and Win32 (ERROR_*) codes to the
 * library's negative codes, so asyncio_strerror and the retry classification work unchanged.
 */
#ifndef ASYNCIO_PLATFORM_WIN_H
#define ASYNCIO_PLATFORM_WIN_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

#include <stdint.h>

/* The SOCKET behind an int handle (sign-extension, see above). */
static inline SOCKET asyncio__win_sock(int fd)
{
    return (SOCKET)(intptr_t)fd;
}

/* The int handle of a SOCKET, or -1 when it does not fit (never happens on real Windows). */
static inline int asyncio__win_fd(SOCKET s)
{
    int fd = (int)(intptr_t)s;
    return asyncio__win_sock(fd) == s && fd >= 0 ? fd : -1;
}

/* A WSAE* or ERROR_* code as a negative ASYNCIO_E* code (ASYNCIO_EIO for unknown ones). */
int asyncio__win_error(DWORD err);

/* asyncio__win_error(WSAGetLastError()). */
int asyncio__wsa_error(void);

/* WSAStartup, once per process (thread-safe); 0 or a negative error. */
int asyncio__winsock_init(void);

#endif
