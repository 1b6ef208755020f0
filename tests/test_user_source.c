/*
 * User-space readiness sources, wakers, and user types implementing the source vtable.
 * Runs once per backend (ctest sets ASYNCIO_BACKEND): user events share the wait loop and
 * the wake-up channel with the backend's fd events.
 */
#include "support.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define R ASYNCIO_READABLE
#define W ASYNCIO_WRITABLE

static asyncio_poller *new_poller(void)
{
    asyncio_poller *p = NULL;
    assert_ok(asyncio_poller_new(&p));
    return p;
}

static asyncio_user_source *new_user(void)
{
    asyncio_user_source *u = NULL;
    assert_ok(asyncio_user_source_new(&u));
    assert_non_null(u);
    assert_int_equal(asyncio_user_source_readiness(u), 0);
    return u;
}

static asyncio_source *base(asyncio_user_source *u)
{
    asyncio_source *s = asyncio_user_source_base(u);
    assert_non_null(s);
    return s;
}

/* Deregisters and frees u, then frees p; all must succeed. */
static void finish(asyncio_poller *p, asyncio_user_source *u)
{
    if (u != NULL) {
        assert_ok(asyncio_poller_deregister(p, base(u)));
        assert_ok(asyncio_user_source_free(u));
    }
    assert_ok(asyncio_poller_free(p));
}

/* The single event of the next wait(0), which must be for token; returns its bits. */
static uint32_t expect_only(asyncio_poller *p, uintptr_t token)
{
    support_events e;
    support_wait(p, 0, SUPPORT_MAX_EVENTS, &e);
    if (e.n != 1 || e.ev[0].token != token)
        fail_msg("expected one event for token %ju, got %zu (first token %ju)", (uintmax_t)token,
                 e.n, e.n ? (uintmax_t)e.ev[0].token : 0);
    return e.ev[0].readiness;
}

/* ------------------------------------------------------------------------ */
/* Trigger modes                                                             */

static void test_user_source_edge_reports_each_set_once(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_user_source *u = new_user();
    assert_ok(asyncio_poller_register(p, base(u), 1, R, ASYNCIO_EDGE));
    expect_no_events(p, 0);

    assert_ok(asyncio_user_source_set_readiness(u, R));
    assert_int_equal(expect_only(p, 1), R);
    expect_no_events(p, 0); /* still ready, but no new set: no event */
    assert_ok(asyncio_user_source_set_readiness(u, R));
    assert_int_equal(expect_only(p, 1), R);
    expect_no_events(p, 0);

    finish(p, u);
}

static void test_user_source_sets_before_a_wait_coalesce(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_user_source *u = new_user();
    assert_ok(asyncio_poller_register(p, base(u), 1, R | W, ASYNCIO_EDGE));

    assert_ok(asyncio_user_source_set_readiness(u, R));
    assert_ok(asyncio_user_source_set_readiness(u, W));
    assert_ok(asyncio_user_source_set_readiness(u, R | W));
    assert_int_equal(expect_only(p, 1), R | W); /* one event, with the latest readiness */
    expect_no_events(p, 0);

    /* Cleared again before the wait: nothing is ready, nothing is reported. */
    assert_ok(asyncio_user_source_set_readiness(u, R));
    assert_ok(asyncio_user_source_set_readiness(u, 0));
    expect_no_events(p, 0);

    finish(p, u);
}

static void test_user_source_level_repeats_until_cleared(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_user_source *u = new_user();
    assert_ok(asyncio_poller_register(p, base(u), 1, R | W, ASYNCIO_LEVEL));
    expect_no_events(p, 0);

    assert_ok(asyncio_user_source_set_readiness(u, R));
    for (int i = 0; i < 3; i++)
        assert_int_equal(expect_only(p, 1), R);
    assert_ok(asyncio_user_source_set_readiness(u, W)); /* the bits follow the readiness */
    assert_int_equal(expect_only(p, 1), W);
    assert_int_equal(expect_only(p, 1), W);
    assert_ok(asyncio_user_source_set_readiness(u, 0));
    expect_no_events(p, 0);
    expect_no_events(p, 0);
    assert_ok(asyncio_user_source_set_readiness(u, R));
    assert_int_equal(expect_only(p, 1), R);

    finish(p, u);
}

