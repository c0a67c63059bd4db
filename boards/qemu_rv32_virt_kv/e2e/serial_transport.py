# Licensed under the Apache License, Version 2.0 or the MIT License.
# SPDX-License-Identifier: Apache-2.0 OR MIT
"""The e2e suite's serial transport: a board's console read over a serial port, line by line.
Python 3 stdlib, plus pyserial when importable (tockloader brings it), else raw termios.

A transport gives the checks in run_e2e.py what qemu.py gives them for QEMU's stdio console:
install apps, blank the store, boot and collect console lines until an end condition or a
timeout, and dump the store for the host CLI. Here the console is a serial port, and what
happens to the board goes through a *board* object with the same small interface:

    install(tabs)     put exactly these apps on the board
    blank_store()     an empty store (a `tdbstore ... format`ted region)
    start()           before the port is opened for a boot: power up what must exist
    reset()           after it is open: reset (or release) the board; it boots
    arm_power_cut()   before a boot: a power cut during it (a prompt on a real board); returns
                      a per-line callback, or None when nobody can cut the power
    dump_store(out)   the store region, as a file for the `tdbstore` CLI

Two boards implement it: `CommandBoard` (a real board, through `make program`, a reset
command or a prompt, `make kv-load` and `make kv-dump`) and `QemuPtyBoard` (the emulated
board with `-serial pty`, as `make listen` runs it, so the transport is tested without
hardware: a reset is a new QEMU (the monitor's `system_reset` is no reset for this kernel),
which gives the console a new pty, so the port must be re-opened as after a USB-UART
re-enumerates).

A boot ends at the first of: the kernel's `all N processes ended (M faulted)` line (the
emulated board prints it; unless `exit_line` is off), every app's own final line followed by
`quiet` seconds without a new line, or the timeout.
"""

import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu  # noqa: E402

try:
    import serial as pyserial  # pyserial, installed with tockloader
except ImportError:  # pragma: no cover - depends on the host
    pyserial = None

BAUD = 115200
# The kernel's line once every process has ended (qemu_rv32_virt_kv/src/shutdown.rs; the
# Portenta kernel should print the same: see boards/portenta_h7 `make e2e`).
EXIT_RE = re.compile(r"all (\d+) processes ended \((\d+) faulted\)")
# A process fault: the emulated board's fault policy, or Tock's StopWithDebugFaultPolicy
# (the Portenta's): "Process <name> faulted and was stopped."
FAULT_RE = re.compile(r"[Pp]rocess (\S+) faulted")

# Each app's last line: once every installed app has printed its own, the boot is over
# (after the quiet period). A fault of the app ends it too.
APP_DONE = {
    "kv_stats": re.compile(r"^\s*Run Count: \d+|^Error (while saving|reading data)"),
    "kv_share": re.compile(r"^kv_share: own key: "),
    "kv_share-noread": re.compile(r"^kv_share: own key: "),
    "kv_check": re.compile(r"^kv_check: done "),
    "unaligned": re.compile(r"^unaligned: (PASS \d+ checks|FAIL \d+ of \d+ checks)"),
    "upstream_kv": re.compile(r"^Successfully deleted the key-value"),
}
# The process name each TAB runs as, where it differs from the TAB's name.
PROCESS_NAME = {"kv_share-noread": "kv_share", "upstream_kv": "kv"}


