/*
 * Completion-based operations of a poller backend (internal): what the
 * reactor's completion layer (src/reactor/comp.c) asks of a backend that
 * can run socket and file operations itself instead of reporting readiness
 * (or, for files, instead of the blocking pool). Today
 * only the io_uring backend has them (src/poller/uring_comp.c); every other
 * backend answers ASYNCIO_ENOTSUP to attach, and the runtime keeps its
 * readiness path (docs/backends.md, "Completion path").
 *
 * The protocol:
 *   - attach() gives the poller a handler and a token. A wait that took
 *     completions from the kernel keeps them and reports one event with
 *     `token` and readiness 0 (the runtime passes its unpark token); the
 *     waiter then calls deliver(), which hands each to the handler — after
 *     the wait, outside every poller lock, on the waiting thread, exactly
 *     where readiness events are dispatched.
 *   - submit() queues an operation; the owner's next wait submits it in the
 *     same system call as it waits. `op` is the caller's pointer (8-byte
 *     aligned; its low 3 bits are the caller's too) and comes back in each
 *     completion. Memory an operation uses (`buf`) must stay valid until its
 *     last completion (`more` false) has been handed over.
 *   - cancel() asks the kernel to end an operation; it still completes (with
 *     -ECANCELED, or its result if it finished first). Submitted at once.
 *   - Received bytes land in buffers the backend owns (a ring shared by all
 *     streams, so an idle stream holds none): a completion with `has_buf`
 *     names buffer `bid`, which the caller reads with buffer() and gives back
 *     with recycle() (any thread).
 *
 * Thread-safety: submit, cancel, buffer and recycle from any thread; attach
 * and detach by the poller's owner with no wait running.
 */
#ifndef ASYNCIO_POLLER_COMPLETION_H
#define ASYNCIO_POLLER_COMPLETION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asyncio/fs.h"
#include "asyncio/poll.h"

/* One completed operation (or one result of a multishot one). */
typedef struct asyncio__completion {
    void *op;    /* as given to submit() */
    int32_t res; /* >= 0: bytes (or the result); < 0: an ASYNCIO_ error code (the kernel's -errno on
                    Linux) */
    uint16_t bid; /* the buffer holding the bytes, when has_buf */
    bool has_buf;
    bool more; /* more completions will follow for this operation */
} asyncio__completion;

typedef void (*asyncio__completion_fn)(void *ctx, const asyncio__completion *c);

/*
 * Operation kinds. The stream kinds may be multishot and use the shared
 * buffers; the generic kinds (READ onwards: the file, path and socket
 * operations) complete exactly once, with the system call's result in
 * `res`, except ACCEPT_MULTI (one completion per connection, below).
 */
typedef enum asyncio__cop_kind {
    ASYNCIO__COP_RECV_MULTI, /* stream receive, multishot, into the shared buffers */
    ASYNCIO__COP_SEND,       /* stream send of buf[0..len), MSG_NOSIGNAL */
    ASYNCIO__COP_READ,       /* read(2) of len bytes into buf at off (-1: the fd's offset) */
    ASYNCIO__COP_WRITE,      /* write(2) of buf[0..len) at off (-1: the fd's offset) */
    ASYNCIO__COP_FSYNC,      /* fsync(2); fdatasync(2) with ASYNCIO__COP_F_DATASYNC */
    ASYNCIO__COP_STATX,      /* statx(dfd, path) into out (ASYNCIO__COP_STATX_SIZE bytes) */
    ASYNCIO__COP_OPENAT,     /* openat(dfd, path, asyncio_open_flag bits in open_flags, mode) */
    ASYNCIO__COP_CLOSE,      /* close(fd) */
    ASYNCIO__COP_RENAMEAT,   /* renameat(dfd, path, dfd, path2) */
    ASYNCIO__COP_UNLINKAT,   /* unlinkat(dfd, path); rmdir with ASYNCIO__COP_F_REMOVEDIR */
    ASYNCIO__COP_MKDIRAT,    /* mkdirat(dfd, path, mode) */
    /*
     * Socket kinds. ACCEPT_MULTI is multishot: each accepted connection is a
     * completion (res: the new fd, non-blocking and close-on-exec) with
     * `more` set while the request goes on; the last one (more false) ends it.
     */
    ASYNCIO__COP_ACCEPT_MULTI, /* accept4(fd) repeatedly, until cancelled or an error */
    ASYNCIO__COP_CONNECT,      /* connect(fd, buf: the address, len: its length) */
    ASYNCIO__COP_KINDS,
} asyncio__cop_kind;

/* The first generic (single-completion, no shared buffer) kind. */
#define ASYNCIO__COP_FIRST_GENERIC ASYNCIO__COP_READ

