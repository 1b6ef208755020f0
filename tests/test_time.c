/*
 * Time driver, sleep, interval, timeout and the paused clock
 * (src/time/driver.c, sleep.c, interval.c, timeout.c).
 *
 * White-box: each test drives a bare asyncio__driver whose only initialised
 * part is the time driver, entered as this thread's current driver, and
 * polls futures by hand with a counting test waker. Time moves only through
 * the paused clock (asyncio_time_advance + asyncio__time_process); the two
 * real-clock tests check lower bounds only.
 */
#include "support.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "asyncio/runtime.h"
#include "asyncio/time.h"
#include "reactor/driver.h"
#include "time/driver.h"

#define POW64(k) (UINT64_C(1) << (6 * (k)))

/* ---- test waker ----------------------------------------------------------- */

/* Counts what happens to the clones of one waker. */
typedef struct tw {
    int id;
    int clones;                   /* clone() calls: references handed out */
    int wakes;                    /* wake() calls (consume a reference) */
    int wakes_by_ref;             /* wake_by_ref() calls */
    int drops;                    /* drop() calls (release a reference) */
    void (*on_wake)(struct tw *); /* optional hook run inside wake() */
    void *arg;
} tw;

#define WAKE_LOG_CAP 64
static int wake_log[WAKE_LOG_CAP];
static size_t wake_log_len;

static const asyncio_waker_vtable tw_vtable;

static asyncio_waker tw_clone(const void *data)
{
    ((tw *)data)->clones++;
    return (asyncio_waker){&tw_vtable, data};
}

static void tw_wake(const void *data)
{
    tw *w = (tw *)data;
    w->wakes++;
    if (wake_log_len < WAKE_LOG_CAP)
        wake_log[wake_log_len++] = w->id;
    if (w->on_wake != NULL)
        w->on_wake(w);
}

static void tw_wake_by_ref(const void *data)
{
    ((tw *)data)->wakes_by_ref++;
}

static void tw_drop(const void *data)
{
    ((tw *)data)->drops++;
}

static const asyncio_waker_vtable tw_vtable = {tw_clone, tw_wake, tw_wake_by_ref, tw_drop};

/* A test waker (the original, borrowed by contexts) and its context. */
typedef struct probe {
    tw w;
    asyncio_waker waker;
    asyncio_context cx;
} probe;

static void probe_init(probe *p, int id)
{
    memset(p, 0, sizeof(*p));
    p->w.id = id;
    p->waker = (asyncio_waker){&tw_vtable, &p->w};
    p->cx = (asyncio_context)ASYNCIO_CONTEXT_INIT(&p->waker);
}

/* References the library still holds: every clone must end in one wake or drop. */
static int live(const probe *p)
{
    return p->w.clones - p->w.wakes - p->w.drops;
}

/* ---- fixture: a bare driver with a paused time driver --------------------- */

static asyncio__driver drv;
static asyncio__driver *prev_driver;

static int time_setup(void **state)
{
    support_setup(state);
    memset(&drv, 0, sizeof(drv));
    assert_ok(asyncio__time_driver_init(&drv.time, true));
    prev_driver = asyncio__driver_enter(&drv);
    wake_log_len = 0;
    return 0;
}

static int time_teardown(void **state)
{
    assert_true(asyncio__wheel_is_empty(&drv.time.wheel));
    asyncio__time_driver_close(&drv.time);
    asyncio__driver_enter(prev_driver);
    return support_teardown(state);
}

#define time_test(f) cmocka_unit_test_setup_teardown(f, time_setup, time_teardown)

static uint64_t now(void)
{
    return asyncio_time_now_ms();
}

/* Moves the paused clock to `t` (absolute) and runs one busy driver turn. */
static void turn_at(uint64_t t)
{
    assert_true(t >= now());
    assert_ok(asyncio_time_advance(t - now()));
    asyncio__time_process(&drv.time, false);
    assert_int_equal(now(), t);
}

/* ---- sleep ------------------------------------------------------------------ */

static void test_sleep_completes_at_deadline_not_before(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep s;

    probe_init(&p, 1);
    asyncio_sleep_init(&s, 10);
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    turn_at(9);
    assert_int_equal(p.w.wakes, 0);
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    turn_at(10);
    assert_int_equal(p.w.wakes, 1);
    assert_ok(asyncio_sleep_poll(&s, &p.cx));
    assert_ok(asyncio_sleep_poll(&s, &p.cx)); /* stays complete */
    asyncio_sleep_drop(&s);
    assert_int_equal(p.w.clones, 1); /* one registration despite two pending polls */
    assert_int_equal(live(&p), 0);
}

static void test_sleep_never_early_across_wheel_levels(void **state)
{
    (void)state;
    /* Around every level's span, and past the 2^36 ms epoch (overflow list). */
    /* clang-format off */
    static const uint64_t durations[] = {
        1, 2, 63, 64, 65,
        POW64(2) - 1, POW64(2), POW64(2) + 1, POW64(3) + 7,
        POW64(4) - 1, POW64(4) + 3, POW64(5) + 5, POW64(6) - 1, POW64(6) + 11,
    };
    /* clang-format on */

    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        probe p;
        asyncio_sleep s;
        uint64_t start = now() + 3; /* start off any slot boundary */
        uint64_t deadline = start + durations[i];

        turn_at(start);
        probe_init(&p, (int)i);
        asyncio_sleep_init(&s, durations[i]);
        assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
        /* Step through every cascade point the driver would wake up for. */
        for (;;) {
            uint64_t next = asyncio__wheel_next_expiration(&drv.time.wheel);
            if (next >= deadline)
                break;
            turn_at(next);
            assert_int_equal(p.w.wakes, 0);
        }
        turn_at(deadline - 1);
        assert_int_equal(p.w.wakes, 0);
        assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
        turn_at(deadline);
        assert_int_equal(p.w.wakes, 1);
        assert_ok(asyncio_sleep_poll(&s, &p.cx));
        asyncio_sleep_drop(&s);
        assert_int_equal(live(&p), 0);
    }
}

