# The suites that run on Windows (make test-windows: cross-built with mingw-w64, run by ctest
# under wine through CMAKE_CROSSCOMPILING_EMULATOR). Included by tests/CMakeLists.txt instead
# of the Linux matrix. Every suite runs on the IOCP backend, on the current-thread runtime
# and, where RUNTIMES says so, on the multi-thread one (mt1, mt4). docs/platforms.md lists
# the suites that do not run here and why.
function(asyncio_add_windows_suite name)
    cmake_parse_arguments(S "" "TIMEOUT" "RUNTIMES" ${ARGN})
    if(NOT S_TIMEOUT)
        set(S_TIMEOUT 120)
    endif()
    add_executable(test_${name} test_${name}.c)
    target_link_libraries(test_${name} PRIVATE asyncio_test_support)
    asyncio_test_compat(test_${name})
    add_test(NAME ${name}.iocp COMMAND test_${name})
    set_tests_properties(${name}.iocp PROPERTIES TIMEOUT ${S_TIMEOUT}
        ENVIRONMENT "ASYNCIO_BACKEND=iocp;ASYNCIO_TEST_SCALE=${ASYNCIO_TEST_SCALE}")
    foreach(rt ${S_RUNTIMES})
        add_test(NAME ${name}.${rt}.iocp COMMAND test_${name})
        set_tests_properties(${name}.${rt}.iocp PROPERTIES TIMEOUT ${S_TIMEOUT}
            ENVIRONMENT "ASYNCIO_BACKEND=iocp;ASYNCIO_TEST_RUNTIME=${rt};ASYNCIO_TEST_SCALE=${ASYNCIO_TEST_SCALE}")
    endforeach()
endfunction()

set(ASYNCIO_WINDOWS_SUITES "" CACHE INTERNAL "")
asyncio_add_windows_suite(error)
asyncio_add_windows_suite(poll)
asyncio_add_windows_suite(user_source)
asyncio_add_windows_suite(task_state)
asyncio_add_windows_suite(wheel)
asyncio_add_windows_suite(runtime RUNTIMES mt1 mt4)
asyncio_add_windows_suite(time RUNTIMES mt1 mt4)
asyncio_add_windows_suite(sync RUNTIMES mt1 mt4)
asyncio_add_windows_suite(channel RUNTIMES mt1 mt4)
asyncio_add_windows_suite(tcp RUNTIMES mt1 mt4)
asyncio_add_windows_suite(udp RUNTIMES mt1 mt4)
asyncio_add_windows_suite(bufio)
asyncio_add_windows_suite(io_util RUNTIMES mt1 mt4)
asyncio_add_windows_suite(retry RUNTIMES mt1 mt4)
