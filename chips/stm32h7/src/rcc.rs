// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Reset and clock control: the clock tree set-up, peripheral clock enables and the
//! frequencies derived from the registers.
//!
//! ```text
//! boards/portenta_h7 (drives PH1, calls configure)
//!        |
//! rcc (this file) -- pwr (voltage scaling), flash::mmio (wait states)
//!        |
//! usart (BRR from PCLK2), tim2 (prescaler from the APB1 timer clock), SysTick (SYSCLK)
//! ```
//!
//! Registers: RM0399, RCC chapter, "RCC register description"; base 0x5802_4400. Section
//! numbers outside the FLASH chapter are cited by title. The set-up follows RM0399's RCC
//! "PLL initialization phase" and "System clock (sys_ck)" subsections and Arduino's `SetSysClock_PLL_HSE` for the Portenta:
//! 25 MHz HSE in bypass mode, PLL1 M=5 N=160 P=2 -> 400 MHz SYSCLK, HCLK /2, APBs /2, flash
//! latency 4. Every wait is bounded; on a timeout the system stays on (or returns to) HSI and
//! the frequencies are recomputed from the registers, so the UART and the timer are always
//! programmed for the clock actually running.

use kernel::utilities::registers::interfaces::{ReadWriteable, Readable, Writeable};
use kernel::utilities::registers::{register_bitfields, register_structs, ReadWrite};
use kernel::utilities::StaticRef;

use crate::pwr::Pwr;

register_structs! {
    RccRegisters {
        (0x000 => cr: ReadWrite<u32, CR::Register>),
        (0x004 => _reserved0),
        (0x010 => cfgr: ReadWrite<u32, CFGR::Register>),
        (0x014 => _reserved1),
        (0x018 => d1cfgr: ReadWrite<u32, D1CFGR::Register>),
        (0x01C => d2cfgr: ReadWrite<u32, D2CFGR::Register>),
        (0x020 => d3cfgr: ReadWrite<u32, D3CFGR::Register>),
        (0x024 => _reserved2),
        (0x028 => pllckselr: ReadWrite<u32, PLLCKSELR::Register>),
        (0x02C => pllcfgr: ReadWrite<u32, PLLCFGR::Register>),
        (0x030 => pll1divr: ReadWrite<u32, PLL1DIVR::Register>),
        (0x034 => pll1fracr: ReadWrite<u32>),
        (0x038 => _reserved3),
        (0x054 => d2ccip2r: ReadWrite<u32, D2CCIP2R::Register>),
        (0x058 => _reserved4),
        (0x0E0 => ahb4enr: ReadWrite<u32>),
        (0x0E4 => _reserved5),
        (0x0E8 => apb1lenr: ReadWrite<u32>),
        (0x0EC => _reserved6),
        (0x0F0 => apb2enr: ReadWrite<u32>),
        (0x0F4 => @END),
    }
}

