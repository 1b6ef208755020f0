/*
 * uring_splice_probe: does IORING_OP_SPLICE beat readiness + splice(2) for
 * asyncio_copy's cases? Counts only (no timing): run it under
 * `strace -c -f` for system calls per MiB, and read the io-wq worker
 * threads (iou-wrk-*) it prints, sampled from /proc/self/task while the
 * ring has requests in flight. Not built by CMake (a one-off probe, kept
 * so the figures in docs/backends.md can be re-measured):
 *
 *   cc -O2 -pthread -o /tmp/usp bench/probes/uring_splice_probe.c
 *   strace -c -f /tmp/usp ready 64     # socket -> pipe -> socket, epoll + splice(2)
 *   strace -c -f /tmp/usp ring 64      # the same with IORING_OP_SPLICE (blocking socket)
 *   /tmp/usp idle 64                   # 64 idle sockets, one ring splice armed on each
 *   /tmp/usp idle-nb 64                # the same on O_NONBLOCK sockets
 *   strace -c -f /tmp/usp sendfile 64  # 64 MiB file -> socket with sendfile(2)
 *   strace -c -f /tmp/usp ring-file 64 # file -> pipe -> socket with IORING_OP_SPLICE
 *
 * The feeder thread writes, the drain thread reads: count only the
 * copier's calls (splice, sendfile, epoll_*, io_uring_enter).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* ---- a minimal ring (raw system calls) ---------------------------------- */

typedef struct ring {
    int fd;
    unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    unsigned enters;
} ring;

static void ring_init(ring *r, unsigned entries)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    memset(r, 0, sizeof *r);
    r->fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    if (r->fd < 0)
        die("io_uring_setup");
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_SQ_RING);
    char *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, IORING_OFF_CQ_RING);
    r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                   MAP_SHARED, r->fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
        die("mmap");
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
}

static void ring_splice(ring *r, int in, int out, unsigned len, uint64_t ud, unsigned flags)
{
    unsigned t = *r->sq_tail, i = t & *r->sq_mask;
    struct io_uring_sqe *s = &r->sqes[i];
    memset(s, 0, sizeof *s);
    s->opcode = IORING_OP_SPLICE;
    s->fd = out;
    s->off = (uint64_t)-1;
    s->splice_off_in = (uint64_t)-1;
    s->splice_fd_in = in;
    s->len = len;
    s->splice_flags = flags;
    s->user_data = ud;
    r->sq_array[i] = i;
    atomic_store_explicit((_Atomic unsigned *)r->sq_tail, t + 1, memory_order_release);
}

