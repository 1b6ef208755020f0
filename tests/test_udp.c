/*
 * UDP over loopback: echo over IPv4 and IPv6 (skipped without ::1),
 * connect + send / recv, truncation reported (2,000 bytes into 100), the
 * largest IPv4 datagram (65,507 bytes) and one byte more, the broadcast
 * flag, multicast join / leave on lo (skipped with a message when the
 * sandbox has no multicast route), a receive that is pending until a
 * sibling task sends, and the error paths.
 *
 * Every test runs a current-thread runtime with asyncio_runtime_block_on()
 * and a main task written as an explicit state machine (step field,
 * re-entered from the top). Its drop closes every socket, so a failing
 * test still releases them; the fixtures check blocks and fds.
 */
#include <net/if.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "asyncio/net.h"
#include "asyncio/runtime.h"
#include "asyncio/time.h"
#include "asyncio/udp.h"
#include "support.h"

/* Inside a step: pending goes back to the runtime, anything else must be 0. */
#define AWAIT(expr)                       \
    do {                                  \
        int await_rc_ = (expr);           \
        if (await_rc_ == ASYNCIO_PENDING) \
            return ASYNCIO_PENDING;       \
        assert_ok(await_rc_);             \
    } while (0)

#define CLOSED_SOCK    \
    {                  \
        NULL, NULL, -1 \
    }

static asyncio_runtime *new_runtime(void)
{
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    return rt;
}

static void free_runtime(asyncio_runtime *rt)
{
    asyncio_runtime_shutdown(rt);
    assert_ok(asyncio_runtime_free(rt)); /* EBUSY if a registration leaked */
}

static asyncio_sockaddr ip_addr(const char *ip, uint16_t port)
{
    asyncio_sockaddr a;
    assert_ok(asyncio_addr_from_ip(ip, port, &a));
    return a;
}

/* The bound address of s, for sending to it. */
static asyncio_sockaddr local_of(const asyncio_udp_socket *s)
{
    asyncio_sockaddr a;
    assert_ok(asyncio_udp_local_addr(s, &a));
    return a;
}

static void fill_pattern(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 131u + seed) >> 3);
}

/* Big buffers live outside the task state (one test at a time). */
static unsigned char g_out[70000];
static unsigned char g_in[70000];

/* ------------------------------------------------------------------------ */
/* Echo: b sends to a, a echoes to the sender's address, b receives          */

typedef struct echo_task {
    int step;
    const char *ip;
    asyncio_udp_socket a, b;
    asyncio_sockaddr from;
    size_t n;
    bool truncated;
    char buf[64];
} echo_task;

static int echo_poll(void *state, asyncio_context *cx, void *out)
{
    echo_task *t = state;
    (void)out;
    switch (t->step) {
    case 0: { /* bind both on loopback, port 0 */
        asyncio_sockaddr any = ip_addr(t->ip, 0);
        int rc = asyncio_udp_bind(&t->a, &any, NULL);
        if (rc == ASYNCIO_EADDRNOTAVAIL || rc == -EAFNOSUPPORT)
            return rc; /* no such loopback (IPv6 disabled): the test skips */
        assert_ok(rc);
        assert_ok(asyncio_udp_bind(&t->b, &any, NULL));
        t->step = 1;
    }
    /* fallthrough */
    case 1: { /* b -> a */
        asyncio_sockaddr to = local_of(&t->a);
        AWAIT(asyncio_udp_poll_send_to(&t->b, cx, "hello", 5, &to, &t->n));
        assert_int_equal(t->n, 5);
        t->step = 2;
    }
    /* fallthrough */
    case 2: /* a receives, learns b's address */
        AWAIT(asyncio_udp_poll_recv_from(&t->a, cx, t->buf, sizeof t->buf, &t->n, &t->from,
                                         &t->truncated));
        assert_int_equal(t->n, 5);
        assert_false(t->truncated);
        assert_memory_equal(t->buf, "hello", 5);
        {
            asyncio_sockaddr bl = local_of(&t->b);
            assert_true(asyncio_addr_equal(&t->from, &bl));
        }
        t->step = 3;
        /* fallthrough */
    case 3: /* a -> b, back to the sender */
        AWAIT(asyncio_udp_poll_send_to(&t->a, cx, t->buf, t->n, &t->from, &t->n));
        t->step = 4;
        /* fallthrough */
    case 4:
        memset(t->buf, 0, sizeof t->buf);
        AWAIT(asyncio_udp_poll_recv_from(&t->b, cx, t->buf, sizeof t->buf, &t->n, NULL, NULL));
        assert_int_equal(t->n, 5);
        assert_memory_equal(t->buf, "hello", 5);
        return 0;
    }
    return ASYNCIO_EINVAL;
}

