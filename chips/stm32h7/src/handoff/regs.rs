// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Cortex-M7 system registers the hand-off touches, and the `CoreRegisters` access trait.
//!
//! ```text
//! handoff::take_over (sequences)
//!        |
//!   CoreRegisters  (this file)
//!     |                      |
//! mmio::CoreMmio         model::CoreModel (host tests)
//! (SCB/MPU/NVIC/SysTick) (register-level model of the core)
//! ```
//!
//! Everything the hand-off does to the core goes through [`CoreRegisters`]: memory-mapped
//! system registers by name, the two special registers PRIMASK and BASEPRI, and barriers. The
//! same sequence code therefore runs against the real core on the target and against a model
//! that checks the order of the steps on the host, as the FLASH driver does with
//! `FlashRegisters`.
//!
//! Addresses and bits: PM0253 (STM32F7/H7 Cortex-M7 programming manual) chapter 4, cited by
//! section title: "Nested vectored interrupt controller", "System control block", "System
//! timer, SysTick", "Memory protection unit", "Cache maintenance operations"; ARMv7-M
//! Architecture Reference Manual chapter B3 (System Control Space).

/// Number of external interrupt lines of the STM32H747's Cortex-M7 core (RM0399 "NVIC").
pub const NUM_IRQS: u32 = crate::nvic::NUM_IRQS as u32;
/// NVIC ISER/ICER/ISPR/ICPR words covering [`NUM_IRQS`] lines (32 lines per word).
pub const NVIC_WORDS: u8 = NUM_IRQS.div_ceil(32) as u8;
/// NVIC IPR words covering [`NUM_IRQS`] lines (4 one-byte priorities per word).
pub const NVIC_IPR_WORDS: u8 = NUM_IRQS.div_ceil(4) as u8;
/// MPU regions of the Cortex-M7 (MPU_TYPE.DREGION reads 16 on the STM32H7); a larger value
/// read from the register is capped to this.
pub const MAX_MPU_REGIONS: u32 = 16;

/// A memory-mapped system register of the Cortex-M7 core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreReg {
    /// SCB ICSR (0xE000_ED04): PENDSVCLR, PENDSTCLR.
    Icsr,
    /// SCB VTOR (0xE000_ED08).
    Vtor,
    /// SCB SCR (0xE000_ED10): SLEEPONEXIT, SLEEPDEEP, SEVONPEND.
    Scr,
    /// SCB CCR (0xE000_ED14): DC (bit 16), IC (bit 17).
    Ccr,
    /// SCB SHPR1..SHPR3 (0xE000_ED18 + 4 * (n - 1)), `n` in 1..=3.
    Shpr(u8),
    /// SCB SHCSR (0xE000_ED24): fault handler enables.
    Shcsr,
    /// SCB CFSR (0xE000_ED28): MemManage/BusFault/UsageFault status, write 1 to clear.
    Cfsr,
    /// SCB HFSR (0xE000_ED2C): HardFault status, write 1 to clear.
    Hfsr,
    /// SCB DFSR (0xE000_ED30): debug fault status, write 1 to clear.
    Dfsr,
    /// FLASH_CR1 (0x5200_200C, RM0399 §4.9.4): not a core register, but the take-over locks it
    /// (LOCK, bit 0) before anything else runs.
    FlashCr1,
    /// FLASH_CR2 (0x5200_210C, RM0399 §4.9.4).
    FlashCr2,
    /// CCSIDR (0xE000_ED80): geometry of the cache CSSELR selects.
    Ccsidr,
    /// CSSELR (0xE000_ED84): cache selection (0 = level 1 data cache).
    Csselr,
    /// ICIALLU (0xE000_EF50): invalidate the whole I-cache (write-only).
    Iciallu,
    /// DCCISW (0xE000_EF74): clean and invalidate one D-cache line by set/way (write-only).
    Dccisw,
    /// MPU_TYPE (0xE000_ED90): DREGION in bits 15:8.
    MpuType,
    /// MPU_CTRL (0xE000_ED94): ENABLE, HFNMIENA, PRIVDEFENA.
    MpuCtrl,
    /// MPU_RNR (0xE000_ED98): region selected for RBAR/RASR.
    MpuRnr,
    /// MPU_RBAR (0xE000_ED9C).
    MpuRbar,
    /// MPU_RASR (0xE000_EDA0): ENABLE in bit 0.
    MpuRasr,
    /// SysTick CSR (0xE000_E010).
    SystCsr,
    /// SysTick RVR (0xE000_E014).
    SystRvr,
    /// SysTick CVR (0xE000_E018): any write clears it.
    SystCvr,
    /// NVIC ISER<n> (0xE000_E100 + 4n): set-enable, reads the enabled lines.
    NvicIser(u8),
    /// NVIC ICER<n> (0xE000_E180 + 4n): clear-enable.
    NvicIcer(u8),
    /// NVIC ISPR<n> (0xE000_E200 + 4n): set-pending, reads the pending lines.
    NvicIspr(u8),
    /// NVIC ICPR<n> (0xE000_E280 + 4n): clear-pending.
    NvicIcpr(u8),
    /// NVIC IPR<n> (0xE000_E400 + 4n): four one-byte priorities.
    NvicIpr(u8),
}

