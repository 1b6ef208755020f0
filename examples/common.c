/* The examples' shared boilerplate (see common.h). */
#include "common.h"

#include <stdatomic.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- flags ----------------------------------------------------------------- */

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

/* Applies one flag; argv[*i] is its name. False when its value is missing or bad. */
static bool apply_flag(const example_flag *f, int argc, char **argv, int *i)
{
    if (f->kind == EXAMPLE_FLAG_BOOL) {
        *(bool *)f->value = true;
        return true;
    }
    if (*i + 1 >= argc)
        return false;
    const char *v = argv[++*i];
    if (f->kind == EXAMPLE_FLAG_STR) {
        *(const char **)f->value = v;
        return true;
    }
    return parse_uint(v, f->max, f->value);
}

int example_parse_flags(int argc, char **argv, const example_flag *flags, int n, const char *usage,
                        bool *done)
{
    *done = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            *done = true;
            return 0;
        }
        int k = 0;
        while (k < n && strcmp(argv[i], flags[k].name) != 0)
            k++;
        if (k == n || !apply_flag(&flags[k], argc, argv, &i)) {
            fprintf(stderr, "%s: bad or incomplete flag '%s'\n%s", argv[0], argv[i], usage);
            *done = true;
            return 2;
        }
    }
    return 0;
}

/* ---- connection buffers ------------------------------------------------------- */

typedef struct buf_cache {
    struct buf_cache *next; /* every thread's cache, for example_buf_release_all */
    void *buf;              /* the cached buffer, or NULL */
} buf_cache;

static _Thread_local buf_cache *t_cache;
static _Atomic(buf_cache *) g_caches;

void *example_buf_take(void)
{
    buf_cache *c = t_cache;
    if (c != NULL && c->buf != NULL) {
        void *b = c->buf;
        c->buf = NULL;
        return b;
    }
    return malloc(EXAMPLE_BUF_SIZE);
}

void example_buf_give(void *buf)
{
    if (buf == NULL)
        return;
    buf_cache *c = t_cache;
    if (c == NULL) { /* this thread's first give: make and list its cache */
        if ((c = calloc(1, sizeof *c)) == NULL) {
            free(buf);
            return;
        }
        c->next = atomic_load_explicit(&g_caches, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(&g_caches, &c->next, c,
                                                      memory_order_release, memory_order_relaxed))
            ;
        t_cache = c;
    }
    if (c->buf == NULL)
        c->buf = buf;
    else
        free(buf);
}

void example_buf_release_all(void)
{
    buf_cache *c = atomic_exchange_explicit(&g_caches, NULL, memory_order_acquire);
    while (c != NULL) {
        buf_cache *next = c->next;
        free(c->buf);
        free(c);
        c = next;
    }
    t_cache = NULL; /* the other threads that had caches have exited */
}

/* ---- runtime ---------------------------------------------------------------- */

unsigned long example_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned long)n : 1;
}

int example_run(const char *prog, unsigned long threads, const asyncio_task_vtable *vt,
                const void *init)
{
    return example_run_observed(prog, threads, vt, init, NULL);
}

/* ---- observability ------------------------------------------------------------ */

typedef struct dump_task {
    asyncio_runtime *rt;
    asyncio_signal *sig;
} dump_task;

static int dump_task_poll(void *state, asyncio_context *cx, void *output)
{
    dump_task *d = state;
    (void)output;
    for (;;) {
        int rc = asyncio_signal_poll(d->sig, cx, NULL);
        if (rc != 0)
            return rc; /* PENDING until the next SIGUSR1, or an error */
        rc = asyncio_runtime_dump(d->rt, stderr);
        if (rc < 0)
            fprintf(stderr, "dump: %s\n", asyncio_strerror(rc));
    }
}

static const asyncio_task_vtable dump_task_vt = {dump_task_poll, NULL, NULL, sizeof(dump_task), 0};