static void echo_drop(void *state)
{
    echo_task *t = state;
    asyncio_udp_close(&t->a);
    asyncio_udp_close(&t->b);
}

static const asyncio_task_vtable echo_vt = {echo_poll, echo_drop, NULL, sizeof(echo_task), 0};

static void test_udp_echo_v4(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    echo_task t = {.ip = "127.0.0.1", .a = CLOSED_SOCK, .b = CLOSED_SOCK};
    assert_ok(asyncio_runtime_block_on(rt, &echo_vt, &t, NULL));
    free_runtime(rt);
}

static void test_udp_echo_v6(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    echo_task t = {.ip = "::1", .a = CLOSED_SOCK, .b = CLOSED_SOCK};
    int rc = asyncio_runtime_block_on(rt, &echo_vt, &t, NULL);
    free_runtime(rt);
    if (rc == ASYNCIO_EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
        print_message("skipped: ::1 is not available in this sandbox (%s)\n", asyncio_err_name(rc));
        skip();
    }
    assert_ok(rc);
}

/* ------------------------------------------------------------------------ */
/* connect + send / recv                                                     */

typedef struct connected_task {
    int step;
    asyncio_udp_socket a, b;
    size_t n;
    bool truncated;
    char buf[64];
} connected_task;

static int connected_poll(void *state, asyncio_context *cx, void *out)
{
    connected_task *t = state;
    (void)out;
    switch (t->step) {
    case 0: {
        asyncio_sockaddr lo = ip_addr("127.0.0.1", 0);
        assert_ok(asyncio_udp_bind(&t->a, &lo, NULL));
        assert_ok(asyncio_udp_bind(&t->b, &lo, NULL));
        asyncio_sockaddr peer;
        assert_err(asyncio_udp_peer_addr(&t->b, &peer), ASYNCIO_ENOTCONN);
        t->step = 1;
    }
    /* fallthrough */
    case 1: { /* b -> a before connecting (this also waits for b's first writability) */
        asyncio_sockaddr al = local_of(&t->a);
        AWAIT(asyncio_udp_poll_send_to(&t->b, cx, "prime", 5, &al, &t->n));
        /* Writable now, so this is the kernel's answer: no peer yet. */
        assert_err(asyncio_udp_poll_send(&t->b, cx, "x", 1, &t->n), ASYNCIO_ENOTCONN);
        asyncio_sockaddr bl = local_of(&t->b), peer;
        assert_ok(asyncio_udp_connect(&t->b, &al));
        assert_ok(asyncio_udp_connect(&t->a, &bl));
        assert_ok(asyncio_udp_peer_addr(&t->b, &peer));
        assert_true(asyncio_addr_equal(&peer, &al));
        t->step = 2;
    }
    /* fallthrough */
    case 2: /* queued before a connected to b: still b's, still delivered */
        AWAIT(asyncio_udp_poll_recv(&t->a, cx, t->buf, sizeof t->buf, &t->n, NULL));
        assert_int_equal(t->n, 5);
        t->step = 3;
        /* fallthrough */
    case 3:
        AWAIT(asyncio_udp_poll_send(&t->b, cx, "ping", 4, &t->n));
        assert_int_equal(t->n, 4);
        t->step = 4;
        /* fallthrough */
    case 4:
        AWAIT(asyncio_udp_poll_recv(&t->a, cx, t->buf, sizeof t->buf, &t->n, &t->truncated));
        assert_int_equal(t->n, 4);
        assert_false(t->truncated);
        assert_memory_equal(t->buf, "ping", 4);
        t->step = 5;
        /* fallthrough */
    case 5:
        AWAIT(asyncio_udp_poll_send(&t->a, cx, "pong!", 5, &t->n));
        t->step = 6;
        /* fallthrough */
    case 6:
        AWAIT(asyncio_udp_poll_recv(&t->b, cx, t->buf, sizeof t->buf, &t->n, NULL));
        assert_int_equal(t->n, 5);
        assert_memory_equal(t->buf, "pong!", 5);
        return 0;
    }
    return ASYNCIO_EINVAL;
}

