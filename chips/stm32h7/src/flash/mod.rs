// Licensed under the Apache License, Version 2.0 or the MIT License.
// SPDX-License-Identifier: Apache-2.0 OR MIT

//! STM32H7 embedded-flash driver: `nor_flash_hil::NorFlash` over one region of the array.
//!
//! ```text
//! capsules/tdbstore (hil::kv::KV)
//!        |
//!   nor_flash_hil::NorFlash
//!        |
//!   flash::Flash  (this file)  -- sequences of RM0399 §4.3.9/§4.3.10, state machine
//!        |
//!   FlashRegisters: mmio::FlashMmio (target) | model::FlashModel (host tests)
//! ```
//!
//! # What it guarantees
//!
//! - Only the region the board configures is ever addressed: every request is checked against
//!   it (`INVAL` otherwise) before a register is touched, so the Arduino bootloader, the kernel
//!   and the apps cannot be programmed or erased through this driver.
//! - Nothing at all when the option bytes give the region to someone else (an M4 that boots
//!   from it, or swapped banks that would make bank 2's register block erase the bootloader's
//!   bank): read when the driver is created, every operation then `NODEVICE` ([`options`]).
//! - Buffers are `SubSliceMut`s: the driver reads into and programs from the active window
//!   only, and hands the buffer back (completion or refusal) with that window unchanged.
//! - One operation at a time (`BUSY` otherwise, nothing changes). Reads complete through a
//!   deferred call (TRD3: no synchronous callbacks); programs and erases complete from the
//!   FLASH interrupt (EOP or an error flag), never by polling. The driver has no busy-wait.
//! - Program unit: one 256-bit flash word, typed [`FlashWord`] = `[u32; 8]`, written once per
//!   erase. Before each word the driver reads it back (ECC-guarded) and refuses (`RESERVE`)
//!   a word that is not blank, so the driver never programs a word twice.
//! - Every operation is bracketed by unlock and lock: the bank is locked again as soon as the
//!   hardware reports the end of each word program or sector erase, whatever the outcome.
//! - Every SR flag an operation raises is mapped to one [`FlashError`] and cleared via CCR.
//! - A double-bit ECC error during a read completes the read with `FAIL` instead of a bus
//!   fault (FAULTMASK + SCB->CCR.BFHFNMIGN around the copy, then SR.DBECCERR and ECC_FA are
//!   checked; see [`crate::cpu::copy_ignoring_bus_faults`]).
//! - After a program or erase the D-cache is invalidated over the range if it is on.
//!
//! # Errors (one internal error per status bit, one mapping to the HIL)
//!
//! | [`FlashError`] | source | `ErrorCode` |
//! |---|---|---|
//! | `WriteProtection` | SR.WRPERR | `RESERVE` |
//! | `ProgramSequence` | SR.PGSERR | `FAIL` |
//! | `Strobe` | SR.STRBERR | `FAIL` |
//! | `Inconsistency` | SR.INCERR | `FAIL` |
//! | `Operation` | SR.OPERR | `FAIL` |
//! | `ReadProtection` | SR.RDPERR | `FAIL` |
//! | `ReadSecure` | SR.RDSERR | `FAIL` |
//! | `EccDoubleBit` | SR.DBECCERR (+ ECC_FA) | `FAIL` |
//! | `CrcRead` | SR.CRCRDERR | `FAIL` |
//! | `Locked` | CR.LOCK still set after the key sequence | `FAIL` |
//! | `MissingEndOfOperation` | interrupt with neither EOP nor an error and nothing in flight | `FAIL` |
//! | `NotErased` | pre-program blank check failed | `RESERVE` |
//! | `OutOfRegion` | outside the region or misaligned | `INVAL` |
//! | `Refused` | the option bytes give the region to someone else ([`options`]) | `NODEVICE` |
//! | `Busy` | an operation in flight (driver or hardware) | `BUSY` |
//!
//! SR.SNECCERR (a single-bit error the hardware corrected) is not an error: it is cleared and
//! counted ([`Flash::corrected_ecc_errors`]).

