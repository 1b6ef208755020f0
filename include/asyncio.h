/*
 * libasyncio umbrella header: includes every public module.
 * See docs/architecture.md for the layers and README.md for the status of
 * each module.
 */
#ifndef ASYNCIO_H
#define ASYNCIO_H

#include "asyncio/common.h"
#include "asyncio/error.h"
#include "asyncio/alloc.h"
#include "asyncio/poll.h"
#include "asyncio/task.h"
#include "asyncio/future.h"
#include "asyncio/await.h"
#include "asyncio/join_set.h"
#include "asyncio/cancel.h"
#include "asyncio/adapt.h"
#include "asyncio/runtime.h"
#include "asyncio/time.h"
#include "asyncio/async_fd.h"
#include "asyncio/blocking.h"
#include "asyncio/signal.h"
#include "asyncio/io.h"
#include "asyncio/io_util.h"
#include "asyncio/bufio.h"
#include "asyncio/sync.h"
#include "asyncio/channel.h"
#include "asyncio/net.h"
#include "asyncio/udp.h"
#include "asyncio/unix.h"
#include "asyncio/fs.h"
#include "asyncio/watch.h"
#include "asyncio/retry.h"
#include "asyncio/rwlock.h"
#include "asyncio/barrier.h"
#include "asyncio/once_cell.h"
#include "asyncio/broadcast.h"
#include "asyncio/watch_channel.h"
#include "asyncio/process.h"

#endif
