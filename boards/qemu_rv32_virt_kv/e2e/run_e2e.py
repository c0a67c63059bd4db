#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0 or the MIT License.
# SPDX-License-Identifier: Apache-2.0 OR MIT
"""End-to-end tests of the emulated board under QEMU. Python 3 stdlib only.

Run through `make e2e` (which builds the kernel, the apps and the e2e app first). Each check
prints one line, PASS or FAIL; the last line is `N passed, M failed`; the exit status is 1 if
anything failed.

1. boot count     fresh store, kv_stats and kv_share booted 3 times: run count 1, 2, 3
2. permissions    kv_share reads `stats` (read_ids has 1), cannot overwrite it (access_ids
                  lacks 1), keeps its own key; the noread TAB cannot read it; the stored
                  records carry their writers' ids; kv_stats's record is never changed by
                  kv_share
3. upstream kv    libtock-rs's examples/kv.rs, unmodified, prints its expected lines
4. power cut      kv_burst writes bursts of keys; QEMU is killed (SIGKILL) at random instants
                  (one per seed); every reboot mounts the store and finds each key at its old
                  or its new value, the canary and kv_stats's record untouched; the host CLI
                  then checks the image offline
5. kv check       kv_check, in the style of upstream's C and Rust KV tests: keys of every
                  byte value and length, zero-length values, values at and over the limit,
                  add/add, update of a missing key, delete twice, garbage collection from
                  userspace (one key rewritten past the area's size never reports full), IPC
                  discovery; then the host CLI shows the app's keys as the app wrote them
6. unaligned      e2e/unaligned: u16/u32/u64 loads and stores at odd addresses in app flash,
                  RAM and stack, and core::fmt printing; no fault, every value right
Every boot must end by itself (the kernel stops QEMU when all processes have exited) with
status 0, except the killed ones. Boots run with `-icount` (see ICOUNT) unless --real-time.

--transport qemu-pty or serial runs the checks that apply to a real board (unaligned, boot
report, boot count and permissions, a power cut and its reboot, kv_check) over the serial
transport (serial_transport.py): `make e2e` here drives the emulated board through a pty with
it, `make -C boards/portenta_h7 e2e PORT=...` a real Portenta. Their lines read `serial: ...`.
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu  # noqa: E402
import serial_transport  # noqa: E402

# The store's region: the first 6 erase blocks of pflash bank 1 (src/main.rs KV_BLOCKS).
REGION_SIZE = 6 * 256 * 1024
CLI_GEOMETRY = ["--size", str(REGION_SIZE), "--program-size", "32", "--erase-size", "262144"]

# Virtual time from the instruction count (2^3 ns per instruction), skipping idle time: each
# boot runs the same way whatever the host's load (kv_share's 0.5 s wait for kv_stats is
# then exactly that, in virtual time) and several times faster than real time.
ICOUNT = "-icount shift=3,sleep=off"

UPSTREAM_KV_LINES = [
    "KV available!",
    "error KV::get()",
    "Successfully set the key-value",
    "Got value len: 11",
    "Value: kv test app",
    "Successfully deleted the key-value",
    "error KV::get()",
]


class Results:
    """PASS/FAIL lines; `prefix` names the transport in each (e.g. `serial: `)."""

    def __init__(self, prefix=""):
        self.passed = 0
        self.failed = 0
        self.prefix = prefix

    def check(self, ok, name, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS  {self.prefix}{name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL  {self.prefix}{name}" + (f": {detail}" if detail else ""), flush=True)
        return ok


class Env:
    def __init__(self, args):
        self.args = args
        self.build = args.build
        os.makedirs(self.build, exist_ok=True)
        self._images = {}
        self._boots = 0
        shutil.rmtree(os.path.join(self.build, "logs"), ignore_errors=True)

    def tab(self, name):
        for d in (self.args.apps, self.args.e2e_apps):
            p = os.path.join(d, name + ".tab")
            if os.path.exists(p):
                return p
        return None

    def apps(self, *names):
        """An app image with these TABs (cached)."""
        if names not in self._images:
            out = os.path.join(self.build, "apps-" + "+".join(names) + ".bin")
            qemu.app_image(out, [self.tab(n) for n in names], self.args.tockloader)
            self._images[names] = out
        return self._images[names]

    def fresh_store(self, name):
        path = os.path.join(self.build, name + ".img")
        if os.path.exists(path):
            os.remove(path)
        qemu.kv_image(path)
        return path

    def boot(self, apps, kv, **kw):
        """Boots, and keeps the console in <build>/logs/NNN-<store>.log."""
        kw.setdefault("timeout", self.args.timeout)
        if self.args.verbose:
            kw.setdefault("echo", lambda line: print("    | " + line, flush=True))
        flags = self.args.qemu + ("" if self.args.real_time else " " + ICOUNT)
        b = qemu.boot(flags, apps, kv, **kw)
        self._boots += 1
        logs = os.path.join(self.build, "logs")
        os.makedirs(logs, exist_ok=True)
        name = f"{self._boots:03}-{os.path.splitext(os.path.basename(kv))[0]}.log"
        with open(os.path.join(logs, name), "w") as f:
            f.write(b.text() + f"\n[qemu status {b.status}, killed {b.killed}, timed out {b.timed_out}]\n")
        return b

    def cli(self, image, *command):
        """The host CLI on the store region of a pflash file: parsed JSON, exit status."""
        region = os.path.join(self.build, "region.bin")
        with open(image, "rb") as f:
            data = f.read(REGION_SIZE)
        with open(region, "wb") as f:
            f.write(data)
        return self.cli_region(region, CLI_GEOMETRY, *command)

    def cli_region(self, region, geometry, *command):
        """The host CLI on a region image with this geometry: parsed JSON, exit status."""
        cmd = ["cargo", "run", "-q", "-p", "tdbstore-cli", "--release", "--",
               *geometry, "--json", region, *command]
        p = subprocess.run(cmd, cwd=self.args.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out = json.loads(p.stdout)
        except json.JSONDecodeError:
            out = {"error": (p.stdout + p.stderr).strip()[-400:]}
        return out, p.returncode


def tail(boot, n=12):
    return " | ".join(boot.lines[-n:])


def ended(results, boot, name):
    what = getattr(boot, "ended_what", "QEMU ended by itself, status 0")
    return results.check(boot.ended_cleanly(), f"{name}: {what}",
                         f"status {boot.status}, timed out {boot.timed_out}; last lines: {tail(boot)}")


def run_count(boot):
    """kv_stats's run count after its update (the line after 'Current Stats')."""
    lines = boot.lines
    for i, line in enumerate(lines):
        if line.strip() == "Current Stats":
            for later in lines[i + 1:i + 5]:
                m = re.match(r"\s*Run Count: (\d+)", later)
                if m:
                    return int(m.group(1))
    return None


