# The suites that run on Windows (make test-windows: cross-built with mingw-w64, run by ctest
# under wine through CMAKE_CROSSCOMPILING_EMULATOR). Included by tests/CMakeLists.txt instead
# of the Linux matrix. Every suite runs on the IOCP backend, on the current-thread runtime
# and, where RUNTIMES says so, on the multi-thread one (mt1, mt4). docs/platforms.md lists
# the suites that do not run here and why.
# Stress tests scale down as under the sanitizers (tests/support: support_scale): wine routes
# every cross-thread wake-up through wineserver, so full-size stress runs take minutes.
set(ASYNCIO_TEST_SCALE 10)

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
# Windows only: the gaps of the port answer with their documented codes.
asyncio_add_windows_suite(windows_gaps)
# Skipped poll tests: backend_selected_by_name and backend_environment_variable_is_respected
# name the Linux backends ("epoll", "poll") as the defaults; on Windows the only one is "iocp".
asyncio_add_windows_suite(poll SKIP test_poll_backend_selected_by_name
    test_poll_backend_environment_variable_is_respected)
asyncio_add_windows_suite(user_source)
asyncio_add_windows_suite(task_state)
asyncio_add_windows_suite(wheel)
asyncio_add_windows_suite(runtime RUNTIMES mt1 mt4)
asyncio_add_windows_suite(time RUNTIMES mt1 mt4)
asyncio_add_windows_suite(sync RUNTIMES mt1 mt4)
asyncio_add_windows_suite(channel RUNTIMES mt1 mt4)
# Skipped io test: write_to_closed_peer expects Linux's EPIPE where Winsock says
# WSAECONNRESET (ASYNCIO_ECONNRESET; net.h allows either) for sockets and for the tests'
# pipes, which are loopback TCP pairs here.
asyncio_add_windows_suite(io SKIP test_async_fd_write_to_closed_peer_errors_without_sigpipe)
asyncio_add_windows_suite(runtime_lifetime RUNTIMES mt1 mt4)
asyncio_add_windows_suite(blocking RUNTIMES mt1 mt4)
asyncio_add_windows_suite(mt)
asyncio_add_windows_suite(mt_idle)
asyncio_add_windows_suite(queue)
# move: its signal future listens for ASYNCIO_TEST_CATCHABLE_SIGNAL, SIGTERM here (the shim).
asyncio_add_windows_suite(move RUNTIMES mt1 mt4)
# Skipped addr test: parse_unix_paths parses "@abstract", a Linux-only abstract socket name
# (-ENOTSUP elsewhere, as documented in net.h).
asyncio_add_windows_suite(addr SKIP test_addr_parse_unix_paths)
# Skipped tcp tests: accept_emfile_backs_off_and_recovers needs RLIMIT_NOFILE (Windows has
# no descriptor limit to lower); the two *_takes_splice_path tests count splice(2) bytes,
# which is Linux-only (asyncio_copy takes its buffered path on Windows).
asyncio_add_windows_suite(tcp RUNTIMES mt1 mt4 SKIP test_tcp_accept_emfile_backs_off_and_recovers
    test_tcp_copy_between_streams_takes_splice_path
    test_tcp_copy_between_split_halves_takes_splice_path)
# Skipped udp test: error_paths waits for the ECONNREFUSED of a datagram sent to a closed
# port; wine 8 never surfaces the refusal (a probe program: an AFD poll for receive / abort
# does not complete within 2 s and recv says WSAEWOULDBLOCK), so the test hangs. On real
# Windows it arrives as WSAECONNRESET (mapped to ASYNCIO_ECONNREFUSED); not run here.
asyncio_add_windows_suite(udp RUNTIMES mt1 mt4 SKIP test_udp_error_paths)
asyncio_add_windows_suite(bufio)
# Skipped io_util tests: the *_splice_path / *_sendfile_path / spliced / splice_pipe ones
# check the Linux zero-copy path (splice(2), sendfile(2)), which Windows does not have
# (asyncio_copy takes its buffered path); copy_to_closed_peer expects Linux's EPIPE where
# Winsock says WSAECONNRESET (net.h allows either: ASYNCIO_ECONNRESET here).
asyncio_add_windows_suite(io_util RUNTIMES mt1 mt4 SKIP test_copy_socket_to_socket_takes_splice_path
    test_copy_pipe_to_socket_takes_splice_path test_copy_socket_to_pipe_takes_splice_path
    test_copy_file_to_socket_takes_sendfile_path
    test_copy_to_closed_peer_returns_error_without_sigpipe
    test_copy_bidirectional_spliced_propagates_half_close
    test_copy_waiting_for_its_reader_holds_no_splice_pipe)
asyncio_add_windows_suite(retry RUNTIMES mt1 mt4)
# Skipped fs tests: of_a_file_without_a_size reads /proc/self/maps (procfs, Linux only);
# copy_from_a_file_to_a_socket_uses_sendfile checks the sendfile(2) path, which Windows does
# not have (TransmitFile is not used: asyncio_copy takes its buffered path);
# without_following_links_reports_a_symlink needs a symbolic link, and wine 8's
# CreateSymbolicLink is a stub that makes none (on Windows it also needs a privilege or
# developer mode). The library's lstat side (FILE_FLAG_OPEN_REPARSE_POINT + the reparse
# tag) is therefore not run here.
asyncio_add_windows_suite(fs RUNTIMES mt1 mt4
    SKIP test_fs_read_file_of_a_file_without_a_size_is_bounded_by_the_bytes_read
    test_fs_copy_from_a_file_to_a_socket_uses_sendfile
    test_fs_metadata_without_following_links_reports_a_symlink)

# The README sample runs under wine too; its 30 s budget assumes a native start.
set_tests_properties(readme_sample PROPERTIES TIMEOUT 120)

# The HTTP example's parser (regression inputs from http_regress/): plain C, no sockets. Not
# built: test_http_static (examples/http/static_files.c walks paths with openat / O_NOFOLLOW /
# O_DIRECTORY, POSIX only, which is also why http_server is not built here) and the
# conformance suite test_http_server (it starts http_server as a child process and signals it).
add_executable(test_http_parser test_http_parser.c ${PROJECT_SOURCE_DIR}/examples/http/parser.c)
asyncio_test_compat(test_http_parser)
target_include_directories(test_http_parser PRIVATE ${CMOCKA_INCLUDE_DIRS}
    ${PROJECT_SOURCE_DIR}/examples/http)
target_link_libraries(test_http_parser PRIVATE asyncio_static ${CMOCKA_LIBRARIES})
target_compile_options(test_http_parser PRIVATE ${ASYNCIO_WARNINGS})
target_compile_definitions(test_http_parser PRIVATE _GNU_SOURCE
    HTTP_REGRESS_DIR="${CMAKE_CURRENT_SOURCE_DIR}/http_regress")
add_test(NAME http_parser COMMAND test_http_parser)
set_tests_properties(http_parser PROPERTIES TIMEOUT 120)
