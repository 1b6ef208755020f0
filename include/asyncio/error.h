/*
 * libasyncio: error codes.
 *
 * Every fallible function returns an int: 0 on success, a negative
 * errno-style code on failure. Poll functions may also return the positive
 * ASYNCIO_PENDING. On POSIX systems ASYNCIO_Exxx == -Exxx, so callers may
 * compare against either spelling. Codes that have no errno equivalent live
 * in the reserved range [ASYNCIO_ERR_LIB_MIN, ASYNCIO_ERR_LIB_MAX].
 *
 * Names and messages come from the single X-macro table below, so
 * asyncio_err_name() and asyncio_strerror() can never drift apart.
 */
#ifndef ASYNCIO_ERROR_H
#define ASYNCIO_ERROR_H

#include <errno.h>

#include "common.h"

#ifdef _WIN32
/*
 * The Windows C runtimes (MSVC, mingw-w64) define every errno value the table uses but
 * these three; they get fixed values above any the runtimes use (docs/errors.md).
 */
#ifndef EDQUOT
#define EDQUOT 3001
#endif
#ifndef ESHUTDOWN
#define ESHUTDOWN 3002
#endif
#ifndef EHOSTDOWN
#define EHOSTDOWN 3003
#endif
#endif

/** Returned by poll functions whose operation has not finished yet. */
#define ASYNCIO_PENDING 1

/** Library-specific codes occupy this range (inclusive, both negative). */
#define ASYNCIO_ERR_LIB_MIN (-4095)
#define ASYNCIO_ERR_LIB_MAX (-4000)

/*
 * XX(name, message): errno-backed codes used by the library.
 * ASYNCIO_<name> == -<name> on POSIX.
 */
#define ASYNCIO_ERRNO_MAP(XX)                                                                      \
    XX(EPERM, "operation not permitted")                                                           \
    XX(ENOENT, "no such file, directory or registration")                                          \
    XX(EINTR, "interrupted system call")                                                           \
    XX(EIO, "input/output error")                                                                  \
    XX(EBADF, "bad file descriptor")                                                               \
    XX(EAGAIN, "resource temporarily unavailable")                                                 \
    XX(ENOMEM, "out of memory")                                                                    \
    XX(EACCES, "permission denied")                                                                \
    XX(EFAULT, "bad address")                                                                      \
    XX(EBUSY, "resource busy")                                                                     \
    XX(EEXIST, "already exists or already registered")                                             \
    XX(ENOTDIR, "not a directory")                                                                 \
    XX(EISDIR, "is a directory")                                                                   \
    XX(EINVAL, "invalid argument")                                                                 \
    XX(ENFILE, "file table overflow")                                                              \
    XX(EMFILE, "too many open files")                                                              \
    XX(ENOSPC, "no space left on device")                                                          \
    XX(EPIPE, "broken pipe")                                                                       \
    XX(ERANGE, "result out of range")                                                              \
    XX(ENAMETOOLONG, "name too long")                                                              \
    XX(ENOSYS, "function not implemented")                                                         \
    XX(ELOOP, "too many symbolic links")                                                           \
    XX(EOVERFLOW, "value too large")                                                               \
    XX(EMSGSIZE, "message too long")                                                               \
    XX(EPROTO, "protocol error")                                                                   \
    XX(ENOTSOCK, "not a socket")                                                                   \
    XX(EADDRINUSE, "address already in use")                                                       \
    XX(EADDRNOTAVAIL, "address not available")                                                     \
    XX(ENETUNREACH, "network unreachable")                                                         \
    XX(ECONNABORTED, "connection aborted")                                                         \
    XX(ECONNRESET, "connection reset by peer")                                                     \
    XX(ENOBUFS, "no buffer space available")                                                       \
    XX(EISCONN, "socket is already connected")                                                     \
    XX(ENOTCONN, "socket is not connected")                                                        \
    XX(ETIMEDOUT, "operation timed out")                                                           \
    XX(ECONNREFUSED, "connection refused")                                                         \
    XX(EHOSTUNREACH, "host unreachable")                                                           \
    XX(EALREADY, "operation already in progress")                                                  \
    XX(EINPROGRESS, "operation in progress")                                                       \
    XX(ECANCELED, "operation canceled")                                                            \
    XX(ENOTSUP, "operation not supported")                                                         \
    XX(ENODEV, "no such device or interface")                                                      \
    XX(ENXIO, "no such device or address")                                                         \
    XX(ESPIPE, "illegal seek")                                                                     \
    XX(EROFS, "read-only file system")                                                             \
    XX(EFBIG, "file too large")                                                                    \
    XX(EXDEV, "cross-device link")                                                                 \
    XX(ENOTEMPTY, "directory not empty")                                                           \
    XX(ETXTBSY, "text file busy")                                                                  \
    XX(EDQUOT, "disk quota exceeded")                                                              \
    XX(EPROTOTYPE, "wrong protocol type for socket")                                               \
    XX(EPROTONOSUPPORT, "protocol not supported")                                                  \
    XX(EAFNOSUPPORT, "address family not supported")                                               \
    XX(EDESTADDRREQ, "destination address required")                                               \
    XX(ENETDOWN, "network is down")                                                                \
    XX(ENETRESET, "network dropped connection on reset")                                           \
    XX(ESHUTDOWN, "cannot send after socket shutdown")                                             \
    XX(EHOSTDOWN, "host is down")                                                                  \
    XX(ESRCH, "no such process")                                                                   \
    XX(ECHILD, "no child processes")                                                               \
    XX(ENOEXEC, "exec format error")                                                               \
    XX(E2BIG, "argument list too long")