static void test_user_source_oneshot_fires_once_until_reregistered(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_user_source *u = new_user();
    assert_ok(asyncio_poller_register(p, base(u), 1, R, ASYNCIO_ONESHOT));

    assert_ok(asyncio_user_source_set_readiness(u, R));
    assert_int_equal(expect_only(p, 1), R);
    expect_no_events(p, 0);
    assert_ok(asyncio_user_source_set_readiness(u, R)); /* disarmed: ignored */
    expect_no_events(p, 0);
    assert_ok(asyncio_user_source_set_readiness(u, 0));
    assert_ok(asyncio_user_source_set_readiness(u, R));
    expect_no_events(p, 0);

    /* Reregistering re-arms; the source is ready, so it is reported at once. */
    assert_ok(asyncio_poller_reregister(p, base(u), 2, R, ASYNCIO_ONESHOT));
    assert_int_equal(expect_only(p, 2), R);
    expect_no_events(p, 0);
    /* Re-armed while not ready: the next set fires it. */
    assert_ok(asyncio_user_source_set_readiness(u, 0));
    assert_ok(asyncio_poller_reregister(p, base(u), 3, R, ASYNCIO_ONESHOT));
    expect_no_events(p, 0);
    assert_ok(asyncio_user_source_set_readiness(u, R));
    assert_int_equal(expect_only(p, 3), R);
    expect_no_events(p, 0);

    finish(p, u);
}

static void test_user_source_ready_before_register_is_reported(void **state)
{
    (void)state;
    static const asyncio_trigger modes[] = {ASYNCIO_EDGE, ASYNCIO_LEVEL, ASYNCIO_ONESHOT};
    for (size_t m = 0; m < 3; m++) {
        asyncio_poller *p = new_poller();
        asyncio_user_source *u = new_user();
        assert_ok(asyncio_user_source_set_readiness(u, R));
        assert_int_equal(asyncio_user_source_readiness(u), R);
        assert_ok(asyncio_poller_register(p, base(u), 5, R, modes[m]));
        assert_int_equal(expect_only(p, 5), R);
        if (modes[m] == ASYNCIO_LEVEL)
            assert_int_equal(expect_only(p, 5), R);
        else
            expect_no_events(p, 0);
        finish(p, u);
    }
}

static void test_user_source_interest_filters_readiness(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_user_source *u = new_user();
    assert_ok(asyncio_poller_register(p, base(u), 1, R, ASYNCIO_EDGE));

    assert_ok(asyncio_user_source_set_readiness(u, W)); /* not of interest */
    expect_no_events(p, 0);
    assert_ok(asyncio_user_source_set_readiness(u, ASYNCIO_PRIORITY));
    expect_no_events(p, 0);

    /* ERROR, READ_CLOSED and WRITE_CLOSED are reported whatever the interest. */
    static const uint32_t always[] = {ASYNCIO_ERROR, ASYNCIO_READ_CLOSED, ASYNCIO_WRITE_CLOSED};
    for (size_t i = 0; i < 3; i++) {
        assert_ok(asyncio_user_source_set_readiness(u, always[i]));
        assert_true(expect_only(p, 1) & always[i]);
        expect_no_events(p, 0);
    }
    /* Readiness that intersects the interest is reported. */
    assert_ok(asyncio_user_source_set_readiness(u, R | W));
    assert_true(expect_only(p, 1) & R);
    expect_no_events(p, 0);

    finish(p, u);
}

static void test_user_source_reregister_changes_token_interest_and_mode(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_user_source *u = new_user();
    assert_ok(asyncio_poller_register(p, base(u), 1, R, ASYNCIO_EDGE));
    assert_ok(asyncio_user_source_set_readiness(u, W));
    expect_no_events(p, 0);

    assert_ok(asyncio_poller_reregister(p, base(u), 2, W, ASYNCIO_EDGE));
    assert_int_equal(expect_only(p, 2), W); /* current readiness, new token */
    expect_no_events(p, 0);

    assert_ok(asyncio_poller_reregister(p, base(u), 3, W, ASYNCIO_LEVEL));
    assert_int_equal(expect_only(p, 3), W);
    assert_int_equal(expect_only(p, 3), W);

    /* A pending event re-routed before it is delivered comes out with the new token. */
    assert_ok(asyncio_poller_reregister(p, base(u), 4, R, ASYNCIO_EDGE));
    assert_ok(asyncio_user_source_set_readiness(u, R));
    assert_ok(asyncio_poller_reregister(p, base(u), 5, R, ASYNCIO_EDGE));
    assert_int_equal(expect_only(p, 5), R);
    expect_no_events(p, 0);

    finish(p, u);
}

