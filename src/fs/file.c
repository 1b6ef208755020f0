/*
 * asyncio_file: a blocking fd driven through the blocking pool, or, where the
 * runtime's driver has the completion path (io_uring) and the kernel the
 * opcode, through the ring (reactor/comp.h), with the AsyncRead /
 * AsyncWrite vtables (io.h).
 *
 * One job at a time, on either path, chosen per job (start_job): the ring
 * when asyncio__comp_has() says the job's kind runs there and the request
 * could be queued, else the pool. Both paths fill the same outputs and
 * finish_job takes them the same way, so the cursor and the errors do not
 * depend on the path. A ring job reads into / writes from the file's own
 * buffer (never the caller's), at the fd's offset (off -1), so the
 * kernel's use of memory is bounded by the file block's lifetime.
 *
 * The ring job: `ring` goes IDLE -> BUSY (owner, at start) -> DONE (the
 * completion handler, file_done, under `lock` after writing the outputs)
 * -> IDLE (owner, taking them under `lock`). The in-flight request holds a
 * reference like a pool job; file_done drops it. A write's short
 * completion is continued by file_done (write_all semantics). Closing the
 * file while a read or stat is in flight cancels it (ASYNC_CANCEL, under
 * `lock` while it is BUSY, so the cancel cannot reach a later request of
 * the same cop); writes and syncs run on. The last reference, dropped by
 * file_done, closes the fd with a ring CLOSE when the kernel has it.
 *
 * Pool jobs: one job at a time. The file is one block shared by its owner and the job
 * in flight (refcount: 1 + one while a job is queued or running); the job
 * releases its reference when it finishes (file_job) or, if the runtime
 * cancels it before it started, through the pool's cleanup hook
 * (file_job_cancelled). Whoever releases last closes the fd and frees the
 * block, so closing a file with a job in flight is safe: the job finishes
 * on its own and closes the fd after it.
 *
 * Ownership of fields while a job is in flight (handle != NULL): the job
 * owns `buf`, `kind`, `job_len`, `seek_back` (read) and `job_rc`,
 * `job_n`, `job_md` (written); the owner touches none of them until the
 * handle reports completion. The handle's lock orders the two sides
 * (spawn publishes the inputs, the handle's completion publishes the
 * outputs); the refcount decrement is acq_rel so the last owner sees all
 * writes before freeing.
 *
 * States (handle == NULL: IDLE; else BUSY with `kind`): every operation
 * first finishes a BUSY job (finish_job) and takes its error into `error`,
 * which the next operation reports (a background write's error surfaces
 * there). Reads may leave read-ahead bytes in buf[pos, len) when a read is
 * polled again with a smaller buffer; a write gives them back by seeking
 * back first, and raw_fd is -1 while they exist (sendfile reads from the
 * fd's offset).
 */
#include <stdatomic.h>
#include <string.h>

#include "asyncio/runtime.h"
#include "fs/fs_int.h"
#include "internal.h"
#include "platform/fs_os.h"
#include "platform/thread.h"
#include "reactor/comp.h"
#include "reactor/driver.h"
#include "util/alloc.h"

enum job_kind {
    JOB_NONE = 0,  /* idle */
    JOB_READ,      /* read(2) of job_len bytes into buf */
    JOB_WRITE,     /* seek back seek_back bytes, then write buf[0, job_len) in full */
    JOB_SYNC,      /* fsync(2) */
    JOB_SYNC_DATA, /* fdatasync(2) */
    JOB_STAT,      /* fstat(2) into job_md */
    JOB_CLOSE,     /* ring only: the deferred close(2) of a closed file's fd, then the free */
};

/* asyncio_file.ring */
enum {
    RING_IDLE = 0, /* no ring request (a pool job may be in flight: handle) */
    RING_BUSY,     /* a ring request is in flight (holds a reference) */
    RING_DONE,     /* it finished: outputs written, not taken yet */
};

