/*
 * Shared test helpers: see support.h. Linux / POSIX only (the suites run on the
 * backends built here); every system call failure fails the running test.
 */
#include "support.h"

#ifndef _WIN32
#include "fault_inject.h"
#endif

#ifdef __GLIBC__
#include <dlfcn.h>
#include <execinfo.h>
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

/* ------------------------------------------------------------------------ */
/* Assertions                                                                */

/*
 * A failed assertion on a thread other than the test's own (a runtime worker
 * polling the test's future, a helper thread) cannot jump back into the test:
 * cmocka then calls exit(-1) and drops its message, which it keeps per thread,
 * so the run ends with status 255 and no word of why (a CI run saw exactly
 * that). With CMOCKA_TEST_ABORT=1 cmocka prints the message on the failing
 * thread and aborts (a core dump where allowed). Set before main(), while the
 * process has one thread; an explicit CMOCKA_TEST_ABORT=0 keeps cmocka's
 * default (a failure on the test's thread fails that test and the rest run).
 */
__attribute__((constructor)) static void support_abort_on_failure(void)
{
    setenv("CMOCKA_TEST_ABORT", "1", 0);
}

void support_fail_rc(int got, int want, const char *expr, const char *file, int line)
{
    fail_msg("%s:%d: %s returned %d (%s: %s), expected %d (%s: %s)", file, line, expr, got,
             asyncio_err_name(got), asyncio_strerror(got), want, asyncio_err_name(want),
             asyncio_strerror(want));
}

void support_fail_errno(const char *expr, const char *file, int line)
{
    int e = errno;
    fail_msg("%s:%d: %s failed: errno %d (%s)", file, line, expr, e, strerror(e));
}

/* ------------------------------------------------------------------------ */
/* Counting allocator                                                        */

/*
 * ASYNCIO_ALLOC_SITES=path: every call of the counting hooks (this one and the
 * allocation sweep's) appends its call chain to path as "binary offset..."
 * (return addresses minus the load base), for tests/count_alloc_sites.sh,
 * which names the allocation sites a set of suites reaches (docs/testing.md).
 */
#ifdef __GLIBC__
static int g_sites_fd = -1;

/* Opened before main, so the fixtures' fd counts include it. */
__attribute__((constructor)) static void open_sites_file(void)
{
    const char *path = getenv("ASYNCIO_ALLOC_SITES");
    if (path != NULL)
        g_sites_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}
#endif

void support_alloc_site_note(void)
{
#ifdef __GLIBC__
    int f = g_sites_fd;
    if (f < 0)
        return;
    void *frames[8];
    int n = backtrace(frames, 8);
    char line[512];
    size_t len = 0;
    Dl_info info;
    if (n < 2 || dladdr(frames[1], &info) == 0 || info.dli_fname == NULL)
        return;
    len += (size_t)snprintf(line, sizeof line, "%s", info.dli_fname);
    for (int i = 1; i < n && len < sizeof line - 24; i++)
        len += (size_t)snprintf(line + len, sizeof line - len, " %lx",
                                (unsigned long)((char *)frames[i] - (char *)info.dli_fbase));
    line[len++] = '\n';
    ssize_t w = write(f, line, len);
    (void)w;
#endif
}

/* Atomic: the library may allocate from any thread (none does today). */
static atomic_long g_live;
static atomic_long g_total;

static void *count_malloc(void *ctx, size_t size)
{
    (void)ctx;
    support_alloc_site_note();
    void *p = malloc(size);
    if (p != NULL) {
        atomic_fetch_add(&g_live, 1);
        atomic_fetch_add(&g_total, 1);
    }
    return p;
}

static void *count_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    support_alloc_site_note();
    void *p = realloc(ptr, size);
    if (p != NULL && ptr == NULL) {
        atomic_fetch_add(&g_live, 1);
        atomic_fetch_add(&g_total, 1);
    }
    return p;
}

static void count_free(void *ctx, void *ptr)
{
    (void)ctx;
    if (ptr != NULL)
        atomic_fetch_sub(&g_live, 1);
    free(ptr);
}

