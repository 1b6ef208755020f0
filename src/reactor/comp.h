/*
 * The completion layer of the I/O driver: byte streams whose receives and
 * sends the poller's backend runs to completion (io_uring), behind the same
 * stream API as the readiness path (docs/io-driver.md, "Completion path").
 *
 * What it owns. One asyncio__comp_driver per runtime driver (when the
 * backend has completion operations, src/poller/completion.h), and one
 * asyncio__cstream per stream attached in completion mode, reached from the
 * stream's registration (asyncio__io_reg.comp). A cstream holds:
 *   - the receive side: a multishot receive armed on the first read; the
 *     buffers it filled (the backend's shared ring) queued in arrival order,
 *     copied out by poll_read and given back to the ring once consumed;
 *     EOF and the first error, reported after the queued bytes;
 *   - the send side: at most one send in flight, from a chunk the stream
 *     owns (a copy of what poll_write accepted, taken from the driver's
 *     cache and given back when the send completes: an idle stream holds
 *     none), so a dropped write future or a reused caller buffer is never
 *     read by the kernel;
 *   - the wakers of the one reader and the one writer.
 * It is kept small (88 bytes: one 96-byte malloc block) because every
 * connection has one, idle or not (docs/performance.md, idle memory).
 *
 * Generic operations (files and paths, asyncio__cop below) run through the
 * same completion dispatch: their tag in the request's low bits says which.
 *
 * Lifetime: `holds` counts what may still touch the cstream besides its
 * owner: each request in flight (its last completion not handled yet) and
 * membership of the driver's starved list (a receive ended by ENOBUFS,
 * re-armed when buffers come back). Closing the stream cancels the receive,
 * lets an accepted send finish, closes the fd, and the cstream is freed by
 * whoever drops the last hold (close, the completion handler, or the
 * re-arm pass that takes a closed cstream off the starved list: close
 * never unlinks it, so the list's hold has one owner). Runtime
 * shutdown (asyncio__comp_driver_close) cancels every request still in
 * flight and reaps the completions before the memory goes.
 *
 * Thread-safety: each cstream's fields are guarded by its spinlock; the
 * completion handler runs on the thread turning the ring (ring 0: the
 * thread turning the driver; a worker's ring: that worker, "Rings" below);
 * poll_* on any runtime thread (one reader and one writer per stream).
 * Lock order: cstream lock, then the driver's lock, then a ring's backend
 * lock (a request on a worker's own ring is queued under the cstream lock).
 */
#ifndef ASYNCIO_REACTOR_COMP_H
#define ASYNCIO_REACTOR_COMP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asyncio/io.h"
#include "asyncio/net.h"
#include "asyncio/poll.h"
#include "asyncio/task.h"
#include "platform/thread.h"
#include "poller/completion.h"
#include "util/list.h"

/*
 * Sends run from a stream-owned chunk of one of three sizes: the smallest
 * that holds the write (512 B: echo replies, HTTP responses; 4 KiB; 64 KiB,
 * a longer write is accepted in parts). Chunks kept for reuse per driver, so
 * a write allocates nothing once the cache is warm (at most 256 x 512 B,
 * 256 x 4 KiB and 16 x 64 KiB: 2.1 MiB, each class only as far as it was
 * used). Small writes take small chunks so that a burst of sends (many
 * connections answered in one turn) leaves little behind in the cache and
 * the heap: memory that stays resident once every connection is idle.
 */
#define ASYNCIO__COMP_SEND_CLASSES 3u
#define ASYNCIO__COMP_SEND_SMALL   512u
#define ASYNCIO__COMP_SEND_MEDIUM  (4u * 1024u)
#define ASYNCIO__COMP_SEND_CHUNK   (64u * 1024u)
#define ASYNCIO__COMP_SEND_CACHE   256u /* per class; the 64 KiB class keeps 16 */

typedef struct asyncio__send_chunk asyncio__send_chunk;
typedef struct asyncio__comp_driver asyncio__comp_driver;
typedef struct asyncio__cmsg asyncio__cmsg;

