/*
 * Static file lookup without escape from the root.
 *
 * Rules: the path is percent-decoded (an encoded NUL or '/' is a 400), cut
 * at '/', and each component must be a plain name: "" (a double slash),
 * "." and ".." are refused. The components are then opened one at a time
 * with openat(..., O_NOFOLLOW) starting from the root directory's fd, so no
 * symbolic link is ever followed (a link inside the root is refused too:
 * simpler than proving where it points) and the kernel never resolves a
 * path we did not check. The last component must be a regular file.
 *
 * A failed open is told apart (status_of_errno): only a name that is not
 * there (or is a link, or not a directory where one is needed) is a 404; a
 * file the server may not read is a 403, and running out of fds or memory
 * is the server's trouble, not the file's absence: 503, try again later.
 *
 * These are blocking calls on the runtime thread: fine for files on a local
 * disk in an example; a production server would use the blocking pool or
 * an fd cache.
 */
#include "static_files.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_CAP 1024

static int hexv(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes one component rel[*i..) up to the next '/' into name (NUL-terminated). */
static int component(const uint8_t *rel, size_t len, size_t *i, char *name)
{
    size_t n = 0;
    while (*i < len && rel[*i] != '/') {
        int c = rel[*i];
        if (c == '%') {
            int h, l;
            if (*i + 2 >= len)
                return 400;
            h = hexv(rel[*i + 1]);
            l = hexv(rel[*i + 2]);
            if (h < 0 || l < 0)
                return 400;
            c = h * 16 + l;
            if (c == 0 || c == '/')
                return 400;
            *i += 2;
        }
        if (n + 1 >= PATH_CAP)
            return 404;
        name[n++] = (char)c;
        (*i)++;
    }
    name[n] = '\0';
    if (n == 0)
        return 404;
    if ((n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.'))
        return 400;
    return 0;
}

/* The answer for a failed openat / fstat. */
static int status_of_errno(int err)
{
    switch (err) {
    case ENOENT:       /* no such name */
    case ENOTDIR:      /* a file where a directory is needed */
    case ELOOP:        /* a symbolic link (O_NOFOLLOW): never followed */
    case ENAMETOOLONG: /* cannot name anything we serve */
        return 404;
    case EACCES:
    case EPERM:
        return 403;
    case EMFILE: /* this process is out of fds */
    case ENFILE: /* the system is */
    case ENOMEM:
        return 503;
    default: /* EIO and the like */
        return 500;
    }
}

int http_static_open(int root_fd, const uint8_t *rel, size_t len, int *fd_out, uint64_t *size_out)
{
    char name[PATH_CAP];
    if (root_fd < 0 || len == 0)
        return 404;
    int dir = root_fd;
    size_t i = 0;
    for (;;) {
        int rc = component(rel, len, &i, name);
        if (rc != 0) {
            if (dir != root_fd)
                close(dir);
            return rc;
        }
        int last = i >= len;
        int fd = openat(dir, name,
                        O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | (last ? 0 : O_DIRECTORY));
        if (dir != root_fd)
            close(dir);
        if (fd < 0)
            return status_of_errno(errno);
        if (last) {
            struct stat st;
            if (fstat(fd, &st) < 0) {
                int err = errno;
                close(fd);
                return status_of_errno(err);
            }
            if (!S_ISREG(st.st_mode)) {
                close(fd);
                return 404;
            }
            *fd_out = fd;
            *size_out = (uint64_t)st.st_size;
            return 200;
        }
        dir = fd;
        i++; /* the '/' */
        if (i >= len) {
            close(dir);
            return 404; /* trailing slash: a directory */
        }
    }
}

/* ---- Content-Type from the file name's extension ---------------------------- */

/* Common web types; text types say their charset. Extensions match case-insensitively. */
static const struct {
    const char *ext;
    const char *type;
} k_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/vnd.microsoft.icon"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
};

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

const char *http_static_content_type(const uint8_t *rel, size_t len)
{
    size_t dot = len;
    for (size_t i = len; i > 0; i--) {
        if (rel[i - 1] == '/')
            break; /* the extension belongs to the last component */
        if (rel[i - 1] == '.') {
            dot = i - 1;
            break;
        }
    }
    size_t n = dot < len ? len - dot - 1 : 0;
    for (size_t t = 0; n > 0 && t < sizeof k_types / sizeof k_types[0]; t++) {
        const char *e = k_types[t].ext;
        size_t k = 0;
        while (k < n && e[k] != '\0' && lower(rel[dot + 1 + k]) == e[k])
            k++;
        if (k == n && e[k] == '\0')
            return k_types[t].type;
    }
    return "application/octet-stream";
}
