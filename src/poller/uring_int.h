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
    /*
     * Buffers in circulation (in the ring, in the CQ or in streams): written
     * under buf_lock, read anywhere. The others are parked (never used, or
     * given back by a trim): a stack, under buf_lock; grow() pops from it.
     */
    _Atomic uint16_t circulating;
    uint16_t n_parked;
    uint16_t parked[ASYNCIO__COMP_BUF_COUNT];
    bool registered; /* the buffer ring is registered (a trim re-registers it) */
    asyncio__spinlock buf_lock;
    /*
     * Owner only (the thread that reaps): buffer CQEs taken since the ring was
     * registered, i.e. the kernel's head once those still in the CQ are added
     * (mod 2^16, as the kernel counts); and since when the waits found nothing
     * (asyncio__clock_now_ms; 0: not quiet), for the trim.
     */
    uint16_t consumed;
    uint64_t quiet_since;
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

/*
 * The waiting owner, after a wait of timeout_ms (uring.c) in which `got`
 * events came. After URING_TRIM_QUIET_MS of waits that found nothing (one
 * wait that long, or several shorter ones), gives back the buffers a burst
 * put into circulation beyond the first ASYNCIO__COMP_BUF_FIRST
 * (asyncio__uring_comp_trim). Reads the clock only on empty waits shorter
 * than that while more than those circulate.
 */
void asyncio__uring_comp_after_wait(uring_backend *b, size_t got, int timeout_ms);

/*
 * The timeout a wait may block for while a trim is due: at most
 * URING_TRIM_QUIET_MS when more than ASYNCIO__COMP_BUF_FIRST buffers
 * circulate on a ring only this thread submits to (else timeout_ms as is).
 */
int asyncio__uring_comp_wait_cap(uring_backend *b, int timeout_ms);

/*
 * Gives the circulating buffers that are in the ring back to the kernel
 * (MADV_DONTNEED) and parks all but what keeps ASYNCIO__COMP_BUF_FIRST in
 * circulation, by replacing the ring: unregister, count what the kernel
 * took, register a new ring with the kept ones (docs/backends.md, "Giving
 * buffers back after a burst"). Only on a ring whose every request this
 * thread submitted (asyncio__uring_sole_submitter): then every buffer the
 * kernel took was taken by task work that ran on this thread and posted its
 * CQE before the unregister returned. Owner thread, no lock held, nothing
 * waiting in the completion batch. Returns the buffers parked (0: nothing
 * done).
 */
unsigned asyncio__uring_comp_trim(uring_backend *b);

/* Quiet time after which the waiting owner trims (ms). */
#define URING_TRIM_QUIET_MS 1000

#endif