static void test_user_source_deregister_stops_events_and_allows_free(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_user_source *u = new_user();
    assert_ok(asyncio_poller_register(p, base(u), 1, R, ASYNCIO_LEVEL));
    assert_ok(asyncio_user_source_set_readiness(u, R)); /* queued, not yet delivered */
    assert_ok(asyncio_poller_deregister(p, base(u)));
    expect_no_events(p, 0);
    assert_ok(asyncio_user_source_set_readiness(u, R)); /* unregistered: still allowed */
    expect_no_events(p, 0);
    assert_err(asyncio_poller_deregister(p, base(u)), ASYNCIO_ENOENT);
    assert_ok(asyncio_user_source_free(u));
    assert_ok(asyncio_poller_free(p));
}

static void test_user_source_free_while_registered_is_ebusy(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_user_source *u = new_user();
    assert_ok(asyncio_poller_register(p, base(u), 1, R, ASYNCIO_EDGE));
    assert_err(asyncio_user_source_free(u), ASYNCIO_EBUSY);
    /* Still alive and registered. */
    assert_ok(asyncio_user_source_set_readiness(u, R));
    assert_int_equal(expect_only(p, 1), R);
    finish(p, u);
}

static void test_user_source_poller_free_while_registered_is_ebusy(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_user_source *u = new_user();
    assert_ok(asyncio_poller_register(p, base(u), 1, R, ASYNCIO_EDGE));
    assert_err(asyncio_poller_free(p), ASYNCIO_EBUSY);
    /* Nothing was freed: the poller still works. */
    assert_ok(asyncio_user_source_set_readiness(u, R));
    assert_int_equal(expect_only(p, 1), R);
    assert_ok(asyncio_poller_deregister(p, base(u)));
    assert_ok(asyncio_poller_free(p));
    assert_ok(asyncio_user_source_free(u));
}

static void test_user_source_register_twice_is_eexist(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_poller *q = new_poller();
    asyncio_user_source *u = new_user();
    assert_ok(asyncio_poller_register(p, base(u), 1, R, ASYNCIO_EDGE));
    assert_err(asyncio_poller_register(p, base(u), 2, W, ASYNCIO_LEVEL), ASYNCIO_EEXIST);
    assert_err(asyncio_poller_register(q, base(u), 3, R, ASYNCIO_EDGE), ASYNCIO_EEXIST);
    /* Not registered with q: q cannot change or remove it. */
    assert_err(asyncio_poller_reregister(q, base(u), 3, R, ASYNCIO_EDGE), ASYNCIO_ENOENT);
    assert_err(asyncio_poller_deregister(q, base(u)), ASYNCIO_ENOENT);
    /* The first registration is untouched. */
    assert_ok(asyncio_user_source_set_readiness(u, R));
    assert_int_equal(expect_only(p, 1), R);
    expect_no_events(q, 0);
    assert_ok(asyncio_poller_free(q));
    finish(p, u);
}

static void test_user_source_unregistered_is_enoent(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_user_source *u = new_user();
    assert_err(asyncio_poller_reregister(p, base(u), 1, R, ASYNCIO_EDGE), ASYNCIO_ENOENT);
    assert_err(asyncio_poller_deregister(p, base(u)), ASYNCIO_ENOENT);
    assert_ok(asyncio_user_source_set_readiness(u, R));
    expect_no_events(p, 0);
    assert_ok(asyncio_user_source_free(u));
    assert_ok(asyncio_poller_free(p));
}

static void test_user_source_invalid_arguments(void **state)
{
    (void)state;
    assert_err(asyncio_user_source_new(NULL), ASYNCIO_EINVAL);
    assert_ok(asyncio_user_source_free(NULL));
    assert_null(asyncio_user_source_base(NULL));
    assert_int_equal(asyncio_user_source_readiness(NULL), 0);
    assert_err(asyncio_user_source_set_readiness(NULL, R), ASYNCIO_EINVAL);

    asyncio_poller *p = new_poller();
    asyncio_user_source *u = new_user();
    assert_err(asyncio_user_source_set_readiness(u, 1u << 6), ASYNCIO_EINVAL);
    assert_err(asyncio_user_source_set_readiness(u, R | (1u << 31)), ASYNCIO_EINVAL);
    assert_int_equal(asyncio_user_source_readiness(u), 0); /* unchanged */
    assert_err(asyncio_poller_register(p, base(u), 1, 0, ASYNCIO_EDGE), ASYNCIO_EINVAL);
    assert_err(asyncio_poller_register(p, base(u), 1, ASYNCIO_ERROR, ASYNCIO_EDGE), ASYNCIO_EINVAL);
    assert_err(asyncio_poller_register(p, base(u), 1, R, (asyncio_trigger)7), ASYNCIO_EINVAL);
    assert_err(asyncio_poller_register(p, base(u), ASYNCIO_TOKEN_RESERVED, R, ASYNCIO_EDGE),
               ASYNCIO_EINVAL);
    /* None of those registered it. */
    assert_err(asyncio_poller_deregister(p, base(u)), ASYNCIO_ENOENT);

    /* Every asyncio_ready bit is a valid readiness. */
    assert_ok(asyncio_user_source_set_readiness(u, 0x3f));
    assert_int_equal(asyncio_user_source_readiness(u), 0x3f);
    assert_ok(asyncio_user_source_free(u));
    assert_ok(asyncio_poller_free(p));
}

