/* asyncio__pipe_open without pipe2(2): pipe(2), then fcntl(2) on each end (see pipe.h). */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "platform/os_table.h"
#include "platform/pipe.h"

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

int asyncio__pipe_open(int fds[2])
{
    if (asyncio__os.pipe(fds) < 0)
        return -errno;
    int rc = set_flags(fds[0]);
    if (rc == 0)
        rc = set_flags(fds[1]);
    if (rc < 0) {
        asyncio__os.close(fds[0]);
        asyncio__os.close(fds[1]);
        fds[0] = fds[1] = -1;
    }
    return rc;
}
