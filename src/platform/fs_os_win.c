/*
 * fs_os.h on Windows: not ported yet. Every file, directory and metadata call returns
 * ASYNCIO_ENOTSUP, so asyncio_fs_* futures complete with ASYNCIO_ENOTSUP
 * (docs/backends.md lists the gap). The port is CreateFileW / ReadFile / WriteFile with
 * UTF-8 paths converted to UTF-16, FindFirstFileExW for directories, run on the blocking
 * pool as on POSIX.
 */
#include "internal.h"
#include "platform/fs_os.h"

int asyncio__fs_check_open_flags(uint32_t flags)
{
    (void)flags;
    return ASYNCIO_ENOTSUP;
}

int asyncio__fs_open(const char *path, uint32_t flags, uint32_t mode, int *fd_out)
{
    (void)path;
    (void)flags;
    (void)mode;
    *fd_out = -1;
    return ASYNCIO_ENOTSUP;
}

int asyncio__fs_close(int fd)
{
    return fd < 0 ? ASYNCIO_EBADF : ASYNCIO_ENOTSUP;
}

int asyncio__fs_read(int fd, void *buf, size_t len, size_t *n_out)
{
    (void)fd;
    (void)buf;
    (void)len;
    (void)n_out;
    return ASYNCIO_ENOTSUP;
}

int asyncio__fs_write(int fd, const void *buf, size_t len, size_t *n_out)
{
    (void)fd;
    (void)buf;
    (void)len;
    (void)n_out;
    return ASYNCIO_ENOTSUP;
}

int asyncio__fs_write_all(int fd, const void *buf, size_t len)
{
    (void)fd;
    (void)buf;
    (void)len;
    return ASYNCIO_ENOTSUP;
}

int asyncio__fs_seek_cur(int fd, int64_t delta)
{
    (void)fd;
    (void)delta;
    return ASYNCIO_ENOTSUP;
}

int asyncio__fs_sync(int fd, bool data_only)
{
    (void)fd;
    (void)data_only;
    return ASYNCIO_ENOTSUP;
}

void asyncio__fs_stat_mtime(const struct stat *st, int64_t *sec, uint32_t *nsec)
{
    (void)st;
    *sec = 0;
    *nsec = 0;
}

int asyncio__fs_fstat(int fd, asyncio_fs_metadata *out)
{
    (void)fd;
    (void)out;
    return ASYNCIO_ENOTSUP;
}

int asyncio__fs_stat(const char *path, bool follow_links, asyncio_fs_metadata *out)
{
    (void)path;
    (void)follow_links;
    (void)out;
    return ASYNCIO_ENOTSUP;
}

int asyncio__fs_mkdir_all(char *path, uint32_t mode)
{
    (void)path;
    (void)mode;
    return ASYNCIO_ENOTSUP;
}

int asyncio__fs_remove(const char *path)
{
    (void)path;
    return ASYNCIO_ENOTSUP;
}

int asyncio__fs_rename(const char *from, const char *to)
{
    (void)from;
    (void)to;
    return ASYNCIO_ENOTSUP;
}

int asyncio__fs_opendir(const char *path, asyncio__fs_dir **out)
{
    (void)path;
    *out = NULL;
    return ASYNCIO_ENOTSUP;
}

int asyncio__fs_readdir(asyncio__fs_dir *d, char *name, asyncio_file_type *type)
{
    (void)d;
    (void)name;
    (void)type;
    return ASYNCIO_ENOTSUP;
}

void asyncio__fs_closedir(asyncio__fs_dir *d)
{
    (void)d;
}
