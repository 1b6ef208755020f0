/*
 * Child processes (include/asyncio/process.h, docs/process.md).
 *
 * A handle owns: the child's pid and the duty to reap it, the parent's ends
 * of its stdio pipes, and what it waits with — a pidfd registered with the
 * I/O driver (WAIT_PIDFD), or a SIGCHLD listener of the signal API
 * (WAIT_SIGNAL: no pidfd in this kernel, or ASYNCIO_PROCESS_WAIT=signal).
 *
 * Reaping. The child is reaped exactly once, by waitpid(pid) (never -1),
 * under the handle's lock, which also covers kill: once `reaped` is set the
 * pid may belong to someone else, so kill refuses (ESRCH) instead of
 * signalling a stranger. A handle freed before its child was reaped turns
 * the child into an *orphan*: its pid goes on the global orphan list, and
 * the list is reaped whenever SIGCHLD reaches a runtime (through a listener
 * of the signal API whose waker is the reaper itself, below) and at every
 * spawn and free. A slot on that list is reserved at spawn (the first 16
 * inline, without allocating), so freeing never needs memory.
 *
 * Waiting with a pidfd: waitpid(WNOHANG) first; if the child still runs,
 * await the pidfd's readability (it becomes readable at exit and stays so).
 * Waiting with SIGCHLD: the listener is created right after the spawn, and
 * every poll does waitpid(WNOHANG) before checking it, so an exit either
 * shows in that waitpid or raises a SIGCHLD the listener counts: no lost
 * wake-up. Any SIGCHLD wakes every SIGCHLD waiter (each re-checks its own
 * pid), as in Tokio.
 *
 * Pipes are registered with the I/O driver of the runtime whose task first
 * polls them (so spawn needs no runtime), as asyncio_async_fd.
 *
 * Lock order: orphan lock -> the signal module's lock (the reaper polls its
 * listener under the orphan lock; the signal module wakes outside its own).
 */
#include "asyncio/process.h"

#include <stdatomic.h>
#include <string.h>

#include "asyncio/async_fd.h"
#include "asyncio/io_util.h"
#include "asyncio/signal.h"
#include "internal.h"
#include "platform/process_os.h"
#include "platform/thread.h"
#include "util/alloc.h"

typedef enum wait_mode {
    WAIT_PIDFD,  /* pidfd >= 0, registered with the I/O driver at the first wait */
    WAIT_SIGNAL, /* sigchld listening since spawn */
} wait_mode;

/* The parent's end of one stdio pipe. */
typedef struct child_pipe {
    int fd;                /* -1: not a pipe, or closed */
    asyncio_async_fd *afd; /* registered at the first poll */
    uint32_t direction;    /* ASYNCIO_READABLE (stdout, stderr) or ASYNCIO_WRITABLE (stdin) */
} child_pipe;

struct asyncio_process {
    int pid;
    unsigned flags;
    wait_mode mode;
    child_pipe pipes[3];
    int pidfd;                   /* WAIT_PIDFD */
    asyncio_async_fd *pidfd_afd; /* WAIT_PIDFD, after the first wait that found the child running */
    asyncio_signal sigchld;      /* WAIT_SIGNAL */
    asyncio__mutex lock;         /* reaped + status, and kill against reaping */
    bool reaped;                 /* by us (status valid) or by someone else (reap_err) */
    int reap_err;                /* 0, or -ECHILD: the child was reaped elsewhere */
    asyncio_exit_status status;
};

/* ------------------------------------------------------------------------ */
/* Orphans: children whose handle was freed before they were reaped          */

static asyncio__mutex g_orphan_lock = ASYNCIO__MUTEX_INIT;
/* Up to this many children need no allocation for their orphan slots. */
#define ORPHAN_INLINE 16
static int g_orphan_inline[ORPHAN_INLINE];
static int *g_orphans = g_orphan_inline; /* pids, [0, g_orphan_count) */
static size_t g_orphan_count;
/* g_orphan_count != 0, readable without the lock: a hint, re-checked under it (relaxed). */
static _Atomic bool g_have_orphans;
static size_t g_orphan_cap = ORPHAN_INLINE;
static size_t g_reserved; /* live handles + orphans: g_orphan_cap >= g_reserved */
static asyncio_signal g_orphan_sig;
static bool g_orphan_listening; /* g_orphan_sig initialised (SIGCHLD counted) */