/* ------------------------------------------------------------------------ */
/* Sharing a wait with fd events                                             */

static void test_user_source_and_fd_share_a_small_buffer_fairly(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_user_source *u = new_user();
    int sv[2];
    support_socketpair(sv);
    assert_ok(asyncio_poller_register(p, base(u), 1, R, ASYNCIO_LEVEL));
    assert_ok(asyncio_poller_register_fd(p, sv[0], 2, R, ASYNCIO_LEVEL));
    assert_ok(asyncio_user_source_set_readiness(u, R));
    support_write_n(sv[1], 1);

    /* Both always ready, one slot per wait: neither kind starves the other. */
    int seen[3] = {0};
    support_events e;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(support_wait(p, 0, 1, &e), 1);
        assert_true(e.ev[0].token == 1 || e.ev[0].token == 2);
        seen[e.ev[0].token]++;
    }
    assert_true(seen[1] >= 1);
    assert_true(seen[2] >= 1);

    finish(p, u);
    close(sv[0]);
    close(sv[1]);
}

static void test_user_source_level_sources_fair_with_small_capacity(void **state)
{
    (void)state;
    enum { N = 10, CAP = 3 };
    asyncio_poller *p = new_poller();
    asyncio_user_source *u[N];
    for (int i = 0; i < N; i++) {
        u[i] = new_user();
        assert_ok(asyncio_poller_register(p, base(u[i]), (uintptr_t)i + 1, R, ASYNCIO_LEVEL));
        assert_ok(asyncio_user_source_set_readiness(u[i], R));
    }
    int seen[N + 1] = {0};
    support_events e;
    for (int w = 0; w < (N + CAP - 1) / CAP + 1; w++) {
        assert_int_equal(support_wait(p, 0, CAP, &e), CAP);
        for (size_t k = 0; k < e.n; k++) {
            assert_true(e.ev[k].token >= 1 && e.ev[k].token <= N);
            seen[e.ev[k].token]++;
        }
    }
    for (int i = 1; i <= N; i++) {
        if (seen[i] == 0)
            fail_msg("level user source %d starved", i);
    }
    for (int i = 0; i < N; i++) {
        assert_ok(asyncio_poller_deregister(p, base(u[i])));
        assert_ok(asyncio_user_source_free(u[i]));
    }
    assert_ok(asyncio_poller_free(p));
}

static void test_user_source_edge_small_capacity_delivers_each_once(void **state)
{
    (void)state;
    enum { N = 10, CAP = 3 };
    asyncio_poller *p = new_poller();
    asyncio_user_source *u[N];
    for (int i = 0; i < N; i++) {
        u[i] = new_user();
        assert_ok(asyncio_poller_register(p, base(u[i]), (uintptr_t)i + 1, R, ASYNCIO_EDGE));
        assert_ok(asyncio_user_source_set_readiness(u[i], R));
    }
    int seen[N + 1] = {0};
    support_events e;
    static const size_t expect_n[] = {3, 3, 3, 1};
    for (int w = 0; w < 4; w++) {
        assert_int_equal(support_wait(p, 0, CAP, &e), expect_n[w]);
        for (size_t k = 0; k < e.n; k++) {
            assert_true(e.ev[k].token >= 1 && e.ev[k].token <= N);
            seen[e.ev[k].token]++;
        }
    }
    for (int i = 1; i <= N; i++)
        assert_int_equal(seen[i], 1);
    expect_no_events(p, 0);
    for (int i = 0; i < N; i++) {
        assert_ok(asyncio_poller_deregister(p, base(u[i])));
        assert_ok(asyncio_user_source_free(u[i]));
    }
    assert_ok(asyncio_poller_free(p));
}

/* ------------------------------------------------------------------------ */
/* A user type implementing the vtable: two pipes under derived tokens       */

#define TOKEN_A(t) ((t)*2)
#define TOKEN_B(t) ((t)*2 + 1)

