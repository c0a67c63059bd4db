// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Host tests: the RASR values the MPU leaves in the hardware, against upstream's for the same
//! requests.
//!
//! ```text
//! tests (this file) -> NormalMemoryMpu -> cortexm::mpu::MPU -> Shadow (RAM register block)
//!                                      -> RegionRegisters = HwModel (reads the Shadow)
//! ```
//!
//! Upstream's MPU writes its registers through a `StaticRef`, which here points at a register
//! block in RAM (the shadow). A plain block keeps only the last RBAR/RASR pair upstream wrote,
//! so the model latches that pair into the region its RBAR names (RBAR.VALID = 1, REGION = n,
//! as the hardware does) whenever the memory-type pass selects a region; the tests use an
//! upstream MPU of 3 regions (`allocate_region` takes region 2, the last one written) or of 2
//! (the app-memory pair, region 1 written last), so the region under test is always the pair
//! the shadow holds. Each request is also run on a plain upstream MPU: the values must be
//! upstream's exactly, except for TEX/S/C/B.

use std::cell::{Cell, RefCell};

use cortexm::mpu::MpuRegisters;
use kernel::platform::mpu::{Permissions, Region, MPU};
use kernel::utilities::StaticRef;

use super::{make_regions_normal, normal, rasr, NormalMemoryMpu, RegionRegisters};

const ALL_PERMISSIONS: [Permissions; 5] = [
    Permissions::ReadWriteExecute,
    Permissions::ReadWriteOnly,
    Permissions::ReadExecuteOnly,
    Permissions::ReadOnly,
    Permissions::ExecuteOnly,
];

/// MPU_CTRL.ENABLE.
const CTRL_ENABLE: u32 = 1;
/// RBAR.VALID.
const RBAR_VALID: u32 = 1 << 4;

/// A register block in RAM: MPU_TYPE, CTRL, RNR, RBAR, RASR (word indices 0..5).
#[derive(Clone, Copy)]
struct Shadow(*mut u32);

impl Shadow {
    fn new(regions: u32) -> Shadow {
        let words = Box::into_raw(Box::new([regions << 8, 0, 0, 0, 0u32])).cast::<u32>();
        Shadow(words)
    }
    fn registers(self) -> StaticRef<MpuRegisters> {
        // SAFETY: the block is five u32 words, leaked (lives for the test process), laid out as
        // MpuRegisters (repr(C), five u32 registers).
        unsafe { StaticRef::new(self.0 as *const MpuRegisters) }
    }
    fn word(self, i: usize) -> u32 {
        // SAFETY: i < 5, inside the leaked block.
        unsafe { self.0.add(i).read_volatile() }
    }
    fn ctrl(self) -> u32 {
        self.word(1)
    }
    /// The last (RBAR, RASR) upstream wrote.
    fn last_pair(self) -> (u32, u32) {
        (self.word(3), self.word(4))
    }
    /// Marks the last pair as taken by the model (RBAR.VALID clear), so an unchanged shadow is
    /// not mistaken for a new write.
    fn consume(self) {
        // SAFETY: word 3 of the leaked block.
        unsafe { self.0.add(3).write_volatile(0) }
    }
}

/// The MPU's regions as the hardware would hold them, fed from the shadow.
struct HwModel {
    shadow: Shadow,
    regions: RefCell<[(u32, u32); 16]>,
    rnr: Cell<u32>,
    rasr_writes: RefCell<Vec<(u32, u32)>>,
    violations: RefCell<Vec<String>>,
}

impl HwModel {
    fn new(shadow: Shadow) -> HwModel {
        HwModel {
            shadow,
            regions: RefCell::new([(0, 0); 16]),
            rnr: Cell::new(0),
            rasr_writes: RefCell::new(Vec::new()),
            violations: RefCell::new(Vec::new()),
        }
    }
    /// Records the pair upstream wrote last into the region its RBAR names.
    fn latch(&self) {
        let (rbar, rasr_value) = self.shadow.last_pair();
        if rbar & RBAR_VALID != 0 {
            self.regions.borrow_mut()[(rbar & 0xF) as usize] = (rbar, rasr_value);
            self.shadow.consume();
        }
    }
    fn region(&self, n: usize) -> (u32, u32) {
        self.latch();
        self.regions.borrow()[n]
    }
}