impl CoreReg {
    /// The register's address (PM0253 chapter 4).
    pub const fn address(self) -> u32 {
        match self {
            CoreReg::Icsr => 0xE000_ED04,
            CoreReg::Vtor => 0xE000_ED08,
            CoreReg::Scr => 0xE000_ED10,
            CoreReg::Ccr => 0xE000_ED14,
            CoreReg::Shpr(n) => 0xE000_ED18 + 4 * (n.saturating_sub(1) % 3) as u32,
            CoreReg::Shcsr => 0xE000_ED24,
            CoreReg::Cfsr => 0xE000_ED28,
            CoreReg::Hfsr => 0xE000_ED2C,
            CoreReg::Dfsr => 0xE000_ED30,
            CoreReg::FlashCr1 => 0x5200_200C,
            CoreReg::FlashCr2 => 0x5200_210C,
            CoreReg::Ccsidr => 0xE000_ED80,
            CoreReg::Csselr => 0xE000_ED84,
            CoreReg::Iciallu => 0xE000_EF50,
            CoreReg::Dccisw => 0xE000_EF74,
            CoreReg::MpuType => 0xE000_ED90,
            CoreReg::MpuCtrl => 0xE000_ED94,
            CoreReg::MpuRnr => 0xE000_ED98,
            CoreReg::MpuRbar => 0xE000_ED9C,
            CoreReg::MpuRasr => 0xE000_EDA0,
            CoreReg::SystCsr => 0xE000_E010,
            CoreReg::SystRvr => 0xE000_E014,
            CoreReg::SystCvr => 0xE000_E018,
            CoreReg::NvicIser(n) => 0xE000_E100 + 4 * (n % 16) as u32,
            CoreReg::NvicIcer(n) => 0xE000_E180 + 4 * (n % 16) as u32,
            CoreReg::NvicIspr(n) => 0xE000_E200 + 4 * (n % 16) as u32,
            CoreReg::NvicIcpr(n) => 0xE000_E280 + 4 * (n % 16) as u32,
            CoreReg::NvicIpr(n) => 0xE000_E400 + 4 * (n % 60) as u32,
        }
    }
}

/// SCB ICSR bits (PM0253 "Interrupt control and state register").
pub mod icsr {
    /// Clears a pending SysTick exception.
    pub const PENDSTCLR: u32 = 1 << 25;
    /// Clears a pending PendSV exception.
    pub const PENDSVCLR: u32 = 1 << 27;
}

/// SCB CCR bits (PM0253 "Configuration and control register").
pub mod ccr {
    /// D-cache enable.
    pub const DC: u32 = 1 << 16;
    /// I-cache enable.
    pub const IC: u32 = 1 << 17;
}

