#!/usr/bin/env python3
"""Soak test (issue 18; `make soak`, docs/testing.md "Soak").

Starts examples/http_server and examples/tcp_echo_server on 127.0.0.1 (kernel-chosen
ports), drives them with a seeded mix of clients for SOAK_MIN minutes, and samples each
server's RSS (VmRSS) and open-fd count every SOAK_SAMPLE_S seconds.

Client mix (each load thread picks one action at a time, seeded by SOAK_SEED):
  HTTP  churn        one GET per connection (Connection: close), checks status and body
        keep-alive   several pipelined GETs (/plaintext, /json) on one connection
        post-echo    POST /echo with a random body, checks the body comes back
        slow         a request sent a few bytes at a time with pauses (slow client)
        reset        half a request, then close with SO_LINGER 0 (RST)
        invalid      a malformed request line: expects a 400 response
  echo  exchange     random payloads (1 B .. 64 KiB) echoed back byte-exact
        slow         a payload trickled a few bytes at a time
        reset        bytes sent, then RST without reading the echo

Fails (exit 1) when
  - any response is unexpected (wrong status, body, echo mismatch, timeout, or a
    connection closed where a response was due);
  - a server's RSS at the end of the load is more than SOAK_RSS_DRIFT (default 10%)
    above its RSS at the end of the warm-up (the first SOAK_WARMUP_S seconds, default
    20% of the run, at least one sample);
  - a server's fd count does not return to its pre-load baseline within 15 s after
    the load stops;
  - a server exits early.
Bounded: every socket has a 10 s timeout, the run stops by itself after SOAK_MIN
minutes, and only the two server PIDs this script started are signalled.
"""
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
SOAK_MIN = float(os.environ.get("SOAK_MIN", "10"))
SAMPLE_S = float(os.environ.get("SOAK_SAMPLE_S", "10"))
SEED = int(os.environ.get("SOAK_SEED", "1"))
THREADS = int(os.environ.get("SOAK_THREADS", "6"))
SERVER_THREADS = os.environ.get("SOAK_SERVER_THREADS", "2")
DRIFT = float(os.environ.get("SOAK_RSS_DRIFT", "0.10"))
DURATION = SOAK_MIN * 60.0
WARMUP = float(os.environ.get("SOAK_WARMUP_S", str(max(SAMPLE_S, DURATION * 0.2))))
TIMEOUT = 10.0

stop = threading.Event()
lock = threading.Lock()
counts = {}
failures = []


def count(name):
    with lock:
        counts[name] = counts.get(name, 0) + 1


def unexpected(what):
    with lock:
        failures.append(what)
        if len(failures) <= 20:
            print("soak: UNEXPECTED: " + what, flush=True)


def start(argv):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline().strip()
    if not line.startswith("listening on "):
        p.kill()
        sys.exit("soak: %s did not start (%r)" % (argv[0], line))
    port = int(line.rsplit(":", 1)[1])
    return p, port


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    return s


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(65536, n - len(buf)))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


class Reader:
    """Reads HTTP/1.1 responses (Content-Length framed) off one socket."""

    def __init__(self, s):
        self.s, self.buf = s, b""

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed before a response head")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for h in lines[1:]:
            k, _, v = h.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        while len(self.buf) < length:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed inside a body")
            self.buf += chunk
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, body


def get(path, close=False):
    extra = "Connection: close\r\n" if close else ""
    return ("GET %s HTTP/1.1\r\nHost: soak\r\n%s\r\n" % (path, extra)).encode()


def http_churn(port, rng):
    s = connect(port)
    try:
        s.sendall(get("/plaintext", close=True))
        status, body = Reader(s).response()
        if status != 200 or body != b"Hello, World!":
            unexpected("churn: %d %r" % (status, body[:40]))
    finally:
        s.close()


def http_keepalive(port, rng):
    s = connect(port)
    try:
        paths = [rng.choice(["/plaintext", "/json"]) for _ in range(rng.randint(2, 16))]
        s.sendall(b"".join(get(p) for p in paths))
        r = Reader(s)
        for p in paths:
            status, body = r.response()
            if status != 200 or (p == "/plaintext" and body != b"Hello, World!") or (
                    p == "/json" and b"Hello, World!" not in body):
                unexpected("keep-alive %s: %d %r" % (p, status, body[:40]))
                return
    finally:
        s.close()


def http_post_echo(port, rng):
    body = rng.randbytes(rng.randint(0, 32768))
    s = connect(port)
    try:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n" % len(body)
                  + body)
        status, got = Reader(s).response()
        if status != 200 or got != body:
            unexpected("post-echo: %d, %d bytes back of %d" % (status, len(got), len(body)))
    finally:
        s.close()


def http_slow(port, rng):
    req = get("/plaintext", close=True)
    s = connect(port)
    try:
        i = 0
        while i < len(req) and not stop.is_set():
            n = rng.randint(1, 6)
            s.sendall(req[i:i + n])
            i += n
            time.sleep(rng.uniform(0.005, 0.05))
        if i < len(req):
            return
        status, body = Reader(s).response()
        if status != 200 or body != b"Hello, World!":
            unexpected("slow: %d %r" % (status, body[:40]))
    finally:
        s.close()


def http_reset(port, rng):
    s = connect(port)
    req = get("/json")
    s.sendall(req[:rng.randint(1, len(req) - 1)])
    rst_close(s)


