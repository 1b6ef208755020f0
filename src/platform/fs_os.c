/*
 * File-system calls (fs_os.h): POSIX open / read / write / fsync / stat /
 * mkdir / unlink / rmdir / rename / readdir behind negative error codes.
 * What differs by OS (fsync flavours, the stat time field) is in
 * fs_os_posix.c / fs_os_darwin.c, picked by CMake.
 */
#include "platform/fs_os.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define ACCESS_FLAGS (ASYNCIO_OPEN_READ | ASYNCIO_OPEN_WRITE | ASYNCIO_OPEN_APPEND)
#define ALL_FLAGS \
    (ACCESS_FLAGS | ASYNCIO_OPEN_CREATE | ASYNCIO_OPEN_CREATE_NEW | ASYNCIO_OPEN_TRUNCATE)

int asyncio__fs_check_open_flags(uint32_t flags)
{
    bool writes = (flags & (ASYNCIO_OPEN_WRITE | ASYNCIO_OPEN_APPEND)) != 0;
    if ((flags & ~(uint32_t)ALL_FLAGS) != 0 || (flags & ACCESS_FLAGS) == 0)
        return ASYNCIO_EINVAL;
    if (!writes &&
        (flags & (ASYNCIO_OPEN_CREATE | ASYNCIO_OPEN_CREATE_NEW | ASYNCIO_OPEN_TRUNCATE)) != 0)
        return ASYNCIO_EINVAL;
    if ((flags & ASYNCIO_OPEN_TRUNCATE) && (flags & ASYNCIO_OPEN_APPEND))
        return ASYNCIO_EINVAL;
    return 0;
}

int asyncio__fs_open_os_flags(uint32_t flags)
{
    bool r = (flags & ASYNCIO_OPEN_READ) != 0;
    bool w = (flags & (ASYNCIO_OPEN_WRITE | ASYNCIO_OPEN_APPEND)) != 0;
    int o = O_CLOEXEC | (r && w ? O_RDWR : w ? O_WRONLY : O_RDONLY);
    if (flags & ASYNCIO_OPEN_APPEND)
        o |= O_APPEND;
    if (flags & ASYNCIO_OPEN_CREATE_NEW)
        o |= O_CREAT | O_EXCL;
    else if (flags & ASYNCIO_OPEN_CREATE)
        o |= O_CREAT;
    if (flags & ASYNCIO_OPEN_TRUNCATE)
        o |= O_TRUNC;
    return o;
}

int asyncio__fs_open(const char *path, uint32_t flags, uint32_t mode, int *fd_out)
{
    int rc = asyncio__fs_check_open_flags(flags);
    if (rc < 0)
        return rc;
    int fd;
    do {
        fd = open(path, asyncio__fs_open_os_flags(flags), (mode_t)(mode != 0 ? mode : 0666));
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    *fd_out = fd;
    return 0;
}

int asyncio__fs_close(int fd)
{
    return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

int asyncio__fs_read(int fd, void *buf, size_t len, size_t *n_out)
{
    ssize_t n;
    do {
        n = read(fd, buf, len);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    *n_out = (size_t)n;
    return 0;
}

int asyncio__fs_write(int fd, const void *buf, size_t len, size_t *n_out)
{
    ssize_t n;
    do {
        n = write(fd, buf, len);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    *n_out = (size_t)n;
    return 0;
}

int asyncio__fs_write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len > 0) {
        size_t n = 0;
        int rc = asyncio__fs_write(fd, p, len, &n);
        if (rc < 0)
            return rc;
        if (n == 0)
            return ASYNCIO_EWRITE_ZERO;
        p += n;
        len -= n;
    }
    return 0;
}

int asyncio__fs_seek_cur(int fd, int64_t delta)
{
    return lseek(fd, (off_t)delta, SEEK_CUR) < 0 ? -errno : 0;
}

static asyncio_file_type type_of_mode(mode_t m)
{
    if (S_ISREG(m))
        return ASYNCIO_FILE_TYPE_FILE;
    if (S_ISDIR(m))
        return ASYNCIO_FILE_TYPE_DIR;
    if (S_ISLNK(m))
        return ASYNCIO_FILE_TYPE_SYMLINK;
    return ASYNCIO_FILE_TYPE_OTHER;
}

static void fill_metadata(const struct stat *st, asyncio_fs_metadata *out)
{
    out->size = (uint64_t)st->st_size;
    asyncio__fs_stat_mtime(st, &out->mtime_sec, &out->mtime_nsec);
    out->mode = (uint32_t)(st->st_mode & 07777);
    out->type = type_of_mode(st->st_mode);
}

int asyncio__fs_fstat(int fd, asyncio_fs_metadata *out)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    fill_metadata(&st, out);
    return 0;
}

int asyncio__fs_stat(const char *path, bool follow_links, asyncio_fs_metadata *out)
{
    struct stat st;
    if ((follow_links ? stat(path, &st) : lstat(path, &st)) < 0)
        return -errno;
    fill_metadata(&st, out);
    return 0;
}

/* mkdir of one prefix; an existing directory is success. */
static int mkdir_one(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0)
        return 0;
    int err = errno;
    struct stat st;
    if (err == EEXIST)
        return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : ASYNCIO_EEXIST;
    return -err;
}

int asyncio__fs_mkdir_all(char *path, uint32_t mode)
{
    mode_t m = (mode_t)(mode != 0 ? mode : 0777);
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = '\0'; /* "a/b/" is "a/b" */
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/' || p[-1] == '/')
            continue;
        *p = '\0'; /* the prefix up to this separator */
        int rc = mkdir_one(path, m);
        *p = '/';
        if (rc < 0)
            return rc == ASYNCIO_EEXIST ? ASYNCIO_ENOTDIR : rc;
    }
    return mkdir_one(path, m);
}

int asyncio__fs_remove(const char *path)
{
    if (unlink(path) == 0)
        return 0;
    int err = errno;
    struct stat st;
    /* Linux says EISDIR for a directory, POSIX EPERM: check what it is. */
    if ((err == EISDIR || err == EPERM) && lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (rmdir(path) == 0)
            return 0;
        err = errno == EEXIST ? ENOTEMPTY : errno;
    }
    return -err;
}

int asyncio__fs_rename(const char *from, const char *to)
{
    return rename(from, to) < 0 ? -errno : 0;
}

int asyncio__fs_opendir(const char *path, asyncio__fs_dir **out)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return -errno;
    *out = (asyncio__fs_dir *)d; /* an incomplete type standing for the DIR */
    return 0;
}

static asyncio_file_type type_of_dirent(unsigned char t)
{
    switch (t) {
    case DT_REG:
        return ASYNCIO_FILE_TYPE_FILE;
    case DT_DIR:
        return ASYNCIO_FILE_TYPE_DIR;
    case DT_LNK:
        return ASYNCIO_FILE_TYPE_SYMLINK;
    case DT_UNKNOWN:
        return ASYNCIO_FILE_TYPE_UNKNOWN;
    default:
        return ASYNCIO_FILE_TYPE_OTHER;
    }
}

int asyncio__fs_readdir(asyncio__fs_dir *dir, char *name, asyncio_file_type *type)
{
    DIR *d = (DIR *)dir;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL)
            return errno != 0 ? -errno : 1;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        size_t n = strnlen(e->d_name, ASYNCIO__FS_NAME_MAX);
        memcpy(name, e->d_name, n);
        name[n] = '\0';
        *type = type_of_dirent(e->d_type);
        return 0;
    }
}

void asyncio__fs_closedir(asyncio__fs_dir *dir)
{
    if (dir != NULL)
        closedir((DIR *)dir);
}
