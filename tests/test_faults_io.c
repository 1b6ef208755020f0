/*
 * Allocation-failure sweep over the I/O layer (tests/support/alloc_sweep.h;
 * docs/testing.md): TCP, UDP and Unix echo exchanges, buffered line I/O,
 * copy between streams, and file-system operations. Each scenario runs on
 * the runtime ASYNCIO_TEST_RUNTIME selects, with every allocation it reaches
 * failed in turn: the caller sees ASYNCIO_ENOMEM (or its peer sees the
 * connection end), nothing leaks, nothing hangs; runs that complete despite
 * the failure must have moved every byte intact.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc_sweep.h"
#include "asyncio.h"
#include "support.h"

/* ------------------------------------------------------------------------ */
/* Shared plumbing                                                            */

#define MSG_COUNT 3
static const char k_msg[MSG_COUNT][24] = {"hello, sweep", "second message!", "3"};

/* The peer-side consequences of a failure on the other side of a stream. */
static const int k_stream_peer_errors[] = {ASYNCIO_EUNEXPECTED_EOF, ASYNCIO_ECONNRESET,
                                           ASYNCIO_EPIPE, ASYNCIO_ECANCELED, 0};

/* ------------------------------------------------------------------------ */
/* TCP echo: a server task accepts one connection and echoes until EOF; the  */
/* main task connects, sends three messages, reads each back, shuts down.    */

typedef struct tcp_server {
    asyncio_coro co;
    asyncio_tcp_listener *l;
    asyncio_tcp_stream s;
    char buf[64];
    size_t len, off, n;
} tcp_server;

static int tcp_server_poll(void *state, asyncio_context *cx, void *out)
{
    tcp_server *t = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(t->co);
    ASYNCIO_AWAIT_OK(t->co, rc, asyncio_tcp_listener_poll_accept(t->l, cx, &t->s, NULL));
    for (;;) {
        ASYNCIO_AWAIT_OK(t->co, rc,
                         asyncio_tcp_stream_poll_read(&t->s, cx, t->buf, sizeof t->buf, &t->len));
        if (t->len == 0)
            break;
        for (t->off = 0; t->off < t->len; t->off += t->n)
            ASYNCIO_AWAIT_OK(t->co, rc,
                             asyncio_tcp_stream_poll_write(&t->s, cx, t->buf + t->off,
                                                           t->len - t->off, &t->n));
    }
    ASYNCIO_END(t->co);
    return 0;
}

static void tcp_server_drop(void *state)
{
    tcp_server *t = state;
    asyncio_tcp_listener_close(t->l);
    asyncio_tcp_stream_close(&t->s);
}

static const asyncio_task_vtable tcp_server_vt = {tcp_server_poll, tcp_server_drop, NULL,
                                                  sizeof(tcp_server), 0};

typedef struct tcp_client {
    asyncio_coro co;
    bool by_name; /* connect to `host` by name (resolve, try each address) */
    const char *host; /* "localhost" (the blocking pool) or a literal (parsed in place) */
    asyncio_tcp_connect_host conn_host;
    asyncio_join_handle *server;
    asyncio_tcp_connect conn;
    asyncio_tcp_stream s;
    asyncio_write_all wa;
    asyncio_read_exact re;
    char back[24];
    int i, server_rc;
} tcp_client;

static int tcp_client_start(tcp_client *c)
{
    asyncio_sockaddr any;
    asyncio_tcp_listener *l;
    tcp_server init;
    int rc = asyncio_addr_parse("127.0.0.1:0", &any);
    if (rc == 0)
        rc = asyncio_tcp_listener_bind(&l, &any, NULL);
    if (rc != 0)
        return rc;
    asyncio_sockaddr addr;
    rc = asyncio_tcp_listener_local_addr(l, &addr);
    memset(&init, 0, sizeof init);
    init.l = l;
    asyncio_tcp_stream_init_closed(&init.s);
    if (rc == 0)
        rc = asyncio_spawn(asyncio_runtime_current(), &tcp_server_vt, &init, &c->server);
    if (rc != 0) {
        asyncio_tcp_listener_close(l);
        return rc;
    }
    if (c->by_name)
        return asyncio_tcp_connect_host_init(&c->conn_host, c->host, asyncio_addr_port(&addr));
    asyncio_tcp_connect_init(&c->conn, &addr);
    return 0;
}

