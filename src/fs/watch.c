/*
 * The directory watcher: a custom event source written against the public
 * API only (poll.h's source vtable, async_fd.h), so it doubles as the
 * reference example for docs/fs.md. The OS part (inotify) is in
 * src/platform/watch_os.c.
 *
 * 1. The source. asyncio_watcher embeds an asyncio_source whose vtable
 *    forwards register / reregister / deregister / rearm to the
 *    notification fd. asyncio_async_fd_new_source() registers it once with
 *    the runtime's I/O driver (edge-triggered) and asyncio_async_fd_free()
 *    deregisters it; the fd is closed only after that.
 * 2. Reading. poll_ready(READABLE) -> read -> on EAGAIN clear_ready (which
 *    also rearms the source through the vtable) and poll again: the tick
 *    protocol of the I/O driver guarantees no wake-up is lost between the
 *    EAGAIN and the clear.
 * 3. Events. The read buffer is parsed one raw event at a time (`off`).
 *    A MOVED_FROM is held back until the next raw event shows whether its
 *    MOVED_TO (same cookie) follows: then one RENAME is reported. If the
 *    buffer ends right after it, one more non-blocking read is tried; if
 *    nothing is queued the held half is reported as MOVED_OUT.
 *
 * Names handed out are copied into the watcher (name / to_name), since
 * refilling the buffer would overwrite them.
 */
#include "asyncio/watch.h"

#include <string.h>

#include "asyncio/async_fd.h"
#include "asyncio/poll.h"
#include "internal.h"
#include "platform/watch_os.h"
#include "util/alloc.h"

#define NAME_CAP 256 /* NAME_MAX + 1 */

struct asyncio_watcher {
    asyncio_source base; /* first member: the vtable callbacks cast back */
    int fd;
    asyncio_async_fd *afd;
    int sticky; /* ASYNCIO_ENOENT once the directory went away */
    /* MOVED_FROM held back while looking for its MOVED_TO */
    bool held;
    bool held_dir;
    uint32_t held_cookie;
    char held_name[NAME_CAP];
    /* names of the event handed out last */
    char name[NAME_CAP];
    char to_name[NAME_CAP];
    size_t off, len; /* unparsed bytes: buf[off, len) */
    _Alignas(8) unsigned char buf[ASYNCIO__WATCH_BUF_SIZE];
};

/* ---- 1. the source vtable: forward everything to the fd ------------------- */

static int src_register(asyncio_source *src, asyncio_poller *p, uintptr_t token, uint32_t interest,
                        asyncio_trigger mode)
{
    return asyncio_poller_register_fd(p, ((asyncio_watcher *)src)->fd, token, interest, mode);
}

static int src_reregister(asyncio_source *src, asyncio_poller *p, uintptr_t token,
                          uint32_t interest, asyncio_trigger mode)
{
    return asyncio_poller_reregister_fd(p, ((asyncio_watcher *)src)->fd, token, interest, mode);
}

static int src_deregister(asyncio_source *src, asyncio_poller *p)
{
    return asyncio_poller_deregister_fd(p, ((asyncio_watcher *)src)->fd);
}

static int src_rearm(asyncio_source *src, asyncio_poller *p, uint32_t directions)
{
    return asyncio_poller_rearm_fd(p, ((asyncio_watcher *)src)->fd, directions);
}

static const asyncio_source_vtable watcher_source_vt = {src_register, src_reregister,
                                                        src_deregister, src_rearm};