use core::cell::Cell;

use kernel::deferred_call::{DeferredCall, DeferredCallClient};
use kernel::utilities::cells::{MapCell, OptionalCell};
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;
use nor_flash_hil::{check_range, Geometry, NorFlash, NorFlashClient};

pub mod mmio;
pub mod options;
pub mod regs;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;

use options::{OptionBytes, StoreRefusal};
use regs::{cr, sr, ECC_FA_MASK, KEY1, KEY2, WORD_BYTES};
pub use regs::{Bank, FlashRegisters, FlashWord, Reg, BANK2_BASE, FLASH_BASE, FLASH_END, SECTOR_SIZE};

/// The driver's internal errors: one per FLASH_SR status bit, plus its own refusals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashError {
    /// SR.WRPERR: the sector is write-protected (option bytes).
    WriteProtection,
    /// SR.PGSERR: the programming sequence was not followed.
    ProgramSequence,
    /// SR.STRBERR: a flash-word location was written twice before the word was committed.
    Strobe,
    /// SR.INCERR: the write buffer saw writes to two different flash words.
    Inconsistency,
    /// SR.OPERR: the program or erase itself failed.
    Operation,
    /// SR.RDPERR: read of a read-protected area.
    ReadProtection,
    /// SR.RDSERR: read of a secure-only area.
    ReadSecure,
    /// SR.DBECCERR: uncorrectable ECC error in the flash word at `addr` (from ECC_FA).
    EccDoubleBit {
        /// Absolute address of the failing flash word.
        addr: u32,
    },
    /// SR.CRCRDERR: a CRC read error.
    CrcRead,
    /// CR.LOCK stayed set after the unlock keys (the bank is locked until reset).
    Locked,
    /// The interrupt came with nothing in flight, no EOP and no error flag.
    MissingEndOfOperation,
    /// The flash word to program is not blank.
    NotErased,
    /// Address or length outside the region, or misaligned.
    OutOfRegion,
    /// Another operation is in flight.
    Busy,
    /// The option bytes give the region to someone else (the M4's boot code, or the bank
    /// holding the bootloader when the banks are swapped): nothing is done, ever.
    Refused(StoreRefusal),
}

impl FlashError {
    /// The first error flag set in `status`, in the order of the table above. SNECCERR is not
    /// an error and is ignored here. `ecc_addr` is the failing word for DBECCERR.
    pub const fn from_status(status: u32, ecc_addr: u32) -> Option<FlashError> {
        if status & sr::WRPERR != 0 {
            Some(FlashError::WriteProtection)
        } else if status & sr::PGSERR != 0 {
            Some(FlashError::ProgramSequence)
        } else if status & sr::STRBERR != 0 {
            Some(FlashError::Strobe)
        } else if status & sr::INCERR != 0 {
            Some(FlashError::Inconsistency)
        } else if status & sr::OPERR != 0 {
            Some(FlashError::Operation)
        } else if status & sr::RDPERR != 0 {
            Some(FlashError::ReadProtection)
        } else if status & sr::RDSERR != 0 {
            Some(FlashError::ReadSecure)
        } else if status & sr::DBECCERR != 0 {
            Some(FlashError::EccDoubleBit { addr: ecc_addr })
        } else if status & sr::CRCRDERR != 0 {
            Some(FlashError::CrcRead)
        } else {
            None
        }
    }

    /// The HIL error for this internal error (the one mapping; table in the module docs).
    pub const fn to_error_code(self) -> ErrorCode {
        match self {
            FlashError::WriteProtection | FlashError::NotErased => ErrorCode::RESERVE,
            FlashError::OutOfRegion => ErrorCode::INVAL,
            FlashError::Busy => ErrorCode::BUSY,
            FlashError::Refused(_) => ErrorCode::NODEVICE,
            FlashError::ProgramSequence
            | FlashError::Strobe
            | FlashError::Inconsistency
            | FlashError::Operation
            | FlashError::ReadProtection
            | FlashError::ReadSecure
            | FlashError::EccDoubleBit { .. }
            | FlashError::CrcRead
            | FlashError::Locked
            | FlashError::MissingEndOfOperation => ErrorCode::FAIL,
        }
    }
}

