//! Compaction: copying live records into the standby area and switching areas by the master record.

use super::api::*;
use super::erase::EnsureErased;
use super::master::WriteMaster;
use super::read_record::{ReadMode, ReadRecord};
use super::shared::*;
use crate::format::{self, Header};
use core::task::Poll::{Pending, Ready};

/// Copies every live record (but `skip`) into the standby area, writes the reserved data and
/// a master record with the next version, and switches areas. The master header is the
/// commit point; until it is programmed the old area stays the store.
///
/// A record that fits the work buffer (nearly all) is read once, whole, checked in RAM and
/// programmed from there. A larger one is checked by a streaming read first and then copied
/// chunk by chunk: a copy whose CRC failed only at its end would already be in the standby
/// area, and would end every later mount scan there.
pub(crate) struct Compact {
    skip: Skip,
    /// Index position of the record being copied.
    pos: usize,
    /// Where it goes: the standby area's log end.
    to: u32,
    st: CState,
}

/// Which entries a compaction leaves behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    None,
    One(usize),
    All,
}

enum CState {
    Start,
    /// The standby area's head (reserved slot and master record) is being made erased.
    Head(EnsureErased),
    AwaitReserved,
    NextRecord,
    AwaitHeader {
        off: u32,
    },
    /// Room for a record of `size` at `to` is being made erased.
    Room {
        off: u32,
        header: Header,
        size: u32,
        e: EnsureErased,
    },
    /// The whole record is being read (it fits the work buffer).
    AwaitRecord {
        off: u32,
        header: Header,
        size: u32,
    },
    /// The whole record is being programmed at `to`.
    AwaitProgram {
        size: u32,
    },
    /// A record larger than the work buffer is being checked.
    Verify(ReadRecord),
    AwaitCopyRead {
        off: u32,
        size: u32,
        done: u32,
        len: u32,
    },
    AwaitCopyProgram {
        off: u32,
        size: u32,
        done: u32,
        len: u32,
    },
    Master(WriteMaster),
}

impl Compact {
    pub(crate) fn new(skip: Skip) -> Self {
        Compact { skip, pos: 0, to: 0, st: CState::Start }
    }

