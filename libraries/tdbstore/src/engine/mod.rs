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

/// Propagates `Pending` and errors from a sub-procedure.
macro_rules! ready {
    ($e:expr) => {
        match $e {
            ::core::task::Poll::Pending => return ::core::task::Poll::Pending,
            ::core::task::Poll::Ready(Err(e)) => return ::core::task::Poll::Ready(Err(e)),
            ::core::task::Poll::Ready(Ok(v)) => v,
        }
    };
}

mod api;
mod append;
mod compact;
mod erase;
mod find;
mod format_region;
mod maintain;
mod mount;
mod read_record;
mod reserved;
mod shared;
mod write;

pub use api::{
    Cursor, Error, IoError, IoKind, MountInfo, Op, Outcome, Request, Step, StoreInfo, StoreOptions,
};

use self::append::*;
use self::compact::*;
use self::find::*;
use self::format_region::*;
use self::maintain::*;
use self::mount::*;
use self::read_record::*;
use self::reserved::*;
use self::shared::*;
use self::write::*;
use crate::format::{self, align_up, KeyError, Layout, DELETE_FLAG, MAX_KEY_LEN, RESERVED_LEN, USER_FLAGS};
use crate::geometry::{Geometry, GeometryError};
use crate::index::{Index, IndexEntry};
use ::core::task::Poll::{Pending, Ready};

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
