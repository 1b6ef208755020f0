/* TEST-ONLY (see ../asyncio_test_compat.h): macOS has no prctl(); it fails with ENOSYS. */
#ifndef ASYNCIO_TEST_COMPAT_SYS_PRCTL_H
#define ASYNCIO_TEST_COMPAT_SYS_PRCTL_H

#include <errno.h>

#define PR_SET_PDEATHSIG 1

static inline int prctl(int option, ...)
{
    (void)option;
    errno = ENOSYS;
    return -1;
}

#endif
