# TDBStore for Tock on the Arduino Portenta H7: top-level entry points.
#
#   make run    the tutorial's stats cycle: on the emulated board under QEMU when the Tock
#               sources resolve, otherwise on the host against a simulated Portenta flash image
#   make test   every test that can run on this machine; says what it skips and why
#   make mutants  mutation scores of the engine, the store capsule and the KV syscall driver
#               (not part of `make test`: tens of minutes; tools/scripts/mutants.py)
#
# Both install what they need first (pinned toolchains, targets, cargo tools, QEMU via apt
# when root). Set-up steps print what they do; nothing is installed that is already there.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := run

# What gets installed is named once: toolchains, components and targets by the
# rust-toolchain.toml files (tools/scripts/rust_toolchains.py), elf2tab and tockloader
# versions in tools/scripts/setup.sh.
SETUP := tools/scripts/setup.sh

# Golden vectors from the real Mbed TDBStore, read in place.
export TDBSTORE_VECTORS ?= $(abspath ../shared/vectors)

BUILD := build
STATS_IMAGE := $(BUILD)/portenta-kv.img

# Whether the pinned Tock and libtock-rs sources resolve here (GitHub, or a machine-local
# cargo source replacement). Evaluated lazily by the recipes that need it.
tock_resolves = tools/scripts/tock-sources.sh boards
apps_resolve  = tools/scripts/tock-sources.sh apps

.PHONY: run run-host test test-host test-kernel test-apps test-e2e setup setup-host setup-qemu \
        bench powercut mutants clean help

help:
	@sed -n '1,14p' Makefile

# ---------------------------------------------------------------------------------------------
# Set-up

# Everything `make run` and `make test` build with: every toolchain file's toolchain,
# components and targets, then elf2tab and tockloader.
setup:
	@$(SETUP) rust
	@$(SETUP) tools

# The host workspace's toolchain alone: enough for the host suite and `make run-host`.
setup-host:
	@$(SETUP) rust .

setup-qemu:
	@$(SETUP) qemu

# ---------------------------------------------------------------------------------------------
# Run

run: setup-host
	@$(MAKE) --no-print-directory setup || echo "make run: set-up of the Tock toolchains failed; see above"
	@if [ -d boards/qemu_rv32_virt_kv ] && $(tock_resolves) && $(apps_resolve); then \
	    $(MAKE) --no-print-directory -C boards/qemu_rv32_virt_kv run; \
	else \
	    echo "make run: the emulated board needs the pinned Tock and libtock-rs sources, which do not resolve here; running the stats cycle on the host instead."; \
	    $(MAKE) --no-print-directory run-host; \
	fi

# The tutorial's cycle on the host: run it twice and the run count goes up.
run-host: setup-host
	@mkdir -p $(BUILD)
	@cargo build --release --quiet -p tdbstore-cli
	@target/release/tdbstore --geometry portenta $(STATS_IMAGE) stats-cycle
	@echo "(store image: $(STATS_IMAGE); inspect it with: target/release/tdbstore $(STATS_IMAGE) info)"

# ---------------------------------------------------------------------------------------------
# Test

# Each suite runs whatever the others did; the summary at the end counts and lists skips.
test: setup-host
	@python3 tools/scripts/test_suites.py host kernel apps e2e

test-host: setup-host
	@if [ ! -d "$(TDBSTORE_VECTORS)" ]; then echo "SKIPPED: golden-vector tests ($(TDBSTORE_VECTORS) missing)"; fi
	python3 tools/scripts/rust_toolchains.py selftest
	python3 tools/scripts/rust_toolchains.py check
	cargo test --workspace --all-targets
	cargo test --workspace --doc
	@# The engine with each optional operation set alone (the capsule builds it with none).
	@for f in "" incremental iteration reserved-data; do \
		echo "cargo check -p tdbstore --no-default-features --features '$$f'"; \
		RUSTFLAGS=-Dwarnings cargo check --quiet -p tdbstore --no-default-features --features "$$f" \
			--target-dir target/feature-check || exit 1; \
	done

