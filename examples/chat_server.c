/*
 * chat_server: a multi-room line chat, the program docs/tutorial.md builds
 * step by step.
 *
 *   chat_server [--host IP] [--port P] [--threads N] [--idle-timeout-ms MS]
 *               [--grace-ms MS] [--room-capacity N]
 *
 * Prints "listening on <ip>:<port>" once ready. Clients speak lines (telnet,
 * nc): "/nick NAME", "/join ROOM", "/quit", anything else is a message to
 * everyone in the client's room (the sender included), delivered as
 * "NAME: text". Lines from the server about the connection start with "* ".
 * A client that sends nothing for --idle-timeout-ms (0: never) is told so
 * and disconnected. SIGINT / SIGTERM: stop accepting, tell every client
 * "* server shutting down", give them --grace-ms to finish, abort the rest,
 * exit 0.
 *
 * The pieces (each a section below): the room table (one broadcast channel
 * per room), a task per client written with the await macros (a select over
 * "a line from the client", "the server is stopping" and "a message in my
 * room", under an idle deadline), and the accept loop with the graceful
 * shutdown (a cancellation token and a JoinSet).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

static const char USAGE[] =
    "usage: chat_server [--host IP] [--port P] [--threads N] [--idle-timeout-ms MS]\n"
    "                   [--grace-ms MS] [--room-capacity N]\n"
    "  --host IP     address to listen on (default 127.0.0.1; IPv6 as ::1)\n"
    "  --port P      port (default 8080; 0 = any free port)\n"
    "  --threads N   0 = current-thread runtime; N > 0 = N worker threads\n"
    "                (default: the number of CPUs)\n"
    "  --idle-timeout-ms MS\n"
    "                disconnect a client that sends nothing for MS ms\n"
    "                (default 300000; 0 = never)\n"
    "  --grace-ms MS on shutdown, how long clients get to finish (default 5000)\n"
    "  --room-capacity N\n"
    "                messages a room keeps for slow readers (default 256)\n"
    "Prints 'listening on <ip>:<port>' once ready; SIGINT / SIGTERM shut it down.\n";

#define CHAT_LINE_MAX 512 /* the longest line a client may send, "\n" included */
#define NICK_MAX      32
#define ROOM_NAME_MAX 32
#define MAX_ROOMS     64
#define OUT_MAX       (NICK_MAX + CHAT_LINE_MAX + 64)

/* ---- rooms: one broadcast channel each ------------------------------------------ */

/* What a room's channel carries: one finished line, "NAME: text\n". */
typedef struct chat_msg {
    uint32_t len;
    char text[NICK_MAX + 2 + CHAT_LINE_MAX];
} chat_msg;

typedef struct room {
    char name[ROOM_NAME_MAX + 1];
    asyncio_broadcast_sender *tx; /* the room table's sender: the room lives until exit */
} room;

/* Shared by every task; lives in main()'s frame, so it outlives the runtime. */
typedef struct chat_server {
    pthread_mutex_t lock; /* guards rooms[] and n_rooms */
    room rooms[MAX_ROOMS];
    size_t n_rooms;
    size_t room_capacity;
    uint64_t idle_ms; /* 0: never */
    uint64_t grace_ms;
} chat_server;

/*
 * Joins the room called name[0..len), creating it on first use: *rx
 * receives a new receiver that sees every message sent from now on.
 */
static int room_join(chat_server *sv, const char *name, size_t len, room **out,
                     asyncio_broadcast_receiver **rx)
{
    int rc = ASYNCIO_ENOSPC;
    pthread_mutex_lock(&sv->lock);
    size_t i = 0;
    while (i < sv->n_rooms &&
           !(strlen(sv->rooms[i].name) == len && memcmp(sv->rooms[i].name, name, len) == 0))
        i++;
    if (i < sv->n_rooms) {
        rc = asyncio_broadcast_subscribe(sv->rooms[i].tx, rx);
    } else if (i < MAX_ROOMS) {
        rc = asyncio_broadcast_channel(&sv->rooms[i].tx, rx, sizeof(chat_msg), sv->room_capacity);
        if (rc == 0) {
            memcpy(sv->rooms[i].name, name, len);
            sv->rooms[i].name[len] = '\0';
            sv->n_rooms++;
        }
    }
    if (rc == 0)
        *out = &sv->rooms[i];
    pthread_mutex_unlock(&sv->lock);
    return rc;
}