impl RegionRegisters for HwModel {
    fn select(&self, region: u32) {
        self.latch();
        self.rnr.set(region);
    }
    fn attributes(&self) -> u32 {
        self.regions.borrow()[(self.rnr.get() % 16) as usize].1
    }
    fn set_attributes(&self, value: u32) {
        if self.shadow.ctrl() & CTRL_ENABLE != 0 {
            self.violations
                .borrow_mut()
                .push(format!("RASR of region {} written with the MPU on", self.rnr.get()));
        }
        self.rasr_writes.borrow_mut().push((self.rnr.get(), value));
        self.regions.borrow_mut()[(self.rnr.get() % 16) as usize].1 = value;
    }
}

type Wrapped<const N: usize> = NormalMemoryMpu<N, 32, HwModel>;

fn wrapped<const N: usize>() -> (Wrapped<N>, Shadow) {
    let shadow = Shadow::new(N as u32);
    // SAFETY: one instance per shadow block.
    let mpu = unsafe { NormalMemoryMpu::new(shadow.registers(), HwModel::new(shadow)) };
    (mpu, shadow)
}

fn upstream<const N: usize>() -> (cortexm::mpu::MPU<N, 32>, Shadow) {
    let shadow = Shadow::new(N as u32);
    // SAFETY: one instance per shadow block.
    (unsafe { cortexm::mpu::MPU::new(shadow.registers()) }, shadow)
}

/// Requests for `allocate_region`: (start, size available, minimum size).
///
/// Aligned powers of two, the subregion cases (start not aligned to the size, size not a power of two), a case
/// that needs a larger aligned region, tiny ones rounded up to 32 bytes, flash-sized ones.
const REGION_REQUESTS: [(usize, usize, usize); 9] = [
    (0x0808_0000, 0x2_0000, 0x2_0000),
    (0x0808_0000, 0x2_0000, 0x1_0000),
    (0x0808_4000, 0x1_C000, 0x6000),
    (0x0808_0100, 0x1_0000, 0x300),
    (0x2402_0000, 0x8000, 0x20),
    (0x2402_0000, 0x8000, 5),
    (0x2402_0020, 0x8000, 0x1C0),
    (0x0804_0000, 0x4_0000, 0x3_0000),
    (0x0808_1000, 0x4_0000, 0x1_8000),
];

/// Requests for `allocate_app_memory_region`: (start, size available, min memory, initial app,
/// initial kernel). Each needs more than 8 subregions, so region 1 is enabled.
const APP_REQUESTS: [(usize, usize, usize, usize, usize); 5] = [
    (0x2402_0000, 0x8000, 0x4000, 0x2800, 0x800),
    (0x2402_0000, 0x8000, 0x1000, 0x1100, 0x400),
    (0x2402_8000, 0x8000, 0x6000, 0x4400, 0x1000),
    (0x2000_0000, 0x2_0000, 0x8000, 0x6000, 0x1000),
    (0x2402_0000, 0x8000, 0x200, 0x180, 0x40),
];

#[test]
fn upstream_alone_leaves_process_regions_strongly_ordered() {
    // The defect this crate exists for: for every permission, upstream's RASR has TEX/S/C/B
    // zero, Strongly-ordered memory, where a Cortex-M7 faults unaligned accesses.
    for permissions in ALL_PERMISSIONS {
        let (mpu, shadow) = upstream::<3>();
        let mut config = mpu.new_config().expect("config");
        mpu.allocate_region(0x0808_0000 as *const u8, 0x2_0000, 0x2_0000, permissions, &mut config)
            .expect("region");
        // SAFETY: a RAM shadow, not the hardware.
        unsafe { mpu.configure_mpu(&config) };
        let (_, value) = shadow.last_pair();
        assert_ne!(value & rasr::ENABLE, 0);
        assert_eq!(value & rasr::MEMORY_TYPE, 0, "{permissions:?}: Strongly-ordered");
    }
}

