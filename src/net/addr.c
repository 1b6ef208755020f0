/*
 * Socket addresses: parsing and formatting of "a.b.c.d:port", "[v6]:port"
 * and Unix paths, and small accessors. Pure string work (inet_pton /
 * inet_ntop are libc conversions, not system calls): no allocation, no
 * state, every function is thread-safe.
 *
 * Grammar accepted by asyncio_addr_parse():
 *   addr   = ipv4 ":" port | "[" ipv6 [ "%" scope ] "]:" port | unix
 *   unix   = ("/" | "./" | "../") path | "@" abstract-name
 *   port   = 1*5DIGIT, value <= 65535
 *   scope  = 1*10DIGIT (numeric interface index only)
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "asyncio/net.h"
#include "internal.h"
#include "platform/socket_dgram.h"

/* Longest IPv6 literal text (with an embedded IPv4 part), NUL included. */
#define V6_TEXT_MAX 46

/* Parses a decimal number of at most `max_digits` digits spanning exactly [s, end). */
static int parse_decimal(const char *s, const char *end, unsigned max_digits, uint64_t max,
                         uint64_t *out)
{
    size_t n = (size_t)(end - s);
    if (n == 0 || n > max_digits)
        return ASYNCIO_EINVAL;
    uint64_t v = 0;
    for (const char *p = s; p < end; p++) {
        if (*p < '0' || *p > '9')
            return ASYNCIO_EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v > max)
        return ASYNCIO_EINVAL;
    *out = v;
    return 0;
}

static int parse_port(const char *s, uint16_t *port)
{
    uint64_t v;
    int rc = parse_decimal(s, s + strlen(s), 5, 65535, &v);
    if (rc == 0)
        *port = (uint16_t)v;
    return rc;
}

static int make_v4(const char *ip, size_t len, uint16_t port, asyncio_sockaddr *out)
{
    char text[INET_ADDRSTRLEN];
    if (len == 0 || len >= sizeof text)
        return ASYNCIO_EINVAL;
    memcpy(text, ip, len);
    text[len] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, text, &a) != 1)
        return ASYNCIO_EINVAL;
    memset(out, 0, sizeof *out);
    out->u.in4.sin_family = AF_INET;
    out->u.in4.sin_port = htons(port);
    out->u.in4.sin_addr = a;
    out->len = sizeof out->u.in4;
    return 0;
}

/* An IPv6 literal in [ip, ip+len), with an optional numeric "%scope". */
static int make_v6(const char *ip, size_t len, uint16_t port, asyncio_sockaddr *out)
{
    const char *pct = memchr(ip, '%', len);
    size_t addr_len = pct != NULL ? (size_t)(pct - ip) : len;
    uint64_t scope = 0;
    if (pct != NULL) {
        int rc = parse_decimal(pct + 1, ip + len, 10, UINT32_MAX, &scope);
        if (rc < 0)
            return rc;
    }
    char text[V6_TEXT_MAX];
    if (addr_len == 0 || addr_len >= sizeof text)
        return ASYNCIO_EINVAL;
    memcpy(text, ip, addr_len);
    text[addr_len] = '\0';
    struct in6_addr a;
    if (inet_pton(AF_INET6, text, &a) != 1)
        return ASYNCIO_EINVAL;
    memset(out, 0, sizeof *out);
    out->u.in6.sin6_family = AF_INET6;
    out->u.in6.sin6_port = htons(port);
    out->u.in6.sin6_addr = a;
    out->u.in6.sin6_scope_id = (uint32_t)scope;
    out->len = sizeof out->u.in6;
    return 0;
}