typedef struct pipe_pair {
    asyncio_source base; /* first member: the poller sees only this */
    int a[2], b[2];      /* two pipes; the read ends are registered */
    int registers, reregisters, deregisters;
    uintptr_t last_token;
    uint32_t last_interest;
    asyncio_trigger last_mode;
} pipe_pair;

static pipe_pair *to_pair(asyncio_source *src)
{
    return (pipe_pair *)((char *)src - offsetof(pipe_pair, base));
}

static int pair_register(asyncio_source *src, asyncio_poller *p, uintptr_t token, uint32_t interest,
                         asyncio_trigger mode)
{
    pipe_pair *pp = to_pair(src);
    pp->registers++;
    pp->last_token = token;
    pp->last_interest = interest;
    pp->last_mode = mode;
    int rc = asyncio_poller_register_fd(p, pp->a[0], TOKEN_A(token), interest, mode);
    if (rc < 0)
        return rc;
    rc = asyncio_poller_register_fd(p, pp->b[0], TOKEN_B(token), interest, mode);
    if (rc < 0)
        asyncio_poller_deregister_fd(p, pp->a[0]); /* all or nothing */
    return rc;
}

static int pair_reregister(asyncio_source *src, asyncio_poller *p, uintptr_t token,
                           uint32_t interest, asyncio_trigger mode)
{
    pipe_pair *pp = to_pair(src);
    pp->reregisters++;
    pp->last_token = token;
    pp->last_interest = interest;
    pp->last_mode = mode;
    int rc = asyncio_poller_reregister_fd(p, pp->a[0], TOKEN_A(token), interest, mode);
    if (rc < 0)
        return rc;
    return asyncio_poller_reregister_fd(p, pp->b[0], TOKEN_B(token), interest, mode);
}

static int pair_deregister(asyncio_source *src, asyncio_poller *p)
{
    pipe_pair *pp = to_pair(src);
    pp->deregisters++;
    int rc_a = asyncio_poller_deregister_fd(p, pp->a[0]);
    int rc_b = asyncio_poller_deregister_fd(p, pp->b[0]);
    return rc_a < 0 ? rc_a : rc_b;
}

static const asyncio_source_vtable g_pair_vtable = {pair_register, pair_reregister,
                                                    pair_deregister, NULL};

static void pair_open(pipe_pair *pp)
{
    memset(pp, 0, sizeof *pp);
    pp->base.vtable = &g_pair_vtable;
    support_pipe(pp->a);
    support_pipe(pp->b);
}

static void pair_close(pipe_pair *pp)
{
    close(pp->a[0]);
    close(pp->a[1]);
    close(pp->b[0]);
    close(pp->b[1]);
}

static void test_custom_source_dispatches_through_vtable(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    pipe_pair pp;
    pair_open(&pp);

    assert_ok(asyncio_poller_register(p, &pp.base, 10, R, ASYNCIO_EDGE));
    assert_int_equal(pp.registers, 1);
    assert_int_equal(pp.last_token, 10);
    assert_int_equal(pp.last_interest, R);
    assert_int_equal(pp.last_mode, ASYNCIO_EDGE);
    expect_no_events(p, 0);

    support_write_n(pp.a[1], 1);
    expect_events(p, 0, (uintptr_t)TOKEN_A(10), (uintptr_t)0);
    support_write_n(pp.b[1], 1);
    expect_events(p, 0, (uintptr_t)TOKEN_B(10), (uintptr_t)0);

    /* Reregister: both fds move to the new derived tokens, level mode. */
    assert_ok(asyncio_poller_reregister(p, &pp.base, 20, R, ASYNCIO_LEVEL));
    assert_int_equal(pp.reregisters, 1);
    assert_int_equal(pp.last_token, 20);
    assert_int_equal(pp.last_mode, ASYNCIO_LEVEL);
    expect_events(p, 0, (uintptr_t)TOKEN_A(20), (uintptr_t)TOKEN_B(20), (uintptr_t)0);
    expect_events(p, 0, (uintptr_t)TOKEN_A(20), (uintptr_t)TOKEN_B(20), (uintptr_t)0);

    assert_ok(asyncio_poller_deregister(p, &pp.base));
    assert_int_equal(pp.deregisters, 1);
    expect_no_events(p, 0);

    assert_ok(asyncio_poller_free(p));
    pair_close(&pp);
}

static int closed_register(asyncio_source *src, asyncio_poller *p, uintptr_t token,
                           uint32_t interest, asyncio_trigger mode)
{
    (void)src;
    (void)p;
    (void)token;
    (void)interest;
    (void)mode;
    return ASYNCIO_ECLOSED;
}

