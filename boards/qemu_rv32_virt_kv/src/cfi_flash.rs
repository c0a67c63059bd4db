// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! NOR-flash driver for QEMU virt's CFI parallel flash (Intel/Sharp command set), with the
//! STM32H7's program-once rule.
//!
//! ```text
//! capsules/tdbstore (hil::kv::KV)
//!        |
//!   nor_flash_hil::NorFlash
//!        |
//!   CfiFlash: split-phase, deferred-call completions    (this file)
//!   CfiRegion: command sequences, program-once check     (this file)
//!        |
//!   CfiBus: 32-bit register access (MmioBank on QEMU, a model in the tests)
//! ```
//!
//! # The device
//!
//! `-drive if=pflash,unit=1,format=raw,file=kv.img` maps bank 1 of the `virt` machine at
//! [`PFLASH1_BASE`]: 32 MiB, 256 KiB erase blocks, a 32-bit bank made of two x16 parts (QEMU
//! `pflash_cfi01`, `width=4`, `device-width=2`). Commands go to both parts at once (the
//! command byte in each 16-bit half) and the status register reads back once per part, so
//! every status bit appears twice, at bit `n` and bit `n + 16`. The sequences are those of
//! Intel's "3 Volt Intel StrataFlash Memory" datasheet, section 4 ("Command set"): 0xFF read
//! array, 0x70 read status, 0x50 clear status, 0x40 word program (then the data), 0x20 block
//! erase then 0xD0 confirm. QEMU completes every program and erase before the next access, so
//! the status poll below finds the device ready at once; the poll stays bounded anyway.
//!
//! # The write discipline
//!
//! QEMU's flash overwrites where real NOR flash can only clear bits, and never complains about
//! a second program. The STM32H7 programs a 32-byte flash word once per erase (a second program
//! corrupts its ECC). So that the emulated board exercises the same discipline as the real
//! one, this driver exposes a 32-byte program unit and refuses (`RESERVE`, programming
//! nothing) a program over any unit that is not fully erased.
//!
//! # Errors (the one mapping, [`CfiError::to_error_code`])
//!
//! | internal error | status bits | `ErrorCode` |
//! |---|---|---|
//! | `NotErased` | (driver check: a target unit holds a non-0xFF byte) | `RESERVE` |
//! | `Locked` | SR.1 block locked | `RESERVE` |
//! | `ProgramFailed` | SR.4 program error | `FAIL` |
//! | `EraseFailed` | SR.5 erase error | `FAIL` |
//! | `Voltage` | SR.3 VPP low | `FAIL` |
//! | `Timeout` | SR.7 never set within [`STATUS_POLLS`] reads | `FAIL` |
//! | `Verify` | read-back after a program differs from the data | `FAIL` |
//!
//! Range and alignment errors (`INVAL`) and `BUSY` are returned by the call itself and never
//! reach the callback.

use core::cell::Cell;

use kernel::deferred_call::{DeferredCall, DeferredCallClient};
use kernel::utilities::cells::{MapCell, OptionalCell};
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;
use nor_flash_hil::{check_range, Geometry, NorFlash, NorFlashClient};

/// Bus address of pflash bank 1 on QEMU's `virt` machine (bank 0 is at 0x2000_0000).
pub const PFLASH1_BASE: usize = 0x2200_0000;
/// Bytes in one pflash bank.
pub const BANK_SIZE: u32 = 32 * 1024 * 1024;
/// Erase block size of QEMU virt's pflash.
pub const BLOCK_SIZE: u32 = 256 * 1024;
/// Program unit this driver exposes: the STM32H7's 32-byte flash word.
pub const PROGRAM_SIZE: u32 = 32;
/// Status reads before a program or erase is declared timed out.
pub const STATUS_POLLS: u32 = 10_000;

/// A command byte written to both x16 parts of the bank.
const fn both(cmd: u8) -> u32 {
    (cmd as u32) << 16 | cmd as u32
}
const CMD_READ_ARRAY: u32 = both(0xFF);
const CMD_CLEAR_STATUS: u32 = both(0x50);
const CMD_WORD_PROGRAM: u32 = both(0x40);
const CMD_BLOCK_ERASE: u32 = both(0x20);
const CMD_ERASE_CONFIRM: u32 = both(0xD0);

