/*
 * Signal listeners: a signal sent while the runtime is parked wakes the
 * waiting task; every listener of a signal sees it; deliveries before the
 * first poll are remembered and coalesced; the previous disposition comes
 * back when the last listener goes; bad arguments are refused.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "asyncio/runtime.h"
#include "asyncio/signal.h"
#include "support.h"

/* A task that waits for one delivery on its listener and outputs the signal number. */
static int listen_poll(void *state, asyncio_context *cx, void *output)
{
    asyncio_signal *s = state;
    int signo = 0;
    int rc = asyncio_signal_poll(s, cx, &signo);
    if (rc != 0)
        return rc; /* PENDING or an error */
    *(int *)output = signo;
    return 0;
}

static void listen_drop(void *state)
{
    asyncio_signal_drop(state);
}

static const asyncio_task_vtable listen_vt = {listen_poll, listen_drop, NULL,
                                              sizeof(asyncio_signal), sizeof(int)};

/* Sends `sig` to the process once `tid` is blocked (the runtime parked in its poller). */
typedef struct sender {
    pid_t tid;
    int sig;
} sender;

static void *send_when_parked(void *arg)
{
    sender *s = arg;
    support_wait_blocked(s->tid);
    kill(getpid(), s->sig);
    return NULL;
}

static void test_signal_sent_while_parked_wakes_the_waiting_task(void **state)
{
    (void)state;
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    int sigs[] = {SIGUSR1};
    asyncio_signal s;
    assert_ok(asyncio_signal_init(&s, sigs, 1));
    sender snd = {support_gettid(), SIGUSR1};
    pthread_t th;
    pthread_create(&th, NULL, send_when_parked, &snd);
    int got = 0;
    assert_ok(asyncio_runtime_block_on(rt, &listen_vt, &s, &got)); /* s moves into the task */
    pthread_join(th, NULL);
    assert_int_equal(got, SIGUSR1);
    assert_ok(asyncio_runtime_free(rt));
}

/* Main task for the two-listener test: awaits its own listener, then the other task. */
typedef struct pair_main {
    asyncio_signal s;
    asyncio_join_handle *other;
    int mine, theirs;
    int step;
} pair_main;

static int pair_main_poll(void *state, asyncio_context *cx, void *output)
{
    pair_main *m = state;
    (void)output;
    if (m->step == 0) {
        int rc = asyncio_signal_poll(&m->s, cx, &m->mine);
        if (rc != 0)
            return rc;
        m->step = 1;
    }
    int rc = asyncio_join_handle_poll(m->other, cx, &m->theirs);
    if (rc == ASYNCIO_PENDING)
        return rc;
    asyncio_join_handle_drop(m->other);
    m->other = NULL;
    ((int *)output)[0] = m->mine;
    ((int *)output)[1] = m->theirs;
    return rc;
}

static void pair_main_drop(void *state)
{
    pair_main *m = state;
    asyncio_signal_drop(&m->s);
    asyncio_join_handle_drop(m->other);
}

static const asyncio_task_vtable pair_main_vt = {pair_main_poll, pair_main_drop, NULL,
                                                 sizeof(pair_main), 2 * sizeof(int)};

static void test_signal_every_listener_of_a_signal_is_woken(void **state)
{
    (void)state;
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    int sigs[] = {SIGUSR2};
    asyncio_signal other;
    assert_ok(asyncio_signal_init(&other, sigs, 1));
    pair_main m = {0};
    assert_ok(asyncio_signal_init(&m.s, sigs, 1));
    assert_ok(asyncio_spawn(rt, &listen_vt, &other, &m.other));
    sender snd = {support_gettid(), SIGUSR2};
    pthread_t th;
    pthread_create(&th, NULL, send_when_parked, &snd);
    int out[2] = {0, 0};
    assert_ok(asyncio_runtime_block_on(rt, &pair_main_vt, &m, out)); /* one signal only */
    pthread_join(th, NULL);
    assert_int_equal(out[0], SIGUSR2);
    assert_int_equal(out[1], SIGUSR2);
    assert_ok(asyncio_runtime_free(rt));
}

/* Polls once expecting a delivery, then once more expecting PENDING (coalesced). */
typedef struct twice {
    asyncio_signal s;
    int first, second; /* the polls' results */
    int signo;         /* what the first one reported */
} twice;

static int twice_poll(void *state, asyncio_context *cx, void *output)
{
    twice *t = state;
    t->first = asyncio_signal_poll(&t->s, cx, &t->signo);
    t->second = asyncio_signal_poll(&t->s, cx, NULL);
    ((int *)output)[0] = t->first == 0 ? t->signo : t->first;
    ((int *)output)[1] = t->second;
    return 0;
}

static void twice_drop(void *state)
{
    asyncio_signal_drop(&((twice *)state)->s);
}

static const asyncio_task_vtable twice_vt = {twice_poll, twice_drop, NULL, sizeof(twice),
                                             2 * sizeof(int)};