/*
 * Rings. Ring 0 is the driver's poller, shared: any thread submits to it
 * (under the backend's lock) and the thread turning the driver reaps it.
 * On the multi-thread runtime with ASYNCIO_URING_RING_PER_WORKER=1 each
 * worker also makes a ring of its own (asyncio__comp_worker_enter; io_uring
 * SINGLE_ISSUER | COOP_TASKRUN, with its own provided buffers): only that
 * worker submits to it and runs its completions, in its own turns. A
 * request goes on the ring of the thread that starts it: a receive on the
 * arming thread's ring, where it stays until it ends (the stream's *home*);
 * a send on the sending thread's ring (its chunk notes which). So no
 * request ever crosses threads. A close on another thread closes the fd at
 * once if the kernel took every SQE of the stream on the workers' rings
 * (SQ marks) and mails the receive's cancel to its ring; else it mails the
 * close to a ring still holding one (IORING_OP_CLOSE behind its queue), so
 * no request queued there can meet the number reused. A worker with a ring
 * parks on it. Generic operations, listeners' accepts and connects use
 * ring 0. docs/backends.md, "Ring per worker" (and why it is opt-in).
 */
#define ASYNCIO__COMP_MAX_RINGS 64u /* ring 0 + 63 workers; more workers share ring 0 */
#define ASYNCIO__COMP_RING_SHIFT 9u /* a stream's queued buffer: ring << 9 | buffer id */
/* The token ring 0's poller reports for worker i's ring signal (between signal and I/O tokens). */
#define ASYNCIO__COMP_RING_TOKEN(i) ((uintptr_t)2 + (uintptr_t)(i))

typedef struct asyncio__comp_ring {
    asyncio__comp_driver *cd;
    asyncio_poller *poller; /* NULL: none (its worker uses ring 0) */
    uint32_t index;         /* 0: the shared ring; i + 1: worker i's */
    _Atomic uint32_t held;  /* its buffers queued in streams (received, not given back) */
    /* Worker rings only. */
    int efd;                /* the backend's eventfd, watched by ring 0's poller */
    atomic_bool asleep;     /* the owner sleeps elsewhere: wake it for mail and completions */
    atomic_bool mpending;   /* mail is waiting */
    asyncio__spinlock mlock; /* guards the mailbox */
    asyncio__cmsg *mhead, *mtail;
    bool mclosed; /* the owner has left: posts fail */
} asyncio__comp_ring;

struct asyncio__comp_driver {
    asyncio_poller *poller;       /* ring 0's; NULL: the completion path is off (readiness only) */
    bool recv;                    /* streams receive on the ring */
    bool send;                    /* streams send on the ring */
    bool has[ASYNCIO__COP_KINDS]; /* the generic kinds that run on the ring (asyncio__comp_has) */
    asyncio__spinlock lock;       /* guards live, ops, starved, cache */
    /* Every cstream not freed yet is on exactly one of these (by its one list node). */
    asyncio__list live;    /* ... here, ... */
    asyncio__list starved; /* ... or here: its receive ended for want of buffers */
    asyncio__list ops;     /* every generic operation in flight (asyncio__cop.node) */
    _Atomic size_t n_starved;
    asyncio__send_chunk *cache[ASYNCIO__COMP_SEND_CLASSES][ASYNCIO__COMP_SEND_CACHE];
    size_t n_cache[ASYNCIO__COMP_SEND_CLASSES];
    asyncio__comp_ring ring0;
    asyncio__comp_ring *wrings; /* worker i's: wrings[i] (nwrings of them; the multi-thread runtime) */
    uint32_t nwrings;
    void (*wake)(void *ctx, uint32_t worker); /* wakes a sleeping worker for its ring */
    void *wake_ctx;
    /*
     * Per queued buffer (ring << 9 | id, for every ring): its length and the
     * next buffer in its stream's queue (relaxed; the stream's lock orders them).
     */
    _Atomic uint32_t *blen;
    _Atomic uint16_t *bnext;
    /*
     * Statistics (relaxed): requests submitted, completions handled, receives
     * starved, times a starvation put more shared buffers in circulation,
     * worker rings made, and messages posted to a worker's ring.
     */
    _Atomic uint64_t submitted, completed, starvations, grows, worker_rings, posted;
};

typedef struct asyncio__cstream asyncio__cstream;

/*
 * A generic operation (the file and path kinds of completion.h: READ,
 * WRITE, FSYNC, STATX, OPENAT, CLOSE, RENAMEAT, UNLINKAT, MKDIRAT), embedded
 * in its owner's block. One request at a time. From asyncio__comp_start()
 * until `done` has run, the kernel may use the request's memory (the
 * buffer, the paths, the statx result) and the driver links the cop on its
 * `ops` list: the owner keeps its block alive (a reference the done
 * callback drops) and never reuses that memory meanwhile.
 *
 * `done` runs once per started request, with the system call's result
 * (>= 0, or a negative error code; ASYNCIO_ECANCELED after a cancel or at
 * runtime shutdown), on the thread turning the driver, with no lock held.
 * It may start the cop's next request (a short write's rest, a close).
 */
