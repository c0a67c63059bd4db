//! The store's state machines: mount, lookups, appends, compaction, maintenance.
//!
//! Design, in the order a write meets it:
//! - **One request at a time.** Every operation is a tree of small procedures (find a key,
//!   stream a record, check a sector is blank, append a record, compact) that each wait for
//!   one [`Request`]. States are named after what they wait for.
//! - **Program once.** The engine programs a unit only where it knows the flash is erased:
//!   `erased_until` (active area) and `standby_clean` (standby area) are watermarks below
//!   which every unit is known erased. Unknown sectors are read first and erased only when
//!   dirty, so re-mounting never wastes erase cycles.
//! - **Commit by header.** A record's key and data are programmed first and its header last,
//!   with the magic in the last unit written, so a cut anywhere leaves the old state. A
//!   compaction commits by the new area's master record header, likewise.
//! - **Torn tails are never written over.** Mount reads the rest of the sector after the
//!   last valid record; if it is not blank, the next write first compacts into the standby
//!   area (Mbed writes over it and loses that value, format notes §9).
//! - **Erase ahead.** [`Op::Maintain`] does one bounded piece of background work (erase one
//!   standby sector, pre-erase the next active sector, or compact early), so a user
//!   operation rarely waits for an erase and never for a whole area's.

use crate::crc::Crc32;
use crate::format::{
    self, align_up, Header, KeyError, Layout, RecordFormat, DELETE_FLAG, MASTER_DATA_LEN, MASTER_KEY,
    MAX_KEY_LEN, RESERVED_LEN, USER_FLAGS,
};
use crate::geometry::{Geometry, GeometryError};
use crate::index::{Index, IndexEntry};

/// Tuning knobs with safe defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Mount formats a region whose master records are both blank (a fresh device). A region
    /// holding anything else is never touched without an explicit [`Op::Format`].
    pub format_if_blank: bool,
    /// [`Op::Maintain`] compacts early once the active area has fewer free bytes than this
    /// (and the standby area is already erased). 0 disables early compaction.
    pub compact_below: u32,
    /// Record layout for stores this engine formats. Mounting follows what the master
    /// record says, whatever this is.
    pub record_format: RecordFormat,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { format_if_blank: true, compact_below: 0, record_format: RecordFormat::Mbed }
    }
}

/// One thing the driver must do before calling [`Store::resume`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Read `len` bytes of flash at `addr` into [`Store::io_buf`].
    Read {
        /// Byte address within the store's region.
        addr: u32,
        /// Length.
        len: u32,
    },
    /// Program [`Store::io_buf`] (whole program units) at `addr`.
    Program {
        /// Byte address within the store's region.
        addr: u32,
        /// Length.
        len: u32,
    },
    /// Erase the one erase unit `[addr, addr + len)`.
    Erase {
        /// Byte address within the store's region.
        addr: u32,
        /// Length (one erase unit).
        len: u32,
    },
    /// Copy bytes `[offset, offset + len)` of the operation's input into [`Store::io_buf`].
    Fill {
        /// Offset into the input.
        offset: u32,
        /// Length.
        len: u32,
    },
    /// Copy [`Store::io_buf`] to bytes `[offset, offset + len)` of the operation's output.
    Deliver {
        /// Offset into the output.
        offset: u32,
        /// Length.
        len: u32,
    },
}

/// Which kind of request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoKind {
    /// Flash read.
    Read,
    /// Flash program.
    Program,
    /// Flash erase.
    Erase,
    /// Copy from the operation's input.
    Fill,
    /// Copy to the operation's output.
    Deliver,
}

/// How a driver reports a failed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// Uncorrectable data (an ECC error on the STM32H7).
    Ecc,
    /// The region is write-protected or outside the driver's range.
    Protected,
    /// Power was lost (simulation) or the device is gone.
    PowerLost,
    /// Anything else.
    Other,
}

/// What the driver does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Perform this request, then call [`Store::resume`].
    Io(Request),
    /// The operation finished.
    Done(Result<Outcome, Error>),
}

/// Everything that can go wrong, as a type. No operation panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The key is empty, too long, has a forbidden byte or is `"TDBS"`.
    InvalidKey(KeyError),
    /// Flags outside [`format::USER_FLAGS`].
    InvalidFlags,
    /// The value can never fit in an area.
    ValueTooLarge,
    /// Not enough space, even after compaction.
    Full,
    /// The RAM index has no free entry for another key.
    IndexFull,
    /// No such key (or no reserved data).
    NotFound,
    /// The key is write-once, or reserved data is already set.
    WriteProtected,
    /// Another operation is in flight, or an incremental set is open.
    Busy,
    /// The store is not mounted (or must be mounted again after a failed compaction).
    NotMounted,
    /// Neither area holds a master record, and the region is not blank: not a TDBStore, or
    /// badly damaged. Nothing was changed; [`Op::Format`] makes it a store.
    Foreign,
    /// A record's checksum does not match its contents.
    Corrupt,
    /// An incremental set got more or fewer bytes than declared, or no incremental set is open.
    SizeMismatch,
    /// A driver request failed.
    Io(IoKind, IoError),
}

/// A position in the iteration order (descending key hash, as Mbed iterates).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pos: u32,
    last_hash: Option<u32>,
}

/// What a finished operation produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Mount or format finished.
    Mounted(MountInfo),
    /// A value: `copied` bytes were delivered, out of `size`.
    Value {
        /// Full value length.
        size: u32,
        /// Stored flags.
        flags: u32,
        /// Bytes delivered (at most the output length).
        copied: u32,
    },
    /// Size and flags of a key.
    Info {
        /// Value length.
        size: u32,
        /// Stored flags.
        flags: u32,
    },
    /// The key (`copied` of its `len` bytes delivered) and where to continue.
    Key {
        /// Key length.
        len: u32,
        /// Bytes delivered.
        copied: u32,
        /// Pass to the next [`Op::Next`].
        next: Cursor,
    },
    /// Iteration finished.
    End,
    /// Reserved data: `len` bytes, `copied` delivered.
    Reserved {
        /// Length.
        len: u32,
        /// Bytes delivered.
        copied: u32,
    },
    /// Maintenance step; `more` is true while there is more background work.
    Maintained {
        /// More work is pending.
        more: bool,
    },
    /// The write, remove, reset or compaction finished.
    Done,
}

/// What mount found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountInfo {
    /// Active area (0 or 1).
    pub active_area: u8,
    /// Its master-record version.
    pub version: u16,
    /// Live keys.
    pub keys: u32,
    /// Offset of the log's end in the active area.
    pub free_offset: u32,
    /// The region was blank and has been formatted.
    pub formatted: bool,
    /// A torn write was found after the log; the next write compacts first.
    pub torn_tail: bool,
}

/// A snapshot of the store's state, for tools and benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreInfo {
    /// The geometry.
    pub geometry: Geometry,
    /// Area size.
    pub area_size: u32,
    /// Whether mounted.
    pub mounted: bool,
    /// Active area.
    pub active_area: u8,
    /// Master-record version of the active area.
    pub version: u16,
    /// Live keys.
    pub keys: u32,
    /// Index capacity.
    pub key_capacity: u32,
    /// End of the log in the active area.
    pub free_offset: u32,
    /// Bytes occupied by live records.
    pub live_bytes: u32,
    /// Active area known erased from here on.
    pub erased_until: u32,
    /// Standby area known erased up to here.
    pub standby_clean: u32,
    /// A compaction is due before the next append.
    pub torn_tail: bool,
    /// Length of the reserved data, if set.
    pub reserved_len: Option<u8>,
    /// Compactions since this store was created.
    pub compactions: u32,
}

/// An operation. Keys and prefixes are copied at [`Store::start`]; values travel through
/// [`Request::Fill`] and [`Request::Deliver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// Find the active area and build the index.
    Mount,
    /// Make the region an empty store (erases; `full` erases every sector, else only the
    /// area heads). Reserved data is dropped.
    Format {
        /// Erase every sector now instead of on demand.
        full: bool,
    },
    /// Read a value into the output (up to `out_len` bytes).
    Get {
        /// Key.
        key: &'a [u8],
        /// Output capacity.
        out_len: u32,
    },
    /// Size and flags of a key.
    GetInfo {
        /// Key.
        key: &'a [u8],
    },
    /// Write `len` input bytes as the value of `key`.
    Set {
        /// Key.
        key: &'a [u8],
        /// Value length (the input's length).
        len: u32,
        /// User flags.
        flags: u32,
    },
    /// Begin an incremental set of a `len`-byte value; mutations are refused until it ends.
    SetStart {
        /// Key.
        key: &'a [u8],
        /// Final value length.
        len: u32,
        /// User flags.
        flags: u32,
    },
    /// Append `len` input bytes to the open incremental set.
    SetData {
        /// Input length.
        len: u32,
    },
    /// Commit the open incremental set.
    SetFinalize,
    /// Abandon the open incremental set (nothing becomes visible).
    SetAbort,
    /// Remove a key.
    Remove {
        /// Key.
        key: &'a [u8],
    },
    /// Remove every key (reserved data stays), atomically.
    Reset,
    /// The next key starting with `prefix` after `cursor`; its bytes are delivered.
    Next {
        /// Key prefix (may be empty).
        prefix: &'a [u8],
        /// Where to continue ([`Cursor::default`] to start).
        cursor: Cursor,
        /// Output capacity for the key.
        out_len: u32,
    },
    /// Set the write-once reserved data (`len` <= 64 input bytes).
    ReservedSet {
        /// Input length.
        len: u32,
    },
    /// Read the reserved data.
    ReservedGet {
        /// Output capacity.
        out_len: u32,
    },
    /// One bounded step of background work; call while idle until `more` is false.
    Maintain,
    /// Compact the live records into the standby area now.
    Compact,
}

