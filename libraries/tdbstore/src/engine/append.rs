//! Appending a record: staging header, key and value, programming the body, then the head last.

use super::api::*;
use super::shared::*;
use crate::crc::Crc32;
use crate::format::{align_up, Header};
use core::task::Poll::Ready;

/// Programs a record's head (`span` bytes from `work[at..]` to area offset `off`) with the
/// magic's unit last, so a cut inside a multi-unit head leaves no magic behind.
pub(crate) enum ProgramHead {
    /// Not started.
    Start { area: Area, off: u32, at: usize, span: u32 },
    /// The units after the magic's are being programmed; the magic's unit follows.
    AwaitRest { area: Area, off: u32, at: usize, magic_span: u32 },
    /// The magic's unit is being programmed: the record is committed when it completes.
    AwaitMagic,
}

impl ProgramHead {
    pub(crate) fn new(area: Area, off: u32, at: usize, span: u32) -> Self {
        ProgramHead::Start { area, off, at, span }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<()> {
        match *self {
            ProgramHead::Start { area, off, at, span } => {
                let magic_span = align_up(crate::format::MAGIC_SPAN, c.geo.program_size).min(span);
                if magic_span < span {
                    *self = ProgramHead::AwaitRest { area, off, at, magic_span };
                    return c.program(area, off + magic_span, at + magic_span as usize, span - magic_span);
                }
                *self = ProgramHead::AwaitMagic;
                c.program(area, off, at, magic_span)
            }
            ProgramHead::AwaitRest { area, off, at, magic_span } => {
                ev.result(IoKind::Program)?;
                *self = ProgramHead::AwaitMagic;
                c.program(area, off, at, magic_span)
            }
            ProgramHead::AwaitMagic => {
                ev.result(IoKind::Program)?;
                Ready(Ok(()))
            }
        }
    }
}

/// An append in progress. Kept between [`Op::SetStart`], [`Op::SetData`] and
/// [`Op::SetFinalize`] for incremental sets; other operations are refused meanwhile because
/// the staged bytes live in the work buffer.
///
/// The work buffer stages record bytes from record offset `wrec`. The record's head (the
/// units holding its header) is programmed last: while `wrec == 0` it sits at the front of
/// the work buffer; after the first full chunk it moves to the hold area behind the chunk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Append {
    pub(crate) header: Header,
    pub(crate) crc: Crc32,
    pub(crate) base: u32,
    pub(crate) size: u32,
    /// Record offset of `work[0]`.
    pub(crate) wrec: u32,
    /// Bytes staged at the front of the work buffer.
    pub(crate) staged: u32,
    /// Value bytes still expected.
    pub(crate) remaining: u32,
    /// Something was programmed (the tail is dirty if we abandon).
    pub(crate) programmed: bool,
}

impl Append {
    pub(crate) fn begin(c: &mut Core, flags: u32, len: u32, size: u32) -> Append {
        let kl = c.key_len;
        let header = Header { flags, key_len: kl as u16, data_len: len, crc: 0 };
        let mut crc = c.lay.crc_start(&header);
        crc.update(c.key());
        let bo = c.lay.body_offset as usize;
        let ev = c.geo.erase_value;
        c.work[..bo].fill(ev);
        c.work[bo..bo + kl].copy_from_slice(&c.key[..kl]);
        Append {
            header,
            crc,
            base: c.free,
            size,
            wrec: 0,
            staged: (bo + kl) as u32,
            remaining: len,
            programmed: false,
        }
    }
}

/// Feeds `input` bytes into an [`Append`] and, when `finalize`, commits it.
pub(crate) struct Feed {
    pub(crate) input: u32,
    pub(crate) taken: u32,
    pub(crate) finalize: bool,
    pub(crate) st: FeedState,
}

pub(crate) enum FeedState {
    /// Take more input, program a full chunk, or finish.
    Next,
    AwaitFill {
        len: u32,
    },
    AwaitChunk,
    /// The last units before the head are being programmed.
    AwaitTail,
    /// The head, last: the record is committed when it completes.
    Head(ProgramHead),
}

impl Feed {
    pub(crate) fn new(input: u32, finalize: bool) -> Self {
        Feed { input, taken: 0, finalize, st: FeedState::Next }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, a: &mut Append, mut ev: Ev) -> Poll<()> {
        let hs = c.lay.head_span;
        loop {
            match &mut self.st {
                FeedState::Next => {}
                FeedState::AwaitFill { len } => {
                    let len = *len;
                    ev.result(IoKind::Fill)?;
                    let s = a.staged as usize;
                    a.crc.update(&c.work[s..s + len as usize]);
                    a.staged += len;
                    self.taken += len;
                    a.remaining -= len;
                }
                FeedState::AwaitChunk => {
                    ev.result(IoKind::Program)?;
                    a.programmed = true;
                    a.wrec += c.chunk;
                    a.staged = 0;
                }
                FeedState::AwaitTail => {
                    ev.result(IoKind::Program)?;
                    a.programmed = true;
                    self.start_head(c, a);
                    ev = Ev::Start;
                    continue;
                }
                FeedState::Head(h) => {
                    ready!(h.poll(c, ev));
                    return Ready(Ok(()));
                }
            }
            ev = Ev::Start;
            let p = c.geo.program_size;
            if a.staged == c.chunk {
                self.st = FeedState::AwaitChunk;
                if a.wrec == 0 {
                    // Keep the head for last: park it in the hold area behind the chunk.
                    let chunk = c.chunk as usize;
                    c.work.copy_within(..hs as usize, chunk);
                    return c.program(Area::Active, a.base + hs, hs as usize, c.chunk - hs);
                }
                return c.program(Area::Active, a.base + a.wrec, 0, c.chunk);
            }
            if self.taken < self.input {
                let n = (self.input - self.taken).min(c.chunk - a.staged).min(a.remaining);
                if n == 0 {
                    return Ready(Err(Error::SizeMismatch));
                }
                self.st = FeedState::AwaitFill { len: n };
                return c.fill(self.taken, a.staged as usize, n);
            }
            if !self.finalize {
                return Ready(Ok(()));
            }
            if a.remaining != 0 {
                return Ready(Err(Error::SizeMismatch));
            }
            // The last units, padded with the erase value; then the head.
            let len = align_up(a.staged, p);
            let ev_byte = c.geo.erase_value;
            c.work[a.staged as usize..len as usize].fill(ev_byte);
            self.st = FeedState::AwaitTail;
            let (from, at) = if a.wrec == 0 { (hs, hs as usize) } else { (0, 0) };
            if len > from {
                return c.program(Area::Active, a.base + a.wrec + from, at, len - from);
            }
            // Nothing left to program before the head: the record fits in its head, or its
            // last bytes filled a whole chunk that is already programmed.
            self.start_head(c, a);
        }
    }

    /// Encodes the finished header into the record's head and starts programming it. The
    /// head is at the front of the work buffer until the first chunk is programmed, then in
    /// the hold area behind the chunk. (It must be found there also when the value ends
    /// exactly on a chunk boundary: a compact record's head holds its first key bytes, which
    /// the front of the buffer no longer does.)
    pub(crate) fn start_head(&mut self, c: &mut Core, a: &mut Append) {
        let at = if a.wrec == 0 { 0 } else { c.chunk as usize };
        a.header.crc = a.crc.value();
        let h = a.header;
        let lay = c.lay;
        lay.encode_header(&h, c.work.get_mut(at..).unwrap_or_default());
        self.st = FeedState::Head(ProgramHead::new(Area::Active, a.base, at, lay.head_span));
    }
}
