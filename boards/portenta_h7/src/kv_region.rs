// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! Where the key-value store lives: the tutorial's `getFlashIAPLimits()` for this board.
//!
//! ```text
//! main.rs -> kv_region (this file) -> stm32h7::flash::FlashRegion -> the FLASH driver
//! ```
//!
//! Arduino's FlashIAP tutorial puts the block device after the sketch: start = end of the
//! application aligned up to a sector, size = the rest of the flash, trimmed so TDBStore can
//! split it into two equal areas. Here the "application" is everything in bank 1 up to the
//! end of the app region (`_eapps`, 0x0810_0000: bootloader, kernel, apps), so the region is
//! all of bank 2: 0x0810_0000, 1 MiB, 8 sectors of 128 KiB.
//!
//! To place the store elsewhere, set [`KV_REGION_OVERRIDE`] (the one place): it is checked at
//! compile time for sector alignment and at boot for staying clear of bank 1's contents.

use stm32h7::flash::{FlashRegion, RegionError, FLASH_BASE, SECTOR_SIZE};

/// `Some((base, size))` pins the region (absolute address, bytes; whole sectors, an even
/// number of them); `None` computes it from the linker symbols.
pub const KV_REGION_OVERRIDE: Option<(u32, u32)> = None;

/// The override, validated at compile time.
const OVERRIDE: Option<FlashRegion> = match KV_REGION_OVERRIDE {
    None => None,
    Some((base, size)) => {
        assert!(size % (2 * SECTOR_SIZE) == 0, "KV_REGION_OVERRIDE: size must be an even number of sectors");
        match FlashRegion::new(base, size) {
            Ok(r) => Some(r),
            Err(_) => panic!("KV_REGION_OVERRIDE: base and size must be whole sectors inside the flash"),
        }
    }
};

/// Why no region could be chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvRegionError {
    /// Less than two sectors after the app region.
    NoRoom,
    /// The region is not whole sectors inside the array.
    Region(RegionError),
    /// The (overridden) region overlaps the bootloader, the kernel or the apps.
    OverlapsBank1Contents,
}

const fn align_up(x: u32, to: u32) -> u32 {
    x.div_ceil(to) * to
}

const fn align_down(x: u32, to: u32) -> u32 {
    x / to * to
}

/// The region for a flash whose contents end at `apps_end` (exclusive, `_eapps`) and whose
/// array ends at `flash_end`: start aligned up to a sector, size the rest rounded down to an
/// even number of sectors (TDBStore's two areas), or the override.
pub const fn kv_region(apps_end: u32, flash_end: u32) -> Result<FlashRegion, KvRegionError> {
    let region = match OVERRIDE {
        Some(r) => r,
        None => {
            let start = align_up(apps_end, SECTOR_SIZE);
            if start >= flash_end {
                return Err(KvRegionError::NoRoom);
            }
            let size = align_down(flash_end - start, 2 * SECTOR_SIZE);
            if size == 0 {
                return Err(KvRegionError::NoRoom);
            }
            match FlashRegion::new(start, size) {
                Ok(r) => r,
                Err(e) => return Err(KvRegionError::Region(e)),
            }
        }
    };
    // Never the bootloader (0x0800_0000..), the kernel or the apps (.._eapps).
    if region.overlaps(FLASH_BASE, apps_end) {
        return Err(KvRegionError::OverlapsBank1Contents);
    }
    Ok(region)
}

// Checks of the computation, for the layout this board ships with (skipped when overridden):
// apps end at 0x0810_0000 and 2 MiB of flash -> all of bank 2; an apps end inside a sector is
// aligned up; a 1 MiB part (bank 1 only) leaves no room.
const _: () = if KV_REGION_OVERRIDE.is_none() {
    match kv_region(0x0810_0000, 0x0820_0000) {
        Ok(r) => assert!(r.base() == 0x0810_0000 && r.size() == 0x10_0000),
        Err(_) => panic!("no key-value region for the default layout"),
    }
    match kv_region(0x080F_0004, 0x0820_0000) {
        Ok(r) => assert!(r.base() == 0x0810_0000 && r.size() == 0x10_0000),
        Err(_) => panic!("unaligned apps end"),
    }
    match kv_region(0x0814_0000, 0x0820_0000) {
        // 6 sectors left: all of them (an even number).
        Ok(r) => assert!(r.base() == 0x0814_0000 && r.size() == 6 * SECTOR_SIZE),
        Err(_) => panic!("apps reaching into bank 2"),
    }
    match kv_region(0x0816_0000, 0x0820_0000) {
        // 5 sectors left: 4 of them.
        Ok(r) => assert!(r.base() == 0x0816_0000 && r.size() == 4 * SECTOR_SIZE),
        Err(_) => panic!("odd number of sectors left"),
    }
    assert!(matches!(kv_region(0x0810_0000, 0x0810_0000), Err(KvRegionError::NoRoom)));
};
