// SPDX-License-Identifier: Apache-2.0 OR MIT
//! `kv_share`: a second app on the same key-value store, showing what its TBF storage
//! permissions let it do with `kv_stats`'s record and with keys of its own.
//!
//! ```text
//! +----------------------------------------------+
//! | kv_stats (id 1)     | kv_share (this crate,  |
//! |                     | id 2)                  |
//! +----------------------------------------------+
//!    syscalls: KV 0x50003 (one store, checked per process), console, alarm
//! +----------------------------------------------+
//! | Tock KV stack: kv_driver -> virtual_kv ->    |
//! | kv_store_permissions -> TDBStore capsule     |
//! +----------------------------------------------+
//! ```
//!
//! Three attempts, one console line each:
//!
//! ```text
//! kv_share: read stats: allowed (run count 3)     | kv_share: read stats: denied
//! kv_share: overwrite stats: denied               | (allowed: the permissions are wrong)
//! kv_share: own key: ok
//! ```
//!
//! 1. **Read `stats`** (kv_stats's record, stored under id 1): allowed only when 1 is in
//!    kv_share's `read_ids`. The kernel answers `NOSUPPORT` both for a key that does not
//!    exist and for one the app may not read, so the app cannot tell them apart. It first
//!    waits [`Config::settle_ms`] so that kv_stats (which boots alongside) has written this
//!    boot's record, then retries a missing/unreadable record [`Config::read_attempts`]
//!    times, [`Config::retry_ms`] apart (on a first boot, `stats` may not exist yet); after
//!    that it reports "denied".
//! 2. **Overwrite `stats`** with `update` (command 5), never `set`: `update` only replaces an
//!    existing key, so a denied overwrite can never create a `stats` that kv_stats could not
//!    modify. It writes back the bytes it read (or zeros if it could not read them). Allowed
//!    only when 1 is in kv_share's `access_ids`; with this project's TABs it is always
//!    denied.
//! 3. **Own key** [`OWN_KEY`]: read the 4-byte boot counter kept there (missing on the first
//!    boot), write it back incremented and read it again. It is stored under id 2, so it
//!    works only because 2 is in both of kv_share's lists (the kernel grants a process
//!    nothing on its own keys otherwise).

#![cfg_attr(not(test), no_std)]

use core::fmt::Write;

use kv_common::{kv, SketchStats, KEY};
use libtock_alarm::{Alarm, Milliseconds};
use libtock_console::Console;
use libtock_platform::{ErrorCode, Syscalls};

/// kv_share's own key.
pub const OWN_KEY: &[u8] = b"kv_share";

/// Timing of the `stats` read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Wait before the first read, for kv_stats to finish its cycle.
    pub settle_ms: u32,
    /// Reads of `stats` before reporting "denied" (at least 1).
    pub read_attempts: u32,
    /// Wait between reads.
    pub retry_ms: u32,
}

impl Config {
    /// What the app uses on the boards: 0.5 s, then up to 10 reads 200 ms apart.
    pub const BOARD: Config = Config { settle_ms: 500, read_attempts: 10, retry_ms: 200 };
}

/// Outcome of reading `stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// Readable, with these stats.
    Allowed(SketchStats),
    /// `NOSUPPORT` on every attempt: not readable (or not there).
    Denied,
    /// Readable, but shorter than the struct.
    TooShort(u32),
    /// Another error.
    Error(ErrorCode),
}

/// Outcome of overwriting `stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// `NOSUPPORT`: not modifiable (or not there).
    Denied,
    /// The kernel let kv_share replace kv_stats's record.
    Allowed,
    /// Another error.
    Error(ErrorCode),
}

/// Outcome of the own-key round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Own {
    /// Written and read back; the counter now stored.
    Ok(u32),
    /// An operation failed.
    Failed(&'static str, ErrorCode),
    /// Read back something else than was written.
    Mismatch,
}

/// The three outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// Reading `stats`.
    pub read: Read,
    /// Overwriting `stats`.
    pub overwrite: Overwrite,
    /// The own key.
    pub own: Own,
}

