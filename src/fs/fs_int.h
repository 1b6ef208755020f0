/*
 * Internals shared by src/fs/: making an asyncio_file out of an opened fd
 * (ops.c opens, file.c owns files), and the life cycle of a blocking-pool
 * job that shares a reference-counted block with a future (ops.c defines
 * it; ops.c, dir.c and file.c use it).
 *
 * The job protocol: the block's refcount counts the future + one while a job
 * is queued or running. The job drops its reference when it returns, or,
 * when the runtime cancels it before it started, through the pool's cleanup
 * hook (`release` below). Whoever releases last frees the block.
 */
#ifndef ASYNCIO_FS_INT_H
#define ASYNCIO_FS_INT_H

#include "asyncio/fs.h"

/* Wraps an opened (blocking) fd; on success the file owns it. ASYNCIO_ENOMEM. */
int asyncio__file_from_fd(int fd, asyncio_file **out);

/*
 * Queues run(job) on rt's pool, taking the job's reference on `refs` (the
 * block's refcount) first; release(job) drops that reference if the runtime
 * cancels the job before it ran. On success *handle awaits the job; on
 * failure (asyncio_spawn_blocking_with_cleanup's errors) the reference is
 * given back, *handle is NULL and neither function runs.
 */
int asyncio__fs_job_spawn(asyncio_runtime *rt, _Atomic int *refs, asyncio_blocking_fn run,
                          asyncio_blocking_cancel_fn release, void *job,
                          asyncio_blocking_handle **handle);

/*
 * Waits for the job behind *handle: ASYNCIO_PENDING, or, once it finished,
 * the handle's result (the job's result, or ASYNCIO_ECANCELED if it never
 * ran: its cleanup hook released its reference) with the handle dropped and
 * *handle NULL.
 */
int asyncio__fs_job_wait(asyncio_blocking_handle **handle, asyncio_context *cx);

/*
 * The future lets go: a job in flight runs on, detached (it releases its
 * own reference), and the future's reference on *job is released; both are
 * NULL afterwards. Either may already be NULL.
 */
void asyncio__fs_job_detach(asyncio_blocking_handle **handle, void **job,
                            asyncio_blocking_cancel_fn release);

#endif
