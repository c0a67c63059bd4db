// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Taking over the core from the Arduino bootloader.
//!
//! The state the bootloader leaves is read, reported and replaced by a known one before the
//! kernel does anything that could go wrong because of it (in particular before the store's
//! first flash erase).
//!
//! ```text
//! boards/portenta_h7 start() -> stm32h7::init() -> handoff::take_over (this file)
//!                                                        |
//!                                    CoreRegisters: mmio::CoreMmio | model::CoreModel
//! ```
//!
//! # What the bootloader leaves, and what the kernel sets
//!
//! The Arduino bootloader is an Mbed OS application. It starts the kernel through Mbed's
//! `mbed_start_application` (mbed-os `platform/source/mbed_application.c`), which disables
//! SysTick and every NVIC line and zeroes their priorities, but then *clears* PRIMASK (the
//! kernel starts with interrupts unmasked), leaves BASEPRI alone, and leaves the caches as
//! Mbed's start-up set them (Mbed's STM32H7 start-up enables the I- and D-cache). Its MPU
//! regions are Mbed's (MicroPython's Portenta port notes that the bootloader uses the MPU to
//! protect flash). [`take_over`] therefore sets every one of these, in this order:
//!
//! 1. **Interrupts masked first** (PRIMASK set, `CPSID I`), before any other write, so that
//!    nothing the bootloader left pending can run a handler in the middle of the take-over;
//!    then BASEPRI = 0, so that no priority threshold left by the bootloader hides any later.
//!    They are unmasked again (`CPSIE I`) as the last step, once every source below is off:
//!    Tock expects the reset state, PRIMASK clear (its context switch raises `SVC`, which
//!    with PRIMASK set would escalate to a HardFault), and its own critical sections end
//!    with `CPSIE I` anyway.
//! 2. **SysTick** stopped (CSR = 0, CVR cleared) and its and PendSV's pending bits cleared
//!    (ICSR.PENDSTCLR/PENDSVCLR); Tock's scheduler timer programs SysTick itself.
//! 3. **NVIC**: every line disabled (ICER), un-pended (ICPR), priority 0 (IPR), as Mbed's
//!    `powerdown_nvic` does; the chip enables its own lines afterwards (`Chip::init`).
//! 4. **System handler priorities** SHPR1..3 = 0 (their reset value, which Tock's SVC,
//!    PendSV and SysTick handling assumes), and the MemManage/BusFault/UsageFault enables in
//!    SHCSR cleared: Tock's vector table sends those to `unhandled_interrupt`, and relies on
//!    them escalating to HardFault, whose handler turns a process's fault into a stopped
//!    process rather than a kernel panic.
//! 5. **Fault status and sleep**: CFSR, HFSR and DFSR cleared (write 1 to clear; PM0253
//!    "Configurable fault status register", "HardFault status register", ARMv7-M ARM §C1.6.1
//!    DFSR), so the first fault report is the kernel's own; SCR = 0 (no SLEEPONEXIT,
//!    SLEEPDEEP or SEVONPEND left by the bootloader). **FLASH_CR1 and FLASH_CR2 locked**
//!    (LOCK, RM0399 §4.9.4): MCUboot jumps with both banks unlocked, and an unlocked bank
//!    lets a stray store program the kernel's own flash; the driver unlocks per operation.
//!    VTOR = this kernel's vector table.
//! 6. **MPU off, then every region cleared** (PM0253 "Memory protection unit": MPU_CTRL = 0, then for each region
//!    RNR = n, RASR = 0, RBAR = 0), as MicroPython's Portenta port does
//!    (`ports/stm32/boards/ARDUINO_PORTENTA_H7/board_init.c`), so no bootloader region
//!    outlives the hand-off: until the first context switch the kernel runs privileged with
//!    the MPU off, and Tock writes every region it uses on each switch.
//! 7. **Caches**: D-cache cleaned and invalidated *while still on*, then disabled, then cleaned
//!    and invalidated once more; I-cache invalidated and enabled. See the policy below.
//! 8. **Interrupts unmasked** (step 1), with every source disabled: the reset state.
//!
//! Before this runs, Tock's reset handler has already initialised `.data` and `.bss` under
//! the bootloader's MPU regions and caches (as Mbed's own applications are started); the
//! first D-cache pass below writes that work back to SRAM.
//!
//! # Cache policy: D-cache off, I-cache on
//!
//! Process regions are Normal, non-cacheable memory (`cortexm_normal_mpu`: upstream's
//! Cortex-M MPU alone writes no TEX/C/B/S bits, which makes them Strongly-ordered, where the
//! Cortex-M7 faults unaligned accesses), while the kernel reaches the same AXI SRAM through the
//! default memory map (PRIVDEFENA, or the MPU off), which is Normal write-back write-allocate.
//! With the D-cache on, the kernel could read stale lines (and write dirty lines back over the
//! process's data) for addresses a process stores to uncached: stacked syscall frames, allow
//! buffers and grants could disagree. Making process regions write-back instead would need a
//! proof for every path that needs cache maintenance (flash program/erase, the ECC-guarded
//! read's bus error, any DMA); the kernel does little data-heavy work, so the D-cache is
//! turned off instead (the chip README has the reasoning). The FLASH driver keeps its D-cache
//! maintenance (it asks `cpu::dcache_enabled` and does nothing when off).
//!
//! The I-cache has no such problem (no one writes code while the kernel runs: bank 1 is never
//! programmed by this kernel, and tockloader stops the core), and it hides the flash's wait
//! states, so it is invalidated and turned on whatever the bootloader left (ARM's sequence,
//! PM0253 "Cache maintenance operations" / CMSIS `SCB_EnableICache`: DSB, ISB, ICIALLU, DSB, ISB, CCR.IC, DSB, ISB).
//!
//! The D-cache is cleaned before it is disabled because whatever the bootloader and the
//! start-up code (`.data`/`.bss` initialisation, the first stack frames) wrote may still be
//! dirty in it: disabling first would make the CPU read the stale SRAM behind those lines
//! (CMSIS issue ARM-software/CMSIS_5#620 is this bug). No data store may come between the
//! clean and the disable: it would allocate a dirty line (write-allocate) that the disable
//! hides. That is guaranteed by construction, not by the compiler's current choice: on the
//! target the clean, the disable and the barriers are one naked assembly function
//! (`mmio::dcache_clean_invalidate_disable`: PM0253 §4.8 "Cache maintenance operations",
//! DCCISW by set/way as the ARMv7-M ARM §B2.2.7 and CMSIS `SCB_CleanInvalidateDCache` do,
//! then CCR.DC = 0, DSB, ISB) that touches only caller-saved registers and the System Control
//! Space, never the stack; `make -C boards/portenta_h7 check-dcache` (part of `make -C boards
//! test`) checks the linked kernel's disassembly of it for any stack access. A second
//! clean-and-invalidate pass after the disable leaves no line valid for a later enable.