register_bitfields![u32,
    CR [
        HSION OFFSET(0) NUMBITS(1) [],
        HSIRDY OFFSET(2) NUMBITS(1) [],
        HSIDIV OFFSET(3) NUMBITS(2) [],
        CSION OFFSET(7) NUMBITS(1) [],
        HSEON OFFSET(16) NUMBITS(1) [],
        HSERDY OFFSET(17) NUMBITS(1) [],
        HSEBYP OFFSET(18) NUMBITS(1) [],
        PLL1ON OFFSET(24) NUMBITS(1) [],
        PLL1RDY OFFSET(25) NUMBITS(1) [],
        PLL2ON OFFSET(26) NUMBITS(1) [],
        PLL2RDY OFFSET(27) NUMBITS(1) [],
        PLL3ON OFFSET(28) NUMBITS(1) [],
        PLL3RDY OFFSET(29) NUMBITS(1) []
    ],
    CFGR [
        SW OFFSET(0) NUMBITS(3) [Hsi = 0, Csi = 1, Hse = 2, Pll1 = 3],
        SWS OFFSET(3) NUMBITS(3) [Hsi = 0, Csi = 1, Hse = 2, Pll1 = 3],
        TIMPRE OFFSET(15) NUMBITS(1) []
    ],
    D1CFGR [
        HPRE OFFSET(0) NUMBITS(4) [],
        D1PPRE OFFSET(4) NUMBITS(3) [],
        D1CPRE OFFSET(8) NUMBITS(4) []
    ],
    D2CFGR [
        D2PPRE1 OFFSET(4) NUMBITS(3) [],
        D2PPRE2 OFFSET(8) NUMBITS(3) []
    ],
    D3CFGR [
        D3PPRE OFFSET(4) NUMBITS(3) []
    ],
    PLLCKSELR [
        PLLSRC OFFSET(0) NUMBITS(2) [Hsi = 0, Csi = 1, Hse = 2, None = 3],
        DIVM1 OFFSET(4) NUMBITS(6) []
    ],
    PLLCFGR [
        PLL1FRACEN OFFSET(0) NUMBITS(1) [],
        PLL1VCOSEL OFFSET(1) NUMBITS(1) [Wide = 0, Medium = 1],
        PLL1RGE OFFSET(2) NUMBITS(2) [],
        DIVP1EN OFFSET(16) NUMBITS(1) [],
        DIVQ1EN OFFSET(17) NUMBITS(1) [],
        DIVR1EN OFFSET(18) NUMBITS(1) []
    ],
    PLL1DIVR [
        DIVN1 OFFSET(0) NUMBITS(9) [],
        DIVP1 OFFSET(9) NUMBITS(7) [],
        DIVQ1 OFFSET(16) NUMBITS(7) [],
        DIVR1 OFFSET(24) NUMBITS(7) []
    ],
    D2CCIP2R [
        USART16SEL OFFSET(3) NUMBITS(3) [Pclk2 = 0]
    ]
];

const RCC_BASE: StaticRef<RccRegisters> =
    // SAFETY: 0x5802_4400 is the RCC register block of the STM32H747 (RM0399 "Memory map and
    // register boundary addresses"); the layout matches "RCC register description".
    unsafe { StaticRef::new(0x5802_4400 as *const RccRegisters) };

/// HSI frequency before HSIDIV (RM0399 RCC "HSI oscillator").
pub const HSI_HZ: u32 = 64_000_000;
/// CSI frequency.
pub const CSI_HZ: u32 = 4_000_000;
/// Iterations of a bounded wait (several ms at 64 MHz; the oscillator, PLL lock and switch
/// each take microseconds).
const WAIT_LIMIT: u32 = 2_000_000;

/// Clock frequencies in Hz, read back from the registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frequencies {
    /// SYSCLK.
    pub sysclk: u32,
    /// CPU clock (SYSCLK / D1CPRE): SysTick runs from it.
    pub cpu: u32,
    /// HCLK (AXI/AHB).
    pub hclk: u32,
    /// APB1 (D2) peripheral clock.
    pub pclk1: u32,
    /// APB2 (D2) peripheral clock: USART1's kernel clock.
    pub pclk2: u32,
    /// Timer clock of APB1 timers (TIM2).
    pub tim_apb1: u32,
}

/// A PLL1-from-HSE configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockConfig {
    /// HSE frequency.
    pub hse_hz: u32,
    /// HSE is an external clock (bypass) rather than a crystal.
    pub hse_bypass: bool,
    /// PLL1 pre-divider M.
    pub m: u32,
    /// PLL1 multiplier N.
    pub n: u32,
    /// PLL1 P divider (SYSCLK).
    pub p: u32,
    /// PLL1 Q divider.
    pub q: u32,
    /// PLL1 R divider.
    pub r: u32,
    /// Flash read latency (wait states) for the resulting AXI clock.
    pub flash_latency: u32,
}

impl ClockConfig {
    /// Arduino's Portenta H7 clock tree (ArduinoCore-mbed `PORTENTA_H7_M7` variant,
    /// `SetSysClock_PLL_HSE`): 25 MHz bypass, M=5 N=160 P=2 Q=10 R=2 -> 400 MHz, latency 4.
    pub const PORTENTA_H7: ClockConfig = ClockConfig {
        hse_hz: 25_000_000,
        hse_bypass: true,
        m: 5,
        n: 160,
        p: 2,
        q: 10,
        r: 2,
        flash_latency: 4,
    };

