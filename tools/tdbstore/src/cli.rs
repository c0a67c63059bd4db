//! The command line: what the user can type, and the flash geometry it selects.
//!
//! Geometry options are global so they may follow the subcommand as well as precede it
//! (`tdbstore img.bin ls --geometry small` reads as naturally as the other order).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use flash_sim::Geometry;

use crate::error::CliError;

/// Appended to `--help`: the contract scripts rely on.
const AFTER_HELP: &str = "\
The image is the raw flash region (both areas). Commands that write (set, rm, format,
stats-cycle, reserved-set, compact) create a missing image as a fresh, erased device; the
others refuse a missing image. An image whose length differs from the geometry's size is
refused, never truncated or padded. A write goes to a temporary file beside the image,
which is then renamed over it, so the image is either the old one or the new one; on any
error the image is left untouched.

The tool keeps a RAM index of 4096 keys, like a device with that many index entries: an
image holding more keys fails to mount with a 'too many keys' (IndexFull) error, and a set
that would add a 4097th key fails the same way.

Exit codes:
  0  success
  1  usage error (bad arguments, bad hex, unusable geometry)
  2  key (or reserved data) not found
  3  store error: full, write-protected, invalid key, value too large, too many keys
  4  corrupt or foreign image: wrong size, no TDBStore, checksum or ECC failure
  5  I/O error: the image file, stdout, or the (simulated) flash device";

