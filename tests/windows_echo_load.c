/*
 * Load generator for make test-windows (tests/windows_echo.sh), built for the Linux host:
 * CONNS connections to an echo server, each sending chunks of a per-connection byte pattern
 * and checking every byte that comes back, for SECONDS seconds. Prints
 * "echo_load: conns C bytes B errors E" and exits 0 only when every connection echoed every
 * byte it sent, in order, and none failed.
 *
 *   windows_echo_load HOST PORT CONNS SECONDS
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { CHUNK = 4096, MAX_CONNS = 1024 };

typedef struct conn {
    int fd;
    uint64_t sent, checked; /* pattern offsets: bytes sent, bytes received and verified */
    unsigned seed;
} conn;

/* The pattern byte at offset `off` of connection seed `seed`. */
static unsigned char pattern(unsigned seed, uint64_t off)
{
    uint64_t x = (off + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    return (unsigned char)(x >> 29);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_conn(const char *host, int port)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    int port = atoi(argv[2]), n = atoi(argv[3]);
    double seconds = atof(argv[4]);
    if (n <= 0 || n > MAX_CONNS)
        return 2;
    static conn cs[MAX_CONNS];
    static struct pollfd pf[MAX_CONNS];
    int errors = 0;
    for (int i = 0; i < n; i++) {
        cs[i] = (conn){.fd = open_conn(argv[1], port), .seed = 7919u * (unsigned)(i + 1)};
        if (cs[i].fd < 0) {
            fprintf(stderr, "echo_load: connect %d: %s\n", i, strerror(errno));
            return 1;
        }
    }
    unsigned char buf[CHUNK];
    double end = now_s() + seconds;
    while (now_s() < end && errors == 0) {
        for (int i = 0; i < n; i++) {
            /* At most two chunks in flight per connection: the server's buffers stay small. */
            pf[i] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN};
            if (cs[i].sent - cs[i].checked < 2 * CHUNK)
                pf[i].events |= POLLOUT;
        }
        if (poll(pf, (nfds_t)n, 100) < 0 && errno != EINTR)
            return 1;
        for (int i = 0; i < n && errors == 0; i++) {
            conn *c = &cs[i];
            if (pf[i].revents & POLLOUT) {
                size_t len = CHUNK - (size_t)(c->sent % 977); /* varied sizes */
                for (size_t k = 0; k < len; k++)
                    buf[k] = pattern(c->seed, c->sent + k);
                ssize_t w = send(c->fd, buf, len, MSG_NOSIGNAL);
                if (w > 0)
                    c->sent += (uint64_t)w;
                else if (w < 0 && errno != EAGAIN)
                    errors++;
            }
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = recv(c->fd, buf, sizeof buf, 0);
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    fprintf(stderr, "echo_load: conn %d closed or failed\n", i);
                    errors++;
                }
                for (ssize_t k = 0; k < r; k++, c->checked++) {
                    if (buf[k] != pattern(c->seed, c->checked)) {
                        fprintf(stderr, "echo_load: conn %d byte %llu differs\n", i,
                                (unsigned long long)c->checked);
                        errors++;
                        break;
                    }
                }
            }
        }
    }
    /* Drain: every byte sent must come back. */
    double drain_end = now_s() + 30;
    uint64_t total = 0;
    for (int i = 0; i < n && errors == 0; i++) {
        conn *c = &cs[i];
        while (c->checked < c->sent && now_s() < drain_end) {
            struct pollfd p = {.fd = c->fd, .events = POLLIN};
            poll(&p, 1, 100);
            ssize_t r = recv(c->fd, buf, sizeof buf, 0);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                errors++;
                break;
            }
            for (ssize_t k = 0; k < r; k++, c->checked++) {
                if (buf[k] != pattern(c->seed, c->checked)) {
                    errors++;
                    break;
                }
            }
        }
        if (c->checked != c->sent)
            errors++;
        total += c->checked;
        close(c->fd);
    }
    printf("echo_load: conns %d bytes %llu errors %d\n", n, (unsigned long long)total, errors);
    return errors == 0 && total > 0 ? 0 : 1;
}
