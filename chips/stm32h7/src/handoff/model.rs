// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! A register-level model of the Cortex-M7 core's system registers, for host tests of the
//! hand-off sequences.
//!
//! ```text
//! handoff::take_over -> CoreRegisters
//!                           |
//!                     CoreModel (this file): PRIMASK/BASEPRI, NVIC, SysTick, SCB, MPU, L1 caches
//! ```
//!
//! It logs every access and flags what PM0253 and the hand-off's reasoning forbid:
//! - any write before PRIMASK is set (interrupts must be masked first);
//! - an MPU region written (RBAR/RASR) while MPU_CTRL.ENABLE is set (PM0253 "Memory protection unit": disable the
//!   MPU before changing regions the running code may depend on);
//! - the D-cache disabled while it holds dirty lines (their data would be lost to every read
//!   after the disable); DCCISW cleans one line by set/way with the Cortex-M7's geometry
//!   (4 ways, 128 sets, 32-byte lines: CCSIDR as the STM32H7 reports it);
//! - the I-cache enabled without an ICIALLU since it was last off (PM0253 "Cache maintenance operations");
//! - interrupts unmasked while an NVIC line is enabled or pending, SysTick runs, or SysTick or
//!   PendSV is pending (the bootloader's sources must be quiet first).

use std::cell::RefCell;

use super::regs::{ccr, icsr, mpu, CoreReg, CoreRegisters, NVIC_IPR_WORDS, NVIC_WORDS};

/// CCSIDR of the Cortex-M7's 16 KiB D-cache: NumSets 127, Associativity 3, LineSize 1.
pub const DCACHE_CCSIDR: u32 = (127 << 13) | (3 << 3) | 1;
const DCACHE_LINES: usize = 128 * 4;

/// One access, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A register read.
    Read(CoreReg),
    /// A register write.
    Write(CoreReg, u32),
    /// `CPSID I`.
    MaskInterrupts,
    /// `CPSIE I`.
    UnmaskInterrupts,
    /// BASEPRI written.
    SetBasepri(u32),
    /// DSB; ISB.
    Barrier,
}

/// The core's state.
#[derive(Clone, Debug)]
pub struct CoreState {
    /// PRIMASK.
    pub primask: bool,
    /// BASEPRI.
    pub basepri: u32,
    /// SCB CCR.
    pub ccr: u32,
    /// CSSELR.
    pub csselr: u32,
    /// Dirty D-cache lines, indexed `set * 4 + way`.
    pub dirty: Vec<bool>,
    /// ICIALLU written since the I-cache was last disabled.
    pub icache_invalidated: bool,
    /// MPU_TYPE.
    pub mpu_type: u32,
    /// MPU_CTRL.
    pub mpu_ctrl: u32,
    /// MPU_RNR.
    pub rnr: u32,
    /// (RBAR, RASR) per region.
    pub regions: [(u32, u32); 16],
    /// NVIC enabled lines.
    pub nvic_enabled: [u32; NVIC_WORDS as usize],
    /// NVIC pending lines.
    pub nvic_pending: [u32; NVIC_WORDS as usize],
    /// NVIC priorities.
    pub ipr: [u32; NVIC_IPR_WORDS as usize],
    /// SHPR1..3.
    pub shpr: [u32; 3],
    /// SHCSR.
    pub shcsr: u32,
    /// SysTick pending.
    pub systick_pending: bool,
    /// PendSV pending.
    pub pendsv_pending: bool,
    /// SysTick CSR.
    pub syst_csr: u32,
    /// SysTick CVR.
    pub syst_cvr: u32,
    /// VTOR.
    pub vtor: u32,
    /// SCR.
    pub scr: u32,
    /// CFSR, HFSR, DFSR (write 1 to clear).
    pub fault_status: [u32; 3],
    /// FLASH_CR1, FLASH_CR2 (LOCK in bit 0: set by a write, never cleared by one here).
    pub flash_cr: [u32; 2],
}

