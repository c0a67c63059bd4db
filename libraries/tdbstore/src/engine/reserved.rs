//! The write-once reserved data (Mbed's `reserved_data_set`).

use super::api::*;
use super::compact::*;
use super::shared::*;
use crate::format::{self};
use core::task::Poll::Ready;

/// Sets the write-once reserved data as Mbed does: programmed into the active area's
/// reserved slot (bytes `0..MRO`, which format and compaction leave erased), the data first
/// and then the trailer, whose CRC commits it. Mbed's `reserved_data_get` takes the first area
/// (0, then 1) whose trailer checks out, so data committed anywhere else first (in the standby
/// area, by a compaction that a power cut then stops short of its master record) would be
/// Mbed's reserved data and not this engine's. If the slot is not blank (a set cut short
/// there), a compaction first moves the store to the other area, whose slot it leaves erased.
/// Later compactions copy the data into each new area before its master record.
pub(crate) struct SetReserved {
    pub(crate) len: u32,
    pub(crate) st: RsState,
}

pub(crate) enum RsState {
    Start,
    AwaitFill,
    AwaitSlotRead,
    Compact(Compact),
    AwaitData { trailer_unit: u32 },
    AwaitTrailer,
}

impl SetReserved {
    pub(crate) fn new(len: u32) -> Self {
        SetReserved { len, st: RsState::Start }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, mut ev: Ev) -> Poll<()> {
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
    pub(crate) fn program_data(&mut self, c: &mut Core) -> Poll<()> {
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
