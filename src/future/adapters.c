/*
 * Leaves as asyncio_futures (include/asyncio/adapt.h): one small vtable per
 * leaf, translating poll(state, cx, out) to the leaf's own poll signature.
 * No allocation, no state of their own beyond the caller's op structs.
 */
#include "asyncio/adapt.h"

#include "internal.h"

/* ---- calls on objects --------------------------------------------------------- */

static int read_poll(void *state, asyncio_context *cx, void *out)
{
    asyncio_read_op *op = state;
    size_t n = 0;
    int rc = asyncio_poll_read(op->r, cx, op->buf, op->len, &n);
    if (rc == 0 && out != NULL)
        *(size_t *)out = n;
    return rc;
}
static const asyncio_future_vtable g_read_vt = {read_poll, NULL};

asyncio_future asyncio_read_future(asyncio_read_op *op, asyncio_reader r, void *buf, size_t len,
                                   size_t *n_out)
{
    op->r = r;
    op->buf = buf;
    op->len = len;
    return asyncio_future_make(&g_read_vt, op, n_out);
}

static int write_poll(void *state, asyncio_context *cx, void *out)
{
    asyncio_write_op *op = state;
    size_t n = 0;
    int rc = asyncio_poll_write(op->w, cx, op->buf, op->len, &n);
    if (rc == 0 && out != NULL)
        *(size_t *)out = n;
    return rc;
}
static const asyncio_future_vtable g_write_vt = {write_poll, NULL};

asyncio_future asyncio_write_future(asyncio_write_op *op, asyncio_writer w, const void *buf,
                                    size_t len, size_t *n_out)
{
    op->w = w;
    op->buf = buf;
    op->len = len;
    return asyncio_future_make(&g_write_vt, op, n_out);
}

static int tcp_accept_poll(void *state, asyncio_context *cx, void *out)
{
    asyncio_accept_op *op = state;
    return asyncio_tcp_listener_poll_accept(op->listener, cx, out, op->peer);
}
static const asyncio_future_vtable g_tcp_accept_vt = {tcp_accept_poll, NULL};

asyncio_future asyncio_tcp_accept_future(asyncio_accept_op *op, asyncio_tcp_listener *l,
                                         asyncio_sockaddr *peer, asyncio_tcp_stream *stream_out)
{
    op->listener = l;
    op->peer = peer;
    return asyncio_future_make(&g_tcp_accept_vt, op, stream_out);
}

static int unix_accept_poll(void *state, asyncio_context *cx, void *out)
{
    asyncio_accept_op *op = state;
    return asyncio_unix_listener_poll_accept(op->listener, cx, out, op->peer);
}
static const asyncio_future_vtable g_unix_accept_vt = {unix_accept_poll, NULL};

asyncio_future asyncio_unix_accept_future(asyncio_accept_op *op, asyncio_unix_listener *l,
                                          asyncio_sockaddr *peer, asyncio_unix_stream *stream_out)
{
    op->listener = l;
    op->peer = peer;
    return asyncio_future_make(&g_unix_accept_vt, op, stream_out);
}

/* Datagram ops write the byte count to `out` when it is not NULL. */
static size_t *count_out(void *out, size_t *scratch)
{
    return out != NULL ? (size_t *)out : scratch;
}

static int udp_recv_poll(void *state, asyncio_context *cx, void *out)
{
    asyncio_dgram_op *op = state;
    size_t n;
    return asyncio_udp_poll_recv_from(op->sock, cx, op->buf, op->len, count_out(out, &n), op->addr,
                                      op->truncated);
}
static const asyncio_future_vtable g_udp_recv_vt = {udp_recv_poll, NULL};

static int udp_send_poll(void *state, asyncio_context *cx, void *out)
{
    asyncio_dgram_op *op = state;
    size_t n;
    if (op->addr == NULL)
        return asyncio_udp_poll_send(op->sock, cx, op->buf, op->len, count_out(out, &n));
    return asyncio_udp_poll_send_to(op->sock, cx, op->buf, op->len, op->addr, count_out(out, &n));
}
static const asyncio_future_vtable g_udp_send_vt = {udp_send_poll, NULL};

static int unix_dgram_recv_poll(void *state, asyncio_context *cx, void *out)
{
    asyncio_dgram_op *op = state;
    size_t n;
    return asyncio_unix_datagram_poll_recv_from(op->sock, cx, op->buf, op->len, count_out(out, &n),
                                                op->addr, op->truncated);
}
static const asyncio_future_vtable g_unix_dgram_recv_vt = {unix_dgram_recv_poll, NULL};

