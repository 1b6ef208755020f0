/*
 * fs_os.h on Windows: files, metadata, paths and directory listings with Win32 calls, run on
 * the blocking pool as on POSIX.
 *
 * Files are HANDLEs carried as `int` (win.h: kernel handles have 32 significant bits), the
 * same convention as sockets; asyncio_file_fd returns that handle. Every file is opened
 * synchronous (no FILE_FLAG_OVERLAPPED), so ReadFile / WriteFile use and move the handle's
 * file pointer exactly as read(2) / write(2) move the offset.
 *
 * Paths are UTF-8 and converted to UTF-16 for the W calls ('/' and '\' both separate);
 * a path that is not valid UTF-8 is ASYNCIO_EINVAL. Names from a listing come back as UTF-8.
 *
 * POSIX semantics kept where Windows differs:
 *   - open shares read, write and delete with other handles (a file open here can still be
 *     renamed or removed, as on POSIX); FILE_FLAG_BACKUP_SEMANTICS lets a directory be
 *     opened for reading (metadata, read_file's EISDIR); for writing it is ASYNCIO_EISDIR;
 *   - APPEND opens with FILE_APPEND_DATA and without FILE_WRITE_DATA: every write goes to
 *     the end (O_APPEND);
 *   - `mode` without any write bit creates a read-only file (FILE_ATTRIBUTE_READONLY, as
 *     libuv and the C runtime do); the other bits have no Windows equivalent;
 *   - reading or writing a handle opened without that access is ASYNCIO_EBADF;
 *   - sync is FlushFileBuffers for both fsync and fdatasync (no data-only flush in Win32);
 *     a handle without write access cannot be flushed: ASYNCIO_EBADF;
 *   - metadata: the mode is synthesised (0666, or 0444 read-only; directories add 0111),
 *     the type is DIR, FILE, SYMLINK (a symlink reparse point, only when links are not
 *     followed) or OTHER (not a disk file);
 *   - remove clears a read-only file's attribute first (unlink(2) does not care about the
 *     file's own permission) and removes an empty directory with RemoveDirectoryW;
 *   - rename replaces an existing file (MOVEFILE_REPLACE_EXISTING; an existing directory
 *     target is refused, ASYNCIO_EACCES, where POSIX replaces an empty one), never copies
 *     across volumes (ASYNCIO_EXDEV);
 *   - mkdir -p ignores `mode` (ACLs, not permission bits).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "platform/fs_os.h"
#include "platform/win.h"
#include "util/alloc.h"

#define ACCESS_FLAGS (ASYNCIO_OPEN_READ | ASYNCIO_OPEN_WRITE | ASYNCIO_OPEN_APPEND)
#define ALL_FLAGS \
    (ACCESS_FLAGS | ASYNCIO_OPEN_CREATE | ASYNCIO_OPEN_CREATE_NEW | ASYNCIO_OPEN_TRUNCATE)

/* Seconds between 1601-01-01 (FILETIME's epoch) and 1970-01-01. */
#define EPOCH_DIFF_SECS 11644473600LL

static HANDLE handle_of(int fd)
{
    return (HANDLE)(intptr_t)fd;
}

static int last_error(void)
{
    return asyncio__win_error(GetLastError());
}

/* ---- paths ------------------------------------------------------------------ */

/* The UTF-16 copy of a UTF-8 path (asyncio__free it), `extra` spare wide chars at the end. */
static int wide_path(const char *path, size_t extra, WCHAR **out)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, NULL, 0);
    if (n <= 0)
        return ASYNCIO_EINVAL; /* not UTF-8 */
    WCHAR *w = asyncio__malloc(((size_t)n + extra) * sizeof *w);
    if (w == NULL)
        return ASYNCIO_ENOMEM;
    if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, w, n) != n) {
        asyncio__free(w);
        return ASYNCIO_EINVAL;
    }
    *out = w;
    return 0;
}

static bool is_sep(WCHAR c)
{
    return c == L'/' || c == L'\\';
}

/* The attributes of a path, or INVALID_FILE_ATTRIBUTES. */
static DWORD attributes_of(const WCHAR *w)
{
    return GetFileAttributesW(w);
}