static void connected_drop(void *state)
{
    connected_task *t = state;
    asyncio_udp_close(&t->a);
    asyncio_udp_close(&t->b);
}

static const asyncio_task_vtable connected_vt = {connected_poll, connected_drop, NULL,
                                                 sizeof(connected_task), 0};

static void test_udp_connect_send_recv(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    connected_task t = {.a = CLOSED_SOCK, .b = CLOSED_SOCK};
    assert_ok(asyncio_runtime_block_on(rt, &connected_vt, &t, NULL));
    free_runtime(rt);
}

/* ------------------------------------------------------------------------ */
/* Big and truncated datagrams                                               */

typedef struct size_task {
    int step;
    size_t send_len; /* the datagram sent first */
    size_t recv_len; /* the buffer it is received into */
    asyncio_udp_socket a, b;
    size_t n;
    bool truncated;
} size_task;

static int size_poll(void *state, asyncio_context *cx, void *out)
{
    size_task *t = state;
    (void)out;
    switch (t->step) {
    case 0: {
        asyncio_sockaddr lo = ip_addr("127.0.0.1", 0);
        assert_ok(asyncio_udp_bind(&t->a, &lo, NULL));
        assert_ok(asyncio_udp_bind(&t->b, &lo, NULL));
        fill_pattern(g_out, sizeof g_out, 7);
        t->step = 1;
    }
    /* fallthrough */
    case 1: {
        asyncio_sockaddr to = local_of(&t->a);
        AWAIT(asyncio_udp_poll_send_to(&t->b, cx, g_out, t->send_len, &to, &t->n));
        assert_int_equal(t->n, t->send_len);
        t->step = 2;
    }
    /* fallthrough */
    case 2: { /* then a small datagram, which must arrive whole after the truncated one */
        asyncio_sockaddr to = local_of(&t->a);
        AWAIT(asyncio_udp_poll_send_to(&t->b, cx, "next", 4, &to, &t->n));
        t->step = 3;
    }
    /* fallthrough */
    case 3:
        memset(g_in, 0, sizeof g_in);
        AWAIT(asyncio_udp_poll_recv_from(&t->a, cx, g_in, t->recv_len, &t->n, NULL, &t->truncated));
        if (t->send_len > t->recv_len) {
            assert_int_equal(t->n, t->recv_len);
            assert_true(t->truncated);
        } else {
            assert_int_equal(t->n, t->send_len);
            assert_false(t->truncated);
        }
        assert_memory_equal(g_in, g_out, t->n);
        t->step = 4;
        /* fallthrough */
    case 4:
        t->truncated = true;
        AWAIT(asyncio_udp_poll_recv_from(&t->a, cx, g_in, t->recv_len, &t->n, NULL, &t->truncated));
        assert_int_equal(t->n, 4);
        assert_false(t->truncated);
        assert_memory_equal(g_in, "next", 4);
        return 0;
    }
    return ASYNCIO_EINVAL;
}

static void size_drop(void *state)
{
    size_task *t = state;
    asyncio_udp_close(&t->a);
    asyncio_udp_close(&t->b);
}

static const asyncio_task_vtable size_vt = {size_poll, size_drop, NULL, sizeof(size_task), 0};

static void test_udp_recv_truncation_reported(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    size_task t = {.send_len = 2000, .recv_len = 100, .a = CLOSED_SOCK, .b = CLOSED_SOCK};
    assert_ok(asyncio_runtime_block_on(rt, &size_vt, &t, NULL));
    free_runtime(rt);
}

