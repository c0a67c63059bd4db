//! State every procedure shares (`Core`): the store's position and erase state, the work buffer, the
//! one aligned read path and the program path that never programs a unit twice.

use super::api::*;
use crate::format::{self, align_up, Header, Layout, RecordFormat, MAX_KEY_LEN, RESERVED_LEN};
use crate::geometry::Geometry;
use crate::index::Index;
use crate::index::IndexEntry;
use core::task::Poll::Pending;

pub(crate) type Poll<T> = ::core::task::Poll<Result<T, Error>>;

/// How a procedure is entered: fresh, or with the result of the request it made.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ev {
    Start,
    Io(Result<(), IoError>),
}

impl Ev {
    /// The result of the awaited request (`Start` counts as success for re-entry).
    pub(crate) fn result(self, kind: IoKind) -> Result<(), Error> {
        match self {
            Ev::Start => Ok(()),
            Ev::Io(r) => r.map_err(|e| Error::Io(kind, e)),
        }
    }
}

pub(crate) struct Core<'w> {
    pub(crate) geo: Geometry,
    pub(crate) lay: Layout,
    pub(crate) opts: StoreOptions,
    /// Usable work-buffer length: a multiple of the program size.
    pub(crate) chunk: u32,
    pub(crate) work: &'w mut [u8],
    pub(crate) index: Index<'w>,
    pub(crate) key: [u8; MAX_KEY_LEN],
    pub(crate) key_len: usize,
    pub(crate) pending: Option<Request>,
    pub(crate) io_at: usize,
    pub(crate) io_len: usize,
    pub(crate) mounted: bool,
    pub(crate) active: u8,
    pub(crate) version: u16,
    pub(crate) free: u32,
    pub(crate) erased_until: u32,
    pub(crate) standby_clean: u32,
    pub(crate) torn_tail: bool,
    pub(crate) live_bytes: u32,
    pub(crate) reserved: [u8; RESERVED_LEN],
    pub(crate) reserved_len: Option<u8>,
    pub(crate) compactions: u32,
    /// The program request being split into runs of non-blank units.
    pub(crate) prog: Option<ProgramJob>,
    /// The last request completed without any I/O (a program of blank units only).
    pub(crate) instant: bool,
}

/// A program request in progress, in runs (see `Core::program`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProgramJob {
    pub(crate) addr: u32,
    pub(crate) at: usize,
    pub(crate) len: u32,
    pub(crate) next: u32,
}

/// Which area a procedure works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Area {
    Active,
    Standby,
    /// Area 0 or 1 by number, whichever is active (mount, before it knows).
    Number(u8),
}

/// What a lookup found: the key's index position, the header and the extent of its live
/// record, or nothing.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Found {
    Yes { pos: usize, header: Header, size: u32 },
    No,
}

/// A record that has just become part of the log (appended, or met by mount's scan): its
/// key is [`Core::key`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct NewRecord {
    pub(crate) offset: u32,
    pub(crate) size: u32,
    pub(crate) delete: bool,
}

impl<'w> Core<'w> {
    pub(crate) fn base(&self, area: Area) -> u32 {
        let a = match area {
            Area::Active => self.active,
            Area::Standby => 1 - self.active,
            Area::Number(n) => n,
        };
        a as u32 * self.lay.area_size
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }

    pub(crate) fn request<T>(&mut self, req: Request, at: usize, len: usize) -> Poll<T> {
        self.pending = Some(req);
        self.io_at = at;
        self.io_len = len;
        Pending
    }

