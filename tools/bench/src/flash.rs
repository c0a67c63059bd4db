//! The one flash every store runs on, and the thin adapters that let each peer drive it.
//!
//! The device is [`flash_sim::FlashSim`] with the Portenta H7 geometry: 1.5 MiB as 12 sectors
//! of 128 KiB, 32-byte program-once flash words with ECC, and the simulator's STM32H7 time
//! model. Every store and workload gets a fresh one from [`target`]. The adapters add nothing
//! but the trait each library wants: the program unit stays 32 bytes, so a library that
//! writes part of a word and later another part of the same word programs it twice, which the
//! simulator counts as an ECC violation and turns into an uncorrectable word, exactly as the
//! STM32H7 does.

use std::cell::RefCell;
use std::rc::Rc;

use flash_sim::{FlashSim, Geometry, SimError};

/// Sector (erase unit) size.
pub const SECTOR: u32 = 131_072;
/// Number of sectors.
pub const SECTORS: u32 = 12;
/// Program unit (STM32H7 flash word).
pub const WORD: u32 = 32;
/// Flash size.
pub const SIZE: u32 = SECTOR * SECTORS;
/// Rated erase cycles per sector.
pub const ENDURANCE: u64 = 10_000;

/// The benchmark's flash geometry (the simulator's Portenta preset).
pub const GEOMETRY: Geometry = Geometry::PORTENTA;

/// A fresh, fully erased target flash with the default (STM32H7) time model.
pub fn target() -> FlashSim {
    debug_assert_eq!(GEOMETRY.size, SIZE);
    debug_assert_eq!(GEOMETRY.erase_size, SECTOR);
    debug_assert_eq!(GEOMETRY.program_size, WORD);
    FlashSim::new(GEOMETRY)
}

/// Program unit of the reference flash for ekv (its largest write alignment).
pub const EKV_REFERENCE_UNIT: u32 = 4;

/// A *reference* device that is not the target: the same sectors, but 4-byte program units
/// (program time scaled to 12.5 us per unit by the simulator). Only the opt-in `ekv-4b` row
/// uses it, to show ekv's own costs on a flash it supports.
pub fn ekv_reference() -> FlashSim {
    FlashSim::new(Geometry { program_size: EKV_REFERENCE_UNIT, ..GEOMETRY })
}

/// How a write of whole bytes is turned into whole 32-byte word programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Widen {
    /// Pad the word with the erased value (what a driver does for a write that only
    /// guarantees each *byte* is written once, like ekv's).
    Pad,
    /// Read the word, merge the new bytes, program it back (what TicKV's `FlashController`
    /// documentation asks for when writes are smaller than the program unit).
    ReadModifyWrite,
}

/// Programs `data` at `addr`, widened to the program units (32-byte words on the target)
/// that cover it. A word that was already programmed is programmed again: the simulator
/// counts an ECC violation and the word becomes unreadable, as on the real part.
pub fn program_widened(sim: &mut FlashSim, addr: u32, data: &[u8], how: Widen) -> Result<(), SimError> {
    if data.is_empty() {
        return Ok(());
    }
    let unit = sim.geometry().program_size;
    let start = addr / unit * unit;
    let end = (addr + data.len() as u32).div_ceil(unit) * unit;
    let mut buf = vec![0xFF; (end - start) as usize];
    if how == Widen::ReadModifyWrite {
        for (i, word) in buf.chunks_mut(unit as usize).enumerate() {
            let at = start + i as u32 * unit;
            if !sim.is_unit_erased(at) && sim.read(at, word).is_err() {
                // An unreadable word: merge onto erased bytes (the program still hits it).
                word.fill(0xFF);
            }
        }
    }
    let off = (addr - start) as usize;
    buf[off..off + data.len()].copy_from_slice(data);
    sim.program(start, &buf)
}

// ------------------------------------------------------------------------------------------
// Request counting: the engine's flash, wrapped.

/// Flash requests counted by [`Counting`]: one per call, whatever its outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Requests {
    /// Read requests.
    pub reads: u64,
    /// Bytes they asked for.
    pub bytes_read: u64,
    /// Program requests.
    pub programs: u64,
    /// Bytes they asked to program.
    pub bytes_programmed: u64,
    /// Erase requests.
    pub erases: u64,
}

impl Requests {
    /// Read, program and erase requests together.
    pub fn total(&self) -> u64 {
        self.reads + self.programs + self.erases
    }

    /// The requests made since `earlier` (a snapshot of the same counter).
    pub fn since(&self, earlier: &Requests) -> Requests {
        Requests {
            reads: self.reads - earlier.reads,
            bytes_read: self.bytes_read - earlier.bytes_read,
            programs: self.programs - earlier.programs,
            bytes_programmed: self.bytes_programmed - earlier.bytes_programmed,
            erases: self.erases - earlier.erases,
        }
    }
}

/// A `NorFlash` that counts the requests made of the flash inside it and passes each on
/// unchanged. The engine's blocking driver makes one call per engine request, so these are
/// the engine's flash requests: on the board, each is one split-phase operation of the
/// NOR-flash HIL (an interrupt and a callback).
pub struct Counting<F> {
    /// The flash.
    pub inner: F,
    /// Requests so far.
    pub requests: Requests,
}

impl<F> Counting<F> {
    /// `inner`, with the counters at zero.
    pub fn new(inner: F) -> Self {
        Counting { inner, requests: Requests::default() }
    }
}

impl<F: embedded_storage::nor_flash::ErrorType> embedded_storage::nor_flash::ErrorType for Counting<F> {
    type Error = F::Error;
}

