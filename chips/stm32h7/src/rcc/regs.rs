// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! The RCC, PWR and FLASH_ACR registers the clock set-up touches, and the `ClockRegisters`
//! access trait.
//!
//! ```text
//! rcc::configure / switch_to_hsi / frequencies (sequences)
//!        |
//!   ClockRegisters  (this file)
//!     |                      |
//! mmio::ClockMmio        model::ClockModel (host tests)
//! (RCC, PWR, FLASH_ACR)  (register-level model of the clock tree)
//! ```
//!
//! The clock set-up spans three peripherals: the RCC (oscillators, PLL1, prescalers, the
//! SYSCLK switch), PWR (the voltage scale, which bounds the clocks) and FLASH_ACR (the wait
//! states, which must cover the clock at every step). Every access goes through
//! [`ClockRegisters`], so the same sequence runs against the hardware on the target and
//! against a model on the host that checks RM0399's rules after every write, as the FLASH
//! driver (`FlashRegisters`) and the hand-off (`CoreRegisters`) do.
//!
//! Addresses and bits: RM0399 §8 "Reset and Clock Control (RCC)" register description (base
//! 0x5802_4400), §6 "Power control (PWR)" PWR_CSR1 / PWR_D3CR (base 0x5802_4800), §4.9.1
//! FLASH_ACR (0x5200_2000); ST's `stm32h747xx.h` for the bit positions.

/// A register of the clock set-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockReg {
    /// RCC_CR (0x00): oscillator and PLL enables and ready flags.
    Cr,
    /// RCC_CFGR (0x10): SYSCLK switch (SW) and status (SWS).
    Cfgr,
    /// RCC_D1CFGR (0x18): D1CPRE, HPRE, D1PPRE.
    D1cfgr,
    /// RCC_D2CFGR (0x1C): D2PPRE1, D2PPRE2.
    D2cfgr,
    /// RCC_D3CFGR (0x20): D3PPRE.
    D3cfgr,
    /// RCC_PLLCKSELR (0x28): PLL source (shared by the three PLLs), DIVM1.
    Pllckselr,
    /// RCC_PLLCFGR (0x2C): PLL1 range, VCO, fractional enable, output enables.
    Pllcfgr,
    /// RCC_PLL1DIVR (0x30): N, P, Q, R of PLL1 (each minus one).
    Pll1divr,
    /// RCC_PLL1FRACR (0x34).
    Pll1fracr,
    /// RCC_D2CCIP2R (0x54): USART1's kernel clock (USART16SEL).
    D2ccip2r,
    /// RCC_AHB4ENR (0xE0): GPIO clocks.
    Ahb4enr,
    /// RCC_APB1LENR (0xE8): TIM2.
    Apb1lenr,
    /// RCC_APB2ENR (0xF0): USART1.
    Apb2enr,
    /// PWR_CSR1 (0x04): ACTVOSRDY, ACTVOS (the voltage scale in effect).
    PwrCsr1,
    /// PWR_D3CR (0x18): VOS (the voltage scale asked for), VOSRDY.
    PwrD3cr,
    /// FLASH_ACR (0x00 of FLASH): LATENCY, WRHIGHFREQ.
    FlashAcr,
}

/// RCC register block base (RM0399 "Memory map and register boundary addresses").
pub const RCC_BASE: u32 = 0x5802_4400;
/// PWR register block base.
pub const PWR_BASE: u32 = 0x5802_4800;
/// FLASH register block base.
pub const FLASH_BASE: u32 = 0x5200_2000;

impl ClockReg {
    /// The register's address.
    pub const fn address(self) -> u32 {
        match self {
            ClockReg::Cr => RCC_BASE,
            ClockReg::Cfgr => RCC_BASE + 0x10,
            ClockReg::D1cfgr => RCC_BASE + 0x18,
            ClockReg::D2cfgr => RCC_BASE + 0x1C,
            ClockReg::D3cfgr => RCC_BASE + 0x20,
            ClockReg::Pllckselr => RCC_BASE + 0x28,
            ClockReg::Pllcfgr => RCC_BASE + 0x2C,
            ClockReg::Pll1divr => RCC_BASE + 0x30,
            ClockReg::Pll1fracr => RCC_BASE + 0x34,
            ClockReg::D2ccip2r => RCC_BASE + 0x54,
            ClockReg::Ahb4enr => RCC_BASE + 0xE0,
            ClockReg::Apb1lenr => RCC_BASE + 0xE8,
            ClockReg::Apb2enr => RCC_BASE + 0xF0,
            ClockReg::PwrCsr1 => PWR_BASE + 0x04,
            ClockReg::PwrD3cr => PWR_BASE + 0x18,
            ClockReg::FlashAcr => FLASH_BASE,
        }
    }
}