    /// Where in the work buffer the byte at area offset `off` lands when [`Core::read`]
    /// reads it: reads start on a read unit, so a read of an unaligned offset (a compact
    /// record's key, the middle of a record) brings `skew` bytes before it along.
    pub(crate) fn skew(&self, off: u32) -> usize {
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
    pub(crate) fn read<T>(&mut self, area: Area, off: u32, len: u32) -> Poll<T> {
        self.issue_read(area, off, len);
        Pending
    }

    // Apart from `read`, which is generic only in what it returns: one copy in flash.
    fn issue_read(&mut self, area: Area, off: u32, len: u32) {
        let r = self.geo.read_size;
        let skew = off % r;
        let from = off - skew;
        let len = align_up(skew + len, r).min(self.lay.area_size.saturating_sub(from));
        let addr = self.base(area) + from;
        self.pending = Some(Request::Read { addr, len });
        self.io_at = 0;
        self.io_len = len as usize;
    }

    /// The bytes `[off, off + len)` of the last [`Core::read`] of `off` (shorter if the read
    /// was clamped at the area end or failed to cover them).
    pub(crate) fn got(&self, off: u32, len: u32) -> &[u8] {
        let s = self.skew(off).min(self.io_len);
        let e = (s + len as usize).min(self.io_len);
        &self.work[s..e]
    }

    /// Programs `work[at..at + len]` at `off`, skipping program units that hold only the
    /// erase value: they read the same erased, and a unit programmed with the erase value
    /// would look erased to every later blank check and be programmed twice. The procedures
    /// see one completion for the whole range.
    pub(crate) fn program<T>(&mut self, area: Area, off: u32, at: usize, len: u32) -> Poll<T> {
        self.issue_program(area, off, at, len);
        Pending
    }

    fn issue_program(&mut self, area: Area, off: u32, at: usize, len: u32) {
        self.prog = Some(ProgramJob { addr: self.base(area) + off, at, len, next: 0 });
        if !self.next_run() {
            self.instant = true;
        }
    }

    /// Issues the next run of non-blank units of the program job; false when none is left.
    pub(crate) fn next_run(&mut self) -> bool {
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

    pub(crate) fn erase<T>(&mut self, area: Area, off: u32) -> Poll<T> {
        let addr = self.base(area) + off;
        self.request(Request::Erase { addr, len: self.geo.erase_size }, 0, 0)
    }

    pub(crate) fn fill<T>(&mut self, offset: u32, at: usize, len: u32) -> Poll<T> {
        self.request(Request::Fill { offset, len }, at, len as usize)
    }

    pub(crate) fn deliver<T>(&mut self, offset: u32, at: usize, len: u32) -> Poll<T> {
        self.request(Request::Deliver { offset, len }, at, len as usize)
    }

    /// How far an area must be erased before a record ending at `end` is written. A log
    /// that ends exactly on a sector boundary also needs the next sector erased: otherwise
    /// the mount scan would run on into whatever an older generation left there.
    pub(crate) fn room_for(&self, end: u32) -> u32 {
        if end.is_multiple_of(self.geo.erase_size) && end < self.lay.area_size {
            end + 1
        } else {
            end
        }
    }

    /// Where the erased sectors an area's head needs end: every sector the reserved slot and
    /// master record overlap (a sector may be smaller than the head), and the next one when
    /// the head ends on a sector boundary ([`Core::room_for`]).
    pub(crate) fn head_erase_end(&self) -> u32 {
        align_up(self.room_for(self.lay.first_record()), self.geo.erase_size).min(self.lay.area_size)
    }

    pub(crate) fn sector_end(&self, off: u32) -> u32 {
        ((off / self.geo.erase_size) + 1) * self.geo.erase_size
    }

    pub(crate) fn is_blank(&self, bytes: &[u8]) -> bool {
        bytes.iter().all(|&b| b == self.geo.erase_value)
    }

    pub(crate) fn watermark(&mut self, area: Area) -> &mut u32 {
        match area {
            Area::Active => &mut self.erased_until,
            Area::Standby => &mut self.standby_clean,
            Area::Number(_) => &mut self.erased_until,
        }
    }

    /// Copies an operation's key in; the key the lookups and appends of this operation use.
    pub(crate) fn set_key(&mut self, key: &[u8]) {
        let n = key.len().min(MAX_KEY_LEN);
        self.key[..n].copy_from_slice(&key[..n]);
        self.key_len = n;
    }

    /// Applies a record that joined the log to the index and the live-byte count: a value
    /// replaces the key's old record (`found`) or adds the key, a delete record drops it.
    /// `IndexFull` only from mount (appends check capacity before they write).
    pub(crate) fn apply_record(&mut self, found: Found, rec: NewRecord) -> Result<(), Error> {
        match (found, rec.delete) {
            (Found::Yes { pos, size: old, .. }, true) => {
                self.index.remove(pos);
                self.live_bytes = self.live_bytes.saturating_sub(old);
            }
            (Found::No, true) => {}
            (Found::Yes { pos, size: old, .. }, false) => {
                self.index.set_offset(pos, rec.offset);
                self.live_bytes = self.live_bytes.saturating_sub(old) + rec.size;
            }
            (Found::No, false) => {
                let hash = format::key_hash(self.key());
                let (_, hi) = self.index.hash_range(hash);
                if !self.index.insert(hi, IndexEntry { hash, offset: rec.offset }) {
                    return Err(Error::IndexFull);
                }
                self.live_bytes += rec.size;
            }
        }
        Ok(())
    }

    /// An append committed: the log now ends after it.
    pub(crate) fn appended(&mut self, found: Found, rec: NewRecord) -> Result<(), Error> {
        self.free = rec.offset + rec.size;
        let r = self.apply_record(found, rec);
        self.check();
        r
    }

    /// Mount found the log's end at `end`; `clean` if the rest of its sector is blank (else a
    /// torn write lies there and the next write compacts first).
    pub(crate) fn found_log_end(&mut self, end: u32, clean: bool) {
        let area = self.lay.area_size;
        self.free = end;
        self.torn_tail = !clean;
        self.erased_until = if end >= area {
            area
        } else if clean {
            self.sector_end(end).min(area)
        } else {
            end
        };
        self.standby_clean = 0;
        self.mounted = true;
        self.check();
    }

    /// A compaction programmed into the standby area and is starting over: nothing of it is
    /// known erased any more.
    pub(crate) fn standby_dirtied(&mut self) {
        self.standby_clean = 0;
        self.check();
    }

    /// A compaction committed (its master record is programmed): the standby area, holding
    /// the live records up to `log_end`, is the store now; the old area is the dirty standby.
    pub(crate) fn switch_area(&mut self, log_end: u32) {
        self.active = 1 - self.active;
        self.version = self.version.wrapping_add(1);
        self.free = log_end;
        self.erased_until = self.standby_clean.max(log_end);
        self.standby_clean = 0;
        self.torn_tail = false;
        self.compactions = self.compactions.wrapping_add(1);
        self.live_bytes = log_end - self.lay.first_record();
        self.check();
    }

    /// A format committed: area 0 holds master version 1 and nothing else; both areas are
    /// known erased up to `erased`.
    pub(crate) fn formatted(&mut self, erased: u32) {
        self.active = 0;
        self.version = 1;
        self.free = self.lay.first_record();
        self.erased_until = erased;
        self.standby_clean = erased;
        self.torn_tail = false;
        self.live_bytes = 0;
        self.mounted = true;
        self.check();
    }

    /// What a mount or format reports about the store now.
    pub(crate) fn mount_info(&self, formatted: bool) -> MountInfo {
        MountInfo {
            active_area: self.active,
            version: self.version,
            keys: self.index.len() as u32,
            free_offset: self.free,
            formatted,
            torn_tail: self.torn_tail,
        }
    }

    /// Mount chose `active` (master record `version`, records in `format`) and will scan its
    /// log from the first record.
    pub(crate) fn chose_area(&mut self, active: u8, version: u16, format: RecordFormat) {
        self.active = active;
        self.version = version;
        self.lay = Layout::with_format(self.geo.program_size, self.lay.area_size, format);
        self.free = self.lay.first_record();
    }

    /// Mount's scan validated the log up to `end`: lookups may read that far.
    pub(crate) fn scanned_to(&mut self, end: u32) {
        debug_assert!(end >= self.free && end <= self.lay.area_size, "scan went backwards or out");
        self.free = end;
    }

    /// An append ended early. If part of its record was programmed, that tail is torn: the
    /// next write compacts it away first (a unit is never programmed twice).
    pub(crate) fn abandoned_append(&mut self, programmed: bool) {
        if programmed {
            self.torn_tail = true;
        }
    }

    /// The RAM state no longer matches flash (a failed compaction or format, a lost power,
    /// an internal error): the next operation must mount again.
    pub(crate) fn needs_mount(&mut self) {
        self.mounted = false;
    }

    /// Forgets the store's state before a mount rebuilds it.
    pub(crate) fn unmount(&mut self) {
        self.mounted = false;
        self.index.clear();
        self.live_bytes = 0;
        self.reserved_len = None;
        self.torn_tail = false;
    }

    /// The invariants of the store's position and erase state (debug builds): the log lies
    /// in the area after the master record; beyond it, unless a torn tail is pending, the
    /// area is erased up to `erased_until`; live records fit in the log.
    pub(crate) fn check(&self) {
        let area = self.lay.area_size;
        debug_assert!(self.lay.first_record() <= self.free && self.free <= area, "log end outside the area");
        debug_assert!(self.torn_tail || self.erased_until >= self.free, "erased watermark below the log end");
        debug_assert!(self.erased_until <= area && self.standby_clean <= area, "watermark past the area end");
        debug_assert!(self.live_bytes <= self.free - self.lay.first_record(), "more live bytes than log");
        debug_assert!(self.index.len() <= self.index.capacity(), "index over capacity");
    }
}
