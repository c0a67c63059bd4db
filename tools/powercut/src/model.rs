//! The oracle: what a store should contain, and the operations that change it.
//!
//! A [`State`] is everything a user can observe (keys with flags and values, and the
//! reserved data). A [`Step`] is one user-level operation; [`Step::predict`] says what it
//! must do to a state (or which error it must return), and [`Step::run`] performs it on a
//! real store. [`read_state`] reads a mounted store back into a [`State`] through the
//! public API only (iteration, `get_info`, `get`, `reserved_data_get`).

use std::collections::BTreeMap;
use std::fmt;

use tdbstore::{Error, WRITE_ONCE};

use crate::flash::Store;

/// One key's flags and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// User flags as stored.
    pub flags: u32,
    /// The value.
    pub value: Vec<u8>,
}

/// What a user can observe in a store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Live keys.
    pub keys: BTreeMap<Vec<u8>, Entry>,
    /// Reserved data, if set.
    pub reserved: Option<Vec<u8>>,
}

impl State {
    /// A one-line summary (key, flags, length and CRC of each value) for violation messages.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (k, e) in &self.keys {
            out.push_str(&format!(
                "{}(f{} {}B {:08x}) ",
                String::from_utf8_lossy(k),
                e.flags,
                e.value.len(),
                tdbstore::crc::Crc32::of(&e.value)
            ));
        }
        match &self.reserved {
            Some(r) => out.push_str(&format!("reserved({}B)", r.len())),
            None => out.push_str("no-reserved"),
        }
        out
    }

    /// The first difference from `other`, for violation messages.
    pub fn diff(&self, other: &State) -> String {
        for (k, e) in &self.keys {
            match other.keys.get(k) {
                None => return format!("key {:?} present, expected absent", String::from_utf8_lossy(k)),
                Some(o) if o != e => {
                    return format!(
                        "key {:?}: flags {} len {} vs expected flags {} len {}{}",
                        String::from_utf8_lossy(k),
                        e.flags,
                        e.value.len(),
                        o.flags,
                        o.value.len(),
                        if o.value.len() == e.value.len() { " (bytes differ)" } else { "" }
                    )
                }
                _ => {}
            }
        }
        if let Some(k) = other.keys.keys().find(|k| !self.keys.contains_key(*k)) {
            return format!("key {:?} absent, expected present", String::from_utf8_lossy(k));
        }
        if self.reserved != other.reserved {
            return format!(
                "reserved data {:?} vs expected {:?}",
                self.reserved.as_ref().map(Vec::len),
                other.reserved.as_ref().map(Vec::len)
            );
        }
        "no difference".into()
    }
}

/// One user-level operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `set(key, value, flags)`.
    Set {
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
        /// Flags.
        flags: u32,
    },
    /// `remove(key)`.
    Remove {
        /// Key.
        key: Vec<u8>,
    },
    /// `set_start`, one `set_add_data` per chunk, `set_finalize`. Only the finalize commits,
    /// so the oracle treats the three as one operation.
    Incremental {
        /// Key.
        key: Vec<u8>,
        /// Flags.
        flags: u32,
        /// The whole value.
        value: Vec<u8>,
        /// Chunk lengths (they add up to the value's length).
        chunks: Vec<usize>,
    },
    /// `reserved_data_set(data)`.
    Reserved(Vec<u8>),
    /// `compact()`.
    Compact,
    /// `reset()`.
    Reset,
    /// One `maintain()` step.
    Maintain,
    /// `maintain_all()`.
    MaintainAll,
    /// Power the store down cleanly and mount it again with fresh buffers.
    Remount,
    /// `set_start` and one `set_add_data` of `data` (shorter than `len`), then `set_abort`
    /// (`abort`) or nothing at all (the next step must then be a [`Step::Remount`]).
    /// Changes nothing a user can see.
    Abandon {
        /// Key.
        key: Vec<u8>,
        /// Flags.
        flags: u32,
        /// Declared value length.
        len: u32,
        /// The data added before giving up.
        data: Vec<u8>,
        /// Call `set_abort` (else leave the set open).
        abort: bool,
    },
    /// `format(full)`: an empty store without reserved data.
    Format {
        /// Erase every sector now.
        full: bool,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        match self {
            Step::Set { key, value, flags } => write!(f, "set({}, {}B, f{flags})", k(key), value.len()),
            Step::Remove { key } => write!(f, "remove({})", k(key)),
            Step::Incremental { key, flags, value, chunks } => {
                write!(f, "incremental({}, {}B in {chunks:?}, f{flags})", k(key), value.len())
            }
            Step::Reserved(d) => write!(f, "reserved_data_set({}B)", d.len()),
            Step::Compact => f.write_str("compact"),
            Step::Reset => f.write_str("reset"),
            Step::Maintain => f.write_str("maintain"),
            Step::MaintainAll => f.write_str("maintain_all"),
            Step::Remount => f.write_str("remount"),
            Step::Abandon { key, len, data, abort, .. } => {
                let how = if *abort { "abort" } else { "abandon" };
                write!(f, "{how}({}, {}B of {len})", k(key), data.len())
            }
            Step::Format { full } => write!(f, "format(full: {full})"),
        }
    }
}

