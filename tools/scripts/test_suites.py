#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0 or the MIT License.
# SPDX-License-Identifier: Apache-2.0 OR MIT
"""`make test`: runs each suite, keeps its log, and ends with a one-screen summary.

    test_suites.py SUITE...      runs `make test-SUITE` for each, in order, whatever fails

Every suite's output passes through as it comes and is kept in build/test-logs/SUITE.log. The
summary counts what the runners themselves printed: cargo's `test result:` lines, and the
`N passed, M failed` line of the end-to-end runner. A suite that skips something says
`SKIPPED: what (why)`; the summary lists each of those lines, so a reader sees at a glance
whether anything was left out. The exit status is 1 when a suite failed.
"""

import os
import re
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LOGS = os.path.join(ROOT, "build", "test-logs")
CARGO = re.compile(r"^test result: (ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored")
PLAIN = re.compile(r"^(?:\w+: )?(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$")
SKIPPED = re.compile(r"^\s*SKIPPED: (.*)$")
NOTE = re.compile(r"^\s*NOTE: (.*)$")
IGNORED = re.compile(r"^test (.*) \.\.\. ignored(?:, (.*))?$")


class Suite:
    def __init__(self, name):
        self.name = name
        self.passed = self.failed = self.ignored = 0
        self.runs = 0
        self.skipped = []
        self.ignored_tests = []
        self.notes = []
        self.status = None
        self.seconds = 0.0
        self.last_error = ""

    def take(self, line):
        text = line.rstrip("\n")
        m = CARGO.match(text)
        if m:
            self.runs += 1
            self.passed += int(m.group(2))
            self.failed += int(m.group(3))
            self.ignored += int(m.group(4))
            return
        m = PLAIN.match(text.strip())
        if m:
            self.runs += 1
            self.passed += int(m.group(1))
            self.failed += int(m.group(2))
            self.ignored += int(m.group(3) or 0)
            return
        m = IGNORED.match(text)
        if m:
            self.ignored_tests.append(m.group(1) + (f" ({m.group(2)})" if m.group(2) else ""))
            return
        m = SKIPPED.match(text)
        if m:
            self.skipped.append(m.group(1))
            return
        m = NOTE.match(text)
        if m:
            self.notes.append(m.group(1))
            return
        if text.startswith("error") or "FAILED" in text or text.startswith("FAIL"):
            self.last_error = text.strip()[:100]

    def result(self):
        if self.status != 0:
            return "FAILED"
        if self.skipped and self.runs == 0:
            return "skipped"
        return "ok"


def run(suite):
    os.makedirs(LOGS, exist_ok=True)
    log_path = os.path.join(LOGS, f"{suite.name}.log")
    print(f"\n=== make test: suite {suite.name} (log: build/test-logs/{suite.name}.log)", flush=True)
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        p = subprocess.Popen(["make", "--no-print-directory", f"test-{suite.name}"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for raw in p.stdout:
            line = raw.decode("utf-8", "replace")
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)
            suite.take(line)
        suite.status = p.wait()
    suite.seconds = time.monotonic() - start


def summary(suites):
    width = 92
    print("\n" + "=" * width)
    print("make test: summary")
    print(f"{'suite':<8} {'result':<8} {'passed':>7} {'failed':>7} {'ignored':>8} {'time':>7}  notes")
    for s in suites:
        notes = "; ".join(s.notes)
        if s.status != 0:
            notes = f"exit {s.status}" + (f": {s.last_error}" if s.last_error else "") + \
                f" (build/test-logs/{s.name}.log)"
        print(f"{s.name:<8} {s.result():<8} {s.passed:>7} {s.failed:>7} {s.ignored:>8} "
              f"{s.seconds:>6.0f}s  {notes}")
    skipped = [(s.name, why) for s in suites for why in s.skipped]
    if skipped:
        print("skipped:")
        for name, why in skipped:
            print(f"  {name}: {why}")
    else:
        print("skipped: nothing (every suite ran in full)")
    ignored = [(s.name, t) for s in suites for t in s.ignored_tests]
    if ignored:
        print("ignored by their runner (marked `ignore`: not compiled or run on this host):")
        for name, t in ignored[:8]:
            print(f"  {name}: {os.path.relpath(t, ROOT) if t.startswith(ROOT) else t}")
        if len(ignored) > 8:
            print(f"  ... and {len(ignored) - 8} more (see the logs)")
    print("=" * width)
    passed = sum(s.passed for s in suites)
    failed = sum(s.failed for s in suites) + sum(1 for s in suites if s.status != 0 and s.failed == 0)
    print(f"total: {passed} passed, {failed} failed, {len(skipped)} skipped")


def main(names):
    suites = [Suite(n) for n in names]
    for s in suites:
        run(s)
    summary(suites)
    return 1 if any(s.status != 0 for s in suites) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["host", "kernel", "apps", "e2e"]))
