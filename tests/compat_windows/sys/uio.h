/* TEST-ONLY (Windows): struct iovec, writev and sendmsg over Winsock (asyncio_test_compat.h). */
#ifndef COMPAT_SYS_UIO_H
#define COMPAT_SYS_UIO_H
#include <winsock2.h>
#include <ws2tcpip.h>
#include <sys/types.h>

struct iovec {
    void *iov_base;
    size_t iov_len;
};

struct msghdr {
    void *msg_name;
    int msg_namelen;
    struct iovec *msg_iov;
    size_t msg_iovlen;
    void *msg_control;
    size_t msg_controllen;
    int msg_flags;
};

#define COMPAT_IOV_MAX 64

static inline ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
    WSABUF b[COMPAT_IOV_MAX];
    DWORD cnt = 0, n = 0;
    for (size_t i = 0; i < m->msg_iovlen && cnt < COMPAT_IOV_MAX; i++, cnt++) {
        b[cnt].buf = m->msg_iov[i].iov_base;
        b[cnt].len = (ULONG)m->msg_iov[i].iov_len;
    }
    if (WSASend((SOCKET)(intptr_t)fd, b, cnt, &n, (DWORD)flags, NULL, NULL) != 0) {
        errno = WSAGetLastError() == WSAEWOULDBLOCK ? EAGAIN : EIO;
        return -1;
    }
    return (ssize_t)n;
}

static inline ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    struct msghdr m = {0};
    m.msg_iov = (struct iovec *)iov;
    m.msg_iovlen = (size_t)cnt;
    return sendmsg(fd, &m, 0);
}
#endif