def mount_line(boot):
    """The capsule's mount report and its area version, e.g. ("area 0, version 1, ...", 1)."""
    for line in boot.lines:
        m = re.search(r"tdbstore: mounted(\W+)(area \d+, version (\d+).*)$", line)
        if m:
            report = m.group(2)
            if "(" in m.group(1) and report.endswith(")"):
                report = report[:-1]
            return report, int(m.group(3))
    return None


def record_writer(value_hex):
    """The write id in the 9-byte header Tock's KVStorePermissions stores before a value."""
    raw = bytes.fromhex(value_hex)
    if len(raw) < 9 or raw[0] != 0:
        return None
    return int.from_bytes(raw[5:9], "little")


# ---------------------------------------------------------------------------------------------

def test_boot_count_and_permissions(env, r, boots=3):
    print("== boot count and permissions (kv_stats + kv_share)", flush=True)
    if not (env.tab("kv_stats") and env.tab("kv_share")):
        r.check(False, "kv_stats.tab and kv_share.tab exist", f"not in {env.args.apps}")
        return
    kv = env.fresh_store("count")
    apps = env.apps("kv_stats", "kv_share")
    for n in range(1, boots + 1):
        b = env.boot(apps, kv)
        ended(r, b, f"boot {n}")
        text = b.text()
        r.check(run_count(b) == n, f"boot {n}: kv_stats prints run count {n}", f"got {run_count(b)}: {tail(b)}")
        first = "No previous data was found." in text
        r.check(first == (n == 1), f"boot {n}: {'no previous data' if n == 1 else 'previous stats found'}")
        want = f"kv_share: read stats: allowed (run count {n})"
        r.check(want in text, f"boot {n}: {want}", tail(b))
        r.check("kv_share: overwrite stats: denied" in text, f"boot {n}: kv_share: overwrite stats: denied", tail(b))
        r.check("kv_share: own key: ok" in text, f"boot {n}: kv_share: own key: ok", tail(b))

    # The noread TAB: same binary, read_ids without kv_stats's id.
    if env.tab("kv_share-noread"):
        b = env.boot(env.apps("kv_stats", "kv_share-noread"), kv)
        ended(r, b, "noread boot")
        text = b.text()
        r.check(run_count(b) == boots + 1, f"noread boot: run count {boots + 1} (kv_share never changed stats)",
                f"got {run_count(b)}")
        r.check("kv_share: read stats: denied" in text, "noread boot: kv_share: read stats: denied", tail(b))
        r.check("kv_share: overwrite stats: denied" in text, "noread boot: kv_share: overwrite stats: denied")
        r.check("kv_share: own key: ok" in text, "noread boot: kv_share: own key: ok")
        boots += 1
    else:
        r.check(False, "kv_share-noread.tab exists", f"not in {env.args.apps}")

    # Offline: the records carry their writers' ids; the store checks clean.
    out, status = env.cli(kv, "check")
    r.check(status == 0 and out.get("ok") is True, "host CLI: check passes on the boot-count store", str(out))
    out, _ = env.cli(kv, "get", "stats")
    hexval = out.get("hex") or ""
    r.check(record_writer(hexval) == 1, "host CLI: `stats` is stored under kv_stats's id 1", str(out))
    if len(hexval) >= 2 * (9 + 12):
        count = int.from_bytes(bytes.fromhex(hexval)[9 + 8:9 + 12], "little")
        r.check(count == boots, f"host CLI: `stats` holds run count {boots}", f"got {count}")
    out, _ = env.cli(kv, "get", "kv_share")
    r.check(record_writer(out.get("hex") or "") == 2, "host CLI: `kv_share` is stored under kv_share's id 2", str(out))


def test_upstream_kv(env, r):
    print("== libtock-rs examples/kv.rs, unmodified", flush=True)
    if not env.tab("upstream_kv"):
        r.check(False, "upstream_kv.tab exists (make -C apps upstream-kv-example)", f"not in {env.args.apps}")
        return
    kv = env.fresh_store("upstream")
    b = env.boot(env.apps("upstream_kv"), kv)
    ended(r, b, "upstream kv")
    lines = [line.strip() for line in b.lines]
    pos = 0
    for want in UPSTREAM_KV_LINES:
        try:
            pos = lines.index(want, pos) + 1
        except ValueError:
            r.check(False, "upstream kv: prints its expected lines in order", f"missing {want!r}: {tail(b)}")
            return
    r.check(True, "upstream kv: prints its expected lines in order")


