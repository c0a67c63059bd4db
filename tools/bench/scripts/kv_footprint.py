#!/usr/bin/env python3
"""The key-value capsule's footprint in a Tock kernel ELF, as JSON for the benchmark report.

    kv_footprint.py --elf KERNEL.elf --llvm-bin DIR --out FILE [--board NAME --target TRIPLE]
    kv_footprint.py --unavailable "why" --out FILE

Flash: the bytes of code and constant symbols by owner (llvm-nm, demangled; `<X as Trait>::f`
belongs to X's crate), the same rule as `make -C boards/portenta_h7 size`: `capsules_tdbstore`
but its `kv_syscall` module (the store capsule), `capsules_tdbstore::kv_syscall` (the syscall
driver), `tdbstore` (the engine), `stm32h7::flash` (the FLASH driver, for scale); plus the
kernel's flash and RAM totals from llvm-size.

RAM: the board's statics (each `static_buf!` is a `static BUF: (MaybeUninit<T>, bool)`), found
in the debug info with llvm-dwarfdump: every static allocated at the same line as a
`capsules_tdbstore` struct (one component macro) belongs to that struct: `tdbstore_kv` (the
capsule, its index, work and flash buffers) and `kv_syscall` (the syscall driver, its key and
value buffers); statics at the lines of Tock's `kv_store_permissions` / `virtual_kv` layers
are `upstream`. Also the size of the engine's state struct (`tdbstore::...::Store`).

Nothing is estimated: what cannot be measured is reported as unavailable, with the reason.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def tool(llvm_bin, name):
    """An LLVM tool: the toolchain's (llvm-tools component), else one on PATH."""
    if llvm_bin:
        p = os.path.join(llvm_bin, name)
        if os.access(p, os.X_OK):
            return p
    found = shutil.which(name)
    if found:
        return found
    # Debian installs versioned names (llvm-dwarfdump-14).
    for d in os.environ.get("PATH", "").split(os.pathsep):
        try:
            names = sorted(n for n in os.listdir(d) if n.startswith(name + "-"))
        except OSError:
            continue
        for n in reversed(names):
            if os.access(os.path.join(d, n), os.X_OK):
                return os.path.join(d, n)
    return None


def kernel_totals(size_tool, elf):
    """Flash and RAM as `make size` sums them."""
    flash = ram = 0
    for line in run([size_tool, "-A", elf]).splitlines():
        f = line.split()
        if len(f) < 2 or not f[1].isdigit():
            continue
        name, n = f[0], int(f[1])
        if re.fullmatch(r"\.(text|ARM\.exidx|storage|attributes)", name):
            flash += n
        elif name == ".relocate":
            flash += n
            ram += n
        elif re.fullmatch(r"\.(stack|sram)", name):
            ram += n
    return {"flash": flash, "ram": ram}


def flash_by_owner(nm_tool, elf):
    out = {"capsule": 0, "syscall_driver": 0, "engine": 0, "flash_driver": 0, "symbols": 0}
    text = run([nm_tool, "--print-size", "--size-sort", "--radix=d", "--demangle", elf])
    for line in text.splitlines():
        f = line.split(None, 3)
        if len(f) < 4 or not re.fullmatch(r"[tTrR]", f[2]):
            continue
        size, owner = int(f[1]), f[3].lstrip("<&* ")
        out["symbols"] += size
        if owner.startswith("capsules_tdbstore::kv_syscall::"):
            out["syscall_driver"] += size
        elif owner.startswith("capsules_tdbstore::"):
            out["capsule"] += size
        elif owner.startswith("tdbstore::"):
            out["engine"] += size
        elif owner.startswith("stm32h7::flash::"):
            out["flash_driver"] += size
    return out


def dies(text):
    """The DIEs of llvm-dwarfdump output: dicts with offset, depth, tag, attributes, and the
    names of their enclosing DIEs (when printed with --show-parents)."""
    out, stack = [], []
    for line in text.splitlines():
        m = re.match(r"^(0x[0-9a-f]+):( *)(DW_TAG_\w+)", line)
        if m:
            depth = len(m.group(2))
            while stack and stack[-1]["depth"] >= depth:
                stack.pop()
            die = {"offset": m.group(1), "depth": depth, "tag": m.group(3), "attrs": {},
                   "parents": [p for p in stack]}
            stack.append(die)
            out.append(die)
            continue
        m = re.match(r"^\s+(DW_AT_\w+)\s+\((.*)\)\s*$", line)
        if m and stack:
            stack[-1]["attrs"][m.group(1)] = m.group(2)
    return out


def attr_str(v):
    m = re.search(r'"(.*)"', v or "")
    return m.group(1) if m else None


def attr_ref(v):
    m = re.match(r"(0x[0-9a-f]+)", v or "")
    return m.group(1) if m else None


def attr_int(v):
    m = re.match(r"(0x[0-9a-f]+|\d+)", v or "")
    return int(m.group(1), 0) if m else None


def byte_size(dwarfdump, elf, offset):
    d = dies(run([dwarfdump, f"--debug-info={offset}", elf]))
    return attr_int(d[0]["attrs"].get("DW_AT_byte_size")) if d else None


def short_type(t):
    """`a::b::C<x::Y>` as `C<…>`, `[a::b::T; 4]` as `[T; 4]`."""
    m = re.fullmatch(r"\[(.*); (\d+)\]", t)
    if m:
        return f"[{short_type(m.group(1))}; {m.group(2)}]"
    head, lt, _ = t.partition("<")
    return head.rsplit("::", 1)[-1] + ("<…>" if lt else "")


