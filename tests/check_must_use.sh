#!/bin/sh
# The task state transitions, ref_dec, the queue's push results and the idle
# protocol's answers are marked must-use (src/internal.h ASYNCIO__MUST_USE):
# a call that ignores one must not compile with -Werror=unused-result.
# Usage: check_must_use.sh <cc> <project dir>
set -u
cc=$1
root=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/asyncio-mustuse.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fails=0
check() { # <header> <statement>
    printf '#include "%s"\nvoid f(void *p);\nvoid f(void *p) { %s; }\n' "$1" "$2" >"$work/t.c"
    if "$cc" -std=c11 -D_GNU_SOURCE -I"$root/src" -I"$root/include" -c -o "$work/t.o" -Werror=unused-result "$work/t.c" \
        >"$work/log" 2>&1; then
        echo "FAIL: ignoring the result of '$2' compiles"
        fails=$((fails + 1))
    elif ! grep -q "unused-result\|warn_unused_result" "$work/log"; then
        echo "FAIL: '$2' did not compile for another reason:"
        cat "$work/log"
        fails=$((fails + 1))
    fi
}
for fn in to_running to_idle to_complete notify_by_ref notify_by_val notify_and_cancel \
    to_shutdown join_handle_dropped unset_waker_after_complete set_join_waker \
    unset_join_waker ref_dec; do
    check task/state.h "asyncio__task_state_$fn(p)"
done
check task/state.h "asyncio__task_state_ref_dec_n(p, 2)"
check sched/queue.h "asyncio__queue_push_back_or_overflow(p, p, p)"
check sched/queue.h "asyncio__inject_push(p, p)"
check sched/queue.h "asyncio__inject_push_batch(p, p, p, 2)"
check sched/mt.h "asyncio__idle_to_parked(p, p)"
check sched/mt.h "asyncio__idle_from_searching(p)"
check sched/mt.h "asyncio__idle_worker_to_notify(p)"
check sched/mt.h "asyncio__idle_leave_park(p, p, 1, p)"
[ "$fails" -eq 0 ] && echo "must-use: every marked result is enforced"
exit "$fails"
