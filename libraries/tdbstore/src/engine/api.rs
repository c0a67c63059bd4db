//! The engine's public vocabulary: operations, the requests a driver performs, outcomes and errors.

use crate::format::{KeyError, RecordFormat};
use crate::geometry::Geometry;

/// The condition of a [`Op::Set`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SetWhen {
    /// Always write (create or replace).
    #[default]
    Always,
    /// Only create: the key must not exist ([`Error::Exists`] otherwise).
    Absent,
    /// Only replace: the key must exist ([`Error::NotFound`] otherwise).
    Present,
}

/// Tuning knobs with safe defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Mount formats a region whose master records are both blank (a fresh device). A region
    /// holding anything else is never touched without an explicit [`Op::Format`].
    pub format_if_blank: bool,
    /// [`Op::Maintain`] compacts early once the active area has fewer free bytes than this
    /// (and the standby area is already erased). 0 disables early compaction.
    pub compact_below: u32,
    /// Record layout for stores this engine formats. Mounting follows what the master
    /// record says, whatever this is.
    pub record_format: RecordFormat,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { format_if_blank: true, compact_below: 0, record_format: RecordFormat::Mbed }
    }
}

/// One thing the driver must do before calling [`Store::resume`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Read `len` bytes of flash at `addr` into [`Store::io_buf`].
    Read {
        /// Byte address within the store's region.
        addr: u32,
        /// Length.
        len: u32,
    },
    /// Program [`Store::io_buf`] (whole program units) at `addr`.
    Program {
        /// Byte address within the store's region.
        addr: u32,
        /// Length.
        len: u32,
    },
    /// Erase the one erase unit `[addr, addr + len)`.
    Erase {
        /// Byte address within the store's region.
        addr: u32,
        /// Length (one erase unit).
        len: u32,
    },
    /// Copy bytes `[offset, offset + len)` of the operation's input into [`Store::io_buf`].
    Fill {
        /// Offset into the input.
        offset: u32,
        /// Length.
        len: u32,
    },
    /// Copy [`Store::io_buf`] to bytes `[offset, offset + len)` of the operation's output.
    Deliver {
        /// Offset into the output.
        offset: u32,
        /// Length.
        len: u32,
    },
}

/// Which kind of request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoKind {
    /// Flash read.
    Read,
    /// Flash program.
    Program,
    /// Flash erase.
    Erase,
    /// Copy from the operation's input.
    Fill,
    /// Copy to the operation's output.
    Deliver,
}

/// How a driver reports a failed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// Uncorrectable data (an ECC error on the STM32H7).
    Ecc,
    /// The region is write-protected or outside the driver's range.
    Protected,
    /// Power was lost (simulation) or the device is gone.
    PowerLost,
    /// Anything else.
    Other,
}

/// What the driver does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Perform this request, then call [`Store::resume`].
    Io(Request),
    /// The operation finished (or was refused): [`Store::finish`] gives its result.
    Done,
}

/// Everything that can go wrong, as a type. No operation panics.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The key is empty, too long, has a forbidden byte or is `"TDBS"`.
    InvalidKey(KeyError),
    /// Flags outside [`format::USER_FLAGS`].
    InvalidFlags,
    /// The value can never fit in an area.
    ValueTooLarge,
    /// Not enough space, even after compaction.
    Full,
    /// The RAM index has no free entry for another key.
    IndexFull,
    /// No such key (or no reserved data).
    NotFound,
    /// The key is write-once, or reserved data is already set.
    WriteProtected,
    /// Another operation is in flight, or an incremental set is open.
    Busy,
    /// The store is not mounted (or must be mounted again after a failed compaction).
    NotMounted,
    /// Neither area holds a master record, and the region is not blank: not a TDBStore, or
    /// badly damaged. Nothing was changed; [`Op::Format`] makes it a store.
    Foreign,
    /// A record's checksum does not match its contents.
    Corrupt,
    /// An incremental set got more or fewer bytes than declared, or no incremental set is open.
    SizeMismatch,
    /// A conditional set ([`SetWhen::Absent`]) found the key already there.
    Exists,
    /// A driver request failed.
    Io(IoKind, IoError),
    /// The engine reached a state its own invariants rule out (a bug, never bad input or bad
    /// flash): the operation stopped and changed nothing further; mount again.
    Internal,
}