/// RCC_CR bits.
pub mod cr {
    /// HSI on.
    pub const HSION: u32 = 1 << 0;
    /// HSI ready.
    pub const HSIRDY: u32 = 1 << 2;
    /// HSI divider (bits 4:3): HSI = 64 MHz >> HSIDIV.
    pub const HSIDIV_SHIFT: u32 = 3;
    /// HSIDIV field mask.
    pub const HSIDIV_MASK: u32 = 0b11 << HSIDIV_SHIFT;
    /// HSE on.
    pub const HSEON: u32 = 1 << 16;
    /// HSE ready.
    pub const HSERDY: u32 = 1 << 17;
    /// HSE bypass (external clock rather than a crystal); writable only while HSE is off.
    pub const HSEBYP: u32 = 1 << 18;
    /// PLL1 on.
    pub const PLL1ON: u32 = 1 << 24;
    /// PLL1 locked.
    pub const PLL1RDY: u32 = 1 << 25;
    /// PLL2 on.
    pub const PLL2ON: u32 = 1 << 26;
    /// PLL2 locked.
    pub const PLL2RDY: u32 = 1 << 27;
    /// PLL3 on.
    pub const PLL3ON: u32 = 1 << 28;
    /// PLL3 locked.
    pub const PLL3RDY: u32 = 1 << 29;
    /// The three PLL enables.
    pub const PLLS_ON: u32 = PLL1ON | PLL2ON | PLL3ON;
    /// The three PLL ready flags.
    pub const PLLS_RDY: u32 = PLL1RDY | PLL2RDY | PLL3RDY;
}

/// RCC_CFGR fields.
pub mod cfgr {
    /// SW (bits 2:0): the SYSCLK source asked for.
    pub const SW_MASK: u32 = 0b111;
    /// SWS shift (bits 5:3): the SYSCLK source in effect.
    pub const SWS_SHIFT: u32 = 3;
    /// SWS mask.
    pub const SWS_MASK: u32 = 0b111 << SWS_SHIFT;
    /// SW/SWS value: HSI.
    pub const HSI: u32 = 0;
    /// SW/SWS value: CSI.
    pub const CSI: u32 = 1;
    /// SW/SWS value: HSE.
    pub const HSE: u32 = 2;
    /// SW/SWS value: PLL1 P output.
    pub const PLL1: u32 = 3;
}

/// RCC_D1CFGR / D2CFGR / D3CFGR fields.
pub mod dcfgr {
    /// D1CFGR.HPRE (bits 3:0): AXI/AHB prescaler (0b1000 = /2).
    pub const HPRE_MASK: u32 = 0xF;
    /// D1CFGR.D1PPRE shift (bits 6:4).
    pub const D1PPRE_SHIFT: u32 = 4;
    /// D1CFGR.D1CPRE shift (bits 11:8): CPU prescaler.
    pub const D1CPRE_SHIFT: u32 = 8;
    /// D2CFGR.D2PPRE1 shift (bits 6:4).
    pub const D2PPRE1_SHIFT: u32 = 4;
    /// D2CFGR.D2PPRE2 shift (bits 10:8).
    pub const D2PPRE2_SHIFT: u32 = 8;
    /// D3CFGR.D3PPRE shift (bits 6:4).
    pub const D3PPRE_SHIFT: u32 = 4;
    /// AHB prescaler code for /2.
    pub const AHB_DIV2: u32 = 0b1000;
    /// APB prescaler code for /2.
    pub const APB_DIV2: u32 = 0b100;
}

/// RCC_PLLCKSELR fields.
pub mod pllckselr {
    /// PLLSRC (bits 1:0).
    pub const PLLSRC_MASK: u32 = 0b11;
    /// PLLSRC value: HSI.
    pub const SRC_HSI: u32 = 0;
    /// PLLSRC value: CSI.
    pub const SRC_CSI: u32 = 1;
    /// PLLSRC value: HSE.
    pub const SRC_HSE: u32 = 2;
    /// DIVM1 shift (bits 9:4).
    pub const DIVM1_SHIFT: u32 = 4;
    /// DIVM1 mask.
    pub const DIVM1_MASK: u32 = 0x3F << DIVM1_SHIFT;
}

