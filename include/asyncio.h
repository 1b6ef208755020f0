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
#include "asyncio/runtime.h"
#include "asyncio/time.h"
#include "asyncio/async_fd.h"
#include "asyncio/blocking.h"
#include "asyncio/signal.h"

#endif
