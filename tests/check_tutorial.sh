#!/bin/sh
# docs/tutorial.md promises that every ```c block on the page is the real
# code of examples/chat_server.c: each block must occur verbatim (as one
# contiguous piece) in that file.
# Usage: check_tutorial.sh <project dir>
set -u
root=$1
awk -v doc="docs/tutorial.md" '
    FNR == NR { src = src $0 "\n"; next }
    /^```c$/ { inblk = 1; blk = ""; start = FNR; next }
    /^```$/ && inblk {
        inblk = 0
        n++
        if (index(src, blk) == 0) {
            print doc ":" start ": this block is not in examples/chat_server.c"
            bad++
        }
        next
    }
    inblk { blk = blk $0 "\n" }
    END {
        if (n == 0) { print doc ": no C blocks found"; exit 1 }
        if (bad > 0) exit 1
        print n " C blocks, each verbatim in examples/chat_server.c"
    }
' "$root/examples/chat_server.c" "$root/docs/tutorial.md"
