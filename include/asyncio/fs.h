/*
 * libasyncio: async files and file-system operations, run on the
 * runtime's blocking pool (blocking.h).
 *
 *   asyncio_file        an open file: AsyncRead + AsyncWrite (io.h), flush,
 *                       sync, metadata; opaque, one allocation per file
 *   asyncio_fs_op       one embeddable future for every one-shot operation
 *                       on paths: open, metadata, create_dir_all, remove,
 *                       rename, read a whole file (size limit), write or
 *                       append a whole file
 *   asyncio_read_dir    an async iterator over a directory's entries
 *
 * Why the blocking pool: regular files are always "ready" for poll(2) /
 * epoll, so readiness cannot tell when a read would block on the disk.
 * Each operation is a job on a pool thread; the awaiting task is woken when
 * it finishes. Nothing blocks the runtime's threads, except close(2) of a
 * file that has no job in flight, and the sendfile(2) path of asyncio_copy
 * (file -> socket), which reads the page cache from the runtime thread.
 *
 * On io_uring (the uring backend with its completion path on; Linux) a
 * job is a ring request instead, per operation, where the kernel has the
 * opcode: a file's read / write (at the fd's offset, through the file's
 * own buffer), sync, metadata; open, metadata, remove, rename,
 * create_dir_all, read_file, write_file and append_file on paths (the
 * last four as chains of requests: open, statx, reads or writes, close;
 * read_dir stays on the pool: io_uring has no getdents). Results, cursor
 * and errors are the same on
 * both paths; what differs: a write's read-ahead give-back (lseek) runs
 * on the polling thread; a file closed with a read or metadata request
 * in flight cancels it (its fd is closed by the ring when the request
 * ends); ASYNCIO_ECANCELED also reports a request the runtime's shutdown
 * cancelled while it was in the kernel. ASYNCIO_URING_COMPLETION=0 keeps
 * every file operation on the pool.
 *
 * Cancellation: every future here may be dropped while its job is still
 * running. The job and the future share one reference-counted block, so a
 * dropped future never frees memory the job still writes, and the job's
 * result (an fd, a buffer) is released by whoever lets go last. A job the
 * runtime cancels at shutdown before it started releases its block through
 * the blocking pool's cleanup hook. A file closed while a job is in flight
 * is closed (close(2)) by that job when it finishes (on the ring: by the
 * request's completion, with IORING_OP_CLOSE).
 *
 * Errors are negative codes (error.h): ASYNCIO_ENOENT, ASYNCIO_EEXIST,
 * ASYNCIO_EACCES, ASYNCIO_EISDIR, ASYNCIO_ENOTDIR, ASYNCIO_ENOTEMPTY,
 * ASYNCIO_EXDEV, ASYNCIO_EROFS, ASYNCIO_ENOSPC, ASYNCIO_EFBIG,
 * ASYNCIO_ENAMETOOLONG, ASYNCIO_EMFILE, ASYNCIO_ENOMEM, ASYNCIO_EIO, ...
 * as the OS reports them; ASYNCIO_EINVAL for bad arguments or a future
 * polled outside a runtime; ASYNCIO_ECANCELED when the runtime shut down
 * before the job ran.
 *
 * Thread-safety: a file, an fs_op and a read_dir belong to one task at a
 * time (one operation in flight per file). Polls must happen inside a task
 * of a runtime (the pool is the current runtime's). docs/fs.md has
 * examples.
 */
#ifndef ASYNCIO_FS_H
#define ASYNCIO_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blocking.h"
#include "common.h"
#include "error.h"
#include "io.h"
#include "task.h"

/* ------------------------------------------------------------------------ */
/* Metadata                                                                  */

/** What kind of file a path or an entry is. */
typedef enum asyncio_file_type {
    ASYNCIO_FILE_TYPE_UNKNOWN = 0, /* the OS did not say (some read_dir entries) */
    ASYNCIO_FILE_TYPE_FILE,        /* regular file */
    ASYNCIO_FILE_TYPE_DIR,         /* directory */
    ASYNCIO_FILE_TYPE_SYMLINK,     /* symbolic link (only when links are not followed) */
    ASYNCIO_FILE_TYPE_OTHER,       /* FIFO, socket, device */
} asyncio_file_type;