struct asyncio_file {
    _Atomic int refs; /* the owner + the job in flight */
    int fd;
    unsigned char *buf; /* ASYNCIO_FILE_BUF_SIZE bytes, allocated at the first read / write */
    size_t pos, len;    /* read-ahead bytes: buf[pos, len) (owner, while idle) */
    int error;          /* error of a finished job not reported yet (owner) */
    asyncio_blocking_handle *handle; /* the job in flight, or NULL */
    /* Job inputs (set by the owner before spawning). */
    uint8_t kind;
    size_t job_len;
    int64_t seek_back;
    /* Job outputs (written by the job, read by the owner after completion). */
    int job_rc;
    size_t job_n;
    asyncio_fs_metadata job_md;
    /* The ring path (see the file comment). */
    asyncio__cop cop;
    asyncio__spinlock lock; /* orders ring, waker and the outputs */
    _Atomic uint8_t ring;   /* RING_*: written under lock; the owner may peek without it */
    asyncio_waker waker;    /* the owner waiting for a BUSY request */
    size_t wdone;           /* JOB_WRITE: bytes of buf written so far */
    bool fresh;             /* the ring job was started by the current poll (owner) */
    _Alignas(8) unsigned char stx[ASYNCIO__COP_STATX_SIZE]; /* JOB_STAT's result */
};

static bool busy(const asyncio_file *f)
{
    return f->handle != NULL || atomic_load_explicit(&f->ring, memory_order_relaxed) != RING_IDLE;
}

static void file_free(asyncio_file *f)
{
    asyncio__free(f->buf);
    asyncio__free(f);
}