class BurstModel:
    """What the store must hold, from kv_burst's console: key -> generation (None: absent)."""

    def __init__(self, keys=16):
        self.state = {i: None for i in range(keys)}
        self.in_flight = None  # (key, generation or None for a delete)
        self.ops = 0

    def feed(self, line):
        m = re.match(r"(set|del|ok) (\d+) (\d+)$", line)
        if not m:
            return False
        op, i, gen = m.group(1), int(m.group(2)), int(m.group(3))
        if op == "set":
            self.in_flight = (i, gen)
        elif op == "del":
            self.in_flight = (i, None)
        else:
            if self.in_flight and self.in_flight[0] == i:
                self.state[i] = self.in_flight[1]
            self.in_flight = None
            self.ops += 1
        return True

    def verify(self, boot):
        """Checks kv_burst's `state` lines against the model; adopts what it found. Returns a
        list of problems."""
        seen = {}
        problems = []
        for line in boot.lines:
            m = re.match(r"state (\d+) (.+)$", line)
            if m:
                seen[int(m.group(1))] = m.group(2)
        for i, want in self.state.items():
            got = seen.get(i)
            allowed = {"none" if want is None else str(want)}
            if self.in_flight and self.in_flight[0] == i:
                g = self.in_flight[1]
                allowed.add("none" if g is None else str(g))
            if got not in allowed:
                problems.append(f"burst_{i:02}: found {got}, expected one of {sorted(allowed)}")
            elif got is not None:
                self.state[i] = None if got == "none" else int(got)
        self.in_flight = None
        return problems


def test_power_cut(env, r, seeds):
    print(f"== power cuts during bursts of writes (seeds {seeds})", flush=True)
    if not env.tab("kv_burst"):
        r.check(False, "kv_burst.tab exists (make e2e-app)", f"not in {env.args.e2e_apps}")
        return
    kv = env.fresh_store("powercut")
    # Something that must survive untouched: kv_stats's record.
    if env.tab("kv_stats"):
        b = env.boot(env.apps("kv_stats"), kv)
        ended(r, b, "power cut: kv_stats boot")
    stats_before, _ = env.cli(kv, "get", "stats")

    apps = env.apps("kv_burst")
    model = BurstModel()
    first = True
    mounts = []
    for seed in seeds:
        rng = random.Random(seed)
        # Kill after 0..950 completed operations (a boot does 1000), then 0..3 ms later. Every
        # third seed cuts within 20 ms of the first write instead: after a torn tail, that
        # write first compacts into the other area, so the cut can land inside compaction.
        if seed % 3 == 0:
            target_ops, delay = 0, rng.uniform(0, 0.02)
        else:
            target_ops, delay = rng.randrange(0, 950), rng.uniform(0, 0.003)
        counted = {"ops": 0}

        def on_line(line, counted=counted, target_ops=target_ops, delay=delay):
            if line.startswith("ok "):
                counted["ops"] += 1
            if line.startswith(("set ", "del ")) and counted["ops"] >= target_ops:
                return delay
            return None

        b = env.boot(apps, kv, on_line=on_line)
        name = f"seed {seed}"
        mounts.append(mount_line(b))
        problems = [] if first else model.verify(b)
        canary = next((l for l in b.lines if l.startswith("canary ")), None)
        if not first:
            r.check(not problems, f"{name}: after the previous cut the store mounts and each key is old or new",
                    "; ".join(problems[:5]) or tail(b))
            r.check(canary == "canary ok", f"{name}: canary intact", f"got {canary}")
        r.check(not any(l.startswith("err ") or l in ("canary bad", "canary none" if not first else "")
                        or (l.startswith("state ") and ("error" in l or l.endswith(" bad"))) for l in b.lines),
                f"{name}: no errors from the store", tail(b))
        for line in b.lines:
            model.feed(line)
        flight = model.in_flight
        r.check(b.killed, f"{name}: QEMU killed after {counted['ops']} operations, "
                          f"{'in flight: ' + ('set' if flight and flight[1] is not None else 'del') + f' burst_{flight[0]:02}' if flight else 'between operations'}",
                f"not killed (status {b.status}, timed out {b.timed_out}): {tail(b)}")
        first = False

    # Final boot: verify, and let it run to the end.
    b = env.boot(apps, kv)
    mounts.append(mount_line(b))
    print("      mounts: " + "; ".join(f"{m[0]}" if m else "?" for m in mounts), flush=True)
    versions = [m[1] for m in mounts if m]
    r.check(len(versions) == len(mounts) and versions[-1] > versions[0],
            "the cuts and bursts went through garbage collection (the area version grew)", str(versions))
    problems = model.verify(b)
    r.check(not problems, "final boot: the store mounts and each key is old or new", "; ".join(problems[:5]))
    r.check(any(l == "canary ok" for l in b.lines), "final boot: canary intact")
    r.check("burst: done" in b.lines, f"final boot: a whole burst completes after the cuts ({b.seconds:.1f} s)", tail(b))
    for line in b.lines:
        model.feed(line)
    ended(r, b, "final boot")

    # Offline, with the host CLI on the same bytes.
    out, status = env.cli(kv, "check")
    r.check(status == 0 and out.get("ok") is True and not out.get("corrupt"),
            "host CLI: check passes after the power cuts", str(out))
    listing, _ = env.cli(kv, "ls")
    keys = sorted(k.get("key") for k in listing.get("keys", []))
    want = sorted([f"burst_{i:02}" for i, g in model.state.items() if g is not None] + ["burst_canary"]
                  + (["stats"] if env.tab("kv_stats") else []))
    r.check(keys == want, "host CLI: exactly the expected keys, nothing else", f"got {keys}, want {want}")
    stats_after, _ = env.cli(kv, "get", "stats")
    r.check(stats_after == stats_before, "host CLI: kv_stats's record unchanged by the cuts",
            f"{stats_before} -> {stats_after}")
    # Copy the image for a post-mortem.
    shutil.copy(kv, os.path.join(env.build, "powercut-final.img"))


