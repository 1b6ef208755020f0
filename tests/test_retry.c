/*
 * Retry with backoff: the classification table, the pure delay function,
 * and whole schedules run on a paused clock (the runtime jumps from timer
 * to timer, so the times each attempt starts at are exact and no test
 * sleeps in real time).
 */
#include "support.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio/net.h"
#include "asyncio/retry.h"
#include "asyncio/runtime.h"
#include "asyncio/time.h"

/* ------------------------------------------------------------------------ */
/* Classification and the delay function                                     */

static void test_retry_classification_table(void **state)
{
    (void)state;
    static const struct {
        int err;
        asyncio_error_class c;
    } table[] = {
        {0, ASYNCIO_ERROR_CLASS_NONE},
        {ASYNCIO_PENDING, ASYNCIO_ERROR_CLASS_NONE},
        {ASYNCIO_EINTR, ASYNCIO_ERROR_CLASS_TRANSIENT},
        {ASYNCIO_EAGAIN, ASYNCIO_ERROR_CLASS_TRANSIENT},
        {ASYNCIO_ETIMEDOUT, ASYNCIO_ERROR_CLASS_TRANSIENT},
        {ASYNCIO_ECONNREFUSED, ASYNCIO_ERROR_CLASS_TRANSIENT},
        {ASYNCIO_ECONNRESET, ASYNCIO_ERROR_CLASS_TRANSIENT},
        {ASYNCIO_ECONNABORTED, ASYNCIO_ERROR_CLASS_TRANSIENT},
        {ASYNCIO_EPIPE, ASYNCIO_ERROR_CLASS_TRANSIENT},
        {ASYNCIO_ENETUNREACH, ASYNCIO_ERROR_CLASS_TRANSIENT},
        {ASYNCIO_EHOSTUNREACH, ASYNCIO_ERROR_CLASS_TRANSIENT},
        {ASYNCIO_EBUSY, ASYNCIO_ERROR_CLASS_TRANSIENT},
        {ASYNCIO_EADDRNOTAVAIL, ASYNCIO_ERROR_CLASS_TRANSIENT},
        {ASYNCIO_EUNEXPECTED_EOF, ASYNCIO_ERROR_CLASS_TRANSIENT},
        {ASYNCIO_EMFILE, ASYNCIO_ERROR_CLASS_EXHAUSTION},
        {ASYNCIO_ENFILE, ASYNCIO_ERROR_CLASS_EXHAUSTION},
        {ASYNCIO_ENOBUFS, ASYNCIO_ERROR_CLASS_EXHAUSTION},
        {ASYNCIO_ENOMEM, ASYNCIO_ERROR_CLASS_EXHAUSTION},
        {ASYNCIO_EINVAL, ASYNCIO_ERROR_CLASS_FATAL},
        {ASYNCIO_EACCES, ASYNCIO_ERROR_CLASS_FATAL},
        {ASYNCIO_ENOENT, ASYNCIO_ERROR_CLASS_FATAL},
        {ASYNCIO_ECANCELED, ASYNCIO_ERROR_CLASS_FATAL},
        {ASYNCIO_EHOST_NOT_FOUND, ASYNCIO_ERROR_CLASS_FATAL},
        {-123456, ASYNCIO_ERROR_CLASS_FATAL},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        asyncio_error_class got = asyncio_error_classify(table[i].err);
        if (got != table[i].c)
            fail_msg("%s: %s, want %s", asyncio_err_name(table[i].err),
                     asyncio_error_class_name(got), asyncio_error_class_name(table[i].c));
    }
    assert_string_equal(asyncio_error_class_name(ASYNCIO_ERROR_CLASS_EXHAUSTION), "exhaustion");
}

static void test_retry_delay_grows_by_factor_up_to_the_cap(void **state)
{
    (void)state;
    asyncio_backoff b = {.base_ms = 100, .factor = 2.0, .cap_ms = 1000};
    const uint64_t want[] = {0, 100, 200, 400, 800, 1000, 1000, 1000};
    for (uint32_t k = 0; k < 8; k++)
        assert_int_equal(asyncio_backoff_delay(&b, k, 0), want[k]);
    assert_int_equal(asyncio_backoff_delay(&b, UINT32_MAX, 0), 1000); /* no overflow */
    b.factor = 1.5;
    assert_int_equal(asyncio_backoff_delay(&b, 3, 0), 225);
    /* Defaults: base 100, factor 2, cap 30 s. */
    assert_int_equal(asyncio_backoff_delay(NULL, 1, 0), 100);
    assert_int_equal(asyncio_backoff_delay(NULL, 4, 0), 800);
    assert_int_equal(asyncio_backoff_delay(NULL, 60, 0), 30000);
    /* An invalid policy gives 0 rather than nonsense. */
    b.factor = 0.5;
    assert_int_equal(asyncio_backoff_delay(&b, 2, 0), 0);
}

