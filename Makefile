# libasyncio front end. The real build is CMake; these targets are the
# commands people and CI type. `make test` and `make run` install what they
# need (cmake, a C compiler; for the tests also g++ and libcmocka-dev) with
# apt-get when it is missing.

BUILD      ?= build
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
HOST       ?= 127.0.0.1
PORT       ?= 8080
WERROR     := $(if $(CI),ON,OFF)
CMAKE_ARGS ?=
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CTEST      := ctest --output-on-failure --no-tests=error --timeout 300 -j $(JOBS)

.PHONY: all build test run sanitize tsan model deps deps-build deps-bench bench bench-charts install format clean help fuzz
.PHONY: check-macos

all: build

help:
	@echo "make            release build in $(BUILD)/"
	@echo "make test       install missing deps, build, run the whole suite (ctest)"
	@echo "make run        build and start the HTTP server example on $(HOST):$(PORT)"
	@echo "                (THREADS=N worker threads, ROOT=DIR served under /static/)"
	@echo "make sanitize   ASan+UBSan build and whole suite (build-asan/)"
	@echo "make tsan       ThreadSanitizer build of the threaded suites (build-tsan/), then the"
	@echo "                multi-thread ones TSAN_REPEAT more times (default 5)"
	@echo "make soak       HTTP + echo examples under mixed load for SOAK_MIN minutes (default 10):"
	@echo "                RSS drift <= 10% after warm-up, fds back to baseline (not in CI)"
	@echo "make model      spin: full search of the Promela models + their injected bugs"
	@echo "make sim        simulation: SEEDS (10000) seeds of the echo / proxy / HTTP / UDP scenarios on the simulated OS,"
	@echo "                prints failing seeds; then its three planted bugs must be found"
	@echo "make test-musl  static musl build (zig cc from npm, cmocka from Debian source) + whole suite (build-musl/)"
	@echo "make clean-musl remove build-musl/ (its Zig toolchain, musl cmocka and build)"
	@echo "make fuzz       libFuzzer: HTTP parser, chunked decoder, line reader (FUZZ_SECONDS=60 each)"
	@echo "make bench      build and run the side-by-side benchmarks (build-bench/;"
	@echo "                BENCH_ARGS=--quick for a 3-minute smoke run, BENCH_ARGS='--only poll' etc.)"
	@echo "                vs libuv, nginx and Tokio/hyper (bench/peers/tokio), on epoll and uring;"
	@echo "                BENCH_ARGS='--only micro': runtime micro-benchmarks beside tokio_micro"
	@echo "make bench-charts  gnuplot charts of the last make bench run -> build-bench/charts/, docs/img/"
	@echo "make install    install headers, libraries, asyncio.pc, CMake package (PREFIX=DIR)"
	@echo "make check-macos  compile + link library, examples, tests for aarch64/x86_64 macOS"
	@echo "                with zig cc (build-macos/; nothing runs: docs/backends.md)"
	@echo "make windows    cross-build library (static + DLL), examples, tests for Windows with"
	@echo "                mingw-w64 (build-windows/)"
	@echo "make test-windows  make windows, then the Windows suites and the echo example under wine"
	@echo "make clean-windows  remove build-windows/ (its mingw cmocka, wine prefix and build)"
	@echo "make format     clang-format every tracked .c / .h file in place"
	@echo "make clean      remove the build directories ($(BUILD)/, build-asan/, build-tsan/, ...)"

# --- dependencies ------------------------------------------------------------
# Another apt-get or unattended-upgrades may hold the dpkg lock: wait for it (up to
# 5 minutes) instead of failing.
APT_LOCK_WAIT := -o DPkg::Lock::Timeout=300
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get $(APT_LOCK_WAIT) update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get $(APT_LOCK_WAIT) install -y -qq $$missing; \
	fi
endef

deps-build:
	$(call apt_install,cmake gcc make pkg-config)

# g++: the test build compiles every public header on its own as C++17 too.
deps: deps-build
	$(call apt_install,libcmocka-dev g++)

# The Tokio peers (bench/peers/tokio: cargo + Debian's packaged tokio and hyper crates) and
# gnuplot (charts) are optional: when they cannot be installed, `make bench` says so in one
# line each and runs without them. Debian's cargo only when no cargo is on PATH (rustup's).
BENCH_OPTIONAL := librust-tokio-dev librust-hyper-dev gnuplot-nox \
	$(if $(shell command -v cargo || command -v $(HOME)/.cargo/bin/cargo),,cargo)