class Port:
    """A serial port read without blocking; closed when the device goes away (EIO: a pty
    whose QEMU exited, a USB-UART unplugged) and re-opened by `ensure_open`."""

    def __init__(self, path, baud=BAUD):
        self.path = path
        self.baud = baud
        self.fd = None
        self._ser = None
        self.opens = 0

    def ensure_open(self):
        """Opens the port if it is closed; False if it cannot be opened now."""
        if self.fd is not None:
            return True
        try:
            if pyserial is not None:
                # 8N1, no flow control; pyserial puts the tty in raw mode (no echo, no CR/LF
                # translation).
                self._ser = pyserial.Serial(self.path, self.baud, bytesize=8, parity="N", stopbits=1,
                                            timeout=0, xonxoff=False, rtscts=False, dsrdtr=False)
                self.fd = self._ser.fileno()
            else:
                import termios
                import tty
                fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
                tty.setraw(fd)
                attrs = termios.tcgetattr(fd)
                attrs[2] = (attrs[2] & ~(termios.PARENB | termios.CSTOPB | termios.CSIZE | termios.CRTSCTS)) \
                    | termios.CS8 | termios.CLOCAL | termios.CREAD
                attrs[4] = attrs[5] = termios.B115200
                termios.tcsetattr(fd, termios.TCSANOW, attrs)
                self.fd = fd
        except (OSError, ValueError) as e:  # pyserial's SerialException is an OSError
            del e
            self.close()
            return False
        self.opens += 1
        return True

    def close(self):
        if self._ser is not None:
            try:
                self._ser.close()
            except OSError:
                pass
        elif self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = None
        self._ser = None

    def read(self, wait):
        """What arrives within `wait` seconds (b"" if nothing); None if the port is closed
        or just went away."""
        if self.fd is None and not self.ensure_open():
            time.sleep(min(wait, 0.2))
            return None
        try:
            ready, _, _ = select.select([self.fd], [], [], wait)
            if not ready:
                return b""
            data = os.read(self.fd, 4096)
        except BlockingIOError:  # select's readiness can be spurious on a tty
            return b""
        except OSError:  # EIO: the other end is gone
            data = b""
        if not data:
            # Readable but empty: hung up.
            self.close()
            return None
        return data


class SerialBoot:
    """One boot seen on the serial console (the same fields the checks read from qemu.Boot)."""

    ended_what = "the boot ended (serial: every app's last line, or the kernel's exit line), no fault"

    def __init__(self):
        self.lines = []
        self.status = None  # no exit status over a serial port
        self.killed = False  # a power cut happened during this boot
        self.timed_out = False
        self.seconds = 0.0
        self.end = None  # "exit line", "apps done", "timeout"
        self.exit_faulted = None

    def text(self):
        return "\n".join(self.lines)

    def faults(self):
        return [l for l in self.lines if FAULT_RE.search(l)]

    def ended_cleanly(self):
        return (self.end in ("exit line", "apps done") and not self.faults()
                and self.exit_faulted in (None, 0))


def apps_done(names):
    """An end condition: each app in `names` printed its last line or faulted."""
    def done(lines):
        for name in names:
            pat = APP_DONE.get(name)
            proc = PROCESS_NAME.get(name, name)
            if pat is None:
                return False  # unknown app: only the exit line or the timeout ends the boot
            if not any(pat.search(l) or (FAULT_RE.search(l) and FAULT_RE.search(l).group(1) == proc)
                       for l in lines):
                return False
        return True
    return done


def collect(port, done, timeout, quiet=1.0, exit_line=True, on_line=None, echo=None):
    """Reads the console into a SerialBoot until the kernel's exit line (if `exit_line`),
    `done(lines)` has held for `quiet` seconds without a new line, or `timeout`. `on_line(line)`
    sees every line (the power-cut prompt hooks in there)."""
    b = SerialBoot()
    start = time.monotonic()
    pending = b""
    done_since = None
    last_line = start
    while True:
        now = time.monotonic()
        if now - start > timeout:
            b.timed_out = True
            b.end = "timeout"
            break
        if done_since is not None and now - max(done_since, last_line) >= quiet:
            b.end = "apps done"
            break
        chunk = port.read(0.05)
        if not chunk:
            continue
        complete, pending = qemu.console_lines(pending, chunk)
        for line in complete:
            b.lines.append(line)
            last_line = time.monotonic()
            if echo:
                echo(line)
            if on_line:
                on_line(line)
            m = EXIT_RE.search(line)
            if m:
                b.exit_faulted = int(m.group(2))
        if exit_line and b.exit_faulted is not None:
            b.end = "exit line"
            break
        if done_since is None and done(b.lines):
            done_since = time.monotonic()
    if pending.strip():
        b.lines.append(pending.decode("utf-8", "replace").rstrip("\r"))
    b.seconds = time.monotonic() - start
    return b