impl CoreState {
    /// The reset state (PM0253 register reset values): everything off, priorities 0.
    pub fn reset() -> Self {
        CoreState {
            primask: false,
            basepri: 0,
            ccr: 0x0000_0200,
            csselr: 0,
            dirty: vec![false; DCACHE_LINES],
            icache_invalidated: false,
            mpu_type: 16 << mpu::TYPE_DREGION_SHIFT,
            mpu_ctrl: 0,
            rnr: 0,
            regions: [(0, 0); 16],
            nvic_enabled: [0; NVIC_WORDS as usize],
            nvic_pending: [0; NVIC_WORDS as usize],
            ipr: [0; NVIC_IPR_WORDS as usize],
            shpr: [0; 3],
            shcsr: 0,
            systick_pending: false,
            pendsv_pending: false,
            syst_csr: 0,
            syst_cvr: 0,
            vtor: 0,
            scr: 0,
            fault_status: [0; 3],
            flash_cr: [1, 1],
        }
    }

    /// What an Mbed-based bootloader plausibly leaves: both caches on with dirty data, the
    /// MPU on with eight regions, PRIMASK clear (Mbed's `start_new_application`), a BASEPRI
    /// threshold, lines enabled and pending, SysTick running, non-zero handler priorities,
    /// the configurable fault handlers enabled, VTOR at the bootloader's table.
    pub fn arduino_bootloader() -> Self {
        let mut s = CoreState::reset();
        s.ccr |= ccr::IC | ccr::DC;
        for (i, d) in s.dirty.iter_mut().enumerate() {
            *d = i % 3 == 0;
        }
        s.icache_invalidated = true;
        s.mpu_ctrl = mpu::CTRL_ENABLE | (1 << 2);
        for (n, region) in s.regions.iter_mut().enumerate().take(8) {
            *region = (0x0800_0000 + (n as u32) * 0x2_0000, (16 << 1) | mpu::RASR_ENABLE);
        }
        s.basepri = 0x40;
        s.nvic_enabled[1] = 1 << 5 | 1 << 9;
        s.nvic_enabled[2] = 1 << 13;
        s.nvic_pending[2] = 1 << 13 | 1 << 1;
        s.ipr[10] = 0xF0F0_F0F0;
        s.shpr = [0, 0xF000_0000, 0xF0F0_0000];
        s.shcsr = 0x7 << 16;
        s.systick_pending = true;
        s.pendsv_pending = true;
        s.syst_csr = 0x7;
        s.syst_cvr = 1234;
        s.vtor = 0x0800_0000;
        // A precise bus fault the bootloader took and ignored, a forced HardFault, a debug
        // halt; SLEEPDEEP and SEVONPEND; both flash banks unlocked (MCUboot v25 jumps so).
        s.fault_status = [0x0000_8200, 0x4000_0000, 0x0000_0001];
        s.scr = 0x14;
        s.flash_cr = [0x20, 0x20];
        s
    }

    /// Dirty D-cache lines.
    pub fn dirty_lines(&self) -> usize {
        self.dirty.iter().filter(|d| **d).count()
    }
}

struct Inner {
    state: CoreState,
    log: Vec<Access>,
    violations: Vec<String>,
}

/// The model. Interior mutability: the sequences hold `&CoreModel`.
pub struct CoreModel {
    inner: RefCell<Inner>,
}

impl CoreModel {
    /// A core in `state`.
    pub fn new(state: CoreState) -> Self {
        CoreModel { inner: RefCell::new(Inner { state, log: Vec::new(), violations: Vec::new() }) }
    }

    /// The state now.
    pub fn state(&self) -> CoreState {
        self.inner.borrow().state.clone()
    }

    /// Every access so far.
    pub fn log(&self) -> Vec<Access> {
        self.inner.borrow().log.clone()
    }

    /// Every rule broken so far.
    pub fn violations(&self) -> Vec<String> {
        self.inner.borrow().violations.clone()
    }

