// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Tock's Cortex-M MPU with every process region programmed as Normal memory.
//!
//! ```text
//! kernel (ProcessStandard: allocate/update regions, configure_mpu on each switch)
//!        |  kernel::platform::mpu::MPU
//! NormalMemoryMpu (this crate)
//!   |  region arithmetic, RBAR/RASR values    |  memory type of each enabled region
//! cortexm::mpu::MPU (upstream, unchanged)     RegionRegisters: MpuMmio | test model
//!        |                                     |
//!        +---------- MPU_RBAR/RASR, MPU_RNR/RASR (0xE000_ED98..) ----------+
//! ```
//!
//! # Why
//!
//! Upstream's Cortex-M MPU (`arch/cortex-m/src/mpu.rs` at the pinned revision) writes MPU_RASR
//! with TEX = 000, C = 0, B = 0, S = 0: every process region is Strongly-ordered memory (PM0253
//! "MPU access permission attributes", table "TEX, C, B, and S encoding"; ARMv7-M Architecture
//! Reference Manual §B3.5.9 MPU_RASR and its TEX/C/B table). An unaligned load or store to
//! Strongly-ordered or Device memory takes an UNALIGNED UsageFault whatever CCR.UNALIGN_TRP says
//! (ARMv7-M ARM §A3.5.7, as the review of issue 22 cites it; Cortex-M7 Devices Generic User
//! Guide DUI 0646 §3.3.5 "Address alignment": "some memory regions might not support unaligned
//! accesses"). Ordinary Rust code makes unaligned `ldr`/`ldrh` (core::fmt's
//! template reads, `from_le_bytes` of an odd slice), so on a Cortex-M7 every app that prints
//! would be stopped. The same failure on other M7 parts: Zephyr issue #14483, phoenix-rtos PR
//! #1076. QEMU does not model it (unaligned accesses to Strongly-ordered regions complete there),
//! so the host tests of this crate are the proof, not an emulator run.
//!
//! # How
//!
//! [`NormalMemoryMpu`] implements Tock's `MPU` trait by delegating every method to upstream's
//! MPU, so the region arithmetic (sizes, subregions, alignment, the two app-memory regions) is
//! upstream's, unchanged. After upstream's `configure_mpu` has written the regions, it selects
//! each region (MPU_RNR), reads MPU_RASR back and, for an enabled region whose TEX/S/C/B are
//! not [`rasr::NORMAL_NON_CACHEABLE`], rewrites RASR with only those four fields replaced: AP,
//! XN, SRD, SIZE and ENABLE stay what upstream computed. The kernel calls `configure_mpu` with
//! the MPU disabled (`disable_app_mpu` on every return to the kernel, `enable_app_mpu` after the
//! configuration), so no access sees the regions between the two writes.
//!
//! # Memory type: Normal, non-cacheable, not shareable (TEX = 001, C = 0, B = 0, S = 0)
//!
//! Normal memory is what unaligned accesses need. Non-cacheable is the choice that is right
//! without a cache-maintenance argument: the Portenta's kernel turns the D-cache off at the
//! hand-off, and the kernel itself reaches process memory through the default memory map
//! (PRIVDEFENA, the MPU off in the kernel), which for SRAM is Normal write-back. Were the
//! D-cache on, a process region marked non-cacheable would be incoherent with the kernel's
//! cached view of the same bytes; so with this crate the D-cache stays off (see the STM32H7
//! chip README). Zephyr uses the same encoding for its non-cacheable RAM
//! (`NORMAL_OUTER_INNER_NON_CACHEABLE_NON_SHAREABLE`). S = 0: only one core (the M7) reaches the
//! processes' memory, and for non-cacheable Normal memory shareability changes nothing on this
//! core.
//!
//! # Reuse
//!
//! Nothing here is STM32-specific: the MPU registers are architectural (ARMv7-M ARM §B3.5,
//! System Control Space 0xE000_ED90..0xE000_EDA3), so any Cortex-M7 board (the emulated
//! `mps2-an500` too) uses [`cortexm7`]. It is a crate of its own rather than a module of the
//! STM32H7 chip crate because that crate carries the STM32H747's vector table as `#[used]`
//! statics, which another chip's board must not link.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

use cortexm::mpu::{CortexMConfig, MpuRegisters};
use kernel::platform::mpu::{self, Permissions, Region};
use kernel::utilities::StaticRef;

#[cfg(test)]
mod tests;