impl<F: embedded_storage::nor_flash::ReadNorFlash> embedded_storage::nor_flash::ReadNorFlash for Counting<F> {
    const READ_SIZE: usize = F::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), F::Error> {
        self.requests.reads += 1;
        self.requests.bytes_read += bytes.len() as u64;
        self.inner.read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
}

impl<F: embedded_storage::nor_flash::NorFlash> embedded_storage::nor_flash::NorFlash for Counting<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), F::Error> {
        self.requests.erases += 1;
        self.inner.erase(from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), F::Error> {
        self.requests.programs += 1;
        self.requests.bytes_programmed += bytes.len() as u64;
        self.inner.write(offset, bytes)
    }
}

// ------------------------------------------------------------------------------------------
// sequential-storage: embedded-storage-async NorFlash with the real units.

/// The simulator as an async `NorFlash` with WRITE_SIZE = 32 and ERASE_SIZE = 131072.
pub struct SsFlash {
    /// The device.
    pub sim: FlashSim,
}

impl embedded_storage_async::nor_flash::ErrorType for SsFlash {
    type Error = SimError;
}

impl embedded_storage_async::nor_flash::ReadNorFlash for SsFlash {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        self.sim.read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        SIZE as usize
    }
}

impl embedded_storage_async::nor_flash::NorFlash for SsFlash {
    const WRITE_SIZE: usize = WORD as usize;
    const ERASE_SIZE: usize = SECTOR as usize;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        self.sim.erase(from, to.saturating_sub(from))
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        self.sim.program(offset, bytes)
    }
}

// ------------------------------------------------------------------------------------------
// ekv: its own `Flash` trait, pages of at most 64 KiB.

/// Size of an ekv page: the largest its on-flash format allows (chunk lengths are u16).
pub const EKV_PAGE: u32 = 65_536;

/// ekv's view of the flash: page `p` is the first 64 KiB of sector `p`, so erasing a page
/// erases exactly one sector and no other page; the upper half of every sector stays unused.
pub struct EkvFlash {
    /// The device, shared with the benchmark so it can read the counters.
    pub sim: Rc<RefCell<FlashSim>>,
}

impl EkvFlash {
    fn addr(page: ekv::flash::PageID, offset: usize) -> u32 {
        page.index() as u32 * SECTOR + offset as u32
    }
}

impl ekv::flash::Flash for EkvFlash {
    type Error = SimError;

    fn page_count(&self) -> usize {
        SECTORS as usize
    }

    async fn erase(&mut self, page_id: ekv::flash::PageID) -> Result<(), SimError> {
        self.sim.borrow_mut().erase(Self::addr(page_id, 0), SECTOR)
    }

    async fn read(
        &mut self,
        page_id: ekv::flash::PageID,
        offset: usize,
        data: &mut [u8],
    ) -> Result<(), SimError> {
        self.sim.borrow_mut().read(Self::addr(page_id, offset), data)
    }

    async fn write(
        &mut self,
        page_id: ekv::flash::PageID,
        offset: usize,
        data: &[u8],
    ) -> Result<(), SimError> {
        program_widened(&mut self.sim.borrow_mut(), Self::addr(page_id, offset), data, Widen::Pad)
    }
}

// ------------------------------------------------------------------------------------------
// TicKV: `FlashController<S>` with S = the erase unit.

/// TicKV's region size: its const generic must be the erase unit, one 128 KiB sector.
pub const TICKV_REGION: usize = SECTOR as usize;

/// TicKV's flash controller over the simulator.
pub struct TickvFlash {
    /// The device.
    pub sim: RefCell<FlashSim>,
}

impl tickv::flash_controller::FlashController<TICKV_REGION> for TickvFlash {
    fn read_region(
        &self,
        region_number: usize,
        buf: &mut [u8; TICKV_REGION],
    ) -> Result<(), tickv::error_codes::ErrorCode> {
        self.sim
            .borrow_mut()
            .read(region_number as u32 * SECTOR, buf)
            .map_err(|_| tickv::error_codes::ErrorCode::ReadFail)
    }

    fn write(&self, address: usize, buf: &[u8]) -> Result<(), tickv::error_codes::ErrorCode> {
        program_widened(&mut self.sim.borrow_mut(), address as u32, buf, Widen::ReadModifyWrite)
            .map_err(|_| tickv::error_codes::ErrorCode::WriteFail)
    }

    fn erase_region(&self, region_number: usize) -> Result<(), tickv::error_codes::ErrorCode> {
        self.sim
            .borrow_mut()
            .erase(region_number as u32 * SECTOR, SECTOR)
            .map_err(|_| tickv::error_codes::ErrorCode::EraseFail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widened_writes_hit_the_program_once_rule() {
        let mut sim = target();
        program_widened(&mut sim, 4, &[1, 2, 3, 4], Widen::Pad).unwrap();
        assert_eq!(sim.stats().double_programs, 0);
        let mut b = [0u8; 8];
        sim.read(0, &mut b).unwrap();
        assert_eq!(b, [0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4]);
        // A second write into the same 32-byte word violates program-once.
        program_widened(&mut sim, 8, &[5], Widen::ReadModifyWrite).unwrap();
        assert_eq!(sim.stats().double_programs, 1);
        assert!(sim.read(0, &mut b).is_err());
        // Whole, fresh words are fine.
        program_widened(&mut sim, 64, &[7; 40], Widen::Pad).unwrap();
        assert_eq!(sim.stats().double_programs, 1);
    }
}
