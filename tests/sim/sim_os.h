/*
 * The simulated OS (issue 18, simulation mode; docs/testing.md,
 * "Simulation"). sim_os_install() points the library's OS-call table
 * (src/platform/os_table.h) at an in-memory world:
 *
 *   - virtual fds (from SIM_FD_BASE up): sockets, epoll instances, eventfds;
 *   - TCP-like streams between simulated hosts (10.0.0.x): ordered bytes
 *     with seeded per-segment latency, a bounded receive buffer (writers
 *     see short writes and EAGAIN, then an EPOLLOUT edge when the reader
 *     drains), FIN, RST (reads see ECONNRESET, writes EPIPE), refused
 *     connects, seeded short reads and writes, and partitions that hold a
 *     host pair's segments until they heal (as retransmission would);
 *   - UDP datagrams with seeded latency (so reordering), loss, and loss
 *     during partitions;
 *   - epoll: edge, level and oneshot registrations; a wait never blocks:
 *     with nothing ready it advances the virtual clock to the next segment
 *     arrival or the wait's timeout, whichever is first;
 *   - CLOCK_MONOTONIC is the virtual clock (the runtime's timers use it);
 *   - the current-thread scheduler picks the next ready task at random
 *     (asyncio__ct_pick_hook).
 * Everything is drawn from one seeded PRNG, so a seed replays exactly.
 * Single-threaded: only the current-thread runtime, on the epoll backend.
 */
#ifndef ASYNCIO_SIM_OS_H
#define ASYNCIO_SIM_OS_H

#include <stdbool.h>
#include <stdint.h>

#define SIM_FD_BASE 1000

typedef struct sim_options {
    uint64_t seed;
    unsigned max_latency_ms;  /* per segment / datagram: 0..max (default 5) */
    unsigned short_pct;       /* reads and writes moving fewer bytes than they could */
    unsigned udp_loss_pct;    /* datagrams dropped */
    unsigned reset_pct;       /* per connection: an RST at a random moment */
    unsigned partition_pct;   /* per host pair: one partition of 10..500 ms */
    unsigned rcvbuf;          /* receive buffer per direction (bytes, default 4096) */
} sim_options;

/** Resets the world and installs the simulated table; the virtual clock starts at 1 s. */
void sim_os_install(const sim_options *o);

/** Restores libc; frees the world. Every virtual fd must be closed (returns how many are not). */
int sim_os_uninstall(void);

/** Virtual time in ms since install. */
uint64_t sim_now_ms(void);

/** A seeded number in [0, n) from the simulation's PRNG (for scenarios). */
uint64_t sim_rand(uint64_t n);

/** True when the simulation found the world stuck (a wait with no timeout and nothing ahead). */
bool sim_stalled(void);

#endif
