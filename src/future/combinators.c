/*
 * Combinators over the future interface: select / race, join_all /
 * try_join (future.h). Each owns its children and a wake set
 * (wake_set.h): a poll polls only the children whose waker fired.
 *
 * Life of a combinator:
 *   init      takes the children; allocates the wake set (every child
 *             marked woken, so the first poll polls them all); on failure
 *             drops the children and is left finished
 *   poll      stores the task's waker in the set (a compare unless it
 *             changed), takes the woken bits,
 *             polls those children with their own wakers; a child that
 *             finished is dropped at once (its output is written)
 *   result    the children that are left are dropped, the set released
 *   drop      drops what is left; idempotent
 */
#include <stdint.h>

#include "asyncio/future.h"
#include "future/wake_set.h"
#include "internal.h"

/* ------------------------------------------------------------------------ */
/* Polling the woken children                                                */

static unsigned lowest_bit(uint64_t bits)
{
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_ctzll(bits);
#else
    unsigned i = 0;
    while (!(bits & 1)) {
        bits >>= 1;
        i++;
    }
    return i;
#endif
}

/* Called for each child that finished (already dropped); true stops the poll. */
typedef bool (*child_done_fn)(void *self, size_t index, int rc);

/*
 * Polls every woken child of futs[] once. Returns true if `done` asked to
 * stop (the combinator has its result). The cooperative budget the
 * children use is the task's: each child context starts from cx's budget
 * and hands what is left back.
 */
static bool poll_woken(asyncio_future *futs, asyncio_wake_set *ws, asyncio_context *cx,
                       child_done_fn done, void *self)
{
    bool parent_set = asyncio__wake_set_set_parent(ws, cx->waker);
    size_t words = asyncio__wake_set_words(ws);
    for (size_t k = 0; k < words; k++) {
        uint64_t bits = asyncio__wake_set_take(ws, k);
        while (bits != 0) {
            size_t i = k * 64 + lowest_bit(bits);
            bits &= bits - 1;
            if (asyncio_future_is_empty(&futs[i]))
                continue; /* finished earlier; a late wake */
            asyncio_waker w = asyncio__wake_set_child(ws, i);
            asyncio_context ccx = *cx;
            ccx.waker = &w;
            int rc = asyncio_future_poll(&futs[i], &ccx);
            cx->budget = ccx.budget;
            if (rc == ASYNCIO_PENDING)
                continue;
            asyncio_future_drop(&futs[i]);
            if (done(self, i, rc))
                return true;
        }
    }
    if (!parent_set)
        asyncio_waker_wake_by_ref(cx->waker); /* no cell for the new waker: poll again */
    return false;
}

static void drop_all(asyncio_future *futs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        asyncio_future_drop(&futs[i]);
}