/// Inspect, check, edit and provision Mbed OS TDBStore flash images.
#[derive(Parser, Debug)]
#[command(name = "tdbstore", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Flash geometry options (a preset, optionally overridden field by field).
    #[command(flatten)]
    pub geometry: GeometryArgs,

    /// Print exactly one JSON object (errors too, as {"error": ..., "exit_code": ...}).
    #[arg(long, global = true)]
    pub json: bool,

    /// Record format of a store this command creates (`format`, or the first write to a
    /// blank image): `mbed` (Mbed OS reads and writes it; the default) or `compact` (12-byte
    /// headers, one flash word per small update; Mbed OS reads it as an empty store). An
    /// existing store keeps its own format: naming the other one for anything but `format`
    /// is refused.
    #[arg(
        long = "record-format",
        visible_alias = "format",
        value_enum,
        value_name = "FORMAT",
        global = true
    )]
    pub record_format: Option<RecordFormatArg>,

    /// The flash region image file.
    pub image: PathBuf,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How records are laid out (`--record-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RecordFormatArg {
    /// Mbed OS TDBStore records.
    Mbed,
    /// This engine's compact records.
    Compact,
}

impl RecordFormatArg {
    /// The engine's record format.
    pub fn format(self) -> tdbstore::format::RecordFormat {
        match self {
            RecordFormatArg::Mbed => tdbstore::format::RecordFormat::Mbed,
            RecordFormatArg::Compact => tdbstore::format::RecordFormat::Compact,
        }
    }
}

/// The name the tool uses for a record format.
pub fn format_name(f: tdbstore::format::RecordFormat) -> &'static str {
    match f {
        tdbstore::format::RecordFormat::Mbed => "mbed",
        tdbstore::format::RecordFormat::Compact => "compact",
    }
}

/// A geometry preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// Arduino Portenta H7 tutorial region: 1572864 B, read 1, program 32, erase 131072.
    Portenta,
    /// Serial NOR: 2 MiB, read 1, program 1, erase 4096.
    Qspi,
    /// The golden vectors' g2 geometry: 32768 B, read 1, program 8, erase 4096.
    Small,
}

impl Preset {
    fn geometry(self) -> Geometry {
        match self {
            Preset::Portenta => Geometry::PORTENTA,
            Preset::Qspi => Geometry::QSPI,
            Preset::Small => Geometry::SMALL,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Preset::Portenta => "portenta",
            Preset::Qspi => "qspi",
            Preset::Small => "small",
        }
    }
}

/// The flash geometry: a preset plus explicit overrides.
#[derive(Args, Debug, Clone)]
pub struct GeometryArgs {
    /// Geometry preset; the options below override single fields of it.
    #[arg(long, value_enum, default_value_t = Preset::Portenta, global = true)]
    pub geometry: Preset,
    /// Region size in bytes (both areas).
    #[arg(long, value_name = "N", value_parser = parse_u32, global = true)]
    pub size: Option<u32>,
    /// Program unit in bytes.
    #[arg(long, value_name = "N", value_parser = parse_u32, global = true)]
    pub program_size: Option<u32>,
    /// Erase unit (sector) in bytes.
    #[arg(long, value_name = "N", value_parser = parse_u32, global = true)]
    pub erase_size: Option<u32>,
    /// Read unit in bytes.
    #[arg(long, value_name = "N", value_parser = parse_u32, global = true)]
    pub read_size: Option<u32>,
    /// Value of an erased byte (e.g. 0xFF).
    #[arg(long, value_name = "N", value_parser = parse_u8, global = true)]
    pub erase_value: Option<u8>,
}

/// A geometry both the simulator and the engine accept, with a name for reports.
#[derive(Clone, Copy, Debug)]
pub struct ResolvedGeometry {
    /// The sizes.
    pub geometry: Geometry,
    /// The preset's name, or "custom" when an override changed it.
    pub name: &'static str,
}

impl GeometryArgs {
    /// Applies the overrides and checks the result up front, so that a bad geometry is a
    /// usage error before any file is read or created.
    pub fn resolve(&self) -> Result<ResolvedGeometry, CliError> {
        let preset = self.geometry.geometry();
        let g = Geometry {
            size: self.size.unwrap_or(preset.size),
            read_size: self.read_size.unwrap_or(preset.read_size),
            program_size: self.program_size.unwrap_or(preset.program_size),
            erase_size: self.erase_size.unwrap_or(preset.erase_size),
            erase_value: self.erase_value.unwrap_or(preset.erase_value),
        };
        flash_sim::check_geometry(&g).map_err(|e| CliError::Usage(format!("unusable geometry: {e}")))?;
        tdbstore::check_geometry(&g)
            .map_err(|e| CliError::Usage(format!("unusable geometry: {}", geometry_message(e))))?;
        let name = if g == preset { self.geometry.name() } else { "custom" };
        Ok(ResolvedGeometry { geometry: g, name })
    }
}

/// Why the engine refuses a geometry, in words that name the field to change.
pub fn geometry_message(e: tdbstore::GeometryError) -> String {
    e.to_string()
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Geometry, layout and state of the store.
    Info,
    /// List keys in iteration order (Mbed's: descending key hash), with size and flags. A
    /// key that is not printable text is shown with `\xHH` escapes, as the other commands
    /// take it back.
    Ls {
        /// Only keys starting with this (`\xHH` escapes a byte).
        #[arg(allow_hyphen_values = true, conflicts_with = "prefix_hex")]
        prefix: Option<String>,
        /// Only keys starting with these bytes, as hex.
        #[arg(long, value_name = "HEX")]
        prefix_hex: Option<String>,
    },
    /// Print a value: as text if it is printable UTF-8, else as hex.
    #[command(override_usage = "tdbstore <IMAGE> get (<KEY> | --key-hex <HEX>) [OPTIONS]")]
    Get {
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        format: ValueFormat,
    },
    /// Write a value.
    #[command(
        override_usage = "tdbstore <IMAGE> set (<KEY> | --key-hex <HEX>) (<VALUE> | --hex <HEX> | --file <PATH>) [OPTIONS]"
    )]
    Set {
        /// The key (1..=127 bytes, none of NUL and ` */?:;"|<>\`, not "TDBS"); `\xHH`
        /// escapes a byte. With --key-hex, the first argument is the value.
        #[arg(allow_hyphen_values = true)]
        key: Option<String>,
        /// The key's bytes, as hex (any key Mbed OS accepts, text or not).
        #[arg(long, value_name = "HEX")]
        key_hex: Option<String>,
        #[command(flatten)]
        value: ValueSource,
        /// The key can never be overwritten or removed afterwards.
        #[arg(long)]
        write_once: bool,
        /// Store the REQUIRE_CONFIDENTIALITY flag (stored and reported only).
        #[arg(long)]
        confidential: bool,
        /// Store the REQUIRE_REPLAY_PROTECTION flag (stored and reported only).
        #[arg(long)]
        replay_protected: bool,
    },
    /// Remove a key.
    #[command(override_usage = "tdbstore <IMAGE> rm (<KEY> | --key-hex <HEX>) [OPTIONS]")]
    Rm {
        #[command(flatten)]
        key: KeyArg,
    },
    /// Mount, read every value verifying its checksum, and report; non-zero exit on corruption.
    Check,
    /// Make the image an empty store, whatever it held (the only command that erases a
    /// foreign image).
    Format {
        /// Erase every sector now, instead of only the area heads.
        #[arg(long)]
        full: bool,
    },
    /// Print the reserved data.
    ReservedGet {
        #[command(flatten)]
        format: ValueFormat,
    },
    /// Set the write-once reserved data (at most 64 bytes).
    ReservedSet {
        /// The data, as text.
        #[arg(required_unless_present = "hex", conflicts_with = "hex", allow_hyphen_values = true)]
        text: Option<String>,
        /// The data, as hex.
        #[arg(long, value_name = "HEX")]
        hex: Option<String>,
    },
    /// Compact the live records into the standby area now.
    Compact,
    /// One run of Arduino's Portenta "FlashKeyValue" tutorial: read, print and bump `stats`.
    StatsCycle,
}

impl Command {
    /// Whether the command may change the image (and so may create a missing one).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Command::Set { .. }
                | Command::Rm { .. }
                | Command::Format { .. }
                | Command::StatsCycle
                | Command::ReservedSet { .. }
                | Command::Compact
        )
    }
}

/// How to print a value.
#[derive(Args, Debug, Clone, Copy)]
pub struct ValueFormat {
    /// Print hex even if the value is text.
    #[arg(long, conflicts_with = "raw")]
    pub hex: bool,
    /// Write the bytes exactly, with no newline (not with --json).
    #[arg(long)]
    pub raw: bool,
}

