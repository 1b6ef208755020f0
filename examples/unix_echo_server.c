/*
 * unix_echo_server: an echo server on a Unix stream socket.
 *
 *   unix_echo_server --path PATH
 *
 * PATH is a file system path, or "@name" for a Linux abstract name (no
 * file). Prints "listening on PATH" once ready. Each connection is one
 * asyncio_copy from the stream to itself (spliced in the kernel: the bytes
 * never enter user space), then a half-close once the client finished.
 * SIGINT / SIGTERM: stop, close everything, remove the socket file, exit 0.
 *
 * Stale socket files (docs/net.md): a server that died leaves its socket
 * file behind, and binding there fails with EADDRINUSE. Before binding we
 * connect to the path: ECONNREFUSED means nobody listens, so the file is
 * stale and bind may remove it (`unlink_existing`, which removes only
 * sockets). A live server at PATH is left alone: we exit 1. On exit the
 * file is removed only if it is still the one we created (same inode).
 */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static const char USAGE[] = "usage: unix_echo_server --path PATH\n"
                            "  --path PATH   socket path, or @name for an abstract socket\n"
                            "Prints 'listening on PATH' once ready; SIGINT / SIGTERM stop it and\n"
                            "remove the socket file.\n";

/* ---- one connection: echo = copy the stream into itself ---------------------- */

typedef struct conn {
    asyncio_unix_stream s;
    bool started;
    asyncio_copy echo; /* s's reader -> s's writer, set up in the task (it points at s) */
} conn;

static int conn_poll(void *state, asyncio_context *cx, void *output)
{
    conn *c = state;
    (void)output;
    if (!c->started) {
        asyncio_copy_init(&c->echo, asyncio_unix_stream_reader(&c->s),
                          asyncio_unix_stream_writer(&c->s));
        c->started = true;
    }
    int rc = asyncio_copy_poll(&c->echo, cx);
    if (rc != 0)
        return rc; /* ASYNCIO_PENDING, or the peer went away */
    return asyncio_unix_stream_poll_shutdown(&c->s, cx); /* EOF in, EOF out */
}

static void conn_drop(void *state)
{
    conn *c = state;
    if (c->started)
        asyncio_copy_drop(&c->echo);
    asyncio_unix_stream_close(&c->s);
}

static const asyncio_task_vtable conn_vt = {conn_poll, conn_drop, NULL, sizeof(conn), 0};

/* ---- the socket file ------------------------------------------------------------ */

static bool is_path(const asyncio_sockaddr *a)
{
    return a->u.un.sun_path[0] != '\0'; /* abstract names start with a NUL byte */
}

/* A socket file at the path that refuses connections: a dead server's. */
static bool socket_file_is_stale(const asyncio_sockaddr *a)
{
    struct stat st;
    if (!is_path(a) || lstat(a->u.un.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return false;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0); /* closed at once: no CLOEXEC needed */
    if (fd < 0)
        return false;
    bool stale = connect(fd, &a->u.sa, a->len) < 0 && errno == ECONNREFUSED;
    close(fd);
    return stale;
}

/* ---- the accept loop -------------------------------------------------------------- */

typedef struct server {
    asyncio_sockaddr addr;
    bool stale;                      /* a dead server's socket file is in the way */
    asyncio_unix_listener *listener; /* NULL until the first poll */
    asyncio_signal stop;
    struct stat made; /* the socket file we created (removed on exit if unchanged) */
} server;

static int server_start(server *sv)
{
    asyncio_unix_bind_options opts = {.unlink_existing = sv->stale};
    int rc = example_stop_init(&sv->stop);
    if (rc == 0)
        rc = asyncio_unix_listener_bind(&sv->listener, &sv->addr, &opts);
    if (rc == ASYNCIO_EADDRINUSE)
        fprintf(stderr, "unix_echo_server: another server is listening there\n");
    if (rc == 0 && is_path(&sv->addr) && lstat(sv->addr.u.un.sun_path, &sv->made) < 0)
        sv->made.st_ino = 0;
    return example_announce("unix_echo_server", rc, &sv->addr);
}

static int server_poll(void *state, asyncio_context *cx, void *output)
{
    server *sv = state;
    (void)output;
    if (sv->listener == NULL) {
        int rc = server_start(sv);
        if (rc < 0)
            return rc;
    }
    if (example_stop_requested(&sv->stop, cx))
        return 0;
    for (;;) {
        conn c = {.started = false};
        int rc = asyncio_unix_listener_poll_accept(sv->listener, cx, &c.s, NULL);
        if (rc == ASYNCIO_ENOMEM)
            continue; /* that connection could not be registered and was closed */
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc < 0) {
            fprintf(stderr, "unix_echo_server: accept: %s\n", asyncio_strerror(rc));
            return rc;
        }
        if (asyncio_spawn(asyncio_runtime_current(), &conn_vt, &c, NULL) < 0)
            asyncio_unix_stream_close(&c.s);
    }
}

static void server_drop(void *state)
{
    server *sv = state;
    if (sv->listener != NULL && is_path(&sv->addr)) {
        struct stat st; /* remove the file only if it is still ours */
        const char *p = sv->addr.u.un.sun_path;
        if (lstat(p, &st) == 0 && st.st_dev == sv->made.st_dev && st.st_ino == sv->made.st_ino)
            unlink(p);
    }
    asyncio_unix_listener_close(sv->listener);
    asyncio_signal_drop(&sv->stop);
}

static const asyncio_task_vtable server_vt = {server_poll, server_drop, NULL, sizeof(server), 0};

int main(int argc, char **argv)
{
    const char *path = NULL;
    const example_flag flags[] = {{"--path", EXAMPLE_FLAG_STR, &path, 0}};
    bool done;
    int code = example_parse_flags(argc, argv, flags, 1, USAGE, &done);
    if (done)
        return code;
    server sv = {.listener = NULL};
    int rc = path != NULL ? asyncio_addr_unix(path, &sv.addr) : ASYNCIO_EINVAL;
    if (rc < 0) {
        fprintf(stderr, "unix_echo_server: --path: %s\n%s", asyncio_strerror(rc), USAGE);
        return 2;
    }
    sv.stale = socket_file_is_stale(&sv.addr);
    return example_run("unix_echo_server", 0, &server_vt, &sv);
}