pub mod mmio;
pub mod regs;

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;

use regs::{
    ccr, icsr, mpu, shcsr, syst, CoreReg, CoreRegisters, FLASH_CR_LOCK, MAX_MPU_REGIONS, NVIC_IPR_WORDS,
    NVIC_WORDS,
};

/// What the bootloader left, read before anything is changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Found {
    /// SCB VTOR.
    pub vtor: u32,
    /// PRIMASK was set (interrupts masked).
    pub primask: bool,
    /// BASEPRI.
    pub basepri: u32,
    /// CCR.IC.
    pub icache: bool,
    /// CCR.DC.
    pub dcache: bool,
    /// MPU_CTRL.
    pub mpu_ctrl: u32,
    /// Number of MPU regions the core has (MPU_TYPE.DREGION, capped at 16).
    pub mpu_regions: u32,
    /// Bit n set: region n was enabled (RASR.ENABLE).
    pub mpu_enabled_regions: u16,
    /// NVIC lines that were enabled.
    pub nvic_enabled: u32,
    /// NVIC lines that were pending.
    pub nvic_pending: u32,
    /// SysTick CSR.
    pub systick_csr: u32,
    /// SHPR1..3 were not all zero.
    pub shpr_nonzero: bool,
    /// SHCSR's MemManage/BusFault/UsageFault enables.
    pub fault_enables: u32,
    /// CFSR (configurable fault status).
    pub cfsr: u32,
    /// HFSR (HardFault status).
    pub hfsr: u32,
    /// SCR (sleep configuration).
    pub scr: u32,
    /// Bit 0: FLASH_CR1 was unlocked; bit 1: FLASH_CR2 was.
    pub flash_unlocked: u8,
}