static void orphan_kick(void);

/* The reaper's waker: the signal module wakes it on SIGCHLD, on a driver thread. */
static asyncio_waker reaper_clone(const void *data);
static void reaper_wake(const void *data)
{
    (void)data;
    orphan_kick();
}
static void reaper_drop(const void *data)
{
    (void)data;
}
static const asyncio_waker_vtable reaper_vt = {reaper_clone, reaper_wake, reaper_wake, reaper_drop};
static asyncio_waker reaper_clone(const void *data)
{
    return (asyncio_waker){&reaper_vt, data};
}

/* Lock held: doubles the orphan list (moving it off the inline array). 0 or ASYNCIO_ENOMEM. */
static int grow_locked(void)
{
    size_t cap = g_orphan_cap * 2;
    int *grown = g_orphans == g_orphan_inline ? asyncio__malloc(cap * sizeof *grown)
                                              : asyncio__realloc(g_orphans, cap * sizeof *grown);
    if (grown == NULL)
        return ASYNCIO_ENOMEM;
    if (g_orphans == g_orphan_inline)
        memcpy(grown, g_orphan_inline, g_orphan_count * sizeof *grown);
    g_orphans = grown;
    g_orphan_cap = cap;
    return 0;
}

/* A slot on the orphan list for a child about to be spawned. 0 or ASYNCIO_ENOMEM. */
static int reserve_slot(void)
{
    asyncio__mutex_lock(&g_orphan_lock);
    int rc = g_reserved == g_orphan_cap ? grow_locked() : 0;
    if (rc == 0)
        g_reserved++;
    asyncio__mutex_unlock(&g_orphan_lock);
    return rc;
}

/* Lock held: the reservation of a child that is reaped (or was never born) goes. */
static void release_slot_locked(void)
{
    ASYNCIO_CHECK(g_reserved > g_orphan_count);
    g_reserved--;
    if (g_reserved == 0 && g_orphans != g_orphan_inline) { /* no child left: memory back */
        asyncio__free(g_orphans);
        g_orphans = g_orphan_inline;
        g_orphan_cap = ORPHAN_INLINE;
    }
}

static void release_slot(void)
{
    asyncio__mutex_lock(&g_orphan_lock);
    release_slot_locked();
    asyncio__mutex_unlock(&g_orphan_lock);
}

/* Lock held: reaps every orphan that exited (or that someone else reaped). */
static void reap_orphans_locked(void)
{
    size_t i = 0;
    while (i < g_orphan_count) {
        asyncio_exit_status st;
        if (asyncio__child_reap(g_orphans[i], &st) == ASYNCIO_EAGAIN) {
            i++;
            continue;
        }
        g_orphans[i] = g_orphans[--g_orphan_count];
        release_slot_locked();
    }
    atomic_store_explicit(&g_have_orphans, g_orphan_count > 0, memory_order_relaxed);
    if (g_orphan_count == 0 && g_orphan_listening) {
        asyncio_signal_drop(&g_orphan_sig); /* the last SIGCHLD user restores the disposition */
        g_orphan_listening = false;
    }
}

/*
 * Lock held: makes sure a SIGCHLD will run the reaper. Listening starts
 * with the first orphan; then reap once (a child that exited before the
 * handler was installed raised no SIGCHLD we saw), and park the reaper's
 * waker on the listener, which needs a runtime on this thread (it attaches
 * the signal self-pipe to its driver). Outside one, the next spawn, free or
 * SIGCHLD seen by an armed runtime tries again.
 */
static void arm_locked(void)
{
    if (g_orphan_count > 0 && !g_orphan_listening) {
        int sigs[1] = {asyncio__sigchld()};
        if (asyncio_signal_init(&g_orphan_sig, sigs, 1) == 0)
            g_orphan_listening = true;
    }
    reap_orphans_locked();
    if (!g_orphan_listening)
        return;
    asyncio_waker w = {&reaper_vt, NULL};
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&w);
    /* 0: a SIGCHLD came since the last look: reap again, then park. */
    while (g_orphan_listening && asyncio_signal_poll(&g_orphan_sig, &cx, NULL) == 0)
        reap_orphans_locked();
}

