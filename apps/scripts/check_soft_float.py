#!/usr/bin/env python3
"""Fail if a Cortex-M app ELF could touch the FPU.

The Portenta's kernel turns the FPU off (CPACR CP10/CP11 = 0) because Tock saves no
floating-point context, so an app executing any VFP instruction is stopped with a NOCP
UsageFault. Apps are therefore built for `thumbv7em-none-eabi` (soft-float). This check reads
each ELF itself (no disassembler needed) and fails on:

- the hard-float ABI flag in the ELF header (e_flags EF_ARM_ABI_FLOAT_HARD, 0x400: "ELF for the
  Arm Architecture" (IHI 0044), section 5.2 "ELF header");
- any VFP instruction in an executable section. In Thumb-2 a halfword whose top five bits are
  11101, 11110 or 11111 starts a 32-bit instruction (ARMv7-M ARM §A5.1 "Thumb instruction set
  encoding"); the coprocessor / floating-point space is first halfword xx11 11xx xxxx xxxx
  (hw1[15:13] = 111, hw1[11:10] = 11; §A5.3.18 "Coprocessor instructions"), and the FPU is
  coprocessors 10 and 11 (hw2[11:9] = 101; §A6 "Floating-point instruction details"). Every
  VLDR/VSTR/VMOV/VMRS/VADD/VPUSH ... matches; no integer instruction does.

A literal pool inside code could in principle look like a VFP instruction; none of the apps
has one that does, and a report names the address so it can be checked with a disassembler.

    check_soft_float.py ELF...      check each ELF; prints `N passed, M failed`
    check_soft_float.py --selftest  the check must be able to fail: synthetic ELFs with and
                                    without a VFP instruction, with and without the hard-float flag
"""

import struct
import sys

EF_ARM_ABI_FLOAT_HARD = 0x400
SHF_EXECINSTR = 0x4
EM_ARM = 40


def sections(data):
    """(name, flags, offset, size, addr) of each section of a 32-bit little-endian ELF."""
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise ValueError("not a 32-bit little-endian ELF")
    (e_machine,) = struct.unpack_from("<H", data, 18)
    if e_machine != EM_ARM:
        raise ValueError(f"not an Arm ELF (e_machine {e_machine})")
    e_shoff, e_flags = struct.unpack_from("<II", data, 32)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 46)
    headers = [struct.unpack_from("<IIIIII", data, e_shoff + i * e_shentsize) for i in range(e_shnum)]
    strtab_off = headers[e_shstrndx][4] if e_shnum else 0
    out = []
    for name_off, sh_type, flags, addr, offset, size in headers:
        end = data.index(b"\0", strtab_off + name_off)
        out.append((data[strtab_off + name_off:end].decode(), sh_type, flags, offset, size, addr))
    return e_flags, out


def vfp_instructions(code, base):
    """Addresses and encodings of the VFP instructions in a Thumb code stream."""
    found = []
    i = 0
    while i + 2 <= len(code):
        (hw1,) = struct.unpack_from("<H", code, i)
        if hw1 >> 11 in (0b11101, 0b11110, 0b11111):
            if i + 4 > len(code):
                break
            (hw2,) = struct.unpack_from("<H", code, i + 2)
            if hw1 & 0xEC00 == 0xEC00 and (hw2 >> 9) & 0x7 == 0b101:
                found.append((base + i, hw1, hw2))
            i += 4
        else:
            i += 2
    return found


def problems(data):
    e_flags, secs = sections(data)
    out = []
    if e_flags & EF_ARM_ABI_FLOAT_HARD:
        out.append(f"ELF header says hard-float ABI (e_flags {e_flags:#x}): built for thumbv7em-none-eabihf?")
    for name, sh_type, flags, offset, size, addr in secs:
        if flags & SHF_EXECINSTR and sh_type != 8:  # 8 = SHT_NOBITS
            for at, hw1, hw2 in vfp_instructions(data[offset:offset + size], addr):
                out.append(f"VFP instruction {hw1:04x} {hw2:04x} at {at:#010x} in {name}")
    return out


def check(paths):
    passed = failed = 0
    for path in paths:
        try:
            with open(path, "rb") as f:
                found = problems(f.read())
        except (OSError, ValueError) as e:
            found = [f"cannot read: {e}"]
        if found:
            failed += 1
            print(f"FAIL {path}: {len(found)} problem(s); the kernel runs apps with the FPU off (NOCP fault):")
            for p in found[:10]:
                print(f"    {p}")
        else:
            passed += 1
            print(f"ok   {path}: soft-float ABI, no VFP instruction")
    print(f"soft-float: {passed} passed, {failed} failed")
    return failed == 0 and passed > 0


def synthetic_elf(code, e_flags):
    """A minimal Arm ELF: one executable .text section holding `code`, then .shstrtab."""
    shstr = b"\0.text\0.shstrtab\0"
    code_off = 52
    str_off = code_off + len(code)
    sh_off = (str_off + len(shstr) + 3) & ~3
    header = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)
    header += struct.pack("<HHIIIIIHHHHHH", 2, EM_ARM, 1, 0x8000, 0, sh_off, e_flags, 52, 0, 0, 40, 3, 2)
    body = code + shstr
    body += bytes(sh_off - code_off - len(body))
    null = bytes(40)
    text = struct.pack("<IIIIIIIIII", 1, 1, 0x6, 0x8000, code_off, len(code), 0, 0, 2, 0)
    strs = struct.pack("<IIIIIIIIII", 7, 3, 0, 0, str_off, len(shstr), 0, 0, 1, 0)
    return header + body + null + text + strs


def selftest():
    # movs r0, #1; bl (32-bit, not coprocessor); bx lr: integer only.
    clean = bytes.fromhex("0120" "00f000f8" "7047")
    # vadd.f32 s0, s0, s1 (ee30 0a20), after the same integer code.
    vfp = clean[:6] + bytes.fromhex("30ee200a") + clean[6:]
    # vpush {d8} (ed2d 8b02) and vmrs APSR_nzcv, fpscr (eef1 fa10).
    vpush = bytes.fromhex("2ded028b" "f1ee10fa")
    cases = [
        ("clean soft-float", synthetic_elf(clean, 0x05000200), 0),
        ("vadd.f32", synthetic_elf(vfp, 0x05000200), 1),
        ("vpush + vmrs", synthetic_elf(vpush, 0x05000200), 2),
        ("hard-float flag", synthetic_elf(clean, 0x05000400), 1),
    ]
    ok = True
    for what, elf, want in cases:
        got = len(problems(elf))
        if got != want:
            print(f"check_soft_float selftest: {what}: {got} problem(s), expected {want}", file=sys.stderr)
            ok = False
    print("check_soft_float selftest: " + ("ok (a VFP instruction or the hard-float flag fails the check)" if ok else "FAILED"))
    return ok


def main(argv):
    if argv == ["--selftest"]:
        return 0 if selftest() else 1
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    return 0 if check(argv) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