static int unix_dgram_send_poll(void *state, asyncio_context *cx, void *out)
{
    asyncio_dgram_op *op = state;
    size_t n;
    if (op->addr == NULL)
        return asyncio_unix_datagram_poll_send(op->sock, cx, op->buf, op->len, count_out(out, &n));
    return asyncio_unix_datagram_poll_send_to(op->sock, cx, op->buf, op->len, op->addr,
                                              count_out(out, &n));
}
static const asyncio_future_vtable g_unix_dgram_send_vt = {unix_dgram_send_poll, NULL};

static asyncio_future dgram(asyncio_dgram_op *op, const asyncio_future_vtable *vt, void *sock,
                            const void *buf, size_t len, const asyncio_sockaddr *addr,
                            bool *truncated, size_t *n_out)
{
    op->sock = sock;
    op->buf = (void *)(uintptr_t)buf; /* a send only reads it */
    op->len = len;
    op->addr = (asyncio_sockaddr *)(uintptr_t)addr;
    op->truncated = truncated;
    return asyncio_future_make(vt, op, n_out);
}

asyncio_future asyncio_udp_recv_future(asyncio_dgram_op *op, asyncio_udp_socket *s, void *buf,
                                       size_t len, asyncio_sockaddr *from, bool *truncated,
                                       size_t *n_out)
{
    return dgram(op, &g_udp_recv_vt, s, buf, len, from, truncated, n_out);
}

asyncio_future asyncio_udp_send_future(asyncio_dgram_op *op, asyncio_udp_socket *s, const void *buf,
                                       size_t len, const asyncio_sockaddr *to, size_t *n_out)
{
    return dgram(op, &g_udp_send_vt, s, buf, len, to, NULL, n_out);
}

asyncio_future asyncio_unix_datagram_recv_future(asyncio_dgram_op *op, asyncio_unix_datagram *d,
                                                 void *buf, size_t len, asyncio_sockaddr *from,
                                                 bool *truncated, size_t *n_out)
{
    return dgram(op, &g_unix_dgram_recv_vt, d, buf, len, from, truncated, n_out);
}

asyncio_future asyncio_unix_datagram_send_future(asyncio_dgram_op *op, asyncio_unix_datagram *d,
                                                 const void *buf, size_t len,
                                                 const asyncio_sockaddr *to, size_t *n_out)
{
    return dgram(op, &g_unix_dgram_send_vt, d, buf, len, to, NULL, n_out);
}

static int signal_poll(void *state, asyncio_context *cx, void *out)
{
    return asyncio_signal_poll(state, cx, out);
}
static const asyncio_future_vtable g_signal_vt = {signal_poll, NULL};

asyncio_future asyncio_signal_future(asyncio_signal *s, int *signo)
{
    return asyncio_future_make(&g_signal_vt, s, signo);
}

static int interval_poll(void *state, asyncio_context *cx, void *out)
{
    return asyncio_interval_poll_tick(state, cx, out);
}
static const asyncio_future_vtable g_interval_vt = {interval_poll, NULL};

asyncio_future asyncio_interval_tick_future(asyncio_interval *iv, uint64_t *tick_ms)
{
    return asyncio_future_make(&g_interval_vt, iv, tick_ms);
}

/* ---- operations: the leaf is the state ---------------------------------------- */

/*
 * One adapter per leaf with a (leaf, cx) poll and a (leaf) drop: the
 * casts from void * are to the leaf's own type, so the calls are direct.
 */
