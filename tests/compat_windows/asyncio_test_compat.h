/*
 * TEST-ONLY compatibility for building the POSIX-centric test programs for Windows
 * (make test-windows: cross-built with mingw-w64 and run under wine). Force-included
 * (-include) into the test and example_test translation units on Windows only: the library
 * itself never sees it. The tests may use pthreads (mingw-w64's winpthreads); the library
 * does not.
 *
 *   Winsock start-up before main (a constructor);
 *   socketpair() and pipe(): emulated with a connected loopback TCP pair (stream) or two
 *       connected loopback UDP sockets (datagram); SOCK_NONBLOCK / SOCK_CLOEXEC honoured;
 *   read() / write() / close() on a socket: recv / send / closesocket (CRT fds otherwise);
 *   fcntl(F_GETFL / F_SETFL O_NONBLOCK / F_GETFD) on sockets: FIONBIO / a validity probe;
 *   accept4(), MSG_NOSIGNAL (0), poll() over WSAPoll, prlimit / getrlimit / setrlimit
 *       (ENOSYS), eventfd / timerfd (ENOSYS, beside this file), syscall(SYS_gettid);
 *   files: stat() with st_mtim (nanoseconds from the FILETIME), mkdtemp(), remove() of an
 *       empty directory, symlink() (CreateSymbolicLinkA; EPERM where no link was made),
 *       nftw() (ftw.h beside this file).
 */
#ifndef ASYNCIO_TEST_COMPAT_H
#define ASYNCIO_TEST_COMPAT_H

#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
/* minwindef.h's empty 16-bit-era macros would eat variables named near / far. */
#undef near
#undef far

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <io.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <direct.h>

#ifndef MSG_DONTWAIT
#define MSG_DONTWAIT 0 /* the shim's socket pairs are non-blocking already */
#endif
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif
#define SOCK_NONBLOCK 0x10000000
#define SOCK_CLOEXEC  0x20000000
#ifndef F_GETFD
#define F_GETFD    1
#define F_SETFD    2
#define F_GETFL    3
#define F_SETFL    4
#define FD_CLOEXEC 1
#define O_NONBLOCK 0x4000
#endif
#ifndef SHUT_RD
#define SHUT_RD   SD_RECEIVE
#define SHUT_WR   SD_SEND
#define SHUT_RDWR SD_BOTH
#endif
#ifndef O_CLOEXEC
#define O_CLOEXEC 0x40000000
#endif
#ifndef EWOULDBLOCK
#define EWOULDBLOCK EAGAIN
#endif
typedef unsigned long nfds_t;

/*
 * POSIX signals. SIGPIPE does not exist on Windows (signal() refuses it: nothing to
 * restore); alarm() hang guards are left to ctest's timeout. A test that needs a real
 * POSIX signal delivered (sigaction) is SKIPPED through cmocka, with the reason printed.
 */
/* The signal a test may listen for with asyncio_signal_init (Ctrl-Break / console close). */
#define ASYNCIO_TEST_CATCHABLE_SIGNAL SIGTERM
#define SIGPIPE 13
#define SIGALRM 14
#define SIGUSR1 30
#define SIGUSR2 31
#define SIGHUP  1
#define SIGQUIT 3
struct sigaction {
    void (*sa_handler)(int);
    unsigned long long sa_mask;
    int sa_flags;
};
void _skip(const char *const file, const int line);
#define COMPAT_SKIP(why) \
    (fprintf(stderr, "skipped on Windows: %s\n", why), _skip(__FILE__, __LINE__), -1)
#define sigaction(s, a, o) \
    ((void)(s), (void)(a), (void)(o), COMPAT_SKIP("needs a POSIX signal delivered (sigaction)"))