static void test_retry_jitter_removes_at_most_its_fraction_of_the_delay(void **state)
{
    (void)state;
    asyncio_backoff b = {.base_ms = 1000, .factor = 2.0, .cap_ms = 100000, .jitter = 0.5};
    assert_int_equal(asyncio_backoff_delay(&b, 1, 0), 1000);                /* u = 0 */
    assert_int_equal(asyncio_backoff_delay(&b, 1, UINT64_C(1) << 63), 750); /* u = 1/2 */
    uint64_t top = asyncio_backoff_delay(&b, 1, UINT64_MAX);                /* u -> 1 */
    assert_true(top >= 500 && top <= 501);
    b.jitter = 1.0; /* full jitter: (0, d] */
    uint64_t low = asyncio_backoff_delay(&b, 2, UINT64_MAX);
    assert_true(low >= 1 && low <= 2);
    for (uint64_t r = 1; r < 1000; r++) {
        uint64_t d = asyncio_backoff_delay(&b, 3, r * 0x9E3779B97F4A7C15ULL);
        assert_true(d >= 1 && d <= 4000);
    }
}

/* ------------------------------------------------------------------------ */
/* Schedules on the paused clock                                             */

/* An operation failing with errs[0], errs[1], ... then succeeding; records start times. */
typedef struct flaky {
    const int *errs;
    int nerrs;
    int calls;
    int resets;
    uint64_t at[16];
} flaky;

static int flaky_poll(void *p, asyncio_context *cx)
{
    (void)cx;
    flaky *f = p;
    if (f->calls < 16)
        f->at[f->calls] = asyncio_time_now_ms();
    int i = f->calls++;
    return i < f->nerrs ? f->errs[i] : 0;
}

static int flaky_reset(void *p, uint32_t attempt)
{
    flaky *f = p;
    f->resets++;
    return (int)attempt == f->calls + 1 ? 0 : ASYNCIO_EPROTO; /* called right before attempt k */
}

typedef struct retry_task {
    asyncio_retry r;
    int rc;
} retry_task;

static int retry_task_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    retry_task *t = state;
    return asyncio_retry_poll(&t->r, cx);
}

static void retry_task_drop(void *state)
{
    asyncio_retry_drop(&((retry_task *)state)->r);
}

static const asyncio_task_vtable retry_vt = {retry_task_poll, retry_task_drop, NULL,
                                             sizeof(retry_task), 0};

/* Runs a retry of `f` under `b` on a paused runtime; returns its result. */
static int run_retry(const asyncio_backoff *b, flaky *f)
{
    asyncio_runtime_options o = {.start_paused = true};
    asyncio_runtime *rt = support_runtime_new(&o);
    retry_task t;
    assert_ok(asyncio_retry_init(&t.r, b, flaky_poll, flaky_reset, f));
    int rc = asyncio_runtime_block_on(rt, &retry_vt, &t, NULL);
    assert_ok(asyncio_runtime_free(rt));
    return rc;
}

static void expect_gaps(const flaky *f, const uint64_t *gaps, int n)
{
    assert_int_equal(f->calls, n + 1);
    for (int i = 0; i < n; i++)
        if (f->at[i + 1] - f->at[i] != gaps[i])
            fail_msg("gap %d: %llu ms, want %llu", i, (unsigned long long)(f->at[i + 1] - f->at[i]),
                     (unsigned long long)gaps[i]);
}

static void test_retry_schedule_on_the_paused_clock_is_exponential_and_capped(void **state)
{
    (void)state;
    const int errs[] = {ASYNCIO_ETIMEDOUT,  ASYNCIO_ECONNREFUSED, ASYNCIO_EAGAIN,
                        ASYNCIO_ECONNRESET, ASYNCIO_EINTR,        ASYNCIO_ETIMEDOUT};
    asyncio_backoff b = {.base_ms = 100, .factor = 2.0, .cap_ms = 500, .max_attempts = 10};
    flaky f = {.errs = errs, .nerrs = 6};
    assert_ok(run_retry(&b, &f));
    const uint64_t gaps[] = {100, 200, 400, 500, 500, 500};
    expect_gaps(&f, gaps, 6);
    assert_int_equal(f.resets, 6);
}

static void test_retry_gives_up_after_max_attempts_with_the_last_error(void **state)
{
    (void)state;
    const int errs[] = {ASYNCIO_ETIMEDOUT, ASYNCIO_ETIMEDOUT, ASYNCIO_ECONNREFUSED,
                        ASYNCIO_ETIMEDOUT};
    asyncio_backoff b = {.base_ms = 10, .factor = 3.0, .max_attempts = 3};
    flaky f = {.errs = errs, .nerrs = 4};
    assert_err(run_retry(&b, &f), ASYNCIO_ECONNREFUSED);
    const uint64_t gaps[] = {10, 30};
    expect_gaps(&f, gaps, 2);
}

