// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! A register-level model of the STM32H747's clock tree (RCC, PWR voltage scaling,
//! FLASH_ACR) for host tests of the clock set-up.
//!
//! ```text
//! rcc::configure / switch_to_hsi -> ClockRegisters
//!                                        |
//!                                  ClockModel (this file)
//! ```
//!
//! Writes take effect as RM0399 describes (oscillators and PLLs become ready, SWS follows SW,
//! ACTVOS follows VOS), unless a [`Fault`] says one never does, so every bounded wait can time
//! out. The model logs every write and flags what RM0399 forbids:
//! - §4.3.8: the wait states below the table's minimum for the AXI clock at the voltage scale
//!   in effect, after any write, and any RCC or PWR write made while they are (the wait states
//!   come first, before anything else changes);
//! - the CPU clock above the scale's maximum (DS12930 operating conditions: VOS1 400 MHz,
//!   VOS2 300 MHz, VOS3 200 MHz);
//! - §8 RCC: PLLCKSELR written while a PLL is on, PLL1's configuration written while PLL1 is
//!   on, HSEBYP changed while HSE is on, the oscillator or PLL that clocks SYSCLK turned off.

use std::cell::RefCell;

use super::regs::{acr, cfgr, cr, pllckselr, pwr, ClockReg, ClockRegisters};
use super::{flash_access, Vos, CSI_HZ, HSI_HZ};

/// A part of the clock tree that never does what it is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Everything works.
    None,
    /// PWR_CSR1.ACTVOSRDY never set.
    SupplyNeverReady,
    /// PWR_D3CR.VOSRDY never set again after VOS is written; ACTVOS stays.
    VosNeverReady,
    /// HSERDY never set.
    HseNeverReady,
    /// HSIRDY never set.
    HsiNeverReady,
    /// The PLLs' ready flags stay set after they are turned off.
    PllsNeverStop,
    /// PLLCKSELR ignores writes.
    PllsrcIgnored,
    /// PLL1 never locks.
    PllNeverLocks,
    /// SWS never follows SW = HSI.
    SwitchToHsiStuck,
    /// SWS never follows SW = PLL1.
    SwitchToPllStuck,
    /// FLASH_ACR ignores writes.
    AcrIgnored,
}

/// The clock tree's registers.
#[derive(Clone, Debug)]
pub struct ClockState {
    /// RCC_CR (ready flags included).
    pub cr: u32,
    /// RCC_CFGR (SW and SWS).
    pub cfgr: u32,
    /// RCC_D1CFGR.
    pub d1cfgr: u32,
    /// RCC_D2CFGR.
    pub d2cfgr: u32,
    /// RCC_D3CFGR.
    pub d3cfgr: u32,
    /// RCC_PLLCKSELR.
    pub pllckselr: u32,
    /// RCC_PLLCFGR.
    pub pllcfgr: u32,
    /// RCC_PLL1DIVR.
    pub pll1divr: u32,
    /// RCC_PLL1FRACR.
    pub pll1fracr: u32,
    /// RCC_D2CCIP2R.
    pub d2ccip2r: u32,
    /// PWR_D3CR.VOS (field value).
    pub vos: u32,
    /// PWR_D3CR.VOSRDY.
    pub vosrdy: bool,
    /// PWR_CSR1.ACTVOS (field value): the scale in effect.
    pub actvos: u32,
    /// FLASH_ACR.
    pub acr: u32,
    /// The board's HSE.
    pub hse_hz: u32,
}