static int tcp_client_poll(void *state, asyncio_context *cx, void *out)
{
    tcp_client *c = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(c->co);
    rc = tcp_client_start(c);
    if (rc != 0)
        return rc;
    if (c->by_name)
        ASYNCIO_AWAIT_OK(c->co, rc, asyncio_tcp_connect_host_poll(&c->conn_host, cx, &c->s));
    else
        ASYNCIO_AWAIT_OK(c->co, rc, asyncio_tcp_connect_poll(&c->conn, cx, &c->s));
    for (c->i = 0; c->i < MSG_COUNT; c->i++) {
        asyncio_write_all_init(&c->wa, asyncio_tcp_stream_writer(&c->s), k_msg[c->i],
                               strlen(k_msg[c->i]));
        ASYNCIO_AWAIT_OK(c->co, rc, asyncio_write_all_poll(&c->wa, cx));
        asyncio_read_exact_init(&c->re, asyncio_tcp_stream_reader(&c->s), c->back,
                                strlen(k_msg[c->i]));
        ASYNCIO_AWAIT_OK(c->co, rc, asyncio_read_exact_poll(&c->re, cx));
        SWEEP_EXPECT_MEM(c->back, k_msg[c->i], strlen(k_msg[c->i]));
    }
    ASYNCIO_AWAIT_OK(c->co, rc, asyncio_tcp_stream_poll_shutdown(&c->s, cx));
    ASYNCIO_AWAIT(c->co, rc, asyncio_join_handle_poll(c->server, cx, NULL));
    ASYNCIO_END(c->co);
    return rc;
}

static void tcp_client_drop(void *state)
{
    tcp_client *c = state;
    asyncio_tcp_connect_drop(&c->conn);
    if (c->by_name)
        asyncio_tcp_connect_host_drop(&c->conn_host);
    asyncio_tcp_stream_close(&c->s);
    if (c->server != NULL)
        asyncio_join_handle_drop(c->server);
}

static int tcp_echo_run(bool by_name, const char *host)
{
    static const asyncio_task_vtable vt = {tcp_client_poll, tcp_client_drop, NULL,
                                           sizeof(tcp_client), 0};
    tcp_client init;
    memset(&init, 0, sizeof init);
    init.by_name = by_name;
    init.host = host;
    if (by_name) { /* an empty list: dropping it before the real init is safe */
        asyncio_sockaddr none;
        memset(&none, 0, sizeof none);
        SWEEP_EXPECT_EQ(asyncio_tcp_connect_addrs_init(&init.conn_host, &none, 1), 0);
    }
    asyncio_tcp_stream_init_closed(&init.s);
    asyncio_sockaddr none;
    memset(&none, 0, sizeof none);
    asyncio_tcp_connect_init(&init.conn, &none); /* replaced once the port is known */
    return alloc_sweep_block_on(&vt, &init);
}

static int scenario_tcp_echo(void)
{
    return tcp_echo_run(false, NULL);
}

static int scenario_tcp_connect_host(void)
{
    return tcp_echo_run(true, "localhost");
}

static int scenario_tcp_connect_literal(void)
{
    return tcp_echo_run(true, "127.0.0.1");
}

static void test_faults_tcp_connect_by_literal_host_survives_every_failed_allocation(void **state)
{
    (void)state;
    alloc_sweep_scenario s = {"tcp_connect_literal", scenario_tcp_connect_literal,
                              k_stream_peer_errors};
    assert_true(alloc_sweep_run(&s) > 0);
}

/* ------------------------------------------------------------------------ */
/* Async fd and user source: a byte through a pipe read with an async fd,    */
/* next to a user source (the two allocation sites the echo scenarios miss). */

typedef struct afd_main {
    int step, fds[2];
    asyncio_async_fd *a;
    asyncio_user_source *us;
} afd_main;

static int afd_start(afd_main *m)
{
    int rc = asyncio_user_source_new(&m->us);
    if (rc != 0)
        return rc;
    rc = asyncio_user_source_set_readiness(m->us, ASYNCIO_READABLE);
    if (rc != 0)
        return rc;
    SWEEP_EXPECT_EQ(pipe2(m->fds, O_NONBLOCK | O_CLOEXEC), 0);
    rc = asyncio_async_fd_new(&m->a, m->fds[0], ASYNCIO_READABLE);
    if (rc != 0)
        return rc;
    SWEEP_EXPECT_EQ(write(m->fds[1], "z", 1), 1);
    return 0;
}

static int afd_poll(void *state, asyncio_context *cx, void *out)
{
    afd_main *m = state;
    (void)out;
    if (m->step == 0) {
        m->step = 1;
        int rc = afd_start(m);
        if (rc != 0)
            return rc;
    }
    char c = 0;
    size_t n = 0;
    int rc = asyncio_async_fd_poll_read(m->a, cx, &c, 1, &n);
    if (rc != 0)
        return rc;
    SWEEP_EXPECT_EQ(n, 1);
    SWEEP_EXPECT_EQ(c, 'z');
    SWEEP_EXPECT_EQ(asyncio_user_source_readiness(m->us) & ASYNCIO_READABLE, ASYNCIO_READABLE);
    return 0;
}

static void afd_drop(void *state)
{
    afd_main *m = state;
    if (m->a != NULL)
        SWEEP_EXPECT_EQ(asyncio_async_fd_free(m->a), 0);
    if (m->us != NULL)
        SWEEP_EXPECT_EQ(asyncio_user_source_free(m->us), 0);
    for (int i = 0; i < 2; i++)
        if (m->fds[i] >= 0)
            close(m->fds[i]);
}

