#!/usr/bin/env python3
"""Script test for examples/watch_dir: the lines printed for changes in a
directory, and exit code 0 on SIGTERM."""
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


_pending = b""


def read_line(proc, deadline):
    """One line of the child's stdout (unbuffered: select sees what is left)."""
    global _pending
    fd = proc.stdout.fileno()
    while b"\n" not in _pending:
        left = deadline - time.monotonic()
        r, _, _ = select.select([fd], [], [], max(0, left))
        if not r:
            fail("timed out waiting for output; have %r" % _pending)
        chunk = os.read(fd, 4096)
        if not chunk:
            fail("watch_dir exited early; stderr: %s" % proc.stderr.read().decode())
        _pending += chunk
    line, _pending = _pending.split(b"\n", 1)
    return line.decode()


def main():
    d = tempfile.mkdtemp(prefix="asyncio_watch_dir_")
    proc = subprocess.Popen([sys.argv[1], d], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        if read_line(proc, deadline) != "watching " + d:
            fail("no 'watching' line")
        with open(os.path.join(d, "a.txt"), "w") as f:
            f.write("x")
        os.rename(os.path.join(d, "a.txt"), os.path.join(d, "b.txt"))
        os.mkdir(os.path.join(d, "sub"))
        os.unlink(os.path.join(d, "b.txt"))
        want = ["create a.txt", "modify a.txt", "rename a.txt b.txt", "create sub/",
                "delete b.txt"]
        got = [read_line(proc, deadline) for _ in want]
        if got != want:
            fail("got %r, want %r" % (got, want))
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fail("no exit after SIGTERM")
        if rc != 0:
            fail("exit code %d; stderr: %s" % (rc, proc.stderr.read().decode()))
        print("ok")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