#ifndef _POSIX
typedef _sigset_t sigset_t;
#endif
/* Nothing is ever pending: Windows has no SIGPIPE (or any other queued signal). */
static inline int sigpending(sigset_t *set)
{
    *set = 0;
    return 0;
}
static inline int sigismember(const sigset_t *set, int s)
{
    return (int)((*set >> s) & 1u);
}
static inline int compat_sigemptyset(unsigned long long *set)
{
    *set = 0;
    return 0;
}
#define sigemptyset(set) compat_sigemptyset((unsigned long long *)(set))
static inline int setenv(const char *name, const char *value, int overwrite)
{
    if (!overwrite && getenv(name) != NULL)
        return 0;
    return _putenv_s(name, value) == 0 ? 0 : -1;
}

static inline int unsetenv(const char *name)
{
    return _putenv_s(name, "") == 0 ? 0 : -1; /* an empty value removes the variable */
}

#define _SC_NPROCESSORS_ONLN 84
static inline long sysconf(int name)
{
    (void)name;
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return (long)si.dwNumberOfProcessors;
}

static inline unsigned alarm(unsigned s)
{
    (void)s;
    return 0;
}

__attribute__((constructor)) static void compat_wsa_start(void)
{
    WSADATA d;
    WSAStartup(MAKEWORD(2, 2), &d);
}

static inline SOCKET compat_sock(int fd)
{
    return (SOCKET)(intptr_t)fd;
}

/* True if fd names a socket (else it is taken as a C runtime fd). */
static inline int compat_is_socket(int fd)
{
    int type = 0, len = sizeof type;
    return fd >= 0 &&
           getsockopt(compat_sock(fd), SOL_SOCKET, SO_TYPE, (char *)&type, &len) == 0;
}

/* errno from the last Winsock error (the values the library maps them to). */
static inline int compat_wsa_errno(void)
{
    switch (WSAGetLastError()) {
    case WSAEWOULDBLOCK: errno = EAGAIN; break;
    case WSAECONNRESET: errno = ECONNRESET; break;
    case WSAECONNABORTED: errno = ECONNABORTED; break;
    case WSAENOTSOCK: errno = EBADF; break;
    case WSAESHUTDOWN: errno = EPIPE; break;
    case WSAEINVAL: errno = EINVAL; break;
    case WSAENOTCONN: errno = ENOTCONN; break;
    case WSAEADDRINUSE: errno = EADDRINUSE; break;
    case WSAECONNREFUSED: errno = ECONNREFUSED; break;
    case WSAEMSGSIZE: errno = EMSGSIZE; break;
    default: errno = EIO; break;
    }
    return -1;
}

static inline int compat_set_nonblock(int fd, int on)
{
    u_long v = on ? 1 : 0;
    return ioctlsocket(compat_sock(fd), FIONBIO, &v) == 0 ? 0 : compat_wsa_errno();
}

static inline ssize_t compat_read(int fd, void *buf, size_t n)
{
    if (!compat_is_socket(fd))
        return _read(fd, buf, (unsigned)n);
    int r = recv(compat_sock(fd), buf, (int)n, 0);
    return r >= 0 ? r : compat_wsa_errno();
}

static inline ssize_t compat_write(int fd, const void *buf, size_t n)
{
    if (!compat_is_socket(fd))
        return _write(fd, buf, (unsigned)n);
    int r = send(compat_sock(fd), buf, (int)n, 0);
    return r >= 0 ? r : compat_wsa_errno();
}

/* send / recv with errno set from the Winsock error, as POSIX callers read it. */
static inline ssize_t compat_send(int fd, const void *buf, size_t n, int flags)
{
    int r = send(compat_sock(fd), buf, (int)n, flags);
    return r >= 0 ? r : compat_wsa_errno();
}

static inline ssize_t compat_recv(int fd, void *buf, size_t n, int flags)
{
    int r = recv(compat_sock(fd), buf, (int)n, flags);
    return r >= 0 ? r : compat_wsa_errno();
}

static inline int compat_close(int fd)
{
    if (!compat_is_socket(fd))
        return _close(fd);
    return closesocket(compat_sock(fd)) == 0 ? 0 : compat_wsa_errno();
}

