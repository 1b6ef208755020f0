/* http_sendfile with Linux sendfile(2): the kernel copies, no user buffer (sendfile.h). */
#include "sendfile.h"

#include <sys/sendfile.h>

ssize_t http_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    return sendfile(out_fd, in_fd, offset, count);
}