void support_alloc_install(void)
{
    static const asyncio_allocator counting = {count_malloc, count_realloc, count_free, NULL};
    atomic_store(&g_live, 0);
    atomic_store(&g_total, 0);
    assert_ok(asyncio_set_allocator(&counting));
}

void support_alloc_uninstall(void)
{
    assert_ok(asyncio_set_allocator(NULL));
}

long support_alloc_live(void)
{
    return atomic_load(&g_live);
}

long support_alloc_total(void)
{
    return atomic_load(&g_total);
}

int support_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory stream's own fd */
}

/* The fd count at setup, passed to teardown through cmocka's state pointer. */
typedef struct support_fixture {
    int fds;
} support_fixture;

/*
 * ASYNCIO_FAULT_SEED set: every test of the suite runs with the invisible
 * faults of that seed's plan (EINTR, spurious wake-ups), which a correct
 * library hides completely, even from a test that checks the result of a
 * single poll (ASYNCIO_FAULT_PLAN may add others by hand). The plan is printed
 * once per process so a failing ctest entry's output names it.
 */
void support_faults_from_env(void)
{
#ifndef _WIN32
    uint64_t seed;
    if (!fault_seed_from_env(&seed))
        return;
    fault_plan plan = fault_plan_from_seed(seed, FAULT_INVISIBLE);
    fault_plan_override_from_env(&plan);
    static bool printed;
    if (!printed) {
        char text[256];
        fault_plan_format(&plan, text, sizeof text);
        fprintf(stderr, "fault plan (ASYNCIO_FAULT_SEED=%s): %s\n", getenv("ASYNCIO_FAULT_SEED"),
                text);
        printed = true;
    }
    fault_inject_install(&plan);
#endif
}

int support_setup(void **state)
{
    support_fixture *f = malloc(sizeof *f);
    if (f == NULL)
        return -1;
    f->fds = support_open_fds();
    *state = f;
    support_alloc_install();
    support_faults_from_env();
    return 0;
}

int support_teardown(void **state)
{
    support_fixture *f = *state;
    long live = support_alloc_live();
    int fds = support_open_fds();
    int fds_before = f->fds;
    free(f);
    support_alloc_uninstall();
#ifndef _WIN32
    fault_inject_uninstall();
#endif
    if (live != 0) {
        print_error("teardown: %ld block(s) allocated by libasyncio are still live\n", live);
        return -1;
    }
    if (fds != fds_before) {
        print_error("teardown: %d fd(s) open, %d at setup\n", fds, fds_before);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Sockets                                                                   */

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    assert_sys(fl);
    assert_sys(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
}

void support_socketpair(int fds[2])
{
    assert_sys(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds));
}

void support_pipe(int fds[2])
{
    assert_sys(pipe2(fds, O_NONBLOCK | O_CLOEXEC));
}

int support_tcp_listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_sys(fd);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    assert_sys(bind(fd, (struct sockaddr *)&sa, sizeof sa));
    assert_sys(listen(fd, 128));
    return fd;
}

int support_local_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    assert_sys(getsockname(fd, (struct sockaddr *)&sa, &len));
    return ntohs(sa.sin_port);
}