static void test_sleep_long_jump_fires_once(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep s;

    probe_init(&p, 1);
    asyncio_sleep_init(&s, 100);
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    turn_at(POW64(5)); /* far past the deadline in one jump */
    assert_int_equal(p.w.wakes, 1);
    turn_at(POW64(5) + 1000);
    asyncio__time_process(&drv.time, true);
    assert_int_equal(p.w.wakes, 1); /* woken exactly once */
    assert_int_equal(p.w.wakes_by_ref, 0);
    assert_ok(asyncio_sleep_poll(&s, &p.cx));
    asyncio_sleep_drop(&s);
    assert_int_equal(live(&p), 0);
}

static void test_sleep_repoll_with_new_waker_wakes_only_latest(void **state)
{
    (void)state;
    probe a, b;
    asyncio_sleep s;

    probe_init(&a, 1);
    probe_init(&b, 2);
    asyncio_sleep_init(&s, 5);
    assert_int_equal(asyncio_sleep_poll(&s, &a.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_sleep_poll(&s, &b.cx), ASYNCIO_PENDING);
    assert_int_equal(live(&a), 0); /* the replaced waker was dropped */
    turn_at(5);
    assert_int_equal(a.w.wakes, 0);
    assert_int_equal(b.w.wakes, 1);
    assert_ok(asyncio_sleep_poll(&s, &b.cx));
    asyncio_sleep_drop(&s);
    assert_int_equal(live(&b), 0);
}

static void test_sleep_drop_pending_unlinks_and_never_wakes(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep s;

    probe_init(&p, 1);
    asyncio_sleep_init(&s, 10);
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    assert_false(asyncio__wheel_is_empty(&drv.time.wheel));
    asyncio_sleep_drop(&s);
    assert_true(asyncio__wheel_is_empty(&drv.time.wheel));
    assert_int_equal(live(&p), 0);
    assert_int_equal(p.w.drops, 1);
    asyncio_sleep_drop(&s);      /* idempotent */
    memset(&s, 0xAB, sizeof(s)); /* the driver must not refer to it any more */
    turn_at(100);
    asyncio__time_process(&drv.time, true);
    assert_int_equal(p.w.wakes, 0);
    assert_int_equal(now(), 100);
}

static void test_sleep_drop_is_safe_never_polled_and_finished(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep fresh, done;

    probe_init(&p, 1);
    asyncio_sleep_init(&fresh, 10);
    asyncio_sleep_drop(&fresh);
    asyncio_sleep_drop(&fresh);

    asyncio_sleep_init(&done, 1);
    assert_int_equal(asyncio_sleep_poll(&done, &p.cx), ASYNCIO_PENDING);
    turn_at(1);
    assert_ok(asyncio_sleep_poll(&done, &p.cx));
    asyncio_sleep_drop(&done);
    asyncio_sleep_drop(&done);
    assert_int_equal(live(&p), 0);
}

static void test_sleep_reset_moves_deadline(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep s;

    probe_init(&p, 1);
    asyncio_sleep_init(&s, 10);
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    /* Later: the waiting task stays registered and moves with it. */
    asyncio_sleep_reset(&s, 20);
    turn_at(10);
    turn_at(19);
    assert_int_equal(p.w.wakes, 0);
    turn_at(20);
    assert_int_equal(p.w.wakes, 1);
    assert_ok(asyncio_sleep_poll(&s, &p.cx));

    /* Reset after completion: pending again until the new deadline. */
    asyncio_sleep_reset(&s, 30);
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    /* Earlier. */
    asyncio_sleep_reset(&s, 25);
    turn_at(24);
    assert_int_equal(p.w.wakes, 1);
    turn_at(25);
    assert_int_equal(p.w.wakes, 2);
    assert_ok(asyncio_sleep_poll(&s, &p.cx));

    /* Into the past while waiting: woken at the next driver turn. */
    asyncio_sleep_reset(&s, 40);
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    asyncio_sleep_reset(&s, 10);
    assert_int_equal(p.w.wakes, 2); /* reset itself never wakes */
    asyncio__time_process(&drv.time, false);
    assert_int_equal(p.w.wakes, 3);
    assert_int_equal(now(), 25);
    assert_ok(asyncio_sleep_poll(&s, &p.cx));
    asyncio_sleep_drop(&s);
    assert_int_equal(live(&p), 0);
}

static void test_sleep_reset_before_first_poll_is_absolute(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep s;

    probe_init(&p, 1);
    turn_at(100);
    asyncio_sleep_init(&s, 1000);
    asyncio_sleep_reset(&s, 150);
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    turn_at(149);
    assert_int_equal(p.w.wakes, 0);
    turn_at(150);
    assert_int_equal(p.w.wakes, 1);
    assert_ok(asyncio_sleep_poll(&s, &p.cx));
    asyncio_sleep_drop(&s);
}

static void test_sleep_equal_deadlines_fire_in_one_turn_in_order(void **state)
{
    (void)state;
    probe p[3];
    asyncio_sleep s[3];

    for (int i = 0; i < 3; i++) {
        probe_init(&p[i], i + 1);
        asyncio_sleep_init_until(&s[i], 70);
        assert_int_equal(asyncio_sleep_poll(&s[i], &p[i].cx), ASYNCIO_PENDING);
    }
    turn_at(69);
    assert_int_equal(wake_log_len, 0);
    turn_at(70);
    assert_int_equal(wake_log_len, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wake_log[i], i + 1);
        assert_ok(asyncio_sleep_poll(&s[i], &p[i].cx));
        asyncio_sleep_drop(&s[i]);
        assert_int_equal(live(&p[i]), 0);
    }
}