    /// Index in the log of the first access matching `f`.
    pub fn first(&self, f: impl Fn(&Access) -> bool) -> Option<usize> {
        self.inner.borrow().log.iter().position(f)
    }

    /// Index in the log of the last access matching `f`.
    pub fn last(&self, f: impl Fn(&Access) -> bool) -> Option<usize> {
        self.inner.borrow().log.iter().rposition(f)
    }
}

impl CoreRegisters for CoreModel {
    fn read(&self, reg: CoreReg) -> u32 {
        let mut i = self.inner.borrow_mut();
        i.log.push(Access::Read(reg));
        let s = &i.state;
        match reg {
            CoreReg::Icsr => {
                (if s.systick_pending { 1 << 26 } else { 0 }) | (if s.pendsv_pending { 1 << 28 } else { 0 })
            }
            CoreReg::Vtor => s.vtor,
            CoreReg::Scr => s.scr,
            CoreReg::Cfsr => s.fault_status[0],
            CoreReg::Hfsr => s.fault_status[1],
            CoreReg::Dfsr => s.fault_status[2],
            CoreReg::FlashCr1 => s.flash_cr[0],
            CoreReg::FlashCr2 => s.flash_cr[1],
            CoreReg::Ccr => s.ccr,
            CoreReg::Shpr(n) => s.shpr[(n.saturating_sub(1) % 3) as usize],
            CoreReg::Shcsr => s.shcsr,
            CoreReg::Ccsidr => {
                if s.csselr == 0 {
                    DCACHE_CCSIDR
                } else {
                    0
                }
            }
            CoreReg::Csselr => s.csselr,
            CoreReg::Iciallu | CoreReg::Dccisw => 0,
            CoreReg::MpuType => s.mpu_type,
            CoreReg::MpuCtrl => s.mpu_ctrl,
            CoreReg::MpuRnr => s.rnr,
            CoreReg::MpuRbar => s.regions[(s.rnr % 16) as usize].0,
            CoreReg::MpuRasr => s.regions[(s.rnr % 16) as usize].1,
            CoreReg::SystCsr => s.syst_csr,
            CoreReg::SystRvr => 0,
            CoreReg::SystCvr => s.syst_cvr,
            CoreReg::NvicIser(n) | CoreReg::NvicIcer(n) => *s.nvic_enabled.get(n as usize).unwrap_or(&0),
            CoreReg::NvicIspr(n) | CoreReg::NvicIcpr(n) => *s.nvic_pending.get(n as usize).unwrap_or(&0),
            CoreReg::NvicIpr(n) => *s.ipr.get(n as usize).unwrap_or(&0),
        }
    }