// ------------------------------------------------------------------------------------------
// The engine core: state shared by every procedure.

type Poll<T> = core::task::Poll<Result<T, Error>>;
use core::task::Poll::{Pending, Ready};

/// Propagates `Pending` and errors from a sub-procedure.
macro_rules! ready {
    ($e:expr) => {
        match $e {
            Pending => return Pending,
            Ready(Err(e)) => return Ready(Err(e)),
            Ready(Ok(v)) => v,
        }
    };
}

/// How a procedure is entered: fresh, or with the result of the request it made.
#[derive(Clone, Copy, Debug)]
enum Ev {
    Start,
    Io(Result<(), IoError>),
}

impl Ev {
    /// The result of the awaited request (`Start` counts as success for re-entry).
    fn result(self, kind: IoKind) -> Result<(), Error> {
        match self {
            Ev::Start => Ok(()),
            Ev::Io(r) => r.map_err(|e| Error::Io(kind, e)),
        }
    }
}

struct Core<'w> {
    geo: Geometry,
    lay: Layout,
    opts: StoreOptions,
    /// Usable work-buffer length: a multiple of the program size.
    chunk: u32,
    work: &'w mut [u8],
    index: Index<'w>,
    key: [u8; MAX_KEY_LEN],
    key_len: usize,
    pending: Option<Request>,
    io_at: usize,
    io_len: usize,
    mounted: bool,
    active: u8,
    version: u16,
    free: u32,
    erased_until: u32,
    standby_clean: u32,
    torn_tail: bool,
    live_bytes: u32,
    reserved: [u8; RESERVED_LEN],
    reserved_len: Option<u8>,
    compactions: u32,
    /// The program request being split into runs of non-blank units.
    prog: Option<ProgramJob>,
    /// The last request completed without any I/O (a program of blank units only).
    instant: bool,
}

/// A program request in progress, in runs (see `Core::program`).
#[derive(Clone, Copy, Debug)]
struct ProgramJob {
    addr: u32,
    at: usize,
    len: u32,
    next: u32,
}

/// Which area a procedure works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Area {
    Active,
    Standby,
}

impl<'w> Core<'w> {
    fn base(&self, area: Area) -> u32 {
        let a = match area {
            Area::Active => self.active,
            Area::Standby => 1 - self.active,
        };
        a as u32 * self.lay.area_size
    }

    fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }

    fn request<T>(&mut self, req: Request, at: usize, len: usize) -> Poll<T> {
        self.pending = Some(req);
        self.io_at = at;
        self.io_len = len;
        Pending
    }

    /// Where in the work buffer the byte at area offset `off` lands when [`Core::read`]
    /// reads it: reads start on a read unit, so a read of an unaligned offset (a compact
    /// record's key, the middle of a record) brings `skew` bytes before it along.
    fn skew(&self, off: u32) -> usize {
        (off % self.geo.read_size) as usize
    }

    /// The only way the engine reads flash: `[off, off + len)` of an area, widened to whole
    /// read units (the start rounded down, the end rounded up, clamped to the area end, which
    /// is itself a whole number of read units). The bytes asked for are then
    /// [`Core::got`]`(off, len)`. Records are program-unit aligned and the read unit divides
    /// the program unit, so the widening never reaches past the end of the record being read
    /// (into a torn, unreadable unit behind it). The work buffer holds the widened read: every
    /// caller reads at most `chunk` bytes, and the buffer has a hold area of at least one
    /// program unit (>= one read unit) behind the chunk.
    fn read<T>(&mut self, area: Area, off: u32, len: u32) -> Poll<T> {
        let r = self.geo.read_size;
        let skew = off % r;
        let from = off - skew;
        let len = align_up(skew + len, r).min(self.lay.area_size.saturating_sub(from));
        let addr = self.base(area) + from;
        self.request(Request::Read { addr, len }, 0, len as usize)
    }

    /// The bytes `[off, off + len)` of the last [`Core::read`] of `off` (shorter if the read
    /// was clamped at the area end or failed to cover them).
    fn got(&self, off: u32, len: u32) -> &[u8] {
        let s = self.skew(off).min(self.io_len);
        let e = (s + len as usize).min(self.io_len);
        &self.work[s..e]
    }

    /// Programs `work[at..at + len]` at `off`, skipping program units that hold only the
    /// erase value: they read the same erased, and a unit programmed with the erase value
    /// would look erased to every later blank check and be programmed twice. The procedures
    /// see one completion for the whole range.
    fn program<T>(&mut self, area: Area, off: u32, at: usize, len: u32) -> Poll<T> {
        self.prog = Some(ProgramJob { addr: self.base(area) + off, at, len, next: 0 });
        if !self.next_run() {
            self.instant = true;
        }
        Pending
    }

    /// Issues the next run of non-blank units of the program job; false when none is left.
    fn next_run(&mut self) -> bool {
        let Some(mut job) = self.prog.take() else { return false };
        let p = self.geo.program_size;
        let blank = |c: &Self, pos: u32| {
            let s = job.at + pos as usize;
            c.is_blank(&c.work[s..s + p as usize])
        };
        let mut start = job.next;
        while start < job.len && blank(self, start) {
            start += p;
        }
        if start >= job.len {
            return false;
        }
        let mut end = start;
        while end < job.len && !blank(self, end) {
            end += p;
        }
        job.next = end;
        self.prog = Some(job);
        self.pending = Some(Request::Program { addr: job.addr + start, len: end - start });
        self.io_at = job.at + start as usize;
        self.io_len = (end - start) as usize;
        true
    }

    fn erase<T>(&mut self, area: Area, off: u32) -> Poll<T> {
        let addr = self.base(area) + off;
        self.request(Request::Erase { addr, len: self.geo.erase_size }, 0, 0)
    }

    fn fill<T>(&mut self, offset: u32, at: usize, len: u32) -> Poll<T> {
        self.request(Request::Fill { offset, len }, at, len as usize)
    }

    fn deliver<T>(&mut self, offset: u32, at: usize, len: u32) -> Poll<T> {
        self.request(Request::Deliver { offset, len }, at, len as usize)
    }

    /// How far an area must be erased before a record ending at `end` is written. A log
    /// that ends exactly on a sector boundary also needs the next sector erased: otherwise
    /// the mount scan would run on into whatever an older generation left there.
    fn room_for(&self, end: u32) -> u32 {
        if end.is_multiple_of(self.geo.erase_size) && end < self.lay.area_size {
            end + 1
        } else {
            end
        }
    }

    fn sector_end(&self, off: u32) -> u32 {
        ((off / self.geo.erase_size) + 1) * self.geo.erase_size
    }

    fn is_blank(&self, bytes: &[u8]) -> bool {
        bytes.iter().all(|&b| b == self.geo.erase_value)
    }

    fn watermark(&mut self, area: Area) -> &mut u32 {
        match area {
            Area::Active => &mut self.erased_until,
            Area::Standby => &mut self.standby_clean,
        }
    }
}

// ------------------------------------------------------------------------------------------
// Leaf procedures.

/// Looks up the current key: the index position and header of its live record. Each
/// candidate (same hash) is read header first, then its key only if the lengths match, so a
/// read never runs past a short record into whatever follows it (a torn, unreadable unit).
struct Find {
    pos: usize,
    hi: usize,
    stage: FindStage,
}

#[derive(Clone, Copy, Debug)]
enum FindStage {
    Start,
    AwaitHeader,
    AwaitKey(Header),
}

/// Result of [`Find`].
#[derive(Clone, Copy, Debug)]
enum Found {
    Yes { pos: usize, header: Header, size: u32 },
    No,
}

impl Find {
    fn new() -> Self {
        Find { pos: 0, hi: 0, stage: FindStage::Start }
    }

    fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<Found> {
        let off = |c: &Core, pos| c.index.get(pos).map_or(0, |e: IndexEntry| e.offset);
        let kl = c.key_len;
        match self.stage {
            FindStage::Start => {
                let (lo, hi) = c.index.hash_range(format::key_hash(c.key()));
                self.pos = lo;
                self.hi = hi;
            }
            FindStage::AwaitHeader => {
                ev.result(IoKind::Read)?;
                match c.lay.parse_header(c.got(off(c, self.pos), c.lay.header_len())) {
                    Some(h)
                        if h.key_len as usize == kl
                            && c.lay.record_extent(off(c, self.pos), &h).is_some() =>
                    {
                        self.stage = FindStage::AwaitKey(h);
                        let at = off(c, self.pos) + c.lay.body_offset;
                        return c.read(Area::Active, at, kl as u32);
                    }
                    _ => self.pos += 1,
                }
            }
            FindStage::AwaitKey(h) => {
                ev.result(IoKind::Read)?;
                if c.got(off(c, self.pos) + c.lay.body_offset, kl as u32) == c.key() {
                    let size = c.lay.record_extent(off(c, self.pos), &h).unwrap_or(0);
                    return Ready(Ok(Found::Yes { pos: self.pos, header: h, size }));
                }
                self.pos += 1;
            }
        }
        if self.pos >= self.hi {
            return Ready(Ok(Found::No));
        }
        self.stage = FindStage::AwaitHeader;
        let hl = c.lay.header_len();
        c.read(Area::Active, off(c, self.pos), hl)
    }
}

/// What [`ReadRecord`] does with the record's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadMode {
    /// Check the CRC; copy the key into `Core::key`.
    Scan,
    /// Check the CRC only.
    Verify,
    /// Check the CRC and deliver up to `out_len` data bytes.
    Get { out_len: u32 },
}