/// RCC_PLLCFGR bits (PLL1's).
pub mod pllcfgr {
    /// Fractional mode.
    pub const PLL1FRACEN: u32 = 1 << 0;
    /// VCO: 0 wide (192-836 MHz), 1 medium.
    pub const PLL1VCOSEL: u32 = 1 << 1;
    /// Input range shift (bits 3:2).
    pub const PLL1RGE_SHIFT: u32 = 2;
    /// Input range mask.
    pub const PLL1RGE_MASK: u32 = 0b11 << PLL1RGE_SHIFT;
    /// P output enable.
    pub const DIVP1EN: u32 = 1 << 16;
    /// Q output enable.
    pub const DIVQ1EN: u32 = 1 << 17;
    /// R output enable.
    pub const DIVR1EN: u32 = 1 << 18;
    /// Every PLL1 field this driver writes.
    pub const PLL1_FIELDS: u32 = PLL1FRACEN | PLL1VCOSEL | PLL1RGE_MASK | DIVP1EN | DIVQ1EN | DIVR1EN;
}

/// RCC_PLL1DIVR fields (each holds the divider minus one).
pub mod pll1divr {
    /// DIVN1 mask (bits 8:0).
    pub const N_MASK: u32 = 0x1FF;
    /// DIVP1 shift (bits 15:9).
    pub const P_SHIFT: u32 = 9;
    /// DIVQ1 shift (bits 22:16).
    pub const Q_SHIFT: u32 = 16;
    /// DIVR1 shift (bits 30:24).
    pub const R_SHIFT: u32 = 24;
    /// Each of P, Q, R is 7 bits.
    pub const DIV_MASK: u32 = 0x7F;
}

/// RCC_D2CCIP2R.USART16SEL (bits 5:3); 0 = PCLK2.
pub const USART16SEL_MASK: u32 = 0b111 << 3;

/// PWR bits (RM0399 §6 PWR_CSR1, PWR_D3CR).
pub mod pwr {
    /// CSR1.ACTVOSRDY: the supply configuration is applied and VOS may change.
    pub const ACTVOSRDY: u32 = 1 << 13;
    /// CSR1.ACTVOS and D3CR.VOS shift (bits 15:14).
    pub const VOS_SHIFT: u32 = 14;
    /// VOS mask.
    pub const VOS_MASK: u32 = 0b11 << VOS_SHIFT;
    /// D3CR.VOSRDY: the scale asked for is in effect.
    pub const VOSRDY: u32 = 1 << 13;
    /// VOS value: scale 3 (the bootloader's).
    pub const VOS3: u32 = 0b01;
    /// VOS value: scale 2.
    pub const VOS2: u32 = 0b10;
    /// VOS value: scale 1 (400 MHz).
    pub const VOS1: u32 = 0b11;
}

/// FLASH_ACR fields (RM0399 §4.9.1; reset value 0x37).
pub mod acr {
    /// LATENCY (bits 3:0): read wait states.
    pub const LATENCY_MASK: u32 = 0xF;
    /// WRHIGHFREQ shift (bits 5:4): programming delay.
    pub const WRHIGHFREQ_SHIFT: u32 = 4;
    /// WRHIGHFREQ mask.
    pub const WRHIGHFREQ_MASK: u32 = 0b11 << WRHIGHFREQ_SHIFT;
}

/// Register-level access to the RCC, PWR and FLASH_ACR.
///
/// Implemented by [`super::mmio::ClockMmio`] on the target and by the host-test model.
pub trait ClockRegisters {
    /// Reads a register.
    fn read(&self, reg: ClockReg) -> u32;
    /// Writes a register.
    fn write(&self, reg: ClockReg, value: u32);

    /// Read-modify-write: clears `clear`, then sets `set`.
    fn modify(&self, reg: ClockReg, clear: u32, set: u32) {
        let value = self.read(reg);
        self.write(reg, (value & !clear) | set);
    }
}

impl<T: ClockRegisters + ?Sized> ClockRegisters for &T {
    fn read(&self, reg: ClockReg) -> u32 {
        (**self).read(reg)
    }
    fn write(&self, reg: ClockReg, value: u32) {
        (**self).write(reg, value)
    }
}