    /// The entry this compaction leaves out, if one.
    pub(crate) fn skipped(&self) -> Option<usize> {
        match self.skip {
            Skip::One(p) => Some(p),
            _ => None,
        }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<()> {
        let r = self.step(c, ev);
        if let Ready(Err(_)) = r {
            // Index offsets may point into the standby area now: rebuild from flash.
            c.needs_mount();
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
                    let Some(e) = c.index.get(self.pos) else {
                        // The master record's header is the switch.
                        self.st = CState::Master(WriteMaster::new(Area::Standby, c.version.wrapping_add(1)));
                        continue;
                    };
                    self.st = CState::AwaitHeader { off: e.offset };
                    return c.read(Area::Active, e.offset, c.lay.header_len());
                }
                CState::AwaitHeader { off } => {
                    let off = *off;
                    if unreadable(ev)? {
                        self.drop_record(c);
                        continue;
                    }
                    let lay = c.lay;
                    let parsed = lay.parse_header(c.got(off, lay.header_len()));
                    let Some((header, size)) = parsed.and_then(|h| Some((h, lay.record_extent(off, &h)?)))
                    else {
                        self.drop_record(c);
                        continue;
                    };
                    if self.to + size > lay.log_limit() {
                        // Only an image written elsewhere (a full Mbed-CE store, whose records
                        // may end at the area end) holds more than this engine's capacity;
                        // copying it all would write a record Mbed cannot read. The old area
                        // stays the store.
                        return Ready(Err(Error::Full));
                    }
                    if size > c.chunk {
                        self.st = CState::Verify(ReadRecord::new(Area::Active, off, ReadMode::Verify));
                        continue;
                    }
                    let e = EnsureErased::new(Area::Standby, c.room_for(self.to + size));
                    self.st = CState::Room { off, header, size, e };
                }
                CState::Room { off, header, size, e } => {
                    let (off, header, size) = (*off, *header, *size);
                    ready!(e.poll(c, ev));
                    if size > c.chunk {
                        self.st = CState::AwaitCopyProgram { off, size, done: 0, len: 0 };
                        continue;
                    }
                    // Read only now: making room reads through the work buffer.
                    self.st = CState::AwaitRecord { off, header, size };
                    return c.read(Area::Active, off, size);
                }
                CState::AwaitRecord { off, header, size } => {
                    let (off, header, size) = (*off, *header, *size);
                    if unreadable(ev)? || !c.record_checks_out(off, &header, size) {
                        // Nothing of it is programmed: leave it behind.
                        self.drop_record(c);
                        continue;
                    }
                    self.st = CState::AwaitProgram { size };
                    let at = c.skew(off);
                    return c.program(Area::Standby, self.to, at, size);
                }
                CState::AwaitProgram { size } => {
                    let size = *size;
                    ev.result(IoKind::Program)?;
                    self.copied(c, size);
                }
                CState::Verify(rr) => match rr.poll(c, ev) {
                    Pending => return Pending,
                    Ready(Ok((header, size))) => {
                        let off = c.index.get(self.pos).map_or(0, |e| e.offset);
                        let e = EnsureErased::new(Area::Standby, c.room_for(self.to + size));
                        self.st = CState::Room { off, header, size, e };
                    }
                    Ready(Err(Error::Corrupt | Error::Io(IoKind::Read, IoError::Ecc | IoError::Other))) => {
                        self.drop_record(c);
                    }
                    Ready(Err(e)) => return Ready(Err(e)),
                },
                CState::AwaitCopyRead { off, size, done, len } => {
                    let (off, size, done, len) = (*off, *size, *done, *len);
                    ev.result(IoKind::Read)?;
                    self.st = CState::AwaitCopyProgram { off, size, done, len };
                    // Record offsets and copy chunks are whole program units, so whole read
                    // units: the skew is 0, but the read path says so, not this code.
                    let at = c.skew(off + done);
                    return c.program(Area::Standby, self.to + done, at, len);
                }
                CState::AwaitCopyProgram { off, size, done, len } => {
                    let (off, size, mut done, len) = (*off, *size, *done, *len);
                    if len > 0 {
                        ev.result(IoKind::Program)?;
                        done += len;
                    }
                    if done >= size {
                        self.copied(c, size);
                    } else {
                        let len = (size - done).min(c.chunk);
                        self.st = CState::AwaitCopyRead { off, size, done, len };
                        return c.read(Area::Active, off + done, len);
                    }
                }
                CState::Master(w) => {
                    ready!(w.poll(c, ev));
                    // Switched. The old area becomes the standby, dirty until maintenance.
                    if self.skip == Skip::All {
                        c.index.clear();
                    }
                    c.switch_area(self.to);
                    return Ready(Ok(()));
                }
            }
            ev = Ev::Start;
        }
    }

    /// The record at `pos` is in the standby area now, at `to`.
    fn copied(&mut self, c: &mut Core, size: u32) {
        c.index.set_offset(self.pos, self.to);
        self.to += size;
        self.pos += 1;
        self.st = CState::NextRecord;
    }

    /// A live record that no longer checks out would stop every later mount scan at its
    /// copy: drop it (its value was unreadable anyway).
    fn drop_record(&mut self, c: &mut Core) {
        c.index.remove(self.pos);
        if let Skip::One(p) = self.skip {
            if p > self.pos {
                self.skip = Skip::One(p - 1);
            }
        }
        self.st = CState::NextRecord;
    }
}

/// Whether a read failed in a way that makes the record unreadable (ECC or another device
/// error); a power loss stops the compaction instead.
fn unreadable(ev: Ev) -> Result<bool, Error> {
    match ev {
        Ev::Io(Err(IoError::PowerLost)) => Err(Error::Io(IoKind::Read, IoError::PowerLost)),
        Ev::Io(Err(IoError::Ecc | IoError::Other)) => Ok(true),
        _ => ev.result(IoKind::Read).map(|()| false),
    }
}