static void rooms_free(chat_server *sv)
{
    for (size_t i = 0; i < sv->n_rooms; i++)
        asyncio_broadcast_sender_drop(sv->rooms[i].tx);
    sv->n_rooms = 0;
}

/* ---- reading a line: the buffered reader as a future ---------------------------- */

/* The next line of a client, as a future. Cancel-safe: a dropped read keeps its bytes. */
typedef struct line_read {
    asyncio_buf_reader *br;
    const char *line; /* the line, "\n" included; a view valid until the next read */
    size_t len;       /* 0: end of stream */
} line_read;

static int line_read_poll(void *state, asyncio_context *cx, void *out)
{
    line_read *l = state;
    (void)out;
    return asyncio_buf_reader_poll_read_line(l->br, cx, CHAT_LINE_MAX, &l->line, &l->len);
}

static const asyncio_future_vtable line_read_vt = {line_read_poll, NULL};

/* ---- a client ---------------------------------------------------------------------- */

typedef struct client {
    asyncio_coro co; /* where client_poll resumes (await.h) */
    chat_server *sv;
    asyncio_tcp_stream s;
    asyncio_buf_reader br;
    char rbuf[CHAT_LINE_MAX];
    asyncio_cancel_token *stop; /* a clone of the server's token */
    char nick[NICK_MAX + 1];
    room *room;                     /* NULL until the first /join */
    asyncio_broadcast_receiver *rx; /* room's receiver */
    uint64_t last_input_ms;         /* the idle deadline counts from here */
    bool started;                   /* br was initialised */
    /* one turn: whichever comes first, under the idle deadline */
    line_read lr;
    asyncio_cancelled stopping;
    asyncio_broadcast_recv recv;
    chat_msg msg;
    asyncio_future f[3];
    asyncio_select sel;
    size_t winner;
    asyncio_timeout turn;
    bool in_turn; /* turn holds a select: drop it with the task */
    /* what goes back to the client */
    char out[OUT_MAX];
    size_t out_len;
    asyncio_write_all wa;
    bool quit;
} client;

enum { EV_LINE, EV_STOP, EV_ROOM }; /* the select's children, in polling order */

/* Appends a formatted line to the client's output. */
static void say(client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->out + c->out_len, sizeof c->out - c->out_len, fmt, ap);
    va_end(ap);
    size_t space = sizeof c->out - c->out_len; /* a longer line is cut, never overrun */
    if (n > 0)
        c->out_len += (size_t)n < space ? (size_t)n : space - 1;
}

/* Starts one turn: a select over the line, the stop token and the room, with a deadline. */
static int turn_start(client *c)
{
    asyncio_cancelled_init(&c->stopping, c->stop); /* the last turn's select dropped it */
    c->f[EV_LINE] = asyncio_future_make(&line_read_vt, &c->lr, NULL);
    c->f[EV_STOP] = asyncio_cancelled_future(&c->stopping);
    c->f[EV_ROOM] = asyncio_broadcast_recv_future(&c->recv, &c->msg);
    int rc = asyncio_select_init(&c->sel, c->f, c->room != NULL ? 3 : 2);
    if (rc < 0)
        return rc; /* the children were dropped; nothing to undo */
    uint64_t deadline = c->sv->idle_ms ? c->last_input_ms + c->sv->idle_ms : UINT64_MAX;
    asyncio_timeout_at_init(&c->turn, asyncio_select_future(&c->sel, &c->winner), deadline);
    c->in_turn = true;
    return 0;
}

