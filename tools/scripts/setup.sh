#!/usr/bin/env bash
# Installs what a make target needs, pinned, and says what it does. Idempotent: nothing that
# is already there is installed again.
#   setup.sh rust [DIR...]   Rust toolchains, components and targets: from the repository's
#                            rust-toolchain.toml files (all, or those of DIRs) and the targets
#                            its builds name (rust_toolchains.py: the one list)
#   setup.sh tools           elf2tab and tockloader, at the versions pinned below
#   setup.sh mutants         cargo-mutants, at the version pinned below (for `make mutants`)
#   setup.sh qemu            qemu-system-riscv32 (Debian's qemu-system-misc, when root)
#   setup.sh apt CMD PKG     the Debian package PKG when CMD is missing (root), else say so
set -euo pipefail
cd "$(dirname "$0")/../.."

# Host tools the app and board builds use; the only place their versions are named.
ELF2TAB_VERSION=0.13.0
TOCKLOADER_VERSION=1.19.0
CARGO_MUTANTS_VERSION=27.1.0
# elf2tab is built with the apps' toolchain (stable), which `rust` installs.
TOOLS_TOOLCHAIN=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' apps/rust-toolchain.toml)

say() { echo "setup: $*"; }

# Installs Debian package $2 when command $1 is missing; 1 (and says why) when it can't.
apt_install() {
    command -v "$1" >/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing $2 (apt-get install $2) for $1"
        [ -n "${APT_UPDATED:-}" ] || apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
        command -v "$1" >/dev/null && return 0
    fi
    echo "setup: $1 is missing and this is not a root shell with apt-get; install it (Debian package: $2)" >&2
    return 1
}

case "${1:-}" in
rust)
    shift
    python3 tools/scripts/rust_toolchains.py install "$@"
    ;;
tools)
    python3 tools/scripts/rust_toolchains.py install apps
    if ! elf2tab --version 2>/dev/null | grep -q "$ELF2TAB_VERSION"; then
        say "installing elf2tab $ELF2TAB_VERSION (cargo install)"
        cargo +"$TOOLS_TOOLCHAIN" install --locked --quiet elf2tab --version "$ELF2TAB_VERSION"
    fi
    if ! tockloader --version 2>/dev/null | grep -q "$TOCKLOADER_VERSION"; then
        say "installing tockloader $TOCKLOADER_VERSION (pip)"
        python3 -m pip install --quiet "tockloader==$TOCKLOADER_VERSION" \
            || python3 -m pip install --quiet --break-system-packages "tockloader==$TOCKLOADER_VERSION"
    fi
    ;;
mutants)
    if ! cargo mutants --version 2>/dev/null | grep -q "$CARGO_MUTANTS_VERSION"; then
        say "installing cargo-mutants $CARGO_MUTANTS_VERSION (cargo install)"
        cargo install --locked --quiet cargo-mutants --version "$CARGO_MUTANTS_VERSION"
    fi
    ;;
qemu)
    # Debian 12 has QEMU 7.2 (qemu-system-misc), Debian 13 and bookworm-backports 10.x, where
    # RISC-V moved to its own package (qemu-system-riscv): both are supported (the emulated
    # board asks QEMU which ePMP property it has).
    command -v qemu-system-riscv32 >/dev/null && exit 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        export APT_UPDATED=1
        if apt-cache show qemu-system-riscv >/dev/null 2>&1; then
            say "installing qemu-system-riscv (apt-get)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-riscv >/dev/null || true
        fi
    fi
    apt_install qemu-system-riscv32 qemu-system-misc
    ;;
apt)
    apt_install "$2" "$3"
    ;;
*)
    echo "usage: $0 rust [DIR...] | tools | qemu | apt CMD PACKAGE" >&2
    exit 2
    ;;
esac