impl Error {
    /// The variant's name, as `Debug` prints it before any fields.
    pub fn name(&self) -> &'static str {
        match self {
            Error::InvalidKey(_) => "InvalidKey",
            Error::InvalidFlags => "InvalidFlags",
            Error::ValueTooLarge => "ValueTooLarge",
            Error::Full => "Full",
            Error::IndexFull => "IndexFull",
            Error::NotFound => "NotFound",
            Error::WriteProtected => "WriteProtected",
            Error::Busy => "Busy",
            Error::NotMounted => "NotMounted",
            Error::Foreign => "Foreign",
            Error::Corrupt => "Corrupt",
            Error::SizeMismatch => "SizeMismatch",
            Error::Exists => "Exists",
            Error::Io(..) => "Io",
            Error::Internal => "Internal",
        }
    }
}

// What `derive(Debug)` prints (a test holds it to that), from tables of names: the kernel
// logs these errors, and the derived impls (this one and the nested ones) took 688 bytes of
// the Portenta kernel's flash where these take 232.
impl core::fmt::Debug for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())?;
        match *self {
            Error::InvalidKey(KeyError::ForbiddenByte(b)) => write!(f, "(ForbiddenByte({b}))"),
            Error::InvalidKey(k) => {
                let name = match k {
                    KeyError::Empty => "(Empty)",
                    KeyError::TooLong => "(TooLong)",
                    KeyError::Reserved => "(Reserved)",
                    KeyError::ForbiddenByte(_) => "(ForbiddenByte)",
                };
                f.write_str(name)
            }
            Error::Io(kind, e) => {
                let kind = match kind {
                    IoKind::Read => "(Read, ",
                    IoKind::Program => "(Program, ",
                    IoKind::Erase => "(Erase, ",
                    IoKind::Fill => "(Fill, ",
                    IoKind::Deliver => "(Deliver, ",
                };
                let e = match e {
                    IoError::Ecc => "Ecc)",
                    IoError::Protected => "Protected)",
                    IoError::PowerLost => "PowerLost)",
                    IoError::Other => "Other)",
                };
                f.write_str(kind)?;
                f.write_str(e)
            }
            _ => Ok(()),
        }
    }
}

/// A position in the iteration order (descending key hash, as Mbed iterates).
#[cfg(feature = "iteration")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub(crate) pos: u32,
    pub(crate) last_hash: Option<u32>,
}

/// The kind of operation in flight ([`crate::Store::task`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// [`Op::Mount`].
    Mount,
    /// [`Op::Format`].
    Format,
    /// A lookup ([`Op::Get`], [`Op::GetInfo`], [`Op::Next`], [`Op::ReservedGet`]), or
    /// [`Op::SetAbort`], which reads nothing either.
    Read,
    /// A change: [`Op::Set`], [`Op::SetStart`], [`Op::SetData`], [`Op::SetFinalize`],
    /// [`Op::Remove`], [`Op::ReservedSet`].
    Write,
    /// [`Op::Compact`] or [`Op::Reset`].
    Compact,
    /// [`Op::Maintain`].
    Maintain,
}

/// What a finished operation produced, kept by the store until [`Store::finish`] takes it as
/// the operation's own [`Output`] type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Mounted(MountInfo),
    Value(Value),
    Info(KeyInfo),
    #[cfg(feature = "iteration")]
    Key(Option<NextKey>),
    #[cfg(feature = "reserved-data")]
    Reserved(ReservedData),
    Maintained(bool),
    Done,
}

/// What [`Op::Get`] produced: `copied` bytes of the value were delivered, out of `size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value {
    /// Full value length.
    pub size: u32,
    /// Stored flags.
    pub flags: u32,
    /// Bytes delivered (at most the output length).
    pub copied: u32,
}

/// What [`Op::GetInfo`] produced: a key's value length and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Value length.
    pub size: u32,
    /// Stored flags.
    pub flags: u32,
}

