/*
 * TEST-ONLY: runs a program with io_uring blocked by a seccomp filter, the way container
 * runtimes' default profiles block it, so the suites can prove the uring backend's fallback
 * to epoll (docs/backends.md "uring: fallback").
 *
 *   seccomp_exec MODE PROGRAM [ARGS...]
 *
 * MODE:
 *   setup-enosys   io_uring_setup fails with ENOSYS (a kernel without io_uring, or seccomp
 *                  profiles that answer ENOSYS)
 *   setup-eperm    io_uring_setup fails with EPERM (Docker's default profile,
 *                  kernel.io_uring_disabled)
 *   probe-einval   io_uring_register(IORING_REGISTER_PROBE) fails with EINVAL (a kernel
 *                  before 5.6: which opcodes exist cannot be known)
 * Everything else is allowed. Exits 125 if the filter cannot be installed.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp_exec: unknown architecture"
#endif

#define LOAD(field)  BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define LOAD_ARG1_LO BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1]))
#define RET(v)       BPF_STMT(BPF_RET | BPF_K, (v))

static int install(unsigned nr, int check_arg1, unsigned arg1, int err)
{
    struct sock_filter f[] = {
        LOAD(arch),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
        RET(SECCOMP_RET_ALLOW),
        LOAD(nr),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 1, 0),
        RET(SECCOMP_RET_ALLOW),
        /* check_arg1: the low 32 bits of the second argument must match too. */
        LOAD_ARG1_LO,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arg1, 1, 0),
        RET(check_arg1 ? SECCOMP_RET_ALLOW : SECCOMP_RET_ERRNO | (unsigned)err),
        RET(SECCOMP_RET_ERRNO | (unsigned)err),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s setup-enosys|setup-eperm|probe-einval PROGRAM [ARGS...]\n",
                argv[0]);
        return 125;
    }
    int rc;
    if (strcmp(argv[1], "setup-enosys") == 0)
        rc = install(__NR_io_uring_setup, 0, 0, ENOSYS);
    else if (strcmp(argv[1], "setup-eperm") == 0)
        rc = install(__NR_io_uring_setup, 0, 0, EPERM);
    else if (strcmp(argv[1], "probe-einval") == 0)
        rc = install(__NR_io_uring_register, 1, IORING_REGISTER_PROBE, EINVAL);
    else {
        fprintf(stderr, "%s: unknown mode %s\n", argv[0], argv[1]);
        return 125;
    }
    if (rc < 0) {
        perror("seccomp");
        return 125;
    }
    execvp(argv[2], argv + 2);
    perror("execvp");
    return 125;
}