/// Streams one record through the work buffer, checking its CRC.
struct ReadRecord {
    area: Area,
    off: u32,
    mode: ReadMode,
    st: RrState,
    header: Header,
    size: u32,
    crc: Crc32,
    pos: u32,
    end: u32,
    delivered: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RrState {
    Start,
    AwaitHeader,
    AwaitBody { len: u32 },
    AwaitDeliver { len: u32 },
}

impl ReadRecord {
    fn new(area: Area, off: u32, mode: ReadMode) -> Self {
        ReadRecord {
            area,
            off,
            mode,
            st: RrState::Start,
            header: Header { flags: 0, key_len: 0, data_len: 0, crc: 0 },
            size: 0,
            crc: Crc32::new(),
            pos: 0,
            end: 0,
            delivered: 0,
        }
    }

    fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<(Header, u32)> {
        let hs = c.lay.body_offset;
        match self.st {
            RrState::Start => {
                self.st = RrState::AwaitHeader;
                return c.read(self.area, self.off, c.lay.header_len());
            }
            RrState::AwaitHeader => {
                ev.result(IoKind::Read)?;
                let h = c.lay.parse_header(c.got(self.off, c.lay.header_len())).ok_or(Error::Corrupt)?;
                self.size = c.lay.record_extent(self.off, &h).ok_or(Error::Corrupt)?;
                self.header = h;
                self.crc = c.lay.crc_start(&h);
                self.pos = hs;
                self.end = hs + h.key_len as u32 + h.data_len;
                if self.mode == ReadMode::Scan {
                    c.key_len = h.key_len as usize;
                }
            }
            RrState::AwaitBody { len } => {
                ev.result(IoKind::Read)?;
                let skew = c.skew(self.off + self.pos);
                let bytes = c.got(self.off + self.pos, len);
                if bytes.len() != len as usize {
                    return Ready(Err(Error::Corrupt));
                }
                self.crc.update(bytes);
                let key_end = hs + self.header.key_len as u32;
                if self.mode == ReadMode::Scan && self.pos < key_end {
                    let n = (key_end - self.pos).min(len) as usize;
                    let k0 = (self.pos - hs) as usize;
                    c.key[k0..k0 + n].copy_from_slice(&c.work[skew..skew + n]);
                }
                let start = self.pos;
                self.pos += len;
                if let ReadMode::Get { out_len } = self.mode {
                    // Deliver the part of this chunk that is data and fits the output.
                    let d0 = start.max(key_end);
                    if d0 < self.pos && self.delivered < out_len {
                        let n = (self.pos - d0).min(out_len - self.delivered);
                        let at = skew + (d0 - start) as usize;
                        self.st = RrState::AwaitDeliver { len: n };
                        return c.deliver(self.delivered, at, n);
                    }
                }
            }
            RrState::AwaitDeliver { len } => {
                ev.result(IoKind::Deliver)?;
                self.delivered += len;
            }
        }
        // Next chunk, or done.
        if self.pos >= self.end {
            return if self.crc.value() == self.header.crc {
                Ready(Ok((self.header, self.size)))
            } else {
                Ready(Err(Error::Corrupt))
            };
        }
        let len = (self.end - self.pos).min(c.chunk);
        self.st = RrState::AwaitBody { len };
        // The read covers whole read units; only the `len` record bytes in it reach the CRC.
        c.read(self.area, self.off + self.pos, len)
    }
}

/// Reads `[from, to)` of an area; reports whether it is blank. With `erase_sector`, erases
/// that sector when it is not (the range must then be the whole sector).
struct BlankCheck {
    area: Area,
    pos: u32,
    to: u32,
    erase_sector: Option<u32>,
    st: BcState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BcState {
    Start,
    AwaitRead { len: u32 },
    AwaitErase,
}

impl BlankCheck {
    fn new(area: Area, from: u32, to: u32, erase_sector: Option<u32>) -> Self {
        BlankCheck { area, pos: from, to, erase_sector, st: BcState::Start }
    }

    /// `Ok(true)`: blank (or erased now); `Ok(false)`: dirty and not erased.
    fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<bool> {
        match self.st {
            BcState::Start => {}
            BcState::AwaitRead { len } => {
                // An unreadable unit is as dirty as a programmed one.
                let clean = matches!(ev, Ev::Io(Ok(()))) && c.is_blank(c.got(self.pos, len));
                if let (Ev::Io(Err(IoError::PowerLost)), _) = (ev, clean) {
                    return Ready(Err(Error::Io(IoKind::Read, IoError::PowerLost)));
                }
                if clean {
                    self.pos += len;
                } else {
                    return match self.erase_sector {
                        Some(s) => {
                            self.st = BcState::AwaitErase;
                            c.erase(self.area, s)
                        }
                        None => Ready(Ok(false)),
                    };
                }
            }
            BcState::AwaitErase => {
                ev.result(IoKind::Erase)?;
                return Ready(Ok(true));
            }
        }
        if self.pos >= self.to {
            return Ready(Ok(true));
        }
        let len = (self.to - self.pos).min(c.chunk);
        self.st = BcState::AwaitRead { len };
        c.read(self.area, self.pos, len)
    }
}

/// Makes sure `[watermark, upto)` of an area is erased, one sector at a time.
struct EnsureErased {
    area: Area,
    upto: u32,
    check: Option<BlankCheck>,
}

impl EnsureErased {
    fn new(area: Area, upto: u32) -> Self {
        EnsureErased { area, upto, check: None }
    }

    fn poll(&mut self, c: &mut Core, mut ev: Ev) -> Poll<()> {
        loop {
            if let Some(check) = &mut self.check {
                ready!(check.poll(c, ev));
                self.check = None;
                let w = *c.watermark(self.area);
                let next = c.sector_end(w).min(c.lay.area_size);
                *c.watermark(self.area) = next;
                ev = Ev::Start;
            }
            let w = *c.watermark(self.area);
            if w >= self.upto {
                return Ready(Ok(()));
            }
            // The watermark is always sector-aligned here.
            let end = c.sector_end(w).min(c.lay.area_size);
            self.check = Some(BlankCheck::new(self.area, w, end, Some(w)));
        }
    }
}

/// Programs a record's head (`span` bytes from `work[at..]` to area offset `off`) with the
/// magic's unit last, so a cut inside a multi-unit head leaves no magic behind.
struct ProgramHead {
    area: Area,
    off: u32,
    at: usize,
    span: u32,
    st: u8,
}

impl ProgramHead {
    fn new(area: Area, off: u32, at: usize, span: u32) -> Self {
        ProgramHead { area, off, at, span, st: 0 }
    }

    fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<()> {
        let magic_span = align_up(4, c.geo.program_size).min(self.span);
        match self.st {
            0 if magic_span < self.span => {
                self.st = 1;
                let rest = self.span - magic_span;
                c.program(self.area, self.off + magic_span, self.at + magic_span as usize, rest)
            }
            0 | 1 => {
                if self.st == 1 {
                    ev.result(IoKind::Program)?;
                }
                self.st = 2;
                c.program(self.area, self.off, self.at, magic_span)
            }
            _ => {
                ev.result(IoKind::Program)?;
                Ready(Ok(()))
            }
        }
    }
}

/// Writes a master record (always in Mbed's format, with the store's record format as its
/// revision) with `version` at an area's master offset: body first, then the header, which
/// makes the area valid.
struct WriteMaster {
    area: Area,
    head: Option<ProgramHead>,
}

impl WriteMaster {
    fn new(area: Area) -> Self {
        WriteMaster { area, head: None }
    }

    fn poll(&mut self, c: &mut Core, version: u16, ev: Ev) -> Poll<()> {
        let lay = c.lay;
        let hs = lay.header_span as usize;
        if let Some(h) = &mut self.head {
            return h.poll(c, ev);
        }
        if let Ev::Io(_) = ev {
            ev.result(IoKind::Program)?;
            self.head = Some(ProgramHead::new(self.area, lay.master_offset, 0, hs as u32));
            return self.poll(c, version, Ev::Start);
        }
        let mut data = [0u8; MASTER_DATA_LEN as usize];
        data[..2].copy_from_slice(&version.to_le_bytes());
        data[2..4].copy_from_slice(&lay.format.revision().to_le_bytes());
        let mut h = Header { flags: 0, key_len: 4, data_len: MASTER_DATA_LEN, crc: 0 };
        let mut crc = h.crc_start();
        crc.update(MASTER_KEY);
        crc.update(&data);
        h.crc = crc.value();
        let ms = lay.master_size as usize;
        let ev_byte = c.geo.erase_value;
        let w = &mut c.work[..ms];
        w.fill(ev_byte);
        h.encode(&mut w[..24]);
        w[hs..hs + 4].copy_from_slice(MASTER_KEY);
        w[hs + 4..hs + 12].copy_from_slice(&data);
        c.program(self.area, lay.master_offset + hs as u32, hs, (ms - hs) as u32)
    }
}

// ------------------------------------------------------------------------------------------
// Appending a record.

/// An append in progress. Kept between [`Op::SetStart`], [`Op::SetData`] and
/// [`Op::SetFinalize`] for incremental sets; other operations are refused meanwhile because
/// the staged bytes live in the work buffer.
///
/// The work buffer stages record bytes from record offset `wrec`. The record's head (the
/// units holding its header) is programmed last: while `wrec == 0` it sits at the front of
/// the work buffer; after the first full chunk it moves to the hold area behind the chunk.
#[derive(Clone, Copy, Debug)]
struct Append {
    header: Header,
    crc: Crc32,
    base: u32,
    size: u32,
    /// Record offset of `work[0]`.
    wrec: u32,
    /// Bytes staged at the front of the work buffer.
    staged: u32,
    /// Value bytes still expected.
    remaining: u32,
    /// Something was programmed (the tail is dirty if we abandon).
    programmed: bool,
}

impl Append {
    fn begin(c: &mut Core, flags: u32, len: u32, size: u32) -> Append {
        let kl = c.key_len;
        let header = Header { flags, key_len: kl as u16, data_len: len, crc: 0 };
        let mut crc = c.lay.crc_start(&header);
        crc.update(c.key());
        let bo = c.lay.body_offset as usize;
        let ev = c.geo.erase_value;
        c.work[..bo].fill(ev);
        c.work[bo..bo + kl].copy_from_slice(&c.key[..kl]);
        Append {
            header,
            crc,
            base: c.free,
            size,
            wrec: 0,
            staged: (bo + kl) as u32,
            remaining: len,
            programmed: false,
        }
    }
}

/// Feeds `input` bytes into an [`Append`] and, when `finalize`, commits it.
struct Feed {
    input: u32,
    taken: u32,
    finalize: bool,
    st: FeedState,
    head: Option<ProgramHead>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FeedState {
    Next,
    AwaitFill { len: u32 },
    AwaitChunk,
    AwaitTail,
    Head,
}

impl Feed {
    fn new(input: u32, finalize: bool) -> Self {
        Feed { input, taken: 0, finalize, st: FeedState::Next, head: None }
    }