static void orphan_kick(void)
{
    asyncio__mutex_lock(&g_orphan_lock);
    arm_locked();
    asyncio__mutex_unlock(&g_orphan_lock);
}

/* The handle of pid is going away unreaped: its slot becomes an orphan. */
static void orphan_push(int pid)
{
    asyncio__mutex_lock(&g_orphan_lock);
    ASYNCIO_CHECK(g_orphan_count < g_reserved && g_orphan_count < g_orphan_cap);
    g_orphans[g_orphan_count++] = pid;
    arm_locked();
    asyncio__mutex_unlock(&g_orphan_lock);
}

/*
 * Spawn, free and wait give waiting orphans a chance, and arm the reaper
 * in this thread's runtime if it could not be armed where the handle was
 * freed (outside any runtime). One relaxed load when there is no orphan.
 */
static void orphan_maybe_kick(void)
{
    if (!atomic_load_explicit(&g_have_orphans, memory_order_relaxed))
        return;
    asyncio__mutex_lock(&g_orphan_lock);
    if (g_orphan_count > 0)
        arm_locked();
    asyncio__mutex_unlock(&g_orphan_lock);
}

/* ------------------------------------------------------------------------ */
/* Reaping and killing an owned child                                       */

/*
 * 0 with the status (reaped now or before), ASYNCIO_EAGAIN while running, or
 * -ECHILD, for good, when someone else reaped it: the pid is then no longer
 * ours either, so it counts as reaped (kill refuses).
 */
static int try_reap(asyncio_process *p, asyncio_exit_status *st)
{
    asyncio__mutex_lock(&p->lock);
    int rc = p->reap_err;
    if (!p->reaped) {
        rc = asyncio__child_reap(p->pid, &p->status);
        if (rc != ASYNCIO_EAGAIN)
            p->reaped = true;
        if (rc < 0 && rc != ASYNCIO_EAGAIN)
            p->reap_err = rc;
    }
    if (rc == 0 && st != NULL)
        *st = p->status;
    asyncio__mutex_unlock(&p->lock);
    return rc;
}

int asyncio_process_try_wait(asyncio_process *p, asyncio_exit_status *status)
{
    if (p == NULL || status == NULL)
        return ASYNCIO_EINVAL;
    return try_reap(p, status);
}

int asyncio_process_kill(asyncio_process *p, int sig)
{
    if (p == NULL || sig <= 0)
        return ASYNCIO_EINVAL;
    asyncio__mutex_lock(&p->lock);
    /* Under the lock: the pid is ours until `reaped` is set. */
    int rc = p->reaped ? -ESRCH : asyncio__child_kill(p->pid, sig);
    asyncio__mutex_unlock(&p->lock);
    return rc;
}

