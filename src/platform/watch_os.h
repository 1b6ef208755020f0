/*
 * Directory change notification for src/fs/watch.c: inotify on Linux
 * (watch_os.c), ASYNCIO_ENOTSUP elsewhere (watch_os_none.c). The core sees
 * a non-blocking fd to register with the poller and a parser that turns the
 * bytes read from it into portable raw events.
 *
 * Thread-safety: one watcher is used by one thread at a time.
 */
#ifndef ASYNCIO_PLATFORM_WATCH_OS_H
#define ASYNCIO_PLATFORM_WATCH_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What one raw event says. */
typedef enum asyncio__watch_raw_kind {
    ASYNCIO__WATCH_RAW_OTHER = 0,  /* nothing a watcher reports (e.g. IN_ATTRIB) */
    ASYNCIO__WATCH_RAW_CREATE,     /* IN_CREATE */
    ASYNCIO__WATCH_RAW_MODIFY,     /* IN_MODIFY */
    ASYNCIO__WATCH_RAW_DELETE,     /* IN_DELETE */
    ASYNCIO__WATCH_RAW_MOVED_FROM, /* IN_MOVED_FROM (cookie pairs it with a MOVED_TO) */
    ASYNCIO__WATCH_RAW_MOVED_TO,   /* IN_MOVED_TO */
    ASYNCIO__WATCH_RAW_OVERFLOW,   /* IN_Q_OVERFLOW: events were dropped */
    ASYNCIO__WATCH_RAW_GONE,       /* the watched directory went away (IN_IGNORED, *_SELF) */
} asyncio__watch_raw_kind;

typedef struct asyncio__watch_raw {
    asyncio__watch_raw_kind kind;
    uint32_t cookie;
    bool is_dir;
    const char *name; /* points into the caller's buffer; "" when there is none */
} asyncio__watch_raw;

/* A buffer this large holds at least one event with the longest name. */
#define ASYNCIO__WATCH_BUF_SIZE 16384

/*
 * Starts watching `dir` (not recursive) for create / modify / delete /
 * move events: *fd_out is a non-blocking, close-on-exec fd, readable when
 * events are queued. Errors: ASYNCIO_ENOENT, ASYNCIO_ENOTDIR, ASYNCIO_EACCES,
 * ASYNCIO_EMFILE, ASYNCIO_ENOSPC (watch limit), ASYNCIO_ENOSYS.
 */
int asyncio__watch_os_open(const char *dir, int *fd_out);

/* Reads queued events into buf: 0 with *n_out, ASYNCIO_EAGAIN, or an error. */
int asyncio__watch_os_read(int fd, void *buf, size_t cap, size_t *n_out);

/*
 * Parses the event at buf[*off] (len bytes were read): 1 with *out filled
 * and *off advanced, or 0 when no complete event is left.
 */
int asyncio__watch_os_parse(const void *buf, size_t len, size_t *off, asyncio__watch_raw *out);

/* Closes the fd. */
void asyncio__watch_os_close(int fd);

#endif