/* Releases one reference; the last closes the fd and frees. Returns close's error. */
static int file_unref(asyncio_file *f)
{
    /* acq_rel: the last owner sees the other side's writes before freeing. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return 0;
    int rc = asyncio__fs_close(f->fd);
    file_free(f);
    return rc;
}

/* The deferred close finished: nobody else holds the block. */
static void file_closed(asyncio__cop *op, int32_t res)
{
    (void)res; /* the owner is gone (asyncio_file_close returned): nobody to tell */
    file_free(ASYNCIO_CONTAINER_OF(op, asyncio_file, cop));
}

/*
 * The completion handler's release of the ring request's reference: the
 * last one (the file was closed meanwhile) closes the fd on the ring when
 * the kernel has CLOSE, else with close(2) here.
 */
static void file_unref_ring(asyncio_file *f, asyncio__comp_driver *cd)
{
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    f->kind = JOB_CLOSE;
    asyncio__cop_req req = {.kind = ASYNCIO__COP_CLOSE, .fd = f->fd};
    if (asyncio__comp_start(cd, &f->cop, file_closed, &req) == 0)
        return;
    (void)asyncio__fs_close(f->fd);
    file_free(f);
}

int asyncio__file_from_fd(int fd, asyncio_file **out)
{
    asyncio_file *f = asyncio__calloc(1, sizeof *f);
    if (f == NULL)
        return ASYNCIO_ENOMEM;
    atomic_init(&f->refs, 1);
    atomic_init(&f->lock.held, false);
    atomic_init(&f->ring, RING_IDLE);
    f->waker = ASYNCIO_WAKER_EMPTY;
    f->fd = fd;
    *out = f;
    return 0;
}

/* ---- the job (a blocking-pool thread) ------------------------------------ */

static int file_job(void *arg)
{
    asyncio_file *f = arg;
    int rc = 0;
    size_t n = 0;
    switch (f->kind) {
    case JOB_READ:
        rc = asyncio__fs_read(f->fd, f->buf, f->job_len, &n);
        break;
    case JOB_WRITE:
        if (f->seek_back != 0)
            rc = asyncio__fs_seek_cur(f->fd, -f->seek_back);
        if (rc == ASYNCIO_ESPIPE)
            rc = 0; /* a pipe cannot give read-ahead back; nothing else to do */
        if (rc == 0)
            rc = asyncio__fs_write_all(f->fd, f->buf, f->job_len);
        n = rc == 0 ? f->job_len : 0;
        break;
    case JOB_SYNC:
    case JOB_SYNC_DATA:
        rc = asyncio__fs_sync(f->fd, f->kind == JOB_SYNC_DATA);
        break;
    default: /* JOB_STAT */
        rc = asyncio__fs_fstat(f->fd, &f->job_md);
        break;
    }
    f->job_rc = rc;
    f->job_n = n;
    file_unref(f); /* nothing of f is touched after this */
    return rc;
}

/* The pool cancelled the job before it ran (shutdown): release its reference. */
static void file_job_cancelled(void *arg)
{
    file_unref(arg);
}

/* ---- the ring path -------------------------------------------------------- */

/* The request for the current job (its next part, for a write continued after a short one). */
static asyncio__cop_req ring_req(asyncio_file *f)
{
    asyncio__cop_req req = {.fd = f->fd, .off = -1};
    switch (f->kind) {
    case JOB_READ:
        req.kind = ASYNCIO__COP_READ;
        req.buf = f->buf;
        req.len = (uint32_t)f->job_len;
        break;
    case JOB_WRITE:
        req.kind = ASYNCIO__COP_WRITE;
        req.buf = f->buf + f->wdone;
        req.len = (uint32_t)(f->job_len - f->wdone);
        break;
    case JOB_SYNC:
    case JOB_SYNC_DATA:
        req.kind = ASYNCIO__COP_FSYNC;
        req.flags = f->kind == JOB_SYNC_DATA ? ASYNCIO__COP_F_DATASYNC : 0;
        break;
    default: /* JOB_STAT: statx of the fd itself */
        req.kind = ASYNCIO__COP_STATX;
        req.path = "";
        req.flags = ASYNCIO__COP_F_EMPTY_PATH;
        req.out = f->stx;
        break;
    }
    return req;
}

/*
 * A write's completion: true when the rest must be written (a short write,
 * or EINTR / EAGAIN), else *rc is the job's result (file_job's JOB_WRITE).
 */
static bool write_continues(asyncio_file *f, int32_t res, int *rc)
{
    if (res > 0) {
        f->wdone += (size_t)res;
        *rc = 0;
        return f->wdone < f->job_len;
    }
    if (res == ASYNCIO_EINTR || res == ASYNCIO_EAGAIN)
        return true;
    *rc = res == 0 ? ASYNCIO_EWRITE_ZERO : res;
    return false;
}

/* The completion handler (the thread turning the driver): the job's outputs, then DONE. */
static void file_done(asyncio__cop *op, int32_t res)
{
    asyncio_file *f = ASYNCIO_CONTAINER_OF(op, asyncio_file, cop);
    asyncio__comp_driver *cd = op->cd;
    int rc = res < 0 ? res : 0;
    size_t n = 0;
    if (f->kind == JOB_WRITE) {
        if (write_continues(f, res, &rc)) {
            asyncio__cop_req req = ring_req(f);
            if ((rc = asyncio__comp_start(cd, &f->cop, file_done, &req)) == 0)
                return; /* the same reference covers the rest */
        }
        n = rc == 0 ? f->job_len : 0;
    } else if (f->kind == JOB_READ) {
        n = res > 0 ? (size_t)res : 0;
    } else if (f->kind == JOB_STAT && rc == 0) {
        asyncio__poller_comp_metadata(cd->poller, f->stx, &f->job_md);
    }
    f->job_rc = rc;
    f->job_n = n;
    asyncio__spin_lock(&f->lock);
    atomic_store_explicit(&f->ring, RING_DONE, memory_order_relaxed);
    asyncio_waker w = f->waker;
    f->waker = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_unlock(&f->lock);
    asyncio_waker_wake(&w);
    file_unref_ring(f, cd);
}

/*
 * IDLE -> BUSY on the ring, when the job's kind runs there: 0 (started), or
 * ASYNCIO_ENOTSUP (not here: the caller uses the pool). A write first gives
 * read-ahead back with a seek (lseek does not block); its failure is the
 * job's result, as on the pool.
 */
static int start_ring(asyncio_file *f)
{
    asyncio__driver *d = asyncio__driver_current();
    f->wdone = 0;
    asyncio__cop_req req = ring_req(f);
    if (d == NULL || !asyncio__comp_has(&d->comp, req.kind))
        return ASYNCIO_ENOTSUP;
    int rc = 0;
    if (f->kind == JOB_WRITE && f->seek_back != 0)
        rc = asyncio__fs_seek_cur(f->fd, -f->seek_back);
    if (rc < 0 && rc != ASYNCIO_ESPIPE) { /* a pipe cannot give read-ahead back */
        f->job_rc = rc;
        f->job_n = 0;
        atomic_store_explicit(&f->ring, RING_DONE, memory_order_relaxed);
        return 0;
    }
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed); /* the request's */
    atomic_store_explicit(&f->ring, RING_BUSY, memory_order_relaxed);
    rc = asyncio__comp_start(&d->comp, &f->cop, file_done, &req);
    if (rc < 0) { /* nothing reached the kernel: the pool runs it instead */
        atomic_store_explicit(&f->ring, RING_IDLE, memory_order_relaxed);
        atomic_fetch_sub_explicit(&f->refs, 1, memory_order_relaxed);
        f->seek_back = 0; /* already given back */
        return ASYNCIO_ENOTSUP;
    }
    return 0;
}

