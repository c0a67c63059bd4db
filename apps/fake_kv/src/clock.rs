// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Fake of the kernel's alarm driver (0x0) with the commands the apps use.
//!
//! `libtock_unittest::fake::Alarm` only answers `FREQUENCY` and `SET_RELATIVE`; the apps also
//! read the time (`TIME`, for the sketch's `millis()`) and cancel an alarm (`STOP`, when the
//! RNG answers before its timeout). Commands, as `capsules/core/src/alarm.rs`:
//!
//! | command | meaning | returns |
//! |---|---|---|
//! | 0 | driver present | success |
//! | 1 | frequency | success u32: ticks per second |
//! | 2 | time | success u32: ticks now |
//! | 3 | stop | success, or `ALREADY` when no alarm is armed |
//! | 5 | set relative (`dt`) | success u32: expiry; upcall `(now, expiry, 0)` at expiry |
//!
//! Time moves only when a test says so ([`Clock::advance`]) or when an armed alarm expires:
//! like `fake::Alarm`, the fake fires an alarm as soon as it is set (nothing else can happen
//! in a single-threaded test while the app waits) and moves the time to its expiry.

use core::cell::Cell;
use core::num::Wrapping;

use libtock_platform::{CommandReturn, ErrorCode};
use libtock_unittest::{command_return, DriverInfo, DriverShareRef};

const DRIVER_NUM: u32 = 0x0;

mod command {
    pub const EXISTS: u32 = 0;
    pub const FREQUENCY: u32 = 1;
    pub const TIME: u32 = 2;
    pub const STOP: u32 = 3;
    pub const SET_RELATIVE: u32 = 5;
}

/// The fake alarm driver.
pub struct Clock {
    frequency_hz: u32,
    now: Cell<Wrapping<u32>>,
    armed: Cell<Option<u32>>,
    share_ref: DriverShareRef,
}

impl Clock {
    /// A clock at `frequency_hz` ticks per second, starting at tick `now`.
    pub fn new(frequency_hz: u32, now: u32) -> std::rc::Rc<Clock> {
        std::rc::Rc::new(Clock {
            frequency_hz,
            now: Cell::new(Wrapping(now)),
            armed: Cell::new(None),
            share_ref: Default::default(),
        })
    }

    /// The current tick count.
    pub fn now(&self) -> u32 {
        self.now.get().0
    }

    /// Moves time on by `ticks`.
    pub fn advance(&self, ticks: u32) {
        self.now.set(self.now.get() + Wrapping(ticks));
    }
}

impl libtock_unittest::fake::SyscallDriver for Clock {
    fn info(&self) -> DriverInfo {
        DriverInfo::new(DRIVER_NUM).upcall_count(1)
    }

    fn register(&self, share_ref: DriverShareRef) {
        self.share_ref.replace(share_ref);
    }

    fn command(&self, command_id: u32, argument0: u32, _argument1: u32) -> CommandReturn {
        match command_id {
            command::EXISTS => command_return::success(),
            command::FREQUENCY => command_return::success_u32(self.frequency_hz),
            command::TIME => command_return::success_u32(self.now()),
            command::STOP => match self.armed.take() {
                Some(_) => command_return::success(),
                None => command_return::failure(ErrorCode::Already),
            },
            command::SET_RELATIVE => {
                let expiry = (self.now.get() + Wrapping(argument0)).0;
                // Fires at once: the time jumps to the expiry and the alarm is spent.
                self.now.set(Wrapping(expiry));
                self.armed.set(None);
                let _ = self.share_ref.schedule_upcall(0, (expiry, expiry, 0));
                command_return::success_u32(expiry)
            }
            _ => command_return::failure(ErrorCode::NoSupport),
        }
    }
}
