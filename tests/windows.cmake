# The suites that run on Windows (make test-windows: cross-built with mingw-w64, run by ctest
# under wine through CMAKE_CROSSCOMPILING_EMULATOR). Included by tests/CMakeLists.txt instead
# of the Linux matrix. Every suite runs on the IOCP backend, on the current-thread runtime
# and, where RUNTIMES says so, on the multi-thread one (mt1, mt4). docs/platforms.md lists
# the suites that do not run here and why.
function(asyncio_add_windows_suite name)
    cmake_parse_arguments(S "" "TIMEOUT" "RUNTIMES;SKIP" ${ARGN})
    string(REPLACE ";" "," skip "${S_SKIP}")
    if(NOT S_TIMEOUT)
        set(S_TIMEOUT 120)
    endif()
    add_executable(test_${name} test_${name}.c)
    target_link_libraries(test_${name} PRIVATE asyncio_test_support)
    asyncio_test_compat(test_${name})
    add_test(NAME ${name}.iocp COMMAND test_${name})
    set_tests_properties(${name}.iocp PROPERTIES TIMEOUT ${S_TIMEOUT}
        ENVIRONMENT "ASYNCIO_BACKEND=iocp;ASYNCIO_TEST_SCALE=${ASYNCIO_TEST_SCALE};ASYNCIO_TEST_SKIP=${skip}")
    foreach(rt ${S_RUNTIMES})
        add_test(NAME ${name}.${rt}.iocp COMMAND test_${name})
        set_tests_properties(${name}.${rt}.iocp PROPERTIES TIMEOUT ${S_TIMEOUT}
            ENVIRONMENT "ASYNCIO_BACKEND=iocp;ASYNCIO_TEST_RUNTIME=${rt};ASYNCIO_TEST_SCALE=${ASYNCIO_TEST_SCALE};ASYNCIO_TEST_SKIP=${skip}")
    endforeach()
endfunction()

asyncio_add_windows_suite(error)
# Skipped poll tests, and why:
#   backend_selected_by_name, backend_environment_variable_is_respected: they name the
#     Linux backends ("epoll", "poll") as the defaults; on Windows the only one is "iocp".
#   edge_partial_read_does_not_refire: expects a drained edge source to re-arm without
#     asyncio_poller_rearm_fd (the poll(2) backend's zero-timeout probe); IOCP needs rearm.
#   reregister_changes_token_and_interest: waits with timeout 0 right after reregister; under
#     wine the AFD poll completes through wineserver a moment later (docs/backends.md).
#   read_closed_with_full_send_buffer_then_writable, close_while_registered_then_wait_is_safe:
#     fail under wine and are not fixed yet (the second is a socket closed while registered
#     and its number reused before the backend saw AFD_POLL_LOCAL_CLOSE: -EEXIST).
asyncio_add_windows_suite(poll SKIP test_poll_backend_selected_by_name
    test_poll_backend_environment_variable_is_respected test_poll_edge_partial_read_does_not_refire
    test_poll_reregister_changes_token_and_interest
    test_poll_read_closed_with_full_send_buffer_then_writable
    test_poll_close_while_registered_then_wait_is_safe)
asyncio_add_windows_suite(user_source)
asyncio_add_windows_suite(task_state)
asyncio_add_windows_suite(wheel)
asyncio_add_windows_suite(runtime RUNTIMES mt1 mt4)
asyncio_add_windows_suite(time RUNTIMES mt1 mt4)
asyncio_add_windows_suite(sync RUNTIMES mt1 mt4)
# channel: not run yet: its stress tests time out (120 s) under wine; not investigated.
# tcp: 7 of 20 tests pass under wine; built (test_tcp.exe), not run until fixed.
# udp: 2 of 11 tests pass under wine; built (test_udp.exe), not run until fixed.
asyncio_add_windows_suite(bufio)
# io_util: 18 of 25 tests pass under wine; built (test_io_util.exe), not run until fixed.
asyncio_add_windows_suite(retry RUNTIMES mt1 mt4)