# What kv_check leaves behind: stored key -> the app's key (hex), per tdbstore::app_key.
KV_CHECK_KEYS = {
    "kv_check": "kv_check".encode().hex(),
    "~Rmlyc3QgS2V5AAAAAAAAAA": (b"First Key" + bytes(7)).hex(),
    "~": "",
}
# The fewest PASS lines a complete kv_check run prints (a truncated run must not pass).
KV_CHECK_MIN_CHECKS = 37


def test_kv_check(env, r):
    print("== kv_check: the KV driver's codes, any key, garbage collection, IPC", flush=True)
    if not env.tab("kv_check"):
        r.check(False, "kv_check.tab exists (make e2e-app)", f"not in {env.args.e2e_apps}")
        return
    kv = env.fresh_store("check")
    b = env.boot(env.apps("kv_check"), kv, timeout=max(env.args.timeout, 600))
    ended(r, b, "kv_check")
    lines = [line.strip() for line in b.lines]
    passed = failed = 0
    for line in lines:
        if line.startswith("PASS "):
            passed += 1
            r.check(True, "kv_check: " + line[5:])
        elif line.startswith("FAIL "):
            failed += 1
            name, _, detail = line[5:].partition(": ")
            r.check(False, "kv_check: " + name, detail)
    done = next((l for l in lines if l.startswith("kv_check: done")), None)
    r.check(done == f"kv_check: done {passed} passed 0 failed" and failed == 0 and passed >= KV_CHECK_MIN_CHECKS,
            f"kv_check: ran to the end, every check passed (at least {KV_CHECK_MIN_CHECKS})",
            f"done line {done!r}, {passed} passed, {failed} failed ({b.seconds:.0f} s): {tail(b)}")
    # Offline: the app's keys as it wrote them, valid Mbed keys stored as they are.
    out, status = env.cli(kv, "check")
    r.check(status == 0 and out.get("ok") is True, "host CLI: check passes on kv_check's store", str(out))
    listing, _ = env.cli(kv, "ls")
    stored = {k.get("key"): k.get("app_key_hex") for k in listing.get("keys", [])}
    r.check(stored == KV_CHECK_KEYS, "host CLI: ls shows kv_check's keys as the app wrote them",
            f"got {stored}, want {KV_CHECK_KEYS}")
    info, _ = env.cli(kv, "info")
    r.check((info.get("version") or 0) > 1, "host CLI: the rewrites went through compaction (area version > 1)",
            str(info.get("version")))


# The stress test's apps (e2e/kv_stress, built by the Makefile's e2e-app): name -> storage id.
STRESS_APPS = {"stress_w0": 10, "stress_w1": 11, "stress_w2": 12, "stress_w3": 13, "stress_rd": 14,
               "stress_canary": 15, "stress_fuzz": 16, "stress_die": 17, "stress_gc": 18}
STRESS_CANARY = (b"stress_canary", b"the canary: nobody but its owner may change this")


def stress_figures(lines):
    """The `<role>: done ...` lines as {role: {field: int}}."""
    out = {}
    for line in lines:
        m = re.match(r"(worker\d|reader|canary|fuzz|gc): done (.*)$", line)
        if m:
            words = m.group(2).split()
            out[m.group(1)] = {k: int(v) for k, v in zip(words[::2], words[1::2]) if v.isdigit()}
    return out


