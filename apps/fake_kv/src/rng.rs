// SPDX-License-Identifier: Apache-2.0 OR MIT
//! Fake of the kernel's RNG driver (0x40001); libtock_unittest has none.
//!
//! As `capsules/core/src/rng.rs`:
//!
//! | syscall | number | meaning |
//! |---|---|---|
//! | command | 0 | driver present: success |
//! | command | 1 (`n`) | fill the allowed buffer with `n` random bytes (at most its length) |
//! | allow read-write | 0 | the buffer |
//! | subscribe | 0 | upcall `(0, bytes filled, 0)` when done |
//!
//! [`RngMode`] selects how the fake answers, including a driver that accepts the request and
//! never answers (a stalled entropy source), which the apps must survive.

use core::cell::{Cell, RefCell};

use libtock_platform::{CommandReturn, ErrorCode};
use libtock_unittest::{command_return, DriverInfo, DriverShareRef, RwAllowBuffer};

const DRIVER_NUM: u32 = 0x40001;

mod command {
    pub const EXISTS: u32 = 0;
    pub const GET_BYTES: u32 = 1;
}

/// How the fake RNG answers `GET_BYTES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RngMode {
    /// Fills the buffer from a counter starting at this byte (`b, b+1, ...`) and upcalls.
    Counter(u8),
    /// Accepts the command and never upcalls.
    Stalled,
    /// Fails the command with this error.
    Refuse(ErrorCode),
}

/// The fake RNG driver.
pub struct Rng {
    mode: Cell<RngMode>,
    buffer: RefCell<RwAllowBuffer>,
    share_ref: DriverShareRef,
    requests: Cell<u32>,
}

impl Rng {
    /// An RNG answering in `mode`.
    pub fn new(mode: RngMode) -> std::rc::Rc<Rng> {
        std::rc::Rc::new(Rng {
            mode: Cell::new(mode),
            buffer: Default::default(),
            share_ref: Default::default(),
            requests: Cell::new(0),
        })
    }

    /// How many `GET_BYTES` commands arrived.
    pub fn requests(&self) -> u32 {
        self.requests.get()
    }
}

impl libtock_unittest::fake::SyscallDriver for Rng {
    fn info(&self) -> DriverInfo {
        DriverInfo::new(DRIVER_NUM).upcall_count(1)
    }

    fn register(&self, share_ref: DriverShareRef) {
        self.share_ref.replace(share_ref);
    }

    fn command(&self, command_id: u32, argument0: u32, _argument1: u32) -> CommandReturn {
        match command_id {
            command::EXISTS => command_return::success(),
            command::GET_BYTES => {
                self.requests.set(self.requests.get() + 1);
                match self.mode.get() {
                    RngMode::Refuse(e) => command_return::failure(e),
                    RngMode::Stalled => command_return::success(),
                    RngMode::Counter(start) => {
                        let mut buffer = self.buffer.borrow_mut();
                        let n = buffer.len().min(argument0 as usize);
                        for (i, b) in buffer[..n].iter_mut().enumerate() {
                            *b = start.wrapping_add(i as u8);
                        }
                        let _ = self.share_ref.schedule_upcall(0, (0, n as u32, 0));
                        command_return::success()
                    }
                }
            }
            _ => command_return::failure(ErrorCode::NoSupport),
        }
    }

    fn allow_readwrite(
        &self,
        buffer_num: u32,
        buffer: RwAllowBuffer,
    ) -> Result<RwAllowBuffer, (RwAllowBuffer, ErrorCode)> {
        match buffer_num {
            0 => Ok(self.buffer.replace(buffer)),
            _ => Err((buffer, ErrorCode::Invalid)),
        }
    }
}
