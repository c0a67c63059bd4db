//! A model of the STM32H7 internal flash (and of a generic NOR flash) that
//! behaves like the real part, for testing a flash key-value store (the Mbed
//! TDBStore format) on the host. Every test, the power-cut campaign and the
//! benchmarks of the store run against [`FlashSim`]: it enforces the
//! program-once rule with ECC, tears programs and erases when power is cut in
//! the middle of them, fails every access after a cut until [`FlashSim::power_on`],
//! and counts reads, programs, erases per sector, violations and modelled time.
//!
//! # The flash contract
//!
//! The address space is `0..size`, split by a [`Geometry`] (the `flash-geometry` crate's,
//! shared with the store engine and Tock's NOR-flash HIL) into:
//!
//! * **read units** (`read_size` bytes): reads must start and end on them
//!   (1 byte on all the built-in geometries);
//! * **program units** (`program_size` bytes, aligned: the STM32H7 "flash
//!   word" of 32 bytes with its ECC): programs must cover whole units;
//! * **sectors** (`erase_size` bytes, aligned): erases cover whole sectors.
//!
//! Each program unit is in one of three [`UnitState`]s:
//!
//! * **erased**: every byte is `erase_value`; the unit may be programmed once;
//! * **programmed**: it holds the bytes last programmed. Programming *stores*
//!   the bytes (it is not an AND), and a unit programmed with all-`erase_value`
//!   data is programmed all the same;
//! * **ECC-bad**: its ECC no longer matches, and every read touching it fails
//!   with [`SimError::Ecc`]. Its bytes in [`FlashSim::image`] are garbage.
//!
//! Rules:
//!
//! 1. A unit may be programmed **once per erase**. Programming a unit that is
//!    not erased (even with identical data, even with `erase_value`) is a
//!    violation: the bits are ANDed in as NOR cells do, the unit becomes
//!    ECC-bad and [`Stats::double_programs`] is incremented for each such
//!    unit. In strict mode ([`FlashSim::set_strict`]) the whole call is
//!    instead rejected with [`SimError::DoubleProgram`] and nothing changes.
//! 2. Erasing a sector makes every unit in it erased (clearing ECC-bad) and
//!    increments its entry in [`Stats::erases_per_sector`].
//! 3. Power cuts are scheduled by [`FlashSim::cut_power_at`] on the index of a
//!    *mutating operation*: a `program` or `erase` call that passed the bounds
//!    and alignment checks while powered and is not zero-length. The counter
//!    starts at 0 at creation and at [`FlashSim::reset_op_counter`].
//!    * [`Cut::Before`]: the call changes nothing and returns
//!      [`SimError::PowerLost`].
//!    * [`Cut::Halfway`] on a program of `n` units: units `[0, n/2)` are
//!      programmed (rule 1 applies), unit `n/2` becomes ECC-bad with some of
//!      its bits programmed (deterministic garbage), later units are untouched.
//!      A one-unit program thus leaves its unit ECC-bad.
//!    * [`Cut::Halfway`] on an erase of `n` sectors: sectors `[0, n/2)` are
//!      erased, in sector `n/2` each unit independently ends up erased,
//!      unchanged or ECC-bad, later sectors are untouched. The choice comes from
//!      a PRNG seeded by [`FlashSim::set_seed`], the op index and the address,
//!      so a campaign is reproducible.
//!    * After the cut every `read`, `program` and `erase` returns
//!      [`SimError::PowerLost`] until [`FlashSim::power_on`]; the contents stay
//!      as the cut left them.
//! 4. Errors are checked in this order: power lost, bounds, alignment. A call
//!    rejected by any of them changes nothing and counts nothing.
//!
//! Modelled time ([`TimeModel`]) is added to [`Stats::time_ns`] for every
//! program unit programmed, every sector erased and every byte read.
//!
//! # Example
//!
//! ```
//! use flash_sim::{Cut, FlashSim, Geometry, SimError};
//!
//! let mut flash = FlashSim::new(Geometry::SMALL); // 8-byte program units
//! flash.program(0, &[0x42; 16]).unwrap();
//! flash.program(8, &[0x42; 8]).unwrap(); // second program: a violation
//! let mut buf = [0u8; 8];
//! assert_eq!(flash.read(8, &mut buf), Err(SimError::Ecc { addr: 8 }));
//! assert_eq!(flash.stats().double_programs, 1);
//!
//! // Power-cut campaign step: tear the next mutating op, then reboot.
//! flash.cut_power_at(flash.mutating_ops(), Cut::Halfway);
//! assert_eq!(flash.erase(0, 4096), Err(SimError::PowerLost));
//! assert_eq!(flash.read(0, &mut buf), Err(SimError::PowerLost));
//! flash.power_on();
//! let saved = flash.image().to_vec(); // persist; FlashSim::from_image to reload
//! # assert_eq!(saved.len(), 32768);
//! ```
//!
//! # embedded-storage
//!
//! [`FlashSim`] implements `embedded_storage::nor_flash::{ReadNorFlash,
//! NorFlash}` with `READ_SIZE = WRITE_SIZE = ERASE_SIZE = 1`. Those constants
//! are only minimums, because they cannot depend on a runtime geometry: the
//! true granularity is enforced at run time from the [`Geometry`], which users
//! must take from [`FlashSim::geometry`]. `MultiwriteNorFlash` is deliberately
//! not implemented: the STM32H7 cannot program a unit twice.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use core::fmt;
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};

