#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0 or the MIT License.
# SPDX-License-Identifier: Apache-2.0 OR MIT
"""The Rust toolchains, components and targets this repository builds with, from one list.

That list is the repository's own `rust-toolchain.toml` files: each pins a channel, its
components and its targets for the folder it sits in. Nothing else names what to install, so
a new target cannot be added without its install: a target that a `.cargo/config.toml`
(`[build] target`) or a Makefile in a folder names must be in that folder's governing
`rust-toolchain.toml` (the nearest one above it), or `check` fails and `make test` with it;
`install` installs those targets as well, so a build never stops at a missing `core`.

    rust_toolchains.py list             what each toolchain file asks for
    rust_toolchains.py check            every target a build names is in its toolchain file
    rust_toolchains.py install [DIR..]  install what is missing (all files, or those for DIRs)
    rust_toolchains.py selftest         `check` refuses a target missing from its toolchain file

Python 3.11+ stdlib only (tomllib). rustup does the installs; RUSTUP_AUTO_INSTALL may be off,
so nothing relies on rustup installing a toolchain file's contents by itself.
"""

import os
import re
import subprocess
import sys
import tomllib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SKIP_DIRS = {".git", "target", "build", "node_modules", "__pycache__"}
# Bare-metal target triples as Makefiles and cargo configs spell them.
TRIPLE = re.compile(r"\b((?:thumbv|riscv|armv|aarch64|x86_64)[a-z0-9_.]*-(?:[a-z0-9_]+-)*none(?:-[a-z0-9_]+)?)\b")