/// MPU_RASR fields (ARMv7-M ARM §B3.5.9; PM0253 "MPU region attribute and size register").
pub mod rasr {
    /// Region enable.
    pub const ENABLE: u32 = 1 << 0;
    /// Bufferable.
    pub const B: u32 = 1 << 16;
    /// Cacheable.
    pub const C: u32 = 1 << 17;
    /// Shareable.
    pub const S: u32 = 1 << 18;
    /// Type extension field, bits 21:19.
    pub const TEX_SHIFT: u32 = 19;
    /// Type extension mask.
    pub const TEX_MASK: u32 = 0b111 << TEX_SHIFT;
    /// Every bit that selects the memory type: TEX, S, C, B.
    pub const MEMORY_TYPE: u32 = TEX_MASK | S | C | B;
    /// Normal memory, outer and inner non-cacheable, not shareable: TEX = 001, C = 0, B = 0,
    /// S = 0 (PM0253 table "TEX, C, B, and S encoding").
    pub const NORMAL_NON_CACHEABLE: u32 = 0b001 << TEX_SHIFT;
}

/// `rasr` with its memory type replaced by [`rasr::NORMAL_NON_CACHEABLE`]; every other field
/// (XN, AP, SRD, SIZE, ENABLE) unchanged.
pub const fn normal(rasr_value: u32) -> u32 {
    (rasr_value & !rasr::MEMORY_TYPE) | rasr::NORMAL_NON_CACHEABLE
}

/// The two MPU registers the memory-type pass needs.
pub trait RegionRegisters {
    /// Writes MPU_RNR: selects the region MPU_RASR reads and writes.
    fn select(&self, region: u32);
    /// Reads MPU_RASR of the selected region.
    fn attributes(&self) -> u32;
    /// Writes MPU_RASR of the selected region.
    fn set_attributes(&self, value: u32);
}

/// Gives every enabled region among the first `regions` Normal memory attributes.
///
/// For each region: RNR = n, read RASR, and rewrite it only if its memory type differs (a
/// region upstream did not touch since the last pass costs one read).
pub fn make_regions_normal<R: RegionRegisters>(registers: &R, regions: usize) {
    for n in 0..regions as u32 {
        registers.select(n);
        let value = registers.attributes();
        if value & rasr::ENABLE != 0 && value & rasr::MEMORY_TYPE != rasr::NORMAL_NON_CACHEABLE {
            registers.set_attributes(normal(value));
        }
    }
}

/// MPU_RNR and MPU_RASR of the running core.
pub struct MpuMmio {
    _private: (),
}

/// MPU_RNR (ARMv7-M ARM §B3.5.7).
#[cfg(all(target_arch = "arm", target_os = "none"))]
const MPU_RNR: *mut u32 = 0xE000_ED98 as *mut u32;
/// MPU_RASR (ARMv7-M ARM §B3.5.9).
#[cfg(all(target_arch = "arm", target_os = "none"))]
const MPU_RASR: *mut u32 = 0xE000_EDA0 as *mut u32;

impl MpuMmio {
    /// The core's MPU region registers.
    ///
    /// # Safety
    ///
    /// Only the [`NormalMemoryMpu`] that owns the MPU may use them.
    pub const unsafe fn new() -> Self {
        MpuMmio { _private: () }
    }
}

impl RegionRegisters for MpuMmio {
    fn select(&self, region: u32) {
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        // SAFETY: MPU_RNR is an always-mapped, architecturally defined System Control Space
        // register; selecting a region changes only which region RASR addresses. The kernel
        // runs privileged.
        unsafe {
            core::ptr::write_volatile(MPU_RNR, region)
        }
        #[cfg(not(all(target_arch = "arm", target_os = "none")))]
        let _ = region;
    }

    fn attributes(&self) -> u32 {
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        {
            // SAFETY: as in `select`; reading MPU_RASR has no side effects.
            unsafe { core::ptr::read_volatile(MPU_RASR) }
        }
        #[cfg(not(all(target_arch = "arm", target_os = "none")))]
        0
    }

    fn set_attributes(&self, value: u32) {
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        // SAFETY: as in `select`. The value is one upstream's MPU wrote for this region with
        // only TEX/S/C/B changed, so the region's permissions and extent are upstream's.
        unsafe {
            core::ptr::write_volatile(MPU_RASR, value)
        }
        #[cfg(not(all(target_arch = "arm", target_os = "none")))]
        let _ = value;
    }
}

/// Tock's Cortex-M MPU (upstream's, for the arithmetic and the register writes) with every
/// enabled process region made Normal memory when it is programmed.
pub struct NormalMemoryMpu<
    const NUM_REGIONS: usize,
    const MIN_REGION_SIZE: usize,
    R: RegionRegisters = MpuMmio,
> {
    upstream: cortexm::mpu::MPU<NUM_REGIONS, MIN_REGION_SIZE>,
    regions: R,
}

