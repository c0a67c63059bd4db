//! Finding a key's live record through the RAM index.

use super::api::*;
use super::shared::*;
use core::task::Poll::Ready;

/// Looks up the operation's key ([`Core::key`]): the index position, header and extent of its
/// live record. Each candidate (an entry with the same hash) costs one read of its header and
/// a key of the sought length together. That read never runs past the log's end
/// ([`Core::free`], which mount advances record by record), so it never reaches a torn,
/// unreadable unit; within the log, a shorter candidate's neighbour is a valid record.
pub(crate) enum Find {
    /// Not started.
    Start,
    /// Candidate `pos` (of the hash range ending at `hi`) is being read.
    AwaitCandidate { pos: usize, hi: usize },
}

impl Find {
    pub(crate) fn new() -> Self {
        Find::Start
    }

    pub(crate) fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<Found> {
        let kl = c.key_len as u32;
        let (pos, hi) = match *self {
            Find::Start => c.index.hash_range(crate::format::key_hash(c.key())),
            Find::AwaitCandidate { pos, hi } => {
                ev.result(IoKind::Read)?;
                let off = c.index.get(pos).map_or(0, |e| e.offset);
                let lay = c.lay;
                let header = lay.parse_header(c.got(off, lay.header_len()));
                // The read began at the record, so the key lies `body_offset` into it.
                let key = c.got(off, lay.body_offset + kl).get(lay.body_offset as usize..).unwrap_or(&[]);
                if let Some(h) = header.filter(|h| h.key_len as u32 == kl && key == c.key()) {
                    if let Some(size) = lay.record_extent(off, &h) {
                        return Ready(Ok(Found::Yes { pos, header: h, size }));
                    }
                }
                (pos + 1, hi)
            }
        };
        let Some(e) = c.index.get(pos).filter(|_| pos < hi) else {
            *self = Find::Start;
            return Ready(Ok(Found::No));
        };
        *self = Find::AwaitCandidate { pos, hi };
        let len = (c.lay.body_offset + kl).min(c.free.saturating_sub(e.offset));
        c.read(Area::Active, e.offset, len)
    }
}
