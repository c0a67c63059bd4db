#!/usr/bin/env bash
# The benchmark's "before" figures: the engine's per-operation flash costs and the capsule's
# footprint on the Portenta H7 at commit 59fd729, the last one before the engine restructure,
# written to tools/bench/results/before-59fd729.json, which the report shows beside every run.
#
#   tools/bench/scripts/before.sh
#
# How: the commit is checked out in a temporary git worktree outside the repository; this
# benchmark's sources (tools/bench as it is in the working tree) replace that commit's, with
# the glue in before-59fd729.patch (the old engine has no conditional write, so add/update are
# a lookup and a set, as its capsule did them; its Geometry is converted from the simulator's);
# then, there:
#   - the per-operation measurement alone, for every engine configuration
#     (`tdbstore-bench --ops-only --only tdbstore`);
#   - that commit's Portenta kernel (`make -C boards/portenta_h7 size`), measured by this
#     tree's kv_footprint.py.
# The worktree ($BEFORE_TARGET/tree) and the build products go to $BEFORE_TARGET (default
# /tmp/tdbstore-before; the two cargo target directories can be named apart, BEFORE_HOST_TARGET
# and BEFORE_KERNEL_TARGET), never into the repository's target/ or build/. The worktree is
# removed at the end.
#
# Needs: the host toolchain, Tock's pinned nightly with thumbv7em-none-eabi and llvm-tools
# (`make setup`), the pinned Tock sources (as for `make -C boards/portenta_h7`), and
# llvm-dwarfdump for the RAM figures.

set -euo pipefail

COMMIT=59fd729
here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
bench=$repo/tools/bench
glue=$here/before-$COMMIT.patch
out=$bench/results/before-$COMMIT.json
target=${BEFORE_TARGET:-/tmp/tdbstore-before}
host_target=${BEFORE_HOST_TARGET:-$target/host}
kernel_target=${BEFORE_KERNEL_TARGET:-$target/kernel}
# A fixed path: the kernel embeds its source paths (panic locations), so its total size
# depends on where the tree is.
work=$target/tree

git -C "$repo" worktree add --detach "$work" "$COMMIT" >/dev/null
trap 'git -C "$repo" worktree remove --force "$work"' EXIT
echo "before.sh: $COMMIT checked out in $work"

rm -rf "$work/tools/bench"
mkdir -p "$work/tools/bench"
cp -r "$bench/Cargo.toml" "$bench/src" "$bench/tests" "$bench/scripts" "$work/tools/bench/"
git -C "$work" apply "$glue"

# The kernel and its footprint.
mkdir -p "$target"
(cd "$work" && CARGO_TARGET_DIR="$kernel_target" make --no-print-directory -C boards/portenta_h7 size)
llvm_bin=$(cd "$work/boards" && echo "$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin")
python3 "$bench/scripts/kv_footprint.py" --elf "$kernel_target/thumbv7em-none-eabi/release/portenta_h7" \
    --llvm-bin "$llvm_bin" --board portenta_h7 --target thumbv7em-none-eabi --out "$target/kv-footprint.json"

# The per-operation costs, written with the footprint as the baseline file.
bench_head=$(git -C "$repo" rev-parse --short=12 HEAD)
dirty=$(git -C "$repo" status --porcelain --untracked-files=no -- tools/bench | grep -q . && echo " with uncommitted changes" || true)
how="this benchmark's sources (tools/bench at \`$bench_head\`$dirty) run on commit \`$COMMIT\`'s engine \
with the glue tools/bench/scripts/before-$COMMIT.patch; per-operation costs by \`tdbstore-bench --ops-only \
--only tdbstore\`; footprint by \`make -C boards/portenta_h7 size\` at \`$COMMIT\` and \
tools/bench/scripts/kv_footprint.py; regenerate with \`tools/bench/scripts/before.sh\`"
(cd "$work" && CARGO_TARGET_DIR="$host_target" TDBSTORE_BENCH_COMMAND='`tools/bench/scripts/before.sh`' \
    cargo run --release -p tdbstore-bench -- --ops-only --only tdbstore --no-before \
    --out "$target/results" --footprint "$target/kv-footprint.json" \
    --write-baseline "$out" --baseline-how "$how")
echo "before.sh: wrote $out"
