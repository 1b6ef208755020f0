/*
 * The completion layer of the I/O driver (see comp.h for what it owns, the
 * lifetime rule and the locking).
 *
 * Requests carry the cstream's address with the operation in its low bits
 * (OP_RECV, OP_SEND): a cstream is malloc'd, so at least 8-byte aligned.
 * A generic operation carries its asyncio__cop's address tagged OP_GEN (the
 * cop starts with pointers, so it is 8-byte aligned too).
 */
#include "reactor/comp.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "platform/socket.h"
#include "poller/poller_int.h"
#include "util/alloc.h"

/* The ring of the worker running on this thread (NULL elsewhere, or without a ring). */
static _Thread_local asyncio__comp_ring *tl_ring;

static asyncio__comp_ring *ring_at(asyncio__comp_driver *cd, unsigned i)
{
    return i == 0 ? &cd->ring0 : &cd->wrings[i - 1];
}

/* This thread's ring index on cd: its worker's ring, else 0. */
static unsigned here(const asyncio__comp_driver *cd)
{
    asyncio__comp_ring *r = tl_ring;
    return r != NULL && r->cd == cd ? r->index : 0;
}

/* The ring a queued buffer came from (ring << 9 | id). */
static asyncio__comp_ring *gid_ring(asyncio__comp_driver *cd, uint16_t gid)
{
    return ring_at(cd, gid >> ASYNCIO__COMP_RING_SHIFT);
}

static uint16_t gid_bid(uint16_t gid)
{
    return (uint16_t)(gid & (ASYNCIO__COMP_BUF_COUNT - 1));
}

/* Mail for a worker's ring (comp.h "Rings"): a request to submit, or a stream's close. */
enum { MSG_CANCEL, MSG_CLOSE };
struct asyncio__cmsg {
    asyncio__cmsg *next;
    int kind;
    int fd;       /* MSG_CLOSE: the fd to close behind everything queued */
    void *cancel; /* the receive to cancel here (NULL: none) */
    /* MSG_CLOSE: another worker ring that must also have submitted first (0: none), and
       the receive to cancel there; this ring's owner forwards the close once it submitted. */
    unsigned fwd;
    void *fwd_cancel;
};

#define OP_RECV  0u
#define OP_SEND  1u
#define OP_GEN   2u /* an asyncio__cop (generic operation), not a cstream */
#define OP_MASK  7u
#define BID_NONE UINT16_MAX

/* Receive states (cstream.recv). */
enum {
    RECV_IDLE = 0, /* no receive in the kernel (none yet, or the last one ended) */
    RECV_ARMED,    /* a multishot receive is queued or in flight (holds one hold) */
    RECV_STARVED,  /* ended by ENOBUFS: on the driver's starved list (holds one hold) */
};

/*
 * A send chunk: the bytes of the send in flight and where it stands. The
 * header fills 16 bytes so the data is as aligned as malloc's blocks.
 */
struct asyncio__send_chunk {
    uint32_t cls;  /* size class: index into chunk_caps */
    uint32_t len;  /* bytes accepted into data */
    uint32_t done; /* bytes the kernel has sent */
    uint16_t mark; /* its send's ring: SQ tail after the SQE (a worker's ring; cs lock) */
    uint8_t ring;  /* the ring its send went to (cs lock) */
    uint8_t unused;
    char data[];
};

/*
 * Every connection has one of these, so it is packed (88 bytes, checked
 * below): the send's length and progress live in its chunk, errors fit 16
 * bits (negative errno values), and one list node serves the live and the
 * starved lists. The flags in the bit-field are all guarded by `lock`;
 * use_recv / use_send have bytes of their own because the stream's reader
 * and writer read them without the lock.
 */
struct asyncio__cstream {
    asyncio__comp_driver *cd;
    asyncio__list node; /* on cd->live, or on cd->starved while RECV_STARVED (cd->lock) */
    asyncio_waker rwaker, wwaker;
    asyncio__send_chunk *sbuf; /* the send in flight (send_busy), else NULL */
    int fd;
    int16_t rerr, serr;      /* first receive / send error (sticky), 0 if none */
    uint16_t q_head, q_tail; /* queued buffers (BID_NONE: empty), linked by cd->bnext */
    uint16_t q_off;          /* bytes of q_head already read (< ASYNCIO__COMP_BUF_SIZE) */
    asyncio__spinlock lock;  /* guards everything but cd, fd, use_recv, use_send */
    uint8_t recv;            /* RECV_* */
    uint8_t home;            /* the ring its receive goes to (comp.h "Rings"; lock) */
    uint16_t sq_mark;        /* home's SQ tail after the receive's SQE (a worker ring; lock) */
    uint8_t holds;           /* requests in flight + starved-list membership */
    bool use_recv;           /* reads run on the ring (written by the reader only) */
    bool use_send;           /* writes run on the ring (fixed) */
    bool send_busy : 1;      /* a send of sbuf is in flight (holds one hold) */
    bool closed : 1;         /* the owner closed it: freed when holds reaches 0 */
    bool eof : 1;
    bool shut : 1;         /* the writer shut down: later writes fail with EPIPE */
    bool shut_pending : 1; /* ... while a send was in flight: its completion does shutdown(2) */
};

ASYNCIO_STATIC_ASSERT(sizeof(void *) != 8 || sizeof(asyncio__cstream) <= 88,
                      "a cstream per connection: keep it within a 96-byte malloc block");
ASYNCIO_STATIC_ASSERT(ASYNCIO__COMP_BUF_SIZE <= UINT16_MAX, "q_off is 16 bits");
ASYNCIO_STATIC_ASSERT(ASYNCIO__COMP_BUF_COUNT == 1u << ASYNCIO__COMP_RING_SHIFT &&
                          (ASYNCIO__COMP_MAX_RINGS << ASYNCIO__COMP_RING_SHIFT) <= BID_NONE,
                      "a queued buffer's ring and id fit 16 bits, below BID_NONE");

/* An error for the 16-bit sticky fields (negative errno values and library codes fit). */
static int16_t err16(int rc)
{
    return rc < INT16_MIN ? (int16_t)ASYNCIO_EIO : (int16_t)rc;
}

static void *op_ptr(asyncio__cstream *cs, unsigned op)
{
    return (char *)cs + op;
}

/* ------------------------------------------------------------------------ */
/* Send chunks: two sizes, a small cache of each per driver                  */

static const uint32_t chunk_caps[ASYNCIO__COMP_SEND_CLASSES] = {
    ASYNCIO__COMP_SEND_SMALL, ASYNCIO__COMP_SEND_MEDIUM, ASYNCIO__COMP_SEND_CHUNK};
static const size_t chunk_keep[ASYNCIO__COMP_SEND_CLASSES] = {ASYNCIO__COMP_SEND_CACHE,
                                                              ASYNCIO__COMP_SEND_CACHE, 16};

/* The smallest class holding `want` bytes (the largest for longer writes: accepted in parts). */
static unsigned chunk_class(size_t want)
{
    unsigned cls = 0;
    while (cls + 1 < ASYNCIO__COMP_SEND_CLASSES && want > chunk_caps[cls])
        cls++;
    return cls;
}

static asyncio__send_chunk *chunk_take(asyncio__comp_driver *cd, size_t want)
{
    unsigned cls = chunk_class(want);
    asyncio__send_chunk *c = NULL;
    asyncio__spin_lock(&cd->lock);
    if (cd->n_cache[cls] > 0)
        c = cd->cache[cls][--cd->n_cache[cls]];
    asyncio__spin_unlock(&cd->lock);
    if (c == NULL && (c = asyncio__malloc(sizeof *c + chunk_caps[cls])) != NULL)
        c->cls = cls;
    return c;
}

