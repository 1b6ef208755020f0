/*
 * A pipe whose two ends are non-blocking and close-on-exec: pipe2(2) on Linux
 * (pipe_linux.c), pipe(2) + fcntl(2) where pipe2 is missing (pipe_posix.c:
 * macOS; a fork between the two calls may inherit the fds, as with libuv's
 * fallback). CMake picks the file.
 */
#ifndef ASYNCIO_PLATFORM_PIPE_H
#define ASYNCIO_PLATFORM_PIPE_H

/** Fills fds[0] (read end) and fds[1] (write end). 0 or a negative errno (EMFILE, ENFILE). */
int asyncio__pipe_open(int fds[2]);

#endif