int asyncio_watcher_new(asyncio_watcher **out, const char *dir)
{
    if (out == NULL || dir == NULL || dir[0] == '\0')
        return ASYNCIO_EINVAL;
    asyncio_watcher *w = asyncio__calloc(1, sizeof *w);
    if (w == NULL)
        return ASYNCIO_ENOMEM;
    w->base.vtable = &watcher_source_vt;
    int rc = asyncio__watch_os_open(dir, &w->fd);
    if (rc < 0) {
        asyncio__free(w);
        return rc;
    }
    rc = asyncio_async_fd_new_source(&w->afd, &w->base, ASYNCIO_READABLE);
    if (rc < 0) {
        asyncio__watch_os_close(w->fd);
        asyncio__free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int asyncio_watcher_free(asyncio_watcher *w)
{
    if (w == NULL)
        return 0;
    asyncio_async_fd_free(w->afd);  /* deregister first ... */
    asyncio__watch_os_close(w->fd); /* ... then close */
    asyncio__free(w);
    return 0;
}

const char *asyncio_watch_kind_name(asyncio_watch_kind kind)
{
    switch (kind) {
    case ASYNCIO_WATCH_CREATE:
        return "create";
    case ASYNCIO_WATCH_MODIFY:
        return "modify";
    case ASYNCIO_WATCH_DELETE:
        return "delete";
    case ASYNCIO_WATCH_RENAME:
        return "rename";
    case ASYNCIO_WATCH_MOVED_OUT:
        return "moved_out";
    case ASYNCIO_WATCH_MOVED_IN:
        return "moved_in";
    case ASYNCIO_WATCH_OVERFLOW:
        return "overflow";
    default:
        return "unknown";
    }
}

/* ---- 2. reading -------------------------------------------------------------- */

/* Waits until the buffer holds fresh bytes: 0, ASYNCIO_PENDING or an error. */
static int fill(asyncio_watcher *w, asyncio_context *cx)
{
    for (;;) {
        asyncio_ready_guard g;
        int rc = asyncio_async_fd_poll_ready(w->afd, cx, ASYNCIO_READABLE, &g);
        if (rc != 0)
            return rc;
        size_t n = 0;
        rc = asyncio__watch_os_read(w->fd, w->buf, sizeof w->buf, &n);
        if (rc == 0) {
            w->off = 0;
            w->len = n;
            return 0;
        }
        if (rc != ASYNCIO_EAGAIN)
            return rc;
        asyncio_async_fd_clear_ready(w->afd, &g); /* drained: wait for the next edge */
    }
}

/* Without waiting: 0 if more bytes were read, ASYNCIO_EAGAIN if none are queued. */
static int try_fill(asyncio_watcher *w)
{
    size_t n = 0;
    int rc = asyncio__watch_os_read(w->fd, w->buf, sizeof w->buf, &n);
    if (rc == 0) {
        w->off = 0;
        w->len = n;
    }
    return rc;
}

/* ---- 3. events --------------------------------------------------------------- */

static void copy_name(char *dst, const char *src)
{
    size_t n = strnlen(src, NAME_CAP - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void emit(asyncio_watcher *w, asyncio_watch_event *ev, asyncio_watch_kind kind,
                 const char *name, bool is_dir)
{
    if (name != w->name)
        copy_name(w->name, name);
    ev->kind = kind;
    ev->name = w->name;
    ev->to_name = NULL;
    ev->is_dir = is_dir;
}

/* Reports the held MOVED_FROM alone. */
static void emit_held(asyncio_watcher *w, asyncio_watch_event *ev)
{
    w->held = false;
    copy_name(w->name, w->held_name);
    emit(w, ev, ASYNCIO_WATCH_MOVED_OUT, w->name, w->held_dir);
}

/*
 * Handles one raw event. Returns 1 if *ev was filled (not a poll result:
 * the caller turns it into 0), 0 to go on, or an error. *consumed says whether the raw event was
 * used (a held MOVED_FROM followed by an unrelated event is reported first, and the event is looked
 * at again).
 */
static int handle_raw(asyncio_watcher *w, const asyncio__watch_raw *r, asyncio_watch_event *ev,
                      bool *consumed)
{
    *consumed = true;
    if (w->held) {
        if (r->kind == ASYNCIO__WATCH_RAW_MOVED_TO && r->cookie == w->held_cookie) {
            w->held = false;
            copy_name(w->name, w->held_name);
            copy_name(w->to_name, r->name);
            emit(w, ev, ASYNCIO_WATCH_RENAME, w->name, r->is_dir);
            ev->to_name = w->to_name;
            return 1;
        }
        *consumed = false;
        emit_held(w, ev);
        return 1;
    }
    switch (r->kind) {
    case ASYNCIO__WATCH_RAW_MOVED_FROM: /* hold it: its MOVED_TO may come next */
        w->held = true;
        w->held_dir = r->is_dir;
        w->held_cookie = r->cookie;
        copy_name(w->held_name, r->name);
        return 0;
    case ASYNCIO__WATCH_RAW_CREATE:
        emit(w, ev, ASYNCIO_WATCH_CREATE, r->name, r->is_dir);
        return 1;
    case ASYNCIO__WATCH_RAW_MODIFY:
        emit(w, ev, ASYNCIO_WATCH_MODIFY, r->name, r->is_dir);
        return 1;
    case ASYNCIO__WATCH_RAW_DELETE:
        emit(w, ev, ASYNCIO_WATCH_DELETE, r->name, r->is_dir);
        return 1;
    case ASYNCIO__WATCH_RAW_MOVED_TO:
        emit(w, ev, ASYNCIO_WATCH_MOVED_IN, r->name, r->is_dir);
        return 1;
    case ASYNCIO__WATCH_RAW_OVERFLOW:
        emit(w, ev, ASYNCIO_WATCH_OVERFLOW, "", false);
        return 1;
    case ASYNCIO__WATCH_RAW_GONE:
        w->sticky = ASYNCIO_ENOENT;
        return 0;
    default: /* ASYNCIO__WATCH_RAW_OTHER */
        return 0;
    }
}

int asyncio_watcher_poll_next(asyncio_watcher *w, asyncio_context *cx, asyncio_watch_event *ev)
{
    if (w == NULL || cx == NULL || ev == NULL)
        return ASYNCIO_EINVAL;
    for (;;) {
        asyncio__watch_raw r;
        size_t off = w->off;
        if (asyncio__watch_os_parse(w->buf, w->len, &off, &r)) {
            bool consumed;
            int rc = handle_raw(w, &r, ev, &consumed);
            if (consumed)
                w->off = off;
            if (rc == 1)
                return 0; /* *ev was filled */
            if (rc < 0)
                return rc;
            continue;
        }
        /* The buffer is used up. */
        if (w->held) { /* one more look for the MOVED_TO, without waiting */
            int rc = try_fill(w);
            if (rc == 0)
                continue;
            if (rc != ASYNCIO_EAGAIN)
                return rc;
            emit_held(w, ev);
            return 0;
        }
        if (w->sticky != 0)
            return w->sticky;
        int rc = fill(w, cx);
        if (rc != 0)
            return rc;
    }
}
