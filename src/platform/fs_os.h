/*
 * File-system calls for src/fs/ (the portable core includes no OS header):
 * open with the library's option flags, read / write / seek / fsync /
 * fstat on a blocking fd, path operations (stat, mkdir -p, remove,
 * rename) and directory streams.
 *
 * Every call retries EINTR and returns 0 (with results in out-parameters)
 * or a negative errno-style code. They block: call them only from
 * blocking-pool jobs (close is the exception, see asyncio__fs_close).
 *
 * Thread-safety: every function may be called from any thread; a dir
 * stream is used by one thread at a time.
 */
#ifndef ASYNCIO_PLATFORM_FS_OS_H
#define ASYNCIO_PLATFORM_FS_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asyncio/fs.h"

/*
 * Longest entry name a directory stream returns, NUL excluded: NAME_MAX bytes on POSIX; on
 * Windows a name is up to 255 UTF-16 units, which take up to 3 bytes each in UTF-8.
 */
#ifdef _WIN32
#define ASYNCIO__FS_NAME_MAX (255 * 3)
#else
#define ASYNCIO__FS_NAME_MAX 255
#endif

/* Checks the flag combination (fs.h rules): 0 or ASYNCIO_EINVAL. */
int asyncio__fs_check_open_flags(uint32_t flags);

/* The open(2) flags (O_*, O_CLOEXEC included) for asyncio_open_flag bits (checked ones). */
int asyncio__fs_open_os_flags(uint32_t flags);

/* open(2) with asyncio_open_flag bits, O_CLOEXEC; the fd is blocking. */
int asyncio__fs_open(const char *path, uint32_t flags, uint32_t mode, int *fd_out);

/* close(2); EINTR is not retried (the fd is gone either way on Linux). */
int asyncio__fs_close(int fd);

/* read(2) / write(2) once. 0 with *n_out (read: 0 bytes at EOF). */
int asyncio__fs_read(int fd, void *buf, size_t len, size_t *n_out);
int asyncio__fs_write(int fd, const void *buf, size_t len, size_t *n_out);

/* Writes all len bytes (loops over short writes). */
int asyncio__fs_write_all(int fd, const void *buf, size_t len);

/* lseek(fd, delta, SEEK_CUR). */
int asyncio__fs_seek_cur(int fd, int64_t delta);

/*
 * fsync(2), or fdatasync(2) when data_only (fs_os_posix.c). macOS
 * (fs_os_darwin.c): fcntl(F_FULLFSYNC) for both, as libuv does (its fsync
 * does not flush the drive's cache), falling back to fsync(2) where the file
 * system refuses it.
 */
int asyncio__fs_sync(int fd, bool data_only);

struct stat;
/* A stat's modification time (st_mtim; st_mtimespec on macOS). POSIX files only. */
void asyncio__fs_stat_mtime(const struct stat *st, int64_t *sec, uint32_t *nsec);

/* fstat(2) / stat(2) / lstat(2) into the library's metadata. */
int asyncio__fs_fstat(int fd, asyncio_fs_metadata *out);
int asyncio__fs_stat(const char *path, bool follow_links, asyncio_fs_metadata *out);

/* mkdir -p. `path` is modified during the call and restored. */
int asyncio__fs_mkdir_all(char *path, uint32_t mode);

/* unlink(2), or rmdir(2) for a directory. */
int asyncio__fs_remove(const char *path);

/* rename(2). */
int asyncio__fs_rename(const char *from, const char *to);

/* Directory streams (opendir / readdir / closedir). */
typedef struct asyncio__fs_dir asyncio__fs_dir;
int asyncio__fs_opendir(const char *path, asyncio__fs_dir **out);
/*
 * Next entry ("." and ".." skipped): 0 with the name copied into
 * name[ASYNCIO__FS_NAME_MAX + 1] and *type, or 1 at the end.
 */
int asyncio__fs_readdir(asyncio__fs_dir *d, char *name, asyncio_file_type *type);
void asyncio__fs_closedir(asyncio__fs_dir *d);

#endif