impl<const NUM_REGIONS: usize, const MIN_REGION_SIZE: usize, R: RegionRegisters>
    NormalMemoryMpu<NUM_REGIONS, MIN_REGION_SIZE, R>
{
    /// The MPU whose registers are at `registers` (upstream's register block: MPU_TYPE at its
    /// start) and `regions` (the same MPU's RNR and RASR).
    ///
    /// # Safety
    ///
    /// One instance per MPU: it owns the hardware, as upstream's does.
    pub const unsafe fn new(registers: StaticRef<MpuRegisters>, regions: R) -> Self {
        NormalMemoryMpu {
            // SAFETY: the caller guarantees a single owner of these registers.
            upstream: unsafe { cortexm::mpu::MPU::new(registers) },
            regions,
        }
    }
}

/// The Cortex-M7's MPU: 16 regions, 32-byte minimum (as upstream's `cortexm7::mpu::MPU`).
pub type CortexM7Mpu = NormalMemoryMpu<16, 32, MpuMmio>;

/// The running Cortex-M7 core's MPU, with Normal memory process regions.
///
/// # Safety
///
/// Call once (the chip owns the MPU), on a Cortex-M7 (or another ARMv7-M core with 16 MPU
/// regions).
pub unsafe fn cortexm7() -> CortexM7Mpu {
    // SAFETY: 0xE000_ED90 is the architectural MPU register block (MPU_TYPE first, ARMv7-M ARM
    // §B3.5), the address upstream's `cortexm7::mpu::new` uses.
    let registers = unsafe { StaticRef::new(0xE000_ED90 as *const MpuRegisters) };
    // SAFETY: the caller guarantees one instance; `MpuMmio` addresses the same MPU.
    unsafe { NormalMemoryMpu::new(registers, MpuMmio::new()) }
}

// SAFETY: every method but `configure_mpu` is upstream's, which upholds the trait's contract.
// `configure_mpu` runs upstream's and then changes only the memory type of regions upstream
// enabled: no region's extent or access permissions change, so isolation is upstream's.
unsafe impl<const NUM_REGIONS: usize, const MIN_REGION_SIZE: usize, R: RegionRegisters> mpu::MPU
    for NormalMemoryMpu<NUM_REGIONS, MIN_REGION_SIZE, R>
{
    type MpuConfig = CortexMConfig<NUM_REGIONS>;

    fn enable_app_mpu(&self) {
        self.upstream.enable_app_mpu();
    }

    unsafe fn disable_app_mpu(&self) {
        // SAFETY: the caller's obligations are the trait's, passed on unchanged.
        unsafe { self.upstream.disable_app_mpu() }
    }

    fn number_total_regions(&self) -> usize {
        self.upstream.number_total_regions()
    }

    fn new_config(&self) -> Option<Self::MpuConfig> {
        self.upstream.new_config()
    }

    fn reset_config(&self, config: &mut Self::MpuConfig) {
        self.upstream.reset_config(config);
    }

    fn allocate_region(
        &self,
        unallocated_memory_start: *const u8,
        unallocated_memory_size: usize,
        min_region_size: usize,
        permissions: Permissions,
        config: &mut Self::MpuConfig,
    ) -> Option<Region> {
        self.upstream.allocate_region(
            unallocated_memory_start,
            unallocated_memory_size,
            min_region_size,
            permissions,
            config,
        )
    }

    fn remove_memory_region(&self, region: Region, config: &mut Self::MpuConfig) -> Result<(), ()> {
        self.upstream.remove_memory_region(region, config)
    }

    fn allocate_app_memory_region(
        &self,
        unallocated_memory_start: *const u8,
        unallocated_memory_size: usize,
        min_memory_size: usize,
        initial_app_memory_size: usize,
        initial_kernel_memory_size: usize,
        permissions: Permissions,
        config: &mut Self::MpuConfig,
    ) -> Option<(*const u8, usize)> {
        self.upstream.allocate_app_memory_region(
            unallocated_memory_start,
            unallocated_memory_size,
            min_memory_size,
            initial_app_memory_size,
            initial_kernel_memory_size,
            permissions,
            config,
        )
    }

    fn update_app_memory_region(
        &self,
        app_memory_break: *const u8,
        kernel_memory_break: *const u8,
        permissions: Permissions,
        config: &mut Self::MpuConfig,
    ) -> Result<(), ()> {
        self.upstream.update_app_memory_region(app_memory_break, kernel_memory_break, permissions, config)
    }

    unsafe fn configure_mpu(&self, config: &Self::MpuConfig) {
        // SAFETY: the caller's obligations are the trait's, passed on unchanged.
        unsafe { self.upstream.configure_mpu(config) };
        make_regions_normal(&self.regions, NUM_REGIONS);
    }
}