static void test_sleep_past_deadline_is_ready_at_first_poll(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep past, zero;

    probe_init(&p, 1);
    turn_at(100);
    asyncio_sleep_init_until(&past, 50);
    assert_ok(asyncio_sleep_poll(&past, &p.cx));
    asyncio_sleep_init(&zero, 0);
    assert_ok(asyncio_sleep_poll(&zero, &p.cx));
    assert_int_equal(p.w.clones, 0); /* nothing was registered */
    assert_true(asyncio__wheel_is_empty(&drv.time.wheel));
    asyncio_sleep_drop(&past);
    asyncio_sleep_drop(&zero);
}

static void test_sleep_advanced_clock_fires_only_at_next_turn(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep s;

    probe_init(&p, 1);
    asyncio_sleep_init(&s, 10);
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    assert_ok(asyncio_time_advance(50));
    assert_int_equal(now(), 50);
    /* The clock passed the deadline, but no driver turn has processed it. */
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    assert_int_equal(p.w.wakes, 0);
    asyncio__time_process(&drv.time, false);
    assert_int_equal(p.w.wakes, 1);
    assert_ok(asyncio_sleep_poll(&s, &p.cx));
    asyncio_sleep_drop(&s);
    assert_int_equal(live(&p), 0);
}

/* A wake that drops another sleep which fired in the same batch. */
static void drop_sibling(tw *w)
{
    asyncio_sleep_drop((asyncio_sleep *)w->arg);
}

static void test_sleep_wake_may_cancel_sibling_fired_in_same_turn(void **state)
{
    (void)state;
    probe a, b;
    asyncio_sleep sa, sb;

    probe_init(&a, 1);
    probe_init(&b, 2);
    asyncio_sleep_init(&sa, 10);
    asyncio_sleep_init(&sb, 10);
    assert_int_equal(asyncio_sleep_poll(&sa, &a.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_sleep_poll(&sb, &b.cx), ASYNCIO_PENDING);
    a.w.on_wake = drop_sibling;
    a.w.arg = &sb;
    turn_at(10);
    assert_int_equal(a.w.wakes, 1);
    assert_int_equal(b.w.wakes, 0); /* cancelled before its turn came */
    assert_int_equal(live(&b), 0);
    asyncio_sleep_drop(&sa);
    assert_int_equal(live(&a), 0);
}

static void test_sleep_poll_outside_runtime_is_einval(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep s;
    asyncio__driver *mine;

    probe_init(&p, 1);
    asyncio_sleep_init(&s, 10);
    mine = asyncio__driver_enter(NULL);
    assert_err(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_EINVAL);
    assert_int_equal(p.w.clones, 0); /* no waker taken on error */
    assert_int_equal(asyncio_time_now_ms(), 0);
    assert_err(asyncio_time_pause(), ASYNCIO_EINVAL);
    assert_err(asyncio_time_resume(), ASYNCIO_EINVAL);
    assert_err(asyncio_time_advance(1), ASYNCIO_EINVAL);
    asyncio_sleep_drop(&s);
    asyncio__driver_enter(mine);
}

static void test_sleep_poll_on_another_runtime_is_einval(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep s;
    asyncio__driver other;

    probe_init(&p, 1);
    memset(&other, 0, sizeof(other));
    assert_ok(asyncio__time_driver_init(&other.time, true));
    asyncio_sleep_init(&s, 10);
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    asyncio__driver_enter(&other);
    assert_err(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_EINVAL);
    asyncio__driver_enter(&drv);
    asyncio_sleep_drop(&s);
    asyncio__time_driver_close(&other.time);
    assert_int_equal(live(&p), 0);
}

/* Hazard: timer wheel wrap (tokio#8334). */
static void test_sleep_short_timer_next_to_max_deadline_fires_near_2_30(void **state)
{
    (void)state;
    static const int64_t offsets[] = {-20, -10, -5, -1, 0, 1, 7};

    for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
        probe p, pmax;
        asyncio_sleep s, smax;
        uint64_t start = (uint64_t)((int64_t)(UINT64_C(1) << 30) * (int64_t)(i + 1) + offsets[i]);

        turn_at(start);
        probe_init(&p, 1);
        probe_init(&pmax, 2);
        asyncio_sleep_init_until(&smax, UINT64_MAX);
        assert_int_equal(asyncio_sleep_poll(&smax, &pmax.cx), ASYNCIO_PENDING);
        asyncio_sleep_init(&s, 10);
        assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
        turn_at(start + 9);
        assert_int_equal(p.w.wakes, 0);
        turn_at(start + 10);
        assert_int_equal(p.w.wakes, 1);
        assert_int_equal(pmax.w.wakes, 0);
        assert_ok(asyncio_sleep_poll(&s, &p.cx));
        /* Auto-advance with only the far timer left would jump there: drop it first. */
        asyncio_sleep_drop(&smax);
        asyncio_sleep_drop(&s);
        assert_int_equal(live(&p), 0);
        assert_int_equal(live(&pmax), 0);
    }
}