/// What the take-over set (read back from the registers afterwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Set {
    /// SCB VTOR.
    pub vtor: u32,
    /// CCR.IC.
    pub icache: bool,
    /// CCR.DC.
    pub dcache: bool,
    /// MPU_CTRL.
    pub mpu_ctrl: u32,
    /// MPU regions cleared.
    pub mpu_regions_cleared: u32,
    /// BASEPRI.
    pub basepri: u32,
    /// PRIMASK (clear again at the end, with every source disabled).
    pub primask: bool,
}

/// The hand-off report: before and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Handoff {
    /// What the bootloader left.
    pub found: Found,
    /// What the kernel set.
    pub set: Set,
}

/// Number of one bits over a range of NVIC words.
fn count_bits<R: CoreRegisters>(r: &R, reg: fn(u8) -> CoreReg) -> u32 {
    (0..NVIC_WORDS).map(|n| r.read(reg(n)).count_ones()).sum()
}

/// Reads the hand-off state without changing anything.
pub fn survey<R: CoreRegisters>(r: &R) -> Found {
    let mpu_regions = ((r.read(CoreReg::MpuType) >> mpu::TYPE_DREGION_SHIFT) & 0xFF).min(MAX_MPU_REGIONS);
    let ccr_now = r.read(CoreReg::Ccr);
    let shpr = (1..=3).map(|n| r.read(CoreReg::Shpr(n))).fold(0, |a, v| a | v);
    Found {
        vtor: r.read(CoreReg::Vtor),
        primask: r.primask(),
        basepri: r.basepri(),
        icache: ccr_now & ccr::IC != 0,
        dcache: ccr_now & ccr::DC != 0,
        mpu_ctrl: r.read(CoreReg::MpuCtrl),
        mpu_regions,
        // Filled in by `take_over` once interrupts are masked (it needs RNR writes).
        mpu_enabled_regions: 0,
        nvic_enabled: count_bits(r, CoreReg::NvicIser),
        nvic_pending: count_bits(r, CoreReg::NvicIspr),
        systick_csr: r.read(CoreReg::SystCsr),
        shpr_nonzero: shpr != 0,
        fault_enables: r.read(CoreReg::Shcsr) & shcsr::ENABLES,
        cfsr: r.read(CoreReg::Cfsr),
        hfsr: r.read(CoreReg::Hfsr),
        scr: r.read(CoreReg::Scr),
        flash_unlocked: u8::from(r.read(CoreReg::FlashCr1) & FLASH_CR_LOCK == 0)
            | (u8::from(r.read(CoreReg::FlashCr2) & FLASH_CR_LOCK == 0) << 1),
    }
}

/// Cleans and invalidates the whole level-1 D-cache by set/way.
///
/// PM0253 "Cache maintenance operations": CSSELR = 0 selects the L1 data cache; CCSIDR gives
/// sets, ways and line size; DCCISW takes the way in the top bits and the set above the line
/// offset, as CMSIS `SCB_CleanInvalidateDCache`.
fn clean_invalidate_dcache<R: CoreRegisters + ?Sized>(r: &R) {
    r.write(CoreReg::Csselr, 0);
    r.barrier();
    let ccsidr = r.read(CoreReg::Ccsidr);
    let line_shift = (ccsidr & 0x7) + 4;
    let ways = ((ccsidr >> 3) & 0x3FF) + 1;
    let sets = ((ccsidr >> 13) & 0x7FFF) + 1;
    // Way field: the top ceil(log2(ways)) bits (bits 31:30 for the Cortex-M7's 4 ways).
    let way_bits = (ways - 1).bit_width();
    for set in 0..sets {
        for way in 0..ways {
            let way_field = if way_bits == 0 { 0 } else { way << (32 - way_bits) };
            r.write(CoreReg::Dccisw, way_field | (set << line_shift));
        }
    }
    r.barrier();
}