/** A file's metadata (stat). A plain value. */
typedef struct asyncio_fs_metadata {
    uint64_t size;       /* bytes */
    int64_t mtime_sec;   /* last modification, seconds since the Unix epoch */
    uint32_t mtime_nsec; /* ... and nanoseconds */
    uint32_t mode;       /* permission bits (0777 and setuid / setgid / sticky) */
    asyncio_file_type type;
} asyncio_fs_metadata;

/* ------------------------------------------------------------------------ */
/* Open options                                                              */

/** Flags of asyncio_open_options.flags. */
enum asyncio_open_flag {
    ASYNCIO_OPEN_READ = 1u << 0,       /**< open for reading */
    ASYNCIO_OPEN_WRITE = 1u << 1,      /**< open for writing */
    ASYNCIO_OPEN_APPEND = 1u << 2,     /**< every write goes to the end (implies WRITE) */
    ASYNCIO_OPEN_CREATE = 1u << 3,     /**< create the file if it does not exist */
    ASYNCIO_OPEN_CREATE_NEW = 1u << 4, /**< create it; ASYNCIO_EEXIST if it exists */
    ASYNCIO_OPEN_TRUNCATE = 1u << 5,   /**< truncate to 0 bytes (needs WRITE) */
};

/**
 * How to open a file. `mode` is the permission of a created file (0:
 * 0666, minus the process umask). Zero-initialise, then set flags.
 * Rules (Rust's OpenOptions): at least one of READ, WRITE, APPEND;
 * TRUNCATE, CREATE and CREATE_NEW need WRITE or APPEND; TRUNCATE and
 * APPEND together are refused. Violations give ASYNCIO_EINVAL.
 */
typedef struct asyncio_open_options {
    uint32_t flags; /* asyncio_open_flag bits */
    uint32_t mode;  /* creation mode, e.g. 0644; 0 means 0666 */
} asyncio_open_options;

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

/**
 * An open file. Opaque; obtained from an open operation
 * (asyncio_fs_open_init + asyncio_fs_op_take_file), released with
 * asyncio_file_close(). Not a registration with the runtime: a file may be
 * used from any task of the runtime whose blocking pool runs its jobs (the
 * current runtime at each poll), one task at a time.
 *
 * Semantics (as Tokio's File):
 *  - one job in flight at a time; an operation polled while another one's
 *    job is still running first waits for it;
 *  - poll_write copies up to ASYNCIO_FILE_BUF_SIZE bytes into the file's
 *    buffer, starts the write job and returns at once with the count: the
 *    write completes in the background. Its error (if any) is reported by
 *    the NEXT operation on the file (poll_flush is the way to wait for it);
 *  - poll_read reads up to min(len, ASYNCIO_FILE_BUF_SIZE) bytes per job;
 *  - reads and writes use and move the fd's file offset.
 */
typedef struct asyncio_file asyncio_file;

/** The most bytes one read or write job moves (the file's buffer size). */
#define ASYNCIO_FILE_BUF_SIZE ((size_t)64 * 1024)

ASYNCIO_BEGIN_DECLS

/**
 * AsyncRead: reads up to len bytes into buf. Returns 0 with *n_out bytes
 * (0: end of file, or len == 0), ASYNCIO_PENDING (cx's waker is woken when
 * the job finishes; poll again, with the same or another buffer), or an
 * error: the read's (ASYNCIO_EISDIR, ASYNCIO_EIO, ASYNCIO_EBADF when not
 * opened for reading, ...), an earlier background write's, ASYNCIO_ENOMEM
 * (the buffer could not be allocated), ASYNCIO_EINVAL (NULL argument,
 * polled outside a runtime), ASYNCIO_ECANCELED (runtime shutting down).
 */
ASYNCIO_EXTERN int asyncio_file_poll_read(asyncio_file *f, asyncio_context *cx, void *buf,
                                          size_t len, size_t *n_out);

