/* asyncio__pipe_open with pipe2(2): both flags atomically (see pipe.h). */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "platform/os_table.h"
#include "platform/pipe.h"

int asyncio__pipe_open(int fds[2])
{
    return asyncio__os.pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0 ? -errno : 0;
}