def layer_of(t):
    if "capsules_tdbstore::tdbstore_kv::" in t.split("<", 1)[0]:
        return "tdbstore_kv"
    if "capsules_tdbstore::kv_syscall::" in t.split("<", 1)[0]:
        return "kv_syscall"
    head = t.split("<", 1)[0]
    if "capsules_extra::kv_store_permissions::" in head or "capsules_extra::virtualizers::virtual_kv::" in head:
        return "upstream"
    return None


def ram(dwarfdump, elf):
    statics = []
    for d in dies(run([dwarfdump, "--name=BUF", elf])):
        if d["tag"] != "DW_TAG_variable":
            continue
        a = d["attrs"]
        tname = attr_str(a.get("DW_AT_type")) or ""
        m = re.fullmatch(r"\(core::mem::maybe_uninit::MaybeUninit<(.*)>, bool\)", tname)
        if not m:
            continue
        site = f'{os.path.basename(attr_str(a.get("DW_AT_decl_file")) or "?")}:{attr_int(a.get("DW_AT_decl_line"))}'
        statics.append({"type": m.group(1), "tuple": attr_ref(a.get("DW_AT_type")), "site": site})
    # A component macro allocates its struct and buffers at one line: the struct names the layer.
    site_layer = {}
    for s in statics:
        layer = layer_of(s["type"])
        if layer and site_layer.get(s["site"]) in (None, "upstream"):
            site_layer[s["site"]] = layer
    items = []
    for s in statics:
        layer = site_layer.get(s["site"])
        if not layer:
            continue
        children = dies(run([dwarfdump, f"--debug-info={s['tuple']}", "--show-children", elf]))
        static_bytes = attr_int(children[0]["attrs"].get("DW_AT_byte_size")) if children else None
        value = next((c for c in children if attr_str(c["attrs"].get("DW_AT_name")) == "__0"), None)
        bytes_ = byte_size(dwarfdump, elf, attr_ref(value["attrs"].get("DW_AT_type"))) if value else None
        if static_bytes is None or bytes_ is None:
            raise RuntimeError(f"no size in the debug info for {s['type']}")
        items.append({"layer": layer, "type": s["type"], "short": short_type(s["type"]),
                      "bytes": bytes_, "static_bytes": static_bytes, "site": s["site"]})
    order = {"tdbstore_kv": 0, "kv_syscall": 1, "upstream": 2}
    def site_key(site):
        file, _, line = site.rpartition(":")
        return (file, int(line) if line.isdigit() else 0)
    items.sort(key=lambda i: (order[i["layer"]], site_key(i["site"])))
    if not any(i["layer"] == "tdbstore_kv" for i in items):
        return {"unavailable": "no capsules_tdbstore statics in the ELF's debug info", "items": items,
                "engine_state": None}

    engine = None
    for d in dies(run([dwarfdump, "--name=Store", "--show-parents", elf])):
        names = [attr_str(p["attrs"].get("DW_AT_name")) for p in d["parents"] if p["tag"] == "DW_TAG_namespace"]
        size = attr_int(d["attrs"].get("DW_AT_byte_size"))
        if d["tag"] == "DW_TAG_structure_type" and names[:1] == ["tdbstore"] and size is not None:
            engine = {"type": "::".join(names + ["Store"]), "bytes": size}
            break
    return {"unavailable": None, "items": items, "engine_state": engine}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--elf")
    ap.add_argument("--llvm-bin", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("--board", default="portenta_h7")
    ap.add_argument("--target", default="thumbv7em-none-eabi")
    ap.add_argument("--unavailable", help="write a report saying only this")
    args = ap.parse_args()

    report = {"board": args.board, "target": args.target, "unavailable": None, "kernel": None,
              "flash": None, "ram": None}
    if args.unavailable:
        report["unavailable"] = args.unavailable
    elif not args.elf or not os.path.exists(args.elf):
        report["unavailable"] = f"no kernel ELF at {args.elf}"
    else:
        nm, size = tool(args.llvm_bin, "llvm-nm"), tool(args.llvm_bin, "llvm-size")
        if not nm or not size:
            report["unavailable"] = "llvm-nm/llvm-size not found (rustup component add llvm-tools)"
        else:
            report["kernel"] = kernel_totals(size, args.elf)
            report["flash"] = flash_by_owner(nm, args.elf)
            dwarfdump = tool(args.llvm_bin, "llvm-dwarfdump")
            if not dwarfdump:
                report["ram"] = {"unavailable": "llvm-dwarfdump not found (Debian: apt install llvm), "
                                 "so the statics' types cannot be read", "items": [], "engine_state": None}
            else:
                try:
                    report["ram"] = ram(dwarfdump, args.elf)
                except (subprocess.CalledProcessError, RuntimeError) as e:
                    report["ram"] = {"unavailable": f"reading the debug info failed: {e}", "items": [],
                                     "engine_state": None}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    if report["unavailable"]:
        print(f"kv-footprint: not measured: {report['unavailable']}", file=sys.stderr)
    else:
        fl, r = report["flash"], report["ram"]
        line = f"kv-footprint: flash engine {fl['engine']} + capsule {fl['capsule']} = {fl['engine'] + fl['capsule']} bytes"
        if r and not r["unavailable"]:
            cap = sum(i["static_bytes"] for i in r["items"] if i["layer"] in ("tdbstore_kv", "kv_syscall"))
            line += f"; capsule RAM {cap} bytes of statics"
        else:
            line += f"; RAM not measured: {r['unavailable'] if r else 'no report'}"
        print(f"{line} ({args.out})")


if __name__ == "__main__":
    main()