/*
 * BUSY or DONE on the ring: 0 once DONE (back to IDLE; the outputs are
 * ours), else ASYNCIO_PENDING with cx's waker stored. A job started by
 * this same poll is never taken in it, as on the pool (where it cannot
 * have run yet): on the multi-thread runtime another worker may complete
 * it at once, and the caller still sees PENDING first (with a wake).
 */
static int ring_wait(asyncio_file *f, asyncio_context *cx)
{
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    bool fresh = f->fresh;
    f->fresh = false;
    asyncio__spin_lock(&f->lock);
    bool done = atomic_load_explicit(&f->ring, memory_order_relaxed) == RING_DONE;
    if (done && fresh) {
        asyncio__spin_unlock(&f->lock);
        asyncio_waker_wake_by_ref(cx->waker);
        return ASYNCIO_PENDING;
    }
    if (done) {
        atomic_store_explicit(&f->ring, RING_IDLE, memory_order_relaxed);
    } else if (!asyncio_waker_will_wake(&f->waker, cx->waker)) {
        old = f->waker;
        f->waker = asyncio_waker_clone(cx->waker);
    }
    asyncio__spin_unlock(&f->lock);
    asyncio_waker_drop(&old);
    return done ? 0 : ASYNCIO_PENDING;
}

/* IDLE -> BUSY: runs a job of `kind` on the ring, else queues it on the current runtime's pool. */
static int start_job(asyncio_file *f, uint8_t kind, size_t len)
{
    asyncio_runtime *rt = asyncio_runtime_current();
    if (rt == NULL)
        return ASYNCIO_EINVAL;
    if ((kind == JOB_READ || kind == JOB_WRITE) && f->buf == NULL) {
        f->buf = asyncio__malloc(ASYNCIO_FILE_BUF_SIZE);
        if (f->buf == NULL)
            return ASYNCIO_ENOMEM;
    }
    f->kind = kind;
    f->job_len = len;
    if (start_ring(f) == 0) {
        f->fresh = true;
        return 0;
    }
    int rc = asyncio__fs_job_spawn(rt, &f->refs, file_job, file_job_cancelled, f, &f->handle);
    if (rc < 0)
        f->kind = JOB_NONE; /* the job's reference was given back; handle is NULL */
    return rc;
}

/*
 * BUSY: waits for the job. 0 when it finished (*kind_out says which; its
 * error, if any, is now in f->error), or ASYNCIO_PENDING.
 */