static int closed_deregister(asyncio_source *src, asyncio_poller *p)
{
    (void)src;
    (void)p;
    return ASYNCIO_EUNEXPECTED_EOF;
}

static void test_custom_source_errors_pass_through_unchanged(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    pipe_pair pp;
    pair_open(&pp);

    /* Errors from the inner fd registrations come back as they are. */
    assert_err(asyncio_poller_reregister(p, &pp.base, 1, R, ASYNCIO_EDGE), ASYNCIO_ENOENT);
    assert_err(asyncio_poller_deregister(p, &pp.base), ASYNCIO_ENOENT);
    assert_ok(asyncio_poller_register(p, &pp.base, 1, R, ASYNCIO_EDGE));
    assert_err(asyncio_poller_register(p, &pp.base, 1, R, ASYNCIO_EDGE), ASYNCIO_EEXIST);
    assert_ok(asyncio_poller_deregister(p, &pp.base));

    /* A half-failed register (second fd invalid) reports EBADF and rolled back. */
    int saved = pp.b[0];
    pp.b[0] = -1;
    assert_err(asyncio_poller_register(p, &pp.base, 1, R, ASYNCIO_EDGE), ASYNCIO_EBADF);
    pp.b[0] = saved;
    assert_err(asyncio_poller_deregister_fd(p, pp.a[0]), ASYNCIO_ENOENT);

    /* Any code, library-specific ones included, is passed back unchanged. */
    static const asyncio_source_vtable closed_vt = {closed_register, closed_register,
                                                    closed_deregister, NULL};
    asyncio_source closed = {&closed_vt};
    assert_err(asyncio_poller_register(p, &closed, 1, R, ASYNCIO_EDGE), ASYNCIO_ECLOSED);
    assert_err(asyncio_poller_reregister(p, &closed, 1, R, ASYNCIO_EDGE), ASYNCIO_ECLOSED);
    assert_err(asyncio_poller_deregister(p, &closed), ASYNCIO_EUNEXPECTED_EOF);

    assert_ok(asyncio_poller_free(p));
    pair_close(&pp);
}

static void test_custom_source_not_called_with_invalid_arguments(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    pipe_pair pp;
    pair_open(&pp);

    assert_err(asyncio_poller_register(p, &pp.base, 1, 0, ASYNCIO_EDGE), ASYNCIO_EINVAL);
    assert_err(asyncio_poller_register(p, &pp.base, 1, 1u << 7, ASYNCIO_EDGE), ASYNCIO_EINVAL);
    assert_err(asyncio_poller_register(p, &pp.base, 1, R, (asyncio_trigger)7), ASYNCIO_EINVAL);
    assert_err(asyncio_poller_register(p, &pp.base, ASYNCIO_TOKEN_RESERVED, R, ASYNCIO_EDGE),
               ASYNCIO_EINVAL);
    assert_err(asyncio_poller_reregister(p, &pp.base, 1, 0, ASYNCIO_EDGE), ASYNCIO_EINVAL);
    assert_err(asyncio_poller_register(NULL, &pp.base, 1, R, ASYNCIO_EDGE), ASYNCIO_EINVAL);
    assert_err(asyncio_poller_reregister(NULL, &pp.base, 1, R, ASYNCIO_EDGE), ASYNCIO_EINVAL);
    assert_err(asyncio_poller_deregister(NULL, &pp.base), ASYNCIO_EINVAL);
    assert_int_equal(pp.registers, 0);
    assert_int_equal(pp.reregisters, 0);
    assert_int_equal(pp.deregisters, 0);

    /* A source without a vtable, or with a missing callback, is invalid. */
    asyncio_source no_vtable = {NULL};
    assert_err(asyncio_poller_register(p, &no_vtable, 1, R, ASYNCIO_EDGE), ASYNCIO_EINVAL);
    assert_err(asyncio_poller_deregister(p, &no_vtable), ASYNCIO_EINVAL);
    static const asyncio_source_vtable partial = {pair_register, NULL, pair_deregister, NULL};
    asyncio_source half = {&partial};
    assert_err(asyncio_poller_register(p, &half, 1, R, ASYNCIO_EDGE), ASYNCIO_EINVAL);
    assert_err(asyncio_poller_reregister(p, &half, 1, R, ASYNCIO_EDGE), ASYNCIO_EINVAL);
    assert_err(asyncio_poller_deregister(p, &half), ASYNCIO_EINVAL);

    assert_ok(asyncio_poller_free(p));
    pair_close(&pp);
}

