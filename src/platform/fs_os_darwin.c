/* The OS-dependent part of fs_os.h on macOS (elsewhere: fs_os_posix.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "platform/fs_os.h"

int asyncio__fs_sync(int fd, bool data_only)
{
    ASYNCIO_UNUSED(data_only); /* no fdatasync(2) on macOS: a full sync either way */
    int r;
    do {
        r = fcntl(fd, F_FULLFSYNC);
    } while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == ENOTSUP || errno == ENOTTY || errno == EINVAL)) {
        do {
            r = fsync(fd);
        } while (r < 0 && errno == EINTR);
    }
    return r < 0 ? -errno : 0;
}

void asyncio__fs_stat_mtime(const struct stat *st, int64_t *sec, uint32_t *nsec)
{
    *sec = (int64_t)st->st_mtimespec.tv_sec;
    *nsec = (uint32_t)st->st_mtimespec.tv_nsec;
}
