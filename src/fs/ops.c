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
 * (reactor/comp.h) and the kernel the opcodes, every job runs as ring
 * requests instead of a pool job, chained by the completion handler
 * (op_done): open (OPENAT), metadata (STATX), remove (UNLINKAT, then
 * UNLINKAT with AT_REMOVEDIR for a directory), rename (RENAMEAT),
 * create_dir_all (MKDIRAT per prefix, STATX where one exists), read_file
 * (OPENAT, STATX of the fd, READs until EOF into a buffer sized as the pool
 * sizes it, CLOSE) and write_file / append_file (OPENAT, WRITEs until all
 * is written, CLOSE). A job whose chain needs a kind the ring lacks (probe,
 * or ASYNCIO_URING_NO_OPS) runs whole on the pool; CLOSE alone falls back to
 * close(2) in the handler. Results and errors are the pool's on every input.
 * The request in flight holds the block's reference the pool job would
 * hold, so the paths, the data, the read buffer and the statx result
 * outlive the kernel's use of them; `ring` goes BUSY -> DONE under the
 * block's lock, where the waker is stored and taken. Dropping the future
 * while a request is in flight cancels it (ASYNC_CANCEL, issued under the
 * lock while BUSY) and marks the job dropped, so the handler starts no
 * further request (ring_next checks under the same lock) except the CLOSE
 * of an fd the chain opened, which is never cancelled; an open that
 * completes anyway has its fd closed by the last release, as on the pool.
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
    STEP_MAIN = 0,   /* the kind's first request (OPENAT, STATX, UNLINKAT, RENAMEAT, MKDIRAT) */
    STEP_RMDIR,      /* OP_REMOVE: unlink said EISDIR, rmdir it */
    STEP_MKDIR_STAT, /* OP_MKDIR_ALL: mkdir said EEXIST, is the prefix a directory? */
    STEP_FSTAT,      /* OP_READ_FILE: statx of the opened fd (type, size) */
    STEP_READ,       /* OP_READ_FILE: read into data[len, cap) at offset len */
    STEP_WRITE,      /* OP_WRITE_FILE: write wdata[wdone, wlen) at the fd's offset */
    STEP_CLOSE,      /* OP_READ_FILE, OP_WRITE_FILE: close the opened fd; `err` holds the result */
};

/* Bytes asked of one READ / WRITE request of a whole-file chain (the SQE's length is 32 bits). */
#define RING_IO_CHUNK ((size_t)1 << 30)

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
    size_t len; /* OP_READ_FILE: the buffer until taken (bytes in it) */
    size_t cap; /* OP_READ_FILE: its size while reading */
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
    size_t wdone;           /* OP_WRITE_FILE: bytes of wdata written so far */
    int err;                /* STEP_CLOSE: the chain's result so far (the handler's) */
    bool dropped;           /* the future let go: the chain stops at its next step (under lock) */
    bool closing;           /* the request in flight is the chain's CLOSE: never cancelled (lock) */
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

/*
 * read_file's buffer: the first holds one byte more than the file reports,
 * to see EOF (or growth) in one read; each next doubles it, never beyond
 * limit + 1 (the byte that proves EFBIG). Shared by the pool and the ring.
 */
static size_t read_first_cap(uint64_t size, size_t limit)
{
    size_t cap = size > 0 ? (size_t)size + 1 : 4096;
    if (cap > limit && limit < SIZE_MAX)
        cap = limit + 1;
    return cap;
}

static size_t read_next_cap(size_t cap, size_t limit)
{
    return cap <= limit / 2 ? cap * 2 : limit + 1;
}

/* Grows j->data to the next capacity (len == cap). 0 or ASYNCIO_ENOMEM. */
static int read_grow(op_job *j)
{
    size_t ncap = read_next_cap(j->cap, j->limit);
    unsigned char *nb = asyncio__realloc(j->data, ncap);
    if (nb == NULL)
        return ASYNCIO_ENOMEM;
    j->data = nb;
    j->cap = ncap;
    return 0;
}