/* ------------------------------------------------------------------------ */
/* Wakers                                                                    */

static void test_waker_wakes_coalesce(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_poller_waker *w = NULL;
    assert_ok(asyncio_poller_waker_new(p, 3, &w));
    expect_no_events(p, 0);
    for (int i = 0; i < 5; i++)
        assert_ok(asyncio_poller_waker_wake(w));
    assert_int_equal(expect_only(p, 3), R);
    expect_no_events(p, 0);
    assert_ok(asyncio_poller_waker_wake(w));
    assert_int_equal(expect_only(p, 3), R);
    expect_no_events(p, 0);
    assert_ok(asyncio_poller_waker_free(w));
    assert_ok(asyncio_poller_free(p));
}

static void test_waker_multiple_wakers_deliver_their_own_tokens(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_poller_waker *w1 = NULL, *w2 = NULL, *w3 = NULL;
    assert_ok(asyncio_poller_waker_new(p, 1, &w1));
    assert_ok(asyncio_poller_waker_new(p, 2, &w2));
    assert_ok(asyncio_poller_waker_new(p, 3, &w3));

    assert_ok(asyncio_poller_waker_wake(w2));
    expect_events(p, 0, (uintptr_t)2, (uintptr_t)0);
    assert_ok(asyncio_poller_waker_wake(w1));
    assert_ok(asyncio_poller_waker_wake(w3));
    assert_ok(asyncio_poller_waker_wake(w1));
    expect_events(p, 0, (uintptr_t)1, (uintptr_t)3, (uintptr_t)0);
    expect_no_events(p, 0);

    /* Freeing one leaves the others working. */
    assert_ok(asyncio_poller_waker_free(w2));
    assert_ok(asyncio_poller_waker_wake(w3));
    expect_events(p, 0, (uintptr_t)3, (uintptr_t)0);

    assert_ok(asyncio_poller_waker_free(w1));
    assert_ok(asyncio_poller_waker_free(w3));
    assert_ok(asyncio_poller_free(p));
}

static void test_waker_poller_free_with_live_waker_is_ebusy(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    asyncio_poller_waker *w = NULL;
    assert_ok(asyncio_poller_waker_new(p, 1, &w));
    assert_err(asyncio_poller_free(p), ASYNCIO_EBUSY);
    assert_ok(asyncio_poller_waker_wake(w)); /* both still alive */
    expect_events(p, 0, (uintptr_t)1, (uintptr_t)0);
    assert_ok(asyncio_poller_waker_free(w));
    assert_ok(asyncio_poller_free(p));
}

/* ------------------------------------------------------------------------ */
/* Stress (meant for TSan)                                                   */

enum { STRESS_THREADS = 4, STRESS_ITERS = 10000 };
#define STRESS_FINAL   ((uint32_t)(ASYNCIO_READABLE | ASYNCIO_READ_CLOSED))
#define USER_TOKEN(i)  ((uintptr_t)100 + (uintptr_t)(i))
#define WAKER_TOKEN(i) ((uintptr_t)200 + (uintptr_t)(i))

/* Every STRESS_SYNC wakes a worker waits until the owner has seen that wake. */
enum { STRESS_SYNC = 256 };

typedef struct stress_worker {
    asyncio_user_source *user;
    asyncio_poller_waker *waker;
    atomic_int wakes;    /* published before each wake, read by the owner on a waker event */
    atomic_int observed; /* the owner's latest reading of `wakes` */
    int rc;
} stress_worker;

static void *stress_thread(void *arg)
{
    stress_worker *w = arg;
    int rc = 0;
    for (int i = 0; i < STRESS_ITERS; i++) {
        uint32_t r = (i & 1) ? W : R;
        int a = asyncio_user_source_set_readiness(w->user, r);
        atomic_store_explicit(&w->wakes, i + 1, memory_order_release);
        int b = asyncio_poller_waker_wake(w->waker);
        if (rc == 0)
            rc = a != 0 ? a : b;
        /*
         * Hand-shake now and then so the owner consumes events while the workers run
         * (otherwise they finish before it is scheduled). A lost wake hangs here.
         */
        if (rc == 0 && (i + 1) % STRESS_SYNC == 0) {
            while (atomic_load_explicit(&w->observed, memory_order_acquire) < i + 1)
                sched_yield();
        }
    }
    int c = asyncio_user_source_set_readiness(w->user, STRESS_FINAL);
    w->rc = rc != 0 ? rc : c;
    return NULL;
}

