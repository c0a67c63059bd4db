//! Compaction: copying live records into the standby area and switching areas by the master record.

use super::api::*;
use super::erase::EnsureErased;
use super::master::WriteMaster;
use super::shared::*;
use crate::crc::Crc32;
use crate::format::{self, Header};
use core::task::Poll::{Pending, Ready};

/// Copies every live record (but `skip`) into the standby area, writes the reserved data and
/// a master record with the next version, and switches areas. The master header is the
/// commit point; until it is programmed the old area stays the store.
///
/// Each live record is read once: chunk by chunk through the work buffer, its CRC checked on
/// the way, each chunk programmed from where it was read. A record that fits one chunk
/// (nearly all) is checked before anything of it is programmed, and left behind if it
/// rotted since mount. A larger one is only known good at its last chunk: if it fails there,
/// its first chunks are already in the standby area, where they would end every later mount
/// scan. The compaction then drops the record and starts over on a standby area erased
/// again (`restart`): an erase in the rare case instead of a second read of every large
/// record in every compaction.
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
    /// The chunk of `len` bytes after `copy.done` is being read.
    AwaitChunk {
        copy: Copying,
        len: u32,
    },
    /// That chunk is being programmed at `to + copy.done`.
    AwaitChunkProgram {
        copy: Copying,
        len: u32,
    },
    Master(WriteMaster),
    /// Committed; the old area's head (reserved slot and master record) is being erased, so
    /// Mbed reads neither (see [`Compact::retires_old_area`]).
    Retire(EnsureErased),
}

/// A record on its way from the active area (at `off`) to the standby area.
#[derive(Clone, Copy, Debug)]
struct Copying {
    off: u32,
    header: Header,
    size: u32,
    /// Bytes read, checked and programmed so far.
    done: u32,
    /// The record's CRC over them.
    crc: Crc32,
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
                    // Every sector the head overlaps (a sector may be smaller than the head),
                    // and the next one if the head ends on a sector boundary: the log may end
                    // there, and a mount scan must not run on into an older generation.
                    self.st = CState::Head(EnsureErased::new(Area::Standby, c.room_for(first)));
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
                    let e = EnsureErased::new(Area::Standby, c.room_for(self.to + size));
                    self.st = CState::Room { off, header, size, e };
                }
                CState::Room { off, header, size, e } => {
                    let (off, header, size) = (*off, *header, *size);
                    ready!(e.poll(c, ev));
                    // Read only now: making room reads through the work buffer.
                    let copy = Copying { off, header, size, done: 0, crc: c.lay.crc_start(&header) };
                    return self.read_chunk(c, copy);
                }
                CState::AwaitChunk { copy, len } => {
                    let (mut copy, len) = (*copy, *len);
                    if unreadable(ev)? || !copy.check(c, len) {
                        if copy.done == 0 {
                            // Nothing of it is programmed: leave it behind.
                            self.drop_record(c);
                        } else {
                            self.restart(c);
                        }
                        continue;
                    }
                    self.st = CState::AwaitChunkProgram { copy, len };
                    // Record offsets and chunks are whole program units, so whole read units:
                    // the skew is 0, but the read path says so, not this code.
                    let at = c.skew(copy.off + copy.done);
                    return c.program(Area::Standby, self.to + copy.done, at, len);
                }
                CState::AwaitChunkProgram { copy, len } => {
                    let (mut copy, len) = (*copy, *len);
                    ev.result(IoKind::Program)?;
                    copy.done += len;
                    if copy.done >= copy.size {
                        self.copied(c, copy.size);
                    } else {
                        return self.read_chunk(c, copy);
                    }
                }
                CState::Master(w) => {
                    ready!(w.poll(c, ev));
                    // Switched. The old area becomes the standby, dirty until maintenance.
                    if self.skip == Skip::All {
                        c.index.clear();
                    }
                    c.switch_area(self.to);
                    if !self.retires_old_area(c) {
                        return Ready(Ok(()));
                    }
                    // Erased, never programmed over (a unit is programmed once per erase).
                    // A cut before this erase completes leaves both master records valid:
                    // this engine's serial comparison still picks the new area, and the next
                    // maintenance erases the old one's head anyway.
                    // The whole head, in as many sectors as it spans (its master header may
                    // lie in the second one or later).
                    self.st = CState::Retire(EnsureErased::new(Area::Standby, first));
                }
                CState::Retire(e) => {
                    return match e.poll(c, ev) {
                        Ready(Err(Error::Io(k, IoError::PowerLost))) => {
                            Ready(Err(Error::Io(k, IoError::PowerLost)))
                        }
                        // Committed already: a failed erase leaves the head to maintenance,
                        // which retries it first (the standby watermark stays below it).
                        Ready(_) => Ready(Ok(())),
                        Pending => Pending,
                    };
                }
            }
            ev = Ev::Start;
        }
    }

    /// Whether the old area's head must go as soon as the new master record is committed
    /// (called after the switch, so the old area is the standby):
    /// - after a reset or a format (everything skipped): Mbed's `reset()` clears the
    ///   reserved data too (`docs/format.md` §16), and its `reserved_data_get` reads area 0 first, then
    ///   area 1, whichever is active, so the old area's copy must not survive;
    /// - at the version wrap, where Mbed's plain u16 comparison (B5) would pick the old area.
    fn retires_old_area(&self, c: &Core) -> bool {
        self.skip == Skip::All || !format::mbed_agrees(c.active, c.version)
    }

    /// Reads the record's next chunk.
    fn read_chunk(&mut self, c: &mut Core, copy: Copying) -> Poll<()> {
        let len = (copy.size - copy.done).min(c.chunk);
        self.st = CState::AwaitChunk { copy, len };
        c.read(Area::Active, copy.off + copy.done, len)
    }

    /// The record being copied failed its check after some of it was programmed: drop it and
    /// copy everything again into a standby area erased anew (the blank checks find what was
    /// programmed). Each restart drops one record, so restarts end.
    fn restart(&mut self, c: &mut Core) {
        self.drop_record(c);
        c.standby_dirtied();
        self.st = CState::Start;
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

impl Copying {
    /// Checks the chunk of `len` bytes just read after `done`: the first holds the header
    /// this compaction parsed (it may have rotted since), and each adds to the CRC, which
    /// must hold at the last. False: the record no longer checks out.
    fn check(&mut self, c: &Core, len: u32) -> bool {
        let lay = c.lay;
        let bytes = c.got(self.off + self.done, len);
        if bytes.len() != len as usize {
            return false;
        }
        if self.done == 0 && lay.parse_header(bytes) != Some(self.header) {
            return false;
        }
        // The CRC covers the key and data: record bytes [body_offset, crc_end).
        let crc_end = lay.body_offset + self.header.key_len as u32 + self.header.data_len;
        let (from, to) = (self.done.max(lay.body_offset), (self.done + len).min(crc_end));
        if from < to {
            let covered = bytes.get((from - self.done) as usize..(to - self.done) as usize);
            self.crc.update(covered.unwrap_or_default());
        }
        self.done + len < self.size || self.crc.value() == self.header.crc
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