static void test_udp_max_v4_datagram_whole(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    size_task t = {.send_len = ASYNCIO_UDP_MAX_PAYLOAD_V4,
                   .recv_len = 65536,
                   .a = CLOSED_SOCK,
                   .b = CLOSED_SOCK};
    assert_ok(asyncio_runtime_block_on(rt, &size_vt, &t, NULL));
    free_runtime(rt);
}

/* One byte over the IPv4 maximum: EMSGSIZE, nothing sent, socket still usable. */
typedef struct oversize_task {
    int step;
    asyncio_udp_socket a;
    asyncio_sockaddr self;
} oversize_task;

/* Step 0 of the single-socket tests: bind a, then wait until it is writable by sending
 * one datagram to itself and until it is readable by receiving it back. */
static int single_setup(oversize_task *t, asyncio_context *cx)
{
    size_t n;
    bool tr;
    switch (t->step) {
    case 0: {
        asyncio_sockaddr lo = ip_addr("127.0.0.1", 0);
        assert_ok(asyncio_udp_bind(&t->a, &lo, NULL));
        t->self = local_of(&t->a);
        t->step = 1;
    }
    /* fallthrough */
    case 1:
        AWAIT(asyncio_udp_poll_send_to(&t->a, cx, "ok", 2, &t->self, &n));
        t->step = 2;
        /* fallthrough */
    case 2:
        AWAIT(asyncio_udp_poll_recv_from(&t->a, cx, g_in, sizeof g_in, &n, NULL, &tr));
        assert_int_equal(n, 2);
        assert_false(tr);
        t->step = 3;
    }
    return 0;
}

static int oversize_poll(void *state, asyncio_context *cx, void *out)
{
    oversize_task *t = state;
    (void)out;
    int rc = single_setup(t, cx);
    if (rc != 0)
        return rc;
    size_t n = 0;
    bool tr;
    assert_err(
        asyncio_udp_poll_send_to(&t->a, cx, g_out, ASYNCIO_UDP_MAX_PAYLOAD_V4 + 1, &t->self, &n),
        ASYNCIO_EMSGSIZE);
    /* A zero-length datagram is a datagram, not EOF; len 0 discards with truncation. */
    assert_ok(asyncio_udp_poll_send_to(&t->a, cx, NULL, 0, &t->self, &n));
    assert_int_equal(n, 0);
    assert_ok(asyncio_udp_poll_send_to(&t->a, cx, "abc", 3, &t->self, &n));
    assert_ok(asyncio_udp_poll_recv_from(&t->a, cx, g_in, sizeof g_in, &n, NULL, &tr));
    assert_int_equal(n, 0);
    assert_false(tr);
    assert_ok(asyncio_udp_poll_recv_from(&t->a, cx, NULL, 0, &n, NULL, &tr));
    assert_int_equal(n, 0);
    assert_true(tr);
    return 0;
}

static void oversize_drop(void *state)
{
    asyncio_udp_close(&((oversize_task *)state)->a);
}

static const asyncio_task_vtable oversize_vt = {oversize_poll, oversize_drop, NULL,
                                                sizeof(oversize_task), 0};

static void test_udp_oversize_datagram_emsgsize(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    oversize_task t = {.a = CLOSED_SOCK};
    assert_ok(asyncio_runtime_block_on(rt, &oversize_vt, &t, NULL));
    free_runtime(rt);
}

/* ------------------------------------------------------------------------ */
/* Broadcast flag                                                            */