deps-bench: deps-build
	$(call apt_install,libuv1-dev wrk nginx-light strace)
	@missing=""; for p in $(BENCH_OPTIONAL); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing (optional):$$missing"; \
		{ $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get $(APT_LOCK_WAIT) update -qq && \
		  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get $(APT_LOCK_WAIT) install -y -qq $$missing; } || \
		echo "could not install$$missing: make bench goes on without the Tokio peers / charts"; \
	fi

# --- builds --------------------------------------------------------------------
$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DASYNCIO_WERROR=$(WERROR) $(CMAKE_ARGS)

build: deps-build $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# Configure again: a build dir first made before cmocka was installed has no tests.
test: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DASYNCIO_WERROR=$(WERROR) \
		-DASYNCIO_BUILD_TESTS=ON $(CMAKE_ARGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && $(CTEST)

# Quiet: the build's output is shown only if it fails, so the server's "listening on" line
# comes right after the one "building" line.
run: deps-build
	@echo "building examples/http_server in $(BUILD)/ ..."
	@log=$$(mktemp); \
	if ! { cmake -S . -B $(BUILD) -DASYNCIO_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
			-DASYNCIO_WERROR=$(WERROR) $(CMAKE_ARGS) && \
		cmake --build $(BUILD) -j $(JOBS) --target http_server; } >"$$log" 2>&1; then \
		cat "$$log"; rm -f "$$log"; exit 1; \
	fi; rm -f "$$log"
	@echo "starting examples/http_server on http://$(HOST):$(PORT)/ (try: curl http://$(HOST):$(PORT)/json; Ctrl-C stops it)"
	./$(BUILD)/examples/http_server --host $(HOST) --port $(PORT) $(if $(THREADS),--threads $(THREADS),) $(if $(ROOT),--root $(ROOT),)

sanitize: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DASYNCIO_WERROR=$(WERROR) \
		-DASYNCIO_SANITIZE=address,undefined $(CMAKE_ARGS)
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(CTEST)

# TSAN_REPEAT: how many times `make tsan` runs the multi-thread suites after the full pass.
TSAN_REPEAT ?= 5
tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DASYNCIO_WERROR=$(WERROR) \
		-DASYNCIO_SANITIZE=thread $(CMAKE_ARGS)
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 $(CTEST) -L threaded
	@# The multi-thread suites again, TSAN_REPEAT times each (lost wake-ups show as timeouts).
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		$(CTEST) -R '^mt(_idle)?\.|\.mt4\.' --repeat until-fail:$(TSAN_REPEAT)

# libFuzzer targets (fuzz/): HTTP parser, chunked decoder, buffered line reader; each runs
# FUZZ_SECONDS with its corpus in build-fuzz/. Crashes: copy them to tests/http_regress/.
FUZZ_SECONDS ?= 60
fuzz:
	$(call apt_install,clang libclang-rt-14-dev cmake make)
	FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) sh fuzz/run_fuzz.sh

# Soak (issue 18, docs/testing.md): tests/soak/soak.py starts the release build's http_server
# and tcp_echo_server on 127.0.0.1, drives them with churn, keep-alive, slow clients, RSTs
# and invalid requests for SOAK_MIN minutes (SOAK_SEED, SOAK_THREADS, SOAK_SAMPLE_S), and
# fails on RSS drift > 10% after warm-up, fds not back to baseline, or any unexpected reply.
SOAK_MIN ?= 10
.PHONY: soak
soak: build
	SOAK_MIN=$(SOAK_MIN) python3 tests/soak/soak.py $(BUILD)

# Promela models (tests/model/): each full search must pass and each injected bug must fail.
model:
	$(call apt_install,spin gcc)
	sh tests/model/run_models.sh

