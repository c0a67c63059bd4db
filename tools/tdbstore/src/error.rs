//! Everything that can make the tool fail, each with a message for a person and an exit code
//! for a script.
//!
//! The engine is `no_std` and its [`tdbstore::Error`] has no `Display`, so the words for each
//! engine error live here, in one table ([`engine_message`]), as do the exit codes
//! ([`CliError::exit_code`]).

use std::io;
use std::path::PathBuf;

use tdbstore::{Error as EngineError, IoError, IoKind, KeyError};

/// Exit code: usage error.
pub const EXIT_USAGE: u8 = 1;
/// Exit code: key or reserved data not found.
pub const EXIT_NOT_FOUND: u8 = 2;
/// Exit code: the store refused the operation.
pub const EXIT_STORE: u8 = 3;
/// Exit code: the image is corrupt, foreign or the wrong size.
pub const EXIT_CORRUPT: u8 = 4;
/// Exit code: a file or stream could not be read or written, or the (simulated) flash failed.
pub const EXIT_IO: u8 = 5;

/// A failure of one run of the tool.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments, as clap reports them (printed in clap's own format in text mode).
    #[error("{}", clap_message(.0))]
    Clap(#[from] clap::Error),
    /// Bad arguments found after parsing.
    #[error("{0}")]
    Usage(String),
    /// A file or stream operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file (or `<stdout>`).
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A read-only command was given an image that does not exist.
    #[error(
        "image {} does not exist; only the commands that write (set, rm, format, stats-cycle, \
         reserved-set, compact) create a fresh one",
        .0.display()
    )]
    MissingImage(PathBuf),
    /// The image file's length is not the geometry's size.
    #[error(
        "image {} is {actual} bytes but the {geometry} geometry needs {expected}; pass the \
         matching --geometry or --size (images are never truncated or padded)",
        .path.display()
    )]
    ImageSize {
        /// The image.
        path: PathBuf,
        /// Its length.
        actual: u64,
        /// The geometry's size.
        expected: u32,
        /// The geometry's name.
        geometry: &'static str,
    },
    /// The engine refused or failed an operation not tied to one key.
    #[error("{}", engine_message(*.0))]
    Engine(EngineError),
    /// The engine refused or failed an operation on `key`.
    #[error("{}", key_message(.key, *.err))]
    Key {
        /// The key, as typed.
        key: String,
        /// The engine's error.
        err: EngineError,
    },
    /// The value can never fit in an area.
    #[error(
        "value too large: {len} bytes can never fit; a value under this key holds at most \
         {max} bytes on this geometry"
    )]
    ValueTooLarge {
        /// Its length.
        len: usize,
        /// The largest value the key can have in an empty area.
        max: u32,
    },
    /// `reserved-get` on a store without reserved data.
    #[error("no reserved data is set")]
    NoReservedData,
    /// `reserved-set` on a store that already has reserved data.
    #[error("reserved data is already set, and it is write-once")]
    ReservedDataSet,
    /// `reserved-set` with more than 64 bytes.
    #[error("reserved data is at most 64 bytes, got {0}")]
    ReservedTooLarge(usize),
    /// `check` found values that do not verify, or committed records mount cannot reach.
    #[error("{}", check_failed_message(*.keys, *.corrupt, *.unreachable))]
    CheckFailed {
        /// Keys walked.
        keys: usize,
        /// Values that failed.
        corrupt: usize,
        /// Intact records after the end of the log.
        unreachable: usize,
    },
    /// The `stats` value is too short for the tutorial's struct.
    #[error("key \"stats\" holds {0} bytes, fewer than the tutorial's 12-byte struct")]
    StatsTooShort(usize),
    /// The engine programmed flash units that were not erased (an engine defect).
    #[error(
        "the engine programmed {0} flash units that were not erased, which corrupts their ECC on \
         the device (an engine bug); the image was left untouched"
    )]
    DoubleProgram(u64),
    /// The output was already printed (with this error in it); only the exit code is left.
    #[error("{0}")]
    Reported(Box<CliError>),
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        CliError::Engine(e)
    }
}

impl CliError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        CliError::Io { path: path.into(), source }
    }

    /// Wraps an engine error from an operation on `key`.
    pub fn key(key: &str, err: EngineError) -> Self {
        CliError::Key { key: key.to_owned(), err }
    }

    /// The process exit code (see the crate docs).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Clap(_) | CliError::Usage(_) => EXIT_USAGE,
            CliError::Io { .. } | CliError::MissingImage(_) | CliError::DoubleProgram(_) => EXIT_IO,
            CliError::ImageSize { .. } | CliError::CheckFailed { .. } => EXIT_CORRUPT,
            CliError::Engine(e) | CliError::Key { err: e, .. } => engine_exit_code(*e),
            CliError::NoReservedData => EXIT_NOT_FOUND,
            CliError::ValueTooLarge { .. }
            | CliError::ReservedDataSet
            | CliError::ReservedTooLarge(_)
            | CliError::StatsTooShort(_) => EXIT_STORE,
            CliError::Reported(e) => e.exit_code(),
        }
    }
}

