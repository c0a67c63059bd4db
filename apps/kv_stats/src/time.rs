// SPDX-License-Identifier: Apache-2.0 OR MIT
//! The sketch's `millis()` and `rand()` on Tock: the alarm driver (0x0) and the RNG driver
//! (0x40001).
//!
//! ```text
//! +--------------------------------+
//! | kv_stats logic                 |
//! +--------------------------------+
//! | time (this file)               |
//! +--------------------------------+
//!    syscalls: alarm 0x0, RNG 0x40001
//! ```
//!
//! - [`millis`]: the alarm's tick counter converted with its frequency, `ticks * 1000 / hz`
//!   in 64-bit arithmetic (libtock_alarm's `get_milliseconds` divides by `hz / 1000` and is
//!   off by 2.4 % at 32768 Hz). The kernel counts ticks from boot in 32 bits, so this is
//!   milliseconds since boot until the counter wraps (about 7 minutes at QEMU virt's 10 MHz);
//!   the app reads it a few milliseconds after boot.
//! - [`random_u32`]: four bytes from the RNG driver. If the board has none (`NODEVICE`), it
//!   refuses the request, or does not answer within the timeout, the value is derived from
//!   the alarm ticks instead (a 32-bit integer hash of them) and [`RandomSource`] says why.

use core::cell::Cell;
use core::fmt;

use libtock_alarm::Alarm;
use libtock_platform::{share, AllowRw, DefaultConfig, ErrorCode, Subscribe, Syscalls};

const ALARM: u32 = 0x0;
const ALARM_STOP: u32 = 3;
const ALARM_SET_RELATIVE: u32 = 5;
const RNG: u32 = 0x40001;
const RNG_EXISTS: u32 = 0;
const RNG_GET_BYTES: u32 = 1;

/// Milliseconds since boot from the alarm driver.
pub fn millis<S: Syscalls>() -> Result<u32, ErrorCode> {
    let ticks = Alarm::<S>::get_ticks()?;
    let hz = Alarm::<S>::get_frequency()?.0;
    if hz == 0 {
        return Err(ErrorCode::Fail);
    }
    Ok((u64::from(ticks) * 1000 / u64::from(hz)) as u32)
}

/// Why the random value did not come from the RNG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RngTrouble {
    /// The RNG driver is missing or refused the request.
    Error(ErrorCode),
    /// The RNG accepted the request and did not answer in time.
    TimedOut,
    /// The RNG answered with fewer than 4 bytes.
    Short(u32),
}

impl fmt::Display for RngTrouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RngTrouble::Error(e) => write!(f, "{e:?}"),
            RngTrouble::TimedOut => write!(f, "no answer"),
            RngTrouble::Short(n) => write!(f, "{n} bytes"),
        }
    }
}

/// Where a random value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RandomSource {
    /// The RNG driver.
    Rng,
    /// A hash of the alarm ticks, because of this.
    AlarmTicks(RngTrouble),
}

/// A random value and its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Random {
    /// The value.
    pub value: u32,
    /// Where it came from.
    pub source: RandomSource,
}

/// A random `u32`: from the RNG, waiting at most `timeout_ms` (when the board has an alarm),
/// else derived from the alarm ticks.
pub fn random_u32<S: Syscalls>(timeout_ms: u32) -> Random {
    match rng_u32::<S>(timeout_ms) {
        Ok(value) => Random { value, source: RandomSource::Rng },
        Err(why) => {
            let ticks = Alarm::<S>::get_ticks().unwrap_or(0);
            Random { value: mix(ticks), source: RandomSource::AlarmTicks(why) }
        }
    }
}

/// murmur3's 32-bit finaliser over the ticks (offset so that tick 0 does not give 0).
fn mix(ticks: u32) -> u32 {
    let mut h = ticks ^ 0x9E37_79B9;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

fn rng_u32<S: Syscalls>(timeout_ms: u32) -> Result<u32, RngTrouble> {
    S::command(RNG, RNG_EXISTS, 0, 0).to_result::<(), ErrorCode>().map_err(RngTrouble::Error)?;
    // Without an alarm there is no timeout: wait as libtock_rng's get_bytes_sync does.
    let timeout_ticks = Alarm::<S>::get_frequency()
        .ok()
        .map(|hz| (u64::from(timeout_ms) * u64::from(hz.0) / 1000).clamp(1, u64::from(u32::MAX)) as u32);

    let mut bytes = [0u8; 4];
    let rng_done: Cell<Option<(u32, u32, u32)>> = Cell::new(None);
    let alarm_fired: Cell<Option<(u32, u32)>> = Cell::new(None);
    let filled =
        share::scope::<(AllowRw<_, RNG, 0>, Subscribe<_, RNG, 0>, Subscribe<_, ALARM, 0>), _, _>(|handle| {
            let (allow, rng_sub, alarm_sub) = handle.split();
            let err = RngTrouble::Error;
            S::allow_rw::<DefaultConfig, RNG, 0>(allow, &mut bytes).map_err(err)?;
            S::subscribe::<_, _, DefaultConfig, RNG, 0>(rng_sub, &rng_done).map_err(err)?;
            S::command(RNG, RNG_GET_BYTES, 4, 0).to_result::<(), ErrorCode>().map_err(err)?;
            // Arm the timeout after the request (a fake clock fires at once).
            let armed = match timeout_ticks {
                Some(ticks) => {
                    S::subscribe::<_, _, DefaultConfig, ALARM, 0>(alarm_sub, &alarm_fired).is_ok()
                        && S::command(ALARM, ALARM_SET_RELATIVE, ticks, 0)
                            .to_result::<u32, ErrorCode>()
                            .is_ok()
                }
                None => false,
            };
            loop {
                S::yield_wait();
                if let Some((_, n, _)) = rng_done.get() {
                    if armed {
                        // Already fired is fine too (ALREADY).
                        let _ = S::command(ALARM, ALARM_STOP, 0, 0);
                    }
                    return Ok(n);
                }
                if alarm_fired.get().is_some() {
                    return Err(RngTrouble::TimedOut);
                }
            }
        })?;
    if filled < 4 {
        return Err(RngTrouble::Short(filled));
    }
    Ok(u32::from_le_bytes(bytes))
}
