/*
 * libasyncio: a directory watcher — create / modify / delete / rename
 * events for the entries of one directory (not recursive), awaited by a
 * task.
 *
 * It is built only on public API, as the reference example of a custom
 * event source (docs/fs.md, "Writing a custom event source"): the watcher
 * embeds an asyncio_source whose vtable (poll.h) registers the OS's
 * notification fd (inotify on Linux) with the runtime's poller, wraps it
 * with asyncio_async_fd_new_source(), and reads events with the
 * poll_ready / read / clear_ready loop of async_fd.h.
 *
 * Renames inside the directory are reported as one RENAME event (from +
 * to, paired by the kernel's cookie) when both halves are available
 * together; otherwise as MOVED_OUT (renamed to somewhere outside, or its
 * partner was not queued yet) and MOVED_IN. When the kernel's queue
 * overflowed, an OVERFLOW event says events were lost (rescan the
 * directory).
 *
 * Platforms: Linux (inotify). Elsewhere asyncio_watcher_new returns
 * ASYNCIO_ENOSYS.
 *
 * Thread-safety: a watcher belongs to one task at a time, on the runtime
 * it was created in (it holds an I/O registration).
 */
#ifndef ASYNCIO_WATCH_H
#define ASYNCIO_WATCH_H

#include <stdbool.h>

#include "common.h"
#include "error.h"
#include "task.h"

/** Opaque. Created by asyncio_watcher_new(), freed by asyncio_watcher_free(). */
typedef struct asyncio_watcher asyncio_watcher;

/** What happened. */
typedef enum asyncio_watch_kind {
    ASYNCIO_WATCH_CREATE = 1, /**< `name` was created (file, directory, link...) */
    ASYNCIO_WATCH_MODIFY,     /**< `name`'s content was written */
    ASYNCIO_WATCH_DELETE,     /**< `name` was removed */
    ASYNCIO_WATCH_RENAME,     /**< `name` was renamed to `to_name`, both in the directory */
    ASYNCIO_WATCH_MOVED_OUT,  /**< `name` was renamed away (target unknown or outside) */
    ASYNCIO_WATCH_MOVED_IN,   /**< `name` appeared by a rename (source unknown or outside) */
    ASYNCIO_WATCH_OVERFLOW,   /**< the OS dropped events: rescan; `name` is "" */
} asyncio_watch_kind;

/** One event. Names are views valid until the next call on the watcher. */
typedef struct asyncio_watch_event {
    asyncio_watch_kind kind;
    const char *name;    /* entry name (no directory part); "" for OVERFLOW */
    const char *to_name; /* RENAME: the new name; NULL otherwise */
    bool is_dir;         /* the entry is a directory */
} asyncio_watch_event;

ASYNCIO_BEGIN_DECLS

/**
 * Starts watching directory `dir` and registers the watcher with the
 * runtime running on this thread. Events are queued by the OS from this
 * call on. Errors: ASYNCIO_EINVAL (NULL, empty path, no runtime on this
 * thread), ASYNCIO_ENOENT, ASYNCIO_ENOTDIR, ASYNCIO_EACCES, ASYNCIO_EMFILE,
 * ASYNCIO_ENOSPC (the OS's watch limit), ASYNCIO_ENOMEM, ASYNCIO_ENOSYS.
 * On error nothing needs freeing. Runtime thread; may be called in a task.
 */
ASYNCIO_EXTERN int asyncio_watcher_new(asyncio_watcher **out, const char *dir);

/** The kind's name: "create", "modify", "delete", "rename", "moved_out", "moved_in", "overflow". */
ASYNCIO_EXTERN const char *asyncio_watch_kind_name(asyncio_watch_kind kind);

/**
 * The next event: 0 with *ev filled, ASYNCIO_PENDING (cx's waker stored),
 * or an error: ASYNCIO_ENOENT once the watched directory itself was
 * removed or renamed (sticky: no more events), ASYNCIO_EINVAL (NULL
 * argument), a read error. One task at a time.
 */
ASYNCIO_EXTERN int asyncio_watcher_poll_next(asyncio_watcher *w, asyncio_context *cx,
                                             asyncio_watch_event *ev);

/**
 * Deregisters and closes the watcher and frees it. Returns 0; NULL is a
 * no-op. Runtime thread, not concurrently with a poll.
 */
ASYNCIO_EXTERN int asyncio_watcher_free(asyncio_watcher *w);

ASYNCIO_END_DECLS

#endif
