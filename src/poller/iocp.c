/*
 * IOCP backend (Windows): socket readiness on an I/O completion port, the way wepoll and
 * mio do it.
 *
 * Readiness. Windows has no readiness syscall that scales, but the socket driver (AFD)
 * answers IOCTL_AFD_POLL: "complete when one of these events holds on this socket". The
 * request is issued with NtDeviceIoControlFile on one helper handle per poller
 * (\Device\Afd\asyncio, associated with the port), naming the socket's *base* handle
 * (SIO_BASE_HANDLE, below any layered provider); its completion arrives on the port with
 * lpOverlapped == the request's IO_STATUS_BLOCK, which is the first member of the
 * registration. The socket itself is never associated with the port, so users stay free
 * to do their own overlapped I/O on it.
 *
 * One poll per registered socket reports events at a time: the `active` one of its two
 * slots (the other may hold a superseded poll that is being cancelled). An AFD poll is
 * level-triggered at submission: it completes at once when an asked-for event already
 * holds. Each completion is turned into at most one event; the next poll is submitted by
 * the next wait (a poll issued at once would see the readiness the caller is about to
 * consume). The trigger modes are emulated on top, as the poll(2) backend does:
 *
 *   LEVEL    every armed direction is polled again after each event.
 *   ONESHOT  after one event every direction is disarmed until modify() re-arms the
 *            registration.
 *   EDGE     after an event the directions it reported are disarmed; a direction is
 *            re-armed (a new poll asks for it) when the caller hit EAGAIN and says so with
 *            asyncio_poller_rearm_fd(), or by modify(). Without the rearm call a drained
 *            direction is never reported again (poll.h: portable edge code calls rearm).
 *
 * With nothing armed, a poll for AFD_POLL_LOCAL_CLOSE alone stays in flight, so a socket
 * closed while registered is still noticed and forgotten (as epoll forgets it).
 *
 * Changing what the active poll asks for (modify, rearm) cancels it with CancelIoEx and
 * submits the new request in the other slot at once; the cancelled poll still completes on
 * the port (STATUS_CANCELLED, or events it had already seen, which are dropped: the new
 * poll reports the present). Deregistration unlinks the registration at once (the fd may
 * be registered again at once, with a new registration), marks it `deleted` and cancels
 * its polls; the last completion frees it. So a stale completion never reaches a reused
 * socket, and no memory the kernel may still write is freed early.
 *
 * Wake-up: PostQueuedCompletionStatus with key WAKE_KEY, reported under
 * ASYNCIO_TOKEN_RESERVED (the core creates no notify channel: ops.wake is set).
 *
 * Locking: `lock` guards the table and every registration; any thread may register,
 * change or remove (also while the owner is blocked in GetQueuedCompletionStatusEx:
 * a submitted or cancelled poll reaches the port by itself, so no kick is needed).
 * Completions are processed by the owner under the lock.
 */
#include <string.h>
#include <winternl.h>

#include <mswsock.h>

#include "internal.h"
#include "platform/win.h"
#include "poller/poller_int.h"
#include "util/alloc.h"

/* ------------------------------------------------------------------------ */
/* AFD (the socket driver's poll request; not in the SDK headers)             */

#define IOCTL_AFD_POLL 0x00012024

enum {
    AFD_POLL_RECEIVE = 0x0001,
    AFD_POLL_RECEIVE_EXPEDITED = 0x0002,
    AFD_POLL_SEND = 0x0004,
    AFD_POLL_DISCONNECT = 0x0008,
    AFD_POLL_ABORT = 0x0010,
    AFD_POLL_LOCAL_CLOSE = 0x0020,
    AFD_POLL_ACCEPT = 0x0080,
    AFD_POLL_CONNECT_FAIL = 0x0100,
};

typedef struct afd_poll_handle_info {
    HANDLE handle;
    ULONG events;
    NTSTATUS status;
} afd_poll_handle_info;