impl ClockState {
    /// What both Arduino bootloaders leave (`../shared/hardware/portenta-h7.md`, "Bootloader
    /// hand-off"): their "lowspeed" `SetSysClock_PLL_HSE`, PLL1 from the 25 MHz HSE (bypass)
    /// at 100 MHz (M=5 N=40 P=2), HCLK /2 = 50 MHz, APBs /2, VOS3, FLASH_ACR LATENCY 0 with
    /// WRHIGHFREQ at its reset value 3. HSI stays on (reset state).
    pub fn arduino_bootloader() -> Self {
        ClockState {
            cr: cr::HSION | cr::HSIRDY | cr::HSEON | cr::HSERDY | cr::HSEBYP | cr::PLL1ON | cr::PLL1RDY,
            cfgr: cfgr::PLL1 | (cfgr::PLL1 << cfgr::SWS_SHIFT),
            d1cfgr: 0b1000 | (0b100 << 4),
            d2cfgr: (0b100 << 4) | (0b100 << 8),
            d3cfgr: 0b100 << 4,
            pllckselr: pllckselr::SRC_HSE | (5 << pllckselr::DIVM1_SHIFT),
            pllcfgr: (2 << 2) | (1 << 16) | (1 << 17) | (1 << 18),
            pll1divr: 0x27 | (1 << 9) | (9 << 16) | (1 << 24),
            pll1fracr: 0,
            d2ccip2r: 0,
            vos: pwr::VOS3,
            vosrdy: true,
            actvos: pwr::VOS3,
            acr: 0x30,
            hse_hz: 25_000_000,
        }
    }

    /// A core left on HSI (64 MHz, no prescaler) with HSE and the PLLs off, at VOS3 with one
    /// wait state (the table's row for 64 MHz at VOS3).
    pub fn on_hsi_without_hse() -> Self {
        ClockState {
            cr: cr::HSION | cr::HSIRDY,
            cfgr: 0,
            d1cfgr: 0,
            d2cfgr: 0,
            d3cfgr: 0,
            pllckselr: 2 << pllckselr::DIVM1_SHIFT,
            acr: 0x31,
            ..ClockState::arduino_bootloader()
        }
    }

    /// SYSCLK from the registers (the model's own reading of RM0399's clock tree).
    pub fn sysclk(&self) -> u32 {
        let hsi = HSI_HZ >> ((self.cr >> 3) & 0b11);
        match (self.cfgr >> cfgr::SWS_SHIFT) & 0b111 {
            cfgr::HSI => hsi,
            cfgr::CSI => CSI_HZ,
            cfgr::HSE => self.hse_hz,
            _ => {
                let src = match self.pllckselr & 0b11 {
                    pllckselr::SRC_HSI => hsi,
                    pllckselr::SRC_CSI => CSI_HZ,
                    pllckselr::SRC_HSE => self.hse_hz,
                    _ => 0,
                };
                let m = (self.pllckselr >> 4) & 0x3F;
                let n = (self.pll1divr & 0x1FF) + 1;
                let p = ((self.pll1divr >> 9) & 0x7F) + 1;
                src.checked_div(m).map_or(0, |r| r * n / p)
            }
        }
    }

    /// The CPU clock (SYSCLK / D1CPRE; only /1 and /2 are modelled).
    pub fn cpu(&self) -> u32 {
        self.sysclk() >> u32::from((self.d1cfgr >> 8) & 0xF == 0b1000)
    }

    /// HCLK, the AXI clock the flash runs at (CPU / HPRE; only /1 and /2 are modelled).
    pub fn hclk(&self) -> u32 {
        self.cpu() >> u32::from(self.d1cfgr & 0xF == 0b1000)
    }

    /// The voltage scale in effect.
    pub fn scale(&self) -> Vos {
        Vos::from_field(self.actvos)
    }

    /// FLASH_ACR.LATENCY.
    pub fn latency(&self) -> u32 {
        self.acr & acr::LATENCY_MASK
    }

    /// FLASH_ACR.WRHIGHFREQ.
    pub fn wrhighfreq(&self) -> u32 {
        (self.acr & acr::WRHIGHFREQ_MASK) >> acr::WRHIGHFREQ_SHIFT
    }

