# CMake toolchain file: cross-compiles with `zig cc` (make check-macos, .ci/check-macos).
#
# Inputs (cache variables, forwarded to try_compile projects):
#   ASYNCIO_ZIG_TARGET  zig target triple: aarch64-macos, x86_64-macos (x86_64-freebsd is not
#                       supported by zig 0.11: docs/backends.md)
#   ASYNCIO_ZIG_BIN     directory with the wrapper scripts .ci/check-macos writes:
#                       zcc-<target>, zcxx-<target>, zar, zranlib, zinstall_name_tool (stub)
#                       (CMake wants one program
#                       per tool, `zig cc -target X` is a command line)
# The output is real Mach-O objects, libraries and executables; they cannot run on Linux.
set(CMAKE_TRY_COMPILE_PLATFORM_VARIABLES ASYNCIO_ZIG_TARGET ASYNCIO_ZIG_BIN)
if(NOT ASYNCIO_ZIG_TARGET OR NOT ASYNCIO_ZIG_BIN)
    message(FATAL_ERROR "zig-cross.cmake needs -DASYNCIO_ZIG_TARGET=... -DASYNCIO_ZIG_BIN=...")
endif()

string(REGEX MATCH "^[^-]+" asyncio_zig_arch "${ASYNCIO_ZIG_TARGET}")
if(ASYNCIO_ZIG_TARGET MATCHES "-macos")
    set(CMAKE_SYSTEM_NAME Darwin)
elseif(ASYNCIO_ZIG_TARGET MATCHES "-freebsd")
    set(CMAKE_SYSTEM_NAME FreeBSD)
else()
    message(FATAL_ERROR "zig-cross.cmake: unsupported target ${ASYNCIO_ZIG_TARGET}")
endif()
set(CMAKE_SYSTEM_PROCESSOR ${asyncio_zig_arch})

set(CMAKE_C_COMPILER ${ASYNCIO_ZIG_BIN}/zcc-${ASYNCIO_ZIG_TARGET})
set(CMAKE_CXX_COMPILER ${ASYNCIO_ZIG_BIN}/zcxx-${ASYNCIO_ZIG_TARGET})
set(CMAKE_AR ${ASYNCIO_ZIG_BIN}/zar CACHE FILEPATH "zig ar" FORCE)
set(CMAKE_RANLIB ${ASYNCIO_ZIG_BIN}/zranlib CACHE FILEPATH "zig ranlib" FORCE)
# Required by CMake on Darwin, used only by `cmake --install` (a stub that fails loudly).
set(CMAKE_INSTALL_NAME_TOOL ${ASYNCIO_ZIG_BIN}/zinstall_name_tool CACHE FILEPATH "" FORCE)

# Nothing of the Linux host may leak in: no host libraries or headers (cmocka is given
# explicitly as CMOCKA_INCLUDE_DIRS / CMOCKA_LIBRARIES, built for the target).
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
