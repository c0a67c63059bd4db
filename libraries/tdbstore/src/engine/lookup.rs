//! Reading the store: a key's value or size (`Get`), the next key in iteration order (`Next`),
//! and handing bytes in the work buffer to the output (`Deliver`).

use super::api::*;
use super::find::Find;
use super::read_record::{ReadMode, ReadRecord};
use super::shared::*;
#[cfg(feature = "iteration")]
use crate::format::MAX_KEY_LEN;
use core::task::Poll::Ready;

/// [`Op::Get`] and [`Op::GetInfo`]: one read of the record's header and key (the lookup's),
/// then, for a value, its data, streamed to the output with the CRC checked over the whole
/// record.
pub(crate) enum Get {
    Find { find: Find, out_len: u32, info_only: bool },
    Read(ReadRecord),
}

impl Get {
    pub(crate) fn new(out_len: u32, info_only: bool) -> Self {
        Get::Find { find: Find::new(), out_len, info_only }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, mut ev: Ev) -> Poll<Outcome> {
        loop {
            match self {
                Get::Find { find, out_len, info_only } => {
                    let (out_len, info_only) = (*out_len, *info_only);
                    match ready!(find.poll(c, ev)) {
                        Found::No => return Ready(Err(Error::NotFound)),
                        Found::Yes { header, .. } if info_only => {
                            return Ready(Ok(Outcome::Info(KeyInfo {
                                size: header.data_len,
                                flags: header.flags,
                            })))
                        }
                        Found::Yes { pos, header, size } => {
                            let off = c.index.get(pos).ok_or(Error::Internal)?.offset;
                            *self = Get::Read(ReadRecord::after_key(
                                c,
                                off,
                                header,
                                size,
                                ReadMode::Get { out_len },
                            ));
                        }
                    }
                }
                Get::Read(rr) => {
                    let (h, _) = ready!(rr.poll(c, ev));
                    let copied = h.data_len.min(match rr.mode() {
                        ReadMode::Get { out_len } => out_len,
                        _ => 0,
                    });
                    return Ready(Ok(Outcome::Value(Value { size: h.data_len, flags: h.flags, copied })));
                }
            }
            ev = Ev::Start;
        }
    }
}

/// [`Op::Next`]: walks the index from `pos` to the next key starting with the prefix (in
/// [`Core::key`]), one read per entry (its header and as much key as the record can hold),
/// and delivers that key.
#[cfg(feature = "iteration")]
pub(crate) enum Next {
    Start { pos: usize, out_len: u32 },
    AwaitEntry { pos: usize, out_len: u32 },
    Deliver(Deliver),
}

#[cfg(feature = "iteration")]
impl Next {
    pub(crate) fn new(pos: usize, out_len: u32) -> Self {
        Next::Start { pos, out_len }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, mut ev: Ev) -> Poll<Outcome> {
        loop {
            let (pos, out_len) = match self {
                Next::Deliver(d) => return d.poll(c, ev),
                Next::Start { pos, out_len } => (*pos, *out_len),
                Next::AwaitEntry { pos, out_len } => {
                    let (pos, out_len) = (*pos, *out_len);
                    ev.result(IoKind::Read)?;
                    let e = c.index.get(pos).ok_or(Error::Internal)?;
                    if let Some((kl, at)) = matching_key(c, e.offset) {
                        let copied = kl.min(out_len);
                        let next = Cursor { pos: pos as u32 + 1, last_hash: Some(e.hash) };
                        *self = Next::Deliver(Deliver::new(
                            at,
                            copied,
                            Outcome::Key(Some(NextKey { len: kl, copied, next })),
                        ));
                        ev = Ev::Start;
                        continue;
                    }
                    (pos + 1, out_len)
                }
            };
            let Some(e) = c.index.get(pos) else {
                return Ready(Ok(Outcome::Key(None)));
            };
            *self = Next::AwaitEntry { pos, out_len };
            let len = (c.lay.body_offset + MAX_KEY_LEN as u32).min(c.free.saturating_sub(e.offset));
            return c.read(Area::Active, e.offset, len);
        }
    }
}

/// The key of the record just read at `off`, if it starts with the prefix: its length and
/// where it lies in the work buffer.
#[cfg(feature = "iteration")]
fn matching_key(c: &Core, off: u32) -> Option<(u32, usize)> {
    let lay = c.lay;
    let h = lay.parse_header(c.got(off, lay.header_len()))?;
    let kl = h.key_len as u32;
    // The read began at the record, so the key lies `body_offset` into it.
    let key = c.got(off, lay.body_offset + kl).get(lay.body_offset as usize..).unwrap_or(&[]);
    (key.len() == kl as usize && key.starts_with(c.key()))
        .then(|| (kl, c.skew(off) + lay.body_offset as usize))
}

/// Hands the `copied` bytes at `work[at..]` to the output, then reports `outcome`.
#[cfg(any(feature = "incremental", feature = "iteration", feature = "reserved-data"))]
pub(crate) enum Deliver {
    Start { at: usize, copied: u32, outcome: Outcome },
    Await { outcome: Outcome },
}

#[cfg(any(feature = "incremental", feature = "iteration", feature = "reserved-data"))]
impl Deliver {
    pub(crate) fn new(at: usize, copied: u32, outcome: Outcome) -> Self {
        Deliver::Start { at, copied, outcome }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, ev: Ev) -> Poll<Outcome> {
        match *self {
            Deliver::Start { at, copied, outcome } if copied > 0 => {
                *self = Deliver::Await { outcome };
                c.deliver(0, at, copied)
            }
            Deliver::Start { outcome, .. } => Ready(Ok(outcome)),
            Deliver::Await { outcome } => {
                ev.result(IoKind::Deliver)?;
                Ready(Ok(outcome))
            }
        }
    }
}