void support_tcp_pair_on(int listener, int *client, int *server)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)support_local_port(listener));

    /* Blocking connect to a listening loopback socket completes via the backlog. */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_sys(c);
    assert_sys(connect(c, (struct sockaddr *)&sa, sizeof sa));
    int s = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    assert_sys(s);
    int one = 1;
    assert_sys(setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    assert_sys(setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    set_nonblock(c);
    set_nonblock(s);
    *client = c;
    *server = s;
}

void support_tcp_pair(int *client, int *server)
{
    int l = support_tcp_listener();
    support_tcp_pair_on(l, client, server);
    close(l);
}

void support_write_n(int fd, size_t n)
{
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    while (n > 0) {
        size_t chunk = n < sizeof buf ? n : sizeof buf;
        ssize_t w = write(fd, buf, chunk);
        if (w < 0 && errno == EINTR)
            continue;
        assert_sys(w);
        assert_true(w > 0);
        n -= (size_t)w;
    }
}

size_t support_fill(int fd)
{
    char buf[65536];
    memset(buf, 'f', sizeof buf);
    size_t total = 0;
    for (;;) {
        ssize_t w = send(fd, buf, sizeof buf, MSG_NOSIGNAL);
        if (w > 0) {
            total += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return total;
        assert_sys(w);
        fail_msg("send returned 0");
    }
}

size_t support_drain(int fd, int *eof)
{
    char buf[65536];
    size_t total = 0;
    if (eof != NULL)
        *eof = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) {
            total += (size_t)r;
            continue;
        }
        if (r == 0) {
            if (eof != NULL)
                *eof = 1;
            return total;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return total;
        assert_sys(r);
    }
}

size_t support_read_some(int fd, size_t n)
{
    char buf[65536];
    if (n > sizeof buf)
        n = sizeof buf;
    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r >= 0)
            return (size_t)r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        assert_sys(r);
    }
}

void support_close(int fd)
{
    if (fd >= 0)
        close(fd);
}

/* ------------------------------------------------------------------------ */
/* Events                                                                    */

size_t support_wait(asyncio_poller *p, int timeout_ms, size_t capacity, support_events *out)
{
    assert_true(capacity <= SUPPORT_MAX_EVENTS);
    out->n = 0;
    size_t n = SIZE_MAX;
    assert_ok(asyncio_poller_wait(p, out->ev, capacity, timeout_ms, &n));
    assert_true(n <= capacity);
    out->n = n;
    return n;
}

const asyncio_event *support_find(const support_events *e, uintptr_t token)
{
    for (size_t i = 0; i < e->n; i++) {
        if (e->ev[i].token == token)
            return &e->ev[i];
    }
    return NULL;
}

size_t support_count(const support_events *e, uintptr_t token)
{
    size_t c = 0;
    for (size_t i = 0; i < e->n; i++)
        c += e->ev[i].token == token;
    return c;
}

static void print_events(const support_events *e)
{
    for (size_t i = 0; i < e->n; i++) {
        print_error("  event %zu: token %#jx readiness %#x\n", i, (uintmax_t)e->ev[i].token,
                    (unsigned)e->ev[i].readiness);
    }
}

size_t expect_events(asyncio_poller *p, int timeout_ms, ...)
{
    support_events e;
    support_wait(p, timeout_ms, SUPPORT_MAX_EVENTS, &e);
    va_list ap;
    va_start(ap, timeout_ms);
    size_t want = 0;
    bool ok = true;
    for (uintptr_t t; (t = va_arg(ap, uintptr_t)) != 0;) {
        want++;
        if (support_count(&e, t) != 1) {
            print_error("expected exactly one event for token %#jx, got %zu\n", (uintmax_t)t,
                        support_count(&e, t));
            ok = false;
        }
    }
    va_end(ap);
    if (!ok || e.n != want) {
        print_events(&e);
        fail_msg("expected %zu event(s), got %zu", want, e.n);
    }
    return e.n;
}

uint32_t expect_event(asyncio_poller *p, int timeout_ms, uintptr_t token)
{
    support_events e;
    support_wait(p, timeout_ms, SUPPORT_MAX_EVENTS, &e);
    const asyncio_event *ev = support_find(&e, token);
    if (ev == NULL) {
        print_events(&e);
        fail_msg("no event for token %#jx among %zu", (uintmax_t)token, e.n);
    }
    return ev->readiness;
}

void expect_no_events(asyncio_poller *p, int timeout_ms)
{
    support_events e;
    support_wait(p, timeout_ms, SUPPORT_MAX_EVENTS, &e);
    if (e.n != 0) {
        print_events(&e);
        fail_msg("expected no events, got %zu", e.n);
    }
}

/* ------------------------------------------------------------------------ */
/* Threads and time                                                          */