    fn poll(&mut self, c: &mut Core, a: &mut Append, mut ev: Ev) -> Poll<()> {
        let hs = c.lay.head_span;
        loop {
            match self.st {
                FeedState::Next => {}
                FeedState::AwaitFill { len } => {
                    ev.result(IoKind::Fill)?;
                    let s = a.staged as usize;
                    a.crc.update(&c.work[s..s + len as usize]);
                    a.staged += len;
                    self.taken += len;
                    a.remaining -= len;
                }
                FeedState::AwaitChunk => {
                    ev.result(IoKind::Program)?;
                    a.programmed = true;
                    a.wrec += c.chunk;
                    a.staged = 0;
                }
                FeedState::AwaitTail => {
                    ev.result(IoKind::Program)?;
                    a.programmed = true;
                    self.start_head(c, a);
                    ev = Ev::Start;
                    continue;
                }
                FeedState::Head => {
                    let h = self.head.as_mut().ok_or(Error::NotMounted)?;
                    ready!(h.poll(c, ev));
                    return Ready(Ok(()));
                }
            }
            ev = Ev::Start;
            let p = c.geo.program_size;
            if a.staged == c.chunk {
                self.st = FeedState::AwaitChunk;
                if a.wrec == 0 {
                    // Keep the head for last: park it in the hold area behind the chunk.
                    let chunk = c.chunk as usize;
                    c.work.copy_within(..hs as usize, chunk);
                    return c.program(Area::Active, a.base + hs, hs as usize, c.chunk - hs);
                }
                return c.program(Area::Active, a.base + a.wrec, 0, c.chunk);
            }
            if self.taken < self.input {
                let n = (self.input - self.taken).min(c.chunk - a.staged).min(a.remaining);
                if n == 0 {
                    return Ready(Err(Error::SizeMismatch));
                }
                self.st = FeedState::AwaitFill { len: n };
                return c.fill(self.taken, a.staged as usize, n);
            }
            if !self.finalize {
                return Ready(Ok(()));
            }
            if a.remaining != 0 {
                return Ready(Err(Error::SizeMismatch));
            }
            // The last units, padded with the erase value; then the head.
            let len = align_up(a.staged, p);
            let ev_byte = c.geo.erase_value;
            c.work[a.staged as usize..len as usize].fill(ev_byte);
            self.st = FeedState::AwaitTail;
            let (from, at) = if a.wrec == 0 { (hs, hs as usize) } else { (0, 0) };
            if len > from {
                return c.program(Area::Active, a.base + a.wrec + from, at, len - from);
            }
            // Nothing left to program before the head: the record fits in its head, or its
            // last bytes filled a whole chunk that is already programmed.
            self.start_head(c, a);
        }
    }

    /// Encodes the finished header into the record's head and starts programming it. The
    /// head is at the front of the work buffer until the first chunk is programmed, then in
    /// the hold area behind the chunk. (It must be found there also when the value ends
    /// exactly on a chunk boundary: a compact record's head holds its first key bytes, which
    /// the front of the buffer no longer does.)
    fn start_head(&mut self, c: &mut Core, a: &mut Append) {
        let at = if a.wrec == 0 { 0 } else { c.chunk as usize };
        a.header.crc = a.crc.value();
        let h = a.header;
        let lay = c.lay;
        lay.encode_header(&h, &mut c.work[at..at + lay.header_len() as usize]);
        self.head = Some(ProgramHead::new(Area::Active, a.base, at, lay.head_span));
        self.st = FeedState::Head;
    }
}

// ------------------------------------------------------------------------------------------
// Compaction.

/// Copies every live record (but `skip`) into the standby area, writes the reserved data and
/// a master record with the next version, and switches areas. The master header is the
/// commit point; until it is programmed the old area stays the store.
struct Compact {
    skip: Skip,
    pos: usize,
    to: u32,
    st: CState,
}

/// Which entries a compaction leaves behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skip {
    None,
    One(usize),
    All,
}

enum CState {
    Start,
    Head(EnsureErased),
    AwaitReserved,
    NextRecord,
    Verify(ReadRecord),
    Room { size: u32, e: EnsureErased },
    AwaitCopyRead { size: u32, done: u32, len: u32 },
    AwaitCopyProgram { size: u32, done: u32, len: u32 },
    Master(WriteMaster),
}

impl Compact {
    fn new(skip: Skip) -> Self {
        Compact { skip, pos: 0, to: 0, st: CState::Start }
    }

    fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<()> {
        let r = self.step(c, ev);
        if let Ready(Err(_)) = r {
            // Index offsets may point into the standby area now: rebuild from flash.
            c.mounted = false;
        }
        r
    }

    fn step(&mut self, c: &mut Core, mut ev: Ev) -> Poll<()> {
        let first = c.lay.first_record();
        loop {
            match &mut self.st {
                CState::Start => {
                    self.to = first;
                    self.pos = 0;
                    self.st = CState::Head(EnsureErased::new(Area::Standby, first));
                }
                CState::Head(e) => {
                    ready!(e.poll(c, ev));
                    if let Some(n) = c.reserved_len {
                        let mro = c.lay.master_offset as usize;
                        format::encode_reserved_area(
                            &c.reserved[..n as usize],
                            c.geo.erase_value,
                            &mut c.work[..mro],
                        );
                        self.st = CState::AwaitReserved;
                        return c.program(Area::Standby, 0, 0, mro as u32);
                    }
                    self.st = CState::NextRecord;
                }
                CState::AwaitReserved => {
                    ev.result(IoKind::Program)?;
                    self.st = CState::NextRecord;
                }
                CState::NextRecord => {
                    let skip = match self.skip {
                        Skip::All => true,
                        Skip::One(p) => p == self.pos,
                        Skip::None => false,
                    };
                    if skip && self.pos < c.index.len() {
                        self.pos += 1;
                        continue;
                    }
                    match c.index.get(self.pos) {
                        None => {
                            // The master record's header is the switch.
                            self.st = CState::Master(WriteMaster::new(Area::Standby));
                        }
                        Some(e) => {
                            self.st =
                                CState::Verify(ReadRecord::new(Area::Active, e.offset, ReadMode::Verify));
                        }
                    }
                }
                CState::Verify(rr) => {
                    match rr.poll(c, ev) {
                        Pending => return Pending,
                        Ready(Ok((_, size))) => {
                            if self.to + size > c.lay.log_limit() {
                                // Only an image written elsewhere (a full Mbed-CE store, whose
                                // records may end at the area end) holds more than this
                                // engine's capacity; copying it all would write a record Mbed
                                // cannot read. The old area stays the store.
                                return Ready(Err(Error::Full));
                            }
                            self.st = CState::Room {
                                size,
                                e: EnsureErased::new(Area::Standby, c.room_for(self.to + size)),
                            };
                        }
                        Ready(Err(
                            Error::Corrupt | Error::Io(IoKind::Read, IoError::Ecc | IoError::Other),
                        )) => {
                            // A live record that no longer checks out would stop every later
                            // mount scan at its copy: drop it (its value was unreadable anyway).
                            c.index.remove(self.pos);
                            if let Skip::One(p) = self.skip {
                                if p > self.pos {
                                    self.skip = Skip::One(p - 1);
                                }
                            }
                            self.st = CState::NextRecord;
                        }
                        Ready(Err(e)) => return Ready(Err(e)),
                    }
                }
                CState::Room { size, e } => {
                    let size = *size;
                    ready!(e.poll(c, ev));
                    self.st = CState::AwaitCopyProgram { size, done: 0, len: 0 };
                    ev = Ev::Start;
                    continue;
                }
                CState::AwaitCopyRead { size, done, len } => {
                    let (size, done, len) = (*size, *done, *len);
                    ev.result(IoKind::Read)?;
                    self.st = CState::AwaitCopyProgram { size, done, len };
                    // Record offsets and copy chunks are whole program units, so whole read
                    // units: the skew is 0, but the read path says so, not this code.
                    let from = c.index.get(self.pos).map_or(0, |e| e.offset) + done;
                    let at = c.skew(from);
                    return c.program(Area::Standby, self.to + done, at, len);
                }
                CState::AwaitCopyProgram { size, done, len } => {
                    let (size, mut done, len) = (*size, *done, *len);
                    if len > 0 {
                        ev.result(IoKind::Program)?;
                        done += len;
                    }
                    if done >= size {
                        c.index.set_offset(self.pos, self.to);
                        self.to += size;
                        self.pos += 1;
                        self.st = CState::NextRecord;
                        ev = Ev::Start;
                        continue;
                    }
                    let len = (size - done).min(c.chunk);
                    let from = c.index.get(self.pos).map_or(0, |e| e.offset) + done;
                    self.st = CState::AwaitCopyRead { size, done, len };
                    return c.read(Area::Active, from, len);
                }
                CState::Master(w) => {
                    ready!(w.poll(c, c.version.wrapping_add(1), ev));
                    // Switched. The old area becomes the standby, dirty until maintenance.
                    if self.skip == Skip::All {
                        c.index.clear();
                    }
                    c.active = 1 - c.active;
                    c.version = c.version.wrapping_add(1);
                    c.free = self.to;
                    c.erased_until = c.standby_clean.max(self.to);
                    c.standby_clean = 0;
                    c.torn_tail = false;
                    c.compactions = c.compactions.wrapping_add(1);
                    c.live_bytes = self.to - first;
                    return Ready(Ok(()));
                }
            }
            ev = Ev::Start;
        }
    }
}

// ------------------------------------------------------------------------------------------
// Reserved data.

/// Sets the write-once reserved data as Mbed does: programmed into the active area's
/// reserved slot (bytes `0..MRO`, which format and compaction leave erased), the data first
/// and then the trailer, whose CRC commits it. Mbed's `reserved_data_get` takes the first area
/// (0, then 1) whose trailer checks out, so data committed anywhere else first (in the standby
/// area, by a compaction that a power cut then stops short of its master record) would be
/// Mbed's reserved data and not this engine's. If the slot is not blank (a set cut short
/// there), a compaction first moves the store to the other area, whose slot it leaves erased.
/// Later compactions copy the data into each new area before its master record.
struct SetReserved {
    len: u32,
    st: RsState,
}

enum RsState {
    Start,
    AwaitFill,
    AwaitSlotRead,
    Compact(Compact),
    AwaitData { trailer_unit: u32 },
    AwaitTrailer,
}

impl SetReserved {
    fn poll(&mut self, c: &mut Core, mut ev: Ev) -> Poll<()> {
        let mro = c.lay.master_offset;
        let n = self.len as usize;
        loop {
            match &mut self.st {
                RsState::Start => {
                    if n > 0 {
                        self.st = RsState::AwaitFill;
                        return c.fill(0, 0, self.len);
                    }
                    self.st = RsState::AwaitSlotRead;
                    return c.read(Area::Active, 0, mro);
                }
                RsState::AwaitFill => {
                    ev.result(IoKind::Fill)?;
                    c.reserved[..n].copy_from_slice(&c.work[..n]);
                    self.st = RsState::AwaitSlotRead;
                    return c.read(Area::Active, 0, mro);
                }
                RsState::AwaitSlotRead => {
                    if let Ev::Io(Err(IoError::PowerLost)) = ev {
                        return Ready(Err(Error::Io(IoKind::Read, IoError::PowerLost)));
                    }
                    // An unreadable slot is as dirty as a programmed one.
                    let blank = matches!(ev, Ev::Io(Ok(()))) && c.is_blank(c.got(0, mro));
                    if !blank {
                        self.st = RsState::Compact(Compact::new(Skip::None));
                        ev = Ev::Start;
                        continue;
                    }
                    return self.program_data(c);
                }
                RsState::Compact(k) => {
                    ready!(k.poll(c, ev));
                    return self.program_data(c);
                }
                RsState::AwaitData { trailer_unit } => {
                    let tu = *trailer_unit;
                    ev.result(IoKind::Program)?;
                    self.st = RsState::AwaitTrailer;
                    return c.program(Area::Active, tu, tu as usize, mro - tu);
                }
                RsState::AwaitTrailer => {
                    ev.result(IoKind::Program)?;
                    c.reserved_len = Some(n as u8);
                    return Ready(Ok(()));
                }
            }
        }
    }