static int scenario_async_fd_user_source(void)
{
    static const asyncio_task_vtable vt = {afd_poll, afd_drop, NULL, sizeof(afd_main), 0};
    afd_main init = {0, {-1, -1}, NULL, NULL};
    return alloc_sweep_block_on(&vt, &init);
}

static void test_faults_async_fd_and_user_source_survive_every_failed_allocation(void **state)
{
    (void)state;
    alloc_sweep_scenario s = {"async_fd_user_source", scenario_async_fd_user_source, NULL};
    assert_true(alloc_sweep_run(&s) > 0);
}

static void test_faults_tcp_connect_by_name_survives_every_failed_allocation(void **state)
{
    (void)state;
    alloc_sweep_scenario s = {"tcp_connect_host", scenario_tcp_connect_host,
                              k_stream_peer_errors};
    assert_true(alloc_sweep_run(&s) > 0);
}

static void test_faults_tcp_echo_survives_every_failed_allocation(void **state)
{
    (void)state;
    alloc_sweep_scenario s = {"tcp_echo", scenario_tcp_echo, k_stream_peer_errors};
    assert_true(alloc_sweep_run(&s) > 0);
}

/* ------------------------------------------------------------------------ */
/* UDP echo: a server socket answers each datagram; the client sends three.  */

typedef struct udp_echo {
    asyncio_coro co;
    asyncio_udp_socket srv, cli;
    asyncio_sockaddr srv_addr, from;
    char buf[64];
    size_t n;
    bool trunc;
    int i, phase;
} udp_echo;

static int udp_echo_poll(void *state, asyncio_context *cx, void *out)
{
    udp_echo *u = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(u->co);
    asyncio_sockaddr any;
    rc = asyncio_addr_parse("127.0.0.1:0", &any);
    if (rc == 0)
        rc = asyncio_udp_bind(&u->srv, &any, NULL);
    if (rc == 0)
        rc = asyncio_udp_bind(&u->cli, &any, NULL);
    if (rc == 0)
        rc = asyncio_udp_local_addr(&u->srv, &u->srv_addr);
    if (rc != 0)
        return rc;
    for (u->i = 0; u->i < MSG_COUNT; u->i++) {
        ASYNCIO_AWAIT_OK(u->co, rc,
                         asyncio_udp_poll_send_to(&u->cli, cx, k_msg[u->i], strlen(k_msg[u->i]),
                                                  &u->srv_addr, &u->n));
        ASYNCIO_AWAIT_OK(u->co, rc,
                         asyncio_udp_poll_recv_from(&u->srv, cx, u->buf, sizeof u->buf, &u->n,
                                                    &u->from, &u->trunc));
        ASYNCIO_AWAIT_OK(u->co, rc,
                         asyncio_udp_poll_send_to(&u->srv, cx, u->buf, u->n, &u->from, &u->n));
        ASYNCIO_AWAIT_OK(u->co, rc,
                         asyncio_udp_poll_recv_from(&u->cli, cx, u->buf, sizeof u->buf, &u->n,
                                                    NULL, &u->trunc));
        SWEEP_EXPECT_EQ(u->n, strlen(k_msg[u->i]));
        SWEEP_EXPECT_MEM(u->buf, k_msg[u->i], u->n);
    }
    ASYNCIO_END(u->co);
    return 0;
}

static void udp_echo_drop(void *state)
{
    udp_echo *u = state;
    asyncio_udp_close(&u->srv);
    asyncio_udp_close(&u->cli);
}

static int scenario_udp_echo(void)
{
    static const asyncio_task_vtable vt = {udp_echo_poll, udp_echo_drop, NULL, sizeof(udp_echo),
                                           0};
    udp_echo init;
    memset(&init, 0, sizeof init);
    asyncio_udp_socket_init_closed(&init.srv);
    asyncio_udp_socket_init_closed(&init.cli);
    return alloc_sweep_block_on(&vt, &init);
}

static void test_faults_udp_echo_survives_every_failed_allocation(void **state)
{
    (void)state;
    alloc_sweep_scenario s = {"udp_echo", scenario_udp_echo, NULL};
    assert_true(alloc_sweep_run(&s) > 0);
}

/* ------------------------------------------------------------------------ */
/* Unix echo through a listener on a path; the server task echoes until EOF. */

static char g_unix_path[108];

typedef struct unix_server {
    asyncio_coro co;
    asyncio_unix_listener *l;
    asyncio_unix_stream s;
    char buf[64];
    size_t len, off, n;
} unix_server;

static int unix_server_poll(void *state, asyncio_context *cx, void *out)
{
    unix_server *t = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(t->co);
    ASYNCIO_AWAIT_OK(t->co, rc, asyncio_unix_listener_poll_accept(t->l, cx, &t->s, NULL));
    for (;;) {
        ASYNCIO_AWAIT_OK(t->co, rc,
                         asyncio_unix_stream_poll_read(&t->s, cx, t->buf, sizeof t->buf, &t->len));
        if (t->len == 0)
            break;
        for (t->off = 0; t->off < t->len; t->off += t->n)
            ASYNCIO_AWAIT_OK(t->co, rc,
                             asyncio_unix_stream_poll_write(&t->s, cx, t->buf + t->off,
                                                            t->len - t->off, &t->n));
    }
    ASYNCIO_END(t->co);
    return 0;
}

