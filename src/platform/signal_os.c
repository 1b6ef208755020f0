/*
 * Self-pipe signal handling. The handler does only async-signal-safe work:
 * one lock-free atomic increment and one write(2) to a non-blocking pipe
 * (a full pipe is fine: the driver will wake anyway), preserving errno;
 * for SIGCHLD it then calls the handler that was there before (chain()).
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
ASYNCIO_STATIC_ASSERT(ATOMIC_POINTER_LOCK_FREE == 2, "the handler needs lock-free pointer atomics");

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

/*
 * SIGCHLD is chained: a handler installed before ours (another library
 * reaping its own children when told so) keeps being called while we
 * listen. SIGCHLD is a notification every party may share; other signals
 * are commands whose previous handler a listener replaces on purpose.
 *
 * The handler never reads g_saved (install / restore rewrite it while a late
 * delivery may still be running on another thread): install publishes the
 * previous handler's function here, restore clears it first. Relaxed: the
 * pointer is the only datum, and a delivery racing a restore may call the
 * old handler once more, as it would have a moment earlier.
 */
typedef void (*chain_info_fn)(int, siginfo_t *, void *);
typedef void (*chain_plain_fn)(int);
static _Atomic(chain_info_fn) g_chain_info[SIG_SLOTS];
static _Atomic(chain_plain_fn) g_chain_plain[SIG_SLOTS];

static void chain(int sig, siginfo_t *info, void *ctx)
{
    chain_info_fn f = atomic_load_explicit(&g_chain_info[sig], memory_order_relaxed);
    chain_plain_fn g = atomic_load_explicit(&g_chain_plain[sig], memory_order_relaxed);
    if (f != NULL)
        f(sig, info, ctx);
    else if (g != NULL)
        g(sig);
}

/* What chain() calls for sig while our handler is in place: the previous one, SIGCHLD only. */
static void chain_set(int sig, const struct sigaction *prev)
{
    chain_info_fn f = NULL;
    chain_plain_fn g = NULL;
    if (sig == SIGCHLD && prev != NULL) {
        if (prev->sa_flags & SA_SIGINFO)
            f = prev->sa_sigaction;
        else if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN)
            g = prev->sa_handler;
    }
    atomic_store_explicit(&g_chain_info[sig], f, memory_order_relaxed);
    atomic_store_explicit(&g_chain_plain[sig], g, memory_order_relaxed);
}

static void on_signal(int sig, siginfo_t *info, void *ctx)
{
    int saved = errno;
    if (sig > 0 && sig < SIG_SLOTS)
        atomic_fetch_add_explicit(&g_deliveries[sig], 1, memory_order_relaxed);
    char b = (char)sig;
    ssize_t r = write(g_pipe[1], &b, 1); /* EAGAIN (pipe full) is fine: a wake is pending */
    (void)r;
    if (sig > 0 && sig < SIG_SLOTS)
        chain(sig, info, ctx);
    errno = saved;
}

int asyncio__signal_install(int sig)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    struct sigaction prev;
    if (sigaction(sig, NULL, &prev) < 0)
        return -errno;
    g_saved[sig] = prev; /* for restore; the handler reads only what chain_set publishes */
    chain_set(sig, &prev);
    if (sigaction(sig, &sa, NULL) < 0) {
        chain_set(sig, NULL);
        return -errno;
    }
    return 0;
}

void asyncio__signal_restore(int sig)
{
    chain_set(sig, NULL);
    sigaction(sig, &g_saved[sig], NULL);
}

uint64_t asyncio__signal_deliveries(int sig)
{
    /* Relaxed: the pipe write / driver wake orders nothing else; the count is the only datum. */
    return atomic_load_explicit(&g_deliveries[sig], memory_order_relaxed);
}