def run_cmd(cmd, what):
    """Runs a board command (a shell string); raises SystemExit with its output if it fails."""
    print(f"    $ {cmd}", flush=True)
    p = subprocess.run(cmd, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise SystemExit(f"serial: {what} failed (exit {p.returncode}): {cmd}\n{p.stdout[-2000:]}")
    return p.stdout


def prompt(text):
    """Asks the person at the board; False when nobody can answer (no terminal)."""
    if not sys.stdin.isatty():
        return False
    input(f"\n>>> {text} [Enter] ")
    return True


class CommandBoard:
    """A real board driven by commands (the Portenta's Makefile targets) and prompts.

    `install` is a shell command with `{tabs}`; `reset` a shell command, or empty to ask for
    the RESET button; `kv_load` a command with `{image}`, `kv_dump` one with `{image}`;
    `blank` the formatted region image kv_load writes. `store_prompt`, if set, is asked
    before each kv_load/kv_dump (the DFU bootloader needs a double-tap of RESET)."""

    def __init__(self, install, reset, kv_load, kv_dump, blank, store_prompt=""):
        self.install_cmd = install
        self.reset_cmd = reset
        self.kv_load = kv_load
        self.kv_dump = kv_dump
        self.blank = blank
        self.store_prompt = store_prompt
        self.installed = None

    def describe(self):
        return "a real board (install, reset, store through commands)"

    def install(self, tabs):
        run_cmd(self.install_cmd.format(tabs=" ".join(tabs)), "install")
        self.installed = tuple(tabs)

    def _store_step(self):
        if self.store_prompt and not prompt(self.store_prompt):
            raise SystemExit(f"serial: this step needs someone at the board ({self.store_prompt}); "
                             "run from a terminal, or use a probe (FLASH_TOOL=openocd or jlink)")

    def blank_store(self):
        self._store_step()
        run_cmd(self.kv_load.format(image=self.blank), "blank the store (kv-load)")

    def start(self):
        pass

    def reset(self):
        if self.reset_cmd:
            run_cmd(self.reset_cmd, "reset")
        elif not prompt("Press the board's RESET button once"):
            raise SystemExit("serial: no reset command (E2E_RESET) and no terminal to ask for the RESET button")

    def arm_power_cut(self):
        if not prompt("POWER CUT: after you press Enter the board resets and its apps run: within "
                      "2 s unplug its power (USB and any battery), wait 3 s, plug it back in; the "
                      "runner reads the reboot"):
            return None
        return lambda line: None

    def dump_store(self, out):
        self._store_step()
        run_cmd(self.kv_dump.format(image=out), "dump the store (kv-dump)")

    def close(self):
        pass


class QemuPtyBoard:
    """The emulated board behind a pty, as `make listen` runs it: QEMU started paused with
    `-serial pty` and a monitor socket; the pty is linked at `link` (the serial port the
    transport opens). Every reset, install and store blanking starts a new QEMU (the monitor's
    `system_reset` is no reset for this kernel: see `start`)."""

    def __init__(self, qemu_flags, kv, apps_image, link, tockloader="tockloader"):
        self.flags = qemu_flags
        self.kv = kv
        self.apps_image = apps_image
        self.link = link
        self.tockloader = tockloader
        self.proc = None
        self.fresh = False  # paused, never run: reset() continues it
        self.workdir = tempfile.mkdtemp(prefix="qemu-kv-serial-")
        self.sock = os.path.join(self.workdir, "monitor.sock")
        self.qemus = 0
        self.cuts = 0

    def describe(self):
        return f"the emulated board through a pty ({self.link}), QEMU {qemu.qemu_version(qemu.shlex.split(self.flags)[0])}"

    def monitor(self, command):
        """Sends one monitor command and waits until QEMU has taken it (its next prompt; for
        `quit`, the connection closing). Returns what QEMU answered."""
        deadline = time.monotonic() + 10
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.sock)
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline or (self.proc is not None and self.proc.poll() is not None):
                    raise SystemExit(f"serial: QEMU's monitor at {self.sock} does not answer")
                time.sleep(0.05)
        with s:
            s.settimeout(10)
            got = b""
            try:
                while not got.endswith(b"(qemu) "):
                    chunk = s.recv(4096)
                    if not chunk:
                        return got.decode(errors="replace")
                    got += chunk
                s.sendall(command.encode() + b"\n")
                got = b""
                while not got.endswith(b"(qemu) "):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
            except OSError:
                pass
            return got.decode(errors="replace")

    def _stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.monitor("quit")
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def install(self, tabs):
        self._stop()
        qemu.app_image(self.apps_image, list(tabs), self.tockloader)

    def blank_store(self):
        self._stop()
        if os.path.exists(self.kv):
            os.remove(self.kv)
        qemu.kv_image(self.kv)

    def start(self):
        if self.proc is not None and self.proc.poll() is None:
            # After its exit line the kernel stops QEMU a moment later: wait for that rather
            # than reset a machine that is leaving.
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                # Still running (a timed-out boot): a new machine. The monitor's system_reset
                # is no reset for this kernel: on QEMU 7.2 its next boot panics at once
                # ("fatal exception", qemu_rv32_virt_chip chip.rs:204), measured here.
                self.proc.kill()
                self.proc.wait()
        if os.path.exists(self.sock):
            os.remove(self.sock)
        cmd = qemu.qemu_command(self.flags, self.apps_image, self.kv,
                                ["-S", "-display", "none", "-serial", "pty",
                                 "-monitor", f"unix:{self.sock},server,nowait"])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        pty = None
        for line in self.proc.stdout:
            m = re.search(r"char device redirected to (/dev/pts/\d+)", line)
            if m:
                pty = m.group(1)
                break
        if pty is None:
            raise SystemExit(f"serial: QEMU reported no pty ({self.proc.wait()})")
        # QEMU says nothing more of interest; its output must not fill the pipe.
        out = self.proc.stdout
        threading.Thread(target=lambda: [None for _ in out], daemon=True).start()
        if os.path.lexists(self.link):
            os.remove(self.link)
        os.symlink(pty, self.link)
        self.fresh = True
        self.qemus += 1

    def reset(self):
        # The monitor's system_reset is no reset for this kernel (see `start`): a new machine.
        if not self.fresh:
            self.start()
        self.monitor("cont")
        self.fresh = False

    def arm_power_cut(self):
        """At kv_stats's first line: QEMU killed (SIGKILL, as the QEMU power-cut test does;
        flash keeps what was written) and a new one started, paused, on a new pty behind
        the same link, continued once the port has re-opened it: what a USB-UART powered by
        the board does when the power comes back (it re-enumerates)."""
        state = {"done": False}

        def on_line(line):
            if state["done"] or "Retrieving Sketch Stats" not in line:
                return
            state["done"] = True
            self.proc.kill()
            self.proc.wait()
            self.cuts += 1
            self.start()
            pty = os.readlink(self.link)
            proc = self.proc

            def release():
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and not qemu._pty_users(pty, {proc.pid}):
                    time.sleep(0.05)
                self.reset()

            threading.Thread(target=release, daemon=True).start()
        return on_line

    def dump_store(self, out):
        with open(self.kv, "rb") as src, open(out, "wb") as dst:
            dst.write(src.read())

    def close(self):
        self._stop()
        if os.path.islink(self.link):
            os.remove(self.link)
        shutil.rmtree(self.workdir, ignore_errors=True)


