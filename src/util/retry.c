/*
 * asyncio_retry: run an operation, and after a retryable failure wait
 * (asyncio_sleep on the runtime's timers) and run it again.
 *
 * States (asyncio_retry.state):
 *   RETRY_INVALID   init failed: polls return `result` (EINVAL).
 *   RETRY_ATTEMPT   polling attempt number `attempts` of the operation.
 *   RETRY_WAITING   the attempt failed with a retryable error: `sleep` runs
 *                   the delay; then reset() and the next attempt.
 *   RETRY_DONE      finished with `result`.
 *
 * The classification table is the public contract (retry.h); the delay is
 * a pure function of the policy, the retry number and one random value, so
 * tests check schedules without running anything.
 */
#include "asyncio/retry.h"

#include <string.h>

#include "internal.h"

enum {
    RETRY_INVALID = 0,
    RETRY_ATTEMPT,
    RETRY_WAITING,
    RETRY_DONE,
};

#define DEFAULT_BASE_MS       100
#define DEFAULT_FACTOR        2.0
#define DEFAULT_CAP_MS        30000
#define DEFAULT_MAX_ATTEMPTS  5
#define DEFAULT_EXHAUSTION_MS 1000

asyncio_error_class asyncio_error_classify(int err)
{
    if (err >= 0)
        return ASYNCIO_ERROR_CLASS_NONE;
    switch (err) {
    case ASYNCIO_EINTR:
    case ASYNCIO_EAGAIN:
    case ASYNCIO_ETIMEDOUT:
    case ASYNCIO_ECONNREFUSED:
    case ASYNCIO_ECONNRESET:
    case ASYNCIO_ECONNABORTED:
    case ASYNCIO_EPIPE:
    case ASYNCIO_ENETUNREACH:
    case ASYNCIO_EHOSTUNREACH:
    case ASYNCIO_ENETDOWN:
    case ASYNCIO_ENETRESET:
    case ASYNCIO_EHOSTDOWN:
    case ASYNCIO_EBUSY:
    case ASYNCIO_ETXTBSY:
    case ASYNCIO_EADDRINUSE:
    case ASYNCIO_EADDRNOTAVAIL:
    case ASYNCIO_EINPROGRESS:
    case ASYNCIO_EALREADY:
    case ASYNCIO_EUNEXPECTED_EOF:
        return ASYNCIO_ERROR_CLASS_TRANSIENT;
    case ASYNCIO_EMFILE:
    case ASYNCIO_ENFILE:
    case ASYNCIO_ENOBUFS:
    case ASYNCIO_ENOMEM:
        return ASYNCIO_ERROR_CLASS_EXHAUSTION;
    default:
        return ASYNCIO_ERROR_CLASS_FATAL;
    }
}

const char *asyncio_error_class_name(asyncio_error_class c)
{
    switch (c) {
    case ASYNCIO_ERROR_CLASS_TRANSIENT:
        return "transient";
    case ASYNCIO_ERROR_CLASS_EXHAUSTION:
        return "exhaustion";
    case ASYNCIO_ERROR_CLASS_FATAL:
        return "fatal";
    default:
        return "none";
    }
}

/* The policy with its zero fields replaced by the defaults. */
static asyncio_backoff with_defaults(const asyncio_backoff *p)
{
    asyncio_backoff b = {0};
    if (p != NULL)
        b = *p;
    if (b.base_ms == 0)
        b.base_ms = DEFAULT_BASE_MS;
    if (b.factor == 0.0)
        b.factor = DEFAULT_FACTOR;
    if (b.cap_ms == 0)
        b.cap_ms = DEFAULT_CAP_MS;
    if (b.max_attempts == 0)
        b.max_attempts = DEFAULT_MAX_ATTEMPTS;
    if (b.exhaustion_min_ms == 0)
        b.exhaustion_min_ms = DEFAULT_EXHAUSTION_MS;
    return b;
}

static bool policy_valid(const asyncio_backoff *b)
{
    /* Written so that NaN fails every comparison and is refused. */
    return b->factor >= 1.0 && b->jitter >= 0.0 && b->jitter <= 1.0;
}

/* min(cap, base * factor^(retry-1)), saturating at the cap. */
static uint64_t exponential(const asyncio_backoff *b, uint32_t retry)
{
    double d = (double)b->base_ms;
    for (uint32_t k = 1; k < retry && d < (double)b->cap_ms; k++)
        d *= b->factor;
    return d >= (double)b->cap_ms ? b->cap_ms : (uint64_t)d;
}