typedef struct afd_poll_info {
    LARGE_INTEGER timeout;
    ULONG number_of_handles;
    ULONG exclusive;
    afd_poll_handle_info handles[1];
} afd_poll_info;

#ifndef STATUS_PENDING
#define STATUS_PENDING ((NTSTATUS)0x00000103L)
#endif
#ifndef STATUS_CANCELLED
#define STATUS_CANCELLED ((NTSTATUS)0xC0000120L)
#endif

/* Completion keys: AFD poll completions and the poller's wake-up. */
#define AFD_KEY  ((ULONG_PTR)0)
#define WAKE_KEY ((ULONG_PTR)1)

/* Completions taken from the port per wait (each gives at most one event). */
enum { ENTRIES_MAX = 128 };

/* ------------------------------------------------------------------------ */
/* State                                                                     */

struct iocp_sock;

/*
 * One AFD poll request. A registration has two, so a changed interest can be polled at
 * once while the superseded request is still being cancelled.
 */
typedef struct iocp_poll {
    IO_STATUS_BLOCK iosb; /* first: the completion's lpOverlapped points here */
    afd_poll_info info;   /* in and out buffer of the request */
    struct iocp_sock *sock;
    ULONG events;    /* what the request in flight asks for; 0: this slot is idle */
    bool cancelling; /* CancelIoEx was called for it */
} iocp_poll;

typedef struct iocp_sock {
    iocp_poll polls[2];
    unsigned active;        /* the slot whose completion reports events; the other is superseded */
    struct iocp_sock *next; /* hash chain, while registered */
    asyncio__list resubmit_node; /* on resubmit while its next poll waits for wait() */
    int fd;
    SOCKET base; /* the base provider's handle, polled through AFD */
    uintptr_t token;
    uint32_t interest;
    uint32_t disarmed; /* interest directions not to poll until re-armed */
    asyncio_trigger mode;
    bool deleted; /* deregistered: freed when neither slot has a poll in flight */
} iocp_sock;

typedef struct iocp_backend {
    HANDLE port;
    HANDLE afd; /* \Device\Afd\asyncio, associated with port under AFD_KEY */
    asyncio__mutex lock;
    iocp_sock **buckets;    /* chained hash of registrations by fd */
    size_t nbuckets;        /* a power of two, or 0 */
    size_t count;           /* registered (not deleted) sockets */
    size_t inflight;        /* polls submitted and not yet completed (deleted ones too) */
    asyncio__list resubmit; /* completed, armed registrations: polled again by wait() */
} iocp_backend;

/* ------------------------------------------------------------------------ */
/* The table (lock held)                                                     */

static size_t bucket_of(const iocp_backend *b, int fd)
{
    /* Socket handles are multiples of 4: drop those bits, then mix. */
    uint32_t h = ((uint32_t)fd >> 2) * 2654435761u;
    return h & (b->nbuckets - 1);
}

static iocp_sock *table_find(const iocp_backend *b, int fd)
{
    if (b->nbuckets == 0)
        return NULL;
    for (iocp_sock *s = b->buckets[bucket_of(b, fd)]; s != NULL; s = s->next)
        if (s->fd == fd)
            return s;
    return NULL;
}

static int table_grow(iocp_backend *b)
{
    size_t n = b->nbuckets ? b->nbuckets * 2 : 64;
    iocp_sock **nb = asyncio__calloc(n, sizeof *nb);
    if (nb == NULL)
        return ASYNCIO_ENOMEM;
    iocp_sock **old = b->buckets;
    size_t oldn = b->nbuckets;
    b->buckets = nb;
    b->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        for (iocp_sock *s = old[i], *next; s != NULL; s = next) {
            next = s->next;
            size_t k = bucket_of(b, s->fd);
            s->next = nb[k];
            nb[k] = s;
        }
    }
    asyncio__free(old);
    return 0;
}