static int broadcast_poll(void *state, asyncio_context *cx, void *out)
{
    oversize_task *t = state;
    (void)out;
    int rc = single_setup(t, cx);
    if (rc != 0)
        return rc;
    asyncio_sockaddr lo = ip_addr("127.0.0.1", 0);
    bool on = true;
    assert_ok(asyncio_udp_broadcast(&t->a, &on));
    assert_false(on);
    asyncio_sockaddr bcast = ip_addr("255.255.255.255", 9);
    size_t n;
    /* Without SO_BROADCAST the kernel refuses a broadcast destination. */
    assert_err(asyncio_udp_poll_send_to(&t->a, cx, "b", 1, &bcast, &n), ASYNCIO_EACCES);
    assert_ok(asyncio_udp_set_broadcast(&t->a, true));
    assert_ok(asyncio_udp_broadcast(&t->a, &on));
    assert_true(on);
    /* With it, EACCES is gone (the send may still fail for lack of a route). */
    rc = asyncio_udp_poll_send_to(&t->a, cx, "b", 1, &bcast, &n);
    assert_true(rc != ASYNCIO_EACCES && rc != ASYNCIO_PENDING);
    assert_ok(asyncio_udp_set_broadcast(&t->a, false));
    assert_ok(asyncio_udp_broadcast(&t->a, &on));
    assert_false(on);
    /* The bind option sets it too. */
    asyncio_udp_socket b = CLOSED_SOCK;
    asyncio_udp_options o = {.broadcast = true};
    assert_ok(asyncio_udp_bind(&b, &lo, &o));
    assert_ok(asyncio_udp_broadcast(&b, &on));
    assert_true(on);
    assert_ok(asyncio_udp_close(&b));
    return 0;
}

static const asyncio_task_vtable broadcast_vt = {broadcast_poll, oversize_drop, NULL,
                                                 sizeof(oversize_task), 0};

static void test_udp_broadcast_flag_settable(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    oversize_task t = {.a = CLOSED_SOCK};
    assert_ok(asyncio_runtime_block_on(rt, &broadcast_vt, &t, NULL));
    free_runtime(rt);
}

/* ------------------------------------------------------------------------ */
/* Multicast on lo                                                           */

/* The task's output: set when the sandbox cannot do multicast (the test then skips). */
typedef struct mcast_out {
    bool skipped;
    char why[96];
} mcast_out;

typedef struct mcast_task {
    int step;
    unsigned lo_index;
    asyncio_udp_socket rx, tx;
    asyncio_sockaddr group;
    asyncio_sleep deadline;
    size_t n;
    char buf[64];
} mcast_task;

static int mcast_skip(mcast_task *t, void *out, const char *what, int rc)
{
    mcast_out o = {.skipped = true};
    snprintf(o.why, sizeof o.why, "%s: %s", what, asyncio_err_name(rc));
    (void)t;
    memcpy(out, &o, sizeof o);
    return 0;
}

static int mcast_poll(void *state, asyncio_context *cx, void *out)
{
    mcast_task *t = state;
    switch (t->step) {
    case 0: {
        asyncio_sockaddr any = ip_addr("0.0.0.0", 0), lo = ip_addr("127.0.0.1", 0);
        assert_ok(asyncio_udp_bind(&t->rx, &any, NULL));
        assert_ok(asyncio_udp_bind(&t->tx, &lo, NULL));
        t->group = ip_addr("239.255.77.77", 0);
        asyncio_sockaddr rl = local_of(&t->rx);
        assert_ok(asyncio_addr_set_port(&t->group, asyncio_addr_port(&rl)));
        /* Not a multicast address. */
        asyncio_sockaddr uni = ip_addr("127.0.0.1", 0);
        assert_err(asyncio_udp_join_multicast(&t->rx, &uni, t->lo_index), ASYNCIO_EINVAL);
        int rc = asyncio_udp_join_multicast(&t->rx, &t->group, t->lo_index);
        if (rc < 0)
            return mcast_skip(t, out, "join on lo failed", rc);
        assert_err(asyncio_udp_join_multicast(&t->rx, &t->group, t->lo_index), ASYNCIO_EADDRINUSE);
        assert_ok(asyncio_udp_set_multicast_interface(&t->tx, t->lo_index));
        assert_ok(asyncio_udp_set_multicast_loop(&t->tx, true));
        assert_ok(asyncio_udp_set_multicast_ttl(&t->tx, 1));
        assert_err(asyncio_udp_set_multicast_ttl(&t->tx, 256), ASYNCIO_EINVAL);
        t->step = 1;
    }
    /* fallthrough */
    case 1: {
        int rc = asyncio_udp_poll_send_to(&t->tx, cx, "group", 5, &t->group, &t->n);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc < 0)
            return mcast_skip(t, out, "send to the group over lo failed", rc);
        asyncio_sleep_init(&t->deadline, 2000);
        t->step = 2;
    }
    /* fallthrough */
    case 2: { /* the group datagram, or give up after 2 s (no multicast delivery here) */
        int rc = asyncio_udp_poll_recv_from(&t->rx, cx, t->buf, sizeof t->buf, &t->n, NULL, NULL);
        if (rc == ASYNCIO_PENDING) {
            if (asyncio_sleep_poll(&t->deadline, cx) == 0)
                return mcast_skip(t, out, "no multicast delivery over lo within 2 s",
                                  ASYNCIO_ETIMEDOUT);
            return ASYNCIO_PENDING;
        }
        assert_ok(rc);
        assert_int_equal(t->n, 5);
        assert_memory_equal(t->buf, "group", 5);
        memset(out, 0, sizeof(mcast_out));
        assert_ok(asyncio_udp_leave_multicast(&t->rx, &t->group, t->lo_index));
        assert_err(asyncio_udp_leave_multicast(&t->rx, &t->group, t->lo_index),
                   ASYNCIO_EADDRNOTAVAIL);
        return 0;
    }
    }
    return ASYNCIO_EINVAL;
}