static inline int compat_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    int arg = cmd == F_SETFL || cmd == F_SETFD ? va_arg(ap, int) : 0;
    va_end(ap);
    if (!compat_is_socket(fd)) {
        errno = EBADF;
        return -1;
    }
    switch (cmd) {
    case F_GETFD:
    case F_GETFL:
        return 0; /* Winsock cannot read FIONBIO back: report "blocking, no flags" */
    case F_SETFL:
        return compat_set_nonblock(fd, (arg & O_NONBLOCK) != 0);
    default:
        return 0;
    }
}

static inline int compat_socket(int domain, int type, int protocol)
{
    SOCKET s = socket(domain, type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC), protocol);
    if (s == INVALID_SOCKET)
        return compat_wsa_errno();
    int fd = (int)(intptr_t)s;
    if ((type & SOCK_NONBLOCK) != 0)
        compat_set_nonblock(fd, 1);
    return fd;
}

static inline int compat_accept4(int fd, struct sockaddr *addr, int *len, int flags)
{
    SOCKET s = accept(compat_sock(fd), addr, len);
    if (s == INVALID_SOCKET)
        return compat_wsa_errno();
    int c = (int)(intptr_t)s;
    compat_set_nonblock(c, (flags & SOCK_NONBLOCK) != 0);
    return c;
}

/* A connected pair over 127.0.0.1 (TCP for streams, UDP for datagrams). */
static inline int compat_socketpair(int domain, int type, int protocol, int sv[2])
{
    (void)domain;
    (void)protocol;
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    struct sockaddr_in a;
    int alen = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (base == SOCK_DGRAM) {
        SOCKET x = socket(AF_INET, SOCK_DGRAM, 0), y = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in ax = a, ay = a;
        int lx = sizeof ax, ly = sizeof ay;
        if (x == INVALID_SOCKET || y == INVALID_SOCKET ||
            bind(x, (struct sockaddr *)&ax, sizeof ax) != 0 ||
            bind(y, (struct sockaddr *)&ay, sizeof ay) != 0 ||
            getsockname(x, (struct sockaddr *)&ax, &lx) != 0 ||
            getsockname(y, (struct sockaddr *)&ay, &ly) != 0 ||
            connect(x, (struct sockaddr *)&ay, ly) != 0 ||
            connect(y, (struct sockaddr *)&ax, lx) != 0)
            return compat_wsa_errno();
        sv[0] = (int)(intptr_t)x;
        sv[1] = (int)(intptr_t)y;
    } else {
        SOCKET l = socket(AF_INET, SOCK_STREAM, 0);
        if (l == INVALID_SOCKET || bind(l, (struct sockaddr *)&a, sizeof a) != 0 ||
            listen(l, 1) != 0 || getsockname(l, (struct sockaddr *)&a, &alen) != 0)
            return compat_wsa_errno();
        SOCKET c = socket(AF_INET, SOCK_STREAM, 0);
        if (c == INVALID_SOCKET || connect(c, (struct sockaddr *)&a, alen) != 0)
            return compat_wsa_errno();
        SOCKET s = accept(l, NULL, NULL);
        closesocket(l);
        if (s == INVALID_SOCKET)
            return compat_wsa_errno();
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
        sv[0] = (int)(intptr_t)c;
        sv[1] = (int)(intptr_t)s;
    }
    if ((type & SOCK_NONBLOCK) != 0) {
        compat_set_nonblock(sv[0], 1);
        compat_set_nonblock(sv[1], 1);
    }
    return 0;
}

static inline int compat_connect(int fd, const struct sockaddr *a, int len)
{
    if (connect(compat_sock(fd), a, len) == 0)
        return 0;
    if (WSAGetLastError() == WSAEWOULDBLOCK) {
        errno = EINPROGRESS; /* a non-blocking connect under way, as POSIX says it */
        return -1;
    }
    return compat_wsa_errno();
}

/* No /proc here: the open-fd census (support_open_fds) finds nothing and is skipped. */
#include <dirent.h>
static inline DIR *compat_opendir(const char *path)
{
    if (strncmp(path, "/proc/", 6) == 0) {
        errno = ENOENT;
        return NULL;
    }
    return opendir(path);
}

