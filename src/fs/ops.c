/*
 * asyncio_fs_op: one-shot path operations on the blocking pool (open,
 * metadata, create_dir_all, remove, rename, read_file, write_file,
 * append_file).
 *
 * Ownership. _init allocates one job block holding copies of the path(s)
 * and of the data to write. The block is shared by the future and, once
 * started, the pool job: refcount 1 (future) + 1 while the job is queued or
 * running. The job drops its reference when it returns (op_job_run) or,
 * when the runtime cancels it before it started, in the pool's cleanup
 * hook (op_job_release); the future drops its own at drop. The last one
 * frees the block and whatever result nobody took (an opened fd is
 * closed, a read buffer freed). So a future dropped while its job runs
 * leaks nothing and frees nothing the job still uses.
 *
 * Ordering: the job writes its results before returning; the blocking
 * handle's lock publishes them to the future (handle poll), and the
 * refcount decrement is acq_rel so the last owner sees every write.
 *
 * The ring path. Where the runtime's driver has the completion path
 * (reactor/comp.h) and the kernel the opcodes, open (OPENAT), metadata
 * (STATX), remove (UNLINKAT, then UNLINKAT with AT_REMOVEDIR for a
 * directory), rename (RENAMEAT) and create_dir_all (MKDIRAT per prefix,
 * STATX where one exists) run as ring requests instead of a pool job,
 * chained by the completion handler (op_done); read_file and write_file
 * (open + read / write loop + close) stay pool jobs. The request in flight
 * holds the block's reference the pool job would hold, so the paths and the
 * statx result outlive the kernel's use of them; `ring` goes BUSY -> DONE
 * under the block's lock, where the waker is stored and taken. Dropping the
 * future while a request is in flight cancels it (ASYNC_CANCEL, issued
 * under the lock while BUSY); an open that completes anyway has its fd
 * closed by the last release, as on the pool.
 *
 * The spawn / wait / detach steps of that protocol are the fs-internal
 * asyncio__fs_job_* helpers (fs_int.h), defined here and shared with dir.c
 * and file.c.
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

/* What the job does. */
enum op_kind {
    OP_OPEN = 1,
    OP_METADATA,
    OP_MKDIR_ALL,
    OP_REMOVE,
    OP_RENAME,
    OP_READ_FILE,
    OP_WRITE_FILE, /* flags say truncate or append */
};

/* asyncio_fs_op.state */
enum {
    OP_STATE_INVALID = 0, /* init failed (result holds why) or dropped */
    OP_STATE_INIT,        /* job block ready, not started */
    OP_STATE_RUNNING,     /* job queued or running; handle held */
    OP_STATE_DONE,        /* finished: result */
    OP_STATE_RING,        /* a ring request (chain) in flight or finished: op_job.ring */
};

/* op_job.ring */
enum {
    RING_BUSY = 1, /* a request of the chain is in flight (holds the job's reference) */
    RING_DONE,     /* the chain ended: result (and fd / md) written */
};

/* op_job.step: which request of a chain is in flight. */
enum {
    STEP_MAIN = 0,   /* the kind's request (OPENAT, STATX, UNLINKAT, RENAMEAT, MKDIRAT) */
    STEP_RMDIR,      /* OP_REMOVE: unlink said EISDIR, rmdir it */
    STEP_MKDIR_STAT, /* OP_MKDIR_ALL: mkdir said EEXIST, is the prefix a directory? */
};

typedef struct op_job {
    _Atomic int refs; /* the future + the job while queued or running */
    uint8_t kind;
    bool follow;    /* OP_METADATA: stat rather than lstat */
    uint32_t flags; /* OP_OPEN / OP_WRITE_FILE: asyncio_open_flag bits */
    uint32_t mode;
    size_t limit; /* OP_READ_FILE: largest size accepted */
    /* results (written by the job) */
    int result;
    int fd; /* OP_OPEN: the opened fd until taken, else -1 */
    unsigned char *data;
    size_t len; /* OP_READ_FILE: the buffer until taken */
    asyncio_fs_metadata md;
    /* inputs inside the block */
    const unsigned char *wdata; /* OP_WRITE_FILE: wlen bytes */
    size_t wlen;
    char *path2; /* OP_RENAME: the target */
    /* The ring path (see the file comment). */
    asyncio__cop cop;
    asyncio__spinlock lock; /* orders ring, waker and the results */
    uint8_t ring;           /* RING_*, under lock */
    uint8_t step;           /* STEP_*: the request in flight (the completion handler's) */
    size_t cut;             /* OP_MKDIR_ALL: the prefix ends here ('\0' written), or 0: the whole */
    asyncio_waker waker;
    _Alignas(8) unsigned char stx[ASYNCIO__COP_STATX_SIZE];
    char path[];
} op_job;