static int table_insert(iocp_backend *b, iocp_sock *s)
{
    if (b->count >= b->nbuckets) {
        int rc = table_grow(b);
        if (rc < 0)
            return rc;
    }
    size_t k = bucket_of(b, s->fd);
    s->next = b->buckets[k];
    b->buckets[k] = s;
    b->count++;
    return 0;
}

static void table_remove(iocp_backend *b, iocp_sock *s)
{
    for (iocp_sock **pp = &b->buckets[bucket_of(b, s->fd)]; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            s->next = NULL;
            b->count--;
            return;
        }
    }
    ASYNCIO_CHECK(false); /* a registered socket is always in the table */
}

/* ------------------------------------------------------------------------ */
/* Readiness mapping                                                         */

/*
 * The AFD events to poll for `dirs`. With nothing armed (a reported edge, a fired oneshot)
 * the poll still asks for AFD_POLL_LOCAL_CLOSE, which fires only when the socket is closed:
 * so a registered socket closed without deregistration is forgotten, as epoll forgets it,
 * and its number can be registered again after the next wait.
 */
static ULONG afd_events(uint32_t dirs)
{
    ULONG ev = AFD_POLL_LOCAL_CLOSE;
    if (dirs & ASYNCIO_READABLE)
        ev |= AFD_POLL_RECEIVE | AFD_POLL_ACCEPT | AFD_POLL_DISCONNECT;
    if (dirs & ASYNCIO_PRIORITY)
        ev |= AFD_POLL_RECEIVE_EXPEDITED;
    if (dirs & ASYNCIO_WRITABLE)
        ev |= AFD_POLL_SEND;
    /* Errors and resets are wanted with any armed direction. */
    return dirs != 0 ? ev | AFD_POLL_ABORT | AFD_POLL_CONNECT_FAIL : ev;
}

/* Which of `dirs` an AFD result makes active (failures wake every direction). */
static uint32_t active_dirs(ULONG ev, uint32_t dirs)
{
    if (ev & (AFD_POLL_ABORT | AFD_POLL_CONNECT_FAIL))
        return dirs;
    uint32_t a = 0;
    if (ev & (AFD_POLL_RECEIVE | AFD_POLL_ACCEPT | AFD_POLL_DISCONNECT))
        a |= ASYNCIO_READABLE;
    if (ev & AFD_POLL_RECEIVE_EXPEDITED)
        a |= ASYNCIO_PRIORITY;
    if (ev & AFD_POLL_SEND)
        a |= ASYNCIO_WRITABLE;
    return a & dirs;
}

/* The event's readiness bits: directions masked by `armed`, errors and hang-ups always. */
static uint32_t readiness_of(ULONG ev, uint32_t armed)
{
    uint32_t r = active_dirs(ev, armed);
    if (ev & AFD_POLL_DISCONNECT) /* the peer shut down its writing side (FIN) */
        r |= ASYNCIO_READ_CLOSED;
    if (ev & AFD_POLL_ABORT) /* reset: nothing more either way */
        r |= ASYNCIO_ERROR | ASYNCIO_READ_CLOSED | ASYNCIO_WRITE_CLOSED;
    if (ev & AFD_POLL_CONNECT_FAIL) /* the connect's error waits in SO_ERROR */
        r |= ASYNCIO_ERROR | ASYNCIO_READ_CLOSED | ASYNCIO_WRITE_CLOSED;
    return r;
}

/* ------------------------------------------------------------------------ */
/* Polls in flight (lock held)                                               */

static void sock_free(iocp_backend *b, iocp_sock *s)
{
    (void)b;
    ASYNCIO_ASSERT(!asyncio__list_linked(&s->resubmit_node)); /* sock_delete unlinked it */
    asyncio__free(s);
}

static bool sock_idle(const iocp_sock *s)
{
    return s->polls[0].events == 0 && s->polls[1].events == 0;
}