static void unix_server_drop(void *state)
{
    unix_server *t = state;
    asyncio_unix_listener_close(t->l);
    asyncio_unix_stream_close(&t->s);
}

static const asyncio_task_vtable unix_server_vt = {unix_server_poll, unix_server_drop, NULL,
                                                   sizeof(unix_server), 0};

typedef struct unix_client {
    asyncio_coro co;
    asyncio_join_handle *server;
    asyncio_unix_connect conn;
    asyncio_unix_stream s;
    asyncio_write_all wa;
    asyncio_read_exact re;
    char back[24];
    int i;
} unix_client;

static int unix_client_start(unix_client *c)
{
    asyncio_sockaddr addr;
    asyncio_unix_listener *l;
    unix_server init;
    unlink(g_unix_path);
    int rc = asyncio_addr_unix(g_unix_path, &addr);
    if (rc == 0)
        rc = asyncio_unix_listener_bind(&l, &addr, NULL);
    if (rc != 0)
        return rc;
    memset(&init, 0, sizeof init);
    init.l = l;
    asyncio_unix_stream_init_closed(&init.s);
    rc = asyncio_spawn(asyncio_runtime_current(), &unix_server_vt, &init, &c->server);
    if (rc != 0) {
        asyncio_unix_listener_close(l);
        return rc;
    }
    asyncio_unix_connect_init(&c->conn, &addr);
    return 0;
}

static int unix_client_poll(void *state, asyncio_context *cx, void *out)
{
    unix_client *c = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(c->co);
    rc = unix_client_start(c);
    if (rc != 0)
        return rc;
    ASYNCIO_AWAIT_OK(c->co, rc, asyncio_unix_connect_poll(&c->conn, cx, &c->s));
    for (c->i = 0; c->i < MSG_COUNT; c->i++) {
        asyncio_write_all_init(&c->wa, asyncio_unix_stream_writer(&c->s), k_msg[c->i],
                               strlen(k_msg[c->i]));
        ASYNCIO_AWAIT_OK(c->co, rc, asyncio_write_all_poll(&c->wa, cx));
        asyncio_read_exact_init(&c->re, asyncio_unix_stream_reader(&c->s), c->back,
                                strlen(k_msg[c->i]));
        ASYNCIO_AWAIT_OK(c->co, rc, asyncio_read_exact_poll(&c->re, cx));
        SWEEP_EXPECT_MEM(c->back, k_msg[c->i], strlen(k_msg[c->i]));
    }
    ASYNCIO_AWAIT_OK(c->co, rc, asyncio_unix_stream_poll_shutdown(&c->s, cx));
    ASYNCIO_AWAIT(c->co, rc, asyncio_join_handle_poll(c->server, cx, NULL));
    ASYNCIO_END(c->co);
    return rc;
}

static void unix_client_drop(void *state)
{
    unix_client *c = state;
    asyncio_unix_connect_drop(&c->conn);
    asyncio_unix_stream_close(&c->s);
    if (c->server != NULL)
        asyncio_join_handle_drop(c->server);
}

static int scenario_unix_echo(void)
{
    static const asyncio_task_vtable vt = {unix_client_poll, unix_client_drop, NULL,
                                           sizeof(unix_client), 0};
    unix_client init;
    memset(&init, 0, sizeof init);
    asyncio_unix_stream_init_closed(&init.s);
    asyncio_sockaddr none;
    memset(&none, 0, sizeof none);
    asyncio_unix_connect_init(&init.conn, &none);
    int rc = alloc_sweep_block_on(&vt, &init);
    unlink(g_unix_path);
    return rc;
}

static void test_faults_unix_echo_survives_every_failed_allocation(void **state)
{
    (void)state;
    snprintf(g_unix_path, sizeof g_unix_path, "/tmp/asyncio-faults-%ld.sock", (long)getpid());
    alloc_sweep_scenario s = {"unix_echo", scenario_unix_echo, k_stream_peer_errors};
    assert_true(alloc_sweep_run(&s) > 0);
}

/* ------------------------------------------------------------------------ */
/* bufio + copy over socket pairs: lines written through a buffered writer   */
/* into pair A, copied A -> B by a copy task, read back as lines from B.      */

typedef struct copier {
    asyncio_coro co;
    asyncio_unix_stream from, to;
    asyncio_copy copy;
} copier;

static int copier_poll(void *state, asyncio_context *cx, void *out)
{
    copier *c = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(c->co);
    asyncio_copy_init(&c->copy, asyncio_unix_stream_reader(&c->from),
                      asyncio_unix_stream_writer(&c->to));
    ASYNCIO_AWAIT_OK(c->co, rc, asyncio_copy_poll(&c->copy, cx));
    ASYNCIO_AWAIT_OK(c->co, rc, asyncio_unix_stream_poll_shutdown(&c->to, cx));
    ASYNCIO_END(c->co);
    return 0;
}