def http_invalid(port, rng):
    s = connect(port)
    try:
        s.sendall(rng.choice([b"BLAH / HTTP/1.1\r\nHost: x\r\n\r\n",
                              b"GET / HTTP/9.9\r\n\r\n",
                              b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
                              b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"]))
        status, _ = Reader(s).response()
        if not 400 <= status < 600 or status in (500, 503):
            unexpected("invalid: status %d" % status)
    finally:
        s.close()


def echo_exchange(port, rng):
    s = connect(port)
    try:
        for _ in range(rng.randint(1, 8)):
            data = rng.randbytes(rng.choice([1, 64, 1500, 4096, 65536]))
            s.sendall(data)
            if recv_exact(s, len(data)) != data:
                unexpected("echo: mismatch on %d bytes" % len(data))
                return
    finally:
        s.close()


def echo_slow(port, rng):
    data = rng.randbytes(64)
    s = connect(port)
    try:
        for i in range(0, len(data), 8):
            s.sendall(data[i:i + 8])
            time.sleep(rng.uniform(0.005, 0.03))
        if recv_exact(s, len(data)) != data:
            unexpected("echo slow: mismatch")
    finally:
        s.close()


def echo_reset(port, rng):
    s = connect(port)
    s.sendall(rng.randbytes(rng.randint(1, 65536)))
    rst_close(s)


HTTP_ACTIONS = [(http_churn, 4), (http_keepalive, 4), (http_post_echo, 2), (http_slow, 1),
                (http_reset, 1), (http_invalid, 1)]
ECHO_ACTIONS = [(echo_exchange, 6), (echo_slow, 1), (echo_reset, 1)]


def load(idx, http_port, echo_port):
    rng = random.Random(SEED * 1000 + idx)
    http_w = [w for _, w in HTTP_ACTIONS]
    echo_w = [w for _, w in ECHO_ACTIONS]
    while not stop.is_set():
        if rng.random() < 0.6:
            fn = rng.choices([a for a, _ in HTTP_ACTIONS], http_w)[0]
            port = http_port
        else:
            fn = rng.choices([a for a, _ in ECHO_ACTIONS], echo_w)[0]
            port = echo_port
        try:
            fn(port, rng)
            count(fn.__name__)
        except (OSError, EOFError, ValueError, IndexError) as e:
            if not stop.is_set():
                unexpected("%s: %s: %s" % (fn.__name__, type(e).__name__, e))


def sample(pid):
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def main():
    ex = os.path.join(BUILD, "examples")
    http, http_port = start([os.path.join(ex, "http_server"), "--host", "127.0.0.1", "--port",
                             "0", "--threads", SERVER_THREADS])
    echo, echo_port = start([os.path.join(ex, "tcp_echo_server"), "--host", "127.0.0.1",
                             "--port", "0", "--threads", SERVER_THREADS])
    servers = {"http_server": http, "tcp_echo_server": echo}
    ok = True
    try:
        base_fds = {n: sample(p.pid)[1] for n, p in servers.items()}
        print("soak: %.1f min, seed %d, %d load threads, servers with --threads %s; "
              "warm-up %.0f s, samples every %.0f s" % (SOAK_MIN, SEED, THREADS, SERVER_THREADS,
                                                       WARMUP, SAMPLE_S), flush=True)
        threads = [threading.Thread(target=load, args=(i, http_port, echo_port), daemon=True)
                   for i in range(THREADS)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        rss = {n: [] for n in servers}
        warm = {}
        while time.monotonic() - t0 < DURATION:
            time.sleep(min(SAMPLE_S, max(0.0, DURATION - (time.monotonic() - t0))))
            el = time.monotonic() - t0
            line = []
            for n, p in servers.items():
                if p.poll() is not None:
                    sys.exit("soak: %s exited early (status %s)" % (n, p.returncode))
                r, fds = sample(p.pid)
                rss[n].append(r)
                if el <= WARMUP + 0.5 or n not in warm:
                    warm[n] = r  # the last warm-up sample (the first sample if none)
                line.append("%s rss %d KiB fds %d" % (n, r, fds))
            with lock:
                done = sum(counts.values())
            print("soak: t=%4.0fs  %s  actions %d  unexpected %d" % (
                el, "  ".join(line), done, len(failures)), flush=True)
        stop.set()
        for t in threads:
            t.join(TIMEOUT + 5)
        for n, p in servers.items():
            deadline = time.monotonic() + 15
            fds = sample(p.pid)[1]
            while fds != base_fds[n] and time.monotonic() < deadline:
                time.sleep(0.2)
                fds = sample(p.pid)[1]
            last, peak = rss[n][-1], max(rss[n])
            drift = (last - warm[n]) / warm[n]
            print("soak: %s: rss after warm-up %d KiB, end %d KiB (drift %+.1f%%), peak %d KiB; "
                  "fds baseline %d, after load %d" % (n, warm[n], last, drift * 100, peak,
                                                      base_fds[n], fds))
            if drift > DRIFT:
                print("soak: FAIL: %s RSS drifted %+.1f%% (> %.0f%%)" % (n, drift * 100,
                                                                       DRIFT * 100))
                ok = False
            if fds != base_fds[n]:
                print("soak: FAIL: %s holds %d fds, baseline %d" % (n, fds, base_fds[n]))
                ok = False
        with lock:
            print("soak: actions: " + ", ".join("%s %d" % kv for kv in sorted(counts.items())))
            if failures:
                print("soak: FAIL: %d unexpected responses" % len(failures))
                ok = False
    finally:
        stop.set()
        for p in servers.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in servers.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    print("soak: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
