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
//! host tests use the model instead. The D-cache clean-and-disable is one naked assembly
//! function here (see `dcache_clean_invalidate_disable`).

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

    fn clean_invalidate_and_disable_dcache(&self) {
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        // SAFETY: the hand-off calls this once, privileged, with interrupts masked; the
        // function only writes CSSELR, DCCISW and CCR (PM0253 §4.8) and clobbers only the
        // caller-saved r0-r3, r12 and the flags, as the C ABI allows.
        unsafe {
            dcache_clean_invalidate_disable();
        }
    }
}

/// Cleans and invalidates the whole L1 D-cache by set/way, then disables it; one naked
/// function, so no compiler-generated store can come between the last clean and the disable.
///
/// PM0253 §4.8 "Cache maintenance operations" and the ARMv7-M ARM §B2.2.7 (CSSELR, CCSIDR,
/// DCCISW) / §B3.2.8 (CCR.DC); the loop is CMSIS `SCB_CleanInvalidateDCache`'s. The Cortex-M7
/// D-cache is always 4-way with 32-byte lines (Cortex-M7 TRM §5.1, "L1 caches"), so the way
/// goes in DCCISW bits 31:30 and the set from bit 5; only the number of sets is read from
/// CCSIDR. Registers: r0 the SCS address, r1 the last way's field, r2 the set field counting
/// down, r3 the way field counting down, r12 the DCCISW value: all caller-saved, so there is
/// no prologue, no spill and no stack access (`check-dcache` in the board's Makefile checks
/// the linked kernel for any).
#[cfg(all(target_arch = "arm", target_os = "none"))]
#[unsafe(naked)]
unsafe extern "C" fn dcache_clean_invalidate_disable() {
    core::arch::naked_asm!(
        // CSSELR = 0: CCSIDR describes the L1 data cache.
        "movw r0, #0xED84",
        "movt r0, #0xE000",
        "movs r1, #0",
        "str r1, [r0]",
        "dsb",
        "isb",
        // CCSIDR (0xE000_ED80): NumSets - 1 in bits 27:13, Associativity - 1 in bits 12:3.
        "ldr r1, [r0, #-4]",
        "ubfx r2, r1, #13, #15",
        "lsls r2, r2, #5",
        "ubfx r1, r1, #3, #10",
        "lsls r1, r1, #30",
        // DCCISW (0xE000_EF74), every set and way.
        "movw r0, #0xEF74",
        "movt r0, #0xE000",
        "2:",
        "mov r3, r1",
        "3:",
        "orr r12, r3, r2",
        "str r12, [r0]",
        "cmp r3, #0",
        "sub r3, r3, #0x40000000",
        "bne 3b",
        "cmp r2, #0",
        "sub r2, r2, #32",
        "bne 2b",
        "dsb",
        // CCR (0xE000_ED14).DC = 0, then DSB and ISB: the disable completes before anything
        // after it.
        "movw r0, #0xED14",
        "movt r0, #0xE000",
        "ldr r1, [r0]",
        "bic r1, r1, #0x10000",
        "str r1, [r0]",
        "dsb",
        "isb",
        "bx lr",
    )
}