/* asyncio__cop_req.flags */
#define ASYNCIO__COP_F_DATASYNC   (1u << 0) /* FSYNC: data only (fdatasync) */
#define ASYNCIO__COP_F_NOFOLLOW   (1u << 1) /* STATX: do not follow a final symlink (lstat) */
#define ASYNCIO__COP_F_EMPTY_PATH (1u << 2) /* STATX: path "" names dfd itself (fstat) */
#define ASYNCIO__COP_F_REMOVEDIR  (1u << 3) /* UNLINKAT: remove a directory (rmdir) */

/* The value of dfd that names the working directory (AT_FDCWD on Linux). */
#define ASYNCIO__COP_CWD (-100)

/* Bytes a STATX result needs (struct statx); 8-byte aligned storage. */
#define ASYNCIO__COP_STATX_SIZE 256u

/*
 * One request. Every pointer (buf, path, path2, out) must stay valid until
 * the operation's last completion was handed over: a dropped future does
 * not end the kernel's use of them (see cancel()).
 */
typedef struct asyncio__cop_req {
    asyncio__cop_kind kind;
    int fd;            /* the file (READ, WRITE, FSYNC, CLOSE), or the directory (the *AT kinds) */
    const void *buf;   /* SEND, WRITE: the bytes; READ: where they go */
    uint32_t len;      /* SEND, READ, WRITE */
    int64_t off;       /* READ, WRITE */
    const char *path;  /* STATX, OPENAT, RENAMEAT (from), UNLINKAT, MKDIRAT */
    const char *path2; /* RENAMEAT (to) */
    void *out;         /* STATX */
    uint32_t flags;    /* ASYNCIO__COP_F_* */
    uint32_t open_flags; /* OPENAT: asyncio_open_flag bits (fs.h) */
    uint32_t mode;       /* OPENAT, MKDIRAT */
    void *op;
} asyncio__cop_req;

/* A backend's completion operations (asyncio__backend_ops.comp; NULL: none). */
typedef struct asyncio__completion_ops {
    int (*attach)(void *state, asyncio__completion_fn fn, void *ctx, uintptr_t token);
    void (*detach)(void *state);
    bool (*has)(void *state, asyncio__cop_kind kind);
    int (*submit)(void *state, const asyncio__cop_req *req);
    int (*cancel)(void *state, void *op, bool now);
    void *(*buffer)(void *state, uint16_t bid);
    void (*recycle)(void *state, uint16_t bid);
    bool (*grow)(void *state);
    size_t (*deliver)(void *state);
    int (*flush)(void *state);
    void (*metadata)(const void *out, asyncio_fs_metadata *md);
    size_t (*run)(void *state);
    bool (*pending)(void *state);
    int (*notify_fd)(void *state);
    void (*notify)(void *state, bool on);
    void (*notified)(void *state);
    size_t (*inflight)(void *state);
    int (*close_fd)(void *state, int fd);
    void (*sleep)(void *state);
    void (*wake)(void *state);
    int (*cancel_all)(void *state);
    uint16_t (*sq_mark)(void *state);
    bool (*sq_taken)(void *state, uint16_t mark);
} asyncio__completion_ops;

/*
 * Attaches the completion handler (see above). 0; ASYNCIO_ENOTSUP when the
 * backend has no completion path or the kernel lacks what it needs (then
 * nothing is attached); ASYNCIO_ENOMEM; ASYNCIO_EBUSY if already attached.
 */
int asyncio__poller_comp_attach(asyncio_poller *p, asyncio__completion_fn fn, void *ctx,
                                uintptr_t token);

/* Detaches: no operation may be in flight any more. Releases the shared buffers. */
void asyncio__poller_comp_detach(asyncio_poller *p);

/* Whether operations of `kind` run here (the per-operation fallback). */
bool asyncio__poller_comp_has(asyncio_poller *p, asyncio__cop_kind kind);

/*
 * Queues an operation (see above). 0, ASYNCIO_ENOTSUP (the kind does not
 * run here: has() is false), or ASYNCIO_ENOSPC / an io_uring_enter error.
 */
int asyncio__poller_comp_submit(asyncio_poller *p, const asyncio__cop_req *req);

/* Submits a cancel of `op` (and everything queued before it) now. 0 or a negative error. */
int asyncio__poller_comp_cancel(asyncio_poller *p, void *op);

/*
 * Queues a cancel of `op` without submitting it: the caller's next call
 * that submits (a deregister, asyncio__poller_comp_flush) or the owner's
 * next wait takes it to the kernel, after everything queued before it.
 * 0 or a negative error.
 */
int asyncio__poller_comp_cancel_later(asyncio_poller *p, void *op);

