#!/bin/sh
# The await macros (include/asyncio/await.h) turn the misuses C can see into
# compile errors: a resume field that is not an asyncio_coro, an await
# outside ASYNCIO_BEGIN, two BEGINs in one function, two awaits on one line.
# Each snippet below must fail to compile, with the error we expect; and the
# correct form must compile (so the failures are not about something else).
# Usage: check_await_misuse.sh <cc> <project dir>
set -u
cc=$1
root=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/asyncio-await.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fails=0
compile() { # <body>; returns the compiler's status
    cat >"$work/t.c" <<SRC
#include <asyncio/await.h>
typedef struct st { asyncio_coro co; int step; } st;
int leaf(void);
int f(st *s);
int f(st *s)
{
    int rc = 0;
    $1
    return rc;
}
SRC
    "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror -I"$root/include" -c -o "$work/t.o" "$work/t.c" \
        >"$work/log" 2>&1
}
must_fail() { # <what> <expected error regex> <body>
    if compile "$3"; then
        echo "FAIL: $1 compiles"
        fails=$((fails + 1))
    elif ! grep -qE "$2" "$work/log"; then
        echo "FAIL: $1 did not fail for the expected reason:"
        cat "$work/log"
        fails=$((fails + 1))
    fi
}
if ! compile 'ASYNCIO_BEGIN(s->co); ASYNCIO_AWAIT(s->co, rc, leaf()); ASYNCIO_END(s->co);'; then
    echo "FAIL: the correct form does not compile:"
    cat "$work/log"
    exit 1
fi
must_fail "a resume field that is not an asyncio_coro" "asyncio_coro" \
    'ASYNCIO_BEGIN(s->step); ASYNCIO_END(s->step);'
must_fail "an await outside ASYNCIO_BEGIN" "asyncio__coro_begun" \
    'ASYNCIO_AWAIT(s->co, rc, leaf());'
must_fail "a suspend outside ASYNCIO_BEGIN" "asyncio__coro_begun" \
    'ASYNCIO_SUSPEND(s->co);'
must_fail "a suspend on a resume field that is not an asyncio_coro" "asyncio_coro" \
    'ASYNCIO_BEGIN(s->co); ASYNCIO_SUSPEND(s->step); ASYNCIO_END(s->co);'
must_fail "two ASYNCIO_BEGIN in one function" "duplicate label|redefinition of label" \
    'ASYNCIO_BEGIN(s->co); ASYNCIO_BEGIN(s->co); ASYNCIO_END(s->co); ASYNCIO_END(s->co);'
must_fail "two awaits on one line" "duplicate case" \
    'ASYNCIO_BEGIN(s->co); ASYNCIO_AWAIT(s->co, rc, leaf()); ASYNCIO_AWAIT(s->co, rc, leaf()); ASYNCIO_END(s->co);'
[ "$fails" -eq 0 ] && echo "await misuse: every checked misuse is a compile error"
exit "$fails"
