/*
 * Self-pipe signal handling. The handler does only async-signal-safe work:
 * one lock-free atomic increment and one write(2) to a non-blocking pipe
 * (a full pipe is fine: the driver will wake anyway), preserving errno.
 * Install / restore are serialised by the caller (src/signal/signal.c's
 * lock).
 */
#include "platform/signal_os.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "internal.h"
#include "platform/pipe.h"

#define SIG_SLOTS 65

ASYNCIO_STATIC_ASSERT(ATOMIC_LLONG_LOCK_FREE == 2, "the handler needs lock-free 64-bit atomics");

static _Atomic uint64_t g_deliveries[SIG_SLOTS];
static struct sigaction g_saved[SIG_SLOTS];
static int g_pipe[2] = {-1, -1};
static int g_pipe_err;
static pthread_once_t g_pipe_once = PTHREAD_ONCE_INIT;

bool asyncio__signal_catchable(int sig)
{
    if (sig <= 0 || sig >= SIG_SLOTS || sig >= NSIG)
        return false;
    switch (sig) {
    case SIGKILL:
    case SIGSTOP:
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
        return false;
    default:
        return true;
    }
}

static void make_pipe(void)
{
    int rc = asyncio__pipe_open(g_pipe);
    if (rc < 0) {
        g_pipe_err = rc;
        g_pipe[0] = g_pipe[1] = -1;
    }
}

int asyncio__signal_pipe(void)
{
    pthread_once(&g_pipe_once, make_pipe);
    return g_pipe[0] >= 0 ? g_pipe[0] : g_pipe_err;
}

void asyncio__signal_pipe_drain(void)
{
    char buf[64];
    while (g_pipe[0] >= 0) {
        ssize_t r = read(g_pipe[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
    }
}

static void on_signal(int sig)
{
    int saved = errno;
    if (sig > 0 && sig < SIG_SLOTS)
        atomic_fetch_add_explicit(&g_deliveries[sig], 1, memory_order_relaxed);
    char b = (char)sig;
    ssize_t r = write(g_pipe[1], &b, 1); /* EAGAIN (pipe full) is fine: a wake is pending */
    (void)r;
    errno = saved;
}

int asyncio__signal_install(int sig)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, &g_saved[sig]) < 0)
        return -errno;
    return 0;
}

void asyncio__signal_restore(int sig)
{
    sigaction(sig, &g_saved[sig], NULL);
}

uint64_t asyncio__signal_deliveries(int sig)
{
    /* Relaxed: the pipe write / driver wake orders nothing else; the count is the only datum. */
    return atomic_load_explicit(&g_deliveries[sig], memory_order_relaxed);
}