/**
 * AsyncWrite: copies up to min(len, ASYNCIO_FILE_BUF_SIZE) bytes, starts a
 * background write and returns 0 with that count in *n_out. Returns
 * ASYNCIO_PENDING while an earlier job is still running, or an error: a
 * previous background write's or read's (ASYNCIO_ENOSPC, ASYNCIO_EFBIG,
 * ASYNCIO_EBADF when not opened for writing, ...), ASYNCIO_EINVAL,
 * ASYNCIO_ECANCELED. Bytes the file had read ahead of the caller (a read
 * polled again with a smaller buffer) are given back with a seek first.
 */
ASYNCIO_EXTERN int asyncio_file_poll_write(asyncio_file *f, asyncio_context *cx, const void *buf,
                                           size_t len, size_t *n_out);

/**
 * Waits for the background write (if any) and returns its error, else 0.
 * Data reaches the OS (the page cache), not the disk: see
 * asyncio_file_poll_sync(). Errors: as poll_write.
 */
ASYNCIO_EXTERN int asyncio_file_poll_flush(asyncio_file *f, asyncio_context *cx);

/**
 * Flushes, then fsync(2)s the file (data_only: fdatasync(2), which skips
 * metadata such as the modification time). 0 once the data is on stable
 * storage, ASYNCIO_PENDING, or an error (ASYNCIO_EIO, ASYNCIO_EROFS,
 * ASYNCIO_EINVAL for files that cannot be synced, ...).
 */
ASYNCIO_EXTERN int asyncio_file_poll_sync(asyncio_file *f, asyncio_context *cx, bool data_only);

/**
 * The open file's metadata (fstat): 0 with *out filled, ASYNCIO_PENDING,
 * or an error. Waits for a background write first (and reports its error).
 */
ASYNCIO_EXTERN int asyncio_file_poll_metadata(asyncio_file *f, asyncio_context *cx,
                                              asyncio_fs_metadata *out);

/**
 * The file as an AsyncRead (io.h), for buffered readers, read_exact, copy.
 * Its raw_fd is the file's fd while no job is in flight and no bytes were
 * read ahead, so asyncio_copy from a file to a socket or pipe uses
 * sendfile(2) from the file's current offset. Borrows f.
 */
ASYNCIO_EXTERN asyncio_reader asyncio_file_reader(asyncio_file *f);

/**
 * The file as an AsyncWrite (io.h): poll_write, poll_flush, and
 * poll_shutdown (= flush: a file has no write side to shut down).
 * Borrows f.
 */
ASYNCIO_EXTERN asyncio_writer asyncio_file_writer(asyncio_file *f);

/** The file's fd (still owned by the file), or -1 for NULL. Do not close it. */
ASYNCIO_EXTERN int asyncio_file_fd(const asyncio_file *f);

/**
 * Closes the file and releases it. If a job is still in flight it runs on
 * and closes the fd when it finishes (its result is lost: poll_flush
 * first to see write errors). Returns the error of a finished background
 * job nobody collected yet, or the error of close(2), else 0; the file is
 * released in every case. NULL is a no-op. Any thread, not concurrently
 * with another call on the file; may be called from inside a task.
 */
ASYNCIO_EXTERN int asyncio_file_close(asyncio_file *f);

ASYNCIO_END_DECLS

/* ------------------------------------------------------------------------ */
/* One-shot operations on paths                                              */

/**
 * A one-shot file-system operation as an embeddable future: initialise it
 * with one of the asyncio_fs_*_init functions below, poll it with
 * asyncio_fs_op_poll(), release it with asyncio_fs_op_drop() (always, also
 * after a failed init). The _init copies the path(s) and data into one
 * block it allocates, so they need not outlive the call; the job starts at
 * the first poll. Movable (no self pointers); a future belongs to one task.
 */
typedef struct asyncio_fs_op {
    /* read-only: valid once a metadata operation's poll returned 0 */
    asyncio_fs_metadata metadata;
    /* private */
    void *job;                       /* the block shared with the pool job */
    asyncio_blocking_handle *handle; /* while the job runs */
    int result;                      /* the result, once DONE */
    uint8_t state;                   /* see src/fs/ops.c */
} asyncio_fs_op;

ASYNCIO_BEGIN_DECLS

