// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! `ClockRegisters` over the real RCC, PWR and FLASH_ACR (memory-mapped I/O).
//!
//! ```text
//! rcc (sequences) -> ClockRegisters
//!                        |
//!                  ClockMmio (this file) -> RCC @ 0x5802_4400, PWR @ 0x5802_4800, FLASH_ACR @ 0x5200_2000
//! ```
//!
//! On the host (tests, `cargo check` of the crate) reads return 0 and writes do nothing; the
//! host tests use the model instead.

use super::regs::{ClockReg, ClockRegisters};

/// The clock registers of the STM32H747. Zero-sized: every access goes to fixed addresses.
pub struct ClockMmio {
    _private: (),
}

impl ClockMmio {
    /// The clock registers.
    ///
    /// # Safety
    ///
    /// Writes change the clocks every peripheral runs from; only the boot code's clock set-up
    /// and the peripheral clock enables (which set one bit each, read-modify-write, with
    /// interrupts that never touch the RCC) may write through it.
    pub const unsafe fn new() -> Self {
        ClockMmio { _private: () }
    }
}

impl ClockRegisters for ClockMmio {
    #[inline(always)]
    fn read(&self, reg: ClockReg) -> u32 {
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        {
            // SAFETY: `reg.address()` is one of the documented, always-mapped 32-bit RCC, PWR or
            // FLASH registers listed in `ClockReg` (RM0399 §8, §6, §4.9.1); reading them has no
            // side effects.
            unsafe { core::ptr::read_volatile(reg.address() as usize as *const u32) }
        }
        #[cfg(not(all(target_arch = "arm", target_os = "none")))]
        {
            let _ = reg;
            0
        }
    }

    #[inline(always)]
    fn write(&self, reg: ClockReg, value: u32) {
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        // SAFETY: as in `read`; the values written follow the sequences of `rcc` (RM0399 §8
        // "PLL initialization phase", "System clock (sys_ck)"; §4.3.8 for FLASH_ACR), the
        // only writers (see `new`).
        unsafe {
            core::ptr::write_volatile(reg.address() as usize as *mut u32, value)
        }
        #[cfg(not(all(target_arch = "arm", target_os = "none")))]
        {
            let _ = (reg, value);
        }
    }
}