static void op_job_unref(op_job *j)
{
    /* acq_rel: the last owner sees the other side's writes before freeing. */
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (j->fd >= 0)
        (void)asyncio__fs_close(j->fd);
    asyncio__free(j->data);
    asyncio__free(j);
}

/* ---- the jobs (a blocking-pool thread) ------------------------------------- */

/* Reads the open fd to its end, at most limit bytes (EFBIG beyond). */
static int read_whole(op_job *j, int fd)
{
    asyncio_fs_metadata md;
    int rc = asyncio__fs_fstat(fd, &md);
    if (rc < 0)
        return rc;
    if (md.type == ASYNCIO_FILE_TYPE_DIR)
        return ASYNCIO_EISDIR;
    if (md.size > j->limit)
        return ASYNCIO_EFBIG;
    /* Room for one byte more than expected, to see EOF (or growth) in one read. */
    size_t cap = md.size > 0 ? (size_t)md.size + 1 : 4096;
    if (cap > j->limit && j->limit < SIZE_MAX)
        cap = j->limit + 1;
    size_t len = 0;
    unsigned char *buf = asyncio__malloc(cap);
    if (buf == NULL)
        return ASYNCIO_ENOMEM;
    for (;;) {
        size_t n = 0;
        rc = asyncio__fs_read(fd, buf + len, cap - len, &n);
        if (rc < 0 || n == 0)
            break;
        len += n;
        if (len > j->limit) {
            rc = ASYNCIO_EFBIG;
            break;
        }
        if (len == cap) { /* grow, never beyond limit + 1 */
            size_t ncap = cap <= j->limit / 2 ? cap * 2 : j->limit + 1;
            unsigned char *nb = asyncio__realloc(buf, ncap);
            if (nb == NULL) {
                rc = ASYNCIO_ENOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
    }
    if (rc < 0) {
        asyncio__free(buf);
        return rc;
    }
    j->data = buf;
    j->len = len;
    return 0;
}

static int run_kind(op_job *j)
{
    int rc, fd;
    switch (j->kind) {
    case OP_OPEN:
        return asyncio__fs_open(j->path, j->flags, j->mode, &j->fd);
    case OP_METADATA:
        return asyncio__fs_stat(j->path, j->follow, &j->md);
    case OP_MKDIR_ALL:
        return asyncio__fs_mkdir_all(j->path, j->mode);
    case OP_REMOVE:
        return asyncio__fs_remove(j->path);
    case OP_RENAME:
        return asyncio__fs_rename(j->path, j->path2);
    case OP_READ_FILE:
        if ((rc = asyncio__fs_open(j->path, ASYNCIO_OPEN_READ, 0, &fd)) < 0)
            return rc;
        rc = read_whole(j, fd);
        (void)asyncio__fs_close(fd);
        return rc;
    default: /* OP_WRITE_FILE */
        if ((rc = asyncio__fs_open(j->path, j->flags, 0, &fd)) < 0)
            return rc;
        rc = asyncio__fs_write_all(fd, j->wdata, j->wlen);
        int crc = asyncio__fs_close(fd); /* NFS and friends report write errors here */
        return rc < 0 ? rc : crc;
    }
}

static int op_job_run(void *arg)
{
    op_job *j = arg;
    int rc = run_kind(j);
    j->result = rc;
    op_job_unref(j); /* nothing of j is touched after this */
    return rc;
}

/*
 * Releases one reference: the job's, as the pool's cleanup hook when the
 * runtime cancels it before it ran (shutdown), or the future's at drop.
 */
static void op_job_release(void *arg)
{
    op_job_unref(arg);
}

/* ---- pool jobs shared with a future (fs_int.h; dir.c and file.c too) -------- */

int asyncio__fs_job_spawn(asyncio_runtime *rt, _Atomic int *refs, asyncio_blocking_fn run,
                          asyncio_blocking_cancel_fn release, void *job,
                          asyncio_blocking_handle **handle)
{
    atomic_fetch_add_explicit(refs, 1, memory_order_relaxed); /* the job's; spawn publishes */
    int rc = asyncio_spawn_blocking_with_cleanup(rt, run, release, job, handle);
    if (rc < 0) {
        atomic_fetch_sub_explicit(refs, 1, memory_order_relaxed); /* never reached a thread */
        *handle = NULL;
    }
    return rc;
}

int asyncio__fs_job_wait(asyncio_blocking_handle **handle, asyncio_context *cx)
{
    int rc = asyncio_blocking_handle_poll(*handle, cx);
    if (rc == ASYNCIO_PENDING)
        return rc;
    asyncio_blocking_handle_drop(*handle);
    *handle = NULL;
    return rc;
}

void asyncio__fs_job_detach(asyncio_blocking_handle **handle, void **job,
                            asyncio_blocking_cancel_fn release)
{
    if (*handle != NULL) {
        asyncio_blocking_handle_drop(*handle); /* the job runs on, detached */
        *handle = NULL;
    }
    if (*job != NULL) {
        release(*job);
        *job = NULL;
    }
}

/* ---- init --------------------------------------------------------------------- */

/*
 * Allocates the block: path, then path2 and data (either may be absent).
 * On failure the op is INVALID with the error as its result (drop is fine).
 */
static int op_init(asyncio_fs_op *op, uint8_t kind, const char *path, const char *path2,
                   const void *data, size_t dlen)
{
    if (op == NULL)
        return ASYNCIO_EINVAL;
    memset(op, 0, sizeof *op);
    op->state = OP_STATE_INVALID;
    op->result = ASYNCIO_EINVAL;
    if (path == NULL || path[0] == '\0' || (kind == OP_RENAME && (path2 == NULL || !path2[0])) ||
        (data == NULL && dlen > 0))
        return ASYNCIO_EINVAL;
    size_t n1 = strlen(path) + 1, n2 = path2 != NULL ? strlen(path2) + 1 : 0;
    if (dlen > SIZE_MAX - sizeof(op_job) - n1 - n2) {
        op->result = ASYNCIO_ENOMEM;
        return op->result;
    }
    op_job *j = asyncio__calloc(1, sizeof *j + n1 + n2 + dlen);
    if (j == NULL) {
        op->result = ASYNCIO_ENOMEM;
        return op->result;
    }
    atomic_init(&j->refs, 1);
    atomic_init(&j->lock.held, false);
    j->kind = kind;
    j->fd = -1;
    memcpy(j->path, path, n1);
    if (path2 != NULL) {
        j->path2 = j->path + n1;
        memcpy(j->path2, path2, n2);
    }
    if (dlen > 0) {
        unsigned char *d = (unsigned char *)j->path + n1 + n2;
        memcpy(d, data, dlen);
        j->wdata = d;
    }
    j->wlen = dlen;
    op->job = j;
    op->state = OP_STATE_INIT;
    op->result = 0;
    return 0;
}

static op_job *job_of(asyncio_fs_op *op)
{
    return op->job;
}

int asyncio_fs_open_init(asyncio_fs_op *op, const char *path, const asyncio_open_options *opts)
{
    if (opts == NULL || asyncio__fs_check_open_flags(opts->flags) < 0) {
        if (op != NULL) {
            memset(op, 0, sizeof *op);
            op->result = ASYNCIO_EINVAL;
        }
        return ASYNCIO_EINVAL;
    }
    int rc = op_init(op, OP_OPEN, path, NULL, NULL, 0);
    if (rc == 0) {
        job_of(op)->flags = opts->flags;
        job_of(op)->mode = opts->mode;
    }
    return rc;
}

int asyncio_fs_metadata_init(asyncio_fs_op *op, const char *path, bool follow_links)
{
    int rc = op_init(op, OP_METADATA, path, NULL, NULL, 0);
    if (rc == 0)
        job_of(op)->follow = follow_links;
    return rc;
}

int asyncio_fs_create_dir_all_init(asyncio_fs_op *op, const char *path, uint32_t mode)
{
    int rc = op_init(op, OP_MKDIR_ALL, path, NULL, NULL, 0);
    if (rc == 0)
        job_of(op)->mode = mode;
    return rc;
}

int asyncio_fs_remove_init(asyncio_fs_op *op, const char *path)
{
    return op_init(op, OP_REMOVE, path, NULL, NULL, 0);
}

int asyncio_fs_rename_init(asyncio_fs_op *op, const char *from, const char *to)
{
    return op_init(op, OP_RENAME, from, to, NULL, 0);
}

int asyncio_fs_read_file_init(asyncio_fs_op *op, const char *path, size_t max_size)
{
    int rc = op_init(op, OP_READ_FILE, path, NULL, NULL, 0);
    if (rc == 0)
        job_of(op)->limit = max_size;
    return rc;
}

static int write_file_init(asyncio_fs_op *op, const char *path, const void *data, size_t len,
                           uint32_t flags)
{
    int rc = op_init(op, OP_WRITE_FILE, path, NULL, data, len);
    if (rc == 0)
        job_of(op)->flags = flags;
    return rc;
}

int asyncio_fs_write_file_init(asyncio_fs_op *op, const char *path, const void *data, size_t len)
{
    return write_file_init(op, path, data, len,
                           ASYNCIO_OPEN_WRITE | ASYNCIO_OPEN_CREATE | ASYNCIO_OPEN_TRUNCATE);
}

int asyncio_fs_append_file_init(asyncio_fs_op *op, const char *path, const void *data, size_t len)
{
    return write_file_init(op, path, data, len, ASYNCIO_OPEN_APPEND | ASYNCIO_OPEN_CREATE);
}

/* ---- poll / take / drop ------------------------------------------------------- */

/* ---- the ring path ------------------------------------------------------------- */

/* OP_MKDIR_ALL: cuts the path at the next separator after j->cut (0: the first); see mkdir_all. */
static void mkdir_next_prefix(op_job *j)
{
    for (char *p = j->path + j->cut + 1; *p != '\0'; p++) {
        if (*p == '/' && p[-1] != '/') {
            *p = '\0';
            j->cut = (size_t)(p - j->path);
            return;
        }
    }
    j->cut = 0; /* no separator left: the whole path */
}

/* The request of j's current step. */
static asyncio__cop_req ring_req(op_job *j)
{
    asyncio__cop_req req = {.fd = ASYNCIO__COP_CWD, .path = j->path};
    switch (j->kind) {
    case OP_OPEN:
        req.kind = ASYNCIO__COP_OPENAT;
        req.open_flags = j->flags;
        req.mode = j->mode;
        break;
    case OP_METADATA:
        req.kind = ASYNCIO__COP_STATX;
        req.flags = j->follow ? 0 : ASYNCIO__COP_F_NOFOLLOW;
        req.out = j->stx;
        break;
    case OP_REMOVE:
        req.kind = ASYNCIO__COP_UNLINKAT;
        req.flags = j->step == STEP_RMDIR ? ASYNCIO__COP_F_REMOVEDIR : 0;
        break;
    case OP_RENAME:
        req.kind = ASYNCIO__COP_RENAMEAT;
        req.path2 = j->path2;
        break;
    default: /* OP_MKDIR_ALL */
        req.kind = j->step == STEP_MKDIR_STAT ? ASYNCIO__COP_STATX : ASYNCIO__COP_MKDIRAT;
        req.mode = j->mode != 0 ? j->mode : 0777;
        req.out = j->stx;
        break;
    }
    return req;
}

/*
 * OP_MKDIR_ALL: the current prefix's request completed with res. Returns 1
 * when a next request is due (step and cut set), else the chain's result
 * (0 or an error), as asyncio__fs_mkdir_all.
 */
static int mkdir_step(op_job *j, asyncio__comp_driver *cd, int32_t res)
{
    bool last = j->cut == 0;
    if (j->step == STEP_MAIN && res == ASYNCIO_EEXIST) {
        j->step = STEP_MKDIR_STAT; /* an existing directory is fine: stat it */
        return 1;
    }
    if (j->step == STEP_MKDIR_STAT) {
        asyncio_fs_metadata md = {0};
        if (res == 0)
            asyncio__poller_comp_metadata(cd->poller, j->stx, &md);
        res = res == 0 && md.type == ASYNCIO_FILE_TYPE_DIR ? 0 : ASYNCIO_EEXIST;
        if (res < 0 && !last)
            res = ASYNCIO_ENOTDIR; /* a parent exists and is no directory */
    }
    if (res < 0 || last)
        return res;
    j->path[j->cut] = '/';
    j->step = STEP_MAIN;
    mkdir_next_prefix(j);
    return 1;
}

/* A request's result: 1 when the chain goes on (the next step is set), else its result. */
static int ring_step(op_job *j, asyncio__comp_driver *cd, int32_t res)
{
    switch (j->kind) {
    case OP_OPEN:
        if (res >= 0)
            j->fd = res;
        return res >= 0 ? 0 : res;
    case OP_METADATA:
        if (res == 0)
            asyncio__poller_comp_metadata(cd->poller, j->stx, &j->md);
        return res;
    case OP_REMOVE:
        if (j->step == STEP_MAIN && res == ASYNCIO_EISDIR) { /* Linux's answer for a directory */
            j->step = STEP_RMDIR;
            return 1;
        }
        return j->step == STEP_RMDIR && res == ASYNCIO_EEXIST ? ASYNCIO_ENOTEMPTY : res;
    case OP_MKDIR_ALL:
        return mkdir_step(j, cd, res);
    default: /* OP_RENAME */
        return res;
    }
}

/* The completion handler (the thread turning the driver): next step, or the result and DONE. */
static void op_done(asyncio__cop *cop, int32_t res)
{
    op_job *j = ASYNCIO_CONTAINER_OF(cop, op_job, cop);
    asyncio__comp_driver *cd = cop->cd;
    int rc = ring_step(j, cd, res);
    if (rc == 1) {
        asyncio__cop_req req = ring_req(j);
        if ((rc = asyncio__comp_start(cd, &j->cop, op_done, &req)) == 0)
            return; /* the same reference covers the next request */
    }
    j->result = rc;
    asyncio__spin_lock(&j->lock);
    j->ring = RING_DONE;
    asyncio_waker w = j->waker;
    j->waker = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_unlock(&j->lock);
    asyncio_waker_wake(&w);
    op_job_unref(j);
}

/* INIT -> RING when the kind runs on the ring here: 0, else ASYNCIO_ENOTSUP (use the pool). */
static int ring_start(asyncio_fs_op *op, op_job *j)
{
    asyncio__driver *d = asyncio__driver_current();
    if (d == NULL || j->kind == OP_READ_FILE || j->kind == OP_WRITE_FILE)
        return ASYNCIO_ENOTSUP;
    /* mkdir -p needs STATX too (an existing prefix); the others one kind each. */
    if (j->kind == OP_MKDIR_ALL) {
        if (!asyncio__comp_has(&d->comp, ASYNCIO__COP_STATX))
            return ASYNCIO_ENOTSUP;
        size_t len = strlen(j->path);
        while (len > 1 && j->path[len - 1] == '/')
            j->path[--len] = '\0'; /* "a/b/" is "a/b" */
        j->cut = 0;
        mkdir_next_prefix(j);
    }
    j->step = STEP_MAIN;
    j->ring = RING_BUSY;
    j->waker = ASYNCIO_WAKER_EMPTY;
    asyncio__cop_req req = ring_req(j);
    atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed); /* the request's */
    int rc = asyncio__comp_start(&d->comp, &j->cop, op_done, &req);
    if (rc < 0) {
        atomic_fetch_sub_explicit(&j->refs, 1, memory_order_relaxed);
        if (j->kind == OP_MKDIR_ALL && j->cut != 0)
            j->path[j->cut] = '/';
        return ASYNCIO_ENOTSUP;
    }
    op->state = OP_STATE_RING;
    return 0;
}

/* RING: 0 once the chain is DONE (its result taken), else ASYNCIO_PENDING with the waker stored. */
static int ring_wait(asyncio_fs_op *op, asyncio_context *cx)
{
    op_job *j = job_of(op);
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_lock(&j->lock);
    bool done = j->ring == RING_DONE;
    if (!done && !asyncio_waker_will_wake(&j->waker, cx->waker)) {
        old = j->waker;
        j->waker = asyncio_waker_clone(cx->waker);
    }
    asyncio__spin_unlock(&j->lock);
    asyncio_waker_drop(&old);
    if (!done)
        return ASYNCIO_PENDING;
    op->state = OP_STATE_DONE;
    op->result = j->result;
    if (op->result == 0 && j->kind == OP_METADATA)
        op->metadata = j->md;
    return 0;
}

/* Drop while RING: cancels a request still in flight (under the lock: see the file comment). */
static void ring_drop(op_job *j)
{
    asyncio_waker w = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_lock(&j->lock);
    if (j->ring == RING_BUSY) {
        w = j->waker;
        j->waker = ASYNCIO_WAKER_EMPTY;
        asyncio__comp_cancel(&j->cop);
    }
    asyncio__spin_unlock(&j->lock);
    asyncio_waker_drop(&w);
}

/* INIT -> RING, RUNNING (or DONE when the job cannot be queued). */
static int op_start(asyncio_fs_op *op)
{
    asyncio_runtime *rt = asyncio_runtime_current();
    if (rt == NULL)
        return ASYNCIO_EINVAL; /* stays INIT */
    op_job *j = job_of(op);
    if (ring_start(op, j) == 0)
        return 0;
    int rc = asyncio__fs_job_spawn(rt, &j->refs, op_job_run, op_job_release, j, &op->handle);
    if (rc < 0) {
        op->state = OP_STATE_DONE;
        op->result = rc;
        return 0;
    }
    op->state = OP_STATE_RUNNING;
    return 0;
}

/* RUNNING: waits for the job, then takes its result. */
static int op_wait(asyncio_fs_op *op, asyncio_context *cx)
{
    int rc = asyncio__fs_job_wait(&op->handle, cx);
    if (rc == ASYNCIO_PENDING)
        return rc;
    op->state = OP_STATE_DONE;
    op_job *j = job_of(op);
    /* ECANCELED: never ran (the cleanup hook released its reference). */
    op->result = rc == ASYNCIO_ECANCELED ? rc : j->result;
    if (op->result == 0 && j->kind == OP_METADATA)
        op->metadata = j->md;
    return 0;
}

int asyncio_fs_op_poll(asyncio_fs_op *op, asyncio_context *cx)
{
    if (op == NULL || cx == NULL || cx->waker == NULL)
        return ASYNCIO_EINVAL;
    for (;;) {
        int rc;
        switch (op->state) {
        case OP_STATE_INIT:
            rc = op_start(op);
            break;
        case OP_STATE_RUNNING:
            rc = op_wait(op, cx);
            break;
        case OP_STATE_RING:
            rc = ring_wait(op, cx);
            break;
        default: /* DONE or INVALID: the result */
            return op->result;
        }
        if (rc != 0)
            return rc;
    }
}

int asyncio_fs_op_poll_fn(void *op, asyncio_context *cx)
{
    return asyncio_fs_op_poll(op, cx);
}

/* The finished, successful job of `kind`, or NULL. */
static op_job *finished(asyncio_fs_op *op, uint8_t kind)
{
    if (op == NULL || op->state != OP_STATE_DONE || op->result != 0 || op->job == NULL)
        return NULL;
    op_job *j = job_of(op);
    return j->kind == kind ? j : NULL;
}

int asyncio_fs_op_take_file(asyncio_fs_op *op, asyncio_file **out)
{
    op_job *j = finished(op, OP_OPEN);
    if (j == NULL || out == NULL || j->fd < 0)
        return ASYNCIO_EINVAL;
    int rc = asyncio__file_from_fd(j->fd, out);
    if (rc == 0)
        j->fd = -1;
    return rc;
}

int asyncio_fs_op_take_data(asyncio_fs_op *op, void **data, size_t *len)
{
    op_job *j = finished(op, OP_READ_FILE);
    if (j == NULL || data == NULL || len == NULL || j->data == NULL)
        return ASYNCIO_EINVAL;
    *data = j->data;
    *len = j->len;
    j->data = NULL;
    return 0;
}

void asyncio_fs_free_data(void *data)
{
    asyncio__free(data);
}

void asyncio_fs_op_drop(asyncio_fs_op *op)
{
    if (op == NULL)
        return;
    if (op->state == OP_STATE_RING)
        ring_drop(job_of(op));
    asyncio__fs_job_detach(&op->handle, &op->job, op_job_release);
    if (op->state == OP_STATE_INIT || op->state == OP_STATE_RUNNING || op->state == OP_STATE_RING) {
        op->state = OP_STATE_DONE;
        op->result = ASYNCIO_ECANCELED;
    }
}