int example_dump_on_signal(asyncio_runtime *rt, asyncio_signal *sig)
{
    dump_task d = {rt, sig};
    asyncio_spawn_options o = {.name = "dump-on-SIGUSR1"};
    return asyncio_spawn_with(rt, &dump_task_vt, &d, &o, NULL);
}

int example_run_observed(const char *prog, unsigned long threads, const asyncio_task_vtable *vt,
                         const void *init, const example_observe *ob)
{
    asyncio_runtime_options opts = {0};
    if (threads > 0) {
        opts.flavor = ASYNCIO_RUNTIME_MULTI_THREAD;
        opts.workers = (uint32_t)threads;
    }
    bool dump = ob != NULL && ob->dump_on_signal;
    opts.track_tasks = dump;
    opts.stall_threshold_ms = ob != NULL ? (uint32_t)ob->stall_ms : 0;
    asyncio_signal usr1;
    static const int k_usr1[] = {SIGUSR1};
    int rc = dump ? asyncio_signal_init(&usr1, k_usr1, 1) : 0;
    if (rc < 0) {
        fprintf(stderr, "%s: SIGUSR1: %s\n", prog, asyncio_strerror(rc));
        return 1;
    }
    asyncio_runtime *rt;
    if ((rc = asyncio_runtime_new(&rt, &opts)) < 0) {
        fprintf(stderr, "%s: cannot create the runtime: %s\n", prog, asyncio_strerror(rc));
        if (dump)
            asyncio_signal_drop(&usr1);
        return 1;
    }
    if (dump && (rc = example_dump_on_signal(rt, &usr1)) < 0)
        fprintf(stderr, "%s: --dump-on-signal: %s\n", prog, asyncio_strerror(rc));
    if (rc >= 0)
        rc = asyncio_runtime_block_on(rt, vt, init, NULL); /* the task reported its own error */
    int frc = asyncio_runtime_free(rt); /* shuts down: drops the remaining tasks */
    example_buf_release_all();          /* the workers are gone: free their caches */
    if (frc < 0)
        fprintf(stderr, "%s: freeing the runtime: %s\n", prog, asyncio_strerror(frc));
    if (dump)
        asyncio_signal_drop(&usr1);
    return rc < 0 || frc < 0 ? 1 : 0;
}

/* ---- addresses and output --------------------------------------------------- */

bool example_ip_addr(const char *prog, const char *host, unsigned long port, asyncio_sockaddr *out)
{
    int rc = asyncio_addr_from_ip(host, (uint16_t)port, out);
    if (rc < 0)
        fprintf(stderr, "%s: --host wants an IP address ('%s'): %s\n", prog, host,
                asyncio_strerror(rc));
    return rc == 0;
}

void example_print_listening(const asyncio_sockaddr *addr)
{
    char text[ASYNCIO_ADDRSTRLEN];
    if (asyncio_addr_format(addr, text, sizeof text) < 0)
        snprintf(text, sizeof text, "?");
    printf("listening on %s\n", text);
    fflush(stdout);
}

int example_announce(const char *prog, int rc, const asyncio_sockaddr *addr)
{
    if (rc < 0) {
        char text[ASYNCIO_ADDRSTRLEN];
        if (asyncio_addr_format(addr, text, sizeof text) < 0)
            snprintf(text, sizeof text, "?");
        fprintf(stderr, "%s: listen on %s: %s\n", prog, text, asyncio_strerror(rc));
    } else
        example_print_listening(addr);
    return rc;
}

/* ---- graceful shutdown ------------------------------------------------------- */

int example_stop_init(asyncio_signal *stop)
{
    static const int sigs[] = {SIGINT, SIGTERM};
    return asyncio_signal_init(stop, sigs, 2);
}

bool example_stop_requested(asyncio_signal *stop, asyncio_context *cx)
{
    return asyncio_signal_poll(stop, cx, NULL) != ASYNCIO_PENDING;
}

/* ---- a TCP accept loop with graceful shutdown ------------------------------------ */

enum { SV_SERVE = 0, SV_DRAIN, SV_ABORT };