static void test_retry_fatal_error_returns_at_once_without_waiting(void **state)
{
    (void)state;
    const int errs[] = {ASYNCIO_ETIMEDOUT, ASYNCIO_EACCES};
    flaky f = {.errs = errs, .nerrs = 2};
    assert_err(run_retry(NULL, &f), ASYNCIO_EACCES);
    const uint64_t gaps[] = {100};
    expect_gaps(&f, gaps, 1);
}

static void test_retry_exhaustion_waits_at_least_its_minimum_unless_it_fails_fast(void **state)
{
    (void)state;
    const int errs[] = {ASYNCIO_EMFILE, ASYNCIO_ETIMEDOUT, ASYNCIO_ENOBUFS};
    asyncio_backoff b = {.base_ms = 50, .exhaustion_min_ms = 700};
    flaky f = {.errs = errs, .nerrs = 3};
    assert_ok(run_retry(&b, &f));
    const uint64_t gaps[] = {700, 100, 700};
    expect_gaps(&f, gaps, 3);

    b.fail_on_exhaustion = true;
    flaky g = {.errs = errs, .nerrs = 3};
    assert_err(run_retry(&b, &g), ASYNCIO_EMFILE);
    assert_int_equal(g.calls, 1);
}

/* A deterministic jitter source: a counter the test can replay. */
static uint64_t counter_random(void *ctx)
{
    uint64_t *c = ctx;
    *c += 1;
    return *c * 0x9E3779B97F4A7C15ULL;
}

static void test_retry_deterministic_jitter_source_gives_a_reproducible_schedule(void **state)
{
    (void)state;
    const int errs[] = {ASYNCIO_EAGAIN, ASYNCIO_EAGAIN, ASYNCIO_EAGAIN, ASYNCIO_EAGAIN};
    uint64_t ctr = 0;
    asyncio_backoff b = {
        .base_ms = 1000, .jitter = 1.0, .max_attempts = 5, .random = counter_random, .ctx = &ctr};
    flaky f = {.errs = errs, .nerrs = 4};
    assert_ok(run_retry(&b, &f));
    assert_int_equal(ctr, 4); /* one draw per retry */
    uint64_t gaps[4];
    for (uint32_t k = 1; k <= 4; k++) {
        gaps[k - 1] = asyncio_backoff_delay(&b, k, k * 0x9E3779B97F4A7C15ULL);
        assert_true(gaps[k - 1] >= 1 && gaps[k - 1] <= 1000u << (k - 1));
    }
    expect_gaps(&f, gaps, 4);
}

/* A custom classifier: retry EPROTO, and nothing else. */
static asyncio_error_class only_eproto(void *ctx, int err)
{
    (void)ctx;
    return err == ASYNCIO_EPROTO ? ASYNCIO_ERROR_CLASS_TRANSIENT : ASYNCIO_ERROR_CLASS_FATAL;
}

static void test_retry_custom_classifier_decides_what_is_retried(void **state)
{
    (void)state;
    const int errs[] = {ASYNCIO_EPROTO, ASYNCIO_ETIMEDOUT};
    asyncio_backoff b = {.classify = only_eproto};
    flaky f = {.errs = errs, .nerrs = 2};
    assert_err(run_retry(&b, &f), ASYNCIO_ETIMEDOUT);
    assert_int_equal(f.calls, 2);
}

/* Drops the retry while it waits: the timer is unregistered synchronously. */
static int drop_task_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    asyncio_retry *r = state;
    int rc = asyncio_retry_poll(r, cx);
    assert_int_equal(rc, ASYNCIO_PENDING); /* the first attempt failed: waiting */
    assert_int_equal(r->last_delay_ms, 100);
    asyncio_retry_drop(r);
    assert_err(asyncio_retry_poll(r, cx), ASYNCIO_ECANCELED);
    return 0;
}

static const asyncio_task_vtable drop_vt = {drop_task_poll, NULL, NULL, sizeof(asyncio_retry), 0};

static void test_retry_dropped_while_waiting_leaves_no_timer(void **state)
{
    (void)state;
    asyncio_runtime_options o = {.start_paused = true};
    asyncio_runtime *rt = support_runtime_new(&o);
    const int errs[] = {ASYNCIO_ETIMEDOUT};
    flaky f = {.errs = errs, .nerrs = 1};
    asyncio_retry r;
    assert_ok(asyncio_retry_init(&r, NULL, flaky_poll, NULL, &f));
    assert_ok(asyncio_runtime_block_on(rt, &drop_vt, &r, NULL));
    assert_int_equal(f.calls, 1);
    assert_ok(asyncio_runtime_free(rt));
}

