// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Host tests: the clock set-up against the register-level model of the clock tree.
//!
//! ```text
//! tests (this file) -> rcc::configure / switch_to_hsi -> ClockRegisters = model::ClockModel
//! ```

use super::model::{ClockModel, ClockState, Fault};
use super::regs::{cfgr, ClockReg};
use super::{
    configure, flash_access, frequencies, switch_to_hsi, ClockConfig, ClockError, FlashAccess, Vos,
    LATENCY_ANY_CLOCK,
};

const PORTENTA: ClockConfig = ClockConfig::PORTENTA_H7;

fn access(min_latency: u32, wrhighfreq: u32) -> Option<FlashAccess> {
    Some(FlashAccess { min_latency, wrhighfreq })
}

#[test]
fn flash_access_table_rows() {
    // RM0399 §4.3.8, each column's row boundaries.
    assert_eq!(flash_access(Vos::Scale1, 64_000_000), access(0, 0));
    assert_eq!(flash_access(Vos::Scale1, 140_000_000), access(1, 1));
    assert_eq!(flash_access(Vos::Scale1, 185_000_000), access(2, 1));
    assert_eq!(flash_access(Vos::Scale1, 200_000_000), access(2, 2));
    assert_eq!(flash_access(Vos::Scale1, 225_000_000), access(3, 2));
    assert_eq!(flash_access(Vos::Scale1, 240_000_000), None);
    assert_eq!(flash_access(Vos::Scale2, 55_000_000), access(0, 0));
    assert_eq!(flash_access(Vos::Scale2, 110_000_000), access(1, 1));
    assert_eq!(flash_access(Vos::Scale2, 165_000_000), access(2, 1));
    assert_eq!(flash_access(Vos::Scale2, 224_000_000), access(3, 2));
    assert_eq!(flash_access(Vos::Scale2, 225_000_000), None);
    assert_eq!(flash_access(Vos::Scale3, 45_000_000), access(0, 0));
    assert_eq!(flash_access(Vos::Scale3, 50_000_000), access(1, 1), "the bootloaders' HCLK needs 1 WS");
    assert_eq!(flash_access(Vos::Scale3, 135_000_000), access(2, 1));
    assert_eq!(flash_access(Vos::Scale3, 180_000_000), access(3, 2));
    assert_eq!(flash_access(Vos::Scale3, 224_000_000), access(4, 2));
    assert_eq!(flash_access(Vos::Scale3, 225_000_000), None);
    // LATENCY_ANY_CLOCK covers every row of every column.
    for vos in [Vos::Scale1, Vos::Scale2, Vos::Scale3] {
        for mhz in 1..=240 {
            if let Some(a) = flash_access(vos, mhz * 1_000_000) {
                assert!(a.min_latency <= LATENCY_ANY_CLOCK, "{vos:?} {mhz} MHz");
            }
        }
    }
}

#[test]
fn portenta_setups_are_valid_and_enter_with_latency_4_wrhighfreq_2() {
    let c = ClockConfig::PORTENTA_H7;
    assert!(c.is_valid());
    assert_eq!((c.sysclk_hz(), c.hclk_hz(), c.wrhighfreq()), (400_000_000, 200_000_000, 2));
    assert_eq!(c.entry_access(), FlashAccess { min_latency: 4, wrhighfreq: 2 });
    let b = ClockConfig::PORTENTA_H7_27MHZ;
    assert!(b.is_valid());
    assert_eq!((b.sysclk_hz(), b.hclk_hz(), b.wrhighfreq()), (399_000_000, 199_500_000, 2));
    assert_eq!(b.reference_hz() as u64 * b.n as u64, 798_000_000);
    assert_eq!(b.entry_access(), FlashAccess { min_latency: 4, wrhighfreq: 2 });
}