uint64_t asyncio_backoff_delay(const asyncio_backoff *policy, uint32_t retry, uint64_t random_value)
{
    asyncio_backoff b = with_defaults(policy);
    if (retry == 0 || !policy_valid(&b))
        return 0;
    uint64_t d = exponential(&b, retry);
    /* u in [0, 1): the top 53 bits of the random value (exact in a double). */
    double u = (double)(random_value >> 11) * (1.0 / 9007199254740992.0);
    uint64_t cut = (uint64_t)((double)d * b.jitter * u); /* truncation: floor of a non-negative */
    return cut < d ? d - cut : (d > 0 ? 1 : 0);          /* full jitter never reaches 0 for d > 0 */
}

/* xorshift64*: the default jitter source (statistical quality is plenty here). */
static uint64_t next_random(asyncio_retry *r)
{
    if (r->policy.random != NULL)
        return r->policy.random(r->policy.ctx);
    uint64_t x = r->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

int asyncio_retry_init(asyncio_retry *r, const asyncio_backoff *policy, asyncio_future_poll_fn poll,
                       asyncio_retry_reset_fn reset, void *op)
{
    if (r == NULL)
        return ASYNCIO_EINVAL;
    memset(r, 0, sizeof *r);
    asyncio_sleep_init(&r->sleep, 0);
    r->policy = with_defaults(policy);
    r->poll = poll;
    r->reset = reset;
    r->op = op;
    /* Any non-zero seed; the struct's address differs between concurrent retries. */
    r->rng = ((uint64_t)(uintptr_t)r ^ 0x9E3779B97F4A7C15ULL) | 1u;
    if (poll == NULL || !policy_valid(&r->policy)) {
        r->state = RETRY_INVALID;
        r->result = ASYNCIO_EINVAL;
        return ASYNCIO_EINVAL;
    }
    r->state = RETRY_ATTEMPT;
    r->attempts = 1;
    return 0;
}

static asyncio_error_class classify(const asyncio_retry *r, int err)
{
    if (r->policy.classify != NULL)
        return r->policy.classify(r->policy.ctx, err);
    return asyncio_error_classify(err);
}

/* An attempt failed with err: DONE, or WAITING with the delay armed. */
static void attempt_failed(asyncio_retry *r, int err)
{
    r->last_error = err;
    asyncio_error_class c = classify(r, err);
    bool retryable = c == ASYNCIO_ERROR_CLASS_TRANSIENT ||
                     (c == ASYNCIO_ERROR_CLASS_EXHAUSTION && !r->policy.fail_on_exhaustion);
    if (!retryable || r->attempts >= r->policy.max_attempts) {
        r->state = RETRY_DONE;
        r->result = err;
        return;
    }
    uint64_t d = asyncio_backoff_delay(&r->policy, r->attempts, next_random(r));
    if (c == ASYNCIO_ERROR_CLASS_EXHAUSTION && d < r->policy.exhaustion_min_ms)
        d = r->policy.exhaustion_min_ms;
    r->last_delay_ms = d;
    r->total_delay_ms += d;
    asyncio_sleep_drop(&r->sleep);
    asyncio_sleep_init(&r->sleep, d);
    r->state = RETRY_WAITING;
}

/* One step: 0 to go round again, or what poll returns. */
static int retry_step(asyncio_retry *r, asyncio_context *cx)
{
    int rc;
    switch (r->state) {
    case RETRY_ATTEMPT:
        rc = r->poll(r->op, cx);
        if (rc == ASYNCIO_PENDING)
            return rc;
        if (rc == 0) {
            r->state = RETRY_DONE;
            r->result = 0;
            return 0;
        }
        attempt_failed(r, rc);
        return 0;
    case RETRY_WAITING:
        rc = asyncio_sleep_poll(&r->sleep, cx);
        if (rc != 0)
            return rc; /* PENDING, or EINVAL outside a runtime (state kept) */
        r->attempts++;
        rc = r->reset != NULL ? r->reset(r->op, r->attempts) : 0;
        r->state = rc == 0 ? RETRY_ATTEMPT : RETRY_DONE;
        r->result = rc;
        return 0;
    default: /* DONE, INVALID */
        return r->result;
    }
}

int asyncio_retry_poll(asyncio_retry *r, asyncio_context *cx)
{
    if (r == NULL || cx == NULL)
        return ASYNCIO_EINVAL;
    for (;;) {
        int rc = retry_step(r, cx);
        if (rc != 0)
            return rc;
        if (r->state == RETRY_DONE)
            return r->result;
    }
}

int asyncio_retry_poll_fn(void *r, asyncio_context *cx)
{
    return asyncio_retry_poll(r, cx);
}

void asyncio_retry_drop(asyncio_retry *r)
{
    if (r == NULL)
        return;
    asyncio_sleep_drop(&r->sleep);
    asyncio_sleep_init(&r->sleep, 0); /* dropping again is harmless */
    if (r->state == RETRY_ATTEMPT || r->state == RETRY_WAITING) {
        r->state = RETRY_DONE;
        r->result = ASYNCIO_ECANCELED;
    }
}