/* XX(name, value, message): codes with no errno equivalent. */
#define ASYNCIO_LIB_ERR_MAP(XX)                                                                    \
    XX(UNEXPECTED_EOF, -4000, "unexpected end of file")                                            \
    XX(CLOSED, -4001, "closed")                                                                    \
    XX(HOST_NOT_FOUND, -4002, "host name not found")                                               \
    XX(WRITE_ZERO, -4003, "write accepted zero bytes")

/** Error codes: ASYNCIO_<errno name> and ASYNCIO_E<library name>. */
enum asyncio_errno {
#define ASYNCIO__ERRNO_ENUM(name, msg) ASYNCIO_##name = -(name),
    ASYNCIO_ERRNO_MAP(ASYNCIO__ERRNO_ENUM)
#undef ASYNCIO__ERRNO_ENUM
#define ASYNCIO__LIB_ENUM(name, value, msg) ASYNCIO_E##name = (value),
        ASYNCIO_LIB_ERR_MAP(ASYNCIO__LIB_ENUM)
#undef ASYNCIO__LIB_ENUM
};

ASYNCIO_BEGIN_DECLS

/**
 * Human-readable message for an error code (negative), 0 ("success") or
 * ASYNCIO_PENDING. A system error the table below does not list (-ENOTTY,
 * -EDOM, ...) gets the C library's message; codes nobody knows give
 * "unknown error". Never free the returned string: it is static, except that
 * a system message on a C library without strerrordesc_np (glibc < 2.32,
 * musl, BSDs) lives in a thread-local buffer valid until this thread's next
 * call. Thread-safe; never fails.
 */
ASYNCIO_EXTERN const char *asyncio_strerror(int err);

/**
 * Symbolic name of an error code, e.g. "EINVAL" for ASYNCIO_EINVAL, "OK"
 * for 0, "PENDING" for ASYNCIO_PENDING; a system error outside the table
 * gets the C library's name where it has one (glibc >= 2.32:
 * strerrorname_np); "UNKNOWN" otherwise. Static string; thread-safe; never
 * fails.
 */
ASYNCIO_EXTERN const char *asyncio_err_name(int err);

ASYNCIO_END_DECLS

#endif
