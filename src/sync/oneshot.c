/*
 * oneshot channel: one value, sent once, from one sender to one receiver.
 *
 * One allocation holds the shared state and the value slot (elem_size
 * bytes after the header). Both handle pointers are that block's address;
 * it is freed when both handles are released.
 *
 * State (guarded by os->lock):
 *   value_state  EMPTY (nothing sent), FULL (sent, not received), TAKEN.
 *   tx_alive     the sender was neither used by send nor dropped.
 *   rx_alive     the receiver was not dropped.
 *   rx_waker     the receiver's, woken by send and by the sender's drop.
 *   tx_waker     the sender's poll_closed waker, woken by the receiver's drop.
 * Receive outcomes: FULL -> the value; EMPTY and !tx_alive -> ECLOSED
 * (sender dropped without sending); TAKEN -> ECLOSED; otherwise pending.
 */
#include <stdalign.h>
#include <string.h>

#include "asyncio/channel.h"
#include "internal.h"
#include "platform/thread.h"
#include "util/alloc.h"

enum value_state {
    VALUE_EMPTY = 0,
    VALUE_FULL = 1,
    VALUE_TAKEN = 2,
};

typedef struct oneshot {
    asyncio__mutex lock;
    asyncio_waker rx_waker;
    asyncio_waker tx_waker;
    size_t elem_size;
    uint8_t value_state;
    bool tx_alive;
    bool rx_alive;
    alignas(max_align_t) unsigned char value[]; /* elem_size bytes */
} oneshot;

static oneshot *tx_os(asyncio_oneshot_sender *tx)
{
    return (oneshot *)(void *)tx;
}

static oneshot *rx_os(asyncio_oneshot_receiver *rx)
{
    return (oneshot *)(void *)rx;
}

int asyncio_oneshot_channel(asyncio_oneshot_sender **tx, asyncio_oneshot_receiver **rx,
                            size_t elem_size)
{
    if (tx == NULL || rx == NULL || elem_size == 0 || elem_size > SIZE_MAX - sizeof(oneshot))
        return ASYNCIO_EINVAL;
    oneshot *os = asyncio__malloc(sizeof(oneshot) + elem_size);
    if (os == NULL)
        return ASYNCIO_ENOMEM;
    int rc = asyncio__mutex_init(&os->lock);
    if (rc != 0) {
        asyncio__free(os);
        return rc;
    }
    os->rx_waker = ASYNCIO_WAKER_EMPTY;
    os->tx_waker = ASYNCIO_WAKER_EMPTY;
    os->elem_size = elem_size;
    os->value_state = VALUE_EMPTY;
    os->tx_alive = true;
    os->rx_alive = true;
    *tx = (asyncio_oneshot_sender *)(void *)os;
    *rx = (asyncio_oneshot_receiver *)(void *)os;
    return 0;
}

static void oneshot_free(oneshot *os)
{
    asyncio__mutex_destroy(&os->lock);
    asyncio__free(os);
}

/*
 * Releases the sender, storing `elem` first if non-NULL and the receiver is
 * alive. Returns 0, or ECLOSED if a value was offered but nobody can get it.
 */
static int sender_release(oneshot *os, const void *elem)
{
    int rc = 0;
    asyncio__mutex_lock(&os->lock);
    ASYNCIO_CHECK(os->tx_alive); /* sent or dropped twice */
    if (elem != NULL) {
        if (os->rx_alive) {
            memcpy(os->value, elem, os->elem_size);
            os->value_state = VALUE_FULL;
        } else {
            rc = ASYNCIO_ECLOSED;
        }
    }
    os->tx_alive = false;
    asyncio_waker rx_w = os->rx_waker; /* a value, or "closed": either way wake it */
    os->rx_waker = ASYNCIO_WAKER_EMPTY;
    asyncio_waker tx_w = os->tx_waker;
    os->tx_waker = ASYNCIO_WAKER_EMPTY;
    bool free_now = !os->rx_alive;
    asyncio__mutex_unlock(&os->lock);
    asyncio_waker_wake(&rx_w);
    asyncio_waker_drop(&tx_w);
    if (free_now)
        oneshot_free(os);
    return rc;
}