#[test]
fn every_region_allocated_is_normal_memory_for_every_permission_and_otherwise_upstreams() {
    for permissions in ALL_PERMISSIONS {
        for (start, available, min) in REGION_REQUESTS {
            let what = format!("{permissions:?} {start:#x} {available:#x} {min:#x}");
            let (reference, reference_shadow) = upstream::<3>();
            let mut reference_config = reference.new_config().expect("config");
            let expected = reference.allocate_region(
                start as *const u8,
                available,
                min,
                permissions,
                &mut reference_config,
            );

            let (mpu, _shadow) = wrapped::<3>();
            let mut config = mpu.new_config().expect("config");
            let got = mpu.allocate_region(start as *const u8, available, min, permissions, &mut config);
            let extent = |r: &Option<Region>| r.as_ref().map(|r| (r.start_address() as usize, r.size()));
            assert_eq!(extent(&got), extent(&expected), "{what}: the region arithmetic is upstream's");
            let Some(region) = got else { continue };

            // SAFETY: RAM shadows, not the hardware.
            unsafe {
                reference.configure_mpu(&reference_config);
                mpu.configure_mpu(&config);
            }
            let (upstream_rbar, upstream_rasr) = reference_shadow.last_pair();
            let (rbar, value) = mpu.regions.region(2);
            assert_eq!(rbar, upstream_rbar, "{what}: base, VALID and region number are upstream's");
            assert_eq!(value & rasr::MEMORY_TYPE, rasr::NORMAL_NON_CACHEABLE, "{what}: Normal memory");
            assert_eq!(
                value & !rasr::MEMORY_TYPE,
                upstream_rasr & !rasr::MEMORY_TYPE,
                "{what}: AP, XN, SRD, SIZE"
            );
            assert_ne!(value & rasr::ENABLE, 0);
            assert_eq!(mpu.regions.violations.borrow().len(), 0);

            // Removing the region disables it; nothing is rewritten for a disabled region.
            mpu.remove_memory_region(Region::new(region.start_address(), region.size()), &mut config)
                .expect("removed");
            mpu.regions.rasr_writes.borrow_mut().clear();
            // SAFETY: as above.
            unsafe { mpu.configure_mpu(&config) };
            assert_eq!(mpu.regions.region(2).1 & rasr::ENABLE, 0);
            assert!(mpu.regions.rasr_writes.borrow().is_empty(), "{what}: no write for a disabled region");
        }
    }
}

#[test]
fn app_memory_regions_are_normal_memory_and_grow_as_upstreams() {
    for permissions in ALL_PERMISSIONS {
        for (start, available, min, app, kernel) in APP_REQUESTS {
            let what = format!("{permissions:?} {start:#x} {min:#x} {app:#x} {kernel:#x}");
            let (reference, reference_shadow) = upstream::<2>();
            let mut reference_config = reference.new_config().expect("config");
            let expected = reference.allocate_app_memory_region(
                start as *const u8,
                available,
                min,
                app,
                kernel,
                permissions,
                &mut reference_config,
            );
            let (mpu, _shadow) = wrapped::<2>();
            let mut config = mpu.new_config().expect("config");
            let got = mpu.allocate_app_memory_region(
                start as *const u8,
                available,
                min,
                app,
                kernel,
                permissions,
                &mut config,
            );
            assert_eq!(got, expected, "{what}: placement and size are upstream's");
            let Some((base, size)) = got else { panic!("{what}: no app memory") };

            // Grow the break twice (as `brk` does), then check region 1 after each step.
            let kernel_break = base as usize + size - kernel;
            for app_break in
                [base as usize + app, base as usize + app + (kernel_break - base as usize - app) / 2]
            {
                let expected = reference.update_app_memory_region(
                    app_break as *const u8,
                    kernel_break as *const u8,
                    permissions,
                    &mut reference_config,
                );
                let got = mpu.update_app_memory_region(
                    app_break as *const u8,
                    kernel_break as *const u8,
                    permissions,
                    &mut config,
                );
                assert_eq!(got, expected, "{what}: break {app_break:#x}");
                // SAFETY: RAM shadows, not the hardware.
                unsafe {
                    reference.configure_mpu(&reference_config);
                    mpu.configure_mpu(&config);
                }
                let (upstream_rbar, upstream_rasr) = reference_shadow.last_pair();
                let (rbar, value) = mpu.regions.region(1);
                assert_eq!(rbar, upstream_rbar, "{what}");
                assert_ne!(value & rasr::ENABLE, 0, "{what}: region 1 in use");
                assert_eq!(value & rasr::MEMORY_TYPE, rasr::NORMAL_NON_CACHEABLE, "{what}: Normal memory");
                assert_eq!(value & !rasr::MEMORY_TYPE, upstream_rasr & !rasr::MEMORY_TYPE, "{what}");
            }
        }
    }
}