    /// Stages the slot (data, erased padding, trailer) and programs the units before the
    /// trailer's; the trailer's unit follows.
    fn program_data(&mut self, c: &mut Core) -> Poll<()> {
        let mro = c.lay.master_offset as usize;
        format::encode_reserved_area(&c.reserved[..self.len as usize], c.geo.erase_value, &mut c.work[..mro]);
        let p = c.geo.program_size;
        let tu = format::RESERVED_TRAILER_OFFSET / p * p;
        if tu == 0 {
            // One unit holds data and trailer: one program commits both.
            self.st = RsState::AwaitTrailer;
            return c.program(Area::Active, 0, 0, mro as u32);
        }
        self.st = RsState::AwaitData { trailer_unit: tu };
        c.program(Area::Active, 0, 0, tu)
    }
}

// ------------------------------------------------------------------------------------------
// Mount and format.

struct Mount {
    st: MState,
    /// (version, revision) of each area's master record.
    versions: [Option<(u16, u16)>; 2],
    blank: [bool; 2],
    formatted: bool,
    off: u32,
}

enum MState {
    Master { area: u8 },
    Format(Format),
    Reserved { area: u8 },
    Scan(ReadRecord),
    Upsert { header: Header, size: u32, find: Find },
    Tail(BlankCheck),
}

impl Mount {
    fn new() -> Self {
        Mount {
            st: MState::Master { area: 0 },
            versions: [None; 2],
            blank: [false; 2],
            formatted: false,
            off: 0,
        }
    }

    fn poll(&mut self, c: &mut Core, mut ev: Ev) -> Poll<MountInfo> {
        let lay = c.lay;
        loop {
            match &mut self.st {
                MState::Master { area } => {
                    let area = *area;
                    if let Ev::Io(r) = ev {
                        if r == Err(IoError::PowerLost) {
                            return Ready(Err(Error::Io(IoKind::Read, IoError::PowerLost)));
                        }
                        let got = c.got(lay.master_offset, lay.master_size.min(c.chunk));
                        let ok = r.is_ok() && got.len() >= 24;
                        // Blank, unreadable, or our own master record cut before its magic
                        // (a format interrupted between its head programs) all mean "no store".
                        let hs = lay.header_span as usize;
                        let torn_master = got[..4] != format::MAGIC.to_le_bytes()
                            && got.get(hs..hs + 4) == Some(MASTER_KEY);
                        self.blank[area as usize] = !ok || c.is_blank(&got[..24]) || torn_master;
                        if ok {
                            self.versions[area as usize] = parse_master(&lay, got);
                        }
                        if area == 0 {
                            self.st = MState::Master { area: 1 };
                        } else {
                            match self.choose(c) {
                                Ok(Some(a)) => {
                                    c.active = a;
                                    let (version, revision) = self.versions[a as usize].unwrap_or((0, 0));
                                    // An unknown revision is not a store we can write safely.
                                    let fmt = RecordFormat::from_revision(revision).ok_or(Error::Foreign)?;
                                    c.version = version;
                                    c.lay = Layout::with_format(c.geo.program_size, lay.area_size, fmt);
                                    self.st = MState::Reserved { area: c.active };
                                    ev = Ev::Start;
                                    continue;
                                }
                                Ok(None) => {
                                    self.formatted = true;
                                    self.st = MState::Format(Format::new(false));
                                    ev = Ev::Start;
                                    continue;
                                }
                                Err(e) => return Ready(Err(e)),
                            }
                        }
                    }
                    let MState::Master { area } = self.st else {
                        continue;
                    };
                    c.active = area;
                    c.pending = None;
                    return c.read(Area::Active, lay.master_offset, lay.master_size.min(c.chunk));
                }
                MState::Format(f) => {
                    let info = ready!(f.poll(c, ev));
                    return Ready(Ok(MountInfo { formatted: true, ..info }));
                }
                MState::Reserved { area } => {
                    let area = *area;
                    if let Ev::Io(r) = ev {
                        if r == Err(IoError::PowerLost) {
                            return Ready(Err(Error::Io(IoKind::Read, IoError::PowerLost)));
                        }
                        if r.is_ok() {
                            if let Some(n) = format::parse_reserved(c.got(0, 72)) {
                                let skew = c.skew(0);
                                c.reserved[..n].copy_from_slice(&c.work[skew..skew + n]);
                                c.reserved_len = Some(n as u8);
                            }
                        }
                        // Only the active area's copy counts: the standby's may be from a
                        // compaction (or reserved-data set) that never committed.
                        self.off = lay.first_record();
                        self.st = MState::Scan(ReadRecord::new(Area::Active, self.off, ReadMode::Scan));
                        ev = Ev::Start;
                        continue;
                    }
                    // 72 bytes (data and trailer), widened to whole read units by the read
                    // path: a 16- or 32-byte read unit reads 80 or 96 bytes.
                    c.active = area;
                    let len = format::RESERVED_TRAILER_OFFSET + format::RESERVED_TRAILER_LEN;
                    return c.read(Area::Active, 0, len);
                }
                MState::Scan(rr) => {
                    if self.off + c.lay.header_len() > lay.area_size {
                        self.st = self.tail(c);
                        ev = Ev::Start;
                        continue;
                    }
                    match rr.poll(c, ev) {
                        Pending => return Pending,
                        Ready(Ok((header, size))) => {
                            if c.key() == MASTER_KEY {
                                // Mbed's GC copies the master record into the data region
                                // (B1); it is not a user key.
                                self.next_record(size);
                            } else {
                                self.st = MState::Upsert { header, size, find: Find::new() };
                            }
                        }
                        Ready(Err(Error::Io(_, IoError::PowerLost))) => {
                            return Ready(Err(Error::Io(IoKind::Read, IoError::PowerLost)))
                        }
                        // Anything unreadable or invalid ends the log.
                        Ready(Err(_)) => self.st = self.tail(c),
                    }
                }
                MState::Upsert { header, size, find } => {
                    let (header, size) = (*header, *size);
                    let found = ready!(find.poll(c, ev));
                    let new = IndexEntry { hash: format::key_hash(c.key()), offset: self.off };
                    match (found, header.is_delete()) {
                        (Found::Yes { pos, size: old, .. }, true) => {
                            c.index.remove(pos);
                            c.live_bytes = c.live_bytes.saturating_sub(old);
                        }
                        (Found::No, true) => {}
                        (Found::Yes { pos, size: old, .. }, false) => {
                            c.index.set_offset(pos, self.off);
                            c.live_bytes = c.live_bytes.saturating_sub(old) + size;
                        }
                        (Found::No, false) => {
                            let (_, hi) = c.index.hash_range(new.hash);
                            if !c.index.insert(hi, new) {
                                return Ready(Err(Error::IndexFull));
                            }
                            c.live_bytes += size;
                        }
                    }
                    self.next_record(size);
                }
                MState::Tail(bc) => {
                    let clean = ready!(bc.poll(c, ev));
                    c.free = self.off;
                    c.torn_tail = !clean;
                    c.erased_until = if clean { c.sector_end(self.off).min(lay.area_size) } else { self.off };
                    if self.off >= lay.area_size {
                        c.erased_until = lay.area_size;
                    }
                    c.standby_clean = 0;
                    c.mounted = true;
                    return Ready(Ok(MountInfo {
                        active_area: c.active,
                        version: c.version,
                        keys: c.index.len() as u32,
                        free_offset: c.free,
                        formatted: self.formatted,
                        torn_tail: c.torn_tail,
                    }));
                }
            }
            ev = Ev::Start;
        }
    }