int asyncio_process_id(const asyncio_process *p)
{
    return p != NULL ? p->pid : -1;
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                   */

static int wait_pidfd(asyncio_process *p, asyncio_context *cx, asyncio_exit_status *st)
{
    if (p->pidfd_afd == NULL) {
        int rc = asyncio_async_fd_new(&p->pidfd_afd, p->pidfd, ASYNCIO_READABLE);
        if (rc < 0)
            return rc;
    }
    for (;;) {
        asyncio_ready_guard g;
        int rc = asyncio_async_fd_poll_ready(p->pidfd_afd, cx, ASYNCIO_READABLE, &g);
        if (rc != 0)
            return rc; /* PENDING: woken at the exit */
        rc = try_reap(p, st);
        if (rc != ASYNCIO_EAGAIN)
            return rc;
        asyncio_async_fd_clear_ready(p->pidfd_afd, &g); /* readable yet running: never seen */
    }
}

static int wait_signal(asyncio_process *p, asyncio_context *cx, asyncio_exit_status *st)
{
    for (;;) {
        /* 0: some SIGCHLD came since the last look (maybe not ours): check again. */
        int rc = asyncio_signal_poll(&p->sigchld, cx, NULL);
        if (rc != 0)
            return rc;
        rc = try_reap(p, st);
        if (rc != ASYNCIO_EAGAIN)
            return rc;
    }
}

int asyncio_process_poll_wait(asyncio_process *p, asyncio_context *cx, asyncio_exit_status *status)
{
    if (p == NULL || cx == NULL)
        return ASYNCIO_EINVAL;
    int rc = try_reap(p, status);
    if (rc != ASYNCIO_EAGAIN)
        return rc;
    orphan_maybe_kick();
    return p->mode == WAIT_PIDFD ? wait_pidfd(p, cx, status) : wait_signal(p, cx, status);
}

int asyncio_process_poll_wait_fn(void *p, asyncio_context *cx)
{
    return asyncio_process_poll_wait(p, cx, NULL);
}

/* ------------------------------------------------------------------------ */
/* Pipes as AsyncRead / AsyncWrite                                          */

/* Registers the pipe with the current runtime at its first use. */
static int pipe_ready(child_pipe *cp)
{
    if (cp->fd < 0)
        return ASYNCIO_EBADF;
    if (cp->afd != NULL)
        return 0;
    return asyncio_async_fd_new(&cp->afd, cp->fd, cp->direction);
}

static void pipe_close(child_pipe *cp)
{
    if (cp->afd != NULL) {
        asyncio_async_fd_free(cp->afd); /* deregister before the number can be reused */
        cp->afd = NULL;
    }
    asyncio__child_fd_close(cp->fd);
    cp->fd = -1;
}

static int pipe_poll_read(void *self, asyncio_context *cx, void *buf, size_t len, size_t *n_out)
{
    child_pipe *cp = self;
    int rc = pipe_ready(cp);
    return rc < 0 ? rc : asyncio_async_fd_poll_read(cp->afd, cx, buf, len, n_out);
}

static int pipe_poll_write(void *self, asyncio_context *cx, const void *buf, size_t len,
                           size_t *n_out)
{
    child_pipe *cp = self;
    int rc = pipe_ready(cp);
    return rc < 0 ? rc : asyncio_async_fd_poll_write(cp->afd, cx, buf, len, n_out);
}

static int pipe_raw_fd(void *self)
{
    return ((child_pipe *)self)->fd;
}

static int pipe_poll_raw_io(void *self, asyncio_context *cx, asyncio_raw_io_fn op, void *arg,
                            size_t *n_out)
{
    child_pipe *cp = self;
    int rc = pipe_ready(cp);
    return rc < 0 ? rc : asyncio_raw_io_poll_async_fd(cp->afd, cx, cp->direction, op, arg, n_out);
}

static int pipe_poll_flush(void *self, asyncio_context *cx)
{
    (void)cx; /* nothing buffered in user space */
    return ((child_pipe *)self)->fd < 0 ? ASYNCIO_EBADF : 0;
}

static int pipe_poll_shutdown(void *self, asyncio_context *cx)
{
    (void)cx;
    child_pipe *cp = self;
    if (cp->fd < 0)
        return ASYNCIO_EBADF;
    pipe_close(cp); /* the child reads end of file */
    return 0;
}

static const asyncio_reader_vtable pipe_reader_vt = {pipe_poll_read, pipe_raw_fd, pipe_poll_raw_io};
static const asyncio_writer_vtable pipe_writer_vt = {
    pipe_poll_write, NULL, pipe_poll_flush, pipe_poll_shutdown, pipe_raw_fd, pipe_poll_raw_io};

asyncio_writer asyncio_process_stdin(asyncio_process *p)
{
    return (asyncio_writer){p != NULL ? &pipe_writer_vt : NULL, p != NULL ? &p->pipes[0] : NULL};
}

asyncio_reader asyncio_process_stdout(asyncio_process *p)
{
    return (asyncio_reader){p != NULL ? &pipe_reader_vt : NULL, p != NULL ? &p->pipes[1] : NULL};
}

asyncio_reader asyncio_process_stderr(asyncio_process *p)
{
    return (asyncio_reader){p != NULL ? &pipe_reader_vt : NULL, p != NULL ? &p->pipes[2] : NULL};
}

int asyncio_process_close_pipe(asyncio_process *p, int which)
{
    if (p == NULL || which < 0 || which > 2)
        return ASYNCIO_EINVAL;
    pipe_close(&p->pipes[which]);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Spawn                                                                     */

/* ASYNCIO_PROCESS_WAIT: 0 not read yet, 1 pidfd where possible, 2 "signal" (SIGCHLD only). */
static _Atomic int g_wait_env;

/* Read once; racing first reads compute the same answer. Relaxed: the value is the only datum. */
static bool force_signal_wait(void)
{
    int v = atomic_load_explicit(&g_wait_env, memory_order_relaxed);
    if (v == 0) {
        const char *e = asyncio__env_get("ASYNCIO_PROCESS_WAIT");
        v = e != NULL && strcmp(e, "signal") == 0 ? 2 : 1;
        atomic_store_explicit(&g_wait_env, v, memory_order_relaxed);
    }
    return v == 2;
}

/* Length of an environment entry's name (up to '=' or the end). */
static size_t env_name_len(const char *e)
{
    const char *eq = strchr(e, '=');
    return eq != NULL ? (size_t)(eq - e) : strlen(e);
}

/* Removes the entries named like `e` from env[0, *n). */
static void env_remove(char **env, size_t *n, const char *e)
{
    size_t len = env_name_len(e);
    size_t out = 0;
    for (size_t i = 0; i < *n; i++) {
        bool same = strncmp(env[i], e, len) == 0 && env[i][len] == '=';
        if (!same)
            env[out++] = env[i];
    }
    *n = out;
}

/*
 * The child's environment, or NULL in *out when it is exactly the parent's
 * (no allocation then). The strings are borrowed from environ and opts.
 */
static int env_build(const asyncio_process_options *o, char ***out)
{
    *out = NULL;
    if (o->env_base == ASYNCIO_ENV_INHERIT && o->env == NULL)
        return 0;
    char *const *base = o->env_base == ASYNCIO_ENV_INHERIT ? asyncio__env_current() : NULL;
    size_t nb = 0, ns = 0;
    while (base != NULL && base[nb] != NULL)
        nb++;
    while (o->env != NULL && o->env[ns] != NULL)
        ns++;
    char **env = asyncio__malloc((nb + ns + 1) * sizeof *env);
    if (env == NULL)
        return ASYNCIO_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < nb; i++)
        env[n++] = base[i];
    for (size_t i = 0; i < ns; i++) {
        const char *e = o->env[i];
        env_remove(env, &n, e);
        if (strchr(e, '=') != NULL)
            env[n++] = (char *)(uintptr_t)e; /* posix_spawn takes char *const[]; never written */
    }
    env[n] = NULL;
    *out = env;
    return 0;
}

static bool options_valid(const asyncio_process_options *o)
{
    if (o->argv == NULL || o->argv[0] == NULL)
        return false;
    if ((unsigned)o->env_base > ASYNCIO_ENV_CLEAR || (o->flags & ~ASYNCIO_PROCESS_KILL_ON_DROP))
        return false;
    const asyncio_stdio modes[3] = {o->stdin_mode, o->stdout_mode, o->stderr_mode};
    for (int i = 0; i < 3; i++)
        if ((unsigned)modes[i] > ASYNCIO_STDIO_PIPE)
            return false;
    if (o->env != NULL)
        for (size_t i = 0; o->env[i] != NULL; i++)
            if (o->env[i][0] == '\0' || o->env[i][0] == '=')
                return false;
    return true;
}

/* Opens the pipes asked for: parent ends into p, child ends into req->stdio. */
static int pipes_open(asyncio_process *p, const asyncio_process_options *o, asyncio__spawn_req *req)
{
    const asyncio_stdio modes[3] = {o->stdin_mode, o->stdout_mode, o->stderr_mode};
    for (int i = 0; i < 3; i++) {
        p->pipes[i] =
            (child_pipe){.fd = -1, .direction = i == 0 ? ASYNCIO_WRITABLE : ASYNCIO_READABLE};
        req->stdio[i] = modes[i] == ASYNCIO_STDIO_NULL ? ASYNCIO__STDIO_NULL : ASYNCIO__STDIO_KEEP;
    }
    for (int i = 0; i < 3; i++) {
        if (modes[i] != ASYNCIO_STDIO_PIPE)
            continue;
        int rc = asyncio__child_pipe(&p->pipes[i].fd, &req->stdio[i], i == 0);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The child ends belong to the child now (or to nobody after a failure). */
static void child_ends_close(asyncio__spawn_req *req)
{
    for (int i = 0; i < 3; i++)
        if (req->stdio[i] >= 0)
            asyncio__child_fd_close(req->stdio[i]);
}

/*
 * How to wait: a pidfd when the kernel gives one, else a SIGCHLD listener.
 * If neither is possible the child cannot be awaited: it is killed and
 * reaped here, and spawn fails with that error.
 */
static int wait_setup(asyncio_process *p)
{
    p->pidfd = force_signal_wait() ? ASYNCIO_ENOSYS : asyncio__pidfd_open(p->pid);
    if (p->pidfd >= 0) {
        p->mode = WAIT_PIDFD;
        return 0;
    }
    p->mode = WAIT_SIGNAL;
    int sigs[1] = {asyncio__sigchld()};
    int rc = asyncio_signal_init(&p->sigchld, sigs, 1);
    if (rc < 0) {
        asyncio__child_kill(p->pid, asyncio__sigkill());
        asyncio__child_reap_blocking(p->pid);
    }
    return rc;
}

static int spawn_child(asyncio_process *p, const asyncio_process_options *o)
{
    asyncio__spawn_req req = {.file = o->file != NULL ? o->file : o->argv[0],
                              .argv = (char *const *)(uintptr_t)o->argv,
                              .cwd = o->cwd};
    char **env = NULL;
    int rc = pipes_open(p, o, &req);
    if (rc == 0)
        rc = env_build(o, &env);
    if (rc == 0) {
        req.envp = env;
        rc = asyncio__spawn(&req, &p->pid);
    }
    asyncio__free(env);
    child_ends_close(&req);
    if (rc == 0)
        rc = wait_setup(p);
    if (rc < 0)
        for (int i = 0; i < 3; i++)
            pipe_close(&p->pipes[i]);
    return rc;
}

int asyncio_process_spawn(asyncio_process **out, const asyncio_process_options *opts)
{
    if (out == NULL || opts == NULL || !options_valid(opts))
        return ASYNCIO_EINVAL;
    orphan_maybe_kick();
    asyncio_process *p = asyncio__calloc(1, sizeof *p);
    if (p == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__mutex_init(&p->lock);
    if (rc == 0) {
        rc = reserve_slot();
        if (rc < 0)
            asyncio__mutex_destroy(&p->lock);
    }
    if (rc == 0) {
        p->flags = opts->flags;
        rc = spawn_child(p, opts);
        if (rc < 0) {
            release_slot();
            asyncio__mutex_destroy(&p->lock);
        }
    }
    if (rc < 0) {
        asyncio__free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Free                                                                      */

void asyncio_process_free(asyncio_process *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < 3; i++)
        pipe_close(&p->pipes[i]);
    if (p->mode == WAIT_PIDFD) {
        asyncio_async_fd_free(p->pidfd_afd);
        asyncio__child_fd_close(p->pidfd);
    } else {
        asyncio_signal_drop(&p->sigchld);
    }
    bool running = try_reap(p, NULL) == ASYNCIO_EAGAIN;
    if (running && (p->flags & ASYNCIO_PROCESS_KILL_ON_DROP)) {
        asyncio__child_kill(p->pid, asyncio__sigkill());
        running = try_reap(p, NULL) == ASYNCIO_EAGAIN; /* usually still dying */
    }
    int pid = p->pid;
    asyncio__mutex_destroy(&p->lock);
    asyncio__free(p);
    if (running)
        orphan_push(pid);
    else
        release_slot();
    orphan_maybe_kick();
}