int asyncio_oneshot_send(asyncio_oneshot_sender *tx, const void *elem)
{
    oneshot *os = tx_os(tx);
    if (os == NULL)
        return ASYNCIO_EINVAL;
    if (elem == NULL) {
        sender_release(os, NULL);
        return ASYNCIO_EINVAL;
    }
    return sender_release(os, elem);
}

void asyncio_oneshot_sender_drop(asyncio_oneshot_sender *tx)
{
    if (tx != NULL)
        sender_release(tx_os(tx), NULL);
}

bool asyncio_oneshot_sender_is_closed(asyncio_oneshot_sender *tx)
{
    oneshot *os = tx_os(tx);
    if (os == NULL)
        return true;
    asyncio__mutex_lock(&os->lock);
    bool closed = !os->rx_alive;
    asyncio__mutex_unlock(&os->lock);
    return closed;
}

int asyncio_oneshot_sender_poll_closed(asyncio_oneshot_sender *tx, asyncio_context *cx)
{
    oneshot *os = tx_os(tx);
    if (os == NULL || cx == NULL)
        return ASYNCIO_EINVAL;
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    int rc = 0;
    asyncio__mutex_lock(&os->lock);
    if (os->rx_alive) {
        rc = ASYNCIO_PENDING;
        if (!asyncio_waker_will_wake(&os->tx_waker, cx->waker)) {
            old = os->tx_waker;
            os->tx_waker = asyncio_waker_clone(cx->waker);
        }
    }
    asyncio__mutex_unlock(&os->lock);
    asyncio_waker_drop(&old);
    return rc;
}

/* Receives under the lock; stores cx's waker (if any) when nothing is there yet. */
static int recv_locked(oneshot *os, asyncio_context *cx, void *out, asyncio_waker *old)
{
    switch (os->value_state) {
    case VALUE_FULL: /* sent: take it */
        memcpy(out, os->value, os->elem_size);
        os->value_state = VALUE_TAKEN;
        *old = os->rx_waker;
        os->rx_waker = ASYNCIO_WAKER_EMPTY;
        return 0;
    case VALUE_TAKEN: /* received already: nothing more will come */
        return ASYNCIO_ECLOSED;
    default: /* EMPTY: closed if the sender is gone, else wait */
        if (!os->tx_alive)
            return ASYNCIO_ECLOSED;
        if (cx == NULL)
            return ASYNCIO_EAGAIN;
        if (!asyncio_waker_will_wake(&os->rx_waker, cx->waker)) {
            *old = os->rx_waker;
            os->rx_waker = asyncio_waker_clone(cx->waker);
        }
        return ASYNCIO_PENDING;
    }
}

int asyncio_oneshot_recv_poll(asyncio_oneshot_receiver *rx, asyncio_context *cx, void *out)
{
    oneshot *os = rx_os(rx);
    if (os == NULL || cx == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    if (asyncio_coop_proceed(cx) == ASYNCIO_PENDING)
        return ASYNCIO_PENDING;
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_lock(&os->lock);
    int rc = recv_locked(os, cx, out, &old);
    asyncio__mutex_unlock(&os->lock);
    asyncio_waker_drop(&old);
    return rc;
}

int asyncio_oneshot_try_recv(asyncio_oneshot_receiver *rx, void *out)
{
    oneshot *os = rx_os(rx);
    if (os == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    asyncio_waker old = ASYNCIO_WAKER_EMPTY;
    asyncio__mutex_lock(&os->lock);
    int rc = recv_locked(os, NULL, out, &old);
    asyncio__mutex_unlock(&os->lock);
    asyncio_waker_drop(&old);
    return rc;
}

void asyncio_oneshot_receiver_drop(asyncio_oneshot_receiver *rx)
{
    oneshot *os = rx_os(rx);
    if (os == NULL)
        return;
    asyncio__mutex_lock(&os->lock);
    os->rx_alive = false;
    asyncio_waker rx_w = os->rx_waker;
    os->rx_waker = ASYNCIO_WAKER_EMPTY;
    asyncio_waker tx_w = os->tx_waker; /* a sender in poll_closed learns it now */
    os->tx_waker = ASYNCIO_WAKER_EMPTY;
    bool free_now = !os->tx_alive;
    asyncio__mutex_unlock(&os->lock);
    asyncio_waker_drop(&rx_w);
    asyncio_waker_wake(&tx_w);
    if (free_now)
        oneshot_free(os);
}