    /// The early (beta) Portenta H7 boards' 27 MHz oscillator (the bootloader's information
    /// block says which a board has, `bootinfo`). 400 MHz is not reachable from 27 MHz with
    /// integer dividers inside PLL1's limits, so: M=9 (3 MHz reference, PLL1RGE 2-4 MHz),
    /// N=266 (wide VCO at 798 MHz), P=2 -> 399 MHz SYSCLK, HCLK 199.5 MHz; the UART and the
    /// timer are programmed from the frequencies read back, so nothing else changes.
    pub const PORTENTA_H7_27MHZ: ClockConfig = ClockConfig {
        hse_hz: 27_000_000,
        hse_bypass: true,
        m: 9,
        n: 266,
        p: 2,
        q: 10,
        r: 2,
        flash_latency: 4,
    };

    /// The Portenta set-up for an HSE of `hse_hz`, if there is one.
    pub const fn for_hse(hse_hz: u32) -> Option<ClockConfig> {
        match hse_hz {
            25_000_000 => Some(ClockConfig::PORTENTA_H7),
            27_000_000 => Some(ClockConfig::PORTENTA_H7_27MHZ),
            _ => None,
        }
    }

    /// HCLK (the AXI clock the flash runs at): SYSCLK / 2, the HPRE `configure` programs.
    pub const fn hclk_hz(&self) -> u32 {
        self.sysclk_hz() / 2
    }

    /// FLASH_ACR.WRHIGHFREQ for this set-up's AXI clock at VOS1 (`flash_access_vos1`), or 3
    /// (the reset value, the slowest programming) if the clock is outside the table.
    pub const fn wrhighfreq(&self) -> u32 {
        match flash_access_vos1(self.hclk_hz()) {
            Some(access) => access.wrhighfreq,
            None => 3,
        }
    }

    /// PLL1 reference (HSE / M).
    pub const fn reference_hz(&self) -> u32 {
        self.hse_hz / self.m
    }

    /// SYSCLK this configuration yields.
    pub const fn sysclk_hz(&self) -> u32 {
        self.reference_hz() * self.n / self.p
    }

    /// Whether the configuration is within RM0399's limits for VOS1 at HCLK = SYSCLK / 2:
    /// reference 1-16 MHz, wide VCO 192-836 MHz (reference >= 2 MHz), SYSCLK <= 400 MHz,
    /// dividers in range.
    pub const fn is_valid(&self) -> bool {
        let r = self.reference_hz();
        let vco = r as u64 * self.n as u64;
        self.m >= 1
            && self.m <= 63
            && self.n >= 4
            && self.n <= 512
            && self.p >= 2
            && self.p <= 128
            && self.p.is_multiple_of(2)
            && self.q >= 1
            && self.q <= 128
            && self.r >= 1
            && self.r <= 128
            && r >= 2_000_000
            && r <= 16_000_000
            && vco >= 192_000_000
            && vco <= 836_000_000
            && self.sysclk_hz() <= 400_000_000
            && self.flash_latency <= 7
            && match flash_access_vos1(self.hclk_hz()) {
                Some(access) => self.flash_latency >= access.min_latency,
                None => false,
            }
    }

    /// PLL1RGE for the reference frequency (RM0399 RCC_PLLCFGR).
    const fn input_range(&self) -> u32 {
        let r = self.reference_hz();
        if r < 2_000_000 {
            0
        } else if r < 4_000_000 {
            1
        } else if r < 8_000_000 {
            2
        } else {
            3
        }
    }
}

/// FLASH read latency and programming delay for one AXI clock (RM0399 §4.3.8, table "FLASH
/// recommended number of wait states and programming delay").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashAccess {
    /// Smallest FLASH_ACR.LATENCY (wait states) allowed; more is always allowed.
    pub min_latency: u32,
    /// FLASH_ACR.WRHIGHFREQ (programming delay) for this clock.
    pub wrhighfreq: u32,
}

