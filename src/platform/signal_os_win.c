/*
 * signal_os.h on Windows: console control events through SetConsoleCtrlHandler, surfaced as
 * the signal API's SIGINT (Ctrl-C) and SIGTERM (Ctrl-Break, console close, log-off,
 * shutdown). No other signal exists to catch: asyncio__signal_catchable says so, and
 * asyncio_signal_init then fails with ASYNCIO_EINVAL (docs/signals.md, docs/backends.md).
 *
 * The self-pipe is a UDP socket bound to 127.0.0.1 and connected to itself: the handler
 * (which Windows runs on a thread of its own, not inside an interrupted one, so any call is
 * safe there) sends one byte, the driver registers the socket for readability and drains it.
 * A full socket buffer drops the byte, but the delivery count is already bumped and one
 * byte is already queued, so nothing is lost (the same rule as the POSIX pipe).
 *
 * While a listener holds SIGINT (or SIGTERM), the matching events are consumed (the handler
 * returns TRUE); otherwise the handler returns FALSE and Windows' default runs (the process
 * ends). After CTRL_CLOSE_EVENT, Windows ends the process when the handler returns, whatever
 * it returns: the listener gets its wake-up, and a few seconds at most to act on it.
 */
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "internal.h"
#include "platform/signal_os.h"
#include "platform/socket.h"
#include "platform/win.h"

#define SIG_SLOTS 65

static _Atomic uint64_t g_deliveries[SIG_SLOTS];
static _Atomic bool g_caught[SIG_SLOTS];
static _Atomic int g_sock = -1;
static int g_sock_err;
static INIT_ONCE g_once = INIT_ONCE_STATIC_INIT;

bool asyncio__signal_catchable(int sig)
{
    return sig == SIGINT || sig == SIGTERM;
}

static int ctrl_to_signal(DWORD type)
{
    return type == CTRL_C_EVENT ? SIGINT : SIGTERM;
}

static BOOL WINAPI ctrl_handler(DWORD type)
{
    int sig = ctrl_to_signal(type);
    /* acquire: pairs with the release in asyncio__signal_install (the socket exists). */
    if (!atomic_load_explicit(&g_caught[sig], memory_order_acquire))
        return FALSE;
    atomic_fetch_add_explicit(&g_deliveries[sig], 1, memory_order_seq_cst);
    int fd = atomic_load_explicit(&g_sock, memory_order_acquire);
    if (fd >= 0)
        (void)send(asyncio__win_sock(fd), "s", 1, 0);
    return TRUE;
}

/* A UDP socket on 127.0.0.1, connected to its own address. fd or a negative error. */
static int open_self_socket(void)
{
    int fd = asyncio__sock_open(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return fd;
    asyncio_sockaddr a;
    memset(&a, 0, sizeof a);
    a.u.in4.sin_family = AF_INET;
    a.u.in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.len = sizeof a.u.in4;
    int rc = asyncio__sock_bind(fd, &a);
    if (rc == 0)
        rc = asyncio__sock_local_addr(fd, &a);
    if (rc == 0)
        rc = asyncio__sock_connect(fd, &a);
    if (rc < 0) {
        asyncio__sock_close(fd);
        return rc;
    }
    return fd;
}

static BOOL CALLBACK make_socket(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    int fd = open_self_socket();
    if (fd < 0) {
        g_sock_err = fd;
        return TRUE;
    }
    atomic_store_explicit(&g_sock, fd, memory_order_release);
    if (!SetConsoleCtrlHandler(ctrl_handler, TRUE))
        g_sock_err = asyncio__win_error(GetLastError());
    return TRUE;
}

int asyncio__signal_pipe(void)
{
    InitOnceExecuteOnce(&g_once, make_socket, NULL, NULL);
    if (g_sock_err < 0)
        return g_sock_err;
    return atomic_load_explicit(&g_sock, memory_order_acquire);
}

void asyncio__signal_pipe_drain(void)
{
    int fd = atomic_load_explicit(&g_sock, memory_order_acquire);
    char buf[64];
    if (fd < 0)
        return;
    while (recv(asyncio__win_sock(fd), buf, sizeof buf, 0) > 0) {
    }
}

int asyncio__signal_install(int sig)
{
    if (!asyncio__signal_catchable(sig))
        return ASYNCIO_EINVAL;
    int rc = asyncio__signal_pipe();
    if (rc < 0)
        return rc;
    /* release: the handler that sees the flag also sees the socket. */
    atomic_store_explicit(&g_caught[sig], true, memory_order_release);
    return 0;
}

void asyncio__signal_restore(int sig)
{
    if (asyncio__signal_catchable(sig))
        atomic_store_explicit(&g_caught[sig], false, memory_order_release);
}

uint64_t asyncio__signal_deliveries(int sig)
{
    if (sig <= 0 || sig >= SIG_SLOTS)
        return 0;
    return atomic_load_explicit(&g_deliveries[sig], memory_order_seq_cst);
}
