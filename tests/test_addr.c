/*
 * Socket addresses: parse / format of "a.b.c.d:port", "[v6]:port" and Unix
 * paths, literal IPs, ports and equality. Pure functions: no runtime.
 */
#include <string.h>

#include "asyncio/net.h"
#include "support.h"

static void expect_round_trip(const char *text, int family, uint16_t port)
{
    asyncio_sockaddr a;
    assert_ok(asyncio_addr_parse(text, &a));
    assert_int_equal(asyncio_addr_family(&a), family);
    assert_int_equal(asyncio_addr_port(&a), port);
    char buf[ASYNCIO_ADDRSTRLEN];
    assert_ok(asyncio_addr_format(&a, buf, sizeof buf));
    assert_string_equal(buf, text);
    asyncio_sockaddr b;
    assert_ok(asyncio_addr_parse(buf, &b));
    assert_true(asyncio_addr_equal(&a, &b));
}

static void test_addr_parse_ipv4_host_port(void **state)
{
    (void)state;
    expect_round_trip("127.0.0.1:8080", AF_INET, 8080);
    expect_round_trip("0.0.0.0:0", AF_INET, 0);
    expect_round_trip("255.255.255.255:65535", AF_INET, 65535);
    asyncio_sockaddr a;
    assert_ok(asyncio_addr_parse("10.1.2.3:443", &a));
    assert_int_equal(a.len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohl(a.u.in4.sin_addr.s_addr), 0x0a010203);
}

static void test_addr_parse_ipv6_brackets_and_scope(void **state)
{
    (void)state;
    expect_round_trip("[::1]:80", AF_INET6, 80);
    expect_round_trip("[::]:0", AF_INET6, 0);
    expect_round_trip("[2001:db8::8:800:200c:417a]:65535", AF_INET6, 65535);
    expect_round_trip("[fe80::1%2]:22", AF_INET6, 22);
    expect_round_trip("[::ffff:1.2.3.4]:7", AF_INET6, 7);
    asyncio_sockaddr a;
    assert_ok(asyncio_addr_parse("[fe80::1%42]:1", &a));
    assert_int_equal(a.u.in6.sin6_scope_id, 42);
    assert_int_equal(a.len, sizeof(struct sockaddr_in6));
}

static void test_addr_parse_unix_paths(void **state)
{
    (void)state;
    expect_round_trip("/tmp/asyncio.sock", AF_UNIX, 0);
    expect_round_trip("./rel.sock", AF_UNIX, 0);
    expect_round_trip("../up.sock", AF_UNIX, 0);
    asyncio_sockaddr a;
    assert_ok(asyncio_addr_parse("/x", &a));
    assert_int_equal(a.len, offsetof(struct sockaddr_un, sun_path) + 3);
    /* Abstract: leading NUL, no terminator counted. */
    assert_ok(asyncio_addr_parse("@abstract", &a));
    assert_int_equal(a.u.un.sun_path[0], '\0');
    assert_int_equal(a.len, offsetof(struct sockaddr_un, sun_path) + 9);
    char buf[ASYNCIO_ADDRSTRLEN];
    assert_ok(asyncio_addr_format(&a, buf, sizeof buf));
    assert_string_equal(buf, "@abstract");
}

static void test_addr_parse_rejects_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "1.2.3.4",
        "1.2.3.4:",
        "1.2.3.4:65536",
        "1.2.3.4:-1",
        "1.2.3.4:+1",
        "1.2.3.4: 80",
        " 1.2.3.4:80",
        "1.2.3:80",
        "1.2.3.4.5:80",
        "256.1.1.1:1",
        "::1:80",
        "[::1]80",
        "[::1]:",
        "[::1",
        "[]:80",
        "[1.2.3.4]:80",
        "[::1%eth0]:80",
        "[::1%]:80",
        "localhost:80",
        ":80",
        "1.2.3.4:123456",
        "[::1]:8o",
        "a:b:c",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        asyncio_sockaddr a;
        memset(&a, 0x5a, sizeof a);
        int rc = asyncio_addr_parse(bad[i], &a);
        if (rc != ASYNCIO_EINVAL)
            fail_msg("\"%s\" parsed (rc %d)", bad[i], rc);
        assert_int_equal(((unsigned char *)&a)[0], 0x5a); /* untouched */
    }
    asyncio_sockaddr a;
    assert_err(asyncio_addr_parse(NULL, &a), ASYNCIO_EINVAL);
    assert_err(asyncio_addr_parse("1.2.3.4:1", NULL), ASYNCIO_EINVAL);
}

