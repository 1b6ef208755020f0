#!/usr/bin/env python3
"""Script test for examples/backpressure_server.

Starts the server on an ephemeral port with one permit, sends lines from
several connections and checks that every line comes back, that the
replies of the single-permit server come in the order the lines were sent
(at most one line is worked on at a time), that a connection accepted while
work waits is served too, and that SIGTERM ends the server with exit code
0. Timing is only used as a lower bound (N lines through one permit take at
least N * work-ms), never as an upper bound.
"""
import select
import signal
import socket
import subprocess
import sys
import time

WORK_MS = 50


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def read_reply(sock, deadline):
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            fail("timed out waiting for a reply")
        r, _, _ = select.select([sock], [], [], left)
        if r:
            chunk = sock.recv(4096)
            if not chunk:
                fail("connection closed before the reply")
            buf += chunk
    return buf


def main():
    exe = sys.argv[1]
    proc = subprocess.Popen([exe, "--port", "0", "--permits", "1", "--work-ms", str(WORK_MS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            fail("unexpected first line: %r" % line)
        host, port = line.split()[-1].rsplit(":", 1)
        addr = (host, int(port))

        conns = [socket.create_connection(addr, timeout=10) for _ in range(3)]
        start = time.monotonic()
        for i, c in enumerate(conns):
            c.sendall(b"line-%d\n" % i)
            time.sleep(0.01)  # orders the arrivals; the permit orders the work
        # A connection made while the others wait for the permit is accepted and served too.
        late = socket.create_connection(addr, timeout=10)
        late.sendall(b"late-1\nlate-2\n")

        deadline = time.monotonic() + 20
        order = []
        pending = {c.fileno(): (c, i) for i, c in enumerate(conns)}
        pending[late.fileno()] = (late, "late")
        got = {}
        while pending:
            r, _, _ = select.select([c for c, _ in pending.values()], [], [],
                                    max(0, deadline - time.monotonic()))
            if not r:
                fail("timed out; replies so far: %r" % got)
            for s in r:
                c, key = pending[s.fileno()]
                data = got.get(key, b"") + c.recv(4096)
                got[key] = data
                want = b"late-1\nlate-2\n" if key == "late" else b"line-%d\n" % key
                if data == want:
                    order.append(key)
                    del pending[s.fileno()]
                elif not want.startswith(data):
                    fail("connection %r got %r" % (key, data))
        elapsed = time.monotonic() - start
        if order[:3] != [0, 1, 2]:
            fail("replies of the single-permit server out of order: %r" % order)
        if elapsed < 5 * WORK_MS / 1000.0:
            fail("5 lines through 1 permit took %.3fs (< %d ms): more than one in flight"
                 % (elapsed, 5 * WORK_MS))
        for c in conns + [late]:
            c.close()

        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fail("no exit after SIGTERM")
        if rc != 0:
            fail("exit code %d after SIGTERM; stderr: %s" % (rc, proc.stderr.read().decode()))
        print("ok: order %r, %.3fs" % (order, elapsed))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
