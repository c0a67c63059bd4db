//! Set, remove and incremental-set start: look the key up, check, make room, append.

use super::api::*;
use super::append::{Append, Feed};
use super::compact::{Compact, Skip};
use super::erase::EnsureErased;
use super::find::Find;
use super::shared::*;
use crate::format::{self, DELETE_FLAG};
use core::task::Poll::{Pending, Ready};

/// What a write does once its checks pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// Append the value and commit it, if the condition holds.
    Set(SetWhen),
    /// Append a delete record (or compact the key away) and commit.
    Remove,
    /// Stage the record of an incremental set and stop: its value comes by
    /// `Op::SetData`, its commit by `Op::SetFinalize`.
    #[cfg(feature = "incremental")]
    Start,
}

/// A set, remove, or incremental-set start: find, check, make room, then append.
pub(crate) struct Write {
    kind: WriteKind,
    flags: u32,
    len: u32,
    st: WState,
}

enum WState {
    /// Looking the key up; `compacted` once this write has compacted.
    Find {
        find: Find,
        compacted: bool,
    },
    Compact(Compact),
    /// Making `[free, free + size)` erased.
    Room {
        found: Found,
        size: u32,
        e: EnsureErased,
    },
    /// Feeding the value and committing.
    Feed {
        found: Found,
        append: Append,
        feed: Feed,
    },
}

/// How a write ended.
pub(crate) enum Written {
    /// The record is committed (or the key compacted away).
    Committed,
    /// An incremental set is staged.
    #[cfg(feature = "incremental")]
    Staged(Staged),
}

/// The rest of an open incremental set between operations.
#[cfg(feature = "incremental")]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Staged {
    pub(crate) append: Append,
    pub(crate) found: Found,
}

#[cfg(feature = "incremental")]
impl Staged {
    /// Commits the fed record: the index and the log end take it.
    pub(crate) fn commit(&self, c: &mut Core) -> Result<(), Error> {
        commit(c, &self.append, self.found)
    }
}

impl Write {
    pub(crate) fn new(kind: WriteKind, flags: u32, len: u32) -> Self {
        let flags = if kind == WriteKind::Remove { DELETE_FLAG } else { flags };
        let len = if kind == WriteKind::Remove { 0 } else { len };
        Write { kind, flags, len, st: WState::Find { find: Find::new(), compacted: false } }
    }

    pub(crate) fn poll(&mut self, c: &mut Core, mut ev: Ev) -> Poll<Written> {
        loop {
            match &mut self.st {
                WState::Find { find, compacted } => {
                    let compacted = *compacted;
                    let found = ready!(find.poll(c, ev));
                    let size = c.lay.record_size(c.key_len as u32, self.len).ok_or(Error::ValueTooLarge)?;
                    self.check(c, found)?;
                    // Never past the log limit: in Mbed format a record must not end at the
                    // area end, or Mbed would not read it (B2); compact first, as Mbed does.
                    let limit = c.lay.log_limit() as u64;
                    let fits = c.free as u64 + size as u64 <= limit;
                    if !c.torn_tail && fits {
                        let e = EnsureErased::new(Area::Active, c.room_for(c.free + size));
                        self.st = WState::Room { found, size, e };
                    } else if compacted {
                        return Ready(Err(Error::Full));
                    } else if let (WriteKind::Remove, Found::Yes { pos, .. }) = (self.kind, found) {
                        // Compacting without the key removes it atomically: no tombstone.
                        self.st = WState::Compact(Compact::new(Skip::One(pos)));
                    } else {
                        let need = c.lay.first_record() as u64 + c.live_bytes as u64 + size as u64;
                        if need > limit {
                            return Ready(Err(Error::Full));
                        }
                        self.st = WState::Compact(Compact::new(Skip::None));
                    }
                }
                WState::Compact(k) => {
                    ready!(k.poll(c, ev));
                    if let Some(pos) = k.skipped() {
                        // The compaction left the record behind and recounted live bytes.
                        c.index.remove(pos);
                        return Ready(Ok(Written::Committed));
                    }
                    // Positions may have moved if compaction dropped a corrupt record.
                    self.st = WState::Find { find: Find::new(), compacted: true };
                }
                WState::Room { found, size, e } => {
                    let (found, size) = (*found, *size);
                    ready!(e.poll(c, ev));
                    // Staged only now: the erase check above reads through the work buffer.
                    let append = Append::begin(c, self.flags, self.len, size);
                    #[cfg(feature = "incremental")]
                    if self.kind == WriteKind::Start {
                        return Ready(Ok(Written::Staged(Staged { append, found })));
                    }
                    self.st = WState::Feed { found, append, feed: Feed::new(self.len, true) };
                }
                WState::Feed { found, append, feed } => match feed.poll(c, append, ev) {
                    Pending => return Pending,
                    Ready(Err(e)) => {
                        c.abandoned_append(append.programmed);
                        return Ready(Err(e));
                    }
                    Ready(Ok(())) => {
                        commit(c, append, *found)?;
                        return Ready(Ok(Written::Committed));
                    }
                },
            }
            ev = Ev::Start;
        }
    }

    /// The checks the lookup decides: write-once keys, the set's condition, a remove of a
    /// missing key, room in the index for a new key.
    fn check(&self, c: &Core, found: Found) -> Result<(), Error> {
        match (found, self.kind) {
            (Found::Yes { header, .. }, _) if header.flags & format::WRITE_ONCE != 0 => {
                Err(Error::WriteProtected)
            }
            (Found::Yes { .. }, WriteKind::Set(SetWhen::Absent)) => Err(Error::Exists),
            (Found::No, WriteKind::Set(SetWhen::Present) | WriteKind::Remove) => Err(Error::NotFound),
            (Found::No, _) if c.index.len() >= c.index.capacity() => Err(Error::IndexFull),
            _ => Ok(()),
        }
    }
}

/// Applies a committed append to the index and the log end.
fn commit(c: &mut Core, a: &Append, found: Found) -> Result<(), Error> {
    let rec = NewRecord { offset: a.base, size: a.size, delete: a.header.is_delete() };
    // The write checked the index had room before it wrote anything.
    c.appended(found, rec).map_err(|_| Error::Internal)
}