/// The key [`Op::Next`] found (`copied` of its `len` bytes delivered) and where to continue.
#[cfg(feature = "iteration")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextKey {
    /// Key length.
    pub len: u32,
    /// Bytes delivered.
    pub copied: u32,
    /// Pass to the next [`Op::Next`].
    pub next: Cursor,
}

/// What [`Op::ReservedGet`] produced: the reserved data is `len` bytes, `copied` delivered.
#[cfg(feature = "reserved-data")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservedData {
    /// Length.
    pub len: u32,
    /// Bytes delivered.
    pub copied: u32,
}

/// The result type of an operation, as [`Store::finish`] returns it:
///
/// | operation | `Output` |
/// |---|---|
/// | [`Op::Mount`], [`Op::Format`] | [`MountInfo`] |
/// | [`Op::Get`] | [`Value`] |
/// | [`Op::GetInfo`] | [`KeyInfo`] |
/// | [`Op::Next`] | `Option<`[`NextKey`]`>` (`None`: no more keys) |
/// | [`Op::ReservedGet`] | [`ReservedData`] |
/// | [`Op::Maintain`] | `bool`: more background work is due |
/// | every other operation | `()` |
///
/// Each operation has exactly one, so a driver never handles an outcome its operation cannot
/// have. Sealed: the engine's result types only.
pub trait Output: Sized + sealed::FromOutcome {}

impl<T: sealed::FromOutcome> Output for T {}

pub(crate) mod sealed {
    use super::*;

    /// A finished operation's outcome, opaque outside the engine.
    pub struct Finished(pub(crate) Outcome);

    /// The conversion [`Store::finish`] makes; `None` if the operation that ran produces
    /// another type (the driver asked for the wrong one).
    pub trait FromOutcome: Sized {
        fn from_outcome(o: Finished) -> Option<Self>;
    }

    /// One impl per result type: the outcome variant that carries it.
    macro_rules! from_outcome {
        ($($(#[$cfg:meta])* $t:ty: $pat:pat => $v:expr;)*) => {$(
            $(#[$cfg])*
            impl FromOutcome for $t {
                fn from_outcome(Finished(o): Finished) -> Option<Self> {
                    match o {
                        $pat => Some($v),
                        _ => None,
                    }
                }
            }
        )*};
    }

    from_outcome! {
        (): Outcome::Done => ();
        MountInfo: Outcome::Mounted(m) => m;
        Value: Outcome::Value(v) => v;
        KeyInfo: Outcome::Info(i) => i;
        #[cfg(feature = "iteration")]
        Option<NextKey>: Outcome::Key(k) => k;
        #[cfg(feature = "reserved-data")]
        ReservedData: Outcome::Reserved(r) => r;
        bool: Outcome::Maintained(more) => more;
    }
}

/// What mount found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountInfo {
    /// Active area (0 or 1).
    pub active_area: u8,
    /// Its master-record version.
    pub version: u16,
    /// Live keys.
    pub keys: u32,
    /// Offset of the log's end in the active area.
    pub free_offset: u32,
    /// The region was blank and has been formatted.
    pub formatted: bool,
    /// A torn write was found after the log; the next write compacts first.
    pub torn_tail: bool,
}

/// A snapshot of the store's state, for tools and benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreInfo {
    /// The geometry.
    pub geometry: Geometry,
    /// Area size.
    pub area_size: u32,
    /// Whether mounted.
    pub mounted: bool,
    /// Active area.
    pub active_area: u8,
    /// Master-record version of the active area.
    pub version: u16,
    /// Live keys.
    pub keys: u32,
    /// Index capacity.
    pub key_capacity: u32,
    /// End of the log in the active area.
    pub free_offset: u32,
    /// Bytes occupied by live records.
    pub live_bytes: u32,
    /// Active area known erased from here on.
    pub erased_until: u32,
    /// Standby area known erased up to here.
    pub standby_clean: u32,
    /// A compaction is due before the next append.
    pub torn_tail: bool,
    /// Length of the reserved data, if set.
    pub reserved_len: Option<u8>,
    /// Compactions since this store was created.
    pub compactions: u32,
}

