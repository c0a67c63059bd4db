// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Host tests: the hand-off sequences against the register-level model of the core.
//!
//! ```text
//! tests (this file) -> handoff::take_over -> CoreRegisters = model::CoreModel
//! ```

use super::model::{Access, CoreModel, CoreState};
use super::regs::{ccr, mpu, CoreReg, CoreRegisters};
use super::{systick_state, take_over, Found};

const KERNEL_VECTORS: u32 = 0x0804_0000;

fn after_bootloader() -> CoreModel {
    CoreModel::new(CoreState::arduino_bootloader())
}

#[test]
fn takes_over_everything_the_bootloader_left_without_breaking_a_rule() {
    let core = after_bootloader();
    let report = take_over(&core, KERNEL_VECTORS);
    assert_eq!(core.violations(), Vec::<String>::new());

    let s = core.state();
    assert!(!s.primask, "unmasked at the end, as after reset (Tock's SVC needs it)");
    assert_eq!(s.basepri, 0);
    assert_eq!(s.syst_csr, 0);
    assert_eq!(s.syst_cvr, 0);
    assert!(!s.systick_pending && !s.pendsv_pending);
    assert!(s.nvic_enabled.iter().all(|w| *w == 0));
    assert!(s.nvic_pending.iter().all(|w| *w == 0));
    assert!(s.ipr.iter().all(|w| *w == 0));
    assert_eq!(s.shpr, [0; 3]);
    assert_eq!(s.shcsr & (0x7 << 16), 0);
    assert_eq!(s.vtor, KERNEL_VECTORS);
    assert_eq!(s.mpu_ctrl, 0);
    assert!(s.regions.iter().all(|r| *r == (0, 0)), "every region cleared, not only the enabled ones");
    assert_eq!(s.ccr & ccr::DC, 0);
    assert_ne!(s.ccr & ccr::IC, 0);
    assert_eq!(s.dirty_lines(), 0, "everything the bootloader left dirty reached SRAM");

    let found = report.found;
    assert_eq!(
        found,
        Found {
            vtor: 0x0800_0000,
            primask: false,
            basepri: 0x40,
            icache: true,
            dcache: true,
            mpu_ctrl: mpu::CTRL_ENABLE | (1 << 2),
            mpu_regions: 16,
            mpu_enabled_regions: 0x00FF,
            nvic_enabled: 3,
            nvic_pending: 2,
            systick_csr: 0x7,
            shpr_nonzero: true,
            fault_enables: 0x7 << 16,
            cfsr: 0x0000_8200,
            hfsr: 0x4000_0000,
            scr: 0x14,
            flash_unlocked: 0b11,
        }
    );
    assert_eq!(report.set.vtor, KERNEL_VECTORS);
    assert!(report.set.icache && !report.set.dcache);
    assert_eq!(report.set.mpu_ctrl, 0);
    assert_eq!(report.set.mpu_regions_cleared, 16);
    assert_eq!(report.set.basepri, 0);
    assert!(!report.set.primask);
}

#[test]
fn interrupts_are_masked_before_any_write() {
    let core = after_bootloader();
    take_over(&core, KERNEL_VECTORS);
    let mask = core.first(|a| *a == Access::MaskInterrupts).expect("PRIMASK set");
    let first_write =
        core.first(|a| matches!(a, Access::Write(..) | Access::SetBasepri(_))).expect("something written");
    assert!(mask < first_write, "CPSID I at {mask}, first write at {first_write}");
    // BASEPRI cleared right after masking, before the rest of the take-over.
    assert_eq!(core.log()[mask + 1], Access::SetBasepri(0));
    // Unmasked once, after the last write, when nothing can fire.
    let unmask = core.first(|a| *a == Access::UnmaskInterrupts).expect("PRIMASK cleared");
    let last_write = core.last(|a| matches!(a, Access::Write(..))).expect("something written");
    assert!(last_write < unmask);
    assert_eq!(core.log().iter().filter(|a| **a == Access::UnmaskInterrupts).count(), 1);
}

#[test]
fn the_dcache_is_cleaned_while_on_then_disabled_then_cleaned_again() {
    let core = after_bootloader();
    take_over(&core, KERNEL_VECTORS);
    let disable = core
        .first(|a| matches!(a, Access::Write(CoreReg::Ccr, v) if v & ccr::DC == 0))
        .expect("D-cache disabled");
    let first_clean = core.first(|a| matches!(a, Access::Write(CoreReg::Dccisw, _))).expect("cleaned");
    let last_clean = core.last(|a| matches!(a, Access::Write(CoreReg::Dccisw, _))).expect("cleaned");
    assert!(first_clean < disable && disable < last_clean);
    let cleans_before =
        core.log()[..disable].iter().filter(|a| matches!(a, Access::Write(CoreReg::Dccisw, _))).count();
    let cleans_after =
        core.log()[disable..].iter().filter(|a| matches!(a, Access::Write(CoreReg::Dccisw, _))).count();
    assert_eq!((cleans_before, cleans_after), (512, 512), "every set and way, both passes");
    // A barrier completes the disable before the second pass.
    assert_eq!(core.log()[disable + 1], Access::Barrier);
}

#[test]
fn the_mpu_is_off_before_any_region_is_written() {
    let core = after_bootloader();
    take_over(&core, KERNEL_VECTORS);
    let off = core.first(|a| *a == Access::Write(CoreReg::MpuCtrl, 0)).expect("MPU disabled");
    let first_region = core
        .first(|a| matches!(a, Access::Write(CoreReg::MpuRbar | CoreReg::MpuRasr, _)))
        .expect("regions written");
    assert!(off < first_region);
    // Each region is disabled (RASR = 0) before its base address changes.
    let log = core.log();
    for (i, a) in log.iter().enumerate() {
        if let Access::Write(CoreReg::MpuRbar, _) = a {
            assert_eq!(log[i - 1], Access::Write(CoreReg::MpuRasr, 0));
        }
    }
}