    /// What is wrong with the flash access or the clock now, if anything.
    fn clock_violation(&self) -> Option<String> {
        let (hclk, scale) = (self.hclk(), self.scale());
        let max_cpu = match scale {
            Vos::Scale1 => 400_000_000,
            Vos::Scale2 => 300_000_000,
            Vos::Scale3 => 200_000_000,
        };
        if self.cpu() > max_cpu {
            return Some(format!("CPU at {} Hz over {scale:?}'s maximum", self.cpu()));
        }
        match flash_access(scale, hclk) {
            None => Some(format!("HCLK {hclk} Hz beyond the flash table at {scale:?}")),
            Some(a) if self.latency() < a.min_latency => Some(format!(
                "LATENCY {} below {} for HCLK {hclk} Hz at {scale:?}",
                self.latency(),
                a.min_latency
            )),
            Some(_) => None,
        }
    }
}

struct Inner {
    state: ClockState,
    fault: Fault,
    writes: Vec<(ClockReg, u32)>,
    violations: Vec<String>,
}

/// The model. Interior mutability: the sequences hold `&ClockModel`.
pub struct ClockModel {
    inner: RefCell<Inner>,
}

impl ClockModel {
    /// A clock tree in `state` whose part `fault` never works.
    pub fn new(state: ClockState, fault: Fault) -> Self {
        ClockModel { inner: RefCell::new(Inner { state, fault, writes: Vec::new(), violations: Vec::new() }) }
    }

    /// The state now.
    pub fn state(&self) -> ClockState {
        self.inner.borrow().state.clone()
    }

    /// Every write so far, in order.
    pub fn writes(&self) -> Vec<(ClockReg, u32)> {
        self.inner.borrow().writes.clone()
    }

    /// Every rule broken so far.
    pub fn violations(&self) -> Vec<String> {
        self.inner.borrow().violations.clone()
    }
}

impl ClockRegisters for ClockModel {
    fn read(&self, reg: ClockReg) -> u32 {
        let i = self.inner.borrow();
        let s = &i.state;
        match reg {
            ClockReg::Cr => s.cr,
            ClockReg::Cfgr => s.cfgr,
            ClockReg::D1cfgr => s.d1cfgr,
            ClockReg::D2cfgr => s.d2cfgr,
            ClockReg::D3cfgr => s.d3cfgr,
            ClockReg::Pllckselr => s.pllckselr,
            ClockReg::Pllcfgr => s.pllcfgr,
            ClockReg::Pll1divr => s.pll1divr,
            ClockReg::Pll1fracr => s.pll1fracr,
            ClockReg::D2ccip2r => s.d2ccip2r,
            ClockReg::Ahb4enr | ClockReg::Apb1lenr | ClockReg::Apb2enr => 0,
            ClockReg::PwrCsr1 => {
                let ready = if i.fault == Fault::SupplyNeverReady { 0 } else { pwr::ACTVOSRDY };
                ready | (s.actvos << pwr::VOS_SHIFT)
            }
            ClockReg::PwrD3cr => (s.vos << pwr::VOS_SHIFT) | if s.vosrdy { pwr::VOSRDY } else { 0 },
            ClockReg::FlashAcr => s.acr,
        }
    }