pub use flash_geometry::{Geometry, UnitError};

/// Why [`check_geometry`] refuses a [`Geometry`] (and so [`FlashSim::from_image`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeometryError {
    /// The read, program or erase unit is refused by [`Geometry::check_units`].
    Units(UnitError),
    /// `size` is zero.
    ZeroSize,
    /// `size` is not a multiple of `erase_size`.
    SizeNotMultipleOfErase,
}

impl From<UnitError> for GeometryError {
    fn from(e: UnitError) -> Self {
        GeometryError::Units(e)
    }
}

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Units(e) => write!(f, "geometry: {e}"),
            Self::ZeroSize => f.write_str("geometry: size is zero"),
            Self::SizeNotMultipleOfErase => f.write_str("geometry: size % erase_size != 0"),
        }
    }
}

impl std::error::Error for GeometryError {}

/// Checks that the simulator can model `g`: the units every flash user shares
/// ([`Geometry::check_units`]: non-zero powers of two, each dividing the next), and a
/// non-zero `size` of whole sectors.
pub fn check_geometry(g: &Geometry) -> Result<(), GeometryError> {
    g.check_units()?;
    if g.size == 0 {
        return Err(GeometryError::ZeroSize);
    }
    if !g.size.is_multiple_of(g.erase_size) {
        return Err(GeometryError::SizeNotMultipleOfErase);
    }
    Ok(())
}

/// Modelled duration of flash operations, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeModel {
    /// Time to program one program unit.
    pub program_unit_ns: u64,
    /// Time to erase one sector.
    pub erase_sector_ns: u64,
    /// Time to read one byte.
    pub read_byte_ns: u64,
}

impl TimeModel {
    /// The STM32H7 figures scaled to `g`:
    ///
    /// * program: 100 µs per 32 bytes, scaled linearly with `program_size`
    ///   and rounded up (so never below 3.125 µs, for 1-byte units);
    /// * erase: 1.1 s per 128 KiB sector, scaled linearly with `erase_size`
    ///   (34.4 ms for a 4 KiB sector), rounded up;
    /// * read: 1 ns per byte (memory-mapped reads are nearly free; this keeps
    ///   read volume visible in benchmarks).
    pub fn for_geometry(g: &Geometry) -> TimeModel {
        TimeModel {
            program_unit_ns: (100_000 * u64::from(g.program_size)).div_ceil(32),
            erase_sector_ns: (1_100_000_000 * u64::from(g.erase_size)).div_ceil(131_072),
            read_byte_ns: 1,
        }
    }
}

impl Default for TimeModel {
    /// [`TimeModel::for_geometry`] of [`Geometry::PORTENTA`].
    fn default() -> Self {
        TimeModel::for_geometry(&Geometry::PORTENTA)
    }
}

/// Counters kept by a [`FlashSim`] since creation or [`FlashSim::reset_stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// `read` calls that passed the checks.
    pub reads: u64,
    /// Bytes read by those calls.
    pub bytes_read: u64,
    /// Program calls that reached the flash (torn ones included).
    pub programs: u64,
    /// Bytes of the program units reached (a torn unit included).
    pub bytes_programmed: u64,
    /// Erase calls that reached the flash (torn ones included).
    pub erases: u64,
    /// Erases of each sector (a torn erase counts for the torn sector).
    pub erases_per_sector: Vec<u32>,
    /// Program units programmed while not erased (rule 1 violations).
    pub double_programs: u64,
    /// Reads that failed because they touched an ECC-bad unit.
    pub ecc_reads: u64,
    /// Modelled time spent, see [`TimeModel`].
    pub time_ns: u64,
}