/// RM0399's flash access table, VOS1 column, by AXI clock.
///
/// VOS1 is core 1.15-1.26 V, what `Rcc::configure` selects. Rows: up to 70 MHz 0 WS /
/// delay 0; 140 MHz 1 / 1; 185 MHz 2 / 1; 210 MHz 2 / 2; 225 MHz 3 / 2. Embassy's and ST's
/// HAL H7 clock code use the same rows.
/// `None` above 225 MHz (not allowed at VOS1).
pub const fn flash_access_vos1(axi_hz: u32) -> Option<FlashAccess> {
    let (min_latency, wrhighfreq) = match axi_hz {
        0..=70_000_000 => (0, 0),
        70_000_001..=140_000_000 => (1, 1),
        140_000_001..=185_000_000 => (2, 1),
        185_000_001..=210_000_000 => (2, 2),
        210_000_001..=225_000_000 => (3, 2),
        _ => return None,
    };
    Some(FlashAccess { min_latency, wrhighfreq })
}

/// SYSCLK source (RCC_CFGR.SWS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysclkSource {
    /// HSI (64 MHz / HSIDIV): the reset source.
    Hsi,
    /// CSI.
    Csi,
    /// HSE.
    Hse,
    /// PLL1 P output.
    Pll1,
}

/// Why the clock set-up gave up (the system then runs from HSI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockError {
    /// The configuration is outside the PLL's or the chip's limits.
    InvalidConfig,
    /// PWR never reported ACTVOSRDY / VOSRDY.
    VoltageScaling,
    /// HSI did not become ready.
    HsiTimeout,
    /// HSE did not become ready (oscillator not enabled: PH1?).
    HseTimeout,
    /// PLL1 did not stop or did not lock.
    PllTimeout,
    /// The flash did not accept the new latency.
    FlashLatency,
    /// SYSCLK did not switch.
    SwitchTimeout,
}

/// Peripherals whose bus clock the chip crate gates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeripheralClock {
    /// GPIO port 0 (A) to 10 (K): RCC_AHB4ENR bits 0..10.
    Gpio(u8),
    /// USART1: RCC_APB2ENR bit 4.
    Usart1,
    /// TIM2: RCC_APB1LENR bit 0.
    Tim2,
}

/// The RCC.
pub struct Rcc {
    registers: StaticRef<RccRegisters>,
}

fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..WAIT_LIMIT {
        if condition() {
            return true;
        }
    }
    condition()
}

/// AHB prescaler encoding (HPRE / D1CPRE) to a divisor.
const fn ahb_divisor(code: u32) -> u32 {
    match code {
        0b1000 => 2,
        0b1001 => 4,
        0b1010 => 8,
        0b1011 => 16,
        0b1100 => 64,
        0b1101 => 128,
        0b1110 => 256,
        0b1111 => 512,
        _ => 1,
    }
}

/// APB prescaler encoding (DxPPRE) to a divisor.
const fn apb_divisor(code: u32) -> u32 {
    match code {
        0b100 => 2,
        0b101 => 4,
        0b110 => 8,
        0b111 => 16,
        _ => 1,
    }
}

impl Rcc {
    /// The RCC at its fixed address.
    pub const fn new() -> Self {
        Rcc { registers: RCC_BASE }
    }

    /// Enables a peripheral's bus clock, then reads the register back so the clock is running
    /// before the first access to the peripheral (ST errata 2.2.x / HAL `tmpreg` read-back).
    pub fn enable(&self, clock: PeripheralClock) {
        let (reg, bit) = match clock {
            PeripheralClock::Gpio(n) => (&self.registers.ahb4enr, u32::from(n.min(10))),
            PeripheralClock::Usart1 => (&self.registers.apb2enr, 4),
            PeripheralClock::Tim2 => (&self.registers.apb1lenr, 0),
        };
        reg.set(reg.get() | (1 << bit));
        let _ = reg.get();
    }

    /// Whether a peripheral's bus clock is on.
    pub fn is_enabled(&self, clock: PeripheralClock) -> bool {
        let (reg, bit) = match clock {
            PeripheralClock::Gpio(n) => (&self.registers.ahb4enr, u32::from(n.min(10))),
            PeripheralClock::Usart1 => (&self.registers.apb2enr, 4),
            PeripheralClock::Tim2 => (&self.registers.apb1lenr, 0),
        };
        reg.get() & (1 << bit) != 0
    }

