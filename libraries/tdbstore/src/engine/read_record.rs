//! Streaming one record through the work buffer, checking its CRC, delivering its data or key.

use super::api::*;
use super::shared::*;
use crate::crc::Crc32;
use crate::format::Header;
use core::task::Poll::Ready;

/// What [`ReadRecord`] does with the record's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadMode {
    /// Check the CRC; copy the key into `Core::key`.
    Scan,
    /// Check the CRC and deliver up to `out_len` data bytes.
    Get { out_len: u32 },
}

/// Streams one record through the work buffer, checking its CRC.
pub(crate) struct ReadRecord {
    area: Area,
    off: u32,
    mode: ReadMode,
    st: RrState,
}

/// A record being streamed, once its header is known.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stream {
    header: Header,
    size: u32,
    crc: Crc32,
    /// Record offset of the next byte to read.
    pos: u32,
    end: u32,
    delivered: u32,
}

#[derive(Clone, Copy, Debug)]
enum RrState {
    Start,
    AwaitHeader,
    /// Read the next chunk of the body, or finish.
    Next(Stream),
    AwaitBody {
        s: Stream,
        len: u32,
    },
    AwaitDeliver {
        s: Stream,
        len: u32,
    },
}

impl ReadRecord {
    pub(crate) fn new(area: Area, off: u32, mode: ReadMode) -> Self {
        ReadRecord { area, off, mode, st: RrState::Start }
    }

    /// Continues a record whose header and key a lookup already read (and matched against
    /// [`Core::key`]): the stream starts at the data, the CRC already covering the rest.
    pub(crate) fn after_key(c: &Core, off: u32, header: Header, size: u32, mode: ReadMode) -> Self {
        let mut crc = c.lay.crc_start(&header);
        crc.update(c.key());
        let pos = c.lay.body_offset + header.key_len as u32;
        let end = pos + header.data_len;
        let s = Stream { header, size, crc, pos, end, delivered: 0 };
        ReadRecord { area: Area::Active, off, mode, st: RrState::Next(s) }
    }

    pub(crate) fn mode(&self) -> ReadMode {
        self.mode
    }

    pub(crate) fn poll(&mut self, c: &mut Core, mut ev: Ev) -> Poll<(Header, u32)> {
        let hs = c.lay.body_offset;
        loop {
            match self.st {
                RrState::Start => {
                    self.st = RrState::AwaitHeader;
                    return c.read(self.area, self.off, c.lay.header_len());
                }
                RrState::AwaitHeader => {
                    ev.result(IoKind::Read)?;
                    let h = c.lay.parse_header(c.got(self.off, c.lay.header_len())).ok_or(Error::Corrupt)?;
                    let size = c.lay.record_extent(self.off, &h).ok_or(Error::Corrupt)?;
                    if self.mode == ReadMode::Scan {
                        c.key_len = h.key_len as usize;
                    }
                    let end = hs + h.key_len as u32 + h.data_len;
                    let crc = c.lay.crc_start(&h);
                    self.st = RrState::Next(Stream { header: h, size, crc, pos: hs, end, delivered: 0 });
                }
                RrState::AwaitBody { mut s, len } => {
                    ev.result(IoKind::Read)?;
                    let skew = c.skew(self.off + s.pos);
                    let bytes = c.got(self.off + s.pos, len);
                    if bytes.len() != len as usize {
                        return Ready(Err(Error::Corrupt));
                    }
                    s.crc.update(bytes);
                    let key_end = hs + s.header.key_len as u32;
                    if self.mode == ReadMode::Scan && s.pos < key_end {
                        let n = (key_end - s.pos).min(len) as usize;
                        let k0 = (s.pos - hs) as usize;
                        c.key[k0..k0 + n].copy_from_slice(&c.work[skew..skew + n]);
                    }
                    let start = s.pos;
                    s.pos += len;
                    self.st = RrState::Next(s);
                    if let ReadMode::Get { out_len } = self.mode {
                        // Deliver the part of this chunk that is data and fits the output.
                        let d0 = start.max(key_end);
                        if d0 < s.pos && s.delivered < out_len {
                            let n = (s.pos - d0).min(out_len - s.delivered);
                            let at = skew + (d0 - start) as usize;
                            self.st = RrState::AwaitDeliver { s, len: n };
                            return c.deliver(s.delivered, at, n);
                        }
                    }
                }
                RrState::AwaitDeliver { mut s, len } => {
                    ev.result(IoKind::Deliver)?;
                    s.delivered += len;
                    self.st = RrState::Next(s);
                }
                RrState::Next(s) => {
                    if s.pos >= s.end {
                        return if s.crc.value() == s.header.crc {
                            Ready(Ok((s.header, s.size)))
                        } else {
                            Ready(Err(Error::Corrupt))
                        };
                    }
                    let len = (s.end - s.pos).min(c.chunk);
                    self.st = RrState::AwaitBody { s, len };
                    // The read covers whole read units; only the `len` record bytes in it reach
                    // the CRC.
                    return c.read(self.area, self.off + s.pos, len);
                }
            }
            ev = Ev::Start;
        }
    }
}