/* Leaves the current room, if any. */
static void room_leave(client *c)
{
    if (c->rx == NULL)
        return;
    asyncio_broadcast_recv_drop(&c->recv);
    asyncio_broadcast_receiver_drop(c->rx);
    c->rx = NULL;
    c->room = NULL;
}

/* "/join ROOM": switch rooms. */
static void cmd_join(client *c, const char *name, size_t len)
{
    room *r = NULL;
    asyncio_broadcast_receiver *rx = NULL;
    if (len == 0 || len > ROOM_NAME_MAX) {
        say(c, "* room names have 1 to %d characters\n", ROOM_NAME_MAX);
        return;
    }
    int rc = room_join(c->sv, name, len, &r, &rx);
    if (rc < 0) {
        say(c, "* cannot join: %s\n", asyncio_strerror(rc));
        return;
    }
    room_leave(c);
    c->room = r;
    c->rx = rx;
    asyncio_broadcast_recv_init(&c->recv, rx);
    say(c, "* joined %s\n", r->name);
}

/* "/nick NAME": rename. */
static void cmd_nick(client *c, const char *name, size_t len)
{
    if (len == 0 || len > NICK_MAX) {
        say(c, "* nicknames have 1 to %d characters\n", NICK_MAX);
        return;
    }
    memcpy(c->nick, name, len);
    c->nick[len] = '\0';
    say(c, "* you are %s\n", c->nick);
}

/* Anything else: a message to the room (the sender sees it too, in room order). */
static void cmd_say(client *c, const char *text, size_t len)
{
    if (c->room == NULL) {
        say(c, "* join a room first: /join ROOM\n");
        return;
    }
    chat_msg m;
    int n = snprintf(m.text, sizeof m.text, "%s: %.*s\n", c->nick, (int)len, text);
    m.len = (uint32_t)n;
    (void)asyncio_broadcast_send(c->room->tx, &m); /* cannot fail: we are a receiver */
}

/* One line from the client, without its "\n" / "\r\n". */
static void handle_line(client *c, const char *line, size_t len)
{
    if (len >= 6 && memcmp(line, "/join ", 6) == 0)
        cmd_join(c, line + 6, len - 6);
    else if (len >= 6 && memcmp(line, "/nick ", 6) == 0)
        cmd_nick(c, line + 6, len - 6);
    else if (len == 5 && memcmp(line, "/quit", 5) == 0) {
        say(c, "* bye\n");
        c->quit = true;
    } else
        cmd_say(c, line, len);
}

/* What ended the turn: a line, a room message, the stop token, or the idle deadline. */
static void turn_end(client *c, int rc)
{
    asyncio_timeout_drop(&c->turn); /* the select and its children are gone already */
    c->in_turn = false;
    if (rc == ASYNCIO_ETIMEDOUT) {
        say(c, "* idle for %" PRIu64 " ms, bye\n", c->sv->idle_ms);
        c->quit = true;
    } else if (c->winner == EV_STOP) {
        say(c, "* server shutting down, bye\n");
        c->quit = true;
    } else if (c->winner == EV_LINE) {
        c->quit = rc < 0 || c->lr.len == 0; /* an error, or the client hung up */
        if (c->quit && rc == ASYNCIO_EMSGSIZE)
            say(c, "* lines are at most %d bytes, bye\n", CHAT_LINE_MAX - 1);
        if (c->quit)
            return;
        c->last_input_ms = asyncio_time_now_ms();
        size_t len = c->lr.len; /* strip "\n" (the last line may lack it), then "\r" */
        len -= c->lr.line[len - 1] == '\n';
        len -= len > 0 && c->lr.line[len - 1] == '\r';
        handle_line(c, c->lr.line, len);
    } else if (rc == 0) { /* EV_ROOM: a message */
        memcpy(c->out, c->msg.text, c->msg.len);
        c->out_len = c->msg.len;
    } else if (rc == ASYNCIO_EOVERFLOW) {
        say(c, "* you missed %" PRIu64 " messages\n", asyncio_broadcast_receiver_lagged(c->rx));
    }
}

