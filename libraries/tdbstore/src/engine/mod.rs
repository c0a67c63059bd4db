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
//!   area (Mbed writes over it and loses that value, `docs/format.md` §17, B4).
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
mod lookup;
mod maintain;
mod master;
mod mount;
mod read_record;
#[cfg(feature = "reserved-data")]
mod reserved;
mod shared;
mod write;

#[cfg(feature = "iteration")]
pub use api::Cursor;
#[cfg(feature = "iteration")]
pub use api::NextKey;
use api::Outcome;
#[cfg(feature = "reserved-data")]
pub use api::ReservedData;
pub use api::{
    Error, IoError, IoKind, KeyInfo, MountInfo, Op, Output, Request, SetWhen, Step, StoreInfo, StoreOptions,
    Task, Value,
};

#[cfg(feature = "incremental")]
use self::append::Feed;
use self::compact::{Compact, Skip};
use self::format_region::Format;
#[cfg(any(feature = "incremental", feature = "reserved-data"))]
use self::lookup::Deliver;
use self::lookup::Get;
#[cfg(feature = "iteration")]
use self::lookup::Next;
use self::maintain::Maintain;
use self::mount::Mount;
#[cfg(feature = "reserved-data")]
use self::reserved::SetReserved;
use self::shared::*;
#[cfg(feature = "incremental")]
use self::write::Staged;
use self::write::{Write, WriteKind, Written};
#[cfg(feature = "iteration")]
use crate::format::KeyError;
use crate::format::{self, align_up, Layout, MAX_KEY_LEN, RESERVED_LEN, USER_FLAGS};
use crate::geometry::{Geometry, GeometryError};
use crate::index::{Index, IndexEntry};
use ::core::task::Poll::{Pending, Ready};

/// The procedure of the operation in flight.
enum Machine {
    Mount(Mount),
    Format(Format),
    /// Format of a mounted store: an empty generation, committed atomically.
    Reformat(Compact),
    Get(Get),
    #[cfg(feature = "iteration")]
    Next(Next),
    #[cfg(any(feature = "incremental", feature = "reserved-data"))]
    Deliver(Deliver),
    Write(Write),
    /// Feeding (and perhaps committing) the open incremental set.
    #[cfg(feature = "incremental")]
    IncData(Feed),
    #[cfg(feature = "reserved-data")]
    ReservedSet(SetReserved),
    /// Reset and compaction.
    Compact(Compact),
    Maintain(Maintain),
}

// ------------------------------------------------------------------------------------------
// The public engine.

/// The TDBStore engine over caller-provided buffers. See the crate docs for the driving loop.
pub struct Store<'w> {
    core: Core<'w>,
    machine: Option<Machine>,
    /// The last operation's result, until [`Store::finish`] takes it.
    result: Option<Result<Outcome, Error>>,
    #[cfg(feature = "incremental")]
    inc: Option<Staged>,
    /// Length of the work buffer while it is lent out ([`Store::lend`]): nothing runs until
    /// it is back.
    lent: Option<usize>,
}

impl<'w> Store<'w> {
    /// Smallest work buffer for a geometry: a header plus the longest key, in program units.
    pub const fn min_work_len(geometry: &Geometry) -> usize {
        // `new` refuses larger program units; clamping keeps this arithmetic from overflowing
        // for them.
        let p = match geometry.program_size {
            0 => 1,
            p if p > crate::geometry::MAX_PROGRAM_SIZE => crate::geometry::MAX_PROGRAM_SIZE,
            p => p,
        };
        let hs = align_up(format::HEADER_LEN, p);
        let need = align_up(hs + MAX_KEY_LEN as u32 + 1, p);
        // Or the reserved area, which is built in the work buffer whole.
        let reserved = align_up(format::RESERVED_AREA_LEN, p);
        // Plus a hold area for a record's head while its tail is programmed.
        ((if need > reserved { need } else { reserved }) + hs) as usize
    }

    /// A store over `geometry`, unmounted. `work` must hold [`Store::min_work_len`] bytes (more
    /// makes fewer, larger requests); `index` holds one entry per key the store may keep.
    pub fn new(
        geometry: Geometry,
        options: StoreOptions,
        work: &'w mut [u8],
        index: &'w mut [IndexEntry],
    ) -> Result<Store<'w>, GeometryError> {
        crate::geometry::check_geometry(&geometry)?;
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
            result: None,
            #[cfg(feature = "incremental")]
            inc: None,
            lent: None,
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

    /// Whether the store is mounted (false after a failed compaction, a lost power or an
    /// internal error: the next operation must be a mount).
    pub fn is_mounted(&self) -> bool {
        self.core.mounted
    }