/// Status register bits of one part (Intel SR.7..SR.0).
const SR_READY: u32 = 1 << 7;
const SR_ERASE_ERROR: u32 = 1 << 5;
const SR_PROGRAM_ERROR: u32 = 1 << 4;
const SR_VPP_ERROR: u32 = 1 << 3;
const SR_LOCKED: u32 = 1 << 1;

/// 32-bit access to one CFI bank. Offsets are byte offsets from the bank's base.
///
/// Implementations access the device only at offsets inside the bank and aligned to the
/// access size; anything else must be ignored (writes) or read as `0` (reads). The driver
/// never issues such accesses; the rule keeps an implementation's `unsafe` sound whatever
/// its caller does.
pub trait CfiBus {
    /// Reads the aligned 32-bit word at `offset`.
    fn read32(&self, offset: u32) -> u32;
    /// Writes the aligned 32-bit word at `offset` (a command or, after 0x40, data).
    fn write32(&self, offset: u32, value: u32);
}

/// The memory-mapped bank QEMU provides.
pub struct MmioBank {
    base: usize,
}

impl MmioBank {
    /// A bank of [`BANK_SIZE`] bytes at `base`.
    ///
    /// # Safety
    ///
    /// `base..base + BANK_SIZE` must be a CFI flash bank's MMIO window that nothing else in
    /// the kernel accesses, readable and writable by the kernel (the board's PMP MMIO region
    /// covers it).
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    fn valid(offset: u32) -> bool {
        offset < BANK_SIZE && offset.is_multiple_of(4)
    }
}

impl CfiBus for MmioBank {
    fn read32(&self, offset: u32) -> u32 {
        if !Self::valid(offset) {
            return 0;
        }
        // SAFETY: `MmioBank::new`'s contract makes `base..base + BANK_SIZE` a device window
        // the kernel may read; `offset` was just checked to be inside it and 4-byte aligned,
        // so this is one aligned 32-bit load from the device, as its bus requires.
        unsafe { core::ptr::read_volatile((self.base + offset as usize) as *const u32) }
    }

    fn write32(&self, offset: u32, value: u32) {
        if !Self::valid(offset) {
            return;
        }
        // SAFETY: as in `read32`: an aligned 32-bit store inside the device window that
        // `MmioBank::new`'s contract reserves for this driver. A store to the flash window is
        // a command (or command data) to the device, never a plain memory write.
        unsafe { core::ptr::write_volatile((self.base + offset as usize) as *mut u32, value) }
    }
}

/// What went wrong in a program or erase; mapped to an `ErrorCode` in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CfiError {
    /// A target program unit is not erased: programming it would break the program-once rule.
    NotErased,
    /// SR.1: the block is locked.
    Locked,
    /// SR.4: the program failed.
    ProgramFailed,
    /// SR.5: the erase failed.
    EraseFailed,
    /// SR.3: programming voltage low.
    Voltage,
    /// The device never reported ready.
    Timeout,
    /// Read-back after a program differs from the data written.
    Verify,
}

impl CfiError {
    /// The HIL error for this failure (table in the module docs).
    pub fn to_error_code(self) -> ErrorCode {
        match self {
            CfiError::NotErased | CfiError::Locked => ErrorCode::RESERVE,
            CfiError::ProgramFailed
            | CfiError::EraseFailed
            | CfiError::Voltage
            | CfiError::Timeout
            | CfiError::Verify => ErrorCode::FAIL,
        }
    }
}

/// A region of whole erase blocks at the start of a CFI bank: the synchronous command
/// sequences, no Tock plumbing.
pub struct CfiRegion<B: CfiBus> {
    bus: B,
    geometry: Geometry,
}

