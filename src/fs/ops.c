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

/* INIT -> RUNNING (or DONE when the job cannot be queued). */
static int op_start(asyncio_fs_op *op)
{
    asyncio_runtime *rt = asyncio_runtime_current();
    if (rt == NULL)
        return ASYNCIO_EINVAL; /* stays INIT */
    op_job *j = job_of(op);
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
    asyncio__fs_job_detach(&op->handle, &op->job, op_job_release);
    if (op->state == OP_STATE_INIT || op->state == OP_STATE_RUNNING) {
        op->state = OP_STATE_DONE;
        op->result = ASYNCIO_ECANCELED;
    }
}