static void test_signal_deliveries_before_first_poll_are_remembered_and_coalesced(void **state)
{
    (void)state;
    asyncio_runtime *rt;
    rt = support_runtime_new(NULL);
    int sigs[] = {SIGUSR1, SIGUSR2};
    twice t;
    assert_ok(asyncio_signal_init(&t.s, sigs, 2));
    raise(SIGUSR2); /* handled synchronously by this thread */
    raise(SIGUSR2);
    int out[2];
    assert_ok(asyncio_runtime_block_on(rt, &twice_vt, &t, out));
    assert_int_equal(out[0], SIGUSR2);
    assert_int_equal(out[1], ASYNCIO_PENDING);
    assert_ok(asyncio_runtime_free(rt));
}

/*
 * SIGHUP is 1, the value of ASYNCIO_PENDING: when the signal number was the
 * poll's return value, a SIGHUP looked like "pending" and was lost.
 */
static void test_signal_sighup_is_reported_not_mistaken_for_pending(void **state)
{
    (void)state;
    asyncio_runtime *rt = support_runtime_new(NULL);
    int sigs[] = {SIGHUP};
    twice t;
    memset(&t, 0, sizeof t);
    assert_ok(asyncio_signal_init(&t.s, sigs, 1));
    raise(SIGHUP); /* handled synchronously by this thread: the library's handler */
    int out[2];
    assert_ok(asyncio_runtime_block_on(rt, &twice_vt, &t, out));
    assert_int_equal(t.first, 0);
    assert_int_equal(out[0], SIGHUP);
    assert_int_equal(out[1], ASYNCIO_PENDING);
    assert_ok(asyncio_runtime_free(rt));
}

static _Atomic int g_custom;

static void custom_handler(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_custom, 1);
}

static void test_signal_previous_disposition_restored_after_last_listener(void **state)
{
    (void)state;
    struct sigaction custom = {0}, old, now;
    custom.sa_handler = custom_handler;
    sigemptyset(&custom.sa_mask);
    assert_sys(sigaction(SIGUSR1, &custom, &old));
    int sigs[] = {SIGUSR1};
    asyncio_signal a, b;
    assert_ok(asyncio_signal_init(&a, sigs, 1));
    assert_ok(asyncio_signal_init(&b, sigs, 1));
    asyncio_signal_drop(&a);
    assert_sys(sigaction(SIGUSR1, NULL, &now));
    assert_true(now.sa_handler != custom_handler); /* b still listens */
    raise(SIGUSR1);
    assert_int_equal(atomic_load(&g_custom), 0);
    asyncio_signal_drop(&b);
    asyncio_signal_drop(&b); /* idempotent */
    assert_sys(sigaction(SIGUSR1, NULL, &now));
    assert_true(now.sa_handler == custom_handler);
    raise(SIGUSR1);
    assert_int_equal(atomic_load(&g_custom), 1);
    assert_sys(sigaction(SIGUSR1, &old, NULL));
}

static void test_signal_invalid_arguments(void **state)
{
    (void)state;
    asyncio_signal s;
    int kill_sig[] = {SIGKILL}, segv[] = {SIGSEGV}, bad[] = {0}, big[] = {1000};
    int many[ASYNCIO_SIGNAL_MAX + 1] = {0};
    int ok[] = {SIGUSR1};
    assert_err(asyncio_signal_init(NULL, ok, 1), ASYNCIO_EINVAL);
    assert_err(asyncio_signal_init(&s, NULL, 1), ASYNCIO_EINVAL);
    assert_err(asyncio_signal_init(&s, ok, 0), ASYNCIO_EINVAL);
    assert_err(asyncio_signal_init(&s, many, ASYNCIO_SIGNAL_MAX + 1), ASYNCIO_EINVAL);
    assert_err(asyncio_signal_init(&s, kill_sig, 1), ASYNCIO_EINVAL);
    assert_err(asyncio_signal_init(&s, segv, 1), ASYNCIO_EINVAL);
    assert_err(asyncio_signal_init(&s, bad, 1), ASYNCIO_EINVAL);
    assert_err(asyncio_signal_init(&s, big, 1), ASYNCIO_EINVAL);
    asyncio_signal_drop(&s); /* after a failed init: harmless */
    assert_ok(asyncio_signal_init(&s, ok, 1));
    asyncio_waker none = ASYNCIO_WAKER_EMPTY;
    asyncio_context cx = ASYNCIO_CONTEXT_INIT(&none);
    assert_err(asyncio_signal_poll(&s, &cx, NULL), ASYNCIO_EINVAL); /* outside a runtime */
    assert_err(asyncio_signal_poll(NULL, &cx, NULL), ASYNCIO_EINVAL);
    asyncio_signal_drop(&s);
}

int main(void)
{
    /* The self-pipe lives as long as the process: create it before the fd-leak checks. */
    int sigs[] = {SIGUSR1};
    asyncio_signal warm;
    if (asyncio_signal_init(&warm, sigs, 1) != 0)
        return 1;
    asyncio_signal_drop(&warm);
    const struct CMUnitTest tests[] = {
        support_test(test_signal_sent_while_parked_wakes_the_waiting_task),
        support_test(test_signal_every_listener_of_a_signal_is_woken),
        support_test(test_signal_deliveries_before_first_poll_are_remembered_and_coalesced),
        support_test(test_signal_sighup_is_reported_not_mistaken_for_pending),
        cmocka_unit_test(test_signal_previous_disposition_restored_after_last_listener),
        cmocka_unit_test(test_signal_invalid_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
