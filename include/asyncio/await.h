/*
 * libasyncio: optional await macros -- stackless coroutines for poll functions.
 *
 * A poll function is re-entered from the top on every wake. These macros
 * (protothreads' technique: a `switch` on a saved resume point, one `case`
 * per await, numbered with __LINE__) let it read top to bottom instead of
 * as a hand-made state machine:
 *
 *     typedef struct echo { asyncio_coro co; asyncio_tcp_stream s; char buf[4096];
 *                           size_t len, off, n; } echo;
 *
 *     static int echo_poll(void *state, asyncio_context *cx, void *output)
 *     {
 *         echo *e = state;
 *         int rc;
 *         (void)output;
 *         ASYNCIO_BEGIN(e->co);
 *         for (;;) {
 *             ASYNCIO_AWAIT_OK(e->co, rc, asyncio_tcp_stream_poll_read(&e->s, cx, e->buf,
 *                                                                       sizeof e->buf, &e->len));
 *             if (e->len == 0)
 *                 break;
 *             for (e->off = 0; e->off < e->len; e->off += e->n)
 *                 ASYNCIO_AWAIT_OK(e->co, rc, asyncio_tcp_stream_poll_write(
 *                                      &e->s, cx, e->buf + e->off, e->len - e->off, &e->n));
 *         }
 *         ASYNCIO_END(e->co);
 *         return 0;
 *     }
 *
 * The rules (docs/writing-tasks.md, "Await macros"):
 *   1. Locals do not survive an await: the function returns at every
 *      ASYNCIO_PENDING and is re-entered at the await's `case`. Everything
 *      that must outlive an await lives in the state struct (e->off above).
 *      Locals may be used between two awaits (rc is written by each await).
 *   2. No `switch` of your own around an await: its `case` label would
 *      belong to your switch. (A `switch` that contains no await is fine.)
 *   3. One ASYNCIO_BEGIN / ASYNCIO_END pair per poll function, and at most
 *      one await macro per source line (the line number is the resume point).
 *   4. The resume point is an asyncio_coro field initialised to
 *      ASYNCIO_CORO_INIT (zero: a zeroed or `= {0}`-initialised state works).
 *      It is a plain integer in a struct: the state stays movable until the
 *      first poll, as every libasyncio future is.
 *
 * What the compiler enforces: the resume field must be an asyncio_coro
 * (static assertion); an await outside BEGIN / END, or a second BEGIN in
 * the same function body, does not compile (BEGIN declares a marker the
 * awaits use; BEGIN also defines a function-scope label, so a second BEGIN
 * is a duplicate label); two awaits on one line are duplicate `case` labels. What it
 * cannot catch: rule 1 (GCC's -Wjump-misses-init helps) and rule 2.
 *
 * Cost: each await is one store of the resume point and one `case`; a
 * re-entry is one indirect jump through the switch's table. The generated
 * code is what a hand-written `switch (step)` compiles to.
 *
 * The macros are optional: the plain poll-function contract (task.h) stays
 * first-class, and both styles mix freely (a macro-written poll function is
 * an ordinary poll function).
 */
#ifndef ASYNCIO_AWAIT_H
#define ASYNCIO_AWAIT_H

#include "common.h"
#include "error.h"
#include "task.h"

/**
 * A coroutine's resume point. Embed one in the state of each poll function
 * written with the macros; initialise it with ASYNCIO_CORO_INIT (or zero).
 * Fields are private. Movable (it is an integer).
 */
typedef struct asyncio_coro {
    unsigned resume; /* private: 0 = start, else the __LINE__ of the await to resume at */
} asyncio_coro;

/** Initial value of an asyncio_coro: start from the top. */
#define ASYNCIO_CORO_INIT \
    {                     \
        0u                \
    }

/** Resume point of a coroutine that reached ASYNCIO_END (or returned through AWAIT_OK). */
#define ASYNCIO_CORO_DONE 0xffffffffu

/** True once the coroutine reached ASYNCIO_END or failed through ASYNCIO_AWAIT_OK. */
#define ASYNCIO_CORO_IS_DONE(co) ((co).resume == ASYNCIO_CORO_DONE)

/* Marks the intended fall-through into an await's `case` (-Wimplicit-fallthrough). */
#if defined(__cplusplus) && __cplusplus >= 201703L
#define ASYNCIO__FALLTHROUGH [[fallthrough]]
#elif defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 7)
#define ASYNCIO__FALLTHROUGH __attribute__((fallthrough))
#else
#define ASYNCIO__FALLTHROUGH ((void)0)
#endif

#ifdef __cplusplus
#define ASYNCIO__CORO_CHECK(co) \
    static_assert(sizeof((co).resume) == sizeof(unsigned), "ASYNCIO_BEGIN wants an asyncio_coro")