/* The file's metadata allows reading it whole: 0, ASYNCIO_EISDIR or ASYNCIO_EFBIG. */
static int read_check(const op_job *j, const asyncio_fs_metadata *md)
{
    if (md->type == ASYNCIO_FILE_TYPE_DIR)
        return ASYNCIO_EISDIR;
    return md->size > j->limit ? ASYNCIO_EFBIG : 0;
}

/* Allocates the first buffer for a file of md->size bytes. 0 or ASYNCIO_ENOMEM. */
static int read_alloc(op_job *j, const asyncio_fs_metadata *md)
{
    j->cap = read_first_cap(md->size, j->limit);
    j->len = 0;
    j->data = asyncio__malloc(j->cap);
    return j->data != NULL ? 0 : ASYNCIO_ENOMEM;
}

/* n more bytes arrived at data[len]: 0, or ASYNCIO_EFBIG / ASYNCIO_ENOMEM. */
static int read_account(op_job *j, size_t n)
{
    j->len += n;
    if (j->len > j->limit)
        return ASYNCIO_EFBIG;
    return j->len == j->cap ? read_grow(j) : 0;
}

/* The read failed: the buffer goes (nobody may take a partial file). */
static void read_discard(op_job *j)
{
    asyncio__free(j->data);
    j->data = NULL;
    j->len = 0;
}