/* Validates and takes the children; on failure they are dropped. */
static int take_children(asyncio_future *futs, size_t n, asyncio_wake_set **ws)
{
    *ws = NULL;
    if (futs == NULL || n == 0)
        return ASYNCIO_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (asyncio_future_is_empty(&futs[i]) || futs[i].vtable->poll == NULL) {
            drop_all(futs, n);
            return ASYNCIO_EINVAL;
        }
    }
    *ws = asyncio__wake_set_new(n);
    if (*ws == NULL) {
        drop_all(futs, n);
        return ASYNCIO_ENOMEM;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* select / race                                                             */

static int select_init(asyncio_select *s, asyncio_future *futs, size_t n, bool race)
{
    if (s == NULL) {
        if (futs != NULL)
            drop_all(futs, n);
        return ASYNCIO_EINVAL;
    }
    s->futs = futs;
    s->n = futs != NULL ? n : 0;
    s->winner = SIZE_MAX;
    s->live = n;
    s->last_err = 0;
    s->race = race;
    s->done = 1;
    int rc = take_children(futs, n, &s->ws);
    if (rc == 0)
        s->done = 0;
    return rc;
}

int asyncio_select_init(asyncio_select *s, asyncio_future *futs, size_t n)
{
    return select_init(s, futs, n, false);
}

int asyncio_race_init(asyncio_select *s, asyncio_future *futs, size_t n)
{
    return select_init(s, futs, n, true);
}

/* A child of the select finished with rc: does it decide the select? */
static bool select_child_done(void *self, size_t index, int rc)
{
    asyncio_select *s = self;
    if (s->race && rc < 0) {
        s->last_err = rc;
        return --s->live == 0; /* every child failed: the last error is the result */
    }
    s->winner = index;
    s->last_err = rc;
    return true;
}

/* The select has its result: drop the losers and the wake set. */
static void select_finish(asyncio_select *s)
{
    drop_all(s->futs, s->n);
    asyncio__wake_set_release(s->ws);
    s->ws = NULL;
    s->done = 1;
}

int asyncio_select_poll(asyncio_select *s, asyncio_context *cx, size_t *winner)
{
    if (s == NULL || cx == NULL || cx->waker == NULL || s->done || s->ws == NULL)
        return ASYNCIO_EINVAL;
    if (!poll_woken(s->futs, s->ws, cx, select_child_done, s))
        return ASYNCIO_PENDING;
    select_finish(s);
    if (winner != NULL && s->winner != SIZE_MAX)
        *winner = s->winner; /* a race that every child lost has no winner */
    return s->last_err;
}

size_t asyncio_select_winner(const asyncio_select *s)
{
    return s != NULL ? s->winner : SIZE_MAX;
}

void asyncio_select_drop(asyncio_select *s)
{
    if (s == NULL || s->done)
        return;
    select_finish(s);
}

static int select_future_poll(void *state, asyncio_context *cx, void *out)
{
    return asyncio_select_poll(state, cx, out);
}

static void select_future_drop(void *state)
{
    asyncio_select_drop(state);
}

static const asyncio_future_vtable g_select_vt = {select_future_poll, select_future_drop};

asyncio_future asyncio_select_future(asyncio_select *s, size_t *winner_out)
{
    return asyncio_future_make(&g_select_vt, s, winner_out);
}

/* ------------------------------------------------------------------------ */
/* join_all / try_join                                                       */

static int join_init(asyncio_join *j, asyncio_future *futs, size_t n, int *results, bool try_join)
{
    if (j == NULL || results == NULL) {
        if (futs != NULL)
            drop_all(futs, n);
        if (j != NULL)
            j->done = 1, j->ws = NULL, j->futs = NULL, j->n = 0;
        return ASYNCIO_EINVAL;
    }
    j->futs = futs;
    j->n = futs != NULL ? n : 0;
    j->results = results;
    j->left = n;
    j->failed = SIZE_MAX;
    j->try_join = try_join;
    j->done = 1;
    int rc = take_children(futs, n, &j->ws);
    if (rc == 0) {
        j->done = 0;
        for (size_t i = 0; i < n; i++)
            results[i] = ASYNCIO_PENDING; /* not finished yet */
    }
    return rc;
}

int asyncio_join_all_init(asyncio_join *j, asyncio_future *futs, size_t n, int *results)
{
    return join_init(j, futs, n, results, false);
}

int asyncio_try_join_init(asyncio_join *j, asyncio_future *futs, size_t n, int *results)
{
    return join_init(j, futs, n, results, true);
}

static bool join_child_done(void *self, size_t index, int rc)
{
    asyncio_join *j = self;
    j->results[index] = rc;
    if (j->try_join && rc < 0) {
        j->failed = index;
        return true;
    }
    return --j->left == 0;
}

static void join_finish(asyncio_join *j)
{
    drop_all(j->futs, j->n);
    asyncio__wake_set_release(j->ws);
    j->ws = NULL;
    j->done = 1;
}

int asyncio_join_poll(asyncio_join *j, asyncio_context *cx, size_t *failed)
{
    if (j == NULL || cx == NULL || cx->waker == NULL || j->done || j->ws == NULL)
        return ASYNCIO_EINVAL;
    if (!poll_woken(j->futs, j->ws, cx, join_child_done, j))
        return ASYNCIO_PENDING;
    join_finish(j);
    if (j->failed == SIZE_MAX)
        return 0;
    if (failed != NULL)
        *failed = j->failed;
    return j->results[j->failed];
}

void asyncio_join_drop(asyncio_join *j)
{
    if (j == NULL || j->done)
        return;
    join_finish(j);
}

static int join_future_poll(void *state, asyncio_context *cx, void *out)
{
    (void)out;
    return asyncio_join_poll(state, cx, NULL);
}

static void join_future_drop(void *state)
{
    asyncio_join_drop(state);
}

static const asyncio_future_vtable g_join_vt = {join_future_poll, join_future_drop};

asyncio_future asyncio_join_future(asyncio_join *j)
{
    return asyncio_future_make(&g_join_vt, j, NULL);
}
