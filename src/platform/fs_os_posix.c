/* The OS-dependent part of fs_os.h on Linux and the BSDs (macOS: fs_os_darwin.c). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "platform/fs_os.h"

int asyncio__fs_sync(int fd, bool data_only)
{
    int r;
    do {
        r = data_only ? fdatasync(fd) : fsync(fd);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

void asyncio__fs_stat_mtime(const struct stat *st, int64_t *sec, uint32_t *nsec)
{
    *sec = (int64_t)st->st_mtim.tv_sec;
    *nsec = (uint32_t)st->st_mtim.tv_nsec;
}
