//! State every procedure shares (`Core`): the store's position and erase state, the work buffer, the
//! one aligned read path and the program path that never programs a unit twice.

use super::api::*;
use crate::format::{align_up, Layout, MAX_KEY_LEN, RESERVED_LEN};
use crate::geometry::Geometry;
use crate::index::Index;
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
}

impl<'w> Core<'w> {
    pub(crate) fn base(&self, area: Area) -> u32 {
        let a = match area {
            Area::Active => self.active,
            Area::Standby => 1 - self.active,
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
        let r = self.geo.read_size;
        let skew = off % r;
        let from = off - skew;
        let len = align_up(skew + len, r).min(self.lay.area_size.saturating_sub(from));
        let addr = self.base(area) + from;
        self.request(Request::Read { addr, len }, 0, len as usize)
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
        self.prog = Some(ProgramJob { addr: self.base(area) + off, at, len, next: 0 });
        if !self.next_run() {
            self.instant = true;
        }
        Pending
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
        }
    }
}