/// An operation. Keys and prefixes are copied at [`Store::start`]; values travel through
/// [`Request::Fill`] and [`Request::Deliver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// Find the active area and build the index.
    Mount,
    /// Make the region an empty store (erases; `full` erases every sector, else only the
    /// area heads). Reserved data is dropped.
    Format {
        /// Erase every sector now instead of on demand.
        full: bool,
    },
    /// Read a value into the output (up to `out_len` bytes).
    Get {
        /// Key.
        key: &'a [u8],
        /// Output capacity.
        out_len: u32,
    },
    /// Size and flags of a key.
    GetInfo {
        /// Key.
        key: &'a [u8],
    },
    /// Write `len` input bytes as the value of `key`, if `when` holds (decided by the same
    /// lookup the write makes anyway).
    Set {
        /// Key.
        key: &'a [u8],
        /// Value length (the input's length).
        len: u32,
        /// User flags.
        flags: u32,
        /// Whether the key must be absent (`Exists` otherwise) or present (`NotFound`).
        when: SetWhen,
    },
    /// Begin an incremental set of a `len`-byte value; mutations are refused until it ends.
    #[cfg(feature = "incremental")]
    SetStart {
        /// Key.
        key: &'a [u8],
        /// Final value length.
        len: u32,
        /// User flags.
        flags: u32,
    },
    /// Append `len` input bytes to the open incremental set.
    #[cfg(feature = "incremental")]
    SetData {
        /// Input length.
        len: u32,
    },
    /// Commit the open incremental set.
    #[cfg(feature = "incremental")]
    SetFinalize,
    /// Abandon the open incremental set (nothing becomes visible).
    #[cfg(feature = "incremental")]
    SetAbort,
    /// Remove a key.
    Remove {
        /// Key.
        key: &'a [u8],
    },
    /// Remove every key and the reserved data, atomically, as Mbed's `reset()` does (`docs/format.md` §16):
    /// an empty generation in the standby area, then the old area's head erased.
    Reset,
    /// The next key starting with `prefix` after `cursor`; its bytes are delivered.
    #[cfg(feature = "iteration")]
    Next {
        /// Key prefix (may be empty).
        prefix: &'a [u8],
        /// Where to continue ([`Cursor::default`] to start).
        cursor: Cursor,
        /// Output capacity for the key.
        out_len: u32,
    },
    /// Set the write-once reserved data (`len` <= 64 input bytes).
    #[cfg(feature = "reserved-data")]
    ReservedSet {
        /// Input length.
        len: u32,
    },
    /// Read the reserved data.
    #[cfg(feature = "reserved-data")]
    ReservedGet {
        /// Output capacity.
        out_len: u32,
    },
    /// One bounded step of background work; call while idle until `more` is false.
    Maintain,
    /// Compact the live records into the standby area now.
    Compact,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::KeyError;

    /// The hand-written `Debug` prints what `derive(Debug)` would, fields included.
    #[test]
    fn errors_print_as_derived_debug_would() {
        let cases = [
            (Error::Full, "Full"),
            (Error::Internal, "Internal"),
            (Error::Foreign, "Foreign"),
            (Error::InvalidKey(KeyError::ForbiddenByte(b' ')), "InvalidKey(ForbiddenByte(32))"),
            (Error::InvalidKey(KeyError::Empty), "InvalidKey(Empty)"),
            (Error::InvalidKey(KeyError::TooLong), "InvalidKey(TooLong)"),
            (Error::InvalidKey(KeyError::Reserved), "InvalidKey(Reserved)"),
            (Error::Io(IoKind::Erase, IoError::Protected), "Io(Erase, Protected)"),
            (Error::Io(IoKind::Fill, IoError::Other), "Io(Fill, Other)"),
            (Error::Io(IoKind::Deliver, IoError::Other), "Io(Deliver, Other)"),
            (Error::Io(IoKind::Read, IoError::Ecc), "Io(Read, Ecc)"),
            (Error::Io(IoKind::Program, IoError::PowerLost), "Io(Program, PowerLost)"),
        ];
        for (e, want) in cases {
            assert_eq!(format!("{e:?}"), want);
        }
    }
}
