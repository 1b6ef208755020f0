# CMake toolchain: static x86_64-linux-musl binaries with `zig cc` (`make test-musl`).
# ZIG_MUSL_DIR (cache variable or environment) is the directory cmake/fetch-zig-musl.sh
# filled: bin/ holds the compiler wrappers, sysroot/ the musl builds of third-party
# libraries (cmocka, from cmake/fetch-cmocka-musl.sh). The binaries run on any x86-64
# Linux kernel, so ctest runs them here.
if(NOT ZIG_MUSL_DIR)
    set(ZIG_MUSL_DIR "$ENV{ZIG_MUSL_DIR}")
endif()
if(NOT ZIG_MUSL_DIR OR NOT EXISTS "${ZIG_MUSL_DIR}/bin/musl-cc")
    message(FATAL_ERROR "zig-musl.cmake: set ZIG_MUSL_DIR to the directory of cmake/fetch-zig-musl.sh")
endif()
# try_compile projects re-read this file: hand them the directory.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES ZIG_MUSL_DIR)

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER "${ZIG_MUSL_DIR}/bin/musl-cc")
set(CMAKE_CXX_COMPILER "${ZIG_MUSL_DIR}/bin/musl-c++")
set(CMAKE_AR "${ZIG_MUSL_DIR}/bin/musl-ar" CACHE FILEPATH "zig ar")
set(CMAKE_RANLIB "${ZIG_MUSL_DIR}/bin/musl-ranlib" CACHE FILEPATH "zig ranlib")
# The results run on this machine: no emulator needed.
set(CMAKE_CROSSCOMPILING_EMULATOR "")

# Libraries and headers come from the musl sysroot only, never from the host's glibc
# packages (/usr/lib/x86_64-linux-gnu/libcmocka.so would link but not run).
set(CMAKE_FIND_ROOT_PATH "${ZIG_MUSL_DIR}/sysroot")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_FIND_LIBRARY_SUFFIXES .a)
# pkg-config likewise sees only the sysroot's .pc files. cmake/fetch-cmocka-musl.sh leaves
# none there, so tests/CMakeLists.txt finds cmocka by find_path / find_library (full path
# of libcmocka.a) rather than as a bare "-lcmocka" with no search directory.
set(ENV{PKG_CONFIG_LIBDIR} "${ZIG_MUSL_DIR}/sysroot/lib/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# Thread stacks as on a musl system. musl sizes a new thread's default stack from the
# program's PT_GNU_STACK header when that asks for more than its own 128 KiB (up to 8 MiB);
# zig's linker writes 16 MiB there, which would hide code that relies on glibc's 8 MiB
# default. musl-gcc and Alpine's gcc write no size: 128 KiB, as here.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,-z,stack-size=131072")
