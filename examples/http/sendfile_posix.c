/*
 * http_sendfile without Linux sendfile(2) (sendfile.h): pread a chunk, send
 * what the socket takes. Bytes read but not sent are read again next time
 * (the offset advances only by what was sent).
 */
#include "sendfile.h"

#include <sys/socket.h>
#include <unistd.h>

#define HTTP_SENDFILE_BUF 16384

ssize_t http_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    char buf[HTTP_SENDFILE_BUF];
    ssize_t got = pread(in_fd, buf, count < sizeof buf ? count : sizeof buf, *offset);
    if (got <= 0)
        return got;
    ssize_t sent = send(out_fd, buf, (size_t)got, 0); /* SO_NOSIGPIPE is set by the library */
    if (sent > 0)
        *offset += sent;
    return sent;
}