/* Issues IOCTL_AFD_POLL for `events` in slot q. 0, or a negative error (nothing in flight). */
static int poll_submit(iocp_backend *b, iocp_sock *s, iocp_poll *q, ULONG events)
{
    q->sock = s;
    q->info.timeout.QuadPart = INT64_MAX;
    q->info.number_of_handles = 1;
    q->info.exclusive = FALSE;
    q->info.handles[0].handle = (HANDLE)s->base;
    q->info.handles[0].events = events;
    q->info.handles[0].status = 0;
    q->iosb.Status = STATUS_PENDING;
    NTSTATUS st = NtDeviceIoControlFile(b->afd, NULL, NULL, &q->iosb, &q->iosb, IOCTL_AFD_POLL,
                                        &q->info, sizeof q->info, &q->info, sizeof q->info);
    /* Success and pending both post a completion to the port; a failure posts none. */
    if (st != STATUS_PENDING && !NT_SUCCESS(st))
        return asyncio__win_error(RtlNtStatusToDosError(st));
    q->events = events;
    q->cancelling = false;
    b->inflight++;
    return 0;
}

/* Asks a request in flight to complete now (its completion still comes to the port). */
static void poll_cancel(iocp_backend *b, iocp_poll *q)
{
    if (q->events == 0 || q->cancelling)
        return;
    q->cancelling = true;
    /* ERROR_NOT_FOUND: it completed already and its packet is queued. */
    (void)CancelIoEx(b->afd, (LPOVERLAPPED)&q->iosb);
}

/*
 * Brings the active poll in line with the armed directions. Nothing in flight: submit. The
 * active poll asks for something else: cancel it and submit the new one in the other slot
 * at once (so a reregister is seen by the next wait); if that slot is still busy with an
 * older cancelled poll, the cancelled completion resubmits. 0 or a submission error.
 */
static int sock_update(iocp_backend *b, iocp_sock *s)
{
    ASYNCIO_CHECK(!s->deleted); /* a deleted registration is only ever cancelled */
    ULONG want = afd_events(s->interest & ~s->disarmed);
    iocp_poll *cur = &s->polls[s->active];
    if (cur->events == want && !cur->cancelling)
        return 0;
    if (cur->events == 0)
        return poll_submit(b, s, cur, want);
    poll_cancel(b, cur);
    iocp_poll *other = &s->polls[s->active ^ 1u];
    if (other->events != 0)
        return 0;
    s->active ^= 1u;
    return poll_submit(b, s, other, want);
}

/*
 * Forgets a registration: unlinked now, freed now or when its polls complete. It also leaves
 * the resubmit list at once: a reported registration waits there for the next wait(), which
 * would otherwise submit a fresh poll for it that nothing ever cancels (free then waited
 * for that poll's completion forever, while the socket stayed open).
 */
static void sock_delete(iocp_backend *b, iocp_sock *s)
{
    if (!s->deleted) {
        table_remove(b, s);
        s->deleted = true;
    }
    if (asyncio__list_linked(&s->resubmit_node))
        asyncio__list_remove(&s->resubmit_node);
    poll_cancel(b, &s->polls[0]);
    poll_cancel(b, &s->polls[1]);
    if (sock_idle(s))
        sock_free(b, s);
}

/*
 * One completed poll. Returns true and fills *ev when it makes an event; applies the
 * trigger mode and queues the registration for its next poll.
 */