    fn next_record(&mut self, size: u32) {
        self.off += size;
        self.st = MState::Scan(ReadRecord::new(Area::Active, self.off, ReadMode::Scan));
    }

    fn tail(&self, c: &Core) -> MState {
        let end = c.sector_end(self.off).min(c.lay.area_size);
        MState::Tail(BlankCheck::new(Area::Active, self.off.min(end), end, None))
    }

    /// The active area, `None` to format a blank region.
    fn choose(&self, c: &Core) -> Result<Option<u8>, Error> {
        match self.versions.map(|v| v.map(|(version, _)| version)) {
            [Some(v0), Some(v1)] => {
                // Serial-number comparison: the area whose version is ahead, modulo 2^16.
                // Mbed's `v0 > v1 || v0 == 0` picks the stale area at the wrap (B5).
                let d = v0.wrapping_sub(v1) as i16;
                Ok(Some(if d > 0 {
                    0
                } else if d < 0 {
                    1
                } else if v0 == 0 {
                    0
                } else {
                    1
                }))
            }
            [Some(_), None] => Ok(Some(0)),
            [None, Some(_)] => Ok(Some(1)),
            [None, None] if self.blank == [true, true] && c.opts.format_if_blank => Ok(None),
            [None, None] => Err(Error::Foreign),
        }
    }
}

/// The version in a master record, if `b` (read at the master offset) is one.
fn parse_master(lay: &Layout, b: &[u8]) -> Option<(u16, u16)> {
    let h = Header::parse(b)?;
    let hs = lay.header_span as usize;
    if h.key_len != 4 || h.data_len != MASTER_DATA_LEN || b.len() < hs + 12 || &b[hs..hs + 4] != MASTER_KEY {
        return None;
    }
    let mut crc = h.crc_start();
    crc.update(&b[hs..hs + 12]);
    let field = |i: usize| u16::from_le_bytes([b[hs + i], b[hs + i + 1]]);
    (crc.value() == h.crc).then(|| (field(4), field(6)))
}

/// Erases both area heads (or everything) and writes master version 1 in area 0.
struct Format {
    full: bool,
    st: FState,
}

enum FState {
    Start,
    /// `step` 0 erases the area that is not the store (so a cut leaves the old store), 1 the
    /// other; then area 0 gets master version 1.
    AwaitErase {
        first: u8,
        step: u8,
        off: u32,
    },
    Master(WriteMaster),
}

impl Format {
    fn new(full: bool) -> Self {
        Format { full, st: FState::Start }
    }

    fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<MountInfo> {
        let lay = c.lay;
        let es = c.geo.erase_size;
        let limit = if self.full { lay.area_size } else { es };
        match &mut self.st {
            FState::Start => {
                let first = if c.mounted { 1 - c.active } else { 1 };
                c.mounted = false;
                self.st = FState::AwaitErase { first, step: 0, off: 0 };
                let addr = first as u32 * lay.area_size;
                return c.request(Request::Erase { addr, len: es }, 0, 0);
            }
            FState::AwaitErase { first, step, off } => {
                ev.result(IoKind::Erase)?;
                let (first, mut step, mut off) = (*first, *step, *off + es);
                if off >= limit {
                    step += 1;
                    off = 0;
                }
                if step < 2 {
                    self.st = FState::AwaitErase { first, step, off };
                    let area = if step == 0 { first } else { 1 - first };
                    let addr = area as u32 * lay.area_size + off;
                    return c.request(Request::Erase { addr, len: es }, 0, 0);
                }
                c.active = 0;
                c.index.clear();
                c.reserved_len = None;
                c.live_bytes = 0;
                c.lay = Layout::with_format(c.geo.program_size, lay.area_size, c.opts.record_format);
                self.st = FState::Master(WriteMaster::new(Area::Active));
                return self.poll(c, Ev::Start);
            }
            FState::Master(w) => {
                ready!(w.poll(c, 1, ev));
            }
        }
        c.version = 1;
        c.free = lay.first_record();
        c.erased_until = limit;
        c.standby_clean = limit;
        c.torn_tail = false;
        c.mounted = true;
        Ready(Ok(MountInfo {
            active_area: 0,
            version: 1,
            keys: 0,
            free_offset: c.free,
            formatted: true,
            torn_tail: false,
        }))
    }
}

// ------------------------------------------------------------------------------------------
// Top-level operations.

/// A set, remove, or incremental-set start: find, check, make room, then append.
struct Write {
    flags: u32,
    len: u32,
    /// True for a one-shot set or remove (feed the input and commit); false for
    /// [`Op::SetStart`], which stops once the record is staged.
    oneshot: bool,
    st: WState,
    compacted: bool,
    found: Found,
    size: u32,
    append: Option<Append>,
}

enum WState {
    Find(Find),
    Compact(Compact),
    Room(EnsureErased),
    Feed(Feed),
}

impl Write {
    fn new(flags: u32, len: u32, oneshot: bool) -> Self {
        Write {
            flags,
            len,
            oneshot,
            st: WState::Find(Find::new()),
            compacted: false,
            found: Found::No,
            size: 0,
            append: None,
        }
    }

    fn is_delete(&self) -> bool {
        self.flags & DELETE_FLAG != 0
    }

