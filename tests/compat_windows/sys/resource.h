/* TEST-ONLY (Windows): no resource limits; the calls fail with ENOSYS. */
#ifndef COMPAT_SYS_RESOURCE_H
#define COMPAT_SYS_RESOURCE_H
#include <errno.h>
#include <sys/types.h>
typedef unsigned long rlim_t;
struct rlimit {
    rlim_t rlim_cur, rlim_max;
};
#define RLIMIT_NOFILE 7
#define RLIM_INFINITY ((rlim_t)-1)
static inline int getrlimit(int r, struct rlimit *l)
{
    (void)r;
    l->rlim_cur = l->rlim_max = 8192;
    return 0;
}
static inline int setrlimit(int r, const struct rlimit *l)
{
    (void)r;
    (void)l;
    errno = ENOSYS;
    return -1;
}
static inline int prlimit(int pid, int r, const struct rlimit *n, struct rlimit *o)
{
    (void)pid;
    (void)r;
    (void)n;
    (void)o;
    errno = ENOSYS;
    return -1;
}
#endif