static void test_sleep_short_timer_next_to_max_deadline_auto_advances_to_it(void **state)
{
    (void)state;
    probe p, pmax;
    asyncio_sleep s, smax;
    uint64_t start = (UINT64_C(1) << 30) - 3;

    turn_at(start);
    probe_init(&p, 1);
    probe_init(&pmax, 2);
    asyncio_sleep_init_until(&smax, UINT64_MAX);
    assert_int_equal(asyncio_sleep_poll(&smax, &pmax.cx), ASYNCIO_PENDING);
    asyncio_sleep_init(&s, 10);
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    asyncio__time_process(&drv.time, true);
    assert_int_equal(now(), start + 10);
    assert_int_equal(p.w.wakes, 1);
    assert_int_equal(pmax.w.wakes, 0);
    asyncio_sleep_drop(&smax);
    asyncio_sleep_drop(&s);
}

/* ---- driver: auto-advance, park timeout, close ------------------------------ */

static void test_time_process_idle_auto_advances_to_next_timer(void **state)
{
    (void)state;
    probe a, b, c;
    asyncio_sleep sa, sb, sc;

    probe_init(&a, 1);
    probe_init(&b, 2);
    probe_init(&c, 3);
    asyncio_sleep_init(&sa, 1000);
    asyncio_sleep_init(&sb, 5000);
    /* Several levels up: auto-advance lands on it, not on a cascade point. */
    asyncio_sleep_init(&sc, POW64(3) + 12345);
    assert_int_equal(asyncio_sleep_poll(&sa, &a.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_sleep_poll(&sb, &b.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio_sleep_poll(&sc, &c.cx), ASYNCIO_PENDING);

    asyncio__time_process(&drv.time, false); /* busy: no jump */
    assert_int_equal(now(), 0);
    asyncio__time_process(&drv.time, true);
    assert_int_equal(now(), 1000);
    assert_int_equal(a.w.wakes, 1);
    assert_int_equal(b.w.wakes, 0);
    asyncio__time_process(&drv.time, true);
    assert_int_equal(now(), 5000);
    assert_int_equal(b.w.wakes, 1);
    asyncio__time_process(&drv.time, true);
    assert_int_equal(now(), POW64(3) + 12345);
    assert_int_equal(c.w.wakes, 1);
    /* Nothing left: idle turns leave the clock alone. */
    asyncio__time_process(&drv.time, true);
    assert_int_equal(now(), POW64(3) + 12345);

    asyncio_sleep_drop(&sa);
    asyncio_sleep_drop(&sb);
    asyncio_sleep_drop(&sc);
    assert_int_equal(live(&a) + live(&b) + live(&c), 0);
}

/*
 * The clock is read without the lock (a seqlock over paused / base /
 * origin). A reader on another thread racing pause / advance / resume must
 * always see a consistent snapshot: the runtime time never goes back. A
 * torn read (resumed "paused = false" with the old origin, say) would show
 * a jump forward and then a step back. Runs under TSan in `make tsan`.
 */
typedef struct clock_reader {
    asyncio__time_driver *t;
    atomic_bool stop;
    long reads;
    long backwards;
} clock_reader;

static void *read_clock_until_stopped(void *arg)
{
    clock_reader *r = arg;
    uint64_t last = 0;
    while (!atomic_load(&r->stop)) {
        uint64_t v = asyncio__time_now(r->t);
        if (v < last)
            r->backwards++;
        last = v;
        r->reads++;
    }
    return NULL;
}

static void test_time_now_read_racing_pause_resume_advance_never_goes_back(void **state)
{
    (void)state;
    clock_reader r = {.t = &drv.time, .reads = 0, .backwards = 0};
    atomic_init(&r.stop, false);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_clock_until_stopped, &r), 0);
    long rounds = (long)support_scale(100000);
    for (long i = 0; i < rounds; i++) {
        assert_ok(asyncio_time_advance(1)); /* paused here */
        assert_ok(asyncio_time_resume());
        assert_ok(asyncio_time_pause());
    }
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    assert_int_equal(r.backwards, 0);
    assert_true(now() >= (uint64_t)rounds);
}

static void test_time_park_timeout_paused(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep s;

    probe_init(&p, 1);
    assert_int_equal(asyncio__time_park_timeout(&drv.time, -1), -1);
    assert_int_equal(asyncio__time_park_timeout(&drv.time, 0), 0);
    assert_int_equal(asyncio__time_park_timeout(&drv.time, 7), 7);
    asyncio_sleep_init(&s, 100);
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    assert_int_equal(asyncio__time_park_timeout(&drv.time, -1), 0);
    assert_int_equal(asyncio__time_park_timeout(&drv.time, 50), 0);
    asyncio_sleep_drop(&s);
    assert_int_equal(asyncio__time_park_timeout(&drv.time, -1), -1);
}

static void test_time_park_timeout_real_clock_bounded_by_next_timer(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep s;
    asyncio__driver real;
    int to;

    probe_init(&p, 1);
    memset(&real, 0, sizeof(real));
    assert_ok(asyncio__time_driver_init(&real.time, false));
    asyncio__driver_enter(&real);
    assert_int_equal(asyncio__time_park_timeout(&real.time, -1), -1);
    assert_int_equal(asyncio__time_park_timeout(&real.time, 3), 3);
    asyncio_sleep_init(&s, 100000);
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    to = asyncio__time_park_timeout(&real.time, -1);
    assert_true(to >= 0 && to <= 100001);
    assert_int_equal(asyncio__time_park_timeout(&real.time, 5), 5);
    assert_int_equal(asyncio__time_park_timeout(&real.time, 0), 0);
    asyncio_sleep_drop(&s);
    asyncio__time_driver_close(&real.time);
    asyncio__driver_enter(&drv);
    assert_int_equal(live(&p), 0);
}

