/* No pidfd outside Linux: children are waited for through SIGCHLD (process_os.h). */
#include <errno.h>

#include "platform/process_os.h"

int asyncio__pidfd_open(int pid)
{
    (void)pid;
    return -ENOSYS;
}