typedef struct asyncio__cop asyncio__cop;
typedef void (*asyncio__cop_done_fn)(asyncio__cop *op, int32_t res);
struct asyncio__cop {
    asyncio__list node; /* on cd->ops while in flight */
    asyncio__comp_driver *cd;
    asyncio__cop_done_fn done;
    asyncio__cop_done_fn each; /* multishot: every completion but the last (NULL: single-shot) */
};

/*
 * Sets the layer up on `poller` (whose waits then report completions with
 * `token`). The path is off (cd->poller NULL, 0 returned) when the backend
 * has no completion operations or ASYNCIO_URING_COMPLETION=0 is set.
 * 0 or a negative error.
 */
int asyncio__comp_driver_init(asyncio__comp_driver *cd, asyncio_poller *poller, uintptr_t token);

/*
 * Runtime shutdown, after every stream was closed: cancels the requests
 * still in flight (streams' and generic ones), waits (bounded, 2 s) for
 * their completions through the poller (generic ones get `done` with
 * ASYNCIO_ECANCELED or their result), frees every cstream and cached chunk. Nothing else may use
 * the driver meanwhile.
 */
void asyncio__comp_driver_close(asyncio__comp_driver *cd);

/*
 * Handles the completions the driver's last poller wait took (wakes
 * readers and writers, re-submits short sends); returns how many. The
 * thread turning the driver, right after the wait.
 */
size_t asyncio__comp_dispatch(asyncio__comp_driver *cd);

/*
 * Whether operations of a generic `kind` run on cd's ring: the path is on,
 * the kernel has the opcode (probed per kind), and the test switch
 * ASYNCIO_URING_NO_OPS (a comma-separated list of kind names: read, write,
 * fsync, statx, openat, close, renameat, unlinkat, mkdirat; or "all") does
 * not name it. Callers fall back to the blocking pool per operation when
 * false. cd may be NULL (false). Any thread.
 */
bool asyncio__comp_has(const asyncio__comp_driver *cd, asyncio__cop_kind kind);

/*
 * Starts a generic request on cd's ring (req->op is set here): `done` will
 * run once with its result (see asyncio__cop). Returns 0, or an error
 * (ASYNCIO_ENOTSUP: the kind does not run here; ASYNCIO_ENOSPC, an
 * io_uring_enter error), in which case `done` never runs and the kernel
 * has nothing. Any runtime thread.
 */
int asyncio__comp_start(asyncio__comp_driver *cd, asyncio__cop *op, asyncio__cop_done_fn done,
                        asyncio__cop_req *req);

/*
 * As asyncio__comp_start, for a multishot kind (ACCEPT_MULTI): `each` runs
 * for every completion that has more behind it, `done` once for the last
 * one (which may carry a result too, e.g. an accepted fd). Same errors.
 */
int asyncio__comp_start_multi(asyncio__comp_driver *cd, asyncio__cop *op, asyncio__cop_done_fn each,
                              asyncio__cop_done_fn done, asyncio__cop_req *req);

/*
 * Asks the kernel to end op's request in flight (IORING_OP_ASYNC_CANCEL,
 * submitted at once): it still completes, with ASYNCIO_ECANCELED or its own
 * result if it had finished or cannot be interrupted (a read or write
 * already running on a kernel worker). Only while a request of op is in
 * flight (the owner knows: `done` has not run). A no-op for a request the
 * runtime's shutdown gave up on (left in the kernel, its block leaked).
 * Any thread.
 */
void asyncio__comp_cancel(asyncio__cop *op);

/*
 * Worker rings (see "Rings" above). workers(): the multi-thread runtime,
 * before its workers start: room for n rings; wake(ctx, i) must make worker
 * i leave its sleep (any thread). 0 or ASYNCIO_ENOMEM; a no-op when the
 * path is off or unless ASYNCIO_URING_RING_PER_WORKER=1 (opt-in while it is
 * not faster than the shared ring: every worker then uses ring 0, as a
 * current-thread runtime does).
 */
int asyncio__comp_driver_workers(asyncio__comp_driver *cd, uint32_t n,
                                 void (*wake)(void *ctx, uint32_t worker), void *ctx);

/*
 * On worker i's thread, before it runs tasks: makes its ring (io_uring
 * SINGLE_ISSUER | COOP_TASKRUN; without them it keeps using ring 0) and
 * has ring 0's poller watch the ring's eventfd (ASYNCIO__COMP_RING_TOKEN).
 */
void asyncio__comp_worker_enter(asyncio__comp_driver *cd, uint32_t i);