static void test_sleep_real_clock_completes_not_before_duration(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep s;
    asyncio__driver real;
    uint64_t t0;
    int rc, turns = 0;

    probe_init(&p, 1);
    memset(&real, 0, sizeof(real));
    assert_ok(asyncio__time_driver_init(&real.time, false));
    asyncio__driver_enter(&real);
    t0 = support_now_us();
    asyncio_sleep_init(&s, 20);
    while ((rc = asyncio_sleep_poll(&s, &p.cx)) == ASYNCIO_PENDING) {
        int to = asyncio__time_park_timeout(&real.time, -1);
        assert_true(to >= 0 && to <= 21);
        poll(NULL, 0, to); /* stands in for the poller's wait */
        asyncio__time_process(&real.time, true);
        assert_true(++turns < 10000);
    }
    assert_ok(rc);
    assert_true(support_now_us() - t0 >= 20000);
    assert_int_equal(p.w.wakes, 1);
    asyncio_sleep_drop(&s);
    asyncio__time_driver_close(&real.time);
    asyncio__driver_enter(&drv);
    assert_int_equal(live(&p), 0);
}

static void test_time_driver_close_drops_leaked_timer_wakers(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep s;

    probe_init(&p, 1);
    asyncio_sleep_init(&s, 10);
    assert_int_equal(asyncio_sleep_poll(&s, &p.cx), ASYNCIO_PENDING);
    asyncio__time_driver_close(&drv.time);
    assert_int_equal(p.w.wakes, 0);
    assert_int_equal(p.w.drops, 1);
    /* The driver's memory is gone as far as the sleep knows: drop must not touch it. */
    memset(&drv.time, 0xAB, sizeof(drv.time));
    asyncio_sleep_drop(&s);
    assert_int_equal(live(&p), 0);
    assert_ok(asyncio__time_driver_init(&drv.time, true)); /* for the teardown */
}

static void test_time_pause_resume_advance(void **state)
{
    (void)state;
    asyncio__driver real;
    uint64_t t;

    memset(&real, 0, sizeof(real));
    assert_ok(asyncio__time_driver_init(&real.time, false));
    asyncio__driver_enter(&real);
    assert_err(asyncio_time_advance(5), ASYNCIO_EINVAL); /* not paused */
    assert_err(asyncio_time_resume(), ASYNCIO_EINVAL);
    assert_ok(asyncio_time_pause());
    assert_err(asyncio_time_pause(), ASYNCIO_EINVAL);
    t = asyncio_time_now_ms();
    assert_ok(asyncio_time_advance(1000));
    assert_int_equal(asyncio_time_now_ms(), t + 1000);
    assert_ok(asyncio_time_resume());
    assert_true(asyncio_time_now_ms() >= t + 1000); /* continues, never back */
    asyncio__time_driver_close(&real.time);
    asyncio__driver_enter(&drv);

    assert_ok(asyncio_time_advance(UINT64_MAX)); /* saturates */
    assert_int_equal(now(), UINT64_MAX);
}

/* ---- interval ----------------------------------------------------------------- */

/* Polls until PENDING; returns how many ticks came, storing them in ticks[]. */
static size_t drain_ticks(asyncio_interval *iv, probe *p, uint64_t *ticks, size_t cap)
{
    size_t n = 0;
    uint64_t tick;
    int rc;

    while ((rc = asyncio_interval_poll_tick(iv, &p->cx, &tick)) == 0) {
        assert_true(n < cap);
        ticks[n++] = tick;
    }
    assert_int_equal(rc, ASYNCIO_PENDING);
    return n;
}

/* Period 10; consumer polls at 0 and then only at 35. */
static void late_consumer(asyncio_interval *iv, probe *p, asyncio_missed_tick policy)
{
    uint64_t ticks[8];

    probe_init(p, 1);
    assert_ok(asyncio_interval_init(iv, 10, policy));
    assert_int_equal(drain_ticks(iv, p, ticks, 8), 1);
    assert_int_equal(ticks[0], 0);
    turn_at(35);
    assert_int_equal(p->w.wakes, 1);
}

static void test_interval_burst_catches_up_back_to_back(void **state)
{
    (void)state;
    asyncio_interval iv;
    probe p;
    uint64_t ticks[8];

    late_consumer(&iv, &p, ASYNCIO_MISSED_TICK_BURST);
    assert_int_equal(drain_ticks(&iv, &p, ticks, 8), 3);
    assert_int_equal(ticks[0], 10);
    assert_int_equal(ticks[1], 20);
    assert_int_equal(ticks[2], 30);
    turn_at(39);
    assert_int_equal(p.w.wakes, 1);
    turn_at(40);
    assert_int_equal(p.w.wakes, 2);
    assert_int_equal(drain_ticks(&iv, &p, ticks, 8), 1);
    assert_int_equal(ticks[0], 40);
    asyncio_interval_drop(&iv);
    assert_int_equal(live(&p), 0);
}

static void test_interval_delay_restarts_schedule_from_late_tick(void **state)
{
    (void)state;
    asyncio_interval iv;
    probe p;
    uint64_t ticks[8];

    late_consumer(&iv, &p, ASYNCIO_MISSED_TICK_DELAY);
    assert_int_equal(drain_ticks(&iv, &p, ticks, 8), 1);
    assert_int_equal(ticks[0], 10); /* seen at 35 */
    turn_at(44);
    assert_int_equal(p.w.wakes, 1);
    turn_at(45);
    assert_int_equal(drain_ticks(&iv, &p, ticks, 8), 1);
    assert_int_equal(ticks[0], 45);
    turn_at(55);
    assert_int_equal(drain_ticks(&iv, &p, ticks, 8), 1);
    assert_int_equal(ticks[0], 55);
    asyncio_interval_drop(&iv);
    assert_int_equal(live(&p), 0);
}

