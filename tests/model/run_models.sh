#!/bin/sh
# Runs the Promela models of tests/model/ (make model). For each model:
#   1. spin -a, cc pan.c, ./pan: a full state-space search that must report
#      "errors: 0" (no depth truncation);
#   2. every variant named in the model (#ifdef BUGn / FINDINGn) the same way,
#      and each must report an error, so the model is shown non-vacuous on
#      every run (README.md lists what each one breaks and what catches it).
# Works in a temporary directory that is removed on exit: nothing is left in
# the tree. Needs spin and a C compiler. Exit status 1 if any check failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/asyncio-model.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
CC=${CC:-cc}
PAN_CFLAGS="-O2 -w -DSAFETY -DCOLLAPSE"
PAN_RUN="-m2000000 -w24"
failures=0

# run <model.pml> <define or ""> -> leaves pan's output in $work/out
run() {
    rm -f "$work"/pan* "$work"/*.trail
    cp "$here/$1" "$work/" || return 1
    (cd "$work" && spin ${2:+-D$2} -a "$1" >spin.log 2>&1) || { cat "$work/spin.log"; return 1; }
    (cd "$work" && $CC $PAN_CFLAGS -o pan pan.c) || return 1
    (cd "$work" && ./pan $PAN_RUN >out 2>&1)
    return 0
}

summary() {
    states=$(sed -n 's/^ *\([0-9][0-9]*\) states, stored.*/\1/p' "$work/out")
    secs=$(sed -n 's/^pan: elapsed time \([0-9.]*\) seconds.*/\1/p' "$work/out")
    echo "${states:-?} states, ${secs:-?} s"
}

for model in queue.pml task_state.pml idle.pml lifetime.pml rwlock.pml wake_set.pml slab.pml; do
    if ! run "$model" ""; then
        echo "FAIL $model: could not build the verifier"
        failures=$((failures + 1))
        continue
    fi
    if grep -q "errors: 0" "$work/out" && ! grep -q "max search depth too small" "$work/out"; then
        echo "ok   $model: full search, 0 errors ($(summary))"
    else
        echo "FAIL $model: the full search must report 0 errors:"
        grep -E "^pan|errors:|depth" "$work/out"
        failures=$((failures + 1))
    fi
    for bug in $(grep -oE '^#ifn?def (BUG|FINDING)[0-9]+' "$here/$model" | awk '{print $2}' | sort -u); do
        if ! run "$model" "$bug"; then
            echo "FAIL $model -D$bug: could not build the verifier"
            failures=$((failures + 1))
            continue
        fi
        err=$(grep -m1 -E "^pan:[0-9]+: " "$work/out" | sed 's/^pan:[0-9]*: //')
        if grep -qE "errors: [1-9]" "$work/out"; then
            echo "ok   $model -D$bug: caught: $err"
        else
            echo "FAIL $model -D$bug: the injected bug was NOT caught ($(summary))"
            failures=$((failures + 1))
        fi
    done
done

if [ "$failures" -ne 0 ]; then
    echo "model: $failures check(s) failed"
    exit 1
fi
echo "model: all checks passed"