class SerialTransport:
    """Boots a board and reads its console over `port` (a Port)."""

    def __init__(self, board, port, exit_line=True, quiet=1.0, echo=None):
        self.board = board
        self.port = port
        self.exit_line = exit_line
        self.quiet = quiet
        self.echo = echo
        self.ends = {}

    def install(self, tabs):
        self.board.install(tabs)

    def blank_store(self):
        self.board.blank_store()

    def dump_store(self, out):
        self.board.dump_store(out)

    def boot(self, names, timeout, on_line=None, done=None):
        """Resets the board with apps `names` installed and collects its console. The port is
        (re-)opened before the reset, so the boot's first line is not lost."""
        self.board.start()
        deadline = time.monotonic() + 10
        # A pty that vanished leaves an open fd that reads EIO: start from a fresh open.
        self.port.close()
        while not self.port.ensure_open():
            if time.monotonic() > deadline:
                raise SystemExit(f"serial: cannot open {self.port.path}")
            time.sleep(0.1)
        self.board.reset()
        b = collect(self.port, done or apps_done(names), timeout, self.quiet, self.exit_line,
                    on_line, self.echo)
        self.ends[b.end] = self.ends.get(b.end, 0) + 1
        return b

    def close(self):
        self.port.close()
        self.board.close()