/*
 * stat() as the tests read it: st_mode (S_ISDIR / S_ISREG), st_size, st_mtim. `stat` is
 * redefined below (after <sys/stat.h>, so the C runtime's own struct keeps its name there):
 * both `struct stat` and stat() in a test mean these.
 */
struct compat_stat {
    unsigned st_mode;
    long long st_size;
    struct {
        long long tv_sec;
        long tv_nsec;
    } st_mtim;
};

static inline int compat_stat(const char *path, struct compat_stat *st)
{
    WIN32_FILE_ATTRIBUTE_DATA d;
    memset(st, 0, sizeof *st);
    if (!GetFileAttributesExA(path, GetFileExInfoStandard, &d)) {
        DWORD e = GetLastError();
        errno = e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND ? ENOENT : EACCES;
        return -1;
    }
    bool dir = (d.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) != 0;
    st->st_mode = dir ? _S_IFDIR | 0755 : _S_IFREG | 0644;
    st->st_size = ((long long)d.nFileSizeHigh << 32) | d.nFileSizeLow;
    long long t = ((long long)d.ftLastWriteTime.dwHighDateTime << 32) |
                  d.ftLastWriteTime.dwLowDateTime; /* 100 ns since 1601 */
    st->st_mtim.tv_sec = t / 10000000 - 11644473600LL;
    st->st_mtim.tv_nsec = (long)(t % 10000000) * 100;
    return 0;
}

/* mkdtemp: the trailing XXXXXX from the process id and a counter; _mkdir until one is new. */
static inline char *compat_mkdtemp(char *tmpl)
{
    static volatile LONG counter;
    size_t len = strlen(tmpl);
    if (len < 6 || strcmp(tmpl + len - 6, "XXXXXX") != 0) {
        errno = EINVAL;
        return NULL;
    }
    for (int tries = 0; tries < 1000; tries++) {
        unsigned v = (unsigned)GetCurrentProcessId() * 2654435761u +
                     (unsigned)InterlockedIncrement(&counter) * 40503u;
        for (int i = 0; i < 6; i++, v /= 36)
            tmpl[len - 6 + i] = "abcdefghijklmnopqrstuvwxyz0123456789"[v % 36];
        if (_mkdir(tmpl) == 0)
            return tmpl;
        if (errno != EEXIST)
            return NULL;
    }
    return NULL;
}

/* remove(): files, and (as POSIX remove does) empty directories. */
static inline int compat_remove(const char *path)
{
    DWORD a = GetFileAttributesA(path);
    BOOL ok = a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY) != 0
                  ? RemoveDirectoryA(path)
                  : DeleteFileA(path);
    if (!ok)
        errno = GetLastError() == ERROR_DIR_NOT_EMPTY ? ENOTEMPTY : ENOENT;
    return ok ? 0 : -1;
}

/* symlink(): a symbolic link, where Windows lets this process make one. */
static inline int compat_symlink(const char *target, const char *linkpath)
{
    DWORD a = GetFileAttributesA(target);
    DWORD flags = 0x2; /* SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE (developer mode) */
    if (a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY) != 0)
        flags |= SYMBOLIC_LINK_FLAG_DIRECTORY;
    /* Wine 8's CreateSymbolicLink is a stub that succeeds and creates nothing: check. */
    if (CreateSymbolicLinkA(linkpath, target, flags) &&
        GetFileAttributesA(linkpath) != INVALID_FILE_ATTRIBUTES)
        return 0;
    errno = EPERM; /* needs a privilege or developer mode; or wine made no link */
    return -1;
}

static inline int compat_pipe(int fds[2])
{
    return compat_socketpair(AF_INET, SOCK_STREAM, 0, fds);
}

static inline int compat_pipe2(int fds[2], int flags)
{
    return compat_socketpair(AF_INET, SOCK_STREAM | (flags & O_NONBLOCK ? SOCK_NONBLOCK : 0), 0,
                             fds);
}

