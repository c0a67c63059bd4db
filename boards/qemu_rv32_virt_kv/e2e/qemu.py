#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0 or the MIT License.
# SPDX-License-Identifier: Apache-2.0 OR MIT
"""Running the emulated board: flash images, app images, QEMU boots. Python 3 stdlib only.

Used by the Makefile (`make run`, `make listen`) and by `run_e2e.py`. The QEMU machine flags
(kernel, VirtIO) come from the Makefile in one string, `--qemu`; this file adds the ePMP
property this QEMU has, the apps, the key-value flash and the console, and checks that QEMU
starts at all before a run, so a QEMU that cannot start is reported as such.

    qemu.py kv-image  <kv.img>                          create the 0xFF-filled pflash file once
    qemu.py app-image [--tockloader T] <apps.bin> <tab>...             tockloader places the apps; QEMU loads
                                                        the result at APP_ADDRESS
    qemu.py run    --qemu "<flags>" --apps <apps.bin> --kv <kv.img> [--timeout S]
    qemu.py listen --qemu "<flags>" --apps <apps.bin> --kv <kv.img> [--link /dev/ttyUSB...]
    qemu.py epmp   [--qemu-binary qemu-system-riscv32]  print this QEMU's ePMP property name
"""

import argparse
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

# QEMU virt's pflash bank: 32 MiB. The file must be exactly this long; 0xFF is erased.
PFLASH_BANK_SIZE = 32 * 1024 * 1024
# Where the apps go: upstream qemu_rv32_virt's `prog` region, and libtock-rs's layout.
APP_ADDRESS = 0x80100000
# tockloader's flash file for board qemu_rv32_virt starts at 0x80000000 (the kernel's place).
FLASH_FILE_BASE = 0x80000000
# The kernel's line once every process has ended (src/shutdown.rs).
EXIT_LINE = "processes ended ("


