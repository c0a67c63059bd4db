// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! `CoreRegisters` over the real Cortex-M7 core: volatile accesses to the System Control
//! Space and `MRS`/`MSR`/`CPSID` for the special registers.
//!
//! ```text
//! handoff::take_over -> CoreRegisters
//!                           |
//!                     CoreMmio (this file) -> SCB, MPU, NVIC, SysTick @ 0xE000_E000
//! ```
//!
//! On the host (tests, `cargo check` of the crate) reads return 0 and writes do nothing; the
//! host tests use the model instead.

use super::regs::{CoreReg, CoreRegisters};

/// The Cortex-M7 core's system registers. Zero-sized: every access goes to fixed addresses.
pub struct CoreMmio {
    _private: (),
}

impl CoreMmio {
    /// The core's system registers.
    ///
    /// # Safety
    ///
    /// Only the boot code may use this, once, before the kernel owns the MPU, NVIC and
    /// SysTick through their Tock drivers: writes here change state those drivers assume.
    pub const unsafe fn new() -> Self {
        CoreMmio { _private: () }
    }
}

impl CoreRegisters for CoreMmio {
    #[inline(always)]
    fn read(&self, reg: CoreReg) -> u32 {
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        {
            // SAFETY: `reg.address()` is one of the architecturally defined, always-mapped
            // 32-bit System Control Space registers listed in `CoreReg` (PM0253 chapter 4), or
            // FLASH_CR1/CR2 (RM0399 §4.9.4, always mapped); reading them has no side effects
            // (the write-only ones read as zero or UNKNOWN).
            unsafe { core::ptr::read_volatile(reg.address() as usize as *const u32) }
        }
        #[cfg(not(all(target_arch = "arm", target_os = "none")))]
        {
            let _ = reg;
            0
        }
    }

    #[inline(always)]
    fn write(&self, reg: CoreReg, value: u32) {
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        // SAFETY: as in `read`; the kernel runs privileged, and the values written follow
        // the sequences of `handoff::take_over` (PM0253 chapter 4). The only caller is the
        // boot code, before any driver relies on these registers (see `new`).
        unsafe {
            core::ptr::write_volatile(reg.address() as usize as *mut u32, value)
        }
        #[cfg(not(all(target_arch = "arm", target_os = "none")))]
        {
            let _ = (reg, value);
        }
    }

    #[inline(always)]
    fn primask(&self) -> bool {
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        {
            let primask: u32;
            // SAFETY: MRS of PRIMASK only reads a special register into a general register.
            unsafe {
                core::arch::asm!("mrs {}, PRIMASK", out(reg) primask, options(nomem, nostack, preserves_flags))
            };
            primask & 1 != 0
        }
        #[cfg(not(all(target_arch = "arm", target_os = "none")))]
        {
            false
        }
    }

    #[inline(always)]
    fn mask_interrupts(&self) {
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        // SAFETY: CPSID I sets PRIMASK; the kernel runs privileged. Not `nomem`: no memory
        // access may move across the change of interrupt state.
        unsafe {
            core::arch::asm!("cpsid i", options(nostack, preserves_flags))
        }
    }

    #[inline(always)]
    fn unmask_interrupts(&self) {
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        // SAFETY: CPSIE I clears PRIMASK; the kernel runs privileged. The hand-off calls it
        // only once every interrupt source is disabled. Not `nomem`, as for CPSID.
        unsafe {
            core::arch::asm!("cpsie i", options(nostack, preserves_flags))
        }
    }

    #[inline(always)]
    fn basepri(&self) -> u32 {
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        {
            let basepri: u32;
            // SAFETY: MRS of BASEPRI only reads a special register into a general register.
            unsafe {
                core::arch::asm!("mrs {}, BASEPRI", out(reg) basepri, options(nomem, nostack, preserves_flags))
            };
            basepri
        }
        #[cfg(not(all(target_arch = "arm", target_os = "none")))]
        {
            0
        }
    }

    #[inline(always)]
    fn set_basepri(&self, value: u32) {
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        // SAFETY: MSR BASEPRI changes only the priority threshold; privileged code may write
        // it. Not `nomem`, as for CPSID.
        unsafe {
            core::arch::asm!("msr BASEPRI, {}", in(reg) value, options(nostack, preserves_flags))
        }
        #[cfg(not(all(target_arch = "arm", target_os = "none")))]
        {
            let _ = value;
        }
    }

    #[inline(always)]
    fn barrier(&self) {
        crate::cpu::barrier();
    }
}