static void copier_drop(void *state)
{
    copier *c = state;
    if (c->co.resume != 0)
        asyncio_copy_drop(&c->copy);
    asyncio_unix_stream_close(&c->from);
    asyncio_unix_stream_close(&c->to);
}

static const asyncio_task_vtable copier_vt = {copier_poll, copier_drop, NULL, sizeof(copier), 0};

typedef struct lines_main {
    asyncio_coro co;
    asyncio_unix_stream a_w, b_r; /* we write into a_w, read from b_r */
    asyncio_join_handle *copier;
    asyncio_buf_writer bw;
    asyncio_buf_reader br;
    bool bw_init, br_init;
    const char *line;
    size_t len, n;
    int i;
} lines_main;

static int lines_start(lines_main *m)
{
    copier init;
    memset(&init, 0, sizeof init);
    asyncio_unix_stream_init_closed(&init.from);
    asyncio_unix_stream_init_closed(&init.to);
    int rc = asyncio_unix_stream_pair(&m->a_w, &init.from);
    if (rc != 0)
        return rc;
    rc = asyncio_unix_stream_pair(&init.to, &m->b_r);
    if (rc != 0) {
        asyncio_unix_stream_close(&init.from);
        return rc;
    }
    rc = asyncio_spawn(asyncio_runtime_current(), &copier_vt, &init, &m->copier);
    if (rc != 0) {
        asyncio_unix_stream_close(&init.from);
        asyncio_unix_stream_close(&init.to);
        return rc;
    }
    rc = asyncio_buf_writer_init(&m->bw, asyncio_unix_stream_writer(&m->a_w), NULL, 16);
    if (rc != 0)
        return rc;
    m->bw_init = true;
    rc = asyncio_buf_reader_init(&m->br, asyncio_unix_stream_reader(&m->b_r), NULL, 32);
    m->br_init = rc == 0;
    return rc;
}

static int lines_poll(void *state, asyncio_context *cx, void *out)
{
    lines_main *m = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(m->co);
    rc = lines_start(m);
    if (rc != 0)
        return rc;
    for (m->i = 0; m->i < MSG_COUNT; m->i++) {
        ASYNCIO_AWAIT_OK(m->co, rc,
                         asyncio_buf_writer_poll_write(&m->bw, cx, k_msg[m->i],
                                                       strlen(k_msg[m->i]), &m->n));
        SWEEP_EXPECT_EQ(m->n, strlen(k_msg[m->i])); /* the buffer grows by whole writes */
        ASYNCIO_AWAIT_OK(m->co, rc, asyncio_buf_writer_poll_write(&m->bw, cx, "\n", 1, &m->n));
    }
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_buf_writer_poll_shutdown(&m->bw, cx));
    for (m->i = 0; m->i < MSG_COUNT; m->i++) {
        ASYNCIO_AWAIT_OK(m->co, rc,
                         asyncio_buf_reader_poll_read_line(&m->br, cx, 0, &m->line, &m->len));
        SWEEP_EXPECT_EQ(m->len, strlen(k_msg[m->i]) + 1);
        SWEEP_EXPECT_MEM(m->line, k_msg[m->i], m->len - 1);
    }
    ASYNCIO_AWAIT(m->co, rc, asyncio_join_handle_poll(m->copier, cx, NULL));
    ASYNCIO_END(m->co);
    return rc;
}

static void lines_drop(void *state)
{
    lines_main *m = state;
    if (m->bw_init) {
        asyncio_buf_writer_discard(&m->bw); /* unflushed bytes make _free refuse (EBUSY) */
        SWEEP_EXPECT_EQ(asyncio_buf_writer_free(&m->bw), 0);
    }
    if (m->br_init)
        asyncio_buf_reader_free(&m->br);
    asyncio_unix_stream_close(&m->a_w);
    asyncio_unix_stream_close(&m->b_r);
    if (m->copier != NULL)
        asyncio_join_handle_drop(m->copier);
}

static int scenario_bufio_copy(void)
{
    static const asyncio_task_vtable vt = {lines_poll, lines_drop, NULL, sizeof(lines_main), 0};
    lines_main init;
    memset(&init, 0, sizeof init);
    asyncio_unix_stream_init_closed(&init.a_w);
    asyncio_unix_stream_init_closed(&init.b_r);
    return alloc_sweep_block_on(&vt, &init);
}

static void test_faults_bufio_and_copy_survive_every_failed_allocation(void **state)
{
    (void)state;
    alloc_sweep_scenario s = {"bufio_copy", scenario_bufio_copy, k_stream_peer_errors};
    assert_true(alloc_sweep_run(&s) > 0);
}

/* ------------------------------------------------------------------------ */
/* fs: create a directory, write a file in it, read it back whole and through */
/* an opened file, stat it, list the directory, rename the file, remove both. */

static char g_fs_dir[64], g_fs_path[80], g_fs_path2[80];