static void test_interval_skip_resumes_on_original_schedule(void **state)
{
    (void)state;
    asyncio_interval iv;
    probe p;
    uint64_t ticks[8];

    late_consumer(&iv, &p, ASYNCIO_MISSED_TICK_SKIP);
    assert_int_equal(drain_ticks(&iv, &p, ticks, 8), 1);
    assert_int_equal(ticks[0], 10); /* seen at 35 */
    turn_at(39);
    assert_int_equal(p.w.wakes, 1);
    turn_at(40);
    assert_int_equal(drain_ticks(&iv, &p, ticks, 8), 1);
    assert_int_equal(ticks[0], 40);
    turn_at(50);
    assert_int_equal(drain_ticks(&iv, &p, ticks, 8), 1);
    assert_int_equal(ticks[0], 50);
    asyncio_interval_drop(&iv);
    assert_int_equal(live(&p), 0);
}

static void test_interval_on_time_ticks_every_period(void **state)
{
    (void)state;
    asyncio_interval iv;
    probe p;
    uint64_t tick;

    probe_init(&p, 1);
    turn_at(7);
    assert_ok(asyncio_interval_init(&iv, 10, ASYNCIO_MISSED_TICK_DELAY));
    for (uint64_t k = 0; k < 5; k++) {
        assert_ok(asyncio_interval_poll_tick(&iv, &p.cx, &tick));
        assert_int_equal(tick, 7 + 10 * k);
        assert_int_equal(now(), 7 + 10 * k);
        assert_int_equal(asyncio_interval_poll_tick(&iv, &p.cx, &tick), ASYNCIO_PENDING);
        asyncio__time_process(&drv.time, true); /* idle: jump to the next tick */
    }
    /* Late by no more than ASYNCIO_INTERVAL_LATE_MS: stays on schedule. */
    assert_ok(asyncio_interval_poll_tick(&iv, &p.cx, &tick));
    assert_int_equal(tick, 57);
    turn_at(67 + ASYNCIO_INTERVAL_LATE_MS);
    assert_ok(asyncio_interval_poll_tick(&iv, &p.cx, &tick));
    assert_int_equal(tick, 67);
    assert_int_equal(asyncio_interval_poll_tick(&iv, &p.cx, &tick), ASYNCIO_PENDING);
    turn_at(77);
    assert_ok(asyncio_interval_poll_tick(&iv, &p.cx, &tick));
    assert_int_equal(tick, 77);
    asyncio_interval_drop(&iv);
    assert_int_equal(live(&p), 0);
}

static void test_interval_init_rejects_zero_period_and_bad_policy(void **state)
{
    (void)state;
    asyncio_interval iv;
    probe p;
    uint64_t tick = 99;

    probe_init(&p, 1);
    assert_err(asyncio_interval_init(&iv, 0, ASYNCIO_MISSED_TICK_BURST), ASYNCIO_EINVAL);
    assert_err(asyncio_interval_poll_tick(&iv, &p.cx, &tick), ASYNCIO_EINVAL);
    assert_int_equal(tick, 99);
    asyncio_interval_drop(&iv);
    assert_err(asyncio_interval_init(&iv, 10, (asyncio_missed_tick)7), ASYNCIO_EINVAL);
    assert_err(asyncio_interval_poll_tick(&iv, &p.cx, &tick), ASYNCIO_EINVAL);
    asyncio_interval_drop(&iv);
    assert_int_equal(p.w.clones, 0);
}

static void test_interval_poll_outside_runtime_is_einval(void **state)
{
    (void)state;
    asyncio_interval iv;
    probe p;
    asyncio__driver *mine;

    probe_init(&p, 1);
    assert_ok(asyncio_interval_init(&iv, 10, ASYNCIO_MISSED_TICK_BURST));
    mine = asyncio__driver_enter(NULL);
    assert_err(asyncio_interval_poll_tick(&iv, &p.cx, NULL), ASYNCIO_EINVAL);
    asyncio__driver_enter(mine);
    asyncio_interval_drop(&iv);
}

/* ---- timeout -------------------------------------------------------------------- */

/* An inner future: pending until `ready`, then returns `result`. */
typedef struct inner {
    bool ready;
    int result;
    int polls;
    asyncio_waker waker;
} inner;

static int inner_poll(void *fut, asyncio_context *cx)
{
    inner *in = fut;
    in->polls++;
    if (in->ready)
        return in->result;
    asyncio_waker_store(&in->waker, cx->waker);
    return ASYNCIO_PENDING;
}

static void test_timeout_returns_inner_result_when_ready_first(void **state)
{
    (void)state;
    asyncio_timeout to;
    inner in = {0};
    probe p;

    probe_init(&p, 1);
    asyncio_timeout_init(&to, inner_poll, &in, 10);
    assert_int_equal(asyncio_timeout_poll(&to, &p.cx), ASYNCIO_PENDING);
    turn_at(9);
    in.ready = true;
    in.result = ASYNCIO_ECONNRESET;
    assert_err(asyncio_timeout_poll(&to, &p.cx), ASYNCIO_ECONNRESET);
    assert_int_equal(in.polls, 2);
    asyncio_timeout_drop(&to);
    asyncio_waker_drop(&in.waker);
    assert_true(asyncio__wheel_is_empty(&drv.time.wheel));
    assert_int_equal(live(&p), 0);
}