/**
 * Opens `path` with `opts` (see asyncio_open_options; always
 * close-on-exec). After the poll returned 0, take the file with
 * asyncio_fs_op_take_file(). Errors (init): ASYNCIO_EINVAL (NULL, empty
 * path, bad flag combination), ASYNCIO_ENOMEM. Errors (poll): ASYNCIO_ENOENT,
 * ASYNCIO_EEXIST (CREATE_NEW on an existing file), ASYNCIO_EACCES,
 * ASYNCIO_EISDIR (a directory opened for writing), ASYNCIO_ENOTDIR,
 * ASYNCIO_EROFS, ASYNCIO_EMFILE, ASYNCIO_ENOMEM, ...
 */
ASYNCIO_EXTERN int asyncio_fs_open_init(asyncio_fs_op *op, const char *path,
                                        const asyncio_open_options *opts);

/**
 * Metadata of `path` (stat; follow_links false: lstat, so a symlink is
 * reported as ASYNCIO_FILE_TYPE_SYMLINK). On 0, op->metadata is filled.
 * Errors: ASYNCIO_ENOENT, ASYNCIO_EACCES, ASYNCIO_ENOTDIR, ...
 */
ASYNCIO_EXTERN int asyncio_fs_metadata_init(asyncio_fs_op *op, const char *path, bool follow_links);

/**
 * Creates `path` and every missing parent directory (mkdir -p), each with
 * `mode` (0: 0777, minus the umask). A path that exists as a directory is
 * success. Errors: ASYNCIO_EEXIST (path exists and is not a directory),
 * ASYNCIO_ENOTDIR (a parent is not a directory), ASYNCIO_EACCES,
 * ASYNCIO_EROFS, ASYNCIO_ENOSPC, ...
 */
ASYNCIO_EXTERN int asyncio_fs_create_dir_all_init(asyncio_fs_op *op, const char *path,
                                                  uint32_t mode);

/**
 * Removes a file, a symlink (not its target) or an EMPTY directory.
 * Errors: ASYNCIO_ENOENT, ASYNCIO_ENOTEMPTY (a directory with entries),
 * ASYNCIO_EACCES, ASYNCIO_EBUSY, ASYNCIO_EROFS, ...
 */
ASYNCIO_EXTERN int asyncio_fs_remove_init(asyncio_fs_op *op, const char *path);

/**
 * Renames `from` to `to` (rename(2): atomic, replaces an existing `to`
 * file or empty directory). Errors: ASYNCIO_ENOENT, ASYNCIO_EXDEV
 * (different file systems: copy + remove instead), ASYNCIO_EISDIR /
 * ASYNCIO_ENOTDIR (file vs directory mismatch), ASYNCIO_ENOTEMPTY,
 * ASYNCIO_EACCES, ...
 */
ASYNCIO_EXTERN int asyncio_fs_rename_init(asyncio_fs_op *op, const char *from, const char *to);

/**
 * Reads the whole file at `path` into a buffer the operation allocates,
 * refusing files larger than `max_size` bytes with ASYNCIO_EFBIG (checked
 * against the size the file reports and against the bytes actually read,
 * so growing files and /proc files are bounded too). Take the buffer with
 * asyncio_fs_op_take_data(). Errors: those of open and read, ASYNCIO_EFBIG,
 * ASYNCIO_ENOMEM, ASYNCIO_EISDIR.
 */
ASYNCIO_EXTERN int asyncio_fs_read_file_init(asyncio_fs_op *op, const char *path, size_t max_size);

/**
 * Writes data[0..len) as the whole content of `path` (created with mode
 * 0666 minus the umask, or truncated), copied at init. Errors: init
 * ASYNCIO_EINVAL / ASYNCIO_ENOMEM; poll those of open and write.
 */
ASYNCIO_EXTERN int asyncio_fs_write_file_init(asyncio_fs_op *op, const char *path, const void *data,
                                              size_t len);

/** As asyncio_fs_write_file_init(), appending to `path` (created if missing). */
ASYNCIO_EXTERN int asyncio_fs_append_file_init(asyncio_fs_op *op, const char *path,
                                               const void *data, size_t len);