impl<B: CfiBus> CfiRegion<B> {
    /// The first `blocks` erase blocks of the bank behind `bus`, with the device put in
    /// read-array mode. `None` if that is not a positive, even number of blocks inside the
    /// bank (the TDBStore engine splits the region into two areas of whole erase units).
    pub fn new(bus: B, blocks: u32) -> Option<Self> {
        let size = blocks.checked_mul(BLOCK_SIZE)?;
        if blocks == 0 || !blocks.is_multiple_of(2) || size > BANK_SIZE {
            return None;
        }
        bus.write32(0, CMD_READ_ARRAY);
        let geometry = Geometry {
            size,
            read_size: 1,
            program_size: PROGRAM_SIZE,
            erase_size: BLOCK_SIZE,
            erase_value: 0xFF,
        };
        Some(Self { bus, geometry })
    }

    /// The region's geometry.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Copies `buf.len()` bytes at `addr` (checked by the caller) into `buf`. The device is in
    /// read-array mode between operations, so this is plain word reads.
    pub fn read(&self, addr: u32, buf: &mut [u8]) {
        let mut word_addr = addr & !3;
        let mut skip = (addr & 3) as usize;
        let mut i = 0;
        while i < buf.len() {
            let bytes = self.bus.read32(word_addr).to_le_bytes();
            for &b in &bytes[skip..] {
                if i == buf.len() {
                    break;
                }
                buf[i] = b;
                i += 1;
            }
            skip = 0;
            word_addr += 4;
        }
    }

    /// True if every byte of `addr..addr + len` reads erased.
    fn is_erased(&self, addr: u32, len: u32) -> bool {
        (addr..addr + len).step_by(4).all(|a| self.bus.read32(a) == u32::MAX)
    }

    /// Programs `data` (whole program units at a unit-aligned `addr`, checked by the caller).
    /// Refuses, programming nothing, if any target unit is not erased.
    pub fn program(&self, addr: u32, data: &[u8]) -> Result<(), CfiError> {
        let len = data.len() as u32;
        if !self.is_erased(addr, len) {
            return Err(CfiError::NotErased);
        }
        let result = self.program_words(addr, data);
        self.bus.write32(addr, CMD_READ_ARRAY);
        result?;
        for (i, chunk) in data.as_chunks::<4>().0.iter().enumerate() {
            let expect = u32::from_le_bytes(*chunk);
            if self.bus.read32(addr + 4 * i as u32) != expect {
                return Err(CfiError::Verify);
            }
        }
        Ok(())
    }

    /// Word program, one 32-bit word (one 16-bit word per part) at a time.
    fn program_words(&self, addr: u32, data: &[u8]) -> Result<(), CfiError> {
        self.bus.write32(addr, CMD_CLEAR_STATUS);
        for (i, chunk) in data.as_chunks::<4>().0.iter().enumerate() {
            let word_addr = addr + 4 * i as u32;
            let word = u32::from_le_bytes(*chunk);
            self.bus.write32(word_addr, CMD_WORD_PROGRAM);
            self.bus.write32(word_addr, word);
            self.wait_ready(word_addr, CfiError::ProgramFailed)?;
        }
        Ok(())
    }

    /// Erases the block at `addr` (block-aligned, checked by the caller).
    pub fn erase(&self, addr: u32) -> Result<(), CfiError> {
        self.bus.write32(addr, CMD_CLEAR_STATUS);
        self.bus.write32(addr, CMD_BLOCK_ERASE);
        self.bus.write32(addr, CMD_ERASE_CONFIRM);
        let result = self.wait_ready(addr, CfiError::EraseFailed);
        self.bus.write32(addr, CMD_READ_ARRAY);
        result
    }

    /// Polls the status register (the device returns status after a program or erase command)
    /// until both parts are ready, then decodes their error bits. Clears sticky errors.
    fn wait_ready(&self, addr: u32, op_error: CfiError) -> Result<(), CfiError> {
        let both_ready = SR_READY << 16 | SR_READY;
        let mut status = 0;
        let mut ready = false;
        for _ in 0..STATUS_POLLS {
            status = self.bus.read32(addr);
            if status & both_ready == both_ready {
                ready = true;
                break;
            }
        }
        if !ready {
            return Err(CfiError::Timeout);
        }
        let part = (status | status >> 16) & 0xFF;
        let error = if part & SR_LOCKED != 0 {
            Some(CfiError::Locked)
        } else if part & SR_VPP_ERROR != 0 {
            Some(CfiError::Voltage)
        } else if part & (SR_PROGRAM_ERROR | SR_ERASE_ERROR) != 0 {
            Some(op_error)
        } else {
            None
        };
        match error {
            Some(e) => {
                self.bus.write32(addr, CMD_CLEAR_STATUS);
                Err(e)
            }
            None => Ok(()),
        }
    }
}

