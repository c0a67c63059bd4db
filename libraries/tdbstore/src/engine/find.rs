//! Finding a key's live record through the RAM index.

use super::api::*;
use super::shared::*;
use crate::format::{self, Header};
use crate::index::IndexEntry;
use core::task::Poll::Ready;

/// Looks up the current key: the index position and header of its live record. Each
/// candidate (same hash) is read header first, then its key only if the lengths match, so a
/// read never runs past a short record into whatever follows it (a torn, unreadable unit).
pub(crate) struct Find {
    pub(crate) pos: usize,
    pub(crate) hi: usize,
    pub(crate) stage: FindStage,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum FindStage {
    Start,
    AwaitHeader,
    AwaitKey(Header),
}

/// Result of [`Find`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Found {
    Yes { pos: usize, header: Header, size: u32 },
    No,
}

impl Find {
    pub(crate) fn new() -> Self {
        Find { pos: 0, hi: 0, stage: FindStage::Start }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<Found> {
        let off = |c: &Core, pos| c.index.get(pos).map_or(0, |e: IndexEntry| e.offset);
        let kl = c.key_len;
        match self.stage {
            FindStage::Start => {
                let (lo, hi) = c.index.hash_range(format::key_hash(c.key()));
                self.pos = lo;
                self.hi = hi;
            }
            FindStage::AwaitHeader => {
                ev.result(IoKind::Read)?;
                match c.lay.parse_header(c.got(off(c, self.pos), c.lay.header_len())) {
                    Some(h)
                        if h.key_len as usize == kl
                            && c.lay.record_extent(off(c, self.pos), &h).is_some() =>
                    {
                        self.stage = FindStage::AwaitKey(h);
                        let at = off(c, self.pos) + c.lay.body_offset;
                        return c.read(Area::Active, at, kl as u32);
                    }
                    _ => self.pos += 1,
                }
            }
            FindStage::AwaitKey(h) => {
                ev.result(IoKind::Read)?;
                if c.got(off(c, self.pos) + c.lay.body_offset, kl as u32) == c.key() {
                    let size = c.lay.record_extent(off(c, self.pos), &h).unwrap_or(0);
                    return Ready(Ok(Found::Yes { pos: self.pos, header: h, size }));
                }
                self.pos += 1;
            }
        }
        if self.pos >= self.hi {
            return Ready(Ok(Found::No));
        }
        self.stage = FindStage::AwaitHeader;
        let hl = c.lay.header_len();
        c.read(Area::Active, off(c, self.pos), hl)
    }
}
