# CMake toolchain file: cross-compiles for 64-bit Windows with mingw-w64 (make windows,
# make test-windows). Debian 12: gcc-mingw-w64-x86-64-posix. The library itself uses native
# Win32 threads (src/platform/thread_win.c); the "posix" flavour of the compiler is chosen
# only because its C runtime start-up supports C11 _Thread_local everywhere we need it.
#
# Input (cache variable, forwarded to try_compile projects):
#   ASYNCIO_MINGW_SYSROOT  extra prefix searched for libraries and headers (cmocka built for
#                          mingw by cmake/fetch-cmocka-cross.sh); optional.
set(CMAKE_TRY_COMPILE_PLATFORM_VARIABLES ASYNCIO_MINGW_SYSROOT)
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(ASYNCIO_MINGW_TRIPLE x86_64-w64-mingw32)
find_program(ASYNCIO_MINGW_CC NAMES ${ASYNCIO_MINGW_TRIPLE}-gcc-posix ${ASYNCIO_MINGW_TRIPLE}-gcc
    REQUIRED)
set(CMAKE_C_COMPILER ${ASYNCIO_MINGW_CC})
find_program(ASYNCIO_MINGW_CXX NAMES ${ASYNCIO_MINGW_TRIPLE}-g++-posix ${ASYNCIO_MINGW_TRIPLE}-g++)
if(ASYNCIO_MINGW_CXX)
    set(CMAKE_CXX_COMPILER ${ASYNCIO_MINGW_CXX})
endif()
set(CMAKE_RC_COMPILER ${ASYNCIO_MINGW_TRIPLE}-windres)

set(CMAKE_FIND_ROOT_PATH /usr/${ASYNCIO_MINGW_TRIPLE} ${ASYNCIO_MINGW_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The test programs run under wine (make test-windows); ctest starts them through it.
find_program(ASYNCIO_WINE NAMES wine64 wine)
if(ASYNCIO_WINE)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${ASYNCIO_WINE})
endif()

# pkg-config must not hand the build this machine's Linux cmocka.
set(ENV{PKG_CONFIG_LIBDIR} "${ASYNCIO_MINGW_SYSROOT}/lib/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# Self-contained binaries: no libgcc_s / libwinpthread DLL to ship next to them (the library
# itself uses no pthreads; the tests do, through winpthreads).
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static-libgcc")