/// Where a scheduled power cut falls within the operation it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cut {
    /// Before the operation starts: it changes nothing.
    Before,
    /// In the middle of the operation: it is torn (see the crate docs).
    Halfway,
}

/// State of one program unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnitState {
    /// Erased: may be programmed.
    Erased,
    /// Programmed since the last erase.
    Programmed,
    /// ECC does not match: reads touching it fail.
    EccBad,
}

/// Kind of a mutating operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// A `program` call.
    Program,
    /// An `erase` call.
    Erase,
}

/// A mutating operation, as recorded by the op log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Op {
    /// Its index (see [`FlashSim::cut_power_at`]).
    pub index: u64,
    /// Program or erase.
    pub kind: OpKind,
    /// Start address.
    pub addr: u32,
    /// Length in bytes.
    pub len: u32,
    /// The power cut that hit it, if any.
    pub cut: Option<Cut>,
}

/// Errors of [`FlashSim`] operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SimError {
    /// The range is not inside the flash.
    OutOfBounds,
    /// Address or length is not a multiple of the required granularity.
    NotAligned,
    /// The read touched an ECC-bad unit; `addr` is the start of the first one.
    Ecc {
        /// Start address of the first ECC-bad program unit touched.
        addr: u32,
    },
    /// Power was cut: the operation had the cut's partial effect, and all
    /// operations fail until [`FlashSim::power_on`].
    PowerLost,
    /// Strict mode only: the program would have hit the non-erased unit at
    /// `addr`; nothing was changed.
    DoubleProgram {
        /// Start address of the first non-erased program unit.
        addr: u32,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfBounds => f.write_str("flash access out of bounds"),
            Self::NotAligned => f.write_str("flash access not aligned"),
            Self::Ecc { addr } => write!(f, "ECC error in the unit at {addr:#x}"),
            Self::PowerLost => f.write_str("power lost"),
            Self::DoubleProgram { addr } => write!(f, "unit at {addr:#x} is not erased"),
        }
    }
}

impl std::error::Error for SimError {}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::NotAligned => NorFlashErrorKind::NotAligned,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// Why [`FlashSim::from_image`] refused an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The geometry is invalid.
    Geometry(GeometryError),
    /// The image length is not the geometry's size.
    Size {
        /// `geometry.size`.
        expected: u32,
        /// The image length.
        actual: usize,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Geometry(e) => e.fmt(f),
            Self::Size { expected, actual } => {
                write!(f, "image is {actual} bytes, geometry needs {expected}")
            }
        }
    }
}

impl std::error::Error for ImageError {}

/// SplitMix64: the one tiny deterministic PRNG of the host tools (torn contents here; the
/// benchmark and power-cut workloads too), so every run is reproducible from its seed.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`; the modulo bias does not matter for these uses).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo + 1) as u64) as usize
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }

    /// The generator for the torn contents of one unit or sector of one operation.
    fn for_tear(seed: u64, index: u64, addr: u32) -> Self {
        let mut r = SplitMix64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(addr) << 17));
        r.next_u64();
        r
    }

    fn byte(&mut self) -> u8 {
        self.next_u64().to_le_bytes()[0]
    }
}

/// The simulated flash device. See the crate docs for its contract.
#[derive(Clone)]
pub struct FlashSim {
    geometry: Geometry,
    time: TimeModel,
    data: Vec<u8>,
    units: Vec<UnitState>,
    stats: Stats,
    strict: bool,
    powered: bool,
    ops: u64,
    pending_cut: Option<(u64, Cut)>,
    seed: u64,
    log_enabled: bool,
    log: Vec<Op>,
}

impl fmt::Debug for FlashSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlashSim")
            .field("geometry", &self.geometry)
            .field("powered", &self.powered)
            .field("mutating_ops", &self.ops)
            .field("pending_cut", &self.pending_cut)
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