static int tcp_server_start(example_tcp_server *sv)
{
    int rc = example_stop_init(&sv->stop);
    if (rc == 0)
        rc = asyncio_join_set_new(&sv->conns);
    if (rc == 0)
        rc = asyncio_cancel_token_new(&sv->stop_token);
    if (rc == 0)
        rc = asyncio_tcp_listener_bind(&sv->listener, &sv->addr, NULL);
    if (rc == 0)
        rc = asyncio_tcp_listener_local_addr(sv->listener, &sv->addr); /* the real port */
    return example_announce(sv->prog, rc, &sv->addr);
}

/* Connections accepted so far (any server, any thread): their tasks are named "conn N". */
static _Atomic unsigned long g_conn_seq;

int example_spawn_conn(example_tcp_server *sv, const asyncio_task_vtable *vt, const void *init)
{
    char name[32]; /* copied at spawn: a dump (--dump-on-signal) shows which connection is which */
    snprintf(name, sizeof name, "conn %lu", atomic_fetch_add(&g_conn_seq, 1) + 1);
    asyncio_spawn_options o = {.name = name};
    return asyncio_join_set_spawn(sv->conns, asyncio_runtime_current(), vt, init, &o, NULL);
}

asyncio_cancel_token *example_conn_token(example_tcp_server *sv)
{
    return sv->stop_token;
}

/* Step 0: accept until a signal. 0 when it is time to shut down. */
static int serve(example_tcp_server *sv, asyncio_context *cx)
{
    if (example_stop_requested(&sv->stop, cx))
        return 0;
    (void)asyncio_join_set_poll_drain(sv->conns, cx); /* collect finished ones; they wake us */
    for (;;) {
        asyncio_tcp_stream s;
        int rc = asyncio_tcp_listener_poll_accept(sv->listener, cx, &s, NULL);
        if (rc == ASYNCIO_ENOMEM)
            continue; /* that connection could not be registered and was closed */
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc < 0) {
            fprintf(stderr, "%s: accept: %s\n", sv->prog, asyncio_strerror(rc));
            return rc;
        }
        (void)asyncio_tcp_stream_set_nodelay(&s, true);
        sv->on_accept(sv, &s);
    }
}

static int tcp_server_poll(void *state, asyncio_context *cx, void *output)
{
    example_tcp_server *sv = state;
    int rc;
    (void)output;
    if (sv->listener == NULL && sv->step == SV_SERVE && (rc = tcp_server_start(sv)) < 0)
        return rc;
    switch (sv->step) {
    case SV_SERVE: /* accepting */
        if ((rc = serve(sv, cx)) != 0)
            return rc;
        asyncio_tcp_listener_close(sv->listener); /* 1. stop accepting */
        sv->listener = NULL;
        asyncio_cancel_token_cancel(sv->stop_token); /* 2. tell every connection */
        asyncio_timeout_init_future(&sv->drain, asyncio_join_set_drain_future(sv->conns),
                                    sv->drain_ms);
        sv->step = SV_DRAIN;
        /* fall through */
    case SV_DRAIN: /* 3. let them finish, within drain_ms */
        if ((rc = asyncio_timeout_poll(&sv->drain, cx)) == ASYNCIO_PENDING)
            return rc;
        sv->step = SV_ABORT;
        /* fall through */
    default: /* 4. abort the rest and wait for their drops */
        return asyncio_join_set_poll_shutdown(sv->conns, cx);
    }
}

static void tcp_server_drop(void *state)
{
    example_tcp_server *sv = state;
    asyncio_tcp_listener_close(sv->listener);
    asyncio_signal_drop(&sv->stop);
    if (sv->step == SV_DRAIN)
        asyncio_timeout_drop(&sv->drain);
    asyncio_join_set_free(sv->conns); /* aborts what is left (an error path) */
    asyncio_cancel_token_drop(sv->stop_token);
}

const asyncio_task_vtable example_tcp_server_vt = {tcp_server_poll, tcp_server_drop, NULL,
                                                   sizeof(example_tcp_server), 0};
