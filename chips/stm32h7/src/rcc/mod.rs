// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Reset and clock control: the clock tree set-up, peripheral clock enables and the
//! frequencies derived from the registers.
//!
//! ```text
//! boards/portenta_h7 (drives PH1, calls configure)
//!        |
//! rcc (this file: sequences) -> ClockRegisters (regs.rs): RCC, PWR (voltage scale), FLASH_ACR
//!        |                          |                        |
//!        |                   mmio::ClockMmio (target)   model::ClockModel (host tests)
//!        |
//! usart (BRR from PCLK2), tim2 (prescaler from the APB1 timer clock), SysTick (SYSCLK)
//! ```
//!
//! Registers: RM0399 §8 "Reset and Clock Control (RCC)", §6 "Power control (PWR)" (voltage
//! scaling), §4.3.8 / §4.9.1 (FLASH_ACR); the register map is in `regs.rs`. The set-up follows
//! RM0399's RCC "PLL initialization phase" and "System clock (sys_ck)" subsections and
//! Arduino's `SetSysClock_PLL_HSE` for the Portenta (mbed-os `TARGET_PORTENTA_H7`
//! `system_clock_override.c`): 25 MHz HSE in bypass mode, PLL1 M=5 N=160 P=2 -> 400 MHz
//! SYSCLK, HCLK /2, APBs /2, flash latency 4. Every wait is bounded; on a timeout the system
//! stays on (or returns to) HSI and the frequencies are recomputed from the registers, so the
//! UART and the timer are always programmed for the clock actually running.
//!
//! # Flash wait states at every step
//!
//! Both Arduino bootloaders jump to the kernel at VOS3 with FLASH_ACR LATENCY 0 and WRHIGHFREQ
//! at its reset value while SYSCLK is 100 MHz (HCLK 50 MHz): their `SetSysClock_PLL_HSE`
//! "lowspeed" set-up passes `FLASH_LATENCY_0` to `HAL_RCC_ClockConfig`. RM0399 §4.3.8's table
//! asks for 1 wait state above 45 MHz at VOS3, so the kernel starts outside the table. So
//! [`configure`] raises LATENCY (and sets WRHIGHFREQ) *first*, before the voltage scale, an
//! oscillator or a PLL changes, to [`ClockConfig::entry_access`]: a latency valid for every
//! clock up to the target at every scale. ST's `HAL_RCC_ClockConfig` orders it the same way
//! (wait states raised before the clock is increased, lowered only after it decreased), and
//! embassy's H7 RCC (`embassy-stm32/src/rcc/h.rs`, `flash_setup`) uses the same table.
//!
//! On every error after that first write, [`configure`] fits FLASH_ACR to the clock left
//! running (`fit_flash_access`, as [`switch_to_hsi`] does): WRHIGHFREQ to the table's row
//! for the AXI clock and the voltage scale in effect (PWR_CSR1.ACTVOS), LATENCY never lowered.
//! Never lowered because a switch that timed out may still complete later (SW is written,
//! SWS lags): the wait states must cover the faster clock too.

mod mmio;
pub mod regs;

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;

pub use mmio::ClockMmio;
use regs::{acr, cfgr, cr, dcfgr, pll1divr, pllcfgr, pllckselr, pwr, ClockReg, ClockRegisters, USART16SEL_MASK};