static void mcast_drop(void *state)
{
    mcast_task *t = state;
    asyncio_sleep_drop(&t->deadline);
    asyncio_udp_close(&t->rx);
    asyncio_udp_close(&t->tx);
}

static const asyncio_task_vtable mcast_vt = {mcast_poll, mcast_drop, NULL, sizeof(mcast_task),
                                             sizeof(mcast_out)};

static void test_udp_multicast_join_leave_loopback(void **state)
{
    (void)state;
    unsigned lo = if_nametoindex("lo");
    if (lo == 0) {
        print_message("skipped: no interface named lo\n");
        skip();
    }
    asyncio_runtime *rt = new_runtime();
    mcast_task t = {.lo_index = lo, .rx = CLOSED_SOCK, .tx = CLOSED_SOCK};
    asyncio_sleep_init(&t.deadline, 0);
    mcast_out o = {0};
    int rc = asyncio_runtime_block_on(rt, &mcast_vt, &t, &o);
    free_runtime(rt);
    assert_ok(rc);
    if (o.skipped) {
        print_message("skipped: no multicast route in this sandbox (%s)\n", o.why);
        skip();
    }
}

/* ------------------------------------------------------------------------ */
/* A receive pending until a sibling sends, then woken                       */

/*
 * Set by the receiver when its receive went pending. The sender waits for
 * it, so "pending at least once" also holds on the multi-thread runtime,
 * where the sender may run on another worker before the receiver's first
 * poll.
 */
static atomic_bool g_receiver_pending;

typedef struct late_sender {
    asyncio_udp_socket s;
    asyncio_sockaddr to;
    int yields;
    asyncio_yield y;
} late_sender;

static int late_sender_poll(void *state, asyncio_context *cx, void *out)
{
    late_sender *t = state;
    (void)out;
    while (t->yields > 0 || !atomic_load(&g_receiver_pending)) {
        if (asyncio_yield_poll(&t->y, cx) == ASYNCIO_PENDING)
            return ASYNCIO_PENDING;
        t->y = (asyncio_yield)ASYNCIO_YIELD_INIT;
        if (t->yields > 0)
            t->yields--;
    }
    if (t->s.fd < 0) {
        asyncio_sockaddr lo = ip_addr("127.0.0.1", 0);
        assert_ok(asyncio_udp_bind(&t->s, &lo, NULL));
    }
    size_t n;
    AWAIT(asyncio_udp_poll_send_to(&t->s, cx, "late", 4, &t->to, &n));
    return 0;
}

static void late_sender_drop(void *state)
{
    asyncio_udp_close(&((late_sender *)state)->s);
}

