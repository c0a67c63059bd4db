// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! `FlashRegisters` over the real FLASH peripheral (memory-mapped I/O).
//!
//! ```text
//! flash::Flash -> FlashRegisters
//!                     |
//!               FlashMmio (this file) -> FLASH @ 0x5200_2000, array @ 0x0800_0000
//! ```

use super::regs::{Bank, FlashRegisters, Reg, FLASH_BASE, FLASH_END};
use crate::cpu;

/// FLASH register block base (RM0399 "Memory map and register boundary addresses").
const FLASH_REGS_BASE: usize = 0x5200_2000;

/// The FLASH peripheral of the STM32H747. Zero-sized: every access goes to fixed addresses.
pub struct FlashMmio {
    _private: (),
}

impl FlashMmio {
    /// The FLASH peripheral.
    ///
    /// # Safety
    ///
    /// Only one `Flash` driver may own the peripheral: two would interleave unlock/program
    /// sequences. The board creates exactly one.
    pub const unsafe fn new() -> Self {
        FlashMmio { _private: () }
    }

    fn reg_ptr(bank: Bank, reg: Reg) -> *mut u32 {
        (FLASH_REGS_BASE + bank.register_offset() + reg.offset()) as *mut u32
    }

    fn in_array(addr: u32, len: u32) -> bool {
        addr >= FLASH_BASE && addr.checked_add(len).is_some_and(|end| end <= FLASH_END)
    }
}

impl FlashRegisters for FlashMmio {
    fn read(&self, bank: Bank, reg: Reg) -> u32 {
        // SAFETY: `reg_ptr` yields one of the documented, always-mapped 32-bit FLASH registers
        // of RM0399 §4.9 (KEYR/CR/SR/CCR/ECC_FA of bank 1 or 2); reading them has no side
        // effects (KEYR and CCR read as zero).
        unsafe { core::ptr::read_volatile(Self::reg_ptr(bank, reg)) }
    }

    fn write(&self, bank: Bank, reg: Reg, value: u32) {
        // SAFETY: as in `read`. The values written follow RM0399's sequences; the driver is
        // the only writer (see `new`).
        unsafe { core::ptr::write_volatile(Self::reg_ptr(bank, reg), value) }
    }

    fn store_word(&self, addr: u32, value: u32) {
        if !addr.is_multiple_of(4) || !Self::in_array(addr, 4) {
            return;
        }
        // SAFETY: `addr` is a 4-aligned address inside the flash array (checked above), which
        // is always mapped; a store there never touches RAM. With CR.PG set it feeds the write
        // buffer (RM0399 §4.3.9); without PG the controller flags PGSERR and drops it.
        unsafe { core::ptr::write_volatile(addr as usize as *mut u32, value) }
    }

    fn load_guarded(&self, addr: u32, buf: &mut [u8]) {
        let Ok(len) = u32::try_from(buf.len()) else {
            return;
        };
        if !Self::in_array(addr, len) {
            return;
        }
        // SAFETY: the range lies in the flash array (checked above) and the kernel runs
        // privileged, as `copy_ignoring_bus_faults` requires.
        unsafe { cpu::copy_ignoring_bus_faults(addr, buf) }
    }

    fn barrier(&self) {
        cpu::barrier();
    }

    fn invalidate_dcache(&self, addr: u32, len: u32) {
        cpu::invalidate_dcache(addr, len);
    }
}

/// Flash-size register (RM0399 "device electronic signature": KiB, 16 bits).
const FLASH_SIZE_REG: *const u16 = 0x1FF1_E880 as *const u16;

/// The size of the flash array in bytes as the device reports it, capped at the 2 MiB this
/// driver knows (a blank or unexpected value reads as 2 MiB).
pub fn device_flash_size() -> u32 {
    // SAFETY: 0x1FF1_E880 is the read-only flash-size word in system memory of the STM32H747
    // (always mapped); a 16-bit read has no side effects.
    let kib = u32::from(unsafe { core::ptr::read_volatile(FLASH_SIZE_REG) });
    let max = FLASH_END - FLASH_BASE;
    if kib == 0 || kib == 0xFFFF || kib * 1024 > max {
        max
    } else {
        kib * 1024
    }
}
