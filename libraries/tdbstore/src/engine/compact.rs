//! Compaction: copying live records into the standby area and switching areas by the master record.

use super::api::*;
use super::append::*;
use super::erase::*;
use super::read_record::*;
use super::shared::*;
use crate::format::{self};
use core::task::Poll::{Pending, Ready};

/// Copies every live record (but `skip`) into the standby area, writes the reserved data and
/// a master record with the next version, and switches areas. The master header is the
/// commit point; until it is programmed the old area stays the store.
pub(crate) struct Compact {
    pub(crate) skip: Skip,
    pub(crate) pos: usize,
    pub(crate) to: u32,
    pub(crate) st: CState,
}

/// Which entries a compaction leaves behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    None,
    One(usize),
    All,
}

pub(crate) enum CState {
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
    pub(crate) fn new(skip: Skip) -> Self {
        Compact { skip, pos: 0, to: 0, st: CState::Start }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<()> {
        let r = self.step(c, ev);
        if let Ready(Err(_)) = r {
            // Index offsets may point into the standby area now: rebuild from flash.
            c.mounted = false;
        }
        r
    }

    pub(crate) fn step(&mut self, c: &mut Core, mut ev: Ev) -> Poll<()> {
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
