/* Downstream smoke test: create a poller, wake it, see the wake. */
#include <asyncio.h>
#include <stdio.h>

int main(void)
{
    asyncio_poller *p;
    asyncio_poller_waker *w;
    asyncio_event ev[4];
    size_t n = 0;
    int rc = asyncio_poller_new(&p);
    if (rc == 0)
        rc = asyncio_poller_waker_new(p, 42, &w);
    if (rc == 0)
        rc = asyncio_poller_waker_wake(w);
    if (rc == 0)
        rc = asyncio_poller_wait(p, ev, 4, 1000, &n);
    if (rc != 0 || n != 1 || ev[0].token != 42) {
        fprintf(stderr, "downstream: %s (n=%zu)\n", asyncio_strerror(rc), n);
        return 1;
    }
    printf("downstream ok: backend %s, version %06x\n", asyncio_poller_backend(p),
           asyncio_version());
    asyncio_poller_waker_free(w);
    asyncio_poller_free(p);
    return 0;
}