/* Submits what is queued and waits for `want` completions; returns the first one's result. */
static int ring_enter(ring *r, unsigned submit, unsigned want)
{
    r->enters++;
    if (syscall(__NR_io_uring_enter, r->fd, submit, want, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
        die("io_uring_enter");
    return 0;
}

static int ring_reap(ring *r, uint64_t *ud)
{
    unsigned h = *r->cq_head;
    if (h == atomic_load_explicit((_Atomic unsigned *)r->cq_tail, memory_order_acquire))
        return INT32_MIN;
    struct io_uring_cqe *c = &r->cqes[h & *r->cq_mask];
    int res = c->res;
    if (ud != NULL)
        *ud = c->user_data;
    atomic_store_explicit((_Atomic unsigned *)r->cq_head, h + 1, memory_order_release);
    return res;
}

/* ---- counting io-wq workers ---------------------------------------------- */

static int workers(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char p[300], comm[64] = {0};
        snprintf(p, sizeof p, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(p, "r");
        if (f == NULL)
            continue;
        if (fgets(comm, sizeof comm, f) != NULL && strncmp(comm, "iou-wrk", 7) == 0)
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* ---- feeder and drain ------------------------------------------------------ */

static size_t g_total;

static void *feeder(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static char buf[CHUNK];
    memset(buf, 'x', sizeof buf);
    for (size_t done = 0; done < g_total;) {
        ssize_t n = write(fd, buf, g_total - done < sizeof buf ? g_total - done : sizeof buf);
        if (n <= 0)
            die("feed");
        done += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    return NULL;
}

static void *drain(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static char buf[CHUNK];
    size_t got = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        got += (size_t)n;
    if (got != g_total)
        fprintf(stderr, "drain: %zu of %zu bytes\n", got, g_total);
    return NULL;
}

static void pair(int sv[2], bool nonblock)
{
    if (socketpair(AF_UNIX, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0, sv) != 0)
        die("socketpair");
}

/* ---- the copies ------------------------------------------------------------ */

/* copy.c's SPLICE path: splice in when readable, splice out everything. */
static void copy_ready(int in, int out)
{
    int p[2], ep = epoll_create1(0);
    if (pipe2(p, O_NONBLOCK) != 0)
        die("pipe");
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = in};
    epoll_ctl(ep, EPOLL_CTL_ADD, in, &ev);
    ev = (struct epoll_event){.events = EPOLLOUT | EPOLLET, .data.fd = out};
    epoll_ctl(ep, EPOLL_CTL_ADD, out, &ev);
    for (;;) {
        ssize_t n = splice(in, NULL, p[1], NULL, CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n == 0)
            break;
        if (n < 0 && errno == EAGAIN) {
            epoll_wait(ep, &ev, 1, -1);
            continue;
        }
        if (n < 0)
            die("splice in");
        while (n > 0) {
            ssize_t m = splice(p[0], NULL, out, NULL, (size_t)n, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (m < 0 && errno == EAGAIN) {
                epoll_wait(ep, &ev, 1, -1);
                continue;
            }
            if (m <= 0)
                die("splice out");
            n -= m;
        }
    }
    shutdown(out, SHUT_WR);
}

/* The same with IORING_OP_SPLICE: in, then out, one enter each (a short read breaks a link). */
static int copy_ring(ring *r, int in, int out, int *peak)
{
    int p[2];
    if (pipe(p) != 0)
        die("pipe");
    for (;;) {
        ring_splice(r, in, p[1], CHUNK, 1, SPLICE_F_MOVE);
        ring_enter(r, 1, 1);
        if ((r->enters & 255) == 1) { /* sampled: /proc reads are system calls too */
            int w = workers();
            *peak = w > *peak ? w : *peak;
        }
        int n = ring_reap(r, NULL);
        if (n == 0)
            break;
        if (n < 0) {
            errno = -n;
            die("ring splice in");
        }
        while (n > 0) {
            ring_splice(r, p[0], out, (unsigned)n, 2, SPLICE_F_MOVE);
            ring_enter(r, 1, 1);
            int m = ring_reap(r, NULL);
            if (m <= 0) {
                errno = -m;
                die("ring splice out");
            }
            n -= m;
        }
    }
    shutdown(out, SHUT_WR);
    return 0;
}

static void copy_sendfile(int file, int out)
{
    for (;;) {
        ssize_t n = sendfile(out, file, NULL, 1 << 19);
        if (n == 0)
            break;
        if (n < 0)
            die("sendfile");
    }
    shutdown(out, SHUT_WR);
}

static void copy_ring_file(ring *r, int file, int out, int *peak)
{
    int p[2];
    if (pipe(p) != 0)
        die("pipe");
    for (;;) {
        ring_splice(r, file, p[1], CHUNK, 1, SPLICE_F_MOVE);
        ring_enter(r, 1, 1);
        if ((r->enters & 255) == 1) { /* sampled: /proc reads are system calls too */
            int w = workers();
            *peak = w > *peak ? w : *peak;
        }
        int n = ring_reap(r, NULL);
        if (n == 0)
            break;
        if (n < 0) {
            errno = -n;
            die("ring splice file");
        }
        while (n > 0) {
            ring_splice(r, p[0], out, (unsigned)n, 2, SPLICE_F_MOVE);
            ring_enter(r, 1, 1);
            int m = ring_reap(r, NULL);
            if (m <= 0) {
                errno = -m;
                die("ring splice out");
            }
            n -= m;
        }
    }
    shutdown(out, SHUT_WR);
}

/* K sockets with nothing to read, one ring splice armed on each. */
static void idle(ring *r, int k, bool nonblock)
{
    int(*sv)[2] = calloc((size_t)k, sizeof *sv);
    int(*pp)[2] = calloc((size_t)k, sizeof *pp);
    for (int i = 0; i < k; i++) {
        pair(sv[i], nonblock);
        if (pipe(pp[i]) != 0)
            die("pipe");
        ring_splice(r, sv[i][0], pp[i][1], CHUNK, (uint64_t)i, SPLICE_F_MOVE);
    }
    ring_enter(r, (unsigned)k, 0);
    int eagain = 0, w = 0;
    for (int t = 0; t < 50; t++) { /* let the workers start (up to 0.5 s) */
        usleep(10000);
        w = workers();
        if (w >= k)
            break;
    }
    int res;
    while ((res = ring_reap(r, NULL)) != INT32_MIN)
        eagain += res == -EAGAIN;
    printf("idle%s: %d sockets, %d io-wq workers blocked in splice, %d completed at once with "
           "EAGAIN\n",
           nonblock ? "-nb" : "", k, w, eagain);
    for (int i = 0; i < k; i++) /* EOF ends the blocked splices */
        close(sv[i][1]);
    ring_enter(r, 0, nonblock ? 0 : (unsigned)k);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ready|ring|idle|idle-nb|sendfile|ring-file N\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    int n = atoi(argv[2]);
    g_total = (size_t)n << 20;
    ring r;
    ring_init(&r, 256);
    if (strncmp(mode, "idle", 4) == 0) {
        idle(&r, n, strcmp(mode, "idle-nb") == 0);
        return 0;
    }
    int src[2], dst[2], peak = 0;
    pair(src, false);
    pair(dst, false);
    if (strcmp(mode, "ready") == 0) { /* the copier's ends only, as the runtime's streams */
        fcntl(src[0], F_SETFL, O_NONBLOCK);
        fcntl(dst[0], F_SETFL, O_NONBLOCK);
    }
    pthread_t ft, dt;
    int file = -1;
    if (strcmp(mode, "sendfile") == 0 || strcmp(mode, "ring-file") == 0) {
        char path[] = "/tmp/usp_XXXXXX";
        file = mkstemp(path);
        unlink(path);
        if (file < 0 || ftruncate(file, (off_t)g_total) != 0)
            die("file");
        static char buf[CHUNK];
        memset(buf, 'y', sizeof buf);
        for (size_t d = 0; d < g_total; d += sizeof buf)
            if (write(file, buf, sizeof buf) != (ssize_t)sizeof buf)
                die("write file");
        lseek(file, 0, SEEK_SET);
    } else {
        pthread_create(&ft, NULL, feeder, (void *)(intptr_t)src[1]);
    }
    pthread_create(&dt, NULL, drain, (void *)(intptr_t)dst[1]);
    if (strcmp(mode, "ready") == 0)
        copy_ready(src[0], dst[0]);
    else if (strcmp(mode, "ring") == 0)
        copy_ring(&r, src[0], dst[0], &peak);
    else if (strcmp(mode, "sendfile") == 0)
        copy_sendfile(file, dst[0]);
    else
        copy_ring_file(&r, file, dst[0], &peak);
    if (file < 0)
        pthread_join(ft, NULL);
    pthread_join(dt, NULL);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru); /* every thread of the process, io-wq workers included */
    printf("%s: %d MiB copied, %u io_uring_enter, peak io-wq workers %d, context switches %ld "
           "voluntary + %ld involuntary\n",
           mode, n, r.enters, peak, ru.ru_nvcsw, ru.ru_nivcsw);
    return 0;
}