/*
 * The kernel's thread id (Linux gettid). The macOS build (make check-macos: compiled and
 * linked, never run) uses pthread_threadid_np; /proc readers below then find nothing.
 */
#ifdef __APPLE__
pid_t support_gettid(void)
{
    uint64_t id = 0;
    pthread_threadid_np(NULL, &id);
    return (pid_t)id;
}
#else
#include <sys/syscall.h>
pid_t support_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}
#endif

/* The state letter of /proc/self/task/<tid>/stat ('R', 'S', ...), or 0. */
static char thread_state(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')'); /* comm may contain spaces */
    return paren != NULL && paren[1] == ' ' ? paren[2] : 0;
}

void support_wait_blocked(pid_t tid)
{
    uint64_t give_up = support_now_us() + 5u * 1000u * 1000u;
    while (thread_state(tid) != 'S' && support_now_us() < give_up)
        sched_yield();
}

uint64_t support_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

long support_raise_nofile(void)
{
    struct rlimit rl;
    assert_sys(getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        assert_sys(setrlimit(RLIMIT_NOFILE, &rl));
    }
    return rl.rlim_cur == RLIM_INFINITY ? (long)1 << 30 : (long)rl.rlim_cur;
}

/* ------------------------------------------------------------------------ */
/* Runtime flavour matrix                                                    */

support_runtime_kind support_runtime_kind_get(void)
{
    const char *v = getenv("ASYNCIO_TEST_RUNTIME");
    if (v == NULL || *v == '\0' || strcmp(v, "current") == 0)
        return SUPPORT_RT_CURRENT;
    if (strcmp(v, "mt1") == 0)
        return SUPPORT_RT_MT1;
    if (strcmp(v, "mt4") == 0)
        return SUPPORT_RT_MT4;
    fail_msg("ASYNCIO_TEST_RUNTIME=%s: expected current, mt1 or mt4", v);
    return SUPPORT_RT_CURRENT;
}

int support_runtime_is_mt(void)
{
    return support_runtime_kind_get() != SUPPORT_RT_CURRENT;
}

void support_runtime_options(asyncio_runtime_options *o)
{
    switch (support_runtime_kind_get()) {
    case SUPPORT_RT_CURRENT:
        o->flavor = ASYNCIO_RUNTIME_CURRENT_THREAD;
        o->workers = 0;
        break;
    case SUPPORT_RT_MT1:
        o->flavor = ASYNCIO_RUNTIME_MULTI_THREAD;
        o->workers = 1;
        break;
    case SUPPORT_RT_MT4:
        o->flavor = ASYNCIO_RUNTIME_MULTI_THREAD;
        o->workers = 4;
        break;
    }
}

asyncio_runtime *support_runtime_new(const asyncio_runtime_options *base)
{
    asyncio_runtime_options o = {0};
    if (base != NULL)
        o = *base;
    support_runtime_options(&o);
    asyncio_runtime *rt = NULL;
    assert_ok(asyncio_runtime_new(&rt, &o));
    return rt;
}

unsigned long support_scale(unsigned long full)
{
    const char *v = getenv("ASYNCIO_TEST_SCALE");
    long pct = v != NULL ? strtol(v, NULL, 10) : 100;
    if (pct < 1 || pct > 1000)
        pct = 100;
    unsigned long n = full * (unsigned long)pct / 100;
    return n > 0 ? n : 1;
}

/* ---- running one future ------------------------------------------------- */

typedef struct future_runner {
    asyncio_future_poll_fn fn;
    void *fut;
} future_runner;

static int future_runner_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    future_runner *r = state;
    return r->fn(r->fut, cx);
}

static const asyncio_task_vtable g_future_runner_vt = {future_runner_poll, NULL, NULL,
                                                       sizeof(future_runner), 0};

int support_run_future(asyncio_runtime *rt, asyncio_future_poll_fn fn, void *fut)
{
    future_runner r = {fn, fut};
    return asyncio_runtime_block_on(rt, &g_future_runner_vt, &r, NULL);
}
