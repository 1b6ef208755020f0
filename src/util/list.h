/*
 * Intrusive doubly linked circular list (the libuv queue.h shape).
 *
 * Two kinds of asyncio__list, told apart by how they are initialised:
 *
 *   head  asyncio__list_init(): linked to itself when empty. A head is never
 *         an element. Heads live in objects that are never moved (runtimes,
 *         primitives, the wheel) or in a local variable of one function.
 *   node  asyncio__list_node_init(): next == prev == NULL while it is in no
 *         list. Insertion asserts the node is unlinked; removal sets it back
 *         to NULL, so removing twice is harmless and asyncio__list_linked()
 *         always tells the truth.
 *
 * Why an unlinked node is NULL rather than linked to itself: nodes are
 * embedded in futures that users initialise and then move (asyncio_spawn
 * copies a task's initial state). A self-linked node copied elsewhere points
 * at the original and looks linked; a NULL node stays unlinked wherever it is
 * copied to, and an all-zero node is a valid unlinked one. A node in a list
 * must not move (its neighbours point at it): futures are movable until
 * their first poll, not after (docs/writing-tasks.md).
 *
 * Not thread-safe: the owner's lock (if any) guards it.
 */
#ifndef ASYNCIO_UTIL_LIST_H
#define ASYNCIO_UTIL_LIST_H

#include <stdbool.h>

#include "asyncio/common.h"
#include "internal.h"

/*
 * The public asyncio_link itself, so that futures in public headers embed
 * the real node type (no storage mirror, no cast: docs/architecture.md).
 */
typedef asyncio_link asyncio__list;

/* Initialises an empty list head (linked to itself). */
static inline void asyncio__list_init(asyncio__list *head)
{
    head->next = head;
    head->prev = head;
}

/* Initialises a node as unlinked (NULL links). */
static inline void asyncio__list_node_init(asyncio__list *n)
{
    n->next = NULL;
    n->prev = NULL;
}

/* True while the node is in a list. Nodes only: a head is never "linked". */
static inline bool asyncio__list_linked(const asyncio__list *n)
{
    ASYNCIO_ASSERT(n->next != n && "a node initialised as a head (asyncio__list_init)");
    return n->next != NULL;
}

static inline bool asyncio__list_empty(const asyncio__list *head)
{
    return head->next == head;
}

static inline void asyncio__list_push_back(asyncio__list *head, asyncio__list *n)
{
    ASYNCIO_ASSERT(!asyncio__list_linked(n));
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

/* Unlinks the node if it is linked, and leaves it unlinked (NULL links). */
static inline void asyncio__list_remove(asyncio__list *n)
{
    if (!asyncio__list_linked(n))
        return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    asyncio__list_node_init(n);
}

static inline asyncio__list *asyncio__list_first(const asyncio__list *head)
{
    return asyncio__list_empty(head) ? NULL : head->next;
}

#endif