/*
 * On the worker's thread, after its last task: cancels everything on its
 * ring (receives end with ASYNCIO_ECANCELED, as at runtime shutdown), reaps
 * it (bounded, 2 s) and closes its mailbox (a later close's poster closes
 * the fd itself: nothing of the stream is left queued there). The
 * ring's memory stays until asyncio__comp_driver_close (buffers it filled
 * may still be queued in streams).
 */
void asyncio__comp_worker_leave(asyncio__comp_driver *cd);

/*
 * The worker's turn of its ring: its mail, then what it queued to the
 * kernel, then its completions (wakes readers and writers). Returns the
 * completions handled. A no-op (no system call) when there is nothing.
 */
size_t asyncio__comp_worker_turn(asyncio__comp_driver *cd);

/* Whether the worker's ring has mail or completion work (a turn would do something). */
bool asyncio__comp_worker_pending(asyncio__comp_driver *cd);

/*
 * The worker is about to sleep (true: the kernel's eventfd signals and
 * posters' wakes turn on; check asyncio__comp_worker_pending after) or has
 * woken (false: off again, it turns its ring itself).
 */
void asyncio__comp_worker_sleep(asyncio__comp_driver *cd, bool asleep);

/* Tests: this thread's ring on cd (0 off a worker), and the ring a stream's requests go to. */
unsigned asyncio__comp_ring_here(const asyncio__comp_driver *cd);
unsigned asyncio__cstream_ring(asyncio__cstream *cs);

/*
 * Parking on the worker's own ring (instead of a condition variable): one
 * wake-up when its completions come, none through ring 0. has(): whether
 * this worker can; wait(): sleeps until its ring has completions or
 * ring_wake(cd, i) (any thread) is called for it, with ring 0's watch of
 * the ring turned off meanwhile (the driver's holder is not woken for it).
 * May return early: the caller re-checks.
 */
bool asyncio__comp_worker_can_wait(asyncio__comp_driver *cd);

/*
 * The worker is about to sleep in ring 0's poller (it holds the driver
 * flag): its ring's completions are to wake that poller (the ring's eventfd
 * on), and true if its ring already has work (then it must not sleep).
 * False without a ring.
 */
bool asyncio__comp_worker_watch(asyncio__comp_driver *cd);
void asyncio__comp_worker_wait(asyncio__comp_driver *cd);
void asyncio__comp_ring_wake(asyncio__comp_driver *cd, uint32_t i);

/* Test hook: called in the starved-receive re-arm pass right after a re-arm (NULL: none). */
extern void (*asyncio__comp_rearm_hook)(asyncio__cstream *cs);

/* Ring 0's poller reported worker i's ring token: wakes worker i (cd->wake). */
void asyncio__comp_ring_event(asyncio__comp_driver *cd, uint32_t i);

/* Whether a new stream gets a cstream (either direction runs on the ring). */
bool asyncio__comp_enabled(const asyncio__comp_driver *cd);

/* A new cstream for fd. 0 or ASYNCIO_ENOMEM. */
int asyncio__cstream_new(asyncio__comp_driver *cd, int fd, asyncio__cstream **out);

/* Whether the stream's reads / writes run on the ring (else on readiness). */
bool asyncio__cstream_reads(const asyncio__cstream *cs);
bool asyncio__cstream_writes(const asyncio__cstream *cs);

/*
 * Closes the stream's side of the cstream (see Lifetime above): must be
 * called BEFORE the fd is closed (queued requests are submitted first).
 * Only for a stream that never started a request (nothing in flight).
 * The cstream must not be used afterwards.
 */
void asyncio__cstream_close(asyncio__cstream *cs);

/*
 * As close, but the receive's cancel is only queued: the caller's
 * deregister of the fd, which submits (with the fd's close on io_uring,
 * asyncio__io_deregister_close), takes it to the kernel in the same
 * io_uring_enter, ahead of the close. Must be followed by that deregister.
 * Returns true when the stream's requests are on a worker's ring: that ring
 * then closes the fd (behind what it queued), and the caller deregisters
 * without closing it (asyncio__io_deregister).
 */
bool asyncio__cstream_close_queued(asyncio__cstream *cs);

/* io.h semantics: bytes copied out, 0 at EOF, ASYNCIO_PENDING, or the receive's error. */
int asyncio__cstream_poll_read(asyncio__cstream *cs, asyncio_context *cx, void *buf, size_t len,
                               size_t *n_out);

/* 0 once bytes, EOF or an error are waiting (nothing consumed), else ASYNCIO_PENDING. */
int asyncio__cstream_poll_read_ready(asyncio__cstream *cs, asyncio_context *cx);