static bool sock_complete(iocp_backend *b, iocp_poll *q, asyncio_event *ev)
{
    iocp_sock *s = q->sock;
    ASYNCIO_CHECK(q->events != 0 && b->inflight > 0);
    bool cancelled = q->cancelling;
    q->events = 0;
    q->cancelling = false;
    b->inflight--;
    if (s->deleted) {
        if (sock_idle(s))
            sock_free(b, s);
        return false;
    }
    if (q != &s->polls[s->active])
        return false; /* superseded by a newer poll, which reports the present */
    ULONG got = 0;
    NTSTATUS st = q->iosb.Status;
    if (NT_SUCCESS(st) && q->info.number_of_handles >= 1)
        got = q->info.handles[0].events;
    else if (st != STATUS_CANCELLED) {
        sock_delete(b, s); /* the socket is gone (closed, invalid handle): forget it */
        return false;
    }
    if (got & AFD_POLL_LOCAL_CLOSE) {
        sock_delete(b, s); /* closed while registered: forget it, as epoll does */
        return false;
    }
    uint32_t armed = s->interest & ~s->disarmed;
    uint32_t active = cancelled ? 0 : active_dirs(got, armed);
    bool report = active != 0;
    if (report) {
        ev->token = s->token;
        ev->readiness = readiness_of(got, armed);
        if (s->mode == ASYNCIO_EDGE)
            s->disarmed |= active;
        else if (s->mode == ASYNCIO_ONESHOT)
            s->disarmed = s->interest;
    }
    if (!report) {
        /* Cancelled for a change (nothing to report): the new interest is polled now. */
        if (sock_update(b, s) < 0)
            sock_delete(b, s);
        return false;
    }
    /*
     * After an event the next poll is submitted by the next wait(), not now: a poll issued
     * now would see the readiness the caller is about to consume, and a level registration
     * drained before that wait would be reported once more from a stale completion.
     */
    if (!asyncio__list_linked(&s->resubmit_node))
        asyncio__list_push_back(&b->resubmit, &s->resubmit_node);
    return report;
}

/* Owner, lock held, before blocking: polls again every registration that completed. */
static void resubmit_completed(iocp_backend *b)
{
    while (!asyncio__list_empty(&b->resubmit)) {
        iocp_sock *s =
            ASYNCIO_CONTAINER_OF(asyncio__list_first(&b->resubmit), iocp_sock, resubmit_node);
        asyncio__list_remove(&s->resubmit_node);
        if (sock_update(b, s) < 0)
            sock_delete(b, s); /* cannot be polled any more (handle closed meanwhile) */
    }
}

/* ------------------------------------------------------------------------ */
/* Set-up                                                                    */

/* Opens \Device\Afd\asyncio, the helper handle every poll is issued on. */
static int open_afd(HANDLE *out)
{
    static const WCHAR name[] = L"\\Device\\Afd\\asyncio";
    UNICODE_STRING path = {sizeof name - sizeof(WCHAR), sizeof name, (PWSTR)name};
    OBJECT_ATTRIBUTES attrs;
    InitializeObjectAttributes(&attrs, &path, 0, NULL, NULL);
    IO_STATUS_BLOCK iosb;
    HANDLE h = NULL;
    NTSTATUS st = NtCreateFile(&h, SYNCHRONIZE, &attrs, &iosb, NULL, 0,
                               FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_OPEN, 0, NULL, 0);
    if (!NT_SUCCESS(st))
        return asyncio__win_error(RtlNtStatusToDosError(st));
    *out = h;
    return 0;
}

static int iocp_init(asyncio_poller *owner, void **state)
{
    (void)owner;
    int rc = asyncio__winsock_init();
    if (rc < 0)
        return rc;
    iocp_backend *b = asyncio__calloc(1, sizeof *b);
    if (b == NULL)
        return ASYNCIO_ENOMEM;
    asyncio__mutex_init(&b->lock);
    asyncio__list_init(&b->resubmit);
    b->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    if (b->port == NULL) {
        rc = asyncio__win_error(GetLastError());
        goto fail;
    }
    rc = open_afd(&b->afd);
    if (rc < 0)
        goto fail;
    if (CreateIoCompletionPort(b->afd, b->port, AFD_KEY, 0) == NULL ||
        !SetFileCompletionNotificationModes(b->afd, FILE_SKIP_SET_EVENT_ON_HANDLE)) {
        rc = asyncio__win_error(GetLastError());
        goto fail;
    }
    *state = b;
    return 0;
fail:
    if (b->afd != NULL)
        CloseHandle(b->afd);
    if (b->port != NULL)
        CloseHandle(b->port);
    asyncio__free(b);
    return rc;
}