    /// Switches SYSCLK to PLL1 fed by HSE as `config` says (RM0399 RCC "PLL
    /// initialization phase" and "System clock (sys_ck)"), in this order:
    ///
    /// 1. voltage scale 1 (RM0399 PWR "Voltage scaling"; the supply configuration is left as the
    ///    bootloader set it);
    /// 2. HSE on (bypass) and ready — the board has already driven PH1 high;
    /// 3. if SYSCLK runs from PLL1 (the bootloader may leave it so), switch to HSI first;
    /// 4. PLL1 (and PLL2/PLL3, which share its source selector) off; PLL1 programmed, on and
    ///    locked;
    /// 5. flash wait states raised *before* the clock (RM0399 §4.3.8, Table "FLASH
    ///    recommended number of wait states");
    /// 6. bus prescalers (HCLK /2, APBs /2) before the switch;
    /// 7. SYSCLK <- PLL1.
    ///
    /// On any error the system is left on HSI (or on its previous source if the error comes
    /// before step 3).
    pub fn configure(&self, config: &ClockConfig, pwr: &Pwr) -> Result<(), ClockError> {
        if !config.is_valid() {
            return Err(ClockError::InvalidConfig);
        }
        let r = &*self.registers;

        pwr.set_voltage_scale_1().map_err(|_| ClockError::VoltageScaling)?;

        if !r.cr.is_set(CR::HSERDY) {
            // HSEBYP may only change while HSE is off.
            r.cr.modify(CR::HSEON::CLEAR);
            if !wait_until(|| !r.cr.is_set(CR::HSERDY)) {
                return Err(ClockError::HseTimeout);
            }
            r.cr.modify(if config.hse_bypass { CR::HSEBYP::SET } else { CR::HSEBYP::CLEAR });
            r.cr.modify(CR::HSEON::SET);
            if !wait_until(|| r.cr.is_set(CR::HSERDY)) {
                return Err(ClockError::HseTimeout);
            }
        }

        r.cr.modify(CR::HSION::SET);
        if !wait_until(|| r.cr.is_set(CR::HSIRDY)) {
            return Err(ClockError::HsiTimeout);
        }
        if r.cfgr.read(CFGR::SWS) == CFGR::SWS::Pll1.value {
            r.cfgr.modify(CFGR::SW::Hsi);
            if !wait_until(|| r.cfgr.read(CFGR::SWS) == CFGR::SWS::Hsi.value) {
                return Err(ClockError::SwitchTimeout);
            }
        }

        // PLLSRC is shared by the three PLLs and may only change while all are off; the
        // kernel uses neither PLL2 nor PLL3 (the bootloader's USB may have).
        r.cr.modify(CR::PLL1ON::CLEAR + CR::PLL2ON::CLEAR + CR::PLL3ON::CLEAR);
        if !wait_until(|| !r.cr.any_matching_bits_set(CR::PLL1RDY::SET + CR::PLL2RDY::SET + CR::PLL3RDY::SET))
        {
            return Err(ClockError::PllTimeout);
        }
        r.pllckselr.modify(PLLCKSELR::PLLSRC::Hse + PLLCKSELR::DIVM1.val(config.m));
        if r.pllckselr.read(PLLCKSELR::PLLSRC) != PLLCKSELR::PLLSRC::Hse.value
            || r.pllckselr.read(PLLCKSELR::DIVM1) != config.m
        {
            return Err(ClockError::PllTimeout);
        }
        r.pllcfgr.modify(
            PLLCFGR::PLL1FRACEN::CLEAR
                + PLLCFGR::PLL1VCOSEL::Wide
                + PLLCFGR::PLL1RGE.val(config.input_range())
                + PLLCFGR::DIVP1EN::SET
                + PLLCFGR::DIVQ1EN::SET
                + PLLCFGR::DIVR1EN::SET,
        );
        r.pll1fracr.set(0);
        r.pll1divr.write(
            PLL1DIVR::DIVN1.val(config.n - 1)
                + PLL1DIVR::DIVP1.val(config.p - 1)
                + PLL1DIVR::DIVQ1.val(config.q - 1)
                + PLL1DIVR::DIVR1.val(config.r - 1),
        );
        r.cr.modify(CR::PLL1ON::SET);
        if !wait_until(|| r.cr.is_set(CR::PLL1RDY)) {
            return Err(ClockError::PllTimeout);
        }

        // LATENCY and WRHIGHFREQ together, from the table, before the clock rises: the
        // reset WRHIGHFREQ (3) is not the table's value for this AXI clock.
        if !crate::flash::mmio::set_access(config.flash_latency, config.wrhighfreq()) {
            return Err(ClockError::FlashLatency);
        }

        // D1CPRE /1, HPRE /2 (HCLK = AXI = 200 MHz), D1PPRE /2; D2PPRE1/2 /2; D3PPRE /2.
        r.d1cfgr.write(D1CFGR::D1CPRE.val(0) + D1CFGR::HPRE.val(0b1000) + D1CFGR::D1PPRE.val(0b100));
        r.d2cfgr.write(D2CFGR::D2PPRE1.val(0b100) + D2CFGR::D2PPRE2.val(0b100));
        r.d3cfgr.write(D3CFGR::D3PPRE.val(0b100));
        // USART1 kernel clock: PCLK2 (the reset value; made explicit).
        r.d2ccip2r.modify(D2CCIP2R::USART16SEL::Pclk2);

        r.cfgr.modify(CFGR::SW::Pll1);
        if !wait_until(|| r.cfgr.read(CFGR::SWS) == CFGR::SWS::Pll1.value) {
            return Err(ClockError::SwitchTimeout);
        }
        Ok(())
    }