static int finish_job(asyncio_file *f, asyncio_context *cx, uint8_t *kind_out)
{
    int rc = f->handle != NULL ? asyncio__fs_job_wait(&f->handle, cx) : ring_wait(f, cx);
    if (rc == ASYNCIO_PENDING)
        return rc;
    *kind_out = f->kind;
    f->kind = JOB_NONE;
    if (rc == ASYNCIO_ECANCELED) { /* never ran: the cleanup hook dropped its reference */
        if (f->error == 0)
            f->error = rc;
        return 0;
    }
    if (f->job_rc < 0) {
        if (f->error == 0)
            f->error = f->job_rc;
    } else if (*kind_out == JOB_READ) {
        f->pos = 0;
        f->len = f->job_n;
    }
    return 0;
}

/* The uncollected error, cleared. */
static int take_error(asyncio_file *f)
{
    int rc = f->error;
    f->error = 0;
    return rc;
}

/*
 * Finishes a job in flight, then collects the uncollected error: returns 0
 * (idle, nothing to report; *just = the finished job's kind, JOB_NONE if
 * none was in flight), ASYNCIO_PENDING, EINVAL, or the error a finished job
 * left (reported once: it is cleared).
 */
static int settle(asyncio_file *f, asyncio_context *cx, uint8_t *just)
{
    *just = JOB_NONE;
    if (cx == NULL || cx->waker == NULL)
        return ASYNCIO_EINVAL;
    int rc = busy(f) ? finish_job(f, cx, just) : 0;
    return rc != 0 ? rc : take_error(f);
}

/* ---- operations ------------------------------------------------------------ */