#[test]
fn the_25mhz_setup_on_a_27mhz_board_would_be_refused() {
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

#[test]
fn frequencies_of_what_the_bootloaders_leave() {
    let model = ClockModel::new(ClockState::arduino_bootloader(), Fault::None);
    let f = frequencies(&model, 25_000_000);
    assert_eq!((f.sysclk, f.cpu, f.hclk, f.pclk2, f.tim_apb1), (100_000_000, 100_000_000, 50_000_000, 25_000_000, 50_000_000));
}

#[test]
fn configure_from_the_bootloaders_state_raises_the_wait_states_first() {
    let model = ClockModel::new(ClockState::arduino_bootloader(), Fault::None);
    assert_eq!(configure(&model, &PORTENTA), Ok(()));
    assert_eq!(model.violations(), Vec::<String>::new());
    let s = model.state();
    assert_eq!((s.cfgr >> cfgr::SWS_SHIFT) & 0b111, cfgr::PLL1);
    assert_eq!(s.scale(), Vos::Scale1);
    assert_eq!((s.sysclk(), s.hclk()), (400_000_000, 200_000_000));
    assert_eq!((s.latency(), s.wrhighfreq()), (4, 2));
    let f = frequencies(&model, 25_000_000);
    assert_eq!((f.sysclk, f.hclk, f.pclk2, f.tim_apb1), (400_000_000, 200_000_000, 100_000_000, 200_000_000));
    // The very first write: FLASH_ACR, LATENCY 4 (VOS3's row for 200 MHz).
    let (reg, value) = model.writes()[0];
    assert_eq!((reg, value & 0xF), (ClockReg::FlashAcr, 4));
}

#[test]
fn the_model_flags_a_clock_change_before_the_wait_states() {
    // The bootloaders' state is outside the table (LATENCY 0 at 50 MHz, VOS3): any RCC or
    // PWR write before FLASH_ACR is flagged, so a `configure` that did not raise the wait
    // states first would fail the test above.
    let model = ClockModel::new(ClockState::arduino_bootloader(), Fault::None);
    super::regs::ClockRegisters::write(&model, ClockReg::PwrD3cr, 0b11 << 14);
    let v = model.violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains("LATENCY 0 below 1"), "{v:?}");
}

#[test]
fn an_invalid_configuration_writes_nothing() {
    let model = ClockModel::new(ClockState::arduino_bootloader(), Fault::None);
    let bad = ClockConfig { n: 300, ..PORTENTA };
    assert_eq!(configure(&model, &bad), Err(ClockError::InvalidConfig));
    assert!(model.writes().is_empty());
}

#[test]
fn flash_acr_that_ignores_the_latency_stops_the_set_up_before_any_clock_change() {
    let model = ClockModel::new(ClockState::arduino_bootloader(), Fault::AcrIgnored);
    assert_eq!(configure(&model, &PORTENTA), Err(ClockError::FlashLatency));
    assert!(model.writes().iter().all(|(reg, _)| *reg == ClockReg::FlashAcr), "{:?}", model.writes());
    assert_eq!(model.state().sysclk(), 100_000_000);
}

/// Runs `configure` from `state` with `fault` and expects `error`.
///
/// Then checks what every error path must leave: no rule broken on the way, and FLASH_ACR fitted to the clock left running
/// at the scale in effect (WRHIGHFREQ exactly the table's row, LATENCY at least its minimum).
/// Without the fix-up WRHIGHFREQ stays at the target's 2, which no row below 140 MHz has.
fn error_path(state: ClockState, fault: Fault, error: ClockError) -> ClockState {
    let model = ClockModel::new(state, fault);
    assert_eq!(configure(&model, &PORTENTA), Err(error), "{fault:?}");
    assert_eq!(model.violations(), Vec::<String>::new(), "{fault:?}");
    let s = model.state();
    let row = flash_access(s.scale(), s.hclk()).expect("a clock in the table");
    assert_eq!(s.wrhighfreq(), row.wrhighfreq, "{fault:?}: WRHIGHFREQ for {} Hz at {:?}", s.hclk(), s.scale());
    assert!(s.latency() >= row.min_latency, "{fault:?}");
    assert_eq!(s.latency(), 4, "{fault:?}: the entry latency is kept (a late switch stays covered)");
    s
}

fn sws(s: &ClockState) -> u32 {
    (s.cfgr >> cfgr::SWS_SHIFT) & 0b111
}