/// HSI frequency before HSIDIV (RM0399 RCC "HSI oscillator").
pub const HSI_HZ: u32 = 64_000_000;
/// CSI frequency.
pub const CSI_HZ: u32 = 4_000_000;
/// Iterations of a bounded wait (several ms at 64 MHz; the oscillator, PLL lock and switch
/// each take microseconds).
const WAIT_LIMIT: u32 = 2_000_000;
/// Reads of FLASH_ACR after a write before giving up on the new value (RM0399 §4.3.8: the
/// new latency must be read back before the clock changes).
const ACR_READBACK: u32 = 16;
/// A FLASH_ACR LATENCY valid for any AXI clock a voltage scale allows (RM0399 §4.3.8 table:
/// the largest minimum is 4, VOS3 up to 225 MHz and VOS0 up to 240 MHz).
pub const LATENCY_ANY_CLOCK: u32 = 4;

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

    /// FLASH_ACR.WRHIGHFREQ for this set-up's AXI clock at VOS1, or 3 (the reset value, the
    /// slowest programming) if the clock is outside the table.
    pub const fn wrhighfreq(&self) -> u32 {
        match flash_access(Vos::Scale1, self.hclk_hz()) {
            Some(access) => access.wrhighfreq,
            None => 3,
        }
    }

    /// What FLASH_ACR is raised to before anything else in `configure`: LATENCY valid for
    /// every AXI clock up to this set-up's at every voltage scale (the VOS3 column needs the
    /// most wait states, and RM0399 §4.3.8's minimum only grows with the clock), and never
    /// below `flash_latency`; WRHIGHFREQ for the clock the set-up ends at (no program or erase
    /// runs meanwhile; an error path fits it to the clock left running, `fit_flash_access`).
    pub const fn entry_access(&self) -> FlashAccess {
        let min_latency = match flash_access(Vos::Scale3, self.hclk_hz()) {
            Some(access) => access.min_latency,
            None => LATENCY_ANY_CLOCK,
        };
        FlashAccess {
            min_latency: if self.flash_latency > min_latency { self.flash_latency } else { min_latency },
            wrhighfreq: self.wrhighfreq(),
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
            && match flash_access(Vos::Scale1, self.hclk_hz()) {
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

/// A voltage scale (RM0399 §6 "Voltage scaling"; PWR_D3CR.VOS, PWR_CSR1.ACTVOS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vos {
    /// VOS1 (1.15-1.26 V): up to 400 MHz; what `configure` selects.
    Scale1,
    /// VOS2.
    Scale2,
    /// VOS3 (0.95-1.05 V): the bootloaders' "lowspeed" scale.
    Scale3,
}

impl Vos {
    /// The scale a VOS/ACTVOS field value names. 0 is VOS0 (overdrive), whose rows up to
    /// 225 MHz are VOS1's.
    pub const fn from_field(field: u32) -> Vos {
        match field & 0b11 {
            pwr::VOS3 => Vos::Scale3,
            pwr::VOS2 => Vos::Scale2,
            _ => Vos::Scale1,
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

/// RM0399's flash access table (§4.3.8), by voltage scale and AXI clock.
///
/// `None` above the scale's last row. Rows, as (max AXI MHz, LATENCY, WRHIGHFREQ):
/// VOS1 (70, 0, 0) (140, 1, 1) (185, 2, 1) (210, 2, 2) (225, 3, 2);
/// VOS2 (55, 0, 0) (110, 1, 1) (165, 2, 1) (224, 3, 2);
/// VOS3 (45, 0, 0) (90, 1, 1) (135, 2, 1) (180, 3, 2) (224, 4, 2).
/// Embassy's H7 RCC (`flash_setup`, RM0433's identical table) and ST's HAL use the same rows.
pub const fn flash_access(vos: Vos, axi_hz: u32) -> Option<FlashAccess> {
    const MHZ: u32 = 1_000_000;
    let (min_latency, wrhighfreq) = match vos {
        Vos::Scale1 => match axi_hz {
            0..=70_000_000 => (0, 0),
            70_000_001..=140_000_000 => (1, 1),
            140_000_001..=185_000_000 => (2, 1),
            185_000_001..=210_000_000 => (2, 2),
            210_000_001..=225_000_000 => (3, 2),
            _ => return None,
        },
        Vos::Scale2 => match axi_hz {
            0..=55_000_000 => (0, 0),
            55_000_001..=110_000_000 => (1, 1),
            110_000_001..=165_000_000 => (2, 1),
            165_000_001..=224_000_000 => (3, 2),
            _ => return None,
        },
        Vos::Scale3 => {
            if axi_hz <= 45 * MHZ {
                (0, 0)
            } else if axi_hz <= 90 * MHZ {
                (1, 1)
            } else if axi_hz <= 135 * MHZ {
                (2, 1)
            } else if axi_hz <= 180 * MHZ {
                (3, 2)
            } else if axi_hz <= 224 * MHZ {
                (4, 2)
            } else {
                return None;
            }
        }
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

impl PeripheralClock {
    /// The enable register and bit.
    const fn enable_bit(self) -> (ClockReg, u32) {
        match self {
            PeripheralClock::Gpio(n) => (ClockReg::Ahb4enr, if n > 10 { 10 } else { n as u32 }),
            PeripheralClock::Usart1 => (ClockReg::Apb2enr, 4),
            PeripheralClock::Tim2 => (ClockReg::Apb1lenr, 0),
        }
    }
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

/// Writes FLASH_ACR's LATENCY and WRHIGHFREQ in one write and confirms them by reading back
/// (RM0399 §4.3.8: the new latency must be read back before the clock changes). Returns
/// whether they took effect.
fn set_flash_access<R: ClockRegisters>(r: &R, latency: u32, wrhighfreq: u32) -> bool {
    let mask = acr::LATENCY_MASK | acr::WRHIGHFREQ_MASK;
    let value = (latency & acr::LATENCY_MASK) | ((wrhighfreq << acr::WRHIGHFREQ_SHIFT) & acr::WRHIGHFREQ_MASK);
    r.modify(ClockReg::FlashAcr, mask, value);
    (0..ACR_READBACK).any(|_| r.read(ClockReg::FlashAcr) & mask == value)
}

/// Fits FLASH_ACR to the clock running now (module documentation).
///
/// WRHIGHFREQ goes to the table's row for the AXI clock at the voltage scale in effect;
/// LATENCY is raised to the row's minimum if below it and otherwise kept. `hse_hz` is the board's HSE, in case HSE still feeds
/// SYSCLK. A clock outside the table changes nothing.
fn fit_flash_access<R: ClockRegisters>(r: &R, hse_hz: u32) -> Result<(), ClockError> {
    let hclk = frequencies(r, hse_hz).hclk;
    let vos = Vos::from_field(r.read(ClockReg::PwrCsr1) >> pwr::VOS_SHIFT);
    let Some(access) = flash_access(vos, hclk) else {
        return Ok(());
    };
    let latency = r.read(ClockReg::FlashAcr) & acr::LATENCY_MASK;
    if set_flash_access(r, latency.max(access.min_latency), access.wrhighfreq) {
        Ok(())
    } else {
        Err(ClockError::FlashLatency)
    }
}

/// Switches SYSCLK to PLL1 fed by HSE as `config` says (RM0399 RCC "PLL initialization
/// phase" and "System clock (sys_ck)"), in this order:
///
/// 1. FLASH_ACR raised to [`ClockConfig::entry_access`] before anything else (module
///    documentation: the bootloaders leave too few wait states);
/// 2. voltage scale 1 (RM0399 §6 "Voltage scaling"; the supply configuration is left as the
///    bootloader set it);
/// 3. HSE on (bypass) and ready — the board has already driven PH1 high;
/// 4. if SYSCLK runs from PLL1 (the bootloaders leave it so), switch to HSI first;
/// 5. PLL1 (and PLL2/PLL3, which share its source selector) off; PLL1 programmed, on and
///    locked;
/// 6. bus prescalers (HCLK /2, APBs /2) before the switch;
/// 7. SYSCLK <- PLL1.
///
/// An invalid configuration writes nothing. On any error after step 1 the system is left on
/// HSI (or on its previous source if the error comes before step 4) and FLASH_ACR is fitted
/// to the clock left running (`fit_flash_access`); the first error is the one returned.
pub fn configure<R: ClockRegisters>(r: &R, config: &ClockConfig) -> Result<(), ClockError> {
    if !config.is_valid() {
        return Err(ClockError::InvalidConfig);
    }
    let entry = config.entry_access();
    let latency = r.read(ClockReg::FlashAcr) & acr::LATENCY_MASK;
    if !set_flash_access(r, latency.max(entry.min_latency), entry.wrhighfreq) {
        return Err(ClockError::FlashLatency);
    }
    let result = switch_to_pll1(r, config);
    if result.is_err() {
        let _ = fit_flash_access(r, config.hse_hz);
    }
    result
}

/// Steps 2 to 7 of [`configure`].
fn switch_to_pll1<R: ClockRegisters>(r: &R, config: &ClockConfig) -> Result<(), ClockError> {
    if !wait_until(|| r.read(ClockReg::PwrCsr1) & pwr::ACTVOSRDY != 0) {
        return Err(ClockError::VoltageScaling);
    }
    r.modify(ClockReg::PwrD3cr, pwr::VOS_MASK, pwr::VOS1 << pwr::VOS_SHIFT);
    if !wait_until(|| r.read(ClockReg::PwrD3cr) & pwr::VOSRDY != 0) {
        return Err(ClockError::VoltageScaling);
    }

    if r.read(ClockReg::Cr) & cr::HSERDY == 0 {
        // HSEBYP may only change while HSE is off.
        r.modify(ClockReg::Cr, cr::HSEON, 0);
        if !wait_until(|| r.read(ClockReg::Cr) & cr::HSERDY == 0) {
            return Err(ClockError::HseTimeout);
        }
        let bypass = if config.hse_bypass { cr::HSEBYP } else { 0 };
        r.modify(ClockReg::Cr, cr::HSEBYP, bypass);
        r.modify(ClockReg::Cr, 0, cr::HSEON);
        if !wait_until(|| r.read(ClockReg::Cr) & cr::HSERDY != 0) {
            return Err(ClockError::HseTimeout);
        }
    }

    r.modify(ClockReg::Cr, 0, cr::HSION);
    if !wait_until(|| r.read(ClockReg::Cr) & cr::HSIRDY != 0) {
        return Err(ClockError::HsiTimeout);
    }
    let sws = |r: &R| (r.read(ClockReg::Cfgr) & cfgr::SWS_MASK) >> cfgr::SWS_SHIFT;
    if sws(r) == cfgr::PLL1 {
        r.modify(ClockReg::Cfgr, cfgr::SW_MASK, cfgr::HSI);
        if !wait_until(|| sws(r) == cfgr::HSI) {
            return Err(ClockError::SwitchTimeout);
        }
    }

    // PLLSRC is shared by the three PLLs and may only change while all are off; the
    // kernel uses neither PLL2 nor PLL3 (the bootloader's USB may have).
    r.modify(ClockReg::Cr, cr::PLLS_ON, 0);
    if !wait_until(|| r.read(ClockReg::Cr) & cr::PLLS_RDY == 0) {
        return Err(ClockError::PllTimeout);
    }
    let ckselr = pllckselr::SRC_HSE | (config.m << pllckselr::DIVM1_SHIFT);
    r.modify(ClockReg::Pllckselr, pllckselr::PLLSRC_MASK | pllckselr::DIVM1_MASK, ckselr);
    if r.read(ClockReg::Pllckselr) & (pllckselr::PLLSRC_MASK | pllckselr::DIVM1_MASK) != ckselr {
        return Err(ClockError::PllTimeout);
    }
    r.modify(
        ClockReg::Pllcfgr,
        pllcfgr::PLL1_FIELDS,
        (config.input_range() << pllcfgr::PLL1RGE_SHIFT) | pllcfgr::DIVP1EN | pllcfgr::DIVQ1EN | pllcfgr::DIVR1EN,
    );
    r.write(ClockReg::Pll1fracr, 0);
    r.write(
        ClockReg::Pll1divr,
        (config.n - 1)
            | ((config.p - 1) << pll1divr::P_SHIFT)
            | ((config.q - 1) << pll1divr::Q_SHIFT)
            | ((config.r - 1) << pll1divr::R_SHIFT),
    );
    r.modify(ClockReg::Cr, 0, cr::PLL1ON);
    if !wait_until(|| r.read(ClockReg::Cr) & cr::PLL1RDY != 0) {
        return Err(ClockError::PllTimeout);
    }

    // D1CPRE /1, HPRE /2 (HCLK = AXI = 200 MHz), D1PPRE /2; D2PPRE1/2 /2; D3PPRE /2.
    r.write(ClockReg::D1cfgr, dcfgr::AHB_DIV2 | (dcfgr::APB_DIV2 << dcfgr::D1PPRE_SHIFT));
    r.write(
        ClockReg::D2cfgr,
        (dcfgr::APB_DIV2 << dcfgr::D2PPRE1_SHIFT) | (dcfgr::APB_DIV2 << dcfgr::D2PPRE2_SHIFT),
    );
    r.write(ClockReg::D3cfgr, dcfgr::APB_DIV2 << dcfgr::D3PPRE_SHIFT);
    // USART1 kernel clock: PCLK2 (the reset value; made explicit).
    r.modify(ClockReg::D2ccip2r, USART16SEL_MASK, 0);

    r.modify(ClockReg::Cfgr, cfgr::SW_MASK, cfgr::PLL1);
    if !wait_until(|| sws(r) == cfgr::PLL1) {
        return Err(ClockError::SwitchTimeout);
    }
    Ok(())
}

/// Runs SYSCLK from HSI (RM0399 RCC "System clock (sys_ck)").
///
/// The PLLs and the prescalers are left as they are. Used when the board's HSE is not known: whatever the bootloader
/// derived from HSE then no longer clocks the kernel, and [`frequencies`] is exact without
/// knowing HSE.
///
/// LATENCY is first raised to [`LATENCY_ANY_CLOCK`] (the bootloaders leave too few wait
/// states, module documentation; the clock they left is unknown here); once HSI runs,
/// FLASH_ACR is fitted to it (WRHIGHFREQ follows the clock down, the latency is kept).
pub fn switch_to_hsi<R: ClockRegisters>(r: &R) -> Result<(), ClockError> {
    let now = r.read(ClockReg::FlashAcr);
    let wrhighfreq = (now & acr::WRHIGHFREQ_MASK) >> acr::WRHIGHFREQ_SHIFT;
    if !set_flash_access(r, (now & acr::LATENCY_MASK).max(LATENCY_ANY_CLOCK), wrhighfreq) {
        return Err(ClockError::FlashLatency);
    }
    r.modify(ClockReg::Cr, 0, cr::HSION);
    if !wait_until(|| r.read(ClockReg::Cr) & cr::HSIRDY != 0) {
        return Err(ClockError::HsiTimeout);
    }
    r.modify(ClockReg::Cfgr, cfgr::SW_MASK, cfgr::HSI);
    if !wait_until(|| (r.read(ClockReg::Cfgr) & cfgr::SWS_MASK) >> cfgr::SWS_SHIFT == cfgr::HSI) {
        return Err(ClockError::SwitchTimeout);
    }
    fit_flash_access(r, 0)
}

/// The frequencies running now, computed from the registers. `hse_hz` is the board's HSE
/// frequency (used only if HSE feeds SYSCLK or PLL1).
pub fn frequencies<R: ClockRegisters>(r: &R, hse_hz: u32) -> Frequencies {
    let cr_now = r.read(ClockReg::Cr);
    let hsi = HSI_HZ >> ((cr_now & cr::HSIDIV_MASK) >> cr::HSIDIV_SHIFT);
    let sysclk = match (r.read(ClockReg::Cfgr) & cfgr::SWS_MASK) >> cfgr::SWS_SHIFT {
        cfgr::HSI => hsi,
        cfgr::CSI => CSI_HZ,
        cfgr::HSE => hse_hz,
        _ => {
            let ckselr = r.read(ClockReg::Pllckselr);
            let src = match ckselr & pllckselr::PLLSRC_MASK {
                pllckselr::SRC_HSI => hsi,
                pllckselr::SRC_CSI => CSI_HZ,
                pllckselr::SRC_HSE => hse_hz,
                _ => 0,
            };
            let m = (ckselr & pllckselr::DIVM1_MASK) >> pllckselr::DIVM1_SHIFT;
            let divr = r.read(ClockReg::Pll1divr);
            let n = (divr & pll1divr::N_MASK) + 1;
            let p = ((divr >> pll1divr::P_SHIFT) & pll1divr::DIV_MASK) + 1;
            if m == 0 {
                0
            } else {
                ((src as u64 / m as u64) * n as u64 / p as u64) as u32
            }
        }
    };
    let d1 = r.read(ClockReg::D1cfgr);
    let d2 = r.read(ClockReg::D2cfgr);
    let cpu = sysclk / ahb_divisor((d1 >> dcfgr::D1CPRE_SHIFT) & 0xF);
    let hclk = cpu / ahb_divisor(d1 & dcfgr::HPRE_MASK);
    let ppre1 = apb_divisor((d2 >> dcfgr::D2PPRE1_SHIFT) & 0b111);
    let pclk1 = hclk / ppre1;
    let pclk2 = hclk / apb_divisor((d2 >> dcfgr::D2PPRE2_SHIFT) & 0b111);
    // RM0399 RCC "Timer clock" (TIMPRE): with TIMPRE = 0 the APB1 timers run at PCLK1 if the
    // prescaler is 1, else at 2 x PCLK1.
    let tim_apb1 = if ppre1 == 1 { pclk1 } else { pclk1 * 2 };
    Frequencies { sysclk, cpu, hclk, pclk1, pclk2, tim_apb1 }
}

/// The RCC (and, for the clock set-up, PWR's voltage scale and FLASH_ACR).
pub struct Rcc {
    registers: ClockMmio,
}

impl Rcc {
    /// The RCC at its fixed address.
    pub const fn new() -> Self {
        // SAFETY: the RCC, PWR and FLASH_ACR are at fixed, always-mapped addresses; `Rcc`
        // writes them only through the sequences of this module (`configure`,
        // `switch_to_hsi`, once, at boot) and single-bit clock enables.
        Rcc { registers: unsafe { ClockMmio::new() } }
    }

    /// Enables a peripheral's bus clock, then reads the register back so the clock is running
    /// before the first access to the peripheral (ST errata 2.2.x / HAL `tmpreg` read-back).
    pub fn enable(&self, clock: PeripheralClock) {
        let (reg, bit) = clock.enable_bit();
        self.registers.modify(reg, 0, 1 << bit);
        let _ = self.registers.read(reg);
    }

    /// Whether a peripheral's bus clock is on.
    pub fn is_enabled(&self, clock: PeripheralClock) -> bool {
        let (reg, bit) = clock.enable_bit();
        self.registers.read(reg) & (1 << bit) != 0
    }

    /// [`configure`] on the hardware.
    pub fn configure(&self, config: &ClockConfig) -> Result<(), ClockError> {
        configure(&self.registers, config)
    }

    /// [`switch_to_hsi`] on the hardware.
    pub fn switch_to_hsi(&self) -> Result<(), ClockError> {
        switch_to_hsi(&self.registers)
    }

    /// The SYSCLK source now (RCC_CFGR.SWS): read before `configure` it is what the
    /// bootloader left.
    pub fn sysclk_source(&self) -> SysclkSource {
        match (self.registers.read(ClockReg::Cfgr) & cfgr::SWS_MASK) >> cfgr::SWS_SHIFT {
            cfgr::CSI => SysclkSource::Csi,
            cfgr::HSE => SysclkSource::Hse,
            cfgr::PLL1 => SysclkSource::Pll1,
            _ => SysclkSource::Hsi,
        }
    }

    /// Whether HSE is on and ready, and in bypass mode (RCC_CR.HSERDY, HSEBYP).
    pub fn hse_state(&self) -> (bool, bool) {
        let cr_now = self.registers.read(ClockReg::Cr);
        (cr_now & cr::HSERDY != 0, cr_now & cr::HSEBYP != 0)
    }

    /// FLASH_ACR as it is now (for the boot report).
    pub fn flash_access_control(&self) -> u32 {
        self.registers.read(ClockReg::FlashAcr)
    }

    /// [`frequencies`] on the hardware.
    pub fn frequencies(&self, hse_hz: u32) -> Frequencies {
        frequencies(&self.registers, hse_hz)
    }
}

impl Default for Rcc {
    fn default() -> Self {
        Self::new()
    }
}
