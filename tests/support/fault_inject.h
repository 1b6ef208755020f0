/*
 * The fault injector (issue 18; docs/testing.md, "Fault plans"). It replaces
 * the library's OS-call table (src/platform/os_table.h) with wrappers that
 * call the real functions but, driven by one seeded PRNG and a fault plan,
 * sometimes answer the way a loaded kernel may:
 *
 *   invisible and transparent faults (a correct program behaves exactly as
 *   without them; see the classes below):
 *     eintr   EINTR from read/recv/send/sendmsg/sendto/recvmsg/write/accept4,
 *             epoll_wait/poll (nothing done) and close (the fd is closed:
 *             Linux); not connect: a non-blocking connect never sleeps;
 *     eagain  EAGAIN from a non-blocking socket transfer or accept4 although
 *             it could proceed; as if the data arrived just after the call,
 *             the fd then reports a fresh readiness edge (for epoll a
 *             synthetic event on the next wait; poll re-arms by itself);
 *     short   a stream-socket read or write that moves 1..n bytes of n;
 *     wake    a spurious readiness event (epoll) or revents bit (poll) for
 *             a registered fd with no data behind it;
 *   hostile faults (the program sees an error and must handle it):
 *     reset   ECONNRESET from a stream-socket recv/read, EPIPE from a
 *             send/write; the socket is really shut down (the peer sees EOF;
 *             later calls see EOF / EPIPE from the kernel);
 *     emfile  EMFILE or ENFILE from socket/accept4 (nothing created);
 *     clock   CLOCK_MONOTONIC jumps forward by 1..jump_ms ms.
 *
 * A plan is the percentage for each fault (0: off), derived from the seed by
 * fault_plan_from_seed; fault_plan_format prints it ("seed=7 eintr=12% ...").
 * Every injection is recorded in a ring of the last 64 (call, fd, fault),
 * printed by fault_inject_dump. Thread-safe: one mutex guards the PRNG and
 * the bookkeeping, never held across a blocking call. The current-thread
 * runtime on loopback makes almost the same calls every run, so a seed
 * usually replays the same injections (the kernel's timing still varies;
 * tests/sim replays exactly).
 */
#ifndef ASYNCIO_TEST_FAULT_INJECT_H
#define ASYNCIO_TEST_FAULT_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct fault_plan {
    uint64_t seed;
    unsigned eintr, eagain, short_io, wake; /* transparent, percent per eligible call */
    unsigned reset, emfile, clock;          /* hostile, percent per eligible call */
    unsigned jump_ms;                       /* largest clock jump */
} fault_plan;

/**
 * Which fault classes fault_plan_from_seed may switch on: INVISIBLE (eintr,
 * wake: a caller of any library function cannot tell, not even from the
 * result of one poll), TRANSPARENT (eagain, short: a poll may return PENDING
 * where it would have completed, but every operation still completes with
 * the same result), HOSTILE (reset, emfile, clock).
 */
enum { FAULT_INVISIBLE = 1, FAULT_TRANSPARENT = 2, FAULT_HOSTILE = 4, FAULT_ALL = 7 };

/** A plan from a seed: each fault of the allowed classes on (1..25%) or off. */
fault_plan fault_plan_from_seed(uint64_t seed, unsigned classes);

/** "seed=N eintr=P% ..." into buf (always terminated). */
void fault_plan_format(const fault_plan *p, char *buf, size_t len);

/** Swaps the wrappers into asyncio__os; resets the ring and the PRNG to p->seed. */
void fault_inject_install(const fault_plan *p);

/** Restores the libc table if the injector is installed (else nothing). Call only while no
 * thread uses the library (after asyncio_runtime_free). */
void fault_inject_uninstall(void);

/** Injections since install. */
uint64_t fault_inject_count(void);

/** Hostile injections (reset, EMFILE / ENFILE, clock jump) since install. */
uint64_t fault_inject_hostile_count(void);

/** Prints the plan and the last injections (the ring) to f. */
void fault_inject_dump(FILE *f);

/**
 * ASYNCIO_FAULT_PLAN="eagain=20 short=0 ..." overrides fields of *p (names as
 * fault_plan_format prints them, plus jump=ms; commas or spaces between):
 * narrows a failing seed's plan down to the fault that matters.
 */
void fault_plan_override_from_env(fault_plan *p);

/**
 * ASYNCIO_FAULT_SEED from the environment: true and *seed if set (decimal or
 * 0x hex), false otherwise.
 */
bool fault_seed_from_env(uint64_t *seed);

#endif
