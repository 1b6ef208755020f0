/*
 * Intrusive doubly linked circular list (the libuv queue.h idea).
 *
 * A node linked to itself is "not queued". Insertion asserts the node is
 * unlinked; removal re-initialises it, so removing twice is harmless and
 * asyncio__list_linked() always tells the truth. A list head is a node that
 * is never an element. Not thread-safe: the owner's lock (if any) guards it.
 */
#ifndef ASYNCIO_UTIL_LIST_H
#define ASYNCIO_UTIL_LIST_H

#include <stdbool.h>

#include "internal.h"

typedef struct asyncio__list {
    struct asyncio__list *next;
    struct asyncio__list *prev;
} asyncio__list;

static inline void asyncio__list_init(asyncio__list *n)
{
    n->next = n;
    n->prev = n;
}

static inline bool asyncio__list_linked(const asyncio__list *n)
{
    return n->next != n;
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

static inline void asyncio__list_remove(asyncio__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    asyncio__list_init(n);
}

static inline asyncio__list *asyncio__list_first(const asyncio__list *head)
{
    return asyncio__list_empty(head) ? NULL : head->next;
}

#endif