int asyncio_addr_unix(const char *path, asyncio_sockaddr *out)
{
    if (path == NULL || out == NULL || path[0] == '\0')
        return ASYNCIO_EINVAL;
    size_t n = strlen(path);
    asyncio_sockaddr a;
    memset(&a, 0, sizeof a);
    a.u.un.sun_family = AF_UNIX;
    if (path[0] == '@') {
        /* Abstract (Linux): a leading NUL, then the name, no terminator. */
        if (!asyncio__unix_abstract_names())
            return ASYNCIO_ENOTSUP;
        if (n > sizeof a.u.un.sun_path)
            return ASYNCIO_ENAMETOOLONG;
        memcpy(a.u.un.sun_path + 1, path + 1, n - 1);
        a.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        if (n >= sizeof a.u.un.sun_path)
            return ASYNCIO_ENAMETOOLONG;
        memcpy(a.u.un.sun_path, path, n + 1);
        a.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    *out = a;
    return 0;
}

static bool is_unix_syntax(const char *s)
{
    return s[0] == '/' || s[0] == '@' || strncmp(s, "./", 2) == 0 || strncmp(s, "../", 3) == 0;
}

int asyncio_addr_parse(const char *str, asyncio_sockaddr *out)
{
    if (str == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    if (is_unix_syntax(str))
        return asyncio_addr_unix(str, out);
    uint16_t port;
    if (str[0] == '[') { /* "[v6]:port" */
        const char *close = strchr(str, ']');
        if (close == NULL || close[1] != ':' || parse_port(close + 2, &port) < 0)
            return ASYNCIO_EINVAL;
        return make_v6(str + 1, (size_t)(close - str - 1), port, out);
    }
    const char *colon = strrchr(str, ':'); /* "a.b.c.d:port" */
    if (colon == NULL || memchr(str, ':', (size_t)(colon - str)) != NULL ||
        parse_port(colon + 1, &port) < 0)
        return ASYNCIO_EINVAL;
    return make_v4(str, (size_t)(colon - str), port, out);
}

int asyncio_addr_from_ip(const char *ip, uint16_t port, asyncio_sockaddr *out)
{
    if (ip == NULL || out == NULL)
        return ASYNCIO_EINVAL;
    size_t n = strlen(ip);
    if (n >= 2 && ip[0] == '[' && ip[n - 1] == ']')
        return make_v6(ip + 1, n - 2, port, out);
    if (memchr(ip, ':', n) != NULL)
        return make_v6(ip, n, port, out);
    return make_v4(ip, n, port, out);
}

/* snprintf into buf; ENOSPC (buf emptied) if it did not fit. */
static int put(char *buf, size_t size, int written)
{
    if (written < 0 || (size_t)written >= size) {
        buf[0] = '\0';
        return written < 0 ? ASYNCIO_EINVAL : ASYNCIO_ENOSPC;
    }
    return 0;
}

static int format_unix(const asyncio_sockaddr *addr, char *buf, size_t size)
{
    size_t off = offsetof(struct sockaddr_un, sun_path);
    if (addr->len < off || addr->len > sizeof addr->u.un)
        return ASYNCIO_EINVAL;
    size_t n = addr->len - off;
    const char *p = addr->u.un.sun_path;
    if (n == 0) /* unnamed */
        return put(buf, size, snprintf(buf, size, "%s", ""));
    if (p[0] == '\0') /* abstract: exactly n - 1 name bytes */
        return put(buf, size, snprintf(buf, size, "@%.*s", (int)(n - 1), p + 1));
    return put(buf, size, snprintf(buf, size, "%.*s", (int)strnlen(p, n), p));
}

int asyncio_addr_format(const asyncio_sockaddr *addr, char *buf, size_t size)
{
    if (addr == NULL || buf == NULL)
        return ASYNCIO_EINVAL;
    if (size == 0)
        return ASYNCIO_ENOSPC;
    char text[V6_TEXT_MAX];
    switch (addr->len >= sizeof(sa_family_t) ? addr->u.sa.sa_family : AF_UNSPEC) {
    case AF_INET:
        if (addr->len < sizeof addr->u.in4 ||
            inet_ntop(AF_INET, &addr->u.in4.sin_addr, text, sizeof text) == NULL)
            break;
        return put(buf, size,
                   snprintf(buf, size, "%s:%u", text, (unsigned)ntohs(addr->u.in4.sin_port)));
    case AF_INET6:
        if (addr->len < sizeof addr->u.in6 ||
            inet_ntop(AF_INET6, &addr->u.in6.sin6_addr, text, sizeof text) == NULL)
            break;
        if (addr->u.in6.sin6_scope_id != 0)
            return put(buf, size,
                       snprintf(buf, size, "[%s%%%u]:%u", text,
                                (unsigned)addr->u.in6.sin6_scope_id,
                                (unsigned)ntohs(addr->u.in6.sin6_port)));
        return put(buf, size,
                   snprintf(buf, size, "[%s]:%u", text, (unsigned)ntohs(addr->u.in6.sin6_port)));
    case AF_UNIX:
        return format_unix(addr, buf, size);
    default:
        break;
    }
    buf[0] = '\0';
    return ASYNCIO_EINVAL;
}

int asyncio_addr_family(const asyncio_sockaddr *addr)
{
    if (addr == NULL || addr->len < sizeof(sa_family_t))
        return AF_UNSPEC;
    return addr->u.sa.sa_family;
}

uint16_t asyncio_addr_port(const asyncio_sockaddr *addr)
{
    switch (asyncio_addr_family(addr)) {
    case AF_INET:
        return ntohs(addr->u.in4.sin_port);
    case AF_INET6:
        return ntohs(addr->u.in6.sin6_port);
    default:
        return 0;
    }
}

int asyncio_addr_set_port(asyncio_sockaddr *addr, uint16_t port)
{
    switch (asyncio_addr_family(addr)) {
    case AF_INET:
        addr->u.in4.sin_port = htons(port);
        return 0;
    case AF_INET6:
        addr->u.in6.sin6_port = htons(port);
        return 0;
    default:
        return ASYNCIO_EINVAL;
    }
}

bool asyncio_addr_equal(const asyncio_sockaddr *a, const asyncio_sockaddr *b)
{
    int fam = asyncio_addr_family(a);
    if (fam == AF_UNSPEC || fam != asyncio_addr_family(b))
        return false;
    switch (fam) {
    case AF_INET:
        return a->u.in4.sin_port == b->u.in4.sin_port &&
               a->u.in4.sin_addr.s_addr == b->u.in4.sin_addr.s_addr;
    case AF_INET6:
        return a->u.in6.sin6_port == b->u.in6.sin6_port &&
               a->u.in6.sin6_scope_id == b->u.in6.sin6_scope_id &&
               memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, sizeof(struct in6_addr)) == 0;
    case AF_UNIX:
        return a->len == b->len && a->len <= sizeof a->u.un &&
               memcmp(a->u.un.sun_path, b->u.un.sun_path,
                      a->len - offsetof(struct sockaddr_un, sun_path)) == 0;
    default:
        return false;
    }
}
