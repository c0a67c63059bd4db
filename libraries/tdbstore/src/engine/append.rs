//! Appending a record: staging header, key and value, programming the body, then the head last.

use super::api::*;
use super::shared::*;
use crate::crc::Crc32;
use crate::format::{align_up, Header, MASTER_DATA_LEN, MASTER_KEY};
use core::task::Poll::Ready;

/// Programs a record's head (`span` bytes from `work[at..]` to area offset `off`) with the
/// magic's unit last, so a cut inside a multi-unit head leaves no magic behind.
pub(crate) struct ProgramHead {
    pub(crate) area: Area,
    pub(crate) off: u32,
    pub(crate) at: usize,
    pub(crate) span: u32,
    pub(crate) st: u8,
}

impl ProgramHead {
    pub(crate) fn new(area: Area, off: u32, at: usize, span: u32) -> Self {
        ProgramHead { area, off, at, span, st: 0 }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<()> {
        let magic_span = align_up(4, c.geo.program_size).min(self.span);
        match self.st {
            0 if magic_span < self.span => {
                self.st = 1;
                let rest = self.span - magic_span;
                c.program(self.area, self.off + magic_span, self.at + magic_span as usize, rest)
            }
            0 | 1 => {
                if self.st == 1 {
                    ev.result(IoKind::Program)?;
                }
                self.st = 2;
                c.program(self.area, self.off, self.at, magic_span)
            }
            _ => {
                ev.result(IoKind::Program)?;
                Ready(Ok(()))
            }
        }
    }
}

/// Writes a master record (always in Mbed's format, with the store's record format as its
/// revision) with `version` at an area's master offset: body first, then the header, which
/// makes the area valid.
pub(crate) struct WriteMaster {
    pub(crate) area: Area,
    pub(crate) head: Option<ProgramHead>,
}

impl WriteMaster {
    pub(crate) fn new(area: Area) -> Self {
        WriteMaster { area, head: None }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, version: u16, ev: Ev) -> Poll<()> {
        let lay = c.lay;
        let hs = lay.header_span as usize;
        if let Some(h) = &mut self.head {
            return h.poll(c, ev);
        }
        if let Ev::Io(_) = ev {
            ev.result(IoKind::Program)?;
            self.head = Some(ProgramHead::new(self.area, lay.master_offset, 0, hs as u32));
            return self.poll(c, version, Ev::Start);
        }
        let mut data = [0u8; MASTER_DATA_LEN as usize];
        data[..2].copy_from_slice(&version.to_le_bytes());
        data[2..4].copy_from_slice(&lay.format.revision().to_le_bytes());
        let mut h = Header { flags: 0, key_len: 4, data_len: MASTER_DATA_LEN, crc: 0 };
        let mut crc = h.crc_start();
        crc.update(MASTER_KEY);
        crc.update(&data);
        h.crc = crc.value();
        let ms = lay.master_size as usize;
        let ev_byte = c.geo.erase_value;
        let w = &mut c.work[..ms];
        w.fill(ev_byte);
        h.encode(&mut w[..24]);
        w[hs..hs + 4].copy_from_slice(MASTER_KEY);
        w[hs + 4..hs + 12].copy_from_slice(&data);
        c.program(self.area, lay.master_offset + hs as u32, hs, (ms - hs) as u32)
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
    pub(crate) head: Option<ProgramHead>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FeedState {
    Next,
    AwaitFill { len: u32 },
    AwaitChunk,
    AwaitTail,
    Head,
}

impl Feed {
    pub(crate) fn new(input: u32, finalize: bool) -> Self {
        Feed { input, taken: 0, finalize, st: FeedState::Next, head: None }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, a: &mut Append, mut ev: Ev) -> Poll<()> {
        let hs = c.lay.head_span;
        loop {
            match self.st {
                FeedState::Next => {}
                FeedState::AwaitFill { len } => {
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
                FeedState::Head => {
                    let h = self.head.as_mut().ok_or(Error::NotMounted)?;
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
        lay.encode_header(&h, &mut c.work[at..at + lay.header_len() as usize]);
        self.head = Some(ProgramHead::new(Area::Active, a.base, at, lay.head_span));
        self.st = FeedState::Head;
    }
}