    /// Whether an incremental set is open.
    pub fn incremental_open(&self) -> bool {
        #[cfg(feature = "incremental")]
        return self.inc.is_some();
        #[cfg(not(feature = "incremental"))]
        false
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
    /// program or delivery. Empty when nothing is pending or the buffer is lent out.
    pub fn io_buf(&mut self) -> &mut [u8] {
        let c = &mut self.core;
        match (c.pending, self.lent) {
            (Some(_), None) => c.work.get_mut(c.io_at..c.io_at + c.io_len).unwrap_or_default(),
            _ => &mut [],
        }
    }

    /// The pending request, if any.
    pub fn pending(&self) -> Option<Request> {
        self.core.pending
    }

    /// Lends the whole work buffer to the driver of a pending flash read or program, so it
    /// needs no buffer of its own: `(buffer, at, len)`, where `buffer[at..at + len]` is where
    /// the read lands or what the program writes. `None` for other requests, or if it is
    /// already lent. The buffer comes back with [`Store::give_back`] before [`Store::resume`];
    /// until then the store starts and resumes nothing (`Error::Busy`, `Error::Internal`).
    pub fn lend(&mut self) -> Option<(&'w mut [u8], usize, usize)> {
        let c = &mut self.core;
        if self.lent.is_some() || !matches!(c.pending, Some(Request::Read { .. } | Request::Program { .. })) {
            return None;
        }
        let work = ::core::mem::take(&mut c.work);
        self.lent = Some(work.len());
        Some((work, c.io_at, c.io_len))
    }

    /// Takes back the buffer [`Store::lend`] lent. `Err(buffer)` if none is lent or this is
    /// not the one (its length differs): the driver keeps it, and the store keeps waiting.
    pub fn give_back(&mut self, buffer: &'w mut [u8]) -> Result<(), &'w mut [u8]> {
        match self.lent {
            Some(len) if buffer.len() == len => {
                self.core.work = buffer;
                self.lent = None;
                Ok(())
            }
            _ => Err(buffer),
        }
    }

    /// Whether the work buffer is lent out ([`Store::lend`]).
    pub fn is_lent(&self) -> bool {
        self.lent.is_some()
    }

    /// Whether background work is due ([`Op::Maintain`] would do something): a torn tail to
    /// compact, the standby area or the next sector to erase, an early compaction. False
    /// while unmounted or while an operation is in flight.
    pub fn maintenance_due(&self) -> bool {
        self.core.mounted && self.machine.is_none() && maintain::due(&self.core)
    }

    /// What the operation in flight is, so a driver can route its completion without
    /// remembering what it started.
    pub fn task(&self) -> Option<Task> {
        self.machine.as_ref().map(|m| match m {
            Machine::Mount(_) => Task::Mount,
            Machine::Format(_) | Machine::Reformat(_) => Task::Format,
            Machine::Get(_) => Task::Read,
            #[cfg(feature = "iteration")]
            Machine::Next(_) => Task::Read,
            #[cfg(any(feature = "incremental", feature = "reserved-data"))]
            Machine::Deliver(_) => Task::Read,
            Machine::Write(_) => Task::Write,
            #[cfg(feature = "incremental")]
            Machine::IncData(_) => Task::Write,
            #[cfg(feature = "reserved-data")]
            Machine::ReservedSet(_) => Task::Write,
            Machine::Compact(_) => Task::Compact,
            Machine::Maintain(_) => Task::Maintain,
        })
    }

    /// Starts an operation. Refusals (bad input, busy, not mounted) come back at once as
    /// [`Step::Done`], with the reason for [`Store::finish`], and leave any operation in
    /// flight untouched.
    pub fn start(&mut self, op: Op<'_>) -> Step {
        if self.machine.is_some() || self.lent.is_some() {
            return self.done(Err(Error::Busy));
        }
        self.result = None;
        self.core.prog = None;
        self.core.instant = false;
        match self.begin(op) {
            Ok(m) => {
                self.machine = Some(m);
                self.run(Ev::Start)
            }
            Err(e) => self.done(Err(e)),
        }
    }

    /// Continues the operation with the result of its pending request.
    pub fn resume(&mut self, result: Result<(), IoError>) -> Step {
        if self.machine.is_none() || self.core.pending.is_none() {
            return self.done(Err(Error::Internal));
        }
        if self.lent.is_some() {
            // The driver still holds the buffer the request's data is in: nothing can go on.
            self.machine = None;
            self.core.pending = None;
            self.core.needs_mount();
            return self.done(Err(Error::Internal));
        }
        self.core.pending = None;
        if self.core.prog.is_some() {
            if result.is_ok() && self.core.next_run() {
                return match self.core.pending {
                    Some(req) => Step::Io(req),
                    None => self.done(Err(Error::Internal)),
                };
            }
            self.core.prog = None;
        }
        self.run(Ev::Io(result))
    }

    /// The result of the operation that ended with [`Step::Done`], as its [`Output`] type
    /// (`T` is the one the operation has: [`MountInfo`] for a mount, [`Value`] for a get, and
    /// so on). Taken once. `Err(Error::Internal)` if there is none to take (nothing ended
    /// since the last `finish`, or an operation is in flight) or `T` is not its operation's
    /// type: both driver bugs.
    pub fn finish<T: Output>(&mut self) -> Result<T, Error> {
        T::from_outcome(api::sealed::Finished(self.result.take().ok_or(Error::Internal)??))
            .ok_or(Error::Internal)
    }

    /// Ends the operation (or refusal) with `r`, kept for [`Store::finish`].
    fn done(&mut self, r: Result<Outcome, Error>) -> Step {
        self.result = Some(r);
        Step::Done
    }

    /// Abandons the operation in flight (e.g. its driver was torn down). Flash may hold part
    /// of a record; the store treats it as a torn tail.
    pub fn cancel(&mut self) {
        if self.machine.take().is_some() {
            self.core.pending = None;
            self.core.abandoned_append(true);
            self.core.needs_mount();
        }
    }

    fn set_key(&mut self, key: &[u8]) -> Result<(), Error> {
        format::validate_key(key).map_err(Error::InvalidKey)?;
        self.core.set_key(key);
        Ok(())
    }

    /// Checks an operation against the store's state and builds its procedure.
    fn begin(&mut self, op: Op<'_>) -> Result<Machine, Error> {
        // Reads would reuse the work buffer that holds the staged bytes; other writes would too.
        #[cfg(feature = "incremental")]
        if self.inc.is_some()
            && !matches!(
                op,
                Op::SetData { .. } | Op::SetFinalize | Op::SetAbort | Op::Mount | Op::Format { .. }
            )
        {
            return Err(Error::Busy);
        }
        if !self.core.mounted && !matches!(op, Op::Mount | Op::Format { .. }) {
            return Err(Error::NotMounted);
        }
        Ok(match op {
            Op::Mount => {
                #[cfg(feature = "incremental")]
                {
                    self.inc = None;
                }
                self.core.unmount();
                Machine::Mount(Mount::new())
            }
            Op::Format { full } => {
                #[cfg(feature = "incremental")]
                {
                    self.inc = None;
                }
                let c = &mut self.core;
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
                Machine::Get(Get::new(out_len, false))
            }
            Op::GetInfo { key } => {
                self.set_key(key)?;
                Machine::Get(Get::new(0, true))
            }
            Op::Set { key, len, flags, when } => self.begin_write(WriteKind::Set(when), key, len, flags)?,
            #[cfg(feature = "incremental")]
            Op::SetStart { key, len, flags } => self.begin_write(WriteKind::Start, key, len, flags)?,
            Op::Remove { key } => {
                self.set_key(key)?;
                Machine::Write(Write::new(WriteKind::Remove, 0, 0))
            }
            #[cfg(feature = "incremental")]
            Op::SetData { len } => {
                self.inc.as_ref().ok_or(Error::SizeMismatch)?;
                Machine::IncData(Feed::new(len, false))
            }
            #[cfg(feature = "incremental")]
            Op::SetFinalize => {
                self.inc.as_ref().ok_or(Error::SizeMismatch)?;
                Machine::IncData(Feed::new(0, true))
            }
            #[cfg(feature = "incremental")]
            Op::SetAbort => {
                if let Some(i) = self.inc.take() {
                    self.core.abandoned_append(i.append.programmed);
                }
                Machine::Deliver(Deliver::new(0, 0, Outcome::Done))
            }
            Op::Reset => {
                // Mbed's reset() clears the reserved data with the keys (`docs/format.md` §16).
                self.core.reserved_len = None;
                Machine::Compact(Compact::new(Skip::All))
            }
            #[cfg(feature = "iteration")]
            Op::Next { prefix, cursor, out_len } => {
                if prefix.len() > MAX_KEY_LEN {
                    return Err(Error::InvalidKey(KeyError::TooLong));
                }
                let c = &mut self.core;
                c.set_key(prefix);
                let mut pos = cursor.pos as usize;
                if let Some(h) = cursor.last_hash {
                    // Re-anchor if the index shifted under the cursor since the last call.
                    let e = c.index.entries();
                    if pos == 0 || e.get(pos - 1).map(|x| x.hash) != Some(h) {
                        pos = e.partition_point(|x| x.hash >= h);
                    }
                }
                Machine::Next(Next::new(pos, out_len))
            }
            #[cfg(feature = "reserved-data")]
            Op::ReservedSet { len } => {
                if self.core.reserved_len.is_some() {
                    return Err(Error::WriteProtected);
                }
                if len as usize > RESERVED_LEN {
                    return Err(Error::ValueTooLarge);
                }
                Machine::ReservedSet(SetReserved::new(len))
            }
            #[cfg(feature = "reserved-data")]
            Op::ReservedGet { out_len } => {
                let c = &mut self.core;
                let n = c.reserved_len.ok_or(Error::NotFound)? as usize;
                c.work[..n].copy_from_slice(&c.reserved[..n]);
                let (len, copied) = (n as u32, (n as u32).min(out_len));
                Machine::Deliver(Deliver::new(0, copied, Outcome::Reserved(ReservedData { len, copied })))
            }
            Op::Maintain => Machine::Maintain(Maintain::Choose),
            Op::Compact => Machine::Compact(Compact::new(Skip::None)),
        })
    }

    fn begin_write(&mut self, kind: WriteKind, key: &[u8], len: u32, flags: u32) -> Result<Machine, Error> {
        if flags & !USER_FLAGS != 0 {
            return Err(Error::InvalidFlags);
        }
        self.set_key(key)?;
        let lay = self.core.lay;
        if lay.record_size(key.len() as u32, len).is_none_or(|s| s > lay.capacity()) {
            return Err(Error::ValueTooLarge);
        }
        Ok(Machine::Write(Write::new(kind, flags, len)))
    }

    fn run(&mut self, ev: Ev) -> Step {
        let Some(mut m) = self.machine.take() else {
            return self.done(Err(Error::Internal));
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
                // Every procedure that returns Pending has made a request.
                None => self.done(Err(Error::Internal)),
            },
            Ready(r) => {
                self.core.pending = None;
                if let Err(Error::Io(_, IoError::PowerLost) | Error::Internal) = r {
                    self.core.needs_mount();
                }
                self.done(r)
            }
        }
    }

    /// Polls the procedure in flight.
    fn poll_machine(&mut self, m: &mut Machine, ev: Ev) -> Poll<Outcome> {
        let c = &mut self.core;
        let done = |()| Outcome::Done;
        match m {
            Machine::Mount(p) => p.poll(c, ev).map(|r| r.map(Outcome::Mounted)),
            Machine::Format(p) => p.poll(c, ev).map(|r| r.map(Outcome::Mounted)),
            Machine::Reformat(k) => {
                ready!(k.poll(c, ev));
                Ready(Ok(Outcome::Mounted(c.mount_info(true))))
            }
            Machine::Get(p) => p.poll(c, ev),
            #[cfg(feature = "iteration")]
            Machine::Next(p) => p.poll(c, ev),
            #[cfg(any(feature = "incremental", feature = "reserved-data"))]
            Machine::Deliver(p) => p.poll(c, ev),
            Machine::Write(w) => match ready!(w.poll(c, ev)) {
                Written::Committed => Ready(Ok(Outcome::Done)),
                #[cfg(feature = "incremental")]
                Written::Staged(staged) => {
                    self.inc = Some(staged);
                    Ready(Ok(Outcome::Done))
                }
            },
            #[cfg(feature = "incremental")]
            Machine::IncData(feed) => self.poll_incremental(feed, ev),
            #[cfg(feature = "reserved-data")]
            Machine::ReservedSet(p) => p.poll(c, ev).map(|r| r.map(done)),
            Machine::Compact(k) => k.poll(c, ev).map(|r| r.map(done)),
            Machine::Maintain(p) => p.poll(c, ev),
        }
    }

    /// Feeds the open incremental set; on its finalize, commits it. A failed or oversize
    /// incremental set is abandoned, as Mbed's is.
    #[cfg(feature = "incremental")]
    fn poll_incremental(&mut self, feed: &mut Feed, ev: Ev) -> Poll<Outcome> {
        let c = &mut self.core;
        let Some(inc) = self.inc.as_mut() else {
            return Ready(Err(Error::Internal));
        };
        match ready_or(feed.poll(c, &mut inc.append, ev)) {
            None => Pending,
            Some(Err(e)) => {
                c.abandoned_append(inc.append.programmed);
                self.inc = None;
                Ready(Err(e))
            }
            Some(Ok(())) => {
                if feed.finalize {
                    // The key buffer still holds this set's key: every operation that would
                    // reuse it is refused while an incremental set is open.
                    let staged = self.inc.take().ok_or(Error::Internal)?;
                    staged.commit(c)?;
                }
                Ready(Ok(Outcome::Done))
            }
        }
    }
}

/// `Pending` as `None`.
#[cfg(feature = "incremental")]
fn ready_or<T>(p: Poll<T>) -> Option<Result<T, Error>> {
    match p {
        Pending => None,
        Ready(r) => Some(r),
    }
}

#[cfg(test)]
mod tests;
