//! Set, remove and incremental-set start: look the key up, check, make room, append.

use super::api::*;
use super::append::*;
use super::compact::*;
use super::erase::*;
use super::find::*;
use super::shared::*;
use crate::format::{self, DELETE_FLAG};
use crate::index::IndexEntry;
use core::task::Poll::{Pending, Ready};

/// A set, remove, or incremental-set start: find, check, make room, then append.
pub(crate) struct Write {
    pub(crate) flags: u32,
    pub(crate) len: u32,
    /// True for a one-shot set or remove (feed the input and commit); false for
    /// [`Op::SetStart`], which stops once the record is staged.
    pub(crate) oneshot: bool,
    pub(crate) st: WState,
    pub(crate) compacted: bool,
    pub(crate) found: Found,
    pub(crate) size: u32,
    pub(crate) append: Option<Append>,
}

pub(crate) enum WState {
    Find(Find),
    Compact(Compact),
    Room(EnsureErased),
    Feed(Feed),
}

impl Write {
    pub(crate) fn new(flags: u32, len: u32, oneshot: bool) -> Self {
        Write {
            flags,
            len,
            oneshot,
            st: WState::Find(Find::new()),
            compacted: false,
            found: Found::No,
            size: 0,
            append: None,
        }
    }

    pub(crate) fn is_delete(&self) -> bool {
        self.flags & DELETE_FLAG != 0
    }

    pub(crate) fn poll(&mut self, c: &mut Core, mut ev: Ev) -> Poll<Outcome> {
        loop {
            match &mut self.st {
                WState::Find(f) => {
                    let found = ready!(f.poll(c, ev));
                    self.found = found;
                    let kl = c.key_len as u32;
                    let size = c.lay.record_size(kl, self.len).ok_or(Error::ValueTooLarge)?;
                    match found {
                        Found::Yes { header, .. } if header.flags & format::WRITE_ONCE != 0 => {
                            return Ready(Err(Error::WriteProtected))
                        }
                        Found::No if self.is_delete() => return Ready(Err(Error::NotFound)),
                        Found::No if c.index.len() >= c.index.capacity() => {
                            return Ready(Err(Error::IndexFull))
                        }
                        _ => {}
                    }
                    // Never past the log limit: in Mbed format a record must not end at the
                    // area end, or Mbed would not read it (B2); compact first, as Mbed does.
                    let limit = c.lay.log_limit() as u64;
                    let fits = c.free as u64 + size as u64 <= limit;
                    if c.torn_tail || !fits {
                        if self.compacted {
                            return Ready(Err(Error::Full));
                        }
                        self.compacted = true;
                        if let (true, Found::Yes { pos, .. }) = (self.is_delete(), found) {
                            // Compacting without the key removes it atomically: no tombstone.
                            self.st = WState::Compact(Compact::new(Skip::One(pos)));
                        } else {
                            let need = c.lay.first_record() as u64 + c.live_bytes as u64 + size as u64;
                            if need > limit {
                                return Ready(Err(Error::Full));
                            }
                            self.st = WState::Compact(Compact::new(Skip::None));
                        }
                    } else {
                        self.size = size;
                        self.st = WState::Room(EnsureErased::new(Area::Active, c.room_for(c.free + size)));
                    }
                }
                WState::Compact(k) => {
                    ready!(k.poll(c, ev));
                    if let Skip::One(pos) = k.skip {
                        // The compaction already left the record behind and recounted live bytes.
                        c.index.remove(pos);
                        return Ready(Ok(Outcome::Done));
                    }
                    // Positions may have moved if compaction dropped a corrupt record.
                    self.st = WState::Find(Find::new());
                }
                WState::Room(e) => {
                    ready!(e.poll(c, ev));
                    // Staged only now: the erase check above reads through the work buffer.
                    self.append = Some(Append::begin(c, self.flags, self.len, self.size));
                    if !self.oneshot {
                        return Ready(Ok(Outcome::Done));
                    }
                    let input = self.len;
                    self.st = WState::Feed(Feed::new(if self.is_delete() { 0 } else { input }, true));
                }
                WState::Feed(f) => {
                    let a = self.append.as_mut().ok_or(Error::NotMounted)?;
                    let r = f.poll(c, a, ev);
                    match r {
                        Pending => return Pending,
                        Ready(Err(e)) => {
                            if a.programmed {
                                c.torn_tail = true;
                            }
                            return Ready(Err(e));
                        }
                        Ready(Ok(())) => {
                            let a = *a;
                            commit(c, &a, self.found);
                            return Ready(Ok(Outcome::Done));
                        }
                    }
                }
            }
            ev = Ev::Start;
        }
    }
}

/// Applies a committed append to the index and the log end.
pub(crate) fn commit(c: &mut Core, a: &Append, found: Found) {
    let hash = format::key_hash(c.key());
    c.free = a.base + a.size;
    match found {
        Found::Yes { pos, size, .. } if a.header.is_delete() => {
            c.index.remove(pos);
            c.live_bytes = c.live_bytes.saturating_sub(size);
        }
        Found::Yes { pos, size, .. } => {
            c.index.set_offset(pos, a.base);
            c.live_bytes = c.live_bytes.saturating_sub(size) + a.size;
        }
        Found::No => {
            let (_, hi) = c.index.hash_range(hash);
            c.index.insert(hi, IndexEntry { hash, offset: a.base });
            c.live_bytes += a.size;
        }
    }
}