static bool is_dir_attr(DWORD a)
{
    return a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY) != 0;
}

/* ---- open, close, read, write, seek, sync ---------------------------------- */

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

static DWORD access_of(uint32_t flags)
{
    DWORD a = 0;
    if (flags & ASYNCIO_OPEN_READ)
        a |= GENERIC_READ;
    if (flags & ASYNCIO_OPEN_APPEND) /* FILE_WRITE_DATA left out: writes go to the end */
        a |= FILE_APPEND_DATA | FILE_WRITE_ATTRIBUTES | FILE_WRITE_EA | READ_CONTROL | SYNCHRONIZE;
    else if (flags & ASYNCIO_OPEN_WRITE)
        a |= GENERIC_WRITE;
    return a;
}

static DWORD disposition_of(uint32_t flags)
{
    if (flags & ASYNCIO_OPEN_CREATE_NEW)
        return CREATE_NEW;
    if (flags & ASYNCIO_OPEN_CREATE)
        return flags & ASYNCIO_OPEN_TRUNCATE ? CREATE_ALWAYS : OPEN_ALWAYS;
    return flags & ASYNCIO_OPEN_TRUNCATE ? TRUNCATE_EXISTING : OPEN_EXISTING;
}

int asyncio__fs_open(const char *path, uint32_t flags, uint32_t mode, int *fd_out)
{
    int rc = asyncio__fs_check_open_flags(flags);
    WCHAR *w = NULL;
    if (rc < 0 || (rc = wide_path(path, 0, &w)) < 0)
        return rc;
    bool writes = (flags & (ASYNCIO_OPEN_WRITE | ASYNCIO_OPEN_APPEND)) != 0;
    DWORD attrs = FILE_FLAG_BACKUP_SEMANTICS; /* directories open too (read-only below) */
    attrs |= mode != 0 && (mode & 0222) == 0 ? FILE_ATTRIBUTE_READONLY : FILE_ATTRIBUTE_NORMAL;
    HANDLE h = CreateFileW(w, access_of(flags), FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                           NULL, disposition_of(flags), attrs, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        rc = last_error();
        /* Opening a directory for writing: Windows says access denied, POSIX EISDIR. */
        if (rc == ASYNCIO_EACCES && writes && is_dir_attr(attributes_of(w)))
            rc = ASYNCIO_EISDIR;
    } else {
        BY_HANDLE_FILE_INFORMATION info;
        int fd = asyncio__win_fd((SOCKET)(uintptr_t)h);
        if (writes && GetFileInformationByHandle(h, &info) &&
            (info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0)
            rc = ASYNCIO_EISDIR;
        else if (fd < 0)
            rc = ASYNCIO_EMFILE; /* a handle beyond 32 bits (win.h): never on real Windows */
        if (rc < 0)
            CloseHandle(h);
        else
            *fd_out = fd;
    }
    asyncio__free(w);
    return rc;
}

int asyncio__fs_close(int fd)
{
    if (fd < 0)
        return ASYNCIO_EBADF;
    return CloseHandle(handle_of(fd)) ? 0 : last_error();
}

/* Is the handle a directory? (a read on one fails with an unhelpful code) */
static bool handle_is_dir(HANDLE h)
{
    BY_HANDLE_FILE_INFORMATION info;
    return GetFileInformationByHandle(h, &info) &&
           (info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0;
}

/* A failed ReadFile / WriteFile / FlushFileBuffers on h, as POSIX would report it. */
static int io_error(HANDLE h)
{
    DWORD err = GetLastError();
    if (err == ERROR_ACCESS_DENIED)
        return ASYNCIO_EBADF; /* not opened for this direction: EBADF, as read(2) says */
    if (err == ERROR_INVALID_FUNCTION || err == ERROR_INVALID_PARAMETER)
        return handle_is_dir(h) ? ASYNCIO_EISDIR : asyncio__win_error(err);
    return asyncio__win_error(err);
}

/* One ReadFile / WriteFile moves at most this much (a DWORD count). */
static DWORD chunk_of(size_t len)
{
    return len > (size_t)0x7FFFF000 ? (DWORD)0x7FFFF000 : (DWORD)len;
}

int asyncio__fs_read(int fd, void *buf, size_t len, size_t *n_out)
{
    HANDLE h = handle_of(fd);
    DWORD n = 0;
    if (!ReadFile(h, buf, chunk_of(len), &n, NULL)) {
        DWORD err = GetLastError();
        if (err != ERROR_HANDLE_EOF && err != ERROR_BROKEN_PIPE) /* both are end of file */
            return io_error(h);
        n = 0;
    }
    *n_out = n;
    return 0;
}

int asyncio__fs_write(int fd, const void *buf, size_t len, size_t *n_out)
{
    HANDLE h = handle_of(fd);
    DWORD n = 0;
    if (!WriteFile(h, buf, chunk_of(len), &n, NULL))
        return io_error(h);
    *n_out = n;
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
    HANDLE h = handle_of(fd);
    LARGE_INTEGER d;
    d.QuadPart = delta;
    if (GetFileType(h) != FILE_TYPE_DISK)
        return ASYNCIO_ESPIPE; /* pipes and consoles have no offset (lseek(2) says ESPIPE) */
    return SetFilePointerEx(h, d, NULL, FILE_CURRENT) ? 0 : last_error();
}

int asyncio__fs_sync(int fd, bool data_only)
{
    (void)data_only; /* Win32 has one flush: data and metadata */
    HANDLE h = handle_of(fd);
    return FlushFileBuffers(h) ? 0 : io_error(h);
}

/* ---- metadata ---------------------------------------------------------------- */

static void filetime_to_unix(FILETIME ft, int64_t *sec, uint32_t *nsec)
{
    int64_t t = (int64_t)(((uint64_t)ft.dwHighDateTime << 32) | ft.dwLowDateTime); /* 100 ns */
    int64_t s = t / 10000000 - EPOCH_DIFF_SECS;
    int64_t r = t % 10000000;
    *sec = s;
    *nsec = (uint32_t)(r * 100);
}

/* A symlink reparse point (not a junction or another kind of reparse point)? */
static bool is_symlink(HANDLE h, DWORD attrs)
{
    if ((attrs & FILE_ATTRIBUTE_REPARSE_POINT) == 0)
        return false;
    FILE_ATTRIBUTE_TAG_INFO tag;
    return GetFileInformationByHandleEx(h, FileAttributeTagInfo, &tag, sizeof tag) &&
           tag.ReparseTag == IO_REPARSE_TAG_SYMLINK;
}

static int metadata_of(HANDLE h, bool links_followed, asyncio_fs_metadata *out)
{
    BY_HANDLE_FILE_INFORMATION info;
    if (!GetFileInformationByHandle(h, &info))
        return last_error();
    DWORD a = info.dwFileAttributes;
    bool dir = (a & FILE_ATTRIBUTE_DIRECTORY) != 0;
    out->size = dir ? 0 : ((uint64_t)info.nFileSizeHigh << 32) | info.nFileSizeLow;
    filetime_to_unix(info.ftLastWriteTime, &out->mtime_sec, &out->mtime_nsec);
    out->mode = (a & FILE_ATTRIBUTE_READONLY) != 0 ? 0444 : 0666;
    if (dir)
        out->mode |= 0111;
    if (!links_followed && is_symlink(h, a))
        out->type = ASYNCIO_FILE_TYPE_SYMLINK;
    else if (dir)
        out->type = ASYNCIO_FILE_TYPE_DIR;
    else
        out->type = GetFileType(h) == FILE_TYPE_DISK ? ASYNCIO_FILE_TYPE_FILE
                                                     : ASYNCIO_FILE_TYPE_OTHER;
    return 0;
}

int asyncio__fs_fstat(int fd, asyncio_fs_metadata *out)
{
    return metadata_of(handle_of(fd), true, out);
}

int asyncio__fs_stat(const char *path, bool follow_links, asyncio_fs_metadata *out)
{
    WCHAR *w = NULL;
    int rc = wide_path(path, 0, &w);
    if (rc < 0)
        return rc;
    DWORD flags = FILE_FLAG_BACKUP_SEMANTICS | (follow_links ? 0 : FILE_FLAG_OPEN_REPARSE_POINT);
    HANDLE h = CreateFileW(w, FILE_READ_ATTRIBUTES,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING, flags, NULL);
    asyncio__free(w);
    if (h == INVALID_HANDLE_VALUE)
        return last_error();
    rc = metadata_of(h, follow_links, out);
    CloseHandle(h);
    return rc;
}

/* ---- directories, remove, rename ---------------------------------------------- */

/* CreateDirectoryW of one prefix; an existing directory is success. */
static int mkdir_one(const WCHAR *w)
{
    if (CreateDirectoryW(w, NULL))
        return 0;
    DWORD err = GetLastError();
    DWORD a = attributes_of(w);
    /* A drive root answers access denied rather than "exists". */
    if (err == ERROR_ALREADY_EXISTS || err == ERROR_ACCESS_DENIED)
        return is_dir_attr(a) ? 0 : a != INVALID_FILE_ATTRIBUTES ? ASYNCIO_EEXIST
                                                                 : asyncio__win_error(err);
    return asyncio__win_error(err);
}

/* Where the first component that may need creating starts (after "C:\", "\\srv\share\"). */
static size_t first_component(const WCHAR *w)
{
    size_t i = 0;
    if (is_sep(w[0]) && is_sep(w[1])) { /* UNC: skip \\server\share */
        i = 2;
        for (int parts = 0; parts < 2 && w[i] != L'\0'; parts++) {
            while (w[i] != L'\0' && !is_sep(w[i]))
                i++;
            if (w[i] != L'\0')
                i++;
        }
        return i;
    }
    if (w[0] != L'\0' && w[1] == L':')
        i = 2;
    while (is_sep(w[i]))
        i++;
    return i;
}

int asyncio__fs_mkdir_all(char *path, uint32_t mode)
{
    (void)mode; /* Windows directories get their parent's ACL */
    WCHAR *w = NULL;
    int rc = wide_path(path, 0, &w);
    if (rc < 0)
        return rc;
    size_t len = wcslen(w);
    while (len > 1 && is_sep(w[len - 1]))
        w[--len] = L'\0'; /* "a/b/" is "a/b" */
    for (size_t i = first_component(w) + 1; rc == 0 && i < len; i++) {
        if (!is_sep(w[i]) || is_sep(w[i - 1]))
            continue;
        WCHAR c = w[i];
        w[i] = L'\0'; /* the prefix up to this separator */
        rc = mkdir_one(w);
        w[i] = c;
        if (rc == ASYNCIO_EEXIST)
            rc = ASYNCIO_ENOTDIR; /* a file where a parent directory should be */
    }
    if (rc == 0)
        rc = mkdir_one(w);
    asyncio__free(w);
    return rc;
}

int asyncio__fs_remove(const char *path)
{
    WCHAR *w = NULL;
    int rc = wide_path(path, 0, &w);
    if (rc < 0)
        return rc;
    DWORD a = attributes_of(w);
    if (a == INVALID_FILE_ATTRIBUTES) {
        rc = last_error();
    } else if ((a & FILE_ATTRIBUTE_DIRECTORY) != 0) {
        /* A directory, or a symlink / junction to one: RemoveDirectoryW removes the link. */
        if (!RemoveDirectoryW(w))
            rc = last_error();
    } else {
        if ((a & FILE_ATTRIBUTE_READONLY) != 0)
            (void)SetFileAttributesW(w, a & ~(DWORD)FILE_ATTRIBUTE_READONLY);
        if (!DeleteFileW(w))
            rc = last_error();
    }
    asyncio__free(w);
    return rc;
}

int asyncio__fs_rename(const char *from, const char *to)
{
    WCHAR *wf = NULL, *wt = NULL;
    int rc = wide_path(from, 0, &wf);
    if (rc == 0 && (rc = wide_path(to, 0, &wt)) == 0 &&
        !MoveFileExW(wf, wt, MOVEFILE_REPLACE_EXISTING))
        rc = last_error();
    asyncio__free(wf);
    asyncio__free(wt);
    return rc;
}

/* ---- directory streams ---------------------------------------------------------- */

/* A listing: the search handle and the entry FindFirstFileExW / FindNextFileW found next. */
struct asyncio__fs_dir {
    HANDLE find;
    bool have; /* `data` holds an entry not returned yet */
    WIN32_FIND_DATAW data;
};

int asyncio__fs_opendir(const char *path, asyncio__fs_dir **out)
{
    WCHAR *w = NULL;
    int rc = wide_path(path, 2, &w);
    if (rc < 0)
        return rc;
    size_t len = wcslen(w);
    DWORD a = attributes_of(w);
    if (a == INVALID_FILE_ATTRIBUTES) {
        rc = last_error();
    } else if ((a & FILE_ATTRIBUTE_DIRECTORY) == 0) {
        rc = ASYNCIO_ENOTDIR;
    } else {
        asyncio__fs_dir *d = asyncio__calloc(1, sizeof *d);
        if (d == NULL) {
            rc = ASYNCIO_ENOMEM;
        } else {
            /* "<path>\*" (a separator only when the path has none at its end). */
            if (len > 0 && !is_sep(w[len - 1]))
                w[len++] = L'\\';
            w[len++] = L'*';
            w[len] = L'\0';
            d->find = FindFirstFileExW(w, FindExInfoBasic, &d->data, FindExSearchNameMatch, NULL,
                                       FIND_FIRST_EX_LARGE_FETCH);
            if (d->find != INVALID_HANDLE_VALUE) {
                d->have = true;
                *out = d;
            } else if (GetLastError() == ERROR_FILE_NOT_FOUND) {
                d->have = false; /* nothing at all (a drive root has no "." entry) */
                *out = d;
            } else {
                rc = last_error();
                asyncio__free(d);
            }
        }
    }
    asyncio__free(w);
    return rc;
}

static asyncio_file_type type_of_find(const WIN32_FIND_DATAW *e)
{
    if ((e->dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) != 0 &&
        e->dwReserved0 == IO_REPARSE_TAG_SYMLINK)
        return ASYNCIO_FILE_TYPE_SYMLINK;
    if ((e->dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0)
        return ASYNCIO_FILE_TYPE_DIR;
    if ((e->dwFileAttributes & FILE_ATTRIBUTE_DEVICE) != 0)
        return ASYNCIO_FILE_TYPE_OTHER;
    return ASYNCIO_FILE_TYPE_FILE;
}

/* Moves to the next entry; 0, 1 at the end, or an error. */
static int advance(asyncio__fs_dir *d)
{
    if (d->find == INVALID_HANDLE_VALUE || d->find == NULL)
        return 1;
    if (FindNextFileW(d->find, &d->data)) {
        d->have = true;
        return 0;
    }
    return GetLastError() == ERROR_NO_MORE_FILES ? 1 : last_error();
}

int asyncio__fs_readdir(asyncio__fs_dir *d, char *name, asyncio_file_type *type)
{
    for (;;) {
        if (!d->have) {
            int rc = advance(d);
            if (rc != 0)
                return rc;
        }
        d->have = false;
        const WCHAR *n = d->data.cFileName;
        if (wcscmp(n, L".") == 0 || wcscmp(n, L"..") == 0)
            continue;
        /* ASYNCIO__FS_NAME_MAX holds any 255-unit NTFS name in UTF-8 (3 bytes per unit). */
        int len = WideCharToMultiByte(CP_UTF8, 0, n, -1, name, ASYNCIO__FS_NAME_MAX + 1, NULL,
                                      NULL);
        if (len <= 0)
            return last_error();
        *type = type_of_find(&d->data);
        return 0;
    }
}

void asyncio__fs_closedir(asyncio__fs_dir *d)
{
    if (d == NULL)
        return;
    if (d->find != INVALID_HANDLE_VALUE && d->find != NULL)
        FindClose(d->find);
    asyncio__free(d);
}