    fn write(&self, reg: ClockReg, value: u32) {
        let mut i = self.inner.borrow_mut();
        let i = &mut *i;
        i.writes.push((reg, value));
        if reg != ClockReg::FlashAcr {
            if let Some(v) = i.state.clock_violation() {
                i.violations.push(format!("{reg:?} written while {v}"));
            }
        }
        let fault = i.fault;
        let s = &mut i.state;
        let pll1_on = s.cr & cr::PLL1ON != 0;
        let sws = (s.cfgr >> cfgr::SWS_SHIFT) & 0b111;
        match reg {
            ClockReg::Cr => {
                let old = s.cr;
                if (old ^ value) & cr::HSEBYP != 0 && old & cr::HSEON != 0 {
                    i.violations.push("HSEBYP changed while HSE is on".into());
                }
                let hse_feeds = sws == cfgr::HSE || (sws == cfgr::PLL1 && s.pllckselr & 0b11 == pllckselr::SRC_HSE);
                if old & cr::HSEON != 0 && value & cr::HSEON == 0 && hse_feeds {
                    i.violations.push("HSE turned off while it clocks SYSCLK".into());
                }
                if old & cr::PLL1ON != 0 && value & cr::PLL1ON == 0 && sws == cfgr::PLL1 {
                    i.violations.push("PLL1 turned off while it clocks SYSCLK".into());
                }
                let on = value & (cr::HSION | cr::HSEON | cr::HSEBYP | cr::PLLS_ON | cr::HSIDIV_MASK);
                let mut ready = 0;
                if on & cr::HSION != 0 && fault != Fault::HsiNeverReady {
                    ready |= cr::HSIRDY;
                }
                if on & cr::HSEON != 0 && fault != Fault::HseNeverReady {
                    ready |= cr::HSERDY;
                }
                for (en, rdy) in [(cr::PLL1ON, cr::PLL1RDY), (cr::PLL2ON, cr::PLL2RDY), (cr::PLL3ON, cr::PLL3RDY)] {
                    if on & en != 0 {
                        if !(en == cr::PLL1ON && fault == Fault::PllNeverLocks) {
                            ready |= rdy;
                        }
                    } else if fault == Fault::PllsNeverStop {
                        ready |= old & rdy;
                    }
                }
                s.cr = on | ready;
            }
            ClockReg::Cfgr => {
                let sw = value & cfgr::SW_MASK;
                let follows = match sw {
                    cfgr::HSI => fault != Fault::SwitchToHsiStuck && s.cr & cr::HSIRDY != 0,
                    cfgr::PLL1 => fault != Fault::SwitchToPllStuck && s.cr & cr::PLL1RDY != 0,
                    _ => true,
                };
                let new_sws = if follows { sw } else { sws };
                s.cfgr = (value & !cfgr::SWS_MASK & !cfgr::SW_MASK) | sw | (new_sws << cfgr::SWS_SHIFT);
            }
            ClockReg::D1cfgr => s.d1cfgr = value,
            ClockReg::D2cfgr => s.d2cfgr = value,
            ClockReg::D3cfgr => s.d3cfgr = value,
            ClockReg::Pllckselr => {
                if s.cr & cr::PLLS_ON != 0 {
                    i.violations.push("PLLCKSELR written while a PLL is on".into());
                } else if fault != Fault::PllsrcIgnored {
                    s.pllckselr = value;
                }
            }
            ClockReg::Pllcfgr | ClockReg::Pll1divr | ClockReg::Pll1fracr => {
                if pll1_on {
                    i.violations.push(format!("{reg:?} written while PLL1 is on"));
                }
                match reg {
                    ClockReg::Pllcfgr => s.pllcfgr = value,
                    ClockReg::Pll1divr => s.pll1divr = value,
                    _ => s.pll1fracr = value,
                }
            }
            ClockReg::D2ccip2r => s.d2ccip2r = value,
            ClockReg::Ahb4enr | ClockReg::Apb1lenr | ClockReg::Apb2enr | ClockReg::PwrCsr1 => {}
            ClockReg::PwrD3cr => {
                s.vos = (value >> pwr::VOS_SHIFT) & 0b11;
                if fault == Fault::VosNeverReady {
                    s.vosrdy = false;
                } else {
                    s.vosrdy = true;
                    s.actvos = s.vos;
                }
            }
            ClockReg::FlashAcr => {
                if fault != Fault::AcrIgnored {
                    s.acr = value;
                }
            }
        }
        if let Some(v) = i.state.clock_violation() {
            i.violations.push(format!("after {reg:?}: {v}"));
        }
    }
}