def stress_boot(env, r, apps, kv, n, totals):
    """One boot of the nine stress apps; checks its console. Returns the boot."""
    b = env.boot(apps, kv, timeout=max(env.args.timeout, 600))
    name = f"stress boot {n}"
    ended(r, b, name)
    lines = b.lines
    text = b.text()
    violations = [l for l in lines if "VIOLATION" in l]
    r.check(not violations, f"{name}: no app saw a broken promise (VIOLATION lines)", " | ".join(violations[:4]))
    r.check("panicked" not in text and "Kernel panic" not in text, f"{name}: the kernel never panicked", tail(b))
    f = stress_figures(lines)
    workers = [f.get(f"worker{i}") for i in range(4)]
    r.check(all(w and w.get("violations") == 0 for w in workers),
            f"{name}: four workers finished their round against their models", str(workers))
    if n > 1:
        ok = [l for l in lines if re.match(r"worker\d: after reboot: .*: ok$", l)]
        r.check(len(ok) == 4, f"{name}: every acknowledged write of the earlier rounds is there after the reboot",
                " | ".join(l for l in lines if "after reboot" in l))
    reader, canary, fuzz, gc = (f.get(k) for k in ("reader", "canary", "fuzz", "gc"))
    r.check(bool(reader) and reader.get("violations") == 0 and reader.get("found", 0) > 0,
            f"{name}: the reader read the workers' shared keys while they changed, every value one they wrote",
            str(reader))
    r.check(bool(canary) and canary.get("violations") == 0, f"{name}: the canary key intact throughout", str(canary))
    # Queueing: every app's request waits in the driver's queue, none is refused for another's.
    queued = {k: (v.get("busy"), v.get("nomem")) for k, v in f.items() if k != "fuzz"}
    r.check(all(v == (0, 0) for v in queued.values()) and len(queued) == 7,
            f"{name}: no app was refused (BUSY or NOMEM) because another's operation ran", str(queued))
    r.check(bool(fuzz) and fuzz.get("violations") == 0 and fuzz.get("calls", 0) > 0
            and fuzz.get("idle_probes", 0) > 0,
            f"{name}: fuzzer: {fuzz.get('calls') if fuzz else '?'} raw KV syscalls, each a well-formed result; "
            f"then nothing of its own left in flight (after {(fuzz or {}).get('idle_wait_us', '?')} us) "
            "and its own set and get served", str(fuzz))
    restarts = [l for l in lines if re.search(r"process die faulted; restart \d+", l)]
    lives = [l for l in lines if l.startswith("die: life ")]
    done = next((l for l in lines if l.startswith("die: done lives")), None)
    r.check(len(restarts) == env.args.stress_lives and len(lives) == env.args.stress_lives and done is not None,
            f"{name}: the dying app faulted {len(restarts)} times with an operation in flight, restarted each time",
            f"{len(restarts)} restarts, {len(lives)} lives, done {done!r}")
    r.check(bool(gc) and gc.get("failed") == 0 and gc.get("ok", 0) > 0,
            f"{name}: {gc.get('ok') if gc else '?'} garbage collections from userspace (command 6), all Ok", str(gc))
    # GC cannot starve the others: every worker made progress while the gc app was still
    # collecting in a loop (round robin: one operation per app between two collections).
    gc_end = (gc or {}).get("end")
    during = {f"worker{i}": 0 for i in range(4)}
    for line in lines:
        m = re.match(r"(worker\d): op (\d+) at (\d+) us$", line)
        if m and gc_end is not None and int(m.group(3)) < gc_end:
            during[m.group(1)] = max(during[m.group(1)], int(m.group(2)))
    r.check(gc_end is not None and all(n >= 25 for n in during.values()),
            f"{name}: every worker progressed while the gc app collected in a loop "
            f"(operations done by each when the loop ended, counted in 25s: {during})", f"gc end {gc_end}")
    ops = sum(v.get("ops", 0) for k, v in f.items() if k.startswith("worker")) + (reader or {}).get("reads", 0) \
        + (gc or {}).get("collections", 0)
    span = max((v.get("us", 0) for v in f.values()), default=0)
    waits = {k: v.get("max_wait_us") for k, v in f.items() if "max_wait_us" in v}
    totals["ops"] += ops
    totals["fuzz"] += (fuzz or {}).get("calls", 0)
    totals["faults"] += len(restarts)
    totals["violations"] += len(violations)
    rate = ops / (span / 1e6) if span else 0
    print(f"      figures: {ops} KV operations in {span / 1e6:.2f} s emulated ({rate:.0f} per emulated second), "
          f"{(fuzz or {}).get('calls', 0)} fuzz calls, {len(restarts)} faults; longest wait per app (us): {waits}; "
          f"BUSY per app: { {k: v[0] for k, v in queued.items()} }; host {b.seconds:.0f} s", flush=True)
    return b


def stored_form(key):
    """tdbstore::app_key's stored form of a key that is not a valid Mbed key."""
    import base64
    return "~" + base64.urlsafe_b64encode(key).decode().rstrip("=")


def test_stress(env, r, boots):
    print(f"== stress: 4 workers, a reader, a canary, a fuzzer, a dying app, a gc loop ({boots} boots)", flush=True)
    missing = [a for a in STRESS_APPS if not env.tab(a)]
    if missing:
        r.check(False, "the stress TABs exist (make e2e-app)", f"missing {missing} in {env.args.e2e_apps}")
        return
    # The dying app alone: nothing else queued, so each of its operations is running in the
    # store when it faults (with upstream's KVStoreDriver the first `get` that dies with its
    # app loses the driver's value buffer, and the restarted app's next `get` never returns).
    b = env.boot(env.apps("stress_die"), env.fresh_store("die"), timeout=max(env.args.timeout, 600))
    restarts = [l for l in b.lines if re.search(r"process die faulted; restart \d+", l)]
    done = next((l for l in b.lines if l.startswith("die: done lives")), None)
    r.check(b.ended_cleanly() and len(restarts) == env.args.stress_lives and done is not None,
            f"dying app alone: faulted {len(restarts)} times with its operation running in the store, "
            "restarted each time, its next operations served", f"done {done!r}: {tail(b)}")
    kv = env.fresh_store("stress")
    apps = env.apps(*STRESS_APPS)
    totals = {"ops": 0, "fuzz": 0, "faults": 0, "violations": 0}
    for n in range(1, boots + 1):
        stress_boot(env, r, apps, kv, n, totals)
    # Offline: the store checks clean, the canary is its owner's, untouched.
    out, status = env.cli(kv, "check")
    r.check(status == 0 and out.get("ok") is True, "host CLI: check passes after the stress boots", str(out)[:300])
    out, _ = env.cli(kv, "get", STRESS_CANARY[0].decode())
    value = bytes.fromhex(out.get("hex") or "")
    r.check(record_writer(out.get("hex") or "") == STRESS_APPS["stress_canary"] and value[9:] == STRESS_CANARY[1],
            "host CLI: the canary holds its owner's value, written under its id", str(out)[:200])
    # The checker can fail: remove one acknowledged worker key offline; the next boot's
    # worker must report it.
    listing, _ = env.cli(kv, "ls")
    victim = next((bytes.fromhex(k["app_key_hex"]) for k in listing.get("keys", [])
                   if (k.get("app_key_hex") or "").startswith("a0") and len(k["app_key_hex"]) > 2
                   and k["app_key_hex"][2:4] != "ff"), None)
    if not r.check(victim is not None, "host CLI: lists worker 0's keys", str(listing)[:200]):
        return
    out, status = env.cli(kv, "rm", stored_form(victim))
    region = os.path.join(env.build, "region.bin")
    with open(region, "rb") as src, open(kv, "r+b") as dst:
        dst.write(src.read())
    b = env.boot(env.apps("stress_w0"), kv, timeout=max(env.args.timeout, 600))
    caught = [l for l in b.lines if l.startswith("VIOLATION worker0: after reboot")]
    r.check(status == 0 and bool(caught),
            "negative control: a worker key removed offline is reported lost by its worker after the reboot",
            f"rm status {status}; worker0 lines: {[l for l in b.lines if l.startswith('worker0')]}")
    print(f"      stress totals: 9 apps, {totals['ops']} KV operations, {totals['fuzz']} fuzz calls, "
          f"{totals['faults']} faults injected, {totals['violations']} violations", flush=True)


