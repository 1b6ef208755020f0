/*
 * Shared between the io_uring poller (uring.c: readiness through POLL_ADD)
 * and its completion path (uring_comp.c: operations run by the ring, see
 * poller/completion.h). One ring, one lock.
 *
 * user_data of a request (64 bits):
 *   bit 63 set         UD_INTERNAL: a request whose CQE is ignored (cancels, barriers)
 *   bit 62 set         UD_OP: a completion operation; the rest is the caller's pointer
 *                      (user-space addresses are below 2^47)
 *   otherwise          a poll: generation (30 bits) << 32 | fd
 */
#ifndef ASYNCIO_POLLER_URING_INT_H
#define ASYNCIO_POLLER_URING_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "poller/completion.h"
#include "poller/poller_int.h"
#include "poller/uring_ring.h"

#define URING_SQ_ENTRIES 256
#define URING_CQ_ENTRIES 4096

#define UD_INTERNAL (UINT64_C(1) << 63)
#define UD_OP       (UINT64_C(1) << 62)
#define GEN_MASK    0x3fffffffu

/* Completions a wait hands to the handler per pass (the rest stay in the CQ). */
#define URING_COMP_BATCH 128

/*
 * One registered fd. The table holds one per fd number up to the highest
 * registered, whether or not it is registered, so it is packed (32 bytes):
 * every fd of an idle server costs this much of the resident set.
 */
typedef struct uring_reg {
    uintptr_t token;
    uint64_t ino;     /* the file registered (an fd closed while registered) ... */
    uint32_t dev;     /* ... with its device folded to 32 bits */
    uint32_t gen;     /* bumped on every change; part of the poll's user_data */
    uint16_t batch;   /* the wait batch (truncated) that may already hold an event for it ... */
    uint16_t slot;    /* ... at this index, so a second CQE merges into it (token checked) */
    uint8_t interest; /* 0: not registered */
    uint8_t mode;     /* asyncio_trigger */
    uint8_t quiet;    /* EDGE re-armed after the kernel ended it: readiness already reported, */
                      /* | QUIET_HELD once a report was held back as a repeat (uring.c) */
    bool in_kernel;   /* a POLL_ADD of this generation is queued or armed */
} uring_reg;

/* In uring_reg.quiet, above the readiness bits (ASYNCIO_WRITE_CLOSED is 1 << 5). */
#define QUIET_HELD 0x80u

/* The table: pages of URING_REG_PAGE entries, each allocated (zeroed) when first needed. */
#define URING_REG_PAGE_SHIFT 9u
#define URING_REG_PAGE       (1u << URING_REG_PAGE_SHIFT)

/* The completion path's state (uring_comp.c); all zero until attach. */
typedef struct uring_comp {
    asyncio__completion_fn fn; /* NULL: not attached */
    void *ctx;
    uintptr_t token;
    bool has[ASYNCIO__COP_KINDS];
    /* The provided-buffer ring (IORING_REGISTER_PBUF_RING, group 0) and its buffers. */
    struct io_uring_buf_ring *br;
    size_t br_len;
    char *bufs;
    size_t bufs_len;
    uint16_t br_tail; /* guarded by buf_lock */
    /* Buffers [0, circulating) are in the ring or in streams; the rest never were (buf_lock). */
    uint16_t circulating;
    asyncio__spinlock buf_lock;
    int efd;      /* comp_notify_fd's eventfd (> 0), or 0 */
    int wake_efd; /* comp_sleep's wake-up eventfd (> 0), or 0 (made with efd) */
    /* Operations submitted whose last completion was not taken yet (lock). */
    size_t inflight;
    /* Owner only: completions taken from the CQ by reap, handed over after unlock. */
    asyncio__completion batch[URING_COMP_BATCH];
    size_t n_batch;
} uring_comp;

typedef struct uring_backend {
    asyncio_poller *owner;
    asyncio__mutex lock;
    asyncio__uring ring;
    uring_reg **reg_pages; /* fd >> URING_REG_PAGE_SHIFT: a page, or NULL */
    size_t n_reg_pages;
    uint32_t batch; /* owner only: numbers the waits */
    /* Registrations with `quiet` set (written under lock; read without it by rearm). */
    _Atomic size_t quiet_count;
    /*
     * Polls a deregister cancelled and waits for (user_data each): the wait
     * that reads such a poll's last CQE takes it out (see uring_remove).
     */
    uint64_t *ending;
    size_t n_ending, ending_cap;
    uring_comp comp;
} uring_backend;

/* uring_comp.c: the wait's two hooks (the operations: asyncio__uring_comp_ops, poller_int.h). */

/* Lock held, owner: stores an op CQE for the handler; false when the batch is full. */
bool asyncio__uring_comp_take(uring_backend *b, const struct io_uring_cqe *c);

/* Releases the buffer ring (destroy, detach). */
void asyncio__uring_comp_release(uring_backend *b);

#endif