static void test_addr_unix_path_too_long_is_enametoolong(void **state)
{
    (void)state;
    char path[200];
    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    asyncio_sockaddr a;
    assert_err(asyncio_addr_parse(path, &a), ASYNCIO_ENAMETOOLONG);
    /* The longest path that fits: sun_path minus its NUL. */
    size_t max = sizeof a.u.un.sun_path - 1;
    path[max] = '\0';
    assert_ok(asyncio_addr_unix(path, &a));
    char buf[ASYNCIO_ADDRSTRLEN];
    assert_ok(asyncio_addr_format(&a, buf, sizeof buf));
    assert_string_equal(buf, path);
    path[max] = 'a';
    path[max + 1] = '\0';
    assert_err(asyncio_addr_unix(path, &a), ASYNCIO_ENAMETOOLONG);
    assert_err(asyncio_addr_unix("", &a), ASYNCIO_EINVAL);
}

static void test_addr_format_small_buffer_is_enospc(void **state)
{
    (void)state;
    asyncio_sockaddr a;
    assert_ok(asyncio_addr_parse("[2001:db8::1]:443", &a));
    char buf[ASYNCIO_ADDRSTRLEN];
    size_t need = strlen("[2001:db8::1]:443") + 1;
    assert_err(asyncio_addr_format(&a, buf, need - 1), ASYNCIO_ENOSPC);
    assert_string_equal(buf, "");
    assert_ok(asyncio_addr_format(&a, buf, need));
    assert_string_equal(buf, "[2001:db8::1]:443");
    assert_err(asyncio_addr_format(&a, buf, 0), ASYNCIO_ENOSPC);
    /* The longest IPv6 form fits ASYNCIO_ADDRSTRLEN. */
    assert_ok(
        asyncio_addr_parse("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%4294967295]:65535", &a));
    assert_ok(asyncio_addr_format(&a, buf, sizeof buf));
    asyncio_sockaddr empty;
    memset(&empty, 0, sizeof empty);
    assert_err(asyncio_addr_format(&empty, buf, sizeof buf), ASYNCIO_EINVAL);
}

static void test_addr_from_ip_accepts_bare_literals(void **state)
{
    (void)state;
    asyncio_sockaddr a, b;
    assert_ok(asyncio_addr_from_ip("::1", 9, &a));
    assert_ok(asyncio_addr_parse("[::1]:9", &b));
    assert_true(asyncio_addr_equal(&a, &b));
    assert_ok(asyncio_addr_from_ip("[::1]", 9, &a));
    assert_true(asyncio_addr_equal(&a, &b));
    assert_ok(asyncio_addr_from_ip("127.0.0.1", 9, &a));
    assert_int_equal(asyncio_addr_family(&a), AF_INET);
    assert_err(asyncio_addr_from_ip("localhost", 9, &a), ASYNCIO_EINVAL);
    assert_err(asyncio_addr_from_ip("1.2.3.4:5", 9, &a), ASYNCIO_EINVAL);
}

static void test_addr_port_and_equality(void **state)
{
    (void)state;
    asyncio_sockaddr a, b, u;
    assert_ok(asyncio_addr_parse("127.0.0.1:1", &a));
    assert_ok(asyncio_addr_parse("127.0.0.1:2", &b));
    assert_false(asyncio_addr_equal(&a, &b));
    assert_ok(asyncio_addr_set_port(&a, 2));
    assert_true(asyncio_addr_equal(&a, &b));
    assert_int_equal(asyncio_addr_port(&a), 2);
    assert_ok(asyncio_addr_parse("/s", &u));
    assert_err(asyncio_addr_set_port(&u, 1), ASYNCIO_EINVAL);
    assert_int_equal(asyncio_addr_port(&u), 0);
    assert_false(asyncio_addr_equal(&a, &u));
    assert_ok(asyncio_addr_parse("[::ffff:127.0.0.1]:2", &u));
    assert_false(asyncio_addr_equal(&a, &u)); /* different families */
    assert_int_equal(asyncio_addr_family(NULL), AF_UNSPEC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse_ipv4_host_port),
        cmocka_unit_test(test_addr_parse_ipv6_brackets_and_scope),
        cmocka_unit_test(test_addr_parse_unix_paths),
        cmocka_unit_test(test_addr_parse_rejects_malformed),
        cmocka_unit_test(test_addr_unix_path_too_long_is_enametoolong),
        cmocka_unit_test(test_addr_format_small_buffer_is_enospc),
        cmocka_unit_test(test_addr_from_ip_accepts_bare_literals),
        cmocka_unit_test(test_addr_port_and_equality),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