#[test]
fn the_icache_is_invalidated_before_it_is_enabled() {
    let core = CoreModel::new(CoreState::reset());
    let report = take_over(&core, KERNEL_VECTORS);
    assert_eq!(core.violations(), Vec::<String>::new());
    let inval = core.first(|a| matches!(a, Access::Write(CoreReg::Iciallu, _))).expect("ICIALLU");
    let enable = core
        .first(|a| matches!(a, Access::Write(CoreReg::Ccr, v) if v & ccr::IC != 0))
        .expect("I-cache enabled");
    assert!(inval < enable);
    assert!(report.set.icache);
}

#[test]
fn a_reset_state_core_needs_no_dcache_maintenance() {
    let core = CoreModel::new(CoreState::reset());
    let report = take_over(&core, KERNEL_VECTORS);
    assert!(core.first(|a| matches!(a, Access::Write(CoreReg::Dccisw, _))).is_none());
    assert!(!report.found.dcache && !report.set.dcache);
    assert_eq!(report.found.mpu_enabled_regions, 0);
    assert_eq!(systick_state(report.found.systick_csr), "off");
}

#[test]
fn an_implausible_region_count_is_capped() {
    let mut state = CoreState::arduino_bootloader();
    state.mpu_type = 0xFF << mpu::TYPE_DREGION_SHIFT;
    let core = CoreModel::new(state);
    let report = take_over(&core, KERNEL_VECTORS);
    assert_eq!(report.found.mpu_regions, 16);
    assert_eq!(core.violations(), Vec::<String>::new());
}

#[test]
fn the_model_catches_the_wrong_orders() {
    // Writing before masking, a region while the MPU is on, and disabling a dirty D-cache
    // are each reported: the tests above would notice a sequence that does them.
    let core = after_bootloader();
    core.write(CoreReg::MpuRnr, 0);
    core.mask_interrupts();
    core.write(CoreReg::MpuRasr, 0);
    core.write(CoreReg::Ccr, 0);
    let v = core.violations();
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(v[0].contains("before interrupts were masked"));
    assert!(v[1].contains("while the MPU is enabled"));
    assert!(v[2].contains("dirty lines"));

    let core = CoreModel::new(CoreState::reset());
    core.mask_interrupts();
    core.write(CoreReg::Ccr, ccr::IC);
    assert_eq!(core.violations(), vec!["I-cache enabled without ICIALLU first".to_string()]);

    // Unmasking while the bootloader's sources are still live.
    let core = after_bootloader();
    core.mask_interrupts();
    core.unmask_interrupts();
    assert_eq!(core.violations(), vec!["interrupts unmasked with a source still live".to_string()]);
}

#[test]
fn systick_state_names() {
    assert_eq!(systick_state(0), "off");
    assert_eq!(systick_state(1), "on");
    assert_eq!(systick_state(3), "on with interrupt");
}

#[test]
fn fault_status_sleep_and_flash_locks_are_the_kernels_after_the_take_over() {
    let core = after_bootloader();
    take_over(&core, KERNEL_VECTORS);
    assert_eq!(core.violations(), Vec::<String>::new());
    let s = core.state();
    assert_eq!(s.fault_status, [0; 3], "CFSR, HFSR, DFSR cleared: the first fault report is the kernel's");
    assert_eq!(s.scr, 0, "no SLEEPDEEP/SEVONPEND/SLEEPONEXIT left by the bootloader");
    assert_eq!(s.flash_cr.map(|cr| cr & 1), [1, 1], "both flash banks locked");
    assert_eq!(s.flash_cr.map(|cr| cr & !1), [0x20, 0x20], "only LOCK changed");
    // Cleared with interrupts masked, before the kernel's vectors are in place.
    let vtor = core.first(|a| matches!(a, Access::Write(CoreReg::Vtor, _))).expect("VTOR");
    for reg in
        [CoreReg::Cfsr, CoreReg::Hfsr, CoreReg::Dfsr, CoreReg::Scr, CoreReg::FlashCr1, CoreReg::FlashCr2]
    {
        let w = core.first(|a| matches!(a, Access::Write(r, _) if *r == reg)).expect("written");
        assert!(w < vtor, "{reg:?}");
    }
    // Already locked banks are not written.
    let core = CoreModel::new(CoreState::reset());
    take_over(&core, KERNEL_VECTORS);
    assert!(core.first(|a| matches!(a, Access::Write(CoreReg::FlashCr1 | CoreReg::FlashCr2, _))).is_none());
}

#[test]
fn nothing_but_the_ccr_read_comes_between_the_last_clean_and_the_disable() {
    // The sequence the target's naked assembly function runs (`mmio`), step by step: after
    // the first pass's last DCCISW only a barrier and the CCR read, then the disable and a
    // barrier.
    let core = after_bootloader();
    take_over(&core, KERNEL_VECTORS);
    let log = core.log();
    let disable = core
        .first(|a| matches!(a, Access::Write(CoreReg::Ccr, v) if v & ccr::DC == 0))
        .expect("D-cache disabled");
    let last_clean =
        log[..disable].iter().rposition(|a| matches!(a, Access::Write(CoreReg::Dccisw, _))).expect("cleaned");
    assert_eq!(&log[last_clean + 1..disable], &[Access::Barrier, Access::Read(CoreReg::Ccr)]);
    assert_eq!(log[disable + 1], Access::Barrier);
}