/// Why a region was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionError {
    /// Size zero.
    Empty,
    /// Base or size not a multiple of the sector size.
    Unaligned,
    /// Not inside the 2 MiB flash array.
    OutsideArray,
}

/// The part of the flash array the driver may touch: whole sectors, inside the array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashRegion {
    base: u32,
    size: u32,
}

impl FlashRegion {
    /// A region of `size` bytes at absolute address `base`, both sector-aligned.
    pub const fn new(base: u32, size: u32) -> Result<FlashRegion, RegionError> {
        if size == 0 {
            return Err(RegionError::Empty);
        }
        if !base.is_multiple_of(SECTOR_SIZE) || !size.is_multiple_of(SECTOR_SIZE) {
            return Err(RegionError::Unaligned);
        }
        match base.checked_add(size) {
            Some(end) if base >= FLASH_BASE && end <= FLASH_END => Ok(FlashRegion { base, size }),
            _ => Err(RegionError::OutsideArray),
        }
    }

    /// First absolute address.
    pub const fn base(&self) -> u32 {
        self.base
    }

    /// Size in bytes.
    pub const fn size(&self) -> u32 {
        self.size
    }

    /// One past the last absolute address.
    pub const fn end(&self) -> u32 {
        self.base + self.size
    }

    /// Whether the region shares any byte with `[start, end)`.
    pub const fn overlaps(&self, start: u32, end: u32) -> bool {
        start < self.end() && self.base < end
    }
}

/// Schedules the deferred completion of a read (TRD3). `kernel::deferred_call::DeferredCall`
/// on the target; the host tests use a flag they service themselves.
pub trait DeferredSignal {
    /// Requests one call of the driver's deferred handler.
    fn set(&self);
}

impl DeferredSignal for DeferredCall {
    fn set(&self) {
        DeferredCall::set(self)
    }
}

/// What the driver is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    /// A read was performed; its completion waits for the deferred call.
    ReadDone {
        len: usize,
        result: Result<(), FlashError>,
    },
    /// A zero-length program: nothing to do, completion waits for the deferred call.
    ProgramDone,
    /// Waiting for the end of the program of the word at `addr + done` (absolute);
    /// `len` bytes in all.
    Programming {
        addr: u32,
        len: usize,
        done: usize,
    },
    /// Waiting for the end of the erase of the sector at absolute address `addr`.
    Erasing {
        addr: u32,
    },
}

/// The FLASH driver for one region.
pub struct Flash<'a, R: FlashRegisters, D: DeferredSignal = DeferredCall> {
    regs: R,
    region: FlashRegion,
    options: OptionBytes,
    refusal: Option<StoreRefusal>,
    client: OptionalCell<&'a dyn NorFlashClient>,
    /// The lent buffer while an operation is in flight (window as lent).
    buffer: MapCell<SubSliceMut<'static, u8>>,
    state: Cell<State>,
    last_error: Cell<Option<FlashError>>,
    corrected: Cell<u32>,
    deferred: D,
}

impl<R: FlashRegisters> Flash<'_, R, DeferredCall> {
    /// A driver for `region` over `regs`, completing reads through a kernel deferred call.
    /// The board must register it (`DeferredCallClient::register`) and route the FLASH
    /// interrupt to [`Flash::handle_interrupt`].
    pub fn new(regs: R, region: FlashRegion) -> Self {
        Self::with_deferred(regs, region, DeferredCall::new())
    }
}

