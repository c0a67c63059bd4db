// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `kv_stats`: Arduino's Portenta H7 *FlashKeyValue* tutorial sketch as a Tock app.
//!
//! ```text
//! +-------------------------------------------+
//! | kv_stats (this crate): the sketch's cycle |
//! +-------------------------------------------+
//!    syscalls: KV 0x50003, console, alarm, RNG
//! +-------------------------------------------+
//! | Tock KV stack: kv_driver -> virtual_kv -> |
//! | kv_store_permissions -> TDBStore capsule  |
//! +-------------------------------------------+
//! ```
//!
//! Each boot: read the `stats` record, print it (or say there is none), write it back with
//! the run count bumped, print what was written. The record is the sketch's
//! `struct SketchStats { uint32_t startupTime, randomValue, runCount; }`, 12 bytes,
//! little-endian, as the sketch stores it. In the store the kernel's permission layer keeps
//! its 9-byte header (version, length, writer id) in front of it, so a record the Mbed sketch
//! wrote directly (no header) is not one this app can read, and the reverse.
//!
//! ```text
//! Retrieving Sketch Stats
//! Previous Stats                       | No previous data was found.
//!     Startup Time: 1234               |
//!     Random Value: 2779430415         |
//!     Run Count: 1                     |
//! Sketch Stats updated
//! Current Stats
//!     Startup Time: 1187
//!     Random Value: 388001547
//!     Run Count: 2
//! ```
//!
//! As in the sketch, any other error reading or writing the record is printed and the app
//! stops (exits with the error code). The logic is generic over
//! [`libtock_platform::Syscalls`]: the binary runs it on `TockSyscalls`, the tests on
//! `libtock_unittest`'s fake kernel with the `fake_kv` drivers.

#![cfg_attr(not(test), no_std)]

use core::fmt::Write;

use libtock_console::Console;
use libtock_platform::{ErrorCode, Syscalls};

pub mod time;

pub use kv_common::{kv, SketchStats, KEY};

/// How long to wait for the RNG before falling back to the alarm ticks.
pub const RNG_TIMEOUT_MS: u32 = 1_000;

/// One completed cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cycle {
    /// The stats found, if any.
    pub previous: Option<SketchStats>,
    /// The stats written.
    pub current: SketchStats,
    /// How the random value was obtained.
    pub random: time::RandomSource,
}

/// Why the cycle stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Reading `stats` failed other than with "not found" (`NOSUPPORT`).
    Read(ErrorCode),
    /// `stats` holds fewer bytes than the struct (the length is given).
    TooShort(u32),
    /// Writing `stats` failed.
    Write(ErrorCode),
}

impl Failure {
    /// The app's exit code.
    pub fn error_code(self) -> ErrorCode {
        match self {
            Failure::Read(e) | Failure::Write(e) => e,
            Failure::TooShort(_) => ErrorCode::Size,
        }
    }
}

/// Runs the sketch's cycle once, printing to the console.
pub fn run<S: Syscalls>() -> Result<Cycle, Failure> {
    let mut out = Console::<S>::writer();
    let _ = writeln!(out, "Retrieving Sketch Stats");

    let previous = match read_previous::<S>() {
        Ok(p) => p,
        Err(f) => {
            let _ = match f {
                Failure::TooShort(n) => writeln!(
                    out,
                    "Error reading data from key-value store: stats holds {n} bytes, expected {}",
                    SketchStats::LEN
                ),
                f => {
                    writeln!(out, "Error reading data from key-value store: get stats: {:?}", f.error_code())
                }
            };
            return Err(f);
        }
    };
    match previous {
        Some(p) => print_stats(&mut out, "Previous Stats", p),
        None => {
            let _ = writeln!(out, "No previous data was found.");
        }
    }

    // The sketch: `SketchStats currentStats { millis(), rand(), ++runCount };`
    let startup_time = match time::millis::<S>() {
        Ok(ms) => ms,
        Err(e) => {
            let _ = writeln!(out, "Note: no alarm driver ({e:?}); startup time 0");
            0
        }
    };
    let random = time::random_u32::<S>(RNG_TIMEOUT_MS);
    if let time::RandomSource::AlarmTicks(why) = random.source {
        let _ = writeln!(out, "Note: RNG unavailable ({why}); random value derived from the alarm ticks");
    }
    let current = SketchStats {
        startup_time,
        random_value: random.value,
        run_count: previous.map_or(0, |p| p.run_count).wrapping_add(1),
    };

    if let Err(e) = libtock_key_value::KeyValue::<S>::set(KEY, &current.to_bytes()) {
        let _ = writeln!(out, "Error while saving to key-value store: set stats: {e:?}");
        return Err(Failure::Write(e));
    }
    let _ = writeln!(out, "Sketch Stats updated");
    print_stats(&mut out, "Current Stats", current);
    Ok(Cycle { previous, current, random: random.source })
}

/// The stored stats, `None` when there are none this app may read.
fn read_previous<S: Syscalls>() -> Result<Option<SketchStats>, Failure> {
    let mut buf = [0u8; SketchStats::LEN];
    match kv::get::<S>(KEY, &mut buf) {
        // A longer value (the kernel copied its first 12 bytes) is read as the sketch does.
        Ok(got) => SketchStats::from_bytes(&buf[..got.copied]).map(Some).ok_or(Failure::TooShort(got.len)),
        // No such key, or one written by an app whose id is not in this app's read_ids.
        Err(ErrorCode::NoSupport) => Ok(None),
        Err(e) => Err(Failure::Read(e)),
    }
}

fn print_stats<W: Write>(out: &mut W, title: &str, s: SketchStats) {
    let _ = writeln!(out, "{title}");
    let _ = writeln!(out, "    Startup Time: {}", s.startup_time);
    let _ = writeln!(out, "    Random Value: {}", s.random_value);
    let _ = writeln!(out, "    Run Count: {}", s.run_count);
}

#[cfg(test)]
mod tests;