/* First poll: the state no longer moves, so pointers into it may be taken. */
static int client_start(client *c)
{
    int rc =
        asyncio_buf_reader_init(&c->br, asyncio_tcp_stream_reader(&c->s), c->rbuf, sizeof c->rbuf);
    if (rc < 0)
        return rc;
    c->lr.br = &c->br;
    c->started = true;
    snprintf(c->nick, sizeof c->nick, "guest%" PRIu64, asyncio_task_id());
    c->last_input_ms = asyncio_time_now_ms();
    say(c, "* welcome %s; /nick NAME, /join ROOM, /quit\n", c->nick);
    return 0;
}

static int client_poll(void *state, asyncio_context *cx, void *output)
{
    client *c = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(c->co);
    if ((rc = client_start(c)) < 0)
        return rc;
    while (!c->quit) {
        if (c->out_len > 0) { /* send what the last turn produced */
            asyncio_write_all_init(&c->wa, asyncio_tcp_stream_writer(&c->s), c->out, c->out_len);
            ASYNCIO_AWAIT_OK(c->co, rc, asyncio_write_all_poll(&c->wa, cx));
            c->out_len = 0;
        }
        if ((rc = turn_start(c)) < 0)
            return rc;
        ASYNCIO_AWAIT(c->co, rc, asyncio_timeout_poll(&c->turn, cx));
        turn_end(c, rc);
    }
    if (c->out_len > 0) { /* the goodbye line */
        asyncio_write_all_init(&c->wa, asyncio_tcp_stream_writer(&c->s), c->out, c->out_len);
        ASYNCIO_AWAIT_OK(c->co, rc, asyncio_write_all_poll(&c->wa, cx));
    }
    ASYNCIO_END(c->co);
    return 0;
}

static void client_drop(void *state)
{
    client *c = state;
    if (c->started) {
        if (c->in_turn)
            asyncio_timeout_drop(&c->turn); /* the select and its children */
        asyncio_buf_reader_free(&c->br);
    }
    room_leave(c);
    asyncio_cancel_token_drop(c->stop);
    asyncio_tcp_stream_close(&c->s);
}

static const asyncio_task_vtable client_vt = {client_poll, client_drop, NULL, sizeof(client), 0};

/* ---- the accept loop and graceful shutdown ---------------------------------------- */

typedef struct chat_main {
    asyncio_coro co;
    chat_server *sv;
    asyncio_sockaddr addr;
    asyncio_tcp_listener *listener;
    asyncio_signal signals;     /* SIGINT, SIGTERM */
    asyncio_cancel_token *stop; /* cancelled once: every client holds a clone */
    asyncio_join_set *clients;  /* every client task */
    asyncio_timeout drain;
    bool started, draining;
} chat_main;

static int main_start(chat_main *m)
{
    int rc = example_stop_init(&m->signals);
    m->started = rc == 0;
    if (rc == 0)
        rc = asyncio_join_set_new(&m->clients);
    if (rc == 0)
        rc = asyncio_cancel_token_new(&m->stop);
    if (rc == 0)
        rc = asyncio_tcp_listener_bind(&m->listener, &m->addr, NULL);
    if (rc == 0)
        rc = asyncio_tcp_listener_local_addr(m->listener, &m->addr); /* the real port */
    return example_announce("chat_server", rc, &m->addr);
}

/* A task for the new connection, in the JoinSet; it owns the stream from now on. */
static void spawn_client(chat_main *m, asyncio_tcp_stream *s)
{
    client init = {.co = ASYNCIO_CORO_INIT, .sv = m->sv, .s = *s};
    init.stop = asyncio_cancel_token_clone(m->stop);
    asyncio_spawn_options opts = {.name = "chat-client"};
    if (asyncio_join_set_spawn(m->clients, asyncio_runtime_current(), &client_vt, &init, &opts,
                               NULL) < 0) {
        asyncio_cancel_token_drop(init.stop);
        asyncio_tcp_stream_close(s); /* out of memory */
    }
}