/*
 * Every registration is cancelled and the port drained until no poll is in flight: the
 * kernel writes each poll's status block on completion, so no registration may be freed
 * before its poll has completed.
 */
static void iocp_destroy(void *state)
{
    iocp_backend *b = state;
    asyncio__mutex_lock(&b->lock);
    for (size_t i = 0; i < b->nbuckets; i++)
        while (b->buckets[i] != NULL)
            sock_delete(b, b->buckets[i]);
    while (b->inflight > 0) {
        OVERLAPPED_ENTRY entries[ENTRIES_MAX];
        ULONG n = 0;
        asyncio__mutex_unlock(&b->lock);
        BOOL ok = GetQueuedCompletionStatusEx(b->port, entries, ENTRIES_MAX, &n, INFINITE, FALSE);
        asyncio__mutex_lock(&b->lock);
        ASYNCIO_CHECK(ok);
        for (ULONG i = 0; i < n; i++) {
            if (entries[i].lpCompletionKey != AFD_KEY || entries[i].lpOverlapped == NULL)
                continue;
            asyncio_event ignored;
            sock_complete(b, (iocp_poll *)(void *)entries[i].lpOverlapped, &ignored);
        }
    }
    asyncio__mutex_unlock(&b->lock);
    CloseHandle(b->afd);
    CloseHandle(b->port);
    asyncio__free(b->buckets);
    asyncio__mutex_destroy(&b->lock);
    asyncio__free(b);
}

