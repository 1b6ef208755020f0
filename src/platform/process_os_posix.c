/*
 * Child processes with posix_spawn (see process_os.h): Linux, macOS, BSDs.
 *
 * posix_spawn reports the exec's own error (glibc >= 2.24 and musl through
 * a close-on-exec pipe or CLONE_VFORK, macOS natively), which is what lets
 * spawn return ENOENT / EACCES instead of a child that exits with 127.
 * glibc's implementation is clone(CLONE_VM | CLONE_VFORK): no copy of the
 * parent's memory, so spawning stays cheap however large the parent is.
 */
#include "platform/process_os.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "platform/pipe.h"

extern char **environ;

/* glibc >= 2.34 closes every fd >= 3 in the child; macOS has a spawn flag for it. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define HAVE_ADDCLOSEFROM 1
#elif defined(POSIX_SPAWN_CLOEXEC_DEFAULT)
#define HAVE_CLOEXEC_DEFAULT 1
#endif

bool asyncio__spawn_closes_all_fds(void)
{
#if defined(HAVE_ADDCLOSEFROM) || defined(HAVE_CLOEXEC_DEFAULT)
    return true;
#else
    return false; /* musl: only close-on-exec protects (every library fd has it) */
#endif
}

/* The child's fd 0..2: nothing (keep), /dev/null, or the pipe end dup'ed on. */
static int add_stdio(posix_spawn_file_actions_t *fa, int target, int how)
{
    if (how == ASYNCIO__STDIO_KEEP) {
#ifdef HAVE_CLOEXEC_DEFAULT
        /* Everything not named is closed: name the parent's fd to keep it (if it is open). */
        if (fcntl(target, F_GETFD) >= 0)
            return posix_spawn_file_actions_adddup2(fa, target, target);
#endif
        return 0;
    }
    if (how == ASYNCIO__STDIO_NULL)
        return posix_spawn_file_actions_addopen(fa, target, "/dev/null",
                                                target == 0 ? O_RDONLY : O_WRONLY, 0);
    return posix_spawn_file_actions_adddup2(fa, how, target); /* clears close-on-exec */
}

static int build_actions(posix_spawn_file_actions_t *fa, const asyncio__spawn_req *r)
{
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = add_stdio(fa, i, r->stdio[i]);
    if (rc == 0 && r->cwd != NULL)
        rc = posix_spawn_file_actions_addchdir_np(fa, r->cwd);
#ifdef HAVE_ADDCLOSEFROM
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(fa, 3);
#endif
    return rc;
}

/* Empty signal mask (the runtime's threads may block some) and SIGPIPE back to default. */
static int build_attr(posix_spawnattr_t *at)
{
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
#ifdef HAVE_CLOEXEC_DEFAULT
    flags |= POSIX_SPAWN_CLOEXEC_DEFAULT;
#endif
    int rc = posix_spawnattr_setsigmask(at, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(at, &def);
    if (rc == 0)
        rc = posix_spawnattr_setflags(at, flags);
    return rc;
}

static bool has_slash(const char *s)
{
    for (; *s != '\0'; s++)
        if (*s == '/')
            return true;
    return false;
}

int asyncio__spawn(const asyncio__spawn_req *r, int *pid_out)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0)
        return -rc;
    rc = posix_spawnattr_init(&at);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -rc;
    }
    rc = build_actions(&fa, r);
    if (rc == 0)
        rc = build_attr(&at);
    if (rc == 0) {
        pid_t pid;
        char *const *envp = r->envp != NULL ? r->envp : environ;
        if (has_slash(r->file))
            rc = posix_spawn(&pid, r->file, &fa, &at, r->argv, envp);
        else
            rc = posix_spawnp(&pid, r->file, &fa, &at, r->argv, envp);
        if (rc == 0)
            *pid_out = (int)pid;
    }
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return -rc;
}

/* Moves fd to a number >= 3 (keeping close-on-exec); closes it on failure. */
static int above_stdio(int fd)
{
    if (fd >= 3)
        return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int err = errno;
    close(fd);
    return moved >= 0 ? moved : -err;
}

static int set_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

int asyncio__child_pipe(int *parent_fd, int *child_fd, bool child_reads)
{
    int fds[2];
    int rc = asyncio__pipe_open(fds); /* both ends non-blocking and close-on-exec */
    if (rc < 0)
        return rc;
    int child = child_reads ? 0 : 1;
    fds[child] = above_stdio(fds[child]);
    if (fds[child] < 0) {
        rc = fds[child];
        close(fds[1 - child]);
        return rc;
    }
    rc = set_blocking(fds[child]);
    if (rc < 0) {
        close(fds[0]);
        close(fds[1]);
        return rc;
    }
    *child_fd = fds[child];
    *parent_fd = fds[1 - child];
    return 0;
}

void asyncio__child_fd_close(int fd)
{
    if (fd >= 0)
        close(fd);
}

static void decode(int status, asyncio_exit_status *st)
{
    if (WIFSIGNALED(status))
        *st = (asyncio_exit_status){.code = -1, .signal = WTERMSIG(status)};
    else
        *st = (asyncio_exit_status){.code = WEXITSTATUS(status), .signal = 0};
}

int asyncio__child_reap(int pid, asyncio_exit_status *st)
{
    for (;;) {
        int status;
        pid_t r = waitpid((pid_t)pid, &status, WNOHANG);
        if (r == (pid_t)pid) {
            decode(status, st);
            return 0;
        }
        if (r == 0)
            return -EAGAIN;
        if (errno != EINTR)
            return -errno;
    }
}

void asyncio__child_reap_blocking(int pid)
{
    int status;
    while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR) {
    }
}

int asyncio__child_kill(int pid, int sig)
{
    return kill((pid_t)pid, sig) < 0 ? -errno : 0;
}

int asyncio__sigkill(void)
{
    return SIGKILL;
}

int asyncio__sigchld(void)
{
    return SIGCHLD;
}

const char *asyncio__env_get(const char *name)
{
    return getenv(name);
}

char *const *asyncio__env_current(void)
{
    return environ;
}