def kv_image(path):
    """Creates the pflash backing file, erased, unless it exists with the right size."""
    if os.path.exists(path):
        size = os.path.getsize(path)
        if size == PFLASH_BANK_SIZE:
            return False
        raise SystemExit(f"{path}: {size} bytes, QEMU needs exactly {PFLASH_BANK_SIZE}; delete it to start afresh")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        chunk = b"\xff" * (1024 * 1024)
        for _ in range(PFLASH_BANK_SIZE // len(chunk)):
            f.write(chunk)
    os.replace(tmp, path)
    return True


def app_image(out, tabs, tockloader="tockloader", quiet=True):
    """Places `tabs` with `tockloader install --flash-file` and writes the app region (from
    APP_ADDRESS) to `out`. Returns tockloader's output."""
    if not tabs:
        with open(out, "wb") as f:
            f.write(b"\x00" * 8)
        return ""
    with tempfile.TemporaryDirectory() as tmp:
        rom = os.path.join(tmp, "rom.bin")
        cmd = [tockloader, "install", "--board", "qemu_rv32_virt", "--arch", "rv32imac",
               "--app-address", hex(APP_ADDRESS), "--flash-file", rom, *tabs]
        if not quiet:
            print("+", " ".join(shlex.quote(c) for c in cmd), flush=True)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            raise SystemExit(f"tockloader install failed ({p.returncode}):\n{p.stdout}")
        data = b""
        if os.path.exists(rom):
            with open(rom, "rb") as f:
                data = f.read()[APP_ADDRESS - FLASH_FILE_BASE:]
    # The kernel stops at the first header that is not a TBF: end the image with one.
    data += b"\x00" * 8
    with open(out + ".tmp", "wb") as f:
        f.write(data)
    os.replace(out + ".tmp", out)
    return p.stdout


# The kernel turns on ePMP (MML/MMWP). QEMU 8.2 and later name the CPU property `smepmp`;
# older ones (Debian 12's 7.2) `x-epmp`, which QEMU 10 rejects. Neither version answers the
# same way when asked to list CPU properties, so each name is tried on a paused QEMU.
EPMP_PROPERTIES = ("smepmp", "x-epmp")
_epmp = {}


class QemuDidNotStart(SystemExit):
    """QEMU itself refused to start (bad flag, property, file): not something the kernel did."""


def qemu_starts(args):
    """Starts QEMU paused with `args` (binary first), quits it through the monitor, and
    returns (accepted, QEMU's last message)."""
    cmd = list(args) + ["-S", "-display", "none", "-monitor", "stdio"]
    if "-serial" not in args:
        cmd += ["-serial", "none"]
    try:
        p = subprocess.run(cmd, input="quit\n", capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return False, f"{args[0]}: not found"
    except subprocess.TimeoutExpired:
        return False, f"{args[0]}: did not quit within 60 s when started paused"
    lines = [l.strip() for l in (p.stderr + p.stdout).splitlines() if l.strip().startswith(os.path.basename(args[0]))]
    return p.returncode == 0, (lines[-1] if lines else f"exit status {p.returncode}")


def epmp_property(binary):
    """The ePMP property name this QEMU accepts (cached per binary)."""
    if binary not in _epmp:
        errors = []
        for prop in EPMP_PROPERTIES:
            ok, msg = qemu_starts([binary, "-machine", "virt", "-bios", "none", "-nodefaults",
                                   "-global", f"driver=riscv-cpu,property={prop},value=true"])
            if ok:
                _epmp[binary] = prop
                break
            errors.append(f"{prop}: {msg}")
        else:
            raise QemuDidNotStart(f"qemu: {binary} accepts none of the ePMP properties the kernel needs "
                                  f"({'; '.join(errors)}); QEMU 7.2 and 10.x are supported")
    return _epmp[binary]


def qemu_version(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "not installed"
    m = re.search(r"version (\S+)", out)
    return m.group(1) if m else "unknown"


def qemu_command(qemu_flags, apps, kv, console):
    """The full command line: machine flags, ePMP, apps, key-value flash, console."""
    cmd = shlex.split(qemu_flags)
    cmd[1:1] = ["-global", f"driver=riscv-cpu,property={epmp_property(cmd[0])},value=true"]
    if apps:
        cmd += ["-device", f"loader,file={apps},addr={APP_ADDRESS:#x}"]
    cmd += ["-drive", f"if=pflash,unit=1,format=raw,file={kv}"]
    return cmd + console


def preflight(qemu_flags, apps, kv):
    """Raises QemuDidNotStart, with QEMU's own message, when QEMU would not start with these
    flags and files; says which QEMU and ePMP property the run uses otherwise."""
    cmd = qemu_command(qemu_flags, apps, kv, [])
    ok, msg = qemu_starts(cmd)
    if not ok:
        raise QemuDidNotStart(f"qemu: QEMU did not start ({msg}); the kernel never ran")
    return f"QEMU {qemu_version(cmd[0])} (ePMP property: {epmp_property(cmd[0])})"


class Boot:
    """One boot: console lines, exit status, whether it was killed or timed out."""

    def __init__(self):
        self.lines = []
        self.status = None
        self.killed = False
        self.timed_out = False
        self.seconds = 0.0

    def text(self):
        return "\n".join(self.lines)

    def ended_cleanly(self):
        return self.status == 0 and any(EXIT_LINE in line for line in self.lines)


def console_lines(pending, chunk):
    """The complete console lines (decoded, without CR) in `pending` + `chunk`, and the bytes
    of the line not complete yet."""
    *complete, rest = (pending + chunk).split(b"\n")
    return [raw.decode("utf-8", "replace").rstrip("\r") for raw in complete], rest


def boot(qemu_flags, apps, kv, timeout=60.0, on_line=None, echo=None):
    """Boots the board and collects the console until QEMU exits, `timeout` passes, or
    `on_line(line)` returns a delay in seconds after which QEMU is killed (SIGKILL: a power
    cut). `echo` gets every line as it arrives."""
    cmd = qemu_command(qemu_flags, apps, kv, ["-display", "none", "-monitor", "none", "-serial", "stdio"])
    result = Boot()
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    fd = p.stdout.fileno()
    pending = b""
    kill_at = None
    while True:
        now = time.monotonic()
        if kill_at is not None and now >= kill_at and not result.killed:
            p.kill()
            result.killed = True
        if now - start > timeout and not (result.killed or result.timed_out):
            p.kill()
            result.timed_out = True
        wait = 0.05 if kill_at is None or result.killed else max(0.0, min(0.05, kill_at - now))
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            continue
        # After a kill, what QEMU wrote before it died is still in the pipe: read it all.
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        complete, pending = console_lines(pending, chunk)
        for line in complete:
            result.lines.append(line)
            if echo:
                echo(line)
            if on_line and kill_at is None:
                delay = on_line(line)
                if delay is not None:
                    kill_at = time.monotonic() + delay
    if pending:
        result.lines.append(pending.decode("utf-8", "replace").rstrip("\r"))
    result.status = p.wait()
    p.stdout.close()
    result.seconds = time.monotonic() - start
    return result


def run(args):
    """`make run`: boot with the console on this terminal until the kernel ends the run."""
    print(preflight(args.qemu, args.apps, args.kv) + f"; store: {args.kv}", flush=True)
    cmd = qemu_command(args.qemu, args.apps, args.kv, ["-nographic", "-monitor", "none", "-serial", "stdio"])
    print("qemu:", " ".join(shlex.quote(c) for c in cmd), flush=True)
    print("(the kernel ends the run when every app has exited; Ctrl-C stops it earlier)", flush=True)
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL if not sys.stdin.isatty() else None)
    try:
        status = p.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        p.terminate()
        p.wait()
        print(f"\nqemu: still running after {args.timeout} s; stopped", flush=True)
        return 1
    except KeyboardInterrupt:
        p.terminate()
        p.wait()
        return 130
    if status != 0:
        # QEMU started (preflight), so a failure status is the kernel's: src/shutdown.rs.
        print(f"qemu: exit status {status} (1: a process faulted or the kernel panicked)", flush=True)
    return status


def _pty_users(pty, exclude):
    """PIDs (other than `exclude`) holding `pty` open."""
    users = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) in exclude:
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == pty:
                    users.append(int(pid))
                    break
        except OSError:
            continue
    return users


def _monitor(sock_path, command):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(sock_path)
        s.sendall(command.encode() + b"\n")
        time.sleep(0.1)


def listen(args):
    """`make listen`: QEMU's console on a pty that `tockloader listen` accepts.

    tockloader only takes ports pyserial lists (/dev/ttyUSB*, /dev/ttyACM*, ...), so the pty
    gets a /dev/ttyUSB* link. QEMU starts paused (-S) and continues once the listener has
    the pty open, so no output is lost. The run ends when the kernel ends it (every app
    exited) or when you leave tockloader (Ctrl-C)."""
    if not sys.stdin.isatty():
        print("make listen: tockloader listen needs a terminal (run it from an interactive shell)", file=sys.stderr)
        return 2
    print(preflight(args.qemu, args.apps, args.kv) + f"; store: {args.kv}", flush=True)
    workdir = tempfile.mkdtemp(prefix="qemu-kv-")
    sock = os.path.join(workdir, "monitor.sock")
    cmd = qemu_command(args.qemu, args.apps, args.kv,
                       ["-S", "-display", "none", "-serial", "pty", "-monitor", f"unix:{sock},server,nowait"])
    print("qemu:", " ".join(shlex.quote(c) for c in cmd), flush=True)
    qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    pty = None
    for line in qemu.stdout:
        m = re.search(r"char device redirected to (/dev/pts/\d+)", line)
        if m:
            pty = m.group(1)
            break
    if pty is None:
        print("qemu: no pty reported", file=sys.stderr)
        qemu.kill()
        return 1
    threading.Thread(target=lambda: [None for _ in qemu.stdout], daemon=True).start()
    link = args.link
    try:
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(pty, link)
    except OSError as e:
        print(f"qemu: cannot create {link} ({e}); tockloader only accepts /dev/ttyUSB*-like ports.\n"
              f"      The console is on {pty}: e.g. `python3 -m serial.tools.miniterm {pty} 115200`, "
              f"then `echo cont | socat - UNIX-CONNECT:{sock}`.", file=sys.stderr)
        qemu.wait()
        return 1
    print(f"qemu: console {pty}, linked as {link}; starting `tockloader listen --port {link}`", flush=True)

    def release():
        # Continue QEMU once the listener holds the pty (or after 15 s anyway).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not _pty_users(pty, {qemu.pid, os.getpid()}):
            time.sleep(0.05)
        time.sleep(0.3)
        _monitor(sock, "cont")

    threading.Thread(target=release, daemon=True).start()
    # tockloader logs to stderr; once the emulation has ended we stop it, and the traceback
    # of that interrupt is noise, so its stderr passes through a filter.
    listener = subprocess.Popen([args.tockloader, "listen", "--port", link], stderr=subprocess.PIPE)
    closing = threading.Event()

    def copy_stderr():
        for raw in listener.stderr:
            if not closing.is_set():
                sys.stderr.buffer.write(raw)
                sys.stderr.flush()

    threading.Thread(target=copy_stderr, daemon=True).start()

    def stop_listener_when_qemu_ends():
        status = qemu.wait()
        time.sleep(0.5)
        if listener.poll() is None:
            closing.set()
            print(f"\r\nqemu: the emulation ended (status {status}); listener closed\r", flush=True)
            listener.send_signal(signal.SIGINT)
            time.sleep(1)
            if listener.poll() is None:
                listener.terminate()

    threading.Thread(target=stop_listener_when_qemu_ends, daemon=True).start()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        listener.wait()
    finally:
        signal.signal(signal.SIGINT, old)
        if qemu.poll() is None:
            try:
                _monitor(sock, "quit")
            except OSError:
                pass
            try:
                qemu.wait(timeout=5)
            except subprocess.TimeoutExpired:
                qemu.kill()
        if os.path.islink(link):
            os.remove(link)
    return qemu.returncode or 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("kv-image")
    k.add_argument("path")
    a = sub.add_parser("app-image")
    a.add_argument("out")
    a.add_argument("tabs", nargs="*")
    a.add_argument("--tockloader", default="tockloader")
    for name in ("run", "listen"):
        r = sub.add_parser(name)
        r.add_argument("--qemu", required=True, help="machine flags from the Makefile")
        r.add_argument("--apps", required=True)
        r.add_argument("--kv", required=True)
        r.add_argument("--timeout", type=float, default=120)
        r.add_argument("--tockloader", default="tockloader")
        r.add_argument("--link", default="/dev/ttyUSB-qemu-kv")
    e = sub.add_parser("epmp")
    e.add_argument("--qemu-binary", default="qemu-system-riscv32")
    args = ap.parse_args()
    if args.cmd == "epmp":
        print(epmp_property(args.qemu_binary))
        return 0
    if args.cmd == "kv-image":
        if kv_image(args.path):
            print(f"kv-image: created {args.path} ({PFLASH_BANK_SIZE} bytes of 0xFF: an erased pflash bank)")
        return 0
    if args.cmd == "app-image":
        app_image(args.out, args.tabs, args.tockloader, quiet=False)
        names = ", ".join(os.path.basename(t) for t in args.tabs) or "no apps"
        print(f"app-image: {args.out} ({names}), loaded by QEMU at {APP_ADDRESS:#x}")
        return 0
    if args.cmd == "run":
        return run(args)
    return listen(args)


if __name__ == "__main__":
    sys.exit(main())
