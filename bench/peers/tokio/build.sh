#!/usr/bin/env bash
# Builds the tokio / hyper peer binaries (release, opt-level 2) offline from Debian's
# packaged crates: bench/run_bench.sh calls it for `make bench`; it can be run alone too.
#
#   bench/peers/tokio/build.sh [OUT_DIR]
#
# OUT_DIR (default: target/ next to this script) holds cargo's target directory and its
# CARGO_HOME (OUT_DIR/cargo-home: no cargo state is written outside it); the binaries land
# in OUT_DIR/release/. Installs nothing: `make deps-bench` does (cargo, librust-tokio-dev,
# librust-hyper-dev). When cargo or the crates are missing it prints ONE line saying so
# and exits with status 3; status 1 is a failed build (its log is OUT_DIR/build.log).
# No network access: .cargo/config.toml points cargo at /usr/share/cargo/registry, offline.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/target}
mkdir -p "$OUT" || exit 1
OUT=$(cd "$OUT" && pwd)

# rustup's default location, if cargo is not on PATH already (Debian's cargo is /usr/bin).
export PATH="$PATH:$HOME/.cargo/bin"
if ! command -v cargo >/dev/null; then
    echo "tokio peers: cargo not found (make deps-bench installs Debian's): skipped"
    exit 3
fi
missing=""
for c in tokio-1 hyper-0.14; do
    ls -d /usr/share/cargo/registry/"$c"* >/dev/null 2>&1 || missing="$missing $c"
done
if [ -n "$missing" ]; then
    echo "tokio peers: crates missing from /usr/share/cargo/registry:$missing" \
        "(make deps-bench installs librust-tokio-dev librust-hyper-dev): skipped"
    exit 3
fi

cd "$HERE" || exit 1 # .cargo/config.toml is found from the working directory
if ! CARGO_HOME="$OUT/cargo-home" cargo build --release --offline --target-dir "$OUT" \
    >"$OUT/build.log" 2>&1; then
    echo "tokio peers: cargo build failed, see $OUT/build.log"
    exit 1
fi
for b in tokio_echo tokio_http hyper_hello tokio_micro; do
    [ -x "$OUT/release/$b" ] || { echo "tokio peers: $b missing after the build"; exit 1; }
done
echo "tokio peers: built in $OUT/release ($(cargo --version 2>/dev/null))"
