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
    /// Check the CRC only.
    Verify,
    /// Check the CRC and deliver up to `out_len` data bytes.
    Get { out_len: u32 },
}

/// Streams one record through the work buffer, checking its CRC.
pub(crate) struct ReadRecord {
    pub(crate) area: Area,
    pub(crate) off: u32,
    pub(crate) mode: ReadMode,
    pub(crate) st: RrState,
    pub(crate) header: Header,
    pub(crate) size: u32,
    pub(crate) crc: Crc32,
    pub(crate) pos: u32,
    pub(crate) end: u32,
    pub(crate) delivered: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RrState {
    Start,
    AwaitHeader,
    AwaitBody { len: u32 },
    AwaitDeliver { len: u32 },
}

impl ReadRecord {
    pub(crate) fn new(area: Area, off: u32, mode: ReadMode) -> Self {
        ReadRecord {
            area,
            off,
            mode,
            st: RrState::Start,
            header: Header { flags: 0, key_len: 0, data_len: 0, crc: 0 },
            size: 0,
            crc: Crc32::new(),
            pos: 0,
            end: 0,
            delivered: 0,
        }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<(Header, u32)> {
        let hs = c.lay.body_offset;
        match self.st {
            RrState::Start => {
                self.st = RrState::AwaitHeader;
                return c.read(self.area, self.off, c.lay.header_len());
            }
            RrState::AwaitHeader => {
                ev.result(IoKind::Read)?;
                let h = c.lay.parse_header(c.got(self.off, c.lay.header_len())).ok_or(Error::Corrupt)?;
                self.size = c.lay.record_extent(self.off, &h).ok_or(Error::Corrupt)?;
                self.header = h;
                self.crc = c.lay.crc_start(&h);
                self.pos = hs;
                self.end = hs + h.key_len as u32 + h.data_len;
                if self.mode == ReadMode::Scan {
                    c.key_len = h.key_len as usize;
                }
            }
            RrState::AwaitBody { len } => {
                ev.result(IoKind::Read)?;
                let skew = c.skew(self.off + self.pos);
                let bytes = c.got(self.off + self.pos, len);
                if bytes.len() != len as usize {
                    return Ready(Err(Error::Corrupt));
                }
                self.crc.update(bytes);
                let key_end = hs + self.header.key_len as u32;
                if self.mode == ReadMode::Scan && self.pos < key_end {
                    let n = (key_end - self.pos).min(len) as usize;
                    let k0 = (self.pos - hs) as usize;
                    c.key[k0..k0 + n].copy_from_slice(&c.work[skew..skew + n]);
                }
                let start = self.pos;
                self.pos += len;
                if let ReadMode::Get { out_len } = self.mode {
                    // Deliver the part of this chunk that is data and fits the output.
                    let d0 = start.max(key_end);
                    if d0 < self.pos && self.delivered < out_len {
                        let n = (self.pos - d0).min(out_len - self.delivered);
                        let at = skew + (d0 - start) as usize;
                        self.st = RrState::AwaitDeliver { len: n };
                        return c.deliver(self.delivered, at, n);
                    }
                }
            }
            RrState::AwaitDeliver { len } => {
                ev.result(IoKind::Deliver)?;
                self.delivered += len;
            }
        }
        // Next chunk, or done.
        if self.pos >= self.end {
            return if self.crc.value() == self.header.crc {
                Ready(Ok((self.header, self.size)))
            } else {
                Ready(Err(Error::Corrupt))
            };
        }
        let len = (self.end - self.pos).min(c.chunk);
        self.st = RrState::AwaitBody { len };
        // The read covers whole read units; only the `len` record bytes in it reach the CRC.
        c.read(self.area, self.off + self.pos, len)
    }
}
