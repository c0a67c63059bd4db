//! `stats-cycle`: one boot of Arduino's Portenta H7 "FlashKeyValue" tutorial sketch, run on
//! the image instead of the board.
//!
//! The sketch keeps `struct SketchStats { uint32_t startupTime, randomValue, runCount; }`
//! (12 bytes, little-endian on the Cortex-M7) under the key `stats`. Each boot it calls
//! `get_info` and `get` on the key, prints the previous stats (or "No previous data was
//! found." when the key is missing), then writes `{ millis(), rand(), ++runCount }` with
//! flags 0 and prints it. Running this command against an image written by the board (or
//! the golden vectors' `stats_*` images) continues the same run count, and vice versa.

use std::fmt::Write as _;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tdbstore::sim::SimStore;
use tdbstore::Error as EngineError;

use crate::commands::Output;
use crate::error::CliError;

/// The sketch's key.
pub const KEY: &str = "stats";

/// The sketch's `SketchStats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SketchStats {
    /// `millis()` when the stats were written.
    pub startup_time: u32,
    /// `rand()`.
    pub random_value: u32,
    /// How many boots have written stats.
    pub run_count: u32,
}

impl SketchStats {
    /// The struct's bytes as the sketch stores them.
    pub fn to_bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&self.startup_time.to_le_bytes());
        b[4..8].copy_from_slice(&self.random_value.to_le_bytes());
        b[8..12].copy_from_slice(&self.run_count.to_le_bytes());
        b
    }

    /// The struct from a stored value. Like the sketch's `memcpy(stats, buffer,
    /// sizeof(SketchStats))`, a longer value contributes its first 12 bytes; a shorter one
    /// (where the sketch would read past its buffer) is refused.
    pub fn from_bytes(b: &[u8]) -> Option<SketchStats> {
        let word = |i: usize| -> Option<u32> {
            let w: [u8; 4] = b.get(i..i + 4)?.try_into().ok()?;
            Some(u32::from_le_bytes(w))
        };
        Some(SketchStats { startup_time: word(0)?, random_value: word(4)?, run_count: word(8)? })
    }
}

#[derive(Serialize)]
struct CycleReport {
    key: &'static str,
    previous: Option<SketchStats>,
    current: SketchStats,
    hex: String,
}

/// One boot of the sketch.
pub fn cycle(store: &mut SimStore<'_>, started: Instant) -> Result<Output, CliError> {
    // The sketch halts on an init failure; here that is an error exit.
    store.mount()?;
    let previous = match store.get_info(KEY.as_bytes()) {
        Ok((size, _)) => {
            let mut buf = vec![0u8; size];
            let got = store.get(KEY.as_bytes(), &mut buf).map_err(|e| CliError::key(KEY, e))?;
            let stats = buf
                .get(..got.copied)
                .and_then(SketchStats::from_bytes)
                .ok_or(CliError::StatsTooShort(got.size))?;
            Some(stats)
        }
        Err(EngineError::NotFound) => None,
        Err(e) => return Err(CliError::key(KEY, e)),
    };
    let run_count = previous.map_or(0, |p| p.run_count).wrapping_add(1);
    let current = SketchStats {
        startup_time: u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
        random_value: random_u32(),
        run_count,
    };
    store.set(KEY.as_bytes(), &current.to_bytes(), 0).map_err(|e| CliError::key(KEY, e))?;

    let mut t = String::from("Retrieving Sketch Stats\n");
    match previous {
        Some(p) => write_stats(&mut t, "Previous Stats", p),
        None => t.push_str("No previous data was found.\n"),
    }
    t.push_str("Sketch Stats updated\n");
    write_stats(&mut t, "Current Stats", current);
    let r = CycleReport { key: KEY, previous, current, hex: hex::encode(current.to_bytes()) };
    Ok(Output::new(&r, t))
}

fn write_stats(t: &mut String, title: &str, s: SketchStats) {
    let _ = writeln!(t, "{title}");
    let _ = writeln!(t, "    Startup Time: {}", s.startup_time);
    let _ = writeln!(t, "    Random Value: {}", s.random_value);
    let _ = writeln!(t, "    Run Count: {}", s.run_count);
}

/// The sketch's `rand()` after `srand(micros())`: any value will do, so the clock and the
/// process id seed one SplitMix64 step rather than pulling in a random-number crate.
fn random_u32() -> u32 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut z = (nanos ^ (u64::from(std::process::id()) << 40)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_layout_matches_the_golden_vector() {
        // g1_portenta_internal/stats_14: run 14, startupTime 1000 + 17 * 14, glibc-style LCG.
        let bytes = hex::decode("d60400001c2f00000e000000").expect("hex");
        let s = SketchStats::from_bytes(&bytes).expect("12 bytes");
        assert_eq!(s, SketchStats { startup_time: 1238, random_value: 0x2f1c, run_count: 14 });
        assert_eq!(s.to_bytes().as_slice(), bytes.as_slice());
        assert_eq!(SketchStats::from_bytes(&bytes[..11]), None);
        let mut longer = bytes.clone();
        longer.push(9);
        assert_eq!(SketchStats::from_bytes(&longer), Some(s));
    }
}