#[test]
fn error_path_supply_never_ready() {
    let s = error_path(ClockState::arduino_bootloader(), Fault::SupplyNeverReady, ClockError::VoltageScaling);
    assert_eq!((s.scale(), s.hclk(), s.wrhighfreq()), (Vos::Scale3, 50_000_000, 1));
}

#[test]
fn error_path_voltage_scale_never_ready() {
    let s = error_path(ClockState::arduino_bootloader(), Fault::VosNeverReady, ClockError::VoltageScaling);
    assert_eq!((s.scale(), s.hclk(), s.wrhighfreq()), (Vos::Scale3, 50_000_000, 1));
}

#[test]
fn error_path_hse_never_ready() {
    let s = error_path(ClockState::on_hsi_without_hse(), Fault::HseNeverReady, ClockError::HseTimeout);
    assert_eq!((sws(&s), s.hclk(), s.wrhighfreq()), (cfgr::HSI, 64_000_000, 0));
}

#[test]
fn error_path_hsi_never_ready() {
    let mut state = ClockState::arduino_bootloader();
    state.cr &= !(super::regs::cr::HSION | super::regs::cr::HSIRDY);
    let s = error_path(state, Fault::HsiNeverReady, ClockError::HsiTimeout);
    assert_eq!((sws(&s), s.hclk(), s.wrhighfreq()), (cfgr::PLL1, 50_000_000, 0));
}

#[test]
fn error_path_switch_to_hsi_stuck() {
    let s = error_path(ClockState::arduino_bootloader(), Fault::SwitchToHsiStuck, ClockError::SwitchTimeout);
    assert_eq!((sws(&s), s.hclk(), s.wrhighfreq()), (cfgr::PLL1, 50_000_000, 0));
}

#[test]
fn error_path_plls_never_stop() {
    let s = error_path(ClockState::arduino_bootloader(), Fault::PllsNeverStop, ClockError::PllTimeout);
    assert_eq!((sws(&s), s.hclk(), s.wrhighfreq()), (cfgr::HSI, 32_000_000, 0));
}

#[test]
fn error_path_pll_source_ignored() {
    // A bootloader PLL1 with another M (25 MHz / 25 * 200 / 2 = 100 MHz), so the ignored
    // write shows in the read-back.
    let mut state = ClockState::arduino_bootloader();
    state.pllckselr = super::regs::pllckselr::SRC_HSE | (25 << super::regs::pllckselr::DIVM1_SHIFT);
    state.pll1divr = 0xC7 | (1 << 9);
    assert_eq!(state.sysclk(), 100_000_000);
    let s = error_path(state, Fault::PllsrcIgnored, ClockError::PllTimeout);
    assert_eq!((sws(&s), s.hclk(), s.wrhighfreq()), (cfgr::HSI, 32_000_000, 0));
}

#[test]
fn error_path_pll_never_locks() {
    let s = error_path(ClockState::arduino_bootloader(), Fault::PllNeverLocks, ClockError::PllTimeout);
    assert_eq!((sws(&s), s.hclk(), s.wrhighfreq()), (cfgr::HSI, 32_000_000, 0));
}

#[test]
fn error_path_switch_to_pll1_stuck() {
    let s = error_path(ClockState::arduino_bootloader(), Fault::SwitchToPllStuck, ClockError::SwitchTimeout);
    assert_eq!((sws(&s), s.hclk(), s.wrhighfreq()), (cfgr::HSI, 32_000_000, 0));
}

#[test]
fn switch_to_hsi_raises_the_latency_first_and_fits_wrhighfreq_to_hsi() {
    let model = ClockModel::new(ClockState::arduino_bootloader(), Fault::None);
    assert_eq!(switch_to_hsi(&model), Ok(()));
    assert_eq!(model.violations(), Vec::<String>::new());
    let s = model.state();
    assert_eq!((sws(&s), s.hclk()), (cfgr::HSI, 32_000_000));
    assert_eq!((s.latency(), s.wrhighfreq()), (LATENCY_ANY_CLOCK, 0));
    assert_eq!(model.writes()[0].0, ClockReg::FlashAcr);
}