impl<R: FlashRegisters, D: DeferredSignal> Flash<'_, R, D> {
    /// A driver with its own deferred-completion mechanism (host tests). Reads the option bytes
    /// first: if they give the region to someone else, every operation is refused.
    pub fn with_deferred(regs: R, region: FlashRegion, deferred: D) -> Self {
        let options = OptionBytes::read(&regs);
        Flash {
            regs,
            region,
            options,
            refusal: options.check(region).err(),
            client: OptionalCell::empty(),
            buffer: MapCell::empty(),
            state: Cell::new(State::Idle),
            last_error: Cell::new(None),
            corrected: Cell::new(0),
            deferred,
        }
    }

    /// The region this driver owns.
    pub fn region(&self) -> FlashRegion {
        self.region
    }

    /// The option bytes read when the driver was created.
    pub fn option_bytes(&self) -> OptionBytes {
        self.options
    }

    /// Why every operation is refused, if it is (`options`).
    pub fn refusal(&self) -> Option<StoreRefusal> {
        self.refusal
    }

    /// Refuses everything when the option bytes give the region to someone else.
    fn check_allowed(&self) -> Result<(), FlashError> {
        match self.refusal {
            Some(r) => self.fail(FlashError::Refused(r)),
            None => Ok(()),
        }
    }

    /// The most recent error, for diagnostics (the client only sees the `ErrorCode`).
    pub fn last_error(&self) -> Option<FlashError> {
        self.last_error.get()
    }

    /// Single-bit ECC errors the hardware corrected during this driver's reads.
    pub fn corrected_ecc_errors(&self) -> u32 {
        self.corrected.get()
    }

    fn fail<T>(&self, e: FlashError) -> Result<T, FlashError> {
        self.last_error.set(Some(e));
        Err(e)
    }

    /// Refuses work while the driver or the bank's controller has something in flight.
    fn check_idle(&self, bank: Bank) -> Result<(), FlashError> {
        if self.state.get() != State::Idle {
            return self.fail(FlashError::Busy);
        }
        if self.regs.read(bank, Reg::Sr) & sr::IN_FLIGHT != 0 {
            return self.fail(FlashError::Busy);
        }
        Ok(())
    }

    /// Validates a request (offsets into the region) and returns its absolute address.
    fn absolute(&self, addr: u32, len: usize, unit: u32) -> Result<u32, FlashError> {
        let g = self.geometry_inner();
        match check_range(&g, addr, len, unit) {
            Ok(()) => Ok(self.region.base + addr),
            Err(_) => self.fail(FlashError::OutOfRegion),
        }
    }

    fn geometry_inner(&self) -> Geometry {
        Geometry {
            size: self.region.size,
            read_size: 1,
            program_size: WORD_BYTES,
            erase_size: SECTOR_SIZE,
            erase_value: 0xFF,
        }
    }

    /// Unlocks the bank's control register (RM0399 §4.5.1 "FLASH configuration protection":
    /// KEY1 then KEY2 to FLASH_KEYRx, only while CR.LOCK is set; a wrong sequence locks the
    /// register until reset).
    fn unlock(&self, bank: Bank) -> Result<(), FlashError> {
        if self.regs.read(bank, Reg::Cr) & cr::LOCK != 0 {
            self.regs.write(bank, Reg::Keyr, KEY1);
            self.regs.write(bank, Reg::Keyr, KEY2);
        }
        if self.regs.read(bank, Reg::Cr) & cr::LOCK != 0 {
            return self.fail(FlashError::Locked);
        }
        Ok(())
    }

    /// Ends a hardware operation: clears PG/SER/START/SNB and the interrupt enables, and sets
    /// LOCK in the same write (RM0399 §4.9.4: LOCK is set by software, cleared only by the
    /// key sequence).
    fn relock(&self, bank: Bank) {
        let c = self.regs.read(bank, Reg::Cr);
        if c & cr::LOCK != 0 {
            // Already locked: writes to a locked CR are ignored anyway.
            return;
        }
        let c = c & !(cr::PG | cr::SER | cr::BER | cr::START | cr::FW | cr::SNB_MASK | cr::OP_IRQS);
        self.regs.write(bank, Reg::Cr, c | cr::LOCK);
    }

    /// Copies `buf.len()` bytes from absolute `addr` with ECC faults suppressed, then checks
    /// and clears the read-side flags of each bank touched (RM0399 §4.3.12 "flash memory error
    /// protections", §4.7 error management; zephyr `flash_stm32h7x.c`).
    fn read_guarded(&self, addr: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        const READ_FLAGS: u32 = sr::RDPERR | sr::RDSERR | sr::SNECCERR | sr::DBECCERR;
        let mut done = 0usize;
        let mut outcome = Ok(());
        while done < buf.len() {
            let start = addr + done as u32;
            let bank = Bank::of(start);
            let bank_end = bank.base() + regs::BANK_SIZE;
            let chunk = core::cmp::min(buf.len() - done, (bank_end - start) as usize);
            // Flags left from earlier reads would be blamed on this one.
            self.regs.write(bank, Reg::Ccr, READ_FLAGS);
            self.regs.load_guarded(start, &mut buf[done..done + chunk]);
            let status = self.regs.read(bank, Reg::Sr) & READ_FLAGS;
            if status != 0 {
                let ecc_addr = if status & sr::DBECCERR != 0 {
                    // Drop whatever a failed line fill may have left in the D-cache, so a
                    // later read of this range goes to the array and sees the error again.
                    self.regs.invalidate_dcache(start, chunk as u32);
                    bank.base() + (self.regs.read(bank, Reg::EccFa) & ECC_FA_MASK) * WORD_BYTES
                } else {
                    0
                };
                self.regs.write(bank, Reg::Ccr, status);
                if status & sr::SNECCERR != 0 {
                    self.corrected.set(self.corrected.get().saturating_add(1));
                }
                if let Some(e) = FlashError::from_status(status, ecc_addr) {
                    if outcome.is_ok() {
                        outcome = self.fail(e);
                    }
                }
            }
            done += chunk;
        }
        outcome
    }

    /// Starts programming one flash word at absolute `addr` (RM0399 §4.3.9 "single write
    /// sequence"): blank check, clear old flags, unlock, CR.PG with PSIZE and the interrupt
    /// enables, DSB/ISB, eight 32-bit stores to the word, DSB/ISB. Completion: EOP or an error
    /// interrupt, handled by [`Flash::handle_interrupt`].
    fn start_word(&self, addr: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let bank = Bank::of(addr);
        if self.regs.read(bank, Reg::Sr) & sr::IN_FLIGHT != 0 {
            return self.fail(FlashError::Busy);
        }
        // Program-once rule (RM0399 §4.3.9: overwriting a non-virgin word may leave an
        // inconsistent ECC): only a blank, readable word may be programmed.
        let mut current = [0u8; WORD_BYTES as usize];
        match self.read_guarded(addr, &mut current) {
            Ok(()) if current.iter().all(|b| *b == 0xFF) => {}
            _ => return self.fail(FlashError::NotErased),
        }
        let mut word: FlashWord = [0; 8];
        let (chunks, _) = bytes.as_chunks::<4>();
        for (w, chunk) in word.iter_mut().zip(chunks) {
            *w = u32::from_le_bytes(*chunk);
        }

        self.regs.write(bank, Reg::Ccr, sr::CLEARABLE);
        self.unlock(bank)?;
        let c = self.regs.read(bank, Reg::Cr)
            & !(cr::SER | cr::BER | cr::START | cr::FW | cr::SNB_MASK | cr::PSIZE_MASK);
        self.regs.write(bank, Reg::Cr, c | cr::PG | cr::PSIZE_X32 | cr::OP_IRQS);
        // Barrier between setting PG and the data stores; without it the stores can reach
        // the controller first and raise PGSERR (embassy-rs PRs #1014, #2539; ST HAL).
        self.regs.barrier();
        for (i, w) in word.iter().enumerate() {
            self.regs.store_word(addr + 4 * i as u32, *w);
        }
        // Make the eight stores complete before anything else touches the controller.
        self.regs.barrier();
        Ok(())
    }

    /// Starts erasing the sector at absolute `addr` (RM0399 §4.3.10 "sector erase sequence"):
    /// clear old flags, unlock, CR.SER with SNB and PSIZE and the interrupt enables, then
    /// CR.START. Completion: EOP or an error interrupt.
    fn start_erase(&self, addr: u32) -> Result<(), FlashError> {
        let bank = Bank::of(addr);
        let sector = (addr - bank.base()) / SECTOR_SIZE;
        self.regs.write(bank, Reg::Ccr, sr::CLEARABLE);
        self.unlock(bank)?;
        let c = self.regs.read(bank, Reg::Cr)
            & !(cr::PG | cr::BER | cr::START | cr::FW | cr::SNB_MASK | cr::PSIZE_MASK);
        let c = c | cr::SER | (sector << cr::SNB_SHIFT) | cr::PSIZE_X32 | cr::OP_IRQS;
        self.regs.write(bank, Reg::Cr, c);
        self.regs.write(bank, Reg::Cr, c | cr::START);
        self.regs.barrier();
        Ok(())
    }

    /// Reads the bank's status after an interrupt. `None`: still running (spurious
    /// interrupt). Otherwise the outcome, with every flag seen cleared via CCR.
    fn take_completion(&self, bank: Bank) -> Option<Result<(), FlashError>> {
        const WRITE_ERRORS: u32 = sr::WRPERR | sr::PGSERR | sr::STRBERR | sr::INCERR | sr::OPERR;
        let status = self.regs.read(bank, Reg::Sr);
        let errors = status & WRITE_ERRORS;
        if errors == 0 && status & sr::EOP == 0 {
            if status & sr::IN_FLIGHT != 0 {
                return None;
            }
            self.regs.write(bank, Reg::Ccr, status & sr::CLEARABLE);
            return Some(self.fail(FlashError::MissingEndOfOperation));
        }
        self.regs.write(bank, Reg::Ccr, status & sr::CLEARABLE);
        match FlashError::from_status(errors, 0) {
            Some(e) => Some(self.fail(e)),
            None => Some(Ok(())),
        }
    }

    /// The FLASH interrupt (NVIC 4, both banks): finishes the word or sector in flight,
    /// re-locks the bank, and starts the next word or reports to the client.
    pub fn handle_interrupt(&self) {
        match self.state.get() {
            State::Programming { addr, len, done } => {
                let word_addr = addr + done as u32;
                let bank = Bank::of(word_addr);
                let Some(outcome) = self.take_completion(bank) else {
                    return;
                };
                self.relock(bank);
                self.regs.invalidate_dcache(word_addr, WORD_BYTES);
                let done = done + WORD_BYTES as usize;
                let outcome = outcome.and_then(|()| {
                    if done >= len {
                        return Ok(true);
                    }
                    let next = addr + done as u32;
                    // `len` is the window's length; a missing buffer or short window would
                    // be a driver bug, reported as an error rather than a panic.
                    let started = self
                        .buffer
                        .map(|buf| match buf.as_slice().get(done..done + WORD_BYTES as usize) {
                            Some(word) => self.start_word(next, word),
                            None => self.fail(FlashError::OutOfRegion),
                        })
                        .unwrap_or_else(|| self.fail(FlashError::MissingEndOfOperation));
                    if started.is_err() {
                        self.relock(Bank::of(next));
                    }
                    started.map(|()| false)
                });
                match outcome {
                    Ok(false) => self.state.set(State::Programming { addr, len, done }),
                    Ok(true) => self.complete_program(Ok(())),
                    Err(e) => self.complete_program(Err(e)),
                }
            }
            State::Erasing { addr } => {
                let bank = Bank::of(addr);
                let Some(outcome) = self.take_completion(bank) else {
                    return;
                };
                self.relock(bank);
                self.regs.invalidate_dcache(addr, SECTOR_SIZE);
                self.state.set(State::Idle);
                self.client.map(|c| c.erase_complete(outcome.map_err(FlashError::to_error_code)));
            }
            State::Idle | State::ReadDone { .. } | State::ProgramDone => {
                // Nothing of ours in flight: clear what the controller reports so the
                // interrupt does not repeat, and make sure both banks are locked.
                for bank in [Bank::One, Bank::Two] {
                    let status = self.regs.read(bank, Reg::Sr);
                    if status & sr::IN_FLIGHT == 0 && status & sr::CLEARABLE != 0 {
                        self.regs.write(bank, Reg::Ccr, status & sr::CLEARABLE);
                        self.relock(bank);
                    }
                }
            }
        }
    }

    fn complete_program(&self, result: Result<(), FlashError>) {
        self.state.set(State::Idle);
        if let Some(buf) = self.buffer.take() {
            self.client.map(move |c| c.program_complete(buf, result.map_err(FlashError::to_error_code)));
        }
    }

    /// The deferred call: delivers a read's (or an empty program's) completion.
    pub fn handle_deferred(&self) {
        match self.state.get() {
            State::ReadDone { result, .. } => {
                self.state.set(State::Idle);
                if let Some(buf) = self.buffer.take() {
                    self.client.map(move |c| c.read_complete(buf, result.map_err(FlashError::to_error_code)));
                }
            }
            State::ProgramDone => self.complete_program(Ok(())),
            State::Idle | State::Programming { .. } | State::Erasing { .. } => {}
        }
    }
}