static void test_timeout_times_out_exactly_at_deadline(void **state)
{
    (void)state;
    asyncio_timeout to;
    inner in = {0};
    probe p;

    probe_init(&p, 1);
    turn_at(3);
    asyncio_timeout_init(&to, inner_poll, &in, 10);
    assert_int_equal(asyncio_timeout_poll(&to, &p.cx), ASYNCIO_PENDING);
    turn_at(12);
    assert_int_equal(p.w.wakes, 0);
    assert_int_equal(asyncio_timeout_poll(&to, &p.cx), ASYNCIO_PENDING);
    turn_at(13);
    assert_int_equal(p.w.wakes, 1);
    assert_err(asyncio_timeout_poll(&to, &p.cx), ASYNCIO_ETIMEDOUT);
    assert_int_equal(in.polls, 3); /* the inner future is polled first, every time */
    asyncio_timeout_drop(&to);
    asyncio_waker_drop(&in.waker);
    assert_int_equal(live(&p), 0);
}

static void test_timeout_inner_ready_at_deadline_wins(void **state)
{
    (void)state;
    asyncio_timeout to;
    inner in = {0};
    probe p;

    probe_init(&p, 1);
    asyncio_timeout_init(&to, inner_poll, &in, 10);
    assert_int_equal(asyncio_timeout_poll(&to, &p.cx), ASYNCIO_PENDING);
    turn_at(10);
    in.ready = true;
    in.result = 0;
    assert_ok(asyncio_timeout_poll(&to, &p.cx));
    asyncio_timeout_drop(&to);
    asyncio_waker_drop(&in.waker);
    assert_int_equal(live(&p), 0);
}

static void test_timeout_drop_unlinks_and_leaves_inner_alone(void **state)
{
    (void)state;
    asyncio_timeout to;
    inner in = {0};
    probe p;

    probe_init(&p, 1);
    asyncio_timeout_init(&to, inner_poll, &in, 10);
    assert_int_equal(asyncio_timeout_poll(&to, &p.cx), ASYNCIO_PENDING);
    asyncio_timeout_drop(&to);
    assert_true(asyncio__wheel_is_empty(&drv.time.wheel));
    assert_int_equal(live(&p), 1); /* the inner future's clone is still the inner's */
    turn_at(100);
    assert_int_equal(p.w.wakes, 0);
    asyncio_waker_drop(&in.waker);
    assert_int_equal(live(&p), 0);
}

/* ---- cooperative budget ---------------------------------------------------------- */

static void test_sleep_ready_takes_coop_budget(void **state)
{
    (void)state;
    probe p;
    asyncio_sleep a, b;

    probe_init(&p, 1);
    p.cx.coop = true;
    p.cx.budget = 1;
    asyncio_sleep_init(&a, 0);
    asyncio_sleep_init(&b, 0);
    assert_ok(asyncio_sleep_poll(&a, &p.cx));
    assert_int_equal(p.cx.budget, 0);
    /* Out of budget: pending once, the task is woken to run again later. */
    assert_int_equal(asyncio_sleep_poll(&b, &p.cx), ASYNCIO_PENDING);
    assert_int_equal(p.w.wakes_by_ref, 1);
    assert_true(asyncio__wheel_is_empty(&drv.time.wheel));
    p.cx.budget = ASYNCIO_COOP_BUDGET;
    assert_ok(asyncio_sleep_poll(&b, &p.cx));
    asyncio_sleep_drop(&a);
    asyncio_sleep_drop(&b);
    assert_int_equal(live(&p), 0);
}

/* An inner future that spends a unit of budget on every poll and never finishes. */
static int busy_poll(void *fut, asyncio_context *cx)
{
    inner *in = fut;
    in->polls++;
    (void)asyncio_coop_proceed(cx);
    asyncio_waker_store(&in->waker, cx->waker);
    return ASYNCIO_PENDING;
}

static void test_timeout_fires_when_inner_spends_last_budget(void **state)
{
    (void)state;
    asyncio_timeout to;
    inner in = {0};
    probe p;

    probe_init(&p, 1);
    p.cx.coop = true;
    p.cx.budget = ASYNCIO_COOP_BUDGET;
    asyncio_timeout_init(&to, busy_poll, &in, 10);
    assert_int_equal(asyncio_timeout_poll(&to, &p.cx), ASYNCIO_PENDING);
    turn_at(10);
    p.cx.budget = 1; /* the inner future takes the last unit */
    assert_err(asyncio_timeout_poll(&to, &p.cx), ASYNCIO_ETIMEDOUT);
    asyncio_timeout_drop(&to);
    asyncio_waker_drop(&in.waker);
    assert_int_equal(live(&p), 0);
}

/* ---- allocation ------------------------------------------------------------------- */

static void test_time_poll_and_fire_allocate_nothing(void **state)
{
    (void)state;
    enum { N = 64 };
    asyncio_sleep s[N];
    asyncio_interval iv;
    probe p;
    long before = support_alloc_total();

    probe_init(&p, 1);
    assert_ok(asyncio_interval_init(&iv, 3, ASYNCIO_MISSED_TICK_BURST));
    for (int i = 0; i < N; i++) {
        asyncio_sleep_init(&s[i], (uint64_t)i * 997 + 1);
        assert_int_equal(asyncio_sleep_poll(&s[i], &p.cx), ASYNCIO_PENDING);
    }
    for (int k = 0; k < 200; k++) {
        uint64_t tick;
        while (asyncio_interval_poll_tick(&iv, &p.cx, &tick) == 0)
            ;
        asyncio__time_process(&drv.time, true);
    }
    for (int i = 0; i < N; i += 2)
        asyncio_sleep_reset(&s[i], now() + 5);
    turn_at(now() + 5);
    for (int i = 0; i < N; i++)
        asyncio_sleep_drop(&s[i]);
    asyncio_interval_drop(&iv);
    assert_int_equal(support_alloc_total(), before);
    assert_int_equal(live(&p), 0);
}

/* ---- through a runtime ------------------------------------------------------------ */