#define ADAPT_NO_OUT(name, type, poll_fn, drop_fn)                                 \
    static int name##_poll(void *state, asyncio_context *cx, void *out)            \
    {                                                                              \
        (void)out;                                                                 \
        return poll_fn((type *)state, cx);                                         \
    }                                                                              \
    static void name##_drop(void *state)                                           \
    {                                                                              \
        drop_fn((type *)state);                                                    \
    }                                                                              \
    static const asyncio_future_vtable g_##name##_vt = {name##_poll, name##_drop}; \
    asyncio_future asyncio_##name##_future(type *leaf)                             \
    {                                                                              \
        return asyncio_future_make(&g_##name##_vt, leaf, NULL);                    \
    }

/* As ADAPT_NO_OUT for leaves whose poll takes an output pointer. */
#define ADAPT_OUT(name, type, out_type, poll_fn, drop_fn)                          \
    static int name##_poll(void *state, asyncio_context *cx, void *out)            \
    {                                                                              \
        return poll_fn((type *)state, cx, (out_type *)out);                        \
    }                                                                              \
    static void name##_drop(void *state)                                           \
    {                                                                              \
        drop_fn((type *)state);                                                    \
    }                                                                              \
    static const asyncio_future_vtable g_##name##_vt = {name##_poll, name##_drop}; \
    asyncio_future asyncio_##name##_future(type *leaf, out_type *out)              \
    {                                                                              \
        return asyncio_future_make(&g_##name##_vt, leaf, out);                     \
    }

static void no_drop(void *leaf)
{
    (void)leaf;
}

ADAPT_NO_OUT(sleep, asyncio_sleep, asyncio_sleep_poll, asyncio_sleep_drop)
ADAPT_NO_OUT(semaphore_acquire, asyncio_semaphore_acquire, asyncio_semaphore_acquire_poll,
             asyncio_semaphore_acquire_drop)
ADAPT_NO_OUT(mutex_lock, asyncio_mutex_lock, asyncio_mutex_lock_poll, asyncio_mutex_lock_drop)
ADAPT_NO_OUT(notified, asyncio_notified, asyncio_notified_poll, asyncio_notified_drop)
ADAPT_NO_OUT(mpsc_send, asyncio_mpsc_send, asyncio_mpsc_send_poll, asyncio_mpsc_send_drop)
ADAPT_NO_OUT(blocking_handle, asyncio_blocking_handle, asyncio_blocking_handle_poll,
             asyncio_blocking_handle_drop)
ADAPT_NO_OUT(resolve, asyncio_resolve, asyncio_resolve_poll, asyncio_resolve_drop)
ADAPT_NO_OUT(fs_op, asyncio_fs_op, asyncio_fs_op_poll, asyncio_fs_op_drop)
ADAPT_NO_OUT(read_exact, asyncio_read_exact, asyncio_read_exact_poll, no_drop)
ADAPT_NO_OUT(write_all, asyncio_write_all, asyncio_write_all_poll, no_drop)
ADAPT_NO_OUT(copy, asyncio_copy, asyncio_copy_poll, asyncio_copy_drop)
ADAPT_OUT(mpsc_recv, asyncio_mpsc_recv, void, asyncio_mpsc_recv_poll, asyncio_mpsc_recv_drop)
ADAPT_OUT(oneshot_recv, asyncio_oneshot_receiver, void, asyncio_oneshot_recv_poll,
          asyncio_oneshot_receiver_drop)
ADAPT_OUT(join_handle, asyncio_join_handle, void, asyncio_join_handle_poll,
          asyncio_join_handle_drop)
ADAPT_OUT(tcp_connect, asyncio_tcp_connect, asyncio_tcp_stream, asyncio_tcp_connect_poll,
          asyncio_tcp_connect_drop)
ADAPT_OUT(tcp_connect_host, asyncio_tcp_connect_host, asyncio_tcp_stream,
          asyncio_tcp_connect_host_poll, asyncio_tcp_connect_host_drop)
ADAPT_OUT(unix_connect, asyncio_unix_connect, asyncio_unix_stream, asyncio_unix_connect_poll,
          asyncio_unix_connect_drop)
ADAPT_NO_OUT(rwlock_read, asyncio_rwlock_read, asyncio_rwlock_read_poll, asyncio_rwlock_read_drop)
ADAPT_NO_OUT(rwlock_write, asyncio_rwlock_write, asyncio_rwlock_write_poll,
             asyncio_rwlock_write_drop)
ADAPT_NO_OUT(watch_changed, asyncio_watch_changed, asyncio_watch_changed_poll,
             asyncio_watch_changed_drop)
ADAPT_OUT(barrier_wait, asyncio_barrier_wait, bool, asyncio_barrier_wait_poll,
          asyncio_barrier_wait_drop)
ADAPT_OUT(broadcast_recv, asyncio_broadcast_recv, void, asyncio_broadcast_recv_poll,
          asyncio_broadcast_recv_drop)

/*
 * get_or_init has two results (the value, or the turn to compute it) and
 * a drop that abandons the turn. A combinator drops a child as soon as it
 * completes, so the adapter remembers a completion with the turn and its
 * drop then leaves the leaf to the caller, who owns the turn.
 */
static int once_cell_poll(void *state, asyncio_context *cx, void *out)
{
    asyncio_once_cell_op *op = state;
    bool turn = false;
    int rc = asyncio_once_cell_get_or_init_poll(op->get, cx, out, &turn);
    if (rc != 0)
        return rc;
    op->turn = turn;
    if (op->init_turn != NULL)
        *op->init_turn = turn;
    return 0;
}

static void once_cell_drop(void *state)
{
    asyncio_once_cell_op *op = state;
    if (!op->turn)
        asyncio_once_cell_get_or_init_drop(op->get);
}

static const asyncio_future_vtable g_once_cell_vt = {once_cell_poll, once_cell_drop};

asyncio_future asyncio_once_cell_get_or_init_future(asyncio_once_cell_op *op,
                                                    asyncio_once_cell_get_or_init *get,
                                                    void *value_out, bool *init_turn)
{
    op->get = get;
    op->init_turn = init_turn;
    op->turn = false;
    return asyncio_future_make(&g_once_cell_vt, op, value_out);
}
