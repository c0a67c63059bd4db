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
//! | `INVAL` | range outside the region, not aligned to the unit, or `len` larger than the buffer |
//! | `BUSY` | another operation is in flight |
//! | `FAIL` | uncorrectable read (ECC), or the program/erase failed (hardware error flags) |
//! | `RESERVE` | the unit is write-protected, or (program) not erased |
//! | `OFF` | the flash is not powered or not configured |
#![no_std]

use kernel::ErrorCode;

/// Geometry of a NOR-flash region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes in the region.
    pub size: u32,
    /// Read unit.
    pub read_size: u32,
    /// Program unit: written once per erase, whole.
    pub program_size: u32,
    /// Erase unit (sector).
    pub erase_size: u32,
    /// Value of an erased byte.
    pub erase_value: u8,
}

/// Completion callbacks. Buffers come back whatever the result.
pub trait NorFlashClient {
    /// A read finished; on success `buffer[..len]` holds the data.
    fn read_complete(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>);
    /// A program finished.
    fn program_complete(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>);
    /// An erase finished.
    fn erase_complete(&self, result: Result<(), ErrorCode>);
}

/// A NOR-flash region with split-phase operations.
pub trait NorFlash<'a> {
    /// Sets the client for completions.
    fn set_client(&self, client: &'a dyn NorFlashClient);

    /// The region's geometry.
    fn geometry(&self) -> Geometry;

    /// Reads `len` bytes at `addr` into `buffer[..len]`. `addr` and `len` are multiples of
    /// `read_size`.
    fn read(
        &self,
        addr: u32,
        buffer: &'static mut [u8],
        len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])>;

    /// Programs `buffer[..len]` at `addr`: whole, erased program units.
    fn program(
        &self,
        addr: u32,
        buffer: &'static mut [u8],
        len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])>;

    /// Erases the one erase unit starting at `addr`.
    fn erase(&self, addr: u32) -> Result<(), ErrorCode>;
}

/// Checks a request against a geometry: the one validation every driver performs.
pub fn check_range(g: &Geometry, addr: u32, len: usize, unit: u32, buffer_len: usize) -> Result<(), ErrorCode> {
    let len32 = u32::try_from(len).map_err(|_| ErrorCode::INVAL)?;
    let end = addr.checked_add(len32).ok_or(ErrorCode::INVAL)?;
    if len > buffer_len || end > g.size || unit == 0 || !addr.is_multiple_of(unit) || !len32.is_multiple_of(unit) {
        return Err(ErrorCode::INVAL);
    }
    Ok(())
}
