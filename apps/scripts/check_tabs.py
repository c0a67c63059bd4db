#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR MIT
"""Prints the TBF headers of the TABs in build/<platform>/ and checks them against the slots.

Usage: check_tabs.py <build dir> <platform>:<arch>:<flash>:<flash slot>:<ram>:<ram slot> ...

Reads the TABs with tockloader's own parser (`tockloader inspect-tab` asks interactively
which TBF to show; this does not). For each TBF it checks what the kernel and tockloader will
rely on:

- one TBF per TAB, for the platform's architecture;
- fixed flash and RAM addresses at the start of the same slot number (the TBF starts at the
  slot, its code follows the header; RAM starts at the slot);
- the TBF fits its flash slot (and is a power of two on Cortex-M, for the MPU);
- the process fits its RAM slot even if the Cortex-M MPU rounds the allocation up to a power
  of two and doubles it (minimum RAM + a 4 KiB allowance for the kernel's grant region);
- storage permissions: ShortId == write_id, and the app's own id is in read_ids and
  access_ids (the kernel grants nothing on a process's own keys otherwise).

Exit status 1 if any check fails.
"""
import os
import sys

from tockloader.tab import TAB

KERNEL_ALLOWANCE = 4096


def po2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def main() -> int:
    build = sys.argv[1]
    failures = 0
    for spec in sys.argv[2:]:
        platform, arch, flash, flash_slot, ram, ram_slot = spec.split(":")
        flash, flash_slot, ram, ram_slot = (int(x, 0) for x in (flash, flash_slot, ram, ram_slot))
        d = os.path.join(build, platform)
        if not os.path.isdir(d):
            print(f"{platform}: no {d} (run `make tabs-{platform}`)")
            continue
        for name in sorted(f for f in os.listdir(d) if f.endswith(".tab")):
            problems = []
            tab = TAB(os.path.join(d, name))
            tbfs = tab.get_tbf_names()
            if tbfs != [arch]:
                problems.append(f"TBFs {tbfs}, expected [{arch!r}]")
            app = tab.extract_tbf(tbfs[0])
            h = app.get_header()
            obj = h.object()
            tlv = {t["type"]: t for t in obj["tlvs"]}
            fixed_ram, fixed_flash = h.get_fixed_addresses()
            size = obj["total_size"]
            start = fixed_flash - obj["header_size"] - tlv["main"]["protected_size"]
            min_ram = tlv["main"]["minimum_ram_size"]
            acl = tlv.get("persistent_acl", {})
            short_id = tlv.get("short_id", {}).get("short_id")
            fslot, foff = divmod(start - flash, flash_slot)
            rslot, roff = divmod(fixed_ram - ram, ram_slot)
            if foff or rslot != fslot or roff or fslot < 0:
                problems.append(f"flash {start:#x} / RAM {fixed_ram:#x} are not the starts of one slot")
            if size > flash_slot:
                problems.append(f"TBF is {size:#x} bytes, the slot {flash_slot:#x}")
            if arch.startswith("cortex-m") and size & (size - 1):
                problems.append(f"TBF size {size:#x} is not a power of two")
            if 2 * po2(min_ram + KERNEL_ALLOWANCE) > ram_slot:
                problems.append(f"minimum RAM {min_ram:#x} may not fit the {ram_slot:#x} RAM slot")
            wid = acl.get("write_id")
            if wid is None or short_id != wid:
                problems.append(f"ShortId {short_id} != write_id {wid}")
            elif wid not in acl.get("read_ids", []) or wid not in acl.get("access_ids", []):
                problems.append(f"own id {wid} missing from read_ids/access_ids")
            print(
                f"{platform:9} {name:22} {tab.get_app_name():9} slot {fslot}  flash {start:#010x} "
                f"size {size:#7x}  RAM {fixed_ram:#010x} min {min_ram:#6x}  short_id {short_id} "
                f"write {wid} read {acl.get('read_ids')} access {acl.get('access_ids')}"
            )
            for p in problems:
                print(f"    FAIL: {p}")
            failures += len(problems)
    print("check_tabs: all TABs match their slots" if not failures else f"check_tabs: {failures} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