typedef struct fs_main {
    asyncio_coro co;
    asyncio_fs_op op;
    bool op_init, rd_init;
    asyncio_file *file;
    asyncio_read_dir rd;
    asyncio_dir_entry entry;
    void *data;
    size_t len;
    char buf[32];
    int entries;
} fs_main;

/* Call with the init's result: the op needs a drop from here on, even if init failed. */
static int fs_step(fs_main *m, int init_rc)
{
    m->op_init = true;
    return init_rc;
}

static void fs_done(fs_main *m)
{
    asyncio_fs_op_drop(&m->op);
    m->op_init = false;
}

static int fs_poll(void *state, asyncio_context *cx, void *out)
{
    fs_main *m = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(m->co);
    rc = fs_step(m, asyncio_fs_create_dir_all_init(&m->op, g_fs_dir, 0700));
    if (rc != 0)
        return rc;
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_fs_op_poll(&m->op, cx));
    fs_done(m);
    rc = fs_step(m, asyncio_fs_write_file_init(&m->op, g_fs_path, k_msg[1], strlen(k_msg[1])));
    if (rc != 0)
        return rc;
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_fs_op_poll(&m->op, cx));
    fs_done(m);
    rc = fs_step(m, asyncio_fs_read_file_init(&m->op, g_fs_path, 1024));
    if (rc != 0)
        return rc;
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_fs_op_poll(&m->op, cx));
    SWEEP_EXPECT_EQ(asyncio_fs_op_take_data(&m->op, &m->data, &m->len), 0);
    SWEEP_EXPECT_EQ(m->len, strlen(k_msg[1]));
    SWEEP_EXPECT_MEM(m->data, k_msg[1], m->len);
    asyncio_fs_free_data(m->data);
    m->data = NULL;
    fs_done(m);
    {
        asyncio_open_options o = {ASYNCIO_OPEN_READ, 0};
        rc = fs_step(m, asyncio_fs_open_init(&m->op, g_fs_path, &o));
    }
    if (rc != 0)
        return rc;
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_fs_op_poll(&m->op, cx));
    rc = asyncio_fs_op_take_file(&m->op, &m->file); /* allocates the file: may fail */
    fs_done(m);                                    /* closes the fd if it was not taken */
    if (rc != 0)
        return rc;
    ASYNCIO_AWAIT_OK(m->co, rc,
                     asyncio_file_poll_read(m->file, cx, m->buf, sizeof m->buf, &m->len));
    SWEEP_EXPECT_EQ(m->len, strlen(k_msg[1])); /* a regular file reads whole */
    SWEEP_EXPECT_MEM(m->buf, k_msg[1], m->len);
    rc = asyncio_file_close(m->file);
    m->file = NULL;
    if (rc != 0)
        return rc;
    rc = fs_step(m, asyncio_fs_metadata_init(&m->op, g_fs_path, true));
    if (rc != 0)
        return rc;
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_fs_op_poll(&m->op, cx));
    fs_done(m);
    m->rd_init = true;
    rc = asyncio_read_dir_init(&m->rd, g_fs_dir);
    if (rc != 0)
        return rc;
    for (;;) {
        ASYNCIO_AWAIT_OK(m->co, rc, asyncio_read_dir_poll_next(&m->rd, cx, &m->entry));
        if (m->entry.name == NULL)
            break;
        SWEEP_EXPECT_EQ(strcmp(m->entry.name, "a"), 0);
        m->entries++;
    }
    SWEEP_EXPECT_EQ(m->entries, 1);
    asyncio_read_dir_drop(&m->rd);
    m->rd_init = false;
    rc = fs_step(m, asyncio_fs_rename_init(&m->op, g_fs_path, g_fs_path2));
    if (rc != 0)
        return rc;
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_fs_op_poll(&m->op, cx));
    fs_done(m);
    rc = fs_step(m, asyncio_fs_remove_init(&m->op, g_fs_path2));
    if (rc != 0)
        return rc;
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_fs_op_poll(&m->op, cx));
    fs_done(m);
    rc = fs_step(m, asyncio_fs_remove_init(&m->op, g_fs_dir));
    if (rc != 0)
        return rc;
    ASYNCIO_AWAIT_OK(m->co, rc, asyncio_fs_op_poll(&m->op, cx));
    ASYNCIO_END(m->co);
    return 0;
}

static void fs_drop(void *state)
{
    fs_main *m = state;
    if (m->op_init)
        asyncio_fs_op_drop(&m->op);
    if (m->rd_init)
        asyncio_read_dir_drop(&m->rd);
    if (m->file != NULL)
        asyncio_file_close(m->file);
    asyncio_fs_free_data(m->data);
}

static int scenario_fs_ops(void)
{
    static const asyncio_task_vtable vt = {fs_poll, fs_drop, NULL, sizeof(fs_main), 0};
    fs_main init;
    memset(&init, 0, sizeof init);
    int rc = alloc_sweep_block_on(&vt, &init);
    unlink(g_fs_path);
    unlink(g_fs_path2);
    rmdir(g_fs_dir);
    return rc;
}