impl FlashSim {
    /// A fully erased flash with `TimeModel::for_geometry(&geometry)`.
    ///
    /// # Panics
    /// If [`check_geometry`] refuses `geometry`.
    pub fn new(geometry: Geometry) -> Self {
        let image = vec![geometry.erase_value; geometry.size as usize];
        match Self::from_image(geometry, image) {
            Ok(sim) => sim,
            Err(e) => panic!("FlashSim::new: {e}"),
        }
    }

    /// A flash holding `image` (`image.len() == geometry.size`), e.g. one saved
    /// from [`FlashSim::image`]. A program unit whose bytes are all
    /// `erase_value` is erased, any other is programmed; none is ECC-bad.
    pub fn from_image(geometry: Geometry, image: Vec<u8>) -> Result<Self, ImageError> {
        check_geometry(&geometry).map_err(ImageError::Geometry)?;
        if image.len() != geometry.size as usize {
            return Err(ImageError::Size { expected: geometry.size, actual: image.len() });
        }
        let units = image
            .chunks(geometry.program_size as usize)
            .map(|u| {
                if u.iter().all(|&b| b == geometry.erase_value) {
                    UnitState::Erased
                } else {
                    UnitState::Programmed
                }
            })
            .collect();
        Ok(FlashSim {
            geometry,
            time: TimeModel::for_geometry(&geometry),
            data: image,
            units,
            stats: Stats { erases_per_sector: vec![0; geometry.sector_count() as usize], ..Stats::default() },
            strict: false,
            powered: true,
            ops: 0,
            pending_cut: None,
            seed: 0x5EED_F1A5_0000_0001,
            log_enabled: false,
            log: Vec::new(),
        })
    }

    /// The raw contents (ECC-bad units show whatever garbage they hold).
    pub fn image(&self) -> &[u8] {
        &self.data
    }

    /// Consumes the simulator and returns its raw contents.
    pub fn into_image(self) -> Vec<u8> {
        self.data
    }

    /// The geometry; the true granularity of every operation.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Reads `buf.len()` bytes at `addr` (multiples of `read_size`).
    ///
    /// Fails with [`SimError::Ecc`] if any program unit touched is ECC-bad; `buf`
    /// then holds the raw bytes, which must not be trusted.
    pub fn read(&mut self, addr: u32, buf: &mut [u8]) -> Result<(), SimError> {
        self.check(addr, buf.len(), self.geometry.read_size)?;
        let start = addr as usize;
        buf.copy_from_slice(&self.data[start..start + buf.len()]);
        let len = buf.len() as u64;
        self.stats.reads += 1;
        self.stats.bytes_read += len;
        self.stats.time_ns += len * self.time.read_byte_ns;
        if buf.is_empty() {
            return Ok(());
        }
        let ps = self.geometry.program_size;
        let first = addr / ps;
        let last = (addr + buf.len() as u32 - 1) / ps;
        if let Some(u) = (first..=last).find(|&u| self.units[u as usize] == UnitState::EccBad) {
            self.stats.ecc_reads += 1;
            return Err(SimError::Ecc { addr: u * ps });
        }
        Ok(())
    }

    /// Programs `data` at `addr`; both must be multiples of `program_size`.
    /// Each unit must be erased (see the crate docs for what happens if not).
    pub fn program(&mut self, addr: u32, data: &[u8]) -> Result<(), SimError> {
        let ps = self.geometry.program_size as usize;
        self.check(addr, data.len(), ps as u32)?;
        if data.is_empty() {
            return Ok(());
        }
        let (index, cut) = self.begin(OpKind::Program, addr, data.len() as u32);
        if cut == Some(Cut::Before) {
            return Err(SimError::PowerLost);
        }
        let first = addr as usize / ps;
        let n = data.len() / ps;
        if self.strict {
            if let Some(u) = (first..first + n).find(|&u| self.units[u] != UnitState::Erased) {
                return Err(match cut {
                    Some(_) => SimError::PowerLost,
                    None => SimError::DoubleProgram { addr: (u * ps) as u32 },
                });
            }
        }
        let done = if cut.is_some() { n / 2 } else { n };
        for (i, chunk) in data.chunks(ps).take(done).enumerate() {
            let u = first + i;
            let cells = &mut self.data[u * ps..(u + 1) * ps];
            if self.units[u] == UnitState::Erased {
                cells.copy_from_slice(chunk);
                self.units[u] = UnitState::Programmed;
            } else {
                cells.iter_mut().zip(chunk).for_each(|(c, d)| *c &= d);
                self.units[u] = UnitState::EccBad;
                self.stats.double_programs += 1;
            }
        }
        let mut reached = done;
        if cut.is_some() {
            // Torn unit: each bit to be cleared may or may not have been.
            let u = first + done;
            let mut rng = SplitMix64::for_tear(self.seed, index, (u * ps) as u32);
            let chunk = &data[done * ps..(done + 1) * ps];
            for (c, d) in self.data[u * ps..(u + 1) * ps].iter_mut().zip(chunk) {
                *c &= d | rng.byte();
            }
            self.units[u] = UnitState::EccBad;
            reached += 1;
        }
        self.stats.programs += 1;
        self.stats.bytes_programmed += (reached * ps) as u64;
        self.stats.time_ns += reached as u64 * self.time.program_unit_ns;
        match cut {
            Some(_) => Err(SimError::PowerLost),
            None => Ok(()),
        }
    }