/// A key, as text or as hex: exactly one of these.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct KeyArg {
    /// The key, as `ls` prints it: text, with `\xHH` escaping a byte (a key never holds a
    /// backslash, so the escapes are unambiguous).
    #[arg(allow_hyphen_values = true)]
    pub key: Option<String>,
    /// The key's bytes, as hex (any key Mbed OS accepts, text or not).
    #[arg(long, value_name = "HEX")]
    pub key_hex: Option<String>,
}

impl KeyArg {
    /// The key's bytes.
    pub fn bytes(&self) -> Result<Vec<u8>, CliError> {
        key_bytes(self.key.as_deref(), self.key_hex.as_deref())
    }
}

/// A key from its text form (with escapes) or its hex.
pub fn key_bytes(text: Option<&str>, hex: Option<&str>) -> Result<Vec<u8>, CliError> {
    match (text, hex) {
        (_, Some(h)) => parse_hex(h),
        (Some(t), None) => unescape_key(t),
        (None, None) => Err(CliError::Usage("no key given: a KEY argument or --key-hex".into())),
    }
}

/// Decodes a key typed as `ls` prints it: the escapes Rust's `escape_ascii` writes (`\xHH`,
/// `\t`, `\r`, `\n`, `\\`, `\'`, `\"`); every other character stands for its UTF-8 bytes.
pub fn unescape_key(s: &str) -> Result<Vec<u8>, CliError> {
    let bad = |why: &str| {
        CliError::Usage(format!(
            "invalid key \"{s}\": {why} (a key holds no backslash; \\xHH escapes a byte, or use --key-hex)"
        ))
    };
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let byte = match it.next() {
            Some(b'x') => {
                let hex: Vec<u8> = it.by_ref().take(2).collect();
                let text = std::str::from_utf8(&hex).ok().filter(|h| h.len() == 2);
                let v = text.and_then(|h| u8::from_str_radix(h, 16).ok());
                v.ok_or_else(|| bad("\\x needs two hex digits"))?
            }
            Some(b't') => b'\t',
            Some(b'r') => b'\r',
            Some(b'n') => b'\n',
            Some(c @ (b'\\' | b'\'' | b'"')) => c,
            _ => return Err(bad("unknown escape")),
        };
        out.push(byte);
    }
    Ok(out)
}

/// Where a value comes from: at most one of these (none is a usage error, reported by the
/// command, since with `--key-hex` the first argument is the value).
#[derive(Args, Debug, Clone)]
#[group(required = false, multiple = false)]
pub struct ValueSource {
    /// The value, as text.
    #[arg(allow_hyphen_values = true)]
    pub value: Option<String>,
    /// The value, as hex.
    #[arg(long, value_name = "HEX")]
    pub hex: Option<String>,
    /// Read the value from a file.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

/// Decodes hex typed by a user (an optional `0x` prefix is allowed).
pub fn parse_hex(s: &str) -> Result<Vec<u8>, CliError> {
    let t = s.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    hex::decode(t).map_err(|e| CliError::Usage(format!("invalid hex {s:?}: {e}")))
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|e| format!("{s:?} is not a 32-bit number: {e}"))
}

fn parse_u8(s: &str) -> Result<u8, String> {
    let v = parse_u32(s)?;
    u8::try_from(v).map_err(|_| format!("{s:?} does not fit in a byte"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn numbers_and_hex() {
        assert_eq!(parse_u32("0x20"), Ok(32));
        assert_eq!(parse_u32("4096"), Ok(4096));
        assert!(parse_u32("-1").is_err());
        assert_eq!(parse_u8("0xFF"), Ok(255));
        assert!(parse_u8("256").is_err());
        assert_eq!(parse_hex("0xA0ff").ok(), Some(vec![0xA0, 0xFF]));
        assert!(parse_hex("abc").is_err());
    }

    #[test]
    fn every_escape_ls_prints_decodes_back() {
        for b in 0..=255u8 {
            let key = [b'k', b, b'\xff'];
            let shown = key.escape_ascii().to_string();
            assert_eq!(unescape_key(&shown).ok().as_deref(), Some(&key[..]), "byte {b:#04x}: {shown}");
        }
        assert_eq!(unescape_key("caf\u{e9}").ok(), Some("caf\u{e9}".as_bytes().to_vec()));
        for bad in ["a\\", "a\\x4", "a\\xg0", "a\\q", "\\x\u{e9}0"] {
            assert!(matches!(unescape_key(bad), Err(CliError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn overrides_and_refusals() {
        let args = ["t", "--geometry", "small", "--program-size", "16", "i", "info"];
        let cli = Cli::try_parse_from(args).expect("parses");
        let r = cli.geometry.resolve().expect("valid");
        assert_eq!((r.geometry.program_size, r.geometry.size, r.name), (16, 32768, "custom"));
        let cli = Cli::try_parse_from(["t", "i", "info", "--geometry", "small"]).expect("parses");
        assert_eq!(cli.geometry.resolve().expect("valid").name, "small");
        let bad = Cli::try_parse_from(["t", "--erase-size", "3", "i", "info"]).expect("parses");
        assert!(matches!(bad.geometry.resolve(), Err(CliError::Usage(_))));
    }
}