/// Takes the core over from the bootloader (module documentation: order and reasons) and
/// returns what was found and what was set. `vector_table` is this kernel's vector table.
pub fn take_over<R: CoreRegisters>(r: &R, vector_table: u32) -> Handoff {
    let mut found = survey(r);

    // 1. Interrupts: masked before any write, then no priority threshold.
    r.mask_interrupts();
    r.set_basepri(0);

    // 2. SysTick stopped, nothing pending from it or PendSV.
    r.write(CoreReg::SystCsr, 0);
    r.write(CoreReg::SystCvr, 0);
    r.write(CoreReg::Icsr, icsr::PENDSTCLR | icsr::PENDSVCLR);

    // 3. NVIC: all lines off, none pending, priority 0.
    for n in 0..NVIC_WORDS {
        r.write(CoreReg::NvicIcer(n), u32::MAX);
        r.write(CoreReg::NvicIcpr(n), u32::MAX);
    }
    for n in 0..NVIC_IPR_WORDS {
        r.write(CoreReg::NvicIpr(n), 0);
    }

    // 4. System handler priorities at their reset value; configurable faults escalate.
    for n in 1..=3 {
        r.write(CoreReg::Shpr(n), 0);
    }
    let shcsr_now = r.read(CoreReg::Shcsr);
    r.write(CoreReg::Shcsr, shcsr_now & !shcsr::ENABLES);

    // 5. Fault status cleared (write 1 to clear), no sleep configuration, flash banks locked,
    //    this kernel's vectors.
    for reg in [CoreReg::Cfsr, CoreReg::Hfsr, CoreReg::Dfsr] {
        r.write(reg, u32::MAX);
    }
    r.write(CoreReg::Scr, 0);
    for reg in [CoreReg::FlashCr1, CoreReg::FlashCr2] {
        let cr = r.read(reg);
        if cr & FLASH_CR_LOCK == 0 {
            r.write(reg, cr | FLASH_CR_LOCK);
        }
    }
    r.write(CoreReg::Vtor, vector_table);
    r.barrier();

    // 6. MPU: note which regions the bootloader enabled, turn the MPU off, then clear every
    //    region (disable first, RASR = 0, then RBAR).
    let mut enabled = 0u16;
    for n in 0..found.mpu_regions {
        r.write(CoreReg::MpuRnr, n);
        if r.read(CoreReg::MpuRasr) & mpu::RASR_ENABLE != 0 {
            enabled |= 1 << n;
        }
    }
    found.mpu_enabled_regions = enabled;
    r.barrier();
    r.write(CoreReg::MpuCtrl, 0);
    r.barrier();
    for n in 0..found.mpu_regions {
        r.write(CoreReg::MpuRnr, n);
        r.write(CoreReg::MpuRasr, 0);
        r.write(CoreReg::MpuRbar, 0);
    }
    r.barrier();

    // 7. Caches. D-cache: clean while on, disable, clean again (see the module docs).
    if r.read(CoreReg::Ccr) & ccr::DC != 0 {
        r.clean_invalidate_and_disable_dcache();
        clean_invalidate_dcache(r);
    }
    // I-cache: invalidate, then enable (PM0253 "Cache maintenance operations").
    r.barrier();
    r.write(CoreReg::Iciallu, 0);
    r.barrier();
    let ccr_now = r.read(CoreReg::Ccr);
    r.write(CoreReg::Ccr, ccr_now | ccr::IC);
    r.barrier();

    // 8. Every source is off: back to the reset state's PRIMASK, which Tock expects.
    r.unmask_interrupts();

    let ccr_after = r.read(CoreReg::Ccr);
    let set = Set {
        vtor: r.read(CoreReg::Vtor),
        icache: ccr_after & ccr::IC != 0,
        dcache: ccr_after & ccr::DC != 0,
        mpu_ctrl: r.read(CoreReg::MpuCtrl),
        mpu_regions_cleared: found.mpu_regions,
        basepri: r.basepri(),
        primask: r.primask(),
    };
    Handoff { found, set }
}

/// SysTick CSR as "on (interrupt)", "on", or "off", for the boot report.
pub const fn systick_state(csr: u32) -> &'static str {
    if csr & syst::ENABLE == 0 {
        "off"
    } else if csr & syst::TICKINT != 0 {
        "on with interrupt"
    } else {
        "on"
    }
}