/// A finished operation waiting for its deferred call (buffers keep the window they were
/// lent with).
enum Completion {
    Read(SubSliceMut<'static, u8>, Result<(), ErrorCode>),
    Program(SubSliceMut<'static, u8>, Result<(), ErrorCode>),
    Erase(Result<(), ErrorCode>),
}

/// The split-phase `NorFlash` over a [`CfiRegion`]: each operation runs to completion in the
/// call (the device is synchronous) and its callback follows from a deferred call.
pub struct CfiFlash<'a, B: CfiBus> {
    region: CfiRegion<B>,
    client: OptionalCell<&'a dyn NorFlashClient>,
    completion: MapCell<Completion>,
    busy: Cell<bool>,
    deferred_call: DeferredCall,
}

impl<'a, B: CfiBus> CfiFlash<'a, B> {
    /// Wraps a region. Register the deferred call (`DeferredCallClient::register`) before use.
    pub fn new(region: CfiRegion<B>) -> Self {
        Self {
            region,
            client: OptionalCell::empty(),
            completion: MapCell::empty(),
            busy: Cell::new(false),
            deferred_call: DeferredCall::new(),
        }
    }

    fn finish(&self, completion: Completion) {
        self.busy.set(true);
        self.completion.put(completion);
        self.deferred_call.set();
    }
}

impl<'a, B: CfiBus> NorFlash<'a> for CfiFlash<'a, B> {
    fn set_client(&self, client: &'a dyn NorFlashClient) {
        self.client.set(client);
    }

    fn geometry(&self) -> Geometry {
        self.region.geometry()
    }

    fn read(
        &self,
        addr: u32,
        mut buffer: SubSliceMut<'static, u8>,
    ) -> Result<(), (ErrorCode, SubSliceMut<'static, u8>)> {
        if self.busy.get() {
            return Err((ErrorCode::BUSY, buffer));
        }
        let g = self.region.geometry();
        if let Err(e) = check_range(&g, addr, buffer.len(), g.read_size) {
            return Err((e, buffer));
        }
        self.region.read(addr, buffer.as_mut_slice());
        self.finish(Completion::Read(buffer, Ok(())));
        Ok(())
    }

    fn program(
        &self,
        addr: u32,
        buffer: SubSliceMut<'static, u8>,
    ) -> Result<(), (ErrorCode, SubSliceMut<'static, u8>)> {
        if self.busy.get() {
            return Err((ErrorCode::BUSY, buffer));
        }
        let g = self.region.geometry();
        if let Err(e) = check_range(&g, addr, buffer.len(), g.program_size) {
            return Err((e, buffer));
        }
        let result = self.region.program(addr, buffer.as_slice()).map_err(CfiError::to_error_code);
        self.finish(Completion::Program(buffer, result));
        Ok(())
    }

    fn erase(&self, addr: u32) -> Result<(), ErrorCode> {
        if self.busy.get() {
            return Err(ErrorCode::BUSY);
        }
        let g = self.region.geometry();
        let unit = g.erase_size as usize;
        check_range(&g, addr, unit, g.erase_size)?;
        let result = self.region.erase(addr).map_err(CfiError::to_error_code);
        self.finish(Completion::Erase(result));
        Ok(())
    }
}

impl<B: CfiBus> DeferredCallClient for CfiFlash<'_, B> {
    fn handle_deferred_call(&self) {
        // Not busy before the callback: the client may start the next operation from it.
        self.busy.set(false);
        let Some(completion) = self.completion.take() else {
            return;
        };
        self.client.map(move |client| match completion {
            Completion::Read(buffer, result) => client.read_complete(buffer, result),
            Completion::Program(buffer, result) => client.program_complete(buffer, result),
            Completion::Erase(result) => client.erase_complete(result),
        });
    }

    fn register(&'static self) {
        self.deferred_call.register(self);
    }
}

#[cfg(test)]
mod tests;