/// Runs the three attempts, printing one line each.
pub fn run<S: Syscalls>(config: Config) -> Report {
    let mut out = Console::<S>::writer();

    let _ = Alarm::<S>::sleep_for(Milliseconds(config.settle_ms));
    let (read, bytes) = read_stats::<S>(config);
    let _ = match read {
        Read::Allowed(s) => writeln!(out, "kv_share: read stats: allowed (run count {})", s.run_count),
        Read::Denied => writeln!(out, "kv_share: read stats: denied"),
        Read::TooShort(n) => {
            writeln!(out, "kv_share: read stats: allowed (but {n} bytes, not a SketchStats)")
        }
        Read::Error(e) => writeln!(out, "kv_share: read stats: error ({e:?})"),
    };

    let overwrite = match libtock_key_value::KeyValue::<S>::update(KEY, &bytes) {
        Ok(()) => Overwrite::Allowed,
        Err(ErrorCode::NoSupport) => Overwrite::Denied,
        Err(e) => Overwrite::Error(e),
    };
    let _ = match overwrite {
        Overwrite::Denied => writeln!(out, "kv_share: overwrite stats: denied"),
        Overwrite::Allowed => {
            writeln!(out, "kv_share: overwrite stats: allowed (kv_share's access_ids grant id 1)")
        }
        Overwrite::Error(e) => writeln!(out, "kv_share: overwrite stats: error ({e:?})"),
    };

    let own = own_key::<S>();
    let _ = match own {
        Own::Ok(_) => writeln!(out, "kv_share: own key: ok"),
        Own::Failed(op, e) => writeln!(out, "kv_share: own key: failed ({op}: {e:?})"),
        Own::Mismatch => writeln!(out, "kv_share: own key: failed (read back a different value)"),
    };

    Report { read, overwrite, own }
}

/// Reads `stats`, retrying `NOSUPPORT`; returns the outcome and the bytes to write back.
fn read_stats<S: Syscalls>(config: Config) -> (Read, [u8; SketchStats::LEN]) {
    let mut buf = [0u8; SketchStats::LEN];
    let attempts = config.read_attempts.max(1);
    let mut attempt = 1;
    loop {
        let read = match kv::get::<S>(KEY, &mut buf) {
            Ok(got) => match SketchStats::from_bytes(&buf[..got.copied]) {
                Some(s) => Read::Allowed(s),
                None => Read::TooShort(got.len),
            },
            Err(ErrorCode::NoSupport) => Read::Denied,
            Err(e) => Read::Error(e),
        };
        if read != Read::Denied || attempt >= attempts {
            if read == Read::Denied {
                buf = [0; SketchStats::LEN];
            }
            return (read, buf);
        }
        attempt += 1;
        let _ = Alarm::<S>::sleep_for(Milliseconds(config.retry_ms));
    }
}

/// Bumps the boot counter under [`OWN_KEY`] and reads it back.
fn own_key<S: Syscalls>() -> Own {
    let mut buf = [0u8; 4];
    let count = match kv::get::<S>(OWN_KEY, &mut buf) {
        Ok(got) if got.copied == 4 => u32::from_le_bytes(buf),
        // Missing (first boot), or not a counter: start again.
        Ok(_) | Err(ErrorCode::NoSupport) => 0,
        Err(e) => return Own::Failed("get", e),
    };
    let next = count.wrapping_add(1);
    if let Err(e) = libtock_key_value::KeyValue::<S>::set(OWN_KEY, &next.to_le_bytes()) {
        return Own::Failed("set", e);
    }
    let mut back = [0u8; 4];
    match kv::get::<S>(OWN_KEY, &mut back) {
        Ok(got) if got.copied == 4 && back == next.to_le_bytes() => Own::Ok(next),
        Ok(_) => Own::Mismatch,
        Err(e) => Own::Failed("read back", e),
    }
}

#[cfg(test)]
mod tests;