/*
 * A task that sleeps `duration` ms; after its first poll it advances the
 * paused clock by `advance` ms if non-zero. The runtime copies the state, so the time it
 * woke at is reported through a static.
 */
typedef struct sleeper {
    uint64_t duration;
    uint64_t advance;
    bool started;
    asyncio_sleep s;
} sleeper;

static uint64_t sleeper_woke_at;

static int sleeper_poll(void *state, asyncio_context *cx, void *output)
{
    sleeper *t = state;
    int rc;

    (void)output;
    if (!t->started) {
        t->started = true;
        asyncio_sleep_init(&t->s, t->duration);
        if ((rc = asyncio_sleep_poll(&t->s, cx)) != ASYNCIO_PENDING)
            return rc == 0 ? ASYNCIO_EINVAL : rc; /* cannot be ready yet */
        /* The deadline is fixed at the first poll: move the clock past it now. */
        if (t->advance != 0 && (rc = asyncio_time_advance(t->advance)) < 0)
            return rc;
        return ASYNCIO_PENDING;
    }
    if ((rc = asyncio_sleep_poll(&t->s, cx)) != 0)
        return rc;
    sleeper_woke_at = asyncio_time_now_ms();
    return 0;
}

static void sleeper_drop(void *state)
{
    sleeper *t = state;
    if (t->started)
        asyncio_sleep_drop(&t->s);
}

static const asyncio_task_vtable sleeper_vt = {sleeper_poll, sleeper_drop, NULL, sizeof(sleeper),
                                               0};

/* Fails fast instead of hanging the suite if a paused runtime never fires its timer. */
static void watchdog_fired(int sig)
{
    static const char msg[] = "test_time: watchdog: the paused runtime never fired its timer\n";
    (void)sig;
    (void)!write(2, msg, sizeof(msg) - 1);
    _exit(1);
}

/* Runs one sleeper on a paused runtime; returns the runtime time it woke at. */
static uint64_t run_paused_sleeper(uint64_t duration, uint64_t advance)
{
    asyncio_runtime *rt;
    asyncio_runtime_options opts = {0};
    sleeper init = {0};

    init.duration = duration;
    init.advance = advance;
    opts.start_paused = true;
    sleeper_woke_at = 0;
    rt = support_runtime_new(&opts);
    signal(SIGALRM, watchdog_fired);
    alarm(30); /* a hang guard, not a timing assertion */
    assert_ok(asyncio_runtime_block_on(rt, &sleeper_vt, &init, NULL));
    alarm(0);
    signal(SIGALRM, SIG_DFL);
    assert_ok(asyncio_runtime_free(rt));
    return sleeper_woke_at;
}

static void test_runtime_paused_sleep_fires_after_advance(void **state)
{
    (void)state;
    assert_int_equal(run_paused_sleeper(3600000, 3600000), 3600000);
}

static void test_runtime_paused_idle_auto_advances_to_sleep_deadline(void **state)
{
    (void)state;
    assert_int_equal(run_paused_sleeper(3600000, 0), 3600000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        time_test(test_sleep_completes_at_deadline_not_before),
        time_test(test_sleep_never_early_across_wheel_levels),
        time_test(test_sleep_long_jump_fires_once),
        time_test(test_sleep_repoll_with_new_waker_wakes_only_latest),
        time_test(test_sleep_drop_pending_unlinks_and_never_wakes),
        time_test(test_sleep_drop_is_safe_never_polled_and_finished),
        time_test(test_sleep_reset_moves_deadline),
        time_test(test_sleep_reset_before_first_poll_is_absolute),
        time_test(test_sleep_equal_deadlines_fire_in_one_turn_in_order),
        time_test(test_sleep_past_deadline_is_ready_at_first_poll),
        time_test(test_sleep_advanced_clock_fires_only_at_next_turn),
        time_test(test_sleep_wake_may_cancel_sibling_fired_in_same_turn),
        time_test(test_sleep_poll_outside_runtime_is_einval),
        time_test(test_sleep_poll_on_another_runtime_is_einval),
        time_test(test_sleep_short_timer_next_to_max_deadline_fires_near_2_30),
        time_test(test_sleep_short_timer_next_to_max_deadline_auto_advances_to_it),
        time_test(test_time_process_idle_auto_advances_to_next_timer),
        time_test(test_time_park_timeout_paused),
        time_test(test_time_now_read_racing_pause_resume_advance_never_goes_back),
        time_test(test_time_park_timeout_real_clock_bounded_by_next_timer),
        time_test(test_sleep_real_clock_completes_not_before_duration),
        time_test(test_time_driver_close_drops_leaked_timer_wakers),
        time_test(test_time_pause_resume_advance),
        time_test(test_interval_burst_catches_up_back_to_back),
        time_test(test_interval_delay_restarts_schedule_from_late_tick),
        time_test(test_interval_skip_resumes_on_original_schedule),
        time_test(test_interval_on_time_ticks_every_period),
        time_test(test_interval_init_rejects_zero_period_and_bad_policy),
        time_test(test_interval_poll_outside_runtime_is_einval),
        time_test(test_timeout_returns_inner_result_when_ready_first),
        time_test(test_timeout_times_out_exactly_at_deadline),
        time_test(test_timeout_inner_ready_at_deadline_wins),
        time_test(test_timeout_drop_unlinks_and_leaves_inner_alone),
        time_test(test_sleep_ready_takes_coop_budget),
        time_test(test_timeout_fires_when_inner_spends_last_budget),
        time_test(test_time_poll_and_fire_allocate_nothing),
        support_test(test_runtime_paused_sleep_fires_after_advance),
        support_test(test_runtime_paused_idle_auto_advances_to_sleep_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