/* Reads the open fd to its end, at most limit bytes (EFBIG beyond). */
static int read_whole(op_job *j, int fd)
{
    asyncio_fs_metadata md;
    int rc = asyncio__fs_fstat(fd, &md);
    if (rc == 0)
        rc = read_check(j, &md);
    if (rc == 0)
        rc = read_alloc(j, &md);
    while (rc == 0) {
        size_t n = 0;
        rc = asyncio__fs_read(fd, j->data + j->len, j->cap - j->len, &n);
        if (rc < 0 || n == 0)
            break;
        rc = read_account(j, n);
    }
    if (rc < 0)
        read_discard(j);
    return rc;
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

static void op_done(asyncio__cop *cop, int32_t res);

/* OP_READ_FILE / OP_WRITE_FILE: the request of j's current step (read_file_step, write_file_step).
 */
static asyncio__cop_req whole_req(op_job *j)
{
    asyncio__cop_req req = {.fd = j->fd, .off = -1};
    switch (j->step) {
    case STEP_MAIN: /* open as the pool does (mode 0: 0666 minus the umask) */
        req.kind = ASYNCIO__COP_OPENAT;
        req.fd = ASYNCIO__COP_CWD;
        req.path = j->path;
        req.open_flags = j->kind == OP_READ_FILE ? ASYNCIO_OPEN_READ : j->flags;
        break;
    case STEP_FSTAT:
        req.kind = ASYNCIO__COP_STATX;
        req.path = "";
        req.flags = ASYNCIO__COP_F_EMPTY_PATH;
        req.out = j->stx;
        break;
    case STEP_READ: /* at offset len: the fd is ours alone, its cursor never moves */
        req.kind = ASYNCIO__COP_READ;
        req.buf = j->data + j->len;
        req.len = (uint32_t)(j->cap - j->len < RING_IO_CHUNK ? j->cap - j->len : RING_IO_CHUNK);
        req.off = (int64_t)j->len;
        break;
    case STEP_WRITE: /* at the fd's offset, which O_APPEND moves to the end */
        req.kind = ASYNCIO__COP_WRITE;
        req.buf = j->wdata + j->wdone;
        req.len =
            (uint32_t)(j->wlen - j->wdone < RING_IO_CHUNK ? j->wlen - j->wdone : RING_IO_CHUNK);
        break;
    default: /* STEP_CLOSE */
        req.kind = ASYNCIO__COP_CLOSE;
        break;
    }
    return req;
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
    case OP_MKDIR_ALL:
        req.kind = j->step == STEP_MKDIR_STAT ? ASYNCIO__COP_STATX : ASYNCIO__COP_MKDIRAT;
        req.mode = j->mode != 0 ? j->mode : 0777;
        req.out = j->stx;
        break;
    default: /* OP_READ_FILE, OP_WRITE_FILE */
        req = whole_req(j);
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

/* A whole-file chain ends with `err` (0 or an error): the opened fd is closed first. */
static int whole_close(op_job *j, int err)
{
    j->err = err;
    j->step = STEP_CLOSE;
    return 1;
}

/*
 * OP_READ_FILE: open -> statx of the fd -> reads until EOF -> close, with
 * read_whole's checks and buffer sizes, so both paths agree on every file
 * (a /proc file reporting size 0, one growing while read, a directory).
 */
static int read_file_step(op_job *j, asyncio__comp_driver *cd, int32_t res)
{
    asyncio_fs_metadata md = {0};
    int rc;
    switch (j->step) {
    case STEP_MAIN: /* opened: res is the fd (the last release closes it if the chain stops) */
        if (res < 0)
            return res;
        j->fd = res;
        j->step = STEP_FSTAT;
        return 1;
    case STEP_FSTAT:
        if (res < 0)
            return whole_close(j, res);
        asyncio__poller_comp_metadata(cd->poller, j->stx, &md);
        if ((rc = read_check(j, &md)) == 0)
            rc = read_alloc(j, &md);
        if (rc < 0)
            return whole_close(j, rc);
        j->step = STEP_READ;
        return 1;
    case STEP_READ:
        if (res == ASYNCIO_EINTR || res == ASYNCIO_EAGAIN)
            return 1; /* the pool's read(2) retries EINTR too */
        if (res <= 0)
            return whole_close(j, res); /* EOF (0) or the read's error */
        rc = read_account(j, (size_t)res);
        return rc < 0 ? whole_close(j, rc) : 1;
    default: /* STEP_CLOSE: the pool ignores close's error after a read too */
        return j->err;
    }
}

/* OP_WRITE_FILE: open -> writes until all is written (write_all) -> close (its error counts). */
static int write_file_step(op_job *j, int32_t res)
{
    switch (j->step) {
    case STEP_MAIN:
        if (res < 0)
            return res;
        j->fd = res;
        j->step = STEP_WRITE;
        return j->wlen > 0 ? 1 : whole_close(j, 0);
    case STEP_WRITE:
        if (res == ASYNCIO_EINTR || res == ASYNCIO_EAGAIN)
            return 1;
        if (res <= 0)
            return whole_close(j, res == 0 ? ASYNCIO_EWRITE_ZERO : res);
        j->wdone += (size_t)res;
        return j->wdone < j->wlen ? 1 : whole_close(j, 0);
    default: /* STEP_CLOSE: NFS and friends report write errors here */
        return j->err < 0 ? j->err : res;
    }
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
    case OP_READ_FILE:
        return read_file_step(j, cd, res);
    case OP_WRITE_FILE:
        return write_file_step(j, res);
    default: /* OP_RENAME */
        return res;
    }
}

/*
 * Starts the chain's next request (ring_req), under j->lock: a future
 * dropped meanwhile stops the chain (only a close still runs, so no fd is
 * left open), and its cancel cannot miss the request, which is either in
 * flight or never started. true when started; else *rc is the chain's
 * result (an fd still open is closed by the last release, as on the pool,
 * unless the close was the step: then close(2) runs here, its error counting
 * for a write).
 */
static bool ring_next(op_job *j, asyncio__comp_driver *cd, int *rc)
{
    bool whole = j->kind == OP_READ_FILE || j->kind == OP_WRITE_FILE;
    *rc = ASYNCIO_ECANCELED;
    asyncio__spin_lock(&j->lock);
    if (j->dropped && whole && j->fd >= 0 && j->step != STEP_CLOSE)
        whole_close(j, ASYNCIO_ECANCELED);
    if (!j->dropped || j->step == STEP_CLOSE) {
        asyncio__cop_req req = ring_req(j);
        *rc = asyncio__comp_start(cd, &j->cop, op_done, &req);
        j->closing = *rc == 0 && j->step == STEP_CLOSE;
    }
    asyncio__spin_unlock(&j->lock);
    if (*rc == 0)
        return true;
    if (j->step == STEP_CLOSE) { /* CLOSE is off here, or the ring refused it */
        int crc = asyncio__fs_close(j->fd);
        j->fd = -1;
        *rc = j->kind == OP_WRITE_FILE && j->err == 0 ? crc : j->err;
    }
    return false;
}

/* The completion handler (the thread turning the driver): next step, or the result and DONE. */
static void op_done(asyncio__cop *cop, int32_t res)
{
    op_job *j = ASYNCIO_CONTAINER_OF(cop, op_job, cop);
    asyncio__comp_driver *cd = cop->cd;
    int rc = ring_step(j, cd, res);
    if (rc != 1 && j->step == STEP_CLOSE)
        j->fd = -1; /* the ring closed it (whatever close said, the number is no longer ours) */
    if (rc == 1 && ring_next(j, cd, &rc))
        return; /* the same reference covers the next request */
    if (rc < 0 && j->kind == OP_READ_FILE)
        read_discard(j); /* a partial file is nobody's */
    j->result = rc;
    asyncio__spin_lock(&j->lock);
    j->ring = RING_DONE;
    asyncio_waker w = j->waker;
    j->waker = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_unlock(&j->lock);
    asyncio_waker_wake(&w);
    op_job_unref(j);
}

/* Whether every request j's chain needs runs on cd's ring (CLOSE may fall back to close(2)). */
static bool ring_runs(const asyncio__comp_driver *cd, const op_job *j)
{
    switch (j->kind) {
    case OP_MKDIR_ALL: /* mkdir -p needs STATX too (an existing prefix) */
        return asyncio__comp_has(cd, ASYNCIO__COP_MKDIRAT) &&
               asyncio__comp_has(cd, ASYNCIO__COP_STATX);
    case OP_READ_FILE:
        return asyncio__comp_has(cd, ASYNCIO__COP_OPENAT) &&
               asyncio__comp_has(cd, ASYNCIO__COP_STATX) &&
               asyncio__comp_has(cd, ASYNCIO__COP_READ);
    case OP_WRITE_FILE:
        return asyncio__comp_has(cd, ASYNCIO__COP_OPENAT) &&
               asyncio__comp_has(cd, ASYNCIO__COP_WRITE);
    default: /* one kind each: checked by asyncio__comp_start */
        return true;
    }
}

/* INIT -> RING when the job's chain runs on the ring here: 0, else ASYNCIO_ENOTSUP (use the pool).
 */
static int ring_start(asyncio_fs_op *op, op_job *j)
{
    asyncio__driver *d = asyncio__driver_current();
    if (d == NULL || !ring_runs(&d->comp, j))
        return ASYNCIO_ENOTSUP;
    if (j->kind == OP_MKDIR_ALL) {
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

/*
 * Drop while RING: stops the chain and cancels the request in flight, if
 * any (under the lock: see ring_next). Between two requests of a chain the
 * cancel finds nothing in the kernel, and `dropped` stops the next one.
 */
static void ring_drop(op_job *j)
{
    asyncio_waker w = ASYNCIO_WAKER_EMPTY;
    asyncio__spin_lock(&j->lock);
    if (j->ring == RING_BUSY) {
        w = j->waker;
        j->waker = ASYNCIO_WAKER_EMPTY;
        j->dropped = true; /* no next request starts (ring_next) */
        if (!j->closing)   /* a cancelled close could leave the fd open */
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
