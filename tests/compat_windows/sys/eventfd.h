/* TEST-ONLY (see ../asyncio_test_compat.h): macOS has no eventfd; eventfd() fails with ENOSYS. */
#ifndef ASYNCIO_TEST_COMPAT_SYS_EVENTFD_H
#define ASYNCIO_TEST_COMPAT_SYS_EVENTFD_H

#include <errno.h>
#include <fcntl.h>

#define EFD_NONBLOCK O_NONBLOCK
#define EFD_CLOEXEC  O_CLOEXEC

static inline int eventfd(unsigned int initval, int flags)
{
    (void)initval;
    (void)flags;
    errno = ENOSYS;
    return -1;
}

#endif
