// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! `unaligned`: the end-to-end suite's unaligned-access app. It loads and stores u16, u32 and
//! u64 at odd addresses in its flash (a `static` in .rodata), its RAM (a `static mut`) and its
//! stack, through `read_unaligned`/`write_unaligned` and `from_le_bytes` of odd slices, and
//! prints through `core::fmt`, whose template reads are unaligned halfword and word loads on
//! a Cortex-M. On a Cortex-M7 an unaligned access to memory the MPU maps Strongly-ordered or
//! Device raises an UNALIGNED UsageFault whatever CCR.UNALIGN_TRP says (ARMv7-M ARM A3.5.7),
//! so on a Portenta whose process regions lack Normal attributes this app is stopped by a
//! fault before its last line (issue 22 section 1). QEMU does not model that fault; there the
//! app must pass too, which checks the app itself. On thumbv7em LLVM emits plain LDRH/LDR/
//! STRH/STR for these accesses (the architecture allows them); on riscv32imac byte accesses.
//!
//! Console protocol (parsed by `e2e/run_e2e.py`), the last line is one of:
//!
//! ```text
//! unaligned: PASS <n> checks (flash 0x..., RAM 0x..., stack 0x...)
//! unaligned: FAIL <failed> of <n> checks
//! ```
//!
//! preceded by `unaligned: FAIL <what>: got ..., want ...` for each failed check.

#![no_main]
#![no_std]

use core::fmt::Write as _;
use core::hint::black_box;
use core::ptr::{addr_of_mut, read_unaligned, write_unaligned};
use e2e_line::{line, Line};
use libtock::platform::Syscalls;
use libtock::runtime::{set_main, stack_size, TockSyscalls};

set_main! {main}
stack_size! {0x800}

/// In app flash: an immutable static with no interior mutability is placed in .rodata.
static FLASH: [u8; 24] = [
    0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe, 0x0f, 0x11, 0x22, 0x33,
    0x44, 0x55, 0x66, 0x77, 0x88,
];

/// In app RAM (.data/.bss).
static mut RAM: [u8; 24] = [0; 24];

/// Odd byte offsets each width is tried at (every misalignment of a u64).
const OFFSETS: [usize; 4] = [1, 3, 5, 7];

struct Checks {
    run: u32,
    failed: u32,
}

impl Checks {
    fn eq(&mut self, what: &str, offset: usize, got: u64, want: u64) {
        self.run += 1;
        if got != want {
            self.failed += 1;
            line!("unaligned: FAIL {} at +{}: got {:#x}, want {:#x}", what, offset, got, want);
        }
    }
}

/// The little-endian value of `n` bytes at `p`, read one byte at a time (the reference).
///
/// # Safety
/// `p..p+n` must be readable.
unsafe fn bytewise(p: *const u8, n: usize) -> u64 {
    let mut v = 0u64;
    for i in (0..n).rev() {
        v = (v << 8) | u64::from(black_box(p.add(i).read_volatile()));
    }
    v
}

/// Loads of every width at every odd offset of `base` (24 readable bytes); `region` names
/// the four checks.
///
/// # Safety
/// `base..base+24` must be readable.
unsafe fn loads(c: &mut Checks, region: [&str; 4], base: *const u8) {
    for &o in &OFFSETS {
        let p = black_box(base.add(black_box(o)));
        c.eq(region[0], o, u64::from(read_unaligned(p as *const u16)), bytewise(p, 2));
        c.eq(region[1], o, u64::from(read_unaligned(p as *const u32)), bytewise(p, 4));
        c.eq(region[2], o, read_unaligned(p as *const u64), bytewise(p, 8));
        // from_le_bytes of an odd slice: the pattern the kv apps use.
        let s = core::slice::from_raw_parts(p, 8);
        let mut w = [0u8; 4];
        w.copy_from_slice(&s[..4]);
        c.eq(region[3], o, u64::from(u32::from_le_bytes(w)), bytewise(p, 4));
    }
}

/// Stores of every width at every odd offset of `base` (24 writable bytes), each checked
/// byte by byte and by an unaligned load.
///
/// # Safety
/// `base..base+24` must be writable.
unsafe fn stores(c: &mut Checks, base: *mut u8) {
    for &o in &OFFSETS {
        let p = black_box(base.add(black_box(o)));
        write_unaligned(p as *mut u16, black_box(0xa55a));
        c.eq("u16 store", o, bytewise(p, 2), 0xa55a);
        write_unaligned(p as *mut u32, black_box(0xdead_beef));
        c.eq("u32 store", o, bytewise(p, 4), 0xdead_beef);
        write_unaligned(p as *mut u64, black_box(0x0123_4567_89ab_cdef));
        c.eq("u64 store", o, bytewise(p, 8), 0x0123_4567_89ab_cdef);
        c.eq("u64 store, load", o, read_unaligned(p as *const u64), 0x0123_4567_89ab_cdef);
    }
}

fn main() {
    line!("unaligned: start");
    let mut c = Checks { run: 0, failed: 0 };
    let ram_start = TockSyscalls::memop_app_ram_start().map(|p| p as usize).unwrap_or(0);
    let flash = FLASH.as_ptr();
    let ram = addr_of_mut!(RAM) as *mut u8;
    let mut stack = [0u8; 24];
    let stack_p = black_box(stack.as_mut_ptr());
    // The flash array must be outside the process's RAM (below it on both boards), the RAM
    // array inside it: otherwise the "flash" loads would not test flash.
    c.eq("FLASH static below app RAM", 0, u64::from(ram_start != 0 && (flash as usize) < ram_start), 1);
    c.eq("RAM static in app RAM", 0, u64::from(ram_start != 0 && (ram as usize) >= ram_start), 1);
    // SAFETY: each pointer covers 24 bytes this process owns (flash: readable only).
    unsafe {
        loads(&mut c, ["flash u16 load", "flash u32 load", "flash u64 load", "flash from_le_bytes u32"], flash);
        stores(&mut c, ram);
        loads(&mut c, ["RAM u16 load", "RAM u32 load", "RAM u64 load", "RAM from_le_bytes u32"], ram);
        stores(&mut c, stack_p);
        loads(&mut c, ["stack u16 load", "stack u32 load", "stack u64 load", "stack from_le_bytes u32"], stack_p);
    }
    // core::fmt with a value read unaligned from flash: integers, hex, Debug, padding.
    // SAFETY: FLASH has 24 bytes; offset 3 + 8 is within them.
    let v = unsafe { read_unaligned(black_box(flash.add(black_box(3))) as *const u64) };
    let mut out = Line::new();
    let _ = write!(out, "{} {:#x} {:?} {:>6}", v as u16, v as u32, v, (v >> 56) as u8);
    // FLASH[3..11] little-endian: 0xbaa9_9887_7665_5443.
    let want = "21571 0x76655443 13450449469693056067    186";
    let got = core::str::from_utf8(out.as_bytes()).unwrap_or("");
    c.run += 1;
    if got != want {
        c.failed += 1;
        line!("unaligned: FAIL core::fmt: got {:?}, want {:?}", got, want);
    }
    if c.failed == 0 {
        line!(
            "unaligned: PASS {} checks (flash {:#x}, RAM {:#x}, stack {:#x})",
            c.run,
            flash as usize,
            ram as usize,
            stack_p as usize
        );
    } else {
        line!("unaligned: FAIL {} of {} checks", c.failed, c.run);
    }
}