/* A real operation: a TCP connect to a closed port, re-initialised before each attempt. */
typedef struct reconnect {
    asyncio_sockaddr addr;
    asyncio_tcp_connect connect;
    asyncio_retry retry;
    uint64_t at[8];
    int resets;
} reconnect;

static int reconnect_attempt(void *op, asyncio_context *cx)
{
    reconnect *c = op;
    if (c->retry.attempts <= 8)
        c->at[c->retry.attempts - 1] = asyncio_time_now_ms();
    return asyncio_tcp_connect_poll(&c->connect, cx, NULL);
}

static int reconnect_reset(void *op, uint32_t attempt)
{
    reconnect *c = op;
    (void)attempt;
    c->resets++;
    asyncio_tcp_connect_drop(&c->connect);
    asyncio_tcp_connect_init(&c->connect, &c->addr);
    return 0;
}

static int reconnect_poll(void *state, asyncio_context *cx, void *output)
{
    (void)output;
    reconnect *c = state;
    if (c->retry.attempts == 0) { /* first poll: the retry points into this task's state */
        asyncio_backoff b = {.base_ms = 250, .factor = 2.0, .max_attempts = 3};
        asyncio_tcp_connect_init(&c->connect, &c->addr);
        assert_ok(asyncio_retry_init(&c->retry, &b, reconnect_attempt, reconnect_reset, c));
    }
    int rc = asyncio_retry_poll(&c->retry, cx);
    if (rc == ASYNCIO_PENDING)
        return rc;
    assert_int_equal(c->retry.attempts, 3);
    assert_int_equal(c->retry.total_delay_ms, 750);
    assert_int_equal(c->at[1] - c->at[0], 250);
    assert_int_equal(c->at[2] - c->at[1], 500);
    assert_int_equal(c->resets, 2);
    return rc;
}

static void reconnect_drop(void *state)
{
    reconnect *c = state;
    asyncio_retry_drop(&c->retry);
    asyncio_tcp_connect_drop(&c->connect);
}

static const asyncio_task_vtable reconnect_vt = {reconnect_poll, reconnect_drop, NULL,
                                                 sizeof(reconnect), 0};

static void test_retry_reconnects_a_refused_tcp_connect_with_backoff(void **state)
{
    (void)state;
    int fd = support_tcp_listener();
    int port = support_local_port(fd);
    support_close(fd); /* nothing listens there any more: connects are refused */
    asyncio_runtime_options o = {.start_paused = true};
    asyncio_runtime *rt = support_runtime_new(&o);
    reconnect init;
    memset(&init, 0, sizeof init);
    assert_ok(asyncio_addr_from_ip("127.0.0.1", (uint16_t)port, &init.addr));
    assert_err(asyncio_runtime_block_on(rt, &reconnect_vt, &init, NULL), ASYNCIO_ECONNREFUSED);
    assert_ok(asyncio_runtime_free(rt));
}

static void test_retry_invalid_policy_is_einval(void **state)
{
    (void)state;
    asyncio_retry r;
    asyncio_backoff b = {.factor = 0.5};
    assert_err(asyncio_retry_init(&r, &b, flaky_poll, NULL, NULL), ASYNCIO_EINVAL);
    asyncio_waker none = ASYNCIO_WAKER_EMPTY;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&none);
    assert_err(asyncio_retry_poll(&r, &cx), ASYNCIO_EINVAL);
    asyncio_retry_drop(&r);
    b = (asyncio_backoff){.jitter = 1.5};
    assert_err(asyncio_retry_init(&r, &b, flaky_poll, NULL, NULL), ASYNCIO_EINVAL);
    asyncio_retry_drop(&r);
    assert_err(asyncio_retry_init(&r, NULL, NULL, NULL, NULL), ASYNCIO_EINVAL);
    asyncio_retry_drop(&r);
    assert_err(asyncio_retry_init(NULL, NULL, flaky_poll, NULL, NULL), ASYNCIO_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        support_test(test_retry_classification_table),
        support_test(test_retry_delay_grows_by_factor_up_to_the_cap),
        support_test(test_retry_jitter_removes_at_most_its_fraction_of_the_delay),
        support_test(test_retry_schedule_on_the_paused_clock_is_exponential_and_capped),
        support_test(test_retry_gives_up_after_max_attempts_with_the_last_error),
        support_test(test_retry_fatal_error_returns_at_once_without_waiting),
        support_test(test_retry_exhaustion_waits_at_least_its_minimum_unless_it_fails_fast),
        support_test(test_retry_deterministic_jitter_source_gives_a_reproducible_schedule),
        support_test(test_retry_custom_classifier_decides_what_is_retried),
        support_test(test_retry_dropped_while_waiting_leaves_no_timer),
        support_test(test_retry_reconnects_a_refused_tcp_connect_with_backoff),
        support_test(test_retry_invalid_policy_is_einval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