static const asyncio_task_vtable late_sender_vt = {late_sender_poll, late_sender_drop, NULL,
                                                   sizeof(late_sender), 0};

typedef struct waiter_task {
    int step;
    asyncio_udp_socket rx;
    asyncio_join_handle *sender;
    int pending_polls;
    size_t n;
    char buf[16];
} waiter_task;

static int waiter_poll(void *state, asyncio_context *cx, void *out)
{
    waiter_task *t = state;
    (void)out;
    switch (t->step) {
    case 0: {
        asyncio_sockaddr lo = ip_addr("127.0.0.1", 0);
        assert_ok(asyncio_udp_bind(&t->rx, &lo, NULL));
        atomic_store(&g_receiver_pending, false);
        late_sender ls = {.s = CLOSED_SOCK, .to = local_of(&t->rx), .yields = 5};
        assert_ok(asyncio_spawn(asyncio_runtime_current(), &late_sender_vt, &ls, &t->sender));
        t->step = 1;
    }
    /* fallthrough */
    case 1: {
        int rc = asyncio_udp_poll_recv_from(&t->rx, cx, t->buf, sizeof t->buf, &t->n, NULL, NULL);
        if (rc == ASYNCIO_PENDING) {
            t->pending_polls++;
            atomic_store(&g_receiver_pending, true);
            return rc;
        }
        assert_ok(rc);
        assert_int_equal(t->n, 4);
        assert_memory_equal(t->buf, "late", 4);
        t->step = 2;
    }
    /* fallthrough */
    case 2:
        AWAIT(asyncio_join_handle_poll(t->sender, cx, NULL));
        /* Pending at least once (nothing was sent yet), and woken by the datagram. */
        assert_true(t->pending_polls >= 1);
        return 0;
    }
    return ASYNCIO_EINVAL;
}

static void waiter_drop(void *state)
{
    waiter_task *t = state;
    asyncio_join_handle_drop(t->sender);
    asyncio_udp_close(&t->rx);
}

static const asyncio_task_vtable waiter_vt = {waiter_poll, waiter_drop, NULL, sizeof(waiter_task),
                                              0};

static void test_udp_recv_pending_until_data_then_woken(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    waiter_task t = {.rx = CLOSED_SOCK};
    assert_ok(asyncio_runtime_block_on(rt, &waiter_vt, &t, NULL));
    free_runtime(rt);
}

/* ------------------------------------------------------------------------ */
/* Error paths                                                               */

