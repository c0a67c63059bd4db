// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! A split-phase NOR-flash HIL: read any range, program whole program units, erase one sector.
//!
//! ```text
//! capsules/tdbstore (hil::kv::KV)
//!        |
//!   nor_flash_hil::NorFlash  (this file)
//!        |
//! chips/stm32h7 FLASH  |  boards/qemu_rv32_virt_kv CFI flash
//! ```
//!
//! Tock's `hil::flash::Flash` is page-based (a page is an erase unit: 128 KiB on the
//! STM32H7), which fits neither a log-structured store nor the RAM budget. This HIL has the
//! geometry of Mbed's BlockDevice instead.
//!
//! # The contract
//!
//! - Addresses are offsets into the driver's region, which the board fixes; the driver
//!   refuses (`INVAL`) anything outside it, so the kernel, the apps and the bootloader can
//!   never be touched through this interface.
//! - Buffers are lent as a [`SubSliceMut`]: its active window is the range read into or
//!   programmed from, at any offset inside the underlying buffer, so a caller can lend a
//!   window of a larger work buffer without copying. The window's length is the request's
//!   length. The driver touches only the window and gives the buffer back, in the completion
//!   or in the `Err` of a refused call, with the window it was lent with (never reset or
//!   re-sliced).
//! - One operation is in flight at a time; another call meanwhile returns `BUSY` and
//!   changes nothing.
//! - A **program unit** (`program_size` bytes, aligned) is programmed at most once between
//!   erases, whole, with no bit-clearing overwrites. Drivers for parts that would silently
//!   accept a second program (QEMU's CFI flash) refuse it; on the STM32H7 a second program
//!   corrupts the unit's ECC. Callers must track what is erased.
//! - A read of a unit whose data is unrecoverable (a double-bit ECC error after a torn
//!   program or erase) completes with `FAIL`; it must never fault.
//! - Completions always arrive through the client callback, never inside the call (drivers
//!   whose hardware completes synchronously use a deferred call).
//!
//! # Errors
//!
//! | `ErrorCode` | meaning |
//! |---|---|
//! | `INVAL` | range (`addr`, window length) outside the region or not aligned to the unit |
//! | `BUSY` | another operation is in flight |
//! | `FAIL` | uncorrectable read (ECC), or the program/erase failed (hardware error flags) |
//! | `RESERVE` | the unit is write-protected, or (program) not erased |
//! | `OFF` | the flash is not powered or not configured |
#![no_std]
#![forbid(unsafe_code)]

use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;

/// Geometry of a NOR-flash region: `flash-geometry`'s, the type the TDBStore engine and the
/// flash simulator use too, so a driver's geometry goes to the engine unconverted.
pub use flash_geometry::Geometry;

/// Completion callbacks. Buffers come back whatever the result, with the window they were
/// lent with.
pub trait NorFlashClient {
    /// A read finished; on success the buffer's active window holds the data. The buffer
    /// comes back with the window it was lent with.
    fn read_complete(&self, buffer: SubSliceMut<'static, u8>, result: Result<(), ErrorCode>);
    /// A program finished. The buffer comes back with the window it was lent with.
    fn program_complete(&self, buffer: SubSliceMut<'static, u8>, result: Result<(), ErrorCode>);
    /// An erase finished.
    fn erase_complete(&self, result: Result<(), ErrorCode>);
}

/// A NOR-flash region with split-phase operations.
pub trait NorFlash<'a> {
    /// Sets the client for completions.
    fn set_client(&self, client: &'a dyn NorFlashClient);

    /// The region's geometry.
    fn geometry(&self) -> Geometry;

    /// Reads `buffer.len()` bytes at `addr` into the buffer's active window. `addr` and the
    /// window's length are multiples of `read_size`. On a refusal the buffer comes back in
    /// the `Err`, window unchanged.
    fn read(
        &self,
        addr: u32,
        buffer: SubSliceMut<'static, u8>,
    ) -> Result<(), (ErrorCode, SubSliceMut<'static, u8>)>;

    /// Programs the buffer's active window at `addr`: whole, erased program units. On a
    /// refusal the buffer comes back in the `Err`, window unchanged.
    fn program(
        &self,
        addr: u32,
        buffer: SubSliceMut<'static, u8>,
    ) -> Result<(), (ErrorCode, SubSliceMut<'static, u8>)>;

    /// Erases the one erase unit starting at `addr`.
    fn erase(&self, addr: u32) -> Result<(), ErrorCode>;
}

/// Checks a request of `len` bytes at `addr` against a geometry, `unit` being the alignment
/// both must have: the one validation every driver performs.
pub fn check_range(g: &Geometry, addr: u32, len: usize, unit: u32) -> Result<(), ErrorCode> {
    let len32 = u32::try_from(len).map_err(|_| ErrorCode::INVAL)?;
    let end = addr.checked_add(len32).ok_or(ErrorCode::INVAL)?;
    if end > g.size || unit == 0 || !addr.is_multiple_of(unit) || !len32.is_multiple_of(unit) {
        return Err(ErrorCode::INVAL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Geometry =
        Geometry { size: 4096, read_size: 1, program_size: 32, erase_size: 1024, erase_value: 0xFF };

    #[test]
    fn check_range_is_region_and_alignment() {
        assert_eq!(check_range(&G, 0, 4096, 32), Ok(()));
        assert_eq!(check_range(&G, 4064, 32, 32), Ok(()));
        assert_eq!(check_range(&G, 4096, 0, 32), Ok(()));
        assert_eq!(check_range(&G, 4064, 64, 32), Err(ErrorCode::INVAL));
        assert_eq!(check_range(&G, u32::MAX - 31, 32, 32), Err(ErrorCode::INVAL));
        assert_eq!(check_range(&G, 16, 32, 32), Err(ErrorCode::INVAL));
        assert_eq!(check_range(&G, 0, 48, 32), Err(ErrorCode::INVAL));
        assert_eq!(check_range(&G, 0, 1, 0), Err(ErrorCode::INVAL));
        assert_eq!(check_range(&G, 3, 5, 1), Ok(()));
    }
}
