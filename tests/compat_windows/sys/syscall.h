/* TEST-ONLY (Windows): syscall(SYS_gettid) is the Win32 thread id. */
#ifndef COMPAT_SYS_SYSCALL_H
#define COMPAT_SYS_SYSCALL_H
#include <windows.h>
#define SYS_gettid 186
static inline long syscall(long n)
{
    (void)n;
    return (long)GetCurrentThreadId();
}
#endif