    fn write(&self, reg: CoreReg, value: u32) {
        let mut i = self.inner.borrow_mut();
        let i = &mut *i;
        i.log.push(Access::Write(reg, value));
        if !i.state.primask {
            i.violations.push(format!("{reg:?} written before interrupts were masked"));
        }
        let s = &mut i.state;
        match reg {
            CoreReg::Icsr => {
                if value & icsr::PENDSTCLR != 0 {
                    s.systick_pending = false;
                }
                if value & icsr::PENDSVCLR != 0 {
                    s.pendsv_pending = false;
                }
            }
            CoreReg::Vtor => s.vtor = value & !0x7F,
            CoreReg::Scr => s.scr = value,
            CoreReg::Cfsr => s.fault_status[0] &= !value,
            CoreReg::Hfsr => s.fault_status[1] &= !value,
            CoreReg::Dfsr => s.fault_status[2] &= !value,
            CoreReg::FlashCr1 | CoreReg::FlashCr2 => {
                let i = usize::from(reg == CoreReg::FlashCr2);
                // A locked CR ignores writes (RM0399 §4.9.4); LOCK is only ever set by one.
                if s.flash_cr[i] & 1 == 0 {
                    s.flash_cr[i] = value;
                }
            }
            CoreReg::Ccr => {
                let dc_off = s.ccr & ccr::DC != 0 && value & ccr::DC == 0;
                let ic_on = s.ccr & ccr::IC == 0 && value & ccr::IC != 0;
                if dc_off && s.dirty_lines() > 0 {
                    i.violations.push(format!("D-cache disabled with {} dirty lines", s.dirty_lines()));
                }
                if ic_on && !s.icache_invalidated {
                    i.violations.push("I-cache enabled without ICIALLU first".into());
                }
                if value & ccr::IC == 0 {
                    s.icache_invalidated = false;
                }
                s.ccr = value;
            }
            CoreReg::Shpr(n) => s.shpr[(n.saturating_sub(1) % 3) as usize] = value,
            CoreReg::Shcsr => s.shcsr = value,
            CoreReg::Ccsidr | CoreReg::MpuType => {}
            CoreReg::Csselr => s.csselr = value,
            CoreReg::Iciallu => s.icache_invalidated = true,
            CoreReg::Dccisw => {
                let way = (value >> 30) as usize;
                let set = ((value >> 5) & 0x7F) as usize;
                s.dirty[set * 4 + way] = false;
            }
            CoreReg::MpuCtrl => s.mpu_ctrl = value,
            CoreReg::MpuRnr => s.rnr = value,
            CoreReg::MpuRbar | CoreReg::MpuRasr => {
                if s.mpu_ctrl & mpu::CTRL_ENABLE != 0 {
                    i.violations.push(format!("{reg:?} written while the MPU is enabled"));
                }
                let r = &mut s.regions[(s.rnr % 16) as usize];
                if reg == CoreReg::MpuRbar {
                    r.0 = value;
                } else {
                    r.1 = value;
                }
            }
            CoreReg::SystCsr => s.syst_csr = value,
            CoreReg::SystRvr => {}
            CoreReg::SystCvr => s.syst_cvr = 0,
            CoreReg::NvicIser(n) => {
                if let Some(w) = s.nvic_enabled.get_mut(n as usize) {
                    *w |= value;
                }
            }
            CoreReg::NvicIcer(n) => {
                if let Some(w) = s.nvic_enabled.get_mut(n as usize) {
                    *w &= !value;
                }
            }
            CoreReg::NvicIspr(n) => {
                if let Some(w) = s.nvic_pending.get_mut(n as usize) {
                    *w |= value;
                }
            }
            CoreReg::NvicIcpr(n) => {
                if let Some(w) = s.nvic_pending.get_mut(n as usize) {
                    *w &= !value;
                }
            }
            CoreReg::NvicIpr(n) => {
                if let Some(w) = s.ipr.get_mut(n as usize) {
                    *w = value;
                }
            }
        }
    }

    fn primask(&self) -> bool {
        self.inner.borrow().state.primask
    }

    fn mask_interrupts(&self) {
        let mut i = self.inner.borrow_mut();
        i.log.push(Access::MaskInterrupts);
        i.state.primask = true;
    }

    fn unmask_interrupts(&self) {
        let mut i = self.inner.borrow_mut();
        let i = &mut *i;
        i.log.push(Access::UnmaskInterrupts);
        let s = &i.state;
        let live = s.nvic_enabled.iter().chain(s.nvic_pending.iter()).any(|w| *w != 0)
            || s.syst_csr & 1 != 0
            || s.systick_pending
            || s.pendsv_pending;
        if live {
            i.violations.push("interrupts unmasked with a source still live".into());
        }
        i.state.primask = false;
    }

    fn basepri(&self) -> u32 {
        self.inner.borrow().state.basepri
    }

    fn set_basepri(&self, value: u32) {
        let mut i = self.inner.borrow_mut();
        i.log.push(Access::SetBasepri(value));
        if !i.state.primask {
            i.violations.push("BASEPRI written before interrupts were masked".into());
        }
        i.state.basepri = value & 0xFF;
    }

    fn barrier(&self) {
        self.inner.borrow_mut().log.push(Access::Barrier);
    }
}