/* The base service provider's handle of fd (below any LSP). */
static int base_handle(int fd, SOCKET *out)
{
    SOCKET base = INVALID_SOCKET;
    DWORD bytes = 0;
    if (WSAIoctl(asyncio__win_sock(fd), SIO_BASE_HANDLE, NULL, 0, &base, sizeof base, &bytes, NULL,
                 NULL) != 0 ||
        base == INVALID_SOCKET) {
        int rc = asyncio__wsa_error();
        /* Not a socket, or a closed one: the handle is not an open descriptor to poll. */
        return rc == ASYNCIO_ENOTSOCK || rc == ASYNCIO_EBADF ? ASYNCIO_EBADF : rc;
    }
    *out = base;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Registration                                                              */

static int iocp_add(void *state, int fd, uintptr_t token, uint32_t interest, asyncio_trigger mode)
{
    iocp_backend *b = state;
    SOCKET base = INVALID_SOCKET;
    int rc = base_handle(fd, &base);
    if (rc < 0)
        return rc;
    iocp_sock *s = asyncio__calloc(1, sizeof *s);
    if (s == NULL)
        return ASYNCIO_ENOMEM;
    asyncio__list_node_init(&s->resubmit_node);
    s->fd = fd;
    s->base = base;
    s->token = token;
    s->interest = interest;
    s->mode = mode;
    asyncio__mutex_lock(&b->lock);
    rc = table_find(b, fd) != NULL ? ASYNCIO_EEXIST : table_insert(b, s);
    if (rc == 0) {
        rc = sock_update(b, s);
        if (rc < 0) {
            table_remove(b, s);
            sock_free(b, s);
        }
    } else {
        sock_free(b, s);
    }
    asyncio__mutex_unlock(&b->lock);
    return rc;
}

/* poll.h's EBADF for a handle that is not an open socket (one getsockopt). */
static bool is_open_socket(int fd)
{
    int type = 0, len = sizeof type;
    return getsockopt(asyncio__win_sock(fd), SOL_SOCKET, SO_TYPE, (char *)&type, &len) == 0;
}

static int iocp_modify(void *state, int fd, uintptr_t token, uint32_t interest,
                       asyncio_trigger mode)
{
    iocp_backend *b = state;
    if (!is_open_socket(fd))
        return ASYNCIO_EBADF;
    asyncio__mutex_lock(&b->lock);
    iocp_sock *s = table_find(b, fd);
    int rc = ASYNCIO_ENOENT;
    if (s != NULL) {
        s->token = token;
        s->interest = interest;
        s->mode = mode;
        s->disarmed = 0;
        /*
         * Re-arming must report current readiness again (poll.h), including directions
         * the poll in flight already covers: mark it cancelled, so sock_update replaces it
         * with a fresh poll that sees the present.
         */
        poll_cancel(b, &s->polls[s->active]);
        rc = sock_update(b, s);
        if (rc < 0)
            sock_delete(b, s);
    }
    asyncio__mutex_unlock(&b->lock);
    return rc;
}

/*
 * Deregistration. A socket closed before its deregistration (against poll.h's advice) is
 * forgotten all the same, and the call says ASYNCIO_EBADF, as epoll_ctl does for a closed fd
 * (whose registration the kernel already dropped).
 */
static int iocp_remove(void *state, int fd)
{
    iocp_backend *b = state;
    asyncio__mutex_lock(&b->lock);
    iocp_sock *s = table_find(b, fd);
    if (s != NULL)
        sock_delete(b, s);
    asyncio__mutex_unlock(&b->lock);
    if (!is_open_socket(fd))
        return ASYNCIO_EBADF;
    return s != NULL ? 0 : ASYNCIO_ENOENT;
}

static int iocp_rearm(void *state, int fd, uint32_t directions)
{
    iocp_backend *b = state;
    asyncio__mutex_lock(&b->lock);
    iocp_sock *s = table_find(b, fd);
    int rc = s != NULL ? 0 : ASYNCIO_ENOENT;
    if (s != NULL && s->mode == ASYNCIO_EDGE && (s->disarmed & directions) != 0) {
        s->disarmed &= ~directions;
        rc = sock_update(b, s);
        if (rc < 0)
            sock_delete(b, s);
    }
    asyncio__mutex_unlock(&b->lock);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                   */

static int iocp_wait(void *state, asyncio_event *out, size_t cap, int timeout_ms, size_t *n_out)
{
    iocp_backend *b = state;
    OVERLAPPED_ENTRY entries[ENTRIES_MAX];
    ULONG want = cap < ENTRIES_MAX ? (ULONG)cap : ENTRIES_MAX, n = 0;
    *n_out = 0;
    if (want == 0)
        return 0;
    DWORD timeout = timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms;
    asyncio__mutex_lock(&b->lock);
    resubmit_completed(b);
    asyncio__mutex_unlock(&b->lock);
    if (!GetQueuedCompletionStatusEx(b->port, entries, want, &n, timeout, FALSE)) {
        DWORD err = GetLastError();
        return err == WAIT_TIMEOUT ? 0 : asyncio__win_error(err);
    }
    size_t got = 0;
    asyncio__mutex_lock(&b->lock);
    for (ULONG i = 0; i < n; i++) {
        if (entries[i].lpCompletionKey == WAKE_KEY) {
            out[got++] = (asyncio_event){ASYNCIO_TOKEN_RESERVED, ASYNCIO_READABLE};
            continue;
        }
        iocp_poll *q = (iocp_poll *)(void *)entries[i].lpOverlapped; /* iosb is first */
        if (q != NULL && sock_complete(b, q, &out[got]))
            got++;
    }
    asyncio__mutex_unlock(&b->lock);
    *n_out = got;
    return 0;
}

static void iocp_wake(void *state)
{
    iocp_backend *b = state;
    /* Fails only when the port is gone or out of memory; the waiter then times out. */
    (void)PostQueuedCompletionStatus(b->port, 0, WAKE_KEY, NULL);
}

const asyncio__backend_ops asyncio__iocp_ops = {
    "iocp",      iocp_init,  iocp_destroy, iocp_add,  iocp_modify,
    iocp_remove, iocp_rearm, iocp_wait,    iocp_wake, NULL,
};
