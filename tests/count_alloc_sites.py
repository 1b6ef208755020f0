#!/usr/bin/env python3
"""Names the allocation sites in ASYNCIO_ALLOC_SITES files (docs/testing.md).

Each line of a file is "binary offset..." (a call chain written by
support_alloc_site_note). A site is the first frame outside the allocator
(src/util/alloc.c) and the test support code, as function@file:line from
addr2line. Usage: count_alloc_sites.py FILE [FILE2]: prints the number of
sites in FILE; with FILE2, also the sites of FILE missing from FILE2.
"""
import subprocess
import sys
from collections import defaultdict


def chains(path):
    out = set()
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                out.add((parts[0], tuple(parts[1:])))
    return out


def resolve(all_chains):
    by_bin = defaultdict(set)
    for binary, offs in all_chains:
        by_bin[binary].update(offs)
    names = {}
    for binary, offs in by_bin.items():
        offs = sorted(offs)
        # return addresses point after the call: look up the call itself
        args = ["addr2line", "-f", "-e", binary] + ["%x" % (int(o, 16) - 1) for o in offs]
        lines = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split("\n")
        for i, o in enumerate(offs):
            func, loc = lines[2 * i], lines[2 * i + 1]
            loc = loc.split(" (")[0]
            if "/src/" in loc:
                loc = "src/" + loc.split("/src/", 1)[1]
            elif "/tests/" in loc:
                loc = "tests/" + loc.split("/tests/", 1)[1]
            names[(binary, o)] = (func, loc)
    return names


def sites(all_chains, names):
    out = set()
    for binary, offs in all_chains:
        for o in offs:
            func, loc = names[(binary, o)]
            if loc.startswith("src/util/alloc.c") or loc.startswith("tests/support/"):
                continue
            if loc.startswith("src/"):
                out.add("%s@%s" % (func, loc))
            break  # the first frame outside the allocator and the support code
    return out


def main():
    files = sys.argv[1:]
    if not files or len(files) > 2:
        sys.exit(__doc__)
    cs = [chains(p) for p in files]
    names = resolve(set().union(*cs))
    ss = [sites(c, names) for c in cs]
    print("%s: %d allocation sites in the library" % (files[0], len(ss[0])))
    if len(ss) == 2:
        missing = sorted(ss[0] - ss[1])
        print("%s: %d; of the first file's, %d not reached here:" % (files[1], len(ss[1]), len(missing)))
        for m in missing:
            print("  " + m)


if __name__ == "__main__":
    main()