/* The address of shared buffer `bid` (its size: ASYNCIO__COMP_BUF_SIZE). */
void *asyncio__poller_comp_buffer(asyncio_poller *p, uint16_t bid);

/*
 * Hands the completions the last wait took to the handler; returns how
 * many. The thread that called asyncio_poller_wait, after it returned.
 */
size_t asyncio__poller_comp_deliver(asyncio_poller *p);

/*
 * Submits every queued operation now, without waiting (a system call only if
 * something is queued). 0 or a negative error. Any thread.
 */
int asyncio__poller_comp_flush(asyncio_poller *p);

/* A finished STATX request's result (`out`) as the library's metadata. */
void asyncio__poller_comp_metadata(asyncio_poller *p, const void *out, asyncio_fs_metadata *md);

/* Gives buffer `bid` back to the kernel. Any thread. */
void asyncio__poller_comp_recycle(asyncio_poller *p, uint16_t bid);

/*
 * Puts more of the shared buffers in circulation: as many again as are in
 * it (up to ASYNCIO__COMP_BUF_COUNT). True if it did, false when every
 * buffer already circulates. Called when a receive starved. Any thread.
 */
bool asyncio__poller_comp_grow(asyncio_poller *p);

/*
 * A worker's own ring (a poller made with ASYNCIO__POLLER_WORKER: io_uring
 * SINGLE_ISSUER | COOP_TASKRUN, operations only): the thread that made it
 * is the only one that may submit to it or have its completions run. The
 * calls below are that thread's unless said otherwise.
 */

/* Submits what is queued and hands every completion there is to the handler; returns how many. */
size_t asyncio__poller_comp_run(asyncio_poller *p);

/* Whether run() has anything to do (queued requests, completion work). Any thread (a hint). */
bool asyncio__poller_comp_pending(asyncio_poller *p);

/*
 * An eventfd (the backend's: closed with the poller) that the kernel signals
 * when completion work arrives while signals are on (notify below). The fd,
 * or a negative error.
 */
int asyncio__poller_comp_notify_fd(asyncio_poller *p);

/*
 * Turns those signals on (before the owner sleeps elsewhere; check pending()
 * after it) or off (while it runs and will call run() anyway).
 */
void asyncio__poller_comp_notify(asyncio_poller *p, bool on);

/*
 * Consumes the eventfd's signals so far (any thread). Whoever watches the
 * eventfd with an edge registration calls it on each event, then
 * asyncio_poller_rearm_fd(): an edge is reported again only once the fd was
 * drained (poll.h), and a uring poller may hold back a re-armed poll's
 * first report until then (uring.c, "quiet").
 */
void asyncio__poller_comp_notified(asyncio_poller *p);

/*
 * The owner sleeps until the ring has completions or wake() is called (a
 * signal or kernel task work may end it early: re-check). After
 * notify_fd() made the eventfds.
 */
void asyncio__poller_comp_sleep(asyncio_poller *p);

/* Ends the owner's sleep(), now or its next one. Any thread. */
void asyncio__poller_comp_wake(asyncio_poller *p);

/* Requests submitted whose last completion has not been taken yet. Any thread. */
size_t asyncio__poller_comp_inflight(asyncio_poller *p);

/*
 * Queues a close of fd behind everything queued (its result is ignored):
 * requests queued for fd reach the kernel before its number is free.
 * 0, ASYNCIO_ENOTSUP (the kernel lacks IORING_OP_CLOSE: flush, then close(2)
 * yourself), or ASYNCIO_ENOSPC / an io_uring_enter error.
 */
int asyncio__poller_comp_close_fd(asyncio_poller *p, int fd);

/*
 * Where the owner's last queued request ends in the ring's submission queue
 * (a mark), and whether the kernel has taken everything up to a mark (any
 * thread; a mark from long ago may read as not taken, never the reverse).
 */
uint16_t asyncio__poller_comp_sq_mark(asyncio_poller *p);
bool asyncio__poller_comp_sq_taken(asyncio_poller *p, uint16_t mark);

/* Queues a cancel of every request on the ring (the next run() submits it). 0 or an error. */
int asyncio__poller_comp_cancel_all(asyncio_poller *p);

/*
 * The shared receive buffers: count and size of each, and how many
 * circulate at first. The kernel takes buffers from the ring in order, so
 * every buffer that circulates is soon touched and resident; starting with
 * 64 (256 KiB) and doubling only when a receive finds none keeps a server
 * whose connections mostly idle at 256 KiB instead of 2 MiB
 * (docs/performance.md, idle memory).
 */
#define ASYNCIO__COMP_BUF_COUNT 512u
#define ASYNCIO__COMP_BUF_SIZE  4096u
#define ASYNCIO__COMP_BUF_FIRST 64u

#endif
