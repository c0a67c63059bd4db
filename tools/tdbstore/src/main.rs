//! `tdbstore`: inspect, check, edit and provision Mbed OS TDBStore flash images on the host,
//! with the same engine the Tock capsule runs (`libraries/tdbstore`) over the flash
//! simulator (`libraries/flash-sim`).
//!
//! ```text
//! tdbstore [--geometry portenta|qspi|small] [--size N] [--program-size N] [--erase-size N]
//!          [--read-size N] [--erase-value N] [--json] <image> <command>
//!
//! info                      geometry, layout (master and first record offsets), state
//! ls [prefix]               keys in iteration order, with size and flags
//! get <key> [--hex|--raw]   a value: text if printable UTF-8, else hex; --raw: the bytes
//! set <key> (<value> | --hex HEX | --file PATH) [--write-once] [--confidential]
//!     [--replay-protected]
//! rm <key>
//! check                     read every value, verifying checksums
//! format [--full]           make the image an empty store, whatever it held
//! reserved-get [--hex|--raw]
//! reserved-set (<text> | --hex HEX)
//! compact                   compact into the standby area now
//! stats-cycle               one run of Arduino's Portenta FlashKeyValue tutorial
//! ```
//!
//! Presets: `portenta` (default; 1572864 bytes, read 1, program 32, erase 131072, erased
//! 0xFF: the Arduino Portenta H7 tutorial region), `qspi` (2 MiB, 1/1/4096) and `small`
//! (32768 bytes, 1/8/4096: the golden vectors' g2). `--size` and the unit options override
//! single fields of the preset.
//!
//! The image file is the raw flash region. Commands that write create a missing image as a
//! fresh erased device (mount formats a blank region); read-only commands refuse it. A
//! length that differs from the geometry's size is refused, never repaired. Writes go to a
//! temporary file in the image's directory that is then renamed over it, and happen only
//! when the command succeeded, so a failed or interrupted run leaves the image as it was.
//!
//! The engine gets a 4096-byte work buffer and a RAM index of 4096 keys: an image with more
//! keys fails to mount, and a set adding one more fails, with a "too many keys" (IndexFull)
//! error.
//!
//! With `--json` every run prints exactly one JSON object on stdout, errors included
//! (`{"error": "...", "exit_code": N}`).
//!
//! # Exit codes
//!
//! | code | meaning                                                                  |
//! |------|--------------------------------------------------------------------------|
//! | 0    | success                                                                  |
//! | 1    | usage error: bad arguments, bad hex, unusable geometry                   |
//! | 2    | key (or reserved data) not found                                         |
//! | 3    | store error: full, write-protected, invalid key, value too large, index full |
//! | 4    | corrupt or foreign image: wrong size, no TDBStore, checksum or ECC failure |
//! | 5    | I/O error: the image file, stdout, or the (simulated) flash device         |

mod cli;
mod commands;
mod error;
mod image;
mod stats;

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Instant;

use clap::error::ErrorKind;
use clap::Parser;
use serde_json::Value;

use crate::cli::Cli;
use crate::commands::Output;
use crate::error::CliError;

fn main() -> ExitCode {
    let started = Instant::now();
    // Until the arguments parse, a literal `--json` is the best guess at the output mode, so
    // that even a usage error comes back as JSON to a script that asked for it.
    let mut json = std::env::args_os().any(|a| a == "--json");
    match try_main(started, &mut json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_error(&e, json);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Parses the command line, runs the command and prints its output. `json` is set to the
/// output mode as soon as it is known.
fn try_main(started: Instant, json: &mut bool) -> Result<(), CliError> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            return stdout_result(e.print());
        }
        Err(e) => return Err(e.into()),
    };
    *json = cli.json;
    let out = commands::run(&cli, started)?;
    print(out, cli.json)
}

/// Prints a command's output; a failure it carries is returned as already reported.
fn print(out: Output, json: bool) -> Result<(), CliError> {
    let Output { json: mut value, text, failure } = out;
    let bytes = if json {
        if let (Some(f), Value::Object(map)) = (&failure, &mut value) {
            map.insert("error".into(), Value::String(f.to_string()));
            map.insert("exit_code".into(), Value::from(f.exit_code()));
        }
        let mut b = value.to_string().into_bytes();
        b.push(b'\n');
        b
    } else {
        text
    };
    write_stdout(&bytes)?;
    match failure {
        Some(f) => Err(CliError::Reported(Box::new(f))),
        None => Ok(()),
    }
}

fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    stdout_result(out.write_all(bytes).and_then(|()| out.flush()))
}

fn stdout_result(r: io::Result<()>) -> Result<(), CliError> {
    match r {
        // The reader went away (`tdbstore img ls | head`): nothing left to tell it.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| CliError::io("<stdout>", e)),
    }
}

/// Tells the user (stderr) or the script (one JSON object on stdout) what went wrong.
fn report_error(e: &CliError, json: bool) {
    match (e, json) {
        (CliError::Reported(inner), false) => {
            let _ = writeln!(io::stderr(), "tdbstore: error: {inner}");
        }
        (CliError::Reported(_), true) => {}
        (CliError::Clap(ce), false) => {
            let _ = ce.print();
        }
        (_, true) => {
            let v = serde_json::json!({ "error": e.to_string(), "exit_code": e.exit_code() });
            let _ = writeln!(io::stdout(), "{v}");
        }
        (_, false) => {
            let _ = writeln!(io::stderr(), "tdbstore: error: {e}");
        }
    }
}