    /// Runs SYSCLK from HSI (RM0399 RCC "System clock (sys_ck)"), leaving the PLLs and the
    /// prescalers as they are. Used when the board's HSE is not known: whatever the
    /// bootloader derived from HSE then no longer clocks the kernel, and `frequencies` is
    /// exact without knowing HSE.
    pub fn switch_to_hsi(&self) -> Result<(), ClockError> {
        let r = &*self.registers;
        r.cr.modify(CR::HSION::SET);
        if !wait_until(|| r.cr.is_set(CR::HSIRDY)) {
            return Err(ClockError::HsiTimeout);
        }
        r.cfgr.modify(CFGR::SW::Hsi);
        if !wait_until(|| r.cfgr.read(CFGR::SWS) == CFGR::SWS::Hsi.value) {
            return Err(ClockError::SwitchTimeout);
        }
        // The programming delay follows the clock down (RM0399 §4.3.8 table; VOS1, which the
        // bootloader needed for its 400 MHz). The latency is kept: more wait states than the
        // table's minimum are always allowed.
        let hclk = self.frequencies(0).hclk;
        if let Some(access) = flash_access_vos1(hclk) {
            let latency = crate::flash::mmio::access_control() & 0xF;
            if !crate::flash::mmio::set_access(latency.max(access.min_latency), access.wrhighfreq) {
                return Err(ClockError::FlashLatency);
            }
        }
        Ok(())
    }

    /// The SYSCLK source now (RCC_CFGR.SWS): read before `configure` it is what the
    /// bootloader left.
    pub fn sysclk_source(&self) -> SysclkSource {
        match self.registers.cfgr.read(CFGR::SWS) {
            1 => SysclkSource::Csi,
            2 => SysclkSource::Hse,
            3 => SysclkSource::Pll1,
            _ => SysclkSource::Hsi,
        }
    }

    /// Whether HSE is on and ready, and in bypass mode (RCC_CR.HSERDY, HSEBYP).
    pub fn hse_state(&self) -> (bool, bool) {
        (self.registers.cr.is_set(CR::HSERDY), self.registers.cr.is_set(CR::HSEBYP))
    }

