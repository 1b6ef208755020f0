/*
 * File-to-socket transfer for the static route (conn.c): Linux sendfile(2)
 * (sendfile_linux.c), a pread + send copy elsewhere (sendfile_posix.c; macOS
 * and FreeBSD have a sendfile with other signatures, not used by this
 * example). CMake picks the file.
 */
#ifndef HTTP_SENDFILE_H
#define HTTP_SENDFILE_H

#include <sys/types.h>

/*
 * Sends up to `count` bytes of in_fd from *offset to the non-blocking socket
 * out_fd and advances *offset. Returns the bytes sent, or -1 with errno
 * (EAGAIN when the socket is full), as sendfile(2).
 */
ssize_t http_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);

#endif
