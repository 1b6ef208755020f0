/*
 * Internals shared by src/fs/: making an asyncio_file out of an opened fd
 * (ops.c opens, file.c owns files).
 */
#ifndef ASYNCIO_FS_INT_H
#define ASYNCIO_FS_INT_H

#include "asyncio/fs.h"

/* Wraps an opened (blocking) fd; on success the file owns it. ASYNCIO_ENOMEM. */
int asyncio__file_from_fd(int fd, asyncio_file **out);

#endif