def test_unaligned(env, r):
    print("== unaligned: u16/u32/u64 loads and stores at odd addresses in app flash, RAM, stack", flush=True)
    if not env.tab("unaligned"):
        r.check(False, "unaligned.tab exists (make e2e-app)", f"not in {env.args.e2e_apps}")
        return
    b = env.boot(env.apps("unaligned"), env.fresh_store("unaligned"))
    ended(r, b, "unaligned")
    verdict = next((l.strip() for l in b.lines if l.strip().startswith(("unaligned: PASS", "unaligned: FAIL "))
                    and "checks" in l), None)
    fails = [l.strip() for l in b.lines if l.strip().startswith("unaligned: FAIL")]
    faults = [l for l in b.lines if re.search(r"[Pp]rocess unaligned faulted|Unaligned Access", l)]
    r.check(verdict is not None and verdict.startswith("unaligned: PASS") and not fails and not faults,
            f"unaligned: no fault, every access right ({verdict or 'no verdict line'})",
            " | ".join((faults + fails)[:4]) or tail(b))


# The boot report each board prints, matched by prefix (or, for lines another change adds, by a
# word they must contain). The Portenta's: boards/portenta_h7/src/boot.rs and main.rs.
BOOT_REPORT = {
    "qemu": [
        ("kernel banner", r"QEMU RISC-V 32-bit \"virt\" machine with the TDBStore key-value store, initialization complete"),
        ("store mounted", r"tdbstore: mounted"),
    ],
    "portenta": [
        ("kernel banner", r"^Arduino Portenta H7 \(STM32H747, Cortex-M7\), Tock kernel at 0x08040000"),
        ("what the bootloader left (core)", r"^Bootloader left: VTOR 0x"),
        ("what the bootloader left (clocks, supply)", r"^Bootloader left: SYSCLK from"),
        ("bootloader info", r"^Bootloader info at 0x0801f000"),
        ("what the kernel set", r"^Kernel set: VTOR 0x08040000"),
        ("clocks: PLL1 configured", r"^Clocks: SYSCLK \d+ Hz \(PLL1"),
        ("option bytes: BCM4 (Cortex-M4 boot)", r"\bBCM4\b"),
        ("option bytes: BOOT_CM4_ADD0/ADD1", r"BOOT_CM4_ADD0.*ADD1|BOOT_CM4_ADD1.*ADD0|BOOT_CM4_ADD"),
        ("option bytes: SWAP_BANK", r"\bSWAP_BANK\b"),
        ("key-value region", r"^Key-value region: 0x08100000\.\.0x08200000"),
        ("flash geometry", r"^FlashIAP block device size: "),
        ("processes loaded", r"^Processes loaded\."),
        ("store mounted", r"tdbstore: mounted"),
    ],
}
# Lines that must not be in a boot report: a refused store or clock set-up.
BOOT_REPORT_BAD = r"^Clocks: (set-up failed|refused)|tdbstore: mount not started|Process not loaded|(?i:refus)"


def test_boot_report(env, r):
    print(f"== boot report ({env.args.board})", flush=True)
    # The first boot with the store in use (its mount line comes before the apps end).
    b = next((b for b in getattr(env, "boots", []) if mount_line(b)), None) \
        or env.boot(env.apps("kv_stats"), env.fresh_store("report"))
    for name, pat in BOOT_REPORT[env.args.board]:
        line = next((l.strip() for l in b.lines if re.search(pat, l)), None)
        r.check(line is not None, f"boot report: {name}" + (f" ({line[:90]})" if line else ""),
                f"no line matching {pat!r}")
    bad = [l.strip() for l in b.lines if re.search(BOOT_REPORT_BAD, l)]
    r.check(not bad, "boot report: no refusal or failed set-up", " | ".join(bad[:3]))