#else
#define ASYNCIO__CORO_CHECK(co)                                      \
    _Static_assert(_Generic(&(co), asyncio_coro * : 1, default : 0), \
                   "ASYNCIO_BEGIN / ASYNCIO_AWAIT want an asyncio_coro field (the resume point)")
#endif

/**
 * Starts the coroutine body: jumps to where the last poll stopped. Use once,
 * at the top of the poll function (after declaring the locals).
 */
#define ASYNCIO_BEGIN(co)                                                                \
    ASYNCIO__CORO_CHECK(co);                                                             \
    enum { asyncio__coro_begun = 1 };                                                    \
    asyncio__coro_top: /* a function-scope label: a second BEGIN is a duplicate label */ \
    switch ((co).resume) {                                                               \
    case 0:

#define ASYNCIO__STR2(x) #x
#define ASYNCIO__STR(x)  ASYNCIO__STR2(x)
/* The dump's "waiting on" label of an await: its expression and where it is (a literal). */
#define ASYNCIO__AWAIT_LABEL(expr) #expr " @ " __FILE__ ":" ASYNCIO__STR(__LINE__)

/**
 * Polls `expr` (an int-valued poll expression, re-evaluated on every
 * re-entry) into `rc`; while it is ASYNCIO_PENDING, returns ASYNCIO_PENDING
 * to the caller and resumes here on the next poll. Continues with rc == 0
 * or a negative error. On PENDING it sets the task's "waiting on" label
 * (asyncio_task_set_waiting_on) to the expression and its file:line, which
 * asyncio_runtime_dump() shows (a runtime with opts.track_tasks).
 */
#define ASYNCIO_AWAIT(co, rc, expr)                                                          \
    do {                                                                                     \
        ASYNCIO__CORO_CHECK(co);                                                             \
        (void)asyncio__coro_begun; /* an await outside ASYNCIO_BEGIN does not compile */     \
        (co).resume = __LINE__;                                                              \
        ASYNCIO__FALLTHROUGH;                                                                \
    case __LINE__:                                                                           \
        (rc) = (expr);                                                                       \
        if ((rc) == ASYNCIO_PENDING) {                                                       \
            asyncio_task_set_waiting_on(ASYNCIO__AWAIT_LABEL(expr), ASYNCIO_WAITING_NO_ARG); \
            return ASYNCIO_PENDING;                                                          \
        }                                                                                    \
    } while (0)

/**
 * As ASYNCIO_AWAIT, but a negative result ends the coroutine: the poll
 * function returns it (the resume point becomes ASYNCIO_CORO_DONE).
 */
#define ASYNCIO_AWAIT_OK(co, rc, expr)       \
    do {                                     \
        ASYNCIO_AWAIT(co, rc, expr);         \
        if ((rc) < 0) {                      \
            (co).resume = ASYNCIO_CORO_DONE; \
            return (rc);                     \
        }                                    \
    } while (0)

/**
 * Lets other tasks run: wakes cx's waker, returns ASYNCIO_PENDING and
 * resumes after this line on the next poll.
 */
#define ASYNCIO_YIELD(co, cx)                   \
    do {                                        \
        ASYNCIO__CORO_CHECK(co);                \
        (void)asyncio__coro_begun;              \
        (co).resume = __LINE__;                 \
        asyncio_waker_wake_by_ref((cx)->waker); \
        return ASYNCIO_PENDING;                 \
    case __LINE__:;                             \
    } while (0)

/**
 * Returns ASYNCIO_PENDING and resumes after this line on the next poll,
 * without waking anyone: for a leaf polled by hand (not through an await)
 * that returned ASYNCIO_PENDING, so it has stored cx's waker already, when
 * the coroutine should sleep until that wake instead of re-polling the
 * leaf at once (the echo's read that found the socket empty, after which
 * the task waits for readability). Using it when nothing stored cx's waker
 * sleeps forever, like any poll function that returns PENDING unarmed.
 */
#define ASYNCIO_SUSPEND(co)        \
    do {                           \
        ASYNCIO__CORO_CHECK(co);   \
        (void)asyncio__coro_begun; \
        (co).resume = __LINE__;    \
        return ASYNCIO_PENDING;    \
    case __LINE__:;                \
    } while (0)

/**
 * Ends the coroutine body; the code after it runs once, when the body
 * completes (return the result there). A coroutine polled again after it
 * ended falls straight through to that code.
 */
#define ASYNCIO_END(co)                                               \
    ASYNCIO__FALLTHROUGH;                                             \
    case ASYNCIO_CORO_DONE:                                           \
    default:                                                          \
        break;                                                        \
        }                                                             \
        if (0)                                                        \
            goto asyncio__coro_top; /* uses the label (never runs) */ \
        (co).resume = ASYNCIO_CORO_DONE

#endif
