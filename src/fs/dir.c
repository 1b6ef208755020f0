/*
 * asyncio_read_dir: a directory listing read in batches by blocking-pool
 * jobs.
 *
 * Ownership: one job block (path copy, the directory stream, one batch of
 * entries) shared by the iterator and the job in flight, refcounted as in
 * ops.c, through the same asyncio__fs_job_* helpers (fs_int.h: the job's
 * reference is dropped when it returns, or by the pool's cleanup hook if
 * the runtime cancels it before it ran). The last owner closes the stream
 * and frees the block. While a job runs it owns the batch; the iterator
 * reads the batch only between jobs (IDLE).
 */
#include <stdatomic.h>
#include <string.h>

#include "asyncio/runtime.h"
#include "fs/fs_int.h"
#include "internal.h"
#include "platform/fs_os.h"
#include "util/alloc.h"

/* Entries read by one job. */
#define DIR_BATCH 32

/* asyncio_read_dir.state */
enum {
    DIR_INVALID = 0, /* init failed (result says why) */
    DIR_IDLE,        /* between jobs: hand out batch[next..count), then start a job */
    DIR_RUNNING,     /* a job fills the batch */
    DIR_DONE,        /* result: 1 at the end, or an error (sticky) */
};

typedef struct dir_job {
    _Atomic int refs;     /* the iterator + the job while queued or running */
    asyncio__fs_dir *dir; /* opened by the first job */
    int result;           /* last job: 0, 1 (end reached) or an error */
    size_t count;         /* entries in the batch */
    asyncio_file_type types[DIR_BATCH];
    char names[DIR_BATCH][ASYNCIO__FS_NAME_MAX + 1];
    char path[];
} dir_job;

static void dir_job_unref(dir_job *j)
{
    /* acq_rel: the last owner sees the other side's writes before freeing. */
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
        return;
    asyncio__fs_closedir(j->dir);
    asyncio__free(j);
}

/* A blocking-pool thread: opens the stream if needed and reads one batch. */
static int dir_job_run(void *arg)
{
    dir_job *j = arg;
    int rc = j->dir == NULL ? asyncio__fs_opendir(j->path, &j->dir) : 0;
    j->count = 0;
    while (rc == 0 && j->count < DIR_BATCH) {
        rc = asyncio__fs_readdir(j->dir, j->names[j->count], &j->types[j->count]);
        if (rc == 0)
            j->count++;
    }
    j->result = rc;
    dir_job_unref(j); /* nothing of j is touched after this */
    return rc < 0 ? rc : 0;
}

/*
 * Releases one reference: the job's, as the pool's cleanup hook when the
 * runtime cancels it before it ran (shutdown), or the iterator's at drop.
 */
static void dir_job_release(void *arg)
{
    dir_job_unref(arg);
}

int asyncio_read_dir_init(asyncio_read_dir *rd, const char *path)
{
    if (rd == NULL)
        return ASYNCIO_EINVAL;
    memset(rd, 0, sizeof *rd);
    rd->state = DIR_INVALID;
    rd->result = ASYNCIO_EINVAL;
    if (path == NULL || path[0] == '\0')
        return ASYNCIO_EINVAL;
    size_t n = strlen(path) + 1;
    dir_job *j = asyncio__calloc(1, sizeof *j + n);
    if (j == NULL) {
        rd->result = ASYNCIO_ENOMEM;
        return rd->result;
    }
    atomic_init(&j->refs, 1);
    memcpy(j->path, path, n);
    rd->job = j;
    rd->state = DIR_IDLE;
    rd->result = 0;
    return 0;
}

/* IDLE with the batch used up: the next job, or DONE. */
static int dir_next_batch(asyncio_read_dir *rd)
{
    dir_job *j = rd->job;
    if (j->result != 0) { /* the last job hit the end or an error */
        rd->state = DIR_DONE;
        rd->result = j->result;
        return 0;
    }
    asyncio_runtime *rt = asyncio_runtime_current();
    if (rt == NULL)
        return ASYNCIO_EINVAL;
    int rc = asyncio__fs_job_spawn(rt, &j->refs, dir_job_run, dir_job_release, j, &rd->handle);
    if (rc < 0) {
        rd->state = DIR_DONE;
        rd->result = rc;
        return 0;
    }
    rd->state = DIR_RUNNING;
    return 0;
}

static int dir_wait(asyncio_read_dir *rd, asyncio_context *cx)
{
    int rc = asyncio__fs_job_wait(&rd->handle, cx);
    if (rc == ASYNCIO_PENDING)
        return rc;
    rd->next = 0;
    if (rc == ASYNCIO_ECANCELED) { /* never ran: the batch is empty */
        rd->state = DIR_DONE;
        rd->result = rc;
        return 0;
    }
    rd->state = DIR_IDLE;
    return 0;
}

int asyncio_read_dir_poll_next(asyncio_read_dir *rd, asyncio_context *cx, asyncio_dir_entry *entry)
{
    if (rd == NULL || cx == NULL || cx->waker == NULL || entry == NULL)
        return ASYNCIO_EINVAL;
    for (;;) {
        int rc = 0;
        dir_job *j = rd->job;
        switch (rd->state) {
        case DIR_IDLE:
            if (rd->next < j->count) {
                entry->name = j->names[rd->next];
                entry->type = j->types[rd->next];
                rd->next++;
                return 0;
            }
            rc = dir_next_batch(rd);
            break;
        case DIR_RUNNING:
            rc = dir_wait(rd, cx);
            break;
        case DIR_DONE:
            if (rd->result == 1) {
                entry->name = NULL;
                entry->type = ASYNCIO_FILE_TYPE_UNKNOWN;
                return 0;
            }
            return rd->result;
        default: /* DIR_INVALID */
            return rd->result;
        }
        if (rc != 0)
            return rc;
    }
}

void asyncio_read_dir_drop(asyncio_read_dir *rd)
{
    if (rd == NULL)
        return;
    asyncio__fs_job_detach(&rd->handle, &rd->job, dir_job_release);
    if (rd->state == DIR_IDLE || rd->state == DIR_RUNNING) {
        rd->state = DIR_DONE;
        rd->result = ASYNCIO_ECANCELED;
    }
}