def test_power_cut_reboot(env, r):
    """The manual power cut of a real board: a cut while the apps run (someone at the board;
    on the emulated board QEMU killed at kv_stats's first line and a new one on a new pty),
    then the reboot on the same console: the store mounts, the run count goes on."""
    print("== power cut while the apps run, then the reboot", flush=True)
    names = ("kv_stats", "kv_share")
    if not (env.tab("kv_stats") and env.tab("kv_share")):
        r.check(False, "kv_stats.tab and kv_share.tab exist", f"not in {env.args.apps}")
        return
    kv = env.fresh_store("cut")
    b = env.boot(env.apps(*names), kv)
    before = run_count(b)
    if not (ended(r, b, "before the cut") & r.check(before == 1, "before the cut: run count 1", f"got {before}")):
        return
    on_line = env.transport.board.arm_power_cut()
    if on_line is None:
        print("SKIPPED: power cut (needs someone at the board: run `make e2e` from a terminal)", flush=True)
        return
    marker = BOOT_REPORT[env.args.board][0][1]
    apps_done = serial_transport.apps_done(names)

    def reboot(lines):
        """The lines from the kernel's second first line on (None before it)."""
        starts = [i for i, l in enumerate(lines) if re.search(marker, l)]
        return lines[starts[1]:] if len(starts) > 1 else None

    b = env.boot(env.apps(*names), kv, on_line=on_line, done=lambda lines: bool(reboot(lines))
                 and apps_done(reboot(lines)), timeout=max(env.args.timeout, 300))
    after = serial_transport.SerialBoot()
    after.lines = reboot(b.lines) or []
    after.end, after.timed_out = b.end, b.timed_out
    if not r.check(bool(after.lines), "power cut: the board booted again after the cut (its first boot line twice)",
                   tail(b)):
        return
    ended(r, after, "power cut: reboot")
    r.check(mount_line(after) is not None, "power cut: reboot: the store mounts", tail(after))
    got = run_count(after)
    r.check(got in (before + 1, before + 2),
            f"power cut: reboot: run count {before + 1} or {before + 2} (cut before or after kv_stats's write)",
            f"got {got}")
    b = env.boot(env.apps(*names), kv)
    r.check(got is not None and run_count(b) == got + 1, "power cut: the next boot counts on from the reboot",
            f"{got} then {run_count(b)}")
    out, status = env.cli(kv, "check")
    r.check(status == 0 and out.get("ok") is True, "host CLI: check passes after the power cut", str(out))


class SerialEnv(Env):
    """The checks' environment over the serial transport: one board, one store region. A
    store "name" is only a label (blanking the region starts a new one); the apps a boot
    names are installed when they differ from what is on the board."""

    def __init__(self, args, transport, geometry, region_size):
        super().__init__(args)
        self.transport = transport
        self.geometry = geometry
        self.region_size = region_size
        self.installed = None
        self.store = None
        self.dumped = None
        self.boots = []

    def apps(self, *names):
        return names

    def fresh_store(self, name):
        self.transport.blank_store()
        self.store = name
        self.dumped = None
        return name

    def boot(self, apps, kv, **kw):
        if kv != self.store:
            raise SystemExit(f"serial: boot on store {kv!r}, but the board holds {self.store!r}")
        if apps != self.installed:
            tabs = [self.tab(n) for n in apps]
            missing = [n for n, t in zip(apps, tabs) if t is None]
            if missing:
                raise SystemExit(f"serial: no TAB for {missing} in {self.args.apps} or {self.args.e2e_apps}")
            self.transport.install(tabs)
            self.installed = apps
        if kw.get("on_line") is not None and kw.get("done") is None:
            raise SystemExit("serial: this check kills a boot at an instant (QEMU transport only)")
        b = self.transport.boot(apps, kw.get("timeout", self.args.timeout), on_line=kw.get("on_line"),
                                done=kw.get("done"))
        self.dumped = None
        self.boots.append(b)
        self._boots += 1
        logs = os.path.join(self.build, "logs")
        os.makedirs(logs, exist_ok=True)
        with open(os.path.join(logs, f"{self._boots:03}-{kv}.log"), "w") as f:
            f.write(b.text() + f"\n[serial: ended on {b.end}, {b.seconds:.1f} s]\n")
        return b

    def cli(self, kv, *command):
        if self.dumped is None:
            dump = os.path.join(self.build, "store-dump.img")
            self.transport.dump_store(dump)
            self.dumped = dump
        region = os.path.join(self.build, "region.bin")
        with open(self.dumped, "rb") as f:
            data = f.read(self.region_size)
        with open(region, "wb") as f:
            f.write(data)
        return self.cli_region(region, self.geometry, *command)


