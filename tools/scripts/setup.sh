#!/usr/bin/env bash
# Installs what a make target needs, pinned, and says what it does. Idempotent.
#   setup.sh host   <toolchain>
#   setup.sh kernel <toolchain>
#   setup.sh apps   <toolchain> <elf2tab version> <tockloader version>
#   setup.sh qemu
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { echo "setup: $*"; }

need_rustup() {
    if ! command -v rustup >/dev/null; then
        echo "setup: rustup is required (https://rustup.rs); install it and re-run" >&2
        exit 1
    fi
}

toolchain() { # <toolchain> [components...] -- [targets...]
    local tc=$1; shift
    local comps=() targets=() seen_sep=0
    for a in "$@"; do
        if [ "$a" = "--" ]; then seen_sep=1; continue; fi
        if [ $seen_sep = 0 ]; then comps+=("$a"); else targets+=("$a"); fi
    done
    need_rustup
    if ! rustup toolchain list | grep -q "^$tc"; then
        say "installing Rust toolchain $tc"
        rustup toolchain install "$tc" --profile minimal
    fi
    local have_c have_t
    have_c=$(rustup component list --toolchain "$tc" --installed 2>/dev/null || true)
    for c in "${comps[@]}"; do
        grep -q "^$c" <<<"$have_c" || { say "adding component $c to $tc"; rustup component add --toolchain "$tc" "$c"; }
    done
    have_t=$(rustup target list --toolchain "$tc" --installed 2>/dev/null || true)
    for t in "${targets[@]}"; do
        grep -qx "$t" <<<"$have_t" || { say "adding target $t to $tc"; rustup target add --toolchain "$tc" "$t"; }
    done
}

case "${1:-}" in
host)
    toolchain "$2" clippy rustfmt
    ;;
kernel)
    toolchain "$2" rust-src llvm-tools clippy rustfmt -- thumbv7em-none-eabihf riscv32imac-unknown-none-elf
    ;;
apps)
    toolchain "$2" rust-src llvm-tools -- thumbv7em-none-eabihf riscv32imac-unknown-none-elf
    if ! elf2tab --version 2>/dev/null | grep -q "$3"; then
        say "installing elf2tab $3 (cargo install)"
        cargo +"$2" install --locked --quiet elf2tab --version "$3"
    fi
    if ! tockloader --version 2>/dev/null | grep -q "$4"; then
        say "installing tockloader $4 (pip)"
        python3 -m pip install --quiet "tockloader==$4" \
            || python3 -m pip install --quiet --break-system-packages "tockloader==$4"
    fi
    ;;
qemu)
    if command -v qemu-system-riscv32 >/dev/null; then
        exit 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing QEMU (apt-get install qemu-system-misc)"
        apt-get update -qq
        # bookworm-backports has QEMU 10; plain bookworm has 7.2. Both are supported.
        apt-get install -y -qq qemu-system-misc >/dev/null
    else
        echo "setup: qemu-system-riscv32 is missing and this is not a root shell with apt; install QEMU (Debian: qemu-system-misc) to run the emulated board" >&2
        exit 1
    fi
    ;;
*)
    echo "usage: $0 host|kernel|apps|qemu ..." >&2
    exit 2
    ;;
esac