/**
 * Polls the operation. The first poll queues the job on the current
 * runtime's blocking pool. Returns 0 when done, ASYNCIO_PENDING (cx's
 * waker stored), or the operation's error (also the init's, if it failed);
 * later polls return the same result. ASYNCIO_EINVAL outside a runtime.
 */
ASYNCIO_EXTERN int asyncio_fs_op_poll(asyncio_fs_op *op, asyncio_context *cx);

/** asyncio_fs_op_poll with the asyncio_future_poll_fn signature (timeouts, retry). */
ASYNCIO_EXTERN int asyncio_fs_op_poll_fn(void *op, asyncio_context *cx);

/**
 * Moves the opened file out of a finished open (poll returned 0): *out
 * owns it (asyncio_file_close). Errors: ASYNCIO_EINVAL (not an open, not
 * finished, failed, or already taken), ASYNCIO_ENOMEM (the file object
 * could not be allocated: the descriptor stays in the op, which closes it
 * when dropped).
 */
ASYNCIO_EXTERN int asyncio_fs_op_take_file(asyncio_fs_op *op, asyncio_file **out);

/**
 * Moves the buffer out of a finished read_file: *data (free it with
 * asyncio_fs_free_data()) and *len. An empty file gives a valid non-NULL
 * buffer and len 0. Errors: ASYNCIO_EINVAL (as take_file).
 */
ASYNCIO_EXTERN int asyncio_fs_op_take_data(asyncio_fs_op *op, void **data, size_t *len);

/** Frees a buffer from asyncio_fs_op_take_data() (through the allocation hook). NULL: no-op. */
ASYNCIO_EXTERN void asyncio_fs_free_data(void *data);

/**
 * Cancels / releases the operation: a running job goes on, detached, and
 * its result (an opened fd, a buffer) is released when it finishes; a
 * result not taken is released now. Idempotent; fine after a failed init.
 * Any thread, not concurrently with a poll.
 */
ASYNCIO_EXTERN void asyncio_fs_op_drop(asyncio_fs_op *op);

ASYNCIO_END_DECLS

/* ------------------------------------------------------------------------ */
/* Directory listing                                                         */

/** One directory entry, as returned by asyncio_read_dir_poll_next(). */
typedef struct asyncio_dir_entry {
    const char *name;       /* the entry's name (no path), NUL-terminated */
    asyncio_file_type type; /* from the directory itself; UNKNOWN if the OS did not say */
} asyncio_dir_entry;

/**
 * An async iterator over a directory's entries ("." and ".." are skipped).
 * Entries are read by pool jobs in batches; the iterator hands them out
 * one by one. Embeddable; initialise with asyncio_read_dir_init(), release
 * with asyncio_read_dir_drop(). Movable.
 */
typedef struct asyncio_read_dir {
    /* private */
    void *job;
    asyncio_blocking_handle *handle;
    size_t next;   /* next entry of the current batch to hand out */
    int result;    /* sticky error, or 1 at the end */
    uint8_t state; /* see src/fs/dir.c */
} asyncio_read_dir;

ASYNCIO_BEGIN_DECLS

/**
 * Prepares to list `path` (copied). Errors: ASYNCIO_EINVAL (NULL, empty
 * path), ASYNCIO_ENOMEM. Drop it in every case.
 */
ASYNCIO_EXTERN int asyncio_read_dir_init(asyncio_read_dir *rd, const char *path);

/**
 * The next entry: 0 with *entry filled (name valid until the next call or
 * the drop), 0 with entry->name == NULL at the end, ASYNCIO_PENDING, or an
 * error (ASYNCIO_ENOENT, ASYNCIO_ENOTDIR, ASYNCIO_EACCES, ...; the init's
 * error; ASYNCIO_EINVAL outside a runtime). Errors are sticky.
 */
ASYNCIO_EXTERN int asyncio_read_dir_poll_next(asyncio_read_dir *rd, asyncio_context *cx,
                                              asyncio_dir_entry *entry);

/** Releases the iterator (a running job finishes detached). Idempotent. */
ASYNCIO_EXTERN void asyncio_read_dir_drop(asyncio_read_dir *rd);

ASYNCIO_END_DECLS

#endif