    /// Erases the sectors covering `[addr, addr + len)`; both must be
    /// multiples of `erase_size`.
    pub fn erase(&mut self, addr: u32, len: u32) -> Result<(), SimError> {
        let es = self.geometry.erase_size;
        self.check(addr, len as usize, es)?;
        if len == 0 {
            return Ok(());
        }
        let (index, cut) = self.begin(OpKind::Erase, addr, len);
        if cut == Some(Cut::Before) {
            return Err(SimError::PowerLost);
        }
        let first = addr / es;
        let n = len / es;
        let done = if cut.is_some() { n / 2 } else { n };
        for s in first..first + done {
            self.erase_sector(s);
        }
        if cut.is_some() {
            self.tear_sector(first + done, index);
        }
        let reached = if cut.is_some() { done + 1 } else { done };
        self.stats.erases += 1;
        self.stats.time_ns += u64::from(reached) * self.time.erase_sector_ns;
        match cut {
            Some(_) => Err(SimError::PowerLost),
            None => Ok(()),
        }
    }

    fn erase_sector(&mut self, s: u32) {
        let (es, ps) = (self.geometry.erase_size as usize, self.geometry.program_size as usize);
        let s = s as usize;
        self.data[s * es..(s + 1) * es].fill(self.geometry.erase_value);
        self.units[s * es / ps..(s + 1) * es / ps].fill(UnitState::Erased);
        self.stats.erases_per_sector[s] += 1;
    }

    /// Torn erase of sector `s`: each unit erased, unchanged or ECC-bad.
    fn tear_sector(&mut self, s: u32, index: u64) {
        let (es, ps) = (self.geometry.erase_size as usize, self.geometry.program_size as usize);
        let s = s as usize;
        let mut rng = SplitMix64::for_tear(self.seed, index, (s * es) as u32);
        for u in s * es / ps..(s + 1) * es / ps {
            let cells = &mut self.data[u * ps..(u + 1) * ps];
            match rng.next_u64() % 3 {
                0 => {
                    cells.fill(self.geometry.erase_value);
                    self.units[u] = UnitState::Erased;
                }
                1 => {}
                _ => {
                    // Some bits already went back to the erased state.
                    let ev = self.geometry.erase_value;
                    for c in cells.iter_mut() {
                        let mask = rng.byte();
                        *c = (*c & !mask) | (ev & mask);
                    }
                    self.units[u] = UnitState::EccBad;
                }
            }
        }
        self.stats.erases_per_sector[s] += 1;
    }

    /// Power, bounds and alignment checks shared by every operation.
    fn check(&self, addr: u32, len: usize, align: u32) -> Result<(), SimError> {
        if !self.powered {
            return Err(SimError::PowerLost);
        }
        if u64::from(addr) + len as u64 > u64::from(self.geometry.size) {
            return Err(SimError::OutOfBounds);
        }
        if !addr.is_multiple_of(align) || !(len as u64).is_multiple_of(u64::from(align)) {
            return Err(SimError::NotAligned);
        }
        Ok(())
    }

    /// Counts a mutating op, logs it and fires the scheduled cut if it is due.
    fn begin(&mut self, kind: OpKind, addr: u32, len: u32) -> (u64, Option<Cut>) {
        let index = self.ops;
        self.ops += 1;
        let cut = match self.pending_cut {
            Some((i, how)) if i == index => {
                self.pending_cut = None;
                self.powered = false;
                Some(how)
            }
            _ => None,
        };
        if self.log_enabled {
            self.log.push(Op { index, kind, addr, len, cut });
        }
        (index, cut)
    }

