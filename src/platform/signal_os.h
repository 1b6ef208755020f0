/*
 * OS side of signal listening: the process-wide self-pipe, the handler that
 * counts deliveries and writes to it, and installing / restoring
 * dispositions. Used by src/signal/signal.c; the only file that calls
 * sigaction.
 */
#ifndef ASYNCIO_PLATFORM_SIGNAL_OS_H
#define ASYNCIO_PLATFORM_SIGNAL_OS_H

#include <stdbool.h>
#include <stdint.h>

/* True for signals a listener may catch (not KILL/STOP or synchronous faults). */
bool asyncio__signal_catchable(int sig);

/* Creates the self-pipe once; returns its read end or a negative error. Thread-safe. */
int asyncio__signal_pipe(void);

/* Empties the self-pipe (any thread; spurious calls are harmless). */
void asyncio__signal_pipe_drain(void);

/* Installs the counting handler for sig, saving the previous disposition. */
int asyncio__signal_install(int sig);

/* Restores the disposition saved by asyncio__signal_install. */
void asyncio__signal_restore(int sig);

/* Deliveries of sig counted by the handler since the process started. */
uint64_t asyncio__signal_deliveries(int sig);

#endif
