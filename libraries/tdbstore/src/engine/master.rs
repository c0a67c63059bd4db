//! Writing an area's master record, the commit point of a format and of a compaction.

use super::api::*;
use super::append::ProgramHead;
use super::shared::*;

/// Writes a master record (always in Mbed's format, with the store's record format as its
/// revision) with `version` at an area's master offset: body first, then the header, which
/// makes the area valid.
pub(crate) enum WriteMaster {
    /// Not started.
    Start { area: Area, version: u16 },
    /// The key and data units are being programmed.
    AwaitBody { area: Area },
    /// The header units: the area is valid when they complete.
    Head(ProgramHead),
}

impl WriteMaster {
    pub(crate) fn new(area: Area, version: u16) -> Self {
        WriteMaster::Start { area, version }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<()> {
        let lay = c.lay;
        let hs = lay.header_span;
        match self {
            WriteMaster::Start { area, version } => {
                let area = *area;
                lay.encode_master(*version, c.geo.erase_value, &mut c.work[..lay.master_size as usize]);
                *self = WriteMaster::AwaitBody { area };
                c.program(area, lay.master_offset + hs, hs as usize, lay.master_size - hs)
            }
            WriteMaster::AwaitBody { area } => {
                ev.result(IoKind::Program)?;
                let mut head = ProgramHead::new(*area, lay.master_offset, 0, hs);
                let r = head.poll(c, Ev::Start);
                *self = WriteMaster::Head(head);
                r
            }
            WriteMaster::Head(h) => h.poll(c, ev),
        }
    }
}