static inline int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (n == 0) { /* WSAPoll refuses an empty set; poll(NULL, 0, ms) is a sleep */
        Sleep(timeout < 0 ? INFINITE : (DWORD)timeout);
        return 0;
    }
    return WSAPoll(fds, (ULONG)n, timeout);
}

#define read(fd, b, n)              compat_read(fd, b, n)
#define write(fd, b, n)             compat_write(fd, b, n)
#define close(fd)                   compat_close(fd)
#define send(fd, b, n, f)           compat_send(fd, b, n, f)
#define recv(fd, b, n, f)           compat_recv(fd, b, n, f)
#define fcntl                       compat_fcntl
#define socket(d, t, p)             compat_socket(d, t, p)
#define socketpair(d, t, p, sv)     compat_socketpair(d, t, p, sv)
#define pipe(fds)                   compat_pipe(fds)
#define pipe2(fds, fl)              compat_pipe2(fds, fl)
#define accept4(fd, a, l, f)        compat_accept4(fd, a, (int *)(l), f)
#define connect(fd, a, l)           compat_connect(fd, a, (int)(l))
#define opendir(p)                  compat_opendir(p)
#define stat                        compat_stat
#define mkdtemp(t)                  compat_mkdtemp(t)
#define remove(p)                   compat_remove(p)
#define symlink(t, l)               compat_symlink(t, l)
/* Winsock's option calls take char pointers where POSIX takes void pointers. */
#define setsockopt(s, l, n, v, len) setsockopt(s, l, n, (const char *)(v), (int)(len))
#define getsockopt(s, l, n, v, len) getsockopt(s, l, n, (char *)(v), (int *)(len))

/*
 * Tests that cannot run on Windows, named (comma-separated) in the environment variable
 * ASYNCIO_TEST_SKIP by tests/windows.cmake, which says why for each: they are reported as
 * SKIPPED by cmocka instead of being run. For diagnosis under wine, ASYNCIO_TEST_ONLY=name
 * runs that one test of the program and reports the others as SKIPPED.
 */
#if __has_include(<cmocka.h>) /* test programs only: the examples have no cmocka */
#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>

static void compat_skipped_test(void **state)
{
    (void)state;
    fprintf(stderr, "skipped on Windows (tests/windows.cmake says why)\n");
    skip();
}

static void compat_unselected_test(void **state)
{
    (void)state;
    skip(); /* ASYNCIO_TEST_ONLY names another test */
}

static inline int compat_run_group_tests(const char *name, const struct CMUnitTest *tests,
                                         size_t n, CMFixtureFunction setup,
                                         CMFixtureFunction teardown)
{
    struct CMUnitTest *copy = malloc(n * sizeof *copy);
    if (copy == NULL)
        return 1;
    const char *skip_list = getenv("ASYNCIO_TEST_SKIP");
    const char *only = getenv("ASYNCIO_TEST_ONLY");
    for (size_t i = 0; i < n; i++) {
        copy[i] = tests[i];
        size_t len = strlen(tests[i].name);
        for (const char *p = skip_list; p != NULL && *p != '\0';) {
            const char *end = strchr(p, ',');
            size_t plen = end != NULL ? (size_t)(end - p) : strlen(p);
            if (plen == len && strncmp(p, tests[i].name, len) == 0)
                copy[i].test_func = compat_skipped_test;
            p = end != NULL ? end + 1 : NULL;
        }
        if (only != NULL && strcmp(only, tests[i].name) != 0)
            copy[i].test_func = compat_unselected_test;
    }
    int rc = _cmocka_run_group_tests(name, copy, n, setup, teardown);
    free(copy);
    return rc;
}
#undef cmocka_run_group_tests
#define cmocka_run_group_tests(group, setup, teardown) \
    compat_run_group_tests(#group, group, sizeof(group) / sizeof((group)[0]), setup, teardown)
#endif

#endif