test-kernel:
	@if [ ! -f boards/Cargo.toml ]; then echo "SKIPPED: kernel workspace not present yet"; exit 0; fi; \
	$(MAKE) --no-print-directory setup; \
	if ! $(tock_resolves); then echo "SKIPPED: kernel workspace tests (the pinned Tock sources do not resolve offline; see README 'Building without GitHub')"; exit 0; fi; \
	$(MAKE) --no-print-directory -C boards test

test-apps:
	@if [ ! -f apps/Cargo.toml ]; then echo "SKIPPED: app workspace not present yet"; exit 0; fi; \
	$(MAKE) --no-print-directory setup; \
	if ! $(apps_resolve); then echo "SKIPPED: app tests (the pinned libtock-rs sources do not resolve offline)"; exit 0; fi; \
	$(MAKE) --no-print-directory -C apps test

test-e2e:
	@if [ ! -d boards/qemu_rv32_virt_kv ]; then echo "SKIPPED: end-to-end QEMU tests (emulated board not present yet)"; exit 0; fi; \
	$(MAKE) --no-print-directory setup; \
	if ! $(tock_resolves) || ! $(apps_resolve); then echo "SKIPPED: end-to-end QEMU tests (Tock/libtock-rs sources do not resolve)"; exit 0; fi; \
	$(MAKE) --no-print-directory -C boards/qemu_rv32_virt_kv e2e

# ---------------------------------------------------------------------------------------------
# Tools

# The benchmark (tools/bench). First the Portenta kernel is built and the key-value capsule's
# flash and RAM measured in it; where that cannot be done the report says why.
BENCH_FOOTPRINT := $(BUILD)/kv-footprint.json
bench: setup-host
	@mkdir -p $(BUILD) && rm -f $(BENCH_FOOTPRINT)
	@why=; \
	if [ ! -f boards/portenta_h7/Makefile ]; then why="the Portenta board is not in this tree"; \
	elif ! $(tock_resolves); then why="the pinned Tock sources do not resolve here, so the kernel cannot be built (see README 'Building without GitHub')"; \
	elif ! $(MAKE) --no-print-directory setup; then why="setting up the kernel toolchain failed (make setup)"; \
	elif ! $(MAKE) --no-print-directory -C boards/portenta_h7 kv-footprint FOOTPRINT=$(abspath $(BENCH_FOOTPRINT)); then why="building or measuring the Portenta kernel failed (make -C boards/portenta_h7 kv-footprint)"; \
	fi; \
	if [ -n "$$why" ]; then \
	    echo "make bench: capsule footprint not measured: $$why"; \
	    python3 tools/bench/scripts/kv_footprint.py --unavailable "$$why" --out $(BENCH_FOOTPRINT); \
	fi
	TDBSTORE_BENCH_COMMAND='`make bench`' cargo run --release -p tdbstore-bench -- --footprint $(BENCH_FOOTPRINT)

# Mutation testing, time-boxed by sampling (MUTANTS_ENGINE_SHARD=1/16, MUTANTS_CAPSULE_SHARD=1/4,
# MUTANTS_DRIVER_SHARD=1/1 by default; 1/1 runs every mutant) and MUTANTS_TIMEOUT seconds per
# mutant's tests. MUTANTS_CRATES picks crates (driver capsule engine). Results: build/mutants/.
MUTANTS_CRATES ?= driver capsule engine
mutants: setup-host
	@$(SETUP) mutants
	@$(SETUP) rust boards
	@if ! $(tock_resolves); then echo "make mutants: the pinned Tock sources do not resolve here; the engine alone"; \
	    python3 tools/scripts/mutants.py engine; \
	else python3 tools/scripts/mutants.py $(MUTANTS_CRATES); fi

powercut: setup-host
	cargo run --release -p tdbstore-powercut -- --full

clean:
	cargo clean
	rm -rf $(BUILD)