/// What a step must do: the state after it, or the error it must return (state unchanged).
pub type Prediction = Result<State, Error>;

impl Step {
    /// The oracle. `Full` and `IndexFull` are never predicted: workloads are sized to avoid
    /// them, so seeing one is a finding.
    pub fn predict(&self, s: &State) -> Prediction {
        let once = |key: &[u8]| s.keys.get(key).is_some_and(|e| e.flags & WRITE_ONCE != 0);
        let mut next = s.clone();
        match self {
            Step::Set { key, value, flags } | Step::Incremental { key, flags, value, .. } => {
                if once(key) {
                    return Err(Error::WriteProtected);
                }
                next.keys.insert(key.clone(), Entry { flags: *flags, value: value.clone() });
            }
            Step::Remove { key } => {
                if once(key) {
                    return Err(Error::WriteProtected);
                }
                if next.keys.remove(key).is_none() {
                    return Err(Error::NotFound);
                }
            }
            Step::Reserved(d) => {
                if s.reserved.is_some() {
                    return Err(Error::WriteProtected);
                }
                next.reserved = Some(d.clone());
            }
            Step::Abandon { key, .. } if once(key) => return Err(Error::WriteProtected),
            // Mbed's reset() clears the reserved data too (`docs/format.md` §16).
            Step::Reset => next = State::default(),
            Step::Format { .. } => next = State::default(),
            Step::Compact | Step::Maintain | Step::MaintainAll | Step::Remount | Step::Abandon { .. } => {}
        }
        Ok(next)
    }

    /// Performs the step on a mounted store. [`Step::Remount`] is the caller's business
    /// (it needs new buffers) and does nothing here.
    pub fn run(&self, s: &mut Store<'_>) -> Result<(), Error> {
        match self {
            Step::Set { key, value, flags } => s.set(key, value, *flags),
            Step::Remove { key } => s.remove(key),
            Step::Incremental { key, flags, value, chunks } => {
                s.set_start(key, value.len() as u32, *flags)?;
                let mut at = 0;
                for &c in chunks {
                    s.set_add_data(&value[at..at + c])?;
                    at += c;
                }
                s.set_finalize()
            }
            Step::Reserved(d) => s.reserved_data_set(d),
            Step::Compact => s.compact(),
            Step::Reset => s.reset(),
            Step::Maintain => s.maintain().map(|_| ()),
            Step::MaintainAll => s.maintain_all(),
            Step::Remount => Ok(()),
            Step::Abandon { key, flags, len, data, abort } => {
                s.set_start(key, *len, *flags)?;
                s.set_add_data(data)?;
                if *abort {
                    s.set_abort()?;
                }
                Ok(())
            }
            Step::Format { full } => s.format(*full).map(|_| ()),
        }
    }
}

/// Reads everything a user can see from a mounted store.
///
/// Keys are listed by iteration. If iteration fails, that is reported as the first problem
/// (with the prefix `iterate:`) and the keys in `known` are looked up one by one instead, so
/// the other checks can still run.
pub fn read_state(s: &mut Store<'_>, known: &[&[u8]]) -> (State, Vec<String>) {
    let mut problems = Vec::new();
    let mut names = Vec::new();
    if let Err(e) = s.for_each_key(b"", |k| names.push(k.to_vec())) {
        problems.push(format!("iterate: for_each_key failed: {e:?}"));
        names.clear();
        for k in known {
            if s.get_info(k).is_ok() {
                names.push(k.to_vec());
            }
        }
        names.sort();
        names.dedup();
    }
    let mut state = State::default();
    for k in names {
        let name = String::from_utf8_lossy(&k).into_owned();
        let (size, info_flags) = match s.get_info(&k) {
            Ok(x) => x,
            Err(e) => {
                problems.push(format!("get_info({name}) of a listed key failed: {e:?}"));
                continue;
            }
        };
        let mut v = vec![0; size];
        let got = match s.get(&k, &mut v) {
            Ok(g) => g,
            Err(e) => {
                problems.push(format!("get({name}) of a listed key failed: {e:?}"));
                continue;
            }
        };
        if got.copied != size || got.size != size || got.flags != info_flags {
            problems.push(format!("get({name}) disagrees with get_info: {got:?} vs ({size}, {info_flags})"));
        }
        if state.keys.insert(k, Entry { flags: got.flags, value: v }).is_some() {
            problems.push(format!("key {name} listed twice"));
        }
    }
    let mut r = [0u8; 64];
    state.reserved = match s.reserved_data_get(&mut r) {
        Ok(n) => Some(r[..n].to_vec()),
        Err(Error::NotFound) => None,
        Err(e) => {
            problems.push(format!("reserved_data_get failed: {e:?}"));
            None
        }
    };
    (state, problems)
}