    fn poll(&mut self, c: &mut Core, mut ev: Ev) -> Poll<Outcome> {
        loop {
            match &mut self.st {
                WState::Find(f) => {
                    let found = ready!(f.poll(c, ev));
                    self.found = found;
                    let kl = c.key_len as u32;
                    let size = c.lay.record_size(kl, self.len).ok_or(Error::ValueTooLarge)?;
                    match found {
                        Found::Yes { header, .. } if header.flags & format::WRITE_ONCE != 0 => {
                            return Ready(Err(Error::WriteProtected))
                        }
                        Found::No if self.is_delete() => return Ready(Err(Error::NotFound)),
                        Found::No if c.index.len() >= c.index.capacity() => {
                            return Ready(Err(Error::IndexFull))
                        }
                        _ => {}
                    }
                    // Never past the log limit: in Mbed format a record must not end at the
                    // area end, or Mbed would not read it (B2); compact first, as Mbed does.
                    let limit = c.lay.log_limit() as u64;
                    let fits = c.free as u64 + size as u64 <= limit;
                    if c.torn_tail || !fits {
                        if self.compacted {
                            return Ready(Err(Error::Full));
                        }
                        self.compacted = true;
                        if let (true, Found::Yes { pos, .. }) = (self.is_delete(), found) {
                            // Compacting without the key removes it atomically: no tombstone.
                            self.st = WState::Compact(Compact::new(Skip::One(pos)));
                        } else {
                            let need = c.lay.first_record() as u64 + c.live_bytes as u64 + size as u64;
                            if need > limit {
                                return Ready(Err(Error::Full));
                            }
                            self.st = WState::Compact(Compact::new(Skip::None));
                        }
                    } else {
                        self.size = size;
                        self.st = WState::Room(EnsureErased::new(Area::Active, c.room_for(c.free + size)));
                    }
                }
                WState::Compact(k) => {
                    ready!(k.poll(c, ev));
                    if let Skip::One(pos) = k.skip {
                        // The compaction already left the record behind and recounted live bytes.
                        c.index.remove(pos);
                        return Ready(Ok(Outcome::Done));
                    }
                    // Positions may have moved if compaction dropped a corrupt record.
                    self.st = WState::Find(Find::new());
                }
                WState::Room(e) => {
                    ready!(e.poll(c, ev));
                    // Staged only now: the erase check above reads through the work buffer.
                    self.append = Some(Append::begin(c, self.flags, self.len, self.size));
                    if !self.oneshot {
                        return Ready(Ok(Outcome::Done));
                    }
                    let input = self.len;
                    self.st = WState::Feed(Feed::new(if self.is_delete() { 0 } else { input }, true));
                }
                WState::Feed(f) => {
                    let a = self.append.as_mut().ok_or(Error::NotMounted)?;
                    let r = f.poll(c, a, ev);
                    match r {
                        Pending => return Pending,
                        Ready(Err(e)) => {
                            if a.programmed {
                                c.torn_tail = true;
                            }
                            return Ready(Err(e));
                        }
                        Ready(Ok(())) => {
                            let a = *a;
                            commit(c, &a, self.found);
                            return Ready(Ok(Outcome::Done));
                        }
                    }
                }
            }
            ev = Ev::Start;
        }
    }
}

/// Applies a committed append to the index and the log end.
fn commit(c: &mut Core, a: &Append, found: Found) {
    let hash = format::key_hash(c.key());
    c.free = a.base + a.size;
    match found {
        Found::Yes { pos, size, .. } if a.header.is_delete() => {
            c.index.remove(pos);
            c.live_bytes = c.live_bytes.saturating_sub(size);
        }
        Found::Yes { pos, size, .. } => {
            c.index.set_offset(pos, a.base);
            c.live_bytes = c.live_bytes.saturating_sub(size) + a.size;
        }
        Found::No => {
            let (_, hi) = c.index.hash_range(hash);
            c.index.insert(hi, IndexEntry { hash, offset: a.base });
            c.live_bytes += a.size;
        }
    }
}

/// The rest of an open incremental set between operations.
#[derive(Clone, Copy, Debug)]
struct Incremental {
    append: Append,
    found: Found,
}

enum Machine {
    Mount(Mount),
    Format(Format),
    /// Format of a mounted store: an empty generation, committed atomically.
    Reformat(Compact),
    Get {
        find: Find,
        read: Option<ReadRecord>,
        out_len: u32,
        info_only: bool,
    },
    Write(Write),
    IncData(Feed),
    Next {
        pos: usize,
        out_len: u32,
        waiting: Option<u32>,
    },
    ReservedSet(SetReserved),
    /// Hands the `copied` bytes at `work[at..]` to the output, then reports.
    Deliver {
        at: usize,
        copied: u32,
        outcome: Outcome,
        waiting: bool,
    },
    Reset(Compact),
    Compact(Compact),
    Maintain(Maint),
}

/// The next piece of background work, most urgent first: compact away a torn tail, erase
/// the standby area, pre-erase the next active sector, compact early.
fn next_maintenance(c: &Core) -> Option<Maint> {
    let area = c.lay.area_size;
    let ahead = c.erased_until < area && c.erased_until < c.free + c.geo.erase_size;
    let early = c.opts.compact_below > 0
        && area - c.free < c.opts.compact_below
        && c.live_bytes + c.lay.first_record() + c.opts.compact_below < area;
    Some(if c.torn_tail {
        Maint::Compact(Compact::new(Skip::None))
    } else if c.standby_clean < area {
        Maint::Standby(EnsureErased::new(Area::Standby, c.sector_end(c.standby_clean).min(area)))
    } else if ahead {
        Maint::Ahead(EnsureErased::new(Area::Active, c.sector_end(c.erased_until).min(area)))
    } else if early {
        Maint::Compact(Compact::new(Skip::None))
    } else {
        return None;
    })
}

/// One maintenance step.
enum Maint {
    Choose,
    Compact(Compact),
    Standby(EnsureErased),
    Ahead(EnsureErased),
}

// ------------------------------------------------------------------------------------------
// The public engine.

/// The TDBStore engine over caller-provided buffers. See the crate docs for the driving loop.
pub struct Store<'w> {
    core: Core<'w>,
    machine: Option<Machine>,
    inc: Option<Incremental>,
}

impl<'w> Store<'w> {
    /// Smallest work buffer for a geometry: a header plus the longest key, in program units.
    pub const fn min_work_len(geometry: &Geometry) -> usize {
        // `new` refuses larger program units; clamping keeps this arithmetic from overflowing
        // for them.
        let p = match geometry.program_size {
            0 => 1,
            p if p > Geometry::MAX_PROGRAM_SIZE => Geometry::MAX_PROGRAM_SIZE,
            p => p,
        };
        let hs = align_up(format::HEADER_LEN, p);
        let need = align_up(hs + MAX_KEY_LEN as u32 + 1, p);
        let mro = align_up(72, p);
        // Plus a hold area for a record's head while its tail is programmed.
        ((if need > mro { need } else { mro }) + hs) as usize
    }

    /// A store over `geometry`, unmounted. `work` must hold [`Store::min_work_len`] bytes (more
    /// makes fewer, larger requests); `index` holds one entry per key the store may keep.
    pub fn new(
        geometry: Geometry,
        options: StoreOptions,
        work: &'w mut [u8],
        index: &'w mut [IndexEntry],
    ) -> Result<Store<'w>, GeometryError> {
        geometry.validate()?;
        if work.len() < Self::min_work_len(&geometry) {
            return Err(GeometryError::WorkBufferTooSmall);
        }
        let p = geometry.program_size as usize;
        let hold = format::align_up(format::HEADER_LEN, geometry.program_size) as usize;
        let chunk = ((work.len().min(1 << 20) - hold) / p * p) as u32;
        let lay = Layout::with_format(geometry.program_size, geometry.area_size(), options.record_format);
        Ok(Store {
            core: Core {
                geo: geometry,
                lay,
                opts: options,
                chunk,
                work,
                index: Index::new(index),
                key: [0; MAX_KEY_LEN],
                key_len: 0,
                pending: None,
                io_at: 0,
                io_len: 0,
                mounted: false,
                active: 0,
                version: 0,
                free: 0,
                erased_until: 0,
                standby_clean: 0,
                torn_tail: false,
                live_bytes: 0,
                reserved: [0; RESERVED_LEN],
                reserved_len: None,
                compactions: 0,
                prog: None,
                instant: false,
            },
            machine: None,
            inc: None,
        })
    }

    /// The layout in use.
    pub fn layout(&self) -> Layout {
        self.core.lay
    }

    /// Whether an operation is in flight.
    pub fn is_busy(&self) -> bool {
        self.machine.is_some()
    }

    /// Whether an incremental set is open.
    pub fn incremental_open(&self) -> bool {
        self.inc.is_some()
    }

    /// A snapshot of the store's state.
    pub fn info(&self) -> StoreInfo {
        let c = &self.core;
        StoreInfo {
            geometry: c.geo,
            area_size: c.lay.area_size,
            mounted: c.mounted,
            active_area: c.active,
            version: c.version,
            keys: c.index.len() as u32,
            key_capacity: c.index.capacity() as u32,
            free_offset: c.free,
            live_bytes: c.live_bytes,
            erased_until: c.erased_until,
            standby_clean: c.standby_clean,
            torn_tail: c.torn_tail,
            reserved_len: c.reserved_len,
            compactions: c.compactions,
        }
    }

    /// The bytes of the pending request: the destination of a read or fill, the source of a
    /// program or delivery. Empty when nothing is pending.
    pub fn io_buf(&mut self) -> &mut [u8] {
        let c = &mut self.core;
        match c.pending {
            Some(_) => &mut c.work[c.io_at..c.io_at + c.io_len],
            None => &mut [],
        }
    }

    /// The pending request, if any.
    pub fn pending(&self) -> Option<Request> {
        self.core.pending
    }

    /// Starts an operation. Refusals (bad input, busy, not mounted) come back at once as
    /// `Step::Done(Err(..))` and leave any operation in flight untouched.
    pub fn start(&mut self, op: Op<'_>) -> Step {
        if self.machine.is_some() {
            return Step::Done(Err(Error::Busy));
        }
        self.core.prog = None;
        self.core.instant = false;
        match self.begin(op) {
            Ok(m) => {
                self.machine = Some(m);
                self.run(Ev::Start)
            }
            Err(e) => Step::Done(Err(e)),
        }
    }

    /// Continues the operation with the result of its pending request.
    pub fn resume(&mut self, result: Result<(), IoError>) -> Step {
        if self.machine.is_none() || self.core.pending.is_none() {
            return Step::Done(Err(Error::Busy));
        }
        self.core.pending = None;
        if self.core.prog.is_some() {
            if result.is_ok() && self.core.next_run() {
                return self.core.pending.map_or(Step::Done(Err(Error::Busy)), Step::Io);
            }
            self.core.prog = None;
        }
        self.run(Ev::Io(result))
    }

    /// Abandons the operation in flight (e.g. its driver was torn down). Flash may hold part
    /// of a record; the store treats it as a torn tail.
    pub fn cancel(&mut self) {
        if self.machine.take().is_some() {
            self.core.pending = None;
            self.core.torn_tail = true;
            self.core.mounted = false;
        }
    }

    fn set_key(&mut self, key: &[u8]) -> Result<(), Error> {
        format::validate_key(key).map_err(Error::InvalidKey)?;
        self.core.key[..key.len()].copy_from_slice(key);
        self.core.key_len = key.len();
        Ok(())
    }