#[test]
fn regions_are_rewritten_only_with_the_mpu_off_as_the_kernel_switches() {
    // The kernel's order: configure (MPU off), enable, run the process, disable.
    let (mpu, _shadow) = wrapped::<3>();
    let mut config = mpu.new_config().expect("config");
    mpu.allocate_region(
        0x0808_0000 as *const u8,
        0x2_0000,
        0x2_0000,
        Permissions::ReadExecuteOnly,
        &mut config,
    )
    .expect("region");
    for _ in 0..3 {
        // SAFETY: RAM shadow.
        unsafe { mpu.configure_mpu(&config) };
        mpu.enable_app_mpu();
        // SAFETY: RAM shadow.
        unsafe { mpu.disable_app_mpu() };
    }
    assert_eq!(mpu.regions.violations.borrow().len(), 0);
    // Upstream skips an unchanged configuration, so after the first switch nothing is written.
    assert_eq!(mpu.regions.rasr_writes.borrow().len(), 1);
    assert_eq!(mpu.number_total_regions(), 3);
}

/// A fixed list of RASR values, one per region, for the pass alone.
struct Fixed {
    values: RefCell<Vec<u32>>,
    rnr: Cell<usize>,
    writes: Cell<usize>,
}

impl RegionRegisters for Fixed {
    fn select(&self, region: u32) {
        self.rnr.set(region as usize);
    }
    fn attributes(&self) -> u32 {
        self.values.borrow()[self.rnr.get()]
    }
    fn set_attributes(&self, value: u32) {
        self.writes.set(self.writes.get() + 1);
        self.values.borrow_mut()[self.rnr.get()] = value;
    }
}

#[test]
fn the_pass_changes_only_the_memory_type_of_enabled_regions() {
    // Every AP, XN, SRD and SIZE pattern, with any memory type before: an enabled region
    // leaves Normal non-cacheable with its other fields intact; a disabled one is untouched.
    let mut inputs = Vec::new();
    for ap in 0..8u32 {
        for xn in [0, 1u32] {
            for srd in [0x00, 0x81, 0xFEu32] {
                for size in [4, 16, 31u32] {
                    for memory_type in
                        [0, rasr::B, rasr::C | rasr::B, rasr::TEX_MASK | rasr::S, rasr::NORMAL_NON_CACHEABLE]
                    {
                        for enable in [0, rasr::ENABLE] {
                            inputs.push(
                                (xn << 28) | (ap << 24) | memory_type | (srd << 8) | (size << 1) | enable,
                            );
                        }
                    }
                }
            }
        }
    }
    for chunk in inputs.chunks(16) {
        let regs = Fixed { values: RefCell::new(chunk.to_vec()), rnr: Cell::new(0), writes: Cell::new(0) };
        make_regions_normal(&regs, chunk.len());
        let mut expected_writes = 0;
        for (before, after) in chunk.iter().zip(regs.values.borrow().iter()) {
            if before & rasr::ENABLE == 0 {
                assert_eq!(after, before, "disabled region {before:#010x} untouched");
            } else {
                assert_eq!(*after, normal(*before));
                assert_eq!(after & rasr::MEMORY_TYPE, rasr::NORMAL_NON_CACHEABLE);
                assert_eq!(after & !rasr::MEMORY_TYPE, before & !rasr::MEMORY_TYPE);
                if before & rasr::MEMORY_TYPE != rasr::NORMAL_NON_CACHEABLE {
                    expected_writes += 1;
                }
            }
        }
        assert_eq!(regs.writes.get(), expected_writes, "already-Normal regions are not rewritten");
    }
}

#[test]
fn the_encoding_is_normal_non_cacheable_not_shareable() {
    // PM0253 table "TEX, C, B, and S encoding": TEX 001, C 0, B 0 is Normal, outer and inner
    // non-cacheable; S 0 not shareable.
    assert_eq!(rasr::NORMAL_NON_CACHEABLE, 0b001 << 19);
    assert_eq!(rasr::MEMORY_TYPE, 0x003F_0000);
    assert_eq!(normal(0x1300_8125 | rasr::MEMORY_TYPE), 0x1300_8125 | (1 << 19));
}