    /// The frequencies actually running, computed from the registers. `hse_hz` is the
    /// board's HSE frequency (used only if HSE feeds SYSCLK or PLL1).
    pub fn frequencies(&self, hse_hz: u32) -> Frequencies {
        let r = &*self.registers;
        let hsi = HSI_HZ >> r.cr.read(CR::HSIDIV);
        let sysclk = match r.cfgr.read(CFGR::SWS) {
            0 => hsi,
            1 => CSI_HZ,
            2 => hse_hz,
            _ => {
                let src = match r.pllckselr.read(PLLCKSELR::PLLSRC) {
                    0 => hsi,
                    1 => CSI_HZ,
                    2 => hse_hz,
                    _ => 0,
                };
                let m = r.pllckselr.read(PLLCKSELR::DIVM1);
                let n = r.pll1divr.read(PLL1DIVR::DIVN1) + 1;
                let p = r.pll1divr.read(PLL1DIVR::DIVP1) + 1;
                if m == 0 {
                    0
                } else {
                    ((src as u64 / m as u64) * n as u64 / p as u64) as u32
                }
            }
        };
        let cpu = sysclk / ahb_divisor(r.d1cfgr.read(D1CFGR::D1CPRE));
        let hclk = cpu / ahb_divisor(r.d1cfgr.read(D1CFGR::HPRE));
        let ppre1 = apb_divisor(r.d2cfgr.read(D2CFGR::D2PPRE1));
        let pclk1 = hclk / ppre1;
        let pclk2 = hclk / apb_divisor(r.d2cfgr.read(D2CFGR::D2PPRE2));
        // RM0399 RCC "Timer clock" (TIMPRE): with TIMPRE = 0 the APB1 timers run at PCLK1 if the
        // prescaler is 1, else at 2 x PCLK1.
        let tim_apb1 = if ppre1 == 1 { pclk1 } else { pclk1 * 2 };
        Frequencies { sysclk, cpu, hclk, pclk1, pclk2, tim_apb1 }
    }
}

impl Default for Rcc {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_access_table_rows() {
        assert_eq!(flash_access_vos1(64_000_000), Some(FlashAccess { min_latency: 0, wrhighfreq: 0 }));
        assert_eq!(flash_access_vos1(140_000_000), Some(FlashAccess { min_latency: 1, wrhighfreq: 1 }));
        assert_eq!(flash_access_vos1(185_000_000), Some(FlashAccess { min_latency: 2, wrhighfreq: 1 }));
        assert_eq!(flash_access_vos1(200_000_000), Some(FlashAccess { min_latency: 2, wrhighfreq: 2 }));
        assert_eq!(flash_access_vos1(225_000_000), Some(FlashAccess { min_latency: 3, wrhighfreq: 2 }));
        assert_eq!(flash_access_vos1(240_000_000), None);
    }

    #[test]
    fn portenta_setups_are_valid_and_set_wrhighfreq_2() {
        let c = ClockConfig::PORTENTA_H7;
        assert!(c.is_valid());
        assert_eq!((c.sysclk_hz(), c.hclk_hz(), c.wrhighfreq()), (400_000_000, 200_000_000, 2));
        let b = ClockConfig::PORTENTA_H7_27MHZ;
        assert!(b.is_valid());
        assert_eq!((b.sysclk_hz(), b.hclk_hz(), b.wrhighfreq()), (399_000_000, 199_500_000, 2));
        assert_eq!(b.reference_hz() as u64 * b.n as u64, 798_000_000);
    }

    #[test]
    fn the_25mhz_setup_on_a_27mhz_board_would_be_refused() {
        // What the issue describes: 27 MHz through Arduino's dividers.
        let wrong = ClockConfig { hse_hz: 27_000_000, ..ClockConfig::PORTENTA_H7 };
        assert!(!wrong.is_valid(), "VCO 864 MHz and SYSCLK 432 MHz are over the limits");
        let too_few_wait_states = ClockConfig { flash_latency: 1, ..ClockConfig::PORTENTA_H7 };
        assert!(!too_few_wait_states.is_valid());
    }

    #[test]
    fn setups_by_hse() {
        assert_eq!(ClockConfig::for_hse(25_000_000), Some(ClockConfig::PORTENTA_H7));
        assert_eq!(ClockConfig::for_hse(27_000_000), Some(ClockConfig::PORTENTA_H7_27MHZ));
        assert_eq!(ClockConfig::for_hse(16_000_000), None);
    }
}
