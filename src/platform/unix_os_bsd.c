/*
 * Unix-domain socket facts that differ by OS, on macOS and the BSDs (Linux:
 * unix_os_linux.c): peer credentials with getpeereid(3), which gives the uid
 * and gid but no pid (pid -1; macOS's LOCAL_PEERPID and FreeBSD's
 * LOCAL_PEERCRED cr_pid are not used yet), and no abstract names.
 */
#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "internal.h"
#include "platform/socket_dgram.h"

int asyncio__sock_peer_cred(int fd, asyncio_unix_cred *out)
{
    uid_t uid;
    gid_t gid;
    if (getpeereid(fd, &uid, &gid) < 0)
        return errno == EWOULDBLOCK ? ASYNCIO_EAGAIN : -errno;
    out->pid = -1;
    out->uid = uid;
    out->gid = gid;
    return 0;
}

bool asyncio__unix_abstract_names(void)
{
    return false;
}
