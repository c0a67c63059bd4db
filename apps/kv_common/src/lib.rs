// SPDX-License-Identifier: Apache-2.0 OR MIT
//! What `kv_stats` and `kv_share` share: the sketch's `stats` record and a KV `get` that
//! keeps the kernel's whole answer.
//!
//! ```text
//! +------------------------------------------+
//! | kv_stats, kv_share                       |
//! +------------------------------------------+
//! | kv_common (this crate): SketchStats, get |
//! +------------------------------------------+
//!    syscalls: KV driver 0x50003
//! ```
//!
//! The record is the Arduino sketch's `struct SketchStats { uint32_t startupTime,
//! randomValue, runCount; }`: 12 bytes, little-endian (the Cortex-M7's order, kept on every
//! target), stored under the key `stats`. The kernel's permission layer keeps its own 9-byte
//! header in front of it in the store; apps never see that header.

#![cfg_attr(not(test), no_std)]

pub mod kv;

/// The sketch's key.
pub const KEY: &[u8] = b"stats";

/// The sketch's `SketchStats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SketchStats {
    /// `millis()` when the stats were written: milliseconds since boot.
    pub startup_time: u32,
    /// `rand()`.
    pub random_value: u32,
    /// How many boots have written stats.
    pub run_count: u32,
}

impl SketchStats {
    /// Size of the struct as the sketch stores it.
    pub const LEN: usize = 12;

    /// The struct's bytes as the sketch stores them (little-endian words).
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0..4].copy_from_slice(&self.startup_time.to_le_bytes());
        b[4..8].copy_from_slice(&self.random_value.to_le_bytes());
        b[8..12].copy_from_slice(&self.run_count.to_le_bytes());
        b
    }

    /// The struct from the first 12 bytes of a stored value, like the sketch's
    /// `memcpy(stats, buffer, sizeof(SketchStats))`; `None` if there are fewer.
    pub fn from_bytes(b: &[u8]) -> Option<SketchStats> {
        let word = |i: usize| -> Option<u32> {
            let w: [u8; 4] = b.get(i..i + 4)?.try_into().ok()?;
            Some(u32::from_le_bytes(w))
        };
        Some(SketchStats { startup_time: word(0)?, random_value: word(4)?, run_count: word(8)? })
    }
}

#[cfg(test)]
mod tests;