/// SCB SHCSR bits (PM0253 "System handler control and state register").
pub mod shcsr {
    /// MemManage fault handler enable.
    pub const MEMFAULTENA: u32 = 1 << 16;
    /// BusFault handler enable.
    pub const BUSFAULTENA: u32 = 1 << 17;
    /// UsageFault handler enable.
    pub const USGFAULTENA: u32 = 1 << 18;
    /// The three enables.
    pub const ENABLES: u32 = MEMFAULTENA | BUSFAULTENA | USGFAULTENA;
}

/// FLASH_CRx.LOCK (RM0399 §4.9.4): set by software, cleared only by the key sequence.
pub const FLASH_CR_LOCK: u32 = 1 << 0;

/// MPU bits (PM0253 "Memory protection unit").
pub mod mpu {
    /// MPU_CTRL.ENABLE.
    pub const CTRL_ENABLE: u32 = 1 << 0;
    /// MPU_RASR.ENABLE.
    pub const RASR_ENABLE: u32 = 1 << 0;
    /// MPU_TYPE.DREGION shift.
    pub const TYPE_DREGION_SHIFT: u32 = 8;
}

/// SysTick CSR bits (PM0253 "SysTick control and status register").
pub mod syst {
    /// Counter enable.
    pub const ENABLE: u32 = 1 << 0;
    /// Exception on reaching zero.
    pub const TICKINT: u32 = 1 << 1;
}

/// Register-level access to the Cortex-M7 core's system registers.
///
/// Implemented by [`super::mmio::CoreMmio`] on the target and by the host-test model. Only
/// the hand-off sequences use it, once, at boot.
pub trait CoreRegisters {
    /// Reads a system register.
    fn read(&self, reg: CoreReg) -> u32;
    /// Writes a system register.
    fn write(&self, reg: CoreReg, value: u32);
    /// Whether PRIMASK is set (configurable interrupts masked).
    fn primask(&self) -> bool;
    /// Sets PRIMASK (`CPSID I`).
    fn mask_interrupts(&self);
    /// Clears PRIMASK (`CPSIE I`).
    fn unmask_interrupts(&self);
    /// BASEPRI.
    fn basepri(&self) -> u32;
    /// Writes BASEPRI (0 = no priority masking).
    fn set_basepri(&self, value: u32);
    /// DSB then ISB.
    fn barrier(&self);

    /// Cleans and invalidates the whole level-1 D-cache by set/way, then disables it
    /// (CCR.DC = 0), DSB, ISB, with no data store between the last line's clean and the
    /// disable (a store there could allocate a dirty line that the disable then hides).
    ///
    /// This default does it through [`CoreRegisters::read`]/[`CoreRegisters::write`], which is
    /// what the host model checks; on the target [`super::mmio::CoreMmio`] runs it as one
    /// naked assembly function that uses only caller-saved registers and no stack, so the
    /// guarantee does not depend on the compiler's code generation.
    fn clean_invalidate_and_disable_dcache(&self) {
        super::clean_invalidate_dcache(self);
        let ccr_now = self.read(CoreReg::Ccr);
        self.write(CoreReg::Ccr, ccr_now & !ccr::DC);
        self.barrier();
    }
}

impl<T: CoreRegisters + ?Sized> CoreRegisters for &T {
    fn read(&self, reg: CoreReg) -> u32 {
        (**self).read(reg)
    }
    fn write(&self, reg: CoreReg, value: u32) {
        (**self).write(reg, value)
    }
    fn primask(&self) -> bool {
        (**self).primask()
    }
    fn mask_interrupts(&self) {
        (**self).mask_interrupts()
    }
    fn unmask_interrupts(&self) {
        (**self).unmask_interrupts()
    }
    fn basepri(&self) -> u32 {
        (**self).basepri()
    }
    fn set_basepri(&self, value: u32) {
        (**self).set_basepri(value)
    }
    fn barrier(&self) {
        (**self).barrier()
    }
    fn clean_invalidate_and_disable_dcache(&self) {
        (**self).clean_invalidate_and_disable_dcache()
    }
}