static void test_user_source_stress_concurrent_set_and_wake(void **state)
{
    (void)state;
    asyncio_poller *p = new_poller();
    stress_worker workers[STRESS_THREADS];
    pthread_t threads[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) {
        stress_worker *w = &workers[i];
        w->user = new_user();
        w->rc = -1;
        atomic_init(&w->wakes, 0);
        atomic_init(&w->observed, 0);
        assert_ok(asyncio_poller_register(p, base(w->user), USER_TOKEN(i), R | W, ASYNCIO_EDGE));
        assert_ok(asyncio_poller_waker_new(p, WAKER_TOKEN(i), &w->waker));
    }
    for (int i = 0; i < STRESS_THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, stress_thread, &workers[i]), 0);

    /*
     * Wait (blocking) until every user source has been seen with its final readiness and
     * every waker has been seen after its last wake. A lost wake-up leaves this blocked
     * and the suite fails on ctest's timeout.
     */
    bool user_done[STRESS_THREADS] = {false}, waker_done[STRESS_THREADS] = {false};
    int remaining = 2 * STRESS_THREADS;
    long events = 0, waits = 0;
    support_events e;
    while (remaining > 0) {
        support_wait(p, -1, 16, &e);
        waits++;
        assert_true(e.n > 0); /* wait(-1) returns only with an event */
        for (size_t k = 0; k < e.n; k++) {
            uintptr_t t = e.ev[k].token;
            events++;
            if (t >= USER_TOKEN(0) && t < USER_TOKEN(STRESS_THREADS)) {
                size_t i = t - USER_TOKEN(0);
                assert_true(e.ev[k].readiness != 0);
                if (!user_done[i] && e.ev[k].readiness == STRESS_FINAL) {
                    user_done[i] = true;
                    remaining--;
                }
            } else if (t >= WAKER_TOKEN(0) && t < WAKER_TOKEN(STRESS_THREADS)) {
                size_t i = t - WAKER_TOKEN(0);
                assert_int_equal(e.ev[k].readiness, R);
                int seen = atomic_load_explicit(&workers[i].wakes, memory_order_acquire);
                atomic_store_explicit(&workers[i].observed, seen, memory_order_release);
                if (!waker_done[i] && seen == STRESS_ITERS) {
                    waker_done[i] = true;
                    remaining--;
                }
            } else {
                fail_msg("unexpected token %ju", (uintmax_t)t);
            }
        }
    }
    /* Coalescing: never more events than calls. */
    assert_true(events <= 2L * STRESS_THREADS * (STRESS_ITERS + 1));
    print_message("stress: %ld events in %ld waits\n", events, waits);

    for (int i = 0; i < STRESS_THREADS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_ok(workers[i].rc);
    }
    for (int i = 0; i < STRESS_THREADS; i++) {
        assert_ok(asyncio_poller_deregister(p, base(workers[i].user)));
        assert_ok(asyncio_user_source_free(workers[i].user));
        assert_ok(asyncio_poller_waker_free(workers[i].waker));
    }
    assert_ok(asyncio_poller_free(p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_user_source_edge_reports_each_set_once),
        support_test(test_user_source_sets_before_a_wait_coalesce),
        support_test(test_user_source_level_repeats_until_cleared),
        support_test(test_user_source_oneshot_fires_once_until_reregistered),
        support_test(test_user_source_ready_before_register_is_reported),
        support_test(test_user_source_interest_filters_readiness),
        support_test(test_user_source_reregister_changes_token_interest_and_mode),
        support_test(test_user_source_deregister_stops_events_and_allows_free),
        support_test(test_user_source_free_while_registered_is_ebusy),
        support_test(test_user_source_poller_free_while_registered_is_ebusy),
        support_test(test_user_source_register_twice_is_eexist),
        support_test(test_user_source_unregistered_is_enoent),
        support_test(test_user_source_invalid_arguments),
        support_test(test_user_source_and_fd_share_a_small_buffer_fairly),
        support_test(test_user_source_level_sources_fair_with_small_capacity),
        support_test(test_user_source_edge_small_capacity_delivers_each_once),
        support_test(test_custom_source_dispatches_through_vtable),
        support_test(test_custom_source_errors_pass_through_unchanged),
        support_test(test_custom_source_not_called_with_invalid_arguments),
        support_test(test_waker_wakes_coalesce),
        support_test(test_waker_multiple_wakers_deliver_their_own_tokens),
        support_test(test_waker_poller_free_with_live_waker_is_ebusy),
        support_test(test_user_source_stress_concurrent_set_and_wake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