/*
 * Moves the stream's reads to the readiness path for good (a raw read, the
 * copy's splice, wants the socket's own queue): 0, after which the caller
 * must have the poller watch READABLE; ASYNCIO_ENOTSUP when the ring
 * already received (bytes queued, a receive armed, EOF or an error seen).
 * Called by the stream's reader.
 */
int asyncio__cstream_stop_reads(asyncio__cstream *cs);

/*
 * What asyncio__cstream_poll_write returns when the write must take the
 * readiness path (send(2) on the socket) instead: no send is in flight.
 */
#define ASYNCIO__CSTREAM_DIRECT 2 /* not 0, not ASYNCIO_PENDING (1), not an error */

/*
 * Accepts up to one chunk of iov into the stream's send buffer and starts
 * its send: 0 with *n_out bytes accepted, ASYNCIO_PENDING while the
 * previous send is in flight, the error of an earlier send (sticky), or
 * ASYNCIO_ENOMEM. ASYNCIO__CSTREAM_DIRECT (nothing accepted) once the
 * receive side has seen EOF or an error: the peer may be gone, and a write
 * accepted into the ring would only fail later, so it goes through send(2)
 * and fails at once (EPIPE, ECONNRESET) as on the readiness path.
 */
int asyncio__cstream_poll_write(asyncio__cstream *cs, asyncio_context *cx, const asyncio_iovec *iov,
                                int iovcnt, size_t *n_out);

/*
 * 0 once no send is in flight (a raw write may then go to the socket
 * without overtaking accepted bytes), the error of an earlier send, or
 * ASYNCIO_PENDING with cx's waker stored.
 */
int asyncio__cstream_poll_idle(asyncio__cstream *cs, asyncio_context *cx);

/*
 * Flush: 0, or the error of an earlier send. Never waits: once a send is
 * submitted its bytes are the kernel's, as after send(2) on the readiness
 * path (where flush is a no-op too); the next write, flush or shutdown
 * reports its failure.
 */
int asyncio__cstream_flush(asyncio__cstream *cs);

/*
 * Shuts down writing: at once, or when the send in flight completes (the
 * accepted bytes go out before the FIN). Later writes fail with
 * ASYNCIO_EPIPE. 0 or shutdown(2)'s error.
 */
int asyncio__cstream_shutdown(asyncio__cstream *cs);

/* ---- listeners: accepts on the ring (src/reactor/comp_accept.c) ------------ */

/*
 * A listening socket whose accepts run as one multishot IORING_OP_ACCEPT:
 * connections the kernel accepted wait in a queue (their fds are the
 * acceptor's until polled out). The request is armed by the first poll
 * that finds the queue empty and runs until an error ends it or the queue
 * reaches ASYNCIO__CACCEPT_HIGH (then it is cancelled, so an application
 * that stops accepting leaves connections in the kernel's backlog, as on
 * the readiness path, instead of taking fds for them). After an error was
 * reported (EMFILE: the listener backs off), the next poll tries accept(2)
 * once directly before arming again, so a retry costs one poll.
 *
 * Lifetime: the acceptor is freed by its close, or by the last completion
 * of the request in flight at close (whose fds are closed). Thread-safety:
 * poll by the listener's one task, completions on the thread turning the
 * driver (a spinlock between them).
 */
typedef struct asyncio__cacceptor asyncio__cacceptor;

#define ASYNCIO__CACCEPT_HIGH 64u

/* Whether listeners of cd accept on the ring. cd may be NULL (false). */
bool asyncio__comp_accepts(const asyncio__comp_driver *cd);

/* A new acceptor for listening socket fd. 0 or ASYNCIO_ENOMEM. */
int asyncio__cacceptor_new(asyncio__comp_driver *cd, int fd, asyncio__cacceptor **out);

/*
 * The next accepted connection: 0 with *fd_out (non-blocking,
 * close-on-exec; the caller owns it) and *peer (when not NULL), or
 * ASYNCIO_PENDING with cx's waker stored, or the error that ended the
 * request (reported once; ASYNCIO_EMFILE and its kin: fd exhaustion, the
 * caller backs off), or ASYNCIO_ENOSPC / an io_uring_enter error when the
 * request could not be queued.
 */
int asyncio__cacceptor_poll(asyncio__cacceptor *a, asyncio_context *cx, int *fd_out,
                            asyncio_sockaddr *peer);

/*
 * Closes the acceptor, BEFORE the listening fd is closed: the fds queued
 * are closed, the request in flight is cancelled (connections it still
 * accepts are closed by its completions). Not usable afterwards.
 */
void asyncio__cacceptor_close(asyncio__cacceptor *a);

#endif