    /// Schedules a power cut during mutating op number `op_index` (counted from
    /// 0, see the crate docs). Replaces any cut already scheduled; an index
    /// already passed never fires.
    pub fn cut_power_at(&mut self, op_index: u64, how: Cut) {
        self.pending_cut = Some((op_index, how));
    }

    /// The scheduled cut, if any, as `(op_index, how)`.
    pub fn pending_cut(&self) -> Option<(u64, Cut)> {
        self.pending_cut
    }

    /// Cancels the scheduled cut, if any.
    pub fn cancel_cut(&mut self) {
        self.pending_cut = None;
    }

    /// "Reboot": clears the lost-power state. Contents, counters and the op
    /// log stay as they are.
    pub fn power_on(&mut self) {
        self.powered = true;
    }

    /// False between a power cut and the next [`FlashSim::power_on`].
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// Mutating ops (program/erase calls) since creation or the last
    /// [`FlashSim::reset_op_counter`].
    pub fn mutating_ops(&self) -> u64 {
        self.ops
    }

    /// Restarts the mutating-op count at 0 (the scheduled cut is kept).
    pub fn reset_op_counter(&mut self) {
        self.ops = 0;
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Zeroes the counters.
    pub fn reset_stats(&mut self) {
        self.stats =
            Stats { erases_per_sector: vec![0; self.geometry.sector_count() as usize], ..Stats::default() };
    }

    /// Strict mode: a program touching a non-erased unit returns
    /// [`SimError::DoubleProgram`] and changes nothing. Off by default, where it
    /// corrupts the unit (ECC-bad) and counts a violation, like the real part.
    pub fn set_strict(&mut self, reject_double_program: bool) {
        self.strict = reject_double_program;
    }

    /// Replaces the time model (it applies to later operations).
    pub fn set_time_model(&mut self, t: TimeModel) {
        self.time = t;
    }

    /// The time model in use.
    pub fn time_model(&self) -> TimeModel {
        self.time
    }

    /// Seeds the PRNG used for torn contents (mixed with op index and address).
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// State of the program unit containing `addr`, `None` if out of bounds.
    pub fn unit_state(&self, addr: u32) -> Option<UnitState> {
        self.units.get((addr / self.geometry.program_size) as usize).copied()
    }

    /// True if the program unit containing `addr` is erased.
    pub fn is_unit_erased(&self, addr: u32) -> bool {
        self.unit_state(addr) == Some(UnitState::Erased)
    }

    /// True if the program unit containing `addr` is ECC-bad.
    pub fn is_unit_ecc_bad(&self, addr: u32) -> bool {
        self.unit_state(addr) == Some(UnitState::EccBad)
    }

    /// Fault injection: makes the program unit containing `addr` ECC-bad
    /// (contents unchanged). Out-of-bounds addresses are ignored.
    pub fn mark_ecc_bad(&mut self, addr: u32) {
        if let Some(u) = self.units.get_mut((addr / self.geometry.program_size) as usize) {
            *u = UnitState::EccBad;
        }
    }

    /// Starts (`true`) or stops recording mutating ops; see [`FlashSim::op_log`].
    pub fn enable_op_log(&mut self, enabled: bool) {
        self.log_enabled = enabled;
    }

    /// The recorded mutating ops, oldest first.
    pub fn op_log(&self) -> &[Op] {
        &self.log
    }

    /// Empties the op log.
    pub fn clear_op_log(&mut self) {
        self.log.clear();
    }
}

impl ErrorType for FlashSim {
    type Error = SimError;
}

impl ReadNorFlash for FlashSim {
    /// A minimum: the real granularity is `geometry().read_size`.
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        FlashSim::read(self, offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.geometry.size as usize
    }
}

impl NorFlash for FlashSim {
    /// A minimum: the real granularity is `geometry().program_size`.
    const WRITE_SIZE: usize = 1;
    /// A minimum: the real granularity is `geometry().erase_size`.
    const ERASE_SIZE: usize = 1;

    /// Erases `[from, to)`, which must be sector aligned.
    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        if from > to {
            return Err(if self.powered { SimError::OutOfBounds } else { SimError::PowerLost });
        }
        FlashSim::erase(self, from, to - from)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        self.program(offset, bytes)
    }
}