static int errors_poll(void *state, asyncio_context *cx, void *out)
{
    oversize_task *t = state;
    (void)out;
    asyncio_sockaddr lo = ip_addr("127.0.0.1", 0), un, lo6 = ip_addr("::1", 9);
    assert_ok(asyncio_addr_unix("/tmp/x.sock", &un));
    asyncio_udp_socket b = CLOSED_SOCK;
    size_t n;
    char buf[8];
    assert_err(asyncio_udp_bind(NULL, &lo, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_udp_bind(&b, NULL, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_udp_bind(&b, &un, NULL), ASYNCIO_EINVAL); /* not an IP address */
    assert_int_equal(b.fd, -1);
    /* Operations on a closed socket. */
    assert_err(asyncio_udp_poll_send_to(&b, cx, "x", 1, &lo, &n), ASYNCIO_EINVAL);
    assert_err(asyncio_udp_poll_recv_from(&b, cx, buf, sizeof buf, &n, NULL, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_udp_set_broadcast(&b, true), ASYNCIO_EINVAL);
    assert_err(asyncio_udp_local_addr(&b, &lo), ASYNCIO_EINVAL);
    assert_ok(asyncio_udp_close(&b));
    assert_ok(asyncio_udp_close(NULL));

    assert_ok(asyncio_udp_bind(&t->a, &lo, NULL));
    asyncio_sockaddr bound = local_of(&t->a);
    /* The same port again without SO_REUSEADDR. */
    assert_err(asyncio_udp_bind(&b, &bound, NULL), ASYNCIO_EADDRINUSE);
    assert_err(asyncio_udp_poll_send_to(&t->a, cx, "x", 1, &un, &n), ASYNCIO_EINVAL);
    assert_err(asyncio_udp_poll_send_to(&t->a, cx, "x", 1, NULL, &n), ASYNCIO_EINVAL);
    assert_err(asyncio_udp_poll_send_to(&t->a, cx, NULL, 1, &bound, &n), ASYNCIO_EINVAL);
    assert_err(asyncio_udp_poll_recv_from(&t->a, cx, NULL, 4, &n, NULL, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_udp_poll_recv_from(&t->a, cx, buf, 4, NULL, NULL, NULL), ASYNCIO_EINVAL);
    assert_err(asyncio_udp_connect(&t->a, &lo6), ASYNCIO_EINVAL); /* family mismatch */
    assert_err(asyncio_udp_connect(&t->a, &un), ASYNCIO_EINVAL);
    assert_err(asyncio_udp_join_multicast(&t->a, &un, 0), ASYNCIO_EINVAL);
    /* Nothing queued: pending, with the waker stored (no error). */
    assert_int_equal(asyncio_udp_poll_recv_from(&t->a, cx, buf, sizeof buf, &n, NULL, NULL),
                     ASYNCIO_PENDING);
    /* A datagram to a closed port makes a connected socket's next operation fail. */
    asyncio_udp_socket c = CLOSED_SOCK;
    assert_ok(asyncio_udp_bind(&c, &lo, NULL));
    asyncio_sockaddr dead = local_of(&c);
    assert_ok(asyncio_udp_close(&c));
    assert_ok(asyncio_udp_connect(&t->a, &dead));
    return 1; /* the send and the refusal: refused_poll's later steps */
}

typedef struct refused_task {
    oversize_task base;
    int step;
} refused_task;

static int refused_poll(void *state, asyncio_context *cx, void *out)
{
    refused_task *t = state;
    if (t->step == 0) {
        assert_int_equal(errors_poll(&t->base, cx, out), 1);
        t->step = 1;
    }
    size_t n;
    char buf[8];
    if (t->step == 1) {
        AWAIT(asyncio_udp_poll_send(&t->base.a, cx, "x", 1, &n));
        t->step = 2;
    }
    int rc = asyncio_udp_poll_recv(&t->base.a, cx, buf, sizeof buf, &n, NULL);
    if (rc == ASYNCIO_PENDING)
        return rc;
    assert_err(rc, ASYNCIO_ECONNREFUSED);
    return 0;
}

static void refused_drop(void *state)
{
    asyncio_udp_close(&((refused_task *)state)->base.a);
}

static const asyncio_task_vtable refused_vt = {refused_poll, refused_drop, NULL,
                                               sizeof(refused_task), 0};

static void test_udp_error_paths(void **state)
{
    (void)state;
    asyncio_runtime *rt = new_runtime();
    refused_task t = {.base = {.a = CLOSED_SOCK}};
    assert_ok(asyncio_runtime_block_on(rt, &refused_vt, &t, NULL));
    free_runtime(rt);
}

/* Outside a runtime nothing can be registered: EINVAL, no fd left open (fixture). */
static void test_udp_bind_outside_runtime_einval(void **state)
{
    (void)state;
    asyncio_udp_socket s = CLOSED_SOCK;
    asyncio_sockaddr lo = ip_addr("127.0.0.1", 0);
    assert_err(asyncio_udp_bind(&s, &lo, NULL), ASYNCIO_EINVAL);
    assert_int_equal(s.fd, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_udp_echo_v4),
        support_test(test_udp_echo_v6),
        support_test(test_udp_connect_send_recv),
        support_test(test_udp_recv_truncation_reported),
        support_test(test_udp_max_v4_datagram_whole),
        support_test(test_udp_oversize_datagram_emsgsize),
        support_test(test_udp_broadcast_flag_settable),
        support_test(test_udp_multicast_join_leave_loopback),
        support_test(test_udp_recv_pending_until_data_then_woken),
        support_test(test_udp_error_paths),
        support_test(test_udp_bind_outside_runtime_einval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