def serial_main(args):
    """The e2e checks that apply to a real board, over the serial transport."""
    echo = (lambda line: print("    | " + line, flush=True)) if args.verbose else None
    if args.transport == "qemu-pty":
        build = args.build
        os.makedirs(build, exist_ok=True)
        # Real time, as a board runs: under -icount sleep=off the kernel stops QEMU microseconds
        # after its last lines, and Linux drops what a pty's reader has not read yet when the
        # other end closes (measured: 2 of 6 boots lost their last lines).
        flags = args.qemu
        board = serial_transport.QemuPtyBoard(flags, os.path.join(build, "serial-kv.img"),
                                    os.path.join(build, "serial-apps.bin"), args.port, args.tockloader)
        geometry, region_size, prefix = CLI_GEOMETRY, REGION_SIZE, "serial: "
    else:
        board = serial_transport.CommandBoard(args.install_cmd, args.reset_cmd, args.kv_load_cmd, args.kv_dump_cmd,
                                    args.blank_image, args.store_prompt)
        geometry, region_size, prefix = ["--geometry", "portenta", "--size", str(args.region_size)], \
            args.region_size, "serial: "
    transport = serial_transport.SerialTransport(board, serial_transport.Port(args.port), exit_line=not args.no_exit_line,
                                       quiet=args.quiet, echo=echo)
    env = SerialEnv(args, transport, geometry, region_size)
    r = Results(prefix)
    print(f"NOTE: serial transport: {board.describe()}, port {args.port} "
          f"({'pyserial ' + serial_transport.pyserial.__version__ if serial_transport.pyserial else 'termios'}, 115200 8N1)", flush=True)
    start = time.monotonic()
    tests = [
        ("count", lambda: test_boot_count_and_permissions(env, r, args.boots)),
        ("report", lambda: test_boot_report(env, r)),
        ("unaligned", lambda: test_unaligned(env, r)),
        ("cut", lambda: test_power_cut_reboot(env, r)),
        ("kvcheck", lambda: test_kv_check(env, r)),
    ]
    try:
        for name, test in tests:
            if args.only and args.only not in name or name in (args.skip or "").split(","):
                continue
            test()
    finally:
        transport.close()
    if args.board == "portenta":
        print("NOTE: not run on this board: power cuts at random instants (needs a power switch), the "
              "stress test (9 apps; the Portenta has 4 app slots and NUM_PROCS 4) and the dying app "
              "(it needs restarts; the Portenta's fault policy stops a faulted process)", flush=True)
    ends = ", ".join(f"{n} on {k}" for k, n in sorted(transport.ends.items(), key=str))
    extra = f", {board.qemus} QEMUs, {board.cuts} killed by a power cut" if args.transport == "qemu-pty" else ""
    print(f"(serial e2e took {time.monotonic() - start:.0f} s; {len(env.boots)} boots ended: {ends}; "
          f"port opened {transport.port.opens} times{extra}; logs in {args.build}/logs)")
    print(f"serial: {r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qemu", help="QEMU machine flags (from the Makefile); needed but for --transport serial")
    ap.add_argument("--build", required=True, help="scratch directory")
    ap.add_argument("--apps", required=True, help="directory with kv_stats.tab, kv_share.tab, ...")
    ap.add_argument("--e2e-apps", required=True, help="directory with kv_burst.tab and kv_check.tab")
    ap.add_argument("--root", required=True, help="repository root (for the host CLI)")
    ap.add_argument("--tockloader", default="tockloader")
    ap.add_argument("--boots", type=int, default=3)
    ap.add_argument("--seeds", default="1,2,3,4,5,6,7,8,9", help="power-cut seeds, comma-separated")
    ap.add_argument("--stress-boots", type=int, default=2, help="boots of the stress test (make soak: more)")
    ap.add_argument("--stress-lives", type=int, default=20, help="lives of the stress test's dying app per boot")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per boot")
    ap.add_argument("--real-time", action="store_true", help=f"boot without {ICOUNT}")
    ap.add_argument("--only", help="run only tests whose name contains this")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo the console")
    s = ap.add_argument_group("serial transport (serial_transport.py)")
    s.add_argument("--transport", choices=("qemu", "qemu-pty", "serial"), default="qemu",
                   help="qemu: QEMU's stdio (every check); qemu-pty: the emulated board through a pty, read "
                        "as a serial port; serial: a real board")
    s.add_argument("--board", choices=tuple(BOOT_REPORT), default="qemu", help="whose boot report to expect")
    s.add_argument("--port", default="/dev/ttyUSB-qemu-kv-e2e", help="the serial port (qemu-pty: the pty's link)")
    s.add_argument("--install-cmd", help="serial: installs the TABs in {tabs}, replacing what is there")
    s.add_argument("--reset-cmd", default="", help="serial: resets the board (empty: ask for the RESET button)")
    s.add_argument("--kv-load-cmd", help="serial: writes the region image {image} to the store")
    s.add_argument("--kv-dump-cmd", help="serial: reads the store into the file {image}")
    s.add_argument("--blank-image", help="serial: a formatted, empty region image (tdbstore ... format)")
    s.add_argument("--region-size", type=lambda v: int(v, 0), default=0x100000, help="serial: store region bytes")
    s.add_argument("--store-prompt", default="", help="serial: asked before each kv-load/kv-dump")
    s.add_argument("--no-exit-line", action="store_true",
                   help="end boots only on the apps' last lines, as on a kernel without the exit line")
    s.add_argument("--quiet", type=float, default=1.0, help="seconds without a line after the apps' last lines")
    s.add_argument("--skip", help="serial: comma-separated checks to leave out (unaligned, report, count, cut, kvcheck)")
    args = ap.parse_args()
    if args.transport != "serial" and not args.qemu:
        ap.error(f"--transport {args.transport} needs --qemu")
    if args.transport == "serial" and not all((args.install_cmd, args.kv_load_cmd, args.kv_dump_cmd, args.blank_image)):
        ap.error("--transport serial needs --install-cmd, --kv-load-cmd, --kv-dump-cmd and --blank-image")
    args.build = os.path.abspath(args.build)
    if args.transport != "qemu":
        return serial_main(args)

    env = Env(args)
    r = Results()
    # QEMU refusing to start is a set-up problem, reported once with QEMU's message, not as
    # dozens of failed boots.
    probe_kv = env.fresh_store("preflight")
    print("NOTE: " + qemu.preflight(args.qemu, env.apps(), probe_kv), flush=True)
    start = time.monotonic()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    tests = [
        ("count", lambda: test_boot_count_and_permissions(env, r, args.boots)),
        ("upstream", lambda: test_upstream_kv(env, r)),
        ("unaligned", lambda: test_unaligned(env, r)),
        ("powercut", lambda: test_power_cut(env, r, seeds)),
        ("kvcheck", lambda: test_kv_check(env, r)),
        ("stress", lambda: test_stress(env, r, args.stress_boots)),
    ]
    for name, test in tests:
        if args.only and args.only not in name:
            continue
        test()
    print(f"(e2e took {time.monotonic() - start:.0f} s; images and logs in {args.build})")
    print(f"{r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