# The simulation (tests/sim/; docs/testing.md, "Simulation"): SEEDS seeds of each scenario on
# the simulated OS (failing seeds are printed; exit 1 if any), then the three planted bugs,
# each of which must be found within SIM_BUG_SEEDS seeds (exit 1 if one is not).
SEEDS ?= 10000
SIM_BUG_SEEDS ?= 10000
.PHONY: sim
sim: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DASYNCIO_WERROR=$(WERROR) \
		-DASYNCIO_BUILD_TESTS=ON $(CMAKE_ARGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target sim_echo sim_http sim_bug1 sim_bug2 sim_bug3
	./$(BUILD)/tests/sim_echo --scenario echo --seeds $(SEEDS)
	./$(BUILD)/tests/sim_echo --scenario echo_faults --seeds $(SEEDS)
	./$(BUILD)/tests/sim_echo --scenario proxy --seeds $(SEEDS)
	./$(BUILD)/tests/sim_echo --scenario proxy_faults --seeds $(SEEDS)
	./$(BUILD)/tests/sim_http --scenario http --seeds $(SEEDS)
	./$(BUILD)/tests/sim_http --scenario http_faults --seeds $(SEEDS)
	./$(BUILD)/tests/sim_echo --scenario udp --seeds $(SEEDS)
	./$(BUILD)/tests/sim_echo --scenario udp_lossy --seeds $(SEEDS)
	@for b in 1 2 3; do \
		./$(BUILD)/tests/sim_bug$$b --seeds $(SIM_BUG_SEEDS) --expect-failure || \
			{ echo "planted bug $$b NOT found in $(SIM_BUG_SEEDS) seeds"; exit 1; }; \
	done
	@echo "sim: all scenarios passed; all three planted bugs found"

bench: deps-bench
	cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DASYNCIO_BUILD_BENCH=ON \
		-DASYNCIO_BUILD_TESTS=OFF $(CMAKE_ARGS)
	JOBS=$(JOBS) bench/run_bench.sh --build-dir build-bench $(BENCH_ARGS)

# Charts of the last `make bench` run (build-bench/bench-data/) with gnuplot, written to
# build-bench/charts/ and copied to docs/img/ for docs/performance.md. (`make bench` draws
# them into build-bench/charts/ too, without touching docs/.)
bench-charts:
	-$(call apt_install,gnuplot-nox)
	bench/bench_charts.sh --build-dir build-bench --copy-to docs/img

# --- macOS cross build (kqueue / Darwin platform layer) -------------------------------
# Fetches Zig 0.11.0 from npm into $(MACOS_BUILD)/zig once, builds cmocka from Debian's
# source package, then compiles and links everything for aarch64-macos and x86_64-macos
# with warnings as errors. The logic is in .ci/check-macos.
MACOS_BUILD ?= build-macos
check-macos:
	MACOS_BUILD=$(MACOS_BUILD) JOBS=$(JOBS) bash .ci/check-macos
# --- end macOS cross build -------------------------------------------------------------

install: build
	cmake --install $(BUILD) $(if $(PREFIX),--prefix $(PREFIX),)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan build-tsan build-bench build-fuzz
	@# build-macos/ is kept (its ~350 MB Zig download is a cache): rm -rf build-macos

# --- musl: static x86_64-linux-musl build and suite (zig cc) ------------------------
# `make test-musl` builds the library, examples and every test program as static musl
# binaries with `zig cc -target x86_64-linux-musl` (cmake/zig-musl.cmake) and runs the
# whole suite here with ctest. Everything lives in $(MUSL_DIR)/: the Zig toolchain from
# npm and its caches (toolchain/, cmake/fetch-zig-musl.sh), cmocka built for musl from
# Debian's source package (toolchain/sysroot/, cmake/fetch-cmocka-musl.sh), the build
# (build/). Both fetch steps are skipped when their result is present. docs/platforms.md.
MUSL_DIR       ?= build-musl
MUSL_TOOLCHAIN := $(abspath $(MUSL_DIR))/toolchain

.PHONY: test-musl clean-musl

# npm only when missing: Debian's npm package would fight a node installed from elsewhere.
deps-musl: deps-build
	$(call apt_install,dpkg-dev binutils)
	@command -v npm >/dev/null 2>&1 || { \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get $(APT_LOCK_WAIT) update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get $(APT_LOCK_WAIT) install -y -qq npm; }

test-musl: deps-musl
	sh cmake/fetch-zig-musl.sh $(MUSL_TOOLCHAIN)
	JOBS=$(JOBS) sh cmake/fetch-cmocka-musl.sh $(MUSL_TOOLCHAIN)
	cmake -S . -B $(MUSL_DIR)/build -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/zig-musl.cmake \
		-DZIG_MUSL_DIR=$(MUSL_TOOLCHAIN) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DASYNCIO_WERROR=$(WERROR) -DASYNCIO_BUILD_TESTS=ON $(CMAKE_ARGS) >/dev/null
	cmake --build $(MUSL_DIR)/build -j $(JOBS)
	@# What runs must really be static musl programs, not glibc ones from a stray compiler.
	sh cmake/check-static-musl.sh $(MUSL_DIR)/build
	cd $(MUSL_DIR)/build && $(CTEST)

clean: clean-musl
clean-musl:
	rm -rf $(MUSL_DIR)
# --- end musl ---------------------------------------------------------------------

# --- windows: mingw-w64 cross build, suites under wine ------------------------------
# `make windows` cross-builds the library (static + DLL with its import library), the
# examples and the test programs for x86_64 Windows into $(WIN_DIR)/ with mingw-w64
# (cmake/mingw-w64.cmake); cmocka is built for mingw from Debian's source package by the
# musl target's script (cmake/fetch-cmocka-musl.sh, CMOCKA_TOOLCHAIN). `make test-windows`
# runs the Windows suite list (tests/windows.cmake) and the echo example end to end
# (tests/windows_echo.sh) under wine, in a wine prefix inside $(WIN_DIR)/ whose wineserver
# is stopped afterwards. Timings under wine mean nothing: function only. docs/platforms.md.
WIN_DIR       ?= build-windows
WIN_TOOLCHAIN := $(abspath $(WIN_DIR))/toolchain
WIN_PREFIX    := $(abspath $(WIN_DIR))/wineprefix
WIN_ENV       := WINEPREFIX=$(WIN_PREFIX) WINEDEBUG=-all WINEDLLOVERRIDES=mscoree,mshtml=

.PHONY: windows test-windows clean-windows

deps-windows: deps-build
	$(call apt_install,gcc-mingw-w64-x86-64-posix dpkg-dev)

deps-wine:
	$(call apt_install,wine wine64)

windows: deps-windows
	mkdir -p $(WIN_TOOLCHAIN)
	CMOCKA_TOOLCHAIN=$(CURDIR)/cmake/mingw-w64.cmake CMOCKA_LABEL=mingw JOBS=$(JOBS) \
		sh cmake/fetch-cmocka-musl.sh $(WIN_TOOLCHAIN)
	cmake -S . -B $(WIN_DIR) -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/mingw-w64.cmake \
		-DASYNCIO_MINGW_SYSROOT=$(WIN_TOOLCHAIN)/sysroot -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DASYNCIO_WERROR=$(WERROR) -DASYNCIO_BUILD_TESTS=ON $(CMAKE_ARGS) >/dev/null
	cmake --build $(WIN_DIR) -j $(JOBS)

# The prefix is made first, by wineboot alone, and `wineserver -w` waits until that server
# and the services wineboot started have exited: a prefix still being set up when the first
# suite starts updates itself inside that suite, whose wine processes then keep ctest's pipe
# open past its timeout (a clean-clone CI run failed readme_sample that way). Then one
# persistent wineserver for the whole run (`wineserver -p`; stopped at the end with
# `wineserver -k`, for this prefix only), so the suites do not pay its start-up each (-p
# fails harmlessly when one already runs; -w waits until it has exited).
#
# wine is installed before the build is configured (the toolchain file finds it and makes it
# ctest's CMAKE_CROSSCOMPILING_EMULATOR); a build configured without it (`make windows` on a
# machine without wine, or `make -j` running both at once) is configured again here, or ctest
# would start the .exe files as shell scripts (a clean-machine CI run failed every suite so).
test-windows: deps-wine windows
	@set -e; export $(WIN_ENV); \
	if ! grep -q '^ASYNCIO_WINE:FILEPATH=/' $(WIN_DIR)/CMakeCache.txt; then \
		cmake $(WIN_DIR) >/dev/null; \
		grep -q '^ASYNCIO_WINE:FILEPATH=/' $(WIN_DIR)/CMakeCache.txt || \
			{ echo "test-windows: wine not found after installing it"; exit 1; }; \
	fi; \
	echo "wine prefix: $(WIN_PREFIX)"; \
	mkdir -p $(WIN_PREFIX); \
	if [ ! -f $(WIN_PREFIX)/system.reg ]; then \
		wineboot -i >/dev/null 2>&1 || true; timeout 300 wineserver -w 2>/dev/null || true; \
	fi; \
	wineserver -p 2>/dev/null || true; wineboot -i >/dev/null 2>&1 || true; \
	rc=0; \
	( cd $(WIN_DIR) && $(CTEST) ) || rc=$$?; \
	if [ $$rc -eq 0 ]; then sh tests/windows_echo.sh $(WIN_DIR) || rc=$$?; fi; \
	wineserver -k 2>/dev/null || true; wineserver -w 2>/dev/null || true; \
	exit $$rc

clean: clean-windows
clean-windows:
	rm -rf $(WIN_DIR)
# --- end windows ----------------------------------------------------------------------