/// The exit code for an engine error.
pub fn engine_exit_code(e: EngineError) -> u8 {
    match e {
        EngineError::NotFound => EXIT_NOT_FOUND,
        EngineError::Foreign | EngineError::Corrupt | EngineError::Io(_, IoError::Ecc) => EXIT_CORRUPT,
        EngineError::Io(..) => EXIT_IO,
        EngineError::InvalidKey(_)
        | EngineError::InvalidFlags
        | EngineError::ValueTooLarge
        | EngineError::Full
        | EngineError::IndexFull
        | EngineError::WriteProtected
        | EngineError::Busy
        | EngineError::NotMounted
        | EngineError::Exists
        | EngineError::Internal
        | EngineError::SizeMismatch => EXIT_STORE,
    }
}

/// What an engine error means to a user.
pub fn engine_message(e: EngineError) -> String {
    match e {
        EngineError::InvalidKey(k) => format!("invalid key: {}", key_error_message(k)),
        EngineError::InvalidFlags => "invalid flags".into(),
        EngineError::ValueTooLarge => "value too large: it can never fit in an area".into(),
        EngineError::Full => "store full: not enough free space even after compaction".into(),
        EngineError::IndexFull => "too many keys: the tool's RAM index holds 4096 keys (IndexFull)".into(),
        EngineError::NotFound => "key not found".into(),
        EngineError::WriteProtected => "write-protected: the key is write-once".into(),
        EngineError::Busy => "store busy: another operation is in progress".into(),
        EngineError::NotMounted => "store not mounted".into(),
        EngineError::Foreign => "the image holds no TDBStore (no valid master record) and is not \
                                 blank; run `format` to erase it"
            .into(),
        EngineError::Corrupt => "corrupt record: its checksum does not match its contents".into(),
        EngineError::SizeMismatch => "incremental write size mismatch".into(),
        EngineError::Exists => "key exists (a create-only set)".into(),
        EngineError::Internal => "internal error in the store engine (a bug: please report it); \
                                  nothing more was written"
            .into(),
        EngineError::Io(kind, err) => {
            let what = match kind {
                IoKind::Read => "flash read",
                IoKind::Program => "flash program",
                IoKind::Erase => "flash erase",
                IoKind::Fill => "copy from the input",
                IoKind::Deliver => "copy to the output",
            };
            let why = match err {
                IoError::Ecc => "uncorrectable ECC error",
                IoError::Protected => "write-protected or out of range",
                IoError::PowerLost => "power lost",
                IoError::Other => "device error",
            };
            format!("{what} failed: {why}")
        }
    }
}

fn check_failed_message(keys: usize, corrupt: usize, unreachable: usize) -> String {
    let mut parts = Vec::new();
    if corrupt > 0 {
        parts.push(format!("{corrupt} of {keys} values do not verify"));
    }
    if unreachable > 0 {
        parts.push(format!(
            "{unreachable} intact records lie beyond a damaged end of the log, invisible to mount \
             (the next write compacts them away for good)"
        ));
    }
    format!("check failed: {}", parts.join("; "))
}

fn key_error_message(k: KeyError) -> String {
    match k {
        KeyError::Empty => "it is empty".into(),
        KeyError::TooLong => format!("it is longer than {} bytes", tdbstore::format::MAX_KEY_LEN),
        KeyError::ForbiddenByte(b' ') => "it contains a space".into(),
        KeyError::ForbiddenByte(b) => {
            format!("it contains the forbidden character {:?}", char::from(b))
        }
        KeyError::Reserved => "\"TDBS\" names the master record and is never a user key".into(),
    }
}

fn key_message(key: &str, e: EngineError) -> String {
    match e {
        EngineError::NotFound => format!("key {key:?} not found"),
        EngineError::WriteProtected => {
            format!("key {key:?} is write-once: it can never be overwritten or removed")
        }
        EngineError::InvalidKey(k) => format!("invalid key {key:?}: {}", key_error_message(k)),
        other => format!("key {key:?}: {}", engine_message(other)),
    }
}

/// clap's own first line, without its `error: ` prefix (for JSON output).
fn clap_message(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid arguments");
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_documented_table() {
        assert_eq!(CliError::key("k", EngineError::NotFound).exit_code(), 2);
        assert_eq!(CliError::Engine(EngineError::Full).exit_code(), 3);
        assert_eq!(
            CliError::key("a b", EngineError::InvalidKey(KeyError::ForbiddenByte(b' '))).exit_code(),
            3
        );
        assert_eq!(CliError::Engine(EngineError::Foreign).exit_code(), 4);
        assert_eq!(CliError::Engine(EngineError::Io(IoKind::Read, IoError::Ecc)).exit_code(), 4);
        assert_eq!(CliError::Engine(EngineError::Io(IoKind::Erase, IoError::Other)).exit_code(), 5);
        assert_eq!(CliError::Usage(String::new()).exit_code(), 1);
        let inner = CliError::CheckFailed { keys: 1, corrupt: 1, unreachable: 0 };
        assert_eq!(CliError::Reported(Box::new(inner)).exit_code(), 4);
    }

    #[test]
    fn messages_name_the_problem() {
        let m = CliError::key("a b", EngineError::InvalidKey(KeyError::ForbiddenByte(b' ')));
        assert_eq!(m.to_string(), "invalid key \"a b\": it contains a space");
        assert!(CliError::Engine(EngineError::Foreign).to_string().contains("run `format`"));
        assert_eq!(CliError::key("x", EngineError::NotFound).to_string(), "key \"x\" not found");
    }
}
