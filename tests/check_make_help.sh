#!/bin/sh
# `make help` names every user-facing target of the Makefile: the .PHONY list minus
# `all` / `build` (plain `make`), `help` itself and the deps* helpers. Run by ctest as
# make_help.
set -eu
cd "$1"
help=$(make -s --no-print-directory help)
missing=""
for t in $(sed -n 's/^\.PHONY://p' Makefile); do
    case "$t" in all | build | help | deps*) continue ;; esac
    printf '%s\n' "$help" | grep -q "^make $t " || missing="$missing $t"
done
if [ -n "$missing" ]; then
    echo "make help does not mention:$missing" >&2
    exit 1
fi
echo "make help: every target listed"
