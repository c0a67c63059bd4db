// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Cortex-M7 core operations the FLASH driver needs: barriers, D-cache maintenance by address,
//! and a copy that survives the bus fault of a double-bit ECC error.
//!
//! ```text
//! flash::Flash -> FlashRegisters -> mmio::FlashMmio
//!                                       |
//!                                 cpu (this file): DSB/ISB, DCIMVAC, FAULTMASK + BFHFNMIGN
//! ```
//!
//! Register facts: ARMv7-M Architecture Reference Manual §B3.2 (SCB), Cortex-M7 TRM §4 (cache
//! maintenance, 32-byte D-cache lines). On the host these are no-ops so the crate builds for
//! `cargo test`; the host tests use the register model instead.

/// SCB Configuration and Control Register.
#[cfg(all(target_arch = "arm", target_os = "none"))]
const SCB_CCR: *mut u32 = 0xE000_ED14 as *mut u32;
/// CCR.BFHFNMIGN: handlers at priority -1/-2 ignore precise data bus faults.
#[cfg(all(target_arch = "arm", target_os = "none"))]
const CCR_BFHFNMIGN: u32 = 1 << 8;
/// CCR.DC: D-cache enabled.
#[cfg(all(target_arch = "arm", target_os = "none"))]
const CCR_DC: u32 = 1 << 16;
/// D-cache invalidate by address to the point of coherency.
#[cfg(all(target_arch = "arm", target_os = "none"))]
const SCB_DCIMVAC: *mut u32 = 0xE000_EF5C as *mut u32;
/// Cortex-M7 D-cache line size.
#[cfg(all(target_arch = "arm", target_os = "none"))]
const DCACHE_LINE: u32 = 32;

/// DSB then ISB.
#[inline(always)]
pub fn barrier() {
    #[cfg(all(target_arch = "arm", target_os = "none"))]
    // SAFETY: DSB and ISB only order memory accesses and flush the pipeline; they read and
    // write no registers or memory the compiler tracks. No `nomem`, so the compiler does not
    // move memory accesses across them.
    unsafe {
        core::arch::asm!("dsb", "isb", options(nostack, preserves_flags));
    }
}

/// Whether the D-cache is enabled (SCB->CCR.DC). The Arduino bootloader's hand-off state is
/// not documented, so the driver asks at run time.
pub fn dcache_enabled() -> bool {
    #[cfg(all(target_arch = "arm", target_os = "none"))]
    {
        // SAFETY: SCB_CCR is the architecturally defined, always-mapped System Control Block
        // register 0xE000_ED14; a 32-bit volatile read has no side effects.
        let ccr = unsafe { core::ptr::read_volatile(SCB_CCR) };
        ccr & CCR_DC != 0
    }
    #[cfg(not(all(target_arch = "arm", target_os = "none")))]
    {
        false
    }
}

/// Invalidates the D-cache lines covering `[addr, addr + len)` if the D-cache is on.
///
/// Cortex-M7 TRM §4.3 "cache maintenance operations", DCIMVAC; ST's
/// `SCB_InvalidateDCache_by_Addr`. Needed after a program or erase so that reads do not hit
/// lines filled before the operation.
pub fn invalidate_dcache(addr: u32, len: u32) {
    #[cfg(all(target_arch = "arm", target_os = "none"))]
    {
        if len == 0 || !dcache_enabled() {
            return;
        }
        let first = addr & !(DCACHE_LINE - 1);
        let end = addr.saturating_add(len);
        barrier();
        let mut line = first;
        while line < end {
            // SAFETY: DCIMVAC (0xE000_EF5C) is a write-only SCB cache-maintenance register;
            // writing an address invalidates that line if present and never faults. The lines
            // invalidated belong to the flash array, which the CPU never writes through the
            // cache (write-through region), so no dirty data is lost.
            unsafe { core::ptr::write_volatile(SCB_DCIMVAC, line) };
            match line.checked_add(DCACHE_LINE) {
                Some(next) => line = next,
                None => break,
            }
        }
        barrier();
    }
    #[cfg(not(all(target_arch = "arm", target_os = "none")))]
    {
        let _ = (addr, len);
    }
}

/// Copies `buf.len()` bytes from `src` with precise data bus faults ignored.
///
/// The Zephyr approach to STM32H7 double-bit ECC errors (zephyr #33140, PR #34374): raise the
/// execution priority to -1 with FAULTMASK and set SCB->CCR.BFHFNMIGN, so a load that returns
/// a bus error is ignored instead of escalating to a fault; then restore both. The caller
/// checks FLASH_SRx.DBECCERR to learn whether a word failed. FAULTMASK also masks every
/// interrupt, so this is a short critical section; keep `buf` small (the driver's reads are
/// bounded by the caller's buffer).
///
/// # Safety
///
/// `src..src + buf.len()` must lie in the internal flash array (always mapped, read-only to a
/// plain load). Must run in privileged mode (the kernel).
pub unsafe fn copy_ignoring_bus_faults(src: u32, buf: &mut [u8]) {
    #[cfg(all(target_arch = "arm", target_os = "none"))]
    {
        // SAFETY: CPSID F sets FAULTMASK; the kernel runs privileged, where CPS is permitted.
        // Not `nomem`: memory accesses must not move across the mask change.
        unsafe { core::arch::asm!("cpsid f", options(nostack, preserves_flags)) };
        // SAFETY: SCB->CCR is always mapped; setting BFHFNMIGN only changes how precise bus
        // faults are handled at negative priority, which we are now running at.
        let old_ccr = unsafe { core::ptr::read_volatile(SCB_CCR) };
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(SCB_CCR, old_ccr | CCR_BFHFNMIGN) };
        barrier();

        let mut i = 0usize;
        let len = buf.len();
        // Bytes up to a 4-byte boundary, then words, then the tail.
        while i < len && !(src as usize + i).is_multiple_of(4) {
            // SAFETY: the caller guarantees the range lies in the flash array; a bus error on
            // this load is ignored (FAULTMASK + BFHFNMIGN) and yields an unspecified value.
            buf[i] = unsafe { core::ptr::read_volatile((src as usize + i) as *const u8) };
            i += 1;
        }
        while i + 4 <= len {
            // SAFETY: as above; the address is 4-byte aligned by construction.
            let w = unsafe { core::ptr::read_volatile((src as usize + i) as *const u32) };
            buf[i..i + 4].copy_from_slice(&w.to_le_bytes());
            i += 4;
        }
        while i < len {
            // SAFETY: as above.
            buf[i] = unsafe { core::ptr::read_volatile((src as usize + i) as *const u8) };
            i += 1;
        }

        barrier();
        // SAFETY: restores the CCR value read above.
        unsafe { core::ptr::write_volatile(SCB_CCR, old_ccr) };
        barrier();
        // SAFETY: CPSIE F clears FAULTMASK, returning to the priority we entered with (the
        // kernel never calls this from a fault handler, where FAULTMASK would already be set).
        unsafe { core::arch::asm!("cpsie f", options(nostack, preserves_flags)) };
    }
    #[cfg(not(all(target_arch = "arm", target_os = "none")))]
    {
        let _ = src;
        buf.fill(0xFF);
    }
}