/* Accepts until SIGINT / SIGTERM (then 0), collecting the clients that ended. */
static int serve(chat_main *m, asyncio_context *cx)
{
    if (example_stop_requested(&m->signals, cx))
        return 0;
    (void)asyncio_join_set_poll_drain(m->clients, cx); /* finished clients wake us */
    for (;;) {
        asyncio_tcp_stream s;
        int rc = asyncio_tcp_listener_poll_accept(m->listener, cx, &s, NULL);
        if (rc == ASYNCIO_ENOMEM)
            continue; /* that connection could not be registered and was closed */
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc < 0) {
            fprintf(stderr, "chat_server: accept: %s\n", asyncio_strerror(rc));
            return rc;
        }
        (void)asyncio_tcp_stream_set_nodelay(&s, true);
        spawn_client(m, &s);
    }
}

static int main_poll(void *state, asyncio_context *cx, void *output)
{
    chat_main *m = state;
    int rc;
    (void)output;
    ASYNCIO_BEGIN(m->co);
    if ((rc = main_start(m)) < 0)
        return rc;
    ASYNCIO_AWAIT_OK(m->co, rc, serve(m, cx));
    asyncio_tcp_listener_close(m->listener); /* 1. stop accepting */
    m->listener = NULL;
    asyncio_cancel_token_cancel(m->stop); /* 2. tell every client */
    asyncio_timeout_init_future(&m->drain, asyncio_join_set_drain_future(m->clients),
                                m->sv->grace_ms);
    m->draining = true; /* 3. let them finish, within grace_ms */
    ASYNCIO_AWAIT(m->co, rc, asyncio_timeout_poll(&m->drain, cx));
    m->draining = false;
    ASYNCIO_AWAIT(m->co, rc, asyncio_join_set_poll_shutdown(m->clients, cx)); /* 4. abort */
    ASYNCIO_END(m->co);
    return 0;
}

static void main_drop(void *state)
{
    chat_main *m = state;
    if (m->draining)
        asyncio_timeout_drop(&m->drain);
    asyncio_join_set_free(m->clients); /* aborts what is left (an error path) */
    asyncio_tcp_listener_close(m->listener);
    if (m->started)
        asyncio_signal_drop(&m->signals);
    asyncio_cancel_token_drop(m->stop);
}

static const asyncio_task_vtable main_vt = {main_poll, main_drop, NULL, sizeof(chat_main), 0};

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    unsigned long port = 8080, threads = example_cpus(), idle_ms = 300000, grace_ms = 5000,
                  capacity = 256;
    const example_flag flags[] = {
        {"--host", EXAMPLE_FLAG_STR, &host, 0},
        {"--port", EXAMPLE_FLAG_UINT, &port, 65535},
        {"--threads", EXAMPLE_FLAG_UINT, &threads, 1024},
        {"--idle-timeout-ms", EXAMPLE_FLAG_UINT, &idle_ms, 86400000},
        {"--grace-ms", EXAMPLE_FLAG_UINT, &grace_ms, 3600000},
        {"--room-capacity", EXAMPLE_FLAG_UINT, &capacity, 65536},
    };
    bool done;
    int code = example_parse_flags(argc, argv, flags, 6, USAGE, &done);
    if (done)
        return code;
    if (capacity == 0) {
        fprintf(stderr, "chat_server: --room-capacity must be at least 1\n%s", USAGE);
        return 2;
    }
    chat_server sv = {.room_capacity = capacity, .idle_ms = idle_ms, .grace_ms = grace_ms};
    pthread_mutex_init(&sv.lock, NULL);
    chat_main m = {.co = ASYNCIO_CORO_INIT, .sv = &sv};
    if (!example_ip_addr("chat_server", host, port, &m.addr))
        return 2;
    code = example_run("chat_server", threads, &main_vt, &m);
    rooms_free(&sv); /* every client is gone: the room table holds the last senders */
    pthread_mutex_destroy(&sv.lock);
    return code;
}
