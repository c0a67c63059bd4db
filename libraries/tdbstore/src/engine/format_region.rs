//! Formatting an unmounted region: erasing both area heads and writing the first master record.

use super::api::*;
use super::master::WriteMaster;
use super::shared::*;
use crate::format::Layout;
use core::task::Poll::Ready;

/// Erases both area heads (or everything) and writes master version 1 in area 0. A head is
/// every sector the reserved slot and master record overlap (an erase unit may be smaller
/// than the head, as Mbed's `reset_area` allows), and the next one when the head ends on a
/// sector boundary, so nothing of the head is programmed into a sector left as it was and
/// the first mount scan stops at the head's end.
pub(crate) struct Format {
    pub(crate) full: bool,
    pub(crate) st: FState,
}

pub(crate) enum FState {
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
    pub(crate) fn new(full: bool) -> Self {
        Format { full, st: FState::Start }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<MountInfo> {
        let es = c.geo.erase_size;
        if let FState::Start = self.st {
            // The head to erase is the new format's (a cut or failure remounts, which takes
            // the layout from the master record again).
            c.lay = Layout::with_format(c.geo.program_size, c.lay.area_size, c.opts.record_format);
        }
        let lay = c.lay;
        let limit = if self.full { lay.area_size } else { c.head_erase_end() };
        match &mut self.st {
            FState::Start => {
                // Only an unmounted store is formatted this way (a mounted one gets an empty
                // generation in its standby area, `Machine::Reformat`): area 1 first.
                let first = 1;
                c.needs_mount();
                self.st = FState::AwaitErase { first, step: 0, off: 0 };
                return c.erase(Area::Number(first), 0);
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
                    return c.erase(Area::Number(area), off);
                }
                c.index.clear();
                c.reserved_len = None;
                self.st = FState::Master(WriteMaster::new(Area::Number(0), 1));
                return self.poll(c, Ev::Start);
            }
            FState::Master(w) => {
                ready!(w.poll(c, ev));
            }
        }
        c.formatted(limit);
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