impl<R: FlashRegisters + 'static> DeferredCallClient for Flash<'static, R, DeferredCall> {
    fn handle_deferred_call(&self) {
        self.handle_deferred();
    }

    fn register(&'static self) {
        self.deferred.register(self);
    }
}

impl<'a, R: FlashRegisters, D: DeferredSignal> NorFlash<'a> for Flash<'a, R, D> {
    fn set_client(&self, client: &'a dyn NorFlashClient) {
        self.client.set(client);
    }

    fn geometry(&self) -> Geometry {
        self.geometry_inner()
    }

    fn read(
        &self,
        addr: u32,
        mut buffer: SubSliceMut<'static, u8>,
    ) -> Result<(), (ErrorCode, SubSliceMut<'static, u8>)> {
        if let Err(e) = self.check_allowed() {
            return Err((e.to_error_code(), buffer));
        }
        if self.state.get() != State::Idle {
            self.last_error.set(Some(FlashError::Busy));
            return Err((ErrorCode::BUSY, buffer));
        }
        let len = buffer.len();
        let abs = match self.absolute(addr, len, 1) {
            Ok(a) => a,
            Err(e) => return Err((e.to_error_code(), buffer)),
        };
        let result = self.read_guarded(abs, buffer.as_mut_slice());
        self.buffer.put(buffer);
        self.state.set(State::ReadDone { len, result });
        self.deferred.set();
        Ok(())
    }

    fn program(
        &self,
        addr: u32,
        buffer: SubSliceMut<'static, u8>,
    ) -> Result<(), (ErrorCode, SubSliceMut<'static, u8>)> {
        if let Err(e) = self.check_allowed() {
            return Err((e.to_error_code(), buffer));
        }
        let len = buffer.len();
        let abs = match self.absolute(addr, len, WORD_BYTES) {
            Ok(a) => a,
            Err(e) => return Err((e.to_error_code(), buffer)),
        };
        if let Err(e) = self.check_idle(Bank::of(abs)) {
            return Err((e.to_error_code(), buffer));
        }
        if len == 0 {
            self.buffer.put(buffer);
            self.state.set(State::ProgramDone);
            self.deferred.set();
            return Ok(());
        }
        if let Err(e) = self.start_word(abs, &buffer.as_slice()[..WORD_BYTES as usize]) {
            self.relock(Bank::of(abs));
            return Err((e.to_error_code(), buffer));
        }
        self.buffer.put(buffer);
        self.state.set(State::Programming { addr: abs, len, done: 0 });
        Ok(())
    }

    fn erase(&self, addr: u32) -> Result<(), ErrorCode> {
        self.check_allowed().map_err(FlashError::to_error_code)?;
        let abs =
            self.absolute(addr, SECTOR_SIZE as usize, SECTOR_SIZE).map_err(FlashError::to_error_code)?;
        self.check_idle(Bank::of(abs)).map_err(FlashError::to_error_code)?;
        if let Err(e) = self.start_erase(abs) {
            self.relock(Bank::of(abs));
            return Err(e.to_error_code());
        }
        self.state.set(State::Erasing { addr: abs });
        Ok(())
    }
}