static void chunk_give(asyncio__comp_driver *cd, asyncio__send_chunk *c)
{
    if (c == NULL)
        return;
    unsigned cls = c->cls;
    asyncio__spin_lock(&cd->lock);
    if (cd->n_cache[cls] < chunk_keep[cls]) {
        cd->cache[cls][cd->n_cache[cls]++] = c;
        c = NULL;
    }
    asyncio__spin_unlock(&cd->lock);
    asyncio__free(c);
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

/*
 * Posts a message (a receive's cancel, a close) to worker ring r's mailbox
 * and wakes its owner if it sleeps. False (m freed) once the owner has left:
 * it ended everything on its ring then, so nothing of the poster's is there.
 */
static bool post(asyncio__comp_ring *r, asyncio__cmsg *m)
{
    m->next = NULL;
    asyncio__spin_lock(&r->mlock);
    bool open = !r->mclosed;
    if (open) {
        if (r->mtail != NULL)
            r->mtail->next = m;
        else
            r->mhead = m;
        r->mtail = m;
        /* seq_cst, then the load of asleep: pairs with worker_sleep's store, then pending's load. */
        atomic_store(&r->mpending, true);
    }
    asyncio__spin_unlock(&r->mlock);
    if (!open) {
        asyncio__free(m);
        return false;
    }
    atomic_fetch_add_explicit(&r->cd->posted, 1, memory_order_relaxed);
    if (atomic_load(&r->asleep))
        r->cd->wake(r->cd->wake_ctx, r->index - 1);
    return true;
}

static void make_req(asyncio__cstream *cs, unsigned op, asyncio__cop_req *req)
{
    *req = (asyncio__cop_req){.fd = cs->fd, .op = op_ptr(cs, op)};
    if (op == OP_RECV) {
        req->kind = ASYNCIO__COP_RECV_MULTI;
    } else {
        req->kind = ASYNCIO__COP_SEND;
        req->buf = cs->sbuf->data + cs->sbuf->done;
        req->len = cs->sbuf->len - cs->sbuf->done;
    }
}

/*
 * cs lock held, a request of cs about to start on `ring` (ring 0, or this
 * thread's own worker ring: requests never go to another thread's ring):
 * queued here, under the lock. A close sets `closed` under the same lock,
 * so every SQE of the stream is in its ring's queue before the close's
 * cancel and fd close are queued behind it: none can reach the kernel
 * after the fd number is free (a re-arm or a short send's rest, started on
 * another thread, once could: test_comp_starved_stream_closed_while_rearmed_
 * leaves_no_receive_on_the_reused_fd). On a worker's ring the SQ mark of the
 * request is noted for a close on another thread (close_on_rings). 0 or the
 * submit's error.
 */
static int start_locked(asyncio__cstream *cs, unsigned op, unsigned ring)
{
    asyncio__comp_driver *cd = cs->cd;
    ASYNCIO_CHECK(ring == 0 || ring == here(cd));
    asyncio__cop_req req;
    make_req(cs, op, &req);
    atomic_fetch_add_explicit(&cd->submitted, 1, memory_order_relaxed);
    asyncio_poller *p = ring_at(cd, ring)->poller;
    int rc = asyncio__poller_comp_submit(p, &req);
    if (rc == 0 && ring != 0 && op == OP_RECV)
        cs->sq_mark = asyncio__poller_comp_sq_mark(p);
    else if (rc == 0 && ring != 0)
        cs->sbuf->mark = asyncio__poller_comp_sq_mark(p);
    return rc;
}

/* Test hook (tests/test_uring_comp.c): runs in rearm_starved right after a re-arm was decided. */
void (*asyncio__comp_rearm_hook)(asyncio__cstream *cs);

/*
 * cs lock held, a receive about to be armed (none in the kernel): it goes
 * to this thread's ring, which becomes the stream's home. A send goes to
 * this thread's ring too (its chunk notes which): each request is queued
 * by the thread that starts it, on its own ring or on ring 0.
 */
static unsigned home_locked(asyncio__cstream *cs)
{
    cs->home = (uint8_t)here(cs->cd);
    return cs->home;
}

/* cs lock held: arms the receive (RECV_IDLE -> RECV_ARMED); the caller submits after unlock. */
static bool arm_locked(asyncio__cstream *cs, unsigned *ring)
{
    if (cs->recv != RECV_IDLE || cs->eof || cs->rerr != 0 || cs->closed)
        return false;
    *ring = home_locked(cs);
    cs->recv = RECV_ARMED;
    cs->holds++;
    return true;
}

/* The armed receive could not be queued: back to idle, the error reported to the reader. */
static void arm_failed(asyncio__cstream *cs, int rc)
{
    asyncio__spin_lock(&cs->lock);
    cs->recv = RECV_IDLE;
    cs->holds--;
    if (cs->rerr == 0)
        cs->rerr = err16(rc);
    asyncio__spin_unlock(&cs->lock);
}

/* A buffer a stream had queued goes back to its ring (the caller then re-arms starved streams). */
static void give_back(asyncio__comp_driver *cd, uint16_t gid)
{
    asyncio__comp_ring *r = gid_ring(cd, gid);
    atomic_fetch_sub(&r->held, 1); /* seq_cst: pairs with on_completion's starvation check */
    asyncio__poller_comp_recycle(r->poller, gid_bid(gid));
}

static void cstream_free(asyncio__cstream *cs)
{
    asyncio__comp_driver *cd = cs->cd;
    asyncio__spin_lock(&cd->lock);
    asyncio__list_remove(&cs->node);
    asyncio__spin_unlock(&cd->lock);
    chunk_give(cd, cs->sbuf);
    asyncio__free(cs);
}

/* Drops one hold of a closed cstream, freeing it with the last. */
static void release_hold(asyncio__cstream *cs)
{
    asyncio__spin_lock(&cs->lock);
    bool last = --cs->holds == 0 && cs->closed;
    asyncio__spin_unlock(&cs->lock);
    if (last)
        cstream_free(cs);
}

/*
 * Buffers came back: every starved receive is armed again (its hold moves
 * from the list to the new request). One that finds the ring still empty
 * ends with ENOBUFS and comes back on the list; only a recycle retries it.
 */
static void rearm_starved(asyncio__comp_driver *cd)
{
    /* seq_cst: pairs with on_completion's starvation check (see there). */
    if (atomic_load(&cd->n_starved) == 0)
        return;
    for (;;) {
        asyncio__spin_lock(&cd->lock);
        asyncio__list *n = asyncio__list_first(&cd->starved);
        if (n != NULL) {
            asyncio__list_remove(n);
            asyncio__list_push_back(&cd->live, n);
            atomic_fetch_sub_explicit(&cd->n_starved, 1, memory_order_relaxed);
        }
        asyncio__spin_unlock(&cd->lock);
        if (n == NULL)
            return;
        /* Taken off the list by us: the list's hold is ours now (closed or not). */
        asyncio__cstream *cs = ASYNCIO_CONTAINER_OF(n, asyncio__cstream, node);
        asyncio__spin_lock(&cs->lock);
        bool arm = !cs->closed && cs->recv == RECV_STARVED;
        unsigned ring = arm ? home_locked(cs) : 0;
        cs->recv = arm ? RECV_ARMED : RECV_IDLE;
        int rc = arm ? start_locked(cs, OP_RECV, ring) : 0;
        asyncio_waker w = ASYNCIO_WAKER_EMPTY;
        asyncio__spin_unlock(&cs->lock);
        if (!arm) {
            release_hold(cs);
            continue;
        }
        if (ASYNCIO_UNLIKELY(asyncio__comp_rearm_hook != NULL))
            asyncio__comp_rearm_hook(cs); /* the request holds cs: it stays valid */
        if (rc < 0) {
            arm_failed(cs, rc);
            asyncio__spin_lock(&cs->lock);
            w = cs->rwaker;
            cs->rwaker = ASYNCIO_WAKER_EMPTY;
            asyncio__spin_unlock(&cs->lock);
            asyncio_waker_wake(&w);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Completions (the thread turning the driver)                               */

/* cs lock held: a receive completion. Returns true if the stream is now starved. */
static bool on_recv_locked(asyncio__comp_ring *ring, asyncio__cstream *cs,
                           const asyncio__completion *c, uint16_t *drop)
{
    asyncio__comp_driver *cd = cs->cd;
    if (c->has_buf) {
        if (cs->closed) {
            *drop = c->bid; /* nobody will read it */
        } else {
            uint16_t gid = (uint16_t)(ring->index << ASYNCIO__COMP_RING_SHIFT | c->bid);
            atomic_store_explicit(&cd->blen[gid], (uint32_t)c->res, memory_order_relaxed);
            atomic_store_explicit(&cd->bnext[gid], BID_NONE, memory_order_relaxed);
            atomic_fetch_add_explicit(&ring->held, 1, memory_order_relaxed);
            if (cs->q_head == BID_NONE)
                cs->q_head = gid;
            else
                atomic_store_explicit(&cd->bnext[cs->q_tail], gid, memory_order_relaxed);
            cs->q_tail = gid;
        }
    } else if (c->res == 0) {
        cs->eof = true; /* the peer shut down writing (or a zero-length stream end) */
    } else if (c->res < 0 && c->res != ASYNCIO_ENOBUFS && c->res != ASYNCIO_ECANCELED &&
               cs->rerr == 0) {
        cs->rerr = err16(c->res); /* reset, ...: after the queued bytes */
    }
    if (c->more)
        return false;
    /* The request ended. ENOBUFS (the shared buffers ran out): wait for some to come back. */
    if (c->res == ASYNCIO_ENOBUFS && !cs->closed) {
        cs->recv = RECV_STARVED;
        return true; /* the request's hold moves to the starved list */
    }
    cs->recv = RECV_IDLE;
    cs->holds--;
    return false;
}

/* cs lock held: a send completion. Returns true if the rest must be sent. */
static bool on_send_locked(asyncio__cstream *cs, const asyncio__completion *c,
                           asyncio__send_chunk **chunk)
{
    if (c->res > 0) {
        cs->sbuf->done += (uint32_t)c->res;
        if (cs->sbuf->done < cs->sbuf->len && !cs->closed)
            return true; /* a short send: the request for the rest keeps the hold */
    } else if (c->res == ASYNCIO_EAGAIN || c->res == ASYNCIO_EINTR) {
        if (!cs->closed)
            return true;
    } else if (c->res < 0 && cs->serr == 0 && !(cs->closed && c->res == ASYNCIO_ECANCELED)) {
        cs->serr = err16(c->res);
    }
    cs->send_busy = false;
    cs->holds--;
    if (cs->shut_pending) {
        cs->shut_pending = false;
        /* Closed meanwhile: its fd number may name another socket now; the close sends the FIN. */
        if (!cs->closed)
            (void)asyncio__sock_shutdown(cs->fd, SHUT_WR);
    }
    *chunk = cs->sbuf;
    cs->sbuf = NULL;
    return false;
}

/* A generic operation's completion: off the in-flight list, then its owner's callback. */
static void on_generic(asyncio__comp_driver *cd, asyncio__cop *op, int32_t res)
{
    asyncio__spin_lock(&cd->lock);
    asyncio__list_remove(&op->node);
    asyncio__spin_unlock(&cd->lock);
    op->done(op, res); /* may free op's block, or start its next request */
}

static void on_completion(void *ctx, const asyncio__completion *c)
{
    asyncio__comp_ring *ring = ctx;
    asyncio__comp_driver *cd = ring->cd;
    unsigned op = (unsigned)((uintptr_t)c->op & OP_MASK);
    if (op == OP_GEN) {
        atomic_fetch_add_explicit(&cd->completed, 1, memory_order_relaxed);
        asyncio__cop *g = (asyncio__cop *)((uintptr_t)c->op & ~(uintptr_t)OP_MASK);
        if (c->more && g->each != NULL)
            g->each(g, c->res); /* a multishot request goes on: still in flight */
        else
            on_generic(cd, g, c->res);
        return;
    }
    asyncio__cstream *cs = (asyncio__cstream *)((uintptr_t)c->op & ~(uintptr_t)OP_MASK);
    atomic_fetch_add_explicit(&cd->completed, 1, memory_order_relaxed);
    uint16_t drop = BID_NONE;
    asyncio__send_chunk *chunk = NULL;
    bool starved = false, resend = false;
    int resend_rc = 0;
    asyncio_waker w = ASYNCIO_WAKER_EMPTY;

    asyncio__spin_lock(&cs->lock);
    if (op == OP_RECV) {
        starved = on_recv_locked(ring, cs, c, &drop);
        if (starved) {
            asyncio__spin_lock(&cd->lock);
            asyncio__list_remove(&cs->node); /* from live */
            asyncio__list_push_back(&cd->starved, &cs->node);
            atomic_fetch_add(&cd->n_starved, 1); /* seq_cst: see the check below */
            atomic_fetch_add_explicit(&cd->starvations, 1, memory_order_relaxed);
            asyncio__spin_unlock(&cd->lock);
        }
        if (!starved) {
            w = cs->rwaker;
            cs->rwaker = ASYNCIO_WAKER_EMPTY;
        }
    } else {
        resend = on_send_locked(cs, c, &chunk);
        if (resend) /* the send's ring is this one: ours (a worker's ring) or ring 0 */
            resend_rc = start_locked(cs, OP_SEND, ring->index);
        if (!resend) {
            w = cs->wwaker;
            cs->wwaker = ASYNCIO_WAKER_EMPTY;
        }
    }
    bool free_now = cs->closed && cs->holds == 0;
    asyncio__spin_unlock(&cs->lock);

    if (drop != BID_NONE)
        asyncio__poller_comp_recycle(ring->poller, drop);
    chunk_give(cd, chunk);
    if (resend) {
        int rc = resend_rc;
        if (rc < 0) {
            /* Could not queue the rest: the send fails with that error. */
            asyncio__completion fail = {.op = c->op, .res = rc};
            on_completion(ctx, &fail);
            return;
        }
    }
    asyncio_waker_wake(&w);
    if (free_now)
        cstream_free(cs);
    /*
     * A receive that starved may have been refused before buffers came back
     * whose recycle found no starved stream to re-arm (the ENOBUFS was still
     * in the CQ): then no later recycle may come. So re-arm now unless
     * streams hold every buffer (then each will recycle, and re-arm, in
     * time). seq_cst on n_starved (above) and held (give_back): of a
     * starvation and a concurrent recycle, at least one sees the other.
     * First, a starvation puts more buffers in circulation while some never
     * did (completion.h: ASYNCIO__COMP_BUF_FIRST): then the re-arm finds them.
     */
    if (starved && asyncio__poller_comp_grow(ring->poller)) {
        atomic_fetch_add_explicit(&cd->grows, 1, memory_order_relaxed);
        rearm_starved(cd);
    } else if (drop != BID_NONE ||
               (starved && atomic_load(&ring->held) < ASYNCIO__COMP_BUF_COUNT)) {
        rearm_starved(cd);
    }
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

/* Whether the test switch ASYNCIO_URING_NO_OPS (comp.h) turns generic kind k off. */
static bool named_off(const char *list, unsigned k)
{
    static const char *const names[ASYNCIO__COP_KINDS] = {
        [ASYNCIO__COP_READ] = "read",         [ASYNCIO__COP_WRITE] = "write",
        [ASYNCIO__COP_FSYNC] = "fsync",       [ASYNCIO__COP_STATX] = "statx",
        [ASYNCIO__COP_OPENAT] = "openat",     [ASYNCIO__COP_CLOSE] = "close",
        [ASYNCIO__COP_RENAMEAT] = "renameat", [ASYNCIO__COP_UNLINKAT] = "unlinkat",
        [ASYNCIO__COP_MKDIRAT] = "mkdirat",   [ASYNCIO__COP_ACCEPT_MULTI] = "accept",
        [ASYNCIO__COP_CONNECT] = "connect",
    };
    if (list == NULL)
        return false;
    size_t n = strlen(names[k]);
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if ((len == n && strncmp(p, names[k], n) == 0) || (len == 3 && strncmp(p, "all", 3) == 0))
            return true;
        p += len;
        if (*p == ',')
            p++;
    }
    return false;
}

/* Sets up ring r's fields (not its poller). */
static void ring_init(asyncio__comp_driver *cd, asyncio__comp_ring *r, uint32_t index)
{
    r->cd = cd;
    r->index = index;
    r->efd = -1;
    atomic_init(&r->held, 0);
    atomic_init(&r->asleep, false);
    atomic_init(&r->mpending, false);
    atomic_init(&r->mlock.held, false);
}

int asyncio__comp_driver_init(asyncio__comp_driver *cd, asyncio_poller *poller, uintptr_t token)
{
    memset(cd, 0, sizeof *cd);
    atomic_init(&cd->lock.held, false);
    asyncio__list_init(&cd->live);
    asyncio__list_init(&cd->ops);
    asyncio__list_init(&cd->starved);
    ring_init(cd, &cd->ring0, 0);
    const char *env = getenv("ASYNCIO_URING_COMPLETION");
    if (env != NULL && strcmp(env, "0") == 0)
        return 0; /* asked off: readiness only */
    cd->blen = asyncio__calloc(ASYNCIO__COMP_BUF_COUNT, sizeof *cd->blen);
    cd->bnext = asyncio__calloc(ASYNCIO__COMP_BUF_COUNT, sizeof *cd->bnext);
    int rc = cd->blen != NULL && cd->bnext != NULL ? 0 : ASYNCIO_ENOMEM;
    if (rc == 0)
        rc = asyncio__poller_comp_attach(poller, on_completion, &cd->ring0, token);
    if (rc < 0) {
        asyncio__free(cd->blen);
        asyncio__free(cd->bnext);
        cd->blen = NULL;
        cd->bnext = NULL;
        return rc == ASYNCIO_ENOTSUP ? 0 : rc;
    }
    cd->poller = poller;
    cd->ring0.poller = poller;
    cd->recv = asyncio__poller_comp_has(poller, ASYNCIO__COP_RECV_MULTI);
    cd->send = asyncio__poller_comp_has(poller, ASYNCIO__COP_SEND);
    const char *off = getenv("ASYNCIO_URING_NO_OPS");
    for (unsigned k = ASYNCIO__COP_FIRST_GENERIC; k < ASYNCIO__COP_KINDS; k++)
        cd->has[k] = asyncio__poller_comp_has(poller, k) && !named_off(off, k);
    return 0;
}

size_t asyncio__comp_dispatch(asyncio__comp_driver *cd)
{
    return asyncio__poller_comp_deliver(cd->poller);
}

/* ------------------------------------------------------------------------ */
/* Worker rings (comp.h "Rings")                                             */

int asyncio__comp_driver_workers(asyncio__comp_driver *cd, uint32_t n,
                                 void (*wake)(void *ctx, uint32_t worker), void *ctx)
{
    /* Opt-in for now (docs/backends.md, "Ring per worker": not faster yet on this machine). */
    const char *env = getenv("ASYNCIO_URING_RING_PER_WORKER");
    if (cd->poller == NULL || !cd->recv || !cd->send || n == 0 || env == NULL ||
        strcmp(env, "1") != 0)
        return 0;
    if (n > ASYNCIO__COMP_MAX_RINGS - 1)
        n = ASYNCIO__COMP_MAX_RINGS - 1; /* the others use ring 0 */
    size_t count = (size_t)(n + 1) * ASYNCIO__COMP_BUF_COUNT;
    asyncio__comp_ring *rings = asyncio__calloc(n, sizeof *rings);
    _Atomic uint32_t *blen = asyncio__calloc(count, sizeof *blen);
    _Atomic uint16_t *bnext = asyncio__calloc(count, sizeof *bnext);
    if (rings == NULL || blen == NULL || bnext == NULL) {
        asyncio__free(rings);
        asyncio__free(blen);
        asyncio__free(bnext);
        return ASYNCIO_ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++)
        ring_init(cd, &rings[i], i + 1);
    asyncio__free(cd->blen);
    asyncio__free(cd->bnext);
    cd->blen = blen;
    cd->bnext = bnext;
    cd->wrings = rings;
    cd->nwrings = n;
    cd->wake = wake;
    cd->wake_ctx = ctx;
    return 0;
}

void asyncio__comp_worker_enter(asyncio__comp_driver *cd, uint32_t i)
{
    if (i >= cd->nwrings)
        return;
    asyncio__comp_ring *r = &cd->wrings[i];
    asyncio_poller *p;
    if (asyncio__poller_new_hinted(&p, ASYNCIO__POLLER_WORKER) < 0)
        return; /* no single-issuer ring here: this worker uses ring 0 */
    int efd = -1;
    if (asyncio__poller_comp_attach(p, on_completion, r, 0) < 0 ||
        !asyncio__poller_comp_has(p, ASYNCIO__COP_RECV_MULTI) ||
        !asyncio__poller_comp_has(p, ASYNCIO__COP_SEND) ||
        (efd = asyncio__poller_comp_notify_fd(p)) < 0)
        goto fail;
    /* Before the registration: the thread that reaps its events reads them (ring 0's lock orders). */
    r->efd = efd;
    r->poller = p;
    if (asyncio_poller_register_fd(cd->poller, efd, ASYNCIO__COMP_RING_TOKEN(i), ASYNCIO_READABLE,
                                   ASYNCIO_EDGE) < 0) {
        r->efd = -1;
        r->poller = NULL;
        goto fail;
    }
    asyncio__poller_comp_notify(p, false); /* running: it turns the ring itself */
    atomic_fetch_add_explicit(&cd->worker_rings, 1, memory_order_relaxed);
    tl_ring = r;
    return;
fail:
    asyncio__poller_comp_detach(p);
    (void)asyncio_poller_free(p); /* closes efd */
}

/* Owner: handles the mail (cancels, closes) on its ring. */
static void drain_mail(asyncio__comp_ring *r)
{
    if (!atomic_load_explicit(&r->mpending, memory_order_relaxed))
        return;
    asyncio__spin_lock(&r->mlock);
    asyncio__cmsg *m = r->mhead;
    r->mhead = r->mtail = NULL;
    atomic_store_explicit(&r->mpending, false, memory_order_relaxed);
    asyncio__spin_unlock(&r->mlock);
    while (m != NULL) {
        asyncio__cmsg *next = m->next;
        if (m->cancel != NULL)
            (void)asyncio__poller_comp_cancel_later(r->poller, m->cancel);
        if (m->kind == MSG_CLOSE && m->fwd != 0) {
            /* Another ring holds requests for fd too: it closes, once ours went out. */
            (void)asyncio__poller_comp_flush(r->poller);
            unsigned to = m->fwd;
            m->cancel = m->fwd_cancel;
            m->fwd = 0;
            m->fwd_cancel = NULL;
            if (!post(ring_at(r->cd, to), m))
                (void)asyncio__sock_close(m->fd); /* that worker left: its queue went out */
            m = next;
            continue;
        }
        if (m->kind == MSG_CLOSE && asyncio__poller_comp_close_fd(r->poller, m->fd) < 0) {
            (void)asyncio__poller_comp_flush(r->poller); /* what was queued for fd goes first */
            (void)asyncio__sock_close(m->fd);
        }
        asyncio__free(m);
        m = next;
    }
}

size_t asyncio__comp_worker_turn(asyncio__comp_driver *cd)
{
    asyncio__comp_ring *r = tl_ring;
    if (r == NULL || r->cd != cd)
        return 0;
    drain_mail(r);
    if (!asyncio__poller_comp_pending(r->poller))
        return 0;
    return asyncio__poller_comp_run(r->poller);
}

bool asyncio__comp_worker_pending(asyncio__comp_driver *cd)
{
    asyncio__comp_ring *r = tl_ring;
    if (r == NULL || r->cd != cd)
        return false;
    /* seq_cst: after worker_sleep's store (see post). */
    return atomic_load(&r->mpending) || asyncio__poller_comp_pending(r->poller);
}

void asyncio__comp_worker_sleep(asyncio__comp_driver *cd, bool asleep)
{
    asyncio__comp_ring *r = tl_ring;
    if (r == NULL || r->cd != cd)
        return;
    atomic_store(&r->asleep, asleep);
    asyncio__poller_comp_notify(r->poller, asleep);
}

bool asyncio__comp_worker_can_wait(asyncio__comp_driver *cd)
{
    asyncio__comp_ring *r = tl_ring;
    return r != NULL && r->cd == cd;
}

bool asyncio__comp_worker_watch(asyncio__comp_driver *cd)
{
    asyncio__comp_ring *r = tl_ring;
    if (r == NULL || r->cd != cd)
        return false;
    /* On, then the check (seq_cst both): work queued after the check signals the eventfd. */
    asyncio__poller_comp_notify(r->poller, true);
    return asyncio__comp_worker_pending(cd);
}

void asyncio__comp_worker_wait(asyncio__comp_driver *cd)
{
    asyncio__comp_ring *r = tl_ring;
    /*
     * Its eventfd off: the ring's fd wakes this sleep itself (the kernel wakes
     * us to post our completions), and ring 0's holder need not hear of them.
     */
    asyncio__poller_comp_notify(r->poller, false);
    if (!asyncio__comp_worker_pending(cd))
        asyncio__poller_comp_sleep(r->poller);
    (void)cd;
}

void asyncio__comp_ring_wake(asyncio__comp_driver *cd, uint32_t i)
{
    asyncio__poller_comp_wake(cd->wrings[i].poller);
}

unsigned asyncio__comp_ring_here(const asyncio__comp_driver *cd)
{
    return here(cd);
}

unsigned asyncio__cstream_ring(asyncio__cstream *cs)
{
    asyncio__spin_lock(&cs->lock);
    unsigned ring = cs->home;
    asyncio__spin_unlock(&cs->lock);
    return ring;
}

void asyncio__comp_ring_event(asyncio__comp_driver *cd, uint32_t i)
{
    if (i >= cd->nwrings)
        return;
    asyncio__comp_ring *r = &cd->wrings[i];
    /*
     * The eventfd is an edge registration: drained, then said so, or the
     * next signal may go unreported. io_uring ends ring 0's poll of it at
     * each of its own signals (EPOLL_URING_WAKE), and ring 0 holds back the
     * re-armed poll's first report while the fd was not drained (uring.c):
     * a signal in between was lost, and a worker asleep in ring 0 never
     * heard of its own ring's completion (the rare hang with a ring per
     * worker; test_ring_signal_while_its_watch_is_rearmed_still_wakes_ring_0).
     */
    asyncio__poller_comp_notified(r->poller);
    (void)asyncio_poller_rearm_fd(cd->poller, r->efd, ASYNCIO_READABLE);
    /* Its owner turns the ring itself while it runs: only a sleeper is woken. */
    if (cd->wake != NULL && atomic_load(&r->asleep))
        cd->wake(cd->wake_ctx, i);
}

#define LEAVE_WAIT_STEPS 2000 /* 1 ms each */

void asyncio__comp_worker_leave(asyncio__comp_driver *cd)
{
    asyncio__comp_ring *r = tl_ring;
    if (r == NULL || r->cd != cd)
        return;
    /*
     * Workers stop one by one: another may still post (a task it runs
     * starts a request, or closes a stream, homed here). Each pass takes the
     * mail, cancels everything on the ring (IORING_ASYNC_CANCEL_ANY) and
     * reaps; the mailbox closes once the ring is empty and no mail came.
     */
    for (int step = 0;; step++) {
        drain_mail(r);
        if (asyncio__poller_comp_inflight(r->poller) > 0)
            (void)asyncio__poller_comp_cancel_all(r->poller);
        (void)asyncio__poller_comp_run(r->poller);
        if (asyncio__poller_comp_inflight(r->poller) == 0 || step >= LEAVE_WAIT_STEPS) {
            asyncio__spin_lock(&r->mlock);
            bool quiet = r->mhead == NULL;
            if (quiet || step >= LEAVE_WAIT_STEPS)
                r->mclosed = true; /* a request the kernel never ended stays leaked (as at close) */
            asyncio__spin_unlock(&r->mlock);
            if (quiet || step >= LEAVE_WAIT_STEPS)
                break;
            continue;
        }
        asyncio__sleep_ms(1);
    }
    drain_mail(r); /* mail that came after the last pass (only when the reap timed out) */
    (void)asyncio__poller_comp_flush(r->poller);
    (void)asyncio_poller_deregister_fd(cd->poller, r->efd);
    tl_ring = NULL;
}

bool asyncio__comp_enabled(const asyncio__comp_driver *cd)
{
    return cd->poller != NULL;
}

bool asyncio__comp_has(const asyncio__comp_driver *cd, asyncio__cop_kind kind)
{
    return cd != NULL && cd->poller != NULL && kind >= ASYNCIO__COP_FIRST_GENERIC &&
           kind < ASYNCIO__COP_KINDS && cd->has[kind];
}

int asyncio__comp_start(asyncio__comp_driver *cd, asyncio__cop *op, asyncio__cop_done_fn done,
                        asyncio__cop_req *req)
{
    return asyncio__comp_start_multi(cd, op, NULL, done, req);
}

int asyncio__comp_start_multi(asyncio__comp_driver *cd, asyncio__cop *op, asyncio__cop_done_fn each,
                              asyncio__cop_done_fn done, asyncio__cop_req *req)
{
    if (!asyncio__comp_has(cd, req->kind))
        return ASYNCIO_ENOTSUP;
    op->cd = cd;
    op->done = done;
    op->each = each;
    req->op = (char *)op + OP_GEN;
    /* Linked before the kernel can see it: the completion unlinks it (on_generic). */
    asyncio__spin_lock(&cd->lock);
    asyncio__list_push_back(&cd->ops, &op->node);
    asyncio__spin_unlock(&cd->lock);
    atomic_fetch_add_explicit(&cd->submitted, 1, memory_order_relaxed);
    int rc = asyncio__poller_comp_submit(cd->poller, req);
    if (rc < 0) {
        asyncio__spin_lock(&cd->lock);
        asyncio__list_remove(&op->node);
        asyncio__spin_unlock(&cd->lock);
    }
    return rc;
}

void asyncio__comp_cancel(asyncio__cop *op)
{
    if (op->cd != NULL) /* NULL: left in the kernel by a runtime long gone (driver close, 4) */
        (void)asyncio__poller_comp_cancel(op->cd->poller, (char *)op + OP_GEN);
}

/* Shutdown: asks the kernel to end every request of cs still in flight. */
static void cancel_all(asyncio__comp_driver *cd, asyncio__cstream *cs)
{
    asyncio__spin_lock(&cs->lock);
    /* A worker's ring was emptied when its worker left (asyncio__comp_worker_leave). */
    bool recv = cs->home == 0 && cs->recv == RECV_ARMED;
    bool send = cs->send_busy && cs->sbuf->ring == 0;
    asyncio__spin_unlock(&cs->lock);
    if (recv)
        (void)asyncio__poller_comp_cancel(cd->poller, op_ptr(cs, OP_RECV));
    if (send)
        (void)asyncio__poller_comp_cancel(cd->poller, op_ptr(cs, OP_SEND));
}

#define CLOSE_WAIT_STEPS 2000 /* 1 ms each */

void asyncio__comp_driver_close(asyncio__comp_driver *cd)
{
    if (cd->poller == NULL)
        return;
    /* 1. Starved receives hold nothing in the kernel: drop their holds. */
    while (!asyncio__list_empty(&cd->starved)) {
        asyncio__list *n = asyncio__list_first(&cd->starved);
        asyncio__list_remove(n);
        asyncio__list_push_back(&cd->live, n);
        atomic_fetch_sub_explicit(&cd->n_starved, 1, memory_order_relaxed);
        asyncio__cstream *cs = ASYNCIO_CONTAINER_OF(n, asyncio__cstream, node);
        asyncio__spin_lock(&cs->lock);
        cs->recv = RECV_IDLE;
        asyncio__spin_unlock(&cs->lock);
        release_hold(cs);
    }
    /* 2. Cancel what is in flight (sends a closed stream was finishing included). */
    for (asyncio__list *n = cd->live.next; n != &cd->live; n = n->next)
        cancel_all(cd, ASYNCIO_CONTAINER_OF(n, asyncio__cstream, node));
    for (asyncio__list *n = cd->ops.next; n != &cd->ops; n = n->next)
        asyncio__comp_cancel(ASYNCIO_CONTAINER_OF(n, asyncio__cop, node));
    /*
     * 3. Reap: the handler frees each cstream with its last completion; each
     * generic operation's owner gets its result (a `done` that starts another
     * request, a file's deferred close, is reaped in the same loop).
     */
    asyncio_event ev[16];
    for (int step = 0; step < CLOSE_WAIT_STEPS &&
                       (!asyncio__list_empty(&cd->live) || !asyncio__list_empty(&cd->ops));
         step++) {
        size_t n = 0;
        if (asyncio_poller_wait(cd->poller, ev, ASYNCIO_ARRAY_LEN(ev), 1, &n) == 0)
            (void)asyncio__poller_comp_deliver(cd->poller);
    }
    /*
     * 4. A request the kernel never ended (it should not happen) keeps its
     * cstream: the kernel may still write to it, so it is leaked, not freed.
     * A generic one keeps its owner's block (its reference is never dropped)
     * and forgets the driver, so a later cancel by its owner does nothing.
     */
    while (!asyncio__list_empty(&cd->ops)) {
        asyncio__list *n = asyncio__list_first(&cd->ops);
        asyncio__list_remove(n);
        ASYNCIO_CONTAINER_OF(n, asyncio__cop, node)->cd = NULL;
    }
    asyncio__poller_comp_detach(cd->poller);
    for (unsigned cls = 0; cls < ASYNCIO__COMP_SEND_CLASSES; cls++) {
        for (size_t i = 0; i < cd->n_cache[cls]; i++)
            asyncio__free(cd->cache[cls][i]);
        cd->n_cache[cls] = 0;
    }
    /*
     * 5. Worker rings: their workers left (nothing in flight there); their
     * buffers were held until now by streams that are all gone. From this
     * thread the kernel refuses the ring's unregister calls (SINGLE_ISSUER):
     * closing the ring releases them.
     */
    for (uint32_t i = 0; i < cd->nwrings; i++) {
        asyncio__comp_ring *r = &cd->wrings[i];
        for (asyncio__cmsg *m = r->mhead, *next; m != NULL; m = next) {
            next = m->next; /* only after a leave that timed out */
            asyncio__free(m);
        }
        if (r->poller != NULL) {
            asyncio__poller_comp_detach(r->poller);
            (void)asyncio_poller_free(r->poller);
        }
    }
    asyncio__free(cd->wrings);
    asyncio__free(cd->blen);
    asyncio__free(cd->bnext);
    cd->wrings = NULL;
    cd->nwrings = 0;
    cd->blen = NULL;
    cd->bnext = NULL;
    cd->poller = NULL;
}

/* ------------------------------------------------------------------------ */
/* Streams                                                                   */

int asyncio__cstream_new(asyncio__comp_driver *cd, int fd, asyncio__cstream **out)
{
    asyncio__cstream *cs = asyncio__calloc(1, sizeof *cs);
    if (cs == NULL)
        return ASYNCIO_ENOMEM;
    cs->cd = cd;
    cs->fd = fd;
    atomic_init(&cs->lock.held, false);
    asyncio__list_node_init(&cs->node);
    cs->use_recv = cd->recv;
    cs->use_send = cd->send;
    cs->q_head = cs->q_tail = BID_NONE;
    cs->rwaker = cs->wwaker = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_lock(&cd->lock);
    asyncio__list_push_back(&cd->live, &cs->node);
    asyncio__spin_unlock(&cd->lock);
    *out = cs;
    return 0;
}

bool asyncio__cstream_reads(const asyncio__cstream *cs)
{
    return cs != NULL && cs->use_recv;
}

bool asyncio__cstream_writes(const asyncio__cstream *cs)
{
    return cs != NULL && cs->use_send;
}

/* cs lock held: unlinks every queued buffer into bids[] (at most cap); returns the count. */
static size_t unqueue_all_locked(asyncio__cstream *cs, uint16_t *bids, size_t cap)
{
    size_t n = 0;
    while (cs->q_head != BID_NONE && n < cap) {
        bids[n++] = cs->q_head;
        cs->q_head = atomic_load_explicit(&cs->cd->bnext[cs->q_head], memory_order_relaxed);
    }
    if (cs->q_head == BID_NONE)
        cs->q_tail = BID_NONE;
    cs->q_off = 0;
    return n;
}

static bool cstream_close(asyncio__cstream *cs, bool now);

void asyncio__cstream_close(asyncio__cstream *cs)
{
    bool handed = cstream_close(cs, true);
    ASYNCIO_CHECK(!handed); /* nothing was in flight */
}

bool asyncio__cstream_close_queued(asyncio__cstream *cs)
{
    return cstream_close(cs, false);
}

/* One direction's request on a worker's ring: which ring, and the SQ mark after its SQE. */
typedef struct {
    unsigned ring; /* 0: none there (ring 0, or nothing in flight) */
    uint16_t mark;
} ring_side;

static asyncio__cmsg *new_msg(int kind, int fd)
{
    asyncio__cmsg *m;
    while ((m = asyncio__malloc(sizeof *m)) == NULL)
        asyncio__sleep_ms(1); /* a close or cancel cannot be dropped: wait for memory */
    *m = (asyncio__cmsg){.kind = kind, .fd = fd};
    return m;
}

/*
 * A stream with a request on a worker's ring is closing (comp.h "Rings").
 * Another thread cannot submit that ring's queue, and an SQE of the stream
 * still queued there would meet the fd number reused after a close. So:
 *   - our own ring and ring 0 we submit now (any SQE of ours goes out);
 *   - a worker's ring whose kernel SQ head is past the request's mark holds
 *     nothing of ours any more (and none can come: `closed` is set);
 *   - if every ring is so, the caller closes the fd now, and only the
 *     receive's cancel goes to its ring (mail, or queued on ours);
 *   - else the ring that still holds our SQE closes the fd behind its queue
 *     (a second such ring first forwards the close once it submitted).
 * Returns true when a ring will close the fd (the caller only deregisters).
 */
static bool close_on_rings(asyncio__comp_driver *cd, asyncio__cstream *cs, bool cancel,
                           ring_side rs, ring_side ss)
{
    unsigned me = here(cd);
    void *recv = cancel ? op_ptr(cs, OP_RECV) : NULL;
    if (recv != NULL && rs.ring == 0)
        (void)asyncio__poller_comp_cancel_later(cd->poller, recv); /* the caller submits it */
    if (recv != NULL && rs.ring != 0 && rs.ring == me)
        (void)asyncio__poller_comp_cancel_later(ring_at(cd, me)->poller, recv);
    /* Workers' rings other than ours that may still hold an SQE of the stream. */
    unsigned busy[2];
    int nbusy = 0;
    const ring_side sides[2] = {rs, ss};
    for (int i = 0; i < 2; i++) {
        unsigned r = sides[i].ring;
        if (r == 0 || r == me || (nbusy > 0 && busy[0] == r) ||
            asyncio__poller_comp_sq_taken(ring_at(cd, r)->poller, sides[i].mark))
            continue;
        busy[nbusy++] = r;
    }
    bool own = me != 0 && (rs.ring == me || ss.ring == me);
    if (nbusy == 0) {
        if (recv != NULL && rs.ring != 0 && rs.ring != me) {
            asyncio__cmsg *m = new_msg(MSG_CANCEL, -1);
            m->cancel = recv;
            (void)post(ring_at(cd, rs.ring), m); /* false: its worker left, having ended it */
        }
        if (!own)
            return false; /* the caller closes (its deregister submits ring 0) */
        /* Our ring: cancel, close, and what was queued before, in one io_uring_enter now. */
        asyncio_poller *p = ring_at(cd, me)->poller;
        bool closing = asyncio__poller_comp_close_fd(p, cs->fd) == 0;
        (void)asyncio__poller_comp_flush(p);
        if (closing)
            (void)asyncio__poller_comp_flush(cd->poller); /* a receive's cancel on ring 0 */
        return closing;
    }
    /* A worker's ring closes it: first everything of ours elsewhere goes out. */
    if (own)
        (void)asyncio__poller_comp_flush(ring_at(cd, me)->poller);
    (void)asyncio__poller_comp_flush(cd->poller);
    if (recv != NULL && rs.ring != 0 && rs.ring != me && rs.ring != busy[0] &&
        (nbusy < 2 || rs.ring != busy[1])) {
        asyncio__cmsg *c = new_msg(MSG_CANCEL, -1);
        c->cancel = recv;
        (void)post(ring_at(cd, rs.ring), c);
    }
    for (int i = 0; i < nbusy; i++) {
        asyncio__cmsg *m = new_msg(MSG_CLOSE, cs->fd);
        m->cancel = rs.ring == busy[i] ? recv : NULL;
        if (i + 1 < nbusy) {
            m->fwd = busy[i + 1];
            m->fwd_cancel = rs.ring == busy[i + 1] ? recv : NULL;
        }
        if (post(ring_at(cd, busy[i]), m))
            return true;
        /* Its worker left (its queue went out): the next ring, or the caller, closes. */
    }
    return false;
}

static bool cstream_close(asyncio__cstream *cs, bool now)
{
    asyncio__comp_driver *cd = cs->cd;
    uint16_t bids[64];
    size_t n;
    asyncio__spin_lock(&cs->lock);
    cs->closed = true;
    bool cancel = cs->recv == RECV_ARMED, flush = cancel || cs->send_busy;
    /*
     * A starved receive (RECV_STARVED) stays on the starved list with its
     * hold: the re-arm pass below (or a later one, or the driver's close)
     * takes it off, sees `closed` and drops the hold. One owner for that
     * hold, so the cstream is freed exactly once.
     */
    asyncio_waker rw = cs->rwaker, ww = cs->wwaker;
    cs->rwaker = cs->wwaker = ASYNCIO_WAKER_EMPTY;
    ring_side rs = {cancel ? cs->home : 0, cs->sq_mark};
    ring_side ss = {cs->send_busy ? cs->sbuf->ring : 0, cs->send_busy ? cs->sbuf->mark : 0};
    do {
        n = unqueue_all_locked(cs, bids, ASYNCIO_ARRAY_LEN(bids));
        for (size_t i = 0; i < n; i++)
            give_back(cd, bids[i]);
    } while (n == ASYNCIO_ARRAY_LEN(bids));
    bool free_now = cs->holds == 0;
    asyncio__spin_unlock(&cs->lock);
    /*
     * The cancel is submitted at once, and with it every request queued
     * before it (a send accepted just before the close): the kernel has
     * them, with their file references, before the caller closes the fd.
     * An accepted send is left to finish, as close(2) lets the socket
     * buffer drain; shutdown cancels it.
     */
    bool handed = false;
    if (rs.ring != 0 || ss.ring != 0)
        handed = close_on_rings(cd, cs, cancel, rs, ss);
    else if (flush && now)
        (void)asyncio__poller_comp_cancel(cd->poller, op_ptr(cs, OP_RECV));
    else if (flush)
        (void)asyncio__poller_comp_cancel_later(cd->poller, op_ptr(cs, OP_RECV));
    asyncio_waker_drop(&rw);
    asyncio_waker_drop(&ww);
    if (free_now)
        cstream_free(cs);
    rearm_starved(cd);
    return handed;
}

/* cs lock held: copies queued bytes into buf; consumed buffers go to bids[]. */
static size_t copy_out_locked(asyncio__cstream *cs, char *buf, size_t len, uint16_t *bids,
                              size_t cap, size_t *n_bids)
{
    asyncio__comp_driver *cd = cs->cd;
    size_t done = 0;
    *n_bids = 0;
    while (done < len && cs->q_head != BID_NONE && *n_bids < cap) {
        uint16_t bid = cs->q_head;
        uint32_t blen = atomic_load_explicit(&cd->blen[bid], memory_order_relaxed);
        size_t take = blen - cs->q_off;
        if (take > len - done)
            take = len - done;
        const char *src = asyncio__poller_comp_buffer(gid_ring(cd, bid)->poller, gid_bid(bid));
        memcpy(buf + done, src + cs->q_off, take);
        done += take;
        cs->q_off += (uint32_t)take;
        if (cs->q_off == blen) {
            bids[(*n_bids)++] = bid;
            cs->q_head = atomic_load_explicit(&cd->bnext[bid], memory_order_relaxed);
            if (cs->q_head == BID_NONE)
                cs->q_tail = BID_NONE;
            cs->q_off = 0;
        }
    }
    return done;
}

/* Gives consumed buffers back, then lets starved receives have them. */
static void recycle(asyncio__comp_driver *cd, const uint16_t *bids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        give_back(cd, bids[i]);
    if (n > 0)
        rearm_starved(cd);
}

/* cs lock held: stores cx's waker in *slot; the old one goes to *old (dropped after unlock). */
static void store_waker_locked(asyncio_waker *slot, const asyncio_waker *w, asyncio_waker *old)
{
    if (asyncio_waker_will_wake(slot, w))
        return;
    *old = *slot;
    *slot = asyncio_waker_clone(w);
}

/* What a reader finds: 1 bytes/EOF/error waiting, 0 none (receive armed as needed). */
static int read_wait(asyncio__cstream *cs, asyncio_context *cx, asyncio_waker *old)
{
    if (cs->q_head != BID_NONE || cs->rerr != 0 || cs->eof)
        return 1;
    unsigned ring;
    if (arm_locked(cs, &ring)) {
        int rc = start_locked(cs, OP_RECV, ring);
        if (rc < 0) {
            cs->recv = RECV_IDLE;
            cs->holds--;
            if (cs->rerr == 0)
                cs->rerr = err16(rc);
            return 1; /* the reader gets the error */
        }
    }
    store_waker_locked(&cs->rwaker, cx->waker, old);
    return 0;
}

static int read_pending(asyncio_waker *old)
{
    asyncio_waker_drop(old);
    return ASYNCIO_PENDING;
}

int asyncio__cstream_poll_read(asyncio__cstream *cs, asyncio_context *cx, void *buf, size_t len,
                               size_t *n_out)
{
    uint16_t bids[64];
    size_t n_bids = 0, got = 0;
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_lock(&cs->lock);
    bool ready = read_wait(cs, cx, &old) == 1;
    int rc = 0;
    if (ready) {
        got = copy_out_locked(cs, buf, len, bids, ASYNCIO_ARRAY_LEN(bids), &n_bids);
        rc = got > 0 || cs->rerr == 0 ? 0 : cs->rerr; /* bytes first, then the error / EOF */
    }
    asyncio__spin_unlock(&cs->lock);
    if (ready && rc == 0) {
        recycle(cs->cd, bids, n_bids);
        *n_out = got;
        return 0;
    }
    if (ready)
        return rc;
    return read_pending(&old);
}

int asyncio__cstream_poll_read_ready(asyncio__cstream *cs, asyncio_context *cx)
{
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_lock(&cs->lock);
    int rc = read_wait(cs, cx, &old);
    asyncio__spin_unlock(&cs->lock);
    return rc == 1 ? 0 : read_pending(&old);
}

int asyncio__cstream_stop_reads(asyncio__cstream *cs)
{
    asyncio__spin_lock(&cs->lock);
    bool busy = cs->q_head != BID_NONE || cs->recv != RECV_IDLE || cs->eof || cs->rerr != 0;
    if (!busy)
        cs->use_recv = false;
    asyncio__spin_unlock(&cs->lock);
    return busy ? ASYNCIO_ENOTSUP : 0;
}

/* Copies iov into the chunk (as much as its class holds); returns the bytes copied. */
static size_t gather(asyncio__send_chunk *chunk, const asyncio_iovec *iov, int iovcnt)
{
    size_t n = 0, cap = chunk_caps[chunk->cls];
    for (int i = 0; i < iovcnt && n < cap; i++) {
        size_t take = iov[i].len;
        if (take > cap - n)
            take = cap - n;
        if (take > 0)
            memcpy(chunk->data + n, iov[i].base, take);
        n += take;
    }
    chunk->len = (uint32_t)n;
    chunk->done = 0;
    return n;
}

static size_t iov_total(const asyncio_iovec *iov, int iovcnt)
{
    size_t n = 0;
    for (int i = 0; i < iovcnt && n <= ASYNCIO__COMP_SEND_MEDIUM; i++)
        n += iov[i].len;
    return n;
}

/* cs lock held: the writer's wait (1 free, 0 pending with the waker stored, < 0 error). */
static int write_wait_locked(asyncio__cstream *cs, asyncio_context *cx, asyncio_waker *old)
{
    if (cs->serr != 0)
        return cs->serr;

    if (!cs->send_busy)
        return 1;
    store_waker_locked(&cs->wwaker, cx->waker, old);
    return 0;
}

int asyncio__cstream_poll_write(asyncio__cstream *cs, asyncio_context *cx, const asyncio_iovec *iov,
                                int iovcnt, size_t *n_out)
{
    asyncio__comp_driver *cd = cs->cd;
    size_t want = iov_total(iov, iovcnt);
    asyncio__send_chunk *chunk = chunk_take(cd, want);
    if (chunk == NULL)
        return ASYNCIO_ENOMEM;
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_lock(&cs->lock);
    int rc = cs->shut ? ASYNCIO_EPIPE : write_wait_locked(cs, cx, &old);
    if (rc == 1 && (cs->eof || cs->rerr != 0))
        rc = ASYNCIO__CSTREAM_DIRECT; /* the peer may be gone: send(2) says at once */
    size_t n = 0;
    int src = 0;
    if (rc == 1) {
        n = gather(chunk, iov, iovcnt);
        unsigned ring = here(cd);
        chunk->ring = (uint8_t)ring;
        cs->sbuf = chunk;
        chunk = NULL;
        cs->send_busy = true;
        cs->holds++;
        src = start_locked(cs, OP_SEND, ring);
    }
    asyncio__spin_unlock(&cs->lock);
    chunk_give(cd, chunk);
    asyncio_waker_drop(&old);
    if (rc == ASYNCIO__CSTREAM_DIRECT)
        return rc;
    if (rc != 1)
        return rc == 0 ? ASYNCIO_PENDING : rc;
    rc = src;
    if (rc < 0) {
        asyncio__spin_lock(&cs->lock);
        cs->send_busy = false;
        cs->holds--;
        chunk = cs->sbuf;
        cs->sbuf = NULL;
        asyncio__spin_unlock(&cs->lock);
        chunk_give(cd, chunk);
        return rc;
    }
    *n_out = n;
    return 0;
}

int asyncio__cstream_poll_idle(asyncio__cstream *cs, asyncio_context *cx)
{
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_lock(&cs->lock);
    int rc = write_wait_locked(cs, cx, &old);
    asyncio__spin_unlock(&cs->lock);
    asyncio_waker_drop(&old);
    return rc == 1 ? 0 : rc == 0 ? ASYNCIO_PENDING : rc;
}

int asyncio__cstream_flush(asyncio__cstream *cs)
{
    asyncio__spin_lock(&cs->lock);
    int rc = cs->serr;
    asyncio__spin_unlock(&cs->lock);
    return rc;
}

int asyncio__cstream_shutdown(asyncio__cstream *cs)
{
    asyncio__spin_lock(&cs->lock);
    bool later = cs->send_busy;
    cs->shut = true;
    cs->shut_pending = later;
    asyncio__spin_unlock(&cs->lock);
    return later ? 0 : asyncio__sock_shutdown(cs->fd, SHUT_WR);
}
