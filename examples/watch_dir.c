/*
 * watch_dir: prints one line per change in a directory.
 *
 *   watch_dir DIR
 *
 * Lines: "create NAME", "modify NAME", "delete NAME", "rename OLD NEW",
 * "moved_out NAME", "moved_in NAME", "overflow" (events were lost), with a
 * trailing "/" on directory names. Prints "watching <dir>" (flushed) once
 * the watch is in place; exits 0 on SIGINT / SIGTERM, 1 on an error (also
 * when DIR itself is removed).
 *
 * asyncio_watcher (include/asyncio/watch.h, src/fs/watch.c) is the
 * reference custom event source: an inotify fd behind the public
 * asyncio_source vtable, awaited through asyncio_async_fd_new_source().
 * docs/fs.md walks through it.
 */
#include <signal.h>
#include <stdio.h>

#include "asyncio/runtime.h"
#include "asyncio/signal.h"
#include "asyncio/watch.h"

typedef struct watch_task {
    const char *dir;
    asyncio_watcher *w;
    asyncio_signal stop;
    bool stop_ready;
} watch_task;

static int watch_start(watch_task *t)
{
    static const int sigs[] = {SIGINT, SIGTERM};
    int rc = asyncio_signal_init(&t->stop, sigs, 2);
    if (rc < 0)
        return rc;
    t->stop_ready = true;
    if ((rc = asyncio_watcher_new(&t->w, t->dir)) < 0)
        return rc;
    printf("watching %s\n", t->dir);
    fflush(stdout);
    return 0;
}

static int watch_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    watch_task *t = state;
    int rc;
    if (t->w == NULL && (rc = watch_start(t)) < 0)
        return rc;
    for (;;) {
        rc = asyncio_signal_poll(&t->stop, cx, NULL); /* 0: a signal came, or PENDING */
        if (rc != ASYNCIO_PENDING)
            return rc < 0 ? rc : 0; /* SIGINT / SIGTERM: exit 0 */
        asyncio_watch_event ev;
        rc = asyncio_watcher_poll_next(t->w, cx, &ev);
        if (rc != 0)
            return rc; /* PENDING, or an error (ENOENT: the directory went away) */
        const char *slash = ev.is_dir ? "/" : "";
        if (ev.kind == ASYNCIO_WATCH_RENAME)
            printf("rename %s%s %s%s\n", ev.name, slash, ev.to_name, slash);
        else if (ev.kind == ASYNCIO_WATCH_OVERFLOW)
            printf("overflow\n");
        else
            printf("%s %s%s\n", asyncio_watch_kind_name(ev.kind), ev.name, slash);
        fflush(stdout);
    }
}

static void watch_drop(void *state)
{
    watch_task *t = state;
    asyncio_watcher_free(t->w);
    t->w = NULL;
    if (t->stop_ready)
        asyncio_signal_drop(&t->stop);
}

static const asyncio_task_vtable watch_vt = {watch_poll, watch_drop, NULL, sizeof(watch_task), 0};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: watch_dir DIR\n");
        return 2;
    }
    asyncio_runtime *rt;
    int rc = asyncio_runtime_new(&rt, NULL);
    if (rc == 0) {
        watch_task t = {.dir = argv[1]};
        rc = asyncio_runtime_block_on(rt, &watch_vt, &t, NULL);
        int frc = asyncio_runtime_free(rt);
        if (rc == 0)
            rc = frc;
    }
    if (rc < 0) {
        fprintf(stderr, "watch_dir: %s: %s\n", argv[1], asyncio_strerror(rc));
        return 1;
    }
    return 0;
}