static void test_faults_fs_ops_survive_every_failed_allocation(void **state)
{
    (void)state;
    snprintf(g_fs_dir, sizeof g_fs_dir, "/tmp/asyncio-faults-%ld.d", (long)getpid());
    snprintf(g_fs_path, sizeof g_fs_path, "%s/a", g_fs_dir);
    snprintf(g_fs_path2, sizeof g_fs_path2, "%s/b", g_fs_dir);
    alloc_sweep_scenario s = {"fs_ops", scenario_fs_ops, NULL};
    assert_true(alloc_sweep_run(&s) > 0);
}

/* ------------------------------------------------------------------------ */
/* Many TCP connections at once: 34 client tasks (a JoinSet) against a server */
/* that spawns one echo handler per accepted connection (another JoinSet).    */
/* More than 32 live registrations grow the I/O slab by a page, and 64+ fds   */
/* grow the poll backend's tables: allocations in the middle of the run.      */

#define MANY 34 /* > 32 registrations per side: a second slab page; > 64 fds: poll tables grow */

typedef struct echo_handler {
    asyncio_coro co;
    asyncio_tcp_stream s;
    char buf[64];
    size_t len, off, n;
} echo_handler;

static int echo_handler_poll(void *state, asyncio_context *cx, void *out)
{
    echo_handler *h = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(h->co);
    for (;;) {
        ASYNCIO_AWAIT_OK(h->co, rc,
                         asyncio_tcp_stream_poll_read(&h->s, cx, h->buf, sizeof h->buf, &h->len));
        if (h->len == 0)
            break;
        for (h->off = 0; h->off < h->len; h->off += h->n)
            ASYNCIO_AWAIT_OK(h->co, rc,
                             asyncio_tcp_stream_poll_write(&h->s, cx, h->buf + h->off,
                                                           h->len - h->off, &h->n));
    }
    ASYNCIO_END(h->co);
    return 0;
}

static void echo_handler_drop(void *state)
{
    echo_handler *h = state;
    asyncio_tcp_stream_close(&h->s);
}

static const asyncio_task_vtable echo_handler_vt = {echo_handler_poll, echo_handler_drop, NULL,
                                                    sizeof(echo_handler), 0};

typedef struct many_server {
    asyncio_coro co;
    asyncio_tcp_listener *l;
    asyncio_join_set *handlers;
    echo_handler h;
    int accepted, result;
} many_server;

static int many_server_poll(void *state, asyncio_context *cx, void *out)
{
    many_server *m = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(m->co);
    for (m->accepted = 0; m->accepted < MANY; m->accepted++) {
        memset(&m->h, 0, sizeof m->h);
        asyncio_tcp_stream_init_closed(&m->h.s);
        ASYNCIO_AWAIT(m->co, rc, asyncio_tcp_listener_poll_accept(m->l, cx, &m->h.s, NULL));
        if (rc == ASYNCIO_ENOMEM) { /* that connection was closed: its client sees EOF */
            alloc_sweep_note(rc);
            continue;
        }
        if (rc != 0)
            return rc;
        rc = asyncio_join_set_spawn(m->handlers, asyncio_runtime_current(), &echo_handler_vt,
                                    &m->h, NULL, NULL);
        if (rc != 0) {
            asyncio_tcp_stream_close(&m->h.s);
            alloc_sweep_note(rc);
        }
    }
    for (;;) {
        ASYNCIO_AWAIT(m->co, rc,
                      asyncio_join_set_poll_join_next(m->handlers, cx, &m->result, NULL, NULL));
        if (rc == ASYNCIO_ENOENT)
            break;
        alloc_sweep_note(m->result);
    }
    ASYNCIO_END(m->co);
    return 0;
}

static void many_server_drop(void *state)
{
    many_server *m = state;
    asyncio_tcp_listener_close(m->l);
    asyncio_join_set_free(m->handlers);
}

static const asyncio_task_vtable many_server_vt = {many_server_poll, many_server_drop, NULL,
                                                   sizeof(many_server), 0};

typedef struct many_client {
    asyncio_coro co;
    asyncio_sockaddr addr;
    asyncio_tcp_connect conn;
    asyncio_tcp_stream s;
    asyncio_write_all wa;
    asyncio_read_exact re;
    char back[24];
    int i;
} many_client;