def repo_files(root):
    """Tracked files when this is a git checkout (CI's fresh clone), else a walk."""
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z"], check=True,
                             capture_output=True).stdout.decode()
        if out:
            return [f for f in out.split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        pass
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        found += [os.path.relpath(os.path.join(dirpath, f), root) for f in filenames]
    return found


class Toolchain:
    """One `rust-toolchain.toml`: the folder it governs and what it pins."""

    def __init__(self, root, path):
        self.path = path
        self.dir = os.path.dirname(path)
        with open(os.path.join(root, path), "rb") as f:
            tc = tomllib.load(f).get("toolchain", {})
        if "channel" not in tc:
            raise SystemExit(f"{path}: no [toolchain] channel")
        self.channel = tc["channel"]
        self.components = list(tc.get("components", []))
        self.targets = list(tc.get("targets", []))
        self.profile = tc.get("profile", "minimal")
        # Targets that builds in this folder name (filled by `named_targets`).
        self.named = {}

    def governs(self, path):
        return self.dir == "" or path == self.dir or path.startswith(self.dir + "/")


def toolchains(root=ROOT):
    files = repo_files(root)
    tcs = [Toolchain(root, f) for f in files if os.path.basename(f) == "rust-toolchain.toml"]
    # Nearest toolchain file first: the deepest folder that contains a path governs it.
    tcs.sort(key=lambda t: -len(t.dir))
    for f in files:
        base = os.path.basename(f)
        is_config = f.endswith(".cargo/config.toml") or f.endswith(".cargo/config")
        if not (is_config or base in ("Makefile",) or base.endswith(".mk")):
            continue
        owner = next((t for t in tcs if t.governs(f)), None)
        if owner is None:
            continue
        with open(os.path.join(root, f), encoding="utf-8") as fh:
            text = fh.read()
        if is_config:
            build = tomllib.loads(text).get("build", {}).get("target", [])
            names = [build] if isinstance(build, str) else list(build)
        else:
            names = [m for line in text.splitlines() if not line.lstrip().startswith("#")
                     for m in TRIPLE.findall(line)]
        for n in names:
            owner.named.setdefault(n, []).append(f)
    return tcs


def rustup(*args, capture=False):
    return subprocess.run(["rustup", *args], check=True, text=True,
                          capture_output=capture).stdout if capture else \
        subprocess.run(["rustup", *args], check=True)


def install(tcs):
    if subprocess.run(["sh", "-c", "command -v rustup"], capture_output=True).returncode != 0:
        raise SystemExit("setup: rustup is required (https://rustup.rs); install it and re-run")
    # One toolchain may be pinned by several files: merge what they ask for.
    wanted = {}
    for t in tcs:
        comps, targets = wanted.setdefault(t.channel, (set(), set()))
        comps.update(t.components)
        targets.update(t.targets)
        targets.update(t.named)
    have = rustup("toolchain", "list", capture=True)
    for channel, (comps, targets) in sorted(wanted.items()):
        if not any(line.split()[0].startswith(channel + "-") or line.split()[0] == channel
                   for line in have.splitlines() if line.strip()):
            print(f"setup: installing Rust toolchain {channel}", flush=True)
            rustup("toolchain", "install", channel, "--profile", "minimal", "--no-self-update")
        have_c = rustup("component", "list", "--toolchain", channel, "--installed", capture=True)
        installed_c = {re.sub(r"-(x86_64|aarch64|i686)-.*$", "", c) for c in have_c.split()}
        for c in sorted(comps):
            if c not in installed_c and not any(i.startswith(c) for i in installed_c):
                print(f"setup: adding component {c} to {channel}", flush=True)
                rustup("component", "add", "--toolchain", channel, c)
        have_t = set(rustup("target", "list", "--toolchain", channel, "--installed", capture=True).split())
        for tgt in sorted(targets):
            if tgt not in have_t:
                print(f"setup: adding target {tgt} to {channel}", flush=True)
                rustup("target", "add", "--toolchain", channel, tgt)


def check(tcs, quiet=False):
    """Every target a build names is in its governing toolchain file."""
    problems = []
    for t in tcs:
        for target, where in sorted(t.named.items()):
            if target not in t.targets:
                problems.append(f"{', '.join(sorted(set(where)))} builds for {target}, which "
                                f"{t.path} does not list in `targets`: add it there")
    if quiet:
        return 1 if problems else 0
    for p in problems:
        print("rust_toolchains: " + p, file=sys.stderr)
    if not problems:
        print(f"rust_toolchains: ok: {len(tcs)} toolchain files; every target a build names is listed "
              f"({', '.join(sorted({n for t in tcs for n in t.named}))})")
    return 1 if problems else 0


def selftest():
    """The check must be able to fail: a board naming a target its toolchain file lacks."""
    import tempfile
    with tempfile.TemporaryDirectory() as root:
        def write(path, text):
            os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
            with open(os.path.join(root, path), "w") as f:
                f.write(text)
        write("rust-toolchain.toml", '[toolchain]\nchannel = "1.0.0"\n')
        write("k/rust-toolchain.toml", '[toolchain]\nchannel = "nightly"\ntargets = ["thumbv7em-none-eabihf"]\n')
        write("k/b/.cargo/config.toml", '[build]\ntarget = "thumbv7em-none-eabi"\n')
        write("k/b/Makefile", "T := riscv32imac-unknown-none-elf\n# thumbv6m-none-eabi in a comment\n")
        tcs = toolchains(root)
        k = next(t for t in tcs if t.dir == "k")
        got = sorted(k.named)
        want = ["riscv32imac-unknown-none-elf", "thumbv7em-none-eabi"]
        if got != want:
            print(f"rust_toolchains selftest: named targets {got}, expected {want}", file=sys.stderr)
            return 1
        if check(tcs, quiet=True) == 0:
            print("rust_toolchains selftest: check passed a target missing from its toolchain file",
                  file=sys.stderr)
            return 1
        write("k/rust-toolchain.toml", '[toolchain]\nchannel = "nightly"\ntargets = '
              '["thumbv7em-none-eabi", "riscv32imac-unknown-none-elf"]\n')
        if check(toolchains(root), quiet=True) != 0:
            return 1
    print("rust_toolchains selftest: ok (a missing target fails the check, a listed one passes)")
    return 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else "list"
    tcs = toolchains()
    if cmd == "list":
        for t in sorted(tcs, key=lambda t: t.path):
            print(f"{t.path}: {t.channel}; components {' '.join(t.components) or '-'}; "
                  f"targets {' '.join(t.targets) or '-'}")
        return 0
    if cmd == "check":
        return check(tcs)
    if cmd == "selftest":
        return selftest()
    if cmd == "install":
        dirs = [os.path.relpath(os.path.abspath(d), ROOT) for d in argv[2:]]
        dirs = ["" if d == "." else d for d in dirs]
        chosen = [t for t in tcs if not dirs or t.dir in dirs]
        if not chosen:
            raise SystemExit(f"rust_toolchains: no rust-toolchain.toml in {', '.join(argv[2:])}")
        install(chosen)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