int asyncio_file_poll_read(asyncio_file *f, asyncio_context *cx, void *buf, size_t len,
                           size_t *n_out)
{
    if (f == NULL || n_out == NULL || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    if (len == 0) {
        *n_out = 0;
        return 0;
    }
    for (;;) {
        uint8_t just;
        int rc = settle(f, cx, &just);
        if (rc != 0)
            return rc;
        if (f->pos < f->len) { /* read-ahead first */
            size_t n = f->len - f->pos < len ? f->len - f->pos : len;
            memcpy(buf, f->buf + f->pos, n);
            f->pos += n;
            *n_out = n;
            return 0;
        }
        if (just == JOB_READ) { /* this read's job found nothing: end of file */
            *n_out = 0;
            return 0;
        }
        rc = start_job(f, JOB_READ, len < ASYNCIO_FILE_BUF_SIZE ? len : ASYNCIO_FILE_BUF_SIZE);
        if (rc < 0)
            return rc;
    }
}

int asyncio_file_poll_write(asyncio_file *f, asyncio_context *cx, const void *buf, size_t len,
                            size_t *n_out)
{
    if (f == NULL || n_out == NULL || (buf == NULL && len > 0))
        return ASYNCIO_EINVAL;
    if (len == 0) {
        *n_out = 0;
        return 0;
    }
    uint8_t just;
    int rc = settle(f, cx, &just);
    if (rc != 0)
        return rc;
    size_t n = len < ASYNCIO_FILE_BUF_SIZE ? len : ASYNCIO_FILE_BUF_SIZE;
    int64_t back = (int64_t)(f->len - f->pos);
    if (f->buf == NULL && (f->buf = asyncio__malloc(ASYNCIO_FILE_BUF_SIZE)) == NULL)
        return ASYNCIO_ENOMEM;
    memcpy(f->buf, buf, n);
    f->seek_back = back;
    if ((rc = start_job(f, JOB_WRITE, n)) < 0)
        return rc;
    f->fresh = false; /* this poll returns without waiting: the next one may take it */
    f->pos = f->len = 0; /* handed back by the job's seek */
    *n_out = n;
    return 0;
}

/* Runs one job of `kind` to completion (flushing first): 0, PENDING or an error. */
static int run_to_completion(asyncio_file *f, asyncio_context *cx, uint8_t kind)
{
    for (;;) {
        uint8_t just;
        int rc = settle(f, cx, &just);
        if (rc != 0)
            return rc;
        if (just == kind)
            return 0;
        if ((rc = start_job(f, kind, 0)) < 0)
            return rc;
    }
}

int asyncio_file_poll_flush(asyncio_file *f, asyncio_context *cx)
{
    if (f == NULL)
        return ASYNCIO_EINVAL;
    uint8_t just;
    return settle(f, cx, &just);
}

int asyncio_file_poll_sync(asyncio_file *f, asyncio_context *cx, bool data_only)
{
    if (f == NULL)
        return ASYNCIO_EINVAL;
    return run_to_completion(f, cx, data_only ? JOB_SYNC_DATA : JOB_SYNC);
}

int asyncio_file_poll_metadata(asyncio_file *f, asyncio_context *cx, asyncio_fs_metadata *out)
{
    if (f == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    int rc = run_to_completion(f, cx, JOB_STAT);
    if (rc == 0)
        *out = f->job_md;
    return rc;
}

int asyncio_file_fd(const asyncio_file *f)
{
    return f != NULL ? f->fd : -1;
}

/*
 * Close with a ring request in flight: true (and the owner's reference
 * dropped) if it was still BUSY; a read or stat is cancelled, a write or
 * sync runs on. False when the ring is IDLE or DONE (a plain close).
 */
static bool close_ring(asyncio_file *f)
{
    asyncio_waker w = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_lock(&f->lock);
    bool inflight = atomic_load_explicit(&f->ring, memory_order_relaxed) == RING_BUSY;
    if (inflight) {
        w = f->waker;
        f->waker = ASYNCIO_WAKER_EMPTY;
        /* Under the lock: file_done has not taken it, so no later request of the cop exists. */
        if (f->kind == JOB_READ || f->kind == JOB_STAT)
            asyncio__comp_cancel(&f->cop);
    }
    asyncio__spin_unlock(&f->lock);
    asyncio_waker_drop(&w);
    if (inflight)
        (void)file_unref(f); /* never the last: the request holds one */
    return inflight;
}

int asyncio_file_close(asyncio_file *f)
{
    if (f == NULL)
        return 0;
    int rc = 0;
    if (f->handle != NULL) {
        asyncio_blocking_handle_drop(f->handle); /* the job runs on and closes the fd */
        f->handle = NULL;
    } else if (close_ring(f)) {
        return 0; /* the request's completion drops the last reference and closes the fd */
    } else {
        rc = take_error(f);
    }
    int crc = file_unref(f);
    return rc != 0 ? rc : crc;
}

/* ---- AsyncRead / AsyncWrite ------------------------------------------------- */

static int v_read(void *self, asyncio_context *cx, void *buf, size_t len, size_t *n_out)
{
    return asyncio_file_poll_read(self, cx, buf, len, n_out);
}

static int v_write(void *self, asyncio_context *cx, const void *buf, size_t len, size_t *n_out)
{
    return asyncio_file_poll_write(self, cx, buf, len, n_out);
}

static int v_flush(void *self, asyncio_context *cx)
{
    return asyncio_file_poll_flush(self, cx);
}

/*
 * The fd for the zero-copy paths, only while nothing stands between the
 * caller and the fd's offset: no job in flight (it would move the offset
 * concurrently), no read-ahead bytes, no pending error.
 */
static int v_raw_fd(void *self)
{
    asyncio_file *f = self;
    if (busy(f) || f->pos < f->len || f->error != 0)
        return -1;
    return f->fd;
}

static const asyncio_reader_vtable file_reader_vt = {v_read, v_raw_fd, NULL};
static const asyncio_writer_vtable file_writer_vt = {v_write, NULL,     v_flush,
                                                     v_flush, v_raw_fd, NULL};

asyncio_reader asyncio_file_reader(asyncio_file *f)
{
    return (asyncio_reader){&file_reader_vt, f};
}

asyncio_writer asyncio_file_writer(asyncio_file *f)
{
    return (asyncio_writer){&file_writer_vt, f};
}
