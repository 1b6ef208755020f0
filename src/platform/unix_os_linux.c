/* Unix-domain socket facts that differ by OS, on Linux (elsewhere: unix_os_bsd.c). */
#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "internal.h"
#include "platform/socket_dgram.h"

int asyncio__sock_peer_cred(int fd, asyncio_unix_cred *out)
{
    struct ucred uc;
    socklen_t len = sizeof uc;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
        return errno == EWOULDBLOCK ? ASYNCIO_EAGAIN : -errno;
    out->pid = uc.pid;
    out->uid = uc.uid;
    out->gid = uc.gid;
    return 0;
}

bool asyncio__unix_abstract_names(void)
{
    return true;
}
