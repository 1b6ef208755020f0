/* pidfd_open(2) through syscall(2): glibc only wraps it from 2.36 (process_os.h). */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "platform/process_os.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif

int asyncio__pidfd_open(int pid)
{
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : (int)fd;
}