    fn begin(&mut self, op: Op<'_>) -> Result<Machine, Error> {
        let mutating =
            !matches!(op, Op::Get { .. } | Op::GetInfo { .. } | Op::Next { .. } | Op::ReservedGet { .. });
        let incremental_op =
            matches!(op, Op::SetData { .. } | Op::SetFinalize | Op::SetAbort | Op::Mount | Op::Format { .. });
        if self.inc.is_some() && mutating && !incremental_op {
            return Err(Error::Busy);
        }
        if self.inc.is_some() && !mutating {
            // Reads would reuse the work buffer that holds the staged bytes.
            return Err(Error::Busy);
        }
        if !self.core.mounted && !matches!(op, Op::Mount | Op::Format { .. }) {
            return Err(Error::NotMounted);
        }
        let c = &mut self.core;
        Ok(match op {
            Op::Mount => {
                self.inc = None;
                c.mounted = false;
                c.index.clear();
                c.live_bytes = 0;
                c.reserved_len = None;
                c.torn_tail = false;
                Machine::Mount(Mount::new())
            }
            Op::Format { full } => {
                self.inc = None;
                if c.mounted {
                    // Erasing the live area's head is not atomic (a torn erase leaves part of
                    // the store): write an empty generation into the standby area instead.
                    // Its master record switches over; the old area is erased as maintenance.
                    c.reserved_len = None;
                    c.lay = Layout::with_format(c.geo.program_size, c.lay.area_size, c.opts.record_format);
                    Machine::Reformat(Compact::new(Skip::All))
                } else {
                    Machine::Format(Format::new(full))
                }
            }
            Op::Get { key, out_len } => {
                self.set_key(key)?;
                Machine::Get { find: Find::new(), read: None, out_len, info_only: false }
            }
            Op::GetInfo { key } => {
                self.set_key(key)?;
                Machine::Get { find: Find::new(), read: None, out_len: 0, info_only: true }
            }
            Op::Set { key, len, flags } | Op::SetStart { key, len, flags } => {
                if flags & !USER_FLAGS != 0 {
                    return Err(Error::InvalidFlags);
                }
                self.set_key(key)?;
                let c = &self.core;
                if c.lay.record_size(key.len() as u32, len).is_none_or(|s| s > c.lay.capacity()) {
                    return Err(Error::ValueTooLarge);
                }
                Machine::Write(Write::new(flags, len, matches!(op, Op::Set { .. })))
            }
            Op::Remove { key } => {
                self.set_key(key)?;
                Machine::Write(Write::new(DELETE_FLAG, 0, true))
            }
            Op::SetData { len } => {
                if self.inc.is_none() {
                    return Err(Error::SizeMismatch);
                }
                Machine::IncData(Feed::new(len, false))
            }
            Op::SetFinalize => {
                if self.inc.is_none() {
                    return Err(Error::SizeMismatch);
                }
                Machine::IncData(Feed::new(0, true))
            }
            Op::SetAbort => {
                if let Some(i) = self.inc.take() {
                    if i.append.programmed {
                        self.core.torn_tail = true;
                    }
                }
                return Ok(Machine::Deliver { at: 0, copied: 0, outcome: Outcome::Done, waiting: false });
            }
            Op::Reset => Machine::Reset(Compact::new(Skip::All)),
            Op::Next { prefix, cursor, out_len } => {
                if prefix.len() > MAX_KEY_LEN {
                    return Err(Error::InvalidKey(KeyError::TooLong));
                }
                c.key[..prefix.len()].copy_from_slice(prefix);
                c.key_len = prefix.len();
                let mut pos = cursor.pos as usize;
                if let Some(h) = cursor.last_hash {
                    // Re-anchor if the index shifted under the cursor since the last call.
                    let e = c.index.entries();
                    if pos == 0 || e.get(pos - 1).map(|x| x.hash) != Some(h) {
                        pos = e.partition_point(|x| x.hash >= h);
                    }
                }
                Machine::Next { pos, out_len, waiting: None }
            }
            Op::ReservedSet { len } => {
                if c.reserved_len.is_some() {
                    return Err(Error::WriteProtected);
                }
                if len as usize > RESERVED_LEN {
                    return Err(Error::ValueTooLarge);
                }
                Machine::ReservedSet(SetReserved { len, st: RsState::Start })
            }
            Op::ReservedGet { out_len } => {
                let n = c.reserved_len.ok_or(Error::NotFound)? as usize;
                c.work[..n].copy_from_slice(&c.reserved[..n]);
                let (len, copied) = (n as u32, (n as u32).min(out_len));
                Machine::Deliver { at: 0, copied, outcome: Outcome::Reserved { len, copied }, waiting: false }
            }
            Op::Maintain => Machine::Maintain(Maint::Choose),
            Op::Compact => Machine::Compact(Compact::new(Skip::None)),
        })
    }

    fn run(&mut self, ev: Ev) -> Step {
        let Some(mut m) = self.machine.take() else {
            return Step::Done(Err(Error::Busy));
        };
        let mut r = self.poll_machine(&mut m, ev);
        // A program of blank units only completes at once: resume the machine right away.
        while r.is_pending() && self.core.pending.is_none() && self.core.instant {
            self.core.instant = false;
            r = self.poll_machine(&mut m, Ev::Io(Ok(())));
        }
        match r {
            Pending => match self.core.pending {
                Some(req) => {
                    self.machine = Some(m);
                    Step::Io(req)
                }
                None => Step::Done(Err(Error::Busy)),
            },
            Ready(r) => {
                self.core.pending = None;
                if let Err(Error::Io(_, IoError::PowerLost)) = r {
                    self.core.mounted = false;
                }
                Step::Done(r)
            }
        }
    }

    fn poll_machine(&mut self, m: &mut Machine, mut ev: Ev) -> Poll<Outcome> {
        let c = &mut self.core;
        match m {
            Machine::Mount(mo) => mo.poll(c, ev).map(|r| r.map(Outcome::Mounted)),
            Machine::Format(f) => f.poll(c, ev).map(|r| r.map(Outcome::Mounted)),
            Machine::Reformat(k) => {
                ready!(k.poll(c, ev));
                Ready(Ok(Outcome::Mounted(MountInfo {
                    active_area: c.active,
                    version: c.version,
                    keys: 0,
                    free_offset: c.free,
                    formatted: true,
                    torn_tail: false,
                })))
            }
            Machine::Get { find, read, out_len, info_only } => loop {
                if let Some(rr) = read {
                    let (h, _) = ready!(rr.poll(c, ev));
                    let copied = h.data_len.min(*out_len);
                    return Ready(Ok(Outcome::Value { size: h.data_len, flags: h.flags, copied }));
                }
                match ready!(find.poll(c, ev)) {
                    Found::No => return Ready(Err(Error::NotFound)),
                    Found::Yes { header, .. } if *info_only => {
                        return Ready(Ok(Outcome::Info { size: header.data_len, flags: header.flags }))
                    }
                    Found::Yes { pos, .. } => {
                        let off = c.index.get(pos).map_or(0, |e| e.offset);
                        *read = Some(ReadRecord::new(Area::Active, off, ReadMode::Get { out_len: *out_len }));
                        ev = Ev::Start;
                    }
                }
            },
            Machine::Write(w) => {
                let r = ready!(w.poll(c, ev));
                if !w.oneshot {
                    if let Some(append) = w.append {
                        self.inc = Some(Incremental { append, found: w.found });
                    }
                }
                Ready(Ok(r))
            }
            Machine::IncData(feed) => {
                let Some(inc) = self.inc.as_mut() else {
                    return Ready(Err(Error::SizeMismatch));
                };
                match feed.poll(c, &mut inc.append, ev) {
                    Pending => Pending,
                    Ready(Err(e)) => {
                        // A failed or oversize incremental set is abandoned, like Mbed's.
                        if inc.append.programmed {
                            c.torn_tail = true;
                        }
                        self.inc = None;
                        Ready(Err(e))
                    }
                    Ready(Ok(())) => {
                        if feed.finalize {
                            let i = *inc;
                            self.inc = None;
                            // `commit` hashes the key buffer, which still holds this set's
                            // key: every operation that would reuse it (reads, other writes) is
                            // refused while an incremental set is open.
                            commit(c, &i.append, i.found);
                        }
                        Ready(Ok(Outcome::Done))
                    }
                }
            }
            // `waiting`: Some(0) for a header read, Some(key length) for a key read. Keys are
            // read by their own length, never past the record.
            Machine::Next { pos, out_len, waiting } => {
                match waiting.take() {
                    Some(0) => {
                        ev.result(IoKind::Read)?;
                        let entry = c.index.get(*pos);
                        let hl = c.lay.header_len();
                        match (entry.and_then(|e| c.lay.parse_header(c.got(e.offset, hl))), entry) {
                            (Some(h), Some(e)) if h.key_len as usize >= c.key_len => {
                                *waiting = Some(h.key_len as u32);
                                return c.read(Area::Active, e.offset + c.lay.body_offset, h.key_len as u32);
                            }
                            _ => *pos += 1,
                        }
                    }
                    Some(kl) => {
                        ev.result(IoKind::Read)?;
                        let entry = c.index.get(*pos);
                        let hash = entry.map(|e| e.hash);
                        *pos += 1;
                        let at = entry.map_or(0, |e| e.offset) + c.lay.body_offset;
                        let skew = c.skew(at);
                        if c.got(at, kl).len() == kl as usize
                            && c.got(at, kl).starts_with(&c.key[..c.key_len])
                        {
                            let copied = kl.min(*out_len);
                            let next = Cursor { pos: *pos as u32, last_hash: hash };
                            let outcome = Outcome::Key { len: kl, copied, next };
                            *m = Machine::Deliver { at: skew, copied, outcome, waiting: false };
                            return self.poll_machine(m, Ev::Start);
                        }
                    }
                    None => {}
                }
                let Some(e) = c.index.get(*pos) else {
                    return Ready(Ok(Outcome::End));
                };
                *waiting = Some(0);
                let hl = c.lay.header_len();
                c.read(Area::Active, e.offset, hl)
            }
            Machine::Deliver { at, copied, outcome, waiting } => {
                if *waiting {
                    ev.result(IoKind::Deliver)?;
                } else if *copied > 0 {
                    *waiting = true;
                    return c.deliver(0, *at, *copied);
                }
                Ready(Ok(*outcome))
            }
            Machine::ReservedSet(rs) => {
                ready!(rs.poll(c, ev));
                Ready(Ok(Outcome::Done))
            }
            Machine::Reset(k) | Machine::Compact(k) => {
                ready!(k.poll(c, ev));
                Ready(Ok(Outcome::Done))
            }
            Machine::Maintain(mt) => loop {
                match mt {
                    Maint::Choose => {
                        let Some(next) = next_maintenance(c) else {
                            return Ready(Ok(Outcome::Maintained { more: false }));
                        };
                        *mt = next;
                        ev = Ev::Start;
                    }
                    Maint::Compact(k) => {
                        ready!(k.poll(c, ev));
                        return Ready(Ok(Outcome::Maintained { more: next_maintenance(c).is_some() }));
                    }
                    Maint::Standby(e) | Maint::Ahead(e) => {
                        ready!(e.poll(c, ev));
                        return Ready(Ok(Outcome::Maintained { more: next_maintenance(c).is_some() }));
                    }
                }
            },
        }
    }
}