static int many_client_poll(void *state, asyncio_context *cx, void *out)
{
    many_client *c = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(c->co);
    asyncio_tcp_connect_init(&c->conn, &c->addr);
    ASYNCIO_AWAIT_OK(c->co, rc, asyncio_tcp_connect_poll(&c->conn, cx, &c->s));
    asyncio_write_all_init(&c->wa, asyncio_tcp_stream_writer(&c->s), k_msg[c->i % MSG_COUNT],
                           strlen(k_msg[c->i % MSG_COUNT]));
    ASYNCIO_AWAIT_OK(c->co, rc, asyncio_write_all_poll(&c->wa, cx));
    asyncio_read_exact_init(&c->re, asyncio_tcp_stream_reader(&c->s), c->back,
                            strlen(k_msg[c->i % MSG_COUNT]));
    ASYNCIO_AWAIT_OK(c->co, rc, asyncio_read_exact_poll(&c->re, cx));
    SWEEP_EXPECT_MEM(c->back, k_msg[c->i % MSG_COUNT], strlen(k_msg[c->i % MSG_COUNT]));
    ASYNCIO_AWAIT_OK(c->co, rc, asyncio_tcp_stream_poll_shutdown(&c->s, cx));
    ASYNCIO_END(c->co);
    return 0;
}

static void many_client_drop(void *state)
{
    many_client *c = state;
    if (c->co.resume != 0)
        asyncio_tcp_connect_drop(&c->conn);
    asyncio_tcp_stream_close(&c->s);
}

static const asyncio_task_vtable many_client_vt = {many_client_poll, many_client_drop, NULL,
                                                   sizeof(many_client), 0};

typedef struct many_main {
    asyncio_coro co;
    asyncio_join_set *clients;
    asyncio_join_handle *server;
    int i, result;
} many_main;

static int many_start(many_main *m)
{
    asyncio_sockaddr any, addr;
    many_server srv;
    memset(&srv, 0, sizeof srv);
    int rc = asyncio_addr_parse("127.0.0.1:0", &any);
    if (rc == 0)
        rc = asyncio_join_set_new(&m->clients);
    if (rc == 0)
        rc = asyncio_join_set_new(&srv.handlers);
    if (rc == 0)
        rc = asyncio_tcp_listener_bind(&srv.l, &any, NULL);
    if (rc == 0)
        rc = asyncio_tcp_listener_local_addr(srv.l, &addr);
    if (rc == 0)
        rc = asyncio_spawn(asyncio_runtime_current(), &many_server_vt, &srv, &m->server);
    if (rc != 0) {
        asyncio_tcp_listener_close(srv.l);
        asyncio_join_set_free(srv.handlers);
        return rc;
    }
    for (int i = 0; i < MANY; i++) {
        many_client c;
        memset(&c, 0, sizeof c);
        c.addr = addr;
        c.i = i;
        asyncio_tcp_stream_init_closed(&c.s);
        rc = asyncio_join_set_spawn(m->clients, asyncio_runtime_current(), &many_client_vt, &c,
                                    NULL, NULL);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int many_main_poll(void *state, asyncio_context *cx, void *out)
{
    many_main *m = state;
    int rc = 0;
    (void)out;
    ASYNCIO_BEGIN(m->co);
    rc = many_start(m);
    alloc_sweep_note(rc);
    for (;;) {
        if (m->clients == NULL)
            break;
        ASYNCIO_AWAIT(m->co, rc,
                      asyncio_join_set_poll_join_next(m->clients, cx, &m->result, NULL, NULL));
        if (rc == ASYNCIO_ENOENT)
            break;
        alloc_sweep_note(m->result);
    }
    rc = 0;
    /* A client whose connect failed never reaches the server: stop it waiting. */
    if (m->server != NULL && alloc_sweep_noted() != 0)
        asyncio_join_handle_abort(m->server);
    if (m->server != NULL)
        ASYNCIO_AWAIT(m->co, rc, asyncio_join_handle_poll(m->server, cx, NULL));
    ASYNCIO_END(m->co);
    return rc == ASYNCIO_ECANCELED ? 0 : rc;
}

static void many_main_drop(void *state)
{
    many_main *m = state;
    asyncio_join_set_free(m->clients);
    if (m->server != NULL)
        asyncio_join_handle_drop(m->server);
}

static int scenario_tcp_many(void)
{
    static const asyncio_task_vtable vt = {many_main_poll, many_main_drop, NULL,
                                           sizeof(many_main), 0};
    return alloc_sweep_block_on(&vt, NULL);
}

static void test_faults_tcp_many_connections_survive_every_failed_allocation(void **state)
{
    (void)state;
    support_raise_nofile();
    alloc_sweep_scenario s = {"tcp_many", scenario_tcp_many, k_stream_peer_errors};
    assert_true(alloc_sweep_run(&s) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faults_tcp_echo_survives_every_failed_allocation),
        cmocka_unit_test(test_faults_tcp_connect_by_name_survives_every_failed_allocation),
        cmocka_unit_test(test_faults_tcp_connect_by_literal_host_survives_every_failed_allocation),
        cmocka_unit_test(test_faults_async_fd_and_user_source_survive_every_failed_allocation),
        cmocka_unit_test(test_faults_udp_echo_survives_every_failed_allocation),
        cmocka_unit_test(test_faults_unix_echo_survives_every_failed_allocation),
        cmocka_unit_test(test_faults_bufio_and_copy_survive_every_failed_allocation),
        cmocka_unit_test(test_faults_fs_ops_survive_every_failed_allocation),
        cmocka_unit_test(test_faults_tcp_many_connections_survive_every_failed_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
