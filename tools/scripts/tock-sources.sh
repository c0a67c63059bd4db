#!/usr/bin/env bash
# Exit 0 when the Tock-side workspace (boards | apps) resolves its pinned git dependencies:
# from GitHub, or offline through a machine-local cargo source replacement (README,
# "Building without GitHub"). Prints nothing; callers say what they skip.
set -uo pipefail
cd "$(dirname "$0")/../.."
[ -f "$1/Cargo.toml" ] || exit 1
# From inside the workspace, so its rust-toolchain.toml picks the toolchain (the kernel
# workspace uses nightly-only cargo features).
cd "$1"
cargo metadata --offline --format-version 1 >/dev/null 2>&1 && exit 0
# Online users: let cargo fetch the pinned revisions (bounded, so an offline machine moves on).
timeout 120 cargo metadata --format-version 1 >/dev/null 2>&1
